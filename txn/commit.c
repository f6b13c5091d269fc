/* commit.c — Omega's optimistic commit (see commit.h). */
#include "txn/commit.h"

#include <stdlib.h>
#include <string.h>

#include "txn/apply.h"
#include "txn/command.h"
#include "txn/conflict.h"

/* ---- an id -> slot map for the records one transaction touches --------- */

/* Open addressing over a power-of-two table; ids are never 0 in a valid
 * transaction after validation, but the map does not rely on it. */
typedef struct idmap {
    cs_id *keys;
    uint32_t *vals;
    bool *used;
    uint32_t mask;
} idmap;

static int idmap_init(idmap *m, uint32_t n, cs_arena *a)
{
    uint32_t cap = 16;
    while (cap < 2 * n + 1)
        cap *= 2;
    m->keys = cs_arena_alloc(a, cap * sizeof *m->keys);
    m->vals = cs_arena_alloc(a, cap * sizeof *m->vals);
    m->used = cs_arena_alloc(a, cap * sizeof *m->used);
    if (!m->keys || !m->vals || !m->used)
        return CS_ENOMEM;
    memset(m->used, 0, cap * sizeof *m->used);
    m->mask = cap - 1;
    return CS_OK;
}

static uint32_t idmap_slot(const idmap *m, cs_id id)
{
    uint64_t h = id * UINT64_C(0x9E3779B97F4A7C15);
    uint32_t i = (uint32_t)(h >> 32) & m->mask;
    while (m->used[i] && m->keys[i] != id)
        i = (i + 1) & m->mask;
    return i;
}

/* The value for id, or UINT32_MAX. */
static uint32_t idmap_get(const idmap *m, cs_id id)
{
    uint32_t i = idmap_slot(m, id);
    return m->used[i] ? m->vals[i] : UINT32_MAX;
}

static void idmap_put(idmap *m, cs_id id, uint32_t val)
{
    uint32_t i = idmap_slot(m, id);
    m->used[i] = true;
    m->keys[i] = id;
    m->vals[i] = val;
}

/* ---- the working set ---------------------------------------------------- */

typedef struct wmachine {
    cs_machine m;      /* as this transaction has left it */
    uint64_t seq0;     /* seq at the start: what coarse-grained detection compares */
} wmachine;

typedef struct wtask {
    cs_task old;       /* as read */
    cs_task t;         /* as this transaction leaves it */
    uint32_t job;      /* index into jobs */
    bool dirty;
    bool requeue;      /* named by a release to pending: a claim may name it too */
    bool claimed;      /* named by a claim */
} wtask;

typedef struct work {
    cs_snap *snap;
    const cs_txn *txn;
    cs_arena *a;
    cs_error *err;
    wmachine *machines;
    uint32_t nmachines;
    idmap machine_of;
    wtask *tasks;
    uint32_t ntasks;
    idmap task_of;
    cs_job *jobs;
    uint32_t njobs;
    idmap job_of;
} work;

static int oom(work *w) { return cs_errorf(w->err, CS_ENOMEM, "commit: out of memory"); }

static int load_machine(work *w, cs_id id, const char *what, uint32_t item, uint32_t *out)
{
    uint32_t i = idmap_get(&w->machine_of, id);
    if (i == UINT32_MAX) {
        wmachine *wm = &w->machines[w->nmachines];
        int rc = cs_snap_machine_fit(w->snap, id, w->a, &wm->m, w->err);
        if (rc != CS_OK)
            return cs_error_wrap(w->err, rc, "%s %u", what, item);
        wm->seq0 = wm->m.seq;
        i = w->nmachines++;
        idmap_put(&w->machine_of, id, i);
    }
    *out = i;
    return CS_OK;
}

static int load_job(work *w, cs_id id, uint32_t *out)
{
    uint32_t i = idmap_get(&w->job_of, id);
    if (i == UINT32_MAX) {
        int rc = cs_snap_job(w->snap, id, w->a, &w->jobs[w->njobs], w->err);
        if (rc != CS_OK)
            return rc;
        i = w->njobs++;
        idmap_put(&w->job_of, id, i);
    }
    *out = i;
    return CS_OK;
}

/* Load a task named by item `item` of kind `what`; a task named twice in one
 * transaction is refused: its outcome would depend on the order of items. */
static int load_task(work *w, cs_id id, const char *what, uint32_t item, uint32_t *out)
{
    if (idmap_get(&w->task_of, id) != UINT32_MAX)
        return cs_errorf(w->err, CS_EINVAL, "%s %u: task %llu appears twice in the transaction",
                         what, item, (unsigned long long)id);
    wtask *wt = &w->tasks[w->ntasks];
    int rc = cs_snap_task(w->snap, id, w->a, &wt->old, w->err);
    if (rc != CS_OK)
        return cs_error_wrap(w->err, rc, "%s %u", what, item);
    if ((rc = load_job(w, wt->old.job, &wt->job)) != CS_OK)
        return cs_error_wrap(w->err, rc, "%s %u: task %llu", what, item, (unsigned long long)id);
    wt->t = wt->old;
    wt->dirty = false;
    wt->requeue = false;
    wt->claimed = false;
    *out = w->ntasks++;
    idmap_put(&w->task_of, id, *out);
    return CS_OK;
}

/* ---- validation of the input -------------------------------------------- */

static int validate_claim(work *w, uint32_t i, uint32_t *mi)
{
    const cs_txn *t = w->txn;
    const cs_claim *c = &t->claims[i];
    /* Checked without a message first: formatting the claim's name for
     * every claim cost more than the check (docs/benchmarks.md). */
    int rc = cs_res_validate(&c->res, "", NULL);
    if (rc != CS_OK) {
        char what[64];
        snprintf(what, sizeof what, "claim %u (task %llu)", i, (unsigned long long)c->task);
        return cs_res_validate(&c->res, what, w->err);
    }
    /* A release to pending and one claim may name the same task: the
     * release is judged first, so the claim places it again (a restart in
     * place, or elsewhere). Any other repeat is refused by load_task. */
    uint32_t ti = idmap_get(&w->task_of, c->task);
    if (ti == UINT32_MAX || !w->tasks[ti].requeue || w->tasks[ti].claimed) {
        if ((rc = load_task(w, c->task, "claim", i, &ti)) != CS_OK)
            return rc;
    }
    w->tasks[ti].claimed = true;
    return load_machine(w, c->machine, "claim", i, mi);
}

/* Does the claim still match what its task asks for? A job's spec may have
 * changed since the scheduler's snapshot (an update, a machine's new port
 * range): that is a stale view, so a conflict to retry, not an error. */
static uint8_t claim_matches_spec(work *w, const cs_claim *c, const wtask *wt,
                                  const cs_machine *m)
{
    const cs_job *job = &w->jobs[wt->job];
    const cs_res *need = &wt->t.res;
    if (c->res.cpu < need->cpu || c->res.mem < need->mem || c->res.disk < need->disk ||
        c->nports != job->nports)
        return CS_CONFLICT_SPEC_CHANGED;
    const uint16_t *ports = cs_claim_ports(w->txn, c);
    for (uint32_t p = 0; p < c->nports; p++) {
        if (job->ports[p] != 0 && ports[p] != job->ports[p])
            return CS_CONFLICT_SPEC_CHANGED;
        if (job->ports[p] == 0 && (ports[p] < m->port_lo || ports[p] > m->port_hi))
            return CS_CONFLICT_PORT;
    }
    return CS_COMMITTED;
}

static int validate(work *w)
{
    const cs_txn *t = w->txn;
    uint64_t items = (uint64_t)t->nclaims + t->nreleases + t->npreempts;
    if (items == 0)
        return cs_errorf(w->err, CS_EINVAL, "empty transaction: no claims, releases or preemptions");
    if (items > CS_TXN_MAX_ITEMS)
        return cs_errorf(w->err, CS_EINVAL, "transaction has %llu items, more than %u",
                         (unsigned long long)items, CS_TXN_MAX_ITEMS);
    if (t->conflict >= CS_CONFLICT_MODE_COUNT || t->commit >= CS_COMMIT_MODE_COUNT)
        return cs_errorf(w->err, CS_EINVAL, "unknown conflict or commit mode");

    uint32_t n = (uint32_t)items;
    w->machines = cs_arena_alloc(w->a, (2 * (size_t)n) * sizeof *w->machines);
    w->tasks = cs_arena_alloc(w->a, (size_t)n * sizeof *w->tasks);
    w->jobs = cs_arena_alloc(w->a, (size_t)n * sizeof *w->jobs);
    if (!w->machines || !w->tasks || !w->jobs || idmap_init(&w->machine_of, 2 * n, w->a) ||
        idmap_init(&w->task_of, n, w->a) || idmap_init(&w->job_of, n, w->a))
        return oom(w);

    int rc;
    for (uint32_t i = 0; i < t->nreleases; i++) {
        const cs_release *r = &t->releases[i];
        if (r->state != CS_TASK_PENDING && !cs_task_state_final(r->state))
            return cs_errorf(w->err, CS_EINVAL,
                             "release %u (task %llu): cannot release to state %s", i,
                             (unsigned long long)r->task, cs_task_state_name(r->state));
        uint32_t ti, mi;
        if ((rc = load_task(w, r->task, "release", i, &ti)) != CS_OK)
            return rc;
        w->tasks[ti].requeue = r->state == CS_TASK_PENDING;
        const cs_task *tk = &w->tasks[ti].t;
        if (cs_task_state_placed(tk->state) &&
            (rc = load_machine(w, tk->machine, "release", i, &mi)) != CS_OK)
            return rc;
    }
    for (uint32_t i = 0; i < t->nclaims; i++) {
        uint32_t mi;
        if ((rc = validate_claim(w, i, &mi)) != CS_OK)
            return rc;
    }
    for (uint32_t i = 0; i < t->npreempts; i++) {
        const cs_preempt *p = &t->preempts[i];
        uint32_t pi = idmap_get(&w->task_of, p->preemptor);
        bool is_claim = false;
        for (uint32_t c = 0; c < t->nclaims && !is_claim; c++)
            is_claim = t->claims[c].task == p->preemptor;
        if (pi == UINT32_MAX || !is_claim)
            return cs_errorf(w->err, CS_EINVAL,
                             "preemption %u: preemptor task %llu is not a claim of this transaction",
                             i, (unsigned long long)p->preemptor);
        uint32_t vi, mi;
        if ((rc = load_task(w, p->victim, "preemption", i, &vi)) != CS_OK)
            return rc;
        const cs_task *v = &w->tasks[vi].t;
        if (cs_task_state_placed(v->state) &&
            (rc = load_machine(w, v->machine, "preemption", i, &mi)) != CS_OK)
            return rc;
    }
    return CS_OK;
}

/* ---- judging and applying ------------------------------------------------ */

static wtask *task_of(work *w, cs_id id) { return &w->tasks[idmap_get(&w->task_of, id)]; }
static wmachine *machine_of(work *w, cs_id id)
{
    return &w->machines[idmap_get(&w->machine_of, id)];
}

/* Back to the queue after placement ended with `last_end`: a pending task
 * is on no machine and asks for its job's resources as they are now. */
static void requeue(work *w, wtask *wt, uint8_t last_end)
{
    cs_task *tk = &wt->t;
    tk->last_end = last_end;
    tk->state = CS_TASK_PENDING;
    tk->machine = 0;
    tk->exit_code = 0;
    tk->res = w->jobs[wt->job].res;
}

static uint8_t do_release(work *w, const cs_release *r)
{
    wtask *wt = task_of(w, r->task);
    cs_task *tk = &wt->t;
    if (cs_task_state_placed(tk->state)) {
        wmachine *wm = machine_of(w, tk->machine);
        if (cs_machine_give(&wm->m, &tk->res, tk->ports, tk->nports, w->a) != CS_OK)
            return UINT8_MAX;
        tk->ports = NULL; /* ports are held only while placed */
        tk->nports = 0;
        if (r->state == CS_TASK_PENDING) {
            /* Restart in place (a rolling update): the placement ends as if
             * killed and the task waits for a new one, which a claim of this
             * transaction may give it at once. */
            requeue(w, wt, CS_TASK_KILLED);
            tk->health = CS_TASK_HEALTH_UNKNOWN;
            tk->reason = "";
        } else {
            tk->state = r->state; /* machine stays, as history */
            tk->exit_code = r->exit_code;
        }
    } else if (tk->state == CS_TASK_PENDING && r->state == CS_TASK_KILLED) {
        tk->state = CS_TASK_KILLED;
    } else if ((tk->state == CS_TASK_FAILED || tk->state == CS_TASK_LOST ||
                tk->state == CS_TASK_FINISHED) &&
               r->state == CS_TASK_PENDING) {
        /* Another attempt: the same task goes back to the queue (a service
         * runs again even after a clean exit). Killed tasks stay ended, and
         * so do the tasks of a job that has ended (killed, finished,
         * failed): an ended job never has a task to place again. */
        if (w->jobs[wt->job].state != CS_JOB_ACTIVE)
            return CS_CONFLICT_TASK_NOT_PLACED;
        requeue(w, wt, tk->state);
    } else {
        return CS_CONFLICT_TASK_NOT_PLACED;
    }
    wt->dirty = true;
    return CS_COMMITTED;
}

/* Judge one preemption for the claim on machine `mid` by a task of job
 * priority `prio`; apply it to the working machine when valid. */
static uint8_t do_preempt(work *w, const cs_preempt *p, cs_id mid, int32_t prio)
{
    wtask *wv = task_of(w, p->victim);
    cs_task *v = &wv->t;
    if (!cs_task_state_placed(v->state))
        return CS_CONFLICT_TASK_NOT_PLACED;
    if (v->machine != mid)
        return CS_CONFLICT_VICTIM_ELSEWHERE;
    if (w->jobs[wv->job].priority >= prio)
        return CS_CONFLICT_PRIORITY;
    wmachine *wm = machine_of(w, mid);
    if (cs_machine_give(&wm->m, &v->res, v->ports, v->nports, w->a) != CS_OK)
        return UINT8_MAX;
    return CS_COMMITTED;
}

/* Mark the victim as evicted: back to pending, to be placed again. */
static void evict(work *w, cs_id victim)
{
    wtask *wv = task_of(w, victim);
    wv->t.last_end = CS_TASK_PREEMPTED;
    wv->t.state = CS_TASK_PENDING;
    wv->t.machine = 0;
    wv->t.ports = NULL;
    wv->t.nports = 0;
    wv->dirty = true;
}

static int do_claim(work *w, uint32_t ci, cs_txn_result *r)
{
    const cs_txn *t = w->txn;
    const cs_claim *c = &t->claims[ci];
    wtask *wt = task_of(w, c->task);
    wmachine *wm = machine_of(w, c->machine);
    uint8_t pre = wt->t.state != CS_TASK_PENDING ? CS_CONFLICT_TASK_NOT_PENDING
                                                 : claim_matches_spec(w, c, wt, &wm->m);
    if (pre != CS_COMMITTED) {
        r->claims[ci] = pre;
        for (uint32_t p = 0; p < t->npreempts; p++)
            if (t->preempts[p].preemptor == c->task)
                r->preempts[p] = CS_ABORTED_PREEMPTOR;
        return CS_OK;
    }

    /* Preemptions for this claim change the machine only if the claim then
     * commits: keep the machine as it was to put it back otherwise. */
    cs_machine before = wm->m;
    bool preempted = false;
    int32_t prio = w->jobs[wt->job].priority;
    for (uint32_t p = 0; p < t->npreempts; p++) {
        if (t->preempts[p].preemptor != c->task)
            continue;
        uint8_t o = do_preempt(w, &t->preempts[p], c->machine, prio);
        if (o == UINT8_MAX)
            return oom(w);
        r->preempts[p] = o;
        preempted |= o == CS_COMMITTED;
    }

    const uint16_t *ports = cs_claim_ports(t, c);
    uint8_t o = t->conflict == CS_CONFLICT_COARSE
                    ? cs_conflict_coarse(&wm->m, wm->seq0, c->seq, &c->res, ports, c->nports)
                    : cs_conflict_fine(&wm->m, &c->res, ports, c->nports);
    r->claims[ci] = o;
    if (o != CS_COMMITTED) {
        if (preempted) {
            wm->m = before;
            for (uint32_t p = 0; p < t->npreempts; p++)
                if (t->preempts[p].preemptor == c->task && r->preempts[p] == CS_COMMITTED)
                    r->preempts[p] = CS_ABORTED_PREEMPTOR;
        }
        return CS_OK;
    }
    for (uint32_t p = 0; p < t->npreempts; p++)
        if (t->preempts[p].preemptor == c->task && r->preempts[p] == CS_COMMITTED)
            evict(w, t->preempts[p].victim);
    if (cs_machine_take(&wm->m, &c->res, ports, c->nports, w->a) != CS_OK)
        return oom(w);
    cs_task *tk = &wt->t;
    tk->state = CS_TASK_ASSIGNED;
    tk->machine = c->machine;
    tk->res = c->res;
    tk->ports = cs_arena_alloc(w->a, c->nports ? c->nports * sizeof *ports : 1);
    if (tk->ports == NULL)
        return oom(w);
    if (c->nports > 0)
        memcpy(tk->ports, ports, c->nports * sizeof *ports);
    tk->nports = c->nports;
    tk->attempts++;
    tk->exit_code = 0;
    tk->reason = "";
    tk->health = CS_TASK_HEALTH_UNKNOWN;
    tk->spec = w->jobs[wt->job].spec_hash; /* what this placement runs */
    wt->dirty = true;
    return CS_OK;
}

/* Judge every item; fill `r`. Leaves the working set as the transaction
 * would leave the store (in gang mode the caller discards it on conflict). */
static int judge(work *w, cs_txn_result *r)
{
    const cs_txn *t = w->txn;
    int rc;
    for (uint32_t i = 0; i < t->nreleases; i++) {
        uint8_t o = do_release(w, &t->releases[i]);
        if (o == UINT8_MAX)
            return oom(w);
        r->releases[i] = o;
    }
    for (uint32_t i = 0; i < t->nclaims; i++)
        if ((rc = do_claim(w, i, r)) != CS_OK)
            return rc;

    bool any_conflict = false;
    for (uint32_t i = 0; i < t->nclaims; i++) {
        if (r->claims[i] == CS_COMMITTED)
            r->committed++;
        else {
            r->conflicts++;
            any_conflict = true;
        }
    }
    for (uint32_t i = 0; i < t->nreleases; i++)
        any_conflict |= r->releases[i] != CS_COMMITTED;
    for (uint32_t i = 0; i < t->npreempts; i++)
        any_conflict |= r->preempts[i] != CS_COMMITTED;

    if (t->commit == CS_COMMIT_GANG && any_conflict) {
        /* All-or-nothing: whatever would have committed is aborted. */
        uint8_t *lists[3] = {r->claims, r->releases, r->preempts};
        uint32_t ns[3] = {t->nclaims, t->nreleases, t->npreempts};
        for (int l = 0; l < 3; l++)
            for (uint32_t i = 0; i < ns[l]; i++)
                if (lists[l][i] == CS_COMMITTED)
                    lists[l][i] = CS_ABORTED_GANG;
        r->committed = 0;
        for (uint32_t i = 0; i < w->ntasks; i++)
            w->tasks[i].dirty = false;
    }
    return CS_OK;
}

static int run(cs_snap *snap, const cs_txn *t, cs_txn_result *r, cs_arena *a, cs_error *err,
               work *w)
{
    memset(w, 0, sizeof *w);
    w->snap = snap;
    w->txn = t;
    w->a = a;
    w->err = err;
    if (cs_txn_result_prepare(r, t) != CS_OK)
        return cs_errorf(err, CS_ENOMEM, "commit: out of memory");
    int rc = validate(w);
    if (rc != CS_OK)
        return rc;
    return judge(w, r);
}

int cs_commit_check(cs_snap *snap, const cs_txn *t, cs_txn_result *r, cs_error *err)
{
    cs_arena a;
    cs_arena_init(&a);
    work w;
    int rc = run(snap, t, r, &a, err, &w);
    if (rc == CS_OK)
        r->version = cs_snap_version(snap);
    cs_arena_free(&a);
    return rc;
}

static int write_back(cs_wtxn *wt, work *w, cs_error *err)
{
    int rc;
    /* Tasks that leave their machine first, then the rest: a claim may take
     * the room or the port a release or preemption of this transaction gives
     * back, and the store's allocation table follows the writes in order. A
     * task that leaves and is placed again (released to pending, then
     * claimed) is written twice: pending in the first pass, so that what it
     * held is free before any claim takes it, placed in the second. */
    for (int pass = 0; pass < 2; pass++)
        for (uint32_t i = 0; i < w->ntasks; i++) {
            const wtask *tk = &w->tasks[i];
            if (!tk->dirty)
                continue;
            bool leaves = cs_task_state_placed(tk->old.state);
            bool back = leaves && cs_task_state_placed(tk->t.state);
            cs_task mid = tk->t;
            mid.state = CS_TASK_PENDING;
            mid.machine = 0;
            mid.ports = NULL;
            mid.nports = 0;
            if (pass == 0 && leaves)
                rc = cs_wtxn_put_task(wt, &tk->old, back ? &mid : &tk->t, err);
            else if (pass == 1 && (!leaves || back))
                rc = cs_wtxn_put_task(wt, back ? &mid : &tk->old, &tk->t, err);
            else
                continue;
            if (rc != CS_OK)
                return rc;
        }
    /* The working machines need no write: the store derives allocations
     * from the tasks just written (cellstate/alloc.h). */
    return CS_OK;
}

int cs_commit_apply(cs_wtxn *wt, const cs_txn *t, cs_txn_result *r, cs_error *err)
{
    const void *prev;
    size_t prevlen;
    int rc = cs_wtxn_request_get(wt, t->sched, t->req, &prev, &prevlen, err);
    if (rc == CS_OK) {
        if ((rc = cs_txn_result_decode(prev, prevlen, r, err)) != CS_OK)
            return rc;
        r->replayed = true;
        return CS_UNCHANGED; /* nothing to write: the first result stands */
    }
    if (rc != CS_ENOTFOUND)
        return rc;

    cs_arena a;
    cs_arena_init(&a);
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    work w;
    if ((rc = run(cs_wtxn_snap(wt), t, r, &a, err, &w)) != CS_OK ||
        (rc = write_back(wt, &w, err)) != CS_OK)
        goto out;
    bool changed = false;
    for (uint32_t i = 0; i < w.ntasks && !changed; i++)
        changed = w.tasks[i].dirty;
    r->version = changed ? cs_wtxn_new_version(wt) : cs_snap_version(cs_wtxn_snap(wt));
    if (cs_txn_result_encode(r, &buf) != CS_OK)
        rc = cs_errorf(err, CS_ENOMEM, "commit: out of memory");
    else
        rc = cs_wtxn_request_put(wt, t->sched, t->req, buf.data, buf.size, err);
out:
    msgpack_sbuffer_destroy(&buf);
    cs_arena_free(&a);
    return rc;
}

int cs_commit(cs_store *s, const cs_txn *t, cs_txn_result *r, cs_error *err)
{
    cs_command c;
    cs_result res;
    cs_result_init(&res);
    int rc = cs_cmd_txn(&c, t, err);
    if (rc == CS_OK)
        rc = cs_command_apply_built(s, &c, &res, err);
    if (rc == CS_OK)
        rc = cs_result_error(&res, err);
    if (rc == CS_OK) {
        /* The caller's result takes the outcomes' arrays. */
        cs_txn_result_free(r);
        *r = res.txn;
        cs_txn_result_init(&res.txn);
    }
    cs_result_free(&res);
    cs_command_free(&c);
    return rc;
}
