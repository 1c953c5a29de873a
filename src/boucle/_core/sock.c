/* sock.c - the loop's socket operations: sock_recv, sock_recv_into,
 * sock_recvfrom, sock_recvfrom_into, sock_sendall, sock_sendto,
 * sock_connect, sock_accept (the C half of boucle._sockets.SocketMixin).
 *
 * Every operation follows asyncio's selector loop:
 *   1. try it at once; a result or an error goes straight back;
 *   2. if it would block (BlockingIOError, InterruptedError), create a Future
 *      with loop.create_future() and register a reader (writer for sends and
 *      connect) with loop._add_reader(fd, op): the callback is the SockOp;
 *   3. each time the fd is ready the op retries; it completes the Future
 *      with the result or the error and removes its reader, unless its handle
 *      was cancelled meanwhile (another add_reader replaced it: asyncio then
 *      leaves the replaced operation pending forever, and so does boucle).
 * The Python coroutine awaits the op, which is its own await iterator:
 * it steps the Future's iterator, and when the wait ends with an error
 * (cancelled, thrown into) or is closed, it stops the operation itself:
 * the reader is removed as asyncio's _sock_read_done/_sock_write_done do.
 *
 * Fast path: for an exact socket.socket in non-blocking mode, recv,
 * recv_into and send are system calls made here (MSG_DONTWAIT; no
 * BlockingIOError object when they would block; small receives go through
 * a scratch buffer instead of a bytes object of the requested size). Any
 * other object, or an argument the fast path does not take, goes through
 * the socket's own methods exactly as asyncio calls them, so that results
 * and errors are the same.
 */
#include "sock.h"
#include "handle.h"
#include "loop.h"
#include "iohelp.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

enum {
    OP_RECV,
    OP_RECV_INTO,
    OP_RECVFROM,
    OP_RECVFROM_INTO,
    OP_SENDALL,
    OP_SENDTO,
    OP_CONNECT,
    OP_ACCEPT,
};

static const char *const op_names[] = {
    "recv", "recv_into", "recvfrom", "recvfrom_into", "sendall", "sendto", "connect", "accept",
};

/* operations that wait for writability (the others wait for readability) */
#define OP_WRITES(kind) ((kind) == OP_SENDALL || (kind) == OP_SENDTO || (kind) == OP_CONNECT)

/* Receives of at most this many bytes go through the scratch buffer and
 * produce a bytes object of the received size. */
#define SCRATCH_SIZE 65536

/* Start of CPython's socket object (Modules/socketmodule.h, unchanged from
 * 3.5 to 3.13). Only read when sock_setup() verified it on a live socket. */
typedef struct {
    PyObject_HEAD
    int sock_fd;                      /* the fd, -1 once closed */
    int sock_family;                  /* AF_* */
    int sock_type;                    /* SOCK_* */
    int sock_proto;                   /* protocol number */
    PyObject *(*errorhandler)(void);  /* raises OSError from errno */
    int64_t sock_timeout;             /* ns; 0: non-blocking, < 0: blocking */
} sock_layout;

/* Module-wide state of this file. Invariant: after sock_setup() succeeded,
 * socket_type is socket.socket (strong), sslsocket_type is ssl.SSLSocket or
 * NULL, and layout_ok is 1 only if sock_layout matched a live socket; the
 * strings are interned, created by bcl_sock_init_type(). */
static struct {
    PyTypeObject *socket_type;   /* the fast path applies to exactly this type */
    PyObject *sslsocket_type;    /* rejected by every operation */
    int layout_ok;               /* sock_layout may be read from socket_type objects */
    PyObject *zero;              /* 0 */
    PyObject *s_recv, *s_recv_into, *s_recvfrom, *s_recvfrom_into, *s_send, *s_sendto;
    PyObject *s_connect, *s_accept, *s_setblocking, *s_gettimeout, *s_fileno;
    PyObject *s_create_future, *s_set_result, *s_set_exception, *s_done, *s_cancelled;
    PyObject *s_add_reader, *s_add_writer, *s_remove_reader, *s_remove_writer;
    PyObject *s_await, *s_throw;
} sk;

/* Receive buffer of the fast path: only touched with the GIL held, and
 * copied out before any Python code can run. */
static char scratch[SCRATCH_SIZE];

/* Returned by attempts that would block. Never dereferenced. */
static char again_tag;
#define AGAIN ((PyObject *)&again_tag)

/* The arguments of one operation and its progress.
 * Invariants: in a SockOp the object fields are strong references (NULL
 * when unused); in a request on the C stack they are borrowed. view.obj is
 * set only for a raw sendall (the data, held until the operation ends) and
 * then 0 <= n <= view.len. */
typedef struct {
    PyObject *sock;       /* the socket, or a socket-like object */
    PyObject *arg;        /* recv*: bufsize or buffer; send*: data; connect: address */
    PyObject *arg2;       /* recvfrom_into: nbytes; sendto: address; generic sendall: memoryview */
    Py_buffer view;       /* raw sendall: the data */
    Py_ssize_t n;         /* raw recv: bufsize; sendall: bytes sent so far */
    unsigned char kind;   /* OP_* */
    unsigned char raw;    /* exact non-blocking socket.socket: system calls made here */
} sockreq;

/* A pending operation: the callback of its reader/writer handle, and what
 * the coroutine awaits.
 * Invariants: registered implies fut != NULL and handle holds what
 * _add_reader/_add_writer returned (a Handle, or whatever an override
 * returned); fut == NULL once the operation finished or was closed, and then
 * req.view is released. */
typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;   /* readiness callback entry point */
    PyObject *loop;              /* the loop */
    PyObject *fut;               /* the Future, NULL once finished */
    PyObject *fdobj;             /* the fd given to _add_reader/_add_writer */
    PyObject *handle;            /* what _add_reader/_add_writer returned, while registered */
    PyObject *iter;              /* the Future's await iterator while awaited, or NULL */
    sockreq req;                 /* the operation */
    char registered;             /* our reader/writer may still be in the loop */
} bcl_sockop;

static PyTypeObject sockop_type;

/* ---- helpers -------------------------------------------------------- */

/* The fd of a socket the fast path takes, else -2. */
static inline int
raw_fd(PyObject *sock)
{
    if (!sk.layout_ok || Py_TYPE(sock) != sk.socket_type)
        return -2;
    sock_layout *s = (sock_layout *)sock;
    return s->sock_timeout == 0 ? s->sock_fd : -2;
}

/* The pending exception is BlockingIOError or InterruptedError: clear it
 * and return AGAIN; otherwise return NULL with the exception kept. */
static PyObject *
would_block(void)
{
    if (PyErr_ExceptionMatches(PyExc_BlockingIOError)
            || PyErr_ExceptionMatches(PyExc_InterruptedError)) {
        PyErr_Clear();
        return AGAIN;
    }
    return NULL;
}

/* Result of a failed system call (-errno): AGAIN when it would block, NULL
 * with OSError set otherwise (-EINTR: a signal handler raised, already set). */
static PyObject *
sys_error(Py_ssize_t neg_errno)
{
    if (neg_errno == -EAGAIN || neg_errno == -EWOULDBLOCK)
        return AGAIN;
    if (neg_errno == -EINTR)
        return NULL;
    return bcl_raise_errno((int)neg_errno);
}

/* recv()/send() that never block; EINTR is retried after the signal
 * handlers ran (PEP 475). Returns bytes moved or -errno (-EINTR only with
 * the handler's exception set). */
static Py_ssize_t
sys_recv(int fd, void *buf, Py_ssize_t len)
{
    for (;;) {
        ssize_t n = recv(fd, buf, (size_t)len, MSG_DONTWAIT);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return -errno;
        if (PyErr_CheckSignals() < 0)
            return -EINTR;
    }
}

static Py_ssize_t
sys_send(int fd, const void *buf, Py_ssize_t len)
{
    for (;;) {
        ssize_t n = send(fd, buf, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return -errno;
        if (PyErr_CheckSignals() < 0)
            return -EINTR;
    }
}

/* ---- one attempt of each operation ----------------------------------
 * Each returns a new reference to the operation's result, AGAIN when it
 * would block (the request keeps its progress), or NULL with the error. */

static PyObject *
try_recv(sockreq *r)
{
    int fd;
    if (r->raw && (fd = raw_fd(r->sock)) != -2) {
        Py_ssize_t n;
        if (r->n <= SCRATCH_SIZE) {
            n = sys_recv(fd, scratch, r->n);
            return n < 0 ? sys_error(n) : PyBytes_FromStringAndSize(scratch, n);
        }
        PyObject *b = PyBytes_FromStringAndSize(NULL, r->n);
        if (b == NULL)
            return NULL;
        n = sys_recv(fd, PyBytes_AS_STRING(b), r->n);
        if (n < 0) {
            Py_DECREF(b);
            return sys_error(n);
        }
        if (n != r->n && _PyBytes_Resize(&b, n) < 0)
            return NULL;
        return b;
    }
    PyObject *res = PyObject_CallMethodOneArg(r->sock, sk.s_recv, r->arg);
    return res != NULL ? res : would_block();
}

static PyObject *
try_recv_into(sockreq *r)
{
    int fd;
    if (r->raw && (fd = raw_fd(r->sock)) != -2) {
        Py_buffer v;
        if (PyObject_GetBuffer(r->arg, &v, PyBUF_WRITABLE) == 0) {
            Py_ssize_t n = sys_recv(fd, v.buf, v.len);
            PyBuffer_Release(&v);
            return n < 0 ? sys_error(n) : PyLong_FromSsize_t(n);
        }
        /* not a writable contiguous buffer: recv_into() raises the error */
        PyErr_Clear();
    }
    PyObject *res = PyObject_CallMethodOneArg(r->sock, sk.s_recv_into, r->arg);
    return res != NULL ? res : would_block();
}

static PyObject *
try_recvfrom(sockreq *r)
{
    PyObject *res = PyObject_CallMethodOneArg(r->sock, sk.s_recvfrom, r->arg);
    return res != NULL ? res : would_block();
}

static PyObject *
try_recvfrom_into(sockreq *r)
{
    PyObject *res = PyObject_CallMethodObjArgs(r->sock, sk.s_recvfrom_into, r->arg, r->arg2, NULL);
    return res != NULL ? res : would_block();
}

/* Raw sendall: send what is left of r->view. */
static PyObject *
try_sendall_raw(sockreq *r)
{
    int fd = raw_fd(r->sock);
    if (fd == -2)
        fd = ((sock_layout *)r->sock)->sock_fd;   /* made blocking meanwhile: still never block */
    Py_ssize_t n = sys_send(fd, (const char *)r->view.buf + r->n, r->view.len - r->n);
    if (n < 0)
        return sys_error(n);
    r->n += n;
    return r->n == r->view.len ? Py_NewRef(Py_None) : AGAIN;
}

/* Generic sendall, asyncio's way: send(data) once, then send(view[pos:])
 * on a memoryview of the data until all of it went. */
static PyObject *
try_sendall_generic(sockreq *r, int retry)
{
    PyObject *res, *chunk;
    Py_ssize_t n, total;
    if (!retry) {
        res = PyObject_CallMethodOneArg(r->sock, sk.s_send, r->arg);
        if (res == NULL) {
            if (would_block() == NULL)
                return NULL;
            n = 0;
        }
        else {
            n = PyNumber_AsSsize_t(res, PyExc_OverflowError);
            Py_DECREF(res);
            if (n == -1 && PyErr_Occurred())
                return NULL;
        }
        total = PyObject_Size(r->arg);
        if (total < 0)
            return NULL;
        if (n == total)
            return Py_NewRef(Py_None);
        /* a new reference, moved into the SockOp by op_wait() */
        r->arg2 = PyMemoryView_FromObject(r->arg);
        if (r->arg2 == NULL)
            return NULL;
        r->n = n;
        return AGAIN;
    }
    chunk = PySequence_GetSlice(r->arg2, r->n, PY_SSIZE_T_MAX);
    if (chunk == NULL)
        return NULL;
    res = PyObject_CallMethodOneArg(r->sock, sk.s_send, chunk);
    Py_DECREF(chunk);
    if (res == NULL)
        return would_block();
    n = PyNumber_AsSsize_t(res, PyExc_OverflowError);
    Py_DECREF(res);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    r->n += n;
    total = PyObject_Size(r->arg2);
    if (total < 0)
        return NULL;
    return r->n == total ? Py_NewRef(Py_None) : AGAIN;
}

static PyObject *
try_sendto(sockreq *r, int retry)
{
    PyObject *res;
    if (!retry) {
        res = PyObject_CallMethodObjArgs(r->sock, sk.s_sendto, r->arg, r->arg2, NULL);
    }
    else {
        res = PyObject_CallMethodObjArgs(r->sock, sk.s_sendto, r->arg, sk.zero, r->arg2, NULL);
    }
    return res != NULL ? res : would_block();
}

static PyObject *
connect_failed(int err, PyObject *address)
{
    PyObject *msg = PyUnicode_FromFormat("Connect call failed %S", address);
    if (msg == NULL)
        return NULL;
    /* OSError(errno, msg) builds the matching subclass (ConnectionRefusedError...) */
    PyObject *exc = PyObject_CallFunction(PyExc_OSError, "iO", err, msg);
    Py_DECREF(msg);
    if (exc == NULL)
        return NULL;
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
    return NULL;
}

static PyObject *
try_connect(sockreq *r, int retry)
{
    PyObject *res;
    if (!retry) {
        res = PyObject_CallMethodOneArg(r->sock, sk.s_connect, r->arg);
        return res != NULL ? res : would_block();
    }
    /* writable: the connection finished, SO_ERROR tells how */
    long err;
    int fd = raw_fd(r->sock);
    if (fd != -2) {
        int e = 0;
        socklen_t len = sizeof(e);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
            return sys_error(-errno);
        err = e;
    }
    else {
        res = PyObject_CallMethod(r->sock, "getsockopt", "ii", SOL_SOCKET, SO_ERROR);
        if (res == NULL)
            return would_block();
        err = PyLong_AsLong(res);
        Py_DECREF(res);
        if (err == -1 && PyErr_Occurred())
            return NULL;
    }
    if (err != 0)
        return connect_failed((int)err, r->arg);
    return Py_NewRef(Py_None);
}

static PyObject *
try_accept(sockreq *r)
{
    PyObject *res = PyObject_CallMethodNoArgs(r->sock, sk.s_accept);
    if (res == NULL)
        return would_block();
    /* conn, address = sock.accept() */
    PyObject *pair = PySequence_Tuple(res);
    Py_DECREF(res);
    if (pair == NULL) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_SetString(PyExc_TypeError, "cannot unpack non-iterable object");
        }
        return NULL;
    }
    if (PyTuple_GET_SIZE(pair) != 2) {
        if (PyTuple_GET_SIZE(pair) < 2)
            PyErr_Format(PyExc_ValueError, "not enough values to unpack (expected 2, got %zd)",
                         PyTuple_GET_SIZE(pair));
        else
            PyErr_SetString(PyExc_ValueError, "too many values to unpack (expected 2)");
        Py_DECREF(pair);
        return NULL;
    }
    PyObject *r2 = PyObject_CallMethodOneArg(PyTuple_GET_ITEM(pair, 0), sk.s_setblocking, Py_False);
    if (r2 == NULL) {
        Py_DECREF(pair);
        return NULL;
    }
    Py_DECREF(r2);
    return pair;
}

static PyObject *
req_attempt(sockreq *r, int retry)
{
    switch (r->kind) {
    case OP_RECV:
        return try_recv(r);
    case OP_RECV_INTO:
        return try_recv_into(r);
    case OP_RECVFROM:
        return try_recvfrom(r);
    case OP_RECVFROM_INTO:
        return try_recvfrom_into(r);
    case OP_SENDALL:
        return r->view.obj != NULL ? try_sendall_raw(r) : try_sendall_generic(r, retry);
    case OP_SENDTO:
        return try_sendto(r, retry);
    case OP_CONNECT:
        return try_connect(r, retry);
    case OP_ACCEPT:
        return try_accept(r);
    }
    PyErr_SetString(PyExc_SystemError, "bad socket operation");
    return NULL;
}

/* ---- the pending operation ------------------------------------------ */

/* 1 if the handle we registered was cancelled (replaced or removed by
 * someone else), 0 if not, -1 on error. */
static int
handle_cancelled(PyObject *h)
{
    if (h == Py_None)
        return 0;
    if (bcl_handle_check(h))
        return ((bcl_handle *)h)->cancelled != 0;
    PyObject *r = PyObject_CallMethodNoArgs(h, sk.s_cancelled);
    if (r == NULL)
        return -1;
    int t = PyObject_IsTrue(r);
    Py_DECREF(r);
    return t;
}

/* Remove our reader/writer if it is still the fd's (asyncio's
 * _sock_read_done / _sock_write_done). Returns 0 or -1. */
static int
op_unregister(bcl_sockop *op)
{
    if (!op->registered)
        return 0;
    op->registered = 0;
    PyObject *h = op->handle;
    op->handle = NULL;
    int rc = handle_cancelled(h);
    Py_DECREF(h);
    if (rc == 0) {
        PyObject *name = OP_WRITES(op->req.kind) ? sk.s_remove_writer : sk.s_remove_reader;
        PyObject *r = PyObject_CallMethodOneArg(op->loop, name, op->fdobj);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
    }
    return rc < 0 ? -1 : 0;
}

/* End the operation: unregister, release the data, and hand back the
 * Future (the caller completes it or drops it). Returns the Future (new
 * reference, NULL if it was finished already); *err is -1 if removing the
 * reader/writer raised (exception set). */
static PyObject *
op_finish(bcl_sockop *op, int *err)
{
    PyObject *fut = op->fut;
    op->fut = NULL;
    *err = op_unregister(op);
    if (op->req.view.obj != NULL)
        PyBuffer_Release(&op->req.view);
    return fut;
}

/* Readiness callback: retry the operation; when it ends, stop waiting and
 * complete the Future with its result or its error. */
static PyObject *
sockop_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    bcl_sockop *op = (bcl_sockop *)self;
    PyObject *fut, *value, *meth, *r, *rexc = NULL;
    int err;
    if (op->fut == NULL)
        Py_RETURN_NONE;
    r = PyObject_CallMethodNoArgs(op->fut, sk.s_done);
    if (r == NULL)
        return NULL;
    int done = PyObject_IsTrue(r);
    Py_DECREF(r);
    if (done < 0)
        return NULL;
    if (done) {
        /* cancelled while we waited: only stop waiting */
        fut = op_finish(op, &err);
        Py_XDECREF(fut);
        return err < 0 ? NULL : Py_NewRef(Py_None);
    }
    value = req_attempt(&op->req, 1);
    if (value == AGAIN)
        Py_RETURN_NONE;
    if (value == NULL) {
        if (bcl_io_fatal_raised())
            return NULL;   /* asyncio lets these out of the callback */
        value = bcl_fetch_exception();
        meth = sk.s_set_exception;
    }
    else {
        meth = sk.s_set_result;
    }
    fut = op_finish(op, &err);
    if (err < 0)
        rexc = bcl_fetch_exception();   /* reported after the Future is complete */
    r = PyObject_CallMethodOneArg(fut, meth, value);
    Py_DECREF(value);
    Py_DECREF(fut);
    if (rexc != NULL) {
        if (r == NULL)
            PyErr_WriteUnraisable(self);
        Py_XDECREF(r);
        bcl_io_restore(rexc);
        return NULL;
    }
    return r;
}

/* close(): stop the operation (also when the coroutine awaiting it is
 * closed); the Future's iterator is dropped. */
static PyObject *
sockop_close(bcl_sockop *op, PyObject *Py_UNUSED(ignored))
{
    int err;
    Py_CLEAR(op->iter);
    PyObject *fut = op_finish(op, &err);
    Py_XDECREF(fut);
    if (err < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* await op: the op is its own await iterator, stepping the Future's. */
static PyObject *
sockop_await(bcl_sockop *op)
{
    if (op->fut == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "socket operation is not pending");
        return NULL;
    }
    if (op->iter == NULL) {
        PyAsyncMethods *am = Py_TYPE(op->fut)->tp_as_async;
        PyObject *it = am != NULL && am->am_await != NULL ? am->am_await(op->fut)
                                                          : PyObject_CallMethodNoArgs(op->fut, sk.s_await);
        if (it == NULL)
            return NULL;
        if (!PyIter_Check(it)) {
            PyErr_Format(PyExc_TypeError, "__await__() returned non-iterator of type '%.100s'",
                         Py_TYPE(it)->tp_name);
            Py_DECREF(it);
            return NULL;
        }
        op->iter = it;
    }
    return Py_NewRef(op);
}

/* A step of the Future's iterator returned r. When the wait ended with an
 * error (not StopIteration: the result), stop the operation, as the
 * coroutine's "except BaseException: op.close(); raise" did: an error of
 * the clean-up is raised with the first one as its context. */
static PyObject *
sockop_stepped(bcl_sockop *op, PyObject *r)
{
    if (r != NULL || !PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_StopIteration))
        return r;
    PyObject *exc = bcl_fetch_exception();
    int err;
    Py_XDECREF(op_finish(op, &err));
    if (err < 0) {
        PyObject *exc2 = bcl_fetch_exception();
        PyException_SetContext(exc2, exc);
        exc = exc2;
    }
    bcl_io_restore(exc);
    return NULL;
}

static PyObject *
sockop_not_awaited(void)
{
    PyErr_SetString(PyExc_RuntimeError, "socket operation is not awaited");
    return NULL;
}

static PyObject *
sockop_iternext(bcl_sockop *op)
{
    if (op->iter == NULL)
        return sockop_not_awaited();
    return sockop_stepped(op, Py_TYPE(op->iter)->tp_iternext(op->iter));
}

static PyObject *
sockop_send(bcl_sockop *op, PyObject *value)
{
    if (op->iter == NULL)
        return sockop_not_awaited();
    return sockop_stepped(op, PyObject_CallMethodOneArg(op->iter, sk.s_send, value));
}

/* throw(exc) / throw(type[, value[, tb]]): thrown into the Future's iterator */
static PyObject *
sockop_throw(bcl_sockop *op, PyObject *const *args, Py_ssize_t nargs)
{
    if (op->iter == NULL)
        return sockop_not_awaited();
    PyObject *stack[4] = {op->iter};
    if (nargs < 1 || nargs > 3) {
        PyErr_Format(PyExc_TypeError, "throw expected 1 to 3 arguments, got %zd", nargs);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++)
        stack[i + 1] = args[i];
    return sockop_stepped(op, PyObject_VectorcallMethod(sk.s_throw, stack, (size_t)nargs + 1, NULL));
}

static PyObject *
sockop_repr(bcl_sockop *op)
{
    return PyUnicode_FromFormat("<SockOp %s fd=%R%s>", op_names[op->req.kind],
                                op->fdobj ? op->fdobj : Py_None,
                                op->fut != NULL ? " pending" : "");
}

static int
sockop_traverse(bcl_sockop *op, visitproc visit, void *arg)
{
    Py_VISIT(op->loop);
    Py_VISIT(op->fut);
    Py_VISIT(op->fdobj);
    Py_VISIT(op->handle);
    Py_VISIT(op->iter);
    Py_VISIT(op->req.sock);
    Py_VISIT(op->req.arg);
    Py_VISIT(op->req.arg2);
    Py_VISIT(op->req.view.obj);
    return 0;
}

static int
sockop_clear(bcl_sockop *op)
{
    op->registered = 0;
    if (op->req.view.obj != NULL)
        PyBuffer_Release(&op->req.view);
    Py_CLEAR(op->handle);
    Py_CLEAR(op->iter);
    Py_CLEAR(op->fut);
    Py_CLEAR(op->fdobj);
    Py_CLEAR(op->req.sock);
    Py_CLEAR(op->req.arg);
    Py_CLEAR(op->req.arg2);
    Py_CLEAR(op->loop);
    return 0;
}

static void
sockop_dealloc(bcl_sockop *op)
{
    PyObject_GC_UnTrack(op);
    sockop_clear(op);
    PyObject_GC_Del(op);
}

static PyMethodDef sockop_methods[] = {
    {"close", (PyCFunction)sockop_close, METH_NOARGS,
     "Stop the operation: remove its reader/writer, drop its Future."},
    {"send", (PyCFunction)sockop_send, METH_O, "Send a value into the Future's iterator."},
    {"throw", (PyCFunction)(void (*)(void))sockop_throw, METH_FASTCALL,
     "Throw into the Future's iterator; an error stops the operation."},
    {NULL}
};

static PyAsyncMethods sockop_async = {
    .am_await = (unaryfunc)sockop_await,
};

static PyTypeObject sockop_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "boucle._core.SockOp",
    .tp_basicsize = sizeof(bcl_sockop),
    .tp_dealloc = (destructor)sockop_dealloc,
    .tp_vectorcall_offset = offsetof(bcl_sockop, vectorcall),
    .tp_as_async = &sockop_async,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)sockop_iternext,
    .tp_repr = (reprfunc)sockop_repr,
    .tp_call = PyVectorcall_Call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "A pending socket operation of a boucle loop (internal).",
    .tp_traverse = (traverseproc)sockop_traverse,
    .tp_clear = (inquiry)sockop_clear,
    .tp_methods = sockop_methods,
};

/* ---- starting an operation ------------------------------------------ */

/* The first attempt would block: make a SockOp owning the request (a raw
 * sendall's buffer, a generic sendall's memoryview in arg2 are moved into
 * it), create its Future and register it. Returns the op, or NULL. */
static PyObject *
op_wait(PyObject *loop, sockreq *req)
{
    int steal_arg2 = req->kind == OP_SENDALL && req->view.obj == NULL;
    bcl_sockop *op = PyObject_GC_New(bcl_sockop, &sockop_type);
    if (op == NULL) {
        if (req->view.obj != NULL)
            PyBuffer_Release(&req->view);
        if (steal_arg2)
            Py_CLEAR(req->arg2);
        return NULL;
    }
    op->vectorcall = sockop_vectorcall;
    op->loop = Py_NewRef(loop);
    op->fut = op->fdobj = op->handle = op->iter = NULL;
    op->registered = 0;
    op->req = *req;
    Py_INCREF(op->req.sock);
    Py_XINCREF(op->req.arg);
    if (!steal_arg2)
        Py_XINCREF(op->req.arg2);
    req->view.obj = NULL;
    if (steal_arg2)
        req->arg2 = NULL;
    PyObject_GC_Track(op);

    op->fut = PyObject_CallMethodNoArgs(loop, sk.s_create_future);
    if (op->fut == NULL)
        goto fail;
    int fd = raw_fd(op->req.sock);
    if (fd != -2)
        op->fdobj = PyLong_FromLong(fd);
    else
        op->fdobj = PyObject_CallMethodNoArgs(op->req.sock, sk.s_fileno);
    if (op->fdobj == NULL)
        goto fail;
    /* an fd owned by a transport is refused by _add_reader (RuntimeError,
     * asyncio's _ensure_fd_no_transport message) */
    PyObject *name = OP_WRITES(op->req.kind) ? sk.s_add_writer : sk.s_add_reader;
    op->handle = PyObject_CallMethodObjArgs(loop, name, op->fdobj, (PyObject *)op, NULL);
    if (op->handle == NULL)
        goto fail;
    op->registered = 1;
    return (PyObject *)op;
fail:
    Py_DECREF(op);
    return NULL;
}

/* Try once; return the result, or a registered SockOp if it would block. */
static PyObject *
op_run(PyObject *loop, sockreq *req)
{
    PyObject *res = req_attempt(req, 0);
    if (res != AGAIN) {
        if (req->view.obj != NULL)
            PyBuffer_Release(&req->view);
        return res;
    }
    return op_wait(loop, req);
}

/* asyncio's checks, in its order: _check_ssl_socket, then (debug mode) the
 * socket must be non-blocking. */
static int
sock_checks(bcl_loop *loop, PyObject *sock)
{
    if (Py_TYPE(sock) != sk.socket_type && sk.sslsocket_type != NULL) {
        int r = PyObject_IsInstance(sock, sk.sslsocket_type);
        if (r < 0)
            return -1;
        if (r) {
            PyErr_SetString(PyExc_TypeError, "Socket cannot be of type SSLSocket");
            return -1;
        }
    }
    if (loop->debug) {
        PyObject *t = PyObject_CallMethodNoArgs(sock, sk.s_gettimeout);
        if (t == NULL)
            return -1;
        int ne = PyObject_RichCompareBool(t, sk.zero, Py_NE);
        Py_DECREF(t);
        if (ne < 0)
            return -1;
        if (ne) {
            PyErr_SetString(PyExc_ValueError, "the socket must be non-blocking");
            return -1;
        }
    }
    return 0;
}

/* Common argument handling: (loop, sock, ...) with exactly nargs. */
static bcl_loop *
parse_args(const char *fname, Py_ssize_t nargs, Py_ssize_t want, PyObject *const *args)
{
    if (nargs != want) {
        PyErr_Format(PyExc_TypeError, "%s() takes exactly %zd arguments (%zd given)", fname, want, nargs);
        return NULL;
    }
    if (!PyObject_TypeCheck(args[0], &bcl_loop_type)) {
        PyErr_Format(PyExc_TypeError, "%s() needs a boucle loop, not %.200s", fname,
                     Py_TYPE(args[0])->tp_name);
        return NULL;
    }
    return (bcl_loop *)args[0];
}

/* The start of an operation taking (loop, sock[, arg[, arg2]]), exactly
 * want arguments: check them (parse_args, then sock_checks unless this is
 * sock_connect, whose caller checked) and fill *r. Returns the loop, or
 * NULL with the error (*r untouched). */
static bcl_loop *
op_begin(const char *fname, Py_ssize_t nargs, Py_ssize_t want, PyObject *const *args,
         int kind, sockreq *r)
{
    bcl_loop *loop = parse_args(fname, nargs, want, args);
    if (loop == NULL || (kind != OP_CONNECT && sock_checks(loop, args[1]) < 0))
        return NULL;
    *r = (sockreq){.sock = args[1], .arg = want > 2 ? args[2] : NULL,
                   .arg2 = want > 3 ? args[3] : NULL, .kind = (unsigned char)kind};
    return loop;
}

static PyObject *
sock_recv(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    sockreq r;
    bcl_loop *loop = op_begin("sock_recv", nargs, 3, args, OP_RECV, &r);
    if (loop == NULL)
        return NULL;
    if (raw_fd(r.sock) != -2 && PyLong_CheckExact(r.arg)) {
        Py_ssize_t n = PyLong_AsSsize_t(r.arg);
        if (n == -1 && PyErr_Occurred())
            PyErr_Clear();          /* recv() raises its own error */
        else if (n >= 0) {
            r.n = n;
            r.raw = 1;
        }
    }
    return op_run((PyObject *)loop, &r);
}

static PyObject *
sock_recv_into(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    sockreq r;
    bcl_loop *loop = op_begin("sock_recv_into", nargs, 3, args, OP_RECV_INTO, &r);
    if (loop == NULL)
        return NULL;
    r.raw = raw_fd(r.sock) != -2;
    return op_run((PyObject *)loop, &r);
}

/* sock_recvfrom_into(loop, sock, buf, nbytes): nbytes 0 means len(buf) */
static PyObject *
sock_recvfrom_into(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    sockreq r;
    bcl_loop *loop = op_begin("sock_recvfrom_into", nargs, 4, args, OP_RECVFROM_INTO, &r);
    if (loop == NULL)
        return NULL;
    PyObject *nbytes;
    int t = PyObject_IsTrue(args[3]);
    if (t < 0)
        return NULL;
    if (t) {
        nbytes = Py_NewRef(args[3]);
    }
    else {
        Py_ssize_t len = PyObject_Size(args[2]);
        if (len < 0)
            return NULL;
        nbytes = PyLong_FromSsize_t(len);
        if (nbytes == NULL)
            return NULL;
    }
    r.arg2 = nbytes;
    PyObject *res = op_run((PyObject *)loop, &r);
    Py_DECREF(nbytes);
    return res;
}

static PyObject *
sock_sendall(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    sockreq r;
    bcl_loop *loop = op_begin("sock_sendall", nargs, 3, args, OP_SENDALL, &r);
    if (loop == NULL)
        return NULL;
    if (raw_fd(r.sock) != -2) {
        if (PyObject_GetBuffer(r.arg, &r.view, PyBUF_SIMPLE) == 0)
            r.raw = 1;
        else
            PyErr_Clear();          /* send() raises its own error */
    }
    return op_run((PyObject *)loop, &r);
}

/* The operations without a fast path: check the arguments, then try at once
 * or wait. sock_connect(loop, sock, resolved_address): the checks and the
 * name resolution were done by the caller (sock_check, _ensure_resolved). */
#define PLAIN_OP(name, want, kind)                                          \
    static PyObject *                                                       \
    name(PyObject *m, PyObject *const *args, Py_ssize_t nargs)              \
    {                                                                       \
        sockreq r;                                                          \
        bcl_loop *loop = op_begin(#name, nargs, want, args, kind, &r);      \
        return loop == NULL ? NULL : op_run((PyObject *)loop, &r);          \
    }

PLAIN_OP(sock_recvfrom, 3, OP_RECVFROM)
PLAIN_OP(sock_sendto, 4, OP_SENDTO)
PLAIN_OP(sock_connect, 3, OP_CONNECT)
PLAIN_OP(sock_accept, 2, OP_ACCEPT)

static PyObject *
sock_check(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    bcl_loop *loop = parse_args("sock_check", nargs, 2, args);
    if (loop == NULL || sock_checks(loop, args[1]) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* ---- set-up ---------------------------------------------------------- */

/* Check sock_layout against a live socket of socket_type. Returns 1 if it
 * matches, 0 if not, -1 on error. */
static int
verify_layout(PyTypeObject *socket_type)
{
    int ok = 0;
    PyObject *r = NULL, *s = PyObject_CallNoArgs((PyObject *)socket_type);
    if (s == NULL)
        return -1;
    if ((size_t)socket_type->tp_basicsize < sizeof(sock_layout))
        goto done;
    sock_layout *l = (sock_layout *)s;
    r = PyObject_CallMethodNoArgs(s, sk.s_fileno);
    if (r == NULL)
        goto error;
    long fd = PyLong_AsLong(r);
    Py_CLEAR(r);
    if (fd < 0 || l->sock_fd != fd || l->sock_family != AF_INET)
        goto done;
    if ((r = PyObject_CallMethod(s, "setblocking", "O", Py_False)) == NULL)
        goto error;
    Py_CLEAR(r);
    if (l->sock_timeout != 0)
        goto done;
    if ((r = PyObject_CallMethod(s, "settimeout", "d", 2.5)) == NULL)
        goto error;
    Py_CLEAR(r);
    if (l->sock_timeout != 2500000000LL)
        goto done;
    if ((r = PyObject_CallMethod(s, "setblocking", "O", Py_True)) == NULL)
        goto error;
    Py_CLEAR(r);
    if (l->sock_timeout >= 0)
        goto done;
    ok = 1;
done:
    r = PyObject_CallMethod(s, "close", NULL);
    if (r == NULL)
        goto error;
    Py_DECREF(r);
    if (ok && l->sock_fd != -1)
        ok = 0;
    Py_DECREF(s);
    return ok;
error:
    Py_XDECREF(r);
    Py_DECREF(s);
    return -1;
}

/* _sock_setup(socket.socket, ssl.SSLSocket or None): called once by
 * boucle._sockets at import. */
static PyObject *
sock_setup(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyType_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "_sock_setup(socket_type, sslsocket_type)");
        return NULL;
    }
    Py_XSETREF(sk.socket_type, (PyTypeObject *)Py_NewRef(args[0]));
    Py_CLEAR(sk.sslsocket_type);
    if (args[1] != Py_None)
        sk.sslsocket_type = Py_NewRef(args[1]);
    sk.layout_ok = 0;
    int ok = verify_layout(sk.socket_type);
    if (ok < 0)
        return NULL;
    sk.layout_ok = ok;
    return PyBool_FromLong(ok);
}

#define FAST(name, doc) {#name, (PyCFunction)(void (*)(void))name, METH_FASTCALL, doc}

static PyMethodDef sock_functions[] = {
    {"_sock_setup", (PyCFunction)(void (*)(void))sock_setup, METH_FASTCALL,
     "_sock_setup(socket_type, sslsocket_type) -> bool (fast path usable)"},
    FAST(sock_check, "sock_check(loop, sock): asyncio's SSLSocket and debug-mode checks."),
    FAST(sock_recv, "sock_recv(loop, sock, n) -> bytes or a pending SockOp"),
    FAST(sock_recv_into, "sock_recv_into(loop, sock, buf) -> int or a pending SockOp"),
    FAST(sock_recvfrom, "sock_recvfrom(loop, sock, bufsize) -> (bytes, address) or a pending SockOp"),
    FAST(sock_recvfrom_into, "sock_recvfrom_into(loop, sock, buf, nbytes) -> (int, address) or a pending SockOp"),
    FAST(sock_sendall, "sock_sendall(loop, sock, data) -> None or a pending SockOp"),
    FAST(sock_sendto, "sock_sendto(loop, sock, data, address) -> int or a pending SockOp"),
    FAST(sock_connect, "sock_connect(loop, sock, address) -> None or a pending SockOp"),
    FAST(sock_accept, "sock_accept(loop, sock) -> (conn, address) or a pending SockOp"),
    {NULL}
};

static int
intern(PyObject **slot, const char *s)
{
    *slot = PyUnicode_InternFromString(s);
    return *slot == NULL ? -1 : 0;
}

int
bcl_sock_init_type(PyObject *module)
{
    if (sk.zero == NULL) {
        sk.zero = PyLong_FromLong(0);
        if (sk.zero == NULL
                || intern(&sk.s_recv, "recv") < 0 || intern(&sk.s_recv_into, "recv_into") < 0
                || intern(&sk.s_recvfrom, "recvfrom") < 0
                || intern(&sk.s_recvfrom_into, "recvfrom_into") < 0
                || intern(&sk.s_send, "send") < 0 || intern(&sk.s_sendto, "sendto") < 0
                || intern(&sk.s_connect, "connect") < 0 || intern(&sk.s_accept, "accept") < 0
                || intern(&sk.s_setblocking, "setblocking") < 0
                || intern(&sk.s_gettimeout, "gettimeout") < 0 || intern(&sk.s_fileno, "fileno") < 0
                || intern(&sk.s_create_future, "create_future") < 0
                || intern(&sk.s_set_result, "set_result") < 0
                || intern(&sk.s_set_exception, "set_exception") < 0
                || intern(&sk.s_done, "done") < 0 || intern(&sk.s_cancelled, "cancelled") < 0
                || intern(&sk.s_add_reader, "_add_reader") < 0
                || intern(&sk.s_add_writer, "_add_writer") < 0
                || intern(&sk.s_remove_reader, "_remove_reader") < 0
                || intern(&sk.s_remove_writer, "_remove_writer") < 0
                || intern(&sk.s_await, "__await__") < 0
                || intern(&sk.s_throw, "throw") < 0)
            return -1;
    }
    if (PyType_Ready(&sockop_type) < 0)
        return -1;
    if (PyModule_AddObjectRef(module, "SockOp", (PyObject *)&sockop_type) < 0)
        return -1;
    return PyModule_AddFunctions(module, sock_functions);
}
