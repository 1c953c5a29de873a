"""python -m boucle: run a program with boucle as asyncio's loop.

    python -m boucle [--stats] script.py [args...]
    python -m boucle [--stats] -m package.module [args...]
    python -m boucle                      (asyncio REPL on a boucle loop)

--stats prints each loop's loop.stats() summary to stderr at exit.
"""
import os
import runpy
import sys

import boucle

USAGE = """usage: python -m boucle [--stats] script.py [args...]
       python -m boucle [--stats] -m module [args...]
       python -m boucle            (async REPL: await at top level)"""


def format_stats(n, st):
    """A short human summary of loop.stats()."""
    run = st["run_seconds"]
    poll = st["poll_seconds"]
    busy = run - poll
    lines = [
        f"boucle stats, loop {n} ({st['backend']}): {st['iterations']} iterations, {st['callbacks']} callbacks, "
        f"{st['io_events']} I/O events, {st['timers_fired']} timers fired",
        f"  {run:.3f} s running: {busy:.3f} s in callbacks and the loop, "
        f"{poll:.3f} s waiting for I/O or timers"
        + (f" ({100 * busy / run:.0f}% busy)" if run > 0 else ""),
        f"  {st['polls']} polls ({st['polls_skipped']} skipped: nothing to poll), "
        f"{st['timers']} timers and {st['fds']} fds still registered",
    ]
    slow = st["slowest_callbacks"]
    if st["slow_callback_threshold"] is not None:
        lines.append(f"  {st['slow_callbacks']} callbacks took >= "
                     f"{st['slow_callback_threshold'] * 1000:.0f} ms; slowest:")
        lines += [f"    {secs:.3f} s  {desc}" for secs, desc in slow] or ["    (none)"]
    return "\n".join(lines)


def _enable_stats():
    import atexit
    from boucle import _loop
    loops = []

    def created(loop):
        loops.append(loop)
        loop.set_slow_callback_threshold(0.01)
    _loop._on_loop_created.append(created)

    def report():
        sys.stdout.flush()
        for n, loop in enumerate(loops, 1):
            print(format_stats(n, loop.stats()), file=sys.stderr)
    atexit.register(report)


def main(argv):
    if argv and argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if argv and argv[0] == "--stats":
        argv = argv[1:]
        _enable_stats()
    boucle.install()
    if not argv:
        # asyncio's REPL creates its loop with asyncio.new_event_loop(),
        # which the installed policy makes a boucle loop.
        sys.argv = [sys.argv[0]]
        runpy.run_module("asyncio", run_name="__main__", alter_sys=True)
        return 0
    if argv[0] == "-m":
        if len(argv) < 2:
            print("python -m boucle: -m needs a module name\n" + USAGE, file=sys.stderr)
            return 2
        sys.argv = [argv[1]] + argv[2:]
        sys.path.insert(0, os.getcwd())
        runpy._run_module_as_main(argv[1], alter_argv=True)
        return 0
    script = argv[0]
    if argv[0].startswith("-"):
        print(f"python -m boucle: unknown option {argv[0]}\n" + USAGE, file=sys.stderr)
        return 2
    sys.argv = list(argv)
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    runpy.run_path(script, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
