"""run_in_executor, default executor, async generator hooks."""
import asyncio
import concurrent.futures
import gc
import sys
import threading
import time
import warnings

import pytest

PY311 = sys.version_info >= (3, 11)
PY312 = sys.version_info >= (3, 12)


def test_run_in_executor_default(loop):
    main_thread = threading.get_ident()

    def work(a, b):
        return a + b, threading.get_ident()

    async def main():
        return await loop.run_in_executor(None, work, 2, 3)

    result, tid = loop.run_until_complete(main())
    assert result == 5
    assert tid != main_thread


def test_run_in_executor_exception(loop):
    def work():
        raise ZeroDivisionError("in thread")

    async def main():
        with pytest.raises(ZeroDivisionError, match="in thread"):
            await loop.run_in_executor(None, work)

    loop.run_until_complete(main())


def test_run_in_executor_returns_asyncio_future(loop):
    fut = loop.run_in_executor(None, time.sleep, 0)
    assert isinstance(fut, asyncio.Future)
    assert fut.get_loop() is loop
    loop.run_until_complete(fut)


def test_run_in_explicit_executor(loop):
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="explicit") as ex:
        async def main():
            return await loop.run_in_executor(ex, lambda: threading.current_thread().name)

        assert loop.run_until_complete(main()).startswith("explicit")


def test_set_default_executor(loop):
    ex = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mydefault")
    loop.set_default_executor(ex)
    try:
        async def main():
            return await loop.run_in_executor(None, lambda: threading.current_thread().name)

        assert loop.run_until_complete(main()).startswith("mydefault")
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        ex.shutdown(wait=True)


def test_set_default_executor_type_check(loop):
    class NotAThreadPool(concurrent.futures.Executor):
        pass

    if PY311:
        with pytest.raises(TypeError):
            loop.set_default_executor(NotAThreadPool())
    else:
        with pytest.warns(DeprecationWarning):
            loop.set_default_executor(NotAThreadPool())
        loop._default_executor = None


def test_many_concurrent_executor_jobs(loop):
    async def main():
        futs = [loop.run_in_executor(None, pow, i, 2) for i in range(100)]
        return await asyncio.gather(*futs)

    assert loop.run_until_complete(main()) == [i * i for i in range(100)]


def test_shutdown_default_executor(loop):
    async def main():
        await loop.run_in_executor(None, time.sleep, 0.01)
        executor = loop._default_executor
        await loop.shutdown_default_executor()
        return executor

    executor = loop.run_until_complete(main())
    with pytest.raises(RuntimeError):
        executor.submit(print)

    async def again():
        return await loop.run_in_executor(None, print)

    coro = again()
    with pytest.raises(RuntimeError, match="shutdown"):
        loop.run_until_complete(coro)


def test_shutdown_default_executor_without_executor(loop):
    loop.run_until_complete(loop.shutdown_default_executor())


def _asyncio_honours_shutdown_timeout():
    # 3.12.0/3.12.1 accepted timeout= but still awaited the full shutdown
    # before joining with the timeout; later releases time out the wait.
    import inspect
    try:
        src = inspect.getsource(asyncio.BaseEventLoop.shutdown_default_executor)
    except (OSError, TypeError):  # pragma: no cover
        return sys.version_info >= (3, 13)
    return "timeout(timeout)" in src


@pytest.mark.skipif(not PY312, reason="shutdown_default_executor(timeout) is new in 3.12")
def test_shutdown_default_executor_timeout(loop):
    started = threading.Event()
    honours = _asyncio_honours_shutdown_timeout()

    def slow():
        started.set()
        time.sleep(0.5)

    async def main():
        fut = loop.run_in_executor(None, slow)
        started.wait(5)
        t0 = time.monotonic()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            await loop.shutdown_default_executor(timeout=0.05)
        elapsed = time.monotonic() - t0
        return fut, elapsed, caught

    fut, elapsed, caught = loop.run_until_complete(main())
    msgs = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    if honours:
        assert elapsed < 0.45
        assert len(msgs) == 1 and "within 0.05 seconds" in msgs[0], msgs
    else:
        # this interpreter's asyncio waits for the executor regardless
        assert elapsed >= 0.3
        assert msgs == []
    time.sleep(0.5)  # let the worker thread end before the test does


@pytest.mark.skipif(not PY312, reason="shutdown_default_executor(timeout) is new in 3.12")
def test_shutdown_default_executor_timeout_not_reached(loop):
    async def main():
        await loop.run_in_executor(None, time.sleep, 0.01)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            await loop.shutdown_default_executor(timeout=5)

    loop.run_until_complete(main())


def test_asyncgen_hooks_installed_and_restored(loop):
    before = sys.get_asyncgen_hooks()
    seen = []

    async def main():
        seen.append(sys.get_asyncgen_hooks())

    loop.run_until_complete(main())
    assert sys.get_asyncgen_hooks() == before
    firstiter, finalizer = seen[0]
    assert firstiter is not None and finalizer is not None
    assert (firstiter, finalizer) != tuple(before)


def test_abandoned_asyncgen_is_aclosed(loop):
    events = []

    async def agen():
        try:
            for i in range(10):
                yield i
                await asyncio.sleep(0)
        finally:
            events.append(("finally", asyncio.get_running_loop() is loop))

    async def main():
        g = agen()
        assert await g.__anext__() == 0
        assert await g.__anext__() == 1
        del g
        gc.collect()
        for _ in range(5):
            await asyncio.sleep(0)

    loop.run_until_complete(main())
    assert events == [("finally", True)]


def test_shutdown_asyncgens_closes_suspended_generators(loop):
    events = []

    async def agen(tag):
        try:
            yield tag
            yield "never"
        finally:
            events.append(tag)

    gens = []

    async def main():
        for tag in ("a", "b"):
            g = agen(tag)
            gens.append(g)
            assert await g.__anext__() == tag

    loop.run_until_complete(main())
    assert events == []
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert sorted(events) == ["a", "b"]


def test_shutdown_asyncgens_reports_errors(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    async def agen():
        try:
            yield 1
        finally:
            raise ValueError("in aclose")

    keep = []

    async def main():
        g = agen()
        keep.append(g)
        await g.__anext__()

    loop.run_until_complete(main())
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert len(contexts) == 1
    assert isinstance(contexts[0]["exception"], ValueError)
    assert "asynchronous generator" in contexts[0]["message"]


def test_asyncgen_after_shutdown_asyncgens_warns(loop):
    loop.run_until_complete(loop.shutdown_asyncgens())

    async def agen():
        yield 1

    async def main():
        g = agen()
        with pytest.warns(ResourceWarning, match="shutdown_asyncgens"):
            await g.__anext__()
        await g.aclose()

    loop.run_until_complete(main())


def test_asyncgen_finalized_after_loop_stopped(loop):
    # A generator abandoned while the loop is not running is closed when the
    # loop runs again (the finalizer schedules aclose() thread-safely).
    events = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            events.append("closed")

    holder = []

    async def start():
        g = agen()
        await g.__anext__()
        holder.append(g)

    loop.run_until_complete(start())
    holder.clear()
    gc.collect()
    loop.run_until_complete(asyncio.sleep(0.001))
    loop.run_until_complete(asyncio.sleep(0.001))
    assert events == ["closed"]
