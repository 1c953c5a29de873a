/* poller_epoll.c - the epoll backend (see poller.h), boucle's default.
 *
 * Level-triggered, like the selectors module, so callbacks that leave data
 * unread are called again. epoll_pwait2 (Linux 5.11+) gives nanosecond
 * timeouts, so a timer due in 300 us does not make the loop spin or sleep a
 * whole millisecond; older kernels fall back to epoll_wait with the timeout
 * rounded up to the next millisecond (never early, never a busy loop). */
#include "poller.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef __NR_epoll_pwait2
#  if defined(__x86_64__) || defined(__aarch64__) || defined(__i386__) || defined(__arm__)
#    define __NR_epoll_pwait2 441
#  endif
#endif

int
bcl_epoll_open(bcl_poller *p)
{
    p->fd = epoll_create1(EPOLL_CLOEXEC);
    if (p->fd < 0)
        return -errno;
#ifdef __NR_epoll_pwait2
    p->has_pwait2 = 1;
#else
    p->has_pwait2 = 0;
#endif
    return 0;
}

void
bcl_epoll_close(bcl_poller *p)
{
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
}

static uint32_t
to_epoll(uint32_t events)
{
    return ((events & BCL_EV_READ) ? EPOLLIN : 0) | ((events & BCL_EV_WRITE) ? EPOLLOUT : 0);
}

int
bcl_epoll_ctl(bcl_poller *p, int fd, uint32_t old_events, uint32_t new_events)
{
    struct epoll_event ev = {0};
    ev.events = to_epoll(new_events);
    ev.data.fd = fd;
    if (new_events == 0) {
        if (old_events == 0)
            return 0;
        if (epoll_ctl(p->fd, EPOLL_CTL_DEL, fd, &ev) < 0) {
            /* closed (EBADF) or closed-and-reused (ENOENT): nothing to remove */
            if (errno == ENOENT || errno == EBADF)
                return 0;
            return -errno;
        }
        return 0;
    }
    int op = old_events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(p->fd, op, fd, &ev) == 0)
        return 0;
    if (op == EPOLL_CTL_MOD && errno == ENOENT)
        op = EPOLL_CTL_ADD;         /* fd was closed and reopened: register anew */
    else if (op == EPOLL_CTL_ADD && errno == EEXIST)
        op = EPOLL_CTL_MOD;
    else
        return -errno;
    if (epoll_ctl(p->fd, op, fd, &ev) < 0)
        return -errno;
    return 0;
}

int
bcl_epoll_wait(bcl_poller *p, int64_t timeout_ns, bcl_poll_event *out, int max)
{
    struct epoll_event evs[BCL_POLL_MAX_EVENTS];
    int n = -1;
    if (max > BCL_POLL_MAX_EVENTS)
        max = BCL_POLL_MAX_EVENTS;
#ifdef __NR_epoll_pwait2
    if (p->has_pwait2) {
        struct timespec ts, *tsp = NULL;
        if (timeout_ns >= 0) {
            ts.tv_sec = (time_t)(timeout_ns / 1000000000);
            ts.tv_nsec = (long)(timeout_ns % 1000000000);
            tsp = &ts;
        }
        n = (int)syscall(__NR_epoll_pwait2, p->fd, evs, max, tsp, NULL, 0);
        if (n < 0 && (errno == ENOSYS || errno == EPERM))
            p->has_pwait2 = 0;      /* old kernel or seccomp: use epoll_wait */
        else if (n < 0)
            return -errno;
    }
#endif
    if (n < 0) {
        int ms;
        if (timeout_ns < 0)
            ms = -1;
        else if (timeout_ns > (int64_t)INT32_MAX * 1000000)
            ms = INT32_MAX;
        else
            ms = (int)((timeout_ns + 999999) / 1000000);
        n = epoll_wait(p->fd, evs, max, ms);
        if (n < 0)
            return -errno;
    }
    for (int i = 0; i < n; i++) {
        uint32_t e = evs[i].events, m = 0;
        /* like selectors.EpollSelector: anything but EPOLLOUT counts as
         * readable, anything but EPOLLIN as writable (errors wake both) */
        if (e & ~(uint32_t)EPOLLOUT)
            m |= BCL_EV_READ;
        if (e & ~(uint32_t)EPOLLIN)
            m |= BCL_EV_WRITE;
        out[i].fd = evs[i].data.fd;
        out[i].events = m;
    }
    return n;
}
