#!/usr/bin/env python3
"""Run CPython's own test.test_asyncio modules against a loop and compare
with stock asyncio on the same interpreter.

    python tests/cpython/run.py [--loop boucle|asyncio|standin|uvloop|mod:Class]
                                [-j N] [-v] [--json FILE] [modules...]

Each module runs twice, each time in its own subprocess (worker.py): once on
stock asyncio, once with the loop under test swapped in (see adapters.py).
A test that stock asyncio passes and the loop does not is an unexpected
failure unless expected_failures.py lists it; a listed test that passes is
an unexpected success.  Either makes the exit status 1.  See README.md.
"""

import argparse
import concurrent.futures
import fnmatch
import importlib.machinery
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import adapters  # noqa: E402

PY = sys.executable
PY_VER = "%d.%d" % sys.version_info[:2]
PREFIX = "test.test_asyncio."
PASS = {"pass", "xfail"}
MAX_RESTARTS = 50
RERUN_MAX = 40          # per module

OUTCOME_TEXT = {
    "fail": "FAIL", "error": "ERROR", "xpass": "unexpected success (unittest)",
    "crash": "CRASH", "timeout": "TIMEOUT", "notrun": "NOT RUN",
    "missing": "MISSING",
}


# --------------------------------------------------------------------------
# running one module on one loop

def worker_env():
    env = dict(os.environ)
    env["PYTHONFAULTHANDLER"] = "1"
    env.pop("PYTHONWARNINGS", None)
    src = os.path.join(REPO, "src")
    pkg = os.path.join(src, "boucle")
    # An in-place build (setup.py build_ext --inplace) for this interpreter
    # wins over an install.
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    if os.path.isdir(pkg) and any(
            os.path.exists(os.path.join(pkg, "_core" + sfx))
            for sfx in suffixes):
        env["PYTHONPATH"] = os.pathsep.join(
            [src] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                     if p])
    return env


def tail(path, n=25, limit=4000):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])[-limit:]


def read_events(path):
    events = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    events.append(json.loads(line))
                except ValueError:
                    pass   # a line cut by a crash
    except OSError:
        pass
    return events


class Job:
    def __init__(self, module, side, spec, budget, test_timeout, only=None,
                 tag=""):
        self.module, self.side, self.spec = module, side, spec
        self.budget, self.test_timeout = budget, test_timeout
        self.only = only
        self.tag = tag
        self.collected = None
        self.results = {}         # id -> rec
        self.holders = {}         # id -> rec (class/module fixture problems)
        self.elapsed = 0.0
        self.notes = []

    def run(self, workdir):
        start = time.monotonic()
        deadline = start + self.budget
        done_ids = set()
        attempt = 0
        env = worker_env()
        while True:
            base = os.path.join(workdir, "%s-%s%s-%d" % (
                self.module, self.side, self.tag, attempt))
            out, err, log = base + ".jsonl", base + ".err", base + ".out"
            cmd = [PY, os.path.join(HERE, "worker.py"), "--loop", self.spec,
                   "--module", self.module, "--out", out,
                   "--test-timeout", str(self.test_timeout)]
            if done_ids:
                with open(base + ".skip", "w") as f:
                    f.write("\n".join(sorted(done_ids)))
                cmd += ["--skip", base + ".skip"]
            if self.only is not None:
                with open(base + ".only", "w") as f:
                    f.write("\n".join(sorted(self.only)))
                cmd += ["--only", base + ".only"]
            cwd = base + ".cwd"
            os.makedirs(cwd, exist_ok=True)
            timed_out = False
            with open(log, "wb") as fo, open(err, "wb") as fe:
                proc = subprocess.Popen(cmd, stdout=fo, stderr=fe, cwd=cwd,
                                        env=env, stdin=subprocess.DEVNULL,
                                        start_new_session=True)
                try:
                    proc.wait(timeout=max(1.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    timed_out = True
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    proc.wait()
            # Leftover children of the tests, in the worker's session.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            shutil.rmtree(cwd, ignore_errors=True)

            pending, finished = None, False
            for ev in read_events(out):
                kind = ev.get("ev")
                if kind == "collected":
                    if self.collected is None:
                        self.collected = list(ev["ids"])
                elif kind == "start":
                    pending = ev["id"]
                elif kind == "result":
                    self.results[ev["id"]] = ev
                    done_ids.add(ev["id"])
                    if pending == ev["id"]:
                        pending = None
                elif kind == "holder":
                    self.holders[ev["id"]] = ev
                elif kind == "done":
                    finished = True
            errtail = tail(err)
            if finished:
                if proc.returncode != 0:
                    self.holders["<worker exit> " + self.module] = {
                        "outcome": "crash",
                        "summary": "worker exited with status %s after the "
                                   "last test" % proc.returncode,
                        "detail": errtail}
                break
            if self.collected is None:
                self.collected = []
            if pending is not None:
                per_test = "Timeout (" in errtail
                outcome = "timeout" if (timed_out or per_test) else "crash"
                why = {True: "module time budget (%ds) exhausted" % self.budget,
                       False: ""}[timed_out]
                if per_test and not timed_out:
                    why = "no result after %ds" % self.test_timeout
                if outcome == "crash":
                    why = "worker died (status %s)" % proc.returncode
                self.results[pending] = {
                    "id": pending, "outcome": outcome, "created": 0,
                    "virtual": 0, "summary": why, "detail": errtail}
                done_ids.add(pending)
            else:
                self.holders["<worker> " + self.module] = {
                    "outcome": "crash",
                    "summary": "worker died outside a test (status %s)%s" % (
                        proc.returncode, ", timed out" if timed_out else ""),
                    "detail": errtail}
                break
            if timed_out or time.monotonic() >= deadline:
                self.notes.append("module time budget (%ds) exhausted"
                                  % self.budget)
                break
            if attempt >= MAX_RESTARTS:
                self.notes.append("gave up after %d restarts" % attempt)
                break
            attempt += 1
        for tid in self.collected:
            if tid not in self.results:
                self.results[tid] = {
                    "id": tid, "outcome": "notrun", "created": 0, "virtual": 0,
                    "summary": "; ".join(self.notes) or "not run",
                    "detail": ""}
        self.elapsed = time.monotonic() - start
        return self


def apply_holders(job):
    """Tests of a class whose setUpClass skipped count as skipped; those of
    a class (or module) whose fixture failed count with that error."""
    for hid, h in job.holders.items():
        target = None
        if "(" in hid and hid.endswith(")"):
            target = hid[hid.index("(") + 1:-1].strip()
        for tid, rec in job.results.items():
            if rec["outcome"] != "notrun" or target is None:
                continue
            if tid.startswith(target + "."):
                rec["outcome"] = "skip" if h["outcome"] == "skip" else "error"
                rec["summary"] = "%s: %s" % (hid.split(" ")[0],
                                             h.get("summary", ""))
                rec["detail"] = h.get("detail", "")


# --------------------------------------------------------------------------
# expected failures

def load_expected():
    path = os.path.join(HERE, "expected_failures.py")
    ns = {}
    with open(path, encoding="utf-8") as f:
        exec(compile(f.read(), path, "exec"), ns)
    table = ns.get("EXPECTED_FAILURES", {})
    out = {}
    for pattern, reason in table.items():
        if isinstance(reason, dict):
            chosen = None
            for key, r in reason.items():
                if version_matches(key):
                    chosen = r
            if chosen is None:
                continue
            reason = chosen
        out[pattern] = reason
    return out


def version_matches(key):
    key = key.strip()
    if key in ("*", "all"):
        return True
    here = sys.version_info[:2]
    if key.endswith("+"):
        return here >= tuple(int(x) for x in key[:-1].split("."))
    if key.startswith("<"):
        return here < tuple(int(x) for x in key[1:].split("."))
    return here == tuple(int(x) for x in key.split("."))


def expected_reason(expected, sid):
    if sid in expected:
        return expected[sid]
    for pattern, reason in expected.items():
        if any(c in pattern for c in "*?[") and fnmatch.fnmatchcase(sid, pattern):
            return reason
    return None


# --------------------------------------------------------------------------
# comparison

def is_pseudo(tid):
    return not tid.startswith(PREFIX) or " " in tid


def short(tid):
    return tid[len(PREFIX):] if tid.startswith(PREFIX) else tid


def compare(module, stock, loop, expected):
    """Return {category: [(sid, stock_rec, loop_rec, extra)]}."""
    cats = {k: [] for k in ("passed", "unexpected_failure",
                            "expected_failure", "unexpected_success",
                            "skipped", "noloop", "stock_fails",
                            "skip_but_stock_pass", "flaky")}
    ids = list(dict.fromkeys(
        list(stock.collected or []) + list(loop.collected or [])
        + list(stock.holders) + list(loop.holders)))
    ok_missing = {"outcome": "pass", "summary": ""}
    for tid in ids:
        pseudo = is_pseudo(tid)
        s = stock.results.get(tid) or stock.holders.get(tid)
        lr = loop.results.get(tid) or loop.holders.get(tid)
        if pseudo:
            s = s or ok_missing
            lr = lr or ok_missing
        s = s or {"outcome": "missing", "summary": "not run on stock asyncio"}
        lr = lr or {"outcome": "missing",
                    "summary": "not run on the loop under test",
                    "created": 0, "virtual": 0}
        sid = short(tid)
        reason = expected_reason(expected, sid)
        lo, so = lr["outcome"], s["outcome"]
        if pseudo and (lo in PASS or lo == "skip"):
            continue
        if lo in PASS:
            if reason is not None:
                cats["unexpected_success"].append((sid, s, lr, reason))
            elif lr.get("created", 0) > 0 and lr.get("virtual", 0) == 0:
                cats["passed"].append((sid, s, lr, None))
                if lr.get("flaky"):
                    cats["flaky"].append((sid, s, lr, None))
            else:
                cats["noloop"].append((sid, s, lr, None))
        elif lo == "skip":
            cats["skipped"].append((sid, s, lr, None))
            if so in PASS:
                cats["skip_but_stock_pass"].append((sid, s, lr, None))
        elif reason is not None:
            cats["expected_failure"].append((sid, s, lr, reason))
        elif so in PASS:
            cats["unexpected_failure"].append((sid, s, lr, None))
        else:
            cats["stock_fails"].append((sid, s, lr, None))
    return cats


# --------------------------------------------------------------------------
# main

def parse_args(argv):
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("modules", nargs="*",
                    help="test.test_asyncio modules (default: %s)"
                    % " ".join(adapters.DEFAULT_MODULES))
    ap.add_argument("--loop", default="boucle",
                    help="loop under test: boucle (default), asyncio (stock, "
                    "no swap), standin (trivial SelectorEventLoop subclass, "
                    "validates the harness), uvloop, or module:Class")
    ap.add_argument("-j", "--jobs", type=int,
                    default=max(1, min(2, os.cpu_count() or 1)),
                    help="subprocesses at a time (default: %(default)s)")
    ap.add_argument("--timeout", type=float, default=600,
                    help="time budget per module run, s (default 600)")
    ap.add_argument("--test-timeout", type=float, default=60,
                    help="time limit per test, s (default 60)")
    ap.add_argument("--expected-failures", choices=("auto", "on", "off"),
                    default="auto", help="apply expected_failures.py: auto = "
                    "only for --loop boucle")
    ap.add_argument("--no-rerun", action="store_true",
                    help="do not rerun unexpected failures once")
    ap.add_argument("-v", "--verbose", action="count", default=0,
                    help="-v: list every category; -vv: with tracebacks")
    ap.add_argument("-q", "--quiet", action="store_true",
                    help="print only problems and the final lines")
    ap.add_argument("--json", metavar="FILE", help="write all results here")
    ap.add_argument("--check", action="store_true",
                    help="only check that the loop can be imported "
                    "(exit 0, or 3 when it cannot)")
    return ap.parse_args(argv)


def check_loop(spec):
    code = ("import sys; sys.path.insert(0, %r); import adapters; "
            "print(adapters.resolve_loop(%r)[2])" % (HERE, spec))
    p = subprocess.run([PY, "-c", code], env=worker_env(), cwd=HERE,
                       capture_output=True, text=True, timeout=120)
    return p.returncode == 0, (p.stdout.strip() or p.stderr.strip()[-2000:])


def main(argv=None):
    args = parse_args(argv)
    ok, label = check_loop(args.loop)
    if not ok:
        print("cannot import the loop %r:\n%s" % (args.loop, label),
              file=sys.stderr)
        return 3
    if args.check:
        print(label)
        return 0

    names = [m if m.startswith("test_") else "test_" + m
             for m in (args.modules or adapters.DEFAULT_MODULES)]
    modules = [m for m in names if adapters.available(m)]
    absent = [m for m in names if m not in modules]
    use_expected = (args.expected_failures == "on" or (
        args.expected_failures == "auto" and args.loop == "boucle"))
    expected = load_expected() if use_expected else {}

    say = (lambda *a, **k: None) if args.quiet else print
    say("python %s (%s); loop under test: %s; compared with stock asyncio"
        % (sys.version.split()[0], PY, label))
    if absent:
        say("not on this interpreter: %s" % " ".join(absent))
    sys.stdout.flush()

    t0 = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="boucle-cpython-")
    jobs = {}
    order = sorted(modules, key=lambda m: -adapters.WEIGHT.get(m, 1))
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futs = {}
        for m in order:
            for side, spec in (("stock", "asyncio"), ("loop", args.loop)):
                job = Job(m, side, spec, args.timeout, args.test_timeout)
                jobs[m, side] = job
                futs[pool.submit(job.run, workdir)] = job
        for f in concurrent.futures.as_completed(futs):
            f.result()
        for job in jobs.values():
            apply_holders(job)

        # Rerun once, quietly, what failed on the loop only: timing-sensitive
        # tests fail now and then on a loaded machine, on any loop.
        reruns = {}
        if not args.no_rerun:
            for m in modules:
                stock, loop = jobs[m, "stock"], jobs[m, "loop"]
                ids = [tid for tid, r in loop.results.items()
                       if r["outcome"] in ("fail", "error", "xpass")
                       and stock.results.get(tid, {}).get("outcome") in PASS
                       and expected_reason(expected, short(tid)) is None]
                # Many failures are no flakiness: do not double the time.
                if ids and len(ids) <= RERUN_MAX:
                    job = Job(m, "loop", args.loop, args.timeout, args.test_timeout,
                              only=set(ids), tag="-rerun")
                    reruns[m] = (ids, pool.submit(job.run, workdir))
        for m, (ids, fut) in reruns.items():
            job = fut.result()
            apply_holders(job)
            for tid in ids:
                r = job.results.get(tid)
                if r and r["outcome"] in PASS:
                    r = dict(r, flaky=True,
                             first=jobs[m, "loop"].results[tid]["summary"])
                    jobs[m, "loop"].results[tid] = r
    wall = time.monotonic() - t0
    shutil.rmtree(workdir, ignore_errors=True)

    # ---------------------------------------------------------------- report
    totals = {}
    per_module = {}
    say("")
    say("%-26s %6s %6s %6s %7s %7s %6s  %s" % (
        "module", "passed", "failed", "xfail", "skipped", "no-loop",
        "stock✗", "time stock/loop"))
    for m in modules:
        cats = compare(m, jobs[m, "stock"], jobs[m, "loop"], expected)
        per_module[m] = cats
        for k, v in cats.items():
            totals[k] = totals.get(k, 0) + len(v)
        say("%-26s %6d %6d %6d %7d %7d %6d  %.1fs/%.1fs%s" % (
            m, len(cats["passed"]), len(cats["unexpected_failure"]),
            len(cats["expected_failure"]), len(cats["skipped"]),
            len(cats["noloop"]), len(cats["stock_fails"]),
            jobs[m, "stock"].elapsed, jobs[m, "loop"].elapsed,
            "  (%s)" % adapters.config_for(m).note
            if adapters.config_for(m).note else ""))

    def listing(title, key, show_reason=False, always=True, detail=False):
        items = [it for m in modules for it in per_module[m][key]]
        if not items or not (always or args.verbose):
            return
        print("")
        print("%s (%d):" % (title, len(items)))
        for sid, s, lr, reason in items:
            if show_reason:
                print("  %s -- %s" % (sid, reason))
                continue
            what = OUTCOME_TEXT.get(lr["outcome"], lr["outcome"])
            line = "  %s: %s" % (sid, what)
            if lr.get("summary"):
                line += ": " + lr["summary"]
            if key == "stock_fails":
                line += "  [stock: %s: %s]" % (
                    OUTCOME_TEXT.get(s["outcome"], s["outcome"]),
                    s.get("summary", ""))
            if key == "flaky":
                line = "  %s: failed once (%s), passed on rerun" % (
                    sid, lr.get("first", ""))
            print(line)
            if detail and args.verbose >= 2 and lr.get("detail"):
                print("    " + lr["detail"].rstrip().replace("\n", "\n    "))

    listing("UNEXPECTED FAILURES (stock asyncio passes these)",
            "unexpected_failure", detail=True)
    unexpected = [it for m in modules
                  for it in per_module[m]["unexpected_failure"]]
    if len(unexpected) > 10:
        groups = {}
        for sid, s, lr, reason in unexpected:
            key = "%s: %s" % (OUTCOME_TEXT.get(lr["outcome"], lr["outcome"]),
                              re.sub(r"0x[0-9a-f]+", "0x...",
                                     lr.get("summary", ""))[:160])
            groups.setdefault(key, []).append(sid)
        print("")
        print("Unexpected failures by error (%d kinds):" % len(groups))
        for key, sids in sorted(groups.items(), key=lambda kv: -len(kv[1]))[:25]:
            print("  %5d  %s  (e.g. %s)" % (len(sids), key, sids[0]))
    listing("UNEXPECTED SUCCESSES: listed in tests/cpython/expected_failures.py "
            "but passing now, remove them from the list",
            "unexpected_success", show_reason=True)
    listing("Failing on stock asyncio too (not counted)", "stock_fails",
            always=not args.quiet)
    listing("Flaky: failed once on the loop, passed on rerun", "flaky",
            always=not args.quiet)
    listing("Skipped on the loop but passed on stock asyncio",
            "skip_but_stock_pass", always=not args.quiet)
    listing("Expected failures", "expected_failure", show_reason=True,
            always=False)
    listing("Did not use the loop under test", "noloop", always=False)

    seen = {sid for m in modules for v in per_module[m].values()
            for sid, _s, _l, _r in v}
    for pattern in expected:
        if pattern.split(".")[0] in modules and not any(
                sid == pattern or fnmatch.fnmatchcase(sid, pattern)
                for sid in seen):
            print("note: expected_failures.py: %r matches no test that ran "
                  "here" % pattern)
    for m in modules:
        for side in ("stock", "loop"):
            for note in jobs[m, side].notes:
                print("note: %s (%s): %s" % (m, side, note))

    n_pass = totals.get("passed", 0)
    n_fail = totals.get("unexpected_failure", 0)
    n_skip = totals.get("skipped", 0)
    n_xs = totals.get("unexpected_success", 0)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({
                "python": sys.version.split()[0], "loop": label,
                "wall": wall,
                "modules": {m: {k: [{"id": sid, "stock": s, "loop": lr,
                                     "reason": reason}
                                    for sid, s, lr, reason in v]
                                for k, v in per_module[m].items()}
                            for m in modules},
            }, f, indent=1)
    print("")
    print("%d expected failures, %d did not use the loop, %d fail on stock "
          "asyncio too, %d unexpected successes, %d flaky; %.0fs"
          % (totals.get("expected_failure", 0), totals.get("noloop", 0),
             totals.get("stock_fails", 0), n_xs, totals.get("flaky", 0), wall))
    print("cpython-asyncio: %d passed, %d failed, %d skipped"
          % (n_pass, n_fail, n_skip))
    return 1 if (n_fail or n_xs) else 0


if __name__ == "__main__":
    sys.exit(main())
