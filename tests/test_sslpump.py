"""The C data path of TLS (boucle._core._ssl_read / _ssl_write, sslpump.c)
and boucle's SSLProtocol subclass (boucle/_sslproto.py) that uses it.

The helpers are checked on in-memory TLS pairs (ssl.MemoryBIO), the subclass
on real connections, against what asyncio's own SSLProtocol does.
"""
import asyncio
import os
import ssl
import sys

import pytest

from conftest import boucle, tls_handshake_in_memory

HERE = os.path.dirname(os.path.abspath(__file__))
CA_PEM = os.path.join(HERE, "certs", "ca.pem")
SERVER_PEM = os.path.join(HERE, "certs", "server.pem")

pytestmark = pytest.mark.skipif(sys.version_info < (3, 11),
                                reason="3.10 keeps asyncio's SSLProtocol as it is")

_core = boucle._core


class RecordingTransport:
    def __init__(self):
        self.chunks = []

    def write(self, data):
        self.chunks.append(bytes(data))


def pair():
    """A handshaken (client, server) pair of SSLObjects over memory BIOs;
    each side is (sslobj, incoming, outgoing)."""
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(SERVER_PEM)
    cctx = ssl.create_default_context(cafile=CA_PEM)
    sides = []
    for ctx, kw in ((cctx, {"server_hostname": "localhost"}), (sctx, {"server_side": True})):
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        sides.append((ctx.wrap_bio(inc, out, **kw), inc, out))
    c, s = sides
    tls_handshake_in_memory(c, s)
    # TLS 1.3 session tickets: let the client consume them
    with pytest.raises(ssl.SSLWantReadError):
        c[0].read(1)
    return c, s


def send(src, dst, data):
    src[0].write(data)
    dst[1].write(src[2].read())


def test_read_everything_in_one_bytes_object():
    c, s = pair()
    msgs = [os.urandom(n) for n in (1, 1000, 16384, 70000, 5)]
    for m in msgs:
        send(c, s, m)
    data, eof = _core._ssl_read(s[0]._sslobj, s[1])
    assert type(data) is bytes and data == b"".join(msgs)
    assert eof is False
    assert s[1].pending == 0
    assert _core._ssl_read(s[0]._sslobj, s[1]) == (None, False)


def test_read_partial_record_then_rest():
    c, s = pair()
    msg = os.urandom(40000)
    c[0].write(msg)
    wire = c[2].read()
    s[1].write(wire[:20000])                   # one full record and a piece of the next
    first, eof = _core._ssl_read(s[0]._sslobj, s[1])
    assert not eof and msg.startswith(first) and 0 < len(first) < len(msg)
    s[1].write(wire[20000:])
    rest, eof = _core._ssl_read(s[0]._sslobj, s[1])
    assert not eof and first + rest == msg


def test_read_after_a_short_read_of_the_ssl_object():
    # plaintext already decrypted inside the SSL object, incoming BIO empty
    c, s = pair()
    msg = os.urandom(10000)
    send(c, s, msg)
    head = s[0].read(10)
    assert s[1].pending == 0 and s[0].pending() > 0
    data, eof = _core._ssl_read(s[0]._sslobj, s[1])
    assert head + data == msg and not eof


def test_read_close_notify_is_eof_after_data():
    c, s = pair()
    send(c, s, b"last words")
    with pytest.raises(ssl.SSLWantReadError):
        c[0].unwrap()                          # sends close_notify
    s[1].write(c[2].read())
    assert _core._ssl_read(s[0]._sslobj, s[1]) == (b"last words", True)


def test_read_error_propagates():
    c, s = pair()
    s[1].write(b"\x17\x03\x03\x00\x20" + b"\x00" * 32)   # an application record that fails to decrypt
    with pytest.raises(ssl.SSLError):
        _core._ssl_read(s[0]._sslobj, s[1])


def test_write_hands_the_records_to_the_transport():
    c, s = pair()
    tr = RecordingTransport()
    msg = os.urandom(100 * 1024)
    assert _core._ssl_write(s[0]._sslobj, s[2], msg, tr) == len(msg)
    assert s[2].pending == 0 and len(tr.chunks) == 1
    c[1].write(tr.chunks[0])
    got = b""
    while len(got) < len(msg):
        got += c[0].read(1 << 20)
    assert got == msg
    assert _core._ssl_write(s[0]._sslobj, s[2], bytearray(b"xy"), tr) == 2


def test_write_error_propagates_and_leaves_transport_alone():
    c, s = pair()
    tr = RecordingTransport()
    with pytest.raises(TypeError):
        _core._ssl_write(s[0]._sslobj, s[2], "text", tr)
    assert tr.chunks == []


def test_argument_count_is_checked():
    with pytest.raises(TypeError):
        _core._ssl_read(1)
    with pytest.raises(TypeError):
        _core._ssl_write(1, 2, 3)


# -- the SSLProtocol subclass on real connections ----------------------------


class PausingEcho(asyncio.Protocol):
    """Echo that pauses reading in data_received and resumes soon after."""

    def connection_made(self, tr):
        self.tr = tr
        self.loop = asyncio.get_running_loop()

    def data_received(self, data):
        self.tr.write(data)
        self.tr.pause_reading()
        self.loop.call_later(0.001, self.tr.resume_reading)


def server_ctx():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(SERVER_PEM)
    return ctx


async def echo_roundtrip(loop, proto_factory, payload, chunk):
    srv = await loop.create_server(proto_factory, "127.0.0.1", 0, ssl=server_ctx())
    port = srv.sockets[0].getsockname()[1]
    ctx = ssl.create_default_context(cafile=CA_PEM)
    r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                         server_hostname="localhost")
    ssl_proto = w.transport._ssl_protocol
    for i in range(0, len(payload), chunk):
        w.write(payload[i:i + chunk])
    got = await r.readexactly(len(payload))
    w.close()
    await w.wait_closed()
    srv.close()
    await srv.wait_closed()
    return got, ssl_proto


@pytest.mark.parametrize("chunk", [100, 70000, 1 << 20])
def test_echo_with_pauses(chunk):
    loop = boucle.new_event_loop()
    try:
        payload = os.urandom(1 << 20)
        got, proto = loop.run_until_complete(asyncio.wait_for(
            echo_roundtrip(loop, PausingEcho, payload, chunk), 60))
        assert got == payload
        from boucle._sslproto import SSLProtocol
        assert type(proto) is SSLProtocol
    finally:
        loop.close()


def test_app_write_buffer_flow_control():
    """pause_writing/resume_writing reach the app as on asyncio's loop."""

    class Writer(asyncio.Protocol):
        def __init__(self):
            self.events = []
            self.done = asyncio.get_running_loop().create_future()

        def connection_made(self, tr):
            self.tr = tr
            tr.set_write_buffer_limits(high=1)
            tr.write(b"x" * 100000)

        def pause_writing(self):
            self.events.append("pause")

        def resume_writing(self):
            self.events.append("resume")
            if not self.done.done():
                self.done.set_result(None)

    async def main(loop):
        sink_done = loop.create_future()

        class Sink(asyncio.Protocol):
            n = 0

            def data_received(self, data):
                Sink.n += len(data)
                if Sink.n >= 100000 and not sink_done.done():
                    sink_done.set_result(None)

        srv = await loop.create_server(Sink, "127.0.0.1", 0, ssl=server_ctx())
        port = srv.sockets[0].getsockname()[1]
        ctx = ssl.create_default_context(cafile=CA_PEM)
        holder = {}

        def factory():
            holder["p"] = Writer()
            return holder["p"]

        tr, _ = await loop.create_connection(factory, "127.0.0.1", port, ssl=ctx,
                                             server_hostname="localhost")
        await sink_done
        p = holder["p"]
        tr.close()
        srv.close()
        await srv.wait_closed()
        return p.events

    results = []
    for factory in (asyncio.new_event_loop, boucle.new_event_loop):
        loop = factory()
        try:
            results.append(loop.run_until_complete(asyncio.wait_for(main(loop), 30)))
        finally:
            loop.close()
    assert results[0] == results[1], results


def test_start_tls_uses_the_c_data_path():
    """loop.start_tls() (and so StreamWriter.start_tls, asyncpg's TLS, ...)
    wraps the transport in boucle's SSLProtocol, and the upgraded connection
    echoes a megabyte both ways intact."""
    from boucle._sslproto import SSLProtocol

    async def main(loop):
        async def handle(r, w):
            await r.readexactly(8)                      # "STARTTLS"
            w.write(b"OK")
            await w.drain()
            await w.start_tls(server_ctx())
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
            w.close()

        srv = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"STARTTLS")
        assert await r.readexactly(2) == b"OK"
        ctx = ssl.create_default_context(cafile=CA_PEM)
        await w.start_tls(ctx, server_hostname="localhost")
        kinds = type(w.transport._ssl_protocol)
        assert w.get_extra_info("ssl_object") is not None
        payload = os.urandom(1 << 20)
        w.write(payload)
        got = await r.readexactly(len(payload))
        w.close()
        await w.wait_closed()
        srv.close()
        await srv.wait_closed()
        return got == payload, kinds

    loop = boucle.new_event_loop()
    try:
        same, kind = loop.run_until_complete(asyncio.wait_for(main(loop), 60))
    finally:
        loop.close()
    assert same
    assert kind is SSLProtocol
