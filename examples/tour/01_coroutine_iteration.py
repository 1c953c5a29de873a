"""Step 1 - a coroutine is an iterator in disguise.

Talk, part 2 "A world of coroutines" (2.2 to 2.8): calling an `async def`
function only builds a coroutine object; its `__await__()` returns an
iterator, and driving that iterator - with `for`, or one `next()` at a time -
runs the body up to each interruption. Every `yield` is a moment where an
event loop could take control back. At the end, boucle drives the same
coroutine for real.
"""
import asyncio

import boucle


async def complex_work():
    print("complex_work: step 1")
    await asyncio.sleep(0)          # a bare interruption: one `yield`
    print("complex_work: step 2")
    await asyncio.sleep(0)
    print("complex_work: step 3")
    return "work done"


print("-- what complex_work() returns")
coro = complex_work()               # nothing printed: the body has not started
wrapper = coro.__await__()
print("a coroutine:", asyncio.iscoroutine(coro))
print("__await__() gives a", type(wrapper).__name__,
      "which is an iterator:", iter(wrapper) is wrapper)
coro.close()

print("-- driving it with for")
for value in complex_work().__await__():
    print("  the coroutine yielded", value)

print("-- driving it with next()")
steps = complex_work().__await__()
next(steps)
print("  ... interrupted once")
next(steps)
print("  ... interrupted twice")
try:
    next(steps)
except StopIteration as stop:
    print("  StopIteration carries the return value:", repr(stop.value))

print("-- the same coroutine on boucle")
print("boucle.run returned", repr(boucle.run(complex_work())))
