/* timers.c - array-based binary heap of TimerHandles (see timers.h). */
#include "timers.h"

#define BCL_MIN_SCHEDULED_FOR_COMPACTION 100

static inline int
timer_less(const bcl_handle *a, const bcl_handle *b)
{
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void
sift_up(bcl_handle **heap, Py_ssize_t i)
{
    bcl_handle *x = heap[i];
    while (i > 0) {
        Py_ssize_t parent = (i - 1) >> 1;
        if (!timer_less(x, heap[parent]))
            break;
        heap[i] = heap[parent];
        i = parent;
    }
    heap[i] = x;
}

static void
sift_down(bcl_handle **heap, Py_ssize_t len, Py_ssize_t i)
{
    bcl_handle *x = heap[i];
    for (;;) {
        Py_ssize_t child = 2 * i + 1;
        if (child >= len)
            break;
        if (child + 1 < len && timer_less(heap[child + 1], heap[child]))
            child++;
        if (!timer_less(heap[child], x))
            break;
        heap[i] = heap[child];
        i = child;
    }
    heap[i] = x;
}

int
bcl_timers_push(bcl_timers *t, bcl_handle *h)
{
    if (t->len == t->cap) {
        Py_ssize_t ncap = t->cap ? t->cap * 2 : 64;
        bcl_handle **nh = PyMem_Realloc(t->heap, (size_t)ncap * sizeof(*nh));
        if (nh == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        t->heap = nh;
        t->cap = ncap;
    }
    Py_INCREF(h);
    h->scheduled = 1;
    t->heap[t->len] = h;
    sift_up(t->heap, t->len);
    t->len++;
    return 0;
}

/* Remove the top element and return it (reference moves to the caller). */
static bcl_handle *
remove_top(bcl_timers *t)
{
    bcl_handle *top = t->heap[0];
    t->len--;
    if (t->len > 0) {
        t->heap[0] = t->heap[t->len];
        sift_down(t->heap, t->len, 0);
    }
    top->scheduled = 0;
    if (top->cancelled)
        t->ncancelled--;
    return top;
}

bcl_handle *
bcl_timers_peek(bcl_timers *t)
{
    while (t->len > 0 && t->heap[0]->cancelled) {
        bcl_handle *dead = remove_top(t);
        Py_DECREF(dead);
    }
    return t->len > 0 ? t->heap[0] : NULL;
}

bcl_handle *
bcl_timers_pop(bcl_timers *t)
{
    if (t->len == 0)
        return NULL;
    return remove_top(t);
}

void
bcl_timers_compact(bcl_timers *t)
{
    if (t->len <= BCL_MIN_SCHEDULED_FOR_COMPACTION || t->ncancelled * 2 <= t->len)
        return;
    /* Collect the dead ones first and decref them only once the heap is
     * consistent again: a finalizer run by a decref may schedule a timer. */
    bcl_handle **dead = PyMem_Malloc((size_t)t->ncancelled * sizeof(*dead));
    if (dead == NULL)
        return;     /* not fatal: they are dropped lazily instead */
    Py_ssize_t keep = 0, ndead = 0;
    for (Py_ssize_t i = 0; i < t->len; i++) {
        bcl_handle *h = t->heap[i];
        if (h->cancelled && ndead < t->ncancelled) {
            h->scheduled = 0;
            dead[ndead++] = h;
        }
        else {
            t->heap[keep++] = h;
        }
    }
    t->len = keep;
    t->ncancelled -= ndead;
    for (Py_ssize_t i = keep / 2 - 1; i >= 0; i--)
        sift_down(t->heap, t->len, i);
    for (Py_ssize_t i = 0; i < ndead; i++)
        Py_DECREF(dead[i]);
    PyMem_Free(dead);
}

void
bcl_timers_clear(bcl_timers *t)
{
    /* detach the array first: decrefs may run code that schedules timers */
    bcl_handle **heap = t->heap;
    Py_ssize_t len = t->len;
    t->heap = NULL;
    t->len = t->cap = t->ncancelled = 0;
    for (Py_ssize_t i = 0; i < len; i++) {
        heap[i]->scheduled = 0;
        Py_DECREF(heap[i]);
    }
    PyMem_Free(heap);
}

void
bcl_timers_free(bcl_timers *t)
{
    bcl_timers_clear(t);
}

int
bcl_timers_traverse(bcl_timers *t, visitproc visit, void *arg)
{
    for (Py_ssize_t i = 0; i < t->len; i++)
        Py_VISIT(t->heap[i]);
    return 0;
}

PyObject *
bcl_timers_as_list(bcl_timers *t)
{
    PyObject *list = PyList_New(t->len);
    if (list == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < t->len; i++)
        PyList_SET_ITEM(list, i, Py_NewRef((PyObject *)t->heap[i]));
    return list;
}
