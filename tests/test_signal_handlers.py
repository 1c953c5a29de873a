"""add_signal_handler / remove_signal_handler: errors and delivery while the
loop is idle, busy, or waiting on I/O; Ctrl-C under boucle.run vs asyncio.run."""
import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from conftest import boucle_pythonpath

pytestmark = pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                                reason="signal handlers need the main thread")


def test_errors_like_asyncio(loop):
    async def coro_handler():
        pass

    with pytest.raises(TypeError, match="coroutines cannot be used"):
        loop.add_signal_handler(signal.SIGUSR1, coro_handler)
    with pytest.raises(TypeError, match="sig must be an int"):
        loop.add_signal_handler("USR1", print)
    with pytest.raises(ValueError, match="invalid signal number"):
        loop.add_signal_handler(10_000, print)
    with pytest.raises(RuntimeError, match="cannot be caught"):
        loop.add_signal_handler(signal.SIGKILL, print)
    with pytest.raises(TypeError):
        loop.remove_signal_handler("USR1")
    assert loop.remove_signal_handler(signal.SIGUSR2) is False


def test_not_in_main_thread(loop_factory):
    errors = []

    def worker():
        lp = loop_factory()
        try:
            lp.add_signal_handler(signal.SIGUSR1, print)
        except RuntimeError as exc:
            errors.append(exc)
        finally:
            lp.close()
    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert len(errors) == 1


def test_closed_loop_refuses(loop_factory):
    lp = loop_factory()
    lp.close()
    with pytest.raises(RuntimeError, match="closed"):
        lp.add_signal_handler(signal.SIGUSR1, print)


def _deliver(loop, busy):
    """Send SIGUSR1 while the loop is idle, busy or waiting on a socket."""
    got = []
    done = loop.create_future()

    def handler(tag):
        got.append(tag)
        if not done.done():
            done.set_result(None)

    loop.add_signal_handler(signal.SIGUSR1, handler, "usr1")
    a, b = socket.socketpair()
    a.setblocking(False)
    try:
        if busy == "busy":
            def spin(deadline=time.monotonic() + 5):
                if not done.done() and time.monotonic() < deadline:
                    loop.call_soon(spin)
            loop.call_soon(spin)
        elif busy == "io":
            loop.add_reader(a.fileno(), lambda: a.recv(100))
        timer = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGUSR1))
        timer.start()
        guard = loop.call_later(10, lambda: done.done() or done.cancel())
        t0 = time.monotonic()
        loop.run_until_complete(done)
        timer.join()
        guard.cancel()
        return got, time.monotonic() - t0
    finally:
        if busy == "io":
            loop.remove_reader(a.fileno())
        loop.remove_signal_handler(signal.SIGUSR1)
        a.close()
        b.close()


@pytest.mark.parametrize("state", ["idle", "busy", "io"])
def test_delivery(loop, state):
    got, elapsed = _deliver(loop, state)
    assert got == ["usr1"]
    assert elapsed < 2.0


def test_close_removes_handlers(loop_factory):
    lp = loop_factory()
    lp.add_signal_handler(signal.SIGUSR2, print)
    assert signal.getsignal(signal.SIGUSR2) not in (signal.SIG_DFL, None)
    lp.close()
    assert signal.getsignal(signal.SIGUSR2) is signal.SIG_DFL


CTRL_C = textwrap.dedent("""
    import asyncio, os, signal, sys, threading
    KIND = sys.argv[1]
    cleanup = []
    async def main():
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cleanup.append("cancelled")
            raise
    try:
        if KIND == "boucle":
            import boucle
            boucle.run(main())
        else:
            asyncio.run(main())
    except KeyboardInterrupt:
        print("KeyboardInterrupt", cleanup)
""")


def test_ctrl_c_like_asyncio_run(tmp_path):
    script = tmp_path / "ctrlc.py"
    script.write_text(CTRL_C)
    env = dict(os.environ, PYTHONPATH=boucle_pythonpath())
    outs = {}
    for kind in ("asyncio", "boucle"):
        proc = subprocess.run([sys.executable, str(script), kind], env=env,
                              capture_output=True, text=True, timeout=30)
        outs[kind] = (proc.returncode, proc.stdout.strip())
    assert outs["boucle"] == outs["asyncio"]
    assert outs["boucle"][1].startswith("KeyboardInterrupt")
