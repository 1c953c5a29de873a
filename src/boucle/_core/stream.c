/* stream.c - the transport of connected stream sockets (TCP, Unix), and the
 * machinery it shares with the pipe transports of pipe.c (see stream.h).
 *
 * Behaviour follows asyncio's _SelectorSocketTransport of the running
 * interpreter: the same callbacks in the same order, the same exceptions,
 * messages and exception-handler contexts. How it runs differs:
 *   - the fd is attached to the loop once (bcl_loop_fd_attach); a readiness
 *     event queues sock_io_ready(transport, mask) in the ready queue, where
 *     asyncio would queue the reader and the writer Handles: no Handle, no
 *     bound method, no selector call per event;
 *   - "add/remove the reader or writer" is want_read/want_write plus one
 *     epoll_ctl when the interest really changes;
 *   - reads go into a static buffer and come out as one bytes object (or
 *     straight into the BufferedProtocol's buffer); data_received and
 *     get_buffer/buffer_updated are bound methods cached by set_protocol;
 *   - write() sends at once from the caller's buffer; only the rest is
 *     buffered: large bytes objects by reference, anything else copied into
 *     16 KiB blocks; the buffer is flushed with sendmsg over up to
 *     STREAM_IOV chunks per writable event;
 *   - protocol callbacks run from I/O events in a copy of the context that
 *     created the transport (asyncio runs them in the reader handle's copy).
 */
#include "stream.h"
#include "iohelp.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#define STREAM_COPY_MAX (16 * 1024)  /* data up to this size is copied when buffered */
#define STREAM_BLOCK (16 * 1024)     /* size of an owned block of the write buffer */
#define STREAM_IOV 64                /* chunks per sendmsg/writev */
#define STREAM_HIGH_WATER (64 * 1024)
#define LOG_THRESHOLD_FOR_CONNLOST_WRITES 5   /* asyncio.constants */

bcl_stream_globals bcl_stream_g;

/* Read buffer of every transport: filled by one recv() and copied into a
 * bytes object before any Python code runs, so one is enough (GIL). */
static char stream_rbuf[BCL_STREAM_MAX_SIZE];

/* The hot-path system calls, made directly: glibc's wrappers are pthread
 * cancellation points, which cost two extra calls each in a process with
 * threads (any program using run_in_executor). Same results and errno. */
static inline ssize_t
sys_recv(int fd, void *buf, size_t len)
{
    return (ssize_t)syscall(SYS_recvfrom, fd, buf, len, 0, NULL, NULL);
}

static inline ssize_t
sys_send(int fd, const void *buf, size_t len)
{
    return (ssize_t)syscall(SYS_sendto, fd, buf, len, MSG_NOSIGNAL, NULL, 0);
}

static inline ssize_t
sys_sendmsg(int fd, const struct msghdr *mh)
{
    return (ssize_t)syscall(SYS_sendmsg, fd, mh, MSG_NOSIGNAL);
}

static inline ssize_t
sys_read(int fd, void *buf, size_t len)
{
    return (ssize_t)syscall(SYS_read, fd, buf, len);
}

static inline ssize_t
sys_write(int fd, const void *buf, size_t len)
{
    return (ssize_t)syscall(SYS_write, fd, buf, len);
}

static inline ssize_t
sys_writev(int fd, const struct iovec *iov, int cnt)
{
    return (ssize_t)syscall(SYS_writev, fd, iov, cnt);
}

/* Interned method names. Invariant: set by bcl_stream_init_type. */
static PyObject *str_call_soon, *str_connection_made, *str_connection_lost,
    *str_data_received, *str_eof_received, *str_get_buffer, *str_buffer_updated,
    *str_close, *str_fileno, *str_done, *str_set_result, *str_set_exception,
    *str_call_connection_lost, *str_write, *str_socket, *str_sockname, *str_peername;

static PyObject *sock_type;   /* StreamTransport (heap type) */

/* ---- small helpers ---------------------------------------------------- */

/* The exception a socket subclass's send() raised (see stream_py_error):
 * bcl_stream_send returns STREAM_PYEXC and the caller, at once and with no
 * Python code run in between, turns that code into this object through
 * bcl_stream_oserror. */
#define STREAM_PYEXC (-0x40000000)
static PyObject *stream_py_exc;

PyObject *
bcl_stream_oserror(int neg_errno)
{
    if (neg_errno == STREAM_PYEXC) {
        PyObject *exc = stream_py_exc;
        stream_py_exc = NULL;
        if (exc == NULL) {
            PyErr_SetString(PyExc_SystemError, "boucle: lost socket exception");
            return NULL;
        }
        if (PyErr_GivenExceptionMatches(exc, PyExc_SystemExit)
                || PyErr_GivenExceptionMatches(exc, PyExc_KeyboardInterrupt)) {
            bcl_io_restore(exc);   /* propagates, as asyncio lets them */
            return NULL;
        }
        return exc;
    }
    bcl_raise_errno(neg_errno);
    return bcl_fetch_exception();
}

/* A socket method of a socket.socket subclass raised: -EAGAIN for what
 * asyncio retries (BlockingIOError, InterruptedError), else STREAM_PYEXC
 * with the exception kept for bcl_stream_oserror. */
static Py_ssize_t
stream_py_error(void)
{
    if (PyErr_ExceptionMatches(PyExc_BlockingIOError)
            || PyErr_ExceptionMatches(PyExc_InterruptedError)) {
        PyErr_Clear();
        return -EAGAIN;
    }
    Py_XSETREF(stream_py_exc, bcl_fetch_exception());
    return STREAM_PYEXC;
}

/* The methods of a socket.socket subclass, as asyncio's transport calls
 * them: send() for data written at once and, on 3.12+, sendmsg() to flush
 * the buffer (send() of its first chunk before 3.12). */
static Py_ssize_t
stream_py_send(bcl_stream *self, struct iovec *iov, int cnt, int from_buffer)
{
    if (self->file == NULL)
        return -EBADF;
#if PY_VERSION_HEX < 0x030C0000
    from_buffer = 0;
#endif
    PyObject *arg, *r;
    if (!from_buffer) {
        arg = PyBytes_FromStringAndSize(iov[0].iov_base, (Py_ssize_t)iov[0].iov_len);
        if (arg == NULL)
            return stream_py_error();
        r = PyObject_CallMethod(self->file, "send", "O", arg);
    }
    else {
        arg = PyList_New(cnt);
        if (arg == NULL)
            return stream_py_error();
        for (int i = 0; i < cnt; i++) {
            PyObject *b = PyBytes_FromStringAndSize(iov[i].iov_base, (Py_ssize_t)iov[i].iov_len);
            if (b == NULL) {
                Py_DECREF(arg);
                return stream_py_error();
            }
            PyList_SET_ITEM(arg, i, b);
        }
        r = PyObject_CallMethod(self->file, "sendmsg", "O", arg);
    }
    Py_DECREF(arg);
    if (r == NULL)
        return stream_py_error();
    Py_ssize_t n = PyLong_AsSsize_t(r);
    Py_DECREF(r);
    if (n == -1 && PyErr_Occurred())
        return stream_py_error();
    /* the count decides how much of the buffer is dropped: a subclass
     * answering more than it was given (or a negative count) must not walk
     * the write buffer out of bounds */
    Py_ssize_t offered = 0;
    for (int i = 0; i < (from_buffer ? cnt : 1); i++)
        offered += (Py_ssize_t)iov[i].iov_len;
    if (n < 0 || n > offered) {
        PyErr_Format(PyExc_RuntimeError,
                     "socket %s() returned %zd for %zd bytes",
                     from_buffer ? "sendmsg" : "send", n, offered);
        return stream_py_error();
    }
    return n;
}

int
bcl_stream_catch(PyObject **exc)
{
    if (bcl_io_fatal_raised())
        return 1;
    *exc = bcl_fetch_exception();
    return 0;
}

PyObject *
bcl_stream_import(const char *module, const char *name)
{
    return bcl_io_import(module, name);
}

int
bcl_stream_fileno(PyObject *file)
{
    PyObject *r = PyObject_CallMethodNoArgs(file, str_fileno);
    if (r == NULL)
        return -1;
    long fd = PyLong_AsLong(r);
    Py_DECREF(r);
    if (fd == -1 && PyErr_Occurred())
        return -1;
    if (fd < 0 || fd > INT32_MAX) {
        PyErr_Format(PyExc_ValueError, "Invalid file descriptor: %ld", fd);
        return -1;
    }
    return (int)fd;
}

/* Call fut.<name>(arg) unless fut is done; keeps a raised exception raised. */
static void
future_settle(PyObject *fut, PyObject *name, PyObject *arg)
{
    PyObject *saved = PyErr_Occurred() ? bcl_fetch_exception() : NULL;
    PyObject *d = PyObject_CallMethodNoArgs(fut, str_done);
    int done = d ? PyObject_IsTrue(d) : -1;
    Py_XDECREF(d);
    if (done == 0) {
        PyObject *r = PyObject_CallMethodOneArg(fut, name, arg);
        Py_XDECREF(r);
    }
    if (PyErr_Occurred())
        PyErr_WriteUnraisable(fut);
    bcl_io_restore(saved);
}

static void
future_fail_closed(PyObject *fut)
{
    PyObject *exc = PyObject_CallFunction(PyExc_ConnectionError, "s", "Connection is closed by peer");
    if (exc == NULL) {
        PyErr_WriteUnraisable(fut);
        return;
    }
    future_settle(fut, str_set_exception, exc);
    Py_DECREF(exc);
}

/* ---- loop interaction ------------------------------------------------- */

/* Make the loop watch what want_read/want_write (+ writable_waiter) say.
 * adding: errors propagate (like asyncio's add_reader); otherwise they are
 * ignored (like remove_reader of an fd that was closed behind our back). */
static int
stream_sync(bcl_stream *self, int adding)
{
    uint32_t want = (self->want_read ? BCL_EV_READ : 0)
                  | ((self->want_write || self->writable_waiter) ? BCL_EV_WRITE : 0);
    bcl_loop *loop = self->loop;
    if (want == self->interest || loop == NULL || !self->attached)
        return 0;
    if (loop->closed) {
        if (adding && (want & ~self->interest)) {
            PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
            return -1;
        }
        self->interest = want;
        return 0;
    }
    bcl_fdslot *s = bcl_fdmap_find(&loop->fds, self->fd);
    if (s == NULL || s->owner != (PyObject *)self) {
        /* the loop dropped our record (loop closed): nothing to watch */
        self->attached = 0;
        self->interest = 0;
        return 0;
    }
    if (bcl_loop_fd_interest(loop, self->fd, want) < 0) {
        if (adding)
            return -1;
        PyErr_Clear();
        self->interest = s->events;
        return 0;
    }
    self->interest = want;
    return 0;
}

int
bcl_stream_set_reading(bcl_stream *self, int on)
{
    char old = self->want_read;
    self->want_read = (char)on;
    if (stream_sync(self, on) < 0) {
        self->want_read = old;
        return -1;
    }
    if (old && !on && self->loop != NULL)
        self->read_off_iter = self->loop->stats.iterations + 1;
    return 0;
}

int
bcl_stream_set_writing(bcl_stream *self, int on)
{
    char old = self->want_write;
    self->want_write = (char)on;
    if (stream_sync(self, on) < 0) {
        self->want_write = old;
        return -1;
    }
    return 0;
}

/* Give the fd record back to the loop. The record holds a reference to
 * self: callers must hold their own. */
static void
stream_detach(bcl_stream *self)
{
    if (!self->attached)
        return;
    self->attached = 0;
    self->interest = 0;
    bcl_loop *loop = self->loop;
    if (loop == NULL)
        return;
    bcl_fdslot *s = bcl_fdmap_find(&loop->fds, self->fd);
    if (s != NULL && s->owner == (PyObject *)self)
        bcl_loop_fd_detach(loop, self->fd);
}

int
bcl_stream_call_soon(bcl_stream *self, PyObject *callback, PyObject *arg1, PyObject *arg2)
{
    if (self->loop == NULL) {
        /* never initialized (or connection_lost ran): asyncio's None loop */
        PyErr_SetString(PyExc_AttributeError, "'NoneType' object has no attribute 'call_soon'");
        return -1;
    }
    PyObject *args[4] = {(PyObject *)self->loop, callback, arg1, arg2};
    size_t n = arg1 == NULL ? 2 : arg2 == NULL ? 3 : 4;
    PyObject *h = PyObject_VectorcallMethod(str_call_soon, args, n, NULL);
    if (h == NULL)
        return -1;
    Py_DECREF(h);
    return 0;
}

int
bcl_stream_schedule_lost(bcl_stream *self, PyObject *exc)
{
    self->lost_scheduled = 1;
    PyObject *m = PyObject_GetAttr((PyObject *)self, str_call_connection_lost);
    if (m == NULL)
        return -1;
    int r = bcl_stream_call_soon(self, m, exc ? exc : Py_None, NULL);
    Py_DECREF(m);
    return r;
}

int
bcl_stream_report(bcl_stream *self, PyObject *exc, const char *message)
{
    if (self->loop == NULL)
        return 0;   /* asyncio would fail on its None loop; nothing to report to */
    PyObject *ctx = Py_BuildValue("{s:s,s:O,s:O,s:O}", "message", message, "exception", exc,
                                  "transport", (PyObject *)self,
                                  "protocol", self->protocol ? self->protocol : Py_None);
    if (ctx == NULL)
        return -1;
    PyObject *r = PyObject_CallMethod((PyObject *)self->loop, "call_exception_handler", "O", ctx);
    Py_DECREF(ctx);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

int
bcl_stream_log(bcl_stream *self, const char *level, const char *fmt)
{
    if (self->loop == NULL || !self->loop->debug)
        return 0;
    PyObject *r = PyObject_CallMethod(bcl_stream_g.logger, level, "sO", fmt, (PyObject *)self);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

int
bcl_stream_log_exc(bcl_stream *self, const char *message, PyObject *exc)
{
    if (self->loop == NULL || !self->loop->debug)
        return 0;
    PyObject *args = Py_BuildValue("(sOs)", "%r: %s", (PyObject *)self, message);
    PyObject *kw = Py_BuildValue("{s:O}", "exc_info", exc);
    PyObject *meth = PyObject_GetAttrString(bcl_stream_g.logger, "debug");
    PyObject *r = (args && kw && meth) ? PyObject_Call(meth, args, kw) : NULL;
    Py_XDECREF(args);
    Py_XDECREF(kw);
    Py_XDECREF(meth);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

int
bcl_stream_warn(const char *msg)
{
    PyObject *r = PyObject_CallMethod(bcl_stream_g.logger, "warning", "s", msg);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

int
bcl_stream_enter(bcl_stream *self)
{
    if (self->context == NULL)
        return 0;
    if (PyContext_Enter(self->context) < 0) {
        PyErr_Clear();   /* entered already (re-entrant use): run in the current one */
        return 0;
    }
    return 1;
}

void
bcl_stream_leave(bcl_stream *self, int entered)
{
    if (!entered)
        return;
    PyObject *saved = PyErr_Occurred() ? bcl_fetch_exception() : NULL;
    if (PyContext_Exit(self->context) < 0)
        PyErr_Clear();
    bcl_io_restore(saved);
}

/* ---- the write buffer ------------------------------------------------- */

static bcl_chunk *
wbuf_tail(bcl_wbuf *b)
{
    return b->n ? &b->ring[(b->head + b->n - 1) & (b->cap - 1)] : NULL;
}

/* A free slot at the tail (not counted in n yet). */
static bcl_chunk *
wbuf_new_slot(bcl_wbuf *b)
{
    if (b->n == b->cap) {
        Py_ssize_t ncap = b->cap ? b->cap * 2 : 8;
        bcl_chunk *ring = PyMem_Malloc((size_t)ncap * sizeof(bcl_chunk));
        if (ring == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        for (Py_ssize_t i = 0; i < b->n; i++)
            ring[i] = b->ring[(b->head + i) & (b->cap - 1)];
        PyMem_Free(b->ring);
        b->ring = ring;
        b->cap = ncap;
        b->head = 0;
    }
    return &b->ring[(b->head + b->n) & (b->cap - 1)];
}

static void
chunk_release(bcl_chunk *c)
{
    /* obj is an exact bytes object: no finalizer runs here */
    Py_XDECREF(c->obj);
    PyMem_Free(c->base);
    c->obj = NULL;
    c->base = NULL;
}

int
bcl_stream_buffer(bcl_stream *self, PyObject *owner, const char *p, Py_ssize_t len)
{
    bcl_wbuf *b = &self->wbuf;
    if (len <= 0)
        return 0;
    if (owner != NULL && PyBytes_CheckExact(owner) && len > STREAM_COPY_MAX) {
        bcl_chunk *c = wbuf_new_slot(b);
        if (c == NULL)
            return -1;
        c->obj = Py_NewRef(owner);
        c->base = NULL;
        c->data = (char *)p;
        c->len = len;
        c->room = 0;
        b->n++;
        b->size += len;
        return 0;
    }
    bcl_chunk *t = wbuf_tail(b);
    if (t != NULL && t->base != NULL && t->room > 0) {
        Py_ssize_t k = len < t->room ? len : t->room;
        memcpy(t->data + t->len, p, (size_t)k);
        t->len += k;
        t->room -= k;
        b->size += k;
        p += k;
        len -= k;
        if (len == 0)
            return 0;
    }
    bcl_chunk *c = wbuf_new_slot(b);
    if (c == NULL)
        return -1;
    Py_ssize_t cap = len > STREAM_BLOCK ? len : STREAM_BLOCK;
    char *mem = PyMem_Malloc((size_t)cap);
    if (mem == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(mem, p, (size_t)len);
    c->obj = NULL;
    c->base = mem;
    c->data = mem;
    c->len = len;
    c->room = cap - len;
    b->n++;
    b->size += len;
    return 0;
}

static void
wbuf_consume(bcl_wbuf *b, Py_ssize_t n)
{
    b->size -= n;
    while (n > 0 && b->n > 0) {
        bcl_chunk *c = &b->ring[b->head];
        if (n < c->len) {
            c->data += n;
            c->len -= n;
            return;
        }
        n -= c->len;
        chunk_release(c);
        b->head = (b->head + 1) & (b->cap - 1);
        b->n--;
    }
}

void
bcl_stream_buffer_clear(bcl_stream *self)
{
    bcl_wbuf *b = &self->wbuf;
    while (b->n > 0) {
        chunk_release(&b->ring[b->head]);
        b->head = (b->head + 1) & (b->cap - 1);
        b->n--;
    }
    b->head = 0;
    b->size = 0;
}

static void
wbuf_free(bcl_wbuf *b)
{
    PyMem_Free(b->ring);
    b->ring = NULL;
    b->cap = 0;
}

Py_ssize_t
bcl_stream_send(bcl_stream *self, const char *p, Py_ssize_t len)
{
    struct iovec iov[STREAM_IOV];
    int cnt = 0;
    ssize_t n;
    if (p != NULL) {
        iov[0].iov_base = (void *)p;
        iov[0].iov_len = (size_t)len;
        cnt = 1;
    }
    else {
        bcl_wbuf *b = &self->wbuf;
        for (; cnt < STREAM_IOV && cnt < b->n; cnt++) {
            bcl_chunk *c = &b->ring[(b->head + cnt) & (b->cap - 1)];
            iov[cnt].iov_base = c->data;
            iov[cnt].iov_len = (size_t)c->len;
        }
        if (cnt == 0)
            return 0;
    }
    if (self->py_io) {
        n = stream_py_send(self, iov, p == NULL ? cnt : 1, p == NULL);
        if (n < 0)
            return n;
        if (p == NULL)
            wbuf_consume(&self->wbuf, n);
        return n;
    }
    do {
        if (self->is_socket) {
            if (cnt == 1) {
                n = sys_send(self->fd, iov[0].iov_base, iov[0].iov_len);
            }
            else {
                struct msghdr mh;
                memset(&mh, 0, sizeof(mh));
                mh.msg_iov = iov;
                mh.msg_iovlen = (size_t)cnt;
                n = sys_sendmsg(self->fd, &mh);
            }
        }
        else {
            n = cnt == 1 ? sys_write(self->fd, iov[0].iov_base, iov[0].iov_len)
                         : sys_writev(self->fd, iov, cnt);
        }
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    if (p == NULL)
        wbuf_consume(&self->wbuf, n);
    return n;
}

PyObject *
bcl_stream_recv(bcl_stream *self, int *err)
{
    Py_ssize_t want = self->max_size;
    ssize_t n;
    if (self->py_io) {
        /* a socket.socket subclass: its recv(), as asyncio calls it */
        *err = 0;
        if (self->file == NULL) {
            *err = -EBADF;
            return NULL;
        }
        PyObject *data = PyObject_CallMethod(self->file, "recv", "n", want);
        if (data == NULL) {
            if (PyErr_ExceptionMatches(PyExc_BlockingIOError)
                    || PyErr_ExceptionMatches(PyExc_InterruptedError)) {
                PyErr_Clear();
                *err = -EAGAIN;
            }
            return NULL;
        }
        if (!PyBytes_Check(data))
            Py_SETREF(data, PyBytes_FromObject(data));
        return data;
    }
    if (want <= BCL_STREAM_MAX_SIZE) {
        do {
            n = self->is_socket ? sys_recv(self->fd, stream_rbuf, (size_t)want)
                                : sys_read(self->fd, stream_rbuf, (size_t)want);
        } while (n < 0 && errno == EINTR);
        if (n < 0) {
            *err = errno == EWOULDBLOCK ? -EAGAIN : -errno;
            return NULL;
        }
        PyObject *data = PyBytes_FromStringAndSize(stream_rbuf, n);
        *err = 0;
        return data;
    }
    /* a max_size larger than the static buffer: read into the bytes object */
    PyObject *data = PyBytes_FromStringAndSize(NULL, want);
    *err = 0;
    if (data == NULL)
        return NULL;
    do {
        n = self->is_socket ? sys_recv(self->fd, PyBytes_AS_STRING(data), (size_t)want)
                            : sys_read(self->fd, PyBytes_AS_STRING(data), (size_t)want);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        *err = errno == EWOULDBLOCK ? -EAGAIN : -errno;
        Py_DECREF(data);
        return NULL;
    }
    if (_PyBytes_Resize(&data, n) < 0)
        return NULL;
    return data;
}

/* ---- flow control ----------------------------------------------------- */

static int
stream_protocol_hook(bcl_stream *self, const char *name, const char *failmsg)
{
    if (self->protocol == NULL)
        return 0;
    PyObject *r = PyObject_CallMethod(self->protocol, name, NULL);
    if (r != NULL) {
        Py_DECREF(r);
        return 0;
    }
    PyObject *exc;
    if (bcl_stream_catch(&exc))
        return -1;
    int rc = bcl_stream_report(self, exc, failmsg);
    Py_DECREF(exc);
    return rc;
}

int
bcl_stream_maybe_pause(bcl_stream *self)
{
    if (self->wbuf.size <= self->high_water || self->protocol_paused)
        return 0;
    self->protocol_paused = 1;
    return stream_protocol_hook(self, "pause_writing", "protocol.pause_writing() failed");
}

int
bcl_stream_maybe_resume(bcl_stream *self)
{
    if (!self->protocol_paused || self->wbuf.size > self->low_water)
        return 0;
    self->protocol_paused = 0;
    return stream_protocol_hook(self, "resume_writing", "protocol.resume_writing() failed");
}

/* ---- closing ---------------------------------------------------------- */

/* server._detach(self) (3.13+) or server._detach(), and forget the server. */
static int
stream_server_detach(bcl_stream *self)
{
    PyObject *server = self->server;
    if (server == NULL)
        return 0;
    self->server = NULL;
    PyObject *r = bcl_stream_g.server_attach_arg
        ? PyObject_CallMethod(server, "_detach", "O", (PyObject *)self)
        : PyObject_CallMethod(server, "_detach", NULL);
    Py_DECREF(server);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

int
bcl_stream_finish(bcl_stream *self, PyObject *exc, int call_protocol)
{
    PyObject *err = NULL;
    if (call_protocol && self->protocol != NULL) {
        PyObject *r = PyObject_CallMethodOneArg(self->protocol, str_connection_lost,
                                                exc ? exc : Py_None);
        if (r == NULL)
            err = bcl_fetch_exception();
        Py_XDECREF(r);
    }
    stream_detach(self);
    PyObject *file = self->file;
    self->file = NULL;
    if (file != NULL) {
        PyObject *r = PyObject_CallMethodNoArgs(file, str_close);
        if (r == NULL) {
            if (err == NULL)
                err = bcl_fetch_exception();
            else
                PyErr_WriteUnraisable(file);
        }
        Py_XDECREF(r);
        Py_DECREF(file);
    }
    Py_CLEAR(self->protocol);
    Py_CLEAR(self->cb_data);
    Py_CLEAR(self->cb_updated);
    PyObject *loop = (PyObject *)self->loop;
    self->loop = NULL;
    if (stream_server_detach(self) < 0) {
        if (err == NULL)
            err = bcl_fetch_exception();
        else
            PyErr_WriteUnraisable((PyObject *)self);
    }
    Py_XDECREF(loop);
    if (err != NULL) {
        bcl_io_restore(err);
        return -1;
    }
    return 0;
}

/* ---- setup ------------------------------------------------------------ */

int
bcl_stream_check_loop(bcl_stream *self, PyObject *loop)
{
    if (self->initialized || self->loop != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "transport is already initialized");
        return -1;
    }
    if (!PyObject_TypeCheck(loop, &bcl_loop_type)) {
        PyErr_Format(PyExc_TypeError, "%s needs a boucle loop, not %.100s",
                     Py_TYPE(self)->tp_name, Py_TYPE(loop)->tp_name);
        return -1;
    }
    return 0;
}

int
bcl_stream_setup(bcl_stream *self, PyObject *loop, PyObject *file, int fd,
                 PyObject *protocol, PyObject *extra, int kind, bcl_work_fn io)
{
    if (bcl_stream_check_loop(self, loop) < 0)
        return -1;
    if (extra == NULL || extra == Py_None)
        extra = PyDict_New();
    else
        Py_INCREF(extra);
    PyObject *ctx = PyContext_CopyCurrent();
    if (extra == NULL || ctx == NULL)
        goto fail;
    if (bcl_loop_fd_attach((bcl_loop *)loop, fd, (PyObject *)self, io) < 0)
        goto fail;
    self->loop = (bcl_loop *)Py_NewRef(loop);
    self->file = Py_NewRef(file);
    self->protocol = Py_NewRef(protocol);
    self->extra = extra;
    self->context = ctx;
    self->fd = fd;
    self->kind = (unsigned char)kind;
    self->attached = 1;
    self->interest = 0;
    return 0;
fail:
    Py_XDECREF(extra);
    Py_XDECREF(ctx);
    return -1;
}

void
bcl_stream_unsetup(bcl_stream *self)
{
    stream_detach(self);
    Py_CLEAR(self->file);   /* not ours: the caller keeps it open */
    Py_CLEAR(self->protocol);
    Py_CLEAR(self->cb_data);
    Py_CLEAR(self->cb_updated);
    Py_CLEAR(self->extra);
    Py_CLEAR(self->context);
    Py_CLEAR(self->server);
    Py_CLEAR(self->loop);
}

int
bcl_stream_schedule_start(bcl_stream *self, bcl_work_fn start, PyObject *waiter)
{
    PyObject *cm = PyObject_GetAttr(self->protocol, str_connection_made);
    if (cm == NULL)
        return -1;
    int r = bcl_stream_call_soon(self, cm, (PyObject *)self, NULL);
    Py_DECREF(cm);
    if (r < 0)
        return -1;
    if (start != NULL && bcl_loop_queue_work(self->loop, (PyObject *)self, start, 0) < 0)
        return -1;
    if (waiter != NULL && waiter != Py_None
            && bcl_stream_call_soon(self, bcl_stream_g.set_result_unless, waiter, Py_None) < 0)
        return -1;
    return 0;
}

/* ---- type slots shared by the three types ----------------------------- */

PyObject *
bcl_stream_tp_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    bcl_stream *self = (bcl_stream *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->fd = -1;
    self->high_water = STREAM_HIGH_WATER;
    self->low_water = STREAM_HIGH_WATER / 4;
    self->max_size = BCL_STREAM_MAX_SIZE;
    return (PyObject *)self;
}

int
bcl_stream_tp_traverse(PyObject *op, visitproc visit, void *arg)
{
    bcl_stream *self = (bcl_stream *)op;
    Py_VISIT(Py_TYPE(op));
    for (int i = 0; i < BCL_STREAM_BASE_SLOTS; i++)
        Py_VISIT(self->base_slots[i]);
    Py_VISIT(self->loop);
    Py_VISIT(self->file);
    Py_VISIT(self->protocol);
    Py_VISIT(self->extra);
    Py_VISIT(self->server);
    Py_VISIT(self->context);
    Py_VISIT(self->cb_data);
    Py_VISIT(self->cb_updated);
    Py_VISIT(self->empty_waiter);
    Py_VISIT(self->writable_waiter);
    Py_VISIT(self->dict);
    return 0;
}

int
bcl_stream_tp_clear(PyObject *op)
{
    bcl_stream *self = (bcl_stream *)op;
    for (int i = 0; i < BCL_STREAM_BASE_SLOTS; i++)
        Py_CLEAR(self->base_slots[i]);
    self->attached = 0;   /* the loop's record went with the loop or with us */
    Py_CLEAR(self->loop);
    Py_CLEAR(self->file);
    Py_CLEAR(self->protocol);
    Py_CLEAR(self->extra);
    Py_CLEAR(self->server);
    Py_CLEAR(self->context);
    Py_CLEAR(self->cb_data);
    Py_CLEAR(self->cb_updated);
    Py_CLEAR(self->empty_waiter);
    Py_CLEAR(self->writable_waiter);
    Py_CLEAR(self->dict);
    bcl_stream_buffer_clear(self);
    return 0;
}

/* asyncio's __del__: warn about a transport that was never closed, close
 * its file (and, 3.13+, leave the server). */
void
bcl_stream_tp_finalize(PyObject *op)
{
    bcl_stream *self = (bcl_stream *)op;
    if (self->file == NULL)
        return;
    PyObject *saved = bcl_fetch_exception();
    if (PyErr_ResourceWarning(op, 1, "unclosed transport %R", op) < 0)
        PyErr_WriteUnraisable(op);
    stream_detach(self);
    PyObject *file = self->file;
    self->file = NULL;
    PyObject *r = PyObject_CallMethodNoArgs(file, str_close);
    if (r == NULL)
        PyErr_WriteUnraisable(file);
    Py_XDECREF(r);
    Py_DECREF(file);
    /* 3.13's __del__ leaves the server; older ones keep it counted */
    if (self->server != NULL && bcl_stream_g.server_attach_arg && stream_server_detach(self) < 0)
        PyErr_WriteUnraisable(op);
    bcl_io_restore(saved);
}

void
bcl_stream_tp_dealloc(PyObject *op)
{
    bcl_stream *self = (bcl_stream *)op;
    PyTypeObject *tp = Py_TYPE(op);
    if (bcl_io_dealloc_start(op, &self->weakreflist))
        return;   /* resurrected */
    bcl_stream_tp_clear(op);
    wbuf_free(&self->wbuf);
    tp->tp_free(op);
    Py_DECREF(tp);
}

PyObject *
bcl_stream_make_type(PyObject *module, PyType_Spec *spec, PyObject *base)
{
    PyTypeObject *b = (PyTypeObject *)base;
    if (!PyType_Check(base) || b->tp_basicsize > (Py_ssize_t)offsetof(bcl_stream, loop)
            || b->tp_itemsize != 0 || b->tp_dictoffset != 0 || b->tp_weaklistoffset != 0) {
        PyErr_Format(PyExc_SystemError, "asyncio's %R does not have the layout boucle expects", base);
        return NULL;
    }
    PyObject *bases = PyTuple_Pack(1, base);
    if (bases == NULL)
        return NULL;
    PyObject *t = PyType_FromSpecWithBases(spec, bases);
    Py_DECREF(bases);
    if (t == NULL)
        return NULL;
    const char *dot = strrchr(spec->name, '.');
    if (PyModule_AddObjectRef(module, dot ? dot + 1 : spec->name, t) < 0) {
        Py_DECREF(t);
        return NULL;
    }
    return t;
}

/* ---- methods shared by the types ------------------------------------- */

PyObject *
bcl_stream_get_protocol(PyObject *op, PyObject *unused)
{
    bcl_stream *self = (bcl_stream *)op;
    return Py_NewRef(self->protocol ? self->protocol : Py_None);
}

PyObject *
bcl_stream_is_closing(PyObject *op, PyObject *unused)
{
    return PyBool_FromLong(((bcl_stream *)op)->closing);
}

PyObject *
bcl_stream_is_reading(PyObject *op, PyObject *unused)
{
    bcl_stream *self = (bcl_stream *)op;
    return PyBool_FromLong(!self->closing && !self->paused);
}

PyObject *
bcl_stream_pause_reading(PyObject *op, PyObject *unused)
{
    bcl_stream *self = (bcl_stream *)op;
    if (self->closing || self->paused)
        Py_RETURN_NONE;
    self->paused = 1;
    bcl_stream_set_reading(self, 0);
    if (bcl_stream_log(self, "debug", "%r pauses reading") < 0)
        return NULL;
    Py_RETURN_NONE;
}

PyObject *
bcl_stream_resume_reading(PyObject *op, PyObject *unused)
{
    bcl_stream *self = (bcl_stream *)op;
    if (self->closing || !self->paused)
        Py_RETURN_NONE;
    self->paused = 0;
    if (self->loop == NULL) {
        PyErr_SetString(PyExc_AttributeError, "'NoneType' object has no attribute '_add_reader'");
        return NULL;
    }
    if (bcl_stream_set_reading(self, 1) < 0)
        return NULL;
    if (bcl_stream_log(self, "debug", "%r resumes reading") < 0)
        return NULL;
    Py_RETURN_NONE;
}

PyObject *
bcl_stream_get_write_buffer_size(PyObject *op, PyObject *unused)
{
    return PyLong_FromSsize_t(((bcl_stream *)op)->wbuf.size);
}

PyObject *
bcl_stream_get_write_buffer_limits(PyObject *op, PyObject *unused)
{
    bcl_stream *self = (bcl_stream *)op;
    return Py_BuildValue("(nn)", self->low_water, self->high_water);
}

/* A non-negative limit (an int, or a number compared like one) as Py_ssize_t. */
static int
water_value(PyObject *v, Py_ssize_t *out)
{
    PyObject *i = PyLong_Check(v) ? Py_NewRef(v) : PyNumber_Long(v);
    if (i == NULL)
        return -1;
    Py_ssize_t n = PyLong_AsSsize_t(i);
    Py_DECREF(i);
    if (n == -1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return -1;
        PyErr_Clear();
        n = PY_SSIZE_T_MAX;
    }
    *out = n;
    return 0;
}

PyObject *
bcl_stream_set_write_buffer_limits(PyObject *op, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"high", "low", NULL};
    bcl_stream *self = (bcl_stream *)op;
    PyObject *high = Py_None, *low = Py_None, *zero = NULL, *res = NULL;
    Py_ssize_t h, l;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO:set_write_buffer_limits", kwlist, &high, &low))
        return NULL;
    /* asyncio's _set_write_buffer_limits, on Python objects */
    if (high == Py_None)
        high = low == Py_None ? PyLong_FromLong(STREAM_HIGH_WATER) : PyNumber_Multiply(low, PyLong_FromLong(4));
    else
        Py_INCREF(high);
    if (high == NULL)
        return NULL;
    if (low == Py_None) {
        PyObject *four = PyLong_FromLong(4);
        low = four ? PyNumber_FloorDivide(high, four) : NULL;
        Py_XDECREF(four);
    }
    else
        Py_INCREF(low);
    zero = PyLong_FromLong(0);
    if (low == NULL || zero == NULL)
        goto done;
    int ok = PyObject_RichCompareBool(high, low, Py_GE);
    if (ok > 0)
        ok = PyObject_RichCompareBool(low, zero, Py_GE);
    if (ok < 0)
        goto done;
    if (!ok) {
        PyErr_Format(PyExc_ValueError, "high (%R) must be >= low (%R) must be >= 0", high, low);
        goto done;
    }
    if (water_value(high, &h) < 0 || water_value(low, &l) < 0)
        goto done;
    self->high_water = h;
    self->low_water = l;
    if (bcl_stream_maybe_pause(self) < 0)
        goto done;
    res = Py_NewRef(Py_None);
done:
    Py_DECREF(high);
    Py_XDECREF(low);
    Py_XDECREF(zero);
    return res;
}

PyObject *
bcl_stream_maybe_pause_meth(PyObject *op, PyObject *unused)
{
    if (bcl_stream_maybe_pause((bcl_stream *)op) < 0)
        return NULL;
    Py_RETURN_NONE;
}

PyObject *
bcl_stream_maybe_resume_meth(PyObject *op, PyObject *unused)
{
    if (bcl_stream_maybe_resume((bcl_stream *)op) < 0)
        return NULL;
    Py_RETURN_NONE;
}

PyObject *
bcl_stream_can_write_eof(PyObject *op, PyObject *unused)
{
    Py_RETURN_TRUE;
}

/* WriteTransport.writelines of asyncio <= 3.11 (and of pipes): join, write. */
PyObject *
bcl_stream_writelines_join(PyObject *op, PyObject *list)
{
    PyObject *empty = PyBytes_FromStringAndSize(NULL, 0);
    if (empty == NULL)
        return NULL;
    PyObject *data = PyObject_CallMethod(empty, "join", "O", list);
    Py_DECREF(empty);
    if (data == NULL)
        return NULL;
    PyObject *r = PyObject_CallMethodOneArg(op, str_write, data);
    Py_DECREF(data);
    return r;
}

PyObject *
bcl_stream_get(PyObject *op, void *which)
{
    bcl_stream *self = (bcl_stream *)op;
    PyObject *o;
    switch ((int)(Py_ssize_t)which) {
    case BCL_ATTR_EXTRA: o = self->extra; break;
    case BCL_ATTR_LOOP: o = (PyObject *)self->loop; break;
    case BCL_ATTR_FILE: o = self->file; break;
    case BCL_ATTR_FD: return self->fd < 0 ? Py_NewRef(Py_None) : PyLong_FromLong(self->fd);
    case BCL_ATTR_PROTOCOL: o = self->protocol; break;
    case BCL_ATTR_CLOSING: return PyBool_FromLong(self->closing);
    case BCL_ATTR_PAUSED: return PyBool_FromLong(self->paused);
    case BCL_ATTR_CONN_LOST: return PyLong_FromLong(self->conn_lost);
    case BCL_ATTR_PROTOCOL_PAUSED: return PyBool_FromLong(self->protocol_paused);
    case BCL_ATTR_HIGH: return PyLong_FromSsize_t(self->high_water);
    case BCL_ATTR_LOW: return PyLong_FromSsize_t(self->low_water);
    case BCL_ATTR_MAX_SIZE: return PyLong_FromSsize_t(self->max_size);
    case BCL_ATTR_EOF: return PyBool_FromLong(self->eof);
    case BCL_ATTR_SERVER: o = self->server; break;
    case BCL_ATTR_EMPTY_WAITER: o = self->empty_waiter; break;
    case BCL_ATTR_PROTOCOL_CONNECTED: return PyBool_FromLong(self->protocol_connected);
    default: o = NULL; break;
    }
    return Py_NewRef(o ? o : Py_None);
}

int
bcl_stream_set(PyObject *op, PyObject *v, void *which)
{
    bcl_stream *self = (bcl_stream *)op;
    if ((int)(Py_ssize_t)which == BCL_ATTR_MAX_SIZE && v != NULL) {
        Py_ssize_t n = PyNumber_AsSsize_t(v, PyExc_OverflowError);
        if (n == -1 && PyErr_Occurred())
            return -1;
        if (n <= 0) {
            PyErr_SetString(PyExc_ValueError, "max_size must be positive");
            return -1;
        }
        self->max_size = n;
        return 0;
    }
    if ((int)(Py_ssize_t)which == BCL_ATTR_FILE && v == Py_None) {
        /* tests "forget" the file of a transport this way (no close, no warning) */
        stream_detach(self);
        Py_CLEAR(self->file);
        return 0;
    }
    PyErr_SetString(PyExc_AttributeError, "attribute cannot be changed");
    return -1;
}

/* ======================================================================
 * The socket transport (asyncio's _SelectorSocketTransport)
 * ====================================================================== */

static int sock_force_close(bcl_stream *self, PyObject *exc);

static void
stream_fail_writable(bcl_stream *self)
{
    PyObject *w = self->writable_waiter;
    if (w == NULL)
        return;
    self->writable_waiter = NULL;
    stream_sync(self, 0);
    future_fail_closed(w);
    Py_DECREF(w);
}

/* _fatal_error: OSErrors only logged (debug), others to the handler. */
static int
sock_fatal(bcl_stream *self, PyObject *exc, const char *message)
{
    if (PyErr_GivenExceptionMatches(exc, PyExc_OSError)) {
        if (bcl_stream_log_exc(self, message, exc) < 0)
            return -1;
    }
    else if (bcl_stream_report(self, exc, message) < 0)
        return -1;
    return sock_force_close(self, exc);
}

/* The raised exception goes to sock_fatal (SystemExit/KeyboardInterrupt propagate). */
static int
sock_fatal_raised(bcl_stream *self, const char *message)
{
    PyObject *exc;
    if (bcl_stream_catch(&exc))
        return -1;
    int r = sock_fatal(self, exc, message);
    Py_DECREF(exc);
    return r;
}

static int
sock_fatal_errno(bcl_stream *self, int neg_errno, const char *message)
{
    PyObject *exc = bcl_stream_oserror(neg_errno);
    if (exc == NULL)
        return -1;
    int r = sock_fatal(self, exc, message);
    Py_DECREF(exc);
    return r;
}

static int
sock_force_close(bcl_stream *self, PyObject *exc)
{
    if (self->conn_lost || self->lost_scheduled)
        return 0;
    if (self->wbuf.size > 0) {
        bcl_stream_buffer_clear(self);
        bcl_stream_set_writing(self, 0);
    }
    if (!self->closing) {
        self->closing = 1;
        bcl_stream_set_reading(self, 0);
    }
    self->conn_lost++;
    stream_fail_writable(self);
    return bcl_stream_schedule_lost(self, exc);
}

static int
sock_close(bcl_stream *self)
{
    if (self->closing)
        return 0;
    self->closing = 1;
    bcl_stream_set_reading(self, 0);
    if (self->wbuf.size == 0 && !self->lost_scheduled) {
        self->conn_lost++;
        bcl_stream_set_writing(self, 0);
        return bcl_stream_schedule_lost(self, NULL);
    }
    return 0;
}

/* _call_connection_lost */
static int
sock_lost(bcl_stream *self, PyObject *exc)
{
    if (self->loop == NULL)
        return 0;   /* ran already */
    self->lost_scheduled = 1;
    int r = bcl_stream_finish(self, exc, self->protocol_connected);
    PyObject *w = self->empty_waiter;
    if (w != NULL) {
        Py_INCREF(w);
        future_fail_closed(w);
        Py_DECREF(w);
    }
    w = self->writable_waiter;
    if (w != NULL) {
        self->writable_waiter = NULL;
        future_fail_closed(w);
        Py_DECREF(w);
    }
    return r;
}

static int
sock_on_eof(bcl_stream *self)
{
    if (bcl_stream_log(self, "debug", "%r received EOF") < 0)
        return -1;
    PyObject *r = PyObject_CallMethodNoArgs(self->protocol, str_eof_received);
    if (r == NULL)
        return sock_fatal_raised(self, "Fatal error: protocol.eof_received() call failed.");
    int keep_open = PyObject_IsTrue(r);
    Py_DECREF(r);
    if (keep_open < 0)
        return -1;
    if (keep_open) {
        /* the protocol may still write: stop reading only */
        bcl_stream_set_reading(self, 0);
        return 0;
    }
    return sock_close(self);
}

static int
sock_read_buffered(bcl_stream *self)
{
    PyObject *cb = self->cb_data;
    PyObject *buf;
    if (cb != NULL) {
        Py_INCREF(cb);
        buf = PyObject_CallOneArg(cb, bcl_stream_g.minus_one);
        Py_DECREF(cb);
    }
    else {
        buf = PyObject_CallMethodOneArg(self->protocol, str_get_buffer, bcl_stream_g.minus_one);
    }
    if (buf == NULL)
        return sock_fatal_raised(self, "Fatal error: protocol.get_buffer() call failed.");
    Py_ssize_t blen = PyObject_Length(buf);
    if (blen <= 0) {
        Py_DECREF(buf);
        if (blen == 0)
            PyErr_SetString(PyExc_RuntimeError, "get_buffer() returned an empty buffer");
        return sock_fatal_raised(self, "Fatal error: protocol.get_buffer() call failed.");
    }
    ssize_t n;
    int err = 0;
    if (self->py_io) {
        /* a socket.socket subclass: its recv_into(), as asyncio calls it */
        PyObject *r = self->file != NULL
            ? PyObject_CallMethod(self->file, "recv_into", "O", buf) : NULL;
        Py_DECREF(buf);
        if (self->file == NULL) {
            n = -1;
            err = EBADF;
        }
        else if (r == NULL || (n = PyLong_AsSsize_t(r)) == -1) {
            Py_XDECREF(r);
            if (!PyErr_Occurred())
                return sock_fatal_errno(self, -EINVAL, "Fatal read error on socket transport");
            if (PyErr_ExceptionMatches(PyExc_BlockingIOError)
                    || PyErr_ExceptionMatches(PyExc_InterruptedError)) {
                PyErr_Clear();
                return 0;
            }
            return sock_fatal_raised(self, "Fatal read error on socket transport");
        }
        else {
            Py_DECREF(r);
        }
    }
    else {
        Py_buffer view;
        if (PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE) < 0) {
            Py_DECREF(buf);
            return sock_fatal_raised(self, "Fatal read error on socket transport");
        }
        do {
            n = sys_recv(self->fd, view.buf, (size_t)view.len);
        } while (n < 0 && errno == EINTR);
        err = n < 0 ? errno : 0;
        PyBuffer_Release(&view);
        Py_DECREF(buf);
    }
    if (n < 0) {
        if (err == EAGAIN || err == EWOULDBLOCK)
            return 0;
        return sock_fatal_errno(self, -err, "Fatal read error on socket transport");
    }
    if (n == 0)
        return sock_on_eof(self);
    PyObject *nb = PyLong_FromSsize_t(n);
    if (nb == NULL)
        return -1;
    PyObject *r;
    cb = self->cb_updated;
    if (cb != NULL) {
        Py_INCREF(cb);
        r = PyObject_CallOneArg(cb, nb);
        Py_DECREF(cb);
    }
    else {
        r = PyObject_CallMethodOneArg(self->protocol, str_buffer_updated, nb);
    }
    Py_DECREF(nb);
    if (r == NULL)
        return sock_fatal_raised(self, "Fatal error: protocol.buffer_updated() call failed.");
    Py_DECREF(r);
    return 0;
}

static int
sock_read_ready(bcl_stream *self)
{
    if (self->conn_lost)
        return 0;
    if (self->buffered)
        return sock_read_buffered(self);
    int err;
    PyObject *data = bcl_stream_recv(self, &err);
    if (data == NULL) {
        if (err == -EAGAIN)
            return 0;
        if (err == 0)
            return sock_fatal_raised(self, "Fatal read error on socket transport");
        return sock_fatal_errno(self, err, "Fatal read error on socket transport");
    }
    if (PyBytes_GET_SIZE(data) == 0) {
        Py_DECREF(data);
        return sock_on_eof(self);
    }
    PyObject *r, *cb = self->cb_data;
    if (cb != NULL) {
        Py_INCREF(cb);
        r = PyObject_CallOneArg(cb, data);
        Py_DECREF(cb);
    }
    else {
        r = PyObject_CallMethodOneArg(self->protocol, str_data_received, data);
    }
    Py_DECREF(data);
    if (r == NULL)
        return sock_fatal_raised(self, "Fatal error: protocol.data_received() call failed.");
    Py_DECREF(r);
    return 0;
}

static int
sock_shutdown_wr(bcl_stream *self)
{
    if (self->py_io && self->file != NULL) {
        PyObject *r = PyObject_CallMethod(self->file, "shutdown", "i", SHUT_WR);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
        return 0;
    }
    if (shutdown(self->fd, SHUT_WR) < 0) {
        bcl_raise_errno(-errno);
        return -1;
    }
    return 0;
}

/* The buffer drained while closing: connection_lost now (asyncio calls
 * _call_connection_lost directly here). */
static int
sock_drained_close(bcl_stream *self)
{
    if (self->lost_scheduled)
        return 0;
    self->conn_lost++;
    return sock_lost(self, NULL);
}

static int
sock_write_ready(bcl_stream *self)
{
    if (self->conn_lost || self->wbuf.size == 0) {
        bcl_stream_set_writing(self, 0);
        return 0;
    }
    Py_ssize_t n = bcl_stream_send(self, NULL, 0);
    if (n == -EAGAIN)
        return 0;
    if (n < 0) {
        bcl_stream_set_writing(self, 0);
        bcl_stream_buffer_clear(self);
        PyObject *exc = bcl_stream_oserror((int)n);
        if (exc == NULL)
            return -1;
        int r = sock_fatal(self, exc, "Fatal write error on socket transport");
        if (self->empty_waiter != NULL)
            future_settle(self->empty_waiter, str_set_exception, exc);
        Py_DECREF(exc);
        return r;
    }
    if (bcl_stream_maybe_resume(self) < 0)   /* may write more */
        return -1;
    if (self->wbuf.size == 0 && self->loop != NULL) {
        bcl_stream_set_writing(self, 0);
        if (self->empty_waiter != NULL)
            future_settle(self->empty_waiter, str_set_result, Py_None);
        if (self->closing)
            return sock_drained_close(self);
        if (self->eof)
            return sock_shutdown_wr(self);
    }
    return 0;
}

static int
stream_wake_writable(bcl_stream *self)
{
    PyObject *w = self->writable_waiter;
    self->writable_waiter = NULL;
    stream_sync(self, 0);
    future_settle(w, str_set_result, Py_None);
    Py_DECREF(w);
    return 0;
}

/* The readiness work of a socket transport: asyncio's reader, then writer. */
static int
sock_io_ready(PyObject *op, int mask)
{
    bcl_stream *self = (bcl_stream *)op;
    int r = 0;
    if (self->loop == NULL)
        return 0;
    int entered = bcl_stream_enter(self);
    if ((mask & BCL_EV_READ) && bcl_stream_read_live(self))
        r = sock_read_ready(self);
    if (r == 0 && (mask & BCL_EV_WRITE) && self->loop != NULL) {
        if (self->writable_waiter != NULL)
            r = stream_wake_writable(self);
        if (r == 0 && self->want_write && self->loop != NULL)
            r = sock_write_ready(self);
    }
    bcl_stream_leave(self, entered);
    return r;
}

/* Queued after connection_made: asyncio's call_soon(self._add_reader, ...). */
static int
sock_start_reading(PyObject *op, int arg)
{
    bcl_stream *self = (bcl_stream *)op;
    if (self->loop == NULL || self->closing || self->paused)
        return 0;
    return bcl_stream_set_reading(self, 1);
}

/* set_protocol: cache the read callbacks of the new protocol. */
static int
sock_set_protocol(bcl_stream *self, PyObject *protocol)
{
    int buffered = PyObject_IsInstance(protocol, bcl_stream_g.buffered_protocol);
    if (buffered < 0)
        return -1;
    PyObject *a = PyObject_GetAttr(protocol, buffered ? str_get_buffer : str_data_received);
    PyObject *b = NULL;
    if (a == NULL)
        PyErr_Clear();   /* looked up again (and fails as asyncio does) at the first read */
    if (buffered) {
        b = PyObject_GetAttr(protocol, str_buffer_updated);
        if (b == NULL)
            PyErr_Clear();
    }
    Py_XSETREF(self->cb_data, a);
    Py_XSETREF(self->cb_updated, b);
    Py_XSETREF(self->protocol, Py_NewRef(protocol));
    self->buffered = (char)buffered;
    self->protocol_connected = 1;
    return 0;
}

/* extra[key] = sock.<meth>(), or None when that raises OSError. */
static int
extra_set_name(PyObject *extra, PyObject *sock, const char *meth, PyObject *key)
{
    PyObject *name = PyObject_CallMethod(sock, meth, NULL);
    if (name == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_OSError))
            return -1;
        PyErr_Clear();
        name = Py_NewRef(Py_None);
    }
    int r = PyObject_SetItem(extra, key, name);
    Py_DECREF(name);
    return r;
}

/* Nagle's algorithm off, for TCP: what asyncio means to do for every TCP
 * transport and what uvloop does. asyncio's _set_nodelay also requires
 * sock.proto == IPPROTO_TCP, which leaves out sockets made with proto 0
 * (socket.socket()'s default) and every socket accepted from such a
 * listener (gunicorn's, uvicorn --workers', create_server(sock=...)): there
 * a response written in two parts waits for the peer's delayed ACK, 40 ms
 * on Linux. The kernel knows the protocol; on a socket that is not TCP
 * (Unix, SCTP) the call fails and is ignored. */
static void
sock_set_nodelay(int fd)
{
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int
sock_init(PyObject *op, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"loop", "sock", "protocol", "waiter", "extra", "server", NULL};
    bcl_stream *self = (bcl_stream *)op;
    PyObject *loop, *sock, *protocol, *waiter = Py_None, *extra = Py_None, *server = Py_None;
    PyObject *tsock = NULL, *r;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO|OOO:StreamTransport", kwlist,
                                     &loop, &sock, &protocol, &waiter, &extra, &server))
        return -1;
    if (bcl_stream_check_loop(self, loop) < 0)
        return -1;
    int fd = bcl_stream_fileno(sock);
    if (fd < 0)
        return -1;
    if (bcl_stream_setup(self, loop, sock, fd, protocol, extra, BCL_STREAM_SOCKET, sock_io_ready) < 0)
        return -1;
    self->is_socket = 1;
    self->py_io = Py_TYPE(sock) != (PyTypeObject *)bcl_stream_g.socket_type;
    /* extra info, as _SelectorTransport.__init__ */
    tsock = PyObject_CallOneArg(bcl_stream_g.transport_socket, sock);
    if (tsock == NULL || PyObject_SetItem(self->extra, str_socket, tsock) < 0)
        goto fail;
    if (extra_set_name(self->extra, sock, "getsockname", str_sockname) < 0)
        goto fail;
    int has_peer = PySequence_Contains(self->extra, str_peername);
    if (has_peer < 0 || (!has_peer && extra_set_name(self->extra, sock, "getpeername", str_peername) < 0))
        goto fail;
    if (sock_set_protocol(self, protocol) < 0)
        goto fail;
    sock_set_nodelay(fd);
    if (server != Py_None) {
        r = bcl_stream_g.server_attach_arg ? PyObject_CallMethod(server, "_attach", "O", op)
                                           : PyObject_CallMethod(server, "_attach", NULL);
        if (r == NULL)
            goto fail;
        Py_DECREF(r);
        self->server = Py_NewRef(server);
    }
    if (bcl_stream_schedule_start(self, sock_start_reading, waiter) < 0)
        goto fail;
    Py_DECREF(tsock);
    self->initialized = 1;
    return 0;
fail:
    Py_XDECREF(tsock);
    if (self->server != NULL) {
        PyObject *exc = bcl_fetch_exception();
        if (stream_server_detach(self) < 0)
            PyErr_WriteUnraisable(op);
        bcl_io_restore(exc);
    }
    bcl_stream_unsetup(self);
    return -1;
}

/* ---- socket transport methods ---------------------------------------- */

static int
check_bytes_like(PyObject *data)
{
    if (PyBytes_Check(data) || PyByteArray_Check(data) || PyMemoryView_Check(data))
        return 0;
    PyErr_Format(PyExc_TypeError, "data argument must be a bytes-like object, not '%.100s'",
                 Py_TYPE(data)->tp_name);
    return -1;
}

/* A write on a lost connection: count it, warn past the threshold. */
static PyObject *
sock_write_lost(bcl_stream *self)
{
    if (self->conn_lost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES
            && bcl_stream_warn("socket.send() raised exception.") < 0)
        return NULL;
    self->conn_lost++;
    Py_RETURN_NONE;
}

/* RuntimeError (-1) when write() must refuse any data: after write_eof(),
 * or while sendfile owns the socket. */
static int
sock_write_refused(bcl_stream *self)
{
    if (self->eof) {
        PyErr_SetString(PyExc_RuntimeError, "Cannot call write() after write_eof()");
        return -1;
    }
    if (self->empty_waiter != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "unable to write; sendfile is in progress");
        return -1;
    }
    return 0;
}

/* The part of write() after the argument checks: len bytes at p, which
 * live in owner (NULL: memory that must be copied if it is kept). */
static PyObject *
sock_write_mem(bcl_stream *self, PyObject *owner, const char *p, Py_ssize_t len)
{
    if (len == 0)
        Py_RETURN_NONE;
    if (self->conn_lost || self->loop == NULL)
        return sock_write_lost(self);
    if (self->wbuf.size == 0) {
        /* try to send now */
        Py_ssize_t n = bcl_stream_send(self, p, len);
        if (n == len)
            Py_RETURN_NONE;
        if (n < 0 && n != -EAGAIN) {
            if (sock_fatal_errno(self, (int)n, "Fatal write error on socket transport") < 0)
                return NULL;
            Py_RETURN_NONE;
        }
        if (n > 0) {
            p += n;
            len -= n;
        }
        if (bcl_stream_set_writing(self, 1) < 0)
            return NULL;
    }
    if (bcl_stream_buffer(self, owner, p, len) < 0 || bcl_stream_maybe_pause(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
sock_write(PyObject *op, PyObject *data)
{
    bcl_stream *self = (bcl_stream *)op;
    Py_buffer view;
    if (check_bytes_like(data) < 0)
        return NULL;
    if (sock_write_refused(self) < 0)
        return NULL;
    if (PyBytes_CheckExact(data)) {
        /* the common case: no buffer protocol round trip */
        view.buf = PyBytes_AS_STRING(data);
        view.len = PyBytes_GET_SIZE(data);
        view.obj = NULL;
    }
    else if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        /* e.g. a non-contiguous memoryview: send() would refuse it */
        if (sock_fatal_raised(self, "Fatal write error on socket transport") < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    PyObject *r = sock_write_mem(self, data, view.buf, view.len);
    PyBuffer_Release(&view);
    return r;
}

int
bcl_stream_is_socket_transport(PyObject *op)
{
    return Py_TYPE(op) == (PyTypeObject *)sock_type;
}

int
bcl_stream_write_mem(PyObject *op, const char *p, Py_ssize_t len)
{
    bcl_stream *self = (bcl_stream *)op;
    if (sock_write_refused(self) < 0)
        return -1;
    PyObject *r = sock_write_mem(self, NULL, p, len);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

static PyObject *
sock_writelines(PyObject *op, PyObject *list)
{
#if PY_VERSION_HEX < 0x030C0000
    /* asyncio <= 3.11: WriteTransport.writelines joins and calls write() */
    return bcl_stream_writelines_join(op, list);
#else
    bcl_stream *self = (bcl_stream *)op;
    if (self->eof) {
        PyErr_SetString(PyExc_RuntimeError, "Cannot call writelines() after write_eof()");
        return NULL;
    }
    if (self->empty_waiter != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "unable to writelines; sendfile is in progress");
        return NULL;
    }
    int t = PyObject_IsTrue(list);
    if (t <= 0)
        return t < 0 ? NULL : Py_NewRef(Py_None);
    PyObject *seq = PySequence_Fast(list, "writelines() argument must be iterable");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    PyObject *res = NULL;
    /* like asyncio's memoryview(data) for every item, before any is buffered */
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyObject_CheckBuffer(items[i])) {
            PyErr_Format(PyExc_TypeError, "memoryview: a bytes-like object is required, not '%.100s'",
                         Py_TYPE(items[i])->tp_name);
            goto done;
        }
    }
    if (self->conn_lost || self->loop == NULL) {
        res = sock_write_lost(self);
        goto done;
    }
    int was_empty = self->wbuf.size == 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_buffer view;
        if (PyObject_GetBuffer(items[i], &view, PyBUF_SIMPLE) < 0)
            goto done;
        int r = bcl_stream_buffer(self, items[i], view.buf, view.len);
        PyBuffer_Release(&view);
        if (r < 0)
            goto done;
    }
    if (self->wbuf.size == 0) {
        res = Py_NewRef(Py_None);
        goto done;
    }
    if (was_empty) {
        Py_ssize_t sent = bcl_stream_send(self, NULL, 0);
        if (sent < 0 && sent != -EAGAIN) {
            bcl_stream_buffer_clear(self);
            if (sock_fatal_errno(self, (int)sent, "Fatal write error on socket transport") == 0)
                res = Py_NewRef(Py_None);
            goto done;
        }
        if (self->wbuf.size == 0) {
            res = Py_NewRef(Py_None);
            goto done;
        }
        if (bcl_stream_set_writing(self, 1) < 0)
            goto done;
    }
    if (bcl_stream_maybe_pause(self) < 0)
        goto done;
    res = Py_NewRef(Py_None);
done:
    Py_DECREF(seq);
    return res;
#endif
}

static PyObject *
sock_write_eof(PyObject *op, PyObject *unused)
{
    bcl_stream *self = (bcl_stream *)op;
    if (self->closing || self->eof)
        Py_RETURN_NONE;
    self->eof = 1;
    if (self->wbuf.size == 0 && self->file != NULL && sock_shutdown_wr(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
sock_close_meth(PyObject *op, PyObject *unused)
{
    if (sock_close((bcl_stream *)op) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
sock_abort(PyObject *op, PyObject *unused)
{
    if (sock_force_close((bcl_stream *)op, NULL) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
sock_force_close_meth(PyObject *op, PyObject *exc)
{
    if (sock_force_close((bcl_stream *)op, exc == Py_None ? NULL : exc) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
sock_fatal_error_meth(PyObject *op, PyObject *args, PyObject *kwds)
{
    PyObject *exc;
    const char *message = "Fatal error on transport";
    if (bcl_io_fatal_args(args, kwds, &exc, &message) < 0 || sock_fatal((bcl_stream *)op, exc, message) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
sock_call_connection_lost(PyObject *op, PyObject *exc)
{
    if (sock_lost((bcl_stream *)op, exc == Py_None ? NULL : exc) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
sock_set_protocol_meth(PyObject *op, PyObject *protocol)
{
    if (sock_set_protocol((bcl_stream *)op, protocol) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
sock_make_empty_waiter(PyObject *op, PyObject *unused)
{
    bcl_stream *self = (bcl_stream *)op;
    if (self->empty_waiter != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Empty waiter is already set");
        return NULL;
    }
    if (self->loop == NULL) {
        PyErr_SetString(PyExc_AttributeError, "'NoneType' object has no attribute 'create_future'");
        return NULL;
    }
    PyObject *fut = PyObject_CallMethod((PyObject *)self->loop, "create_future", NULL);
    if (fut == NULL)
        return NULL;
    if (self->wbuf.size == 0) {
        PyObject *r = PyObject_CallMethodOneArg(fut, str_set_result, Py_None);
        if (r == NULL) {
            Py_DECREF(fut);
            return NULL;
        }
        Py_DECREF(r);
    }
    self->empty_waiter = Py_NewRef(fut);
    return fut;
}

static PyObject *
sock_reset_empty_waiter(PyObject *op, PyObject *unused)
{
    Py_CLEAR(((bcl_stream *)op)->empty_waiter);
    Py_RETURN_NONE;
}

/* A future resolved at the next writability event of the socket (boucle's
 * native sendfile waits with it instead of add_writer on a transport fd). */
static PyObject *
sock_wait_writable(PyObject *op, PyObject *unused)
{
    bcl_stream *self = (bcl_stream *)op;
    if (self->loop == NULL || self->conn_lost) {
        PyErr_SetString(PyExc_ConnectionError, "Connection is closed by peer");
        return NULL;
    }
    if (self->writable_waiter != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "already waiting for writability");
        return NULL;
    }
    PyObject *fut = PyObject_CallMethod((PyObject *)self->loop, "create_future", NULL);
    if (fut == NULL)
        return NULL;
    self->writable_waiter = Py_NewRef(fut);
    if (stream_sync(self, 1) < 0) {
        Py_CLEAR(self->writable_waiter);
        Py_DECREF(fut);
        return NULL;
    }
    return fut;
}

static PyObject *
type_short_name(PyObject *op)
{
    return PyObject_GetAttrString((PyObject *)Py_TYPE(op), "__name__");
}

static PyObject *
sock_repr(PyObject *op)
{
    bcl_stream *self = (bcl_stream *)op;
    char info[160];
    PyObject *name = type_short_name(op);
    if (name == NULL)
        return NULL;
    int k = snprintf(info, sizeof(info), "%s fd=%d",
                     self->file == NULL ? " closed" : self->closing ? " closing" : "", self->fd);
    if (self->loop != NULL && !self->loop->closed && k > 0 && (size_t)k < sizeof(info))
        snprintf(info + k, sizeof(info) - (size_t)k, " read=%s write=<%s, bufsize=%zd>",
                 (self->interest & BCL_EV_READ) ? "polling" : "idle",
                 (self->interest & BCL_EV_WRITE) ? "polling" : "idle", self->wbuf.size);
    PyObject *r = PyUnicode_FromFormat("<%U%s>", name, info);
    Py_DECREF(name);
    return r;
}

static PyMethodDef sock_methods[] = {
    BCL_STREAM_METHODS_COMMON
    BCL_STREAM_METHODS_READING
    BCL_STREAM_METHODS_FLOW
    {"write", sock_write, METH_O, "Send data (buffer what the socket does not take now)."},
    {"writelines", sock_writelines, METH_O, "Write an iterable of bytes-like objects."},
    {"write_eof", sock_write_eof, METH_NOARGS, "Shut down the write side once the buffer is sent."},
    {"close", sock_close_meth, METH_NOARGS, "Close after the buffer is sent; connection_lost(None) follows."},
    {"abort", sock_abort, METH_NOARGS, "Close now, dropping buffered data."},
    {"set_protocol", sock_set_protocol_meth, METH_O, NULL},
    {"_force_close", sock_force_close_meth, METH_O, NULL},
    {"_fatal_error", (PyCFunction)(void (*)(void))sock_fatal_error_meth, METH_VARARGS | METH_KEYWORDS, NULL},
    {"_call_connection_lost", sock_call_connection_lost, METH_O, NULL},
    {"_make_empty_waiter", sock_make_empty_waiter, METH_NOARGS, NULL},
    {"_reset_empty_waiter", sock_reset_empty_waiter, METH_NOARGS, NULL},
    {"_wait_writable", sock_wait_writable, METH_NOARGS, NULL},
    {NULL}
};

static PyGetSetDef sock_getset[] = {
    BCL_STREAM_GETSET_COMMON
    BCL_STREAM_GETSET_FLOW
    BCL_GETSET("_sock", BCL_ATTR_FILE),
    BCL_GET("_sock_fd", BCL_ATTR_FD),
    BCL_GET("_paused", BCL_ATTR_PAUSED),
    BCL_GET("_eof", BCL_ATTR_EOF),
    BCL_GET("_server", BCL_ATTR_SERVER),
    BCL_GET("_empty_waiter", BCL_ATTR_EMPTY_WAITER),
    BCL_GET("_protocol_connected", BCL_ATTR_PROTOCOL_CONNECTED),
    {NULL}
};

static PyMemberDef stream_members[] = {
    BCL_STREAM_MEMBERS
    {NULL}
};

static PyType_Slot sock_slots[] = {
    {Py_tp_new, bcl_stream_tp_new},
    {Py_tp_init, sock_init},
    {Py_tp_dealloc, bcl_stream_tp_dealloc},
    {Py_tp_traverse, bcl_stream_tp_traverse},
    {Py_tp_clear, bcl_stream_tp_clear},
    {Py_tp_finalize, bcl_stream_tp_finalize},
    {Py_tp_repr, sock_repr},
    {Py_tp_methods, sock_methods},
    {Py_tp_getset, sock_getset},
    {Py_tp_members, stream_members},
    {Py_tp_doc, "StreamTransport(loop, sock, protocol, waiter=None, extra=None, server=None)\n\n"
                "Transport of a connected stream socket (TCP or Unix), in C; behaves as\n"
                "asyncio's selector socket transport."},
    {0, NULL}
};

static PyType_Spec sock_spec = {
    .name = "boucle._core.StreamTransport",
    .basicsize = sizeof(bcl_stream),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = sock_slots,
};

/* ---- init ------------------------------------------------------------- */

static int
intern_all(void)
{
    static const bcl_io_name names[] = {
        {&str_call_soon, "call_soon"}, {&str_connection_made, "connection_made"},
        {&str_connection_lost, "connection_lost"}, {&str_data_received, "data_received"},
        {&str_eof_received, "eof_received"}, {&str_get_buffer, "get_buffer"},
        {&str_buffer_updated, "buffer_updated"}, {&str_close, "close"}, {&str_fileno, "fileno"},
        {&str_done, "done"}, {&str_set_result, "set_result"}, {&str_set_exception, "set_exception"},
        {&str_call_connection_lost, "_call_connection_lost"}, {&str_write, "write"},
        {&str_socket, "socket"}, {&str_sockname, "sockname"}, {&str_peername, "peername"},
    };
    return bcl_io_intern_all(names, sizeof(names) / sizeof(names[0]));
}

static int
globals_init(void)
{
    bcl_stream_globals *g = &bcl_stream_g;
    if (g->logger != NULL)
        return 0;
    g->logger = bcl_stream_import("asyncio.log", "logger");
    g->transport_socket = bcl_stream_import("asyncio.trsock", "TransportSocket");
    g->set_result_unless = bcl_stream_import("asyncio.futures", "_set_result_unless_cancelled");
    g->buffered_protocol = bcl_stream_import("asyncio.protocols", "BufferedProtocol");
    g->minus_one = PyLong_FromLong(-1);
    g->socket_type = bcl_stream_import("socket", "socket");
    if (!g->socket_type || !g->logger || !g->transport_socket || !g->set_result_unless
            || !g->buffered_protocol || !g->minus_one)
        return -1;
    /* 3.13's Server._attach(transport) / _detach(transport); older: no argument */
    PyObject *server = bcl_stream_import("asyncio.base_events", "Server");
    PyObject *attach = server ? PyObject_GetAttrString(server, "_attach") : NULL;
    PyObject *code = attach ? PyObject_GetAttrString(attach, "__code__") : NULL;
    PyObject *argc = code ? PyObject_GetAttrString(code, "co_argcount") : NULL;
    long n = argc ? PyLong_AsLong(argc) : -1;
    Py_XDECREF(server);
    Py_XDECREF(attach);
    Py_XDECREF(code);
    Py_XDECREF(argc);
    if (n == -1 && PyErr_Occurred())
        return -1;
    g->server_attach_arg = n >= 2;
    return 0;
}

int
bcl_stream_init_type(PyObject *module)
{
    if (intern_all() < 0 || globals_init() < 0)
        return -1;
    PyObject *base = bcl_stream_import("asyncio.transports", "_FlowControlMixin");
    if (base == NULL)
        return -1;
    PyObject *t = bcl_stream_make_type(module, &sock_spec, base);
    Py_DECREF(base);
    if (t == NULL)
        return -1;
    PyObject *mode = bcl_stream_import("asyncio.constants", "_SendfileMode");
    PyObject *native = mode ? PyObject_GetAttrString(mode, "TRY_NATIVE") : NULL;
    Py_XDECREF(mode);
    if (native == NULL
            || PyObject_SetAttrString(t, "_sendfile_compatible", native) < 0
            || PyObject_SetAttrString(t, "_start_tls_compatible", Py_True) < 0) {
        Py_XDECREF(native);
        Py_DECREF(t);
        return -1;
    }
    Py_DECREF(native);
    Py_XSETREF(sock_type, t);
    return bcl_pipe_init_types(module);
}
