/* test_store.c — the LMDB store (cellstate/store.h): open and schema,
 * corrupt records, snapshots, iteration, the commit log, changes since a
 * version, compaction and idempotency records, record versions, names.
 *
 * Records are written the only way the cell allows, through txn/ (ops and
 * commits); the raw LMDB environment is opened directly only to damage a
 * store on purpose, with the store closed.
 */
#include <criterion/criterion.h>

#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cellstate/be.h"
#include "tests/support.h"
#include "txn/command.h"

/* ---- helpers ------------------------------------------------------------ */

static cs_snap *snap_of(cs_store *s)
{
    cs_snap *snap;
    cs_error err = {0};
    cr_assert_eq(cs_snap_open(s, &snap, &err), CS_OK, "%s", err.msg);
    return snap;
}

/* Commit one claim (fine, incremental) of task on machine with `cpu`, `mem`;
 * `r` is initialised here and freed by the caller. Returns the rc. */
static int claim(cs_store *s, uint64_t sched, uint64_t req, cs_id task, cs_id machine, int64_t cpu,
                 int64_t mem, cs_txn_result *r, cs_error *err)
{
    cs_txn tx;
    cs_txn_init(&tx, sched, req, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    cs_res res = {cpu, mem, 0};
    cr_assert_eq(cs_txn_add_claim(&tx, task, machine, &res, NULL, 0, 0), CS_OK);
    cs_txn_result_init(r);
    int rc = cs_commit(s, &tx, r, err);
    cs_txn_free(&tx);
    return rc;
}

/* A claim that must commit. */
static void place(cs_store *s, uint64_t sched, uint64_t req, cs_id task, cs_id machine,
                  int64_t cpu, int64_t mem)
{
    cs_txn_result r;
    cs_error err = {0};
    cr_assert_eq(claim(s, sched, req, task, machine, cpu, mem, &r, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(r.committed, 1, "claim of task %llu on machine %llu: outcome %s",
                 (unsigned long long)task, (unsigned long long)machine,
                 cs_outcome_str(r.claims[0]));
    cs_txn_result_free(&r);
}

/* Open the store's LMDB environment directly (the store must be closed),
 * put key -> val into database `db`, commit and close. */
static void raw_put(const char *dir, const char *db, const void *key, size_t klen, const void *val,
                    size_t vlen)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    cr_assert_eq(mdb_env_create(&env), 0);
    cr_assert_eq(mdb_env_set_maxdbs(env, 16), 0);
    cr_assert_eq(mdb_env_set_mapsize(env, (size_t)256 << 20), 0);
    int rc = mdb_env_open(env, dir, 0, 0644);
    cr_assert_eq(rc, 0, "mdb_env_open %s: %s", dir, mdb_strerror(rc));
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    rc = mdb_dbi_open(txn, db, 0, &dbi);
    cr_assert_eq(rc, 0, "mdb_dbi_open %s: %s", db, mdb_strerror(rc));
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    cr_assert_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

/* Close the store so that raw_put may open the environment. */
static void close_for_raw(ts_store *t)
{
    cs_store_close(t->s);
    t->s = NULL;
}

/* ---- id collectors for the iteration callbacks ------------------------- */

typedef struct seen {
    cs_id ids[1024];
    size_t n;
    size_t stop_at; /* return `stop_with` when visiting record number stop_at (1-based) */
    int stop_with;
} seen;

static int seen_add(seen *s, cs_id id)
{
    cr_assert_lt(s->n, sizeof s->ids / sizeof s->ids[0]);
    s->ids[s->n++] = id;
    return s->stop_at != 0 && s->n == s->stop_at ? s->stop_with : 0;
}
static int see_machine(void *ctx, const cs_machine *m) { return seen_add(ctx, m->id); }
static int see_job(void *ctx, const cs_job *j) { return seen_add(ctx, j->id); }
static int see_task(void *ctx, const cs_task *t) { return seen_add(ctx, t->id); }

static void ids_are(const seen *s, const cs_id *want, size_t n, const char *what)
{
    cr_assert_eq(s->n, n, "%s: visited %zu records, expected %zu", what, s->n, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(s->ids[i], want[i], "%s: record %zu is %llu, expected %llu", what, i,
                     (unsigned long long)s->ids[i], (unsigned long long)want[i]);
}

static void changes_are(const cs_changes *c, cs_kind kind, const cs_id *want, size_t n)
{
    static const char *const names[] = {"machines", "jobs", "tasks"};
    cr_assert_eq(c->n[kind], n, "%s changed: %zu ids, expected %zu", names[kind], c->n[kind], n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(c->ids[kind][i], want[i], "%s changed: id %zu is %llu, expected %llu",
                     names[kind], i, (unsigned long long)c->ids[kind][i],
                     (unsigned long long)want[i]);
}

/* ======================================================================= */
/* open, reopen, schema                                                     */

Test(store, open_creates_and_reopen_keeps_data)
{
    ts_store t;
    ts_store_create(&t);
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "%s/data.mdb", t.dir);
    cr_assert_eq(stat(path, &st), 0, "open did not create %s", path);

    cs_snap *snap = snap_of(t.s);
    cr_assert_eq(cs_snap_version(snap), 0);
    cr_assert_eq(cs_snap_floor(snap), 0);
    cs_snap_close(snap);

    cs_id m1 = ts_machine(t.s, "m1", 4000, 8192, 1000, 0, 0, NULL, 0);
    cs_id j1 = ts_job(t.s, "web", CS_JOB_SERVICE, 5, 2, 100, 100, 0, NULL, 0);
    cr_assert_eq(ts_version(t.s), 2);
    uint8_t *before, *after;
    size_t nbefore, nafter;
    ts_dump(t.s, &before, &nbefore);

    ts_store_reopen(&t);
    cr_assert_eq(ts_version(t.s), 2, "reopen lost the version");
    ts_dump(t.s, &after, &nafter);
    cr_assert_eq(nafter, nbefore);
    cr_assert_arr_eq(after, before, nbefore, "reopen changed the store");

    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};
    snap = snap_of(t.s);
    cs_machine m;
    cr_assert_eq(cs_snap_machine_by_name(snap, "m1", &a, &m, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(m.id, m1);
    cs_job j;
    cr_assert_eq(cs_snap_job(snap, j1, &a, &j, &err), CS_OK, "%s", err.msg);
    cr_assert_str_eq(j.name, "web");
    cs_snap_close(snap);

    /* id counters survive too */
    cr_assert_eq(ts_machine(t.s, "m2", 1, 1, 1, 0, 0, NULL, 0), m1 + 1);
    cr_assert_eq(ts_job(t.s, "batch", CS_JOB_BATCH, 0, 1, 1, 1, 0, NULL, 0), j1 + 1);
    cr_assert_eq(ts_version(t.s), 4);

    free(before);
    free(after);
    cs_arena_free(&a);
    ts_store_destroy(&t);
}

Test(store, other_schema_version_is_refused)
{
    ts_store t;
    ts_store_create(&t);
    ts_machine(t.s, "m1", 1, 1, 1, 0, 0, NULL, 0);
    close_for_raw(&t);

    uint8_t v[8];
    cs_be64_put(v, 999);
    raw_put(t.dir, "meta", "schema", 6, v, 8);

    cs_store *s = NULL;
    cs_error err = {0};
    cs_store_opts o = {.map_size = (size_t)256 << 20, .nosync = true};
    int rc = cs_store_open(t.dir, &o, &s, &err);
    cr_assert_eq(rc, CS_ESCHEMA, "rc %d: %s", rc, err.msg);
    cr_assert_eq(err.code, CS_ESCHEMA);
    cr_assert_null(s);
    cr_assert(strstr(err.msg, "999") != NULL, "message '%s' lacks the store's version", err.msg);
    char mine[32];
    snprintf(mine, sizeof mine, "%d", CS_SCHEMA_VERSION);
    cr_assert(strstr(err.msg, "schema") != NULL && strstr(err.msg, mine) != NULL,
              "message '%s' lacks the build's version", err.msg);
    cr_assert(strstr(err.msg, t.dir) != NULL, "message '%s' lacks the path", err.msg);

    /* The refusal changed nothing: with the right schema back it opens, data intact. */
    cs_be64_put(v, CS_SCHEMA_VERSION);
    raw_put(t.dir, "meta", "schema", 6, v, 8);
    ts_store_reopen(&t);
    cr_assert_eq(ts_version(t.s), 1);
    ts_store_destroy(&t);
}

Test(store, nonexistent_directory_names_the_path)
{
    char dir[256], missing[320];
    cr_assert_eq(ts_mkdtemp(dir, sizeof dir), 0);
    snprintf(missing, sizeof missing, "%s/no/such/dir", dir);
    cs_store *s = NULL;
    cs_error err = {0};
    int rc = cs_store_open(missing, NULL, &s, &err);
    cr_assert_neq(rc, CS_OK);
    cr_assert_eq(err.code, rc);
    cr_assert_null(s);
    cr_assert(strstr(err.msg, missing) != NULL, "message '%s' lacks the path", err.msg);
    ts_rmtree(dir);
}

/* ======================================================================= */
/* corrupt records                                                          */

static int count_machine(void *ctx, const cs_machine *m)
{
    (void)m;
    ++*(int *)ctx;
    return 0;
}

Test(store, corrupt_machine_record_is_reported)
{
    ts_store t;
    ts_store_create(&t);
    cs_id m1 = ts_machine(t.s, "m1", 1000, 1000, 0, 0, 0, NULL, 0);
    cs_id m2 = ts_machine(t.s, "m2", 1000, 1000, 0, 0, 0, NULL, 0);
    ts_machine(t.s, "m3", 1000, 1000, 0, 0, 0, NULL, 0);
    cr_assert_eq(m2, 2);
    close_for_raw(&t);
    uint8_t key[8];
    cs_be64_put(key, m2);
    const uint8_t garbage[] = {0x9d, 0x02, 0xa2, 'm', '2', 0xc1, 0xff, 0x00, 0x13};
    raw_put(t.dir, "machines", key, 8, garbage, sizeof garbage);
    ts_store_reopen(&t);

    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};
    cs_snap *snap = snap_of(t.s);
    cs_machine m;
    int rc = cs_snap_machine(snap, m2, &a, &m, &err);
    cr_assert_eq(rc, CS_ECORRUPT, "rc %d: %s", rc, err.msg);
    cr_assert(strstr(err.msg, "machine 2") != NULL, "message '%s' lacks the machine id", err.msg);
    cr_assert_eq(cs_snap_machine(snap, m1, &a, &m, &err), CS_OK, "the neighbour: %s", err.msg);

    cs_error_clear(&err);
    rc = cs_snap_machine_by_name(snap, "m2", &a, &m, &err);
    cr_assert_eq(rc, CS_ECORRUPT, "by name: rc %d: %s", rc, err.msg);

    int visited = 0;
    cs_error_clear(&err);
    rc = cs_snap_each_machine(snap, count_machine, &visited, &err);
    cr_assert_eq(rc, CS_ECORRUPT, "iteration: rc %d: %s", rc, err.msg);
    cr_assert(strstr(err.msg, "machine 2") != NULL, "iteration message '%s' lacks the id",
              err.msg);
    cr_assert_eq(visited, 1, "iteration visited %d machines before the corrupt one", visited);
    cs_snap_close(snap);

    /* An operation on it fails cleanly and writes nothing. */
    uint64_t v = ts_version(t.s);
    cs_error_clear(&err);
    rc = cs_op_machine_state(t.s, m2, CS_MACHINE_DRAINING, NULL, &err);
    cr_assert_eq(rc, CS_ECORRUPT, "rc %d: %s", rc, err.msg);
    cr_assert_eq(ts_version(t.s), v);

    cs_arena_free(&a);
    ts_store_destroy(&t);
}

/* Every task record is read at open (the machines' allocations are derived
 * from them): a corrupt one stops the open with a message naming it, rather
 * than let a machine look emptier than it is. */
Test(store, corrupt_task_record_is_reported)
{
    ts_store t;
    ts_store_create(&t);
    cs_id j = ts_job(t.s, "j", CS_JOB_BATCH, 0, 3, 1, 1, 0, NULL, 0);
    close_for_raw(&t);
    uint8_t key[8];
    cs_be64_put(key, cs_task_id(j, 1));
    const uint8_t garbage[] = {0x9c, 0xcf, 0x01};
    raw_put(t.dir, "tasks", key, 8, garbage, sizeof garbage);

    cs_error err = {0};
    cs_store_opts o = {.nosync = true, .map_size = (size_t)256 << 20};
    int rc = cs_store_open(t.dir, &o, &t.s, &err);
    cr_assert_eq(rc, CS_ECORRUPT, "rc %d: %s", rc, err.msg);
    char want[64];
    snprintf(want, sizeof want, "task %llu", (unsigned long long)cs_task_id(j, 1));
    cr_assert(strstr(err.msg, want) != NULL, "message '%s' lacks '%s'", err.msg, want);
    cr_assert(strstr(err.msg, "truncated") != NULL, "message '%s'", err.msg);
    t.s = NULL;
    ts_store_destroy(&t);
}

/* Log entries are read in place at open (each machine's last change and
 * the idempotency index come from them): any malformed one stops the open,
 * named, whatever part of it is wrong. */
Test(store, corrupt_log_entries_are_reported)
{
    static const struct {
        const char *what;
        const char *bytes;
        size_t len;
        const char *says;
    } bad[] = {
        {"truncated", "\x94\x01\xc4\x05" "ab", 6, "is corrupt"},
        {"three fields", "\x93\x01\xc4\x00\x90", 5, "is corrupt"},
        {"cmd as a string", "\x94\x01\xa1x\x90\xc0", 6, "is corrupt"},
        {"trailing bytes", "\x94\x01\xc4\x00\x90\xc0\x01", 7, "is corrupt"},
        {"bad request", "\x94\x01\xc4\x00\x90\x92\x01\x02", 8, "is corrupt"},
        {"odd touched", "\x94\x01\xc4\x00\x91\x00\xc0", 7, "touched key is corrupt"},
        {"touched kind 7", "\x94\x01\xc4\x00\x92\x07\x01\xc0", 8, "touched key is corrupt"},
        {"touched id as a string", "\x94\x01\xc4\x00\x92\x00\xa1x\xc0", 9,
         "touched key is corrupt"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ts_store t;
        ts_store_create(&t);
        ts_machine(t.s, "m1", 1000, 1000, 0, 0, 0, NULL, 0);
        uint64_t v = ts_version(t.s);
        close_for_raw(&t);
        uint8_t key[12];
        cs_be64_put(key, v + 1);
        cs_be32_put(key + 8, 0);
        raw_put(t.dir, "log", key, 12, bad[i].bytes, bad[i].len);
        cs_error err = {0};
        cs_store_opts o = {.nosync = true, .map_size = (size_t)256 << 20};
        int rc = cs_store_open(t.dir, &o, &t.s, &err);
        cr_assert_eq(rc, CS_ECORRUPT, "%s: rc %d: %s", bad[i].what, rc, err.msg);
        char want[64];
        snprintf(want, sizeof want, "log entry %llu.0", (unsigned long long)(v + 1));
        cr_assert(strstr(err.msg, want) != NULL && strstr(err.msg, bad[i].says) != NULL,
                  "%s: message '%s' lacks '%s' or '%s'", bad[i].what, err.msg, want, bad[i].says);
        t.s = NULL;
        ts_store_destroy(&t);
    }
}

/* ======================================================================= */
/* snapshots                                                                */

Test(store, snapshot_sees_its_version_only)
{
    ts_store t;
    ts_store_create(&t);
    cs_id m1 = ts_machine(t.s, "m1", 1000, 1000, 0, 0, 0, NULL, 0);
    cs_snap *old = snap_of(t.s);
    cr_assert_eq(cs_snap_version(old), 1);

    cs_id m2 = ts_machine(t.s, "m2", 1000, 1000, 0, 0, 0, NULL, 0);
    ts_machine(t.s, "m1", 2000, 1000, 0, 0, 0, NULL, 0); /* update m1 */
    cs_id j = ts_job(t.s, "j", CS_JOB_BATCH, 0, 1, 1, 1, 0, NULL, 0);
    cr_assert_eq(ts_version(t.s), 4);

    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};
    cs_machine m;
    cr_assert_eq(cs_snap_version(old), 1, "an open snapshot's version moved");
    cr_assert_eq(cs_snap_machine(old, m1, &a, &m, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(m.capacity.cpu, 1000, "the old snapshot sees the update");
    cr_assert_eq(m.seq, 1);
    cr_assert_eq(m.version, 1);
    cr_assert_eq(cs_snap_machine(old, m2, &a, &m, &err), CS_ENOTFOUND, "the old snapshot sees m2");
    cr_assert_eq(cs_snap_machine_by_name(old, "m2", &a, &m, &err), CS_ENOTFOUND);
    cs_job jj;
    cr_assert_eq(cs_snap_job(old, j, &a, &jj, &err), CS_ENOTFOUND);
    int n = 0;
    cr_assert_eq(cs_snap_each_machine(old, count_machine, &n, &err), CS_OK);
    cr_assert_eq(n, 1);
    cs_changes c;
    cr_assert_eq(cs_snap_changes_since(old, 0, &c, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(c.version, 1);
    cr_assert_eq(c.n[CS_KIND_MACHINE], 1, "the old snapshot's log has later entries");
    cr_assert_eq(c.n[CS_KIND_JOB], 0);
    cs_changes_free(&c);

    cs_snap *now = snap_of(t.s);
    cr_assert_eq(cs_snap_version(now), 4);
    cr_assert_eq(cs_snap_machine(now, m1, &a, &m, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(m.capacity.cpu, 2000);
    cr_assert_eq(cs_snap_machine(now, m2, &a, &m, &err), CS_OK, "%s", err.msg);
    cs_snap_close(now);
    cs_snap_close(old);
    cs_arena_free(&a);
    ts_store_destroy(&t);
}

/* ======================================================================= */
/* iteration                                                                */

Test(store, iteration_in_id_order_and_stops)
{
    ts_store t;
    ts_store_create(&t);
    /* more than 256 machines: a byte-order mistake in the keys would show */
    enum { NM = 260 };
    cs_id want[NM];
    for (int i = 0; i < NM; i++) {
        char name[16];
        /* names sort differently from ids */
        snprintf(name, sizeof name, "m%d", NM - i);
        want[i] = ts_machine(t.s, name, 4000, 4000, 0, 0, 0, NULL, 0);
        cr_assert_eq(want[i], (cs_id)i + 1);
    }
    cs_id j1 = ts_job(t.s, "big", CS_JOB_BATCH, 0, 300, 10, 10, 0, NULL, 0);
    cs_id j2 = ts_job(t.s, "small", CS_JOB_BATCH, 0, 2, 10, 10, 0, NULL, 0);
    cs_id j3 = ts_job(t.s, "empty", CS_JOB_BATCH, 0, 0, 10, 10, 0, NULL, 0);

    /* place tasks on machine 7, out of id order */
    place(t.s, 1, 1, cs_task_id(j2, 1), 7, 10, 10);
    place(t.s, 1, 2, cs_task_id(j1, 299), 7, 10, 10);
    place(t.s, 1, 3, cs_task_id(j1, 5), 7, 10, 10);
    place(t.s, 1, 4, cs_task_id(j1, 6), 8, 10, 10);

    cs_error err = {0};
    cs_snap *snap = snap_of(t.s);

    seen s = {0};
    cr_assert_eq(cs_snap_each_machine(snap, see_machine, &s, &err), CS_OK, "%s", err.msg);
    ids_are(&s, want, NM, "machines");

    s = (seen){0};
    cr_assert_eq(cs_snap_each_job(snap, see_job, &s, &err), CS_OK, "%s", err.msg);
    const cs_id jobs[] = {j1, j2, j3};
    ids_are(&s, jobs, 3, "jobs");

    cs_id tasks[302];
    for (uint32_t i = 0; i < 300; i++)
        tasks[i] = cs_task_id(j1, i);
    tasks[300] = cs_task_id(j2, 0);
    tasks[301] = cs_task_id(j2, 1);
    s = (seen){0};
    cr_assert_eq(cs_snap_each_task(snap, see_task, &s, &err), CS_OK, "%s", err.msg);
    ids_are(&s, tasks, 302, "tasks");

    s = (seen){0};
    cr_assert_eq(cs_snap_each_task_of_job(snap, j1, see_task, &s, &err), CS_OK, "%s", err.msg);
    ids_are(&s, tasks, 300, "tasks of job 1");
    s = (seen){0};
    cr_assert_eq(cs_snap_each_task_of_job(snap, j2, see_task, &s, &err), CS_OK, "%s", err.msg);
    ids_are(&s, tasks + 300, 2, "tasks of job 2");
    s = (seen){0};
    cr_assert_eq(cs_snap_each_task_of_job(snap, j3, see_task, &s, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(s.n, 0, "a job of no tasks visited %zu", s.n);
    cr_assert_eq(cs_snap_each_task_of_job(snap, 99, see_task, &s, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(s.n, 0, "an unknown job visited %zu", s.n);

    s = (seen){0};
    cr_assert_eq(cs_snap_each_task_on_machine(snap, 7, see_task, &s, &err), CS_OK, "%s", err.msg);
    const cs_id on7[] = {cs_task_id(j1, 5), cs_task_id(j1, 299), cs_task_id(j2, 1)};
    ids_are(&s, on7, 3, "tasks on machine 7");
    s = (seen){0};
    cr_assert_eq(cs_snap_each_task_on_machine(snap, 8, see_task, &s, &err), CS_OK, "%s", err.msg);
    const cs_id on8[] = {cs_task_id(j1, 6)};
    ids_are(&s, on8, 1, "tasks on machine 8");
    s = (seen){0};
    cr_assert_eq(cs_snap_each_task_on_machine(snap, 9, see_task, &s, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(s.n, 0);
    cr_assert_eq(cs_snap_each_task_on_machine(snap, 9999, see_task, &s, &err), CS_OK, "%s",
                 err.msg);
    cr_assert_eq(s.n, 0);

    /* A callback's non-zero value stops the walk and comes back. */
    s = (seen){.stop_at = 2, .stop_with = 42};
    cr_assert_eq(cs_snap_each_machine(snap, see_machine, &s, &err), 42);
    cr_assert_eq(s.n, 2);
    s = (seen){.stop_at = 1, .stop_with = -3};
    cr_assert_eq(cs_snap_each_job(snap, see_job, &s, &err), -3);
    cr_assert_eq(s.n, 1);
    s = (seen){.stop_at = 3, .stop_with = 7};
    cr_assert_eq(cs_snap_each_task(snap, see_task, &s, &err), 7);
    cr_assert_eq(s.n, 3);
    s = (seen){.stop_at = 2, .stop_with = 8};
    cr_assert_eq(cs_snap_each_task_of_job(snap, j2, see_task, &s, &err), 8);
    cr_assert_eq(s.n, 2);
    s = (seen){.stop_at = 2, .stop_with = 9};
    cr_assert_eq(cs_snap_each_task_on_machine(snap, 7, see_task, &s, &err), 9);
    cr_assert_eq(s.n, 2);

    cs_snap_close(snap);
    ts_store_destroy(&t);
}

/* ======================================================================= */
/* changes since a version, compaction                                      */

/* The cell used by the log tests: versions
 *   1 m1, 2 m2, 3 job 1 (2 tasks), 4 job 2 (1 task),
 *   5 claim of task (1,0) on m1 (sched 1, req 1),
 *   6 m2 updated. */
static void build_history(cs_store *s)
{
    cr_assert_eq(ts_machine(s, "m1", 4000, 4000, 0, 0, 0, NULL, 0), 1);
    cr_assert_eq(ts_machine(s, "m2", 4000, 4000, 0, 0, 0, NULL, 0), 2);
    cr_assert_eq(ts_job(s, "j1", CS_JOB_BATCH, 0, 2, 1000, 1000, 0, NULL, 0), 1);
    cr_assert_eq(ts_job(s, "j2", CS_JOB_BATCH, 0, 1, 1000, 1000, 0, NULL, 0), 2);
    place(s, 1, 1, cs_task_id(1, 0), 1, 1000, 1000);
    ts_machine(s, "m2", 5000, 4000, 0, 0, 0, NULL, 0);
    cr_assert_eq(ts_version(s), 6);
}

Test(store, changes_since_lists_touched_ids)
{
    ts_store t;
    ts_store_create(&t);
    build_history(t.s);
    cs_error err = {0};
    cs_snap *snap = snap_of(t.s);
    cs_changes c;

    cr_assert_eq(cs_snap_changes_since(snap, 0, &c, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(c.since, 0);
    cr_assert_eq(c.version, 6);
    const cs_id m12[] = {1, 2}, j12[] = {1, 2};
    const cs_id all_tasks[] = {cs_task_id(1, 0), cs_task_id(1, 1), cs_task_id(2, 0)};
    changes_are(&c, CS_KIND_MACHINE, m12, 2);
    changes_are(&c, CS_KIND_JOB, j12, 2);
    changes_are(&c, CS_KIND_TASK, all_tasks, 3);
    cs_changes_free(&c);

    /* since 2: m1 again (claim) and m2 (update), deduplicated and sorted */
    cr_assert_eq(cs_snap_changes_since(snap, 2, &c, &err), CS_OK, "%s", err.msg);
    changes_are(&c, CS_KIND_MACHINE, m12, 2);
    changes_are(&c, CS_KIND_JOB, j12, 2);
    changes_are(&c, CS_KIND_TASK, all_tasks, 3);
    cs_changes_free(&c);

    cr_assert_eq(cs_snap_changes_since(snap, 3, &c, &err), CS_OK, "%s", err.msg);
    const cs_id j2[] = {2};
    const cs_id t_since3[] = {cs_task_id(1, 0), cs_task_id(2, 0)};
    changes_are(&c, CS_KIND_MACHINE, m12, 2);
    changes_are(&c, CS_KIND_JOB, j2, 1);
    changes_are(&c, CS_KIND_TASK, t_since3, 2);
    cs_changes_free(&c);

    cr_assert_eq(cs_snap_changes_since(snap, 4, &c, &err), CS_OK, "%s", err.msg);
    const cs_id t10[] = {cs_task_id(1, 0)};
    changes_are(&c, CS_KIND_MACHINE, m12, 2);
    changes_are(&c, CS_KIND_JOB, NULL, 0);
    changes_are(&c, CS_KIND_TASK, t10, 1);
    cs_changes_free(&c);

    cr_assert_eq(cs_snap_changes_since(snap, 5, &c, &err), CS_OK, "%s", err.msg);
    const cs_id m2[] = {2};
    changes_are(&c, CS_KIND_MACHINE, m2, 1);
    changes_are(&c, CS_KIND_JOB, NULL, 0);
    changes_are(&c, CS_KIND_TASK, NULL, 0);
    cs_changes_free(&c);

    cr_assert_eq(cs_snap_changes_since(snap, 6, &c, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(c.n[CS_KIND_MACHINE] + c.n[CS_KIND_JOB] + c.n[CS_KIND_TASK], 0,
                 "changes since the current version are not empty");
    cr_assert_eq(c.version, 6);
    cs_changes_free(&c);
    cs_snap_close(snap);

    /* A transaction that changed nothing adds no ids. */
    cs_txn_result r;
    cr_assert_eq(claim(t.s, 1, 2, cs_task_id(1, 0), 2, 1000, 1000, &r, &err), CS_OK, "%s",
                 err.msg);
    cr_assert_eq(r.claims[0], CS_CONFLICT_TASK_NOT_PENDING);
    cs_txn_result_free(&r);
    snap = snap_of(t.s);
    cr_assert_eq(cs_snap_version(snap), 6);
    cr_assert_eq(cs_snap_changes_since(snap, 6, &c, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(c.n[CS_KIND_MACHINE] + c.n[CS_KIND_JOB] + c.n[CS_KIND_TASK], 0);
    cs_changes_free(&c);
    cs_snap_close(snap);
    ts_store_destroy(&t);
}

Test(store, compaction_sets_the_floor)
{
    ts_store t;
    ts_store_create(&t);
    build_history(t.s);
    cs_error err = {0};
    cr_assert_eq(cs_store_compact(t.s, 3, &err), CS_OK, "%s", err.msg);

    cs_snap *snap = snap_of(t.s);
    cr_assert_eq(cs_snap_floor(snap), 3);
    cs_changes c;
    for (uint64_t since = 0; since < 3; since++) {
        cs_error_clear(&err);
        int rc = cs_snap_changes_since(snap, since, &c, &err);
        cr_assert_eq(rc, CS_ECOMPACTED, "since %llu: rc %d", (unsigned long long)since, rc);
        cr_assert_eq(err.code, CS_ECOMPACTED);
        cr_assert(err.msg[0] != '\0');
        cr_assert_eq(c.n[CS_KIND_MACHINE] + c.n[CS_KIND_JOB] + c.n[CS_KIND_TASK], 0);
        cs_changes_free(&c);
    }
    cr_assert_eq(cs_snap_changes_since(snap, 3, &c, &err), CS_OK, "%s", err.msg);
    const cs_id m12[] = {1, 2}, j2[] = {2};
    const cs_id t_since3[] = {cs_task_id(1, 0), cs_task_id(2, 0)};
    changes_are(&c, CS_KIND_MACHINE, m12, 2);
    changes_are(&c, CS_KIND_JOB, j2, 1);
    changes_are(&c, CS_KIND_TASK, t_since3, 2);
    cs_changes_free(&c);
    cr_assert_eq(cs_snap_changes_since(snap, 5, &c, &err), CS_OK, "%s", err.msg);
    const cs_id m2[] = {2};
    changes_are(&c, CS_KIND_MACHINE, m2, 1);
    cs_changes_free(&c);
    cs_snap_close(snap);

    /* A floor below the current one changes nothing. The records
     * themselves are never touched. */
    uint8_t *before, *after;
    size_t nb, na;
    ts_dump_cell(t.s, &before, &nb);
    cr_assert_eq(cs_store_compact(t.s, 1, &err), CS_OK, "%s", err.msg);
    snap = snap_of(t.s);
    cr_assert_eq(cs_snap_floor(snap), 3);
    cs_snap_close(snap);
    cr_assert_eq(cs_store_compact(t.s, 4, &err), CS_OK, "%s", err.msg);
    snap = snap_of(t.s);
    cr_assert_eq(cs_snap_floor(snap), 4);
    cr_assert_eq(cs_snap_version(snap), 6);
    cr_assert_eq(cs_snap_changes_since(snap, 3, &c, &err), CS_ECOMPACTED);
    cs_changes_free(&c);
    cr_assert_eq(cs_snap_changes_since(snap, 4, &c, &err), CS_OK, "%s", err.msg);
    const cs_id t10[] = {cs_task_id(1, 0)};
    changes_are(&c, CS_KIND_MACHINE, m12, 2);
    changes_are(&c, CS_KIND_JOB, NULL, 0);
    changes_are(&c, CS_KIND_TASK, t10, 1);
    cs_changes_free(&c);
    cs_snap_close(snap);
    ts_dump_cell(t.s, &after, &na);
    cr_assert_eq(na, nb);
    cr_assert_arr_eq(after, before, nb, "compaction changed the cell's records");

    /* The floor survives a reopen, and new commits log above it. */
    ts_store_reopen(&t);
    ts_machine(t.s, "m3", 1, 1, 1, 0, 0, NULL, 0);
    snap = snap_of(t.s);
    cr_assert_eq(cs_snap_floor(snap), 4);
    cr_assert_eq(cs_snap_changes_since(snap, 6, &c, &err), CS_OK, "%s", err.msg);
    const cs_id m3[] = {3};
    changes_are(&c, CS_KIND_MACHINE, m3, 1);
    cs_changes_free(&c);
    cr_assert_eq(cs_snap_changes_since(snap, 3, &c, &err), CS_ECOMPACTED);
    cs_changes_free(&c);
    cs_snap_close(snap);
    free(before);
    free(after);
    ts_store_destroy(&t);
}

/* Only operations, so no idempotency records: see
 * compaction_of_every_idempotency_record for a floor that drops them all. */
Test(store, compaction_floor_is_clamped_to_the_version)
{
    ts_store t;
    ts_store_create(&t);
    ts_machine(t.s, "m1", 1, 1, 1, 0, 0, NULL, 0);
    ts_machine(t.s, "m2", 1, 1, 1, 0, 0, NULL, 0);
    ts_job(t.s, "j", CS_JOB_BATCH, 0, 1, 1, 1, 0, NULL, 0);
    cs_error err = {0};
    cr_assert_eq(cs_store_compact(t.s, 1000, &err), CS_OK, "%s", err.msg);
    cs_snap *snap = snap_of(t.s);
    cr_assert_eq(cs_snap_floor(snap), 3, "floor %llu", (unsigned long long)cs_snap_floor(snap));
    cr_assert_eq(cs_snap_version(snap), 3);
    cs_changes c;
    cr_assert_eq(cs_snap_changes_since(snap, 3, &c, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(c.n[CS_KIND_MACHINE] + c.n[CS_KIND_JOB] + c.n[CS_KIND_TASK], 0);
    cs_changes_free(&c);
    cr_assert_eq(cs_snap_changes_since(snap, 2, &c, &err), CS_ECOMPACTED);
    cs_changes_free(&c);
    cs_snap_close(snap);

    cs_id j2 = ts_job(t.s, "k", CS_JOB_BATCH, 0, 1, 1, 1, 0, NULL, 0);
    snap = snap_of(t.s);
    cr_assert_eq(cs_snap_changes_since(snap, 3, &c, &err), CS_OK, "%s", err.msg);
    const cs_id jk[] = {j2}, tk[] = {cs_task_id(j2, 0)};
    changes_are(&c, CS_KIND_JOB, jk, 1);
    changes_are(&c, CS_KIND_TASK, tk, 1);
    cs_changes_free(&c);
    cs_snap_close(snap);
    ts_store_destroy(&t);
}

/* Commit the claim of build_history again, as (sched 1, req `req`). */
static void recommit(cs_store *s, uint64_t req, cs_txn_result *r)
{
    cs_error err = {0};
    cr_assert_eq(claim(s, 1, req, cs_task_id(1, 0), 1, 1000, 1000, r, &err), CS_OK, "%s",
                 err.msg);
}

Test(store, compaction_drops_idempotency_records)
{
    ts_store t;
    ts_store_create(&t);
    build_history(t.s); /* (1, 1) committed at version 5 */
    /* (1, 2): the same claim again at version 6: conflicts, changes nothing */
    cs_txn_result r;
    recommit(t.s, 2, &r);
    cr_assert(!r.replayed);
    cr_assert_eq(r.claims[0], CS_CONFLICT_TASK_NOT_PENDING);
    cs_txn_result_free(&r);
    /* (1, 3) at version 7: a change */
    place(t.s, 1, 3, cs_task_id(2, 0), 2, 1000, 1000);
    cr_assert_eq(ts_version(t.s), 7);

    /* Before compaction, (1, 1) replays its first result. */
    recommit(t.s, 1, &r);
    cr_assert(r.replayed, "a repeat of (1, 1) was judged again");
    cr_assert_eq(r.committed, 1);
    cr_assert_eq(r.claims[0], CS_COMMITTED);
    cr_assert_eq(r.version, 5);
    cs_txn_result_free(&r);

    cs_error err = {0};
    cr_assert_eq(cs_store_compact(t.s, 6, &err), CS_OK, "%s", err.msg);

    /* At or below the floor: forgotten, so judged again. */
    recommit(t.s, 1, &r);
    cr_assert(!r.replayed, "(1, 1) at version 5 replayed after compaction to 6");
    cr_assert_eq(r.committed, 0);
    cr_assert_eq(r.claims[0], CS_CONFLICT_TASK_NOT_PENDING);
    cs_txn_result_free(&r);
    recommit(t.s, 2, &r);
    cr_assert(!r.replayed, "(1, 2), logged at version 6, replayed after compaction to 6");
    cs_txn_result_free(&r);

    /* Above the floor: still replayed (its first result was a commit; a
     * judgement now would be a conflict). */
    cs_txn tx;
    cs_txn_init(&tx, 1, 3, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    cs_res res = {1000, 1000, 0};
    cs_txn_add_claim(&tx, cs_task_id(2, 0), 2, &res, NULL, 0, 0);
    cs_txn_result_init(&r);
    cr_assert_eq(cs_commit(t.s, &tx, &r, &err), CS_OK, "%s", err.msg);
    cr_assert(r.replayed, "(1, 3) at version 7 was dropped by compaction to 6");
    cr_assert_eq(r.claims[0], CS_COMMITTED);
    cs_txn_result_free(&r);
    cs_txn_free(&tx);
    ts_store_destroy(&t);
}

/* Compaction may drop every idempotency record, the last one included
 * (LMDB leaves a cursor unset after deleting the last record). */
Test(store, compaction_of_every_idempotency_record)
{
    ts_store t;
    ts_store_create(&t);
    build_history(t.s); /* the only request record is (1, 1) at version 5 */
    cs_error err = {0};
    int rc = cs_store_compact(t.s, 6, &err);
    cr_assert_eq(rc, CS_OK, "compacting away the last request record: %s", err.msg);
    cs_snap *snap = snap_of(t.s);
    cr_assert_eq(cs_snap_floor(snap), 6);
    cs_snap_close(snap);
    cs_txn_result r;
    recommit(t.s, 1, &r);
    cr_assert(!r.replayed);
    cs_txn_result_free(&r);
    ts_store_destroy(&t);
}

/* ======================================================================= */
/* the log                                                                  */

typedef struct logged {
    uint64_t version[32];
    uint32_t n[32];
    uint8_t kind[32];
    uint8_t *cmd[32];
    size_t len[32];
    size_t count;
    size_t stop_at;
} logged;

static int log_cb(void *ctx, uint64_t version, uint32_t n, uint8_t kind, const void *cmd,
                  size_t len)
{
    logged *l = ctx;
    cr_assert_lt(l->count, 32);
    size_t i = l->count++;
    l->version[i] = version;
    l->n[i] = n;
    l->kind[i] = kind;
    l->cmd[i] = malloc(len ? len : 1);
    memcpy(l->cmd[i], cmd, len);
    l->len[i] = len;
    return l->stop_at != 0 && l->count == l->stop_at ? 5 : 0;
}

static void logged_free(logged *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->cmd[i]);
    l->count = 0;
}

Test(store, log_entries_in_order_with_kinds)
{
    ts_store t;
    ts_store_create(&t);
    build_history(t.s); /* versions 1..6 */
    cs_error err = {0};
    /* 6.1 and 6.2: transactions whose every claim conflicts */
    cs_txn_result r;
    recommit(t.s, 2, &r);
    cr_assert_eq(r.claims[0], CS_CONFLICT_TASK_NOT_PENDING);
    cr_assert_eq(r.version, 6);
    cs_txn_result_free(&r);
    cr_assert_eq(claim(t.s, 1, 3, cs_task_id(1, 1), 2, 1000, 9000, &r, &err), CS_OK, "%s",
                 err.msg);
    cr_assert_eq(r.claims[0], CS_CONFLICT_MEM);
    cs_txn_result_free(&r);
    cr_assert_eq(ts_version(t.s), 6, "a transaction that changed nothing bumped the version");
    /* 7, 8, 9 */
    cr_assert_eq(cs_op_machine_state(t.s, 2, CS_MACHINE_DRAINING, NULL, &err), CS_OK, "%s",
                 err.msg);
    cr_assert_eq(cs_op_job_kill(t.s, 2, 1000, NULL, &err), CS_OK, "%s", err.msg);
    place(t.s, 1, 4, cs_task_id(1, 1), 1, 1000, 1000);
    /* 9.1: a kill of a killed job changes nothing */
    cr_assert_eq(cs_op_job_kill(t.s, 2, 1000, NULL, &err), CS_OK, "%s", err.msg);

    const uint64_t wv[] = {1, 2, 3, 4, 5, 6, 6, 6, 7, 8, 9, 9};
    const uint32_t wn[] = {0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 1};
    const uint8_t wk[] = {CS_CMD_MACHINE_PUT, CS_CMD_MACHINE_PUT, CS_CMD_JOB_SUBMIT,
                          CS_CMD_JOB_SUBMIT,  CS_CMD_TXN,         CS_CMD_MACHINE_PUT,
                          CS_CMD_TXN,         CS_CMD_TXN,         CS_CMD_MACHINE_STATE,
                          CS_CMD_JOB_KILL,    CS_CMD_TXN,         CS_CMD_JOB_KILL};
    const size_t total = sizeof wv / sizeof wv[0];

    cs_snap *snap = snap_of(t.s);
    cr_assert_eq(cs_snap_version(snap), 9);
    logged l = {0};
    cr_assert_eq(cs_snap_each_log(snap, 0, log_cb, &l, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(l.count, total, "%zu log entries, expected %zu", l.count, total);
    for (size_t i = 0; i < total; i++) {
        cr_assert_eq(l.version[i], wv[i], "entry %zu: version %llu", i,
                     (unsigned long long)l.version[i]);
        cr_assert_eq(l.n[i], wn[i], "entry %zu: n %u", i, l.n[i]);
        cr_assert_eq(l.kind[i], wk[i], "entry %zu: kind %s, expected %s", i,
                     cs_cmd_name(l.kind[i]), cs_cmd_name(wk[i]));
    }
    /* The logged bytes are the command: the first is machine m1's spec. */
    cs_arena a;
    cs_arena_init(&a);
    cs_machine m;
    cr_assert_eq(cs_machine_decode(l.cmd[0], l.len[0], &a, &m, &err), CS_OK, "%s", err.msg);
    cr_assert_str_eq(m.name, "m1");
    cr_assert_eq(m.capacity.cpu, 4000);
    cs_txn tx;
    cs_txn_init(&tx, 0, 0, 0, 0, 0);
    cr_assert_eq(cs_txn_decode(l.cmd[4], l.len[4], &tx, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(tx.sched, 1);
    cr_assert_eq(tx.req, 1);
    cr_assert_eq(tx.nclaims, 1);
    cr_assert_eq(tx.claims[0].task, cs_task_id(1, 0));
    cs_txn_free(&tx);
    cs_arena_free(&a);
    logged_free(&l);

    /* since V: the entries of later versions only */
    cr_assert_eq(cs_snap_each_log(snap, 5, log_cb, &l, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(l.count, total - 5);
    cr_assert_eq(l.version[0], 6);
    cr_assert_eq(l.n[0], 0);
    logged_free(&l);
    /* since the current version: nothing that changed the cell (whether
     * the unchanged (9, 1) belongs here: log_since_includes_unchanged_...) */
    cr_assert_eq(cs_snap_each_log(snap, 9, log_cb, &l, &err), CS_OK, "%s", err.msg);
    for (size_t i = 0; i < l.count; i++)
        cr_assert(l.version[i] == 9 && l.n[i] > 0, "entry %llu.%u after the current version",
                  (unsigned long long)l.version[i], l.n[i]);
    logged_free(&l);

    /* a callback stops the walk */
    l.stop_at = 3;
    cr_assert_eq(cs_snap_each_log(snap, 0, log_cb, &l, &err), 5);
    cr_assert_eq(l.count, 3);
    logged_free(&l);
    cs_snap_close(snap);

    /* after compaction: CS_ECOMPACTED below the floor */
    cr_assert_eq(cs_store_compact(t.s, 4, &err), CS_OK, "%s", err.msg);
    snap = snap_of(t.s);
    l.stop_at = 0;
    cs_error_clear(&err);
    cr_assert_eq(cs_snap_each_log(snap, 3, log_cb, &l, &err), CS_ECOMPACTED);
    cr_assert_eq(l.count, 0);
    cr_assert_eq(cs_snap_each_log(snap, 4, log_cb, &l, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(l.count, total - 4);
    cr_assert_eq(l.version[0], 5);
    logged_free(&l);
    cs_snap_close(snap);
    ts_store_destroy(&t);
}

/* The log is read after (since, 0): entries logged at `since` that changed
 * nothing still carry idempotency records a replica needs. */
Test(store, log_since_includes_unchanged_entries_at_since)
{
    ts_store t;
    ts_store_create(&t);
    build_history(t.s); /* versions 1..6, a replica syncs here */
    cs_txn_result r;
    recommit(t.s, 2, &r); /* logged as (6, 1): changed nothing */
    cr_assert_eq(r.claims[0], CS_CONFLICT_TASK_NOT_PENDING);
    cs_txn_result_free(&r);

    cs_error err = {0};
    cs_snap *snap = snap_of(t.s);
    cr_assert_eq(cs_snap_version(snap), 6);
    logged l = {0};
    cr_assert_eq(cs_snap_each_log(snap, 6, log_cb, &l, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(l.count, 1, "the log after (6, 0) has %zu entries, expected (6, 1)", l.count);
    cr_assert_eq(l.version[0], 6);
    cr_assert_eq(l.n[0], 1);
    cr_assert_eq(l.kind[0], CS_CMD_TXN);
    logged_free(&l);
    cs_snap_close(snap);
    ts_store_destroy(&t);
}

/* ======================================================================= */
/* record versions and seq                                                  */

Test(store, records_carry_their_version_and_seq)
{
    ts_store t;
    ts_store_create(&t);
    cs_arena a;
    cs_arena_init(&a);
    cs_machine m;
    cs_task tk;

    cs_id m1 = ts_machine(t.s, "m1", 4000, 4000, 0, 0, 0, NULL, 0); /* v1 */
    cs_id m2 = ts_machine(t.s, "m2", 4000, 4000, 0, 0, 0, NULL, 0); /* v2 */
    ts_get_machine(t.s, m1, &a, &m);
    cr_assert_eq(m.version, 1);
    cr_assert_eq(m.seq, 1);
    cs_id j = ts_job(t.s, "j", CS_JOB_BATCH, 0, 2, 1000, 1000, 0, NULL, 0); /* v3 */
    place(t.s, 1, 1, cs_task_id(j, 0), m1, 1000, 1000);                  /* v4 */

    ts_get_machine(t.s, m1, &a, &m);
    cr_assert_eq(m.version, 4);
    cr_assert_eq(m.seq, 4, "a claim did not move seq to its version");
    ts_get_machine(t.s, m2, &a, &m);
    cr_assert_eq(m.version, 2, "an untouched machine's version moved");
    cr_assert_eq(m.seq, 2);
    ts_get_task(t.s, cs_task_id(j, 0), &a, &tk);
    cr_assert_eq(tk.version, 4);
    ts_get_task(t.s, cs_task_id(j, 1), &a, &tk);
    cr_assert_eq(tk.version, 3);

    cs_error err = {0};
    cs_snap *snap = snap_of(t.s);
    cs_job jj;
    cr_assert_eq(cs_snap_job(snap, j, &a, &jj, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(jj.version, 3, "a claim changed the job's version");
    cs_snap_close(snap);

    cr_assert_eq(cs_op_machine_state(t.s, m1, CS_MACHINE_DRAINING, NULL, &err), CS_OK); /* v5 */
    ts_get_machine(t.s, m1, &a, &m);
    cr_assert_eq(m.version, 5);
    cr_assert_eq(m.seq, 5);
    ts_machine(t.s, "m1", 5000, 4000, 0, 0, 0, NULL, 0); /* v6 (state back to up) */
    ts_get_machine(t.s, m1, &a, &m);
    cr_assert_eq(m.version, 6);
    cr_assert_eq(m.seq, 6);

    /* a transaction that changes nothing leaves seq and version alone */
    cs_txn_result r;
    cr_assert_eq(claim(t.s, 1, 2, cs_task_id(j, 1), m1, 1000, 9000, &r, &err), CS_OK, "%s",
                 err.msg);
    cr_assert_eq(r.committed, 0);
    cs_txn_result_free(&r);
    ts_get_machine(t.s, m1, &a, &m);
    cr_assert_eq(m.version, 6);
    cr_assert_eq(m.seq, 6);

    /* releasing a task: machine and task move to the new version */
    cs_txn tx;
    cs_txn_init(&tx, 1, 3, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    cs_txn_add_release(&tx, cs_task_id(j, 0), CS_TASK_FINISHED, 0);
    cs_txn_result_init(&r);
    cr_assert_eq(cs_commit(t.s, &tx, &r, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(r.releases[0], CS_COMMITTED);
    cr_assert_eq(r.version, 7);
    cs_txn_result_free(&r);
    cs_txn_free(&tx);
    ts_get_machine(t.s, m1, &a, &m);
    cr_assert_eq(m.version, 7);
    cr_assert_eq(m.seq, 7);
    ts_get_task(t.s, cs_task_id(j, 0), &a, &tk);
    cr_assert_eq(tk.version, 7);
    cr_assert_eq(tk.state, CS_TASK_FINISHED);

    cs_arena_free(&a);
    ts_store_destroy(&t);
}

/* The allocations and seq are derived at open from the task records and the
 * log: a reopened store presents the same cell, before and after compaction,
 * and an old snapshot keeps seeing the allocation of its own version. */
Test(store, derived_allocation_survives_reopen_and_compaction)
{
    ts_store t;
    ts_store_create(&t);
    cs_id m1 = ts_machine(t.s, "m1", 8000, 8000, 0, 0, 0, NULL, 0);
    cs_id m2 = ts_machine(t.s, "m2", 8000, 8000, 0, 0, 0, NULL, 0);
    cs_id j = ts_job(t.s, "j", CS_JOB_BATCH, 0, 4, 1000, 1000, 0, NULL, 0);
    place(t.s, 1, 1, cs_task_id(j, 0), m1, 1000, 1000);
    place(t.s, 1, 2, cs_task_id(j, 1), m1, 1000, 1000);
    place(t.s, 1, 3, cs_task_id(j, 2), m2, 1000, 1000);
    cs_error err = {0};
    cs_snap *old = snap_of(t.s); /* sees two tasks on m1 */
    /* m1 changes last by a release: only the log remembers when. */
    cs_txn tx;
    cs_txn_init(&tx, 1, 4, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    cs_txn_add_release(&tx, cs_task_id(j, 1), CS_TASK_FINISHED, 0);
    cs_txn_result r;
    cs_txn_result_init(&r);
    cr_assert_eq(cs_commit(t.s, &tx, &r, &err), CS_OK, "%s", err.msg);
    uint64_t released_at = r.version;
    cs_txn_result_free(&r);
    cs_txn_free(&tx);

    cs_arena a;
    cs_arena_init(&a);
    cs_machine m;
    cr_assert_eq(cs_snap_machine(old, m1, &a, &m, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(m.ntasks, 2, "an old snapshot saw a later release");
    cr_assert_eq(m.allocated.cpu, 2000);
    cs_snap_close(old);
    ts_get_machine(t.s, m1, &a, &m);
    cr_assert_eq(m.ntasks, 1);
    cr_assert_eq(m.allocated.cpu, 1000);
    cr_assert_eq(m.seq, released_at);

    uint8_t *before, *after;
    size_t nb, na;
    ts_dump_cell(t.s, &before, &nb);
    ts_store_reopen(&t);
    ts_dump_cell(t.s, &after, &na);
    cr_assert(nb == na && memcmp(before, after, nb) == 0, "reopen changed the derived cell");
    free(after);

    /* Compact past the release: seq is then presented raised to the floor,
     * the same before and after a reopen. */
    cr_assert_eq(cs_store_compact(t.s, released_at, &err), CS_OK, "%s", err.msg);
    ts_get_machine(t.s, m1, &a, &m);
    cr_assert_eq(m.seq, released_at);
    ts_get_machine(t.s, m2, &a, &m);
    cr_assert_eq(m.seq, released_at, "seq below the floor is presented at the floor");
    free(before);
    ts_dump_cell(t.s, &before, &nb);
    ts_store_reopen(&t);
    ts_dump_cell(t.s, &after, &na);
    cr_assert(nb == na && memcmp(before, after, nb) == 0,
              "reopen after compaction changed the derived cell");
    char why[256];
    cr_assert(ts_check_invariants(t.s, why, sizeof why), "%s", why);
    free(before);
    free(after);
    cs_arena_free(&a);
    ts_store_destroy(&t);
}

/* ======================================================================= */
/* names                                                                    */

Test(store, lookups_by_name)
{
    ts_store t;
    ts_store_create(&t);
    cs_id m1 = ts_machine(t.s, "alpha", 1, 1, 1, 0, 0, NULL, 0);
    cs_id m2 = ts_machine(t.s, "beta", 1, 1, 1, 0, 0, NULL, 0);
    cs_id j1 = ts_job(t.s, "web", CS_JOB_SERVICE, 0, 1, 1, 1, 0, NULL, 0);
    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};
    cs_snap *snap = snap_of(t.s);
    cs_machine m;
    cs_job j;
    cr_assert_eq(cs_snap_machine_by_name(snap, "beta", &a, &m, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(m.id, m2);
    cr_assert_str_eq(m.name, "beta");
    cr_assert_eq(cs_snap_machine_by_name(snap, "alpha", &a, &m, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(m.id, m1);
    cr_assert_eq(cs_snap_job_by_name(snap, "web", &a, &j, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(j.id, j1);

    const char *unknown[] = {"gamma", "alph", "alphaa"};
    for (int i = 0; i < 3; i++) {
        cs_error_clear(&err);
        cr_assert_eq(cs_snap_machine_by_name(snap, unknown[i], &a, &m, &err), CS_ENOTFOUND,
                     "%s", unknown[i]);
        cr_assert_eq(err.code, CS_ENOTFOUND);
        cr_assert(strstr(err.msg, unknown[i]) != NULL, "message '%s' lacks the name", err.msg);
        cr_assert(strstr(err.msg, "machine") != NULL, "message '%s'", err.msg);
    }
    /* a job's name is not a machine's */
    cr_assert_eq(cs_snap_machine_by_name(snap, "web", &a, &m, &err), CS_ENOTFOUND);
    cs_error_clear(&err);
    cr_assert_eq(cs_snap_job_by_name(snap, "alpha", &a, &j, &err), CS_ENOTFOUND);
    cr_assert(strstr(err.msg, "alpha") != NULL && strstr(err.msg, "job") != NULL, "%s", err.msg);
    cs_error_clear(&err);
    cr_assert_eq(cs_snap_job_by_name(snap, "", &a, &j, &err), CS_ENOTFOUND);
    cr_assert(err.msg[0] != '\0');

    /* by id, the same: ENOTFOUND naming the id */
    cs_error_clear(&err);
    cr_assert_eq(cs_snap_machine(snap, 77, &a, &m, &err), CS_ENOTFOUND);
    cr_assert(strstr(err.msg, "77") != NULL, "%s", err.msg);
    cs_task tk;
    cs_error_clear(&err);
    cr_assert_eq(cs_snap_task(snap, cs_task_id(j1, 1), &a, &tk, &err), CS_ENOTFOUND);
    cs_snap_close(snap);
    cs_arena_free(&a);
    ts_store_destroy(&t);
}
