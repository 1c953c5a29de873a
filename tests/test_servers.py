"""Servers on stream transports: create_server/start_server, the accept
loop, close/wait_closed/close_clients/abort_clients, serve_forever,
out-of-fds on accept, thousands of concurrent connections.

Every test runs on asyncio's loop and on boucle (``loop`` fixture); the
ones needing another process run the server there with the same loop kind.
"""
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest


def boucle_pythonpath():
    """PYTHONPATH for a child interpreter importing the boucle under test
    (the one conftest imported), whatever conftest module is importable."""
    mod = sys.modules.get("boucle")
    if mod is not None:
        parts = [os.path.dirname(os.path.dirname(os.path.abspath(mod.__file__)))]
    else:
        parts = [os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")]
    if os.environ.get("PYTHONPATH"):
        parts.append(os.environ["PYTHONPATH"])
    return os.pathsep.join(parts)

PY312 = sys.version_info >= (3, 12)
PY313 = sys.version_info >= (3, 13)


def run(loop, coro, timeout=60):
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


class Echo(asyncio.Protocol):
    def connection_made(self, tr):
        self.tr = tr

    def data_received(self, data):
        self.tr.write(data)


class Track(asyncio.Protocol):
    """Server-side protocol recording connection_lost."""

    def __init__(self, loop, registry):
        self.lost = loop.create_future()
        registry.append(self)

    def connection_made(self, tr):
        self.tr = tr

    def data_received(self, data):
        self.tr.write(data)

    def connection_lost(self, exc):
        self.lost.set_result(exc)


async def echo_handler(r, w):
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    finally:
        w.close()


def test_start_server_echo_and_close(loop):
    async def main():
        server = await asyncio.start_server(echo_handler, "127.0.0.1", 0)
        assert server.is_serving()
        assert server.get_loop() is loop
        (sock,) = server.sockets
        port = sock.getsockname()[1]
        clients = [await asyncio.open_connection("127.0.0.1", port) for _ in range(20)]
        for i, (r, w) in enumerate(clients):
            w.write(b"msg%d" % i)
        for i, (r, w) in enumerate(clients):
            assert await r.readexactly(len(b"msg%d" % i)) == b"msg%d" % i
        for r, w in clients:
            w.close()
            await w.wait_closed()
        server.close()
        assert not server.is_serving()
        assert server.sockets == ()
        await server.wait_closed()
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)

    run(loop, main())


def test_start_serving_false(loop):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0, start_serving=False)
        assert not server.is_serving()
        port = server.sockets[0].getsockname()[1]
        await server.start_serving()
        assert server.is_serving()
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"x")
        assert await r.readexactly(1) == b"x"
        w.close()
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_serve_forever_cancel(loop):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0, start_serving=False)
        port = server.sockets[0].getsockname()[1]
        task = loop.create_task(server.serve_forever())
        await asyncio.sleep(0)
        assert server.is_serving()
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"ping")
        assert await r.readexactly(4) == b"ping"
        with pytest.raises(RuntimeError, match="already being awaited"):
            await server.serve_forever()
        w.close()
        await w.wait_closed()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not server.is_serving()
        assert server.sockets == ()

    run(loop, main())


def test_server_close_via_async_with(loop):
    async def main():
        async with await loop.create_server(Echo, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"a")
            assert await r.readexactly(1) == b"a"
            w.close()
            await w.wait_closed()
        assert not server.is_serving()

    run(loop, main())


def test_wait_closed_waits_for_connections(loop):
    """3.12.1+: wait_closed() returns once the server is closed AND its
    connections are gone (the transports' _attach/_detach bookkeeping)."""
    registry = []

    async def main():
        server = await loop.create_server(lambda: Track(loop, registry), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"x")
        await r.readexactly(1)
        server.close()
        waiter = loop.create_task(server.wait_closed())
        await asyncio.sleep(0.05)
        waited = not waiter.done()
        w.close()                      # the client goes away...
        await registry[0].lost         # ... the server transport follows
        await asyncio.wait_for(waiter, 5)
        return waited

    waited = run(loop, main())
    # asyncio 3.12.1+ waits for the connection; older ones return at once
    assert waited == (sys.version_info >= (3, 12, 1))


@pytest.mark.skipif(not PY313, reason="Server.close_clients/abort_clients are 3.13+")
@pytest.mark.parametrize("how", ["close_clients", "abort_clients"])
def test_close_and_abort_clients(loop, how):
    registry = []

    async def main():
        server = await loop.create_server(lambda: Track(loop, registry), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        clients = [await asyncio.open_connection("127.0.0.1", port) for _ in range(5)]
        for r, w in clients:
            w.write(b"hi")
            await r.readexactly(2)
        assert len(server._clients) == 5
        server.close()
        getattr(server, how)()
        excs = await asyncio.gather(*(p.lost for p in registry))
        assert excs == [None] * 5
        for r, w in clients:
            assert await r.read() == b""
            w.close()
        await asyncio.wait_for(server.wait_closed(), 5)
        assert len(server._clients) == 0

    run(loop, main())


@pytest.mark.skipif(not PY313, reason="Server._clients (the transports themselves) is 3.13+")
def test_server_tracks_client_transports(loop):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"x")
        await r.readexactly(1)
        assert len(server._clients) == 1
        (tr,) = list(server._clients)
        assert tr.get_protocol().tr is tr
        w.close()
        await w.wait_closed()
        server.close()
        await server.wait_closed()
        assert len(server._clients) == 0

    run(loop, main())


def test_server_protocols_see_peername(loop):
    async def main():
        got = loop.create_future()

        class P(asyncio.Protocol):
            def connection_made(self, tr):
                got.set_result((tr.get_extra_info("peername"), tr.get_extra_info("sockname")))

        server = await loop.create_server(P, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        peer, name = await got
        assert peer == w.get_extra_info("sockname")
        assert name == ("127.0.0.1", port)
        w.close()
        server.close()

    run(loop, main())


def test_many_simultaneous_accepts(loop):
    """More connections than one readiness event's backlog loop takes."""
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=100)
        port = server.sockets[0].getsockname()[1]
        socks = [socket.socket() for _ in range(250)]
        for s in socks:
            s.setblocking(False)
        # all the handshakes at once, then the server accepts them
        await asyncio.gather(*(loop.sock_connect(s, ("127.0.0.1", port)) for s in socks))
        conns = [await asyncio.open_connection(sock=s) for s in socks]
        for i, (r, w) in enumerate(conns):
            w.write(b"%05d" % i)
        for i, (r, w) in enumerate(conns):
            assert await r.readexactly(5) == b"%05d" % i
        for r, w in conns:
            w.close()
        server.close()

    run(loop, main())


# ---------------------------------------------------------------------------
# tests with a server in a child process


CHILD_PRELUDE = """
import asyncio, json, os, resource, socket, sys
kind = sys.argv[1]
if kind == "boucle":
    import boucle
    loop = boucle.new_event_loop()
else:
    loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
"""


def run_child(kind, body, *args, timeout=120, **popen):
    code = CHILD_PRELUDE + textwrap.dedent(body)
    env = dict(os.environ, PYTHONPATH=boucle_pythonpath())
    return subprocess.Popen([sys.executable, "-c", code, kind, *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            text=True, **popen)


EMFILE_SERVER = """
contexts = []
def handler(lp, ctx):
    contexts.append(ctx)
loop.set_exception_handler(handler)

class Echo(asyncio.Protocol):
    def connection_made(self, tr):
        self.tr = tr
    def data_received(self, data):
        self.tr.write(data)
    def eof_received(self):
        return False

async def main():
    server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=50)
    port = server.sockets[0].getsockname()[1]
    nfds = len(os.listdir("/proc/self/fd"))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # room for 3 accepted connections
    resource.setrlimit(resource.RLIMIT_NOFILE, (nfds + 3, hard))
    print(port, flush=True)
    while True:
        await asyncio.sleep(0.05)
        if os.path.exists(sys.argv[2]):
            break
    server.close()
    msgs = [c["message"] for c in contexts]
    kinds = [type(c.get("exception")).__name__ for c in contexts]
    errnos = [getattr(c.get("exception"), "errno", None) for c in contexts]
    socks = [type(c.get("socket")).__name__ for c in contexts]
    print(json.dumps({"messages": msgs, "kinds": kinds, "errnos": errnos, "socks": socks}), flush=True)

loop.run_until_complete(main())
"""


@pytest.mark.parametrize("nclients", [7])
def test_accept_emfile_keeps_serving(loop_factory, nclients, tmp_path):
    kind = "boucle" if loop_factory.is_boucle else "asyncio"
    done_flag = tmp_path / "done"
    child = run_child(kind, EMFILE_SERVER, done_flag)
    try:
        port = int(child.stdout.readline())
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(nclients)]
        time.sleep(0.3)     # the child accepts 3, then hits EMFILE
        for i, c in enumerate(clients):
            c.settimeout(20)
            msg = b"hello %d" % i
            c.sendall(msg)
            got = b""
            while len(got) < len(msg):
                chunk = c.recv(100)
                assert chunk, "server closed the connection"
                got += chunk
            assert got == msg
            c.close()      # frees a server fd: accepting resumes after the retry delay
        done_flag.write_text("x")
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, err
    res = json.loads(out.strip().splitlines()[-1])
    assert res["messages"], err
    assert set(res["messages"]) == {"socket.accept() out of system resource"}
    assert set(res["errnos"]) == {24}   # EMFILE
    assert set(res["socks"]) == {"TransportSocket"}


CONCURRENT_CLIENT = """
import asyncio, hashlib, socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
async def main():
    sem = asyncio.Semaphore(200)
    async def connect():
        async with sem:
            return await asyncio.open_connection("127.0.0.1", port)
    conns = await asyncio.gather(*(connect() for _ in range(n)))
    print("connected", len(conns), flush=True)
    async def talk(i, r, w):
        payload = hashlib.sha256(b"%d" % i).digest() * (1 + i % 50)
        w.write(payload)
        await w.drain()
        got = await r.readexactly(len(payload))
        assert got == payload
        return len(payload)
    sizes = await asyncio.gather(*(talk(i, r, w) for i, (r, w) in enumerate(conns)))
    total = sum(sizes)
    for r, w in conns:
        w.close()
    for r, w in conns:
        try:
            await w.wait_closed()
        except ConnectionError:
            pass
    print("ok", total, flush=True)
asyncio.run(main())
"""


def test_5000_concurrent_connections(loop):
    n = 5000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = n + 500
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip(f"fd hard limit {hard} < {need}")
    if soft != resource.RLIM_INFINITY and soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    registry = []

    async def main():
        server = await loop.create_server(lambda: Track(loop, registry), "127.0.0.1", 0,
                                          backlog=1024)
        return server, server.sockets[0].getsockname()[1]

    server, port = run(loop, main())
    # the client runs in another process (plain asyncio), the server here
    client = subprocess.Popen([sys.executable, "-c", CONCURRENT_CLIENT, str(port), str(n)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        async def serve():
            max_live = 0
            while client.poll() is None:
                live = sum(1 for p in registry if not p.lost.done())
                max_live = max(max_live, live)
                await asyncio.sleep(0.02)
            # connections close after the client exits
            await asyncio.wait_for(asyncio.gather(*(p.lost for p in registry)), 30)
            return max_live

        max_live = run(loop, serve(), timeout=180)
        out, err = client.communicate(timeout=10)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
        server.close()
    assert client.returncode == 0, err
    lines = out.split("\n")
    assert lines[0] == f"connected {n}"
    assert lines[1].startswith("ok ")
    assert len(registry) == n
    assert max_live == n      # all were open at the same time
    assert all(p.lost.result() is None for p in registry)


# ---------------------------------------------------------------------------
# Unix socket servers use the same accept machinery


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets")
def test_unix_server_echo(loop):
    async def main():
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "sock")
            server = await asyncio.start_unix_server(echo_handler, path)
            conns = [await asyncio.open_unix_connection(path) for _ in range(10)]
            for i, (r, w) in enumerate(conns):
                w.write(b"unix%d" % i)
            for i, (r, w) in enumerate(conns):
                assert await r.readexactly(len(b"unix%d" % i)) == b"unix%d" % i
            for r, w in conns:
                w.close()
                await w.wait_closed()
            server.close()
            await server.wait_closed()

    run(loop, main())
