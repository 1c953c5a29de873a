#!/usr/bin/env python3
"""Soak test: many concurrent connections echoing through a boucle server
for a long time, every byte checked, the server's memory watched.

    python bench/soak.py [--conns 10000] [--duration 60] [--warmup 10]
                         [--client-procs 2] [--json FILE]

Three kinds of process (this file, run with --role):

* the server: a boucle loop serving an ``asyncio.Protocol`` that echoes what
  it receives (``transport.write(data)`` in ``data_received``), with its
  RLIMIT_NOFILE soft limit raised to the hard limit;
* the clients (``--client-procs`` processes, uvloop when installed, else
  asyncio): ``--conns`` connections in all, each sending one message at a
  time and waiting for its echo. Message sizes vary (1 B to 128 KiB, mostly
  small) and their bytes are slices of a random pool at random offsets,
  so every received byte is compared with the byte that was sent, and a
  CRC-32 of everything sent and received is kept per connection;
* this process, the conductor: it starts the others, tells the clients
  when to start and stop, and samples the server's RSS (VmRSS of
  /proc/PID/status) and CPU time (/proc/PID/stat) once a second.

Timeline: connect everything, then echo for --duration seconds (the first
--warmup of them are the warm-up), then every connection finishes the
message in flight, half-closes (write_eof), reads the server's EOF and
closes.

Pass (exit status 0) only if all of these hold:

* no byte lost or corrupted: every echoed byte equals the byte sent and the
  CRC-32s match, on every connection;
* every connection completed: it connected, echoed at least one message,
  and ended with a clean EOF from the server (no reset, no error);
* the server agrees: the bytes it received equal the bytes it sent equal
  the clients' total, it saw as many connections and clean EOFs as the
  clients made, and it reported no error; once the clients are gone its
  fd count is back to what it was before they connected;
* RSS flat after the warm-up: the server's RSS at the end (the median of
  the last 3 samples) is at most ``RSS_warm * 1.05 + 8 MiB``, where RSS_warm
  is the sample taken when the warm-up ends. The warm-up absorbs
  everything that grows once (10,000 transports and protocols, socket
  buffers, pymalloc arenas, the read buffer); afterwards the server only
  recycles memory, so what remains is noise from how much data happens to
  be buffered at the sampling instant (messages go up to 128 KiB):
  5 % + 8 MiB covers that, while a leak of even a few bytes per request
  (millions of requests) would exceed it.

The summary gives requests, bytes, RSS at start / end of warm-up / end,
the slope of RSS after the warm-up, and the server's CPU time.
"""
import argparse
import asyncio
import json
import os
import random
import resource
import select
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_SRC = os.path.join(os.path.dirname(HERE), "src")

POOL_SIZE = 1 << 20
MAX_MSG = 128 * 1024
RSS_FACTOR = 1.05
RSS_SLACK = 8 * 1024 * 1024


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def make_pool(seed=12345):
    return random.Random(seed).randbytes(POOL_SIZE + MAX_MSG)


def message_size(rng):
    """1 B .. 128 KiB: 70 % up to 512 B, 25 % up to 16 KiB, 5 % up to 128 KiB."""
    r = rng.random()
    if r < 0.70:
        return rng.randint(1, 512)
    if r < 0.95:
        return rng.randint(513, 16 * 1024)
    return rng.randint(16 * 1024 + 1, MAX_MSG)


# ---------------------------------------------------------------------------
# server (boucle)


def run_server(args):
    sys.path.insert(0, REPO_SRC)   # the in-place build, unless boucle is installed
    import boucle

    nofile = raise_nofile()
    stats = {"accepted": 0, "eof": 0, "closed": 0, "errors": 0, "bytes_in": 0,
             "bytes_out": 0, "error_samples": []}

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport
            stats["accepted"] += 1

        def data_received(self, data):
            n = len(data)
            stats["bytes_in"] += n
            stats["bytes_out"] += n
            self.transport.write(data)

        def eof_received(self):
            stats["eof"] += 1     # returning None closes the transport

        def connection_lost(self, exc):
            stats["closed"] += 1
            if exc is not None:
                stats["errors"] += 1
                if len(stats["error_samples"]) < 5:
                    stats["error_samples"].append(repr(exc))

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(
            lambda lp, ctx: (stats.__setitem__("errors", stats["errors"] + 1),
                             stats["error_samples"].append(ctx.get("message"))))
        server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=4096)
        port = server.sockets[0].getsockname()[1]
        done = loop.create_future()
        loop.add_signal_handler(signal.SIGTERM, done.set_result, None)
        print(json.dumps({"port": port, "pid": os.getpid(), "nofile": nofile,
                          "loop": type(loop).__module__ + "." + type(loop).__qualname__}),
              flush=True)
        await done
        server.close()

    boucle.run(main())
    print(json.dumps(stats), flush=True)


# ---------------------------------------------------------------------------
# clients (uvloop or asyncio)


class ClientConn(asyncio.Protocol):
    """One connection: one message in flight, every echoed byte checked."""

    def __init__(self, ctl, cid):
        self.ctl = ctl
        self.rng = random.Random(cid)
        self.transport = None
        self.expected = None        # memoryview of the message in flight
        self.pos = 0
        self.requests = 0
        self.bytes = 0
        self.crc_sent = 0
        self.crc_recv = 0
        self.error = None
        self.eof = False
        self.done = asyncio.get_running_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport

    def send_next(self):
        size = message_size(self.rng)
        off = self.rng.randrange(POOL_SIZE)
        self.expected = self.ctl.pool_view[off:off + size]
        self.pos = 0
        self.crc_sent = zlib.crc32(self.expected, self.crc_sent)
        self.transport.write(self.expected)

    def data_received(self, data):
        exp = self.expected
        n = len(data)
        if exp is None or self.pos + n > len(exp) or exp[self.pos:self.pos + n] != data:
            self.fail("corrupted or unexpected data (%d bytes at offset %d of a %d-byte message)"
                      % (n, self.pos, 0 if exp is None else len(exp)))
            return
        self.crc_recv = zlib.crc32(data, self.crc_recv)
        self.pos += n
        if self.pos == len(exp):
            self.requests += 1
            self.bytes += len(exp)
            self.expected = None
            if self.ctl.running:
                self.send_next()
            else:
                self.transport.write_eof()

    def eof_received(self):
        if self.expected is not None or self.ctl.running:
            self.fail("EOF from the server in the middle of the run")
        else:
            self.eof = True
        return False

    def connection_lost(self, exc):
        if exc is not None and self.error is None:
            self.error = "connection lost: %r" % (exc,)
        if not self.done.done():
            self.done.set_result(None)

    def fail(self, why):
        if self.error is None:
            self.error = why
        self.transport.abort()

    def stop(self):
        """The run is over: half-close once the message in flight is back."""
        if self.expected is None and not self.transport.is_closing():
            self.transport.write_eof()


class ClientCtl:
    def __init__(self):
        self.pool = make_pool()
        self.pool_view = memoryview(self.pool)
        self.running = False


def run_client(args):
    raise_nofile()
    try:
        import uvloop
        new_loop, loop_name = uvloop.new_event_loop, "uvloop"
    except ImportError:
        new_loop, loop_name = asyncio.new_event_loop, "asyncio"

    lines = []          # stdin lines, read by a thread
    ctl = ClientCtl()

    async def main():
        loop = asyncio.get_running_loop()
        got_line = asyncio.Event()

        def reader():
            for line in sys.stdin:
                loop.call_soon_threadsafe(lambda ln=line.strip(): (lines.append(ln), got_line.set()))
            loop.call_soon_threadsafe(lambda: (lines.append("eof"), got_line.set()))

        threading.Thread(target=reader, daemon=True).start()

        async def wait_for(word):
            while word not in lines:
                got_line.clear()
                await got_line.wait()

        conns = []
        connect_errors = []
        sem = asyncio.Semaphore(256)

        async def connect(cid):
            async with sem:
                for attempt in range(5):
                    try:
                        _, proto = await loop.create_connection(
                            lambda: ClientConn(ctl, cid), "127.0.0.1", args.port)
                        conns.append(proto)
                        return
                    except OSError as exc:
                        err = exc
                        await asyncio.sleep(0.2 * (attempt + 1))
                connect_errors.append(repr(err))

        t0 = time.monotonic()
        await asyncio.gather(*(connect(args.first_id + i) for i in range(args.conns)))
        print(json.dumps({"ready": len(conns), "connect_errors": len(connect_errors),
                          "connect_s": round(time.monotonic() - t0, 2), "loop": loop_name}),
              flush=True)
        await wait_for("go")
        ctl.running = True
        for c in conns:
            c.send_next()
        await wait_for("stop")
        ctl.running = False
        for c in conns:
            c.stop()
        try:
            await asyncio.wait_for(asyncio.gather(*(c.done for c in conns)), 60)
        except asyncio.TimeoutError:
            pass
        result = {
            "conns": args.conns, "connected": len(conns),
            "connect_errors": connect_errors[:5], "n_connect_errors": len(connect_errors),
            "requests": sum(c.requests for c in conns),
            "bytes": sum(c.bytes for c in conns),
            "completed": sum(1 for c in conns if c.done.done() and c.eof and c.error is None
                             and c.requests > 0 and c.crc_sent == c.crc_recv),
            "crc_mismatch": sum(1 for c in conns if c.crc_sent != c.crc_recv),
            "no_request": sum(1 for c in conns if c.requests == 0),
            "unfinished": sum(1 for c in conns if not c.done.done()),
            "errors": sum(1 for c in conns if c.error is not None),
            "error_samples": [c.error for c in conns if c.error is not None][:5],
            "min_requests": min((c.requests for c in conns), default=0),
        }
        for c in conns:
            if not c.done.done():
                c.transport.abort()
        print(json.dumps(result), flush=True)

    loop = new_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


# ---------------------------------------------------------------------------
# conductor


def read_json_line(proc, timeout, what):
    """The next line of proc's stdout, parsed as JSON."""
    deadline = time.monotonic() + timeout
    buf = b""
    fd = proc.stdout.fileno()
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeError("timed out waiting for %s" % what)
        r, _, _ = select.select([fd], [], [], left)
        if r:
            chunk = os.read(fd, 1)
            if not chunk:
                raise RuntimeError("%s: process ended (status %s)" % (what, proc.wait()))
            buf += chunk
    return json.loads(buf)


def proc_rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def proc_cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick    # utime + stime


def proc_nfds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def mib(n):
    return n / (1024 * 1024)


def conduct(args):
    me = os.path.abspath(__file__)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO_SRC, env.get("PYTHONPATH")) if p)
    procs = []
    try:
        server = subprocess.Popen([sys.executable, me, "--role", "server"],
                                  stdout=subprocess.PIPE, env=env)
        procs.append(server)
        info = read_json_line(server, 30, "the server")
        port, spid = info["port"], server.pid
        fds_idle = proc_nfds(spid)
        rss_start = proc_rss(spid)
        print("soak: server pid %d on port %d (%s, RLIMIT_NOFILE %s), %d client process(es), "
              "%d connections, %ds (warm-up %ds)"
              % (spid, port, info["loop"], info["nofile"], args.client_procs, args.conns,
                 args.duration, args.warmup), flush=True)

        shares = [args.conns // args.client_procs] * args.client_procs
        for i in range(args.conns % args.client_procs):
            shares[i] += 1
        clients = []
        first = 0
        for share in shares:
            c = subprocess.Popen([sys.executable, me, "--role", "client", "--port", str(port),
                                  "--conns", str(share), "--first-id", str(first)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
            first += share
            procs.append(c)
            clients.append(c)
        ready = [read_json_line(c, 300, "a client's connections") for c in clients]
        print("soak: connected %d/%d (%s); client loop: %s"
              % (sum(r["ready"] for r in ready), args.conns,
                 ", ".join("%ss" % r["connect_s"] for r in ready), ready[0]["loop"]), flush=True)
        fds_busy = proc_nfds(spid)

        samples = []        # (t, rss)
        cpu0 = proc_cpu(spid)
        t0 = time.monotonic()
        for c in clients:
            c.stdin.write(b"go\n")
            c.stdin.flush()
        rss_warm = None
        cpu_warm = None
        next_t = t0
        while True:
            now = time.monotonic()
            if now - t0 >= args.duration:
                break
            if now >= next_t:
                rss = proc_rss(spid)
                samples.append((round(now - t0, 2), rss))
                if rss_warm is None and now - t0 >= args.warmup:
                    rss_warm, cpu_warm = rss, proc_cpu(spid)
                if args.verbose:
                    print("  t=%5.1fs rss=%.1f MiB" % (now - t0, mib(rss)), flush=True)
                next_t += 1.0
            time.sleep(max(0.0, min(next_t, t0 + args.duration) - time.monotonic()))
        rss_end_samples = [proc_rss(spid)]
        samples.append((round(time.monotonic() - t0, 2), rss_end_samples[0]))
        cpu1 = proc_cpu(spid)
        echo_s = time.monotonic() - t0
        for c in clients:
            c.stdin.write(b"stop\n")
            c.stdin.flush()
        results = [read_json_line(c, 120, "a client's result") for c in clients]
        for c in clients:
            c.stdin.close()
            c.wait(30)
        # the server has closed every connection when its fd count is back
        deadline = time.monotonic() + 30
        while proc_nfds(spid) > fds_idle and time.monotonic() < deadline:
            time.sleep(0.1)
        fds_after = proc_nfds(spid)
        rss_after = proc_rss(spid)
        server.send_signal(signal.SIGTERM)
        sstats = read_json_line(server, 30, "the server's counters")
        server.wait(30)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    if rss_warm is None:        # a run shorter than its warm-up
        rss_warm, cpu_warm = samples[0][1], cpu0
    tail = [rss for _, rss in samples[-3:]]
    rss_end = int(statistics.median(tail))
    rss_limit = rss_warm * RSS_FACTOR + RSS_SLACK
    post = [(t, r) for t, r in samples if t >= args.warmup]
    slope = 0.0
    if len(post) >= 2:
        ts = [t for t, _ in post]
        rs = [r for _, r in post]
        tm, rm = statistics.fmean(ts), statistics.fmean(rs)
        den = sum((t - tm) ** 2 for t in ts)
        slope = sum((t - tm) * (r - rm) for t, r in zip(ts, rs)) / den if den else 0.0

    total = {k: sum(r[k] for r in results)
             for k in ("requests", "bytes", "completed", "crc_mismatch", "errors", "unfinished",
                       "no_request", "connected", "n_connect_errors")}
    errors = [e for r in results for e in r["error_samples"]][:5]
    cpu_total = cpu1 - cpu0
    checks = {
        "all connected": total["connected"] == args.conns,
        "every connection completed": total["completed"] == args.conns,
        "no byte lost or corrupted": total["crc_mismatch"] == 0 and total["errors"] == 0,
        "server bytes in == out == clients' bytes":
            sstats["bytes_in"] == sstats["bytes_out"] == total["bytes"],
        "server saw every connection end cleanly":
            sstats["accepted"] == args.conns and sstats["eof"] == args.conns
            and sstats["closed"] == args.conns and sstats["errors"] == 0,
        "server fds back to idle": fds_after == fds_idle,
        "RSS flat after warm-up": rss_end <= rss_limit,
    }
    ok = all(checks.values())
    report = {
        "ok": ok, "checks": checks,
        "conns": args.conns, "duration_s": round(echo_s, 1), "warmup_s": args.warmup,
        "client_procs": args.client_procs, "client_loop": ready[0]["loop"],
        "requests": total["requests"], "bytes": total["bytes"],
        "requests_per_s": round(total["requests"] / echo_s),
        "min_requests_per_conn": min(r["min_requests"] for r in results),
        "rss_start": rss_start, "rss_warm": rss_warm, "rss_end": rss_end,
        "rss_limit": int(rss_limit), "rss_max_after_warmup": max((r for _, r in post), default=0),
        "rss_after_clients_left": rss_after,
        "rss_slope_bytes_per_min": round(slope * 60),
        "server_cpu_s": round(cpu_total, 2),
        "server_cpu_s_after_warmup": round(cpu1 - cpu_warm, 2),
        "server_cpu_us_per_request": round(cpu_total / total["requests"] * 1e6, 2)
        if total["requests"] else None,
        "server_fds": {"idle": fds_idle, "busy": fds_busy, "after": fds_after},
        "server": sstats, "clients": results, "client_errors": errors,
        "rss_samples": samples,
    }
    print("soak: %d connections for %.1fs: %d requests, %.1f MiB echoed (%d req/s), "
          "at least %d requests per connection"
          % (args.conns, echo_s, total["requests"], mib(total["bytes"]),
             report["requests_per_s"], report["min_requests_per_conn"]))
    print("soak: server RSS %.1f MiB at start (idle), %.1f MiB after the %ds warm-up, "
          "%.1f MiB at the end (limit %.1f MiB; max after warm-up %.1f MiB; slope %+.2f MiB/min)"
          % (mib(rss_start), mib(rss_warm), args.warmup, mib(rss_end), mib(rss_limit),
             mib(report["rss_max_after_warmup"]), mib(slope * 60)))
    print("soak: server CPU %.1fs over %.1fs (%.1f us/request); fds idle %d, busy %d, after %d"
          % (cpu_total, echo_s, report["server_cpu_us_per_request"] or 0, fds_idle, fds_busy,
             fds_after))
    for name, passed in checks.items():
        print("soak: %-42s %s" % (name, "ok" if passed else "FAILED"))
    if errors or sstats["error_samples"]:
        print("soak: errors: %s / server: %s" % (errors, sstats["error_samples"]))
    print("soak: %s" % ("PASS" if ok else "FAIL"))
    if args.json:
        text = json.dumps(report, indent=1)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w") as f:
                f.write(text + "\n")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--conns", type=int, default=10000, help="connections (default 10000)")
    ap.add_argument("--duration", type=float, default=60, help="seconds of echoing (default 60)")
    ap.add_argument("--warmup", type=float, default=10,
                    help="seconds at the start of the run before RSS must stay flat (default 10)")
    ap.add_argument("--client-procs", type=int, default=2,
                    help="client processes sharing the connections (default 2)")
    ap.add_argument("--json", metavar="FILE", help="write the full report as JSON ('-': stdout)")
    ap.add_argument("--verbose", "-v", action="store_true", help="print every RSS sample")
    ap.add_argument("--role", choices=["conductor", "server", "client"], default="conductor",
                    help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--first-id", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role == "server":
        return run_server(args)
    if args.role == "client":
        return run_client(args)
    if args.conns < 1 or args.client_procs < 1 or args.duration <= 0:
        ap.error("--conns, --client-procs and --duration must be positive")
    args.client_procs = min(args.client_procs, args.conns)
    try:
        return conduct(args)
    except (OSError, RuntimeError, ValueError) as exc:
        # a process died or stopped answering (its /proc entry gone, its
        # output cut short or not JSON): the others are killed by now
        print("soak: FAIL: %s: %s" % (type(exc).__name__, exc), flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
