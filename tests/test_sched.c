/* test_sched.c — the scheduling loop, two ways.
 *
 * sched_local: the loop itself — cell-batch's and cell-service's hooks
 * (schedulers/kinds.h) on the local port (schedulers/port.h), over a store
 * in this process with a virtual clock: no cellstated, no processes, no
 * sleeps, every run the same. Races between schedulers happen where the
 * test puts them (a port that runs the other scheduler before a commit),
 * and waits (back-off, parking, tolerationSeconds) pass by moving the
 * clock: gang jobs, preemption, lost machines, global jobs, batch retries
 * and job ends, small jobs sharing a transaction, NoExecute taints, notes
 * and reports.
 *
 * sched: end to end, the real cell-batch and cell-service processes
 * against a real cellstated on 127.0.0.1 (tests/support.h). Machines are
 * registered through the client, as an agent would, and never run
 * anything: two batch schedulers and a service scheduler racing on one
 * cell without overcommitting it, every constraint kind, killed agents,
 * policies, a NoSchedule taint as get.machines shows it, --once and bad
 * flags. The agents' side is test_agent.c's.
 */
#include <criterion/criterion.h>

#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cellstate/arena.h"
#include "proto/client.h"
#include "spec/jobspec.h"
#include "proto/proto.h"
#include "schedulers/backoff.h"
#include "schedulers/kinds.h"
#include "schedulers/port.h"
#include "tests/cellbuild.h"
#include "tests/support.h"
#include "txn/ops.h"

#define DEADLINE_MS 20000

/* Append the strings of `ap` up to its NULL to out[n..max); returns the
 * new count. */
static int va_strings(va_list ap, const char **out, int n, int max)
{
    const char *a;
    while (n < max && (a = va_arg(ap, const char *)) != NULL)
        out[n++] = a;
    return n;
}

static ts_daemon the_daemon;
typedef struct proc {
    int pid;
    char log[320];
    char name[32];
} proc;
static proc procs[8];
static int nprocs;

static void cleanup(void)
{
    for (int i = 0; i < nprocs; i++)
        if (procs[i].pid > 0)
            ts_stop(procs[i].pid, SIGTERM, 10000);
    nprocs = 0;
    ts_daemon_teardown(&the_daemon);
}

/* A cellstated whose registered machines never time out (nothing here
 * heartbeats). */
static ts_daemon *cell(void)
{
    ts_daemon_setup(&the_daemon, "--heartbeat-timeout", "600000");
    return &the_daemon;
}

/* Start `prog` (cell-batch or cell-service) named `name` against the cell,
 * with quick intervals and the extra arguments (NULL-terminated). */
static proc *start(const char *prog, const char *name, ...)
{
    cr_assert_lt(nprocs, 8);
    proc *p = &procs[nprocs++];
    snprintf(p->name, sizeof p->name, "%s", name);
    snprintf(p->log, sizeof p->log, "%s/%s.log", the_daemon.dir, name);
    char bin[256];
    ts_bin(prog, bin, sizeof bin);
    const char *argv[32] = {bin,         "--server",    the_daemon.url, "--name", name,
                            "--idle-ms", "10",          "--report-ms",  "100",    "--park-ms",
                            "200",       "--timeout-ms", "5000",        "--seed", "7"};
    int n = 15;
    va_list ap;
    va_start(ap, name);
    n = va_strings(ap, argv, n, 31);
    va_end(ap);
    argv[n] = NULL;
    p->pid = ts_spawn((char *const *)argv, p->log);
    return p;
}

static void dump_procs(void)
{
    for (int i = 0; i < nprocs; i++)
        ts_log_file(procs[i].name, procs[i].log);
}

/* ---- the cell through the client -------------------------------------------------- */

static void call(uint32_t type, msgpack_sbuffer *b, cs_msg *r)
{
    cs_error err = {0};
    cr_assert_eq(cs_client_callb(the_daemon.c, type, b, r, &err), CS_OK, "%s: %s",
                 cs_msg_name(type), err.msg);
    msgpack_sbuffer_destroy(b);
}

/* Register (or re-register) machine `name` with cpu millicores and mem
 * MiB, ports 31000-31099, state `state`, and attributes given as
 * "key=value" strings (NULL-terminated). */
static cs_id machine(const char *name, int64_t cpu, int64_t mem, const char *state, ...)
{
    const char *kv[16];
    int n = 0;
    va_list ap;
    va_start(ap, state);
    n = va_strings(ap, kv, n, 16);
    va_end(ap);
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 6);
    cs_pack_kv_str(&pk, "name", name);
    cs_res cap = {cpu, mem, 100000};
    cs_pack_kv_res(&pk, "capacity", &cap);
    cs_pack_kv_u64(&pk, "port_lo", 31000);
    cs_pack_kv_u64(&pk, "port_hi", 31099);
    cs_pack_kv_str(&pk, "state", state);
    cs_pack_str(&pk, "attrs");
    msgpack_pack_map(&pk, (size_t)n);
    for (int i = 0; i < n; i++) {
        char key[64];
        const char *eq = strchr(kv[i], '=');
        cr_assert(eq != NULL);
        snprintf(key, sizeof key, "%.*s", (int)(eq - kv[i]), kv[i]);
        cs_pack_kv_str(&pk, key, eq + 1);
    }
    cs_msg r;
    call(CS_MSG_MACHINE_REGISTER, &b, &r);
    return ts_reply_u64(&r.body, "id");
}

/* Register machine `name` (up, ports 31000-31099, no attributes) with one
 * taint given as machine.register carries it. */
static cs_id tainted_machine(const char *name, int64_t cpu, int64_t mem, const char *key,
                             const char *value, const char *effect)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 5);
    cs_pack_kv_str(&pk, "name", name);
    cs_res cap = {cpu, mem, 100000};
    cs_pack_kv_res(&pk, "capacity", &cap);
    cs_pack_kv_u64(&pk, "port_lo", 31000);
    cs_pack_kv_u64(&pk, "port_hi", 31099);
    cs_pack_str(&pk, "taints");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_map(&pk, 3);
    cs_pack_kv_str(&pk, "key", key);
    cs_pack_kv_str(&pk, "value", value);
    cs_pack_kv_str(&pk, "effect", effect);
    cs_msg r;
    call(CS_MSG_MACHINE_REGISTER, &b, &r);
    return ts_reply_u64(&r.body, "id");
}

/* Submit a native JSON job spec (docs/design.md §8). */
static cs_id submit(const char *json)
{
    cs_jobspec spec;
    cs_error err = {0};
    cr_assert_eq(cs_jobspec_parse(json, strlen(json), &spec, &err), CS_OK, "%s: %s", json, err.msg);
    cs_msg r;
    cr_assert_eq(cs_client_callb(the_daemon.c, CS_MSG_JOB_SUBMIT, &spec.body, &r, &err), CS_OK,
                 "%s", err.msg);
    cs_jobspec_free(&spec);
    return ts_reply_u64(&r.body, "id");
}

typedef struct view {
    cs_arena a;
    cs_task *tasks;
    size_t ntasks;
    cs_machine *machines;
    size_t nmachines;
    cs_job job;
} view;

static void view_free(view *v)
{
    free(v->tasks);
    free(v->machines);
    cs_arena_free(&v->a);
    memset(v, 0, sizeof *v);
}

/* The job's record and tasks, and every machine, as the cell has them now. */
static void look(cs_id job, view *v)
{
    memset(v, 0, sizeof *v);
    cs_arena_init(&v->a);
    cs_error err = {0};
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    cs_msg r;
    if (job != 0) {
        msgpack_pack_map(&pk, 1);
        cs_pack_kv_u64(&pk, "job", job);
        call(CS_MSG_GET_JOB, &b, &r);
        const msgpack_object *jo = cs_obj_get(&r.body, "job");
        cr_assert(jo != NULL);
        cr_assert_eq(cs_unpack_job(jo, &v->a, &v->job, &err), CS_OK, "%s", err.msg);
        const msgpack_object *to = cs_obj_get(cs_obj_get(&r.body, "tasks"), "tasks");
        cr_assert(to != NULL && to->type == MSGPACK_OBJECT_ARRAY);
        v->ntasks = to->via.array.size;
        v->tasks = calloc(v->ntasks + 1, sizeof *v->tasks);
        for (size_t i = 0; i < v->ntasks; i++)
            cr_assert_eq(cs_unpack_task(&to->via.array.ptr[i], &v->a, &v->tasks[i], &err), CS_OK,
                         "%s", err.msg);
        msgpack_sbuffer_init(&b);
        msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    }
    msgpack_pack_map(&pk, 0);
    call(CS_MSG_GET_MACHINES, &b, &r);
    const msgpack_object *mo = cs_obj_get(&r.body, "machines");
    cr_assert(mo != NULL && mo->type == MSGPACK_OBJECT_ARRAY);
    v->nmachines = mo->via.array.size;
    v->machines = calloc(v->nmachines + 1, sizeof *v->machines);
    for (size_t i = 0; i < v->nmachines; i++)
        cr_assert_eq(cs_unpack_machine(&mo->via.array.ptr[i], &v->a, &v->machines[i], &err), CS_OK,
                     "%s", err.msg);
}

static const char *machine_name(const view *v, cs_id id)
{
    for (size_t i = 0; i < v->nmachines; i++)
        if (v->machines[i].id == id)
            return v->machines[i].name;
    return "?";
}

static const char *machine_attr(const view *v, cs_id id, const char *key)
{
    for (size_t i = 0; i < v->nmachines; i++) {
        if (v->machines[i].id != id)
            continue;
        for (uint32_t k = 0; k < v->machines[i].nattrs; k++)
            if (strcmp(v->machines[i].attrs[k].key, key) == 0)
                return v->machines[i].attrs[k].value;
    }
    return NULL;
}

static uint32_t count_placed(const view *v)
{
    uint32_t n = 0;
    for (size_t i = 0; i < v->ntasks; i++)
        n += v->tasks[i].state == CS_TASK_ASSIGNED || v->tasks[i].state == CS_TASK_RUNNING;
    return n;
}

static uint32_t count_in(const view *v, uint8_t state)
{
    uint32_t n = 0;
    for (size_t i = 0; i < v->ntasks; i++)
        n += v->tasks[i].state == state;
    return n;
}

/* The job's tasks per machine name: how many of its placed tasks are on
 * machine `name`. */
static uint32_t placed_on(const view *v, const char *name)
{
    uint32_t n = 0;
    for (size_t i = 0; i < v->ntasks; i++)
        n += cs_task_state_placed(v->tasks[i].state) &&
             strcmp(machine_name(v, v->tasks[i].machine), name) == 0;
    return n;
}

/* How many of the job's tasks are placed on machine `name` now. */
static uint32_t now_on(cs_id job, const char *name)
{
    view v;
    look(job, &v);
    uint32_t n = placed_on(&v, name);
    view_free(&v);
    return n;
}

/* Wait until job has `placed` tasks placed (and, when note is not NULL, a
 * note containing it; when off is not NULL, none on the machine of that
 * name). */
static bool wait_job(cs_id job, uint32_t placed, const char *note, const char *off)
{
    int64_t end = ts_now_ms() + DEADLINE_MS;
    for (;;) {
        view v;
        look(job, &v);
        bool ok = count_placed(&v) == placed && (note == NULL || strstr(v.job.note, note) != NULL) &&
                  (off == NULL || placed_on(&v, off) == 0);
        if (ok || ts_now_ms() > end) {
            if (!ok)
                cr_log_error("job %s: %u placed (want %u), note '%s'", v.job.name, count_placed(&v),
                             placed, v.job.note);
            view_free(&v);
            if (!ok)
                dump_procs();
            return ok;
        }
        view_free(&v);
        ts_sleep_ms(50);
    }
}

static bool wait_placed(cs_id job, uint32_t placed, const char *note)
{
    return wait_job(job, placed, note, NULL);
}

/* No machine holds more than its capacity, and the machines' allocations
 * are what their placed tasks add up to. */
static void check_no_overcommit(void)
{
    view v;
    look(0, &v);
    for (size_t i = 0; i < v.nmachines; i++) {
        const cs_machine *m = &v.machines[i];
        cr_assert(m->allocated.cpu <= m->capacity.cpu && m->allocated.mem <= m->capacity.mem &&
                      m->allocated.disk <= m->capacity.disk,
                  "%s overcommitted: cpu %" PRId64 "/%" PRId64 ", mem %" PRId64 "/%" PRId64,
                  m->name, m->allocated.cpu, m->capacity.cpu, m->allocated.mem, m->capacity.mem);
    }
    view_free(&v);
}

/* ---- racing schedulers ---------------------------------------------------------------- */

Test(sched, two_batch_and_one_service_scheduler_race_without_overcommitting, .timeout = 120,
     .fini = cleanup)
{
    cell();
    char name[32];
    for (int i = 0; i < 12; i++) {
        snprintf(name, sizeof name, "m%02d", i);
        machine(name, 2000, 2048, "up", "rack=r1", NULL);
    }
    start("cell-batch", "batch-0", "--instance", "0", "--instances", "2", NULL);
    start("cell-batch", "batch-1", "--instance", "1", "--instances", "2", NULL);
    start("cell-service", "service", NULL);
    /* 8 x 30 batch tasks of 0.3 cores (72 cores) on 24 cores; 2 x 5 service
     * tasks of high priority that must find room. */
    cs_id batch[8], svc[2];
    for (int i = 0; i < 8; i++) {
        char json[256];
        snprintf(json, sizeof json,
                 "{\"name\": \"b%d\", \"count\": 30, \"priority\": 10, \"cmd\": \"x\","
                 " \"resources\": {\"cpu\": 0.3, \"mem\": 64}}",
                 i);
        batch[i] = submit(json);
    }
    for (int i = 0; i < 2; i++) {
        char json[256];
        snprintf(json, sizeof json,
                 "{\"name\": \"s%d\", \"kind\": \"service\", \"count\": 5, \"priority\": 100,"
                 " \"cmd\": \"x\", \"resources\": {\"cpu\": 0.5, \"mem\": 64}}",
                 i);
        svc[i] = submit(json);
    }
    /* While they race, nothing is ever overcommitted. */
    int64_t end = ts_now_ms() + 3000;
    while (ts_now_ms() < end) {
        check_no_overcommit();
        ts_sleep_ms(50);
    }
    for (int i = 0; i < 2; i++)
        cr_assert(wait_placed(svc[i], 5, NULL), "service s%d placed whole (preempting batch)", i);
    /* The cell is full: no machine has room for one more batch task. */
    end = ts_now_ms() + DEADLINE_MS;
    uint32_t placed_cpu;
    for (;;) {
        view v;
        look(0, &v);
        placed_cpu = 0;
        bool room = false;
        for (size_t i = 0; i < v.nmachines; i++) {
            placed_cpu += (uint32_t)v.machines[i].allocated.cpu;
            room |= v.machines[i].capacity.cpu - v.machines[i].allocated.cpu >= 300;
        }
        view_free(&v);
        if (!room || ts_now_ms() > end)
            break;
        ts_sleep_ms(50);
    }
    cr_assert_geq(placed_cpu, 24000 - 12 * 299, "the cell is filled: %u millicores", placed_cpu);
    check_no_overcommit();
    uint32_t batch_placed = 0;
    for (int i = 0; i < 8; i++) {
        view v;
        look(batch[i], &v);
        batch_placed += count_placed(&v);
        view_free(&v);
    }
    cr_assert_eq(batch_placed * 300 + 10 * 500, placed_cpu, "placed tasks account for the cpu");

    /* Each scheduler reports its metrics to the cell. */
    end = ts_now_ms() + DEADLINE_MS;
    for (;;) {
        msgpack_sbuffer b;
        msgpack_sbuffer_init(&b);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 0);
        cs_msg r;
        call(CS_MSG_STATS, &b, &r);
        const msgpack_object *s = cs_obj_get(&r.body, "schedulers");
        cr_assert(s != NULL && s->type == MSGPACK_OBJECT_ARRAY);
        uint32_t working = 0;
        for (uint32_t i = 0; i < s->via.array.size; i++) {
            const msgpack_object *m = cs_obj_get(&s->via.array.ptr[i], "metrics");
            /* Both batch schedulers race for the same room: one may fill the
             * cell first (Omega promises no fairness between them), so each
             * is asked to have tried, not to have won. */
            uint64_t attempts = 0;
            cs_error err = {0};
            if (m && cs_obj_u64(m, "attempts", true, UINT64_MAX, &attempts, &err) == CS_OK &&
                attempts > 0 && cs_obj_get(m, "conflict_fraction") && cs_obj_get(m, "busyness") &&
                cs_obj_get(m, "wait_first_p99_ms"))
                working++;
        }
        if (working == 3)
            break;
        if (ts_now_ms() >= end) {
            for (uint32_t i = 0; i < s->via.array.size; i++) {
                const msgpack_object *o = &s->via.array.ptr[i];
                const msgpack_object *n = cs_obj_get(o, "name");
                uint64_t attempts = 0;
                cs_error err = {0};
                cs_obj_u64(cs_obj_get(o, "metrics"), "attempts", true, UINT64_MAX, &attempts, &err);
                cr_log_error("scheduler %.*s: attempts %" PRIu64 " %s",
                             n ? (int)n->via.str.size : 1, n ? n->via.str.ptr : "?", attempts,
                             err.msg);
            }
            dump_procs();
        }
        cr_assert(ts_now_ms() < end, "3 schedulers report their attempts (%u do)", working);
        ts_sleep_ms(100);
    }
}

/* ---- constraints ----------------------------------------------------------------------- */

Test(sched, every_constraint_kind_is_honoured, .timeout = 120, .fini = cleanup)
{
    cell();
    /* m0..m5: racks r0, r0, r1, r1, r2, r2; zones a, b alternating. */
    static const char *const racks[] = {"rack=r0", "rack=r0", "rack=r1", "rack=r1", "rack=r2", "rack=r2"};
    for (int i = 0; i < 6; i++) {
        char name[16];
        snprintf(name, sizeof name, "m%d", i);
        machine(name, 100000, 100000, "up", racks[i], i % 2 ? "zone=b" : "zone=a", NULL);
    }
    start("cell-batch", "batch", NULL);
#define JOB(name, count, cons)                                                                 \
    submit("{\"name\": \"" name "\", \"count\": " #count ", \"cmd\": \"x\", \"constraints\": " \
           cons ", \"resources\": {\"cpu\": 0.1, \"mem\": 1}}")
    cs_id uniq = JOB("uniq", 8, "[[\"hostname\", \"UNIQUE\"]]");
    cs_id clus = JOB("clus", 3, "[[\"rack\", \"CLUSTER\", \"r1\"]]");
    cs_id neq = JOB("neq", 6, "[[\"rack\", \"!=\", \"r0\"]]");
    cs_id like = JOB("like", 4, "[[\"hostname\", \"LIKE\", \"m[01]\"]]");
    cs_id unlike = JOB("unlike", 4, "[[\"rack\", \"UNLIKE\", \"r[01]\"]]");
    cs_id group = JOB("group", 6, "[[\"rack\", \"GROUP_BY\"]]");
    cs_id maxper = JOB("maxper", 6, "[[\"zone\", \"MAX_PER\", \"2\"]]");
    cs_id pin = JOB("pin", 2, "[[\"hostname\", \"IS\", \"m5\"]]");
    cs_id eq = JOB("eq", 3, "[[\"zone\", \"==\", \"b\"]]");
#undef JOB
    cr_assert(wait_placed(pin, 2, NULL));
    cs_id aff = submit("{\"name\": \"aff\", \"count\": 2, \"cmd\": \"x\", \"constraints\":"
                       " [[\"job\", \"AFFINITY\", \"pin\"]]}");
    cs_id anti = submit("{\"name\": \"anti\", \"count\": 5, \"cmd\": \"x\", \"constraints\":"
                        " [[\"job\", \"ANTI_AFFINITY\", \"pin\"]]}");

    cr_assert(wait_placed(uniq, 6, "UNIQUE"), "UNIQUE hostname: 6 machines, 2 left with a note");
    cr_assert(wait_placed(clus, 3, NULL));
    cr_assert(wait_placed(neq, 6, NULL));
    cr_assert(wait_placed(like, 4, NULL));
    cr_assert(wait_placed(unlike, 4, NULL));
    cr_assert(wait_placed(group, 6, NULL));
    cr_assert(wait_placed(maxper, 4, NULL), "MAX_PER 2 over 2 zones: 4, 2 left pending");
    cr_assert(wait_placed(eq, 3, NULL));
    cr_assert(wait_placed(aff, 2, NULL));
    cr_assert(wait_placed(anti, 5, NULL));

    view v;
    look(uniq, &v);
    for (size_t i = 0; i < v.ntasks; i++)
        for (size_t k = 0; k < i; k++)
            cr_assert(v.tasks[i].state != CS_TASK_ASSIGNED || v.tasks[k].state != CS_TASK_ASSIGNED ||
                          v.tasks[i].machine != v.tasks[k].machine,
                      "UNIQUE hostname: two tasks on %s", machine_name(&v, v.tasks[i].machine));
    view_free(&v);

    struct {
        cs_id job;
        const char *key, *allowed; /* the attribute's allowed values, '|'-separated */
    } checks[] = {
        {clus, "rack", "|r1|"},  {neq, "rack", "|r1|r2|"}, {unlike, "rack", "|r2|"},
        {eq, "zone", "|b|"},
    };
    for (size_t c = 0; c < sizeof checks / sizeof checks[0]; c++) {
        look(checks[c].job, &v);
        for (size_t i = 0; i < v.ntasks; i++) {
            if (v.tasks[i].state != CS_TASK_ASSIGNED)
                continue;
            char want[16];
            snprintf(want, sizeof want, "|%s|", machine_attr(&v, v.tasks[i].machine, checks[c].key));
            cr_assert(strstr(checks[c].allowed, want) != NULL, "%s: a task on %s (%s %s)",
                      v.job.name, machine_name(&v, v.tasks[i].machine), checks[c].key, want);
        }
        view_free(&v);
    }
    /* Host name operators. */
    cs_id byname[] = {like, pin, aff, anti};
    const char *allowed[] = {"|m0|m1|", "|m5|", "|m5|", "|m0|m1|m2|m3|m4|"};
    for (size_t c = 0; c < 4; c++) {
        look(byname[c], &v);
        for (size_t i = 0; i < v.ntasks; i++) {
            char want[16];
            snprintf(want, sizeof want, "|%s|", machine_name(&v, v.tasks[i].machine));
            cr_assert(v.tasks[i].state == CS_TASK_ASSIGNED && strstr(allowed[c], want) != NULL,
                      "%s: task %u on %s", v.job.name, v.tasks[i].index, want);
        }
        view_free(&v);
    }
    /* GROUP_BY rack: 2 on each of 3 racks; MAX_PER zone 2: 2 per zone. */
    cs_id spread[] = {group, maxper};
    const char *keys[] = {"rack", "zone"};
    for (size_t c = 0; c < 2; c++) {
        look(spread[c], &v);
        int per[3] = {0};
        for (size_t i = 0; i < v.ntasks; i++) {
            if (v.tasks[i].state != CS_TASK_ASSIGNED)
                continue;
            const char *val = machine_attr(&v, v.tasks[i].machine, keys[c]);
            int g = c == 0 ? val[1] - '0' : val[0] - 'a';
            per[g]++;
        }
        if (c == 0)
            cr_assert(per[0] == 2 && per[1] == 2 && per[2] == 2, "GROUP_BY rack: %d %d %d", per[0],
                      per[1], per[2]);
        else
            cr_assert(per[0] == 2 && per[1] == 2, "MAX_PER zone 2: %d %d", per[0], per[1]);
        view_free(&v);
    }
    check_no_overcommit();
}

/* ---- gang -------------------------------------------------------------------------------- */

/* ---- lost machines --------------------------------------------------------------------- */

/* Start one simulated machine, `prefix`00000, as its own cell-agent process
 * (a real agent's loop: registration, heartbeats, long polls, reports),
 * whose tasks run an hour: a service task only ends when its machine does. */
static proc *start_sim_agent(const char *prefix)
{
    cr_assert_lt(nprocs, 8);
    proc *p = &procs[nprocs++];
    snprintf(p->name, sizeof p->name, "agent-%s", prefix);
    snprintf(p->log, sizeof p->log, "%s/agent-%s.log", the_daemon.dir, prefix);
    char bin[256];
    ts_bin("cell-agent", bin, sizeof bin);
    const char *argv[] = {bin,          "--server",       the_daemon.url, "--simulate",
                          "1",          "--sim-prefix",   prefix,         "--sim-duration",
                          "3600000",    "--heartbeat-ms", "100",          "--poll-wait-ms",
                          "500",        "--cpu",          "4",            "--mem",
                          "4096",       NULL};
    p->pid = ts_spawn((char *const *)argv, p->log);
    return p;
}

/* Not a machine marked down by hand: an agent process dies (SIGKILL, no
 * goodbye). cellstated notices its silence, marks its machine down, the
 * task there is lost, and cell-service runs it again on a live machine,
 * where that machine's agent starts it. */
Test(sched, killed_agents_service_tasks_are_replaced_elsewhere, .timeout = 120, .fini = cleanup)
{
    ts_daemon_setup(&the_daemon, "--heartbeat-timeout", "1500");
    const char *prefixes[] = {"ka-", "kb-", "kc-"};
    proc *agents[3];
    for (int i = 0; i < 3; i++)
        agents[i] = start_sim_agent(prefixes[i]);
    start("cell-service", "service", NULL);
    cs_id web = submit("{\"name\": \"web\", \"kind\": \"service\", \"count\": 2, \"cmd\": \"x\","
                       " \"ports\": [0], \"constraints\": [[\"hostname\", \"UNIQUE\"]]}");
    int64_t end = ts_now_ms() + DEADLINE_MS;
    view v;
    for (;;) {
        look(web, &v);
        if (count_in(&v, CS_TASK_RUNNING) == 2)
            break;
        view_free(&v);
        if (ts_now_ms() > end)
            dump_procs();
        cr_assert(ts_now_ms() <= end, "both tasks run, each started by its machine's agent");
        ts_sleep_ms(50);
    }
    char gone[16];
    snprintf(gone, sizeof gone, "%s", machine_name(&v, v.tasks[0].machine));
    view_free(&v);
    proc *victim = NULL;
    for (int i = 0; i < 3; i++)
        if (strncmp(gone, prefixes[i], strlen(prefixes[i])) == 0)
            victim = agents[i];
    cr_assert(victim != NULL, "task 0 runs on %s, one of the agents' machines", gone);
    cr_assert_neq(ts_stop(victim->pid, SIGKILL, 5000), -1);
    victim->pid = 0;

    end = ts_now_ms() + DEADLINE_MS;
    for (;;) {
        look(web, &v);
        bool ok = count_in(&v, CS_TASK_RUNNING) == 2;
        for (size_t i = 0; i < v.ntasks; i++)
            ok &= strcmp(machine_name(&v, v.tasks[i].machine), gone) != 0;
        ok &= v.tasks[0].attempts == 2 && v.tasks[0].last_end == CS_TASK_LOST;
        for (size_t i = 0; i < v.nmachines; i++)
            if (strcmp(v.machines[i].name, gone) == 0)
                ok &= v.machines[i].state == CS_MACHINE_DOWN;
        view_free(&v);
        if (ok)
            break;
        if (ts_now_ms() > end)
            dump_procs();
        cr_assert(ts_now_ms() <= end, "%s goes down, and its task runs again on a live machine", gone);
        ts_sleep_ms(50);
    }
}

/* ---- policies and flags -------------------------------------------------------------------- */

/* Run a scheduler to completion with `args` and return its exit status;
 * its output is in *log (caller frees). */
static int run_to_exit(const char *prog, char **log, const char *const *args)
{
    static int k;
    char bin[256], path[400];
    ts_bin(prog, bin, sizeof bin);
    snprintf(path, sizeof path, "%s/run-%d.log", the_daemon.dir, k++);
    const char *argv[16] = {bin};
    int n = 1;
    for (int i = 0; args[i] && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    int pid = ts_spawn((char *const *)argv, path);
    int st = ts_stop(pid, 0, 20000);
    FILE *f = fopen(path, "r");
    size_t len = 0;
    *log = NULL;
    FILE *m = open_memstream(log, &len);
    char buf[512];
    size_t got;
    while (f && (got = fread(buf, 1, sizeof buf, f)) > 0)
        fwrite(buf, 1, got, m);
    fclose(m);
    if (f)
        fclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert(f != NULL);
    fputs(text, f);
    fclose(f);
}

Test(sched, bad_policy_and_flags_are_refused_with_a_message, .timeout = 120, .fini = cleanup)
{
    cell();
    char bad[400], missing[400];
    snprintf(bad, sizeof bad, "%s/bad-policy.json", the_daemon.dir);
    snprintf(missing, sizeof missing, "%s/no-such-policy.json", the_daemon.dir);
    write_file(bad, "{\"kind\": \"Policy\", \"apiVersion\": \"v1\","
                    " \"predicates\": [{\"name\": \"PodFitsPort\"}],"
                    " \"priorities\": [{\"name\": \"ImageLocalityPriorty\", \"weight\": 1}]}");
    char *log;
    int st = run_to_exit("cell-service", &log,
                         (const char *const[]){"--server", the_daemon.url, "--policy", bad, NULL});
    cr_assert_eq(st, 1, "bad policy: exit 1 (got %d): %s", st, log);
    cr_assert(strstr(log, "\"PodFitsPort\"") != NULL && strstr(log, "\"ImageLocalityPriorty\""),
              "names every unknown name: %s", log);
    free(log);
    st = run_to_exit("cell-service", &log,
                     (const char *const[]){"--server", the_daemon.url, "--policy", missing, NULL});
    cr_assert_eq(st, 1, "missing policy: exit 1 (got %d)", st);
    cr_assert(strstr(log, "no-such-policy.json") != NULL, "names the file: %s", log);
    free(log);
    st = run_to_exit("cell-batch", &log, (const char *const[]){"--conflict", "medium", NULL});
    cr_assert_eq(st, 2, "bad flag: exit 2");
    cr_assert(strstr(log, "--conflict") != NULL, "names the flag: %s", log);
    free(log);
}

Test(sched, kubernetes_policy_file_places_a_service, .timeout = 120, .fini = cleanup)
{
    const char *policy = "../shared/testdata/kubernetes/scheduler-policy-config.json";
    if (access(policy, R_OK) != 0)
        cr_skip_test("%s is absent (a user's clone has no ../shared)", policy);
    char abs[1024];
    cr_assert(realpath(policy, abs) != NULL);
    cell();
    machine("k0", 2000, 2048, "up", NULL);
    machine("k1", 2000, 2048, "up", NULL);
    start("cell-service", "service", "--policy", abs, NULL);
    cs_id web = submit("{\"name\": \"web\", \"kind\": \"service\", \"count\": 4, \"cmd\": \"x\","
                       " \"ports\": [0], \"resources\": {\"cpu\": 0.5, \"mem\": 128}}");
    cr_assert(wait_placed(web, 4, NULL));
    view v;
    look(web, &v);
    uint32_t on_k0 = 0;
    for (size_t i = 0; i < v.ntasks; i++)
        on_k0 += strcmp(machine_name(&v, v.tasks[i].machine), "k0") == 0;
    view_free(&v);
    cr_assert_eq(on_k0, 2, "LeastRequested, Balanced and ServiceSpreading spread 4 tasks 2 + 2");
}

/* The Policy file `make run` gives cell-service lists no
 * MatchInterPodAffinity: a job's hard AFFINITY and ANTI_AFFINITY hold all
 * the same (they placed a replacement next to its anchor before). */
Test(sched, kubernetes_policy_file_keeps_hard_affinity_and_anti_affinity, .timeout = 120,
     .fini = cleanup)
{
    const char *policy = "../shared/testdata/kubernetes/scheduler-policy-config.json";
    if (access(policy, R_OK) != 0)
        cr_skip_test("%s is absent (a user's clone has no ../shared)", policy);
    char abs[1024];
    cr_assert(realpath(policy, abs) != NULL);
    cell();
    machine("a0", 4000, 4096, "up", NULL);
    machine("a1", 4000, 4096, "up", NULL);
    machine("a2", 4000, 4096, "up", NULL);
    machine("a3", 4000, 4096, "up", NULL);
    cs_id db = submit("{\"name\": \"db\", \"kind\": \"service\", \"cmd\": \"x\","
                      " \"constraints\": [[\"hostname\", \"==\", \"a2\"]],"
                      " \"resources\": {\"cpu\": 0.1, \"mem\": 64}}");
    start("cell-service", "service", "--policy", abs, NULL);
    cr_assert(wait_placed(db, 1, NULL));
    /* Spreading and LeastRequested would put these everywhere but a2. */
    cs_id near = submit("{\"name\": \"near\", \"kind\": \"service\", \"count\": 4,"
                        " \"cmd\": \"x\", \"constraints\": [[\"job\", \"AFFINITY\", \"db\"]],"
                        " \"resources\": {\"cpu\": 0.1, \"mem\": 64}}");
    cs_id far = submit("{\"name\": \"far\", \"kind\": \"service\", \"count\": 6,"
                       " \"cmd\": \"x\", \"constraints\": [[\"job\", \"ANTI_AFFINITY\", \"db\"]],"
                       " \"resources\": {\"cpu\": 0.1, \"mem\": 64}}");
    cr_assert(wait_placed(near, 4, NULL));
    cr_assert(wait_placed(far, 6, NULL));
    cr_assert_eq(now_on(near, "a2"), 4, "AFFINITY db: every task next to db on a2");
    cr_assert_eq(now_on(far, "a2"), 0, "ANTI_AFFINITY db: none on a2");
    check_no_overcommit();
}

/* machine.register's taints reach the cell; a NoSchedule machine gets no
 * task that does not tolerate its taint, while a job that tolerates it may
 * go there; the untolerating job waits with a note naming the taint. */
Test(sched, tainted_machine_gets_no_untolerating_task, .timeout = 120, .fini = cleanup)
{
    cell();
    tainted_machine("gpu0", 16000, 16384, "dedicated", "gpu", "NoSchedule");
    machine("cpu0", 1000, 1024, "up", NULL);
    start("cell-batch", "batch", NULL);
    cs_id plain = submit("{\"name\": \"plain\", \"count\": 6, \"cmd\": \"x\","
                         " \"resources\": {\"cpu\": 0.3, \"mem\": 64}}");
    cs_id tol = submit("{\"name\": \"tol\", \"count\": 6, \"cmd\": \"x\","
                       " \"resources\": {\"cpu\": 0.3, \"mem\": 64},"
                       " \"tolerations\": [{\"key\": \"dedicated\", \"operator\": \"Equal\","
                       " \"value\": \"gpu\", \"effect\": \"NoSchedule\"}]}");
    /* cpu0 holds 3 of 0.3 cores; the rest of plain waits. */
    cr_assert(wait_placed(plain, 3, "taint not tolerated"));
    cr_assert(wait_placed(tol, 6, NULL));
    cr_assert_eq(now_on(plain, "gpu0"), 0, "an untolerating task on the tainted machine");
    cr_assert_eq(now_on(plain, "cpu0"), 3);
    cr_assert_gt(now_on(tol, "gpu0"), 0, "the tolerating job may use gpu0");
    view v;
    look(0, &v);
    bool shown = false;
    for (size_t i = 0; i < v.nmachines; i++)
        if (strcmp(v.machines[i].name, "gpu0") == 0)
            shown = v.machines[i].ntaints == 1 &&
                    strcmp(v.machines[i].taints[0].key, "dedicated") == 0 &&
                    strcmp(v.machines[i].taints[0].value, "gpu") == 0 &&
                    v.machines[i].taints[0].effect == CS_TAINT_NO_SCHEDULE;
    cr_assert(shown, "get.machines gives gpu0's taint back");
    view_free(&v);
    check_no_overcommit();
}

/* A Policy file that names Kubernetes' image and cloud-volume functions
 * runs, and says once what it ignores: on stderr and in `stats`. */
/* stats' "schedulers" array (in *r's body), or NULL. */
static const msgpack_object *stats_schedulers(cs_msg *r)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 0);
    call(CS_MSG_STATS, &b, r);
    const msgpack_object *s = cs_obj_get(&r->body, "schedulers");
    return s != NULL && s->type == MSGPACK_OBJECT_ARRAY ? s : NULL;
}

Test(sched, ignored_policy_names_are_warned_on_stderr_and_in_stats, .timeout = 120,
     .fini = cleanup)
{
    cell();
    char path[400];
    snprintf(path, sizeof path, "%s/k8s-policy.json", the_daemon.dir);
    write_file(path, "{\"kind\": \"Policy\", \"apiVersion\": \"v1\","
                     " \"predicates\": [{\"name\": \"MaxEBSVolumeCount\"},"
                     " {\"name\": \"PodToleratesNodeTaints\"}],"
                     " \"priorities\": [{\"name\": \"ImageLocalityPriority\", \"weight\": 1},"
                     " {\"name\": \"TaintTolerationPriority\", \"weight\": 1}]}");
    machine("w0", 2000, 2048, "up", NULL);
    proc *p = start("cell-service", "service", "--policy", path, NULL);
    cs_id web = submit("{\"name\": \"web\", \"kind\": \"service\", \"count\": 2,"
                       " \"cmd\": \"x\", \"resources\": {\"cpu\": 0.1, \"mem\": 64}}");
    cr_assert(wait_placed(web, 2, NULL), "the policy runs");
    const char *want = "policy: ignoring ImageLocalityPriority (container images), "
                       "MaxEBSVolumeCount (cloud volumes)";
    int64_t end = ts_now_ms() + DEADLINE_MS;
    bool in_stats = false;
    while (!in_stats && ts_now_ms() < end) {
        cs_msg r;
        const msgpack_object *s = stats_schedulers(&r);
        for (uint32_t i = 0; s && s->type == MSGPACK_OBJECT_ARRAY && i < s->via.array.size; i++) {
            const msgpack_object *w = cs_obj_get(&s->via.array.ptr[i], "warning");
            in_stats |= w && w->type == MSGPACK_OBJECT_STR &&
                        memmem(w->via.str.ptr, w->via.str.size, want, strlen(want)) != NULL;
        }
        if (!in_stats)
            ts_sleep_ms(50);
    }
    cr_assert(in_stats, "stats carries the warning");
    FILE *f = fopen(p->log, "r");
    cr_assert(f != NULL);
    char line[1024];
    int times = 0;
    while (fgets(line, sizeof line, f))
        times += strstr(line, want) != NULL;
    fclose(f);
    cr_assert_eq(times, 1, "said once on stderr");
}

/* Submit the Marathon app definition in `file` as cellctl would (the
 * converter recognises Marathon's fields). */
static cs_id submit_file(const char *file)
{
    cs_jobspec spec;
    cs_error err = {0};
    cr_assert_eq(cs_jobspec_load(file, &spec, &err), CS_OK, "%s: %s", file, err.msg);
    cs_msg r;
    cr_assert_eq(cs_client_callb(the_daemon.c, CS_MSG_JOB_SUBMIT, &spec.body, &r, &err), CS_OK,
                 "%s: %s", file, err.msg);
    cs_jobspec_free(&spec);
    return ts_reply_u64(&r.body, "id");
}

/* The Marathon apps no one here wrote, placed by cell-service as Marathon
 * would: app.json's `hostname LIKE srv2.*` keeps its 2 instances off srv1,
 * each with the dynamic port its portDefinitions ask for. */
Test(sched, marathon_testdata_apps_are_placed_by_cell_service, .timeout = 120, .fini = cleanup)
{
    const char *dir = "../shared/testdata/marathon";
    if (access(dir, R_OK) != 0)
        cr_skip_test("%s is absent (a user's clone has no ../shared)", dir);
    cell();
    /* The srv1 machines are larger and more numerous: spreading alone
     * would put foo's instances there; only LIKE keeps them off. */
    machine("srv1-a", 16000, 16384, "up", NULL);
    machine("srv1-b", 16000, 16384, "up", NULL);
    machine("srv1-c", 16000, 16384, "up", NULL);
    machine("srv2-a", 4000, 4096, "up", NULL);
    machine("srv2-b", 4000, 4096, "up", NULL);
    start("cell-service", "service", NULL);
    cs_id foo = submit_file("../shared/testdata/marathon/app.json");
    cs_id ready = submit_file("../shared/testdata/marathon/readiness-and-health-app.json");
    cr_assert(wait_placed(foo, 2, NULL));
    cr_assert(wait_placed(ready, 1, NULL));
    view v;
    look(foo, &v);
    for (size_t i = 0; i < v.ntasks; i++) {
        const char *m = machine_name(&v, v.tasks[i].machine);
        cr_assert(strncmp(m, "srv2", 4) == 0, "foo[%zu] on %s: hostname LIKE srv2.*", i, m);
        cr_assert_eq(v.tasks[i].nports, 1, "one port, from portDefinitions");
        cr_assert_neq(v.tasks[i].ports[0], 0, "a dynamic port was chosen");
    }
    view_free(&v);
    check_no_overcommit();
}

Test(sched, once_places_what_is_pending_and_exits, .timeout = 120, .fini = cleanup)
{
    cell();
    machine("o0", 4000, 4096, "up", NULL);
    cs_id j = submit("{\"name\": \"quick\", \"count\": 5, \"cmd\": \"x\"}");
    char *log;
    int st = run_to_exit("cell-batch", &log,
                         (const char *const[]){"--server", the_daemon.url, "--once", NULL});
    cr_assert_eq(st, 0, "exit 0: %s", log);
    free(log);
    view v;
    look(j, &v);
    cr_assert_eq(count_placed(&v), 5);
    cr_assert_eq(count_in(&v, CS_TASK_PENDING), 0);
    view_free(&v);
}


/* ---- the loop on the local port ------------------------------------------------
 *
 * The same loop and the same two schedulers (schedulers/kinds.h) in this
 * process, over a store through the local port (schedulers/port.h): no
 * cellstated, no processes, and a virtual clock, so that a race between
 * two schedulers happens in the order the test chooses and a back-off of
 * 30 s passes at once. */

/* Monotonic ns and epoch ms the virtual clock starts from: the wall clock a
 * second after ts_job's submissions. */
#define VSTART_NS INT64_C(1000000000)
#define VWALL_MS ((int64_t)TS_SUBMITTED_MS + 1000)

typedef struct local_cell {
    ts_store st;
    cs_port_local *port;
} local_cell;

static void local_open(local_cell *l)
{
    ts_store_create(&l->st);
    cs_error err = {0};
    cr_assert_eq(cs_port_local_new(l->st.s, VSTART_NS, VWALL_MS, &l->port, &err), CS_OK, "%s",
                 err.msg);
}

static void local_close(local_cell *l)
{
    cs_port_local_free(l->port);
    ts_store_destroy(&l->st);
}

/* Options as cell-batch's or cell-service's command line gives them, with
 * --once (cs_sched_run returns after a round that committed nothing), a
 * fixed seed and the extra flags (string literals, NULL-terminated). */
static void local_opts(cs_sched_kind kind, cs_sched_opts *o, const char *name, ...)
{
    const char *argv[32] = {"sched",   "--name",    name, "--seed",      "7",  "--idle-ms",
                            "10",      "--park-ms", "200", "--report-ms", "100", "--once"};
    int n = 12;
    va_list ap;
    va_start(ap, name);
    n = va_strings(ap, argv, n, 31);
    va_end(ap);
    bool help;
    cs_error err = {0};
    cr_assert_eq(cs_sched_opts_parse(kind, n, (char **)argv, o, &help, &err), CS_OK, "%s", err.msg);
}

static cs_sched *local_sched(const cs_sched_opts *o, const cs_sched_port *port)
{
    cs_sched *s;
    cs_error err = {0};
    const cs_sched_hooks *h =
        o->kind == CS_SCHED_BATCH ? &cs_sched_batch_hooks : &cs_sched_service_hooks;
    cr_assert_eq(cs_sched_new(o, h, port, &s, &err), CS_OK, "%s", err.msg);
    return s;
}

/* local_opts into *o (which must outlive it) and local_sched. */
static cs_sched *local_start(cs_sched_kind kind, const char *name, cs_sched_opts *o,
                             const cs_sched_port *port)
{
    local_opts(kind, o, name, NULL);
    return local_sched(o, port);
}

/* cs_sched_run until a round commits nothing (--once). */
static void settle(cs_sched *s)
{
    static volatile sig_atomic_t never;
    cs_error err = {0};
    cr_assert_eq(cs_sched_run(s, &never, &err), CS_OK, "%s", err.msg);
}

/* Submit the job spec `json` (the native format, as cellctl submit reads
 * it) straight to the store, stamped as ts_job stamps. */
static cs_id local_submit(cs_store *st, const char *json)
{
    cs_jobspec spec;
    cs_error err = {0};
    cr_assert_eq(cs_jobspec_parse(json, strlen(json), &spec, &err), CS_OK, "%s: %s", json, err.msg);
    spec.job.submitted = TS_SUBMITTED_MS;
    cs_id id = 0;
    cr_assert_eq(cs_op_job_submit(st, &spec.job, &id, NULL, &err), CS_OK, "%s: %s", json, err.msg);
    cs_jobspec_free(&spec);
    return id;
}

static cs_task local_task(cs_store *st, cs_id task)
{
    cs_arena a;
    cs_arena_init(&a);
    cs_task t;
    ts_get_task(st, task, &a, &t);
    t.ports = NULL;
    t.reason = NULL;
    cs_arena_free(&a);
    return t;
}

/* Tasks of `job` (its first n) placed, and their machines in `on`. */
static uint32_t local_placed(cs_store *st, cs_id job, uint32_t n, cs_id *on)
{
    uint32_t placed = 0;
    for (uint32_t i = 0; i < n; i++) {
        cs_task t = local_task(st, cs_task_id(job, i));
        if (cs_task_state_placed(t.state)) {
            if (on != NULL)
                on[placed] = t.machine;
            placed++;
        }
    }
    return placed;
}

static void local_note(cs_store *st, cs_id job, char *out, size_t size)
{
    cs_snap *snap;
    cs_error err = {0};
    cs_arena a;
    cs_arena_init(&a);
    cr_assert_eq(cs_snap_open(st, &snap, &err), CS_OK, "%s", err.msg);
    cs_job j;
    cr_assert_eq(cs_snap_job(snap, job, &a, &j, &err), CS_OK, "%s", err.msg);
    snprintf(out, size, "%s", j.note ? j.note : "");
    cs_snap_close(snap);
    cs_arena_free(&a);
}

static void local_invariants(cs_store *st)
{
    char why[256];
    cr_assert(ts_check_invariants(st, why, sizeof why), "%s", why);
}

static cs_id local_machine(cs_store *st, const char *name, int64_t cpu, const char *attr)
{
    const char *attrs[] = {attr};
    return ts_machine(st, name, cpu, 4096, 100000, 31000, 31099, attrs, attr ? 1 : 0);
}

/* Machines prefix0 .. prefix<n-1>, `cpu` millicores each. */
static void local_machines(cs_store *st, const char *prefix, int n, int64_t cpu)
{
    for (int i = 0; i < n; i++) {
        char name[16];
        snprintf(name, sizeof name, "%s%d", prefix, i);
        local_machine(st, name, cpu, NULL);
    }
}

Test(sched_local, batch_places_what_fits_notes_what_does_not_and_reports)
{
    local_cell l;
    local_open(&l);
    local_machines(l.st.s, "m", 3, 2000);
    cs_id fits = local_submit(l.st.s, "{\"name\": \"fits\", \"count\": 6, \"cmd\": \"x\","
                                      " \"resources\": {\"cpu\": 1}}");
    cs_id big = local_submit(l.st.s, "{\"name\": \"big\", \"count\": 1, \"cmd\": \"x\","
                                     " \"resources\": {\"cpu\": 5}}");
    cs_sched_opts o;
    cs_sched *s = local_start(CS_SCHED_BATCH, "b1", &o, cs_port_local_table(l.port));
    settle(s);

    cr_assert_eq(local_placed(l.st.s, fits, 6, NULL), 6);
    cr_assert_eq(local_placed(l.st.s, big, 1, NULL), 0);
    local_invariants(l.st.s);
    char note[CS_NOTE_MAX + 1];
    local_note(l.st.s, fits, note, sizeof note);
    cr_assert_str_empty(note);
    local_note(l.st.s, big, note, sizeof note);
    cr_assert(strstr(note, "no machine fits") != NULL, "note: %s", note);

    /* The final report went through the port, read as cellstated reads it. */
    const cs_sched_report *r = cs_port_local_last_report(l.port);
    cr_assert_not_null(r);
    cr_assert_str_eq(r->name, "b1");
    cr_assert_str_eq(r->kind, "batch");
    cs_port_local_counts k;
    cs_port_local_counts_get(l.port, &k);
    cr_assert_geq(k.commits, 1);
    cr_assert_eq(k.committed, 6);
    cr_assert_eq(k.full_syncs, 1, "only the first sync is a full one");
    cs_sched_free(s);
    local_close(&l);
}

/* A port that, at the first commit of its scheduler, lets another
 * scheduler run a whole round first: the other decides on a fresh copy and
 * commits while this one holds a decision made on the cell as it was —
 * Omega's race, at a moment the test chooses. */
typedef struct racing {
    cs_sched *other;
    bool raced;
    uint32_t commits, conflicted; /* this scheduler's, with a conflicting claim */
} racing;

static int race_commit(tb_port *w, const cs_txn *t, cs_txn_result *r, cs_error *err)
{
    racing *x = w->user;
    if (!x->raced) {
        x->raced = true;
        static volatile sig_atomic_t never;
        bool synced, progress;
        cr_assert_eq(cs_sched_round(x->other, &never, &synced, &progress, err), CS_OK, "%s",
                     err->msg);
        cr_assert(synced && progress, "the other scheduler committed nothing");
    }
    int rc = w->base->commit(w->base->ctx, t, r, err);
    if (rc == CS_OK && t->nclaims > 0) {
        x->commits++;
        x->conflicted += r->conflicts > 0;
    }
    return rc;
}

Test(sched_local, batch_and_service_race_for_a_machine_and_the_loser_retries)
{
    local_cell l;
    local_open(&l);
    cs_id m[2] = {ts_machine(l.st.s, "m0", 2000, 4096, 1000, 0, 0, NULL, 0),
                  ts_machine(l.st.s, "m1", 2000, 4096, 1000, 0, 0, NULL, 0)};
    cs_id batch = local_submit(l.st.s, "{\"name\": \"crunch\", \"count\": 2, \"cmd\": \"x\","
                                       " \"resources\": {\"cpu\": 1}}");
    cs_id svc = local_submit(l.st.s, "{\"name\": \"web\", \"kind\": \"service\", \"count\": 2,"
                                     " \"cmd\": \"x\", \"resources\": {\"cpu\": 1}}");

    /* The batch scheduler packs both its tasks onto one machine; while it
     * decides, the service scheduler spreads its two over both machines
     * and commits first. */
    cs_sched_opts ob, os;
    local_opts(CS_SCHED_BATCH, &ob, "batch", NULL);
    local_opts(CS_SCHED_SERVICE, &os, "service", NULL);
    racing x = {0};
    tb_port w;
    tb_port_wrap(&w, cs_port_local_table(l.port), race_commit, &x);
    cs_sched *b = local_sched(&ob, &w.table);
    x.other = local_sched(&os, cs_port_local_table(l.port));
    settle(b);

    /* Its first commit conflicted (the machine it packed onto lost half of
     * its room meanwhile: incremental, one claim committed); it resynced
     * and placed the other task on the machine that had room. */
    cr_assert(x.raced);
    cr_assert_geq(x.conflicted, 1, "no conflict in %u commits", x.commits);
    cr_assert_geq(x.commits, 2, "the conflicted claim was not retried");
    cs_id on[2];
    cr_assert_eq(local_placed(l.st.s, svc, 2, on), 2);
    cr_assert_neq(on[0], on[1], "the service spreads");
    cr_assert_eq(local_placed(l.st.s, batch, 2, on), 2);
    cr_assert_neq(on[0], on[1], "the retry went to the other machine");
    cr_assert(on[0] == m[0] || on[0] == m[1]);
    local_invariants(l.st.s);
    cs_sched_free(b);
    cs_sched_free(x.other);
    local_close(&l);
}

Test(sched_local, restart_back_off_is_waited_out_in_virtual_time)
{
    local_cell l;
    local_open(&l);
    ts_machine(l.st.s, "m0", 2000, 4096, 1000, 0, 0, NULL, 0);
    cs_id web = local_submit(l.st.s, "{\"name\": \"web\", \"kind\": \"service\", \"count\": 1,"
                                     " \"cmd\": \"x\", \"resources\": {\"cpu\": 1},"
                                     " \"backoff\": 30, \"backoff_factor\": 1}");
    cs_id t0 = cs_task_id(web, 0);
    cs_sched_opts o;
    cs_sched *s = local_start(CS_SCHED_SERVICE, "service", &o, cs_port_local_table(l.port));
    settle(s);
    cs_task t = local_task(l.st.s, t0);
    cr_assert_eq(t.state, CS_TASK_ASSIGNED);
    cr_assert_eq(t.attempts, 1);

    /* Its agent says it failed. The next upkeep sees the end and holds the
     * restart for 30 s of the port's time, saying so in the job's note. */
    cs_error err = {0};
    cr_assert_eq(cs_op_task_status(l.st.s, t0, 1, CS_TASK_FAILED, 1, "exit 1", NULL, &err), CS_OK,
                 "%s", err.msg);
    const cs_sched_port *p = cs_port_local_table(l.port);
    cs_port_local_advance(l.port, 1000000000);
    int64_t seen_wall = p->wall(p->ctx);
    settle(s);
    cr_assert_eq(local_task(l.st.s, t0).state, CS_TASK_FAILED);
    char note[CS_NOTE_MAX + 1];
    local_note(l.st.s, web, note, sizeof note);
    uint64_t start;
    const char *rest;
    cr_assert(cs_backoff_note_parse(note, &start, &rest), "note: %s", note);
    cr_assert_eq((int64_t)start, seen_wall + 30000, "note: %s", note);

    /* 29 s later it still waits; 2 s more and it runs again. */
    cs_port_local_advance(l.port, INT64_C(29000000000));
    settle(s);
    cr_assert_eq(local_task(l.st.s, t0).state, CS_TASK_FAILED);
    cs_port_local_advance(l.port, INT64_C(2000000000));
    settle(s);
    t = local_task(l.st.s, t0);
    cr_assert_eq(t.state, CS_TASK_ASSIGNED);
    cr_assert_eq(t.attempts, 2);
    local_invariants(l.st.s);
    cs_sched_free(s);
    local_close(&l);
}

/* Loop behaviours these suites once showed with cell-batch and
 * cell-service processes against cellstated, polling for up to 20 s each:
 * on the local port they take milliseconds and cannot be flaky. */

Test(sched_local, gang_job_is_placed_whole_or_not_at_all)
{
    local_cell l;
    local_open(&l);
    local_machines(l.st.s, "g", 3, 1000);
    cs_sched_opts o;
    cs_sched *s = local_start(CS_SCHED_BATCH, "batch", &o, cs_port_local_table(l.port));
    cs_id big = local_submit(l.st.s, "{\"name\": \"big\", \"count\": 4, \"gang\": true,"
                                     " \"cmd\": \"x\", \"resources\": {\"cpu\": 1}}");
    settle(s);
    cr_assert_eq(local_placed(l.st.s, big, 4, NULL), 0, "4 x 1 core on 3 cores: nothing placed");
    char note[CS_NOTE_MAX + 1];
    local_note(l.st.s, big, note, sizeof note);
    cr_assert(strstr(note, "cpu") != NULL, "the note says why: %s", note);
    cs_id fits = local_submit(l.st.s, "{\"name\": \"fits\", \"count\": 3, \"gang\": true,"
                                      " \"cmd\": \"x\", \"resources\": {\"cpu\": 1}}");
    settle(s);
    cr_assert_eq(local_placed(l.st.s, fits, 3, NULL), 3, "3 x 1 core: all of it");
    cr_assert_eq(local_placed(l.st.s, big, 4, NULL), 0);
    local_invariants(l.st.s);
    cs_sched_free(s);
    local_close(&l);
}

Test(sched_local, preemption_evicts_batch_work_which_is_placed_again)
{
    local_cell l;
    local_open(&l);
    local_machine(l.st.s, "p0", 1000, NULL);
    local_machine(l.st.s, "p1", 1000, NULL);
    cs_sched_opts ob, os;
    local_opts(CS_SCHED_BATCH, &ob, "batch", NULL);
    local_opts(CS_SCHED_SERVICE, &os, "service", NULL);
    cs_sched *b = local_sched(&ob, cs_port_local_table(l.port));
    cs_sched *sv = local_sched(&os, cs_port_local_table(l.port));
    cs_id lo = local_submit(l.st.s, "{\"name\": \"lo\", \"count\": 4, \"priority\": 10,"
                                    " \"cmd\": \"x\", \"resources\": {\"cpu\": 0.5}}");
    settle(b);
    cr_assert_eq(local_placed(l.st.s, lo, 4, NULL), 4);
    cs_id hi = local_submit(l.st.s, "{\"name\": \"hi\", \"kind\": \"service\", \"count\": 2,"
                                    " \"priority\": 100, \"cmd\": \"x\","
                                    " \"resources\": {\"cpu\": 0.5}}");
    settle(sv);
    cr_assert_eq(local_placed(l.st.s, hi, 2, NULL), 2, "the service found room by preempting");
    cr_assert_eq(local_placed(l.st.s, lo, 4, NULL), 2, "two batch tasks were evicted");
    uint32_t preempted = 0;
    for (uint32_t i = 0; i < 4; i++) {
        cs_task t = local_task(l.st.s, cs_task_id(lo, i));
        preempted += t.state == CS_TASK_PENDING && t.last_end == CS_TASK_PREEMPTED;
    }
    cr_assert_eq(preempted, 2, "evicted tasks wait, pending, marked preempted");

    /* Room appears: once its parking has passed, the batch scheduler
     * places them again. */
    local_machine(l.st.s, "p2", 1000, NULL);
    cs_port_local_advance(l.port, INT64_C(1000000000));
    settle(b);
    cr_assert_eq(local_placed(l.st.s, lo, 4, NULL), 4, "the evicted batch work is placed again");
    uint32_t again = 0;
    for (uint32_t i = 0; i < 4; i++)
        again += local_task(l.st.s, cs_task_id(lo, i)).attempts == 2;
    cr_assert_eq(again, 2, "the two evicted tasks run their second placement");
    local_invariants(l.st.s);
    cs_sched_free(b);
    cs_sched_free(sv);
    local_close(&l);
}

Test(sched_local, service_tasks_of_a_lost_machine_are_replaced_elsewhere)
{
    local_cell l;
    local_open(&l);
    local_machines(l.st.s, "l", 3, 4000);
    cs_sched_opts o;
    cs_sched *s = local_start(CS_SCHED_SERVICE, "service", &o, cs_port_local_table(l.port));
    cs_id web = local_submit(l.st.s, "{\"name\": \"web\", \"kind\": \"service\", \"count\": 2,"
                                     " \"cmd\": \"x\", \"ports\": [0],"
                                     " \"constraints\": [[\"hostname\", \"UNIQUE\"]]}");
    settle(s);
    cs_id on[2];
    cr_assert_eq(local_placed(l.st.s, web, 2, on), 2);
    cs_id gone = on[0];
    cs_error err = {0};
    cr_assert_eq(cs_op_machine_state(l.st.s, gone, CS_MACHINE_DOWN, NULL, &err), CS_OK, "%s",
                 err.msg);
    cs_port_local_advance(l.port, INT64_C(1000000000));
    settle(s);
    cr_assert_eq(local_placed(l.st.s, web, 2, on), 2, "the lost task is replaced");
    cr_assert(on[0] != gone && on[1] != gone, "not on the machine that went down");
    cs_task t = local_task(l.st.s, cs_task_id(web, 0));
    cr_assert_eq(t.attempts, 2);
    cr_assert_eq(t.last_end, CS_TASK_LOST);
    local_invariants(l.st.s);
    cs_sched_free(s);
    local_close(&l);
}

Test(sched_local, global_job_runs_one_task_on_every_machine_and_follows_new_ones)
{
    local_cell l;
    local_open(&l);
    local_machine(l.st.s, "n0", 1000, "role=node");
    local_machine(l.st.s, "n1", 1000, "role=node");
    cs_id other = local_machine(l.st.s, "x0", 1000, "role=other");
    cs_sched_opts o;
    cs_sched *s = local_start(CS_SCHED_SERVICE, "service", &o, cs_port_local_table(l.port));
    cs_id logs = local_submit(l.st.s, "{\"name\": \"logs\", \"kind\": \"service\", \"global\": true,"
                                      " \"count\": 0, \"cmd\": \"x\", \"resources\": {\"cpu\": 0.1},"
                                      " \"constraints\": [[\"role\", \"==\", \"node\"]]}");
    settle(s);
    cs_id on[3];
    cr_assert_eq(local_placed(l.st.s, logs, 2, on), 2, "one on each node");
    cr_assert_neq(on[0], on[1]);
    local_machine(l.st.s, "n2", 1000, "role=node");
    cs_port_local_advance(l.port, INT64_C(1000000000));
    settle(s);
    cr_assert_eq(local_placed(l.st.s, logs, 3, on), 3, "and one on the node that joined");
    for (int i = 0; i < 3; i++) {
        cr_assert_neq(on[i], other, "a task on the machine that is not a node");
        for (int k = 0; k < i; k++)
            cr_assert_neq(on[i], on[k], "two tasks on one machine");
    }
    local_invariants(l.st.s);
    cs_sched_free(s);
    local_close(&l);
}

Test(sched_local, failed_batch_task_is_retried_up_to_its_limit_and_its_job_fails)
{
    local_cell l;
    local_open(&l);
    local_machine(l.st.s, "r0", 1000, NULL);
    cs_sched_opts o;
    cs_sched *s = local_start(CS_SCHED_BATCH, "batch", &o, cs_port_local_table(l.port));
    cs_id j = local_submit(l.st.s, "{\"name\": \"flaky\", \"count\": 1, \"max_retries\": 1,"
                                   " \"cmd\": \"x\"}");
    cs_id t = cs_task_id(j, 0);
    cs_error err = {0};
    for (uint32_t attempt = 1; attempt <= 2; attempt++) {
        settle(s);
        cs_task k = local_task(l.st.s, t);
        cr_assert_eq(k.state, CS_TASK_ASSIGNED, "attempt %u", attempt);
        cr_assert_eq(k.attempts, attempt);
        cr_assert_eq(cs_op_task_status(l.st.s, t, attempt, CS_TASK_FAILED, 1, "exit 1", NULL, &err),
                     CS_OK, "%s", err.msg);
        cs_port_local_advance(l.port, INT64_C(1000000000));
    }
    /* A minute of upkeep later: no third placement (max_retries is 1), and
     * the job has ended, failed. */
    for (int i = 0; i < 60; i++) {
        settle(s);
        cs_port_local_advance(l.port, INT64_C(1000000000));
    }
    cs_task k = local_task(l.st.s, t);
    cr_assert_eq(k.state, CS_TASK_FAILED);
    cr_assert_eq(k.attempts, 2);
    cs_snap *snap;
    cs_arena a;
    cs_arena_init(&a);
    cr_assert_eq(cs_snap_open(l.st.s, &snap, &err), CS_OK, "%s", err.msg);
    cs_job job;
    cr_assert_eq(cs_snap_job(snap, j, &a, &job, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(job.state, CS_JOB_FAILED);
    cr_assert_eq(job.ended, (uint64_t)VWALL_MS + 2000, "ended at the port's time");
    cs_snap_close(snap);
    cs_arena_free(&a);
    cs_sched_free(s);
    local_close(&l);
}

Test(sched_local, small_jobs_share_one_transaction_and_each_keeps_its_note)
{
    local_cell l;
    local_open(&l);
    local_machines(l.st.s, "s", 2, 4000);
    cs_id small[3];
    for (int i = 0; i < 3; i++) {
        char json[128];
        snprintf(json, sizeof json,
                 "{\"name\": \"small%d\", \"count\": 4, \"cmd\": \"x\", \"resources\": {\"cpu\": 0.5}}",
                 i);
        small[i] = local_submit(l.st.s, json);
    }
    /* Between them, one that fits nowhere: the batch places the others and
     * says why this one waits. */
    cs_id huge = local_submit(l.st.s, "{\"name\": \"huge\", \"count\": 2, \"cmd\": \"x\","
                                      " \"resources\": {\"cpu\": 64}}");
    cs_sched_opts o;
    cs_sched *s = local_start(CS_SCHED_BATCH, "batch", &o, cs_port_local_table(l.port));
    settle(s);
    /* One commit for the four jobs (12 claims), not one per job. */
    cs_port_local_counts k;
    cs_port_local_counts_get(l.port, &k);
    cr_assert_eq(k.commits, 1);
    cr_assert_eq(k.claims, 12);
    cr_assert_eq(k.committed, 12);
    char note[CS_NOTE_MAX + 1];
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(local_placed(l.st.s, small[i], 4, NULL), 4, "small%d", i);
        local_note(l.st.s, small[i], note, sizeof note);
        cr_assert_str_empty(note, "small%d has no note", i);
    }
    cr_assert_eq(local_placed(l.st.s, huge, 2, NULL), 0);
    local_note(l.st.s, huge, note, sizeof note);
    cr_assert(strstr(note, "cpu") != NULL, "huge says why: '%s'", note);
    local_invariants(l.st.s);
    cs_sched_free(s);
    local_close(&l);
}

/* How many of the first n tasks of `job` are placed on `machine`. */
static uint32_t local_on(cs_store *st, cs_id job, uint32_t n, cs_id machine)
{
    cs_id on[8];
    uint32_t placed = local_placed(st, job, n, on), k = 0;
    for (uint32_t i = 0; i < placed; i++)
        k += on[i] == machine;
    return k;
}

/* A machine that gets a NoExecute taint loses the tasks that do not
 * tolerate it (placed again elsewhere), keeps those that tolerate it for
 * ever, and loses those that tolerate it for tolerationSeconds once that
 * has passed — on the port's clock. */
Test(sched_local, no_execute_taint_evicts_what_does_not_tolerate_it)
{
    local_cell l;
    local_open(&l);
    cs_id n0 = local_machine(l.st.s, "n0", 8000, NULL);
    cs_sched_opts o;
    cs_sched *s = local_start(CS_SCHED_SERVICE, "service", &o, cs_port_local_table(l.port));
    cs_id plain = local_submit(l.st.s, "{\"name\": \"plain\", \"kind\": \"service\", \"count\": 2,"
                                       " \"cmd\": \"x\", \"resources\": {\"cpu\": 0.1, \"mem\": 64}}");
    cs_id stay = local_submit(l.st.s, "{\"name\": \"stay\", \"kind\": \"service\", \"count\": 2,"
                                      " \"cmd\": \"x\", \"resources\": {\"cpu\": 0.1, \"mem\": 64},"
                                      " \"tolerations\": [{\"key\": \"maintenance\","
                                      " \"operator\": \"Exists\", \"effect\": \"NoExecute\"}]}");
    cs_id brief = local_submit(l.st.s, "{\"name\": \"brief\", \"kind\": \"service\", \"count\": 2,"
                                       " \"cmd\": \"x\", \"resources\": {\"cpu\": 0.1, \"mem\": 64},"
                                       " \"tolerations\": [{\"key\": \"maintenance\","
                                       " \"operator\": \"Exists\", \"effect\": \"NoExecute\","
                                       " \"tolerationSeconds\": 1}]}");
    settle(s);
    cr_assert_eq(local_on(l.st.s, plain, 2, n0), 2);
    cr_assert_eq(local_on(l.st.s, stay, 2, n0), 2);
    cr_assert_eq(local_on(l.st.s, brief, 2, n0), 2);

    local_machine(l.st.s, "n1", 8000, NULL);
    cs_arena a;
    cs_arena_init(&a);
    cs_machine m;
    ts_get_machine(l.st.s, n0, &a, &m);
    cs_taint taint = {"maintenance", "", CS_TAINT_NO_EXECUTE};
    m.taints = &taint;
    m.ntaints = 1;
    cs_error err = {0};
    cr_assert_eq(cs_op_machine_put(l.st.s, &m, NULL, NULL, &err), CS_OK, "%s", err.msg);
    cs_arena_free(&a);
    cs_port_local_advance(l.port, INT64_C(100000000));
    settle(s);
    cr_assert_eq(local_on(l.st.s, plain, 2, n0), 0, "plain left n0");
    cr_assert_eq(local_placed(l.st.s, plain, 2, NULL), 2, "and runs on n1");
    cr_assert_eq(local_on(l.st.s, stay, 2, n0), 2, "tolerated without a limit: stays");
    cr_assert_eq(local_on(l.st.s, brief, 2, n0), 2, "tolerated for 1 s: not yet");
    cs_port_local_advance(l.port, INT64_C(1100000000));
    settle(s);
    cr_assert_eq(local_on(l.st.s, brief, 2, n0), 0, "tolerated for 1 s: leaves after it");
    cr_assert_eq(local_placed(l.st.s, brief, 2, NULL), 2);
    cr_assert_eq(local_on(l.st.s, stay, 2, n0), 2);
    local_invariants(l.st.s);
    cs_sched_free(s);
    local_close(&l);
}

/* One scripted run of both schedulers on a fresh store: jobs of both kinds,
 * rounds taken in turn with 20 ms of the port's time between them, a
 * task failing and a machine going down on the way. Returns the whole
 * store's dump (log and idempotency records included; caller frees) and
 * how many tasks ended up placed. */
static uint8_t *scripted_run(size_t *len, uint32_t *placed)
{
    local_cell l;
    local_open(&l);
    cs_id m[4];
    for (int i = 0; i < 4; i++) {
        char name[16], rack[16];
        snprintf(name, sizeof name, "d%d", i);
        snprintf(rack, sizeof rack, "rack=r%d", i % 2);
        m[i] = local_machine(l.st.s, name, 4000, rack);
    }
    cs_id jobs[4] = {
        local_submit(l.st.s, "{\"name\": \"b1\", \"count\": 6, \"cmd\": \"x\","
                             " \"resources\": {\"cpu\": 0.5}}"),
        local_submit(l.st.s, "{\"name\": \"b2\", \"count\": 3, \"cmd\": \"x\", \"gang\": true,"
                             " \"resources\": {\"cpu\": 1}}"),
        local_submit(l.st.s, "{\"name\": \"web\", \"kind\": \"service\", \"count\": 3,"
                             " \"cmd\": \"x\", \"ports\": [0],"
                             " \"constraints\": [[\"hostname\", \"UNIQUE\"]]}"),
        local_submit(l.st.s, "{\"name\": \"api\", \"kind\": \"service\", \"count\": 2,"
                             " \"cmd\": \"x\", \"resources\": {\"cpu\": 0.25},"
                             " \"constraints\": [[\"rack\", \"==\", \"r1\"]]}"),
    };
    uint32_t counts[4] = {6, 3, 3, 2};
    cs_sched_opts ob, os;
    cs_sched *b = local_start(CS_SCHED_BATCH, "batch", &ob, cs_port_local_table(l.port));
    cs_sched *s = local_start(CS_SCHED_SERVICE, "service", &os, cs_port_local_table(l.port));
    static volatile sig_atomic_t never;
    cs_error err = {0};
    for (int step = 0; step < 40; step++) {
        bool synced, progress;
        cr_assert_eq(cs_sched_round(step % 2 ? s : b, &never, &synced, &progress, &err), CS_OK,
                     "%s", err.msg);
        cs_port_local_advance(l.port, INT64_C(20000000));
        if (step == 10)
            cr_assert_eq(cs_op_task_status(l.st.s, cs_task_id(jobs[0], 0), 1, CS_TASK_FAILED, 1,
                                           "exit 1", NULL, &err),
                         CS_OK, "%s", err.msg);
        if (step == 20)
            cr_assert_eq(cs_op_machine_state(l.st.s, m[3], CS_MACHINE_DOWN, NULL, &err), CS_OK,
                         "%s", err.msg);
    }
    *placed = 0;
    for (int i = 0; i < 4; i++)
        *placed += local_placed(l.st.s, jobs[i], counts[i], NULL);
    local_invariants(l.st.s);
    uint8_t *dump;
    ts_dump(l.st.s, &dump, len);
    cs_sched_free(b);
    cs_sched_free(s);
    local_close(&l);
    return dump;
}

Test(sched_local, the_same_script_gives_the_same_store_byte_for_byte)
{
    size_t la, lb;
    uint32_t pa, pb;
    uint8_t *a = scripted_run(&la, &pa);
    uint8_t *b = scripted_run(&lb, &pb);
    cr_assert_eq(pa, 14, "every task placed again after the failure and the lost machine");
    cr_assert_eq(pb, pa);
    cr_assert_eq(la, lb, "%zu and %zu bytes", la, lb);
    cr_assert(memcmp(a, b, la) == 0, "two runs of the same script differ");
    free(a);
    free(b);
}

/* ---- paper-faithful switches (issue 15 §6) -------------------------------------- */

/* Submit `n` batch jobs name0 .. name<n-1> of `count` tasks of `cpu`
 * millicores each into ids[]. */
static void local_jobs(cs_store *st, const char *name, int n, int count, int cpu, cs_id *ids)
{
    for (int i = 0; i < n; i++) {
        char json[256];
        snprintf(json, sizeof json,
                 "{\"name\": \"%s%d\", \"count\": %d, \"cmd\": \"x\", \"resources\": {\"cpu\": %g}}",
                 name, i, count, cpu / 1000.0);
        ids[i] = local_submit(st, json);
    }
}

/* The metric `key` of the latest report, as a double (0 when absent). */
static double report_metric(const cs_port_local *port, const char *key)
{
    const cs_sched_report *r = cs_port_local_last_report(port);
    cr_assert_not_null(r);
    for (uint32_t i = 0; i < r->nmetrics; i++)
        if (strcmp(r->metrics[i].key, key) == 0)
            return r->metrics[i].type == CS_METRIC_FLOAT ? r->metrics[i].v.f
                                                         : (double)r->metrics[i].v.u;
    cr_assert_fail("metric %s not in the report", key);
    return 0;
}

Test(sched_local, txn_per_job_commits_each_job_alone_where_the_default_shares_one)
{
    for (int per_job = 0; per_job < 2; per_job++) {
        local_cell l;
        local_open(&l);
        local_machines(l.st.s, "m", 4, 8000);
        cs_id ids[5];
        local_jobs(l.st.s, "small", 5, 2, 1000, ids);
        cs_sched_opts o;
        local_opts(CS_SCHED_BATCH, &o, "b", per_job ? "--txn-per-job" : NULL, NULL);
        cs_sched *s = local_sched(&o, cs_port_local_table(l.port));
        settle(s);
        for (int i = 0; i < 5; i++)
            cr_assert_eq(local_placed(l.st.s, ids[i], 2, NULL), 2);
        cs_port_local_counts k;
        cs_port_local_counts_get(l.port, &k);
        /* Five jobs of two claims: one shared transaction by default, five
         * with --txn-per-job, and the report counts them so. */
        cr_assert_eq(k.commits, per_job ? 5u : 1u, "commits %" PRIu64, k.commits);
        cr_assert_eq(report_metric(l.port, "txn_committed"), per_job ? 5 : 1);
        local_invariants(l.st.s);
        cs_sched_free(s);
        local_close(&l);
    }
}

/* A port whose commits of job `deny`'s claims conflict (the store is not
 * asked: every claim comes back "machine changed") the first `times`
 * times, and that lists the job of each commit in order. At the first
 * denial it may submit `late` (a spec) to the store, a job that arrives
 * while the denied one is decided. */
typedef struct denier {
    cs_store *st;
    cs_id deny;
    uint32_t times, denied;
    const char *late;
    cs_id late_id;
    cs_id order[16]; /* the job of each commit with claims, denied ones too */
    int64_t at[16];  /* and its virtual time */
    uint32_t n;
} denier;

static int deny_commit(tb_port *w, const cs_txn *t, cs_txn_result *r, cs_error *err)
{
    denier *d = w->user;
    if (t->nclaims > 0 && d->n < 16) {
        d->order[d->n] = cs_task_job(t->claims[0].task);
        d->at[d->n++] = w->base->now(w->base->ctx);
    }
    if (t->nclaims == 0 || cs_task_job(t->claims[0].task) != d->deny || d->denied >= d->times)
        return w->base->commit(w->base->ctx, t, r, err);
    d->denied++;
    if (d->late != NULL && d->late_id == 0)
        d->late_id = local_submit(d->st, d->late);
    cr_assert_eq(cs_txn_result_prepare(r, t), CS_OK);
    for (uint32_t i = 0; i < t->nclaims; i++)
        r->claims[i] = CS_CONFLICT_MACHINE_CHANGED;
    r->conflicts = t->nclaims;
    r->committed = 0;
    return CS_OK;
}

/* `n` rounds of `s`, the virtual clock moving 10 ms (--idle-ms) after
 * each, as cs_sched_run would sleep after a round without progress. */
static void rounds(cs_sched *s, cs_port_local *port, int n)
{
    static volatile sig_atomic_t never;
    for (int i = 0; i < n; i++) {
        bool synced, progress;
        cs_error err = {0};
        cr_assert_eq(cs_sched_round(s, &never, &synced, &progress, &err), CS_OK, "%s", err.msg);
        cs_port_local_advance(port, INT64_C(10000000));
    }
}

/* Jobs A and B (B submitted while A's first commit is refused): the order
 * of the commits of the round after, under `retry`. */
static void retry_order(const char *retry, denier *d)
{
    local_cell l;
    local_open(&l);
    local_machines(l.st.s, "m", 2, 8000);
    cs_id a = local_submit(l.st.s, "{\"name\": \"a\", \"count\": 1, \"cmd\": \"x\","
                                   " \"resources\": {\"cpu\": 1}}");
    *d = (denier){.st = l.st.s, .deny = a, .times = 1,
                  .late = "{\"name\": \"b\", \"count\": 1, \"cmd\": \"x\","
                          " \"resources\": {\"cpu\": 1}}"};
    cs_sched_opts o;
    local_opts(CS_SCHED_BATCH, &o, "b", "--txn-per-job", "--retry", retry, "--retry-ms", "300",
               NULL);
    tb_port w;
    tb_port_wrap(&w, cs_port_local_table(l.port), deny_commit, d);
    cs_sched *s = local_sched(&o, &w.table);
    rounds(s, l.port, 60);
    cr_assert_eq(local_placed(l.st.s, a, 1, NULL), 1, "the conflicted job was not retried");
    cr_assert_eq(local_placed(l.st.s, d->late_id, 1, NULL), 1);
    cr_assert_eq(d->n, 3, "commits: %u", d->n);
    cr_assert_eq(d->order[0], a);
    local_invariants(l.st.s);
    cs_sched_free(s);
    local_close(&l);
}

Test(sched_local, retry_front_tries_a_conflicted_job_first_and_tail_after_a_back_off_last)
{
    denier d;
    /* Both were submitted at the same moment (ts_job's stamp): by the
     * default, A keeps its place ahead of B, at once. */
    retry_order("front", &d);
    cr_assert_eq(d.order[1], d.deny, "front: the conflicted job goes first");
    cr_assert_eq(d.order[2], d.late_id);
    cr_assert_lt(d.at[1] - d.at[0], INT64_C(300000000), "front waits no back-off");
    /* --retry tail: A queues again after its back-off, behind B. */
    retry_order("tail", &d);
    cr_assert_eq(d.order[1], d.late_id, "tail: the job that waited goes first");
    cr_assert_eq(d.order[2], d.deny);
    cr_assert_geq(d.at[2] - d.at[0], INT64_C(300000000), "tail: retried before its back-off");
}

/* Job `a` whose every commit conflicts, under --max-attempts 3 and
 * `retry`: its note, and the scheduler's jobs_abandoned. */
static void worn_out(const char *retry, char *note, size_t size, double *abandoned,
                     uint32_t *attempts)
{
    local_cell l;
    local_open(&l);
    local_machines(l.st.s, "m", 2, 8000);
    cs_id a = local_submit(l.st.s, "{\"name\": \"a\", \"count\": 2, \"cmd\": \"x\","
                                   " \"resources\": {\"cpu\": 1}}");
    denier d = {.deny = a, .times = UINT32_MAX};
    cs_sched_opts o;
    local_opts(CS_SCHED_BATCH, &o, "b", "--retry", retry, "--max-attempts", "3", NULL);
    tb_port w;
    tb_port_wrap(&w, cs_port_local_table(l.port), deny_commit, &d);
    cs_sched *s = local_sched(&o, &w.table);
    if (strcmp(retry, "tail") == 0) {
        /* --once goes on while a conflicted job waits out its back-off:
         * one run reaches the limit. */
        settle(s);
        cr_assert_eq(d.denied, 3, "--once stopped at attempt %u", d.denied);
    }
    /* A parked job is tried again after --park-ms (200) once the cell
     * changed (its note did): a virtual second of rounds. */
    rounds(s, l.port, 100);
    cr_assert_eq(local_placed(l.st.s, a, 2, NULL), 0);
    local_note(l.st.s, a, note, size);
    *abandoned = report_metric(l.port, "jobs_abandoned");
    *attempts = d.denied;
    cs_sched_free(s);
    local_close(&l);
}

Test(sched_local, retry_tail_abandons_a_job_for_good_and_counts_it)
{
    char note[CS_NOTE_MAX + 1];
    double abandoned;
    uint32_t attempts;
    worn_out("front", note, sizeof note, &abandoned, &attempts);
    cr_assert(strstr(note, "gave up after 3 conflicting attempts") != NULL, "%s", note);
    cr_assert_eq(abandoned, 0);
    cr_assert_gt(attempts, 3, "front: a parked job is tried again once the cell changed");
    worn_out("tail", note, sizeof note, &abandoned, &attempts);
    cr_assert(strstr(note, "abandoned (--retry tail) after 3 conflicting attempts: machine "
                           "changed since the snapshot 6") != NULL,
              "%s", note);
    cr_assert_eq(abandoned, 1);
    cr_assert_eq(attempts, 3, "tail: an abandoned job is never tried again");
}

/* A port whose first commit with claims sets the scheduler's stop flag:
 * the round ends there, the other candidates not yet attempted. */
typedef struct stopper {
    volatile sig_atomic_t stop;
} stopper;

static int stop_commit(tb_port *w, const cs_txn *t, cs_txn_result *r, cs_error *err)
{
    stopper *x = w->user;
    if (t->nclaims > 0)
        x->stop = 1;
    return w->base->commit(w->base->ctx, t, r, err);
}

Test(sched_local, report_counts_jobs_still_waiting_in_the_mean_wait)
{
    local_cell l;
    local_open(&l);
    local_machines(l.st.s, "m", 2, 8000);
    cs_id ids[4];
    local_jobs(l.st.s, "j", 4, 1, 1000, ids);
    cs_sched_opts o;
    local_opts(CS_SCHED_BATCH, &o, "b", "--txn-per-job", "--t-job", "2", NULL);
    stopper x = {0};
    tb_port w;
    tb_port_wrap(&w, cs_port_local_table(l.port), stop_commit, &x);
    cs_sched *s = local_sched(&o, &w.table);
    bool synced, progress;
    cs_error err = {0};
    cr_assert_eq(cs_sched_round(s, &x.stop, &synced, &progress, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(local_placed(l.st.s, ids[0], 1, NULL), 1);
    cr_assert_eq(local_placed(l.st.s, ids[1], 1, NULL), 0, "the round went on after stop");
    /* The jobs were submitted 1 s before the virtual clock starts: the
     * first waited 1 s for its attempt; the three others, not attempted,
     * have waited 1 s + its 2 s decision when the round reports. */
    cr_assert_eq(report_metric(l.port, "jobs_waited"), 1);
    cr_assert_eq(report_metric(l.port, "wait_first_p50_ms"), 1000);
    cr_assert_eq(report_metric(l.port, "jobs_waiting"), 3);
    cr_assert_float_eq(report_metric(l.port, "wait_first_mean_ms"), 1000, 1e-9);
    cr_assert_float_eq(report_metric(l.port, "wait_mean_ms"), (1000 + 3 * 3000) / 4.0, 1e-9);
    cs_sched_free(s);
    local_close(&l);
}

Test(sched_local, busyness_wasted_is_the_decision_time_of_conflicting_claims)
{
    local_cell l;
    local_open(&l);
    local_machines(l.st.s, "m", 2, 8000);
    cs_id a = local_submit(l.st.s, "{\"name\": \"a\", \"count\": 2, \"cmd\": \"x\","
                                   " \"resources\": {\"cpu\": 1}}");
    /* Its first attempt conflicts whole (1 s of decision wasted), the
     * second commits (1 s useful). */
    denier d = {.deny = a, .times = 1};
    cs_sched_opts o;
    local_opts(CS_SCHED_BATCH, &o, "b", "--t-job", "1", NULL);
    tb_port w;
    tb_port_wrap(&w, cs_port_local_table(l.port), deny_commit, &d);
    cs_sched *s = local_sched(&o, &w.table);
    /* Then rounds with nothing to do until a report (every 100 ms) falls
     * due after the last commit. */
    rounds(s, l.port, 20);
    cr_assert_eq(local_placed(l.st.s, a, 2, NULL), 2);
    double busy = report_metric(l.port, "busyness"), useful = report_metric(l.port, "busyness_useful"),
           wasted = report_metric(l.port, "busyness_wasted");
    cr_assert_gt(wasted, 0, "no decision time counted as wasted");
    cr_assert_float_eq(wasted, useful, 1e-9, "one attempt each: wasted %g, useful %g", wasted,
                       useful);
    cr_assert_float_eq(useful + wasted, busy, 1e-9);
    cs_sched_free(s);
    local_close(&l);
}

/* A port whose sleeps set `stop` once the virtual clock reaches `at`. */
typedef struct alarm_clock {
    volatile sig_atomic_t stop;
    int64_t at;
} alarm_clock;

static void alarm_sleep(void *ctx, int64_t until)
{
    tb_port *w = ctx;
    alarm_clock *a = w->user;
    w->base->sleep(w->base->ctx, until);
    if (w->base->now(w->base->ctx) >= a->at)
        a->stop = 1;
}

static int plain_commit(tb_port *w, const cs_txn *t, cs_txn_result *r, cs_error *err)
{
    return w->base->commit(w->base->ctx, t, r, err);
}

Test(sched_local, reports_flow_through_long_decisions_and_a_stop_ends_one)
{
    for (int stopping = 0; stopping < 2; stopping++) {
        local_cell l;
        local_open(&l);
        local_machines(l.st.s, "m", 2, 8000);
        cs_id ids[3];
        local_jobs(l.st.s, "slow", 3, 1, 1000, ids);
        /* Three small jobs share one transaction, each deciding for 20 s
         * (virtual), a report due every second. */
        cs_sched_opts o;
        local_opts(CS_SCHED_BATCH, &o, "b", "--t-job", "20", "--report-ms", "1000", NULL);
        alarm_clock a = {.at = stopping ? VSTART_NS + INT64_C(5000000000) : INT64_MAX};
        tb_port w;
        tb_port_wrap(&w, cs_port_local_table(l.port), plain_commit, &a);
        w.table.sleep = alarm_sleep;
        cs_sched *s = local_sched(&o, &w.table);
        bool synced, progress;
        cs_error err = {0};
        cr_assert_eq(cs_sched_round(s, &a.stop, &synced, &progress, &err), CS_OK, "%s", err.msg);
        cs_port_local_counts k;
        cs_port_local_counts_get(l.port, &k);
        if (!stopping) {
            /* 60 s of deciding: a report each second, not one at the end. */
            cr_assert_eq(local_placed(l.st.s, ids[2], 1, NULL), 1);
            cr_assert_geq(k.reports, 60, "%" PRIu64 " reports in 60 s", k.reports);
            cr_assert_eq(report_metric(l.port, "jobs_waiting"), 0);
        } else {
            /* Stopped 5 s into the first decision: it ends there, what it
             * placed commits, and no other job is attempted. */
            cr_assert_lt(k.slept_ns, INT64_C(6000000000), "slept %" PRId64 " ns", k.slept_ns);
            cr_assert_eq(local_placed(l.st.s, ids[0], 1, NULL), 1);
            cr_assert_eq(local_placed(l.st.s, ids[1], 1, NULL), 0);
            cr_assert_eq(report_metric(l.port, "attempts"), 1);
            cr_assert_geq(k.reports, 5, "%" PRIu64 " reports in 5 s", k.reports);
        }
        local_invariants(l.st.s);
        cs_sched_free(s);
        local_close(&l);
    }
}

/* The latest metric `key` scheduler `name` reported, from stats; NaN
 * until it has reported. */
static double stats_metric(const char *name, const char *key)
{
    cs_msg r;
    const msgpack_object *s = stats_schedulers(&r);
    for (uint32_t i = 0; s && i < s->via.array.size; i++) {
        const msgpack_object *n = cs_obj_get(&s->via.array.ptr[i], "name");
        if (n == NULL || n->type != MSGPACK_OBJECT_STR || n->via.str.size != strlen(name) ||
            memcmp(n->via.str.ptr, name, strlen(name)) != 0)
            continue;
        const msgpack_object *v = cs_obj_get(cs_obj_get(&s->via.array.ptr[i], "metrics"), key);
        if (v != NULL && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            return (double)v->via.u64;
        if (v != NULL && v->type == MSGPACK_OBJECT_FLOAT64)
            return v->via.f64;
    }
    return (double)NAN;
}

/* cell-batch deciding three jobs for 30 s each (one shared transaction):
 * its reports reach stats during the first decision, and SIGTERM ends it
 * there — the signal cuts the sleep short, the loop looks at its stop flag
 * between jobs — instead of after the batch. */
Test(sched, a_long_decision_reports_and_stops_at_sigterm, .timeout = 120, .fini = cleanup)
{
    cell();
    machine("w0", 8000, 8192, "up", NULL);
    cs_id jobs[3];
    for (int i = 0; i < 3; i++) {
        char json[160];
        snprintf(json, sizeof json,
                 "{\"name\": \"slow%d\", \"count\": 1, \"cmd\": \"x\", \"resources\": {\"cpu\": 0.1}}",
                 i);
        jobs[i] = submit(json);
    }
    proc *p = start("cell-batch", "slow", "--t-job", "30", NULL);
    int64_t end = ts_now_ms() + DEADLINE_MS;
    double waiting = (double)NAN;
    while (ts_now_ms() < end && isnan(waiting = stats_metric("slow", "jobs_waiting")))
        ts_sleep_ms(50);
    if (isnan(waiting))
        dump_procs();
    cr_assert(!isnan(waiting), "no report during the first 30 s decision");
    int st = ts_stop(p->pid, SIGTERM, 10000);
    p->pid = 0;
    if (st == -1)
        dump_procs();
    cr_assert_neq(st, -1, "cell-batch went on deciding after SIGTERM");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
    /* What the cut decision placed committed; the other jobs stay pending. */
    view v;
    look(jobs[0], &v);
    cr_assert_eq(count_placed(&v), 1);
    view_free(&v);
    look(jobs[1], &v);
    cr_assert_eq(count_placed(&v), 0);
    view_free(&v);
}

/* cs_sched_all_hooks (kinds.h): one scheduler owns a batch and a service
 * job, decides each in its kind's time (per_kind_times), and tends each
 * as its own kind's scheduler would: the batch job ends when its one
 * failed task may not retry, the service task waits out its back-off. */
Test(sched_local, one_scheduler_owns_both_kinds_and_tends_each_as_its_own)
{
    local_cell l;
    local_open(&l);
    ts_machine(l.st.s, "m0", 4000, 4096, 1000, 0, 0, NULL, 0);
    cs_id web = local_submit(l.st.s, "{\"name\": \"web\", \"kind\": \"service\", \"count\": 1,"
                                     " \"cmd\": \"x\", \"resources\": {\"cpu\": 1},"
                                     " \"backoff\": 30, \"backoff_factor\": 1}");
    cs_id crunch = local_submit(l.st.s, "{\"name\": \"crunch\", \"kind\": \"batch\", \"count\": 1,"
                                        " \"cmd\": \"x\", \"resources\": {\"cpu\": 1},"
                                        " \"max_retries\": 0}");
    cs_sched_opts o;
    local_opts(CS_SCHED_BATCH, &o, "mono", "--t-job", "1", "--t-task", "0", NULL);
    o.per_kind_times = true;
    o.t_job_service_s = 10;
    o.t_task_service_s = 0;
    const cs_sched_port *p = cs_port_local_table(l.port);
    cs_sched *s;
    cs_error err = {0};
    cr_assert_eq(cs_sched_new(&o, &cs_sched_all_hooks, p, &s, &err), CS_OK, "%s", err.msg);
    int64_t t0 = p->now(p->ctx);
    settle(s);
    cr_assert_eq(local_task(l.st.s, cs_task_id(web, 0)).state, CS_TASK_ASSIGNED);
    cr_assert_eq(local_task(l.st.s, cs_task_id(crunch, 0)).state, CS_TASK_ASSIGNED);
    /* 1 s for the batch job and 10 s for the service job, and the idle
     * waits of --once's last round (--idle-ms 10) at most. */
    int64_t took = p->now(p->ctx) - t0;
    cr_assert(took >= INT64_C(11000000000) && took < INT64_C(12000000000), "took %" PRId64 " ns",
              took);

    /* Both tasks fail. */
    cr_assert_eq(cs_op_task_status(l.st.s, cs_task_id(web, 0), 1, CS_TASK_FAILED, 1, "exit 1",
                                   NULL, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_op_task_status(l.st.s, cs_task_id(crunch, 0), 1, CS_TASK_FAILED, 1, "exit 1",
                                   NULL, &err), CS_OK, "%s", err.msg);
    cs_port_local_advance(l.port, 1000000000);
    settle(s);
    /* The batch job is over: cell-batch's upkeep ended it. */
    cs_snap *snap;
    cs_arena a;
    cs_arena_init(&a);
    cr_assert_eq(cs_snap_open(l.st.s, &snap, &err), CS_OK, "%s", err.msg);
    cs_job j;
    cr_assert_eq(cs_snap_job(snap, crunch, &a, &j, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(j.state, CS_JOB_FAILED);
    cr_assert_eq(cs_snap_job(snap, web, &a, &j, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(j.state, CS_JOB_ACTIVE);
    cs_snap_close(snap);
    cs_arena_free(&a);
    /* The service task waits out its back-off (cell-service's), then runs again. */
    cr_assert_eq(local_task(l.st.s, cs_task_id(web, 0)).state, CS_TASK_FAILED);
    char note[CS_NOTE_MAX + 1];
    local_note(l.st.s, web, note, sizeof note);
    uint64_t start;
    const char *rest;
    cr_assert(cs_backoff_note_parse(note, &start, &rest), "note: %s", note);
    cs_port_local_advance(l.port, INT64_C(31000000000));
    settle(s);
    cs_task t = local_task(l.st.s, cs_task_id(web, 0));
    cr_assert_eq(t.state, CS_TASK_ASSIGNED);
    cr_assert_eq(t.attempts, 2);
    local_invariants(l.st.s);
    cs_sched_free(s);
    local_close(&l);
}
