"""TLS on boucle: asyncio's SSLProtocol over boucle's C stream transports.

Every test runs on asyncio's loop and on boucle's (``loop`` fixture), so what
it asserts is asyncio's behaviour.  Where asyncio's outcome differs between
Python versions (which exception a handshake timeout or a peer closing
mid-handshake raises), the boucle run also replays the same scenario on a
fresh asyncio loop and requires the same exception type.

Certificates: tests/certs/ (a self-signed CA and a 'localhost'/127.0.0.1/::1
server certificate, valid 2020-2060; tests/certs/gen.sh remakes them).
"""
import asyncio
import contextlib
import gc
import hashlib
import os
import socket
import ssl
import sys
import tempfile
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
CERTS = os.path.join(HERE, "certs")
CA_PEM = os.path.join(CERTS, "ca.pem")
SERVER_PEM = os.path.join(CERTS, "server.pem")  # certificate + key

PY311 = sys.version_info >= (3, 11)
needs_311 = pytest.mark.skipif(not PY311, reason="asyncio 3.11+ API")

MIB = 1024 * 1024


def run(loop, coro, timeout=60):
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


def server_ctx():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(SERVER_PEM)
    return ctx


def client_ctx():
    return ssl.create_default_context(cafile=CA_PEM)


def untrusting_client_ctx():
    """Verifies certificates, but against an empty trust store."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


@contextlib.contextmanager
def unix_path():
    with tempfile.TemporaryDirectory(prefix="boucle-tls-") as d:
        yield os.path.join(d, "sock")


def reference_exception(scenario):
    """Run ``scenario(loop)`` on a fresh asyncio loop; return what it raised."""
    ref = asyncio.new_event_loop()
    try:
        try:
            run(ref, scenario(ref))
        except BaseException as exc:  # noqa: BLE001
            return exc
        return None
    finally:
        ref.close()
        asyncio.set_event_loop(None)


def check_like_asyncio(loop_factory, scenario, exc):
    """On boucle, the scenario must raise what asyncio's loop raises."""
    if loop_factory.is_boucle:
        ref = reference_exception(scenario)
        assert type(exc) is type(ref), (exc, ref)


class Echo(asyncio.Protocol):
    def __init__(self, loop=None):
        self.lost = loop.create_future() if loop else None
        self.tr = None

    def connection_made(self, tr):
        self.tr = tr

    def data_received(self, data):
        self.tr.write(data)

    def eof_received(self):
        return False  # close

    def connection_lost(self, exc):
        if self.lost is not None and not self.lost.done():
            self.lost.set_result(exc)


class Collect(asyncio.Protocol):
    """Client protocol: gathers bytes, reports connection_lost once."""

    def __init__(self, loop):
        self.loop = loop
        self.buf = bytearray()
        self.made = 0
        self.lost_calls = []
        self.lost = loop.create_future()
        self.eof = False
        self.want = None
        self.got = None

    def connection_made(self, tr):
        self.made += 1
        self.tr = tr

    def data_received(self, data):
        self.buf += data
        if self.want is not None and len(self.buf) >= self.want and not self.got.done():
            self.got.set_result(bytes(self.buf))

    def expect(self, n):
        self.want = n
        self.got = self.loop.create_future()
        if len(self.buf) >= n:
            self.got.set_result(bytes(self.buf))
        return self.got

    def eof_received(self):
        self.eof = True

    def connection_lost(self, exc):
        self.lost_calls.append(exc)
        if not self.lost.done():
            self.lost.set_result(exc)


def call_with_handler(loop):
    """Record exception-handler calls instead of logging them."""
    seen = []
    loop.set_exception_handler(lambda lp, ctx: seen.append(ctx))
    return seen


# ---------------------------------------------------------------------------
# create_connection / create_server (TCP) and the Unix variants


@pytest.mark.parametrize("hostname", ["implied", "localhost"])
def test_tcp_echo(loop, hostname):
    async def main():
        srv = await loop.create_server(lambda: Echo(), "127.0.0.1", 0, ssl=server_ctx())
        port = srv.sockets[0].getsockname()[1]
        kw = {} if hostname == "implied" else {"server_hostname": "localhost"}
        tr, pr = await loop.create_connection(lambda: Collect(loop), "127.0.0.1", port,
                                              ssl=client_ctx(), **kw)
        assert pr.made == 1
        assert tr.get_extra_info("ssl_object") is not None
        tr.write(b"hello ")
        tr.writelines([b"tls ", b"world"])
        assert await pr.expect(15) == b"hello tls world"
        tr.close()
        assert await pr.lost is None
        assert pr.lost_calls == [None]
        srv.close()
        await srv.wait_closed()

    run(loop, main())


def test_runs_over_the_loops_own_transport(loop_factory):
    """The TLS machinery sits on the loop's own socket transport."""
    loop = loop_factory()

    async def main():
        srv = await loop.create_server(lambda: Echo(), "127.0.0.1", 0, ssl=server_ctx())
        port = srv.sockets[0].getsockname()[1]
        tr, pr = await loop.create_connection(lambda: Collect(loop), "127.0.0.1", port,
                                              ssl=client_ctx())
        raw = tr._ssl_protocol._transport
        if loop_factory.is_boucle:
            from conftest import boucle
            assert isinstance(raw, boucle._core.StreamTransport), raw
        else:
            assert type(raw).__name__ == "_SelectorSocketTransport", raw
        tr.close()
        await pr.lost
        srv.close()
        await srv.wait_closed()

    run(loop, main())


def test_tcp_server_sees_client_eof_and_close(loop):
    async def main():
        server_protos = []

        def factory():
            p = Echo(loop)
            server_protos.append(p)
            return p

        srv = await loop.create_server(factory, "127.0.0.1", 0, ssl=server_ctx())
        port = srv.sockets[0].getsockname()[1]
        tr, pr = await loop.create_connection(lambda: Collect(loop), "localhost", port,
                                              ssl=client_ctx())
        tr.write(b"x" * 100)
        await pr.expect(100)
        assert not tr.can_write_eof()  # TLS transports cannot half-close
        tr.close()
        await pr.lost
        exc = await asyncio.wait_for(server_protos[0].lost, 10)
        assert exc is None or isinstance(exc, OSError)
        srv.close()
        await srv.wait_closed()

    run(loop, main())


def test_unix_echo(loop):
    async def main():
        with unix_path() as path:
            srv = await loop.create_unix_server(lambda: Echo(), path, ssl=server_ctx())
            tr, pr = await loop.create_unix_connection(
                lambda: Collect(loop), path, ssl=client_ctx(), server_hostname="localhost")
            tr.write(b"over unix")
            assert await pr.expect(9) == b"over unix"
            assert tr.get_extra_info("peercert")["subject"]
            assert tr.get_extra_info("peername") == path
            tr.close()
            await pr.lost
            srv.close()
            await srv.wait_closed()

    run(loop, main())


def test_unix_streams(loop):
    async def handler(r, w):
        w.write((await r.readline()).upper())
        await w.drain()
        w.close()

    async def main():
        with unix_path() as path:
            srv = await asyncio.start_unix_server(handler, path, ssl=server_ctx())
            r, w = await asyncio.open_unix_connection(path, ssl=client_ctx(),
                                                      server_hostname="localhost")
            w.write(b"shout\n")
            assert await r.readline() == b"SHOUT\n"
            assert await r.read() == b""
            w.close()
            await w.wait_closed()
            srv.close()
            await srv.wait_closed()

    run(loop, main())


# ---------------------------------------------------------------------------
# argument errors (as asyncio's base_events checks them)


def test_unix_connection_needs_server_hostname(loop):
    async def main():
        with unix_path() as path:
            srv = await loop.create_unix_server(lambda: Echo(), path, ssl=server_ctx())
            with pytest.raises(ValueError, match="server_hostname"):
                await loop.create_unix_connection(lambda: Collect(loop), path, ssl=client_ctx())
            srv.close()
            await srv.wait_closed()

    run(loop, main())


def test_connection_sock_needs_server_hostname(loop):
    async def main():
        srv = await loop.create_server(lambda: Echo(), "127.0.0.1", 0, ssl=server_ctx())
        port = srv.sockets[0].getsockname()[1]
        sock = socket.create_connection(("127.0.0.1", port))
        try:
            with pytest.raises(ValueError, match="server_hostname"):
                await loop.create_connection(lambda: Collect(loop), sock=sock, ssl=client_ctx())
        finally:
            sock.close()
        srv.close()
        await srv.wait_closed()

    run(loop, main())


def test_argument_errors_without_ssl(loop):
    async def main():
        with pytest.raises(ValueError, match="server_hostname"):
            await loop.create_connection(Collect, "127.0.0.1", 1, server_hostname="localhost")
        with pytest.raises(ValueError, match="ssl_handshake_timeout"):
            await loop.create_connection(Collect, "127.0.0.1", 1, ssl_handshake_timeout=1)
        with pytest.raises(ValueError, match="ssl_handshake_timeout"):
            await loop.create_server(Echo, "127.0.0.1", 0, ssl_handshake_timeout=1)
        if PY311:
            with pytest.raises(ValueError, match="ssl_shutdown_timeout"):
                await loop.create_connection(Collect, "127.0.0.1", 1, ssl_shutdown_timeout=1)
            with pytest.raises(ValueError, match="ssl_shutdown_timeout"):
                await loop.create_server(Echo, "127.0.0.1", 0, ssl_shutdown_timeout=1)
        else:
            with pytest.raises(TypeError):
                await loop.create_connection(Collect, "127.0.0.1", 1, ssl=client_ctx(),
                                             ssl_shutdown_timeout=1)

    run(loop, main())


# ---------------------------------------------------------------------------
# certificate errors


def test_untrusted_certificate_reaches_caller(loop):
    async def main():
        seen = call_with_handler(loop)
        server_protos = []
        srv = await loop.create_server(lambda: server_protos.append(Echo()) or server_protos[-1],
                                       "127.0.0.1", 0, ssl=server_ctx())
        port = srv.sockets[0].getsockname()[1]
        with pytest.raises(ssl.SSLCertVerificationError) as info:
            await loop.create_connection(lambda: Collect(loop), "127.0.0.1", port,
                                         ssl=untrusting_client_ctx(), server_hostname="localhost")
        assert "certificate verify failed" in str(info.value)
        # The server is still fine: a trusting client gets through.
        tr, pr = await loop.create_connection(lambda: Collect(loop), "127.0.0.1", port,
                                              ssl=client_ctx())
        tr.write(b"ok")
        assert await pr.expect(2) == b"ok"
        tr.close()
        await pr.lost
        srv.close()
        await srv.wait_closed()
        assert not [c for c in seen if "exception" not in c], seen

    run(loop, main())


def test_hostname_mismatch(loop):
    async def main():
        srv = await loop.create_server(lambda: Echo(), "127.0.0.1", 0, ssl=server_ctx())
        port = srv.sockets[0].getsockname()[1]
        with pytest.raises(ssl.SSLCertVerificationError, match="match|mismatch"):
            await loop.create_connection(lambda: Collect(loop), "127.0.0.1", port,
                                         ssl=client_ctx(), server_hostname="not-this.example")
        srv.close()
        await srv.wait_closed()

    run(loop, main())


def test_untrusted_certificate_streams(loop):
    async def main():
        srv = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=server_ctx())
        port = srv.sockets[0].getsockname()[1]
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.open_connection("localhost", port, ssl=untrusting_client_ctx())
        srv.close()
        await srv.wait_closed()

    run(loop, main())


def test_ssl_true_uses_default_context(loop):
    # ssl=True means ssl.create_default_context(): our CA is not trusted.
    async def main():
        srv = await loop.create_server(lambda: Echo(), "127.0.0.1", 0, ssl=server_ctx())
        port = srv.sockets[0].getsockname()[1]
        with pytest.raises(ssl.SSLCertVerificationError):
            await loop.create_connection(lambda: Collect(loop), "localhost", port, ssl=True)
        srv.close()
        await srv.wait_closed()

    run(loop, main())


# ---------------------------------------------------------------------------
# handshake timeout, peer closing mid-handshake


def silent_listener():
    """A listening socket that never accepts (the kernel completes TCP)."""
    return socket.create_server(("127.0.0.1", 0), backlog=16)


def test_handshake_timeout_client(loop_factory):
    loop = loop_factory()
    lsock = silent_listener()
    port = lsock.getsockname()[1]

    async def scenario(lp):
        await lp.create_connection(lambda: Collect(lp), "127.0.0.1", port,
                                   ssl=client_ctx(), server_hostname="localhost",
                                   ssl_handshake_timeout=0.2)

    try:
        t0 = time.monotonic()
        with pytest.raises((ConnectionAbortedError, TimeoutError)) as info:
            run(loop, scenario(loop))
        assert time.monotonic() - t0 < 20
        check_like_asyncio(loop_factory, scenario, info.value)
    finally:
        lsock.close()


def test_handshake_timeout_streams(loop_factory):
    loop = loop_factory()
    lsock = silent_listener()
    port = lsock.getsockname()[1]

    async def scenario(lp):
        await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx(),
                                      server_hostname="localhost", ssl_handshake_timeout=0.2)

    try:
        with pytest.raises((ConnectionAbortedError, TimeoutError)) as info:
            run(loop, scenario(loop))
        check_like_asyncio(loop_factory, scenario, info.value)
    finally:
        lsock.close()


def test_handshake_timeout_server(loop):
    """A client that connects and never says hello is dropped by the server."""
    async def main():
        made = []
        srv = await loop.create_server(lambda: made.append(1) or Echo(), "127.0.0.1", 0,
                                       ssl=server_ctx(), ssl_handshake_timeout=1.0)
        port = srv.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)  # plain TCP
        t0 = loop.time()
        assert await asyncio.wait_for(r.read(), 20) == b""  # server closed it
        assert loop.time() - t0 >= 0.9
        assert len(made) == 1  # the protocol was made ...
        w.close()
        # ... and the server still serves.
        tr, pr = await loop.create_connection(lambda: Collect(loop), "127.0.0.1", port,
                                              ssl=client_ctx())
        tr.write(b"alive")
        assert await pr.expect(5) == b"alive"
        tr.close()
        await pr.lost
        srv.close()
        await srv.wait_closed()

    run(loop, main())


def test_peer_closes_mid_handshake_client(loop_factory):
    """The server reads the ClientHello and closes: the caller gets an error."""
    loop = loop_factory()

    def closer(lsock, stop):
        while not stop.is_set():
            try:
                c, _ = lsock.accept()
            except OSError:
                return
            with c:
                c.settimeout(5)
                try:
                    c.recv(100)
                except OSError:
                    pass

    lsock = socket.create_server(("127.0.0.1", 0))
    lsock.settimeout(0.2)
    stop = threading.Event()
    th = threading.Thread(target=closer, args=(lsock, stop), daemon=True)
    th.start()
    port = lsock.getsockname()[1]

    async def scenario(lp):
        await lp.create_connection(lambda: Collect(lp), "127.0.0.1", port,
                                   ssl=client_ctx(), server_hostname="localhost")

    try:
        with pytest.raises((ConnectionError, ssl.SSLError, OSError)) as info:
            run(loop, scenario(loop))
        check_like_asyncio(loop_factory, scenario, info.value)
    finally:
        stop.set()
        th.join(5)
        lsock.close()


def test_peer_closes_mid_handshake_server(loop):
    """A client that sends half a ClientHello and leaves: the server survives."""
    async def main():
        seen = call_with_handler(loop)
        made = []
        srv = await loop.create_server(lambda: made.append(Echo(loop)) or made[-1],
                                       "127.0.0.1", 0, ssl=server_ctx())
        port = srv.sockets[0].getsockname()[1]
        # A real ClientHello, cut short.
        bio_in, bio_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = client_ctx().wrap_bio(bio_in, bio_out, server_hostname="localhost")
        with pytest.raises(ssl.SSLWantReadError):
            obj.do_handshake()
        hello = bio_out.read()
        assert len(hello) > 20
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(hello[:len(hello) // 2])
        await w.drain()
        await asyncio.sleep(0.05)
        w.close()
        await w.wait_closed()
        # the app protocol never saw connection_made, nor connection_lost
        # with an exception escaping to the loop.
        await asyncio.sleep(0.1)
        assert len(made) == 1 and made[0].tr is None
        tr, pr = await loop.create_connection(lambda: Collect(loop), "127.0.0.1", port,
                                              ssl=client_ctx())
        tr.write(b"next")
        assert await pr.expect(4) == b"next"
        tr.close()
        await pr.lost
        srv.close()
        await srv.wait_closed()
        # nothing but (debug-only) transport-creation reports
        assert all("exception" in c for c in seen), seen

    run(loop, main())


def test_garbage_instead_of_handshake(loop):
    async def main():
        seen = call_with_handler(loop)
        srv = await loop.create_server(lambda: Echo(), "127.0.0.1", 0, ssl=server_ctx())
        port = srv.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"GET / HTTP/1.0\r\n\r\n")
        # the server answers with a TLS alert (or nothing) and closes
        data = await asyncio.wait_for(r.read(), 10)
        assert b"HTTP" not in data
        w.close()
        srv.close()
        await srv.wait_closed()
        assert all("exception" in c for c in seen), seen

    run(loop, main())


# ---------------------------------------------------------------------------
# shutdown: ssl_shutdown_timeout, abort during shutdown


class SilentTLSPeer:
    """A thread serving one TLS connection: handshake, then silence.

    It never reads again, so it never answers a close_notify.
    """

    def __init__(self):
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.port = self.lsock.getsockname()[1]
        self.done = threading.Event()
        self.handshaken = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.lsock.settimeout(20)
        try:
            c, _ = self.lsock.accept()
        except OSError:
            return
        c.settimeout(20)
        try:
            s = server_ctx().wrap_socket(c, server_side=True)
            self.handshaken.set()
            self.done.wait(30)
            s.close()
        except OSError:
            c.close()

    def close(self):
        self.done.set()
        self.thread.join(10)
        self.lsock.close()


@needs_311
def test_ssl_shutdown_timeout(loop_factory):
    """close() waits for the peer's close_notify at most ssl_shutdown_timeout."""
    loop = loop_factory()

    async def scenario(lp):
        peer = SilentTLSPeer()
        try:
            tr, pr = await lp.create_connection(
                lambda: Collect(lp), "127.0.0.1", peer.port, ssl=client_ctx(),
                server_hostname="localhost", ssl_shutdown_timeout=0.3)
            t0 = lp.time()
            tr.close()
            assert tr.is_closing()
            exc = await asyncio.wait_for(pr.lost, 20)  # the default would be 30 s
            assert lp.time() - t0 >= 0.2
            await asyncio.sleep(0.05)
            assert pr.lost_calls == [exc]
        finally:
            peer.close()
        if exc is not None:
            raise exc

    try:
        run(loop, scenario(loop))
        exc = None
    except (TimeoutError, OSError) as e:
        exc = e
    check_like_asyncio(loop_factory, scenario, exc)


@needs_311
def test_ssl_shutdown_timeout_server_param(loop):
    async def main():
        srv = await loop.create_server(lambda: Echo(), "127.0.0.1", 0, ssl=server_ctx(),
                                       ssl_shutdown_timeout=0.5)
        port = srv.sockets[0].getsockname()[1]
        tr, pr = await loop.create_connection(lambda: Collect(loop), "127.0.0.1", port,
                                              ssl=client_ctx(), ssl_shutdown_timeout=0.5)
        tr.write(b"ok")
        await pr.expect(2)
        tr.close()
        assert await pr.lost is None
        srv.close()
        await srv.wait_closed()

    run(loop, main())


def test_abort_during_shutdown(loop):
    async def main():
        server_protos = []
        srv = await loop.create_server(lambda: server_protos.append(Echo(loop)) or server_protos[-1],
                                       "127.0.0.1", 0, ssl=server_ctx())
        port = srv.sockets[0].getsockname()[1]
        tr, pr = await loop.create_connection(lambda: Collect(loop), "127.0.0.1", port,
                                              ssl=client_ctx())
        tr.write(b"x" * 1000)
        await pr.expect(1000)
        tr.write(b"y" * 100000)  # pending data while shutting down
        tr.close()  # starts the TLS shutdown
        tr.abort()  # ... cut short
        assert tr.is_closing()
        await asyncio.wait_for(pr.lost, 10)
        await asyncio.sleep(0.05)
        assert len(pr.lost_calls) == 1
        assert pr.lost_calls[0] is None or isinstance(pr.lost_calls[0], OSError)
        await asyncio.wait_for(server_protos[0].lost, 10)
        tr.abort()  # idempotent
        tr.close()
        srv.close()
        await srv.wait_closed()

    run(loop, main())


def test_abort_while_peer_silent(loop):
    peer = SilentTLSPeer()

    async def main():
        tr, pr = await loop.create_connection(lambda: Collect(loop), "127.0.0.1", peer.port,
                                              ssl=client_ctx(), server_hostname="localhost")
        tr.close()   # waits for the peer's close_notify, which never comes
        await asyncio.sleep(0.1)
        tr.abort()
        exc = await asyncio.wait_for(pr.lost, 10)
        assert exc is None or isinstance(exc, OSError)
        await asyncio.sleep(0.05)
        assert len(pr.lost_calls) == 1

    try:
        run(loop, main())
    finally:
        peer.close()


def test_server_abort(loop):
    async def main():
        server_protos = []
        srv = await loop.create_server(lambda: server_protos.append(Echo(loop)) or server_protos[-1],
                                       "127.0.0.1", 0, ssl=server_ctx())
        port = srv.sockets[0].getsockname()[1]
        tr, pr = await loop.create_connection(lambda: Collect(loop), "127.0.0.1", port,
                                              ssl=client_ctx())
        tr.write(b"ping")
        await pr.expect(4)
        server_protos[0].tr.abort()
        exc = await asyncio.wait_for(pr.lost, 10)
        assert exc is None or isinstance(exc, OSError)
        assert len(pr.lost_calls) == 1
        srv.close()
        await srv.wait_closed()

    run(loop, main())


# ---------------------------------------------------------------------------
# start_tls, connect_accepted_socket


class StartTLSServer(asyncio.Protocol):
    """Plain text until 'STARTTLS\\n', then TLS echo."""

    def __init__(self, loop):
        self.loop = loop
        self.upgraded = loop.create_future()
        self.tls_data = bytearray()

    def connection_made(self, tr):
        self.tr = tr

    def data_received(self, data):
        if self.upgraded.done():
            self.tr.write(data)  # the TLS transport
            return
        assert data == b"STARTTLS\n", data
        self.tr.write(b"GO\n")
        self.loop.create_task(self._upgrade())

    async def _upgrade(self):
        try:
            new = await self.loop.start_tls(self.tr, self, server_ctx(), server_side=True)
        except BaseException as exc:
            self.upgraded.set_exception(exc)
            raise
        self.old, self.tr = self.tr, new
        self.upgraded.set_result(new)


class StartTLSClient(Collect):
    pass


def test_start_tls(loop):
    async def main():
        sprotos = []
        srv = await loop.create_server(lambda: sprotos.append(StartTLSServer(loop)) or sprotos[-1],
                                       "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        old, pr = await loop.create_connection(lambda: StartTLSClient(loop), "127.0.0.1", port)
        assert old.get_extra_info("ssl_object") is None
        old.write(b"STARTTLS\n")
        assert await pr.expect(3) == b"GO\n"
        pr.buf.clear()
        pr.want = None
        new = await loop.start_tls(old, pr, client_ctx(), server_hostname="localhost")
        stls = await sprotos[0].upgraded
        assert new is not old
        assert stls is not sprotos[0].old
        # the old transports now feed the TLS machinery, not the app protocol
        assert old.get_protocol() is not pr
        assert sprotos[0].old.get_protocol() is not sprotos[0]
        assert new.get_protocol() is pr
        assert new.get_extra_info("ssl_object") is not None
        assert new.get_extra_info("peercert")["subject"]
        assert stls.get_extra_info("ssl_object").server_side
        new.write(b"secret")
        assert await pr.expect(6) == b"secret"
        new.close()
        await pr.lost
        assert pr.made == 1  # start_tls does not call connection_made again
        srv.close()
        await srv.wait_closed()

    run(loop, main())


def test_start_tls_rejects_bad_args(loop):
    async def main():
        srv = await loop.create_server(lambda: Echo(), "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        tr, pr = await loop.create_connection(lambda: Collect(loop), "127.0.0.1", port)
        with pytest.raises(TypeError):
            await loop.start_tls(tr, pr, "not a context")
        tr.close()
        await pr.lost
        srv.close()
        await srv.wait_closed()

    run(loop, main())


def test_start_tls_handshake_timeout(loop_factory):
    loop = loop_factory()

    async def scenario(lp):
        srv = await lp.create_server(lambda: Collect(lp), "127.0.0.1", 0)  # never upgrades
        port = srv.sockets[0].getsockname()[1]
        tr, pr = await lp.create_connection(lambda: Collect(lp), "127.0.0.1", port)
        try:
            await lp.start_tls(tr, pr, client_ctx(), server_hostname="localhost",
                               ssl_handshake_timeout=0.2)
        finally:
            srv.close()
            tr.close()
            await srv.wait_closed()

    with pytest.raises((ConnectionAbortedError, TimeoutError)) as info:
        run(loop, scenario(loop))
    check_like_asyncio(loop_factory, scenario, info.value)


def test_connect_accepted_socket_ssl(loop):
    async def main():
        lsock = socket.create_server(("127.0.0.1", 0))
        lsock.setblocking(False)
        port = lsock.getsockname()[1]

        async def serve():
            conn, _ = await loop.sock_accept(lsock)
            return await loop.connect_accepted_socket(lambda: Echo(loop), conn, ssl=server_ctx(),
                                                      ssl_handshake_timeout=10)

        server_task = loop.create_task(serve())
        tr, pr = await loop.create_connection(lambda: Collect(loop), "127.0.0.1", port,
                                              ssl=client_ctx())
        str_, spr = await server_task
        assert str_.get_extra_info("ssl_object").server_side
        assert str_.get_extra_info("sslcontext") is not None
        tr.write(b"accepted")
        assert await pr.expect(8) == b"accepted"
        tr.close()
        await pr.lost
        await asyncio.wait_for(spr.lost, 10)
        lsock.close()

    run(loop, main())


def test_connect_accepted_socket_ssl_errors(loop):
    async def main():
        a, b = socket.socketpair()
        try:
            with pytest.raises(ValueError, match="ssl_handshake_timeout"):
                await loop.connect_accepted_socket(Echo, a, ssl_handshake_timeout=1)
        finally:
            a.close()
            b.close()

    run(loop, main())


# ---------------------------------------------------------------------------
# get_extra_info


def test_extra_info(loop):
    async def main():
        sprotos = []
        sctx, cctx = server_ctx(), client_ctx()
        srv = await loop.create_server(lambda: sprotos.append(Echo(loop)) or sprotos[-1],
                                       "127.0.0.1", 0, ssl=sctx)
        port = srv.sockets[0].getsockname()[1]
        tr, pr = await loop.create_connection(lambda: Collect(loop), "127.0.0.1", port, ssl=cctx)
        tr.write(b"?")
        await pr.expect(1)
        stran = sprotos[0].tr

        assert tr.get_extra_info("sslcontext") is cctx
        assert stran.get_extra_info("sslcontext") is sctx
        obj = tr.get_extra_info("ssl_object")
        assert isinstance(obj, ssl.SSLObject)
        assert not obj.server_side and obj.server_hostname == "127.0.0.1"
        assert obj.version().startswith("TLS")
        peercert = tr.get_extra_info("peercert")
        assert peercert == obj.getpeercert()
        assert (("commonName", "localhost"),) in peercert["subject"]
        assert ("IP Address", "127.0.0.1") in peercert["subjectAltName"]
        cipher = tr.get_extra_info("cipher")
        assert isinstance(cipher, tuple) and len(cipher) == 3 and cipher == obj.cipher()
        assert tr.get_extra_info("compression") == obj.compression()
        assert stran.get_extra_info("peercert") is None  # no client certificate
        assert stran.get_extra_info("cipher") == cipher
        # the socket-level keys pass through
        assert tr.get_extra_info("peername") == ("127.0.0.1", port)
        assert tr.get_extra_info("sockname")[0] == "127.0.0.1"
        assert tr.get_extra_info("socket").fileno() >= 0
        assert stran.get_extra_info("peername") == tr.get_extra_info("sockname")
        assert tr.get_extra_info("no-such-key", 42) == 42
        assert tr.get_write_buffer_size() == 0
        assert tr.is_reading()
        tr.pause_reading()
        assert not tr.is_reading()
        tr.resume_reading()
        tr.close()
        await pr.lost
        assert tr.is_closing()
        srv.close()
        await srv.wait_closed()

    run(loop, main())


# ---------------------------------------------------------------------------
# streams


async def upper_handler(r, w):
    while line := await r.readline():
        w.write(line.upper())
        await w.drain()
    w.close()
    await w.wait_closed()


def test_streams(loop):
    async def main():
        srv = await asyncio.start_server(upper_handler, "127.0.0.1", 0, ssl=server_ctx())
        port = srv.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("localhost", port, ssl=client_ctx())
        assert w.get_extra_info("ssl_object") is not None
        for i in range(20):
            w.write(b"line %d\n" % i)
            await w.drain()
            assert await r.readline() == b"LINE %d\n" % i
        w.close()
        await w.wait_closed()
        srv.close()
        await srv.wait_closed()

    run(loop, main())


def test_streams_many_clients(loop):
    async def client(port, i):
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx())
        msg = (b"%d-" % i) * 1000 + b"\n"
        w.write(msg)
        got = await r.readline()
        w.close()
        await w.wait_closed()
        return got == msg.upper()

    async def main():
        srv = await asyncio.start_server(upper_handler, "127.0.0.1", 0, ssl=server_ctx())
        port = srv.sockets[0].getsockname()[1]
        assert all(await asyncio.gather(*[client(port, i) for i in range(30)]))
        srv.close()
        await srv.wait_closed()

    run(loop, main())


@needs_311
def test_stream_writer_start_tls(loop):
    async def handler(r, w):
        assert await r.readline() == b"STARTTLS\n"
        w.write(b"GO\n")
        await w.drain()
        await w.start_tls(server_ctx())
        assert w.get_extra_info("ssl_object").server_side
        await upper_handler(r, w)

    async def main():
        srv = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        plain = w.transport
        w.write(b"STARTTLS\n")
        assert await r.readline() == b"GO\n"
        await w.start_tls(client_ctx(), server_hostname="localhost")
        assert w.transport is not plain
        assert w.get_extra_info("ssl_object") is not None
        assert plain.get_extra_info("ssl_object") is None
        w.write(b"encrypted\n")
        assert await r.readline() == b"ENCRYPTED\n"
        w.close()
        await w.wait_closed()
        srv.close()
        await srv.wait_closed()

    run(loop, main())


@needs_311
def test_stream_writer_start_tls_bad_cert(loop):
    async def handler(r, w):
        await r.readline()
        w.write(b"GO\n")
        await w.drain()
        try:
            await w.start_tls(server_ctx())
        except (OSError, ssl.SSLError):
            pass
        w.close()

    async def main():
        srv = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"STARTTLS\n")
        await r.readline()
        with pytest.raises(ssl.SSLCertVerificationError):
            await w.start_tls(untrusting_client_ctx(), server_hostname="localhost")
        w.close()
        srv.close()
        await srv.wait_closed()

    run(loop, main())


# ---------------------------------------------------------------------------
# large transfers under flow control


def pattern(n, seed):
    """n deterministic pseudo-random bytes."""
    out = bytearray()
    block = hashlib.sha256(b"%d" % seed).digest()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(block + i.to_bytes(8, "little")).digest() * 64
        i += 1
    return bytes(out[:n])


class FlowEchoServer(asyncio.Protocol):
    """Echo that respects flow control: stop reading while writes are paused."""

    def __init__(self, loop):
        self.loop = loop
        self.pauses = 0
        self.lost = loop.create_future()

    def connection_made(self, tr):
        self.tr = tr
        tr.set_write_buffer_limits(high=64 * 1024)

    def data_received(self, data):
        self.tr.write(data)

    def pause_writing(self):
        self.pauses += 1
        self.tr.pause_reading()

    def resume_writing(self):
        self.tr.resume_reading()

    def eof_received(self):
        return False

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(exc)


class HashingClient(asyncio.Protocol):
    def __init__(self, loop, total):
        self.loop = loop
        self.total = total
        self.received = 0
        self.digest = hashlib.sha256()
        self.done = loop.create_future()
        self.lost = loop.create_future()
        self.can_write = loop.create_future()
        self.can_write.set_result(None)
        self.pauses = 0

    def connection_made(self, tr):
        self.tr = tr
        tr.set_write_buffer_limits(high=256 * 1024)

    def pause_writing(self):
        self.pauses += 1
        self.can_write = self.loop.create_future()

    def resume_writing(self):
        if not self.can_write.done():
            self.can_write.set_result(None)

    def data_received(self, data):
        before = self.received
        self.received += len(data)
        self.digest.update(data)
        if before < MIB <= self.received:
            # stop reading a while: the server's writes must back up
            self.tr.pause_reading()
            self.loop.call_later(0.3, self.tr.resume_reading)
        if self.received >= self.total and not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(exc)


def test_large_echo_protocol_flow_control(loop):
    total = 20 * MIB
    data = pattern(total, 1)
    want = hashlib.sha256(data).hexdigest()

    async def main():
        sprotos = []
        srv = await loop.create_server(lambda: sprotos.append(FlowEchoServer(loop)) or sprotos[-1],
                                       "127.0.0.1", 0, ssl=server_ctx())
        port = srv.sockets[0].getsockname()[1]
        tr, pr = await loop.create_connection(lambda: HashingClient(loop, total),
                                              "127.0.0.1", port, ssl=client_ctx())
        view = memoryview(data)
        step = 256 * 1024 + 7  # not aligned with TLS records
        for off in range(0, total, step):
            await pr.can_write
            tr.write(view[off:off + step])
        await asyncio.wait_for(pr.done, 120)
        assert pr.received == total
        assert pr.digest.hexdigest() == want
        assert pr.pauses > 0  # flow control did engage
        assert sprotos[0].pauses > 0
        tr.close()
        assert await pr.lost is None
        srv.close()
        await srv.wait_closed()

    run(loop, main(), timeout=180)


def test_large_upload_streams_checksum(loop):
    """Client sends 20 MiB with drain(); the server hashes and replies."""
    total = 20 * MIB
    data = pattern(total, 2)
    want = hashlib.sha256(data).hexdigest().encode()

    async def handler(r, w):
        h = hashlib.sha256()
        n = 0
        while n < total:
            chunk = await r.read(1 << 16)
            if not chunk:
                break
            h.update(chunk)
            n += len(chunk)
            await asyncio.sleep(0) if n % (1 << 20) < len(chunk) else None  # a slow reader now and then
        w.write(b"%d %s\n" % (n, h.hexdigest().encode()))
        await w.drain()
        w.close()

    async def main():
        srv = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=server_ctx())
        port = srv.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx())
        view = memoryview(data)
        for off in range(0, total, 1 << 20):
            w.write(view[off:off + (1 << 20)])
            await w.drain()
        line = await asyncio.wait_for(r.readline(), 120)
        assert line == b"%d %s\n" % (total, want)
        w.close()
        await w.wait_closed()
        srv.close()
        await srv.wait_closed()

    run(loop, main(), timeout=180)


def test_large_download_single_write(loop):
    """One 20 MiB write() on the server: the client reads it all, in order."""
    total = 20 * MIB
    data = pattern(total, 3)
    want = hashlib.sha256(data).hexdigest()

    async def handler(r, w):
        await r.readline()
        w.write(data)
        await w.drain()
        w.close()
        await w.wait_closed()

    async def main():
        srv = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=server_ctx())
        port = srv.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx(),
                                             limit=1 << 16)
        w.write(b"go\n")
        h = hashlib.sha256()
        n = 0
        while True:
            chunk = await r.read(1 << 16)
            if not chunk:
                break
            h.update(chunk)
            n += len(chunk)
            if n % (4 * MIB) < len(chunk):
                await asyncio.sleep(0.01)  # let the server's buffer fill
        assert n == total
        assert h.hexdigest() == want
        w.close()
        await w.wait_closed()
        srv.close()
        await srv.wait_closed()

    run(loop, main(), timeout=180)


class ClosingEcho(Echo):
    def connection_lost(self, exc):
        # On 3.10, asyncio's (old) SSL transport only counts as closed once
        # close() was called on it, even after connection_lost.
        self.tr.close()


def test_no_resource_warning_after_close(loop):
    async def main():
        srv = await loop.create_server(lambda: ClosingEcho(), "127.0.0.1", 0, ssl=server_ctx())
        port = srv.sockets[0].getsockname()[1]
        tr, pr = await loop.create_connection(lambda: Collect(loop), "127.0.0.1", port,
                                              ssl=client_ctx())
        tr.close()
        await pr.lost
        srv.close()
        await srv.wait_closed()

    import warnings
    gc.collect()  # garbage of earlier tests is not ours
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        run(loop, main())
        gc.collect()
