"""Shared fixtures for boucle's own test suite.

Every behaviour test takes the ``loop`` (or ``loop_factory``) fixture, which is
parametrized over two loop factories:

* ``asyncio`` -- the interpreter's own ``asyncio.new_event_loop()`` (a
  ``SelectorEventLoop`` on Linux), the reference behaviour;
* ``boucle``  -- ``boucle.new_event_loop()``.

Running the same scenario on both proves that what the test asserts is
asyncio's behaviour, and that boucle matches it.  Tests that only make sense
for boucle (documented deviations, ``python -m boucle``, fork handling) use
the ``boucle_loop`` / ``boucle_factory`` fixtures or the ``boucle`` module
fixture, and are skipped (with the import error as the reason) while boucle
cannot be imported.
"""
import asyncio
import faulthandler
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")


def _import_boucle():
    """Return (module, None) or (None, reason)."""
    def attempt():
        import importlib
        for name in [n for n in sys.modules if n == "boucle" or n.startswith("boucle.")]:
            del sys.modules[name]
        mod = importlib.import_module("boucle")
        missing = [a for a in ("Loop", "new_event_loop") if not hasattr(mod, a)]
        if missing:
            raise ImportError("boucle at %r has no %s (not built yet?)"
                              % (getattr(mod, "__path__", None), ", ".join(missing)))
        return mod

    try:
        return attempt(), None
    except Exception as exc:  # noqa: BLE001 - any failure means "not available"
        first = exc
    # Fall back to the in-place build in the source tree.
    if os.path.isdir(SRC) and SRC not in sys.path:
        sys.path.insert(0, SRC)
        try:
            return attempt(), None
        except Exception as exc:  # noqa: BLE001
            first = exc
    return None, "boucle is not importable yet: %s: %s" % (type(first).__name__, first)


boucle, BOUCLE_SKIP_REASON = _import_boucle()


def boucle_pythonpath():
    """PYTHONPATH value that lets a child interpreter import the same boucle."""
    parts = []
    if boucle is not None:
        parts.append(os.path.dirname(os.path.dirname(os.path.abspath(boucle.__file__))))
    old = os.environ.get("PYTHONPATH")
    if old:
        parts.append(old)
    return os.pathsep.join(parts)


def tls_handshake_in_memory(c, s):
    """Drive a client and a server side, each (sslobj, incoming, outgoing)
    over in-memory BIOs, through the TLS handshake (tests of the TLS data
    path: test_sslpump, test_tlsbio)."""
    import ssl
    for _ in range(10):
        done = 0
        for (obj, _, out), (_, peer_in, _) in ((c, s), (s, c)):
            try:
                obj.do_handshake()
                done += 1
            except ssl.SSLWantReadError:
                pass
            peer_in.write(out.read())
        if done == 2:
            return
    raise AssertionError("handshake did not complete")


def _asyncio_factory():
    return asyncio.new_event_loop()


def _boucle_factory():
    return boucle.new_event_loop()


FACTORIES = {"asyncio": _asyncio_factory, "boucle": _boucle_factory}


def _close_loop(loop):
    if loop.is_closed():
        return
    if loop.is_running():  # pragma: no cover - a broken test
        loop.stop()
    try:
        if not loop.is_running():
            loop.run_until_complete(loop.shutdown_asyncgens())
    except Exception:
        pass
    loop.close()


class LoopKind(str):
    """The parameter id ('asyncio' or 'boucle'); also callable as a factory."""

    def __call__(self):
        return FACTORIES[str(self)]()

    @property
    def is_boucle(self):
        return str(self) == "boucle"


# In CI (or with BOUCLE_REQUIRED=1) an unimportable boucle is an error, not a
# skip: a green run must never mean "only asyncio was tested".
BOUCLE_REQUIRED = bool(os.environ.get("BOUCLE_REQUIRED") or os.environ.get("CI"))


def _skip_or_fail_without_boucle():
    if BOUCLE_REQUIRED:
        pytest.fail(BOUCLE_SKIP_REASON + " (BOUCLE_REQUIRED/CI is set)", pytrace=False)
    pytest.skip(BOUCLE_SKIP_REASON)


def _param(kind):
    marks = []
    if kind == "boucle" and boucle is None and not BOUCLE_REQUIRED:
        marks.append(pytest.mark.skip(reason=BOUCLE_SKIP_REASON))
    return pytest.param(kind, id=kind, marks=marks)


@pytest.fixture(params=[_param("asyncio"), _param("boucle")])
def loop_factory(request):
    """A factory creating new loops of the parametrized kind.

    Loops it made are closed when the test ends.
    """
    kind = LoopKind(request.param)
    if kind.is_boucle and boucle is None:
        _skip_or_fail_without_boucle()
    made = []

    def factory():
        lp = kind()
        made.append(lp)
        return lp

    factory.kind = kind
    factory.is_boucle = kind.is_boucle
    yield factory
    for lp in made:
        _close_loop(lp)
    asyncio.set_event_loop(None)


@pytest.fixture
def loop(loop_factory):
    """A fresh loop of the parametrized kind, closed after the test."""
    lp = loop_factory()
    yield lp


@pytest.fixture
def boucle_mod():
    if boucle is None:
        _skip_or_fail_without_boucle()
    return boucle


@pytest.fixture
def boucle_factory(boucle_mod):
    made = []

    def factory():
        lp = boucle_mod.new_event_loop()
        made.append(lp)
        return lp

    factory.kind = LoopKind("boucle")
    factory.is_boucle = True
    yield factory
    for lp in made:
        _close_loop(lp)
    asyncio.set_event_loop(None)


@pytest.fixture
def boucle_loop(boucle_factory):
    return boucle_factory()


# A hung loop must not hang the whole run (and CI) silently: past this many
# seconds a test of this directory dumps every thread's traceback and ends
# the process.
HANG_TIMEOUT = float(os.environ.get("BOUCLE_TEST_TIMEOUT", "180"))


def _uncaptured_stderr(config):
    """The fd pytest's faulthandler plugin writes to (not captured)."""
    try:
        from _pytest.faulthandler import fault_handler_stderr_fd_key
        return config.stash[fault_handler_stderr_fd_key]
    except Exception:  # older/newer pytest, or plugin disabled
        return sys.__stderr__.fileno()


@pytest.fixture(autouse=True)
def _per_test_checks(request):
    """For tests of this directory: hang watchdog, no loop left running."""
    mine = os.path.dirname(str(request.node.fspath)) == HERE
    if mine and HANG_TIMEOUT > 0:
        faulthandler.dump_traceback_later(HANG_TIMEOUT, exit=True,
                                          file=_uncaptured_stderr(request.config))
    try:
        yield
    finally:
        if mine and HANG_TIMEOUT > 0:
            faulthandler.cancel_dump_traceback_later()
    if mine:
        assert asyncio._get_running_loop() is None, "a test left a running loop behind"


def pytest_report_header(config):
    if boucle is None:
        return "boucle: not importable"
    loop = boucle.new_event_loop()
    try:
        return "boucle: %s, I/O backend %s (BOUCLE_BACKEND=%s)" % (
            os.path.dirname(boucle.__file__), loop.backend,
            os.environ.get("BOUCLE_BACKEND", ""))
    finally:
        loop.close()
