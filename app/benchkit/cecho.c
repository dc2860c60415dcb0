/* The benchmark's C echo loop: the bare epoll loop of baseline.py (_bare_loop), in C.
 *
 * Built by the bench at run time (gcc -O2 -shared -fPIC) and run by app.benchkit.serve in a
 * thread through ctypes, which lets go of the GIL for the call: the same process, pinning and
 * CPU accounting as every other server of the echo table. It makes the system calls of the
 * bare loop and nothing else (epoll_wait with 1023 events and no timeout, recv into one
 * buffer, send, and EPOLL_CTL_MOD to wait for EPOLLOUT after a partial send), so its row is
 * what a round trip costs with no Python in it: almost all of it the kernel's.
 *
 * Edge-triggered (edge != 0), a connection is read until EAGAIN, as SPEC §2 requires.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXEVENTS 1023 /* what CPython's epoll.poll() asks for */
#define MAXFD 65536
#define BUFSIZE 65536

static volatile int stopping;

struct pending { char *data; size_t len; };

void cecho_stop(void) { stopping = 1; }

static void close_conn(int ep, int fd, struct pending *pend) {
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    free(pend[fd].data);
    pend[fd].data = NULL;
    pend[fd].len = 0;
}

static void accept_one(int ep, int lfd, unsigned conn_events) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
    if (fd < 0)
        return; /* EAGAIN, or a peer gone before its accept */
    if (fd >= MAXFD) {
        close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct epoll_event ev = {.events = conn_events, .data.fd = fd};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

/* Send what a partial send left; once all of it is out, back to reading. */
static void flush(int ep, int fd, struct pending *pend, unsigned conn_events) {
    ssize_t sent = send(fd, pend[fd].data, pend[fd].len, MSG_NOSIGNAL);
    if (sent < 0) {
        if (errno != EAGAIN)
            close_conn(ep, fd, pend);
        return;
    }
    if ((size_t)sent < pend[fd].len) {
        memmove(pend[fd].data, pend[fd].data + sent, pend[fd].len - sent);
        pend[fd].len -= sent;
        return;
    }
    free(pend[fd].data);
    pend[fd].data = NULL;
    pend[fd].len = 0;
    struct epoll_event ev = {.events = conn_events, .data.fd = fd};
    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}

static void echo(int ep, int fd, char *buf, struct pending *pend, int edge) {
    for (;;) {
        ssize_t n = recv(fd, buf, BUFSIZE, 0);
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            close_conn(ep, fd, pend);
            return;
        }
        ssize_t sent = send(fd, buf, (size_t)n, MSG_NOSIGNAL);
        if (sent < 0 && errno == EAGAIN)
            sent = 0;
        if (sent < 0) {
            close_conn(ep, fd, pend);
            return;
        }
        if (sent < n) { /* keep the rest; stop reading until it is sent */
            pend[fd].data = malloc((size_t)(n - sent));
            if (!pend[fd].data) { /* out of memory: this connection's end, not the loop's */
                close_conn(ep, fd, pend);
                return;
            }
            pend[fd].len = (size_t)(n - sent);
            memcpy(pend[fd].data, buf + sent, pend[fd].len);
            struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fd};
            epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
            return;
        }
        if (!edge)
            return;
    }
}

/* Serve `lfd` (listening, non-blocking) until cecho_stop() and a wake-up (a connection).
 * Returns 0, or -1 with errno set when the loop could not start or its wait failed. */
int cecho_run(int lfd, int edge) {
    unsigned conn_events = EPOLLIN | (edge ? EPOLLET : 0);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        return -1;
    struct epoll_event lev = {.events = EPOLLIN, .data.fd = lfd};
    struct epoll_event *events = calloc(MAXEVENTS, sizeof *events);
    struct pending *pend = calloc(MAXFD, sizeof *pend);
    char *buf = malloc(BUFSIZE);
    int rc = -1;
    if (!events || !pend || !buf || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) < 0)
        goto out;
    while (!stopping) {
        int n = epoll_wait(ep, events, MAXEVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            goto out;
        }
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == lfd)
                accept_one(ep, lfd, conn_events);
            else if (events[i].events & EPOLLOUT)
                flush(ep, fd, pend, conn_events);
            else
                echo(ep, fd, buf, pend, edge);
        }
    }
    rc = 0;
out:
    if (pend) {
        for (int fd = 0; fd < MAXFD; fd++)
            if (pend[fd].data)
                free(pend[fd].data);
    }
    free(pend);
    free(events);
    free(buf);
    close(ep);
    return rc;
}
