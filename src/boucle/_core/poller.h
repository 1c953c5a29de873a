/* poller.h - the I/O readiness backend interface.
 *
 * A backend watches file descriptors for readability/writability and waits
 * for events with a timeout. epoll is the default (poller_epoll.c); another
 * backend implements the same operations. Operations return 0 or -errno and
 * never touch Python objects, so wait() can run without the GIL. */
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

/* Invariants: fd >= 0 while open, -1 once closed; has_pwait2 is 1 until the
 * kernel refuses epoll_pwait2, then 0 for the life of the poller. */
typedef struct {
    int fd;            /* the epoll instance */
    int has_pwait2;    /* use epoll_pwait2 (ns timeouts) */
} bcl_poller;

int bcl_poller_open(bcl_poller *p);
void bcl_poller_close(bcl_poller *p);
/* Change the interest of fd from old_events to new_events (BCL_EV_* masks;
 * 0 means not registered). Handles fds that were closed and reused behind
 * our back (ENOENT on modify, EEXIST on add). */
int bcl_poller_ctl(bcl_poller *p, int fd, uint32_t old_events, uint32_t new_events);
/* Wait at most timeout_ns (-1: forever, 0: poll). Returns the number of
 * events written to out (<= max), or -errno (-EINTR on a signal). */
int bcl_poller_wait(bcl_poller *p, int64_t timeout_ns, bcl_poll_event *out, int max);
const char *bcl_poller_name(const bcl_poller *p);

#endif
