/* test_commit.c — Omega's optimistic commit (txn/commit.h) against a real
 * store: fine- and coarse-grained conflict detection, incremental and
 * all-or-nothing transactions, releases, preemption, idempotency, input
 * validation, the dry run and determinism.
 *
 * Every test runs on a fresh store in a temporary directory (the fixture),
 * removed even when an assertion fails.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cellstate/rng.h"
#include "tests/support.h"
#include "txn/conflict.h"

/* ---- fixture and helpers ---------------------------------------------------- */

static ts_store T;
static cs_arena A;

static void setup(void)
{
    ts_store_create(&T);
    cs_arena_init(&A);
}

static void teardown(void)
{
    cs_arena_free(&A);
    if (T.s != NULL)
        ts_store_destroy(&T);
}

TestSuite(commit, .init = setup, .fini = teardown);

static uint64_t version(void) { return ts_version(T.s); }

static cs_machine mach(cs_id id)
{
    cs_machine m;
    ts_get_machine(T.s, id, &A, &m);
    return m;
}

static cs_task task(cs_id id)
{
    cs_task t;
    ts_get_task(T.s, id, &A, &t);
    return t;
}

static int count_cb(void *ctx, const cs_task *t)
{
    (void)t;
    (*(size_t *)ctx)++;
    return 0;
}

/* Tasks the placed index lists on machine `m`. */
static size_t placed_on(cs_id m)
{
    cs_snap *snap;
    cs_error err = {0};
    cr_assert_eq(cs_snap_open(T.s, &snap, &err), CS_OK, "%s", err.msg);
    size_t n = 0;
    cr_assert_eq(cs_snap_each_task_on_machine(snap, m, count_cb, &n, &err), CS_OK, "%s", err.msg);
    cs_snap_close(snap);
    return n;
}

static void invariants_of(cs_store *s)
{
    char why[256];
    cr_assert(ts_check_invariants(s, why, sizeof why), "invariant broken: %s", why);
}
static void invariants(void) { invariants_of(T.s); }

static void assert_alloc(cs_id m, int64_t cpu, int64_t mem, int64_t disk, uint32_t ntasks)
{
    cs_machine x = mach(m);
    cr_assert_eq(x.allocated.cpu, cpu, "machine %llu cpu %lld, want %lld", (unsigned long long)m,
                 (long long)x.allocated.cpu, (long long)cpu);
    cr_assert_eq(x.allocated.mem, mem, "machine %llu mem %lld, want %lld", (unsigned long long)m,
                 (long long)x.allocated.mem, (long long)mem);
    cr_assert_eq(x.allocated.disk, disk, "machine %llu disk %lld, want %lld",
                 (unsigned long long)m, (long long)x.allocated.disk, (long long)disk);
    cr_assert_eq(x.ntasks, ntasks, "machine %llu ntasks %u, want %u", (unsigned long long)m,
                 x.ntasks, ntasks);
}

static void assert_state(cs_id t, uint8_t state, cs_id machine)
{
    cs_task x = task(t);
    cr_assert_eq(x.state, state, "task %llu is %s, want %s", (unsigned long long)t,
                 cs_task_state_name(x.state), cs_task_state_name(state));
    cr_assert_eq(x.machine, machine, "task %llu on machine %llu, want %llu",
                 (unsigned long long)t, (unsigned long long)x.machine,
                 (unsigned long long)machine);
}

/* Assert each claim's outcome, in order. */
static void assert_claims(const cs_txn_result *r, uint32_t n, const uint8_t *want)
{
    cr_assert_eq(r->nclaims, n, "result has %u claims, want %u", r->nclaims, n);
    for (uint32_t i = 0; i < n; i++)
        cr_assert_eq(r->claims[i], want[i], "claim %u: %s, want %s", i,
                     cs_outcome_str(r->claims[i]), cs_outcome_str(want[i]));
}
#define CLAIMS(r, ...)                                                             \
    do {                                                                           \
        const uint8_t want_[] = {__VA_ARGS__};                                     \
        assert_claims((r), (uint32_t)sizeof want_, want_);                         \
    } while (0)

static void claim(cs_txn *t, cs_id task_id, cs_id machine, int64_t cpu, int64_t mem, int64_t disk,
                  uint64_t seq)
{
    cs_res r = {cpu, mem, disk};
    cr_assert_eq(cs_txn_add_claim(t, task_id, machine, &r, NULL, 0, seq), CS_OK);
}

static void claim_ports(cs_txn *t, cs_id task_id, cs_id machine, int64_t cpu, int64_t mem,
                        const uint16_t *ports, uint32_t nports)
{
    cs_res r = {cpu, mem, 0};
    cr_assert_eq(cs_txn_add_claim(t, task_id, machine, &r, ports, nports, 0), CS_OK);
}

/* Commit and expect success. */
static void commit_ok(const cs_txn *t, cs_txn_result *r)
{
    cs_error err = {0};
    int rc = cs_commit(T.s, t, r, &err);
    cr_assert_eq(rc, CS_OK, "commit: rc %d: %s", rc, err.msg);
}

/* Place one task with a fine-grained, incremental one-claim transaction. */
static uint64_t next_req = 1000;
static void place_d(cs_id task_id, cs_id machine, int64_t cpu, int64_t mem, int64_t disk,
                    const uint16_t *ports, uint32_t nports)
{
    cs_txn t;
    cs_txn_init(&t, 99, next_req++, version(), CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    cs_res res = {cpu, mem, disk};
    cr_assert_eq(cs_txn_add_claim(&t, task_id, machine, &res, ports, nports, 0), CS_OK);
    cs_txn_result r;
    cs_txn_result_init(&r);
    commit_ok(&t, &r);
    cr_assert_eq(r.claims[0], CS_COMMITTED, "placing task %llu: %s", (unsigned long long)task_id,
                 cs_outcome_str(r.claims[0]));
    cs_txn_result_free(&r);
    cs_txn_free(&t);
}
static void place(cs_id task_id, cs_id machine, int64_t cpu, int64_t mem, const uint16_t *ports,
                  uint32_t nports)
{
    place_d(task_id, machine, cpu, mem, 0, ports, nports);
}

/* Release one task, expecting `want`. */
static void release(cs_id task_id, uint8_t state, int32_t exit_code, uint8_t want)
{
    cs_txn t;
    cs_txn_init(&t, 98, next_req++, version(), CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    cr_assert_eq(cs_txn_add_release(&t, task_id, state, exit_code), CS_OK);
    cs_txn_result r;
    cs_txn_result_init(&r);
    commit_ok(&t, &r);
    cr_assert_eq(r.nreleases, 1);
    cr_assert_eq(r.releases[0], want, "release of %llu to %s: %s, want %s",
                 (unsigned long long)task_id, cs_task_state_name(state),
                 cs_outcome_str(r.releases[0]), cs_outcome_str(want));
    cr_assert_eq(r.committed + r.conflicts, 0, "releases are not counted as claims");
    cs_txn_result_free(&r);
    cs_txn_free(&t);
}

typedef struct bytes {
    uint8_t *p;
    size_t n;
} bytes;

static bytes dump(void)
{
    bytes b;
    ts_dump(T.s, &b.p, &b.n);
    return b;
}

static void assert_same_dump(bytes before, const char *what)
{
    bytes after = dump();
    cr_assert(after.n == before.n && memcmp(after.p, before.p, before.n) == 0,
              "%s: the store changed (%zu bytes before, %zu after)", what, before.n, after.n);
    free(after.p);
}

/* The cell's records and indexes only, without meta, the log and the
 * idempotency records (which a commit that changes nothing still writes). */
static bytes cell_dump(void)
{
    bytes b;
    ts_dump_cell(T.s, &b.p, &b.n);
    return b;
}

static void assert_same_cell(bytes before, const char *what)
{
    bytes after = cell_dump();
    cr_assert(after.n == before.n && memcmp(after.p, before.p, before.n) == 0,
              "%s: machines, jobs or tasks changed", what);
    free(after.p);
}

/* ---- fine-grained, incremental ------------------------------------------------ */

Test(commit, fine_incremental_two_schedulers)
{
    cs_id m1 = ts_machine(T.s, "m1", 4000, 8192, 1000, 0, 0, NULL, 0);
    cs_id m2 = ts_machine(T.s, "m2", 4000, 8192, 1000, 0, 0, NULL, 0);
    cs_id ja = ts_job(T.s, "a", CS_JOB_BATCH, 10, 3, 1000, 1024, 0, NULL, 0);
    cs_id jb = ts_job(T.s, "b", CS_JOB_BATCH, 10, 5, 1000, 1024, 100, NULL, 0);
    uint64_t v0 = version();

    /* Both schedulers decide on the cell as of v0. */
    cs_txn t1, t2;
    cs_txn_init(&t1, 1, 1, v0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    for (uint32_t i = 0; i < 3; i++)
        claim(&t1, cs_task_id(ja, i), m1, 1000, 1024, 0, 0);
    cs_txn_init(&t2, 2, 1, v0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    claim(&t2, cs_task_id(jb, 0), m1, 1000, 1024, 100, 0);  /* the last 1000 of m1's cpu */
    claim(&t2, cs_task_id(jb, 1), m1, 1000, 1024, 100, 0);  /* m1 is full now */
    claim(&t2, cs_task_id(jb, 2), m2, 1000, 1024, 100, 0);  /* fits */
    claim(&t2, cs_task_id(jb, 3), m2, 1000, 7200, 100, 0);  /* 1024 + 7200 > 8192 */
    claim(&t2, cs_task_id(jb, 4), m2, 1000, 1024, 950, 0);  /* 100 + 950 > 1000 */

    cs_txn_result r1, r2;
    cs_txn_result_init(&r1);
    cs_txn_result_init(&r2);
    commit_ok(&t1, &r1);
    CLAIMS(&r1, CS_COMMITTED, CS_COMMITTED, CS_COMMITTED);
    cr_assert_eq(r1.committed, 3);
    cr_assert_eq(r1.conflicts, 0);
    cr_assert_not(r1.replayed);
    cr_assert_eq(r1.version, v0 + 1);
    cr_assert_eq(version(), v0 + 1);

    commit_ok(&t2, &r2);
    CLAIMS(&r2, CS_COMMITTED, CS_CONFLICT_CPU, CS_COMMITTED, CS_CONFLICT_MEM, CS_CONFLICT_DISK);
    cr_assert_eq(r2.committed, 2);
    cr_assert_eq(r2.conflicts, 3);
    cr_assert_eq(r2.version, v0 + 2);
    cr_assert_eq(version(), v0 + 2);

    assert_alloc(m1, 4000, 4096, 100, 4);
    assert_alloc(m2, 1000, 1024, 100, 1);
    cr_assert_eq(placed_on(m1), 4);
    cr_assert_eq(placed_on(m2), 1);
    assert_state(cs_task_id(jb, 0), CS_TASK_ASSIGNED, m1);
    assert_state(cs_task_id(jb, 1), CS_TASK_PENDING, 0);
    assert_state(cs_task_id(jb, 2), CS_TASK_ASSIGNED, m2);
    assert_state(cs_task_id(jb, 3), CS_TASK_PENDING, 0);
    assert_state(cs_task_id(jb, 4), CS_TASK_PENDING, 0);
    cs_task b0 = task(cs_task_id(jb, 0));
    cr_assert_eq(b0.attempts, 1);
    cr_assert_eq(b0.res.disk, 100);
    cr_assert_eq(task(cs_task_id(jb, 1)).attempts, 0);
    invariants();

    /* A transaction whose every claim conflicts changes nothing: the
     * version stays. */
    cs_txn t3;
    cs_txn_init(&t3, 2, 2, v0 + 2, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    claim(&t3, cs_task_id(jb, 1), m1, 1000, 1024, 100, 0);
    cs_txn_result r3;
    cs_txn_result_init(&r3);
    commit_ok(&t3, &r3);
    CLAIMS(&r3, CS_CONFLICT_CPU);
    cr_assert_eq(r3.committed, 0);
    cr_assert_eq(r3.conflicts, 1);
    cr_assert_eq(r3.version, v0 + 2);
    cr_assert_eq(version(), v0 + 2);
    invariants();

    cs_txn_result_free(&r1);
    cs_txn_result_free(&r2);
    cs_txn_result_free(&r3);
    cs_txn_free(&t1);
    cs_txn_free(&t2);
    cs_txn_free(&t3);
}

Test(commit, claims_of_one_txn_see_each_other)
{
    cs_id m1 = ts_machine(T.s, "m1", 2500, 8192, 0, 0, 0, NULL, 0);
    cs_id ja = ts_job(T.s, "a", CS_JOB_BATCH, 10, 3, 1000, 1, 0, NULL, 0);
    cs_txn t;
    cs_txn_init(&t, 1, 1, version(), CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    for (uint32_t i = 0; i < 3; i++)
        claim(&t, cs_task_id(ja, i), m1, 1000, 1, 0, 0);
    cs_txn_result r;
    cs_txn_result_init(&r);
    commit_ok(&t, &r);
    CLAIMS(&r, CS_COMMITTED, CS_COMMITTED, CS_CONFLICT_CPU);
    assert_alloc(m1, 2000, 2, 0, 2);
    invariants();
    cs_txn_result_free(&r);
    cs_txn_free(&t);
}

/* ---- coarse-grained -------------------------------------------------------- */

Test(commit, coarse_machine_changed)
{
    cs_id m1 = ts_machine(T.s, "m1", 4000, 8192, 0, 0, 0, NULL, 0);
    cs_id m2 = ts_machine(T.s, "m2", 4000, 8192, 0, 0, 0, NULL, 0);
    cs_id ja = ts_job(T.s, "a", CS_JOB_BATCH, 10, 4, 1000, 1024, 0, NULL, 0);
    uint64_t seq1 = mach(m1).seq, seq2 = mach(m2).seq;

    /* Another scheduler changes m1 after our snapshot. */
    place(cs_task_id(ja, 0), m1, 1000, 1024, NULL, 0);
    cr_assert_eq(mach(m1).seq, version(), "every change to a machine changes its seq to "
                                          "the version of that change");
    cr_assert_neq(seq1, version());
    cr_assert_eq(mach(m2).seq, seq2);

    cs_txn t;
    cs_txn_init(&t, 2, 1, 0, CS_CONFLICT_COARSE, CS_COMMIT_INCREMENTAL);
    claim(&t, cs_task_id(ja, 1), m1, 1000, 1024, 0, seq1); /* fits, but m1 changed */
    claim(&t, cs_task_id(ja, 2), m2, 1000, 1024, 0, seq2); /* m2 untouched */
    cs_txn_result r;
    cs_txn_result_init(&r);
    uint64_t v = version();
    commit_ok(&t, &r);
    CLAIMS(&r, CS_CONFLICT_MACHINE_CHANGED, CS_COMMITTED);
    cr_assert_eq(r.committed, 1);
    cr_assert_eq(r.conflicts, 1);
    cr_assert_eq(r.version, v + 1);
    assert_state(cs_task_id(ja, 1), CS_TASK_PENDING, 0);
    assert_state(cs_task_id(ja, 2), CS_TASK_ASSIGNED, m2);
    assert_alloc(m1, 1000, 1024, 0, 1);
    assert_alloc(m2, 1000, 1024, 0, 1);

    /* Resynced, the same claim commits. */
    cs_txn t2;
    cs_txn_init(&t2, 2, 2, 0, CS_CONFLICT_COARSE, CS_COMMIT_INCREMENTAL);
    claim(&t2, cs_task_id(ja, 1), m1, 1000, 1024, 0, mach(m1).seq);
    cs_txn_result r2;
    cs_txn_result_init(&r2);
    commit_ok(&t2, &r2);
    CLAIMS(&r2, CS_COMMITTED);

    /* Coarse still refuses an overcommit on an unchanged machine. */
    cs_txn t3;
    cs_txn_init(&t3, 2, 3, 0, CS_CONFLICT_COARSE, CS_COMMIT_INCREMENTAL);
    claim(&t3, cs_task_id(ja, 3), m1, 3000, 1024, 0, mach(m1).seq);
    cs_txn_result r3;
    cs_txn_result_init(&r3);
    commit_ok(&t3, &r3);
    CLAIMS(&r3, CS_CONFLICT_CPU);
    invariants();

    cs_txn_result_free(&r);
    cs_txn_result_free(&r2);
    cs_txn_result_free(&r3);
    cs_txn_free(&t);
    cs_txn_free(&t2);
    cs_txn_free(&t3);
}

Test(commit, coarse_own_changes_do_not_count)
{
    cs_id m1 = ts_machine(T.s, "m1", 4000, 8192, 0, 0, 0, NULL, 0);
    cs_id ja = ts_job(T.s, "a", CS_JOB_BATCH, 10, 3, 1000, 1024, 0, NULL, 0);
    uint64_t seq = mach(m1).seq;
    cs_txn t;
    cs_txn_init(&t, 1, 1, version(), CS_CONFLICT_COARSE, CS_COMMIT_INCREMENTAL);
    for (uint32_t i = 0; i < 3; i++)
        claim(&t, cs_task_id(ja, i), m1, 1000, 1024, 0, seq);
    cs_txn_result r;
    cs_txn_result_init(&r);
    commit_ok(&t, &r);
    CLAIMS(&r, CS_COMMITTED, CS_COMMITTED, CS_COMMITTED);
    cr_assert_eq(r.committed, 3);
    assert_alloc(m1, 3000, 3072, 0, 3);
    cr_assert_eq(mach(m1).seq, r.version, "one transaction is one change of the machine");
    cr_assert_gt(r.version, seq);
    invariants();
    cs_txn_result_free(&r);
    cs_txn_free(&t);
}

/* ---- all-or-nothing ---------------------------------------------------------- */

Test(commit, gang_one_conflict_aborts_everything)
{
    cs_id m1 = ts_machine(T.s, "m1", 2000, 8192, 0, 0, 0, NULL, 0);
    cs_id m2 = ts_machine(T.s, "m2", 4000, 8192, 0, 0, 0, NULL, 0);
    cs_id ja = ts_job(T.s, "a", CS_JOB_BATCH, 10, 4, 1000, 1024, 0, NULL, 0);
    cs_id jx = ts_job(T.s, "x", CS_JOB_BATCH, 10, 1, 500, 512, 0, NULL, 0);
    place(cs_task_id(jx, 0), m2, 500, 512, NULL, 0);

    uint64_t v = version();
    bytes before = cell_dump();
    cs_txn t;
    cs_txn_init(&t, 1, 1, v, CS_CONFLICT_FINE, CS_COMMIT_GANG);
    cr_assert_eq(cs_txn_add_release(&t, cs_task_id(jx, 0), CS_TASK_FINISHED, 0), CS_OK);
    claim(&t, cs_task_id(ja, 0), m2, 1000, 1024, 0, 0);
    claim(&t, cs_task_id(ja, 1), m1, 1000, 1024, 0, 0);
    claim(&t, cs_task_id(ja, 2), m1, 1000, 1024, 0, 0);
    claim(&t, cs_task_id(ja, 3), m1, 1000, 1024, 0, 0); /* m1 holds only two */
    cs_txn_result r;
    cs_txn_result_init(&r);
    commit_ok(&t, &r);
    CLAIMS(&r, CS_ABORTED_GANG, CS_ABORTED_GANG, CS_ABORTED_GANG, CS_CONFLICT_CPU);
    cr_assert_eq(r.releases[0], CS_ABORTED_GANG);
    cr_assert_eq(r.committed, 0);
    cr_assert_eq(r.conflicts, 1, "gang aborts are not conflicts");
    cr_assert_eq(r.version, v);
    cr_assert_eq(version(), v);
    assert_same_cell(before, "gang with a conflict");
    assert_alloc(m1, 0, 0, 0, 0);
    assert_alloc(m2, 500, 512, 0, 1);
    assert_state(cs_task_id(jx, 0), CS_TASK_ASSIGNED, m2);
    for (uint32_t i = 0; i < 4; i++)
        assert_state(cs_task_id(ja, i), CS_TASK_PENDING, 0);
    invariants();

    /* Without the claim that does not fit, everything commits at once. */
    cs_txn t2;
    cs_txn_init(&t2, 1, 2, v, CS_CONFLICT_FINE, CS_COMMIT_GANG);
    cr_assert_eq(cs_txn_add_release(&t2, cs_task_id(jx, 0), CS_TASK_FINISHED, 0), CS_OK);
    claim(&t2, cs_task_id(ja, 0), m2, 1000, 1024, 0, 0);
    claim(&t2, cs_task_id(ja, 1), m1, 1000, 1024, 0, 0);
    claim(&t2, cs_task_id(ja, 2), m1, 1000, 1024, 0, 0);
    cs_txn_result r2;
    cs_txn_result_init(&r2);
    commit_ok(&t2, &r2);
    CLAIMS(&r2, CS_COMMITTED, CS_COMMITTED, CS_COMMITTED);
    cr_assert_eq(r2.releases[0], CS_COMMITTED);
    cr_assert_eq(r2.committed, 3);
    cr_assert_eq(r2.conflicts, 0);
    cr_assert_eq(r2.version, v + 1);
    assert_alloc(m1, 2000, 2048, 0, 2);
    assert_alloc(m2, 1000, 1024, 0, 1);
    assert_state(cs_task_id(jx, 0), CS_TASK_FINISHED, m2);
    invariants();

    free(before.p);
    cs_txn_result_free(&r);
    cs_txn_result_free(&r2);
    cs_txn_free(&t);
    cs_txn_free(&t2);
}

Test(commit, gang_release_conflict_aborts_claims)
{
    /* A conflicting release is enough to abort an all-or-nothing txn. */
    cs_id m1 = ts_machine(T.s, "m1", 2000, 8192, 0, 0, 0, NULL, 0);
    cs_id ja = ts_job(T.s, "a", CS_JOB_BATCH, 10, 2, 1000, 1024, 0, NULL, 0);
    uint64_t v = version();
    bytes before = cell_dump();
    cs_txn t;
    cs_txn_init(&t, 1, 1, v, CS_CONFLICT_FINE, CS_COMMIT_GANG);
    cr_assert_eq(cs_txn_add_release(&t, cs_task_id(ja, 1), CS_TASK_FINISHED, 0), CS_OK);
    claim(&t, cs_task_id(ja, 0), m1, 1000, 1024, 0, 0);
    cs_txn_result r;
    cs_txn_result_init(&r);
    commit_ok(&t, &r);
    cr_assert_eq(r.releases[0], CS_CONFLICT_TASK_NOT_PLACED);
    CLAIMS(&r, CS_ABORTED_GANG);
    cr_assert_eq(r.committed, 0);
    cr_assert_eq(r.conflicts, 0);
    cr_assert_eq(version(), v);
    assert_same_cell(before, "gang with a conflicting release");
    free(before.p);
    cs_txn_result_free(&r);
    cs_txn_free(&t);
}

Test(commit, gang_conflict_keeps_the_preemption_victim)
{
    cs_id m1 = ts_machine(T.s, "m1", 1000, 8192, 0, 0, 0, NULL, 0);
    cs_id m2 = ts_machine(T.s, "m2", 1000, 8192, 0, 0, 0, NULL, 0);
    cs_id lo = ts_job(T.s, "lo", CS_JOB_BATCH, 10, 1, 1000, 1, 0, NULL, 0);
    cs_id hi = ts_job(T.s, "hi", CS_JOB_SERVICE, 100, 2, 1000, 1, 0, NULL, 0);
    cs_id other = ts_job(T.s, "other", CS_JOB_SERVICE, 100, 1, 1000, 1, 0, NULL, 0);
    place(cs_task_id(lo, 0), m1, 1000, 1, NULL, 0);
    place(cs_task_id(other, 0), m2, 1000, 1, NULL, 0);
    uint64_t v = version();
    bytes before = cell_dump();
    cs_txn t;
    cs_txn_init(&t, 1, 1, v, CS_CONFLICT_FINE, CS_COMMIT_GANG);
    claim(&t, cs_task_id(hi, 0), m1, 1000, 1, 0, 0); /* fits once lo0 is evicted */
    claim(&t, cs_task_id(hi, 1), m2, 1000, 1, 0, 0); /* m2 is full */
    cr_assert_eq(cs_txn_add_preempt(&t, cs_task_id(lo, 0), cs_task_id(hi, 0)), CS_OK);
    cs_txn_result r;
    cs_txn_result_init(&r);
    commit_ok(&t, &r);
    CLAIMS(&r, CS_ABORTED_GANG, CS_CONFLICT_CPU);
    cr_assert_eq(r.preempts[0], CS_ABORTED_GANG);
    cr_assert_eq(version(), v);
    assert_same_cell(before, "gang with a preemption");
    assert_state(cs_task_id(lo, 0), CS_TASK_ASSIGNED, m1);
    free(before.p);
    cs_txn_result_free(&r);
    cs_txn_free(&t);
}

/* ---- task and machine state ------------------------------------------------- */

Test(commit, task_no_longer_pending)
{
    cs_id m1 = ts_machine(T.s, "m1", 4000, 8192, 0, 0, 0, NULL, 0);
    cs_id m2 = ts_machine(T.s, "m2", 4000, 8192, 0, 0, 0, NULL, 0);
    cs_id ja = ts_job(T.s, "a", CS_JOB_BATCH, 10, 2, 1000, 1024, 0, NULL, 0);
    uint64_t v0 = version();
    place(cs_task_id(ja, 0), m1, 1000, 1024, NULL, 0);

    /* A second scheduler, on the old snapshot, places the same task. */
    cs_txn t;
    cs_txn_init(&t, 2, 1, v0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    claim(&t, cs_task_id(ja, 0), m2, 1000, 1024, 0, 0);
    claim(&t, cs_task_id(ja, 1), m2, 1000, 1024, 0, 0);
    cs_txn_result r;
    cs_txn_result_init(&r);
    commit_ok(&t, &r);
    CLAIMS(&r, CS_CONFLICT_TASK_NOT_PENDING, CS_COMMITTED);
    cr_assert_eq(r.conflicts, 1);
    assert_state(cs_task_id(ja, 0), CS_TASK_ASSIGNED, m1);
    cr_assert_eq(task(cs_task_id(ja, 0)).attempts, 1);
    assert_alloc(m1, 1000, 1024, 0, 1);
    assert_alloc(m2, 1000, 1024, 0, 1);
    invariants();
    cs_txn_result_free(&r);
    cs_txn_free(&t);
}

Test(commit, machine_not_up)
{
    cs_id m1 = ts_machine(T.s, "m1", 4000, 8192, 0, 0, 0, NULL, 0);
    cs_id ja = ts_job(T.s, "a", CS_JOB_BATCH, 10, 1, 1000, 1024, 0, NULL, 0);
    uint8_t states[] = {CS_MACHINE_DRAINING, CS_MACHINE_DOWN};
    for (int i = 0; i < 2; i++) {
        cs_error err = {0};
        cr_assert_eq(cs_op_machine_state(T.s, m1, states[i], NULL, &err), CS_OK, "%s", err.msg);
        uint64_t v = version();
        cs_txn t;
        cs_txn_init(&t, 1, (uint64_t)i + 1, v, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
        claim(&t, cs_task_id(ja, 0), m1, 1000, 1024, 0, 0);
        cs_txn_result r;
        cs_txn_result_init(&r);
        commit_ok(&t, &r);
        CLAIMS(&r, CS_CONFLICT_MACHINE_NOT_UP);
        cr_assert_eq(version(), v);
        assert_alloc(m1, 0, 0, 0, 0);
        cs_txn_result_free(&r);
        cs_txn_free(&t);
    }
    cs_error err = {0};
    cr_assert_eq(cs_op_machine_state(T.s, m1, CS_MACHINE_UP, NULL, &err), CS_OK, "%s", err.msg);
    place(cs_task_id(ja, 0), m1, 1000, 1024, NULL, 0);
    invariants();
}

/* ---- ports ---------------------------------------------------------------------- */

Test(commit, fixed_and_dynamic_port_conflicts)
{
    cs_id m1 = ts_machine(T.s, "m1", 8000, 8192, 0, 31000, 31009, NULL, 0);
    cs_id m2 = ts_machine(T.s, "m2", 8000, 8192, 0, 31000, 31009, NULL, 0);
    const uint16_t fixed[] = {8080, 0};
    cs_id jf = ts_job(T.s, "f", CS_JOB_SERVICE, 50, 2, 100, 1, 0, fixed, 2);
    cs_id jd = ts_job(T.s, "d", CS_JOB_BATCH, 50, 3, 100, 1, 0, NULL, 1);
    const uint16_t f0[] = {8080, 31000};
    place(cs_task_id(jf, 0), m1, 100, 1, f0, 2);
    cs_task t0 = task(cs_task_id(jf, 0));
    cr_assert_eq(t0.nports, 2);
    cr_assert_eq(t0.ports[0], 8080);
    cr_assert_eq(t0.ports[1], 31000);
    cs_machine x = mach(m1);
    cr_assert_eq(x.nports, 2);
    cr_assert_eq(x.ports[0], 8080);
    cr_assert_eq(x.ports[1], 31000);

    cs_txn t;
    cs_txn_init(&t, 1, 1, version(), CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    const uint16_t f1[] = {8080, 31001};   /* the fixed port is taken on m1 */
    const uint16_t d0[] = {31000};         /* taken by f0 */
    const uint16_t d1[] = {31005};
    const uint16_t d2[] = {31005};         /* taken by d1 in this very txn */
    claim_ports(&t, cs_task_id(jf, 1), m1, 100, 1, f1, 2);
    claim_ports(&t, cs_task_id(jd, 0), m1, 100, 1, d0, 1);
    claim_ports(&t, cs_task_id(jd, 1), m1, 100, 1, d1, 1);
    claim_ports(&t, cs_task_id(jd, 2), m1, 100, 1, d2, 1);
    cs_txn_result r;
    cs_txn_result_init(&r);
    commit_ok(&t, &r);
    CLAIMS(&r, CS_CONFLICT_PORT, CS_CONFLICT_PORT, CS_COMMITTED, CS_CONFLICT_PORT);
    cr_assert_eq(r.conflicts, 3);
    x = mach(m1);
    cr_assert_eq(x.nports, 3);
    cr_assert_eq(x.ports[2], 31005);

    /* The same fixed port is free on another machine. */
    place(cs_task_id(jf, 1), m2, 100, 1, f1, 2);
    invariants();
    cs_txn_result_free(&r);
    cs_txn_free(&t);
}

/* The last log entry: its kind and a copy of its bytes. */
typedef struct last_entry {
    size_t n;
    uint8_t kind;
    msgpack_sbuffer cmd;
} last_entry;

static int keep_last(void *ctx, uint64_t version, uint32_t n, uint8_t kind, const void *cmd,
                     size_t len)
{
    last_entry *e = ctx;
    e->n++;
    e->kind = kind;
    e->cmd.size = 0;
    msgpack_sbuffer_write(&e->cmd, cmd, len);
    return 0;
}

static void read_last(last_entry *e)
{
    e->n = 0;
    cs_snap *snap;
    cs_error err = {0};
    cr_assert_eq(cs_snap_open(T.s, &snap, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_snap_each_log(snap, 0, keep_last, e, &err), CS_OK, "%s", err.msg);
    cs_snap_close(snap);
}

/* Commit `t`, expecting refusal `code` with `needle` in the message: the
 * cell and its version unchanged, and the refused transaction logged as it
 * is (command.h), so that replay refuses it again. */
static void expect_error(const cs_txn *t, int code, const char *needle)
{
    bytes before = cell_dump();
    uint64_t v = ts_version(T.s);
    last_entry e;
    msgpack_sbuffer_init(&e.cmd);
    read_last(&e);
    size_t n0 = e.n;
    cs_txn_result r;
    cs_txn_result_init(&r);
    cs_error err = {0};
    int rc = cs_commit(T.s, t, &r, &err);
    cr_assert_eq(rc, code, "want %s, got rc %d: %s", cs_strerror(code), rc, err.msg);
    cr_assert_eq(err.code, code);
    cr_assert(strstr(err.msg, needle) != NULL, "want \"%s\" in \"%s\"", needle, err.msg);
    assert_same_cell(before, needle);
    cr_assert_eq(ts_version(T.s), v);
    read_last(&e);
    cr_assert_eq(e.n, n0 + 1, "%s: the refusal was not logged", needle);
    cr_assert_eq(e.kind, CS_CMD_TXN);
    msgpack_sbuffer enc;
    msgpack_sbuffer_init(&enc);
    cr_assert_eq(cs_txn_encode(t, &enc), CS_OK);
    cr_assert(enc.size == e.cmd.size && memcmp(enc.data, e.cmd.data, enc.size) == 0,
              "%s: the log holds another transaction", needle);
    msgpack_sbuffer_destroy(&enc);
    msgpack_sbuffer_destroy(&e.cmd);
    free(before.p);
    cs_txn_result_free(&r);
}

/* A claim whose ports no longer match its job's spec or the machine's range
 * comes from a stale view (the job was updated, the machine re-registered
 * with another range): it conflicts and is retried; it is not an error. */
Test(commit, port_spec_mismatches_conflict)
{
    cs_id m1 = ts_machine(T.s, "m1", 8000, 8192, 0, 31000, 31009, NULL, 0);
    cs_id m0 = ts_machine(T.s, "noports", 8000, 8192, 0, 0, 0, NULL, 0);
    const uint16_t fixed[] = {8080, 0};
    cs_id jf = ts_job(T.s, "f", CS_JOB_SERVICE, 50, 1, 100, 1, 0, fixed, 2);
    cs_id jd = ts_job(T.s, "d", CS_JOB_BATCH, 50, 2, 100, 1, 0, NULL, 1);
    cs_id jn = ts_job(T.s, "n", CS_JOB_BATCH, 50, 1, 100, 1, 0, NULL, 0);
    const uint16_t below[] = {30999}, above[] = {31010}, inside[] = {31009}, two[] = {31001, 31002};
    const uint16_t wrong_fixed[] = {8081, 31000};
    struct {
        cs_id task, machine;
        const uint16_t *ports;
        uint32_t nports;
        uint8_t outcome;
    } cases[] = {
        {cs_task_id(jd, 0), m1, below, 1, CS_CONFLICT_PORT},
        {cs_task_id(jd, 0), m1, above, 1, CS_CONFLICT_PORT},
        {cs_task_id(jd, 0), m0, inside, 1, CS_CONFLICT_PORT},
        {cs_task_id(jd, 0), m1, two, 2, CS_CONFLICT_SPEC_CHANGED},
        {cs_task_id(jd, 0), m1, NULL, 0, CS_CONFLICT_SPEC_CHANGED},
        {cs_task_id(jn, 0), m1, inside, 1, CS_CONFLICT_SPEC_CHANGED},
        {cs_task_id(jf, 0), m1, wrong_fixed, 2, CS_CONFLICT_SPEC_CHANGED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cs_txn t;
        cs_txn_init(&t, 1, i + 1, version(), CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
        claim_ports(&t, cases[i].task, cases[i].machine, 100, 1, cases[i].ports, cases[i].nports);
        cs_txn_result r;
        cs_txn_result_init(&r);
        commit_ok(&t, &r);
        cr_assert_eq(r.claims[0], cases[i].outcome, "case %zu: %s", i,
                     cs_outcome_str(r.claims[0]));
        cr_assert_eq(r.committed, 0);
        cs_txn_result_free(&r);
        cs_txn_free(&t);
    }
    assert_alloc(m1, 0, 0, 0, 0);
    assert_alloc(m0, 0, 0, 0, 0);
}

/* ---- releases -------------------------------------------------------------------- */

Test(commit, release_finished_frees_resources_and_ports)
{
    cs_id m1 = ts_machine(T.s, "m1", 4000, 8192, 100, 31000, 31009, NULL, 0);
    cs_id ja = ts_job(T.s, "a", CS_JOB_BATCH, 10, 2, 1000, 1024, 10, NULL, 1);
    const uint16_t p0[] = {31000}, p1[] = {31001};
    place_d(cs_task_id(ja, 0), m1, 1000, 1024, 10, p0, 1);
    place_d(cs_task_id(ja, 1), m1, 1500, 1024, 30, p1, 1);
    assert_alloc(m1, 2500, 2048, 40, 2);

    uint64_t v = version();
    release(cs_task_id(ja, 0), CS_TASK_FINISHED, 0, CS_COMMITTED);
    cr_assert_eq(version(), v + 1);
    cs_task t0 = task(cs_task_id(ja, 0));
    cr_assert_eq(t0.state, CS_TASK_FINISHED);
    cr_assert_eq(t0.nports, 0, "an ended task holds no ports");
    assert_alloc(m1, 1500, 1024, 30, 1);
    cs_machine x = mach(m1);
    cr_assert_eq(x.nports, 1);
    cr_assert_eq(x.ports[0], 31001);
    cr_assert_eq(placed_on(m1), 1);

    /* Killing the last one (with the resources it actually claimed, not the
     * job's) empties the machine. */
    release(cs_task_id(ja, 1), CS_TASK_KILLED, -9, CS_COMMITTED);
    cs_task t1 = task(cs_task_id(ja, 1));
    cr_assert_eq(t1.state, CS_TASK_KILLED);
    cr_assert_eq(t1.exit_code, -9);
    assert_alloc(m1, 0, 0, 0, 0);
    cr_assert_eq(mach(m1).nports, 0);
    cr_assert_eq(placed_on(m1), 0);
    invariants();

    /* Its port is free again. */
    cs_id jb = ts_job(T.s, "b", CS_JOB_BATCH, 10, 1, 1000, 1024, 10, NULL, 1);
    place_d(cs_task_id(jb, 0), m1, 1000, 1024, 10, p0, 1);
    invariants();
}

Test(commit, release_failed_then_retry)
{
    cs_id m1 = ts_machine(T.s, "m1", 4000, 8192, 0, 31000, 31009, NULL, 0);
    cs_id ja = ts_job(T.s, "a", CS_JOB_BATCH, 10, 1, 1000, 1024, 0, NULL, 1);
    const uint16_t p0[] = {31000};
    cs_id a0 = cs_task_id(ja, 0);
    place(a0, m1, 1000, 1024, p0, 1);

    release(a0, CS_TASK_FAILED, 3, CS_COMMITTED);
    cs_task t = task(a0);
    cr_assert_eq(t.state, CS_TASK_FAILED);
    cr_assert_eq(t.exit_code, 3);
    assert_alloc(m1, 0, 0, 0, 0);
    cr_assert_eq(placed_on(m1), 0);

    release(a0, CS_TASK_PENDING, 0, CS_COMMITTED);
    t = task(a0);
    cr_assert_eq(t.state, CS_TASK_PENDING);
    cr_assert_eq(t.last_end, CS_TASK_FAILED);
    cr_assert_eq(t.machine, 0);
    cr_assert_eq(t.exit_code, 0);
    cr_assert_eq(t.attempts, 1);
    assert_alloc(m1, 0, 0, 0, 0);

    /* Another attempt places it again. */
    place(a0, m1, 1000, 1024, p0, 1);
    cr_assert_eq(task(a0).attempts, 2);
    assert_state(a0, CS_TASK_ASSIGNED, m1);
    invariants();
}

Test(commit, finished_task_runs_again_but_killed_stays_ended)
{
    cs_id m1 = ts_machine(T.s, "m1", 4000, 8192, 0, 0, 0, NULL, 0);
    cs_id js = ts_job(T.s, "svc", CS_JOB_SERVICE, 10, 2, 1000, 1024, 0, NULL, 0);
    cs_id s0 = cs_task_id(js, 0), s1 = cs_task_id(js, 1);
    place(s0, m1, 1000, 1024, NULL, 0);
    place(s1, m1, 1000, 1024, NULL, 0);
    /* A service that exited 0 is run again by its scheduler. */
    release(s0, CS_TASK_FINISHED, 0, CS_COMMITTED);
    release(s0, CS_TASK_PENDING, 0, CS_COMMITTED);
    cs_task t = task(s0);
    cr_assert_eq(t.state, CS_TASK_PENDING);
    cr_assert_eq(t.last_end, CS_TASK_FINISHED);
    place(s0, m1, 1000, 1024, NULL, 0);
    cr_assert_eq(task(s0).attempts, 2);
    /* A placement records the spec it runs (a rolling update compares it). */
    cs_snap *snap;
    cs_error err = {0};
    cs_job jr;
    cr_assert_eq(cs_snap_open(T.s, &snap, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_snap_job(snap, js, &A, &jr, &err), CS_OK, "%s", err.msg);
    cs_snap_close(snap);
    cr_assert_neq(jr.spec_hash, 0);
    cr_assert_eq(task(s0).spec, jr.spec_hash);
    cr_assert_eq(task(s1).spec, jr.spec_hash);
    /* Killed is for good. */
    uint64_t v = version();
    release(s1, CS_TASK_KILLED, 0, CS_COMMITTED);
    release(s1, CS_TASK_PENDING, 0, CS_CONFLICT_TASK_NOT_PLACED);
    cr_assert_eq(version(), v + 1);
    assert_state(s1, CS_TASK_KILLED, m1);
    invariants();
}

Test(commit, release_of_pending_task)
{
    ts_machine(T.s, "m1", 4000, 8192, 0, 0, 0, NULL, 0);
    cs_id ja = ts_job(T.s, "a", CS_JOB_BATCH, 10, 2, 1000, 1024, 0, NULL, 0);
    uint64_t v = version();
    release(cs_task_id(ja, 0), CS_TASK_FINISHED, 0, CS_CONFLICT_TASK_NOT_PLACED);
    release(cs_task_id(ja, 0), CS_TASK_FAILED, 1, CS_CONFLICT_TASK_NOT_PLACED);
    release(cs_task_id(ja, 0), CS_TASK_PENDING, 0, CS_CONFLICT_TASK_NOT_PLACED);
    cr_assert_eq(version(), v);
    assert_state(cs_task_id(ja, 0), CS_TASK_PENDING, 0);

    release(cs_task_id(ja, 1), CS_TASK_KILLED, 0, CS_COMMITTED);
    cr_assert_eq(version(), v + 1);
    assert_state(cs_task_id(ja, 1), CS_TASK_KILLED, 0);
    /* A killed task is ended for good: it cannot be killed or placed again. */
    release(cs_task_id(ja, 1), CS_TASK_KILLED, 0, CS_CONFLICT_TASK_NOT_PLACED);
    release(cs_task_id(ja, 1), CS_TASK_PENDING, 0, CS_CONFLICT_TASK_NOT_PLACED);
    invariants();
}

Test(commit, release_to_a_non_final_state_is_invalid)
{
    cs_id m1 = ts_machine(T.s, "m1", 4000, 8192, 0, 0, 0, NULL, 0);
    cs_id ja = ts_job(T.s, "a", CS_JOB_BATCH, 10, 2, 1000, 1024, 0, NULL, 0);
    place(cs_task_id(ja, 0), m1, 1000, 1024, NULL, 0);
    uint8_t bad[] = {CS_TASK_RUNNING, CS_TASK_ASSIGNED, CS_TASK_PREEMPTED, CS_TASK_STATE_COUNT};
    for (size_t i = 0; i < sizeof bad; i++) {
        cs_txn t;
        cs_txn_init(&t, 1, i + 1, version(), CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
        claim(&t, cs_task_id(ja, 1), m1, 1000, 1024, 0, 0);
        cr_assert_eq(cs_txn_add_release(&t, cs_task_id(ja, 0), bad[i], 0), CS_OK);
        expect_error(&t, CS_EINVAL, "cannot release to state");
        cs_txn_free(&t);
    }
    assert_state(cs_task_id(ja, 0), CS_TASK_ASSIGNED, m1);
    assert_state(cs_task_id(ja, 1), CS_TASK_PENDING, 0);
}

Test(commit, lost_task_retries)
{
    cs_id m1 = ts_machine(T.s, "m1", 4000, 8192, 0, 31000, 31009, NULL, 0);
    cs_id ja = ts_job(T.s, "a", CS_JOB_BATCH, 10, 1, 1000, 1024, 0, NULL, 1);
    cs_id a0 = cs_task_id(ja, 0);
    place(a0, m1, 1000, 1024, (const uint16_t[]){31004}, 1);
    cs_error err = {0};
    cr_assert_eq(cs_op_machine_state(T.s, m1, CS_MACHINE_DOWN, NULL, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(task(a0).state, CS_TASK_LOST);
    assert_alloc(m1, 0, 0, 0, 0);
    /* A lost task cannot be released again as if it ran ... */
    release(a0, CS_TASK_FINISHED, 0, CS_CONFLICT_TASK_NOT_PLACED);
    /* ... but it can go back to the queue. */
    release(a0, CS_TASK_PENDING, 0, CS_COMMITTED);
    cs_task t = task(a0);
    cr_assert_eq(t.state, CS_TASK_PENDING);
    cr_assert_eq(t.last_end, CS_TASK_LOST);
    cr_assert_eq(t.machine, 0);
    cr_assert_eq(cs_op_machine_state(T.s, m1, CS_MACHINE_UP, NULL, &err), CS_OK, "%s", err.msg);
    place(a0, m1, 1000, 1024, (const uint16_t[]){31004}, 1);
    invariants();
}

Test(commit, release_then_claim_in_one_txn)
{
    /* Releases come first: a claim may use what a release of the same
     * transaction frees, its port included. */
    cs_id m1 = ts_machine(T.s, "m1", 1000, 1024, 0, 31000, 31009, NULL, 0);
    cs_id ja = ts_job(T.s, "a", CS_JOB_BATCH, 10, 1, 1000, 1024, 0, NULL, 1);
    cs_id jb = ts_job(T.s, "b", CS_JOB_BATCH, 10, 1, 1000, 1024, 0, NULL, 1);
    const uint16_t p[] = {31000};
    place(cs_task_id(ja, 0), m1, 1000, 1024, p, 1);
    cs_txn t;
    cs_txn_init(&t, 1, 1, version(), CS_CONFLICT_COARSE, CS_COMMIT_GANG);
    /* The claim comes first in the txn, the release is still applied first. */
    cs_res r = {1000, 1024, 0};
    cr_assert_eq(cs_txn_add_claim(&t, cs_task_id(jb, 0), m1, &r, p, 1, mach(m1).seq), CS_OK);
    cr_assert_eq(cs_txn_add_release(&t, cs_task_id(ja, 0), CS_TASK_FINISHED, 0), CS_OK);
    cs_txn_result res;
    cs_txn_result_init(&res);
    commit_ok(&t, &res);
    CLAIMS(&res, CS_COMMITTED);
    cr_assert_eq(res.releases[0], CS_COMMITTED);
    assert_state(cs_task_id(jb, 0), CS_TASK_ASSIGNED, m1);
    assert_alloc(m1, 1000, 1024, 0, 1);
    cr_assert_eq(placed_on(m1), 1);
    invariants();
    cs_txn_result_free(&res);
    cs_txn_free(&t);
}

/* ---- restart in place (rolling updates) ------------------------------------------ */

/* The job's spec hash now, through a snapshot. */
static uint64_t spec_hash_of(cs_id job)
{
    cs_snap *snap;
    cs_error err = {0};
    cs_job j;
    cr_assert_eq(cs_snap_open(T.s, &snap, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_snap_job(snap, job, &A, &j, &err), CS_OK, "%s", err.msg);
    cs_snap_close(snap);
    return j.spec_hash;
}

/* A new version of service job `job` ("svc", 2 tasks, 1000m / 1024 MiB,
 * one port `port`): its command changes, so its placed tasks become old. */
static void new_version(cs_id job, uint16_t port, const char *cmd)
{
    cs_job spec = {0};
    spec.name = "svc";
    spec.kind = CS_JOB_SERVICE;
    spec.priority = 10;
    spec.count = 2;
    spec.res = (cs_res){1000, 1024, 0};
    spec.ports = &port;
    spec.nports = 1;
    spec.cmd = cmd;
    cs_error err = {0};
    cr_assert_eq(cs_op_job_update(T.s, job, &spec, NULL, &err), CS_OK, "%s", err.msg);
}

Test(commit, restart_in_place_frees_resources_and_ports)
{
    cs_id m1 = ts_machine(T.s, "m1", 4000, 8192, 0, 31000, 31009, NULL, 0);
    cs_id js = ts_job(T.s, "svc", CS_JOB_SERVICE, 10, 2, 1000, 1024, 0, NULL, 1);
    cs_id s0 = cs_task_id(js, 0);
    const uint16_t p0[] = {31000};
    place(s0, m1, 1000, 1024, p0, 1);
    cs_error err = {0};
    cs_task_report rep = {s0, 1, CS_TASK_RUNNING, 0, NULL, CS_TASK_HEALTH_HEALTHY};
    cr_assert_eq(cs_op_task_report(T.s, &rep, NULL, &err), CS_OK, "%s", err.msg);
    uint64_t seq = mach(m1).seq;

    /* A placed task released to pending: its placement ends as if killed,
     * and it waits for another. */
    release(s0, CS_TASK_PENDING, 0, CS_COMMITTED);
    cs_task t = task(s0);
    cr_assert_eq(t.state, CS_TASK_PENDING);
    cr_assert_eq(t.last_end, CS_TASK_KILLED);
    cr_assert_eq(t.machine, 0);
    cr_assert_eq(t.nports, 0, "a pending task holds no port");
    cr_assert_eq(t.health, CS_TASK_HEALTH_UNKNOWN, "a pending task has no health");
    cr_assert_eq(t.attempts, 1, "attempts count placements; the next claim makes it 2");
    assert_alloc(m1, 0, 0, 0, 0);
    cr_assert_eq(placed_on(m1), 0);
    cr_assert_eq(mach(m1).nports, 0);
    cr_assert_neq(mach(m1).seq, seq, "the machine changed: an agent's poll must wake");
    invariants();

    /* Its port is free for any task, and the task is placed again. */
    place(cs_task_id(js, 1), m1, 1000, 1024, p0, 1);
    place(s0, m1, 1000, 1024, (const uint16_t[]){31001}, 1);
    cr_assert_eq(task(s0).attempts, 2);
    assert_alloc(m1, 2000, 2048, 0, 2);
    invariants();
}

/* Service job "svc" of two tasks on fixed port 8080, task i placed on
 * machine i, each machine with room for exactly one. */
typedef struct full_pair {
    cs_id m[2], job, task[2];
} full_pair;

static const uint16_t port8080[] = {8080};

static full_pair full_pair_setup(void)
{
    full_pair p;
    p.m[0] = ts_machine(T.s, "m1", 1000, 1024, 0, 0, 0, NULL, 0);
    p.m[1] = ts_machine(T.s, "m2", 1000, 1024, 0, 0, 0, NULL, 0);
    p.job = ts_job(T.s, "svc", CS_JOB_SERVICE, 10, 2, 1000, 1024, 0, port8080, 1);
    for (uint32_t i = 0; i < 2; i++) {
        p.task[i] = cs_task_id(p.job, i);
        place(p.task[i], p.m[i], 1000, 1024, port8080, 1);
    }
    return p;
}

Test(commit, restart_in_place_and_claim_in_one_txn)
{
    /* m1 has room for exactly one task, on the job's fixed port: only the
     * release of the same transaction makes the claim fit. */
    full_pair p = full_pair_setup();
    cs_id m1 = p.m[0], m2 = p.m[1], js = p.job, s0 = p.task[0], s1 = p.task[1];
    const uint16_t *port = port8080;
    uint64_t old = spec_hash_of(js);
    new_version(js, 8080, "serve --v2");
    uint64_t now = spec_hash_of(js);
    cr_assert_neq(now, old);
    cr_assert_eq(task(s0).spec, old, "a placed task keeps the version it runs");
    uint64_t seq = mach(m1).seq;

    for (int mode = 0; mode < 2; mode++) {
        /* Coarse too: the machine's own change within the transaction does
         * not count against the claim. */
        cs_txn t;
        cs_txn_init(&t, 1, 500 + (uint64_t)mode, version(),
                    mode ? CS_CONFLICT_COARSE : CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
        cs_id id = mode ? s1 : s0, m = mode ? m2 : m1;
        cs_res r = {1000, 1024, 0};
        /* The claim comes first in the transaction; the release is judged first. */
        cr_assert_eq(cs_txn_add_claim(&t, id, m, &r, port, 1, mach(m).seq), CS_OK);
        cr_assert_eq(cs_txn_add_release(&t, id, CS_TASK_PENDING, 0), CS_OK);
        cs_txn_result check, res;
        cs_txn_result_init(&check);
        cs_txn_result_init(&res);
        cs_snap *snap;
        cs_error err = {0};
        cr_assert_eq(cs_snap_open(T.s, &snap, &err), CS_OK, "%s", err.msg);
        cr_assert_eq(cs_commit_check(snap, &t, &check, &err), CS_OK, "%s", err.msg);
        cs_snap_close(snap);
        commit_ok(&t, &res);
        CLAIMS(&res, CS_COMMITTED);
        cr_assert_eq(res.releases[0], CS_COMMITTED);
        cr_assert_eq(check.claims[0], res.claims[0], "the dry run disagrees");
        cs_task k = task(id);
        cr_assert_eq(k.state, CS_TASK_ASSIGNED);
        cr_assert_eq(k.machine, m);
        cr_assert_eq(k.attempts, 2, "a new placement: the agent tells it by its attempt");
        cr_assert_eq(k.spec, now, "the new placement runs the new version");
        cr_assert_eq(k.last_end, CS_TASK_KILLED);
        cr_assert_eq(k.nports, 1);
        cr_assert_eq(k.ports[0], 8080);
        assert_alloc(m, 1000, 1024, 0, 1);
        cr_assert_eq(placed_on(m), 1);
        invariants();
        cs_txn_result_free(&check);
        cs_txn_result_free(&res);
        cs_txn_free(&t);
    }
    /* The same machine, the same holding, a new attempt: the machine
     * changed, so that the agent's long poll wakes and sees it. */
    cr_assert_neq(mach(m1).seq, seq, "a restart on the same machine left it unchanged");
}

/* Two restarts that swap machines on a fixed port: each claim takes what
 * the other's release frees, whatever order the store writes them in. */
Test(commit, restarts_that_swap_machines)
{
    full_pair p = full_pair_setup();
    cs_id m1 = p.m[0], m2 = p.m[1], s0 = p.task[0], s1 = p.task[1];
    const uint16_t *port = port8080;
    for (int round = 0; round < 2; round++) {
        cs_txn t;
        cs_txn_init(&t, 1, 700 + (uint64_t)round, version(), CS_CONFLICT_FINE, CS_COMMIT_GANG);
        cs_res r = {1000, 1024, 0};
        /* Round 1 lists the tasks the other way round. */
        cs_id a = round ? s1 : s0, b = round ? s0 : s1;
        cr_assert_eq(cs_txn_add_release(&t, a, CS_TASK_PENDING, 0), CS_OK);
        cr_assert_eq(cs_txn_add_release(&t, b, CS_TASK_PENDING, 0), CS_OK);
        cr_assert_eq(cs_txn_add_claim(&t, a, task(b).machine, &r, port, 1, 0), CS_OK);
        cr_assert_eq(cs_txn_add_claim(&t, b, task(a).machine, &r, port, 1, 0), CS_OK);
        cs_txn_result res;
        cs_txn_result_init(&res);
        commit_ok(&t, &res);
        CLAIMS(&res, CS_COMMITTED, CS_COMMITTED);
        invariants();
        cs_txn_result_free(&res);
        cs_txn_free(&t);
    }
    assert_state(s0, CS_TASK_ASSIGNED, m1);
    assert_state(s1, CS_TASK_ASSIGNED, m2);
    cr_assert_eq(task(s0).attempts, 3);
    assert_alloc(m1, 1000, 1024, 0, 1);
    assert_alloc(m2, 1000, 1024, 0, 1);
}

Test(commit, restart_in_place_elsewhere_and_when_the_claim_conflicts)
{
    cs_id m1 = ts_machine(T.s, "m1", 1000, 1024, 0, 0, 0, NULL, 0);
    cs_id m2 = ts_machine(T.s, "m2", 1000, 1024, 0, 0, 0, NULL, 0);
    cs_id js = ts_job(T.s, "svc", CS_JOB_SERVICE, 10, 2, 1000, 1024, 0, NULL, 0);
    cs_id jb = ts_job(T.s, "other", CS_JOB_BATCH, 10, 1, 1000, 1024, 0, NULL, 0);
    cs_id s0 = cs_task_id(js, 0), s1 = cs_task_id(js, 1);
    place(s0, m1, 1000, 1024, NULL, 0);

    /* Moved: m1 is free, m2 holds it. */
    cs_txn t;
    cs_txn_init(&t, 1, 600, version(), CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    cr_assert_eq(cs_txn_add_release(&t, s0, CS_TASK_PENDING, 0), CS_OK);
    claim(&t, s0, m2, 1000, 1024, 0, 0);
    cs_txn_result res;
    cs_txn_result_init(&res);
    commit_ok(&t, &res);
    CLAIMS(&res, CS_COMMITTED);
    assert_alloc(m1, 0, 0, 0, 0);
    assert_alloc(m2, 1000, 1024, 0, 1);
    assert_state(s0, CS_TASK_ASSIGNED, m2);
    invariants();
    cs_txn_result_free(&res);
    cs_txn_free(&t);

    /* Incremental: a claim that does not fit leaves the task pending, its
     * old placement ended all the same. m1 is taken by another job first. */
    place(cs_task_id(jb, 0), m1, 1000, 1024, NULL, 0);
    cs_txn_init(&t, 1, 601, version(), CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    cr_assert_eq(cs_txn_add_release(&t, s0, CS_TASK_PENDING, 0), CS_OK);
    claim(&t, s0, m1, 1000, 1024, 0, 0);
    cs_txn_result_init(&res);
    commit_ok(&t, &res);
    CLAIMS(&res, CS_CONFLICT_CPU);
    cr_assert_eq(res.releases[0], CS_COMMITTED);
    assert_state(s0, CS_TASK_PENDING, 0);
    assert_alloc(m2, 0, 0, 0, 0);
    invariants();
    cs_txn_result_free(&res);
    cs_txn_free(&t);

    /* All-or-nothing: s1 restarts in place beside a claim that conflicts:
     * nothing happens, s1 keeps running where it was. */
    place(s1, m2, 1000, 1024, NULL, 0);
    bytes before = cell_dump();
    cs_txn_init(&t, 1, 602, version(), CS_CONFLICT_FINE, CS_COMMIT_GANG);
    cr_assert_eq(cs_txn_add_release(&t, s1, CS_TASK_PENDING, 0), CS_OK);
    claim(&t, s1, m2, 1000, 1024, 0, 0);
    claim(&t, s0, m1, 1000, 1024, 0, 0); /* m1 is full */
    cs_txn_result_init(&res);
    commit_ok(&t, &res);
    CLAIMS(&res, CS_ABORTED_GANG, CS_CONFLICT_CPU);
    cr_assert_eq(res.releases[0], CS_ABORTED_GANG);
    assert_same_cell(before, "an aborted restart");
    free(before.p);
    assert_state(s1, CS_TASK_ASSIGNED, m2);
    cr_assert_eq(task(s1).attempts, 1);
    invariants();
    cs_txn_result_free(&res);
    cs_txn_free(&t);
}

Test(commit, killed_job_tasks_are_not_pending)
{
    cs_id m1 = ts_machine(T.s, "m1", 4000, 8192, 0, 0, 0, NULL, 0);
    cs_id ja = ts_job(T.s, "a", CS_JOB_BATCH, 10, 2, 1000, 1024, 0, NULL, 0);
    uint64_t v0 = version();
    cs_error err = {0};
    cr_assert_eq(cs_op_job_kill(T.s, ja, 1000, NULL, &err), CS_OK, "%s", err.msg);
    cs_txn t;
    cs_txn_init(&t, 1, 1, v0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    claim(&t, cs_task_id(ja, 0), m1, 1000, 1024, 0, 0);
    cs_txn_result r;
    cs_txn_result_init(&r);
    commit_ok(&t, &r);
    CLAIMS(&r, CS_CONFLICT_TASK_NOT_PENDING);
    assert_alloc(m1, 0, 0, 0, 0);
    cs_txn_result_free(&r);
    cs_txn_free(&t);
}

/* ---- preemption ------------------------------------------------------------------ */

/* m1 and m2 with 2000 millicores each; job lo (priority 10) has lo0 and lo1
 * on m1 (full) and lo2 on m2, each with one dynamic port. */
typedef struct pre {
    cs_id m1, m2, lo;
} pre;

static pre preempt_setup(void)
{
    pre p;
    p.m1 = ts_machine(T.s, "m1", 2000, 4096, 0, 31000, 31009, NULL, 0);
    p.m2 = ts_machine(T.s, "m2", 2000, 4096, 0, 31000, 31009, NULL, 0);
    p.lo = ts_job(T.s, "lo", CS_JOB_BATCH, 10, 4, 1000, 1024, 0, NULL, 1);
    const uint16_t a[] = {31000}, b[] = {31001};
    place(cs_task_id(p.lo, 0), p.m1, 1000, 1024, a, 1);
    place(cs_task_id(p.lo, 1), p.m1, 1000, 1024, b, 1);
    place(cs_task_id(p.lo, 2), p.m2, 1000, 1024, a, 1);
    return p;
}

/* One claim of `preemptor` on `m` (1 port `port`, `cpu`), preempting the
 * given victims; returns the result (caller frees). */
static cs_txn_result preempt_txn(cs_id preemptor, cs_id m, int64_t cpu, uint16_t port,
                                 const cs_id *victims, uint32_t nvictims)
{
    cs_txn t;
    cs_txn_init(&t, 5, next_req++, version(), CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    claim_ports(&t, preemptor, m, cpu, 1024, &port, 1);
    for (uint32_t i = 0; i < nvictims; i++)
        cr_assert_eq(cs_txn_add_preempt(&t, victims[i], preemptor), CS_OK);
    cs_txn_result r;
    cs_txn_result_init(&r);
    commit_ok(&t, &r);
    cs_txn_free(&t);
    return r;
}

Test(commit, preemption_makes_room)
{
    pre p = preempt_setup();
    cs_id hi = ts_job(T.s, "hi", CS_JOB_SERVICE, 100, 1, 1000, 1024, 0, NULL, 1);
    cs_id lo0 = cs_task_id(p.lo, 0), hi0 = cs_task_id(hi, 0);
    uint64_t v = version();
    /* The preemptor even takes the victim's port. */
    cs_txn_result r = preempt_txn(hi0, p.m1, 1000, 31000, &lo0, 1);
    CLAIMS(&r, CS_COMMITTED);
    cr_assert_eq(r.npreempts, 1);
    cr_assert_eq(r.preempts[0], CS_COMMITTED);
    cr_assert_eq(r.committed, 1);
    cr_assert_eq(r.version, v + 1);

    cs_task victim = task(lo0);
    cr_assert_eq(victim.state, CS_TASK_PENDING);
    cr_assert_eq(victim.last_end, CS_TASK_PREEMPTED);
    cr_assert_eq(victim.machine, 0);
    cr_assert_eq(victim.nports, 0);
    assert_state(hi0, CS_TASK_ASSIGNED, p.m1);
    assert_alloc(p.m1, 2000, 2048, 0, 2);
    cs_machine x = mach(p.m1);
    cr_assert_eq(x.nports, 2);
    cr_assert_eq(x.ports[0], 31000);
    cr_assert_eq(x.ports[1], 31001);
    cr_assert_eq(placed_on(p.m1), 2);
    invariants();

    /* The evicted task can be placed again elsewhere. */
    place(lo0, p.m2, 1000, 1024, (const uint16_t[]){31001}, 1);
    cr_assert_eq(task(lo0).attempts, 2);
    invariants();
    cs_txn_result_free(&r);
}

Test(commit, preemption_of_two_victims)
{
    pre p = preempt_setup();
    cs_id big = ts_job(T.s, "big", CS_JOB_SERVICE, 100, 1, 2000, 1024, 0, NULL, 1);
    cs_id v[] = {cs_task_id(p.lo, 0), cs_task_id(p.lo, 1)};
    cs_txn_result r = preempt_txn(cs_task_id(big, 0), p.m1, 2000, 31005, v, 2);
    CLAIMS(&r, CS_COMMITTED);
    cr_assert_eq(r.preempts[0], CS_COMMITTED);
    cr_assert_eq(r.preempts[1], CS_COMMITTED);
    assert_state(v[0], CS_TASK_PENDING, 0);
    assert_state(v[1], CS_TASK_PENDING, 0);
    assert_alloc(p.m1, 2000, 1024, 0, 1);
    invariants();
    cs_txn_result_free(&r);
}

Test(commit, preemption_needs_lower_priority)
{
    pre p = preempt_setup();
    cs_id peer = ts_job(T.s, "peer", CS_JOB_BATCH, 10, 1, 1000, 1024, 0, NULL, 1);
    cs_id vip = ts_job(T.s, "vip", CS_JOB_SERVICE, 200, 1, 1000, 1024, 0, NULL, 1);
    cs_id mid = ts_job(T.s, "mid", CS_JOB_SERVICE, 50, 1, 1000, 1024, 0, NULL, 1);
    /* vip0 takes lo1's place on m1 */
    cs_id lo1 = cs_task_id(p.lo, 1);
    cs_txn_result r0 = preempt_txn(cs_task_id(vip, 0), p.m1, 1000, 31002, &lo1, 1);
    CLAIMS(&r0, CS_COMMITTED);
    uint64_t v = version();
    bytes before = cell_dump();

    /* Equal priority: peer (10) cannot evict lo0 (10). */
    cs_id lo0 = cs_task_id(p.lo, 0);
    cs_txn_result r1 = preempt_txn(cs_task_id(peer, 0), p.m1, 1000, 31003, &lo0, 1);
    cr_assert_eq(r1.preempts[0], CS_CONFLICT_PRIORITY);
    CLAIMS(&r1, CS_CONFLICT_CPU);
    cr_assert_eq(r1.committed, 0);

    /* Higher priority: mid (50) cannot evict vip0 (200). */
    cs_id vip0 = cs_task_id(vip, 0);
    cs_txn_result r2 = preempt_txn(cs_task_id(mid, 0), p.m1, 1000, 31003, &vip0, 1);
    cr_assert_eq(r2.preempts[0], CS_CONFLICT_PRIORITY);
    CLAIMS(&r2, CS_CONFLICT_CPU);

    cr_assert_eq(version(), v);
    assert_same_cell(before, "refused preemptions");
    assert_state(lo0, CS_TASK_ASSIGNED, p.m1);
    assert_state(vip0, CS_TASK_ASSIGNED, p.m1);
    invariants();
    free(before.p);
    cs_txn_result_free(&r0);
    cs_txn_result_free(&r1);
    cs_txn_result_free(&r2);
}

Test(commit, preemption_victim_elsewhere)
{
    pre p = preempt_setup();
    cs_id hi = ts_job(T.s, "hi", CS_JOB_SERVICE, 100, 1, 1000, 1024, 0, NULL, 1);
    cs_id lo2 = cs_task_id(p.lo, 2); /* on m2 */
    uint64_t v = version();
    cs_txn_result r = preempt_txn(cs_task_id(hi, 0), p.m1, 1000, 31005, &lo2, 1);
    cr_assert_eq(r.preempts[0], CS_CONFLICT_VICTIM_ELSEWHERE);
    CLAIMS(&r, CS_CONFLICT_CPU);
    cr_assert_eq(version(), v);
    assert_state(lo2, CS_TASK_ASSIGNED, p.m2);
    assert_alloc(p.m2, 1000, 1024, 0, 1);
    cs_txn_result_free(&r);

    /* A victim that is not placed at all. */
    cs_id lo3 = cs_task_id(p.lo, 3);
    r = preempt_txn(cs_task_id(hi, 0), p.m1, 1000, 31005, &lo3, 1);
    cr_assert_eq(r.preempts[0], CS_CONFLICT_TASK_NOT_PLACED);
    CLAIMS(&r, CS_CONFLICT_CPU);
    assert_state(lo3, CS_TASK_PENDING, 0);
    invariants();
    cs_txn_result_free(&r);
}

Test(commit, preemption_aborted_when_the_claim_still_conflicts)
{
    pre p = preempt_setup();
    cs_id big = ts_job(T.s, "big", CS_JOB_SERVICE, 100, 1, 1500, 1024, 0, NULL, 1);
    cs_id lo0 = cs_task_id(p.lo, 0);
    uint64_t v = version();
    bytes before = cell_dump();
    /* Evicting lo0 frees 1000 of the 1500 the claim needs. */
    cs_txn_result r = preempt_txn(cs_task_id(big, 0), p.m1, 1500, 31005, &lo0, 1);
    CLAIMS(&r, CS_CONFLICT_CPU);
    cr_assert_eq(r.preempts[0], CS_ABORTED_PREEMPTOR);
    cr_assert_eq(r.committed, 0);
    cr_assert_eq(r.conflicts, 1);
    cr_assert_eq(version(), v);
    assert_same_cell(before, "aborted preemption");
    cs_task victim = task(lo0);
    cr_assert_eq(victim.state, CS_TASK_ASSIGNED);
    cr_assert_eq(victim.machine, p.m1);
    cr_assert_eq(victim.nports, 1);
    assert_alloc(p.m1, 2000, 2048, 0, 2);
    invariants();
    cs_txn_result_free(&r);

    /* A preemptor that is no longer pending conflicts before any eviction. */
    cs_id hi = ts_job(T.s, "hi", CS_JOB_SERVICE, 100, 1, 1000, 1024, 0, NULL, 1);
    cs_id lo2 = cs_task_id(p.lo, 2);
    r = preempt_txn(cs_task_id(hi, 0), p.m2, 1000, 31005, &lo2, 1);
    CLAIMS(&r, CS_COMMITTED);
    cs_txn_result_free(&r);
    v = version();
    free(before.p);
    before = cell_dump();
    r = preempt_txn(cs_task_id(hi, 0), p.m1, 1000, 31006, &lo0, 1);
    CLAIMS(&r, CS_CONFLICT_TASK_NOT_PENDING);
    cr_assert_eq(r.preempts[0], CS_ABORTED_PREEMPTOR);
    cr_assert_eq(version(), v);
    assert_same_cell(before, "preemption for a placed task");
    assert_state(lo0, CS_TASK_ASSIGNED, p.m1);
    free(before.p);
    cs_txn_result_free(&r);
}

Test(commit, preemption_undone_does_not_leak_into_the_next_claim)
{
    /* In an incremental txn, a preemption undone because its claim conflicted
     * must not leave room for a later claim on the same machine. */
    pre p = preempt_setup();
    cs_id big = ts_job(T.s, "big", CS_JOB_SERVICE, 100, 1, 1500, 1024, 0, NULL, 1);
    cs_id hi = ts_job(T.s, "hi", CS_JOB_SERVICE, 100, 1, 1000, 1024, 0, NULL, 1);
    cs_txn t;
    cs_txn_init(&t, 5, 1, version(), CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    uint16_t pb = 31005, ph = 31006;
    claim_ports(&t, cs_task_id(big, 0), p.m1, 1500, 1024, &pb, 1);
    claim_ports(&t, cs_task_id(hi, 0), p.m1, 1000, 1024, &ph, 1);
    cr_assert_eq(cs_txn_add_preempt(&t, cs_task_id(p.lo, 0), cs_task_id(big, 0)), CS_OK);
    cs_txn_result r;
    cs_txn_result_init(&r);
    commit_ok(&t, &r);
    CLAIMS(&r, CS_CONFLICT_CPU, CS_CONFLICT_CPU);
    cr_assert_eq(r.preempts[0], CS_ABORTED_PREEMPTOR);
    assert_state(cs_task_id(p.lo, 0), CS_TASK_ASSIGNED, p.m1);
    assert_alloc(p.m1, 2000, 2048, 0, 2);
    invariants();
    cs_txn_result_free(&r);
    cs_txn_free(&t);
}

Test(commit, preemptor_must_be_a_claim)
{
    pre p = preempt_setup();
    cs_id hi = ts_job(T.s, "hi", CS_JOB_SERVICE, 100, 2, 1000, 1024, 0, NULL, 1);
    uint16_t port = 31005;

    /* The preemptor is not in the transaction at all. */
    cs_txn t;
    cs_txn_init(&t, 5, 1, version(), CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    claim_ports(&t, cs_task_id(hi, 1), p.m2, 1000, 1024, &port, 1);
    cr_assert_eq(cs_txn_add_preempt(&t, cs_task_id(p.lo, 0), cs_task_id(hi, 0)), CS_OK);
    expect_error(&t, CS_EINVAL, "is not a claim of this transaction");
    cs_txn_free(&t);

    /* The preemptor is a release of the transaction, not a claim. */
    cs_txn_init(&t, 5, 2, version(), CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    cr_assert_eq(cs_txn_add_release(&t, cs_task_id(p.lo, 2), CS_TASK_FINISHED, 0), CS_OK);
    cr_assert_eq(cs_txn_add_preempt(&t, cs_task_id(p.lo, 0), cs_task_id(p.lo, 2)), CS_OK);
    expect_error(&t, CS_EINVAL, "not a claim");
    cs_txn_free(&t);
    assert_state(cs_task_id(p.lo, 0), CS_TASK_ASSIGNED, p.m1);
    assert_state(cs_task_id(p.lo, 2), CS_TASK_ASSIGNED, p.m2);
}

/* ---- idempotency ------------------------------------------------------------------- */

Test(commit, replay_returns_the_first_result)
{
    cs_id m1 = ts_machine(T.s, "m1", 2000, 8192, 0, 0, 0, NULL, 0);
    cs_id ja = ts_job(T.s, "a", CS_JOB_BATCH, 10, 3, 1000, 1024, 0, NULL, 0);
    cs_txn t;
    cs_txn_init(&t, 7, 1, version(), CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    claim(&t, cs_task_id(ja, 0), m1, 1000, 1024, 0, 0);
    claim(&t, cs_task_id(ja, 1), m1, 1500, 1024, 0, 0); /* conflicts */
    cs_txn_result r1;
    cs_txn_result_init(&r1);
    commit_ok(&t, &r1);
    CLAIMS(&r1, CS_COMMITTED, CS_CONFLICT_CPU);
    cr_assert_not(r1.replayed);

    /* The same request again, first unchanged, then with other contents. */
    for (int round = 0; round < 2; round++) {
        cs_txn t2;
        cs_txn_init(&t2, 7, 1, version(), CS_CONFLICT_COARSE, CS_COMMIT_GANG);
        if (round == 0) {
            claim(&t2, cs_task_id(ja, 0), m1, 1000, 1024, 0, 0);
            claim(&t2, cs_task_id(ja, 1), m1, 1500, 1024, 0, 0);
        } else {
            claim(&t2, cs_task_id(ja, 2), m1, 1000, 1024, 0, mach(m1).seq);
        }
        bytes before = dump();
        cs_txn_result r2;
        cs_txn_result_init(&r2);
        commit_ok(&t2, &r2);
        cr_assert(r2.replayed, "round %d", round);
        cr_assert_eq(r2.version, r1.version);
        cr_assert_eq(r2.committed, r1.committed);
        cr_assert_eq(r2.conflicts, r1.conflicts);
        CLAIMS(&r2, CS_COMMITTED, CS_CONFLICT_CPU);
        cr_assert_eq(r2.nreleases, 0);
        cr_assert_eq(r2.npreempts, 0);
        assert_same_dump(before, "replay");
        free(before.p);
        cs_txn_result_free(&r2);
        cs_txn_free(&t2);
    }
    assert_state(cs_task_id(ja, 2), CS_TASK_PENDING, 0);

    /* The request is remembered across a reopen. */
    ts_store_reopen(&T);
    cs_txn t3;
    cs_txn_init(&t3, 7, 1, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    claim(&t3, cs_task_id(ja, 2), m1, 1000, 1024, 0, 0);
    cs_txn_result r3;
    cs_txn_result_init(&r3);
    commit_ok(&t3, &r3);
    cr_assert(r3.replayed);
    cr_assert_eq(r3.version, r1.version);

    /* Another request id, or another scheduler with the same id, is new. */
    cs_txn_reset(&t3, 2, version());
    claim(&t3, cs_task_id(ja, 2), m1, 1000, 1024, 0, 0);
    commit_ok(&t3, &r3);
    cr_assert_not(r3.replayed);
    CLAIMS(&r3, CS_COMMITTED);
    cs_txn t4;
    cs_txn_init(&t4, 8, 1, version(), CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    claim(&t4, cs_task_id(ja, 1), m1, 1000, 1024, 0, 0);
    commit_ok(&t4, &r3);
    cr_assert_not(r3.replayed);
    CLAIMS(&r3, CS_CONFLICT_CPU);

    cs_txn_result_free(&r1);
    cs_txn_result_free(&r3);
    cs_txn_free(&t);
    cs_txn_free(&t3);
    cs_txn_free(&t4);
}

Test(commit, replay_of_a_commit_that_changed_nothing)
{
    cs_id m1 = ts_machine(T.s, "m1", 500, 8192, 0, 0, 0, NULL, 0);
    cs_id ja = ts_job(T.s, "a", CS_JOB_BATCH, 10, 1, 1000, 1024, 0, NULL, 0);
    uint64_t v = version();
    cs_txn t;
    cs_txn_init(&t, 7, 1, v, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    claim(&t, cs_task_id(ja, 0), m1, 1000, 1024, 0, 0);
    cs_txn_result r;
    cs_txn_result_init(&r);
    commit_ok(&t, &r);
    CLAIMS(&r, CS_CONFLICT_CPU);
    cr_assert_eq(r.version, v);
    bytes before = dump();
    commit_ok(&t, &r);
    cr_assert(r.replayed);
    cr_assert_eq(r.version, v);
    CLAIMS(&r, CS_CONFLICT_CPU);
    cr_assert_eq(r.conflicts, 1);
    assert_same_dump(before, "replay of a no-op commit");
    free(before.p);
    cs_txn_result_free(&r);
    cs_txn_free(&t);
}

/* ---- bad input -------------------------------------------------------------------- */

/* A store with m1 and job a (2 tasks of 1000/1024/10, no ports). */
typedef struct bad {
    cs_id m1, ja;
} bad;

static bad bad_setup(void)
{
    bad b;
    b.m1 = ts_machine(T.s, "m1", 4000, 8192, 100, 0, 0, NULL, 0);
    b.ja = ts_job(T.s, "a", CS_JOB_BATCH, 10, 3, 1000, 1024, 10, NULL, 0);
    place_d(cs_task_id(b.ja, 2), b.m1, 1000, 1024, 10, NULL, 0);
    return b;
}

/* A transaction that starts with a valid claim of a0, so that "nothing
 * written" is meaningful. */
static void bad_txn(cs_txn *t, const bad *b)
{
    cs_txn_init(t, 3, next_req++, version(), CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    claim(t, cs_task_id(b->ja, 0), b->m1, 1000, 1024, 10, 0);
}

Test(commit, bad_input_empty)
{
    bad_setup();
    cs_txn t;
    cs_txn_init(&t, 3, 1, version(), CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    expect_error(&t, CS_EINVAL, "empty");
    cs_txn_free(&t);
}

Test(commit, bad_input_unknown_machine)
{
    bad b = bad_setup();
    cs_txn t;
    bad_txn(&t, &b);
    claim(&t, cs_task_id(b.ja, 1), 999, 1000, 1024, 10, 0);
    expect_error(&t, CS_ENOTFOUND, "machine 999");
    cs_txn_free(&t);
    assert_state(cs_task_id(b.ja, 0), CS_TASK_PENDING, 0);
}

Test(commit, bad_input_unknown_task)
{
    bad b = bad_setup();
    char id[32];
    cs_txn t;
    bad_txn(&t, &b);
    cs_id missing = cs_task_id(b.ja, 50); /* the job has 3 tasks */
    snprintf(id, sizeof id, "%llu", (unsigned long long)missing);
    claim(&t, missing, b.m1, 1000, 1024, 10, 0);
    expect_error(&t, CS_ENOTFOUND, id);
    cs_txn_free(&t);

    bad_txn(&t, &b);
    missing = cs_task_id(999, 0); /* no such job */
    snprintf(id, sizeof id, "%llu", (unsigned long long)missing);
    cr_assert_eq(cs_txn_add_release(&t, missing, CS_TASK_FINISHED, 0), CS_OK);
    expect_error(&t, CS_ENOTFOUND, id);
    cs_txn_free(&t);

    bad_txn(&t, &b);
    cr_assert_eq(cs_txn_add_preempt(&t, missing, cs_task_id(b.ja, 0)), CS_OK);
    expect_error(&t, CS_ENOTFOUND, "preemption");
    cs_txn_free(&t);
}

Test(commit, bad_input_resources)
{
    bad b = bad_setup();
    cs_id a1 = cs_task_id(b.ja, 1);
    struct {
        int64_t cpu, mem, disk;
        const char *needle;
    } cases[] = {
        {-1, 1024, 10, "cpu is negative"},
        {1000, -1024, 10, "mem is negative"},
        {1000, 1024, INT64_MIN, "disk is negative"},
        {CS_RES_MAX + 1, 1024, 10, "cpu is too large"},
        {1000, INT64_MAX, 10, "mem is too large"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cs_txn t;
        bad_txn(&t, &b);
        claim(&t, a1, b.m1, cases[i].cpu, cases[i].mem, cases[i].disk, 0);
        expect_error(&t, CS_EINVAL, cases[i].needle);
        cs_txn_free(&t);
    }
    /* Less than the task asks for is a stale view of its spec: a conflict. */
    const int64_t less[][3] = {{999, 1024, 10}, {1000, 1023, 10}, {1000, 1024, 9}};
    for (size_t i = 0; i < 3; i++) {
        cs_txn t;
        cs_txn_init(&t, 7, 100 + i, version(), CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
        claim(&t, a1, b.m1, less[i][0], less[i][1], less[i][2], 0);
        cs_txn_result r;
        cs_txn_result_init(&r);
        commit_ok(&t, &r);
        cr_assert_eq(r.claims[0], CS_CONFLICT_SPEC_CHANGED, "case %zu", i);
        cs_txn_result_free(&r);
        cs_txn_free(&t);
    }
    /* Exactly CS_RES_MAX is valid input (it then conflicts on capacity). */
    cs_txn t;
    bad_txn(&t, &b);
    claim(&t, a1, b.m1, CS_RES_MAX, 1024, 10, 0);
    cs_txn_result r;
    cs_txn_result_init(&r);
    commit_ok(&t, &r);
    CLAIMS(&r, CS_COMMITTED, CS_CONFLICT_CPU);
    cs_txn_result_free(&r);
    cs_txn_free(&t);
}

Test(commit, bad_input_task_twice)
{
    bad b = bad_setup();
    cs_id a0 = cs_task_id(b.ja, 0), a2 = cs_task_id(b.ja, 2);
    cs_txn t;

    bad_txn(&t, &b); /* claims a0 */
    claim(&t, a0, b.m1, 1000, 1024, 10, 0);
    expect_error(&t, CS_EINVAL, "twice");
    cs_txn_free(&t);

    bad_txn(&t, &b);
    cr_assert_eq(cs_txn_add_release(&t, a0, CS_TASK_KILLED, 0), CS_OK);
    expect_error(&t, CS_EINVAL, "twice");
    cs_txn_free(&t);

    bad_txn(&t, &b);
    cr_assert_eq(cs_txn_add_release(&t, a2, CS_TASK_FINISHED, 0), CS_OK);
    cr_assert_eq(cs_txn_add_release(&t, a2, CS_TASK_FINISHED, 0), CS_OK);
    expect_error(&t, CS_EINVAL, "twice");
    cs_txn_free(&t);

    bad_txn(&t, &b);
    cr_assert_eq(cs_txn_add_preempt(&t, a0, a0), CS_OK); /* a task evicting itself */
    expect_error(&t, CS_EINVAL, "twice");
    cs_txn_free(&t);

    /* A release to pending and one claim may name the same task (a
     * restart); a second claim, or a release to an end, may not. */
    bad_txn(&t, &b);
    cr_assert_eq(cs_txn_add_release(&t, a0, CS_TASK_PENDING, 0), CS_OK);
    claim(&t, a0, b.m1, 1000, 1024, 10, 0);
    expect_error(&t, CS_EINVAL, "twice");
    cs_txn_free(&t);

    bad_txn(&t, &b);
    cr_assert_eq(cs_txn_add_release(&t, a2, CS_TASK_FAILED, 0), CS_OK);
    claim(&t, a2, b.m1, 1000, 1024, 10, 0);
    expect_error(&t, CS_EINVAL, "twice");
    cs_txn_free(&t);

    bad_txn(&t, &b);
    cr_assert_eq(cs_txn_add_release(&t, a2, CS_TASK_PENDING, 0), CS_OK);
    cr_assert_eq(cs_txn_add_preempt(&t, a2, a0), CS_OK);
    expect_error(&t, CS_EINVAL, "twice");
    cs_txn_free(&t);
}

Test(commit, bad_input_unknown_mode)
{
    bad b = bad_setup();
    cs_txn t;
    bad_txn(&t, &b);
    t.conflict = 7;
    expect_error(&t, CS_EINVAL, "mode");
    t.conflict = CS_CONFLICT_FINE;
    t.commit = CS_COMMIT_MODE_COUNT;
    expect_error(&t, CS_EINVAL, "mode");
    cs_txn_free(&t);
}

/* ---- the dry run -------------------------------------------------------------------- */

static void assert_same_result(const cs_txn_result *a, const cs_txn_result *b)
{
    cr_assert_eq(a->committed, b->committed);
    cr_assert_eq(a->conflicts, b->conflicts);
    cr_assert_eq(a->nclaims, b->nclaims);
    cr_assert_eq(a->nreleases, b->nreleases);
    cr_assert_eq(a->npreempts, b->npreempts);
    for (uint32_t i = 0; i < a->nclaims; i++)
        cr_assert_eq(a->claims[i], b->claims[i], "claim %u: %s vs %s", i,
                     cs_outcome_str(a->claims[i]), cs_outcome_str(b->claims[i]));
    for (uint32_t i = 0; i < a->nreleases; i++)
        cr_assert_eq(a->releases[i], b->releases[i], "release %u", i);
    for (uint32_t i = 0; i < a->npreempts; i++)
        cr_assert_eq(a->preempts[i], b->preempts[i], "preemption %u", i);
}

/* cs_commit_check (the dry run on a snapshot) gives the outcomes the
 * following cs_commit gives and writes nothing; on every combination of
 * modes, each on a fresh store. */
static void check_mode(uint8_t conflict, uint8_t commit_mode)
{
    cs_id m1 = ts_machine(T.s, "m1", 2000, 8192, 0, 31000, 31009, NULL, 0);
    cs_id m2 = ts_machine(T.s, "m2", 2000, 8192, 0, 31000, 31009, NULL, 0);
    cs_id lo = ts_job(T.s, "lo", CS_JOB_BATCH, 10, 4, 1000, 1024, 0, NULL, 1);
    cs_id hi = ts_job(T.s, "hi", CS_JOB_SERVICE, 90, 2, 1000, 1024, 0, NULL, 1);
    const uint16_t p0[] = {31000}, p1[] = {31001};
    uint64_t seq1 = mach(m1).seq, seq2 = mach(m2).seq;
    place(cs_task_id(lo, 0), m1, 1000, 1024, p0, 1);
    place(cs_task_id(lo, 1), m2, 1000, 1024, p0, 1);
    place(cs_task_id(lo, 2), m2, 1000, 1024, p1, 1);

    cs_txn t;
    cs_txn_init(&t, 4, 1, version(), conflict, commit_mode);
    cr_assert_eq(cs_txn_add_release(&t, cs_task_id(lo, 0), CS_TASK_FINISHED, 0), CS_OK);
    cs_res r = {1000, 1024, 0};
    uint16_t ph = 31000, ph2 = 31003, pl = 31002;
    cr_assert_eq(cs_txn_add_claim(&t, cs_task_id(hi, 0), m2, &r, &ph, 1, seq2), CS_OK);
    cr_assert_eq(cs_txn_add_claim(&t, cs_task_id(lo, 3), m1, &r, &pl, 1, seq1), CS_OK);
    cr_assert_eq(cs_txn_add_claim(&t, cs_task_id(hi, 1), m2, &r, &ph2, 1, seq2), CS_OK);
    cr_assert_eq(cs_txn_add_preempt(&t, cs_task_id(lo, 1), cs_task_id(hi, 0)), CS_OK);

    bytes before = dump();
    cs_snap *snap;
    cs_error err = {0};
    cr_assert_eq(cs_snap_open(T.s, &snap, &err), CS_OK, "%s", err.msg);
    cs_txn_result dry, real;
    cs_txn_result_init(&dry);
    cs_txn_result_init(&real);
    cr_assert_eq(cs_commit_check(snap, &t, &dry, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(dry.version, cs_snap_version(snap));
    cs_snap_close(snap);
    assert_same_dump(before, "cs_commit_check");
    free(before.p);
    commit_ok(&t, &real);
    assert_same_result(&dry, &real);
    /* Stale seqs for coarse; hi1 never fits m2 (lo2 and hi0 fill it). */
    if (conflict == CS_CONFLICT_COARSE) {
        CLAIMS(&real, CS_CONFLICT_MACHINE_CHANGED, CS_CONFLICT_MACHINE_CHANGED,
               CS_CONFLICT_MACHINE_CHANGED);
        cr_assert_eq(real.preempts[0], CS_ABORTED_PREEMPTOR);
        cr_assert_eq(real.releases[0],
                     commit_mode == CS_COMMIT_GANG ? CS_ABORTED_GANG : CS_COMMITTED);
    } else if (commit_mode == CS_COMMIT_GANG) {
        CLAIMS(&real, CS_ABORTED_GANG, CS_ABORTED_GANG, CS_CONFLICT_CPU);
        cr_assert_eq(real.preempts[0], CS_ABORTED_GANG);
    } else {
        CLAIMS(&real, CS_COMMITTED, CS_COMMITTED, CS_CONFLICT_CPU);
        cr_assert_eq(real.preempts[0], CS_COMMITTED);
        cr_assert_eq(real.committed, 2);
    }
    if (commit_mode == CS_COMMIT_GANG)
        cr_assert_eq(real.committed, 0);
    invariants();

    /* A bad transaction: both answer the same error. */
    cs_txn_reset(&t, 2, version());
    claim(&t, cs_task_id(hi, 1), 999, 1000, 1024, 0, 0);
    cr_assert_eq(cs_snap_open(T.s, &snap, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_commit_check(snap, &t, &dry, &err), CS_ENOTFOUND);
    cs_snap_close(snap);
    cr_assert_eq(cs_commit(T.s, &t, &real, &err), CS_ENOTFOUND);

    cs_txn_result_free(&dry);
    cs_txn_result_free(&real);
    cs_txn_free(&t);
}

Test(commit, check_fine_incremental) { check_mode(CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL); }
Test(commit, check_coarse_incremental) { check_mode(CS_CONFLICT_COARSE, CS_COMMIT_INCREMENTAL); }
Test(commit, check_fine_gang) { check_mode(CS_CONFLICT_FINE, CS_COMMIT_GANG); }
Test(commit, check_coarse_gang) { check_mode(CS_CONFLICT_COARSE, CS_COMMIT_GANG); }

Test(commit, large_transaction)
{
    /* One transaction touching many machines and tasks: 3000 claims on 100
     * machines, 25 fit on each (then cpu runs out). */
    enum { NM = 100, NT = 3000 };
    cs_id m[NM];
    char name[16];
    for (int i = 0; i < NM; i++) {
        snprintf(name, sizeof name, "m%03d", i);
        m[i] = ts_machine(T.s, name, 2500, 1 << 20, 0, 0, 0, NULL, 0);
    }
    cs_id ja = ts_job(T.s, "a", CS_JOB_BATCH, 10, NT, 100, 1, 0, NULL, 0);
    uint64_t v = version();
    cs_txn t;
    cs_txn_init(&t, 1, 1, v, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    for (uint32_t i = 0; i < NT; i++)
        claim(&t, cs_task_id(ja, i), m[(i * 7) % NM], 100, 1, 0, 0);
    cs_txn_result r;
    cs_txn_result_init(&r);
    commit_ok(&t, &r);
    cr_assert_eq(r.committed, 2500);
    cr_assert_eq(r.conflicts, 500);
    cr_assert_eq(r.version, v + 1);
    /* The first 25 claims on each machine commit, in transaction order. */
    uint32_t seen[NM] = {0};
    for (uint32_t i = 0; i < NT; i++) {
        uint32_t k = (i * 7) % NM;
        uint8_t want = seen[k]++ < 25 ? CS_COMMITTED : CS_CONFLICT_CPU;
        cr_assert_eq(r.claims[i], want, "claim %u: %s", i, cs_outcome_str(r.claims[i]));
    }
    for (int i = 0; i < NM; i++)
        assert_alloc(m[i], 2500, 25, 0, 25);
    invariants();
    cs_txn_result_free(&r);
    cs_txn_free(&t);
}

/* ---- determinism ---------------------------------------------------------------------- */

static void commit_on(cs_store *s, const cs_txn *t)
{
    cs_txn_result r;
    cs_txn_result_init(&r);
    cs_error err = {0};
    cr_assert_eq(cs_commit(s, t, &r, &err), CS_OK, "%s", err.msg);
    cs_txn_result_free(&r);
}

/* The same operations and transactions, of every kind, on store `s`. */
static void script(cs_store *s)
{
    cs_error err = {0};
    cs_id m[4];
    char name[16];
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "m%d", i);
        const char *attrs[] = {"rack=r1", "zone=a"};
        m[i] = ts_machine(s, name, 4000, 8192, 1000, 31000, 31099, attrs, 2);
    }
    cs_id lo = ts_job(s, "lo", CS_JOB_BATCH, 10, 20, 500, 512, 10, NULL, 1);
    cs_id hi = ts_job(s, "hi", CS_JOB_SERVICE, 100, 4, 2000, 1024, 0, (const uint16_t[]){80}, 1);
    uint64_t seed = 42;
    uint64_t req = 1;
    for (int round = 0; round < 12; round++) {
        cs_txn t;
        cs_txn_init(&t, (uint64_t)round % 3 + 1, req++, ts_version(s), (uint8_t)(round % 2),
                     (uint8_t)(round % 5 == 4));
        for (uint32_t k = 0; k < 4; k++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            uint32_t idx = (uint32_t)(seed >> 33) % 20;
            cs_id mm = m[(seed >> 40) % 4];
            uint16_t port = (uint16_t)(31000 + (seed >> 50) % 100);
            cs_res r = {500, 512, 10};
            cs_id tid = cs_task_id(lo, idx);
            bool dup = false;
            for (uint32_t c = 0; c < t.nclaims; c++)
                dup |= t.claims[c].task == tid;
            if (!dup)
                cr_assert_eq(cs_txn_add_claim(&t, tid, mm, &r, &port, 1, 1 + (seed >> 60) % 3),
                             CS_OK);
        }
        commit_on(s, &t);
        cs_txn_free(&t);
    }
    /* Preempt on m0: hi0 evicts every lo task there. */
    cs_txn t;
    cs_txn_init(&t, 9, req++, ts_version(s), CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    uint16_t p80 = 80;
    cs_res rh = {2000, 1024, 0};
    cr_assert_eq(cs_txn_add_claim(&t, cs_task_id(hi, 0), m[0], &rh, &p80, 1, 0), CS_OK);
    for (uint32_t i = 0; i < 20; i++)
        cr_assert_eq(cs_txn_add_preempt(&t, cs_task_id(lo, i), cs_task_id(hi, 0)), CS_OK);
    commit_on(s, &t);
    /* m1 goes down (its tasks are lost), a lost task retries, some finish. */
    cr_assert_eq(cs_op_machine_state(s, m[1], CS_MACHINE_DOWN, NULL, &err), CS_OK, "%s", err.msg);
    cs_txn_reset(&t, req++, ts_version(s));
    for (uint32_t i = 0; i < 20; i++)
        cr_assert_eq(cs_txn_add_release(&t, cs_task_id(lo, i), i % 2 ? CS_TASK_PENDING
                                                                      : CS_TASK_FINISHED,
                                        (int32_t)i),
                     CS_OK);
    commit_on(s, &t);
    cr_assert_eq(cs_op_job_kill(s, lo, 1000, NULL, &err), CS_OK, "%s", err.msg);
    cs_txn_free(&t);
}

Test(commit, deterministic)
{
    ts_store other;
    ts_store_create(&other);
    script(T.s);
    script(other.s);
    invariants_of(T.s);
    invariants_of(other.s);
    uint8_t *a, *b;
    size_t na, nb;
    ts_dump(T.s, &a, &na);
    ts_dump(other.s, &b, &nb);
    ts_store_destroy(&other);
    cr_assert_eq(na, nb, "dumps differ in size: %zu vs %zu", na, nb);
    cr_assert_eq(memcmp(a, b, na), 0, "dumps differ");
    /* The script did things: more than the registrations were committed. */
    cr_assert_gt(version(), 10, "version %llu", (unsigned long long)version());
    free(a);
    free(b);
}

/* ---- randomized: the invariants hold under concurrent schedulers ----------------------- */

Test(commit, random_schedulers_keep_invariants)
{
    enum { NM = 6, NJ = 4, NT = 30, ROUNDS = 60 };
    cs_id m[NM], j[NJ];
    char name[16];
    for (int i = 0; i < NM; i++) {
        snprintf(name, sizeof name, "m%d", i);
        m[i] = ts_machine(T.s, name, 4000, 8192, 500, 31000, 31019, NULL, 0);
    }
    for (int i = 0; i < NJ; i++) {
        snprintf(name, sizeof name, "j%d", i);
        j[i] = ts_job(T.s, name, CS_JOB_BATCH, 10 * i, NT, 500 + 250 * i, 700, 20, NULL, 1);
    }
    uint64_t seed = 0xC0FFEE;
    uint64_t req = 1;
    uint32_t placed = 0;
    for (int round = 0; round < ROUNDS; round++) {
        /* Three schedulers decide on the same snapshot, then commit in turn. */
        uint64_t v = version();
        cs_txn t[3];
        for (int s = 0; s < 3; s++) {
            cs_txn_init(&t[s], (uint64_t)s + 1, req++, v, (uint8_t)(cs_rng_next(&seed) % 2),
                        (uint8_t)(cs_rng_next(&seed) % 4 == 0));
            uint32_t n = 1 + (uint32_t)(cs_rng_next(&seed) % 6);
            for (uint32_t k = 0; k < n; k++) {
                uint32_t jj = (uint32_t)(cs_rng_next(&seed) % NJ);
                cs_id tid = cs_task_id(j[jj], (uint32_t)(cs_rng_next(&seed) % NT));
                bool dup = false;
                for (uint32_t c = 0; c < t[s].nclaims; c++)
                    dup |= t[s].claims[c].task == tid;
                if (dup)
                    continue;
                cs_id mm = m[cs_rng_next(&seed) % NM];
                cs_res r = {500 + 250 * (int64_t)jj, 700, 20};
                uint16_t port = (uint16_t)(31000 + cs_rng_next(&seed) % 20);
                cr_assert_eq(cs_txn_add_claim(&t[s], tid, mm, &r, &port, 1, mach(mm).seq), CS_OK);
            }
        }
        for (int s = 0; s < 3; s++) {
            uint64_t before = version();
            cs_txn_result r;
            cs_txn_result_init(&r);
            commit_ok(&t[s], &r);
            uint32_t ok = 0, aborted = 0;
            for (uint32_t c = 0; c < r.nclaims; c++) {
                ok += r.claims[c] == CS_COMMITTED;
                aborted += r.claims[c] == CS_ABORTED_GANG;
            }
            cr_assert_eq(ok, r.committed);
            cr_assert_eq(r.committed + r.conflicts + aborted, t[s].nclaims);
            if (t[s].commit == CS_COMMIT_GANG)
                cr_assert(r.committed == 0 || r.conflicts == 0, "gang commits all or nothing");
            else
                cr_assert_eq(aborted, 0);
            cr_assert_eq(r.version, before + (r.committed > 0));
            placed += r.committed;
            cs_txn_result_free(&r);
            cs_txn_free(&t[s]);
        }
        invariants();
        /* Now and then, a task finishes. */
        if (round % 5 == 4) {
            cs_txn rel;
            cs_txn_init(&rel, 9, req++, version(), CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
            for (int i = 0; i < NJ; i++)
                cr_assert_eq(cs_txn_add_release(&rel, cs_task_id(j[i], (uint32_t)round % NT),
                                                CS_TASK_FINISHED, 0),
                             CS_OK);
            cs_txn_result r;
            cs_txn_result_init(&r);
            commit_ok(&rel, &r);
            cs_txn_result_free(&r);
            cs_txn_free(&rel);
            invariants();
        }
    }
    cr_assert_gt(placed, 20, "the schedulers should have placed something");
}
