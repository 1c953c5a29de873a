"""aiohttp server and client, both on boucle, plus curl as an outside client."""
import asyncio
import subprocess

import pytest

from .integration_helpers import boucle, external_env, need, run

aiohttp = need("aiohttp")
from aiohttp import web  # noqa: E402


def make_app():
    app = web.Application()
    routes = web.RouteTableDef()

    @routes.get("/")
    async def index(request):
        return web.Response(text="hello from %s" % type(asyncio.get_running_loop()).__name__)

    @routes.get("/items/{id}")
    async def item(request):
        return web.json_response({"id": int(request.match_info["id"]),
                                  "q": request.query.get("q")})

    @routes.post("/echo")
    async def echo(request):
        body = await request.read()
        return web.Response(body=body[::-1], content_type="application/octet-stream")

    @routes.get("/stream")
    async def stream(request):
        n = int(request.query.get("n", "5"))
        resp = web.StreamResponse()
        resp.content_type = "text/plain"
        await resp.prepare(request)
        for i in range(n):
            await resp.write(b"chunk %d\n" % i)
            await asyncio.sleep(0.01)
        await resp.write_eof()
        return resp

    @routes.get("/ws")
    async def ws(request):
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        async for msg in sock:
            if msg.type == aiohttp.WSMsgType.TEXT:
                if msg.data == "close":
                    await sock.close()
                else:
                    await sock.send_str("echo:" + msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await sock.send_bytes(msg.data[::-1])
        return sock

    @routes.get("/slow")
    async def slow(request):
        await asyncio.sleep(0.2)
        return web.Response(text="slow done")

    app.add_routes(routes)
    return app


async def start_app():
    runner = web.AppRunner(make_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, "http://127.0.0.1:%d" % port


def test_routes_and_streaming():
    async def main():
        runner, base = await start_app()
        try:
            async with aiohttp.ClientSession() as s:
                async with s.get(base + "/") as r:
                    assert r.status == 200
                    assert await r.text() == "hello from Loop"
                async with s.get(base + "/items/42", params={"q": "x y"}) as r:
                    assert await r.json() == {"id": 42, "q": "x y"}
                payload = bytes(range(256)) * 4096          # 1 MiB
                async with s.post(base + "/echo", data=payload) as r:
                    assert await r.read() == payload[::-1]
                async with s.get(base + "/stream", params={"n": "20"}) as r:
                    assert r.headers.get("Transfer-Encoding") == "chunked"
                    lines = [line async for line in r.content]
                    assert lines == [b"chunk %d\n" % i for i in range(20)]
                async with s.get(base + "/missing") as r:
                    assert r.status == 404
                # 50 concurrent requests over the session's pool (keep-alive).
                async def one(i):
                    async with s.get(base + "/items/%d" % i) as r:
                        return (await r.json())["id"]
                assert await asyncio.gather(*(one(i) for i in range(50))) == list(range(50))
        finally:
            await runner.cleanup()
    run(main())


def test_websocket_echo():
    async def main():
        runner, base = await start_app()
        try:
            async with aiohttp.ClientSession() as s:
                async with s.ws_connect(base + "/ws") as ws:
                    for i in range(100):
                        await ws.send_str("m%d" % i)
                        assert await ws.receive_str(timeout=5) == "echo:m%d" % i
                    big = bytes(range(256)) * 1000
                    await ws.send_bytes(big)
                    assert await ws.receive_bytes(timeout=5) == big[::-1]
                    await ws.send_str("close")
                    msg = await ws.receive(timeout=5)
                    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
                assert ws.closed
        finally:
            await runner.cleanup()
    run(main())


def test_client_timeout_and_cancel():
    async def main():
        runner, base = await start_app()
        try:
            async with aiohttp.ClientSession() as s:
                with pytest.raises(asyncio.TimeoutError):
                    async with s.get(base + "/slow",
                                     timeout=aiohttp.ClientTimeout(total=0.05)) as r:
                        await r.text()
                task = asyncio.ensure_future(s.get(base + "/slow"))
                await asyncio.sleep(0.02)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                # The session is still usable afterwards.
                async with s.get(base + "/slow") as r:
                    assert await r.text() == "slow done"
        finally:
            await runner.cleanup()
    run(main())


def test_curl_against_boucle_server(curl):
    async def main():
        runner, base = await start_app()
        loop = asyncio.get_running_loop()

        def sh(*args):
            return subprocess.run([curl, "-sS", "--max-time", "10", *args],
                                  capture_output=True, timeout=20, env=external_env())
        try:
            # Two URLs in one curl: the second reuses the connection (keep-alive).
            p = await loop.run_in_executor(None, lambda: sh(
                "-v", base + "/", base + "/items/7?q=curl"))
            assert p.returncode == 0, p.stderr
            assert p.stdout == b'hello from Loop{"id": 7, "q": "curl"}'
            assert b"Re-using existing connection" in p.stderr or b"Reusing existing" in p.stderr
            p = await loop.run_in_executor(None, lambda: sh(base + "/stream?n=3"))
            assert p.stdout == b"chunk 0\nchunk 1\nchunk 2\n"
            p = await loop.run_in_executor(None, lambda: sh(
                "--data-binary", "abcdef", "-H", "Content-Type: application/octet-stream",
                base + "/echo"))
            assert p.stdout == b"fedcba"
        finally:
            await runner.cleanup()
    run(main())


RUN_APP = r"""
import asyncio, sys, boucle
from aiohttp import web

async def index(request):
    return web.Response(text=type(asyncio.get_running_loop()).__module__)

app = web.Application()
app.router.add_get("/", index)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), loop=boucle.new_event_loop(),
            print=None, handle_signals=True)
print("clean exit")
"""


def test_run_app_with_boucle_loop(curl):
    """web.run_app(app, loop=boucle.new_event_loop()) in a child; SIGINT stops it cleanly."""
    import signal
    import sys

    from .integration_helpers import child_env, free_port, stop_process, wait_port
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", RUN_APP, str(port)], env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_port(port, timeout=20, proc=proc)
        p = subprocess.run([curl, "-sS", "--max-time", "10", "http://127.0.0.1:%d/" % port],
                           capture_output=True, timeout=20, env=external_env())
        assert p.stdout == b"boucle._loop" or p.stdout.startswith(b"boucle"), p
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
        assert proc.returncode == 0, out
        assert b"clean exit" in out and b"Traceback" not in out, out
    finally:
        stop_process(proc)
