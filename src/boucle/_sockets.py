"""Socket operations of boucle.Loop: sock_recv, sock_recv_into,
sock_recvfrom, sock_recvfrom_into, sock_sendall, sock_sendto, sock_connect,
sock_accept, and the os.sendfile() path of sock_sendfile.

Each public method is a coroutine function, as asyncio's are. Its body calls
the C function of the same name (boucle/_core/sock.c), which tries the
operation at once and either returns the result (or raises), or returns a
pending ``SockOp`` registered as the socket's reader or writer; the coroutine
then awaits it. If the wait is interrupted (task cancelled, coroutine closed,
thrown into), the op itself removes the reader/writer as asyncio's
done-callbacks do.
"""
import errno
import io
import os
import socket
import sys

from asyncio import base_events, exceptions, unix_events

from . import _core

__all__ = ("SocketMixin",)

_SockOp = _core.SockOp
_sock_check = _core.sock_check
_sock_recv = _core.sock_recv
_sock_recv_into = _core.sock_recv_into
_sock_recvfrom = _core.sock_recvfrom
_sock_recvfrom_into = _core.sock_recvfrom_into
_sock_sendall = _core.sock_sendall
_sock_sendto = _core.sock_sendto
_sock_connect = _core.sock_connect
_sock_accept = _core.sock_accept

_ssl = getattr(base_events, "ssl", None)
# True when the C side may read socket.socket objects directly (fast path).
FAST_PATH = _core._sock_setup(socket.socket,
                              _ssl.SSLSocket if _ssl is not None else None)

_INET_FAMILIES = (socket.AF_INET, socket.AF_INET6) if base_events._HAS_IPv6 \
    else (socket.AF_INET,)


def sendfile_source(os_mod, file, count):
    """(fd, blocksize) of file for os.sendfile() through os_mod: blocksize is
    count, or the file's size when count is 0. SendfileNotAvailableError
    when there is no os.sendfile() or file is not a regular file."""
    if not hasattr(os_mod, "sendfile"):
        raise exceptions.SendfileNotAvailableError(
            "os.sendfile() is not available")
    try:
        fileno = file.fileno()
    except (AttributeError, io.UnsupportedOperation):
        raise exceptions.SendfileNotAvailableError("not a regular file")
    try:
        fsize = os_mod.fstat(fileno).st_size
    except OSError:
        raise exceptions.SendfileNotAvailableError("not a regular file")
    return fileno, count if count else fsize


def _set_ready(fut):
    if not fut.done():
        fut.set_result(None)


class SocketMixin:
    __slots__ = ()

    async def sock_recv(self, sock, n):
        """Receive up to n bytes from sock (non-blocking); b'' at EOF."""
        r = _sock_recv(self, sock, n)
        if r.__class__ is not _SockOp:
            return r
        return await r

    async def sock_recv_into(self, sock, buf):
        """Receive data from sock into the writable buffer buf; return the
        number of bytes received."""
        r = _sock_recv_into(self, sock, buf)
        if r.__class__ is not _SockOp:
            return r
        return await r

    async def sock_recvfrom(self, sock, bufsize):
        """Receive a datagram of at most bufsize bytes: (data, address)."""
        r = _sock_recvfrom(self, sock, bufsize)
        if r.__class__ is not _SockOp:
            return r
        return await r

    async def sock_recvfrom_into(self, sock, buf, nbytes=0):
        """Receive a datagram into buf (at most nbytes, or len(buf) when
        nbytes is 0): (number of bytes, address)."""
        r = _sock_recvfrom_into(self, sock, buf, nbytes)
        if r.__class__ is not _SockOp:
            return r
        return await r

    async def sock_sendall(self, sock, data):
        """Send all of data to the connected socket; return None.

        On error the exception is raised and there is no telling how much
        of the data the peer received."""
        r = _sock_sendall(self, sock, data)
        if r.__class__ is not _SockOp:
            return r
        return await r

    async def sock_sendto(self, sock, data, address):
        """Send a datagram to address; return the number of bytes sent."""
        r = _sock_sendto(self, sock, data, address)
        if r.__class__ is not _SockOp:
            return r
        return await r

    async def sock_connect(self, sock, address):
        """Connect sock to address (resolved with getaddrinfo() when it is
        not a numeric IPv4/IPv6 address)."""
        _sock_check(self, sock)
        if sock.family in _INET_FAMILIES:
            resolved = await self._ensure_resolved(
                address, family=sock.family, type=sock.type, proto=sock.proto,
                loop=self)
            address = resolved[0][4]
        r = _sock_connect(self, sock, address)
        if r.__class__ is not _SockOp:
            return r
        return await r

    async def sock_accept(self, sock):
        """Accept a connection on the listening socket: (conn, address),
        conn in non-blocking mode."""
        r = _sock_accept(self, sock)
        if r.__class__ is not _SockOp:
            return r
        return await r

    # -- sendfile ---------------------------------------------------------
    # BaseEventLoop.sock_sendfile checks the arguments, calls this and, when
    # it raises SendfileNotAvailableError, falls back to read + sock_sendall
    # (unless fallback=False).

    async def _sock_sendfile_native(self, sock, file, offset, count):
        # os as asyncio's unix_events sees it: code (and tests) that patch
        # asyncio.unix_events.os see the same behaviour on boucle
        os_mod = unix_events.os
        fileno, blocksize = sendfile_source(os_mod, file, count)
        if not blocksize:
            return 0  # empty file
        # os.sendfile() takes a Py_ssize_t count
        blocksize = min(blocksize, sys.maxsize // 2 + 1)

        fd = sock.fileno()
        total_sent = 0
        waited = False
        try:
            while True:
                if count:
                    blocksize = count - total_sent
                    if blocksize <= 0:
                        return total_sent
                try:
                    sent = os_mod.sendfile(fd, fileno, offset + total_sent, blocksize)
                except (BlockingIOError, InterruptedError):
                    sent = None
                except OSError as exc:
                    if total_sent == 0:
                        # typically a file sendfile(2) cannot read (not
                        # mmap-able): the caller falls back to send()
                        raise exceptions.SendfileNotAvailableError(
                            "os.sendfile call failed") from None
                    if (waited and exc.errno == errno.ENOTCONN
                            and type(exc) is not ConnectionError):
                        # the peer went away mid-transfer: same error on
                        # every POSIX system
                        raise ConnectionError(
                            "socket is not connected", errno.ENOTCONN) from exc
                    raise
                if sent == 0:
                    return total_sent  # end of file
                if sent is not None:
                    total_sent += sent
                # asyncio's pace: one sendfile() per writable event
                await self._bcl_wait_writable(fd)
                waited = True
        finally:
            if total_sent > 0:
                os_mod.lseek(fileno, offset + total_sent, os.SEEK_SET)

    async def _bcl_wait_writable(self, fd):
        fut = self.create_future()
        handle = self._add_writer(fd, _set_ready, fut)
        try:
            await fut
        finally:
            if handle is None or not handle.cancelled():
                self._remove_writer(fd)
