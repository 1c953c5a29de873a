"""python -m boucle with no arguments: the async REPL, driven through a pty.

The REPL is asyncio's own (asyncio.__main__) with boucle installed as the
policy, so its event loop is a boucle loop. A real terminal matters here:
line editing (readline, or the new REPL of 3.13) and Ctrl-C (SIGINT from
the terminal driver) only behave as a person sees them on a tty. Each test
starts the REPL on a fresh pseudo-terminal that is its controlling
terminal, types into it and reads the screen output, with bounded timeouts.

Expressions are written so that the awaited output never appears in what
was typed ('sle' + 'pt' prints 'slept'): the terminal echoes the input, and
3.13's REPL redraws the line after each key.
"""
import fcntl
import importlib.util
import os
import select
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest

from conftest import boucle_pythonpath

TIMEOUT = 15.0

# On 3.13 the new REPL (_pyrepl) is the default and PYTHON_BASIC_REPL=1 gives
# the readline-based one; before 3.13 there is only the readline one.
KINDS = ["default"] + (["basic"] if sys.version_info >= (3, 13) else [])


def _make_controlling_tty():
    # In the child, before exec: a new session whose controlling terminal is
    # the pty on stdin, so that Ctrl-C typed there sends SIGINT to the REPL.
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Repl:
    def __init__(self, kind, home):
        self.kind = kind
        try:
            self.master, slave = os.openpty()
        except OSError as exc:
            pytest.skip(f"no pseudo-terminal available: {exc}")
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
        env = dict(os.environ, PYTHONPATH=boucle_pythonpath(), TERM="xterm",
                   HOME=str(home), PYTHON_HISTORY=str(home / "history"))
        for name in ("PYTHONSTARTUP", "PYTHON_BASIC_REPL", "PYTHONASYNCIODEBUG",
                     "NO_COLOR", "FORCE_COLOR"):
            env.pop(name, None)
        if kind == "basic":
            env["PYTHON_BASIC_REPL"] = "1"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "boucle"], stdin=slave, stdout=slave, stderr=slave,
            cwd=str(home), env=env, preexec_fn=_make_controlling_tty)
        os.close(slave)
        self.seen = b""             # everything read from the terminal
        self.pending = b""          # what expect() has not consumed yet

    def wait_ready(self):
        self.expect(b"import asyncio")  # the end of asyncio's REPL banner
        self.prompt()

    def expect(self, token, timeout=TIMEOUT):
        """Read until `token` appears; return what came before it."""
        deadline = time.monotonic() + timeout
        while token not in self.pending:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.master], [], [], max(left, 0))
            chunk = b""
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:     # EIO: the REPL has gone, the pty is closed
                    pass
            if not chunk:
                pytest.fail(f"{token!r} did not show up within {timeout}s; the terminal "
                            f"showed:\n{self.seen.decode(errors='replace')[-2000:]}")
            self.seen += chunk
            self.pending += chunk
        before, _, self.pending = self.pending.partition(token)
        return before

    def prompt(self):
        self.expect(b">>> ")
        # Let the line editor switch the terminal back to its own mode
        # before anything is typed.
        time.sleep(0.2)

    def type(self, text):
        os.write(self.master, text)

    def run(self, line, result=None):
        """Type `line` + Enter, wait for `result` (if any), then for the next prompt."""
        self.type(line + b"\r")
        if result is not None:
            self.expect(result)
        self.prompt()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


@pytest.fixture(params=KINDS)
def repl(request, boucle_mod, tmp_path):
    session = Repl(request.param, tmp_path)
    try:
        session.wait_ready()
        yield session
    finally:
        session.close()


def test_top_level_await(repl):
    repl.run(b"await asyncio.sleep(0.05, result='sle' + 'pt')", b"'slept'")
    repl.run(b"twice = lambda x: asyncio.sleep(0.01, result=x * 2)")
    repl.run(b"await twice('ab')", b"'abab'")


def test_the_loop_is_boucles(repl):
    repl.run(b"import boucle")
    repl.run(b"str(type(asyncio.get_running_loop()) is boucle.Loop).upper()", b"'TRUE'")
    repl.run(b"type(asyncio.get_running_loop()).__module__.upper()", b"'BOUCLE._LOOP'")


def test_background_task_runs_between_prompts(repl):
    repl.run(b"t = asyncio.ensure_future(asyncio.sleep(0.2, result='back' + 'ground'))")
    time.sleep(0.5)                 # the loop runs while the REPL waits for input
    repl.run(b"t.done(), t.result()", b"(True, 'background')")


def test_ctrl_c_cancels_the_running_await(repl):
    repl.type(b"print('sta' + 'rted'); await asyncio.sleep(30)\r")
    repl.expect(b"started")
    time.sleep(0.3)                 # now suspended in the sleep
    started = time.monotonic()
    repl.type(b"\x03")              # Ctrl-C
    repl.expect(b"KeyboardInterrupt")
    repl.prompt()
    repl.run(b"'pro' + 'mpt is back'", b"'prompt is back'")
    assert time.monotonic() - started < 10
    # The statement's task was cancelled, not left running.
    repl.run(b"'tasks=%d' % len(asyncio.all_tasks())", b"'tasks=0'")


def test_ctrl_c_interrupts_blocking_code(repl):
    repl.type(b"import time; print('sta' + 'rted'); time.sleep(30)\r")
    repl.expect(b"started")
    time.sleep(0.3)
    repl.type(b"\x03")
    repl.expect(b"KeyboardInterrupt")
    repl.prompt()
    repl.run(b"'still ' + 'alive'", b"'still alive'")


def test_ctrl_d_exits_with_status_0(repl):
    repl.run(b"'bye' + 'bye'", b"'byebye'")
    repl.type(b"\x04")              # Ctrl-D at an empty prompt
    repl.expect(b"exiting asyncio REPL")
    try:
        status = repl.proc.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail("the REPL did not exit after Ctrl-D")
    assert status == 0


def test_history_recalls_the_previous_line(repl):
    uses_readline = repl.kind == "basic" or sys.version_info < (3, 13)
    if uses_readline and importlib.util.find_spec("readline") is None:
        pytest.skip("this interpreter has no readline module: no line editing to test")
    repl.run(b"'his' + 'tory'", b"'history'")
    # Up arrow: "ESC [ A", or "ESC O A" once the line editor has put the
    # terminal in application cursor mode (3.13's REPL does).
    up = b"\x1bOA" if b"\x1b[?1h" in repl.seen else b"\x1b[A"
    repl.type(up + b"\r")
    repl.expect(b"'history'")
    repl.prompt()


def test_exceptions_are_shown_and_the_repl_goes_on(repl):
    repl.run(b"1 / 0", b"ZeroDivisionError")
    repl.run(b"'after ' + 'the error'", b"'after the error'")
    assert repl.proc.poll() is None
    repl.proc.send_signal(signal.SIGTERM)
