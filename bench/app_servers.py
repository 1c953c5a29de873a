#!/usr/bin/env python3
"""HTTP servers of real frameworks for boucle's network benchmarks.

    python bench/app_servers.py --app uvicorn|uvicorn-h11|aiohttp
                                --loop asyncio|uvloop|boucle|boucle-uring
                                [--host 127.0.0.1] [--port 0] [--cpu N]

The same answer as bench/http_server.py ("200 OK", text/plain, the body
"Hello, World!" with Content-Length, keep-alive), produced the way users
write it:

* uvicorn: an ASGI application served by uvicorn.Server with httptools
  (``uvicorn``) or h11 (``uvicorn-h11``), lifespan and access log off;
* aiohttp: an aiohttp.web.Application with one GET route, served by an
  AppRunner on a SockSite, access log off.

What is measured is everything the framework does per request on the loop
under test (its protocol, its timers for keep-alive, its tasks), not only
the loop. Prints "LISTENING <port>" once it accepts connections, then serves
until killed; bench/echo.py starts it (``--http-kinds``).
"""

import argparse
import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import echo_servers  # noqa: E402  (loop factory, listening socket, serve())

APPS = ("uvicorn", "uvicorn-h11", "aiohttp")
BODY = b"Hello, World!"


async def asgi_app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", b"%d" % len(BODY))]})
    await send({"type": "http.response.body", "body": BODY})


async def start_uvicorn(loop, sock, http):
    import uvicorn
    config = uvicorn.Config(asgi_app, http=http, ws="none", lifespan="off",
                            log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    task = loop.create_task(server.serve(sockets=[sock]))
    # uvicorn stops on SIGTERM/SIGINT; then the process has nothing left to do
    task.add_done_callback(lambda t: loop.stop())
    while not server.started:
        if task.done():
            task.result()                  # raises what made it fail
            raise RuntimeError("uvicorn stopped before it started")
        await asyncio.sleep(0.01)
    return server, task


async def start_aiohttp(loop, sock):
    from aiohttp import web

    async def hello(request):
        return web.Response(body=BODY, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.SockSite(runner, sock, backlog=echo_servers.BACKLOG)
    await site.start()
    return runner, site


async def start(loop, app, host, port):
    sock = echo_servers.listening_socket(host, port)
    port = sock.getsockname()[1]
    if app == "aiohttp":
        return port, await start_aiohttp(loop, sock)
    http = "h11" if app == "uvicorn-h11" else "httptools"
    return port, await start_uvicorn(loop, sock, http)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--app", choices=APPS, required=True)
    ap.add_argument("--loop", choices=echo_servers.LOOPS, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--cpu", type=int, default=None, help="pin the server to this CPU")
    args = ap.parse_args(argv)
    echo_servers.serve(lambda loop, host, port: start(loop, args.app, host, port),
                       args.loop, args.host, args.port, args.cpu)


if __name__ == "__main__":
    main()
