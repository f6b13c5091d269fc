/* logserve.c — task.logs and the retention of ended tasks' directories
 * (see logserve.h). */
#include "agent/logserve.h"

#include "agent/isolate.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "proto/clock.h"
#include "proto/principal.h"
#include "proto/proto.h"
#include "proto/tlsengine.h"

/* The work directory is at most 3000 bytes (runner.c), so any task file fits. */
#define PATH_BUF 4200

/* ---- reading ------------------------------------------------------------------ */

static ssize_t pread_all(int fd, char *buf, size_t len, uint64_t off)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, buf + got, len - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/* Where the last `lines` lines of buf[0..len) start: after the lines-th
 * newline from the end, not counting a newline that ends the buffer (it
 * ends the last line). -1 when the buffer holds fewer lines. */
static ssize_t tail_start(const char *buf, size_t len, uint32_t lines)
{
    size_t end = len > 0 && buf[len - 1] == '\n' ? len - 1 : len;
    uint32_t seen = 0;
    for (size_t i = end; i > 0; i--)
        if (buf[i - 1] == '\n' && ++seen == lines)
            return (ssize_t)i;
    return -1;
}

int ag_logs_read(const char *workdir, const ag_logs_req *q, ag_logs_chunk *out, cs_error *err)
{
    memset(out, 0, sizeof *out);
    const char *stream = q->err_stream ? "stderr" : "stdout";
    char path[PATH_BUF];
    int n = snprintf(path, sizeof path, "%s/tasks/%" PRIu64 "-%" PRIu32 "/%s", workdir, q->task,
                     q->attempt, stream);
    if (n <= 0 || (size_t)n >= sizeof path)
        return cs_errorf(err, CS_EINVAL, "the work directory's path is too long");
    /* O_NOFOLLOW: a task may replace its own output by a symbolic link, to
     * anywhere; the agent serves what the task wrote, nothing else. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT)
            return cs_errorf(err, CS_ENOTFOUND,
                             "task %" PRIu64 " attempt %" PRIu32 " has no %s on this machine "
                             "(it never ran here, or its directory was removed by retention)",
                             q->task, q->attempt, stream);
        return cs_errorf(err, CS_EIO, "task %" PRIu64 " attempt %" PRIu32 ": %s: %s", q->task,
                         q->attempt, stream, strerror(errno));
    }
    struct stat st;
    int rc = CS_OK;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = cs_errorf(err, CS_EIO, "task %" PRIu64 " attempt %" PRIu32 ": %s is not a regular "
                       "file", q->task, q->attempt, stream);
        goto cleanup;
    }
    uint64_t size = (uint64_t)st.st_size, max = q->max, off;
    if (max == 0 || max > AG_LOGS_MAX)
        max = AG_LOGS_MAX;
    if (q->tail > 0)
        off = size > max ? size - max : 0;
    else
        off = q->offset < size ? q->offset : size;
    size_t want = (size_t)(size - off < max ? size - off : max);
    out->offset = off;
    out->size = size;
    if (want == 0)
        goto cleanup;
    if ((out->data = malloc(want)) == NULL) {
        rc = cs_errorf(err, CS_ENOMEM, "out of memory");
        goto cleanup;
    }
    ssize_t got = pread_all(fd, out->data, want, off);
    if (got < 0) {
        rc = cs_errorf(err, CS_EIO, "reading %s: %s", path, strerror(errno));
        goto cleanup;
    }
    out->len = (size_t)got;
    if (q->tail > 0) {
        ssize_t start = tail_start(out->data, out->len, q->tail);
        if (start > 0) {
            memmove(out->data, out->data + start, out->len - (size_t)start);
            out->len -= (size_t)start;
            out->offset += (uint64_t)start;
        }
    }
cleanup:
    if (rc != CS_OK || out->len == 0) {
        free(out->data);
        out->data = NULL;
        out->len = 0;
    }
    close(fd);
    return rc;
}

/* ---- retention ---------------------------------------------------------------- */

typedef struct done_dir {
    char name[64];
    int64_t done_ms; /* mtime of its done file */
} done_dir;

static int newest_first(const void *a, const void *b)
{
    const done_dir *x = a, *y = b;
    return (x->done_ms < y->done_ms) - (x->done_ms > y->done_ms);
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    /* Depth first (FTW_DEPTH), links not followed (FTW_PHYS): a task's
     * symbolic link is removed, never what it points to. A failure leaves
     * the rest for the next sweep. */
    remove(path);
    return 0;
}

int ag_retain_sweep(const char *workdir, const ag_retain *r, int64_t now_ms, uint32_t *removed,
                    cs_error *err)
{
    char path[PATH_BUF];
    if (removed)
        *removed = 0;
    snprintf(path, sizeof path, "%s/tasks", workdir);
    DIR *d = opendir(path);
    if (d == NULL)
        return cs_errorf(err, CS_EIO, "%s: %s", path, strerror(errno));
    done_dir *v = NULL;
    size_t n = 0, cap = 0;
    int rc = CS_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        if (e->d_name[0] == '.' || strlen(e->d_name) >= sizeof v->name ||
            snprintf(path, sizeof path, "%s/tasks/%s/done", workdir, e->d_name) <= 0 ||
            stat(path, &st) != 0)
            continue; /* not done (or not a placement's directory): kept */
        if (n == cap) {
            size_t c = cap ? 2 * cap : 64;
            done_dir *x = realloc(v, c * sizeof *x);
            if (x == NULL) {
                rc = cs_errorf(err, CS_ENOMEM, "out of memory");
                break;
            }
            v = x;
            cap = c;
        }
        memcpy(v[n].name, e->d_name, strlen(e->d_name) + 1); /* fits: checked above */
        v[n].done_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
        n++;
    }
    closedir(d);
    if (rc == CS_OK && n > 0)
        qsort(v, n, sizeof *v, newest_first);
    for (size_t i = 0; rc == CS_OK && i < n; i++) {
        if (i < r->keep && now_ms - v[i].done_ms <= (int64_t)r->max_age_ms)
            continue;
        snprintf(path, sizeof path, "%s/tasks/%s", workdir, v[i].name);
        ag_jail_remove_sandbox(path); /* where the task ran, named in its directory */
        nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS);
        if (removed && access(path, F_OK) != 0)
            (*removed)++;
    }
    free(v);
    return rc;
}

/* ---- the service ----------------------------------------------------------- */

struct ag_logsrv {
    char *workdir;
    char url[CS_URL_MAX + 1];
    ag_retain retain;
    nng_socket sock;
    pthread_t thread;
    bool tls; /* over TLS: only an operator, a reader or a replica may read */
};

static int64_t wall_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether the TLS peer of `pipe` may read task output: a task's output
 * can hold what its environment held, so the roles that may read the
 * cell (docs/security.md "Roles") — an operator, a reader, a replica —
 * and not another agent or a scheduler. Its principal's text into who. */
static bool may_read_logs(nng_pipe pipe, char *who, size_t n)
{
    struct cs_tls_peer peer;
    cs_error ignored;
    cs_principal p = cs_principal_anonymous();
    if (cs_tls_peer(pipe, &peer, &ignored) == CS_OK && peer.verified &&
        cs_principal_parse(peer.cn, strlen(peer.cn), &p, &ignored) != CS_OK)
        p = cs_principal_anonymous();
    cs_principal_text(&p, who, n);
    return p.role == CS_AUTH_OPERATOR || p.role == CS_AUTH_READER || p.role == CS_AUTH_SERVER;
}

/* Answer one request (data[0..len)) into buf; `denied`: the principal
 * that may not read (NULL: it may). */
static void answer(const ag_logsrv *s, const void *data, size_t len, const char *denied,
                   msgpack_sbuffer *buf)
{
    msgpack_zone zone;
    cs_error err = {0};
    cs_msg m = {0};
    ag_logs_chunk c = {0};
    ag_logs_req q;
    int rc;
    if (!msgpack_zone_init(&zone, 1024)) {
        cs_msg_error(buf, 0, CS_ENOMEM, "out of memory");
        return;
    }
    if ((rc = cs_msg_decode(data, len, &zone, &m, &err)) == CS_OK) {
        if (m.type != CS_MSG_TASK_LOGS)
            rc = cs_errorf(&err, CS_EPROTO, "this is a cell-agent's log service: it answers "
                           "task.logs only, not %s", cs_msg_name(m.type));
        else if (denied != NULL)
            rc = cs_errorf(&err, CS_EPERM,
                           "permission denied: %s may not task.logs: only operator, reader, "
                           "server may",
                           denied);
        else if ((rc = cs_logs_req_decode(&m.body, &q, NULL, &err)) == CS_OK)
            rc = ag_logs_read(s->workdir, &q, &c, &err);
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
    cs_logs_reply reply = {c.offset, c.size, c.offset + c.len, c.data, (uint32_t)c.len};
    if (rc == CS_OK && (cs_msg_begin(&pk, CS_MSG_TASK_LOGS, m.req) != CS_OK ||
                        cs_logs_reply_encode(&pk, &reply) != CS_OK)) {
        buf->size = 0;
        rc = cs_errorf(&err, CS_ENOMEM, "out of memory");
    }
    if (rc != CS_OK)
        cs_msg_error(buf, m.req, rc, err.msg);
    free(c.data);
    msgpack_zone_destroy(&zone);
}

#define SWEEP_EVERY_MS 1000

static void *serve_main(void *arg)
{
    ag_logsrv *s = arg;
    int64_t next_sweep = 0;
    for (;;) {
        if (cs_clock_now_ms() >= next_sweep) {
            cs_error err = {0};
            if (ag_retain_sweep(s->workdir, &s->retain, wall_now_ms(), NULL, &err) != CS_OK)
                fprintf(stderr, "cell-agent: retention: %s\n", err.msg);
            next_sweep = cs_clock_now_ms() + SWEEP_EVERY_MS;
        }
        nng_msg *req;
        int rv = nng_recvmsg(s->sock, &req, 0);
        if (rv == NNG_ETIMEDOUT)
            continue;
        if (rv != 0)
            return NULL; /* closed */
        msgpack_sbuffer b;
        msgpack_sbuffer_init(&b);
        char who[CS_PRINCIPAL_MAX + 1];
        bool ok = !s->tls || may_read_logs(nng_msg_get_pipe(req), who, sizeof who);
        answer(s, nng_msg_body(req), nng_msg_len(req), ok ? NULL : who, &b);
        nng_msg_free(req);
        if (b.size > 0)
            nng_send(s->sock, b.data, b.size, 0);
        msgpack_sbuffer_destroy(&b);
    }
}

/* The advertised URL: tcp://HOST:PORT with the bound port, and `host`
 * for a wildcard. */
static int advertise(ag_logsrv *s, const char *listen_url, const char *host, int port,
                     cs_error *err)
{
    const char *scheme_end = strstr(listen_url, "://");
    int slen = (int)(scheme_end - listen_url);
    const char *h = scheme_end + 3, *colon = strrchr(h, ':');
    size_t hlen = colon ? (size_t)(colon - h) : 0;
    bool wild = hlen == 0 || (hlen == 7 && memcmp(h, "0.0.0.0", 7) == 0) ||
                (hlen == 1 && h[0] == '*') || (hlen == 4 && memcmp(h, "[::]", 4) == 0);
    int n = wild ? snprintf(s->url, sizeof s->url, "%.*s://%s:%d", slen, listen_url, host, port)
                 : snprintf(s->url, sizeof s->url, "%.*s://%.*s:%d", slen, listen_url, (int)hlen,
                            h, port);
    if (n <= 0 || (size_t)n >= sizeof s->url)
        return cs_errorf(err, CS_EINVAL, "the log service's URL is longer than %d bytes",
                         CS_URL_MAX);
    return CS_OK;
}

int ag_logsrv_open(const char *workdir, const char *listen_url, const char *host,
                   const cs_tls *tls, const ag_retain *r, ag_logsrv **out, cs_error *err)
{
    size_t skip = strncmp(listen_url, "tcp://", 6) == 0       ? 6
                  : strncmp(listen_url, "tls+tcp://", 10) == 0 ? 10
                                                               : 0;
    if (skip == 0 || strrchr(listen_url + skip, ':') == NULL)
        return cs_errorf(err, CS_EINVAL,
                         "log service address '%s' is not tcp://HOST:PORT or tls+tcp://HOST:PORT",
                         listen_url);
    CS_TRY(cs_tls_check_url(tls, listen_url, "log service", err));
    ag_logsrv *s = calloc(1, sizeof *s);
    if (s == NULL || (s->workdir = strdup(workdir)) == NULL) {
        free(s);
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    }
    s->retain = *r;
    int rv, rc = CS_OK, port = 0;
    nng_listener l;
    if ((rv = nng_rep0_open(&s->sock)) != 0) {
        rc = cs_errorf(err, CS_EIO, "log service: socket: %s", nng_strerror(rv));
        goto err_after_alloc;
    }
    nng_socket_set_ms(s->sock, NNG_OPT_RECVTIMEO, SWEEP_EVERY_MS);
    nng_socket_set_ms(s->sock, NNG_OPT_SENDTIMEO, 5000);
    nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, 4096); /* requests are small */
    if (cs_tls_url(listen_url)) {
        if ((rc = cs_tls_listen(s->sock, listen_url, tls, &l, "log service", err)) != CS_OK)
            goto err_after_socket;
        s->tls = true;
    } else if ((rv = nng_listen(s->sock, listen_url, &l, 0)) != 0) {
        rc = cs_errorf(err, CS_EINVAL, "log service: cannot listen on %s: %s", listen_url,
                       nng_strerror(rv));
        goto err_after_socket;
    }
    if ((rv = nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port)) != 0) {
        rc = cs_errorf(err, CS_EIO, "log service: bound port of %s: %s", listen_url,
                       nng_strerror(rv));
        goto err_after_socket;
    }
    if ((rc = advertise(s, listen_url, host, port, err)) != CS_OK)
        goto err_after_socket;
    if ((rv = pthread_create(&s->thread, NULL, serve_main, s)) != 0) {
        rc = cs_errorf(err, CS_ENOMEM, "log service: thread: %s", strerror(rv));
        goto err_after_socket;
    }
    *out = s;
    return CS_OK;
err_after_socket:
    nng_close(s->sock);
err_after_alloc:
    free(s->workdir);
    free(s);
    return rc;
}

const char *ag_logsrv_url(const ag_logsrv *s) { return s->url; }

void ag_logsrv_close(ag_logsrv *s)
{
    if (s == NULL)
        return;
    nng_close(s->sock); /* the thread's receive returns NNG_ECLOSED */
    pthread_join(s->thread, NULL);
    free(s->workdir);
    free(s);
}
