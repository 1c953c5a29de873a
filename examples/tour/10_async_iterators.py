"""Step 10 - async iterators and async generators: ARange and arange.

Talk, part 6 "For a Few Tools More" (6.2 to 6.6): `__aiter__` (a plain
method) returns an async iterator whose `__anext__` is a coroutine, and
`StopAsyncIteration` ends the loop; `async for` may suspend at each item.
`ARange` counts like `range`, waiting on the toy engine's `sleep` (toy.py)
before each number. An async generator (`async def` + `yield`) does the
same in five lines, and async comprehensions work too. Since the code only
calls `sleep`, swapping in `asyncio.sleep` runs it unchanged on boucle -
the toy version, on the other hand, cannot be awaited from an asyncio REPL.
"""
import asyncio

import boucle
import toy

sleep = toy.sleep


class ARange:
    def __init__(self, stop, delay):
        self.stop, self.delay = stop, delay

    def __aiter__(self):            # synchronous: returns the async iterator
        return ARangeIterator(self.stop, self.delay)


class ARangeIterator:
    def __init__(self, stop, delay):
        self.next_value, self.stop, self.delay = 0, stop, delay

    def __aiter__(self):
        return self

    async def __anext__(self):      # a coroutine: it may await
        if self.next_value >= self.stop:
            raise StopAsyncIteration
        await sleep(self.delay)
        value, self.next_value = self.next_value, self.next_value + 1
        return value


async def arange(stop, delay):
    for value in range(stop):
        await sleep(delay)
        yield value


async def main():
    async for value in ARange(3, 0.01):
        print("ARange gave", value)
    squares = [value * value async for value in arange(4, 0.01)]
    print("squares from arange:", squares)
    return sum(squares)


print("-- on the toy Loop")
print("main returned", toy.Loop().run_task(main()))

print("-- on boucle, with asyncio.sleep")
sleep = asyncio.sleep               # the only change
print("main returned", boucle.run(main()))
