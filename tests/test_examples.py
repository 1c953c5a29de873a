"""examples/echo_server.py and examples/http_hello.py, served by boucle.

Each server runs in a child interpreter (importing the same boucle as the
tests) on 127.0.0.1 with an ephemeral port; the test is the client, with
plain blocking sockets and http.client, so that only the server side runs
on boucle. Every test asserts on what came back, and that SIGINT stops the
server cleanly (exit status 0, nothing on stderr).

While boucle.Loop does not implement networking yet, the tests are skipped
with a reason naming what is missing (see networking_missing()).
"""
import hashlib
import http.client
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

from conftest import boucle_pythonpath

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
TIMEOUT = 15.0

# What a loop needs for the examples: sock_* operations, socket transports
# and servers. asyncio's base classes only have NotImplementedError stubs.
NETWORK_METHODS = ("sock_recv", "sock_sendall", "sock_connect", "sock_accept",
                   "_make_socket_transport", "_start_serving")


def networking_missing(boucle_mod):
    """Why boucle cannot run networked programs yet, or None if it can."""
    from asyncio import base_events
    missing = [name for name in NETWORK_METHODS
               if getattr(boucle_mod.Loop, name, None)
               is getattr(base_events.BaseEventLoop, name, None)]
    if missing:
        return ("boucle networking is missing (sockets and transports, issue #3): "
                "boucle.Loop does not implement " + ", ".join(missing))
    return None


def child_env():
    env = dict(os.environ, PYTHONPATH=boucle_pythonpath(), PYTHONUNBUFFERED="1")
    env.pop("PYTHONASYNCIODEBUG", None)
    return env


class Server:
    """An example server in a child interpreter, on an ephemeral port."""

    def __init__(self, script, banner):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(EXAMPLES, script), "--host", "127.0.0.1",
             "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env(), text=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], TIMEOUT)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith(banner):
            self.proc.kill()
            _, err = self.proc.communicate(timeout=TIMEOUT)
            pytest.fail(f"{script} did not start: stdout {line!r}, stderr:\n{err}")
        address = line[len(banner):].strip().strip("/").replace("http://", "")
        host, port = address.rsplit(":", 1)
        self.address = (host, int(port))
        self.stopped = None

    def stop(self):
        """SIGINT, as Ctrl-C would; return (exit status, stdout, stderr)."""
        if self.stopped is None:
            if self.proc.poll() is None:
                # Let the server finish what it is doing, as when a person
                # presses Ctrl-C: on 3.10, asyncio.run (and so boucle.run)
                # has no SIGINT handler, and a KeyboardInterrupt raised while
                # a connection's task runs ends that task with it.
                time.sleep(0.2)
                self.proc.send_signal(signal.SIGINT)
            try:
                out, err = self.proc.communicate(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                out, err = self.proc.communicate()
                pytest.fail(f"the server ignored SIGINT; stderr:\n{err}")
            self.stopped = (self.proc.returncode, out, err)
        return self.stopped

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def _server_fixture(name, script, banner, stopped):
    def fixture(boucle_mod):
        reason = networking_missing(boucle_mod)
        if reason:
            pytest.skip(reason)
        server = Server(script, banner)
        try:
            yield server
            status, out, err = server.stop()
            assert (status, err) == (0, ""), f"exit status {status}, stderr:\n{err}"
            assert out.splitlines()[-1] == stopped
        finally:
            server.kill()
    fixture.__name__ = name
    return pytest.fixture(fixture, name=name)


echo_server = _server_fixture("echo_server", "echo_server.py",
                              "echo server: listening on ", "echo server: stopped")
http_server = _server_fixture("http_server", "http_hello.py",
                              "http server: listening on ", "http server: stopped")


def connect(address):
    sock = socket.create_connection(address, timeout=TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_exactly(sock, size):
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        assert chunk, f"connection closed with {left} of {size} bytes missing"
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def recv_until_eof(sock):
    chunks = []
    while chunk := sock.recv(1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


# -- echo server -------------------------------------------------------------

def test_echo_round_trips(echo_server):
    with connect(echo_server.address) as sock:
        for message in (b"hello\n", b"boucle", b"x" * 1000, bytes(range(256))):
            sock.sendall(message)
            assert recv_exactly(sock, len(message)) == message


def test_echo_half_close_flushes_then_closes(echo_server):
    with connect(echo_server.address) as sock:
        sock.sendall(b"last words")
        sock.shutdown(socket.SHUT_WR)
        assert recv_until_eof(sock) == b"last words"


def test_echo_large_payload_with_flow_control(echo_server):
    # 8 MiB sent while reading back: the server must pause on drain() when
    # the client reads slower than it writes, and resume.
    payload = os.urandom(1 << 16) * 128
    with connect(echo_server.address) as sock:
        def send():
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
        sender = threading.Thread(target=send)
        sender.start()
        time.sleep(0.2)             # let the server's buffer fill up first
        echoed = recv_until_eof(sock)
        sender.join(TIMEOUT)
    assert len(echoed) == len(payload)
    assert hashlib.sha256(echoed).digest() == hashlib.sha256(payload).digest()


def test_echo_many_concurrent_clients(echo_server):
    clients = [connect(echo_server.address) for _ in range(50)]
    try:
        for n, sock in enumerate(clients):
            sock.sendall(b"client %d\n" % n)
        for n, sock in reversed(list(enumerate(clients))):
            expected = b"client %d\n" % n
            assert recv_exactly(sock, len(expected)) == expected
    finally:
        for sock in clients:
            sock.close()


def test_echo_client_reset_does_not_hurt_the_server(echo_server):
    with connect(echo_server.address) as sock:
        # linger on, timeout 0: close() sends a RST instead of a FIN
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.sendall(b"going away")
    with connect(echo_server.address) as sock:     # still serving
        sock.sendall(b"still there?")
        assert recv_exactly(sock, 12) == b"still there?"


def test_echo_ctrl_c_with_clients_connected(echo_server):
    # SIGINT ends the sessions still open, then the server: the client sees
    # its connection closed after everything sent was echoed.
    with connect(echo_server.address) as idle, connect(echo_server.address) as busy:
        busy.sendall(b"before the end")
        assert recv_exactly(busy, 14) == b"before the end"
        idle.sendall(b"?")
        assert recv_exactly(idle, 1) == b"?"
        status, out, err = echo_server.stop()
        assert (status, err) == (0, "")
        assert recv_until_eof(idle) == b"" and recv_until_eof(busy) == b""


# -- HTTP server -------------------------------------------------------------

def body_for(method, path, size=0):
    return f"Hello from boucle! {method} {path}, {size} bytes of body\n".encode()


def test_http_get(http_server):
    conn = http.client.HTTPConnection(*http_server.address, timeout=TIMEOUT)
    conn.request("GET", "/hello/world?x=1")
    response = conn.getresponse()
    assert (response.status, response.reason) == (200, "OK")
    assert response.getheader("Content-Type") == "text/plain; charset=utf-8"
    assert response.read() == body_for("GET", "/hello/world?x=1")
    conn.close()


def test_http_keep_alive_reuses_the_connection(http_server):
    conn = http.client.HTTPConnection(*http_server.address, timeout=TIMEOUT)
    conn.request("GET", "/one")
    first = conn.getresponse()
    assert first.read() == body_for("GET", "/one")
    assert first.getheader("Connection") == "keep-alive"
    sock = conn.sock
    conn.request("POST", "/two", body=b"0123456789")
    second = conn.getresponse()
    assert second.read() == body_for("POST", "/two", 10)
    assert conn.sock is sock                # no reconnection happened
    conn.close()


def test_http_head_has_no_body(http_server):
    conn = http.client.HTTPConnection(*http_server.address, timeout=TIMEOUT)
    conn.request("HEAD", "/head")
    response = conn.getresponse()
    assert response.status == 200
    assert int(response.getheader("Content-Length")) == len(body_for("HEAD", "/head"))
    assert response.read() == b""
    conn.close()


def test_http_pipelined_requests_answered_in_order(http_server):
    requests = (b"GET /first HTTP/1.1\r\nHost: t\r\n\r\n"
                b"POST /second HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
                b"GET /third HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    with connect(http_server.address) as sock:
        sock.sendall(requests)
        raw = recv_until_eof(sock)          # the server closes after /third
    bodies = [body_for("GET", "/first"), body_for("POST", "/second", 3),
              body_for("GET", "/third")]
    expected = b""
    for body, connection in zip(bodies, ("keep-alive", "keep-alive", "close")):
        expected += (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     b"Content-Length: %d\r\nConnection: %s\r\n\r\n%s"
                     % (len(body), connection.encode(), body))
    assert raw == expected


def test_http_request_split_across_packets(http_server):
    with connect(http_server.address) as sock:
        for piece in (b"PUT /sl", b"ow HTTP/1.1\r\nContent-Le", b"ngth: 4\r\n\r",
                      b"\nda", b"ta"):
            sock.sendall(piece)
            time.sleep(0.02)
        sock.shutdown(socket.SHUT_WR)
        raw = recv_until_eof(sock)
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert raw.endswith(b"\r\n\r\n" + body_for("PUT", "/slow", 4))


def test_http_1_0_closes_by_default(http_server):
    with connect(http_server.address) as sock:
        sock.sendall(b"GET /old HTTP/1.0\r\n\r\n")
        raw = recv_until_eof(sock)
    assert b"\r\nConnection: close\r\n" in raw
    assert raw.endswith(body_for("GET", "/old"))


def test_http_malformed_request_gets_400(http_server):
    with connect(http_server.address) as sock:
        sock.sendall(b"NONSENSE\r\n\r\n")
        raw = recv_until_eof(sock)
    assert raw.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert raw.endswith(b"\r\n\r\nmalformed request\n")


def test_http_ctrl_c_with_a_keep_alive_connection(http_server):
    conn = http.client.HTTPConnection(*http_server.address, timeout=TIMEOUT)
    conn.request("GET", "/idle")
    assert conn.getresponse().read() == body_for("GET", "/idle")
    status, out, err = http_server.stop()       # the connection is still open
    assert (status, err) == (0, "")
    assert conn.sock.recv(1) == b""             # and the server closed it
    conn.close()


def test_http_client_not_reading_pauses_the_server(http_server):
    # Pipeline far more requests than the answers' buffer holds, read them
    # all afterwards: the protocol pauses reading while the transport's
    # buffer is full and resumes when it drains; nothing is lost.
    count = 20000
    request = b"GET /flood HTTP/1.1\r\nHost: t\r\n\r\n"
    body = body_for("GET", "/flood")
    answer = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
              b"Content-Length: %d\r\nConnection: keep-alive\r\n\r\n%s" % (len(body), body))
    with connect(http_server.address) as sock:
        sender = threading.Thread(target=sock.sendall, args=(request * count,))
        sender.start()
        time.sleep(0.3)
        received = recv_exactly(sock, len(answer) * count)
        sender.join(TIMEOUT)
    assert received == answer * count
