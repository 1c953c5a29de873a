/* poller_uring.c - the io_uring backend (see poller.h).
 *
 * Readiness through one-shot IORING_OP_POLL_ADD requests, talking to the
 * kernel with raw syscalls and the uapi header only (no liburing: the three
 * ring operations used here are a few dozen lines, and a build dependency
 * would cost every user more than it saves us).
 *
 * Level-triggered like epoll: a poll request completes once, and the fd is
 * re-armed by the next wait() if its interest is still set; arming checks
 * readiness at once, so data left unread is reported again. Interest
 * changes (ctl) only mark the fd dirty; wait() turns every dirty fd into at
 * most a POLL_REMOVE and a POLL_ADD, queued in the submission ring and
 * handed to the kernel by the same io_uring_enter that waits. A change
 * undone before the next wait costs nothing, and a busy iteration costs one
 * system call however many fds it re-arms.
 *
 * Each request's user_data carries the fd, a per-fd generation and a tag;
 * cancelling a request bumps the generation, so a completion racing with
 * its cancellation (or the -ECANCELED it produces) is recognised as stale
 * and dropped. A request cancelled by the kernel because the thread that
 * submitted it exited (-ECANCELED with the current generation) is simply
 * armed again. */
#include "poller.h"

#include <errno.h>
#include <linux/io_uring.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef __NR_io_uring_setup
#  define __NR_io_uring_setup 425
#endif
#ifndef __NR_io_uring_enter
#  define __NR_io_uring_enter 426
#endif

#define URING_SQ_ENTRIES 1024u
#define URING_CQ_ENTRIES 8192u

#define TAG_POLL   1u     /* a POLL_ADD for fd */
#define TAG_IGNORE 2u     /* a POLL_REMOVE: its own completion means nothing */

/* Per-fd state. Invariants: armed != 0 exactly when a POLL_ADD with
 * generation gen is in flight (queued or in the kernel) for this fd, and
 * armed is the mask it asked for; dirty is 1 exactly when the fd is in the
 * ring's dirty list; want is the interest ctl() last set. */
typedef struct {
    uint32_t want;
    uint32_t armed;
    uint32_t gen;
    uint8_t dirty;
} uring_fd;

/* The ring and its bookkeeping. Invariants: the three mappings and fd are
 * valid while the struct exists; sqe_tail - *sq_head <= sq_entries (SQEs
 * written and not yet consumed by the kernel); fds has fds_cap entries, all
 * zero beyond the highest fd ever registered; dirty holds ndirty distinct
 * fds, each with fds[fd].dirty == 1. */
struct bcl_uring {
    int fd;
    /* submission queue */
    unsigned *sq_head, *sq_tail, *sq_mask, *sq_array;
    unsigned sq_entries;
    unsigned sqe_tail;               /* our tail, published at submit */
    struct io_uring_sqe *sqes;
    /* completion queue */
    unsigned *cq_head, *cq_tail, *cq_mask;
    struct io_uring_cqe *cqes;
    /* mappings */
    void *sq_map, *cq_map;
    size_t sq_map_len, cq_map_len, sqes_len;
    /* per-fd state and the fds to reconcile at the next wait */
    uring_fd *fds;
    int fds_cap;
    int *dirty;
    int ndirty, dirty_cap;
    pid_t owner;                     /* the process whose requests these are */
};

static inline uint64_t
ud_make(unsigned tag, uint32_t gen, int fd)
{
    return ((uint64_t)tag << 56) | ((uint64_t)(gen & 0xffffffu) << 32) | (uint32_t)fd;
}

static int
uring_enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags,
            void *arg, size_t argsz)
{
    long r = syscall(__NR_io_uring_enter, fd, to_submit, min_complete, flags, arg, argsz);
    return r < 0 ? -errno : (int)r;
}

static void
uring_free(struct bcl_uring *u)
{
    if (u->sqes != NULL && u->sqes != MAP_FAILED)
        munmap(u->sqes, u->sqes_len);
    if (u->cq_map != NULL && u->cq_map != MAP_FAILED && u->cq_map != u->sq_map)
        munmap(u->cq_map, u->cq_map_len);
    if (u->sq_map != NULL && u->sq_map != MAP_FAILED)
        munmap(u->sq_map, u->sq_map_len);
    if (u->fd >= 0)
        close(u->fd);
    free(u->fds);
    free(u->dirty);
    free(u);
}

int
bcl_uring_open(bcl_poller *p)
{
    struct io_uring_params params;
    struct bcl_uring *u = calloc(1, sizeof(*u));
    int err;
    if (u == NULL)
        return -ENOMEM;
    u->fd = -1;

    memset(&params, 0, sizeof(params));
    params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
    params.cq_entries = URING_CQ_ENTRIES;
    u->fd = (int)syscall(__NR_io_uring_setup, URING_SQ_ENTRIES, &params);
    if (u->fd < 0 && errno == EINVAL) {
        /* kernels before 5.18 do not know SUBMIT_ALL */
        memset(&params, 0, sizeof(params));
        params.flags = IORING_SETUP_CQSIZE;
        params.cq_entries = URING_CQ_ENTRIES;
        u->fd = (int)syscall(__NR_io_uring_setup, URING_SQ_ENTRIES, &params);
    }
    if (u->fd < 0) {
        err = -errno;
        goto fail;
    }
    /* timeouts on enter (5.11), no dropped completions (5.5), one mapping
     * for both rings (5.4): refuse older kernels, epoll serves them */
    if (!(params.features & IORING_FEAT_EXT_ARG) || !(params.features & IORING_FEAT_NODROP)
            || !(params.features & IORING_FEAT_SINGLE_MMAP)) {
        err = -ENOSYS;
        goto fail;
    }

    u->sq_map_len = params.sq_off.array + params.sq_entries * sizeof(unsigned);
    u->cq_map_len = params.cq_off.cqes + params.cq_entries * sizeof(struct io_uring_cqe);
    if (u->cq_map_len > u->sq_map_len)
        u->sq_map_len = u->cq_map_len;
    u->sq_map = mmap(NULL, u->sq_map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                     u->fd, IORING_OFF_SQ_RING);
    if (u->sq_map == MAP_FAILED) {
        err = -errno;
        goto fail;
    }
    u->cq_map = u->sq_map;
    u->sqes_len = params.sq_entries * sizeof(struct io_uring_sqe);
    u->sqes = mmap(NULL, u->sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                   u->fd, IORING_OFF_SQES);
    if (u->sqes == MAP_FAILED) {
        err = -errno;
        goto fail;
    }
    char *sq = u->sq_map;
    u->sq_head = (unsigned *)(sq + params.sq_off.head);
    u->sq_tail = (unsigned *)(sq + params.sq_off.tail);
    u->sq_mask = (unsigned *)(sq + params.sq_off.ring_mask);
    u->sq_array = (unsigned *)(sq + params.sq_off.array);
    u->sq_entries = params.sq_entries;
    u->sqe_tail = *u->sq_tail;
    u->cq_head = (unsigned *)(sq + params.cq_off.head);
    u->cq_tail = (unsigned *)(sq + params.cq_off.tail);
    u->cq_mask = (unsigned *)(sq + params.cq_off.ring_mask);
    u->cqes = (struct io_uring_cqe *)(sq + params.cq_off.cqes);
    /* SQE i always sits in slot i of the indirection array */
    for (unsigned i = 0; i < u->sq_entries; i++)
        u->sq_array[i] = i;

    u->owner = getpid();
    p->fd = u->fd;
    p->uring = u;
    return 0;
fail:
    uring_free(u);
    return err;
}

/* Hand every written SQE to the kernel without waiting. -EBUSY/-EAGAIN
 * (completions must be reaped first, or the kernel is short of memory) are
 * returned, not retried: the SQEs stay queued for the next wait. */
static int
uring_flush(struct bcl_uring *u)
{
    __atomic_store_n(u->sq_tail, u->sqe_tail, __ATOMIC_RELEASE);
    for (;;) {
        unsigned pending = u->sqe_tail - __atomic_load_n(u->sq_head, __ATOMIC_ACQUIRE);
        if (pending == 0)
            return 0;
        int r = uring_enter(u->fd, pending, 0, 0, NULL, 0);
        if (r < 0 && r != -EINTR)
            return r;
    }
}

/* A free SQE, zeroed; submits what is queued when the ring is full. */
static struct io_uring_sqe *
uring_sqe(struct bcl_uring *u, int *err)
{
    unsigned head = __atomic_load_n(u->sq_head, __ATOMIC_ACQUIRE);
    if (u->sqe_tail - head >= u->sq_entries) {
        if ((*err = uring_flush(u)) < 0)
            return NULL;
    }
    struct io_uring_sqe *sqe = &u->sqes[u->sqe_tail & *u->sq_mask];
    u->sqe_tail++;
    memset(sqe, 0, sizeof(*sqe));
    return sqe;
}

/* Cancel the poll request of fd armed with generation gen. */
static void
uring_prep_remove(struct io_uring_sqe *sqe, int fd, uint32_t gen)
{
    sqe->opcode = IORING_OP_POLL_REMOVE;
    sqe->fd = -1;
    sqe->addr = ud_make(TAG_POLL, gen, fd);
    sqe->user_data = ud_make(TAG_IGNORE, 0, fd);
}

/* Closing the ring does not cancel its poll requests synchronously: the
 * kernel tears a ring down in a worker, and until then every armed request
 * keeps its file open (a listener closed right after loop.close() would
 * still accept). So the owner cancels every armed request first, the way
 * ctl() does when interest drops to 0, and only then lets the ring go. In a
 * forked child the requests are the parent's: only our handle goes. */
static void
uring_cancel_all(struct bcl_uring *u)
{
    int err = 0;
    for (int fd = 0; fd < u->fds_cap; fd++) {
        uring_fd *s = &u->fds[fd];
        if (s->armed == 0)
            continue;
        struct io_uring_sqe *sqe = uring_sqe(u, &err);
        if (sqe == NULL)
            break;                      /* the worker will cancel the rest */
        uring_prep_remove(sqe, fd, s->gen);
        s->gen++;
        s->armed = 0;
    }
    __atomic_store_n(u->sq_tail, u->sqe_tail, __ATOMIC_RELEASE);
    unsigned n = u->sqe_tail - __atomic_load_n(u->sq_head, __ATOMIC_ACQUIRE);
    if (n > 0)
        (void)uring_enter(u->fd, n, 0, IORING_ENTER_GETEVENTS, NULL, 0);
}

void
bcl_uring_close(bcl_poller *p)
{
    struct bcl_uring *u = p->uring;
    if (u != NULL) {
        if (u->owner == getpid())
            uring_cancel_all(u);
        uring_free(u);
    }
    p->uring = NULL;
    p->fd = -1;
}

static int
uring_grow(struct bcl_uring *u, int fd)
{
    if (fd < u->fds_cap)
        return 0;
    int cap = u->fds_cap ? u->fds_cap : 64;
    while (cap <= fd)
        cap *= 2;
    uring_fd *nf = realloc(u->fds, (size_t)cap * sizeof(*nf));
    if (nf == NULL)
        return -ENOMEM;
    memset(nf + u->fds_cap, 0, (size_t)(cap - u->fds_cap) * sizeof(*nf));
    u->fds = nf;
    u->fds_cap = cap;
    return 0;
}

static int
uring_mark_dirty(struct bcl_uring *u, int fd)
{
    if (u->fds[fd].dirty)
        return 0;
    if (u->ndirty == u->dirty_cap) {
        int cap = u->dirty_cap ? u->dirty_cap * 2 : 64;
        int *nd = realloc(u->dirty, (size_t)cap * sizeof(*nd));
        if (nd == NULL)
            return -ENOMEM;
        u->dirty = nd;
        u->dirty_cap = cap;
    }
    u->dirty[u->ndirty++] = fd;
    u->fds[fd].dirty = 1;
    return 0;
}

int
bcl_uring_ctl(bcl_poller *p, int fd, uint32_t old_events, uint32_t new_events)
{
    struct bcl_uring *u = p->uring;
    (void)old_events;
    if (fd < 0)
        return -EBADF;
    if (new_events == 0 && fd >= u->fds_cap)
        return 0;
    int err = uring_grow(u, fd);
    if (err < 0)
        return err;
    uring_fd *s = &u->fds[fd];
    s->want = new_events;
    if (new_events == 0 && s->armed != 0) {
        /* Dropping all interest is what precedes close(): a poll request
         * holds a reference to the file, so the socket would outlive its fd
         * (a closed listener still accepting, a FIN not sent) until the next
         * wait. Cancel now, like epoll_ctl(DEL) would. */
        int err = 0;
        struct io_uring_sqe *sqe = uring_sqe(u, &err);
        if (sqe == NULL)
            return err;
        uring_prep_remove(sqe, fd, s->gen);
        s->gen++;
        s->armed = 0;
        __atomic_store_n(u->sq_tail, u->sqe_tail, __ATOMIC_RELEASE);
        unsigned n = u->sqe_tail - __atomic_load_n(u->sq_head, __ATOMIC_ACQUIRE);
        int r = uring_enter(u->fd, n, 0, IORING_ENTER_GETEVENTS, NULL, 0);
        if (r < 0 && r != -EINTR && r != -EBUSY && r != -EAGAIN)
            return r;
        return 0;
    }
    /* other changes wait for the next wait(), batched with it */
    if (s->armed != new_events)
        return uring_mark_dirty(u, fd);
    return 0;
}

static uint32_t
to_poll(uint32_t events)
{
    return ((events & BCL_EV_READ) ? POLLIN : 0) | ((events & BCL_EV_WRITE) ? POLLOUT : 0);
}

/* Turn the dirty fds into SQEs: cancel a request whose mask is wrong, arm
 * one where interest is set and nothing is armed. */
static int
uring_reconcile(struct bcl_uring *u)
{
    int err = 0;
    int i;
    for (i = 0; i < u->ndirty; i++) {
        int fd = u->dirty[i];
        uring_fd *s = &u->fds[fd];
        struct io_uring_sqe *sqe;
        if (s->armed != 0 && s->armed != s->want) {
            if ((sqe = uring_sqe(u, &err)) == NULL)
                break;
            uring_prep_remove(sqe, fd, s->gen);
            s->gen++;
            s->armed = 0;
        }
        if (s->armed == 0 && s->want != 0) {
            if ((sqe = uring_sqe(u, &err)) == NULL)
                break;
            sqe->opcode = IORING_OP_POLL_ADD;
            sqe->fd = fd;
            sqe->poll32_events = to_poll(s->want);
            sqe->user_data = ud_make(TAG_POLL, s->gen, fd);
            s->armed = s->want;
        }
        s->dirty = 0;
    }
    if (i < u->ndirty) {
        /* out of memory mid-way: keep the rest for the next wait */
        memmove(u->dirty, u->dirty + i, (size_t)(u->ndirty - i) * sizeof(int));
        u->ndirty -= i;
        return err;
    }
    u->ndirty = 0;
    return 0;
}

/* Move completions to out (at most max). */
static int
uring_reap(struct bcl_uring *u, bcl_poll_event *out, int max)
{
    unsigned head = *u->cq_head;
    unsigned tail = __atomic_load_n(u->cq_tail, __ATOMIC_ACQUIRE);
    int n = 0;
    while (head != tail && n < max) {
        struct io_uring_cqe *cqe = &u->cqes[head & *u->cq_mask];
        uint64_t ud = cqe->user_data;
        int res = cqe->res;
        head++;
        if ((unsigned)(ud >> 56) != TAG_POLL)
            continue;
        int fd = (int)(uint32_t)ud;
        uint32_t gen = (uint32_t)(ud >> 32) & 0xffffffu;
        if (fd >= u->fds_cap)
            continue;
        uring_fd *s = &u->fds[fd];
        if ((s->gen & 0xffffffu) != gen || s->armed == 0)
            continue;                   /* cancelled since: stale */
        s->armed = 0;
        if (res == -ECANCELED) {
            /* the thread that armed it exited: arm it again */
            if (s->want)
                (void)uring_mark_dirty(u, fd);
            continue;
        }
        if (res < 0)
            continue;                   /* EBADF: closed behind our back, like epoll */
        if (s->want)
            (void)uring_mark_dirty(u, fd);
        uint32_t e = (uint32_t)res, m = 0;
        /* as in the epoll backend: errors and hang-ups wake both sides */
        if (e & ~(uint32_t)POLLOUT)
            m |= BCL_EV_READ;
        if (e & ~(uint32_t)POLLIN)
            m |= BCL_EV_WRITE;
        out[n].fd = fd;
        out[n].events = m;
        n++;
    }
    __atomic_store_n(u->cq_head, head, __ATOMIC_RELEASE);
    return n;
}

int
bcl_uring_wait(bcl_poller *p, int64_t timeout_ns, bcl_poll_event *out, int max)
{
    struct bcl_uring *u = p->uring;
    struct io_uring_getevents_arg arg;
    struct __kernel_timespec ts;
    int err;

    if (max > BCL_POLL_MAX_EVENTS)
        max = BCL_POLL_MAX_EVENTS;
    /* a full ring that the kernel cannot take now (-EBUSY, -EAGAIN): the
     * rest stays dirty; this wait reaps, which makes room */
    if ((err = uring_reconcile(u)) < 0 && err != -EBUSY && err != -EAGAIN)
        return err;
    __atomic_store_n(u->sq_tail, u->sqe_tail, __ATOMIC_RELEASE);
    unsigned to_submit = u->sqe_tail - __atomic_load_n(u->sq_head, __ATOMIC_ACQUIRE);
    int have = *u->cq_head != __atomic_load_n(u->cq_tail, __ATOMIC_ACQUIRE);

    memset(&arg, 0, sizeof(arg));
    unsigned min_complete = 1;
    if (timeout_ns == 0 || have)
        min_complete = 0;               /* poll: submit, run completions, no sleep */
    else if (timeout_ns > 0) {
        ts.tv_sec = timeout_ns / 1000000000;
        ts.tv_nsec = timeout_ns % 1000000000;
        arg.ts = (uint64_t)(uintptr_t)&ts;
    }
    int r = uring_enter(u->fd, to_submit, min_complete,
                        IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &arg, sizeof(arg));
    if (r < 0 && r != -ETIME && r != -EBUSY && r != -EAGAIN) {
        if (r != -EINTR)
            return r;
        /* interrupted: report what completed, or the signal */
        int n = uring_reap(u, out, max);
        return n > 0 ? n : -EINTR;
    }
    return uring_reap(u, out, max);
}
