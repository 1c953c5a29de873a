#!/usr/bin/env python3
"""boucle network benchmarks: echo and HTTP servers on asyncio, uvloop and boucle.

Every server runs in its own process pinned to one CPU; the load generator
(bench/loadgen.c, built here with the system C compiler) runs pinned to
another CPU.  The load is closed-loop: N connections, one request in flight on
each.  The main figure is the server's CPU time per request (utime+stime from
/proc/PID/stat over exactly the counted window, divided by the requests
counted), which stays meaningful whether or not the server is saturated;
requests/s and latency percentiles are reported next to it.

    python bench/echo.py [--quick] [--only echo|http] [--loops asyncio,uvloop,boucle,boucle-uring]
                         [--kinds protocol,buffered,streams,sockets] [--sizes 1k,10k,100k]
                         [--http-kinds httptools,uvicorn,uvicorn-h11,aiohttp]
                         [--conns 50] [--duration 5] [--warmup 1] [--repeat 1]
                         [--json FILE] [--markdown FILE] [--probe]

Echo: kinds protocol / buffered / streams / sockets (bench/echo_servers.py)
on each loop, plus a plain C epoll echo server (bench/echo_c.c) as the floor.
HTTP: an httptools server on a Protocol (bench/http_server.py) on each loop,
plus the C floor in HTTP mode, driven by loadgen's HTTP mode and by wrk when
it is installed; and the same answer from real frameworks (--http-kinds:
uvicorn with httptools or h11, aiohttp.web; bench/app_servers.py).  A loop or kind that cannot serve (boucle before its
transports land) is probed, skipped and listed with the reason.

See bench/NETWORK.md for what is measured and how to read the tables.
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
REPO_SRC = os.path.join(REPO, "src")
BOUCLE_PATH = REPO_SRC      # where servers import boucle from (a snapshot of it, normally)

ALL_LOOPS = ("asyncio", "uvloop", "boucle", "boucle-uring")
ALL_KINDS = ("protocol", "buffered", "streams", "sockets")
ALL_HTTP_KINDS = ("httptools", "uvicorn", "uvicorn-h11", "aiohttp")
HTTP_BODY = "Hello, World!"          # what bench/http_server.py and echo_c --http answer

# boucle's targets: server CPU per request at 1 KiB, 50 connections
TARGETS = {                          # kind: (max ratio to uvloop, max ratio to the C floor)
    "protocol": (0.90, 1.10),
    "buffered": (0.90, None),
    "streams": (0.85, None),
    "sockets": (0.75, None),
}
TARGET_SIZE = 1024
NOISY = 0.25          # other processes used more than this much of a CPU during a row: flag it


# ---------------------------------------------------------------------------
# building the C programs

def build_dir():
    base = os.environ.get("BOUCLE_BENCH_BUILD") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "boucle-bench")
    os.makedirs(base, exist_ok=True)
    return base


def build(name, cc=None):
    """Compile bench/<name>.c (cached by content hash); return the binary's path."""
    src = os.path.join(HERE, name + ".c")
    cc = cc or os.environ.get("CC") or "cc"
    flags = ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    with open(src, "rb") as f:
        digest = hashlib.sha1(f.read() + " ".join([cc] + flags).encode()).hexdigest()[:12]
    out = os.path.join(build_dir(), "%s-%s" % (name, digest))
    if not os.path.exists(out):
        tmp = out + ".tmp%d" % os.getpid()
        proc = subprocess.run([cc] + flags + ["-o", tmp, src], capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit("bench: building %s failed:\n%s" % (src, proc.stderr))
        if proc.stderr.strip():
            print(proc.stderr.strip(), file=sys.stderr)
        os.replace(tmp, out)
    return out


# ---------------------------------------------------------------------------
# processes, pinning, CPU accounting

NICE = 0          # --nice: scheduling priority of servers and load generators


def pin(cpu):
    """preexec_fn for a child: pin it to cpu (None: leave it) and apply --nice."""
    def setup():
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        if NICE:
            # With sched_autogroup (the default on most distributions), the CPU is shared
            # between sessions first and nice only counts inside a session: give the child
            # its own session and set that session's nice level too.
            try:
                os.setsid()
                with open("/proc/self/autogroup", "w") as f:
                    f.write(str(NICE))
            except OSError:
                pass
            os.setpriority(os.PRIO_PROCESS, 0, NICE)
    return setup


def proc_cpu_s(pid):
    """utime+stime of pid in seconds (from /proc/PID/stat), or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_sched_s(pid):
    """Run time of all threads of pid in seconds, from /proc/PID/task/*/schedstat (ns), or None."""
    total = None
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return None
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                total = (total or 0) + int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return None if total is None else total / 1e9


def machine_busy_s():
    """(busy, total) CPU seconds over all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
    hz = os.sysconf("SC_CLK_TCK")
    return busy / hz, (busy + v[3] + v[4]) / hz


def snapshot_boucle():
    """Copy src/boucle (built extension included) to a temporary directory, so that every
    server of the run imports the same boucle even while someone rebuilds the checkout.
    Returns (path for PYTHONPATH, description) or (REPO_SRC, reason) if there is nothing to copy."""
    src = os.path.join(REPO_SRC, "boucle")
    if not os.path.isdir(src):
        return REPO_SRC, "no src/boucle"
    dest = tempfile.mkdtemp(prefix="boucle-bench-")
    shutil.copytree(src, os.path.join(dest, "boucle"),
                    ignore=shutil.ignore_patterns("__pycache__", "*.o", "build"))
    exts = sorted(f for f in os.listdir(src) if f.startswith("_core.") and f.endswith(".so"))
    built = []
    for f in exts:
        t = datetime.datetime.fromtimestamp(os.path.getmtime(os.path.join(src, f)),
                                            datetime.timezone.utc)
        built.append("%s built %s" % ("-".join(f.split(".")[1].split("-")[:2]), t.strftime("%H:%M:%S UTC")))
    return dest, "snapshot of src/boucle at start (%s)" % (", ".join(built) or "no extension")


def other_benchmarks():
    """pids of load generators / benchmark servers that are not ours (another run of this
    benchmark, or wrk): they compete for the same CPUs."""
    found = set()
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                cmd = f.read().replace(b"\0", b" ")
            with open("/proc/%s/stat" % entry) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == me or int(entry) == me:
            continue
        if (b"boucle-bench/loadgen-" in cmd or b"boucle-bench/echo_c-" in cmd
                or b"echo_servers.py" in cmd or b"http_server.py" in cmd
                or cmd.startswith(b"wrk ") or b"/wrk " in cmd):
            found.add(int(entry))
    return found


def server_env():
    env = dict(os.environ)
    for var in ("PYTHONASYNCIODEBUG", "PYTHONDEVMODE", "PYTHONTRACEMALLOC"):
        env.pop(var, None)
    env["PYTHONPATH"] = BOUCLE_PATH + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


class Server:
    """A server subprocess that prints 'LISTENING <port>' when ready."""

    def __init__(self, cmd, cpu, label):
        self.label = label
        self.errfile = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.errfile,
                                     stdin=subprocess.DEVNULL, env=server_env(),
                                     preexec_fn=pin(cpu))
        self.port = None

    def wait_ready(self, timeout=15.0):
        """Return None when listening, else the reason it is not."""
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        line = b""
        try:
            while time.monotonic() < deadline:
                if not sel.select(max(0.0, deadline - time.monotonic())):
                    continue
                chunk = os.read(self.proc.stdout.fileno(), 256)
                if not chunk:
                    break
                line += chunk
                if b"\n" in line:
                    m = re.match(rb"LISTENING (\d+)", line)
                    if m:
                        self.port = int(m.group(1))
                        return None
                    break
        finally:
            sel.close()
        if self.proc.poll() is None and self.port is None and not line:
            self.stop()
            return "server did not start within %.0f s" % timeout
        self.stop()
        return "server did not start: %s" % (self.stderr_tail() or line.decode(errors="replace").strip()
                                             or "exit status %s" % self.proc.returncode)

    def alive(self):
        return self.proc.poll() is None

    def stderr_tail(self, lines=1):
        self.errfile.seek(0)
        text = [l.rstrip() for l in self.errfile.read().splitlines() if l.strip()]
        return " | ".join(text[-lines:])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()


# ---------------------------------------------------------------------------
# sanity checks: the probe that decides whether a loop/kind can be measured

def recv_exact(sock, n):
    chunks = []
    while n:
        data = sock.recv(min(n, 1 << 20))
        if not data:
            raise ConnectionError("connection closed by the server")
        chunks.append(data)
        n -= len(data)
    return b"".join(chunks)


def check_echo(port):
    """A few round trips with a plain blocking socket; None if all came back intact."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for size in (1, 1024, 100 * 1024, 1024):
                msg = os.urandom(size)
                s.sendall(msg)
                got = recv_exact(s, size)
                if got != msg:
                    return "echo check failed: %d-byte message came back different" % size
        return None
    except (OSError, ConnectionError) as exc:
        return "echo check failed: %s" % (exc or type(exc).__name__)


def check_http(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            buf = b""
            for _ in range(2):        # two requests: keep-alive must work
                s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                while b"\r\n\r\n" not in buf:
                    data = s.recv(65536)
                    if not data:
                        return "HTTP check failed: connection closed"
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 200"):
                    return "HTTP check failed: %r" % head[:40]
                m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                if not m:
                    return "HTTP check failed: no Content-Length"
                n = int(m.group(1))
                while len(buf) < n:
                    data = s.recv(65536)
                    if not data:
                        return "HTTP check failed: connection closed"
                    buf += data
                body, buf = buf[:n], buf[n:]
                if body != HTTP_BODY.encode():
                    return "HTTP check failed: body %r" % body[:40]
        return None
    except OSError as exc:
        return "HTTP check failed: %s" % (exc or type(exc).__name__)


# ---------------------------------------------------------------------------
# one measurement

class Bench:
    def __init__(self, args):
        self.args = args
        self.python = args.python
        self.loadgen = build("loadgen")
        self.echo_c = build("echo_c")
        self.echo_uring = build("echo_uring") if args.c_uring else None
        self.wrk = shutil.which("wrk") if "wrk" in args.http_tools else None
        self.unavailable = {}          # (bench, kind, loop) -> reason, for servers that hang

    def server_cmd(self, bench, kind, loop):
        if loop == "c" and kind == "c-uring":
            return [self.echo_uring, "--setup", "defer"]
        if loop == "c":
            return [self.echo_c] + (["--http"] if bench == "http" else [])
        if bench == "http" and kind == "httptools":
            return [self.python, os.path.join(HERE, "http_server.py"), "--loop", loop]
        if bench == "http":
            return [self.python, os.path.join(HERE, "app_servers.py"), "--app", kind,
                    "--loop", loop]
        return [self.python, os.path.join(HERE, "echo_servers.py"), "--kind", kind, "--loop", loop]

    def start_server(self, bench, kind, loop):
        """Start and probe a server: (Server, None) or (None, reason)."""
        key = (bench, kind, loop)
        if key in self.unavailable:
            return None, self.unavailable[key]
        srv = Server(self.server_cmd(bench, kind, loop), self.args.server_cpu,
                     "%s/%s/%s" % key)
        reason = srv.wait_ready()
        if reason is None:
            reason = check_http(srv.port) if bench == "http" else check_echo(srv.port)
            if reason is not None:
                tail = srv.stderr_tail()
                srv.stop()
                if tail:
                    reason += " (server: %s)" % tail
        if reason is not None:
            if "within" in reason:     # hung at start: don't wait for it again
                self.unavailable[key] = reason
            return None, reason
        return srv, None

    def run_loadgen(self, srv, bench, size):
        a = self.args
        cmd = [self.loadgen, "--port", str(srv.port), "--conns", str(a.conns),
               "--duration", str(a.duration), "--warmup", str(a.warmup),
               "--cpu-pid", str(srv.proc.pid)]
        if bench == "http":
            cmd += ["--mode", "http", "--expect-body", HTTP_BODY]
        else:
            cmd += ["--size", str(size)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True,
                                  timeout=a.warmup + a.duration + 30, preexec_fn=pin(a.client_cpu))
        except subprocess.TimeoutExpired:
            return {"error": "loadgen timed out"}
        try:
            out = json.loads(proc.stdout)
        except (ValueError, IndexError):
            return {"error": "loadgen failed (status %s): %s" % (proc.returncode,
                                                                 (proc.stderr or proc.stdout).strip()[-300:])}
        if "error" in out:
            return out
        srv_cpu = cpu_s = out["server"]["cpu_s"]
        sched = out["server"].get("sched_cpu_s")
        if sched is not None:
            srv_cpu = sched        # same quantity, ns resolution instead of 10 ms ticks
        hz = out["machine"]["clk_tck"]
        dur = out["duration"]
        other = out["machine"]["busy_ticks"] / hz - srv_cpu - out["loadgen_cpu_s"]
        return {
            "requests": out["requests"], "bytes": out["bytes"], "duration": dur,
            "rps": out["rps"],
            "server_cpu_s": srv_cpu, "server_stat_cpu_s": cpu_s, "server_sched_cpu_s": sched,
            "cpu_us_per_req": srv_cpu / out["requests"] * 1e6 if out["requests"] else None,
            "server_util": srv_cpu / dur,
            "client_util": out["loadgen_cpu_s"] / dur,
            "other_util": max(0.0, other / dur),
            "p50_us": out["latency_us"]["p50"], "p90_us": out["latency_us"]["p90"],
            "p99_us": out["latency_us"]["p99"], "max_us": out["latency_us"]["max"],
        }

    def run_wrk(self, srv):
        a = self.args
        url = "http://127.0.0.1:%d/" % srv.port
        base = [self.wrk, "-t1", "-c%d" % a.conns, "--latency"]
        if a.warmup > 0:
            try:
                subprocess.run(base + ["-d%ds" % max(1, round(a.warmup)), url], capture_output=True,
                               timeout=a.warmup + 30, preexec_fn=pin(a.client_cpu))
            except subprocess.TimeoutExpired:
                return {"error": "wrk (warm-up) timed out"}
        try:
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            c0, s0, (b0, _), t0 = (proc_cpu_s(srv.proc.pid), proc_sched_s(srv.proc.pid),
                                   machine_busy_s(), time.monotonic())
            proc = subprocess.Popen(base + ["-d%ds" % max(1, round(a.duration)), url],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    preexec_fn=pin(a.client_cpu))
            text, _ = proc.communicate(timeout=a.duration + 30)
            c1, s1, (b1, _), t1 = (proc_cpu_s(srv.proc.pid), proc_sched_s(srv.proc.pid),
                                   machine_busy_s(), time.monotonic())
            # wrk's own CPU time: it is the only child reaped in between
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            wrk_cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
        except subprocess.TimeoutExpired:
            proc.kill()
            return {"error": "wrk timed out"}
        if c0 is None or c1 is None:
            return {"error": "server died during wrk run"}
        m = re.search(r"(\d+) requests in ([\d.]+)(m?s)", text)
        if not m or proc.returncode != 0:
            return {"error": "wrk failed: %s" % text.strip()[-300:]}
        requests = int(m.group(1))
        dur = float(m.group(2)) / (1000 if m.group(3) == "ms" else 1)
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
        sockerr = re.search(r"Socket errors: (.*)", text)
        if bad or sockerr:
            return {"error": "wrk saw %s" % ("%s non-2xx responses" % bad.group(1) if bad else
                                             "socket errors: " + sockerr.group(1))}

        def lat(p):
            mm = re.search(r"^\s*%d%%\s+([\d.]+)(us|ms|s)\s*$" % p, text, re.M)
            if not mm:
                return None
            return float(mm.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[mm.group(2)]

        srv_cpu = cpu_s = c1 - c0
        sched = s1 - s0 if s0 is not None and s1 is not None else None
        if sched is not None:
            srv_cpu = sched
        wall = t1 - t0
        return {
            "requests": requests, "bytes": None, "duration": dur,
            "rps": requests / dur,
            "server_cpu_s": srv_cpu, "server_stat_cpu_s": cpu_s, "server_sched_cpu_s": sched,
            "cpu_us_per_req": srv_cpu / requests * 1e6 if requests else None,
            "server_util": srv_cpu / wall,
            "client_util": wrk_cpu / wall,
            "other_util": max(0.0, (b1 - b0 - srv_cpu - wrk_cpu) / wall),
            "p50_us": lat(50), "p90_us": lat(90), "p99_us": lat(99), "max_us": None,
        }

    def measure(self, bench, tool, kind, loop, size):
        """One measurement: start server, probe, load, stop.  Returns a row."""
        row = {"bench": bench, "tool": tool, "kind": kind, "loop": loop, "size": size,
               "conns": self.args.conns}
        srv, reason = self.start_server(bench, kind, loop)
        if srv is None:
            row.update(status="skipped", note=reason)
            return row
        others = other_benchmarks()
        try:
            res = self.run_wrk(srv) if tool == "wrk" else self.run_loadgen(srv, bench, size)
            if "error" in res and srv.stderr_tail():
                res["error"] += " (server: %s)" % srv.stderr_tail()
        finally:
            others |= other_benchmarks()
            srv.stop()
        others.discard(srv.proc.pid)
        if others:
            row["concurrent_benchmarks"] = sorted(others)
        if "error" in res:
            row.update(status="error", note=res["error"])
        else:
            row.update(status="ok", **res)
        return row


# ---------------------------------------------------------------------------
# reporting

def fmt_size(n):
    if n is None:
        return "-"
    if n >= 1024 and n % 1024 == 0:
        return "%d KiB" % (n // 1024)
    return "%d B" % n


def parse_size(text):
    text = text.strip().lower().replace("ib", "").replace("b", "")
    mult = 1
    if text.endswith("k"):
        mult, text = 1024, text[:-1]
    elif text.endswith("m"):
        mult, text = 1024 * 1024, text[:-1]
    return int(float(text) * mult)


def add_ratios(rows):
    ok = {(r["bench"], r["tool"], r["kind"], r["loop"], r["size"]): r
          for r in rows if r["status"] == "ok"}
    for r in rows:
        if r["status"] != "ok":
            continue
        ref = ok.get((r["bench"], r["tool"], r["kind"], "uvloop", r["size"]))
        floor = ok.get((r["bench"], r["tool"], "c", "c", r["size"]))
        r["rps_vs_uvloop"] = r["rps"] / ref["rps"] if ref else None
        r["cpu_vs_uvloop"] = (r["cpu_us_per_req"] / ref["cpu_us_per_req"]
                              if ref and r["cpu_us_per_req"] and ref["cpu_us_per_req"] else None)
        r["cpu_vs_c"] = (r["cpu_us_per_req"] / floor["cpu_us_per_req"]
                         if floor and r["cpu_us_per_req"] and floor["cpu_us_per_req"] else None)


COLUMNS = [
    # header, key, format
    ("server", None, None),
    ("loop", None, None),
    ("req/s", "rps", "{:,.0f}"),
    ("req/s ×uvloop", "rps_vs_uvloop", "{:.2f}"),
    ("CPU µs/req", "cpu_us_per_req", "{:.2f}"),
    ("CPU ×uvloop", "cpu_vs_uvloop", "{:.2f}"),
    ("CPU ×C", "cpu_vs_c", "{:.2f}"),
    ("p50 µs", "p50_us", "{:,.0f}"),
    ("p99 µs", "p99_us", "{:,.0f}"),
    ("server CPU", "server_util", "{:.0%}"),
    ("client CPU", "client_util", "{:.0%}"),
    ("other CPU", "other_util", "{:.0%}"),
]


def row_cells(r):
    name = {"c": "C epoll", "c-uring": "C io_uring"}.get(r["kind"], r["kind"])
    cells = [name, "-" if r["loop"] == "c" else r["loop"]]
    if r["status"] != "ok":
        return cells + ["%s: %s" % (r["status"], r["note"])]
    for _, key, fmt in COLUMNS[2:]:
        v = r.get(key)
        cells.append("-" if v is None else fmt.format(v))
    if (r.get("other_util") or 0) > NOISY:
        cells[-1] += " !"
    if r.get("concurrent_benchmarks"):
        cells[-1] += "!"
    return cells


def groups(rows):
    seen = []
    for r in rows:
        g = (r["bench"], r["tool"], r["size"])
        if g not in seen:
            seen.append(g)
    for g in seen:
        yield g, [r for r in rows if (r["bench"], r["tool"], r["size"]) == g]


def group_title(g, args):
    bench, tool, size = g
    if bench == "echo":
        return "echo, %s messages, %d connections, loadgen, %g s" % (fmt_size(size), args.conns,
                                                                     args.duration)
    return "HTTP GET (%d-byte body), %d connections, %s, %g s" % (len(HTTP_BODY), args.conns, tool,
                                                                  args.duration)


def text_table(rows, args):
    out = []
    for g, grp in groups(rows):
        out.append("")
        out.append(group_title(g, args))
        table = [[c[0] for c in COLUMNS]] + [row_cells(r) for r in grp]
        ncols = len(COLUMNS)
        widths = [max(len(t[i]) for t in table if len(t) == ncols or i < 2) for i in range(ncols)]
        for t in table:
            if len(t) < ncols:            # skipped / error row: message spans the rest
                out.append("  " + "  ".join(t[i].ljust(widths[i]) for i in range(2)) + "  " + t[2])
                continue
            out.append("  " + "  ".join(
                t[i].ljust(widths[i]) if i < 2 else t[i].rjust(widths[i]) for i in range(ncols)))
    return "\n".join(out)


def markdown_table(rows, args):
    out = []
    for g, grp in groups(rows):
        out.append("")
        out.append("**%s**" % group_title(g, args))
        out.append("")
        out.append("| " + " | ".join(c[0] for c in COLUMNS) + " |")
        out.append("|" + "|".join([":--", ":--"] + ["--:"] * (len(COLUMNS) - 2)) + "|")
        for r in grp:
            cells = row_cells(r)
            if len(cells) < len(COLUMNS):
                cells = cells[:2] + [cells[2].replace("|", "\\|")] + [""] * (len(COLUMNS) - 3)
            out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def noise_note(noisy, rows):
    concurrent = sorted({p for r in rows for p in r.get("concurrent_benchmarks", ())})
    extra = ""
    if concurrent:
        extra = (" !! marks rows during which another benchmark run (pids %s) was loading "
                 "the same CPUs." % ", ".join(map(str, concurrent[:8])))
    return ("! %d of %d rows ran while other processes used more than %d%% of a CPU "
            "(\"other CPU\"): the machine was shared; CPU per request holds up better than "
            "req/s and latency, but compare those rows with care." % (
                len(noisy), len([r for r in rows if r["status"] == "ok"]), NOISY * 100)) + extra


def target_lines(rows):
    out = []
    ok = {(r["bench"], r["tool"], r["kind"], r["loop"], r["size"]): r
          for r in rows if r["status"] == "ok"}
    for kind, (max_uv, max_c) in TARGETS.items():
        r = ok.get(("echo", "loadgen", kind, "boucle", TARGET_SIZE))
        if r is None:
            continue
        parts = []
        good = True
        if r.get("cpu_vs_uvloop") is not None:
            good &= r["cpu_vs_uvloop"] <= max_uv
            parts.append("%.2fx uvloop (target <= %.2fx)" % (r["cpu_vs_uvloop"], max_uv))
        if max_c is not None and r.get("cpu_vs_c") is not None:
            good &= r["cpu_vs_c"] <= max_c
            parts.append("%.2fx C (target <= %.2fx)" % (r["cpu_vs_c"], max_c))
        if parts:
            out.append("  %-9s %s  %s" % (kind, "MET " if good else "MISS", ", ".join(parts)))
    return out


def metadata(args, bench):
    info = {}
    probe = r"""
import json, platform, sys
d = {"python": platform.python_version(), "implementation": platform.python_implementation(),
     "executable": sys.executable}
for mod in ("uvloop", "httptools", "boucle"):
    try:
        m = __import__(mod)
        d[mod] = getattr(m, "__version__", "?")
    except Exception as exc:
        d[mod] = None
print(json.dumps(d))
"""
    try:
        out = subprocess.run([args.python, "-c", probe], capture_output=True, text=True,
                             env=server_env(), timeout=30)
        info.update(json.loads(out.stdout))
    except (OSError, ValueError, subprocess.TimeoutExpired):
        pass
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
        if commit and subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--", "src"],
                                     capture_output=True, text=True).stdout.strip():
            commit += "+uncommitted src/ changes"
    except OSError:
        commit = ""
    wrk = None
    if bench.wrk:
        wrk = subprocess.run([bench.wrk, "-v"], capture_output=True, text=True).stdout.split("\n")[0]
        wrk = wrk.split(" [")[0].strip() or "wrk"
    info.update({
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu, "ncpu": os.cpu_count(), "kernel": platform.release(),
        "server_cpu": args.server_cpu, "client_cpu": args.client_cpu,
        "commit": commit, "wrk": wrk,
        "loadavg_at_start": os.getloadavg(),
        "conns": args.conns, "duration": args.duration, "warmup": args.warmup,
        "repeat": args.repeat, "nice": args.nice,
    })
    return info


def meta_lines(meta):
    return [
        "date: %s; CPU: %s (%s CPUs; server on CPU %s, load generator on CPU %s); Linux %s"
        % (meta["date"], meta["cpu"], meta["ncpu"], meta["server_cpu"], meta["client_cpu"],
           meta["kernel"]),
        "Python %s (%s); uvloop %s; httptools %s; wrk: %s"
        % (meta.get("python"), meta.get("executable"), meta.get("uvloop"), meta.get("httptools"),
           meta.get("wrk") or "not used"),
        "boucle %s, commit %s, %s"
        % (meta.get("boucle"), meta.get("commit") or "?", meta.get("boucle_source", "?")),
        "%d connections, %g s warm-up + %g s measured per row, best of %d, nice %d; "
        "load average at start %s"
        % (meta["conns"], meta["warmup"], meta["duration"], meta["repeat"], meta.get("nice", 0),
           " ".join("%.2f" % x for x in meta["loadavg_at_start"])),
    ]


# ---------------------------------------------------------------------------

def plan(args, bench):
    """The list of (bench, tool, kind, loop, size) to measure, loops innermost."""
    todo = []
    if "echo" in args.only:
        for size in args.sizes:
            if not args.no_c:
                todo.append(("echo", "loadgen", "c", "c", size))
            if args.c_uring:
                todo.append(("echo", "loadgen", "c-uring", "c", size))
            for kind in args.kinds:
                for loop in args.loops:
                    todo.append(("echo", "loadgen", kind, loop, size))
    if "http" in args.only:
        tools = [t for t in args.http_tools if t == "loadgen" or (t == "wrk" and bench.wrk)]
        for tool in tools:
            if not args.no_c:
                todo.append(("http", tool, "c", "c", None))
            for kind in args.http_kinds:
                for loop in args.loops:
                    todo.append(("http", tool, kind, loop, None))
    return todo


def parse_args(argv):
    ap = argparse.ArgumentParser(
        description="boucle network benchmarks (echo and HTTP) vs asyncio and uvloop",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="See bench/NETWORK.md.")
    ap.add_argument("--quick", action="store_true",
                    help="one message size (1 KiB), 2 s per row, 0.5 s warm-up")
    ap.add_argument("--only", default="echo,http", help="echo, http or both (default)")
    ap.add_argument("--loops", default=",".join(ALL_LOOPS))
    ap.add_argument("--kinds", default=",".join(ALL_KINDS), help="echo server kinds")
    ap.add_argument("--no-c", action="store_true", help="skip the C floor servers")
    ap.add_argument("--c-uring", action="store_true",
                    help="also run bench/echo_uring.c (a C io_uring echo server: recv/send "
                         "by completion, DEFER_TASKRUN) beside the C epoll floor")
    ap.add_argument("--sizes", default=None, help="echo message sizes (default 1k,10k,100k)")
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--duration", type=float, default=None, help="seconds measured per row (5)")
    ap.add_argument("--warmup", type=float, default=None, help="seconds of warm-up per row (1)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run the whole plan N times (rounds); each row keeps its lowest "
                         "CPU per request")
    ap.add_argument("--http-kinds", default="httptools,uvicorn,aiohttp",
                    help="HTTP servers: httptools (a Protocol), uvicorn (httptools), "
                         "uvicorn-h11, aiohttp (aiohttp.web)")
    ap.add_argument("--http-tools", default="loadgen,wrk",
                    help="HTTP load generators: loadgen, wrk (used when installed)")
    ap.add_argument("--python", default=sys.executable, help="interpreter for the Python servers")
    ap.add_argument("--server-cpu", type=int, default=None)
    ap.add_argument("--client-cpu", type=int, default=None)
    ap.add_argument("--nice", type=int, default=0,
                    help="run servers and load generators at this nice level (negative needs root; "
                         "reduces noise from other work on a shared machine)")
    ap.add_argument("--no-snapshot", action="store_true",
                    help="import boucle from src/ for every server instead of from a copy "
                         "taken at the start of the run")
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--markdown", metavar="FILE")
    ap.add_argument("--probe", action="store_true",
                    help="only check which loop/kind servers work, then exit")
    args = ap.parse_args(argv)

    args.only = [x.strip() for x in args.only.split(",") if x.strip()]
    args.loops = [x.strip() for x in args.loops.split(",") if x.strip()]
    args.kinds = [x.strip() for x in args.kinds.split(",") if x.strip()]
    args.http_tools = [x.strip() for x in args.http_tools.split(",") if x.strip()]
    args.http_kinds = [x.strip() for x in args.http_kinds.split(",") if x.strip()]
    for name, values, allowed in (("--only", args.only, ("echo", "http")),
                                  ("--loops", args.loops, ALL_LOOPS),
                                  ("--kinds", args.kinds, ALL_KINDS),
                                  ("--http-kinds", args.http_kinds, ALL_HTTP_KINDS),
                                  ("--http-tools", args.http_tools, ("loadgen", "wrk"))):
        bad = [v for v in values if v not in allowed]
        if bad:
            ap.error("%s: unknown %s (choose from %s)" % (name, ", ".join(bad), ", ".join(allowed)))
    if args.sizes is None:
        args.sizes = "1k" if args.quick else "1k,10k,100k"
    args.sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    if args.duration is None:
        args.duration = 2.0 if args.quick else 5.0
    if args.warmup is None:
        args.warmup = 0.5 if args.quick else 1.0

    cpus = sorted(os.sched_getaffinity(0))
    if args.server_cpu is None:
        args.server_cpu = cpus[0]
    if args.client_cpu is None:
        others = [c for c in cpus if c != args.server_cpu]
        args.client_cpu = others[0] if others else None
    if args.client_cpu is None or args.client_cpu == args.server_cpu:
        print("bench: only one CPU available: server and load generator share it; "
              "CPU per request is still meaningful, requests/s is not", file=sys.stderr)
    return args


def probe(args, bench):
    print("probing servers (start, then a few round trips with a blocking client):")
    c_echo = ["c"] + (["c-uring"] if args.c_uring else [])
    for bench_name, kinds in (("echo", c_echo + args.kinds), ("http", ["c"] + args.http_kinds)):
        if bench_name not in args.only:
            continue
        for kind in kinds:
            for loop in (["c"] if kind in ("c", "c-uring") else args.loops):
                srv, reason = bench.start_server(bench_name, kind, loop)
                if srv:
                    srv.stop()
                print("  %-5s %-10s %-8s %s" % (bench_name, kind, "-" if loop == "c" else loop,
                                                 "ok" if srv else reason))


def main(argv=None):
    global NICE, BOUCLE_PATH
    args = parse_args(argv)
    NICE = args.nice
    if args.client_cpu is not None:
        os.sched_setaffinity(0, {args.client_cpu})     # keep ourselves off the server's CPU
    boucle_source = "live checkout (src/)"
    if any(x.startswith("boucle") for x in args.loops) and not args.no_snapshot:
        BOUCLE_PATH, boucle_source = snapshot_boucle()
    try:
        return run(args, boucle_source)
    finally:
        if BOUCLE_PATH != REPO_SRC:
            shutil.rmtree(BOUCLE_PATH, ignore_errors=True)


def run(args, boucle_source):
    bench = Bench(args)
    if args.probe:
        probe(args, bench)
        return 0
    meta = metadata(args, bench)
    meta["boucle_source"] = boucle_source
    todo = plan(args, bench)
    est = len(todo) * (args.warmup + args.duration + 0.5) * args.repeat
    for line in meta_lines(meta):
        print(line)
    print("%d rows, about %.0f s" % (len(todo), est), flush=True)

    # With --repeat, the whole plan runs again round after round (so every row sees the
    # same machine conditions over time); each row keeps its lowest CPU per request, and
    # a row that fails or is skipped once stays that way.
    best = {}
    t_start = time.monotonic()
    for rnd in range(args.repeat):
        if args.repeat > 1:
            print("round %d of %d" % (rnd + 1, args.repeat))
        for item in todo:
            prev = best.get(item)
            if prev is not None and prev["status"] != "ok":
                continue
            bench_name, tool, kind, loop, size = item
            name = {"c": "C", "c-uring": "C io_uring"}.get(kind, kind)
            label = "%s %s %s %s %s" % (bench_name, tool, name,
                                        "" if loop == "c" else loop, fmt_size(size) if size else "")
            print("  %-45s" % " ".join(label.split()), end="", flush=True)
            row = bench.measure(bench_name, tool, kind, loop, size)
            if row["status"] == "ok":
                print(" %10.0f req/s  %7.2f µs/req  server %3.0f%%" % (
                    row["rps"], row["cpu_us_per_req"], 100 * row["server_util"]), flush=True)
                row["runs"] = (prev or {}).get("runs", []) + [
                    {k: row[k] for k in ("rps", "cpu_us_per_req", "server_util", "other_util")}]
                if prev is None or row["cpu_us_per_req"] < prev["cpu_us_per_req"]:
                    best[item] = row
                else:
                    prev["runs"] = row["runs"]
            else:
                print(" %s: %s" % (row["status"], row["note"]), flush=True)
                best[item] = row
    rows = [best[item] for item in todo]
    elapsed = time.monotonic() - t_start

    add_ratios(rows)
    print(text_table(rows, args))
    targets = target_lines(rows)
    if targets:
        print("\nboucle targets (server CPU per request, echo %s, %d connections):"
              % (fmt_size(TARGET_SIZE), args.conns))
        print("\n".join(targets))
    noisy = [r for r in rows
             if (r.get("other_util") or 0) > NOISY or r.get("concurrent_benchmarks")]
    if noisy:
        print("\n" + noise_note(noisy, rows))
    print("\n(%.0f s)" % elapsed)

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "elapsed_s": elapsed, "results": rows}, f, indent=1)
            f.write("\n")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write("".join("- %s\n" % line for line in meta_lines(meta)))
            f.write(markdown_table(rows, args) + "\n")
            if noisy:
                f.write("\n" + noise_note(noisy, rows) + "\n")
            if targets:
                f.write("\nboucle targets (server CPU per request, echo %s, %d connections):\n\n"
                        % (fmt_size(TARGET_SIZE), args.conns))
                f.write("\n".join("- " + t.strip() for t in targets) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
