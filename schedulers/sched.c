/* sched.c — the scheduling loop (see sched.h). */
#include "schedulers/sched.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "proto/principal.h"
#include "proto/proto.h"
#include "proto/schedreport.h"
#include "schedulers/kinds.h"
#include "schedulers/place.h"
#include "schedulers/policy.h"
#include "cellstate/idindex.h"
#include "cellstate/vec.h"

/* What the loop remembers of one job between rounds (the copy holds what
 * the cell says; this is what only this scheduler knows). */
typedef struct job_state {
    cs_id id;               /* first: cellstate/idindex.h finds the state by it */
    uint32_t attempts;      /* attempts since the job last made progress */
    bool waited;            /* its first attempt's wait is recorded */
    bool placed;            /* its fully-placed wait is recorded */
    bool parked;
    bool abandoned;          /* --retry tail: past --max-attempts, never tried again */
    uint64_t parked_version; /* the copy's version when parked */
    int64_t park_until_ns;
    /* --retry tail: when it joined the queue's tail (wall ms, what it is
     * ordered by instead of its submission; 0 = never conflicted), and the
     * end of its back-off (monotonic). */
    int64_t queued_ms, retry_at_ns;
    uint32_t conflicts[CS_OUTCOME_COUNT]; /* by outcome, since the last progress */
} job_state;

/* The jobs' states in order of first sight, found by id. */
typedef struct job_map {
    job_state *v;
    size_t cap;
    uint32_t n;
    cs_idindex ix;
} job_map;

/* A job to place this round. */
typedef struct candidate {
    cs_id id;
    int32_t priority;
    uint64_t submitted; /* or when it joined the queue's tail (--retry tail) */
} candidate;

/* A placed task on a machine with a NoExecute taint its job tolerates for
 * a while (tolerationSeconds): when the scheduler first saw it so. */
typedef struct lingering {
    cs_id task;
    int64_t since_ns;
    bool seen; /* still so in this upkeep */
} lingering;

/* A job placed in a shared transaction: its claims are s->txn's claims
 * [first, first + n). */
typedef struct batched {
    cs_id id;
    uint32_t first, n;
    int64_t decided_ns; /* its decision time */
    cs_place_report rep;
} batched;

struct cs_sched {
    const cs_sched_opts *o;
    const cs_sched_hooks *hooks;
    const cs_sched_port *port;
    cs_copy *copy;
    cs_placer *placer;
    cs_metrics metrics;
    cs_txn txn;
    cs_txn_result res;
    msgpack_sbuffer buf;
    job_map jobs;
    candidate *cands;
    size_t ncands, capcands;
    batched *batch;
    size_t nbatch, capbatch;
    cs_id *ids, *pins;
    size_t capids;
    cs_rollout roll; /* scratch of the rollout hook */
    cs_backoff backoff; /* restart back-off of ended tasks (hooks.backoff) */
    uint64_t sched_id, next_req;
    /* The stop flag of the round under way (cs_sched_round's): a long
     * decision looks at it. */
    volatile sig_atomic_t *stop;
    /* Jobs of this round that wait out their --retry-ms back-off (left
     * out by collect, or requeued): with --once the loop goes on while
     * there are any. */
    size_t backing_off;
    int64_t next_report_ns, next_tend_ns;
    int64_t last_error_ns;
    char last_error[CS_ERROR_MSG_SIZE];
    const char *prog;
    /* The policy's names it ignores (cs_policy_warning), said once on
     * stderr and in every sched.report so that `cellctl stats` shows it. */
    char warning[CS_SCHED_WARNING_MAX + 1];
    /* Sorted by task id up to nsorted (each upkeep sorts what it kept);
     * the tasks first seen in this upkeep follow. */
    lingering *linger;
    size_t nlinger, caplinger, nsorted;
};

/* ---- time ---------------------------------------------------------------- */

/* The port's clocks (port.h): the host's for the daemons, a virtual one
 * in process. */
static int64_t mono_ns(const cs_sched *s) { return s->port->now(s->port->ctx); }
static int64_t wall_ms(const cs_sched *s) { return s->port->wall(s->port->ctx); }

static void sleep_ns(cs_sched *s, int64_t ns)
{
    if (ns <= 0)
        return;
    s->port->sleep(s->port->ctx, mono_ns(s) + ns);
}

/* ---- logging --------------------------------------------------------------- */

static void logf_(cs_sched *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(cs_sched *s, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s %s: %s\n", s->prog, s->o->name, line);
}

/* Errors talking to the server repeat while it is away: say each new one,
 * and the same one again at most every 10 s. */
static void log_error(cs_sched *s, const char *what, const cs_error *err)
{
    int64_t now = mono_ns(s);
    if (strcmp(err->msg, s->last_error) == 0 && now - s->last_error_ns < 10 * 1000000000LL)
        return;
    snprintf(s->last_error, sizeof s->last_error, "%s", err->msg);
    s->last_error_ns = now;
    logf_(s, "%s: %s", what, err->msg);
}

/* ---- per-job state ------------------------------------------------------------- */

/* The state of job `id`, created empty when new. NULL when out of memory.
 * Valid until the next job_get (the array may move). */
static job_state *job_get(job_map *m, cs_id id)
{
    uint32_t i = cs_idindex_find(&m->ix, m->v, sizeof *m->v, id);
    if (i != CS_IDINDEX_NONE)
        return &m->v[i];
    job_state *v = cs_vec_grow(m->v, &m->cap, (size_t)m->n + 1, sizeof *v, 256);
    if (v == NULL)
        return NULL;
    m->v = v;
    memset(&v[m->n], 0, sizeof *v);
    v[m->n].id = id;
    if (cs_idindex_add(&m->ix, m->v, sizeof *m->v, m->n) != CS_OK)
        return NULL;
    return &m->v[m->n++];
}

/* ---- setup --------------------------------------------------------------------- */

int cs_sched_new(const cs_sched_opts *o, const cs_sched_hooks *hooks, const cs_sched_port *port,
                 cs_sched **out, cs_error *err)
{
    int rc = CS_ENOMEM;
    cs_sched *s = calloc(1, sizeof *s);
    if (s == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    s->o = o;
    s->hooks = hooks;
    s->port = port;
    s->prog = o->kind == CS_SCHED_BATCH ? "cell-batch" : "cell-service";
    cs_metrics_init(&s->metrics, mono_ns(s));
    msgpack_sbuffer_init(&s->buf);
    cs_txn_result_init(&s->res);
    /* The store's idempotency key is (sched, req): the scheduler id comes
     * from its name (cellstated files the commit's counts under that
     * name: proto/schedreport.h), and request ids start from the wall
     * clock so that a restarted scheduler never reuses one (a reused one
     * would be answered with the old result). */
    s->sched_id = cs_sched_id_of(o->name);
    s->next_req = (uint64_t)wall_ms(s) << 16;
    cs_txn_init(&s->txn, s->sched_id, 0, 0, o->conflict, o->commit);

    cs_policy policy;
    if (o->policy_path != NULL)
        rc = cs_policy_load(o->policy_path, &policy, err);
    else
        rc = cs_policy_preset(o->strategy, &policy, err);
    if (rc != CS_OK)
        goto fail;
    if (cs_policy_warning(&policy, s->warning, sizeof s->warning))
        logf_(s, "%s", s->warning);
    cs_place_opts po = {
        .seed = o->seed ? o->seed : XXH3_64bits_withSeed(o->name, strlen(o->name), (uint64_t)getpid()),
        .k_batch = o->candidates,
        .k_service = o->candidates,
        .preempt = o->preempt,
    };
    if ((rc = cs_placer_new(&policy, &po, &s->placer, err)) != CS_OK)
        goto fail;
    if ((rc = cs_copy_new(&s->copy, err)) != CS_OK)
        goto fail;
    cs_copy_omit_running(s->copy, hooks->omit_running);
    *out = s;
    return CS_OK;
fail:
    cs_sched_free(s);
    return rc;
}

void cs_sched_free(cs_sched *s)
{
    if (s == NULL)
        return;
    cs_copy_free(s->copy);
    cs_placer_free(s->placer);
    cs_metrics_free(&s->metrics);
    cs_txn_free(&s->txn);
    cs_txn_result_free(&s->res);
    msgpack_sbuffer_destroy(&s->buf);
    free(s->jobs.v);
    cs_idindex_free(&s->jobs.ix);
    free(s->cands);
    free(s->batch);
    free(s->ids);
    free(s->pins);
    free(s->linger);
    cs_rollout_free(&s->roll);
    cs_backoff_free(&s->backoff);
    free(s);
}

const cs_sched_opts *cs_sched_options(const cs_sched *s) { return s->o; }

/* ---- talking to the cell (through the port) --------------------------------------- */

static int sync_copy(cs_sched *s, cs_error *err)
{
    int rc = cs_copy_sync(s->copy, s->port, err);
    if (rc != CS_OK && rc != CS_ENOMEM)
        log_error(s, "sync", err);
    return rc;
}

/* Commit s->txn; the outcome lands in s->res. */
static int commit_txn(cs_sched *s, cs_error *err)
{
    int rc = s->port->commit(s->port->ctx, &s->txn, &s->res, err);
    if (rc != CS_OK && rc != CS_ENOMEM)
        log_error(s, "commit", err);
    return rc;
}

static int set_note(cs_sched *s, const cs_cjob *j, const char *note, cs_error *err)
{
    if (strcmp(j->job.note ? j->job.note : "", note) == 0)
        return CS_OK; /* the cell already says so: write nothing */
    int rc = s->port->note(s->port->ctx, j->job.id, note, err);
    if (rc != CS_OK && rc != CS_ENOMEM)
        log_error(s, "job.note", err);
    return rc == CS_ENOMEM ? rc : CS_OK;
}

static int scale_job(cs_sched *s, cs_id job, uint32_t count, cs_error *err)
{
    int rc = s->port->scale(s->port->ctx, job, count, err);
    if (rc != CS_OK && rc != CS_ENOMEM)
        log_error(s, "job.scale", err);
    return rc == CS_ENOMEM ? rc : CS_OK;
}

/* The state of job `id`, or NULL when the loop has not seen it yet. */
static const job_state *job_find(const job_map *m, cs_id id)
{
    uint32_t i = cs_idindex_find(&m->ix, m->v, sizeof *m->v, id);
    return i == CS_IDINDEX_NONE ? NULL : &m->v[i];
}

/* What waits among the owned jobs: their pending tasks, and the jobs not
 * yet attempted with the sum of their waits so far (the paper's mean wait
 * counts them; metrics.h). */
typedef struct backlog {
    uint64_t pending_tasks, waiting, waiting_ms;
} backlog;

static void backlog_of(cs_sched *s, backlog *b)
{
    *b = (backlog){0};
    int64_t wall = wall_ms(s);
    for (uint32_t i = 0; i < cs_copy_njobs(s->copy); i++) {
        const cs_cjob *j = cs_copy_job_at(s->copy, i);
        if (j->job.state != CS_JOB_ACTIVE || !s->hooks->takes(s, j))
            continue;
        b->pending_tasks += j->npending;
        const job_state *st = job_find(&s->jobs, j->job.id);
        if (j->npending == 0 || j->job.submitted == 0 || (st != NULL && st->waited))
            continue;
        b->waiting++;
        if (wall > (int64_t)j->job.submitted)
            b->waiting_ms += (uint64_t)(wall - (int64_t)j->job.submitted);
    }
}

static void report(cs_sched *s, int64_t now)
{
    if (now < s->next_report_ns)
        return;
    s->next_report_ns = now + (int64_t)s->o->report_ms * 1000000;
    cs_metrics_view v;
    cs_metrics_view_at(&s->metrics, now, &v);
    backlog b;
    backlog_of(s, &b);
    cs_metrics_view_waiting(&v, b.waiting, b.waiting_ms);
    s->buf.size = 0;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &s->buf, msgpack_sbuffer_write);
    if (msgpack_pack_map(&pk, s->warning[0] ? 4 : 3) || cs_pack_kv_str(&pk, "name", s->o->name) ||
        cs_pack_kv_str(&pk, "kind", s->o->kind == CS_SCHED_BATCH ? "batch" : "service") ||
        (s->warning[0] && cs_pack_kv_str(&pk, "warning", s->warning)) ||
        msgpack_pack_str(&pk, 7) || msgpack_pack_str_body(&pk, "metrics", 7) ||
        cs_metrics_pack(&v, b.pending_tasks, &pk) != CS_OK)
        return;
    cs_error err = {0};
    if (s->port->report(s->port->ctx, s->buf.data, s->buf.size, &err) != CS_OK)
        log_error(s, "sched.report", &err);
}

/* Sleep out Omega's emulated decision time t_job + t_task x tasks for
 * `tasks` tasks, in pieces that end at each due report, so that reports
 * keep flowing through a long decision (a t_job of 20 s), and stop early
 * once the round's stop flag is set (the nng port's sleep returns on the
 * signal that sets it). The decision is then cut short, not dropped: what
 * was placed commits, and the scheduler exits after that one request. */
/* The hooks that give owned job `j` its upkeep: hooks.per_job's choice
 * when set (the `all` hooks of kinds.h), else the scheduler's own. */
static const cs_sched_hooks *hooks_of(const cs_sched *s, const cs_cjob *j)
{
    return s->hooks->per_job != NULL ? s->hooks->per_job(j) : s->hooks;
}

static void decision_sleep(cs_sched *s, const cs_cjob *j, size_t tasks)
{
    /* With per_kind_times (one scheduler owning both kinds) a service job
     * takes the service pair: schedopts.h. */
    bool svc = s->o->per_kind_times && j->job.kind == CS_JOB_SERVICE;
    double t = svc ? s->o->t_job_service_s + s->o->t_task_service_s * (double)tasks
                   : s->o->t_job_s + s->o->t_task_s * (double)tasks;
    if (t <= 0)
        return;
    int64_t until = mono_ns(s) + (int64_t)(t * 1e9);
    for (;;) {
        int64_t now = mono_ns(s);
        if (now >= until || (s->stop != NULL && *s->stop))
            return;
        report(s, now);
        s->port->sleep(s->port->ctx, until < s->next_report_ns ? until : s->next_report_ns);
    }
}

/* ---- one job ------------------------------------------------------------------------- */

static int ensure_ids(cs_sched *s, size_t n)
{
    if (n <= s->capids)
        return CS_OK;
    cs_id *ids = realloc(s->ids, n * sizeof *ids);
    if (ids == NULL)
        return CS_ENOMEM;
    s->ids = ids;
    cs_id *pins = realloc(s->pins, n * sizeof *pins);
    if (pins == NULL)
        return CS_ENOMEM;
    s->pins = pins;
    s->capids = n;
    return CS_OK;
}

/* "gave up after 3 conflicting attempts: would overcommit cpu 12, port in
 * use 2" (`what` is "gave up" or "abandoned"). */
static void conflict_note(const job_state *st, const char *what, char *out, size_t size)
{
    size_t len = (size_t)snprintf(out, size, "%s after %" PRIu32 " conflicting attempts:", what,
                                  st->attempts);
    const char *sep = " ";
    for (int k = 1; k < CS_OUTCOME_COUNT && len < size; k++) {
        if (st->conflicts[k] == 0)
            continue;
        len += (size_t)snprintf(out + len, size - len, "%s%s %" PRIu32, sep, cs_outcome_str((uint8_t)k),
                                st->conflicts[k]);
        sep = ", ";
    }
}

static void park(cs_sched *s, job_state *st, int64_t now)
{
    st->parked = true;
    st->parked_version = cs_copy_version(s->copy);
    st->park_until_ns = now + (int64_t)s->o->park_ms * 1000000;
}

/* A global job: pin its pending tasks to the machines that fit and lack
 * one, growing the job first when there are more machines than tasks.
 * Returns how many pins were made into s->pins (parallel to s->ids). */
static int global_pins(cs_sched *s, const cs_cjob *j, size_t *npend, bool *scaled, bool *pinned,
                       cs_error *err)
{
    cs_id *ms = NULL;
    size_t nm = 0;
    *scaled = false;
    *pinned = false;
    int rc = cs_place_global(s->placer, s->copy, j->job.id, &ms, &nm, err);
    if (rc != CS_OK) /* a bad job: placing it unpinned gives the placer's reason */
        return rc == CS_ENOMEM ? rc : CS_OK;
    if (nm > *npend) {
        /* More machines than waiting tasks: grow the job, and place the new
         * tasks once the next sync shows them. */
        uint64_t count = (uint64_t)j->job.count + (nm - *npend);
        if (count > CS_TASK_INDEX_MAX + 1ULL)
            count = CS_TASK_INDEX_MAX + 1ULL;
        rc = scale_job(s, j->job.id, (uint32_t)count, err);
        free(ms);
        *scaled = true;
        return rc;
    }
    if ((rc = ensure_ids(s, nm ? nm : 1)) != CS_OK) {
        free(ms);
        return cs_errorf(err, rc, "out of memory");
    }
    for (size_t i = 0; i < nm; i++)
        s->pins[i] = ms[i];
    *npend = nm; /* the rest wait, pending, for machines that join */
    *pinned = true;
    free(ms);
    return CS_OK;
}

/* The note of job `j` once every task of it is placed: the rollout's
 * progress while one is under way, else none. Only CS_ENOMEM fails. */
static int placed_note(cs_sched *s, const cs_cjob *j, char *buf, size_t size, cs_error *err)
{
    buf[0] = '\0';
    const cs_sched_hooks *h = hooks_of(s, j);
    if (h->rollout == NULL)
        return CS_OK;
    int rc = h->rollout(s->copy, j, &s->roll, err);
    if (rc == CS_OK)
        cs_rollout_note(&s->roll.step, buf, size);
    return rc == CS_ENOMEM ? rc : CS_OK;
}

/* After the commit and the sync that followed it: job `id`'s waits, its
 * parking and its note, from whether its claims conflicted and what the
 * placer reported. */
static int finish_job(cs_sched *s, cs_id id, job_state *st, bool conflicted,
                      const cs_place_report *rep, cs_error *err)
{
    int rc;
    const cs_cjob *j = cs_copy_job(s->copy, id);
    if (j == NULL)
        return CS_OK;
    int64_t now = mono_ns(s);
    if (j->npending == 0) {
        if (!st->placed) {
            st->placed = true;
            int64_t waited = wall_ms(s) - (int64_t)j->job.submitted;
            if (j->job.submitted &&
                cs_metrics_wait_placed(&s->metrics, waited > 0 ? (uint64_t)waited : 0))
                return cs_errorf(err, CS_ENOMEM, "out of memory");
        }
        st->attempts = 0;
        memset(st->conflicts, 0, sizeof st->conflicts);
        st->parked = false;
        st->queued_ms = st->retry_at_ns = 0; /* tasks pending later queue by submission */
        char note[CS_NOTE_MAX + 1];
        if ((rc = placed_note(s, j, note, sizeof note, err)) != CS_OK)
            return rc;
        return set_note(s, j, note, err);
    }
    if (!conflicted && rep->pending > 0) {
        /* Fits nowhere now: say why, and wait for the cell to change. */
        park(s, st, now);
        return set_note(s, j, rep->reason, err);
    }
    if (st->attempts >= s->o->max_attempts && s->o->retry == CS_RETRY_TAIL) {
        /* The paper's limit: given up for good (until this scheduler
         * restarts: the state is in its memory), and counted. */
        char note[CS_PLACE_REASON_MAX];
        conflict_note(st, "abandoned (--retry tail)", note, sizeof note);
        st->abandoned = true;
        cs_metrics_abandoned(&s->metrics);
        return set_note(s, j, note, err);
    }
    if (st->attempts >= s->o->max_attempts) {
        char note[CS_PLACE_REASON_MAX];
        conflict_note(st, "gave up", note, sizeof note);
        park(s, st, now);
        st->attempts = 0;
        memset(st->conflicts, 0, sizeof st->conflicts);
        return set_note(s, j, note, err);
    }
    if (conflicted && s->o->retry == CS_RETRY_TAIL) {
        /* Omega's simulator puts a conflicted job back at the tail of the
         * queue; it joins after its back-off, behind the jobs that arrived
         * meanwhile. */
        st->retry_at_ns = now + (int64_t)s->o->retry_ms * 1000000;
        st->queued_ms = wall_ms(s) + (int64_t)s->o->retry_ms;
        s->backing_off++;
    }
    return CS_OK;
}

/* Of `ns` of decision time for `claims` claims, the share of the `lost`
 * ones that did not commit (conflicted, or the whole of an aborted gang):
 * work the scheduler does again (metrics.h). */
static void waste(cs_sched *s, int64_t ns, uint32_t claims, uint32_t lost)
{
    if (claims > 0 && lost > 0)
        cs_metrics_wasted(&s->metrics, (int64_t)((double)ns * lost / claims));
}

/* Omega's wait time of a job's first attempt (submission to its start),
 * and one more attempt. */
static int start_attempt(cs_sched *s, const cs_cjob *j, job_state *st, cs_error *err)
{
    if (!st->waited) {
        st->waited = true;
        int64_t waited = wall_ms(s) - (int64_t)j->job.submitted;
        if (j->job.submitted && cs_metrics_wait_first(&s->metrics, waited > 0 ? (uint64_t)waited : 0))
            return cs_errorf(err, CS_ENOMEM, "out of memory");
    }
    cs_metrics_attempt(&s->metrics);
    st->attempts++;
    return CS_OK;
}

/* Place job `id`'s pending tasks, commit, resync. *progress is set when
 * anything committed. */
static int place_one(cs_sched *s, cs_id id, bool *progress, cs_error *err)
{
    int64_t now = mono_ns(s);
    const cs_cjob *j = cs_copy_job(s->copy, id);
    if (j == NULL || j->job.state != CS_JOB_ACTIVE || (j->npending == 0 && !j->opts.global))
        return CS_OK;
    job_state *st = job_get(&s->jobs, id);
    if (st == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    bool gang = j->opts.gang || s->o->commit == CS_COMMIT_GANG;
    size_t n = j->npending;
    if (!gang && n > s->o->max_claims)
        n = s->o->max_claims;
    int rc = ensure_ids(s, n);
    if (rc != CS_OK)
        return cs_errorf(err, rc, "out of memory");
    n = cs_copy_pending(s->copy, id, s->ids, n);
    const cs_id *on = NULL;
    if (j->opts.global) {
        bool scaled, pinned;
        size_t had = n;
        if ((rc = global_pins(s, j, &n, &scaled, &pinned, err)) != CS_OK)
            return rc;
        if (scaled) {
            *progress = true;
            return sync_copy(s, err) == CS_ENOMEM ? CS_ENOMEM : CS_OK;
        }
        if (pinned && n == 0) {
            /* Every machine that fits runs one: wait for the cell to change. */
            park(s, st, now);
            if (had == 0)
                return CS_OK;
            return set_note(s, j, "global: waiting for a machine that fits", err);
        }
        on = pinned ? s->pins : NULL;
    }

    if ((rc = start_attempt(s, j, st, err)) != CS_OK)
        return rc;

    cs_txn_reset(&s->txn, s->next_req++, cs_copy_version(s->copy));
    s->txn.conflict = s->o->conflict;
    s->txn.commit = gang ? CS_COMMIT_GANG : CS_COMMIT_INCREMENTAL;
    cs_place_report rep;
    if ((rc = cs_place_job(s->placer, s->copy, id, s->ids, n, on, &s->txn, &rep, err)) != CS_OK) {
        if (rc == CS_ENOMEM)
            return rc;
        log_error(s, "placement", err);
        park(s, st, now);
        return CS_OK;
    }
    decision_sleep(s, j, n);
    int64_t decided = mono_ns(s) - now;
    cs_metrics_decided(&s->metrics, decided);

    bool conflicted = false;
    if (s->txn.nclaims > 0) {
        if ((rc = commit_txn(s, err)) != CS_OK)
            return rc == CS_ENOMEM ? rc : CS_OK; /* the next round syncs and tries again */
        bool aborted = gang && s->res.committed == 0;
        cs_metrics_txn(&s->metrics, s->res.committed, s->res.conflicts, aborted);
        waste(s, decided, s->txn.nclaims, s->txn.nclaims - s->res.committed);
        conflicted = s->res.conflicts > 0 || aborted;
        for (uint32_t i = 0; i < s->txn.nclaims; i++)
            st->conflicts[s->res.claims[i]]++;
        if (s->res.committed > 0)
            *progress = true;
        if (s->o->verbose)
            logf_(s, "job %" PRIu64 ": %" PRIu32 " claims, %" PRIu32 " committed, %" PRIu32
                     " conflicted, version %" PRIu64,
                  id, s->txn.nclaims, s->res.committed, s->res.conflicts, s->res.version);
    }
    /* Resync whether or not it succeeded (Omega §3.4). */
    if ((rc = sync_copy(s, err)) != CS_OK)
        return rc == CS_ENOMEM ? rc : CS_OK;
    return finish_job(s, id, st, conflicted, &rep, err);
}

/* The most claims a transaction of several jobs gathers. Larger batches
 * conflict more: the schedulers all choose from copies of the same moment,
 * and a policy that prefers the emptiest machines sends their claims to the
 * same ones. Measured (cellbench place, 4 schedulers, jobs of 1,000 tasks):
 * batches up to --max-claims (5,000) raised the conflict fraction from 0.07
 * to 0.8-0.9 and lowered placements/s; at 1,000 those jobs go one per
 * transaction as before, and only jobs smaller than that share one. */
#define BATCH_CLAIMS 1000

/* Whether job `j` may share a transaction with others: incremental, and
 * neither a gang (all or nothing is judged per transaction) nor global
 * (its pins and growth go through place_one). With --txn-per-job no job
 * does (cs_sched_round never calls place_batch): the paper's one
 * transaction per job, so that gang and incremental differ only in how the
 * store judges a transaction, not in how many jobs it holds. */
static bool batchable(const cs_sched *s, const cs_cjob *j)
{
    return s->o->commit == CS_COMMIT_INCREMENTAL && !j->opts.gang && !j->opts.global;
}

static int push_batched(cs_sched *s, const batched *b)
{
    if (s->nbatch == s->capbatch) {
        size_t cap = s->capbatch ? s->capbatch * 2 : 16;
        batched *v = realloc(s->batch, cap * sizeof *v);
        if (v == NULL)
            return CS_ENOMEM;
        s->batch = v;
        s->capbatch = cap;
    }
    s->batch[s->nbatch++] = *b;
    return CS_OK;
}

/* Omega §3.4 lets a scheduler decide for as many jobs as it likes between
 * syncs. Place the batchable candidates from s->cands[from] on, one after
 * the other on the copy (each sees the claims of those before it), until
 * their claims would pass BATCH_CLAIMS; commit them in one incremental
 * transaction and sync once: one round trip to the writer and one delta
 * for several small jobs instead of one each. Still one commit
 * outstanding. *next is the first candidate not taken: `from` when that
 * one is not batchable (place_one places it). */
static int place_batch(cs_sched *s, size_t from, size_t *next, bool *progress, cs_error *err)
{
    int64_t start = mono_ns(s);
    int rc;
    cs_txn_reset(&s->txn, s->next_req, cs_copy_version(s->copy));
    s->txn.conflict = s->o->conflict;
    s->txn.commit = CS_COMMIT_INCREMENTAL;
    s->nbatch = 0;
    size_t i = from;
    for (; i < s->ncands; i++) {
        /* Between jobs: a stop commits what is decided and ends the round;
         * a report falls due during a batch of long decisions. */
        if (i > from && *s->stop)
            break;
        report(s, mono_ns(s));
        cs_id id = s->cands[i].id;
        const cs_cjob *j = cs_copy_job(s->copy, id);
        if (j != NULL && j->job.state == CS_JOB_ACTIVE && !batchable(s, j))
            break; /* even with nothing pending: a global job looks for new machines */
        if (j == NULL || j->job.state != CS_JOB_ACTIVE || j->npending == 0)
            continue;
        size_t n = j->npending < s->o->max_claims ? j->npending : s->o->max_claims;
        if (s->nbatch > 0 && s->txn.nclaims + n > BATCH_CLAIMS)
            break;
        job_state *st = job_get(&s->jobs, id);
        if (st == NULL || ensure_ids(s, n) != CS_OK)
            return cs_errorf(err, CS_ENOMEM, "out of memory");
        n = cs_copy_pending(s->copy, id, s->ids, n);
        if ((rc = start_attempt(s, j, st, err)) != CS_OK)
            return rc;
        int64_t decide = mono_ns(s);
        batched b = {.id = id, .first = s->txn.nclaims};
        if ((rc = cs_place_job(s->placer, s->copy, id, s->ids, n, NULL, &s->txn, &b.rep, err)) !=
            CS_OK) {
            if (rc == CS_ENOMEM)
                return rc;
            log_error(s, "placement", err);
            park(s, st, start);
            continue;
        }
        decision_sleep(s, j, n);
        b.decided_ns = mono_ns(s) - decide;
        cs_metrics_decided(&s->metrics, b.decided_ns);
        b.n = s->txn.nclaims - b.first;
        if (push_batched(s, &b) != CS_OK)
            return cs_errorf(err, CS_ENOMEM, "out of memory");
    }
    *next = i;
    if (s->nbatch == 0)
        return CS_OK;
    s->next_req++;
    if (s->txn.nclaims > 0) {
        if ((rc = commit_txn(s, err)) != CS_OK)
            return rc == CS_ENOMEM ? rc : CS_OK; /* the next round syncs and tries again */
        cs_metrics_txn(&s->metrics, s->res.committed, s->res.conflicts, false);
        if (s->res.committed > 0)
            *progress = true;
        if (s->o->verbose)
            logf_(s, "%zu jobs: %" PRIu32 " claims, %" PRIu32 " committed, %" PRIu32
                     " conflicted, version %" PRIu64,
                  s->nbatch, s->txn.nclaims, s->res.committed, s->res.conflicts, s->res.version);
    }
    /* Resync whether or not it succeeded (Omega §3.4). */
    if ((rc = sync_copy(s, err)) != CS_OK)
        return rc == CS_ENOMEM ? rc : CS_OK;
    for (size_t k = 0; k < s->nbatch; k++) {
        const batched *b = &s->batch[k];
        job_state *st = job_get(&s->jobs, b->id);
        if (st == NULL)
            return cs_errorf(err, CS_ENOMEM, "out of memory");
        uint32_t lost = 0;
        for (uint32_t c = b->first; c < b->first + b->n; c++) {
            st->conflicts[s->res.claims[c]]++;
            lost += s->res.claims[c] != CS_COMMITTED;
        }
        bool conflicted = lost > 0;
        waste(s, b->decided_ns, b->n, lost);
        if ((rc = finish_job(s, b->id, st, conflicted, &b->rep, err)) != CS_OK)
            return rc;
    }
    return CS_OK;
}

/* ---- rounds ---------------------------------------------------------------------------- */

static int cmp_cand(const void *a, const void *b)
{
    const candidate *x = a, *y = b;
    if (x->priority != y->priority)
        return x->priority > y->priority ? -1 : 1;
    if (x->submitted != y->submitted)
        return x->submitted < y->submitted ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Whether every task in owned job `j`'s slots has ended and none will run
 * again: the job is over (hooks.ends_jobs). */
static bool job_over(const cs_sched *s, const cs_cjob *j)
{
    uint64_t slots = (uint64_t)j->job.count + j->job.surge;
    if (j->ntaskidx < slots)
        return false;
    for (uint32_t k = 0; k < slots; k++) {
        if (j->tasks[k] == CS_NONE)
            return false;
        const cs_ctask *t = cs_copy_task_at(s->copy, j->tasks[k]);
        if (!cs_task_state_final(t->state) || hooks_of(s, j)->again(j, t))
            return false;
    }
    return true;
}

/* Send job.end for each owned job that is over. The cell checks the tasks
 * again (a stale copy is refused with CS_ESTATE, logged) and decides
 * finished or failed. */
static int end_jobs(cs_sched *s, bool *progress, cs_error *err)
{
    if (!s->hooks->ends_jobs && s->hooks->per_job == NULL)
        return CS_OK;
    for (uint32_t i = 0; i < cs_copy_njobs(s->copy); i++) {
        const cs_cjob *j = cs_copy_job_at(s->copy, i);
        if (j->job.state != CS_JOB_ACTIVE || !s->hooks->takes(s, j) ||
            !hooks_of(s, j)->ends_jobs || !job_over(s, j))
            continue;
        int rc = s->port->job_end(s->port->ctx, j->job.id, err);
        if (rc == CS_ENOMEM)
            return rc;
        if (rc != CS_OK)
            log_error(s, "job.end", err);
        else
            *progress = true;
    }
    return CS_OK;
}

/* Of a job's tasks waiting out their back-off, the one that starts first:
 * what the job's note tells. */
typedef struct waiting {
    int64_t not_before; /* monotonic ms; INT64_MAX when none waits */
    uint32_t index, ends;
} waiting;

/* Whether ended task `t` of job `j` must wait before it runs again
 * (hooks.backoff), noting the soonest start of the job's waiting tasks in
 * *w. A running task is seen running, which resets its count in time. */
static int backs_off(cs_sched *s, const cs_cjob *j, const cs_ctask *t, int64_t now, waiting *w,
                     bool *wait, cs_error *err)
{
    *wait = false;
    if (!hooks_of(s, j)->backoff)
        return CS_OK;
    if (t->state == CS_TASK_RUNNING) {
        cs_backoff_running(&s->backoff, t->id, t->attempts, now);
        return CS_OK;
    }
    if (t->state != CS_TASK_FAILED && t->state != CS_TASK_FINISHED)
        return CS_OK;
    int64_t nb;
    uint32_t ends;
    if (cs_backoff_ended(&s->backoff, t->id, t->attempts, &j->opts, now, &nb, &ends) != CS_OK)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    *wait = now < nb;
    if (*wait && nb < w->not_before)
        *w = (waiting){nb, cs_task_index(t->id), ends};
    return CS_OK;
}

/* The job's note while a task of it waits out its back-off. */
static int backoff_note(cs_sched *s, const cs_cjob *j, const waiting *w, int64_t now,
                        cs_error *err)
{
    char note[CS_NOTE_MAX + 1];
    cs_backoff_note((uint64_t)(wall_ms(s) + (w->not_before - now)), w->index, w->ends,
                    note, sizeof note);
    return set_note(s, j, note, err);
}

/* Whether placed task `t` of `j` must leave its machine now for a
 * NoExecute taint (cs_place_noexecute_stay): at once when no toleration
 * covers the taint, after tolerationSeconds counted from when this
 * scheduler first saw the task so (the cell does not say when a taint was
 * added; a restarted scheduler counts again), never otherwise. CS_ENOMEM. */
static int noexecute_due(cs_sched *s, const cs_cjob *j, const cs_ctask *t, int64_t now,
                         bool *due)
{
    *due = false;
    const cs_cmachine *m = cs_copy_machine_at(s->copy, t->machine);
    uint32_t stay = cs_place_noexecute_stay(s->copy, j, m);
    if (stay == CS_PLACE_STAY_FOREVER)
        return CS_OK;
    size_t lo = 0, hi = s->nsorted;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->linger[mid].task < t->id)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t i = lo < s->nsorted && s->linger[lo].task == t->id ? lo : s->nsorted;
    while (i < s->nlinger && s->linger[i].task != t->id)
        i++;
    if (i == s->nlinger) {
        lingering *v = cs_vec_grow(s->linger, &s->caplinger, s->nlinger + 1, sizeof *v, 16);
        if (v == NULL)
            return CS_ENOMEM;
        s->linger = v;
        s->linger[s->nlinger++] = (lingering){t->id, now, false};
    }
    s->linger[i].seen = true;
    *due = now - s->linger[i].since_ns >= (int64_t)stay * 1000000000;
    return CS_OK;
}

static int cmp_lingering(const void *a, const void *b)
{
    cs_id x = ((const lingering *)a)->task, y = ((const lingering *)b)->task;
    return (x > y) - (x < y);
}

/* Forget the lingering tasks not seen in this upkeep (moved, ended, or the
 * taint is gone); sort the rest for the next upkeep's lookups. */
static void linger_sweep(cs_sched *s)
{
    bool added = s->nlinger > s->nsorted;
    size_t w = 0;
    for (size_t i = 0; i < s->nlinger; i++)
        if (s->linger[i].seen) {
            s->linger[w] = s->linger[i];
            s->linger[w++].seen = false;
        }
    s->nlinger = w;
    if (added)
        qsort(s->linger, w, sizeof *s->linger, cmp_lingering);
    s->nsorted = w;
}

/* Upkeep, for every owned job, in one transaction: the ended tasks the
 * hook wants to run again go back to pending — those in back-off once it
 * has passed —, and so do the placed tasks a NoExecute taint of their
 * machine evicts (the placer then keeps them off it); then the jobs that
 * are over end. */
static int tend(cs_sched *s, bool *progress, cs_error *err)
{
    int64_t now_ns = mono_ns(s), now = now_ns / 1000000;
    cs_txn_reset(&s->txn, s->next_req, cs_copy_version(s->copy));
    s->txn.conflict = s->o->conflict;
    s->txn.commit = CS_COMMIT_INCREMENTAL;
    bool noexec = cs_copy_noexecute(s->copy);
    for (uint32_t i = 0; i < cs_copy_njobs(s->copy); i++) {
        const cs_cjob *j = cs_copy_job_at(s->copy, i);
        if (j->job.state != CS_JOB_ACTIVE || !s->hooks->takes(s, j)) {
            if (s->backoff.n > 0)
                cs_backoff_forget_job(&s->backoff, j->job.id);
            continue;
        }
        /* Without back-off and NoExecute, only ended tasks have anything
         * to do here: a job with none (a long-running batch job's, the
         * bulk of a large cell) is not walked task by task. */
        if (j->nended == 0 && !noexec && !hooks_of(s, j)->backoff)
            continue;
        uint64_t slots = (uint64_t)j->job.count + j->job.surge;
        waiting w = {INT64_MAX, 0, 0};
        for (uint32_t k = 0; k < j->ntaskidx && k < slots; k++) {
            if (j->tasks[k] == CS_NONE)
                continue;
            const cs_ctask *t = cs_copy_task_at(s->copy, j->tasks[k]);
            bool ended = t->state == CS_TASK_FAILED || t->state == CS_TASK_FINISHED ||
                         t->state == CS_TASK_LOST;
            bool wait;
            int rc = backs_off(s, j, t, now, &w, &wait, err);
            if (rc != CS_OK)
                return rc;
            bool evict = false;
            if (noexec && cs_task_state_placed(t->state) &&
                noexecute_due(s, j, t, now_ns, &evict) != CS_OK)
                return cs_errorf(err, CS_ENOMEM, "out of memory");
            if (((ended && !wait && hooks_of(s, j)->again(j, t)) || evict) &&
                cs_txn_add_release(&s->txn, t->id, CS_TASK_PENDING, 0) != CS_OK)
                return cs_errorf(err, CS_ENOMEM, "out of memory");
        }
        /* One note per job: the placer's (why pending tasks wait) and a
         * rollout's progress come first, so that two writers never take
         * turns rewriting it. */
        int rc;
        if (w.not_before != INT64_MAX && j->npending == 0 && !cs_rollout_is_note(j->job.note) &&
            (rc = backoff_note(s, j, &w, now, err)) != CS_OK)
            return rc;
    }
    linger_sweep(s);
    if (s->txn.nreleases == 0)
        return end_jobs(s, progress, err);
    s->next_req++;
    int rc = commit_txn(s, err);
    if (rc != CS_OK)
        return rc == CS_ENOMEM ? rc : CS_OK;
    for (uint32_t i = 0; i < s->txn.nreleases; i++)
        if (s->res.releases[i] == CS_COMMITTED)
            *progress = true;
    if (sync_copy(s, err) == CS_ENOMEM)
        return CS_ENOMEM;
    return end_jobs(s, progress, err);
}

/* ---- rolling updates ------------------------------------------------------------------ */

/* Restart the slots that step `st` chose of job `j` with its current spec:
 * one transaction of releases to pending and — unless the job is global,
 * whose pending tasks place_one pins — the claims that place them again
 * where they fit now (restarted in place, the copy reserving what each
 * gave back). What does not fit stays pending for place_one. */
static int restart(cs_sched *s, const cs_cjob *j, const cs_rollout_step *st, bool *moved,
                   cs_error *err)
{
    int64_t start = mono_ns(s);
    cs_id id = j->job.id;
    bool gang = j->opts.gang || s->o->commit == CS_COMMIT_GANG;
    int rc = ensure_ids(s, st->nrestart);
    if (rc != CS_OK)
        return cs_errorf(err, rc, "out of memory");
    cs_txn_reset(&s->txn, s->next_req++, cs_copy_version(s->copy));
    s->txn.conflict = s->o->conflict;
    s->txn.commit = gang ? CS_COMMIT_GANG : CS_COMMIT_INCREMENTAL;
    for (uint32_t i = 0; i < st->nrestart; i++) {
        s->ids[i] = cs_task_id(id, st->restart[i]);
        if (cs_txn_add_release(&s->txn, s->ids[i], CS_TASK_PENDING, 0) != CS_OK)
            return cs_errorf(err, CS_ENOMEM, "out of memory");
        /* The rollout chose placed tasks of this copy: only memory fails;
         * the next sync rolls back what was requeued. */
        if ((rc = cs_copy_requeue(s->copy, s->ids[i], err)) != CS_OK) {
            if (rc != CS_ENOMEM)
                log_error(s, "rollout", err);
            return rc == CS_ENOMEM ? rc : CS_OK;
        }
    }
    if (!j->opts.global) {
        cs_place_report rep;
        rc = cs_place_job(s->placer, s->copy, id, s->ids, st->nrestart, NULL, &s->txn, &rep, err);
        if (rc == CS_ENOMEM)
            return rc;
        if (rc != CS_OK) /* the releases go alone; place_one says why the rest waits */
            log_error(s, "placement", err);
        decision_sleep(s, j, st->nrestart);
    }
    int64_t decided = mono_ns(s) - start;
    cs_metrics_decided(&s->metrics, decided);
    if ((rc = commit_txn(s, err)) != CS_OK)
        return rc == CS_ENOMEM ? rc : CS_OK;
    if (s->txn.nclaims > 0) {
        cs_metrics_txn(&s->metrics, s->res.committed, s->res.conflicts,
                       gang && s->res.committed == 0);
        waste(s, decided, s->txn.nclaims, s->txn.nclaims - s->res.committed);
    }
    for (uint32_t i = 0; i < s->txn.nreleases; i++)
        *moved |= s->res.releases[i] == CS_COMMITTED;
    return CS_OK;
}

/* One line per rollout step with --verbose. */
static void log_step(cs_sched *s, const cs_cjob *j, const cs_rollout_step *st)
{
    char slots[256] = "", note[CS_NOTE_MAX + 1];
    size_t len = 0;
    for (uint32_t i = 0; i < st->nrestart && len < sizeof slots; i++)
        len += (size_t)snprintf(slots + len, sizeof slots - len, "%s%" PRIu32, i ? "," : " ",
                                st->restart[i]);
    cs_rollout_note(st, note, sizeof note);
    logf_(s, "job %" PRIu64 " (%s): restart %" PRIu32 " slot%s%s, surge %" PRIu32 " -> %" PRIu32
             "; %s",
          j->job.id, j->job.name, st->nrestart, st->nrestart == 1 ? "" : "s", slots,
          j->job.surge, st->surge, note);
}

/* Step every owned job's rollout (hooks.rollout): set its surge, restart
 * what the step chose, and keep its note (when every task is placed; until
 * then place_one's note says why they wait). */
static int roll(cs_sched *s, bool *progress, cs_error *err)
{
    if (s->hooks->rollout == NULL && s->hooks->per_job == NULL)
        return CS_OK;
    for (uint32_t i = 0; i < cs_copy_njobs(s->copy); i++) {
        const cs_cjob *j = cs_copy_job_at(s->copy, i);
        const cs_sched_hooks *h;
        if (j->job.state != CS_JOB_ACTIVE || !s->hooks->takes(s, j) ||
            (h = hooks_of(s, j))->rollout == NULL)
            continue;
        int rc = h->rollout(s->copy, j, &s->roll, err);
        if (rc == CS_ENOMEM)
            return rc;
        const cs_rollout_step *st = &s->roll.step;
        if (rc != CS_OK || !st->active) {
            /* Done (or never begun): a rollout's note goes with it. */
            if (rc == CS_OK && j->npending == 0 && cs_rollout_is_note(j->job.note) &&
                (rc = set_note(s, j, "", err)) != CS_OK)
                return rc;
            continue;
        }
        cs_id id = j->job.id;
        bool moved = false;
        if (st->nrestart > 0 || st->surge != j->job.surge) {
            if (s->o->verbose)
                log_step(s, j, st);
            if (st->surge != j->job.surge) {
                rc = s->port->surge(s->port->ctx, id, st->surge, err);
                if (rc == CS_ENOMEM)
                    return rc;
                if (rc != CS_OK)
                    log_error(s, "job.surge", err);
                moved = rc == CS_OK;
            }
            if (st->nrestart > 0 && (rc = restart(s, j, st, &moved, err)) != CS_OK)
                return rc;
            if ((rc = sync_copy(s, err)) != CS_OK)
                return rc == CS_ENOMEM ? rc : CS_OK;
        }
        *progress |= moved;
        j = cs_copy_job(s->copy, id);
        if (j != NULL && j->npending == 0) {
            char note[CS_NOTE_MAX + 1];
            if ((rc = placed_note(s, j, note, sizeof note, err)) != CS_OK ||
                (rc = set_note(s, j, note, err)) != CS_OK)
                return rc;
        }
    }
    return CS_OK;
}

/* The owned jobs with pending tasks that are not parked, in order. */
static int collect(cs_sched *s, int64_t now, cs_error *err)
{
    s->ncands = 0;
    s->backing_off = 0;
    for (uint32_t i = 0; i < cs_copy_njobs(s->copy); i++) {
        const cs_cjob *j = cs_copy_job_at(s->copy, i);
        /* A global job is looked at even with nothing pending: machines
         * that join may want a task. */
        if (j->job.state != CS_JOB_ACTIVE || (j->npending == 0 && !j->opts.global) ||
            !s->hooks->takes(s, j))
            continue;
        job_state *st = job_get(&s->jobs, j->job.id);
        if (st == NULL)
            return cs_errorf(err, CS_ENOMEM, "out of memory");
        if (st->abandoned)
            continue;
        if (now < st->retry_at_ns) {
            s->backing_off++;
            continue;
        }
        if (st->parked) {
            if (now < st->park_until_ns || cs_copy_version(s->copy) == st->parked_version)
                continue;
            st->parked = false;
        }
        if (s->ncands == s->capcands) {
            size_t cap = s->capcands ? s->capcands * 2 : 64;
            candidate *c = realloc(s->cands, cap * sizeof *c);
            if (c == NULL)
                return cs_errorf(err, CS_ENOMEM, "out of memory");
            s->cands = c;
            s->capcands = cap;
        }
        /* A job back from a conflict under --retry tail queues by when it
         * came back, not by its submission: at the tail. */
        uint64_t queued = st->queued_ms > 0 ? (uint64_t)st->queued_ms : j->job.submitted;
        s->cands[s->ncands++] =
            (candidate){.id = j->job.id, .priority = j->job.priority, .submitted = queued};
    }
    if (s->ncands > 1)
        qsort(s->cands, s->ncands, sizeof *s->cands, cmp_cand);
    return CS_OK;
}

int cs_sched_round(cs_sched *s, volatile sig_atomic_t *stop, bool *synced, bool *progress,
                   cs_error *err)
{
    int64_t idle_ns = (int64_t)s->o->idle_ms * 1000000;
    int64_t now = mono_ns(s);
    *progress = false;
    s->stop = stop;
    int rc = sync_copy(s, err);
    *synced = rc == CS_OK;
    if (rc == CS_ENOMEM)
        return rc;
    if (rc != CS_OK) {
        report(s, now);
        sleep_ns(s, idle_ns * 4);
        return CS_OK;
    }
    if (now >= s->next_tend_ns) {
        /* Upkeep walks every owned task: often enough to restart work
         * promptly, not on every round of a busy scheduler. */
        s->next_tend_ns = now + idle_ns * 4;
        if ((rc = tend(s, progress, err)) != CS_OK || (rc = roll(s, progress, err)) != CS_OK)
            return rc;
    }
    if ((rc = collect(s, now, err)) != CS_OK)
        return rc;
    size_t ncands = s->ncands;
    for (size_t i = 0; i < ncands && !*stop;) {
        size_t next = i;
        if (!s->o->txn_per_job && (rc = place_batch(s, i, &next, progress, err)) != CS_OK)
            return rc;
        if (next == i) {
            if ((rc = place_one(s, s->cands[i].id, progress, err)) != CS_OK)
                return rc;
            next = i + 1;
        }
        i = next;
        report(s, mono_ns(s));
    }
    report(s, mono_ns(s));
    return CS_OK;
}

/* ---- two-level scheduling: the offer ------------------------------------------------
 *
 * With --offers (a cell started with cellstated --concurrency offers) each
 * round is bracketed by the offer, as a Mesos framework decides only on the
 * resources offered to it: the scheduler asks for the offer, runs its
 * round — sync, decide (its emulated decision time included), commit under
 * the lease — and gives the offer back. The simulator brackets the same
 * rounds by its own offer (tools/cellsim_kernel.c); the loop is the same. */

/* DRF's numerator: what the tasks of the jobs this scheduler owns hold, in
 * its copy as of the last sync. */
static cs_res own_held(const cs_sched *s)
{
    cs_res h = {0, 0, 0};
    uint32_t n = cs_copy_ntasks(s->copy);
    for (uint32_t i = 0; i < n; i++) {
        const cs_ctask *t = cs_copy_task_at(s->copy, i);
        if (!cs_task_state_placed(t->state))
            continue;
        const cs_cjob *j = cs_copy_job_at(s->copy, t->job);
        if (j == NULL || !s->hooks->takes(s, j))
            continue;
        h.cpu += t->res.cpu;
        h.mem += t->res.mem;
        h.disk += t->res.disk;
    }
    return h;
}

/* How long one acquire may wait at the server: short enough that a stop
 * is seen soon, and within the request's timeout. */
static uint32_t offer_wait_ms(const cs_sched *s)
{
    uint32_t w = s->o->timeout_ms / 2;
    return w < 1000 ? w : 1000;
}

/* Wait until this scheduler holds the offer, or *stop. *held is whether it
 * does. An error talking to the server is logged and waited out, as a
 * failed sync is; a cell that makes no offers (CS_ESTATE) is a mistake of
 * the command line, returned: --offers against an optimistic cell would
 * otherwise wait for ever. */
static int offer_acquire(cs_sched *s, volatile sig_atomic_t *stop, bool *held, cs_error *err)
{
    *held = false;
    while (!*stop && !*held) {
        cs_res h = own_held(s);
        cs_error e = {0};
        int rc = s->port->acquire(s->port->ctx, s->o->name, &h, offer_wait_ms(s), held, &e);
        if (rc == CS_ESTATE)
            return cs_errorf(err, rc, "--offers: %s", e.msg);
        if (rc != CS_OK) {
            logf_(s, "%s", e.msg);
            sleep_ns(s, (int64_t)s->o->idle_ms * 4000000);
        }
    }
    return CS_OK;
}

static void offer_release(cs_sched *s)
{
    cs_error e = {0};
    if (s->port->release(s->port->ctx, &e) != CS_OK)
        logf_(s, "offer.release: %s", e.msg);
}

int cs_sched_run(cs_sched *s, volatile sig_atomic_t *stop, cs_error *err)
{
    logf_(s, "scheduling %s jobs from %s (%s, %s%s)",
          s->o->monolithic ? "batch and service" : s->o->kind == CS_SCHED_BATCH ? "batch" : "service",
          s->port->where, cs_conflict_mode_name(s->o->conflict), cs_commit_mode_name(s->o->commit),
          s->o->offers ? ", under offers" : "");
    if (s->o->offers && (s->port->acquire == NULL || s->port->release == NULL))
        return cs_errorf(err, CS_EINVAL, "--offers: the port to %s makes no offers",
                         s->port->where);
    int64_t idle_ns = (int64_t)s->o->idle_ms * 1000000;
    while (!*stop) {
        bool synced, progress, held = false;
        if (s->o->offers) {
            int rc = offer_acquire(s, stop, &held, err);
            if (rc != CS_OK)
                return rc;
            if (!held)
                break; /* stopped while it waited */
        }
        int rc = cs_sched_round(s, stop, &synced, &progress, err);
        if (held)
            offer_release(s);
        if (rc != CS_OK)
            return rc;
        if (!synced)
            continue; /* the round waited; the server may come back */
        /* --once: done when a round commits nothing and no conflicted job
         * waits out its back-off. */
        if (s->o->once && !progress && s->backing_off == 0)
            break;
        /* Nothing committed: nothing to do, or only conflicts (retried
         * after a pause, which also lets the other schedulers through). */
        if (!progress)
            sleep_ns(s, idle_ns);
    }
    s->next_report_ns = 0;
    report(s, mono_ns(s));
    return CS_OK;
}

int cs_sched_main(cs_sched_kind kind, int argc, char **argv, const cs_sched_hooks *hooks,
                  volatile sig_atomic_t *stop, void (*on_signal)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: a sleep ends at once */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    const char *prog = kind == CS_SCHED_BATCH ? "cell-batch" : "cell-service";
    cs_sched_opts o;
    cs_error err = {0};
    bool help;
    if (cs_sched_opts_parse(kind, argc, argv, &o, &help, &err) != CS_OK) {
        fprintf(stderr, "%s: %s\n(%s --help lists the options)\n", prog, err.msg, prog);
        return 2;
    }
    if (help) {
        cs_sched_opts_usage(kind, prog, stdout);
        return 0;
    }
    /* --monolithic: one scheduler for every job, each tended as its own
     * kind's scheduler would (kinds.h). */
    if (o.monolithic)
        hooks = &cs_sched_all_hooks;
    cs_port_nng *port;
    cs_sched *s;
    /* The certificates are read once; each dial makes its own nng
     * configuration from them (proto/tls.h). */
    cs_tls *tls = NULL;
    if (cs_tls_load(&o.tls, &tls, &err) != CS_OK) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return 2;
    }
    char *token = NULL;
    if (cs_token_load(o.token_file, &token, &err) != CS_OK) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        cs_tls_free(tls);
        return 2;
    }
    int opened = cs_port_nng_open(o.server, tls, token, o.timeout_ms, &port, &err);
    cs_tls_free(tls);
    free(token);
    if (opened != CS_OK) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return 1;
    }
    cs_port_nng_set_chunk(port, o.sync_chunk);
    if (cs_sched_new(&o, hooks, cs_port_nng_table(port), &s, &err) != CS_OK) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        cs_port_nng_free(port);
        return 1;
    }
    int rc = cs_sched_run(s, stop, &err);
    if (rc != CS_OK)
        fprintf(stderr, "%s: %s\n", prog, err.msg);
    cs_sched_free(s);
    cs_port_nng_free(port);
    return rc == CS_OK ? 0 : 1;
}
