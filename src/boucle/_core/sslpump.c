/* sslpump.c - the data path of TLS connections, for boucle's subclass of
 * asyncio's SSLProtocol (src/boucle/_sslproto.py).
 *
 * asyncio's SSLProtocol (3.11+) moves every TLS record through several Python
 * frames: SSLObject.read per record (ending with an SSLWantReadError), a list
 * and b''.join of the plaintext chunks, SSLObject.write, MemoryBIO.read and
 * the flow-control bookkeeping. The two functions here do the hot part of
 * that work in C, on the C objects of the _ssl module (the _ssl._SSLSocket
 * under ssl.SSLObject, and ssl.MemoryBIO), through their ordinary methods:
 *
 *   _ssl_read(sslobj, incoming) -> (data or None, eof)
 *       decrypt everything the incoming BIO holds, straight into one bytes
 *       object (no per-record bytes, no join);
 *   _ssl_write(sslobj, outgoing, data, transport) -> count, or -1
 *       encrypt data and hand the outgoing BIO's bytes to transport.write.
 *
 * The state machine (handshake, shutdown, flow control, errors) stays in
 * asyncio's Python code; the Python side calls these only in the WRAPPED
 * state, with a plain ssl.SSLObject, and does everything else as asyncio does.
 */
#include "sslpump.h"
#include "stream.h"
#include "tlsbio.h"

/* Slack above the incoming BIO's size when sizing the plaintext buffer: the
 * SSL object may hold the head of a record (up to 16 KiB of plaintext) read
 * from the BIO earlier. The buffer grows if this is not enough. */
#define BCL_SSL_SLACK (16 * 1024 + 256)

/* The plaintext buffer is never smaller than asyncio's SSLProtocol.max_size
 * (256 KiB), the size asyncio and uvloop allocate for every SSLObject.read;
 * shrinking it afterwards is an in-place realloc. Sized to the data alone
 * (pending + slack), the buffers of large messages kept glibc growing and
 * trimming its heap: the 100 KiB streams benchmark took 8.0 page faults per
 * request (3.0 with this floor; uvloop 6.4, boucle before this file 14). */
#define BCL_SSL_MIN_CAP (256 * 1024)

/* Objects looked up once, at module init.
 * Invariant: all strong references, set by bcl_sslpump_init and never changed.
 * again_read and again_syscall are asyncio.sslproto's SSLAgainErrors
 * (ssl.SSLWantReadError, ssl.SSLSyscallError). */
static struct {
    PyObject *again_read;
    PyObject *again_syscall;
    PyObject *str_read;
    PyObject *str_write;
    PyObject *str_pending;
} bcl_ssl_g;

static int
bcl_ssl_is_again(void)
{
    return PyErr_ExceptionMatches(bcl_ssl_g.again_read)
        || PyErr_ExceptionMatches(bcl_ssl_g.again_syscall);
}

/* obj.<name> or obj.<name>() as a Py_ssize_t; -1 with an exception on error. */
static Py_ssize_t
bcl_ssl_size(PyObject *obj, int call)
{
    PyObject *r = call ? PyObject_CallMethodNoArgs(obj, bcl_ssl_g.str_pending)
                       : PyObject_GetAttr(obj, bcl_ssl_g.str_pending);
    if (r == NULL)
        return -1;
    Py_ssize_t n = PyLong_AsSsize_t(r);
    Py_DECREF(r);
    return n;
}

/* One sslobj.read(len, buffer) into buf[0:len]: the number of bytes read (0
 * at close_notify), -2 for "want more data" (SSLAgainErrors, cleared), -1
 * with an exception on any other error. */
static Py_ssize_t
bcl_ssl_read_into(PyObject *sslobj, char *buf, Py_ssize_t len)
{
    PyObject *mv = PyMemoryView_FromMemory(buf, len, PyBUF_WRITE);
    if (mv == NULL)
        return -1;
    PyObject *n = PyLong_FromSsize_t(len);
    if (n == NULL) {
        Py_DECREF(mv);
        return -1;
    }
    PyObject *args[3] = {sslobj, n, mv};
    PyObject *r = PyObject_VectorcallMethod(bcl_ssl_g.str_read, args,
                                            3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(n);
    /* the memoryview points into memory that may move: it must not outlive
     * this call (nothing keeps it; release() makes sure of it) */
    if (Py_REFCNT(mv) > 1) {
        PyObject *rel = PyObject_CallMethod(mv, "release", NULL);
        if (rel == NULL) {
            Py_DECREF(mv);
            Py_XDECREF(r);
            return -1;
        }
        Py_DECREF(rel);
    }
    Py_DECREF(mv);
    if (r == NULL)
        return bcl_ssl_is_again() ? (PyErr_Clear(), -2) : -1;
    Py_ssize_t count = PyLong_AsSsize_t(r);
    Py_DECREF(r);
    if (count < 0 && !PyErr_Occurred()) {
        PyErr_SetString(PyExc_RuntimeError, "SSL read returned a negative count");
        return -1;
    }
    return count;
}

/* _ssl_read(sslobj, incoming): read all the plaintext available, as
 * asyncio's SSLProtocol._do_read__copied does (read until SSLAgainErrors or
 * close_notify), into one bytes object. Returns (bytes or None, eof). Any
 * other error propagates and the plaintext read so far is dropped, as in
 * asyncio. The final SSLWantReadError is skipped when neither the incoming
 * BIO nor the SSL object holds any byte: SSL_read could only ask for more. */
static PyObject *
bcl_ssl_read(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "_ssl_read(sslobj, incoming)");
        return NULL;
    }
    PyObject *sslobj = args[0], *incoming = args[1];
    PyObject *data = NULL, *result = NULL;
    int eof = 0;
    Py_ssize_t off = 0;

    Py_ssize_t cap = bcl_ssl_size(incoming, 0);
    if (cap < 0)
        goto error;
    cap += BCL_SSL_SLACK;
    if (cap < BCL_SSL_MIN_CAP)
        cap = BCL_SSL_MIN_CAP;
    data = PyBytes_FromStringAndSize(NULL, cap);
    if (data == NULL)
        goto error;
    for (;;) {
        if (off == cap) {
            cap *= 2;
            if (_PyBytes_Resize(&data, cap) < 0)
                goto error;   /* data is NULL now */
        }
        Py_ssize_t n = bcl_ssl_read_into(sslobj, PyBytes_AS_STRING(data) + off, cap - off);
        if (n == -1)
            goto error;
        if (n == -2)
            break;
        if (n == 0) {
            eof = 1;
            break;
        }
        off += n;
        if (off < cap) {
            Py_ssize_t left = bcl_ssl_size(incoming, 0);
            if (left < 0)
                goto error;
            if (left == 0) {
                left = bcl_ssl_size(sslobj, 1);
                if (left < 0)
                    goto error;
                if (left == 0)
                    break;
            }
        }
    }
    if (off == 0) {
        Py_CLEAR(data);
        data = Py_NewRef(Py_None);
    }
    else if (off < cap && _PyBytes_Resize(&data, off) < 0) {
        goto error;
    }
    result = PyTuple_Pack(2, data, eof ? Py_True : Py_False);
error:
    Py_XDECREF(data);
    return result;
}

/* _ssl_write(sslobj, outgoing, data, transport): sslobj.write(data), then
 * transport.write(outgoing.read()) if the BIO holds anything (a TLSBuffer's
 * bytes go to a StreamTransport without the intermediate bytes object):
 * asyncio's _do_write for one buffer followed by the I/O of _process_outgoing.
 * Returns the count written, or -1 when sslobj.write raised SSLAgainErrors
 * (nothing written; the outgoing BIO is still flushed). Any other error of
 * sslobj.write propagates before the BIO is touched, as in asyncio. */
static PyObject *
bcl_ssl_write(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "_ssl_write(sslobj, outgoing, data, transport)");
        return NULL;
    }
    PyObject *sslobj = args[0], *outgoing = args[1], *data = args[2], *transport = args[3];
    PyObject *count = NULL, *out = NULL, *r = NULL;

    count = PyObject_CallMethodOneArg(sslobj, bcl_ssl_g.str_write, data);
    if (count == NULL) {
        if (!bcl_ssl_is_again())
            return NULL;
        PyErr_Clear();
        count = PyLong_FromLong(-1);
        if (count == NULL)
            return NULL;
    }
    const char *p;
    Py_ssize_t qlen = bcl_tlsbio_peek(outgoing, &p);
    if (qlen == 0)
        return count;
    if (qlen > 0 && bcl_stream_is_socket_transport(transport)) {
        /* boucle's queue (tlsbio.c) into a StreamTransport: sent from where
         * it lies. Taken out of the queue first, as MemoryBIO.read() would:
         * a failing write must not leave bytes to be sent again, and the
         * Python code write() may run must not see them. Nothing writes to
         * the queue before write() has sent or copied them. */
        bcl_tlsbio_consume(outgoing, qlen);
        if (bcl_stream_write_mem(transport, p, qlen) < 0)
            goto error;
        return count;
    }
    out = PyObject_CallMethodNoArgs(outgoing, bcl_ssl_g.str_read);
    if (out == NULL)
        goto error;
    Py_ssize_t len = PyObject_Length(out);
    if (len < 0)
        goto error;
    if (len > 0) {
        r = PyObject_CallMethodOneArg(transport, bcl_ssl_g.str_write, out);
        if (r == NULL)
            goto error;
        Py_DECREF(r);
    }
    Py_DECREF(out);
    return count;
error:
    Py_XDECREF(out);
    Py_DECREF(count);
    return NULL;
}

static PyMethodDef bcl_ssl_functions[] = {
    {"_ssl_read", (PyCFunction)(void (*)(void))bcl_ssl_read, METH_FASTCALL,
     "_ssl_read(sslobj, incoming) -> (data or None, eof): the plaintext available"},
    {"_ssl_write", (PyCFunction)(void (*)(void))bcl_ssl_write, METH_FASTCALL,
     "_ssl_write(sslobj, outgoing, data, transport) -> count, or -1 (want read)"},
    {NULL, NULL, 0, NULL},
};

int
bcl_sslpump_init(PyObject *module)
{
    PyObject *ssl = PyImport_ImportModule("ssl");
    if (ssl == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_ImportError))
            return -1;
        PyErr_Clear();   /* an interpreter without ssl: no TLS, no helpers */
        return 0;
    }
    bcl_ssl_g.again_read = PyObject_GetAttrString(ssl, "SSLWantReadError");
    bcl_ssl_g.again_syscall = PyObject_GetAttrString(ssl, "SSLSyscallError");
    Py_DECREF(ssl);
    if (bcl_ssl_g.again_read == NULL || bcl_ssl_g.again_syscall == NULL)
        return -1;
    bcl_ssl_g.str_read = PyUnicode_InternFromString("read");
    bcl_ssl_g.str_write = PyUnicode_InternFromString("write");
    bcl_ssl_g.str_pending = PyUnicode_InternFromString("pending");
    if (bcl_ssl_g.str_read == NULL || bcl_ssl_g.str_write == NULL || bcl_ssl_g.str_pending == NULL)
        return -1;
    return PyModule_AddFunctions(module, bcl_ssl_functions);
}
