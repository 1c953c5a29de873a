/*
 * loadgen: closed-loop TCP load generator for boucle's network benchmarks.
 *
 * N connections, each with exactly one request in flight (no pipelining):
 *
 *   echo mode  send S bytes, wait until the same S bytes came back, repeat.
 *              Every received byte is compared with what was sent; the payload
 *              changes from one request to the next, so stale or reordered
 *              data is caught too.
 *   http mode  send one fixed "GET <path> HTTP/1.1" request, read one
 *              HTTP/1.1 response framed by Content-Length (keep-alive), check
 *              the status (200) and, if --expect-body is given, the body.
 *
 * Run for --warmup seconds uncounted, then --duration seconds counted.  At the
 * start and the end of the counted window it samples the CPU time of the
 * process --cpu-pid (utime+stime from /proc/PID/stat, and the sum of the
 * per-thread run times in /proc/PID/task/STAR/schedstat), its own CPU time and
 * the machine-wide busy time (/proc/stat), so the caller can compute the
 * server's CPU time per request for exactly the requests counted.
 *
 * Prints one JSON object on stdout.  On any error (connection closed, bad
 * data, stall, timeout) it prints {"error": "..."} and exits with status 1:
 * a broken server cannot look fast.
 *
 * Build: cc -O2 -o loadgen loadgen.c       (Linux: epoll; no other deps)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define PATTERN_SLACK 4093u        /* prime: request k of conn c starts at a different offset */
#define RECV_CHUNK (256u * 1024u)
#define HDR_MAX 16384u
#define STALL_NS (5ull * 1000000000ull)    /* no request may take longer than this */

enum { MODE_ECHO, MODE_HTTP };
enum { PH_WARMUP, PH_MEASURE, PH_DONE };
enum { H_HEADERS, H_BODY };

typedef struct {
    int fd;
    int id;
    int want_out;          /* EPOLLOUT registered */
    uint64_t seq;          /* requests completed on this connection */
    uint64_t m_done;       /* ... of which in the measured window */
    const unsigned char *out;
    size_t out_len, out_pos;
    uint64_t t_start;      /* ns, when the current request was started */
    /* echo */
    const unsigned char *expect;
    size_t recvd;
    /* http */
    int hstate;
    size_t hlen;
    size_t body_len, body_pos;
    char hbuf[HDR_MAX];
} conn_t;

/* ---- options ---- */
static const char *opt_host = "127.0.0.1";
static int opt_port = 0;
static int opt_conns = 50;
static size_t opt_size = 1024;
static double opt_duration = 5.0;
static double opt_warmup = 1.0;
static int opt_mode = MODE_ECHO;
static const char *opt_path = "/";
static const char *opt_expect_body = NULL;
static int opt_cpu_pid = 0;

/* ---- state ---- */
static int phase = PH_WARMUP;
static unsigned char *pattern;       /* opt_size + PATTERN_SLACK random bytes */
static unsigned char *recvbuf;
static char *http_req;
static size_t http_req_len;
static size_t expect_body_len;

static uint64_t m_requests, m_bytes;
static uint64_t *lat;                /* latency samples (ns) in the window */
static size_t lat_n, lat_cap;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void die(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    printf("{\"error\": ");
    json_str(stdout, msg);
    printf(", \"phase\": \"%s\"}\n",
           phase == PH_WARMUP ? "warmup" : phase == PH_MEASURE ? "measure" : "done");
    fflush(stdout);
    exit(1);
}

/* ---- CPU accounting ---- */
typedef struct {
    long long utime, stime;      /* ticks, from /proc/PID/stat */
    long long sched_ns;          /* sum over threads of /proc/PID/task/T/schedstat[0], -1 if unknown */
    double self_cpu_s;           /* getrusage(RUSAGE_SELF) */
    long long sys_busy, sys_total;  /* ticks over all CPUs, /proc/stat */
    uint64_t t;
} sample_t;

static int read_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n < 0)
        return -1;
    buf[n] = 0;
    return (int)n;
}

static int read_pid_stat(int pid, long long *ut, long long *st)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    if (read_file(path, buf, sizeof buf) < 0)
        return -1;
    char *p = strrchr(buf, ')');          /* comm may contain spaces */
    if (!p)
        return -1;
    p += 2;                               /* field 3 (state) */
    /* fields 3..13, then utime (14) and stime (15) */
    for (int field = 3; field < 14; field++) {
        p = strchr(p, ' ');
        if (!p)
            return -1;
        p++;
    }
    if (sscanf(p, "%lld %lld", ut, st) != 2)
        return -1;
    return 0;
}

static long long read_pid_sched_ns(int pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    long long total = 0;
    struct dirent *e;
    int any = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char p2[300];
        snprintf(p2, sizeof p2, "/proc/%d/task/%s/schedstat", pid, e->d_name);
        if (read_file(p2, buf, sizeof buf) < 0)
            continue;
        total += atoll(buf);
        any = 1;
    }
    closedir(d);
    return any ? total : -1;
}

static void read_sys(long long *busy, long long *total)
{
    char buf[1024];
    long long v[10] = {0};
    *busy = *total = 0;
    if (read_file("/proc/stat", buf, sizeof buf) < 0)
        return;
    /* cpu  user nice system idle iowait irq softirq steal guest guest_nice */
    if (sscanf(buf, "cpu %lld %lld %lld %lld %lld %lld %lld %lld", &v[0], &v[1], &v[2], &v[3],
               &v[4], &v[5], &v[6], &v[7]) < 4)
        return;
    *busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    *total = *busy + v[3] + v[4];
}

static void take_sample(sample_t *s)
{
    s->t = now_ns();
    s->utime = s->stime = -1;
    s->sched_ns = -1;
    if (opt_cpu_pid > 0) {
        if (read_pid_stat(opt_cpu_pid, &s->utime, &s->stime) < 0)
            die("cannot read /proc/%d/stat (server gone?)", opt_cpu_pid);
        s->sched_ns = read_pid_sched_ns(opt_cpu_pid);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    s->self_cpu_s = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
                    ru.ru_stime.tv_usec / 1e6;
    read_sys(&s->sys_busy, &s->sys_total);
}

/* ---- connections ---- */
static int epfd;

static void set_out_interest(conn_t *c, int on)
{
    if (c->want_out == on)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        die("epoll_ctl: %s", strerror(errno));
    c->want_out = on;
}

static void flush_out(conn_t *c)
{
    while (c->out_pos < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_pos, c->out_len - c->out_pos, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                set_out_interest(c, 1);
                return;
            }
            die("send on connection %d: %s", c->id, strerror(errno));
        }
        c->out_pos += (size_t)n;
    }
    set_out_interest(c, 0);
}

static void start_request(conn_t *c)
{
    c->t_start = now_ns();
    if (opt_mode == MODE_ECHO) {
        size_t off = ((size_t)c->id * 131u + (size_t)c->seq * 17u) % PATTERN_SLACK;
        c->out = pattern + off;
        c->out_len = opt_size;
        c->expect = c->out;
        c->recvd = 0;
    } else {
        c->out = (const unsigned char *)http_req;
        c->out_len = http_req_len;
        c->hstate = H_HEADERS;
        c->hlen = 0;
    }
    c->out_pos = 0;
    flush_out(c);
}

static void request_done(conn_t *c, uint64_t t)
{
    c->seq++;
    if (phase == PH_MEASURE) {
        m_requests++;
        c->m_done++;
        if (lat_n == lat_cap) {
            lat_cap = lat_cap ? lat_cap * 2 : 1 << 16;
            lat = realloc(lat, lat_cap * sizeof *lat);
            if (!lat)
                die("out of memory");
        }
        lat[lat_n++] = t - c->t_start;
    }
    if (phase != PH_DONE)
        start_request(c);
}

static void echo_input(conn_t *c, const unsigned char *data, size_t n)
{
    if (c->recvd + n > c->out_pos)
        die("connection %d request %llu: received %zu bytes but only %zu were sent "
            "(the server sent data that was not echoed)",
            c->id, (unsigned long long)c->seq, c->recvd + n, c->out_pos);
    if (memcmp(data, c->expect + c->recvd, n) != 0) {
        size_t i = 0;
        while (data[i] == c->expect[c->recvd + i])
            i++;
        die("connection %d request %llu: echoed data differs at byte %zu of %zu "
            "(got 0x%02x, expected 0x%02x)",
            c->id, (unsigned long long)c->seq, c->recvd + i, opt_size, data[i],
            c->expect[c->recvd + i]);
    }
    c->recvd += n;
    if (phase == PH_MEASURE)
        m_bytes += n;
    if (c->recvd == opt_size)
        request_done(c, now_ns());
}

static const char *find_crlfcrlf(const char *buf, size_t len)
{
    for (size_t i = 3; i < len; i++)
        if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r')
            return buf + i + 1;
    return NULL;
}

static int parse_headers(conn_t *c, size_t hdr_end)
{
    char *h = c->hbuf;
    if (hdr_end < 12 || (strncmp(h, "HTTP/1.1 ", 9) != 0 && strncmp(h, "HTTP/1.0 ", 9) != 0))
        die("connection %d: bad HTTP status line", c->id);
    if (strncmp(h + 9, "200", 3) != 0) {
        char line[64];
        size_t k = 0;
        while (k < sizeof line - 1 && k < hdr_end && h[k] != '\r')
            line[k] = h[k], k++;
        line[k] = 0;
        die("connection %d: HTTP status is not 200: %s", c->id, line);
    }
    long long clen = -1;
    int close_conn = 0;
    const char *p = memchr(h, '\n', hdr_end);
    while (p && (size_t)(p + 1 - h) < hdr_end) {
        const char *line = p + 1;
        const char *eol = memchr(line, '\n', hdr_end - (size_t)(line - h));
        if (!eol)
            break;
        size_t ll = (size_t)(eol - line);
        if (ll >= 15 && strncasecmp(line, "content-length:", 15) == 0)
            clen = atoll(line + 15);
        else if (ll >= 18 && strncasecmp(line, "transfer-encoding:", 18) == 0)
            die("connection %d: Transfer-Encoding responses are not supported "
                "(loadgen needs Content-Length framing)", c->id);
        else if (ll >= 11 && strncasecmp(line, "connection:", 11) == 0) {
            const char *v = line + 11;
            while (*v == ' ')
                v++;
            if (strncasecmp(v, "close", 5) == 0)
                close_conn = 1;
        }
        p = eol;
    }
    if (clen < 0)
        die("connection %d: HTTP response without Content-Length", c->id);
    if (close_conn)
        die("connection %d: server answered 'Connection: close' (loadgen needs keep-alive)", c->id);
    if (opt_expect_body && (size_t)clen != expect_body_len)
        die("connection %d: Content-Length %lld, expected %zu", c->id, clen, expect_body_len);
    c->body_len = (size_t)clen;
    c->body_pos = 0;
    return 0;
}

static void http_body(conn_t *c, const unsigned char *data, size_t n)
{
    if (c->body_pos + n > c->body_len)
        die("connection %d: %zu unexpected bytes after the response (nothing was pipelined)",
            c->id, c->body_pos + n - c->body_len);
    if (opt_expect_body && memcmp(data, opt_expect_body + c->body_pos, n) != 0)
        die("connection %d: HTTP response body differs from the expected one", c->id);
    c->body_pos += n;
    if (phase == PH_MEASURE)
        m_bytes += n;
    if (c->body_pos == c->body_len)
        request_done(c, now_ns());
}

static void http_input(conn_t *c, const unsigned char *data, size_t n)
{
    if (c->out_pos < c->out_len)
        die("connection %d: response data before the request was fully sent", c->id);
    if (c->hstate == H_BODY) {
        http_body(c, data, n);
        return;
    }
    if (c->hlen + n > HDR_MAX)
        die("connection %d: HTTP response headers larger than %u bytes", c->id, HDR_MAX);
    size_t scan_from = c->hlen > 3 ? c->hlen - 3 : 0;
    memcpy(c->hbuf + c->hlen, data, n);
    c->hlen += n;
    const char *end = find_crlfcrlf(c->hbuf + scan_from, c->hlen - scan_from);
    if (!end)
        return;
    size_t hdr_end = (size_t)(end - c->hbuf);
    if (phase == PH_MEASURE)
        m_bytes += hdr_end;
    parse_headers(c, hdr_end);
    c->hstate = H_BODY;
    size_t rest = c->hlen - hdr_end;
    if (c->body_len == 0) {
        if (rest)
            die("connection %d: %zu unexpected bytes after the response", c->id, rest);
        request_done(c, now_ns());
        return;
    }
    if (rest)
        http_body(c, (const unsigned char *)c->hbuf + hdr_end, rest);
}

static void on_readable(conn_t *c)
{
    for (;;) {
        ssize_t n = recv(c->fd, recvbuf, RECV_CHUNK, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            die("recv on connection %d: %s", c->id, strerror(errno));
        }
        if (n == 0)
            die("connection %d closed by the server (after %llu requests)", c->id,
                (unsigned long long)c->seq);
        if (opt_mode == MODE_ECHO)
            echo_input(c, recvbuf, (size_t)n);
        else
            http_input(c, recvbuf, (size_t)n);
        if ((size_t)n < RECV_CHUNK)
            return;              /* drained (level-triggered: we get called again otherwise) */
    }
}

static int connect_one(const struct sockaddr *sa, socklen_t salen)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket: %s", strerror(errno));
    uint64_t deadline = now_ns() + 5000000000ull;
    while (connect(fd, sa, salen) < 0) {
        if (errno == EINTR)
            continue;
        if ((errno == ECONNREFUSED || errno == EAGAIN) && now_ns() < deadline) {
            close(fd);
            usleep(10000);
            fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
            continue;
        }
        die("connect to %s:%d: %s", opt_host, opt_port, strerror(errno));
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

/* ---- output ---- */
static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(double p)
{
    if (!lat_n)
        return 0;
    size_t i = (size_t)(p / 100.0 * (double)(lat_n - 1) + 0.5);
    if (i >= lat_n)
        i = lat_n - 1;
    return (double)lat[i] / 1000.0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: loadgen --port P [--host H] [--conns N] [--size BYTES] [--duration S]\n"
            "               [--warmup S] [--mode echo|http] [--path /] [--expect-body TEXT]\n"
            "               [--cpu-pid PID]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (strcmp(a, name) == 0 && v && (i++, 1))
        if (ARG("--host")) opt_host = v;
        else if (ARG("--port")) opt_port = atoi(v);
        else if (ARG("--conns")) opt_conns = atoi(v);
        else if (ARG("--size")) opt_size = (size_t)atoll(v);
        else if (ARG("--duration")) opt_duration = atof(v);
        else if (ARG("--warmup")) opt_warmup = atof(v);
        else if (ARG("--mode")) {
            if (strcmp(v, "echo") == 0) opt_mode = MODE_ECHO;
            else if (strcmp(v, "http") == 0) opt_mode = MODE_HTTP;
            else usage();
        }
        else if (ARG("--path")) opt_path = v;
        else if (ARG("--expect-body")) opt_expect_body = v;
        else if (ARG("--cpu-pid")) opt_cpu_pid = atoi(v);
        else usage();
#undef ARG
    }
    if (opt_port <= 0 || opt_conns <= 0 || opt_size == 0 || opt_duration <= 0 || opt_warmup < 0)
        usage();
    signal(SIGPIPE, SIG_IGN);

    /* payload: random bytes, a different window of them for every request */
    pattern = malloc(opt_size + PATTERN_SLACK);
    recvbuf = malloc(RECV_CHUNK);
    if (!pattern || !recvbuf)
        die("out of memory");
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < opt_size + PATTERN_SLACK; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        pattern[i] = (unsigned char)(x >> 24);
    }
    if (opt_mode == MODE_HTTP) {
        http_req = malloc(strlen(opt_path) + strlen(opt_host) + 128);
        http_req_len = (size_t)sprintf(http_req,
                                       "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: loadgen\r\n\r\n",
                                       opt_path, opt_host, opt_port);
        if (opt_expect_body)
            expect_body_len = strlen(opt_expect_body);
    }

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", opt_port);
    int rc = getaddrinfo(opt_host, portstr, &hints, &ai);
    if (rc != 0)
        die("getaddrinfo(%s): %s", opt_host, gai_strerror(rc));

    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1: %s", strerror(errno));
    conn_t *conns = calloc((size_t)opt_conns, sizeof *conns);
    if (!conns)
        die("out of memory");
    for (int i = 0; i < opt_conns; i++) {
        conn_t *c = &conns[i];
        c->id = i;
        c->fd = connect_one(ai->ai_addr, ai->ai_addrlen);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
            die("epoll_ctl: %s", strerror(errno));
    }
    freeaddrinfo(ai);

    uint64_t t0 = now_ns();
    uint64_t warm_end = t0 + (uint64_t)(opt_warmup * 1e9);
    uint64_t end = warm_end + (uint64_t)(opt_duration * 1e9);
    sample_t s0 = {0}, s1 = {0};
    if (opt_warmup == 0) {
        take_sample(&s0);
        phase = PH_MEASURE;
    }
    for (int i = 0; i < opt_conns; i++)
        start_request(&conns[i]);

    struct epoll_event evs[256];
    uint64_t next_stall_check = 0;
    for (;;) {
        uint64_t t = now_ns();
        if (phase == PH_WARMUP && t >= warm_end) {
            take_sample(&s0);
            phase = PH_MEASURE;
        }
        if (phase == PH_MEASURE && t >= end) {
            take_sample(&s1);
            phase = PH_DONE;
            break;
        }
        if (t >= next_stall_check) {
            next_stall_check = t + 100000000ull;
            for (int i = 0; i < opt_conns; i++)
                if (t - conns[i].t_start > STALL_NS)
                    die("connection %d: request %llu got no complete answer in %.0f s "
                        "(%zu of %zu bytes back; server stalled or lost data)", i,
                        (unsigned long long)conns[i].seq, STALL_NS / 1e9,
                        opt_mode == MODE_ECHO ? conns[i].recvd : conns[i].body_pos,
                        opt_mode == MODE_ECHO ? opt_size : conns[i].body_len);
        }
        uint64_t next = phase == PH_WARMUP ? warm_end : end;
        int timeout_ms = (int)((next - t) / 1000000ull) + 1;
        if (timeout_ms > 100)
            timeout_ms = 100;
        int n = epoll_wait(epfd, evs, 256, timeout_ms);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait: %s", strerror(errno));
        }
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            uint32_t e = evs[i].events;
            if (e & EPOLLOUT)
                flush_out(c);
            if (e & (EPOLLIN | EPOLLHUP | EPOLLERR))
                on_readable(c);
        }
    }

    /* a connection that finished nothing in the whole window is stuck, not slow */
    for (int i = 0; i < opt_conns; i++)
        if (conns[i].m_done == 0 && s1.t - conns[i].t_start > 1000000000ull)
            die("connection %d completed no request in the measured window "
                "(%zu of %zu bytes of request %llu back; server stalled or lost data)", i,
                opt_mode == MODE_ECHO ? conns[i].recvd : conns[i].body_pos,
                opt_mode == MODE_ECHO ? opt_size : conns[i].body_len,
                (unsigned long long)conns[i].seq);
    double dur = (double)(s1.t - s0.t) / 1e9;
    qsort(lat, lat_n, sizeof *lat, cmp_u64);
    double mean = 0;
    for (size_t i = 0; i < lat_n; i++)
        mean += (double)lat[i];
    mean = lat_n ? mean / (double)lat_n / 1000.0 : 0;
    long clk = sysconf(_SC_CLK_TCK);

    printf("{\"mode\": \"%s\", \"host\": ", opt_mode == MODE_ECHO ? "echo" : "http");
    json_str(stdout, opt_host);
    printf(", \"port\": %d, \"conns\": %d, \"size\": %zu, \"warmup\": %.3f,\n", opt_port,
           opt_conns, opt_mode == MODE_ECHO ? opt_size : http_req_len, opt_warmup);
    printf(" \"requests\": %llu, \"bytes\": %llu, \"duration\": %.6f, \"rps\": %.1f,\n",
           (unsigned long long)m_requests, (unsigned long long)m_bytes, dur,
           dur > 0 ? (double)m_requests / dur : 0.0);
    printf(" \"latency_us\": {\"p50\": %.1f, \"p90\": %.1f, \"p99\": %.1f, \"p999\": %.1f, "
           "\"max\": %.1f, \"mean\": %.1f},\n",
           pct(50), pct(90), pct(99), pct(99.9), lat_n ? (double)lat[lat_n - 1] / 1000.0 : 0.0, mean);
    printf(" \"loadgen_cpu_s\": %.6f,\n", s1.self_cpu_s - s0.self_cpu_s);
    printf(" \"machine\": {\"clk_tck\": %ld, \"busy_ticks\": %lld, \"total_ticks\": %lld}",
           clk, s1.sys_busy - s0.sys_busy, s1.sys_total - s0.sys_total);
    if (opt_cpu_pid > 0) {
        long long ut = s1.utime - s0.utime, st = s1.stime - s0.stime;
        printf(",\n \"server\": {\"pid\": %d, \"utime_ticks\": %lld, \"stime_ticks\": %lld, "
               "\"clk_tck\": %ld, \"cpu_s\": %.6f, \"sched_cpu_s\": ",
               opt_cpu_pid, ut, st, clk, (double)(ut + st) / (double)clk);
        if (s0.sched_ns >= 0 && s1.sched_ns >= 0)
            printf("%.6f}", (double)(s1.sched_ns - s0.sched_ns) / 1e9);
        else
            printf("null}");
    }
    printf("}\n");
    fflush(stdout);
    return 0;
}
