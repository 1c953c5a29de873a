/* stream.h - the C transports of byte streams: connected stream sockets
 * (TCP and Unix, stream.c) and pipes (pipe.c).
 *
 * The three Python types (StreamTransport, ReadPipeTransport,
 * WritePipeTransport) share one object layout and one machinery: the write
 * buffer, write flow control, the fd's interest in the loop, the closing
 * sequence and error reporting. stream.c owns that machinery and the socket
 * transport; pipe.c adds what differs for pipes (read()/write() instead of
 * recv()/send(), unix_events' closing rules).
 *
 * The types derive from asyncio's own transport classes (so isinstance()
 * checks of libraries and of asyncio itself, e.g. sendfile's fallback, hold).
 * Those classes have __slots__; the first BCL_STREAM_BASE_SLOTS pointers of
 * the object are their slot area, never used: boucle's getters of the same
 * names shadow the slot descriptors. */
#ifndef BCL_STREAM_H
#define BCL_STREAM_H

#include "loop.h"

#define BCL_STREAM_MAX_SIZE (256 * 1024)   /* asyncio's max_size: bytes per read */
#define BCL_STREAM_BASE_SLOTS 5            /* BaseTransport: 1, _FlowControlMixin: 4 */

enum {
    BCL_STREAM_SOCKET = 0,      /* connected stream socket: StreamTransport */
    BCL_STREAM_READ_PIPE = 1,   /* ReadPipeTransport (unix_events' _UnixReadPipeTransport) */
    BCL_STREAM_WRITE_PIPE = 2,  /* WritePipeTransport (unix_events' _UnixWritePipeTransport) */
};

/* A piece of unsent data.
 * Invariants: exactly one of obj/base is set; obj is an exact bytes object
 * (immutable, so it is referenced instead of copied) and data points inside
 * it; an owned block (base, PyMem) has room free bytes after data + len. */
typedef struct {
    PyObject *obj;       /* bytes holding the data (strong), or NULL */
    char *base;          /* owned block, or NULL */
    char *data;          /* first unsent byte */
    Py_ssize_t len;      /* unsent bytes, > 0 */
    Py_ssize_t room;     /* owned block: free bytes after the data; 0 for obj */
} bcl_chunk;

/* The write buffer: a ring of chunks, oldest first.
 * Invariants: cap is 0 or a power of two; 0 <= n <= cap; size is the sum of
 * the chunks' len (what get_write_buffer_size() returns). */
typedef struct {
    bcl_chunk *ring;     /* cap slots; NULL until first needed */
    Py_ssize_t cap;      /* slots allocated */
    Py_ssize_t head;     /* index of the oldest chunk */
    Py_ssize_t n;        /* chunks in use */
    Py_ssize_t size;     /* unsent bytes */
} bcl_wbuf;

/* A transport.
 * Invariants:
 *   - loop != NULL from a successful __init__ until connection_lost has run
 *     (then loop, file and protocol are NULL, like asyncio's None);
 *   - attached: the loop's fd record for fd is owned by this object; it is
 *     detached before the file is closed, so a reused fd number never reaches
 *     a dead transport;
 *   - interest is what the loop watches for fd on our behalf (BCL_EV_*),
 *     equal to (want_read ? READ : 0) | (want_write || writable_waiter ?
 *     WRITE : 0) after every successful sync;
 *   - conn_lost > 0 (sockets) or lost_scheduled (all kinds) once the call to
 *     connection_lost is scheduled or done: never twice;
 *   - cb_data/cb_updated are bound methods of protocol (cached by
 *     set_protocol) or NULL (looked up again when needed). */
typedef struct bcl_stream {
    PyObject_HEAD
    PyObject *base_slots[BCL_STREAM_BASE_SLOTS]; /* asyncio's __slots__ area (unused, NULL) */
    bcl_loop *loop;           /* the loop (strong) or NULL once connection_lost ran */
    PyObject *file;           /* socket / pipe object (strong), NULL once closed */
    PyObject *protocol;       /* current protocol (strong) or NULL */
    PyObject *extra;          /* the extra-info dict (strong) */
    PyObject *server;         /* asyncio Server of an accepted connection, or NULL */
    PyObject *context;        /* contextvars.Context the I/O callbacks run in */
    PyObject *cb_data;        /* protocol.data_received, or get_buffer in buffered mode */
    PyObject *cb_updated;     /* protocol.buffer_updated (buffered mode) */
    PyObject *empty_waiter;   /* future of _make_empty_waiter() (sendfile), or NULL */
    PyObject *writable_waiter;/* future of _wait_writable() (sendfile), or NULL */
    PyObject *dict;           /* instance __dict__ */
    PyObject *weakreflist;    /* weak references */
    bcl_wbuf wbuf;            /* unsent data */
    Py_ssize_t high_water;    /* pause_writing() above this many buffered bytes */
    Py_ssize_t low_water;     /* resume_writing() at or below this */
    Py_ssize_t max_size;      /* bytes per read */
    int fd;                   /* the file's descriptor (kept after close, for repr) */
    int conn_lost;            /* asyncio's _conn_lost: lost scheduled + writes dropped since */
    uint32_t interest;        /* BCL_EV_* registered with the loop */
    unsigned char kind;       /* BCL_STREAM_* */
    char initialized;         /* __init__ succeeded */
    char attached;            /* we own the loop's record of fd */
    char is_socket;           /* fd is a socket: send()/recv() with MSG_NOSIGNAL */
    char py_io;               /* the socket is a socket.socket subclass: I/O goes
                                 through its Python methods, as asyncio's does */
    char want_read;           /* asyncio would have a reader registered */
    uint64_t read_off_iter;   /* 1 + the loop iteration in which want_read last went off */
    char want_write;          /* asyncio would have a writer registered */
    char closing;             /* close() (or a fatal error, EOF, ...) happened */
    char eof;                 /* write_eof() was called (sockets) */
    char paused;              /* pause_reading() is in effect */
    char protocol_connected;  /* set_protocol() was called (sockets) */
    char protocol_paused;     /* pause_writing() was called, resume_writing() not yet */
    char buffered;            /* protocol is an asyncio.BufferedProtocol */
    char lost_scheduled;      /* connection_lost is scheduled or done */
} bcl_stream;

/* Whether a read event queued in this iteration still has asyncio's reader
 * handle behind it: reading is wanted, and was not turned off since the
 * poll (remove_reader() cancels the queued handle; a resume_reading() in
 * the same iteration registers a new one that only the next poll queues).
 * Callbacks of an iteration all run after its poll, so "turned off in this
 * iteration" is "turned off after the event was polled". */
static inline int
bcl_stream_read_live(const bcl_stream *self)
{
    return self->want_read && self->read_off_iter != self->loop->stats.iterations + 1;
}

/* Objects looked up once at init. Invariant: all set (strong) by
 * bcl_stream_init_type before any transport exists. */
typedef struct {
    PyObject *logger;               /* asyncio.log.logger */
    PyObject *transport_socket;     /* asyncio.trsock.TransportSocket */
    PyObject *set_result_unless;    /* asyncio.futures._set_result_unless_cancelled */
    PyObject *buffered_protocol;    /* asyncio.protocols.BufferedProtocol */
    PyObject *minus_one;            /* -1 (get_buffer's argument) */
    PyObject *socket_type;          /* socket.socket */
    int server_attach_arg;          /* Server._attach/_detach take the transport (3.13+) */
} bcl_stream_globals;

extern bcl_stream_globals bcl_stream_g;

int bcl_stream_init_type(PyObject *module);          /* also registers pipe.c's types */
int bcl_pipe_init_types(PyObject *module);           /* pipe.c */

/* ---- shared by stream.c and pipe.c (int functions raise and return -1) ---- */

/* Type slots shared by the three types (kind decides the differences). */
PyObject *bcl_stream_tp_new(PyTypeObject *type, PyObject *args, PyObject *kwds);
void bcl_stream_tp_dealloc(PyObject *self);
int bcl_stream_tp_traverse(PyObject *self, visitproc visit, void *arg);
int bcl_stream_tp_clear(PyObject *self);
void bcl_stream_tp_finalize(PyObject *self);

/* TypeError unless loop is a boucle loop; RuntimeError if self is initialized. */
int bcl_stream_check_loop(bcl_stream *self, PyObject *loop);
/* Common __init__ part: check the loop, attach fd (file's descriptor) to it
 * with io as the readiness work, keep the references. On error nothing is kept (the file stays open
 * and is not ours). */
int bcl_stream_setup(bcl_stream *self, PyObject *loop, PyObject *file, int fd,
                     PyObject *protocol, PyObject *extra, int kind, bcl_work_fn io);
/* file.fileno() as a valid fd, or -1 with ValueError/whatever it raised. */
int bcl_stream_fileno(PyObject *file);
/* Undo bcl_stream_setup after a later failure of __init__. */
void bcl_stream_unsetup(bcl_stream *self);
/* Schedule protocol.connection_made(self), then `start` (C work: begin
 * reading), then the waiter's result, in that order, as asyncio does. */
int bcl_stream_schedule_start(bcl_stream *self, bcl_work_fn start, PyObject *waiter);

/* Want or stop wanting read / write readiness; syncs the loop's interest.
 * Stopping never fails (errors of an fd closed behind our back are ignored). */
int bcl_stream_set_reading(bcl_stream *self, int on);
int bcl_stream_set_writing(bcl_stream *self, int on);

/* loop.call_soon(callback[, arg1[, arg2]]) (NULL: fewer arguments). */
int bcl_stream_call_soon(bcl_stream *self, PyObject *callback, PyObject *arg1, PyObject *arg2);
/* loop.call_soon(self._call_connection_lost, exc or None), marking it scheduled. */
int bcl_stream_schedule_lost(bcl_stream *self, PyObject *exc);

/* loop.call_exception_handler({message, exception, transport, protocol}). */
int bcl_stream_report(bcl_stream *self, PyObject *exc, const char *message);
/* logger.<level>(fmt, self) when the loop is in debug mode. */
int bcl_stream_log(bcl_stream *self, const char *level, const char *fmt);
/* logger.debug("%r: %s", self, message, exc_info=exc) when in debug mode. */
int bcl_stream_log_exc(bcl_stream *self, const char *message, PyObject *exc);
/* logger.warning(msg) */
int bcl_stream_warn(const char *msg);

/* New OSError instance (subclass chosen by errno) for -errno; NULL on failure. */
PyObject *bcl_stream_oserror(int neg_errno);
/* Take the raised exception: returns 1 when it must propagate (SystemExit,
 * KeyboardInterrupt: left raised), else 0 with *exc a new reference. */
int bcl_stream_catch(PyObject **exc);

/* ---- write buffer ---- */
/* Append len bytes at p. owner (may be NULL) is the object p lives in: an
 * exact bytes object is referenced instead of copied when large. */
int bcl_stream_buffer(bcl_stream *self, PyObject *owner, const char *p, Py_ssize_t len);
void bcl_stream_buffer_clear(bcl_stream *self);
/* Whether op is exactly a StreamTransport (the socket transport type). */
int bcl_stream_is_socket_transport(PyObject *op);
/* transport.write() of len bytes at p (copied if kept) on a StreamTransport
 * (bcl_stream_is_socket_transport): 0, or -1 with an exception. */
int bcl_stream_write_mem(PyObject *op, const char *p, Py_ssize_t len);
/* One write system call, of len bytes at p, or (p == NULL) of the buffer's
 * head (what is written is consumed). Returns the bytes written or -errno
 * (-EAGAIN when the fd would block). */
Py_ssize_t bcl_stream_send(bcl_stream *self, const char *p, Py_ssize_t len);
/* One read system call into a new bytes object of at most max_size bytes.
 * Returns it (empty at EOF) or NULL with *err = -errno (-EAGAIN: nothing
 * to read) or *err = 0 and an exception (memory). */
PyObject *bcl_stream_recv(bcl_stream *self, int *err);

/* Write flow control, as asyncio's _FlowControlMixin. */
int bcl_stream_maybe_pause(bcl_stream *self);
int bcl_stream_maybe_resume(bcl_stream *self);

/* The common tail of _call_connection_lost: protocol.connection_lost(exc)
 * when call_protocol, then (whatever it did) detach the fd, close the file,
 * drop the references. -1 with connection_lost's (or close()'s) exception. */
int bcl_stream_finish(bcl_stream *self, PyObject *exc, int call_protocol);

/* Enter/leave the transport's context around protocol callbacks run from
 * an I/O event; leave() keeps a raised exception raised. */
int bcl_stream_enter(bcl_stream *self);
void bcl_stream_leave(bcl_stream *self, int entered);

/* Build a heap type from spec deriving from asyncio class `base` (checked for
 * a compatible layout) and add it to module. Returns a new reference. */
PyObject *bcl_stream_make_type(PyObject *module, PyType_Spec *spec, PyObject *base);
/* asyncio.<module>.<name> (new reference). */
PyObject *bcl_stream_import(const char *module, const char *name);

/* ---- methods shared by the types' tables ---- */
PyObject *bcl_stream_get_protocol(PyObject *self, PyObject *unused);
PyObject *bcl_stream_is_closing(PyObject *self, PyObject *unused);
PyObject *bcl_stream_is_reading(PyObject *self, PyObject *unused);
PyObject *bcl_stream_pause_reading(PyObject *self, PyObject *unused);
PyObject *bcl_stream_resume_reading(PyObject *self, PyObject *unused);
PyObject *bcl_stream_get_write_buffer_size(PyObject *self, PyObject *unused);
PyObject *bcl_stream_get_write_buffer_limits(PyObject *self, PyObject *unused);
PyObject *bcl_stream_set_write_buffer_limits(PyObject *self, PyObject *args, PyObject *kwds);
PyObject *bcl_stream_maybe_pause_meth(PyObject *self, PyObject *unused);
PyObject *bcl_stream_maybe_resume_meth(PyObject *self, PyObject *unused);
PyObject *bcl_stream_can_write_eof(PyObject *self, PyObject *unused);
PyObject *bcl_stream_writelines_join(PyObject *self, PyObject *list);
PyObject *bcl_stream_get(PyObject *self, void *which);
int bcl_stream_set(PyObject *self, PyObject *v, void *which);

/* No get_extra_info here: asyncio's transports inherit it from
 * asyncio.BaseTransport (self._extra.get), and code that patches that
 * method (mock.patch("asyncio.BaseTransport.get_extra_info")) must reach
 * these transports too; the _extra getter serves it. */
#define BCL_STREAM_METHODS_COMMON \
    {"get_protocol", bcl_stream_get_protocol, METH_NOARGS, NULL}, \
    {"is_closing", bcl_stream_is_closing, METH_NOARGS, "True once closing or closed."},

#define BCL_STREAM_METHODS_READING \
    {"is_reading", bcl_stream_is_reading, METH_NOARGS, NULL}, \
    {"pause_reading", bcl_stream_pause_reading, METH_NOARGS, "Stop calling data_received() (idempotent)."}, \
    {"resume_reading", bcl_stream_resume_reading, METH_NOARGS, "Undo pause_reading() (idempotent)."},

#define BCL_STREAM_METHODS_FLOW \
    {"get_write_buffer_size", bcl_stream_get_write_buffer_size, METH_NOARGS, NULL}, \
    {"get_write_buffer_limits", bcl_stream_get_write_buffer_limits, METH_NOARGS, "(low, high)"}, \
    {"set_write_buffer_limits", (PyCFunction)(void (*)(void))bcl_stream_set_write_buffer_limits, \
     METH_VARARGS | METH_KEYWORDS, "set_write_buffer_limits(high=None, low=None)"}, \
    {"_maybe_pause_protocol", bcl_stream_maybe_pause_meth, METH_NOARGS, NULL}, \
    {"_maybe_resume_protocol", bcl_stream_maybe_resume_meth, METH_NOARGS, NULL}, \
    {"can_write_eof", bcl_stream_can_write_eof, METH_NOARGS, NULL},

/* Getters of asyncio's private attributes; closure = a BCL_ATTR_* value. */
enum {
    BCL_ATTR_EXTRA, BCL_ATTR_LOOP, BCL_ATTR_FILE, BCL_ATTR_FD, BCL_ATTR_PROTOCOL,
    BCL_ATTR_CLOSING, BCL_ATTR_PAUSED, BCL_ATTR_CONN_LOST, BCL_ATTR_PROTOCOL_PAUSED,
    BCL_ATTR_HIGH, BCL_ATTR_LOW, BCL_ATTR_MAX_SIZE, BCL_ATTR_EOF, BCL_ATTR_SERVER,
    BCL_ATTR_EMPTY_WAITER, BCL_ATTR_PROTOCOL_CONNECTED,
};
#define BCL_GET(name, which) {name, bcl_stream_get, NULL, NULL, (void *)(Py_ssize_t)(which)}
#define BCL_GETSET(name, which) {name, bcl_stream_get, bcl_stream_set, NULL, (void *)(Py_ssize_t)(which)}

#define BCL_STREAM_GETSET_COMMON \
    BCL_GET("_extra", BCL_ATTR_EXTRA), \
    BCL_GET("_loop", BCL_ATTR_LOOP), \
    BCL_GET("_protocol", BCL_ATTR_PROTOCOL), \
    BCL_GET("_closing", BCL_ATTR_CLOSING), \
    BCL_GETSET("max_size", BCL_ATTR_MAX_SIZE),

#define BCL_STREAM_GETSET_FLOW \
    BCL_GET("_protocol_paused", BCL_ATTR_PROTOCOL_PAUSED), \
    BCL_GET("_high_water", BCL_ATTR_HIGH), \
    BCL_GET("_low_water", BCL_ATTR_LOW), \
    BCL_GET("_conn_lost", BCL_ATTR_CONN_LOST),

#define BCL_STREAM_MEMBERS \
    {"__dictoffset__", T_PYSSIZET, offsetof(bcl_stream, dict), READONLY, NULL}, \
    {"__weaklistoffset__", T_PYSSIZET, offsetof(bcl_stream, weakreflist), READONLY, NULL},

#endif
