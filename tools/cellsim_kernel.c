/* cellsim_kernel.c — the event kernel, the baton and the watched port (see
 * cellsim_kernel.h). */
#include "tools/cellsim_kernel.h"

#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "cellstate/idindex.h"
#include "cellstate/rng.h"
#include "cellstate/store.h"
#include "cellstate/vec.h"
#include "schedulers/cellcopy.h"
#include "schedulers/kinds.h"
#include "schedulers/port.h"
#include "schedulers/sched.h"
#include "tools/cellbench_util.h"
#include "tools/cellsim_coro.h"
#include "tools/cellsim_replay.h"
#include "txn/commit.h"
#include "txn/ops.h"

/* The wall clock at virtual time 0 (2011-05-01, the month of the public
 * Google trace): any constant would do; a constant keeps runs identical. */
#define WALL0_MS INT64_C(1304208000000)
#define PREFILL_JOB 100u /* tasks per prefill job */

typedef enum ev_kind {
    EV_ARRIVAL = 0,
    EV_TASK_END = 1,
    EV_SERVICE_END = 2,
    EV_WAKE = 3,
    EV_GC = 4,
    EV_OFFER = 5, /* mesos: an offer goes to the next framework in DRF order */
} ev_kind;

/* mesos: making an offer takes 1 ms (the paper's Mesos simulation). */
#define OFFER_NS INT64_C(1000000)

/* Ended jobs leave the cell ten minutes after they ended, as cellstated's
 * --job-gc does (default 4 h; shorter here: each round walks every job of
 * a scheduler's copy, ended ones included, three times — candidates,
 * upkeep, ends —, and a collection costs a copy one pass since syncs say
 * "gone"; an hour of ended jobs was a fifth of a round at a job every 3 s).
 * Measured figures are the kernel's, so nothing is lost; the report is the
 * same byte for byte with an hour. */
#define GC_EVERY_NS (INT64_C(600) * 1000000000)

/* An idle scheduler none of whose jobs waits for a placement looks again
 * after this at the latest (its upkeep ends finished batch jobs); an
 * arrival wakes it at once. */
#define QUIET_NS (INT64_C(60) * 1000000000)

typedef struct ev {
    int64_t t;
    uint64_t seq;
    uint8_t kind;
    uint32_t who;  /* wake: the scheduler; arrival: 0 batch, 1 service */
    uint64_t arg;  /* wake: its generation; task end: the task; service end: the job's index */
} ev;

/* A decision of a scheduler since its last commit or sync. */
typedef struct decision {
    int64_t start, len;
    bool matched; /* to a job (decision_start) */
} decision;

/* A job that arrived. */
typedef struct sim_job {
    cs_id id; /* first: cellstate/idindex.h finds a job by it */
    int64_t submitted_ns, first_ns, duration_ns;
    int64_t ended_ns; /* -1 while active */
    uint32_t count, placed, owner;
    bool service, started, abandoned, gone;
    /* A trace job's (cellsim_replay.h; NULL otherwise), borrowed from the
     * replay: each task's duration, and each task's placements so far
     * (the attempt its end reports), LOST_MARK set while it is lost. */
    const int64_t *task_ns;
    uint32_t *attempt;
} sim_job;

#define LOST_MARK (UINT32_C(1) << 31)

typedef struct sim sim;

typedef struct simsched {
    sim *k;
    int idx;
    cs_sched_opts o;
    cs_port_local *lp;
    const cs_sched_port *base;
    cs_sched_port table; /* the kernel's wrapper of base: what the loop gets */
    cs_sched *s;
    sim_coro *co; /* its loop (sched_main), resumed at its wake-ups */
    bool started, done, idle;
    uint64_t gen; /* wake-ups of an older generation are stale */
    uint64_t waiting; /* its jobs with tasks not all placed, not ended */
    int rc;
    cs_error err;
    sim_day_figs *days;
    /* mesos: whether it waits for an offer, whether it holds one and
     * since when, and what is left of it on each machine (by the index
     * of sim.km; zero where nothing is offered, and everywhere while it
     * holds none); its allocation (cpu milli, mem MiB of its placed
     * tasks: DRF's numerators); the jobs it owns that waited at its last
     * release (indices into sim.jobs). */
    bool wants, holds;
    int64_t held_since;
    cs_res *offer;
    size_t capoffer;
    int64_t alloc_cpu, alloc_mem;
    uint32_t *pend;
    size_t npend, cappend;
    /* Each decision since the last commit or sync (a job's first attempt:
     * decision_start). */
    decision *dec;
    size_t ndec, capdec, cursor;
    bool epoch_over;
} simsched;

struct sim {
    const sim_conf *c;
    cs_store *store;
    char dir[256];
    int64_t now, end_ns;
    uint32_t ndays;
    ev *heap;
    size_t nheap, capheap;
    uint64_t seq, events;
    volatile sig_atomic_t stop; /* the loop's stop flag */
    bool stopping;              /* nothing more is measured or scheduled */
    simsched *sc;
    uint32_t nsc;
    sim_job *jobs;
    size_t njobs, capjobs;
    cs_idindex ix;
    uint64_t rng[2]; /* the workloads': batch, service */
    uint64_t rng_fill;
    uint64_t names;
    uint64_t prefill_tasks;
    double prefill_cpu;
    /* Per job (by index, grown on demand: jx_of), what the kernel keeps
     * beside sim_job: its task resources, its tasks holding a machine,
     * mesos attempts, and whether the kernel killed it (abandoned). */
    struct jobx *jx;
    size_t capjx;
    /* mesos: the resource manager. Its view of the cell (a copy synced
     * through a port of its own at each grant); each machine it has seen
     * (found by id through kmix) with what of it sits in outstanding
     * offers; whether an EV_OFFER is queued; whether the last grant found
     * nothing to offer (the next freed resource queues one); the jobs
     * already put on their framework's pend list (jobs [0, absorbed)). */
    cs_copy *rm;
    cs_port_local *rmlp;
    struct kmach *km;
    uint32_t nkm;
    size_t capkm;
    cs_idindex kmix;
    bool offer_queued, starved;
    size_t absorbed;
    /* Replaying the trace (c->trace set): the replay, the time its next
     * event is due (INT64_MAX: none), and the start machines' capacities
     * (the prefill's: ids 1..ncaps). */
    sim_replay *replay;
    int64_t replay_at;
    uint64_t log_mark; /* the cell version at the last compaction (compact) */
    const cs_res *caps;
    size_t ncaps;
    /* The cell's machines at the start and their capacity in all (cpu
     * milli, mem MiB): DRF's denominators (mesos) and the report's. A
     * replay's machines are the trace's, not the preset's. */
    uint32_t cell_machines;
    double cell_cpu, cell_mem;
    cs_id *lost;
    size_t caplost;
};

/* mesos: a machine as the resource manager keeps it: what of it is in
 * outstanding offers (the sum over the frameworks' `offer`). */
typedef struct kmach {
    cs_id id; /* first: cellstate/idindex.h finds it by id */
    cs_res offered;
} kmach;

typedef struct jobx {
    cs_res res;
    uint32_t live, tries;
    bool killed;
} jobx;

/* One scheduler for every job: monolithic and multipath. */
static bool sim_single(const sim_conf *c)
{
    return c->architecture == SIM_ARCH_MONOLITHIC || c->architecture == SIM_ARCH_MULTIPATH;
}

/* ---- the event heap ----------------------------------------------------------------- */

static bool ev_before(const ev *a, const ev *b)
{
    return a->t != b->t ? a->t < b->t : a->seq < b->seq;
}

static int push(sim *k, int64_t t, uint8_t kind, uint32_t who, uint64_t arg)
{
    ev *h = cs_vec_grow(k->heap, &k->capheap, k->nheap + 1, sizeof *h, 1024);
    if (h == NULL)
        return CS_ENOMEM;
    k->heap = h;
    size_t i = k->nheap++;
    h[i] = (ev){t, k->seq++, kind, who, arg};
    while (i > 0 && ev_before(&h[i], &h[(i - 1) / 2])) {
        ev x = h[i];
        h[i] = h[(i - 1) / 2];
        h[(i - 1) / 2] = x;
        i = (i - 1) / 2;
    }
    return CS_OK;
}

static ev pop(sim *k)
{
    ev *h = k->heap, top = h[0];
    h[0] = h[--k->nheap];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < k->nheap && ev_before(&h[l], &h[m]))
            m = l;
        if (r < k->nheap && ev_before(&h[r], &h[m]))
            m = r;
        if (m == i)
            break;
        ev x = h[i];
        h[i] = h[m];
        h[m] = x;
        i = m;
    }
    return top;
}

/* ---- the baton ------------------------------------------------------------------------ */

/* Each scheduler's loop is a coroutine on the kernel's thread
 * (cellsim_coro.h): the baton passes by switching stacks. */
#define SCHED_STACK ((size_t)8 << 20) /* a thread's default: the loop was written for one */

/* Kernel side: let scheduler `ss` run until it sleeps again or ends. */
static void run_sched(sim *k, simsched *ss)
{
    int64_t lag = k->now - ss->base->now(ss->base->ctx);
    cs_port_local_advance(ss->lp, lag); /* the port stamps job.end with its own clock */
    sim_coro_resume(ss->co);
}

/* Scheduler side: hand the baton back, and wait until it comes again. */
static void yield(simsched *ss) { sim_coro_yield(ss->co); }

/* A wake-up of `ss` at `t`. Runs in the scheduler's loop while it holds
 * the baton, or in the kernel: never both. */
static int wake_at(simsched *ss, int64_t t) { return push(ss->k, t, EV_WAKE, (uint32_t)ss->idx, ss->gen); }

/* ---- the watched port ------------------------------------------------------------------ */

static uint32_t day_of(const sim *k, int64_t t)
{
    int64_t d = t / SIM_DAY_NS;
    return d >= (int64_t)k->ndays ? k->ndays - 1 : (uint32_t)d;
}

static sim_job *job_find(sim *k, cs_id id)
{
    uint32_t i = cs_idindex_find(&k->ix, k->jobs, sizeof *k->jobs, id);
    return i == CS_IDINDEX_NONE ? NULL : &k->jobs[i];
}

static int64_t w_now(void *ctx) { return ((simsched *)ctx)->k->now; }
static int64_t w_wall(void *ctx) { return WALL0_MS + ((simsched *)ctx)->k->now / 1000000; }

/* Add the time from `from` to `until` (cut at the end) to each day it
 * falls in: to decide_ns, or (offer) to offer_ns. */
static void add_span(const sim *k, sim_day_figs *days, int64_t from, int64_t until, bool offer)
{
    int64_t to = until < k->end_ns ? until : k->end_ns;
    while (from < to) {
        uint32_t d = day_of(k, from);
        int64_t edge = (int64_t)(d + 1) * SIM_DAY_NS;
        int64_t seg = (to < edge || d == k->ndays - 1 ? to : edge) - from;
        if (offer)
            days[d].offer_ns += seg;
        else
            days[d].decide_ns += seg;
        from += seg;
    }
}

/* The kernel's extra record of job `j`, or NULL when out of memory. */
static jobx *jx_of(sim *k, const sim_job *j)
{
    size_t i = (size_t)(j - k->jobs), old = k->capjx;
    if (i >= old) {
        jobx *v = cs_vec_grow(k->jx, &k->capjx, k->njobs, sizeof *v, 1024);
        if (v == NULL)
            return NULL;
        memset(v + old, 0, (k->capjx - old) * sizeof *v);
        k->jx = v;
    }
    return &k->jx[i];
}

/* The loop's sleeps are its decisions (it never idles through the port
 * here): count the time, per day, up to the end; wake at `until`. */
static void w_sleep(void *ctx, int64_t until)
{
    simsched *ss = ctx;
    sim *k = ss->k;
    if (k->stopping || until <= k->now)
        return;
    if (ss->epoch_over) {
        ss->ndec = ss->cursor = 0;
        ss->epoch_over = false;
    }
    decision *v = cs_vec_grow(ss->dec, &ss->capdec, ss->ndec + 1, sizeof *v, 64);
    if (v != NULL) {
        ss->dec = v;
        ss->dec[ss->ndec++] = (decision){k->now, until - k->now, false};
    }
    add_span(k, ss->days, k->now, until, false);
    if (v == NULL || wake_at(ss, until) != CS_OK) {
        /* Out of memory: end the run (the loop cannot be told). */
        ss->rc = CS_ENOMEM;
        cs_errorf(&ss->err, CS_ENOMEM, "out of memory");
        k->stop = 1;
        return;
    }
    yield(ss);
}

static int offer_view(simsched *ss, struct cs_copy *c, cs_error *err);
static int offer_take(simsched *ss, const cs_txn *t, cs_error *err);
static void offer_settle(simsched *ss, const cs_txn *t, const cs_txn_result *r);

/* The sync, and under mesos the framework's view cut to its offer. */
static int w_sync(void *ctx, struct cs_copy *c, cs_error *err)
{
    simsched *ss = ctx;
    ss->epoch_over = true;
    int rc = ss->base->sync(ss->base->ctx, c, err);
    if (rc == CS_OK && ss->k->c->architecture == SIM_ARCH_MESOS)
        rc = offer_view(ss, c, err);
    return rc;
}

/* How long the loop decides on job `j` with its pending tasks now:
 * sched.c's t_job + t_task x n, n capped at --max-claims unless gang, in
 * the same arithmetic. The kernel's count of j's placed tasks is the
 * cell's (every placement passes w_commit; nothing preempts), so n is
 * what the scheduler's synced copy held. */
static int64_t decision_len(const simsched *ss, const sim_job *j, bool gang)
{
    uint32_t n = j->count - (j->placed < j->count ? j->placed : j->count);
    if (!gang && n > ss->o.max_claims)
        n = ss->o.max_claims;
    /* sched.c's decision_sleep: multipath's service jobs take the service pair. */
    bool svc = ss->o.per_kind_times && j->service;
    double t = svc ? ss->o.t_job_service_s + ss->o.t_task_service_s * (double)n
                   : ss->o.t_job_s + ss->o.t_task_s * (double)n;
    return (int64_t)(t * 1e9);
}

/* The start of the decision on job `j`, the k-th job of a transaction or
 * (k = UINT32_MAX) a job a note names. Since the last sync the loop made
 * one decision per job, in its candidate order, which is the order of the
 * jobs' claims in a shared transaction; a decision that placed nothing
 * leaves no claim. So j's is the first unmatched decision from the
 * cursor on whose length is j's (decision_len); when none matches (a
 * sleep cut short at the end), the k-th, as in the common case where
 * every decision placed something. Two jobs of equal length, one of
 * which placed nothing, can still swap: the approximation
 * docs/research.md names. */
static int64_t decision_start(simsched *ss, const sim_job *j, bool gang, uint32_t k)
{
    if (ss->ndec == 0)
        return ss->k->now;
    int64_t len = decision_len(ss, j, gang);
    for (size_t i = k == UINT32_MAX ? 0 : ss->cursor; i < ss->ndec; i++)
        if (!ss->dec[i].matched && ss->dec[i].len == len) {
            ss->dec[i].matched = true;
            if (k != UINT32_MAX)
                ss->cursor = i + 1;
            return ss->dec[i].start;
        }
    k = k == UINT32_MAX ? 0 : k;
    return ss->dec[k < ss->ndec ? k : ss->ndec - 1].start;
}

/* A committed claim of job j: the task's end, or the service job's. */
static int placed(sim *k, sim_job *j, cs_id task, const cs_res *res)
{
    /* DRF's numerators (mesos; kept in every mode, read only there). */
    jobx *x = jx_of(k, j);
    if (x == NULL)
        return CS_ENOMEM;
    x->res = *res;
    x->live++;
    k->sc[j->owner].alloc_cpu += res->cpu;
    k->sc[j->owner].alloc_mem += res->mem;
    if (++j->placed == j->count)
        k->sc[j->owner].waiting--;
    /* A trace job's tasks each last their own time, and one lost with its
     * machine is placed again: its end reports the new attempt. */
    uint32_t idx = cs_task_index(task), attempt = 1;
    if (j->attempt != NULL)
        attempt = j->attempt[idx] = (j->attempt[idx] & ~LOST_MARK) + 1;
    int64_t end = k->now + (j->task_ns != NULL && !j->service ? j->task_ns[idx] : j->duration_ns);
    if (!j->service)
        return push(k, end, EV_TASK_END, attempt, task);
    if (j->started)
        return CS_OK;
    j->started = true;
    return push(k, end, EV_SERVICE_END, 0, (uint64_t)(j - k->jobs));
}

static int w_commit(void *ctx, const cs_txn *t, cs_txn_result *r, cs_error *err)
{
    simsched *ss = ctx;
    sim *k = ss->k;
    bool mesos = k->c->architecture == SIM_ARCH_MESOS;
    int rc = mesos ? offer_take(ss, t, err) : CS_OK;
    if (rc != CS_OK) {
        /* A bug, not a refusal the loop should retry: end the run with it. */
        ss->rc = rc;
        ss->err = *err;
        k->stop = 1;
        return rc;
    }
    rc = ss->base->commit(ss->base->ctx, t, r, err);
    ss->epoch_over = true;
    if (mesos)
        offer_settle(ss, t, rc == CS_OK ? r : NULL);
    if (rc != CS_OK || k->stopping || t->nclaims == 0)
        return rc;
    /* The loop's counting (metrics.h): conflicted when a claim conflicted
     * or the gang aborted, successful when every claim committed. */
    sim_day_figs *d = &ss->days[day_of(k, k->now)];
    bool aborted = t->commit == CS_COMMIT_GANG && r->committed == 0;
    d->commits++;
    d->claims += r->committed;
    d->txn_conflicted += r->conflicts > 0 || aborted;
    d->txn_successful += r->committed == t->nclaims;
    cs_id last = 0; /* no job has id 0 */
    uint32_t nth = 0;
    for (uint32_t i = 0; i < t->nclaims; i++) {
        cs_id jid = cs_task_job(t->claims[i].task);
        sim_job *j = job_find(k, jid);
        if (j == NULL)
            continue;
        if (jid != last) {
            if (j->first_ns < 0)
                j->first_ns = decision_start(ss, j, t->commit == CS_COMMIT_GANG, nth);
            nth++;
            last = jid;
        }
        if (r->claims[i] == CS_COMMITTED && placed(k, j, t->claims[i].task, &t->claims[i].res) != CS_OK)
            return cs_errorf(err, CS_ENOMEM, "out of memory");
    }
    return CS_OK;
}

/* A note names its job: "gave up after N conflicting attempts" (the
 * daemons' --retry front, which parks the job) or "abandoned (--retry
 * tail) after N ..." (the paper's, for good; sched.c conflict_note) is the
 * loop giving up on it; any note on a job not yet seen attempted means an
 * attempt that placed nothing. */
static int w_note(void *ctx, cs_id id, const char *note, cs_error *err)
{
    simsched *ss = ctx;
    sim_job *j = ss->k->stopping ? NULL : job_find(ss->k, id);
    if (j != NULL && note[0] != '\0') {
        if (j->first_ns < 0)
            j->first_ns = decision_start(ss, j, ss->o.commit == CS_COMMIT_GANG, UINT32_MAX);
        if (strncmp(note, "gave up after", 13) == 0 || strncmp(note, "abandoned (", 11) == 0)
            j->abandoned = true;
    }
    return ss->base->note(ss->base->ctx, id, note, err);
}

static int w_scale(void *ctx, cs_id job, uint32_t n, cs_error *err)
{
    simsched *ss = ctx;
    return ss->base->scale(ss->base->ctx, job, n, err);
}
static int w_surge(void *ctx, cs_id job, uint32_t n, cs_error *err)
{
    simsched *ss = ctx;
    return ss->base->surge(ss->base->ctx, job, n, err);
}
static int w_job_end(void *ctx, cs_id id, cs_error *err)
{
    simsched *ss = ctx;
    int rc = ss->base->job_end(ss->base->ctx, id, err);
    sim_job *j = rc == CS_OK ? job_find(ss->k, id) : NULL;
    if (j != NULL && j->ended_ns < 0)
        j->ended_ns = ss->k->now;
    return rc;
}
static int w_report(void *ctx, const void *body, size_t len, cs_error *err)
{
    simsched *ss = ctx;
    return ss->base->report(ss->base->ctx, body, len, err);
}

/* ---- mesos: offers --------------------------------------------------------------------------

 * Two-level scheduling as the Omega paper simulated Mesos 0.9 (§4.2; docs/research.md, The
 * architectures): a resource manager offers, to one framework at a time in dominant-resource-
 * fairness order, each grant taking OFFER_NS, every resource that is free and not already in
 * another outstanding offer; several offers may be outstanding at once, each to another
 * framework. A framework runs a round of the loop only while it holds an offer, and sees only
 * its offer: right after each sync of its round the kernel holds (cs_copy_hold) every free
 * resource of every machine beyond what is left of its offer there, so its placer cannot claim
 * outside it, and w_commit refuses a claim that would (a bug). What it commits leaves its
 * offer; at the round's end the rest returns. So while the service framework holds most of
 * the free cell for a long decision, a batch framework is offered only what freed up since,
 * decides its jobs in that, and each job it could not place wholly counts an attempt. */

/* Whether any field of `r` is above zero. */
static bool res_any(const cs_res *r) { return r->cpu > 0 || r->mem > 0 || r->disk > 0; }

/* a - b in each field, no lower than 0. */
static cs_res res_less(const cs_res *a, const cs_res *b)
{
    cs_res d = {a->cpu - b->cpu, a->mem - b->mem, a->disk - b->disk};
    d.cpu = d.cpu > 0 ? d.cpu : 0;
    d.mem = d.mem > 0 ? d.mem : 0;
    d.disk = d.disk > 0 ? d.disk : 0;
    return d;
}

/* The resource manager's index of machine `id`, or UINT32_MAX for one it
 * has not seen (nothing of it is offered). */
static uint32_t km_find(const sim *k, cs_id id)
{
    return cs_idindex_find(&k->kmix, k->km, sizeof *k->km, id);
}

/* The index of machine `id`, added when new; every framework's offer
 * array grows with it (zeroed: nothing of the new one is offered).
 * CS_ENOMEM. */
static int km_add(sim *k, cs_id id, uint32_t *out)
{
    uint32_t i = km_find(k, id);
    if (i != CS_IDINDEX_NONE) {
        *out = i;
        return CS_OK;
    }
    kmach *v = cs_vec_grow(k->km, &k->capkm, k->nkm + 1, sizeof *v, 256);
    if (v == NULL)
        return CS_ENOMEM;
    k->km = v;
    k->km[k->nkm] = (kmach){.id = id};
    if (cs_idindex_add(&k->kmix, k->km, sizeof *k->km, k->nkm) != CS_OK)
        return CS_ENOMEM;
    for (uint32_t f = 0; f < k->nsc; f++) {
        simsched *ss = &k->sc[f];
        if (ss->capoffer > k->nkm)
            continue;
        uint32_t old = ss->capoffer;
        cs_res *o = cs_vec_grow(ss->offer, &ss->capoffer, k->nkm + 1, sizeof *o, 256);
        if (o == NULL)
            return CS_ENOMEM;
        memset(o + old, 0, (ss->capoffer - old) * sizeof *o);
        ss->offer = o;
    }
    *out = k->nkm++;
    return CS_OK;
}

/* Scheduler side, right after a sync of `ss`'s copy `c` (w_sync): hold
 * on each machine whatever is free beyond what is left of its offer
 * there, so that its copy shows only the offer (all of each machine
 * while it holds none). Undone by the next sync's rollback. Errors:
 * cs_copy_hold's (CS_ENOMEM). */
static int offer_view(simsched *ss, struct cs_copy *c, cs_error *err)
{
    const sim *k = ss->k;
    static const cs_res none = {0, 0, 0};
    uint32_t n = cs_copy_nmachines(c);
    for (uint32_t i = 0; i < n; i++) {
        const cs_cmachine *m = cs_copy_machine_at(c, i);
        uint32_t x = km_find(k, m->id);
        const cs_res *mine = x != CS_IDINDEX_NONE && x < ss->capoffer ? &ss->offer[x] : &none;
        cs_res free_ = res_less(&m->capacity, &m->allocated);
        cs_res hold = res_less(&free_, mine);
        if (res_any(&hold))
            CS_TRY(cs_copy_hold(c, m->id, &hold, err));
    }
    return CS_OK;
}

/* Scheduler side, before transaction `t` of `ss` commits (w_commit): take
 * each claim out of what is left of its offer on the claim's machine. A
 * claim beyond it is refused: the view (offer_view) let the placer see
 * room that was not offered, a bug of the kernel's, which ends the run.
 * CS_ESTATE naming the claim. */
static int offer_take(simsched *ss, const cs_txn *t, cs_error *err)
{
    sim *k = ss->k;
    for (uint32_t i = 0; i < t->nclaims; i++) {
        const cs_claim *cl = &t->claims[i];
        uint32_t x = km_find(k, cl->machine);
        cs_res *left = x != CS_IDINDEX_NONE && x < ss->capoffer ? &ss->offer[x] : NULL;
        if (left != NULL)
            cs_res_sub(left, &cl->res);
        if (left == NULL || left->cpu < 0 || left->mem < 0 || left->disk < 0)
            return cs_errorf(err, CS_ESTATE,
                             "mesos: %s claims task %llu on machine %llu beyond its offer "
                             "(cpu %lld, mem %lld more than offered): the kernel's view is wrong",
                             ss->o.name, (unsigned long long)cl->task,
                             (unsigned long long)cl->machine,
                             left != NULL ? (long long)-left->cpu : (long long)cl->res.cpu,
                             left != NULL ? (long long)-left->mem : (long long)cl->res.mem);
    }
    return CS_OK;
}

/* After the commit of `t` (outcome `r`; NULL when the commit failed and
 * nothing committed): a committed claim's resources are the cell's
 * allocation now, in no offer; a claim that did not commit gives its
 * share back to the offer. */
static void offer_settle(simsched *ss, const cs_txn *t, const cs_txn_result *r)
{
    sim *k = ss->k;
    for (uint32_t i = 0; i < t->nclaims; i++) {
        const cs_claim *cl = &t->claims[i];
        uint32_t x = km_find(k, cl->machine);
        if (r != NULL && r->claims[i] == CS_COMMITTED)
            cs_res_sub(&k->km[x].offered, &cl->res);
        else
            cs_res_add(&ss->offer[x], &cl->res);
    }
}

/* Give back `n` of job j's tasks that held a machine. */
static void freed(sim *k, const sim_job *j, jobx *x, uint32_t n)
{
    n = n < x->live ? n : x->live;
    x->live -= n;
    k->sc[j->owner].alloc_cpu -= x->res.cpu * n;
    k->sc[j->owner].alloc_mem -= x->res.mem * n;
}

/* DRF: a framework's dominant share, its allocation over the cell's
 * capacity in whichever resource it uses most of. */
static double dominant_share(const sim *k, const simsched *ss)
{
    if (k->cell_cpu <= 0 || k->cell_mem <= 0)
        return 0; /* a replay that starts with no machine: nobody holds a share */
    double a = (double)ss->alloc_cpu / k->cell_cpu, b = (double)ss->alloc_mem / k->cell_mem;
    return a > b ? a : b;
}

/* The next grant, OFFER_NS from now, unless one is queued. */
static int offer_queue(sim *k)
{
    if (k->offer_queued)
        return CS_OK;
    k->offer_queued = true;
    return push(k, k->now + OFFER_NS, EV_OFFER, 0, 0);
}

/* Resources came free (a task ended, a job was killed, an offer came
 * back): if the last grant had nothing to offer, try again. */
static int offer_freed(sim *k)
{
    if (!k->starved)
        return CS_OK;
    k->starved = false;
    return offer_queue(k);
}

/* Scheduler side: wait until this framework holds an offer (or the run
 * stops). */
static int offer_wait(simsched *ss)
{
    sim *k = ss->k;
    ss->wants = true;
    if (offer_queue(k) != CS_OK)
        return cs_errorf(&ss->err, CS_ENOMEM, "out of memory");
    /* Only a grant runs it now (its wake-ups are all spent); a stale
     * one would only come back here. */
    while (!ss->holds && !k->stop)
        yield(ss);
    return CS_OK;
}

/* Kernel side: make `ss`'s offer: on every up machine of the resource
 * manager's view (synced now), what is free and in no outstanding offer.
 * *any says whether some machine offers both cpu and memory (an offer
 * without is not made: nothing could be placed in it). Errors: the
 * sync's, CS_ENOMEM. */
static int offer_build(sim *k, simsched *ss, bool *any, cs_error *err)
{
    *any = false;
    int rc = cs_copy_sync(k->rm, cs_port_local_table(k->rmlp), err);
    if (rc != CS_OK)
        return cs_error_wrap(err, rc, "mesos: the resource manager's sync");
    uint32_t n = cs_copy_nmachines(k->rm);
    for (uint32_t i = 0; i < n; i++) {
        const cs_cmachine *m = cs_copy_machine_at(k->rm, i);
        if (m->state != CS_MACHINE_UP)
            continue;
        uint32_t x;
        if (km_add(k, m->id, &x) != CS_OK)
            return cs_errorf(err, CS_ENOMEM, "out of memory");
        cs_res free_ = res_less(&m->capacity, &m->allocated);
        cs_res give = res_less(&free_, &k->km[x].offered);
        ss->offer[x] = give;
        cs_res_add(&k->km[x].offered, &give);
        *any |= give.cpu > 0 && give.mem > 0;
    }
    return CS_OK;
}

/* Give back what is left of `ss`'s offer. */
static void offer_return(sim *k, simsched *ss)
{
    for (uint32_t x = 0; x < k->nkm && x < ss->capoffer; x++)
        if (res_any(&ss->offer[x])) {
            cs_res_sub(&k->km[x].offered, &ss->offer[x]);
            ss->offer[x] = (cs_res){0, 0, 0};
        }
}

/* Whether a framework waits for an offer. */
static bool offer_wanted(const sim *k)
{
    for (uint32_t i = 0; i < k->nsc; i++)
        if (k->sc[i].wants && !k->sc[i].holds && !k->sc[i].done)
            return true;
    return false;
}

/* Kernel side (EV_OFFER): offer to the waiting framework with the lowest
 * dominant share (ties: the lower index, the service one first) what is
 * free and not offered, and run it; the next waiting framework's grant
 * follows OFFER_NS later. With nothing to offer nobody is granted, until
 * resources come free (offer_freed). */
static int offer_grant(sim *k, cs_error *err)
{
    k->offer_queued = false;
    simsched *pick = NULL;
    double best = 0;
    for (uint32_t i = 0; i < k->nsc; i++) {
        simsched *ss = &k->sc[i];
        double sh = dominant_share(k, ss);
        if (ss->wants && !ss->holds && !ss->done && (pick == NULL || sh < best)) {
            pick = ss;
            best = sh;
        }
    }
    if (pick == NULL)
        return CS_OK;
    bool any;
    CS_TRY(offer_build(k, pick, &any, err));
    if (!any) {
        offer_return(k, pick);
        k->starved = true;
        return CS_OK;
    }
    pick->wants = false;
    pick->holds = true;
    pick->held_since = k->now;
    sim_day_figs *d = &pick->days[day_of(k, k->now)];
    d->offers++;
    for (uint32_t x = 0; x < k->nkm; x++)
        d->offer_cpu += (uint64_t)pick->offer[x].cpu;
    run_sched(k, pick);
    if (pick->rc != CS_OK)
        return cs_error_wrap(err, pick->rc, "%s: %s", pick->o.name, pick->err.msg);
    if (offer_wanted(k) && offer_queue(k) != CS_OK)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    return CS_OK;
}

/* The kernel abandons job `j` (mesos: max_attempts offers): killed through
 * the state machine, its tasks' resources free at once. */
static int abandon(sim *k, sim_job *j, jobx *x, cs_error *err)
{
    int rc = cs_op_job_kill(k->store, j->id, (uint64_t)(WALL0_MS + k->now / 1000000), NULL, err);
    if (rc != CS_OK)
        return cs_error_wrap(err, rc, "abandoning job %" PRIu64, j->id);
    x->killed = true;
    j->abandoned = true;
    j->ended_ns = k->now;
    if (j->placed < j->count)
        k->sc[j->owner].waiting--;
    freed(k, j, x, x->live);
    return offer_freed(k) == CS_OK ? CS_OK : cs_errorf(err, CS_ENOMEM, "out of memory");
}

/* At the release of an offer held by `ss` since ss->held_since: each job of
 * its that was in the cell when the offer was made and is still not
 * wholly placed had an attempt (docs/research.md, Mesos); at
 * max_attempts it is abandoned. */
static int count_attempts(sim *k, simsched *ss, cs_error *err)
{
    for (; k->absorbed < k->njobs; k->absorbed++) {
        const sim_job *j = &k->jobs[k->absorbed];
        if (j->placed >= j->count || j->ended_ns >= 0)
            continue;
        simsched *o = &k->sc[j->owner];
        uint32_t *v = cs_vec_grow(o->pend, &o->cappend, o->npend + 1, sizeof *v, 64);
        if (v == NULL)
            return cs_errorf(err, CS_ENOMEM, "out of memory");
        o->pend = v;
        o->pend[o->npend++] = (uint32_t)k->absorbed;
    }
    size_t kept = 0;
    for (size_t i = 0; i < ss->npend; i++) {
        sim_job *j = &k->jobs[ss->pend[i]];
        if (j->placed >= j->count || j->ended_ns >= 0)
            continue;
        if (j->submitted_ns < ss->held_since) {
            jobx *x = jx_of(k, j);
            if (x == NULL)
                return cs_errorf(err, CS_ENOMEM, "out of memory");
            if (++x->tries >= k->c->max_attempts) {
                CS_TRY(abandon(k, j, x, err));
                continue;
            }
        }
        ss->pend[kept++] = ss->pend[i];
    }
    ss->npend = kept;
    return CS_OK;
}

/* Scheduler side, at the end of its round: give the rest of the offer
 * back; a waiting framework's grant follows OFFER_NS later. */
static int offer_release(simsched *ss)
{
    sim *k = ss->k;
    if (!ss->holds)
        return CS_OK;
    ss->holds = false;
    offer_return(k, ss);
    /* An offer still held when the run ends locked its resources up to
     * the end: counted like the decision under way in it. */
    add_span(k, ss->days, ss->held_since, k->now, true);
    if (k->stopping)
        return CS_OK;
    CS_TRY(count_attempts(k, ss, &ss->err));
    k->starved = false;
    if (offer_wanted(k) && offer_queue(k) != CS_OK)
        return cs_errorf(&ss->err, CS_ENOMEM, "out of memory");
    return CS_OK;
}

/* ---- the schedulers ------------------------------------------------------------------- */

/* The loop's rounds, as cs_sched_run runs them, with the idle wait of
 * cellsim_kernel.h between rounds that committed nothing. */
static void sched_main(sim_coro *co, void *arg)
{
    simsched *ss = arg;
    sim *k = ss->k;
    (void)co;
    int64_t idle_ns = (int64_t)llround(k->c->idle_s * 1e9);
    bool mesos = k->c->architecture == SIM_ARCH_MESOS;
    while (!k->stop) {
        bool synced, progress;
        /* mesos: the round is bracketed by the offer (cellsim_kernel.h). */
        int rc = mesos ? offer_wait(ss) : CS_OK;
        if (rc == CS_OK && k->stop)
            break; /* the run ended while it waited for the offer */
        if (rc == CS_OK)
            rc = cs_sched_round(ss->s, &k->stop, &synced, &progress, &ss->err);
        if (rc == CS_OK && mesos)
            rc = offer_release(ss);
        if (rc != CS_OK) {
            ss->rc = rc;
            k->stop = 1;
            break;
        }
        if (progress || k->stop)
            continue;
        ss->idle = true;
        int64_t wait = ss->waiting > 0 || idle_ns > QUIET_NS ? idle_ns : QUIET_NS;
        if (wake_at(ss, k->now + wait) != CS_OK) {
            ss->rc = cs_errorf(&ss->err, CS_ENOMEM, "out of memory");
            k->stop = 1;
            break;
        }
        yield(ss);
        ss->idle = false;
    }
    ss->done = true;
}

/* The options cell-service or cell-batch would parse from its command
 * line, with the simulation's settings. */
static int sched_opts(const sim_conf *c, int idx, cs_sched_opts *o, cs_error *err)
{
    /* monolithic and multipath: one scheduler, of the batch kind (its
     * options' report kind; no --instance), owning both kinds (kinds.h,
     * cs_sched_all_hooks). Single-path decides every job in the service
     * scheduler's time; multipath in each job's kind's (per_kind_times). */
    bool single = sim_single(c), service = idx == 0 && !single;
    bool mono = c->architecture == SIM_ARCH_MONOLITHIC;
    char t_job[32], t_task[32], attempts[16], seed[32], idle[16], inst[16], insts[16];
    snprintf(t_job, sizeof t_job, "%.17g", service || mono ? c->t_job_service : c->t_job_batch);
    snprintf(t_task, sizeof t_task, "%.17g", service || mono ? c->t_task_service : c->t_task_batch);
    snprintf(attempts, sizeof attempts, "%" PRIu32, c->max_attempts);
    /* Never 0: the loop would seed from its pid. */
    snprintf(seed, sizeof seed, "%" PRIu64, c->seed * 1000 + (uint64_t)idx + 1);
    double ms = c->idle_s * 1000;
    snprintf(idle, sizeof idle, "%u", ms > 60000 ? 60000u : ms < 1 ? 1u : (unsigned)ms);
    snprintf(inst, sizeof inst, "%d", idx - 1);
    snprintf(insts, sizeof insts, "%" PRIu32, c->batch_schedulers);
    const char *argv[32] = {service ? "cell-service" : "cell-batch",
                            "--conflict", cs_conflict_mode_name(c->conflict),
                            "--commit", cs_commit_mode_name(c->commit),
                            "--t-job", t_job, "--t-task", t_task,
                            "--max-attempts", attempts, "--seed", seed,
                            "--idle-ms", idle, "--report-ms", "60000",
                            "--strategy", service ? c->service_strategy : c->batch_strategy,
                            "--retry", c->retry_tail ? "tail" : "front"};
    int n = 21;
    if (c->txn_per_job)
        argv[n++] = "--txn-per-job";
    if (single) {
        argv[n++] = "--name";
        argv[n++] = sim_arch_name(c->architecture);
    } else if (service) {
        /* The lightweight simulator does not preempt. */
        argv[n++] = "--no-preempt";
    } else {
        argv[n++] = "--instance";
        argv[n++] = inst;
        argv[n++] = "--instances";
        argv[n++] = insts;
    }
    bool help;
    int rc = cs_sched_opts_parse(service ? CS_SCHED_SERVICE : CS_SCHED_BATCH, n, (char **)argv, o,
                                 &help, err);
    if (rc != CS_OK)
        return cs_error_wrap(err, rc, "scheduler options");
    if (c->architecture == SIM_ARCH_MULTIPATH) {
        o->per_kind_times = true;
        o->t_job_service_s = c->t_job_service;
        o->t_task_service_s = c->t_task_service;
    }
    return CS_OK;
}

static int sched_setup(sim *k, int idx, cs_error *err)
{
    simsched *ss = &k->sc[idx];
    ss->k = k;
    ss->idx = idx;
    if ((ss->days = calloc(k->ndays, sizeof *ss->days)) == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    CS_TRY(sched_opts(k->c, idx, &ss->o, err));
    CS_TRY(cs_port_local_new(k->store, k->now, WALL0_MS, &ss->lp, err));
    ss->base = cs_port_local_table(ss->lp);
    ss->table = *ss->base;
    ss->table.ctx = ss;
    ss->table.where = "cellsim";
    ss->table.sync = w_sync;
    ss->table.commit = w_commit;
    ss->table.note = w_note;
    ss->table.scale = w_scale;
    ss->table.surge = w_surge;
    ss->table.job_end = w_job_end;
    ss->table.report = w_report;
    ss->table.now = w_now;
    ss->table.wall = w_wall;
    ss->table.sleep = w_sleep;
    const cs_sched_hooks *h = sim_single(k->c) ? &cs_sched_all_hooks
                              : idx == 0        ? &cs_sched_service_hooks
                                                : &cs_sched_batch_hooks;
    CS_TRY(cs_sched_new(&ss->o, h, &ss->table, &ss->s, err));
    CS_TRY(sim_coro_new(sched_main, ss, SCHED_STACK, &ss->co, err));
    ss->started = true;
    return wake_at(ss, 0);
}

/* The batch scheduler that owns job `id`: kinds.c's batch_takes; the
 * one scheduler of monolithic and multipath. */
static uint32_t batch_owner(const sim *k, cs_id id)
{
    if (sim_single(k->c))
        return 0;
    uint8_t le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (uint8_t)(id >> (8 * i));
    return 1 + (uint32_t)(XXH3_64bits(le, sizeof le) % k->c->batch_schedulers);
}

/* ---- the cell ---------------------------------------------------------------------------- */

static int64_t cores_milli(double cores) { return cores < 0.001 ? 1 : llround(cores * 1000); }
static int64_t gib_mib(double gib) { return gib < 1.0 / 1024 ? 1 : llround(gib * 1024); }

static int machines_setup(sim *k, cs_error *err)
{
    const sim_conf *c = k->c;
    if (c->trace[0] != '\0') {
        /* The trace's machines instead (cellsim_replay.h), and its first
         * event armed: arrival() applies the rest. */
        CS_TRY(sim_replay_open(c, k->end_ns, &k->replay, err));
        CS_TRY(sim_replay_machines(k->replay, k->store, &k->caps, &k->ncaps, err));
        k->cell_machines = (uint32_t)k->ncaps;
        for (size_t i = 0; i < k->ncaps; i++) {
            k->cell_cpu += (double)k->caps[i].cpu;
            k->cell_mem += (double)k->caps[i].mem;
        }
        k->replay_at = sim_replay_next_ns(k->replay);
        if (k->replay_at != INT64_MAX && push(k, k->replay_at, EV_ARRIVAL, 0, 0) != CS_OK)
            return cs_errorf(err, CS_ENOMEM, "out of memory");
        return CS_OK;
    }
    for (uint32_t i = 0; i < c->machines; i++) {
        char name[32];
        snprintf(name, sizeof name, "m%06" PRIu32, i);
        cs_machine m = {
            .name = name,
            .capacity = {cores_milli(c->machine_cpu), gib_mib(c->machine_mem), 0},
            .state = CS_MACHINE_UP,
        };
        int rc = cs_op_machine_put(k->store, &m, NULL, NULL, err);
        if (rc != CS_OK)
            return cs_error_wrap(err, rc, "registering machine %s", name);
    }
    k->cell_machines = c->machines;
    k->cell_cpu = (double)cores_milli(c->machine_cpu) * c->machines;
    k->cell_mem = (double)gib_mib(c->machine_mem) * c->machines;
    return CS_OK;
}

/* A task's resources drawn from workload `w`, no larger than a machine
 * (a task that fits no machine would only wait: the lightweight
 * simulator's workloads have none). */
static cs_res draw_res(sim *k, const sim_workload *w, uint64_t *rng)
{
    cs_res r = {cores_milli(sim_dist_draw(&w->cpu, rng)), gib_mib(sim_dist_draw(&w->mem, rng)), 0};
    int64_t mc = cores_milli(k->c->machine_cpu), mm = gib_mib(k->c->machine_mem);
    r.cpu = r.cpu > mc ? mc : r.cpu;
    r.mem = r.mem > mm ? mm : r.mem;
    return r;
}

/* Pre-fill the cell to c->prefill of its cpu with tasks that never end,
 * shaped like the batch workload's and placed on random machines with
 * room, each job's claims committed through the state machine before the
 * clock starts (cellsim_kernel.h). */
static int prefill(sim *k, cs_error *err)
{
    const sim_conf *c = k->c;
    /* A replay's machines differ (k->caps); the synthetic cell's are alike. */
    uint32_t nm = k->replay != NULL ? (uint32_t)k->ncaps : c->machines;
    int64_t mc = cores_milli(c->machine_cpu), mm = gib_mib(c->machine_mem);
    double total = 0;
    for (uint32_t m = 0; m < nm; m++)
        total += (double)(k->replay != NULL ? k->caps[m].cpu : mc);
    double target = c->prefill * total;
    int64_t *cpu = calloc(nm ? nm : 1, sizeof *cpu), *mem = calloc(nm ? nm : 1, sizeof *mem);
    cs_id *on = malloc(PREFILL_JOB * sizeof *on);
    cs_txn t;
    cs_txn_init(&t, 1, 0, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    cs_txn_result r;
    cs_txn_result_init(&r);
    int rc = CS_OK;
    if (cpu == NULL || mem == NULL || on == NULL) {
        rc = cs_errorf(err, CS_ENOMEM, "out of memory");
        goto out;
    }
    double filled = 0;
    for (uint64_t njob = 0; filled < target; njob++) {
        cs_res res = draw_res(k, &c->batch, &k->rng_fill);
        uint32_t n = 0;
        for (; n < PREFILL_JOB && filled < target; n++) {
            uint32_t start = cs_rng_below(&k->rng_fill, nm), i = 0;
            for (; i < nm; i++) {
                uint32_t m = (start + i) % nm;
                int64_t capc = k->replay != NULL ? k->caps[m].cpu : mc;
                int64_t capm = k->replay != NULL ? k->caps[m].mem : mm;
                if (cpu[m] + res.cpu <= capc && mem[m] + res.mem <= capm) {
                    cpu[m] += res.cpu;
                    mem[m] += res.mem;
                    on[n] = m + 1; /* machines get ids 1, 2, ... in order */
                    filled += (double)res.cpu;
                    break;
                }
            }
            if (i == nm)
                break;
        }
        if (n == 0)
            break; /* nothing of this size fits anywhere: full enough */
        char name[32];
        snprintf(name, sizeof name, "prefill-%" PRIu64, njob);
        cs_job j = {.name = name, .kind = CS_JOB_BATCH, .count = n, .res = res, .cmd = "sim",
                    .submitted = (uint64_t)WALL0_MS};
        cs_id id;
        if ((rc = cs_op_job_submit(k->store, &j, &id, NULL, err)) != CS_OK) {
            cs_error_wrap(err, rc, "prefill");
            goto out;
        }
        cs_txn_reset(&t, njob + 1, 0);
        for (uint32_t i = 0; i < n; i++)
            if (cs_txn_add_claim(&t, cs_task_id(id, i), on[i], &res, NULL, 0, 0) != CS_OK) {
                rc = cs_errorf(err, CS_ENOMEM, "out of memory");
                goto out;
            }
        if ((rc = cs_commit(k->store, &t, &r, err)) != CS_OK) {
            cs_error_wrap(err, rc, "prefill");
            goto out;
        }
        if (r.committed != n) {
            rc = cs_errorf(err, CS_ESTATE, "prefill: %" PRIu32 " of %" PRIu32 " claims conflicted",
                           n - r.committed, n);
            goto out;
        }
        k->prefill_tasks += n;
        if (n < PREFILL_JOB && filled < target)
            break;
    }
    k->prefill_cpu = total > 0 ? filled / total : 0;
out:
    free(cpu);
    free(mem);
    free(on);
    cs_txn_free(&t);
    cs_txn_result_free(&r);
    return rc;
}

/* ---- events ----------------------------------------------------------------------------- */

static int64_t secs_ns(double s) { return s <= 0 ? 0 : s >= 9e9 ? INT64_C(9000000000) * 1000000000 : llround(s * 1e9); }

/* Job `spec` (borrowed; its cmd and submission time are set here)
 * arrives: submitted through the state machine at the virtual wall clock,
 * registered with the kernel (a trace job's
 * durations and attempt slots borrowed from the replay); idle schedulers
 * of its kind look at once. */
static int job_arrive(sim *k, cs_job *spec, int64_t duration, const int64_t *task_ns,
                      uint32_t *attempt, cs_error *err)
{
    bool service = spec->kind == CS_JOB_SERVICE;
    spec->cmd = "sim";
    spec->submitted = (uint64_t)(WALL0_MS + k->now / 1000000);
    cs_id id;
    int rc = cs_op_job_submit(k->store, spec, &id, NULL, err);
    if (rc != CS_OK)
        return cs_error_wrap(err, rc, "submitting %s", spec->name);
    sim_job *v = cs_vec_grow(k->jobs, &k->capjobs, k->njobs + 1, sizeof *v, 1024);
    if (v == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    k->jobs = v;
    v[k->njobs] = (sim_job){.id = id, .submitted_ns = k->now, .first_ns = -1, .ended_ns = -1,
                        .duration_ns = duration,
                        .count = spec->count, .owner = service ? 0 : batch_owner(k, id),
                        .service = service, .task_ns = task_ns, .attempt = attempt};
    if (cs_idindex_add(&k->ix, k->jobs, sizeof *k->jobs, (uint32_t)k->njobs) != CS_OK)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    k->sc[v[k->njobs].owner].waiting++;
    k->njobs++;
    for (uint32_t i = 0; i < k->nsc; i++) {
        simsched *ss = &k->sc[i];
        if ((sim_single(k->c) || (i == 0) == service) && ss->idle)
            if (wake_at(ss, k->now) != CS_OK)
                return cs_errorf(err, CS_ENOMEM, "out of memory");
    }
    return CS_OK;
}

/* The trace's events due now (cellsim_replay.h): machine events first
 * (a removed machine's tasks lost: their jobs wait again), then the jobs
 * that arrive; the next event is armed. simulate()'s first synthetic
 * arrivals land here too, before the armed time: nothing is due then. */
static int replay_arrival(sim *k, cs_error *err)
{
    if (k->now < k->replay_at)
        return CS_OK;
    size_t nlost = 0;
    CS_TRY(sim_replay_machine_events(k->replay, k->store, k->now, &k->lost, &nlost, &k->caplost, err));
    /* Machines that came, or tasks lost with one that went: room to offer. */
    if (offer_freed(k) != CS_OK)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    for (size_t i = 0; i < nlost; i++) {
        sim_job *j = job_find(k, cs_task_job(k->lost[i]));
        if (j == NULL || j->attempt == NULL)
            continue; /* the prefill's: its scheduler places it again, unwatched */
        j->attempt[cs_task_index(k->lost[i])] |= LOST_MARK;
        if (j->placed-- == j->count && j->ended_ns < 0)
            k->sc[j->owner].waiting++;
        /* Its resources are its framework's no longer (mesos' DRF). */
        jobx *x = jx_of(k, j);
        if (x == NULL)
            return cs_errorf(err, CS_ENOMEM, "out of memory");
        freed(k, j, x, 1);
        /* Its scheduler sees the loss on its next sync: wake it. */
        simsched *ss = &k->sc[j->owner];
        if (ss->idle && wake_at(ss, k->now) != CS_OK)
            return cs_errorf(err, CS_ENOMEM, "out of memory");
    }
    const sim_replay_job *rj;
    while ((rj = sim_replay_next_job(k->replay, k->now)) != NULL) {
        cs_job spec = {.name = rj->name, .kind = rj->kind, .count = rj->count, .res = rj->res};
        CS_TRY(job_arrive(k, &spec, rj->duration_ns, rj->task_ns, rj->attempt, err));
    }
    k->replay_at = sim_replay_next_ns(k->replay);
    if (k->replay_at != INT64_MAX && push(k, k->replay_at, EV_ARRIVAL, 0, 0) != CS_OK)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    return CS_OK;
}

/* A job of workload `service` arrives (or, replaying, the trace's events
 * due now); the next arrival is drawn. */
static int arrival(sim *k, bool service, cs_error *err)
{
    if (k->replay != NULL)
        return replay_arrival(k, err);
    const sim_workload *w = service ? &k->c->service : &k->c->batch;
    uint64_t *rng = &k->rng[service];
    double tasks = llround(sim_dist_draw(&w->tasks, rng));
    uint32_t count = tasks < 1 ? 1 : tasks > CS_TASK_INDEX_MAX ? CS_TASK_INDEX_MAX : (uint32_t)tasks;
    int64_t duration = secs_ns(sim_dist_draw(&w->duration, rng));
    cs_res res = draw_res(k, w, rng);
    char name[32];
    snprintf(name, sizeof name, "%s-%" PRIu64, service ? "service" : "batch", ++k->names);
    cs_job spec = {.name = name, .kind = service ? CS_JOB_SERVICE : CS_JOB_BATCH, .count = count,
                   .res = res};
    CS_TRY(job_arrive(k, &spec, duration, NULL, NULL, err));
    int64_t next = k->now + secs_ns(sim_dist_draw(&w->interarrival, rng));
    return push(k, next, EV_ARRIVAL, service, 0) == CS_OK ? CS_OK
                                                          : cs_errorf(err, CS_ENOMEM, "out of memory");
}

/* Drop the log up to the version of the previous call, as cellstated's
 * monitor does every --log-retain: without it a week's log (a command per
 * task end and per transaction) fills the map and every page of it is a
 * fault. A scheduler syncs at least once per --idle, so none is an hour
 * behind and none is sent the whole cell for it. */
static int compact(sim *k, cs_error *err)
{
    cs_snap *snap;
    int rc = cs_snap_open(k->store, &snap, err);
    if (rc != CS_OK)
        return cs_error_wrap(err, rc, "compacting the log");
    uint64_t now = cs_snap_version(snap);
    cs_snap_close(snap);
    if (k->log_mark > 0 && (rc = cs_store_compact(k->store, k->log_mark, err)) != CS_OK)
        return cs_error_wrap(err, rc, "compacting the log to %" PRIu64, k->log_mark);
    k->log_mark = now;
    return CS_OK;
}

/* Remove the jobs that ended at least GC_EVERY_NS ago (job-gc: ids
 * ascending, which arrival order gives), and come back in GC_EVERY_NS. */
static int collect_garbage(sim *k, cs_error *err)
{
    cs_id *ids = NULL;
    size_t n = 0, cap = 0;
    int rc = CS_OK;
    for (size_t i = 0; i < k->njobs; i++) {
        sim_job *j = &k->jobs[i];
        if (j->gone || j->ended_ns < 0 || j->ended_ns > k->now - GC_EVERY_NS)
            continue;
        cs_id *v = cs_vec_grow(ids, &cap, n + 1, sizeof *v, 256);
        if (v == NULL) {
            free(ids);
            return cs_errorf(err, CS_ENOMEM, "out of memory");
        }
        ids = v;
        ids[n++] = j->id;
        j->gone = true;
    }
    if (n > 0 && (rc = cs_op_job_gc(k->store, ids, n, NULL, err)) != CS_OK)
        cs_error_wrap(err, rc, "removing %zu ended jobs", n);
    free(ids);
    if (rc == CS_OK)
        rc = compact(k, err);
    if (rc == CS_OK && push(k, k->now + GC_EVERY_NS, EV_GC, 0, 0) != CS_OK)
        rc = cs_errorf(err, CS_ENOMEM, "out of memory");
    return rc;
}

static int dispatch(sim *k, const ev *e, cs_error *err)
{
    int rc;
    switch (e->kind) {
    case EV_ARRIVAL: return arrival(k, e->who == 1, err);
    case EV_OFFER: return offer_grant(k, err);
    case EV_TASK_END: {
        /* The attempt placed() saw (1 but for a trace task placed again
         * after its machine was removed); an end of a placement since lost
         * is stale (its resources were freed when it was lost). */
        sim_job *j = job_find(k, cs_task_job(e->arg));
        if (j != NULL && j->attempt != NULL && j->attempt[cs_task_index(e->arg)] != e->who)
            return CS_OK;
        jobx *x = j != NULL ? jx_of(k, j) : NULL;
        if (j != NULL && x == NULL)
            return cs_errorf(err, CS_ENOMEM, "out of memory");
        if (x != NULL && x->killed)
            return CS_OK; /* abandoned (mesos): killed with its tasks */
        if (x != NULL)
            freed(k, j, x, 1);
        rc = cs_op_task_status(k->store, e->arg, e->who, CS_TASK_FINISHED, 0, NULL, NULL, err);
        if (rc != CS_OK)
            return cs_error_wrap(err, rc, "task %" PRIu64 " finishing", e->arg);
        return offer_freed(k) == CS_OK ? CS_OK : cs_errorf(err, CS_ENOMEM, "out of memory");
    }
    case EV_SERVICE_END: {
        /* A service job runs its duration from its first placement, then
         * is killed: cell-service would replace a task that finished. */
        sim_job *j = &k->jobs[e->arg];
        jobx *x = jx_of(k, j);
        if (x == NULL)
            return cs_errorf(err, CS_ENOMEM, "out of memory");
        if (x->killed)
            return CS_OK; /* abandoned (mesos) before its end */
        freed(k, j, x, x->live);
        rc = cs_op_job_kill(k->store, j->id, (uint64_t)(WALL0_MS + k->now / 1000000), NULL, err);
        if (rc != CS_OK)
            return cs_error_wrap(err, rc, "ending service job %" PRIu64, j->id);
        j->ended_ns = k->now;
        if (j->placed < j->count)
            k->sc[j->owner].waiting--;
        return offer_freed(k) == CS_OK ? CS_OK : cs_errorf(err, CS_ENOMEM, "out of memory");
    }
    case EV_GC: return collect_garbage(k, err);
    default: {
        simsched *ss = &k->sc[e->who];
        if (e->arg != ss->gen || ss->done)
            return CS_OK; /* an idle wake-up overtaken by an arrival's */
        ss->gen++;
        run_sched(k, ss);
        if (ss->rc != CS_OK)
            return cs_error_wrap(err, ss->rc, "%s: %s", ss->o.name, ss->err.msg);
        return CS_OK;
    }
    }
}

/* ---- the run ------------------------------------------------------------------------------- */

static void result_build(sim *k, sim_result *out)
{
    for (uint32_t i = 0; i < k->nsc; i++) {
        sim_sched_figs *f = &out->scheds[i];
        snprintf(f->name, sizeof f->name, "%s", k->sc[i].o.name);
        f->service = i == 0 && !sim_single(k->c);
        f->days = k->sc[i].days;
        k->sc[i].days = NULL;
    }
    for (size_t i = 0; i < k->njobs; i++) {
        const sim_job *j = &k->jobs[i];
        sim_job_figs *f = &out->jobs[i];
        *f = (sim_job_figs){.id = j->id, .owner = j->owner, .day = day_of(k, j->submitted_ns),
                            .count = j->count, .placed = j->placed, .submitted_ns = j->submitted_ns,
                            .attempted = j->first_ns >= 0, .service = j->service};
        f->wait_ns = (f->attempted ? j->first_ns : k->end_ns) - j->submitted_ns;
        f->outcome = j->placed >= j->count ? SIM_JOB_SCHEDULED
                     : j->abandoned        ? SIM_JOB_ABANDONED
                                           : SIM_JOB_WAITING;
    }
    out->njobs = k->njobs;
    out->end_ns = k->end_ns;
    out->ndays = k->ndays;
    out->prefill_tasks = k->prefill_tasks;
    out->prefill_cpu = k->prefill_cpu;
    out->machines = k->cell_machines;
    out->cell_cpu = k->cell_cpu / 1000;
    out->cell_mem = k->cell_mem / 1024;
    out->events = k->events;
}

/* Stop every scheduler: each finishes its round (sleeping no more) and
 * ends; nothing after the end is measured. */
static void wind_down(sim *k)
{
    k->stopping = true;
    k->stop = 1;
    for (uint32_t i = 0; i < k->nsc; i++)
        if (k->sc[i].started) {
            while (!k->sc[i].done)
                run_sched(k, &k->sc[i]);
        }
}

/* End the kernel's group of task ends (simulate). A group that had to be
 * dropped (an apply that failed after writing: out of memory or a full
 * map, never a refusal) is an error: the run cannot go on from it. */
static int group_close(sim *k, cs_error *err)
{
    bool abandoned = false;
    int rc = cs_store_group_end(k->store, &abandoned, NULL, err);
    if (rc == CS_OK && abandoned)
        rc = cs_errorf(err, CS_EIO, "a group of task ends failed in the store");
    return rc == CS_OK ? rc : cs_error_wrap(err, rc, "ending tasks");
}

static int simulate(sim *k, cs_error *err)
{
    const sim_conf *c = k->c;
    CS_TRY(machines_setup(k, err));
    CS_TRY(prefill(k, err));
    if ((k->sc = calloc(1 + c->batch_schedulers, sizeof *k->sc)) == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    k->nsc = sim_single(c) ? 1 : 1 + c->batch_schedulers;
    if (c->architecture == SIM_ARCH_MESOS) {
        /* The resource manager's view: a copy of its own through a port
         * of its own, synced at each grant (offer_build). */
        CS_TRY(cs_copy_new(&k->rm, err));
        cs_copy_omit_running(k->rm, true); /* it reads machines' allocations only */
        CS_TRY(cs_port_local_new(k->store, k->now, WALL0_MS, &k->rmlp, err));
    }
    for (uint32_t i = 0; i < k->nsc; i++)
        CS_TRY(sched_setup(k, (int)i, err));
    for (int s = 0; s < 2; s++) {
        const sim_workload *w = s ? &c->service : &c->batch;
        if (push(k, secs_ns(sim_dist_draw(&w->interarrival, &k->rng[s])), EV_ARRIVAL, (uint32_t)s,
                 0) != CS_OK)
            return cs_errorf(err, CS_ENOMEM, "out of memory");
    }
    if (push(k, GC_EVERY_NS, EV_GC, 0, 0) != CS_OK)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    /* Task ends in a row are one write transaction (a store group), as
     * cellstated's writer commits a burst of agents' reports: each is still
     * its own command, version and log entry, so the store and every result
     * are what they would be one by one. The group closes before any other
     * event, since that may hand the baton to a scheduler, whose reads and
     * commits must see every end before it (and whose commit would wait on
     * the group's writer lock). Half the kernel's time went into one LMDB
     * commit per end. */
    bool grouped = false;
    int rc = CS_OK;
    while (rc == CS_OK && k->nheap > 0 && k->heap[0].t < k->end_ns) {
        ev e = pop(k);
        k->now = e.t;
        k->events++;
        bool end = e.kind == EV_TASK_END;
        if (grouped != end)
            rc = grouped ? group_close(k, err) : cs_store_group_begin(k->store, err);
        grouped = end;
        if (rc == CS_OK)
            rc = dispatch(k, &e, err);
    }
    if (grouped) {
        cs_error e2;
        int rc2 = group_close(k, rc == CS_OK ? err : &e2);
        rc = rc == CS_OK ? rc2 : rc;
    }
    k->now = k->end_ns;
    return rc;
}

int sim_run(const sim_conf *c, sim_result *out, cs_error *err)
{
    memset(out, 0, sizeof *out);
    sim *k = calloc(1, sizeof *k);
    if (k == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    k->c = c;
    k->end_ns = secs_ns(c->days * 86400);
    k->ndays = (uint32_t)((k->end_ns + SIM_DAY_NS - 1) / SIM_DAY_NS);
    if (k->ndays == 0)
        k->ndays = 1;
    k->rng[0] = c->seed ^ UINT64_C(0xba7c4);
    k->rng[1] = c->seed ^ UINT64_C(0x5e871ce);
    k->rng_fill = c->seed ^ UINT64_C(0xf111);
    cs_idindex_init(&k->ix);
    cs_idindex_init(&k->kmix);
    int rc = cb_make_tmpdir(k->dir, sizeof k->dir, err);
    if (rc != CS_OK)
        goto out;
    /* Nothing here needs to survive a crash: no fsync, and pages written
     * in place in the map (a commit then writes nothing itself: pwrite was
     * the largest cost in a profile of a 10,000-machine run). */
    cs_store_opts so = {.nosync = true, .writemap = true};
    if ((rc = cs_store_open(k->dir, &so, &k->store, err)) != CS_OK)
        goto out;
    rc = simulate(k, err);
    wind_down(k);
    if (rc == CS_OK) {
        out->nscheds = k->nsc;
        out->scheds = calloc(k->nsc, sizeof *out->scheds);
        out->jobs = calloc(k->njobs ? k->njobs : 1, sizeof *out->jobs);
        if (out->scheds == NULL || out->jobs == NULL)
            rc = cs_errorf(err, CS_ENOMEM, "out of memory");
        else
            result_build(k, out);
        if (rc == CS_OK && k->replay != NULL) {
            out->replayed = true;
            out->replay = *sim_replay_counts_of(k->replay);
            out->trace = *sim_replay_trace_counts(k->replay);
        }
    }
out:
    for (uint32_t i = 0; k->sc != NULL && i < k->nsc; i++) {
        cs_sched_free(k->sc[i].s);
        cs_port_local_free(k->sc[i].lp);
        sim_coro_free(k->sc[i].co);
        free(k->sc[i].days);
        free(k->sc[i].dec);
        free(k->sc[i].pend);
        free(k->sc[i].offer);
    }
    free(k->sc);
    cs_copy_free(k->rm);
    cs_port_local_free(k->rmlp);
    free(k->km);
    cs_idindex_free(&k->kmix);
    if (k->store != NULL)
        cs_store_close(k->store);
    if (k->dir[0])
        cb_rmtree(k->dir);
    sim_replay_free(k->replay);
    free(k->lost);
    free(k->heap);
    free(k->jobs);
    free(k->jx);
    cs_idindex_free(&k->ix);
    free(k);
    if (rc != CS_OK)
        sim_result_free(out);
    return rc;
}

void sim_result_free(sim_result *r)
{
    for (uint32_t i = 0; r->scheds != NULL && i < r->nscheds; i++)
        free(r->scheds[i].days);
    free(r->scheds);
    free(r->jobs);
    memset(r, 0, sizeof *r);
}
