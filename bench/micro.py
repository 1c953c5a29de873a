#!/usr/bin/env python3
"""boucle micro benchmarks, side by side with asyncio and uvloop.

Every workload runs on every available loop in the same process.  Each
measurement gets a fresh loop; measurements are repeated (default 5 times)
and the best time is kept.  Loops are interleaved between repeats (and their
order rotated), so machine noise is shared instead of landing on one loop.
Every workload verifies what it computed (callbacks run, their order, sums,
counts) and fails loudly if a loop got it wrong: a broken loop cannot look
fast.

    python bench/micro.py [--quick] [--only NAME...] [--loops asyncio,uvloop,boucle]
                          [--repeat N] [--json FILE] [--markdown FILE] [--progress]
                          [--png FILE] [--write-docs]

See bench/README.md for what each workload measures.
"""

import argparse
import asyncio
import datetime
import fnmatch
import gc
import json
import math
import os
import platform
import random
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
REPO_SRC = os.path.join(REPO, "src")

perf_counter = time.perf_counter


# ---------------------------------------------------------------------------
# Workloads
#
# Each workload is ``fn(loop, n, data) -> (seconds, observed)`` and times only
# the loop's work (scheduling + running), not the preparation of its inputs;
# ``check(observed, n) -> None | str`` says what went wrong, if anything.
# ``prepare(n)`` builds input data once per size, outside every measurement.
# ---------------------------------------------------------------------------

class Workload:
    def __init__(self, name, title, size, fn, check, doc, prepare=None):
        self.name = name
        self.title = title        # "call_soon {n}" -> "call_soon 1M"
        self.size = size          # full-size n
        self.fn = fn
        self.check = check
        self.doc = doc
        self.prepare = prepare

    def label(self, n):
        return self.title.format(n=human(n))


def human(n):
    if n >= 1_000_000 and n % 100_000 == 0:
        s = "%gM" % (n / 1e6)
    elif n >= 1000 and n % 100 == 0:
        s = "%gk" % (n / 1e3)
    else:
        s = str(n)
    return s


def check_sequence(out, n):
    if len(out) != n:
        return "ran %d callbacks, expected %d" % (len(out), n)
    if out != list(range(n)):
        first = next(i for i, v in enumerate(out) if v != i)
        return "callbacks ran out of FIFO order (first at position %d: got %r)" % (
            first, out[first])
    return None


def check_equal(expected_fn):
    def check(observed, n):
        expected = expected_fn(n)
        if observed != expected:
            return "got %r, expected %r" % (observed, expected)
        return None
    return check


CALL_SOON_BATCH = 1000


def wl_call_soon(loop, n, data):
    """n no-op callbacks, scheduled in batches of 1000 by a driver callback."""
    out = []
    append = out.append
    call_soon = loop.call_soon
    stop = loop.stop
    pos = 0

    def driver():
        nonlocal pos
        end = min(pos + CALL_SOON_BATCH, n)
        for k in range(pos, end):
            call_soon(append, k)
        pos = end
        if pos < n:
            call_soon(driver)
        else:
            call_soon(stop)

    t0 = perf_counter()
    call_soon(driver)
    loop.run_forever()
    t1 = perf_counter()
    return t1 - t0, out


def wl_call_soon_all(loop, n, data):
    """n no-op callbacks, all scheduled before the loop starts."""
    out = []
    append = out.append
    call_soon = loop.call_soon
    t0 = perf_counter()
    for k in range(n):
        call_soon(append, k)
    call_soon(loop.stop)
    loop.run_forever()
    t1 = perf_counter()
    return t1 - t0, out


def wl_call_soon_chain(loop, n, data):
    """Each callback schedules the next one: one callback per loop iteration."""
    call_soon = loop.call_soon
    stop = loop.stop
    count = 0

    def step():
        nonlocal count
        count += 1
        if count < n:
            call_soon(step)
        else:
            stop()

    t0 = perf_counter()
    call_soon(step)
    loop.run_forever()
    t1 = perf_counter()
    return t1 - t0, count


def wl_call_soon_chain_fd(loop, n, data):
    """The chain, with an idle socket registered for reading (as in any real
    program): a loop may skip polling when it watches no fd, not here."""
    import socket
    a, b = socket.socketpair()
    woken = 0

    def on_read():
        nonlocal woken
        woken += 1

    try:
        loop.add_reader(a.fileno(), on_read)
        seconds, count = wl_call_soon_chain(loop, n, data)
        loop.remove_reader(a.fileno())
    finally:
        a.close()
        b.close()
    return seconds, (count, woken)


def prepare_delays(n):
    rnd = random.Random(12345)
    return [rnd.random() * 0.010 for _ in range(n)]


def _timers(loop, n, delays, cancel_half):
    call_later = loop.call_later
    stop = loop.stop
    fired = 0
    wrong = 0
    target = n - n // 2 if cancel_half else n

    def fire():
        nonlocal fired
        fired += 1
        if fired == target:
            stop()

    def must_not_fire():
        nonlocal wrong
        wrong += 1

    t0 = perf_counter()
    if cancel_half:
        handles = [call_later(d, must_not_fire if i & 1 else fire)
                   for i, d in enumerate(delays)]
        for h in handles[1::2]:
            h.cancel()
    else:
        for d in delays:
            call_later(d, fire)
    loop.run_forever()
    t1 = perf_counter()
    # Outside the timed window: give any straggler (a cancelled timer that
    # still fires, a timer fired twice) a chance to show up.
    loop.run_until_complete(asyncio.sleep(0.015))
    return t1 - t0, (fired, wrong)


def wl_call_later(loop, n, data):
    """n timers with random delays in [0, 10 ms), run until all fired."""
    return _timers(loop, n, data, False)


def wl_call_later_cancel(loop, n, data):
    """n timers, every second one cancelled right after scheduling."""
    return _timers(loop, n, data, True)


def wl_sleep0(loop, n, data):
    """2 tasks, each doing n ``await asyncio.sleep(0)``: they must alternate."""
    sleep = asyncio.sleep
    last = -1
    switches = 0
    steps = [0, 0]

    async def pinger(me):
        nonlocal last, switches
        for _ in range(n):
            if last != me:
                switches += 1
                last = me
            steps[me] += 1
            await sleep(0)

    async def main():
        a = loop.create_task(pinger(0))
        b = loop.create_task(pinger(1))
        await a
        await b

    t0 = perf_counter()
    loop.run_until_complete(main())
    t1 = perf_counter()
    return t1 - t0, (steps, switches)


def wl_futures(loop, n, data):
    """A task awaits n futures, each resolved by a call_soon callback."""
    async def main():
        create_future = loop.create_future
        call_soon = loop.call_soon
        total = 0
        for i in range(n):
            fut = create_future()
            call_soon(fut.set_result, i)
            total += await fut
        return total

    t0 = perf_counter()
    total = loop.run_until_complete(main())
    t1 = perf_counter()
    return t1 - t0, total


def wl_gather(loop, n, data):
    """asyncio.gather() of n coroutines, each yielding once (sleep(0))."""
    sleep = asyncio.sleep
    gather = asyncio.gather

    async def leaf(i):
        await sleep(0)
        return i

    async def main():
        return await gather(*[leaf(i) for i in range(n)])

    t0 = perf_counter()
    out = loop.run_until_complete(main())
    t1 = perf_counter()
    return t1 - t0, out


def wl_queue(loop, n, data):
    """Two tasks pass an item back and forth through two asyncio.Queues."""
    async def main():
        q1 = asyncio.Queue()
        q2 = asyncio.Queue()

        async def pong():
            get = q1.get
            put = q2.put
            while True:
                x = await get()
                if x is None:
                    return
                await put(x + 1)

        t = loop.create_task(pong())
        put = q1.put
        get = q2.get
        trips = 0
        for i in range(n):
            await put(i)
            if await get() == i + 1:
                trips += 1
        await put(None)
        await t
        return trips

    t0 = perf_counter()
    trips = loop.run_until_complete(main())
    t1 = perf_counter()
    return t1 - t0, trips


CREATE_TASK_BATCH = 100


def wl_create_task(loop, n, data):
    """create_task() n short coroutines (batches of 100) and await them."""
    async def short(i):
        return i

    async def main():
        create_task = loop.create_task
        total = 0
        for base in range(0, n, CREATE_TASK_BATCH):
            tasks = [create_task(short(i))
                     for i in range(base, min(base + CREATE_TASK_BATCH, n))]
            for t in tasks:
                total += await t
        return total

    t0 = perf_counter()
    total = loop.run_until_complete(main())
    t1 = perf_counter()
    return t1 - t0, total


TREE_BRANCHES = 6


def _tree_levels(n):
    """Levels of a tree of TREE_BRANCHES-way nodes with about n leaves."""
    levels = 1
    while TREE_BRANCHES ** (levels + 1) <= n:
        levels += 1
    return levels


def _task_tree(loop, n, eager):
    # A gather() tree whose leaves finish without awaiting: what a program
    # fanning out to mostly-cached work does. Every node is a task; with
    # the eager factory each runs its first step inside create_task().
    gather = asyncio.gather

    async def node(level):
        if level == 0:
            return 1
        counts = await gather(*[node(level - 1) for _ in range(TREE_BRANCHES)])
        return sum(counts)

    async def main():
        if eager:
            loop.set_task_factory(asyncio.eager_task_factory)
        return await node(_tree_levels(n))

    t0 = perf_counter()
    leaves = loop.run_until_complete(main())
    t1 = perf_counter()
    return t1 - t0, leaves


def wl_task_tree(loop, n, data):
    """gather() tree, 6 children per node, leaves return at once."""
    return _task_tree(loop, n, eager=False)


def wl_task_tree_eager(loop, n, data):
    """The same tree with asyncio.eager_task_factory (3.12+)."""
    if not hasattr(asyncio, "eager_task_factory"):
        raise RuntimeError("eager tasks are new in Python 3.12")
    return _task_tree(loop, n, eager=True)


def _tri(n):
    return n * (n - 1) // 2


WORKLOADS = [
    Workload("call_soon", "call_soon {n}", 1_000_000, wl_call_soon, check_sequence,
             "no-op callbacks, scheduled in batches of 1000 from a callback; "
             "checks count and FIFO order"),
    Workload("call_soon_all", "call_soon {n} (all at once)", 1_000_000, wl_call_soon_all,
             check_sequence,
             "no-op callbacks, all scheduled before run_forever(); checks count and order"),
    Workload("call_soon_chain", "call_soon chain {n}", 1_000_000, wl_call_soon_chain,
             check_equal(lambda n: n),
             "each callback schedules the next (one callback per loop iteration)"),
    Workload("call_soon_chain_fd", "call_soon chain {n}, idle fd", 1_000_000,
             wl_call_soon_chain_fd, check_equal(lambda n: (n, 0)),
             "the chain with an idle socket registered for reading, so every "
             "iteration polls"),
    Workload("call_later", "call_later {n} timers", 200_000, wl_call_later,
             check_equal(lambda n: (n, 0)),
             "timers with random delays 0..10 ms, run until all fired",
             prepare_delays),
    Workload("call_later_cancel", "call_later {n}, half cancelled", 200_000,
             wl_call_later_cancel, check_equal(lambda n: (n - n // 2, 0)),
             "same, every second timer cancelled; cancelled ones must never fire",
             prepare_delays),
    Workload("sleep0", "sleep(0) ping 2x{n}", 200_000, wl_sleep0,
             check_equal(lambda n: ([n, n], 2 * n)),
             "2 tasks each doing n `await asyncio.sleep(0)`; checks they alternate"),
    Workload("futures", "futures {n}", 300_000, wl_futures, check_equal(_tri),
             "a task awaits n futures, each resolved by a call_soon callback"),
    Workload("gather", "gather {n} coroutines", 100_000, wl_gather,
             check_equal(lambda n: list(range(n))),
             "asyncio.gather() of n coroutines that each sleep(0) once"),
    Workload("queue", "Queue ping-pong {n}", 200_000, wl_queue, check_equal(lambda n: n),
             "two tasks pass an item back and forth through two asyncio.Queues"),
    Workload("create_task", "create_task {n}", 200_000, wl_create_task, check_equal(_tri),
             "create_task() of short coroutines in batches of 100, each awaited"),
    Workload("task_tree", "gather tree, <= {n} leaves", 6 ** 6, wl_task_tree,
             check_equal(lambda n: TREE_BRANCHES ** _tree_levels(n)),
             "gather() of 6 children per node down to leaves that return at once; "
             "counts the leaves"),
    Workload("task_tree_eager", "gather tree, <= {n} leaves, eager", 6 ** 6, wl_task_tree_eager,
             check_equal(lambda n: TREE_BRANCHES ** _tree_levels(n)),
             "the same tree with asyncio.eager_task_factory (Python 3.12+)"),
]


# ---------------------------------------------------------------------------
# Loops
# ---------------------------------------------------------------------------

LOOP_NAMES = ("asyncio", "uvloop", "boucle")


class LoopSpec:
    def __init__(self, name):
        self.name = name
        self.factory = None
        self.version = None
        self.origin = None
        self.note = None            # why it is missing

    @property
    def available(self):
        return self.factory is not None


def _git_describe(path):
    try:
        out = subprocess.run(
            ["git", "-C", path, "describe", "--always", "--dirty"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=5, text=True)
        return out.stdout.strip() or None
    except Exception:
        return None


def _import_boucle():
    """Import boucle: installed first, else this checkout's src/ (in-place build)."""
    try:
        import boucle
        return boucle
    except ImportError as exc:
        first = exc
    if os.path.isdir(os.path.join(REPO_SRC, "boucle")) and REPO_SRC not in sys.path:
        sys.path.insert(0, REPO_SRC)
        for mod in [m for m in sys.modules if m == "boucle" or m.startswith("boucle.")]:
            del sys.modules[mod]
        try:
            import boucle
            return boucle
        except ImportError as exc:
            raise exc from first
    raise first


def _pkg_version(module, dist):
    v = getattr(module, "__version__", None)
    if v:
        return str(v)
    try:
        from importlib import metadata
        return metadata.version(dist)
    except Exception:
        return None


def find_loop(name):
    spec = LoopSpec(name)
    try:
        if name == "asyncio":
            factory = asyncio.SelectorEventLoop   # asyncio's default loop on Linux
            spec.version = "stdlib " + platform.python_version()
            spec.origin = "asyncio.SelectorEventLoop"
        elif name == "uvloop":
            import uvloop
            factory = uvloop.new_event_loop
            spec.version = _pkg_version(uvloop, "uvloop")
            spec.origin = os.path.dirname(uvloop.__file__)
        elif name == "boucle":
            boucle = _import_boucle()
            factory = getattr(boucle, "new_event_loop", None)
            if factory is None:
                raise RuntimeError("boucle imports but has no new_event_loop() "
                                   "(extension not built?)")
            spec.version = _pkg_version(boucle, "boucle") or "dev"
            spec.origin = os.path.dirname(os.path.abspath(boucle.__file__))
            if spec.origin.startswith(REPO + os.sep):
                rev = _git_describe(REPO)
                if rev:
                    spec.version += " (git %s)" % rev
        else:
            raise ValueError("unknown loop %r" % name)
        # Smoke test: it must create a loop that runs a callback and closes.
        loop = factory()
        try:
            if not isinstance(loop, asyncio.AbstractEventLoop):
                raise TypeError("%r is not an asyncio.AbstractEventLoop" % (loop,))
            box = []
            loop.call_soon(box.append, 1)
            loop.call_soon(loop.stop)
            loop.run_forever()
            if box != [1]:
                raise RuntimeError("smoke test: callback did not run")
        finally:
            loop.close()
        spec.factory = factory
    except Exception as exc:
        msg = "%s: %s" % (type(exc).__name__, exc)
        spec.note = msg.splitlines()[0][:200] if msg else type(exc).__name__
    return spec


# ---------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------

class BenchTimeout(KeyboardInterrupt):
    """Raised from SIGALRM.  A KeyboardInterrupt subclass on purpose: asyncio
    (and well-behaved loops) let KeyboardInterrupt escape from callbacks and
    tasks instead of logging it, so a hung measurement is really interrupted."""


def _on_alarm(signum, frame):
    raise BenchTimeout()


def measure(spec, wl, n, data, timeout, no_gc=False):
    """One measurement on a fresh loop: (seconds, None) or (None, error)."""
    errors = []

    def handler(loop, context):
        exc = context.get("exception")
        msg = context.get("message", "")
        errors.append("%s%s" % (msg, (": %r" % (exc,)) if exc is not None else ""))

    loop = None
    use_alarm = timeout and hasattr(signal, "setitimer")
    try:
        loop = spec.factory()
        loop.set_exception_handler(handler)
        gc.collect()
        if no_gc:
            gc.disable()
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            seconds, observed = wl.fn(loop, n, data)
        finally:
            if use_alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
            gc.enable()
    except BenchTimeout:
        return None, "timed out after %gs" % timeout
    except Exception as exc:
        return None, "%s: %s" % (type(exc).__name__, exc)
    finally:
        if loop is not None:
            try:
                if not loop.is_running():
                    loop.close()
            except Exception:
                pass
            try:
                asyncio.events._set_running_loop(None)
            except Exception:
                pass
        loop = None
    problem = wl.check(observed, n)
    if problem:
        return None, "wrong result: " + problem
    if errors:
        return None, "exception handler called %d time(s): %s" % (len(errors), errors[0])
    if not (seconds > 0 and math.isfinite(seconds)):
        return None, "bogus time %r" % (seconds,)
    return seconds, None


class Progress:
    """One-line progress display on stderr."""

    def __init__(self, enabled, total):
        self.enabled = enabled
        self.total = total
        self.done = 0
        self.start = perf_counter()
        self.width = 0

    def show(self, text):
        if not self.enabled:
            return
        elapsed = perf_counter() - self.start
        eta = ""
        if self.done:
            eta = "  eta ~%s" % fmt_clock(elapsed / self.done * (self.total - self.done))
        line = "[%*d/%d] %s  %s%s" % (len(str(self.total)), self.done, self.total,
                                      text, fmt_clock(elapsed), eta)
        try:
            cols = os.get_terminal_size(sys.stderr.fileno()).columns - 1
        except OSError:
            cols = 119
        line = line[:cols]
        pad = max(0, self.width - len(line))
        sys.stderr.write("\r" + line + " " * pad)
        sys.stderr.flush()
        self.width = len(line)

    def clear(self):
        if self.enabled and self.width:
            sys.stderr.write("\r" + " " * self.width + "\r")
            sys.stderr.flush()
            self.width = 0


def fmt_clock(seconds):
    seconds = int(seconds)
    return "%d:%02d" % (seconds // 60, seconds % 60)


def run_all(specs, workloads, scale, repeat, timeout, progress, no_gc=False):
    results = []
    total = len(workloads) * repeat * len(specs)
    prog = Progress(progress, total)
    prev_alarm = None
    if timeout and hasattr(signal, "setitimer"):
        prev_alarm = signal.signal(signal.SIGALRM, _on_alarm)
    try:
        for wl in workloads:
            n = max(1, int(round(wl.size * scale)))
            data = wl.prepare(n) if wl.prepare else None
            res = {"name": wl.name, "label": wl.label(n), "n": n, "doc": wl.doc,
                   "loops": {s.name: {"times": [], "error": None} for s in specs}}
            for rep in range(repeat):
                # rotate the order each repeat so no loop always runs first
                k = rep % len(specs)
                for spec in specs[k:] + specs[:k]:
                    cell = res["loops"][spec.name]
                    if cell["error"] is None:
                        prog.show("%s | %s | rep %d/%d" % (wl.label(n), spec.name,
                                                           rep + 1, repeat))
                        seconds, err = measure(spec, wl, n, data, timeout, no_gc)
                        if err:
                            cell["error"] = err
                        else:
                            cell["times"].append(seconds)
                    prog.done += 1
            for cell in res["loops"].values():
                if cell["error"] is None and cell["times"]:
                    cell["best"] = min(cell["times"])
                    cell["ops_per_sec"] = n / cell["best"]
                else:
                    cell["best"] = None
                    cell["ops_per_sec"] = None
            results.append(res)
            data = None
            gc.collect()
    finally:
        prog.clear()
        if prev_alarm is not None:
            signal.signal(signal.SIGALRM, prev_alarm)
    return results


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _loadavg():
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def metadata(specs, args, scale):
    try:
        ncpu = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        ncpu = os.cpu_count()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "python_impl": platform.python_implementation(),
        "python_build": sys.version.replace("\n", " "),
        "executable": sys.executable,
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "cpus_usable": ncpu,
        "pinned_cpu": args.cpu,
        "os": "%s %s %s" % (platform.system(), platform.release(), platform.machine()),
        "loadavg_start": _loadavg(),
        "repeat": args.repeat,
        "scale": scale,
        "gc": not args.no_gc,
        "loops": {s.name: {"available": s.available, "version": s.version,
                           "origin": s.origin, "note": s.note} for s in specs},
    }


RATIOS = [("boucle", "uvloop"), ("boucle", "asyncio"), ("uvloop", "asyncio")]


def fmt_time(t):
    if t is None:
        return "FAIL"
    if t >= 10:
        return "%.2f" % t
    if t >= 0.1:
        return "%.3f" % t
    return "%.4f" % t


def table_rows(meta, results):
    loops = [name for name, info in meta["loops"].items() if info["available"]]
    ratios = [(a, b) for a, b in RATIOS if a in loops and b in loops]
    header = ["workload"] + ["%s (s)" % name for name in loops] + \
             ["%s/%s" % r for r in ratios]
    rows = []
    logs = {r: [] for r in ratios}
    for res in results:
        row = [res["label"]]
        for name in loops:
            row.append(fmt_time(res["loops"][name]["best"]))
        for a, b in ratios:
            ta = res["loops"][a]["best"]
            tb = res["loops"][b]["best"]
            if ta and tb:
                row.append("%.2f" % (ta / tb))
                logs[(a, b)].append(math.log(ta / tb))
            else:
                row.append("-")
        rows.append(row)
    if ratios and len(results) > 1:
        row = ["geometric mean"] + [""] * len(loops)
        for r in ratios:
            row.append("%.2f" % math.exp(sum(logs[r]) / len(logs[r])) if logs[r] else "-")
        rows.append(row)
    return header, rows


def header_lines(meta):
    lines = [
        "Python %s (%s) on %s" % (meta["python"], meta["python_impl"], meta["os"]),
        "CPU: %s, %d cores%s" % (meta["cpu"], meta["cpus"],
                                 (", pinned to CPU %d" % meta["pinned_cpu"])
                                 if meta["pinned_cpu"] is not None else ""),
        "date: %s" % meta["date"],
    ]
    vers = []
    for name, info in meta["loops"].items():
        if info["available"]:
            vers.append("%s %s" % (name, info["version"]))
    lines.append("loops: " + ", ".join(vers))
    lines.append("best of %d, fresh loop per measurement, sizes x%g%s%s; times in seconds "
                 "(lower is better); ratios are time ratios (< 1.00: the first loop is faster)"
                 % (meta["repeat"], meta["scale"], " (--quick)" if meta["scale"] < 1 else "",
                    "" if meta["gc"] else ", cyclic GC off while timing"))
    return lines


def notes(meta, results):
    out = []
    la = [x for x in (meta.get("loadavg_start"), meta.get("loadavg_end")) if x is not None]
    busy = meta.get("cpus_usable") or meta.get("cpus") or 1
    if la and max(la) > 0.5 * busy:
        out.append("busy machine: 1-minute load average %s at start, %s at end, on %d cores; "
                   "absolute times are inflated, trust the ratios more"
                   % (meta.get("loadavg_start"), meta.get("loadavg_end"), busy))
    for name, info in meta["loops"].items():
        if not info["available"]:
            out.append("%s: skipped (%s)" % (name, info["note"]))
    for res in results:
        for name, cell in res["loops"].items():
            if cell["error"]:
                out.append("%s on %s FAILED: %s" % (res["label"], name, cell["error"]))
    return out


def render_text(meta, results):
    header, rows = table_rows(meta, results)
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    out = header_lines(meta) + [""]

    def line(cells):
        parts = [cells[0].ljust(widths[0])]
        parts += [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]
        return "  ".join(parts).rstrip()

    out.append(line(header))
    out.append("  ".join("-" * w for w in widths))
    for i, row in enumerate(rows):
        if row[0] == "geometric mean":
            out.append("  ".join("-" * w for w in widths))
        out.append(line(row))
    n = notes(meta, results)
    if n:
        out.append("")
        out += ["note: " + x for x in n]
    return "\n".join(out) + "\n"


def render_markdown(meta, results):
    header, rows = table_rows(meta, results)
    out = ["### boucle micro benchmarks", ""]
    out += ["- " + x for x in header_lines(meta)]
    out.append("")
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|")
    for row in rows:
        if row[0] == "geometric mean":
            row = ["**geometric mean**"] + [("**%s**" % c) if c else "" for c in row[1:]]
        out.append("| " + " | ".join(row) + " |")
    n = notes(meta, results)
    if n:
        out.append("")
        out += ["Note: " + x.replace("|", "\\|") + "  " for x in n]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------
# Chart and docs
# ---------------------------------------------------------------------------

DOCS_MD = os.path.join(REPO, "docs", "BENCHMARKS.md")
DOCS_PNG = os.path.join(REPO, "docs", "img", "micro.png")
DOCS_BEGIN = "<!-- micro:begin -->"
DOCS_END = "<!-- micro:end -->"


def write_png(data, path):
    """bench/chart.py's write_chart(); matplotlib is imported only there and
    only now, so it stays an optional dependency.  True if a PNG was written."""
    if HERE not in sys.path:
        sys.path.insert(0, HERE)
    import chart
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    return chart.write_chart(data, path)


def write_docs(meta, results, png_written):
    """Replace the generated region of docs/BENCHMARKS.md with this run's table."""
    with open(DOCS_MD) as f:
        text = f.read()
    begin = text.find(DOCS_BEGIN)
    end = text.find(DOCS_END, begin + 1) if begin >= 0 else -1
    if begin < 0 or end < 0:
        print("micro.py: %s has no %s ... %s region; docs not written"
              % (DOCS_MD, DOCS_BEGIN, DOCS_END), file=sys.stderr)
        return False
    body = ("<!-- generated by `python bench/micro.py --write-docs`; "
            "edits here are overwritten -->\n\n")
    if png_written:
        body += ("![boucle micro benchmarks: time relative to asyncio, lower is better]"
                 "(%s)\n\n" % os.path.relpath(DOCS_PNG, os.path.dirname(DOCS_MD)))
    body += render_markdown(meta, results)
    text = text[:begin + len(DOCS_BEGIN)] + "\n" + body + text[end:]
    tmp = DOCS_MD + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, DOCS_MD)
    return True


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def select_workloads(patterns):
    if not patterns:
        return list(WORKLOADS)
    chosen = []
    for pat in patterns:
        for p in pat.split(","):
            p = p.strip()
            if not p:
                continue
            hits = [w for w in WORKLOADS if fnmatch.fnmatchcase(w.name, p)]
            if not hits:
                raise SystemExit("micro.py: unknown workload %r (try --list)" % p)
            chosen += [w for w in hits if w not in chosen]
    return [w for w in WORKLOADS if w in chosen]    # keep the canonical order


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="boucle micro benchmarks vs asyncio and uvloop.")
    p.add_argument("--quick", action="store_true",
                   help="shrink sizes ~10x (a smoke run / demo)")
    p.add_argument("--scale", type=float, default=None,
                   help="multiply every size by this factor (--quick is --scale 0.1)")
    p.add_argument("--only", nargs="+", metavar="NAME",
                   help="run only these workloads (names or glob patterns, see --list)")
    p.add_argument("--loops", default=",".join(LOOP_NAMES),
                   help="comma-separated loops to compare (default: %(default)s)")
    p.add_argument("--repeat", type=int, default=5,
                   help="measurements per loop and workload; the best is kept (default 5)")
    p.add_argument("--json", metavar="FILE", help="write all results as JSON")
    p.add_argument("--markdown", metavar="FILE", help="write the table as Markdown")
    p.add_argument("--png", metavar="FILE",
                   help="write a bar chart of the run as PNG (needs matplotlib, "
                        "an optional dependency; without it, a note and no chart)")
    p.add_argument("--write-docs", action="store_true",
                   help="regenerate the micro table in docs/BENCHMARKS.md (between "
                        "%s and %s) and the chart %s"
                        % (DOCS_BEGIN, DOCS_END, os.path.relpath(DOCS_PNG, REPO)))
    p.add_argument("--progress", action="store_true",
                   help="show a one-line progress display on stderr")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="seconds before a single measurement is abandoned (0: never)")
    p.add_argument("--no-gc", action="store_true",
                   help="disable the cyclic GC while timing (it still runs between "
                        "measurements); default: GC on, as in real programs")
    p.add_argument("--cpu", type=int, default=None,
                   help="pin the process to this CPU (os.sched_setaffinity)")
    p.add_argument("--list", action="store_true", help="list workloads and exit")
    p.add_argument("--probe", action="store_true",
                   help="print how many loops this interpreter can run and exit "
                        "(used by bench/run to pick a python)")
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error("--repeat must be >= 1")
    if args.scale is not None and args.scale <= 0:
        p.error("--scale must be > 0")
    return args


def main(argv=None):
    args = parse_args(argv)
    scale = args.scale if args.scale is not None else (0.1 if args.quick else 1.0)

    if args.list:
        for w in WORKLOADS:
            n = max(1, int(round(w.size * scale)))
            print("%-18s %-32s %s" % (w.name, w.label(n), w.doc))
        return 0

    if args.probe:
        specs = [find_loop(name) for name in LOOP_NAMES]
        print("%d %s" % (sum(s.available for s in specs), platform.python_version()))
        return 0

    names = [x.strip() for x in args.loops.split(",") if x.strip()]
    bad = [x for x in names if x not in LOOP_NAMES]
    if bad:
        raise SystemExit("micro.py: unknown loop(s) %s; choose from %s"
                         % (", ".join(bad), ", ".join(LOOP_NAMES)))
    names = [x for x in LOOP_NAMES if x in names]
    workloads = select_workloads(args.only)

    if args.cpu is not None:
        try:
            os.sched_setaffinity(0, {args.cpu})
        except (AttributeError, OSError) as exc:
            print("micro.py: cannot pin to CPU %d: %s" % (args.cpu, exc), file=sys.stderr)
            args.cpu = None

    specs = [find_loop(name) for name in names]
    meta = metadata(specs, args, scale)
    for s in specs:
        if not s.available:
            print("note: %s skipped (%s)" % (s.name, s.note), file=sys.stderr)
    avail = [s for s in specs if s.available]
    if not avail:
        print("micro.py: no loop available to benchmark", file=sys.stderr)
        return 2

    results = run_all(avail, workloads, scale, args.repeat, args.timeout, args.progress,
                      args.no_gc)
    meta["loadavg_end"] = _loadavg()
    text = render_text(meta, results)
    sys.stdout.write("\n" + text)
    sys.stdout.flush()

    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(render_markdown(meta, results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=2)
            f.write("\n")
    pngs = []
    if args.png:
        pngs.append(args.png)
    if args.write_docs and not any(os.path.abspath(x) == DOCS_PNG for x in pngs):
        pngs.append(DOCS_PNG)
    docs_png = False
    if pngs:
        # the same data the JSON holds, round-tripped so the chart sees what a
        # reader of --json would
        data = json.loads(json.dumps({"meta": meta, "results": results}))
        for path in pngs:
            ok = write_png(data, path)
            if ok:
                print("chart: wrote %s" % path, file=sys.stderr)
            if os.path.abspath(path) == DOCS_PNG:
                docs_png = ok
    if args.write_docs:
        if write_docs(meta, results, docs_png):
            print("docs: wrote %s" % DOCS_MD, file=sys.stderr)

    failed = any(cell["error"] for res in results for cell in res["loops"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)
