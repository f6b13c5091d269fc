/* test_store_fast.c — the store's shortcuts give what the long ways give:
 * a machine judged from the copy kept in memory (cs_snap_machine_fit) is
 * the machine its record and the allocation table describe; the cell
 * version read from the log's last key survives a compaction that empties
 * the log and a reopen; idempotency records found through the in-memory
 * index survive a reopen and go with compaction. */
#include <criterion/criterion.h>
#include <string.h>

#include "cellstate/store.h"
#include "tests/support.h"
#include "txn/commit.h"
#include "txn/ops.h"

static cs_snap *snap_of(cs_store *s)
{
    cs_snap *snap;
    cs_error err = {0};
    cr_assert_eq(cs_snap_open(s, &snap, &err), CS_OK, "%s", err.msg);
    return snap;
}

/* Commit one claim as (sched, req); the result in *r (caller frees). */
static void claim(cs_store *s, uint64_t sched, uint64_t req, cs_id task, cs_id machine,
                  const uint16_t *ports, uint32_t nports, cs_txn_result *r)
{
    cs_txn tx;
    cs_txn_init(&tx, sched, req, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    cs_res res = {1000, 1000, 0};
    cr_assert_eq(cs_txn_add_claim(&tx, task, machine, &res, ports, nports, 0), CS_OK);
    cs_txn_result_init(r);
    cs_error err = {0};
    cr_assert_eq(cs_commit(s, &tx, r, &err), CS_OK, "%s", err.msg);
    cs_txn_free(&tx);
}

static void assert_fit_is_record(cs_snap *snap, cs_id id)
{
    cs_arena a;
    cs_arena_init(&a);
    cs_machine full, fit;
    cs_error err = {0};
    cr_assert_eq(cs_snap_machine(snap, id, &a, &full, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_snap_machine_fit(snap, id, &a, &fit, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(fit.id, full.id);
    cr_assert(memcmp(&fit.capacity, &full.capacity, sizeof fit.capacity) == 0,
              "machine %llu: capacity", (unsigned long long)id);
    cr_assert(memcmp(&fit.allocated, &full.allocated, sizeof fit.allocated) == 0,
              "machine %llu: allocation", (unsigned long long)id);
    cr_assert_eq(fit.port_lo, full.port_lo);
    cr_assert_eq(fit.port_hi, full.port_hi);
    cr_assert_eq(fit.state, full.state, "machine %llu: state %u, record %u",
                 (unsigned long long)id, fit.state, full.state);
    cr_assert_eq(fit.ntasks, full.ntasks);
    cr_assert_eq(fit.nports, full.nports);
    if (fit.nports > 0)
        cr_assert(memcmp(fit.ports, full.ports, fit.nports * sizeof *fit.ports) == 0);
    cr_assert_eq(fit.seq, full.seq, "machine %llu: seq %llu, record %llu",
                 (unsigned long long)id, (unsigned long long)fit.seq,
                 (unsigned long long)full.seq);
    cr_assert_eq(fit.version, full.version);
    cs_arena_free(&a);
}

static void assert_fits_are_records(cs_store *s, cs_id nmachines)
{
    cs_snap *snap = snap_of(s);
    for (cs_id m = 1; m <= nmachines; m++)
        assert_fit_is_record(snap, m);
    cs_snap_close(snap);
    /* In a write transaction too, where the table is the transaction's. */
    cs_wtxn *w;
    cs_error err = {0};
    cr_assert_eq(cs_wtxn_begin(s, &w, &err), CS_OK, "%s", err.msg);
    for (cs_id m = 1; m <= nmachines; m++)
        assert_fit_is_record(cs_wtxn_snap(w), m);
    cs_wtxn_abort(w);
}

Test(store_fast, machine_fit_is_the_record_and_its_allocation)
{
    ts_store t;
    ts_store_create(&t);
    cs_id m1 = ts_machine(t.s, "m1", 4000, 4000, 10, 31000, 31010, NULL, 0);
    cs_id m2 = ts_machine(t.s, "m2", 4000, 4000, 10, 0, 0, NULL, 0);
    cs_id m3 = ts_machine(t.s, "m3", 2000, 2000, 10, 0, 0, NULL, 0);
    cr_assert_eq(m3, 3);
    cs_id j = ts_job(t.s, "j", CS_JOB_SERVICE, 0, 4, 1000, 1000, 0, NULL, 1);
    assert_fits_are_records(t.s, 3);

    cs_txn_result r;
    const uint16_t p1[] = {31002}, p2[] = {31005};
    claim(t.s, 1, 1, cs_task_id(j, 0), m1, p1, 1, &r);
    cr_assert_eq(r.committed, 1);
    cs_txn_result_free(&r);
    claim(t.s, 1, 2, cs_task_id(j, 1), m1, p2, 1, &r);
    cr_assert_eq(r.committed, 1);
    cs_txn_result_free(&r);
    assert_fits_are_records(t.s, 3);

    /* The record changes: capacity and port range, then state. */
    ts_machine(t.s, "m1", 8000, 8000, 20, 31000, 31020, NULL, 0);
    cs_error err = {0};
    cr_assert_eq(cs_op_machine_state(t.s, m2, CS_MACHINE_DRAINING, NULL, &err), CS_OK, "%s",
                 err.msg);
    assert_fits_are_records(t.s, 3);

    /* A claim judged on the changed copy: m2 takes no new task now. */
    cs_id b = ts_job(t.s, "b", CS_JOB_BATCH, 0, 1, 1000, 1000, 0, NULL, 0);
    claim(t.s, 1, 3, cs_task_id(b, 0), m2, NULL, 0, &r);
    cr_assert_eq(r.claims[0], CS_CONFLICT_MACHINE_NOT_UP, "outcome %s",
                 cs_outcome_str(r.claims[0]));
    cs_txn_result_free(&r);

    /* Rebuilt at open. */
    ts_store_reopen(&t);
    assert_fits_are_records(t.s, 3);

    cs_snap *snap = snap_of(t.s);
    cs_arena a;
    cs_arena_init(&a);
    cs_machine m;
    cs_error_clear(&err);
    cr_assert_eq(cs_snap_machine_fit(snap, 99, &a, &m, &err), CS_ENOTFOUND);
    cr_assert(strstr(err.msg, "unknown machine 99") != NULL, "%s", err.msg);
    cs_arena_free(&a);
    cs_snap_close(snap);
    ts_store_destroy(&t);
}

/* The sub-indices of the log entries at the current version, in order. */
typedef struct subs {
    uint64_t version;
    uint32_t n[16];
    size_t count;
} subs;

static int collect_subs(void *ctx, uint64_t version, uint32_t n, uint8_t kind, const void *cmd,
                        size_t len)
{
    (void)kind;
    (void)cmd;
    (void)len;
    subs *s = ctx;
    if (version == s->version && s->count < 16)
        s->n[s->count++] = n;
    return 0;
}

Test(store_fast, version_survives_a_compaction_that_empties_the_log)
{
    ts_store t;
    ts_store_create(&t);
    cs_id m = ts_machine(t.s, "m", 1000, 1000, 10, 0, 0, NULL, 0);
    cs_id j = ts_job(t.s, "j", CS_JOB_BATCH, 0, 2, 1000, 1000, 0, NULL, 0);
    cs_txn_result r;
    claim(t.s, 1, 1, cs_task_id(j, 0), m, NULL, 0, &r);
    cr_assert_eq(r.committed, 1);
    cr_assert_eq(r.version, 3);
    cs_txn_result_free(&r);
    /* Changes nothing (the machine is full): logged at (3, 1). */
    claim(t.s, 1, 2, cs_task_id(j, 1), m, NULL, 0, &r);
    cr_assert_eq(r.committed, 0);
    cr_assert_eq(r.version, 3);
    cs_txn_result_free(&r);

    cs_error err = {0};
    cr_assert_eq(cs_store_compact(t.s, 1000, &err), CS_OK, "%s", err.msg);
    ts_store_reopen(&t);
    cs_snap *snap = snap_of(t.s);
    cr_assert_eq(cs_snap_version(snap), 3, "version %llu after emptying the log and reopening",
                 (unsigned long long)cs_snap_version(snap));
    cr_assert_eq(cs_snap_floor(snap), 3);
    cs_snap_close(snap);

    /* The next command that changes nothing goes after (3, 1), not over
     * it; (1, 2) was forgotten with its log entry and is judged again. */
    claim(t.s, 1, 2, cs_task_id(j, 1), m, NULL, 0, &r);
    cr_assert(!r.replayed);
    cr_assert_eq(r.version, 3);
    cs_txn_result_free(&r);
    snap = snap_of(t.s);
    subs s = {.version = 3};
    cr_assert_eq(cs_snap_each_log(snap, 3, collect_subs, &s, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(s.count, 1);
    cr_assert_eq(s.n[0], 2, "logged at (3, %u)", s.n[0]);
    cs_snap_close(snap);

    /* A command that changes something moves the version on. */
    ts_machine(t.s, "m2", 1000, 1000, 10, 0, 0, NULL, 0);
    snap = snap_of(t.s);
    cr_assert_eq(cs_snap_version(snap), 4);
    cs_snap_close(snap);
    ts_store_destroy(&t);
}

Test(store_fast, idempotency_records_survive_a_reopen_and_go_with_compaction)
{
    ts_store t;
    ts_store_create(&t);
    cs_id m = ts_machine(t.s, "m", 4000, 4000, 10, 0, 0, NULL, 0);
    cs_id j = ts_job(t.s, "j", CS_JOB_BATCH, 0, 3, 1000, 1000, 0, NULL, 0);
    cs_txn_result r;
    claim(t.s, 7, 1, cs_task_id(j, 0), m, NULL, 0, &r); /* version 3 */
    cs_txn_result_free(&r);
    claim(t.s, 7, 2, cs_task_id(j, 1), m, NULL, 0, &r); /* version 4 */
    cs_txn_result_free(&r);

    ts_store_reopen(&t);
    claim(t.s, 7, 1, cs_task_id(j, 0), m, NULL, 0, &r);
    cr_assert(r.replayed, "(7, 1) was judged again after a reopen");
    cr_assert_eq(r.committed, 1);
    cr_assert_eq(r.version, 3);
    cs_txn_result_free(&r);

    cs_error err = {0};
    cr_assert_eq(cs_store_compact(t.s, 3, &err), CS_OK, "%s", err.msg);
    ts_store_reopen(&t);
    claim(t.s, 7, 1, cs_task_id(j, 0), m, NULL, 0, &r);
    cr_assert(!r.replayed, "(7, 1), at the floor, was still replayed");
    cr_assert_eq(r.claims[0], CS_CONFLICT_TASK_NOT_PENDING);
    cs_txn_result_free(&r);
    claim(t.s, 7, 2, cs_task_id(j, 1), m, NULL, 0, &r);
    cr_assert(r.replayed, "(7, 2), above the floor, was judged again");
    cr_assert_eq(r.version, 4);
    cs_txn_result_free(&r);
    ts_store_destroy(&t);
}
