/* core.h - what every file of boucle._core shares: Python headers, the
 * module-wide state (cached asyncio objects), error helpers.
 *
 * Conventions (see docs/ARCHITECTURE.md):
 *   - one prefix per file's API (bcl_loop_, bcl_handle_, bcl_timers_, ...);
 *     everything else in a file is static;
 *   - internal C helpers return 0 on success and -errno on a system error;
 *     bcl_raise_errno() is the one place that turns that into OSError;
 *   - functions returning PyObject* follow the CPython convention
 *     (NULL with an exception set).
 */
#ifndef BCL_CORE_H
#define BCL_CORE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>

#if PY_VERSION_HEX < 0x030A0000
#error "boucle needs CPython 3.10 or newer"
#endif

/* Module-wide state: objects looked up once at import.
 * Invariant: every field is a strong reference, set by bcl_state_init()
 * before any type of the module can be instantiated, and never changed. */
typedef struct {
    PyObject *future_type;        /* asyncio.Future (the C one from _asyncio when present) */
    PyObject *task_type;          /* asyncio.Task */
    PyObject *base_create_task;   /* asyncio.base_events.BaseEventLoop.create_task (the general path) */
    PyObject *str_context;        /* interned "context" */
    PyObject *str_name;           /* interned "name" */
    PyObject *format_cb_source;   /* asyncio.format_helpers._format_callback_source */
    PyObject *extract_stack;      /* asyncio.format_helpers.extract_stack */
    PyObject *str_loop;           /* interned "loop" (kwnames for Future(loop=)) */
    PyObject *kwnames_loop;       /* ("loop",) */
    PyObject *empty_tuple;        /* () */
    PyObject *kwnames_debug;      /* ("debug",) when _format_callback_source takes debug= (3.13+), else NULL */
    int factory_call_is_all;      /* not a reference: 1 when asyncio's create_task(coro) with a task
                                   * factory does nothing but return factory(loop, coro) (every
                                   * version but 3.13.0-3.13.2, which then call task.set_name(None)) */
} bcl_state_t;

extern bcl_state_t bcl_state;

/* Generation counter bumped in a forked child (pthread_atfork): a loop whose
 * recorded generation differs was inherited and must rebuild its kernel objects. */
extern volatile unsigned long bcl_fork_generation;

/* Raise OSError for a negative errno value; always returns NULL. */
PyObject *bcl_raise_errno(int neg_errno);

/* Build the debug-mode source traceback of the caller (a list), or NULL with
 * no exception when there is no Python frame. */
PyObject *bcl_source_traceback(void);

/* Take the raised exception (normalized, traceback attached); NULL if none. */
static inline PyObject *
bcl_fetch_exception(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    if (t == NULL)
        return NULL;
    PyErr_NormalizeException(&t, &v, &tb);
    if (tb != NULL)
        PyException_SetTraceback(v, tb);
    Py_XDECREF(t);
    Py_XDECREF(tb);
    return v;
#endif
}

#endif
