/* cellserve — a tiny HTTP/1.1 server for the examples and the tests.
 *
 *   cellserve [--port N]        (default: $PORT0)
 *
 * A fresh Debian machine has no python3, yet the service examples need a
 * task that serves its $PORT0 and answers an HTTP health check. `GET /`
 * answers 200 with a line naming the task ($CELL_TASK_ID, $CELL_JOB, its
 * machine: $CELL_MACHINE, else the host name), led by $GREETING when set (the examples pass it in the job's
 * env); `GET /health` 200; any other path 404, another method 405, a
 * malformed or oversized request 400. HEAD is GET without the body.
 *
 * One poll(2) loop on 0.0.0.0 with at most MAX_CONNS connections (the
 * listener is not polled while they are all taken); each is closed after
 * its answer, and one idle for IDLE_MS is dropped, so that slow clients
 * cannot hold every slot. SIGTERM and SIGINT arrive through a signalfd in
 * the same loop and end it with status 0; a bad command line exits 2.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cellstate/error.h"

enum { MAX_CONNS = 256, REQ_MAX = 8192, OUT_MAX = 1024, IDLE_MS = 10000 };

/* A connection reads its request head, writes the answer, then drains
 * what the client still sends until it closes: closing with unread input
 * would reset the connection and could lose the answer. */
typedef enum { C_READ, C_WRITE, C_DRAIN } conn_phase;

typedef struct conn {
    int fd; /* -1: free slot (poll ignores negative descriptors) */
    conn_phase phase;
    size_t got, sent, len;
    long long last_ms;
    char in[REQ_MAX];
    char out[OUT_MAX];
} conn;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int parse_port(const char *what, const char *v, int *port, cs_error *err)
{
    char *end;
    errno = 0;
    long p = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0' || errno != 0 || p < 1 || p > 65535)
        return cs_errorf(err, CS_EINVAL, "%s: '%s' is not a port (1-65535)", what, v);
    *port = (int)p;
    return CS_OK;
}

/* A non-blocking listening socket on 0.0.0.0:port, into *fd (the caller's). */
static int listen_on(int port, int *fd, cs_error *err)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0)
        return cs_errorf(err, CS_EIO, "socket: %s", strerror(errno));
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 128) != 0) {
        int e = errno;
        close(s);
        return cs_errorf(err, CS_EIO, "cannot listen on 0.0.0.0:%d: %s", port, strerror(e));
    }
    *fd = s;
    return CS_OK;
}

static void reply(conn *c, int code, const char *reason, const char *body, int head_only)
{
    int n = snprintf(c->out, sizeof c->out,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     code, reason, strlen(body), head_only ? "" : body);
    c->len = n < 0 ? 0 : (size_t)n < sizeof c->out ? (size_t)n : sizeof c->out - 1;
    c->sent = 0;
    c->phase = C_WRITE;
}

/* Answer the request head in c->in (NUL-terminated): "METHOD SP TARGET SP
 * HTTP/1.x" on its first line; headers are not needed for any answer. */
static void answer(conn *c, const char *page)
{
    char method[16], target[2048], version[16];
    if (sscanf(c->in, "%15[A-Z] %2047[^ \r\n] %15[^ \r\n]", method, target, version) != 3 ||
        c->in[strlen(method)] != ' ' ||
        strncmp(version, "HTTP/1.", 7) != 0 || target[0] != '/') {
        reply(c, 400, "Bad Request", "bad request: expected 'GET /path HTTP/1.1'\n", 0);
        return;
    }
    int head = strcmp(method, "HEAD") == 0;
    target[strcspn(target, "?#")] = '\0';
    if (!head && strcmp(method, "GET") != 0)
        reply(c, 405, "Method Not Allowed", "only GET and HEAD are served\n", 0);
    else if (strcmp(target, "/") == 0)
        reply(c, 200, "OK", page, head);
    else if (strcmp(target, "/health") == 0)
        reply(c, 200, "OK", "ok\n", head);
    else
        reply(c, 404, "Not Found", "not found\n", head);
}

static void drop(conn *c)
{
    close(c->fd);
    c->fd = -1;
}

/* Move one connection on as far as its socket allows without blocking. */
static void step(conn *c, const char *page)
{
    c->last_ms = now_ms();
    if (c->phase == C_READ) {
        ssize_t n = recv(c->fd, c->in + c->got, sizeof c->in - 1 - c->got, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            drop(c);
            return;
        }
        c->got += n > 0 ? (size_t)n : 0;
        c->in[c->got] = '\0';
        if (memmem(c->in, c->got, "\r\n\r\n", 4) != NULL || memmem(c->in, c->got, "\n\n", 2) != NULL)
            answer(c, page);
        else if (c->got == sizeof c->in - 1)
            reply(c, 400, "Bad Request", "bad request: the request head is too large\n", 0);
        else
            return;
    }
    if (c->phase == C_WRITE) {
        ssize_t n = send(c->fd, c->out + c->sent, c->len - c->sent, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            drop(c);
            return;
        }
        c->sent += n > 0 ? (size_t)n : 0;
        if (c->sent < c->len)
            return;
        shutdown(c->fd, SHUT_WR);
        c->phase = C_DRAIN;
    }
    char sink[512];
    ssize_t n;
    while ((n = recv(c->fd, sink, sizeof sink, 0)) > 0)
        ;
    if (n == 0 || (errno != EAGAIN && errno != EINTR))
        drop(c);
}

static void accept_all(int lfd, conn *conns)
{
    for (int i = 0; i < MAX_CONNS; i++) {
        if (conns[i].fd >= 0)
            continue;
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or a connection reset while queued */
        conns[i] = (conn){.fd = fd, .phase = C_READ, .last_ms = now_ms()};
    }
}

static int serve(int lfd, int sfd, const char *page, cs_error *err)
{
    int rc = CS_OK;
    conn *conns = malloc(MAX_CONNS * sizeof *conns);
    if (conns == NULL)
        return cs_errorf(err, CS_ENOMEM, "no memory for %d connections", MAX_CONNS);
    for (int i = 0; i < MAX_CONNS; i++)
        conns[i].fd = -1;
    struct pollfd pfd[2 + MAX_CONNS];
    for (;;) {
        int open = 0;
        for (int i = 0; i < MAX_CONNS; i++) {
            pfd[2 + i] = (struct pollfd){.fd = conns[i].fd,
                                         .events = conns[i].phase == C_WRITE ? POLLOUT : POLLIN};
            open += conns[i].fd >= 0;
        }
        pfd[0] = (struct pollfd){.fd = sfd, .events = POLLIN};
        pfd[1] = (struct pollfd){.fd = open < MAX_CONNS ? lfd : -1, .events = POLLIN};
        if (poll(pfd, 2 + MAX_CONNS, 1000) < 0 && errno != EINTR) {
            rc = cs_errorf(err, CS_EIO, "poll: %s", strerror(errno));
            break;
        }
        if (pfd[0].revents != 0)
            break; /* SIGTERM or SIGINT */
        long long now = now_ms();
        for (int i = 0; i < MAX_CONNS; i++) {
            if (conns[i].fd >= 0 && pfd[2 + i].revents != 0)
                step(&conns[i], page);
            else if (conns[i].fd >= 0 && now - conns[i].last_ms > IDLE_MS)
                drop(&conns[i]);
        }
        if (pfd[1].revents != 0)
            accept_all(lfd, conns);
    }
    for (int i = 0; i < MAX_CONNS; i++)
        if (conns[i].fd >= 0)
            drop(&conns[i]);
    free(conns);
    return rc;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: cellserve [--port N]   (default: $PORT0)\n"
               "Serves GET / (names the task) and GET /health on 0.0.0.0:N until SIGTERM.\n");
}

int main(int argc, char **argv)
{
    cs_error err = {0};
    const char *pv = getenv("PORT0"), *what = "$PORT0";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if ((strcmp(argv[i], "--port") == 0 || strcmp(argv[i], "-p") == 0) && i + 1 < argc) {
            what = argv[i];
            pv = argv[++i];
        } else {
            int flag = strcmp(argv[i], "--port") == 0 || strcmp(argv[i], "-p") == 0;
            fprintf(stderr, "cellserve: %s '%s'\n", flag ? "a value is missing after" : "unknown argument",
                    argv[i]);
            usage(stderr);
            return 2;
        }
    }
    int port = 0;
    if (pv == NULL) {
        fprintf(stderr, "cellserve: no port: give --port N or set $PORT0\n");
        return 2;
    }
    if (parse_port(what, pv, &port, &err) != CS_OK) {
        fprintf(stderr, "cellserve: %s\n", err.msg);
        return 2;
    }

    /* Every agent of `make run` shares one host: the machine's name, which
     * the agent passes, tells the tasks apart. */
    char host[256] = "unknown", page[1024];
    const char *machine = getenv("CELL_MACHINE");
    if (machine != NULL && machine[0] != '\0')
        snprintf(host, sizeof host, "%s", machine);
    else
        gethostname(host, sizeof host - 1);
    const char *task = getenv("CELL_TASK_ID"), *job = getenv("CELL_JOB"), *hi = getenv("GREETING");
    snprintf(page, sizeof page, "%s from task %s of job %s on %s, port %d\n", hi ? hi : "cellserve",
             task ? task : "(none)", job ? job : "(none)", host, port);

    /* Blocked before anything else runs, so that the signals are only
     * ever read from the signalfd in the loop: no handler, no flag. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int rc = 1, lfd = -1, sfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (sfd < 0) {
        fprintf(stderr, "cellserve: signalfd: %s\n", strerror(errno));
        return 1;
    }
    if (listen_on(port, &lfd, &err) != CS_OK)
        goto cleanup;
    fprintf(stderr, "cellserve: serving 0.0.0.0:%d\n", port);
    if (serve(lfd, sfd, page, &err) != CS_OK)
        goto cleanup;
    fprintf(stderr, "cellserve: stopping\n");
    rc = 0;
cleanup:
    if (rc != 0)
        fprintf(stderr, "cellserve: %s\n", err.msg);
    if (lfd >= 0)
        close(lfd);
    close(sfd);
    return rc;
}
