"""Faults (issue #5): a callback raising in every hook, the loop closed from a
callback, threads calling call_soon_threadsafe while the loop closes, and
fd exhaustion.

Every test runs on asyncio's loop and on boucle's (the ``loop`` fixture) and
asserts what a program relies on: which exception reaches the exception
handler, with which message and context keys, what happens to the
transport afterwards, and that the loop keeps working.  What is asserted
is asyncio's behaviour (the asyncio run of each test proves it).

Signals arriving while the loop waits on I/O are covered by
test_signals.py and test_signal_handlers.py; accept() under EMFILE by
test_servers.py.
"""
import asyncio
import gc
import logging
import os
import resource
import signal
import socket
import sys
import threading
import warnings
import weakref
from asyncio import format_helpers

import pytest

PY312 = sys.version_info >= (3, 12)
HAVE_PROC_FD = os.path.isdir("/proc/self/fd")
MAIN_THREAD = threading.current_thread() is threading.main_thread()

HANDLE_KEYS = {"message", "exception", "handle"}
TRANSPORT_KEYS = {"message", "exception", "transport", "protocol"}


class MyError(Exception):
    pass


def collect(loop):
    """Install an exception handler that records every context."""
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    return contexts


def run_once(loop):
    loop.stop()
    loop.run_forever()


def run_until(loop, predicate, limit=5.0):
    """Run the loop until predicate() is true (fails after ``limit`` s)."""
    async def waiter():
        deadline = loop.time() + limit
        while not predicate():
            assert loop.time() < deadline, "condition not reached"
            await asyncio.sleep(0.001)
    loop.run_until_complete(waiter())


def nfds():
    return len(os.listdir("/proc/self/fd"))


def callback_message(cb, args):
    """asyncio's message for a callback that raised."""
    return "Exception in callback " + format_helpers._format_callback_source(cb, args)


def assert_usable(loop):
    assert loop.run_until_complete(asyncio.sleep(0, "usable")) == "usable"


# ---------------------------------------------------------------------------
# Scheduled callbacks


def _bad(tag):
    raise MyError(tag)


@pytest.mark.parametrize("hook", ["call_soon", "call_later", "call_at", "call_soon_threadsafe",
                                  "call_soon_threadsafe_from_thread"])
def test_scheduled_callback_raising(loop, hook):
    contexts = collect(loop)
    out = []
    if hook == "call_soon":
        h = loop.call_soon(_bad, hook)
    elif hook == "call_later":
        h = loop.call_later(0.001, _bad, hook)
    elif hook == "call_at":
        h = loop.call_at(loop.time() + 0.001, _bad, hook)
    elif hook == "call_soon_threadsafe":
        h = loop.call_soon_threadsafe(_bad, hook)
    else:
        got = []
        th = threading.Thread(target=lambda: got.append(loop.call_soon_threadsafe(_bad, hook)))
        th.start()
        th.join()
        h = got[0]
    # the callbacks after it still run, in this iteration and later ones
    loop.call_later(0.002, out.append, "later")
    run_until(loop, lambda: out)
    assert out == ["later"]
    assert len(contexts) == 1
    ctx = contexts[0]
    assert set(ctx) == HANDLE_KEYS
    assert ctx["handle"] is h
    assert type(ctx["exception"]) is MyError and ctx["exception"].args == (hook,)
    assert ctx["message"] == callback_message(_bad, (hook,))
    assert_usable(loop)


@pytest.mark.parametrize("which", ["reader", "writer"])
def test_fd_callback_raising_stays_registered(loop, which):
    # A reader/writer that raises is reported each time it runs and stays
    # registered: level-triggered readiness calls it again.
    a, b = socket.socketpair()
    a.setblocking(False)
    contexts = collect(loop)
    calls = []

    def cb():
        calls.append(1)
        raise MyError(which)

    try:
        if which == "reader":
            b.send(b"x")   # never read: stays readable
            loop.add_reader(a, cb)
        else:
            loop.add_writer(a, cb)
        run_until(loop, lambda: len(contexts) >= 3)
        for ctx in contexts:
            assert set(ctx) == HANDLE_KEYS
            # a plain Handle, not a TimerHandle (boucle's handles are C
            # types that mirror asyncio's without subclassing them)
            assert type(ctx["handle"]).__name__ == "Handle"
            assert not hasattr(ctx["handle"], "when")
            assert type(ctx["exception"]) is MyError
            assert ctx["message"] == callback_message(cb, ())
        assert len(calls) == len(contexts)
        remove = loop.remove_reader if which == "reader" else loop.remove_writer
        assert remove(a) is True
        assert_usable(loop)
    finally:
        a.close()
        b.close()


@pytest.mark.skipif(not MAIN_THREAD, reason="signal handlers need the main thread")
def test_signal_handler_callback_raising(loop):
    contexts = collect(loop)
    calls = []

    def on_signal(tag):
        calls.append(tag)
        raise MyError(tag)

    loop.add_signal_handler(signal.SIGUSR1, on_signal, "usr1")
    try:
        for n in (1, 2):
            loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
            run_until(loop, lambda: len(contexts) == n)
        assert calls == ["usr1", "usr1"]    # still installed after raising
        for ctx in contexts:
            assert set(ctx) == HANDLE_KEYS
            assert type(ctx["exception"]) is MyError
            assert ctx["message"] == callback_message(on_signal, ("usr1",))
    finally:
        assert loop.remove_signal_handler(signal.SIGUSR1) is True
    assert_usable(loop)


@pytest.mark.parametrize("kind", ["future", "task"])
def test_done_callback_raising(loop, kind):
    contexts = collect(loop)
    out = []

    def cb(f):
        raise MyError(kind)

    async def coro():
        return "result"

    if kind == "future":
        fut = loop.create_future()
        loop.call_soon(fut.set_result, "result")
    else:
        fut = loop.create_task(coro())
    fut.add_done_callback(cb)
    fut.add_done_callback(lambda f: out.append(f.result()))
    assert loop.run_until_complete(fut) == "result"
    run_once(loop)
    assert out == ["result"]     # the next done callback still runs
    assert len(contexts) == 1
    ctx = contexts[0]
    assert set(ctx) == HANDLE_KEYS
    assert type(ctx["exception"]) is MyError
    assert ctx["message"] == callback_message(cb, (fut,))
    assert_usable(loop)


# ---------------------------------------------------------------------------
# The exception handler itself raising


def test_exception_handler_raising_is_logged(loop, caplog):
    def handler(lp, ctx):
        raise MyError("handler")

    loop.set_exception_handler(handler)
    out = []
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.call_soon(_bad, "cb")
        loop.call_later(0.001, _bad, "timer")
        loop.call_later(0.002, out.append, "after")
        run_until(loop, lambda: out)
    recs = [r for r in caplog.records if r.name == "asyncio"]
    assert len(recs) == 2
    assert all(r.getMessage().startswith("Unhandled error in exception handler") for r in recs)
    assert all(r.exc_info[0] is MyError for r in recs)
    assert_usable(loop)


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_exception_handler_raising_base_exception_propagates(loop, exc_type):
    def handler(lp, ctx):
        raise exc_type("from handler")

    loop.set_exception_handler(handler)
    out = []
    loop.call_soon(_bad, "cb")
    loop.call_soon(out.append, "next")
    with pytest.raises(exc_type):
        loop.run_forever()
    assert not loop.is_running()
    assert asyncio._get_running_loop() is None
    loop.set_exception_handler(None)
    run_once(loop)
    assert out == ["next"]      # left in the queue, runs next time
    assert_usable(loop)


# ---------------------------------------------------------------------------
# Async generator finalizer


def test_asyncgen_aclose_raising_when_collected(loop):
    # A dropped async generator is closed by the finalizer hook in a task;
    # when its aclose() raises, the task's exception is reported as never
    # retrieved.
    contexts = collect(loop)

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            raise MyError("in finally")

    async def main():
        g = agen()
        assert await g.__anext__() == 1
        del g
        gc.collect()
        for _ in range(5):
            await asyncio.sleep(0)

    loop.run_until_complete(main())
    run_once(loop)
    gc.collect()
    assert len(contexts) == 1
    ctx = contexts[0]
    assert ctx["message"] == "Task exception was never retrieved"
    assert set(ctx) == {"message", "exception", "future"}
    assert type(ctx["exception"]) is MyError
    assert_usable(loop)


def test_asyncgen_aclose_raising_at_shutdown(loop):
    contexts = collect(loop)
    gens = []

    async def agen():
        try:
            yield 1
        finally:
            raise MyError("in finally")

    async def main():
        g = agen()
        gens.append(g)     # still alive at shutdown_asyncgens
        assert await g.__anext__() == 1

    loop.run_until_complete(main())
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert len(contexts) == 1
    ctx = contexts[0]
    assert set(ctx) == {"message", "exception", "asyncgen"}
    assert ctx["asyncgen"] is gens[0]
    assert ctx["message"].startswith("an error occurred during closing of asynchronous generator")
    assert type(ctx["exception"]) is MyError
    assert_usable(loop)
