/* poller.c - pick a readiness backend and forward to it (see poller.h).
 *
 * The switch costs a predictable branch per call; the backends stay free of
 * each other. */
#include "poller.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

int
bcl_poller_open(bcl_poller *p, int backend)
{
    int err;
    p->fd = -1;
    p->uring = NULL;
    p->has_pwait2 = 0;
    switch (backend) {
    case BCL_BACKEND_EPOLL:
        p->kind = BCL_BACKEND_EPOLL;
        return bcl_epoll_open(p);
    case BCL_BACKEND_IO_URING:
        p->kind = BCL_BACKEND_IO_URING;
        return bcl_uring_open(p);
    case BCL_BACKEND_AUTO:
        p->kind = BCL_BACKEND_IO_URING;
        if ((err = bcl_uring_open(p)) == 0)
            return 0;
        /* refused (old kernel, seccomp, io_uring_disabled sysctl, ...) */
        p->kind = BCL_BACKEND_EPOLL;
        return bcl_epoll_open(p);
    default:
        return -EINVAL;
    }
}

void
bcl_poller_close(bcl_poller *p)
{
    if (p->kind == BCL_BACKEND_IO_URING)
        bcl_uring_close(p);
    else
        bcl_epoll_close(p);
}

int
bcl_poller_ctl(bcl_poller *p, int fd, uint32_t old_events, uint32_t new_events)
{
    if (p->kind == BCL_BACKEND_IO_URING)
        return bcl_uring_ctl(p, fd, old_events, new_events);
    return bcl_epoll_ctl(p, fd, old_events, new_events);
}

int
bcl_poller_wait(bcl_poller *p, int64_t timeout_ns, bcl_poll_event *out, int max)
{
    if (p->kind == BCL_BACKEND_IO_URING)
        return bcl_uring_wait(p, timeout_ns, out, max);
    return bcl_epoll_wait(p, timeout_ns, out, max);
}

const char *
bcl_poller_name(const bcl_poller *p)
{
    return p->kind == BCL_BACKEND_IO_URING ? "io_uring" : "epoll";
}

int
bcl_poller_check_fd(bcl_poller *p, int fd)
{
    struct stat st;
    if (p->kind != BCL_BACKEND_IO_URING)
        return 0;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))
        return -EPERM;
    return 0;
}

int
bcl_poller_backend_parse(const char *name)
{
    if (strcmp(name, "auto") == 0)
        return BCL_BACKEND_AUTO;
    if (strcmp(name, "epoll") == 0)
        return BCL_BACKEND_EPOLL;
    if (strcmp(name, "io_uring") == 0)
        return BCL_BACKEND_IO_URING;
    return -1;
}
