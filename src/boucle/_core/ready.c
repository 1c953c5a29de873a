/* ready.c - ring buffer of ready work (see ready.h). */
#include "ready.h"

static int
ready_grow(bcl_ready *q)
{
    Py_ssize_t ncap = q->cap ? q->cap * 2 : 64;
    bcl_entry *nbuf = PyMem_Malloc((size_t)ncap * sizeof(bcl_entry));
    if (nbuf == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    /* unroll the ring so that head is at 0 */
    for (Py_ssize_t i = 0; i < q->len; i++)
        nbuf[i] = q->buf[(q->head + i) & (q->cap - 1)];
    PyMem_Free(q->buf);
    q->buf = nbuf;
    q->cap = ncap;
    q->head = 0;
    return 0;
}

int
bcl_ready_push(bcl_ready *q, PyObject *obj, bcl_work_fn fn, int arg)
{
    if (q->len == q->cap && ready_grow(q) < 0)
        return -1;
    bcl_entry *e = &q->buf[(q->head + q->len) & (q->cap - 1)];
    Py_INCREF(obj);
    e->obj = obj;
    e->fn = fn;
    e->arg = arg;
    q->len++;
    return 0;
}

int
bcl_ready_pop(bcl_ready *q, bcl_entry *out)
{
    if (q->len == 0)
        return 0;
    *out = q->buf[q->head];
    q->head = (q->head + 1) & (q->cap - 1);
    q->len--;
    return 1;
}

void
bcl_ready_clear(bcl_ready *q)
{
    bcl_entry e;
    /* pop first, then decref: a finalizer may push new entries */
    while (bcl_ready_pop(q, &e))
        Py_DECREF(e.obj);
}

void
bcl_ready_free(bcl_ready *q)
{
    bcl_ready_clear(q);
    PyMem_Free(q->buf);
    q->buf = NULL;
    q->cap = q->head = q->len = 0;
}

int
bcl_ready_traverse(bcl_ready *q, visitproc visit, void *arg)
{
    for (Py_ssize_t i = 0; i < q->len; i++)
        Py_VISIT(q->buf[(q->head + i) & (q->cap - 1)].obj);
    return 0;
}

PyObject *
bcl_ready_as_list(bcl_ready *q)
{
    PyObject *list = PyList_New(q->len);
    if (list == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < q->len; i++) {
        PyObject *o = q->buf[(q->head + i) & (q->cap - 1)].obj;
        Py_INCREF(o);
        PyList_SET_ITEM(list, i, o);
    }
    return list;
}
