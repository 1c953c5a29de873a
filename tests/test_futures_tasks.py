"""create_future / create_task / task factories."""
import asyncio
import contextvars
import sys

import pytest

PY311 = sys.version_info >= (3, 11)
PY312 = sys.version_info >= (3, 12)
TASK_FACTORY_KWARGS = sys.version_info >= (3, 13, 3)

try:
    import _asyncio
except ImportError:  # pragma: no cover
    _asyncio = None

cvar = contextvars.ContextVar("cvar", default="unset")


def test_create_future_is_asyncio_future(loop):
    fut = loop.create_future()
    assert isinstance(fut, asyncio.Future)
    if _asyncio is not None:
        assert type(fut) is asyncio.Future
        assert type(fut) is _asyncio.Future
    assert fut.get_loop() is loop
    assert not fut.done()
    fut.set_result(1)
    assert fut.result() == 1


def test_future_callbacks_scheduled_on_loop(loop):
    fut = loop.create_future()
    out = []
    fut.add_done_callback(lambda f: out.append(("cb", f.result())))
    fut.set_result(7)
    assert out == []  # callbacks are scheduled with call_soon, not run inline
    loop.stop()
    loop.run_forever()
    assert out == [("cb", 7)]


def test_future_done_callback_context(loop):
    fut = loop.create_future()
    out = []
    ctx = contextvars.copy_context()
    ctx.run(cvar.set, "cb-ctx")
    fut.add_done_callback(lambda f: out.append(cvar.get()), context=ctx)
    fut.set_result(None)
    loop.stop()
    loop.run_forever()
    assert out == ["cb-ctx"]


def test_create_task_basics(loop):
    async def coro():
        return "r"

    task = loop.create_task(coro())
    assert isinstance(task, asyncio.Task)
    if _asyncio is not None:
        assert type(task) is _asyncio.Task
    assert task.get_loop() is loop
    assert loop.run_until_complete(task) == "r"


def test_create_task_name(loop):
    async def coro():
        return asyncio.current_task().get_name()

    task = loop.create_task(coro(), name="my-task")
    assert task.get_name() == "my-task"
    assert loop.run_until_complete(task) == "my-task"
    task2 = loop.create_task(coro())
    assert task2.get_name().startswith("Task-")
    loop.run_until_complete(task2)


@pytest.mark.skipif(not PY311, reason="create_task(context=) is new in 3.11")
def test_create_task_context(loop):
    ctx = contextvars.copy_context()
    ctx.run(cvar.set, "task-ctx")

    async def coro():
        before = cvar.get()
        cvar.set("changed")
        await asyncio.sleep(0)
        return before, cvar.get()

    assert loop.run_until_complete(loop.create_task(coro(), context=ctx)) == ("task-ctx", "changed")
    assert ctx[cvar] == "changed"
    assert cvar.get() == "unset"


def test_current_task_and_all_tasks(loop):
    async def child():
        await asyncio.sleep(0)
        return asyncio.current_task()

    async def main():
        me = asyncio.current_task()
        assert me is not None
        t = asyncio.ensure_future(child())
        assert t in asyncio.all_tasks()
        assert me in asyncio.all_tasks(loop)
        res = await t
        return me, res, t

    me, res, t = loop.run_until_complete(main())
    assert res is t
    assert asyncio.current_task(loop) is None


def test_task_cancel(loop):
    out = []

    async def coro():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            out.append("cancelled")
            raise

    async def main():
        t = loop.create_task(coro())
        await asyncio.sleep(0)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        return t

    t = loop.run_until_complete(main())
    assert t.cancelled()
    assert out == ["cancelled"]


def test_task_factory(loop):
    calls = []

    def factory(lp, coro, **kwargs):
        calls.append((lp, kwargs))
        return asyncio.Task(coro, loop=lp, **kwargs)

    assert loop.get_task_factory() is None
    loop.set_task_factory(factory)
    assert loop.get_task_factory() is factory

    async def coro():
        return asyncio.current_task().get_name()

    task = loop.create_task(coro(), name="named")
    assert task.get_name() == "named"
    assert loop.run_until_complete(task) == "named"
    assert calls[0][0] is loop

    # run_until_complete(coro) and ensure_future go through the factory too
    n = len(calls)
    loop.run_until_complete(coro())
    assert len(calls) == n + 1

    loop.set_task_factory(None)
    assert loop.get_task_factory() is None
    loop.run_until_complete(coro())
    assert len(calls) == n + 1


@pytest.mark.skipif(not PY311, reason="create_task(context=) is new in 3.11")
def test_task_factory_receives_context(loop):
    calls = []

    def factory(lp, coro, **kwargs):
        calls.append(sorted(kwargs))
        return asyncio.Task(coro, loop=lp, **kwargs)

    loop.set_task_factory(factory)
    ctx = contextvars.copy_context()
    ctx.run(cvar.set, "via-factory")

    async def coro():
        return cvar.get()

    assert loop.run_until_complete(loop.create_task(coro(), context=ctx)) == "via-factory"
    assert "context" in calls[0]


def test_task_factory_must_be_callable(loop):
    with pytest.raises(TypeError):
        loop.set_task_factory(42)
    assert loop.get_task_factory() is None


def test_task_factory_returning_future_like(loop):
    # a factory may wrap tasks; create_task returns what the factory returns
    class Marker:
        pass

    marker = Marker()

    def factory(lp, coro, **kwargs):
        t = asyncio.Task(coro, loop=lp, **kwargs)
        t.marker = marker
        return t

    loop.set_task_factory(factory)

    async def coro():
        return 1

    t = loop.create_task(coro())
    assert t.marker is marker
    loop.run_until_complete(t)


def test_task_factory_plain_call(loop_factory):
    # create_task(coro) with a factory: the factory gets exactly (loop, coro),
    # its result comes back as it is, and a closed loop refuses before
    # calling it. Whether the result is then named (3.13.0-3.13.2 call
    # set_name(None) on it) is compared with asyncio's own loop.
    class Made:
        def __init__(self):
            self.names = []

        def set_name(self, name):
            self.names.append(name)

    def run(make_loop):
        lp = make_loop()
        calls = []
        made = Made()

        def factory(*args, **kwargs):
            calls.append((args, kwargs))
            return made

        lp.set_task_factory(factory)

        async def coro():
            pass

        c = coro()
        assert lp.create_task(c) is made
        assert calls == [((lp, c), {})]
        c.close()
        lp.close()
        c = coro()
        with pytest.raises(RuntimeError, match="Event loop is closed"):
            lp.create_task(c)
        c.close()
        assert len(calls) == 1
        return made.names

    assert run(loop_factory) == run(asyncio.new_event_loop)


@pytest.mark.skipif(not TASK_FACTORY_KWARGS,
                    reason="create_task(**kwargs) to the task factory is new in 3.13.3")
def test_task_factory_extra_kwargs(loop):
    seen = []

    def factory(lp, coro, *, custom=None, **kwargs):
        seen.append((custom, sorted(kwargs)))
        return asyncio.Task(coro, loop=lp, **kwargs)

    loop.set_task_factory(factory)

    async def coro():
        return "x"

    t = loop.create_task(coro(), custom="value", name="n")
    assert loop.run_until_complete(t) == "x"
    assert seen[0][0] == "value"
    assert t.get_name() == "n"


@pytest.mark.skipif(TASK_FACTORY_KWARGS,
                    reason="since 3.13.3 create_task passes extra kwargs to the task factory")
def test_create_task_unknown_kwarg_rejected(loop):
    async def coro():
        pass

    c = coro()
    with pytest.raises(TypeError):
        loop.create_task(c, custom="value")
    c.close()


@pytest.mark.skipif(not PY312, reason="eager tasks are new in 3.12")
def test_eager_task_factory(loop):
    loop.set_task_factory(asyncio.eager_task_factory)
    steps = []

    async def runs_to_first_await():
        steps.append("started")
        await asyncio.sleep(0)
        steps.append("resumed")
        return "eager"

    async def completes_without_await():
        steps.append("sync")
        return "done-sync"

    async def main():
        t = loop.create_task(runs_to_first_await())
        # the first step already ran inside create_task
        assert steps == ["started"]
        t2 = loop.create_task(completes_without_await())
        assert t2.done()
        assert t2.result() == "done-sync"
        return await t

    assert loop.run_until_complete(main()) == "eager"
    assert steps == ["started", "sync", "resumed"]


@pytest.mark.skipif(not PY312, reason="eager tasks are new in 3.12")
def test_eager_task_name_and_current_task(loop):
    loop.set_task_factory(asyncio.eager_task_factory)

    async def child():
        return asyncio.current_task()

    async def main():
        me = asyncio.current_task()
        t = loop.create_task(child(), name="eager-child")
        assert t.done()
        # current_task() was the eager task during its first step, and is
        # the caller again afterwards
        assert t.result() is t
        assert asyncio.current_task() is me
        return t.get_name()

    assert loop.run_until_complete(main()) == "eager-child"


@pytest.mark.skipif(not PY312, reason="eager tasks are new in 3.12")
def test_eager_start_outside_running_loop_is_lazy(loop):
    loop.set_task_factory(asyncio.eager_task_factory)
    steps = []

    async def coro():
        steps.append("ran")

    t = loop.create_task(coro())
    # not running: the eager start is deferred to the first iteration
    assert steps == []
    loop.run_until_complete(t)
    assert steps == ["ran"]


def test_task_exception_never_retrieved_reported(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    async def fails():
        raise ValueError("never retrieved")

    t = loop.create_task(fails())
    loop.run_until_complete(asyncio.sleep(0.001))
    assert t.done()
    del t
    import gc
    gc.collect()
    assert any(isinstance(c.get("exception"), ValueError) for c in contexts), contexts
    assert any("never retrieved" in c["message"] for c in contexts)


def test_pending_task_destroyed_reported(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    async def forever():
        await loop.create_future()

    t = loop.create_task(forever())
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()
    del t
    import gc
    gc.collect()
    assert any("Task was destroyed but it is pending" in c["message"] for c in contexts), contexts
