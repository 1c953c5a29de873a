#!/usr/bin/env python3
"""A minimal HTTP/1.1 keep-alive server for boucle's network benchmarks.

    python bench/http_server.py --loop asyncio|uvloop|boucle
                                [--host 127.0.0.1] [--port 0] [--cpu N]

An asyncio.Protocol feeding httptools' request parser; every complete request
gets a small fixed "200 OK" text response with Content-Length framing.  The
connection stays open unless the client asks to close it (HTTP/1.0 without
keep-alive, or "Connection: close").  Malformed requests get a 400 and the
connection is closed.

Prints "LISTENING <port>" on stdout when it accepts connections, then serves
until killed.  bench/echo.py (and bench/http.py) start this server.
"""

import argparse
import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import echo_servers  # noqa: E402  (loop factory, listening socket, serve())

import httptools  # noqa: E402

BODY = b"Hello, World!"

RESPONSE_KEEP_ALIVE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Length: %d\r\n"
    b"\r\n" % len(BODY)) + BODY

RESPONSE_CLOSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Length: %d\r\n"
    b"Connection: close\r\n"
    b"\r\n" % len(BODY)) + BODY

RESPONSE_BAD_REQUEST = (
    b"HTTP/1.1 400 Bad Request\r\n"
    b"Content-Length: 0\r\n"
    b"Connection: close\r\n"
    b"\r\n")


class HttpProtocol(asyncio.Protocol):
    __slots__ = ("transport", "parser", "url")

    def connection_made(self, transport):
        self.transport = transport
        self.parser = httptools.HttpRequestParser(self)
        self.url = None

    def data_received(self, data):
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._bad_request()
        except httptools.HttpParserError:
            self._bad_request()

    def _bad_request(self):
        if self.transport is not None:
            self.transport.write(RESPONSE_BAD_REQUEST)
            self.transport.close()

    # httptools callbacks
    def on_url(self, url):
        self.url = url

    def on_message_complete(self):
        transport = self.transport
        if transport is None:
            return
        if self.parser.should_keep_alive():
            transport.write(RESPONSE_KEEP_ALIVE)
        else:
            transport.write(RESPONSE_CLOSE)
            transport.close()

    def connection_lost(self, exc):
        self.transport = None


async def start(loop, host, port):
    sock = echo_servers.listening_socket(host, port)
    port = sock.getsockname()[1]
    server = await loop.create_server(HttpProtocol, sock=sock, backlog=echo_servers.BACKLOG)
    return port, server


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--loop", choices=echo_servers.LOOPS, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--cpu", type=int, default=None, help="pin the server to this CPU")
    args = ap.parse_args(argv)
    echo_servers.serve(start, args.loop, args.host, args.port, args.cpu)


if __name__ == "__main__":
    main()
