"""Low-level socket operations: loop.sock_recv, sock_recv_into, sock_recvfrom,
sock_recvfrom_into, sock_sendall, sock_sendto, sock_connect, sock_accept,
sock_sendfile.

Every scenario runs on asyncio's own loop and on boucle's (the ``loop``
fixture), so what is asserted is asyncio's behaviour."""
import asyncio
import errno
import gc
import inspect
import io
import os
import socket
import ssl
import struct
import sys
import tempfile

import pytest

PY311 = sys.version_info >= (3, 11)
HAS_IPV6 = socket.has_ipv6



def needs_recvfrom(test):
    """asyncio has sock_recvfrom/_into and sock_sendto from 3.11 on (boucle
    offers them on 3.10 too): skip where the loop lacks them."""
    import functools

    @functools.wraps(test)
    def wrapper(loop, *args, **kw):
        if not hasattr(loop, "sock_recvfrom"):
            pytest.skip("this asyncio has no sock_recvfrom/sock_sendto (3.11+)")
        return test(loop, *args, **kw)
    return wrapper


def run(loop, coro, timeout=30):
    """Run coro on loop, failing instead of hanging."""
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


def pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


def tcp_listener(family=socket.AF_INET, host="127.0.0.1"):
    srv = socket.socket(family, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, 0))
    srv.listen(128)
    srv.setblocking(False)
    return srv


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


async def tcp_pair(loop):
    srv = tcp_listener()
    try:
        cli = socket.socket()
        cli.setblocking(False)
        acc = asyncio.ensure_future(loop.sock_accept(srv))
        await loop.sock_connect(cli, srv.getsockname())
        conn, _ = await acc
        return cli, conn
    finally:
        srv.close()


async def drain(loop, sock, n):
    got = bytearray()
    while len(got) < n:
        data = await loop.sock_recv(sock, 65536)
        if not data:
            break
        got += data
    return bytes(got)


# ---------------------------------------------------------------- shape ---

def test_methods_are_coroutine_functions(loop):
    names = ["sock_recv", "sock_recv_into", "sock_sendall", "sock_connect",
             "sock_accept", "sock_sendfile"]
    if PY311 or hasattr(loop, "sock_recvfrom"):
        names += ["sock_recvfrom", "sock_recvfrom_into", "sock_sendto"]
    for name in names:
        assert inspect.iscoroutinefunction(getattr(loop, name)), name
        assert asyncio.iscoroutinefunction(getattr(loop, name)), name


def test_ops_work_as_tasks(loop):
    a, b = pair()

    async def main():
        t = loop.create_task(loop.sock_recv(a, 10))
        assert asyncio.iscoroutine(t.get_coro())
        await asyncio.sleep(0)
        await loop.create_task(loop.sock_sendall(b, b"task"))
        return await t

    with a, b:
        assert run(loop, main()) == b"task"


@pytest.mark.skipif(sys.version_info < (3, 11), reason="TaskGroup is 3.11+")
def test_ops_in_taskgroup(loop):
    a, b = pair()

    async def main():
        async with asyncio.TaskGroup() as tg:
            r = tg.create_task(loop.sock_recv(a, 10))
            tg.create_task(loop.sock_sendall(b, b"tg"))
        return r.result()

    with a, b:
        assert run(loop, main()) == b"tg"


# ------------------------------------------------------ recv / sendall ---

def test_recv_ready_and_waiting(loop):
    a, b = pair()

    async def main():
        b.send(b"already")
        first = await loop.sock_recv(a, 100)          # data is there
        t = asyncio.ensure_future(loop.sock_recv(a, 100))
        for _ in range(3):
            await asyncio.sleep(0)
        assert not t.done()                           # waits for data
        await loop.sock_sendall(b, b"later")
        return first, await t

    with a, b:
        assert run(loop, main()) == (b"already", b"later")


def test_recv_size_limits_and_zero(loop):
    a, b = pair()

    async def main():
        await loop.sock_sendall(b, b"0123456789")
        x = await loop.sock_recv(a, 3)
        zero = await loop.sock_recv(a, 0)
        rest = await loop.sock_recv(a, 1 << 20)       # bigger than any scratch buffer
        return x, zero, rest

    with a, b:
        assert run(loop, main()) == (b"012", b"", b"3456789")


def test_recv_eof(loop):
    a, b = pair()

    async def main():
        t = asyncio.ensure_future(loop.sock_recv(a, 100))
        await asyncio.sleep(0)
        b.close()
        return await t, await loop.sock_recv(a, 100)

    with a:
        assert run(loop, main()) == (b"", b"")


def test_recv_into_buffers(loop):
    a, b = pair()

    async def main():
        ba = bytearray(8)
        await loop.sock_sendall(b, b"abcdefghijkl")
        n1 = await loop.sock_recv_into(a, ba)
        big = bytearray(100)
        with memoryview(big) as mv:
            t = asyncio.ensure_future(loop.sock_recv_into(a, mv[10:20]))
            n2 = await t                               # 4 bytes are left
            t = asyncio.ensure_future(loop.sock_recv_into(a, mv[20:22]))
            await asyncio.sleep(0)
            await loop.sock_sendall(b, b"XYZ")
            n3 = await t
        # the memoryview could be released: no buffer export was left behind
        return n1, bytes(ba), n2, n3, bytes(big[10:14]), bytes(big[20:22])

    with a, b:
        assert run(loop, main()) == (8, b"abcdefgh", 4, 2, b"ijkl", b"XY")


def test_recv_into_empty_buffer(loop):
    a, b = pair()

    async def main():
        b.send(b"x")
        return await loop.sock_recv_into(a, bytearray())

    with a, b:
        assert run(loop, main()) == 0


def test_sendall_returns_none_and_accepts_buffers(loop):
    a, b = pair()

    async def main():
        r1 = await loop.sock_sendall(b, b"by")
        r2 = await loop.sock_sendall(b, bytearray(b"te"))
        r3 = await loop.sock_sendall(b, memoryview(b"--array--")[2:7])
        r4 = await loop.sock_sendall(b, b"")
        return (r1, r2, r3, r4), await drain(loop, a, 9)

    with a, b:
        assert run(loop, main()) == ((None,) * 4, b"byte" + b"array")


@pytest.mark.parametrize("kind", ["socketpair", "tcp"])
def test_large_sendall_slow_reader(loop, kind):
    payload = bytes(range(256)) * (4 * 4096)   # 4 MiB, far more than the socket buffers

    async def main():
        if kind == "tcp":
            a, b = await tcp_pair(loop)
        else:
            a, b = pair()
        with a, b:
            sender = asyncio.ensure_future(loop.sock_sendall(b, payload))
            got = bytearray()
            while len(got) < len(payload):
                chunk = await loop.sock_recv(a, 3000)   # small reads: many partial sends
                assert chunk
                got += chunk
                if len(got) % 7 == 0:
                    await asyncio.sleep(0)
            assert await sender is None
            return bytes(got)

    assert run(loop, main(), 60) == payload


def test_concurrent_recv_and_sendall_on_one_socket(loop):
    # a reader and a writer pending on the same fd at once
    payload = b"z" * (2 << 20)

    async def main():
        a, b = pair()
        with a, b:
            r = asyncio.ensure_future(loop.sock_recv(b, 100))
            w = asyncio.ensure_future(loop.sock_sendall(b, payload))
            await asyncio.sleep(0)
            assert not r.done() and not w.done()
            await loop.sock_sendall(a, b"ping")
            got = await drain(loop, a, len(payload))
            return await r, await w, len(got)

    assert run(loop, main()) == (b"ping", None, len(payload))


# -------------------------------------------------------- cancellation ---

def test_cancel_recv_then_reuse(loop):
    a, b = pair()

    async def main():
        t = asyncio.ensure_future(loop.sock_recv(a, 100))
        await asyncio.sleep(0)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        await asyncio.sleep(0)
        # the reader is gone: nothing to remove
        assert loop.remove_reader(a.fileno()) is False
        await loop.sock_sendall(b, b"after")
        return await loop.sock_recv(a, 100)

    with a, b:
        assert run(loop, main()) == b"after"


def test_cancel_recv_into_loses_no_data(loop):
    a, b = pair()

    async def main():
        buf = bytearray(10)
        t = asyncio.ensure_future(loop.sock_recv_into(a, buf))
        await asyncio.sleep(0)
        t.cancel()
        b.send(b"kept")                  # arrives while the cancellation is pending
        with pytest.raises(asyncio.CancelledError):
            await t
        return bytes(buf), await loop.sock_recv(a, 100)

    with a, b:
        assert run(loop, main()) == (bytes(10), b"kept")


def test_cancel_sendall_then_reuse(loop):
    async def main():
        a, b = await tcp_pair(loop)
        with a, b:
            a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            # fill the send buffer
            try:
                while True:
                    a.send(b" " * 65536)
            except BlockingIOError:
                pass
            t = asyncio.ensure_future(loop.sock_sendall(a, b"hello" * 50000))
            await asyncio.sleep(0)
            t.cancel()
            with pytest.raises(asyncio.CancelledError):
                await t
            await asyncio.sleep(0)
            assert loop.remove_writer(a.fileno()) is False
            reader = asyncio.ensure_future(drain(loop, b, 1 << 40))
            await loop.sock_sendall(a, b"world")
            a.shutdown(socket.SHUT_WR)
            data = await reader
            return data.endswith(b"world")

    assert run(loop, main())


def test_cancel_accept_then_reuse(loop):
    srv = tcp_listener()

    async def main():
        t = asyncio.ensure_future(loop.sock_accept(srv))
        await asyncio.sleep(0)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        cli = socket.socket()
        cli.setblocking(False)
        with cli:
            acc = asyncio.ensure_future(loop.sock_accept(srv))
            await loop.sock_connect(cli, srv.getsockname())
            conn, addr = await acc
            conn.close()
            return addr == cli.getsockname()

    with srv:
        assert run(loop, main())


def test_wait_for_timeout_on_accept(loop):
    srv = tcp_listener()

    async def main():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(loop.sock_accept(srv), 0.05)
        await asyncio.sleep(0)
        return loop.remove_reader(srv.fileno())

    with srv:
        assert run(loop, main()) is False


def test_two_pending_recvs_asyncio_semantics(loop):
    # asyncio: the second sock_recv replaces the first one's reader; the first
    # stays pending until cancelled, and cancelling it does not disturb the
    # reader of a later operation.
    a, b = pair()

    async def main():
        t1 = asyncio.ensure_future(loop.sock_recv(a, 100))
        await asyncio.sleep(0)
        t2 = asyncio.ensure_future(loop.sock_recv(a, 100))
        await asyncio.sleep(0)
        await loop.sock_sendall(b, b"one")
        r2 = await t2
        for _ in range(5):
            await asyncio.sleep(0)
        assert not t1.done()
        t3 = asyncio.ensure_future(loop.sock_recv(a, 100))
        await asyncio.sleep(0)
        t1.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t1
        await asyncio.sleep(0)
        await loop.sock_sendall(b, b"three")
        return r2, await t3

    with a, b:
        assert run(loop, main()) == (b"one", b"three")


def test_closing_coroutine_removes_reader(boucle_loop):
    # Documented deviation: asyncio leaves the reader of a closed (not
    # cancelled) sock_recv coroutine registered, and its callback later
    # consumes data that nobody receives. boucle stops waiting instead, so
    # no byte is lost.
    loop = boucle_loop
    a, b = pair()

    async def main():
        coro = loop.sock_recv(a, 10)
        fut = coro.send(None)            # runs until it waits for the fd
        assert isinstance(fut, asyncio.Future)
        coro.close()
        await asyncio.sleep(0)
        assert loop.remove_reader(a.fileno()) is False
        b.send(b"kept")
        await asyncio.sleep(0)
        return await loop.sock_recv(a, 10)

    with a, b:
        assert run(loop, main()) == b"kept"


# -------------------------------------------------------------- errors ---

def test_connection_refused(loop):
    port = free_port()

    async def main():
        s = socket.socket()
        s.setblocking(False)
        with s:
            with pytest.raises(ConnectionRefusedError) as ei:
                await loop.sock_connect(s, ("127.0.0.1", port))
            return ei.value

    exc = run(loop, main())
    assert exc.errno == errno.ECONNREFUSED
    assert str(exc) == "[Errno %d] Connect call failed ('127.0.0.1', %d)" % (
        errno.ECONNREFUSED, port)


def test_connection_reset(loop):
    async def main():
        a, b = await tcp_pair(loop)
        with a:
            t = asyncio.ensure_future(loop.sock_recv(a, 100))
            await asyncio.sleep(0)
            b.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            b.close()                         # RST
            with pytest.raises(ConnectionResetError):
                await t

    run(loop, main())


def test_send_to_closed_peer(loop):
    async def main():
        a, b = await tcp_pair(loop)
        with a:
            b.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            b.close()
            await asyncio.sleep(0.01)
            with pytest.raises((BrokenPipeError, ConnectionResetError)):
                for _ in range(100):
                    await loop.sock_sendall(a, b"x" * 65536)

    run(loop, main())


def test_broken_pipe_while_waiting(loop):
    a, b = pair()

    async def main():
        t = asyncio.ensure_future(loop.sock_sendall(a, b"y" * (8 << 20)))
        await asyncio.sleep(0)
        assert not t.done()
        b.close()
        with pytest.raises(BrokenPipeError):
            await t

    with a:
        run(loop, main())


def test_closed_socket(loop):
    a, b = pair()
    a.close()

    async def main():
        with pytest.raises(OSError) as ei:
            await loop.sock_recv(a, 10)
        assert ei.value.errno == errno.EBADF
        with pytest.raises(OSError) as ei:
            await loop.sock_sendall(a, b"x")
        assert ei.value.errno == errno.EBADF

    with b:
        run(loop, main())


def test_bad_arguments(loop):
    a, b = pair()

    async def main():
        errors = []
        for coro in [loop.sock_recv(a, -1), loop.sock_recv(a, "x"),
                     loop.sock_recv(a, 1.5), loop.sock_recv_into(a, b"readonly"),
                     loop.sock_recv_into(a, "str"), loop.sock_sendall(b, "str"),
                     loop.sock_sendall(b, 42), loop.sock_recv(a, 1 << 80),
                     loop.sock_accept(a)]:
            try:
                await coro
            except Exception as exc:
                errors.append(type(exc))
            else:
                errors.append(None)
        return errors

    with a, b:
        assert run(loop, main()) == [ValueError, TypeError, TypeError, TypeError,
                                     TypeError, TypeError, TypeError, OverflowError,
                                     OSError]


def test_ssl_socket_rejected(loop):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    s = ctx.wrap_socket(socket.socket(), server_hostname="x",
                        do_handshake_on_connect=False)

    async def main():
        msgs = []
        for coro in [loop.sock_recv(s, 1), loop.sock_recv_into(s, bytearray(1)),
                     loop.sock_sendall(s, b"x"), loop.sock_connect(s, ("127.0.0.1", 1)),
                     loop.sock_accept(s)]:
            with pytest.raises(TypeError) as ei:
                await coro
            msgs.append(str(ei.value))
        return msgs

    with s:
        assert run(loop, main()) == ["Socket cannot be of type SSLSocket"] * 5


def test_blocking_socket_rejected_in_debug_mode(loop):
    loop.set_debug(True)
    a, b = pair()
    a.setblocking(True)

    async def main():
        coros = [loop.sock_recv(a, 1), loop.sock_recv_into(a, bytearray(1)),
                 loop.sock_sendall(a, b"x"), loop.sock_connect(a, "x"),
                 loop.sock_accept(a)]
        if hasattr(loop, "sock_recvfrom"):
            coros += [loop.sock_recvfrom(a, 1), loop.sock_recvfrom_into(a, bytearray(1)),
                      loop.sock_sendto(a, b"x", None)]
        msgs = []
        for coro in coros:
            with pytest.raises(ValueError) as ei:
                await coro
            msgs.append(str(ei.value))
        return msgs

    with a, b:
        msgs = run(loop, main())
    assert set(msgs) == {"the socket must be non-blocking"}


def test_socket_with_timeout_in_debug_mode(loop):
    loop.set_debug(True)
    a, b = pair()
    a.settimeout(5)

    async def main():
        with pytest.raises(ValueError, match="non-blocking"):
            await loop.sock_recv(a, 1)

    with a, b:
        run(loop, main())


def test_socket_subclass_methods_are_called(loop):
    # asyncio calls the socket's own methods: overrides are honoured
    calls = []

    class MySock(socket.socket):
        def recv(self, n, *args):
            calls.append(("recv", n))
            return super().recv(n, *args)

        def send(self, data, *args):
            calls.append(("send", len(data)))
            return super().send(data, *args)

    a0, b0 = socket.socketpair()
    a = MySock(fileno=a0.detach())
    b = MySock(fileno=b0.detach())
    a.setblocking(False)
    b.setblocking(False)

    async def main():
        t = asyncio.ensure_future(loop.sock_recv(a, 5))
        await asyncio.sleep(0)
        await loop.sock_sendall(b, b"hello")
        return await t

    with a, b:
        assert run(loop, main()) == b"hello"
    assert calls == [("recv", 5), ("send", 5), ("recv", 5)]


def test_socket_subclass_partial_sends(loop):
    # the socket's own send() is used for every chunk of a partial sendall
    sizes = []

    class MySock(socket.socket):
        def send(self, data, *args):
            sizes.append(len(data))
            return super().send(data, *args)

    a0, b0 = socket.socketpair()
    a = socket.socket(fileno=a0.detach())
    b = MySock(fileno=b0.detach())
    a.setblocking(False)
    b.setblocking(False)
    payload = os.urandom(3 << 20)

    async def main():
        w = asyncio.ensure_future(loop.sock_sendall(b, payload))
        got = await drain(loop, a, len(payload))
        return await w, got

    with a, b:
        assert run(loop, main()) == (None, payload)
    # each call is handed what is left: the whole payload first, then less
    assert sizes[0] == len(payload) and len(sizes) > 1
    assert all(x > y for x, y in zip(sizes, sizes[1:]))


# ----------------------------------------------------- connect / accept ---

def test_connect_hostname_and_accept(loop):
    srv = tcp_listener()

    async def main():
        cli = socket.socket()
        cli.setblocking(False)
        with cli:
            acc = asyncio.ensure_future(loop.sock_accept(srv))
            r = await loop.sock_connect(cli, ("localhost", srv.getsockname()[1]))
            conn, addr = await acc
            with conn:
                assert conn.gettimeout() == 0
                assert addr == cli.getsockname()
                await loop.sock_sendall(conn, b"hi")
                return r, await loop.sock_recv(cli, 10)

    with srv:
        assert run(loop, main()) == (None, b"hi")


@pytest.mark.skipif(not HAS_IPV6, reason="no IPv6")
def test_connect_ipv6(loop):
    try:
        srv = tcp_listener(socket.AF_INET6, "::1")
    except OSError:
        pytest.skip("no IPv6 loopback")

    async def main():
        cli = socket.socket(socket.AF_INET6)
        cli.setblocking(False)
        with cli:
            acc = asyncio.ensure_future(loop.sock_accept(srv))
            await loop.sock_connect(cli, ("::1", srv.getsockname()[1]))
            conn, addr = await acc
            conn.close()
            return addr[:2] == cli.getsockname()[:2]

    with srv:
        assert run(loop, main())


def test_connect_unresolvable_host(loop):
    async def main():
        s = socket.socket()
        s.setblocking(False)
        with s:
            with pytest.raises(socket.gaierror):
                await loop.sock_connect(s, ("nonexistent.invalid", 80))

    run(loop, main())


def test_accept_many(loop):
    srv = tcp_listener()
    N = 60

    async def main():
        clients = [socket.socket() for _ in range(N)]
        for c in clients:
            c.setblocking(False)

        async def accept_all():
            got = []
            for _ in range(N):
                got.append(await loop.sock_accept(srv))
            return got

        acc = asyncio.ensure_future(accept_all())
        await asyncio.gather(*[loop.sock_connect(c, srv.getsockname()) for c in clients])
        accepted = await acc
        names = sorted(c.getsockname() for c in clients)
        got = sorted(addr for _, addr in accepted)
        blocking = {conn.gettimeout() for conn, _ in accepted}
        # each accepted connection talks to its own client
        for conn, addr in accepted:
            await loop.sock_sendall(conn, repr(addr).encode())
        ok = True
        for c in clients:
            ok &= (await loop.sock_recv(c, 100)) == repr(c.getsockname()).encode()
        for conn, _ in accepted:
            conn.close()
        for c in clients:
            c.close()
        return names == got, blocking, ok

    with srv:
        assert run(loop, main()) == (True, {0.0}, True)


def test_unix_stream(loop):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "sock")
        srv = socket.socket(socket.AF_UNIX)
        srv.bind(path)
        srv.listen(5)
        srv.setblocking(False)

        async def main():
            cli = socket.socket(socket.AF_UNIX)
            cli.setblocking(False)
            with cli:
                acc = asyncio.ensure_future(loop.sock_accept(srv))
                await loop.sock_connect(cli, path)
                conn, addr = await acc
                with conn:
                    reader = asyncio.ensure_future(drain(loop, conn, 1 << 30))
                    await loop.sock_sendall(cli, b"unix" * 100000)
                    cli.shutdown(socket.SHUT_WR)
                    data = await reader
                    buf = bytearray(4)
                    await loop.sock_sendall(conn, b"back")
                    n = await loop.sock_recv_into(cli, buf)
                    return addr, len(data), n, bytes(buf)

        with srv:
            assert run(loop, main()) == ("", 400000, 4, b"back")


def test_unix_connect_missing_path(loop):
    async def main():
        s = socket.socket(socket.AF_UNIX)
        s.setblocking(False)
        with s:
            with pytest.raises(FileNotFoundError):
                await loop.sock_connect(s, "/nonexistent/boucle-test.sock")

    run(loop, main())


# ---------------------------------------------------------------- UDP ---

@needs_recvfrom
def test_udp_sendto_recvfrom(loop):
    r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for x in (r, s):
        x.bind(("127.0.0.1", 0))
        x.setblocking(False)

    async def main():
        t = asyncio.ensure_future(loop.sock_recvfrom(r, 100))
        await asyncio.sleep(0)
        assert not t.done()
        n = await loop.sock_sendto(s, b"datagram", r.getsockname())
        data, addr = await t
        # the next one is waiting already
        await loop.sock_sendto(s, b"x" * 50, r.getsockname())
        trunc = await loop.sock_recvfrom(r, 10)
        return n, data, addr, trunc

    with r, s:
        n, data, addr, trunc = run(loop, main())
        assert (n, data, addr) == (8, b"datagram", s.getsockname())
        assert trunc == (b"x" * 10, s.getsockname())


@needs_recvfrom
def test_udp_recvfrom_into(loop):
    r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for x in (r, s):
        x.bind(("127.0.0.1", 0))
        x.setblocking(False)

    async def main():
        buf = bytearray(16)
        t = asyncio.ensure_future(loop.sock_recvfrom_into(r, buf))
        await asyncio.sleep(0)
        await loop.sock_sendto(s, b"0123456789", r.getsockname())
        first = await t
        await loop.sock_sendto(s, b"abcdefghij", r.getsockname())
        second = await loop.sock_recvfrom_into(r, buf, 4)
        return first, second, bytes(buf)

    with r, s:
        first, second, buf = run(loop, main())
        assert first == (10, s.getsockname())
        assert second == (4, s.getsockname())
        assert buf == b"abcd456789" + bytes(6)


@needs_recvfrom
def test_udp_bad_arguments(loop):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)

    async def main():
        out = []
        for coro in [loop.sock_sendto(s, b"x", "not an address"),
                     loop.sock_sendto(s, "str", ("127.0.0.1", 9)),
                     loop.sock_recvfrom(s, -1),
                     loop.sock_recvfrom_into(s, bytearray(4), 10)]:
            try:
                await coro
            except Exception as exc:
                out.append(type(exc))
        return out

    with s:
        assert run(loop, main()) == [TypeError, TypeError, ValueError, ValueError]


@needs_recvfrom
def test_unix_datagram_addresses(loop):
    with tempfile.TemporaryDirectory() as d:
        pa, pb = os.path.join(d, "a"), os.path.join(d, "b")
        a = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        b = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        a.bind(pa)
        b.bind(pb)
        a.setblocking(False)
        b.setblocking(False)

        async def main():
            t = asyncio.ensure_future(loop.sock_recvfrom(a, 100))
            await asyncio.sleep(0)
            await loop.sock_sendto(b, b"dgram", pa)
            return await t

        with a, b:
            assert run(loop, main()) == (b"dgram", pb)


# ------------------------------------------------------------ sendfile ---

def _sendfile_case(loop, data, **kw):
    async def main():
        a, b = await tcp_pair(loop)
        with a, b, tempfile.TemporaryFile() as f:
            f.write(data)
            f.seek(0)
            reader = asyncio.ensure_future(drain(loop, b, 1 << 40))
            sent = await loop.sock_sendfile(a, f, **kw)
            pos = f.tell()
            a.shutdown(socket.SHUT_WR)
            return sent, pos, await reader

    return run(loop, main())


def test_sendfile_whole_file(loop):
    data = os.urandom(3 << 20)
    assert _sendfile_case(loop, data) == (len(data), len(data), data)


def test_sendfile_offset_count(loop):
    data = bytes(range(256)) * 1000
    assert _sendfile_case(loop, data, offset=1000, count=5000) == (
        5000, 6000, data[1000:6000])


def test_sendfile_empty_file(loop):
    assert _sendfile_case(loop, b"") == (0, 0, b"")


def test_sendfile_not_a_file(loop):
    data = b"bytesio" * 1000

    async def main():
        a, b = await tcp_pair(loop)
        with a, b:
            with pytest.raises(asyncio.SendfileNotAvailableError):
                await loop.sock_sendfile(a, io.BytesIO(data), fallback=False)
            reader = asyncio.ensure_future(drain(loop, b, len(data)))
            sent = await loop.sock_sendfile(a, io.BytesIO(data))   # fallback
            return sent, await reader

    assert run(loop, main()) == (len(data), data)


def test_sendfile_bad_arguments(loop):
    async def main():
        out = []
        a, b = await tcp_pair(loop)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.setblocking(False)
        with a, b, u, tempfile.TemporaryFile() as f, \
                tempfile.TemporaryFile("w+") as t:
            for coro in [loop.sock_sendfile(u, f),
                         loop.sock_sendfile(a, t),
                         loop.sock_sendfile(a, f, offset=-1),
                         loop.sock_sendfile(a, f, count=0),
                         loop.sock_sendfile(a, f, offset="x")]:
                try:
                    await coro
                except Exception as exc:
                    out.append((type(exc), str(exc)))
        return out

    assert run(loop, main()) == [
        (ValueError, "only SOCK_STREAM type sockets are supported"),
        (ValueError, "file should be opened in binary mode"),
        (ValueError, "offset must be a non-negative integer (got -1)"),
        (ValueError, "count must be a positive integer (got 0)"),
        (TypeError, "offset must be a non-negative integer (got 'x')"),
    ]


def test_sendfile_fallback_false_on_closed_peer_uses_native(loop):
    # a regular file goes through os.sendfile: a peer that resets mid-way
    # gives a ConnectionError (not SendfileNotAvailableError) once data went
    data = os.urandom(16 << 20)

    async def main():
        a, b = await tcp_pair(loop)
        with a, tempfile.TemporaryFile() as f:
            f.write(data)
            f.seek(0)
            t = asyncio.ensure_future(loop.sock_sendfile(a, f, fallback=False))
            await asyncio.sleep(0.01)
            b.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            b.close()
            with pytest.raises(ConnectionError):
                await t
            return 0 < f.tell() < len(data)

    assert run(loop, main())


# ---------------------------------------------------------------- misc ---

def test_loop_closed_while_waiting_is_clean(loop_factory):
    lp = loop_factory()
    a, b = pair()
    coro = lp.sock_recv(a, 10)
    task = lp.create_task(coro)
    lp.run_until_complete(asyncio.sleep(0))
    assert not task.done()
    lp.close()
    del task, coro
    gc.collect()
    a.close()
    b.close()


def test_no_reference_leak(loop):
    a, b = pair()

    async def main():
        for _ in range(200):
            t = asyncio.ensure_future(loop.sock_recv(a, 10))
            await asyncio.sleep(0)
            await loop.sock_sendall(b, b"x")
            await t
            t = asyncio.ensure_future(loop.sock_recv(a, 10))
            await asyncio.sleep(0)
            t.cancel()
            try:
                await t
            except asyncio.CancelledError:
                pass

    with a, b:
        run(loop, main())        # warm-up (freelists, caches)
        gc.collect()
        before = (sys.getrefcount(a), sys.getrefcount(b))
        run(loop, main())
        gc.collect()
        assert (sys.getrefcount(a), sys.getrefcount(b)) == before


def test_fd_used_by_transport(loop):
    # asyncio refuses sock_* operations that would wait on a transport's fd
    async def main():
        a, b = pair()
        try:
            tr, _ = await loop.create_connection(asyncio.Protocol, sock=a)
        except NotImplementedError:
            a.close()
            b.close()
            pytest.skip("no socket transports on this loop yet")
        try:
            with pytest.raises(RuntimeError, match="is used by transport"):
                await loop.sock_recv(a, 10)
        finally:
            tr.close()
            b.close()
        await asyncio.sleep(0)

    run(loop, main())
