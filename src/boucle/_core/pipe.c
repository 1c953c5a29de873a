/* pipe.c - the pipe transports: ReadPipeTransport and WritePipeTransport,
 * asyncio's _UnixReadPipeTransport and _UnixWritePipeTransport in C.
 *
 * They are the stream machinery of stream.c (object layout, write buffer,
 * flow control, interest in the loop, connection_lost tail) with
 * unix_events' rules, which differ from the socket transport's:
 *   - the file may be a pipe, a socket or (write side) a character device;
 *     it is made non-blocking;
 *   - read side: EOF closes the transport (eof_received, then
 *     connection_lost(None), both scheduled); exceptions of data_received go
 *     to the loop's exception handler (asyncio's reader handle does not
 *     catch them); fatal read errors are reported unless EIO;
 *   - write side: writes after write_eof()/close() are dropped (with a
 *     warning past a threshold); write_eof() is close(); the read end going
 *     away (EPOLLERR on the fd, watched as "readable" for FIFOs and sockets
 *     like asyncio's reader) closes the transport, with BrokenPipeError if
 *     data was still buffered; resume_writing() only once the buffer is
 *     empty.
 */
#include "stream.h"
#include "iohelp.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#define LOG_THRESHOLD_FOR_CONNLOST_WRITES 5   /* asyncio.constants */

/* fstat() the fd; 0 with *mode, or -1 with OSError. */
static int
pipe_mode(int fd, mode_t *mode)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        bcl_raise_errno(-errno);
        return -1;
    }
    *mode = st.st_mode;
    return 0;
}

static int
pipe_set_nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)) {
        bcl_raise_errno(-errno);
        return -1;
    }
    return 0;
}

/* Common __init__ of both: (loop, pipe, protocol, waiter=None, extra=None). */
static int
pipe_init(bcl_stream *self, PyObject *args, PyObject *kwds, int kind, bcl_work_fn io,
          bcl_work_fn start)
{
    static char *kwlist[] = {"loop", "pipe", "protocol", "waiter", "extra", NULL};
    PyObject *loop, *pipe, *protocol, *waiter = Py_None, *extra = Py_None;
    mode_t mode;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO|OO", kwlist,
                                     &loop, &pipe, &protocol, &waiter, &extra))
        return -1;
    if (bcl_stream_check_loop(self, loop) < 0)
        return -1;
    int fd = bcl_stream_fileno(pipe);
    if (fd < 0 || pipe_mode(fd, &mode) < 0)
        return -1;
    if (kind == BCL_STREAM_READ_PIPE) {
        if (!S_ISFIFO(mode) && !S_ISSOCK(mode) && !S_ISCHR(mode)) {
            PyErr_SetString(PyExc_ValueError, "Pipe transport is for pipes/sockets only.");
            return -1;
        }
    }
    else if (!S_ISFIFO(mode) && !S_ISSOCK(mode) && !S_ISCHR(mode)) {
        PyErr_SetString(PyExc_ValueError,
                        "Pipe transport is only for pipes, sockets and character devices");
        return -1;
    }
    if (bcl_stream_setup(self, loop, pipe, fd, protocol, extra, kind, io) < 0)
        return -1;
    self->is_socket = S_ISSOCK(mode) ? 1 : 0;
    if (PyMapping_SetItemString(self->extra, "pipe", pipe) < 0 || pipe_set_nonblocking(fd) < 0)
        goto fail;
    if (kind == BCL_STREAM_READ_PIPE) {
        self->cb_data = PyObject_GetAttrString(protocol, "data_received");
        if (self->cb_data == NULL)
            PyErr_Clear();   /* fails at the first read, as in asyncio */
    }
    /* the write side watches for the reader going away on FIFOs and sockets */
    if (kind == BCL_STREAM_WRITE_PIPE && !S_ISFIFO(mode) && !S_ISSOCK(mode))
        start = NULL;
    if (bcl_stream_schedule_start(self, start, waiter) < 0)
        goto fail;
    self->initialized = 1;
    return 0;
fail:
    bcl_stream_unsetup(self);
    return -1;
}

static PyObject *
pipe_set_protocol(PyObject *op, PyObject *protocol)
{
    bcl_stream *self = (bcl_stream *)op;
    PyObject *cb = NULL;
    if (self->kind == BCL_STREAM_READ_PIPE) {
        cb = PyObject_GetAttrString(protocol, "data_received");
        if (cb == NULL)
            PyErr_Clear();
    }
    Py_XSETREF(self->cb_data, cb);
    Py_XSETREF(self->protocol, Py_NewRef(protocol));
    Py_RETURN_NONE;
}

static PyObject *
pipe_call_connection_lost(PyObject *op, PyObject *exc)
{
    bcl_stream *self = (bcl_stream *)op;
    if (self->loop == NULL)
        Py_RETURN_NONE;   /* ran already */
    self->lost_scheduled = 1;
    if (bcl_stream_finish(self, exc == Py_None ? NULL : exc, 1) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
pipe_repr(PyObject *op)
{
    bcl_stream *self = (bcl_stream *)op;
    PyObject *name = PyObject_GetAttrString((PyObject *)Py_TYPE(op), "__name__");
    if (name == NULL)
        return NULL;
    const char *state = self->file == NULL ? " closed" : self->closing ? " closing" : "";
    PyObject *r;
    if (self->file != NULL && self->loop != NULL && !self->loop->closed) {
        uint32_t ev = self->kind == BCL_STREAM_READ_PIPE ? BCL_EV_READ : BCL_EV_WRITE;
        const char *polling = (self->interest & ev) ? "polling" : "idle";
        if (self->kind == BCL_STREAM_READ_PIPE)
            r = PyUnicode_FromFormat("<%U%s fd=%d %s>", name, state, self->fd, polling);
        else
            r = PyUnicode_FromFormat("<%U%s fd=%d %s bufsize=%zd>", name, state, self->fd,
                                     polling, self->wbuf.size);
    }
    else {
        r = PyUnicode_FromFormat("<%U%s fd=%d %s>", name, state, self->fd,
                                 self->file != NULL ? "open" : "closed");
    }
    Py_DECREF(name);
    return r;
}

/* ======================================================================
 * ReadPipeTransport
 * ====================================================================== */

/* _close(exc): stop reading, connection_lost(exc) soon. */
static int
rpipe_close(bcl_stream *self, PyObject *exc)
{
    self->closing = 1;
    bcl_stream_set_reading(self, 0);
    if (self->lost_scheduled)
        return 0;
    return bcl_stream_schedule_lost(self, exc);
}

static int
rpipe_fatal(bcl_stream *self, PyObject *exc, const char *message)
{
    int eio = 0;
    if (PyErr_GivenExceptionMatches(exc, PyExc_OSError)) {
        PyObject *no = PyObject_GetAttrString(exc, "errno");
        if (no == NULL)
            return -1;
        eio = PyLong_Check(no) && PyLong_AsLong(no) == EIO;
        Py_DECREF(no);
    }
    if (eio) {
        if (bcl_stream_log_exc(self, message, exc) < 0)
            return -1;
    }
    else if (bcl_stream_report(self, exc, message) < 0)
        return -1;
    return rpipe_close(self, exc);
}

static int
rpipe_read_ready(bcl_stream *self)
{
    int err;
    PyObject *data = bcl_stream_recv(self, &err);
    if (data == NULL) {
        if (err == -EAGAIN)
            return 0;
        if (err == 0)
            return -1;   /* MemoryError: to the handler, as from asyncio's reader */
        PyObject *exc = bcl_stream_oserror(err);
        if (exc == NULL)
            return -1;
        int r = rpipe_fatal(self, exc, "Fatal read error on pipe transport");
        Py_DECREF(exc);
        return r;
    }
    if (PyBytes_GET_SIZE(data) > 0) {
        PyObject *cb = self->cb_data, *r;
        if (cb != NULL) {
            Py_INCREF(cb);
            r = PyObject_CallOneArg(cb, data);
            Py_DECREF(cb);
        }
        else {
            r = PyObject_CallMethod(self->protocol, "data_received", "O", data);
        }
        Py_DECREF(data);
        if (r == NULL)
            return -1;   /* to the loop's exception handler */
        Py_DECREF(r);
        return 0;
    }
    Py_DECREF(data);
    if (bcl_stream_log(self, "info", "%r was closed by peer") < 0)
        return -1;
    self->closing = 1;
    bcl_stream_set_reading(self, 0);
    PyObject *eof = PyObject_GetAttrString(self->protocol, "eof_received");
    if (eof == NULL)
        return -1;
    int r = bcl_stream_call_soon(self, eof, NULL, NULL);
    Py_DECREF(eof);
    if (r < 0)
        return -1;
    return self->lost_scheduled ? 0 : bcl_stream_schedule_lost(self, NULL);
}

static int
rpipe_io_ready(PyObject *op, int mask)
{
    bcl_stream *self = (bcl_stream *)op;
    if (self->loop == NULL || !(mask & BCL_EV_READ) || !bcl_stream_read_live(self))
        return 0;
    int entered = bcl_stream_enter(self);
    int r = rpipe_read_ready(self);
    bcl_stream_leave(self, entered);
    return r;
}

/* asyncio's _read_ready(), the callback of its reader Handle. When
 * data_received() raises, asyncio reports "Exception in callback
 * _UnixReadPipeTransport._read_ready()" with that Handle in the context; the
 * loop's reporter builds the same context from this method. */
static PyObject *
rpipe_read_ready_meth(PyObject *op, PyObject *Py_UNUSED(ignored))
{
    bcl_stream *self = (bcl_stream *)op;
    if (self->loop != NULL && !self->closing && rpipe_read_ready(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static int
rpipe_start(PyObject *op, int arg)
{
    bcl_stream *self = (bcl_stream *)op;
    if (self->loop == NULL || self->closing || self->paused)
        return 0;
    return bcl_stream_set_reading(self, 1);
}

static int
rpipe_init(PyObject *op, PyObject *args, PyObject *kwds)
{
    return pipe_init((bcl_stream *)op, args, kwds, BCL_STREAM_READ_PIPE, rpipe_io_ready, rpipe_start);
}

static PyObject *
rpipe_close_meth(PyObject *op, PyObject *unused)
{
    bcl_stream *self = (bcl_stream *)op;
    if (!self->closing && rpipe_close(self, NULL) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
rpipe_close_exc(PyObject *op, PyObject *exc)
{
    if (rpipe_close((bcl_stream *)op, exc == Py_None ? NULL : exc) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
rpipe_fatal_meth(PyObject *op, PyObject *args, PyObject *kwds)
{
    PyObject *exc;
    const char *message = "Fatal error on pipe transport";
    if (bcl_io_fatal_args(args, kwds, &exc, &message) < 0 || rpipe_fatal((bcl_stream *)op, exc, message) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef rpipe_methods[] = {
    BCL_STREAM_METHODS_COMMON
    BCL_STREAM_METHODS_READING
    {"close", rpipe_close_meth, METH_NOARGS, "Stop reading; connection_lost(None) follows."},
    {"set_protocol", pipe_set_protocol, METH_O, NULL},
    {"_close", rpipe_close_exc, METH_O, NULL},
    {"_fatal_error", (PyCFunction)(void (*)(void))rpipe_fatal_meth, METH_VARARGS | METH_KEYWORDS, NULL},
    {"_call_connection_lost", pipe_call_connection_lost, METH_O, NULL},
    {"_read_ready", rpipe_read_ready_meth, METH_NOARGS, NULL},
    {NULL}
};

/* ======================================================================
 * WritePipeTransport
 * ====================================================================== */

/* _close(exc): drop the buffer, stop watching, connection_lost(exc) soon. */
static int
wpipe_close(bcl_stream *self, PyObject *exc)
{
    self->closing = 1;
    if (self->wbuf.size > 0)
        bcl_stream_set_writing(self, 0);
    bcl_stream_buffer_clear(self);
    bcl_stream_set_reading(self, 0);
    if (self->lost_scheduled || self->loop == NULL)
        return 0;
    return bcl_stream_schedule_lost(self, exc);
}

static int
wpipe_fatal(bcl_stream *self, PyObject *exc, const char *message)
{
    if (PyErr_GivenExceptionMatches(exc, PyExc_OSError)) {
        if (bcl_stream_log_exc(self, message, exc) < 0)
            return -1;
    }
    else if (bcl_stream_report(self, exc, message) < 0)
        return -1;
    return wpipe_close(self, exc);
}

static int
wpipe_fatal_errno(bcl_stream *self, int neg_errno)
{
    PyObject *exc = bcl_stream_oserror(neg_errno);
    if (exc == NULL)
        return -1;
    int r = wpipe_fatal(self, exc, "Fatal write error on pipe transport");
    Py_DECREF(exc);
    return r;
}

static int
wpipe_write_ready(bcl_stream *self)
{
    if (self->wbuf.size == 0) {
        bcl_stream_set_writing(self, 0);
        return 0;
    }
    Py_ssize_t n = bcl_stream_send(self, NULL, 0);
    if (n == -EAGAIN)
        return 0;
    if (n < 0) {
        bcl_stream_buffer_clear(self);
        self->conn_lost++;
        bcl_stream_set_writing(self, 0);
        return wpipe_fatal_errno(self, (int)n);
    }
    if (self->wbuf.size > 0)
        return 0;
    bcl_stream_set_writing(self, 0);
    if (bcl_stream_maybe_resume(self) < 0)   /* may append to the buffer */
        return -1;
    if (self->closing && self->loop != NULL && !self->lost_scheduled) {
        bcl_stream_set_reading(self, 0);
        self->lost_scheduled = 1;
        return bcl_stream_finish(self, NULL, 1);
    }
    return 0;
}

/* The read end went away (asyncio's reader of the write pipe). */
static int
wpipe_peer_closed(bcl_stream *self)
{
    if (bcl_stream_log(self, "info", "%r was closed by peer") < 0)
        return -1;
    if (self->wbuf.size == 0)
        return wpipe_close(self, NULL);
    PyObject *exc = PyObject_CallNoArgs(PyExc_BrokenPipeError);
    if (exc == NULL)
        return -1;
    int r = wpipe_close(self, exc);
    Py_DECREF(exc);
    return r;
}

static int
wpipe_io_ready(PyObject *op, int mask)
{
    bcl_stream *self = (bcl_stream *)op;
    int r = 0;
    if (self->loop == NULL)
        return 0;
    int entered = bcl_stream_enter(self);
    if ((mask & BCL_EV_READ) && self->want_read)
        r = wpipe_peer_closed(self);
    if (r == 0 && (mask & BCL_EV_WRITE) && self->want_write && self->loop != NULL)
        r = wpipe_write_ready(self);
    bcl_stream_leave(self, entered);
    return r;
}

/* asyncio's call_soon(loop._add_reader, fileno, self._read_ready) */
static int
wpipe_start(PyObject *op, int arg)
{
    bcl_stream *self = (bcl_stream *)op;
    if (self->loop == NULL || self->lost_scheduled)
        return 0;
    return bcl_stream_set_reading(self, 1);
}

static int
wpipe_init(PyObject *op, PyObject *args, PyObject *kwds)
{
    return pipe_init((bcl_stream *)op, args, kwds, BCL_STREAM_WRITE_PIPE, wpipe_io_ready, wpipe_start);
}

static PyObject *
wpipe_write(PyObject *op, PyObject *data)
{
    bcl_stream *self = (bcl_stream *)op;
    Py_buffer view;
    if (!PyBytes_Check(data) && !PyByteArray_Check(data) && !PyMemoryView_Check(data)) {
        /* asyncio asserts the type */
        PyObject *r = PyObject_Repr(data);
        if (r != NULL) {
            PyErr_SetObject(PyExc_AssertionError, r);
            Py_DECREF(r);
        }
        return NULL;
    }
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    if (view.len == 0) {
        PyBuffer_Release(&view);
        Py_RETURN_NONE;
    }
    if (self->conn_lost || self->closing || self->loop == NULL) {
        PyBuffer_Release(&view);
        if (self->conn_lost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES
                && bcl_stream_warn("pipe closed by peer or os.write(pipe, data) raised exception.") < 0)
            return NULL;
        self->conn_lost++;
        Py_RETURN_NONE;
    }
    const char *p = view.buf;
    Py_ssize_t len = view.len;
    if (self->wbuf.size == 0) {
        Py_ssize_t n = bcl_stream_send(self, p, len);
        if (n == -EAGAIN)
            n = 0;
        if (n < 0) {
            PyBuffer_Release(&view);
            self->conn_lost++;
            if (wpipe_fatal_errno(self, (int)n) < 0)
                return NULL;
            Py_RETURN_NONE;
        }
        if (n == len) {
            PyBuffer_Release(&view);
            Py_RETURN_NONE;
        }
        p += n;
        len -= n;
        if (bcl_stream_set_writing(self, 1) < 0) {
            PyBuffer_Release(&view);
            return NULL;
        }
    }
    int r = bcl_stream_buffer(self, data, p, len);
    PyBuffer_Release(&view);
    if (r < 0 || bcl_stream_maybe_pause(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
wpipe_write_eof(PyObject *op, PyObject *unused)
{
    bcl_stream *self = (bcl_stream *)op;
    if (self->closing)
        Py_RETURN_NONE;
    self->closing = 1;
    if (self->wbuf.size == 0) {
        bcl_stream_set_reading(self, 0);
        if (!self->lost_scheduled && self->loop != NULL && bcl_stream_schedule_lost(self, NULL) < 0)
            return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
wpipe_close_meth(PyObject *op, PyObject *unused)
{
    bcl_stream *self = (bcl_stream *)op;
    if (self->file != NULL && !self->closing)
        return wpipe_write_eof(op, NULL);
    Py_RETURN_NONE;
}

static PyObject *
wpipe_abort(PyObject *op, PyObject *unused)
{
    if (wpipe_close((bcl_stream *)op, NULL) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
wpipe_close_exc(PyObject *op, PyObject *exc)
{
    if (wpipe_close((bcl_stream *)op, exc == Py_None ? NULL : exc) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
wpipe_fatal_meth(PyObject *op, PyObject *args, PyObject *kwds)
{
    PyObject *exc;
    const char *message = "Fatal error on pipe transport";
    if (bcl_io_fatal_args(args, kwds, &exc, &message) < 0 || wpipe_fatal((bcl_stream *)op, exc, message) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef wpipe_methods[] = {
    BCL_STREAM_METHODS_COMMON
    BCL_STREAM_METHODS_FLOW
    {"write", wpipe_write, METH_O, "Write data (buffer what the pipe does not take now)."},
    {"writelines", bcl_stream_writelines_join, METH_O, "write(b''.join(list_of_data))"},
    {"write_eof", wpipe_write_eof, METH_NOARGS, "Close once the buffer is written."},
    {"close", wpipe_close_meth, METH_NOARGS, "Same as write_eof()."},
    {"abort", wpipe_abort, METH_NOARGS, "Close now, dropping buffered data."},
    {"set_protocol", pipe_set_protocol, METH_O, NULL},
    {"_close", wpipe_close_exc, METH_O, NULL},
    {"_fatal_error", (PyCFunction)(void (*)(void))wpipe_fatal_meth, METH_VARARGS | METH_KEYWORDS, NULL},
    {"_call_connection_lost", pipe_call_connection_lost, METH_O, NULL},
    {NULL}
};

/* ---- types ------------------------------------------------------------ */

static PyGetSetDef rpipe_getset[] = {
    BCL_STREAM_GETSET_COMMON
    BCL_GETSET("_pipe", BCL_ATTR_FILE),
    BCL_GET("_fileno", BCL_ATTR_FD),
    BCL_GET("_paused", BCL_ATTR_PAUSED),
    {NULL}
};

static PyGetSetDef wpipe_getset[] = {
    BCL_STREAM_GETSET_COMMON
    BCL_STREAM_GETSET_FLOW
    BCL_GETSET("_pipe", BCL_ATTR_FILE),
    BCL_GET("_fileno", BCL_ATTR_FD),
    {NULL}
};

static PyMemberDef pipe_members[] = {
    BCL_STREAM_MEMBERS
    {NULL}
};

static PyType_Slot rpipe_slots[] = {
    {Py_tp_new, bcl_stream_tp_new},
    {Py_tp_init, rpipe_init},
    {Py_tp_dealloc, bcl_stream_tp_dealloc},
    {Py_tp_traverse, bcl_stream_tp_traverse},
    {Py_tp_clear, bcl_stream_tp_clear},
    {Py_tp_finalize, bcl_stream_tp_finalize},
    {Py_tp_repr, pipe_repr},
    {Py_tp_methods, rpipe_methods},
    {Py_tp_getset, rpipe_getset},
    {Py_tp_members, pipe_members},
    {Py_tp_doc, "ReadPipeTransport(loop, pipe, protocol, waiter=None, extra=None)\n\n"
                "Read side of a pipe (or socket, character device), in C; behaves as\n"
                "asyncio's _UnixReadPipeTransport."},
    {0, NULL}
};

static PyType_Slot wpipe_slots[] = {
    {Py_tp_new, bcl_stream_tp_new},
    {Py_tp_init, wpipe_init},
    {Py_tp_dealloc, bcl_stream_tp_dealloc},
    {Py_tp_traverse, bcl_stream_tp_traverse},
    {Py_tp_clear, bcl_stream_tp_clear},
    {Py_tp_finalize, bcl_stream_tp_finalize},
    {Py_tp_repr, pipe_repr},
    {Py_tp_methods, wpipe_methods},
    {Py_tp_getset, wpipe_getset},
    {Py_tp_members, pipe_members},
    {Py_tp_doc, "WritePipeTransport(loop, pipe, protocol, waiter=None, extra=None)\n\n"
                "Write side of a pipe (or socket, character device), in C; behaves as\n"
                "asyncio's _UnixWritePipeTransport."},
    {0, NULL}
};

static PyType_Spec rpipe_spec = {
    .name = "boucle._core.ReadPipeTransport",
    .basicsize = sizeof(bcl_stream),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = rpipe_slots,
};

static PyType_Spec wpipe_spec = {
    .name = "boucle._core.WritePipeTransport",
    .basicsize = sizeof(bcl_stream),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = wpipe_slots,
};

int
bcl_pipe_init_types(PyObject *module)
{
    PyObject *rbase = bcl_stream_import("asyncio.transports", "ReadTransport");
    PyObject *wbase = bcl_stream_import("asyncio.transports", "_FlowControlMixin");
    PyObject *rt = NULL, *wt = NULL;
    int r = -1;
    if (rbase == NULL || wbase == NULL)
        goto done;
    rt = bcl_stream_make_type(module, &rpipe_spec, rbase);
    if (rt == NULL)
        goto done;
    wt = bcl_stream_make_type(module, &wpipe_spec, wbase);
    if (wt == NULL)
        goto done;
    r = 0;
done:
    Py_XDECREF(rbase);
    Py_XDECREF(wbase);
    Py_XDECREF(rt);
    Py_XDECREF(wt);
    return r;
}
