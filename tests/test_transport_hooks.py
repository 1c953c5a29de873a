"""What third-party test suites hook into asyncio's transports, and must see
on boucle too (found by running websockets' own test suite on boucle):

* a patched ``asyncio.BaseTransport.get_extra_info`` (mock.patch): asyncio's
  socket and pipe transports inherit that method, so the patch reaches them.

Every test runs on asyncio's own loop and on boucle (the ``loop`` fixture).
"""
import asyncio
import socket
from unittest import mock



def run(loop, coro, timeout=10):
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


class Proto(asyncio.Protocol):
    def __init__(self, loop):
        self.data = bytearray()
        self.got = loop.create_future()
        self.lost = loop.create_future()
        self.eof = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.data += data
        if not self.got.done():
            self.got.set_result(None)

    def eof_received(self):
        if not self.eof.done():
            self.eof.set_result(None)

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(exc)


class BufProto(asyncio.BufferedProtocol):
    def __init__(self, loop):
        self.buf = bytearray(100)
        self.data = bytearray()
        self.got = loop.create_future()
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport

    def get_buffer(self, sizehint):
        return self.buf

    def buffer_updated(self, nbytes):
        self.data += self.buf[:nbytes]
        if not self.got.done():
            self.got.set_result(None)

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(exc)


# -- get_extra_info patched on asyncio.BaseTransport ------------------------

def test_patched_base_get_extra_info_reaches_socket_transport(loop):
    async def main():
        a, b = socket.socketpair()
        try:
            tr, _ = await loop.create_connection(lambda: Proto(loop), sock=a)
            real = tr.get_extra_info("sockname")
            with mock.patch("asyncio.BaseTransport.get_extra_info",
                            return_value=("sock", 1234)) as patched:
                assert tr.get_extra_info("sockname") == ("sock", 1234)
                patched.assert_called_with("sockname")
            assert tr.get_extra_info("sockname") == real
            assert tr.get_extra_info("nothing", 5) == 5
            assert tr.get_extra_info(name="nothing", default=6) == 6
            assert tr.get_extra_info("socket").fileno() == a.fileno()
            tr.close()
        finally:
            b.close()
    run(loop, main())


def test_patched_base_get_extra_info_reaches_pipe_transport(loop):
    import os

    async def main():
        r, w = os.pipe()
        rf = os.fdopen(r, "rb", 0)
        tr, _ = await loop.connect_read_pipe(lambda: Proto(loop), rf)
        try:
            assert tr.get_extra_info("pipe") is rf
            with mock.patch("asyncio.BaseTransport.get_extra_info",
                            return_value="patched"):
                assert tr.get_extra_info("pipe") == "patched"
        finally:
            tr.close()
            os.close(w)
    run(loop, main())
