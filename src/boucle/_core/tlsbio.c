/* tlsbio.c - the ciphertext side of boucle's TLS connections, without
 * OpenSSL's memory BIO.
 *
 * asyncio's SSLProtocol drives an ssl.SSLObject through two ssl.MemoryBIOs.
 * Every byte crossing a memory BIO is written twice (BUF_MEM_grow_clean
 * zeroes the room before copying into it) and copied once more into a new
 * bytes object on the way out; with 100 KiB messages those passes, and the
 * page faults of the large short-lived buffers, are a fifth of a TLS
 * server's CPU (bench/TLS.md). This file replaces the two BIOs of a fresh
 * SSLObject with queues of its own:
 *
 *   _tls_bios(sslsocket) -> (incoming, outgoing) TLSBuffers, or None
 *
 * A TLSBuffer is a byte queue with ssl.MemoryBIO's Python interface (write,
 * read, pending, eof, write_eof), so asyncio's SSLProtocol code runs on it
 * unchanged, and on its other side an OpenSSL BIO of boucle's own method:
 * SSL_read takes ciphertext from the incoming queue, SSL_write appends
 * records to the outgoing one. get_buffer()/commit() let a transport recv()
 * straight into the incoming queue, and sslpump.c sends the outgoing
 * queue's bytes from where they lie (bcl_tlsbio_peek/consume).
 *
 * OpenSSL is reached through the library the interpreter's _ssl module has
 * already loaded (dlopen of _ssl's own file, then dlsym), so boucle has no
 * build or link dependency on it; the SSL* of an _ssl._SSLSocket is the
 * second field after the object header in CPython 3.10 to 3.14 (later
 * versions are left alone until checked). The pointer is checked before
 * the BIOs change: _ssl stores the Python object as the SSL's app data
 * (ex_data index 0), and the BIOs being replaced must be empty memory BIOs.
 * Anything unexpected (a missing symbol, a statically linked _ssl, a
 * free-threaded build) makes _tls_bios answer None: asyncio's memory BIOs
 * stay, and only this optimisation is lost.
 */
#include "tlsbio.h"

#include <dlfcn.h>
#include <limits.h>
#include <string.h>

/* OpenSSL's ABI constants (openssl/bio.h; unchanged since 1.1.0). */
#define OSSL_BIO_TYPE_MEM          (1 | 0x0400)
#define OSSL_BIO_TYPE_SOURCE_SINK  0x0400
#define OSSL_BIO_FLAGS_READ        0x01
#define OSSL_BIO_FLAGS_RWS         0x07
#define OSSL_BIO_FLAGS_SHOULD_RETRY 0x08
#define OSSL_BIO_CTRL_RESET        1
#define OSSL_BIO_CTRL_EOF          2
#define OSSL_BIO_CTRL_PENDING      10
#define OSSL_BIO_CTRL_FLUSH        11
#define OSSL_BIO_CTRL_DUP          12
#define OSSL_BIO_CTRL_WPENDING     13

/* asyncio's SSLProtocol.max_size: get_buffer() never offers more. */
#define TLSQ_MAX_READ (256 * 1024)
/* First allocation of a queue. */
#define TLSQ_MIN_CAP (64 * 1024)

typedef struct ossl_bio BIO;          /* opaque */
typedef struct ossl_bio_method BIO_METHOD;
typedef struct ossl_ssl SSL;

/* The OpenSSL functions used, resolved once by ossl_load().
 * Invariant: ready is 1 only when every pointer is set and method exists. */
static struct {
    int tried, ready;
    void *(*SSL_get_ex_data)(const SSL *, int);
    BIO *(*SSL_get_rbio)(const SSL *);
    BIO *(*SSL_get_wbio)(const SSL *);
    void (*SSL_set0_rbio)(SSL *, BIO *);
    void (*SSL_set0_wbio)(SSL *, BIO *);
    int (*BIO_get_new_index)(void);
    BIO_METHOD *(*BIO_meth_new)(int, const char *);
    int (*BIO_meth_set_write)(BIO_METHOD *, int (*)(BIO *, const char *, int));
    int (*BIO_meth_set_read)(BIO_METHOD *, int (*)(BIO *, char *, int));
    int (*BIO_meth_set_ctrl)(BIO_METHOD *, long (*)(BIO *, int, long, void *));
    int (*BIO_meth_set_destroy)(BIO_METHOD *, int (*)(BIO *));
    BIO *(*BIO_new)(const BIO_METHOD *);
    int (*BIO_free)(BIO *);
    void (*BIO_set_data)(BIO *, void *);
    void *(*BIO_get_data)(BIO *);
    void (*BIO_set_init)(BIO *, int);
    void (*BIO_set_flags)(BIO *, int);
    void (*BIO_clear_flags)(BIO *, int);
    int (*BIO_method_type)(const BIO *);
    long (*BIO_ctrl)(BIO *, int, long, void *);
    BIO_METHOD *method;
    PyTypeObject *sslsocket_type;     /* _ssl._SSLSocket (strong) */
} ossl;

/* The head of CPython's PySSLSocket (Modules/_ssl.c), unchanged from 3.10
 * on; tls_bios() checks the SSL* it finds against _ssl's app data. */
typedef struct {
    PyObject_HEAD
    PyObject *socket_weakref;
    SSL *ssl;
} tls_pysslsocket_head;

/* One direction's ciphertext: the bytes [head, tail) of buf.
 * Invariants: head <= tail <= cap; buf is NULL iff cap == 0; refs counts
 * the owners still holding it (the TLSBuffer, the OpenSSL BIO), the last
 * one frees it; while exports > 0 (a memoryview from get_buffer points
 * into the room at tail) buf does not move and nothing is appended; lent
 * is the size of the room the last get_buffer() offered, reset by any
 * other change of tail (commit() accepts at most lent bytes); eof:
 * write_eof() was called. OpenSSL's callbacks touch it without the GIL
 * (SSL_read/SSL_write release it), Python with it: one thread at a time,
 * as with ssl.MemoryBIO. */
typedef struct {
    char *buf;
    size_t head, tail, cap, lent;
    int exports;
    int refs;
    int eof;
    int offering;   /* inside get_buffer(): the only time buf may be exported */
} tlsq;

/* The Python side of a queue. Invariant: q is set and owned (one ref). */
typedef struct {
    PyObject_HEAD
    tlsq *q;
} tls_buffer;

static PyTypeObject tls_buffer_type;

/* buf + off, without arithmetic on a NULL buf (cap == 0, off == 0). */
static inline char *
tlsq_at(tlsq *q, size_t off)
{
    return q->buf != NULL ? q->buf + off : NULL;
}

static void
tlsq_unref(tlsq *q)
{
    if (--q->refs == 0) {
        PyMem_RawFree(q->buf);
        PyMem_RawFree(q);
    }
}

/* Forget the bytes already read, when nothing points into buf. */
static void
tlsq_rewind(tlsq *q)
{
    if (q->head == q->tail && q->exports == 0 && q->lent == 0)
        q->head = q->tail = 0;
}

/* Room for n more bytes at tail: 0, or -1 (no memory, or buf is exported). */
static int
tlsq_reserve(tlsq *q, size_t n)
{
    if (q->cap - q->tail >= n)
        return 0;
    if (q->exports > 0)
        return -1;
    size_t used = q->tail - q->head;
    if (q->head > 0) {
        memmove(q->buf, q->buf + q->head, used);
        q->head = 0;
        q->tail = used;
        q->lent = 0;
        if (q->cap - used >= n)
            return 0;
    }
    size_t cap = q->cap ? q->cap : TLSQ_MIN_CAP;
    while (cap - used < n) {
        if (cap > (size_t)PY_SSIZE_T_MAX / 2)
            return -1;
        cap *= 2;
    }
    char *buf = PyMem_RawRealloc(q->buf, cap);
    if (buf == NULL)
        return -1;
    q->buf = buf;
    q->cap = cap;
    q->lent = 0;
    return 0;
}

/* ---- the OpenSSL side (no GIL) --------------------------------------- */

static int
tlsq_bio_write(BIO *b, const char *data, int len)
{
    tlsq *q = ossl.BIO_get_data(b);
    ossl.BIO_clear_flags(b, OSSL_BIO_FLAGS_RWS | OSSL_BIO_FLAGS_SHOULD_RETRY);
    if (len <= 0)
        return 0;
    if (q->exports > 0 || tlsq_reserve(q, (size_t)len) < 0)
        return -1;
    memcpy(q->buf + q->tail, data, (size_t)len);
    q->tail += (size_t)len;
    q->lent = 0;
    return len;
}

static int
tlsq_bio_read(BIO *b, char *out, int len)
{
    tlsq *q = ossl.BIO_get_data(b);
    ossl.BIO_clear_flags(b, OSSL_BIO_FLAGS_RWS | OSSL_BIO_FLAGS_SHOULD_RETRY);
    size_t avail = q->tail - q->head;
    if (avail == 0) {
        if (q->eof)
            return 0;
        /* as a memory BIO: "no data yet, retry" until write_eof() */
        ossl.BIO_set_flags(b, OSSL_BIO_FLAGS_READ | OSSL_BIO_FLAGS_SHOULD_RETRY);
        return -1;
    }
    if (len <= 0)
        return 0;
    size_t n = avail < (size_t)len ? avail : (size_t)len;
    memcpy(out, q->buf + q->head, n);
    q->head += n;
    tlsq_rewind(q);
    return (int)n;
}

static long
tlsq_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    tlsq *q = ossl.BIO_get_data(b);
    if (q == NULL)
        return 0;
    switch (cmd) {
    case OSSL_BIO_CTRL_PENDING:
        return (long)(q->tail - q->head);
    case OSSL_BIO_CTRL_EOF:
        return q->eof && q->tail == q->head;
    case OSSL_BIO_CTRL_RESET:
        q->head = q->tail;
        tlsq_rewind(q);
        return 1;
    case OSSL_BIO_CTRL_FLUSH:
    case OSSL_BIO_CTRL_DUP:
        return 1;
    case OSSL_BIO_CTRL_WPENDING:   /* nothing is held back for writing */
    default:                       /* the rest: not supported, as a memory BIO */
        return 0;
    }
}

static int
tlsq_bio_destroy(BIO *b)
{
    tlsq *q = ossl.BIO_get_data(b);
    if (q != NULL) {
        ossl.BIO_set_data(b, NULL);
        tlsq_unref(q);   /* SSL_free runs with the GIL: from the SSLObject's dealloc */
    }
    return 1;
}

/* Resolve OpenSSL's functions from the library _ssl loaded. 1 when usable,
 * 0 when not (no exception), -1 with an exception (memory). */
static int
ossl_load(void)
{
    if (ossl.tried)
        return ossl.ready;
    ossl.tried = 1;
#if defined(Py_GIL_DISABLED) || PY_VERSION_HEX >= 0x030F0000
    /* free-threaded: the queues' reference counts rely on the GIL around
     * SSL_free; 3.15+: PySSLSocket's layout not checked yet */
    return 0;
#else
    PyObject *mod = PyImport_ImportModule("_ssl");
    if (mod == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_ImportError)) {
            ossl.tried = 0;   /* e.g. KeyboardInterrupt: try again next time */
            return -1;
        }
        PyErr_Clear();
        return 0;
    }
    PyObject *file = PyObject_GetAttrString(mod, "__file__");
    PyObject *type = PyObject_GetAttrString(mod, "_SSLSocket");
    Py_DECREF(mod);
    PyObject *path = NULL;
    if (file == NULL || type == NULL || !PyType_Check(type)
            || !PyUnicode_FSConverter(file, &path)) {
        PyErr_Clear();   /* a built-in _ssl: its symbols are not reachable */
        Py_XDECREF(file);
        Py_XDECREF(type);
        return 0;
    }
    Py_DECREF(file);
    void *lib = dlopen(PyBytes_AS_STRING(path), RTLD_NOW | RTLD_NOLOAD);
    Py_DECREF(path);
    if (lib == NULL) {
        Py_DECREF(type);
        return 0;
    }
#define OSSL_SYM(name) \
    if ((*(void **)&ossl.name = dlsym(lib, #name)) == NULL) goto missing
    OSSL_SYM(SSL_get_ex_data);
    OSSL_SYM(SSL_get_rbio);
    OSSL_SYM(SSL_get_wbio);
    OSSL_SYM(SSL_set0_rbio);
    OSSL_SYM(SSL_set0_wbio);
    OSSL_SYM(BIO_get_new_index);
    OSSL_SYM(BIO_meth_new);
    OSSL_SYM(BIO_meth_set_write);
    OSSL_SYM(BIO_meth_set_read);
    OSSL_SYM(BIO_meth_set_ctrl);
    OSSL_SYM(BIO_meth_set_destroy);
    OSSL_SYM(BIO_new);
    OSSL_SYM(BIO_free);
    OSSL_SYM(BIO_set_data);
    OSSL_SYM(BIO_get_data);
    OSSL_SYM(BIO_set_init);
    OSSL_SYM(BIO_set_flags);
    OSSL_SYM(BIO_clear_flags);
    OSSL_SYM(BIO_method_type);
    OSSL_SYM(BIO_ctrl);
#undef OSSL_SYM
    /* the handle stays open: the functions are used for the process' life */
    int index = ossl.BIO_get_new_index();
    if (index < 0)
        goto missing;
    ossl.method = ossl.BIO_meth_new(index | OSSL_BIO_TYPE_SOURCE_SINK, "boucle TLS queue");
    if (ossl.method == NULL
            || !ossl.BIO_meth_set_write(ossl.method, tlsq_bio_write)
            || !ossl.BIO_meth_set_read(ossl.method, tlsq_bio_read)
            || !ossl.BIO_meth_set_ctrl(ossl.method, tlsq_bio_ctrl)
            || !ossl.BIO_meth_set_destroy(ossl.method, tlsq_bio_destroy))
        goto missing;
    ossl.sslsocket_type = (PyTypeObject *)type;
    ossl.ready = 1;
    return 1;
missing:
    dlclose(lib);
    Py_DECREF(type);
    return 0;
#endif
}

/* ---- TLSBuffer (the Python side, with the GIL) ----------------------- */

static tls_buffer *
tls_buffer_new(void)
{
    tlsq *q = PyMem_RawCalloc(1, sizeof(tlsq));
    if (q == NULL)
        return (tls_buffer *)PyErr_NoMemory();
    q->refs = 1;
    tls_buffer *self = PyObject_New(tls_buffer, &tls_buffer_type);
    if (self == NULL) {
        PyMem_RawFree(q);
        return NULL;
    }
    self->q = q;
    return self;
}

static void
tls_buffer_dealloc(PyObject *op)
{
    tlsq_unref(((tls_buffer *)op)->q);
    PyObject_Free(op);
}

static PyObject *
tls_buffer_write(PyObject *op, PyObject *data)
{
    tlsq *q = ((tls_buffer *)op)->q;
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *r = NULL;
    if (view.len > INT_MAX) {
        PyErr_Format(PyExc_OverflowError, "string longer than %d bytes", INT_MAX);
    }
    else if (q->eof) {
        PyObject *ssl = PyImport_ImportModule("ssl");
        PyObject *err = ssl ? PyObject_GetAttrString(ssl, "SSLError") : NULL;
        if (err != NULL)
            PyErr_SetString(err, "cannot write() after write_eof()");
        Py_XDECREF(err);
        Py_XDECREF(ssl);
    }
    else if (q->exports > 0) {
        /* the exported view is the room this data would go to */
        PyErr_SetString(PyExc_BufferError,
                        "Existing exports of data: object cannot be re-sized");
    }
    else if (tlsq_reserve(q, (size_t)view.len) < 0) {
        PyErr_NoMemory();
    }
    else {
        if (view.len > 0)
            memcpy(q->buf + q->tail, view.buf, (size_t)view.len);
        q->tail += (size_t)view.len;
        q->lent = 0;
        r = PyLong_FromSsize_t(view.len);
    }
    PyBuffer_Release(&view);
    return r;
}

static PyObject *
tls_buffer_read(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    tlsq *q = ((tls_buffer *)op)->q;
    Py_ssize_t size = -1;
    if (nargs > 1) {
        PyErr_Format(PyExc_TypeError, "read expected at most 1 argument, got %zd", nargs);
        return NULL;
    }
    if (nargs == 1) {
        /* MemoryBIO.read takes a C int */
        size = PyNumber_AsSsize_t(args[0], PyExc_OverflowError);
        if (size == -1 && PyErr_Occurred())
            return NULL;
        if (size > INT_MAX || size < INT_MIN) {
            PyErr_SetString(PyExc_OverflowError, "Python int too large to convert to C int");
            return NULL;
        }
    }
    size_t avail = q->tail - q->head;
    if (avail > INT_MAX)
        avail = INT_MAX;
    size_t n = (size >= 0 && (size_t)size < avail) ? (size_t)size : avail;
    PyObject *r = PyBytes_FromStringAndSize(tlsq_at(q, q->head), (Py_ssize_t)n);
    if (r != NULL) {
        q->head += n;
        tlsq_rewind(q);
    }
    return r;
}

static PyObject *
tls_buffer_write_eof(PyObject *op, PyObject *unused)
{
    ((tls_buffer *)op)->q->eof = 1;
    Py_RETURN_NONE;
}

/* get_buffer(n): a writable memoryview of the free room at the tail, for a
 * transport to recv() into; commit(count) then makes count of them data.
 * The room is at least min(n, 256 KiB) bytes (256 KiB when n <= 0) unless
 * an earlier view is still alive (then whatever room is left; BufferError
 * when there is none). */
static PyObject *
tls_buffer_get_buffer(PyObject *op, PyObject *arg)
{
    tlsq *q = ((tls_buffer *)op)->q;
    Py_ssize_t want = PyNumber_AsSsize_t(arg, PyExc_OverflowError);
    if (want == -1 && PyErr_Occurred())
        return NULL;
    if (want <= 0 || want > TLSQ_MAX_READ)
        want = TLSQ_MAX_READ;
    if (q->exports == 0 && tlsq_reserve(q, (size_t)want) < 0)
        return PyErr_NoMemory();
    if (q->cap == q->tail) {
        PyErr_SetString(PyExc_BufferError, "TLS buffer still exported: no room");
        return NULL;
    }
    q->offering = 1;
    PyObject *mv = PyMemoryView_FromObject(op);
    q->offering = 0;
    if (mv != NULL)
        q->lent = q->cap - q->tail;
    return mv;
}

static PyObject *
tls_buffer_commit(PyObject *op, PyObject *arg)
{
    tlsq *q = ((tls_buffer *)op)->q;
    Py_ssize_t n = PyNumber_AsSsize_t(arg, PyExc_OverflowError);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    if (n < 0 || (size_t)n > q->lent) {
        PyErr_Format(PyExc_ValueError,
                     "commit(%zd): the last get_buffer() offered %zu bytes",
                     n, q->lent);
        return NULL;
    }
    q->tail += (size_t)n;
    q->lent = 0;
    Py_RETURN_NONE;
}

static PyObject *
tls_buffer_pending(PyObject *op, void *closure)
{
    tlsq *q = ((tls_buffer *)op)->q;
    return PyLong_FromSize_t(q->tail - q->head);
}

static PyObject *
tls_buffer_eof(PyObject *op, void *closure)
{
    tlsq *q = ((tls_buffer *)op)->q;
    return PyBool_FromLong(q->eof && q->tail == q->head);
}

/* Only get_buffer() exports the room (as ssl.MemoryBIO, a TLSBuffer is not
 * a bytes-like object otherwise: the room holds stale ciphertext). */
static int
tls_buffer_getbuffer(PyObject *op, Py_buffer *view, int flags)
{
    tlsq *q = ((tls_buffer *)op)->q;
    if (!q->offering) {
        PyErr_SetString(PyExc_TypeError, "a TLSBuffer is not a bytes-like object");
        view->obj = NULL;
        return -1;
    }
    if (PyBuffer_FillInfo(view, op, tlsq_at(q, q->tail), (Py_ssize_t)(q->cap - q->tail),
                          0, flags) < 0)
        return -1;
    q->exports++;
    return 0;
}

static void
tls_buffer_releasebuffer(PyObject *op, Py_buffer *view)
{
    ((tls_buffer *)op)->q->exports--;
}

Py_ssize_t
bcl_tlsbio_peek(PyObject *obj, const char **p)
{
    if (Py_TYPE(obj) != &tls_buffer_type)
        return -1;
    tlsq *q = ((tls_buffer *)obj)->q;
    *p = tlsq_at(q, q->head);
    return (Py_ssize_t)(q->tail - q->head);
}

void
bcl_tlsbio_consume(PyObject *obj, Py_ssize_t n)
{
    tlsq *q = ((tls_buffer *)obj)->q;
    size_t avail = q->tail - q->head;
    q->head += (size_t)n < avail ? (size_t)n : avail;
    tlsq_rewind(q);
}

static PyMethodDef tls_buffer_methods[] = {
    {"write", tls_buffer_write, METH_O, "write(data) -> count, as ssl.MemoryBIO.write"},
    {"read", (PyCFunction)(void (*)(void))tls_buffer_read, METH_FASTCALL,
     "read(size=-1) -> bytes, as ssl.MemoryBIO.read"},
    {"write_eof", tls_buffer_write_eof, METH_NOARGS, "as ssl.MemoryBIO.write_eof"},
    {"get_buffer", tls_buffer_get_buffer, METH_O,
     "get_buffer(n) -> memoryview of free room at the end, for commit()"},
    {"commit", tls_buffer_commit, METH_O,
     "commit(count): count bytes written into the last get_buffer() are data"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef tls_buffer_getset[] = {
    {"pending", tls_buffer_pending, NULL, "bytes waiting to be read", NULL},
    {"eof", tls_buffer_eof, NULL, "write_eof() was called and all was read", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyBufferProcs tls_buffer_as_buffer = {
    .bf_getbuffer = tls_buffer_getbuffer,
    .bf_releasebuffer = tls_buffer_releasebuffer,
};

static PyTypeObject tls_buffer_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "boucle._core.TLSBuffer",
    .tp_basicsize = sizeof(tls_buffer),
    .tp_dealloc = tls_buffer_dealloc,
    .tp_as_buffer = &tls_buffer_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One direction of a TLS connection's ciphertext: ssl.MemoryBIO's "
              "interface over a queue an OpenSSL BIO of boucle's shares.",
    .tp_methods = tls_buffer_methods,
    .tp_getset = tls_buffer_getset,
};

/* Attach a new queue to a new BIO of our method; NULL when OpenSSL fails. */
static BIO *
tls_bio_for(tls_buffer *buf)
{
    BIO *b = ossl.BIO_new(ossl.method);
    if (b == NULL)
        return NULL;
    buf->q->refs++;
    ossl.BIO_set_data(b, buf->q);
    ossl.BIO_set_init(b, 1);
    return b;
}

/* An empty memory BIO: what a fresh SSLObject has on each side. */
static int
tls_is_empty_mem_bio(BIO *b)
{
    return b != NULL && ossl.BIO_method_type(b) == OSSL_BIO_TYPE_MEM
        && ossl.BIO_ctrl(b, OSSL_BIO_CTRL_PENDING, 0, NULL) == 0;
}

static PyObject *
tls_bios(PyObject *mod, PyObject *sslsock)
{
    tls_buffer *in = NULL, *out = NULL;
    BIO *rb = NULL, *wb = NULL;
    int r = ossl_load();
    if (r < 0)
        return NULL;
    if (r == 0 || Py_TYPE(sslsock) != ossl.sslsocket_type)
        Py_RETURN_NONE;
    SSL *ssl = ((tls_pysslsocket_head *)sslsock)->ssl;
    if (ssl == NULL || ossl.SSL_get_ex_data(ssl, 0) != (void *)sslsock
            || !tls_is_empty_mem_bio(ossl.SSL_get_rbio(ssl))
            || !tls_is_empty_mem_bio(ossl.SSL_get_wbio(ssl)))
        Py_RETURN_NONE;
    in = tls_buffer_new();
    out = in ? tls_buffer_new() : NULL;
    if (out == NULL)
        goto error;
    rb = tls_bio_for(in);
    wb = rb ? tls_bio_for(out) : NULL;
    if (wb == NULL) {
        PyErr_SetString(PyExc_MemoryError, "cannot create an OpenSSL BIO");
        goto error;
    }
    PyObject *result = PyTuple_Pack(2, (PyObject *)in, (PyObject *)out);
    if (result == NULL)
        goto error;
    /* the SSL takes the BIOs and drops its references to the memory BIOs
     * (the ssl.MemoryBIO objects keep theirs) */
    ossl.SSL_set0_rbio(ssl, rb);
    ossl.SSL_set0_wbio(ssl, wb);
    Py_DECREF(in);
    Py_DECREF(out);
    return result;
error:
    if (rb != NULL)
        ossl.BIO_free(rb);
    if (wb != NULL)
        ossl.BIO_free(wb);
    Py_XDECREF(in);
    Py_XDECREF(out);
    return NULL;
}

static PyMethodDef tlsbio_functions[] = {
    {"_tls_bios", tls_bios, METH_O,
     "_tls_bios(sslsocket) -> (incoming, outgoing) TLSBuffers replacing a fresh "
     "SSLObject's memory BIOs, or None when that cannot be done"},
    {NULL, NULL, 0, NULL},
};

int
bcl_tlsbio_init(PyObject *module)
{
    if (PyType_Ready(&tls_buffer_type) < 0
            || PyModule_AddObjectRef(module, "TLSBuffer", (PyObject *)&tls_buffer_type) < 0)
        return -1;
    return PyModule_AddFunctions(module, tlsbio_functions);
}
