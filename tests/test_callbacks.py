"""call_soon, handles and the shape of one loop iteration."""
import asyncio
import contextvars
import functools
import sys

import pytest

PY312 = sys.version_info >= (3, 12)

cvar = contextvars.ContextVar("cvar", default="unset")


def run_once(loop):
    """Run exactly one iteration of ``loop`` (stop() before run_forever)."""
    loop.stop()
    loop.run_forever()


def test_call_soon_fifo_and_args(loop):
    out = []
    for i in range(100):
        loop.call_soon(out.append, i)
    loop.call_soon(lambda *a: out.append(a), 1, "two", None)
    run_once(loop)
    assert out == list(range(100)) + [(1, "two", None)]


def test_call_soon_accepts_any_callable(loop):
    out = []

    class C:
        def meth(self, x):
            out.append(("meth", x))

        def __call__(self, x):
            out.append(("call", x))

    loop.call_soon(C().meth, 1)
    loop.call_soon(C(), 2)
    loop.call_soon(functools.partial(out.append, ("partial", 3)))
    run_once(loop)
    assert out == [("meth", 1), ("call", 2), ("partial", 3)]


def test_call_soon_rejects_keyword_arguments(loop):
    with pytest.raises(TypeError):
        loop.call_soon(print, sep="")
    with pytest.raises(TypeError):
        loop.call_later(0, print, sep="")
    with pytest.raises(TypeError):
        loop.call_soon_threadsafe(print, sep="")


def test_call_soon_context(loop):
    seen = []
    ctx = contextvars.copy_context()
    ctx.run(cvar.set, "in-ctx")

    def cb(tag):
        seen.append((tag, cvar.get()))
        cvar.set("changed-by-" + tag)

    cvar.set("outer")
    try:
        loop.call_soon(cb, "explicit", context=ctx)
        loop.call_soon(cb, "implicit")  # runs in a copy of the current context
        loop.call_soon(cb, "explicit2", context=ctx)
        loop.call_soon(cb, "none", context=None)
        run_once(loop)
        assert seen == [
            ("explicit", "in-ctx"),
            ("implicit", "outer"),
            # the first callback's change is visible in the same explicit context
            ("explicit2", "changed-by-explicit"),
            ("none", "outer"),
        ]
        # changes made by callbacks never leak into the caller's context
        assert cvar.get() == "outer"
        assert ctx[cvar] == "changed-by-explicit2"
    finally:
        cvar.set("unset")


def test_call_soon_context_copied_at_schedule_time(loop):
    seen = []
    token = cvar.set("before")
    try:
        loop.call_soon(lambda: seen.append(cvar.get()))
        cvar.set("after")
        run_once(loop)
    finally:
        cvar.reset(token)
    assert seen == ["before"]


def test_shared_context_across_iterations(loop):
    # Callbacks sharing one explicit context see each other's changes, even
    # when one schedules the other from inside that context.
    out = []
    ctx = contextvars.copy_context()

    def inner():
        out.append(cvar.get())

    def outer():
        cvar.set("outer-set")
        loop.call_soon(inner, context=ctx)
        out.append("outer")

    loop.call_soon(outer, context=ctx)
    run_once(loop)
    run_once(loop)
    assert out == ["outer", "outer-set"]


def test_handle_cancel(loop):
    out = []
    h1 = loop.call_soon(out.append, 1)
    h2 = loop.call_soon(out.append, 2)
    h3 = loop.call_soon(out.append, 3)
    assert h2.cancelled() is False
    h2.cancel()
    h2.cancel()  # idempotent
    assert h2.cancelled() is True
    assert h1.cancelled() is False
    run_once(loop)
    assert out == [1, 3]
    # cancelling a handle that already ran is harmless
    h3.cancel()
    assert h3.cancelled() is True


def test_cancel_from_earlier_callback_in_same_iteration(loop):
    out = []
    handles = {}

    def first():
        out.append("first")
        handles["second"].cancel()

    loop.call_soon(first)
    handles["second"] = loop.call_soon(out.append, "second")
    loop.call_soon(out.append, "third")
    run_once(loop)
    assert out == ["first", "third"]


def test_handle_repr(loop):
    def my_callback_name(a):
        pass

    h = loop.call_soon(my_callback_name, 1)
    r = repr(h)
    assert r.startswith("<Handle")
    assert "my_callback_name" in r
    h.cancel()
    assert "cancelled" in repr(h)

    t = loop.call_later(10, my_callback_name, 1)
    r = repr(t)
    assert r.startswith("<TimerHandle")
    assert "when=" in r
    assert "my_callback_name" in r
    t.cancel()
    assert "cancelled" in repr(t)


@pytest.mark.skipif(not PY312, reason="Handle.get_context() is new in 3.12")
def test_handle_get_context(loop):
    ctx = contextvars.copy_context()
    h = loop.call_soon(print, context=ctx)
    assert h.get_context() is ctx
    t = loop.call_later(10, print, context=ctx)
    assert t.get_context() is ctx
    token = cvar.set("current")
    try:
        h2 = loop.call_soon(print)
    finally:
        cvar.reset(token)
    c2 = h2.get_context()
    assert isinstance(c2, contextvars.Context)
    assert c2[cvar] == "current"
    for x in (h, t, h2):
        x.cancel()


def test_callbacks_scheduled_during_iteration_run_next_iteration(loop):
    out = []

    def a():
        out.append("a")
        loop.call_soon(b)
        loop.stop()

    def b():
        out.append("b")
        loop.call_soon(c)

    def c():
        out.append("c")

    loop.call_soon(a)
    loop.call_soon(out.append, "a2")  # already queued: runs in the same iteration
    loop.run_forever()
    assert out == ["a", "a2"]
    assert not loop.is_running()
    # the next run picks up exactly where the previous one stopped
    run_once(loop)
    assert out == ["a", "a2", "b"]
    run_once(loop)
    assert out == ["a", "a2", "b", "c"]


def test_stop_before_run_forever_runs_one_iteration(loop):
    out = []

    def a():
        out.append("a")
        loop.call_soon(out.append, "b")

    loop.call_soon(a)
    loop.stop()
    loop.run_forever()
    assert out == ["a"]
    loop.stop()
    loop.run_forever()
    assert out == ["a", "b"]
    # an iteration with nothing to do returns at once too
    loop.stop()
    loop.run_forever()
    assert out == ["a", "b"]


def test_stop_twice_is_one_stop(loop):
    out = []
    loop.stop()
    loop.stop()
    loop.run_forever()
    # the stop request was consumed by that run: the next one runs until stopped again
    loop.call_soon(out.append, 1)
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert out == [1]


def test_call_soon_from_stopping_iteration_is_kept(loop):
    out = []
    loop.call_soon(loop.stop)
    loop.call_soon(loop.call_soon, out.append, "later")
    loop.run_forever()
    assert out == []
    run_once(loop)
    assert out == ["later"]


def test_self_rescheduling_callback_does_not_starve_others(loop):
    out = []
    count = [0]

    def spin():
        count[0] += 1
        if count[0] < 50:
            loop.call_soon(spin)

    async def main():
        loop.call_soon(spin)
        await asyncio.sleep(0)
        out.append(count[0])

    loop.run_until_complete(main())
    # sleep(0) yields for exactly one iteration: spin (queued before the
    # task's wake-up) ran exactly once in between
    assert out == [1]


def test_running_loop_inside_callbacks(loop):
    seen = []

    def cb():
        seen.append(asyncio.get_running_loop() is loop)
        seen.append(asyncio.get_event_loop() is loop)
        seen.append(loop.is_running())

    loop.call_soon(cb)
    run_once(loop)
    assert seen == [True, True, True]
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()


def test_ready_queue_growth_and_wraparound(loop):
    # Queue sizes that go up and down across iterations (ring-buffer growth
    # and wrap-around) keep strict FIFO order.
    out = []
    expected = []
    seq = [0]

    def node(depth, ident):
        out.append(ident)
        if depth < 6:
            for _ in range(3 if depth % 2 == 0 else 2):
                seq[0] += 1
                loop.call_soon(node, depth + 1, seq[0])

    # expected order: breadth-first, children in scheduling order
    level = [(0, 0)]
    counter = 0
    while level:
        nxt = []
        for depth, ident in level:
            expected.append(ident)
        for depth, ident in level:
            if depth < 6:
                for _ in range(3 if depth % 2 == 0 else 2):
                    counter += 1
                    nxt.append((depth + 1, counter))
        level = nxt

    loop.call_soon(node, 0, 0)
    for _ in range(10):
        run_once(loop)
    assert out == expected
    assert len(out) > 300

    # then a constant-size queue cycling through many iterations
    out.clear()

    def chain(cid, left):
        out.append(cid)
        if left:
            loop.call_soon(chain, cid, left - 1)

    for cid in range(300):
        loop.call_soon(chain, cid, 9)
    for _ in range(12):
        run_once(loop)
    assert out == list(range(300)) * 10


def test_large_burst_of_callbacks(loop):
    out = []
    n = 100_000
    for i in range(n):
        loop.call_soon(out.append, i)
    run_once(loop)
    assert len(out) == n
    assert out == list(range(n))


def test_handle_run_method(loop):
    # libraries and tests call Handle._run() directly
    out = []
    h = loop.call_soon(out.append, "x")
    h._run()
    assert out == ["x"]
    h.cancel()
    run_once(loop)
    assert out == ["x"]


def test_slow_callback_duration_default(loop):
    assert loop.slow_callback_duration == 0.1
    loop.slow_callback_duration = 0.5
    assert loop.slow_callback_duration == 0.5


def test_handle_after_run_and_self_cancel(loop):
    out = []
    box = {}

    def my_named_callback():
        box["h"].cancel()  # cancelling itself while running is harmless
        out.append(box["h"].cancelled())

    box["h"] = loop.call_soon(my_named_callback)
    h2 = loop.call_soon(out.append, "after")
    run_once(loop)
    assert out == [True, "after"]
    # a handle that ran (and was not cancelled) keeps describing its callback
    assert "append" in repr(h2)
    assert h2.cancelled() is False
