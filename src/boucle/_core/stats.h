/* stats.h - loop introspection (loop.stats()).
 *
 * Always on: counters (a handful of integer increments per iteration) and
 * the time blocked in the poller, measured with the precise clock only for
 * polls that may block, whose system call dwarfs two clock reads.
 *
 * On request (loop.set_slow_callback_threshold(seconds), python -m boucle
 * --stats): slow callbacks, found with CLOCK_MONOTONIC_COARSE, which the
 * vDSO answers from memory (no rdtsc), read once after each entry. Its
 * resolution is the kernel tick (1-4 ms), ample for "what blocked my loop".
 * That read costs ~7% of the cheapest iteration (a call_soon chain,
 * measured with callgrind), hence off by default. */
#ifndef BCL_STATS_H
#define BCL_STATS_H

#include "core.h"
#include <time.h>

#define BCL_STATS_SLOWEST 10

/* One recorded slow entry. Invariant: desc is a str (strong) when
 * seconds > 0, NULL otherwise. */
typedef struct {
    double seconds;     /* coarse duration of the callback */
    PyObject *desc;     /* repr of the handle (or work item's owner) */
} bcl_slow_entry;

/* Invariants: slow[] is sorted by seconds, largest first, and its unused
 * tail has seconds == 0 and desc == NULL; last_ns is the coarse time at
 * which the entry now running started. */
typedef struct {
    uint64_t iterations;      /* _run_once iterations */
    uint64_t callbacks;       /* handles and C work items run */
    uint64_t io_events;       /* readiness events queued from the poller */
    uint64_t timers_fired;    /* timers moved from the heap to the ready queue */
    uint64_t polls;           /* poller system calls */
    uint64_t polls_skipped;   /* zero-timeout polls skipped (no user fd watched) */
    uint64_t slow_count;      /* entries that took >= slow_ns */
    int64_t poll_ns;          /* time blocked in the poller (precise clock) */
    int64_t run_ns;           /* time inside run_forever's iteration, finished runs (precise clock) */
    int64_t run_start_ns;     /* precise clock when the current run started, 0 when not running */
    int64_t slow_ns;          /* threshold for a slow entry; 0: slow callbacks not tracked */
    int64_t last_ns;          /* coarse clock at the start of the running entry */
    bcl_slow_entry slow[BCL_STATS_SLOWEST];
} bcl_stats;

static inline int64_t
bcl_stats_coarse_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t
bcl_stats_precise_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Record obj as a slow entry of dt ns (cold path: builds its repr). */
void bcl_stats_record_slow(bcl_stats *st, PyObject *obj, int64_t dt);

/* After an entry ran: attribute the elapsed coarse time to obj. */
static inline void
bcl_stats_after_entry(bcl_stats *st, PyObject *obj)
{
    int64_t now = bcl_stats_coarse_ns();
    if (now - st->last_ns >= st->slow_ns)
        bcl_stats_record_slow(st, obj, now - st->last_ns);
    st->last_ns = now;
}

void bcl_stats_init(bcl_stats *st);
void bcl_stats_clear(bcl_stats *st);       /* drops the slow entries' strings */
/* New dict of the counters; the loop adds its own gauges. */
PyObject *bcl_stats_as_dict(const bcl_stats *st);

#endif
