/* store.c — LMDB environment, snapshots, write transactions, the commit log
 * (see store.h). */
#include "cellstate/store.h"
#include "cellstate/be.h"

#include "cellstate/alloc.h"
#include "cellstate/mpcheck.h"
#include "cellstate/recview.h"
#include "cellstate/vec.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the idempotency index ------------------------------------------------ */

/* An idempotency record is kept in the log entry of the command it belongs
 * to (its result beside the command), and found through this in-memory
 * index, rebuilt from the log at open. Both live exactly as long as the log
 * entry (compaction drops them together), and a commit writes one record
 * fewer: a leaf and a branch page of a B-tree of their own. Open addressing
 * with linear probing; entries are removed only by compaction, which
 * rebuilds the table. */
typedef struct reqent {
    uint64_t sched, req;
    uint64_t version; /* the log key of the entry holding the result */
    uint32_t n;
    bool used;
} reqent;

typedef struct reqidx {
    reqent *v;
    size_t cap; /* 0 or a power of two, kept at least twice count */
    size_t count;
} reqidx;

static size_t req_hash(uint64_t sched, uint64_t req, size_t cap)
{
    uint64_t h = (sched * UINT64_C(0x9E3779B97F4A7C15)) ^ req;
    h *= UINT64_C(0xBF58476D1CE4E5B9);
    return (size_t)(h >> 32) & (cap - 1);
}

/* The entry for (sched, req), or the empty slot where it would go. */
static reqent *req_slot(const reqidx *x, uint64_t sched, uint64_t req)
{
    size_t i = req_hash(sched, req, x->cap);
    while (x->v[i].used && (x->v[i].sched != sched || x->v[i].req != req))
        i = (i + 1) & (x->cap - 1);
    return &x->v[i];
}

static const reqent *req_find(const reqidx *x, uint64_t sched, uint64_t req)
{
    if (x->cap == 0)
        return NULL;
    const reqent *e = req_slot(x, sched, req);
    return e->used ? e : NULL;
}

/* Copy into `out`, a new table of `cap` slots, the entries logged at or
 * after version `from`. */
static int req_copy(const reqidx *x, size_t cap, uint64_t from, reqidx *out)
{
    reqent *v = calloc(cap, sizeof *v);
    if (v == NULL)
        return CS_ENOMEM;
    *out = (reqidx){v, cap, 0};
    for (size_t i = 0; i < x->cap; i++)
        if (x->v[i].used && x->v[i].version >= from) {
            *req_slot(out, x->v[i].sched, x->v[i].req) = x->v[i];
            out->count++;
        }
    return CS_OK;
}

/* Make room for `k` more entries, so that the inserts that follow a commit
 * cannot fail. */
static int req_reserve(reqidx *x, size_t k)
{
    if ((x->count + k) * 2 <= x->cap)
        return CS_OK;
    size_t cap = x->cap ? x->cap * 2 : 1024;
    while ((x->count + k) * 2 > cap)
        cap *= 2;
    reqidx y;
    if (req_copy(x, cap, 0, &y) != CS_OK)
        return CS_ENOMEM;
    free(x->v);
    *x = y;
    return CS_OK;
}

/* Record (or move) (sched, req) to the log entry (version, n). Room must
 * have been reserved. */
static void req_insert(reqidx *x, uint64_t sched, uint64_t req, uint64_t version, uint32_t n)
{
    reqent *e = req_slot(x, sched, req);
    if (!e->used)
        x->count++;
    *e = (reqent){sched, req, version, n, true};
}

/* A request recorded by a command of an open group: indexed once the group
 * is committed, found here until then. */
typedef struct wgroup_req {
    uint64_t sched, req, version;
    uint32_t n;
} wgroup_req;

/* Group commit (cs_store_group_begin): the commands of a group share one
 * LMDB write transaction and one allocation overlay; each keeps its own
 * version and log entry. */
typedef struct wgroup {
    pthread_t owner;
    MDB_txn *txn;
    cs_alloc_txn *alloc;
    uint64_t version; /* the cell version after the group's last command */
    bool poisoned;    /* a command failed after writing: the group cannot commit */
    wgroup_req *reqs;
    size_t nreqs, capreqs;
} wgroup;

struct cs_store {
    MDB_env *env;
    MDB_dbi dbi[CS_DB_COUNT];
    _Atomic uint64_t puts, put_bytes;
    /* Machines' allocations, derived from the placed tasks (alloc.h). */
    cs_alloc *alloc;
    /* The snapshot registry: `mu` orders snapshot opens against publishing
     * a commit's allocations, so that a snapshot never sees an LMDB version
     * whose allocations are not published yet (it waits on `published_cv`),
     * and the writer never frees allocations an open snapshot can reach
     * (it trims behind the oldest registered version). */
    pthread_mutex_t mu;
    pthread_cond_t published_cv;
    uint64_t published;
    cs_snap *readers; /* open snapshots, a doubly linked list */
    /* Set when a commit reached LMDB but its allocations could not be
     * published (out of memory): the table no longer matches the store, so
     * every later snapshot and write is refused until the store is reopened. */
    bool broken;
    /* Held by the writer from cs_wtxn_begin until its transaction is
     * committed and published, or aborted (and by compaction): LMDB's own
     * write lock is released inside mdb_txn_commit, before the writer has
     * published what the next writer reads (allocations, requests). */
    pthread_mutex_t writer;
    /* Where each idempotency record is: (scheduler, request) -> the log
     * entry that holds its first result. Writer-only. */
    reqidx requests;
    /* The open group, or NULL; set and read by its owner (under `writer`),
     * read by other threads only to see that it is not theirs. */
    _Atomic(wgroup *) group;
    /* cs_store_opts.committed and its context. */
    void (*committed)(void *ctx, uint64_t ns);
    void *committed_ctx;
};

struct cs_snap {
    cs_store *store;
    MDB_txn *txn;
    uint64_t version, floor;
    uint32_t log_n;        /* sub-index of the last log entry at `version` */
    /* In a write transaction: a cursor on tasks for the point reads and
     * writes of a commit, opened on first use and closed with the
     * transaction. Claims name tasks that share leaves (a job's tasks are
     * adjacent), and LMDB searches the cursor's current leaf before
     * descending from the root, which mdb_get and mdb_put always do. */
    MDB_cursor *tasks;
    bool in_wtxn;          /* a view of a write transaction: not closed by cs_snap_close */
    cs_alloc_txn *alloc;   /* in a write transaction: its allocation changes */
    cs_snap *rprev, *rnext; /* the registry list (readers only) */
};

static void swap_ids(cs_id *a, cs_id *b)
{
    cs_id t = *a;
    *a = *b;
    *b = t;
}

/* Quicksort (median of three, insertion sort below 16) with the comparison
 * inlined: qsort's merge sort allocates and calls a comparison function per
 * step, which cost 7% of a 100-claim commit's instructions. */
static void sort_ids(cs_id *v, size_t n)
{
    while (n > 16) {
        size_t m = n / 2;
        if (v[m] < v[0])
            swap_ids(&v[m], &v[0]);
        if (v[n - 1] < v[0])
            swap_ids(&v[n - 1], &v[0]);
        if (v[n - 1] < v[m])
            swap_ids(&v[n - 1], &v[m]);
        cs_id pivot = v[m];
        size_t i = 0, j = n - 1;
        for (;;) {
            while (v[i] < pivot)
                i++;
            while (pivot < v[j])
                j--;
            if (i >= j)
                break;
            swap_ids(&v[i++], &v[j--]);
        }
        /* v[0..j] <= pivot <= v[j+1..n): recurse on the smaller side. */
        if (j + 1 < n - j - 1) {
            sort_ids(v, j + 1);
            v += j + 1;
            n -= j + 1;
        } else {
            sort_ids(v + j + 1, n - j - 1);
            n = j + 1;
        }
    }
    for (size_t i = 1; i < n; i++) {
        cs_id x = v[i];
        size_t k = i;
        for (; k > 0 && v[k - 1] > x; k--)
            v[k] = v[k - 1];
        v[k] = x;
    }
}

/* Sort and drop repeats; returns the new count. A commit's tasks usually
 * come in order already. */
static size_t sort_unique(cs_id *v, size_t n)
{
    if (n == 0)
        return 0;
    size_t sorted = 1;
    while (sorted < n && v[sorted - 1] <= v[sorted])
        sorted++;
    if (sorted < n)
        sort_ids(v, n);
    size_t w = 1;
    for (size_t i = 1; i < n; i++)
        if (v[i] != v[w - 1])
            v[w++] = v[i];
    return w;
}

struct cs_wtxn {
    cs_snap snap;
    wgroup *group; /* the group it belongs to, or NULL */
    bool dirty;   /* something was written (records, ids, allocations) */
    uint64_t new_version;
    cs_ids touched[CS_KIND_COUNT]; /* keys this transaction wrote, for the log entry */
    msgpack_sbuffer buf; /* encoding scratch */
    /* The idempotency record put in this transaction, for its log entry. */
    bool has_request;
    uint64_t sched, req;
    msgpack_sbuffer result;
};

static const char *const db_names[CS_DB_COUNT] = {
    "meta", "machines", "machine_names", "jobs", "job_names", "tasks", "log",
};

const char *cs_db_name(cs_db db) { return db < CS_DB_COUNT ? db_names[db] : "unknown"; }

/* ---- keys and meta ---------------------------------------------------- */

static int lmdb_err(cs_error *err, int rc, const char *what)
{
    int code = rc == MDB_MAP_FULL ? CS_EFULL : rc == ENOMEM ? CS_ENOMEM : CS_EIO;
    return cs_errorf(err, code, "%s: %s", what, mdb_strerror(rc));
}

static int meta_get(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t *out, bool *found,
                    cs_error *err)
{
    MDB_val k = {strlen(key), (void *)key}, v;
    int rc = mdb_get(txn, dbi, &k, &v);
    if (rc == MDB_NOTFOUND) {
        *found = false;
        *out = 0;
        return CS_OK;
    }
    if (rc != 0)
        return lmdb_err(err, rc, "reading meta");
    if (v.mv_size != 8)
        return cs_errorf(err, CS_ECORRUPT, "meta record '%s' has %zu bytes, expected 8", key,
                         v.mv_size);
    *found = true;
    *out = cs_be64_get(v.mv_data);
    return CS_OK;
}

static uint64_t meta_or_zero(MDB_txn *txn, MDB_dbi dbi, const char *key)
{
    uint64_t v;
    bool found;
    return meta_get(txn, dbi, key, &v, &found, NULL) == CS_OK ? v : 0;
}

static int meta_put(cs_store *s, MDB_txn *txn, const char *key, uint64_t val, cs_error *err)
{
    uint8_t b[8];
    cs_be64_put(b, val);
    MDB_val k = {strlen(key), (void *)key}, v = {8, b};
    int rc = mdb_put(txn, s->dbi[CS_DB_META], &k, &v, 0);
    if (rc != 0)
        return lmdb_err(err, rc, "writing meta");
    s->puts++;
    s->put_bytes += 8;
    return CS_OK;
}

/* ---- timing commits (cs_store_opts.committed) -------------------------- */

/* The monotonic clock in nanoseconds when commits are timed, else 0 (no
 * clock read on the path of a store nobody measures). */
static int64_t commit_clock(const cs_store *s)
{
    if (s->committed == NULL)
        return 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void commit_timed(const cs_store *s, int64_t t0)
{
    if (s->committed == NULL)
        return;
    int64_t t1 = commit_clock(s);
    s->committed(s->committed_ctx, t1 > t0 ? (uint64_t)(t1 - t0) : 0);
}

/* ---- open and close --------------------------------------------------- */

static int rebuild_alloc(cs_store *s, cs_error *err);

int cs_store_open(const char *dir, const cs_store_opts *opts, cs_store **out, cs_error *err)
{
    cs_store_opts o = {0};
    if (opts != NULL)
        o = *opts;
    if (o.map_size == 0)
        o.map_size = (size_t)4 << 30;

    cs_store *s = calloc(1, sizeof *s);
    if (s == NULL)
        return cs_errorf(err, CS_ENOMEM, "opening store: out of memory");
    int rc = mdb_env_create(&s->env);
    if (rc != 0) {
        rc = lmdb_err(err, rc, "creating LMDB environment");
        goto err_after_alloc;
    }
    if ((rc = mdb_env_set_maxdbs(s->env, CS_DB_COUNT)) != 0 ||
        (rc = mdb_env_set_mapsize(s->env, o.map_size)) != 0 ||
        (rc = mdb_env_set_maxreaders(s->env, 1022)) != 0) {
        rc = lmdb_err(err, rc, "configuring LMDB environment");
        goto err_after_env;
    }
    unsigned flags = MDB_NOTLS | (o.nosync ? MDB_NOSYNC : 0) | (o.writemap ? MDB_WRITEMAP : 0);
    if ((rc = mdb_env_open(s->env, dir, flags, 0644)) != 0) {
        rc = cs_errorf(err, rc == ENOENT ? CS_ENOTFOUND : CS_EIO, "opening store in %s: %s", dir,
                       mdb_strerror(rc));
        goto err_after_env;
    }

    MDB_txn *txn;
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0) {
        rc = lmdb_err(err, rc, "opening store");
        goto err_after_env;
    }
    for (int i = 0; i < CS_DB_COUNT; i++) {
        if ((rc = mdb_dbi_open(txn, db_names[i], MDB_CREATE, &s->dbi[i])) != 0) {
            rc = lmdb_err(err, rc, "opening database");
            goto err_after_txn;
        }
    }
    uint64_t schema;
    bool found;
    if ((rc = meta_get(txn, s->dbi[CS_DB_META], "schema", &schema, &found, err)) != CS_OK)
        goto err_after_txn;
    if (!found) {
        if ((rc = meta_put(s, txn, "schema", CS_SCHEMA_VERSION, err)) != CS_OK ||
            (rc = meta_put(s, txn, "version", 0, err)) != CS_OK ||
            (rc = meta_put(s, txn, "floor", 0, err)) != CS_OK)
            goto err_after_txn;
    } else if (schema != CS_SCHEMA_VERSION) {
        rc = cs_errorf(err, CS_ESCHEMA,
                       "store in %s has schema version %llu; this build reads version %d", dir,
                       (unsigned long long)schema, CS_SCHEMA_VERSION);
        goto err_after_txn;
    }
    if ((rc = mdb_txn_commit(txn)) != 0) {
        rc = lmdb_err(err, rc, "opening store");
        goto err_after_env;
    }
    if ((rc = cs_alloc_create(&s->alloc, err)) != CS_OK)
        goto err_after_env;
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->writer, NULL);
    pthread_cond_init(&s->published_cv, NULL);
    if ((rc = rebuild_alloc(s, err)) != CS_OK)
        goto err_after_table;
    s->puts = s->put_bytes = 0;
    s->committed = o.committed;
    s->committed_ctx = o.committed_ctx;
    *out = s;
    return CS_OK;

err_after_table:
    pthread_cond_destroy(&s->published_cv);
    pthread_mutex_destroy(&s->writer);
    pthread_mutex_destroy(&s->mu);
    cs_alloc_destroy(s->alloc);
    free(s->requests.v);
    goto err_after_env;
err_after_txn:
    mdb_txn_abort(txn);
err_after_env:
    mdb_env_close(s->env);
err_after_alloc:
    free(s);
    return rc;
}

void cs_store_close(cs_store *s)
{
    if (s == NULL)
        return;
    cs_alloc_destroy(s->alloc);
    free(s->requests.v);
    pthread_cond_destroy(&s->published_cv);
    pthread_mutex_destroy(&s->writer);
    pthread_mutex_destroy(&s->mu);
    mdb_env_close(s->env);
    free(s);
}

void cs_store_get_stats(cs_store *s, cs_store_stats *out)
{
    out->puts = s->puts;
    out->put_bytes = s->put_bytes;
}

/* ---- snapshots -------------------------------------------------------- */

/* The cell version and the last log sub-index are those of the last log
 * entry: every commit appends one, and compaction, which may delete them
 * all, leaves them in meta. */
static int snap_load_meta(cs_snap *snap, cs_error *err)
{
    MDB_dbi meta = snap->store->dbi[CS_DB_META];
    snap->floor = meta_or_zero(snap->txn, meta, "floor");
    MDB_cursor *cur;
    int rc = mdb_cursor_open(snap->txn, snap->store->dbi[CS_DB_LOG], &cur);
    if (rc != 0)
        return lmdb_err(err, rc, "reading the cell version");
    MDB_val k, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND) {
        snap->version = meta_or_zero(snap->txn, meta, "version");
        snap->log_n = (uint32_t)meta_or_zero(snap->txn, meta, "log_n");
        return CS_OK;
    }
    if (rc != 0)
        return lmdb_err(err, rc, "reading the cell version");
    if (k.mv_size != 12)
        return cs_errorf(err, CS_ECORRUPT, "log key of %zu bytes", k.mv_size);
    snap->version = cs_be64_get(k.mv_data);
    snap->log_n = cs_be32_get((const uint8_t *)k.mv_data + 8);
    return CS_OK;
}

static int broken(cs_error *err)
{
    return cs_errorf(err, CS_ENOMEM, "the allocation table was lost after running out of memory: "
                                     "reopen the store");
}

int cs_snap_open(cs_store *s, cs_snap **out, cs_error *err)
{
    cs_snap *snap = calloc(1, sizeof *snap);
    if (snap == NULL)
        return cs_errorf(err, CS_ENOMEM, "snapshot: out of memory");
    snap->store = s;
    /* Begin and register under `mu`, so that the writer's trim (also under
     * `mu`) either counts this snapshot or runs before it began. */
    pthread_mutex_lock(&s->mu);
    int rc = s->broken ? -1 : mdb_txn_begin(s->env, NULL, MDB_RDONLY, &snap->txn);
    if (rc != 0) {
        pthread_mutex_unlock(&s->mu);
        free(snap);
        return rc == -1 ? broken(err) : lmdb_err(err, rc, "beginning snapshot");
    }
    if ((rc = snap_load_meta(snap, err)) != CS_OK) {
        pthread_mutex_unlock(&s->mu);
        mdb_txn_abort(snap->txn);
        free(snap);
        return rc;
    }
    /* LMDB has committed this version; its allocations follow at once. */
    while (s->published < snap->version && !s->broken)
        pthread_cond_wait(&s->published_cv, &s->mu);
    snap->rnext = s->readers;
    if (s->readers != NULL)
        s->readers->rprev = snap;
    s->readers = snap;
    pthread_mutex_unlock(&s->mu);
    *out = snap;
    return CS_OK;
}

void cs_snap_close(cs_snap *snap)
{
    if (snap == NULL || snap->in_wtxn)
        return;
    cs_store *s = snap->store;
    pthread_mutex_lock(&s->mu);
    if (snap->rprev != NULL)
        snap->rprev->rnext = snap->rnext;
    else
        s->readers = snap->rnext;
    if (snap->rnext != NULL)
        snap->rnext->rprev = snap->rprev;
    pthread_mutex_unlock(&s->mu);
    mdb_txn_abort(snap->txn);
    free(snap);
}

/* The oldest version an open snapshot reads, or `now` when none. Under mu. */
static uint64_t oldest_reader(const cs_store *s, uint64_t now)
{
    uint64_t v = now;
    for (const cs_snap *r = s->readers; r != NULL; r = r->rnext)
        if (r->version < v)
            v = r->version;
    return v;
}

static uint64_t max3(uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t m = a > b ? a : b;
    return m > c ? m : c;
}

static void spec_of(const cs_machine *m, cs_alloc_spec *out)
{
    *out = (cs_alloc_spec){m->capacity, m->port_lo, m->port_hi, m->state, m->admin, m->version};
}

static void alloc_view(cs_snap *snap, cs_id machine, cs_alloc_view *v)
{
    if (snap->alloc != NULL)
        cs_alloc_txn_get(snap->alloc, machine, v);
    else
        cs_alloc_get(snap->store->alloc, machine, snap->version, v);
}

/* Fill a machine's derived part from the allocation view `v`. The ports
 * are copied into `a` with the record. */
static int derive_from(cs_snap *snap, const cs_alloc_view *v, cs_machine *m, cs_arena *a,
                       cs_error *err)
{
    m->allocated = v->allocated;
    m->ntasks = v->ntasks;
    m->nports = v->nports;
    m->ports = NULL;
    if (v->nports > 0) {
        if ((m->ports = cs_arena_alloc(a, v->nports * sizeof *m->ports)) == NULL)
            return cs_errorf(err, CS_ENOMEM, "machine %llu: out of memory",
                             (unsigned long long)m->id);
        memcpy(m->ports, v->ports, v->nports * sizeof *m->ports);
    }
    /* seq: the last change, record or placement. Raised to the floor so
     * that a store reopened after compaction, which learns placement
     * changes from the log above the floor only, presents the same value. */
    m->seq = max3(m->version, v->changed, snap->floor);
    m->record_version = m->version;
    if (v->changed > m->version)
        m->version = v->changed;
    return CS_OK;
}

/* Fill a decoded machine's derived part from the allocation table as this
 * snapshot sees it. */
static int derive_machine(cs_snap *snap, cs_machine *m, cs_arena *a, cs_error *err)
{
    cs_alloc_view v;
    alloc_view(snap, m->id, &v);
    return derive_from(snap, &v, m, a, err);
}

static int get_by_id(cs_snap *snap, cs_kind kind, cs_id id, cs_arena *a, void *out,
                     cs_error *err);

int cs_snap_machine_fit(cs_snap *snap, cs_id id, cs_arena *a, cs_machine *out, cs_error *err)
{
    cs_alloc_view v;
    alloc_view(snap, id, &v);
    /* Not in the table: absent, or a record that could not be decoded at
     * open. Reading the record says which, in the usual words. */
    if (!v.known)
        return get_by_id(snap, CS_KIND_MACHINE, id, a, out, err);
    memset(out, 0, sizeof *out);
    out->id = id;
    out->capacity = v.spec.capacity;
    out->port_lo = v.spec.port_lo;
    out->port_hi = v.spec.port_hi;
    out->state = v.spec.state;
    out->admin = v.spec.admin;
    out->version = v.spec.version;
    return derive_from(snap, &v, out, a, err);
}

uint64_t cs_snap_version(const cs_snap *snap) { return snap->version; }
uint64_t cs_snap_floor(const cs_snap *snap) { return snap->floor; }

int cs_snap_log_size(cs_snap *snap, uint64_t *entries, uint64_t *bytes, cs_error *err)
{
    MDB_stat st;
    int rc = mdb_stat(snap->txn, snap->store->dbi[CS_DB_LOG], &st);
    if (rc != 0)
        return lmdb_err(err, rc, "reading the log's size");
    *entries = st.ms_entries;
    *bytes = (uint64_t)st.ms_psize * (st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages);
    return CS_OK;
}

static const char *const kind_names[CS_KIND_COUNT] = {"machine", "job", "task"};

static const cs_db kind_db[CS_KIND_COUNT] = {CS_DB_MACHINES, CS_DB_JOBS, CS_DB_TASKS};

typedef union any_rec {
    cs_machine m;
    cs_job j;
    cs_task t;
} any_rec;

/* Decode a record of `kind` into `out`, a cs_machine, cs_job or cs_task. */
static int rec_decode(cs_kind kind, const MDB_val *v, cs_arena *a, void *out, cs_error *err)
{
    switch (kind) {
    case CS_KIND_MACHINE:
        return cs_machine_decode(v->mv_data, v->mv_size, a, out, err);
    case CS_KIND_JOB:
        return cs_job_decode(v->mv_data, v->mv_size, a, out, err);
    default:
        /* The fast path declines what it does not know; the full decoder
         * then decodes it or says what is wrong. */
        if (cs_task_view(v->mv_data, v->mv_size, a, out))
            return CS_OK;
        return cs_task_decode(v->mv_data, v->mv_size, a, out, err);
    }
}

/* Decode the record of `kind` and `id` held in `v` into `out`, as a point
 * read or a walk gives it: a failure names the record, and a machine gets
 * its derived part. */
static int rec_read(cs_snap *snap, cs_kind kind, cs_id id, const MDB_val *v, cs_arena *a,
                    void *out, cs_error *err)
{
    int rc = rec_decode(kind, v, a, out, err);
    if (rc != CS_OK)
        return cs_error_wrap(err, rc, "%s %llu", kind_names[kind], (unsigned long long)id);
    if (kind == CS_KIND_MACHINE)
        return derive_machine(snap, out, a, err);
    return CS_OK;
}

static int unknown_record(cs_error *err, cs_kind kind, cs_id id)
{
    return cs_errorf(err, CS_ENOTFOUND, "unknown %s %llu", kind_names[kind],
                     (unsigned long long)id);
}

/* The write transaction's cursor on tasks (see cs_snap). */
static int tasks_cursor(cs_snap *snap, MDB_cursor **out, cs_error *err)
{
    if (snap->tasks == NULL) {
        int rc = mdb_cursor_open(snap->txn, snap->store->dbi[CS_DB_TASKS], &snap->tasks);
        if (rc != 0) {
            snap->tasks = NULL;
            return lmdb_err(err, rc, "opening the tasks cursor");
        }
    }
    *out = snap->tasks;
    return CS_OK;
}

static int get_by_id(cs_snap *snap, cs_kind kind, cs_id id, cs_arena *a, void *out,
                     cs_error *err)
{
    cs_db db = kind_db[kind];
    uint8_t kb[8];
    cs_be64_put(kb, id);
    MDB_val k = {8, kb}, v;
    MDB_cursor *cur = NULL;
    int rc;
    if (kind == CS_KIND_TASK && snap->in_wtxn) {
        if ((rc = tasks_cursor(snap, &cur, err)) != CS_OK)
            return rc;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
    } else {
        rc = mdb_get(snap->txn, snap->store->dbi[db], &k, &v);
    }
    if (rc == MDB_NOTFOUND)
        return unknown_record(err, kind, id);
    if (rc != 0)
        return lmdb_err(err, rc, "reading record");
    return rec_read(snap, kind, id, &v, a, out, err);
}

static int id_by_name(cs_snap *snap, cs_db db, const char *what, const char *name, cs_id *id,
                      cs_error *err)
{
    size_t n = strlen(name);
    if (n == 0 || n > CS_NAME_MAX)
        return cs_errorf(err, CS_ENOTFOUND, "unknown %s '%.64s'", what, name);
    MDB_val k = {n, (void *)name}, v;
    int rc = mdb_get(snap->txn, snap->store->dbi[db], &k, &v);
    if (rc == MDB_NOTFOUND)
        return cs_errorf(err, CS_ENOTFOUND, "unknown %s '%s'", what, name);
    if (rc != 0)
        return lmdb_err(err, rc, "reading name index");
    if (v.mv_size != 8)
        return cs_errorf(err, CS_ECORRUPT, "%s name index entry for '%s' is corrupt", what, name);
    *id = cs_be64_get(v.mv_data);
    return CS_OK;
}

int cs_snap_machine(cs_snap *snap, cs_id id, cs_arena *a, cs_machine *out, cs_error *err)
{
    return get_by_id(snap, CS_KIND_MACHINE, id, a, out, err);
}

int cs_snap_machine_by_name(cs_snap *snap, const char *name, cs_arena *a, cs_machine *out,
                            cs_error *err)
{
    cs_id id;
    int rc = id_by_name(snap, CS_DB_MACHINE_NAMES, "machine", name, &id, err);
    return rc != CS_OK ? rc : cs_snap_machine(snap, id, a, out, err);
}

int cs_snap_job(cs_snap *snap, cs_id id, cs_arena *a, cs_job *out, cs_error *err)
{
    return get_by_id(snap, CS_KIND_JOB, id, a, out, err);
}

int cs_snap_job_by_name(cs_snap *snap, const char *name, cs_arena *a, cs_job *out, cs_error *err)
{
    cs_id id;
    int rc = id_by_name(snap, CS_DB_JOB_NAMES, "job", name, &id, err);
    return rc != CS_OK ? rc : cs_snap_job(snap, id, a, out, err);
}

int cs_snap_task(cs_snap *snap, cs_id id, cs_arena *a, cs_task *out, cs_error *err)
{
    return get_by_id(snap, CS_KIND_TASK, id, a, out, err);
}

/* A callback of one of the three record kinds, called through one switch so
 * that each_record can serve all three without casting function pointers. */
typedef struct rec_visit {
    cs_kind kind;
    cs_machine_fn machine;
    cs_job_fn job;
    cs_task_fn task;
    void *ctx;
} rec_visit;

static int rec_call(const rec_visit *vis, const any_rec *rec)
{
    switch (vis->kind) {
    case CS_KIND_MACHINE:
        return vis->machine(vis->ctx, &rec->m);
    case CS_KIND_JOB:
        return vis->job(vis->ctx, &rec->j);
    default:
        return vis->task(vis->ctx, &rec->t);
    }
}

/* Decode one record into the scratch arena `a` (reset first: the record
 * lives only during the call) and pass it to the visitor. */
static int rec_visit_one(cs_snap *snap, const rec_visit *vis, cs_id id, const MDB_val *v,
                         cs_arena *a, cs_error *err)
{
    any_rec rec;
    cs_arena_reset(a);
    int rc = rec_read(snap, vis->kind, id, v, a, &rec, err);
    return rc != CS_OK ? rc : rec_call(vis, &rec);
}

/* Iterate records of one kind with ids in [lo, hi), at most `limit` of
 * them (0: no limit), decoding each into a scratch arena reset between
 * records. */
static int each_record(cs_snap *snap, const rec_visit *vis, uint64_t lo, uint64_t hi,
                       size_t limit, cs_error *err)
{
    cs_db db = kind_db[vis->kind];
    MDB_cursor *cur;
    int rc = mdb_cursor_open(snap->txn, snap->store->dbi[db], &cur);
    if (rc != 0)
        return lmdb_err(err, rc, "opening cursor");
    cs_arena a;
    cs_arena_init(&a);
    uint8_t kb[8];
    cs_be64_put(kb, lo);
    MDB_val k = {8, kb}, v;
    int op = MDB_SET_RANGE;
    int result = CS_OK;
    size_t seen = 0;
    while ((limit == 0 || seen++ < limit) && (rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
        op = MDB_NEXT;
        if (k.mv_size != 8) {
            result = cs_errorf(err, CS_ECORRUPT, "%s database has a key of %zu bytes",
                               db_names[db], k.mv_size);
            break;
        }
        uint64_t id = cs_be64_get(k.mv_data);
        if (id >= hi)
            break;
        if ((result = rec_visit_one(snap, vis, id, &v, &a, err)) != 0)
            break;
    }
    if (result == CS_OK && rc != 0 && rc != MDB_NOTFOUND)
        result = lmdb_err(err, rc, "iterating");
    cs_arena_free(&a);
    mdb_cursor_close(cur);
    return result;
}

/* Position `cur` on the record of `id` (its key in kb, 8 bytes) and read it
 * into *v. The cursor is first stepped to the next key: a walk over a
 * commit's ids mostly wants just that (a job's tasks are adjacent and a
 * commit changes runs of them), and a step stays on the cursor's leaf,
 * where a search descends from the root comparing keys at each level. Only
 * when the next key is not `id` (or `step` is false: the cursor is not known
 * to be just before it) is the key searched for. */
static int seek_id(MDB_cursor *cur, const uint8_t *kb, bool step, MDB_val *v)
{
    MDB_val k;
    if (step) {
        int rc = mdb_cursor_get(cur, &k, v, MDB_NEXT);
        if (rc == 0 && k.mv_size == 8 && memcmp(k.mv_data, kb, 8) == 0)
            return 0;
        if (rc != 0 && rc != MDB_NOTFOUND)
            return rc;
    }
    k = (MDB_val){8, (void *)kb};
    return mdb_cursor_get(cur, &k, v, MDB_SET_KEY);
}

/* Visit the records of `ids` (ascending, unique) through one cursor: the
 * write transaction's own for tasks (it sees the transaction's writes and
 * stays open with it), else a cursor of this walk. */
static int each_in(cs_snap *snap, const rec_visit *vis, const cs_id *ids, size_t n,
                   cs_error *err)
{
    /* Checked first, so that a bad list visits nothing rather than part. */
    for (size_t i = 1; i < n; i++)
        if (ids[i] <= ids[i - 1])
            return cs_errorf(err, CS_EINVAL,
                             "%s ids are not ascending and unique: %llu at position %zu "
                             "follows %llu",
                             kind_names[vis->kind], (unsigned long long)ids[i], i,
                             (unsigned long long)ids[i - 1]);
    if (n == 0)
        return CS_OK;
    MDB_cursor *cur;
    bool own = !(vis->kind == CS_KIND_TASK && snap->in_wtxn);
    int rc;
    if (!own)
        CS_TRY(tasks_cursor(snap, &cur, err));
    else if ((rc = mdb_cursor_open(snap->txn, snap->store->dbi[kind_db[vis->kind]], &cur)) != 0)
        return lmdb_err(err, rc, "opening cursor");
    cs_arena a;
    cs_arena_init(&a);
    int result = CS_OK;
    for (size_t i = 0; i < n && result == CS_OK; i++) {
        uint8_t kb[8];
        cs_be64_put(kb, ids[i]);
        MDB_val v;
        /* The first id is searched: the write transaction's cursor may be
         * anywhere, and a fresh one would step to the first key. */
        rc = seek_id(cur, kb, i > 0, &v);
        if (rc == MDB_NOTFOUND)
            result = unknown_record(err, vis->kind, ids[i]);
        else if (rc != 0)
            result = lmdb_err(err, rc, "reading record");
        else
            result = rec_visit_one(snap, vis, ids[i], &v, &a, err);
    }
    cs_arena_free(&a);
    if (own)
        mdb_cursor_close(cur);
    return result;
}

int cs_snap_each_task_in(cs_snap *snap, const cs_id *ids, size_t n, cs_task_fn fn, void *ctx,
                         cs_error *err)
{
    rec_visit vis = {.kind = CS_KIND_TASK, .task = fn, .ctx = ctx};
    return each_in(snap, &vis, ids, n, err);
}

int cs_snap_each_machine(cs_snap *snap, cs_machine_fn fn, void *ctx, cs_error *err)
{
    rec_visit vis = {.kind = CS_KIND_MACHINE, .machine = fn, .ctx = ctx};
    return each_record(snap, &vis, 0, UINT64_MAX, 0, err);
}

int cs_snap_each_job(cs_snap *snap, cs_job_fn fn, void *ctx, cs_error *err)
{
    rec_visit vis = {.kind = CS_KIND_JOB, .job = fn, .ctx = ctx};
    return each_record(snap, &vis, 0, UINT64_MAX, 0, err);
}

int cs_snap_each_task(cs_snap *snap, cs_task_fn fn, void *ctx, cs_error *err)
{
    rec_visit vis = {.kind = CS_KIND_TASK, .task = fn, .ctx = ctx};
    return each_record(snap, &vis, 0, UINT64_MAX, 0, err);
}

int cs_snap_each_machine_from(cs_snap *snap, cs_id from, size_t limit, cs_machine_fn fn,
                              void *ctx, cs_error *err)
{
    rec_visit vis = {.kind = CS_KIND_MACHINE, .machine = fn, .ctx = ctx};
    return each_record(snap, &vis, from, UINT64_MAX, limit, err);
}

int cs_snap_each_job_from(cs_snap *snap, cs_id from, size_t limit, cs_job_fn fn, void *ctx,
                          cs_error *err)
{
    rec_visit vis = {.kind = CS_KIND_JOB, .job = fn, .ctx = ctx};
    return each_record(snap, &vis, from, UINT64_MAX, limit, err);
}

int cs_snap_each_task_from(cs_snap *snap, cs_id from, size_t limit, cs_task_fn fn, void *ctx,
                           cs_error *err)
{
    rec_visit vis = {.kind = CS_KIND_TASK, .task = fn, .ctx = ctx};
    return each_record(snap, &vis, from, UINT64_MAX, limit, err);
}

int cs_snap_last_id(cs_snap *snap, cs_kind kind, cs_id *out, cs_error *err)
{
    *out = 0;
    if ((unsigned)kind >= CS_KIND_COUNT)
        return cs_errorf(err, CS_EINVAL, "unknown record kind %d", (int)kind);
    MDB_cursor *cur;
    int rc = mdb_cursor_open(snap->txn, snap->store->dbi[kind_db[kind]], &cur);
    if (rc != 0)
        return lmdb_err(err, rc, "opening cursor");
    MDB_val k, v;
    int result = CS_OK;
    if ((rc = mdb_cursor_get(cur, &k, &v, MDB_LAST)) == 0 && k.mv_size == 8)
        *out = cs_be64_get(k.mv_data);
    else if (rc == 0)
        result = cs_errorf(err, CS_ECORRUPT, "%s database has a key of %zu bytes",
                           db_names[kind_db[kind]], k.mv_size);
    else if (rc != MDB_NOTFOUND)
        result = lmdb_err(err, rc, "reading the last key");
    mdb_cursor_close(cur);
    return result;
}

int cs_snap_each_task_of_job(cs_snap *snap, cs_id job, cs_task_fn fn, void *ctx, cs_error *err)
{
    if (job > CS_JOB_ID_MAX)
        return cs_errorf(err, CS_EINVAL, "job id %llu is out of range", (unsigned long long)job);
    uint64_t hi = job == CS_JOB_ID_MAX ? UINT64_MAX : cs_task_id(job + 1, 0);
    rec_visit vis = {.kind = CS_KIND_TASK, .task = fn, .ctx = ctx};
    return each_record(snap, &vis, cs_task_id(job, 0), hi, 0, err);
}

int cs_snap_each_task_on_machine(cs_snap *snap, cs_id machine, cs_task_fn fn, void *ctx,
                                 cs_error *err)
{
    cs_alloc_view v;
    alloc_view(snap, machine, &v);
    if (v.ntasks == 0)
        return CS_OK;
    /* Copy the ids: in a write transaction the callback may change them. */
    cs_id *ids = malloc(v.ntasks * sizeof *ids);
    if (ids == NULL)
        return cs_errorf(err, CS_ENOMEM, "tasks on machine %llu: out of memory",
                         (unsigned long long)machine);
    memcpy(ids, v.tasks, v.ntasks * sizeof *ids);
    uint32_t n = v.ntasks;
    cs_arena a;
    cs_arena_init(&a);
    int result = CS_OK;
    for (uint32_t i = 0; i < n && result == CS_OK; i++) {
        cs_task t;
        cs_arena_reset(&a);
        if ((result = cs_snap_task(snap, ids[i], &a, &t, err)) != CS_OK)
            break;
        if (!cs_task_state_placed(t.state) || t.machine != machine) {
            result = cs_errorf(err, CS_ECORRUPT,
                               "allocation table lists task %llu on machine %llu, its record "
                               "says %s on %llu",
                               (unsigned long long)t.id, (unsigned long long)machine,
                               cs_task_state_name(t.state), (unsigned long long)t.machine);
            break;
        }
        result = fn(ctx, &t);
    }
    cs_arena_free(&a);
    free(ids);
    return result;
}

int cs_snap_each_raw(cs_snap *snap, cs_db db, cs_raw_fn fn, void *ctx, cs_error *err)
{
    if (db >= CS_DB_COUNT)
        return cs_errorf(err, CS_EINVAL, "unknown database %d", (int)db);
    MDB_cursor *cur;
    int rc = mdb_cursor_open(snap->txn, snap->store->dbi[db], &cur);
    if (rc != 0)
        return lmdb_err(err, rc, "opening cursor");
    MDB_val k, v;
    int result = CS_OK;
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0)
        if ((result = fn(ctx, k.mv_data, k.mv_size, v.mv_data, v.mv_size)) != 0)
            break;
    if (result == CS_OK && rc != MDB_NOTFOUND && rc != 0)
        result = lmdb_err(err, rc, "iterating");
    mdb_cursor_close(cur);
    return result;
}

/* ---- the log ---------------------------------------------------------- */

/* A log entry: key = version (8 bytes BE) . n (4 bytes BE); value = msgpack
 * [kind, cmd (bin), [kind0, id0, kind1, id1, ...] (keys touched),
 *  nil | [scheduler, request, result (bin)] (the idempotency record)]. */

typedef struct log_entry {
    uint64_t version;
    uint32_t n;
    uint8_t kind;
    const char *cmd;
    size_t cmdlen;
    const void *touched; /* the array, alternating kind and id (each_touched); */
    size_t touchedlen;   /* without `whole`, the span goes on to the end */
    bool has_request;
    uint64_t sched, req;
    const char *result; /* points into the entry's bytes */
    size_t resultlen;
} log_entry;

/* Decode an entry in place with a cursor: every sync walks the entries
 * after its version, and at C1M scale that was millions of entries a run
 * unpacked into msgpack trees. The touched keys are checked as they are
 * read (each_touched). `whole` false stops after the command: `touched`
 * then spans the rest of the entry, and the idempotency record is left
 * unread (has_request false); a sync needs neither the record nor a
 * second pass over a commit's thousands of keys to find it. The open reads
 * every entry whole, so a malformed one is refused there. */
static int log_decode(const MDB_val *k, const MDB_val *v, bool whole, log_entry *e,
                      cs_error *err)
{
    if (k->mv_size != 12)
        return cs_errorf(err, CS_ECORRUPT, "log key of %zu bytes", k->mv_size);
    e->version = cs_be64_get(k->mv_data);
    e->n = cs_be32_get((const uint8_t *)k->mv_data + 8);
    cs_mp_cur c;
    cs_mp_cur_init(&c, v->mv_data, v->mv_size);
    uint32_t n, cmdlen, resultlen;
    uint64_t kind;
    const void *cmd, *result;
    if (cs_mp_read_array(&c, &n) != CS_OK || n != 4 || cs_mp_read_uint(&c, &kind) != CS_OK ||
        kind > 255 || cs_mp_read_bin(&c, &cmd, &cmdlen) != CS_OK)
        goto corrupt;
    e->kind = (uint8_t)kind;
    e->cmd = cmd;
    e->cmdlen = cmdlen;
    if (!whole) {
        e->touched = c.p;
        e->touchedlen = cs_mp_cur_left(&c);
        e->has_request = false;
        return CS_OK;
    }
    if (cs_mp_read_raw(&c, &e->touched, &e->touchedlen) != CS_OK)
        goto corrupt;
    e->has_request = !cs_mp_read_nil(&c);
    if (e->has_request) {
        if (cs_mp_read_array(&c, &n) != CS_OK || n != 3 ||
            cs_mp_read_uint(&c, &e->sched) != CS_OK || cs_mp_read_uint(&c, &e->req) != CS_OK ||
            cs_mp_read_bin(&c, &result, &resultlen) != CS_OK)
            goto corrupt;
        e->result = result;
        e->resultlen = resultlen;
    }
    if (cs_mp_cur_left(&c) != 0)
        goto corrupt;
    return CS_OK;
corrupt:
    return cs_errorf(err, CS_ECORRUPT, "log entry %llu.%u is corrupt",
                     (unsigned long long)e->version, e->n);
}

/* Call fn(ctx, kind, id) for each key e touched, in order, until it
 * returns non-zero (returned). A key that is not two unsigned integers,
 * with a kind the store knows, is CS_ECORRUPT. */
typedef int (*touched_fn)(void *ctx, uint64_t kind, uint64_t id);
static int each_touched(const log_entry *e, touched_fn fn, void *ctx, cs_error *err)
{
    cs_mp_cur t;
    cs_mp_cur_init(&t, e->touched, e->touchedlen);
    uint32_t n;
    if (cs_mp_read_array(&t, &n) != CS_OK || n % 2 != 0)
        goto corrupt;
    for (; n > 0; n -= 2) {
        uint64_t kind, id;
        if (cs_mp_read_uint(&t, &kind) != CS_OK || kind >= CS_KIND_COUNT ||
            cs_mp_read_uint(&t, &id) != CS_OK)
            goto corrupt;
        int rc = fn(ctx, kind, id);
        if (rc != 0)
            return rc;
    }
    return CS_OK;
corrupt:
    return cs_errorf(err, CS_ECORRUPT, "log entry %llu.%u: touched key is corrupt",
                     (unsigned long long)e->version, e->n);
}

/* Walk log entries after (since, after_n). The changes since a version skip
 * every entry at that version (after_n = UINT32_MAX): those with n > 0
 * changed no record. The log itself is read after (since, 0), so that a
 * replica also gets the idempotency records those entries made. */
typedef int (*entry_fn)(void *ctx, const log_entry *e);
static int each_entry(cs_snap *snap, uint64_t since, uint32_t after_n, bool whole, entry_fn fn,
                      void *ctx, cs_error *err)
{
    if (since < snap->floor)
        return cs_errorf(err, CS_ECOMPACTED,
                         "version %llu is behind the log floor %llu: a full snapshot is needed",
                         (unsigned long long)since, (unsigned long long)snap->floor);
    MDB_cursor *cur;
    int rc = mdb_cursor_open(snap->txn, snap->store->dbi[CS_DB_LOG], &cur);
    if (rc != 0)
        return lmdb_err(err, rc, "opening log cursor");
    uint8_t kb[12];
    cs_be64_put(kb, since);
    cs_be32_put(kb + 8, after_n);
    MDB_val k = {12, kb}, v;
    int op = MDB_SET_RANGE;
    int result = CS_OK;
    while ((rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
        op = MDB_NEXT;
        log_entry e;
        if ((result = log_decode(&k, &v, whole, &e, err)) != CS_OK)
            break;
        if (e.version == since && e.n <= after_n)
            continue; /* (since, after_n) itself */
        if ((result = fn(ctx, &e)) != 0)
            break;
    }
    if (result == CS_OK && rc != 0 && rc != MDB_NOTFOUND)
        result = lmdb_err(err, rc, "reading log");
    mdb_cursor_close(cur);
    return result;
}

typedef struct log_cb {
    cs_log_fn fn;
    void *ctx;
} log_cb;

static int log_visit(void *ctx, const log_entry *e)
{
    log_cb *c = ctx;
    return c->fn(c->ctx, e->version, e->n, e->kind, e->cmd, e->cmdlen);
}

int cs_snap_each_log(cs_snap *snap, uint64_t since, cs_log_fn fn, void *ctx, cs_error *err)
{
    log_cb c = {fn, ctx};
    return each_entry(snap, since, 0, false, log_visit, &c, err);
}

typedef struct changes_ctx {
    cs_ids s[CS_KIND_COUNT];
    cs_quiet_fn quiet;
    void *qctx;
    bool entry_quiet; /* the entry being read is quiet */
    cs_error *err;
} changes_ctx;

static int changes_key(void *ctx, uint64_t kind, uint64_t id)
{
    changes_ctx *c = ctx;
    if (c->entry_quiet && kind == CS_KIND_TASK)
        return CS_OK;
    if (cs_ids_push(&c->s[kind], id) != CS_OK)
        return cs_errorf(c->err, CS_ENOMEM, "reading changes: out of memory");
    return CS_OK;
}

static int changes_visit(void *ctx, const log_entry *e)
{
    changes_ctx *c = ctx;
    c->entry_quiet = c->quiet != NULL && c->quiet(c->qctx, e->kind, e->cmd, e->cmdlen);
    return each_touched(e, changes_key, c, c->err);
}

int cs_snap_changes_since(cs_snap *snap, uint64_t since, cs_changes *out, cs_error *err)
{
    return cs_snap_changes_except(snap, since, NULL, NULL, out, err);
}

int cs_snap_changes_except(cs_snap *snap, uint64_t since, cs_quiet_fn quiet, void *ctx,
                           cs_changes *out, cs_error *err)
{
    memset(out, 0, sizeof *out);
    changes_ctx c = {0};
    c.quiet = quiet;
    c.qctx = ctx;
    c.err = err;
    int rc = each_entry(snap, since, UINT32_MAX, false, changes_visit, &c, err);
    if (rc != CS_OK) {
        for (int i = 0; i < CS_KIND_COUNT; i++)
            free(c.s[i].v);
        return rc;
    }
    out->since = since;
    out->version = snap->version;
    for (int i = 0; i < CS_KIND_COUNT; i++) {
        out->ids[i] = c.s[i].v;
        out->n[i] = sort_unique(c.s[i].v, c.s[i].n);
    }
    return CS_OK;
}

void cs_changes_free(cs_changes *c)
{
    for (int i = 0; i < CS_KIND_COUNT; i++) {
        free(c->ids[i]);
        c->ids[i] = NULL;
        c->n[i] = 0;
    }
}

/* ---- write transactions ----------------------------------------------- */

/* The group the calling thread holds open, or NULL. */
static wgroup *own_group(cs_store *s)
{
    wgroup *g = atomic_load_explicit(&s->group, memory_order_acquire);
    return g != NULL && pthread_equal(g->owner, pthread_self()) ? g : NULL;
}

/* A command of an open group: it reads and writes the group's LMDB
 * transaction, so it sees the commands before it, and stamps what it
 * changes in the allocation table with a version of its own. */
static int group_wtxn_begin(cs_store *s, wgroup *g, cs_wtxn *w, cs_error *err)
{
    if (g->poisoned) {
        free(w);
        return cs_errorf(err, CS_EIO, "group commit: an earlier command of the group failed "
                                      "after writing; the group is abandoned");
    }
    w->group = g;
    w->snap.txn = g->txn;
    w->snap.store = s;
    w->snap.in_wtxn = true;
    int rc = snap_load_meta(&w->snap, err);
    if (rc != CS_OK) {
        free(w);
        return rc;
    }
    w->new_version = w->snap.version + 1;
    cs_alloc_txn_set_version(g->alloc, w->new_version);
    w->snap.alloc = g->alloc;
    msgpack_sbuffer_init(&w->buf);
    msgpack_sbuffer_init(&w->result);
    return CS_OK;
}

int cs_wtxn_begin(cs_store *s, cs_wtxn **out, cs_error *err)
{
    cs_wtxn *w = calloc(1, sizeof *w);
    if (w == NULL)
        return cs_errorf(err, CS_ENOMEM, "write transaction: out of memory");
    wgroup *g = own_group(s);
    if (g != NULL) {
        int rc = group_wtxn_begin(s, g, w, err);
        if (rc == CS_OK)
            *out = w;
        return rc;
    }
    pthread_mutex_lock(&s->writer);
    int rc;
    if (s->broken) {
        rc = broken(err);
        goto err_after_lock;
    }
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &w->snap.txn)) != 0) {
        rc = lmdb_err(err, rc, "beginning write transaction");
        goto err_after_lock;
    }
    w->snap.store = s;
    w->snap.in_wtxn = true;
    if ((rc = snap_load_meta(&w->snap, err)) != CS_OK)
        goto err_after_txn;
    w->new_version = w->snap.version + 1;
    if ((rc = cs_alloc_txn_begin(s->alloc, w->new_version, true, &w->snap.alloc, err)) != CS_OK)
        goto err_after_txn;
    msgpack_sbuffer_init(&w->buf);
    msgpack_sbuffer_init(&w->result);
    *out = w;
    return CS_OK;

err_after_txn:
    mdb_txn_abort(w->snap.txn);
err_after_lock:
    pthread_mutex_unlock(&s->writer);
    free(w);
    return rc;
}

/* Free the transaction's memory and let the next writer in. A command of
 * a group leaves the transaction, the overlay and the lock to the group,
 * but closes its cursor: LMDB closes a write transaction's cursors only
 * when the transaction ends. */
static void wtxn_free(cs_wtxn *w)
{
    cs_store *s = w->snap.store;
    if (w->group != NULL) {
        if (w->snap.tasks != NULL)
            mdb_cursor_close(w->snap.tasks);
    } else {
        cs_alloc_txn_discard(w->snap.alloc);
    }
    msgpack_sbuffer_destroy(&w->buf);
    msgpack_sbuffer_destroy(&w->result);
    for (int k = 0; k < CS_KIND_COUNT; k++)
        free(w->touched[k].v);
    bool grouped = w->group != NULL;
    free(w);
    if (!grouped)
        pthread_mutex_unlock(&s->writer);
}

void cs_wtxn_abort(cs_wtxn *w)
{
    if (w == NULL)
        return;
    if (w->group == NULL)
        mdb_txn_abort(w->snap.txn);
    else if (w->dirty)
        /* Its writes are in the shared transaction and cannot be taken
         * out of it alone: the whole group is abandoned (store.h). */
        w->group->poisoned = true;
    wtxn_free(w);
}

cs_snap *cs_wtxn_snap(cs_wtxn *w) { return &w->snap; }
uint64_t cs_wtxn_new_version(const cs_wtxn *w) { return w->new_version; }

const cs_id *cs_wtxn_touched(cs_wtxn *w, cs_kind kind, size_t *n)
{
    /* In place: the log entry lists them sorted too, and commit's
     * sort_unique then only checks that they are. */
    w->touched[kind].n = sort_unique(w->touched[kind].v, w->touched[kind].n);
    *n = w->touched[kind].n;
    return w->touched[kind].v;
}

static int next_id(cs_wtxn *w, const char *key, cs_id max, cs_id *out, cs_error *err)
{
    cs_store *s = w->snap.store;
    w->dirty = true;
    uint64_t last;
    bool found;
    int rc = meta_get(w->snap.txn, s->dbi[CS_DB_META], key, &last, &found, err);
    if (rc != CS_OK)
        return rc;
    if (last >= max)
        return cs_errorf(err, CS_EFULL, "%s: ids exhausted", key);
    if ((rc = meta_put(s, w->snap.txn, key, last + 1, err)) != CS_OK)
        return rc;
    *out = last + 1;
    return CS_OK;
}

int cs_wtxn_next_machine_id(cs_wtxn *w, cs_id *out, cs_error *err)
{
    return next_id(w, "last_machine", UINT64_MAX - 1, out, err);
}

int cs_wtxn_next_job_id(cs_wtxn *w, cs_id *out, cs_error *err)
{
    return next_id(w, "last_job", CS_JOB_ID_MAX - 1, out, err);
}

static int touch(cs_wtxn *w, uint8_t kind, cs_id id, cs_error *err)
{
    if (cs_ids_push(&w->touched[kind], id) != CS_OK)
        return cs_errorf(err, CS_ENOMEM, "write transaction: out of memory");
    return CS_OK;
}

/* Put through `cur` when not NULL (a cursor on `db`), else mdb_put. */
static int raw_put(cs_wtxn *w, cs_db db, MDB_cursor *cur, const void *key, size_t klen,
                   const void *val, size_t vlen, unsigned flags, cs_error *err)
{
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    int rc = cur != NULL ? mdb_cursor_put(cur, &k, &v, flags)
                         : mdb_put(w->snap.txn, w->snap.store->dbi[db], &k, &v, flags);
    if (rc != 0)
        return lmdb_err(err, rc, db_names[db]);
    w->snap.store->puts++;
    w->snap.store->put_bytes += klen + vlen;
    return CS_OK;
}

static int put_encoded(cs_wtxn *w, cs_db db, cs_id id, cs_error *err)
{
    uint8_t kb[8];
    cs_be64_put(kb, id);
    MDB_cursor *cur = NULL;
    int rc;
    if (db == CS_DB_TASKS && (rc = tasks_cursor(&w->snap, &cur, err)) != CS_OK)
        return rc;
    return raw_put(w, db, cur, kb, 8, w->buf.data, w->buf.size, 0, err);
}

static int put_name(cs_wtxn *w, cs_db db, const char *name, cs_id id, cs_error *err)
{
    uint8_t vb[8];
    cs_be64_put(vb, id);
    return raw_put(w, db, NULL, name, strlen(name), vb, 8, 0, err);
}

int cs_wtxn_put_machine(cs_wtxn *w, const cs_machine *m, bool create, cs_error *err)
{
    w->dirty = true;
    cs_machine rec = *m;
    rec.version = w->new_version;
    w->buf.size = 0;
    int rc;
    if ((rc = cs_machine_encode(&rec, &w->buf)) != CS_OK)
        return cs_errorf(err, rc, "encoding machine %s", m->name);
    if ((rc = put_encoded(w, CS_DB_MACHINES, m->id, err)) != CS_OK ||
        (create && (rc = put_name(w, CS_DB_MACHINE_NAMES, m->name, m->id, err)) != CS_OK))
        return rc;
    cs_alloc_spec spec;
    spec_of(&rec, &spec);
    if ((rc = cs_alloc_txn_spec(w->snap.alloc, m->id, &spec, err)) != CS_OK)
        return rc;
    return touch(w, CS_KIND_MACHINE, m->id, err);
}

int cs_wtxn_put_job(cs_wtxn *w, const cs_job *j, bool create, cs_error *err)
{
    w->dirty = true;
    cs_job rec = *j;
    rec.version = w->new_version;
    w->buf.size = 0;
    int rc;
    if ((rc = cs_job_encode(&rec, &w->buf)) != CS_OK)
        return cs_errorf(err, rc, "encoding job %s", j->name);
    if ((rc = put_encoded(w, CS_DB_JOBS, j->id, err)) != CS_OK ||
        (create && (rc = put_name(w, CS_DB_JOB_NAMES, j->name, j->id, err)) != CS_OK))
        return rc;
    return touch(w, CS_KIND_JOB, j->id, err);
}

static bool same_holding(const cs_task *a, const cs_task *b)
{
    return memcmp(&a->res, &b->res, sizeof a->res) == 0 && a->nports == b->nports &&
           (a->nports == 0 || memcmp(a->ports, b->ports, a->nports * sizeof *a->ports) == 0);
}

int cs_wtxn_put_task(cs_wtxn *w, const cs_task *old, const cs_task *t, cs_error *err)
{
    w->dirty = true;
    cs_task rec = *t;
    rec.version = w->new_version;
    w->buf.size = 0;
    int rc;
    if ((rc = cs_task_encode(&rec, &w->buf)) != CS_OK)
        return cs_errorf(err, rc, "encoding task %llu", (unsigned long long)t->id);
    if ((rc = put_encoded(w, CS_DB_TASKS, t->id, err)) != CS_OK)
        return rc;
    /* The machines' allocations follow the task (alloc.h). A task that stays
     * placed where it was, holding the same, changes nothing there. */
    bool was = old != NULL && cs_task_state_placed(old->state);
    bool is = cs_task_state_placed(t->state);
    if (was && is && old->machine == t->machine && same_holding(old, t))
        return touch(w, CS_KIND_TASK, t->id, err);
    if (was && ((rc = cs_alloc_txn_remove(w->snap.alloc, old->machine, old->id, &old->res,
                                          old->ports, old->nports, err)) != CS_OK ||
                (rc = touch(w, CS_KIND_MACHINE, old->machine, err)) != CS_OK))
        return rc;
    if (is && ((rc = cs_alloc_txn_add(w->snap.alloc, t->machine, t->id, &t->res, t->ports,
                                      t->nports, err)) != CS_OK ||
               (rc = touch(w, CS_KIND_MACHINE, t->machine, err)) != CS_OK))
        return rc;
    return touch(w, CS_KIND_TASK, t->id, err);
}

/* Delete key id from `db`; an absent key is CS_ENOTFOUND naming `what`. */
static int raw_del_id(cs_wtxn *w, cs_db db, const char *what, cs_id id, cs_error *err)
{
    uint8_t kb[8];
    cs_be64_put(kb, id);
    MDB_val k = {8, kb};
    int rc = mdb_del(w->snap.txn, w->snap.store->dbi[db], &k, NULL);
    if (rc == MDB_NOTFOUND)
        return cs_errorf(err, CS_ENOTFOUND, "unknown %s %llu", what, (unsigned long long)id);
    if (rc != 0)
        return lmdb_err(err, rc, db_names[db]);
    return CS_OK;
}

int cs_wtxn_del_job(cs_wtxn *w, const cs_job *j, cs_error *err)
{
    w->dirty = true;
    int rc = raw_del_id(w, CS_DB_JOBS, "job", j->id, err);
    if (rc != CS_OK)
        return rc;
    /* The name index keeps the newest job of a name: a job submitted again
     * under this name after this one ended owns the entry now. */
    MDB_val k = {strlen(j->name), (void *)j->name}, v;
    rc = mdb_get(w->snap.txn, w->snap.store->dbi[CS_DB_JOB_NAMES], &k, &v);
    if (rc == 0 && v.mv_size == 8 && cs_be64_get(v.mv_data) == j->id)
        rc = mdb_del(w->snap.txn, w->snap.store->dbi[CS_DB_JOB_NAMES], &k, NULL);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return lmdb_err(err, rc, db_names[CS_DB_JOB_NAMES]);
    return touch(w, CS_KIND_JOB, j->id, err);
}

int cs_wtxn_del_task(cs_wtxn *w, const cs_task *t, cs_error *err)
{
    /* The allocation table holds placed tasks; removing one would leave
     * its machine holding what nothing records. */
    if (cs_task_state_placed(t->state))
        return cs_errorf(err, CS_ESTATE, "task %llu is %s: only a task that holds nothing may be "
                         "removed", (unsigned long long)t->id, cs_task_state_name(t->state));
    w->dirty = true;
    int rc = raw_del_id(w, CS_DB_TASKS, "task", t->id, err);
    if (rc != CS_OK)
        return rc;
    return touch(w, CS_KIND_TASK, t->id, err);
}

int cs_wtxn_request_get(cs_wtxn *w, uint64_t sched, uint64_t req, const void **data, size_t *len,
                        cs_error *err)
{
    if (w->has_request && w->sched == sched && w->req == req) {
        *data = w->result.data;
        *len = w->result.size;
        return CS_OK;
    }
    const reqent *found = req_find(&w->snap.store->requests, sched, req);
    reqent ge;
    if (w->group != NULL) {
        /* A repeat within the group of a request committed earlier in it
         * (a client's retry queued behind its first try). */
        for (size_t i = w->group->nreqs; i-- > 0;) {
            const wgroup_req *q = &w->group->reqs[i];
            if (q->sched == sched && q->req == req) {
                ge = (reqent){sched, req, q->version, q->n, true};
                found = &ge;
                break;
            }
        }
    }
    const reqent *e = found;
    if (e == NULL)
        return CS_ENOTFOUND;
    uint8_t kb[12];
    cs_be64_put(kb, e->version);
    cs_be32_put(kb + 8, e->n);
    MDB_val k = {12, kb}, v;
    int rc = mdb_get(w->snap.txn, w->snap.store->dbi[CS_DB_LOG], &k, &v);
    if (rc == MDB_NOTFOUND)
        return cs_errorf(err, CS_ECORRUPT,
                         "request (%llu, %llu): its log entry %llu.%u is missing",
                         (unsigned long long)sched, (unsigned long long)req,
                         (unsigned long long)e->version, e->n);
    if (rc != 0)
        return lmdb_err(err, rc, "reading a request's log entry");
    log_entry le;
    if ((rc = log_decode(&k, &v, true, &le, err)) == CS_OK &&
        (!le.has_request || le.sched != sched || le.req != req))
        rc = cs_errorf(err, CS_ECORRUPT,
                       "request (%llu, %llu): log entry %llu.%u holds another request",
                       (unsigned long long)sched, (unsigned long long)req,
                       (unsigned long long)e->version, e->n);
    if (rc != CS_OK)
        return rc;
    /* The bin points into the entry's bytes, valid in the transaction. */
    *data = le.result;
    *len = le.resultlen;
    return CS_OK;
}

int cs_wtxn_request_put(cs_wtxn *w, uint64_t sched, uint64_t req, const void *data, size_t len,
                        cs_error *err)
{
    if (w->has_request)
        return cs_errorf(err, CS_EINVAL,
                         "request (%llu, %llu): this transaction already holds request (%llu, "
                         "%llu)",
                         (unsigned long long)sched, (unsigned long long)req,
                         (unsigned long long)w->sched, (unsigned long long)w->req);
    w->result.size = 0;
    if (len > 0 && msgpack_sbuffer_write(&w->result, data, len) != 0)
        return cs_errorf(err, CS_ENOMEM, "request record: out of memory");
    w->has_request = true;
    w->sched = sched;
    w->req = req;
    return CS_OK;
}

/* The touched keys are sorted and unique per kind, kinds in order. */
static int pack_log_entry(cs_wtxn *w, uint8_t kind, const void *cmd, size_t len)
{
    size_t nt = 0;
    for (int k = 0; k < CS_KIND_COUNT; k++)
        nt += w->touched[k].n;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &w->buf, msgpack_sbuffer_write);
    if (msgpack_pack_array(&pk, 4) || msgpack_pack_uint8(&pk, kind) ||
        msgpack_pack_bin(&pk, len) || (len && msgpack_pack_bin_body(&pk, cmd, len)) ||
        msgpack_pack_array(&pk, nt * 2))
        return CS_ENOMEM;
    for (int k = 0; k < CS_KIND_COUNT; k++)
        for (size_t i = 0; i < w->touched[k].n; i++)
            if (msgpack_pack_uint8(&pk, (uint8_t)k) ||
                msgpack_pack_uint64(&pk, w->touched[k].v[i]))
                return CS_ENOMEM;
    if (!w->has_request)
        return msgpack_pack_nil(&pk) ? CS_ENOMEM : CS_OK;
    if (msgpack_pack_array(&pk, 3) || msgpack_pack_uint64(&pk, w->sched) ||
        msgpack_pack_uint64(&pk, w->req) || msgpack_pack_bin(&pk, w->result.size) ||
        (w->result.size && msgpack_pack_bin_body(&pk, w->result.data, w->result.size)))
        return CS_ENOMEM;
    return CS_OK;
}

/* A command of a group is logged in the group's transaction; it becomes
 * durable, and its request indexed, when the group commits. */
static int group_wtxn_commit(cs_wtxn *w, uint64_t v, uint32_t n, uint64_t *version,
                             cs_error *err)
{
    wgroup *g = w->group;
    if (w->has_request) {
        if (g->nreqs == g->capreqs) {
            size_t cap = g->capreqs ? g->capreqs * 2 : 16;
            wgroup_req *q = realloc(g->reqs, cap * sizeof *q);
            if (q == NULL) {
                /* The log entry is in: the group cannot drop it alone. */
                g->poisoned = true;
                wtxn_free(w);
                return cs_errorf(err, CS_ENOMEM, "group commit: out of memory");
            }
            g->reqs = q;
            g->capreqs = cap;
        }
        g->reqs[g->nreqs++] = (wgroup_req){w->sched, w->req, v, n};
    }
    g->version = v;
    wtxn_free(w);
    if (version != NULL)
        *version = v;
    return CS_OK;
}

int cs_wtxn_commit(cs_wtxn *w, uint8_t kind, const void *cmd, size_t len, uint64_t *version,
                   cs_error *err)
{
    cs_store *s = w->snap.store;
    MDB_txn *txn = w->snap.txn;
    bool changed = false;
    for (int k = 0; k < CS_KIND_COUNT; k++)
        changed |= w->touched[k].n > 0;
    uint64_t v = changed ? w->new_version : w->snap.version;
    /* Sub-index: 0 for the command that made version v, 1.. for commands
     * logged at v that changed nothing. */
    uint32_t n = changed ? 0 : w->snap.log_n + 1;
    int rc;
    if (!changed && n == 0) {
        rc = cs_errorf(err, CS_EFULL, "log: 2^32 commands at version %llu changed nothing",
                       (unsigned long long)v);
        goto fail;
    }

    for (int k = 0; k < CS_KIND_COUNT; k++)
        w->touched[k].n = sort_unique(w->touched[k].v, w->touched[k].n);
    w->buf.size = 0;
    if (pack_log_entry(w, kind, cmd, len) != CS_OK) {
        rc = cs_errorf(err, CS_ENOMEM, "log entry: out of memory");
        goto fail;
    }
    uint8_t kb[12];
    cs_be64_put(kb, v);
    cs_be32_put(kb + 8, n);
    w->dirty = true;
    rc = raw_put(w, CS_DB_LOG, NULL, kb, 12, w->buf.data, w->buf.size, MDB_APPEND, err);
    if (rc != CS_OK)
        goto fail;
    if (w->group != NULL)
        return group_wtxn_commit(w, v, n, version, err);
    if (w->has_request && req_reserve(&s->requests, 1) != CS_OK) {
        rc = cs_errorf(err, CS_ENOMEM, "request index: out of memory");
        goto fail;
    }
    int64_t t0 = commit_clock(s);
    if ((rc = mdb_txn_commit(txn)) != 0) {
        rc = lmdb_err(err, rc, "committing");
        wtxn_free(w);
        return rc;
    }
    commit_timed(s, t0);
    if (w->has_request)
        req_insert(&s->requests, w->sched, w->req, v, n);
    /* Publish the allocations of version v, then let snapshots that began
     * at v (and wait for them) go on. */
    pthread_mutex_lock(&s->mu);
    cs_alloc_txn *x = w->snap.alloc;
    w->snap.alloc = NULL;
    rc = cs_alloc_publish(x, oldest_reader(s, v), err);
    if (rc != CS_OK)
        s->broken = true;
    s->published = v;
    pthread_cond_broadcast(&s->published_cv);
    pthread_mutex_unlock(&s->mu);
    wtxn_free(w);
    if (rc != CS_OK)
        return rc;
    if (version != NULL)
        *version = v;
    return CS_OK;
fail:
    cs_wtxn_abort(w);
    return rc;
}

/* ---- group commit --------------------------------------------------------- */

int cs_store_group_begin(cs_store *s, cs_error *err)
{
    if (own_group(s) != NULL)
        return cs_errorf(err, CS_EINVAL, "group commit: a group is already open");
    wgroup *g = calloc(1, sizeof *g);
    if (g == NULL)
        return cs_errorf(err, CS_ENOMEM, "group commit: out of memory");
    pthread_mutex_lock(&s->writer);
    int rc;
    if (s->broken) {
        rc = broken(err);
        goto err_after_lock;
    }
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &g->txn)) != 0) {
        rc = lmdb_err(err, rc, "beginning group write transaction");
        goto err_after_lock;
    }
    cs_snap probe = {.store = s, .txn = g->txn};
    if ((rc = snap_load_meta(&probe, err)) != CS_OK)
        goto err_after_txn;
    g->version = probe.version;
    /* The overlay's version is set by each command (group_wtxn_begin), and
     * to the group's last version before it is published. */
    if ((rc = cs_alloc_txn_begin(s->alloc, g->version, true, &g->alloc, err)) != CS_OK)
        goto err_after_txn;
    g->owner = pthread_self();
    atomic_store_explicit(&s->group, g, memory_order_release);
    return CS_OK;

err_after_txn:
    mdb_txn_abort(g->txn);
err_after_lock:
    pthread_mutex_unlock(&s->writer);
    free(g);
    return rc;
}

int cs_store_group_end(cs_store *s, bool *abandoned, uint64_t *version, cs_error *err)
{
    wgroup *g = own_group(s);
    *abandoned = false;
    if (g == NULL)
        return cs_errorf(err, CS_EINVAL, "group commit: no group is open");
    atomic_store_explicit(&s->group, NULL, memory_order_release);
    int rc = CS_OK;
    if (g->poisoned) {
        *abandoned = true;
        mdb_txn_abort(g->txn);
        cs_alloc_txn_discard(g->alloc);
        goto out;
    }
    /* Room for every request first, so that nothing can fail between
     * LMDB's commit and indexing them. */
    if (req_reserve(&s->requests, g->nreqs) != CS_OK) {
        mdb_txn_abort(g->txn);
        cs_alloc_txn_discard(g->alloc);
        rc = cs_errorf(err, CS_ENOMEM, "request index: out of memory");
        goto out;
    }
    int64_t t0 = commit_clock(s);
    if ((rc = mdb_txn_commit(g->txn)) != 0) {
        cs_alloc_txn_discard(g->alloc);
        rc = lmdb_err(err, rc, "committing a group");
        goto out;
    }
    commit_timed(s, t0);
    uint64_t v = g->version;
    for (size_t i = 0; i < g->nreqs; i++)
        req_insert(&s->requests, g->reqs[i].sched, g->reqs[i].req, g->reqs[i].version,
                   g->reqs[i].n);
    /* Every command's allocation changes become visible at the version
     * LMDB now holds: no snapshot can begin between two of them. */
    cs_alloc_txn_set_version(g->alloc, v);
    pthread_mutex_lock(&s->mu);
    rc = cs_alloc_publish(g->alloc, oldest_reader(s, v), err);
    if (rc != CS_OK)
        s->broken = true;
    if (v > s->published)
        s->published = v;
    pthread_cond_broadcast(&s->published_cv);
    pthread_mutex_unlock(&s->mu);
    if (rc == CS_OK && version != NULL)
        *version = v;
out:
    pthread_mutex_unlock(&s->writer);
    free(g->reqs);
    free(g);
    return rc;
}

/* ---- compaction ------------------------------------------------------- */

/* Compaction deletes the log entries at or below the floor, and with them
 * the idempotency records they hold. The cell version and the last
 * sub-index go to meta, where snapshots find them when the log is empty. */
static int compact(cs_store *s, uint64_t floor, const uint64_t *applied, cs_error *err)
{
    pthread_mutex_lock(&s->writer);
    cs_snap snap = {.store = s};
    reqidx kept = {0};
    int rc = mdb_txn_begin(s->env, NULL, 0, &snap.txn);
    if (rc != 0) {
        rc = lmdb_err(err, rc, "beginning compaction");
        goto out;
    }
    if ((rc = snap_load_meta(&snap, err)) != CS_OK)
        goto err_after_txn;
    if (applied != NULL && (rc = meta_put(s, snap.txn, "applied", *applied, err)) != CS_OK)
        goto err_after_txn;
    if (floor > snap.version)
        floor = snap.version;
    if (floor <= snap.floor) {
        /* Nothing to drop; a replicated compaction still records that its
         * entry was applied. */
        if (applied == NULL) {
            mdb_txn_abort(snap.txn);
        } else if ((rc = mdb_txn_commit(snap.txn)) != 0) {
            rc = lmdb_err(err, rc, "committing compaction");
        }
        goto out;
    }
    MDB_cursor *cur;
    MDB_val k, v;
    if ((rc = mdb_cursor_open(snap.txn, s->dbi[CS_DB_LOG], &cur)) != 0)
        goto lmdb_fail;
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0) {
        if (k.mv_size != 12 || cs_be64_get(k.mv_data) > floor)
            break;
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            break;
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND)
        goto lmdb_fail;
    if ((rc = meta_put(s, snap.txn, "floor", floor, err)) != CS_OK ||
        (rc = meta_put(s, snap.txn, "version", snap.version, err)) != CS_OK ||
        (rc = meta_put(s, snap.txn, "log_n", snap.log_n, err)) != CS_OK)
        goto err_after_txn;
    /* The index without the dropped records, made before committing so
     * that nothing can fail after. */
    if (s->requests.cap > 0 &&
        req_copy(&s->requests, s->requests.cap, floor + 1, &kept) != CS_OK) {
        rc = cs_errorf(err, CS_ENOMEM, "compacting the request index: out of memory");
        goto err_after_txn;
    }
    if ((rc = mdb_txn_commit(snap.txn)) != 0) {
        rc = lmdb_err(err, rc, "committing compaction");
        free(kept.v);
        goto out;
    }
    free(s->requests.v);
    s->requests = kept;
    goto out;

lmdb_fail:
    rc = lmdb_err(err, rc, "compacting");
err_after_txn:
    mdb_txn_abort(snap.txn);
    free(kept.v);
out:
    pthread_mutex_unlock(&s->writer);
    return rc;
}

int cs_store_compact(cs_store *s, uint64_t floor, cs_error *err)
{
    return compact(s, floor, NULL, err);
}

int cs_store_compact_applied(cs_store *s, uint64_t floor, uint64_t index, cs_error *err)
{
    return compact(s, floor, &index, err);
}

/* ---- replication ---------------------------------------------------------- */

int cs_store_applied(cs_store *s, uint64_t *index, cs_error *err)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return lmdb_err(err, rc, "reading the applied index");
    bool found;
    rc = meta_get(txn, s->dbi[CS_DB_META], "applied", index, &found, err);
    mdb_txn_abort(txn);
    return rc;
}

int cs_store_group_set_applied(cs_store *s, uint64_t index, cs_error *err)
{
    wgroup *g = own_group(s);
    if (g == NULL)
        return cs_errorf(err, CS_EINVAL, "applied index: no group is open");
    return meta_put(s, g->txn, "applied", index, err);
}

int cs_store_group_put_replica(cs_store *s, const void *data, size_t len, cs_error *err)
{
    wgroup *g = own_group(s);
    if (g == NULL)
        return cs_errorf(err, CS_EINVAL, "replica record: no group is open");
    static const char key[] = "replica";
    MDB_val k = {sizeof key - 1, (void *)key}, v = {len, (void *)data};
    int rc = mdb_put(g->txn, s->dbi[CS_DB_META], &k, &v, 0);
    if (rc != 0)
        return lmdb_err(err, rc, "writing the replica record");
    s->puts++;
    s->put_bytes += len;
    return CS_OK;
}

int cs_store_replica(cs_store *s, void **data, size_t *len, cs_error *err)
{
    *data = NULL;
    *len = 0;
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return lmdb_err(err, rc, "reading the replica record");
    static const char key[] = "replica";
    MDB_val k = {sizeof key - 1, (void *)key}, v;
    rc = mdb_get(txn, s->dbi[CS_DB_META], &k, &v);
    if (rc == MDB_NOTFOUND) {
        rc = CS_OK;
    } else if (rc != 0) {
        rc = lmdb_err(err, rc, "reading the replica record");
    } else if ((*data = malloc(v.mv_size ? v.mv_size : 1)) == NULL) {
        rc = cs_errorf(err, CS_ENOMEM, "reading the replica record: out of memory");
    } else {
        memcpy(*data, v.mv_data, v.mv_size);
        *len = v.mv_size;
    }
    mdb_txn_abort(txn);
    return rc;
}

int cs_store_copy(cs_store *s, int fd, cs_error *err)
{
    int rc = mdb_env_copyfd2(s->env, fd, MDB_CP_COMPACT);
    if (rc != 0)
        return lmdb_err(err, rc, "copying the store");
    return CS_OK;
}

/* ---- rebuilding the allocation table at open ---------------------------- */

typedef struct rebuild_ctx {
    cs_store *s;
    cs_alloc_txn *x;
    uint64_t version; /* of the log entry being read */
    cs_error *err;
} rebuild_ctx;

static int rebuild_task(void *ctx, const cs_task *t)
{
    rebuild_ctx *c = ctx;
    if (!cs_task_state_placed(t->state))
        return CS_OK;
    /* Not t->version for the machine's last change: a task's record also
     * changes without a placement change (running). The log says. */
    return cs_alloc_txn_add(c->x, t->machine, t->id, &t->res, t->ports, t->nports, c->err);
}

/* Copy every machine's spec into the table. A record that does not decode
 * is left out rather than stop the open: reading it reports it (unlike a
 * corrupt task record, it hides nothing the table must hold). */
static int rebuild_machines(cs_snap *snap, cs_alloc_txn *x, cs_error *err)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(snap->txn, snap->store->dbi[CS_DB_MACHINES], &cur);
    if (rc != 0)
        return lmdb_err(err, rc, "opening cursor");
    cs_arena a;
    cs_arena_init(&a);
    MDB_val k, v;
    int result = CS_OK;
    while (result == CS_OK && (rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        cs_machine m;
        cs_alloc_spec spec;
        cs_arena_reset(&a);
        result = cs_machine_decode(v.mv_data, v.mv_size, &a, &m, err);
        if (result == CS_ECORRUPT) {
            cs_error_clear(err);
            result = CS_OK;
            continue;
        }
        /* Keyed as cs_snap_machine looks it up. */
        if (result == CS_OK && k.mv_size == 8) {
            spec_of(&m, &spec);
            result = cs_alloc_txn_spec(x, cs_be64_get(k.mv_data), &spec, err);
        }
    }
    if (result == CS_OK && rc != 0 && rc != MDB_NOTFOUND)
        result = lmdb_err(err, rc, "iterating machines");
    cs_arena_free(&a);
    mdb_cursor_close(cur);
    return result;
}

static int rebuild_key(void *ctx, uint64_t kind, uint64_t id)
{
    rebuild_ctx *c = ctx;
    if (kind != CS_KIND_MACHINE)
        return CS_OK;
    return cs_alloc_txn_changed(c->x, id, c->version, c->err);
}

static int rebuild_log(void *ctx, const log_entry *e)
{
    rebuild_ctx *c = ctx;
    c->version = e->version;
    int rc = each_touched(e, rebuild_key, c, c->err);
    if (rc != CS_OK)
        return rc;
    if (e->has_request) {
        if (req_reserve(&c->s->requests, 1) != CS_OK)
            return cs_errorf(c->err, CS_ENOMEM, "request index: out of memory");
        req_insert(&c->s->requests, e->sched, e->req, e->version, e->n);
    }
    return CS_OK;
}

/* The allocations are a function of the task records: the placed tasks give
 * what each machine holds. When each machine last changed comes from the
 * log above the floor (every change touches the machine there); below the
 * floor it no longer matters, since seq is presented raised to the floor.
 * The same walk of the log indexes the idempotency records. */
static int rebuild_alloc(cs_store *s, cs_error *err)
{
    cs_snap snap = {.store = s};
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &snap.txn);
    if (rc != 0)
        return lmdb_err(err, rc, "rebuilding allocations");
    cs_alloc_txn *x;
    if ((rc = snap_load_meta(&snap, err)) != CS_OK ||
        (rc = cs_alloc_txn_begin(s->alloc, snap.version, false, &x, err)) != CS_OK)
        goto out;
    rebuild_ctx c = {.s = s, .x = x, .err = err};
    rec_visit vis = {.kind = CS_KIND_TASK, .task = rebuild_task, .ctx = &c};
    if ((rc = each_record(&snap, &vis, 0, UINT64_MAX, 0, err)) != CS_OK ||
        (rc = rebuild_machines(&snap, x, err)) != CS_OK ||
        (rc = each_entry(&snap, snap.floor, 0, true, rebuild_log, &c, err)) != CS_OK) {
        cs_alloc_txn_discard(x);
        cs_error_wrap(err, rc, "rebuilding allocations");
        goto out;
    }
    rc = cs_alloc_publish(x, snap.version, err);
    s->published = snap.version;
out:
    mdb_txn_abort(snap.txn);
    return rc;
}
