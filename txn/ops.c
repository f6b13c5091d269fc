/* ops.c — machine and job operations (see ops.h). */
#include "txn/ops.h"

#include <stdlib.h>
#include <string.h>

#include "txn/command.h"
#include "txn/conflict.h"

/* The shared shape of every operation: begin, apply, log, commit; on any
 * error abort, so that nothing is half-written. `apply` may leave a result
 * in its context. */
typedef int (*apply_fn)(cs_wtxn *w, void *ctx, cs_arena *a, cs_error *err);

static int run_op(cs_store *s, uint8_t kind, const msgpack_sbuffer *cmd, apply_fn apply, void *ctx,
                  uint64_t *version, cs_error *err)
{
    cs_wtxn *w;
    int rc = cs_wtxn_begin(s, &w, err);
    if (rc != CS_OK)
        return rc;
    cs_arena a;
    cs_arena_init(&a);
    if ((rc = apply(w, ctx, &a, err)) != CS_OK) {
        cs_wtxn_abort(w);
        cs_arena_free(&a);
        return rc;
    }
    rc = cs_wtxn_commit(w, kind, cmd->data, cmd->size, version, err);
    cs_arena_free(&a);
    return rc;
}

/* Release what a placed task holds on its machine (read and written back by
 * the caller) and end it in `state`. */
static int end_placed_task(cs_wtxn *w, cs_machine *m, const cs_task *old, uint8_t state,
                           cs_arena *a, cs_error *err)
{
    if (cs_machine_give(m, &old->res, old->ports, old->nports, a) != CS_OK)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    cs_task t = *old;
    t.state = state;
    t.ports = NULL;
    t.nports = 0;
    return cs_wtxn_put_task(w, old, &t, err);
}

typedef struct idlist {
    cs_id *v;
    size_t n, cap;
} idlist;

static int collect_task(void *ctx, const cs_task *t)
{
    idlist *l = ctx;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        cs_id *v = realloc(l->v, cap * sizeof *v);
        if (v == NULL)
            return CS_ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = t->id;
    return 0;
}

/* A machine going down: every task placed on it becomes lost and gives back
 * its resources. `m` is updated in memory; the caller writes it. */
static int lose_tasks(cs_wtxn *w, cs_machine *m, cs_arena *a, cs_error *err)
{
    cs_snap *snap = cs_wtxn_snap(w);
    /* Collect first: ending a task edits the index being walked. */
    idlist l = {0};
    int rc = cs_snap_each_task_on_machine(snap, m->id, collect_task, &l, err);
    if (rc == CS_ENOMEM)
        rc = cs_errorf(err, CS_ENOMEM, "out of memory");
    for (size_t i = 0; rc == CS_OK && i < l.n; i++) {
        cs_task t;
        if ((rc = cs_snap_task(snap, l.v[i], a, &t, err)) == CS_OK)
            rc = end_placed_task(w, m, &t, CS_TASK_LOST, a, err);
    }
    free(l.v);
    return rc;
}

/* ---- machines ------------------------------------------------------------ */

typedef struct machine_put {
    const cs_machine *spec;
    cs_id id;
} machine_put;

static bool same_spec(const cs_machine *a, const cs_machine *b)
{
    if (a->nattrs != b->nattrs || a->port_lo != b->port_lo || a->port_hi != b->port_hi ||
        a->state != b->state || memcmp(&a->capacity, &b->capacity, sizeof a->capacity) != 0)
        return false;
    for (uint32_t i = 0; i < a->nattrs; i++)
        if (strcmp(a->attrs[i].key, b->attrs[i].key) != 0 ||
            strcmp(a->attrs[i].value, b->attrs[i].value) != 0)
            return false;
    return true;
}

static int apply_machine_put(cs_wtxn *w, void *ctx, cs_arena *a, cs_error *err)
{
    machine_put *mp = ctx;
    const cs_machine *spec = mp->spec;
    int rc = cs_machine_validate(spec, err);
    if (rc != CS_OK)
        return rc;
    cs_machine m;
    cs_error lookup;
    rc = cs_snap_machine_by_name(cs_wtxn_snap(w), spec->name, a, &m, &lookup);
    if (rc == CS_ENOTFOUND) {
        m = *spec;
        if ((rc = cs_wtxn_next_machine_id(w, &m.id, err)) != CS_OK)
            return rc;
        memset(&m.allocated, 0, sizeof m.allocated);
        m.ports = NULL;
        m.nports = 0;
        m.ntasks = 0;
        mp->id = m.id;
        return cs_wtxn_put_machine(w, &m, true, err);
    }
    if (rc != CS_OK) {
        if (err)
            *err = lookup;
        return rc;
    }
    mp->id = m.id;
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
    m.capacity = spec->capacity;
    m.port_lo = spec->port_lo;
    m.port_hi = spec->port_hi;
    if (spec->state == CS_MACHINE_DOWN && m.state != CS_MACHINE_DOWN &&
        (rc = lose_tasks(w, &m, a, err)) != CS_OK)
        return rc;
    m.state = spec->state;
    return cs_wtxn_put_machine(w, &m, false, err);
}

int cs_op_machine_put(cs_store *s, const cs_machine *spec, cs_id *id, uint64_t *version,
                      cs_error *err)
{
    msgpack_sbuffer cmd;
    msgpack_sbuffer_init(&cmd);
    int rc = cs_machine_encode(spec, &cmd);
    machine_put mp = {spec, 0};
    if (rc != CS_OK)
        rc = cs_errorf(err, rc, "machine: out of memory");
    else
        rc = run_op(s, CS_CMD_MACHINE_PUT, &cmd, apply_machine_put, &mp, version, err);
    if (rc == CS_OK && id != NULL)
        *id = mp.id;
    msgpack_sbuffer_destroy(&cmd);
    return rc;
}

typedef struct machine_state {
    cs_id id;
    uint8_t state;
} machine_state;

static int apply_machine_state(cs_wtxn *w, void *ctx, cs_arena *a, cs_error *err)
{
    const machine_state *ms = ctx;
    if (ms->state >= CS_MACHINE_STATE_COUNT)
        return cs_errorf(err, CS_EINVAL, "unknown machine state %u", ms->state);
    cs_snap *snap = cs_wtxn_snap(w);
    cs_machine m;
    int rc = cs_snap_machine(snap, ms->id, a, &m, err);
    if (rc != CS_OK || m.state == ms->state)
        return rc;
    if (ms->state == CS_MACHINE_DOWN && (rc = lose_tasks(w, &m, a, err)) != CS_OK)
        return rc;
    m.state = ms->state;
    return cs_wtxn_put_machine(w, &m, false, err);
}

static int pack_ids(msgpack_sbuffer *buf, cs_id id, int extra)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
    if (msgpack_pack_array(&pk, extra >= 0 ? 2 : 1) || msgpack_pack_uint64(&pk, id) ||
        (extra >= 0 && msgpack_pack_uint8(&pk, (uint8_t)extra)))
        return CS_ENOMEM;
    return CS_OK;
}

int cs_op_machine_state(cs_store *s, cs_id id, uint8_t state, uint64_t *version, cs_error *err)
{
    msgpack_sbuffer cmd;
    msgpack_sbuffer_init(&cmd);
    machine_state ms = {id, state};
    int rc = pack_ids(&cmd, id, state);
    if (rc != CS_OK)
        rc = cs_errorf(err, rc, "machine state: out of memory");
    else
        rc = run_op(s, CS_CMD_MACHINE_STATE, &cmd, apply_machine_state, &ms, version, err);
    msgpack_sbuffer_destroy(&cmd);
    return rc;
}

/* ---- jobs ---------------------------------------------------------------- */

typedef struct job_submit {
    const cs_job *spec;
    cs_id id;
} job_submit;

static int apply_job_submit(cs_wtxn *w, void *ctx, cs_arena *a, cs_error *err)
{
    job_submit *js = ctx;
    int rc = cs_job_validate(js->spec, err);
    if (rc != CS_OK)
        return rc;
    cs_job old;
    rc = cs_snap_job_by_name(cs_wtxn_snap(w), js->spec->name, a, &old, NULL);
    if (rc == CS_OK && old.state == CS_JOB_ACTIVE)
        return cs_errorf(err, CS_EEXIST, "job %s already exists (id %llu)", js->spec->name,
                         (unsigned long long)old.id);
    if (rc != CS_OK && rc != CS_ENOTFOUND)
        return cs_errorf(err, rc, "job %s: reading the name index", js->spec->name);
    cs_job j = *js->spec;
    j.state = CS_JOB_ACTIVE;
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
        if ((rc = cs_wtxn_put_task(w, NULL, &t, err)) != CS_OK)
            return rc;
    }
    js->id = j.id;
    return CS_OK;
}

int cs_op_job_submit(cs_store *s, const cs_job *spec, cs_id *id, uint64_t *version, cs_error *err)
{
    msgpack_sbuffer cmd;
    msgpack_sbuffer_init(&cmd);
    job_submit js = {spec, 0};
    int rc = cs_job_encode(spec, &cmd);
    if (rc != CS_OK)
        rc = cs_errorf(err, rc, "job: out of memory");
    else
        rc = run_op(s, CS_CMD_JOB_SUBMIT, &cmd, apply_job_submit, &js, version, err);
    if (rc == CS_OK && id != NULL)
        *id = js.id;
    msgpack_sbuffer_destroy(&cmd);
    return rc;
}

static int apply_job_kill(cs_wtxn *w, void *ctx, cs_arena *a, cs_error *err)
{
    const cs_id *id = ctx;
    cs_snap *snap = cs_wtxn_snap(w);
    cs_job j;
    int rc = cs_snap_job(snap, *id, a, &j, err);
    if (rc != CS_OK || j.state == CS_JOB_KILLED)
        return rc;
    j.state = CS_JOB_KILLED;
    if ((rc = cs_wtxn_put_job(w, &j, false, err)) != CS_OK)
        return rc;
    idlist l = {0};
    rc = cs_snap_each_task_of_job(snap, j.id, collect_task, &l, err);
    if (rc == CS_ENOMEM)
        rc = cs_errorf(err, CS_ENOMEM, "out of memory");
    for (size_t i = 0; rc == CS_OK && i < l.n; i++) {
        cs_task t;
        if ((rc = cs_snap_task(snap, l.v[i], a, &t, err)) != CS_OK)
            break;
        if (cs_task_state_placed(t.state)) {
            cs_machine m;
            if ((rc = cs_snap_machine(snap, t.machine, a, &m, err)) != CS_OK ||
                (rc = end_placed_task(w, &m, &t, CS_TASK_KILLED, a, err)) != CS_OK ||
                (rc = cs_wtxn_put_machine(w, &m, false, err)) != CS_OK)
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

int cs_op_job_kill(cs_store *s, cs_id id, uint64_t *version, cs_error *err)
{
    msgpack_sbuffer cmd;
    msgpack_sbuffer_init(&cmd);
    int rc = pack_ids(&cmd, id, -1);
    if (rc != CS_OK)
        rc = cs_errorf(err, rc, "job kill: out of memory");
    else
        rc = run_op(s, CS_CMD_JOB_KILL, &cmd, apply_job_kill, &id, version, err);
    msgpack_sbuffer_destroy(&cmd);
    return rc;
}
