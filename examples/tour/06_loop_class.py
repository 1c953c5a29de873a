"""Step 6 - a Loop object: add_task, run_task and Loop.current.

Talk, part 4 (4.7 to 4.9): a function cannot take new tasks once it runs,
so the runner becomes a class holding its queue. `add_task` queues a task
(even while the loop runs), `run_task` is the old single-task use, and the
class attribute `Loop.current` lets a running coroutine find its loop and
spawn tasks on the fly (not thread-safe: a toy). asyncio's counterparts
are `asyncio.get_running_loop()` and `loop.create_task()`, shown on boucle.
"""
import asyncio
from collections import deque

import boucle


class interrupt:
    def __await__(self):
        yield


class Loop:
    current = None

    def __init__(self):
        self.tasks = deque()

    def add_task(self, task):
        if hasattr(task, "__await__"):
            task = task.__await__()
        self.tasks.append(task)

    def run(self):
        Loop.current = self
        while self.tasks:
            task = self.tasks.popleft()
            try:
                next(task)
            except StopIteration:
                continue
            self.tasks.append(task)

    def run_task(self, task):
        self.add_task(task)
        self.run()


async def child(name):
    for step in (1, 2):
        print(f"child {name}: step {step}")
        await interrupt()


async def parent():
    print("parent: spawning children a and b")
    Loop.current.add_task(child("a"))
    Loop.current.add_task(child("b"))
    await interrupt()
    print("parent: back after one interruption")


print("-- toy Loop")
Loop().run_task(parent())


async def boucle_parent():
    loop = asyncio.get_running_loop()           # asyncio's Loop.current
    print("parent: my loop is a boucle.Loop:", isinstance(loop, boucle.Loop))
    print("parent: spawning children a and b")
    children = [loop.create_task(child("a")), loop.create_task(child("b"))]
    await asyncio.sleep(0)
    print("parent: back after one interruption")
    await asyncio.gather(*children)            # boucle.run ends with main

print("-- boucle")
boucle.run(boucle_parent())
