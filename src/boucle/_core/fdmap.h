/* fdmap.h - per-fd records, in an array indexed by fd (no dict look-up on
 * the I/O path).
 *
 * A record holds what to do when the fd is ready: the reader and writer
 * Handles of add_reader/add_writer, or an owner (a C transport) whose work
 * function is queued with the event mask. */
#ifndef BCL_FDMAP_H
#define BCL_FDMAP_H

#include "handle.h"
#include "ready.h"

/* Invariants: events is exactly the interest registered with the poller;
 * owner != NULL excludes reader/writer (an fd belongs to a transport or to
 * add_reader/add_writer, never both); reader/writer/fileobj/owner are strong
 * refs. */
typedef struct {
    bcl_handle *reader;   /* add_reader handle or NULL */
    bcl_handle *writer;   /* add_writer handle or NULL */
    PyObject *fileobj;    /* object add_reader/add_writer got for fd (selectors'
                           * key.fileobj), while reader or writer is set */
    PyObject *owner;      /* C transport owning the fd, or NULL */
    bcl_work_fn owner_fn; /* work queued for owner, with the event mask as arg */
    uint32_t events;      /* BCL_EV_* registered with the poller */
} bcl_fdslot;

/* Invariants: slots[0..cap) are valid; an unused slot is all zero. */
typedef struct {
    bcl_fdslot *slots;
    int cap;
} bcl_fdmap;

/* Slot for fd, growing the array; NULL with MemoryError. */
bcl_fdslot *bcl_fdmap_get(bcl_fdmap *m, int fd);
/* Slot for fd if within the array, else NULL (no exception). */
static inline bcl_fdslot *
bcl_fdmap_find(bcl_fdmap *m, int fd)
{
    return (fd >= 0 && fd < m->cap) ? &m->slots[fd] : NULL;
}
void bcl_fdmap_clear(bcl_fdmap *m);     /* drops every handle/owner, keeps the array */
void bcl_fdmap_free(bcl_fdmap *m);
int bcl_fdmap_traverse(bcl_fdmap *m, visitproc visit, void *arg);

#endif
