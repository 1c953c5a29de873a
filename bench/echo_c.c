/*
 * echo_c: the floor for boucle's network benchmarks.  A single-threaded,
 * level-triggered epoll TCP server in plain C, doing the least work a server
 * can do per request:
 *
 *   echo mode (default)  read up to 256 KiB, write it back; if the socket
 *                        cannot take it all, stop reading that connection
 *                        until the rest is written (EPOLLOUT).
 *   --http               answer every request (headers ending in CRLFCRLF, no
 *                        request bodies) with a fixed keep-alive
 *                        "200 OK, Hello, World!" response.  No real HTTP
 *                        parsing: a floor, not a server.
 *
 *   echo_c [--host 127.0.0.1] [--port 0] [--http]
 *
 * Prints "LISTENING <port>" on stdout once it accepts connections; runs until
 * killed.  Build: cc -O2 -o echo_c echo_c.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUFSZ (256 * 1024)

static const char HTTP_RESPONSE[] =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 13\r\n"
    "\r\n"
    "Hello, World!";

typedef struct conn {
    int fd;
    int http_state;        /* how many bytes of "\r\n\r\n" matched so far */
    char *pending;         /* unsent output (heap copy), or NULL */
    size_t pending_len, pending_pos;
} conn_t;

static int epfd;
static int http_mode;
static char buf[BUFSZ];
static char *http_out;     /* HTTP_RESPONSE repeated, for a burst of requests */
static size_t http_out_cap;

static void fail(const char *what)
{
    perror(what);
    exit(1);
}

static void conn_close(conn_t *c)
{
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->pending);
    free(c);
}

static void set_events(conn_t *c, unsigned events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        fail("epoll_ctl");
}

/* Write data; keep what the socket does not take.  Returns -1 if the
 * connection failed (and was closed). */
static int conn_write(conn_t *c, const char *data, size_t len)
{
    size_t pos = 0;
    while (pos < len) {
        ssize_t n = send(c->fd, data + pos, len - pos, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            conn_close(c);
            return -1;
        }
        pos += (size_t)n;
    }
    if (pos < len) {
        c->pending = malloc(len - pos);
        if (!c->pending)
            fail("malloc");
        memcpy(c->pending, data + pos, len - pos);
        c->pending_len = len - pos;
        c->pending_pos = 0;
        set_events(c, EPOLLOUT);      /* stop reading until the echo is out */
    }
    return 0;
}

static void on_writable(conn_t *c)
{
    while (c->pending_pos < c->pending_len) {
        ssize_t n = send(c->fd, c->pending + c->pending_pos, c->pending_len - c->pending_pos,
                         MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            conn_close(c);
            return;
        }
        c->pending_pos += (size_t)n;
    }
    free(c->pending);
    c->pending = NULL;
    set_events(c, EPOLLIN);
}

/* Count complete requests (CRLFCRLF terminators) in data. */
static size_t http_count(conn_t *c, const char *data, size_t n)
{
    static const char term[4] = {'\r', '\n', '\r', '\n'};
    size_t count = 0;
    int st = c->http_state;
    for (size_t i = 0; i < n; i++) {
        if (data[i] == term[st]) {
            if (++st == 4) {
                count++;
                st = 0;
            }
        } else {
            st = data[i] == '\r' ? 1 : 0;
        }
    }
    c->http_state = st;
    return count;
}

static void on_readable(conn_t *c)
{
    ssize_t n = recv(c->fd, buf, BUFSZ, 0);
    if (n < 0) {
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        conn_close(c);
        return;
    }
    if (n == 0) {
        conn_close(c);
        return;
    }
    if (!http_mode) {
        conn_write(c, buf, (size_t)n);
        return;
    }
    size_t k = http_count(c, buf, (size_t)n);
    if (!k)
        return;
    size_t rlen = sizeof HTTP_RESPONSE - 1;
    if (k == 1) {
        conn_write(c, HTTP_RESPONSE, rlen);
        return;
    }
    if (k * rlen > http_out_cap) {
        http_out_cap = k * rlen;
        http_out = realloc(http_out, http_out_cap);
        if (!http_out)
            fail("realloc");
    }
    for (size_t i = 0; i < k; i++)
        memcpy(http_out + i * rlen, HTTP_RESPONSE, rlen);
    conn_write(c, http_out, k * rlen);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--host") == 0 && i + 1 < argc)
            host = argv[++i];
        else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--http") == 0)
            http_mode = 1;
        else {
            fprintf(stderr, "usage: echo_c [--host H] [--port P] [--http]\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);

    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (ls < 0)
        fail("socket");
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "echo_c: --host must be an IPv4 address\n");
        return 2;
    }
    if (bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0)
        fail("bind");
    if (listen(ls, 1024) < 0)
        fail("listen");
    socklen_t slen = sizeof sa;
    getsockname(ls, (struct sockaddr *)&sa, &slen);

    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        fail("epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};   /* NULL = listener */
    epoll_ctl(epfd, EPOLL_CTL_ADD, ls, &ev);

    printf("LISTENING %d\n", ntohs(sa.sin_port));
    fflush(stdout);

    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(epfd, evs, 256, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fail("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (!c) {
                for (;;) {
                    int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0)
                        break;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conn_t *nc = calloc(1, sizeof *nc);
                    if (!nc)
                        fail("calloc");
                    nc->fd = fd;
                    struct epoll_event cev = {.events = EPOLLIN, .data.ptr = nc};
                    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &cev) < 0)
                        fail("epoll_ctl");
                }
                continue;
            }
            if (evs[i].events & EPOLLOUT)
                on_writable(c);
            else if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                on_readable(c);
        }
    }
}
