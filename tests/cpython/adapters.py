"""Which of CPython's test.test_asyncio modules run, and how each one is
pointed at the loop under test.

Imported by worker.py inside each per-module subprocess (and by run.py for
the module table).  Nothing here runs at import time except definitions.

How a module is pointed at the loop under test ("the swap"; never done when
the loop is stock asyncio):

* generic, for every module (install_policy, install_generic):
  - asyncio's default policy class creates the loop under test
    (``_UnixDefaultEventLoopPolicy._loop_factory``).  Being a class
    attribute, it survives ``asyncio.set_event_loop_policy(None)`` in the
    modules' tearDownModule and every ``DefaultEventLoopPolicy()`` a test
    makes: ``asyncio.new_event_loop()``, ``asyncio.run()``,
    ``asyncio.Runner()`` and ``unittest.IsolatedAsyncioTestCase`` all get it;
    so does ``loop_factory=asyncio.EventLoop`` (3.13+);
  - ``test_utils.TestCase.new_test_loop()`` without a time generator returns
    the loop under test instead of asyncio's fake ``TestLoop`` (with a
    generator the test relies on virtual time: it keeps the ``TestLoop``,
    and such a test never counts as using the loop);
  - every TestCase class of the module that has ``create_event_loop()``
    (test_events' and the network modules' mixins) gets one returning the
    loop under test.
* per module (ModuleConfig.adapt): e.g. test_runners' ``BaseTest.new_loop``
  and test_pep492's ``BaseTest.setUp`` build mocked ``BaseEventLoop``s.

ModuleConfig.exclude selects the tests that run at all (in the stock run and
in the loop run alike, so ids always match).  ModuleConfig.keep_test_loop
names tests that need asyncio's TestLoop even without a time generator
(they call ``advance_time()`` on it): they keep it.
"""

import asyncio
import fnmatch
import os
import sys


class StandInLoop(asyncio.SelectorEventLoop):
    """A trivial subclass of asyncio's loop: ``--loop standin``.

    Used to validate the harness itself: with it every swap happens as with
    boucle, so every test stock asyncio passes must pass here too (a failure
    means the swap, not the loop, is broken)."""


class ModuleConfig:
    def __init__(self, *, exclude=(), keep_test_loop=(), adapt=None,
                 min_version=None, note=""):
        self.exclude = tuple(exclude)            # fnmatch on "Class.test_x"
        self.keep_test_loop = tuple(keep_test_loop)
        self.adapt = adapt                       # adapt(module, loop_cls)
        self.min_version = min_version           # e.g. (3, 12)
        self.note = note

    def excluded(self, rel_id):
        return any(fnmatch.fnmatchcase(rel_id, p) for p in self.exclude)

    def keeps_test_loop(self, rel_id):
        return any(fnmatch.fnmatchcase(rel_id, p) for p in self.keep_test_loop)


# --------------------------------------------------------------------------
# per-module adapters

def _adapt_runners(mod, loop_cls):
    """test_runners' BaseTest installs a policy whose loops are mocked
    BaseEventLoops: make them real loops of the class under test, keeping the
    test's own instrumentation (the shutdown_asyncgens marker)."""
    base = getattr(mod, "BaseTest", None)
    if base is not None and "new_loop" in vars(base):
        def new_loop(self):
            loop = loop_cls()
            loop.shutdown_ag_run = False

            async def shutdown_asyncgens():
                loop.shutdown_ag_run = True
            loop.shutdown_asyncgens = shutdown_asyncgens
            return loop
        base.new_loop = new_loop
    # 3.13's test_loop_factory_default_event_loop asserts that the default
    # loop is an asyncio.SelectorEventLoop: with the swap the default loop is
    # the loop under test.  Nothing else in test_runners uses the name.
    asyncio.SelectorEventLoop = loop_cls


def _adapt_pep492(mod, loop_cls):
    """test_pep492's BaseTest runs everything on a BaseEventLoop with a
    mocked selector: use a real loop of the class under test instead."""
    base = mod.BaseTest
    parent_setup = base.__mro__[1].setUp

    def setUp(self):
        parent_setup(self)
        self.loop = loop_cls()
        self.set_event_loop(self.loop)
    base.setUp = setUp


# Modules whose mixins come in one class per selector: with a swapped loop
# the variants are the same tests; keep EPollEventLoopTests (asyncio's
# default on Linux).
SELECTOR_VARIANTS = (
    "SelectEventLoopTests.*",
    "PollEventLoopTests.*",
    "KqueueEventLoopTests.*",
)


def _adapt_selector_loop(mod, loop_cls):
    """Classes whose setUp calls ``asyncio.SelectorEventLoop()`` itself
    (test_unix_events' SelectorEventLoopSignalTests and
    SelectorEventLoopUnixSocketTests): make the name create the loop under
    test.  The worker runs one module per process, so nothing else sees it."""
    asyncio.SelectorEventLoop = loop_cls


# Under the sanitizer job (make test-asan sets BOUCLE_SANITIZER=1), TestFork's
# forked children deadlock now and then in their first malloc, inside GCC 12's
# libasan (gdb: __asan::Allocator::Allocate -> SizeClassAllocator64::
# GetFromAllocator -> Mutex::Lock): its allocator has no fork handler, so a
# lock held at fork time stays held in the child. Seen in 4 of 8 runs of
# test_unix_events on boucle's loop, in none of 8 on stock asyncio's; which
# thread holds the lock at fork time was not found (2026-11-26). These tests
# run, and pass, in every job without the sanitizer runtime.
_SANITIZER_FORK_EXCLUDE = (("TestFork.*",) if os.environ.get("BOUCLE_SANITIZER") else ())

MODULES = {
    "test_tasks": ModuleConfig(),
    "test_futures": ModuleConfig(),
    "test_futures2": ModuleConfig(),
    "test_locks": ModuleConfig(),
    "test_queues": ModuleConfig(),
    "test_pep492": ModuleConfig(adapt=_adapt_pep492),
    "test_context": ModuleConfig(),
    "test_runners": ModuleConfig(adapt=_adapt_runners),
    "test_taskgroups": ModuleConfig(),
    "test_timeouts": ModuleConfig(),
    "test_waitfor": ModuleConfig(),
    "test_threads": ModuleConfig(),
    "test_eager_task_factory": ModuleConfig(),
    "test_events": ModuleConfig(exclude=SELECTOR_VARIANTS),
    "test_sock_lowlevel": ModuleConfig(exclude=SELECTOR_VARIANTS),
    "test_sendfile": ModuleConfig(exclude=SELECTOR_VARIANTS),
    "test_buffered_proto": ModuleConfig(),
    "test_server": ModuleConfig(),
    "test_streams": ModuleConfig(),
    "test_unix_events": ModuleConfig(
        exclude=(
            # asyncio's pipe transport classes, driven with a mocked loop
            # and mocked os.read/os.write: not the loop's (boucle's pipe
            # transports are its own C types, run through test_events'
            # pipe tests and test_subprocess).
            "UnixReadPipeTransportTests.*",
            "UnixWritePipeTransportTests.*",
            # asyncio's child watcher classes themselves (mocked os.waitpid,
            # signal handlers of a test loop).
            "AbstractChildWatcherTests.*",
            "BaseChildWatcherTests.*",
            "SafeChildWatcherTests.*",
            "FastChildWatcherTests.*",
        ) + _SANITIZER_FORK_EXCLUDE,
        adapt=_adapt_selector_loop,
        note="loop-level part",
    ),
    "test_subprocess": ModuleConfig(),
    "test_ssl": ModuleConfig(),
    "test_sslproto": ModuleConfig(),
}

DEFAULT_MODULES = [
    "test_tasks", "test_futures", "test_futures2", "test_locks",
    "test_queues", "test_pep492", "test_context", "test_runners",
    "test_taskgroups", "test_timeouts", "test_waitfor", "test_threads",
    "test_eager_task_factory", "test_events",
    "test_sock_lowlevel", "test_sendfile", "test_buffered_proto",
    "test_server", "test_streams", "test_unix_events", "test_subprocess",
    "test_ssl", "test_sslproto",
]

# Rough stock durations (s), to start the long modules first.
WEIGHT = {"test_subprocess": 25, "test_ssl": 24, "test_tasks": 16,
          "test_events": 13, "test_taskgroups": 6, "test_sslproto": 6}


def config_for(name):
    return MODULES.get(name) or ModuleConfig()


# --------------------------------------------------------------------------
# generic swap

def install_policy(loop_cls):
    """Make asyncio's default policy (and so asyncio.new_event_loop(),
    asyncio.run(), Runner, IsolatedAsyncioTestCase) create loop_cls.

    Must run before the test module is imported."""
    from asyncio import events
    policy_cls = asyncio.DefaultEventLoopPolicy
    factory = loop_cls if isinstance(loop_cls, type) else staticmethod(loop_cls)
    policy_cls._loop_factory = factory
    # Also the base class, should a test build one of its own.
    events.BaseDefaultEventLoopPolicy._loop_factory = factory
    # 3.13+: asyncio.EventLoop names the platform's default loop class, the
    # one to pass as loop_factory= when no policy should be involved.
    if hasattr(asyncio, "EventLoop"):
        asyncio.EventLoop = loop_cls
        asyncio.unix_events.EventLoop = loop_cls
    # Drop a policy (and its loop) that may already exist.
    asyncio.set_event_loop_policy(None)


def install_generic(mod, loop_cls, cfg):
    """Point the imported test module `mod` at loop_cls (see module doc)."""
    import unittest
    from test.test_asyncio import utils as test_utils

    orig_new_test_loop = test_utils.TestCase.new_test_loop

    def new_test_loop(self, gen=None):
        if gen is None and not cfg.keeps_test_loop(rel_id(self.id())):
            loop = loop_cls()
            self.set_event_loop(loop)
            return loop
        return orig_new_test_loop(self, gen)
    test_utils.TestCase.new_test_loop = new_test_loop

    def create_event_loop(self):
        return loop_cls()

    try:
        from test.test_asyncio.functional import FunctionalTestCaseMixin
    except ImportError:
        FunctionalTestCaseMixin = ()

    def new_loop(self):
        return loop_cls()

    for obj in list(vars(mod).values()):
        if not (isinstance(obj, type) and issubclass(obj, unittest.TestCase)
                and "Proactor" not in obj.__name__):
            continue
        if callable(getattr(obj, "create_event_loop", None)):
            obj.create_event_loop = create_event_loop
        # functional.FunctionalTestCaseMixin's classes (test_server,
        # test_buffered_proto, test_sslproto...) make their loop with
        # new_loop(), often asyncio.SelectorEventLoop() hard-coded.
        if FunctionalTestCaseMixin and issubclass(obj, FunctionalTestCaseMixin):
            obj.new_loop = new_loop

    if cfg.adapt is not None:
        cfg.adapt(mod, loop_cls)


def rel_id(test_id):
    """'test.test_asyncio.test_tasks.C.test_x' -> 'C.test_x'."""
    parts = test_id.split(".")
    if len(parts) >= 4 and parts[:2] == ["test", "test_asyncio"]:
        return ".".join(parts[3:])
    return test_id


def short_id(test_id):
    """'test.test_asyncio.test_tasks.C.test_x' -> 'test_tasks.C.test_x'."""
    prefix = "test.test_asyncio."
    return test_id[len(prefix):] if test_id.startswith(prefix) else test_id


def available(name):
    import importlib.util
    cfg = config_for(name)
    if cfg.min_version and sys.version_info[:2] < cfg.min_version:
        return False
    try:
        return importlib.util.find_spec("test.test_asyncio." + name) is not None
    except ImportError:
        return False


# --------------------------------------------------------------------------
# --loop SPEC

LOOP_ALIASES = {
    "boucle": "boucle:Loop",
    "standin": "adapters:StandInLoop",
    "uvloop": "uvloop:Loop",
}


def resolve_loop(spec):
    """Return (loop_cls or None for stock asyncio, tracked class, label).

    The tracked class is the one whose instances count as "the loop under
    test" (for stock asyncio: its real selector loops, not the fake TestLoop
    or the mocked BaseEventLoops some tests use)."""
    import importlib
    if spec == "asyncio":
        from asyncio import selector_events
        return None, selector_events.BaseSelectorEventLoop, "asyncio (stock)"
    target = LOOP_ALIASES.get(spec, spec)
    if ":" not in target:
        raise SystemExit("--loop: expected asyncio, boucle, standin, uvloop "
                         "or module:Class, got %r" % spec)
    modname, _, attr = target.partition(":")
    if modname == "adapters":
        mod = sys.modules[__name__]
    else:
        mod = importlib.import_module(modname)
    obj = mod
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, type):
        raise SystemExit("--loop %s: %r is not a class" % (spec, obj))
    return obj, obj, "%s.%s" % (obj.__module__, obj.__qualname__)
