"""Helpers for tests/integration: real libraries, real servers, real sockets.

Every test here runs third-party software on a boucle loop over loopback
sockets.  A test is skipped (with the reason) when its library or server is
not available; ``ci/integration-setup.sh`` makes them all available.  Set
BOUCLE_INTEGRATION_REQUIRED=1 to turn those skips into failures (CI).
"""
import asyncio
import importlib
import os
import socket
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(os.path.dirname(HERE)), "src")
REQUIRED = os.environ.get("BOUCLE_INTEGRATION_REQUIRED", "") not in ("", "0")
PG_DSN = os.environ.get("BOUCLE_PG_DSN", "postgresql://postgres@127.0.0.1:45432/postgres")


def _import_boucle():
    try:
        return importlib.import_module("boucle")
    except ImportError:
        if SRC not in sys.path:
            sys.path.insert(0, SRC)
        return importlib.import_module("boucle")


boucle = _import_boucle()


def unavailable(reason):
    """Skip, or fail when BOUCLE_INTEGRATION_REQUIRED is set."""
    if REQUIRED:
        pytest.fail("required for integration tests: " + reason, pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def need(module):
    """Import a third-party module or skip the test (reason: the import error)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        unavailable("%s not installed (%s); pip install -r tests/integration/requirements.txt"
                    % (module, exc))


def run(coro, timeout=30):
    """Run ``coro`` on a fresh boucle loop, bounded by ``timeout`` seconds."""
    async def bounded():
        assert type(asyncio.get_running_loop()) is boucle.Loop
        return await asyncio.wait_for(coro, timeout)
    return boucle.run(bounded())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("server exited with %s before listening" % proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("nothing listening on 127.0.0.1:%d after %ss" % (port, timeout))


def stop_process(proc, timeout=10):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def child_env():
    """Environment for child Pythons: boucle importable from the source tree."""
    env = dict(os.environ)
    boucle_dir = os.path.dirname(os.path.dirname(os.path.abspath(boucle.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (boucle_dir, env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def external_env():
    """Environment for non-Python children (curl, redis-server): without the
    sanitizer runtime that `make test-asan` preloads (curl hangs under it)."""
    env = dict(os.environ)
    for key in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS", "PYTHONMALLOC"):
        env.pop(key, None)
    return env


class RedisServer:
    """A private redis-server on a free loopback port, data in a temp dir."""

    def __init__(self, binary, workdir):
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", self.workdir, "--save", "", "--appendonly", "no",
             "--protected-mode", "no", "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=external_env())
        wait_port(self.port, proc=self.proc)

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    @property
    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port


