/* runner.c — tasks as processes under a detached supervisor, with durable
 * per-task directories (see runner.h).
 */
#include "agent/runner.h"

#include "agent/alive.h"
#include "agent/health.h"
#include "agent/isolate.h"
#include "agent/proctree.h"
#include "cellstate/paths.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* A placement with neither pid nor exit after this long was interrupted
 * while starting (the agent died between mkdir and the supervisor's first
 * write): it is reported failed rather than started a second time. */
#define AG_START_TIMEOUT_S 10

/* Paths: the work directory is limited to 3000 bytes at open, so a task
 * directory and any file in it fit. */
#define PATH_BUF 4200

struct ag_runner {
    char *workdir;
    char *self_exe;
    uint32_t tick_ms;
    int lock_fd;
    ag_health *health;
    const ag_iso *iso; /* borrowed; NULL: tasks run as before isolate.h */
};

/* ---- small file helpers ----------------------------------------------------- */

/* dir/name into out; false when it does not fit. */
static bool path_join(char *out, size_t size, const char *dir, const char *name)
{
    int n = snprintf(out, size, "%s/%s", dir, name);
    return n > 0 && (size_t)n < size;
}

static int task_dir(const ag_runner *r, cs_id id, uint32_t attempt, char *out, size_t size)
{
    int n = snprintf(out, size, "%s/tasks/%llu-%u", r->workdir, (unsigned long long)id, attempt);
    return n > 0 && (size_t)n < size ? CS_OK : CS_EINVAL;
}

static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Write dir/name atomically: a reader sees the old file or the whole new
 * one, never a part (temporary file, then rename). */
static int write_file(const char *dir, const char *name, const void *data, size_t len, bool sync)
{
    char tmp[PATH_BUF], path[PATH_BUF], tmpname[64];
    int k = snprintf(tmpname, sizeof tmpname, ".%s.tmp", name);
    if (k <= 0 || (size_t)k >= sizeof tmpname || !path_join(tmp, sizeof tmp, dir, tmpname) ||
        !path_join(path, sizeof path, dir, name))
        return -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    int rc = write_all(fd, data, len);
    if (rc == 0 && sync)
        rc = fsync(fd);
    if (close(fd) != 0)
        rc = -1;
    if (rc == 0)
        rc = rename(tmp, path);
    if (rc != 0)
        unlink(tmp);
    return rc;
}

/* Read dir/name into a malloc'd, NUL-terminated buffer (*len bytes before
 * the NUL). NULL when absent or unreadable. */
static char *read_file(const char *dir, const char *name, size_t *len)
{
    char path[PATH_BUF];
    int fd = path_join(path, sizeof path, dir, name) ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    if (fd < 0)
        return NULL;
    size_t cap = 256, n = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        if (n + 1 >= cap) {
            char *b = realloc(buf, cap * 2);
            if (b == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b;
            cap *= 2;
        }
        ssize_t got = read(fd, buf + n, cap - n - 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            free(buf);
            buf = NULL;
        } else if (got == 0) {
            buf[n] = '\0';
            if (len)
                *len = n;
            break;
        } else {
            n += (size_t)got;
        }
    }
    close(fd);
    return buf;
}

static bool file_exists(const char *dir, const char *name)
{
    char path[PATH_BUF];
    return path_join(path, sizeof path, dir, name) && access(path, F_OK) == 0;
}

/* ---- opening ------------------------------------------------------------------ */

int ag_runner_open(const char *workdir, const char *self_exe, uint32_t tick_ms,
                   const ag_iso *iso, ag_runner **out, cs_error *err)
{
    char path[PATH_BUF];
    int rc;
    if (strlen(workdir) > 3000)
        return cs_errorf(err, CS_EINVAL, "work directory path is too long");
    snprintf(path, sizeof path, "%s/tasks", workdir);
    if ((rc = cs_mkdir_p(path, err)) != CS_OK)
        return rc;
    ag_runner *r = calloc(1, sizeof *r);
    if (r == NULL)
        return cs_errorf(err, CS_ENOMEM, "runner: out of memory");
    r->lock_fd = -1;
    r->tick_ms = tick_ms ? tick_ms : 100;
    r->iso = iso;
    /* The agent's state (every task's cmd, env and exit) is the agent's
     * alone: a task user may neither write nor read it. */
    if (iso != NULL && ag_iso_uid(iso) != geteuid() && chmod(workdir, 0700) != 0) {
        rc = cs_errorf(err, CS_EIO, "chmod %s: %s", workdir, strerror(errno));
        goto fail;
    }
    r->workdir = strdup(workdir);
    r->self_exe = strdup(self_exe);
    if (r->workdir == NULL || r->self_exe == NULL) {
        rc = cs_errorf(err, CS_ENOMEM, "runner: out of memory");
        goto fail;
    }
    /* Two agents in one directory would each start the other's tasks. The
     * lock dies with the agent (supervisors do not inherit it: CLOEXEC). */
    snprintf(path, sizeof path, "%s/agent.lock", workdir);
    r->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (r->lock_fd < 0) {
        rc = cs_errorf(err, CS_EIO, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (flock(r->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = cs_errorf(err, CS_ESTATE, "%s: another cell-agent uses this work directory",
                       workdir);
        goto fail;
    }
    if ((rc = ag_health_open(&r->health, err)) != CS_OK)
        goto fail;
    *out = r;
    return CS_OK;
fail:
    ag_runner_close(r);
    return rc;
}

void ag_runner_close(ag_runner *r)
{
    if (r == NULL)
        return;
    ag_health_close(r->health);
    if (r->lock_fd >= 0)
        close(r->lock_fd);
    free(r->workdir);
    free(r->self_exe);
    free(r);
}

/* ---- reading a placement's state ------------------------------------------- */

/* Fill the ended fields of t from an exit file's text. */
static void parse_exit(ag_task *t, const char *text)
{
    int n, mib;
    char how[16];
    t->phase = AG_ENDED;
    t->ok = false;
    if (sscanf(text, "memory %d %15s %d", &mib, how, &n) == 3) {
        /* Killed by the kernel for its memory limit (isolate.h). */
        t->started = true;
        t->exit_code = strcmp(how, "signal") == 0 ? 128 + n : n;
        snprintf(t->reason, sizeof t->reason, "memory limit (%d MiB)", mib);
    } else if (sscanf(text, "exit %d", &n) == 1) {
        t->started = true;
        t->exit_code = n;
        t->ok = n == 0;
        snprintf(t->reason, sizeof t->reason, "exited with code %d", n);
    } else if (sscanf(text, "signal %d", &n) == 1) {
        t->started = true;
        t->exit_code = 128 + n;
        snprintf(t->reason, sizeof t->reason, "killed by signal %d (%s)", n, strsignal(n));
    } else {
        size_t len = strcspn(text, "\n");
        const char *msg = strncmp(text, "error ", 6) == 0 ? text + 6 : text;
        if (msg != text)
            len -= 6;
        t->exit_code = -1;
        snprintf(t->reason, sizeof t->reason, "cannot start: %.*s", (int)len, msg);
    }
}

static void refresh_dir(const ag_runner *r, ag_task *t, const char *dir, int64_t now)
{
    t->wake_at = now + r->tick_ms;
    if (t->pgid == 0) {
        char *pid = read_file(dir, "pid", NULL);
        if (pid != NULL) {
            int p = atoi(pid);
            if (p > 1) {
                t->pgid = p;
                t->started = true;
                t->phase = AG_RUNNING;
            }
            free(pid);
        }
    }
    char *ex = read_file(dir, "exit", NULL);
    if (ex != NULL) {
        parse_exit(t, ex);
        free(ex);
        /* Stopped by its supervisor while no agent was there: that is the
         * reason, whatever signal ended it. */
        char *why = read_file(dir, "orphaned", NULL);
        if (why != NULL) {
            snprintf(t->reason, sizeof t->reason, "%.*s", (int)strcspn(why, "\n"), why);
            free(why);
        }
        return;
    }
    if (t->pgid != 0)
        return;
    struct stat st;
    if (stat(dir, &st) == 0 && time(NULL) - st.st_mtime > AG_START_TIMEOUT_S) {
        static const char msg[] = "error start interrupted (no supervisor; did the agent stop?)\n";
        write_file(dir, "exit", msg, sizeof msg - 1, false);
        parse_exit(t, msg);
    }
}

/* The kill grace in a task's meta ("grace N"), or `dflt`. */
static uint32_t meta_grace(const char *meta, uint32_t dflt)
{
    unsigned grace;
    const char *line = meta ? strstr(meta, "grace ") : NULL;
    return line && sscanf(line, "grace %u", &grace) == 1 ? grace : dflt;
}

/* Fill t (id, attempt, meta, state) from the directory of one placement.
 * CS_ENOTFOUND when it is not one (a temporary or foreign name). */
static int load_task(const ag_runner *r, const char *name, ag_task *t, int64_t now)
{
    unsigned long long id;
    unsigned attempt;
    int used = 0;
    if (sscanf(name, "%llu-%u%n", &id, &attempt, &used) != 2 || name[used] != '\0')
        return CS_ENOTFOUND;
    memset(t, 0, sizeof *t);
    t->id = id;
    t->attempt = attempt;
    t->index = cs_task_index(id);
    t->grace_ms = CS_JOBOPTS_DEFAULT_KILL_GRACE_MS;
    snprintf(t->job, sizeof t->job, "?");
    char dir[PATH_BUF];
    if (task_dir(r, id, attempt, dir, sizeof dir) != CS_OK)
        return CS_ENOTFOUND;
    char *meta = read_file(dir, "meta", NULL);
    if (meta != NULL) {
        t->grace_ms = meta_grace(meta, t->grace_ms);
        if (strncmp(meta, "job ", 4) == 0)
            snprintf(t->job, sizeof t->job, "%.*s", (int)strcspn(meta + 4, "\n"), meta + 4);
        free(meta);
    }
    t->done = file_exists(dir, "done");
    char *why = read_file(dir, "health_kill", NULL);
    if (why != NULL) {
        t->health_kill = true;
        snprintf(t->health_reason, sizeof t->health_reason, "%.*s", (int)strcspn(why, "\n"),
                 why);
        free(why);
    }
    t->phase = AG_STARTING;
    refresh_dir(r, t, dir, now);
    return CS_OK;
}

int ag_runner_scan(ag_runner *r, int (*fn)(void *arg, const ag_task *t), void *arg,
                   cs_error *err)
{
    char path[PATH_BUF];
    snprintf(path, sizeof path, "%s/tasks", r->workdir);
    DIR *d = opendir(path);
    if (d == NULL)
        return cs_errorf(err, CS_EIO, "%s: %s", path, strerror(errno));
    int rc = 0;
    int64_t now = cs_clock_now_ms();
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        ag_task t;
        if (load_task(r, e->d_name, &t, now) != CS_OK || t.done)
            continue;
        rc = fn(arg, &t);
    }
    closedir(d);
    return rc;
}

/* ---- starting -------------------------------------------------------------------- */

/* Append "KEY=VALUE\0" to buf unless KEY is already there: the first
 * definition wins, so the agent's facts (CELL_*, PORT*) cannot be
 * overridden by the job's env, nor either by the agent's own environment. */
static int env_add(msgpack_sbuffer *buf, const char *key, size_t klen, const char *value)
{
    for (size_t off = 0; off < buf->size; off += strlen(buf->data + off) + 1)
        if (strncmp(buf->data + off, key, klen) == 0 && buf->data[off + klen] == '=')
            return 0;
    if (msgpack_sbuffer_write(buf, key, klen) || msgpack_sbuffer_write(buf, "=", 1) ||
        msgpack_sbuffer_write(buf, value, strlen(value) + 1))
        return -1;
    return 0;
}

/* `user` and `home` (may be NULL): the task user's name and sandbox, so
 * that a task does not inherit the agent's HOME and USER. */
static int build_env(const ag_assign *a, const char *user, const char *home,
                     msgpack_sbuffer *buf)
{
    char v[64], k[32];
    int rc = 0;
    snprintf(v, sizeof v, "%llu", (unsigned long long)a->id);
    rc |= env_add(buf, "CELL_TASK_ID", 12, v);
    rc |= env_add(buf, "CELL_JOB", 8, a->job);
    if (a->machine != NULL)
        rc |= env_add(buf, "CELL_MACHINE", 12, a->machine);
    snprintf(v, sizeof v, "%u", a->index);
    rc |= env_add(buf, "CELL_TASK_INDEX", 15, v);
    snprintf(v, sizeof v, "%u", a->attempt);
    rc |= env_add(buf, "CELL_TASK_ATTEMPT", 17, v);
    for (uint32_t i = 0; i < a->nports; i++) {
        snprintf(v, sizeof v, "%u", a->ports[i]);
        int n = snprintf(k, sizeof k, "PORT%u", i);
        rc |= env_add(buf, k, (size_t)n, v);
        if (i == 0)
            rc |= env_add(buf, "PORT", 4, v);
    }
    for (uint32_t i = 0; i < a->opts.nenv; i++)
        rc |= env_add(buf, a->opts.env[i].key, strlen(a->opts.env[i].key), a->opts.env[i].value);
    if (user != NULL) {
        rc |= env_add(buf, "HOME", 4, home);
        rc |= env_add(buf, "USER", 4, user);
        rc |= env_add(buf, "LOGNAME", 7, user);
    }
    for (char **e = environ; *e; e++) {
        const char *eq = strchr(*e, '=');
        if (eq != NULL)
            rc |= env_add(buf, *e, (size_t)(eq - *e), eq + 1);
    }
    return rc;
}

/* Write the health checks of `a`, if any, to dir/health: the job's options
 * bytes with nothing but the checks, so that a later agent can resume them
 * without the job at hand. */
static int write_health(const char *dir, const ag_assign *a, cs_error *err)
{
    if (a->opts.nhealth == 0)
        return CS_OK;
    cs_jobopts o;
    cs_jobopts_init(&o);
    o.health = a->opts.health;
    o.nhealth = a->opts.nhealth;
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    int rc = cs_jobopts_encode(&o, &b, err);
    if (rc == CS_OK && write_file(dir, "health", b.data, b.size, false) != 0)
        rc = cs_errorf(err, CS_EIO, "writing %s/health: %s", dir, strerror(errno));
    msgpack_sbuffer_destroy(&b);
    return rc;
}

/* Write the task's isolation file (isolate.h): its limits, user and
 * sandbox, for the supervisor. The sandbox's path into `home`. */
static int write_isolation(const ag_runner *r, const char *dir, const ag_task *t,
                           const ag_assign *a, char *home, size_t hsize, cs_error *err)
{
    char name[64], text[4 * AG_ISO_PATH_MAX + 512];
    snprintf(name, sizeof name, "%llu-%u", (unsigned long long)t->id, t->attempt);
    ag_iso_task it = {a->res.cpu, a->res.mem, a->opts.cpu_hard};
    CS_TRY(ag_iso_sandbox(r->iso, name, home, hsize, err));
    CS_TRY(ag_iso_task_file(r->iso, name, &it, text, sizeof text, err));
    if (write_file(dir, "isolation", text, strlen(text), false) != 0)
        return cs_errorf(err, CS_EIO, "writing %s/isolation: %s", dir, strerror(errno));
    return CS_OK;
}

/* Write meta, cmd, env, health and isolation into the fresh directory. */
static int prepare_dir(const ag_runner *r, const char *dir, const ag_task *t,
                       const ag_assign *a, cs_error *err)
{
    char home[AG_ISO_PATH_MAX] = "";
    if (r->iso != NULL)
        CS_TRY(write_isolation(r, dir, t, a, home, sizeof home, err));
    char meta[CS_NAME_MAX + 128 + CS_PORTS_PER_TASK_MAX * 6];
    int n = snprintf(meta, sizeof meta, "job %s\nindex %u\ngrace %u\nports", t->job, t->index,
                     t->grace_ms);
    for (uint32_t i = 0; i < a->nports && i < CS_PORTS_PER_TASK_MAX; i++)
        n += snprintf(meta + n, sizeof meta - (size_t)n, " %u", a->ports[i]);
    n += snprintf(meta + n, sizeof meta - (size_t)n, "\n");
    msgpack_sbuffer env;
    msgpack_sbuffer_init(&env);
    int rc = CS_OK;
    if (build_env(a, r->iso ? ag_iso_user(r->iso) : NULL, home, &env) != 0)
        rc = cs_errorf(err, CS_ENOMEM, "environment: out of memory");
    else if (write_file(dir, "meta", meta, (size_t)n, false) != 0 ||
             write_file(dir, "cmd", a->cmd, strlen(a->cmd), false) != 0 ||
             write_file(dir, "env", env.data ? env.data : "", env.size, false) != 0)
        rc = cs_errorf(err, CS_EIO, "writing %s: %s", dir, strerror(errno));
    else
        rc = write_health(dir, a, err);
    msgpack_sbuffer_destroy(&env);
    return rc;
}

/* Start the supervisor, detached: the agent's child forks it and exits at
 * once, so that the supervisor is nobody's zombie and outlives the agent.
 * Between fork and exec only async-signal-safe calls: the agent has
 * threads (nng's), and another thread may hold the allocator's lock. */
static int spawn_supervisor(const ag_runner *r, const char *dir, cs_error *err)
{
    char *argv[] = {r->self_exe, (char *)"--supervise", (char *)dir, NULL};
    char tmp[PATH_BUF], path[PATH_BUF];
    if (!path_join(tmp, sizeof tmp, dir, ".exit.tmp") || !path_join(path, sizeof path, dir, "exit"))
        return cs_errorf(err, CS_EINVAL, "task directory path too long");
    static const char msg[] = "error cannot run the supervisor (exec failed)\n";
    pid_t pid = fork();
    if (pid < 0)
        return cs_errorf(err, CS_EIO, "fork: %s", strerror(errno));
    if (pid == 0) {
        /* The agent blocks SIGTERM and SIGINT for sigwait; the mask is
         * inherited through exec and would make the task unkillable. */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        setsid();
        pid_t p = fork();
        if (p != 0)
            _exit(p < 0 ? 1 : 0);
        execv(argv[0], argv);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            write_all(fd, msg, sizeof msg - 1);
            close(fd);
            rename(tmp, path);
        }
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return cs_errorf(err, CS_EIO, "fork of the supervisor failed");
    return CS_OK;
}

static void ended_unstarted(ag_task *t, const char *why)
{
    t->phase = AG_ENDED;
    t->started = false;
    t->ok = false;
    t->exit_code = -1;
    snprintf(t->reason, sizeof t->reason, "cannot start: %.240s", why);
}

static void runner_start(void *ctx, ag_task *t, const ag_assign *a, int64_t now)
{
    ag_runner *r = ctx;
    if (a->bad != NULL) {
        ended_unstarted(t, a->bad);
        return;
    }
    char dir[PATH_BUF];
    if (task_dir(r, t->id, t->attempt, dir, sizeof dir) != CS_OK) {
        ended_unstarted(t, "task directory path too long");
        return;
    }
    if (mkdir(dir, 0755) != 0) {
        if (errno != EEXIST) {
            char why[AG_REASON_MAX];
            int n = snprintf(why, sizeof why, "mkdir %s: %s", dir, strerror(errno));
            ended_unstarted(t, n > 0 ? why : "mkdir failed");
            return;
        }
        /* Begun before (an earlier incarnation, or a report lost in
         * flight): never again; take over what is there. */
        char name[64];
        snprintf(name, sizeof name, "%llu-%u", (unsigned long long)t->id, t->attempt);
        ag_task old;
        if (load_task(r, name, &old, now) == CS_OK) {
            t->phase = old.phase;
            t->started = old.started;
            t->pgid = old.pgid;
            t->exit_code = old.exit_code;
            t->ok = old.ok;
            t->done = old.done;
            t->wake_at = old.wake_at;
            snprintf(t->reason, sizeof t->reason, "%s", old.reason);
        }
        return;
    }
    cs_error err = {0};
    if (prepare_dir(r, dir, t, a, &err) != CS_OK || spawn_supervisor(r, dir, &err) != CS_OK) {
        /* Record the failure where a later agent will find it. */
        char line[CS_ERROR_MSG_SIZE + 8];
        int n = snprintf(line, sizeof line, "error %s\n", err.msg);
        write_file(dir, "exit", line, (size_t)n, false);
        ended_unstarted(t, err.msg);
        return;
    }
    t->phase = AG_STARTING;
    t->wake_at = now + 10;
}

/* The ports line of a task's meta ("ports 31000 31001"); none when absent. */
static uint32_t meta_ports(const char *meta, uint16_t *ports)
{
    const char *p = meta ? strstr(meta, "\nports") : NULL;
    uint32_t n = 0;
    if (p == NULL)
        return 0;
    p += 6;
    unsigned v;
    int used;
    while (n < CS_PORTS_PER_TASK_MAX && *p == ' ' && sscanf(p, " %u%n", &v, &used) == 1 &&
           v <= 65535) {
        ports[n++] = (uint16_t)v;
        p += used;
    }
    return n;
}

/* When the task started, on the cs_clock_now_ms clock: the supervisor wrote `pid`
 * right after exec, so its age is the task's. Now, when unknown. */
static int64_t started_at(const char *dir, int64_t now)
{
    char path[PATH_BUF];
    struct stat st;
    struct timespec wall;
    if (!path_join(path, sizeof path, dir, "pid") || stat(path, &st) != 0 ||
        clock_gettime(CLOCK_REALTIME, &wall) != 0)
        return now;
    int64_t age = ((int64_t)wall.tv_sec - st.st_mtim.tv_sec) * 1000 +
                  (wall.tv_nsec - st.st_mtim.tv_nsec) / 1000000;
    return age > 0 ? now - age : now;
}

/* Hand a task that now runs to the health checker, from what its directory
 * holds: the same path for a task just started and one adopted from an
 * earlier agent, whose checks resume with the grace period counted from
 * the task's own start. */
static void watch_task(ag_runner *r, ag_task *t, const char *dir, int64_t now)
{
    t->watched = true;
    size_t hlen = 0, elen = 0;
    char *hbytes = read_file(dir, "health", &hlen);
    if (hbytes == NULL)
        return; /* no checks (or a directory from before they existed) */
    char *meta = read_file(dir, "meta", NULL), *env = read_file(dir, "env", &elen);
    cs_arena a;
    cs_arena_init(&a);
    cs_jobopts o;
    cs_error err = {0};
    uint16_t ports[CS_PORTS_PER_TASK_MAX];
    uint32_t nports = meta_ports(meta, ports);
    int rc = cs_jobopts_decode(hbytes, hlen, &a, &o, &err);
    if (rc == CS_OK && env == NULL)
        rc = cs_errorf(&err, CS_EIO, "cannot read %s/env", dir);
    /* COMMAND checks run where the task runs and as its user (isolate.h);
     * without an isolation file, in the task directory as the agent. */
    char *iso = read_file(dir, "isolation", NULL), *cgroups = read_file(dir, "cgroup", NULL);
    ag_jail *jail = iso ? malloc(sizeof *jail) : NULL;
    if (rc == CS_OK && iso != NULL && jail == NULL)
        rc = cs_errorf(&err, CS_ENOMEM, "out of memory");
    else if (rc == CS_OK && iso != NULL)
        rc = ag_jail_parse(iso, jail, &err);
    if (rc == CS_OK) {
        bool own = jail == NULL || jail->sandbox[0] == '\0';
        ag_health_target ht = {t->id, t->attempt, o.health, o.nhealth, ports, nports,
                               own ? dir : jail->sandbox, env, elen, started_at(dir, now),
                               own ? geteuid() : jail->uid, own ? getegid() : jail->gid,
                               cgroups};
        rc = ag_health_watch(r->health, &ht, &err);
    }
    free(jail);
    free(iso);
    free(cgroups);
    if (rc != CS_OK)
        fprintf(stderr, "cell-agent: task %llu attempt %u: its health checks cannot run: %s\n",
                (unsigned long long)t->id, t->attempt, err.msg);
    cs_arena_free(&a);
    free(env);
    free(meta);
    free(hbytes);
}

/* Take the checker's latest verdict. A condemnation is written to the task's
 * directory first, so that an agent restarted before the report still
 * reports the same reason. */
static void health_refresh(ag_runner *r, ag_task *t, const char *dir, int64_t now)
{
    if (t->phase == AG_ENDED) {
        if (t->watched)
            ag_health_unwatch(r->health, t->id, t->attempt);
        return;
    }
    if (t->phase != AG_RUNNING)
        return;
    if (!t->watched)
        watch_task(r, t, dir, now);
    ag_health_status st;
    if (!ag_health_get(r->health, t->id, t->attempt, &st))
        return;
    t->health = st.state;
    if (st.kill && !t->health_kill) {
        char line[AG_REASON_MAX + 1];
        int n = snprintf(line, sizeof line, "%s\n", st.reason);
        write_file(dir, "health_kill", line, (size_t)n, false);
        t->health_kill = true;
        snprintf(t->health_reason, sizeof t->health_reason, "%s", st.reason);
    }
}

static void runner_refresh(void *ctx, ag_task *t, int64_t now)
{
    ag_runner *r = ctx;
    char dir[PATH_BUF];
    if (task_dir(r, t->id, t->attempt, dir, sizeof dir) != CS_OK)
        return;
    refresh_dir(r, t, dir, now);
    health_refresh(r, t, dir, now);
}

static bool runner_signal(void *ctx, ag_task *t, int sig)
{
    ag_runner *r = ctx;
    char dir[PATH_BUF];
    if (t->pgid <= 0)
        return false;
    /* An exit file means the group is gone (the supervisor killed what was
     * left of it): its number may already belong to someone else. */
    if (task_dir(r, t->id, t->attempt, dir, sizeof dir) == CS_OK && file_exists(dir, "exit"))
        return true;
    kill(-t->pgid, sig);
    return true;
}

static void runner_forget(void *ctx, ag_task *t)
{
    ag_runner *r = ctx;
    char dir[PATH_BUF];
    if (t->watched)
        ag_health_unwatch(r->health, t->id, t->attempt);
    if (task_dir(r, t->id, t->attempt, dir, sizeof dir) == CS_OK && file_exists(dir, "."))
        write_file(dir, "done", "", 0, false);
}

void ag_runner_backend(ag_runner *r, ag_backend *out)
{
    out->ctx = r;
    out->start = runner_start;
    out->refresh = runner_refresh;
    out->signal = runner_signal;
    out->forget = runner_forget;
}

/* ---- the supervisor --------------------------------------------------------------- */

/* Write the exit file: "<what> <detail>\n" (see runner.h). */
static void sup_exit(const char *what, const char *detail)
{
    char line[512];
    int n = snprintf(line, sizeof line, "%s %s\n", what, detail);
    if (n <= 0 || (size_t)n >= sizeof line)
        n = snprintf(line, sizeof line, "%s\n", what);
    if (write_file(".", "exit", line, (size_t)n, true) != 0)
        fprintf(stderr, "supervisor: cannot write exit: %s\n", strerror(errno));
}

/* Split NUL-separated entries into a NULL-terminated array (pointing into
 * `buf`). */
static char **split_env(char *buf, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += buf[i] == '\0';
    char **v = calloc(n + 2, sizeof *v);
    if (v == NULL)
        return NULL;
    size_t k = 0;
    for (size_t off = 0; off < len; off += strlen(buf + off) + 1)
        v[k++] = buf + off;
    v[k] = NULL;
    return v;
}

/* Why the task's process could not become the task: the step and errno,
 * sent up the pipe to the supervisor. */
typedef struct start_err {
    int err;
    char stage[48];
} start_err;

static void child_fail(int errfd, const char *stage, int e)
{
    start_err se;
    memset(&se, 0, sizeof se);
    se.err = e;
    strncpy(se.stage, stage, sizeof se.stage - 1);
    write_all(errfd, &se, sizeof se);
    _exit(127);
}

/* The task's process: its output files (in the task directory, where the
 * agent serves them from), then its jail (cgroups, rlimits, sandbox, user;
 * none when `jail` is NULL), then the command. */
static void child_exec(const char *cmd, char **envp, int errfd, const ag_jail *jail)
{
    setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    int in = open("/dev/null", O_RDONLY);
    int out = open("stdout", O_WRONLY | O_CREAT | O_APPEND, 0644);
    int er = open("stderr", O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (in < 0 || out < 0 || er < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(er, 2) < 0)
        child_fail(errfd, "open its output files", errno);
    close(in);
    close(out);
    close(er);
    const char *stage = NULL;
    int e = jail ? ag_jail_enter(jail, &stage) : 0;
    if (e != 0)
        child_fail(errfd, stage, e);
    char *argv[] = {(char *)"sh", (char *)"-c", (char *)cmd, NULL};
    execve("/bin/sh", argv, envp);
    child_fail(errfd, "exec /bin/sh", errno);
}

/* The agent's heartbeat file, from a task directory (tasks/<id>-<attempt>/). */
#define SUP_ALIVE_PATH "../../" AG_ALIVE_FILE

/* The longest the final kill waits for the task's processes to die (one in
 * uninterruptible sleep ignores SIGKILL until it wakes): past it, the exit
 * is written anyway, so that the agent learns the task ended. */
#define SUP_KILL_WAIT_MS 10000

/* What the supervisor knows while the task runs. */
typedef struct sup {
    pid_t shell;      /* the task's shell: its process group's id, left unreaped until the end */
    bool subreaper;   /* the task's orphans come to us (proctree.h) */
    uint32_t kill_grace_ms;
    sigset_t chld;    /* SIGCHLD, blocked and taken by sigtimedwait */
    ag_jail *jail;    /* the task's cgroups and sandbox (isolate.h); NULL: none */
} sup;

/* SIGCHLD must not be discarded as ignored: a handler, though it never
 * runs (the signal stays blocked and is taken by sigtimedwait). */
static void sup_on_chld(int sig) { (void)sig; }

/* Sleep until a child changes state or `ms` pass. */
static void sup_nap(const sup *s, int64_t ms)
{
    if (ms < 1)
        ms = 1;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    sigtimedwait(&s->chld, NULL, &ts);
}

/* Send `sig` to every process of the task: each descendant of the
 * supervisor (the group and whatever left it), or only the group when
 * there is no subreaper. Returns how many were signalled. */
static uint32_t sup_signal(const sup *s, int sig)
{
    uint32_t n = 0;
    cs_error err = {0};
    if (!s->subreaper)
        return kill(-s->shell, sig) == 0;
    if (ag_proctree_signal(getpid(), sig, &n, &err) != CS_OK) {
        fprintf(stderr, "supervisor: %s; signalling the task's process group only\n", err.msg);
        return kill(-s->shell, sig) == 0;
    }
    return n;
}

/* Reap every ended child but the shell, which stays a zombie until the
 * end so that its pid (the group's id, which the agent signals) is not
 * reused. True once the shell has ended. */
static bool sup_reap(const sup *s)
{
    for (;;) {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) != 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        if (si.si_pid == 0)
            return false;
        if (si.si_pid == s->shell)
            return true;
        waitpid(si.si_pid, NULL, 0);
    }
}

/* Stopped for want of an agent: say why where the next agent reads it. */
static void sup_orphaned(const ag_alive_watch *w, int64_t now)
{
    char why[160];
    int n = snprintf(why, sizeof why,
                     "stopped by its supervisor: no word from the agent for %lld ms "
                     "(--orphan-grace %u ms)\n",
                     (long long)(now - w->heard_ms), w->grace_ms);
    fprintf(stderr, "supervisor: %s", why);
    if (write_file(".", "orphaned", why, (size_t)n, true) != 0)
        fprintf(stderr, "supervisor: cannot write orphaned: %s\n", strerror(errno));
}

/* Wait for the shell to end, reaping the task's orphans meanwhile. When
 * the agent has been silent for its grace (alive.h), stop the task as the
 * agent would: SIGTERM to all its processes, SIGKILL after its kill
 * grace. */
static void sup_wait(const sup *s)
{
    ag_alive_watch w;
    ag_alive_watch_init(&w, AG_ORPHAN_GRACE_DEFAULT_MS, cs_clock_now_ms());
    int64_t term_at = 0;
    bool killed = false;
    while (!sup_reap(s)) {
        int64_t now = cs_clock_now_ms(), nap = ag_alive_period_ms(w.grace_ms);
        if (term_at == 0 && ag_alive_orphaned(&w, SUP_ALIVE_PATH, now)) {
            sup_orphaned(&w, now);
            sup_signal(s, SIGTERM);
            term_at = now;
        }
        if (term_at != 0 && !killed) {
            int64_t left = term_at + s->kill_grace_ms - now;
            if (left <= 0) {
                sup_signal(s, SIGKILL);
                killed = true;
            } else if (left < nap) {
                nap = left;
            }
        }
        sup_nap(s, nap);
    }
}

/* The shell has ended: kill what is left of the task, in its group or not,
 * until nothing is (or SUP_KILL_WAIT_MS passed). */
static void sup_kill_rest(const sup *s)
{
    kill(-s->shell, SIGKILL);
    int64_t end = cs_clock_now_ms() + SUP_KILL_WAIT_MS;
    /* The cgroup holds every process of the task, whoever its parent is
     * now: killed at once, as a whole. The walk below then finds nothing
     * left but zombies to reap. */
    uint32_t left = 0;
    if (s->jail != NULL)
        ag_jail_kill(s->jail, &left);
    while (left > 0 && cs_clock_now_ms() <= end) {
        sup_nap(s, 10);
        ag_jail_kill(s->jail, &left);
    }
    while (s->subreaper && sup_signal(s, SIGKILL) > 0) {
        if (cs_clock_now_ms() > end) {
            fprintf(stderr, "supervisor: some processes of the task outlive SIGKILL; "
                            "reporting its end anyway\n");
            return;
        }
        sup_nap(s, 10);
    }
}

/* The task's jail from its isolation file, made: s->jail points to `j`.
 * No file (a directory of an agent from before isolate.h): no jail, the
 * task runs as it did. A failure is the task's exit ("error ..."). */
static int sup_jail(ag_jail *j, sup *s)
{
    char *text = read_file(".", "isolation", NULL);
    if (text == NULL)
        return CS_OK;
    cs_error err = {0};
    int rc = ag_jail_parse(text, j, &err);
    free(text);
    if (rc == CS_OK) {
        s->jail = j;
        rc = ag_jail_make(j, getpid(), &err);
    }
    if (rc != CS_OK) {
        sup_exit("error", err.msg);
        return rc;
    }
    /* Where the task's cgroups are, for an operator (and the tests). */
    char list[AG_ISO_CGROUPS_MAX * (AG_ISO_PATH_MAX + 1)];
    size_t n = 0;
    for (uint32_t i = 0; i < j->ncg; i++)
        n += (size_t)snprintf(list + n, sizeof list - n, "%s\n", j->cg[i]);
    if (j->ncg > 0 && write_file(".", "cgroup", list, n, false) != 0)
        fprintf(stderr, "supervisor: cannot write cgroup: %s\n", strerror(errno));
    return CS_OK;
}

int ag_supervise(const char *dir)
{
    /* Nothing of the agent's but the directory: no sockets, no lock. */
    close_range(3, ~0U, 0);
    if (chdir(dir) != 0) {
        fprintf(stderr, "supervisor: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    int log = open("supervisor.log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log >= 0) {
        dup2(log, 1);
        dup2(log, 2);
        close(log);
    }
    signal(SIGHUP, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    sup s = {0};
    sigemptyset(&s.chld);
    sigaddset(&s.chld, SIGCHLD);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = sup_on_chld;
    sigaction(SIGCHLD, &sa, NULL);
    sigprocmask(SIG_BLOCK, &s.chld, NULL); /* the task's shell unblocks it (child_exec) */
    cs_error serr = {0};
    s.subreaper = ag_proctree_subreaper(&serr) == CS_OK;
    if (!s.subreaper)
        fprintf(stderr, "supervisor: %s: only the task's process group can be killed (a "
                        "process that leaves it survives the task)\n", serr.msg);
    size_t elen = 0;
    char *cmd = read_file(".", "cmd", NULL), *env = read_file(".", "env", &elen);
    char *meta = read_file(".", "meta", NULL);
    s.kill_grace_ms = meta_grace(meta, CS_JOBOPTS_DEFAULT_KILL_GRACE_MS);
    char **envp = env ? split_env(env, elen) : NULL;
    int rc = 1, pfd[2] = {-1, -1};
    ag_jail jail;
    if (cmd == NULL || envp == NULL) {
        sup_exit("error", "cannot read the task's cmd or env");
        goto cleanup;
    }
    if (sup_jail(&jail, &s) != CS_OK)
        goto cleanup;
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        sup_exit("error pipe:", strerror(errno));
        goto cleanup;
    }
    pid_t pid = fork();
    if (pid < 0) {
        sup_exit("error fork:", strerror(errno));
        goto cleanup;
    }
    if (pid == 0)
        child_exec(cmd, envp, pfd[1], s.jail);
    setpgid(pid, pid); /* also here, so that no signal can find it outside */
    close(pfd[1]);
    pfd[1] = -1;
    start_err se;
    ssize_t got;
    while ((got = read(pfd[0], &se, sizeof se)) < 0 && errno == EINTR)
        ;
    if (got == (ssize_t)sizeof se) {
        char why[128];
        se.stage[sizeof se.stage - 1] = '\0';
        snprintf(why, sizeof why, "cannot %s: %s", se.stage, strerror(se.err));
        sup_exit("error", why);
        waitpid(pid, NULL, 0);
        goto cleanup;
    }
    char line[32];
    int n = snprintf(line, sizeof line, "%d\n", (int)pid);
    if (write_file(".", "pid", line, (size_t)n, true) != 0)
        fprintf(stderr, "supervisor: cannot write pid: %s\n", strerror(errno));
    s.shell = pid;
    sup_wait(&s);
    /* Learn how it ended without reaping it, so that its pid (the group's
     * id) cannot be reused while what is left of the task is killed. */
    siginfo_t si;
    memset(&si, 0, sizeof si);
    while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) != 0 && errno == EINTR)
        ;
    sup_kill_rest(&s);
    char code[48];
    const char *how = si.si_code == CLD_EXITED ? "exit" : "signal";
    /* A task the kernel killed for its memory (any process of it) that did
     * not succeed anyway ended for that reason, whatever its shell says. */
    bool oom = s.jail != NULL && !(si.si_code == CLD_EXITED && si.si_status == 0) &&
               ag_jail_oom(s.jail);
    if (oom)
        snprintf(code, sizeof code, "%lld %s %d", (long long)s.jail->mem_mib, how,
                 si.si_status);
    else
        snprintf(code, sizeof code, "%d", si.si_status);
    /* The cgroups go before the exit is written: once the agent learns
     * that the task ended, nothing of it is left on the machine. */
    if (s.jail != NULL)
        ag_jail_release(s.jail);
    sup_exit(oom ? "memory" : how, code);
    /* The shell, and the zombies the final kill left (nothing lives). */
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    rc = 0;
cleanup:
    if (s.jail != NULL)
        ag_jail_release(s.jail);
    if (pfd[0] >= 0)
        close(pfd[0]);
    if (pfd[1] >= 0)
        close(pfd[1]);
    free(envp);
    free(env);
    free(meta);
    free(cmd);
    return rc;
}
