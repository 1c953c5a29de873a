"""Reference, object and file-descriptor leaks."""
import asyncio
import gc
import os
import socket
import sys

import pytest


def batch(loop, a, b):
    """One round of typical loop operations."""
    out = []

    def bad():
        raise ValueError("expected")

    for i in range(50):
        loop.call_soon(out.append, i)
    h = loop.call_soon(out.append, "cancelled")
    h.cancel()
    loop.call_soon(bad)
    for i in range(20):
        loop.call_later(0.0001 * i, out.append, ("t", i))
    hs = [loop.call_later(100 + i, out.append, "never") for i in range(30)]
    for x in hs:
        x.cancel()
    loop.call_at(loop.time() - 1, out.append, "past")
    loop.call_soon_threadsafe(out.append, "threadsafe")

    async def child(i):
        await asyncio.sleep(0)
        if i % 5 == 0:
            raise KeyError(i)
        return i

    async def main():
        fut = loop.create_future()
        loop.call_soon(fut.set_result, 1)
        await fut
        fut2 = loop.create_future()
        fut2.cancel()
        results = await asyncio.gather(*(child(i) for i in range(10)), return_exceptions=True)
        t = loop.create_task(asyncio.sleep(10))
        await asyncio.sleep(0)
        t.cancel()
        try:
            await t
        except asyncio.CancelledError:
            pass
        got = loop.create_future()
        loop.add_reader(a, lambda: got.done() or got.set_result(a.recv(10)))
        b.send(b"x")
        await got
        loop.remove_reader(a)
        loop.add_writer(a, lambda: None)
        loop.remove_writer(a)
        await asyncio.sleep(0.0005)
        return results

    loop.run_until_complete(main())
    loop.stop()
    loop.run_forever()
    assert "past" in out and "threadsafe" in out


def _count():
    gc.collect()
    gc.collect()
    counts = {"objects": len(gc.get_objects()), "blocks": sys.getallocatedblocks()}
    if hasattr(sys, "gettotalrefcount"):
        counts["refs"] = sys.gettotalrefcount()
    return counts


# Growth per window (of many rounds) above which a window counts as "grown".
THRESHOLDS = {"objects": 50, "blocks": 300, "refs": 200}

# BOUCLE_LEAK_REPORT=1 prints every measurement (run pytest with -s to see it):
# ``make test-refleaks`` does, on a debug interpreter (sys.gettotalrefcount).
REPORT = bool(os.environ.get("BOUCLE_LEAK_REPORT"))


def assert_no_growth(fn, warmup=3, windows=3, rounds=10, thresholds=None, name=None):
    """Fail if every measurement window shows growth above the threshold.

    Caches and freelists make single measurements noisy (they go up and
    down); a real leak grows in every window, by an amount proportional to
    the number of rounds in the window.  Each round creates hundreds of
    objects, so a leak per operation grows by thousands per window.
    """
    from array import array
    limits = dict(THRESHOLDS, **(thresholds or {}))
    for _ in range(warmup):
        fn()
    # measurements go to preallocated arrays, which hold no Python objects:
    # the bookkeeping itself must not show up as growth
    first = _count()
    keys = sorted(first)
    totals = {k: array("q", [first[k]] * (windows + 1)) for k in keys}
    del first
    for w in range(1, windows + 1):
        for _ in range(rounds):
            fn()
        cur = _count()
        for k in keys:
            totals[k][w] = cur[k]
        del cur
    deltas = [{k: totals[k][w] - totals[k][w - 1] for k in keys}
              for w in range(1, windows + 1)]
    if REPORT:
        label = name or getattr(fn, "__name__", "?")
        for key in keys:
            sys.stdout.write("\n[leaks] %-28s %-7s after warm-up and every %d rounds: %s"
                             "  window deltas: %s  (limit %d)"
                             % (label, key, rounds, list(totals[key]),
                                [d[key] for d in deltas], limits[key]))
        sys.stdout.flush()
    for key, limit in limits.items():
        if key in deltas[0]:
            growth = [d[key] for d in deltas]
            assert min(growth) <= limit, "%s grew in every window: %s" % (key, growth)


def test_no_reference_leaks_in_loop_operations(loop):
    loop.set_exception_handler(lambda lp, ctx: None)
    a, b = socket.socketpair()
    try:
        assert_no_growth(lambda: batch(loop, a, b), name="loop operations (%s)" % loop_name(loop))
    finally:
        a.close()
        b.close()


def test_no_leak_from_run_until_complete_and_handles(loop):
    async def coro(i):
        return i

    def rounds():
        for i in range(100):
            loop.run_until_complete(coro(i))
        for i in range(100):
            loop.call_later(1000, print, i).cancel()
            loop.call_soon(print, i).cancel()
        loop.stop()
        loop.run_forever()

    assert_no_growth(rounds, name="run_until_complete (%s)" % loop_name(loop))


def test_no_leak_from_exceptions_in_callbacks(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    def bad(i):
        raise ValueError(i)

    def rounds():
        for i in range(100):
            loop.call_soon(bad, i)
        loop.stop()
        loop.run_forever()
        assert len(contexts) == 100
        contexts.clear()
        # BaseExceptions propagate out of run_forever
        loop.call_soon(bad_base)
        try:
            loop.run_forever()
        except KeyboardInterrupt:
            pass

    def bad_base():
        raise KeyboardInterrupt

    assert_no_growth(rounds, name="callback exceptions (%s)" % loop_name(loop))


def test_loop_objects_are_freed(loop_factory):
    import weakref
    refs = []
    for _ in range(20):
        lp = loop_factory.kind()
        lp.call_soon(lambda: None)
        lp.run_until_complete(asyncio.sleep(0))
        lp.close()
        refs.append(weakref.ref(lp))
        del lp
    gc.collect()
    assert [r for r in refs if r() is not None] == []


def test_loop_freed_without_gc_cycle_collection(loop_factory):
    import weakref
    lp = loop_factory.kind()
    lp.run_until_complete(asyncio.sleep(0))
    lp.close()
    r = weakref.ref(lp)
    del lp
    gc.collect()
    assert r() is None


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_no_fd_leak_creating_and_closing_loops(loop_factory):
    def nfds():
        return len(os.listdir("/proc/self/fd"))

    # warm up anything created once per process
    lp = loop_factory.kind()
    lp.run_until_complete(asyncio.sleep(0))
    lp.close()
    before = nfds()
    for _ in range(100):
        lp = loop_factory.kind()
        lp.call_soon_threadsafe(lambda: None)
        lp.call_later(0.0001, lambda: None)
        lp.run_until_complete(asyncio.sleep(0.0002))
        lp.close()
    del lp
    gc.collect()
    assert nfds() == before


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_no_fd_leak_with_readers_and_signals(loop_factory):
    import signal

    def nfds():
        return len(os.listdir("/proc/self/fd"))

    before = nfds()
    for _ in range(20):
        lp = loop_factory.kind()
        a, b = socket.socketpair()
        lp.add_reader(a, lambda: None)
        lp.add_signal_handler(signal.SIGUSR1, lambda: None)
        lp.run_until_complete(asyncio.sleep(0))
        lp.remove_signal_handler(signal.SIGUSR1)
        lp.close()
        a.close()
        b.close()
    gc.collect()
    assert nfds() == before


def test_unclosed_loop_with_pending_self_references_is_collected(loop_factory):
    # handles in the ready queue and in the timer queue that refer back to
    # the loop form cycles: the garbage collector must be able to free them
    import warnings
    import weakref
    lp = loop_factory.kind()
    lp.call_soon(lp.stop)
    lp.call_later(100, lp.stop)
    lp.call_soon_threadsafe(lp.stop)
    r = weakref.ref(lp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        del lp
        gc.collect()
        gc.collect()
    assert r() is None


def test_handle_cycles_are_collected(loop):
    import weakref

    class Box(list):
        pass

    refs = []
    for _ in range(10):
        box = Box()
        h = loop.call_later(100, print, box)
        box.append(h)  # box -> handle -> args -> box
        h.cancel()
        refs.append(weakref.ref(box))
        h2 = loop.call_soon(print, box)
        h2.cancel()
        del box, h, h2
    loop.stop()
    loop.run_forever()  # drops the cancelled handles from the queues
    gc.collect()
    assert [r for r in refs if r() is not None] == []


def test_callback_args_released_after_run(loop):
    import weakref

    class Arg:
        pass

    a = Arg()
    r = weakref.ref(a)
    loop.call_soon(lambda x: None, a)
    loop.call_later(0, lambda x: None, a)
    del a
    loop.stop()
    loop.run_forever()
    assert r() is None, "the loop kept a reference to a callback argument"


# -- networking, pipes, subprocesses ---------------------------------------
#
# Each round performs every operation several times (OPS), so that a leak of
# even one reference per operation grows a window of ``rounds`` rounds by at
# least OPS * rounds references; the limit is half that, which leaves room for
# the ups and downs of caches and freelists (on a debug interpreter these tests
# measure 0 or 1 reference of growth per window after the first).

OPS = 10


def _net_limits(rounds):
    return {"refs": OPS * rounds // 2, "objects": OPS * rounds // 2}


def _run(loop, coro):
    return loop.run_until_complete(asyncio.wait_for(coro, 30))


def test_no_leak_from_sock_operations(loop):
    a, b = socket.socketpair()
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(OPS)
    srv.setblocking(False)
    u1 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for s in (a, b, u1, u2):
        s.setblocking(False)
    u1.bind(("127.0.0.1", 0))
    u2.bind(("127.0.0.1", 0))
    buf = bytearray(100)
    has_dgram_ops = hasattr(loop, "sock_recvfrom")

    async def one_round():
        for i in range(OPS):
            # a receive that waits for the peer, then one that is ready at once
            r = asyncio.ensure_future(loop.sock_recv(a, 100))
            await asyncio.sleep(0)
            await loop.sock_sendall(b, b"ping %d" % i)
            assert (await r).startswith(b"ping")
            await loop.sock_sendall(b, b"x" * 10)
            assert await loop.sock_recv_into(a, buf) == 10
            # a cancelled pending receive
            r = asyncio.ensure_future(loop.sock_recv(a, 100))
            await asyncio.sleep(0)
            r.cancel()
            try:
                await r
            except asyncio.CancelledError:
                pass
            # accept + connect
            cli = socket.socket()
            cli.setblocking(False)
            acc = asyncio.ensure_future(loop.sock_accept(srv))
            await loop.sock_connect(cli, srv.getsockname())
            conn, _ = await acc
            conn.close()
            cli.close()
            # a failing connect (nothing listens on port 1)
            bad = socket.socket()
            bad.setblocking(False)
            try:
                await loop.sock_connect(bad, ("127.0.0.1", 1))
            except OSError:
                pass
            bad.close()
            if has_dgram_ops:
                await loop.sock_sendto(u1, b"d", u2.getsockname())
                data, _ = await loop.sock_recvfrom(u2, 100)
                assert data == b"d"
                await loop.sock_sendto(u1, b"e", u2.getsockname())
                n, _ = await loop.sock_recvfrom_into(u2, buf)
                assert n == 1

    try:
        assert_no_growth(lambda: _run(loop, one_round()), rounds=5,
                         thresholds=_net_limits(5), name="sock_* (%s)" % loop_name(loop))
    finally:
        for s in (a, b, srv, u1, u2):
            s.close()


def loop_name(loop):
    return "boucle" if type(loop).__module__.startswith("boucle") else "asyncio"


class _Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)
        if data.endswith(b"\n"):
            self.transport.write_eof()


def test_no_leak_from_tcp_echo_over_transports(loop):
    server = _run(loop, loop.create_server(_Echo, "127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]

    async def one_round():
        for i in range(OPS):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"hello %d " % i)
            writer.writelines([b"more ", b"data\n"])
            await writer.drain()
            data = await reader.read()           # until the server's EOF
            assert data == b"hello %d more data\n" % i
            writer.close()
            await writer.wait_closed()
        # a refused connection
        try:
            await asyncio.open_connection("127.0.0.1", 1)
        except OSError:
            pass

    try:
        assert_no_growth(lambda: _run(loop, one_round()), rounds=5,
                         thresholds=_net_limits(5), name="tcp echo (%s)" % loop_name(loop))
    finally:
        server.close()
        _run(loop, server.wait_closed())


class _DgramEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)


class _DgramClient(asyncio.DatagramProtocol):
    def __init__(self, loop):
        self.queue = asyncio.Queue()

    def datagram_received(self, data, addr):
        self.queue.put_nowait(data)

    def error_received(self, exc):
        self.queue.put_nowait(exc)


def test_no_leak_from_datagram_endpoints(loop):
    async def one_round():
        srv, _ = await loop.create_datagram_endpoint(
            _DgramEcho, local_addr=("127.0.0.1", 0))
        addr = srv.get_extra_info("sockname")
        cli, proto = await loop.create_datagram_endpoint(
            lambda: _DgramClient(loop), remote_addr=addr)
        for i in range(OPS):
            cli.sendto(b"dgram %d" % i)
            assert await proto.queue.get() == b"dgram %d" % i
        cli.close()
        srv.close()
        await asyncio.sleep(0)

    assert_no_growth(lambda: _run(loop, one_round()), rounds=5,
                     thresholds=_net_limits(5), name="datagram (%s)" % loop_name(loop))


def test_no_leak_from_pipe_transports(loop):
    async def one_round():
        for i in range(OPS // 2):
            rfd, wfd = os.pipe()
            reader = asyncio.StreamReader()
            rtrans, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(rfd, "rb", 0))
            wtrans, wproto = await loop.connect_write_pipe(
                asyncio.BaseProtocol, os.fdopen(wfd, "wb", 0))
            wtrans.write(b"pipe %d" % i)
            wtrans.writelines([b" and more"])
            wtrans.close()
            assert await reader.read() == b"pipe %d and more" % i
            rtrans.close()
            await asyncio.sleep(0)

    assert_no_growth(lambda: _run(loop, one_round()), rounds=5,
                     thresholds=_net_limits(5), name="pipes (%s)" % loop_name(loop))


@pytest.mark.skipif(not os.path.exists("/bin/cat"), reason="needs /bin/cat")
def test_no_leak_from_subprocesses(loop):
    import subprocess

    async def one_round():
        for i in range(3):
            p = await asyncio.create_subprocess_exec(
                "/bin/cat", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            out, _ = await p.communicate(b"sub %d" % i)
            assert out == b"sub %d" % i and p.returncode == 0
        for i in range(2):
            p = await asyncio.create_subprocess_exec(
                "/bin/sh", "-c", "exit 3", stdout=subprocess.DEVNULL)
            assert await p.wait() == 3

    # a process each: 5 operations per round, so a leak of one reference per
    # process grows a window of 5 rounds by >= 25; child-watcher threads that
    # are still ending at a count only make single windows noisy
    asyncio.set_event_loop(loop)  # the 3.10/3.11 child watcher wants one
    try:
        assert_no_growth(lambda: _run(loop, one_round()), rounds=5,
                         thresholds={"refs": 20, "objects": 20},
                         name="subprocess (%s)" % loop_name(loop))
    finally:
        asyncio.set_event_loop(None)
