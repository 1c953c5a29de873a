"""add_reader / remove_reader / add_writer / remove_writer."""
import asyncio
import os
import socket
import time

import pytest


def run_once(loop):
    loop.stop()
    loop.run_forever()


@pytest.fixture
def sockpair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def run_until(loop, predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached within %ss" % timeout)
        loop.run_until_complete(asyncio.sleep(0.001))


def test_add_reader_called_with_args(loop, sockpair):
    a, b = sockpair
    got = []

    def on_readable(tag):
        got.append((tag, a.recv(100)))

    loop.add_reader(a.fileno(), on_readable, "tag")
    b.send(b"hello")
    run_until(loop, lambda: got)
    assert got == [("tag", b"hello")]
    assert loop.remove_reader(a.fileno()) is True
    assert loop.remove_reader(a.fileno()) is False
    b.send(b"more")
    loop.run_until_complete(asyncio.sleep(0.01))
    assert got == [("tag", b"hello")]


def test_reader_is_level_triggered(loop, sockpair):
    a, b = sockpair
    calls = []

    def on_readable():
        calls.append(1)
        a.recv(1)  # consume only one byte per call

    loop.add_reader(a, on_readable)
    b.send(b"abc")
    run_until(loop, lambda: len(calls) >= 3)
    loop.remove_reader(a)
    assert len(calls) == 3


def test_add_reader_with_fileno_object(loop, sockpair):
    a, b = sockpair
    got = []

    class FileLike:
        def fileno(self):
            return a.fileno()

    obj = FileLike()
    loop.add_reader(obj, lambda: got.append(a.recv(10)))
    b.send(b"x")
    run_until(loop, lambda: got)
    assert got == [b"x"]
    # a socket object and its fd number refer to the same registration
    assert loop.remove_reader(a) is True
    assert loop.remove_reader(obj) is False


def test_add_writer(loop, sockpair):
    a, b = sockpair
    calls = []

    def on_writable(x):
        calls.append(x)
        loop.remove_writer(a.fileno())

    loop.add_writer(a.fileno(), on_writable, 5)
    run_until(loop, lambda: calls)
    assert calls == [5]
    assert loop.remove_writer(a.fileno()) is False
    loop.add_writer(a, on_writable, 6)
    assert loop.remove_writer(a) is True
    assert loop.remove_writer(a) is False


def test_reader_and_writer_on_same_fd(loop, sockpair):
    a, b = sockpair
    events = []

    def on_write():
        events.append("w")
        loop.remove_writer(a)
        a.send(b"ping")

    def on_read():
        events.append(("r", b.recv(10)))
        loop.remove_reader(b)

    def on_read_a():
        events.append(("ra", a.recv(10)))
        loop.remove_reader(a)

    loop.add_reader(b, on_read)
    loop.add_writer(a, on_write)
    loop.add_reader(a, on_read_a)
    run_until(loop, lambda: len(events) >= 2)
    assert events == ["w", ("r", b"ping")]
    b.send(b"pong")
    run_until(loop, lambda: len(events) >= 3)
    assert events[2] == ("ra", b"pong")
    # removing the writer did not drop the reader registered on the same fd
    assert loop.remove_reader(a) is False


def test_remove_writer_keeps_reader(loop, sockpair):
    a, b = sockpair
    got = []
    loop.add_reader(a, lambda: got.append(a.recv(10)))
    loop.add_writer(a, lambda: None)
    assert loop.remove_writer(a) is True
    b.send(b"data")
    run_until(loop, lambda: got)
    assert got == [b"data"]
    assert loop.remove_reader(a) is True


def test_replacing_reader(loop, sockpair):
    a, b = sockpair
    got = []
    loop.add_reader(a, lambda: got.append(("first", a.recv(10))))
    loop.add_reader(a, lambda: got.append(("second", a.recv(10))))
    b.send(b"x")
    run_until(loop, lambda: got)
    loop.run_until_complete(asyncio.sleep(0.005))
    assert got == [("second", b"x")]
    assert loop.remove_reader(a) is True
    assert loop.remove_reader(a) is False


def test_replacing_writer(loop, sockpair):
    a, b = sockpair
    calls = []

    def w(tag):
        calls.append(tag)
        loop.remove_writer(a)

    loop.add_writer(a, w, "first")
    loop.add_writer(a, w, "second")
    run_until(loop, lambda: calls)
    loop.run_until_complete(asyncio.sleep(0.005))
    assert calls == ["second"]


def test_io_callbacks_run_after_already_ready_callbacks(loop, sockpair):
    a, b = sockpair
    order = []

    def first():
        order.append("ready-1")
        loop.call_soon(order.append, "scheduled-by-ready-1")

    b.send(b"x")  # readable before the loop even starts
    loop.add_reader(a, lambda: (order.append("reader"), a.recv(10)))
    loop.call_soon(first)
    loop.call_soon(order.append, "ready-2")
    run_once(loop)
    # I/O events are queued behind the callbacks that were already ready,
    # and callbacks scheduled during the iteration wait for the next one.
    assert order == ["ready-1", "ready-2", "reader"]
    run_once(loop)
    assert order[:4] == ["ready-1", "ready-2", "reader", "scheduled-by-ready-1"]
    loop.remove_reader(a)


def test_removed_writer_does_not_fire_in_same_iteration(loop, sockpair):
    # Both events of one fd are queued in one iteration, reader first; the
    # reader removes the writer, whose queued callback must then not run.
    a, b = sockpair
    fired = []
    b.send(b"x")

    def on_read():
        fired.append("r")
        a.recv(10)
        loop.remove_writer(a)

    loop.add_reader(a, on_read)
    loop.add_writer(a, fired.append, "w")
    run_once(loop)
    run_once(loop)
    assert fired == ["r"]
    loop.remove_reader(a)


def test_removed_reader_does_not_fire_in_same_iteration(loop, sockpair):
    a, b = sockpair
    a2, b2 = socket.socketpair()
    fired = []
    try:
        b.send(b"x")
        b2.send(b"y")

        def r1():
            fired.append("r1")
            a.recv(10)
            loop.remove_reader(a2)

        def r2():
            fired.append("r2")
            a2.recv(10)
            loop.remove_reader(a)

        loop.add_reader(a, r1)
        loop.add_reader(a2, r2)
        run_once(loop)
        run_once(loop)
        # whichever reader runs first removes the other, whose already
        # queued callback must then be skipped
        assert fired in (["r1"], ["r2"])
    finally:
        loop.remove_reader(a)
        loop.remove_reader(a2)
        a2.close()
        b2.close()


def test_reader_callback_exception_reported(loop, sockpair):
    a, b = sockpair
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    def bad():
        a.recv(10)
        raise ValueError("reader failed")

    loop.add_reader(a, bad)
    b.send(b"x")
    run_until(loop, lambda: contexts)
    assert isinstance(contexts[0]["exception"], ValueError)
    assert "handle" in contexts[0]
    loop.remove_reader(a)


def test_invalid_fd_minus_one(loop):
    with pytest.raises(ValueError):
        loop.add_reader(-1, print)
    with pytest.raises(ValueError):
        loop.add_writer(-1, print)


def test_invalid_file_object(loop):
    with pytest.raises(ValueError):
        loop.add_reader(object(), print)
    with pytest.raises(ValueError):
        loop.add_writer("not a file", print)

    class BadFileno:
        def fileno(self):
            return "nope"

    with pytest.raises(ValueError):
        loop.add_reader(BadFileno(), print)
    with pytest.raises(ValueError):
        loop.remove_reader(object())


def test_closed_fd_raises_oserror(loop):
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(OSError):
        loop.add_reader(r, print)
    with pytest.raises(OSError):
        loop.add_writer(w, print)
    assert loop.remove_reader(r) is False
    assert loop.remove_writer(w) is False


def test_regular_file_rejected(loop, tmp_path):
    path = tmp_path / "regular"
    path.write_bytes(b"data")
    with open(path, "rb") as f:
        with pytest.raises(PermissionError):
            loop.add_reader(f.fileno(), print)
        with pytest.raises(PermissionError):
            loop.add_writer(f, print)
        assert loop.remove_reader(f) is False


@pytest.mark.parametrize("which", ["reader", "writer"])
def test_remove_after_fd_closed(loop, which):
    add = getattr(loop, "add_" + which)
    remove = getattr(loop, "remove_" + which)
    a, b = socket.socketpair()
    fd = a.fileno()
    add(fd, print)
    a.close()
    try:
        # the registration of the closed fd is forgotten without an error
        assert remove(fd) is True
        assert remove(fd) is False
        loop.run_until_complete(asyncio.sleep(0.001))
    finally:
        b.close()


@pytest.mark.parametrize("which", ["reader", "writer"])
def test_remove_by_socket_object_after_it_was_closed(loop, which):
    # anyio registers the socket object itself and removes it from a future's
    # done-callback after aclose() closed it (fileno() == -1 by then): the
    # selector finds the object it was given by identity.
    add = getattr(loop, "add_" + which)
    remove = getattr(loop, "remove_" + which)
    a, b = socket.socketpair()
    try:
        add(a, print)
        a.close()
        assert a.fileno() == -1
        assert remove(a) is True
        # forgotten now: a closed socket nobody registered is an invalid fd
        with pytest.raises(ValueError, match="Invalid file descriptor: -1"):
            remove(a)
        loop.run_until_complete(asyncio.sleep(0.001))
    finally:
        b.close()


def test_remove_closed_socket_never_registered(loop):
    a, b = socket.socketpair()
    a.close()
    b.close()
    with pytest.raises(ValueError, match="Invalid file descriptor: -1"):
        loop.remove_reader(a)
    with pytest.raises(ValueError, match="Invalid file descriptor: -1"):
        loop.remove_writer(-1)
    # a number no fd can have was never registered
    assert loop.remove_reader(2 ** 31) is False
    assert loop.remove_writer(2 ** 40) is False
    loop.close()
    # a closed loop answers False without looking at the fd
    assert loop.remove_reader(a) is False
    assert loop.remove_writer(-1) is False


def test_reuse_fd_number_after_close(loop):
    # register, close, and re-register a new socket that got the same fd number
    a, b = socket.socketpair()
    fd = a.fileno()
    loop.add_reader(fd, print)
    loop.remove_reader(fd)
    a.close()
    b.close()
    got = []
    c, d = socket.socketpair()
    try:
        loop.add_reader(c, lambda: got.append(c.recv(10)))
        d.send(b"new")
        run_until(loop, lambda: got)
        assert got == [b"new"]
        loop.remove_reader(c)
    finally:
        c.close()
        d.close()


def test_add_reader_on_closed_loop(loop, sockpair):
    a, b = sockpair
    loop.close()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.add_reader(a, print)
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.add_writer(a, print)
    assert loop.remove_reader(a) is False
    assert loop.remove_writer(a) is False


def test_readers_dropped_on_close(loop_factory, sockpair):
    lp = loop_factory()
    a, b = sockpair
    lp.add_reader(a, print)
    lp.close()
    assert lp.remove_reader(a) is False


def test_many_fds(loop):
    pairs = [socket.socketpair() for _ in range(50)]
    got = []
    try:
        for i, (a, b) in enumerate(pairs):
            loop.add_reader(a, lambda a=a, i=i: (got.append(i), a.recv(10)))
        for a, b in reversed(pairs):
            b.send(b"x")
        run_until(loop, lambda: len(got) >= 50)
        assert sorted(got) == list(range(50))
        for a, b in pairs:
            assert loop.remove_reader(a) is True
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def test_reader_wakes_idle_loop(loop, sockpair):
    import threading
    a, b = sockpair
    fut = loop.create_future()

    def on_read():
        loop.remove_reader(a)
        fut.set_result(a.recv(10))

    loop.add_reader(a, on_read)
    th = threading.Timer(0.05, b.send, (b"wake",))
    t0 = time.monotonic()
    th.start()
    guard = loop.call_later(10, lambda: fut.done() or fut.cancel())
    try:
        assert loop.run_until_complete(fut) == b"wake"
    finally:
        th.join()
        guard.cancel()
    assert time.monotonic() - t0 < 2.0


def test_remove_reader_writer_refuse_transport_fd(loop):
    # asyncio's remove_reader/remove_writer check that no transport owns the fd
    a, b = socket.socketpair()
    try:
        async def main():
            tr, _ = await loop.connect_accepted_socket(asyncio.Protocol, a)
            try:
                with pytest.raises(RuntimeError, match="is used by transport"):
                    loop.remove_reader(a.fileno())
                with pytest.raises(RuntimeError, match="is used by transport"):
                    loop.remove_writer(a.fileno())
                with pytest.raises(RuntimeError, match="is used by transport"):
                    loop.add_reader(a.fileno(), print)
            finally:
                tr.close()
                await asyncio.sleep(0)
        loop.run_until_complete(main())
    finally:
        b.close()
