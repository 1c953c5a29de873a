"""What third-party test suites hook into asyncio's transports, and must see
on boucle too (found by running websockets' own test suite on boucle):

* a patched ``asyncio.BaseTransport.get_extra_info`` (mock.patch): asyncio's
  socket and pipe transports inherit that method, so the patch reaches them;
* a ``socket.socket`` subclass handed to the loop (create_connection(sock=),
  connect_accepted_socket): asyncio's transport reads and writes through the
  object's own recv / recv_into / send / sendmsg / shutdown methods, so an
  override sees the traffic.

Every test runs on asyncio's own loop and on boucle (the ``loop`` fixture).
"""
import asyncio
import socket
import sys
from unittest import mock

import pytest


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


# -- socket.socket subclasses ----------------------------------------------

class Tracked(socket.socket):
    """Records which socket methods the transport called."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    def recv(self, *args):
        self.calls.append("recv")
        return super().recv(*args)

    def recv_into(self, *args):
        self.calls.append("recv_into")
        return super().recv_into(*args)

    def send(self, *args):
        self.calls.append("send")
        return super().send(*args)

    def sendmsg(self, *args):
        self.calls.append("sendmsg")
        return super().sendmsg(*args)

    def shutdown(self, *args):
        self.calls.append("shutdown")
        return super().shutdown(*args)


def tracked_pair():
    a, b = socket.socketpair()
    t = Tracked(a.family, a.type, a.proto, fileno=a.detach())
    t.setblocking(False)
    b.setblocking(False)
    return t, b


def test_socket_subclass_methods_are_called(loop):
    async def main():
        t, b = tracked_pair()
        try:
            tr, pr = await loop.create_connection(lambda: Proto(loop), sock=t)
            tr.write(b"hello")
            assert await loop.sock_recv(b, 100) == b"hello"
            assert "send" in t.calls
            await loop.sock_sendall(b, b"world")
            await pr.got
            assert bytes(pr.data) == b"world"
            assert "recv" in t.calls
            tr.write_eof()
            assert await loop.sock_recv(b, 100) == b""
            assert "shutdown" in t.calls
            tr.close()
            await pr.lost
        finally:
            b.close()
    run(loop, main())


def test_socket_subclass_buffered_protocol_uses_recv_into(loop):
    async def main():
        t, b = tracked_pair()
        try:
            tr, pr = await loop.create_connection(lambda: BufProto(loop), sock=t)
            await loop.sock_sendall(b, b"abc")
            await pr.got
            assert bytes(pr.data) == b"abc"
            assert "recv_into" in t.calls and "recv" not in t.calls
            tr.close()
            await pr.lost
        finally:
            b.close()
    run(loop, main())


def test_socket_subclass_buffered_writes(loop):
    # Data left over once the socket's buffer is full is sent later from
    # the transport's buffer, still through the subclass's methods.
    async def main():
        t, b = tracked_pair()
        try:
            t.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            tr, pr = await loop.create_connection(lambda: Proto(loop), sock=t)
            payload = bytes(range(256)) * 4096
            tr.write(payload[:len(payload) // 2])
            tr.write(payload[len(payload) // 2:])
            assert tr.get_write_buffer_size() > 0
            t.calls.clear()
            got = bytearray()
            while len(got) < len(payload):
                got += await loop.sock_recv(b, 65536)
            assert bytes(got) == payload
            # flushing the buffer: sendmsg() on 3.12+, send() before
            expected = "sendmsg" if sys.version_info >= (3, 12) else "send"
            assert t.calls and set(t.calls) == {expected}
            tr.close()
            await pr.lost
        finally:
            b.close()
    run(loop, main())


class Failing(socket.socket):
    """send() and recv() raise what the test sets."""
    send_exc = None
    recv_exc = None

    def send(self, *args):
        if self.send_exc is not None:
            raise self.send_exc
        return super().send(*args)

    def recv(self, *args):
        if self.recv_exc is not None:
            raise self.recv_exc
        return super().recv(*args)


@pytest.mark.parametrize("exc", [ValueError("boom"), ConnectionResetError(104, "reset")])
@pytest.mark.parametrize("where", ["send", "recv"])
def test_socket_subclass_errors_are_fatal(loop, exc, where):
    async def main():
        a, b = socket.socketpair()
        f = Failing(a.family, a.type, a.proto, fileno=a.detach())
        f.setblocking(False)
        b.setblocking(False)
        contexts = []
        loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
        try:
            tr, pr = await loop.create_connection(lambda: Proto(loop), sock=f)
            if where == "send":
                f.send_exc = exc
                tr.write(b"x")
            else:
                f.recv_exc = exc
                await loop.sock_sendall(b, b"x")
            lost = await pr.lost
            assert lost is exc
            assert tr.is_closing()
            return contexts
        finally:
            b.close()
    contexts = run(loop, main())
    if isinstance(exc, ConnectionResetError):
        assert contexts == []     # connection errors are only logged in debug
    else:
        assert len(contexts) == 1
        assert contexts[0]["exception"] is exc


def test_socket_subclass_blocking_error_is_retried(loop):
    async def main():
        a, b = socket.socketpair()
        f = Failing(a.family, a.type, a.proto, fileno=a.detach())
        f.setblocking(False)
        b.setblocking(False)
        try:
            tr, pr = await loop.create_connection(lambda: Proto(loop), sock=f)
            f.recv_exc = BlockingIOError()
            await loop.sock_sendall(b, b"x")
            await asyncio.sleep(0.05)
            assert not tr.is_closing()
            f.recv_exc = None
            await pr.got
            assert bytes(pr.data) == b"x"
            f.send_exc = BlockingIOError()
            tr.write(b"later")
            assert tr.get_write_buffer_size() == 5
            f.send_exc = None
            assert await loop.sock_recv(b, 100) == b"later"
            tr.close()
            await pr.lost
        finally:
            b.close()
    run(loop, main())


class Lying(socket.socket):
    """send()/sendmsg() answer a count they were not given."""
    answer = 0

    def send(self, data, *args):
        return self.answer

    def sendmsg(self, buffers, *args):
        return self.answer


@pytest.mark.parametrize("answer", [1000, -3])
def test_socket_subclass_out_of_range_send_count_is_fatal(answer):
    """boucle only (asyncio slices its data with the count and carries on):
    the count decides how much of boucle's C write buffer is dropped, so a
    count beyond what was offered, or negative, ends the connection with a
    RuntimeError instead of corrupting the buffer."""
    from conftest import boucle
    loop = boucle.new_event_loop()

    async def main():
        a, b = socket.socketpair()
        f = Lying(a.family, a.type, a.proto, fileno=a.detach())
        f.setblocking(False)
        loop.set_exception_handler(lambda lp, ctx: None)
        try:
            tr, pr = await loop.create_connection(lambda: Proto(loop), sock=f)
            f.answer = answer
            tr.write(b"abc")
            return await pr.lost
        finally:
            b.close()

    try:
        exc = loop.run_until_complete(asyncio.wait_for(main(), 30))
    finally:
        loop.close()
    assert isinstance(exc, RuntimeError) and "returned %d for 3 bytes" % answer in str(exc)
