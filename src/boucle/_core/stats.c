/* stats.c - loop introspection (see stats.h). */
#include "stats.h"
#include "iohelp.h"

#include <string.h>

void
bcl_stats_init(bcl_stats *st)
{
    memset(st, 0, sizeof(*st));
}

void
bcl_stats_clear(bcl_stats *st)
{
    for (int i = 0; i < BCL_STATS_SLOWEST; i++) {
        st->slow[i].seconds = 0;
        Py_CLEAR(st->slow[i].desc);
    }
}

void
bcl_stats_record_slow(bcl_stats *st, PyObject *obj, int64_t dt)
{
    double secs = (double)dt * 1e-9;
    st->slow_count++;
    if (secs <= st->slow[BCL_STATS_SLOWEST - 1].seconds)
        return;
    /* keep the exception a callback may have left for the caller */
    PyObject *exc = bcl_fetch_exception();
    PyObject *desc = PyObject_Repr(obj);
    if (desc == NULL)
        PyErr_Clear();
    bcl_io_restore(exc);
    if (desc == NULL)
        return;
    int i = BCL_STATS_SLOWEST - 1;
    Py_CLEAR(st->slow[i].desc);
    while (i > 0 && st->slow[i - 1].seconds < secs) {
        st->slow[i] = st->slow[i - 1];
        i--;
    }
    st->slow[i].seconds = secs;
    st->slow[i].desc = desc;
}

PyObject *
bcl_stats_as_dict(const bcl_stats *st)
{
    PyObject *slow = PyList_New(0);
    if (slow == NULL)
        return NULL;
    for (int i = 0; i < BCL_STATS_SLOWEST && st->slow[i].desc != NULL; i++) {
        PyObject *item = Py_BuildValue("(dO)", st->slow[i].seconds, st->slow[i].desc);
        if (item == NULL || PyList_Append(slow, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(slow);
            return NULL;
        }
        Py_DECREF(item);
    }
    PyObject *d = Py_BuildValue(
        "{sKsKsKsKsKsKsKsdsdsNsN}",
        "iterations", (unsigned long long)st->iterations,
        "callbacks", (unsigned long long)st->callbacks,
        "io_events", (unsigned long long)st->io_events,
        "timers_fired", (unsigned long long)st->timers_fired,
        "polls", (unsigned long long)st->polls,
        "polls_skipped", (unsigned long long)st->polls_skipped,
        "slow_callbacks", (unsigned long long)st->slow_count,
        "poll_seconds", (double)st->poll_ns * 1e-9,
        "run_seconds", (double)(st->run_ns + (st->run_start_ns ? bcl_stats_precise_ns() - st->run_start_ns : 0)) * 1e-9,
        "slow_callback_threshold", st->slow_ns ? PyFloat_FromDouble((double)st->slow_ns * 1e-9)
                                               : Py_NewRef(Py_None),
        "slowest_callbacks", slow);
    return d;
}
