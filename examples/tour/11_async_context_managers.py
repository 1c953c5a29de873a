"""Step 11 - async context managers: a server in `async with`.

Talk, part 6 (6.7 to 6.9): `__aenter__` and `__aexit__` are the coroutine
versions of `__enter__` and `__exit__`. `ReverseServer` opens a listening
toy socket (toy.py, step 8) on entry and closes it on exit; the server
answers reversed messages, as in step 8. `contextlib.asynccontextmanager`
builds the same thing from an async generator: before `yield` is the set-up,
after it the clean-up. On boucle, asyncio's own `Server` is an async context
manager, and `asynccontextmanager` wraps `asyncio.start_server` just as well.
"""
import asyncio
from contextlib import asynccontextmanager

import boucle
import toy


class ReverseServer:
    def __init__(self, host="127.0.0.1", port=0):
        self.address = (host, port)

    async def __aenter__(self):
        self.sock = toy.aiosocket()
        self.sock.bind(self.address)
        self.sock.listen()
        print("server: listening")
        return self.sock

    async def __aexit__(self, exc_type, exc, traceback):
        self.sock.close()
        print("server: closed")
        return False                # do not swallow exceptions


@asynccontextmanager
async def reverse_server(host="127.0.0.1", port=0):
    sock = toy.aiosocket()
    sock.bind((host, port))
    sock.listen()
    print("server: listening")
    try:
        yield sock
    finally:
        sock.close()
        print("server: closed")


async def serve_one(listener):
    conn, _ = await listener.accept()
    with conn:
        while message := await conn.recv(1024):
            await conn.send(message[::-1])


async def session(server, text):
    async with server as listener:
        toy.Loop.current.add_task(serve_one(listener))
        with toy.aiosocket() as sock:
            await sock.connect(listener.getsockname())
            await sock.send(text.encode())
            print(f"client: {text!r} -> {(await sock.recv(1024)).decode()!r}")


print("-- toy sockets on the toy Loop")
toy.Loop().run_task(session(ReverseServer(), "async with a class"))
toy.Loop().run_task(session(reverse_server(), "asynccontextmanager"))


async def reverse(reader, writer):
    while message := await reader.read(1024):
        writer.write(message[::-1])
        await writer.drain()
    writer.close()


@asynccontextmanager
async def boucle_reverse_server(host="127.0.0.1", port=0):
    server = await asyncio.start_server(reverse, host, port)
    print("server: listening")
    try:
        yield server
    finally:
        server.close()
        await server.wait_closed()
        print("server: closed")


async def boucle_session(server, text):
    async with server as listener:
        address = listener.sockets[0].getsockname()
        reader, writer = await asyncio.open_connection(*address)
        writer.write(text.encode())
        print(f"client: {text!r} -> {(await reader.read(1024)).decode()!r}")
        writer.close()
        await writer.wait_closed()


async def main():
    server = await asyncio.start_server(reverse, "127.0.0.1", 0)
    print("server: listening")
    # asyncio.Server is an async context manager: __aexit__ closes it
    await boucle_session(server, "async with a class")
    print("server: closed")
    await boucle_session(boucle_reverse_server(), "asynccontextmanager")

print("-- asyncio servers on boucle")
boucle.run(main())
