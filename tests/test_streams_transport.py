"""The stream socket transport (boucle._core.StreamTransport): protocols,
BufferedProtocol, streams, closing, errors, TLS, sendfile.

Every test runs on asyncio's own loop and on boucle (the ``loop`` fixture),
so what is asserted is asyncio's behaviour.
"""
import asyncio
import contextvars
import gc
import hashlib
import logging
import os
import socket
import ssl
import struct
import sys
import tempfile
import warnings

import pytest

from test.test_asyncio import utils as test_utils

from conftest import boucle

PY312 = sys.version_info >= (3, 12)


def run(loop, coro, timeout=30, cleanup=True):
    """Run coro; then close the transports of the Recorders it left open."""
    try:
        return loop.run_until_complete(asyncio.wait_for(coro, timeout))
    finally:
        live, Recorder.live = Recorder.live, []
        if cleanup and not loop.is_closed():
            for p in live:
                if p.transport is not None and not p.transport.is_closing():
                    p.transport.abort()
            pending = [p.lost for p in live if p.transport is not None
                       and p.transport.get_protocol() is p]
            if pending:
                loop.run_until_complete(asyncio.wait(pending, timeout=5))


class Recorder(asyncio.Protocol):
    """Records every callback; optionally echoes."""

    live = []   # instances made since the last run() (closed by run())

    def __init__(self, loop, echo=False, keep_open=None):
        self.loop = loop
        self.echo = echo
        self.keep_open = keep_open
        self.events = []
        self.data = bytearray()
        self.transport = None
        self.lost = loop.create_future()
        self.eof = loop.create_future()
        Recorder.live.append(self)

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")

    def data_received(self, data):
        assert type(data) is bytes
        self.events.append("data")
        self.data += data
        if self.echo:
            self.transport.write(data)

    def eof_received(self):
        self.events.append("eof")
        if not self.eof.done():
            self.eof.set_result(None)
        return self.keep_open

    def connection_lost(self, exc):
        self.events.append("lost")
        if not self.lost.done():
            self.lost.set_result(exc)


async def tcp_pair(loop, server_proto_factory, client_proto_factory):
    """A connected (client transport, client protocol, server protocol, server)."""
    server_protos = []
    made = loop.create_future()

    def factory():
        p = server_proto_factory()
        server_protos.append(p)
        if not made.done():
            made.set_result(p)
        return p

    server = await loop.create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    tr, pr = await loop.create_connection(client_proto_factory, "127.0.0.1", port)
    sp = await made
    # let the server side run connection_made
    for _ in range(3):
        await asyncio.sleep(0)
    return tr, pr, sp, server


def close_server(loop, server):
    server.close()
    if sys.version_info < (3, 12):
        loop.run_until_complete(server.wait_closed())


# ---------------------------------------------------------------------------
# streams


def test_stream_echo(loop):
    async def handle(r, w):
        while data := await r.read(1000):
            w.write(data)
            await w.drain()
        w.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        for i in range(50):
            msg = b"%d " % i * 100
            w.write(msg)
            assert await r.readexactly(len(msg)) == msg
        w.write_eof()
        assert await r.read() == b""
        w.close()
        await w.wait_closed()
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_connection_made_before_create_connection_returns(loop):
    order = []

    class P(asyncio.Protocol):
        def connection_made(self, tr):
            order.append("made")

    async def main():
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        tr, pr = await loop.create_connection(P, "127.0.0.1", port)
        order.append("returned")
        assert tr.get_protocol() is pr
        tr.close()
        server.close()

    run(loop, main())
    assert order == ["made", "returned"]


def test_protocol_echo_and_callback_order(loop):
    async def main():
        tr, pr, sp, server = await tcp_pair(
            loop, lambda: Recorder(loop, echo=True), lambda: Recorder(loop))
        tr.write(b"ping")
        while len(pr.data) < 4:
            await asyncio.sleep(0.01)
        assert bytes(pr.data) == b"ping"
        tr.write_eof()
        await sp.lost
        await pr.lost
        server.close()
        return pr.events, sp.events

    client_events, server_events = run(loop, main())
    assert server_events[0] == "made" and server_events[-2:] == ["eof", "lost"]
    assert client_events[0] == "made" and client_events[-2:] == ["eof", "lost"]


def test_buffered_protocol(loop):
    class BP(asyncio.BufferedProtocol):
        def __init__(self):
            self.buf = bytearray(7)   # small: forces many reads
            self.got = bytearray()
            self.sizes = []
            self.lost = loop.create_future()

        def connection_made(self, tr):
            self.tr = tr

        def get_buffer(self, sizehint):
            self.sizes.append(sizehint)
            return self.buf

        def buffer_updated(self, n):
            self.got += self.buf[:n]

        def eof_received(self):
            return None

        def connection_lost(self, exc):
            self.lost.set_result(exc)

    async def main():
        tr, pr, sp, server = await tcp_pair(loop, BP, asyncio.Protocol)
        payload = os.urandom(100_000)
        tr.write(payload)
        tr.close()
        assert await sp.lost is None
        server.close()
        return payload, sp

    payload, sp = run(loop, main())
    assert bytes(sp.got) == payload
    assert set(sp.sizes) == {-1}


@pytest.mark.parametrize("what", ["raise", "empty"])
def test_buffered_protocol_get_buffer_error(loop, what):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    class BP(asyncio.BufferedProtocol):
        def __init__(self):
            self.lost = loop.create_future()

        def get_buffer(self, n):
            if what == "raise":
                raise ZeroDivisionError("boom")
            return bytearray()

        def buffer_updated(self, n):
            pass

        def connection_lost(self, exc):
            self.lost.set_result(exc)

    async def main():
        tr, pr, sp, server = await tcp_pair(loop, BP, asyncio.Protocol)
        tr.write(b"x")
        exc = await sp.lost
        tr.close()
        server.close()
        return exc

    exc = run(loop, main())
    expected = ZeroDivisionError if what == "raise" else RuntimeError
    assert isinstance(exc, expected)
    assert len(contexts) == 1
    assert contexts[0]["message"] == "Fatal error: protocol.get_buffer() call failed."
    assert contexts[0]["exception"] is exc
    assert "transport" in contexts[0] and "protocol" in contexts[0]
    if what == "empty":
        assert str(exc) == "get_buffer() returned an empty buffer"


def test_data_received_error_is_fatal(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    class P(Recorder):
        def data_received(self, data):
            raise ValueError("bad data")

    async def main():
        tr, pr, sp, server = await tcp_pair(loop, lambda: P(loop), asyncio.Protocol)
        tr.write(b"x")
        exc = await sp.lost
        assert sp.transport.is_closing()
        tr.close()
        server.close()
        return exc

    exc = run(loop, main())
    assert isinstance(exc, ValueError)
    assert [c["message"] for c in contexts] == ["Fatal error: protocol.data_received() call failed."]
    assert contexts[0]["exception"] is exc


def test_eof_received_keep_open_half_close(loop):
    async def main():
        tr, pr, sp, server = await tcp_pair(
            loop, lambda: Recorder(loop, keep_open=True), lambda: Recorder(loop))
        tr.write(b"request")
        tr.write_eof()
        await sp.eof
        assert bytes(sp.data) == b"request"
        assert not sp.transport.is_closing()
        # still writable after the peer's EOF
        sp.transport.write(b"response")
        sp.transport.close()
        assert await pr.lost is None
        assert await sp.lost is None
        server.close()
        return bytes(pr.data), pr.events

    data, events = run(loop, main())
    assert data == b"response"
    assert events[-2:] == ["eof", "lost"]


def test_eof_received_false_closes(loop):
    async def main():
        tr, pr, sp, server = await tcp_pair(loop, lambda: Recorder(loop), lambda: Recorder(loop))
        tr.write_eof()
        assert await sp.lost is None
        assert sp.transport.is_closing()
        tr.close()
        server.close()
        return sp.events

    assert run(loop, main())[-2:] == ["eof", "lost"]


def test_write_eof_rules(loop):
    async def main():
        tr, pr, sp, server = await tcp_pair(loop, lambda: Recorder(loop), lambda: Recorder(loop))
        assert tr.can_write_eof() is True
        tr.write(b"abc")
        tr.write_eof()
        tr.write_eof()   # idempotent
        with pytest.raises(RuntimeError, match=r"Cannot call write\(\) after write_eof\(\)"):
            tr.write(b"x")
        with pytest.raises(RuntimeError):
            tr.writelines([b"x"])
        await sp.eof
        assert bytes(sp.data) == b"abc"
        tr.close()
        server.close()

    run(loop, main())


def test_write_type_error(loop):
    async def main():
        tr, pr, sp, server = await tcp_pair(loop, lambda: Recorder(loop), lambda: Recorder(loop))
        with pytest.raises(TypeError, match="data argument must be a bytes-like object, not 'str'"):
            tr.write("text")
        tr.write(b"")   # no-op
        assert tr.get_write_buffer_size() == 0
        tr.close()
        server.close()

    run(loop, main())


def test_write_accepts_bytearray_and_memoryview(loop):
    async def main():
        tr, pr, sp, server = await tcp_pair(loop, lambda: Recorder(loop), asyncio.Protocol)
        ba = bytearray(b"ab")
        tr.write(ba)
        tr.write(memoryview(b"cdef")[1:3])
        tr.writelines([b"g", bytearray(b"h"), memoryview(b"i")])
        tr.close()
        await sp.lost
        server.close()
        return bytes(sp.data)

    assert run(loop, main()) == b"abdeghi"


def test_writelines_large(loop):
    async def main():
        tr, pr, sp, server = await tcp_pair(loop, lambda: Recorder(loop), asyncio.Protocol)
        parts = [os.urandom(n) for n in (1, 100_000, 7, 3_000_000, 10)] * 3
        tr.writelines(parts)
        tr.writelines([])
        tr.close()
        await sp.lost
        server.close()
        return b"".join(parts), bytes(sp.data)

    sent, got = run(loop, main())
    assert got == sent


def test_close_flushes_buffer_first(loop):
    # more than the kernel's socket buffers can take (loopback autotuning)
    payload = os.urandom(1024 * 1024) * 32

    async def main():
        tr, pr, sp, server = await tcp_pair(loop, lambda: Recorder(loop), lambda: Recorder(loop))
        sp.transport.pause_reading()
        tr.write(payload)
        assert tr.get_write_buffer_size() > 0    # the kernel took only part
        tr.close()
        assert tr.is_closing()
        assert not pr.lost.done()
        await asyncio.sleep(0.05)
        assert not pr.lost.done()               # still flushing
        sp.transport.resume_reading()
        assert await pr.lost is None
        await sp.lost
        server.close()
        return bytes(sp.data), pr.events

    got, events = run(loop, main())
    assert got == payload
    assert events == ["made", "lost"]


def test_abort_drops_buffer(loop):
    async def main():
        tr, pr, sp, server = await tcp_pair(loop, lambda: Recorder(loop), lambda: Recorder(loop))
        sp.transport.pause_reading()
        tr.write(b"x" * (8 * 1024 * 1024))
        assert tr.get_write_buffer_size() > 0
        tr.abort()
        assert tr.is_closing()
        assert tr.get_write_buffer_size() == 0
        assert await pr.lost is None
        sp.transport.resume_reading()
        await sp.lost
        server.close()
        return len(sp.data)

    assert run(loop, main()) < 8 * 1024 * 1024


def test_peer_reset_gives_connection_lost_with_error(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    async def main():
        tr, pr, sp, server = await tcp_pair(loop, lambda: Recorder(loop), lambda: Recorder(loop))
        # RST instead of FIN from the server side
        sock = sp.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sp.transport.abort()
        exc = await pr.lost
        server.close()
        return exc

    exc = run(loop, main())
    assert isinstance(exc, ConnectionResetError)
    assert contexts == []    # OSErrors are not reported to the handler


def test_write_after_reset_is_fatal_and_quiet(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    async def main():
        tr, pr, sp, server = await tcp_pair(loop, lambda: Recorder(loop), lambda: Recorder(loop))
        tr.pause_reading()
        sock = sp.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sp.transport.abort()
        await sp.lost
        await asyncio.sleep(0.05)
        tr.write(b"x" * 100)    # EPIPE/ECONNRESET: fatal write error
        exc = await pr.lost
        server.close()
        return exc

    exc = run(loop, main())
    assert isinstance(exc, (ConnectionResetError, BrokenPipeError))
    assert contexts == []


def test_writes_after_close_are_counted_and_warned(loop, caplog):
    async def main():
        tr, pr, sp, server = await tcp_pair(loop, lambda: Recorder(loop), lambda: Recorder(loop))
        tr.abort()
        await pr.lost
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            for _ in range(7):
                tr.write(b"data")
        server.close()

    run(loop, main())
    # (debug mode may add "Executing <...> took N seconds" on a busy machine)
    msgs = [r.getMessage() for r in caplog.records
            if r.name == "asyncio" and not r.getMessage().startswith("Executing ")]
    # conn_lost is 1 after abort(); the warning starts once it reaches 5
    assert msgs == ["socket.send() raised exception."] * 3


def test_close_is_idempotent_and_lost_once(loop):
    async def main():
        tr, pr, sp, server = await tcp_pair(loop, lambda: Recorder(loop), lambda: Recorder(loop))
        tr.close()
        tr.close()
        tr.abort()
        await pr.lost
        await asyncio.sleep(0.01)
        server.close()
        return pr.events

    assert run(loop, main()) == ["made", "lost"]


def test_connection_lost_exception_goes_to_handler(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    class P(asyncio.Protocol):
        def connection_lost(self, exc):
            raise KeyError("lost")

    async def main():
        tr, pr, sp, server = await tcp_pair(loop, lambda: Recorder(loop), P)
        tr.close()
        for _ in range(5):
            await asyncio.sleep(0)
        assert tr.get_extra_info("socket").fileno() == -1   # closed anyway
        server.close()

    run(loop, main())
    assert len(contexts) == 1
    assert isinstance(contexts[0]["exception"], KeyError)


def test_pause_resume_reading_idempotent(loop):
    async def main():
        tr, pr, sp, server = await tcp_pair(loop, lambda: Recorder(loop), lambda: Recorder(loop))
        t = sp.transport
        assert t.is_reading()
        t.pause_reading()
        t.pause_reading()
        assert not t.is_reading()
        tr.write(b"hello")
        await asyncio.sleep(0.05)
        assert sp.data == b""
        t.resume_reading()
        t.resume_reading()
        assert t.is_reading()
        while not sp.data:
            await asyncio.sleep(0.01)
        assert sp.data == b"hello"
        t.close()
        assert not t.is_reading()
        t.resume_reading()       # no effect once closing
        assert not t.is_reading()
        tr.close()
        server.close()

    run(loop, main())


def test_pause_reading_in_connection_made(loop_factory, request):
    if sys.version_info < (3, 11) and not loop_factory.is_boucle:
        request.node.add_marker(pytest.mark.xfail(
            reason="asyncio 3.10 starts reading even when connection_made() paused "
                   "it (fixed in 3.11); boucle does what 3.11+ does", strict=True))
    loop = loop_factory()
    class P(Recorder):
        def connection_made(self, tr):
            super().connection_made(tr)
            tr.pause_reading()

    async def main():
        tr, pr, sp, server = await tcp_pair(loop, lambda: P(loop), asyncio.Protocol)
        tr.write(b"data")
        await asyncio.sleep(0.05)
        assert sp.data == b""
        assert not sp.transport.is_reading()
        sp.transport.resume_reading()
        while not sp.data:
            await asyncio.sleep(0.01)
        tr.close()
        sp.transport.close()
        server.close()

    run(loop, main())


def test_set_protocol_switches_readers(loop):
    async def main():
        tr, pr, sp, server = await tcp_pair(loop, lambda: Recorder(loop), lambda: Recorder(loop))
        t = sp.transport
        other = Recorder(loop)
        t.set_protocol(other)
        assert t.get_protocol() is other
        tr.write(b"to other")
        while not other.data:
            await asyncio.sleep(0.01)
        assert sp.data == b""

        class BP(asyncio.BufferedProtocol):
            got = bytearray()
            buf = bytearray(100)

            def get_buffer(self, n):
                return self.buf

            def buffer_updated(self, n):
                self.got += self.buf[:n]

        bp = BP()
        t.set_protocol(bp)
        tr.write(b"to buffered")
        while not bp.got:
            await asyncio.sleep(0.01)
        tr.close()
        t.close()
        server.close()
        return bytes(other.data), bytes(bp.got)

    assert run(loop, main()) == (b"to other", b"to buffered")


def test_extra_info(loop):
    async def main():
        tr, pr, sp, server = await tcp_pair(loop, lambda: Recorder(loop), asyncio.Protocol)
        sock = tr.get_extra_info("socket")
        assert isinstance(sock, asyncio.trsock.TransportSocket)
        assert tr.get_extra_info("sockname") == sock.getsockname()
        assert tr.get_extra_info("peername") == server.sockets[0].getsockname()
        assert sp.transport.get_extra_info("peername") == tr.get_extra_info("sockname")
        assert tr.get_extra_info("nope") is None
        assert tr.get_extra_info("nope", 42) == 42
        assert tr.get_extra_info("nope", default=7) == 7
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert isinstance(tr, asyncio.Transport)
        assert isinstance(tr, asyncio.transports._FlowControlMixin)
        tr.close()
        assert tr.get_extra_info("peername") is not None
        server.close()

    run(loop, main())


def test_nodelay_on_sockets_made_with_proto_0():
    """TCP_NODELAY on every TCP transport, including sockets created with
    socket.socket()'s default proto 0 and those accepted from such a
    listener (gunicorn's, uvicorn --workers'): asyncio skips them (its
    _set_nodelay wants proto == IPPROTO_TCP), uvloop does not, and without
    it a reply written in two parts waits for the peer's delayed ACK.
    boucle only: asyncio differs here on purpose (docs/COMPATIBILITY.md)."""
    loop = boucle.new_event_loop()

    async def main():
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        assert lsock.proto == 0
        lsock.bind(("127.0.0.1", 0))
        accepted = loop.create_future()

        class Server(asyncio.Protocol):
            def connection_made(self, tr):
                accepted.set_result(tr)

        server = await loop.create_server(Server, sock=lsock)
        csock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        csock.setblocking(False)
        await loop.sock_connect(csock, lsock.getsockname())
        ctr, _ = await loop.create_connection(asyncio.Protocol, sock=csock)
        str_ = await accepted
        got = [t.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
               for t in (ctr, str_)]
        protos = [t.get_extra_info("socket").proto for t in (ctr, str_)]
        ctr.close()
        str_.close()
        server.close()
        await server.wait_closed()
        return got, protos

    try:
        got, protos = loop.run_until_complete(asyncio.wait_for(main(), 30))
    finally:
        loop.close()
    assert protos == [0, 0]
    assert all(v != 0 for v in got), got


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets")
def test_unix_transport_unaffected_by_nodelay(loop):
    """The TCP option is not for Unix sockets: the transport works as before."""
    async def main():
        a, b = socket.socketpair()
        b.setblocking(False)
        tr, pr = await loop.connect_accepted_socket(lambda: Recorder(loop), a)
        tr.write(b"ping")
        data = await loop.sock_recv(b, 4)
        tr.close()
        b.close()
        return data

    assert run(loop, main()) == b"ping"


def test_repr(loop):
    async def main():
        tr, pr, sp, server = await tcp_pair(loop, lambda: Recorder(loop), lambda: Recorder(loop))
        fd = tr.get_extra_info("socket").fileno()
        r = repr(tr)
        assert r.endswith(f" fd={fd} read=polling write=<idle, bufsize=0>>"), r
        tr.pause_reading()
        assert repr(tr).endswith(f" fd={fd} read=idle write=<idle, bufsize=0>>")
        tr.close()
        assert f" closing fd={fd} " in repr(tr)
        await asyncio.sleep(0.01)
        assert repr(tr).endswith(f" closed fd={fd}>")
        server.close()

    run(loop, main())


def test_unclosed_transport_resource_warning(loop_factory):
    loop = loop_factory()

    async def main():
        tr, pr, sp, server = await tcp_pair(loop, lambda: Recorder(loop), lambda: Recorder(loop))
        server.close()
        return [tr, sp]

    objs = run(loop, main(), cleanup=False)
    sock = objs[0].get_extra_info("socket")
    loop.close()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        del objs
        gc.collect()
    msgs = [str(x.message) for x in w if issubclass(x.category, ResourceWarning)]
    assert len([m for m in msgs if m.startswith("unclosed transport <")]) == 2, msgs
    assert sock.fileno() == -1


def test_data_received_sees_creation_context(loop):
    var = contextvars.ContextVar("var", default="unset")
    seen = []

    class P(Recorder):
        def data_received(self, data):
            seen.append(var.get())
            super().data_received(data)

    async def main():
        var.set("creator")
        tr, pr, sp, server = await tcp_pair(loop, lambda: Recorder(loop), lambda: P(loop))
        var.set("other")
        sp.transport.write(b"x")
        while not pr.data:
            await asyncio.sleep(0.01)
        tr.close()
        sp.transport.close()
        server.close()

    run(loop, main())
    assert seen == ["creator"]


def test_large_transfer_with_random_pauses(loop):
    """Echo 64 MiB (100 MiB on boucle) with random pause/resume on both sides."""
    import random
    total = (100 if "boucle" in type(loop).__module__ else 64) * 1024 * 1024
    rnd = random.Random(1234)

    class Echo(asyncio.Protocol):
        def connection_made(self, tr):
            self.tr = tr
            self.paused_writing = False

        def data_received(self, data):
            self.tr.write(data)
            if rnd.random() < 0.05:
                self.tr.pause_reading()
                loop.call_later(rnd.random() * 0.002, self.tr.resume_reading)

        def pause_writing(self):
            self.tr.pause_reading()

        def resume_writing(self):
            self.tr.resume_reading()

        def eof_received(self):
            return False   # close (after sending what is buffered)

    class Client(asyncio.Protocol):
        def __init__(self):
            self.h = hashlib.sha256()
            self.n = 0
            self.done = loop.create_future()
            self.can_write = loop.create_future()
            self.can_write.set_result(None)

        def connection_made(self, tr):
            self.tr = tr

        def data_received(self, data):
            self.h.update(data)
            self.n += len(data)
            if rnd.random() < 0.05:
                self.tr.pause_reading()
                loop.call_later(rnd.random() * 0.002, self.tr.resume_reading)
            if self.n >= total and not self.done.done():
                self.done.set_result(None)

        def pause_writing(self):
            self.can_write = loop.create_future()

        def resume_writing(self):
            self.can_write.set_result(None)

    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        tr, cl = await loop.create_connection(Client, "127.0.0.1", port)
        sent = hashlib.sha256()
        block = rnd.randbytes(1024 * 1024) if hasattr(rnd, "randbytes") else os.urandom(1024 * 1024)
        left = total
        i = 0
        while left:
            await cl.can_write
            n = min(left, rnd.randrange(1, 300_000))
            off = (i * 7919) % (len(block) - n) if n < len(block) else 0
            chunk = block[off:off + n]
            sent.update(chunk)
            tr.write(chunk)
            left -= n
            i += 1
        tr.write_eof()
        await cl.done
        tr.close()
        server.close()
        return sent.hexdigest(), cl.h.hexdigest(), cl.n

    s, r, n = run(loop, main(), timeout=120)
    assert n == total
    assert s == r


# ---------------------------------------------------------------------------
# TLS over the transport


def test_tls_echo_streams(loop):
    server_ctx = test_utils.simple_server_sslcontext()
    client_ctx = test_utils.simple_client_sslcontext()

    async def handle(r, w):
        data = await r.read(100)
        w.write(data.upper())
        await w.drain()
        w.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx)
        assert w.get_extra_info("sslcontext") is client_ctx
        w.write(b"secret")
        data = await r.read()
        w.close()
        try:
            await w.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass
        server.close()
        return data

    assert run(loop, main()) == b"SECRET"


def test_start_tls_upgrade(loop):
    server_ctx = test_utils.simple_server_sslcontext()
    client_ctx = test_utils.simple_client_sslcontext()

    async def handle(r, w):
        assert await r.readline() == b"STARTTLS\n"
        w.write(b"OK\n")
        await w.drain()
        await w.start_tls(server_ctx)
        data = await r.readline()
        w.write(b"tls:" + data)
        await w.drain()
        w.close()

    async def main():
        if not hasattr(asyncio.StreamWriter, "start_tls"):
            # 3.10: do it with loop.start_tls on both sides
            return None
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"STARTTLS\n")
        assert await r.readline() == b"OK\n"
        await w.start_tls(client_ctx)
        w.write(b"hello\n")
        data = await r.readline()
        w.close()
        try:
            await w.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass
        server.close()
        return data

    data = run(loop, main())
    assert data in (None, b"tls:hello\n")


def test_loop_start_tls_protocols(loop):
    server_ctx = test_utils.simple_server_sslcontext()
    client_ctx = test_utils.simple_client_sslcontext()

    class Upper(asyncio.Protocol):
        def connection_made(self, tr):
            self.tr = tr

        def data_received(self, data):
            self.tr.write(data.upper())

    async def main():
        server_tls = loop.create_future()

        class Plain(asyncio.Protocol):
            def connection_made(self, tr):
                self.tr = tr

            def data_received(self, data):
                assert data == b"go"
                self.tr.pause_reading()

                async def up():
                    proto = Upper()
                    new = await loop.start_tls(self.tr, proto, server_ctx, server_side=True)
                    proto.connection_made(new)
                    server_tls.set_result(new)
                loop.create_task(up())
                self.tr.write(b"ok")

        server = await loop.create_server(Plain, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        got = loop.create_future()

        class C(asyncio.Protocol):
            def data_received(self, data):
                if not got.done():
                    got.set_result(data)

        tr, pr = await loop.create_connection(C, "127.0.0.1", port)
        tr.write(b"go")
        assert await got == b"ok"
        got2 = loop.create_future()
        pr.data_received = lambda d: got2.done() or got2.set_result(d)
        tls_tr = await loop.start_tls(tr, pr, client_ctx, server_hostname="localhost")
        await server_tls
        tls_tr.write(b"abc")
        res = await got2
        tls_tr.close()
        (await server_tls).close()
        server.close()
        return res

    assert run(loop, main()) == b"ABC"


# ---------------------------------------------------------------------------
# sendfile


@pytest.fixture
def data_file():
    data = os.urandom(3 * 1024 * 1024 + 17)
    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(data)
    yield f.name, data
    os.unlink(f.name)


def test_sendfile_over_transport(loop, data_file):
    path, data = data_file

    async def main():
        tr, pr, sp, server = await tcp_pair(loop, lambda: Recorder(loop), lambda: Recorder(loop))
        with open(path, "rb") as f:
            tr.write(b"head:")
            n = await loop.sendfile(tr, f)
            assert n == len(data)
            assert f.tell() == len(data)
            tr.write(b":tail")
            tr.close()
        await sp.lost
        server.close()
        return bytes(sp.data)

    assert run(loop, main()) == b"head:" + data + b":tail"


def test_sendfile_offset_count(loop, data_file):
    path, data = data_file

    async def main():
        tr, pr, sp, server = await tcp_pair(loop, lambda: Recorder(loop), lambda: Recorder(loop))
        with open(path, "rb") as f:
            n = await loop.sendfile(tr, f, offset=1000, count=123_456)
            assert n == 123_456
            assert f.tell() == 1000 + 123_456
        tr.close()
        await sp.lost
        server.close()
        return bytes(sp.data)

    assert run(loop, main()) == data[1000:1000 + 123_456]


def test_sendfile_errors(loop, data_file):
    path, data = data_file

    async def main():
        tr, pr, sp, server = await tcp_pair(loop, lambda: Recorder(loop), lambda: Recorder(loop))
        with open(path, "r") as f:
            with pytest.raises(ValueError, match="binary mode"):
                await loop.sendfile(tr, f)
        with open(path, "rb") as f:
            with pytest.raises(ValueError):
                await loop.sendfile(tr, f, offset=-1)
            with pytest.raises(TypeError):
                await loop.sendfile(tr, f, count="1")
            # write() is refused while a sendfile is running
            task = loop.create_task(loop.sendfile(tr, f))
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            if not task.done():
                with pytest.raises(RuntimeError, match="sendfile is in progress"):
                    tr.write(b"x")
            await task
        tr.close()
        with open(path, "rb") as f:
            with pytest.raises(RuntimeError, match="Transport is closing"):
                await loop.sendfile(tr, f)
        await sp.lost
        server.close()

    run(loop, main())


def test_sendfile_non_regular_file_falls_back(loop):
    async def main():
        tr, pr, sp, server = await tcp_pair(loop, lambda: Recorder(loop), lambda: Recorder(loop))
        import io
        f = io.BytesIO(b"in memory" * 1000)
        n = await loop.sendfile(tr, f)
        with pytest.raises(asyncio.SendfileNotAvailableError):
            await loop.sendfile(tr, io.BytesIO(b"x"), fallback=False)
        tr.close()
        await sp.lost
        server.close()
        return n, bytes(sp.data)

    n, got = run(loop, main())
    assert n == 9000 and got == b"in memory" * 1000


# ---------------------------------------------------------------------------
# Unix sockets (needs create_unix_server)


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets")
def test_unix_socketpair_transport(loop):
    """A Unix stream socket through connect_accepted_socket (both ends)."""
    async def main():
        a, b = socket.socketpair()
        tr_a, pa = await loop.connect_accepted_socket(lambda: Recorder(loop, echo=True), a)
        tr_b, pb = await loop.connect_accepted_socket(lambda: Recorder(loop), b)
        assert tr_a.get_extra_info("peername") is not None
        payload = os.urandom(2_000_000)
        tr_b.write(payload)
        while len(pb.data) < len(payload):
            await asyncio.sleep(0.01)
        tr_b.close()
        await pa.lost
        await pb.lost
        return bytes(pb.data) == payload, pa.events[-2:]

    same, events = run(loop, main())
    assert same and events == ["eof", "lost"]


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets")
def test_event_polled_while_paused_does_not_read_after_resume(loop):
    """Found by fuzz/fuzz_loop.py --diff.  An I/O event only runs the
    callbacks registered when it was polled: asyncio queues the writer (and
    not the reader) for a transport whose reading is paused, even if
    resume_reading() runs before that writer.  Here the peer closes with
    unread data: reading would give ECONNRESET, writing gives EPIPE, and
    asyncio reports the write error."""
    async def main():
        a, b = socket.socketpair()
        tr, pr = await loop.connect_accepted_socket(lambda: Recorder(loop), a)
        tr.pause_reading()
        tr.write(b"x" * 4_000_000)           # more than the socket takes
        assert tr.get_write_buffer_size() > 0
        b.close()                             # unread data: a reset
        # The task resumes before the I/O work this iteration queued behind
        # it: the event was polled with reading paused.
        await asyncio.sleep(0)
        tr.resume_reading()
        return await pr.lost

    exc = run(loop, main())
    assert isinstance(exc, BrokenPipeError), repr(exc)


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets")
def test_pause_then_resume_drops_the_read_event_already_polled(loop):
    """Found by fuzz/fuzz_loop.py --diff.  pause_reading() cancels the
    reader handle asyncio has already queued for this iteration, and a
    resume_reading() in the same callback registers a new one that only the
    next poll can queue: the data (here an EOF) arrives one iteration later,
    not in the iteration of the pause/resume pair."""
    async def main():
        a, b = socket.socketpair()
        tr, pr = await loop.connect_accepted_socket(lambda: Recorder(loop, keep_open=True), a)
        await asyncio.sleep(0)
        b.shutdown(socket.SHUT_WR)
        # Resumed before the EOF event this iteration polls, which is queued
        # behind this task's step.
        await asyncio.sleep(0)
        tr.pause_reading()
        tr.resume_reading()
        await asyncio.sleep(0)        # the iteration of the pause/resume
        seen_then = list(pr.events)
        await asyncio.sleep(0)        # the next poll reports the EOF again
        seen_next = list(pr.events)
        tr.close()
        b.close()
        await pr.lost
        return seen_then, seen_next

    seen_then, seen_next = run(loop, main())
    assert seen_then == ["made"]
    assert seen_next == ["made", "eof"]
