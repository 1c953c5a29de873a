"""Choosing the I/O backend: epoll (default), io_uring, auto.

The whole suite runs on either backend (BOUCLE_BACKEND=io_uring in CI picks
io_uring for every loop the fixtures make); these tests cover the choice
itself, the fallback when io_uring is refused, and the io_uring-specific
bookkeeping (deferred arming, requests cancelled when their thread exits).
"""
import asyncio
import ctypes
import os
import socket
import struct
import subprocess
import sys
import textwrap
import threading

import pytest

from conftest import boucle, BOUCLE_SKIP_REASON, boucle_pythonpath

pytestmark = pytest.mark.skipif(boucle is None, reason=BOUCLE_SKIP_REASON or "")


def _uring_available():
    if boucle is None:
        return False
    try:
        boucle.new_event_loop(backend="io_uring").close()
    except OSError:
        return False
    return True


needs_uring = pytest.mark.skipif(not _uring_available(),
                                 reason="this kernel (or a seccomp policy) refuses io_uring")
BACKENDS = ["epoll", pytest.param("io_uring", marks=needs_uring)]


def _run_child(code, env_extra=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = boucle_pythonpath()
    env.pop("BOUCLE_BACKEND", None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=60)


def test_default_is_epoll(monkeypatch):
    monkeypatch.delenv("BOUCLE_BACKEND", raising=False)
    loop = boucle.new_event_loop()
    try:
        assert loop.backend == "epoll"
    finally:
        loop.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_explicit_backend(backend, monkeypatch):
    # the argument wins over the environment
    monkeypatch.setenv("BOUCLE_BACKEND", "io_uring" if backend == "epoll" else "epoll")
    loop = boucle.new_event_loop(backend=backend)
    try:
        assert loop.backend == backend
        assert loop.run_until_complete(asyncio.sleep(0.001, "ok")) == "ok"
    finally:
        loop.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_environment_variable(backend, monkeypatch):
    monkeypatch.setenv("BOUCLE_BACKEND", backend)
    loop = boucle.new_event_loop()
    try:
        assert loop.backend == backend
    finally:
        loop.close()
    # loop_factory users (asyncio.run, uvicorn --loop) get it too
    assert boucle.run(_backend_of_running_loop()) == backend


async def _backend_of_running_loop():
    return asyncio.get_running_loop().backend


def test_auto_picks_io_uring_when_available():
    loop = boucle.new_event_loop(backend="auto")
    try:
        assert loop.backend == ("io_uring" if _uring_available() else "epoll")
    finally:
        loop.close()


def test_bad_backend_names(monkeypatch):
    with pytest.raises(ValueError, match="'auto', 'epoll' or 'io_uring'"):
        boucle.new_event_loop(backend="kqueue")
    with pytest.raises(TypeError, match="backend must be a str or None"):
        boucle.new_event_loop(backend=1)
    monkeypatch.setenv("BOUCLE_BACKEND", "uring")
    with pytest.raises(ValueError, match="BOUCLE_BACKEND must be"):
        boucle.new_event_loop()


# A seccomp filter that makes io_uring_setup fail with EPERM, as container
# runtimes' default profiles do (Docker, podman, ChromeOS).
_SECCOMP_CHILD = r"""
import ctypes, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
NR_io_uring_setup = 425
def insn(code, jt, jf, k):
    return struct.pack("HBBI", code, jt, jf, k)
prog = b"".join([
    insn(0x20, 0, 0, 0),                            # ld [nr]
    insn(0x15, 0, 1, NR_io_uring_setup),            # jeq io_uring_setup ? next : allow
    insn(0x06, 0, 0, 0x00050000 | 1),               # ret ERRNO(EPERM)
    insn(0x06, 0, 0, 0x7fff0000),                   # ret ALLOW
])
buf = ctypes.create_string_buffer(prog)
class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
fprog = SockFprog(len(prog) // 8, ctypes.addressof(buf))
assert libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
    print("SECCOMP-UNAVAILABLE"); sys.exit(0)
import asyncio, boucle
loop = boucle.new_event_loop(backend="auto")
print("auto:", loop.backend, loop.run_until_complete(asyncio.sleep(0, "ran")))
loop.close()
try:
    boucle.new_event_loop(backend="io_uring")
except OSError as exc:
    print("explicit:", type(exc).__name__, exc.errno, exc.strerror)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.uname().machine != "x86_64",
                    reason="the seccomp filter below hard-codes x86-64's syscall number")
def test_refused_by_seccomp_falls_back_or_raises():
    r = _run_child(_SECCOMP_CHILD)
    assert r.returncode == 0, r.stderr
    if "SECCOMP-UNAVAILABLE" in r.stdout:
        pytest.skip("seccomp filters cannot be installed here")
    lines = r.stdout.splitlines()
    assert lines[0] == "auto: epoll ran"
    assert lines[1].startswith("explicit: PermissionError 1 io_uring backend unavailable"), lines


@pytest.mark.parametrize("backend", BACKENDS)
def test_reader_armed_by_an_exited_thread_still_fires(backend):
    # asyncio allows running a loop in one thread, then in another. io_uring
    # cancels requests when the thread that submitted them exits; the loop
    # must re-arm them, not go deaf.
    loop = boucle.new_event_loop(backend=backend)
    a, b = socket.socketpair()
    got = []
    try:
        loop.add_reader(a.fileno(), lambda: got.append(a.recv(100)))
        t = threading.Thread(target=lambda: loop.run_until_complete(asyncio.sleep(0.01)))
        t.start()
        t.join()
        b.send(b"after the thread")

        async def wait_for_data():
            while not got:
                await asyncio.sleep(0.005)
        loop.run_until_complete(asyncio.wait_for(wait_for_data(), 10))
        assert got == [b"after the thread"]
        loop.remove_reader(a.fileno())
    finally:
        loop.close()
        a.close()
        b.close()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("end_watch", ["remove_reader", "loop.close"])
def test_closing_a_watched_socket_really_closes_it(backend, end_watch):
    # remove_reader (or loop.close with the reader still registered), then
    # close(): the socket must really close at once. An io_uring poll request
    # still holding the listener would keep accepting connections (closing a
    # ring cancels its requests only later, in a kernel worker). Repeated:
    # the window is short.
    for _ in range(50):
        loop = boucle.new_event_loop(backend=backend)
        listener = socket.socket()
        try:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            listener.setblocking(False)
            addr = listener.getsockname()
            loop.add_reader(listener.fileno(), lambda: None)
            loop.run_until_complete(asyncio.sleep(0))      # armed
            if end_watch == "remove_reader":
                loop.remove_reader(listener.fileno())
            else:
                loop.close()
            listener.close()
            with socket.socket() as c:
                with pytest.raises(ConnectionRefusedError):
                    c.connect(addr)
        finally:
            loop.close()
            listener.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_interest_toggled_many_times_in_one_iteration(backend):
    # io_uring defers interest changes to the next wait; the net effect of
    # many changes is what counts.
    loop = boucle.new_event_loop(backend=backend)
    a, b = socket.socketpair()
    got = []
    try:
        for _ in range(100):
            loop.add_reader(a.fileno(), got.append, "r")
            loop.remove_reader(a.fileno())
            loop.add_writer(a.fileno(), got.append, "w")
            loop.remove_writer(a.fileno())
        loop.add_reader(a.fileno(), lambda: got.append(a.recv(10)))
        b.send(b"x")

        async def wait():
            while not got:
                await asyncio.sleep(0.001)
        loop.run_until_complete(asyncio.wait_for(wait(), 10))
        loop.run_until_complete(asyncio.sleep(0.01))
        assert got == [b"x"]
        loop.remove_reader(a.fileno())
    finally:
        loop.close()
        a.close()
        b.close()


@needs_uring
def test_many_fds_on_io_uring():
    # more registrations than the submission ring has entries (1024), all
    # readable in the same iteration
    loop = boucle.new_event_loop(backend="io_uring")
    pairs = [socket.socketpair() for _ in range(1500)]
    seen = set()
    try:
        for i, (a, b) in enumerate(pairs):
            loop.add_reader(a.fileno(), lambda i=i, a=a: (seen.add(i), a.recv(10)))
            b.send(b"!")

        async def wait():
            while len(seen) < len(pairs):
                await asyncio.sleep(0.001)
        loop.run_until_complete(asyncio.wait_for(wait(), 30))
        assert len(seen) == len(pairs)
        for a, _ in pairs:
            loop.remove_reader(a.fileno())
    finally:
        loop.close()
        for a, b in pairs:
            a.close()
            b.close()


@needs_uring
def test_fork_child_gets_its_own_ring():
    r = _run_child("""
        import asyncio, os, socket, boucle
        loop = boucle.new_event_loop(backend="io_uring")
        loop.run_until_complete(asyncio.sleep(0))
        pid = os.fork()
        if pid == 0:
            try:
                a, b = socket.socketpair()
                fut = loop.create_future()
                loop.add_reader(a.fileno(), lambda: fut.done() or fut.set_result(a.recv(9)))
                b.send(b"in child")
                ok = loop.run_until_complete(asyncio.wait_for(fut, 10)) == b"in child"
                os._exit(0 if ok and loop.backend == "io_uring" else 1)
            except BaseException:
                os._exit(2)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
        print("parent", loop.run_until_complete(asyncio.sleep(0.001, "ok")))
        loop.close()
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["child", "0", "parent", "ok"]
