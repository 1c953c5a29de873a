/* dgram.c - the datagram transport: asyncio's _SelectorDatagramTransport
 * (UDP, AF_UNIX datagram sockets) in C.
 *
 * Behaviour follows the running interpreter's asyncio.selector_events:
 *   - one recvfrom() per readiness event -> protocol.datagram_received(data,
 *     addr); an OSError -> protocol.error_received(exc); anything else is a
 *     fatal error (exception handler, then the transport closes);
 *   - sendto() tries the socket at once and buffers only what would block
 *     (flushed in order when the socket is writable); a connected socket
 *     (truthy peername) is written with send(), as asyncio does;
 *   - 3.13+: sendto(b'') sends an empty datagram and every buffered datagram
 *     counts 8 more bytes in get_write_buffer_size() (taken off again when
 *     it leaves the buffer, as fixed by gh-135444); before 3.13 an empty
 *     sendto() does nothing; 3.10 counts the buffered copies, 3.11+ adds
 *     len() of the object given to sendto();
 *   - the constructor schedules connection_made, the start of reading and
 *     the waiter's result as three callbacks, in asyncio's order.
 *
 * The type derives from asyncio's _FlowControlMixin (and from 3.12 on its
 * DatagramTransport), as asyncio's does: isinstance() checks give the same
 * answers, and flow control (set_write_buffer_limits,
 * pause_writing/resume_writing) is asyncio's own Python code running over
 * get_write_buffer_size(); it only runs while datagrams are buffered.
 *
 * Addresses: AF_INET, AF_INET6 and AF_UNIX sockets are read and written in
 * C (numeric addresses converted as the socket module does); any other
 * family, and any address that is not a plain numeric one (a host name,
 * an unusual object, an invalid value), goes through the socket object's
 * own sendto()/recvfrom(), so results and errors are the socket module's.
 */
#include "dgram.h"
#include "loop.h"
#include "iohelp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#define DGRAM_BASE_SLOTS 8            /* room for the __slots__ of asyncio's base classes */
#define DGRAM_MAX_SIZE (256 * 1024)   /* asyncio's max_size: bytes per recvfrom() */
#define DGRAM_CONNLOST_LOG 5          /* asyncio.constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES */

#if PY_VERSION_HEX >= 0x030D0000
#define DGRAM_ALLOW_EMPTY 1           /* gh-113812: empty datagrams are sent */
#define DGRAM_HEADER 8                /* per-datagram overhead counted in the buffer size */
#else
#define DGRAM_ALLOW_EMPTY 0
#define DGRAM_HEADER 0
#endif
#if PY_VERSION_HEX >= 0x030B0000
#define DGRAM_COUNT_GIVEN 1           /* 3.11+: += len(data) of the object given */
#else
#define DGRAM_COUNT_GIVEN 0           /* 3.10: the size is the sum of the buffered copies */
#endif

/* A buffered datagram. Invariant: data is an exact bytes object (strong),
 * addr the destination given to sendto() (strong, may be None). */
typedef struct {
    PyObject *data;
    PyObject *addr;
} dgram_item;

/* FIFO of buffered datagrams. Invariants: cap is 0 or a power of two,
 * 0 <= n <= cap, ring[(head + i) & (cap - 1)] for i < n are the live items,
 * oldest first. */
typedef struct {
    dgram_item *ring;     /* cap slots, NULL until first needed */
    Py_ssize_t cap;       /* slots allocated */
    Py_ssize_t head;      /* index of the oldest item */
    Py_ssize_t n;         /* items queued */
} dgram_queue;

/* The transport.
 * Invariants:
 *   - base_slots is the slot area of asyncio's base classes (_extra,
 *     _high_water, _low_water, _protocol_paused; _loop is shadowed by a
 *     getter), managed by their descriptors;
 *   - initialized: __init__ succeeded; then loop, sock and protocol are set
 *     until connection_lost has run (then all three are NULL, like
 *     asyncio's None);
 *   - attached: the loop's record of fd is owned by this transport; it is
 *     dropped before the socket is closed;
 *   - interest is what the loop watches for us: READ while asyncio would
 *     have a reader registered, WRITE while it would have a writer (only
 *     when queue.n > 0);
 *   - conn_lost > 0 once the call to connection_lost is scheduled (then
 *     counts the sendto() calls dropped since, as asyncio);
 *   - last_addr is the Python form of last_sa[0..last_salen), or NULL. */
typedef struct {
    PyObject_HEAD
    PyObject *base_slots[DGRAM_BASE_SLOTS];  /* asyncio's __slots__ area */
    bcl_loop *loop;           /* the loop (strong) or NULL once connection_lost ran */
    PyObject *sock;           /* the socket.socket (strong) or NULL once closed */
    PyObject *protocol;       /* current protocol (strong) or NULL */
    PyObject *address;        /* remote address given at creation (strong; None if none) */
    PyObject *dict;           /* instance __dict__ */
    PyObject *weakreflist;    /* weak references */
    PyObject *last_addr;      /* cached address object of the last sender */
    PyObject *context;        /* copy of the creator's context: I/O callbacks run in it */
    dgram_queue queue;        /* datagrams waiting for the socket to be writable */
    Py_ssize_t buffer_size;   /* what get_write_buffer_size() returns */
    Py_ssize_t max_size;      /* bytes per recvfrom() */
    struct sockaddr_storage last_sa;  /* sender address of last_addr */
    socklen_t last_salen;     /* its length */
    int fd;                   /* the socket's fd (kept after close, for repr) */
    int family;               /* socket family, -1 when unknown */
    int conn_lost;            /* asyncio's _conn_lost */
    uint32_t interest;        /* BCL_EV_* watched by the loop for us */
    uint64_t read_off_iter;   /* 1 + the loop iteration in which reading last went off */
    char initialized;         /* __init__ succeeded */
    char attached;            /* we own the loop's record of fd */
    char closing;             /* close() or a fatal error happened */
    char paused;              /* pause_reading() is in effect */
    char protocol_connected;  /* set_protocol() was called */
    char use_send;            /* the socket is connected (truthy peername): send() */
    char has_address;         /* the remote address is truthy */
    char c_io;                /* family handled in C (INET, INET6, UNIX) */
} bcl_dgram;

static PyTypeObject *dgram_type;       /* DatagramTransport (heap type) */
static char *dgram_scratch;            /* DGRAM_MAX_SIZE receive buffer, used with the GIL held */

/* asyncio objects looked up at init (strong, never changed) */
static PyObject *g_logger;             /* asyncio.log.logger */
static PyObject *g_transport_socket;   /* asyncio.trsock.TransportSocket */
static PyObject *g_set_result_unless;  /* asyncio.futures._set_result_unless_cancelled */

static PyObject *str_call_soon, *str_connection_made, *str_connection_lost,
                *str_datagram_received, *str_error_received, *str_close, *str_send,
                *str_sendto, *str_recvfrom, *str_getsockname, *str_getpeername,
                *str_call_connection_lost, *str_maybe_pause, *str_maybe_resume,
                *str_set_limits, *str_extra, *str_protocol_paused, *str_socket,
                *str_sockname, *str_peername, *str_call_exception_handler, *str_debug,
                *str_exc_info;

/* ---- small helpers ---------------------------------------------------- */

/* AttributeError of asyncio's code touching self._loop/_protocol once they
 * are None (after connection_lost). */
static int
raise_none_attr(const char *name)
{
    PyErr_Format(PyExc_AttributeError, "'NoneType' object has no attribute '%s'", name);
    return -1;
}

/* ---- the queue ---------------------------------------------------------- */

static int
queue_grow(dgram_queue *q)
{
    Py_ssize_t ncap = q->cap ? q->cap * 2 : 8;
    dgram_item *nr = PyMem_Malloc((size_t)ncap * sizeof(*nr));
    if (nr == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < q->n; i++)
        nr[i] = q->ring[(q->head + i) & (q->cap - 1)];
    PyMem_Free(q->ring);
    q->ring = nr;
    q->cap = ncap;
    q->head = 0;
    return 0;
}

/* Append; steals data and addr in every case. */
static int
queue_push_back(dgram_queue *q, PyObject *data, PyObject *addr)
{
    if (q->n == q->cap && queue_grow(q) < 0) {
        Py_DECREF(data);
        Py_DECREF(addr);
        return -1;
    }
    dgram_item *it = &q->ring[(q->head + q->n) & (q->cap - 1)];
    it->data = data;
    it->addr = addr;
    q->n++;
    return 0;
}

/* Take the oldest item (its references move to *out). Requires n > 0. */
static void
queue_pop_front(dgram_queue *q, dgram_item *out)
{
    *out = q->ring[q->head];
    q->head = (q->head + 1) & (q->cap - 1);
    q->n--;
}

/* Put back an item just popped; steals its references in every case. */
static int
queue_push_front(dgram_queue *q, dgram_item it)
{
    if (q->n == q->cap && queue_grow(q) < 0) {
        Py_DECREF(it.data);
        Py_DECREF(it.addr);
        return -1;
    }
    q->head = (q->head - 1) & (q->cap - 1);
    q->ring[q->head] = it;
    q->n++;
    return 0;
}

/* Drop every item. The queue is emptied before any reference is released
 * (a destination object's __del__ may run arbitrary code). */
static void
queue_clear(dgram_queue *q)
{
    dgram_item *ring = q->ring;
    Py_ssize_t cap = q->cap, head = q->head, n = q->n;
    q->ring = NULL;
    q->cap = q->head = q->n = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        dgram_item *it = &ring[(head + i) & (cap - 1)];
        Py_DECREF(it->data);
        Py_DECREF(it->addr);
    }
    PyMem_Free(ring);
}

/* ---- loop interest --------------------------------------------------- */

/* Start watching bits (asyncio's loop._add_reader/_add_writer). */
static int
dgram_watch(bcl_dgram *self, uint32_t bits)
{
    uint32_t want = self->interest | bits;
    if (want == self->interest)
        return 0;
    if (self->loop == NULL || self->loop->closed || !self->attached) {
        PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
        return -1;
    }
    if (bcl_loop_fd_interest(self->loop, self->fd, want) < 0)
        return -1;
    self->interest = want;
    return 0;
}

/* Stop watching bits (loop._remove_reader/_remove_writer: never fails; a
 * closed loop or an fd closed behind our back have dropped it already). */
static void
dgram_unwatch(bcl_dgram *self, uint32_t bits)
{
    uint32_t want = self->interest & ~bits;
    if (want == self->interest)
        return;
    if (self->loop != NULL && !self->loop->closed && self->attached
            && bcl_loop_fd_interest(self->loop, self->fd, want) < 0)
        PyErr_Clear();
    if ((bits & BCL_EV_READ) && (self->interest & BCL_EV_READ) && self->loop != NULL)
        self->read_off_iter = self->loop->stats.iterations + 1;
    self->interest = want;
}

/* Whether a read event polled in this iteration still has asyncio's reader
 * behind it: reading is on and was not turned off since the poll (asyncio's
 * remove_reader cancels the queued handle; a resume_reading() in the same
 * iteration registers a reader that only the next poll reports). Same rule
 * as bcl_stream_read_live. */
static inline int
dgram_read_live(const bcl_dgram *self)
{
    return (self->interest & BCL_EV_READ) && self->loop != NULL
        && self->read_off_iter != self->loop->stats.iterations + 1;
}

/* Give the fd record back to the loop (before the socket is closed). */
static void
dgram_detach(bcl_dgram *self)
{
    if (self->attached && self->loop != NULL && !self->loop->closed)
        bcl_loop_fd_detach(self->loop, self->fd);
    self->attached = 0;
    self->interest = 0;
}

/* ---- addresses -------------------------------------------------------- */

/* Python form of a sender address, as the socket module's makesockaddr()
 * builds it (None for an empty address: an unnamed AF_UNIX sender). */
static PyObject *
dgram_make_addr(bcl_dgram *self, const struct sockaddr_storage *ss, socklen_t len)
{
    char host[INET6_ADDRSTRLEN];
    PyObject *addr;
    if (len == 0)
        Py_RETURN_NONE;
    if (self->last_addr != NULL && len == self->last_salen && memcmp(ss, &self->last_sa, len) == 0)
        return Py_NewRef(self->last_addr);
    switch (ss->ss_family) {
    case AF_INET: {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        if (inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host)) == NULL)
            return bcl_raise_errno(-errno);
        addr = Py_BuildValue("(si)", host, (int)ntohs(a->sin_port));
        break;
    }
    case AF_INET6: {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        if (inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host)) == NULL)
            return bcl_raise_errno(-errno);
        addr = Py_BuildValue("(siII)", host, (int)ntohs(a->sin6_port),
                             (unsigned int)ntohl(a->sin6_flowinfo),
                             (unsigned int)a->sin6_scope_id);
        break;
    }
    case AF_UNIX: {
        const struct sockaddr_un *a = (const struct sockaddr_un *)ss;
        size_t plen = (size_t)len - offsetof(struct sockaddr_un, sun_path);
        if ((size_t)len < offsetof(struct sockaddr_un, sun_path))
            plen = 0;
        if (plen > sizeof(a->sun_path))
            plen = sizeof(a->sun_path);
        if (plen > 0 && a->sun_path[0] == 0)   /* Linux abstract namespace */
            addr = PyBytes_FromStringAndSize(a->sun_path, (Py_ssize_t)plen);
        else
            addr = PyUnicode_DecodeFSDefaultAndSize(a->sun_path, (Py_ssize_t)strnlen(a->sun_path, plen));
        break;
    }
    default:
        PyErr_SetString(PyExc_OSError, "unknown address family");
        return NULL;
    }
    if (addr != NULL && (size_t)len <= sizeof(self->last_sa)) {
        Py_XSETREF(self->last_addr, Py_NewRef(addr));
        memcpy(&self->last_sa, ss, len);
        self->last_salen = len;
    }
    return addr;
}

/* Exact int in [lo, hi] -> 1 and *out; 0 for anything else (no exception). */
static int
exact_int_in(PyObject *o, long lo, long hi, long *out)
{
    if (!PyLong_CheckExact(o))
        return 0;
    int overflow;
    long v = PyLong_AsLongAndOverflow(o, &overflow);
    if (overflow || (v == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    if (v < lo || v > hi)
        return 0;
    *out = v;
    return 1;
}

/* Numeric host of an INET/INET6 address tuple (exact str, no NUL, no scope
 * suffix), NULL when the socket module must parse it. */
static const char *
numeric_host(PyObject *o)
{
    Py_ssize_t n;
    if (!PyUnicode_CheckExact(o) || !PyUnicode_IS_ASCII(o))
        return NULL;
    const char *s = PyUnicode_AsUTF8AndSize(o, &n);
    if (s == NULL) {
        PyErr_Clear();
        return NULL;
    }
    if ((Py_ssize_t)strlen(s) != n || strchr(s, '%') != NULL)
        return NULL;
    return s;
}

/* Destination for sendto(): 1 with ss and len filled, 0 when the socket
 * module must convert it (host names, unusual objects, errors to raise
 * with its own messages), -1 with an exception. */
static int
dgram_parse_addr(bcl_dgram *self, PyObject *addr, struct sockaddr_storage *ss, socklen_t *len)
{
    long port, flow = 0, scope = 0;
    const char *host;
    if (addr == self->last_addr && self->last_salen > 0) {
        /* the address object datagram_received() was given (an echo):
         * its sockaddr is the one it was made from */
        memcpy(ss, &self->last_sa, self->last_salen);
        *len = self->last_salen;
        return 1;
    }
    switch (self->family) {
    case AF_INET: {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        if (!PyTuple_CheckExact(addr) || PyTuple_GET_SIZE(addr) != 2)
            return 0;
        if ((host = numeric_host(PyTuple_GET_ITEM(addr, 0))) == NULL
                || !exact_int_in(PyTuple_GET_ITEM(addr, 1), 0, 0xffff, &port))
            return 0;
        memset(a, 0, sizeof(*a));
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
            return 0;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        *len = sizeof(*a);
        return 1;
    }
    case AF_INET6: {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        Py_ssize_t n;
        if (!PyTuple_CheckExact(addr) || (n = PyTuple_GET_SIZE(addr)) < 2 || n > 4)
            return 0;
        if ((host = numeric_host(PyTuple_GET_ITEM(addr, 0))) == NULL
                || !exact_int_in(PyTuple_GET_ITEM(addr, 1), 0, 0xffff, &port)
                || (n > 2 && !exact_int_in(PyTuple_GET_ITEM(addr, 2), 0, 0xfffff, &flow))
                || (n > 3 && !exact_int_in(PyTuple_GET_ITEM(addr, 3), 0, (long)UINT32_MAX, &scope)))
            return 0;
        memset(a, 0, sizeof(*a));
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
            return 0;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        a->sin6_flowinfo = htonl((uint32_t)flow);
        a->sin6_scope_id = (uint32_t)scope;
        *len = sizeof(*a);
        return 1;
    }
    case AF_UNIX: {
        struct sockaddr_un *a = (struct sockaddr_un *)ss;
        PyObject *path;
        if (PyBytes_CheckExact(addr))
            path = Py_NewRef(addr);
        else if (PyUnicode_CheckExact(addr)) {
            path = PyUnicode_EncodeFSDefault(addr);
            if (path == NULL) {
                PyErr_Clear();
                return 0;
            }
        }
        else
            return 0;
        Py_ssize_t plen = PyBytes_GET_SIZE(path);
        const char *p = PyBytes_AS_STRING(path);
        int abstract = plen == 0 || p[0] == 0;
        if ((size_t)plen > sizeof(a->sun_path) - (abstract ? 0 : 1)) {
            Py_DECREF(path);
            return 0;   /* "AF_UNIX path too long", from the socket module */
        }
        memset(a, 0, offsetof(struct sockaddr_un, sun_path));
        a->sun_family = AF_UNIX;
        memcpy(a->sun_path, p, (size_t)plen);
        if (!abstract)
            a->sun_path[plen] = 0;
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)plen + !abstract);
        Py_DECREF(path);
        return 1;
    }
    default:
        return 0;
    }
}

/* ---- system calls (0 or a size, or -errno; EINTR is retried) -------- */

/* send() when sa is NULL, else sendto(sa). */
static int
sys_send(int fd, const void *buf, size_t len, const struct sockaddr *sa, socklen_t salen)
{
    ssize_t n;
    do {
        n = sa == NULL ? send(fd, buf, len, 0) : sendto(fd, buf, len, 0, sa, salen);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : 0;
}

static ssize_t
sys_recvfrom(int fd, void *buf, size_t len, struct sockaddr_storage *ss, socklen_t *salen)
{
    ssize_t n;
    do {
        *salen = sizeof(*ss);
        n = recvfrom(fd, buf, len, 0, (struct sockaddr *)ss, salen);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

/* ---- sending ------------------------------------------------------------ */

/* The exception set is one asyncio's send path treats as "try later". */
static int
exception_is_would_block(void)
{
    return PyErr_ExceptionMatches(PyExc_BlockingIOError)
        || PyErr_ExceptionMatches(PyExc_InterruptedError);
}

/* sock.send(data) / sock.sendto(data, addr) through the socket object. */
static int
dgram_send_py(bcl_dgram *self, PyObject *data, PyObject *addr)
{
    PyObject *r = self->use_send
        ? PyObject_CallMethodObjArgs(self->sock, str_send, data, NULL)
        : PyObject_CallMethodObjArgs(self->sock, str_sendto, data, addr, NULL);
    if (r != NULL) {
        Py_DECREF(r);
        return 0;
    }
    if (exception_is_would_block()) {
        PyErr_Clear();
        return 1;
    }
    return -1;
}

/* Send one datagram as asyncio does (send() when connected, else sendto()).
 * Returns 0 when sent, 1 when it would block, -1 with the exception. */
static int
dgram_send_one(bcl_dgram *self, PyObject *data, PyObject *addr)
{
    struct sockaddr_storage ss;
    socklen_t salen = 0;
    Py_buffer view;
    if (!self->c_io)
        return dgram_send_py(self, data, addr);
    if (!self->use_send) {
        int r = dgram_parse_addr(self, addr, &ss, &salen);
        if (r < 0)
            return -1;
        if (r == 0)
            return dgram_send_py(self, data, addr);
    }
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        return dgram_send_py(self, data, addr);   /* raises the socket module's error */
    }
    int err = sys_send(self->fd, view.buf, (size_t)view.len,
                       self->use_send ? NULL : (struct sockaddr *)&ss, salen);
    PyBuffer_Release(&view);
    if (err == -EAGAIN || err == -EWOULDBLOCK)
        return 1;
    if (err < 0) {
        bcl_raise_errno(err);
        return -1;
    }
    return 0;
}

/* ---- asyncio's helpers: callbacks, errors, closing -------------------- */

/* self._protocol.<name>(a[, b]). 0, or -1 with the exception. */
static int
dgram_call_protocol(bcl_dgram *self, PyObject *name, PyObject *a, PyObject *b)
{
    if (self->protocol == NULL) {
        PyErr_Format(PyExc_AttributeError, "'NoneType' object has no attribute '%U'", name);
        return -1;
    }
    PyObject *proto = Py_NewRef(self->protocol);
    PyObject *args[3] = {proto, a, b};
    PyObject *r = PyObject_VectorcallMethod(name, args, (b ? 3 : 2) | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(proto);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* self._loop.call_soon(cb, *args) with up to two arguments (NULL ends). */
static int
dgram_call_soon(bcl_dgram *self, PyObject *cb, PyObject *a, PyObject *b)
{
    if (self->loop == NULL)
        return raise_none_attr("call_soon");
    PyObject *r = PyObject_CallMethodObjArgs((PyObject *)self->loop, str_call_soon, cb, a, b, NULL);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

static int
dgram_call_method0(bcl_dgram *self, PyObject *name)
{
    PyObject *r = PyObject_CallMethodNoArgs((PyObject *)self, name);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* asyncio's _force_close(exc). */
static int
dgram_force_close(bcl_dgram *self, PyObject *exc)
{
    if (self->conn_lost)
        return 0;
    if (self->queue.n > 0) {
        queue_clear(&self->queue);
        if (!DGRAM_COUNT_GIVEN)
            self->buffer_size = 0;   /* 3.10 sums the (now empty) buffer */
        dgram_unwatch(self, BCL_EV_WRITE);
    }
    if (!self->closing) {
        self->closing = 1;
        dgram_unwatch(self, BCL_EV_READ);
    }
    self->conn_lost++;
    PyObject *cb = PyObject_GetAttr((PyObject *)self, str_call_connection_lost);
    if (cb == NULL)
        return -1;
    int r = dgram_call_soon(self, cb, exc, NULL);
    Py_DECREF(cb);
    return r;
}

/* asyncio's _fatal_error(exc, message). */
static int
dgram_fatal_error(bcl_dgram *self, PyObject *exc, PyObject *message)
{
    int is_os = PyObject_TypeCheck(exc, (PyTypeObject *)PyExc_OSError);
    if (self->loop == NULL)
        return raise_none_attr(is_os ? "get_debug" : "call_exception_handler");
    if (is_os) {
        if (self->loop->debug) {
            PyObject *kw = Py_BuildValue("{OO}", str_exc_info, exc);
            PyObject *args = kw ? Py_BuildValue("(sOO)", "%r: %s", (PyObject *)self, message) : NULL;
            PyObject *meth = args ? PyObject_GetAttr(g_logger, str_debug) : NULL;
            PyObject *r = meth ? PyObject_Call(meth, args, kw) : NULL;
            Py_XDECREF(kw);
            Py_XDECREF(args);
            Py_XDECREF(meth);
            if (r == NULL)
                return -1;
            Py_DECREF(r);
        }
    }
    else {
        PyObject *ctx = Py_BuildValue("{sOsOsOsO}", "message", message, "exception", exc,
                                      "transport", (PyObject *)self,
                                      "protocol", self->protocol ? self->protocol : Py_None);
        if (ctx == NULL)
            return -1;
        PyObject *r = PyObject_CallMethodOneArg((PyObject *)self->loop, str_call_exception_handler, ctx);
        Py_DECREF(ctx);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
    }
    return dgram_force_close(self, exc);
}

/* An I/O call failed (exception set). As asyncio's handlers: an OSError
 * goes to protocol.error_received(); SystemExit and KeyboardInterrupt
 * propagate; anything else is a fatal error. 0, or -1 with the exception
 * to propagate. */
static int
dgram_io_error(bcl_dgram *self, const char *fatal_msg)
{
    if (bcl_io_fatal_raised())
        return -1;
    int is_os = PyErr_ExceptionMatches(PyExc_OSError);
    PyObject *exc = bcl_fetch_exception();
    int r;
    if (is_os) {
        r = dgram_call_protocol(self, str_error_received, exc, NULL);
    }
    else {
        PyObject *msg = PyUnicode_FromString(fatal_msg);
        r = msg ? dgram_fatal_error(self, exc, msg) : -1;
        Py_XDECREF(msg);
    }
    Py_DECREF(exc);
    return r;
}

/* asyncio's _call_connection_lost(exc): connection_lost, then the socket
 * is closed and the transport lets go of its loop, socket and protocol. */
static int
dgram_connection_lost(bcl_dgram *self, PyObject *exc)
{
    if (self->sock == NULL)
        return 0;   /* ran already */
    dgram_detach(self);
    PyObject *saved = NULL;
    if (self->protocol_connected && self->protocol != NULL) {
        if (dgram_call_protocol(self, str_connection_lost, exc, NULL) < 0)
            saved = bcl_fetch_exception();
    }
    PyObject *r = PyObject_CallMethodNoArgs(self->sock, str_close);
    if (r == NULL) {
        PyObject *e = bcl_fetch_exception();
        if (saved != NULL)
            PyException_SetContext(e, saved);   /* raised in a finally: block */
        saved = e;
    }
    Py_XDECREF(r);
    Py_CLEAR(self->sock);
    Py_CLEAR(self->protocol);
    Py_CLEAR(self->loop);
    if (saved != NULL) {
        bcl_io_restore(saved);
        return -1;
    }
    return 0;
}

/* asyncio's close(). */
static int
dgram_close_impl(bcl_dgram *self)
{
    if (self->closing)
        return 0;
    self->closing = 1;
    dgram_unwatch(self, BCL_EV_READ);
    if (self->queue.n == 0) {
        self->conn_lost++;
        dgram_unwatch(self, BCL_EV_WRITE);
        PyObject *cb = PyObject_GetAttr((PyObject *)self, str_call_connection_lost);
        if (cb == NULL)
            return -1;
        int r = dgram_call_soon(self, cb, Py_None, NULL);
        Py_DECREF(cb);
        return r;
    }
    return 0;
}

/* ---- I/O events ------------------------------------------------------ */

/* Receive one datagram through the socket object (families not handled
 * in C, or a max_size the socket module must refuse). */
static int
dgram_recv_py(bcl_dgram *self, PyObject **data, PyObject **addr)
{
    PyObject *n = PyLong_FromSsize_t(self->max_size);
    if (n == NULL)
        return -1;
    PyObject *r = PyObject_CallMethodOneArg(self->sock, str_recvfrom, n);
    Py_DECREF(n);
    if (r == NULL)
        return -1;
    if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 2) {
        Py_DECREF(r);
        PyErr_SetString(PyExc_ValueError, "recvfrom() did not return a (data, address) pair");
        return -1;
    }
    *data = Py_NewRef(PyTuple_GET_ITEM(r, 0));
    *addr = Py_NewRef(PyTuple_GET_ITEM(r, 1));
    Py_DECREF(r);
    return 0;
}

/* asyncio's _read_ready(). */
static int
dgram_read_ready(bcl_dgram *self)
{
    PyObject *data = NULL, *addr = NULL;
    if (self->conn_lost || self->sock == NULL)
        return 0;
    if (!self->c_io || self->max_size < 0) {
        if (dgram_recv_py(self, &data, &addr) < 0) {
            if (exception_is_would_block()) {
                PyErr_Clear();
                return 0;
            }
            return dgram_io_error(self, "Fatal read error on datagram transport");
        }
    }
    else {
        struct sockaddr_storage ss;
        socklen_t salen;
        PyObject *big = NULL;
        char *buf = dgram_scratch;
        ssize_t n;
        if (self->max_size > DGRAM_MAX_SIZE) {
            big = PyBytes_FromStringAndSize(NULL, self->max_size);
            if (big == NULL)
                return -1;
            buf = PyBytes_AS_STRING(big);
        }
        n = sys_recvfrom(self->fd, buf, (size_t)self->max_size, &ss, &salen);
        if (n < 0) {
            Py_XDECREF(big);
            if (n == -EAGAIN || n == -EWOULDBLOCK)
                return 0;
            bcl_raise_errno((int)n);
            return dgram_io_error(self, "Fatal read error on datagram transport");
        }
        if (big != NULL) {
            if (_PyBytes_Resize(&big, n) < 0)
                return -1;
            data = big;
        }
        else {
            data = PyBytes_FromStringAndSize(buf, n);
            if (data == NULL)
                return -1;
        }
        addr = dgram_make_addr(self, &ss, salen);
        if (addr == NULL) {
            Py_DECREF(data);
            return -1;
        }
    }
    int r = dgram_call_protocol(self, str_datagram_received, data, addr);
    Py_DECREF(data);
    Py_DECREF(addr);
    return r;
}

/* asyncio's _sendto_ready(): flush the buffer in order. */
static int
dgram_sendto_ready(bcl_dgram *self)
{
    while (self->queue.n > 0) {
        dgram_item it;
        queue_pop_front(&self->queue, &it);
        Py_ssize_t size = PyBytes_GET_SIZE(it.data) + DGRAM_HEADER;
        self->buffer_size -= size;
        int r = dgram_send_one(self, it.data, it.addr);
        if (r == 1) {
            if (queue_push_front(&self->queue, it) < 0)   /* try again later */
                return -1;
            self->buffer_size += size;
            break;
        }
        Py_DECREF(it.data);
        Py_DECREF(it.addr);
        if (r < 0)
            return dgram_io_error(self, "Fatal write error on datagram transport");
    }
    if (dgram_call_method0(self, str_maybe_resume) < 0)   /* may append to the buffer */
        return -1;
    if (self->queue.n == 0) {
        dgram_unwatch(self, BCL_EV_WRITE);
        if (self->closing)
            return dgram_connection_lost(self, Py_None);
    }
    return 0;
}

/* An exception escaped _sendto_ready (error_received() raised): report it
 * as asyncio reports its writer callback's error, naming _sendto_ready (the
 * loop's reporter names _read_ready unless told otherwise). SystemExit and
 * KeyboardInterrupt propagate. 0, or -1 with an exception set. */
static int
dgram_report_writer_error(bcl_dgram *self)
{
    if (bcl_io_fatal_raised())
        return -1;
    PyObject *exc = bcl_fetch_exception();
    PyObject *r = PyObject_CallMethod((PyObject *)self->loop, "_report_callback_error", "OOs",
                                      (PyObject *)self, exc, "_sendto_ready");
    Py_DECREF(exc);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* Readiness of the fd (queued by the loop, in asyncio's order). asyncio
 * runs the reader and the writer as two callbacks: the writer still runs
 * when the reader raised, after the error has been reported. */
static int
dgram_on_event(PyObject *obj, int mask)
{
    bcl_dgram *self = (bcl_dgram *)obj;
    PyObject *ctx = self->context;
    int rc = 0;
    if (ctx != NULL) {
        Py_INCREF(ctx);
        if (PyContext_Enter(ctx) < 0) {
            PyErr_Clear();
            Py_CLEAR(ctx);
        }
    }
    if ((mask & BCL_EV_READ) && dgram_read_live(self) && dgram_read_ready(self) < 0) {
        if (!(mask & BCL_EV_WRITE) || !(self->interest & BCL_EV_WRITE) || self->loop == NULL) {
            rc = -1;
            goto out;
        }
        /* the loop's reporter takes any object (it formats non-handles as
         * "Unhandled exception in <obj>") */
        if (bcl_loop_report_callback_error(self->loop, (bcl_handle *)obj) < 0) {
            rc = -1;
            goto out;
        }
    }
    if ((mask & BCL_EV_WRITE) && (self->interest & BCL_EV_WRITE)) {
        rc = dgram_sendto_ready(self);
        if (rc < 0 && self->loop != NULL)
            rc = dgram_report_writer_error(self);
    }
out:
    if (ctx != NULL) {
        PyObject *saved = PyErr_Occurred() ? bcl_fetch_exception() : NULL;
        if (PyContext_Exit(ctx) < 0)
            PyErr_Clear();
        if (saved != NULL)
            bcl_io_restore(saved);
        Py_DECREF(ctx);
    }
    return rc;
}

/* The deferred loop._add_reader(fd, _read_ready) of asyncio's __init__. */
static int
dgram_start_reading(PyObject *obj, int arg)
{
    bcl_dgram *self = (bcl_dgram *)obj;
    if (!self->initialized || self->closing || self->paused)
        return 0;
    return dgram_watch(self, BCL_EV_READ);
}

/* ---- type slots ------------------------------------------------------ */

static PyObject *
dgram_tp_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    bcl_dgram *self = (bcl_dgram *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->fd = -1;
    self->family = -1;
    self->max_size = DGRAM_MAX_SIZE;
    self->address = Py_NewRef(Py_None);
    return (PyObject *)self;
}

/* Fill the extra-info dict as _SelectorTransport.__init__ does. */
static int
dgram_fill_extra(PyObject *extra, PyObject *sock)
{
    PyObject *ts = PyObject_CallOneArg(g_transport_socket, sock);
    if (ts == NULL)
        return -1;
    int r = PyObject_SetItem(extra, str_socket, ts);
    Py_DECREF(ts);
    if (r < 0)
        return -1;
    PyObject *names[2] = {str_getsockname, str_getpeername};
    PyObject *keys[2] = {str_sockname, str_peername};
    for (int i = 0; i < 2; i++) {
        if (i == 1) {
            int has = PySequence_Contains(extra, str_peername);
            if (has < 0)
                return -1;
            if (has)
                break;
        }
        PyObject *v = PyObject_CallMethodNoArgs(sock, names[i]);
        if (v == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_OSError))
                return -1;
            PyErr_Clear();
            v = Py_NewRef(Py_None);
        }
        r = PyObject_SetItem(extra, keys[i], v);
        Py_DECREF(v);
        if (r < 0)
            return -1;
    }
    return 0;
}

static int
dgram_tp_init(PyObject *op, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"loop", "sock", "protocol", "address", "waiter", "extra", NULL};
    bcl_dgram *self = (bcl_dgram *)op;
    PyObject *loop, *sock, *protocol, *address = Py_None, *waiter = Py_None, *extra = Py_None;
    PyObject *peer = NULL, *cb = NULL;
    int family = -1;
    socklen_t flen = sizeof(family);

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO|OOO:DatagramTransport", kwlist,
                                     &loop, &sock, &protocol, &address, &waiter, &extra))
        return -1;
    if (self->initialized || self->loop != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "DatagramTransport is already initialized");
        return -1;
    }
    if (!PyObject_TypeCheck(loop, &bcl_loop_type)) {
        PyErr_Format(PyExc_TypeError, "DatagramTransport needs a boucle loop, not %.200s",
                     Py_TYPE(loop)->tp_name);
        return -1;
    }
    if (extra == Py_None) {
        extra = PyDict_New();
        if (extra == NULL)
            return -1;
    }
    else {
        Py_INCREF(extra);
    }
    /* transports._FlowControlMixin.__init__ and BaseTransport.__init__ */
    if (PyObject_SetAttr(op, str_extra, extra) < 0
            || PyObject_SetAttr(op, str_protocol_paused, Py_False) < 0
            || dgram_call_method0(self, str_set_limits) < 0
            || dgram_fill_extra(extra, sock) < 0)
        goto fail;
    int fd = PyObject_AsFileDescriptor(sock);
    if (fd < 0)
        goto fail;
    peer = PyObject_GetItem(extra, str_peername);
    if (peer == NULL)
        goto fail;
    int use_send = PyObject_IsTrue(peer);
    int has_address = PyObject_IsTrue(address);
    if (use_send < 0 || has_address < 0)
        goto fail;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &flen) < 0)
        family = -1;
    /* the loop's fd record: events, and "fd used by a transport" checks */
    if (((bcl_loop *)loop)->closed) {
        PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
        goto fail;
    }
    if (self->context == NULL && (self->context = PyContext_CopyCurrent()) == NULL)
        goto fail;
    if (bcl_loop_fd_attach((bcl_loop *)loop, fd, op, dgram_on_event) < 0)
        goto fail;
    self->attached = 1;
    self->loop = (bcl_loop *)Py_NewRef(loop);
    self->sock = Py_NewRef(sock);
    self->protocol = Py_NewRef(protocol);
    self->protocol_connected = 1;
    Py_SETREF(self->address, Py_NewRef(address));
    self->fd = fd;
    self->family = family;
    self->c_io = family == AF_INET || family == AF_INET6 || family == AF_UNIX;
    self->use_send = (char)use_send;
    self->has_address = (char)has_address;

    /* what asyncio's __init__ schedules, in its order */
    cb = PyObject_GetAttr(protocol, str_connection_made);
    if (cb == NULL || dgram_call_soon(self, cb, op, NULL) < 0
            || bcl_loop_queue_work(self->loop, op, dgram_start_reading, 0) < 0)
        goto fail_attached;
    if (waiter != Py_None && dgram_call_soon(self, g_set_result_unless, waiter, Py_None) < 0)
        goto fail_attached;
    self->initialized = 1;
    Py_DECREF(cb);
    Py_DECREF(peer);
    Py_DECREF(extra);
    return 0;

fail_attached:
    /* not a usable transport: no ResourceWarning, the caller closes sock */
    dgram_detach(self);
    Py_CLEAR(self->sock);
    Py_CLEAR(self->protocol);
    Py_CLEAR(self->loop);
fail:
    Py_XDECREF(cb);
    Py_XDECREF(peer);
    Py_DECREF(extra);
    return -1;
}

static int
dgram_tp_traverse(PyObject *op, visitproc visit, void *arg)
{
    bcl_dgram *self = (bcl_dgram *)op;
    Py_VISIT(Py_TYPE(op));
    for (int i = 0; i < DGRAM_BASE_SLOTS; i++)
        Py_VISIT(self->base_slots[i]);
    Py_VISIT(self->loop);
    Py_VISIT(self->sock);
    Py_VISIT(self->protocol);
    Py_VISIT(self->address);
    Py_VISIT(self->dict);
    Py_VISIT(self->last_addr);
    Py_VISIT(self->context);
    dgram_queue *q = &self->queue;
    for (Py_ssize_t i = 0; i < q->n; i++) {
        Py_VISIT(q->ring[(q->head + i) & (q->cap - 1)].data);
        Py_VISIT(q->ring[(q->head + i) & (q->cap - 1)].addr);
    }
    return 0;
}

static int
dgram_tp_clear(PyObject *op)
{
    bcl_dgram *self = (bcl_dgram *)op;
    for (int i = 0; i < DGRAM_BASE_SLOTS; i++)
        Py_CLEAR(self->base_slots[i]);
    Py_CLEAR(self->loop);
    Py_CLEAR(self->sock);
    Py_CLEAR(self->protocol);
    Py_CLEAR(self->address);
    Py_CLEAR(self->dict);
    Py_CLEAR(self->last_addr);
    Py_CLEAR(self->context);
    queue_clear(&self->queue);
    return 0;
}

/* asyncio's __del__: an unclosed transport warns and closes its socket. */
static void
dgram_tp_finalize(PyObject *op)
{
    bcl_dgram *self = (bcl_dgram *)op;
    if (self->sock == NULL)
        return;
    PyObject *saved = bcl_fetch_exception();
    if (PyErr_ResourceWarning(op, 1, "unclosed transport %R", op) < 0)
        PyErr_WriteUnraisable(op);
    PyObject *r = PyObject_CallMethodNoArgs(self->sock, str_close);
    if (r == NULL)
        PyErr_WriteUnraisable(op);
    Py_XDECREF(r);
    bcl_io_restore(saved);
}

static void
dgram_tp_dealloc(PyObject *op)
{
    bcl_dgram *self = (bcl_dgram *)op;
    PyTypeObject *tp = Py_TYPE(op);
    if (bcl_io_dealloc_start(op, &self->weakreflist))
        return;   /* resurrected */
    dgram_tp_clear(op);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyObject *
dgram_tp_repr(PyObject *op)
{
    bcl_dgram *self = (bcl_dgram *)op;
    PyObject *name = PyObject_GetAttrString((PyObject *)Py_TYPE(op), "__name__");
    if (name == NULL)
        return NULL;
    const char *state = self->sock == NULL ? " closed" : self->closing ? " closing" : "";
    PyObject *r;
    if (self->loop != NULL && !self->loop->closed)
        r = PyUnicode_FromFormat("<%U%s fd=%d read=%s write=<%s, bufsize=%zd>>", name, state, self->fd,
                                 (self->interest & BCL_EV_READ) ? "polling" : "idle",
                                 (self->interest & BCL_EV_WRITE) ? "polling" : "idle",
                                 self->buffer_size);
    else
        r = PyUnicode_FromFormat("<%U%s fd=%d>", name, state, self->fd);
    Py_DECREF(name);
    return r;
}

/* ---- methods ---------------------------------------------------------- */

/* sendto(data, addr=None) */
static int
parse_sendto_args(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                  PyObject **data, PyObject **addr)
{
    *data = nargs >= 1 ? args[0] : NULL;
    *addr = nargs >= 2 ? args[1] : Py_None;
    if (nargs > 2) {
        PyErr_Format(PyExc_TypeError,
                     "sendto() takes from 2 to 3 positional arguments but %zd were given", nargs + 1);
        return -1;
    }
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *k = PyTuple_GET_ITEM(kwnames, i);
        int is_data = PyUnicode_CompareWithASCIIString(k, "data") == 0;
        int is_addr = !is_data && PyUnicode_CompareWithASCIIString(k, "addr") == 0;
        if (!is_data && !is_addr) {
            PyErr_Format(PyExc_TypeError, "sendto() got an unexpected keyword argument '%U'", k);
            return -1;
        }
        if ((is_data && nargs >= 1) || (is_addr && nargs >= 2)) {
            PyErr_Format(PyExc_TypeError, "sendto() got multiple values for argument '%U'", k);
            return -1;
        }
        if (is_data)
            *data = args[nargs + i];
        else
            *addr = args[nargs + i];
    }
    if (*data == NULL) {
        PyErr_SetString(PyExc_TypeError, "sendto() missing 1 required positional argument: 'data'");
        return -1;
    }
    return 0;
}

static PyObject *
dgram_sendto(bcl_dgram *self, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames)
{
    PyObject *data, *addr;
    if (parse_sendto_args(args, PyVectorcall_NARGS(nargsf), kwnames, &data, &addr) < 0)
        return NULL;
    if (!PyBytes_Check(data) && !PyByteArray_Check(data) && !PyMemoryView_Check(data)) {
        PyObject *tname = PyObject_GetAttrString((PyObject *)Py_TYPE(data), "__name__");
        if (tname != NULL)
            PyErr_Format(PyExc_TypeError, "data argument must be a bytes-like object, not %R", tname);
        Py_XDECREF(tname);
        return NULL;
    }
    if (!DGRAM_ALLOW_EMPTY) {
        int t = PyObject_IsTrue(data);
        if (t < 0)
            return NULL;
        if (!t)
            Py_RETURN_NONE;
    }
    if (self->has_address) {
        if (addr != Py_None && addr != self->address) {
            int eq = PyObject_RichCompareBool(Py_None, addr, Py_EQ);
            if (eq == 0)
                eq = PyObject_RichCompareBool(self->address, addr, Py_EQ);
            if (eq < 0)
                return NULL;
            if (!eq) {
                PyErr_Format(PyExc_ValueError, "Invalid address: must be None or %S", self->address);
                return NULL;
            }
        }
        addr = self->address;
    }
    if (self->conn_lost && self->has_address) {
        if (self->conn_lost >= DGRAM_CONNLOST_LOG) {
            PyObject *r = PyObject_CallMethod(g_logger, "warning", "s", "socket.send() raised exception.");
            if (r == NULL)
                return NULL;
            Py_DECREF(r);
        }
        self->conn_lost++;
        Py_RETURN_NONE;
    }
    if (self->queue.n == 0) {
        if (self->sock == NULL) {
            /* asyncio: self._sock is None -> AttributeError -> _fatal_error
             * -> self._loop is None */
            raise_none_attr("call_exception_handler");
            return NULL;
        }
        int r = dgram_send_one(self, data, addr);
        if (r == 0)
            Py_RETURN_NONE;
        if (r < 0) {
            if (dgram_io_error(self, "Fatal write error on datagram transport") < 0)
                return NULL;
            Py_RETURN_NONE;
        }
        if (dgram_watch(self, BCL_EV_WRITE) < 0)
            return NULL;
    }
    /* buffer an immutable copy */
    Py_ssize_t size = DGRAM_COUNT_GIVEN ? PyObject_Size(data) : 0;
    if (size < 0)
        return NULL;
    PyObject *copy = PyBytes_CheckExact(data) ? Py_NewRef(data) : PyBytes_FromObject(data);
    if (copy == NULL)
        return NULL;
    if (!DGRAM_COUNT_GIVEN)
        size = PyBytes_GET_SIZE(copy);
    if (queue_push_back(&self->queue, copy, Py_NewRef(addr)) < 0)
        return NULL;
    self->buffer_size += size + DGRAM_HEADER;
    if (dgram_call_method0(self, str_maybe_pause) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
dgram_get_write_buffer_size(bcl_dgram *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromSsize_t(self->buffer_size);
}

static PyObject *
dgram_close(bcl_dgram *self, PyObject *Py_UNUSED(ignored))
{
    if (dgram_close_impl(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
dgram_abort(bcl_dgram *self, PyObject *Py_UNUSED(ignored))
{
    if (dgram_force_close(self, Py_None) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
dgram_force_close_meth(bcl_dgram *self, PyObject *exc)
{
    if (dgram_force_close(self, exc) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
dgram_fatal_error_meth(bcl_dgram *self, PyObject *args)
{
    PyObject *exc, *message = NULL;
    if (!PyArg_ParseTuple(args, "O|U:_fatal_error", &exc, &message))
        return NULL;
    if (message == NULL) {
        message = PyUnicode_FromString("Fatal error on transport");
        if (message == NULL)
            return NULL;
    }
    else {
        Py_INCREF(message);
    }
    int r = dgram_fatal_error(self, exc, message);
    Py_DECREF(message);
    if (r < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
dgram_is_closing(bcl_dgram *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->closing);
}

#if PY_VERSION_HEX >= 0x030B0000
static PyObject *
dgram_is_reading(bcl_dgram *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(!self->closing && !self->paused);
}

static int
dgram_log_debug(bcl_dgram *self, const char *fmt)
{
    if (self->loop == NULL || !self->loop->debug)
        return 0;
    PyObject *r = PyObject_CallMethod(g_logger, "debug", "sO", fmt, (PyObject *)self);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

static PyObject *
dgram_pause_reading(bcl_dgram *self, PyObject *Py_UNUSED(ignored))
{
    if (self->closing || self->paused)
        Py_RETURN_NONE;
    self->paused = 1;
    dgram_unwatch(self, BCL_EV_READ);
    if (dgram_log_debug(self, "%r pauses reading") < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
dgram_resume_reading(bcl_dgram *self, PyObject *Py_UNUSED(ignored))
{
    if (self->closing || !self->paused)
        Py_RETURN_NONE;
    self->paused = 0;
    if (dgram_watch(self, BCL_EV_READ) < 0)
        return NULL;
    if (dgram_log_debug(self, "%r resumes reading") < 0)
        return NULL;
    Py_RETURN_NONE;
}

#endif

static PyObject *
dgram_set_protocol(bcl_dgram *self, PyObject *protocol)
{
    Py_XSETREF(self->protocol, Py_NewRef(protocol));
    self->protocol_connected = 1;
    Py_RETURN_NONE;
}

static PyObject *
dgram_get_protocol(bcl_dgram *self, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(self->protocol ? self->protocol : Py_None);
}

static PyObject *
dgram_call_connection_lost_meth(bcl_dgram *self, PyObject *exc)
{
    if (dgram_connection_lost(self, exc) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
dgram_read_ready_meth(bcl_dgram *self, PyObject *Py_UNUSED(ignored))
{
    if (dgram_read_ready(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
dgram_sendto_ready_meth(bcl_dgram *self, PyObject *Py_UNUSED(ignored))
{
    if (dgram_sendto_ready(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* ---- attributes asyncio's code and tests read ------------------------- */

static PyObject *
get_loop(bcl_dgram *self, void *c)
{
    return Py_NewRef(self->loop ? (PyObject *)self->loop : Py_None);
}

static PyObject *
get_sock(bcl_dgram *self, void *c)
{
    return Py_NewRef(self->sock ? self->sock : Py_None);
}

static PyObject *
get_buffer(bcl_dgram *self, void *c)
{
    dgram_queue *q = &self->queue;
    PyObject *list = PyList_New(q->n);
    if (list == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < q->n; i++) {
        dgram_item *it = &q->ring[(q->head + i) & (q->cap - 1)];
        PyObject *t = PyTuple_Pack(2, it->data, it->addr);
        if (t == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, t);
    }
    return list;
}

static PyObject *
get_max_size(bcl_dgram *self, void *c)
{
    return PyLong_FromSsize_t(self->max_size);
}

static int
set_max_size(bcl_dgram *self, PyObject *v, void *c)
{
    if (v == NULL) {
        self->max_size = DGRAM_MAX_SIZE;   /* back to the class default */
        return 0;
    }
    Py_ssize_t n = PyNumber_AsSsize_t(v, PyExc_OverflowError);
    if (n == -1 && PyErr_Occurred())
        return -1;
    self->max_size = n;
    return 0;
}

static PyGetSetDef dgram_getset[] = {
    {"_loop", (getter)get_loop, NULL, "The loop, None once the connection is lost.", NULL},
    {"_sock", (getter)get_sock, NULL, "The socket, None once closed.", NULL},
    {"_protocol", (getter)dgram_get_protocol, NULL, NULL, NULL},
    {"_buffer", (getter)get_buffer, NULL, "Snapshot of the buffered (data, addr) pairs.", NULL},
    {"max_size", (getter)get_max_size, (setter)set_max_size, "Bytes read per recvfrom().", NULL},
    {NULL}
};

static PyMemberDef dgram_members[] = {
    {"__dictoffset__", T_PYSSIZET, offsetof(bcl_dgram, dict), READONLY},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(bcl_dgram, weakreflist), READONLY},
    {"_address", T_OBJECT, offsetof(bcl_dgram, address), READONLY},
    {"_sock_fd", T_INT, offsetof(bcl_dgram, fd), READONLY},
    {"_conn_lost", T_INT, offsetof(bcl_dgram, conn_lost), READONLY},
    {"_buffer_size", T_PYSSIZET, offsetof(bcl_dgram, buffer_size), READONLY},
    {"_closing", T_BOOL, offsetof(bcl_dgram, closing), READONLY},
#if PY_VERSION_HEX >= 0x030B0000
    {"_paused", T_BOOL, offsetof(bcl_dgram, paused), READONLY},
#endif
    {"_protocol_connected", T_BOOL, offsetof(bcl_dgram, protocol_connected), READONLY},
    {NULL}
};

#define FASTKW (METH_FASTCALL | METH_KEYWORDS)

static PyMethodDef dgram_methods[] = {
    {"sendto", (PyCFunction)(void (*)(void))dgram_sendto, FASTKW,
     "sendto(data, addr=None): send a datagram (buffered if the socket is busy)."},
    {"get_write_buffer_size", (PyCFunction)dgram_get_write_buffer_size, METH_NOARGS, NULL},
    {"close", (PyCFunction)dgram_close, METH_NOARGS,
     "Stop reading; connection_lost(None) once the buffer is flushed."},
    {"abort", (PyCFunction)dgram_abort, METH_NOARGS, "Close at once, dropping buffered datagrams."},
    {"is_closing", (PyCFunction)dgram_is_closing, METH_NOARGS, NULL},
#if PY_VERSION_HEX >= 0x030B0000
    /* 3.10's datagram transport has none of these (ReadTransport's
     * NotImplementedError) */
    {"is_reading", (PyCFunction)dgram_is_reading, METH_NOARGS, NULL},
    {"pause_reading", (PyCFunction)dgram_pause_reading, METH_NOARGS, NULL},
    {"resume_reading", (PyCFunction)dgram_resume_reading, METH_NOARGS, NULL},
#endif
    {"set_protocol", (PyCFunction)dgram_set_protocol, METH_O, NULL},
    {"get_protocol", (PyCFunction)dgram_get_protocol, METH_NOARGS, NULL},
    {"_call_connection_lost", (PyCFunction)dgram_call_connection_lost_meth, METH_O, NULL},
    {"_force_close", (PyCFunction)dgram_force_close_meth, METH_O, NULL},
    {"_fatal_error", (PyCFunction)dgram_fatal_error_meth, METH_VARARGS, NULL},
    {"_read_ready", (PyCFunction)dgram_read_ready_meth, METH_NOARGS, NULL},
    {"_sendto_ready", (PyCFunction)dgram_sendto_ready_meth, METH_NOARGS, NULL},
    {NULL}
};

static PyType_Slot dgram_slots[] = {
    {Py_tp_new, dgram_tp_new},
    {Py_tp_init, dgram_tp_init},
    {Py_tp_dealloc, dgram_tp_dealloc},
    {Py_tp_traverse, dgram_tp_traverse},
    {Py_tp_clear, dgram_tp_clear},
    {Py_tp_finalize, dgram_tp_finalize},
    {Py_tp_repr, dgram_tp_repr},
    {Py_tp_methods, dgram_methods},
    {Py_tp_getset, dgram_getset},
    {Py_tp_members, dgram_members},
    {Py_tp_doc, "DatagramTransport(loop, sock, protocol, address=None, waiter=None, extra=None)\n\n"
                "Transport of a datagram socket (UDP, AF_UNIX), in C; behaves as asyncio's\n"
                "selector datagram transport."},
    {0, NULL}
};

static PyType_Spec dgram_spec = {
    .name = "boucle._core.DatagramTransport",
    .basicsize = sizeof(bcl_dgram),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = dgram_slots,
};

/* ---- init --------------------------------------------------------------- */

static int
intern_all(void)
{
    static const bcl_io_name names[] = {
        {&str_call_soon, "call_soon"}, {&str_connection_made, "connection_made"},
        {&str_connection_lost, "connection_lost"}, {&str_datagram_received, "datagram_received"},
        {&str_error_received, "error_received"}, {&str_close, "close"}, {&str_send, "send"},
        {&str_sendto, "sendto"}, {&str_recvfrom, "recvfrom"}, {&str_getsockname, "getsockname"},
        {&str_getpeername, "getpeername"}, {&str_call_connection_lost, "_call_connection_lost"},
        {&str_maybe_pause, "_maybe_pause_protocol"}, {&str_maybe_resume, "_maybe_resume_protocol"},
        {&str_set_limits, "_set_write_buffer_limits"}, {&str_extra, "_extra"},
        {&str_protocol_paused, "_protocol_paused"}, {&str_socket, "socket"},
        {&str_sockname, "sockname"}, {&str_peername, "peername"},
        {&str_call_exception_handler, "call_exception_handler"}, {&str_debug, "debug"},
        {&str_exc_info, "exc_info"},
    };
    return bcl_io_intern_all(names, sizeof(names) / sizeof(names[0]));
}

/* The base classes must leave our fields alone: only __slots__ pointers,
 * within the reserved area, no __dict__ or weakref slot of their own. */
static int
check_base_layout(PyObject *base)
{
    PyTypeObject *b = (PyTypeObject *)base;
    if (!PyType_Check(base) || b->tp_basicsize > (Py_ssize_t)offsetof(bcl_dgram, loop)
            || b->tp_itemsize != 0 || b->tp_dictoffset != 0 || b->tp_weaklistoffset != 0) {
        PyErr_Format(PyExc_SystemError, "asyncio's %R does not have the layout boucle expects", base);
        return -1;
    }
    return 0;
}

int
bcl_dgram_init_type(PyObject *module)
{
    PyObject *flow = NULL, *dgram = NULL, *bases = NULL, *t = NULL;
    if (intern_all() < 0)
        return -1;
    if (g_logger == NULL) {
        g_logger = bcl_io_import("asyncio.log", "logger");
        g_transport_socket = bcl_io_import("asyncio.trsock", "TransportSocket");
        g_set_result_unless = bcl_io_import("asyncio.futures", "_set_result_unless_cancelled");
        if (g_logger == NULL || g_transport_socket == NULL || g_set_result_unless == NULL)
            return -1;
    }
    if (dgram_scratch == NULL && (dgram_scratch = PyMem_RawMalloc(DGRAM_MAX_SIZE)) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    flow = bcl_io_import("asyncio.transports", "_FlowControlMixin");
    dgram = bcl_io_import("asyncio.transports", "DatagramTransport");
    if (flow == NULL || dgram == NULL || check_base_layout(flow) < 0 || check_base_layout(dgram) < 0)
        goto fail;
    /* asyncio's datagram transport is a transports.DatagramTransport from
     * 3.12 on; before, only a _FlowControlMixin (Transport) */
    bases = PY_VERSION_HEX >= 0x030C0000 ? PyTuple_Pack(2, flow, dgram) : PyTuple_Pack(1, flow);
    if (bases == NULL)
        goto fail;
    t = PyType_FromSpecWithBases(&dgram_spec, bases);
    if (t == NULL)
        goto fail;
    if (PyModule_AddObjectRef(module, "DatagramTransport", t) < 0)
        goto fail;
    Py_XSETREF(dgram_type, (PyTypeObject *)t);
    Py_DECREF(flow);
    Py_DECREF(dgram);
    Py_DECREF(bases);
    return 0;
fail:
    Py_XDECREF(t);
    Py_XDECREF(flow);
    Py_XDECREF(dgram);
    Py_XDECREF(bases);
    return -1;
}
