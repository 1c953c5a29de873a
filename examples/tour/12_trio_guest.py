"""Step 12 - another engine on top: trio in guest mode on a boucle loop.

Talk, conclusion (7.2): asyncio is one async engine among others; trio is
a good one, with its own loop. Guest mode lets trio run *inside* another
event loop: `trio.lowlevel.start_guest_run` is given a way to schedule a
callback on the host (`loop.call_soon_threadsafe`) and a callback for when
trio's main function is done. Here the host is a boucle loop, which keeps
running its own asyncio task while trio runs a nursery of three children.
"""
import asyncio

import trio

import boucle


async def trio_child(name, delay):
    await trio.sleep(delay)
    print(f"trio child {name}: woke up after {delay}s")
    return name.upper()


async def trio_main():
    print("trio: running as a guest of", type(asyncio.get_running_loop()).__name__)
    children = [("slow", 0.15), ("fast", 0.05), ("medium", 0.1)]
    results = [None] * len(children)

    async def run_child(index, name, delay):
        results[index] = await trio_child(name, delay)

    async with trio.open_nursery() as nursery:
        for index, (name, delay) in enumerate(children):
            nursery.start_soon(run_child, index, name, delay)
    return results


async def asyncio_ticker(done):
    ticks = 0
    while not done.done():
        await asyncio.sleep(0.01)
        ticks += 1
    return ticks


async def main():
    loop = asyncio.get_running_loop()
    print("asyncio: host loop is a boucle.Loop:", isinstance(loop, boucle.Loop))
    done = loop.create_future()
    trio.lowlevel.start_guest_run(
        trio_main,
        run_sync_soon_threadsafe=loop.call_soon_threadsafe,
        done_callback=done.set_result,          # receives trio's Outcome
        # a running boucle loop owns signal.set_wakeup_fd: trio must not take it
        host_uses_signal_set_wakeup_fd=True,
    )
    ticks = await asyncio_ticker(done)
    results = (await done).unwrap()             # trio's result, or its exception
    print("asyncio: trio finished with", results)
    print("asyncio: the host kept running meanwhile:", ticks > 0)

boucle.run(main())
