"""Datagram endpoints: loop.create_datagram_endpoint and the datagram
transport (UDP over IPv4/IPv6, AF_UNIX datagrams).

Every scenario runs on asyncio's own loop and on boucle's (the ``loop``
fixture), so what is asserted is asyncio's behaviour."""
import asyncio
import gc
import inspect
import logging
import os
import socket
import sys
import uuid
import warnings

import pytest
from asyncio import selector_events

PY311 = sys.version_info >= (3, 11)   # datagram transports can pause reading
PY313 = sys.version_info >= (3, 13)   # empty datagrams, 8-byte header in the buffer size
# asyncio 3.13.0-3.13.5 adds 8 bytes per buffered datagram to the write
# buffer size but never takes them off (gh-135444, fixed with _header_size);
# boucle does what the fixed asyncio does.
ASYNCIO_HEADER_LEAK = PY313 and not hasattr(
    selector_events._SelectorDatagramTransport, "_header_size")
HEADER = 8 if PY313 else 0


def run(loop, coro, timeout=30):
    """Run coro on loop, failing instead of hanging."""
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


async def until(predicate, timeout=10.0):
    """Wait (polling) until predicate() is true; fail after timeout."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.001)


def ipv6_loopback():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Recorder(asyncio.DatagramProtocol):
    """Records every protocol call, in order."""

    def __init__(self):
        self.events = []
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")

    def datagram_received(self, data, addr):
        self.events.append(("data", data, addr))

    def error_received(self, exc):
        self.events.append(("error", exc))

    def connection_lost(self, exc):
        self.events.append(("lost", exc))

    def pause_writing(self):
        self.events.append("pause")

    def resume_writing(self):
        self.events.append("resume")

    def data(self):
        return [e[1] for e in self.events if isinstance(e, tuple) and e[0] == "data"]

    def lost(self):
        return any(isinstance(e, tuple) and e[0] == "lost" for e in self.events)


class Echo(Recorder):
    def datagram_received(self, data, addr):
        super().datagram_received(data, addr)
        if addr is not None:             # an unnamed AF_UNIX sender has no address
            self.transport.sendto(data, addr)


def unix_dgram_pair(tmp_path):
    """Two bound AF_UNIX datagram sockets, the first connected to the second
    (a truthy peername: the transport uses send()). Non-blocking."""
    tag = uuid.uuid4().hex[:8]
    ours = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    peer = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.bind(str(tmp_path / f"ours-{tag}.sock"))
    peer.bind(str(tmp_path / f"peer-{tag}.sock"))
    ours.connect(peer.getsockname())
    ours.setblocking(False)
    peer.setblocking(False)
    return ours, peer


async def fill_until_buffered(tr, chunk):
    """sendto() until the kernel refuses and the transport buffers."""
    sent = []
    for i in range(100000):
        data = chunk + b"%06d" % i
        tr.sendto(data)
        assert not tr.is_closing()
        sent.append(data)
        if tr.get_write_buffer_size() > 0:
            return sent
    raise AssertionError("the socket never filled up")


def drain(sock):
    out = []
    while True:
        try:
            out.append(sock.recv(1 << 17))
        except BlockingIOError:
            return out


# ---- UDP -------------------------------------------------------------------


@pytest.mark.parametrize("family,host", [
    (socket.AF_INET, "127.0.0.1"),
    pytest.param(socket.AF_INET6, "::1", marks=pytest.mark.skipif(
        not ipv6_loopback(), reason="no IPv6 loopback")),
])
def test_udp_echo_connected_client(loop, family, host):
    async def main():
        srv_t, srv_p = await loop.create_datagram_endpoint(Echo, local_addr=(host, 0))
        srv_addr = srv_t.get_extra_info("sockname")
        cli_t, cli_p = await loop.create_datagram_endpoint(Recorder, remote_addr=srv_addr[:2])
        assert cli_p.events == ["made"]
        cli_addr = cli_t.get_extra_info("sockname")
        assert cli_t.get_extra_info("peername") == srv_addr
        for msg in (b"one", b"two", b"three"):
            cli_t.sendto(msg)
        await until(lambda: len(cli_p.data()) == 3)
        # the server saw the client's address, as the socket module spells it
        assert srv_p.events[1:] == [("data", m, cli_addr) for m in (b"one", b"two", b"three")]
        assert cli_p.events[1:] == [("data", m, srv_addr) for m in (b"one", b"two", b"three")]
        cli_t.close()
        srv_t.close()
        await until(lambda: cli_p.lost() and srv_p.lost())
        assert cli_p.events[-1] == ("lost", None)
        return srv_addr

    addr = run(loop, main())
    assert len(addr) == (2 if family == socket.AF_INET else 4)


def test_transport_types_and_extra_info(loop):
    async def main():
        t, p = await loop.create_datagram_endpoint(Recorder, local_addr=("127.0.0.1", 0))
        try:
            # asyncio's derives from DatagramTransport from 3.12 on
            assert isinstance(t, asyncio.DatagramTransport) == (sys.version_info >= (3, 12))
            assert isinstance(t, asyncio.BaseTransport)
            assert isinstance(t, asyncio.Transport)   # asyncio's is one too
            sock = t.get_extra_info("socket")
            fd = sock.fileno()
            assert sock.family == socket.AF_INET and sock.type == socket.SOCK_DGRAM
            assert t.get_extra_info("sockname") == sock.getsockname()
            assert t.get_extra_info("peername") is None
            assert t.get_extra_info("nope", "dflt") == "dflt"
            assert t.get_protocol() is p
            assert not t.is_closing()
            if PY311:
                assert t.is_reading()
            assert t.get_write_buffer_size() == 0
            assert t.get_write_buffer_limits() == (16384, 65536)
            r = repr(t)
            assert r.endswith(f" fd={fd} read=polling write=<idle, bufsize=0>>")
            with pytest.raises(NotImplementedError):
                t.write(b"x")
            p2 = Recorder()
            t.set_protocol(p2)
            assert t.get_protocol() is p2
        finally:
            t.close()
        assert t.is_closing()
        if PY311:
            assert not t.is_reading()
        assert "closing" in repr(t)
        await asyncio.sleep(0)
        assert p2.events == [("lost", None)]
        assert repr(t).endswith(f" closed fd={fd}>")
        assert t.get_extra_info("socket").fileno() == -1

    run(loop, main())


def test_unconnected_sendto_addresses(loop):
    async def main():
        a_t, a_p = await loop.create_datagram_endpoint(Recorder, local_addr=("127.0.0.1", 0))
        b_t, b_p = await loop.create_datagram_endpoint(Recorder, local_addr=("127.0.0.1", 0))
        c_t, c_p = await loop.create_datagram_endpoint(Recorder, local_addr=("127.0.0.1", 0))
        a_addr = a_t.get_extra_info("sockname")
        c_t.sendto(b"to-a", a_addr)
        c_t.sendto(b"to-b", b_t.get_extra_info("sockname"))
        c_t.sendto(data=b"kw-a", addr=a_addr)
        c_t.sendto(bytearray(b"ba"), a_addr)
        c_t.sendto(memoryview(b"xmvx")[1:3], a_addr)
        # a host name goes through the socket module's resolution
        c_t.sendto(b"by-name", ("localhost", a_addr[1]))
        await until(lambda: len(a_p.data()) == 5 and len(b_p.data()) == 1)
        c_addr = c_t.get_extra_info("sockname")
        assert a_p.events[1:] == [("data", d, c_addr)
                                  for d in (b"to-a", b"kw-a", b"ba", b"mv", b"by-name")]
        assert b_p.events[1:] == [("data", b"to-b", c_addr)]
        for t in (a_t, b_t, c_t):
            t.close()
        await asyncio.sleep(0)

    run(loop, main())


def test_connected_transport_address_checks(loop):
    async def main():
        srv_t, srv_p = await loop.create_datagram_endpoint(Recorder, local_addr=("127.0.0.1", 0))
        srv_addr = srv_t.get_extra_info("sockname")
        t, p = await loop.create_datagram_endpoint(Recorder, remote_addr=srv_addr)
        with pytest.raises(ValueError) as ei:
            t.sendto(b"x", ("127.0.0.2", 9))
        assert str(ei.value) == f"Invalid address: must be None or {srv_addr}"
        t.sendto(b"same", srv_addr)       # the same address is fine
        t.sendto(b"none", None)
        await until(lambda: len(srv_p.data()) == 2)
        assert srv_p.data() == [b"same", b"none"]
        with pytest.raises(TypeError) as ei:
            t.sendto("text")
        assert str(ei.value) == "data argument must be a bytes-like object, not 'str'"
        with pytest.raises(TypeError):
            t.sendto(12)
        t.close()
        srv_t.close()
        await asyncio.sleep(0)

    run(loop, main())


def test_error_received_for_icmp_refused(loop):
    async def main():
        port = free_udp_port()
        t, p = await loop.create_datagram_endpoint(Recorder, remote_addr=("127.0.0.1", port))
        for _ in range(3):
            t.sendto(b"anyone?")
            await asyncio.sleep(0.01)
            if any(e[0] == "error" for e in p.events if isinstance(e, tuple)):
                break
        await until(lambda: any(e[0] == "error" for e in p.events if isinstance(e, tuple)))
        errors = [e[1] for e in p.events if isinstance(e, tuple) and e[0] == "error"]
        assert all(isinstance(e, ConnectionRefusedError) for e in errors)
        assert not t.is_closing()          # an OSError is not fatal
        t.close()
        await until(p.lost)
        assert p.events[-1] == ("lost", None)

    run(loop, main())


def test_large_datagrams(loop):
    sizes = [1, 1472, 9000, 32768, 65507]   # 65507: the largest UDP/IPv4 payload

    async def main():
        srv_t, srv_p = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
        srv_t.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        cli_t, cli_p = await loop.create_datagram_endpoint(
            Recorder, remote_addr=srv_t.get_extra_info("sockname"))
        cli_t.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        payloads = [os.urandom(n) for n in sizes]
        for d in payloads:
            cli_t.sendto(d)
            await until(lambda: len(cli_p.data()) == payloads.index(d) + 1)
        assert cli_p.data() == payloads
        cli_t.sendto(b"x" * 65508)      # too big for UDP: reported, not raised
        await until(lambda: any(e[0] == "error" for e in cli_p.events if isinstance(e, tuple)))
        err = [e[1] for e in cli_p.events if isinstance(e, tuple) and e[0] == "error"][0]
        assert isinstance(err, OSError) and err.errno == 90   # EMSGSIZE
        cli_t.close()
        srv_t.close()
        await asyncio.sleep(0)

    run(loop, main())


def test_reuse_port_and_broadcast(loop):
    if not hasattr(socket, "SO_REUSEPORT"):
        pytest.skip("no SO_REUSEPORT")

    async def main():
        t1, p1 = await loop.create_datagram_endpoint(
            Recorder, local_addr=("127.0.0.1", 0), reuse_port=True)
        port = t1.get_extra_info("sockname")[1]
        t2, p2 = await loop.create_datagram_endpoint(
            Recorder, local_addr=("127.0.0.1", port), reuse_port=True)
        assert t2.get_extra_info("sockname") == ("127.0.0.1", port)
        assert t1.get_extra_info("socket").getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
        t3, p3 = await loop.create_datagram_endpoint(
            Recorder, local_addr=("127.0.0.1", 0), allow_broadcast=True)
        assert t3.get_extra_info("socket").getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST)
        # allow_broadcast + remote_addr: the socket is not connected, the
        # transport sends to remote_addr
        t4, p4 = await loop.create_datagram_endpoint(
            Recorder, remote_addr=("127.0.0.1", port), allow_broadcast=True,
            family=socket.AF_INET)
        assert t4.get_extra_info("peername") is None
        t4.sendto(b"bcast-ok")
        await until(lambda: len(p1.data()) + len(p2.data()) == 1)
        with pytest.raises(OSError):
            await loop.create_datagram_endpoint(Recorder, local_addr=("127.0.0.1", port))
        for t in (t1, t2, t3, t4):
            t.close()
        await asyncio.sleep(0)

    run(loop, main())


def test_existing_sock(loop):
    async def main():
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        peer.setblocking(False)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        t, p = await loop.create_datagram_endpoint(Recorder, sock=s)
        assert t.get_extra_info("socket").fileno() == s.fileno()
        assert s.gettimeout() == 0.0        # made non-blocking
        assert t.get_extra_info("sockname") == s.getsockname()
        t.sendto(b"via-sock", peer.getsockname())
        await until(lambda: _try_recv(peer) is not None)
        peer.sendto(b"back", s.getsockname())
        await until(lambda: p.data() == [b"back"])
        with pytest.raises(ValueError):
            await loop.create_datagram_endpoint(Recorder, sock=s, local_addr=("127.0.0.1", 0))
        t.close()
        await until(p.lost)
        assert s.fileno() == -1             # the transport closed it
        peer.close()

    run(loop, main())


_received = {}


def _try_recv(sock):
    try:
        _received[sock] = sock.recvfrom(100)
    except BlockingIOError:
        return None
    return _received[sock]


def test_empty_datagram(loop):
    async def main():
        srv_t, srv_p = await loop.create_datagram_endpoint(Recorder, local_addr=("127.0.0.1", 0))
        t, p = await loop.create_datagram_endpoint(
            Recorder, remote_addr=srv_t.get_extra_info("sockname"))
        t.sendto(b"")
        t.sendto(b"x")
        await until(lambda: b"x" in srv_p.data())
        t.close()
        srv_t.close()
        await asyncio.sleep(0)
        return srv_p.data()

    # 3.13+ sends empty datagrams (gh-113812); before, sendto(b'') did nothing
    assert run(loop, main()) == ([b"", b"x"] if PY313 else [b"x"])


def test_fatal_error_on_bad_address(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    async def main():
        t, p = await loop.create_datagram_endpoint(Recorder, local_addr=("127.0.0.1", 0))
        t.sendto(b"x", None)          # no address on an unconnected socket
        await until(p.lost)
        return t, p

    t, p = run(loop, main())
    assert len(contexts) == 1
    ctx = contexts[0]
    assert ctx["message"] == "Fatal write error on datagram transport"
    assert isinstance(ctx["exception"], TypeError)
    assert ctx["transport"] is t and ctx["protocol"] is p
    assert p.events == ["made", ("lost", ctx["exception"])]
    assert t.is_closing()


def test_invalid_port_is_fatal(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    async def main():
        t, p = await loop.create_datagram_endpoint(Recorder, local_addr=("127.0.0.1", 0))
        t.sendto(b"x", ("127.0.0.1", 70000))
        await until(p.lost)

    run(loop, main())
    assert [type(c["exception"]) for c in contexts] == [OverflowError]
    assert str(contexts[0]["exception"]) == "sendto(): port must be 0-65535."


def test_sendto_after_close(loop, caplog):
    async def main():
        srv_t, srv_p = await loop.create_datagram_endpoint(Recorder, local_addr=("127.0.0.1", 0))
        t, p = await loop.create_datagram_endpoint(
            Recorder, remote_addr=srv_t.get_extra_info("sockname"))
        t.close()
        await until(p.lost)
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            for _ in range(6):
                t.sendto(b"dropped")          # connected: counted, dropped
        assert t._conn_lost == 7
        u, up = await loop.create_datagram_endpoint(Recorder, local_addr=("127.0.0.1", 0))
        u.close()
        await until(up.lost)
        # unconnected and lost: asyncio fails on its closed socket, then on
        # its loop (None) while reporting it
        with pytest.raises(AttributeError):
            u.sendto(b"x", srv_t.get_extra_info("sockname"))
        srv_t.close()
        await asyncio.sleep(0)
        return srv_p.data()

    assert run(loop, main()) == []
    warnings_logged = [r for r in caplog.records if r.getMessage() == "socket.send() raised exception."]
    assert len(warnings_logged) == 2   # from the 5th dropped write on


def test_protocol_error_goes_to_handler(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    class Faulty(Recorder):
        def datagram_received(self, data, addr):
            super().datagram_received(data, addr)
            if data == b"boom":
                raise ZeroDivisionError("boom")

    async def main():
        t, p = await loop.create_datagram_endpoint(Faulty, local_addr=("127.0.0.1", 0))
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(b"boom", t.get_extra_info("sockname"))
        s.sendto(b"after", t.get_extra_info("sockname"))
        await until(lambda: len(p.data()) == 2)
        s.close()
        assert not t.is_closing()       # the transport keeps working
        t.close()
        await asyncio.sleep(0)

    run(loop, main())
    assert len(contexts) == 1
    assert isinstance(contexts[0]["exception"], ZeroDivisionError)


def test_reading_control_missing_on_310(loop):
    if PY311:
        pytest.skip("3.11+ datagram transports have pause_reading()")

    async def main():
        t, p = await loop.create_datagram_endpoint(Recorder, local_addr=("127.0.0.1", 0))
        for meth in (t.pause_reading, t.resume_reading, t.is_reading):
            with pytest.raises(NotImplementedError):
                meth()
        t.close()
        await asyncio.sleep(0)

    run(loop, main())


@pytest.mark.skipif(not PY311, reason="3.10's datagram transports cannot pause reading")
def test_pause_and_resume_reading(loop):
    async def main():
        t, p = await loop.create_datagram_endpoint(Recorder, local_addr=("127.0.0.1", 0))
        await asyncio.sleep(0)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        t.pause_reading()
        t.pause_reading()                     # idempotent
        assert not t.is_reading()
        assert "read=idle" in repr(t)
        s.sendto(b"a", t.get_extra_info("sockname"))
        s.sendto(b"b", t.get_extra_info("sockname"))
        for _ in range(20):
            await asyncio.sleep(0)
        assert p.data() == []
        t.resume_reading()
        t.resume_reading()
        assert t.is_reading()
        await until(lambda: len(p.data()) == 2)
        assert p.data() == [b"a", b"b"]
        s.close()
        t.close()
        t.resume_reading()                    # closing: no effect
        assert not t.is_reading()
        await asyncio.sleep(0)

    run(loop, main())


@pytest.mark.skipif(not PY311, reason="3.10's datagram transports cannot pause reading")
def test_pause_then_resume_drops_the_read_event_already_polled(loop):
    """pause_reading() cancels the reader handle asyncio has already queued
    for this iteration, and resume_reading() in the same callback registers
    a new one that only the next poll queues: the datagram is received one
    iteration later, not in the iteration of the pause/resume pair."""
    async def main():
        t, p = await loop.create_datagram_endpoint(Recorder, local_addr=("127.0.0.1", 0))
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await asyncio.sleep(0)
        s.sendto(b"a", t.get_extra_info("sockname"))
        # the next poll reports the datagram; its reader runs after this
        # task's step, which pauses and resumes first
        await asyncio.sleep(0)
        t.pause_reading()
        t.resume_reading()
        await asyncio.sleep(0)        # the iteration of the pause/resume
        seen_then = p.data()
        await asyncio.sleep(0)        # the next poll reports it again
        seen_next = p.data()
        s.close()
        t.close()
        await asyncio.sleep(0)
        return seen_then, seen_next

    seen_then, seen_next = run(loop, main())
    assert seen_then == []
    assert seen_next == [b"a"]


@pytest.mark.skipif(not PY311, reason="3.10's datagram transports cannot pause reading")
def test_connection_made_order_and_pause_in_connection_made(loop):
    order = []

    class Pauser(Recorder):
        def connection_made(self, transport):
            super().connection_made(transport)
            order.append("made")
            transport.pause_reading()

    async def main():
        loop.call_soon(order.append, "before")
        t, p = await loop.create_datagram_endpoint(Pauser, local_addr=("127.0.0.1", 0))
        order.append("endpoint returned")
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(b"held", t.get_extra_info("sockname"))
        for _ in range(10):
            await asyncio.sleep(0)
        assert p.data() == []        # reading never started
        t.resume_reading()
        await until(lambda: p.data() == [b"held"])
        s.close()
        t.close()
        await asyncio.sleep(0)

    run(loop, main())
    assert order == ["before", "made", "endpoint returned"]


def test_resource_warning_for_unclosed_transport(loop_factory):
    lp = loop_factory()

    async def main():
        t, p = await lp.create_datagram_endpoint(Recorder, local_addr=("127.0.0.1", 0))
        return t.get_extra_info("socket").fileno()

    fd = lp.run_until_complete(main())
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        lp.close()
        gc.collect()
    msgs = [str(x.message) for x in w if issubclass(x.category, ResourceWarning)]
    assert any(m.startswith("unclosed transport <") for m in msgs), msgs
    with pytest.raises(OSError):
        os.fstat(fd)   # the socket was closed (unless the fd got reused)


def test_create_endpoint_errors(loop):
    async def main():
        with pytest.raises(ValueError):
            await loop.create_datagram_endpoint(Recorder)          # nothing to bind or connect
        # reuse_address=True: refused while the parameter exists, then gone
        has_param = "reuse_address" in inspect.signature(loop.create_datagram_endpoint).parameters
        with pytest.raises(ValueError if has_param else TypeError):
            await loop.create_datagram_endpoint(
                Recorder, local_addr=("127.0.0.1", 0), reuse_address=True)
        with pytest.raises(OSError):
            await loop.create_datagram_endpoint(Recorder, local_addr=("192.0.2.1", 0))

    run(loop, main())


# ---- buffering and flow control (AF_UNIX datagrams block when the peer's
# queue is full, UDP on loopback never does) -------------------------------


def test_buffering_flow_control_and_order(loop, loop_factory, tmp_path):
    async def main():
        ours, peer = unix_dgram_pair(tmp_path)
        t, p = await loop.create_datagram_endpoint(Recorder, sock=ours)
        assert t.get_extra_info("peername") == peer.getsockname()
        t.set_write_buffer_limits(high=60, low=20)
        sent = await fill_until_buffered(t, b"d" * 94)
        assert t.get_write_buffer_size() == 100 + HEADER
        assert p.events[1:] == ["pause"]
        assert "write=<polling" in repr(t)
        more = [b"e" * 10, bytearray(b"f" * 10), memoryview(b"g" * 10)]
        for d in more:
            t.sendto(d)
        assert t.get_write_buffer_size() == 100 + HEADER + 3 * (10 + HEADER)
        expected = sent + [bytes(d) for d in more]
        got = []
        # the peer reads: the buffer drains in order
        await until(lambda: drain_into(peer, got) is not None and len(got) == len(expected))
        await until(lambda: "write=<idle" in repr(t))
        assert got == expected
        size = t.get_write_buffer_size()
        events = p.events[1:]
        t.close()
        await until(p.lost)
        peer.close()
        return size, events

    size, events = run(loop, main())
    if ASYNCIO_HEADER_LEAK and not loop_factory.is_boucle:
        # asyncio 3.13.0-3.13.5: 8 bytes per buffered datagram stay counted
        assert (size, events) == (4 * HEADER, ["pause"])
    else:
        assert (size, events) == (0, ["pause", "resume"])


def drain_into(sock, out):
    new = drain(sock)
    out += new
    return new


def test_close_flushes_buffer_then_loses_connection(loop, tmp_path):
    async def main():
        ours, peer = unix_dgram_pair(tmp_path)
        t, p = await loop.create_datagram_endpoint(Recorder, sock=ours)
        sent = await fill_until_buffered(t, b"c" * 100)
        t.sendto(b"last")
        t.close()
        assert t.is_closing()
        for _ in range(5):
            await asyncio.sleep(0)
        assert not p.lost()              # still flushing
        got = []
        await until(lambda: drain_into(peer, got) is not None and p.lost())
        drain_into(peer, got)
        assert got == sent + [b"last"]
        assert p.events[-1] == ("lost", None)
        peer.close()

    run(loop, main())


def test_abort_drops_buffer(loop, tmp_path):
    async def main():
        ours, peer = unix_dgram_pair(tmp_path)
        t, p = await loop.create_datagram_endpoint(Recorder, sock=ours)
        sent = await fill_until_buffered(t, b"a" * 100)
        t.sendto(b"never")
        t.abort()
        assert t.is_closing()
        await until(p.lost)
        got = drain(peer)
        assert got == sent[:-1]          # what the kernel had taken
        assert p.events[-1] == ("lost", None)
        peer.close()

    run(loop, main())


def test_buffered_bytearray_is_copied(loop, tmp_path):
    async def main():
        ours, peer = unix_dgram_pair(tmp_path)
        t, p = await loop.create_datagram_endpoint(Recorder, sock=ours)
        sent = await fill_until_buffered(t, b"z" * 100)
        ba = bytearray(b"original")
        t.sendto(ba)
        ba[:] = b"mutated!"
        got = []
        await until(lambda: drain_into(peer, got) is not None and "write=<idle" in repr(t))
        drain_into(peer, got)
        assert got[-1] == b"original"
        assert len(got) == len(sent) + 1
        t.close()
        await until(p.lost)
        peer.close()

    run(loop, main())


def test_error_while_flushing_goes_to_error_received(loop, tmp_path):
    async def main():
        ours, peer = unix_dgram_pair(tmp_path)
        t, p = await loop.create_datagram_endpoint(Recorder, sock=ours)
        await fill_until_buffered(t, b"q" * 100)
        peer.close()                     # the buffered datagrams now fail
        await until(lambda: any(isinstance(e, tuple) and e[0] in ("error", "lost")
                                for e in p.events))
        errors = [e[1] for e in p.events if isinstance(e, tuple) and e[0] == "error"]
        assert errors and isinstance(errors[0], ConnectionRefusedError)
        t.abort()
        await until(p.lost)

    run(loop, main())


# ---- AF_UNIX datagram endpoints -------------------------------------------


def test_unix_datagram_paths(loop, tmp_path):
    srv_path = str(tmp_path / "srv.sock")
    cli_path = str(tmp_path / "cli.sock")

    async def main():
        srv_t, srv_p = await loop.create_datagram_endpoint(
            Echo, local_addr=srv_path, family=socket.AF_UNIX)
        assert srv_t.get_extra_info("sockname") == srv_path
        cli_t, cli_p = await loop.create_datagram_endpoint(
            Recorder, local_addr=cli_path, remote_addr=srv_path, family=socket.AF_UNIX)
        assert cli_t.get_extra_info("peername") == srv_path
        cli_t.sendto(b"ping")
        await until(lambda: cli_p.data() == [b"ping"])
        assert srv_p.events[1:] == [("data", b"ping", cli_path)]
        assert cli_p.events[1:] == [("data", b"ping", srv_path)]
        # an unnamed sender shows up as None
        anon = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        anon.sendto(b"anon", srv_path)
        await until(lambda: len(srv_p.data()) == 2)
        assert srv_p.events[-1] == ("data", b"anon", None)
        anon.close()
        with pytest.raises(TypeError):
            await loop.create_datagram_endpoint(
                Recorder, local_addr=("127.0.0.1", 0), family=socket.AF_UNIX)
        cli_t.close()
        srv_t.close()
        await until(lambda: cli_p.lost() and srv_p.lost())

    run(loop, main())


def test_unix_datagram_stale_socket_file_is_replaced(loop, tmp_path):
    path = str(tmp_path / "stale.sock")
    old = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    old.bind(path)
    old.close()                          # leaves the socket file behind
    assert os.path.exists(path)

    async def main():
        t, p = await loop.create_datagram_endpoint(
            Recorder, local_addr=path, family=socket.AF_UNIX)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.sendto(b"fresh", path)
        await until(lambda: p.data() == [b"fresh"])
        s.close()
        t.close()
        await until(p.lost)

    run(loop, main())


def test_unix_datagram_abstract_namespace(loop):
    name = "\0boucle-test-" + uuid.uuid4().hex

    async def main():
        t, p = await loop.create_datagram_endpoint(
            Echo, local_addr=name, family=socket.AF_UNIX)
        assert t.get_extra_info("sockname") == name.encode()
        c_t, c_p = await loop.create_datagram_endpoint(
            Recorder, remote_addr=name, family=socket.AF_UNIX)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind("")                       # autobind: an abstract name
        s.sendto(b"abs", name)
        await until(lambda: len(p.data()) == 1)
        assert p.events[-1] == ("data", b"abs", s.getsockname())
        assert isinstance(s.getsockname(), bytes)
        c_t.sendto(b"conn")              # connected, unnamed client
        await until(lambda: len(p.data()) == 2)
        assert p.events[-1] == ("data", b"conn", None)
        t.sendto(b"to-bytes", name.encode())
        s.close()
        c_t.close()
        t.close()
        await until(lambda: p.lost() and c_p.lost())

    run(loop, main())


@pytest.mark.skipif(not PY311, reason="3.10's datagram transports cannot pause reading")
def test_debug_mode_logs_pause_and_resume(loop, caplog):
    loop.set_debug(True)

    async def main():
        t, p = await loop.create_datagram_endpoint(Recorder, local_addr=("127.0.0.1", 0))
        await asyncio.sleep(0)
        t.pause_reading()
        t.resume_reading()
        t.close()
        await until(p.lost)
        return repr(t)

    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        run(loop, main())
    msgs = [r.getMessage() for r in caplog.records]
    assert any(m.endswith(" pauses reading") for m in msgs)
    assert any(m.endswith(" resumes reading") for m in msgs)


def test_subclass_and_weakref(loop):
    import weakref

    async def main():
        t, p = await loop.create_datagram_endpoint(Recorder, local_addr=("127.0.0.1", 0))
        r = weakref.ref(t)
        t.user_attribute = 42            # transports have a __dict__
        assert t.user_attribute == 42
        t.close()
        await until(p.lost)
        return r

    r = run(loop, main())
    gc.collect()
    assert r() is None or r().is_closing()


def test_callbacks_run_in_creation_context(loop):
    # asyncio runs a transport's protocol callbacks in a copy of the context
    # the transport was created in
    import contextvars
    var = contextvars.ContextVar("var", default="outer")

    class Proto(asyncio.DatagramProtocol):
        def __init__(self):
            self.seen = loop.create_future()

        def datagram_received(self, data, addr):
            if not self.seen.done():
                self.seen.set_result(var.get())

    async def main():
        var.set("inner")
        tr, proto = await loop.create_datagram_endpoint(Proto, local_addr=("127.0.0.1", 0))
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(b"x", tr.get_extra_info("sockname"))
                return await asyncio.wait_for(proto.seen, 10)
        finally:
            tr.close()

    ctx = contextvars.copy_context()
    assert ctx.run(loop.run_until_complete, main()) == "inner"
