"""Stream transports, servers and pipes of boucle.Loop (Python side).

The transports themselves are C types (boucle/_core/stream.c and pipe.c);
this mixin supplies the hooks asyncio's BaseEventLoop calls to make them
(create_connection, create_server, connect_accepted_socket, start_tls,
connect_read_pipe, connect_write_pipe, sendfile, subprocess pipes), plus
the accept loop of servers. Each follows asyncio's selector_events /
unix_events of the running interpreter.
"""
import errno
import os
import sys

from asyncio import constants, exceptions, sslproto, trsock
from asyncio.log import logger

from . import _core
from ._sockets import sendfile_source

try:
    import ssl as _ssl
except ImportError:   # an interpreter built without ssl
    _ssl = None

__all__ = ("TransportMixin",)

StreamTransport = _core.StreamTransport
ReadPipeTransport = _core.ReadPipeTransport
WritePipeTransport = _core.WritePipeTransport

# 3.11+ has ssl_shutdown_timeout (sslproto, servers, accept).
_HAS_SSL_SHUTDOWN_TIMEOUT = sys.version_info >= (3, 11)
_SSL_SHUTDOWN_TIMEOUT = getattr(constants, "SSL_SHUTDOWN_TIMEOUT", None)
_ACCEPT_RESOURCE_ERRNOS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)

# 3.11+: asyncio's SSLProtocol with its data path in C (_sslproto.py); 3.10's
# sslproto is another design and is used as it is.
_BASE_SSL_PROTOCOL = sslproto.SSLProtocol
if _HAS_SSL_SHUTDOWN_TIMEOUT and hasattr(_core, "_ssl_read"):
    from ._sslproto import SSLProtocol as _FastSSLProtocol
else:
    _FastSSLProtocol = _BASE_SSL_PROTOCOL


class TransportMixin:
    __slots__ = ()

    # -- stream sockets ---------------------------------------------------

    def _make_socket_transport(self, sock, protocol, waiter=None, *,
                               extra=None, server=None):
        return StreamTransport(self, sock, protocol, waiter, extra, server)

    def _make_ssl_transport(
            self, rawsock, protocol, sslcontext, waiter=None,
            *, server_side=False, server_hostname=None,
            extra=None, server=None,
            ssl_handshake_timeout=constants.SSL_HANDSHAKE_TIMEOUT,
            ssl_shutdown_timeout=_SSL_SHUTDOWN_TIMEOUT):
        kwargs = {"ssl_handshake_timeout": ssl_handshake_timeout}
        if _HAS_SSL_SHUTDOWN_TIMEOUT:
            kwargs["ssl_shutdown_timeout"] = ssl_shutdown_timeout
        cls = sslproto.SSLProtocol
        if cls is _BASE_SSL_PROTOCOL:   # not replaced (mock.patch) by a test
            cls = _FastSSLProtocol
        ssl_protocol = cls(
            self, protocol, sslcontext, waiter,
            server_side, server_hostname, **kwargs)
        StreamTransport(self, rawsock, ssl_protocol, None, extra, server)
        return ssl_protocol._app_transport

    async def start_tls(self, transport, protocol, sslcontext, *,
                        server_side=False, server_hostname=None,
                        ssl_handshake_timeout=None, ssl_shutdown_timeout=None):
        """Upgrade transport to TLS; return the transport protocol should
        use from now on. asyncio's method, with boucle's SSLProtocol (its
        data path in C) on 3.11+."""
        kwargs = {"server_side": server_side, "server_hostname": server_hostname,
                  "ssl_handshake_timeout": ssl_handshake_timeout}
        if _HAS_SSL_SHUTDOWN_TIMEOUT:
            kwargs["ssl_shutdown_timeout"] = ssl_shutdown_timeout
        if (_FastSSLProtocol is _BASE_SSL_PROTOCOL
                or sslproto.SSLProtocol is not _BASE_SSL_PROTOCOL   # mock.patch
                or _ssl is None or not isinstance(sslcontext, _ssl.SSLContext)
                or not getattr(transport, "_start_tls_compatible", False)):
            # asyncio's own: the stock SSLProtocol, and its argument errors
            return await super().start_tls(transport, protocol, sslcontext, **kwargs)
        waiter = self.create_future()
        tls = _FastSSLProtocol(
            self, protocol, sslcontext, waiter, server_side, server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
            call_connection_made=False)
        # No data may reach tls before its connection_made: reading stays
        # paused until both callbacks below have run, in this order.
        transport.pause_reading()
        transport.set_protocol(tls)
        made = self.call_soon(tls.connection_made, transport)
        resumed = self.call_soon(transport.resume_reading)
        try:
            await waiter
        except BaseException:
            transport.close()
            made.cancel()
            resumed.cancel()
            raise
        return tls._app_transport

    # -- servers ------------------------------------------------------------

    def _start_serving(self, protocol_factory, sock,
                       sslcontext=None, server=None, backlog=100,
                       ssl_handshake_timeout=constants.SSL_HANDSHAKE_TIMEOUT,
                       ssl_shutdown_timeout=_SSL_SHUTDOWN_TIMEOUT):
        self._add_reader(sock.fileno(), self._accept_connection,
                         protocol_factory, sock, sslcontext, server, backlog,
                         ssl_handshake_timeout, ssl_shutdown_timeout)

    def _accept_connection(
            self, protocol_factory, sock,
            sslcontext=None, server=None, backlog=100,
            ssl_handshake_timeout=constants.SSL_HANDSHAKE_TIMEOUT,
            ssl_shutdown_timeout=_SSL_SHUTDOWN_TIMEOUT):
        # Called once per readiness event of the listening socket: accept
        # up to backlog connections now (asyncio's bpo-27906 behaviour).
        for _ in range(backlog):
            try:
                conn, addr = sock.accept()
                if self._debug:
                    logger.debug("%r got a new connection from %r: %r",
                                 server, addr, conn)
                conn.setblocking(False)
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return None
            except OSError as exc:
                if exc.errno not in _ACCEPT_RESOURCE_ERRNOS:
                    raise  # to the exception handler, as asyncio
                # Out of fds/memory: the fd stays readable, so stop
                # watching it and try again in a while.
                self.call_exception_handler({
                    'message': 'socket.accept() out of system resource',
                    'exception': exc,
                    'socket': trsock.TransportSocket(sock),
                })
                self._remove_reader(sock.fileno())
                self.call_later(constants.ACCEPT_RETRY_DELAY,
                                self._boucle_restart_serving,
                                protocol_factory, sock, sslcontext, server,
                                backlog, ssl_handshake_timeout,
                                ssl_shutdown_timeout)
                return None
            else:
                extra = {'peername': addr}
                self.create_task(self._accept_connection2(
                    protocol_factory, conn, extra, sslcontext, server,
                    ssl_handshake_timeout, ssl_shutdown_timeout))
        return None

    def _boucle_restart_serving(self, protocol_factory, sock, *args):
        # The retry timer of an out-of-resources accept: the server may have
        # been closed meanwhile (asyncio would then fail on fd -1).
        if sock.fileno() == -1:
            return
        self._start_serving(protocol_factory, sock, *args)

    async def _accept_connection2(
            self, protocol_factory, conn, extra,
            sslcontext=None, server=None,
            ssl_handshake_timeout=constants.SSL_HANDSHAKE_TIMEOUT,
            ssl_shutdown_timeout=_SSL_SHUTDOWN_TIMEOUT):
        protocol = None
        transport = None
        try:
            protocol = protocol_factory()
            waiter = self.create_future()
            if sslcontext:
                transport = self._make_ssl_transport(
                    conn, protocol, sslcontext, waiter=waiter,
                    server_side=True, extra=extra, server=server,
                    ssl_handshake_timeout=ssl_handshake_timeout,
                    ssl_shutdown_timeout=ssl_shutdown_timeout)
            else:
                transport = self._make_socket_transport(
                    conn, protocol, waiter=waiter, extra=extra,
                    server=server)
            try:
                await waiter
            except BaseException:
                transport.close()
                waiter = None   # gh-109534: don't keep the protocol alive
                raise
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            if self._debug:
                context = {
                    'message':
                        'Error on transport creation for incoming connection',
                    'exception': exc,
                }
                if protocol is not None:
                    context['protocol'] = protocol
                if transport is not None:
                    context['transport'] = transport
                self.call_exception_handler(context)

    def _stop_serving(self, sock):
        self._remove_reader(sock.fileno())
        sock.close()

    # -- sendfile -----------------------------------------------------------

    async def _sendfile_native(self, transp, file, offset, count):
        if not isinstance(transp, StreamTransport):
            raise exceptions.SendfileNotAvailableError(
                "sendfile syscall is not supported")
        resume_reading = transp.is_reading()
        transp.pause_reading()
        await transp._make_empty_waiter()
        try:
            return await self._boucle_sendfile(transp, file, offset, count)
        finally:
            transp._reset_empty_waiter()
            if resume_reading:
                transp.resume_reading()

    async def _boucle_sendfile(self, transp, file, offset, count):
        # What loop.sock_sendfile(transp._sock, ..., fallback=False) does in
        # asyncio, waiting for writability through the transport (which owns
        # the fd) instead of add_writer.
        sock = transp._sock
        if sock is None:
            raise ConnectionError("Connection is closed by peer")
        if self._debug and sock.gettimeout() != 0:
            raise ValueError("the socket must be non-blocking")
        self._check_sendfile_params(sock, file, offset, count)
        fileno, blocksize = sendfile_source(os, file, count)
        if not blocksize:
            return 0  # empty file
        fd = transp._sock_fd
        total_sent = 0
        first = True
        try:
            while True:
                if count:
                    blocksize = count - total_sent
                    if blocksize <= 0:
                        return total_sent
                # 32-bit platforms: at most 1 GiB per call
                blocksize = min(blocksize, sys.maxsize // 2 + 1)
                try:
                    sent = os.sendfile(fd, fileno, offset, blocksize)
                except (BlockingIOError, InterruptedError):
                    await transp._wait_writable()
                    first = False
                    continue
                except OSError as exc:
                    if (not first and exc.errno == errno.ENOTCONN
                            and type(exc) is not ConnectionError):
                        new_exc = ConnectionError(
                            "socket is not connected", errno.ENOTCONN)
                        new_exc.__cause__ = exc
                        exc = new_exc
                    if total_sent == 0:
                        raise exceptions.SendfileNotAvailableError(
                            "os.sendfile call failed") from None
                    raise exc
                if sent == 0:
                    return total_sent  # EOF
                first = False
                offset += sent
                total_sent += sent
        finally:
            if total_sent > 0:
                os.lseek(fileno, offset, os.SEEK_SET)

    # -- pipes --------------------------------------------------------------

    def _make_read_pipe_transport(self, pipe, protocol, waiter=None,
                                  extra=None):
        return ReadPipeTransport(self, pipe, protocol, waiter, extra)

    def _make_write_pipe_transport(self, pipe, protocol, waiter=None,
                                   extra=None):
        return WritePipeTransport(self, pipe, protocol, waiter, extra)
