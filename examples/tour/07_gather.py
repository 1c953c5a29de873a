"""Step 7 - gather, rebuilt on a counting Waiter.

Talk, part 4 (4.10 and 4.11): the Waiter now waits for `n` notifications
instead of one. `gather` makes a Waiter for its tasks, wraps each task in a
coroutine that stores the result and notifies the Waiter, adds the wrappers
to `Loop.current`, then awaits the Waiter. Step 5's sleep and step 6's Loop
complete the toy engine; asyncio.gather runs the same tasks on boucle.
"""
import asyncio
import time
from collections import deque

import boucle


class interrupt:                    # step 5
    def __await__(self):
        yield


async def sleep(duration):          # step 5
    deadline = time.monotonic() + duration
    await interrupt()
    while time.monotonic() < deadline:
        await interrupt()


class Loop:                         # step 6
    current = None

    def __init__(self):
        self.tasks = deque()

    def add_task(self, task):
        self.tasks.append(task.__await__())

    def run_task(self, task):
        Loop.current = self
        self.add_task(task)
        while self.tasks:
            steps = self.tasks.popleft()
            try:
                next(steps)
            except StopIteration:
                continue
            self.tasks.append(steps)


class Waiter:
    def __init__(self, n=1):
        self.n = n                  # notifications still expected

    def set(self):
        self.n -= 1

    def __await__(self):
        while self.n > 0:
            yield


async def gather(*tasks):
    waiter = Waiter(len(tasks))
    results = [None] * len(tasks)

    async def run_and_notify(index, task):
        results[index] = await task
        waiter.set()

    for index, task in enumerate(tasks):
        Loop.current.add_task(run_and_notify(index, task))
    await waiter
    return results


async def job(name, delay, sleep):
    print(f"{name}: start, {delay}s of work")
    await sleep(delay)
    print(f"{name}: done")
    return name.upper()


async def main(gather, sleep):
    results = await gather(job("tea", 0.09, sleep), job("toast", 0.03, sleep),
                           job("eggs", 0.06, sleep))
    print("all done:", results)


print("-- toy gather on the toy Loop")
Loop().run_task(main(gather, sleep))
print("-- asyncio.gather on boucle")
boucle.run(main(asyncio.gather, asyncio.sleep))
