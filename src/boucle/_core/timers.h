/* timers.h - the timer heap: a binary min-heap of TimerHandles ordered by
 * (when, seq), so timers with the same deadline fire in scheduling order.
 *
 * Cancelled timers stay in the heap (lazy removal) and are dropped when they
 * reach the top, or all at once by bcl_timers_compact() when they are more
 * than half of a large heap (asyncio's rule). */
#ifndef BCL_TIMERS_H
#define BCL_TIMERS_H

#include "handle.h"

/* Invariants: heap[0..len) satisfies the heap property on (when, seq); every
 * element is a strong reference to a TimerHandle with scheduled == 1;
 * ncancelled counts elements whose cancelled flag is set. */
typedef struct {
    bcl_handle **heap;     /* array of cap slots */
    Py_ssize_t len;        /* elements in use */
    Py_ssize_t cap;        /* allocated slots */
    Py_ssize_t ncancelled; /* cancelled elements still in the heap */
} bcl_timers;

int bcl_timers_push(bcl_timers *t, bcl_handle *h);   /* increfs h, sets scheduled */
bcl_handle *bcl_timers_peek(bcl_timers *t);          /* borrowed top, skipping (dropping) cancelled ones; NULL if empty */
bcl_handle *bcl_timers_pop(bcl_timers *t);           /* new reference to the top; scheduled cleared */
void bcl_timers_compact(bcl_timers *t);              /* drop every cancelled element if worth it */
void bcl_timers_clear(bcl_timers *t);
void bcl_timers_free(bcl_timers *t);
int bcl_timers_traverse(bcl_timers *t, visitproc visit, void *arg);
PyObject *bcl_timers_as_list(bcl_timers *t);

#endif
