"""Exception handler, and BaseExceptions escaping callbacks."""
import asyncio
import logging

import pytest


def run_once(loop):
    loop.stop()
    loop.run_forever()


class MyError(Exception):
    pass


def test_callback_exception_goes_to_handler_and_loop_continues(loop):
    contexts = []
    out = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append((lp, ctx)))

    def bad(x):
        raise MyError(x)

    h = loop.call_soon(bad, "first")
    loop.call_soon(out.append, "after")
    t = loop.call_later(0, bad, "timer")
    loop.call_later(0.001, out.append, "timer-after")
    loop.call_later(0.005, loop.stop)
    loop.run_forever()
    assert out == ["after", "timer-after"]
    assert len(contexts) == 2
    lp, ctx = contexts[0]
    assert lp is loop
    assert set(ctx) >= {"message", "exception", "handle"}
    assert ctx["message"].startswith("Exception in callback")
    assert "bad" in ctx["message"]
    assert isinstance(ctx["exception"], MyError)
    assert ctx["exception"].args == ("first",)
    assert ctx["handle"] is h
    assert contexts[1][1]["handle"] is t
    assert contexts[1][1]["exception"].args == ("timer",)


def test_get_set_exception_handler(loop):
    assert loop.get_exception_handler() is None

    def handler(lp, ctx):
        pass

    loop.set_exception_handler(handler)
    assert loop.get_exception_handler() is handler
    loop.set_exception_handler(None)
    assert loop.get_exception_handler() is None
    with pytest.raises(TypeError):
        loop.set_exception_handler(42)
    assert loop.get_exception_handler() is None


def test_call_exception_handler_custom_context(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    loop.call_exception_handler({"message": "custom", "extra": 1})
    assert contexts == [{"message": "custom", "extra": 1}]


def test_default_exception_handler_logs(loop, caplog):
    def bad():
        raise MyError("logged")

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.call_soon(bad)
        run_once(loop)
    records = [r for r in caplog.records if r.name == "asyncio"]
    assert len(records) == 1
    rec = records[0]
    assert rec.levelno == logging.ERROR
    assert "Exception in callback" in rec.getMessage()
    assert "bad" in rec.getMessage()
    assert rec.exc_info is not None and rec.exc_info[0] is MyError


def test_default_exception_handler_called_directly(loop, caplog):
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.default_exception_handler({"message": "direct call", "foo": "bar"})
    records = [r for r in caplog.records if r.name == "asyncio"]
    assert len(records) == 1
    msg = records[0].getMessage()
    assert "direct call" in msg
    assert "foo: 'bar'" in msg


def test_custom_handler_can_delegate_to_default(loop, caplog):
    seen = []

    def handler(lp, ctx):
        seen.append(ctx["message"])
        lp.default_exception_handler(ctx)

    loop.set_exception_handler(handler)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.call_soon(lambda: 1 / 0)
        run_once(loop)
    assert len(seen) == 1
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)


def test_error_in_exception_handler_is_logged(loop, caplog):
    out = []

    def handler(lp, ctx):
        raise RuntimeError("handler failed")

    loop.set_exception_handler(handler)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.call_soon(lambda: 1 / 0)
        loop.call_soon(out.append, "still running")
        run_once(loop)
    assert out == ["still running"]
    msgs = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert any("Unhandled error in exception handler" in m for m in msgs), msgs


def test_non_callable_callback_reported_when_run(loop):
    loop.set_debug(False)  # the default unless -X dev / PYTHONASYNCIODEBUG
    # a non-callable callback (accepted when not in debug mode) fails when run
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    h = loop.call_soon(1)
    run_once(loop)
    assert len(contexts) == 1
    assert isinstance(contexts[0]["exception"], TypeError)
    assert contexts[0]["handle"] is h


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exception_in_callback_propagates_run_forever(loop, exc_type):
    out = []

    def raiser():
        raise exc_type("stop now")

    loop.call_soon(out.append, "a")
    loop.call_soon(raiser)
    loop.call_soon(out.append, "c")
    with pytest.raises(exc_type):
        loop.run_forever()
    assert out == ["a"]
    assert loop.is_running() is False
    assert asyncio._get_running_loop() is None
    # the callbacks after the failing one are still queued and run next time
    run_once(loop)
    assert out == ["a", "c"]
    assert loop.run_until_complete(asyncio.sleep(0, "usable")) == "usable"


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exception_in_timer_propagates(loop, exc_type):
    def raiser():
        raise exc_type()

    loop.call_later(0.001, raiser)
    with pytest.raises(exc_type):
        loop.run_forever()
    assert not loop.is_running()
    assert loop.run_until_complete(asyncio.sleep(0.001, "usable")) == "usable"


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exception_in_coroutine_propagates_run_until_complete(loop, exc_type):
    async def main():
        await asyncio.sleep(0)
        raise exc_type()

    with pytest.raises(exc_type):
        loop.run_until_complete(main())
    assert not loop.is_running()
    assert asyncio._get_running_loop() is None
    assert loop.run_until_complete(asyncio.sleep(0, "usable")) == "usable"


def test_base_exception_in_done_callback_propagates(loop):
    fut = loop.create_future()

    def cb(f):
        raise KeyboardInterrupt

    fut.add_done_callback(cb)
    loop.call_soon(fut.set_result, None)
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()
    assert loop.run_until_complete(asyncio.sleep(0, "ok")) == "ok"


def test_exception_in_task_is_stored_not_handled(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    async def fails():
        raise MyError("in task")

    async def main():
        t = loop.create_task(fails())
        with pytest.raises(MyError):
            await t

    loop.run_until_complete(main())
    assert contexts == []


@pytest.mark.parametrize("exc_type", [GeneratorExit, asyncio.CancelledError, StopIteration])
def test_other_base_exceptions_in_callback_are_reported(loop, exc_type):
    # only SystemExit and KeyboardInterrupt escape the loop; any other
    # BaseException from a callback goes to the exception handler
    contexts = []
    out = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    def raiser():
        raise exc_type()

    loop.call_soon(raiser)
    loop.call_soon(out.append, "next")
    run_once(loop)
    assert out == ["next"]
    assert len(contexts) == 1
    assert type(contexts[0]["exception"]) is exc_type


def test_keyboard_interrupt_in_reader_propagates(loop):
    import socket
    a, b = socket.socketpair()
    try:
        calls = []

        def reader():
            calls.append(1)
            a.recv(10)
            raise KeyboardInterrupt

        loop.add_reader(a, reader)
        b.send(b"x")
        guard = loop.call_later(5, loop.stop)
        with pytest.raises(KeyboardInterrupt):
            loop.run_forever()
        guard.cancel()
        assert calls == [1]
        # the reader stays registered and the loop keeps working
        assert loop.remove_reader(a) is True
        assert loop.run_until_complete(asyncio.sleep(0, "ok")) == "ok"
    finally:
        a.close()
        b.close()
