"""Subprocess spawn-and-wait rate on asyncio, uvloop and boucle, side by side.

    python bench/spawn_bench.py [--n 300] [--concurrency 1,10] [--repeat 3]

Each round spawns --n children of /bin/true (plain) or of /bin/echo with
stdout=PIPE read to the end (pipe), --concurrency at a time, and reports
spawns per second; the best of --repeat rounds is kept, rounds interleave
the loops. Every child's exit status and output is checked.
"""
import argparse
import asyncio
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))


def factories():
    out = {"asyncio": asyncio.new_event_loop}
    try:
        import uvloop
        out["uvloop"] = uvloop.new_event_loop
    except ImportError:
        print("note: uvloop not installed", file=sys.stderr)
    try:
        import boucle
        out["boucle"] = boucle.new_event_loop
    except ImportError as exc:
        print(f"note: boucle not importable: {exc}", file=sys.stderr)
    return out


async def one(kind):
    if kind == "plain":
        p = await asyncio.create_subprocess_exec("/bin/true")
        assert await p.wait() == 0
    else:
        p = await asyncio.create_subprocess_exec("/bin/echo", "spawned", stdout=subprocess.PIPE)
        out, _ = await p.communicate()
        assert out == b"spawned\n" and p.returncode == 0


async def batch(kind, n, concurrency):
    sem = asyncio.Semaphore(concurrency)

    async def guarded():
        async with sem:
            await one(kind)
    t0 = time.perf_counter()
    await asyncio.gather(*(guarded() for _ in range(n)))
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--concurrency", default="1,10")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    facs = factories()
    rows = []
    for kind in ("plain", "pipe"):
        for conc in [int(c) for c in args.concurrency.split(",")]:
            best = {}
            for _ in range(args.repeat):
                for name, fac in facs.items():
                    loop = fac()
                    try:
                        dt = loop.run_until_complete(batch(kind, args.n, conc))
                    finally:
                        loop.close()
                    best[name] = min(best.get(name, dt), dt)
            rows.append((kind, conc, {k: args.n / v for k, v in best.items()}))
    names = list(facs)
    print(f"Python {sys.version.split()[0]}, {args.n} spawns per round, best of {args.repeat}; spawns/s (higher is better)")
    head = f"{'workload':<18}" + "".join(f"{n:>10}" for n in names)
    if "boucle" in facs and "uvloop" in facs:
        head += f"{'boucle/uvloop':>15}"
    print(head)
    for kind, conc, rate in rows:
        line = f"{kind + ' x' + str(conc):<18}" + "".join(f"{rate[n]:>10.0f}" for n in names)
        if "boucle" in rate and "uvloop" in rate:
            line += f"{rate['boucle'] / rate['uvloop']:>15.2f}"
        print(line)


if __name__ == "__main__":
    main()
