/* handle.h - Handle and TimerHandle: what call_soon/call_later return and
 * what the ready queue and the timer heap hold.
 *
 * Mirrors asyncio.events.Handle/TimerHandle: cancel(), cancelled(), when(),
 * get_context(), _run(), repr; TimerHandle is a subtype of Handle. */
#ifndef BCL_HANDLE_H
#define BCL_HANDLE_H

#include "core.h"

/* Invariants:
 *   - callback is NULL iff the handle was cancelled (asyncio drops the
 *     callback and args on cancel to break reference cycles);
 *   - args is NULL when there are no arguments (the getter shows ());
 *   - context is a contextvars.Context, set at creation, never NULL;
 *   - loop is the owning loop (strong), may be Py_None for handles built by
 *     Python code through the type;
 *   - a timer with scheduled != 0 is referenced by its loop's heap. */
typedef struct bcl_handle {
    PyObject_HEAD
    PyObject *callback;          /* callable, or NULL once cancelled */
    PyObject *args;              /* tuple of positional args, or NULL for none */
    PyObject *context;           /* contextvars.Context the callback runs in */
    PyObject *loop;              /* owning loop */
    PyObject *source_traceback;  /* debug mode: list of frames, else NULL */
    PyObject *repr;              /* debug mode: repr saved at cancel, else NULL */
    PyObject *weakreflist;       /* weak references */
    double when;                 /* TimerHandle: deadline on loop.time()'s clock */
    uint64_t seq;                /* TimerHandle: scheduling order, breaks ties of when */
    char cancelled;              /* cancel() was called */
    char scheduled;              /* TimerHandle: currently in the loop's heap */
    char when_int;               /* TimerHandle: when was an int (call_at(int)): when() gives an int back */
} bcl_handle;

extern PyTypeObject bcl_handle_type;
extern PyTypeObject bcl_timer_type;

#define bcl_handle_check(o) PyObject_TypeCheck((o), &bcl_handle_type)

/* New handle (type = &bcl_handle_type or &bcl_timer_type). args is borrowed
 * (may be NULL), context borrowed (NULL: copy the current context). */
bcl_handle *bcl_handle_new(PyTypeObject *type, PyObject *loop, PyObject *callback,
                           PyObject *const *args, Py_ssize_t nargs, PyObject *context);

/* Run the callback in its context. Returns 0, or -1 with the callback's
 * exception set. */
int bcl_handle_run(bcl_handle *h);

/* Mark cancelled and drop callback/args. Returns 1 if it was not cancelled before. */
int bcl_handle_cancel(bcl_handle *h, int debug);

/* A TimerHandle's when as asyncio keeps it: an int if it was given one, else a float. */
PyObject *bcl_timer_when_object(bcl_handle *h);

int bcl_handle_init_types(PyObject *module);

#endif
