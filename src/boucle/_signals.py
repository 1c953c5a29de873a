"""Unix signal handlers of boucle.Loop (add_signal_handler and friends).

The interpreter's C-level handler writes each signal number to the loop's
wake-up pipe (signal.set_wakeup_fd); the C core drains it and calls
_handle_signals(), which queues the registered handle as a callback. So the
Python handler never runs inside the signal handler, exactly as asyncio.
"""
import errno
import signal
import sys
import warnings

from asyncio import coroutines, events
from asyncio.log import logger


def _noop_handler(signum, frame):
    """Installed for signals with a loop handler: the wake-up fd does the work."""


class SignalMixin:
    __slots__ = ()

    def _check_signal(self, sig):
        if not isinstance(sig, int):
            raise TypeError(f'sig must be an int, not {sig!r}')
        if sig not in signal.valid_signals():
            raise ValueError(f'invalid signal number {sig}')

    def add_signal_handler(self, sig, callback, *args):
        """Run callback(*args) as a loop callback whenever sig arrives."""
        if (coroutines.iscoroutine(callback)
                or coroutines.iscoroutinefunction(callback)):
            raise TypeError("coroutines cannot be used "
                            "with add_signal_handler()")
        self._check_signal(sig)
        self._check_closed()
        try:
            # raises ValueError outside the main thread: a loop running in
            # another thread cannot own signal handlers
            signal.set_wakeup_fd(self._signal_wakeup_fd)
        except (ValueError, OSError) as exc:
            raise RuntimeError(str(exc))

        handlers = self._signal_handlers
        handlers[sig] = events.Handle(callback, args, self, None)
        self._signal_dispatch = True
        try:
            signal.signal(sig, _noop_handler)
            # limit EINTR in the rest of the program, as asyncio does
            signal.siginterrupt(sig, False)
        except OSError as exc:
            del handlers[sig]
            if not handlers:
                self._signal_dispatch = False
                try:
                    signal.set_wakeup_fd(-1)
                except (ValueError, OSError) as nexc:
                    logger.info('set_wakeup_fd(-1) failed: %s', nexc)
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f'sig {sig:d} cannot be caught')
            raise

    def remove_signal_handler(self, sig):
        """Remove the handler for sig; return True if there was one."""
        self._check_signal(sig)
        handlers = self._signal_handlers
        try:
            del handlers[sig]
        except KeyError:
            return False
        handler = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
        try:
            signal.signal(sig, handler)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f'sig {sig:d} cannot be caught')
            raise
        if not handlers:
            self._signal_dispatch = False
            try:
                signal.set_wakeup_fd(-1)
            except (ValueError, OSError) as exc:
                logger.info('set_wakeup_fd(-1) failed: %s', exc)
        return True

    def _handle_signals(self, data):
        # called by the C core with the signal numbers read from the pipe
        handlers = self._signal_handlers
        for signum in data:
            handle = handlers.get(signum)
            if handle is None:
                continue
            if handle._cancelled:
                self.remove_signal_handler(signum)
            else:
                self.call_soon(handle._run)

    def _remove_all_signal_handlers(self):
        handlers = self._signal_handlers
        if not handlers:
            return
        if not sys.is_finalizing():
            for sig in list(handlers):
                self.remove_signal_handler(sig)
        else:
            warnings.warn(f"Closing the loop {self!r} on interpreter shutdown "
                          f"stage, skipping signal handlers removal",
                          ResourceWarning, source=self)
            handlers.clear()
            self._signal_dispatch = False
