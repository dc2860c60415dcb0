/*
 * muxscope benchmark load client (compiled at run time by app/benchkit/loadgen.py).
 *
 *   loadclient HOST PORT CONNS SIZE WARMUP_S SECONDS DEPTH CPU
 *
 * Opens CONNS TCP connections (TCP_NODELAY, non-blocking, one epoll loop). Each connection keeps
 * DEPTH messages of SIZE bytes in flight: it sends one, and every time SIZE echoed bytes have
 * come back it records that message's round-trip latency and sends the next one (ping-pong when
 * DEPTH is 1). CPU >= 0 pins the process to that CPU.
 *
 * Output (stdout, line-buffered), so the caller can sample the server's CPU at the same instants:
 *   START                      after WARMUP_S seconds of load
 *   END                        SECONDS later (counting stops here)
 *   RESULT rt=N seconds=S p50_us=.. p90_us=.. p99_us=.. max_us=.. dead=D conns=C
 * A connection the server closes or resets is counted in `dead` and dropped from the load.
 */
#define _GNU_SOURCE
#include <sys/prctl.h>
#include <signal.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HIST_US 200000   /* 1 us buckets up to 200 ms; slower round trips land in the last one */
#define MAX_DEPTH 64
#define MAX_SIZE (1 << 20)

typedef struct {
    int fd;
    int alive;
    size_t out_left;      /* bytes of queued messages not yet accepted by send() */
    size_t in_got;        /* echoed bytes of the current message received so far */
    uint64_t sent_ns[MAX_DEPTH];
    int head, count;      /* ring of send timestamps, one per message in flight */
} conn_t;

static uint32_t hist[HIST_US + 1];
static char *buf;
static size_t msg_size;
static int depth;
static int counting;
static uint64_t rt_count;
static uint64_t max_us;
static int epfd;
static int dead;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void set_events(conn_t *c, uint32_t ev) {
    struct epoll_event e = {.events = ev, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &e);
}

static void kill_conn(conn_t *c) {
    if (!c->alive) return;
    c->alive = 0;
    dead++;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
}

static void flush_out(conn_t *c) {
    while (c->out_left > 0) {
        size_t n = c->out_left < MAX_SIZE ? c->out_left : MAX_SIZE;
        ssize_t w = send(c->fd, buf, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                set_events(c, EPOLLIN | EPOLLOUT);
                return;
            }
            if (errno == EINTR) continue;
            kill_conn(c);
            return;
        }
        c->out_left -= (size_t)w;
    }
}

static void queue_msg(conn_t *c, uint64_t t) {
    c->sent_ns[(c->head + c->count) % MAX_DEPTH] = t;
    c->count++;
    c->out_left += msg_size;
}

static void record(uint64_t t0, uint64_t t1) {
    if (!counting) return;
    uint64_t us = (t1 - t0) / 1000;
    if (us > max_us) max_us = us;
    hist[us < HIST_US ? us : HIST_US]++;
    rt_count++;
}

static void on_readable(conn_t *c) {
    static char rbuf[1 << 16];
    for (;;) {
        ssize_t r = recv(c->fd, rbuf, sizeof rbuf, 0);
        if (r == 0) { kill_conn(c); return; }
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            if (errno == EINTR) continue;
            kill_conn(c);
            return;
        }
        size_t got = (size_t)r;
        uint64_t t = now_ns();
        while (got > 0) {
            size_t need = msg_size - c->in_got;
            size_t take = got < need ? got : need;
            c->in_got += take;
            got -= take;
            if (c->in_got == msg_size) {
                c->in_got = 0;
                if (c->count > 0) {
                    record(c->sent_ns[c->head], t);
                    c->head = (c->head + 1) % MAX_DEPTH;
                    c->count--;
                }
                queue_msg(c, t);
            }
        }
    }
    flush_out(c);
}

static uint64_t percentile(double p) {
    if (rt_count == 0) return 0;
    uint64_t want = (uint64_t)(p * (double)rt_count);
    if (want >= rt_count) want = rt_count - 1;
    uint64_t seen = 0;
    for (int i = 0; i <= HIST_US; i++) {
        seen += hist[i];
        if (seen > want) return (uint64_t)i;
    }
    return HIST_US;
}

static int open_conn(const char *host, int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) { close(fd); return -1; }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int fl = fcntl(fd, F_GETFL, 0);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) { close(fd); return -1; }
    return fd;
}

static void pin(int cpu) {
    if (cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
}

static void run_until(uint64_t deadline, struct epoll_event *evs, int maxev) {
    while (now_ns() < deadline) {
        int n = epoll_wait(epfd, evs, maxev, 20);
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (!c->alive) continue;
            if (evs[i].events & EPOLLOUT) {
                flush_out(c);
                if (c->alive && c->out_left == 0) set_events(c, EPOLLIN);
            }
            if (c->alive && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) on_readable(c);
        }
    }
}

int main(int argc, char **argv) {
    /* die with the bench, even one killed outright (see app/benchkit/orphan.py) */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1) return 1;
    if (argc != 9) {
        fprintf(stderr, "usage: %s HOST PORT CONNS SIZE WARMUP_S SECONDS DEPTH CPU\n", argv[0]);
        return 2;
    }
    const char *host = argv[1];
    int port = atoi(argv[2]);
    int nconn = atoi(argv[3]);
    msg_size = (size_t)atol(argv[4]);
    double warmup = atof(argv[5]);
    double seconds = atof(argv[6]);
    depth = atoi(argv[7]);
    if (nconn < 1 || msg_size < 1 || msg_size > MAX_SIZE || depth < 1 || depth > MAX_DEPTH) {
        fprintf(stderr, "loadclient: bad arguments\n");
        return 2;
    }
    pin(atoi(argv[8]));
    setvbuf(stdout, NULL, _IOLBF, 0);
    buf = calloc(1, MAX_SIZE);
    conn_t *conns = calloc((size_t)nconn, sizeof *conns);
    epfd = epoll_create1(0);
    for (int i = 0; i < nconn; i++) {
        conn_t *c = &conns[i];
        c->fd = open_conn(host, port);
        if (c->fd < 0) { perror("loadclient: connect"); return 1; }
        c->alive = 1;
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &e);
    }
    uint64_t t = now_ns();
    for (int i = 0; i < nconn; i++) {
        for (int d = 0; d < depth; d++) queue_msg(&conns[i], t);
        flush_out(&conns[i]);
    }
    int maxev = nconn < 1024 ? nconn : 1024;
    struct epoll_event *evs = calloc((size_t)maxev, sizeof *evs);
    run_until(now_ns() + (uint64_t)(warmup * 1e9), evs, maxev);
    counting = 1;
    uint64_t t0 = now_ns();
    printf("START\n");
    run_until(t0 + (uint64_t)(seconds * 1e9), evs, maxev);
    counting = 0;
    uint64_t t1 = now_ns();
    printf("END\n");
    printf("RESULT rt=%llu seconds=%.6f p50_us=%llu p90_us=%llu p99_us=%llu max_us=%llu "
           "dead=%d conns=%d\n",
           (unsigned long long)rt_count, (double)(t1 - t0) / 1e9,
           (unsigned long long)percentile(0.50), (unsigned long long)percentile(0.90),
           (unsigned long long)percentile(0.99), (unsigned long long)max_us, dead, nconn);
    for (int i = 0; i < nconn; i++)
        if (conns[i].alive) close(conns[i].fd);
    return 0;
}
