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

EXPECTED_FAILURES = {
    "test_events.EPollEventLoopTests.test_timeout_rounding":
        "counts calls of loop._run_once (BaseEventLoop's Python iteration, "
        "which boucle's C loop never calls) and reads loop._selector "
        "(asyncio's selector) for its assertion message",
}
