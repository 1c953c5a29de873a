/* poller.h - the I/O readiness backend interface.
 *
 * A backend watches file descriptors for readability/writability and waits
 * for events with a timeout. Two implementations: epoll (poller_epoll.c, the
 * default) and io_uring (poller_uring.c); poller.c picks one at loop
 * creation and forwards each operation to it. Operations return 0 or -errno
 * and never touch Python objects, so wait() can run without the GIL. Both
 * backends are level-triggered: an fd whose data was left unread is
 * reported again by the next wait. */
#ifndef BCL_POLLER_H
#define BCL_POLLER_H

#include <stdint.h>

#define BCL_EV_READ   0x1u
#define BCL_EV_WRITE  0x2u

/* One ready fd as reported by wait(): events is a mask of BCL_EV_* (errors
 * and hang-ups are reported as both, like the selectors module does). */
typedef struct {
    int fd;
    uint32_t events;
} bcl_poll_event;

#define BCL_POLL_MAX_EVENTS 512

/* Backends, as named by bcl_poller_backend_parse / bcl_poller_name. AUTO is
 * only an argument of open(): io_uring when the kernel (or a seccomp
 * policy) allows it, else epoll. */
enum {
    BCL_BACKEND_AUTO = 0,
    BCL_BACKEND_EPOLL = 1,
    BCL_BACKEND_IO_URING = 2,
};

struct bcl_uring;              /* poller_uring.c's private state */

/* Invariants: kind is EPOLL or IO_URING once open() succeeded; fd >= 0
 * while open (the epoll instance or the ring), -1 once closed; uring is
 * non-NULL exactly when kind is IO_URING and the poller is open;
 * has_pwait2 (epoll only) is 1 until the kernel refuses epoll_pwait2, then
 * 0 for the life of the poller. */
typedef struct {
    int kind;
    int fd;
    int has_pwait2;
    struct bcl_uring *uring;
} bcl_poller;

/* Open a poller of the given backend (AUTO: io_uring, else epoll). On
 * failure returns -errno and leaves p closed (fd == -1). */
int bcl_poller_open(bcl_poller *p, int backend);
void bcl_poller_close(bcl_poller *p);
/* Change the interest of fd from old_events to new_events (BCL_EV_* masks;
 * 0 means not registered). Handles fds that were closed and reused behind
 * our back (ENOENT on modify, EEXIST on add). io_uring applies changes at
 * the next wait (so a change undone before then costs nothing), except
 * dropping all interest, which is immediate for both. */
int bcl_poller_ctl(bcl_poller *p, int fd, uint32_t old_events, uint32_t new_events);
/* Wait at most timeout_ns (-1: forever, 0: poll). Returns the number of
 * events written to out (<= max), or -errno (-EINTR on a signal). */
int bcl_poller_wait(bcl_poller *p, int64_t timeout_ns, bcl_poll_event *out, int max);
const char *bcl_poller_name(const bcl_poller *p);
/* Before registering an fd a user gave: 0, or the -errno epoll_ctl(ADD)
 * would give (EBADF for a closed fd, EPERM for a regular file or a
 * directory). epoll reports these from ctl() itself, io_uring only when
 * the poll request completes, too late for add_reader to raise. */
int bcl_poller_check_fd(bcl_poller *p, int fd);
/* "auto", "epoll", "io_uring" -> BCL_BACKEND_*, or -1. */
int bcl_poller_backend_parse(const char *name);

/* ---- the backends (called through the functions above) ---- */
int bcl_epoll_open(bcl_poller *p);
void bcl_epoll_close(bcl_poller *p);
int bcl_epoll_ctl(bcl_poller *p, int fd, uint32_t old_events, uint32_t new_events);
int bcl_epoll_wait(bcl_poller *p, int64_t timeout_ns, bcl_poll_event *out, int max);

int bcl_uring_open(bcl_poller *p);
void bcl_uring_close(bcl_poller *p);
int bcl_uring_ctl(bcl_poller *p, int fd, uint32_t old_events, uint32_t new_events);
int bcl_uring_wait(bcl_poller *p, int64_t timeout_ns, bcl_poll_event *out, int max);

#endif
