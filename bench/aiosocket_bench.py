"""boucle.aiosocket against loop.sock_* and asyncio streams, on each loop.

    python bench/aiosocket_bench.py [--rounds 20000] [--size 1024] [--repeat 3]

A ping-pong in one process over a socketpair: one task sends --size bytes,
the other echoes them, --rounds times; reports round trips per second (best
of --repeat; loops interleaved) and checks every echoed byte.
"""
import argparse
import asyncio
import os
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))

import boucle  # noqa: E402


async def recv_exactly(recv, n):
    buf = b""
    while len(buf) < n:
        chunk = await recv(n - len(buf))
        assert chunk, "peer closed"
        buf += chunk
    return buf


async def via_aiosocket(rounds, msg):
    a, b = socket.socketpair()
    with boucle.aiosocket(fileno=a.detach()) as x, boucle.aiosocket(fileno=b.detach()) as y:
        async def echo():
            for _ in range(rounds):
                await y.sendall(await recv_exactly(y.recv, len(msg)))
        t = asyncio.ensure_future(echo())
        for _ in range(rounds):
            await x.sendall(msg)
            assert await recv_exactly(x.recv, len(msg)) == msg
        await t


async def via_sock_ops(rounds, msg):
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    with a, b:
        async def echo():
            for _ in range(rounds):
                data = await recv_exactly(lambda n: loop.sock_recv(b, n), len(msg))
                await loop.sock_sendall(b, data)
        t = asyncio.ensure_future(echo())
        for _ in range(rounds):
            await loop.sock_sendall(a, msg)
            assert await recv_exactly(lambda n: loop.sock_recv(a, n), len(msg)) == msg
        await t


async def via_streams(rounds, msg):
    a, b = socket.socketpair()
    ra, wa = await asyncio.open_connection(sock=a)
    rb, wb = await asyncio.open_connection(sock=b)

    async def echo():
        for _ in range(rounds):
            wb.write(await rb.readexactly(len(msg)))
            await wb.drain()
    t = asyncio.ensure_future(echo())
    for _ in range(rounds):
        wa.write(msg)
        await wa.drain()
        assert await ra.readexactly(len(msg)) == msg
    await t
    wa.close()
    wb.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    loops = {"asyncio": asyncio.new_event_loop, "boucle": boucle.new_event_loop}
    try:
        import uvloop
        loops = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop,
                 "boucle": boucle.new_event_loop}
    except ImportError:
        print("note: uvloop not installed", file=sys.stderr)
    msg = os.urandom(args.size)
    kinds = {"boucle.aiosocket": via_aiosocket, "loop.sock_*": via_sock_ops, "streams": via_streams}
    best = {}
    for _ in range(args.repeat):
        for kind, fn in kinds.items():
            for name, fac in loops.items():
                loop = fac()
                try:
                    t0 = time.perf_counter()
                    loop.run_until_complete(fn(args.rounds, msg))
                    dt = time.perf_counter() - t0
                finally:
                    loop.close()
                best[kind, name] = min(best.get((kind, name), dt), dt)
    print(f"Python {sys.version.split()[0]}, {args.rounds} round trips of {args.size} B, "
          f"best of {args.repeat}; round trips/s (higher is better)")
    print(f"{'':<18}" + "".join(f"{n:>10}" for n in loops))
    for kind in kinds:
        print(f"{kind:<18}" + "".join(f"{args.rounds / best[kind, n]:>10.0f}" for n in loops))


if __name__ == "__main__":
    main()
