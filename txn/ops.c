/* ops.c — machine and job operations (see ops.h). */
#include "txn/ops.h"

#include <stdlib.h>
#include <string.h>

#include "txn/apply.h"
#include "txn/command.h"
#include "txn/conflict.h"
#include "cellstate/vec.h"

/* An operation judged and written inside the transaction command.c began
 * for it: the fields of its command, scratch memory, and where to put the
 * id it creates. */
typedef int (*apply_fn)(cs_wtxn *w, const cs_cmd_args *c, cs_arena *a, cs_id *id, cs_error *err);

/* End a placed task in `state`: it gives back what it holds on its machine
 * (the store derives the machine's allocation from the task records). */
static int end_placed_task(cs_wtxn *w, const cs_task *old, uint8_t state, cs_error *err)
{
    cs_task t = *old;
    t.state = state;
    t.ports = NULL;
    t.nports = 0;
    return cs_wtxn_put_task(w, old, &t, err);
}

static int collect_task(void *ctx, const cs_task *t) { return cs_ids_push(ctx, t->id); }

/* Call fn for every task placed on machine `id`, in this transaction. */
typedef int (*placed_fn)(cs_wtxn *w, const cs_task *t, cs_arena *a, cs_error *err);

static int each_placed(cs_wtxn *w, cs_id id, placed_fn fn, cs_arena *a, cs_error *err)
{
    cs_snap *snap = cs_wtxn_snap(w);
    /* Collect first: ending a task edits the index being walked. */
    cs_ids l = {0};
    int rc = cs_snap_each_task_on_machine(snap, id, collect_task, &l, err);
    if (rc == CS_ENOMEM)
        rc = cs_errorf(err, CS_ENOMEM, "out of memory");
    for (size_t i = 0; rc == CS_OK && i < l.n; i++) {
        cs_task t;
        if ((rc = cs_snap_task(snap, l.v[i], a, &t, err)) == CS_OK)
            rc = fn(w, &t, a, err);
    }
    free(l.v);
    return rc;
}

static int lose_one(cs_wtxn *w, const cs_task *t, cs_arena *a, cs_error *err)
{
    return end_placed_task(w, t, CS_TASK_LOST, err);
}

/* A machine going down: every task placed on it becomes lost and gives back
 * its resources. */
static int lose_tasks(cs_wtxn *w, const cs_machine *m, cs_arena *a, cs_error *err)
{
    return each_placed(w, m->id, lose_one, a, err);
}

/* ---- machines ------------------------------------------------------------ */

static bool same_spec(const cs_machine *a, const cs_machine *b)
{
    if (a->nattrs != b->nattrs || a->port_lo != b->port_lo || a->port_hi != b->port_hi ||
        a->state != b->state || memcmp(&a->capacity, &b->capacity, sizeof a->capacity) != 0 ||
        strcmp(a->log_url ? a->log_url : "", b->log_url ? b->log_url : "") != 0)
        return false;
    for (uint32_t i = 0; i < a->nattrs; i++)
        if (strcmp(a->attrs[i].key, b->attrs[i].key) != 0 ||
            strcmp(a->attrs[i].value, b->attrs[i].value) != 0)
            return false;
    if (a->ntaints != b->ntaints)
        return false;
    for (uint32_t i = 0; i < a->ntaints; i++)
        if (strcmp(a->taints[i].key, b->taints[i].key) != 0 ||
            strcmp(a->taints[i].value, b->taints[i].value) != 0 ||
            a->taints[i].effect != b->taints[i].effect)
            return false;
    return true;
}

static int apply_machine_put(cs_wtxn *w, const cs_cmd_args *c, cs_arena *a, cs_id *id,
                             cs_error *err)
{
    const cs_machine *spec = c->machine;
    int rc = cs_machine_validate(spec, err);
    if (rc != CS_OK)
        return rc;
    cs_machine m;
    cs_error lookup;
    rc = cs_snap_machine_by_name(cs_wtxn_snap(w), spec->name, a, &m, &lookup);
    if (rc == CS_ENOTFOUND) {
        m = *spec;
        /* A new machine takes placements: only an operator cordons. */
        m.admin = CS_ADMIN_ACTIVE;
        m.drain_deadline = 0;
        if ((rc = cs_wtxn_next_machine_id(w, &m.id, err)) != CS_OK)
            return rc;
        memset(&m.allocated, 0, sizeof m.allocated);
        m.ports = NULL;
        m.nports = 0;
        m.ntasks = 0;
        *id = m.id;
        return cs_wtxn_put_machine(w, &m, true, err);
    }
    if (rc != CS_OK) {
        if (err)
            *err = lookup;
        return rc;
    }
    *id = m.id;
    if (same_spec(&m, spec))
        return CS_OK;
    const char *res[3] = {"cpu", "mem", "disk"};
    int64_t cap[3] = {spec->capacity.cpu, spec->capacity.mem, spec->capacity.disk};
    int64_t used[3] = {m.allocated.cpu, m.allocated.mem, m.allocated.disk};
    for (int i = 0; i < 3; i++)
        if (cap[i] < used[i])
            return cs_errorf(err, CS_ESTATE,
                             "machine %s: new %s capacity %lld is below the %lld allocated",
                             spec->name, res[i], (long long)cap[i], (long long)used[i]);
    m.attrs = spec->attrs;
    m.nattrs = spec->nattrs;
    m.taints = spec->taints;
    m.ntaints = spec->ntaints;
    m.capacity = spec->capacity;
    m.port_lo = spec->port_lo;
    m.port_hi = spec->port_hi;
    m.log_url = spec->log_url; /* the agent's; admin and drain_deadline stay the operator's */
    if (spec->state == CS_MACHINE_DOWN && m.state != CS_MACHINE_DOWN &&
        (rc = lose_tasks(w, &m, a, err)) != CS_OK)
        return rc;
    m.state = spec->state;
    return cs_wtxn_put_machine(w, &m, false, err);
}

static int apply_machine_state(cs_wtxn *w, const cs_cmd_args *c, cs_arena *a, cs_id *id,
                               cs_error *err)
{
    (void)id;
    if (c->n >= CS_MACHINE_STATE_COUNT)
        return cs_errorf(err, CS_EINVAL, "unknown machine state %llu", (unsigned long long)c->n);
    cs_snap *snap = cs_wtxn_snap(w);
    cs_machine m;
    int rc = cs_snap_machine(snap, c->id, a, &m, err);
    if (rc != CS_OK || m.state == c->n)
        return rc;
    if (c->n == CS_MACHINE_DOWN && (rc = lose_tasks(w, &m, a, err)) != CS_OK)
        return rc;
    m.state = (uint8_t)c->n;
    return cs_wtxn_put_machine(w, &m, false, err);
}

static int apply_machine_admin(cs_wtxn *w, const cs_cmd_args *c, cs_arena *a, cs_id *id,
                               cs_error *err)
{
    (void)id;
    if (c->n >= CS_ADMIN_COUNT)
        return cs_errorf(err, CS_EINVAL, "unknown machine admin state %llu",
                         (unsigned long long)c->n);
    uint8_t admin = (uint8_t)c->n;
    if (admin != CS_ADMIN_DRAINING && c->deadline != 0)
        return cs_errorf(err, CS_EINVAL, "a drain deadline goes with draining only, not %s",
                         cs_machine_admin_name(admin));
    cs_machine m;
    int rc = cs_snap_machine(cs_wtxn_snap(w), c->id, a, &m, err);
    if (rc != CS_OK)
        return rc;
    if (m.admin == admin && m.drain_deadline == c->deadline)
        return CS_UNCHANGED;
    m.admin = admin;
    m.drain_deadline = c->deadline;
    return cs_wtxn_put_machine(w, &m, false, err);
}

/* A batch task placed on a draining machine whose deadline came: it ends
 * there as a rolling update's restart does (commit.c): resources and ports
 * given back, back to pending with last_end killed, to be placed again
 * elsewhere (the machine takes no new tasks). */
static int requeue_batch_task(cs_wtxn *w, const cs_task *old, cs_arena *a, cs_error *err)
{
    cs_job j;
    int rc = cs_snap_job(cs_wtxn_snap(w), old->job, a, &j, err);
    if (rc != CS_OK || j.kind != CS_JOB_BATCH)
        return rc;
    cs_task t = *old;
    t.state = CS_TASK_PENDING;
    t.last_end = CS_TASK_KILLED;
    t.machine = 0;
    t.exit_code = 0;
    t.res = j.res;
    t.ports = NULL;
    t.nports = 0;
    t.health = CS_TASK_HEALTH_UNKNOWN;
    t.reason = "";
    return cs_wtxn_put_task(w, old, &t, err);
}

static int apply_drain_deadline(cs_wtxn *w, const cs_cmd_args *c, cs_arena *a, cs_id *id,
                                cs_error *err)
{
    (void)id;
    cs_snap *snap = cs_wtxn_snap(w);
    cs_machine m;
    int rc = cs_snap_machine(snap, c->id, a, &m, err);
    if (rc != CS_OK)
        return rc;
    if (m.admin != CS_ADMIN_DRAINING || m.drain_deadline == 0)
        return CS_UNCHANGED;
    if ((rc = each_placed(w, m.id, requeue_batch_task, a, err)) != CS_OK)
        return rc;
    /* Re-read: requeueing tasks changed the machine's allocation. */
    if ((rc = cs_snap_machine(snap, c->id, a, &m, err)) != CS_OK)
        return rc;
    m.drain_deadline = 0;
    return cs_wtxn_put_machine(w, &m, false, err);
}

/* ---- jobs ---------------------------------------------------------------- */

/* Read job `id`; CS_ESTATE naming its state when it has ended. */
static int load_active_job(cs_wtxn *w, cs_id id, cs_arena *a, cs_job *j, cs_error *err);

static int apply_job_submit(cs_wtxn *w, const cs_cmd_args *c, cs_arena *a, cs_id *id,
                            cs_error *err)
{
    const cs_job *spec = c->job;
    int rc = cs_job_validate(spec, err);
    if (rc != CS_OK)
        return rc;
    cs_job old;
    rc = cs_snap_job_by_name(cs_wtxn_snap(w), spec->name, a, &old, NULL);
    if (rc == CS_OK && old.state == CS_JOB_ACTIVE)
        return cs_errorf(err, CS_EEXIST, "job %s already exists (id %llu)", spec->name,
                         (unsigned long long)old.id);
    if (rc != CS_OK && rc != CS_ENOTFOUND)
        return cs_errorf(err, rc, "job %s: reading the name index", spec->name);
    cs_job j = *spec;
    j.state = CS_JOB_ACTIVE;
    j.note = "";
    j.surge = 0;
    j.ended = 0;
    if ((rc = cs_job_spec_hash(&j, &j.spec_hash)) != CS_OK)
        return cs_errorf(err, rc, "job %s: out of memory", j.name);
    if ((rc = cs_wtxn_next_job_id(w, &j.id, err)) != CS_OK ||
        (rc = cs_wtxn_put_job(w, &j, true, err)) != CS_OK)
        return rc;
    for (uint32_t i = 0; i < j.count; i++) {
        cs_task t = {0};
        t.id = cs_task_id(j.id, i);
        t.job = j.id;
        t.index = i;
        t.state = CS_TASK_PENDING;
        t.last_end = CS_TASK_PENDING;
        t.res = j.res;
        t.health = CS_TASK_HEALTH_UNKNOWN;
        if ((rc = cs_wtxn_put_task(w, NULL, &t, err)) != CS_OK)
            return rc;
    }
    *id = j.id;
    return CS_OK;
}

static int apply_job_kill(cs_wtxn *w, const cs_cmd_args *c, cs_arena *a, cs_id *id,
                          cs_error *err)
{
    (void)id;
    cs_snap *snap = cs_wtxn_snap(w);
    cs_job j;
    int rc = cs_snap_job(snap, c->id, a, &j, err);
    /* A job that has ended (killed, finished, failed) has nothing to kill. */
    if (rc != CS_OK || j.state != CS_JOB_ACTIVE)
        return rc;
    j.state = CS_JOB_KILLED;
    j.ended = c->n;
    if ((rc = cs_wtxn_put_job(w, &j, false, err)) != CS_OK)
        return rc;
    cs_ids l = {0};
    rc = cs_snap_each_task_of_job(snap, j.id, collect_task, &l, err);
    if (rc == CS_ENOMEM)
        rc = cs_errorf(err, CS_ENOMEM, "out of memory");
    for (size_t i = 0; rc == CS_OK && i < l.n; i++) {
        cs_task t;
        if ((rc = cs_snap_task(snap, l.v[i], a, &t, err)) != CS_OK)
            break;
        if (cs_task_state_placed(t.state)) {
            if ((rc = end_placed_task(w, &t, CS_TASK_KILLED, err)) != CS_OK)
                break;
        } else if (t.state == CS_TASK_PENDING) {
            cs_task k = t;
            k.state = CS_TASK_KILLED;
            rc = cs_wtxn_put_task(w, &t, &k, err);
        }
    }
    free(l.v);
    return rc;
}

/* What a batch job's ended tasks make it: finished when every one
 * finished, failed otherwise. `l` lists its tasks; those at index >=
 * `slots` (left by a scale down) do not count. */
static int ended_state(cs_snap *snap, const cs_job *j, const cs_ids *l, uint32_t slots,
                       cs_arena *a, uint8_t *state, cs_error *err)
{
    *state = CS_JOB_FINISHED;
    for (size_t i = 0; i < l->n; i++) {
        if (cs_task_index(l->v[i]) >= slots)
            continue;
        cs_task t;
        int rc = cs_snap_task(snap, l->v[i], a, &t, err);
        if (rc != CS_OK)
            return rc;
        if (!cs_task_state_final(t.state))
            return cs_errorf(err, CS_ESTATE, "job %s: task %u is %s: a job ends when all its "
                             "tasks have", j->name, t.index, cs_task_state_name(t.state));
        if (t.state != CS_TASK_FINISHED)
            *state = CS_JOB_FAILED;
    }
    return CS_OK;
}

static int apply_job_end(cs_wtxn *w, const cs_cmd_args *c, cs_arena *a, cs_id *id,
                         cs_error *err)
{
    (void)id;
    cs_snap *snap = cs_wtxn_snap(w);
    cs_job j;
    int rc = load_active_job(w, c->id, a, &j, err);
    if (rc != CS_OK)
        return rc;
    if (j.kind != CS_JOB_BATCH)
        return cs_errorf(err, CS_EINVAL, "job %s: a %s job runs until it is killed", j.name,
                         cs_job_kind_name(j.kind));
    cs_ids l = {0};
    rc = cs_snap_each_task_of_job(snap, j.id, collect_task, &l, err);
    if (rc == CS_ENOMEM)
        rc = cs_errorf(err, CS_ENOMEM, "out of memory");
    if (rc == CS_OK)
        rc = ended_state(snap, &j, &l, j.count + j.surge, a, &j.state, err);
    free(l.v);
    if (rc != CS_OK)
        return rc;
    j.ended = c->n;
    return cs_wtxn_put_job(w, &j, false, err);
}

/* All judged before anything is written: a refused collection then leaves
 * its transaction clean, and a writer's group goes on (store.h). */
static int apply_job_gc(cs_wtxn *w, const cs_cmd_args *c, cs_arena *a, cs_id *id, cs_error *err)
{
    (void)id;
    cs_snap *snap = cs_wtxn_snap(w);
    if (c->nids == 0)
        return cs_errorf(err, CS_EINVAL, "job gc: no job named");
    int rc;
    for (size_t i = 0; i < c->nids; i++) {
        if (i > 0 && c->ids[i] <= c->ids[i - 1])
            return cs_errorf(err, CS_EINVAL, "job gc: ids are not ascending and unique at %zu", i);
        cs_job j;
        if ((rc = cs_snap_job(snap, c->ids[i], a, &j, err)) != CS_OK)
            return rc;
        if (j.state == CS_JOB_ACTIVE)
            return cs_errorf(err, CS_ESTATE, "job %s (%llu) is active: only an ended job is "
                             "collected", j.name, (unsigned long long)j.id);
        cs_arena_reset(a);
    }
    rc = CS_OK;
    for (size_t i = 0; rc == CS_OK && i < c->nids; i++) {
        cs_job j;
        if ((rc = cs_snap_job(snap, c->ids[i], a, &j, err)) != CS_OK)
            return rc;
        cs_ids l = {0};
        rc = cs_snap_each_task_of_job(snap, j.id, collect_task, &l, err);
        if (rc == CS_ENOMEM)
            rc = cs_errorf(err, CS_ENOMEM, "out of memory");
        for (size_t k = 0; rc == CS_OK && k < l.n; k++) {
            cs_task t;
            if ((rc = cs_snap_task(snap, l.v[k], a, &t, err)) == CS_OK)
                rc = cs_wtxn_del_task(w, &t, err);
        }
        free(l.v);
        if (rc == CS_OK)
            rc = cs_wtxn_del_job(w, &j, err);
        cs_arena_reset(a);
    }
    return rc;
}

/* ---- task status ---------------------------------------------------------- */

static int check_report(const cs_task_report *r, cs_error *err)
{
    unsigned long long id = (unsigned long long)r->task;
    if (r->state != CS_TASK_RUNNING && r->state != CS_TASK_FINISHED &&
        r->state != CS_TASK_FAILED)
        return cs_errorf(err, CS_EINVAL, "task %llu: an agent reports running, finished or failed, "
                         "not %s", id, cs_task_state_name(r->state));
    if (r->health >= CS_TASK_HEALTH_COUNT)
        return cs_errorf(err, CS_EINVAL, "task %llu: unknown health %u", id, r->health);
    /* Health is a property of a running process: an ended one has none. */
    if (r->health != CS_TASK_HEALTH_UNKNOWN && r->state != CS_TASK_RUNNING)
        return cs_errorf(err, CS_EINVAL, "task %llu: health is reported with state running only, "
                         "not %s", id, cs_task_state_name(r->state));
    if (r->reason != NULL && strlen(r->reason) > CS_REASON_MAX)
        return cs_errorf(err, CS_EINVAL, "task %llu: reason is longer than %d bytes", id,
                         CS_REASON_MAX);
    if (r->state == CS_TASK_FINISHED && r->exit_code != 0)
        return cs_errorf(err, CS_EINVAL, "task %llu: finished means exit code 0, not %d: report failed",
                         id, r->exit_code);
    return CS_OK;
}

static int apply_task_status(cs_wtxn *w, const cs_cmd_args *c, cs_arena *a, cs_id *id,
                             cs_error *err)
{
    (void)id;
    const cs_task_report *r = &c->report;
    int rc = check_report(r, err);
    if (rc != CS_OK)
        return rc;
    cs_snap *snap = cs_wtxn_snap(w);
    cs_task t;
    if ((rc = cs_snap_task(snap, r->task, a, &t, err)) != CS_OK)
        return rc;
    if (!cs_task_state_placed(t.state) || t.attempts != r->attempt)
        return cs_errorf(err, CS_ESTATE,
                         "task %llu: attempt %u is not its current placement (attempt %u, %s)",
                         (unsigned long long)r->task, r->attempt, t.attempts,
                         cs_task_state_name(t.state));
    cs_task n = t;
    if (r->state == CS_TASK_RUNNING) {
        if (r->health != CS_TASK_HEALTH_UNKNOWN)
            n.health = r->health;
        if (t.state == CS_TASK_RUNNING && n.health == t.health)
            return CS_UNCHANGED;
        n.state = CS_TASK_RUNNING;
        return cs_wtxn_put_task(w, &t, &n, err);
    }
    /* Ending releases the task's resources and ports on its machine: the
     * store derives the machine's allocation from the task records. */
    n.state = r->state;
    n.exit_code = r->exit_code;
    n.reason = r->reason ? r->reason : "";
    n.ports = NULL;
    n.nports = 0;
    return cs_wtxn_put_task(w, &t, &n, err);
}

/* ---- notes ----------------------------------------------------------------- */

static int apply_job_note(cs_wtxn *w, const cs_cmd_args *c, cs_arena *a, cs_id *id,
                          cs_error *err)
{
    (void)id;
    const char *note = c->note ? c->note : "";
    if (strlen(note) > CS_NOTE_MAX)
        return cs_errorf(err, CS_EINVAL, "job %llu: note is longer than %d bytes",
                         (unsigned long long)c->id, CS_NOTE_MAX);
    cs_job j;
    int rc = cs_snap_job(cs_wtxn_snap(w), c->id, a, &j, err);
    if (rc != CS_OK)
        return rc;
    if (strcmp(j.note, note) == 0)
        return CS_UNCHANGED;
    j.note = note;
    return cs_wtxn_put_job(w, &j, false, err);
}

/* ---- scale and update ----------------------------------------------------- */

/* Move job `j`'s tasks from `from` to `to` tasks: create pending ones above
 * `from`, kill those at `to` and above. */
static int scale_tasks(cs_wtxn *w, const cs_job *j, uint32_t from, uint32_t to, cs_arena *a,
                       cs_error *err)
{
    cs_snap *snap = cs_wtxn_snap(w);
    int rc = CS_OK;
    for (uint32_t i = from; rc == CS_OK && i < to; i++) {
        cs_task old, t = {0};
        cs_error ignored;
        bool exists = cs_snap_task(snap, cs_task_id(j->id, i), a, &old, &ignored) == CS_OK;
        t.id = cs_task_id(j->id, i);
        t.job = j->id;
        t.index = i;
        t.state = CS_TASK_PENDING;
        t.last_end = CS_TASK_PENDING;
        t.res = j->res;
        t.reason = "";
        rc = cs_wtxn_put_task(w, exists ? &old : NULL, &t, err);
    }
    for (uint32_t i = to; rc == CS_OK && i < from; i++) {
        cs_task t;
        if ((rc = cs_snap_task(snap, cs_task_id(j->id, i), a, &t, err)) != CS_OK)
            break;
        if (cs_task_state_placed(t.state)) {
            rc = end_placed_task(w, &t, CS_TASK_KILLED, err);
        } else if (t.state == CS_TASK_PENDING) {
            cs_task k = t;
            k.state = CS_TASK_KILLED;
            rc = cs_wtxn_put_task(w, &t, &k, err);
        }
    }
    return rc;
}

static int load_active_job(cs_wtxn *w, cs_id id, cs_arena *a, cs_job *j, cs_error *err)
{
    int rc = cs_snap_job(cs_wtxn_snap(w), id, a, j, err);
    if (rc == CS_OK && j->state != CS_JOB_ACTIVE)
        rc = cs_errorf(err, CS_ESTATE, "job %s (%llu) is %s", j->name, (unsigned long long)id,
                       cs_job_state_name(j->state));
    return rc;
}

/* A job's task slots are 0 .. count + surge - 1: both together must leave
 * every index representable. */
static int check_slots(const cs_job *j, uint64_t count, uint64_t surge, cs_error *err)
{
    if (count + surge > CS_TASK_INDEX_MAX + 1u)
        return cs_errorf(err, CS_EINVAL, "job %s: count %llu and surge %llu exceed %u tasks",
                         j->name, (unsigned long long)count, (unsigned long long)surge,
                         CS_TASK_INDEX_MAX + 1u);
    return CS_OK;
}

static int apply_job_scale(cs_wtxn *w, const cs_cmd_args *c, cs_arena *a, cs_id *id,
                           cs_error *err)
{
    (void)id;
    if (c->n > CS_TASK_INDEX_MAX + 1u)
        return cs_errorf(err, CS_EINVAL, "job %llu: count %llu exceeds %u tasks",
                         (unsigned long long)c->id, (unsigned long long)c->n,
                         CS_TASK_INDEX_MAX + 1u);
    cs_job j;
    int rc = load_active_job(w, c->id, a, &j, err);
    if (rc != CS_OK || j.count == c->n)
        return rc;
    if ((rc = check_slots(&j, c->n, j.surge, err)) != CS_OK)
        return rc;
    /* The spec hash leaves count out: the tasks that run stay current. The
     * surge slots stay on top of the new count. */
    uint32_t from = j.count + j.surge;
    j.count = (uint32_t)c->n;
    if ((rc = scale_tasks(w, &j, from, j.count + j.surge, a, err)) != CS_OK)
        return rc;
    return cs_wtxn_put_job(w, &j, false, err);
}

static int apply_job_update(cs_wtxn *w, const cs_cmd_args *c, cs_arena *a, cs_id *id,
                            cs_error *err)
{
    (void)id;
    const cs_job *spec = c->job;
    int rc = cs_job_validate(spec, err);
    if (rc != CS_OK)
        return rc;
    cs_job old;
    if ((rc = load_active_job(w, c->id, a, &old, err)) != CS_OK)
        return rc;
    if (strcmp(old.name, spec->name) != 0 || old.kind != spec->kind)
        return cs_errorf(err, CS_EINVAL, "job %s: an update may not change its name or kind",
                         old.name);
    cs_job j = *spec;
    j.id = old.id;
    j.state = old.state;
    j.submitted = old.submitted;
    j.note = old.note;
    j.surge = old.surge;
    j.ended = old.ended;
    if ((rc = cs_job_spec_hash(&j, &j.spec_hash)) != CS_OK)
        return cs_errorf(err, rc, "job %s: out of memory", j.name);
    if (j.spec_hash == old.spec_hash && j.count == old.count)
        return CS_OK;
    if ((rc = check_slots(&j, j.count, j.surge, err)) != CS_OK)
        return rc;
    /* Pending tasks take the new resources; placed ones keep what they hold. */
    uint32_t from = old.count + old.surge, to = j.count + j.surge;
    uint32_t keep = from < to ? from : to;
    cs_ids l = {0};
    rc = cs_snap_each_task_of_job(cs_wtxn_snap(w), j.id, collect_task, &l, err);
    for (size_t i = 0; rc == CS_OK && i < l.n; i++) {
        cs_task t;
        if (cs_task_index(l.v[i]) >= keep)
            continue;
        if ((rc = cs_snap_task(cs_wtxn_snap(w), l.v[i], a, &t, err)) != CS_OK)
            break;
        if (t.state == CS_TASK_PENDING && memcmp(&t.res, &j.res, sizeof t.res) != 0) {
            cs_task n = t;
            n.res = j.res;
            rc = cs_wtxn_put_task(w, &t, &n, err);
        }
    }
    free(l.v);
    if (rc == CS_OK)
        rc = scale_tasks(w, &j, from, to, a, err);
    if (rc == CS_OK)
        rc = cs_wtxn_put_job(w, &j, false, err);
    return rc;
}

/* ---- surge ------------------------------------------------------------------ */

static int apply_job_surge(cs_wtxn *w, const cs_cmd_args *c, cs_arena *a, cs_id *id,
                           cs_error *err)
{
    (void)id;
    cs_job j;
    int rc = load_active_job(w, c->id, a, &j, err);
    if (rc != CS_OK)
        return rc;
    if (c->n > 0 && j.kind != CS_JOB_SERVICE)
        return cs_errorf(err, CS_EINVAL, "job %s: only a service job has surge tasks, not a %s job",
                         j.name, cs_job_kind_name(j.kind));
    if ((rc = check_slots(&j, j.count, c->n, err)) != CS_OK)
        return rc;
    if (j.surge == c->n)
        return CS_UNCHANGED;
    uint32_t from = j.count + j.surge;
    j.surge = (uint32_t)c->n;
    if ((rc = scale_tasks(w, &j, from, j.count + j.surge, a, err)) != CS_OK)
        return rc;
    return cs_wtxn_put_job(w, &j, false, err);
}

/* ---- the dispatch, and the shorthands ------------------------------------ */

static apply_fn applier(uint8_t kind)
{
    switch (kind) {
    case CS_CMD_MACHINE_PUT:
        return apply_machine_put;
    case CS_CMD_MACHINE_STATE:
        return apply_machine_state;
    case CS_CMD_MACHINE_ADMIN:
        return apply_machine_admin;
    case CS_CMD_DRAIN_DEADLINE:
        return apply_drain_deadline;
    case CS_CMD_JOB_SUBMIT:
        return apply_job_submit;
    case CS_CMD_JOB_KILL:
        return apply_job_kill;
    case CS_CMD_JOB_END:
        return apply_job_end;
    case CS_CMD_JOB_GC:
        return apply_job_gc;
    case CS_CMD_JOB_SCALE:
        return apply_job_scale;
    case CS_CMD_JOB_SURGE:
        return apply_job_surge;
    case CS_CMD_JOB_UPDATE:
        return apply_job_update;
    case CS_CMD_JOB_NOTE:
        return apply_job_note;
    case CS_CMD_TASK_STATUS:
        return apply_task_status;
    default:
        return NULL;
    }
}

int cs_apply_op(cs_wtxn *w, uint8_t kind, const cs_cmd_args *c, cs_arena *a, cs_id *id,
                cs_error *err)
{
    apply_fn fn = applier(kind);
    if (fn == NULL)
        return cs_errorf(err, CS_ECORRUPT, "unknown command kind %u", kind);
    return fn(w, c, a, id, err);
}

/* Apply the command a builder made (`built` is its code), give a refusal
 * back as an error, and free the command. */
static int run(cs_store *s, cs_command *c, int built, cs_id *id, uint64_t *version, cs_error *err)
{
    cs_result r;
    cs_result_init(&r);
    int rc = built == CS_OK ? cs_command_apply_built(s, c, &r, err) : built;
    if (rc == CS_OK && (rc = cs_result_error(&r, err)) == CS_OK) {
        if (id != NULL)
            *id = r.id;
        if (version != NULL)
            *version = r.version;
    }
    cs_result_free(&r);
    cs_command_free(c);
    return rc;
}

int cs_op_machine_put(cs_store *s, const cs_machine *spec, cs_id *id, uint64_t *version,
                      cs_error *err)
{
    cs_command c;
    return run(s, &c, cs_cmd_machine_put(&c, spec, err), id, version, err);
}

int cs_op_machine_state(cs_store *s, cs_id id, uint8_t state, uint64_t *version, cs_error *err)
{
    cs_command c;
    return run(s, &c, cs_cmd_machine_state(&c, id, state, err), NULL, version, err);
}

int cs_op_machine_admin(cs_store *s, cs_id id, uint8_t admin, uint64_t deadline,
                        uint64_t *version, cs_error *err)
{
    cs_command c;
    return run(s, &c, cs_cmd_machine_admin(&c, id, admin, deadline, err), NULL, version, err);
}

int cs_op_machine_drain_deadline(cs_store *s, cs_id id, uint64_t *version, cs_error *err)
{
    cs_command c;
    return run(s, &c, cs_cmd_drain_deadline(&c, id, err), NULL, version, err);
}

int cs_op_job_submit(cs_store *s, const cs_job *spec, cs_id *id, uint64_t *version, cs_error *err)
{
    cs_command c;
    return run(s, &c, cs_cmd_job_submit(&c, spec, err), id, version, err);
}

int cs_op_job_kill(cs_store *s, cs_id id, uint64_t ended, uint64_t *version, cs_error *err)
{
    cs_command c;
    return run(s, &c, cs_cmd_job_kill(&c, id, ended, err), NULL, version, err);
}

int cs_op_job_end(cs_store *s, cs_id id, uint64_t ended, uint64_t *version, cs_error *err)
{
    cs_command c;
    return run(s, &c, cs_cmd_job_end(&c, id, ended, err), NULL, version, err);
}

int cs_op_job_gc(cs_store *s, const cs_id *ids, size_t n, uint64_t *version, cs_error *err)
{
    cs_command c;
    return run(s, &c, cs_cmd_job_gc(&c, ids, n, err), NULL, version, err);
}

int cs_op_task_report(cs_store *s, const cs_task_report *r, uint64_t *version, cs_error *err)
{
    cs_command c;
    return run(s, &c, cs_cmd_task_report(&c, r, err), NULL, version, err);
}

int cs_op_task_status(cs_store *s, cs_id id, uint32_t attempt, uint8_t state, int32_t exit_code,
                      const char *reason, uint64_t *version, cs_error *err)
{
    cs_task_report r = {id, attempt, state, exit_code, reason, CS_TASK_HEALTH_UNKNOWN};
    return cs_op_task_report(s, &r, version, err);
}

int cs_op_job_note(cs_store *s, cs_id id, const char *note, uint64_t *version, cs_error *err)
{
    cs_command c;
    return run(s, &c, cs_cmd_job_note(&c, id, note, err), NULL, version, err);
}

int cs_op_job_scale(cs_store *s, cs_id id, uint32_t count, uint64_t *version, cs_error *err)
{
    cs_command c;
    return run(s, &c, cs_cmd_job_scale(&c, id, count, err), NULL, version, err);
}

int cs_op_job_update(cs_store *s, cs_id id, const cs_job *spec, uint64_t *version, cs_error *err)
{
    cs_command c;
    return run(s, &c, cs_cmd_job_update(&c, id, spec, err), NULL, version, err);
}

int cs_op_job_surge(cs_store *s, cs_id id, uint32_t surge, uint64_t *version, cs_error *err)
{
    cs_command c;
    return run(s, &c, cs_cmd_job_surge(&c, id, surge, err), NULL, version, err);
}
