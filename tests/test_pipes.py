"""Pipe transports: connect_read_pipe / connect_write_pipe (unix_events'
_UnixReadPipeTransport / _UnixWritePipeTransport behaviour).

Every test runs on asyncio's loop and on boucle (``loop`` fixture).
"""
import asyncio
import gc
import logging
import os
import socket
import sys
import tempfile
import warnings

import pytest


def run(loop, coro, timeout=30):
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


class ReadProto(asyncio.Protocol):
    def __init__(self, loop):
        self.events = []
        self.data = bytearray()
        self.transport = None
        self.lost = loop.create_future()
        self.got_data = asyncio.Event()

    def connection_made(self, tr):
        self.transport = tr
        self.events.append("made")

    def data_received(self, data):
        assert type(data) is bytes
        if self.events[-1] != "data":
            self.events.append("data")
        self.data += data
        self.got_data.set()

    def eof_received(self):
        self.events.append("eof")
        return True     # ignored by pipes: they close anyway

    def connection_lost(self, exc):
        self.events.append("lost")
        self.lost.set_result(exc)


class WriteProto(asyncio.BaseProtocol):
    def __init__(self, loop):
        self.events = []
        self.lost = loop.create_future()
        self.transport = None

    def connection_made(self, tr):
        self.transport = tr
        self.events.append("made")

    def pause_writing(self):
        self.events.append("pause")

    def resume_writing(self):
        self.events.append("resume")

    def connection_lost(self, exc):
        self.events.append("lost")
        self.lost.set_result(exc)


def pipe_files():
    r, w = os.pipe()
    return open(r, "rb", buffering=0), open(w, "wb", buffering=0)


def test_read_and_write_pipe(loop):
    async def main():
        rf, wf = pipe_files()
        rtr, rp = await loop.connect_read_pipe(lambda: ReadProto(loop), rf)
        wtr, wp = await loop.connect_write_pipe(lambda: WriteProto(loop), wf)
        assert isinstance(rtr, asyncio.ReadTransport)
        assert isinstance(wtr, asyncio.WriteTransport)
        assert rtr.get_extra_info("pipe") is rf
        assert wtr.get_extra_info("pipe") is wf
        assert os.get_blocking(rf.fileno()) is False
        assert os.get_blocking(wf.fileno()) is False
        payload = os.urandom(1_000_000)
        wtr.write(payload[:10])
        wtr.writelines([payload[10:20], bytearray(payload[20:500_000]), memoryview(payload)[500_000:]])
        assert wtr.can_write_eof()
        wtr.write_eof()                 # for pipes: close once flushed
        assert wtr.is_closing()
        assert await wp.lost is None
        assert await rp.lost is None
        assert bytes(rp.data) == payload
        assert rf.closed and wf.closed
        return rp.events, wp.events

    revents, wevents = run(loop, main())
    assert revents == ["made", "data", "eof", "lost"]
    assert wevents == ["made", "pause", "resume", "lost"]


def test_read_pipe_eof_closes_even_if_eof_received_true(loop):
    async def main():
        rf, wf = pipe_files()
        rtr, rp = await loop.connect_read_pipe(lambda: ReadProto(loop), rf)
        wf.write(b"abc")
        wf.close()
        assert await rp.lost is None
        assert rtr.is_closing()
        return rp.events, bytes(rp.data)

    assert run(loop, main()) == (["made", "data", "eof", "lost"], b"abc")


def test_read_pipe_pause_resume(loop_factory):
    loop = loop_factory()
    # asyncio 3.10's read pipe has no is_reading() (NotImplementedError);
    # boucle has it on every version
    has_is_reading = sys.version_info >= (3, 11) or loop_factory.is_boucle

    def is_reading(tr):
        return tr.is_reading() if has_is_reading else None

    async def main():
        rf, wf = pipe_files()
        rtr, rp = await loop.connect_read_pipe(lambda: ReadProto(loop), rf)
        assert is_reading(rtr) in (True, None)
        rtr.pause_reading()
        rtr.pause_reading()
        assert is_reading(rtr) in (False, None)
        wf.write(b"held")
        await asyncio.sleep(0.05)
        assert rp.data == b""
        rtr.resume_reading()
        rtr.resume_reading()
        await rp.got_data.wait()
        assert rp.data == b"held"
        rtr.close()
        assert is_reading(rtr) in (False, None)
        assert await rp.lost is None
        assert rp.events == ["made", "data", "lost"]      # close(): no eof_received
        wf.close()

    run(loop, main())


def test_read_pipe_data_received_error_goes_to_handler(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    class Bad(ReadProto):
        def data_received(self, data):
            super().data_received(data)
            raise ValueError("oops")

    async def main():
        rf, wf = pipe_files()
        rtr, rp = await loop.connect_read_pipe(lambda: Bad(loop), rf)
        wf.write(b"1")
        await rp.got_data.wait()
        rp.got_data.clear()
        await asyncio.sleep(0.01)
        assert not rtr.is_closing()      # not fatal for pipes
        wf.write(b"2")
        await rp.got_data.wait()
        wf.close()
        await rp.lost
        return bytes(rp.data)

    assert run(loop, main()) == b"12"
    assert len(contexts) == 2
    assert all(isinstance(c["exception"], ValueError) for c in contexts)


def test_write_pipe_reader_closed(loop):
    async def main():
        rf, wf = pipe_files()
        wtr, wp = await loop.connect_write_pipe(lambda: WriteProto(loop), wf)
        wtr.write(b"x")
        rf.close()
        exc = await wp.lost
        assert wtr.is_closing()
        return exc

    # nothing buffered: connection_lost(None)
    assert run(loop, main()) is None


def test_write_pipe_reader_closed_with_buffered_data(loop):
    async def main():
        rf, wf = pipe_files()
        wtr, wp = await loop.connect_write_pipe(lambda: WriteProto(loop), wf)
        while wtr.get_write_buffer_size() == 0:
            wtr.write(b"y" * 65536)
        rf.close()
        return await wp.lost, wtr.get_write_buffer_size()

    exc, size = run(loop, main())
    assert isinstance(exc, BrokenPipeError)
    assert size == 0


def test_write_pipe_flow_control_and_close_flushes(loop):
    async def main():
        rf, wf = pipe_files()
        wtr, wp = await loop.connect_write_pipe(lambda: WriteProto(loop), wf)
        rtr, rp = await loop.connect_read_pipe(lambda: ReadProto(loop), rf)
        rtr.pause_reading()
        total = 0
        while "pause" not in wp.events:
            wtr.write(b"z" * 40000)
            total += 40000
        assert wtr.get_write_buffer_size() > 65536
        wtr.close()                  # flushes the buffer first
        assert not wp.lost.done()
        rtr.resume_reading()
        await rp.lost
        assert await wp.lost is None
        return len(rp.data), total, wp.events

    n, total, events = run(loop, main())
    assert n == total
    assert events[:2] == ["made", "pause"]


def test_write_pipe_abort_drops_buffer(loop):
    async def main():
        rf, wf = pipe_files()
        wtr, wp = await loop.connect_write_pipe(lambda: WriteProto(loop), wf)
        while wtr.get_write_buffer_size() == 0:
            wtr.write(b"q" * 65536)
        wtr.abort()
        assert wtr.get_write_buffer_size() == 0
        assert await wp.lost is None
        rf.close()

    run(loop, main())


def test_write_pipe_writes_after_close(loop, caplog):
    async def main():
        rf, wf = pipe_files()
        wtr, wp = await loop.connect_write_pipe(lambda: WriteProto(loop), wf)
        wtr.close()
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            for _ in range(7):
                wtr.write(b"late")
        await wp.lost
        rf.close()

    run(loop, main())
    # (debug mode may add "Executing <...> took N seconds" on a busy machine)
    msgs = [r.getMessage() for r in caplog.records
            if r.name == "asyncio" and not r.getMessage().startswith("Executing ")]
    assert msgs == ["pipe closed by peer or os.write(pipe, data) raised exception."] * 2


def test_write_pipe_type_check(loop):
    async def main():
        rf, wf = pipe_files()
        wtr, wp = await loop.connect_write_pipe(lambda: WriteProto(loop), wf)
        with pytest.raises(AssertionError):
            wtr.write("text")
        wtr.write(b"")
        wtr.close()
        await wp.lost
        rf.close()

    if sys.flags.optimize:
        pytest.skip("asyncio's check is an assert")
    run(loop, main())


def test_pipe_rejects_regular_file(loop):
    async def main():
        with tempfile.TemporaryFile() as f:
            with pytest.raises(ValueError, match=r"Pipe transport is for pipes/sockets only\."):
                await loop.connect_read_pipe(lambda: ReadProto(loop), f)
            with pytest.raises(ValueError, match="Pipe transport is only for pipes, sockets "
                                                 "and character devices"):
                await loop.connect_write_pipe(lambda: WriteProto(loop), f)
            assert not f.closed

    run(loop, main())


def test_pipe_over_socketpair(loop):
    async def main():
        a, b = socket.socketpair()
        rtr, rp = await loop.connect_read_pipe(lambda: ReadProto(loop), a)
        wtr, wp = await loop.connect_write_pipe(lambda: WriteProto(loop), b)
        wtr.write(b"over a socket")
        wtr.close()
        await wp.lost
        assert await rp.lost is None
        return bytes(rp.data)

    assert run(loop, main()) == b"over a socket"


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs os.openpty()")
def test_read_pty(loop):
    async def main():
        master, slave = os.openpty()
        mf = open(master, "rb", buffering=0)
        rtr, rp = await loop.connect_read_pipe(lambda: ReadProto(loop), mf)
        os.write(slave, b"tty data\n")
        while b"tty data" not in rp.data:
            await rp.got_data.wait()
            rp.got_data.clear()
        os.close(slave)
        exc = await rp.lost      # EIO when the slave closes: not reported
        return exc

    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    exc = run(loop, main())
    assert exc is None or (isinstance(exc, OSError) and exc.errno == 5)
    assert contexts == []


def test_pipe_repr(loop):
    async def main():
        rf, wf = pipe_files()
        rtr, rp = await loop.connect_read_pipe(lambda: ReadProto(loop), rf)
        wtr, wp = await loop.connect_write_pipe(lambda: WriteProto(loop), wf)
        rfd, wfd = rf.fileno(), wf.fileno()
        assert repr(rtr).endswith(f" fd={rfd} polling>")
        rtr.pause_reading()
        assert repr(rtr).endswith(f" fd={rfd} idle>")
        assert repr(wtr).endswith(f" fd={wfd} idle bufsize=0>")
        rtr.close()
        wtr.close()
        assert f" closing fd={rfd} " in repr(rtr)
        await rp.lost
        await wp.lost
        assert repr(rtr).endswith(f" closed fd={rfd} closed>")
        assert repr(wtr).endswith(f" closed fd={wfd} closed>")

    run(loop, main())


def test_unclosed_pipe_transport_warns(loop_factory):
    loop = loop_factory()

    async def main():
        rf, wf = pipe_files()
        rtr, rp = await loop.connect_read_pipe(lambda: ReadProto(loop), rf)
        return [rtr, wf]

    objs = run(loop, main())
    rf = objs[0].get_extra_info("pipe")
    loop.close()
    assert "open" in repr(objs[0])
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        objs[1].close()
        del objs
        gc.collect()
    msgs = [str(x.message) for x in w if issubclass(x.category, ResourceWarning)]
    assert any(m.startswith("unclosed transport <") for m in msgs), msgs
    assert rf.closed


def test_streams_over_pipes(loop):
    async def main():
        rf, wf = pipe_files()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), rf)
        wtr, wproto = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, wf)
        writer = asyncio.StreamWriter(wtr, wproto, None, loop)
        lines = [b"line %d\n" % i for i in range(1000)]
        for line in lines:
            writer.write(line)
            await writer.drain()
        writer.close()
        got = [await reader.readline() for _ in lines]
        assert await reader.read() == b""
        return got == lines

    assert run(loop, main())
