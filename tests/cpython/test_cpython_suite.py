"""pytest entry point for tests/cpython: one test per test.test_asyncio
module, each running run.py (stock asyncio vs boucle) for that module.

Set BOUCLE_CPYTHON_LOOP to test another loop (e.g. ``standin``).
"""

import importlib.util
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
RUN = os.path.join(HERE, "run.py")
LOOP = os.environ.get("BOUCLE_CPYTHON_LOOP", "boucle")


def _load_adapters():
    # Under a private name: "adapters" is too generic for pytest's process.
    spec = importlib.util.spec_from_file_location(
        "_boucle_cpython_adapters", os.path.join(HERE, "adapters.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


adapters = _load_adapters()

MODULES = [m for m in adapters.DEFAULT_MODULES if adapters.available(m)]


@pytest.fixture(scope="module")
def loop_available():
    p = subprocess.run([sys.executable, RUN, "--loop", LOOP, "--check"],
                       capture_output=True, text=True, timeout=300)
    if p.returncode == 3:
        pytest.skip("loop %r cannot be imported (build boucle first: "
                    "python setup.py build_ext --inplace):\n%s"
                    % (LOOP, p.stderr.strip()[-1500:]))
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.parametrize("module", MODULES)
def test_cpython_asyncio_module(module, loop_available):
    # run.py bounds each module run (600 s); this is only a safety net.
    p = subprocess.run([sys.executable, RUN, "--loop", LOOP, "--quiet",
                        "-j", "2", module],
                       capture_output=True, text=True, timeout=1500)
    if p.returncode != 0:
        pytest.fail("test.test_asyncio.%s on %s: unexpected results "
                    "(exit %d)\n%s%s" % (module, LOOP, p.returncode,
                                         p.stdout, p.stderr[-3000:]),
                    pytrace=False)
