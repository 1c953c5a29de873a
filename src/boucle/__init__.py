"""boucle: a fast drop-in asyncio event loop, written in C.

    import boucle
    boucle.run(main())
    asyncio.run(main(), loop_factory=boucle.new_event_loop)   # 3.12+
    boucle.install()                                          # via the policy
"""
import asyncio as _asyncio
import sys as _sys
import warnings as _warnings

from asyncio import coroutines as _coroutines
from asyncio import events as _events

from ._loop import Loop
from ._aiosocket import aiosocket

__all__ = ("Loop", "new_event_loop", "run", "install", "EventLoopPolicy", "aiosocket")
__version__ = "0.1.0"


def new_event_loop(*, backend=None):
    """Return a new boucle event loop.

    backend picks how the loop waits for I/O: 'epoll' (the default),
    'io_uring' (OSError if the kernel or a seccomp policy refuses it) or
    'auto' (io_uring when available, else epoll). When None, the
    BOUCLE_BACKEND environment variable decides, for programs that cannot
    pass an argument (uvicorn --loop boucle:new_event_loop, asyncio.run's
    loop_factory).
    """
    return Loop(backend=backend)


class EventLoopPolicy(_asyncio.DefaultEventLoopPolicy):
    """asyncio's default policy, creating boucle loops."""

    def _loop_factory(self):
        return Loop()


def install():
    """Make boucle the loop asyncio creates (asyncio.set_event_loop_policy)."""
    with _warnings.catch_warnings():
        # policies are deprecated from 3.14 on, but still the way to make
        # code that calls asyncio.new_event_loop() get a boucle loop
        _warnings.simplefilter("ignore", DeprecationWarning)
        _asyncio.set_event_loop_policy(EventLoopPolicy())


def run(main, *, debug=None, loop_factory=None):
    """Run a coroutine on a new boucle loop, like asyncio.run()."""
    if loop_factory is None:
        loop_factory = new_event_loop
    if _sys.version_info >= (3, 12):
        return _asyncio.run(main, debug=debug, loop_factory=loop_factory)
    if _sys.version_info >= (3, 11):
        # asyncio.run's own check, which Runner alone does not make
        if _events._get_running_loop() is not None:
            raise RuntimeError(
                "asyncio.run() cannot be called from a running event loop")
        with _asyncio.Runner(debug=debug, loop_factory=loop_factory) as runner:
            return runner.run(main)
    return _run_310(main, debug, loop_factory)


def _run_310(main, debug, loop_factory):
    # asyncio.run of 3.10 with a loop factory.
    from asyncio.runners import _cancel_all_tasks
    if _events._get_running_loop() is not None:
        raise RuntimeError(
            "asyncio.run() cannot be called from a running event loop")
    if not _coroutines.iscoroutine(main):
        raise ValueError("a coroutine was expected, got {!r}".format(main))
    loop = loop_factory()
    try:
        _events.set_event_loop(loop)
        if debug is not None:
            loop.set_debug(debug)
        return loop.run_until_complete(main)
    finally:
        try:
            _cancel_all_tasks(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            _events.set_event_loop(None)
            loop.close()
