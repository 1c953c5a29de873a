"""boucle.Loop: the C core (boucle._core.Loop) joined with asyncio's own
BaseEventLoop.

Hot paths (call_soon, timers, the iteration, readiness callbacks,
create_future, create_task without a factory) are C methods and come first
in the MRO; everything else (run_until_complete, executors, exception
handler, async generator hooks, ...) is asyncio's own Python code, so it
follows the running interpreter's asyncio exactly.
"""
import inspect
import signal
import sys
import threading

from asyncio import base_events, events, format_helpers
from asyncio.log import logger

from . import _core
from ._signals import SignalMixin
from ._sockets import SocketMixin
from ._subprocess import SubprocessMixin
from ._transports import TransportMixin
from ._unix import UnixMixin

__all__ = ("Loop",)

# Callables run with every new loop (python -m boucle --stats keeps them).
_on_loop_created = []

_FORMAT_CB_TAKES_DEBUG = "debug" in inspect.signature(
    format_helpers._format_callback_source).parameters


def _format_callback(callback, args, debug):
    if _FORMAT_CB_TAKES_DEBUG:
        return format_helpers._format_callback_source(callback, args, debug=debug)
    return format_helpers._format_callback_source(callback, args)


class Loop(_core.Loop, SignalMixin, SocketMixin, UnixMixin, TransportMixin,
           SubprocessMixin, base_events.BaseEventLoop):
    """asyncio event loop implemented in C on epoll or io_uring.

    backend: 'epoll' (the default), 'io_uring', or 'auto' (io_uring when the
    kernel allows it, else epoll); None reads $BOUCLE_BACKEND. The C type
    consumes it at creation; loop.backend tells which one is in use.
    """

    # The attributes asyncio's BaseEventLoop (3.10-3.13) and boucle's Python
    # layer keep on the instance, as slots. A subclass of a C type with its
    # own tp_new never gets CPython's inline attribute values: its __dict__
    # is a real dict from the first attribute set, and then no attribute or
    # method lookup on the loop specializes (each `loop.call_soon`,
    # `loop.create_future`, `self._asyncgens` from Python code, and the C
    # Future's own `loop.call_soon` lookups, paid a dict probe and a full
    # type lookup: 150-250 more instructions each than on asyncio's loop).
    # With these as slots the __dict__ stays empty (NULL) unless something
    # else is stored on the loop, which still works.
    __slots__ = (
        "_asyncgens", "_asyncgens_shutdown_called",
        "_coroutine_origin_tracking_enabled",
        "_coroutine_origin_tracking_saved_depth", "_current_handle",
        "_default_executor", "_exception_handler", "_executor_shutdown_called",
        "_internal_fds", "_old_agen_hooks", "_saved_wakeup_fd",
        "_signal_handlers", "slow_callback_duration",
        "__dict__", "__weakref__",
    )

    def __init__(self, *, backend=None):
        base_events.BaseEventLoop.__init__(self)
        self._old_agen_hooks = None
        self._saved_wakeup_fd = None
        self._signal_handlers = {}     # signal number -> asyncio Handle
        for hook in _on_loop_created:
            hook(self)

    # -- running -------------------------------------------------------

    def run_forever(self):
        """Run until stop() is called."""
        self._boucle_run_setup()
        try:
            self._run()
        finally:
            self._boucle_run_cleanup()

    def _boucle_run_setup(self):
        # What asyncio's run_forever does before iterating (3.10-3.13).
        self._check_closed()
        self._check_running()
        self._set_coroutine_origin_tracking(self._debug)
        self._old_agen_hooks = sys.get_asyncgen_hooks()
        self._thread_id = threading.get_ident()
        sys.set_asyncgen_hooks(firstiter=self._asyncgen_firstiter_hook,
                               finalizer=self._asyncgen_finalizer_hook)
        events._set_running_loop(self)
        # Signals delivered to another thread must still wake the loop so
        # that Python-level handlers run promptly: give the interpreter our
        # wake-up pipe, unless somebody else (add_signal_handler of another
        # loop, the application) has set one.
        self._saved_wakeup_fd = None
        if threading.current_thread() is threading.main_thread():
            try:
                old = signal.set_wakeup_fd(self._signal_wakeup_fd)
            except (ValueError, OSError):
                old = None
            if old is not None:
                if old != -1 and old != self._signal_wakeup_fd:
                    signal.set_wakeup_fd(old)
                else:
                    self._saved_wakeup_fd = old

    def _boucle_run_cleanup(self):
        if self._saved_wakeup_fd is not None:
            try:
                signal.set_wakeup_fd(self._saved_wakeup_fd)
            except (ValueError, OSError):
                pass
            self._saved_wakeup_fd = None
        self._stopping = False
        self._thread_id = None
        events._set_running_loop(None)
        self._set_coroutine_origin_tracking(False)
        if self._old_agen_hooks is not None:
            sys.set_asyncgen_hooks(*self._old_agen_hooks)
            self._old_agen_hooks = None

    # asyncio 3.12+ exposes these for loops that drive the iteration
    # themselves; keep them meaning the same thing here.
    _run_forever_setup = _boucle_run_setup
    _run_forever_cleanup = _boucle_run_cleanup

    def close(self):
        """Close the loop: drop pending callbacks, shut the executor down."""
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self.is_closed():
            return
        super().close()
        self._remove_all_signal_handlers()
        self._close_core()

    # -- called by the C core ------------------------------------------

    def _report_callback_error(self, handle, exc, callback="_read_ready"):
        # What asyncio's Handle._run does when the callback raises.
        # ``handle`` is a Handle, or a C transport whose I/O work raised.
        if not isinstance(handle, _core.Handle):
            # asyncio runs a transport's I/O as its reader (writer) Handle
            # and reports "Exception in callback X._read_ready()" with that
            # Handle in the context: build the same context (the datagram
            # and read-pipe transports let data_received(),
            # datagram_received() or error_received() exceptions out, as
            # asyncio's do).
            cb = getattr(handle, callback, None)
            if cb is not None:
                handle = events.Handle(cb, (), self)
        if isinstance(handle, (_core.Handle, events.Handle)):
            cb = _format_callback(handle._callback, handle._args, self._debug)
            context = {
                'message': f'Exception in callback {cb}',
                'exception': exc,
                'handle': handle,
            }
            if handle._source_traceback:
                context['source_traceback'] = handle._source_traceback
        else:
            context = {
                'message': f'Unhandled exception in {handle!r}',
                'exception': exc,
            }
        self.call_exception_handler(context)

    def _run_handle_debug(self, handle):
        # Debug mode: time every callback and warn about slow ones, as
        # asyncio's _run_once does.
        try:
            self._current_handle = handle
            t0 = self.time()
            handle._run()
            dt = self.time() - t0
            if dt >= self.slow_callback_duration:
                logger.warning('Executing %s took %.3f seconds',
                               base_events._format_handle(handle), dt)
        finally:
            self._current_handle = None
            # A frame object may outlive this call (the f_back of a
            # coroutine frame kept by a traceback): don't let it keep the
            # handle, and through it a task, alive. asyncio does the same.
            handle = None
