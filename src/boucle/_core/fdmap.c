/* fdmap.c - fd-indexed records (see fdmap.h). */
#include "fdmap.h"

#include <string.h>

bcl_fdslot *
bcl_fdmap_get(bcl_fdmap *m, int fd)
{
    if (fd < m->cap)
        return &m->slots[fd];
    int ncap = m->cap ? m->cap : 64;
    while (ncap <= fd)
        ncap *= 2;
    bcl_fdslot *ns = PyMem_Realloc(m->slots, (size_t)ncap * sizeof(*ns));
    if (ns == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    memset(ns + m->cap, 0, (size_t)(ncap - m->cap) * sizeof(*ns));
    m->slots = ns;
    m->cap = ncap;
    return &m->slots[fd];
}

void
bcl_fdmap_clear(bcl_fdmap *m)
{
    for (int fd = 0; fd < m->cap; fd++) {
        bcl_fdslot *s = &m->slots[fd];
        bcl_handle *r = s->reader, *w = s->writer;
        PyObject *o = s->owner, *f = s->fileobj;
        s->reader = s->writer = NULL;
        s->fileobj = NULL;
        s->owner = NULL;
        s->owner_fn = NULL;
        s->events = 0;
        Py_XDECREF(r);
        Py_XDECREF(w);
        Py_XDECREF(o);
        Py_XDECREF(f);
    }
}

void
bcl_fdmap_free(bcl_fdmap *m)
{
    bcl_fdmap_clear(m);
    PyMem_Free(m->slots);
    m->slots = NULL;
    m->cap = 0;
}

int
bcl_fdmap_traverse(bcl_fdmap *m, visitproc visit, void *arg)
{
    for (int fd = 0; fd < m->cap; fd++) {
        Py_VISIT(m->slots[fd].reader);
        Py_VISIT(m->slots[fd].writer);
        Py_VISIT(m->slots[fd].owner);
        Py_VISIT(m->slots[fd].fileobj);
    }
    return 0;
}
