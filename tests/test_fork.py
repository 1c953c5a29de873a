"""fork(): children use new or inherited loops without disturbing the parent."""
import asyncio
import os
import signal
import socket
import sys
import threading
import time
import traceback
import warnings

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

PY312 = sys.version_info >= (3, 12)


def fork_and_wait(child_fn, timeout=20):
    """Run child_fn() in a forked child; return its exit code.

    The child never returns into pytest: it always leaves through os._exit.
    """
    with warnings.catch_warnings():
        # 3.12+ warns when forking a process that has threads
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # child
        code = 3
        try:
            signal.alarm(timeout)  # never hang the parent's waitpid forever
            code = child_fn()
            code = 0 if code is None else code
        except BaseException:
            try:
                traceback.print_exc()
            except BaseException:
                pass
            code = 2
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout + 5
    while True:
        wpid, status = os.waitpid(pid, os.WNOHANG)
        if wpid == pid:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:  # pragma: no cover - a hung child
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("forked child did not finish")
        time.sleep(0.01)


def exercise_loop(lp):
    """Use the main features of a loop; raise AssertionError if one fails."""
    out = []
    lp.call_soon(out.append, "soon")
    lp.call_later(0.01, out.append, "later")
    r, w = socket.socketpair()
    try:
        got = []
        lp.add_reader(r, lambda: got.append(r.recv(10)))
        th = threading.Thread(target=lambda: (time.sleep(0.02),
                                              lp.call_soon_threadsafe(out.append, "threadsafe"),
                                              w.send(b"ping")))
        th.start()

        async def main():
            deadline = time.monotonic() + 5
            while (len(out) < 3 or not got) and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            return await lp.run_in_executor(None, lambda: "executor")

        t0 = time.monotonic()
        res = lp.run_until_complete(main())
        th.join()
        assert time.monotonic() - t0 < 3, "loop too slow after fork"
        assert res == "executor"
        assert sorted(out) == ["later", "soon", "threadsafe"], out
        assert got == [b"ping"], got
        assert lp.remove_reader(r) is True
    finally:
        r.close()
        w.close()


def test_child_with_new_loop(loop_factory):
    parent_loop = loop_factory()
    parent_loop.run_until_complete(asyncio.sleep(0))

    def child():
        lp = loop_factory.kind()
        try:
            exercise_loop(lp)
        finally:
            lp.close()

    assert fork_and_wait(child) == 0
    # the parent's loop is unaffected
    exercise_loop(parent_loop)


def test_child_uses_inherited_loop_parent_unaffected(boucle_loop):
    loop = boucle_loop
    a, b = socket.socketpair()
    try:
        parent_got = []
        loop.add_reader(a, lambda: parent_got.append(a.recv(100)))
        # make sure the poller, the wakeup fd and the executor exist before fork
        loop.call_soon_threadsafe(lambda: None)
        loop.run_until_complete(asyncio.sleep(0.001))

        def child():
            exercise_loop(loop)  # the inherited loop works in the child
            # unregistering an inherited fd in the child must not touch the
            # parent's registration
            loop.remove_reader(a)
            loop.add_reader(a, lambda: None)
            loop.remove_reader(a)
            loop.close()

        assert fork_and_wait(child) == 0

        # Parent: its reader on `a` still fires...
        b.send(b"after-child")
        deadline = time.monotonic() + 5
        while not parent_got and time.monotonic() < deadline:
            loop.run_until_complete(asyncio.sleep(0.005))
        assert parent_got == [b"after-child"]
        # ...its wakeup from other threads still works promptly...
        fut = loop.create_future()
        th = threading.Timer(0.05, loop.call_soon_threadsafe, (fut.set_result, "woken"))
        guard = loop.call_later(10, lambda: fut.done() or fut.cancel())
        t0 = time.monotonic()
        th.start()
        assert loop.run_until_complete(fut) == "woken"
        th.join()
        guard.cancel()
        assert time.monotonic() - t0 < 2.0
        # ...and the whole loop still works.
        loop.remove_reader(a)
        exercise_loop(loop)
    finally:
        a.close()
        b.close()


def _fork_nowait(child_fn, timeout=20):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        code = 3
        try:
            signal.alarm(timeout)
            code = child_fn()
            code = 0 if code is None else code
        except BaseException:
            try:
                traceback.print_exc()
            except BaseException:
                pass
            code = 2
        finally:
            os._exit(code)
    return pid


def test_parent_and_child_run_inherited_loop_concurrently(boucle_loop):
    # Parent and child both sit idle in the same (inherited) loop object's
    # poll at the same time.  Each must get its own I/O events and its own
    # thread-safe wakeups: a poller or wakeup fd shared across fork would
    # hand events to the wrong process.
    loop = boucle_loop
    a, b = socket.socketpair()
    try:
        parent_got = []
        loop.add_reader(a, lambda: parent_got.append(a.recv(100)))
        loop.call_soon_threadsafe(lambda: None)
        loop.run_until_complete(asyncio.sleep(0.001))

        def child():
            assert loop.remove_reader(a) is True  # the inherited registration
            received = []
            n = 20

            def feeder():
                for i in range(n):
                    time.sleep(0.01)
                    loop.call_soon_threadsafe(received.append, i)
                loop.call_soon_threadsafe(loop.stop)

            # only thread-safe wakeups end this run (the guard is far away)
            guard = loop.call_later(5, loop.stop)
            th = threading.Thread(target=feeder)
            t0 = time.monotonic()
            th.start()
            loop.run_forever()
            elapsed = time.monotonic() - t0
            th.join()
            guard.cancel()
            assert received == list(range(n)), received
            assert elapsed < 3, "child's wakeups were lost (%.1fs)" % elapsed
            loop.close()

        pid = _fork_nowait(child)
        try:
            sender = threading.Thread(target=lambda: [(time.sleep(0.05), b.send(bytes([65 + i])))
                                                      for i in range(6)])
            sender.start()
            done = loop.create_future()

            def reap():
                _, status = os.waitpid(pid, 0)
                loop.call_soon_threadsafe(done.set_result, os.waitstatus_to_exitcode(status))

            reaper = threading.Thread(target=reap)
            reaper.start()
            guard = loop.call_later(30, lambda: done.done() or done.set_result("timeout"))
            code = loop.run_until_complete(done)
            guard.cancel()
            reaper.join()
            sender.join()
            pid = None
        finally:
            if pid is not None:  # pragma: no cover
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        assert code == 0, "child failed (exit code %r)" % (code,)
        deadline = time.monotonic() + 5
        while len(b"".join(parent_got)) < 6 and time.monotonic() < deadline:
            loop.run_until_complete(asyncio.sleep(0.005))
        assert b"".join(parent_got) == b"ABCDEF"
    finally:
        loop.remove_reader(a)
        a.close()
        b.close()


@pytest.mark.skipif(not PY312, reason="asyncio resets the running loop in fork children since 3.12")
def test_fork_from_running_loop(loop_factory):
    parent = loop_factory()
    results = []

    def in_callback():
        def child():
            # the parent's loop is "running" in this child's stack, but the
            # running-loop marker was reset by asyncio's fork hook
            assert asyncio._get_running_loop() is None
            lp = loop_factory.kind()
            try:
                exercise_loop(lp)
            finally:
                lp.close()

        results.append(fork_and_wait(child))

    parent.call_soon(in_callback)
    parent.run_until_complete(asyncio.sleep(0.001))
    assert results == [0]
    assert parent.run_until_complete(asyncio.sleep(0, "parent ok")) == "parent ok"
