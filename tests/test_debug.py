"""Debug mode: set_debug/get_debug and the checks asyncio does only in debug mode."""
import asyncio
import logging
import os
import subprocess
import sys
import time

import pytest

from conftest import boucle_pythonpath


def run_once(loop):
    loop.stop()
    loop.run_forever()


def test_set_get_debug(loop):
    expected = bool(sys.flags.dev_mode or (not sys.flags.ignore_environment
                                           and os.environ.get("PYTHONASYNCIODEBUG")))
    assert loop.get_debug() is expected
    loop.set_debug(True)
    assert loop.get_debug() is True
    loop.set_debug(False)
    assert loop.get_debug() is False


@pytest.mark.parametrize("how", ["env", "devmode"])
def test_debug_default_from_environment(loop_factory, how):
    code = (
        "import asyncio, sys\n"
        "if sys.argv[1] == 'boucle':\n"
        "    import boucle; loop = boucle.new_event_loop()\n"
        "else:\n"
        "    loop = asyncio.new_event_loop()\n"
        "print(loop.get_debug())\n"
        "loop.close()\n"
    )
    env = dict(os.environ)
    env.pop("PYTHONASYNCIODEBUG", None)
    env.pop("PYTHONDEVMODE", None)
    env["PYTHONPATH"] = boucle_pythonpath()
    args = [sys.executable]
    if how == "env":
        env["PYTHONASYNCIODEBUG"] = "1"
    elif how == "devmode":
        args += ["-X", "dev"]
    args += ["-c", code, str(loop_factory.kind)]
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


def test_debug_call_soon_rejects_non_callable(loop):
    loop.set_debug(True)
    with pytest.raises(TypeError, match="a callable object was expected by call_soon"):
        loop.call_soon(42)
    with pytest.raises(TypeError, match="a callable object was expected by call_at"):
        loop.call_later(1, 42)
    with pytest.raises(TypeError, match="a callable object was expected by call_at"):
        loop.call_at(loop.time() + 1, "not callable")
    with pytest.raises(TypeError, match="a callable object was expected by call_soon_threadsafe"):
        loop.call_soon_threadsafe(None)


def test_debug_call_soon_rejects_coroutines(loop):
    loop.set_debug(True)

    async def coro_func():
        pass

    with pytest.raises(TypeError, match="coroutines cannot be used with call_soon"):
        loop.call_soon(coro_func)
    coro = coro_func()
    with pytest.raises(TypeError, match="coroutines cannot be used with call_soon"):
        loop.call_soon(coro)
    with pytest.raises(TypeError, match="coroutines cannot be used with call_at"):
        loop.call_later(0, coro)
    with pytest.raises(TypeError, match="coroutines cannot be used with call_soon_threadsafe"):
        loop.call_soon_threadsafe(coro)
    coro.close()


def test_debug_run_in_executor_rejects_coroutine_function(loop):
    loop.set_debug(True)

    async def coro_func():
        pass

    with pytest.raises(TypeError, match="coroutines cannot be used with run_in_executor"):
        loop.run_in_executor(None, coro_func)


def test_non_debug_accepts_non_callable_until_run(loop):
    loop.set_debug(False)  # the default unless -X dev / PYTHONASYNCIODEBUG
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    h = loop.call_soon(42)
    run_once(loop)
    assert len(contexts) == 1
    assert isinstance(contexts[0]["exception"], TypeError)
    assert contexts[0]["handle"] is h


def test_slow_callback_warning(loop, caplog):
    loop.set_debug(True)
    loop.slow_callback_duration = 0.01

    def slow_callback_function():
        time.sleep(0.05)

    with caplog.at_level(logging.WARNING, logger="asyncio"):
        loop.call_soon(slow_callback_function)
        run_once(loop)
    msgs = [r.getMessage() for r in caplog.records
            if r.name == "asyncio" and r.levelno == logging.WARNING]
    assert any("Executing" in m and "slow_callback_function" in m and "took" in m
               for m in msgs), msgs


def test_no_slow_callback_warning_when_fast(loop, caplog):
    loop.set_debug(True)
    loop.slow_callback_duration = 1.0
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        loop.call_soon(lambda: None)
        run_once(loop)
    assert [r for r in caplog.records if "Executing" in r.getMessage()] == []


def test_no_slow_callback_warning_without_debug(loop, caplog):
    loop.set_debug(False)
    loop.slow_callback_duration = 0.001
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        loop.call_soon(time.sleep, 0.01)
        run_once(loop)
    assert [r for r in caplog.records if "Executing" in r.getMessage()] == []


def test_debug_non_threadsafe_call_from_other_thread(loop):
    loop.set_debug(True)

    def from_thread():
        errors = []
        for call in (lambda: loop.call_soon(print),
                     lambda: loop.call_later(1, print),
                     lambda: loop.call_at(loop.time() + 1, print)):
            try:
                call()
            except RuntimeError as exc:
                errors.append(str(exc))
        # call_soon_threadsafe is fine from any thread
        loop.call_soon_threadsafe(lambda: None)
        return errors

    async def main():
        return await loop.run_in_executor(None, from_thread)

    errors = loop.run_until_complete(main())
    assert len(errors) == 3
    assert all("Non-thread-safe operation invoked on an event loop other than the current one"
               in e for e in errors), errors


def test_debug_thread_check_only_while_running(loop):
    # a loop that is not running can be used from any thread
    import threading
    loop.set_debug(True)
    box = []
    th = threading.Thread(target=lambda: box.append(loop.call_soon(lambda: None)))
    th.start()
    th.join()
    assert len(box) == 1
    run_once(loop)


def test_source_traceback_in_debug(loop):
    loop.set_debug(True)

    def schedule_here():
        return loop.call_soon(print), loop.call_later(10, print)

    h, t = schedule_here()
    for handle in (h, t):
        tb = handle._source_traceback
        assert tb, "no source traceback in debug mode"
        assert tb[-1].name == "schedule_here"
        assert tb[-1].filename == __file__
        assert "created at" in repr(handle)
    t.cancel()
    run_once(loop)


def test_no_source_traceback_without_debug(loop):
    loop.set_debug(False)  # the default unless -X dev / PYTHONASYNCIODEBUG
    h = loop.call_soon(print)
    assert not getattr(h, "_source_traceback", None)
    run_once(loop)


def test_debug_exception_context_has_source_traceback(loop, caplog):
    loop.set_debug(True)

    def failing():
        raise ValueError("debug boom")

    def schedule_failing():
        loop.call_soon(failing)

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        schedule_failing()
        run_once(loop)
    msgs = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert any("created at" in m and "schedule_failing" in m for m in msgs), msgs

    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    schedule_failing()
    run_once(loop)
    assert len(contexts) == 1
    assert contexts[0]["source_traceback"][-1].name == "schedule_failing"


def test_debug_mode_coroutine_origin_tracking(loop):
    loop.set_debug(True)
    depths = []

    async def main():
        depths.append(sys.get_coroutine_origin_tracking_depth())

    before = sys.get_coroutine_origin_tracking_depth()
    loop.run_until_complete(main())
    assert depths[0] > 0
    assert sys.get_coroutine_origin_tracking_depth() == before
