"""Write flow control of stream transports: write-buffer limits,
pause_writing()/resume_writing(), StreamWriter.drain() backpressure.

Every test runs on asyncio's loop and on boucle (``loop`` fixture).
"""
import asyncio
import os
import socket

import pytest


def run(loop, coro, timeout=30):
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


class Flow(asyncio.Protocol):
    def __init__(self, loop):
        self.loop = loop
        self.events = []
        self.sizes = []
        self.data = bytearray()
        self.lost = loop.create_future()
        self.transport = None

    def connection_made(self, tr):
        self.transport = tr

    def data_received(self, data):
        self.data += data

    def pause_writing(self):
        self.events.append("pause")
        self.sizes.append(self.transport.get_write_buffer_size())

    def resume_writing(self):
        self.events.append("resume")
        self.sizes.append(self.transport.get_write_buffer_size())

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(exc)


async def pair(loop, client_factory=None):
    made = loop.create_future()

    def factory():
        p = Flow(loop)
        made.set_result(p)
        return p

    server = await loop.create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    tr, pr = await loop.create_connection(client_factory or (lambda: Flow(loop)), "127.0.0.1", port)
    sp = await made
    while sp.transport is None:
        await asyncio.sleep(0)
    server.close()
    return tr, pr, sp


async def finish(tr, pr, sp):
    tr.abort()
    sp.transport.abort()
    await pr.lost
    await sp.lost


def test_default_limits(loop):
    async def main():
        tr, pr, sp = await pair(loop)
        assert tr.get_write_buffer_limits() == (16384, 65536)
        tr.set_write_buffer_limits(high=1000)
        assert tr.get_write_buffer_limits() == (250, 1000)
        tr.set_write_buffer_limits(low=100)
        assert tr.get_write_buffer_limits() == (100, 400)
        tr.set_write_buffer_limits(high=10, low=10)
        assert tr.get_write_buffer_limits() == (10, 10)
        tr.set_write_buffer_limits(0)
        assert tr.get_write_buffer_limits() == (0, 0)
        tr.set_write_buffer_limits()
        assert tr.get_write_buffer_limits() == (16384, 65536)
        with pytest.raises(ValueError, match=r"high \(1\) must be >= low \(2\) must be >= 0"):
            tr.set_write_buffer_limits(high=1, low=2)
        with pytest.raises(ValueError, match=r"high \(-4\) must be >= low \(-1\) must be >= 0"):
            tr.set_write_buffer_limits(low=-1)
        assert tr.get_write_buffer_limits() == (16384, 65536)
        await finish(tr, pr, sp)

    run(loop, main())


def test_pause_and_resume_writing(loop):
    async def main():
        tr, pr, sp = await pair(loop)
        sp.transport.pause_reading()
        chunk = b"x" * 65536
        # fill the kernel buffers and ours until the protocol is paused
        while "pause" not in pr.events:
            tr.write(chunk)
            assert len(pr.events) <= 1
        assert pr.events == ["pause"]
        assert pr.sizes[0] > 65536
        assert tr.get_write_buffer_size() > 65536
        assert tr._protocol_paused is True   # sendfile's fallback reads it
        # more writes: no second pause
        tr.write(chunk)
        assert pr.events == ["pause"]
        sp.transport.resume_reading()
        while "resume" not in pr.events:
            await asyncio.sleep(0.001)
        assert pr.events == ["pause", "resume"]
        assert pr.sizes[1] <= 16384
        while tr.get_write_buffer_size():
            await asyncio.sleep(0.001)
        await finish(tr, pr, sp)

    run(loop, main())


def test_set_limits_pauses_at_once(loop):
    async def main():
        tr, pr, sp = await pair(loop)
        sp.transport.pause_reading()
        while tr.get_write_buffer_size() == 0:
            tr.write(b"y" * 100_000)
        tr.set_write_buffer_limits(high=65536 * 1024)
        n = tr.get_write_buffer_size()
        if "pause" in pr.events:
            # raising the limit does not resume by itself
            assert pr.events == ["pause"]
        else:
            tr.set_write_buffer_limits(high=n - 1)
            assert pr.events == ["pause"]
        await finish(tr, pr, sp)

    run(loop, main())


def test_zero_limits_pause_on_any_buffered_byte(loop):
    async def main():
        tr, pr, sp = await pair(loop)
        tr.set_write_buffer_limits(0)
        tr.write(b"small")              # sent at once: nothing buffered
        assert pr.events == []
        sp.transport.pause_reading()
        while not pr.events:
            tr.write(b"z" * 65536)
        assert pr.events == ["pause"]
        sp.transport.resume_reading()
        while pr.events == ["pause"]:
            await asyncio.sleep(0.001)
        assert pr.events == ["pause", "resume"]
        assert pr.sizes[-1] == 0
        await finish(tr, pr, sp)

    run(loop, main())


@pytest.mark.parametrize("hook", ["pause_writing", "resume_writing"])
def test_flow_hooks_errors_go_to_handler(loop, hook):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    class Bad(Flow):
        def pause_writing(self):
            super().pause_writing()
            if hook == "pause_writing":
                raise ValueError("pause failed")

        def resume_writing(self):
            super().resume_writing()
            if hook == "resume_writing":
                raise ValueError("resume failed")

    async def main():
        tr, pr, sp = await pair(loop, lambda: Bad(loop))
        sp.transport.pause_reading()
        while not pr.events:
            tr.write(b"w" * 65536)
        sp.transport.resume_reading()
        while len(pr.events) < 2:
            await asyncio.sleep(0.001)
        assert not tr.is_closing()      # not fatal
        await finish(tr, pr, sp)

    run(loop, main())
    assert len(contexts) == 1
    ctx = contexts[0]
    assert ctx["message"] == f"protocol.{hook}() failed"
    assert isinstance(ctx["exception"], ValueError)
    assert ctx["protocol"] is not None and ctx["transport"] is not None


def test_drain_waits_for_peer(loop):
    async def main():
        reading = asyncio.Event()
        received = bytearray()

        async def handle(r, w):
            await reading.wait()
            while data := await r.read(1 << 20):
                received.extend(data)
            w.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        payload = os.urandom(1024 * 1024) * 48   # more than the kernel buffers take
        w.write(payload)
        drain = asyncio.ensure_future(w.drain())
        await asyncio.sleep(0.05)
        assert not drain.done()                 # buffer above the high mark
        assert w.transport.get_write_buffer_size() > 0
        reading.set()
        await drain
        assert w.transport.get_write_buffer_size() <= 65536
        w.close()
        await w.wait_closed()
        while len(received) < len(payload):
            await asyncio.sleep(0.01)
        server.close()
        await server.wait_closed()
        return bytes(received) == payload

    assert run(loop, main())


def test_resume_writing_not_called_after_abort(loop):
    async def main():
        tr, pr, sp = await pair(loop)
        sp.transport.pause_reading()
        while not pr.events:
            tr.write(b"a" * 65536)
        tr.abort()
        assert tr.get_write_buffer_size() == 0
        await pr.lost
        sp.transport.abort()
        await sp.lost
        return pr.events

    assert run(loop, main()) == ["pause"]


def test_write_pipe_flow_control(loop):
    async def main():
        rfd, wfd = os.pipe()
        rpipe = open(rfd, "rb", buffering=0)
        wpipe = open(wfd, "wb", buffering=0)
        tr, pr = await loop.connect_write_pipe(lambda: Flow(loop), wpipe)
        assert tr.get_write_buffer_limits() == (16384, 65536)
        while not pr.events:
            tr.write(b"p" * 65536)
        assert pr.events == ["pause"]
        # drain the pipe from a thread-free reader: non-blocking reads
        os.set_blocking(rfd, False)
        while "resume" not in pr.events:
            try:
                rpipe.read(1 << 20)
            except BlockingIOError:
                pass
            await asyncio.sleep(0.001)
        assert pr.events == ["pause", "resume"]
        assert pr.sizes[-1] == 0    # pipes resume only once the buffer is empty
        tr.close()
        await pr.lost
        rpipe.close()

    run(loop, main())


def test_unix_socketpair_backpressure(loop):
    async def main():
        a, b = socket.socketpair()
        tr_a, pa = await loop.connect_accepted_socket(lambda: Flow(loop), a)
        tr_b, pb = await loop.connect_accepted_socket(lambda: Flow(loop), b)
        tr_b.pause_reading()
        tr_a.set_write_buffer_limits(high=100_000)
        while not pa.events:
            tr_a.write(b"u" * 32768)
        assert pa.events == ["pause"]
        assert pa.sizes[0] > 100_000
        tr_b.resume_reading()
        while "resume" not in pa.events:
            await asyncio.sleep(0.001)
        assert pa.sizes[1] <= 25_000
        tr_a.close()
        await pa.lost
        await pb.lost

    run(loop, main())
