"""loop.stats() and python -m boucle --stats (boucle only: asyncio has no such API)."""
import asyncio
import os
import re
import socket
import subprocess
import sys
import time

import pytest

from conftest import boucle_pythonpath


def test_counters(boucle_loop):
    loop = boucle_loop
    before = loop.stats()
    for i in range(10):
        loop.call_soon(lambda: None)
    loop.run_until_complete(asyncio.sleep(0.01))
    st = loop.stats()
    assert st["callbacks"] >= before["callbacks"] + 10
    assert st["iterations"] > before["iterations"]
    assert st["timers_fired"] >= before["timers_fired"] + 1      # the sleep's timer
    assert st["run_seconds"] >= 0.01
    assert 0.0 <= st["poll_seconds"] <= st["run_seconds"]
    assert st["closed"] is False


def test_io_and_gauges(boucle_loop):
    loop = boucle_loop
    a, b = socket.socketpair()
    try:
        got = loop.create_future()
        loop.add_reader(a.fileno(), lambda: got.done() or got.set_result(a.recv(10)))
        loop.call_later(100, lambda: None)
        assert loop.stats()["fds"] == 1
        assert loop.stats()["timers"] == 1
        assert loop.stats()["backend"] == loop.backend
        b.send(b"x")
        assert loop.run_until_complete(got) == b"x"
        st = loop.stats()
        assert st["io_events"] >= 1
        assert st["polls"] >= 1
        loop.remove_reader(a.fileno())
        assert loop.stats()["fds"] == 0
    finally:
        a.close()
        b.close()


def test_slow_callbacks_recorded(boucle_loop):
    loop = boucle_loop
    assert loop.stats()["slow_callback_threshold"] is None     # off by default
    loop.set_slow_callback_threshold(0.01)
    assert loop.stats()["slow_callback_threshold"] == 0.01

    def blocker():
        time.sleep(0.05)

    loop.call_soon(blocker)
    loop.run_until_complete(asyncio.sleep(0))
    st = loop.stats()
    assert st["slow_callbacks"] >= 1
    secs, desc = st["slowest_callbacks"][0]
    assert secs >= 0.04           # coarse clock: a tick of slack
    assert "blocker" in desc
    loop.set_slow_callback_threshold(None)
    assert loop.stats()["slow_callback_threshold"] is None
    with pytest.raises(ValueError):
        loop.set_slow_callback_threshold(-1)
    with pytest.raises(TypeError):
        loop.set_slow_callback_threshold("x")


def test_fast_callbacks_not_recorded(boucle_loop):
    loop = boucle_loop
    loop.set_slow_callback_threshold(0.01)
    for _ in range(1000):
        loop.call_soon(lambda: None)
    loop.run_until_complete(asyncio.sleep(0))
    assert loop.stats()["slowest_callbacks"] == [] or all(
        "lambda" not in d for _, d in loop.stats()["slowest_callbacks"])


def test_stats_after_close(boucle_factory):
    loop = boucle_factory()
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()
    st = loop.stats()
    assert st["closed"] is True
    assert st["iterations"] >= 1


def test_python_m_boucle_stats(tmp_path):
    script = tmp_path / "app.py"
    script.write_text(
        "import asyncio, time\n"
        "async def main():\n"
        "    asyncio.get_running_loop().call_soon(time.sleep, 0.03)\n"
        "    await asyncio.sleep(0.05)\n"
        "    print('app done')\n"
        "asyncio.run(main())\n")
    env = dict(os.environ, PYTHONPATH=boucle_pythonpath())
    proc = subprocess.run([sys.executable, "-m", "boucle", "--stats", str(script)],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "app done\n"
    assert re.search(r"boucle stats, loop 1 \((epoll|io_uring)\):", proc.stderr), proc.stderr
    assert "callbacks took >=" in proc.stderr
    assert "<Handle sleep(" in proc.stderr      # 3.13 shows arguments only in debug mode
