"""An echo server on asyncio streams, run by boucle.

    python examples/echo_server.py [--host 127.0.0.1] [--port 8888]

Every byte a client sends comes back to it; when the client shuts down its
sending side (or disconnects), the server finishes echoing and closes the
connection. `--port 0` picks a free port. The first line printed is
``echo server: listening on HOST:PORT``; Ctrl-C (SIGINT) stops the server,
closing the connections still open.

Nothing here is specific to boucle except the last lines: the same program
runs on stock asyncio with ``asyncio.run`` instead of ``boucle.run``.
"""
import argparse
import asyncio

import boucle


SESSIONS = {}        # task serving a client -> its StreamWriter


async def echo(reader, writer):
    SESSIONS[asyncio.current_task()] = writer
    try:
        while data := await reader.read(64 * 1024):
            writer.write(data)
            await writer.drain()        # wait while the client is slow to read
    except ConnectionError:
        pass                            # the client went away: nothing to echo to
    finally:
        del SESSIONS[asyncio.current_task()]
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass


async def main(host, port):
    server = await asyncio.start_server(echo, host, port)
    for sock in server.sockets:
        address = sock.getsockname()
        print(f"echo server: listening on {address[0]}:{address[1]}", flush=True)
    try:
        await asyncio.Event().wait()    # serve until cancelled (Ctrl-C)
    finally:
        # Stop accepting, then end the sessions still open and let their
        # tasks finish: a server only counts as closed once its clients are
        # gone (Server.wait_closed, 3.12+).
        server.close()
        for writer in SESSIONS.values():
            writer.close()
        await asyncio.gather(*SESSIONS, return_exceptions=True)
        await server.wait_closed()


def cli(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8888)
    args = parser.parse_args(argv)
    try:
        boucle.run(main(args.host, args.port))
    except KeyboardInterrupt:
        print("echo server: stopped", flush=True)


if __name__ == "__main__":
    cli()
