/*
 * echo_uring: an io_uring counterpart of echo_c (bench/echo_c.c), to see
 * what the cheapest pure-C io_uring echo server costs per request next to
 * the plain epoll one.  Single-threaded, raw syscalls over <linux/io_uring.h>
 * (no liburing).  Echo mode only.
 *
 * Per connection, exactly one request is in flight at any time:
 *
 *   IORING_OP_RECV  into the connection's own buffer (256 KiB, like echo_c's
 *                   read size), with IORING_RECVSEND_POLL_FIRST: in a
 *                   request/response exchange the next request is not there
 *                   yet when the recv is queued, so skip the attempt that
 *                   would fail and arm the poll at once;
 *   IORING_OP_SEND  of exactly the bytes received (after a short send, of the
 *                   rest), then the next recv.
 *
 * Connections come from one multishot IORING_OP_ACCEPT (re-armed if the
 * kernel ends it); accepted sockets get TCP_NODELAY, as in echo_c.  EOF or
 * an error closes the connection.  Each loop iteration is one io_uring_enter
 * that submits every queued SQE and waits for at least one completion.
 *
 *   echo_uring [--host 127.0.0.1] [--port 0] [--setup auto|defer|coop|none]
 *              [--bufsize BYTES] [--no-poll-first] [--reg-ring]
 *              [--link] [--bufring N] [--multishot]
 *
 *   --setup  ring flags: defer = SINGLE_ISSUER|DEFER_TASKRUN, coop =
 *            COOP_TASKRUN, none = no flags; auto (the default) tries defer,
 *            then coop, then none while io_uring_setup says EINVAL.  An
 *            explicit choice does not fall back.  The flags in use are
 *            printed on stderr.
 *   --reg-ring     register the ring fd (IORING_REGISTER_RING_FDS) and enter
 *                  with IORING_ENTER_REGISTERED_RING (saves an fd lookup per
 *                  enter).
 *   --no-poll-first  recv without IORING_RECVSEND_POLL_FIRST.
 *   --bufring N    instead of a buffer per connection, a pool of N (a power
 *                  of two) buffers of --bufsize bytes in a provided-buffer
 *                  ring (IORING_REGISTER_PBUF_RING, group 0): the kernel
 *                  picks a buffer only when data is there, so the bytes go
 *                  through a few recently used (cache-warm) buffers rather
 *                  than through one per connection.  A recv that finds the
 *                  pool empty (-ENOBUFS) is queued again when a buffer comes
 *                  back.  Received buffers are queued per connection and
 *                  sent in order, one send in flight at a time.
 *   --link         (buffer per connection) send and next recv as one linked
 *                  pair: the send with MSG_WAITALL (the kernel finishes short
 *                  sends itself), IOSQE_IO_LINK and IOSQE_CQE_SKIP_SUCCESS, so
 *                  a request costs one CQE and the recv is armed as soon as
 *                  the send is done.  A failed send posts its CQE and cancels
 *                  the recv; the connection is closed on the recv's CQE.
 *   --multishot    one multishot recv per connection (IORING_RECV_MULTISHOT,
 *                  needs the buffer ring; --bufring 64 unless given), re-armed
 *                  only when the kernel ends it.
 *
 * Prints "LISTENING <port>" on stdout once it accepts connections; runs until
 * killed.  Build: cc -O2 -o echo_uring echo_uring.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef __NR_io_uring_setup
#  define __NR_io_uring_setup 425
#endif
#ifndef __NR_io_uring_enter
#  define __NR_io_uring_enter 426
#endif
#ifndef __NR_io_uring_register
#  define __NR_io_uring_register 427
#endif

#ifndef SQ_ENTRIES
#  define SQ_ENTRIES 1024u         /* -DSQ_ENTRIES=2 exercises the SQ-full paths */
#endif
#define CQ_ENTRIES 8192u
#define UD_ACCEPT 0u              /* user_data of the accept request; else a conn_t * */

/* user_data: a conn_t * with the operation in the low bits (conn_t is 8-aligned) */
#define OP_RECV 1u
#define OP_SEND 2u
#define OP_MASK 7u

typedef struct conn {
    int fd;
    /* per-connection buffer mode */
    int sending;                  /* 1 while the send of [pos, len) is in flight */
    size_t len, pos;              /* bytes received / sent of the current echo */
    char *buf;
    /* buffer-ring mode: received buffers waiting to be echoed, in order, linked
     * through buf_next[] (head is being sent, from offset pos) */
    int qhead, qtail;             /* buffer ids, -1 if empty */
    int recv_inflight, send_inflight, closing, waiting;
    struct conn *next_wait;       /* in the list of recvs that hit -ENOBUFS */
} conn_t;

/* the ring */
static int ring_fd;
static int enter_fd;              /* ring_fd, or its registered index */
static unsigned enter_flags;      /* IORING_ENTER_REGISTERED_RING or 0 */
static unsigned *sq_head, *sq_tail, *sq_mask, *sq_array;
static unsigned sq_entries, sqe_tail;
static struct io_uring_sqe *sqes;
static unsigned *cq_head, *cq_tail, *cq_mask;
static struct io_uring_cqe *cqes;

static int listen_fd;
static size_t bufsize = 256 * 1024;
static unsigned recv_ioprio = IORING_RECVSEND_POLL_FIRST;
static int link_mode;             /* --link */
static const int one = 1;

/* the provided-buffer ring (--bufring / --multishot) */
static unsigned nbufs;            /* 0: per-connection buffers */
static int multishot;
static struct io_uring_buf_ring *br;
static unsigned short br_tail;
static char *pool;                /* nbufs * bufsize bytes */
static unsigned *buf_len;         /* per buffer id: bytes received into it */
static int *buf_next;             /* per buffer id: next in its connection's queue */
static conn_t *wait_head, *wait_tail;   /* recvs to queue again when a buffer is back */

static void fail(const char *what)
{
    perror(what);
    exit(1);
}

static int sys_enter(unsigned to_submit, unsigned min_complete, unsigned flags)
{
    long r = syscall(__NR_io_uring_enter, enter_fd, to_submit, min_complete,
                     flags | enter_flags, NULL, 0);
    return r < 0 ? -errno : (int)r;
}

static unsigned sq_pending(void)
{
    return sqe_tail - __atomic_load_n(sq_head, __ATOMIC_ACQUIRE);
}

/* Make room for `room` SQEs: hand the queued ones to the kernel without
 * waiting.  Only when the SQ is full, which 50 connections never do. */
static void flush_sq(unsigned room)
{
    __atomic_store_n(sq_tail, sqe_tail, __ATOMIC_RELEASE);
    while (sq_entries - sq_pending() < room) {
        int r = sys_enter(sq_pending(), 0, 0);
        if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY)
            fail("io_uring_enter (flush)");
    }
}

static struct io_uring_sqe *get_sqe(void)
{
    if (sq_pending() >= sq_entries)
        flush_sq(1);
    struct io_uring_sqe *sqe = &sqes[sqe_tail & *sq_mask];
    sqe_tail++;
    memset(sqe, 0, sizeof *sqe);
    return sqe;
}

static void queue_accept(void)
{
    struct io_uring_sqe *sqe = get_sqe();
    sqe->opcode = IORING_OP_ACCEPT;
    sqe->fd = listen_fd;
    sqe->ioprio = IORING_ACCEPT_MULTISHOT;
    sqe->accept_flags = SOCK_CLOEXEC;
    sqe->user_data = UD_ACCEPT;
}

/* A send or recv on c's socket, of len bytes at addr (NULL with a
 * buffer-selecting recv); op_tag (OP_SEND/OP_RECV) goes in user_data.
 * Sends never raise SIGPIPE; recvs wait for data first when asked. */
static struct io_uring_sqe *prep_io(conn_t *c, unsigned op_tag, const char *addr, size_t len)
{
    struct io_uring_sqe *sqe = get_sqe();
    sqe->opcode = op_tag == OP_SEND ? IORING_OP_SEND : IORING_OP_RECV;
    sqe->fd = c->fd;
    sqe->addr = (uint64_t)(uintptr_t)addr;
    sqe->len = (unsigned)len;
    if (op_tag == OP_SEND)
        sqe->msg_flags = MSG_NOSIGNAL;
    else
        sqe->ioprio = (uint16_t)recv_ioprio;
    sqe->user_data = (uint64_t)(uintptr_t)c | op_tag;
    return sqe;
}

static void queue_recv(conn_t *c)
{
    prep_io(c, OP_RECV, c->buf, bufsize);
    c->sending = 0;
}

static void queue_send(conn_t *c)
{
    prep_io(c, OP_SEND, c->buf + c->pos, c->len - c->pos);
    c->sending = 1;
}

/* --link: the echo and the next recv in one submission, one CQE per request */
static void queue_send_recv(conn_t *c)
{
    if (sq_entries - sq_pending() < 2)
        flush_sq(2);                 /* keep the pair in one submission */
    struct io_uring_sqe *sqe = prep_io(c, OP_SEND, c->buf, c->len);
    sqe->msg_flags |= MSG_WAITALL;
    sqe->flags = IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS;
    prep_io(c, OP_RECV, c->buf, bufsize);
}

static void conn_close(conn_t *c);

static void on_conn_link(conn_t *c, unsigned op, int res)
{
    if (op == OP_SEND)
        return;                      /* only failed sends post a CQE; the recv tells the rest */
    if (res > 0) {
        c->len = (size_t)res;
        queue_send_recv(c);
    } else if (res == -EINTR || res == -EAGAIN) {
        queue_recv(c);
    } else {
        conn_close(c);               /* EOF, error, or -ECANCELED after a failed send */
    }
}

/* ---- buffer-ring mode ---- */

static void br_put(unsigned bid)
{
    struct io_uring_buf *b = &br->bufs[br_tail & (nbufs - 1)];
    b->addr = (uint64_t)(uintptr_t)(pool + (size_t)bid * bufsize);
    b->len = (unsigned)bufsize;
    b->bid = (unsigned short)bid;
    br_tail++;
    __atomic_store_n(&br->tail, br_tail, __ATOMIC_RELEASE);
}

static void queue_recv_br(conn_t *c, int poll_first)
{
    struct io_uring_sqe *sqe = prep_io(c, OP_RECV, NULL, multishot ? 0 : bufsize);
    sqe->flags = IOSQE_BUFFER_SELECT;
    sqe->buf_group = 0;
    sqe->ioprio = (uint16_t)((poll_first ? recv_ioprio : 0) | (multishot ? IORING_RECV_MULTISHOT : 0));
    c->recv_inflight = 1;
}

static void queue_send_br(conn_t *c)
{
    prep_io(c, OP_SEND, pool + (size_t)c->qhead * bufsize + c->pos,
            buf_len[c->qhead] - c->pos);
    c->send_inflight = 1;
}

/* A buffer is free again: back into the ring, and give a recv that found the
 * pool empty another go (without POLL_FIRST: its data is waiting). */
static void buf_release(unsigned bid)
{
    br_put(bid);
    while (wait_head) {
        conn_t *w = wait_head;
        wait_head = w->next_wait;
        if (!wait_head)
            wait_tail = NULL;
        w->waiting = 0;
        if (w->closing)
            continue;                /* maybe_close_br() of its last request frees it */
        queue_recv_br(w, 0);
        break;
    }
}

static void maybe_close_br(conn_t *c)
{
    if (!c->closing || c->recv_inflight || c->send_inflight || c->waiting)
        return;
    while (c->qhead >= 0) {
        int next = buf_next[c->qhead];
        buf_release((unsigned)c->qhead);
        c->qhead = next;
    }
    close(c->fd);
    free(c);
}

static void start_closing_br(conn_t *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (c->recv_inflight && multishot)
        shutdown(c->fd, SHUT_RDWR);  /* ends the multishot recv */
}

static void on_recv_br(conn_t *c, int res, unsigned flags)
{
    if (!(flags & IORING_CQE_F_MORE))
        c->recv_inflight = 0;
    if (res > 0 && (flags & IORING_CQE_F_BUFFER)) {
        int bid = (int)(flags >> IORING_CQE_BUFFER_SHIFT);
        buf_len[bid] = (unsigned)res;
        buf_next[bid] = -1;
        if (c->closing) {
            buf_release((unsigned)bid);
        } else if (c->qhead < 0) {
            c->qhead = c->qtail = bid;
            c->pos = 0;
            queue_send_br(c);
        } else {
            buf_next[c->qtail] = bid;
            c->qtail = bid;
        }
        if (multishot && !c->recv_inflight && !c->closing)
            queue_recv_br(c, 1);     /* the kernel ended the multishot: re-arm */
    } else if (res == -ENOBUFS) {
        if (!c->closing) {
            c->waiting = 1;
            c->next_wait = NULL;
            if (wait_tail)
                wait_tail->next_wait = c;
            else
                wait_head = c;
            wait_tail = c;
        }
    } else if (res == -EINTR || res == -EAGAIN) {
        if (!c->recv_inflight && !c->closing)
            queue_recv_br(c, 1);
    } else {
        start_closing_br(c);         /* EOF or error */
    }
    maybe_close_br(c);
}

static void on_send_br(conn_t *c, int res)
{
    c->send_inflight = 0;
    if (res < 0 && res != -EINTR && res != -EAGAIN) {
        start_closing_br(c);
        maybe_close_br(c);
        return;
    }
    if (c->closing) {
        maybe_close_br(c);
        return;
    }
    if (res > 0)
        c->pos += (size_t)res;
    if (c->pos < buf_len[c->qhead]) {
        queue_send_br(c);            /* short send: the rest */
        return;
    }
    int bid = c->qhead;
    c->qhead = buf_next[bid];
    if (c->qhead < 0)
        c->qtail = -1;
    c->pos = 0;
    buf_release((unsigned)bid);
    if (c->qhead >= 0)
        queue_send_br(c);
    else if (!multishot && !c->recv_inflight && !c->waiting)
        queue_recv_br(c, 1);         /* echo done: the next request */
}

static void setup_bufring(void)
{
    size_t ring_len = nbufs * sizeof(struct io_uring_buf);
    br = mmap(NULL, ring_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (br == MAP_FAILED)
        fail("mmap (buffer ring)");
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (uint64_t)(uintptr_t)br;
    reg.ring_entries = nbufs;
    reg.bgid = 0;
    if (syscall(__NR_io_uring_register, ring_fd, IORING_REGISTER_PBUF_RING, &reg, 1) < 0)
        fail("io_uring_register (PBUF_RING)");
    pool = mmap(NULL, (size_t)nbufs * bufsize, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    buf_len = calloc(nbufs, sizeof *buf_len);
    buf_next = calloc(nbufs, sizeof *buf_next);
    if (pool == MAP_FAILED || !buf_len || !buf_next)
        fail("buffer pool");
    br_tail = 0;
    for (unsigned i = 0; i < nbufs; i++)
        br_put(i);
}

/* Only called when the connection has no request in flight. */
static void conn_close(conn_t *c)
{
    close(c->fd);
    free(c->buf);
    free(c);
}

static void on_accept(int res, unsigned flags)
{
    if (res >= 0) {
        setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn_t *c = calloc(1, sizeof *c);
        if (!c)
            fail("calloc");
        c->fd = res;
        if (nbufs) {
            c->qhead = c->qtail = -1;
            queue_recv_br(c, 1);
        } else {
            c->buf = malloc(bufsize);
            if (!c->buf)
                fail("malloc");
            queue_recv(c);
        }
    } else if (res != -EINTR && res != -EAGAIN && res != -ECONNABORTED) {
        errno = -res;
        perror("echo_uring: accept");
    }
    if (!(flags & IORING_CQE_F_MORE))
        queue_accept();              /* the multishot request ended: arm it again */
}

static void on_conn(conn_t *c, int res)
{
    if (!c->sending) {
        if (res > 0) {
            c->len = (size_t)res;
            c->pos = 0;
            queue_send(c);
        } else if (res == -EINTR || res == -EAGAIN) {
            queue_recv(c);
        } else {
            conn_close(c);           /* EOF or error */
        }
        return;
    }
    if (res < 0) {
        if (res == -EINTR || res == -EAGAIN) {
            queue_send(c);
            return;
        }
        conn_close(c);
        return;
    }
    c->pos += (size_t)res;
    if (c->pos < c->len)
        queue_send(c);               /* short send: the rest */
    else
        queue_recv(c);
}

static int ring_setup(unsigned flags)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = flags | IORING_SETUP_CQSIZE;
    p.cq_entries = CQ_ENTRIES;
    int fd = (int)syscall(__NR_io_uring_setup, SQ_ENTRIES, &p);
    if (fd < 0)
        return -errno;
    if (!(p.features & IORING_FEAT_SINGLE_MMAP) || !(p.features & IORING_FEAT_NODROP)) {
        fprintf(stderr, "echo_uring: kernel too old (needs IORING_FEAT_SINGLE_MMAP, NODROP)\n");
        exit(1);
    }
    size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    if (cq_len > sq_len)
        sq_len = cq_len;
    char *sq = mmap(NULL, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                    IORING_OFF_SQ_RING);
    if (sq == MAP_FAILED)
        fail("mmap (rings)");
    sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
                MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
    if (sqes == MAP_FAILED)
        fail("mmap (sqes)");
    sq_head = (unsigned *)(sq + p.sq_off.head);
    sq_tail = (unsigned *)(sq + p.sq_off.tail);
    sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
    sq_array = (unsigned *)(sq + p.sq_off.array);
    sq_entries = p.sq_entries;
    sqe_tail = *sq_tail;
    cq_head = (unsigned *)(sq + p.cq_off.head);
    cq_tail = (unsigned *)(sq + p.cq_off.tail);
    cq_mask = (unsigned *)(sq + p.cq_off.ring_mask);
    cqes = (struct io_uring_cqe *)(sq + p.cq_off.cqes);
    for (unsigned i = 0; i < sq_entries; i++)
        sq_array[i] = i;                 /* SQE i always sits in slot i */
    return fd;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    const char *setup = "auto";
    int port = 0, reg_ring = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--host") == 0 && i + 1 < argc)
            host = argv[++i];
        else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--setup") == 0 && i + 1 < argc)
            setup = argv[++i];
        else if (strcmp(argv[i], "--bufsize") == 0 && i + 1 < argc)
            bufsize = (size_t)strtoul(argv[++i], NULL, 0);
        else if (strcmp(argv[i], "--no-poll-first") == 0)
            recv_ioprio = 0;
        else if (strcmp(argv[i], "--reg-ring") == 0)
            reg_ring = 1;
        else if (strcmp(argv[i], "--bufring") == 0 && i + 1 < argc)
            nbufs = (unsigned)strtoul(argv[++i], NULL, 0);
        else if (strcmp(argv[i], "--multishot") == 0)
            multishot = 1;
        else if (strcmp(argv[i], "--link") == 0)
            link_mode = 1;
        else {
            fprintf(stderr, "usage: echo_uring [--host H] [--port P] "
                            "[--setup auto|defer|coop|none] [--bufsize N] "
                            "[--no-poll-first] [--reg-ring] [--link] [--bufring N] [--multishot]\n");
            return 2;
        }
    }
    if (bufsize == 0 || bufsize > (1u << 30)) {
        fprintf(stderr, "echo_uring: bad --bufsize\n");
        return 2;
    }
    if (multishot && !nbufs)
        nbufs = 64;
    if (link_mode && nbufs) {
        fprintf(stderr, "echo_uring: --link goes with a buffer per connection only\n");
        return 2;
    }
    if (nbufs && (nbufs & (nbufs - 1) || nbufs > 32768)) {
        fprintf(stderr, "echo_uring: --bufring must be a power of two, at most 32768\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    static const struct { const char *name; unsigned flags; } modes[] = {
        {"defer", IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN},
        {"coop", IORING_SETUP_COOP_TASKRUN},
        {"none", 0},
    };
    int first, last;
    if (strcmp(setup, "auto") == 0) {
        first = 0;
        last = 2;
    } else {
        for (first = 0; first < 3 && strcmp(setup, modes[first].name) != 0; first++)
            ;
        if (first == 3) {
            fprintf(stderr, "echo_uring: --setup must be auto, defer, coop or none\n");
            return 2;
        }
        last = first;
    }
    int m;
    ring_fd = -EINVAL;
    for (m = first; m <= last; m++) {
        ring_fd = ring_setup(modes[m].flags);
        if (ring_fd != -EINVAL)
            break;
    }
    if (ring_fd < 0) {
        errno = -ring_fd;
        fail("io_uring_setup");
    }
    enter_fd = ring_fd;
    if (reg_ring) {
        struct io_uring_rsrc_update up = {.offset = -1U, .data = (uint64_t)ring_fd};
        long r = syscall(__NR_io_uring_register, ring_fd, IORING_REGISTER_RING_FDS, &up, 1);
        if (r != 1)
            fail("io_uring_register (RING_FDS)");
        enter_fd = (int)up.offset;
        enter_flags = IORING_ENTER_REGISTERED_RING;
    }
    if (nbufs)
        setup_bufring();
    fprintf(stderr, "echo_uring: setup %s (flags 0x%x)%s%s, %zu-byte buffers, ", modes[m].name,
            modes[m].flags, reg_ring ? ", registered ring fd" : "",
            recv_ioprio ? ", recv POLL_FIRST" : "", bufsize);
    if (nbufs)
        fprintf(stderr, "%u in a buffer ring%s\n", nbufs, multishot ? ", multishot recv" : "");
    else
        fprintf(stderr, "one per connection%s\n", link_mode ? ", linked send+recv" : "");

    listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd < 0)
        fail("socket");
    setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "echo_uring: --host must be an IPv4 address\n");
        return 2;
    }
    if (bind(listen_fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        fail("bind");
    if (listen(listen_fd, 1024) < 0)
        fail("listen");
    socklen_t slen = sizeof sa;
    getsockname(listen_fd, (struct sockaddr *)&sa, &slen);

    queue_accept();
    printf("LISTENING %d\n", ntohs(sa.sin_port));
    fflush(stdout);

    for (;;) {
        __atomic_store_n(sq_tail, sqe_tail, __ATOMIC_RELEASE);
        int r = sys_enter(sq_pending(), 1, IORING_ENTER_GETEVENTS);
        if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY)
            fail("io_uring_enter");
        unsigned head = *cq_head;
        unsigned tail = __atomic_load_n(cq_tail, __ATOMIC_ACQUIRE);
        while (head != tail) {
            struct io_uring_cqe *cqe = &cqes[head & *cq_mask];
            uint64_t ud = cqe->user_data;
            int res = cqe->res;
            unsigned flags = cqe->flags;
            head++;
            conn_t *c = (conn_t *)(uintptr_t)(ud & ~(uint64_t)OP_MASK);
            if (ud == UD_ACCEPT)
                on_accept(res, flags);
            else if (link_mode)
                on_conn_link(c, (unsigned)(ud & OP_MASK), res);
            else if (!nbufs)
                on_conn(c, res);
            else if ((ud & OP_MASK) == OP_RECV)
                on_recv_br(c, res, flags);
            else
                on_send_br(c, res);
        }
        __atomic_store_n(cq_head, head, __ATOMIC_RELEASE);
    }
}
