#!/usr/bin/env python3
"""TLS echo benchmark: asyncio, uvloop and boucle side by side.

    python bench/tls_bench.py                       # full run (about 2-3 minutes)
    python bench/tls_bench.py --quick               # 1 KiB only, short rows
    python bench/tls_bench.py --loops boucle --kinds protocol --sizes 1k --duration 20 \\
        --keep-server                               # e.g. to attach `perf record -p PID`

Each row starts a fresh TLS echo server (one process, pinned to --server-cpu)
and a load client (another process, pinned to --client-cpu).  The client is
asyncio on uvloop: --conns connections, each with one message in flight
(send S bytes, wait for the same S bytes back, compare, send the next).
Every message is a different window of a random pattern, so a lost,
duplicated or reordered byte stops the run with an error.

Reported per row: requests/s and the server's CPU time per request (all its
threads, from /proc/PID/task/*/schedstat, over the measured window only), and
both as ratios to uvloop's row of the same kind and size.

Server kinds:
  protocol  asyncio.Protocol: data_received(data) -> transport.write(data)
  streams   asyncio.start_server: reader.read(64 KiB) -> writer.write + drain

TLS: the certificates of tests/certs (TLS 1.3, the interpreter's OpenSSL
defaults).  Connections are established before the warm-up: handshakes are
not part of the measured window.
"""

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
REPO_SRC = os.path.join(REPO, "src")
CERTS = os.path.join(REPO, "tests", "certs")
CA_PEM = os.path.join(CERTS, "ca.pem")
SERVER_PEM = os.path.join(CERTS, "server.pem")

LOOPS = ("asyncio", "uvloop", "boucle")
KINDS = ("protocol", "streams")
SIZES = {"1k": 1024, "10k": 10 * 1024, "100k": 100 * 1024}
READ_SIZE = 64 * 1024


def new_loop(name):
    if name == "asyncio":
        return asyncio.new_event_loop()
    if name == "uvloop":
        import uvloop
        return uvloop.new_event_loop()
    if name == "boucle":
        try:
            import boucle
        except ImportError:
            sys.path.insert(0, REPO_SRC)
            import boucle
        return boucle.new_event_loop()
    raise ValueError("unknown loop %r" % name)


def server_ctx():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(SERVER_PEM)
    return ctx


def client_ctx():
    return ssl.create_default_context(cafile=CA_PEM)


# ---------------------------------------------------------------------------
# server process


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, tr):
        self.tr = tr

    def data_received(self, data):
        self.tr.write(data)


async def echo_streams(reader, writer):
    try:
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


def serve(args):
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    loop = new_loop(args.loop)
    asyncio.set_event_loop(loop)
    ctx = server_ctx()

    async def start():
        if args.kind == "protocol":
            return await loop.create_server(EchoProtocol, "127.0.0.1", 0, ssl=ctx,
                                            backlog=1024)
        return await asyncio.start_server(echo_streams, "127.0.0.1", 0, ssl=ctx,
                                          backlog=1024)

    srv = loop.run_until_complete(start())
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    print("LISTENING %d" % srv.sockets[0].getsockname()[1], flush=True)
    loop.run_forever()
    srv.close()
    loop.close()


# ---------------------------------------------------------------------------
# client process


class EchoClient(asyncio.Protocol):
    def __init__(self, runner):
        self.r = runner
        self.count = 0
        self.offset = 0

    def connection_made(self, tr):
        self.tr = tr
        self.r.connected += 1
        if self.r.connected == self.r.conns:
            self.r.all_connected.set_result(None)

    def send(self):
        r = self.r
        self.offset = (self.offset * 7919 + self.count * 31 + 1) % r.window
        self.expected = r.pattern[self.offset:self.offset + r.size]
        self.got = bytearray()
        self.t0 = time.perf_counter()
        self.tr.write(self.expected)

    def data_received(self, data):
        self.got += data
        n = len(self.got)
        if n < self.r.size:
            if self.got != self.expected[:n]:
                self.r.fail("corrupted echo (partial)")
            return
        if n > self.r.size or self.got != self.expected:
            self.r.fail("corrupted echo: %d bytes, expected %d" % (n, self.r.size))
            return
        self.count += 1
        self.r.done_one(time.perf_counter() - self.t0)
        if not self.r.stopping:
            self.send()

    def connection_lost(self, exc):
        if not self.r.stopping:
            self.r.fail("connection lost: %r" % (exc,))


class ClientRunner:
    def __init__(self, loop, args):
        self.loop = loop
        self.conns = args.conns
        self.size = args.size
        self.window = 1 << 16
        self.pattern = os.urandom(self.window + self.size)
        self.connected = 0
        self.all_connected = loop.create_future()
        self.stopping = False
        self.measuring = False
        self.requests = 0
        self.latencies = []
        self.error = None

    def fail(self, msg):
        if self.error is None:
            self.error = msg
            self.loop.stop()

    def done_one(self, latency):
        if self.measuring:
            self.requests += 1
            if len(self.latencies) < 200000:
                self.latencies.append(latency)


def run_client(args):
    os.sched_setaffinity(0, {args.cpu})
    import uvloop
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    r = ClientRunner(loop, args)
    ctx = client_ctx()

    async def main():
        protos = []
        for _ in range(args.conns):
            _, p = await loop.create_connection(lambda: EchoClient(r), "127.0.0.1",
                                                args.port, ssl=ctx,
                                                server_hostname="localhost")
            protos.append(p)
        for p in protos:
            p.send()
        await asyncio.sleep(args.warmup)
        if r.error:
            return
        print("START", flush=True)  # the parent samples the server's CPU now
        r.measuring = True
        t0 = time.perf_counter()
        await asyncio.sleep(args.duration)
        r.measuring = False
        elapsed = time.perf_counter() - t0
        print("STOP", flush=True)
        r.stopping = True
        r.elapsed = elapsed
        for p in protos:
            p.tr.close()
        await asyncio.sleep(0.1)

    task = loop.create_task(main())
    try:
        loop.run_until_complete(task)
    except RuntimeError:
        pass  # loop stopped by fail()
    if r.error:
        print("RESULT " + json.dumps({"error": r.error}), flush=True)
        sys.exit(1)
    lat = sorted(r.latencies)
    res = {"requests": r.requests, "elapsed": r.elapsed,
           "p50_ms": lat[len(lat) // 2] * 1e3 if lat else None,
           "p99_ms": lat[int(len(lat) * 0.99)] * 1e3 if lat else None}
    print("RESULT " + json.dumps(res), flush=True)


# ---------------------------------------------------------------------------
# driver


def cpu_seconds(pid):
    """Run time of all threads of pid (s), from /proc/PID/task/*/schedstat."""
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total / 1e9


def snapshot_src():
    """Copy src/boucle (with its built extension) so a rebuild mid-run is harmless."""
    d = tempfile.mkdtemp(prefix="boucle-tlsbench-")
    shutil.copytree(os.path.join(REPO_SRC, "boucle"), os.path.join(d, "boucle"),
                    ignore=shutil.ignore_patterns("__pycache__", "*.c", "*.h", "*.o"))
    return d


def probe(port, size):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with client_ctx().wrap_socket(raw, server_hostname="localhost") as s:
            msg = os.urandom(size)
            s.sendall(msg)
            got = b""
            while len(got) < size:
                chunk = s.recv(size - len(got))
                if not chunk:
                    raise RuntimeError("server closed during probe")
                got += chunk
            if got != msg:
                raise RuntimeError("probe: wrong echo")


def run_row(args, env, loop_name, kind, size):
    me = os.path.abspath(__file__)
    srv = subprocess.Popen([args.python, me, "_serve", "--loop", loop_name, "--kind", kind,
                            "--cpu", str(args.server_cpu)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    row = {"loop": loop_name, "kind": kind, "size": size}
    try:
        line = srv.stdout.readline()
        if not line.startswith("LISTENING"):
            err = srv.stderr.read().strip().splitlines()
            row["skipped"] = err[-1] if err else "server did not start"
            return row
        port = int(line.split()[1])
        probe(port, size)
        cli = subprocess.Popen([args.python, me, "_client", "--port", str(port),
                                "--size", str(size), "--conns", str(args.conns),
                                "--duration", str(args.duration), "--warmup", str(args.warmup),
                                "--cpu", str(args.client_cpu)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True, env=env)
        line = cli.stdout.readline()
        if line.strip() != "START":
            rest = line + cli.stdout.read()
            row["error"] = rest.strip().splitlines()[-1] if rest.strip() else "client failed"
            cli.wait()
            return row
        c0 = cpu_seconds(srv.pid)
        line = cli.stdout.readline()
        c1 = cpu_seconds(srv.pid)
        if line.strip() == "STOP":
            line = cli.stdout.readline()
        cli.wait(30)
        if not line.startswith("RESULT"):
            row["error"] = "client: %r" % line
            return row
        res = json.loads(line[len("RESULT "):])
        if "error" in res:
            row["error"] = res["error"]
            return row
        row.update(res)
        row["rps"] = res["requests"] / res["elapsed"]
        row["server_cpu_s"] = c1 - c0
        row["cpu_us_per_req"] = (c1 - c0) / res["requests"] * 1e6 if res["requests"] else None
        row["server_util"] = (c1 - c0) / res["elapsed"]
        if args.keep_server:
            print("server pid %d (Enter to stop it)" % srv.pid, file=sys.stderr)
            input()
        return row
    except Exception as exc:  # noqa: BLE001
        row["error"] = "%s: %s" % (type(exc).__name__, exc)
        return row
    finally:
        if srv.poll() is None:
            srv.send_signal(signal.SIGTERM)
            try:
                srv.wait(5)
            except subprocess.TimeoutExpired:
                srv.kill()
                srv.wait()


def versions(python):
    code = ("import sys, ssl, json\n"
            "try:\n import uvloop; u = uvloop.__version__\n"
            "except ImportError: u = None\n"
            "print(json.dumps([sys.version.split()[0], ssl.OPENSSL_VERSION, u]))")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    py, openssl, uv = json.loads(out.stdout)
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        rev = subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"],
                             capture_output=True, text=True).stdout.strip()
    except OSError:
        rev = "?"
    return {"python": py, "openssl": openssl, "uvloop": uv, "cpu": cpu,
            "boucle_rev": rev, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def fmt_ratio(x):
    return "%.2fx" % x if x is not None else "-"


def table(rows, meta):
    out = ["TLS echo, %(date)s, %(cpu)s, Python %(python)s, uvloop %(uvloop)s, %(openssl)s, "
           "boucle %(boucle_rev)s" % meta, ""]
    out.append("| size | kind | loop | req/s | server CPU us/req | server CPU busy | p50 ms "
               "| p99 ms | req/s vs uvloop | CPU/req vs uvloop |")
    out.append("|:--|:--|:--|--:|--:|--:|--:|--:|--:|--:|")
    for r in rows:
        base = next((b for b in rows if b["loop"] == "uvloop" and b["kind"] == r["kind"]
                     and b["size"] == r["size"] and "rps" in b), None)
        size = "%d KiB" % (r["size"] // 1024)
        if "rps" not in r:
            out.append("| %s | %s | %s | %s | | | | | | |" % (
                size, r["kind"], r["loop"], r.get("error") or r.get("skipped")))
            continue
        out.append("| %s | %s | %s | %.0f | %.1f | %.0f%% | %.2f | %.2f | %s | %s |" % (
            size, r["kind"], r["loop"], r["rps"], r["cpu_us_per_req"],
            100 * r["server_util"], r["p50_ms"], r["p99_ms"],
            fmt_ratio(r["rps"] / base["rps"] if base else None),
            fmt_ratio(r["cpu_us_per_req"] / base["cpu_us_per_req"] if base else None)))
    return "\n".join(out)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "_serve":
        p = argparse.ArgumentParser()
        p.add_argument("_cmd")
        p.add_argument("--loop", required=True)
        p.add_argument("--kind", required=True, choices=KINDS)
        p.add_argument("--cpu", type=int)
        return serve(p.parse_args())
    if len(sys.argv) > 1 and sys.argv[1] == "_client":
        p = argparse.ArgumentParser()
        p.add_argument("_cmd")
        for a in ("--port", "--size", "--conns", "--cpu"):
            p.add_argument(a, type=int, required=True)
        p.add_argument("--duration", type=float, required=True)
        p.add_argument("--warmup", type=float, required=True)
        return run_client(p.parse_args())

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--loops", default=",".join(LOOPS))
    p.add_argument("--kinds", default=",".join(KINDS))
    p.add_argument("--sizes", default=None, help="1k,100k (default; --quick: 1k)")
    p.add_argument("--conns", type=int, default=20)
    p.add_argument("--duration", type=float, default=None, help="seconds (default 5, --quick 2)")
    p.add_argument("--warmup", type=float, default=None, help="seconds (default 1, --quick 0.5)")
    p.add_argument("--repeat", type=int, default=1,
                   help="rounds over the whole plan; each row keeps its lowest CPU/request")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--server-cpu", type=int, default=None)
    p.add_argument("--client-cpu", type=int, default=None)
    p.add_argument("--no-snapshot", action="store_true",
                   help="import boucle from src/ directly (default: a copy made at start)")
    p.add_argument("--keep-server", action="store_true",
                   help="after each row, wait for Enter before stopping the server")
    p.add_argument("--json")
    p.add_argument("--markdown")
    args = p.parse_args()
    sizes = args.sizes or ("1k" if args.quick else "1k,100k")
    sizes = [SIZES[s] if s in SIZES else int(s) for s in sizes.split(",")]
    if args.duration is None:
        args.duration = 2.0 if args.quick else 5.0
    if args.warmup is None:
        args.warmup = 0.5 if args.quick else 1.0
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        sys.exit("needs two CPUs (server and client each pinned to one)")
    if args.server_cpu is None:
        args.server_cpu = cpus[0]
    if args.client_cpu is None:
        args.client_cpu = cpus[1]
    os.sched_setaffinity(0, {args.client_cpu})

    env = dict(os.environ)
    snap = None
    if not args.no_snapshot:
        snap = snapshot_src()
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [snap, env.get("PYTHONPATH")]))
    else:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO_SRC, env.get("PYTHONPATH")]))

    meta = versions(args.python)
    plan = [(s, k, lp) for s in sizes for k in args.kinds.split(",")
            for lp in args.loops.split(",")]
    best = {}
    all_rows = []
    try:
        for rnd in range(args.repeat):
            for s, k, lp in plan:
                print("round %d: %s %s %d ..." % (rnd + 1, lp, k, s), file=sys.stderr, flush=True)
                row = run_row(args, env, lp, k, s)
                row["round"] = rnd + 1
                all_rows.append(row)
                key = (s, k, lp)
                old = best.get(key)
                if old is None or ("rps" in row and ("rps" not in old
                                                     or row["cpu_us_per_req"] < old["cpu_us_per_req"])):
                    best[key] = row
    finally:
        if snap:
            shutil.rmtree(snap, ignore_errors=True)
    rows = [best[key] for key in plan]
    text = table(rows, meta)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "args": vars(args), "rows": all_rows}, f, indent=1)
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
