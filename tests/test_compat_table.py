"""Every public method of asyncio.AbstractEventLoop is implemented by boucle
(not the NotImplementedError stub) and appears in docs/COMPATIBILITY.md."""
import asyncio
import inspect
import os
import re

import pytest

from conftest import boucle, BOUCLE_SKIP_REASON

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                   "docs", "COMPATIBILITY.md")

PUBLIC = sorted(n for n, v in vars(asyncio.AbstractEventLoop).items()
                if not n.startswith("_") and callable(v))


@pytest.mark.skipif(boucle is None, reason=str(BOUCLE_SKIP_REASON))
@pytest.mark.parametrize("name", PUBLIC)
def test_method_implemented(name):
    owner = next(c for c in boucle.Loop.__mro__ if name in vars(c))
    assert owner is not asyncio.AbstractEventLoop, f"{name} is asyncio's NotImplementedError stub"
    assert owner is not asyncio.events.AbstractEventLoop


@pytest.mark.parametrize("name", PUBLIC)
def test_method_in_table(name):
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    assert re.search(r"`%s`" % re.escape(name), text), f"{name} missing from docs/COMPATIBILITY.md"


@pytest.mark.skipif(boucle is None, reason=str(BOUCLE_SKIP_REASON))
def test_loop_is_abstract_event_loop():
    loop = boucle.new_event_loop()
    try:
        assert isinstance(loop, asyncio.AbstractEventLoop)
        loop.anything = 1       # tests and libraries patch loop attributes
        assert loop.anything == 1
        assert inspect.iscoroutinefunction(loop.sock_recv)
    finally:
        loop.close()
