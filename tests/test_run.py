"""run_until_complete / run_forever / stop / close / is_running / is_closed."""
import asyncio
import gc
import sys
import warnings

import pytest


class MyError(Exception):
    pass


def test_loop_is_an_abstract_event_loop(loop):
    assert isinstance(loop, asyncio.AbstractEventLoop)
    # loops are hashable and compare by identity (asyncio keys tasks on them)
    assert hash(loop) == hash(loop)
    assert loop == loop
    assert {loop: 1}[loop] == 1


def test_loop_accepts_attribute_assignment(loop):
    loop.some_attribute = 123
    assert loop.some_attribute == 123
    del loop.some_attribute
    assert not hasattr(loop, "some_attribute")


def test_run_until_complete_coroutine(loop):
    async def coro(x):
        await asyncio.sleep(0)
        return x + 1

    assert loop.run_until_complete(coro(1)) == 2


def test_run_until_complete_future(loop):
    fut = loop.create_future()
    loop.call_soon(fut.set_result, "value")
    assert loop.run_until_complete(fut) == "value"
    # already done future: returns at once
    assert loop.run_until_complete(fut) == "value"


def test_run_until_complete_task(loop):
    async def coro():
        await asyncio.sleep(0.001)
        return "task-result"

    task = loop.create_task(coro())
    assert loop.run_until_complete(task) == "task-result"
    assert task.done()


def test_run_until_complete_awaitable(loop):
    class Awaitable:
        def __await__(self):
            yield from asyncio.sleep(0).__await__()
            return "awaited"

    assert loop.run_until_complete(Awaitable()) == "awaited"


def test_run_until_complete_non_awaitable(loop):
    with pytest.raises(TypeError):
        loop.run_until_complete(42)
    assert not loop.is_running()


def test_run_until_complete_exception(loop):
    async def coro():
        await asyncio.sleep(0)
        raise MyError("boom")

    with pytest.raises(MyError, match="boom"):
        loop.run_until_complete(coro())
    fut = loop.create_future()
    loop.call_soon(fut.set_exception, MyError("from future"))
    with pytest.raises(MyError, match="from future"):
        loop.run_until_complete(fut)
    # the loop is usable afterwards
    assert loop.run_until_complete(asyncio.sleep(0, "ok")) == "ok"


def test_run_until_complete_cancelled(loop):
    fut = loop.create_future()
    loop.call_soon(fut.cancel)
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(fut)


def test_run_until_complete_future_of_other_loop(loop, loop_factory):
    other = loop_factory()
    fut = other.create_future()
    with pytest.raises(ValueError):
        loop.run_until_complete(fut)


def test_run_until_complete_stopped_before_done(loop):
    async def coro():
        loop.stop()
        await asyncio.sleep(0.01)

    task = loop.create_task(coro())
    with pytest.raises(RuntimeError, match="Event loop stopped before Future completed"):
        loop.run_until_complete(task)
    # the task is still pending; finish it cleanly
    loop.run_until_complete(task)


def test_nested_run_until_complete_raises(loop):
    errors = []

    async def inner():
        pass

    async def outer():
        coro = inner()
        try:
            loop.run_until_complete(coro)
        except RuntimeError as exc:
            errors.append(str(exc))
        finally:
            coro.close()

    loop.run_until_complete(outer())
    assert len(errors) == 1
    assert "already running" in errors[0]


def test_nested_run_forever_raises(loop):
    errors = []

    def cb():
        try:
            loop.run_forever()
        except RuntimeError as exc:
            errors.append(str(exc))
        loop.stop()

    loop.call_soon(cb)
    loop.run_forever()
    assert len(errors) == 1
    assert "already running" in errors[0]
    assert not loop.is_running()


def test_cannot_run_while_another_loop_runs(loop, loop_factory):
    other = loop_factory()
    errors = []

    # (one attempt per run: CPython 3.13.0's run_forever resets the running
    # loop when its setup fails, so a second attempt in the same callback
    # would not be refused there)
    for run in (other.run_forever, lambda: other.run_until_complete(other.create_future())):
        def cb(run=run):
            try:
                run()
            except RuntimeError as exc:
                errors.append(str(exc))
            loop.stop()

        loop.call_soon(cb)
        loop.run_forever()
    assert len(errors) == 2
    assert all("another loop is running" in e for e in errors), errors
    assert not other.is_running()
    # and the other loop runs fine afterwards
    assert other.run_until_complete(asyncio.sleep(0, "other")) == "other"


def test_is_running_singletons(loop):
    assert loop.is_running() is False
    seen = []

    async def main():
        seen.append(loop.is_running())

    loop.run_until_complete(main())
    assert seen == [True]
    assert seen[0] is True
    assert loop.is_running() is False


def test_running_loop_set_and_reset(loop):
    assert asyncio._get_running_loop() is None
    seen = []

    async def main():
        seen.append(asyncio.get_running_loop())
        seen.append(asyncio.events._get_running_loop())

    loop.run_until_complete(main())
    assert seen == [loop, loop]
    assert asyncio._get_running_loop() is None


def test_stop_from_coroutine_ends_run_forever(loop):
    out = []

    async def main():
        await asyncio.sleep(0.001)
        out.append("before-stop")
        loop.stop()
        out.append("after-stop")

    loop.create_task(main())
    loop.run_forever()
    assert out == ["before-stop", "after-stop"]
    assert not loop.is_running()


def test_run_forever_again_after_stop(loop):
    count = []
    for i in range(5):
        loop.call_soon(count.append, i)
        loop.call_soon(loop.stop)
        loop.run_forever()
    assert count == [0, 1, 2, 3, 4]


def test_close(loop):
    assert loop.is_closed() is False
    loop.close()
    assert loop.is_closed() is True
    loop.close()  # idempotent
    assert loop.is_closed() is True


def test_close_discards_pending_callbacks(loop):
    out = []
    loop.call_soon(out.append, 1)
    loop.call_later(0, out.append, 2)
    loop.close()
    assert out == []
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.run_forever()


def test_close_running_loop_raises(loop):
    errors = []

    def cb():
        try:
            loop.close()
        except RuntimeError as exc:
            errors.append(str(exc))
        loop.stop()

    loop.call_soon(cb)
    loop.run_forever()
    assert errors == ["Cannot close a running event loop"]
    assert not loop.is_closed()


def test_run_on_closed_loop(loop):
    loop.close()
    fut = asyncio.Future(loop=loop)  # Futures do not check the loop state
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.run_until_complete(fut)
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.run_forever()
    coro = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.run_until_complete(coro)
    coro.close()


def test_closed_loop_rejects_scheduling(loop):
    loop.close()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.call_soon(print)
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.call_later(1, print)
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.call_at(loop.time() + 1, print)
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.call_soon_threadsafe(print)
    coro = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.create_task(coro)
    coro.close()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.run_in_executor(None, print)


def test_close_shuts_down_default_executor(loop):
    async def main():
        return await loop.run_in_executor(None, lambda: 5)

    assert loop.run_until_complete(main()) == 5
    executor = loop._default_executor
    assert executor is not None
    loop.close()
    with pytest.raises(RuntimeError):
        executor.submit(print)


def test_unclosed_loop_resource_warning(loop_factory):
    lp = loop_factory.kind()  # not registered with the fixture: we drop it
    lp.run_until_complete(asyncio.sleep(0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del lp
        gc.collect()
    msgs = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert any("unclosed event loop" in m for m in msgs), msgs


def test_closed_loop_no_resource_warning(loop_factory):
    lp = loop_factory.kind()
    lp.run_until_complete(asyncio.sleep(0))
    lp.close()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del lp
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_set_event_loop_and_get_event_loop(loop):
    asyncio.set_event_loop(loop)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            assert asyncio.get_event_loop() is loop
    finally:
        asyncio.set_event_loop(None)


def test_gather_and_wait_for(loop):
    async def work(i):
        await asyncio.sleep(0.001 * i)
        return i

    async def main():
        res = await asyncio.gather(*(work(i) for i in range(10)))
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.sleep(10), 0.01)
        return res

    assert loop.run_until_complete(main()) == list(range(10))
