"""asyncio's SSLProtocol with its data path in C (3.11+).

boucle runs TLS through the interpreter's own ``asyncio.sslproto.SSLProtocol``
(so the handshake, shutdown, timeouts, flow control and errors behave exactly
as asyncio's). This subclass replaces only the hot part of the two directions
while the connection is WRAPPED:

* ``buffer_updated``: the bytes go into the incoming BIO as in asyncio, then
  ``_core._ssl_read`` decrypts all of them into one bytes object for
  ``data_received`` (asyncio reads record by record through
  ``SSLObject.read``, ends on an ``SSLWantReadError``, and joins the chunks);
* ``_write_appdata``: one bytes-like buffer, nothing queued before it, goes
  through ``_core._ssl_write`` (``SSLObject.write`` + ``MemoryBIO.read`` +
  ``transport.write``);

and skips ``_process_outgoing`` / ``_control_app_writing`` /
``_control_ssl_reading`` when they would do nothing. Anything else (another
state, paused reading, a BufferedProtocol app, a custom
``SSLContext.sslobject_class``, a backlog, memoryviews, writelines) takes
asyncio's own methods.

In every state, the ciphertext lives in ``_core.TLSBuffer`` queues rather
than ``ssl.MemoryBIO`` objects when the interpreter's ``_ssl`` lets boucle
give the SSLObject BIOs of its own (``tlsbio.c``): they answer asyncio's
code as MemoryBIOs do, the transport reads straight into the incoming one
(``get_buffer``/``buffer_updated``), and ``_ssl_write`` sends the outgoing
one's bytes without a copy into a bytes object.

3.10's sslproto is a different design (``_SSLPipe``); it is used unchanged.
"""

import ssl
from asyncio import sslproto

from . import _core

_State = sslproto.SSLProtocolState
_WRAPPED = _State.WRAPPED
_DO_HANDSHAKE = _State.DO_HANDSHAKE
_FLUSHING = _State.FLUSHING
_SHUTDOWN = _State.SHUTDOWN
_SSLObject = ssl.SSLObject
_ssl_read = _core._ssl_read
_ssl_write = _core._ssl_write
_tls_bios = _core._tls_bios


class SSLProtocol(sslproto.SSLProtocol):

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # boucle's ciphertext queues instead of the two ssl.MemoryBIOs
        # (tlsbio.c: no zeroing, no copy into bytes on the way out, the
        # transport reads straight into the incoming queue)
        self._tls_queues = False
        sslobj = self._sslobj
        if type(sslobj) is _SSLObject:
            bios = _tls_bios(sslobj._sslobj)
            if bios is not None:
                self._incoming, self._outgoing = bios
                self._tls_queues = True
                # asyncio's 256 KiB receive buffer is not used any more
                self._ssl_buffer = bytearray()
                self._ssl_buffer_view = memoryview(self._ssl_buffer)

    def get_buffer(self, n):
        if self._tls_queues:
            return self._incoming.get_buffer(n)
        return super().get_buffer(n)

    def buffer_updated(self, nbytes):
        if self._tls_queues:
            self._incoming.commit(nbytes)
        else:
            self._incoming.write(self._ssl_buffer_view[:nbytes])
        state = self._state
        if state is _WRAPPED:
            sslobj = self._sslobj
            if (self._app_reading_paused or self._app_protocol_is_buffer
                    or type(sslobj) is not _SSLObject):
                self._do_read()
                return
            try:
                data, eof = _ssl_read(sslobj._sslobj, self._incoming)
                if data is not None:
                    self._app_protocol.data_received(data)
                if eof:
                    self._call_eof_received()
                    self._start_shutdown()
                if self._write_backlog:
                    self._do_write()
                elif (eof or self._outgoing.pending or self._app_writing_paused
                        or self._write_buffer_size >= self._outgoing_high_water):
                    self._process_outgoing()
                if (self._ssl_reading_paused
                        or self._incoming.pending >= self._incoming_high_water):
                    self._control_ssl_reading()
            except Exception as ex:
                self._fatal_error(ex, 'Fatal error on SSL protocol')
        elif state is _DO_HANDSHAKE:
            self._do_handshake()
        elif state is _FLUSHING:
            self._do_flush()
        elif state is _SHUTDOWN:
            self._do_shutdown()

    def _write_appdata(self, list_of_data):
        if (self._state is _WRAPPED and type(list_of_data) is tuple
                and len(list_of_data) == 1 and not self._write_backlog
                and not self._ssl_writing_paused):
            data = list_of_data[0]
            sslobj = self._sslobj
            if ((type(data) is bytes or type(data) is bytearray)
                    and type(sslobj) is _SSLObject):
                n = None
                try:
                    n = _ssl_write(sslobj._sslobj, self._outgoing, data, self._transport)
                    if n < len(data):
                        # as asyncio's _do_write: the rest waits in the backlog
                        if n <= 0:
                            self._write_backlog.append(data)
                            self._write_buffer_size += len(data)
                        else:
                            self._write_backlog.append(data[n:])
                            self._write_buffer_size += len(data) - n
                            self._do_write()   # asyncio retries a short write
                            return
                    if (self._app_writing_paused or self._outgoing.pending
                            or self._write_buffer_size >= self._outgoing_high_water):
                        self._control_app_writing()
                except Exception as ex:
                    if n is None:
                        # sslobj.write failed: asyncio leaves the data queued
                        self._write_backlog.append(data)
                        self._write_buffer_size += len(data)
                    self._fatal_error(ex, 'Fatal error on SSL protocol')
                return
        super()._write_appdata(list_of_data)
