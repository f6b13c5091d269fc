/* support.c — helpers for the Criterion suites (see support.h). */
#include "tests/support.h"

#include <criterion/criterion.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int ts_mkdtemp(char *out, size_t size)
{
    const char *tmp = getenv("TMPDIR");
    if (tmp == NULL || tmp[0] == '\0')
        tmp = "/tmp";
    if (snprintf(out, size, "%s/cellsched-test-XXXXXX", tmp) >= (int)size)
        return -1;
    return mkdtemp(out) ? 0 : -1;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void ts_rmtree(const char *dir)
{
    if (dir[0] != '\0')
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

char ts_tmp[256];

void ts_tmp_setup(void) { cr_assert_eq(ts_mkdtemp(ts_tmp, sizeof ts_tmp), 0); }

void ts_tmp_teardown(void)
{
    if (ts_tmp[0])
        ts_rmtree(ts_tmp);
}

int ts_run(const char *cmd, char *out, size_t size)
{
    char full[4096];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    cr_assert(p != NULL, "popen %s", cmd);
    size_t n = fread(out, 1, size - 1, p);
    out[n] = '\0';
    /* Drain what does not fit: closing the pipe early would kill the
     * command with SIGPIPE and hide its exit status. */
    char rest[4096];
    while (fread(rest, 1, sizeof rest, p) > 0)
        ;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void open_store(ts_store *t)
{
    cs_store_opts o = {.map_size = (size_t)256 << 20, .nosync = true};
    cs_error err = {0};
    int rc = cs_store_open(t->dir, &o, &t->s, &err);
    cr_assert_eq(rc, CS_OK, "opening store in %s: %s", t->dir, err.msg);
}

void ts_store_create(ts_store *t)
{
    cr_assert_eq(ts_mkdtemp(t->dir, sizeof t->dir), 0, "mkdtemp failed");
    open_store(t);
}

void ts_store_reopen(ts_store *t)
{
    cs_store_close(t->s);
    open_store(t);
}

void ts_store_destroy(ts_store *t)
{
    cs_store_close(t->s);
    t->s = NULL;
    ts_rmtree(t->dir);
}

static int cmp_attr(const void *a, const void *b)
{
    return strcmp(((const cs_attr *)a)->key, ((const cs_attr *)b)->key);
}

cs_id ts_machine(cs_store *s, const char *name, int64_t cpu, int64_t mem, int64_t disk,
                 uint16_t port_lo, uint16_t port_hi, const char *const *attrs, uint32_t nattrs)
{
    cs_arena a;
    cs_arena_init(&a);
    cs_machine m = {0};
    m.name = name;
    m.capacity = (cs_res){cpu, mem, disk};
    m.port_lo = port_lo;
    m.port_hi = port_hi;
    m.state = CS_MACHINE_UP;
    m.nattrs = nattrs;
    m.attrs = nattrs ? cs_arena_alloc(&a, nattrs * sizeof *m.attrs) : NULL;
    for (uint32_t i = 0; i < nattrs; i++) {
        const char *eq = strchr(attrs[i], '=');
        cr_assert(eq != NULL, "attribute %s lacks '='", attrs[i]);
        m.attrs[i].key = cs_arena_strndup(&a, attrs[i], (size_t)(eq - attrs[i]));
        m.attrs[i].value = eq + 1;
    }
    if (nattrs > 1)
        qsort(m.attrs, nattrs, sizeof *m.attrs, cmp_attr);
    cs_id id = 0;
    cs_error err = {0};
    int rc = cs_op_machine_put(s, &m, &id, NULL, &err);
    cs_arena_free(&a);
    cr_assert_eq(rc, CS_OK, "registering %s: %s", name, err.msg);
    return id;
}

cs_id ts_job(cs_store *s, const char *name, uint8_t kind, int32_t priority, uint32_t count,
             int64_t cpu, int64_t mem, int64_t disk, const uint16_t *ports, uint32_t nports)
{
    uint16_t dyn[CS_PORTS_PER_TASK_MAX] = {0};
    cs_job j = {0};
    j.name = name;
    j.kind = kind;
    j.priority = priority;
    j.count = count;
    j.res = (cs_res){cpu, mem, disk};
    j.ports = ports ? (uint16_t *)ports : dyn;
    j.nports = nports;
    j.cmd = "true";
    j.submitted = TS_SUBMITTED_MS;
    cs_id id = 0;
    cs_error err = {0};
    int rc = cs_op_job_submit(s, &j, &id, NULL, &err);
    cr_assert_eq(rc, CS_OK, "submitting %s: %s", name, err.msg);
    return id;
}

uint64_t ts_version(cs_store *s)
{
    cs_snap *snap;
    cs_error err = {0};
    cr_assert_eq(cs_snap_open(s, &snap, &err), CS_OK, "%s", err.msg);
    uint64_t v = cs_snap_version(snap);
    cs_snap_close(snap);
    return v;
}

void ts_get_machine(cs_store *s, cs_id id, cs_arena *a, cs_machine *out)
{
    cs_snap *snap;
    cs_error err = {0};
    cr_assert_eq(cs_snap_open(s, &snap, &err), CS_OK, "%s", err.msg);
    cs_machine m;
    int rc = cs_snap_machine(snap, id, a, &m, &err);
    if (rc == CS_OK)
        rc = cs_machine_copy(&m, a, out);
    cs_snap_close(snap);
    cr_assert_eq(rc, CS_OK, "machine %llu: %s", (unsigned long long)id, err.msg);
}

void ts_get_task(cs_store *s, cs_id id, cs_arena *a, cs_task *out)
{
    cs_snap *snap;
    cs_error err = {0};
    cr_assert_eq(cs_snap_open(s, &snap, &err), CS_OK, "%s", err.msg);
    int rc = cs_snap_task(snap, id, a, out, &err);
    cs_snap_close(snap);
    cr_assert_eq(rc, CS_OK, "task %llu: %s", (unsigned long long)id, err.msg);
}

typedef struct dumpbuf {
    uint8_t *p;
    size_t n, cap;
} dumpbuf;

static void dump_put(dumpbuf *d, const void *p, size_t n)
{
    if (d->n + n + 8 > d->cap) {
        size_t cap = d->cap ? d->cap : 4096;
        while (d->n + n + 8 > cap)
            cap *= 2;
        d->p = realloc(d->p, cap);
        cr_assert(d->p != NULL);
        d->cap = cap;
    }
    uint64_t len = n;
    memcpy(d->p + d->n, &len, 8);
    if (n > 0)
        memcpy(d->p + d->n + 8, p, n);
    d->n += 8 + n;
}

static int dump_raw(void *ctx, const void *k, size_t kl, const void *v, size_t vl)
{
    dump_put(ctx, k, kl);
    dump_put(ctx, v, vl);
    return 0;
}

static int dump_derived(void *ctx, const cs_machine *m)
{
    dumpbuf *d = ctx;
    uint64_t v[6] = {m->id, (uint64_t)m->allocated.cpu, (uint64_t)m->allocated.mem,
                     (uint64_t)m->allocated.disk, m->ntasks, m->seq};
    dump_put(d, v, sizeof v);
    dump_put(d, m->ports, m->nports * sizeof *m->ports);
    return 0;
}

void ts_dump_dbs(cs_store *s, const cs_db *dbs, size_t ndbs, uint8_t **out, size_t *len)
{
    cs_snap *snap;
    cs_error err = {0};
    cr_assert_eq(cs_snap_open(s, &snap, &err), CS_OK, "%s", err.msg);
    dumpbuf d = {0};
    for (size_t i = 0; i < ndbs; i++) {
        const char *name = cs_db_name(dbs[i]);
        dump_put(&d, name, strlen(name));
        cr_assert_eq(cs_snap_each_raw(snap, dbs[i], dump_raw, &d, &err), CS_OK, "%s", err.msg);
        /* What the store derives from the tasks (allocations, ports, seq)
         * is part of the cell too: dumped with the machines. */
        if (dbs[i] == CS_DB_MACHINES)
            cr_assert_eq(cs_snap_each_machine(snap, dump_derived, &d, &err), CS_OK, "%s",
                         err.msg);
    }
    cs_snap_close(snap);
    *out = d.p;
    *len = d.n;
}

void ts_dump(cs_store *s, uint8_t **out, size_t *len)
{
    cs_db all[CS_DB_COUNT];
    for (int i = 0; i < CS_DB_COUNT; i++)
        all[i] = (cs_db)i;
    ts_dump_dbs(s, all, CS_DB_COUNT, out, len);
}

void ts_dump_cell(cs_store *s, uint8_t **out, size_t *len)
{
    static const cs_db cell[] = {CS_DB_MACHINES, CS_DB_MACHINE_NAMES, CS_DB_JOBS,
                                 CS_DB_JOB_NAMES, CS_DB_TASKS};
    ts_dump_dbs(s, cell, sizeof cell / sizeof cell[0], out, len);
}

/* ---- invariants ----------------------------------------------------------- */

typedef struct inv_machine {
    cs_id id;
    cs_res cap, alloc, sum;
    uint32_t ntasks, counted, nports;
    uint16_t *ports; /* as recorded */
    uint8_t held[65536 / 8]; /* bit per port: held by a placed task */
    uint32_t nheld;
} inv_machine;

typedef struct inv {
    inv_machine *m;
    size_t n;
    size_t placed;
    char *why;
    size_t whylen;
    bool ok;
    cs_snap *snap;
} inv;

static inv_machine *inv_find(inv *v, cs_id id)
{
    for (size_t i = 0; i < v->n; i++)
        if (v->m[i].id == id)
            return &v->m[i];
    return NULL;
}

static int inv_machine_cb(void *ctx, const cs_machine *m)
{
    inv *v = ctx;
    v->m = realloc(v->m, (v->n + 1) * sizeof *v->m);
    inv_machine *im = &v->m[v->n++];
    memset(im, 0, sizeof *im);
    im->id = m->id;
    im->cap = m->capacity;
    im->alloc = m->allocated;
    im->ntasks = m->ntasks;
    im->nports = m->nports;
    im->ports = malloc((m->nports + 1) * sizeof *im->ports);
    if (m->nports > 0)
        memcpy(im->ports, m->ports, m->nports * sizeof *im->ports);
    for (uint32_t i = 1; i < m->nports; i++)
        if (m->ports[i] <= m->ports[i - 1] && v->ok) {
            snprintf(v->why, v->whylen, "machine %llu: ports in use not sorted/unique",
                     (unsigned long long)m->id);
            v->ok = false;
        }
    return 0;
}

#define FAIL(...)                                  \
    do {                                           \
        if (v->ok)                                 \
            snprintf(v->why, v->whylen, __VA_ARGS__); \
        v->ok = false;                             \
        return 0;                                  \
    } while (0)

static int inv_task_cb(void *ctx, const cs_task *t)
{
    inv *v = ctx;
    if (!cs_task_state_placed(t->state)) {
        if (t->nports != 0)
            FAIL("task %llu is %s but holds ports", (unsigned long long)t->id,
                 cs_task_state_name(t->state));
        return 0;
    }
    v->placed++;
    inv_machine *im = inv_find(v, t->machine);
    if (im == NULL)
        FAIL("task %llu is placed on unknown machine %llu", (unsigned long long)t->id,
             (unsigned long long)t->machine);
    cs_res_add(&im->sum, &t->res);
    im->counted++;
    for (uint32_t i = 0; i < t->nports; i++) {
        uint16_t p = t->ports[i];
        if (im->held[p / 8] & (1u << (p % 8)))
            FAIL("port %u held twice on machine %llu", p, (unsigned long long)im->id);
        im->held[p / 8] |= (uint8_t)(1u << (p % 8));
        im->nheld++;
    }
    return 0;
}

typedef struct placed_count {
    size_t n;
    cs_id machine;
    bool ok;
} placed_count;

static int count_placed(void *ctx, const cs_task *t)
{
    placed_count *pc = ctx;
    pc->n++;
    if (!cs_task_state_placed(t->state) || t->machine != pc->machine)
        pc->ok = false;
    return 0;
}

bool ts_check_invariants(cs_store *s, char *why, size_t whylen)
{
    inv vv = {.why = why, .whylen = whylen, .ok = true};
    inv *v = &vv;
    cs_error err = {0};
    cr_assert_eq(cs_snap_open(s, &v->snap, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_snap_each_machine(v->snap, inv_machine_cb, v, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_snap_each_task(v->snap, inv_task_cb, v, &err), CS_OK, "%s", err.msg);
    size_t indexed = 0;
    for (size_t i = 0; i < v->n && v->ok; i++) {
        inv_machine *im = &v->m[i];
        unsigned long long id = (unsigned long long)im->id;
        if (im->alloc.cpu > im->cap.cpu || im->alloc.mem > im->cap.mem ||
            im->alloc.disk > im->cap.disk) {
            snprintf(why, whylen, "machine %llu over capacity", id);
            v->ok = false;
        } else if (memcmp(&im->alloc, &im->sum, sizeof im->sum) != 0) {
            snprintf(why, whylen, "machine %llu: allocated %lld/%lld/%lld but tasks sum to %lld/%lld/%lld",
                     id, (long long)im->alloc.cpu, (long long)im->alloc.mem,
                     (long long)im->alloc.disk, (long long)im->sum.cpu, (long long)im->sum.mem,
                     (long long)im->sum.disk);
            v->ok = false;
        } else if (im->ntasks != im->counted) {
            snprintf(why, whylen, "machine %llu: ntasks %u but %u tasks placed", id, im->ntasks,
                     im->counted);
            v->ok = false;
        } else {
            bool same = im->nheld == im->nports;
            for (uint32_t p = 0; p < im->nports && same; p++)
                same = im->held[im->ports[p] / 8] & (1u << (im->ports[p] % 8));
            if (!same) {
                snprintf(why, whylen, "machine %llu: ports in use differ from the tasks' ports", id);
                v->ok = false;
            }
        }
        placed_count pc = {0, im->id, true};
        cr_assert_eq(cs_snap_each_task_on_machine(v->snap, im->id, count_placed, &pc, &err), CS_OK,
                     "%s", err.msg);
        indexed += pc.n;
        if (v->ok && (!pc.ok || pc.n != im->counted)) {
            snprintf(why, whylen, "machine %llu: allocation table lists %zu tasks, %u are placed", id,
                     pc.n, im->counted);
            v->ok = false;
        }
    }
    if (v->ok && indexed != v->placed) {
        snprintf(why, whylen, "allocation table holds %zu tasks for %zu placed tasks", indexed,
                 v->placed);
        v->ok = false;
    }
    for (size_t i = 0; i < v->n; i++) {
        free(v->m[i].ports);
    }
    free(v->m);
    cs_snap_close(v->snap);
    return v->ok;
}

/* ---- processes --------------------------------------------------------------- */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include <dirent.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "agent/proctree.h"
#include "proto/msg.h"

/* Whether `port` can be bound on 127.0.0.1 now (nothing listens there). */
static bool port_bindable(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0, "socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one); /* as nng's listeners do */
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* Reserve a block (see support.h): returns its first port. The lock's file
 * descriptor stays open, close-on-exec so that spawned daemons do not keep
 * it, until the process exits. */
static int reserve_block(void)
{
    const char *tmp = getenv("TMPDIR");
    char dir[256], path[300];
    snprintf(dir, sizeof dir, "%s/cellsched-test-ports", tmp && tmp[0] ? tmp : "/tmp");
    if (mkdir(dir, 01777) == 0)
        chmod(dir, 01777); /* shared by every user's tests, like /tmp */
    int nblocks = (TS_PORT_HI - TS_PORT_LO) / TS_PORT_BLOCK;
    int start = (int)((unsigned)getpid() * 2654435761u % (unsigned)nblocks);
    for (int k = 0; k < nblocks; k++) {
        int lo = TS_PORT_LO + ((start + k) % nblocks) * TS_PORT_BLOCK;
        snprintf(path, sizeof path, "%s/%d", dir, lo);
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
        if (fd < 0)
            continue;
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            close(fd);
            continue;
        }
        bool free_ = true;
        for (int p = lo; p < lo + TS_PORT_BLOCK && free_; p++)
            free_ = port_bindable(p);
        if (free_)
            return lo; /* fd stays open: the reservation */
        close(fd);
    }
    cr_assert_fail("no free block of %d ports in [%d, %d) (locks in %s)", TS_PORT_BLOCK, TS_PORT_LO,
                   TS_PORT_HI, dir);
    return -1;
}

/* This process's current block and the ports of it not yet handed out. A
 * block serves only the process that reserved it: a forked test takes a
 * block of its own rather than its parent's leftovers. */
static pid_t ports_owner;
static int ports_next, ports_end;

int ts_port_range(int n)
{
    cr_assert(n >= 1 && n <= TS_PORT_BLOCK, "ts_port_range(%d): 1..%d", n, TS_PORT_BLOCK);
    if (ports_owner != getpid() || ports_end - ports_next < n) {
        ports_next = reserve_block();
        ports_end = ports_next + TS_PORT_BLOCK;
        ports_owner = getpid();
    }
    int first = ports_next;
    ports_next += n;
    return first;
}

int ts_free_port(void)
{
    return ts_port_range(1);
}

void ts_bin(const char *name, char *out, size_t size)
{
    const char *dir = getenv("CELLSCHED_BIN");
    snprintf(out, size, "%s/%s", dir && dir[0] ? dir : "bin", name);
    cr_assert(access(out, X_OK) == 0, "%s is not built (run make)", out);
}

int ts_spawn(char *const argv[], const char *log)
{
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        /* Leak checking of a daemon killed by a test signal is noise. */
        setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

void ts_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int64_t ts_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ts_log_file(const char *what, const char *path)
{
    FILE *f = fopen(path, "r");
    char line[512];
    while (f && fgets(line, sizeof line, f))
        cr_log_error("%s: %s", what, line);
    if (f)
        fclose(f);
}

char *ts_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f != NULL, "%s: cannot open", path);
    char *buf = NULL;
    size_t n = 0;
    FILE *m = open_memstream(&buf, &n);
    cr_assert(m != NULL, "out of memory reading %s", path);
    char chunk[8192];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0)
        fwrite(chunk, 1, k, m);
    cr_assert(!ferror(f), "%s: read error", path);
    fclose(m);
    fclose(f);
    if (len != NULL)
        *len = n;
    return buf;
}

int ts_run_argv(char *const argv[], const char *dir, char **out, char **err)
{
    char po[1100], pe[1100];
    snprintf(po, sizeof po, "%s/run.out", dir);
    snprintf(pe, sizeof pe, "%s/run.err", dir);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int fo = open(po, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(pe, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo < 0 || fe < 0)
            _exit(126);
        dup2(fo, 1);
        dup2(fe, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    size_t len;
    *out = ts_slurp(po, &len);
    *err = ts_slurp(pe, &len);
    cr_assert(*out != NULL && *err != NULL, "%s: its output is not readable", argv[0]);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int ts_stop(int pid, int sig, int timeout_ms)
{
    kill(pid, sig);
    for (int waited = 0; waited <= timeout_ms; waited += 10) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid)
            return status;
        ts_sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

/* Remove the task cgroups (agent/isolate.h) whose supervisor is dead —
 * killed with SIGKILL by a test, it could not remove them — and then the
 * agents' `cellsched` parents if nothing is left in them (a concurrent
 * test's live tasks keep theirs: rmdir refuses a non-empty cgroup). */
static void cgroup_sweep_one(const char *parent)
{
    DIR *d = opendir(parent);
    if (d == NULL)
        return;
    struct dirent *e;
    int pid;
    char path[1200];
    while ((e = readdir(d)) != NULL)
        if (sscanf(e->d_name, "task-%d", &pid) == 1 && kill(pid, 0) != 0 && errno == ESRCH) {
            snprintf(path, sizeof path, "%s/%s", parent, e->d_name);
            rmdir(path);
        }
    closedir(d);
    rmdir(parent);
}

static void cgroup_sweep(void)
{
    FILE *f = fopen("/proc/self/cgroup", "r");
    char line[1024], path[1200];
    while (f != NULL && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c2 == NULL)
            continue;
        *c2 = '\0';
        const char *own = strcmp(c2 + 1, "/") == 0 ? "" : c2 + 1;
        if (c1[1] == '\0') { /* v2 */
            snprintf(path, sizeof path, "/sys/fs/cgroup%s/cellsched", own);
            cgroup_sweep_one(path);
            continue;
        }
        static const char *const ctrls[] = {"memory", "cpu", "pids", "freezer"};
        for (size_t i = 0; i < sizeof ctrls / sizeof *ctrls; i++)
            if (strstr(c1 + 1, ctrls[i]) != NULL) {
                snprintf(path, sizeof path, "/sys/fs/cgroup/%s%s/cellsched", ctrls[i], own);
                cgroup_sweep_one(path);
                snprintf(path, sizeof path, "/sys/fs/cgroup/%s/cellsched", ctrls[i]);
                cgroup_sweep_one(path);
            }
    }
    if (f != NULL)
        fclose(f);
}

void ts_kill_descendants(void)
{
    uint32_t n;
    cs_error err = {0};
    for (int waited = 0; waited <= 20000; waited += 10) {
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        if (ag_proctree_signal(getpid(), SIGKILL, &n, &err) != CS_OK || n == 0)
            break;
        ts_sleep_ms(10);
    }
    while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
        ;
    cgroup_sweep();
}

/* ---- a cellstated for integration tests ------------------------------------ */

void ts_daemon_startv(ts_daemon *d, const char *const *extra)
{
    char data[300];
    snprintf(data, sizeof data, "%s/data", d->dir);
    /* Machines a test registers by hand send no heartbeats: an hour's
     * timeout keeps the monitor from marking them down while a slow
     * (loaded, sanitized) run still uses them — test_cellctl's cordon test
     * once took 12.7 s, past the 10 s default, and its last claim
     * conflicted on a machine gone down. A test that wants the monitor
     * passes its own --heartbeat-timeout, which comes later and wins. */
    char listen[] = "--listen", datafl[] = "--data", nosync[] = "--nosync", wk[] = "--workers",
         n64[] = "64", hb[] = "--heartbeat-timeout", hour[] = "3600000";
    char *argv[16] = {d->bin, listen, d->url, datafl, data, nosync, wk, n64, hb, hour};
    size_t n = 10;
    for (; extra != NULL && *extra != NULL; extra++) {
        cr_assert_lt(n, sizeof argv / sizeof *argv - 1, "too many extra arguments");
        argv[n++] = (char *)*extra;
    }
    argv[n] = NULL;
    d->pid = ts_spawn(argv, d->log);
    cs_error err = {0};
    cr_assert_eq(cs_client_open(d->url, 2000, &d->c, &err), CS_OK, "%s", err.msg);
    /* Ready when it answers: a cell with roles answers this anonymous
     * client "permission denied", which is an answer too. */
    cs_msg r;
    for (int i = 0; i < 100; i++) {
        int rc = cs_client_call(d->c, CS_MSG_STATS, "\x80", 1, &r, &err);
        if (rc == CS_OK || rc == CS_EPERM)
            return;
        ts_sleep_ms(50);
    }
    cr_assert_fail("cellstated did not answer: %s (log %s)", err.msg, d->log);
}

msgpack_packer *ts_body_new(ts_body *x)
{
    msgpack_sbuffer_init(&x->b);
    msgpack_packer_init(&x->pk, &x->b, msgpack_sbuffer_write);
    return &x->pk;
}

void ts_body_free(ts_body *x) { msgpack_sbuffer_destroy(&x->b); }

void ts_pack_machine(msgpack_packer *pk, const char *name, uint32_t more)
{
    msgpack_pack_map(pk, 4 + more);
    cs_pack_kv_str(pk, "name", name);
    cs_res cap = {4000, 4096, 10000};
    cs_pack_kv_res(pk, "capacity", &cap);
    cs_pack_kv_u64(pk, "port_lo", 31000);
    cs_pack_kv_u64(pk, "port_hi", 31099);
}

bool ts_has_job(cs_client *c, const char *name)
{
    ts_body x;
    msgpack_packer *pk = ts_body_new(&x);
    msgpack_pack_map(pk, 1);
    cs_pack_kv_str(pk, "job", name);
    cs_msg m;
    cs_error err = {0};
    cs_client_set_timeout(c, 2000);
    int rc = cs_client_callb(c, CS_MSG_GET_JOB, &x.b, &m, &err);
    ts_body_free(&x);
    return rc == CS_OK;
}

uint64_t ts_version_of(cs_client *c)
{
    cs_arena a;
    cs_arena_init(&a);
    cs_stats_reply st;
    cs_error err = {0};
    cs_client_set_timeout(c, 1000);
    uint64_t v = cs_client_stats(c, &st, &a, &err) == CS_OK ? st.version : 0;
    cs_arena_free(&a);
    return v;
}

uint64_t ts_reply_u64(const msgpack_object *o, const char *key)
{
    uint64_t v = 0;
    cs_error err = {0};
    cr_assert_eq(cs_obj_u64(o, key, true, UINT64_MAX, &v, &err), CS_OK, "%s", err.msg);
    return v;
}

void ts_daemon_start(ts_daemon *d, const char *extra1, const char *extra2)
{
    /* An extra argument that is NULL ends the list, as it did argv. */
    const char *extra[] = {extra1, extra1 != NULL ? extra2 : NULL, NULL};
    ts_daemon_startv(d, extra);
}

void ts_daemon_setupv(ts_daemon *d, const char *const *extra)
{
    memset(d, 0, sizeof *d);
    cr_assert_eq(ts_mkdtemp(d->dir, sizeof d->dir), 0);
    snprintf(d->log, sizeof d->log, "%s/cellstated.log", d->dir);
    snprintf(d->url, sizeof d->url, "tcp://127.0.0.1:%d", ts_free_port());
    ts_bin("cellstated", d->bin, sizeof d->bin);
    ts_daemon_startv(d, extra);
}

void ts_daemon_setup(ts_daemon *d, const char *extra1, const char *extra2)
{
    const char *extra[] = {extra1, extra1 != NULL ? extra2 : NULL, NULL};
    ts_daemon_setupv(d, extra);
}

int ts_daemon_stop(ts_daemon *d)
{
    if (d->c) {
        cs_client_close(d->c);
        d->c = NULL;
    }
    int status = ts_stop(d->pid, SIGTERM, 10000);
    d->pid = 0;
    if (status != 0) {
        /* Show why: the daemon's own log. */
        ts_log_file("cellstated", d->log);
        cr_log_error("cellstated exit status %d", status);
    }
    return status;
}

void ts_daemon_teardown(ts_daemon *d)
{
    if (d->pid > 0)
        ts_daemon_stop(d);
    if (d->dir[0])
        ts_rmtree(d->dir);
    d->dir[0] = '\0';
}

/* ---- the cell through a client --------------------------------------------------- */

#include "spec/jobspec.h"

cs_id ts_submit(cs_client *c, const char *json)
{
    cs_jobspec spec;
    cs_error err = {0};
    cr_assert_eq(cs_jobspec_parse(json, strlen(json), &spec, &err), CS_OK, "%s: %s", json, err.msg);
    cs_msg r;
    uint64_t id = 0;
    cr_assert_eq(cs_client_callb(c, CS_MSG_JOB_SUBMIT, &spec.body, &r, &err), CS_OK, "submit: %s",
                 err.msg);
    cr_assert_eq(cs_obj_u64(&r.body, "id", true, CS_JOB_ID_MAX, &id, &err), CS_OK, "%s", err.msg);
    cs_jobspec_free(&spec);
    return id;
}

void ts_note(cs_client *c, const char *job, const char *note)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    cr_assert(msgpack_pack_map(&pk, 2) == 0 && cs_pack_kv_str(&pk, "job", job) == CS_OK &&
              cs_pack_kv_str(&pk, "note", note) == CS_OK);
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(cs_client_callb(c, CS_MSG_JOB_NOTE, &b, &r, &err), CS_OK, "job.note: %s",
                 err.msg);
    msgpack_sbuffer_destroy(&b);
}

void ts_update(cs_client *c, cs_id id, const char *json)
{
    cs_jobspec spec;
    cs_error err = {0};
    cr_assert_eq(cs_jobspec_parse(json, strlen(json), &spec, &err), CS_OK, "%s: %s", json, err.msg);
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    /* {"job": id, "spec": the submit body as it is} */
    cr_assert(msgpack_pack_map(&pk, 2) == 0 && cs_pack_kv_u64(&pk, "job", id) == CS_OK &&
              cs_pack_str(&pk, "spec") == CS_OK &&
              msgpack_sbuffer_write(&b, spec.body.data, spec.body.size) == 0);
    cs_msg r;
    cr_assert_eq(cs_client_callb(c, CS_MSG_JOB_UPDATE, &b, &r, &err), CS_OK, "update: %s",
                 err.msg);
    msgpack_sbuffer_destroy(&b);
    cs_jobspec_free(&spec);
}

/* Unpack the records of array `key` of a sync reply into *out (n of them). */
#define READ_LIST(reply, key, unpack, a, out, n)                                             \
    do {                                                                                     \
        const msgpack_object *l_ = cs_obj_get((reply), (key));                               \
        cr_assert(l_ != NULL && l_->type == MSGPACK_OBJECT_ARRAY, "sync: no '%s'", (key));   \
        *(n) = l_->via.array.size;                                                           \
        *(out) = cs_arena_alloc((a), (*(n) + 1) * sizeof **(out));                           \
        cr_assert(*(out) != NULL);                                                           \
        for (size_t i_ = 0; i_ < *(n); i_++) {                                               \
            cs_error e_ = {0};                                                               \
            cr_assert_eq(unpack(&l_->via.array.ptr[i_], (a), &(*(out))[i_], &e_), CS_OK,     \
                         "sync: %s: %s", (key), e_.msg);                                     \
        }                                                                                    \
    } while (0)

void ts_cell_read(cs_client *c, ts_cell *out)
{
    memset(out, 0, sizeof *out);
    cs_arena_init(&out->a);
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    cr_assert(msgpack_pack_map(&pk, 1) == 0 && cs_pack_kv_u64(&pk, "since", 0) == CS_OK);
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(cs_client_callb(c, CS_MSG_SYNC, &b, &r, &err), CS_OK, "sync: %s", err.msg);
    msgpack_sbuffer_destroy(&b);
    cr_assert_eq(cs_obj_u64(&r.body, "version", true, UINT64_MAX, &out->version, &err), CS_OK,
                 "%s", err.msg);
    READ_LIST(&r.body, "machines", cs_unpack_machine, &out->a, &out->machines, &out->nmachines);
    READ_LIST(&r.body, "jobs", cs_unpack_job, &out->a, &out->jobs, &out->njobs);
    READ_LIST(&r.body, "tasks", cs_unpack_task, &out->a, &out->tasks, &out->ntasks);
}

void ts_cell_free(ts_cell *cell)
{
    cs_arena_free(&cell->a);
    memset(cell, 0, sizeof *cell);
}

const cs_job *ts_cell_job(const ts_cell *cell, cs_id id)
{
    for (size_t i = 0; i < cell->njobs; i++)
        if (cell->jobs[i].id == id)
            return &cell->jobs[i];
    cr_assert_fail("the cell has no job %llu", (unsigned long long)id);
    return NULL;
}

/* ---- a stand-in server -------------------------------------------------------------- */

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <pthread.h>
#include <stdatomic.h>

struct ts_rep {
    char url[64];
    nng_socket sock;
    pthread_t thread;
    atomic_bool stop;
    ts_answer_fn answer;
    void *ctx;
};

static void *rep_serve(void *arg)
{
    ts_rep *r = arg;
    msgpack_zone zone;
    msgpack_zone_init(&zone, 4096);
    while (!atomic_load(&r->stop)) {
        nng_msg *req;
        /* a receive timeout brings the loop back to `stop` */
        if (nng_recvmsg(r->sock, &req, 0) != 0)
            continue;
        msgpack_zone_clear(&zone);
        msgpack_sbuffer b;
        msgpack_sbuffer_init(&b);
        cs_msg m;
        cs_error err = {0};
        if (cs_msg_decode(nng_msg_body(req), nng_msg_len(req), &zone, &m, &err) != CS_OK)
            cs_msg_error(&b, m.req, CS_EPROTO, err.msg);
        else
            r->answer(r->ctx, &m, &b);
        nng_msg_free(req);
        nng_msg *rep;
        if (nng_msg_alloc(&rep, 0) == 0 &&
            (nng_msg_append(rep, b.data, b.size) != 0 || nng_sendmsg(r->sock, rep, 0) != 0))
            nng_msg_free(rep);
        msgpack_sbuffer_destroy(&b);
    }
    msgpack_zone_destroy(&zone);
    return NULL;
}

ts_rep *ts_rep_start(ts_answer_fn answer, void *ctx)
{
    ts_rep *r = calloc(1, sizeof *r);
    cr_assert_not_null(r);
    r->answer = answer;
    r->ctx = ctx;
    snprintf(r->url, sizeof r->url, "tcp://127.0.0.1:%d", ts_free_port());
    cr_assert_eq(nng_rep0_open(&r->sock), 0);
    cr_assert_eq(nng_socket_set_ms(r->sock, NNG_OPT_RECVTIMEO, 100), 0);
    cr_assert_eq(nng_listen(r->sock, r->url, NULL, 0), 0, "listen on %s", r->url);
    cr_assert_eq(pthread_create(&r->thread, NULL, rep_serve, r), 0);
    return r;
}

const char *ts_rep_url(const ts_rep *r) { return r->url; }

void ts_rep_stop(ts_rep *r)
{
    atomic_store(&r->stop, true);
    pthread_join(r->thread, NULL);
    nng_close(r->sock);
    free(r);
}

/* ---- a replicated cell ------------------------------------------------------------- */

void ts_cluster_setup(ts_cluster *c, int n, const char *scheme)
{
    cr_assert(n > 0 && n <= TS_CLUSTER_MAX);
    memset(c, 0, sizeof *c);
    c->n = n;
    cr_assert_eq(ts_mkdtemp(c->dir, sizeof c->dir), 0);
    snprintf(c->file, sizeof c->file, "%s/cluster.json", c->dir);
    ts_bin("cellstated", c->bin, sizeof c->bin);
    FILE *f = fopen(c->file, "w");
    cr_assert(f != NULL, "%s", c->file);
    for (int i = 0; i < n; i++) {
        snprintf(c->url[i], sizeof c->url[i], "%s://127.0.0.1:%d", scheme, ts_free_port());
        snprintf(c->log[i], sizeof c->log[i], "%s/cellstated-%d.log", c->dir, i + 1);
        fprintf(f, "%s{\"id\": %d, \"listen\": \"%s\", \"raft\": \"127.0.0.1:%d\"}",
                i ? ", " : "[", i + 1, c->url[i], ts_free_port());
    }
    fputs("]\n", f);
    fclose(f);
}

void ts_cluster_start(ts_cluster *c, int i, const char *const *extra)
{
    char id[16], data[320];
    snprintf(id, sizeof id, "%d", i + 1);
    snprintf(data, sizeof data, "%s/cell-%d", c->dir, i + 1);
    const char *argv[24] = {c->bin, "--cluster", c->file, "--id", id, "--data", data,
                            "--election-timeout", "400", "--workers", "64", "--nosync"};
    size_t n = 12;
    for (size_t k = 0; extra != NULL && extra[k] != NULL; k++) {
        cr_assert(k < 8, "at most 8 extra arguments");
        argv[n++] = extra[k];
    }
    argv[n] = NULL;
    c->pid[i] = ts_spawn((char *const *)argv, c->log[i]);
}

int ts_cluster_leader(ts_cluster *c, cs_client *const *clients, int wait_ms)
{
    int64_t until = ts_now_ms() + wait_ms;
    do {
        for (int i = 0; i < c->n; i++) {
            cs_msg m;
            cs_error err = {0};
            cs_client_set_timeout(clients[i], 1000);
            if (cs_client_call(clients[i], CS_MSG_MEMBERS, "\x80", 1, &m, &err) != CS_OK)
                continue;
            const msgpack_object *role = cs_obj_get(&m.body, "role");
            if (role != NULL && cs_obj_str_is(role, "leader"))
                return i;
        }
        ts_sleep_ms(50);
    } while (ts_now_ms() < until);
    for (int i = 0; i < c->n; i++)
        ts_log_file("cellstated", c->log[i]);
    cr_assert_fail("no leader within %d ms", wait_ms);
    return -1;
}

void ts_cluster_teardown(ts_cluster *c)
{
    for (int i = 0; i < c->n; i++)
        if (c->pid[i] > 0) {
            kill(c->pid[i], SIGCONT);
            ts_stop(c->pid[i], SIGKILL, 5000);
            c->pid[i] = 0;
        }
    if (c->dir[0] != '\0')
        ts_rmtree(c->dir);
    c->dir[0] = '\0';
}
