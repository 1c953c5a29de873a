"""examples/tour: every step of the talk runs and prints what it should.

Each step runs in a child interpreter that imports the same boucle as the
tests (conftest.boucle_pythonpath); its standard output must be exactly the
expected lines below, its standard error empty, its exit status 0. Most
steps print the toy version's output and then the same lines again from
boucle, so the comparison also proves the toy and the real engine agree.

In the TIMED steps, tasks wake up on timers a few tens of milliseconds
apart; on a loaded machine two of them may wake up in the same turn and
print in the other order. There the lines must still be exactly the
expected ones, each section ("-- ..." headings) must hold the same lines,
and each task's own lines (same prefix before ':') must come in order;
only the interleaving of different tasks may differ.
"""
import ast
import importlib.util
import os
import subprocess
import sys

import pytest

from conftest import boucle_pythonpath
from test_examples import networking_missing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOUR = os.path.join(ROOT, "examples", "tour")
TIMEOUT = 60

NEEDS_NETWORKING = {"08_aiosocket.py", "11_async_context_managers.py"}
NEEDS_TRIO = {"12_trio_guest.py"}
TIMED = {"05_interrupt_sleep.py", "07_gather.py", "09_futures.py", "12_trio_guest.py"}

EXPECTED = {
    "01_coroutine_iteration.py": """\
-- what complex_work() returns
a coroutine: True
__await__() gives a coroutine_wrapper which is an iterator: True
-- driving it with for
complex_work: step 1
  the coroutine yielded None
complex_work: step 2
  the coroutine yielded None
complex_work: step 3
-- driving it with next()
complex_work: step 1
  ... interrupted once
complex_work: step 2
  ... interrupted twice
complex_work: step 3
  StopIteration carries the return value: 'work done'
-- the same coroutine on boucle
complex_work: step 1
complex_work: step 2
complex_work: step 3
boucle.run returned 'work done'
""",
    "02_awaitable_class.py": """\
-- driving ComplexWork by hand
ComplexWork: step 1
  next() #1: interrupted
ComplexWork: step 2
  next() #2: interrupted
ComplexWork: step 3
  next() #3: finished with 'work done'
-- awaiting it in a coroutine, driven with for
ComplexWork: step 1
ComplexWork: step 2
ComplexWork: step 3
main got 'work done'
-- the same coroutine on boucle
ComplexWork: step 1
ComplexWork: step 2
ComplexWork: step 3
main got 'work done'
boucle.run returned 'work done'
""",
    "03_waiter_gather.py": """\
wait_job: waiting for the waiter
do_job: working...
do_job: done, setting the waiter
wait_job: the waiter is set, going on
""",
    "04_run_tasks.py": """\
-- run_task
run_task returned 'single result'
-- run_tasks, round-robin
wait_job: waiting for the waiter
do_job: working, step 1
do_job: working, step 2
do_job: done, setting the waiter
wait_job: the waiter is set, going on
results: ['waited', 'done']
-- asyncio.gather on boucle
wait_job: waiting for the waiter
do_job: working, step 1
do_job: working, step 2
do_job: done, setting the waiter
wait_job: the waiter is set, going on
results: ['waited', 'done']
""",
    "05_interrupt_sleep.py": """\
-- toy sleep, round-robin runner
fast: tick 1 after 0.04s
fast: tick 2 after 0.08s
slow: tick 1 after 0.10s
fast: tick 3 after 0.12s
-- asyncio.sleep on boucle
fast: tick 1 after 0.04s
fast: tick 2 after 0.08s
slow: tick 1 after 0.10s
fast: tick 3 after 0.12s
""",
    "06_loop_class.py": """\
-- toy Loop
parent: spawning children a and b
child a: step 1
child b: step 1
parent: back after one interruption
child a: step 2
child b: step 2
-- boucle
parent: my loop is a boucle.Loop: True
parent: spawning children a and b
child a: step 1
child b: step 1
parent: back after one interruption
child a: step 2
child b: step 2
""",
    "07_gather.py": """\
-- toy gather on the toy Loop
tea: start, 0.09s of work
toast: start, 0.03s of work
eggs: start, 0.06s of work
toast: done
eggs: done
tea: done
all done: ['TEA', 'TOAST', 'EGGS']
-- asyncio.gather on boucle
tea: start, 0.09s of work
toast: start, 0.03s of work
eggs: start, 0.06s of work
toast: done
eggs: done
tea: done
all done: ['TEA', 'TOAST', 'EGGS']
""",
    "08_aiosocket.py": """\
-- AIOSocket on the toy Loop
server: got 'hello'
client: sent 'hello', got back 'olleh'
server: got 'event loop'
client: sent 'event loop', got back 'pool tneve'
server: got 'boucle'
client: sent 'boucle', got back 'elcuob'
-- the loop's socket operations on boucle
server: got 'hello'
client: sent 'hello', got back 'olleh'
server: got 'event loop'
client: sent 'event loop', got back 'pool tneve'
server: got 'boucle'
client: sent 'boucle', got back 'elcuob'
""",
    "09_futures.py": """\
-- toy futures and time events
waiter: waiting for the future
setter: computing the answer...
setter: setting the future
waiter: the future gave 42
fast: tick 1 after 0.04s
fast: tick 2 after 0.08s
slow: tick 1 after 0.10s
fast: tick 3 after 0.12s
the loop resumed tasks 10 times
-- asyncio futures on boucle
asyncio.sleep yields a Future to its loop
waiter: waiting for the future
setter: computing the answer...
setter: setting the future
waiter: the future gave 42
fast: tick 1 after 0.04s
fast: tick 2 after 0.08s
slow: tick 1 after 0.10s
fast: tick 3 after 0.12s
""",
    "10_async_iterators.py": """\
-- on the toy Loop
ARange gave 0
ARange gave 1
ARange gave 2
squares from arange: [0, 1, 4, 9]
main returned 14
-- on boucle, with asyncio.sleep
ARange gave 0
ARange gave 1
ARange gave 2
squares from arange: [0, 1, 4, 9]
main returned 14
""",
    "11_async_context_managers.py": """\
-- toy sockets on the toy Loop
server: listening
client: 'async with a class' -> 'ssalc a htiw cnysa'
server: closed
server: listening
client: 'asynccontextmanager' -> 'reganamtxetnoccnysa'
server: closed
-- asyncio servers on boucle
server: listening
client: 'async with a class' -> 'ssalc a htiw cnysa'
server: closed
server: listening
client: 'asynccontextmanager' -> 'reganamtxetnoccnysa'
server: closed
""",
    "12_trio_guest.py": """\
asyncio: host loop is a boucle.Loop: True
trio: running as a guest of Loop
trio child fast: woke up after 0.05s
trio child medium: woke up after 0.1s
trio child slow: woke up after 0.15s
asyncio: trio finished with ['SLOW', 'FAST', 'MEDIUM']
asyncio: the host kept running meanwhile: True
""",}


def tour_steps():
    return sorted(name for name in os.listdir(TOUR)
                  if name[:2].isdigit() and name.endswith(".py"))


def run_step(name):
    env = dict(os.environ, PYTHONPATH=boucle_pythonpath())
    env.pop("PYTHONASYNCIODEBUG", None)
    return subprocess.run([sys.executable, os.path.join(TOUR, name)], cwd=TOUR, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_tour_step(name, boucle_mod):
    if name in NEEDS_NETWORKING:
        reason = networking_missing(boucle_mod)
        if reason:
            pytest.skip(reason)
    if name in NEEDS_TRIO and importlib.util.find_spec("trio") is None:
        pytest.skip("trio is not installed: step 12 runs trio in guest mode on boucle "
                    "(pip install trio)")
    proc = run_step(name)
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
    lines, expected = proc.stdout.splitlines(), EXPECTED[name].splitlines()
    if name in TIMED and lines != expected:
        assert_same_up_to_task_interleaving(lines, expected)
    else:
        assert lines == expected


def sections(lines):
    """Split output at its "-- heading" lines: [(heading, [lines])]."""
    result = [(None, [])]
    for line in lines:
        if line.startswith("-- "):
            result.append((line, []))
        else:
            result[-1][1].append(line)
    return result


def task_of(line):
    return line.split(":", 1)[0]


def assert_same_up_to_task_interleaving(lines, expected):
    got, want = sections(lines), sections(expected)
    assert [heading for heading, _ in got] == [heading for heading, _ in want]
    for (heading, got_lines), (_, want_lines) in zip(got, want):
        assert sorted(got_lines) == sorted(want_lines), heading
        for task in {task_of(line) for line in want_lines}:
            assert ([line for line in got_lines if task_of(line) == task]
                    == [line for line in want_lines if task_of(line) == task]), (heading, task)


def test_every_step_is_checked_and_documented():
    steps = tour_steps()
    assert steps == sorted(EXPECTED)
    with open(os.path.join(TOUR, "README.md")) as readme:
        text = readme.read()
    for name in steps + ["toy.py"]:
        assert f"`{name}`" in text, f"{name} is missing from examples/tour/README.md"
    for name in steps:
        with open(os.path.join(TOUR, name)) as source:
            docstring = ast.get_docstring(ast.parse(source.read()))
        assert docstring and "Talk" in docstring, f"{name} does not say which part of the talk it shows"
