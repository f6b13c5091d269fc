/* isolate.c — cgroups, rlimits, the task user and the sandbox (see
 * isolate.h).
 */
#include "agent/isolate.h"

#include "cellstate/paths.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CG_ROOT "/sys/fs/cgroup"
#define MIB (INT64_C(1) << 20)
/* The CFS period of a hard cap: the kernel's and Kubernetes' default. */
#define CFS_PERIOD_US 100000

struct ag_iso {
    ag_iso_level level;
    char user[64];
    uid_t uid;
    gid_t gid;
    uint32_t pids_max;
    char task_root[AG_ISO_PATH_MAX];
    uint32_t nparents;
    char parent[AG_ISO_CGROUPS_MAX][AG_ISO_PATH_MAX];
};

/* ---- small file helpers (system calls only: ag_jail_enter uses them) -------------- */

/* Write `s` to an existing file (a cgroup's control file): 0 or errno. */
static int put(const char *path, const char *s)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    size_t len = strlen(s);
    ssize_t w = write(fd, s, len);
    int e = w == (ssize_t)len ? 0 : (w < 0 ? errno : EIO);
    close(fd);
    return e;
}

static int putf(const char *dir, const char *file, const char *s)
{
    char path[AG_ISO_PATH_MAX + 64];
    int n = snprintf(path, sizeof path, "%s/%s", dir, file);
    if (n <= 0 || (size_t)n >= sizeof path)
        return ENAMETOOLONG;
    return put(path, s);
}

/* Read a small file into buf (NUL-terminated); false when unreadable. */
static bool get(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    size_t n = 0;
    while (n + 1 < size) {
        ssize_t r = read(fd, buf + n, size - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    return true;
}

static bool has(const char *dir, const char *file)
{
    char path[AG_ISO_PATH_MAX + 64];
    int n = snprintf(path, sizeof path, "%s/%s", dir, file);
    return n > 0 && (size_t)n < sizeof path && access(path, F_OK) == 0;
}

/* The number after `key ` in a "key value" file (memory.events,
 * memory.oom_control); -1 when absent. */
static long long field(const char *text, const char *key)
{
    size_t klen = strlen(key);
    for (const char *p = text; p != NULL && *p != '\0';) {
        if (strncmp(p, key, klen) == 0 && p[klen] == ' ')
            return atoll(p + klen + 1);
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return -1;
}

/* ---- levels and flags ------------------------------------------------------------------ */

const char *ag_iso_level_name(ag_iso_level l)
{
    switch (l) {
    case AG_ISO_NONE: return "none";
    case AG_ISO_RLIMIT: return "rlimit";
    case AG_ISO_CGROUP_V1: return "cgroup-v1";
    case AG_ISO_CGROUP_V2: return "cgroup-v2";
    case AG_ISO_AUTO: return "auto";
    }
    return "?";
}

int ag_iso_parse(const char *word, ag_iso_level *out, cs_error *err)
{
    static const struct { const char *w; ag_iso_level l; } words[] = {
        {"auto", AG_ISO_AUTO}, {"cgroup", AG_ISO_CGROUP_V1},
        {"rlimit", AG_ISO_RLIMIT}, {"none", AG_ISO_NONE}};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strcmp(word, words[i].w) == 0) {
            *out = words[i].l;
            return CS_OK;
        }
    return cs_errorf(err, CS_EINVAL, "'%s' is not auto, cgroup, rlimit or none", word);
}

ag_iso_level ag_iso_level_of(const ag_iso *iso) { return iso->level; }
uid_t ag_iso_uid(const ag_iso *iso) { return iso->uid; }
const char *ag_iso_user(const ag_iso *iso) { return iso->user; }

int ag_iso_sandbox(const ag_iso *iso, const char *name, char *out, size_t size, cs_error *err)
{
    int n = snprintf(out, size, "%s/%s", iso->task_root, name);
    if (n <= 0 || (size_t)n >= size)
        return cs_errorf(err, CS_EINVAL, "sandbox path of %s does not fit", name);
    return CS_OK;
}

/* ---- finding this process's cgroups -------------------------------------------------- */

/* This process's path in the hierarchy whose /proc/self/cgroup line has
 * `ctrl` in its controller list ("" for v2's "0::" line). */
static bool own_cgroup(const char *ctrl, char *out, size_t size)
{
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (f == NULL)
        return false;
    char line[AG_ISO_PATH_MAX];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c2 == NULL)
            continue;
        *c2 = '\0';
        const char *list = c1 + 1, *path = c2 + 1;
        if (ctrl[0] == '\0') {
            found = list[0] == '\0' && strncmp(line, "0:", 2) == 0;
        } else {
            char copy[256];
            snprintf(copy, sizeof copy, "%s", list);
            for (char *save, *t = strtok_r(copy, ",", &save); t && !found;
                 t = strtok_r(NULL, ",", &save))
                found = strcmp(t, ctrl) == 0;
        }
        if (found)
            snprintf(out, size, "%s", strcmp(path, "/") == 0 ? "" : path);
    }
    fclose(f);
    return found;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* mkdir that accepts an existing directory: 0 or errno. */
static int mkdir_ok(const char *path, mode_t mode)
{
    return mkdir(path, mode) == 0 || errno == EEXIST ? 0 : errno;
}

/* Make `parent` (if missing) and prove that a child of it can be made and
 * removed. Twice: another agent that stops removes an empty parent
 * (ag_iso_close), maybe between the two mkdirs. */
static int probe(const char *parent, cs_error *err)
{
    char p[AG_ISO_PATH_MAX + 32];
    snprintf(p, sizeof p, "%s/probe-%d", parent, (int)getpid());
    int e = ENOENT;
    for (int k = 0; k < 2 && e == ENOENT; k++)
        if ((e = mkdir_ok(parent, 0755)) == 0 && mkdir(p, 0755) != 0 && errno != EEXIST)
            e = errno;
    if (e != 0)
        return cs_errorf(err, CS_EIO, "mkdir %s: %s", p, strerror(e));
    if (rmdir(p) != 0)
        return cs_errorf(err, CS_EIO, "rmdir %s: %s", p, strerror(errno));
    return CS_OK;
}

/* v1: a parent `cellsched` under this process's cgroup in each hierarchy
 * of memory (required), cpu, pids and freezer (each when mounted). */
static int setup_v1(ag_iso *iso, cs_error *err)
{
    static const char *const ctrls[] = {"memory", "cpu", "pids", "freezer"};
    iso->nparents = 0;
    for (size_t i = 0; i < sizeof ctrls / sizeof ctrls[0]; i++) {
        char root[256], own[AG_ISO_PATH_MAX / 2] = "", dir[AG_ISO_PATH_MAX];
        snprintf(root, sizeof root, CG_ROOT "/%s", ctrls[i]);
        if (!has(root, "cgroup.procs")) {
            if (i == 0)
                return cs_errorf(err, CS_ENOTFOUND, "no cgroup v1 memory controller at %s", root);
            continue;
        }
        own_cgroup(ctrls[i], own, sizeof own);
        snprintf(dir, sizeof dir, "%s%s", root, own);
        if (!is_dir(dir)) /* a container that shows another view of the hierarchy */
            snprintf(dir, sizeof dir, "%s", root);
        char *parent = iso->parent[iso->nparents];
        int n = snprintf(parent, AG_ISO_PATH_MAX, "%s/cellsched", dir);
        if (n <= 0 || n >= AG_ISO_PATH_MAX)
            return cs_errorf(err, CS_EINVAL, "cgroup path too long");
        int rc = probe(parent, err);
        if (rc != CS_OK)
            return rc;
        iso->nparents++;
    }
    return CS_OK;
}

/* Enable the controllers tasks need for the children of `dir`. */
static int enable_v2(const char *dir)
{
    int e = putf(dir, "cgroup.subtree_control", "+memory");
    if (e == 0) {
        putf(dir, "cgroup.subtree_control", "+pids");
        putf(dir, "cgroup.subtree_control", "+cpu");
    }
    return e;
}

/* v2: `cellsched` under this process's cgroup, with the memory, pids and
 * cpu controllers enabled for its children. */
static int setup_v2(ag_iso *iso, cs_error *err)
{
    char own[AG_ISO_PATH_MAX / 2] = "", dir[AG_ISO_PATH_MAX], leaf[AG_ISO_PATH_MAX + 16];
    own_cgroup("", own, sizeof own);
    snprintf(dir, sizeof dir, CG_ROOT "%s", own);
    int e = enable_v2(dir);
    if (e == EBUSY) {
        /* "No internal processes": this cgroup has processes (the agent),
         * so the agent goes to a leaf of its own first. */
        snprintf(leaf, sizeof leaf, "%s/agent", dir);
        char pid[24];
        snprintf(pid, sizeof pid, "%d", (int)getpid());
        if ((e = mkdir_ok(leaf, 0755)) != 0 || (e = putf(leaf, "cgroup.procs", pid)) != 0)
            return cs_errorf(err, CS_EIO, "moving the agent into %s: %s", leaf, strerror(e));
        e = enable_v2(dir);
    }
    if (e != 0)
        return cs_errorf(err, CS_EIO, "enabling the memory controller in %s: %s", dir,
                         strerror(e));
    int n = snprintf(iso->parent[0], AG_ISO_PATH_MAX, "%s/cellsched", dir);
    if (n <= 0 || n >= AG_ISO_PATH_MAX)
        return cs_errorf(err, CS_EINVAL, "cgroup path too long");
    CS_TRY(probe(iso->parent[0], err));
    if ((e = enable_v2(iso->parent[0])) != 0)
        return cs_errorf(err, CS_EIO, "%s: %s", iso->parent[0], strerror(e));
    iso->nparents = 1;
    return CS_OK;
}

/* Whether a unified hierarchy with the memory controller is at CG_ROOT. */
static bool v2_mounted(void)
{
    char buf[512];
    return get(CG_ROOT "/cgroup.controllers", buf, sizeof buf) && strstr(buf, "memory") != NULL;
}

/* The cgroup level: the one mounted, proven by making a cgroup. */
static int setup_cgroups(ag_iso *iso, cs_error *err)
{
    if (geteuid() != 0 && access(CG_ROOT, W_OK) != 0 && !v2_mounted())
        return cs_errorf(err, CS_ESTATE, "not root and no delegated cgroup");
    if (v2_mounted()) {
        iso->level = AG_ISO_CGROUP_V2;
        return setup_v2(iso, err);
    }
    iso->level = AG_ISO_CGROUP_V1;
    return setup_v1(iso, err);
}

/* ---- the task user ----------------------------------------------------------------------- */

/* Make the default task user (a system account without a home or a
 * shell), quietly: a concurrent agent may have made it already, which the
 * caller's second look finds. */
static void make_user(const char *name)
{
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 1);
            dup2(null, 2);
        }
        execlp("useradd", "useradd", "--system", "--user-group", "--no-create-home",
               "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name, (char *)NULL);
        _exit(127);
    }
    if (pid > 0)
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
}

static int resolve_user(ag_iso *iso, const char *want, char *name, size_t size, cs_error *err)
{
    struct passwd *pw;
    if (want != NULL) {
        if ((pw = getpwnam(want)) == NULL)
            return cs_errorf(err, CS_EINVAL, "--task-user: no user '%s' on this machine", want);
        if (geteuid() != 0 && pw->pw_uid != geteuid())
            return cs_errorf(err, CS_EINVAL, "--task-user %s: only root can run tasks as "
                             "another user", want);
    } else if (geteuid() != 0) {
        pw = getpwuid(geteuid()); /* cannot switch: the agent's own user */
    } else if ((pw = getpwnam(AG_ISO_DEFAULT_USER)) == NULL) {
        make_user(AG_ISO_DEFAULT_USER);
        if ((pw = getpwnam(AG_ISO_DEFAULT_USER)) == NULL && (pw = getpwnam("nobody")) == NULL)
            return cs_errorf(err, CS_EINVAL, "cannot make user %s and there is no 'nobody': "
                             "give --task-user", AG_ISO_DEFAULT_USER);
    }
    iso->uid = pw ? pw->pw_uid : geteuid();
    iso->gid = pw ? pw->pw_gid : getegid();
    snprintf(name, size, "%s", pw ? pw->pw_name : "?");
    return CS_OK;
}

/* ---- opening ------------------------------------------------------------------------------ */

int ag_iso_open(const ag_iso_opts *o, ag_iso **out, char *note, size_t notesize, cs_error *err)
{
    ag_iso *iso = calloc(1, sizeof *iso);
    if (iso == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    iso->pids_max = o->pids_max ? o->pids_max : AG_ISO_PIDS_DEFAULT;
    char why[CS_ERROR_MSG_SIZE + 80] = "";
    int rc;
    if ((rc = resolve_user(iso, o->task_user, iso->user, sizeof iso->user, err)) != CS_OK)
        goto fail;
    int n = snprintf(iso->task_root, sizeof iso->task_root, "%s", o->task_root);
    if (n <= 0 || (size_t)n >= sizeof iso->task_root - 64) {
        rc = cs_errorf(err, CS_EINVAL, "--task-root: path too long");
        goto fail;
    }
    if ((rc = cs_mkdir_p(iso->task_root, err)) != CS_OK)
        goto fail;
    if (chmod(iso->task_root, 0711) != 0) {
        rc = cs_errorf(err, CS_EIO, "chmod %s: %s", iso->task_root, strerror(errno));
        goto fail;
    }
    iso->level = o->want;
    if (o->want == AG_ISO_AUTO || o->want == AG_ISO_CGROUP_V1 || o->want == AG_ISO_CGROUP_V2) {
        cs_error cerr = {0};
        if (setup_cgroups(iso, &cerr) != CS_OK) {
            if (o->want != AG_ISO_AUTO) {
                rc = cs_errorf(err, CS_ESTATE, "--isolation cgroup: cgroups cannot be used: %s",
                               cerr.msg);
                goto fail;
            }
            snprintf(why, sizeof why, "cgroups cannot be used (%s), falling back to rlimits; ",
                     cerr.msg);
            iso->level = AG_ISO_RLIMIT;
            for (uint32_t i = 0; i < iso->nparents; i++) /* those made before the failure */
                rmdir(iso->parent[i]);
            iso->nparents = 0;
        }
    }
    const char *how = iso->level == AG_ISO_RLIMIT
                          ? " (RLIMIT_AS = memory request, RLIMIT_NPROC per user, no CPU limit, "
                            "process-tree kills)"
                      : iso->level == AG_ISO_NONE ? " (no memory, CPU or process limits)"
                                                  : "";
    snprintf(note, notesize,
             "%sisolation %s%s%s%s, tasks run as %s (uid %d) in %s, at most %u processes each",
             why, ag_iso_level_name(iso->level), how, iso->nparents ? " under " : "",
             iso->nparents ? iso->parent[0] : "", iso->user, (int)iso->uid, iso->task_root,
             iso->pids_max);
    *out = iso;
    return CS_OK;
fail:
    free(iso);
    return rc;
}

void ag_iso_close(ag_iso *iso)
{
    if (iso == NULL)
        return;
    /* The parents this agent made go when nothing is left in them: rmdir
     * refuses a cgroup that still has task cgroups (tasks outlive their
     * agent, and other agents share the parents). */
    for (uint32_t i = 0; i < iso->nparents; i++)
        rmdir(iso->parent[i]);
    free(iso);
}

int ag_iso_task_file(const ag_iso *iso, const char *name, const ag_iso_task *t, char *out,
                     size_t size, cs_error *err)
{
    int n = snprintf(out, size, "level %s\nuser %d %d\nsandbox %s/%s\nmem %lld\ncpu %lld %s\n"
                                "pids %u\n",
                     ag_iso_level_name(iso->level), (int)iso->uid, (int)iso->gid, iso->task_root,
                     name, (long long)t->mem_mib, (long long)t->cpu_millis,
                     t->cpu_hard ? "hard" : "share", iso->pids_max);
    for (uint32_t i = 0; i < iso->nparents && n > 0 && (size_t)n < size; i++)
        n += snprintf(out + n, size - (size_t)n, "cgroup %s\n", iso->parent[i]);
    if (n <= 0 || (size_t)n >= size)
        return cs_errorf(err, CS_EINVAL, "isolation file for %s does not fit", name);
    return CS_OK;
}

/* ---- the supervisor's side ---------------------------------------------------------------- */

/* A path into a jail's buffer; false when it does not fit. */
static bool copy_path(char *dst, const char *src)
{
    size_t len = strlen(src);
    if (len >= AG_ISO_PATH_MAX)
        return false;
    memcpy(dst, src, len + 1);
    return true;
}

int ag_jail_parse(const char *text, ag_jail *j, cs_error *err)
{
    memset(j, 0, sizeof *j);
    j->sandbox_fd = -1;
    j->uid = geteuid();
    j->gid = getegid();
    for (const char *p = text; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char line[AG_ISO_PATH_MAX + 32], word[32];
        if (len >= sizeof line)
            return cs_errorf(err, CS_EINVAL, "isolation: line too long");
        memcpy(line, p, len);
        line[len] = '\0';
        p = nl ? nl + 1 : NULL;
        int uid, gid, used = 0;
        long long a;
        bool ok = true;
        if (sscanf(line, "level %31s", word) == 1) {
            ag_iso_level l;
            ok = false;
            for (l = AG_ISO_NONE; l <= AG_ISO_CGROUP_V2 && !ok; l++)
                if (strcmp(word, ag_iso_level_name(l)) == 0) {
                    j->level = l;
                    ok = true;
                }
        } else if (sscanf(line, "user %d %d", &uid, &gid) == 2) {
            j->uid = (uid_t)uid;
            j->gid = (gid_t)gid;
        } else if (strncmp(line, "sandbox /", 9) == 0) {
            ok = copy_path(j->sandbox, line + 8);
        } else if (sscanf(line, "mem %lld", &a) == 1) {
            j->mem_mib = a;
        } else if (sscanf(line, "cpu %lld %31s", &a, word) == 2) {
            j->cpu_millis = a;
            j->cpu_hard = strcmp(word, "hard") == 0;
        } else if (sscanf(line, "pids %lld%n", &a, &used) == 1 && a > 0 && a <= UINT32_MAX) {
            j->pids_max = (uint32_t)a;
        } else if (strncmp(line, "cgroup /", 8) == 0 && j->nparents < AG_ISO_CGROUPS_MAX) {
            ok = copy_path(j->parent[j->nparents++], line + 7);
        } else if (line[0] != '\0') {
            ok = false;
        }
        if (!ok)
            return cs_errorf(err, CS_EINVAL, "isolation: cannot read '%s'", line);
    }
    j->switch_user = j->uid != geteuid();
    return CS_OK;
}

/* The pids in a cgroup that still live (zombies are dead: the kernel may
 * still list them until reaped). */
static uint32_t cg_pids(const char *cg, pid_t *out, uint32_t max)
{
    char path[AG_ISO_PATH_MAX + 32], buf[16384];
    snprintf(path, sizeof path, "%s/cgroup.procs", cg);
    if (!get(path, buf, sizeof buf))
        return 0;
    uint32_t n = 0;
    for (char *p = buf; *p && n < max;) {
        long pid = strtol(p, &p, 10);
        while (*p == '\n')
            p++;
        char stat[64], st[512];
        snprintf(stat, sizeof stat, "/proc/%ld/stat", pid);
        const char *rp = get(stat, st, sizeof st) ? strrchr(st, ')') : NULL;
        if (pid > 0 && rp != NULL && rp[1] == ' ' && rp[2] != 'Z')
            out[n++] = (pid_t)pid;
    }
    return n;
}

/* Freeze or thaw the task (v1 freezer.state, v2 cgroup.freeze); waits a
 * little for a freeze to take. False when there is no freezer. */
static bool cg_freeze(const ag_jail *j, bool frozen)
{
    for (uint32_t i = 0; i < j->ncg; i++) {
        const char *cg = j->cg[i];
        char path[AG_ISO_PATH_MAX + 32], buf[256];
        if (has(cg, "freezer.state")) {
            if (putf(cg, "freezer.state", frozen ? "FROZEN" : "THAWED") != 0)
                return false;
            snprintf(path, sizeof path, "%s/freezer.state", cg);
            for (int k = 0; frozen && k < 100 && get(path, buf, sizeof buf) &&
                            strncmp(buf, "FROZEN", 6) != 0;
                 k++)
                nanosleep(&(struct timespec){0, 2000000}, NULL);
            return true;
        }
        if (has(cg, "cgroup.freeze")) {
            if (putf(cg, "cgroup.freeze", frozen ? "1" : "0") != 0)
                return false;
            snprintf(path, sizeof path, "%s/cgroup.events", cg);
            for (int k = 0; frozen && k < 100 && get(path, buf, sizeof buf) &&
                            field(buf, "frozen") != 1;
                 k++)
                nanosleep(&(struct timespec){0, 2000000}, NULL);
            return true;
        }
    }
    return false;
}

/* Every process of a cgroup: cgroup.kill where the kernel has it (5.14),
 * else frozen (so that none forks meanwhile), SIGKILL to each, thawed. */
static uint32_t cg_kill(const ag_jail *j, const char *cg)
{
    pid_t pids[4096];
    if (putf(cg, "cgroup.kill", "1") != 0) {
        bool frozen = cg_freeze(j, true);
        uint32_t n = cg_pids(cg, pids, 4096);
        for (uint32_t i = 0; i < n; i++)
            kill(pids[i], SIGKILL);
        if (frozen)
            cg_freeze(j, false);
    }
    return cg_pids(cg, pids, 4096);
}

void ag_jail_kill(const ag_jail *j, uint32_t *left)
{
    uint32_t most = 0;
    for (uint32_t i = 0; i < j->ncg; i++) {
        uint32_t n = cg_kill(j, j->cg[i]);
        if (n > most)
            most = n;
    }
    *left = most;
}

/* Write a limit into the task's cgroup that has the file. Missing: an
 * error when `required`, else skipped (a controller not mounted). */
static int cg_set(const ag_jail *j, const char *file, const char *value, bool required,
                  cs_error *err)
{
    for (uint32_t i = 0; i < j->ncg; i++) {
        if (!has(j->cg[i], file))
            continue;
        int e = putf(j->cg[i], file, value);
        if (e != 0 && required)
            return cs_errorf(err, CS_EIO, "%s/%s = %s: %s", j->cg[i], file, value, strerror(e));
        return CS_OK;
    }
    if (required)
        return cs_errorf(err, CS_EIO, "no cgroup of the task has %s", file);
    return CS_OK;
}

static int set_limits(const ag_jail *j, cs_error *err)
{
    char v[64];
    bool v2 = j->level == AG_ISO_CGROUP_V2;
    int64_t cpu = j->cpu_millis > 0 ? j->cpu_millis : 1;
    if (j->mem_mib > 0) {
        snprintf(v, sizeof v, "%lld", (long long)(j->mem_mib * MIB));
        CS_TRY(cg_set(j, v2 ? "memory.max" : "memory.limit_in_bytes", v, true, err));
        /* No swap: a task over its memory is killed, not slowed to a crawl. */
        if (v2) {
            CS_TRY(cg_set(j, "memory.swap.max", "0", false, err));
            /* The kernel's OOM kill takes the whole task, not one process
             * of it (as Kubernetes sets it): a task over its memory ends. */
            CS_TRY(cg_set(j, "memory.oom.group", "1", false, err));
        }
        else {
            CS_TRY(cg_set(j, "memory.memsw.limit_in_bytes", v, false, err));
            CS_TRY(cg_set(j, "memory.swappiness", "0", false, err));
        }
    }
    if (j->cpu_hard) {
        long long quota = cpu * CFS_PERIOD_US / 1000;
        if (quota < 1000)
            quota = 1000; /* the kernel's minimum (1 ms) */
        if (v2) {
            snprintf(v, sizeof v, "%lld %d", quota, CFS_PERIOD_US);
            CS_TRY(cg_set(j, "cpu.max", v, false, err));
        } else {
            snprintf(v, sizeof v, "%d", CFS_PERIOD_US);
            CS_TRY(cg_set(j, "cpu.cfs_period_us", v, false, err));
            snprintf(v, sizeof v, "%lld", quota);
            CS_TRY(cg_set(j, "cpu.cfs_quota_us", v, false, err));
        }
    } else {
        /* Kubernetes' conversions: 1024 shares a core; weight from shares. */
        long long shares = cpu * 1024 / 1000;
        if (shares < 2)
            shares = 2;
        if (shares > 262144)
            shares = 262144;
        if (v2)
            snprintf(v, sizeof v, "%lld", 1 + ((shares - 2) * 9999) / 262142);
        else
            snprintf(v, sizeof v, "%lld", shares);
        CS_TRY(cg_set(j, v2 ? "cpu.weight" : "cpu.shares", v, false, err));
    }
    snprintf(v, sizeof v, "%u", j->pids_max);
    return cg_set(j, "pids.max", v, false, err);
}

static int make_sandbox(ag_jail *j, cs_error *err)
{
    if (j->sandbox[0] == '\0')
        return CS_OK;
    if (mkdir(j->sandbox, 0700) != 0 && errno != EEXIST)
        return cs_errorf(err, CS_EIO, "mkdir %s: %s", j->sandbox, strerror(errno));
    j->sandbox_fd = open(j->sandbox, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (j->sandbox_fd < 0)
        return cs_errorf(err, CS_EIO, "%s: %s", j->sandbox, strerror(errno));
    if (fchown(j->sandbox_fd, j->uid, j->gid) != 0 || fchmod(j->sandbox_fd, 0700) != 0)
        return cs_errorf(err, CS_EIO, "chown %s: %s", j->sandbox, strerror(errno));
    return CS_OK;
}

int ag_jail_make(ag_jail *j, pid_t tag, cs_error *err)
{
    CS_TRY(make_sandbox(j, err));
    if (j->level != AG_ISO_CGROUP_V1 && j->level != AG_ISO_CGROUP_V2)
        return CS_OK;
    for (uint32_t i = 0; i < j->nparents; i++) {
        char cg[AG_ISO_PATH_MAX + 32];
        int n = snprintf(cg, sizeof cg, "%s/task-%d", j->parent[i], (int)tag);
        if (n <= 0 || n >= AG_ISO_PATH_MAX)
            return cs_errorf(err, CS_EINVAL, "cgroup path too long");
        memcpy(j->cg[j->ncg], cg, (size_t)n + 1);
        /* Twice: another agent may remove an empty parent between the two
         * mkdirs (a test's cleanup does). */
        int e = ENOENT;
        for (int k = 0; k < 2 && e == ENOENT; k++)
            if ((e = mkdir_ok(j->parent[i], 0755)) == 0 && mkdir(cg, 0755) != 0)
                e = errno;
        if (e == EEXIST) {
            /* A leftover of a supervisor of the same pid, killed before it
             * could clean up: what runs there is nobody's. Emptied and
             * made afresh, so that no old limit stands in the way of the
             * new ones (v1 refuses a memory limit above memsw's). */
            ag_jail one = {.level = j->level, .ncg = 1, .sandbox_fd = -1};
            memcpy(one.cg[0], cg, (size_t)n + 1);
            uint32_t left;
            ag_jail_kill(&one, &left);
            ag_jail_release(&one);
            e = mkdir(cg, 0755) == 0 ? 0 : errno;
        }
        if (e != 0)
            return cs_errorf(err, CS_EIO, "mkdir %s: %s", cg, strerror(e));
        j->ncg++;
    }
    return set_limits(j, err);
}

int ag_jail_enter(const ag_jail *j, const char **stage)
{
    for (uint32_t i = 0; i < j->ncg; i++) {
        int e = putf(j->cg[i], "cgroup.procs", "0");
        if (e != 0) {
            *stage = "join its cgroup";
            return e;
        }
    }
    if (j->level == AG_ISO_RLIMIT) {
        struct rlimit as = {(rlim_t)(j->mem_mib * MIB), (rlim_t)(j->mem_mib * MIB)};
        struct rlimit np = {j->pids_max, j->pids_max};
        if ((j->mem_mib > 0 && setrlimit(RLIMIT_AS, &as) != 0) ||
            (j->pids_max > 0 && setrlimit(RLIMIT_NPROC, &np) != 0)) {
            *stage = "set its rlimits";
            return errno;
        }
    }
    if (j->sandbox_fd >= 0 && fchdir(j->sandbox_fd) != 0) {
        *stage = "enter its sandbox";
        return errno;
    }
    if (j->switch_user &&
        (setgroups(1, &j->gid) != 0 || setgid(j->gid) != 0 || setuid(j->uid) != 0)) {
        *stage = "become the task user";
        return errno;
    }
    return 0;
}

bool ag_jail_oom(const ag_jail *j)
{
    char path[AG_ISO_PATH_MAX + 32], buf[1024];
    for (uint32_t i = 0; i < j->ncg; i++) {
        const char *cg = j->cg[i];
        snprintf(path, sizeof path, "%s/memory.events", cg);
        if (get(path, buf, sizeof buf))
            return field(buf, "oom_kill") > 0;
        snprintf(path, sizeof path, "%s/memory.oom_control", cg);
        if (!get(path, buf, sizeof buf))
            continue;
        long long kills = field(buf, "oom_kill");
        if (kills >= 0)
            return kills > 0;
        /* Kernels before 4.13 do not count kills: the limit was hit and
         * usage reached it. */
        char f[64], u[64];
        snprintf(path, sizeof path, "%s/memory.failcnt", cg);
        bool failed = get(path, f, sizeof f) && atoll(f) > 0;
        snprintf(path, sizeof path, "%s/memory.max_usage_in_bytes", cg);
        return failed && get(path, u, sizeof u) && atoll(u) + MIB >= j->mem_mib * MIB;
    }
    return false;
}

void ag_jail_release(ag_jail *j)
{
    for (uint32_t i = 0; i < j->ncg; i++) {
        /* A cgroup whose last process just died may still be busy for a
         * moment while the kernel finishes with it. */
        for (int k = 0; k < 200 && rmdir(j->cg[i]) != 0 && errno == EBUSY; k++)
            nanosleep(&(struct timespec){0, 5000000}, NULL);
    }
    j->ncg = 0;
    if (j->sandbox_fd >= 0)
        close(j->sandbox_fd);
    j->sandbox_fd = -1;
}

void ag_jail_remove_sandbox(const char *taskdir)
{
    char path[AG_ISO_PATH_MAX + 32], text[4 * AG_ISO_PATH_MAX];
    snprintf(path, sizeof path, "%s/isolation", taskdir);
    ag_jail j;
    cs_error err = {0};
    if (!get(path, text, sizeof text) || ag_jail_parse(text, &j, &err) != CS_OK ||
        j.sandbox[0] != '/' || !is_dir(j.sandbox))
        return;
    /* From the task root (root's, 0711), by name: the task user need not
     * reach it from /, as the task itself entered it with fchdir. */
    char *slash = strrchr(j.sandbox, '/');
    if (slash == NULL || slash == j.sandbox || slash[1] == '\0')
        return;
    *slash = '\0';
    const char *root = j.sandbox, *name = slash + 1;
    pid_t pid = fork();
    if (pid == 0) {
        /* Quiet: rm cannot remove the sandbox itself (its parent is
         * root's), which is expected; root does that below. */
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, 2);
        if (chdir(root) != 0 ||
            (j.switch_user &&
             (setgroups(1, &j.gid) != 0 || setgid(j.gid) != 0 || setuid(j.uid) != 0)))
            _exit(126);
        execl("/bin/rm", "rm", "-rf", "--", name, (char *)NULL);
        _exit(127);
    }
    if (pid < 0)
        return;
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    /* rm, as the task user, emptied it; the directory itself is in the
     * task root, which only root may change. */
    *slash = '/';
    rmdir(j.sandbox);
}
