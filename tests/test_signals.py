"""Signals while the loop is idle: KeyboardInterrupt, Python handlers, Runner."""
import asyncio
import os
import signal
import sys
import threading
import time

import pytest

PY311 = sys.version_info >= (3, 11)

pytestmark = pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                                reason="signal tests need the main thread")


@pytest.fixture
def default_sigint():
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


def kill_later(delay, signum=signal.SIGINT):
    t = threading.Timer(delay, os.kill, (os.getpid(), signum))
    t.start()
    return t


def test_sigint_interrupts_idle_run_until_complete(loop, default_sigint):
    task = loop.create_task(asyncio.sleep(30))
    timer = kill_later(0.1)
    t0 = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(task)
    finally:
        timer.join()
    assert time.monotonic() - t0 < 2.0
    assert not loop.is_running()
    assert asyncio._get_running_loop() is None
    # the loop is still usable: finish the interrupted task
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)


def test_sigint_interrupts_idle_run_forever_no_timers(loop, default_sigint):
    # No timer at all: the loop blocks in its poll with an infinite timeout.
    timer = kill_later(0.1)
    t0 = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            loop.run_forever()
    finally:
        timer.join()
    assert time.monotonic() - t0 < 2.0
    assert loop.run_until_complete(asyncio.sleep(0, "usable")) == "usable"


def test_sigint_from_timer_callback(loop, default_sigint):
    task = loop.create_task(asyncio.sleep(30))
    loop.call_later(0.05, os.kill, os.getpid(), signal.SIGINT)
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        loop.run_until_complete(task)
    assert time.monotonic() - t0 < 2.0
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)


@pytest.mark.parametrize("send_with", ["kill", "pthread_kill"])
def test_python_signal_handler_runs_while_idle(loop, send_with):
    # The handler is the only thing that can wake the loop before the far
    # guard timer: it only works if the handler runs while the loop is idle.
    received = []
    fut = loop.create_future()

    def handler(signum, frame):
        received.append((signum, threading.current_thread() is threading.main_thread(),
                         time.monotonic()))
        loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(signum))

    old = signal.signal(signal.SIGUSR1, handler)
    guard = loop.call_later(30, lambda: fut.done() or fut.cancel())
    sent = []

    main_id = threading.get_ident()

    def send():
        time.sleep(0.1)
        sent.append(time.monotonic())
        if send_with == "kill":
            os.kill(os.getpid(), signal.SIGUSR1)
        else:
            signal.pthread_kill(main_id, signal.SIGUSR1)

    th = threading.Thread(target=send)
    t0 = time.monotonic()
    th.start()
    try:
        assert loop.run_until_complete(fut) == signal.SIGUSR1
    finally:
        th.join()
        guard.cancel()
        signal.signal(signal.SIGUSR1, old)
    assert len(received) == 1
    assert received[0][1] is True  # Python handlers always run in the main thread
    assert received[0][2] - sent[0] < 2.0
    assert time.monotonic() - t0 < 2.0


def test_exception_from_signal_handler_propagates(loop):
    class Interrupt(Exception):
        pass

    def handler(signum, frame):
        raise Interrupt("from handler")

    old = signal.signal(signal.SIGUSR1, handler)
    timer = kill_later(0.05, signal.SIGUSR1)
    task = loop.create_task(asyncio.sleep(30))
    t0 = time.monotonic()
    try:
        with pytest.raises(Interrupt):
            loop.run_until_complete(task)
    finally:
        timer.join()
        signal.signal(signal.SIGUSR1, old)
    assert time.monotonic() - t0 < 2.0
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)


@pytest.mark.skipif(not PY311, reason="asyncio.Runner is new in 3.11")
def test_runner_sigint_cancels_main_task(loop_factory, default_sigint):
    events = []
    timers = []

    async def main():
        # Armed from inside the main task, once Runner.run has installed its
        # SIGINT handler: a signal sent before that (a slow sanitizer build
        # can take longer than any fixed delay to create the loop) would be
        # a plain KeyboardInterrupt that has nothing to do with the Runner.
        timers.append(kill_later(0.1))
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            events.append("cancelled")
            raise

    t0 = time.monotonic()
    try:
        with asyncio.Runner(loop_factory=lambda: (time.sleep(0.3), loop_factory())[1]) as runner:
            with pytest.raises(KeyboardInterrupt):
                runner.run(main())
            events.append(type(runner.get_loop()).__module__.split(".")[0])
    finally:
        for timer in timers:
            timer.join()
    assert time.monotonic() - t0 < 2.0
    assert events[0] == "cancelled"
    
    # the Runner restored the SIGINT handler
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.skipif(not PY311, reason="asyncio.Runner is new in 3.11")
def test_runner_sigint_main_task_may_handle_cancellation(loop_factory, default_sigint):
    timers = []

    async def main():
        timers.append(kill_later(0.1))  # once the Runner's handler is in place
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            return "handled"

    try:
        with asyncio.Runner(loop_factory=lambda: (time.sleep(0.3), loop_factory())[1]) as runner:
            # the task swallowed the cancellation: its result is returned
            result = runner.run(main())
            # and the runner is still usable
            assert runner.run(asyncio.sleep(0, "again")) == "again"
    finally:
        for timer in timers:
            timer.join()
    assert result == "handled"


def test_add_signal_handler(loop):
    got = []
    fut = loop.create_future()

    def on_signal(tag):
        got.append((tag, asyncio.get_running_loop() is loop))
        fut.set_result(None)

    loop.add_signal_handler(signal.SIGUSR1, on_signal, "usr1")
    timer = kill_later(0.05, signal.SIGUSR1)
    guard = loop.call_later(10, lambda: fut.done() or fut.cancel())
    t0 = time.monotonic()
    try:
        loop.run_until_complete(fut)
    finally:
        timer.join()
        guard.cancel()
    assert got == [("usr1", True)]
    assert time.monotonic() - t0 < 2.0
    assert loop.remove_signal_handler(signal.SIGUSR1) is True
    assert loop.remove_signal_handler(signal.SIGUSR1) is False
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL


def test_user_wakeup_fd_preserved(loop):
    import socket
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    old = signal.set_wakeup_fd(-1)
    try:
        signal.set_wakeup_fd(a.fileno())
        loop.run_until_complete(asyncio.sleep(0.001))
        assert signal.set_wakeup_fd(a.fileno()) == a.fileno()
        loop.close()
        assert signal.set_wakeup_fd(-1) == a.fileno()
    finally:
        signal.set_wakeup_fd(old)
        a.close()
        b.close()


def test_no_wakeup_fd_left_behind(loop):
    old = signal.set_wakeup_fd(-1)
    try:
        loop.run_until_complete(asyncio.sleep(0.001))
        assert signal.set_wakeup_fd(-1) == -1
        loop.close()
        assert signal.set_wakeup_fd(-1) == -1
    finally:
        signal.set_wakeup_fd(old)
