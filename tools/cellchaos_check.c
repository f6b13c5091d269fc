/* cellchaos_check.c — the checker of a chaos run (see cellchaos_check.h). */
#include "tools/cellchaos_check.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cellstate/idindex.h"
#include "cellstate/rng.h"
#include "cellstate/vec.h"
#include "proto/client.h"
#include "proto/membermsg.h"
#include "proto/proto.h"
#include "proto/readmsg.h"
#include "proto/sync.h"

#define CC_MAX_REPLICAS 8

/* ---- a watcher's copy of the cell -------------------------------------------
 * Only what the checks need: a machine's capacity, its allocation as the
 * store derives it and the sum of its placed tasks; a task's state,
 * placement and resources. Records start with their id, for cs_idindex. */

typedef struct wmachine {
    cs_id id;
    cs_res cap, alloc, sum;
} wmachine;

typedef struct wtask {
    cs_id id;
    cs_id machine; /* where it is placed; 0 when not placed */
    cs_res res;
    uint32_t attempts;
    uint8_t state;
} wtask;

typedef struct watcher {
    struct cc_check *k;
    uint32_t idx; /* which replica */
    pthread_t thread;
    bool started;
    wmachine *m;
    size_t nm, capm;
    cs_idindex mi;
    wtask *t;
    size_t nt, capt;
    cs_idindex ti;
    uint64_t version; /* of the copy; 0: empty */
    uint32_t svc_running;
} watcher;

/* ---- what every watcher shares (under cc_check.mu) ------------------------- */

typedef struct ack {
    cs_id job;
    uint64_t version;
    bool killed; /* an acknowledged kill named it */
    uint64_t kill_version;
    char name[48];
} ack;

/* Every placement seen of one task: machine by attempt (0: not seen). */
typedef struct placed {
    cs_id task;
    cs_id *machine;
    uint32_t n;
} placed;

struct cc_check {
    pthread_mutex_t mu;
    char urls[CC_MAX_REPLICAS][64];
    uint32_t n;
    atomic_bool stop;
    watcher w[CC_MAX_REPLICAS];

    cs_id svc_job;
    uint32_t svc_count;

    ack *acks;
    size_t nacks, capacks;
    uint64_t acked_kills, max_version;

    placed *pl;
    size_t npl, cappl;
    cs_idindex pli;

    uint64_t overcommits, doubles, versions, resyncs, regressions, mismatches;

    /* The service's recovery, on one timeline over every replica: the
     * first observation of each version counts, later ones of the same or
     * an older version are ignored. */
    uint64_t rec_version;
    bool rec_armed;  /* N were running once: a drop below is a loss */
    bool rec_open;
    double rec_start;
    double *rec;
    size_t nrec, caprec;

    char first[256];
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_ms(uint32_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The first violation, in words, under mu. */
static void violation(cc_check *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void violation(cc_check *k, const char *fmt, ...)
{
    if (k->first[0] != '\0')
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(k->first, sizeof k->first, fmt, ap);
    va_end(ap);
}

int cc_check_new(const char (*urls)[64], uint32_t n, cc_check **out, cs_error *err)
{
    if (n < 1 || n > CC_MAX_REPLICAS)
        return cs_errorf(err, CS_EINVAL, "checker: %u replicas (1 to %d)", n, CC_MAX_REPLICAS);
    cc_check *k = calloc(1, sizeof *k);
    if (k == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    pthread_mutex_init(&k->mu, NULL);
    k->n = n;
    for (uint32_t i = 0; i < n; i++) {
        snprintf(k->urls[i], sizeof k->urls[i], "%s", urls[i]);
        k->w[i].k = k;
        k->w[i].idx = i;
        cs_idindex_init(&k->w[i].mi);
        cs_idindex_init(&k->w[i].ti);
    }
    cs_idindex_init(&k->pli);
    atomic_init(&k->stop, false);
    *out = k;
    return CS_OK;
}

void cc_check_free(cc_check *k)
{
    if (k == NULL)
        return;
    cc_check_stop(k);
    for (uint32_t i = 0; i < k->n; i++) {
        free(k->w[i].m);
        free(k->w[i].t);
        cs_idindex_free(&k->w[i].mi);
        cs_idindex_free(&k->w[i].ti);
    }
    for (size_t i = 0; i < k->npl; i++)
        free(k->pl[i].machine);
    free(k->pl);
    cs_idindex_free(&k->pli);
    free(k->acks);
    free(k->rec);
    pthread_mutex_destroy(&k->mu);
    free(k);
}

void cc_check_service(cc_check *k, cs_id job, uint32_t count)
{
    pthread_mutex_lock(&k->mu);
    k->svc_job = job;
    k->svc_count = count;
    pthread_mutex_unlock(&k->mu);
}

/* ---- acknowledged writes ------------------------------------------------------ */

int cc_check_ack_submit(cc_check *k, cs_id id, const char *name, uint64_t version)
{
    int rc = CS_OK;
    pthread_mutex_lock(&k->mu);
    ack *na = cs_vec_grow(k->acks, &k->capacks, k->nacks + 1, sizeof *k->acks, 256);
    if (na == NULL) {
        rc = CS_ENOMEM;
        goto out;
    }
    k->acks = na;
    ack *a = &k->acks[k->nacks++];
    *a = (ack){.job = id, .version = version};
    snprintf(a->name, sizeof a->name, "%s", name);
    if (version > k->max_version)
        k->max_version = version;
out:
    pthread_mutex_unlock(&k->mu);
    return rc;
}

int cc_check_ack_kill(cc_check *k, cs_id id, uint64_t version)
{
    int rc = CS_ENOTFOUND;
    pthread_mutex_lock(&k->mu);
    for (size_t i = 0; i < k->nacks; i++)
        if (k->acks[i].job == id) {
            k->acks[i].killed = true;
            k->acks[i].kill_version = version;
            k->acked_kills++;
            if (version > k->max_version)
                k->max_version = version;
            rc = CS_OK;
            break;
        }
    pthread_mutex_unlock(&k->mu);
    return rc;
}

bool cc_check_pick_live(cc_check *k, uint64_t *rng, cs_id *out)
{
    bool found = false;
    pthread_mutex_lock(&k->mu);
    /* A few random draws: most acknowledged jobs are never killed. */
    for (int tries = 0; tries < 16 && k->nacks > 0 && !found; tries++) {
        const ack *a = &k->acks[cs_rng_below(rng, (uint32_t)k->nacks)];
        if (!a->killed && a->job != k->svc_job) {
            *out = a->job;
            found = true;
        }
    }
    pthread_mutex_unlock(&k->mu);
    return found;
}

/* ---- the watcher's copy --------------------------------------------------------- */

static void copy_clear(watcher *w)
{
    w->nm = 0;
    w->nt = 0;
    cs_idindex_clear(&w->mi);
    cs_idindex_clear(&w->ti);
    w->svc_running = 0;
}

/* The record with `id` in the array *base of *n records of `stride` bytes
 * (capacity *cap) indexed by `ix`; appended, zeroed but for its id, when
 * absent and `add`. NULL when absent and not `add`, or out of memory. */
static void *slot(void **base, size_t *n, size_t *cap, size_t stride, cs_idindex *ix, cs_id id,
                  bool add)
{
    uint32_t pos = cs_idindex_find(ix, *base, stride, id);
    if (pos != CS_IDINDEX_NONE)
        return (char *)*base + (size_t)pos * stride;
    if (!add)
        return NULL;
    void *nb = cs_vec_grow(*base, cap, *n + 1, stride, 1024);
    if (nb == NULL)
        return NULL;
    *base = nb;
    char *rec = (char *)nb + *n * stride;
    memset(rec, 0, stride);
    memcpy(rec, &id, sizeof id);
    if (cs_idindex_add(ix, nb, stride, (uint32_t)*n) != CS_OK)
        return NULL;
    (*n)++;
    return rec;
}

static wmachine *machine_slot(watcher *w, cs_id id, bool add)
{
    void *b = w->m;
    wmachine *r = slot(&b, &w->nm, &w->capm, sizeof *w->m, &w->mi, id, add);
    w->m = b;
    return r;
}

static wtask *task_slot(watcher *w, cs_id id)
{
    void *b = w->t;
    wtask *r = slot(&b, &w->nt, &w->capt, sizeof *w->t, &w->ti, id, true);
    w->t = b;
    return r;
}

static bool res_above(const cs_res *a, const cs_res *cap)
{
    return a->cpu > cap->cpu || a->mem > cap->mem || a->disk > cap->disk;
}

static bool res_equal(const cs_res *a, const cs_res *b)
{
    return a->cpu == b->cpu && a->mem == b->mem && a->disk == b->disk;
}

/* Placement `attempt` of `task` is on `machine`: remember it, or count a
 * double placement when it was seen on another one. Under mu. */
static int note_placement(cc_check *k, uint32_t replica, uint64_t version, cs_id task,
                          uint32_t attempt, cs_id machine)
{
    void *b = k->pl;
    placed *p = slot(&b, &k->npl, &k->cappl, sizeof *k->pl, &k->pli, task, true);
    k->pl = b;
    if (p == NULL)
        return CS_ENOMEM;
    if (attempt >= p->n) {
        uint32_t n = attempt + 4;
        cs_id *nm = realloc(p->machine, n * sizeof *nm);
        if (nm == NULL)
            return CS_ENOMEM;
        memset(nm + p->n, 0, (n - p->n) * sizeof *nm);
        p->machine = nm;
        p->n = n;
    }
    if (p->machine[attempt] == 0) {
        p->machine[attempt] = machine;
    } else if (p->machine[attempt] != machine) {
        k->doubles++;
        violation(k,
                  "double placement: task %llu attempt %u on machine %llu, and on machine %llu "
                  "at version %llu on replica %u",
                  (unsigned long long)task, attempt, (unsigned long long)p->machine[attempt],
                  (unsigned long long)machine, (unsigned long long)version, replica + 1);
    }
    return CS_OK;
}

/* Apply one task record of a sync reply to the copy. */
static int apply_task(watcher *w, const cs_task *t, cs_id svc)
{
    wtask *x = task_slot(w, t->id);
    if (x == NULL)
        return CS_ENOMEM;
    bool was = cs_task_state_placed(x->state) && x->machine != 0;
    if (was) {
        wmachine *m = machine_slot(w, x->machine, false);
        if (m != NULL)
            cs_res_sub(&m->sum, &x->res);
    }
    if (t->job == svc && x->state == CS_TASK_RUNNING && w->svc_running > 0)
        w->svc_running--;
    x->state = t->state;
    x->attempts = t->attempts;
    x->res = t->res;
    x->machine = cs_task_state_placed(t->state) ? t->machine : 0;
    if (x->machine != 0) {
        /* A placed task's machine is in the same snapshot. One that is
         * not gets a record of no capacity here, so that the check counts
         * it as an overcommit instead of never looking at it. */
        wmachine *m = machine_slot(w, x->machine, true);
        if (m == NULL)
            return CS_ENOMEM;
        cs_res_add(&m->sum, &x->res);
    }
    if (t->job == svc && t->state == CS_TASK_RUNNING)
        w->svc_running++;
    return CS_OK;
}

/* Apply a sync reply: a whole cell (its "full") replaces the copy, a
 * delta updates it. */
static int apply_reply(watcher *w, const msgpack_object *body, cs_id svc, cs_arena *a,
                       cs_error *err)
{
    bool full = false;
    CS_TRY(cs_obj_bool(body, "full", true, &full, err));
    if (full)
        copy_clear(w);
    const msgpack_object *ms = cs_obj_get(body, "machines"), *ts = cs_obj_get(body, "tasks");
    if (ms == NULL || ms->type != MSGPACK_OBJECT_ARRAY || ts == NULL ||
        ts->type != MSGPACK_OBJECT_ARRAY)
        return cs_errorf(err, CS_EPROTO, "sync reply without machines or tasks");
    for (uint32_t i = 0; i < ms->via.array.size; i++) {
        cs_machine m;
        CS_TRY(cs_unpack_machine(&ms->via.array.ptr[i], a, &m, err));
        wmachine *x = machine_slot(w, m.id, true);
        if (x == NULL)
            return cs_errorf(err, CS_ENOMEM, "out of memory");
        x->cap = m.capacity;
        x->alloc = m.allocated;
    }
    for (uint32_t i = 0; i < ts->via.array.size; i++) {
        cs_task t;
        CS_TRY(cs_unpack_task(&ts->via.array.ptr[i], a, &t, err));
        if (apply_task(w, &t, svc) != CS_OK)
            return cs_errorf(err, CS_ENOMEM, "out of memory");
    }
    return CS_OK;
}

/* The checks at the version the copy now holds, and the placements of the
 * reply's tasks. */
static int check_version(watcher *w, const msgpack_object *body, cs_arena *a, cs_error *err)
{
    cc_check *k = w->k;
    uint64_t over = 0, mismatch = 0;
    const wmachine *bad = NULL;
    for (size_t i = 0; i < w->nm; i++) {
        const wmachine *m = &w->m[i];
        if (res_above(&m->sum, &m->cap) || res_above(&m->alloc, &m->cap)) {
            over++;
            bad = bad ? bad : m;
        }
        mismatch += !res_equal(&m->sum, &m->alloc);
    }
    const msgpack_object *ts = cs_obj_get(body, "tasks");
    int rc = CS_OK;
    pthread_mutex_lock(&k->mu);
    k->versions++;
    k->overcommits += over;
    k->mismatches += mismatch != 0;
    if (bad != NULL)
        violation(k,
                  "overcommit: machine %llu at version %llu on replica %u: placed cpu %lld mem "
                  "%lld disk %lld, derived cpu %lld mem %lld disk %lld, capacity cpu %lld mem "
                  "%lld disk %lld",
                  (unsigned long long)bad->id, (unsigned long long)w->version, w->idx + 1,
                  (long long)bad->sum.cpu, (long long)bad->sum.mem, (long long)bad->sum.disk,
                  (long long)bad->alloc.cpu, (long long)bad->alloc.mem,
                  (long long)bad->alloc.disk, (long long)bad->cap.cpu, (long long)bad->cap.mem,
                  (long long)bad->cap.disk);
    for (uint32_t i = 0; rc == CS_OK && i < ts->via.array.size; i++) {
        cs_task t;
        cs_arena_reset(a);
        if ((rc = cs_unpack_task(&ts->via.array.ptr[i], a, &t, err)) != CS_OK)
            break;
        if (cs_task_state_placed(t.state))
            rc = note_placement(k, w->idx, w->version, t.id, t.attempts, t.machine);
    }
    /* The service's recovery: the first look at each version decides. */
    if (k->svc_count > 0 && w->version > k->rec_version) {
        k->rec_version = w->version;
        double t = now_s();
        if (w->svc_running >= k->svc_count) {
            if (k->rec_open) {
                double *nr = cs_vec_grow(k->rec, &k->caprec, k->nrec + 1, sizeof *k->rec, 64);
                if (nr != NULL) {
                    k->rec = nr;
                    k->rec[k->nrec++] = t - k->rec_start;
                }
                fprintf(stderr, "cellchaos: service back to %u running in %.2f s (version %llu, "
                                "replica %u)\n",
                        k->svc_count, t - k->rec_start, (unsigned long long)w->version,
                        w->idx + 1);
            }
            k->rec_armed = true;
            k->rec_open = false;
        } else if (k->rec_armed && !k->rec_open) {
            k->rec_open = true;
            k->rec_start = t;
            fprintf(stderr, "cellchaos: service down to %u of %u running (version %llu, replica "
                            "%u)\n",
                    w->svc_running, k->svc_count, (unsigned long long)w->version, w->idx + 1);
        }
    }
    pthread_mutex_unlock(&k->mu);
    if (rc == CS_ENOMEM)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    return rc;
}

/* A `sync` request from version `since` (0: the whole cell), through the
 * codec the schedulers' port uses; on CS_OK *r is the reply, valid until
 * the next call on `c`. */
static int sync_call(cs_client *c, uint64_t since, cs_msg *r, cs_error *err)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    cs_sync_req req = {.since = since};
    int rc = cs_sync_req_encode(&pk, &req);
    if (rc == CS_OK)
        rc = cs_client_callb(c, CS_MSG_SYNC, &b, r, err);
    else
        cs_errorf(err, rc, "out of memory");
    msgpack_sbuffer_destroy(&b);
    return rc;
}

/* One sync of the watcher's replica: incremental from the copy's version. */
static int sync_once(watcher *w, cs_client *c, cs_arena *a, cs_error *err)
{
    cc_check *k = w->k;
    cs_msg r;
    int rc;
    if ((rc = sync_call(c, w->version, &r, err)) != CS_OK)
        return rc;
    uint64_t v = 0;
    bool full = false;
    CS_TRY(cs_obj_u64(&r.body, "version", true, UINT64_MAX, &v, err));
    CS_TRY(cs_obj_bool(&r.body, "full", true, &full, err));
    if (v < w->version) {
        /* The replica serves an older cell than it did (a restart that has
         * not replayed its log yet): a stale read, which Omega tolerates,
         * but the copy's delta would be wrong; start over from it whole. */
        pthread_mutex_lock(&k->mu);
        k->regressions++;
        k->resyncs++;
        pthread_mutex_unlock(&k->mu);
        w->version = 0;
        return CS_OK;
    }
    if (v == w->version && !full)
        return CS_OK; /* nothing new */
    pthread_mutex_lock(&k->mu);
    cs_id svc = k->svc_job;
    if (full && w->version != 0)
        k->resyncs++;
    pthread_mutex_unlock(&k->mu);
    cs_arena_reset(a);
    if ((rc = apply_reply(w, &r.body, svc, a, err)) != CS_OK)
        return rc;
    w->version = v;
    return check_version(w, &r.body, a, err);
}

static void *watch(void *arg)
{
    watcher *w = arg;
    cc_check *k = w->k;
    cs_client *c = NULL;
    cs_error err = {0};
    cs_arena a;
    cs_arena_init(&a);
    if (cs_client_open(k->urls[w->idx], 5000, &c, &err) != CS_OK) {
        fprintf(stderr, "cellchaos: watcher of replica %u: %s\n", w->idx + 1, err.msg);
        goto out;
    }
    while (!atomic_load(&k->stop)) {
        int rc = sync_once(w, c, &a, &err);
        if (rc == CS_ENOMEM || rc == CS_EPROTO || rc == CS_ECORRUPT) {
            /* Not the chaos: a reply this client cannot read. Said once
             * per occurrence, and read whole again. */
            fprintf(stderr, "cellchaos: watcher of replica %u: %s\n", w->idx + 1, err.msg);
            w->version = 0;
        }
        /* An unreachable replica (killed, restarting) is retried at the
         * same pace: the next answer it gives is checked. */
        sleep_ms(rc == CS_OK ? 20 : 100);
    }
out:
    cs_client_close(c);
    cs_arena_free(&a);
    return NULL;
}

int cc_check_start(cc_check *k, cs_error *err)
{
    for (uint32_t i = 0; i < k->n; i++) {
        if (pthread_create(&k->w[i].thread, NULL, watch, &k->w[i]) != 0) {
            cc_check_stop(k);
            return cs_errorf(err, CS_EIO, "starting the watcher of replica %u", i + 1);
        }
        k->w[i].started = true;
    }
    return CS_OK;
}

void cc_check_stop(cc_check *k)
{
    atomic_store(&k->stop, true);
    for (uint32_t i = 0; i < k->n; i++)
        if (k->w[i].started) {
            pthread_join(k->w[i].thread, NULL);
            k->w[i].started = false;
        }
}

/* ---- the end ------------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Replica i's applied index (the members message) and version (stats);
 * zeros when it does not answer. */
static void replica_status(cs_client *c, uint64_t *applied, uint64_t *version)
{
    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};
    cs_msg m;
    cs_members_reply mr;
    *applied = 0;
    *version = 0;
    if (cs_client_call(c, CS_MSG_MEMBERS, "\x80", 1, &m, &err) == CS_OK &&
        cs_members_reply_decode(&m.body, &mr, &a, &err) == CS_OK)
        *applied = mr.applied_index;
    cs_stats_reply st;
    if (cs_client_stats(c, &st, &a, &err) == CS_OK)
        *version = st.version;
    cs_arena_free(&a);
}

/* The acknowledged writes replica `c` lacks (missing[i] for ack i), from
 * its list of jobs (get.jobs: every job, none of the tasks, which a cell
 * that ran for minutes holds by the hundred thousand). */
static int count_lost(cc_check *k, uint32_t replica, cs_client *c, bool *missing, cs_error *err)
{
    int rc;
    cs_msg r;
    cs_arena a;
    cs_arena_init(&a);
    cs_jobs_reply jr;
    cs_idindex ix;
    cs_idindex_init(&ix);
    if ((rc = cs_client_call(c, CS_MSG_GET_JOBS, "\x80", 1, &r, err)) != CS_OK ||
        (rc = cs_jobs_reply_decode(&r.body, &jr, &a, err)) != CS_OK)
        goto cleanup;
    /* cs_job starts with its id: the index finds a job in the reply's array. */
    for (uint32_t i = 0; i < jr.n; i++)
        if (cs_idindex_add(&ix, jr.jobs, sizeof *jr.jobs, i) != CS_OK) {
            rc = cs_errorf(err, CS_ENOMEM, "out of memory");
            goto cleanup;
        }
    for (size_t i = 0; i < k->nacks; i++) {
        const ack *w = &k->acks[i];
        uint32_t at = cs_idindex_find(&ix, jr.jobs, sizeof *jr.jobs, w->job);
        const char *why = NULL;
        if (at == CS_IDINDEX_NONE)
            why = "absent";
        else if (strcmp(jr.jobs[at].name, w->name) != 0)
            why = "under another name";
        else if (w->killed && jr.jobs[at].state == CS_JOB_ACTIVE)
            /* A kill ends an active job; one that had ended already
             * (finished, failed) stays as it was, so "not active" is what
             * an acknowledged kill promises. */
            why = "still active after its kill";
        if (why != NULL) {
            missing[i] = true;
            violation(k, "lost: job %llu '%s' (acknowledged at version %llu%s) is %s on "
                         "replica %u",
                      (unsigned long long)w->job, w->name, (unsigned long long)w->version,
                      w->killed ? ", killed" : "", why, replica + 1);
        }
    }
cleanup:
    cs_idindex_free(&ix);
    cs_arena_free(&a);
    return rc;
}

/* Whether a drop of the service below N is still open (under mu). */
static bool recovering(cc_check *k)
{
    pthread_mutex_lock(&k->mu);
    bool open = k->rec_open;
    pthread_mutex_unlock(&k->mu);
    return open;
}

int cc_check_finish(cc_check *k, uint32_t wait_ms, cc_result *out, cs_error *err)
{
    memset(out, 0, sizeof *out);
    out->nreplicas = k->n;
    cs_client *c[CC_MAX_REPLICAS] = {0};
    bool *missing = calloc(k->nacks + 1, sizeof *missing), *mine = calloc(k->nacks + 1, 1);
    int rc = CS_OK;
    if (missing == NULL || mine == NULL) {
        rc = cs_errorf(err, CS_ENOMEM, "out of memory");
        goto cleanup;
    }
    /* A cell of a few hundred thousand tasks on a loaded machine may take
     * seconds to answer: patience here, where nothing else is waiting. */
    for (uint32_t i = 0; i < k->n; i++)
        if ((rc = cs_client_open(k->urls[i], 10000, &c[i], err)) != CS_OK)
            goto cleanup;
    /* Every replica must reach the highest acknowledged version before its
     * absence of a write means anything; and the watchers go on until the
     * service has recovered from the last machine loss, or the wait ends. */
    double until = now_s() + wait_ms / 1000.0;
    for (;;) {
        bool all = true;
        for (uint32_t i = 0; i < k->n; i++) {
            replica_status(c[i], &out->applied[i], &out->version[i]);
            all = all && out->version[i] >= k->max_version;
        }
        if ((all && !recovering(k)) || now_s() >= until)
            break;
        sleep_ms(200);
    }
    cc_check_stop(k);
    for (uint32_t i = 0; i < k->n; i++) {
        cs_error e2 = {0};
        int r2 = CS_EIO;
        for (int tries = 0; tries < 3 && r2 != CS_OK; tries++) {
            memset(mine, 0, k->nacks + 1);
            if ((r2 = count_lost(k, i, c[i], mine, &e2)) != CS_OK)
                sleep_ms(1000);
        }
        if (r2 != CS_OK) {
            /* Not read is not lost: said apart, and the run fails. */
            out->unread++;
            pthread_mutex_lock(&k->mu);
            violation(k, "replica %u could not be read at the end: %s", i + 1, e2.msg);
            pthread_mutex_unlock(&k->mu);
            continue;
        }
        for (size_t j = 0; j < k->nacks; j++) {
            out->lost_on[i] += mine[j];
            missing[j] = missing[j] || mine[j];
        }
    }
    pthread_mutex_lock(&k->mu);
    for (size_t j = 0; j < k->nacks; j++)
        out->lost += missing[j];
    out->acked_submits = k->nacks;
    out->acked_kills = k->acked_kills;
    out->acknowledged = k->nacks + k->acked_kills;
    out->overcommits = k->overcommits;
    out->double_placements = k->doubles;
    out->versions = k->versions;
    out->resyncs = k->resyncs;
    out->regressions = k->regressions;
    out->alloc_mismatch = k->mismatches;
    out->losses = (uint32_t)k->nrec;
    out->unrecovered = k->rec_open;
    out->recovery_max_s = out->recovery_p50_s = (double)NAN;
    if (k->nrec > 0) {
        qsort(k->rec, k->nrec, sizeof *k->rec, cmp_double);
        out->recovery_max_s = k->rec[k->nrec - 1];
        out->recovery_p50_s = k->rec[(k->nrec - 1) / 2];
    }
    snprintf(out->first_violation, sizeof out->first_violation, "%s", k->first);
    pthread_mutex_unlock(&k->mu);
cleanup:
    for (uint32_t i = 0; i < k->n; i++)
        cs_client_close(c[i]);
    free(missing);
    free(mine);
    return rc;
}
