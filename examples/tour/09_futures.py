"""Step 9 - futures, time events and a sleep that does not spin.

Talk, part 5 "No Future" (5.2 to 5.10): step 5's sleep keeps a task in the
queue only to find out, again and again, that it is too early. A `Future`
yields *itself* up to the loop, which parks the task on it instead of
rescheduling it; `Future.set` puts the task back in the queue. A
`TimeEvent` (orderable by time) links a deadline to a future, `call_later`
pushes it on a heap, and `run` sets the futures whose time has come. The
new `sleep` is then a future plus a time event. asyncio works the same way:
`asyncio.sleep` is `loop.create_future()` plus `loop.call_later()`, and
the future is what its coroutine yields - shown on boucle.
"""
import asyncio
import heapq
import itertools
import time
from collections import deque
from dataclasses import dataclass, field

import boucle


class Future:
    def __init__(self):
        self.done = False
        self.result = None
        self.task = None            # the parked task, set by the loop

    def set(self, result=None):
        self.done, self.result = True, result
        if self.task is not None:
            Loop.current.add_task(self.task)    # wake the parked task up

    def __await__(self):
        if not self.done:
            yield self              # travels up to the loop
        return self.result


@dataclass(order=True)
class TimeEvent:
    when: float
    order: int                      # ties: first scheduled, first set
    future: Future = field(compare=False)


class Loop:
    current = None

    def __init__(self):
        self.tasks = deque()
        self.events = []            # a heap of TimeEvents
        self.order = itertools.count()
        self.resumed = 0

    def add_task(self, task):
        if hasattr(task, "__await__"):
            task = task.__await__()
        self.tasks.append(task)

    def call_later(self, delay, future):
        event = TimeEvent(time.monotonic() + delay, next(self.order), future)
        heapq.heappush(self.events, event)

    def run(self):
        Loop.current = self
        while self.tasks or self.events:
            if not self.tasks:      # nothing to do before the next event
                time.sleep(max(0.0, self.events[0].when - time.monotonic()))
            while self.events and self.events[0].when <= time.monotonic():
                heapq.heappop(self.events).future.set()
            if not self.tasks:
                continue
            task = self.tasks.popleft()
            self.resumed += 1
            try:
                yielded = next(task)
            except StopIteration:
                continue
            if isinstance(yielded, Future):
                yielded.task = task     # parked until the future is set
            else:
                self.tasks.append(task)


async def sleep(duration):
    future = Future()
    Loop.current.call_later(duration, future)
    await future


async def waiter(future):
    print("waiter: waiting for the future")
    print("waiter: the future gave", await future)


async def setter(set_result, sleep):
    print("setter: computing the answer...")
    await sleep(0.02)
    print("setter: setting the future")
    set_result(42)


async def ticker(name, delay, count, sleep):
    for n in range(1, count + 1):
        await sleep(delay)
        print(f"{name}: tick {n} after {n * delay:.2f}s")


print("-- toy futures and time events")
loop = Loop()
future = Future()
loop.add_task(waiter(future))
loop.add_task(setter(future.set, sleep))
loop.add_task(ticker("fast", 0.04, 3, sleep))
loop.add_task(ticker("slow", 0.1, 1, sleep))
loop.run()
print("the loop resumed tasks", loop.resumed, "times")


async def main():
    loop = asyncio.get_running_loop()
    steps = asyncio.sleep(0.01).__await__()
    print("asyncio.sleep yields a", type(next(steps)).__name__, "to its loop")
    steps.close()
    future = loop.create_future()
    await asyncio.gather(waiter(future), setter(future.set_result, asyncio.sleep),
                         ticker("fast", 0.04, 3, asyncio.sleep),
                         ticker("slow", 0.1, 1, asyncio.sleep))

print("-- asyncio futures on boucle")
boucle.run(main())
