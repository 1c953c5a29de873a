"""Step 2 - a hand-made awaitable.

Talk, part 3 "Wait for me!" (3.2 and 3.3): anything with an `__await__`
method returning an iterator can be awaited. Writing `__await__` as a
generator function is the easiest way (it is how coroutines were built
before `async def`). `ComplexWork` behaves like step 1's `complex_work`:
we drive it by hand, then await it from a coroutine run by boucle.
"""
import boucle


class ComplexWork:
    def __await__(self):
        print("ComplexWork: step 1")
        yield                       # interrupt: hand control to whoever drives us
        print("ComplexWork: step 2")
        yield
        print("ComplexWork: step 3")
        return "work done"


print("-- driving ComplexWork by hand")
steps = ComplexWork().__await__()
for turn in range(1, 4):
    try:
        next(steps)
        print(f"  next() #{turn}: interrupted")
    except StopIteration as stop:
        print(f"  next() #{turn}: finished with", repr(stop.value))


async def main():
    result = await ComplexWork()    # awaitable, like a coroutine
    print("main got", repr(result))
    return result


print("-- awaiting it in a coroutine, driven with for")
for _ in main().__await__():
    pass

print("-- the same coroutine on boucle")
# A bare `yield` reaching asyncio's Task means "resume me at the next turn".
print("boucle.run returned", repr(boucle.run(main())))
