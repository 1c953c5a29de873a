"""A minimal HTTP/1.1 responder on asyncio.Protocol, run by boucle.

    python examples/http_hello.py [--host 127.0.0.1] [--port 8080]
    curl -i http://127.0.0.1:8080/some/path

Every request gets ``200 OK`` and a one-line plain-text greeting naming the
method, the path and the size of the request body. Connections are kept
alive as HTTP/1.1 says (HTTP/1.0 and ``Connection: close`` close them),
pipelined requests are answered in order, request bodies are read by
``Content-Length``, and malformed requests get ``400 Bad Request``.
The first line printed is ``http server: listening on http://HOST:PORT/``;
Ctrl-C (SIGINT) stops the server, closing the connections still open.

The protocol is callback-based: no coroutine per connection, only
`data_received` parsing what arrived, the way fast asyncio servers are
written. It also shows write flow control: when the transport's buffer is
full (a client that sends requests but does not read the answers), the
protocol stops reading until the buffer drains.
"""
import argparse
import asyncio

import boucle

MAX_HEAD = 64 * 1024                    # request line + headers
CONNECTIONS = set()                     # transports of the open connections


class HelloHTTP(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buffer = bytearray()
        self.closing = False
        CONNECTIONS.add(transport)

    def connection_lost(self, exc):
        CONNECTIONS.discard(self.transport)

    def data_received(self, data):
        self.buffer += data
        while not self.closing:
            request = self.next_request()
            if request is None:         # incomplete: wait for more data
                break
            self.respond(*request)

    def next_request(self):
        """Remove one complete request from the buffer, or return None."""
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEAD:
                self.fail("request head too large")
            return None
        lines = self.buffer[:end].decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ")
            if not version.startswith("HTTP/1."):
                raise ValueError(version)
            headers = {}
            for line in lines[1:]:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if length < 0 or "transfer-encoding" in headers:
                raise ValueError("unsupported request body")
        except ValueError:
            self.fail("malformed request")
            return None
        if len(self.buffer) < end + 4 + length:
            return None                 # the body is still on its way
        del self.buffer[:end + 4 + length]
        connection = headers.get("connection", "").lower()
        keep_alive = (connection != "close" if version == "HTTP/1.1"
                      else connection == "keep-alive")
        return method, target, length, keep_alive

    def respond(self, method, target, body_size, keep_alive):
        body = f"Hello from boucle! {method} {target}, {body_size} bytes of body\n".encode()
        head = (
            "HTTP/1.1 200 OK\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n"
            "\r\n"
        ).encode()
        self.transport.write(head if method == "HEAD" else head + body)
        if not keep_alive:
            self.close()

    def fail(self, reason):
        body = f"{reason}\n".encode()
        self.transport.write(
            b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
        self.close()

    def close(self):
        self.closing = True
        self.transport.close()          # after the buffered response is sent

    def pause_writing(self):            # the client is not reading its answers
        self.transport.pause_reading()

    def resume_writing(self):
        if not self.closing:
            self.transport.resume_reading()


async def main(host, port):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(HelloHTTP, host, port)
    for sock in server.sockets:
        address = sock.getsockname()
        print(f"http server: listening on http://{address[0]}:{address[1]}/", flush=True)
    try:
        await asyncio.Event().wait()    # serve until cancelled (Ctrl-C)
    finally:
        server.close()                  # stop accepting...
        for transport in list(CONNECTIONS):
            transport.close()           # ...close the open connections...
        await server.wait_closed()      # ...and wait until they are gone


def cli(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    try:
        boucle.run(main(args.host, args.port))
    except KeyboardInterrupt:
        print("http server: stopped", flush=True)


if __name__ == "__main__":
    cli()
