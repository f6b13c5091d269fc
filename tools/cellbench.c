/* cellbench — benchmarks of the cell state.
 *
 *   cellbench commit [options]   Omega commits against raw LMDB writes
 *   cellbench poll [options]     machines long-polling cellstated while
 *                                assignments are committed (cellbench_poll.c)
 *   cellbench place [options]    C1M-shaped placement by 1, 2, 4, 8 cell-batch
 *                                processes on simulated machines
 *                                (cellbench_place.c)
 *   cellbench etcd [options]     the same commits against etcd 3.4 and
 *                                cellsched cells (cellbench_etcd.c)
 *   cellbench --help
 *
 * `commit` answers one question: what does Omega's optimistic commit
 * (txn/commit.h: read, validate, judge each claim, write back, log) cost on
 * top of the storage engine it runs on? It measures, in one run:
 *
 *   - the commit path: K simulated schedulers build transactions of B claims
 *     on stale local copies (the schedulers' own cs_copy, synced through the
 *     in-process port of schedulers/port.h; only the choice of machine is
 *     the benchmark's) and commit them through cs_commit, with the store's
 *     real durability (an fsync per commit unless --nosync);
 *   - raw LMDB: for every commit the benchmark made, one write transaction in
 *     a separate environment with one put per claim, of the size of a claimed
 *     task record, over a copy of the store's task records as they were
 *     before the first commit, with the same durability and no validation;
 *   - raw LMDB with the same writes: for every commit, exactly as many puts
 *     and bytes as that commit wrote to the store, which isolates the cost of
 *     everything the commit does besides writing.
 *
 * The two baselines run right after each commit rather than in phases of
 * their own: an fsync on a shared or virtual disk can take ten times longer
 * one minute than the next, and interleaving makes all three see the same
 * disk.
 *
 * docs/benchmarks.md explains the figures and records measured ones.
 */
#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cellstate/store.h"
#include "schedulers/cellcopy.h"
#include "schedulers/port.h"
#include "tools/cellbench_cell.h"
#include "tools/cellbench_etcd.h"
#include "tools/cellbench_place.h"
#include "tools/cellbench_poll.h"
#include "tools/cellbench_util.h"
#include "txn/commit.h"
#include "txn/txn.h"

static const char usage_text[] =
    "usage: cellbench <benchmark> [options]\n"
    "       cellbench --help\n"
    "\n"
    "benchmarks:\n"
    "  commit    Omega commits (cs_commit) against raw LMDB writes\n"
    "  poll      N machines long-polling cellstated while assignments are\n"
    "            committed: requests/s, commit-to-seen latency\n"
    "  place     a C1M-shaped workload placed by 1, 2, 4, 8 cell-batch processes\n"
    "            on simulated machines: placements/s, conflict fraction, wait\n"
    "  etcd      the same commits against etcd 3.4 and cellsched, 1 and 3 members\n"
    "            each: transactions/s, placements/s, the ratio, client CPU\n"
    "\n"
    "options of commit:\n"
    "  --machines N        machines in the cell (default 10000)\n"
    "  --schedulers K      schedulers racing for the cell (default 4)\n"
    "  --batch B           claims per transaction (default 100)\n"
    "  --rounds R          rounds; in each every scheduler commits one transaction\n"
    "                      built on the snapshot taken at the start of the round\n"
    "                      (default 50: K*R = 200 transactions)\n"
    "  --conflict MODE     fine | coarse (default fine)\n"
    "  --commit MODE       incremental | gang (default incremental)\n"
    "  --hot H             machines in the hot set (default 8; 0 for none)\n"
    "  --hot-share P       percent of claims whose first-fit starts in the hot\n"
    "                      set (default 2)\n"
    "  --seed S            seed of the placement PRNG (default 1)\n"
    "  --nosync            no fsync at commit, in the store and in raw LMDB\n"
    "  --json              end the output with one line of JSON\n"
    "\n"
    "The store and the raw LMDB environments live in a directory made under\n"
    "$TMPDIR (default /tmp) and removed at exit.\n";

static void usage(FILE *f)
{
    fputs(usage_text, f);
    fputc('\n', f);
    fputs(cb_poll_usage, f);
    fputc('\n', f);
    fputs(cb_place_usage, f);
    fputc('\n', f);
    fputs(cb_etcd_usage, f);
}

/* Bytes this process has handed to write(2) and its kin so far ("wchar" of
 * /proc/self/io), or -1 where that is not available. LMDB writes every page
 * a transaction dirtied with pwrite at commit, so the difference over a
 * phase is how much it copied out, which is what an fsync then waits for. */
static int64_t written_bytes(void)
{
    FILE *f = fopen("/proc/self/io", "r");
    if (f == NULL)
        return -1;
    char line[128];
    long long v = -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "wchar: %lld", &v) == 1)
            break;
    fclose(f);
    return v;
}

/* Add what was written since `before` (a written_bytes() reading) to
 * *total; either unknown makes the total unknown (-1). */
static void add_written(int64_t *total, int64_t before)
{
    int64_t now = written_bytes();
    *total = before < 0 || now < 0 || *total < 0 ? -1 : *total + (now - before);
}

static void be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static int lmdb_fail(cs_error *err, int rc, const char *what)
{
    return cs_errorf(err, rc == ENOMEM ? CS_ENOMEM : CS_EIO, "raw LMDB: %s: %s", what,
                     mdb_strerror(rc));
}

/* ---- options of `commit` -------------------------------------------------- */

typedef struct commit_opts {
    uint32_t machines, schedulers, batch, rounds;
    uint8_t conflict, commit; /* cs_conflict_mode, cs_commit_mode */
    uint32_t hot, hot_share;
    uint64_t seed;
    bool nosync, json;
} commit_opts;

/* Every task is submitted to the store and pre-filled into both baselines
 * before the first round: larger runs would spend many minutes in setup. */
#define TOTAL_TASKS_MAX 10000000u

/* Parse `commit`'s options (argv[0] is the benchmark's name). On CB_PARSE_BAD, `err` names
 * the problem. */
static int commit_parse(int argc, char **argv, commit_opts *o, cs_error *err)
{
    *o = (commit_opts){
        .machines = 10000,
        .schedulers = 4,
        .batch = 100,
        .rounds = 50,
        .conflict = CS_CONFLICT_FINE,
        .commit = CS_COMMIT_INCREMENTAL,
        .hot = 8,
        .hot_share = 2,
        .seed = 1,
    };
    static const char *const switches[] = {"--help", "--nosync", "--json", NULL};
    static const char *const valued[] = {"--machines", "--schedulers", "--batch", "--rounds",
                                         "--conflict", "--commit",     "--hot",   "--hot-share",
                                         "--seed",     NULL};
    bool hot_given = false;
    for (int i = 1; i < argc;) {
        cb_opt opt;
        if (cb_opt_next(argc, argv, &i, switches, valued, &opt, err) != CS_OK)
            return CB_PARSE_BAD;
        const char *flag = opt.flag, *val = opt.val;
        if (strcmp(flag, "--help") == 0)
            return CB_PARSE_HELP;
        if (strcmp(flag, "--nosync") == 0) {
            o->nosync = true;
            continue;
        }
        if (strcmp(flag, "--json") == 0) {
            o->json = true;
            continue;
        }

        int rc = CS_OK;
        if (strcmp(flag, "--machines") == 0)
            rc = cb_parse_u32(flag, val, 1, 1000000, &o->machines, err);
        else if (strcmp(flag, "--schedulers") == 0)
            rc = cb_parse_u32(flag, val, 1, 1000, &o->schedulers, err);
        else if (strcmp(flag, "--batch") == 0)
            rc = cb_parse_u32(flag, val, 1, 100000, &o->batch, err);
        else if (strcmp(flag, "--rounds") == 0)
            rc = cb_parse_u32(flag, val, 1, 1000000, &o->rounds, err);
        else if (strcmp(flag, "--hot") == 0) {
            rc = cb_parse_u32(flag, val, 0, 1000000, &o->hot, err);
            hot_given = true;
        } else if (strcmp(flag, "--hot-share") == 0)
            rc = cb_parse_u32(flag, val, 0, 100, &o->hot_share, err);
        else if (strcmp(flag, "--seed") == 0)
            rc = cb_parse_u64(flag, val, 0, UINT64_MAX, &o->seed, err);
        else if (strcmp(flag, "--conflict") == 0) {
            if (cs_conflict_mode_parse(val, &o->conflict) != CS_OK)
                rc = cs_errorf(err, CS_EINVAL, "--conflict: '%s' is neither fine nor coarse", val);
        } else if (cs_commit_mode_parse(val, &o->commit) != CS_OK) {
            rc = cs_errorf(err, CS_EINVAL, "--commit: '%s' is neither incremental nor gang", val);
        }
        if (rc != CS_OK)
            return CB_PARSE_BAD;
    }

    /* A hot set larger than the cell is a mistake when asked for; the
     * default merely shrinks with a small cell. */
    if (o->hot > o->machines) {
        if (hot_given) {
            cs_errorf(err, CS_EINVAL, "--hot: %u machines, but the cell has only %u", o->hot,
                      o->machines);
            return CB_PARSE_BAD;
        }
        o->hot = o->machines;
    }
    uint64_t total = (uint64_t)o->schedulers * o->rounds * o->batch;
    if (total > TOTAL_TASKS_MAX) {
        cs_errorf(err, CS_EINVAL,
                  "schedulers x rounds x batch = %" PRIu64 " tasks, more than %u", total,
                  TOTAL_TASKS_MAX);
        return CB_PARSE_BAD;
    }
    return CB_PARSE_RUN;
}

/* ---- the cell ------------------------------------------------------------- */

/* What every task asks for. A machine holds 32 of them (cpu binds first), so
 * that first-fit packing fills the hot set within a default run and the
 * schedulers then race for the last free room, where fine-grained conflicts
 * come from. */
static const cs_res task_res = {.cpu = 1000, .mem = 2048, .disk = 1024};
static const cs_res machine_cap = {.cpu = 32000, .mem = 128 * 1024, .disk = 1000 * 1000};

/* ---- the schedulers ------------------------------------------------------------ */

/* Each scheduler keeps the real local copy (schedulers/cellcopy.h), synced
 * through the in-process port (schedulers/port.h): the sync reply
 * cellstated would send, applied as a scheduler applies it. What it claims
 * is the benchmark's own choice (first_fit), so that --hot and --hot-share
 * shape the race. */

/* Whether machine `m` of a copy has room for `need`: up, and capacity minus
 * what is allocated (tentative claims included). */
static bool fits(const cs_cmachine *m, const cs_res *need)
{
    return m->state == CS_MACHINE_UP && m->capacity.cpu - m->allocated.cpu >= need->cpu &&
           m->capacity.mem - m->allocated.mem >= need->mem &&
           m->capacity.disk - m->allocated.disk >= need->disk;
}

/* Randomized first-fit: scan from a random machine for the first with room
 * in the local copy. With probability hot_share% the scan starts in the hot
 * set (machines [0, hot)), the preferred machines every scheduler packs
 * first; once they are full, the schedulers converge on the same free room
 * just past them. Returns the machine's slot, or -1 when no machine has
 * room. */
static int64_t first_fit(const cs_copy *copy, uint32_t n, const commit_opts *o, uint64_t *rng)
{
    uint64_t r = cb_rng_next(rng);
    bool hot = o->hot > 0 && r % 100 < o->hot_share;
    uint64_t start = cb_rng_next(rng) % (hot ? o->hot : n);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t k = (uint32_t)((start + i) % n);
        if (fits(cs_copy_machine_at(copy, k), &task_res))
            return k;
    }
    return -1;
}

typedef struct sched {
    uint64_t id;
    uint64_t next_req;
    uint64_t fresh, fresh_end; /* its slice of task numbers never tried yet */
    cs_id *retry;              /* tasks to try before fresh ones: claims that conflicted */
    uint32_t nretry;
    cs_id *take;   /* the tasks of the transaction being built */
    cs_copy *copy; /* its local copy of the cell */
    uint64_t rng;
    cs_txn txn;
    cs_txn_result res;
} sched;

static void sched_free(sched *sc)
{
    free(sc->retry);
    free(sc->take);
    cs_copy_free(sc->copy);
    cs_txn_free(&sc->txn);
    cs_txn_result_free(&sc->res);
}

static int sched_init(sched *sc, uint32_t k, const commit_opts *o, const cb_cell *c, cs_error *err)
{
    memset(sc, 0, sizeof *sc);
    sc->id = k + 1;
    uint64_t slice = (uint64_t)o->rounds * o->batch;
    sc->fresh = k * slice;
    sc->fresh_end = sc->fresh + slice;
    sc->rng = cb_rng_seed(o->seed, k);
    cs_txn_init(&sc->txn, sc->id, 0, c->version, o->conflict, o->commit);
    cs_txn_result_init(&sc->res);
    sc->retry = calloc(o->batch, sizeof *sc->retry);
    sc->take = calloc(o->batch, sizeof *sc->take);
    if (sc->retry == NULL || sc->take == NULL || cs_copy_new(&sc->copy, err) != CS_OK) {
        sched_free(sc);
        return cs_errorf(err, CS_ENOMEM, "scheduler %u: out of memory", k + 1);
    }
    return CS_OK;
}

/* Omega's sync, with which each round starts: the copy becomes the cell as
 * it is now. */
static int sched_sync(sched *sc, const cs_sched_port *port, const commit_opts *o, cs_error *err)
{
    int rc = cs_copy_sync(sc->copy, port, err);
    if (rc != CS_OK)
        return rc;
    if (cs_copy_nmachines(sc->copy) != o->machines)
        return cs_errorf(err, CS_ECORRUPT, "sync: the store has %u machines, %u were registered",
                         cs_copy_nmachines(sc->copy), o->machines);
    return CS_OK;
}

/* Build the scheduler's next transaction on its local copy: up to B tasks,
 * those whose claims conflicted first, each placed by first_fit and
 * reserved in the copy. A task that fits nowhere waits for the next round. */
static int sched_build(sched *sc, const commit_opts *o, const cb_cell *c, cs_error *err)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < sc->nretry && n < o->batch; i++)
        sc->take[n++] = sc->retry[i];
    sc->nretry = 0;
    while (n < o->batch && sc->fresh < sc->fresh_end)
        sc->take[n++] = cb_cell_task(c, sc->fresh++);

    cs_txn_reset(&sc->txn, ++sc->next_req, cs_copy_version(sc->copy));
    for (uint32_t i = 0; i < n; i++) {
        int64_t k = first_fit(sc->copy, o->machines, o, &sc->rng);
        if (k < 0) {
            sc->retry[sc->nretry++] = sc->take[i];
            continue;
        }
        const cs_cmachine *m = cs_copy_machine_at(sc->copy, (uint32_t)k);
        cs_id machine = m->id;
        uint64_t seq = m->seq;
        int rc = cs_copy_claim(sc->copy, sc->take[i], machine, &task_res, NULL, 0, err);
        if (rc != CS_OK)
            return cs_error_wrap(err, rc, "scheduler %" PRIu64, sc->id);
        if (cs_txn_add_claim(&sc->txn, sc->take[i], machine, &task_res, NULL, 0, seq) != CS_OK)
            return cs_errorf(err, CS_ENOMEM, "scheduler %" PRIu64 ": out of memory", sc->id);
    }
    return CS_OK;
}

/* ---- the figures ------------------------------------------------------------ */

/* Time, puts and bytes of one of the three measured write paths. */
typedef struct path_figures {
    double s;        /* inside the timed calls only */
    uint64_t puts;   /* LMDB puts */
    uint64_t bytes;  /* their keys and values */
    int64_t written; /* bytes written to files (LMDB's page writes); -1 unknown */
} path_figures;

typedef struct commit_figures {
    uint64_t txns;       /* transactions committed (each with at least one claim) */
    uint64_t conflicted; /* with a conflicting claim (in gang mode: committed nothing) */
    uint64_t successful; /* every claim committed */
    uint64_t attempted, committed; /* claims */
    size_t task_size;    /* an encoded task after its claim: baseline 1's values */
    size_t machine_size; /* an encoded machine record: baseline 2's pre-filled values */
    path_figures commit; /* cs_commit */
    path_figures raw;    /* baseline 1 */
    path_figures same;   /* baseline 2 */
} commit_figures;

/* ---- record sizes ------------------------------------------------------------ */

/* Finish measuring an encoding: `rc` is the encoder's result, `buf` what it
 * wrote (destroyed here). */
static int encoded_size(int rc, msgpack_sbuffer *buf, const char *what, size_t *out,
                        cs_error *err)
{
    if (rc != CS_OK)
        rc = cs_errorf(err, rc, "encoding a %s: out of memory", what);
    else
        *out = buf->size;
    msgpack_sbuffer_destroy(buf);
    return rc;
}

/* The size of a task record as a claim leaves it: baseline 1 writes values
 * of this size. The values are those of the run's last task, on the highest
 * machine id, at the last version, so that msgpack picks the same integer
 * widths as the store's records at the end of the run. */
static int task_record_size(cs_store *s, const cb_cell *c, const commit_opts *o, size_t *out,
                            cs_error *err)
{
    uint64_t last = c->ntasks - 1;
    cs_task t = {
        .id = cb_cell_task(c, last),
        .job = c->jobs[last / CB_TASKS_PER_JOB],
        .index = (uint32_t)(last % CB_TASKS_PER_JOB),
        .state = CS_TASK_ASSIGNED,
        .last_end = CS_TASK_PENDING,
        .machine = o->machines,
        .res = task_res,
        .attempts = 1,
        .version = c->version + (uint64_t)o->schedulers * o->rounds,
    };
    /* A claim records the spec hash of the job it runs (schema 3): eight
     * bytes more than the zero of a pending task. */
    cs_snap *snap;
    cs_arena a;
    cs_arena_init(&a);
    cs_job j;
    int rc = cs_snap_open(s, &snap, err);
    if (rc == CS_OK) {
        rc = cs_snap_job(snap, t.job, &a, &j, err);
        t.spec = rc == CS_OK ? j.spec_hash : 0;
        cs_snap_close(snap);
    }
    cs_arena_free(&a);
    if (rc != CS_OK)
        return cs_error_wrap(err, rc, "measuring a claimed task record");
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    return encoded_size(cs_task_encode(&t, &buf), &buf, "task", out, err);
}

/* The size of a machine record with a few tasks placed: baseline 2 pre-fills
 * its machine keys with values of this size. */
static int machine_record_size(const cb_cell *c, const commit_opts *o, size_t *out, cs_error *err)
{
    cb_machine_strs ms;
    cs_machine m;
    cb_machine_spec(o->machines - 1, &machine_cap, &ms, &m);
    m.id = o->machines;
    m.allocated = (cs_res){task_res.cpu * 4, task_res.mem * 4, task_res.disk * 4};
    m.ntasks = 4;
    m.seq = 5;
    m.version = c->version + (uint64_t)o->schedulers * o->rounds;
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    return encoded_size(cs_machine_encode(&m, &buf), &buf, "machine", out, err);
}

/* ---- raw LMDB ------------------------------------------------------------------ */

/* An environment with the store's flags (MDB_NOTLS, MDB_NOSYNC iff --nosync)
 * and map size, one unnamed database, and the scratch the replays write. */
typedef struct raw_env {
    MDB_env *env;
    MDB_dbi dbi;
    uint8_t *val; /* value bytes: any length up to vcap */
    size_t vcap;
    cs_id *keys;  /* the next replay's keys ... */
    size_t *lens; /* ... and value lengths */
    uint64_t capputs;
} raw_env;

static void raw_close(raw_env *r)
{
    if (r->env != NULL)
        mdb_env_close(r->env);
    free(r->val);
    free(r->keys);
    free(r->lens);
    memset(r, 0, sizeof *r);
}

static int raw_open(raw_env *r, const char *dir, bool nosync, size_t map_size, cs_error *err)
{
    memset(r, 0, sizeof *r);
    int rc = mdb_env_create(&r->env);
    if (rc != 0) {
        r->env = NULL;
        return lmdb_fail(err, rc, "creating environment");
    }
    MDB_txn *txn;
    if ((rc = mdb_env_set_mapsize(r->env, map_size)) != 0 ||
        (rc = mdb_env_open(r->env, dir, MDB_NOTLS | (nosync ? MDB_NOSYNC : 0), 0644)) != 0)
        goto err_after_env;
    if ((rc = mdb_txn_begin(r->env, NULL, 0, &txn)) != 0)
        goto err_after_env;
    if ((rc = mdb_dbi_open(txn, NULL, 0, &r->dbi)) != 0) {
        mdb_txn_abort(txn);
        goto err_after_env;
    }
    if ((rc = mdb_txn_commit(txn)) != 0)
        goto err_after_env;
    return CS_OK;

err_after_env:
    raw_close(r);
    return lmdb_fail(err, rc, "opening environment");
}

/* Make the value scratch hold at least `n` bytes. */
static int raw_reserve(raw_env *r, size_t n, cs_error *err)
{
    if (n <= r->vcap)
        return CS_OK;
    uint8_t *v = realloc(r->val, n);
    if (v == NULL)
        return cs_errorf(err, CS_ENOMEM, "raw LMDB: out of memory");
    memset(v + r->vcap, 0xa5, n - r->vcap);
    r->val = v;
    r->vcap = n;
    return CS_OK;
}

/* Key number i of a pre-filled database. */
typedef cs_id (*key_fn)(const void *ctx, uint64_t i);

/* Baseline 2's key for machine id `id` in key space `space`: above every
 * task id, each space as if a database of its own. Space 0 stands for the
 * store's machine records, 1 for its placed index, 2 and up for the few
 * other records a commit writes (log, request, meta). */
static cs_id machine_key(uint64_t space, cs_id id)
{
    return (UINT64_C(1) << 63) | space << 40 | id;
}
static cs_id machine_record_key(const void *ctx, uint64_t i)
{
    (void)ctx;
    return machine_key(0, i + 1);
}
static cs_id placed_key(const void *ctx, uint64_t i)
{
    (void)ctx;
    return machine_key(1, i + 1);
}

/* Fill the database with n records of `vlen` bytes, untimed, so that the
 * measured puts land in a tree as deep as the store's rather than in an
 * empty one. Plain puts (not MDB_APPEND) split pages as the store's inserts
 * do. */
static int raw_fill(raw_env *r, key_fn key, const void *ctx, uint64_t n, size_t vlen,
                    cs_error *err)
{
    int rc = raw_reserve(r, vlen, err);
    if (rc != CS_OK)
        return rc;
    MDB_txn *txn;
    if ((rc = mdb_txn_begin(r->env, NULL, 0, &txn)) != 0)
        return lmdb_fail(err, rc, "beginning the fill");
    for (uint64_t i = 0; i < n; i++) {
        uint8_t kb[8];
        be64(kb, key(ctx, i));
        MDB_val k = {8, kb}, v = {vlen, r->val};
        if ((rc = mdb_put(txn, r->dbi, &k, &v, 0)) != 0) {
            mdb_txn_abort(txn);
            return lmdb_fail(err, rc, "filling");
        }
    }
    if ((rc = mdb_txn_commit(txn)) != 0)
        return lmdb_fail(err, rc, "committing the fill");
    return CS_OK;
}

typedef struct fill_ctx {
    MDB_txn *txn;
    MDB_dbi dbi;
    int rc; /* LMDB's code when a put failed */
} fill_ctx;

static int fill_put(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    fill_ctx *c = ctx;
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    c->rc = mdb_put(c->txn, c->dbi, &k, &v, 0);
    return c->rc != 0;
}

/* Fill the database with a copy of every task record of the store, as it
 * is before the first commit: the baselines' puts then overwrite records of
 * the sizes the commits overwrite. That matters: a claim makes a pending
 * task's record two bytes longer (it names a machine), so the store's leaves
 * fill up and split as the claims land; records pre-filled at the claimed
 * size never grow, and the baseline wrote 1.5 pages fewer per transaction
 * than the same writes cost in the store (docs/benchmarks.md). */
static int raw_fill_tasks(raw_env *r, cs_store *s, cs_error *err)
{
    cs_snap *snap;
    int rc = cs_snap_open(s, &snap, err);
    if (rc != CS_OK)
        return cs_error_wrap(err, rc, "raw LMDB: reading the store's tasks");
    fill_ctx c = {NULL, r->dbi, 0};
    if ((rc = mdb_txn_begin(r->env, NULL, 0, &c.txn)) != 0) {
        cs_snap_close(snap);
        return lmdb_fail(err, rc, "beginning the fill");
    }
    rc = cs_snap_each_raw(snap, CS_DB_TASKS, fill_put, &c, err);
    cs_snap_close(snap);
    if (c.rc != 0 || rc != CS_OK) {
        mdb_txn_abort(c.txn);
        return c.rc != 0 ? lmdb_fail(err, c.rc, "filling") : rc;
    }
    if ((rc = mdb_txn_commit(c.txn)) != 0)
        return lmdb_fail(err, rc, "committing the fill");
    return CS_OK;
}

/* Make room for a replay of n puts in the key and length scratch. */
static int raw_plan(raw_env *r, uint64_t n, cs_error *err)
{
    if (n <= r->capputs)
        return CS_OK;
    cs_id *keys = realloc(r->keys, n * sizeof *keys);
    if (keys != NULL)
        r->keys = keys;
    size_t *lens = keys ? realloc(r->lens, n * sizeof *lens) : NULL;
    if (lens == NULL)
        return cs_errorf(err, CS_ENOMEM, "raw LMDB: out of memory");
    r->lens = lens;
    r->capputs = n;
    return CS_OK;
}

/* One write transaction of the n puts planned in r->keys and r->lens (value
 * lengths), timed into `pf`. Planning happens before, untimed, so that only
 * LMDB's work is measured. */
static int raw_replay(raw_env *r, uint64_t n, path_figures *pf, cs_error *err)
{
    if (n == 0)
        return CS_OK;
    size_t vmax = 0;
    for (uint64_t i = 0; i < n; i++)
        vmax = r->lens[i] > vmax ? r->lens[i] : vmax;
    int rc = raw_reserve(r, vmax, err);
    if (rc != CS_OK)
        return rc;

    int64_t written = written_bytes();
    double t0 = cb_now_s();
    MDB_txn *txn;
    if ((rc = mdb_txn_begin(r->env, NULL, 0, &txn)) != 0)
        return lmdb_fail(err, rc, "beginning a replay");
    for (uint64_t i = 0; i < n; i++) {
        uint8_t kb[8];
        be64(kb, r->keys[i]);
        MDB_val k = {8, kb}, v = {r->lens[i], r->val};
        if ((rc = mdb_put(txn, r->dbi, &k, &v, 0)) != 0) {
            mdb_txn_abort(txn);
            return lmdb_fail(err, rc, "replaying");
        }
    }
    if ((rc = mdb_txn_commit(txn)) != 0)
        return lmdb_fail(err, rc, "committing a replay");
    pf->s += cb_now_s() - t0;

    pf->puts += n;
    for (uint64_t i = 0; i < n; i++)
        pf->bytes += 8 + r->lens[i];
    add_written(&pf->written, written);
    return CS_OK;
}

/* Baseline 1, after a commit of `t`: one write transaction with one put per
 * claim, the claimed task's id as key and a value the size of a claimed task
 * record, into a database pre-filled with the store's task records. */
static int raw_claims(raw_env *r, const cs_txn *t, size_t task_size, path_figures *pf,
                      cs_error *err)
{
    int rc = raw_plan(r, t->nclaims, err);
    if (rc != CS_OK)
        return rc;
    for (uint32_t i = 0; i < t->nclaims; i++) {
        r->keys[i] = t->claims[i].task;
        r->lens[i] = task_size;
    }
    return raw_replay(r, t->nclaims, pf, err);
}

/* Baseline 2, after a commit of `t` that made `puts` puts of `bytes` bytes:
 * exactly as many puts and bytes, with keys of 8 bytes and the bytes split
 * evenly. Where puts land matters as much as how many there are, since an
 * LMDB write transaction costs about one page copy per page it touches; so
 * the keys follow the store's pattern: one put per claim to the claimed
 * task's key (adjacent tasks share pages, as in the store's tasks
 * database), then the claimed machines' keys, cycling through the claims
 * once per key space (the store writes a machine record and a placed index
 * entry per claimed machine, in two databases). The database is pre-filled
 * with every task and both spaces' machine keys. */
static int raw_same_writes(raw_env *r, const cs_txn *t, uint64_t puts, uint64_t bytes,
                           path_figures *pf, cs_error *err)
{
    int rc = raw_plan(r, puts, err);
    if (rc != CS_OK)
        return rc;
    for (uint64_t i = 0; i < puts; i++) {
        if (i < t->nclaims) {
            r->keys[i] = t->claims[i].task;
        } else {
            uint64_t j = i - t->nclaims;
            r->keys[i] = machine_key(j / t->nclaims, t->claims[j % t->nclaims].machine);
        }
        /* The first (bytes % puts) puts get one byte more, so that the sum is
         * exact; each key's 8 bytes count towards it. */
        size_t len = (size_t)(bytes / puts + (i < bytes % puts));
        r->lens[i] = len > 8 ? len - 8 : 0;
    }
    return raw_replay(r, puts, pf, err);
}

/* ---- the commit path ---------------------------------------------------------- */

/* The store and the two baselines' environments, side by side. */
typedef struct bench {
    cs_store *store;
    raw_env raw, same;
} bench;

/* Count one commit's outcome and send its conflicted claims back to the
 * scheduler's queue. */
static void account(sched *sc, const commit_opts *o, commit_figures *f)
{
    const cs_txn *t = &sc->txn;
    const cs_txn_result *r = &sc->res;
    f->txns++;
    f->attempted += t->nclaims;
    f->committed += r->committed;
    bool gang_aborted = o->commit == CS_COMMIT_GANG && r->committed == 0;
    if (r->conflicts > 0 || gang_aborted)
        f->conflicted++;
    if (r->committed == t->nclaims)
        f->successful++;
    for (uint32_t i = 0; i < t->nclaims; i++)
        if (r->claims[i] != CS_COMMITTED)
            sc->retry[sc->nretry++] = t->claims[i].task;
}

/* Commit the scheduler's transaction, timing only cs_commit, then replay it
 * on both baselines. */
static int commit_one(bench *b, sched *sc, const commit_opts *o, commit_figures *f,
                      cs_error *err)
{
    cs_store_stats before, after;
    cs_store_get_stats(b->store, &before);
    int64_t written = written_bytes();
    double t0 = cb_now_s();
    int rc = cs_commit(b->store, &sc->txn, &sc->res, err);
    f->commit.s += cb_now_s() - t0;
    if (rc != CS_OK)
        return rc;
    cs_store_get_stats(b->store, &after);
    uint64_t puts = after.puts - before.puts, bytes = after.put_bytes - before.put_bytes;
    f->commit.puts += puts;
    f->commit.bytes += bytes;
    add_written(&f->commit.written, written);
    account(sc, o, f);
    if ((rc = raw_claims(&b->raw, &sc->txn, f->task_size, &f->raw, err)) != CS_OK)
        return rc;
    return raw_same_writes(&b->same, &sc->txn, puts, bytes, &f->same, err);
}

/* Omega's race, round after round: every scheduler syncs its copy to the
 * same version and builds its transaction on it, then they commit one after
 * another, so the 2nd..Kth commits of a round are built on stale state. */
static int run_rounds(bench *b, const commit_opts *o, const cb_cell *c, commit_figures *f,
                      cs_error *err)
{
    int rc = CS_OK;
    uint32_t k = 0;
    cs_port_local *port = NULL;
    sched *scheds = calloc(o->schedulers, sizeof *scheds);
    if (scheds == NULL) {
        rc = cs_errorf(err, CS_ENOMEM, "out of memory");
        goto out;
    }
    /* The clock is not read: no scheduler loop runs here. */
    if ((rc = cs_port_local_new(b->store, 0, 0, &port, err)) != CS_OK)
        goto out;
    for (k = 0; k < o->schedulers; k++)
        if ((rc = sched_init(&scheds[k], k, o, c, err)) != CS_OK)
            goto out;

    for (uint32_t round = 0; round < o->rounds; round++) {
        for (uint32_t i = 0; i < o->schedulers; i++)
            if ((rc = sched_sync(&scheds[i], cs_port_local_table(port), o, err)) != CS_OK ||
                (rc = sched_build(&scheds[i], o, c, err)) != CS_OK)
                goto out;
        for (uint32_t i = 0; i < o->schedulers; i++) {
            if (scheds[i].txn.nclaims == 0)
                continue; /* the cell is full: an empty transaction is refused */
            if ((rc = commit_one(b, &scheds[i], o, f, err)) != CS_OK) {
                cs_error_wrap(err, rc, "round %u, scheduler %u", round, i + 1);
                goto out;
            }
        }
    }

out:
    for (uint32_t i = 0; scheds != NULL && i < k; i++)
        sched_free(&scheds[i]);
    free(scheds);
    cs_port_local_free(port);
    return rc;
}

/* ---- the report ------------------------------------------------------------------- */

/* Omega's conflict fraction: "the average number of conflicts per
 * successful transaction". A transaction counts as conflicted when any claim
 * conflicted (in gang mode it then committed nothing), as successful when
 * every claim committed. NaN when none succeeded. */
static double conflict_fraction(const commit_figures *f)
{
    return f->successful ? (double)f->conflicted / (double)f->successful : (double)NAN;
}

/* Bytes per transaction in KiB; "n/a" when unknown (-1). */
static const char *kib_per_txn(char *buf, size_t size, int64_t bytes, uint64_t txns)
{
    double v = bytes < 0 || txns == 0 ? (double)NAN : (double)bytes / 1024.0 / (double)txns;
    cb_fig(buf, size, v, 1);
    if (isfinite(v))
        strncat(buf, " KiB", size - strlen(buf) - 1);
    return buf;
}

/* One write path's figures, as <prefix>_s, _puts, _put_bytes, _written_bytes
 * and _puts_per_s. */
static void json_path(cb_json *j, const char *prefix, const path_figures *pf)
{
    static const char *const suffix[] = {"s", "puts", "put_bytes", "written_bytes",
                                         "puts_per_s"};
    char key[5][64];
    for (size_t i = 0; i < 5; i++)
        snprintf(key[i], sizeof key[i], "%s_%s", prefix, suffix[i]);
    cb_json_real(j, key[0], pf->s);
    cb_json_u64(j, key[1], pf->puts);
    cb_json_u64(j, key[2], pf->bytes);
    cb_json_bytes(j, key[3], pf->written);
    cb_json_real(j, key[4], cb_per_s((double)pf->puts, pf->s));
}

/* The derived figures, computed once for both forms of the report. */
typedef struct commit_rates {
    double claims_per_s;      /* committed claims / time in cs_commit */
    double commit_puts_per_s; /* store puts / time in cs_commit */
    double raw_puts_per_s;
    double same_puts_per_s;
    double ratio;      /* claims_per_s / raw_puts_per_s: the target */
    double ratio_same; /* commit_puts_per_s / same_puts_per_s: 1 - validation's share */
    double conflict_fraction;
} commit_rates;

static void commit_rates_of(const commit_figures *f, commit_rates *r)
{
    r->claims_per_s = cb_per_s((double)f->committed, f->commit.s);
    r->commit_puts_per_s = cb_per_s((double)f->commit.puts, f->commit.s);
    r->raw_puts_per_s = cb_per_s((double)f->raw.puts, f->raw.s);
    r->same_puts_per_s = cb_per_s((double)f->same.puts, f->same.s);
    r->ratio = r->claims_per_s / r->raw_puts_per_s;
    r->ratio_same = r->commit_puts_per_s / r->same_puts_per_s;
    r->conflict_fraction = conflict_fraction(f);
}

static void commit_report_text(FILE *out, const commit_opts *o, const cb_host *h,
                               const commit_figures *f, const commit_rates *r)
{
    char a[64], b[64], c[64];
    fprintf(out,
            "cellbench commit: %u machines, %u schedulers, batch %u, %u rounds, conflict %s, "
            "commit %s, %s\n",
            o->machines, o->schedulers, o->batch, o->rounds, cs_conflict_mode_name(o->conflict),
            cs_commit_mode_name(o->commit), o->nosync ? "nosync" : "fsync per commit");
    fprintf(out, "machine:            nproc %ld, cpu %s\n", h->nproc, h->cpu);
    fprintf(out,
            "transactions:       %" PRIu64 " (%" PRIu64 " conflicted, %" PRIu64
            " committed every claim)\n",
            f->txns, f->conflicted, f->successful);
    fprintf(out, "claims:             %" PRIu64 " attempted, %" PRIu64 " committed\n",
            f->attempted, f->committed);
    fprintf(out, "conflict fraction:  %s (conflicted / fully committed transactions)\n",
            cb_fig(a, sizeof a, r->conflict_fraction, 3));
    fprintf(out,
            "commit:             %.3f s in cs_commit: %s claims/s; %" PRIu64 " store puts, %" PRIu64
            " bytes: %s puts/s\n",
            f->commit.s, cb_fig(a, sizeof a, r->claims_per_s, 0), f->commit.puts, f->commit.bytes,
            cb_fig(b, sizeof b, r->commit_puts_per_s, 0));
    fprintf(out, "raw LMDB:           %.3f s for %" PRIu64 " puts of %zu-byte values: %s puts/s\n",
            f->raw.s, f->raw.puts, f->task_size, cb_fig(a, sizeof a, r->raw_puts_per_s, 0));
    fprintf(out, "ratio:              %s (claims/s over raw puts/s)\n",
            cb_fig(a, sizeof a, r->ratio, 3));
    fprintf(out,
            "raw, same writes:   %.3f s for %" PRIu64 " puts, %" PRIu64 " bytes: %s puts/s\n",
            f->same.s, f->same.puts, f->same.bytes, cb_fig(a, sizeof a, r->same_puts_per_s, 0));
    fprintf(out, "ratio, same writes: %s (commit puts/s over raw puts/s for the same writes)\n",
            cb_fig(a, sizeof a, r->ratio_same, 3));
    fprintf(out, "written per txn:    commit %s, raw %s, raw same writes %s\n",
            kib_per_txn(a, sizeof a, f->commit.written, f->txns),
            kib_per_txn(b, sizeof b, f->raw.written, f->txns),
            kib_per_txn(c, sizeof c, f->same.written, f->txns));
}

static void commit_report_json(FILE *out, const commit_opts *o, const cb_host *h,
                               const commit_figures *f, const commit_rates *r)
{
    cb_json j = {out, true};
    cb_json_str(&j, "benchmark", "commit");
    cb_json_u64(&j, "machines", o->machines);
    cb_json_u64(&j, "schedulers", o->schedulers);
    cb_json_u64(&j, "batch", o->batch);
    cb_json_u64(&j, "rounds", o->rounds);
    cb_json_str(&j, "conflict", cs_conflict_mode_name(o->conflict));
    cb_json_str(&j, "commit", cs_commit_mode_name(o->commit));
    cb_json_bool(&j, "fsync", !o->nosync);
    cb_json_u64(&j, "hot", o->hot);
    cb_json_u64(&j, "hot_share", o->hot_share);
    cb_json_u64(&j, "seed", o->seed);
    cb_json_u64(&j, "nproc", h->nproc > 0 ? (uint64_t)h->nproc : 0);
    cb_json_str(&j, "cpu", h->cpu);
    cb_json_u64(&j, "transactions", f->txns);
    cb_json_u64(&j, "conflicted_transactions", f->conflicted);
    cb_json_u64(&j, "successful_transactions", f->successful);
    cb_json_u64(&j, "attempted_claims", f->attempted);
    cb_json_u64(&j, "committed_claims", f->committed);
    cb_json_u64(&j, "raw_value_bytes", f->task_size);
    cb_json_u64(&j, "machine_record_bytes", f->machine_size);
    json_path(&j, "commit", &f->commit);
    json_path(&j, "raw", &f->raw);
    json_path(&j, "raw_same_writes", &f->same);
    cb_json_real(&j, "ratio_same_writes", r->ratio_same);
    cb_json_real(&j, "claims_per_s", r->claims_per_s);
    cb_json_real(&j, "raw_puts_per_s", r->raw_puts_per_s);
    cb_json_real(&j, "ratio", r->ratio);
    cb_json_real(&j, "conflict_fraction", r->conflict_fraction);
    cb_json_end(&j);
}

/* ---- `commit` ------------------------------------------------------------------------ */

/* Set up the store and both baselines' environments in one temporary
 * directory, run the rounds, and remove it all. */
static int commit_run(const commit_opts *o, commit_figures *f, cs_error *err)
{
    const size_t map_size = (size_t)8 << 30;
    char root[256], store_dir[300], raw_dir[300], same_dir[300];
    bench b = {0};
    cb_cell c = {0};
    memset(f, 0, sizeof *f);

    int rc = cb_make_tmpdir(root, sizeof root, err);
    if (rc != CS_OK)
        return rc;
    if ((rc = cb_make_subdir(root, "store", store_dir, sizeof store_dir, err)) != CS_OK ||
        (rc = cb_make_subdir(root, "raw", raw_dir, sizeof raw_dir, err)) != CS_OK ||
        (rc = cb_make_subdir(root, "same", same_dir, sizeof same_dir, err)) != CS_OK)
        goto remove_tmpdir;

    cs_store_opts so = {.map_size = map_size, .nosync = o->nosync};
    if ((rc = cs_store_open(store_dir, &so, &b.store, err)) != CS_OK)
        goto remove_tmpdir;
    cb_cell_spec spec = {
        .machines = o->machines,
        .ntasks = (uint64_t)o->schedulers * o->rounds * o->batch,
        .task_res = task_res,
        .machine_cap = machine_cap,
    };
    if ((rc = cb_cell_setup(b.store, &spec, &c, err)) != CS_OK ||
        (rc = task_record_size(b.store, &c, o, &f->task_size, err)) != CS_OK ||
        (rc = machine_record_size(&c, o, &f->machine_size, err)) != CS_OK)
        goto close_store;
    if ((rc = raw_open(&b.raw, raw_dir, o->nosync, map_size, err)) != CS_OK)
        goto close_store;
    if ((rc = raw_open(&b.same, same_dir, o->nosync, map_size, err)) != CS_OK)
        goto close_raw;
    if ((rc = raw_fill_tasks(&b.raw, b.store, err)) != CS_OK ||
        (rc = raw_fill_tasks(&b.same, b.store, err)) != CS_OK ||
        (rc = raw_fill(&b.same, machine_record_key, NULL, o->machines, f->machine_size, err)) !=
            CS_OK ||
        (rc = raw_fill(&b.same, placed_key, NULL, o->machines, 8, err)) != CS_OK)
        goto close_same;

    rc = run_rounds(&b, o, &c, f, err);

close_same:
    raw_close(&b.same);
close_raw:
    raw_close(&b.raw);
close_store:
    cs_store_close(b.store);
    cb_cell_free(&c);
remove_tmpdir:
    cb_rmtree(root);
    return rc;
}

static int commit_main(int argc, char **argv)
{
    commit_opts o;
    cs_error err = {0};
    switch (commit_parse(argc, argv, &o, &err)) {
    case CB_PARSE_HELP:
        usage(stdout);
        return 0;
    case CB_PARSE_BAD:
        fprintf(stderr, "cellbench commit: %s\n", err.msg);
        usage(stderr);
        return CB_EXIT_USAGE;
    default:
        break;
    }
    cb_host h;
    cb_host_read(&h);
    commit_figures f;
    int rc = commit_run(&o, &f, &err);
    if (rc != CS_OK) {
        fprintf(stderr, "cellbench commit: %s (%s)\n", err.msg, cs_strerror(rc));
        return CB_EXIT_RUN;
    }
    commit_rates r;
    commit_rates_of(&f, &r);
    commit_report_text(stdout, &o, &h, &f, &r);
    if (o.json)
        commit_report_json(stdout, &o, &h, &f, &r);
    return fflush(stdout) == 0 ? 0 : CB_EXIT_RUN;
}

/* ---- dispatch ---------------------------------------------------------------------- */

/* One entry per benchmark. */
typedef struct benchmark {
    const char *name;
    int (*main)(int argc, char **argv);
} benchmark;

static const benchmark benchmarks[] = {
    {"commit", commit_main},
    {"poll", cb_poll_main},
    {"place", cb_place_main},
    {"etcd", cb_etcd_main},
};

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs("cellbench: which benchmark?\n", stderr);
        usage(stderr);
        return CB_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof benchmarks / sizeof *benchmarks; i++)
        if (strcmp(argv[1], benchmarks[i].name) == 0)
            return benchmarks[i].main(argc - 1, argv + 1);
    fprintf(stderr, "cellbench: unknown benchmark '%s'\n", argv[1]);
    usage(stderr);
    return CB_EXIT_USAGE;
}
