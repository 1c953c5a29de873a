"""boucle.run, Runner/asyncio.run with loop_factory, install(), python -m boucle."""
import asyncio
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import boucle_pythonpath

PY311 = sys.version_info >= (3, 11)
PY312 = sys.version_info >= (3, 12)


@pytest.fixture
def restore_policy():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old = asyncio.get_event_loop_policy()
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncio.set_event_loop_policy(old)
        asyncio.set_event_loop_policy(None)


async def _describe(result="result"):
    loop = asyncio.get_running_loop()
    await asyncio.sleep(0.001)
    return loop, result


def test_loop_class(boucle_mod):
    lp = boucle_mod.new_event_loop()
    try:
        assert type(lp) is boucle_mod.Loop or isinstance(lp, boucle_mod.Loop)
        assert isinstance(lp, asyncio.AbstractEventLoop)
    finally:
        lp.close()
    lp = boucle_mod.Loop()
    lp.close()


def test_loop_instance_attributes(boucle_mod):
    # What asyncio's and boucle's own code keep on the loop are slots, so
    # that the instance __dict__ stays empty and attribute/method lookups on
    # the loop specialize (see Loop.__slots__); anything else can still be
    # set, and the loop is weakly referenceable, as asyncio's loops are.
    import weakref

    # a slot would hide an attribute of the same name further up the MRO
    # (the C core's getsets: _task_factory, _signal_dispatch, ...)
    for name in set(boucle_mod.Loop.__slots__) - {"__dict__", "__weakref__"}:
        shadowed = [c for c in boucle_mod.Loop.__mro__[1:] if name in vars(c)]
        assert not shadowed, (name, shadowed)
    lp = boucle_mod.new_event_loop()
    try:
        async def main():
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, sum, ())
            loop.set_debug(True)
            await asyncio.sleep(0)
            return loop

        assert lp.run_until_complete(main()) is lp
        lp.run_until_complete(lp.shutdown_asyncgens())
        assert vars(lp) == {}, f"add to Loop.__slots__: {sorted(vars(lp))}"
        lp.custom_attribute = 42
        assert lp.custom_attribute == 42
        assert weakref.ref(lp)() is lp
    finally:
        lp.close()
    assert vars(lp) == {"custom_attribute": 42}


def test_boucle_run(boucle_mod):
    loop, result = boucle_mod.run(_describe("value"))
    assert isinstance(loop, boucle_mod.Loop)
    assert result == "value"
    assert loop.is_closed()
    assert asyncio._get_running_loop() is None


def test_boucle_run_exception(boucle_mod):
    async def main():
        await asyncio.sleep(0)
        raise LookupError("from main")

    with pytest.raises(LookupError, match="from main"):
        boucle_mod.run(main())


def test_boucle_run_debug(boucle_mod):
    async def main():
        return asyncio.get_running_loop().get_debug()

    assert boucle_mod.run(main(), debug=True) is True
    assert boucle_mod.run(main(), debug=False) is False


def test_boucle_run_cleans_up_tasks_and_asyncgens(boucle_mod):
    events = []

    async def forever():
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            events.append("task cancelled")
            raise

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            events.append("agen closed")

    keep = []

    async def main():
        asyncio.ensure_future(forever())
        g = agen()
        keep.append(g)
        await g.__anext__()
        await asyncio.sleep(0)

    boucle_mod.run(main())
    assert sorted(events) == ["agen closed", "task cancelled"]


def test_boucle_run_rejects_what_asyncio_run_rejects(boucle_mod):
    with pytest.raises(Exception) as expected:
        asyncio.run(42)
    with pytest.raises(expected.type):
        boucle_mod.run(42)


def test_boucle_run_inside_running_loop(boucle_mod):
    # Like asyncio.run: fail fast, without creating (and leaking) a loop.
    import gc
    import warnings

    async def inner():
        pass

    async def outer():
        coro = inner()
        try:
            with pytest.raises(RuntimeError, match="cannot be called from a running event loop"):
                boucle_mod.run(coro)
        finally:
            coro.close()
        return "ok"

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert boucle_mod.run(outer()) == "ok"
        gc.collect()
    assert [str(w.message) for w in caught] == []


@pytest.mark.skipif(not PY311, reason="asyncio.Runner is new in 3.11")
def test_asyncio_runner_with_boucle_factory(boucle_mod):
    with asyncio.Runner(loop_factory=boucle_mod.new_event_loop) as runner:
        assert isinstance(runner.get_loop(), boucle_mod.Loop)
        loop1, r1 = runner.run(_describe(1))
        loop2, r2 = runner.run(_describe(2))
    assert loop1 is loop2
    assert isinstance(loop1, boucle_mod.Loop)
    assert (r1, r2) == (1, 2)
    assert loop1.is_closed()


@pytest.mark.skipif(not PY312, reason="asyncio.run(loop_factory=) is new in 3.12")
def test_asyncio_run_with_loop_factory(boucle_mod):
    loop, result = asyncio.run(_describe("x"), loop_factory=boucle_mod.new_event_loop)
    assert type(loop) is boucle_mod.Loop or isinstance(loop, boucle_mod.Loop)
    assert result == "x"
    assert loop.is_closed()


def test_install_makes_asyncio_run_use_boucle(boucle_mod, restore_policy):
    boucle_mod.install()
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert isinstance(asyncio.get_event_loop_policy(), boucle_mod.EventLoopPolicy)
    loop, result = asyncio.run(_describe("installed"))
    assert isinstance(loop, boucle_mod.Loop)
    assert result == "installed"
    lp = asyncio.new_event_loop()
    try:
        assert isinstance(lp, boucle_mod.Loop)
    finally:
        lp.close()


def test_event_loop_policy(boucle_mod):
    policy = boucle_mod.EventLoopPolicy()
    assert isinstance(policy, asyncio.AbstractEventLoopPolicy)
    lp = policy.new_event_loop()
    try:
        assert isinstance(lp, boucle_mod.Loop)
    finally:
        lp.close()


# ---------------------------------------------------------------------------
# python -m boucle

SCRIPT = textwrap.dedent("""\
    import asyncio
    import os
    import sys

    import helper_mod  # lives next to the script: sys.path[0] is its directory

    async def main():
        loop = asyncio.get_running_loop()
        print("LOOP", type(loop).__module__.split(".")[0])
        print("ARGV", sys.argv[1:])
        print("ARGV0", os.path.basename(sys.argv[0]))
        print("NAME", __name__)
        print("FILE", os.path.basename(__file__))
        print("HELPER", helper_mod.VALUE)
        sys.stdout.flush()
        mode = sys.argv[1] if len(sys.argv) > 1 else ""
        if mode == "exit":
            sys.exit(int(sys.argv[2]))
        if mode == "raise":
            raise ValueError("boom from script")
        if mode == "newloop":
            lp = asyncio.new_event_loop()
            print("NEWLOOP", type(lp).__module__.split(".")[0])
            lp.close()
        return 0

    if __name__ == "__main__":
        asyncio.run(main())
        print("END")
""")


@pytest.fixture
def script_dir(tmp_path):
    (tmp_path / "prog.py").write_text(SCRIPT)
    (tmp_path / "helper_mod.py").write_text("VALUE = 'helper-ok'\n")
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "tool.py").write_text(SCRIPT.replace("import helper_mod  #", "from mypkg import helper_mod  #"))
    (pkg / "helper_mod.py").write_text("VALUE = 'pkg-helper-ok'\n")
    return tmp_path


def run_python(args, cwd, timeout=60):
    env = dict(os.environ)
    env["PYTHONPATH"] = boucle_pythonpath()
    env.pop("PYTHONASYNCIODEBUG", None)
    return subprocess.run([sys.executable] + args, cwd=str(cwd), env=env,
                          capture_output=True, text=True, timeout=timeout)


def parse(stdout):
    out = {}
    for line in stdout.splitlines():
        key, _, value = line.partition(" ")
        out[key] = value
    return out


def test_python_m_boucle_script(boucle_mod, script_dir):
    plain = run_python(["prog.py", "a", "b c"], script_dir)
    res = run_python(["-m", "boucle", "prog.py", "a", "b c"], script_dir)
    assert plain.returncode == 0, plain.stderr
    assert res.returncode == 0, res.stderr
    p, b = parse(plain.stdout), parse(res.stdout)
    assert p["LOOP"] == "asyncio"
    assert b["LOOP"] == "boucle"
    for key in ("ARGV", "ARGV0", "NAME", "FILE", "HELPER", "END"):
        assert b.get(key) == p.get(key), key
    assert b["ARGV"] == "['a', 'b c']"
    assert b["NAME"] == "__main__"


def test_python_m_boucle_script_path_from_other_dir(boucle_mod, script_dir, tmp_path_factory):
    other = tmp_path_factory.mktemp("elsewhere")
    res = run_python(["-m", "boucle", str(script_dir / "prog.py"), "x"], other)
    assert res.returncode == 0, res.stderr
    out = parse(res.stdout)
    assert out["LOOP"] == "boucle"
    assert out["HELPER"] == "helper-ok"
    assert out["ARGV"] == "['x']"


def test_python_m_boucle_new_event_loop_is_boucle(boucle_mod, script_dir):
    res = run_python(["-m", "boucle", "prog.py", "newloop"], script_dir)
    assert res.returncode == 0, res.stderr
    assert parse(res.stdout)["NEWLOOP"] == "boucle"


def test_python_m_boucle_exit_code(boucle_mod, script_dir):
    res = run_python(["-m", "boucle", "prog.py", "exit", "3"], script_dir)
    assert res.returncode == 3, res.stderr
    out = parse(res.stdout)
    assert out["LOOP"] == "boucle"
    assert "END" not in out
    assert "Traceback" not in res.stderr
    res = run_python(["-m", "boucle", "prog.py", "exit", "0"], script_dir)
    assert res.returncode == 0, res.stderr
    assert "END" not in parse(res.stdout)


def test_python_m_boucle_uncaught_exception(boucle_mod, script_dir):
    res = run_python(["-m", "boucle", "prog.py", "raise"], script_dir)
    assert res.returncode == 1
    assert "Traceback (most recent call last)" in res.stderr
    assert "ValueError: boom from script" in res.stderr
    assert "prog.py" in res.stderr
    assert res.stderr.strip().splitlines()[-1] == "ValueError: boom from script"


def test_python_m_boucle_module(boucle_mod, script_dir):
    plain = run_python(["-m", "mypkg.tool", "1", "2"], script_dir)
    res = run_python(["-m", "boucle", "-m", "mypkg.tool", "1", "2"], script_dir)
    assert plain.returncode == 0, plain.stderr
    assert res.returncode == 0, res.stderr
    p, b = parse(plain.stdout), parse(res.stdout)
    assert p["LOOP"] == "asyncio"
    assert b["LOOP"] == "boucle"
    for key in ("ARGV", "ARGV0", "NAME", "FILE", "HELPER", "END"):
        assert b.get(key) == p.get(key), key
    assert b["ARGV"] == "['1', '2']"
    assert b["ARGV0"] == "tool.py"


def test_python_m_boucle_module_exit_code_and_exception(boucle_mod, script_dir):
    res = run_python(["-m", "boucle", "-m", "mypkg.tool", "exit", "5"], script_dir)
    assert res.returncode == 5, res.stderr
    res = run_python(["-m", "boucle", "-m", "mypkg.tool", "raise"], script_dir)
    assert res.returncode == 1
    assert "ValueError: boom from script" in res.stderr


def test_python_m_boucle_missing_script(boucle_mod, tmp_path):
    res = run_python(["-m", "boucle", "does_not_exist.py"], tmp_path)
    assert res.returncode != 0
    assert "does_not_exist.py" in res.stderr


def test_python_m_boucle_missing_module(boucle_mod, tmp_path):
    res = run_python(["-m", "boucle", "-m", "no_such_module_xyz"], tmp_path)
    assert res.returncode != 0
    assert "no_such_module_xyz" in res.stderr
