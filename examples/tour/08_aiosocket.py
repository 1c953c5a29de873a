"""Step 8 - sockets that interrupt instead of blocking: AIOSocket.

Talk, part 4 (4.12 to 4.17): a non-blocking socket plus `select()` tells
whether an operation can proceed; while it cannot, the coroutine
interrupts and the loop runs somebody else. `AIOSocket` wraps a socket that
way (bind, listen, connect, accept, recv, send, close, fileno, `with`), and
`aiosocket()` makes one. A server answering each message reversed and its
client then share one loop. On boucle the same exchange uses the loop's
own socket operations (`loop.sock_accept`, `sock_recv`, `sock_sendall`,
`sock_connect`), which wait on epoll instead of polling.
"""
import asyncio
import errno
import os
import select
import socket
from collections import deque

import boucle

MESSAGES = ["hello", "event loop", "boucle"]


class interrupt:                    # step 5
    def __await__(self):
        yield


class Loop:                         # step 6
    def __init__(self):
        self.tasks = deque()

    def add_task(self, task):
        self.tasks.append(task.__await__())

    def run(self):
        while self.tasks:
            steps = self.tasks.popleft()
            try:
                next(steps)
            except StopIteration:
                continue
            self.tasks.append(steps)


class AIOSocket:
    def __init__(self, sock):
        self.sock = sock
        sock.setblocking(False)

    def fileno(self):
        return self.sock.fileno()

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    async def _until_ready(self, reading):
        want = ([self], []) if reading else ([], [self])
        while not any(select.select(*want, [], 0)[:2]):
            await interrupt()       # not ready: let the other tasks run

    def bind(self, address):
        self.sock.bind(address)

    def listen(self, backlog=8):
        self.sock.listen(backlog)

    def getsockname(self):
        return self.sock.getsockname()

    async def connect(self, address):
        err = self.sock.connect_ex(address)
        if err not in (0, errno.EINPROGRESS):
            raise OSError(err, os.strerror(err))
        await self._until_ready(reading=False)
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise OSError(err, os.strerror(err))

    async def accept(self):
        await self._until_ready(reading=True)
        conn, address = self.sock.accept()
        return AIOSocket(conn), address

    async def recv(self, size):
        await self._until_ready(reading=True)
        return self.sock.recv(size)

    async def send(self, data):
        await self._until_ready(reading=False)
        return self.sock.send(data)


def aiosocket(family=socket.AF_INET, type=socket.SOCK_STREAM):
    return AIOSocket(socket.socket(family, type))


async def server(listener):
    conn, _ = await listener.accept()
    with conn:
        while message := await conn.recv(1024):
            print(f"server: got {message.decode()!r}")
            await conn.send(message[::-1])


async def client(address):
    with aiosocket() as sock:
        await sock.connect(address)
        for text in MESSAGES:
            await sock.send(text.encode())
            reply = await sock.recv(1024)
            print(f"client: sent {text!r}, got back {reply.decode()!r}")


print("-- AIOSocket on the toy Loop")
with aiosocket() as listener:
    listener.bind(("127.0.0.1", 0))         # loopback, any free port
    listener.listen()
    loop = Loop()
    loop.add_task(server(listener))
    loop.add_task(client(listener.getsockname()))
    loop.run()


async def boucle_server(listener):
    loop = asyncio.get_running_loop()
    conn, _ = await loop.sock_accept(listener)
    with conn:
        while message := await loop.sock_recv(conn, 1024):
            print(f"server: got {message.decode()!r}")
            await loop.sock_sendall(conn, message[::-1])


async def boucle_client(address):
    loop = asyncio.get_running_loop()
    with socket.socket() as sock:
        sock.setblocking(False)
        await loop.sock_connect(sock, address)
        for text in MESSAGES:
            await loop.sock_sendall(sock, text.encode())
            reply = await loop.sock_recv(sock, 1024)
            print(f"client: sent {text!r}, got back {reply.decode()!r}")


async def main():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        await asyncio.gather(boucle_server(listener),
                             boucle_client(listener.getsockname()))

print("-- the loop's socket operations on boucle")
boucle.run(main())
