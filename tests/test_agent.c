/* test_agent.c — integration: a real cellstated and real cell-agent
 * processes on 127.0.0.1. Tasks are placed by a minimal first-fit placer
 * written here (get.machines, get.jobs, get.tasks, then one commit), so
 * that the agent is tested without the schedulers.
 *
 * Every wait is a deadline with polling, never a fixed sleep used as an
 * assertion: the machine running the suite is shared and slow.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proto/client.h"
#include "cellstate/jobopts.h"
#include "tests/support.h"
#include "txn/txn.h"

#define DEADLINE_MS 20000

/* Criterion's runner (the parent of the forked tests, not test code)
 * loses track of a 48-byte record of its own in some interleavings of two
 * parallel tests of this suite (--jobs=2), and LeakSanitizer then fails
 * the whole binary. Leaks whose stack lies in libcriterion are not this
 * project's to fix: suppress those, and only those. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libcriterion.so\n"; }

/* ---- requests ------------------------------------------------------------------- */

/* Call and fail the test on an error reply. */
static void call_ok(ts_daemon *d, uint32_t type, ts_body *x, cs_msg *r)
{
    cs_error err = {0};
    cr_assert_eq(cs_client_callb(d->c, type, &x->b, r, &err), CS_OK, "%s: %s",
                 cs_msg_name(type), err.msg);
    msgpack_sbuffer_destroy(&x->b);
}

/* A request with an empty body (get.machines, get.jobs) and the array
 * under `key` in its reply (valid until the next call). */
static const msgpack_object *list_all(ts_daemon *d, uint32_t type, const char *key, cs_msg *r)
{
    ts_body x;
    msgpack_packer *pk = ts_body_new(&x);
    msgpack_pack_map(pk, 0);
    call_ok(d, type, &x, r);
    const msgpack_object *l = cs_obj_get(&r->body, key);
    cr_assert(l && l->type == MSGPACK_OBJECT_ARRAY, "%s: no '%s' array", cs_msg_name(type), key);
    return l;
}

static uint64_t get_u64(const msgpack_object *o, const char *key)
{
    uint64_t v = 0;
    cs_error err = {0};
    cr_assert_eq(cs_obj_u64(o, key, true, UINT64_MAX, &v, &err), CS_OK, "%s", err.msg);
    return v;
}

static int64_t get_i64(const msgpack_object *o, const char *key)
{
    int64_t v = 0;
    cs_error err = {0};
    cr_assert_eq(cs_obj_i64(o, key, true, INT64_MIN, INT64_MAX, &v, &err), CS_OK, "%s", err.msg);
    return v;
}

/* Whether string field `key` of map o equals s. */
static bool str_is(const msgpack_object *o, const char *key, const char *s)
{
    const msgpack_object *v = cs_obj_get(o, key);
    return v && v->type == MSGPACK_OBJECT_STR && v->via.str.size == strlen(s) &&
           memcmp(v->via.str.ptr, s, v->via.str.size) == 0;
}

static bool str_has(const msgpack_object *o, const char *key, const char *part)
{
    const msgpack_object *v = cs_obj_get(o, key);
    if (v == NULL || v->type != MSGPACK_OBJECT_STR)
        return false;
    char buf[2048];
    snprintf(buf, sizeof buf, "%.*s", (int)v->via.str.size, v->via.str.ptr);
    return strstr(buf, part) != NULL;
}

/* Submit a job of `count` tasks, each 100 millicores and 64 MiB with
 * `nports` dynamic ports, running `cmd`; `opts` (may be NULL) are its
 * options bytes. Returns its id. */
static cs_id submit(ts_daemon *d, const char *name, uint32_t count, const char *cmd,
                    uint32_t nports, const msgpack_sbuffer *opts)
{
    ts_body x;
    msgpack_packer *pk = ts_body_new(&x);
    msgpack_pack_map(pk, opts ? 6 : 5);
    cs_pack_kv_str(pk, "name", name);
    cs_pack_kv_u64(pk, "count", count);
    cs_res res = {100, 64, 0};
    cs_pack_kv_res(pk, "resources", &res);
    cs_pack_kv_str(pk, "cmd", cmd);
    cs_pack_str(pk, "ports");
    msgpack_pack_array(pk, nports);
    for (uint32_t i = 0; i < nports; i++)
        msgpack_pack_uint16(pk, 0);
    if (opts) {
        cs_pack_str(pk, "options");
        msgpack_pack_bin(pk, opts->size);
        msgpack_pack_bin_body(pk, opts->data, opts->size);
    }
    cs_msg r;
    call_ok(d, CS_MSG_JOB_SUBMIT, &x, &r);
    return get_u64(&r.body, "id");
}

static void kill_job(ts_daemon *d, cs_id job)
{
    ts_body x;
    msgpack_packer *pk = ts_body_new(&x);
    msgpack_pack_map(pk, 1);
    cs_pack_kv_u64(pk, "job", job);
    cs_msg r;
    call_ok(d, CS_MSG_JOB_KILL, &x, &r);
}

/* ---- a minimal first-fit placer ------------------------------------------------- */

typedef struct pm {
    cs_id id;
    uint64_t seq;
    cs_res free;
    uint16_t lo, hi;
    uint16_t used[512];
    uint32_t nused;
} pm;

static bool port_used(const pm *m, uint16_t p)
{
    for (uint32_t i = 0; i < m->nused; i++)
        if (m->used[i] == p)
            return true;
    return false;
}

static bool fits(const pm *m, const cs_res *r)
{
    return m->free.cpu >= r->cpu && m->free.mem >= r->mem && m->free.disk >= r->disk;
}

/* One placement round: every pending task of every active job on the first
 * up machine it fits (whose name starts with `prefix`), in one commit.
 * Returns how many claims committed. */
static uint32_t place_round(ts_daemon *d, const char *prefix, uint64_t req)
{
    static pm ms[64];
    uint32_t nm = 0;
    cs_msg r;
    const msgpack_object *mach = list_all(d, CS_MSG_GET_MACHINES, "machines", &r);
    for (uint32_t i = 0; i < mach->via.array.size && nm < 64; i++) {
        const msgpack_object *o = &mach->via.array.ptr[i];
        if (!str_is(o, "state", "up") || !str_has(o, "name", prefix))
            continue;
        pm *m = &ms[nm++];
        memset(m, 0, sizeof *m);
        cs_res cap, alloc;
        cs_error err = {0};
        cs_obj_res(o, "capacity", true, &cap, &err);
        cs_obj_res(o, "allocated", true, &alloc, &err);
        m->id = get_u64(o, "id");
        m->seq = get_u64(o, "seq");
        m->free = cap;
        cs_res_sub(&m->free, &alloc);
        m->lo = (uint16_t)get_u64(o, "port_lo");
        m->hi = (uint16_t)get_u64(o, "port_hi");
        const msgpack_object *ports = cs_obj_get(o, "ports");
        for (uint32_t k = 0; k < ports->via.array.size && m->nused < 512; k++)
            m->used[m->nused++] = (uint16_t)ports->via.array.ptr[k].via.u64;
    }
    /* How many ports each job's tasks need. */
    static struct {
        cs_id id;
        uint32_t nports;
    } jobs[64];
    uint32_t nj = 0;
    const msgpack_object *jl = list_all(d, CS_MSG_GET_JOBS, "jobs", &r);
    for (uint32_t i = 0; i < jl->via.array.size && nj < 64; i++) {
        jobs[nj].id = get_u64(&jl->via.array.ptr[i], "id");
        jobs[nj].nports = cs_obj_get(&jl->via.array.ptr[i], "ports")->via.array.size;
        nj++;
    }
    ts_body x;
    msgpack_packer *pk = ts_body_new(&x);
    msgpack_pack_map(pk, 1);
    cs_pack_kv_str(pk, "state", "pending");
    call_ok(d, CS_MSG_GET_TASKS, &x, &r);
    const msgpack_object *tl = cs_obj_get(&r.body, "tasks");
    cs_txn t;
    cs_txn_init(&t, 4242, req, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    for (uint32_t i = 0; i < tl->via.array.size; i++) {
        const msgpack_object *o = &tl->via.array.ptr[i];
        cs_id id = get_u64(o, "id"), job = get_u64(o, "job");
        cs_res need;
        cs_error err = {0};
        cs_obj_res(o, "resources", true, &need, &err);
        uint32_t np = 0;
        for (uint32_t k = 0; k < nj; k++)
            if (jobs[k].id == job)
                np = jobs[k].nports;
        for (uint32_t k = 0; k < nm; k++) {
            pm *m = &ms[k];
            uint16_t ports[8];
            uint32_t got = 0;
            for (uint32_t p = m->lo; p && p <= m->hi && got < np && m->nused < 512; p++)
                if (!port_used(m, (uint16_t)p)) {
                    ports[got++] = (uint16_t)p;
                    m->used[m->nused++] = (uint16_t)p;
                }
            if (!fits(m, &need) || got < np) {
                m->nused -= got;
                continue;
            }
            cs_res_sub(&m->free, &need);
            cs_txn_add_claim(&t, id, m->id, &need, ports, np, m->seq);
            break;
        }
    }
    uint32_t committed = 0;
    if (t.nclaims > 0) {
        msgpack_sbuffer b;
        msgpack_sbuffer_init(&b);
        cs_txn_encode(&t, &b);
        cs_error err = {0};
        cr_assert_eq(cs_client_callb(d->c, CS_MSG_COMMIT, &b, &r, &err), CS_OK, "%s", err.msg);
        committed = (uint32_t)get_u64(&r.body, "committed");
        msgpack_sbuffer_destroy(&b);
    }
    cs_txn_free(&t);
    return committed;
}

/* Place until `want` claims have committed, within the deadline (the
 * machines may still be registering). */
static void place(ts_daemon *d, const char *prefix, uint32_t want)
{
    static uint64_t req = 1;
    uint32_t placed = 0;
    int64_t end = ts_now_ms() + DEADLINE_MS;
    while (placed < want && ts_now_ms() < end) {
        placed += place_round(d, prefix, req++);
        if (placed < want)
            ts_sleep_ms(50);
    }
    cr_assert_eq(placed, want, "placed %u of %u tasks", placed, want);
}

/* ---- waiting on the cell ---------------------------------------------------------- */

/* How many of the job's tasks are in `state`. */
static uint32_t count_state(ts_daemon *d, cs_id job, const char *state)
{
    ts_body x;
    msgpack_packer *pk = ts_body_new(&x);
    msgpack_pack_map(pk, 2);
    cs_pack_kv_u64(pk, "job", job);
    cs_pack_kv_str(pk, "state", state);
    cs_msg r;
    call_ok(d, CS_MSG_GET_TASKS, &x, &r);
    return cs_obj_get(&r.body, "tasks")->via.array.size;
}

static bool wait_state(ts_daemon *d, cs_id job, const char *state, uint32_t n)
{
    int64_t end = ts_now_ms() + DEADLINE_MS;
    while (ts_now_ms() < end) {
        if (count_state(d, job, state) == n)
            return true;
        ts_sleep_ms(50);
    }
    return false;
}

/* The job's task `index` (the reply stays valid until the next call). */
static const msgpack_object *task_of(ts_daemon *d, cs_id job, uint32_t index, cs_msg *r)
{
    ts_body x;
    msgpack_packer *pk = ts_body_new(&x);
    msgpack_pack_map(pk, 1);
    cs_pack_kv_u64(pk, "job", job);
    call_ok(d, CS_MSG_GET_TASKS, &x, r);
    const msgpack_object *tl = cs_obj_get(&r->body, "tasks");
    for (uint32_t i = 0; i < tl->via.array.size; i++)
        if (get_u64(&tl->via.array.ptr[i], "index") == index)
            return &tl->via.array.ptr[i];
    cr_assert_fail("job %llu has no task %u", (unsigned long long)job, index);
    return NULL;
}

static bool machine_state(ts_daemon *d, const char *name, const char *state)
{
    cs_msg r;
    const msgpack_object *ml = list_all(d, CS_MSG_GET_MACHINES, "machines", &r);
    for (uint32_t i = 0; i < ml->via.array.size; i++)
        if (str_is(&ml->via.array.ptr[i], "name", name))
            return str_is(&ml->via.array.ptr[i], "state", state);
    return false;
}

static uint32_t machines_up(ts_daemon *d, const char *prefix)
{
    cs_msg r;
    const msgpack_object *ml = list_all(d, CS_MSG_GET_MACHINES, "machines", &r);
    uint32_t n = 0;
    for (uint32_t i = 0; i < ml->via.array.size; i++)
        n += str_has(&ml->via.array.ptr[i], "name", prefix) &&
             str_is(&ml->via.array.ptr[i], "state", "up");
    return n;
}

/* ---- files and processes ------------------------------------------------------------ */

/* The whole file as a string (caller frees), or NULL. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strdup(buf);
}

static char *wait_file(const char *path)
{
    int64_t end = ts_now_ms() + DEADLINE_MS;
    while (ts_now_ms() < end) {
        char *s = slurp(path);
        if (s && s[0] && strchr(s, '\n'))
            return s;
        free(s);
        ts_sleep_ms(50);
    }
    cr_assert_fail("%s did not appear", path);
    return NULL;
}

static bool alive(int pid) { return kill(pid, 0) == 0 || errno == EPERM; }

static bool wait_dead(int pid)
{
    int64_t end = ts_now_ms() + DEADLINE_MS;
    while (ts_now_ms() < end) {
        if (!alive(pid))
            return true;
        ts_sleep_ms(50);
    }
    return false;
}

static bool log_has(const char *log, const char *part)
{
    char *s = slurp(log);
    bool has = s && strstr(s, part);
    free(s);
    return has;
}

static bool wait_log(const char *log, const char *part)
{
    int64_t end = ts_now_ms() + DEADLINE_MS;
    while (ts_now_ms() < end) {
        if (log_has(log, part))
            return true;
        ts_sleep_ms(50);
    }
    return false;
}

/* ---- an agent process ---------------------------------------------------------------- */

typedef struct agent {
    char dir[256], work[300], log[300], bin[256], name[64];
    int pid;
} agent;

/* The running test's cellstated and agent. Static, not on the test's
 * stack: after a failed assertion Criterion leaves the test function and
 * then runs its .fini (cleanup), which must still find them to stop them. */
static ts_daemon the_daemon;
static agent the_agent;
static struct {
    ts_daemon *d;
    agent *a;
} live;

static void daemon_setup(ts_daemon *d, const char *flag, const char *value)
{
    live.d = d;
    ts_daemon_setup(d, flag, value);
}

static void agent_init(agent *a, const char *name)
{
    live.a = a;
    memset(a, 0, sizeof *a);
    cr_assert_eq(ts_mkdtemp(a->dir, sizeof a->dir), 0);
    snprintf(a->work, sizeof a->work, "%s/work", a->dir);
    snprintf(a->log, sizeof a->log, "%s/agent.log", a->dir);
    /* Tasks run as the task user (agent/isolate.h): they may look into the
     * test's directory (the flag files some tests wait on), not write it. */
    cr_assert_eq(chmod(a->dir, 0711), 0);
    snprintf(a->name, sizeof a->name, "%s", name);
    ts_bin("cell-agent", a->bin, sizeof a->bin);
    cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0, "prctl: %s", strerror(errno));
}

/* Start cell-agent for machine a->name against `url` with small timings;
 * extra arguments (NULL-terminated list, may be empty) come last. */
static void agent_start(agent *a, const char *url, const char *const *extra)
{
    const char *argv[40] = {a->bin,         "--server",       url,          "--name",
                            a->name,        "--workdir",      a->work,      "--cpu",
                            "2",            "--mem",          "2048",       "--disk",
                            "10000",        "--heartbeat-ms", "200",        "--poll-wait-ms",
                            "2000",         "--kill-grace-ms", "500"};
    int n = 19;
    for (int i = 0; extra && extra[i] && n < 38; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    a->pid = ts_spawn((char *const *)argv, a->log);
}

static void dump_log(const char *what, const char *log)
{
    char *s = slurp(log);
    if (s)
        cr_log_error("%s log:\n%s", what, s);
    free(s);
}

/* Stop the agent, the daemon, and every task left running; remove the
 * agent's directory. `d` may be NULL. */
static void teardown(agent *a, ts_daemon *d)
{
    if (a->pid > 0)
        ts_stop(a->pid, SIGTERM, 10000);
    a->pid = 0;
    if (d != NULL)
        ts_daemon_teardown(d);
    /* Tasks and their supervisors outlive a stopped agent by design, and
     * this test process is their subreaper (agent_init): end them all,
     * and reap them, so that none is left to Criterion's runner (which
     * counts strays and leaks its bookkeeping on them). */
    ts_kill_descendants();
    if (a->dir[0])
        ts_rmtree(a->dir);
    a->dir[0] = '\0';
    live.a = NULL;
    if (d != NULL)
        live.d = NULL;
}

static void cleanup(void)
{
    if (live.a != NULL)
        teardown(live.a, live.d);
    else if (live.d != NULL)
        ts_daemon_teardown(live.d);
    live.a = NULL;
    live.d = NULL;
}

/* A file of the task's directory in the agent's state (exit, stderr). */
static void task_path(const agent *a, const msgpack_object *task, const char *file, char *out,
                      size_t size)
{
    snprintf(out, size, "%s/tasks/%llu-%llu/%s", a->work,
             (unsigned long long)get_u64(task, "id"), (unsigned long long)get_u64(task, "attempts"),
             file);
}

/* A file of the task's sandbox, where it runs and writes (--task-root,
 * by default the work directory's path followed by -tasks). */
static void sandbox_path(const agent *a, const msgpack_object *task, const char *file, char *out,
                         size_t size)
{
    snprintf(out, size, "%s-tasks/%llu-%llu/%s", a->work, (unsigned long long)get_u64(task, "id"),
             (unsigned long long)get_u64(task, "attempts"), file);
}

/* A cellstated (with up to one extra flag and value, NULL for none) and an
 * agent for machine "m1" against it. */
static void start_cell(ts_daemon *d, agent *a, const char *flag, const char *value,
                       const char *const *agent_extra)
{
    daemon_setup(d, flag, value);
    agent_init(a, "m1");
    agent_start(a, d->url, agent_extra);
}

/* The pid that task 0 of job j wrote to pid.txt in its directory, once it
 * is there; the path of its exit file goes to exitf. */
static int task_pid(ts_daemon *d, const agent *a, cs_id j, char *exitf, size_t size)
{
    cs_msg r;
    const msgpack_object *t = task_of(d, j, 0, &r);
    char path[600];
    sandbox_path(a, t, "pid.txt", path, sizeof path);
    task_path(a, t, "exit", exitf, size);
    char *s = wait_file(path);
    int pid = atoi(s);
    free(s);
    cr_assert(pid > 1 && alive(pid), "task pid %d", pid);
    return pid;
}

/* Task 0 of the job, once it is reported failed (the reply in r). */
static const msgpack_object *wait_failed(ts_daemon *d, const agent *a, cs_id job, cs_msg *r)
{
    bool failed = wait_state(d, job, "failed", 1);
    if (!failed)
        dump_log("agent", a->log);
    cr_assert(failed, "the task was killed and reported failed");
    return task_of(d, job, 0, r);
}

/* ---- (1) tasks run as processes and reach finished or failed ------------------------- */

Test(agent, runs_tasks_and_reports_their_end, .timeout = 90, .fini = cleanup)
{
    ts_daemon *d = &the_daemon;
    agent *a = &the_agent;
    start_cell(d, a, NULL, NULL, (const char *const[]){"--ports", "31000-31010", NULL});

    /* Environment from the job's options, beside the agent's own facts. */
    cs_jobopts o;
    cs_jobopts_init(&o);
    cs_attr env[] = {{"GREETING", "hello there"}};
    o.env = env;
    o.nenv = 1;
    msgpack_sbuffer ob;
    msgpack_sbuffer_init(&ob);
    cs_error err = {0};
    cr_assert_eq(cs_jobopts_encode(&o, &ob, &err), CS_OK, "%s", err.msg);
    cs_id ok = submit(d, "hello", 2,
                      "echo \"$CELL_TASK_ID $CELL_JOB $CELL_TASK_INDEX $PORT0 $PORT "
                      "$CELL_MACHINE $GREETING\" > out; pwd > where",
                      1, &ob);
    msgpack_sbuffer_destroy(&ob);
    cs_id bad = submit(d, "broken", 1, "echo oops >&2; exit 3", 0, NULL);
    /* Options no agent can read (an unknown key): the start fails, with a
     * reason, and the agent keeps serving. */
    msgpack_sbuffer junk;
    msgpack_sbuffer_init(&junk);
    msgpack_packer jp;
    msgpack_packer_init(&jp, &junk, msgpack_sbuffer_write);
    msgpack_pack_map(&jp, 1);
    cs_pack_kv_u64(&jp, "no_such_option", 1);
    cs_id junky = submit(d, "junk", 1, "true", 0, &junk);
    msgpack_sbuffer_destroy(&junk);

    place(d, "m1", 4);
    bool fin = wait_state(d, ok, "finished", 2), failed = wait_state(d, bad, "failed", 1),
         refused = wait_state(d, junky, "failed", 1);
    if (!fin || !failed || !refused)
        dump_log("agent", a->log);
    cr_assert(fin, "both tasks of 'hello' finished");
    cr_assert(failed, "the task of 'broken' failed");
    cr_assert(refused, "the task with unreadable options failed");

    cs_msg r;
    for (uint32_t i = 0; i < 2; i++) {
        const msgpack_object *t = task_of(d, ok, i, &r);
        char path[600], dir[600];
        sandbox_path(a, t, "out", path, sizeof path);
        /* The task has ended, so its ports are released: the file tells. */
        char *out = slurp(path);
        cr_assert(out != NULL, "%s exists", path);
        unsigned long long id, p0, p;
        char job[32], mach[32], greet[64];
        unsigned idx;
        cr_assert_eq(sscanf(out, "%llu %31s %u %llu %llu %31s %63[^\n]", &id, job, &idx, &p0, &p,
                            mach, greet),
                     7, "out is '%s'", out);
        cr_assert_str_eq(mach, "m1", "CELL_MACHINE is the machine's name");
        cr_assert_eq(id, get_u64(t, "id"));
        cr_assert_str_eq(job, "hello");
        cr_assert_eq(idx, i);
        cr_assert(p0 >= 31000 && p0 <= 31010, "PORT0 %llu is in the machine's range", p0);
        cr_assert_eq(p, p0, "PORT is PORT0");
        cr_assert_str_eq(greet, "hello there");
        free(out);
        /* Its working directory is its own sandbox. */
        sandbox_path(a, t, "where", path, sizeof path);
        sandbox_path(a, t, "", dir, sizeof dir);
        dir[strlen(dir) - 1] = '\0';
        char *where = slurp(path);
        char real[600];
        cr_assert(where && realpath(dir, real));
        where[strcspn(where, "\n")] = '\0';
        cr_assert_str_eq(where, real);
        free(where);
        cr_assert_eq(get_u64(t, "attempts"), 1);
    }
    const msgpack_object *t = task_of(d, bad, 0, &r);
    cr_assert_eq(get_i64(t, "exit_code"), 3);
    cr_assert(str_has(t, "reason", "code 3"), "the reason names the exit code");
    char path[600];
    task_path(a, t, "stderr", path, sizeof path);
    char *e = slurp(path);
    cr_assert(e && strcmp(e, "oops\n") == 0, "stderr goes to the task's stderr file");
    free(e);
    t = task_of(d, junky, 0, &r);
    cr_assert(str_has(t, "reason", "cannot start"), "the reason says it could not start");
    cr_assert(str_has(t, "reason", "no_such_option"), "... and names the option");

    int st = ts_stop(a->pid, SIGTERM, 10000);
    a->pid = 0;
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "SIGTERM: the agent exits 0 (status %d)",
              st);
    teardown(a, d);
}

/* ---- (2) a killed job's processes are gone ------------------------------------------ */

Test(agent, killed_job_processes_are_gone, .timeout = 90, .fini = cleanup)
{
    ts_daemon *d = &the_daemon;
    agent *a = &the_agent;
    start_cell(d, a, NULL, NULL, NULL);
    /* It ignores SIGTERM: only the SIGKILL after the grace period ends it. */
    cs_id j = submit(d, "stubborn", 1,
                     "trap '' TERM; echo $$ > pid.txt; while :; do sleep 0.1; done", 0, NULL);
    place(d, "m1", 1);
    char exitf[600];
    int pid = task_pid(d, a, j, exitf, sizeof exitf);
    cr_assert(wait_state(d, j, "running", 1), "reported running");

    kill_job(d, j);
    bool dead = wait_dead(pid);
    if (!dead)
        dump_log("agent", a->log);
    cr_assert(dead, "the task's process %d is gone after job.kill", pid);
    char *ex = wait_file(exitf);
    cr_assert_str_eq(ex, "signal 9\n", "ended by SIGKILL after ignoring SIGTERM");
    free(ex);
    cr_assert(alive(a->pid), "the agent keeps serving");
    teardown(a, d);
}

/* ---- (3) a restarted agent never starts a task twice -------------------------------- */

Test(agent, restart_adopts_and_never_starts_twice, .timeout = 120, .fini = cleanup)
{
    ts_daemon *d = &the_daemon;
    agent *a = &the_agent;
    start_cell(d, a, NULL, NULL, NULL);
    cs_id j = submit(d, "once", 1, "echo started >> starts; sleep 2", 0, NULL);
    place(d, "m1", 1);
    cs_msg r;
    const msgpack_object *t = task_of(d, j, 0, &r);
    char starts[600];
    sandbox_path(a, t, "starts", starts, sizeof starts);
    free(wait_file(starts));

    /* Kill the agent hard while the task runs, and let the task end while
     * no agent is there: the next agent must learn it from the supervisor. */
    ts_stop(a->pid, SIGKILL, 10000);
    a->pid = 0;
    t = task_of(d, j, 0, &r);
    char exitf[600];
    task_path(a, t, "exit", exitf, sizeof exitf);
    char *ex = wait_file(exitf);
    cr_assert_str_eq(ex, "exit 0\n");
    free(ex);
    cr_assert_eq(count_state(d, j, "finished"), 0, "nobody reported it yet");

    agent_start(a, d->url, NULL);
    bool fin = wait_state(d, j, "finished", 1);
    if (!fin)
        dump_log("agent", a->log);
    cr_assert(fin, "the restarted agent reports the end");
    char *lines = slurp(starts);
    cr_assert_str_eq(lines, "started\n", "the task started exactly once");
    free(lines);
    cr_assert(log_has(a->log, "adopting task"), "the second agent adopted the task");
    teardown(a, d);
}

/* ---- (4) a stopped agent's machine goes down; its tasks are lost -------------------- */

Test(agent, stopped_agent_machine_goes_down_and_restart_kills_lost_tasks, .timeout = 120, .fini = cleanup)
{
    ts_daemon *d = &the_daemon;
    agent *a = &the_agent;
    start_cell(d, a, "--heartbeat-timeout", "1000", NULL);
    cs_id j = submit(d, "long", 1, "echo $$ > pid.txt; exec sleep 300", 0, NULL);
    place(d, "m1", 1);
    char exitf[600];
    int pid = task_pid(d, a, j, exitf, sizeof exitf);
    cr_assert(wait_state(d, j, "running", 1));

    int st = ts_stop(a->pid, SIGTERM, 10000);
    a->pid = 0;
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "clean stop (status %d)", st);
    cr_assert(alive(pid), "a stopping agent leaves its tasks running");
    cr_assert(wait_state(d, j, "lost", 1), "the silent machine's task becomes lost");
    cr_assert(machine_state(d, "m1", "down"));

    /* The next agent registers the machine again and kills what the cell
     * no longer places there. */
    agent_start(a, d->url, NULL);
    int64_t end = ts_now_ms() + DEADLINE_MS;
    while (!machine_state(d, "m1", "up") && ts_now_ms() < end)
        ts_sleep_ms(50);
    cr_assert(machine_state(d, "m1", "up"), "registered again");
    bool dead = wait_dead(pid);
    if (!dead)
        dump_log("agent", a->log);
    cr_assert(dead, "the lost task's process was killed");
    cr_assert_eq(count_state(d, j, "lost"), 1, "and it stays lost");
    teardown(a, d);
}

/* ---- (4b) the supervisor: every process of a task, and tasks without an agent ----------- */

/* A task that leaves its group and session: the setsid'd shell writes its
 * pid (it then becomes the sleep) to escaped.txt, the task's shell its own
 * to pid.txt. `starts` (may be NULL) gets a line per start. */
static void escaper_cmd(char *out, size_t size, const char *starts)
{
    char count[400] = "";
    if (starts != NULL)
        snprintf(count, sizeof count, "echo started >> %.300s; ", starts);
    snprintf(out, size, "%secho $$ > pid.txt; setsid sh -c 'echo $$ > escaped.txt; exec sleep "
                        "300' & sleep 300", count);
}

/* The session of process `pid` (field 6 of /proc/PID/stat), 0 unknown. */
static int session_of(int pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    char *s = slurp(path);
    char *p = s ? strrchr(s, ')') : NULL;
    int pp, pg, sid = 0;
    char st;
    if (p == NULL || sscanf(p + 1, " %c %d %d %d", &st, &pp, &pg, &sid) != 4)
        sid = 0;
    free(s);
    return sid;
}

/* Start the escaper as job "escaper" on m1; its two pids, once it runs and
 * the escaped one is in a session of its own. */
static cs_id start_escaper(ts_daemon *d, const agent *a, const char *starts, int *pid, int *esc,
                           char *exitf, size_t size)
{
    char cmd[700];
    escaper_cmd(cmd, sizeof cmd, starts);
    cs_id j = submit(d, "escaper", 1, cmd, 0, NULL);
    place(d, "m1", 1);
    *pid = task_pid(d, a, j, exitf, size);
    cs_msg r;
    char path[600];
    sandbox_path(a, task_of(d, j, 0, &r), "escaped.txt", path, sizeof path);
    char *s = wait_file(path);
    *esc = atoi(s);
    free(s);
    cr_assert(*esc > 1 && alive(*esc), "escaped pid %d", *esc);
    cr_assert(session_of(*esc) == *esc && session_of(*esc) != session_of(*pid),
              "the escaped process leads a session of its own");
    cr_assert(wait_state(d, j, "running", 1), "reported running");
    return j;
}

Test(agent, killed_job_leaves_no_process_even_after_setsid, .timeout = 90, .fini = cleanup)
{
    ts_daemon *d = &the_daemon;
    agent *a = &the_agent;
    start_cell(d, a, NULL, NULL, NULL);
    int pid, esc;
    char exitf[600];
    cs_id j = start_escaper(d, a, NULL, &pid, &esc, exitf, sizeof exitf);

    kill_job(d, j);
    bool gone = wait_dead(pid) && wait_dead(esc);
    if (!gone)
        dump_log("agent", a->log);
    cr_assert(gone, "after job.kill neither the task (%d) nor its escaped child (%d) lives",
              pid, esc);
    char *ex = wait_file(exitf);
    cr_assert_str_eq(ex, "signal 15\n", "the task's shell ended by the agent's SIGTERM");
    free(ex);
    teardown(a, d);
}

Test(agent, tasks_of_a_killed_agent_are_stopped_after_the_orphan_grace, .timeout = 120,
     .fini = cleanup)
{
    ts_daemon *d = &the_daemon;
    agent *a = &the_agent;
    /* A long heartbeat timeout: the machine stays up, so that the next
     * agent's report of the stop is taken. */
    start_cell(d, a, "--heartbeat-timeout", "120000",
               (const char *const[]){"--orphan-grace", "1000", NULL});
    int pid, esc;
    char exitf[600];
    cs_id j = start_escaper(d, a, NULL, &pid, &esc, exitf, sizeof exitf);

    ts_stop(a->pid, SIGKILL, 10000);
    a->pid = 0;
    bool gone = wait_dead(pid) && wait_dead(esc);
    cr_assert(gone, "the supervisor stopped the task (%d) and its escaped child (%d)", pid, esc);
    char *ex = wait_file(exitf);
    cr_assert_str_eq(ex, "signal 15\n", "SIGTERM first");
    free(ex);
    char orphaned[600];
    snprintf(orphaned, sizeof orphaned, "%.*sorphaned", (int)(strlen(exitf) - 4), exitf);
    char *why = wait_file(orphaned);
    cr_assert(strstr(why, "no word from the agent") && strstr(why, "--orphan-grace 1000 ms"),
              "orphaned says why: %s", why);
    free(why);

    /* The next agent adopts the ended task and reports it, with that reason. */
    agent_start(a, d->url, NULL);
    cs_msg r;
    const msgpack_object *t = wait_failed(d, a, j, &r);
    cr_assert(str_has(t, "reason", "stopped by its supervisor"), "the reason says who stopped it");
    teardown(a, d);
}

Test(agent, agent_restarted_within_the_orphan_grace_keeps_its_tasks, .timeout = 120,
     .fini = cleanup)
{
    ts_daemon *d = &the_daemon;
    agent *a = &the_agent;
    const uint32_t grace = 6000;
    const char *const flags[] = {"--orphan-grace", "6000", NULL};
    start_cell(d, a, NULL, NULL, flags);
    int pid, esc;
    char exitf[600], starts[600];
    cs_id j = start_escaper(d, a, "starts", &pid, &esc, exitf, sizeof exitf);

    ts_stop(a->pid, SIGKILL, 10000);
    a->pid = 0;
    int64_t killed_at = ts_now_ms();
    agent_start(a, d->url, flags);
    /* The new agent is in touch once its pid is in agent.alive: that must
     * come within the grace, or this run says nothing about adoption. */
    char alive_path[400];
    snprintf(alive_path, sizeof alive_path, "%.300s/agent.alive", a->work);
    int64_t end = ts_now_ms() + DEADLINE_MS, in_touch_at = 0;
    while (in_touch_at == 0 && ts_now_ms() < end) {
        char *s = slurp(alive_path);
        if (s && atoi(s) == a->pid)
            in_touch_at = ts_now_ms();
        free(s);
        if (in_touch_at == 0)
            ts_sleep_ms(10);
    }
    cr_assert(in_touch_at != 0, "the restarted agent writes agent.alive");
    cr_assert_lt(in_touch_at - killed_at, grace, "the restart took %lld ms, within the grace",
                 (long long)(in_touch_at - killed_at));
    cr_assert(wait_log(a->log, "adopting task"), "the restarted agent adopts the task");

    /* Past the grace the old agent's silence would have used up (and two
     * periods of the heartbeat file), the task still runs. */
    while (ts_now_ms() < killed_at + grace + 2 * 750 + 500) {
        cr_assert(alive(pid) && alive(esc), "the adopted task keeps running");
        ts_sleep_ms(100);
    }
    cr_assert(alive(pid) && alive(esc), "the adopted task keeps running");
    cr_assert_eq(access(exitf, F_OK), -1, "it has not ended");
    cr_assert_eq(count_state(d, j, "running"), 1, "the cell still has it running");
    cs_msg r;
    sandbox_path(a, task_of(d, j, 0, &r), "starts", starts, sizeof starts);
    char *lines = slurp(starts);
    cr_assert_str_eq(lines, "started\n", "the task started exactly once");
    free(lines);
    teardown(a, d);
}

/* ---- (5) simulated machines ----------------------------------------------------------- */

/* A cellstated and a simulator of `n` machines named prefix + index, each
 * of 1 core and 1024 MiB, with small timings and `extra` arguments (a
 * NULL-terminated list) last; returns once all of them are up. */
static void start_sim(ts_daemon *d, agent *a, const char *prefix, const char *n,
                      const char *const *extra)
{
    daemon_setup(d, NULL, NULL);
    agent_init(a, "sim");
    const char *argv[32] = {a->bin,  "--server", d->url,         "--simulate", n,
                            "--sim-prefix", prefix, "--cpu",     "1",          "--mem",
                            "1024",  "--heartbeat-ms", "300",    "--poll-wait-ms", "2000"};
    int k = 15;
    for (int i = 0; extra[i] && k < 31; i++)
        argv[k++] = extra[i];
    argv[k] = NULL;
    a->pid = ts_spawn((char *const *)argv, a->log);
    uint32_t want = (uint32_t)atoi(n);
    int64_t end = ts_now_ms() + DEADLINE_MS;
    while (machines_up(d, prefix) < want && ts_now_ms() < end)
        ts_sleep_ms(50);
    cr_assert_eq(machines_up(d, prefix), want, "%u simulated machines registered", want);
}

Test(agent, simulated_machines_register_and_finish_tasks, .timeout = 120, .fini = cleanup)
{
    ts_daemon *d = &the_daemon;
    agent *a = &the_agent;
    start_sim(d, a, "simt-", "20",
              (const char *const[]){"--sim-duration", "100-300", "--seed", "7", NULL});
    cr_assert(machine_state(d, "simt-00019", "up"), "named prefix + index");

    cs_id j = submit(d, "simjob", 60, "not run", 0, NULL);
    /* One job with its own run time. */
    cs_jobopts o;
    cs_jobopts_init(&o);
    o.duration_ms = 200;
    msgpack_sbuffer ob;
    msgpack_sbuffer_init(&ob);
    cs_error err = {0};
    cr_assert_eq(cs_jobopts_encode(&o, &ob, &err), CS_OK, "%s", err.msg);
    cs_id k = submit(d, "timed", 20, "not run", 0, &ob);
    msgpack_sbuffer_destroy(&ob);
    place(d, "simt-", 80);
    bool fin = wait_state(d, j, "finished", 60) && wait_state(d, k, "finished", 20);
    if (!fin) {
        dump_log("simulator", a->log);
        const char *states[] = {"pending", "assigned", "running", "finished", "failed",
                                "killed", "lost"};
        for (int i = 0; i < 7; i++)
            cr_log_error("%s: %u + %u", states[i], count_state(d, j, states[i]),
                         count_state(d, k, states[i]));
    }
    cr_assert(fin, "every simulated task finished");
    cs_msg r;
    for (uint32_t i = 0; i < 60; i += 7)
        cr_assert_eq(get_u64(task_of(d, j, i, &r), "attempts"), 1, "one placement each");

    int st = ts_stop(a->pid, SIGTERM, 10000);
    a->pid = 0;
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the simulator exits 0 (status %d)", st);
    teardown(a, d);
}

/* --taint reaches machine.register: every simulated machine carries the
 * taints, sorted, as the cell hands them back. */
Test(agent, taint_flags_reach_the_cell, .timeout = 120, .fini = cleanup)
{
    ts_daemon *d = &the_daemon;
    agent *a = &the_agent;
    start_sim(d, a, "taint-", "2",
              (const char *const[]){"--taint", "spot:PreferNoSchedule", "--taint",
                                    "dedicated=gpu:NoSchedule", NULL});
    cs_msg r;
    const msgpack_object *ml = list_all(d, CS_MSG_GET_MACHINES, "machines", &r);
    cs_arena ar;
    cs_arena_init(&ar);
    uint32_t seen = 0;
    for (uint32_t i = 0; i < ml->via.array.size; i++) {
        cs_machine m;
        cs_error err = {0};
        cr_assert_eq(cs_unpack_machine(&ml->via.array.ptr[i], &ar, &m, &err), CS_OK, "%s",
                     err.msg);
        if (strncmp(m.name, "taint-", 6) != 0)
            continue;
        seen++;
        cr_assert_eq(m.ntaints, 2, "%s", m.name);
        cr_assert_str_eq(m.taints[0].key, "dedicated");
        cr_assert_str_eq(m.taints[0].value, "gpu");
        cr_assert_eq(m.taints[0].effect, CS_TAINT_NO_SCHEDULE);
        cr_assert_str_eq(m.taints[1].key, "spot");
        cr_assert_str_eq(m.taints[1].value, "");
        cr_assert_eq(m.taints[1].effect, CS_TAINT_PREFER_NO_SCHEDULE);
    }
    cs_arena_free(&ar);
    cr_assert_eq(seen, 2);
    teardown(a, d);
}

/* ---- (6) bad input --------------------------------------------------------------------- */

/* Run cell-agent with the given arguments and expect exit status 2 and
 * `message` in its output. */
static void expect_refused(const char *const *args, const char *message)
{
    agent *a = &the_agent;
    agent_init(a, "x");
    const char *argv[14] = {a->bin, "--workdir", a->work};
    int n = 3;
    for (int i = 0; args[i] && n < 13; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    int pid = ts_spawn((char *const *)argv, a->log);
    int st = ts_stop(pid, 0, 10000);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "%s: exit status 2 (got %d)", args[0], st);
    cr_assert(log_has(a->log, message), "%s: the message says '%s'", args[0], message);
    cr_assert(access(a->work, F_OK) != 0, "%s: refused before touching the disk", args[0]);
    teardown(a, NULL);
}

Test(agent, flag_errors_exit_non_zero_with_a_message, .timeout = 60, .fini = cleanup)
{
    expect_refused((const char *const[]){"--bogus", "1", NULL}, "unknown flag --bogus");
    expect_refused((const char *const[]){"--attr", "rack", NULL}, "KEY=VALUE");
    expect_refused((const char *const[]){"--attr", "=r1", NULL}, "KEY=VALUE");
    expect_refused((const char *const[]){"--attr", "a=1", "--attr", "a=2", NULL}, "given twice");
    expect_refused((const char *const[]){"--cpu", "two", "--mem", "1", "--disk", "1", NULL},
                   "not a number of cores");
    expect_refused((const char *const[]){"--ports", "5-3", NULL}, "LO-HI");
    expect_refused((const char *const[]){"--simulate", "0", NULL}, "--simulate");
    expect_refused((const char *const[]){"--sim-duration", "9-1", NULL}, "LO-HI");
    expect_refused((const char *const[]){"--heartbeat-ms", NULL}, "needs a value");
    expect_refused((const char *const[]){"--orphan-grace", "5", NULL},
                   "--orphan-grace: '5' is not a number in 100..");
    expect_refused((const char *const[]){"--taint", "k=v", NULL}, "key=value:Effect");
    expect_refused((const char *const[]){"--taint", "k=v:NoScheduel", NULL},
                   "is not NoSchedule, PreferNoSchedule or NoExecute");
    expect_refused((const char *const[]){"--taint", "k:NoSchedule", "--taint", "k=x:NoSchedule",
                                         NULL},
                   "k:NoSchedule given twice");
}

Test(agent, unreachable_server_is_retried_until_it_answers, .timeout = 90, .fini = cleanup)
{
    ts_daemon *d = &the_daemon;
    daemon_setup(d, NULL, NULL);
    cr_assert_eq(ts_daemon_stop(d), 0);
    agent *a = &the_agent;
    agent_init(a, "m1");
    agent_start(a, d->url, NULL);
    cr_assert(wait_log(a->log, "cannot reach cellstated"), "the agent says it cannot reach it");
    cr_assert(alive(a->pid), "and keeps running");
    ts_daemon_start(d, NULL, NULL);
    int64_t end = ts_now_ms() + DEADLINE_MS;
    while (!machine_state(d, "m1", "up") && ts_now_ms() < end)
        ts_sleep_ms(50);
    cr_assert(machine_state(d, "m1", "up"), "it registers once the server is back");
    cr_assert(wait_log(a->log, "cellstated answers again"));
    teardown(a, d);
}

/* ---- (7) health checks ------------------------------------------------------------------ */

/* A tiny HTTP server on 127.0.0.1:port, on a thread of the test: it answers
 * every request with `status` and remembers the first request line. */
typedef struct http_srv {
    int fd;
    pthread_t thread;
    bool running;
    atomic_bool stop;
    atomic_int status;
    atomic_int requests;
    pthread_mutex_t mu;
    char first[256]; /* guarded by mu */
} http_srv;

static http_srv the_http;

static void *http_main(void *arg)
{
    http_srv *h = arg;
    while (!atomic_load(&h->stop)) {
        struct pollfd p = {.fd = h->fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int c = accept(h->fd, NULL, NULL);
        if (c < 0)
            continue;
        char req[1024];
        size_t n = 0;
        struct pollfd q = {.fd = c, .events = POLLIN};
        while (n < sizeof req - 1 && poll(&q, 1, 2000) > 0) {
            ssize_t got = recv(c, req + n, sizeof req - 1 - n, 0);
            if (got <= 0)
                break;
            n += (size_t)got;
            req[n] = '\0';
            if (strstr(req, "\r\n\r\n"))
                break;
        }
        req[n] = '\0';
        pthread_mutex_lock(&h->mu);
        if (h->first[0] == '\0')
            snprintf(h->first, sizeof h->first, "%.*s", (int)strcspn(req, "\r\n"), req);
        pthread_mutex_unlock(&h->mu);
        char ans[128];
        int k = snprintf(ans, sizeof ans,
                         "HTTP/1.1 %d Whatever\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                         atomic_load(&h->status));
        ssize_t w = send(c, ans, (size_t)k, MSG_NOSIGNAL);
        (void)w;
        close(c);
        atomic_fetch_add(&h->requests, 1);
    }
    return NULL;
}

static void http_start(http_srv *h, int port, int status)
{
    memset(h, 0, sizeof *h);
    pthread_mutex_init(&h->mu, NULL);
    atomic_store(&h->status, status);
    h->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(h->fd >= 0);
    int one = 1;
    setsockopt(h->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(h->fd, (struct sockaddr *)&a, sizeof a), 0, "bind %d: %s", port,
                 strerror(errno));
    cr_assert_eq(listen(h->fd, 16), 0);
    cr_assert_eq(pthread_create(&h->thread, NULL, http_main, h), 0);
    h->running = true;
}

static void http_stop(http_srv *h)
{
    if (!h->running)
        return;
    atomic_store(&h->stop, true);
    pthread_join(h->thread, NULL);
    close(h->fd);
    pthread_mutex_destroy(&h->mu);
    h->running = false;
}

static void health_cleanup(void)
{
    http_stop(&the_http);
    cleanup();
}

/* A check with small timings (grace, interval, timeout in ms). */
static cs_health check_of(uint8_t proto, const char *command, const char *path, uint32_t grace,
                          uint32_t interval, uint32_t timeout, uint32_t max_failures)
{
    cs_health h;
    cs_health_init(&h, proto);
    h.command = command;
    h.path = path;
    h.port_index = 0;
    h.grace_ms = grace;
    h.interval_ms = interval;
    h.timeout_ms = timeout;
    h.max_failures = max_failures;
    return h;
}

/* Submit job `name` (one task, one port, running `cmd`) with check `c`
 * and up to one env variable (key NULL for none). */
static cs_id submit_checked(ts_daemon *d, const char *name, const char *cmd, cs_health c,
                            const char *key, const char *value)
{
    cs_jobopts o;
    cs_jobopts_init(&o);
    o.health = &c;
    o.nhealth = 1;
    cs_attr env[] = {{key, value}};
    if (key != NULL) {
        o.env = env;
        o.nenv = 1;
    }
    msgpack_sbuffer ob;
    msgpack_sbuffer_init(&ob);
    cs_error err = {0};
    cr_assert_eq(cs_jobopts_encode(&o, &ob, &err), CS_OK, "%s", err.msg);
    cs_id j = submit(d, name, 1, cmd, 1, &ob);
    msgpack_sbuffer_destroy(&ob);
    return j;
}

/* Wait until task 0 of the job has `health` in the cell. */
static bool wait_health(ts_daemon *d, cs_id job, const char *health)
{
    int64_t end = ts_now_ms() + DEADLINE_MS;
    while (ts_now_ms() < end) {
        cs_msg r;
        if (str_is(task_of(d, job, 0, &r), "health", health))
            return true;
        ts_sleep_ms(50);
    }
    return false;
}

/* Task 0 of the job failed with exactly `reason`. */
static void expect_failed(ts_daemon *d, const agent *a, cs_id job, const char *reason)
{
    cs_msg r;
    const msgpack_object *t = wait_failed(d, a, job, &r);
    const msgpack_object *why = cs_obj_get(t, "reason");
    cr_assert(str_is(t, "reason", reason), "reason is '%.*s', expected '%s'",
              why ? (int)why->via.str.size : 0, why ? why->via.str.ptr : "", reason);
}

/* The path of a file in task 0's sandbox (where its checks run too). */
static void task0_file(ts_daemon *d, const agent *a, cs_id job, const char *file, char *out,
                       size_t size)
{
    cs_msg r;
    sandbox_path(a, task_of(d, job, 0, &r), file, out, size);
}

/* An agent whose machine has exactly one dynamic port, so that the test
 * knows the task's PORT0 before it is placed. */
static int start_cell_one_port(ts_daemon *d, agent *a)
{
    daemon_setup(d, NULL, NULL);
    int port = ts_free_port();
    static char range[32];
    snprintf(range, sizeof range, "%d-%d", port, port);
    agent_init(a, "m1");
    agent_start(a, d->url, (const char *const[]){"--ports", range, NULL});
    return port;
}

/* A cell with agent m1 (default flags) running job `name`: one task of
 * `cmd` with check `c` and up to one env variable (key NULL for none). */
static cs_id start_checked(ts_daemon *d, agent *a, const char *name, const char *cmd,
                           cs_health c, const char *key, const char *value)
{
    start_cell(d, a, NULL, NULL, NULL);
    cs_id j = submit_checked(d, name, cmd, c, key, value);
    place(d, "m1", 1);
    return j;
}

static void touch(const char *path)
{
    FILE *f = fopen(path, "w");
    cr_assert(f != NULL, "%s: %s", path, strerror(errno));
    fclose(f);
}

Test(agent, http_check_reports_healthy_then_unhealthy, .timeout = 90, .fini = health_cleanup)
{
    ts_daemon *d = &the_daemon;
    agent *a = &the_agent;
    int port = start_cell_one_port(d, a);
    http_start(&the_http, port, 200);
    cs_id j = submit_checked(d, "web", "exec sleep 300",
                             check_of(CS_HEALTH_HTTP, "", "/health", 10000, 150, 1000, 0), NULL,
                             NULL);
    place(d, "m1", 1);
    bool healthy = wait_health(d, j, "healthy");
    if (!healthy)
        dump_log("agent", a->log);
    cr_assert(healthy, "a 200 answer makes the task healthy in the cell");
    pthread_mutex_lock(&the_http.mu);
    cr_assert_str_eq(the_http.first, "GET /health HTTP/1.1", "the check asks for its path");
    pthread_mutex_unlock(&the_http.mu);

    /* 503 is a failure, counted now that the first success ended the grace
     * period; max_failures 0 never kills. */
    atomic_store(&the_http.status, 503);
    bool sick = wait_health(d, j, "unhealthy");
    if (!sick)
        dump_log("agent", a->log);
    cr_assert(sick, "a 503 answer makes it unhealthy");
    cr_assert(wait_log(a->log, "HTTP 503"), "the agent says why");
    atomic_store(&the_http.status, 302);
    cr_assert(wait_health(d, j, "healthy"), "a 3xx answer is healthy again");
    cr_assert_eq(count_state(d, j, "running"), 1, "max_failures 0: never killed");
    teardown(a, d);
}

Test(agent, command_check_follows_a_file_and_resumes_after_restart, .timeout = 120,
     .fini = cleanup)
{
    ts_daemon *d = &the_daemon;
    agent *a = &the_agent;
    /* The task's environment (its job's env) reaches the check. */
    cs_id j = start_checked(d, a, "filecheck", "exec sleep 300",
                            check_of(CS_HEALTH_COMMAND, "test -f ok && test \"$HC_MODE\" = on",
                                     "", 0, 100, 2000, 0),
                            "HC_MODE", "on");
    cr_assert(wait_state(d, j, "running", 1));
    cr_assert(wait_health(d, j, "unhealthy"), "no file: unhealthy (no grace period)");

    char ok[600];
    task0_file(d, a, j, "ok", ok, sizeof ok);
    touch(ok);
    cr_assert(wait_health(d, j, "healthy"), "the file is there: healthy");
    cr_assert_eq(unlink(ok), 0);
    cr_assert(wait_health(d, j, "unhealthy"), "removed: unhealthy again");

    /* A restarted agent resumes the checks of the task it adopts. */
    ts_stop(a->pid, SIGKILL, 10000);
    a->pid = 0;
    touch(ok);
    agent_start(a, d->url, NULL);
    bool healthy = wait_health(d, j, "healthy");
    if (!healthy)
        dump_log("agent", a->log);
    cr_assert(healthy, "the new agent runs the check and reports it healthy");
    cr_assert_eq(count_state(d, j, "running"), 1);
    teardown(a, d);
}

Test(agent, tcp_check_on_a_closed_port_kills_the_task, .timeout = 90, .fini = cleanup)
{
    ts_daemon *d = &the_daemon;
    agent *a = &the_agent;
    int port = start_cell_one_port(d, a);
    cs_id j = submit_checked(d, "deaf", "echo $$ > pid.txt; exec sleep 300",
                             check_of(CS_HEALTH_TCP, "", "", 0, 100, 1000, 3), NULL, NULL);
    place(d, "m1", 1);
    char exitf[600];
    int pid = task_pid(d, a, j, exitf, sizeof exitf);
    char reason[200];
    snprintf(reason, sizeof reason,
             "health check 1 (TCP on port %d) failed 3 consecutive times: connection refused",
             port);
    expect_failed(d, a, j, reason);
    cs_msg r;
    cr_assert_eq(get_i64(task_of(d, j, 0, &r), "exit_code"), 128 + SIGTERM,
                 "the exit code is how the process ended (SIGTERM)");
    cr_assert(wait_dead(pid), "the task's process is gone");
    cr_assert(alive(a->pid), "the agent keeps serving");
    teardown(a, d);
}

Test(agent, failures_in_the_grace_period_do_not_count, .timeout = 90, .fini = cleanup)
{
    ts_daemon *d = &the_daemon;
    agent *a = &the_agent;
    /* max_failures 1: the first counted failure kills. */
    cs_id j = start_checked(d, a, "slowstart", "exec sleep 300",
                            check_of(CS_HEALTH_COMMAND, "echo x >> runs; test -f ok", "", 600000,
                                     100, 2000, 1),
                            NULL, NULL);
    char runs[600], ok[600];
    task0_file(d, a, j, "runs", runs, sizeof runs);
    task0_file(d, a, j, "ok", ok, sizeof ok);
    /* Five failed runs, all within the grace period. */
    int64_t end = ts_now_ms() + DEADLINE_MS;
    int n = 0;
    while (n < 5 && ts_now_ms() < end && count_state(d, j, "failed") == 0) {
        char *s = slurp(runs);
        n = 0;
        for (char *p = s; p && *p; p++)
            n += *p == '\n';
        free(s);
        ts_sleep_ms(50);
    }
    cr_assert(n >= 5, "the check ran (%d times)", n);
    cs_msg r;
    cr_assert_eq(count_state(d, j, "running"), 1, "failures in the grace period do not kill");
    cr_assert(str_is(task_of(d, j, 0, &r), "health", "unknown"), "nor make it unhealthy");

    /* The first success ends the grace period: the next failure counts. */
    touch(ok);
    cr_assert(wait_health(d, j, "healthy"));
    cr_assert_eq(unlink(ok), 0);
    expect_failed(d, a, j,
                  "health check 1 (COMMAND echo x >> runs; test -f ok) failed 1 consecutive "
                  "time: exited with code 1");
    teardown(a, d);
}

Test(agent, a_command_check_that_outlives_its_timeout_fails, .timeout = 90, .fini = cleanup)
{
    ts_daemon *d = &the_daemon;
    agent *a = &the_agent;
    cs_id j = start_checked(d, a, "hung", "exec sleep 300",
                            check_of(CS_HEALTH_COMMAND, "echo $$ >> checks; exec sleep 10", "", 0,
                                     100, 200, 2),
                            NULL, NULL);
    /* Two runs of 10 s each would outlast the deadline: only the timeout
     * makes this quick. */
    expect_failed(d, a, j,
                  "health check 1 (COMMAND echo $$ >> checks; exec sleep 10) failed 2 "
                  "consecutive times: timed out after 200 ms");
    char checks[600];
    task0_file(d, a, j, "checks", checks, sizeof checks);
    char *s = slurp(checks);
    cr_assert(s != NULL, "the check ran");
    int n = 0;
    for (char *p = strtok(s, "\n"); p; p = strtok(NULL, "\n"), n++)
        cr_assert(wait_dead(atoi(p)), "the timed-out check %s was killed", p);
    free(s);
    cr_assert(n >= 2, "each run started a check (%d)", n);
    teardown(a, d);
}

Test(agent, simulated_tasks_report_health, .timeout = 120, .fini = cleanup)
{
    ts_daemon *d = &the_daemon;
    agent *a = &the_agent;
    start_sim(d, a, "simh-", "2",
              (const char *const[]){"--sim-duration", "60000", "--ports", "31000-31000", NULL});

    cs_id well = submit_checked(d, "simwell", "not run",
                                check_of(CS_HEALTH_HTTP, "", "/", 300000, 60000, 20000, 3), NULL,
                                NULL);
    cs_id sick = submit_checked(d, "simsick", "not run",
                                check_of(CS_HEALTH_TCP, "", "", 0, 100, 1000, 2),
                                "CELL_SIM_UNHEALTHY", "1");
    place(d, "simh-", 2);
    bool healthy = wait_health(d, well, "healthy");
    if (!healthy)
        dump_log("simulator", a->log);
    cr_assert(healthy, "a simulated task with checks is reported healthy");
    /* Each machine has the one port 31000, so that the reason is known. */
    expect_failed(d, a, sick,
                  "health check 1 (TCP on port 31000) failed 2 consecutive times: simulated "
                  "failure (CELL_SIM_UNHEALTHY=1)");
    cr_assert_eq(count_state(d, well, "running"), 1, "the healthy one keeps running");
    teardown(a, d);
}

/* ---- (8) poll reply forms, against a scripted server ------------------------------------ */

/* A server on a thread of the test answers the agent's polls with replies
 * built here: the compact form (protocol.md §5.9, "jobs": "once"), a compact
 * reply with an entry naming a job it does not carry, and the default form a
 * server that ignores the request's "jobs" sends. Tasks are real processes
 * whose exit code is their job's command, so a report shows which job the
 * agent decoded for which task. */
#define MACHINE_ID 5
#define JOB_A 1
#define JOB_B 2
#define JOB_ABSENT 99

/* One final report the server took. */
typedef struct report {
    cs_id task;
    bool failed;
    int64_t exit_code;
} report;

/* FORM_SHORT, FORM_SHORT_UNKNOWN: short entries ("known": "short"),
 * pack_short_reply. */
typedef enum form {
    FORM_COMPACT,
    FORM_COMPACT_MISSING,
    FORM_DEFAULT,
    FORM_SHORT,
    FORM_SHORT_UNKNOWN
} form;

typedef struct fake {
    ts_rep *rep;     /* NULL: stopped */
    const char *url; /* ts_rep_url(rep) */
    form form;
    pthread_mutex_t mu; /* guards what follows */
    bool asked_once;    /* a poll asked for "jobs": "once" */
    bool asked_short;   /* a poll asked for "known": "short" */
    uint32_t polls_zero;  /* polls with since 0 */
    uint32_t shorts_sent; /* replies with short entries */
    uint32_t zero_after_short; /* polls with since 0 after a reply with short entries */
    uint64_t version;     /* of the last reply */
    report reports[16];
    uint32_t nreports;
} fake;

static void pack_job(msgpack_packer *pk, cs_id id, const char *name, const char *cmd)
{
    cs_job j = {.id = id, .name = name, .cmd = cmd, .count = 1, .note = "",
                .res = {100, 64, 0}};
    cr_assert_eq(cs_pack_job(pk, &j), CS_OK);
}

static void pack_task(msgpack_packer *pk, cs_id job)
{
    cs_task t = {.id = cs_task_id(job, 0), .job = job, .state = CS_TASK_ASSIGNED,
                 .machine = MACHINE_ID, .res = {100, 64, 0}, .attempts = 1, .reason = ""};
    cr_assert_eq(cs_pack_task(pk, &t), CS_OK);
}

/* The poll reply of f->form: tasks of jobs A ("exit 3") and B ("exit 4"),
 * and in FORM_COMPACT_MISSING a third entry naming a job not in "jobs". */
static void pack_poll_reply(const fake *f, msgpack_packer *pk)
{
    bool compact = f->form != FORM_DEFAULT;
    uint32_t n = f->form == FORM_COMPACT_MISSING ? 3 : 2;
    msgpack_pack_map(pk, compact ? 3 : 2);
    cs_pack_kv_u64(pk, "version", 2);
    if (compact) {
        cs_pack_str(pk, "jobs");
        msgpack_pack_array(pk, 2);
        pack_job(pk, JOB_A, "a", "exit 3");
        pack_job(pk, JOB_B, "b", "exit 4");
    }
    cs_pack_str(pk, "tasks");
    msgpack_pack_array(pk, n);
    const cs_id jobs[3] = {JOB_A, JOB_B, JOB_ABSENT};
    for (uint32_t i = 0; i < n; i++) {
        msgpack_pack_map(pk, 2);
        cs_pack_str(pk, "task");
        pack_task(pk, jobs[i]);
        cs_pack_str(pk, "job");
        if (compact)
            msgpack_pack_uint64(pk, jobs[i]);
        else
            pack_job(pk, jobs[i], jobs[i] == JOB_A ? "a" : "b",
                     jobs[i] == JOB_A ? "exit 3" : "exit 4");
    }
}

/* The short forms' replies, a new version each. FORM_SHORT: job A is
 * "sleep 30"; since 0 gets its task in full, any other since a short entry
 * [id, 1] for it. FORM_SHORT_UNKNOWN: the same, but after the first since-0
 * reply the list also holds B's task ("exit 4"): short — an entry the agent
 * cannot have — until it asks with since 0 again, then in full. */
static void pack_short_reply(fake *f, uint64_t since, msgpack_packer *pk)
{
    pthread_mutex_lock(&f->mu);
    bool full = since == 0, with_b = f->form == FORM_SHORT_UNKNOWN && f->polls_zero > 1;
    if (f->form == FORM_SHORT_UNKNOWN && !full)
        with_b = true;
    if (!full)
        f->shorts_sent++;
    uint64_t version = ++f->version + 1;
    pthread_mutex_unlock(&f->mu);
    msgpack_pack_map(pk, 3);
    cs_pack_kv_u64(pk, "version", version);
    cs_pack_str(pk, "jobs");
    msgpack_pack_array(pk, full ? 1 + with_b : 0);
    if (full)
        pack_job(pk, JOB_A, "a", "sleep 30");
    if (full && with_b)
        pack_job(pk, JOB_B, "b", "exit 4");
    cs_pack_str(pk, "tasks");
    msgpack_pack_array(pk, 1 + with_b);
    for (cs_id job = JOB_A; job <= (with_b ? JOB_B : JOB_A); job++) {
        if (full) {
            msgpack_pack_map(pk, 2);
            cs_pack_str(pk, "task");
            pack_task(pk, job);
            cs_pack_kv_u64(pk, "job", job);
        } else {
            msgpack_pack_array(pk, 2);
            msgpack_pack_uint64(pk, cs_task_id(job, 0));
            msgpack_pack_uint64(pk, 1);
        }
    }
}

static bool body_str_is(const msgpack_object *o, const char *key, const char *s)
{
    const msgpack_object *v = cs_obj_get(o, key);
    return v && v->type == MSGPACK_OBJECT_STR && v->via.str.size == strlen(s) &&
           memcmp(v->via.str.ptr, s, v->via.str.size) == 0;
}

/* Record the final reports of a task.status body (batch or single form)
 * and pack the reply's body. */
static void take_reports(fake *f, const msgpack_object *req, msgpack_packer *pk)
{
    const msgpack_object *list = cs_obj_get(req, "reports");
    uint32_t n = list ? list->via.array.size : 1;
    msgpack_pack_map(pk, list ? 2 : 1);
    cs_pack_kv_u64(pk, "version", 3);
    if (list) {
        cs_pack_str(pk, "results");
        msgpack_pack_array(pk, n);
    }
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *r = list ? &list->via.array.ptr[i] : req;
        const msgpack_object *st = cs_obj_get(r, "state");
        uint64_t task = 0;
        int64_t code = 0;
        cs_error ignore;
        cs_obj_u64(r, "task", true, UINT64_MAX, &task, &ignore);
        cs_obj_i64(r, "exit_code", false, INT64_MIN, INT64_MAX, &code, &ignore);
        bool running = st && st->type == MSGPACK_OBJECT_STR && st->via.str.size == 7 &&
                       memcmp(st->via.str.ptr, "running", 7) == 0;
        pthread_mutex_lock(&f->mu);
        if (!running && f->nreports < 16)
            f->reports[f->nreports++] =
                (report){task, st && st->via.str.size == 6 && !memcmp(st->via.str.ptr, "failed", 6),
                         code};
        pthread_mutex_unlock(&f->mu);
        if (list) {
            msgpack_pack_map(pk, 2);
            cs_pack_kv_u64(pk, "code", CS_OK);
            cs_pack_kv_str(pk, "message", "");
        }
    }
}

/* The cell as this test plays it (tests/support.h ts_rep calls it). */
static void answer(void *ctx, const cs_msg *m, msgpack_sbuffer *b)
{
    fake *f = ctx;
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, msgpack_sbuffer_write);
    cs_error err = {0};
    cs_msg_begin(&pk, m->type, m->req);
    uint64_t since = 0;
    switch (m->type) {
    case CS_MSG_MACHINE_REGISTER:
        msgpack_pack_map(&pk, 2);
        cs_pack_kv_u64(&pk, "id", MACHINE_ID);
        cs_pack_kv_u64(&pk, "version", 1);
        break;
    case CS_MSG_HEARTBEAT:
        msgpack_pack_map(&pk, 2);
        cs_pack_kv_str(&pk, "state", "up");
        cs_pack_kv_u64(&pk, "version", 1);
        break;
    case CS_MSG_POLL:
        cs_obj_u64(&m->body, "since", false, UINT64_MAX, &since, &err);
        pthread_mutex_lock(&f->mu);
        f->asked_once |= body_str_is(&m->body, "jobs", "once");
        f->asked_short |= body_str_is(&m->body, "known", "short");
        f->polls_zero += since == 0;
        f->zero_after_short += since == 0 && f->shorts_sent > 0;
        pthread_mutex_unlock(&f->mu);
        if (since != 0)
            ts_sleep_ms(50); /* the same list again: keep the agent from spinning */
        if (f->form == FORM_SHORT || f->form == FORM_SHORT_UNKNOWN)
            pack_short_reply(f, since, &pk);
        else
            pack_poll_reply(f, &pk);
        break;
    case CS_MSG_TASK_STATUS:
        take_reports(f, &m->body, &pk);
        break;
    default:
        b->size = 0;
        cs_msg_error(b, m->req, CS_EPROTO, "not served by this test");
    }
}

static void fake_start(fake *f, form fm)
{
    memset(f, 0, sizeof *f);
    f->form = fm;
    pthread_mutex_init(&f->mu, NULL);
    f->rep = ts_rep_start(answer, f);
    f->url = ts_rep_url(f->rep);
}

static void fake_stop(fake *f)
{
    ts_rep_stop(f->rep);
    f->rep = NULL;
    pthread_mutex_destroy(&f->mu);
}

/* Wait until the counter `c` of f (read under f->mu) reaches `n`; its value. */
static uint32_t wait_count(fake *f, const uint32_t *c, uint32_t n)
{
    int64_t end = ts_now_ms() + DEADLINE_MS;
    for (;;) {
        pthread_mutex_lock(&f->mu);
        uint32_t got = *c;
        pthread_mutex_unlock(&f->mu);
        if (got >= n || ts_now_ms() >= end)
            return got;
        ts_sleep_ms(20);
    }
}

/* Wait until the server has taken `n` final reports; a copy of them. */
static uint32_t wait_reports(fake *f, uint32_t n, report *out)
{
    wait_count(f, &f->nreports, n);
    pthread_mutex_lock(&f->mu);
    uint32_t got = f->nreports;
    memcpy(out, f->reports, sizeof f->reports);
    pthread_mutex_unlock(&f->mu);
    return got;
}

static const report *report_of(const report *r, uint32_t n, cs_id job)
{
    for (uint32_t i = 0; i < n; i++)
        if (r[i].task == cs_task_id(job, 0))
            return &r[i];
    return NULL;
}

static fake the_fake;

static void poll_cleanup(void)
{
    cleanup();
    if (the_fake.rep != NULL)
        fake_stop(&the_fake);
}

/* A real agent (machine "pm") against the scripted server answering its
 * polls in form `fm`; then up to `want` final reports, copied to r (the
 * agent's log is shown when fewer came). */
static uint32_t agent_against(form fm, uint32_t want, report *r)
{
    fake_start(&the_fake, fm);
    agent_init(&the_agent, "pm");
    agent_start(&the_agent, the_fake.url, NULL);
    uint32_t n = want ? wait_reports(&the_fake, want, r) : 0;
    if (n < want)
        dump_log("agent", the_agent.log);
    return n;
}

/* Tasks of A and B ran their own job's command: each ended with its exit
 * code, and nothing else was reported. */
static void run_against(form fm)
{
    report r[16];
    uint32_t n = agent_against(fm, 2, r);
    cr_assert_eq(n, 2, "two final reports (got %u)", n);
    const report *ra = report_of(r, n, JOB_A), *rb = report_of(r, n, JOB_B);
    cr_assert(ra && ra->failed && ra->exit_code == 3, "job a's task ran 'exit 3'");
    cr_assert(rb && rb->failed && rb->exit_code == 4, "job b's task ran 'exit 4'");
}

Test(agent, compact_poll_reply_runs_each_task_with_its_job, .timeout = 60, .fini = poll_cleanup)
{
    run_against(FORM_COMPACT);
    pthread_mutex_lock(&the_fake.mu);
    bool once = the_fake.asked_once, shrt = the_fake.asked_short;
    pthread_mutex_unlock(&the_fake.mu);
    cr_assert(once, "the agent asks for \"jobs\": \"once\"");
    /* This server ignores "known": every entry is full, and that works. */
    cr_assert(shrt, "the agent asks for \"known\": \"short\"");
}

Test(agent, default_poll_reply_still_works, .timeout = 60, .fini = poll_cleanup)
{
    run_against(FORM_DEFAULT);
}

Test(agent, poll_entry_naming_a_job_not_in_the_reply_is_ignored, .timeout = 60,
     .fini = poll_cleanup)
{
    run_against(FORM_COMPACT_MISSING);
    /* One reply carried all three entries, and the agent logs each start
     * before it reports anything: the third entry's reason is logged by
     * now, and had its task been started, that would be logged too. */
    char *log = slurp(the_agent.log);
    char started[64];
    snprintf(started, sizeof started, "task %llu attempt",
             (unsigned long long)cs_task_id(JOB_ABSENT, 0));
    cr_assert(log && strstr(log, "poll reply entry 2 ignored: task ") &&
                  strstr(log, "job 99 is not in the reply's 'jobs'"),
              "the agent says why: %s", log ? log : "(no log)");
    cr_assert_null(strstr(log, started), "the ignored entry's task was not started: %s", log);
    free(log);
}

static uint32_t count_in(const char *s, const char *part)
{
    uint32_t n = 0;
    for (const char *p = s; p && (p = strstr(p, part)) != NULL; p += strlen(part))
        n++;
    return n;
}

/* A short entry [id, attempts] for a task the agent runs keeps it: not
 * started again, not revoked, nothing logged as ignored, and the polls go
 * on from the reply's version (no since 0 after the first). */
Test(agent, short_poll_entry_keeps_a_running_task, .timeout = 60, .fini = poll_cleanup)
{
    fake *f = &the_fake;
    agent *a = &the_agent;
    agent_against(FORM_SHORT, 0, NULL);
    bool got = wait_count(f, &f->shorts_sent, 4) >= 4;
    char *log = slurp(a->log);
    cr_assert(got, "4 short replies served: %s", log ? log : "(no log)");
    char started[64];
    snprintf(started, sizeof started, "task %llu attempt 1 (a/0): started",
             (unsigned long long)cs_task_id(JOB_A, 0));
    cr_assert(log && count_in(log, started) == 1, "A started once: %s", log ? log : "");
    cr_assert_null(strstr(log, "killing it"), "A was not revoked: %s", log);
    cr_assert_null(strstr(log, "ignored"), "no entry was ignored: %s", log);
    free(log);
    pthread_mutex_lock(&f->mu);
    uint32_t zero = f->polls_zero;
    bool shrt = f->asked_short;
    pthread_mutex_unlock(&f->mu);
    cr_assert(shrt, "the agent asks for \"known\": \"short\"");
    cr_assert_eq(zero, 1, "only the first poll had since 0 (%u did)", zero);
}

/* A short entry for a (task, attempt) the agent does not have is logged
 * and ignored (the reply revokes nothing: A keeps running), and the next
 * poll asks with since 0, whose full entries start the task. */
Test(agent, short_poll_entry_for_an_unknown_task_asks_again_in_full, .timeout = 60,
     .fini = poll_cleanup)
{
    fake *f = &the_fake;
    agent *a = &the_agent;
    report r[16];
    uint32_t n = agent_against(FORM_SHORT_UNKNOWN, 1, r);
    cr_assert_eq(n, 1, "B's final report (got %u)", n);
    cr_assert(r[0].task == cs_task_id(JOB_B, 0) && r[0].failed && r[0].exit_code == 4,
              "B ran 'exit 4' once its full entry came");
    pthread_mutex_lock(&f->mu);
    uint32_t again = f->zero_after_short;
    pthread_mutex_unlock(&f->mu);
    cr_assert_geq(again, 1, "a poll with since 0 followed the unknown short entry");
    char *log = slurp(a->log), want[128];
    snprintf(want, sizeof want, "short entry for task %llu attempt 1, which this machine does not "
             "have", (unsigned long long)cs_task_id(JOB_B, 0));
    cr_assert(log && strstr(log, "poll reply entry 1 ignored: ") && strstr(log, want),
              "the agent says why: %s", log ? log : "(no log)");
    cr_assert_null(strstr(log, "killing it"), "A was not revoked: %s", log);
    free(log);
}

/* ---- cellctl logs: a task's output from its agent ------------------------------------ */

/* Run cellctl against d with `args` (NULL-terminated); its standard output
 * and error go to the file `out`, replaced. Returns its exit status. */
static int cellctl_to(ts_daemon *d, const char *out, const char *const *args)
{
    char bin[256];
    ts_bin("cellctl", bin, sizeof bin);
    const char *argv[20] = {bin, "--server", d->url};
    int n = 3;
    for (int i = 0; args[i] != NULL && n < 19; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    unlink(out);
    int pid = ts_spawn((char *const *)argv, out), st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* cellctl's output for `args`, expecting exit status `status`; the
 * caller frees it. */
static char *cellctl_out(ts_daemon *d, const agent *a, int status, const char *const *args)
{
    char out[1200];
    snprintf(out, sizeof out, "%s/cellctl.out", a->dir);
    int st = cellctl_to(d, out, args);
    char *s = slurp(out);
    cr_assert(s != NULL);
    cr_assert_eq(st, status, "cellctl %s %s: status %d: %s", args[0], args[1], st, s);
    return s;
}

/* Wait until `cellctl ARGS` prints exactly `want`. */
static void wait_output(ts_daemon *d, const agent *a, const char *const *args, const char *want)
{
    int64_t end = ts_now_ms() + DEADLINE_MS;
    char *s = NULL;
    while (ts_now_ms() < end) {
        free(s);
        char out[1200];
        snprintf(out, sizeof out, "%s/cellctl.out", a->dir);
        int st = cellctl_to(d, out, args);
        s = slurp(out);
        if (st == 0 && s != NULL && strcmp(s, want) == 0) {
            free(s);
            return;
        }
        ts_sleep_ms(50);
    }
    dump_log("agent", a->log);
    cr_assert_fail("cellctl %s %s printed '%s', not '%s'", args[0], args[1], s ? s : "", want);
}

/* The agent serves its task's output over the network (no file is read
 * from the test's side): all of it, the last lines, stderr, following until
 * the task ends, and after it ended. Then retention: of six ended tasks,
 * the agent keeps the newest two directories; the others' logs are gone,
 * and cellctl says so. */
Test(agent, cellctl_logs_serves_output_and_retention_keeps_the_newest,
     .timeout = 150, .fini = cleanup)
{
    ts_daemon *d = &the_daemon;
    agent *a = &the_agent;
    start_cell(d, a, NULL, NULL,
               (const char *const[]){"--log-listen", "tcp://127.0.0.1:0", "--retain-count", "2",
                                     NULL});
    char flag[1200], cmd[1600];
    snprintf(flag, sizeof flag, "%s/go", a->dir);
    snprintf(cmd, sizeof cmd,
             "echo one; echo two; echo three; echo err1 >&2; "
             "while [ ! -e %s ]; do sleep 0.05; done; echo after; echo err2 >&2",
             flag);
    cs_id talk = submit(d, "talk", 1, cmd, 0, NULL);
    place(d, "m1", 1);
    cr_assert(wait_state(d, talk, "running", 1));

    wait_output(d, a, (const char *const[]){"logs", "talk", NULL}, "one\ntwo\nthree\n");
    char *s = cellctl_out(d, a, 0, (const char *const[]){"logs", "talk/0", "--tail", "2", NULL});
    cr_assert_str_eq(s, "two\nthree\n");
    free(s);
    wait_output(d, a, (const char *const[]){"logs", "talk", "--stderr", NULL}, "err1\n");

    /* -f: follows until the task ends, then exits 0 with all of it. */
    char fout[1200], bin[256];
    snprintf(fout, sizeof fout, "%s/follow.out", a->dir);
    ts_bin("cellctl", bin, sizeof bin);
    const char *fargv[] = {bin, "--server", d->url, "logs", "talk", "-f", NULL};
    int fpid = ts_spawn((char *const *)fargv, fout);
    cr_assert(wait_log(fout, "three\n"), "-f printed what was there");
    FILE *f = fopen(flag, "w");
    cr_assert_not_null(f);
    fclose(f);
    int st = -1;
    int64_t end = ts_now_ms() + DEADLINE_MS;
    while (ts_now_ms() < end && waitpid(fpid, &st, WNOHANG) != fpid)
        ts_sleep_ms(20);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "logs -f did not end with its task (%d)",
              st);
    s = slurp(fout);
    cr_assert_str_eq(s, "one\ntwo\nthree\nafter\n");
    free(s);

    /* An ended task's output, while its directory is kept. */
    cr_assert(wait_state(d, talk, "finished", 1));
    s = cellctl_out(d, a, 0, (const char *const[]){"logs", "talk", "--stderr", NULL});
    cr_assert_str_eq(s, "err1\nerr2\n");
    free(s);

    /* Retention: five more tasks end; two directories of the six stay. */
    cs_id quick = submit(d, "quick", 5, "echo hi $CELL_TASK_INDEX", 0, NULL);
    place(d, "m1", 5);
    cr_assert(wait_state(d, quick, "finished", 5));
    char tasks[1200];
    snprintf(tasks, sizeof tasks, "%s/tasks", a->work);
    uint32_t n = 99;
    end = ts_now_ms() + DEADLINE_MS;
    while (ts_now_ms() < end) {
        n = 0;
        DIR *dir = opendir(tasks);
        struct dirent *e;
        while (dir && (e = readdir(dir)) != NULL)
            n += e->d_name[0] != '.';
        if (dir)
            closedir(dir);
        if (n == 2)
            break;
        ts_sleep_ms(50);
    }
    cr_assert_eq(n, 2, "%u task directories kept, not 2", n);
    /* The sandboxes of the removed ones went with them. */
    snprintf(tasks, sizeof tasks, "%s-tasks", a->work);
    DIR *sdir = opendir(tasks);
    struct dirent *se;
    n = 0;
    while (sdir && (se = readdir(sdir)) != NULL)
        n += se->d_name[0] != '.';
    if (sdir)
        closedir(sdir);
    cr_assert_eq(n, 2, "%u sandboxes kept, not 2", n);
    uint32_t readable = 0;
    for (uint32_t i = 0; i < 5; i++) {
        char ref[32], want[32];
        snprintf(ref, sizeof ref, "quick/%u", i);
        snprintf(want, sizeof want, "hi %u\n", i);
        char out[1200];
        snprintf(out, sizeof out, "%s/cellctl.out", a->dir);
        int rc = cellctl_to(d, out, (const char *const[]){"logs", ref, NULL});
        s = slurp(out);
        if (rc == 0) {
            cr_assert_str_eq(s, want);
            readable++;
        } else {
            cr_assert(strstr(s, "removed by retention") != NULL, "%s: %s", ref, s);
        }
        free(s);
    }
    s = cellctl_out(d, a, 1, (const char *const[]){"logs", "talk", NULL});
    cr_assert(strstr(s, "removed by retention") != NULL, "%s", s);
    free(s);
    cr_assert_eq(readable, 2, "the two kept directories are the ones still readable");
    teardown(a, d);
}
