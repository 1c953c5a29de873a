"""boucle.aiosocket: a socket whose I/O methods are coroutines, over the
running loop's sock_* methods. Every test runs on asyncio and on boucle."""
import asyncio
import errno
import gc
import os
import socket
import warnings

import pytest

from conftest import boucle, BOUCLE_SKIP_REASON

pytestmark = pytest.mark.skipif(boucle is None, reason=str(BOUCLE_SKIP_REASON))


def aiosocket(*args, **kwargs):
    return boucle.aiosocket(*args, **kwargs)


def open_fds():
    return set(os.listdir("/proc/self/fd"))


def registered_fds(loop):
    """fds with a reader or writer registered on the loop (besides its own)."""
    if hasattr(loop, "_selector"):
        ssock = loop._ssock.fileno()
        return {fd for fd in loop._selector.get_map() if fd != ssock}
    return None


def assert_no_registrations(loop, fd):
    assert loop.remove_reader(fd) is False
    assert loop.remove_writer(fd) is False


async def _listener(family=socket.AF_INET):
    srv = aiosocket(family)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    return srv


def test_echo_server_and_client(loop):
    payload = os.urandom(1 << 20)

    async def serve(srv):
        conn, addr = await srv.accept()
        assert isinstance(conn, boucle.aiosocket)
        assert conn.getpeername() == addr
        assert conn.family == socket.AF_INET and conn.type == socket.SOCK_STREAM
        with conn:
            while True:
                data = await conn.recv(65536)
                if not data:
                    break
                await conn.sendall(data)
        assert conn.fileno() == -1

    async def main():
        async with await _listener() as srv:
            server = asyncio.ensure_future(serve(srv))
            async with aiosocket() as cli:
                assert cli.family == socket.AF_INET
                await cli.connect(srv.getsockname())
                assert cli.getpeername() == srv.getsockname()
                sender = asyncio.ensure_future(cli.sendall(payload))
                got = bytearray()
                while len(got) < len(payload):
                    data = await cli.recv(65536)
                    assert data
                    got += data
                assert await sender is None
                cli.shutdown(socket.SHUT_WR)
                assert await cli.recv(10) == b""
                assert bytes(got) == payload
            await server
            fd = srv.fileno()
        assert srv.fileno() == -1
        assert_no_registrations(loop, fd)

    loop.run_until_complete(main())


def test_send_and_recv_into(loop):
    async def main():
        a, b = socket.socketpair()
        with aiosocket(fileno=a.detach()) as x, aiosocket(fileno=b.detach()) as y:
            assert x.family == socket.AF_UNIX   # taken from the fd
            assert await x.send(b"hello") == 5
            buf = bytearray(10)
            assert await y.recv_into(buf) == 5
            assert buf[:5] == b"hello"
            # a send on a full buffer waits for writability, then sends some
            x.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            total = 0
            while True:
                try:
                    total += await asyncio.wait_for(x.send(b"z" * 65536), 0.2)
                except asyncio.TimeoutError:
                    break
            assert total > 0
            assert_no_registrations(loop, x.fileno())
            sender = asyncio.ensure_future(x.send(b"y" * 65536))
            await asyncio.sleep(0.01)
            assert not sender.done()
            received = 0
            while not sender.done():
                received += len(await y.recv(1 << 20))
            n = await sender
            assert 0 < n <= 65536
            assert_no_registrations(loop, x.fileno())

    loop.run_until_complete(main())


def test_udp_sendto_recvfrom(loop):
    async def main():
        with aiosocket(socket.AF_INET, socket.SOCK_DGRAM) as a, \
                aiosocket(socket.AF_INET, socket.SOCK_DGRAM) as b:
            assert a.type == socket.SOCK_DGRAM
            a.bind(("127.0.0.1", 0))
            b.bind(("127.0.0.1", 0))
            pending = asyncio.ensure_future(a.recvfrom(100))
            await asyncio.sleep(0.01)
            assert not pending.done()
            assert await b.sendto(b"ping", a.getsockname()) == 4
            data, addr = await pending
            assert (data, addr) == (b"ping", b.getsockname())
            assert await a.sendto(b"pong", addr) == 4
            assert await b.recvfrom(2) == (b"po", a.getsockname())   # truncated

    loop.run_until_complete(main())


def test_context_managers_close(loop):
    async def main():
        with aiosocket() as s:
            assert s.fileno() >= 0
        assert s.fileno() == -1
        async with aiosocket() as s:
            assert s.fileno() >= 0
        assert s.fileno() == -1
        s.close()   # twice: nothing happens
        with pytest.raises(ZeroDivisionError):
            async with aiosocket() as s:
                1 / 0
        assert s.fileno() == -1

    loop.run_until_complete(main())


def test_use_after_close_is_ebadf(loop):
    async def main():
        ref = socket.socket()
        ref.close()
        with pytest.raises(OSError) as ref_exc:
            ref.getsockname()
        s = aiosocket()
        s.close()
        for coro in (s.recv(1), s.recv_into(bytearray(1)), s.recvfrom(1),
                     s.send(b"x"), s.sendall(b"x"), s.sendto(b"x", ("127.0.0.1", 9)),
                     s.connect(("127.0.0.1", 9)), s.accept()):
            with pytest.raises(OSError) as exc:
                await coro
            assert exc.value.errno == errno.EBADF
            assert type(exc.value) is type(ref_exc.value)
            assert str(exc.value) == str(ref_exc.value)
        for call in (lambda: s.bind(("127.0.0.1", 0)), s.listen, s.getsockname,
                     s.getpeername,
                     lambda: s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1),
                     lambda: s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)):
            with pytest.raises(OSError) as exc:
                call()
            assert exc.value.errno == errno.EBADF
        assert s.fileno() == -1

    loop.run_until_complete(main())


def test_close_wakes_pending_operations(loop):
    async def main():
        a, b = socket.socketpair()
        srv = await _listener()
        x = aiosocket(fileno=a.detach())
        fd = x.fileno()
        recv = asyncio.ensure_future(x.recv(10))
        accept = asyncio.ensure_future(srv.accept())
        await asyncio.sleep(0.01)
        assert not recv.done() and not accept.done()
        x.close()
        srv.close()
        for task in (recv, accept):
            with pytest.raises(OSError) as exc:
                await task
            assert exc.value.errno == errno.EBADF
        b.close()
        # nothing left on the loop for the old fd number, which a new
        # socket may get at once
        assert_no_registrations(loop, fd)
        c, d = socket.socketpair()
        with c, d:
            c.setblocking(False)
            d.send(b"hi")
            assert await loop.sock_recv(c, 10) == b"hi"

        # cancelled by someone else too: stays a cancellation
        y = aiosocket(socket.AF_INET, socket.SOCK_DGRAM)
        y.bind(("127.0.0.1", 0))
        t = asyncio.ensure_future(y.recvfrom(10))
        await asyncio.sleep(0.01)
        t.cancel()
        y.close()
        with pytest.raises(asyncio.CancelledError):
            await t

    loop.run_until_complete(main())


def test_connection_refused(loop):
    async def main():
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        address = probe.getsockname()
        probe.close()   # nobody listens there now
        ref = socket.socket()
        with ref, pytest.raises(OSError) as ref_exc:
            ref.connect(address)
        with aiosocket() as s:
            with pytest.raises(ConnectionRefusedError) as exc:
                await s.connect(address)
        assert type(exc.value) is type(ref_exc.value)
        assert exc.value.args == ref_exc.value.args
        assert str(exc.value) == str(ref_exc.value)

    loop.run_until_complete(main())


def _raised(fn, *args):
    try:
        fn(*args)
    except BaseException as exc:  # noqa: BLE001
        return exc
    raise AssertionError("%r did not raise" % (fn,))


def test_bad_arguments(loop):
    # the constructor is socket.socket's
    for args in [("x",), (socket.AF_INET, "y"), (socket.AF_INET, socket.SOCK_STREAM, "z"),
                 (socket.AF_INET, socket.SOCK_STREAM, 0, "w")]:
        ref = _raised(socket.socket, *args)
        exc = _raised(boucle.aiosocket, *args)
        assert type(exc) is type(ref) and str(exc) == str(ref)
    with pytest.raises(TypeError):
        boucle.aiosocket(bogus=1)

    async def main():
        a, b = socket.socketpair()
        with a, b, aiosocket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            a.setblocking(False)
            x = aiosocket(fileno=os.dup(a.fileno()))
            with x:
                for meth, arg, ref in [(x.sendall, "str", a.sendall),
                                       (x.send, "str", a.send),
                                       (x.recv, "1", a.recv),
                                       (x.recv, -1, a.recv),
                                       (x.recv_into, b"ro", a.recv_into)]:
                    expected = _raised(ref, arg)
                    with pytest.raises(type(expected)) as exc:
                        await meth(arg)
                    assert str(exc.value) == str(expected)
                with pytest.raises(TypeError):
                    x.bind()
            with pytest.raises(TypeError):
                await u.sendto("str", ("127.0.0.1", 9))
            with pytest.raises(TypeError):
                await u.recvfrom("1")

    loop.run_until_complete(main())


def test_wrap_existing_socket(loop):
    async def main():
        srv = await _listener()
        raw = socket.create_connection(srv.getsockname())
        raw.setblocking(True)
        peer = raw.getpeername()
        with aiosocket(socket.AF_INET, socket.SOCK_STREAM, 0, raw.detach()) as s:
            assert s.getpeername() == peer
            assert "aiosocket" in repr(s)
            conn, _ = await srv.accept()
            with conn:
                await conn.sendall(b"abc")
                assert await s.recv(10) == b"abc"       # non-blocking now
                fut = asyncio.ensure_future(s.recv(10))
                await asyncio.sleep(0.01)
                assert not fut.done()
                await conn.send(b"d")
                assert await fut == b"d"
        srv.close()

    loop.run_until_complete(main())


def test_no_fd_or_reader_leaks(loop):
    async def round_trip(srv):
        accept = asyncio.ensure_future(srv.accept())
        async with aiosocket() as cli:
            await cli.connect(srv.getsockname())
            conn, _ = await accept
            with conn:
                reader = asyncio.ensure_future(conn.recv(10))
                await asyncio.sleep(0)
                await cli.sendall(b"x")
                assert await reader == b"x"
                # interrupted waits leave nothing behind either
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(cli.recv(1), 0.001)
                closed_while_waiting = asyncio.ensure_future(conn.recv(1))
                await asyncio.sleep(0)
            with pytest.raises(OSError):
                await closed_while_waiting

    async def main():
        srv = await _listener()
        await round_trip(srv)       # warm-up (executor threads, caches...)
        before = open_fds()
        regs = registered_fds(loop)
        for _ in range(20):
            await round_trip(srv)
        srv.close()
        await asyncio.sleep(0)
        gc.collect()
        after = open_fds()
        assert after - before == set()
        if regs is not None:
            assert registered_fds(loop) == regs == set()
        for fd in range(3, 3 + len(before) + 10):
            if str(fd) not in after:    # only the numbers our sockets had
                assert_no_registrations(loop, fd)

    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        loop.run_until_complete(main())
