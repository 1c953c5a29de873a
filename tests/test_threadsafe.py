"""call_soon_threadsafe and waking an idle loop from other threads."""
import asyncio
import threading
import time

import pytest


def test_threadsafe_wakes_idle_loop_promptly(loop):
    fut = loop.create_future()
    # Nothing else is scheduled except a far watchdog: the loop sleeps in its poll.
    watchdog = loop.call_later(10, fut.cancel)

    def worker():
        time.sleep(0.05)
        loop.call_soon_threadsafe(fut.set_result, "woken")

    t0 = time.monotonic()
    th = threading.Thread(target=worker)
    th.start()
    try:
        assert loop.run_until_complete(fut) == "woken"
    finally:
        th.join()
        watchdog.cancel()
    assert time.monotonic() - t0 < 2.0


def test_threadsafe_wakes_run_forever_without_timers(loop):
    def worker():
        time.sleep(0.05)
        loop.call_soon_threadsafe(loop.stop)

    th = threading.Thread(target=worker)
    t0 = time.monotonic()
    th.start()
    # A timer far in the future only guards against hanging the test suite.
    guard = loop.call_later(10, loop.stop)
    loop.run_forever()
    th.join()
    guard.cancel()
    assert time.monotonic() - t0 < 2.0


def test_many_threads_many_calls_exactly_once_in_order(loop):
    nthreads = 8
    ncalls = 500
    total = nthreads * ncalls
    received = []
    done = loop.create_future()
    start = threading.Event()

    def record(tid, i):
        received.append((tid, i))
        if len(received) == total:
            done.set_result(None)

    def worker(tid):
        start.wait()
        for i in range(ncalls):
            loop.call_soon_threadsafe(record, tid, i)
            if i % 100 == 0:
                time.sleep(0.001)  # let the loop go idle and be woken again

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(nthreads)]
    for th in threads:
        th.start()
    guard = loop.call_later(20, lambda: done.done() or done.set_exception(TimeoutError))
    t0 = time.monotonic()
    loop.call_soon(start.set)
    try:
        loop.run_until_complete(done)
    finally:
        start.set()
        for th in threads:
            th.join()
        guard.cancel()
    assert time.monotonic() - t0 < 10
    assert len(received) == total
    assert len(set(received)) == total
    for tid in range(nthreads):
        assert [i for (t, i) in received if t == tid] == list(range(ncalls))
    # nothing is delivered twice later on
    loop.stop()
    loop.run_forever()
    assert len(received) == total


def test_threadsafe_returns_handle_that_can_be_cancelled(loop):
    out = []
    box = {}

    def worker():
        box["h"] = loop.call_soon_threadsafe(out.append, "cancelled")
        box["h"].cancel()
        loop.call_soon_threadsafe(out.append, "kept")
        loop.call_soon_threadsafe(loop.stop)

    th = threading.Thread(target=worker)
    th.start()
    th.join()
    guard = loop.call_later(10, loop.stop)
    loop.run_forever()
    guard.cancel()
    assert box["h"].cancelled()
    assert out == ["kept"]


def test_threadsafe_from_loop_thread_and_context(loop):
    import contextvars
    var = contextvars.ContextVar("v", default=None)
    ctx = contextvars.copy_context()
    ctx.run(var.set, "ctx-value")
    out = []
    loop.call_soon_threadsafe(lambda: out.append(var.get()), context=ctx)
    loop.call_soon_threadsafe(out.append, "plain")
    loop.stop()
    loop.run_forever()
    assert out == ["ctx-value", "plain"]


def test_threadsafe_ordering_with_call_soon(loop):
    # From the loop thread itself, call_soon and call_soon_threadsafe share
    # one FIFO queue.
    out = []
    loop.call_soon(out.append, 1)
    loop.call_soon_threadsafe(out.append, 2)
    loop.call_soon(out.append, 3)
    loop.stop()
    loop.run_forever()
    assert out == [1, 2, 3]


def test_wrap_future_from_thread(loop):
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        cf = ex.submit(lambda: (time.sleep(0.02), 42)[1])

        async def main():
            return await asyncio.wrap_future(cf)

        assert loop.run_until_complete(main()) == 42


def test_run_coroutine_threadsafe(loop):
    result = {}

    async def coro(x):
        await asyncio.sleep(0.001)
        return x * 2

    def worker():
        fut = asyncio.run_coroutine_threadsafe(coro(21), loop)
        result["value"] = fut.result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)

    th = threading.Thread(target=worker)
    th.start()
    guard = loop.call_later(10, loop.stop)
    loop.run_forever()
    th.join()
    guard.cancel()
    assert result == {"value": 42}


def test_call_soon_threadsafe_on_closed_loop(loop):
    loop.close()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.call_soon_threadsafe(print)


def test_loops_run_in_non_main_threads(loop_factory):
    # Loops run fine outside the main thread (no signal wakeup fd there),
    # two at once, each with its own running loop.
    import socket
    results = {}
    errors = []

    def worker(name):
        try:
            lp = loop_factory.kind()
            try:
                a, b = socket.socketpair()
                try:
                    async def main():
                        assert asyncio.get_running_loop() is lp
                        fut = lp.create_future()
                        lp.add_reader(a, lambda: fut.done() or fut.set_result(a.recv(10)))
                        threading.Timer(0.02, b.send, (name.encode(),)).start()
                        data = await fut
                        lp.remove_reader(a)
                        await asyncio.sleep(0.01)
                        ex = await lp.run_in_executor(None, lambda: name * 2)
                        return data, ex

                    results[name] = lp.run_until_complete(main())
                finally:
                    a.close()
                    b.close()
            finally:
                lp.close()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append((name, repr(exc)))

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("one", "two")]
    for th in threads:
        th.start()
    for th in threads:
        th.join(20)
    assert errors == []
    assert results == {"one": (b"one", "oneone"), "two": (b"two", "twotwo")}


def test_threadsafe_to_loop_running_in_other_thread(loop_factory):
    lp = loop_factory()
    started = threading.Event()
    out = []

    def run():
        lp.call_soon(started.set)
        lp.run_forever()

    th = threading.Thread(target=run)
    th.start()
    assert started.wait(5)
    for i in range(100):
        lp.call_soon_threadsafe(out.append, i)
    lp.call_soon_threadsafe(lp.stop)
    th.join(10)
    assert not th.is_alive()
    assert out == list(range(100))
