/* health.c — the health checks of running tasks, on one thread of their own
 * (see health.h).
 *
 * Concurrency: `mu` guards the targets, their checks and the orphans. The
 * thread holds it except while it sleeps in poll(2); the agent's loop takes
 * it briefly to add, remove and read targets. Only the thread frees
 * anything (a removed target is marked `gone` and swept at the top of the
 * next round), so the pointers the poll set refers to stay valid across
 * the unlocked poll.
 */
#include "agent/health.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* Longest sleep when nothing is due. New work wakes the thread anyway
 * (eventfd); this only bounds the cost of a lost wake-up. */
#define HC_MAX_SLEEP_MS 1000
/* Bytes of an HTTP answer read for its status line: "HTTP/1.1 200 OK"
 * fits many times over; a server that sends more before a newline is not
 * answering HTTP. */
#define HC_STATUS_MAX 256
#define HC_WHY_MAX 160

typedef enum run_phase { RUN_IDLE, RUN_CONNECT, RUN_SEND, RUN_READ, RUN_COMMAND } run_phase;

typedef struct check {
    cs_health c;            /* command and path point at this check's own copies */
    uint32_t number;        /* 1-based, as messages name it */
    bool has_port;
    uint16_t port;
    char desc[AG_REASON_MAX / 2];
    char *req;              /* HTTP: the whole request */
    size_t req_len;
    /* the run in flight */
    run_phase phase;
    int fd;                 /* the socket, or the COMMAND's pidfd */
    pid_t pid;
    int64_t begun, deadline, next_due;
    size_t sent, len;
    char buf[HC_STATUS_MAX];
    /* results */
    ag_health_state state;  /* UNKNOWN until a success or a counted failure */
    bool ever_healthy;      /* the grace period ended at the first success */
    uint32_t failures;      /* consecutive counted failures */
} check;

typedef struct target {
    cs_id id;
    uint32_t attempt;
    int64_t started;
    uid_t uid;
    gid_t gid;
    char **procs;           /* the task's cgroups' cgroup.procs, NULL-terminated; NULL none */
    char *dir;
    char *env;              /* NUL-separated, with a final NUL */
    char **envp;
    check *checks;
    uint32_t n;
    bool gone;              /* unwatched: the thread frees it */
    ag_health_status status;
    struct target *next;
} target;

/* A COMMAND run killed at its deadline (or abandoned), waiting to be reaped
 * so that it leaves no zombie. */
typedef struct orphan {
    pid_t pid;
    int pidfd;
    struct orphan *next;
} orphan;

/* What each entry of the poll set stands for: the wake-up eventfd (both
 * NULL), a check's run, or an orphan. */
typedef struct slot {
    target *t;
    check *k;
    orphan *o;
} slot;

struct ag_health {
    pthread_t thread;
    bool thread_started;
    int wake_fd;
    pthread_mutex_t mu;
    /* guarded by mu */
    bool stopping;
    target *targets;
    orphan *orphans;
    /* the thread's own */
    struct pollfd *pfd;
    slot *slots;
    size_t cap;
};

static void hlog(const target *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void hlog(const target *t, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "cell-agent: task %llu attempt %u: %s\n", (unsigned long long)t->id,
            t->attempt, line);
}

/* strerror, with a lower-case first letter, since it ends a sentence:
 * "... failed 3 consecutive times: connection refused". */
static void errtext(int e, char *out, size_t size)
{
    char buf[128];
    const char *s = strerror_r(e, buf, sizeof buf);
    snprintf(out, size, "%s", s);
    if (out[0] >= 'A' && out[0] <= 'Z' && !(out[1] >= 'A' && out[1] <= 'Z'))
        out[0] = (char)(out[0] - 'A' + 'a');
}

/* ---- descriptions ------------------------------------------------------------ */

void ag_health_describe(const cs_health *c, uint32_t number, const uint16_t *ports,
                        uint32_t nports, char *out, size_t size)
{
    char port[48];
    if (c->port_index < nports)
        snprintf(port, sizeof port, "port %u", ports[c->port_index]);
    else
        snprintf(port, sizeof port, "PORT%u, which the task does not have", c->port_index);
    switch (c->proto) {
    case CS_HEALTH_COMMAND:
        snprintf(out, size, "health check %u (COMMAND %.80s%s)", number, c->command,
                 strlen(c->command) > 80 ? "..." : "");
        break;
    case CS_HEALTH_TCP:
        snprintf(out, size, "health check %u (TCP on %s)", number, port);
        break;
    default:
        snprintf(out, size, "health check %u (HTTP %.60s%s on %s)", number, c->path,
                 strlen(c->path) > 60 ? "..." : "", port);
        break;
    }
}

void ag_health_kill_reason(const char *desc, uint32_t failures, const char *last, char *out,
                           size_t size)
{
    snprintf(out, size, "%s failed %u consecutive time%s: %s", desc, failures,
             failures == 1 ? "" : "s", last);
}

/* ---- targets ----------------------------------------------------------------- */

static void free_target(target *t)
{
    if (t == NULL)
        return;
    for (uint32_t i = 0; t->checks && i < t->n; i++) {
        free((char *)t->checks[i].c.command);
        free((char *)t->checks[i].c.path);
        free(t->checks[i].req);
    }
    free(t->checks);
    for (char **p = t->procs; p && *p; p++)
        free(*p);
    free(t->procs);
    free(t->envp);
    free(t->env);
    free(t->dir);
    free(t);
}

/* Copy the environment and index its entries for posix_spawn. */
/* t->procs from the target's cgroups (one directory a line). */
static int copy_cgroups(target *t, const char *list)
{
    size_t n = 0;
    for (const char *p = list; p && *p; p++)
        n += *p == '\n';
    if (list == NULL || n == 0)
        return 0;
    if ((t->procs = calloc(n + 1, sizeof *t->procs)) == NULL)
        return -1;
    size_t k = 0;
    for (const char *p = list; *p && k < n;) {
        size_t len = strcspn(p, "\n");
        if (len > 0) {
            if ((t->procs[k] = malloc(len + sizeof "/cgroup.procs")) == NULL)
                return -1;
            memcpy(t->procs[k], p, len);
            memcpy(t->procs[k] + len, "/cgroup.procs", sizeof "/cgroup.procs");
            k++;
        }
        p += len + (p[len] == '\n');
    }
    return 0;
}

static int copy_env(target *t, const char *env, size_t len)
{
    t->env = malloc(len + 1);
    if (t->env == NULL)
        return -1;
    if (len > 0)
        memcpy(t->env, env, len);
    t->env[len] = '\0';
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += t->env[i] == '\0';
    t->envp = calloc(n + 2, sizeof *t->envp);
    if (t->envp == NULL)
        return -1;
    size_t k = 0;
    for (size_t off = 0; off < len; off += strlen(t->env + off) + 1)
        if (t->env[off] != '\0')
            t->envp[k++] = t->env + off;
    t->envp[k] = NULL;
    return 0;
}

static int init_check(check *k, const cs_health *c, uint32_t number, const ag_health_target *src)
{
    k->c = *c;
    k->number = number;
    k->fd = -1;
    k->c.command = strdup(c->command ? c->command : "");
    k->c.path = strdup(c->path && c->path[0] ? c->path : "/");
    if (k->c.command == NULL || k->c.path == NULL)
        return -1;
    k->has_port = c->port_index < src->nports;
    k->port = k->has_port ? src->ports[c->port_index] : 0;
    ag_health_describe(c, number, src->ports, src->nports, k->desc, sizeof k->desc);
    if (c->proto != CS_HEALTH_HTTP || !k->has_port)
        return 0;
#define HTTP_REQUEST                                                                       \
    "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nUser-Agent: cell-agent\r\n"                     \
    "Connection: close\r\n\r\n"
    int n = snprintf(NULL, 0, HTTP_REQUEST, k->c.path, k->port);
    k->req = n > 0 ? malloc((size_t)n + 1) : NULL;
    if (k->req == NULL)
        return -1;
    snprintf(k->req, (size_t)n + 1, HTTP_REQUEST, k->c.path, k->port);
#undef HTTP_REQUEST
    k->req_len = (size_t)n;
    return 0;
}

static target *find_target(ag_health *h, cs_id id, uint32_t attempt)
{
    for (target *t = h->targets; t; t = t->next)
        if (!t->gone && t->id == id && t->attempt == attempt)
            return t;
    return NULL;
}

static void wake(ag_health *h)
{
    uint64_t one = 1;
    ssize_t w = write(h->wake_fd, &one, sizeof one);
    (void)w; /* EAGAIN: a wake-up is already pending, which is all it takes */
}

int ag_health_watch(ag_health *h, const ag_health_target *src, cs_error *err)
{
    if (src->nchecks == 0 || src->nchecks > CS_HEALTH_MAX)
        return cs_errorf(err, CS_EINVAL, "task %llu: %u health checks (1 to %u allowed)",
                         (unsigned long long)src->id, src->nchecks, CS_HEALTH_MAX);
    target *t = calloc(1, sizeof *t);
    if (t == NULL)
        return cs_errorf(err, CS_ENOMEM, "task %llu: health checks: out of memory",
                         (unsigned long long)src->id);
    t->id = src->id;
    t->attempt = src->attempt;
    t->started = src->started_ms;
    t->uid = src->uid;
    t->gid = src->gid;
    t->n = src->nchecks;
    t->dir = strdup(src->dir);
    t->checks = calloc(src->nchecks, sizeof *t->checks);
    bool ok = t->dir != NULL && t->checks != NULL && copy_env(t, src->env, src->envlen) == 0 &&
              copy_cgroups(t, src->cgroups) == 0;
    for (uint32_t i = 0; ok && i < src->nchecks; i++)
        ok = init_check(&t->checks[i], &src->checks[i], i + 1, src) == 0;
    if (!ok) {
        free_target(t);
        return cs_errorf(err, CS_ENOMEM, "task %llu: health checks: out of memory",
                         (unsigned long long)src->id);
    }
    int64_t now = cs_clock_now_ms();
    for (uint32_t i = 0; i < t->n; i++)
        t->checks[i].next_due = now;
    pthread_mutex_lock(&h->mu);
    if (find_target(h, src->id, src->attempt) != NULL) {
        pthread_mutex_unlock(&h->mu);
        free_target(t);
        return CS_OK;
    }
    t->next = h->targets;
    h->targets = t;
    pthread_mutex_unlock(&h->mu);
    wake(h);
    return CS_OK;
}

void ag_health_unwatch(ag_health *h, cs_id id, uint32_t attempt)
{
    pthread_mutex_lock(&h->mu);
    target *t = find_target(h, id, attempt);
    if (t != NULL)
        t->gone = true;
    pthread_mutex_unlock(&h->mu);
    if (t != NULL)
        wake(h);
}

bool ag_health_get(ag_health *h, cs_id id, uint32_t attempt, ag_health_status *out)
{
    pthread_mutex_lock(&h->mu);
    target *t = find_target(h, id, attempt);
    if (t != NULL)
        *out = t->status;
    pthread_mutex_unlock(&h->mu);
    return t != NULL;
}

/* ---- results ---------------------------------------------------------------- */

static ag_health_state overall(const target *t)
{
    bool all = true;
    for (uint32_t i = 0; i < t->n; i++) {
        if (t->checks[i].state == AG_HEALTH_UNHEALTHY)
            return AG_HEALTH_UNHEALTHY;
        all = all && t->checks[i].state == AG_HEALTH_HEALTHY;
    }
    return all ? AG_HEALTH_HEALTHY : AG_HEALTH_UNKNOWN;
}

static void abort_run(ag_health *h, check *k);

/* A run of check k ended: ok, or failed because of `why`. Applies the grace
 * period, counts consecutive failures and condemns the task at
 * max_failures. */
static void result(ag_health *h, target *t, check *k, bool ok, const char *why, int64_t now)
{
    k->phase = RUN_IDLE;
    k->fd = -1;
    k->next_due = k->begun + k->c.interval_ms;
    if (k->next_due < now)
        k->next_due = now;
    if (t->status.kill)
        return;
    ag_health_state before = k->state;
    if (ok) {
        k->ever_healthy = true;
        k->failures = 0;
        k->state = AG_HEALTH_HEALTHY;
    } else if (!k->ever_healthy && now - t->started < (int64_t)k->c.grace_ms) {
        return; /* Marathon: failures within the grace period do not count */
    } else {
        k->failures++;
        k->state = AG_HEALTH_UNHEALTHY;
    }
    if (k->state != before)
        hlog(t, "%s: %s%s%s", k->desc, ok ? "healthy" : "unhealthy", ok ? "" : ": ",
             ok ? "" : why);
    t->status.state = overall(t);
    if (ok || k->c.max_failures == 0 || k->failures < k->c.max_failures)
        return;
    t->status.kill = true;
    ag_health_kill_reason(k->desc, k->failures, why, t->status.reason, sizeof t->status.reason);
    hlog(t, "%s: condemned", t->status.reason);
    for (uint32_t i = 0; i < t->n; i++)
        abort_run(h, &t->checks[i]);
}

/* ---- runs ---------------------------------------------------------------------- */

/* Give up a run in flight without a result: close its socket, or kill its
 * process group and leave the process to be reaped. */
static void abort_run(ag_health *h, check *k)
{
    if (k->phase == RUN_IDLE)
        return;
    if (k->phase == RUN_COMMAND) {
        kill(-k->pid, SIGKILL);
        orphan *o = malloc(sizeof *o);
        if (o != NULL) {
            o->pid = k->pid;
            o->pidfd = k->fd;
            o->next = h->orphans;
            h->orphans = o;
        } else {
            /* Out of memory: reap it now; SIGKILL makes that quick. */
            waitpid(k->pid, NULL, 0);
            close(k->fd);
        }
    } else if (k->fd >= 0) {
        close(k->fd);
    }
    k->phase = RUN_IDLE;
    k->fd = -1;
}

/* A check in the task's cgroups or as another user: posix_spawn can do
 * neither, so fork; between fork and exec only system calls (the agent has
 * threads). The same process as spawn_command's otherwise. 0 or an errno. */
static int fork_check(const target *t, const check *k, pid_t *out)
{
    char *argv[] = {(char *)"sh", (char *)"-c", (char *)k->c.command, NULL};
    pid_t pid = fork();
    if (pid < 0)
        return errno;
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        setpgid(0, 0);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        int in = open("/dev/null", O_RDONLY), nul = open("/dev/null", O_WRONLY);
        if (in < 0 || nul < 0 || dup2(in, 0) < 0 || dup2(nul, 1) < 0 || dup2(nul, 2) < 0)
            _exit(126);
        for (char **p = t->procs; p && *p; p++) {
            int fd = open(*p, O_WRONLY);
            if (fd < 0 || write(fd, "0", 1) != 1)
                _exit(126);
            close(fd);
        }
        if (chdir(t->dir) != 0 ||
            (t->uid != geteuid() &&
             (setgroups(1, &t->gid) != 0 || setgid(t->gid) != 0 || setuid(t->uid) != 0)))
            _exit(126);
        close_range(3, ~0U, 0);
        execve("/bin/sh", argv, t->envp);
        _exit(127);
    }
    setpgid(pid, pid); /* also here, so that a timeout's kill(-pid) finds the group */
    *out = pid;
    return 0;
}

static int spawn_command(const target *t, check *k, char *why, size_t size)
{
    posix_spawnattr_t at;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_init(&at);
    posix_spawn_file_actions_init(&fa);
    /* The agent blocks SIGTERM and SIGINT and ignores SIGPIPE; a check's
     * shell must not inherit either, or it could not be stopped normally. */
    sigset_t none, dflt;
    sigemptyset(&none);
    sigemptyset(&dflt);
    sigaddset(&dflt, SIGPIPE);
    sigaddset(&dflt, SIGTERM);
    sigaddset(&dflt, SIGINT);
    sigaddset(&dflt, SIGHUP);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&at, 0); /* its own group, so that a timeout kills it all */
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &dflt);
    posix_spawn_file_actions_addchdir_np(&fa, t->dir);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    char *argv[] = {(char *)"sh", (char *)"-c", (char *)k->c.command, NULL};
    pid_t pid;
    int rc = t->uid != geteuid() || t->procs != NULL
                 ? fork_check(t, k, &pid)
                 : posix_spawn(&pid, "/bin/sh", &fa, &at, argv, t->envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    char e[96];
    if (rc != 0) {
        errtext(rc, e, sizeof e);
        snprintf(why, size, "cannot run /bin/sh in %.40s: %s", t->dir, e);
        return -1;
    }
    int fd = pidfd_open(pid, 0);
    if (fd < 0) {
        errtext(errno, e, sizeof e);
        snprintf(why, size, "pidfd_open: %s", e);
        kill(-pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    k->pid = pid;
    k->fd = fd;
    k->phase = RUN_COMMAND;
    return 0;
}

/* The connection is up: a TCP check has succeeded; an HTTP one sends. */
static void connected(ag_health *h, target *t, check *k, int64_t now)
{
    if (k->c.proto == CS_HEALTH_TCP) {
        close(k->fd);
        result(h, t, k, true, "", now);
        return;
    }
    k->phase = RUN_SEND;
    k->sent = 0;
    k->len = 0;
}

static void begin(ag_health *h, target *t, check *k, int64_t now)
{
    char why[HC_WHY_MAX], e[96];
    k->begun = now;
    k->deadline = now + k->c.timeout_ms;
    if (k->c.proto == CS_HEALTH_COMMAND) {
        if (spawn_command(t, k, why, sizeof why) != 0)
            result(h, t, k, false, why, now);
        return;
    }
    if (!k->has_port) {
        snprintf(why, sizeof why, "the task has no PORT%u", k->c.port_index);
        result(h, t, k, false, why, now);
        return;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        errtext(errno, e, sizeof e);
        snprintf(why, sizeof why, "socket: %s", e);
        result(h, t, k, false, why, now);
        return;
    }
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(k->port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    k->fd = fd;
    if (connect(fd, (const struct sockaddr *)&a, sizeof a) == 0) {
        connected(h, t, k, now);
    } else if (errno == EINPROGRESS) {
        k->phase = RUN_CONNECT;
    } else {
        errtext(errno, why, sizeof why);
        close(fd);
        result(h, t, k, false, why, now);
    }
}

/* "HTTP/1.1 204 No Content" → 204; -1 when it is not a status line. */
static int status_code(const char *s, size_t len)
{
    if (len < 12 || memcmp(s, "HTTP/", 5) != 0)
        return -1;
    size_t i = 5;
    while (i < len && ((s[i] >= '0' && s[i] <= '9') || s[i] == '.'))
        i++;
    if (i == 5 || i + 4 > len || s[i] != ' ')
        return -1;
    int code = 0;
    for (size_t j = i + 1; j < i + 4; j++) {
        if (s[j] < '0' || s[j] > '9')
            return -1;
        code = code * 10 + (s[j] - '0');
    }
    if (i + 4 < len && s[i + 4] != ' ' && s[i + 4] != '\r' && s[i + 4] != '\n')
        return -1;
    return code;
}

/* The answer so far holds a status line (or the peer closed): judge it. */
static void judge_http(ag_health *h, target *t, check *k, int64_t now)
{
    char why[HC_WHY_MAX];
    close(k->fd);
    if (k->len == 0) {
        result(h, t, k, false, "connection closed before the status line", now);
        return;
    }
    int code = status_code(k->buf, k->len);
    if (code >= 200 && code <= 399) {
        result(h, t, k, true, "", now);
        return;
    }
    if (code >= 0) {
        snprintf(why, sizeof why, "HTTP %d", code);
    } else {
        size_t n = strcspn(k->buf, "\r\n");
        char line[48];
        size_t j = 0;
        for (size_t i = 0; i < n && j + 1 < sizeof line; i++)
            line[j++] = k->buf[i] >= 32 && k->buf[i] < 127 ? k->buf[i] : '?';
        line[j] = '\0';
        snprintf(why, sizeof why, "not an HTTP status line: '%s'", line);
    }
    result(h, t, k, false, why, now);
}

static void socket_failed(ag_health *h, target *t, check *k, const char *stage, int e,
                          int64_t now)
{
    char why[HC_WHY_MAX], text[96];
    errtext(e, text, sizeof text);
    if (stage[0])
        snprintf(why, sizeof why, "%s: %s", stage, text);
    else
        snprintf(why, sizeof why, "%s", text);
    close(k->fd);
    result(h, t, k, false, why, now);
}

/* Whether a send or recv that returned n moved bytes (or met the end);
 * otherwise the run waits for the next readiness, or has failed. */
static bool moved(ag_health *h, target *t, check *k, ssize_t n, const char *stage, int64_t now)
{
    if (n >= 0)
        return true;
    if (errno != EAGAIN && errno != EINTR)
        socket_failed(h, t, k, stage, errno, now);
    return false;
}

/* The socket of a TCP or HTTP run is ready. */
static void step_socket(ag_health *h, target *t, check *k, int64_t now)
{
    if (k->phase == RUN_CONNECT) {
        int e = 0;
        socklen_t l = sizeof e;
        if (getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &e, &l) != 0)
            e = errno;
        if (e != 0)
            socket_failed(h, t, k, "", e, now);
        else
            connected(h, t, k, now);
        return;
    }
    if (k->phase == RUN_SEND) {
        ssize_t w = send(k->fd, k->req + k->sent, k->req_len - k->sent, MSG_NOSIGNAL);
        if (!moved(h, t, k, w, "sending the request", now))
            return;
        k->sent += (size_t)w;
        if (k->sent == k->req_len)
            k->phase = RUN_READ;
        return;
    }
    ssize_t r = recv(k->fd, k->buf + k->len, sizeof k->buf - 1 - k->len, 0);
    if (!moved(h, t, k, r, "reading the answer", now))
        return;
    k->len += (size_t)r;
    k->buf[k->len] = '\0';
    if (r == 0 || memchr(k->buf, '\n', k->len) != NULL || k->len == sizeof k->buf - 1)
        judge_http(h, t, k, now);
}

/* The pidfd of a COMMAND run is readable: the shell has exited. */
static void step_command(ag_health *h, target *t, check *k, int64_t now)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, (id_t)k->pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0 || si.si_pid == 0)
        return;
    /* What it left behind in its group goes too; the unreaped shell keeps
     * the group's id from being reused meanwhile. */
    kill(-k->pid, SIGKILL);
    waitpid(k->pid, NULL, 0);
    close(k->fd);
    char why[HC_WHY_MAX];
    bool ok = si.si_code == CLD_EXITED && si.si_status == 0;
    if (si.si_code == CLD_EXITED)
        snprintf(why, sizeof why, "exited with code %d", si.si_status);
    else
        snprintf(why, sizeof why, "killed by signal %d", si.si_status);
    result(h, t, k, ok, why, now);
}

static void reap_orphan(ag_health *h, orphan *o)
{
    if (waitpid(o->pid, NULL, WNOHANG) == 0)
        return;
    close(o->pidfd);
    for (orphan **pp = &h->orphans; *pp; pp = &(*pp)->next)
        if (*pp == o) {
            *pp = o->next;
            break;
        }
    free(o);
}

/* ---- the thread ---------------------------------------------------------------- */

/* Free the targets unwatched since the last round. */
static void sweep(ag_health *h)
{
    target **pp = &h->targets;
    while (*pp) {
        target *t = *pp;
        if (!t->gone) {
            pp = &t->next;
            continue;
        }
        for (uint32_t i = 0; i < t->n; i++)
            abort_run(h, &t->checks[i]);
        *pp = t->next;
        free_target(t);
    }
}

/* Time out, start and schedule check k; lowers *due to when it next needs
 * the thread. */
static void schedule(ag_health *h, target *t, check *k, int64_t now, int64_t *due)
{
    if (t->status.kill)
        return;
    if (k->phase != RUN_IDLE && now >= k->deadline) {
        char why[HC_WHY_MAX];
        snprintf(why, sizeof why, "timed out after %u ms", k->c.timeout_ms);
        abort_run(h, k);
        result(h, t, k, false, why, now);
        if (t->status.kill)
            return;
    }
    if (k->phase == RUN_IDLE && now >= k->next_due)
        begin(h, t, k, now);
    if (t->status.kill)
        return;
    int64_t next = k->phase == RUN_IDLE ? k->next_due : k->deadline;
    if (next < *due)
        *due = next;
}

static int add_slot(ag_health *h, size_t *n, int fd, short events, slot s)
{
    if (*n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        struct pollfd *p = realloc(h->pfd, cap * sizeof *p);
        if (p == NULL)
            return -1;
        h->pfd = p;
        slot *sl = realloc(h->slots, cap * sizeof *sl);
        if (sl == NULL)
            return -1;
        h->slots = sl;
        h->cap = cap;
    }
    h->pfd[*n] = (struct pollfd){.fd = fd, .events = events};
    h->slots[*n] = s;
    (*n)++;
    return 0;
}

/* The poll set: the wake-up eventfd, every run in flight, every orphan.
 * Out of memory leaves some out for this round; their deadlines (the
 * round's timeout) still bring the thread back to them. */
static size_t pollset(ag_health *h)
{
    size_t n = 0;
    if (add_slot(h, &n, h->wake_fd, POLLIN, (slot){NULL, NULL, NULL}) != 0)
        return n;
    for (target *t = h->targets; t; t = t->next) {
        for (uint32_t i = 0; i < t->n; i++) {
            check *k = &t->checks[i];
            short ev = k->phase == RUN_CONNECT || k->phase == RUN_SEND ? POLLOUT : POLLIN;
            if (k->phase != RUN_IDLE && add_slot(h, &n, k->fd, ev, (slot){t, k, NULL}) != 0)
                return n;
        }
    }
    for (orphan *o = h->orphans; o; o = o->next)
        if (add_slot(h, &n, o->pidfd, POLLIN, (slot){NULL, NULL, o}) != 0)
            return n;
    return n;
}

static void handle(ag_health *h, size_t n, int64_t now)
{
    for (size_t i = 0; i < n; i++) {
        if (h->pfd[i].revents == 0)
            continue;
        slot s = h->slots[i];
        if (s.o != NULL) {
            reap_orphan(h, s.o);
        } else if (s.k == NULL) {
            uint64_t v;
            ssize_t r = read(h->wake_fd, &v, sizeof v);
            (void)r; /* only the wake-up matters */
        } else if (s.k->phase != RUN_IDLE && s.k->fd == h->pfd[i].fd) {
            /* (A run aborted earlier in this pass is idle or has a new fd.) */
            if (s.k->phase == RUN_COMMAND)
                step_command(h, s.t, s.k, now);
            else
                step_socket(h, s.t, s.k, now);
        }
    }
}

static void *health_main(void *arg)
{
    ag_health *h = arg;
    pthread_mutex_lock(&h->mu);
    while (!h->stopping) {
        int64_t now = cs_clock_now_ms();
        sweep(h);
        int64_t due = now + HC_MAX_SLEEP_MS;
        for (target *t = h->targets; t; t = t->next)
            for (uint32_t i = 0; i < t->n; i++)
                schedule(h, t, &t->checks[i], now, &due);
        size_t n = pollset(h);
        int timeout = due > now ? (int)(due - now) : 0;
        pthread_mutex_unlock(&h->mu);
        int rv = poll(h->pfd, n, timeout);
        pthread_mutex_lock(&h->mu);
        if (rv > 0)
            handle(h, n, cs_clock_now_ms());
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

int ag_health_open(ag_health **out, cs_error *err)
{
    ag_health *h = calloc(1, sizeof *h);
    if (h == NULL)
        return cs_errorf(err, CS_ENOMEM, "health checker: out of memory");
    int rc;
    h->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (h->wake_fd < 0) {
        rc = cs_errorf(err, CS_EIO, "health checker: eventfd: %s", strerror(errno));
        goto err_eventfd;
    }
    if (pthread_mutex_init(&h->mu, NULL) != 0) {
        rc = cs_errorf(err, CS_ENOMEM, "health checker: out of memory");
        goto err_mutex;
    }
    int e = pthread_create(&h->thread, NULL, health_main, h);
    if (e != 0) {
        rc = cs_errorf(err, CS_EIO, "health checker: thread: %s", strerror(e));
        goto err_thread;
    }
    h->thread_started = true;
    *out = h;
    return CS_OK;
err_thread:
    pthread_mutex_destroy(&h->mu);
err_mutex:
    close(h->wake_fd);
err_eventfd:
    free(h);
    return rc;
}

void ag_health_close(ag_health *h)
{
    if (h == NULL)
        return;
    pthread_mutex_lock(&h->mu);
    h->stopping = true;
    pthread_mutex_unlock(&h->mu);
    wake(h);
    if (h->thread_started)
        pthread_join(h->thread, NULL);
    for (target *t = h->targets; t; t = t->next)
        t->gone = true;
    sweep(h);
    /* Every orphan was sent SIGKILL: reaping them is quick. */
    while (h->orphans) {
        orphan *o = h->orphans;
        h->orphans = o->next;
        waitpid(o->pid, NULL, 0);
        close(o->pidfd);
        free(o);
    }
    pthread_mutex_destroy(&h->mu);
    close(h->wake_fd);
    free(h->pfd);
    free(h->slots);
    free(h);
}
