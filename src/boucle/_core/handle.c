/* handle.c - Handle / TimerHandle objects (see handle.h).
 *
 * Handles are created for every call_soon, so they come from a small
 * freelist (disabled under AddressSanitizer so that use-after-free of a
 * handle is still caught). */
#include "handle.h"
#include "loop.h"

#if defined(__SANITIZE_ADDRESS__)
#define BCL_HANDLE_FREELIST 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BCL_HANDLE_FREELIST 0
#endif
#endif
#ifndef BCL_HANDLE_FREELIST
#define BCL_HANDLE_FREELIST 1024
#endif

/* Freelist of dead handle blocks, allocated by PyObject_GC_New (so they carry
 * a GC header); next pointer stored in the callback field. Only exact
 * Handle/TimerHandle instances go there (both have the same size). */
static bcl_handle *handle_freelist;
static int handle_freelist_len;

static uint64_t timer_seq;

bcl_handle *
bcl_handle_new(PyTypeObject *type, PyObject *loop, PyObject *callback,
               PyObject *const *args, Py_ssize_t nargs, PyObject *context)
{
    PyObject *argtuple = NULL, *ctx;
    if (nargs > 0) {
        argtuple = PyTuple_New(nargs);
        if (argtuple == NULL)
            return NULL;
        for (Py_ssize_t i = 0; i < nargs; i++) {
            Py_INCREF(args[i]);
            PyTuple_SET_ITEM(argtuple, i, args[i]);
        }
    }
    if (context == NULL || context == Py_None) {
        ctx = PyContext_CopyCurrent();
        if (ctx == NULL) {
            Py_XDECREF(argtuple);
            return NULL;
        }
    }
    else {
        Py_INCREF(context);
        ctx = context;
    }

    bcl_handle *h;
    if (handle_freelist != NULL) {
        h = handle_freelist;
        handle_freelist = (bcl_handle *)h->callback;
        handle_freelist_len--;
        PyObject_Init((PyObject *)h, type);
    }
    else {
        h = PyObject_GC_New(bcl_handle, type);
        if (h == NULL) {
            Py_XDECREF(argtuple);
            Py_DECREF(ctx);
            return NULL;
        }
    }
    Py_INCREF(callback);
    h->callback = callback;
    h->args = argtuple;
    h->context = ctx;
    Py_INCREF(loop);
    h->loop = loop;
    h->source_traceback = NULL;
    h->repr = NULL;
    h->weakreflist = NULL;
    h->when = 0.0;
    h->seq = timer_seq++;
    h->cancelled = 0;
    h->scheduled = 0;
    h->when_int = 0;
    PyObject_GC_Track(h);
    return h;
}

int
bcl_handle_run(bcl_handle *h)
{
    PyObject *cb = h->callback, *res;
    if (cb == NULL)     /* cancelled while queued: nothing to do */
        return 0;
    if (PyContext_Enter(h->context) < 0)
        return -1;
    Py_INCREF(cb);      /* the callback may cancel its own handle */
    if (h->args == NULL) {
        res = PyObject_CallNoArgs(cb);
    }
    else {
        PyObject *args = h->args;
        Py_INCREF(args);
        res = PyObject_Vectorcall(cb, &PyTuple_GET_ITEM(args, 0),
                                  PyTuple_GET_SIZE(args), NULL);
        Py_DECREF(args);
    }
    Py_DECREF(cb);
    if (PyContext_Exit(h->context) < 0) {
        Py_XDECREF(res);
        return -1;
    }
    if (res == NULL)
        return -1;
    Py_DECREF(res);
    return 0;
}

static PyObject *handle_repr(bcl_handle *h);

int
bcl_handle_cancel(bcl_handle *h, int debug)
{
    if (h->cancelled)
        return 0;
    h->cancelled = 1;
    if (debug && h->repr == NULL) {
        /* asyncio keeps the repr of a cancelled handle in debug mode */
        PyObject *r = handle_repr(h);
        if (r == NULL)
            PyErr_Clear();
        h->repr = r;
    }
    Py_CLEAR(h->callback);
    Py_CLEAR(h->args);
    return 1;
}

static int
handle_traverse(bcl_handle *h, visitproc visit, void *arg)
{
    Py_VISIT(h->callback);
    Py_VISIT(h->args);
    Py_VISIT(h->context);
    Py_VISIT(h->loop);
    Py_VISIT(h->source_traceback);
    Py_VISIT(h->repr);
    return 0;
}

static int
handle_clear(bcl_handle *h)
{
    Py_CLEAR(h->callback);
    Py_CLEAR(h->args);
    Py_CLEAR(h->context);
    Py_CLEAR(h->loop);
    Py_CLEAR(h->source_traceback);
    Py_CLEAR(h->repr);
    return 0;
}

static void
handle_dealloc(bcl_handle *h)
{
    PyObject_GC_UnTrack(h);
    if (h->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)h);
    handle_clear(h);
    PyTypeObject *tp = Py_TYPE(h);
    if ((tp == &bcl_handle_type || tp == &bcl_timer_type)
            && handle_freelist_len < BCL_HANDLE_FREELIST) {
        h->callback = (PyObject *)handle_freelist;
        handle_freelist = h;
        handle_freelist_len++;
        return;
    }
    tp->tp_free((PyObject *)h);
}

/* ---- Python-visible methods ---------------------------------------- */

static PyObject *
handle_cancel_meth(bcl_handle *h, PyObject *Py_UNUSED(ignored))
{
    int debug = 0;
    if (!h->cancelled && Py_TYPE(h) != &bcl_handle_type
            && PyObject_TypeCheck(h, &bcl_timer_type) && h->loop != NULL
            && PyObject_TypeCheck(h->loop, &bcl_loop_type)) {
        bcl_loop_timer_cancelled((bcl_loop *)h->loop, h);
    }
    if (h->loop != NULL && PyObject_TypeCheck(h->loop, &bcl_loop_type))
        debug = ((bcl_loop *)h->loop)->debug;
    bcl_handle_cancel(h, debug);
    Py_RETURN_NONE;
}

static PyObject *
handle_run_meth(bcl_handle *h, PyObject *Py_UNUSED(ignored))
{
    /* like asyncio's Handle._run: errors go to the loop's exception handler */
    if (bcl_handle_run(h) < 0) {
        if (h->loop == NULL || !PyObject_TypeCheck(h->loop, &bcl_loop_type))
            return NULL;
        if (bcl_loop_report_callback_error((bcl_loop *)h->loop, h) < 0)
            return NULL;
    }
    Py_RETURN_NONE;
}

/* repr as asyncio: <Handle [cancelled] [when=...] cb(args) at file:line [created at f:l]> */
static PyObject *
handle_repr(bcl_handle *h)
{
    if (h->repr != NULL)
        return Py_NewRef(h->repr);
    PyObject *parts = PyList_New(0), *item = NULL, *sep = NULL, *joined = NULL, *res = NULL;
    if (parts == NULL)
        return NULL;
    const char *name = Py_TYPE(h)->tp_name;
    const char *dot = strrchr(name, '.');
    item = PyUnicode_FromString(dot ? dot + 1 : name);
    if (item == NULL || PyList_Append(parts, item) < 0)
        goto done;
    Py_CLEAR(item);
    if (h->cancelled) {
        item = PyUnicode_FromString("cancelled");
        if (item == NULL || PyList_Append(parts, item) < 0)
            goto done;
        Py_CLEAR(item);
    }
    if (PyObject_TypeCheck(h, &bcl_timer_type)) {
        PyObject *w = bcl_timer_when_object(h);
        if (w == NULL)
            goto done;
        item = PyUnicode_FromFormat("when=%R", w);
        Py_DECREF(w);
        if (item == NULL || PyList_Append(parts, item) < 0)
            goto done;
        Py_CLEAR(item);
    }
    if (h->callback != NULL) {
        int debug = h->loop != NULL && PyObject_TypeCheck(h->loop, &bcl_loop_type)
                    && ((bcl_loop *)h->loop)->debug;
        PyObject *argv[3] = {h->callback, h->args ? h->args : bcl_state.empty_tuple,
                             debug ? Py_True : Py_False};
        item = PyObject_Vectorcall(bcl_state.format_cb_source, argv, 2, bcl_state.kwnames_debug);
        if (item == NULL || PyList_Append(parts, item) < 0)
            goto done;
        Py_CLEAR(item);
    }
    if (h->source_traceback != NULL && PyList_Check(h->source_traceback)
            && PyList_GET_SIZE(h->source_traceback) > 0) {
        PyObject *fr = PyList_GET_ITEM(h->source_traceback,
                                       PyList_GET_SIZE(h->source_traceback) - 1);
        PyObject *fn = PySequence_GetItem(fr, 0);
        PyObject *ln = fn ? PySequence_GetItem(fr, 1) : NULL;
        if (ln != NULL)
            item = PyUnicode_FromFormat("created at %S:%S", fn, ln);
        Py_XDECREF(fn);
        Py_XDECREF(ln);
        if (item == NULL || PyList_Append(parts, item) < 0)
            goto done;
        Py_CLEAR(item);
    }
    sep = PyUnicode_FromString(" ");
    if (sep == NULL)
        goto done;
    joined = PyUnicode_Join(sep, parts);
    if (joined == NULL)
        goto done;
    res = PyUnicode_FromFormat("<%U>", joined);
done:
    Py_XDECREF(item);
    Py_XDECREF(sep);
    Py_XDECREF(joined);
    Py_DECREF(parts);
    return res;
}

static PyObject *
handle_get_args(bcl_handle *h, void *Py_UNUSED(c))
{
    if (h->args != NULL)
        return Py_NewRef(h->args);
    if (h->callback == NULL)
        Py_RETURN_NONE;      /* asyncio sets _args to None on cancel */
    return Py_NewRef(bcl_state.empty_tuple);
}

static PyObject *
handle_get_source_tb(bcl_handle *h, void *Py_UNUSED(c))
{
    return Py_NewRef(h->source_traceback ? h->source_traceback : Py_None);
}

static int
handle_set_source_tb(bcl_handle *h, PyObject *v, void *Py_UNUSED(c))
{
    if (v == Py_None)
        v = NULL;
    Py_XINCREF(v);
    Py_XSETREF(h->source_traceback, v);
    return 0;
}

static PyObject *
handle_get_cancelled_attr(bcl_handle *h, void *Py_UNUSED(c))
{
    return PyBool_FromLong(h->cancelled);
}

static PyObject *
timer_get_scheduled(bcl_handle *h, void *Py_UNUSED(c))
{
    return PyBool_FromLong(h->scheduled);
}

PyObject *
bcl_timer_when_object(bcl_handle *h)
{
    /* asyncio stores call_at()'s when as given: an int stays an int
     * (aiohttp rounds its timeouts up to whole seconds and checks it) */
    return h->when_int ? PyLong_FromDouble(h->when) : PyFloat_FromDouble(h->when);
}

static PyObject *
timer_get_when(bcl_handle *h, void *Py_UNUSED(c))
{
    return bcl_timer_when_object(h);
}

static PyObject *
handle_get_callback(bcl_handle *h, void *Py_UNUSED(c))
{
    return Py_NewRef(h->callback ? h->callback : Py_None);
}

static PyObject *
handle_get_loop(bcl_handle *h, void *Py_UNUSED(c))
{
    return Py_NewRef(h->loop ? h->loop : Py_None);
}

static PyObject *
handle_get_context_attr(bcl_handle *h, void *Py_UNUSED(c))
{
    return Py_NewRef(h->context ? h->context : Py_None);
}

static Py_hash_t
timer_hash(bcl_handle *h)
{
    /* hash(self._when), as asyncio's TimerHandle */
    PyObject *w = bcl_timer_when_object(h);
    if (w == NULL)
        return -1;
    Py_hash_t r = PyObject_Hash(w);
    Py_DECREF(w);
    return r;
}

/* TimerHandles order by deadline like asyncio's (then by scheduling order);
 * equality compares when, callback, args and cancelled, as asyncio does. */
static PyObject *
timer_richcompare(PyObject *a, PyObject *b, int op)
{
    if (!PyObject_TypeCheck(b, &bcl_timer_type) || !PyObject_TypeCheck(a, &bcl_timer_type))
        Py_RETURN_NOTIMPLEMENTED;
    bcl_handle *x = (bcl_handle *)a, *y = (bcl_handle *)b;
    if (op == Py_EQ || op == Py_NE) {
        int eq;
        if (a == b)
            eq = 1;
        else if (x->when != y->when || x->cancelled != y->cancelled)
            eq = 0;
        else {
            PyObject *xa = x->args ? x->args : bcl_state.empty_tuple;
            PyObject *ya = y->args ? y->args : bcl_state.empty_tuple;
            int r = PyObject_RichCompareBool(x->callback ? x->callback : Py_None,
                                             y->callback ? y->callback : Py_None, Py_EQ);
            if (r < 0)
                return NULL;
            if (r) {
                r = PyObject_RichCompareBool(xa, ya, Py_EQ);
                if (r < 0)
                    return NULL;
            }
            eq = r;
        }
        return PyBool_FromLong(op == Py_EQ ? eq : !eq);
    }
    Py_RETURN_RICHCOMPARE(x->when, y->when, op);
}

/* Methods that only read a field share the attribute getter: a getter and a
 * METH_NOARGS function take the same two pointer arguments. */
#define GETTER_AS_METHOD(f) ((PyCFunction)(void (*)(void))(f))

static PyMethodDef handle_methods[] = {
    {"cancel", (PyCFunction)handle_cancel_meth, METH_NOARGS, "Cancel the callback."},
    {"cancelled", GETTER_AS_METHOD(handle_get_cancelled_attr), METH_NOARGS, "Return True if cancelled."},
    {"get_context", GETTER_AS_METHOD(handle_get_context_attr), METH_NOARGS,
     "The contextvars.Context the callback runs in."},
    {"_run", (PyCFunction)handle_run_meth, METH_NOARGS, "Run the callback now (errors go to the exception handler)."},
    {NULL}
};

static PyGetSetDef handle_getset[] = {
    {"_callback", (getter)handle_get_callback, NULL, NULL, NULL},
    {"_args", (getter)handle_get_args, NULL, NULL, NULL},
    {"_context", (getter)handle_get_context_attr, NULL, NULL, NULL},
    {"_loop", (getter)handle_get_loop, NULL, NULL, NULL},
    {"_cancelled", (getter)handle_get_cancelled_attr, NULL, NULL, NULL},
    {"_source_traceback", (getter)handle_get_source_tb, (setter)handle_set_source_tb, NULL, NULL},
    {NULL}
};

static PyMethodDef timer_methods[] = {
    {"when", GETTER_AS_METHOD(timer_get_when), METH_NOARGS,
     "The absolute time (loop.time()) the callback is scheduled for."},
    {NULL}
};

static PyGetSetDef timer_getset[] = {
    {"_when", (getter)timer_get_when, NULL, NULL, NULL},
    {"_scheduled", (getter)timer_get_scheduled, NULL, NULL, NULL},
    {NULL}
};

PyTypeObject bcl_handle_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "boucle._core.Handle",
    .tp_basicsize = sizeof(bcl_handle),
    .tp_dealloc = (destructor)handle_dealloc,
    .tp_repr = (reprfunc)handle_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Object returned by loop.call_soon() and friends.",
    .tp_traverse = (traverseproc)handle_traverse,
    .tp_clear = (inquiry)handle_clear,
    .tp_weaklistoffset = offsetof(bcl_handle, weakreflist),
    .tp_methods = handle_methods,
    .tp_getset = handle_getset,
};

PyTypeObject bcl_timer_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "boucle._core.TimerHandle",
    .tp_basicsize = sizeof(bcl_handle),
    .tp_dealloc = (destructor)handle_dealloc,
    .tp_repr = (reprfunc)handle_repr,
    .tp_hash = (hashfunc)timer_hash,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Object returned by loop.call_later() and loop.call_at().",
    .tp_traverse = (traverseproc)handle_traverse,
    .tp_clear = (inquiry)handle_clear,
    .tp_richcompare = timer_richcompare,
    .tp_weaklistoffset = offsetof(bcl_handle, weakreflist),
    .tp_methods = timer_methods,
    .tp_getset = timer_getset,
    .tp_base = &bcl_handle_type,
};

int
bcl_handle_init_types(PyObject *module)
{
    if (PyType_Ready(&bcl_handle_type) < 0 || PyType_Ready(&bcl_timer_type) < 0)
        return -1;
    if (PyModule_AddObjectRef(module, "Handle", (PyObject *)&bcl_handle_type) < 0)
        return -1;
    if (PyModule_AddObjectRef(module, "TimerHandle", (PyObject *)&bcl_timer_type) < 0)
        return -1;
    return 0;
}
