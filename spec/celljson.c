/* celljson.c — the cell's records fetched into a view and written as JSON
 * (see celljson.h). */
#include "spec/celljson.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cellstate/jobopts.h"
#include "spec/fitcheck.h"
#include "spec/jobspec.h"

/* ---- fetching --------------------------------------------------------------------- */

/* Keep the newest version a reply showed. */
static void saw_version(cs_cellview *v, uint64_t version)
{
    if (version > v->version)
        v->version = version;
}

static int cmp_machine(const void *a, const void *b)
{
    cs_id x = ((const cs_machine *)a)->id, y = ((const cs_machine *)b)->id;
    return (x > y) - (x < y);
}

static int cmp_job(const void *a, const void *b)
{
    cs_id x = ((const cs_job *)a)->id, y = ((const cs_job *)b)->id;
    return (x > y) - (x < y);
}

void cs_cellview_init(cs_cellview *v)
{
    memset(v, 0, sizeof *v);
    cs_arena_init(&v->a);
}

void cs_cellview_free(cs_cellview *v)
{
    cs_arena_free(&v->a);
    memset(v, 0, sizeof *v);
}

static const uint8_t empty_map[] = {0x80}; /* cs_empty_req_encode's bytes: {} */

int cs_cellview_fetch_machines(cs_call_fn call, void *ctx, cs_cellview *v, cs_error *err)
{
    cs_msg r;
    cs_machines_reply d;
    CS_TRY(call(ctx, CS_MSG_GET_MACHINES, empty_map, sizeof empty_map, &r, err));
    CS_TRY(cs_machines_reply_decode(&r.body, &d, &v->a, err));
    v->machines = d.machines;
    v->nmachines = d.n;
    saw_version(v, d.version);
    qsort(v->machines, v->nmachines, sizeof *v->machines, cmp_machine);
    return CS_OK;
}

int cs_cellview_fetch_jobs(cs_call_fn call, void *ctx, cs_cellview *v, cs_error *err)
{
    cs_msg r;
    cs_jobs_reply d;
    CS_TRY(call(ctx, CS_MSG_GET_JOBS, empty_map, sizeof empty_map, &r, err));
    CS_TRY(cs_jobs_reply_decode(&r.body, &d, &v->a, err));
    v->jobs = d.jobs;
    v->njobs = d.n;
    saw_version(v, d.version);
    qsort(v->jobs, v->njobs, sizeof *v->jobs, cmp_job);
    return CS_OK;
}

static void take_tasks(cs_cellview *v, const cs_tasks_reply *d)
{
    v->tasks = d->tasks;
    v->ntasks = d->n;
    saw_version(v, d->version);
}

/* A packer writing into `b`. */
static msgpack_packer packer_of(msgpack_sbuffer *b)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, msgpack_sbuffer_write);
    return pk;
}

/* Call with the request body an encoder packed into `b` (enc_rc: its
 * result; CS_ENOMEM when it failed, the only way one does). */
static int call_packed(cs_call_fn call, void *ctx, uint32_t type, msgpack_sbuffer *b, int enc_rc,
                       cs_msg *r, cs_error *err)
{
    if (enc_rc != CS_OK)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    return call(ctx, type, b->data, b->size, r, err);
}

int cs_cellview_fetch_tasks(cs_call_fn call, void *ctx, cs_cellview *v, const char *job,
                            const char *machine, const char *state, cs_error *err)
{
    cs_get_tasks_req q = {job != NULL, machine != NULL, cs_ref_name(job ? job : ""),
                          cs_ref_name(machine), -1};
    uint8_t st;
    if (state != NULL) {
        if (cs_task_state_parse(state, &st) != CS_OK)
            return cs_errorf(err, CS_EINVAL, "unknown task state '%s'", state);
        q.state = st;
    }
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk = packer_of(&b);
    cs_msg r;
    cs_tasks_reply d;
    int rc = call_packed(call, ctx, CS_MSG_GET_TASKS, &b, cs_get_tasks_req_encode(&pk, &q), &r,
                         err);
    msgpack_sbuffer_destroy(&b);
    if (rc == CS_OK && (rc = cs_tasks_reply_decode(&r.body, &d, &v->a, err)) == CS_OK)
        take_tasks(v, &d);
    return rc;
}

int cs_cellview_fetch_job(cs_call_fn call, void *ctx, cs_cellview *v, const char *job,
                          cs_error *err)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk = packer_of(&b);
    cs_job_ref_req q = {cs_ref_name(job)};
    cs_msg r;
    int rc = call_packed(call, ctx, CS_MSG_GET_JOB, &b, cs_job_ref_req_encode(&pk, &q), &r, err);
    msgpack_sbuffer_destroy(&b);
    if (rc != CS_OK)
        return rc;
    cs_get_job_reply d;
    v->jobs = cs_arena_alloc(&v->a, sizeof *v->jobs);
    if (v->jobs == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    CS_TRY(cs_get_job_reply_decode(&r.body, &d, &v->a, err));
    v->jobs[0] = d.job;
    v->njobs = 1;
    take_tasks(v, &d.tasks);
    return CS_OK;
}

int cs_cellview_check_state(const char *label, const char *state, const char *what,
                            const char *(*name)(uint8_t), uint8_t count, int code, cs_error *err)
{
    if (state == NULL)
        return CS_OK;
    char list[128] = "";
    size_t len = 0;
    for (uint8_t s = 0; s < count; s++) {
        if (strcmp(state, name(s)) == 0)
            return CS_OK;
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", s ? ", " : "", name(s));
    }
    return cs_errorf(err, code, "%s '%s' is not a %s state (%s)", label, state, what, list);
}

/* ---- writes ----------------------------------------------------------------------- */

void cs_cell_unfit(cs_call_fn call, void *ctx, const cs_job *j,
                   void (*line)(void *lctx, const char *text), void *lctx)
{
    cs_cellview v;
    cs_cellview_init(&v);
    cs_error ignore;
    if (cs_cellview_fetch_machines(call, ctx, &v, &ignore) == CS_OK) {
        cs_fit_warnings w;
        char text[CS_FIT_WARN_LEN + CS_NAME_MAX + 32];
        cs_fit_check(j, v.machines, v.nmachines, &w);
        for (uint32_t i = 0; i < w.n; i++) {
            snprintf(text, sizeof text, "job %s waits: %s", j->name, w.msg[i]);
            line(lctx, text);
        }
        if (w.more > 0) {
            snprintf(text, sizeof text, "job %s: %u more reasons", j->name, w.more);
            line(lctx, text);
        }
    }
    cs_cellview_free(&v);
}

/* The version a {version} reply carries; 0 for a reply without one. */
static uint64_t reply_version(const cs_msg *r)
{
    cs_version_reply v;
    cs_error ignore;
    return cs_version_reply_decode(&r->body, &v, NULL, &ignore) == CS_OK ? v.version : 0;
}

int cs_cell_submit(cs_call_fn call, void *ctx, const cs_job *j, cs_id_reply *out, cs_error *err)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk = packer_of(&b);
    cs_msg r;
    *out = (cs_id_reply){0, 0};
    int rc = call_packed(call, ctx, CS_MSG_JOB_SUBMIT, &b, cs_job_submit_req_encode(&pk, j), &r,
                         err);
    if (rc == CS_OK) {
        cs_error ignore;
        cs_id_reply_decode(&r.body, out, NULL, &ignore);
    }
    msgpack_sbuffer_destroy(&b);
    return rc;
}

int cs_cell_update(cs_call_fn call, void *ctx, const char *job, const cs_job *spec,
                   uint64_t *version, cs_error *err)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    cs_job_update_req q = {cs_ref_name(job), *spec};
    msgpack_packer pk = packer_of(&b);
    cs_msg r;
    int rc = call_packed(call, ctx, CS_MSG_JOB_UPDATE, &b, cs_job_update_req_encode(&pk, &q), &r,
                         err);
    *version = rc == CS_OK ? reply_version(&r) : 0;
    msgpack_sbuffer_destroy(&b);
    return rc;
}

int cs_cell_job_request(cs_call_fn call, void *ctx, const char *job, int64_t count,
                        uint64_t *version, cs_error *err)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    cs_job_ref_req k = {cs_ref_name(job)};
    cs_job_count_req n = {cs_ref_name(job), (uint32_t)count};
    msgpack_packer pk = packer_of(&b);
    cs_msg r;
    int rc = count < 0 ? call_packed(call, ctx, CS_MSG_JOB_KILL, &b, cs_job_ref_req_encode(&pk, &k),
                                     &r, err)
                       : call_packed(call, ctx, CS_MSG_JOB_SCALE, &b,
                                     cs_job_scale_req_encode(&pk, &n), &r, err);
    *version = rc == CS_OK ? reply_version(&r) : 0;
    msgpack_sbuffer_destroy(&b);
    return rc;
}

int cs_cell_machine_admin(cs_call_fn call, void *ctx, const char *machine, uint8_t admin,
                          int64_t deadline, cs_machine_admin_reply *out, cs_error *err)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk = packer_of(&b);
    cs_machine_admin_req q = {cs_ref_name(machine), admin, deadline >= 0,
                              deadline >= 0 ? (uint32_t)deadline : 0};
    cs_msg r;
    int rc = call_packed(call, ctx, CS_MSG_MACHINE_ADMIN, &b,
                         cs_machine_admin_req_encode(&pk, &q), &r, err);
    msgpack_sbuffer_destroy(&b);
    if (rc != CS_OK)
        return rc;
    *out = (cs_machine_admin_reply){0, admin, 0, 0};
    cs_arena ra;
    cs_arena_init(&ra);
    rc = cs_machine_admin_reply_decode(&r.body, out, &ra, err);
    cs_arena_free(&ra);
    return rc;
}

/* ---- lookups ---------------------------------------------------------------------- */

const cs_machine *cs_cellview_machine(const cs_cellview *v, cs_id id)
{
    cs_machine key = {.id = id};
    return v->nmachines ? bsearch(&key, v->machines, v->nmachines, sizeof key, cmp_machine)
                        : NULL;
}

const cs_job *cs_cellview_job(const cs_cellview *v, cs_id id)
{
    cs_job key = {.id = id};
    return v->njobs ? bsearch(&key, v->jobs, v->njobs, sizeof key, cmp_job) : NULL;
}

const char *cs_cellview_machine_name(const cs_cellview *v, cs_id id, char *buf, size_t size)
{
    if (id == 0)
        return "";
    const cs_machine *m = cs_cellview_machine(v, id);
    if (m != NULL)
        return m->name;
    snprintf(buf, size, "#%" PRIu64, id);
    return buf;
}

const char *cs_cellview_job_name(const cs_cellview *v, cs_id id, char *buf, size_t size)
{
    const cs_job *j = cs_cellview_job(v, id);
    if (j != NULL)
        return j->name;
    snprintf(buf, size, "#%" PRIu64, id);
    return buf;
}

/* ---- JSON ------------------------------------------------------------------------ */

/* Attach v to o; false when either is NULL or the set fails (v released). */
static bool put(json_t *o, const char *key, json_t *v)
{
    if (o == NULL) {
        json_decref(v);
        return false;
    }
    return v != NULL && json_object_set_new(o, key, v) == 0;
}

/* o when every put succeeded; else NULL, o released. */
static json_t *done(json_t *o, bool ok)
{
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *ports_json(const uint16_t *ports, uint32_t n)
{
    json_t *a = json_array();
    for (uint32_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_integer(ports[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

json_t *cs_json_res(const cs_res *r)
{
    json_t *o = json_object();
    bool ok = put(o, "cpu", json_real((double)r->cpu / 1000.0));
    ok &= put(o, "mem", json_integer(r->mem));
    ok &= put(o, "disk", json_integer(r->disk));
    return done(o, ok);
}

static json_t *taints_json(const cs_machine *m)
{
    json_t *taints = json_array();
    bool ok = taints != NULL;
    for (uint32_t i = 0; taints && i < m->ntaints; i++) {
        json_t *t = json_object();
        bool tok = put(t, "key", json_string(m->taints[i].key));
        tok &= put(t, "value", json_string(m->taints[i].value));
        tok &= put(t, "effect", json_string(cs_taint_effect_name(m->taints[i].effect)));
        if (tok)
            tok = json_array_append_new(taints, t) == 0; /* takes t, also on failure */
        else
            json_decref(t);
        ok &= tok;
    }
    return done(taints, ok);
}

json_t *cs_json_machine(const cs_machine *m)
{
    json_t *o = json_object(), *attrs = json_object();
    bool ok = put(o, "id", json_integer((json_int_t)m->id));
    ok &= put(o, "name", json_string(m->name));
    ok &= put(o, "state", json_string(cs_machine_state_name(m->state)));
    ok &= put(o, "admin", json_string(cs_machine_admin_name(m->admin)));
    ok &= put(o, "drained", json_boolean(m->admin == CS_ADMIN_DRAINING && m->ntasks == 0));
    ok &= put(o, "drain_deadline", json_integer((json_int_t)m->drain_deadline));
    ok &= put(o, "log_url", json_string(m->log_url ? m->log_url : ""));
    for (uint32_t i = 0; attrs && i < m->nattrs; i++)
        ok &= put(attrs, m->attrs[i].key, json_string(m->attrs[i].value));
    ok &= put(o, "attrs", attrs);
    ok &= put(o, "taints", taints_json(m));
    ok &= put(o, "capacity", cs_json_res(&m->capacity));
    ok &= put(o, "allocated", cs_json_res(&m->allocated));
    ok &= put(o, "port_lo", json_integer(m->port_lo));
    ok &= put(o, "port_hi", json_integer(m->port_hi));
    ok &= put(o, "ports_in_use", ports_json(m->ports, m->nports));
    ok &= put(o, "tasks", json_integer(m->ntasks));
    ok &= put(o, "version", json_integer((json_int_t)m->version));
    return done(o, ok);
}

json_t *cs_json_task(const cs_cellview *v, const cs_task *t)
{
    char buf[32];
    json_t *o = json_object();
    const cs_machine *m = t->machine ? cs_cellview_machine(v, t->machine) : NULL;
    bool ok = put(o, "id", json_integer((json_int_t)t->id));
    ok &= put(o, "job", json_string(cs_cellview_job_name(v, t->job, buf, sizeof buf)));
    ok &= put(o, "job_id", json_integer((json_int_t)t->job));
    ok &= put(o, "index", json_integer(t->index));
    ok &= put(o, "state", json_string(cs_task_state_name(t->state)));
    ok &= put(o, "last_end", json_string(cs_task_state_name(t->last_end)));
    ok &= put(o, "machine", m ? json_string(m->name) : json_null());
    ok &= put(o, "machine_id", json_integer((json_int_t)t->machine));
    ok &= put(o, "resources", cs_json_res(&t->res));
    ok &= put(o, "ports", ports_json(t->ports, t->nports));
    ok &= put(o, "attempts", json_integer(t->attempts));
    ok &= put(o, "exit_code", json_integer(t->exit_code));
    ok &= put(o, "reason", json_string(t->reason));
    ok &= put(o, "health", json_string(cs_task_health_name(t->health)));
    ok &= put(o, "version", json_integer((json_int_t)t->version));
    return done(o, ok);
}

json_t *cs_json_job(const cs_job *j, const cs_cellview *tasks, cs_error *err)
{
    cs_arena a;
    cs_arena_init(&a);
    cs_jobopts opts;
    json_t *o = NULL;
    int rc = cs_job_opts(j, &a, &opts, err);
    if (rc == CS_OK)
        rc = cs_jobspec_to_json(j, &opts, &o, err);
    cs_arena_free(&a);
    if (rc != CS_OK)
        return NULL;
    bool ok = put(o, "id", json_integer((json_int_t)j->id));
    ok &= put(o, "state", json_string(cs_job_state_name(j->state)));
    ok &= put(o, "version", json_integer((json_int_t)j->version));
    /* A uint64 hash does not fit JSON's integers everywhere: hex text. */
    char hash[24];
    snprintf(hash, sizeof hash, "%016" PRIx64, j->spec_hash);
    ok &= put(o, "spec_hash", json_string(hash));
    /* Milliseconds since the epoch, as the store keeps it (not part of the
     * spec: a resubmitted `-o json` output is accepted and these ignored). */
    ok &= put(o, "submitted", json_integer((json_int_t)j->submitted));
    ok &= put(o, "note", json_string(j->note != NULL ? j->note : ""));
    ok &= put(o, "surge", json_integer((json_int_t)j->surge));
    ok &= put(o, "ended", json_integer((json_int_t)j->ended));
    if (tasks != NULL) {
        json_int_t n[CS_TASK_STATE_COUNT] = {0};
        for (uint32_t i = 0; i < tasks->ntasks; i++)
            if (tasks->tasks[i].job == j->id)
                n[tasks->tasks[i].state]++;
        json_t *counts = json_object();
        for (uint8_t s = 0; s < CS_TASK_STATE_COUNT; s++)
            ok &= put(counts, cs_task_state_name(s), json_integer(n[s]));
        ok &= put(o, "tasks", counts);
    }
    if (!ok) {
        json_decref(o);
        cs_errorf(err, CS_ENOMEM, "out of memory");
        return NULL;
    }
    return o;
}

json_t *cs_json_of_msgpack(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_BOOLEAN: return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return o->via.u64 > INT64_MAX ? json_real((double)o->via.u64)
                                      : json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return json_integer(o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return json_real(o->via.f64);
    case MSGPACK_OBJECT_STR: return json_stringn(o->via.str.ptr, o->via.str.size);
    case MSGPACK_OBJECT_ARRAY: {
        json_t *a = json_array();
        for (uint32_t i = 0; a && i < o->via.array.size; i++)
            if (json_array_append_new(a, cs_json_of_msgpack(&o->via.array.ptr[i])) != 0) {
                json_decref(a);
                return NULL;
            }
        return a;
    }
    case MSGPACK_OBJECT_MAP: {
        json_t *m = json_object();
        for (uint32_t i = 0; m && i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            char key[128];
            snprintf(key, sizeof key, "%.*s",
                     k->type == MSGPACK_OBJECT_STR ? (int)k->via.str.size : 1,
                     k->type == MSGPACK_OBJECT_STR ? k->via.str.ptr : "?");
            if (json_object_set_new(m, key, cs_json_of_msgpack(&o->via.map.ptr[i].val)) != 0) {
                json_decref(m);
                return NULL;
            }
        }
        return m;
    }
    default: return json_null();
    }
}

json_t *cs_json_stats(const msgpack_object *body, const cs_stats_reply *st)
{
    json_t *o = cs_json_of_msgpack(body);
    /* cpu in cores, as everywhere in the cell's JSON. */
    bool ok = put(o, "capacity", cs_json_res(&st->capacity));
    ok &= put(o, "allocated", cs_json_res(&st->allocated));
    return done(o, ok);
}

json_t *cs_json_job_written(const char *job, uint64_t id, uint64_t version)
{
    json_t *o = json_object();
    bool ok = put(o, "job", json_string(job));
    if (id != 0)
        ok &= put(o, "id", json_integer((json_int_t)id));
    ok &= put(o, "version", json_integer((json_int_t)version));
    return done(o, ok);
}

json_t *cs_json_machine_admin(const char *machine, uint8_t admin, uint64_t drain_deadline,
                              uint64_t version)
{
    return json_pack("{s:s, s:s, s:I, s:I}", "machine", machine, "admin",
                     cs_machine_admin_name(admin), "drain_deadline", (json_int_t)drain_deadline,
                     "version", (json_int_t)version);
}
