"""boucle's ciphertext queues for TLS (boucle._core._tls_bios and TLSBuffer,
tlsbio.c): they replace the ssl.MemoryBIOs of boucle's SSLProtocol, so they
must behave as ssl.MemoryBIO does for asyncio's code, carry every byte
between OpenSSL and the transport, and free what they hold.
"""
import asyncio
import gc
import os
import socket
import ssl
import sys
import sysconfig
import tracemalloc

import pytest

from conftest import boucle, tls_handshake_in_memory

HERE = os.path.dirname(os.path.abspath(__file__))
CA_PEM = os.path.join(HERE, "certs", "ca.pem")
SERVER_PEM = os.path.join(HERE, "certs", "server.pem")

_core = boucle._core


def _queues_available():
    obj = ssl.create_default_context().wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO())
    return _core._tls_bios(obj._sslobj) is not None


QUEUES = _queues_available()
needs_queues = pytest.mark.skipif(
    not QUEUES, reason="this interpreter's _ssl does not expose OpenSSL's functions "
                       "(linked statically): boucle keeps asyncio's memory BIOs")


def test_queues_are_used_wherever_openssl_is_reachable():
    # boucle must not give up on an interpreter whose _ssl module reaches
    # OpenSSL as a shared library
    import ctypes
    import _ssl
    path = getattr(_ssl, "__file__", None)
    try:
        reachable = path is not None and bool(ctypes.CDLL(path).SSL_set0_rbio)
    except (OSError, AttributeError):
        reachable = False
    if sysconfig.get_config_var("Py_GIL_DISABLED") or sys.version_info >= (3, 15):
        reachable = False     # off by design there (tlsbio.c: ossl_load)
    assert QUEUES == reachable


def contexts():
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(SERVER_PEM)
    cctx = ssl.create_default_context(cafile=CA_PEM)
    return cctx, sctx


def queued(sslobj):
    bios = _core._tls_bios(sslobj._sslobj)
    assert bios is not None, "this interpreter's _ssl should take boucle's BIOs"
    return bios


def make_pair(client_queues, server_queues):
    """(client, server) sides (sslobj, incoming, outgoing), each over
    boucle's queues or over ssl.MemoryBIOs, handshaken."""
    cctx, sctx = contexts()
    sides = []
    for ctx, kw, q in ((cctx, {"server_hostname": "localhost"}, client_queues),
                       (sctx, {"server_side": True}, server_queues)):
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(inc, out, **kw)
        if q:
            inc, out = queued(obj)
        sides.append((obj, inc, out))
    c, s = sides
    tls_handshake_in_memory(c, s)
    return c, s


def read_all(side):
    obj = side[0]
    chunks = []
    while True:
        try:
            chunk = obj.read(1 << 20)
        except ssl.SSLWantReadError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def ops(bio):
    """The same sequence of MemoryBIO calls; what each answered."""
    out = [bio.pending, bio.eof, bio.read(), bio.write(b""), bio.write(b"hello "),
           bio.write(bytearray(b"world")), bio.write(memoryview(b"!!")[:1]),
           bio.pending, bio.read(3), bio.read(0), bio.pending, bio.read(-1),
           bio.pending, bio.write(b"x" * 100000), bio.read(99999), bio.eof]
    bio.write_eof()
    out += [bio.pending, bio.eof, bio.read(), bio.eof, bio.read(5)]
    with pytest.raises(ssl.SSLError) as exc:
        bio.write(b"late")
    out.append(str(exc.value))
    with pytest.raises(TypeError):
        bio.write("text")
    return out


@needs_queues
def test_tls_buffer_answers_as_memory_bio():
    cctx, _ = contexts()
    obj = cctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="localhost")
    incoming, _ = queued(obj)
    assert ops(incoming) == ops(ssl.MemoryBIO())


@needs_queues
@pytest.mark.parametrize("client_queues,server_queues",
                         [(True, True), (True, False), (False, True)])
def test_data_crosses_both_ways_with_any_mix_of_bios(client_queues, server_queues):
    c, s = make_pair(client_queues, server_queues)
    for src, dst in ((c, s), (s, c), (c, s)):
        for size in (1, 1000, 16384, 16385, 300000):
            data = os.urandom(size)
            assert src[0].write(data) == size
            dst[1].write(src[2].read())
            assert read_all(dst) == data
    # close_notify from the client: the server sees the end of the stream
    with pytest.raises(ssl.SSLWantReadError):
        c[0].unwrap()
    s[1].write(c[2].read())
    assert s[0].read(10) == b""


@needs_queues
def test_end_of_ciphertext_reads_as_with_memory_bio():
    # write_eof() then reads: the SSL object sees the end of the stream, as
    # over a MemoryBIO (what it answers then depends on the interpreter and
    # OpenSSL: SSLEOFError, or b"" with Debian's 3.11), never "want more"
    def outcome(server_queues):
        c, s = make_pair(False, server_queues)
        c[0].write(b"last words")
        s[1].write(c[2].read())
        s[1].write_eof()
        got = [s[0].read(100)]
        try:
            got.append(s[0].read(100))
        except ssl.SSLError as exc:
            got.append(type(exc))
        got.append(s[1].eof)
        return got

    queues = outcome(True)
    assert queues == outcome(False)
    assert queues[0] == b"last words" and queues[2] is True
    assert queues[1] is not ssl.SSLWantReadError


@needs_queues
def test_a_tls_buffer_is_not_bytes_like():
    # as ssl.MemoryBIO: only get_buffer() hands out (the free) memory
    cctx, _ = contexts()
    obj = cctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="localhost")
    incoming, outgoing = queued(obj)
    incoming.write(b"secret")
    for q in (incoming, outgoing, ssl.MemoryBIO()):
        with pytest.raises(TypeError):
            memoryview(q)
        with pytest.raises(TypeError):
            bytes(q)
    with pytest.raises(OverflowError):
        incoming.read(2 ** 40)            # MemoryBIO.read takes a C int
    assert incoming.read() == b"secret"


@needs_queues
def test_bytes_handed_to_a_failing_transport_are_not_sent_again():
    # _ssl_write takes the records out of the queue before writing them, as
    # MemoryBIO.read() did: a write that raises leaves nothing to resend
    c, s = make_pair(True, False)

    async def main():
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        with a, b:
            transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, a)
            assert type(transport) is _core.StreamTransport
            transport.write_eof()
            with pytest.raises(RuntimeError, match="write_eof"):
                _core._ssl_write(c[0]._sslobj, c[2], b"payload", transport)
            assert c[2].pending == 0
            transport.abort()

    loop = boucle.new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


@needs_queues
def test_transport_reads_straight_into_the_incoming_queue():
    c, s = make_pair(False, True)
    data = os.urandom(200000)
    c[0].write(data)
    wire = c[2].read()
    got = []
    pos = 0
    for step in (1, 5, 4096, 70000, len(wire)):
        view = s[1].get_buffer(-1)
        assert len(view) >= 256 * 1024   # asyncio's SSLProtocol.max_size
        chunk = wire[pos:pos + step]
        view[:len(chunk)] = chunk
        del view
        s[1].commit(len(chunk))
        pos += len(chunk)
        got.append(read_all(s))
        if pos >= len(wire):
            break
    assert b"".join(got) == data
    assert s[1].pending == 0


@needs_queues
def test_commit_accepts_only_what_get_buffer_offered():
    _, s = make_pair(False, True)
    incoming = s[1]
    with pytest.raises(ValueError):
        incoming.commit(1)                   # no get_buffer() before
    view = incoming.get_buffer(10)
    offered = len(view)
    del view
    with pytest.raises(ValueError):
        incoming.commit(offered + 1)
    with pytest.raises(ValueError):
        incoming.commit(-1)
    incoming.commit(0)
    with pytest.raises(ValueError):
        incoming.commit(1)                   # the offer was used up
    view = incoming.get_buffer(10)
    del view
    incoming.write(b"abc")                   # data written meanwhile: the offer is void
    with pytest.raises(ValueError):
        incoming.commit(1)
    assert incoming.read() == b"abc"


@needs_queues
def test_an_exported_buffer_never_moves():
    _, s = make_pair(False, True)
    incoming = s[1]
    view = incoming.get_buffer(-1)
    room = len(view)
    view[:3] = b"abc"
    for size in (1, room + 1):
        with pytest.raises(BufferError):
            incoming.write(b"x" * size)     # the view is where it would go
    assert incoming.pending == 0
    view.release()
    incoming.commit(3)
    assert incoming.write(b"z" * (room + 1)) == room + 1
    assert incoming.pending == room + 4
    assert incoming.read(4) == b"abcz"


@needs_queues
def test_only_a_fresh_sslobject_takes_the_queues():
    cctx, _ = contexts()
    for thing in (None, 42, ssl.MemoryBIO(), b"x"):
        assert _core._tls_bios(thing) is None
    obj = cctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()          # the ClientHello waits in the outgoing MemoryBIO
    assert _core._tls_bios(obj._sslobj) is None
    fresh = cctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="localhost")
    assert _core._tls_bios(fresh._sslobj) is not None
    assert _core._tls_bios(fresh._sslobj) is None   # already taken


@needs_queues
def test_write_to_another_transport_gets_bytes():
    c, s = make_pair(True, False)

    class Recording:
        def __init__(self):
            self.chunks = []

        def write(self, data):
            self.chunks.append(data)

    t = Recording()
    assert _core._ssl_write(c[0]._sslobj, c[2], b"payload" * 1000, t) == 7000
    assert c[2].pending == 0
    assert all(type(x) is bytes for x in t.chunks)
    s[1].write(b"".join(t.chunks))
    assert read_all(s) == b"payload" * 1000


@needs_queues
def test_queues_are_freed_with_the_sslobject():
    def cycle():
        c, s = make_pair(True, True)
        c[0].write(os.urandom(100000))
        s[1].write(c[2].read())
        read_all(s)

    cycle()
    gc.collect()
    tracemalloc.start()
    try:
        for _ in range(5):
            cycle()
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(30):
            cycle()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    # each pair holds over 300 KiB of queues while alive: 30 leaked pairs
    # would be megabytes
    assert after - before < 512 * 1024


@needs_queues
@pytest.mark.skipif(sys.version_info < (3, 11),
                    reason="3.10 keeps asyncio's SSLProtocol as it is")
def test_boucle_connections_use_the_queues():
    cctx, sctx = contexts()
    seen = []

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.t = transport
            seen.append(transport._ssl_protocol)

        def data_received(self, data):
            self.t.write(data)

    async def main():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Echo, "127.0.0.1", 0, ssl=sctx)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=cctx, server_hostname="localhost")
        payload = os.urandom(3 * 1024 * 1024)
        writer.write(payload)
        got = await reader.readexactly(len(payload))
        client_proto = writer.transport._ssl_protocol
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return got == payload, client_proto

    loop = boucle.new_event_loop()
    try:
        same, client_proto = loop.run_until_complete(main())
    finally:
        loop.close()
    assert same
    assert client_proto._tls_queues and seen and seen[0]._tls_queues
    assert type(client_proto._incoming) is _core.TLSBuffer
