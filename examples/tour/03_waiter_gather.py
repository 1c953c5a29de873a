"""Step 3 - an awaitable with a state: the Waiter.

Talk, part 3 "Wait for me!" (3.4 and 3.5): a hand-made awaitable can keep a
state that someone else changes. `Waiter` keeps interrupting until it is
set; one coroutine awaits it while another does its job and then sets it.
`asyncio.gather` runs both at once - here on a boucle loop.
"""
import asyncio

import boucle


class Waiter:
    def __init__(self):
        self.done = False

    def set(self):
        self.done = True

    def __await__(self):
        while not self.done:        # keep interrupting until set() is called
            yield


async def wait_job(waiter):
    print("wait_job: waiting for the waiter")
    await waiter
    print("wait_job: the waiter is set, going on")


async def do_job(waiter):
    print("do_job: working...")
    await asyncio.sleep(0.05)       # change the delay: wait_job still waits
    print("do_job: done, setting the waiter")
    waiter.set()


async def main():
    waiter = Waiter()
    await asyncio.gather(wait_job(waiter), do_job(waiter))


boucle.run(main())
