"""anyio, pytest-asyncio and unittest.IsolatedAsyncioTestCase running on boucle."""
import asyncio
import socket
import sys
import threading
import unittest

import pytest

from .integration_helpers import boucle, need

# --------------------------------------------------------------------- anyio

BOUCLE_BACKEND = ("asyncio", {"loop_factory": boucle.new_event_loop})


def anyio_run(fn, *args):
    anyio = need("anyio")
    try:
        return anyio.run(fn, *args, backend="asyncio",
                         backend_options={"loop_factory": boucle.new_event_loop})
    except TypeError as exc:  # anyio < 4: no loop_factory
        pytest.skip("this anyio has no loop_factory backend option (%s)" % exc)


def test_anyio_run_with_loop_factory():
    anyio = need("anyio")

    async def main():
        assert type(asyncio.get_running_loop()) is boucle.Loop
        results = []

        async def child(i):
            await anyio.sleep(0.01 * (5 - i))
            results.append(i)
        async with anyio.create_task_group() as tg:
            for i in range(5):
                tg.start_soon(child, i)
        assert sorted(results) == [0, 1, 2, 3, 4]
        with anyio.move_on_after(0.05) as scope:
            await anyio.sleep(10)
        assert scope.cancelled_caught
        tid = await anyio.to_thread.run_sync(threading.get_ident)
        assert tid != threading.get_ident()
        send, recv = anyio.create_memory_object_stream(10)
        async with send, recv:
            await send.send("x")
            assert await recv.receive() == "x"
        return "done"
    assert anyio_run(main) == "done"


def test_anyio_tcp_echo():
    anyio = need("anyio")

    async def main():
        assert type(asyncio.get_running_loop()) is boucle.Loop
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)

        async def handle(stream):
            async with stream:
                async for chunk in stream:
                    await stream.send(chunk.upper())

        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, handle)
            streams = [await anyio.connect_tcp("127.0.0.1", port) for _ in range(10)]
            for i, s in enumerate(streams):
                await s.send(b"hello %d" % i)
            for i, s in enumerate(streams):
                buf = b""
                with anyio.fail_after(5):
                    while len(buf) < len(b"HELLO %d" % i):
                        buf += await s.receive()
                assert buf == b"HELLO %d" % i
                await s.aclose()
            tg.cancel_scope.cancel()
        await listener.aclose()
    anyio_run(main)


# anyio's own pytest plugin, parametrized to the boucle backend.
try:
    import anyio as _anyio
except ImportError:
    _anyio = None


@pytest.fixture
def anyio_backend():
    return BOUCLE_BACKEND


if _anyio is not None:
    @pytest.mark.anyio
    async def test_anyio_pytest_plugin():
        anyio = _anyio
        assert type(asyncio.get_running_loop()) is boucle.Loop
        event = anyio.Event()

        async def setter():
            await anyio.sleep(0.01)
            event.set()
        async with anyio.create_task_group() as tg:
            tg.start_soon(setter)
            with anyio.fail_after(5):
                await event.wait()
        assert event.is_set()


else:
    def test_anyio_pytest_plugin():
        need("anyio")


# ------------------------------------------------------------ pytest-asyncio

try:
    import pytest_asyncio
    from pytest_asyncio import plugin as _pa_plugin
    HAS_LOOP_FACTORY_HOOK = hasattr(getattr(_pa_plugin, "PytestAsyncioSpecs", None),
                                    "pytest_asyncio_loop_factories")
except ImportError:
    pytest_asyncio = None
    HAS_LOOP_FACTORY_HOOK = False

if not HAS_LOOP_FACTORY_HOOK:
    # Older pytest-asyncio (0.23 .. 1.3): loops come from this policy.  Newer
    # versions use the pytest_asyncio_loop_factories hook in conftest.py.
    @pytest.fixture(scope="session")
    def event_loop_policy():
        return boucle.EventLoopPolicy()


if pytest_asyncio is not None:
    @pytest_asyncio.fixture
    async def echo_server():
        async def handle(r, w):
            w.write(await r.read(100))
            await w.drain()
            w.close()
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        yield server.sockets[0].getsockname()[1], asyncio.get_running_loop()
        server.close()
        await server.wait_closed()

    @pytest.mark.asyncio
    async def test_pytest_asyncio_runs_on_boucle(echo_server):
        port, fixture_loop = echo_server
        loop = asyncio.get_running_loop()
        assert type(loop) is boucle.Loop
        assert fixture_loop is loop
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"ping")
        w.write_eof()
        assert await asyncio.wait_for(r.read(), 5) == b"ping"
        w.close()
        await w.wait_closed()

    @pytest.mark.asyncio
    async def test_pytest_asyncio_timeouts_and_tasks():
        assert type(asyncio.get_running_loop()) is boucle.Loop
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.sleep(10), 0.02)
        assert await asyncio.gather(*(asyncio.sleep(0.01, result=i) for i in range(10))) == list(range(10))
else:
    def test_pytest_asyncio_runs_on_boucle():
        need("pytest_asyncio")


# ------------------------------------------------- IsolatedAsyncioTestCase

class BoucleTestCase(unittest.IsolatedAsyncioTestCase):
    """3.13+: the loop_factory attribute; before: boucle's policy for the class.

    boucle.new_event_loop is a plain function, so as a class attribute it must
    be wrapped in staticmethod() (else it is bound as a method); the class
    boucle.Loop can be used as is, like asyncio.EventLoop.
    """
    loop_factory = staticmethod(boucle.new_event_loop)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if sys.version_info < (3, 13):
            cls._old_policy = asyncio.get_event_loop_policy()
            asyncio.set_event_loop_policy(boucle.EventLoopPolicy())

    @classmethod
    def tearDownClass(cls):
        if sys.version_info < (3, 13):
            asyncio.set_event_loop_policy(cls._old_policy)
        super().tearDownClass()

    async def asyncSetUp(self):
        self.loop = asyncio.get_running_loop()
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def handle(self, r, w):
        w.write((await r.readline()).upper())
        await w.drain()
        w.close()

    async def asyncTearDown(self):
        self.server.close()
        await self.server.wait_closed()

    async def test_runs_on_boucle(self):
        self.assertIs(type(asyncio.get_running_loop()), boucle.Loop)
        self.assertIs(asyncio.get_running_loop(), self.loop)

    async def test_socket_roundtrip(self):
        r, w = await asyncio.open_connection("127.0.0.1", self.port)
        w.write(b"abc\n")
        self.assertEqual(await asyncio.wait_for(r.readline(), 5), b"ABC\n")
        w.close()
        await w.wait_closed()

    async def test_cleanup_callbacks(self):
        fut = self.loop.create_future()
        self.addAsyncCleanup(self._resolve, fut)
        self.loop.call_later(0.01, fut.set_result, 1)
        self.assertEqual(await fut, 1)

    async def _resolve(self, fut):
        self.assertTrue(fut.done())


class BoucleLoopClassTestCase(unittest.IsolatedAsyncioTestCase):
    """loop_factory = boucle.Loop (3.13+; skipped before, where it is ignored)."""
    loop_factory = boucle.Loop

    @unittest.skipIf(sys.version_info < (3, 13), "loop_factory attribute is 3.13+")
    async def test_runs_on_boucle(self):
        self.assertIs(type(asyncio.get_running_loop()), boucle.Loop)
        await asyncio.sleep(0.01)
