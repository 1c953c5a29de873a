"""Unix-socket connections and servers, datagram endpoints and the numeric
getaddrinfo() fast path of boucle.Loop (Python side).

- ``_make_datagram_transport``: the hook asyncio's
  BaseEventLoop.create_datagram_endpoint calls; the transport is the C type
  boucle._core.DatagramTransport (boucle/_core/dgram.c).
- ``create_unix_connection`` / ``create_unix_server``: what asyncio's
  unix_events loop does on the running interpreter (its signature, checks,
  messages, stale socket removal, and on 3.13+ ``cleanup_socket``), built on
  the loop's own hooks (sock_connect, _create_connection_transport,
  _start_serving, _stop_serving) and asyncio's Server.
- ``getaddrinfo``: numeric hosts and ports are answered without the
  executor round trip (see _numeric_candidate, _numeric_getaddrinfo).
"""
import errno
import os
from operator import index as _index
import socket
import sys

from asyncio import base_events, tasks
from asyncio import unix_events as _unix_events
from asyncio.log import logger

from . import _core

__all__ = ("UnixMixin",)

DatagramTransport = _core.DatagramTransport

_PY311 = sys.version_info >= (3, 11)   # ssl_shutdown_timeout
_PY313 = sys.version_info >= (3, 13)   # create_unix_server(cleanup_socket=)

# getaddrinfo() with these flags never queries a resolver: for a host and a
# port that are numeric its answer is the one the plain call gives (checked
# over a table of inputs by tests/test_resolve.py), and it fails at once
# (EAI_NONAME) for anything else.
# Plain ints: OR-ing an int with the socket module's IntFlag members would
# give an enum with its own arithmetic (3.11+ maps -1 | AI_NUMERICHOST to a
# positive mask).
_NUMERIC_FLAGS = int(socket.AI_NUMERICHOST) | int(socket.AI_NUMERICSERV)
_socket_getaddrinfo = socket.getaddrinfo
_DIGITS = frozenset("0123456789")
_BDIGITS = frozenset(b"0123456789")


def _numeric_candidate(host, port):
    """Cheap pre-check: could getaddrinfo(host, port) be answered with the
    numeric flags? (A wrong guess only costs one failed local call.)"""
    if host is not None:
        if type(host) is str:
            if not host or (host[0] not in _DIGITS and ":" not in host):
                return False
        elif type(host) is bytes:
            if not host or (host[0] not in _BDIGITS and b":" not in host):
                return False
        else:
            return False
    if port is None or type(port) is int:
        return True
    if type(port) is str or type(port) is bytes:
        return port.isdigit()
    return False


# Answers of numeric lookups that only depend on their arguments (no
# AI_ADDRCONFIG, no interface name to map to a scope id), by argument tuple.
_numeric_cache = {}
_NUMERIC_CACHE_MAX = 256
_EXACT_INT_TYPES = frozenset(
    t for t in (int, getattr(socket, "AddressFamily", int),
                getattr(socket, "SocketKind", int), getattr(socket, "AddressInfo", int)))
_AI_ADDRCONFIG = int(getattr(socket, "AI_ADDRCONFIG", 0))


def _numeric_getaddrinfo(host, port, family, type, proto, flags):
    """socket.getaddrinfo()'s answer when host and port are numeric (a new
    list, as socket.getaddrinfo gives), None otherwise or on any error (the
    executor path then gives asyncio's answer or exception)."""
    cacheable = (family.__class__ in _EXACT_INT_TYPES and type.__class__ in _EXACT_INT_TYPES
                 and proto.__class__ in _EXACT_INT_TYPES and flags.__class__ in _EXACT_INT_TYPES
                 and not flags & _AI_ADDRCONFIG
                 and (host is None or ("%" if host.__class__ is str else b"%") not in host))
    if cacheable:
        key = (host, port, family, type, proto, flags)
        cached = _numeric_cache.get(key)
        if cached is not None:
            return list(cached)
    try:
        result = _socket_getaddrinfo(host, port, family, type, proto,
                                     _index(flags) | _NUMERIC_FLAGS)
    except Exception:
        return None   # not numeric after all, or an error
    if cacheable:
        if len(_numeric_cache) >= _NUMERIC_CACHE_MAX:
            _numeric_cache.clear()
        _numeric_cache[key] = tuple(result)
    return result


def _new_unix_stream_socket():
    # Through asyncio.unix_events' own reference to the socket module, so
    # that code (CPython's tests) patching asyncio.unix_events.socket sees
    # boucle create its sockets as asyncio would.
    return _unix_events.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0)


def _is_abstract(path):
    # Linux abstract socket names start with a NUL (str or bytes); like
    # unix_events, an empty name raises IndexError here.
    return path[0] in (0, "\x00")


def _check_unix_stream_sock(sock):
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        raise ValueError(
            f"A UNIX Domain Stream Socket was expected, got {sock!r}")


def _remove_stale_socket(path):
    # stat + unlink in C (_core/unixpath.c says why not os.stat/os.remove)
    try:
        _core._unix_unlink_if(path, None)
    except OSError as err:
        # the directory may only allow creating the socket
        logger.error("Unable to check or remove stale UNIX socket %r: %r", path, err)


class UnixMixin:
    __slots__ = ()

    # -- datagrams ----------------------------------------------------------

    def _make_datagram_transport(self, sock, protocol,
                                 address=None, waiter=None, extra=None):
        return DatagramTransport(self, sock, protocol, address, waiter, extra)

    # -- name resolution ----------------------------------------------------

    async def getaddrinfo(self, host, port, *,
                          family=0, type=0, proto=0, flags=0):
        """socket.getaddrinfo() off the loop: numeric hosts and ports are
        answered at once, anything else runs in the default executor (and
        debug mode always takes asyncio's path, with its logging)."""
        if (not self._debug and socket.getaddrinfo is _socket_getaddrinfo
                and _numeric_candidate(host, port)):
            # what run_in_executor() would refuse, refused the same way
            self._check_closed()
            self._check_default_executor()
            result = _numeric_getaddrinfo(host, port, family, type, proto, flags)
            if result is not None:
                # asyncio always suspends here (executor future): so do we
                await tasks.sleep(0)
                return result
        return await super().getaddrinfo(host, port, family=family, type=type,
                                         proto=proto, flags=flags)

    # -- Unix stream sockets ------------------------------------------------

    if _PY311:
        async def create_unix_connection(
                self, protocol_factory, path=None, *,
                ssl=None, sock=None, server_hostname=None,
                ssl_handshake_timeout=None, ssl_shutdown_timeout=None):
            """Connect to a Unix stream socket (path or connected sock)."""
            return await self._bcl_unix_connection(
                protocol_factory, path, ssl, sock, server_hostname,
                ssl_handshake_timeout, ssl_shutdown_timeout)
    else:
        async def create_unix_connection(
                self, protocol_factory, path=None, *,
                ssl=None, sock=None, server_hostname=None,
                ssl_handshake_timeout=None):
            """Connect to a Unix stream socket (path or connected sock)."""
            return await self._bcl_unix_connection(
                protocol_factory, path, ssl, sock, server_hostname,
                ssl_handshake_timeout, None)

    async def _bcl_unix_connection(self, protocol_factory, path, ssl, sock,
                                   server_hostname, ssl_handshake_timeout,
                                   ssl_shutdown_timeout):
        assert server_hostname is None or isinstance(server_hostname, str)
        if ssl:
            if server_hostname is None:
                raise ValueError(
                    "you have to pass server_hostname when using ssl")
        else:
            if server_hostname is not None:
                raise ValueError("server_hostname is only meaningful with ssl")
            if ssl_handshake_timeout is not None:
                raise ValueError(
                    "ssl_handshake_timeout is only meaningful with ssl")
            if ssl_shutdown_timeout is not None:
                raise ValueError(
                    "ssl_shutdown_timeout is only meaningful with ssl")

        if path is not None:
            if sock is not None:
                raise ValueError(
                    "path and sock can not be specified at the same time")
            path = os.fspath(path)
            sock = _new_unix_stream_socket()
            try:
                sock.setblocking(False)
                await self.sock_connect(sock, path)
            except BaseException:
                sock.close()
                raise
        else:
            if sock is None:
                raise ValueError("no path and sock were specified")
            _check_unix_stream_sock(sock)
            sock.setblocking(False)

        kwargs = {"ssl_handshake_timeout": ssl_handshake_timeout}
        if _PY311:
            kwargs["ssl_shutdown_timeout"] = ssl_shutdown_timeout
        return await self._create_connection_transport(
            sock, protocol_factory, ssl, server_hostname, **kwargs)

    if _PY313:
        async def create_unix_server(
                self, protocol_factory, path=None, *,
                sock=None, backlog=100, ssl=None,
                ssl_handshake_timeout=None, ssl_shutdown_timeout=None,
                start_serving=True, cleanup_socket=True):
            """Serve on a Unix stream socket (path or bound sock); with
            cleanup_socket, closing the server removes the socket file if it
            is still the one created."""
            return await self._bcl_unix_server(
                protocol_factory, path, sock, backlog, ssl,
                ssl_handshake_timeout, ssl_shutdown_timeout, start_serving,
                cleanup_socket)
    elif _PY311:
        async def create_unix_server(
                self, protocol_factory, path=None, *,
                sock=None, backlog=100, ssl=None,
                ssl_handshake_timeout=None, ssl_shutdown_timeout=None,
                start_serving=True):
            """Serve on a Unix stream socket (path or bound sock)."""
            return await self._bcl_unix_server(
                protocol_factory, path, sock, backlog, ssl,
                ssl_handshake_timeout, ssl_shutdown_timeout, start_serving,
                False)
    else:
        async def create_unix_server(
                self, protocol_factory, path=None, *,
                sock=None, backlog=100, ssl=None,
                ssl_handshake_timeout=None, start_serving=True):
            """Serve on a Unix stream socket (path or bound sock)."""
            return await self._bcl_unix_server(
                protocol_factory, path, sock, backlog, ssl,
                ssl_handshake_timeout, None, start_serving, False)

    async def _bcl_unix_server(self, protocol_factory, path, sock, backlog,
                               ssl, ssl_handshake_timeout, ssl_shutdown_timeout,
                               start_serving, cleanup_socket):
        if isinstance(ssl, bool):
            raise TypeError("ssl argument must be an SSLContext or None")
        if ssl_handshake_timeout is not None and not ssl:
            raise ValueError(
                "ssl_handshake_timeout is only meaningful with ssl")
        if ssl_shutdown_timeout is not None and not ssl:
            raise ValueError(
                "ssl_shutdown_timeout is only meaningful with ssl")

        if path is not None:
            if sock is not None:
                raise ValueError(
                    "path and sock can not be specified at the same time")
            path = os.fspath(path)
            sock = _new_unix_stream_socket()
            if not _is_abstract(path):
                _remove_stale_socket(path)
            try:
                sock.bind(path)
            except OSError as exc:
                sock.close()
                if exc.errno == errno.EADDRINUSE:
                    # say which address
                    raise OSError(errno.EADDRINUSE,
                                  f"Address {path!r} is already in use") from None
                raise
            except BaseException:
                sock.close()
                raise
        else:
            if sock is None:
                raise ValueError(
                    "path was not specified, and no sock specified")
            _check_unix_stream_sock(sock)

        if cleanup_socket:
            name = sock.getsockname()
            if not _is_abstract(name):
                ino = _core._unix_inode(name)
                if ino is not None:
                    self._unix_server_sockets[sock] = ino

        sock.setblocking(False)
        if _PY311:
            server = base_events.Server(self, [sock], protocol_factory, ssl,
                                        backlog, ssl_handshake_timeout,
                                        ssl_shutdown_timeout)
        else:
            server = base_events.Server(self, [sock], protocol_factory, ssl,
                                        backlog, ssl_handshake_timeout)
        if start_serving:
            server._start_serving()
            # one iteration, so that the listening socket is watched
            await tasks.sleep(0)
        return server

    @property
    def _unix_server_sockets(self):
        # {listening socket: inode of its file}, for cleanup_socket (3.13+).
        # Created on first use: the loop's __init__ is not ours.
        d = self.__dict__.get("_bcl_unix_server_sockets")
        if d is None:
            d = self.__dict__["_bcl_unix_server_sockets"] = {}
        return d

    @_unix_server_sockets.setter
    def _unix_server_sockets(self, value):
        self.__dict__["_bcl_unix_server_sockets"] = value

    def _stop_serving(self, sock):
        # unix_events (3.13+): after the server socket is closed, remove its
        # file if it is still the one we created. The mixin serving the
        # socket (TransportMixin) must come after this one in the MRO.
        registry = self.__dict__.get("_bcl_unix_server_sockets")
        path = sock.getsockname() if registry and sock in registry else None
        super()._stop_serving(sock)
        if path is None:
            return
        prev_ino = registry.pop(sock)
        try:
            _core._unix_unlink_if(path, prev_ino)
        except OSError as err:
            logger.error("Unable to clean up listening UNIX socket %r: %r",
                         path, err)
