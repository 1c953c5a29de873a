"""Bad arguments: same exceptions as asyncio (plus boucle's NaN deviation)."""
import asyncio
import math
import sys

import pytest

PY311 = sys.version_info >= (3, 11)


def run_once(loop):
    loop.stop()
    loop.run_forever()


@pytest.mark.parametrize("delay", ["1", b"1", [], object()])
def test_call_later_non_numeric_delay(loop, delay):
    with pytest.raises(TypeError):
        loop.call_later(delay, print)


def test_call_later_none_delay(loop):
    with pytest.raises(TypeError):
        loop.call_later(None, print)


def test_call_at_none(loop):
    if PY311:
        with pytest.raises(TypeError, match="when cannot be None"):
            loop.call_at(None, print)
    else:
        # 3.10's asyncio rejects it with an assertion (TimerHandle asserts
        # `when is not None`); any immediate rejection is the behaviour.
        with pytest.raises((TypeError, AssertionError)):
            loop.call_at(None, print)
    # nothing was scheduled
    loop.call_soon(loop.stop)
    loop.run_forever()


def test_call_later_bool_and_int_delays(loop):
    out = []
    loop.call_later(False, out.append, "false")
    loop.call_later(0, out.append, "int")
    h = loop.call_later(True, out.append, "true")
    run_once(loop)
    assert out == ["false", "int"]
    assert isinstance(h.when(), float)
    h.cancel()


def test_non_callable_callback_in_non_debug_mode(loop):
    loop.set_debug(False)  # the default unless -X dev / PYTHONASYNCIODEBUG
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    h1 = loop.call_soon(None)
    h2 = loop.call_later(0, "str")
    h3 = loop.call_soon_threadsafe(42)
    out = []
    loop.call_soon(out.append, "still runs")
    run_once(loop)
    assert out == ["still runs"]
    assert [c["handle"] for c in contexts] == [h1, h3, h2]
    assert all(isinstance(c["exception"], TypeError) for c in contexts)
    assert all(c["message"].startswith("Exception in callback") for c in contexts)


def test_call_soon_without_callback(loop):
    with pytest.raises(TypeError):
        loop.call_soon()
    with pytest.raises(TypeError):
        loop.call_later(1)
    with pytest.raises(TypeError):
        loop.call_at()


def test_run_until_complete_on_closed_loop(loop):
    loop.close()
    coro = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.run_until_complete(coro)
    coro.close()


def test_call_soon_on_closed_loop(loop):
    loop.close()
    with pytest.raises(RuntimeError, match="^Event loop is closed$"):
        loop.call_soon(print)


def test_create_future_on_closed_loop_is_allowed(loop):
    # asyncio does not check: libraries create futures during teardown
    loop.close()
    fut = loop.create_future()
    assert not fut.done()
    fut.cancel()


def test_remove_reader_on_closed_loop(loop):
    loop.close()
    assert loop.remove_reader(0) is False
    assert loop.remove_writer(0) is False


def test_set_debug_accepts_truthy_values(loop):
    loop.set_debug(1)
    assert loop.get_debug()
    loop.set_debug(0)
    assert not loop.get_debug()


def test_run_in_executor_non_callable_fails_in_future(loop):
    async def main():
        with pytest.raises(TypeError):
            await loop.run_in_executor(None, 42)

    loop.run_until_complete(main())


def test_create_task_with_non_coroutine(loop):
    with pytest.raises(TypeError):
        loop.create_task(42)

    def gen():
        yield

    g = gen()
    if sys.version_info >= (3, 12):
        with pytest.raises(TypeError):
            loop.create_task(g)
    else:
        # before 3.12 asyncio still accepts generator-based coroutines
        t = loop.create_task(g)
        assert loop.run_until_complete(t) is None


def test_add_reader_non_callable_reported_when_run(loop):
    import socket
    a, b = socket.socketpair()
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    try:
        loop.add_reader(a, 42)
        b.send(b"x")
        run_once(loop)
        run_once(loop)
        assert contexts and isinstance(contexts[0]["exception"], TypeError)
    finally:
        loop.remove_reader(a)
        a.close()
        b.close()


# --- boucle only: the documented NaN deviation (as uvloop) -------------------

def test_nan_delay_raises_value_error(boucle_loop):
    with pytest.raises(ValueError):
        boucle_loop.call_later(math.nan, print)
    with pytest.raises(ValueError):
        boucle_loop.call_at(math.nan, print)
    with pytest.raises(ValueError):
        boucle_loop.call_later(float("-nan"), print)
    # the loop stays usable
    out = []
    boucle_loop.call_soon(out.append, 1)
    run_once(boucle_loop)
    assert out == [1]


def test_infinite_deadlines_accepted(boucle_loop):
    h = boucle_loop.call_later(math.inf, print)
    assert h.when() == math.inf
    h.cancel()
    h = boucle_loop.call_at(-math.inf, print)
    run_once(boucle_loop)
    assert h.when() == -math.inf
