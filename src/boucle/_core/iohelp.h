/* iohelp.h - small helpers shared by the I/O files (sock.c, stream.c,
 * pipe.c, dgram.c): re-raising a taken exception, interning a table of
 * names, parsing _fatal_error()'s arguments, importing asyncio objects,
 * the start of tp_dealloc. All static inline: no call cost, and
 * each file keeps its own static state. */
#ifndef BCL_IOHELP_H
#define BCL_IOHELP_H

#include "core.h"

/* Raise again an exception taken with bcl_fetch_exception() (steals the
 * reference); NULL: nothing to raise. */
static inline void
bcl_io_restore(PyObject *exc)
{
    if (exc == NULL)
        return;
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, PyException_GetTraceback(exc));
#endif
}

/* The raised exception is one asyncio lets out of callbacks (SystemExit,
 * KeyboardInterrupt). */
static inline int
bcl_io_fatal_raised(void)
{
    return PyErr_ExceptionMatches(PyExc_SystemExit)
        || PyErr_ExceptionMatches(PyExc_KeyboardInterrupt);
}

/* The start of a GC heap type's tp_dealloc: run tp_finalize (1: the object
 * was resurrected, stop), untrack, clear the weak references (*weakreflist
 * is read after the finalizer ran). Returns 0 to go on with the clearing. */
static inline int
bcl_io_dealloc_start(PyObject *op, PyObject **weakreflist)
{
    if (PyObject_CallFinalizerFromDealloc(op) < 0)
        return 1;   /* resurrected */
    PyObject_GC_UnTrack(op);
    if (*weakreflist != NULL)
        PyObject_ClearWeakRefs(op);
    return 0;
}

/* One interned name of a file's table: *p is set once (kept if already set). */
typedef struct {
    PyObject **p;      /* where the interned string goes (strong) */
    const char *s;     /* its text */
} bcl_io_name;

/* Intern the n names of the table. Returns 0, or -1 with an exception. */
static inline int
bcl_io_intern_all(const bcl_io_name *names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (*names[i].p == NULL && (*names[i].p = PyUnicode_InternFromString(names[i].s)) == NULL)
            return -1;
    }
    return 0;
}

/* The arguments of a stream transport's _fatal_error(exc, message=...):
 * *message keeps its default when not given. Returns 0, or -1 with an
 * exception. */
static inline int
bcl_io_fatal_args(PyObject *args, PyObject *kwds, PyObject **exc, const char **message)
{
    static char *kwlist[] = {"exc", "message", NULL};
    return PyArg_ParseTupleAndKeywords(args, kwds, "O|s:_fatal_error", kwlist, exc, message) ? 0 : -1;
}

/* module.name, importing module (new reference, NULL on error). */
static inline PyObject *
bcl_io_import(const char *module, const char *name)
{
    PyObject *m = PyImport_ImportModule(module);
    if (m == NULL)
        return NULL;
    PyObject *o = PyObject_GetAttrString(m, name);
    Py_DECREF(m);
    return o;
}

#endif
