"""boucle.aiosocket: a socket whose I/O methods are coroutines.

    import boucle

    async def echo_once(port):
        async with boucle.aiosocket() as server:        # AF_INET, SOCK_STREAM
            server.bind(("127.0.0.1", port))
            server.listen()
            conn, addr = await server.accept()
            with conn:
                data = await conn.recv(65536)
                await conn.sendall(data)

    async def client(port):
        async with boucle.aiosocket() as s:
            await s.connect(("127.0.0.1", port))
            await s.sendall(b"hello")
            return await s.recv(100)

The I/O methods (connect, accept, recv, recv_into, recvfrom, send, sendall,
sendto) are coroutines built on the running loop's sock_* methods, fetched
with asyncio.get_running_loop() when they are called: on a boucle loop they
take its C fast paths, on any other asyncio loop they work the same. The
other methods are those of socket.socket, called on the wrapped socket, which
is always in non-blocking mode.

Errors are the socket module's. After close() every method raises
OSError(EBADF), as socket.socket does (fileno() returns -1, as socket.socket's
does). close() also stops the operations still waiting on the socket: their
reader/writer is removed from the loop before the fd is closed (so a reused fd
number is never touched) and each waiting task gets OSError(EBADF). asyncio's
loop.sock_recv() on a socket closed under it instead waits until cancelled.
"""
import errno as _errno
import os as _os
import socket as _socket
import sys as _sys

from asyncio import events as _events
from asyncio import exceptions as _exceptions
from asyncio import tasks as _tasks

__all__ = ("aiosocket",)

_get_running_loop = _events.get_running_loop
_current_task = _tasks.current_task
_CancelledError = _exceptions.CancelledError
_HAS_UNCANCEL = _sys.version_info >= (3, 11)


def _ebadf():
    return OSError(_errno.EBADF, _os.strerror(_errno.EBADF))


def _cancel_requested(task):
    """True if someone asked already to cancel the task."""
    if _HAS_UNCANCEL:
        return task.cancelling() > 0
    if getattr(task, "_must_cancel", False):
        return True
    waiter = getattr(task, "_fut_waiter", None)
    return waiter is not None and waiter.cancelled()


def _set_ready(fut):
    if not fut.done():
        fut.set_result(None)


class aiosocket:
    """aiosocket(family=AF_INET, type=SOCK_STREAM, proto=0, fileno=None)

    A non-blocking socket whose I/O methods (connect, accept, recv,
    recv_into, recvfrom, send, sendall, sendto) are coroutines running on the
    current loop's sock_* methods; the others are socket.socket's. The
    arguments are those of socket.socket (with fileno=, family, type and
    proto default to the fd's own).

        async with boucle.aiosocket() as s:
            await s.connect(("127.0.0.1", 8000))
            await s.sendall(b"ping")
            reply = await s.recv(100)

    After close() every method raises OSError(EBADF); operations waiting in
    other tasks stop and raise it too.
    """

    __slots__ = ("_sock", "_closed", "_waiters", "_aborted", "__weakref__")

    def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
        sock = _socket.socket(family, type, proto, fileno)
        try:
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._init(sock)

    def _init(self, sock):
        self._sock = sock
        self._closed = False
        self._waiters = {}      # waiting task -> its loop
        self._aborted = set()   # tasks close() cancelled

    @classmethod
    def _wrap(cls, sock):
        self = cls.__new__(cls)
        sock.setblocking(False)
        self._init(sock)
        return self

    # -- plain methods and properties, as on socket.socket -----------------

    @property
    def family(self):
        return self._sock.family

    @property
    def type(self):
        return self._sock.type

    @property
    def proto(self):
        return self._sock.proto

    def fileno(self):
        return self._sock.fileno()

    def bind(self, address):
        self._sock.bind(address)

    def listen(self, *backlog):
        self._sock.listen(*backlog)

    def getsockname(self):
        return self._sock.getsockname()

    def getpeername(self):
        return self._sock.getpeername()

    def setsockopt(self, *args):
        self._sock.setsockopt(*args)

    def getsockopt(self, *args):
        return self._sock.getsockopt(*args)

    def shutdown(self, how):
        self._sock.shutdown(how)

    def close(self):
        """Close the socket. Operations still waiting on it (in other tasks)
        stop waiting and raise OSError(EBADF). Closing twice does nothing."""
        if self._closed:
            return
        self._closed = True
        waiters = self._waiters
        if waiters:
            fd = self._sock.fileno()
            for task, loop in list(waiters.items()):
                if not loop.is_closed():
                    # before the fd is closed: its number may be reused at once
                    loop.remove_reader(fd)
                    loop.remove_writer(fd)
                if task is not None and not task.done() \
                        and not _cancel_requested(task):
                    self._aborted.add(task)
                    task.cancel()
            waiters.clear()
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        self.close()

    def __repr__(self):
        r = repr(self._sock)
        return "<boucle.aiosocket" + r[r.index(" "):] if " " in r else r

    # -- coroutines ---------------------------------------------------------

    async def _io(self, name, *args):
        if self._closed:
            raise _ebadf()
        loop = _get_running_loop()
        task = _current_task(loop)
        self._waiters[task] = loop
        try:
            return await getattr(loop, name)(self._sock, *args)
        except _CancelledError:
            self._aborted_check(task)
            raise
        finally:
            if self._waiters.get(task) is loop:
                del self._waiters[task]

    def _aborted_check(self, task):
        # The CancelledError came from close(): raise OSError(EBADF) instead,
        # unless someone else cancelled the task as well.
        if task is None or task not in self._aborted:
            return
        self._aborted.discard(task)
        if _HAS_UNCANCEL and task.uncancel() > 0:
            return
        raise _ebadf() from None

    async def connect(self, address):
        """Connect to address (a host name is resolved without blocking)."""
        try:
            return await self._io("sock_connect", address)
        except OSError as exc:
            # asyncio words it 'Connect call failed ...': use the socket
            # module's exception (same class and errno, socket's message)
            if exc.errno is not None and exc.strerror is not None \
                    and exc.strerror.startswith("Connect call failed"):
                raise OSError(exc.errno, _os.strerror(exc.errno)) from None
            raise

    async def accept(self):
        """Accept a connection: (aiosocket, address)."""
        conn, address = await self._io("sock_accept")
        return aiosocket._wrap(conn), address

    async def recv(self, bufsize):
        """Receive up to bufsize bytes; b'' at end of stream."""
        return await self._io("sock_recv", bufsize)

    async def recv_into(self, buffer):
        """Receive into the writable buffer; return the number of bytes."""
        return await self._io("sock_recv_into", buffer)

    async def recvfrom(self, bufsize):
        """Receive a datagram of at most bufsize bytes: (data, address)."""
        if hasattr(_get_running_loop(), "sock_recvfrom"):
            return await self._io("sock_recvfrom", bufsize)
        return await self._fallback(False, self._sock.recvfrom, bufsize)

    async def sendall(self, data):
        """Send all of data; return None."""
        return await self._io("sock_sendall", data)

    async def sendto(self, data, address):
        """Send a datagram to address; return the number of bytes sent."""
        if hasattr(_get_running_loop(), "sock_sendto"):
            return await self._io("sock_sendto", data, address)
        return await self._fallback(True, self._sock.sendto, data, address)

    async def send(self, data):
        """One send, after waiting for writability if the socket's buffer
        is full; return the number of bytes sent."""
        if self._closed:
            raise _ebadf()
        try:
            return self._sock.send(data)
        except (BlockingIOError, InterruptedError):
            pass
        return await self._retry(True, self._sock.send, data)

    async def _retry(self, write, fn, *args):
        # Wait for readability/writability and retry fn(*args) until it no
        # longer would block (for send, and for loops without sock_sendto /
        # sock_recvfrom: asyncio's before 3.11).
        sock = self._sock
        loop = _get_running_loop()
        task = _current_task(loop)
        fd = sock.fileno()
        add = loop.add_writer if write else loop.add_reader
        remove = loop.remove_writer if write else loop.remove_reader
        self._waiters[task] = loop
        try:
            while True:
                fut = loop.create_future()
                add(fd, _set_ready, fut)
                try:
                    await fut
                finally:
                    if not self._closed:
                        remove(fd)
                try:
                    return fn(*args)
                except (BlockingIOError, InterruptedError):
                    pass
        except _CancelledError:
            self._aborted_check(task)
            raise
        finally:
            if self._waiters.get(task) is loop:
                del self._waiters[task]

    async def _fallback(self, write, fn, *args):
        if self._closed:
            raise _ebadf()
        try:
            return fn(*args)
        except (BlockingIOError, InterruptedError):
            pass
        return await self._retry(write, fn, *args)
