"""Reference, object and file-descriptor leaks."""
import asyncio
import gc
import os
import socket
import sys

import pytest


def batch(loop, a, b):
    """One round of typical loop operations."""
    out = []

    def bad():
        raise ValueError("expected")

    for i in range(50):
        loop.call_soon(out.append, i)
    h = loop.call_soon(out.append, "cancelled")
    h.cancel()
    loop.call_soon(bad)
    for i in range(20):
        loop.call_later(0.0001 * i, out.append, ("t", i))
    hs = [loop.call_later(100 + i, out.append, "never") for i in range(30)]
    for x in hs:
        x.cancel()
    loop.call_at(loop.time() - 1, out.append, "past")
    loop.call_soon_threadsafe(out.append, "threadsafe")

    async def child(i):
        await asyncio.sleep(0)
        if i % 5 == 0:
            raise KeyError(i)
        return i

    async def main():
        fut = loop.create_future()
        loop.call_soon(fut.set_result, 1)
        await fut
        fut2 = loop.create_future()
        fut2.cancel()
        results = await asyncio.gather(*(child(i) for i in range(10)), return_exceptions=True)
        t = loop.create_task(asyncio.sleep(10))
        await asyncio.sleep(0)
        t.cancel()
        try:
            await t
        except asyncio.CancelledError:
            pass
        got = loop.create_future()
        loop.add_reader(a, lambda: got.done() or got.set_result(a.recv(10)))
        b.send(b"x")
        await got
        loop.remove_reader(a)
        loop.add_writer(a, lambda: None)
        loop.remove_writer(a)
        await asyncio.sleep(0.0005)
        return results

    loop.run_until_complete(main())
    loop.stop()
    loop.run_forever()
    assert "past" in out and "threadsafe" in out


def _count():
    gc.collect()
    gc.collect()
    counts = {"objects": len(gc.get_objects()), "blocks": sys.getallocatedblocks()}
    if hasattr(sys, "gettotalrefcount"):
        counts["refs"] = sys.gettotalrefcount()
    return counts


# Growth per window (of many rounds) above which a window counts as "grown".
THRESHOLDS = {"objects": 50, "blocks": 300, "refs": 200}


def assert_no_growth(fn, warmup=3, windows=3, rounds=10):
    """Fail if every measurement window shows growth above the threshold.

    Caches and freelists make single measurements noisy (they go up and
    down); a real leak grows in every window.  Each round creates hundreds
    of objects, so a leak per operation grows by thousands per window.
    """
    for _ in range(warmup):
        fn()
    deltas = []
    prev = _count()
    for _ in range(windows):
        for _ in range(rounds):
            fn()
        cur = _count()
        deltas.append({k: cur[k] - prev[k] for k in cur})
        prev = cur
    for key, limit in THRESHOLDS.items():
        if key in deltas[0]:
            growth = [d[key] for d in deltas]
            assert min(growth) <= limit, "%s grew in every window: %s" % (key, growth)


def test_no_reference_leaks_in_loop_operations(loop):
    loop.set_exception_handler(lambda lp, ctx: None)
    a, b = socket.socketpair()
    try:
        assert_no_growth(lambda: batch(loop, a, b))
    finally:
        a.close()
        b.close()


def test_no_leak_from_run_until_complete_and_handles(loop):
    async def coro(i):
        return i

    def rounds():
        for i in range(100):
            loop.run_until_complete(coro(i))
        for i in range(100):
            loop.call_later(1000, print, i).cancel()
            loop.call_soon(print, i).cancel()
        loop.stop()
        loop.run_forever()

    assert_no_growth(rounds)


def test_no_leak_from_exceptions_in_callbacks(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    def bad(i):
        raise ValueError(i)

    def rounds():
        for i in range(100):
            loop.call_soon(bad, i)
        loop.stop()
        loop.run_forever()
        assert len(contexts) == 100
        contexts.clear()
        # BaseExceptions propagate out of run_forever
        loop.call_soon(bad_base)
        try:
            loop.run_forever()
        except KeyboardInterrupt:
            pass

    def bad_base():
        raise KeyboardInterrupt

    assert_no_growth(rounds)


def test_loop_objects_are_freed(loop_factory):
    import weakref
    refs = []
    for _ in range(20):
        lp = loop_factory.kind()
        lp.call_soon(lambda: None)
        lp.run_until_complete(asyncio.sleep(0))
        lp.close()
        refs.append(weakref.ref(lp))
        del lp
    gc.collect()
    assert [r for r in refs if r() is not None] == []


def test_loop_freed_without_gc_cycle_collection(loop_factory):
    import weakref
    lp = loop_factory.kind()
    lp.run_until_complete(asyncio.sleep(0))
    lp.close()
    r = weakref.ref(lp)
    del lp
    gc.collect()
    assert r() is None


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_no_fd_leak_creating_and_closing_loops(loop_factory):
    def nfds():
        return len(os.listdir("/proc/self/fd"))

    # warm up anything created once per process
    lp = loop_factory.kind()
    lp.run_until_complete(asyncio.sleep(0))
    lp.close()
    before = nfds()
    for _ in range(100):
        lp = loop_factory.kind()
        lp.call_soon_threadsafe(lambda: None)
        lp.call_later(0.0001, lambda: None)
        lp.run_until_complete(asyncio.sleep(0.0002))
        lp.close()
    del lp
    gc.collect()
    assert nfds() == before


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_no_fd_leak_with_readers_and_signals(loop_factory):
    import signal

    def nfds():
        return len(os.listdir("/proc/self/fd"))

    before = nfds()
    for _ in range(20):
        lp = loop_factory.kind()
        a, b = socket.socketpair()
        lp.add_reader(a, lambda: None)
        lp.add_signal_handler(signal.SIGUSR1, lambda: None)
        lp.run_until_complete(asyncio.sleep(0))
        lp.remove_signal_handler(signal.SIGUSR1)
        lp.close()
        a.close()
        b.close()
    gc.collect()
    assert nfds() == before


def test_unclosed_loop_with_pending_self_references_is_collected(loop_factory):
    # handles in the ready queue and in the timer queue that refer back to
    # the loop form cycles: the garbage collector must be able to free them
    import warnings
    import weakref
    lp = loop_factory.kind()
    lp.call_soon(lp.stop)
    lp.call_later(100, lp.stop)
    lp.call_soon_threadsafe(lp.stop)
    r = weakref.ref(lp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        del lp
        gc.collect()
        gc.collect()
    assert r() is None


def test_handle_cycles_are_collected(loop):
    import weakref

    class Box(list):
        pass

    refs = []
    for _ in range(10):
        box = Box()
        h = loop.call_later(100, print, box)
        box.append(h)  # box -> handle -> args -> box
        h.cancel()
        refs.append(weakref.ref(box))
        h2 = loop.call_soon(print, box)
        h2.cancel()
        del box, h, h2
    loop.stop()
    loop.run_forever()  # drops the cancelled handles from the queues
    gc.collect()
    assert [r for r in refs if r() is not None] == []


def test_callback_args_released_after_run(loop):
    import weakref

    class Arg:
        pass

    a = Arg()
    r = weakref.ref(a)
    loop.call_soon(lambda x: None, a)
    loop.call_later(0, lambda x: None, a)
    del a
    loop.stop()
    loop.run_forever()
    assert r() is None, "the loop kept a reference to a callback argument"
