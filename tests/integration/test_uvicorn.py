"""uvicorn serving an ASGI app on boucle (--loop boucle:new_event_loop), in a child
process, with httptools and with h11; HTTP/1.1 keep-alive; graceful SIGTERM."""
import asyncio
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from .integration_helpers import boucle, child_env, free_port, need, run, stop_process, wait_port

uvicorn = need("uvicorn")
HERE = os.path.dirname(os.path.abspath(__file__))


def uvicorn_version():
    return tuple(int(x) for x in uvicorn.__version__.split(".")[:2])


@pytest.fixture(params=["httptools", "h11"])
def server(request):
    need(request.param)
    if uvicorn_version() < (0, 36):
        pytest.skip("uvicorn %s has no module:function --loop (needs >= 0.36)" % uvicorn.__version__)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "asgi_app:app", "--app-dir", HERE,
         "--host", "127.0.0.1", "--port", str(port), "--loop", "boucle:new_event_loop",
         "--http", request.param, "--log-level", "info", "--timeout-graceful-shutdown", "10"],
        env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_port(port, timeout=20, proc=proc)
        yield proc, port
    finally:
        stop_process(proc)
        if not proc.stdout.closed:
            print(proc.stdout.read().decode(errors="replace"))
            proc.stdout.close()


def test_keepalive_requests(server):
    proc, port = server
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    ports = set()
    for i in range(30):
        conn.request("GET", "/info")
        r = conn.getresponse()
        assert r.status == 200
        info = json.loads(r.read())
        assert info["loop"] == "boucle._loop.Loop" or info["loop"].endswith(".Loop") and "boucle" in info["loop"]
        assert info["http_version"] == "1.1"
        ports.add(info["client_port"])
        data = os.urandom(100 + i * 1000)
        conn.request("POST", "/echo", body=data)
        r = conn.getresponse()
        assert r.read() == data[::-1]
    assert len(ports) == 1, "keep-alive: every request on one connection"
    conn.request("GET", "/stream")
    r = conn.getresponse()
    assert r.getheader("transfer-encoding") == "chunked"
    assert r.read() == b"".join(b"part %d\n" % i for i in range(5))
    conn.request("GET", "/nope")
    r = conn.getresponse()
    assert (r.status, r.read()) == (404, b"not found")
    conn.close()


def test_many_connections_from_boucle_client(server):
    """200 requests from a boucle client (asyncio streams) over 20 connections."""
    proc, port = server

    async def client(n):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        seen = []
        for i in range(10):
            body = b"%d-%d" % (n, i)
            w.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(body), body))
            head = await r.readuntil(b"\r\n\r\n")
            length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0].split(b":")[1])
            seen.append(await r.readexactly(length) == body[::-1])
        w.close()
        await w.wait_closed()
        return all(seen)

    async def main():
        return await asyncio.gather(*(client(n) for n in range(20)))
    assert run(main()) == [True] * 20


def test_sigterm_graceful_shutdown(server):
    proc, port = server
    result = {}

    def slow_request():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        conn.request("GET", "/slow?s=1.0")
        r = conn.getresponse()
        result["status"], result["body"] = r.status, r.read()
        conn.close()

    t = threading.Thread(target=slow_request)
    t.start()
    time.sleep(0.4)                       # the request is in flight in the app
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=10)
    elapsed = time.monotonic() - t0
    t.join(10)
    out = proc.stdout.read().decode(errors="replace")
    # uvicorn (>= 0.29) re-raises the captured SIGTERM after its clean shutdown, so
    # the process ends "killed by SIGTERM" exactly as it does on stock asyncio.
    assert rc in (0, -signal.SIGTERM), out
    for line in ("Shutting down", "Waiting for connections to close",
                 '"GET /slow?s=1.0 HTTP/1.1" 200', "Application shutdown complete",
                 "Finished server process"):
        assert line in out, out
    assert "Traceback" not in out and "ERROR" not in out, out
    assert elapsed < 5
    assert result == {"status": 200, "body": b"slow done"}
    # No new connections after shutdown.
    with pytest.raises(OSError):
        http.client.HTTPConnection("127.0.0.1", port, timeout=2).request("GET", "/info")


def test_uvicorn_server_in_process():
    """uvicorn.Server.serve() inside boucle.run, hit by a boucle client."""
    from . import asgi_app
    config = uvicorn.Config(asgi_app.app, host="127.0.0.1", port=free_port(),
                            log_level="warning", lifespan="on")
    server = uvicorn.Server(config)

    async def main():
        serving = asyncio.ensure_future(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        r, w = await asyncio.open_connection("127.0.0.1", config.port)
        w.write(b"GET /info HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await r.readuntil(b"\r\n\r\n")
        length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0].split(b":")[1])
        info = json.loads(await r.readexactly(length))
        w.close()
        server.should_exit = True
        await serving
        return info
    info = run(main())
    assert "boucle" in info["loop"]
