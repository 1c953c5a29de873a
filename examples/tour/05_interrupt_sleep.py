"""Step 5 - interrupt, and a sleep made of interruptions.

Talk, part 4 (4.5 and 4.6): `interrupt` is the smallest awaitable - one
`yield`, like `await asyncio.sleep(0)`. A toy `sleep` keeps interrupting
until its deadline has passed. With step 4's round-robin runner, two
coroutines sleeping different times print their messages mixed: the loop
never waits for a task to finish, only for its next interruption. Then the
same two coroutines run on boucle with asyncio.sleep.
"""
import asyncio
import time
from collections import deque

import boucle


class interrupt:
    def __await__(self):
        yield


async def sleep(duration):
    deadline = time.monotonic() + duration
    await interrupt()               # always hand control over at least once
    while time.monotonic() < deadline:
        await interrupt()


def run_tasks(*tasks):              # step 4's runner
    queue = deque(task.__await__() for task in tasks)
    while queue:
        steps = queue.popleft()
        try:
            next(steps)
        except StopIteration:
            continue
        queue.append(steps)


async def ticker(name, delay, count, sleep):
    for n in range(1, count + 1):
        await sleep(delay)
        print(f"{name}: tick {n} after {n * delay:.2f}s")


print("-- toy sleep, round-robin runner")
run_tasks(ticker("fast", 0.04, 3, sleep), ticker("slow", 0.1, 1, sleep))


async def main():
    await asyncio.gather(ticker("fast", 0.04, 3, asyncio.sleep),
                         ticker("slow", 0.1, 1, asyncio.sleep))

print("-- asyncio.sleep on boucle")
boucle.run(main())
