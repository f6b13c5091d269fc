/* test_ops.c — the cell operations (txn/ops.h) and applying logged commands
 * (txn/command.h): machine registration and update, machine state, job
 * submission and kill, and refusals that must write nothing.
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "cellstate/rng.h"
#include "tests/support.h"
#include "txn/command.h"

/* ---- helpers ------------------------------------------------------------ */


typedef struct dumpb {
    uint8_t *p; /* every database */
    size_t n;
    uint8_t *q; /* every database but the log */
    size_t m;
} dumpb;

static const cs_db not_log[] = {CS_DB_META,      CS_DB_MACHINES, CS_DB_MACHINE_NAMES,
                                CS_DB_JOBS,      CS_DB_JOB_NAMES, CS_DB_TASKS};

static dumpb dump_all(cs_store *s)
{
    dumpb d;
    ts_dump(s, &d.p, &d.n);
    ts_dump_dbs(s, not_log, sizeof not_log / sizeof not_log[0], &d.q, &d.m);
    return d;
}

/* The whole store is byte for byte what it was; frees `before`. */
static void dump_unchanged(cs_store *s, dumpb *before, const char *what)
{
    dumpb now = dump_all(s);
    cr_assert_eq(now.n, before->n, "%s: the store changed size", what);
    cr_assert_arr_eq(now.p, before->p, now.n, "%s: the store changed", what);
    free(now.p);
    free(now.q);
    free(before->p);
    free(before->q);
    before->p = before->q = NULL;
}

/* The store is byte for byte what it was but for the log; frees `before`.
 * Returns whether the log grew. */
static bool cell_unchanged(cs_store *s, dumpb *before, const char *what)
{
    dumpb now = dump_all(s);
    cr_assert_eq(now.m, before->m, "%s: the store changed size", what);
    cr_assert_arr_eq(now.q, before->q, now.m, "%s: the store changed", what);
    bool grew = now.n > before->n;
    free(now.p);
    free(now.q);
    free(before->p);
    free(before->q);
    before->p = before->q = NULL;
    return grew;
}

/* Refused commands (command.h): the store is byte for byte what it was but
 * for their log entries, which there are; frees `before`. */
static void only_logged(cs_store *s, dumpb *before, const char *what)
{
    cr_assert(cell_unchanged(s, before, what), "%s: the refusals were not logged", what);
}

/* Commit one claim (fine, incremental) with the given ports; must commit. */
static void place(cs_store *s, uint64_t req, cs_id task, cs_id machine, int64_t cpu, int64_t mem,
                  const uint16_t *ports, uint32_t nports)
{
    cs_txn tx;
    cs_txn_init(&tx, 1, req, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    cs_res res = {cpu, mem, 0};
    cr_assert_eq(cs_txn_add_claim(&tx, task, machine, &res, ports, nports, 0), CS_OK);
    cs_txn_result r;
    cs_txn_result_init(&r);
    cs_error err = {0};
    cr_assert_eq(cs_commit(s, &tx, &r, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(r.claims[0], CS_COMMITTED, "claim of task %llu on machine %llu: %s",
                 (unsigned long long)task, (unsigned long long)machine,
                 cs_outcome_str(r.claims[0]));
    cs_txn_result_free(&r);
    cs_txn_free(&tx);
}

/* Release a task to `state`; must commit. */
static void release(cs_store *s, uint64_t req, cs_id task, uint8_t state)
{
    cs_txn tx;
    cs_txn_init(&tx, 1, req, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    cr_assert_eq(cs_txn_add_release(&tx, task, state, 0), CS_OK);
    cs_txn_result r;
    cs_txn_result_init(&r);
    cs_error err = {0};
    cr_assert_eq(cs_commit(s, &tx, &r, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(r.releases[0], CS_COMMITTED, "%s", cs_outcome_str(r.releases[0]));
    cs_txn_result_free(&r);
    cs_txn_free(&tx);
}

static void invariants(cs_store *s)
{
    char why[256];
    cr_assert(ts_check_invariants(s, why, sizeof why), "invariant broken: %s", why);
}

static cs_machine machine_spec(const char *name, int64_t cpu, int64_t mem, uint16_t lo, uint16_t hi)
{
    cs_machine m = {0};
    m.name = name;
    m.capacity = (cs_res){cpu, mem, 1000};
    m.port_lo = lo;
    m.port_hi = hi;
    m.state = CS_MACHINE_UP;
    return m;
}

static cs_job job_spec(const char *name, uint32_t count, int64_t cpu, int64_t mem)
{
    cs_job j = {0};
    j.name = name;
    j.kind = CS_JOB_BATCH;
    j.priority = 1;
    j.count = count;
    j.res = (cs_res){cpu, mem, 0};
    j.cmd = "sleep 1";
    return j;
}

static int count_task(void *ctx, const cs_task *t)
{
    (void)t;
    ++*(size_t *)ctx;
    return 0;
}

static size_t placed_on(cs_store *s, cs_id machine)
{
    cs_snap *snap;
    cs_error err = {0};
    cr_assert_eq(cs_snap_open(s, &snap, &err), CS_OK, "%s", err.msg);
    size_t n = 0;
    cr_assert_eq(cs_snap_each_task_on_machine(snap, machine, count_task, &n, &err), CS_OK, "%s",
                 err.msg);
    cs_snap_close(snap);
    return n;
}

static void expect_error(int rc, const cs_error *err, int code, const char *needle)
{
    cr_assert_eq(rc, code, "rc %d (%s), expected %d", rc, err->msg, code);
    cr_assert_eq(err->code, code);
    cr_assert(strstr(err->msg, needle) != NULL, "message '%s' does not name '%s'", err->msg,
              needle);
}

/* ======================================================================= */
/* machines                                                                 */

Test(ops, machine_put_creates_then_updates)
{
    ts_store t;
    ts_store_create(&t);
    cs_error err = {0};
    cs_id id = 0;
    uint64_t v = 0;
    const char *names[] = {"m1", "m2", "m3"};
    for (int i = 0; i < 3; i++) {
        cs_machine spec = machine_spec(names[i], 4000, 4000, 31000, 31010);
        cr_assert_eq(cs_op_machine_put(t.s, &spec, &id, &v, &err), CS_OK, "%s", err.msg);
        cr_assert_eq(id, (cs_id)i + 1);
        cr_assert_eq(v, (uint64_t)i + 1);
    }

    /* a task with a port on m1 */
    uint16_t dyn = 0;
    cs_id j = ts_job(t.s, "web", CS_JOB_SERVICE, 0, 1, 1000, 500, 0, &dyn, 1);
    uint16_t port = 31004;
    place(t.s, 1, cs_task_id(j, 0), 1, 1000, 500, &port, 1);
    cs_arena a;
    cs_arena_init(&a);
    cs_machine m;
    ts_get_machine(t.s, 1, &a, &m);
    uint64_t seq = m.seq;
    uint64_t v0 = ts_version(t.s);

    /* the same name, new capacity and attributes: an update in place */
    cs_attr attrs[] = {{"rack", "r1"}, {"zone", "z9"}};
    cs_machine spec = machine_spec("m1", 8000, 6000, 31000, 31020);
    spec.attrs = attrs;
    spec.nattrs = 2;
    spec.id = 99; /* ignored, like the fields below */
    spec.allocated = (cs_res){1, 2, 3};
    spec.ntasks = 17;
    cr_assert_eq(cs_op_machine_put(t.s, &spec, &id, &v, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(id, 1, "an update made machine %llu", (unsigned long long)id);
    cr_assert_eq(v, v0 + 1);
    ts_get_machine(t.s, 1, &a, &m);
    cr_assert_eq(m.seq, seq + 1, "seq %llu after update, was %llu", (unsigned long long)m.seq,
                 (unsigned long long)seq);
    cr_assert_eq(m.version, v);
    cr_assert_eq(m.capacity.cpu, 8000);
    cr_assert_eq(m.capacity.mem, 6000);
    cr_assert_eq(m.port_hi, 31020);
    cr_assert_eq(m.nattrs, 2);
    cr_assert_str_eq(m.attrs[1].key, "zone");
    cr_assert_str_eq(m.attrs[1].value, "z9");
    /* what is placed is kept */
    cr_assert_eq(m.allocated.cpu, 1000);
    cr_assert_eq(m.allocated.mem, 500);
    cr_assert_eq(m.ntasks, 1);
    cr_assert_eq(m.nports, 1);
    cr_assert_eq(m.ports[0], 31004);
    cr_assert_eq(placed_on(t.s, 1), 1);
    invariants(t.s);

    /* no new machine appeared, and the name still leads to id 1 */
    cs_snap *snap;
    cr_assert_eq(cs_snap_open(t.s, &snap, &err), CS_OK);
    cs_machine byname;
    cr_assert_eq(cs_snap_machine_by_name(snap, "m1", &a, &byname, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(byname.id, 1);
    cr_assert_eq(cs_snap_machine(snap, 4, &a, &byname, &err), CS_ENOTFOUND);
    cs_snap_close(snap);

    /* the identical spec again: nothing written, seq kept */
    static const cs_db cell[] = {CS_DB_MACHINES, CS_DB_MACHINE_NAMES, CS_DB_JOBS,
                                 CS_DB_JOB_NAMES, CS_DB_TASKS};
    uint8_t *before, *after;
    size_t nb, na;
    ts_dump_dbs(t.s, cell, sizeof cell / sizeof cell[0], &before, &nb);
    uint64_t v1 = ts_version(t.s);
    id = 0;
    cr_assert_eq(cs_op_machine_put(t.s, &spec, &id, &v, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(id, 1);
    cr_assert_eq(v, v1, "an identical put moved the version to %llu", (unsigned long long)v);
    cr_assert_eq(ts_version(t.s), v1);
    ts_get_machine(t.s, 1, &a, &m);
    cr_assert_eq(m.seq, seq + 1, "an identical put bumped seq");
    ts_dump_dbs(t.s, cell, sizeof cell / sizeof cell[0], &after, &na);
    cr_assert_eq(na, nb);
    cr_assert_arr_eq(after, before, nb, "an identical put changed a record");
    free(before);
    free(after);

    cs_arena_free(&a);
    ts_store_destroy(&t);
}

Test(ops, capacity_below_allocated_is_refused)
{
    ts_store t;
    ts_store_create(&t);
    cs_id m1 = ts_machine(t.s, "m1", 4000, 4000, 1000, 0, 0, NULL, 0);
    cs_id j = ts_job(t.s, "j", CS_JOB_BATCH, 0, 1, 3000, 2000, 0, NULL, 0);
    place(t.s, 1, cs_task_id(j, 0), m1, 3000, 2000, NULL, 0);

    cs_error err = {0};
    dumpb d = dump_all(t.s);
    uint64_t v = ts_version(t.s);
    cs_machine spec = machine_spec("m1", 2999, 4000, 0, 0);
    expect_error(cs_op_machine_put(t.s, &spec, NULL, NULL, &err), &err, CS_ESTATE, "cpu");
    cr_assert(strstr(err.msg, "m1") != NULL, "%s", err.msg);
    cr_assert_eq(ts_version(t.s), v);
    only_logged(t.s, &d, "capacity below allocated cpu");

    d = dump_all(t.s);
    spec = machine_spec("m1", 4000, 1999, 0, 0);
    expect_error(cs_op_machine_put(t.s, &spec, NULL, NULL, &err), &err, CS_ESTATE, "mem");
    only_logged(t.s, &d, "capacity below allocated mem");

    /* exactly what is allocated is fine */
    spec = machine_spec("m1", 3000, 2000, 0, 0);
    spec.capacity.disk = 0;
    cr_assert_eq(cs_op_machine_put(t.s, &spec, NULL, NULL, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(ts_version(t.s), v + 1);
    invariants(t.s);
    ts_store_destroy(&t);
}

/* Three tasks of `web` on m1 (two) and m2 (one), each with a dynamic port,
 * and a pending task of job `other`. */
typedef struct down_cell {
    cs_id m1, m2, web, other;
} down_cell;

static down_cell build_down_cell(cs_store *s)
{
    down_cell c;
    c.m1 = ts_machine(s, "m1", 4000, 4000, 1000, 31000, 31010, NULL, 0);
    c.m2 = ts_machine(s, "m2", 4000, 4000, 1000, 31000, 31010, NULL, 0);
    uint16_t dyn = 0;
    c.web = ts_job(s, "web", CS_JOB_SERVICE, 0, 3, 1000, 500, 0, &dyn, 1);
    c.other = ts_job(s, "other", CS_JOB_BATCH, 0, 1, 100, 100, 0, NULL, 0);
    uint16_t p0 = 31000, p1 = 31001;
    place(s, 1, cs_task_id(c.web, 0), c.m1, 1000, 500, &p0, 1);
    place(s, 2, cs_task_id(c.web, 1), c.m1, 1000, 500, &p1, 1);
    place(s, 3, cs_task_id(c.web, 2), c.m2, 1000, 500, &p0, 1);
    invariants(s);
    cr_assert_eq(placed_on(s, c.m1), 2);
    return c;
}

static void check_m1_down(cs_store *s, const down_cell *c, uint64_t v)
{
    cs_arena a;
    cs_arena_init(&a);
    cs_machine m;
    cs_task tk;
    ts_get_machine(s, c->m1, &a, &m);
    cr_assert_eq(m.state, CS_MACHINE_DOWN);
    cr_assert_eq(m.allocated.cpu, 0);
    cr_assert_eq(m.allocated.mem, 0);
    cr_assert_eq(m.allocated.disk, 0);
    cr_assert_eq(m.nports, 0, "m1 still holds %u ports", m.nports);
    cr_assert_eq(m.ntasks, 0);
    cr_assert_eq(m.version, v);
    cr_assert_eq(placed_on(s, c->m1), 0, "the placed index still lists tasks on m1");
    for (uint32_t i = 0; i < 2; i++) {
        ts_get_task(s, cs_task_id(c->web, i), &a, &tk);
        cr_assert_eq(tk.state, CS_TASK_LOST, "task %u is %s", i, cs_task_state_name(tk.state));
        cr_assert_eq(tk.nports, 0);
        cr_assert_eq(tk.version, v);
    }
    /* m2 and its task are untouched; the pending task too */
    ts_get_task(s, cs_task_id(c->web, 2), &a, &tk);
    cr_assert_eq(tk.state, CS_TASK_ASSIGNED);
    cr_assert_eq(tk.machine, c->m2);
    ts_get_machine(s, c->m2, &a, &m);
    cr_assert_eq(m.allocated.cpu, 1000);
    cr_assert_eq(m.nports, 1);
    cr_assert_lt(m.version, v);
    ts_get_task(s, cs_task_id(c->other, 0), &a, &tk);
    cr_assert_eq(tk.state, CS_TASK_PENDING);
    cr_assert_eq(placed_on(s, c->m2), 1);
    invariants(s);
    cs_arena_free(&a);
}

Test(ops, machine_down_loses_its_tasks)
{
    ts_store t;
    ts_store_create(&t);
    down_cell c = build_down_cell(t.s);
    cs_error err = {0};
    uint64_t v0 = ts_version(t.s), v = 0;
    cr_assert_eq(cs_op_machine_state(t.s, c.m1, CS_MACHINE_DOWN, &v, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(v, v0 + 1, "machine down and its lost tasks are one command");
    check_m1_down(t.s, &c, v);

    /* down again: nothing to do */
    cr_assert_eq(cs_op_machine_state(t.s, c.m1, CS_MACHINE_DOWN, &v, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(v, v0 + 1);

    /* a claim on a machine that is down conflicts */
    cs_txn tx;
    cs_txn_init(&tx, 1, 50, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    cs_res res = {100, 100, 0};
    cs_txn_add_claim(&tx, cs_task_id(c.other, 0), c.m1, &res, NULL, 0, 0);
    cs_txn_result r;
    cs_txn_result_init(&r);
    cr_assert_eq(cs_commit(t.s, &tx, &r, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(r.claims[0], CS_CONFLICT_MACHINE_NOT_UP);
    cs_txn_result_free(&r);
    cs_txn_free(&tx);

    /* an unknown state or machine: refused, nothing written */
    dumpb d = dump_all(t.s);
    expect_error(cs_op_machine_state(t.s, c.m2, CS_MACHINE_STATE_COUNT, NULL, &err), &err,
                 CS_EINVAL, "state");
    expect_error(cs_op_machine_state(t.s, 42, CS_MACHINE_DRAINING, NULL, &err), &err,
                 CS_ENOTFOUND, "42");
    only_logged(t.s, &d, "bad machine state");

    /* back up: the machine takes tasks again, lost tasks stay lost */
    cr_assert_eq(cs_op_machine_state(t.s, c.m1, CS_MACHINE_UP, NULL, &err), CS_OK, "%s", err.msg);
    place(t.s, 51, cs_task_id(c.other, 0), c.m1, 100, 100, NULL, 0);
    cs_arena a;
    cs_arena_init(&a);
    cs_task tk;
    ts_get_task(t.s, cs_task_id(c.web, 0), &a, &tk);
    cr_assert_eq(tk.state, CS_TASK_LOST);
    cs_arena_free(&a);
    invariants(t.s);
    ts_store_destroy(&t);
}

Test(ops, machine_put_down_loses_its_tasks)
{
    ts_store t;
    ts_store_create(&t);
    down_cell c = build_down_cell(t.s);
    cs_error err = {0};
    uint64_t v = 0;
    cs_machine spec = machine_spec("m1", 4000, 4000, 31000, 31010);
    spec.state = CS_MACHINE_DOWN;
    cs_id id = 0;
    cr_assert_eq(cs_op_machine_put(t.s, &spec, &id, &v, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(id, c.m1);
    check_m1_down(t.s, &c, v);
    ts_store_destroy(&t);
}

Test(ops, machine_draining_keeps_its_tasks)
{
    ts_store t;
    ts_store_create(&t);
    down_cell c = build_down_cell(t.s);
    cs_error err = {0};
    cr_assert_eq(cs_op_machine_state(t.s, c.m1, CS_MACHINE_DRAINING, NULL, &err), CS_OK, "%s",
                 err.msg);
    cr_assert_eq(placed_on(t.s, c.m1), 2);
    cs_arena a;
    cs_arena_init(&a);
    cs_machine m;
    ts_get_machine(t.s, c.m1, &a, &m);
    cr_assert_eq(m.state, CS_MACHINE_DRAINING);
    cr_assert_eq(m.allocated.cpu, 2000);
    cr_assert_eq(m.nports, 2);
    cs_arena_free(&a);
    invariants(t.s);
    ts_store_destroy(&t);
}

/* The outcome of one claim (fine, incremental) of `task` on `machine`. */
static uint8_t claim_outcome(cs_store *s, uint64_t req, cs_id task, cs_id machine)
{
    cs_txn tx;
    cs_txn_init(&tx, 1, req, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    cs_res res = {100, 100, 0};
    cr_assert_eq(cs_txn_add_claim(&tx, task, machine, &res, NULL, 0, 0), CS_OK);
    cs_txn_result r;
    cs_txn_result_init(&r);
    cs_error err = {0};
    cr_assert_eq(cs_commit(s, &tx, &r, &err), CS_OK, "%s", err.msg);
    uint8_t out = r.claims[0];
    cs_txn_result_free(&r);
    cs_txn_free(&tx);
    return out;
}

static cs_machine get_machine(cs_store *s, cs_id id, cs_arena *a)
{
    cs_machine m;
    ts_get_machine(s, id, a, &m);
    return m;
}

Test(ops, machine_admin_cordon_drain_uncordon)
{
    ts_store t;
    ts_store_create(&t);
    down_cell c = build_down_cell(t.s);
    cs_error err = {0};
    cs_arena a;
    cs_arena_init(&a);
    cr_assert_eq(get_machine(t.s, c.m1, &a).admin, CS_ADMIN_ACTIVE, "a new machine is active");

    /* cordon: tasks stay, a claim there conflicts, elsewhere it commits */
    uint64_t v0 = ts_version(t.s), v = 0;
    cr_assert_eq(cs_op_machine_admin(t.s, c.m1, CS_ADMIN_CORDONED, 0, &v, &err), CS_OK, "%s",
                 err.msg);
    cr_assert_eq(v, v0 + 1);
    cs_machine m = get_machine(t.s, c.m1, &a);
    cr_assert_eq(m.admin, CS_ADMIN_CORDONED);
    cr_assert_eq(m.state, CS_MACHINE_UP, "a cordon is not the machine's liveness");
    cr_assert_eq(m.version, v, "the machine changed: its agent's poll wakes, seq moves");
    cr_assert_eq(placed_on(t.s, c.m1), 2);
    cr_assert_eq(claim_outcome(t.s, 60, cs_task_id(c.other, 0), c.m1),
                 CS_CONFLICT_MACHINE_NOT_UP);

    /* the same word again: nothing written, not even a log entry */
    dumpb d = dump_all(t.s);
    cr_assert_eq(cs_op_machine_admin(t.s, c.m1, CS_ADMIN_CORDONED, 0, &v, &err), CS_OK);
    cr_assert_eq(v, ts_version(t.s));
    dump_unchanged(t.s, &d, "a repeated cordon");

    /* bad words: refused by name, nothing written */
    d = dump_all(t.s);
    expect_error(cs_op_machine_admin(t.s, c.m1, CS_ADMIN_COUNT, 0, NULL, &err), &err, CS_EINVAL,
                 "admin");
    expect_error(cs_op_machine_admin(t.s, c.m1, CS_ADMIN_CORDONED, 5, NULL, &err), &err,
                 CS_EINVAL, "deadline");
    expect_error(cs_op_machine_admin(t.s, 42, CS_ADMIN_CORDONED, 0, NULL, &err), &err,
                 CS_ENOTFOUND, "42");
    only_logged(t.s, &d, "refused admin words");

    /* the agent registers again (a restart, a new log address): the
     * operator's word stays, the agent's address is taken */
    cs_machine spec = machine_spec("m1", 4000, 4000, 31000, 31010);
    spec.log_url = "tcp://h1:7000";
    spec.admin = CS_ADMIN_ACTIVE;
    cr_assert_eq(cs_op_machine_put(t.s, &spec, NULL, NULL, &err), CS_OK, "%s", err.msg);
    m = get_machine(t.s, c.m1, &a);
    cr_assert_eq(m.admin, CS_ADMIN_CORDONED, "a re-registration lifted the cordon");
    cr_assert_str_eq(m.log_url, "tcp://h1:7000");
    /* ... and the same registration again leaves the machine as it is */
    uint64_t mv = m.version;
    cr_assert_eq(cs_op_machine_put(t.s, &spec, NULL, NULL, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(get_machine(t.s, c.m1, &a).version, mv, "an identical registration changed it");
    /* a new machine is active whatever its spec says */
    spec.name = "m3";
    spec.admin = CS_ADMIN_DRAINING;
    cs_id m3 = 0;
    cr_assert_eq(cs_op_machine_put(t.s, &spec, &m3, NULL, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(get_machine(t.s, m3, &a).admin, CS_ADMIN_ACTIVE);

    /* drain: still no claims; the deadline is kept as given */
    cr_assert_eq(cs_op_machine_admin(t.s, c.m1, CS_ADMIN_DRAINING, 1234, NULL, &err), CS_OK,
                 "%s", err.msg);
    m = get_machine(t.s, c.m1, &a);
    cr_assert_eq(m.admin, CS_ADMIN_DRAINING);
    cr_assert_eq(m.drain_deadline, 1234);
    cr_assert_eq(claim_outcome(t.s, 61, cs_task_id(c.other, 0), c.m1),
                 CS_CONFLICT_MACHINE_NOT_UP);

    /* uncordon: claims commit again */
    cr_assert_eq(cs_op_machine_admin(t.s, c.m1, CS_ADMIN_ACTIVE, 0, NULL, &err), CS_OK, "%s",
                 err.msg);
    m = get_machine(t.s, c.m1, &a);
    cr_assert_eq(m.admin, CS_ADMIN_ACTIVE);
    cr_assert_eq(m.drain_deadline, 0);
    cr_assert_eq(claim_outcome(t.s, 62, cs_task_id(c.other, 0), c.m1), CS_COMMITTED);
    cs_arena_free(&a);
    invariants(t.s);
    ts_store_destroy(&t);
}

Test(ops, drain_deadline_requeues_batch_tasks_only)
{
    ts_store t;
    ts_store_create(&t);
    down_cell c = build_down_cell(t.s);
    cs_error err = {0};
    cs_arena a;
    cs_arena_init(&a);
    place(t.s, 70, cs_task_id(c.other, 0), c.m1, 100, 100, NULL, 0);
    cr_assert_eq(placed_on(t.s, c.m1), 3);

    /* not draining: the verdict is a no-op, not logged */
    dumpb d = dump_all(t.s);
    cr_assert_eq(cs_op_machine_drain_deadline(t.s, c.m1, NULL, &err), CS_OK, "%s", err.msg);
    dump_unchanged(t.s, &d, "a deadline on a machine that is not draining");
    /* draining without a deadline: the same */
    cr_assert_eq(cs_op_machine_admin(t.s, c.m1, CS_ADMIN_DRAINING, 0, NULL, &err), CS_OK);
    d = dump_all(t.s);
    cr_assert_eq(cs_op_machine_drain_deadline(t.s, c.m1, NULL, &err), CS_OK, "%s", err.msg);
    dump_unchanged(t.s, &d, "a drain without a deadline");

    cr_assert_eq(cs_op_machine_admin(t.s, c.m1, CS_ADMIN_DRAINING, 99, NULL, &err), CS_OK);
    uint64_t v0 = ts_version(t.s), v = 0;
    cr_assert_eq(cs_op_machine_drain_deadline(t.s, c.m1, &v, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(v, v0 + 1, "the batch tasks move and the deadline clears in one command");
    cs_task tk;
    ts_get_task(t.s, cs_task_id(c.other, 0), &a, &tk);
    cr_assert_eq(tk.state, CS_TASK_PENDING, "the batch task is placed again");
    cr_assert_eq(tk.last_end, CS_TASK_KILLED);
    cr_assert_eq(tk.machine, 0);
    cr_assert_eq(tk.attempts, 1, "attempts count placements: the next one makes 2");
    ts_get_task(t.s, cs_task_id(c.web, 0), &a, &tk);
    cr_assert_eq(tk.state, CS_TASK_ASSIGNED, "a service task waits for its scheduler");
    cs_machine m = get_machine(t.s, c.m1, &a);
    cr_assert_eq(m.drain_deadline, 0);
    cr_assert_eq(m.admin, CS_ADMIN_DRAINING);
    cr_assert_eq(m.allocated.cpu, 2000, "the batch task's 100 millicores were given back");
    cr_assert_eq(m.ntasks, 2);

    /* a second verdict: nothing to do */
    d = dump_all(t.s);
    cr_assert_eq(cs_op_machine_drain_deadline(t.s, c.m1, NULL, &err), CS_OK, "%s", err.msg);
    dump_unchanged(t.s, &d, "a repeated deadline");
    expect_error(cs_op_machine_drain_deadline(t.s, 42, NULL, &err), &err, CS_ENOTFOUND, "42");
    cs_arena_free(&a);
    invariants(t.s);
    ts_store_destroy(&t);
}

/* ======================================================================= */
/* jobs                                                                     */

typedef struct task_list {
    cs_task t[64];
    size_t n;
} task_list;

static int collect(void *ctx, const cs_task *t)
{
    task_list *l = ctx;
    cr_assert_lt(l->n, 64);
    l->t[l->n] = *t;
    l->t[l->n].ports = NULL; /* borrowed memory: keep the scalars only */
    l->n++;
    return 0;
}

static void tasks_of(cs_store *s, cs_id job, task_list *l)
{
    cs_snap *snap;
    cs_error err = {0};
    l->n = 0;
    cr_assert_eq(cs_snap_open(s, &snap, &err), CS_OK);
    cr_assert_eq(cs_snap_each_task_of_job(snap, job, collect, l, &err), CS_OK, "%s", err.msg);
    cs_snap_close(snap);
}

Test(ops, job_submit_creates_pending_tasks)
{
    ts_store t;
    ts_store_create(&t);
    cs_error err = {0};
    cs_job spec = job_spec("batch", 5, 250, 128);
    spec.id = 77;                   /* ignored */
    spec.state = CS_JOB_KILLED;     /* ignored */
    spec.spec_hash = 1;             /* computed, not taken */
    spec.version = 1000;            /* set by the store */
    cs_id id = 0;
    uint64_t v = 0;
    cr_assert_eq(cs_op_job_submit(t.s, &spec, &id, &v, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(id, 1);
    cr_assert_eq(v, 1);

    task_list l;
    tasks_of(t.s, id, &l);
    cr_assert_eq(l.n, 5);
    for (uint32_t i = 0; i < 5; i++) {
        const cs_task *tk = &l.t[i];
        cr_assert_eq(tk->id, cs_task_id(id, i));
        cr_assert_eq(tk->job, id);
        cr_assert_eq(tk->index, i);
        cr_assert_eq(tk->state, CS_TASK_PENDING);
        cr_assert_eq(tk->last_end, CS_TASK_PENDING);
        cr_assert_eq(tk->machine, 0);
        cr_assert_eq(tk->res.cpu, 250);
        cr_assert_eq(tk->res.mem, 128);
        cr_assert_eq(tk->attempts, 0);
        cr_assert_eq(tk->version, v);
    }

    cs_arena a;
    cs_arena_init(&a);
    cs_snap *snap;
    cr_assert_eq(cs_snap_open(t.s, &snap, &err), CS_OK);
    cs_job j;
    cr_assert_eq(cs_snap_job(snap, id, &a, &j, &err), CS_OK, "%s", err.msg);
    cr_assert_str_eq(j.name, "batch");
    cr_assert_eq(j.state, CS_JOB_ACTIVE);
    cr_assert_eq(j.count, 5);
    cr_assert_str_eq(j.cmd, "sleep 1");
    cr_assert_eq(j.version, v);
    uint64_t h;
    cr_assert_eq(cs_job_spec_hash(&spec, &h), CS_OK);
    cr_assert_eq(j.spec_hash, h, "the stored spec hash is not the spec's");
    cs_snap_close(snap);

    /* a second job gets the next id, its tasks their own range */
    cs_job spec2 = job_spec("second", 2, 1, 1);
    cr_assert_eq(cs_op_job_submit(t.s, &spec2, &id, &v, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(id, 2);
    tasks_of(t.s, 2, &l);
    cr_assert_eq(l.n, 2);
    cr_assert_eq(l.t[1].id, cs_task_id(2, 1));
    tasks_of(t.s, 1, &l);
    cr_assert_eq(l.n, 5);

    /* a job of zero tasks is allowed */
    cs_job none = job_spec("none", 0, 1, 1);
    cr_assert_eq(cs_op_job_submit(t.s, &none, &id, NULL, &err), CS_OK, "%s", err.msg);
    tasks_of(t.s, id, &l);
    cr_assert_eq(l.n, 0);
    cs_arena_free(&a);
    ts_store_destroy(&t);
}

Test(ops, job_names_unique_among_active_jobs)
{
    ts_store t;
    ts_store_create(&t);
    cs_error err = {0};
    cs_job spec = job_spec("web", 2, 10, 10);
    cs_id first = 0, id = 0;
    cr_assert_eq(cs_op_job_submit(t.s, &spec, &first, NULL, &err), CS_OK, "%s", err.msg);

    dumpb d = dump_all(t.s);
    cs_job again = job_spec("web", 7, 1, 1);
    expect_error(cs_op_job_submit(t.s, &again, &id, NULL, &err), &err, CS_EEXIST, "web");
    only_logged(t.s, &d, "a duplicate name");

    cr_assert_eq(cs_op_job_kill(t.s, first, 1000, NULL, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_op_job_submit(t.s, &again, &id, NULL, &err), CS_OK,
                 "resubmitting a killed job's name: %s", err.msg);
    cr_assert_neq(id, first);

    cs_arena a;
    cs_arena_init(&a);
    cs_snap *snap;
    cr_assert_eq(cs_snap_open(t.s, &snap, &err), CS_OK);
    cs_job j;
    cr_assert_eq(cs_snap_job_by_name(snap, "web", &a, &j, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(j.id, id, "the name leads to job %llu", (unsigned long long)j.id);
    cr_assert_eq(j.count, 7);
    cr_assert_eq(cs_snap_job(snap, first, &a, &j, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(j.state, CS_JOB_KILLED);
    cs_snap_close(snap);
    cs_arena_free(&a);

    task_list l;
    tasks_of(t.s, id, &l);
    cr_assert_eq(l.n, 7);
    cr_assert_eq(l.t[0].state, CS_TASK_PENDING);
    tasks_of(t.s, first, &l);
    cr_assert_eq(l.n, 2);
    cr_assert_eq(l.t[0].state, CS_TASK_KILLED);

    /* the new one is active: the name is taken again */
    expect_error(cs_op_job_submit(t.s, &again, NULL, NULL, &err), &err, CS_EEXIST, "web");
    ts_store_destroy(&t);
}

Test(ops, job_kill_releases_everything)
{
    ts_store t;
    ts_store_create(&t);
    cs_id m1 = ts_machine(t.s, "m1", 4000, 4000, 1000, 31000, 31010, NULL, 0);
    cs_id m2 = ts_machine(t.s, "m2", 4000, 4000, 1000, 31000, 31010, NULL, 0);
    uint16_t dyn = 0;
    cs_id j = ts_job(t.s, "web", CS_JOB_SERVICE, 0, 4, 1000, 500, 0, &dyn, 1);
    cs_id other = ts_job(t.s, "other", CS_JOB_BATCH, 0, 1, 700, 300, 0, NULL, 0);
    uint16_t p0 = 31000, p1 = 31001, p3 = 31003;
    place(t.s, 1, cs_task_id(j, 0), m1, 1000, 500, &p0, 1);
    place(t.s, 2, cs_task_id(j, 1), m2, 1000, 500, &p1, 1);
    place(t.s, 3, cs_task_id(j, 3), m1, 1000, 500, &p3, 1);
    release(t.s, 4, cs_task_id(j, 3), CS_TASK_FINISHED);
    place(t.s, 5, cs_task_id(other, 0), m1, 700, 300, NULL, 0);
    /* task 2 stays pending */

    cs_error err = {0};
    uint64_t v0 = ts_version(t.s), v = 0;
    cr_assert_eq(cs_op_job_kill(t.s, j, 1000, &v, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(v, v0 + 1);

    task_list l;
    tasks_of(t.s, j, &l);
    cr_assert_eq(l.n, 4);
    const uint8_t want[] = {CS_TASK_KILLED, CS_TASK_KILLED, CS_TASK_KILLED, CS_TASK_FINISHED};
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(l.t[i].state, want[i], "task %zu is %s, expected %s", i,
                     cs_task_state_name(l.t[i].state), cs_task_state_name(want[i]));
        cr_assert_eq(l.t[i].nports, 0);
    }
    cr_assert_neq(l.t[3].version, v, "an ended task was written by the kill");

    cs_arena a;
    cs_arena_init(&a);
    cs_machine m;
    ts_get_machine(t.s, m1, &a, &m);
    cr_assert_eq(m.allocated.cpu, 700, "m1 keeps %lld cpu", (long long)m.allocated.cpu);
    cr_assert_eq(m.allocated.mem, 300);
    cr_assert_eq(m.ntasks, 1);
    cr_assert_eq(m.nports, 0);
    ts_get_machine(t.s, m2, &a, &m);
    cr_assert_eq(m.allocated.cpu, 0);
    cr_assert_eq(m.ntasks, 0);
    cr_assert_eq(m.nports, 0);
    cr_assert_eq(placed_on(t.s, m1), 1);
    cr_assert_eq(placed_on(t.s, m2), 0);
    cs_task tk;
    ts_get_task(t.s, cs_task_id(other, 0), &a, &tk);
    cr_assert_eq(tk.state, CS_TASK_ASSIGNED, "another job's task was touched");
    invariants(t.s);

    cs_snap *snap;
    cr_assert_eq(cs_snap_open(t.s, &snap, &err), CS_OK);
    cs_job jj;
    cr_assert_eq(cs_snap_job(snap, j, &a, &jj, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(jj.state, CS_JOB_KILLED);
    cs_snap_close(snap);
    cs_arena_free(&a);

    /* killing twice changes nothing */
    static const cs_db cell[] = {CS_DB_MACHINES, CS_DB_MACHINE_NAMES, CS_DB_JOBS,
                                 CS_DB_JOB_NAMES, CS_DB_TASKS};
    uint8_t *before, *after;
    size_t nb, na;
    ts_dump_dbs(t.s, cell, sizeof cell / sizeof cell[0], &before, &nb);
    cr_assert_eq(cs_op_job_kill(t.s, j, 1000, &v, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(v, v0 + 1, "a second kill moved the version");
    ts_dump_dbs(t.s, cell, sizeof cell / sizeof cell[0], &after, &na);
    cr_assert_eq(na, nb);
    cr_assert_arr_eq(after, before, nb, "a second kill changed a record");
    free(before);
    free(after);

    /* an unknown job */
    dumpb d = dump_all(t.s);
    expect_error(cs_op_job_kill(t.s, 99, 1000, NULL, &err), &err, CS_ENOTFOUND, "99");
    only_logged(t.s, &d, "killing an unknown job");
    ts_store_destroy(&t);
}

/* ======================================================================= */
/* refusals write nothing but their log entry                               */

Test(ops, bad_specs_are_refused_and_write_nothing)
{
    ts_store t;
    ts_store_create(&t);
    ts_machine(t.s, "m1", 1000, 1000, 1000, 0, 0, NULL, 0);
    ts_job(t.s, "j1", CS_JOB_BATCH, 0, 1, 1, 1, 0, NULL, 0);
    uint64_t v = ts_version(t.s);
    cs_error err = {0};
    cs_id id = 12345;

    struct {
        cs_job spec;
        const char *needle;
    } jobs[] = {
        {job_spec("neg", 1, -1, 10), "cpu"},
        {job_spec("negmem", 1, 1, -10), "mem"},
        {job_spec("huge", 1, CS_RES_MAX + 1, 1), "cpu"},
        {job_spec("", 1, 1, 1), "name"},
        {job_spec("many", CS_TASK_INDEX_MAX + 2, 1, 1), "count"},
    };
    for (size_t i = 0; i < sizeof jobs / sizeof jobs[0]; i++) {
        dumpb d = dump_all(t.s);
        cs_error_clear(&err);
        expect_error(cs_op_job_submit(t.s, &jobs[i].spec, &id, NULL, &err), &err, CS_EINVAL,
                     jobs[i].needle);
        cr_assert_eq(id, 12345, "a refused submit wrote an id");
        cr_assert_eq(ts_version(t.s), v);
        cell_unchanged(t.s, &d, jobs[i].needle);
    }
    cs_job noname = job_spec("x", 1, 1, 1);
    noname.name = NULL;
    dumpb d = dump_all(t.s);
    expect_error(cs_op_job_submit(t.s, &noname, NULL, NULL, &err), &err, CS_EINVAL, "name");
    cell_unchanged(t.s, &d, "a NULL job name");

    uint16_t dup[] = {8080, 8080};
    cs_job dupports = job_spec("dup", 1, 1, 1);
    dupports.ports = dup;
    dupports.nports = 2;
    d = dump_all(t.s);
    expect_error(cs_op_job_submit(t.s, &dupports, NULL, NULL, &err), &err, CS_EINVAL, "8080");
    cell_unchanged(t.s, &d, "a port asked for twice");

    struct {
        cs_machine spec;
        const char *needle;
    } machines[] = {
        {machine_spec("neg", -1, 1, 0, 0), "cpu"},
        {machine_spec("negmem", 1, -1, 0, 0), "mem"},
        {machine_spec("", 1, 1, 0, 0), "name"},
        {machine_spec("rev", 1, 1, 32000, 31000), "port"},
        {machine_spec("m1", 1, 1, 32000, 31000), "port"}, /* an update, equally refused */
    };
    for (size_t i = 0; i < sizeof machines / sizeof machines[0]; i++) {
        d = dump_all(t.s);
        cs_error_clear(&err);
        expect_error(cs_op_machine_put(t.s, &machines[i].spec, &id, NULL, &err), &err, CS_EINVAL,
                     machines[i].needle);
        cr_assert_eq(ts_version(t.s), v);
        cell_unchanged(t.s, &d, machines[i].needle);
    }
    cs_machine badstate = machine_spec("st", 1, 1, 0, 0);
    badstate.state = 9;
    d = dump_all(t.s);
    expect_error(cs_op_machine_put(t.s, &badstate, NULL, NULL, &err), &err, CS_EINVAL, "state");
    cell_unchanged(t.s, &d, "an unknown machine state");
    ts_store_destroy(&t);
}

/* ======================================================================= */
/* applying logged commands                                                 */

Test(ops, command_apply_runs_a_logged_command)
{
    ts_store t;
    ts_store_create(&t);
    cs_error err = {0};
    cs_machine spec = machine_spec("m1", 1000, 1000, 0, 0);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cr_assert_eq(cs_machine_encode(&spec, &sb), CS_OK);
    cr_assert_eq(cs_command_apply(t.s, CS_CMD_MACHINE_PUT, sb.data, sb.size, NULL, &err), CS_OK, "%s",
                 err.msg);
    cr_assert_eq(ts_version(t.s), 1);

    /* [id, state] */
    sb.size = 0;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint64(&pk, 1);
    msgpack_pack_uint8(&pk, CS_MACHINE_DRAINING);
    cr_assert_eq(cs_command_apply(t.s, CS_CMD_MACHINE_STATE, sb.data, sb.size, NULL, &err), CS_OK, "%s",
                 err.msg);
    cs_arena a;
    cs_arena_init(&a);
    cs_machine m;
    ts_get_machine(t.s, 1, &a, &m);
    cr_assert_eq(m.state, CS_MACHINE_DRAINING);
    cs_arena_free(&a);
    msgpack_sbuffer_destroy(&sb);
    ts_store_destroy(&t);
}

Test(ops, command_apply_refuses_garbage)
{
    ts_store t;
    ts_store_create(&t);
    ts_machine(t.s, "m1", 1000, 1000, 1000, 0, 0, NULL, 0);
    ts_job(t.s, "j1", CS_JOB_BATCH, 0, 2, 1, 1, 0, NULL, 0);
    cs_error err = {0};
    dumpb d = dump_all(t.s);

    /* unknown kinds, even with a valid body */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cs_machine spec = machine_spec("m2", 1, 1, 0, 0);
    cr_assert_eq(cs_machine_encode(&spec, &sb), CS_OK);
    const uint8_t unknown[] = {0, 15, 42, 255};
    for (size_t i = 0; i < sizeof unknown; i++) {
        cs_error_clear(&err);
        int rc = cs_command_apply(t.s, unknown[i], sb.data, sb.size, NULL, &err);
        cr_assert_neq(rc, CS_OK, "kind %u was applied", unknown[i]);
        cr_assert_eq(err.code, rc);
        char num[8];
        snprintf(num, sizeof num, "%u", unknown[i]);
        cr_assert(strstr(err.msg, "kind") != NULL && strstr(err.msg, num) != NULL,
                  "message '%s' does not name kind %u", err.msg, unknown[i]);
    }

    /* each known kind with bodies that are not its command */
    const uint8_t kinds[] = {CS_CMD_MACHINE_PUT, CS_CMD_MACHINE_STATE, CS_CMD_JOB_SUBMIT,
                             CS_CMD_JOB_KILL,    CS_CMD_TXN,           CS_CMD_TASK_STATUS,
                             CS_CMD_JOB_SCALE,   CS_CMD_JOB_UPDATE,    CS_CMD_JOB_NOTE,
                             CS_CMD_JOB_SURGE,   CS_CMD_JOB_END,       CS_CMD_JOB_GC,
                             CS_CMD_DRAIN_DEADLINE};
    const uint8_t nil[] = {0xc0};
    const uint8_t bad_msgpack[] = {0xc1, 0x00};
    const uint8_t empty_array[] = {0x90};
    const uint8_t negative_id[] = {0x92, 0xff, 0x02};    /* [-1, 2] */
    const uint8_t three[] = {0x93, 0x01, 0x02, 0x03};    /* [1, 2, 3] */
    const uint8_t str_id[] = {0x91, 0xa1, 'x'};          /* ["x"] */
    const uint8_t big_state[] = {0x92, 0x63, 0xcd, 0x01, 0x00}; /* [99, 256] */
    const uint8_t trailing[] = {0x91, 0x01, 0xc0};       /* [1] nil */
    struct {
        const uint8_t *p;
        size_t n;
    } bodies[] = {
        {nil, 0}, /* empty */
        {nil, sizeof nil},
        {bad_msgpack, sizeof bad_msgpack},
        {empty_array, sizeof empty_array},
        {negative_id, sizeof negative_id},
        {three, sizeof three},
        {str_id, sizeof str_id},
        {big_state, sizeof big_state},
        {trailing, sizeof trailing},
        {(const uint8_t *)sb.data, sb.size - 1}, /* a truncated machine */
    };
    /* A body that decodes as a command the cell refuses ([] as a job-gc, [1,
     * 2, 3] as a collection of an active job) is a refusal: a result, with
     * its log entry. Any other is an error naming the command. */
    cs_result res;
    cs_result_init(&res);
    int refused = 0;
    for (size_t k = 0; k < sizeof kinds; k++)
        for (size_t b = 0; b < sizeof bodies / sizeof bodies[0]; b++) {
            cs_error_clear(&err);
            int rc = cs_command_apply(t.s, kinds[k], bodies[b].p, bodies[b].n, &res, &err);
            if (rc == CS_OK) {
                cr_assert(cs_command_refusal(res.status), "%s with body %zu was applied",
                          cs_cmd_name(kinds[k]), b);
                cr_assert(res.logged && res.nmachines == 0);
                refused++;
                continue;
            }
            cr_assert_eq(err.code, rc);
            cr_assert(strstr(err.msg, cs_cmd_name(kinds[k])) != NULL,
                      "message '%s' does not name the command", err.msg);
        }
    cr_assert_gt(refused, 0);
    only_logged(t.s, &d, "refused commands");

    /* random bytes */
    d = dump_all(t.s);
    uint64_t x = 0x5eed;
    uint8_t buf[64];
    for (int i = 0; i < 3000; i++) {
        size_t n = cs_rng_next(&x) % sizeof buf;
        for (size_t b = 0; b < n; b++)
            buf[b] = (uint8_t)cs_rng_next(&x);
        uint8_t kind = kinds[cs_rng_next(&x) % sizeof kinds];
        cs_error_clear(&err);
        int rc = cs_command_apply(t.s, kind, buf, n, &res, &err);
        if (rc == CS_OK)
            cr_assert(cs_command_refusal(res.status), "iteration %d: random bytes applied as %s",
                      i, cs_cmd_name(kind));
        else
            cr_assert(err.msg[0] != '\0');
    }
    cell_unchanged(t.s, &d, "random commands");
    cs_result_free(&res);
    msgpack_sbuffer_destroy(&sb);
    ts_store_destroy(&t);
}

/* An agent's report: finished means exit code 0; running keeps the task's
 * last exit code and reason; an ended task releases its machine. */
Test(ops, task_status_reports)
{
    ts_store t;
    ts_store_create(&t);
    cs_id m = ts_machine(t.s, "m1", 4000, 4096, 0, 0, 0, NULL, 0);
    cs_id j = ts_job(t.s, "j", CS_JOB_BATCH, 50, 1, 1000, 512, 0, NULL, 0);
    cs_txn tx;
    cs_txn_init(&tx, 1, 1, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    cs_res r = {1000, 512, 0};
    cs_txn_add_claim(&tx, cs_task_id(j, 0), m, &r, NULL, 0, 0);
    cs_txn_result res;
    cs_txn_result_init(&res);
    cs_error err = {0};
    cr_assert_eq(cs_commit(t.s, &tx, &res, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(res.committed, 1);
    cs_id id = cs_task_id(j, 0);
    cr_assert_eq(cs_op_task_status(t.s, id, 1, CS_TASK_FINISHED, 3, NULL, NULL, &err), CS_EINVAL);
    cr_assert(strstr(err.msg, "report failed") != NULL, "%s", err.msg);
    cr_assert_eq(cs_op_task_status(t.s, id, 1, CS_TASK_RUNNING, 0, "started", NULL, &err), CS_OK,
                 "%s", err.msg);
    cr_assert_eq(cs_op_task_status(t.s, id, 1, CS_TASK_FAILED, 2, "exit 2", NULL, &err), CS_OK,
                 "%s", err.msg);
    cs_arena a;
    cs_arena_init(&a);
    cs_task tk;
    ts_get_task(t.s, id, &a, &tk);
    cr_assert_eq(tk.state, CS_TASK_FAILED);
    cr_assert_eq(tk.exit_code, 2);
    cr_assert_str_eq(tk.reason, "exit 2");
    cs_machine mm;
    ts_get_machine(t.s, m, &a, &mm);
    cr_assert_eq(mm.allocated.cpu, 0, "an ended task releases its machine");
    /* A late report on the ended attempt changes nothing. */
    cr_assert_eq(cs_op_task_status(t.s, id, 1, CS_TASK_RUNNING, 0, NULL, NULL, &err), CS_ESTATE);
    cs_arena_free(&a);
    cs_txn_result_free(&res);
    cs_txn_free(&tx);
    ts_store_destroy(&t);
}

/* ======================================================================= */
/* job notes, submission time, task health                                  */

static void get_job(cs_store *s, cs_id id, cs_arena *a, cs_job *out)
{
    cs_snap *snap;
    cs_error err = {0};
    cr_assert_eq(cs_snap_open(s, &snap, &err), CS_OK, "%s", err.msg);
    int rc = cs_snap_job(snap, id, a, out, &err);
    cs_snap_close(snap);
    cr_assert_eq(rc, CS_OK, "job %llu: %s", (unsigned long long)id, err.msg);
}

/* A note is a write the first time and nothing at all (no log entry
 * either) when repeated; it is not part of the spec. */
Test(ops, job_note_writes_only_what_changes)
{
    ts_store t;
    ts_store_create(&t);
    cs_id j = ts_job(t.s, "web", CS_JOB_SERVICE, 50, 2, 100, 64, 0, NULL, 0);
    cs_arena a;
    cs_arena_init(&a);
    cs_job before;
    get_job(t.s, j, &a, &before);
    cr_assert_str_eq(before.note, "", "a new job has no note");
    cs_error err = {0};
    uint64_t v0 = ts_version(t.s), v = 0;
    const char *note = "no machine fits: cpu on 9,870, UNIQUE hostname on 130";
    cr_assert_eq(cs_op_job_note(t.s, j, note, &v, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(v, v0 + 1);
    cs_job after;
    get_job(t.s, j, &a, &after);
    cr_assert_str_eq(after.note, note);
    cr_assert_eq(after.version, v0 + 1);
    cr_assert_eq(after.spec_hash, before.spec_hash, "a note is not part of the spec");
    cr_assert_eq(after.submitted, before.submitted);

    dumpb d = dump_all(t.s);
    cr_assert_eq(cs_op_job_note(t.s, j, note, &v, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(v, v0 + 1, "the same note again reports the current version");
    dump_unchanged(t.s, &d, "an identical note");

    /* Refusals write nothing. */
    static char long_note[CS_NOTE_MAX + 2];
    memset(long_note, 'x', CS_NOTE_MAX + 1);
    d = dump_all(t.s);
    expect_error(cs_op_job_note(t.s, j, long_note, NULL, &err), &err, CS_EINVAL, "note is longer");
    expect_error(cs_op_job_note(t.s, 999, "x", NULL, &err), &err, CS_ENOTFOUND, "999");
    only_logged(t.s, &d, "refused notes");

    /* Exactly the limit is fine; "" clears it; a killed job may carry one. */
    long_note[CS_NOTE_MAX] = '\0';
    cr_assert_eq(cs_op_job_note(t.s, j, long_note, &v, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(v, v0 + 2);
    cr_assert_eq(cs_op_job_note(t.s, j, "", &v, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(v, v0 + 3);
    get_job(t.s, j, &a, &after);
    cr_assert_str_eq(after.note, "");
    cr_assert_eq(cs_op_job_kill(t.s, j, 1000, NULL, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_op_job_note(t.s, j, "killed by its owner", &v, &err), CS_OK, "%s", err.msg);
    get_job(t.s, j, &a, &after);
    cr_assert_str_eq(after.note, "killed by its owner");
    cr_assert_eq(after.state, CS_JOB_KILLED);
    cs_arena_free(&a);
    ts_store_destroy(&t);
}

/* `submitted` comes from the submitted command (the server stamps it), not
 * from a clock in the store; an update keeps it, and the note. */
Test(ops, submitted_comes_from_the_command_and_update_keeps_it)
{
    ts_store t;
    ts_store_create(&t);
    cs_job spec = job_spec("batch", 2, 100, 64);
    spec.submitted = UINT64_C(1700000000123);
    spec.note = "a client may not set a note at submission";
    cs_id id = 0;
    cs_error err = {0};
    cr_assert_eq(cs_op_job_submit(t.s, &spec, &id, NULL, &err), CS_OK, "%s", err.msg);
    cs_arena a;
    cs_arena_init(&a);
    cs_job j;
    get_job(t.s, id, &a, &j);
    cr_assert_eq(j.submitted, UINT64_C(1700000000123));
    cr_assert_str_eq(j.note, "");

    cr_assert_eq(cs_op_job_note(t.s, id, "waiting for cpu", NULL, &err), CS_OK, "%s", err.msg);
    cs_job upd = job_spec("batch", 3, 200, 64);
    upd.submitted = 1;
    upd.note = "ignored";
    cr_assert_eq(cs_op_job_update(t.s, id, &upd, NULL, &err), CS_OK, "%s", err.msg);
    get_job(t.s, id, &a, &j);
    cr_assert_eq(j.count, 3, "the update applied");
    cr_assert_eq(j.submitted, UINT64_C(1700000000123), "an update keeps the submission time");
    cr_assert_str_eq(j.note, "waiting for cpu", "an update keeps the note");
    cs_arena_free(&a);
    ts_store_destroy(&t);
}

/* Claim task 0 of a one-task job on a fresh machine; returns the task id. */
static cs_id placed_task(cs_store *s, cs_id *machine)
{
    *machine = ts_machine(s, "m1", 4000, 4096, 0, 0, 0, NULL, 0);
    cs_id j = ts_job(s, "svc", CS_JOB_SERVICE, 50, 1, 1000, 512, 0, NULL, 0);
    place(s, 1, cs_task_id(j, 0), *machine, 1000, 512, NULL, 0);
    return cs_task_id(j, 0);
}

static cs_task task_now(cs_store *s, cs_id id, cs_arena *a)
{
    cs_task t;
    ts_get_task(s, id, a, &t);
    return t;
}

static int report(cs_store *s, cs_id id, uint32_t attempt, uint8_t state, uint8_t health,
                  uint64_t *version, cs_error *err)
{
    cs_task_report r = {id, attempt, state, 0, NULL, health};
    return cs_op_task_report(s, &r, version, err);
}

Test(ops, health_reports_write_only_changes)
{
    ts_store t;
    ts_store_create(&t);
    cs_id m, id = placed_task(t.s, &m);
    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};
    cr_assert_eq(task_now(t.s, id, &a).health, CS_TASK_HEALTH_UNKNOWN);

    /* assigned -> running and healthy in one report */
    uint64_t v0 = ts_version(t.s), v = 0;
    cr_assert_eq(report(t.s, id, 1, CS_TASK_RUNNING, CS_TASK_HEALTH_HEALTHY, &v, &err), CS_OK, "%s",
                 err.msg);
    cr_assert_eq(v, v0 + 1);
    cs_task k = task_now(t.s, id, &a);
    cr_assert_eq(k.state, CS_TASK_RUNNING);
    cr_assert_eq(k.health, CS_TASK_HEALTH_HEALTHY);

    /* The same report, or running without a health, changes nothing: no
     * write, no log entry. */
    dumpb d = dump_all(t.s);
    cr_assert_eq(report(t.s, id, 1, CS_TASK_RUNNING, CS_TASK_HEALTH_HEALTHY, &v, &err), CS_OK, "%s",
                 err.msg);
    cr_assert_eq(v, v0 + 1);
    cr_assert_eq(cs_op_task_status(t.s, id, 1, CS_TASK_RUNNING, 0, NULL, &v, &err), CS_OK, "%s",
                 err.msg);
    dump_unchanged(t.s, &d, "repeated running reports");

    /* A change of health is a write of the task only: the machine's seq
     * (what coarse-grained claims compare) stays. */
    cs_machine mm;
    ts_get_machine(t.s, m, &a, &mm);
    uint64_t seq = mm.seq;
    cr_assert_eq(report(t.s, id, 1, CS_TASK_RUNNING, CS_TASK_HEALTH_UNHEALTHY, &v, &err), CS_OK,
                 "%s", err.msg);
    cr_assert_eq(v, v0 + 2);
    cr_assert_eq(task_now(t.s, id, &a).health, CS_TASK_HEALTH_UNHEALTHY);
    ts_get_machine(t.s, m, &a, &mm);
    cr_assert_eq(mm.seq, seq, "a health change changed the machine");

    /* Health comes with running only; an unknown value is refused. */
    d = dump_all(t.s);
    expect_error(report(t.s, id, 1, CS_TASK_FAILED, CS_TASK_HEALTH_UNHEALTHY, NULL, &err), &err,
                 CS_EINVAL, "running only");
    expect_error(report(t.s, id, 1, CS_TASK_RUNNING, CS_TASK_HEALTH_COUNT, NULL, &err), &err,
                 CS_EINVAL, "unknown health");
    expect_error(report(t.s, id, 2, CS_TASK_RUNNING, CS_TASK_HEALTH_HEALTHY, NULL, &err), &err,
                 CS_ESTATE, "attempt 2");
    only_logged(t.s, &d, "refused health reports");
    cs_arena_free(&a);
    ts_store_destroy(&t);
}

/* Whether task `id` is among the changes since `since`, with or without
 * the running-only reports left out. */
static bool changed(cs_store *s, uint64_t since, cs_id id, bool omit_running)
{
    cs_snap *snap;
    cs_error err = {0};
    cr_assert_eq(cs_snap_open(s, &snap, &err), CS_OK, "%s", err.msg);
    cs_changes ch;
    cr_assert_eq(cs_snap_changes_except(snap, since, omit_running ? cs_cmd_only_marks_running : NULL,
                                        NULL, &ch, &err),
                 CS_OK, "%s", err.msg);
    bool found = false;
    for (size_t i = 0; i < ch.n[CS_KIND_TASK]; i++)
        found = found || ch.ids[CS_KIND_TASK][i] == id;
    cs_changes_free(&ch);
    cs_snap_close(snap);
    return found;
}

Test(ops, changes_can_leave_out_reports_that_only_start_a_task)
{
    ts_store t;
    ts_store_create(&t);
    cs_id m, id = placed_task(t.s, &m);
    cs_error err = {0};
    uint64_t placed = ts_version(t.s), v;

    /* running, no health: quiet; the placement before it is not */
    cr_assert_eq(report(t.s, id, 1, CS_TASK_RUNNING, CS_TASK_HEALTH_UNKNOWN, &v, &err), CS_OK,
                 "%s", err.msg);
    cr_assert(changed(t.s, placed, id, false));
    cr_assert_not(changed(t.s, placed, id, true), "a start alone was listed");
    cr_assert(changed(t.s, placed - 1, id, true), "the placement in range was left out");

    /* running with a health, and the end, are changes a batch copy needs */
    uint64_t started = v;
    cr_assert_eq(report(t.s, id, 1, CS_TASK_RUNNING, CS_TASK_HEALTH_HEALTHY, &v, &err), CS_OK,
                 "%s", err.msg);
    cr_assert(changed(t.s, started, id, true), "a health report was left out");
    uint64_t healthy = v;
    cr_assert_eq(cs_op_task_status(t.s, id, 1, CS_TASK_FINISHED, 0, NULL, &v, &err), CS_OK, "%s",
                 err.msg);
    cr_assert(changed(t.s, healthy, id, true), "the end was left out");

    /* The predicate itself: only a task-status command of state running
     * without health; garbage is not quiet. */
    uint8_t junk[3] = {0x93, 0xc1, 0x00};
    cr_assert_not(cs_cmd_only_marks_running(NULL, CS_CMD_TASK_STATUS, junk, sizeof junk));
    cr_assert_not(cs_cmd_only_marks_running(NULL, CS_CMD_TXN, junk, 0));
    ts_store_destroy(&t);
}

/* A new placement starts with no health: the verdict on the last process
 * says nothing about the next. */
Test(ops, claim_resets_health)
{
    ts_store t;
    ts_store_create(&t);
    cs_id m, id = placed_task(t.s, &m);
    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};
    cr_assert_eq(report(t.s, id, 1, CS_TASK_RUNNING, CS_TASK_HEALTH_HEALTHY, NULL, &err), CS_OK,
                 "%s", err.msg);
    /* Lost with its machine's failure, back to pending, placed again. */
    release(t.s, 2, id, CS_TASK_LOST);
    cr_assert_eq(task_now(t.s, id, &a).health, CS_TASK_HEALTH_HEALTHY,
                 "an ended task keeps its last health as history");
    release(t.s, 3, id, CS_TASK_PENDING);
    place(t.s, 4, id, m, 1000, 512, NULL, 0);
    cs_task k = task_now(t.s, id, &a);
    cr_assert_eq(k.attempts, 2);
    cr_assert_eq(k.state, CS_TASK_ASSIGNED);
    cr_assert_eq(k.health, CS_TASK_HEALTH_UNKNOWN, "a claim resets the health");
    cs_arena_free(&a);
    ts_store_destroy(&t);
}

typedef struct logcopy {
    uint8_t kind[64];
    void *cmd[64];
    size_t len[64];
    size_t n;
} logcopy;

static int copy_log(void *ctx, uint64_t version, uint32_t n, uint8_t kind, const void *cmd,
                    size_t len)
{
    (void)version;
    (void)n;
    logcopy *l = ctx;
    cr_assert_lt(l->n, 64);
    l->kind[l->n] = kind;
    l->cmd[l->n] = malloc(len ? len : 1);
    memcpy(l->cmd[l->n], cmd, len);
    l->len[l->n++] = len;
    return 0;
}

/* Apply the log of `from`, entries [0, upto), to a new store `to`. */
static void replay_into(const logcopy *l, size_t upto, ts_store *to)
{
    ts_store_create(to);
    cs_error err = {0};
    for (size_t i = 0; i < upto; i++)
        cr_assert_eq(cs_command_apply(to->s, l->kind[i], l->cmd[i], l->len[i], NULL, &err), CS_OK,
                     "replaying entry %zu (%s): %s", i, cs_cmd_name(l->kind[i]), err.msg);
}

/* The whole log of `s`, copied into *l (the caller frees l->cmd[i]). */
static void copy_whole_log(cs_store *s, logcopy *l)
{
    memset(l, 0, sizeof *l);
    cs_snap *snap;
    cs_error err = {0};
    cr_assert_eq(cs_snap_open(s, &snap, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_snap_each_log(snap, 0, copy_log, l, &err), CS_OK, "%s", err.msg);
    cs_snap_close(snap);
}

/* Replay all of `l` into a new store *u, which must equal `s` byte for
 * byte: the property every logged command keeps. */
static void replay_equals(const logcopy *l, cs_store *s, ts_store *u)
{
    replay_into(l, l->n, u);
    dumpb d = dump_all(s);
    dump_unchanged(u->s, &d, "the replayed store");
}

/* Notes, health reports and submission times are commands of the log:
 * replaying it gives the same store byte for byte. And the comparison would
 * see a replay that took `submitted` from anywhere but the command. */
Test(ops, replay_reproduces_notes_health_and_submission_times)
{
    ts_store t;
    ts_store_create(&t);
    cs_id m, id = placed_task(t.s, &m);
    cs_error err = {0};
    cr_assert_eq(report(t.s, id, 1, CS_TASK_RUNNING, CS_TASK_HEALTH_UNHEALTHY, NULL, &err), CS_OK,
                 "%s", err.msg);
    cr_assert_eq(cs_op_job_note(t.s, cs_task_job(id), "1 unhealthy", NULL, &err), CS_OK, "%s",
                 err.msg);
    cs_id other = ts_job(t.s, "pending", CS_JOB_BATCH, 50, 1, 9000, 1, 0, NULL, 0);
    cr_assert_eq(cs_op_job_note(t.s, other, "no machine fits: cpu on 1", NULL, &err), CS_OK, "%s",
                 err.msg);

    logcopy l;
    copy_whole_log(t.s, &l);
    ts_store u;
    replay_equals(&l, t.s, &u);

    /* The same log with the first job submitted one millisecond later gives
     * another store: the dump holds `submitted`. */
    size_t sub = 0;
    while (l.kind[sub] != CS_CMD_JOB_SUBMIT)
        sub++;
    cs_arena a;
    cs_arena_init(&a);
    cs_job j;
    cr_assert_eq(cs_job_decode(l.cmd[sub], l.len[sub], &a, &j, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(j.submitted, TS_SUBMITTED_MS, "the logged submission carries its time");
    j.submitted++;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cr_assert_eq(cs_job_encode(&j, &sb), CS_OK);
    free(l.cmd[sub]);
    l.cmd[sub] = malloc(sb.size);
    memcpy(l.cmd[sub], sb.data, sb.size);
    l.len[sub] = sb.size;
    ts_store w;
    replay_into(&l, l.n, &w);
    dumpb x = dump_all(u.s), y = dump_all(w.s);
    cr_assert(x.n != y.n || memcmp(x.p, y.p, x.n) != 0, "a different submission time went unseen");
    free(x.p);
    free(x.q);
    free(y.p);
    free(y.q);
    msgpack_sbuffer_destroy(&sb);
    cs_arena_free(&a);
    for (size_t i = 0; i < l.n; i++)
        free(l.cmd[i]);
    ts_store_destroy(&w);
    ts_store_destroy(&u);
    ts_store_destroy(&t);
}

/* Logged notes and reports of the wrong shape are corrupt, not applied. */
Test(ops, corrupt_note_and_report_commands_are_refused)
{
    ts_store t;
    ts_store_create(&t);
    cs_id j = ts_job(t.s, "j", CS_JOB_BATCH, 50, 1, 1, 1, 0, NULL, 0);
    dumpb d = dump_all(t.s);
    cs_error err = {0};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2); /* [id, 7]: the note is not a string */
    msgpack_pack_uint64(&pk, j);
    msgpack_pack_uint64(&pk, 7);
    expect_error(cs_command_apply(t.s, CS_CMD_JOB_NOTE, sb.data, sb.size, NULL, &err), &err, CS_ECORRUPT,
                 "job note");
    sb.size = 0;
    msgpack_pack_array(&pk, 2); /* a NUL inside the note */
    msgpack_pack_uint64(&pk, j);
    msgpack_pack_str(&pk, 3);
    msgpack_pack_str_body(&pk, "a\0b", 3);
    expect_error(cs_command_apply(t.s, CS_CMD_JOB_NOTE, sb.data, sb.size, NULL, &err), &err, CS_ECORRUPT,
                 "job note");
    sb.size = 0;
    msgpack_pack_array(&pk, 6); /* a task status whose health is a string */
    msgpack_pack_uint64(&pk, cs_task_id(j, 0));
    msgpack_pack_uint32(&pk, 1);
    msgpack_pack_uint8(&pk, CS_TASK_RUNNING);
    msgpack_pack_int32(&pk, 0);
    msgpack_pack_str(&pk, 0);
    msgpack_pack_str(&pk, 1);
    msgpack_pack_str_body(&pk, "h", 1);
    expect_error(cs_command_apply(t.s, CS_CMD_TASK_STATUS, sb.data, sb.size, NULL, &err), &err,
                 CS_ECORRUPT, "task status");
    dump_unchanged(t.s, &d, "corrupt commands");
    msgpack_sbuffer_destroy(&sb);
    ts_store_destroy(&t);
}

/* ======================================================================= */
/* scale, update and surge (rolling updates)                                */

/* A service job of `count` tasks of 1000m / 512 MiB, each placed on m1. */
static cs_id placed_service(cs_store *s, uint32_t count, cs_id *machine)
{
    *machine = ts_machine(s, "m1", 16000, 16384, 0, 0, 0, NULL, 0);
    cs_id j = ts_job(s, "svc", CS_JOB_SERVICE, 50, count, 1000, 512, 0, NULL, 0);
    for (uint32_t i = 0; i < count; i++)
        place(s, 100 + i, cs_task_id(j, i), *machine, 1000, 512, NULL, 0);
    return j;
}

/* The state of task `index` of job `j`. */
static uint8_t state_of(cs_store *s, cs_id j, uint32_t index, cs_arena *a)
{
    return task_now(s, cs_task_id(j, index), a).state;
}

/* The spec hash leaves the count out: a scale neither changes it nor makes
 * the running tasks old; an update of what runs does. */
Test(ops, scale_keeps_the_spec_hash)
{
    ts_store t;
    ts_store_create(&t);
    cs_id m, j = placed_service(t.s, 2, &m);
    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};
    cs_job before, after;
    get_job(t.s, j, &a, &before);
    cr_assert_eq(task_now(t.s, cs_task_id(j, 0), &a).spec, before.spec_hash);

    cr_assert_eq(cs_op_job_scale(t.s, j, 5, NULL, &err), CS_OK, "%s", err.msg);
    get_job(t.s, j, &a, &after);
    cr_assert_eq(after.count, 5);
    cr_assert_eq(after.spec_hash, before.spec_hash, "a scale changed the spec hash");
    cr_assert_eq(cs_op_job_scale(t.s, j, 1, NULL, &err), CS_OK, "%s", err.msg);
    get_job(t.s, j, &a, &after);
    cr_assert_eq(after.spec_hash, before.spec_hash, "a scale down changed the spec hash");
    cr_assert_eq(task_now(t.s, cs_task_id(j, 0), &a).spec, after.spec_hash,
                 "the task left running is not old");

    /* An update that only changes the count scales, and keeps the hash. */
    cs_job upd = job_spec("svc", 3, 1000, 512);
    upd.kind = CS_JOB_SERVICE;
    upd.priority = 50;
    upd.cmd = after.cmd;
    cr_assert_eq(cs_op_job_update(t.s, j, &upd, NULL, &err), CS_OK, "%s", err.msg);
    get_job(t.s, j, &a, &after);
    cr_assert_eq(after.count, 3, "an update of the count alone was dropped");
    cr_assert_eq(after.spec_hash, before.spec_hash);
    cr_assert_eq(state_of(t.s, j, 2, &a), CS_TASK_PENDING);
    /* A new command is a new version. */
    upd.cmd = "serve --v2";
    cr_assert_eq(cs_op_job_update(t.s, j, &upd, NULL, &err), CS_OK, "%s", err.msg);
    get_job(t.s, j, &a, &after);
    cr_assert_neq(after.spec_hash, before.spec_hash);
    cr_assert_neq(task_now(t.s, cs_task_id(j, 0), &a).spec, after.spec_hash,
                  "the running task should now run an old version");
    cs_arena_free(&a);
    ts_store_destroy(&t);
}

Test(ops, job_surge_up_and_down)
{
    ts_store t;
    ts_store_create(&t);
    cs_id m, j = placed_service(t.s, 2, &m);
    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};
    cs_job job;
    get_job(t.s, j, &a, &job);
    cr_assert_eq(job.surge, 0, "a new job has no surge");
    uint64_t hash = job.spec_hash, v0 = ts_version(t.s), v = 0;

    /* Up: pending tasks at the slots above the count. */
    cr_assert_eq(cs_op_job_surge(t.s, j, 2, &v, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(v, v0 + 1);
    get_job(t.s, j, &a, &job);
    cr_assert_eq(job.surge, 2);
    cr_assert_eq(job.count, 2, "surge is not count");
    cr_assert_eq(job.spec_hash, hash, "surge is not part of the spec");
    task_list l;
    tasks_of(t.s, j, &l);
    cr_assert_eq(l.n, 4);
    cr_assert_eq(l.t[2].state, CS_TASK_PENDING);
    cr_assert_eq(l.t[3].state, CS_TASK_PENDING);
    cr_assert_eq(l.t[3].res.mem, 512, "a surge task asks for the job's resources");

    /* The same surge again writes nothing, not even a log entry. */
    dumpb d = dump_all(t.s);
    cr_assert_eq(cs_op_job_surge(t.s, j, 2, &v, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(v, v0 + 1);
    dump_unchanged(t.s, &d, "an identical surge");

    /* A scale keeps the surge on top of the new count: slots [0, 3 + 2). */
    place(t.s, 200, cs_task_id(j, 2), m, 1000, 512, NULL, 0);
    cr_assert_eq(cs_op_job_scale(t.s, j, 3, NULL, &err), CS_OK, "%s", err.msg);
    get_job(t.s, j, &a, &job);
    cr_assert_eq(job.surge, 2, "a scale dropped the surge");
    tasks_of(t.s, j, &l);
    cr_assert_eq(l.n, 5);
    cr_assert_eq(l.t[4].state, CS_TASK_PENDING);
    cr_assert_eq(cs_op_job_scale(t.s, j, 2, NULL, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(state_of(t.s, j, 4, &a), CS_TASK_KILLED, "slot 4 left the range [0, 2 + 2)");
    cr_assert_eq(state_of(t.s, j, 3, &a), CS_TASK_PENDING);

    /* Down: the tasks above count + surge end, placed ones give back. */
    cr_assert_eq(cs_op_job_surge(t.s, j, 0, NULL, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(state_of(t.s, j, 2, &a), CS_TASK_KILLED);
    cr_assert_eq(state_of(t.s, j, 3, &a), CS_TASK_KILLED);
    cr_assert_eq(state_of(t.s, j, 0, &a), CS_TASK_ASSIGNED);
    cr_assert_eq(placed_on(t.s, m), 2);
    cs_machine mm;
    ts_get_machine(t.s, m, &a, &mm);
    cr_assert_eq(mm.allocated.cpu, 2000, "a killed surge task still holds its machine");
    invariants(t.s);

    /* Up again: the slots start afresh. */
    cr_assert_eq(cs_op_job_surge(t.s, j, 1, NULL, &err), CS_OK, "%s", err.msg);
    cs_task k = task_now(t.s, cs_task_id(j, 2), &a);
    cr_assert_eq(k.state, CS_TASK_PENDING);
    cr_assert_eq(k.attempts, 0);
    /* An update keeps it. */
    cs_job upd = job_spec("svc", 2, 1000, 512);
    upd.kind = CS_JOB_SERVICE;
    upd.cmd = "serve --v2";
    cr_assert_eq(cs_op_job_update(t.s, j, &upd, NULL, &err), CS_OK, "%s", err.msg);
    get_job(t.s, j, &a, &job);
    cr_assert_eq(job.surge, 1, "an update dropped the surge");
    cs_arena_free(&a);
    ts_store_destroy(&t);
}

Test(ops, job_surge_refusals_write_nothing)
{
    ts_store t;
    ts_store_create(&t);
    cs_id m, j = placed_service(t.s, 2, &m);
    cs_id b = ts_job(t.s, "crunch", CS_JOB_BATCH, 50, 2, 1, 1, 0, NULL, 0);
    cs_id k = ts_job(t.s, "gone", CS_JOB_SERVICE, 50, 1, 1, 1, 0, NULL, 0);
    cs_error err = {0};
    cr_assert_eq(cs_op_job_kill(t.s, k, 1000, NULL, &err), CS_OK, "%s", err.msg);
    dumpb d = dump_all(t.s);
    expect_error(cs_op_job_surge(t.s, b, 1, NULL, &err), &err, CS_EINVAL, "crunch");
    cr_assert(strstr(err.msg, "service") != NULL, "'%s' does not say why", err.msg);
    expect_error(cs_op_job_surge(t.s, k, 1, NULL, &err), &err, CS_ESTATE, "gone");
    expect_error(cs_op_job_surge(t.s, k, 0, NULL, &err), &err, CS_ESTATE, "killed");
    expect_error(cs_op_job_surge(t.s, 999, 1, NULL, &err), &err, CS_ENOTFOUND, "999");
    expect_error(cs_op_job_surge(t.s, j, CS_TASK_INDEX_MAX, NULL, &err), &err, CS_EINVAL,
                 "exceed");
    only_logged(t.s, &d, "refused surges");
    /* With a surge, the count may not take the last slots either. */
    cr_assert_eq(cs_op_job_surge(t.s, j, 1, NULL, &err), CS_OK, "%s", err.msg);
    d = dump_all(t.s);
    expect_error(cs_op_job_scale(t.s, j, CS_TASK_INDEX_MAX + 1, NULL, &err), &err, CS_EINVAL,
                 "surge 1");
    only_logged(t.s, &d, "a scale beyond the slots");
    ts_store_destroy(&t);
}

/* job-surge and restarts in place are commands of the log like the rest:
 * replaying it gives the same store byte for byte. */
Test(ops, replay_reproduces_surges_and_restarts)
{
    ts_store t;
    ts_store_create(&t);
    cs_id m, j = placed_service(t.s, 2, &m);
    cs_error err = {0};
    cr_assert_eq(cs_op_job_surge(t.s, j, 2, NULL, &err), CS_OK, "%s", err.msg);
    place(t.s, 300, cs_task_id(j, 2), m, 1000, 512, NULL, 0);
    /* Task 0 restarts in place: released to pending and claimed again in
     * one transaction. */
    cs_txn tx;
    cs_txn_init(&tx, 1, 301, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    cs_res res = {1000, 512, 0};
    cr_assert_eq(cs_txn_add_release(&tx, cs_task_id(j, 0), CS_TASK_PENDING, 0), CS_OK);
    cr_assert_eq(cs_txn_add_claim(&tx, cs_task_id(j, 0), m, &res, NULL, 0, 0), CS_OK);
    cs_txn_result r;
    cs_txn_result_init(&r);
    cr_assert_eq(cs_commit(t.s, &tx, &r, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(r.claims[0], CS_COMMITTED, "%s", cs_outcome_str(r.claims[0]));
    cs_txn_result_free(&r);
    cs_txn_free(&tx);
    cr_assert_eq(cs_op_job_surge(t.s, j, 0, NULL, &err), CS_OK, "%s", err.msg);
    invariants(t.s);

    logcopy l;
    copy_whole_log(t.s, &l);
    size_t surges = 0;
    for (size_t i = 0; i < l.n; i++)
        surges += l.kind[i] == CS_CMD_JOB_SURGE;
    cr_assert_eq(surges, 2, "%zu job-surge commands logged, want 2", surges);
    ts_store u;
    replay_equals(&l, t.s, &u);
    /* Without the last surge command, the surge task would still run. */
    ts_store w;
    replay_into(&l, l.n - 1, &w);
    cs_arena a;
    cs_arena_init(&a);
    cr_assert_eq(state_of(w.s, j, 2, &a), CS_TASK_ASSIGNED);
    cr_assert_eq(state_of(u.s, j, 2, &a), CS_TASK_KILLED);
    cs_arena_free(&a);
    for (size_t i = 0; i < l.n; i++)
        free(l.cmd[i]);
    ts_store_destroy(&w);
    ts_store_destroy(&u);
    ts_store_destroy(&t);
}

/* ---- job lifecycle: end, kill's time, garbage collection ------------------------------ */

static cs_job job_now(cs_store *s, cs_id id, cs_arena *a)
{
    cs_snap *snap;
    cs_error err = {0};
    cr_assert_eq(cs_snap_open(s, &snap, &err), CS_OK, "%s", err.msg);
    cs_job j;
    cr_assert_eq(cs_snap_job(snap, id, a, &j, &err), CS_OK, "%s", err.msg);
    cs_snap_close(snap);
    return j;
}

/* Place task `id` on `m` (request `req`) and end its first attempt in `state`. */
static void run_to_end(cs_store *s, uint64_t req, cs_id id, cs_id m, uint8_t state)
{
    place(s, req, id, m, 100, 10, NULL, 0);
    cs_error err = {0};
    cr_assert_eq(cs_op_task_status(s, id, 1, state, state == CS_TASK_FINISHED ? 0 : 3, NULL, NULL,
                                   &err),
                 CS_OK, "%s", err.msg);
}

Test(ops, a_batch_job_ends_finished_or_failed_once_every_task_has_ended)
{
    ts_store t;
    ts_store_create(&t);
    cs_id m = ts_machine(t.s, "m1", 4000, 4096, 0, 0, 0, NULL, 0);
    cs_id ok = ts_job(t.s, "ok", CS_JOB_BATCH, 50, 2, 100, 10, 0, NULL, 0);
    cs_id bad = ts_job(t.s, "bad", CS_JOB_BATCH, 50, 2, 100, 10, 0, NULL, 0);
    cs_id svc = ts_job(t.s, "svc", CS_JOB_SERVICE, 50, 1, 100, 10, 0, NULL, 0);
    cs_error err = {0};
    cs_arena a;
    cs_arena_init(&a);

    /* Not before every task has ended: the asker's copy was stale. */
    dumpb d = dump_all(t.s);
    expect_error(cs_op_job_end(t.s, ok, 5000, NULL, &err), &err, CS_ESTATE, "pending");
    run_to_end(t.s, 1, cs_task_id(ok, 0), m, CS_TASK_FINISHED);
    place(t.s, 2, cs_task_id(ok, 1), m, 100, 10, NULL, 0);
    expect_error(cs_op_job_end(t.s, ok, 5000, NULL, &err), &err, CS_ESTATE, "assigned");
    expect_error(cs_op_job_end(t.s, svc, 5000, NULL, &err), &err, CS_EINVAL, "until it is killed");
    expect_error(cs_op_job_end(t.s, 99, 5000, NULL, &err), &err, CS_ENOTFOUND, "99");
    free(d.p);
    free(d.q);

    cr_assert_eq(cs_op_task_status(t.s, cs_task_id(ok, 1), 1, CS_TASK_FINISHED, 0, NULL, NULL,
                                   &err),
                 CS_OK, "%s", err.msg);
    uint64_t v0 = ts_version(t.s), v = 0;
    cr_assert_eq(cs_op_job_end(t.s, ok, 5000, &v, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(v, v0 + 1, "the end is a change of its own");
    cs_job j = job_now(t.s, ok, &a);
    cr_assert_eq(j.state, CS_JOB_FINISHED, "all finished: %s", cs_job_state_name(j.state));
    cr_assert_eq(j.ended, 5000);
    cr_assert_str_eq(cs_job_state_name(j.state), "finished");

    /* One failed task (past its retries: the scheduler's call) fails the job. */
    run_to_end(t.s, 3, cs_task_id(bad, 0), m, CS_TASK_FINISHED);
    run_to_end(t.s, 4, cs_task_id(bad, 1), m, CS_TASK_FAILED);
    cr_assert_eq(cs_op_job_end(t.s, bad, 6000, NULL, &err), CS_OK, "%s", err.msg);
    j = job_now(t.s, bad, &a);
    cr_assert_eq(j.state, CS_JOB_FAILED);
    cr_assert_eq(j.ended, 6000);
    cr_assert_str_eq(cs_job_state_name(j.state), "failed");

    /* An ended job is ended: no second end, no scale, no surge; a kill
     * changes nothing, not even its end time. */
    d = dump_all(t.s);
    expect_error(cs_op_job_end(t.s, ok, 7000, NULL, &err), &err, CS_ESTATE, "finished");
    expect_error(cs_op_job_scale(t.s, bad, 5, NULL, &err), &err, CS_ESTATE, "failed");
    cr_assert_eq(cs_op_job_kill(t.s, ok, 7000, NULL, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(job_now(t.s, ok, &a).ended, 5000);
    cr_assert_eq(job_now(t.s, ok, &a).state, CS_JOB_FINISHED);
    free(d.p);
    free(d.q);

    /* Its failed task is not run again: a stale scheduler's retry of it
     * conflicts and writes nothing. */
    d = dump_all(t.s);
    cs_txn tx;
    cs_txn_init(&tx, 1, 99, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    cr_assert_eq(cs_txn_add_release(&tx, cs_task_id(bad, 1), CS_TASK_PENDING, 0), CS_OK);
    cs_txn_result r;
    cs_txn_result_init(&r);
    cr_assert_eq(cs_commit(t.s, &tx, &r, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(r.releases[0], CS_CONFLICT_TASK_NOT_PLACED, "%s", cs_outcome_str(r.releases[0]));
    cs_txn_result_free(&r);
    cs_txn_free(&tx);
    cs_task bt;
    ts_get_task(t.s, cs_task_id(bad, 1), &a, &bt);
    cr_assert_eq(bt.state, CS_TASK_FAILED);
    free(d.p);
    free(d.q);

    /* A kill stamps its time; the name is free again once the job ended. */
    cr_assert_eq(cs_op_job_kill(t.s, svc, 8000, NULL, &err), CS_OK, "%s", err.msg);
    j = job_now(t.s, svc, &a);
    cr_assert_eq(j.state, CS_JOB_KILLED);
    cr_assert_eq(j.ended, 8000);
    cs_id again = ts_job(t.s, "ok", CS_JOB_BATCH, 50, 1, 100, 10, 0, NULL, 0);
    cr_assert_neq(again, ok);
    cr_assert_eq(job_now(t.s, again, &a).ended, 0, "a new job has not ended");
    cs_arena_free(&a);
    ts_store_destroy(&t);
}

Test(ops, job_gc_removes_ended_jobs_their_tasks_and_names)
{
    ts_store t;
    ts_store_create(&t);
    cs_id m = ts_machine(t.s, "m1", 4000, 4096, 0, 0, 0, NULL, 0);
    cs_id done = ts_job(t.s, "done", CS_JOB_BATCH, 50, 1, 100, 10, 0, NULL, 0);
    cs_id killed = ts_job(t.s, "killed", CS_JOB_SERVICE, 50, 2, 100, 10, 0, NULL, 0);
    cs_id live = ts_job(t.s, "live", CS_JOB_SERVICE, 50, 1, 100, 10, 0, NULL, 0);
    cs_error err = {0};
    run_to_end(t.s, 1, cs_task_id(done, 0), m, CS_TASK_FINISHED);
    cr_assert_eq(cs_op_job_end(t.s, done, 5000, NULL, &err), CS_OK, "%s", err.msg);
    place(t.s, 2, cs_task_id(killed, 0), m, 100, 10, NULL, 0);
    cr_assert_eq(cs_op_job_kill(t.s, killed, 6000, NULL, &err), CS_OK, "%s", err.msg);
    /* A job submitted again under the name of an ended one owns the name. */
    cs_id renewed = ts_job(t.s, "done", CS_JOB_BATCH, 50, 1, 100, 10, 0, NULL, 0);

    /* Refused whole, writing nothing: an active job, an unknown one, ids
     * out of order or repeated, none at all. */
    dumpb d = dump_all(t.s);
    cs_id with_live[] = {done, live};
    expect_error(cs_op_job_gc(t.s, with_live, 2, NULL, &err), &err, CS_ESTATE, "live");
    cs_id unknown[] = {done, 99};
    expect_error(cs_op_job_gc(t.s, unknown, 2, NULL, &err), &err, CS_ENOTFOUND, "99");
    cs_id backwards[] = {killed, done};
    expect_error(cs_op_job_gc(t.s, backwards, 2, NULL, &err), &err, CS_EINVAL, "ascending");
    cs_id twice[] = {done, done};
    expect_error(cs_op_job_gc(t.s, twice, 2, NULL, &err), &err, CS_EINVAL, "ascending");
    expect_error(cs_op_job_gc(t.s, twice, 0, NULL, &err), &err, CS_EINVAL, "no job");
    only_logged(t.s, &d, "refused collections");

    uint64_t before = ts_version(t.s);
    cs_id both[] = {done, killed};
    uint64_t v = 0;
    cr_assert_eq(cs_op_job_gc(t.s, both, 2, &v, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(v, before + 1);

    cs_snap *snap;
    cs_arena a;
    cs_arena_init(&a);
    cr_assert_eq(cs_snap_open(t.s, &snap, &err), CS_OK, "%s", err.msg);
    cs_job j;
    cs_task k;
    cr_assert_eq(cs_snap_job(snap, done, &a, &j, &err), CS_ENOTFOUND);
    cr_assert_eq(cs_snap_job(snap, killed, &a, &j, &err), CS_ENOTFOUND);
    for (uint32_t i = 0; i < 2; i++)
        cr_assert_eq(cs_snap_task(snap, cs_task_id(killed, i), &a, &k, &err), CS_ENOTFOUND);
    cr_assert_eq(cs_snap_task(snap, cs_task_id(done, 0), &a, &k, &err), CS_ENOTFOUND);
    cr_assert_eq(cs_snap_job_by_name(snap, "killed", &a, &j, &err), CS_ENOTFOUND,
                 "a collected job's name leaves the index");
    cr_assert_eq(cs_snap_job_by_name(snap, "done", &a, &j, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(j.id, renewed, "the newer job keeps its name");
    cr_assert_eq(cs_snap_job(snap, live, &a, &j, &err), CS_OK, "%s", err.msg);
    /* A reader behind sees the removed ids in its change set, and no
     * record: the server answers such a sync in full (§5.7). */
    cs_changes ch;
    cr_assert_eq(cs_snap_changes_since(snap, before, &ch, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(ch.n[CS_KIND_JOB], 2);
    cr_assert_eq(ch.ids[CS_KIND_JOB][0], done);
    cr_assert_eq(ch.ids[CS_KIND_JOB][1], killed);
    cr_assert_eq(ch.n[CS_KIND_TASK], 3);
    cs_changes_free(&ch);
    cs_snap_close(snap);
    cs_arena_free(&a);

    /* The machine holds nothing of them, and the invariants hold. */
    char why[256];
    cr_assert(ts_check_invariants(t.s, why, sizeof why), "%s", why);
    /* Collected jobs stay collected across a reopen. */
    ts_store_reopen(&t);
    d = dump_all(t.s);
    cr_assert_eq(cs_op_job_gc(t.s, both, 2, NULL, &err), CS_ENOTFOUND);
    only_logged(t.s, &d, "a second collection");
    ts_store_destroy(&t);
}

/* Ends, kills and collections are logged commands: replaying the log gives
 * the same store byte for byte, end times and removals included. */
Test(ops, replay_reproduces_job_ends_and_collections)
{
    ts_store t;
    ts_store_create(&t);
    cs_id m = ts_machine(t.s, "m1", 4000, 4096, 0, 0, 0, NULL, 0);
    cs_id a1 = ts_job(t.s, "a", CS_JOB_BATCH, 50, 1, 100, 10, 0, NULL, 0);
    cs_id b1 = ts_job(t.s, "b", CS_JOB_BATCH, 50, 1, 100, 10, 0, NULL, 0);
    cs_id c1 = ts_job(t.s, "c", CS_JOB_SERVICE, 50, 1, 100, 10, 0, NULL, 0);
    cs_error err = {0};
    run_to_end(t.s, 1, cs_task_id(a1, 0), m, CS_TASK_FINISHED);
    run_to_end(t.s, 2, cs_task_id(b1, 0), m, CS_TASK_FAILED);
    cr_assert_eq(cs_op_job_end(t.s, a1, 5000, NULL, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_op_job_end(t.s, b1, 5001, NULL, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_op_job_kill(t.s, c1, 5002, NULL, &err), CS_OK, "%s", err.msg);
    cs_id gone[] = {a1};
    cr_assert_eq(cs_op_job_gc(t.s, gone, 1, NULL, &err), CS_OK, "%s", err.msg);
    logcopy l;
    copy_whole_log(t.s, &l);
    bool saw_end = false, saw_gc = false;
    for (size_t i = 0; i < l.n; i++) {
        saw_end |= l.kind[i] == CS_CMD_JOB_END;
        saw_gc |= l.kind[i] == CS_CMD_JOB_GC;
    }
    cr_assert(saw_end && saw_gc, "job-end and job-gc are in the log");
    ts_store u;
    replay_equals(&l, t.s, &u);
    for (size_t i = 0; i < l.n; i++)
        free(l.cmd[i]);
    ts_store_destroy(&u);
    ts_store_destroy(&t);
}

Test(ops, machine_admin_commands_replay)
{
    /* What the operator did, logged, replays to the same store. */
    ts_store t;
    ts_store_create(&t);
    cs_error err = {0};
    down_cell c = build_down_cell(t.s);
    place(t.s, 70, cs_task_id(c.other, 0), c.m1, 100, 100, NULL, 0);
    cr_assert_eq(cs_op_machine_admin(t.s, c.m2, CS_ADMIN_CORDONED, 0, NULL, &err), CS_OK);
    cr_assert_eq(cs_op_machine_admin(t.s, c.m1, CS_ADMIN_DRAINING, 77, NULL, &err), CS_OK);
    cr_assert_eq(cs_op_machine_drain_deadline(t.s, c.m1, NULL, &err), CS_OK);
    logcopy l;
    copy_whole_log(t.s, &l);
    cr_assert_eq(l.kind[l.n - 1], CS_CMD_DRAIN_DEADLINE);
    cr_assert_eq(l.kind[l.n - 2], CS_CMD_MACHINE_ADMIN);
    ts_store u;
    replay_equals(&l, t.s, &u);

    /* a logged machine-admin that is not [id, admin, deadline] is an error
     * naming it; one with an unknown admin word is the cell's refusal */
    const uint8_t bad[][4] = {{0x92, 0x01, 0x01}, {0x93, 0xa1, 'x', 0}};
    for (size_t i = 0; i < 2; i++) {
        int rc = cs_command_apply(u.s, CS_CMD_MACHINE_ADMIN, bad[i], i == 0 ? 3 : 4, NULL, &err);
        cr_assert_neq(rc, CS_OK, "body %zu was applied", i);
        cr_assert(strstr(err.msg, "machine-admin") != NULL, "'%s' does not name it", err.msg);
    }
    const uint8_t word7[] = {0x93, 0x01, 0x07, 0x00};
    cs_result res;
    cs_result_init(&res);
    cr_assert_eq(cs_command_apply(u.s, CS_CMD_MACHINE_ADMIN, word7, sizeof word7, &res, &err),
                 CS_OK, "%s", err.msg);
    cr_assert_eq(res.status, CS_EINVAL);
    cr_assert(strstr(res.message, "admin") != NULL, "'%s' does not name it", res.message);
    cs_result_free(&res);
    for (size_t i = 0; i < l.n; i++)
        free(l.cmd[i]);
    ts_store_destroy(&u);
    ts_store_destroy(&t);
}
