"""Tests of CPython's test.test_asyncio that stock asyncio passes and boucle
is known to fail, each with the reason.  Read by run.py (only for
``--loop boucle`` unless --expected-failures=on).

Keys are test ids without the ``test.test_asyncio.`` prefix
("test_events.EPollEventLoopTests.test_internal_fds"); fnmatch wildcards
("test_tasks.*Tests.test_x") are allowed.  A value is the reason, or a dict
{version: reason} where version is "3.12" (only that one), "3.12+" (that one
and later), "<3.12" (earlier ones) or "*".

A listed test that passes makes the run fail ("unexpected success"): remove
it.  A test that fails on stock asyncio too needs no entry.  Never list a
test to hide a bug of boucle's: only tests that check what asyncio's own
implementation does inside (its selector, BaseEventLoop private methods).
"""

_SIG = "test_unix_events.SelectorEventLoopSignalTests."
_PATCHED_SIGNAL = ("patches asyncio.unix_events.signal, which boucle's "
                   "signal handling never uses: the mock never sees ")
_SENDFILE = "test_unix_events.SelectorEventLoopUnixSockSendfileTests."
_SENDFILE_IMPL = ("calls loop._sock_sendfile_native_impl(), the private "
                  "os.sendfile step of asyncio's _UnixSelectorEventLoop, "
                  "and checks loop._selector registrations")

EXPECTED_FAILURES = {
    "test_events.EPollEventLoopTests.test_timeout_rounding":
        "counts calls of loop._run_once (BaseEventLoop's Python iteration, "
        "which boucle's C loop never calls) and reads loop._selector "
        "(asyncio's selector) for its assertion message",

    # -- test_unix_events.SelectorEventLoopSignalTests: asyncio's own signal
    # machinery. These patch asyncio.unix_events.signal (the signal module
    # as asyncio's _UnixSelectorEventLoop sees it); boucle/_signals.py calls
    # the real signal module, so the mock neither fails nor records calls.
    # (The tests of the public API without such assertions pass on boucle.)
    _SIG + "test_add_signal_handler_setup_error":
        _PATCHED_SIGNAL + "a set_wakeup_fd() failure",
    _SIG + "test_add_signal_handler_install_error":
        _PATCHED_SIGNAL + "a signal.signal() failure",
    _SIG + "test_add_signal_handler_install_error2":
        _PATCHED_SIGNAL + "a signal.signal() failure, counts set_wakeup_fd calls",
    _SIG + "test_add_signal_handler_install_error3":
        _PATCHED_SIGNAL + "a signal.signal() failure, counts set_wakeup_fd calls",
    _SIG + "test_remove_signal_handler":
        _PATCHED_SIGNAL + "set_wakeup_fd/signal.signal calls it expects",
    _SIG + "test_remove_signal_handler_2":
        _PATCHED_SIGNAL + "the signal.signal call it expects",
    _SIG + "test_remove_signal_handler_error":
        _PATCHED_SIGNAL + "a signal.signal() failure (OSError)",
    _SIG + "test_remove_signal_handler_error2":
        _PATCHED_SIGNAL + "a signal.signal() failure (EINVAL)",
    _SIG + "test_close":
        _PATCHED_SIGNAL + "the set_wakeup_fd(-1) call it expects from close()",
    _SIG + "test_close_on_finalizing":
        "fakes interpreter shutdown by patching asyncio.unix_events.sys; "
        "boucle/_signals.py reads the real sys.is_finalizing()",
    _SIG + "test_handle_signal_no_handler":
        "calls loop._handle_signal(), a private method of asyncio's "
        "_UnixSelectorEventLoop (boucle's core calls _handle_signals(data))",
    _SIG + "test_handle_signal_cancelled_handler":
        "calls loop._handle_signal(), a private method of asyncio's "
        "_UnixSelectorEventLoop (boucle's core calls _handle_signals(data))",

    # -- test_unix_events.SelectorEventLoopUnixSockSendfileTests driving
    # asyncio's private sendfile step (the tests of _sock_sendfile_native,
    # the hook BaseEventLoop.sock_sendfile calls, pass on boucle).
    _SENDFILE + "test_sock_sendfile_blocking_error": _SENDFILE_IMPL,
    _SENDFILE + "test_sock_sendfile_cancel1": _SENDFILE_IMPL,
    _SENDFILE + "test_sock_sendfile_cancel2": _SENDFILE_IMPL,
    _SENDFILE + "test_sock_sendfile_exception": _SENDFILE_IMPL,
    _SENDFILE + "test_sock_sendfile_os_error_first_call": _SENDFILE_IMPL,
    _SENDFILE + "test_sock_sendfile_os_error_next_call": _SENDFILE_IMPL,
}
