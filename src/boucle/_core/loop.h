/* loop.h - the Loop object: the C half of boucle.Loop.
 *
 * boucle.Loop (Python) derives from this type and from asyncio's
 * BaseEventLoop: hot paths (scheduling, the iteration, I/O dispatch, timers)
 * live here; cold paths (executors, exception handler, asyncgens, task
 * creation) are asyncio's own Python code running on top. */
#ifndef BCL_LOOP_H
#define BCL_LOOP_H

#include "core.h"
#include "ready.h"
#include "timers.h"
#include "fdmap.h"
#include "poller.h"
#include "stats.h"

/* Invariants:
 *   - closed: no fd below is open (all -1) and queues are empty;
 *   - while open, poller.fd, wakeup_fd and sig_rfd/sig_wfd are open and the
 *     first and third are registered with the poller (not in fds);
 *   - polling is 1 only while the loop thread is inside the poller's wait
 *     (between giving up and taking back the GIL);
 *   - wakeup_pending is 1 when the eventfd was written and not yet drained;
 *   - thread_id is None unless run_forever is active (is_running());
 *   - fork_gen == bcl_fork_generation unless the process forked since the
 *     kernel objects were created (then they belong to the parent). */
typedef struct bcl_loop {
    PyObject_HEAD
    bcl_ready ready;          /* work for the next snapshot */
    bcl_timers timers;        /* scheduled TimerHandles */
    bcl_fdmap fds;            /* add_reader/add_writer and transport records */
    bcl_poller poller;        /* readiness backend */
    int wakeup_fd;            /* eventfd written by call_soon_threadsafe */
    int sig_rfd;              /* read end of the signal wakeup pipe */
    int sig_wfd;              /* write end, given to signal.set_wakeup_fd */
    char wakeup_pending;      /* eventfd written, not yet drained */
    char polling;             /* inside the poller's wait without the GIL */
    char closed;              /* close() was called */
    char stopping;            /* stop() was called: finish this iteration and return */
    char debug;               /* asyncio debug mode */
    char running;             /* inside _run() (C iteration active) */
    char signal_dispatch;     /* add_signal_handler is active: hand signal numbers to Python */
    char time_override;       /* time() is replaced (subclass or instance attribute): read the clock through it */
    char type_time_override;  /* the subclass itself defines time() */
    double clock_resolution;  /* timers due within this of now fire */
    unsigned long run_thread; /* PyThread_get_thread_ident() of the thread inside _run() (valid while running) */
    PyObject *thread_id;      /* threading.get_ident() of the running thread, or None */
    PyObject *task_factory;   /* set_task_factory()'s factory, or None */
    unsigned long fork_gen;   /* bcl_fork_generation when the kernel objects were made */
    int nfds;                 /* fds with a non-zero interest in the poller (not counting internal ones) */
    bcl_stats stats;          /* counters and slow callbacks (loop.stats()) */
} bcl_loop;

extern PyTypeObject bcl_loop_type;

int bcl_loop_init_type(PyObject *module);

/* A TimerHandle of this loop was cancelled (lazy heap removal bookkeeping). */
void bcl_loop_timer_cancelled(bcl_loop *loop, bcl_handle *h);

/* The handle's callback raised (exception set): hand it to the loop's
 * exception handler, as asyncio's Handle._run does. Returns 0 when handled,
 * -1 when the exception must propagate (SystemExit, KeyboardInterrupt, or a
 * failing handler). */
int bcl_loop_report_callback_error(bcl_loop *loop, bcl_handle *h);

/* Queue C work for the next snapshot (transports use it). */
int bcl_loop_queue_work(bcl_loop *loop, PyObject *obj, bcl_work_fn fn, int arg);

/* ---- fds owned by C transports ----
 * A transport attaches its fd once; every readiness event then queues
 * fn(owner, BCL_EV_* mask) behind the ready work, in asyncio's order. The
 * owner must check its own state in fn: an event queued before a detach or
 * an interest change may still be delivered once. All three raise and
 * return -1 on error (RuntimeError when the fd has add_reader/add_writer
 * callbacks or another owner; OSError from the poller). */
int bcl_loop_fd_attach(bcl_loop *loop, int fd, PyObject *owner, bcl_work_fn fn);
int bcl_loop_fd_interest(bcl_loop *loop, int fd, uint32_t events);
void bcl_loop_fd_detach(bcl_loop *loop, int fd);

/* Wake the loop if it is blocked in the poller (thread-safe with the GIL). */
void bcl_loop_wakeup(bcl_loop *loop);

/* Monotonic time in seconds (the clock of loop.time()). */
double bcl_loop_now(void);

#endif
