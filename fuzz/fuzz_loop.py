#!/usr/bin/env python3
"""Fuzz boucle's loop and transports with random operation sequences.

Each input (bytes) is decoded into a *plan*: which endpoints exist (a stream
transport over a Unix or TCP socket pair, driven through a Protocol, a
BufferedProtocol or asyncio streams; a datagram transport; a socket used with
the loop's sock_* operations) and a list of operations on the loop, on those
transports and on their raw peers.  The plan is then run on a fresh loop and
the invariants a user relies on are checked (see fuzz/README.md and the
``Checker`` class).  Any violation raises ``Violation``; a hang is caught by
a loop-time deadline and, as a backstop, by faulthandler's watchdog, which
dumps every thread's stack and exits the process.

Modes:
  python fuzz/fuzz_loop.py --iterations N --seed S   random inputs, no atheris
  python fuzz/fuzz_loop.py --replay FILE...          re-run saved inputs
  python fuzz/fuzz_loop.py --atheris [libFuzzer args] coverage-guided (atheris)
Add --diff to run each plan on asyncio's own loop too and compare the
deterministic part of what was observed.

The decoding is this file's own (``Input``), not atheris.FuzzedDataProvider,
so that an input replays identically with or without atheris installed.
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")


def _import_boucle():
    try:
        import boucle
    except ImportError:          # not installed: the source tree's build
        sys.path.insert(0, SRC)
        import boucle
    return boucle


if "--atheris" in sys.argv:
    # Coverage feedback from the Python side: asyncio (whose code runs on
    # top of boucle's C core: streams, tasks, base_events) and boucle's
    # Python layer.  The C side is checked by the sanitizers, not measured.
    import atheris
    with atheris.instrument_imports(include=["asyncio", "boucle"]):
        import asyncio
        boucle = _import_boucle()

import asyncio  # noqa: E402
import faulthandler  # noqa: E402
import gc  # noqa: E402
import logging  # noqa: E402
import random  # noqa: E402
import socket  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

boucle = _import_boucle()

PY = sys.version_info[:2]
# asyncio logs (at WARNING) writes to lost connections and the like: expected.
logging.getLogger("asyncio").setLevel(logging.CRITICAL)
MAX_OPS = 48
# One input's loop-time budget; a correct run of the longest plan takes well
# under a second, so reaching this means something waited for ever.
DEADLINE = 8.0
# Hard backstop: the whole input, on both loops, wall-clock.
WATCHDOG = 60.0

# Every byte stream is this pattern: byte i of a direction is i % 251, so a
# receiver checks order and integrity from its own byte count alone.
_PERIOD = 251
PATTERN = bytes(range(_PERIOD)) * ((4 << 20) // _PERIOD + 2)
MAX_WRITE = (4 << 20) - 2 * _PERIOD


def pattern(offset, n):
    o = offset % _PERIOD
    return PATTERN[o:o + n]


class FuzzError(Exception):
    """Raised on purpose by a protocol callback."""


class Violation(AssertionError):
    """An invariant does not hold: a bug in the loop (or in this harness)."""


# ---------------------------------------------------------------------------
# Input decoding


class Input:
    """Deterministic decoder of fuzzer bytes; reads zeros once exhausted."""

    def __init__(self, data):
        self.data = data
        self.pos = 0

    def left(self):
        return len(self.data) - self.pos

    def byte(self):
        if self.pos >= len(self.data):
            return 0
        b = self.data[self.pos]
        self.pos += 1
        return b

    def int(self, lo, hi):
        """An int in [lo, hi], using as few bytes as the range needs."""
        span = hi - lo
        if span <= 0:
            return lo
        v = 0
        bits = 0
        while (1 << bits) <= span:
            v = (v << 8) | self.byte()
            bits += 8
        return lo + v % (span + 1)

    def bool(self):
        return self.byte() & 1 == 1

    def pick(self, seq):
        return seq[self.int(0, len(seq) - 1)]


def write_size(inp):
    """Sizes that matter to a transport: empty, tiny, around a socket
    buffer, beyond it."""
    k = inp.int(0, 15)
    if k == 0:
        return 0
    if k < 6:
        return inp.int(1, 64)
    if k < 10:
        return inp.int(65, 8192)
    if k < 14:
        return inp.int(8193, 300_000)
    return inp.int(300_001, 2_500_000)


# Operation names, grouped by the endpoint they need.
LOOP_OPS = ["soon", "later", "at_past", "cancel", "task", "task_cancel",
            "threadsafe", "yield", "sleep"]
# Operations that end a direction or the connection are listed once; the
# others five times, so that most plans move data before they end it.
_STREAM_TERMINAL = ["write_eof", "close", "abort", "p_shut_wr", "p_rst", "p_close"]
STREAM_OPS = _STREAM_TERMINAL + 5 * [
    "write", "write", "writelines", "pause_reading", "resume_reading",
    "limits", "query", "set_protocol", "p_read", "p_read_on", "p_read_off",
    "p_send", "p_send", "s_read", "s_drain"]
DGRAM_OPS = ["d_send", "d_send", "d_peer_send", "d_peer_read", "d_pause",
             "d_resume", "d_close", "d_abort", "d_query"]
SOCK_OPS = ["k_sendall", "k_recv", "k_recv_into", "k_cancel_send",
            "k_cancel_recv", "k_peer_send", "k_peer_read"]


def decode(data):
    """bytes -> plan (a dict of plain data; the run never reads the input)."""
    inp = Input(data)
    plan = {}
    hdr = inp.byte()
    plan["stream"] = ("none", "unix", "tcp", "tcp_connect")[hdr & 3]
    plan["proto"] = ("protocol", "buffered", "streams", "protocol")[(hdr >> 2) & 3]
    plan["dgram"] = ("none", "unix", "udp", "none")[(hdr >> 4) & 3]
    plan["sock"] = bool(hdr & 0x40)
    if hdr & 0x80 and plan["stream"] != "none":
        # Pipe transports instead (the stream machinery's other users):
        # connect_write_pipe on os.pipe() or on a socket, connect_read_pipe
        # on os.pipe().  The peer is the raw other end.
        plan["stream"] = {"unix": "pipe_w", "tcp": "pipe_r",
                          "tcp_connect": "pipe_w_sock"}[plan["stream"]]
        plan["proto"] = "protocol"
    flags = inp.byte()
    plan["eof_keep_open"] = bool(flags & 1)
    plan["pause_in_made"] = bool(flags & 2)
    plan["echo"] = bool(flags & 4)          # protocol writes back what it gets
    plan["close_in_pause"] = bool(flags & 8)  # close() from pause_writing
    plan["end"] = ("close", "abort", "write_eof", "close")[(flags >> 4) & 3]
    plan["small_bufs"] = bool(flags & 0x40)  # tiny SO_SNDBUF/SO_RCVBUF
    plan["get_buffer"] = inp.pick([1, 7, 100, 4096, 65536, 262144])
    # Re-entrant protocol behaviour, from inside the transport's own calls:
    # once the protocol has received react_at bytes, ...
    react = inp.byte()
    plan["react_at"] = inp.int(1, 200_000)
    plan["abort_in_data"] = bool(react & 1)       # ... abort()
    plan["close_in_data"] = bool(react & 2)       # ... close()
    plan["pause_in_data"] = bool(react & 4)       # ... pause, resume soon
    plan["raise_in_data"] = bool(react & 8)       # ... raise (fatal error)
    plan["empty_buffer"] = bool(react & 16)       # ... get_buffer() -> b""
    plan["write_in_resume"] = bool(react & 32)    # resume_writing() writes
    plan["pause_in_made"] = plan["pause_in_made"] and bool(react & 64)
    plan["end_in_made"] = bool(flags & 0x80) and plan["react_at"] < 20000
    if inp.bool():
        low = inp.int(0, 20000)
        plan["limits"] = (low + inp.int(0, 70000), low)     # (high, low)
    else:
        plan["limits"] = None
    ops = []
    groups = list(LOOP_OPS)
    if plan["stream"] != "none":
        groups += STREAM_OPS
    if plan["dgram"] != "none":
        groups += DGRAM_OPS
    if plan["sock"]:
        groups += SOCK_OPS
    while inp.left() > 0 and len(ops) < MAX_OPS:
        name = inp.pick(groups)
        if name in ("write", "p_send", "k_sendall", "k_peer_send"):
            arg = (write_size(inp), inp.int(0, 3))      # size, buffer type
        elif name == "writelines":
            arg = [write_size(inp) for _ in range(inp.int(0, 5))]
        elif name in ("later", "sleep", "task"):
            arg = inp.int(0, 25)                         # milliseconds
        elif name in ("cancel", "task_cancel", "yield"):
            arg = inp.int(0, 7)
        elif name == "limits":
            arg = (inp.int(-2, 70000) if inp.byte() else None,
                   inp.int(-2, 20000) if inp.byte() else None)
        elif name in ("p_read", "k_recv", "k_recv_into", "k_peer_read", "s_read"):
            arg = inp.pick([1, 100, 4096, 65536, 1 << 20])
        elif name in ("d_send", "d_peer_send"):
            k = inp.int(0, 9)
            arg = 0 if k == 0 else (inp.int(1, 2048) if k < 9 else inp.int(2049, 300_000))
        else:
            arg = None
        # What the loop may do before the next operation: nothing (several
        # operations in one callback), one iteration, three, or 1 ms.
        ops.append((name, arg, inp.int(0, 3)))
    plan["ops"] = ops
    return plan


# ---------------------------------------------------------------------------
# Bookkeeping shared by the endpoints


class Checker:
    def __init__(self):
        self.violations = []
        self.trace = []     # deterministic observations, compared by --diff

    def fail(self, msg):
        self.violations.append(msg)

    def note(self, *item):
        self.trace.append(item)


class StreamIn:
    """Checks a byte stream against PATTERN as it arrives."""

    def __init__(self, chk, name):
        self.chk = chk
        self.name = name
        self.n = 0
        self.tainted = False   # content no longer known: count only

    def feed(self, data):
        n = len(data)
        if n and not self.tainted and data != pattern(self.n, n):
            self.chk.fail("%s: bytes %d..%d are not the ones written (order or integrity)"
                          % (self.name, self.n, self.n + n))
        self.n += n


def make_buffer(n, offset, kind):
    data = pattern(offset, n)
    if kind == 1:
        return bytearray(data)
    if kind == 2:
        return memoryview(data)
    return data


# ---------------------------------------------------------------------------
# Stream side


class Recorder:
    """Protocol callbacks, with the life-cycle checks every protocol can rely on."""

    def _init(self, run):
        self.run = run
        self.chk = run.chk
        self.transport = None
        self.made = False
        self.lost = False
        self.lost_exc = None
        self.eof = False
        self.paused_writing = False
        self.lost_fut = run.loop.create_future()
        self.incoming = StreamIn(self.chk, "peer->transport")
        self.reacted = False

    def _alive(self, what):
        if not self.made:
            self.chk.fail("%s before connection_made" % what)
        if self.lost:
            self.chk.fail("%s after connection_lost" % what)

    def connection_made(self, transport):
        if self.made:
            self.chk.fail("connection_made twice")
        self.made = True
        self.transport = transport
        run = self.run
        # (asyncio < 3.11.3 adds the reader after connection_made, undoing a
        # pause made there: under --diff that would differ by design)
        if run.plan["pause_in_made"] and run.can_read and not (DIFF_MODE and PY < (3, 12)):
            transport.pause_reading()
            run.reading_paused = True
        if run.plan["end_in_made"] and not run.is_pipe:
            # (not for pipes: in debug mode asyncio's connect_*_pipe logs
            # pipe.fileno() after connection_made, and that raises on a
            # pipe closed there, on asyncio's own loop too)
            # Close or abort from connection_made, before the caller of
            # create_connection() even has the transport.
            run.tr = transport
            if run.plan["react_at"] & 1:
                run.do_abort()
            else:
                run.do_close()

    def connection_lost(self, exc):
        self._alive("connection_lost")
        if self.run.committed is None:
            self.run.committed = self.run.written
        self.lost = True
        self.lost_exc = exc
        if not self.lost_fut.done():
            self.lost_fut.set_result(None)

    def _got(self, data):
        self._alive("data_received")
        if self.eof:
            self.chk.fail("data_received after eof_received")
        if self.run.reading_paused and self.run.writer is None:
            # (a StreamReader resumes reading by itself: harness pauses
            # say nothing there)
            self.chk.fail("data_received while reading is paused")
        if self.run.closed_locally:
            self.chk.fail("data_received after close()/abort()")
        self.incoming.feed(data)
        run, plan = self.run, self.run.plan
        if plan["echo"] and not run.write_stopped():
            run.do_write(len(data) % 5000, 0)
        if self.incoming.n >= plan["react_at"] and not self.reacted:
            self.reacted = True
            if plan["pause_in_data"] and run.writer is None:
                self.transport.pause_reading()
                run.reading_paused = True
                run.loop.call_soon(self._resume_soon)
            if plan["raise_in_data"] and not run.closed_locally:
                # The transport reports it (fatal error) and closes.
                run.expect_fuzz_error = True
                raise FuzzError("raised by data_received")
            if plan["close_in_data"]:
                run.do_close()
            if plan["abort_in_data"] and not run.aborted:
                run.do_abort()

    def _resume_soon(self):
        if not self.lost and not self.run.closed_locally:
            self.transport.resume_reading()
            self.run.reading_paused = False

    def eof_received(self):
        self._alive("eof_received")
        if self.eof and not self.run.resumed_since_eof and self.run.writer is None:
            # (asyncio calls it again when resume_reading() re-arms a
            # half-closed transport kept open: both loops do that; a
            # StreamReader resumes reading by itself)
            self.chk.fail("eof_received twice")
        self.run.resumed_since_eof = False
        self.eof = True
        keep = self.run.plan["eof_keep_open"]
        if not keep and self.run.committed is None:
            self.run.committed = self.run.written   # the transport closes itself
        return keep

    def pause_writing(self):
        self._alive("pause_writing")
        if self.paused_writing:
            self.chk.fail("pause_writing twice without resume_writing")
        self.paused_writing = True
        if self.run.plan["close_in_pause"]:
            self.run.do_close()

    def resume_writing(self):
        self._alive("resume_writing")
        if not self.paused_writing:
            self.chk.fail("resume_writing without pause_writing")
        self.paused_writing = False
        if self.run.plan["write_in_resume"] and not self.run.write_stopped():
            self.run.do_write(self.run.plan["react_at"] % 70000, 0)


class RecProtocol(Recorder, asyncio.Protocol):
    def __init__(self, run):
        self._init(run)

    def data_received(self, data):
        if not isinstance(data, bytes):
            self.chk.fail("data_received got %s" % type(data).__name__)
        self._got(bytes(data))


class RecBuffered(Recorder, asyncio.BufferedProtocol):
    def __init__(self, run):
        self._init(run)
        self.buf = bytearray(run.plan["get_buffer"])
        self.lent = False

    def get_buffer(self, sizehint):
        self._alive("get_buffer")
        self.lent = True
        plan = self.run.plan
        if plan["empty_buffer"] and self.incoming.n >= plan["react_at"] and not self.run.closed_locally:
            self.run.expect_fuzz_error = True    # "get_buffer() returned an empty buffer"
            self.lent = False
            return bytearray()
        return self.buf

    def buffer_updated(self, nbytes):
        if not self.lent:
            self.chk.fail("buffer_updated without get_buffer")
        self.lent = False
        if not 0 < nbytes <= len(self.buf):
            self.chk.fail("buffer_updated(%d) with a %d-byte buffer" % (nbytes, len(self.buf)))
        self._got(bytes(self.buf[:nbytes]))


class RecStreams(Recorder, asyncio.StreamReaderProtocol):
    def __init__(self, run):
        self._init(run)
        self.reader = asyncio.StreamReader(limit=64 * 1024, loop=run.loop)
        asyncio.StreamReaderProtocol.__init__(self, self.reader, loop=run.loop)
        self.app_in = StreamIn(self.chk, "peer->StreamReader.read")

    def connection_made(self, transport):
        Recorder.connection_made(self, transport)
        asyncio.StreamReaderProtocol.connection_made(self, transport)

    def connection_lost(self, exc):
        Recorder.connection_lost(self, exc)
        asyncio.StreamReaderProtocol.connection_lost(self, exc)

    def data_received(self, data):
        # The StreamReader pauses/resumes reading by itself: the "no data
        # while paused" check only holds for the harness's own pauses.
        self._got(bytes(data))
        asyncio.StreamReaderProtocol.data_received(self, data)

    def eof_received(self):
        Recorder.eof_received(self)
        return asyncio.StreamReaderProtocol.eof_received(self)

    # The stream's own flow-control state first: the Recorder part may write
    # (write_in_resume), and the transport may then call pause_writing()
    # from inside this resume_writing().
    def pause_writing(self):
        asyncio.StreamReaderProtocol.pause_writing(self)
        Recorder.pause_writing(self)

    def resume_writing(self):
        asyncio.StreamReaderProtocol.resume_writing(self)
        Recorder.resume_writing(self)


class Peer:
    """The raw socket at the other end, driven by the plan."""

    def __init__(self, run, sock, name, incoming_name):
        self.run = run
        self.loop = run.loop
        self.sock = sock
        self.name = name
        sock.setblocking(False)
        self.incoming = StreamIn(run.chk, incoming_name)
        self.sent = 0
        self.eof = False
        self.error = None
        self.reading = False
        self.closed = False
        self.shut_wr = False
        self.rst = False
        self.can_read = True
        self.can_send = True

    def read_some(self, n):
        if self.closed or self.eof or self.error or not self.can_read:
            return
        try:
            data = self.sock.recv(n)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.error = exc
            self.stop_reading()
            return
        if not data:
            self.eof = True
            self.stop_reading()
            return
        self.incoming.feed(data)

    def _readable(self):
        for _ in range(64):
            before = self.incoming.n
            self.read_some(256 * 1024)
            if self.incoming.n == before:
                return

    def start_reading(self):
        if not (self.reading or self.closed or self.eof or self.error or not self.can_read):
            self.loop.add_reader(self.sock.fileno(), self._readable)
            self.reading = True

    def stop_reading(self):
        if self.reading:
            self.reading = False
            self.loop.remove_reader(self.sock.fileno())

    def send(self, n, kind):
        if self.closed or self.shut_wr or n == 0 or not self.can_send:
            return
        try:
            k = self.sock.send(make_buffer(n, self.sent, kind))
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.error = self.error or exc
            return
        self.sent += k

    def shutdown_wr(self):
        if isinstance(self.sock, PipeEnd):
            if self.can_send:
                self.close()        # a pipe's writer half-closes by closing
            return
        if not (self.closed or self.shut_wr):
            self.shut_wr = True
            try:
                self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def close(self, rst=False):
        if self.closed:
            return
        self.stop_reading()
        if rst and self.sock.family == socket.AF_INET:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
            self.rst = True
        self.closed = True
        self.sock.close()


_ABSTRACT = 0


class PipeEnd:
    """The raw end of an os.pipe(), with the socket methods Peer uses."""
    family = None

    def __init__(self, fd):
        self.fd = fd

    def fileno(self):
        return self.fd

    def setblocking(self, flag):
        os.set_blocking(self.fd, flag)

    def recv(self, n):
        return os.read(self.fd, n)

    def send(self, data):
        return os.write(self.fd, data)

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def socketpair_tcp():
    with socket.socket() as lsn:
        lsn.bind(("127.0.0.1", 0))
        lsn.listen(1)
        a = socket.create_connection(lsn.getsockname())
        b, _ = lsn.accept()
    return a, b


class Run:
    """One plan on one loop."""

    def __init__(self, loop, plan):
        self.loop = loop
        self.plan = plan
        self.chk = Checker()
        self.socks = []
        # loop-level bookkeeping
        self.soon_seq = 0
        self.soon_ran = []
        self.handles = []         # (handle, kind, when, ran-list)
        self.timer_fired = []     # whens of call_later timers, in firing order
        self.tasks = []
        self.threads = []
        # stream
        self.proto = None
        self.tr = None
        self.peer = None
        self.written = 0          # bytes accepted by write()/writelines()
        self.committed = None     # written when close()/write_eof() was called
        self.eof_written = False
        self.closed_locally = False
        self.aborted = False
        self.aborted_open = False   # abort() on a transport not yet closing
        self.reading_paused = False
        self.resumed_since_eof = False
        self.expect_fuzz_error = False   # a callback failed on purpose
        self.is_pipe = False
        self.can_write = True            # (False: a read pipe)
        self.can_read = True             # (False: a write pipe)
        self.writer = None
        self.read_task = None
        # datagram
        self.dproto = None
        self.dtr = None
        self.dpeer = None
        self.d_sent = []
        self.d_peer_sent = []
        self.d_peer_got = []
        self.d_closed = False
        # sock_*
        self.ksock = None
        self.kpeer = None
        self.k_sent = 0
        self.k_send_task = None
        self.k_recv_task = None
        self.k_in = None
        self.k_tainted_out = False
        self.k_tainted_in = False

    # -- helpers --------------------------------------------------------

    def write_stopped(self):
        return (self.tr is None or self.eof_written or self.closed_locally
                or not self.can_write)

    def do_write(self, n, kind):
        tr = self.tr
        if DIFF_MODE and self.closed_locally:
            # asyncio 3.12's write() after a close() whose buffer drained
            # hits self._loop = None (AttributeError): nothing to compare.
            return
        self._closing_by_itself()
        try:
            if self.writer is not None:
                self.writer.write(make_buffer(n, self.written, kind))
            else:
                tr.write(make_buffer(n, self.written, kind))
        except RuntimeError as exc:
            self.chk.note("write", type(exc).__name__)
            if not self.eof_written:
                self.chk.fail("write() raised %r before write_eof()" % exc)
            return
        if self.eof_written:
            self.chk.fail("write() after write_eof() did not raise")
        self.written += n

    def _closing_by_itself(self):
        # A transport that closed on its own (a write pipe whose reader
        # went away, a fatal error) drops later writes: they are not owed.
        if self.committed is None and self.tr.is_closing():
            self.committed = self.written

    def do_close(self):
        if self.tr is None:
            return
        if self.committed is None:
            self.committed = self.written
        self.closed_locally = True
        if self.writer is not None:
            self.writer.close()
        else:
            self.tr.close()
        if not self.tr.is_closing():
            self.chk.fail("is_closing() is False after close()")

    def do_abort(self):
        if not self.can_write:
            return self.do_close()      # (asyncio's read pipe has no abort())
        if DIFF_MODE and self.tr.is_closing():
            # asyncio 3.12's write pipe: abort() once it closed itself hits
            # self._loop = None.  Nothing to compare: leave it closed.
            self.closed_locally = True
            return
        if not self.tr.is_closing():
            self.aborted_open = True
        self.closed_locally = True
        self.aborted = True
        self.tr.abort()
        if not self.tr.is_closing():
            self.chk.fail("is_closing() is False after abort()")

    # -- set-up ---------------------------------------------------------

    async def setup(self):
        plan = self.plan
        loop = self.loop
        kind = plan["stream"]
        if kind != "none":
            factory = {"protocol": RecProtocol, "buffered": RecBuffered,
                       "streams": RecStreams}[plan["proto"]]
            if kind.startswith("pipe"):
                await self.setup_pipe(kind, factory)
                kind = "none"
            elif kind == "unix":
                a, b = socket.socketpair()
            elif kind == "tcp":
                a, b = socketpair_tcp()
            else:
                lsn = socket.socket()
                lsn.bind(("127.0.0.1", 0))
                lsn.listen(1)
                self.socks.append(lsn)
            if plan["small_bufs"] and kind in ("unix", "tcp"):
                # Small kernel buffers: more partial writes and EAGAIN.  TCP
                # gets less small ones: a window of a few KiB meets delayed
                # ACKs and moves megabytes at a crawl.
                size = 4096 if kind == "unix" else 65536
                for s in (a, b):
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
            # The transport owns a (and closes it); the run owns b.
            if kind == "none":
                pass
            elif kind == "unix":
                self.socks.append(b)
                tr, proto = await loop.connect_accepted_socket(lambda: factory(self), a)
            elif kind == "tcp":
                self.socks.append(b)
                tr, proto = await loop.create_connection(lambda: factory(self), sock=a)
            else:
                host, port = lsn.getsockname()
                tr, proto = await loop.create_connection(lambda: factory(self), host, port)
                b, _ = lsn.accept()
                self.socks.append(b)
            if kind != "none":          # (setup_pipe did this for a pipe)
                self.tr, self.proto = tr, proto
                self.peer = Peer(self, b, "peer", "transport->peer")
            tr, proto = self.tr, self.proto
            if plan["proto"] == "streams":
                self.writer = asyncio.StreamWriter(tr, proto, proto.reader, loop)
            if plan["limits"] is not None and self.can_write:
                tr.set_write_buffer_limits(*plan["limits"])
            if not proto.made:
                self.chk.fail("connection_made not called when create_connection returned")
        if plan["dgram"] != "none":
            if plan["dgram"] == "unix":
                # Named (abstract) ends: with socketpair()'s unnamed ones the
                # peername is '' and asyncio itself then flushes a buffered
                # datagram with sendto(data, None) -> TypeError (boucle
                # copies asyncio's "truthy peername" rule on purpose).
                a = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                b = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                global _ABSTRACT
                _ABSTRACT += 1
                a.bind(b"\0boucle-fuzz-%d-%d-a" % (os.getpid(), _ABSTRACT))
                b.bind(b"\0boucle-fuzz-%d-%d-b" % (os.getpid(), _ABSTRACT))
                a.connect(b.getsockname())
                b.connect(a.getsockname())
            else:
                a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                a.bind(("127.0.0.1", 0))
                b.bind(("127.0.0.1", 0))
                a.connect(b.getsockname())
                b.connect(a.getsockname())
            self.socks.append(b)
            b.setblocking(False)
            self.dpeer = b
            self.dtr, self.dproto = await loop.create_datagram_endpoint(
                lambda: DgramProto(self), sock=a)
        if plan["sock"]:
            a, b = socket.socketpair()
            self.socks += [a, b]
            a.setblocking(False)
            self.ksock = a
            self.kpeer = Peer(self, b, "sock-peer", "sock_sendall->peer")
            self.k_in = StreamIn(self.chk, "peer->sock_recv")

    async def setup_pipe(self, kind, factory):
        loop = self.loop
        # A write pipe does not read (data from the peer would read as
        # "closed"), a read pipe does not write.
        self.is_pipe = True
        self.can_write = kind != "pipe_r"
        self.can_read = kind == "pipe_r"
        if kind == "pipe_w_sock":
            a, b = socket.socketpair()
            self.socks.append(b)
            tr, proto = await loop.connect_write_pipe(lambda: factory(self), a)
        else:
            r, w = os.pipe()
            if kind == "pipe_w":
                b = PipeEnd(r)
                tr, proto = await loop.connect_write_pipe(
                    lambda: factory(self), os.fdopen(w, "wb", buffering=0))
            else:
                b = PipeEnd(w)
                tr, proto = await loop.connect_read_pipe(
                    lambda: factory(self), os.fdopen(r, "rb", buffering=0))
            self.socks.append(b)
        self.tr, self.proto = tr, proto
        self.peer = Peer(self, b, "peer", "transport->peer")
        self.peer.can_send = self.can_read
        self.peer.can_read = self.can_write

    # -- operations -----------------------------------------------------

    def _cb(self, kind, seq, ran):
        ran.append(self.loop.time())
        if kind == "soon":
            self.soon_ran.append(seq)

    def _timer(self, box, ran):
        ran.append(self.loop.time())
        self.timer_fired.append(box[0])

    async def _task_body(self, ms, state):
        try:
            await asyncio.sleep(ms / 1000)
            state["done"] = True
        except asyncio.CancelledError:
            state["cancelled"] = True
            raise

    async def pause_ms(self, ms):
        if DIFF_MODE:
            # A faster loop does more iterations (and reads) per millisecond:
            # count iterations instead, so both loops see the same schedule.
            for _ in range(10 * ms):
                await asyncio.sleep(0)
        else:
            await asyncio.sleep(ms / 1000)

    async def bounded(self, coro, ms):
        """await coro for at most ms milliseconds (TimeoutError after);
        under --diff, for 10 * ms loop iterations instead (see pause_ms)."""
        if not DIFF_MODE:
            return await asyncio.wait_for(coro, ms / 1000)
        task = self.loop.create_task(coro)
        for _ in range(10 * ms):
            if task.done():
                break
            await asyncio.sleep(0)
        if not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            raise asyncio.TimeoutError
        return task.result()

    async def op(self, name, arg):
        loop = self.loop
        if name == "soon":
            ran = []
            self.soon_seq += 1
            h = loop.call_soon(self._cb, "soon", self.soon_seq, ran)
            self.handles.append((h, "soon", None, ran))
        elif name == "later":
            ran = []
            box = []
            # A cancelled twin exercises the heap's lazy removal.
            loop.call_later(arg / 1000, self._timer, box, ran).cancel()
            h = loop.call_later(arg / 1000, self._timer, box, ran)
            box.append(h.when())
            self.handles.append((h, "later", h.when(), ran))
        elif name == "at_past":
            ran = []
            h = loop.call_at(loop.time() - 1, self._cb, "at", 0, ran)
            self.handles.append((h, "at", None, ran))
        elif name == "cancel":
            if self.handles:
                h, kind, when, ran = self.handles[arg % len(self.handles)]
                h.cancel()
                if not h.cancelled():
                    self.chk.fail("handle.cancelled() is False after cancel()")
        elif name == "task":
            state = {}
            t = loop.create_task(self._task_body(arg, state))
            self.tasks.append((t, state))
        elif name == "task_cancel":
            if self.tasks:
                t, state = self.tasks[arg % len(self.tasks)]
                was_done = t.done()
                r = t.cancel()
                if r == was_done:
                    self.chk.fail("task.cancel() returned %r on a task with done()=%r" % (r, was_done))
        elif name == "threadsafe":
            ran = []
            th = threading.Thread(target=loop.call_soon_threadsafe,
                                  args=(self._cb, "ts", 0, ran))
            th.start()
            self.threads.append((th, ran))
        elif name == "yield":
            for _ in range(arg):
                await asyncio.sleep(0)
        elif name == "sleep":
            await self.pause_ms(arg)
        elif name.startswith("d_"):
            self.dgram_op(name, arg)
        elif name.startswith("k_"):
            await self.sock_op(name, arg)
        else:
            await self.stream_op(name, arg)

    async def stream_op(self, name, arg):
        tr, peer, chk = self.tr, self.peer, self.chk
        if not self.can_write and name in ("write", "writelines", "limits", "write_eof",
                                           "abort", "set_protocol"):
            # (a read pipe has no write side; asyncio's has no abort(); and
            # its set_protocol() is BaseTransport's NotImplementedError)
            return
        if not self.can_read and name in ("pause_reading", "resume_reading"):
            return
        if self.is_pipe and name == "write_eof":
            # A write pipe's write_eof() is a close(): later writes are
            # dropped, not refused.
            if not self.closed_locally and not self.aborted:
                self.committed = self.written if self.committed is None else self.committed
                self.closed_locally = True
                tr.write_eof()
            return
        if name == "write":
            if not self.aborted:
                self.do_write(*arg)
        elif name == "writelines":
            if self.aborted or (DIFF_MODE and self.closed_locally):
                return
            self._closing_by_itself()
            bufs = []
            off = self.written
            for n in arg:
                bufs.append(pattern(off, n))
                off += n
            try:
                if DIFF_MODE:
                    # asyncio 3.12/3.13's writelines() never calls
                    # pause_writing() (boucle's does): compare write()s.
                    for data in bufs:
                        (self.writer or tr).write(data)
                elif self.writer is not None:
                    self.writer.writelines(bufs)
                else:
                    tr.writelines(bufs)
            except RuntimeError as exc:
                chk.note("writelines", type(exc).__name__)
                if not self.eof_written:
                    chk.fail("writelines() raised %r before write_eof()" % exc)
                return
            if self.eof_written and off > self.written:
                chk.fail("writelines() after write_eof() did not raise")
            self.written = off
        elif name == "pause_reading":
            tr.pause_reading()
            if not tr.is_closing():
                self.reading_paused = True
                try:
                    if tr.is_reading():
                        chk.fail("is_reading() is True after pause_reading()")
                except NotImplementedError:
                    pass        # asyncio 3.10's read pipe
        elif name == "resume_reading":
            tr.resume_reading()
            self.reading_paused = False
            self.resumed_since_eof = True
        elif name == "limits":
            high, low = arg
            try:
                tr.set_write_buffer_limits(high=high, low=low)
            except ValueError as exc:
                chk.note("limits", high, low, "ValueError")
                return
            chk.note("limits", high, low, "ok")
            lo, hi = tr.get_write_buffer_limits()
            if not 0 <= lo <= hi:
                chk.fail("get_write_buffer_limits() = %r" % ((lo, hi),))
            chk.note("limits=", lo, hi)
        elif name == "write_eof":
            if self.aborted or self.closed_locally:
                return
            can = tr.can_write_eof()
            chk.note("can_write_eof", can)
            # write_eof() on a closing transport does nothing (asyncio)
            closing = tr.is_closing()
            if self.committed is None:
                self.committed = self.written
            try:
                if self.writer is not None:
                    self.writer.write_eof()
                else:
                    tr.write_eof()
            except OSError as exc:
                # shutdown() on a reset connection: asyncio raises too
                chk.note("write_eof", type(exc).__name__)
            if not closing:
                self.eof_written = True
        elif name == "close":
            if not self.aborted:
                self.do_close()
        elif name == "abort":
            if not (DIFF_MODE and self.closed_locally):   # (as in do_write)
                self.do_abort()
        elif name == "query":
            if self.can_write:
                size = tr.get_write_buffer_size()
                if size < 0:
                    chk.fail("get_write_buffer_size() = %d" % size)
            key = "pipe" if self.is_pipe else "socket"
            if tr.get_extra_info(key) is None and not self.proto.lost:
                chk.fail("get_extra_info(%r) is None on an open transport" % key)
            chk.note("is_closing", tr.is_closing() == (self.closed_locally or self.proto.lost))
        elif name == "set_protocol":
            # Hand the transport the protocol it already has: exercises the
            # cached-callbacks path without changing the model.
            # (a transport drops its protocol once connection_lost ran)
            if self.proto.lost:
                return
            tr.set_protocol(tr.get_protocol())
            if tr.get_protocol() is not self.proto:
                chk.fail("get_protocol() is not the protocol just set")
        elif name == "p_read":
            peer.read_some(arg)
        elif name == "p_read_on":
            peer.start_reading()
        elif name == "p_read_off":
            peer.stop_reading()
        elif name == "p_send":
            peer.send(*arg)
        elif name == "p_shut_wr":
            peer.shutdown_wr()
        elif name == "p_rst":
            peer.close(rst=True)
        elif name == "p_close":
            peer.close()
        elif name == "s_read":
            if self.writer is None:
                return
            try:
                data = await self.bounded(self.proto.reader.read(arg), 5)
            except (asyncio.TimeoutError, OSError, RuntimeError, FuzzError):
                return      # (read() raises what connection_lost() got)
            self.proto.app_in.feed(data)
        elif name == "s_drain":
            if self.writer is None:
                return
            try:
                await self.bounded(self.writer.drain(), 10)
            except (asyncio.TimeoutError, OSError, RuntimeError, FuzzError):
                pass

    def dgram_op(self, name, arg):
        tr, chk = self.dtr, self.chk
        if name == "d_send":
            if self.d_closed:
                return
            data = pattern(len(self.d_sent) * 7, arg)
            tr.sendto(data)
            self.d_sent.append(data)
        elif name == "d_peer_send":
            data = pattern(len(self.d_peer_sent) * 13, arg)
            try:
                self.dpeer.send(data)
            except OSError:
                return
            self.d_peer_sent.append(data)
        elif name == "d_peer_read":
            self._d_drain()
        elif name == "d_pause":
            if hasattr(tr, "pause_reading") and PY >= (3, 12):
                tr.pause_reading()
        elif name == "d_resume":
            if hasattr(tr, "resume_reading") and PY >= (3, 12):
                tr.resume_reading()
        elif name == "d_close":
            self.d_closed = True
            tr.close()
        elif name == "d_abort":
            self.d_closed = True
            tr.abort()
        elif name == "d_query":
            if tr.get_write_buffer_size() < 0:
                chk.fail("datagram get_write_buffer_size() < 0")
            chk.note("d_is_closing", tr.is_closing() == (self.d_closed or self.dproto.lost))

    def _d_drain(self):
        for _ in range(64):
            try:
                self.d_peer_got.append(self.dpeer.recv(1 << 20))
            except OSError:
                break

    async def _k_send(self, n, kind):
        await self.loop.sock_sendall(self.ksock, make_buffer(n, self.k_sent, kind))

    async def _k_recv(self, n, into):
        if into:
            buf = bytearray(n)
            k = await self.loop.sock_recv_into(self.ksock, buf)
            return bytes(buf[:k])
        return await self.loop.sock_recv(self.ksock, n)

    async def sock_op(self, name, arg):
        loop = self.loop
        if name == "k_sendall":
            t = self.k_send_task
            if t is not None and not t.done():
                return
            self._k_reap_send()
            n, kind = arg
            self.k_send_task = loop.create_task(self._k_send(n, kind))
            self.k_send_n = n
        elif name in ("k_recv", "k_recv_into"):
            t = self.k_recv_task
            if t is not None and not t.done():
                return
            self._k_reap_recv()
            self.k_recv_task = loop.create_task(self._k_recv(arg, name == "k_recv_into"))
        elif name == "k_cancel_send":
            t = self.k_send_task
            if t is not None and not t.done():
                t.cancel()
                # How much of a cancelled sendall left is unknown.
                self.k_tainted_out = True
        elif name == "k_cancel_recv":
            t = self.k_recv_task
            if t is not None and not t.done():
                t.cancel()
                # A recv that completed just before the cancel is lost to
                # the caller (asyncio behaves the same).
                self.k_tainted_in = True
        elif name == "k_peer_send":
            self.kpeer.send(*arg)
        elif name == "k_peer_read":
            if self.k_tainted_out:
                self.kpeer.incoming.tainted = True
            self.kpeer.read_some(arg)

    def _k_reap_send(self):
        t = self.k_send_task
        if t is not None and t.done():
            if not t.cancelled() and t.exception() is None:
                self.k_sent += self.k_send_n
            elif not t.cancelled():
                self.k_tainted_out = True
            self.k_send_task = None

    def _k_reap_recv(self):
        t = self.k_recv_task
        if t is not None and t.done():
            if not t.cancelled() and t.exception() is None and not self.k_tainted_in:
                self.k_in.feed(t.result())
            self.k_recv_task = None

    # -- the run --------------------------------------------------------

    async def main(self):
        await self.setup()
        for name, arg, gap in self.plan["ops"]:
            await self.op(name, arg)
            if gap == 1:
                await asyncio.sleep(0)
            elif gap == 2:
                for _ in range(3):
                    await asyncio.sleep(0)
            elif gap == 3:
                await self.pause_ms(1)
        await self.settle()

    async def settle(self):
        """Finish every endpoint the way a careful program would, then wait
        for the outcomes that must follow."""
        loop = self.loop
        chk = self.chk
        if self.tr is not None:
            if not self.closed_locally:
                end = self.plan["end"]
                if end == "abort":
                    self.do_abort()
                elif (end == "write_eof" and not self.is_pipe and not self.eof_written
                      and self.tr.can_write_eof()):
                    if self.committed is None:
                        self.committed = self.written
                    try:
                        self.tr.write_eof()
                    except OSError:
                        pass
                    self.eof_written = True
                    self.tr.resume_reading()
                    self.reading_paused = False
                    self.resumed_since_eof = True
                else:
                    self.do_close()
            # The peer keeps reading: every transport must now finish.
            if not self.peer.closed:
                self.peer.start_reading()
            try:
                await asyncio.wait_for(self._stream_done(), 5.0)
            except asyncio.TimeoutError:
                chk.fail("stream: not finished 5 s after close/abort/write_eof with the peer "
                         "reading (lost=%s, buffered=%d, peer eof=%s err=%r closed=%s)"
                         % (self.proto.lost,
                            self.tr.get_write_buffer_size() if self.can_write else -1, self.peer.eof,
                            self.peer.error, self.peer.closed))
            self.check_stream()
        if self.dtr is not None:
            if not self.d_closed:
                self.d_closed = True
                self.dtr.close()
            # close() flushes the buffer first: keep the peer reading.
            t_end = loop.time() + 2.0
            while not self.dproto.lost and loop.time() < t_end:
                self._d_drain()
                await asyncio.sleep(0.001)
            if not self.dproto.lost:
                # A datagram that can never be sent (on AF_UNIX one near
                # SO_SNDBUF gets EAGAIN for ever) keeps close() waiting on
                # asyncio as well: abort() must end it.  --diff compares.
                chk.note("d_close_stuck", self.dtr.get_write_buffer_size() > 0)
                if self.dtr.get_write_buffer_size() == 0:
                    chk.fail("datagram: close() with an empty buffer, no connection_lost in 2 s")
                self.dtr.abort()
            try:
                await asyncio.wait_for(asyncio.shield(self.dproto.lost_fut), 2.0)
            except asyncio.TimeoutError:
                chk.fail("datagram: connection_lost not called 2 s after abort()")
            self._d_drain()
            self.check_dgram()
        if self.ksock is not None:
            for t in (self.k_send_task, self.k_recv_task):
                if t is not None and not t.done():
                    t.cancel()
            for t in (self.k_send_task, self.k_recv_task):
                if t is not None:
                    try:
                        await t
                    except (asyncio.CancelledError, OSError):
                        pass
            self._k_reap_recv()
        # Timers: wait for the last one, then check each fired once, in order.
        if self.handles:
            last = max([w for _, k, w, _ in self.handles if w is not None] or [0])
            await asyncio.sleep(max(0.0, last - loop.time()) + 0.002)
        await asyncio.sleep(0)
        for t, state in self.tasks:
            if not t.done():
                t.cancel()
        if self.tasks:
            await asyncio.gather(*(t for t, _ in self.tasks), return_exceptions=True)
        for th, ran in self.threads:
            th.join()
        if self.threads:
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        self.check_loop()

    async def _stream_done(self):
        proto, peer = self.proto, self.peer
        while True:
            if proto.lost and (peer.closed or peer.eof or peer.error or not peer.reading):
                return
            if (self.eof_written and not self.closed_locally and not proto.lost
                    and (peer.eof or peer.error or peer.closed)):
                # write_eof(): the peer has our EOF; nothing forces the
                # transport to close (the peer may still send).  Close now.
                self.do_close()
            await asyncio.sleep(0.001)

    def check_stream(self):
        chk, proto, peer = self.chk, self.proto, self.peer
        if not proto.lost:
            return
        if (peer.eof and not self.aborted and self.committed is not None
                and proto.lost_exc is None):
            # A clean EOF at the peer: everything written before close() or
            # write_eof() arrived (plus possibly what was written after it).
            if peer.incoming.n < self.committed:
                chk.fail("peer saw EOF after %d of the %d bytes written before close/write_eof"
                         % (peer.incoming.n, self.committed))
        if peer.incoming.n > self.written:
            chk.fail("peer got %d bytes, only %d were written" % (peer.incoming.n, self.written))
        if proto.eof and proto.incoming.n != peer.sent:
            chk.fail("eof_received after %d of the %d bytes the peer sent"
                     % (proto.incoming.n, peer.sent))
        if proto.incoming.n > peer.sent:
            chk.fail("transport got %d bytes, the peer sent %d" % (proto.incoming.n, peer.sent))
        if (proto.lost_exc is not None and not isinstance(proto.lost_exc, (OSError, RuntimeError))
                and not (self.expect_fuzz_error and isinstance(proto.lost_exc, FuzzError))):
            chk.fail("connection_lost(%r): not an OSError" % proto.lost_exc)
        if self.aborted_open and proto.lost_exc is not None:
            chk.fail("abort() gave connection_lost(%r), not None" % proto.lost_exc)
        chk.note("stream-lost", type(proto.lost_exc).__name__ if not self.aborted else "abort")

    def check_dgram(self):
        chk = self.chk
        if not self.dproto.lost:
            chk.fail("datagram: connection_lost never called")
        # Received datagrams must be, in order, a subsequence of those sent.
        for got, sent, what in ((self.d_peer_got, self.d_sent, "transport->peer"),
                                (self.dproto.got, self.d_peer_sent, "peer->transport")):
            i = 0
            for d in got:
                while i < len(sent) and sent[i] != d:
                    i += 1
                if i == len(sent):
                    chk.fail("datagram %s: a %d-byte datagram that was not sent, or out of order"
                             % (what, len(d)))
                    break
                i += 1

    def check_loop(self):
        chk = self.chk
        if self.soon_ran != sorted(self.soon_ran):
            chk.fail("call_soon callbacks ran out of order: %r" % self.soon_ran)
        res = self.loop._clock_resolution
        for h, kind, when, ran in self.handles:
            if len(ran) > 1:
                chk.fail("%s callback ran %d times" % (kind, len(ran)))
            if not h.cancelled() and not ran:
                chk.fail("%s callback (not cancelled) never ran" % kind)
            if when is not None and ran and ran[0] < when - res - 1e-6:
                chk.fail("call_later callback ran %.6f s early" % (when - ran[0]))
        if self.timer_fired != sorted(self.timer_fired):
            chk.fail("timers fired out of deadline order")
        for th, ran in self.threads:
            if len(ran) != 1:
                chk.fail("call_soon_threadsafe callback ran %d times" % len(ran))
        for t, state in self.tasks:
            if not t.done():
                chk.fail("task not done after cancel and gather")
            # (a task cancelled before its first step never runs its body)
            if state.get("cancelled") and not t.cancelled():
                chk.fail("the coroutine saw CancelledError but task.cancelled() is False")
            if state.get("done") and t.cancelled():
                chk.fail("the coroutine finished but task.cancelled() is True")


class DgramProto(asyncio.DatagramProtocol):
    def __init__(self, run):
        self.run = run
        self.chk = run.chk
        self.made = False
        self.lost = False
        self.got = []
        self.lost_fut = run.loop.create_future()

    def connection_made(self, transport):
        if self.made:
            self.chk.fail("datagram connection_made twice")
        self.made = True

    def datagram_received(self, data, addr):
        if self.lost:
            self.chk.fail("datagram_received after connection_lost")
        self.got.append(data)

    def error_received(self, exc):
        if self.lost:
            self.chk.fail("error_received after connection_lost")
        if not isinstance(exc, OSError):
            self.chk.fail("error_received(%r): not an OSError" % exc)

    def connection_lost(self, exc):
        if self.lost:
            self.chk.fail("datagram connection_lost twice")
        self.lost = True
        if not self.lost_fut.done():
            self.lost_fut.set_result(None)


# ---------------------------------------------------------------------------
# Running one input


def fd_count():
    return len(os.listdir("/proc/self/fd"))


_errors = []


def _exc_handler(loop, context):
    exc = context.get("exception")
    msg = context.get("message", "")
    # Fatal transport errors on a connection the peer reset are normal and
    # are reported through the handler by asyncio too; anything that is not
    # an OSError means some code raised where it should not.
    if exc is None or isinstance(exc, (OSError, asyncio.CancelledError, FuzzError)):
        return
    if isinstance(exc, RuntimeError) and "get_buffer" in str(exc) + msg:
        return      # the plan's get_buffer() returned an empty buffer
    _errors.append("exception handler: %s: %r" % (msg, exc))


def run_plan(plan, factory):
    """Run plan on a loop from factory; return the Run (raises Violation)."""
    loop = factory()
    loop.set_exception_handler(_exc_handler)
    del _errors[:]
    run = Run(loop, plan)
    try:
        try:
            loop.run_until_complete(asyncio.wait_for(run.main(), DEADLINE))
        except asyncio.TimeoutError:
            raise Violation("hang: the plan did not finish within %.0f s of loop time" % DEADLINE)
        finally:
            for tr, proto in ((run.tr, run.proto), (run.dtr, run.dproto)):
                if tr is not None and proto is not None and not proto.lost:
                    # (asyncio's read pipe has no abort())
                    getattr(tr, "abort", tr.close)()
            if run.peer is not None:
                run.peer.close()
            if run.kpeer is not None:
                run.kpeer.close()
            loop.run_until_complete(asyncio.sleep(0))
            loop.run_until_complete(asyncio.sleep(0))
            for s in run.socks:
                s.close()
    finally:
        loop.close()
    if run.chk.violations or _errors:
        raise Violation("; ".join(run.chk.violations + _errors))
    return run


def asyncio_factory():
    return asyncio.new_event_loop()


FD_BASE = None
DIFF_MODE = False


def test_one(data, diff=False):
    global FD_BASE, DIFF_MODE
    DIFF_MODE = diff
    plan = decode(data)
    if FD_BASE is None:
        FD_BASE = fd_count()
    faulthandler.dump_traceback_later(WATCHDOG, exit=True)
    try:
        run = run_plan(plan, boucle.new_event_loop)
        if diff:
            try:
                ref = run_plan(plan, asyncio_factory)
            except Exception as exc:
                # asyncio itself breaks an invariant (or raises: 3.12's
                # selector transport write() after a flushed close() hits
                # self._loop = None): nothing to compare with.
                ref = None
                sys.stderr.write("note: asyncio's own loop fails this input: %r\n" % exc)
            if ref is not None and ref.chk.trace != run.chk.trace:
                # Kernel timing (TCP ACKs, how much a send() takes) can move
                # a pause_writing() and what follows it: run each loop a few
                # more times and report only outcomes that never meet.
                mine = {repr(run.chk.trace)}
                theirs = {repr(ref.chk.trace)}
                for _ in range(3):
                    mine.add(repr(run_plan(plan, boucle.new_event_loop).chk.trace))
                    try:
                        theirs.add(repr(run_plan(plan, asyncio_factory).chk.trace))
                    except Exception:
                        pass
                    if mine & theirs:
                        break
                else:
                    raise Violation("differs from asyncio:\n boucle:  %s\n asyncio: %s"
                                    % ("\n          ".join(sorted(mine)),
                                       "\n          ".join(sorted(theirs))))
    finally:
        faulthandler.cancel_dump_traceback_later()
    gc.collect()
    n = fd_count()
    if n > FD_BASE:
        # A closed transport may still be referenced by a finished task
        # until the collection above; after it, every fd must be gone.
        raise Violation("fd leak: %d fds open, %d before the first input" % (n, FD_BASE))


# ---------------------------------------------------------------------------
# Entry points


def random_input(rng):
    n = rng.choice([16, 64, 128, 256, 256, 512, 512])
    return bytes(rng.getrandbits(8) for _ in range(n))


def save_crash(data, outdir):
    os.makedirs(outdir, exist_ok=True)
    import hashlib
    path = os.path.join(outdir, "crash-" + hashlib.sha1(data).hexdigest())
    with open(path, "wb") as f:
        f.write(data)
    return path


def main_random(args):
    seed = args.seed if args.seed is not None else int(time.time())
    rng = random.Random(seed)
    t0 = time.monotonic()
    n = 0
    failed = 0
    print("fuzz_loop: random mode, seed %d, boucle from %s" % (seed, boucle.__file__), flush=True)
    while n < args.iterations:
        if args.max_time and time.monotonic() - t0 > args.max_time:
            break
        data = random_input(rng)
        try:
            test_one(data, args.diff)
        except Exception:
            path = save_crash(data, args.crash_dir)
            traceback.print_exc()
            # CI keeps only the log: the input itself, to rebuild the file.
            print("fuzz_loop: failing input (hex): %s" % data.hex())
            print("fuzz_loop: FAILED on input %d (seed %d); saved to %s\n"
                  "  replay: %s %s --replay %s"
                  % (n, seed, path, sys.executable, sys.argv[0], path), flush=True)
            failed += 1
            if not args.keep_going:
                return 1
        n += 1
        if args.verbose and n % 100 == 0:
            print("  %d inputs, %.1f s" % (n, time.monotonic() - t0), flush=True)
    if failed:
        print("fuzz_loop: %d of %d inputs FAILED in %.1f s (seed %d)"
              % (failed, n, time.monotonic() - t0, seed))
        return 1
    print("fuzz_loop: %d inputs passed in %.1f s (seed %d)" % (n, time.monotonic() - t0, seed))
    return 0


def main_replay(args):
    rc = 0
    paths = []
    for path in args.replay:
        if os.path.isdir(path):       # a corpus directory: every file in it
            paths += sorted(os.path.join(path, f) for f in os.listdir(path))
        else:
            paths.append(path)
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        if args.verbose:
            print(decode(data))
        try:
            test_one(data, args.diff)
            if args.verbose or len(paths) < 20:
                print("%s: ok" % path)
        except Exception:
            traceback.print_exc()
            print("%s: FAILED" % path)
            rc = 1
    print("fuzz_loop: replayed %d inputs, %s" % (len(paths), "FAILED" if rc else "all passed"))
    return rc


def main_atheris(argv, diff):
    import atheris

    def one(data):
        test_one(data, diff)

    atheris.Setup(argv, one)
    atheris.Fuzz()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--max-time", type=float, default=0, help="seconds (random mode)")
    ap.add_argument("--replay", nargs="+", metavar="FILE")
    ap.add_argument("--atheris", action="store_true",
                    help="coverage-guided; the remaining arguments go to libFuzzer")
    ap.add_argument("--diff", action="store_true", help="compare with asyncio's loop")
    ap.add_argument("--crash-dir", default="fuzz-crashes")
    ap.add_argument("--keep-going", action="store_true",
                    help="random mode: save a failing input and go on")
    ap.add_argument("-v", "--verbose", action="store_true")
    args, rest = ap.parse_known_args()
    if args.atheris:
        return main_atheris([sys.argv[0]] + rest, args.diff)
    if rest:
        ap.error("unknown arguments %r (libFuzzer arguments need --atheris)" % rest)
    if args.replay:
        return main_replay(args)
    return main_random(args)


if __name__ == "__main__":
    sys.exit(main())
