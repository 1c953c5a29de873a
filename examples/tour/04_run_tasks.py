"""Step 4 - the first event loops: run_task, then round-robin run_tasks.

Talk, part 4 "Goldilocks and the three tasks" (4.2 to 4.4): a loop is what
calls next() on tasks. `run_task` drives one task to its end; `run_tasks`
drives several, round-robin: take the first task of the queue, advance it to
its next interruption, put it back at the end unless it finished. It
replaces `asyncio.gather` in step 3's program - and prints exactly what the
same program prints on boucle with the real gather.
"""
import asyncio
from collections import deque

import boucle


def run_task(task):
    steps = task.__await__()
    try:
        while True:
            next(steps)
    except StopIteration as stop:
        return stop.value


def run_tasks(*tasks):
    results = [None] * len(tasks)
    queue = deque((index, task.__await__()) for index, task in enumerate(tasks))
    while queue:
        index, steps = queue.popleft()
        try:
            next(steps)
        except StopIteration as stop:
            results[index] = stop.value
        else:
            queue.append((index, steps))   # not finished: back in the queue
    return results


class Waiter:                       # step 3's Waiter
    def __init__(self):
        self.done = False

    def set(self):
        self.done = True

    def __await__(self):
        while not self.done:
            yield


async def wait_job(waiter):
    print("wait_job: waiting for the waiter")
    await waiter
    print("wait_job: the waiter is set, going on")
    return "waited"


async def do_job(waiter):
    for step in range(1, 3):
        print(f"do_job: working, step {step}")
        await asyncio.sleep(0)      # a plain interruption
    print("do_job: done, setting the waiter")
    waiter.set()
    return "done"


async def one_task():
    await asyncio.sleep(0)
    return "single result"


print("-- run_task")
print("run_task returned", repr(run_task(one_task())))

print("-- run_tasks, round-robin")
waiter = Waiter()
print("results:", run_tasks(wait_job(waiter), do_job(waiter)))

print("-- asyncio.gather on boucle")


async def main():
    waiter = Waiter()
    return await asyncio.gather(wait_job(waiter), do_job(waiter))

print("results:", boucle.run(main()))
