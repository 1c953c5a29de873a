"""Unix stream sockets: loop.create_unix_connection, loop.create_unix_server,
asyncio.open_unix_connection / start_unix_server, connect_accepted_socket
with AF_UNIX sockets.

Every scenario runs on asyncio's own loop and on boucle's (the ``loop``
fixture), so what is asserted is asyncio's behaviour."""
import asyncio
import errno
import inspect
import logging
import os
import pathlib
import socket
import sys
import uuid

import pytest

PY311 = sys.version_info >= (3, 11)   # ssl_shutdown_timeout
PY313 = sys.version_info >= (3, 13)   # cleanup_socket


def run(loop, coro, timeout=30):
    """Run coro on loop, failing instead of hanging."""
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


async def upper_handler(reader, writer):
    while True:
        line = await reader.readline()
        if not line:
            break
        writer.write(line.upper())
        await writer.drain()
    writer.close()


async def echo_once(path):
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(b"hello\n")
    line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return line


@pytest.fixture
def sock_path(tmp_path):
    return str(tmp_path / "s.sock")


# ---- asyncio streams over Unix sockets ----------------------------------------


def test_streams_echo(loop, sock_path):
    async def main():
        server = await asyncio.start_unix_server(upper_handler, sock_path)
        assert server.is_serving()
        [lsock] = server.sockets
        assert lsock.family == socket.AF_UNIX and lsock.getsockname() == sock_path
        reader, writer = await asyncio.open_unix_connection(sock_path)
        assert writer.get_extra_info("peername") == sock_path
        assert writer.get_extra_info("socket").family == socket.AF_UNIX
        for i in range(3):
            writer.write(b"line %d\n" % i)
        got = [await reader.readline() for _ in range(3)]
        writer.write(b"x" * 60000 + b"\n")          # more than one read
        big = await reader.readline()
        writer.write_eof()
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return got, big

    got, big = run(loop, main())
    assert got == [b"LINE 0\n", b"LINE 1\n", b"LINE 2\n"]
    assert big == b"X" * 60000 + b"\n"


def test_path_like_and_bytes_paths(loop, tmp_path):
    p = tmp_path / "pl.sock"

    async def main():
        server = await loop.create_unix_server(asyncio.Protocol, pathlib.Path(p))
        assert server.sockets[0].getsockname() == str(p)
        r, w = await asyncio.open_unix_connection(pathlib.Path(p))
        w.close()
        await w.wait_closed()
        r, w = await asyncio.open_unix_connection(os.fsencode(p))
        w.close()
        await w.wait_closed()
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_abstract_namespace(loop):
    name = "\0boucle-test-" + uuid.uuid4().hex

    async def main():
        server = await asyncio.start_unix_server(upper_handler, name)
        assert server.sockets[0].getsockname() == name.encode()
        line = await echo_once(name)
        server.close()
        await server.wait_closed()
        return line

    assert run(loop, main()) == b"HELLO\n"


def test_stale_socket_file_is_replaced(loop, sock_path):
    old = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old.bind(sock_path)
    old.close()                              # leaves the socket file

    async def main():
        server = await asyncio.start_unix_server(upper_handler, sock_path)
        line = await echo_once(sock_path)
        server.close()
        await server.wait_closed()
        return line

    assert run(loop, main()) == b"HELLO\n"


def test_path_in_use_by_regular_file(loop, sock_path):
    open(sock_path, "w").close()

    async def main():
        with pytest.raises(OSError) as ei:
            await loop.create_unix_server(asyncio.Protocol, sock_path)
        return ei.value

    exc = run(loop, main())
    assert exc.errno == errno.EADDRINUSE
    assert exc.args == (errno.EADDRINUSE, f"Address {sock_path!r} is already in use")
    assert os.path.isfile(sock_path)         # a regular file is never removed


def test_path_in_use_by_live_server(loop, sock_path):
    async def main():
        server = await loop.create_unix_server(asyncio.Protocol, sock_path)
        # a live socket file is a socket too: asyncio removes it and binds
        # anew; the old server keeps its (now unreachable) socket
        server2 = await loop.create_unix_server(asyncio.Protocol, sock_path)
        server.close()
        server2.close()
        await server.wait_closed()
        await server2.wait_closed()

    run(loop, main())


def test_connect_errors(loop, sock_path):
    async def main():
        with pytest.raises(FileNotFoundError):
            await asyncio.open_unix_connection(sock_path)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(sock_path)                    # a socket file nobody listens on
        try:
            with pytest.raises(ConnectionRefusedError):
                await asyncio.open_unix_connection(sock_path)
        finally:
            s.close()

    run(loop, main())


def test_argument_errors(loop, sock_path):
    async def main():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        inet = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        dgram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        msgs = []
        try:
            for coro in (
                loop.create_unix_connection(asyncio.Protocol, sock_path, sock=s),
                loop.create_unix_connection(asyncio.Protocol),
                loop.create_unix_connection(asyncio.Protocol, sock=inet),
                loop.create_unix_connection(asyncio.Protocol, sock=dgram),
                loop.create_unix_connection(asyncio.Protocol, sock_path, server_hostname="h"),
                loop.create_unix_connection(asyncio.Protocol, sock_path, ssl_handshake_timeout=1),
                loop.create_unix_server(asyncio.Protocol, sock_path, sock=s),
                loop.create_unix_server(asyncio.Protocol),
                loop.create_unix_server(asyncio.Protocol, sock=inet),
                loop.create_unix_server(asyncio.Protocol, sock=dgram),
                loop.create_unix_server(asyncio.Protocol, sock_path, ssl_handshake_timeout=1),
            ):
                with pytest.raises(ValueError) as ei:
                    await coro
                msgs.append(str(ei.value))
            with pytest.raises(ValueError):
                await loop.create_unix_connection(asyncio.Protocol, sock_path, ssl=True)
            with pytest.raises(TypeError, match="ssl argument must be an SSLContext or None"):
                await loop.create_unix_server(asyncio.Protocol, sock_path, ssl=True)
            if PY311:
                with pytest.raises(ValueError, match="ssl_shutdown_timeout is only meaningful with ssl"):
                    await loop.create_unix_connection(asyncio.Protocol, sock_path, ssl_shutdown_timeout=1)
                with pytest.raises(ValueError, match="ssl_shutdown_timeout is only meaningful with ssl"):
                    await loop.create_unix_server(asyncio.Protocol, sock_path, ssl_shutdown_timeout=1)
            else:
                with pytest.raises(TypeError):
                    await loop.create_unix_server(asyncio.Protocol, sock_path, ssl_shutdown_timeout=1)
            assert s.fileno() != -1          # a refused sock is left alone
            return msgs
        finally:
            s.close()
            inet.close()
            dgram.close()

    msgs = run(loop, main())
    assert msgs[0] == "path and sock can not be specified at the same time"
    assert msgs[1] == "no path and sock were specified"
    assert msgs[2].startswith("A UNIX Domain Stream Socket was expected, got <socket.socket")
    assert msgs[3].startswith("A UNIX Domain Stream Socket was expected")
    assert msgs[4] == "server_hostname is only meaningful with ssl"
    assert msgs[5] == "ssl_handshake_timeout is only meaningful with ssl"
    assert msgs[6] == "path and sock can not be specified at the same time"
    assert msgs[7] == "path was not specified, and no sock specified"
    assert msgs[8].startswith("A UNIX Domain Stream Socket was expected")
    assert msgs[9].startswith("A UNIX Domain Stream Socket was expected")
    assert msgs[10] == "ssl_handshake_timeout is only meaningful with ssl"


def test_signatures_match_asyncio(loop):
    import asyncio.unix_events as ue
    ref = ue._UnixSelectorEventLoop
    for name in ("create_unix_connection", "create_unix_server", "getaddrinfo",
                 "create_datagram_endpoint"):
        ours = inspect.signature(getattr(type(loop), name))
        theirs = inspect.signature(getattr(ref, name))
        assert [(p.name, p.kind, p.default) for p in ours.parameters.values()] == \
               [(p.name, p.kind, p.default) for p in theirs.parameters.values()], name


def test_server_with_sock_and_start_serving(loop, sock_path):
    async def main():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(sock_path)
        server = await loop.create_unix_server(
            lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader()),
            sock=s, start_serving=False)
        assert not server.is_serving()
        assert s.gettimeout() == 0.0
        await server.start_serving()
        assert server.is_serving()
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.setblocking(False)
        await loop.sock_connect(conn, sock_path)
        conn.close()
        server.close()
        await server.wait_closed()
        assert s.fileno() == -1

    run(loop, main())


def test_create_unix_connection_with_sock(loop, sock_path):
    async def main():
        server = await asyncio.start_unix_server(upper_handler, sock_path)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sock_path)                 # blocking connect, then hand over
        received = loop.create_future()

        class P(asyncio.Protocol):
            def connection_made(self, tr):
                tr.write(b"via sock\n")

            def data_received(self, data):
                if not received.done():
                    received.set_result(data)

        tr, pr = await loop.create_unix_connection(P, sock=s)
        assert s.gettimeout() == 0.0
        data = await received
        tr.close()
        server.close()
        await server.wait_closed()
        return data

    assert run(loop, main()) == b"VIA SOCK\n"


def test_connect_accepted_socket_unix(loop):
    async def main():
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        got = loop.create_future()

        class P(asyncio.Protocol):
            def data_received(self, data):
                self.tr.write(data[::-1])

            def connection_made(self, tr):
                self.tr = tr

            def connection_lost(self, exc):
                got.set_result(exc)

        tr, pr = await loop.connect_accepted_socket(P, a)
        b.setblocking(False)
        await loop.sock_sendall(b, b"abc")
        assert await loop.sock_recv(b, 10) == b"cba"
        b.close()
        assert await got is None
        tr.close()

    run(loop, main())


# ---- cleanup_socket (3.13+) ----------------------------------------------------


@pytest.mark.skipif(not PY313, reason="cleanup_socket is new in 3.13")
def test_cleanup_socket_removes_file(loop, sock_path):
    async def main():
        server = await loop.create_unix_server(asyncio.Protocol, sock_path)
        assert os.path.exists(sock_path)
        server.close()
        await server.wait_closed()
        return os.path.exists(sock_path)

    assert run(loop, main()) is False


@pytest.mark.skipif(not PY313, reason="cleanup_socket is new in 3.13")
def test_cleanup_socket_with_sock(loop, sock_path):
    async def main():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(sock_path)
        server = await loop.create_unix_server(asyncio.Protocol, sock=s)
        server.close()
        await server.wait_closed()
        return os.path.exists(sock_path)

    assert run(loop, main()) is False


@pytest.mark.skipif(not PY313, reason="cleanup_socket is new in 3.13")
def test_cleanup_socket_false_keeps_file(loop, sock_path):
    async def main():
        server = await loop.create_unix_server(asyncio.Protocol, sock_path, cleanup_socket=False)
        server.close()
        await server.wait_closed()
        return os.path.exists(sock_path)

    assert run(loop, main()) is True


@pytest.mark.skipif(not PY313, reason="cleanup_socket is new in 3.13")
def test_cleanup_socket_leaves_replaced_file(loop, sock_path):
    async def main():
        server = await loop.create_unix_server(asyncio.Protocol, sock_path)
        os.unlink(sock_path)
        other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        other.bind(sock_path)                # somebody else's socket now
        server.close()
        await server.wait_closed()
        exists = os.path.exists(sock_path)
        other.close()
        return exists

    assert run(loop, main()) is True


@pytest.mark.skipif(PY313, reason="3.13+ removes the socket file")
def test_socket_file_stays_before_313(loop, sock_path):
    async def main():
        server = await loop.create_unix_server(asyncio.Protocol, sock_path)
        server.close()
        await server.wait_closed()
        return os.path.exists(sock_path)

    assert run(loop, main()) is True


def test_stale_check_error_is_logged(loop, tmp_path, caplog):
    # os.stat() fails with something else than FileNotFoundError: logged,
    # then bind() reports its own error
    path = str(tmp_path / "notadir" / "x.sock")
    open(tmp_path / "notadir", "w").close()

    async def main():
        with pytest.raises(OSError) as ei:
            await loop.create_unix_server(asyncio.Protocol, path)
        return ei.value

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        exc = run(loop, main())
    assert exc.errno == errno.ENOTDIR
    assert any(r.getMessage().startswith("Unable to check or remove stale UNIX socket")
               for r in caplog.records)


def test_no_python_level_file_calls_on_the_loop(sock_path, monkeypatch):
    """boucle only. Blocking-call detectors (blockbuster, in aiohttp's test
    suite and others) flag os.stat/os.remove/os.unlink made from a loop
    thread and allow asyncio's own unix_events frames; boucle makes those
    calls in C, so create_unix_server over a stale file and (3.13) its
    cleanup of the socket file work with boucle's Python layer denied them."""
    from conftest import boucle
    import boucle._unix as unix_layer

    old = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old.bind(sock_path)
    old.close()                              # a stale socket file

    class GuardedOs:
        def __getattr__(self, name):
            if name in ("stat", "lstat", "remove", "unlink"):
                raise AssertionError("boucle called os.%s on the loop" % name)
            return getattr(os, name)

    monkeypatch.setattr(unix_layer, "os", GuardedOs())
    loop = boucle.new_event_loop()

    async def main():
        kwargs = {"cleanup_socket": True} if PY313 else {}
        server = await asyncio.start_unix_server(upper_handler, sock_path, **kwargs)
        line = await echo_once(sock_path)
        server.close()
        await server.wait_closed()
        return line

    try:
        assert run(loop, main()) == b"HELLO\n"
    finally:
        loop.close()
    assert os.path.exists(sock_path) != PY313     # 3.13 removed it
