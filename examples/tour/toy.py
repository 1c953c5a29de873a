"""The toy engine as it stands at the end of part 5 of the talk.

Steps 01-09 build it piece by piece; steps 10 and 11 (part 6, "For a Few
Tools More") import it from here instead of repeating it:

- `interrupt`: one bare `yield` (step 5);
- `Loop`: round-robin tasks, `add_task`, `run_task`, `Loop.current`
  (steps 6-7), futures and time events on a heap, `call_later` (step 9);
- `Future` and the future-based `sleep` (step 9);
- `AIOSocket` / `aiosocket`, select-based sockets (step 8).
"""
import errno
import heapq
import itertools
import os
import select
import socket
import time
from collections import deque
from dataclasses import dataclass, field


class interrupt:
    def __await__(self):
        yield


class Future:
    def __init__(self):
        self.done = False
        self.result = None
        self.task = None

    def set(self, result=None):
        self.done, self.result = True, result
        if self.task is not None:
            Loop.current.add_task(self.task)

    def __await__(self):
        if not self.done:
            yield self
        return self.result


@dataclass(order=True)
class TimeEvent:
    when: float
    order: int
    future: Future = field(compare=False)


class Loop:
    current = None

    def __init__(self):
        self.tasks = deque()
        self.events = []
        self.order = itertools.count()

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
            if not self.tasks:
                time.sleep(max(0.0, self.events[0].when - time.monotonic()))
            while self.events and self.events[0].when <= time.monotonic():
                heapq.heappop(self.events).future.set()
            if not self.tasks:
                continue
            task = self.tasks.popleft()
            try:
                yielded = next(task)
            except StopIteration:
                continue
            if isinstance(yielded, Future):
                yielded.task = task
            else:
                self.tasks.append(task)

    def run_task(self, task):
        """Run `task` (and whatever it spawns) to the end; return its result."""
        outcome = []

        async def keep_result():
            outcome.append(await task)

        self.add_task(keep_result())
        self.run()
        return outcome[0]


async def sleep(duration):
    future = Future()
    Loop.current.call_later(duration, future)
    await future


class AIOSocket:
    def __init__(self, sock):
        self.sock = sock
        sock.setblocking(False)

    def fileno(self):
        return self.sock.fileno()

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    async def _until_ready(self, reading):
        want = ([self], []) if reading else ([], [self])
        while not any(select.select(*want, [], 0)[:2]):
            await interrupt()

    def bind(self, address):
        self.sock.bind(address)

    def listen(self, backlog=8):
        self.sock.listen(backlog)

    def getsockname(self):
        return self.sock.getsockname()

    async def connect(self, address):
        err = self.sock.connect_ex(address)
        if err not in (0, errno.EINPROGRESS):
            raise OSError(err, os.strerror(err))
        await self._until_ready(reading=False)
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise OSError(err, os.strerror(err))

    async def accept(self):
        await self._until_ready(reading=True)
        conn, address = self.sock.accept()
        return AIOSocket(conn), address

    async def recv(self, size):
        await self._until_ready(reading=True)
        return self.sock.recv(size)

    async def send(self, data):
        await self._until_ready(reading=False)
        return self.sock.send(data)


def aiosocket(family=socket.AF_INET, type=socket.SOCK_STREAM):
    return AIOSocket(socket.socket(family, type))
