"""Run one test.test_asyncio module in this process; started by run.py.

    python worker.py --loop SPEC --module test_tasks --out EVENTS.jsonl
                     [--skip IDS.txt] [--only IDS.txt] [--test-timeout S]

Writes one JSON object per line to --out, flushed as it goes so that run.py
can tell which test was running when the process crashed or hung:

    {"ev": "collected", "ids": [...]}
    {"ev": "start", "id": ID}
    {"ev": "result", "id": ID, "outcome": O, "created": N, "virtual": N,
     "elapsed": S, "summary": "...", "detail": "..."}
    {"ev": "holder", "id": "setUpClass (...)", "outcome": O, "summary": ...}
    {"ev": "done"}

O is pass, fail, error, skip, xfail (a unittest expectedFailure that failed)
or xpass (one that passed: a failure).  "created" counts loops of the class
under test created while the test ran; "virtual" counts asyncio TestLoops
with a time generator (the test ran on virtual time).
"""

import argparse
import faulthandler
import json
import os
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import adapters  # noqa: E402
# Do not let this directory shadow anything the tests import.
sys.path.remove(HERE)

import unittest  # noqa: E402


class Counter:
    def __init__(self):
        self.lock = threading.Lock()
        self.created = 0
        self.virtual = 0

    def bump(self, attr):
        with self.lock:
            setattr(self, attr, getattr(self, attr) + 1)


COUNTER = Counter()


def track_instances(cls, attr):
    """Count instances of cls (and subclasses) by wrapping __init__ in
    place, so that the class itself stays the one the tests see."""
    orig = cls.__init__

    def __init__(self, *args, **kwargs):
        COUNTER.bump(attr)
        orig(self, *args, **kwargs)
    __init__.__wrapped__ = orig
    cls.__init__ = __init__


def track_test_loops():
    from test.test_asyncio import utils as test_utils
    orig = test_utils.TestLoop.__init__

    def __init__(self, gen=None):
        if gen is not None:
            COUNTER.bump("virtual")
        orig(self, gen)
    test_utils.TestLoop.__init__ = __init__


def summarize(exc_type, exc):
    try:
        line = "".join(traceback.format_exception_only(exc_type, exc)).strip()
    except Exception:  # pragma: no cover
        line = repr(exc)
    line = line.splitlines()[-1] if line else exc_type.__name__
    # A failed assertEqual puts the diff after the first line.
    return line[:400]


class Emitter:
    def __init__(self, path):
        self.f = open(path, "a", encoding="utf-8")
        self.pid = os.getpid()

    def emit(self, **ev):
        if os.getpid() != self.pid:      # a forked child running the suite
            return
        self.f.write(json.dumps(ev) + "\n")
        self.f.flush()


class Result(unittest.TestResult):
    """Collects one outcome per test; emitted by the __call__ wrapper."""

    def __init__(self, emitter):
        super().__init__()
        self.emitter = emitter
        self.outcomes = {}

    def _set(self, test, outcome, err=None, reason=None):
        tid = test.id()
        if isinstance(test, unittest.case._SubTest):
            tid = test.test_case.id()
        rec = self.outcomes.setdefault(tid, {"outcome": None})
        # A failure wins over anything else recorded for the test.
        if rec["outcome"] in ("fail", "error", "xpass") and outcome not in (
                "fail", "error"):
            return
        rec["outcome"] = outcome
        if err is not None:
            rec["summary"] = summarize(err[0], err[1])
            try:
                rec["detail"] = self._exc_info_to_string(err, test)[-6000:]
            except Exception:
                rec["detail"] = rec["summary"]
            if isinstance(test, unittest.case._SubTest):
                rec["summary"] = "%s %s" % (test._subDescription(),
                                            rec["summary"])
        elif reason is not None:
            rec["summary"] = str(reason)[:400]
        if not hasattr(test, "_testMethodName") and not isinstance(
                test, unittest.case._SubTest):
            # setUpClass/setUpModule/tearDown* problem: no test of its own.
            self.emitter.emit(ev="holder", id=tid, outcome=outcome,
                              summary=rec.get("summary", ""),
                              detail=rec.get("detail", ""))
            self.outcomes.pop(tid, None)

    def addSuccess(self, test):
        self._set(test, "pass")

    def addFailure(self, test, err):
        self._set(test, "fail", err)

    def addError(self, test, err):
        self._set(test, "error", err)

    def addSkip(self, test, reason):
        self._set(test, "skip", reason=reason)

    def addExpectedFailure(self, test, err):
        self._set(test, "xfail")

    def addUnexpectedSuccess(self, test):
        self._set(test, "xpass", reason="unexpected success")

    def addSubTest(self, test, subtest, err):
        if err is not None:
            if issubclass(err[0], test.failureException):
                self._set(subtest, "fail", err)
            else:
                self._set(subtest, "error", err)


def flatten(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from flatten(t)
        else:
            yield t


def read_ids(path):
    if not path:
        return None
    with open(path, encoding="utf-8") as f:
        return {line.strip() for line in f if line.strip()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loop", required=True)
    ap.add_argument("--module", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--skip")
    ap.add_argument("--only")
    ap.add_argument("--test-timeout", type=float, default=60.0)
    args = ap.parse_args()

    emitter = Emitter(args.out)
    cfg = adapters.config_for(args.module)
    skip, only = read_ids(args.skip), read_ids(args.only)

    try:
        loop_cls, tracked, _label = adapters.resolve_loop(args.loop)
        track_instances(tracked, "created")
        if loop_cls is not None:
            adapters.install_policy(loop_cls)
        track_test_loops()
        modname = "test.test_asyncio." + args.module
        __import__(modname)
        mod = sys.modules[modname]
        if loop_cls is not None:
            adapters.install_generic(mod, loop_cls, cfg)
        suite = unittest.defaultTestLoader.loadTestsFromModule(mod)
    except BaseException as exc:
        emitter.emit(ev="collected", ids=[])
        emitter.emit(ev="holder", id="import " + args.module,
                     outcome="error", summary=summarize(type(exc), exc),
                     detail=traceback.format_exc()[-6000:])
        emitter.emit(ev="done")
        return 0

    tests = []
    for t in flatten(suite):
        tid = t.id()
        if not hasattr(t, "_testMethodName") or type(t).__name__ in (
                "_FailedTest", "_ErrorHolder"):
            tests.append(t)       # a loading error: keep it, it reports
            continue
        if cfg.excluded(adapters.rel_id(tid)):
            continue
        if only is not None and tid not in only:
            continue
        if skip is not None and tid in skip:
            continue
        tests.append(t)
    emitter.emit(ev="collected", ids=[t.id() for t in tests])

    result = Result(emitter)
    orig_call = unittest.TestCase.__call__

    def __call__(self, *a, **kw):
        tid = self.id()
        emitter.emit(ev="start", id=tid)
        c0, v0 = COUNTER.created, COUNTER.virtual
        t0 = time.monotonic()
        faulthandler.dump_traceback_later(args.test_timeout, exit=True)
        try:
            return orig_call(self, *a, **kw)
        except BaseException as exc:  # e.g. 3.10 IsolatedAsyncioTestCase
            rec = result.outcomes.setdefault(tid, {})
            rec["outcome"] = "error"
            rec["summary"] = "raised out of TestCase.run: " + summarize(
                type(exc), exc)
            rec["detail"] = traceback.format_exc()[-6000:]
            if isinstance(exc, KeyboardInterrupt):
                raise
        finally:
            faulthandler.cancel_dump_traceback_later()
            rec = result.outcomes.pop(tid, None) or {}
            outcome = rec.get("outcome") or "error"
            if rec.get("outcome") is None:
                rec["summary"] = rec.get("summary") or "test recorded no outcome"
            emitter.emit(ev="result", id=tid, outcome=outcome,
                         created=COUNTER.created - c0,
                         virtual=COUNTER.virtual - v0,
                         elapsed=round(time.monotonic() - t0, 3),
                         summary=rec.get("summary", ""),
                         detail=rec.get("detail", ""))

    unittest.TestCase.__call__ = __call__
    unittest.TestSuite(tests).run(result)
    unittest.TestCase.__call__ = orig_call
    emitter.emit(ev="done")
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: a loop's finalizer crashing at exit must
    # not turn a finished run into a "crash".
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
