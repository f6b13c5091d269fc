/* test_store_ids.c — cs_snap_each_task_in, the walk over listed task ids
 * that sync replies use: over any ascending list of ids (empty, one, all,
 * runs, gaps, the first and last keys) it gives exactly what cs_snap_task
 * gives for each id, in order, in a snapshot and in a write transaction
 * (whose own writes it sees, even when its callback moves or writes through
 * the transaction's tasks cursor); an absent id, a list out of order and a
 * callback's stop are reported as the header says.
 *
 * The cell: tasks of four jobs with gaps between them (a job's tasks are
 * adjacent ids, the next job's start at its next index block), some placed
 * with ports, enough of them to fill several LMDB leaves, so that stepping
 * from one key to the next crosses leaf boundaries.
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "cellstate/rng.h"
#include "cellstate/store.h"
#include "tests/support.h"
#include "txn/commit.h"

/* Per-task resources of every job, and what each claim asks. */
#define CPU 100
#define MEM 100

typedef struct cell {
    ts_store t;
    cs_id job[4];
    cs_id *ids; /* every task id, ascending */
    size_t n;
} cell;

static int collect_id(void *ctx, const cs_task *t)
{
    cell *c = ctx;
    cs_id *v = realloc(c->ids, (c->n + 1) * sizeof *v);
    cr_assert_not_null(v);
    c->ids = v;
    c->ids[c->n++] = t->id;
    return 0;
}

/* Claim tasks[0..n) on `machine` in one commit; task i takes port ports[i]
 * when ports is not NULL. */
static void place(cs_store *s, uint64_t req, const cs_id *tasks, size_t n, cs_id machine,
                  const uint16_t *ports)
{
    cs_txn tx;
    cs_txn_init(&tx, 1, req, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    cs_res res = {CPU, MEM, 0};
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(cs_txn_add_claim(&tx, tasks[i], machine, &res,
                                      ports != NULL ? &ports[i] : NULL, ports != NULL, 0),
                     CS_OK);
    cs_txn_result r;
    cs_txn_result_init(&r);
    cs_error err = {0};
    cr_assert_eq(cs_commit(s, &tx, &r, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(r.committed, n, "%u of %zu claims committed", r.committed, n);
    cs_txn_result_free(&r);
    cs_txn_free(&tx);
}

static void cell_build(cell *c)
{
    memset(c, 0, sizeof *c);
    ts_store_create(&c->t);
    cs_store *s = c->t.s;
    cs_id m1 = ts_machine(s, "m1", 1000000, 1000000, 0, 31000, 31999, NULL, 0);
    cs_id m2 = ts_machine(s, "m2", 1000000, 1000000, 0, 0, 0, NULL, 0);
    static const uint32_t counts[4] = {40, 1, 600, 9};
    for (int j = 0; j < 4; j++) {
        char name[8] = {'j', (char)('1' + j), 0};
        c->job[j] = ts_job(s, name, CS_JOB_BATCH, 0, counts[j], CPU, MEM, 0, NULL, j == 0);
    }
    /* Placed tasks differ from pending ones in state, machine, version and
     * (job 1's) ports: the records are not all alike. */
    cs_id batch[100];
    uint16_t ports[100];
    for (uint32_t i = 0; i < 12; i++) {
        batch[i] = cs_task_id(c->job[0], 3 * i);
        ports[i] = (uint16_t)(31000 + 7 * i);
    }
    place(s, 1, batch, 12, m1, ports);
    for (uint32_t i = 0; i < 100; i++)
        batch[i] = cs_task_id(c->job[2], 5 * i + (i % 3));
    place(s, 2, batch, 50, m1, NULL);
    place(s, 3, batch + 50, 50, m2, NULL);
    place(s, 4, (cs_id[]){cs_task_id(c->job[3], 8)}, 1, m2, NULL);

    cs_snap *snap;
    cs_error err = {0};
    cr_assert_eq(cs_snap_open(s, &snap, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_snap_each_task(snap, collect_id, c, &err), CS_OK, "%s", err.msg);
    cs_snap_close(snap);
    cr_assert_eq(c->n, 650);
}

static void cell_free(cell *c)
{
    free(c->ids);
    ts_store_destroy(&c->t);
}

/* The cell built, and a snapshot of it; cell_close closes both. */
static cs_snap *cell_open(cell *c)
{
    cell_build(c);
    cs_snap *snap;
    cs_error err = {0};
    cr_assert_eq(cs_snap_open(c->t.s, &snap, &err), CS_OK, "%s", err.msg);
    return snap;
}

static void cell_close(cell *c, cs_snap *snap)
{
    cs_snap_close(snap);
    cell_free(c);
}

/* ---- what a walk gives ----------------------------------------------------- */

/* The records a walk passed to its callback: their ids, and their encodings
 * one after another (msgpack is self-delimiting, so equal concatenations are
 * equal sequences of records). */
typedef struct seen {
    cs_id *ids;
    size_t n, cap;
    msgpack_sbuffer enc;
    size_t stop_after; /* return STOP at this call; 0 for never */
    cs_snap *snap;     /* with `probe`: read task `probe` through it during each call */
    cs_id probe;
    cs_wtxn *bump;     /* when not NULL: write each task back with one more attempt */
} seen;

/* Not a CS_E* code: the walk must hand back the callback's own value. */
#define STOP 1234

static void seen_init(seen *s)
{
    memset(s, 0, sizeof *s);
    msgpack_sbuffer_init(&s->enc);
}

static void seen_free(seen *s)
{
    free(s->ids);
    msgpack_sbuffer_destroy(&s->enc);
}

static int see(void *ctx, const cs_task *t)
{
    seen *s = ctx;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->ids = realloc(s->ids, s->cap * sizeof *s->ids);
        cr_assert_not_null(s->ids);
    }
    s->ids[s->n++] = t->id;
    cr_assert_eq(cs_task_encode(t, &s->enc), CS_OK);
    cs_error err = {0};
    if (s->probe != 0) {
        /* In a write transaction this moves the cursor the walk reads by. */
        cs_arena a;
        cs_arena_init(&a);
        cs_task other;
        cr_assert_eq(cs_snap_task(s->snap, s->probe, &a, &other, &err), CS_OK, "%s", err.msg);
        cs_arena_free(&a);
    }
    if (s->bump != NULL) {
        cs_task next = *t;
        next.attempts++;
        cr_assert_eq(cs_wtxn_put_task(s->bump, t, &next, &err), CS_OK, "%s", err.msg);
    }
    return s->n == s->stop_after ? STOP : 0;
}

/* What cs_snap_task gives for each of ids[0..n), as `see` records it. */
static void expect(cs_snap *snap, const cs_id *ids, size_t n, seen *out)
{
    seen_init(out);
    cs_arena a;
    cs_arena_init(&a);
    for (size_t i = 0; i < n; i++) {
        cs_task t;
        cs_error err = {0};
        cs_arena_reset(&a);
        cr_assert_eq(cs_snap_task(snap, ids[i], &a, &t, &err), CS_OK, "%s", err.msg);
        see(out, &t);
    }
    cs_arena_free(&a);
}

/* The walk over ids[0..n) gives what n point reads give. */
static void assert_walk_is_reads(cs_snap *snap, const cs_id *ids, size_t n, const char *what)
{
    seen got, want;
    seen_init(&got);
    cs_error err = {0};
    int rc = cs_snap_each_task_in(snap, ids, n, see, &got, &err);
    cr_assert_eq(rc, CS_OK, "%s (%zu ids): rc %d: %s", what, n, rc, err.msg);
    expect(snap, ids, n, &want);
    cr_assert_eq(got.n, n, "%s: %zu records for %zu ids", what, got.n, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(got.ids[i], ids[i], "%s: record %zu is task %llu, wanted %llu", what, i,
                     (unsigned long long)got.ids[i], (unsigned long long)ids[i]);
    cr_assert_eq(got.enc.size, want.enc.size, "%s: records differ in length", what);
    cr_assert(got.enc.size == 0 || memcmp(got.enc.data, want.enc.data, got.enc.size) == 0,
              "%s: records differ from cs_snap_task's", what);
    seen_free(&got);
    seen_free(&want);
}

/* ---- random sorted subsets ------------------------------------------------- */

static const char *const shapes[] = {"empty", "one id", "all ids", "one run",
                                     "sparse", "dense", "runs and gaps", "first and last"};
#define NSHAPES (sizeof shapes / sizeof *shapes)

/* A sorted subset of all[0..n) of the given shape into out (room for n);
 * returns its size. */
static size_t subset(uint64_t *rng, size_t shape, const cs_id *all, size_t n, cs_id *out)
{
    size_t k = 0;
    switch (shape) {
    case 0:
        break;
    case 1:
        out[k++] = all[cs_rng_below(rng, (uint32_t)n)];
        break;
    case 2:
        memcpy(out, all, n * sizeof *all);
        k = n;
        break;
    case 3: {
        size_t a = cs_rng_below(rng, (uint32_t)n);
        size_t b = a + 1 + cs_rng_below(rng, (uint32_t)(n - a));
        for (size_t i = a; i < b; i++)
            out[k++] = all[i];
        break;
    }
    case 4:
    case 5: {
        size_t per100 = shape == 4 ? 5 : 90;
        for (size_t i = 0; i < n; i++)
            if (cs_rng_below(rng, 100) < per100)
                out[k++] = all[i];
        break;
    }
    case 6:
        for (size_t i = 0; i < n;) {
            size_t len = 1 + cs_rng_below(rng, 40);
            bool in = cs_rng_below(rng, 2) == 0;
            for (size_t e = i + len < n ? i + len : n; i < e; i++)
                if (in)
                    out[k++] = all[i];
        }
        break;
    default:
        out[k++] = all[0];
        out[k++] = all[n - 1];
        break;
    }
    return k;
}

/* `rounds` random subsets of every shape, walked through `snap`. */
static void check_subsets(cs_snap *snap, const cs_id *all, size_t n, uint64_t seed,
                          int rounds)
{
    uint64_t rng = seed;
    cs_id *ids = malloc(n * sizeof *ids);
    cr_assert_not_null(ids);
    for (int r = 0; r < rounds; r++)
        for (size_t shape = 0; shape < NSHAPES; shape++) {
            size_t k = subset(&rng, shape, all, n, ids);
            char what[64];
            snprintf(what, sizeof what, "round %d, %s", r, shapes[shape]);
            assert_walk_is_reads(snap, ids, k, what);
        }
    free(ids);
}

Test(store_ids, walk_over_sorted_subsets_gives_the_point_reads)
{
    cell c;
    cs_snap *snap = cell_open(&c);
    check_subsets(snap, c.ids, c.n, 20240601, 40);
    /* NULL is a valid empty list. */
    assert_walk_is_reads(snap, NULL, 0, "NULL list");
    cell_close(&c, snap);
}

/* ---- errors ---------------------------------------------------------------- */

/* The walk over ids[0..n) stops with CS_ENOTFOUND naming `missing`, after
 * one call per id before it. */
static void assert_missing(cs_snap *snap, const cs_id *ids, size_t n, cs_id missing,
                           size_t before)
{
    seen got;
    seen_init(&got);
    cs_error err = {0};
    int rc = cs_snap_each_task_in(snap, ids, n, see, &got, &err);
    cr_assert_eq(rc, CS_ENOTFOUND, "rc %d: %s", rc, err.msg);
    char want[64];
    snprintf(want, sizeof want, "unknown task %llu", (unsigned long long)missing);
    cr_assert_str_eq(err.msg, want);
    cr_assert_eq(got.n, before, "%zu calls before the missing id, wanted %zu", got.n, before);
    /* The message is cs_snap_task's. */
    cs_arena a;
    cs_arena_init(&a);
    cs_task t;
    cs_error perr = {0};
    cr_assert_eq(cs_snap_task(snap, missing, &a, &t, &perr), CS_ENOTFOUND);
    cr_assert_str_eq(perr.msg, err.msg);
    cs_arena_free(&a);
    seen_free(&got);
}

static void check_missing(cs_snap *snap, const cell *c)
{
    const cs_id *all = c->ids;
    cs_id first = all[0], last = all[c->n - 1];
    /* Job 2's single task is followed by a gap up to job 3's first task. */
    cs_id j2 = cs_task_id(c->job[1], 0), gap = cs_task_id(c->job[1], 1);
    cs_id j3 = cs_task_id(c->job[2], 0);
    /* In a gap, reached by a step from the id before (whose next key is past it). */
    assert_missing(snap, (cs_id[]){first, j2, gap, j3}, 4, gap, 2);
    /* In a gap, after a search. */
    assert_missing(snap, (cs_id[]){first, gap + 5, j3}, 3, gap + 5, 1);
    /* Before the first key, and past the last. */
    assert_missing(snap, (cs_id[]){first - 1, first}, 2, first - 1, 0);
    assert_missing(snap, (cs_id[]){j3, last, last + 1}, 3, last + 1, 2);
    /* An id of a job that does not exist. */
    cs_id none = cs_task_id(c->job[3] + 1, 0);
    assert_missing(snap, (cs_id[]){none}, 1, none, 0);
}

Test(store_ids, missing_id_is_not_found_naming_it)
{
    cell c;
    cs_snap *snap = cell_open(&c);
    check_missing(snap, &c);
    cell_close(&c, snap);
}

/* A list out of order, or with a repeat, is refused before any callback,
 * naming the position. */
static void assert_unsorted(cs_snap *snap, const cs_id *ids, size_t n, const char *position)
{
    seen got;
    seen_init(&got);
    cs_error err = {0};
    int rc = cs_snap_each_task_in(snap, ids, n, see, &got, &err);
    cr_assert_eq(rc, CS_EINVAL, "rc %d: %s", rc, err.msg);
    cr_assert(strstr(err.msg, position) != NULL, "message '%s' lacks '%s'", err.msg, position);
    cr_assert(strstr(err.msg, "ascending") != NULL, "message '%s'", err.msg);
    cr_assert_eq(got.n, 0, "%zu callbacks before refusing the list", got.n);
    seen_free(&got);
}

Test(store_ids, unsorted_or_repeated_ids_are_invalid)
{
    cell c;
    cs_snap *snap = cell_open(&c);
    const cs_id *a = c.ids;
    assert_unsorted(snap, (cs_id[]){a[0], a[5], a[3]}, 3, "position 2");
    assert_unsorted(snap, (cs_id[]){a[1], a[0]}, 2, "position 1");
    assert_unsorted(snap, (cs_id[]){a[0], a[1], a[2], a[2], a[9]}, 5, "position 3");
    /* Even when every id exists and a prefix would have been walked. */
    assert_unsorted(snap, (cs_id[]){a[10], a[11], a[12], a[13], a[649], a[14]}, 6,
                    "position 5");
    cell_close(&c, snap);
}

Test(store_ids, callback_stops_the_walk_with_its_value)
{
    cell c;
    cs_snap *snap = cell_open(&c);
    size_t stops[] = {1, 5, 300, c.n};
    for (size_t i = 0; i < sizeof stops / sizeof *stops; i++) {
        seen got;
        seen_init(&got);
        got.stop_after = stops[i];
        cs_error err = {0};
        cr_assert_eq(cs_snap_each_task_in(snap, c.ids, c.n, see, &got, &err), STOP, "%s", err.msg);
        cr_assert_eq(got.n, stops[i], "%zu calls, stopped at %zu", got.n, stops[i]);
        seen_free(&got);
    }
    cell_close(&c, snap);
}

/* ---- in a write transaction ------------------------------------------------ */

/* Change every third task (and the gap-adjacent single task of job 2) in
 * the write transaction, without committing. Returns how many. */
static size_t change_some(cs_wtxn *w, const cell *c)
{
    cs_snap *snap = cs_wtxn_snap(w);
    cs_arena a;
    cs_arena_init(&a);
    size_t changed = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (i % 3 != 0 && cs_task_job(c->ids[i]) != c->job[1])
            continue;
        cs_task old, t;
        cs_error err = {0};
        cs_arena_reset(&a);
        cr_assert_eq(cs_snap_task(snap, c->ids[i], &a, &old, &err), CS_OK, "%s", err.msg);
        t = old;
        t.attempts += 7;
        t.reason = "changed in the transaction";
        cr_assert_eq(cs_wtxn_put_task(w, &old, &t, &err), CS_OK, "%s", err.msg);
        changed++;
    }
    cs_arena_free(&a);
    return changed;
}

static int count_changed(void *ctx, const cs_task *t)
{
    *(size_t *)ctx += strcmp(t->reason, "changed in the transaction") == 0;
    return 0;
}

Test(store_ids, write_transaction_walk_sees_its_own_writes)
{
    cell c;
    cell_build(&c);
    cs_wtxn *w;
    cs_error err = {0};
    cr_assert_eq(cs_wtxn_begin(c.t.s, &w, &err), CS_OK, "%s", err.msg);
    size_t changed = change_some(w, &c);
    cs_snap *snap = cs_wtxn_snap(w);

    /* The walk sees every uncommitted change... */
    size_t walked = 0;
    cr_assert_eq(cs_snap_each_task_in(snap, c.ids, c.n, count_changed, &walked, &err), CS_OK,
                 "%s", err.msg);
    cr_assert_eq(walked, changed, "walk saw %zu changed tasks of %zu", walked, changed);
    /* ...and agrees with the point reads there, its cursor left wherever the
     * writes and reads before it put the transaction's tasks cursor. */
    check_subsets(snap, c.ids, c.n, 77, 10);
    check_missing(snap, &c);
    assert_unsorted(snap, (cs_id[]){c.ids[2], c.ids[1]}, 2, "position 1");

    /* A callback that reads another task moves the shared cursor between
     * steps: the walk still gives each listed record. */
    seen got, want;
    seen_init(&got);
    got.snap = snap;
    got.probe = c.ids[c.n / 2];
    cr_assert_eq(cs_snap_each_task_in(snap, c.ids, c.n, see, &got, &err), CS_OK, "%s", err.msg);
    expect(snap, c.ids, c.n, &want);
    cr_assert_eq(got.n, c.n);
    cr_assert_eq(got.enc.size, want.enc.size);
    cr_assert(memcmp(got.enc.data, want.enc.data, got.enc.size) == 0,
              "records read with a moving cursor differ from the point reads");
    seen_free(&got);
    seen_free(&want);

    /* A callback that writes each task back through the same cursor: every
     * listed task is visited once, in order, and written once. */
    uint32_t *attempts = malloc(c.n * sizeof *attempts);
    cr_assert_not_null(attempts);
    cs_arena a;
    cs_arena_init(&a);
    cs_task t;
    for (size_t i = 0; i < c.n; i++) {
        cr_assert_eq(cs_snap_task(snap, c.ids[i], &a, &t, &err), CS_OK, "%s", err.msg);
        attempts[i] = t.attempts;
    }
    seen_init(&got);
    got.bump = w;
    cr_assert_eq(cs_snap_each_task_in(snap, c.ids, c.n, see, &got, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(got.n, c.n);
    cr_assert(memcmp(got.ids, c.ids, c.n * sizeof *c.ids) == 0);
    for (size_t i = 0; i < c.n; i++) {
        cs_arena_reset(&a);
        cr_assert_eq(cs_snap_task(snap, c.ids[i], &a, &t, &err), CS_OK, "%s", err.msg);
        cr_assert_eq(t.attempts, attempts[i] + 1, "task %llu: %u attempts, wanted %u",
                     (unsigned long long)c.ids[i], t.attempts, attempts[i] + 1);
    }
    cs_arena_free(&a);
    free(attempts);
    seen_free(&got);
    cs_wtxn_abort(w);

    /* Nothing of it was committed. */
    cr_assert_eq(cs_snap_open(c.t.s, &snap, &err), CS_OK, "%s", err.msg);
    walked = 0;
    cr_assert_eq(cs_snap_each_task_in(snap, c.ids, c.n, count_changed, &walked, &err), CS_OK,
                 "%s", err.msg);
    cr_assert_eq(walked, 0);
    cell_close(&c, snap);
}
