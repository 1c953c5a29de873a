"""call_later / call_at / loop.time()."""
import asyncio
import math
import sys
import time

import pytest


def run_once(loop):
    loop.stop()
    loop.run_forever()


def test_call_later_orders_by_time(loop):
    out = []
    loop.call_later(0.03, out.append, 3)
    loop.call_later(0.01, out.append, 1)
    loop.call_later(0.02, out.append, 2)
    loop.call_later(0.0, out.append, 0)
    loop.call_later(0.04, loop.stop)
    loop.run_forever()
    assert out == [0, 1, 2, 3]


def test_call_at_orders_by_time_even_when_all_due(loop):
    # All due by the time the loop looks: still fired in order of `when`.
    out = []
    now = loop.time()
    for i in (5, 1, 4, 2, 3, 0):
        loop.call_at(now - 1 + i * 0.001, out.append, i)
    run_once(loop)
    assert out == [0, 1, 2, 3, 4, 5]


def test_equal_deadlines_fire_in_scheduling_order(loop):
    # asyncio keeps scheduling order for a pair of equal deadlines (its heapq
    # is not stable for larger tie groups, so those are not asserted here).
    n = 2
    out = []
    when = loop.time() + 0.005
    for i in range(n):
        loop.call_at(when, out.append, i)
    loop.call_at(when + 0.005, loop.stop)
    loop.run_forever()
    assert out == list(range(n))


def test_ready_callbacks_run_before_due_timers(loop):
    out = []
    loop.call_later(-1, out.append, "timer-negative")
    loop.call_later(0, out.append, "timer-zero")
    loop.call_soon(out.append, "soon")
    run_once(loop)
    # due timers are appended behind what is already in the ready queue
    assert out == ["soon", "timer-negative", "timer-zero"]


def test_negative_and_zero_delays_fire(loop):
    out = []
    loop.call_later(-100, out.append, "neg")
    loop.call_at(loop.time() - 1000, out.append, "past")
    loop.call_later(0, out.append, "zero")
    loop.call_later(-0.0, out.append, "negzero")
    run_once(loop)
    assert sorted(out) == ["neg", "negzero", "past", "zero"]


def test_timer_due_within_clock_resolution_fires(loop):
    out = []
    loop.call_at(loop.time(), out.append, "now")
    loop.call_at(loop.time() + 1e-10, out.append, "within-resolution")
    run_once(loop)
    assert out == ["now", "within-resolution"]


def test_timer_not_due_does_not_fire_early(loop):
    out = []
    loop.call_later(10, out.append, "late")
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert out == []


def test_timer_handle_when(loop):
    t0 = loop.time()
    h = loop.call_later(10, print)
    t1 = loop.time()
    assert t0 + 10 <= h.when() <= t1 + 10
    assert isinstance(h.when(), float)
    h2 = loop.call_at(12345.5, print)
    assert h2.when() == 12345.5
    h3 = loop.call_at(100, print)  # an int deadline
    assert h3.when() == 100
    for h in (h, h2, h3):
        h.cancel()
        assert h.cancelled()


def test_timer_fires_after_its_deadline(loop):
    fired = []
    h = loop.call_later(0.05, lambda: fired.append(loop.time()))
    loop.call_later(0.1, loop.stop)
    loop.run_forever()
    assert len(fired) == 1
    # never early by more than the clock resolution
    assert fired[0] >= h.when() - 1e-3


def test_cancel_timer(loop):
    out = []
    h = loop.call_later(0.01, out.append, "cancelled")
    loop.call_later(0.02, out.append, "kept")
    h.cancel()
    assert h.cancelled()
    loop.call_later(0.03, loop.stop)
    loop.run_forever()
    assert out == ["kept"]


def test_cancel_many_timers(loop):
    out = []
    handles = [loop.call_later(0.001 * (i % 7), out.append, i) for i in range(5000)]
    for i, h in enumerate(handles):
        if i % 1000 != 999:
            h.cancel()
    # cancelled far-future timers must not keep the loop from sleeping or firing
    far = [loop.call_later(1000 + i, out.append, -1) for i in range(2000)]
    for h in far:
        h.cancel()
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert sorted(out) == [999, 1999, 2999, 3999, 4999]


def test_cancel_due_timer_from_callback_in_same_iteration(loop):
    out = []
    handles = {}

    def first():
        out.append("first")
        handles["second"].cancel()

    now = loop.time()
    loop.call_at(now - 2, first)
    handles["second"] = loop.call_at(now - 1, out.append, "second")
    loop.call_at(now - 0.5, out.append, "third")
    run_once(loop)
    assert out == ["first", "third"]


def test_timer_scheduled_from_timer(loop):
    out = []

    def tick(n):
        out.append(n)
        if n < 5:
            loop.call_later(0.001, tick, n + 1)
        else:
            loop.stop()

    loop.call_later(0, tick, 0)
    loop.run_forever()
    assert out == [0, 1, 2, 3, 4, 5]


def test_infinite_delay_never_fires(loop):
    out = []
    h = loop.call_later(math.inf, out.append, "inf")
    assert h.when() == math.inf
    h2 = loop.call_at(math.inf, out.append, "inf-at")
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert out == []
    h.cancel()
    h2.cancel()


def test_wait_for_with_infinite_timeout(loop):
    async def main():
        return await asyncio.wait_for(asyncio.sleep(0.001, "done"), timeout=math.inf)

    assert loop.run_until_complete(main()) == "done"


def test_huge_delay_is_accepted(loop):
    out = []
    h = loop.call_later(1e10, out.append, 1)
    loop.call_later(0.005, loop.stop)
    loop.run_forever()
    assert out == []
    h.cancel()


def test_loop_time_monotonic_and_close_to_time_monotonic(loop):
    a = loop.time()
    m = time.monotonic()
    b = loop.time()
    assert isinstance(a, float)
    assert a <= b
    assert abs(a - m) < 1.0
    values = [loop.time() for _ in range(1000)]
    assert values == sorted(values)


def test_loop_time_advances_while_sleeping(loop):
    t0 = loop.time()
    loop.run_until_complete(asyncio.sleep(0.05))
    elapsed = loop.time() - t0
    assert 0.04 <= elapsed < 2.0


def test_sleeping_does_not_busy_loop(loop):
    loop.run_until_complete(asyncio.sleep(0))  # warm up
    cpu0 = time.process_time()
    wall0 = time.monotonic()
    loop.run_until_complete(asyncio.sleep(0.2))
    cpu = time.process_time() - cpu0
    wall = time.monotonic() - wall0
    assert wall >= 0.19
    assert cpu < 0.1, "loop used %.3fs of CPU while sleeping %.3fs" % (cpu, wall)


def test_far_timer_does_not_busy_loop(loop):
    # One pending far-away timer: the loop must sleep, not spin polling.
    h = loop.call_later(3600, print)
    cpu0 = time.process_time()
    loop.call_later(0.2, loop.stop)
    loop.run_forever()
    cpu = time.process_time() - cpu0
    h.cancel()
    assert cpu < 0.1


def test_submillisecond_timers_do_not_spin(loop):
    # Chains of timers shorter than a millisecond must neither spin the CPU
    # (timeout rounded down to 0) nor be lost.
    n = 100
    count = [0]

    def tick():
        count[0] += 1
        if count[0] < n:
            loop.call_later(0.0003, tick)
        else:
            loop.stop()

    cpu0 = time.process_time()
    wall0 = time.monotonic()
    loop.call_later(0.0003, tick)
    watchdog = loop.call_later(10, loop.stop)
    loop.run_forever()
    watchdog.cancel()
    cpu = time.process_time() - cpu0
    wall = time.monotonic() - wall0
    assert count[0] == n
    assert wall >= n * 0.0003
    assert cpu < 0.7 * wall + 0.02, "cpu %.3fs for %.3fs of timers" % (cpu, wall)


def test_asyncio_sleep_result_and_ordering(loop):
    out = []
    start = loop.time() + 0.01

    async def sleeper(d, tag):
        # absolute deadlines: the order does not depend on task start-up time
        fut = loop.create_future()
        loop.call_at(start + d, fut.set_result, None)
        await fut
        out.append(tag)

    async def main():
        await asyncio.gather(sleeper(0.03, "c"), sleeper(0.01, "a"), sleeper(0.02, "b"))
        return await asyncio.sleep(0.001, result="res")

    assert loop.run_until_complete(main()) == "res"
    assert out == ["a", "b", "c"]


def test_timer_heap_random_order_and_cancellation(loop):
    import random
    rng = random.Random(1234)
    now = loop.time()
    offsets = rng.sample(range(1, 100_000), 3000)  # distinct deadlines
    out = []
    handles = []
    for off in offsets:
        handles.append((off, loop.call_at(now - 200 + off * 1e-3, out.append, off)))
    cancelled = set()
    for off, h in handles:
        if rng.random() < 0.6:
            h.cancel()
            cancelled.add(off)
    run_once(loop)
    assert out == sorted(set(offsets) - cancelled)


def test_timers_due_during_iteration_wait_for_next_iteration(loop):
    # A timer callback scheduling an already-due timer (or call_soon) does
    # not get it run in the same iteration.
    out = []

    def first():
        out.append("first")
        loop.call_later(-1, out.append, "due-timer")
        loop.call_soon(out.append, "soon")

    loop.call_later(-1, first)
    run_once(loop)
    assert out == ["first"]
    run_once(loop)
    assert out == ["first", "soon", "due-timer"]


def test_cancel_timer_from_another_timer_then_reschedule(loop):
    out = []
    handles = {}

    def rescheduled():
        out.append("rescheduled")
        loop.stop()

    def canceller():
        handles["victim"].cancel()
        handles["victim"] = loop.call_later(0.002, rescheduled)

    handles["victim"] = loop.call_later(0.01, out.append, "original")
    loop.call_later(0.001, canceller)
    guard = loop.call_later(10, loop.stop)
    loop.run_forever()
    guard.cancel()
    assert out == ["rescheduled"]


def test_cancel_after_fire_does_not_corrupt_timers(loop):
    out = []
    fired = [loop.call_later(-1, out.append, i) for i in range(50)]
    run_once(loop)
    assert out == list(range(50))
    for h in fired:
        h.cancel()  # already ran: must be a no-op for the timer queue
        assert h.cancelled()
    out.clear()
    now = loop.time()
    pending = [loop.call_at(now - 1 + i * 1e-3, out.append, i) for i in (3, 1, 2, 0)]
    run_once(loop)
    assert out == [0, 1, 2, 3]
    for h in pending:
        h.cancel()


def test_many_cancellations_while_running(loop):
    import random
    rng = random.Random(99)
    out = []
    now = loop.time()
    handles = {}
    for i in range(1500):
        handles[i] = loop.call_at(now + rng.uniform(0.001, 0.03), out.append, i)
    cancelled = set(rng.sample(sorted(handles), 1000))
    for i in cancelled:
        handles[i].cancel()

    # cancel more from inside a callback while the loop runs
    later = [i for i in sorted(handles, key=lambda k: handles[k].when())
             if i not in cancelled][-100:]

    def cancel_more():
        for i in later:
            if i not in out:
                handles[i].cancel()
                cancelled.add(i)

    loop.call_at(now + 0.0005, cancel_more)
    loop.call_at(now + 0.05, loop.stop)
    loop.run_forever()
    expected = sorted((i for i in handles if i not in cancelled), key=lambda k: handles[k].when())
    assert out == expected


def test_timer_context(loop):
    import contextvars
    var = contextvars.ContextVar("timer_var", default="default")
    ctx = contextvars.copy_context()
    ctx.run(var.set, "timer-ctx")
    out = []
    loop.call_later(0, lambda: out.append(var.get()), context=ctx)
    loop.call_at(loop.time(), lambda: out.append(var.get()))
    run_once(loop)
    assert out == ["timer-ctx", "default"]


def test_time_patched_on_the_instance_drives_timers(loop):
    # asyncio reads its clock through self.time() in call_later and in each
    # iteration, so tests that patch loop.time (aiohttp's keep-alive tests:
    # mock.patch.object(loop, "time")) move every timer decision.
    from unittest import mock

    fired = []

    async def main():
        now = loop.time()
        with mock.patch.object(loop, "time") as fake:
            fake.return_value = now
            h = loop.call_later(100, fired.append, "late")
            assert h.when() == now + 100
            await asyncio.sleep(0)
            assert fired == []
            fake.return_value = now + 100      # "100 seconds later"
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            assert fired == ["late"]
        # unpatched: the real clock again
        assert "time" not in vars(loop)
        assert abs(loop.time() - time.monotonic()) < 1
        h = loop.call_later(100, fired.append, "never")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        h.cancel()
        assert fired == ["late"]

    # (no wait_for: its deadline would read the patched clock too)
    loop.run_until_complete(main())


def test_subclass_overriding_time_drives_timers(loop_factory):
    clock = [1000.0]

    class FakeClock(type(loop_factory())):
        def time(self):
            return clock[0]

    lp = FakeClock()
    try:
        fired = []
        h = lp.call_later(5, fired.append, 1)
        assert h.when() == 1005.0
        run_once(lp)
        assert fired == []
        clock[0] = 1005.0
        run_once(lp)
        assert fired == [1]
    finally:
        lp.close()


def test_call_at_keeps_an_int_deadline_an_int(loop):
    # asyncio's TimerHandle keeps call_at()'s `when` as given: aiohttp
    # rounds its timeouts up to whole seconds (ceil) and checks that
    # handle._when is that int.
    now = int(loop.time())
    h = loop.call_at(now + 10, lambda: None)
    try:
        assert type(h.when()) is int and h.when() == now + 10
        assert type(h._when) is int
        assert "when=%d " % (now + 10) in repr(h)
        assert hash(h) == hash(now + 10)
    finally:
        h.cancel()
    for h in (loop.call_at(now + 10.5, lambda: None), loop.call_later(10, lambda: None)):
        assert type(h.when()) is float
        h.cancel()
    # an int deadline fires like any other
    out = []
    loop.call_at(int(loop.time()) - 1, out.append, "due")
    run_once(loop)
    assert out == ["due"]


def test_int_clock_plus_int_delay_gives_an_int_deadline(loop_factory):
    # call_later is call_at(self.time() + delay): int + int stays an int
    class IntClock(type(loop_factory())):
        def time(self):
            return 1000

    lp = IntClock()
    try:
        h = lp.call_later(5, lambda: None)
        assert type(h.when()) is int and h.when() == 1005
        h = lp.call_later(5.0, lambda: None)
        assert type(h.when()) is float and h.when() == 1005.0
    finally:
        lp.close()
