/* ready.h - the ready queue: a growable ring buffer of work to run in the
 * next snapshot of the loop iteration.
 *
 * An entry is either a Handle (fn == NULL: run the handle) or a C work item
 * (fn != NULL: call fn(obj, arg), used by C transports to queue their I/O
 * events without creating a Python object). Entries own a strong reference
 * to obj. The queue is only touched with the GIL held; callers must not keep
 * pointers into the buffer across a call into Python (it may grow). */
#ifndef BCL_READY_H
#define BCL_READY_H

#include "core.h"

/* Work function for C entries: returns 0, or -1 with a Python exception set
 * (reported through the loop's exception handler like a failing callback,
 * except SystemExit/KeyboardInterrupt which stop the loop). */
typedef int (*bcl_work_fn)(PyObject *obj, int arg);

typedef struct {
    PyObject *obj;     /* Handle or C object; strong reference */
    bcl_work_fn fn;    /* NULL for a Handle */
    int arg;           /* argument to fn (e.g. epoll event mask) */
} bcl_entry;

typedef struct {
    bcl_entry *buf;    /* capacity slots; NULL until the first push */
    Py_ssize_t cap;    /* power of two (or 0) */
    Py_ssize_t head;   /* index of the oldest entry */
    Py_ssize_t len;    /* number of live entries, 0 <= len <= cap */
} bcl_ready;

int bcl_ready_push(bcl_ready *q, PyObject *obj, bcl_work_fn fn, int arg); /* steals nothing; increfs obj */
int bcl_ready_pop(bcl_ready *q, bcl_entry *out);   /* 1 and fills out (ref moves to caller), 0 if empty */
void bcl_ready_clear(bcl_ready *q);                /* drops every entry */
void bcl_ready_free(bcl_ready *q);                 /* clear + release the buffer */
int bcl_ready_traverse(bcl_ready *q, visitproc visit, void *arg);
PyObject *bcl_ready_as_list(bcl_ready *q);         /* new list of the queued objects, oldest first */

#endif
