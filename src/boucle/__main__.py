"""python -m boucle: run a program with boucle as asyncio's loop.

    python -m boucle script.py [args...]
    python -m boucle -m package.module [args...]
    python -m boucle                      (asyncio REPL on a boucle loop)
"""
import os
import runpy
import sys

import boucle

USAGE = """usage: python -m boucle script.py [args...]
       python -m boucle -m module [args...]
       python -m boucle            (async REPL: await at top level)"""


def main(argv):
    if argv and argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
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
