/* loop.c - the Loop object: scheduling, one iteration, run, stop, close,
 * readiness callbacks (see loop.h).
 *
 * One iteration (_run_once) follows asyncio's BaseEventLoop._run_once:
 *   1. Drop cancelled timers from the top of the heap; compact the heap when
 *      cancelled timers are more than half of more than 100.
 *   2. Timeout: 0 if work is ready or stop() was called; else until the
 *      earliest timer (clamped to [0, 1 day]); else forever.
 *   3. Poll once. Each ready fd queues its reader handle, then its writer
 *      handle (or its transport's work), BEHIND the work already ready.
 *   4. Move the timers due before now + clock resolution to the ready queue,
 *      in deadline order.
 *   5. Run exactly the entries present now (the snapshot); what they
 *      schedule runs in the next iteration. Cancelled handles are skipped.
 *      A callback's exception goes to the exception handler, except
 *      SystemExit and KeyboardInterrupt, which leave run_forever with the
 *      rest of the snapshot still queued.
 */
#include "loop.h"
#include "iohelp.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define BCL_MAX_TIMEOUT 86400.0   /* asyncio's MAXIMUM_SELECT_TIMEOUT: one day */

double
bcl_loop_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* "time" (interned) and _core.Loop.time's method descriptor, to tell
 * whether a subclass or the instance replaced time(). */
static PyObject *str_time;
static PyObject *c_time_descr;

/* The loop's clock. asyncio's loop reads it through self.time() (in
 * call_later and in each iteration), so a subclass overriding time() or a
 * test patching it on the instance (mock.patch.object(loop, "time")) moves
 * every timer decision; do the same, but only when time() was replaced. */
static int
loop_now_ex(bcl_loop *self, double *out, int *is_int)
{
    if (!self->time_override) {
        *out = bcl_loop_now();
        if (is_int != NULL)
            *is_int = 0;
        return 0;
    }
    PyObject *r = PyObject_CallMethodNoArgs((PyObject *)self, str_time);
    if (r == NULL)
        return -1;
    double v = PyFloat_AsDouble(r);
    if (is_int != NULL)
        *is_int = PyLong_Check(r);
    Py_DECREF(r);
    if (v == -1.0 && PyErr_Occurred())
        return -1;
    *out = v;
    return 0;
}

static int
loop_now(bcl_loop *self, double *out)
{
    return loop_now_ex(self, out, NULL);
}

/* setattr/delattr on a loop: track an instance attribute named "time". */
static int
loop_setattro(PyObject *obj, PyObject *name, PyObject *value)
{
    if (PyObject_GenericSetAttr(obj, name, value) < 0)
        return -1;
    if (PyUnicode_Check(name) && PyUnicode_CompareWithASCIIString(name, "time") == 0) {
        bcl_loop *self = (bcl_loop *)obj;
        self->time_override = value != NULL ? 1 : self->type_time_override;
    }
    return 0;
}

static PyObject *
raise_closed(void)
{
    PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
    return NULL;
}

/* ---- kernel objects ------------------------------------------------- */

static void
loop_close_kernel(bcl_loop *self)
{
    bcl_poller_close(&self->poller);
    if (self->wakeup_fd >= 0)
        close(self->wakeup_fd);
    if (self->sig_rfd >= 0)
        close(self->sig_rfd);
    if (self->sig_wfd >= 0)
        close(self->sig_wfd);
    self->wakeup_fd = self->sig_rfd = self->sig_wfd = -1;
}

/* Create the poller, the eventfd and the signal pipe, and register the
 * internal fds plus every fd of the map. Returns 0 or -errno; on failure
 * everything it opened is closed again. */
static int
loop_open_kernel(bcl_loop *self, int backend)
{
    int err, pfd[2];
    self->wakeup_fd = self->sig_rfd = self->sig_wfd = -1;
    err = bcl_poller_open(&self->poller, backend);
    if (err < 0)
        return err;
    self->wakeup_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (self->wakeup_fd < 0)
        goto fail_errno;
    if (pipe2(pfd, O_NONBLOCK | O_CLOEXEC) < 0)
        goto fail_errno;
    self->sig_rfd = pfd[0];
    self->sig_wfd = pfd[1];
    if ((err = bcl_poller_ctl(&self->poller, self->wakeup_fd, 0, BCL_EV_READ)) < 0)
        goto fail;
    if ((err = bcl_poller_ctl(&self->poller, self->sig_rfd, 0, BCL_EV_READ)) < 0)
        goto fail;
    for (int fd = 0; fd < self->fds.cap; fd++) {
        uint32_t ev = self->fds.slots[fd].events;
        if (ev && (err = bcl_poller_ctl(&self->poller, fd, 0, ev)) < 0)
            goto fail;
    }
    self->wakeup_pending = 0;
    self->fork_gen = bcl_fork_generation;
    return 0;
fail_errno:
    err = -errno;
fail:
    loop_close_kernel(self);
    return err;
}

/* In a forked child, the epoll instance and the eventfd are shared with the
 * parent: replace them before the child touches them. */
static int
loop_check_fork(bcl_loop *self)
{
    if (self->fork_gen == bcl_fork_generation || self->closed)
        return 0;
    int backend = self->poller.kind;    /* the one chosen at creation */
    loop_close_kernel(self);
    int err = loop_open_kernel(self, backend);
    if (err < 0) {
        bcl_raise_errno(err);
        return -1;
    }
    return 0;
}

void
bcl_loop_wakeup(bcl_loop *self)
{
    if (!self->polling || self->wakeup_pending || self->wakeup_fd < 0)
        return;
    uint64_t one = 1;
    self->wakeup_pending = 1;
    /* EAGAIN means the counter is saturated: the loop will wake anyway */
    (void)!write(self->wakeup_fd, &one, sizeof(one));
}

static void
loop_drain_wakeup(bcl_loop *self)
{
    uint64_t v;
    (void)!read(self->wakeup_fd, &v, sizeof(v));
    self->wakeup_pending = 0;
}

/* The interpreter's C signal handler wrote the signal numbers to our pipe
 * (signal.set_wakeup_fd). Run the Python-level handlers now, and hand the
 * numbers to add_signal_handler's dispatcher (self._handle_signals). */
static int
loop_drain_signals(bcl_loop *self)
{
    unsigned char buf[256];
    ssize_t n;
    while ((n = read(self->sig_rfd, buf, sizeof(buf))) > 0) {
        if (self->signal_dispatch) {
            PyObject *r = PyObject_CallMethod((PyObject *)self, "_handle_signals", "y#",
                                              (const char *)buf, (Py_ssize_t)n);
            if (r == NULL)
                return -1;
            Py_DECREF(r);
        }
        if (n < (ssize_t)sizeof(buf))
            break;
    }
    return PyErr_CheckSignals();
}

/* ---- object lifecycle ----------------------------------------------- */

/* The backend asked for: the backend= argument, else $BOUCLE_BACKEND, else
 * epoll. Returns BCL_BACKEND_* or -1 with ValueError/TypeError set. */
static int
loop_parse_backend(PyObject *args, PyObject *kwds)
{
    /* other arguments belong to subclasses' __init__; only backend= is ours */
    PyObject *arg = kwds != NULL ? PyDict_GetItemString(kwds, "backend") : NULL;
    const char *name;
    if (arg == NULL || arg == Py_None) {
        name = getenv("BOUCLE_BACKEND");
        if (name == NULL || name[0] == '\0')
            return BCL_BACKEND_EPOLL;
        int b = bcl_poller_backend_parse(name);
        if (b < 0)
            PyErr_Format(PyExc_ValueError,
                         "BOUCLE_BACKEND must be 'auto', 'epoll' or 'io_uring', not '%.100s'", name);
        return b;
    }
    if (!PyUnicode_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "backend must be a str or None, not %.100s",
                     Py_TYPE(arg)->tp_name);
        return -1;
    }
    if ((name = PyUnicode_AsUTF8(arg)) == NULL)
        return -1;
    int b = bcl_poller_backend_parse(name);
    if (b < 0)
        PyErr_Format(PyExc_ValueError, "backend must be 'auto', 'epoll' or 'io_uring', not %R", arg);
    return b;
}

static PyObject *
loop_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    int backend = loop_parse_backend(args, kwds);
    if (backend < 0)
        return NULL;
    bcl_loop *self = (bcl_loop *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->poller.fd = -1;
    self->wakeup_fd = self->sig_rfd = self->sig_wfd = -1;
    self->thread_id = Py_NewRef(Py_None);
    self->task_factory = Py_NewRef(Py_None);
    bcl_stats_init(&self->stats);
    {
        PyObject *t = PyObject_GetAttr((PyObject *)type, str_time);
        if (t == NULL) {
            self->closed = 1;
            Py_DECREF(self);
            return NULL;
        }
        self->type_time_override = self->time_override = (t != c_time_descr);
        Py_DECREF(t);
    }
    self->clock_resolution = 1e-9;
    {
        struct timespec res;
        if (clock_getres(CLOCK_MONOTONIC, &res) == 0)
            self->clock_resolution = (double)res.tv_sec + (double)res.tv_nsec * 1e-9;
    }
    int err = loop_open_kernel(self, backend);
    if (err < 0) {
        self->closed = 1;
        Py_DECREF(self);
        if (backend == BCL_BACKEND_IO_URING && err != -EMFILE && err != -ENFILE && err != -ENOMEM) {
            /* OSError(errno, msg) picks the subclass (PermissionError for a
             * seccomp EPERM); the message says which backend failed */
            PyObject *e = PyObject_CallFunction(
                PyExc_OSError, "is", -err,
                "io_uring backend unavailable (the kernel or a seccomp policy refused it; "
                "backend='auto' falls back to epoll)");
            if (e != NULL) {
                PyErr_SetObject((PyObject *)Py_TYPE(e), e);
                Py_DECREF(e);
            }
            return NULL;
        }
        return bcl_raise_errno(err);
    }
    return (PyObject *)self;
}

static int
loop_traverse(bcl_loop *self, visitproc visit, void *arg)
{
    Py_VISIT(self->thread_id);
    Py_VISIT(self->task_factory);
    bcl_ready_traverse(&self->ready, visit, arg);
    bcl_timers_traverse(&self->timers, visit, arg);
    bcl_fdmap_traverse(&self->fds, visit, arg);
    return 0;
}

static int
loop_clear(bcl_loop *self)
{
    bcl_ready_clear(&self->ready);
    bcl_timers_clear(&self->timers);
    bcl_fdmap_clear(&self->fds);
    Py_CLEAR(self->thread_id);
    Py_CLEAR(self->task_factory);
    bcl_stats_clear(&self->stats);
    return 0;
}

static void
loop_dealloc(bcl_loop *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    loop_clear(self);
    bcl_ready_free(&self->ready);
    bcl_timers_free(&self->timers);
    bcl_fdmap_free(&self->fds);
    loop_close_kernel(self);
    /* a Python subclass's dealloc drops its reference to the type */
    tp->tp_free((PyObject *)self);
}

/* ---- error reporting ------------------------------------------------ */

/* Exception set by a handle or work item: fatal ones propagate, others go
 * to self._report_callback_error(obj, exc) (Python: builds asyncio's
 * context and calls call_exception_handler). */
static int
loop_report_error(bcl_loop *self, PyObject *obj)
{
    if (bcl_io_fatal_raised())
        return -1;
    PyObject *exc = bcl_fetch_exception();
    PyObject *r = PyObject_CallMethod((PyObject *)self, "_report_callback_error", "OO", obj, exc);
    Py_DECREF(exc);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

int
bcl_loop_report_callback_error(bcl_loop *self, bcl_handle *h)
{
    return loop_report_error(self, (PyObject *)h);
}

void
bcl_loop_timer_cancelled(bcl_loop *self, bcl_handle *h)
{
    if (h->scheduled && !h->cancelled)
        self->timers.ncancelled++;
}

int
bcl_loop_queue_work(bcl_loop *self, PyObject *obj, bcl_work_fn fn, int arg)
{
    return bcl_ready_push(&self->ready, obj, fn, arg);
}

/* ---- scheduling ----------------------------------------------------- */

/* Parse the only keyword these methods take, context=. */
static int
parse_context_kw(const char *fname, PyObject *const *args, Py_ssize_t nargs,
                 PyObject *kwnames, PyObject **context)
{
    *context = NULL;
    if (kwnames == NULL)
        return 0;
    Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        if (name != bcl_state.str_context &&
                (!PyUnicode_Check(name) || PyUnicode_CompareWithASCIIString(name, "context") != 0)) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%S'",
                         fname, name);
            return -1;
        }
        *context = args[nargs + i];
    }
    return 0;
}

/* Debug-mode checks asyncio does in call_soon/call_at: thread and callback. */
static int
loop_debug_checks(bcl_loop *self, PyObject *callback, const char *method, int check_thread)
{
    PyObject *r;
    if (check_thread) {
        r = PyObject_CallMethod((PyObject *)self, "_check_thread", NULL);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
    }
    r = PyObject_CallMethod((PyObject *)self, "_check_callback", "Os", callback, method);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

static bcl_handle *
loop_make_handle(bcl_loop *self, PyTypeObject *type, PyObject *callback,
                 PyObject *const *args, Py_ssize_t nargs, PyObject *context)
{
    bcl_handle *h = bcl_handle_new(type, (PyObject *)self, callback, args, nargs, context);
    if (h != NULL && self->debug) {
        h->source_traceback = bcl_source_traceback();
        if (h->source_traceback == NULL && PyErr_Occurred()) {
            Py_DECREF(h);
            return NULL;
        }
    }
    return h;
}

static PyObject *
loop_call_soon_impl(bcl_loop *self, PyObject *const *args, Py_ssize_t nargsf,
                    PyObject *kwnames, const char *fname, int threadsafe)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *context;
    if (nargs < 1) {
        PyErr_Format(PyExc_TypeError, "%s() missing 1 required positional argument: 'callback'", fname);
        return NULL;
    }
    if (parse_context_kw(fname, args, nargs, kwnames, &context) < 0)
        return NULL;
    if (self->closed)
        return raise_closed();
    if (self->debug && loop_debug_checks(self, args[0], fname, !threadsafe) < 0)
        return NULL;
    bcl_handle *h = loop_make_handle(self, &bcl_handle_type, args[0], args + 1, nargs - 1, context);
    if (h == NULL)
        return NULL;
    if (self->closed) {
        /* In debug mode the checks and the source traceback run Python
         * code, during which another thread may close the loop: never
         * queue into a closed loop (close() would not release it). */
        Py_DECREF(h);
        return raise_closed();
    }
    if (bcl_ready_push(&self->ready, (PyObject *)h, NULL, 0) < 0) {
        Py_DECREF(h);
        return NULL;
    }
    if (threadsafe)
        bcl_loop_wakeup(self);
    return (PyObject *)h;
}

static PyObject *
loop_call_soon(bcl_loop *self, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames)
{
    return loop_call_soon_impl(self, args, nargsf, kwnames, "call_soon", 0);
}

static PyObject *
loop_call_soon_threadsafe(bcl_loop *self, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames)
{
    return loop_call_soon_impl(self, args, nargsf, kwnames, "call_soon_threadsafe", 1);
}

/* when_int: asyncio would hold an int deadline (call_at(int), or an int
 * time() plus an int delay); when() gives it back as an int. */
static PyObject *
loop_schedule_timer(bcl_loop *self, double when, int when_int, PyObject *const *args, Py_ssize_t nargs,
                    PyObject *context, const char *fname)
{
    if (self->closed)
        return raise_closed();
    if (self->debug && loop_debug_checks(self, args[0], "call_at", 1) < 0)
        return NULL;
    bcl_handle *h = loop_make_handle(self, &bcl_timer_type, args[0], args + 1, nargs - 1, context);
    if (h == NULL)
        return NULL;
    h->when = when;
    h->when_int = (char)when_int;
    if (bcl_timers_push(&self->timers, h) < 0) {
        Py_DECREF(h);
        return NULL;
    }
    return (PyObject *)h;
}

/* Convert a delay/deadline like asyncio would use it in arithmetic:
 * TypeError for non-numbers; NaN is refused (ValueError), as uvloop does,
 * because a NaN deadline corrupts the heap's order. */
static int
parse_time(PyObject *o, const char *what, double *out)
{
    if (o == Py_None) {
        PyErr_SetString(PyExc_TypeError, what[0] == 'd' ? "delay must not be None"
                                                        : "when cannot be None");
        return -1;
    }
    if (!PyFloat_Check(o) && !PyLong_Check(o) && !PyNumber_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be a number, not %.200s", what, Py_TYPE(o)->tp_name);
        return -1;
    }
    double v = PyFloat_AsDouble(o);
    if (v == -1.0 && PyErr_Occurred())
        return -1;
    if (isnan(v)) {
        PyErr_Format(PyExc_ValueError, "%s must not be NaN", what);
        return -1;
    }
    *out = v;
    return 0;
}

static PyObject *
loop_call_later(bcl_loop *self, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *context;
    double delay;
    if (nargs < 2) {
        PyErr_SetString(PyExc_TypeError, "call_later() missing required positional arguments: 'delay' and 'callback'");
        return NULL;
    }
    if (parse_context_kw("call_later", args, nargs, kwnames, &context) < 0)
        return NULL;
    if (parse_time(args[0], "delay", &delay) < 0)
        return NULL;
    double now;
    int now_int;
    if (loop_now_ex(self, &now, &now_int) < 0)
        return NULL;
    return loop_schedule_timer(self, now + delay, now_int && PyLong_Check(args[0]),
                               args + 1, nargs - 1, context, "call_later");
}

static PyObject *
loop_call_at(bcl_loop *self, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *context;
    double when;
    if (nargs < 2) {
        PyErr_SetString(PyExc_TypeError, "call_at() missing required positional arguments: 'when' and 'callback'");
        return NULL;
    }
    if (parse_context_kw("call_at", args, nargs, kwnames, &context) < 0)
        return NULL;
    if (parse_time(args[0], "when", &when) < 0)
        return NULL;
    return loop_schedule_timer(self, when, PyLong_Check(args[0]), args + 1, nargs - 1, context, "call_at");
}

static PyObject *
loop_time(bcl_loop *self, PyObject *Py_UNUSED(ignored))
{
    return PyFloat_FromDouble(bcl_loop_now());
}

static PyObject *
loop_create_future(bcl_loop *self, PyObject *Py_UNUSED(ignored))
{
    /* Inside _run() on the loop's own thread this loop is the running
     * loop, which Future() picks up by itself: that skips building a
     * keyword dict for loop= (about 40% of the call). */
    if (self->running && self->run_thread == PyThread_get_thread_ident())
        return PyObject_CallNoArgs(bcl_state.future_type);
    PyObject *args[1] = {(PyObject *)self};
    return PyObject_Vectorcall(bcl_state.future_type, args, 0, bcl_state.kwnames_loop);
}

/* create_task(coro, *, name=None, context=None): with no task factory and
 * outside debug mode, build asyncio's Task directly (what
 * BaseEventLoop.create_task does then, minus a Python frame); every other
 * case — a factory, debug mode, keywords this interpreter's create_task
 * handles differently — goes through asyncio's own create_task. */
static PyObject *
loop_create_task(bcl_loop *self, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    int fast = nargs == 1 && self->task_factory == Py_None && !self->debug && nkw <= 2;
    for (Py_ssize_t i = 0; fast && i < nkw; i++) {
        PyObject *k = PyTuple_GET_ITEM(kwnames, i);
#if PY_VERSION_HEX >= 0x030B0000
        fast = k == bcl_state.str_name || k == bcl_state.str_context;
#else
        fast = k == bcl_state.str_name;
#endif
    }
    if (!fast && nargs == 1 && nkw == 0 && self->task_factory != Py_None
            && bcl_state.factory_call_is_all) {
        /* what asyncio's create_task(coro) does with a factory (eager
         * task factories, uvloop-style custom tasks), without its frame */
        if (self->closed)
            return raise_closed();
        PyObject *factory = Py_NewRef(self->task_factory);
        PyObject *argv[2] = {(PyObject *)self, args[0]};
        PyObject *r = PyObject_Vectorcall(factory, argv, 2, NULL);
        Py_DECREF(factory);
        return r;
    }
    if (!fast) {
        /* asyncio's create_task with self prepended */
        PyObject *small[8], **argv = small;
        Py_ssize_t total = nargs + nkw;
        if (total + 1 > (Py_ssize_t)(sizeof(small) / sizeof(small[0]))) {
            argv = PyMem_Malloc((size_t)(total + 1) * sizeof(PyObject *));
            if (argv == NULL)
                return PyErr_NoMemory();
        }
        argv[0] = (PyObject *)self;
        for (Py_ssize_t i = 0; i < total; i++)
            argv[i + 1] = args[i];
        PyObject *r = PyObject_Vectorcall(bcl_state.base_create_task, argv, nargs + 1, kwnames);
        if (argv != small)
            PyMem_Free(argv);
        return r;
    }
    if (self->closed)
        return raise_closed();
    if (nkw == 0) {
        /* as in create_future: the running loop needs no loop= dict */
        if (self->running && self->run_thread == PyThread_get_thread_ident())
            return PyObject_CallOneArg(bcl_state.task_type, args[0]);
        PyObject *argv[2] = {args[0], (PyObject *)self};
        return PyObject_Vectorcall(bcl_state.task_type, argv, 1, bcl_state.kwnames_loop);
    }
    PyObject *argv[4] = {args[0], (PyObject *)self, NULL, NULL};
    PyObject *names = PyTuple_New(1 + nkw);
    if (names == NULL)
        return NULL;
    PyTuple_SET_ITEM(names, 0, Py_NewRef(bcl_state.str_loop));
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyTuple_SET_ITEM(names, i + 1, Py_NewRef(PyTuple_GET_ITEM(kwnames, i)));
        argv[i + 2] = args[nargs + i];
    }
    PyObject *r = PyObject_Vectorcall(bcl_state.task_type, argv, 1, names);
    Py_DECREF(names);
    return r;
}

/* ---- the iteration -------------------------------------------------- */

/* Run one queued entry. Returns 0, or -1 with an exception to propagate. */
static int
loop_run_entry(bcl_loop *self, bcl_entry *e)
{
    int r;
    self->stats.callbacks++;
    if (e->fn != NULL) {
        r = e->fn(e->obj, e->arg);
        if (r < 0)
            r = loop_report_error(self, e->obj);
        return r;
    }
    bcl_handle *h = (bcl_handle *)e->obj;
    if (h->cancelled)
        return 0;
    if (self->debug) {
        /* timing, slow-callback warning and _current_handle, in Python */
        PyObject *res = PyObject_CallMethod((PyObject *)self, "_run_handle_debug", "O", h);
        if (res == NULL)
            return -1;
        Py_DECREF(res);
        return 0;
    }
    r = bcl_handle_run(h);
    if (r < 0)
        r = loop_report_error(self, (PyObject *)h);
    return r;
}

static int
loop_dispatch_io(bcl_loop *self, bcl_poll_event *evs, int n)
{
    for (int i = 0; i < n; i++) {
        int fd = evs[i].fd;
        uint32_t m = evs[i].events;
        if (fd == self->wakeup_fd) {
            loop_drain_wakeup(self);
            continue;
        }
        if (fd == self->sig_rfd) {
            if (loop_drain_signals(self) < 0)
                return -1;
            continue;
        }
        bcl_fdslot *s = bcl_fdmap_find(&self->fds, fd);
        if (s == NULL)
            continue;
        if (s->owner != NULL) {
            /* Only the directions registered now, when the event is polled
             * (an error event wakes both): asyncio queues the reader only
             * if one is registered at poll time, so a transport whose
             * reading is resumed before this work runs must not read. */
            if (bcl_ready_push(&self->ready, s->owner, s->owner_fn, (int)(m & s->events)) < 0)
                return -1;
            continue;
        }
        if ((m & BCL_EV_READ) && s->reader != NULL && !s->reader->cancelled) {
            if (bcl_ready_push(&self->ready, (PyObject *)s->reader, NULL, 0) < 0)
                return -1;
        }
        if ((m & BCL_EV_WRITE) && s->writer != NULL && !s->writer->cancelled) {
            if (bcl_ready_push(&self->ready, (PyObject *)s->writer, NULL, 0) < 0)
                return -1;
        }
    }
    return 0;
}

static int
loop_run_once(bcl_loop *self)
{
    bcl_poll_event evs[BCL_POLL_MAX_EVENTS];
    int64_t timeout_ns;
    int n;

    self->stats.iterations++;
    bcl_timers_compact(&self->timers);
    bcl_handle *top = bcl_timers_peek(&self->timers);
    if (self->ready.len > 0 || self->stopping) {
        timeout_ns = 0;
    }
    else if (top != NULL) {
        double now;
        if (loop_now(self, &now) < 0)
            return -1;
        double dt = top->when - now;
        if (dt < 0)
            dt = 0;
        else if (dt > BCL_MAX_TIMEOUT)
            dt = BCL_MAX_TIMEOUT;
        timeout_ns = (int64_t)ceil(dt * 1e9);
    }
    else {
        timeout_ns = -1;
    }

    if (timeout_ns == 0 && self->nfds == 0 && !self->signal_dispatch) {
        /* Only the internal fds are registered: call_soon_threadsafe has
         * queued its work already, so a zero-timeout poll could only
         * report signals, and with no add_signal_handler active their
         * Python handlers are all PyErr_CheckSignals() needs. */
        self->stats.polls_skipped++;
        if (PyErr_CheckSignals() < 0)
            return -1;
        n = 0;
    }
    else if (timeout_ns == 0) {
        self->stats.polls++;
        n = bcl_poller_wait(&self->poller, 0, evs, BCL_POLL_MAX_EVENTS);
    }
    else {
        int64_t t0 = bcl_stats_precise_ns();
        self->stats.polls++;
        self->polling = 1;
        Py_BEGIN_ALLOW_THREADS
        n = bcl_poller_wait(&self->poller, timeout_ns, evs, BCL_POLL_MAX_EVENTS);
        Py_END_ALLOW_THREADS
        self->polling = 0;
        self->stats.poll_ns += bcl_stats_precise_ns() - t0;
    }
    if (n < 0) {
        if (n != -EINTR) {
            bcl_raise_errno(n);
            return -1;
        }
        if (PyErr_CheckSignals() < 0)
            return -1;
        n = 0;
    }
    if (n > 0) {
        self->stats.io_events += (uint64_t)n;
        if (loop_dispatch_io(self, evs, n) < 0)
            return -1;
    }

    if (self->timers.len > 0) {
        double end;
        if (loop_now(self, &end) < 0)
            return -1;
        end += self->clock_resolution;
        while ((top = bcl_timers_peek(&self->timers)) != NULL && top->when < end) {
            bcl_handle *h = bcl_timers_pop(&self->timers);
            self->stats.timers_fired++;
            int r = bcl_ready_push(&self->ready, (PyObject *)h, NULL, 0);
            Py_DECREF(h);
            if (r < 0)
                return -1;
        }
    }

    /* the snapshot: whatever runs now schedules for the next iteration */
    Py_ssize_t ntodo = self->ready.len;
    bcl_entry e;
    int track = self->stats.slow_ns > 0;
    if (track)
        self->stats.last_ns = bcl_stats_coarse_ns();
    while (ntodo-- > 0 && bcl_ready_pop(&self->ready, &e)) {
        int r = loop_run_entry(self, &e);
        if (track)
            bcl_stats_after_entry(&self->stats, e.obj);
        Py_DECREF(e.obj);
        if (r < 0)
            return -1;
    }
    return 0;
}

static PyObject *
loop_run_once_meth(bcl_loop *self, PyObject *Py_UNUSED(ignored))
{
    if (self->closed)
        return raise_closed();
    if (loop_check_fork(self) < 0 || loop_run_once(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* The body of run_forever: iterate until stop(). boucle.Loop.run_forever
 * wraps it with asyncio's set-up and clean-up (running loop, asyncgen hooks). */
static PyObject *
loop_run(bcl_loop *self, PyObject *Py_UNUSED(ignored))
{
    if (self->closed)
        return raise_closed();
    if (self->running) {
        PyErr_SetString(PyExc_RuntimeError, "This event loop is already running");
        return NULL;
    }
    if (loop_check_fork(self) < 0)
        return NULL;
    self->running = 1;
    self->run_thread = PyThread_get_thread_ident();
    self->stats.run_start_ns = bcl_stats_precise_ns();
    int r;
    for (;;) {
        r = loop_run_once(self);
        if (r < 0 || self->stopping)
            break;
    }
    self->stats.run_ns += bcl_stats_precise_ns() - self->stats.run_start_ns;
    self->stats.run_start_ns = 0;
    self->running = 0;
    self->stopping = 0;
    if (r < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
loop_stop(bcl_loop *self, PyObject *Py_UNUSED(ignored))
{
    self->stopping = 1;
    Py_RETURN_NONE;
}

static PyObject *
loop_is_running(bcl_loop *self, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(self->thread_id != Py_None ? Py_True : Py_False);
}

static PyObject *
loop_is_closed(bcl_loop *self, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(self->closed ? Py_True : Py_False);
}

static PyObject *
loop_get_debug(bcl_loop *self, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(self->debug ? Py_True : Py_False);
}

/* Drop all queued work, timers and fd records, and close the kernel
 * objects. Called by boucle.Loop.close() after asyncio's own close. */
static PyObject *
loop_close_core(bcl_loop *self, PyObject *Py_UNUSED(ignored))
{
    self->closed = 1;
    bcl_ready_clear(&self->ready);
    bcl_timers_clear(&self->timers);
    bcl_fdmap_clear(&self->fds);
    self->nfds = 0;
    loop_close_kernel(self);
    Py_RETURN_NONE;
}

static PyObject *
loop_write_to_self(bcl_loop *self, PyObject *Py_UNUSED(ignored))
{
    if (self->wakeup_fd >= 0) {
        uint64_t one = 1;
        self->wakeup_pending = 1;
        (void)!write(self->wakeup_fd, &one, sizeof(one));
    }
    Py_RETURN_NONE;
}

static PyObject *
loop_timer_handle_cancelled(bcl_loop *self, PyObject *h)
{
    /* asyncio's TimerHandle.cancel() calls this before marking itself
     * cancelled; boucle's handles do the bookkeeping themselves. */
    Py_RETURN_NONE;
}

/* ---- fd interest ---------------------------------------------------- */

/* Change the poller interest of fd (slot s) to want, keeping nfds exact.
 * Returns 0 or -errno (the slot is unchanged on error). */
static int
loop_set_interest(bcl_loop *self, int fd, bcl_fdslot *s, uint32_t want)
{
    if (s->events == want)
        return 0;
    int err = bcl_poller_ctl(&self->poller, fd, s->events, want);
    if (err < 0)
        return err;
    self->nfds += (want != 0) - (s->events != 0);
    s->events = want;
    return 0;
}

int
bcl_loop_fd_attach(bcl_loop *self, int fd, PyObject *owner, bcl_work_fn fn)
{
    if (self->closed) {
        raise_closed();
        return -1;
    }
    if (loop_check_fork(self) < 0)
        return -1;
    bcl_fdslot *s = bcl_fdmap_get(&self->fds, fd);
    if (s == NULL)
        return -1;
    if (s->reader != NULL || s->writer != NULL || (s->owner != NULL && s->owner != owner)) {
        PyErr_Format(PyExc_RuntimeError, "File descriptor %d is used by another reader, writer or transport", fd);
        return -1;
    }
    Py_INCREF(owner);
    Py_XSETREF(s->owner, owner);
    s->owner_fn = fn;
    return 0;
}

int
bcl_loop_fd_interest(bcl_loop *self, int fd, uint32_t events)
{
    bcl_fdslot *s = bcl_fdmap_find(&self->fds, fd);
    if (s == NULL || s->owner == NULL) {
        PyErr_Format(PyExc_RuntimeError, "File descriptor %d is not attached", fd);
        return -1;
    }
    int err = loop_set_interest(self, fd, s, events);
    if (err < 0) {
        bcl_raise_errno(err);
        return -1;
    }
    return 0;
}

void
bcl_loop_fd_detach(bcl_loop *self, int fd)
{
    bcl_fdslot *s = bcl_fdmap_find(&self->fds, fd);
    if (s == NULL || s->owner == NULL)
        return;
    /* the fd may be closed already: it left the epoll set by itself then */
    if (loop_set_interest(self, fd, s, 0) < 0) {
        self->nfds -= s->events != 0;
        s->events = 0;
    }
    PyObject *owner = s->owner;
    s->owner = NULL;
    s->owner_fn = NULL;
    Py_DECREF(owner);
}

/* ---- readiness callbacks -------------------------------------------- */

/* The number an int or an object's fileno() stands for, unchecked (-1 for
 * a closed socket); ValueError "Invalid file object" when fileno() fails as
 * selectors' _fileobj_to_fd reports it. */
static int
fileobj_fileno(PyObject *fileobj, long *out)
{
    long fd = -1;
    if (PyLong_Check(fileobj)) {
        fd = PyLong_AsLong(fileobj);
        if (fd == -1 && PyErr_Occurred())
            return -1;
    }
    else {
        PyObject *r = PyObject_CallMethod(fileobj, "fileno", NULL);
        if (r != NULL) {
            PyObject *i = PyNumber_Index(r);
            Py_DECREF(r);
            fd = i ? PyLong_AsLong(i) : -1;
            Py_XDECREF(i);
        }
        if (PyErr_Occurred()) {
            if (PyErr_ExceptionMatches(PyExc_AttributeError) || PyErr_ExceptionMatches(PyExc_TypeError)
                    || PyErr_ExceptionMatches(PyExc_ValueError)) {
                PyErr_Clear();
                PyErr_Format(PyExc_ValueError, "Invalid file object: %R", fileobj);
            }
            return -1;
        }
    }
    *out = fd;
    return 0;
}

/* fd from an int or an object with fileno(), with selectors' errors. */
static int
fileobj_to_fd(PyObject *fileobj)
{
    long fd;
    if (fileobj_fileno(fileobj, &fd) < 0)
        return -1;
    if (fd < 0 || fd > INT32_MAX) {
        PyErr_Format(PyExc_ValueError, "Invalid file descriptor: %ld", fd);
        return -1;
    }
    return (int)fd;
}

/* The fd whose reader/writer was registered with this very object, or -1:
 * selectors find a registered file object by identity once it no longer has
 * a valid fileno() (a socket closed while it was being watched). */
static int
fdmap_find_fileobj(bcl_fdmap *m, PyObject *fileobj)
{
    for (int fd = 0; fd < m->cap; fd++) {
        if (m->slots[fd].fileobj == fileobj)
            return fd;
    }
    return -1;
}

/* add_reader/add_writer (public: 1) and _add_reader/_add_writer (0).
 * asyncio's own callers of the private ones pass sockets they hold open;
 * only the public ones pay for validating the fd where the backend does
 * not do it by itself (io_uring). */
static PyObject *
loop_add_io(bcl_loop *self, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames,
            int writer, const char *fname, int public)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) {
        PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%S'",
                     fname, PyTuple_GET_ITEM(kwnames, 0));
        return NULL;
    }
    if (nargs < 2) {
        PyErr_Format(PyExc_TypeError, "%s() missing required positional arguments: 'fd' and 'callback'", fname);
        return NULL;
    }
    int fd = fileobj_to_fd(args[0]);
    if (fd < 0)
        return NULL;
    if (self->closed)
        return raise_closed();
    if (loop_check_fork(self) < 0)
        return NULL;
    bcl_fdslot *s = bcl_fdmap_get(&self->fds, fd);
    if (s == NULL)
        return NULL;
    if (s->owner != NULL) {
        PyErr_Format(PyExc_RuntimeError, "File descriptor %R is used by transport %R", args[0], s->owner);
        return NULL;
    }
    bcl_handle *h = loop_make_handle(self, &bcl_handle_type, args[1], args + 2, nargs - 2, NULL);
    if (h == NULL)
        return NULL;
    s = bcl_fdmap_find(&self->fds, fd);   /* make_handle may have run Python code */
    int err = 0;
    if (public && s->events == 0)
        err = bcl_poller_check_fd(&self->poller, fd);
    uint32_t before = s->events;
    if (err == 0)
        err = loop_set_interest(self, fd, s, s->events | (writer ? BCL_EV_WRITE : BCL_EV_READ));
    if (err < 0) {
        Py_DECREF(h);
        return bcl_raise_errno(err);
    }
    if (s->events != before || s->fileobj == NULL)
        Py_XSETREF(s->fileobj, Py_NewRef(args[0]));
    bcl_handle **slot = writer ? &s->writer : &s->reader;
    bcl_handle *old = *slot;
    *slot = h;
    if (old != NULL) {
        bcl_handle_cancel(old, self->debug);
        Py_DECREF(old);
    }
    return Py_NewRef((PyObject *)h);
}

static PyObject *
loop_remove_io(bcl_loop *self, PyObject *fileobj, int writer, int check_owner)
{
    /* asyncio: remove_reader's _ensure_fd_no_transport only fails when
     * fileno() does; a closed loop answers False before the selector looks
     * at the fd; the selector finds a file object it was given by identity
     * when its fileno() is no longer valid. */
    long lfd = -1;
    int bad_object = 0;
    if (fileobj_fileno(fileobj, &lfd) < 0) {
        if (check_owner || !PyErr_ExceptionMatches(PyExc_ValueError))
            return NULL;
        bad_object = 1;     /* private variant: the selector searches first */
    }
    if (self->closed) {
        PyErr_Clear();
        Py_RETURN_FALSE;
    }
    if (!bad_object && lfd > INT32_MAX)
        Py_RETURN_FALSE;    /* a number the selector never registered */
    int fd;
    if (bad_object || lfd < 0) {
        fd = PyLong_Check(fileobj) ? -1 : fdmap_find_fileobj(&self->fds, fileobj);
        if (fd < 0) {
            if (!bad_object)
                PyErr_Format(PyExc_ValueError, "Invalid file descriptor: %ld", lfd);
            return NULL;
        }
        PyErr_Clear();
    }
    else
        fd = (int)lfd;
    if (loop_check_fork(self) < 0)
        return NULL;
    bcl_fdslot *s = bcl_fdmap_find(&self->fds, fd);
    if (s == NULL)
        Py_RETURN_FALSE;
    if (check_owner && s->owner != NULL) {
        /* asyncio's remove_reader/remove_writer: _ensure_fd_no_transport */
        PyErr_Format(PyExc_RuntimeError, "File descriptor %R is used by transport %R", fileobj, s->owner);
        return NULL;
    }
    bcl_handle **slot = writer ? &s->writer : &s->reader;
    bcl_handle *h = *slot;
    if (h == NULL)
        Py_RETURN_FALSE;
    *slot = NULL;
    uint32_t want = s->events & ~(writer ? BCL_EV_WRITE : BCL_EV_READ);
    /* a closed fd has left the epoll set already: errors don't matter here */
    if (loop_set_interest(self, fd, s, want) < 0) {
        self->nfds += (want != 0) - (s->events != 0);
        s->events = want;
    }
    if (s->reader == NULL && s->writer == NULL)
        Py_CLEAR(s->fileobj);
    bcl_handle_cancel(h, self->debug);
    Py_DECREF(h);
    Py_RETURN_TRUE;
}

static PyObject *
loop_add_reader(bcl_loop *self, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames)
{
    PyObject *h = loop_add_io(self, args, nargsf, kwnames, 0, "add_reader", 1);
    if (h == NULL)
        return NULL;
    Py_DECREF(h);
    Py_RETURN_NONE;
}

static PyObject *
loop_add_writer(bcl_loop *self, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames)
{
    PyObject *h = loop_add_io(self, args, nargsf, kwnames, 1, "add_writer", 1);
    if (h == NULL)
        return NULL;
    Py_DECREF(h);
    Py_RETURN_NONE;
}

/* _add_reader/_add_writer return the handle, as asyncio's selector loop does */
static PyObject *
loop_add_reader_priv(bcl_loop *self, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames)
{
    return loop_add_io(self, args, nargsf, kwnames, 0, "_add_reader", 0);
}

static PyObject *
loop_add_writer_priv(bcl_loop *self, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames)
{
    return loop_add_io(self, args, nargsf, kwnames, 1, "_add_writer", 0);
}

static PyObject *
loop_remove_reader(bcl_loop *self, PyObject *fd)
{
    return loop_remove_io(self, fd, 0, 1);
}

static PyObject *
loop_remove_writer(bcl_loop *self, PyObject *fd)
{
    return loop_remove_io(self, fd, 1, 1);
}

static PyObject *
loop_remove_reader_priv(bcl_loop *self, PyObject *fd)
{
    return loop_remove_io(self, fd, 0, 0);
}

static PyObject *
loop_remove_writer_priv(bcl_loop *self, PyObject *fd)
{
    return loop_remove_io(self, fd, 1, 0);
}

/* ---- attributes shared with asyncio's Python code -------------------- */

static PyObject *
get_flag(bcl_loop *self, void *off)
{
    return PyBool_FromLong(*((char *)self + (size_t)off));
}

static int
set_flag(bcl_loop *self, PyObject *v, void *off)
{
    if (v == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete attribute");
        return -1;
    }
    int b = PyObject_IsTrue(v);
    if (b < 0)
        return -1;
    *((char *)self + (size_t)off) = (char)b;
    return 0;
}

static PyObject *
get_thread_id(bcl_loop *self, void *c)
{
    return Py_NewRef(self->thread_id);
}

static int
set_thread_id(bcl_loop *self, PyObject *v, void *c)
{
    Py_XSETREF(self->thread_id, Py_NewRef(v ? v : Py_None));
    return 0;
}

static PyObject *
get_task_factory(bcl_loop *self, void *c)
{
    return Py_NewRef(self->task_factory);
}

static int
set_task_factory(bcl_loop *self, PyObject *v, void *c)
{
    Py_XSETREF(self->task_factory, Py_NewRef(v ? v : Py_None));
    return 0;
}

static PyObject *
get_clock_resolution(bcl_loop *self, void *c)
{
    return PyFloat_FromDouble(self->clock_resolution);
}

static int
set_clock_resolution(bcl_loop *self, PyObject *v, void *c)
{
    double d = v ? PyFloat_AsDouble(v) : -1.0;
    if (d == -1.0 && PyErr_Occurred())
        return -1;
    if (!(d >= 0)) {
        PyErr_SetString(PyExc_ValueError, "clock resolution must be >= 0");
        return -1;
    }
    self->clock_resolution = d;
    return 0;
}

static PyObject *
get_ready(bcl_loop *self, void *c)
{
    return bcl_ready_as_list(&self->ready);
}

static PyObject *
get_scheduled(bcl_loop *self, void *c)
{
    return bcl_timers_as_list(&self->timers);
}

static PyObject *
get_timer_cancelled_count(bcl_loop *self, void *c)
{
    return PyLong_FromSsize_t(self->timers.ncancelled);
}

/* asyncio's BaseEventLoop.__init__ assigns empty containers/zero to these;
 * the C loop owns the real ones, so only such resets are accepted. */
static int
set_reset_only(bcl_loop *self, PyObject *v, void *c)
{
    int t = v ? PyObject_IsTrue(v) : 1;
    if (t < 0)
        return -1;
    if (t) {
        PyErr_Format(PyExc_AttributeError, "'%s' is managed by boucle's C loop", (const char *)c);
        return -1;
    }
    return 0;
}

static PyObject *
get_signal_wakeup_fd(bcl_loop *self, void *c)
{
    return PyLong_FromLong(self->sig_wfd);
}

static PyObject *
get_poller_name(bcl_loop *self, void *c)
{
    return PyUnicode_FromString(bcl_poller_name(&self->poller));
}

/* loop.set_slow_callback_threshold(seconds): record callbacks that take at
 * least that long in stats()["slowest_callbacks"]; None or 0 turns it off. */
static PyObject *
loop_set_slow_threshold(bcl_loop *self, PyObject *arg)
{
    double secs = 0.0;
    if (arg != Py_None) {
        secs = PyFloat_AsDouble(arg);
        if (secs == -1.0 && PyErr_Occurred())
            return NULL;
        if (!(secs >= 0) || secs > 1e6) {
            PyErr_SetString(PyExc_ValueError, "threshold must be between 0 and 1e6 seconds, or None");
            return NULL;
        }
    }
    self->stats.slow_ns = (int64_t)(secs * 1e9);
    Py_RETURN_NONE;
}

/* loop.stats(): counters since the loop was created, gauges of now, and
 * the slowest callbacks seen (see stats.h for how they are measured). */
static PyObject *
loop_stats(bcl_loop *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *d = bcl_stats_as_dict(&self->stats);
    if (d == NULL)
        return NULL;
    PyObject *g = Py_BuildValue("{snsnsnsisOss}",
                                "ready", self->ready.len,
                                "timers", self->timers.len - self->timers.ncancelled,
                                "timers_cancelled", self->timers.ncancelled,
                                "fds", self->nfds,
                                "closed", self->closed ? Py_True : Py_False,
                                "backend", bcl_poller_name(&self->poller));
    if (g == NULL || PyDict_Update(d, g) < 0) {
        Py_XDECREF(g);
        Py_DECREF(d);
        return NULL;
    }
    Py_DECREF(g);
    return d;
}

#define FLAG_OFF(f) ((void *)offsetof(bcl_loop, f))

static PyGetSetDef loop_getset[] = {
    {"_closed", (getter)get_flag, (setter)set_flag, NULL, FLAG_OFF(closed)},
    {"_debug", (getter)get_flag, (setter)set_flag, NULL, FLAG_OFF(debug)},
    {"_stopping", (getter)get_flag, (setter)set_flag, NULL, FLAG_OFF(stopping)},
    {"_thread_id", (getter)get_thread_id, (setter)set_thread_id, NULL, NULL},
    {"_task_factory", (getter)get_task_factory, (setter)set_task_factory, NULL, NULL},
    {"_clock_resolution", (getter)get_clock_resolution, (setter)set_clock_resolution, NULL, NULL},
    {"_ready", (getter)get_ready, (setter)set_reset_only, "Snapshot of the ready queue.", "_ready"},
    {"_scheduled", (getter)get_scheduled, (setter)set_reset_only, "Snapshot of the timer heap.", "_scheduled"},
    {"_timer_cancelled_count", (getter)get_timer_cancelled_count, (setter)set_reset_only, NULL,
     "_timer_cancelled_count"},
    {"_signal_wakeup_fd", (getter)get_signal_wakeup_fd, NULL, NULL, NULL},
    {"_signal_dispatch", (getter)get_flag, (setter)set_flag, NULL, FLAG_OFF(signal_dispatch)},
    {"backend", (getter)get_poller_name, NULL,
     "the I/O backend this loop polls with: 'epoll' or 'io_uring'", NULL},
    {NULL}
};

#define FASTKW (METH_FASTCALL | METH_KEYWORDS)

static PyMethodDef loop_methods[] = {
    {"call_soon", (PyCFunction)(void (*)(void))loop_call_soon, FASTKW,
     "call_soon(callback, *args, context=None): run callback in the next iteration."},
    {"call_soon_threadsafe", (PyCFunction)(void (*)(void))loop_call_soon_threadsafe, FASTKW,
     "Like call_soon(), callable from any thread; wakes the loop."},
    {"call_later", (PyCFunction)(void (*)(void))loop_call_later, FASTKW,
     "call_later(delay, callback, *args, context=None) -> TimerHandle"},
    {"call_at", (PyCFunction)(void (*)(void))loop_call_at, FASTKW,
     "call_at(when, callback, *args, context=None) -> TimerHandle"},
    {"time", (PyCFunction)loop_time, METH_NOARGS, "Monotonic time of the loop's clock."},
    {"create_future", (PyCFunction)loop_create_future, METH_NOARGS, "A new asyncio.Future bound to this loop."},
    {"create_task", (PyCFunction)(void (*)(void))loop_create_task, FASTKW,
     "create_task(coro, *, name=None, context=None) -> asyncio.Task"},
    {"stop", (PyCFunction)loop_stop, METH_NOARGS, "Stop after the current iteration."},
    {"is_running", (PyCFunction)loop_is_running, METH_NOARGS, NULL},
    {"is_closed", (PyCFunction)loop_is_closed, METH_NOARGS, NULL},
    {"get_debug", (PyCFunction)loop_get_debug, METH_NOARGS, NULL},
    {"add_reader", (PyCFunction)(void (*)(void))loop_add_reader, FASTKW, "add_reader(fd, callback, *args)"},
    {"add_writer", (PyCFunction)(void (*)(void))loop_add_writer, FASTKW, "add_writer(fd, callback, *args)"},
    {"remove_reader", (PyCFunction)loop_remove_reader, METH_O, "remove_reader(fd) -> bool"},
    {"remove_writer", (PyCFunction)loop_remove_writer, METH_O, "remove_writer(fd) -> bool"},
    {"_add_reader", (PyCFunction)(void (*)(void))loop_add_reader_priv, FASTKW, NULL},
    {"_add_writer", (PyCFunction)(void (*)(void))loop_add_writer_priv, FASTKW, NULL},
    {"_remove_reader", (PyCFunction)loop_remove_reader_priv, METH_O, NULL},
    {"_remove_writer", (PyCFunction)loop_remove_writer_priv, METH_O, NULL},
    {"_run_once", (PyCFunction)loop_run_once_meth, METH_NOARGS, "Run one iteration."},
    {"_run", (PyCFunction)loop_run, METH_NOARGS, "Iterate until stop() (the body of run_forever)."},
    {"_close_core", (PyCFunction)loop_close_core, METH_NOARGS, NULL},
    {"_write_to_self", (PyCFunction)loop_write_to_self, METH_NOARGS, NULL},
    {"_timer_handle_cancelled", (PyCFunction)loop_timer_handle_cancelled, METH_O, NULL},
    {"set_slow_callback_threshold", (PyCFunction)loop_set_slow_threshold, METH_O,
     "set_slow_callback_threshold(seconds or None): track callbacks at least that slow "
     "in stats() (off by default: it reads a coarse clock after every callback)."},
    {"stats", (PyCFunction)loop_stats, METH_NOARGS,
     "stats() -> dict: iterations, callbacks, I/O events, timers fired, polls, time blocked "
     "polling vs running, pending timers/fds, and the slowest callbacks (seconds, repr)."},
    {NULL}
};

PyTypeObject bcl_loop_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "boucle._core.Loop",
    .tp_basicsize = sizeof(bcl_loop),
    .tp_dealloc = (destructor)loop_dealloc,
    .tp_setattro = loop_setattro,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .tp_doc = "The C core of boucle's event loop (use boucle.Loop).",
    .tp_traverse = (traverseproc)loop_traverse,
    .tp_clear = (inquiry)loop_clear,
    .tp_methods = loop_methods,
    .tp_getset = loop_getset,
    .tp_new = loop_new,
};

int
bcl_loop_init_type(PyObject *module)
{
    if (PyType_Ready(&bcl_loop_type) < 0)
        return -1;
    str_time = PyUnicode_InternFromString("time");
    if (str_time == NULL)
        return -1;
    c_time_descr = PyObject_GetAttr((PyObject *)&bcl_loop_type, str_time);
    if (c_time_descr == NULL)
        return -1;
    return PyModule_AddObjectRef(module, "Loop", (PyObject *)&bcl_loop_type);
}
