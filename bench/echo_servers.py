#!/usr/bin/env python3
"""TCP echo servers for boucle's network benchmarks, one per asyncio API.

    python bench/echo_servers.py --kind protocol|buffered|streams|sockets
                                 --loop asyncio|uvloop|boucle|boucle-uring
                                 [--host 127.0.0.1] [--port 0] [--cpu N]

Kinds (each echoes every byte it receives, on every connection):

  protocol  asyncio.Protocol: data_received(data) -> transport.write(data)
  buffered  asyncio.BufferedProtocol: the transport reads into our buffer,
            buffer_updated(n) -> transport.write(view[:n])
  streams   asyncio.start_server: reader.read(64 KiB), writer.write + drain
  sockets   loop.sock_accept, then loop.sock_recv(64 KiB) / loop.sock_sendall

Loops: asyncio (the interpreter's default loop: SelectorEventLoop on Linux),
uvloop, boucle (imported from this checkout's src/ unless already on the path).

Prints "LISTENING <port>" on stdout when it accepts connections, then serves
until killed (SIGTERM or SIGINT).  bench/echo.py starts these servers.
"""

import argparse
import asyncio
import os
import signal
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_SRC = os.path.join(os.path.dirname(HERE), "src")

KINDS = ("protocol", "buffered", "streams", "sockets")
LOOPS = ("asyncio", "uvloop", "boucle", "boucle-uring")

READ_SIZE = 64 * 1024          # sock_recv / StreamReader.read size
BUFFER_SIZE = 256 * 1024       # BufferedProtocol buffer (asyncio's Protocol reads 256 KiB too)
BACKLOG = 1024


def new_loop(name):
    """A new event loop of the named kind (raises ImportError if missing)."""
    if name == "asyncio":
        return asyncio.new_event_loop()
    if name == "uvloop":
        import uvloop
        return uvloop.new_event_loop()
    if name in ("boucle", "boucle-uring"):
        try:
            import boucle
        except ImportError:
            sys.path.insert(0, REPO_SRC)
            import boucle
        # boucle-uring: the io_uring backend (boucle's default is epoll)
        return boucle.new_event_loop(backend="io_uring" if name == "boucle-uring" else "epoll")
    raise ValueError("unknown loop %r" % name)


# ---------------------------------------------------------------------------
# protocol

class EchoProtocol(asyncio.Protocol):
    __slots__ = ("transport",)

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

    def connection_lost(self, exc):
        self.transport = None


# ---------------------------------------------------------------------------
# buffered

class EchoBufferedProtocol(asyncio.BufferedProtocol):
    """Reads land in one reusable buffer and are written back from it.

    A transport may keep a reference to the memory we hand to write() when
    it cannot send everything at once (asyncio 3.12 keeps the memoryview
    itself).  So before lending the buffer out again we check that the
    transport has nothing left to send; if it does, that memory belongs to
    the transport now and we start a fresh buffer.  In the common case
    (everything sent at once) the same buffer is reused forever.
    """
    __slots__ = ("transport", "view")

    def connection_made(self, transport):
        self.transport = transport
        self.view = memoryview(bytearray(BUFFER_SIZE))

    def get_buffer(self, sizehint):
        if self.transport.get_write_buffer_size():
            self.view = memoryview(bytearray(BUFFER_SIZE))
        return self.view

    def buffer_updated(self, nbytes):
        self.transport.write(self.view[:nbytes])

    def connection_lost(self, exc):
        self.transport = None


# ---------------------------------------------------------------------------
# streams

async def echo_stream(reader, writer):
    read = reader.read
    write = writer.write
    drain = writer.drain
    try:
        while True:
            data = await read(READ_SIZE)
            if not data:
                break
            write(data)
            await drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


# ---------------------------------------------------------------------------
# sockets

async def echo_socket(loop, conn):
    recv = loop.sock_recv
    sendall = loop.sock_sendall
    try:
        while True:
            data = await recv(conn, READ_SIZE)
            if not data:
                break
            await sendall(conn, data)
    except ConnectionError:
        pass
    finally:
        conn.close()


async def accept_sockets(loop, lsock, tasks):
    while True:
        conn, _ = await loop.sock_accept(lsock)
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        task = loop.create_task(echo_socket(loop, conn))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


# ---------------------------------------------------------------------------

def listening_socket(host, port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock


async def start(loop, kind, host, port):
    """Start serving; return (port, keepalive objects)."""
    # Bind the socket ourselves so that every kind and loop gets the same
    # listening socket (and no getaddrinfo in an executor thread).
    sock = listening_socket(host, port)
    port = sock.getsockname()[1]
    if kind == "protocol":
        server = await loop.create_server(EchoProtocol, sock=sock, backlog=BACKLOG)
        return port, server
    if kind == "buffered":
        server = await loop.create_server(EchoBufferedProtocol, sock=sock, backlog=BACKLOG)
        return port, server
    if kind == "streams":
        server = await asyncio.start_server(echo_stream, sock=sock, backlog=BACKLOG)
        return port, server
    if kind == "sockets":
        tasks = set()
        acceptor = loop.create_task(accept_sockets(loop, sock, tasks))
        return port, (sock, acceptor, tasks)
    raise ValueError("unknown kind %r" % kind)


def quiet_exception_handler(loop, context):
    exc = context.get("exception")
    if isinstance(exc, (ConnectionError, BrokenPipeError)):
        return      # a load generator going away is not news
    loop.default_exception_handler(context)


def serve(start_coro_fn, loop_name, host, port, cpu):
    """Run start_coro_fn(loop, host, port) -> (port, keep) on a new loop; serve forever."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    loop = new_loop(loop_name)
    asyncio.set_event_loop(loop)
    loop.set_exception_handler(quiet_exception_handler)
    port, keep = loop.run_until_complete(start_coro_fn(loop, host, port))
    # SIGTERM keeps its default action (die at once): no teardown to measure
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.stdout.write("LISTENING %d\n" % port)
    sys.stdout.flush()
    loop.run_forever()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kind", choices=KINDS, required=True)
    ap.add_argument("--loop", choices=LOOPS, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--cpu", type=int, default=None, help="pin the server to this CPU")
    args = ap.parse_args(argv)
    serve(lambda loop, host, port: start(loop, args.kind, host, port),
          args.loop, args.host, args.port, args.cpu)


if __name__ == "__main__":
    main()
