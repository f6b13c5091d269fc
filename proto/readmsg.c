/* readmsg.c — get.machines, get.jobs, get.tasks, get.job, stats (see
 * readmsg.h). */
#include "proto/readmsg.h"

#include <string.h>

#include "proto/proto.h"
#include "proto/schedreport.h"

int cs_empty_req_encode(msgpack_packer *pk)
{
    CS_PK(msgpack_pack_map(pk, 0));
    return CS_OK;
}

int cs_empty_req_decode(const msgpack_object *o, cs_error *err)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return cs_errorf(err, CS_EPROTO, "message body is not a map");
    return CS_OK;
}

/* ---- list replies ------------------------------------------------------------------ */

int cs_list_reply_begin(msgpack_packer *pk, uint64_t version, const char *key, uint32_t n)
{
    CS_PK(msgpack_pack_map(pk, 2));
    CS_TRY(cs_pack_kv_u64(pk, "version", version));
    CS_TRY(cs_pack_str(pk, key));
    CS_PK(msgpack_pack_array(pk, n));
    return CS_OK;
}

typedef int (*unpack_fn)(const msgpack_object *o, cs_arena *a, void *out, cs_error *err);

static int unpack_machine(const msgpack_object *o, cs_arena *a, void *out, cs_error *err)
{
    return cs_unpack_machine(o, a, out, err);
}
static int unpack_job(const msgpack_object *o, cs_arena *a, void *out, cs_error *err)
{
    return cs_unpack_job(o, a, out, err);
}
static int unpack_task(const msgpack_object *o, cs_arena *a, void *out, cs_error *err)
{
    return cs_unpack_task(o, a, out, err);
}

/* {"version", key: [...]}: each element by `fn` into an array of `size`-byte
 * records in `a`. */
static int list_decode(const msgpack_object *o, const char *key, size_t size, unpack_fn fn,
                       uint64_t *version, void **out, uint32_t *n, cs_arena *a, cs_error *err)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return cs_errorf(err, CS_EPROTO, "reply is not a map");
    const msgpack_object *v = cs_obj_get(o, key);
    if (v == NULL || v->type != MSGPACK_OBJECT_ARRAY)
        return cs_errorf(err, CS_EPROTO, "reply: field '%s' is missing or not an array", key);
    CS_TRY(cs_obj_u64(o, "version", true, UINT64_MAX, version, err));
    uint8_t *arr = cs_arena_alloc(a, ((size_t)v->via.array.size + 1) * size);
    if (arr == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < v->via.array.size; i++)
        CS_TRY(fn(&v->via.array.ptr[i], a, arr + i * size, err));
    *out = arr;
    *n = v->via.array.size;
    return CS_OK;
}

int cs_machines_reply_encode(msgpack_packer *pk, const cs_machines_reply *in)
{
    CS_TRY(cs_list_reply_begin(pk, in->version, "machines", in->n));
    for (uint32_t i = 0; i < in->n; i++)
        CS_TRY(cs_pack_machine(pk, &in->machines[i]));
    return CS_OK;
}

int cs_machines_reply_decode(const msgpack_object *o, cs_machines_reply *out, cs_arena *a,
                             cs_error *err)
{
    return list_decode(o, "machines", sizeof(cs_machine), unpack_machine, &out->version,
                       (void **)&out->machines, &out->n, a, err);
}

int cs_jobs_reply_encode(msgpack_packer *pk, const cs_jobs_reply *in)
{
    CS_TRY(cs_list_reply_begin(pk, in->version, "jobs", in->n));
    for (uint32_t i = 0; i < in->n; i++)
        CS_TRY(cs_pack_job(pk, &in->jobs[i]));
    return CS_OK;
}

int cs_jobs_reply_decode(const msgpack_object *o, cs_jobs_reply *out, cs_arena *a,
                         cs_error *err)
{
    return list_decode(o, "jobs", sizeof(cs_job), unpack_job, &out->version,
                       (void **)&out->jobs, &out->n, a, err);
}

int cs_tasks_reply_encode(msgpack_packer *pk, const cs_tasks_reply *in)
{
    CS_TRY(cs_list_reply_begin(pk, in->version, "tasks", in->n));
    for (uint32_t i = 0; i < in->n; i++)
        CS_TRY(cs_pack_task(pk, &in->tasks[i]));
    return CS_OK;
}

int cs_tasks_reply_decode(const msgpack_object *o, cs_tasks_reply *out, cs_arena *a,
                          cs_error *err)
{
    return list_decode(o, "tasks", sizeof(cs_task), unpack_task, &out->version,
                       (void **)&out->tasks, &out->n, a, err);
}

/* ---- get.tasks ---------------------------------------------------------------------- */

int cs_get_tasks_req_encode(msgpack_packer *pk, const cs_get_tasks_req *in)
{
    CS_PK(msgpack_pack_map(pk, (uint32_t)in->has_job + in->has_machine + (in->state >= 0)));
    if (in->has_job)
        CS_TRY(cs_pack_kv_ref(pk, "job", &in->job));
    if (in->has_machine)
        CS_TRY(cs_pack_kv_ref(pk, "machine", &in->machine));
    if (in->state >= 0)
        CS_TRY(cs_pack_kv_str(pk, "state", cs_task_state_name((uint8_t)in->state)));
    return CS_OK;
}

int cs_get_tasks_req_decode(const msgpack_object *o, cs_get_tasks_req *out, cs_arena *a,
                            cs_error *err)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return cs_errorf(err, CS_EPROTO, "message body is not a map");
    const char *state = NULL;
    memset(out, 0, sizeof *out);
    out->state = -1;
    CS_TRY(cs_obj_ref(o, "job", "job", false, a, &out->job, &out->has_job, err));
    CS_TRY(cs_obj_ref(o, "machine", "machine", false, a, &out->machine, &out->has_machine, err));
    CS_TRY(cs_obj_str(o, "state", false, 16, a, &state, err));
    if (state != NULL) {
        uint8_t st;
        if (cs_task_state_parse(state, &st) != CS_OK)
            return cs_errorf(err, CS_EINVAL, "field 'state': unknown task state '%s'", state);
        out->state = st;
    }
    return CS_OK;
}

/* ---- get.job --------------------------------------------------------------------------- */

int cs_get_job_reply_begin(msgpack_packer *pk, const cs_job *job, bool redact)
{
    CS_PK(msgpack_pack_map(pk, 2));
    CS_TRY(cs_pack_str(pk, "job"));
    CS_TRY(cs_pack_job_as(pk, job, redact));
    return cs_pack_str(pk, "tasks");
}

int cs_get_job_reply_encode(msgpack_packer *pk, const cs_get_job_reply *in)
{
    CS_TRY(cs_get_job_reply_begin(pk, &in->job, false));
    return cs_tasks_reply_encode(pk, &in->tasks);
}

int cs_get_job_reply_decode(const msgpack_object *o, cs_get_job_reply *out, cs_arena *a,
                            cs_error *err)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return cs_errorf(err, CS_EPROTO, "reply is not a map");
    const msgpack_object *jo = cs_obj_get(o, "job"), *to = cs_obj_get(o, "tasks");
    if (jo == NULL || to == NULL)
        return cs_errorf(err, CS_EPROTO, "reply to get.job lacks 'job' or 'tasks'");
    CS_TRY(cs_unpack_job(jo, a, &out->job, err));
    return cs_tasks_reply_decode(to, &out->tasks, a, err);
}

/* ---- stats ------------------------------------------------------------------------------ */

/* The counters of "server", in their wire order. */
#define SERVER_COUNTERS(X)                                                            \
    X(requests) X(errors) X(writes) X(commits) X(commits_conflicted) X(claims)        \
        X(claims_committed) X(queued) X(parked_polls)

int cs_stats_reply_head(msgpack_packer *pk, const cs_stats_reply *in)
{
    CS_PK(msgpack_pack_map(pk, 11));
    CS_TRY(cs_pack_kv_u64(pk, "version", in->version));
    CS_TRY(cs_pack_kv_u64(pk, "machines", in->machines));
    CS_TRY(cs_pack_kv_u64(pk, "machines_up", in->machines_up));
    CS_TRY(cs_pack_kv_u64(pk, "jobs", in->jobs));
    CS_TRY(cs_pack_kv_u64(pk, "jobs_active", in->jobs_active));
    CS_TRY(cs_pack_str(pk, "tasks"));
    CS_PK(msgpack_pack_map(pk, CS_TASK_STATE_COUNT));
    for (int i = 0; i < CS_TASK_STATE_COUNT; i++)
        CS_TRY(cs_pack_kv_u64(pk, cs_task_state_name((uint8_t)i), in->tasks[i]));
    CS_TRY(cs_pack_kv_res(pk, "capacity", &in->capacity));
    CS_TRY(cs_pack_kv_res(pk, "allocated", &in->allocated));
    CS_TRY(cs_pack_str(pk, "server"));
    CS_PK(msgpack_pack_map(pk, 10));
#define PACK_COUNTER(f) CS_TRY(cs_pack_kv_u64(pk, #f, in->server.f));
    SERVER_COUNTERS(PACK_COUNTER)
#undef PACK_COUNTER
    CS_TRY(cs_pack_kv_u64(pk, "inflight_bytes", in->server.inflight_bytes));
    CS_TRY(cs_pack_kv_u64(pk, "workers", in->workers));
    return cs_pack_str(pk, "schedulers");
}

int cs_stats_reply_encode(msgpack_packer *pk, const cs_stats_reply *in)
{
    CS_TRY(cs_stats_reply_head(pk, in));
    CS_PK(msgpack_pack_array(pk, in->nscheds));
    for (uint32_t i = 0; i < in->nscheds; i++) {
        const cs_stats_sched *e = &in->scheds[i];
        bool warn = e->warning != NULL && e->warning[0] != '\0';
        CS_PK(msgpack_pack_map(pk, 4u + warn));
        CS_TRY(cs_pack_kv_str(pk, "name", e->name));
        CS_TRY(cs_pack_kv_str(pk, "kind", e->kind));
        if (warn)
            CS_TRY(cs_pack_kv_str(pk, "warning", e->warning));
        CS_TRY(cs_pack_kv_u64(pk, "age_ms", e->age_ms));
        CS_TRY(cs_pack_str(pk, "metrics"));
        if (e->metrics != NULL)
            CS_PK(msgpack_pack_object(pk, *e->metrics));
        else
            CS_PK(msgpack_pack_map(pk, 0));
    }
    return CS_OK;
}

static int decode_sched(const msgpack_object *s, cs_stats_sched *e, cs_arena *a, cs_error *err)
{
    if (s->type != MSGPACK_OBJECT_MAP)
        return cs_errorf(err, CS_EPROTO, "a scheduler is not a map");
    e->warning = "";
    CS_TRY(cs_obj_str(s, "name", true, CS_NAME_MAX, a, &e->name, err));
    CS_TRY(cs_obj_str(s, "kind", true, CS_NAME_MAX, a, &e->kind, err));
    CS_TRY(cs_obj_u64(s, "age_ms", true, UINT32_MAX, &e->age_ms, err));
    CS_TRY(cs_obj_str(s, "warning", false, CS_SCHED_WARNING_MAX, a, &e->warning, err));
    e->metrics = cs_obj_get(s, "metrics");
    if (e->metrics == NULL || e->metrics->type != MSGPACK_OBJECT_MAP)
        return cs_errorf(err, CS_EPROTO, "scheduler %s has no metrics map",
                         e->name);
    return CS_OK;
}

int cs_stats_reply_decode(const msgpack_object *o, cs_stats_reply *out, cs_arena *a,
                          cs_error *err)
{
    memset(out, 0, sizeof *out);
    if (o->type != MSGPACK_OBJECT_MAP)
        return cs_errorf(err, CS_EPROTO, "body is not a map");
    CS_TRY(cs_obj_u64(o, "version", true, UINT64_MAX, &out->version, err));
    CS_TRY(cs_obj_u64(o, "machines", true, UINT64_MAX, &out->machines, err));
    CS_TRY(cs_obj_u64(o, "machines_up", true, UINT64_MAX, &out->machines_up, err));
    CS_TRY(cs_obj_u64(o, "jobs", true, UINT64_MAX, &out->jobs, err));
    CS_TRY(cs_obj_u64(o, "jobs_active", true, UINT64_MAX, &out->jobs_active, err));
    const msgpack_object *tasks = cs_obj_get(o, "tasks"), *srv = cs_obj_get(o, "server");
    if (tasks == NULL || tasks->type != MSGPACK_OBJECT_MAP)
        return cs_errorf(err, CS_EPROTO, "field 'tasks' is not a map");
    for (int i = 0; i < CS_TASK_STATE_COUNT; i++)
        CS_TRY(cs_obj_u64(tasks, cs_task_state_name((uint8_t)i), true, UINT64_MAX,
                          &out->tasks[i], err));
    CS_TRY(cs_obj_res(o, "capacity", true, &out->capacity, err));
    CS_TRY(cs_obj_res(o, "allocated", true, &out->allocated, err));
    if (srv == NULL || srv->type != MSGPACK_OBJECT_MAP)
        return cs_errorf(err, CS_EPROTO, "field 'server' is not a map");
#define READ_COUNTER(f) CS_TRY(cs_obj_u64(srv, #f, true, UINT64_MAX, &out->server.f, err));
    SERVER_COUNTERS(READ_COUNTER)
#undef READ_COUNTER
    /* Optional: a server from before --max-inflight-bytes has no such key. */
    CS_TRY(cs_obj_u64(srv, "inflight_bytes", false, UINT64_MAX, &out->server.inflight_bytes,
                      err));
    CS_TRY(cs_obj_u64(o, "workers", true, UINT64_MAX, &out->workers, err));
    const msgpack_object *list = cs_obj_get(o, "schedulers");
    if (list == NULL || list->type != MSGPACK_OBJECT_ARRAY)
        return cs_errorf(err, CS_EPROTO, "field 'schedulers' is missing");
    out->nscheds = list->via.array.size;
    if ((out->scheds = cs_arena_alloc(a, (out->nscheds + 1) * sizeof *out->scheds)) == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < out->nscheds; i++)
        CS_TRY(decode_sched(&list->via.array.ptr[i], &out->scheds[i], a, err));
    return CS_OK;
}

/* ---- audit ------------------------------------------------------------------------------ */

int cs_audit_req_encode(msgpack_packer *pk, const cs_audit_req *in)
{
    bool limit = in->limit != 0 && in->limit != CS_AUDIT_LIMIT_DEFAULT;
    CS_PK(msgpack_pack_map(pk, (uint32_t)(in->since != 0) + limit + (in->who != NULL) +
                                   (in->action != NULL)));
    if (in->since != 0)
        CS_TRY(cs_pack_kv_u64(pk, "since", in->since));
    if (limit)
        CS_TRY(cs_pack_kv_u64(pk, "limit", in->limit));
    if (in->who != NULL)
        CS_TRY(cs_pack_kv_str(pk, "who", in->who));
    if (in->action != NULL)
        CS_TRY(cs_pack_kv_str(pk, "action", in->action));
    return CS_OK;
}

int cs_audit_req_decode(const msgpack_object *o, cs_audit_req *out, cs_arena *a, cs_error *err)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return cs_errorf(err, CS_EPROTO, "message body is not a map");
    memset(out, 0, sizeof *out);
    uint64_t limit = CS_AUDIT_LIMIT_DEFAULT;
    CS_TRY(cs_obj_u64(o, "since", false, UINT64_MAX, &out->since, err));
    CS_TRY(cs_obj_u64(o, "limit", false, CS_AUDIT_LIMIT_MAX, &limit, err));
    if (limit == 0)
        return cs_errorf(err, CS_EINVAL, "field 'limit' is 0 (1 to %u entries)",
                         CS_AUDIT_LIMIT_MAX);
    out->limit = (uint32_t)limit;
    CS_TRY(cs_obj_str(o, "who", false, CS_AUDIT_WHO_MAX, a, &out->who, err));
    return cs_obj_str(o, "action", false, CS_AUDIT_ACTION_MAX, a, &out->action, err);
}

bool cs_audit_who_matches(const char *who, const char *want)
{
    size_t n = strlen(want);
    if (strncmp(who, want, n) != 0)
        return false;
    if (who[n] == '\0' || n == 0)
        return true;
    /* A prefix: it must end at a boundary of the principal's parts. */
    char last = want[n - 1], next = who[n];
    return last == ':' || last == '.' || next == ':' || next == '.';
}

int cs_audit_reply_encode(msgpack_packer *pk, const cs_audit_reply *in)
{
    CS_PK(msgpack_pack_map(pk, 2));
    CS_TRY(cs_pack_str(pk, "entries"));
    CS_PK(msgpack_pack_array(pk, in->n));
    for (uint32_t i = 0; i < in->n; i++) {
        const cs_audit_entry *e = &in->entries[i];
        CS_PK(msgpack_pack_map(pk, 5));
        CS_TRY(cs_pack_kv_u64(pk, "time", e->time_ms));
        CS_TRY(cs_pack_kv_str(pk, "who", e->who));
        CS_TRY(cs_pack_kv_str(pk, "action", e->action));
        CS_TRY(cs_pack_kv_str(pk, "target", e->target));
        CS_TRY(cs_pack_kv_u64(pk, "version", e->version));
    }
    return cs_pack_kv_bool(pk, "more", in->more);
}

static int decode_audit_entry(const msgpack_object *o, cs_audit_entry *e, cs_arena *a,
                              cs_error *err)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return cs_errorf(err, CS_EPROTO, "an audit entry is not a map");
    CS_TRY(cs_obj_u64(o, "time", true, UINT64_MAX, &e->time_ms, err));
    CS_TRY(cs_obj_str(o, "who", true, CS_AUDIT_WHO_MAX, a, &e->who, err));
    CS_TRY(cs_obj_str(o, "action", true, CS_AUDIT_ACTION_MAX, a, &e->action, err));
    CS_TRY(cs_obj_str(o, "target", true, CS_AUDIT_TARGET_MAX, a, &e->target, err));
    return cs_obj_u64(o, "version", true, UINT64_MAX, &e->version, err);
}

int cs_audit_reply_decode(const msgpack_object *o, cs_audit_reply *out, cs_arena *a,
                          cs_error *err)
{
    memset(out, 0, sizeof *out);
    if (o->type != MSGPACK_OBJECT_MAP)
        return cs_errorf(err, CS_EPROTO, "reply is not a map");
    const msgpack_object *v = cs_obj_get(o, "entries");
    if (v == NULL || v->type != MSGPACK_OBJECT_ARRAY)
        return cs_errorf(err, CS_EPROTO, "reply: field 'entries' is missing or not an array");
    if (v->via.array.size > CS_AUDIT_LIMIT_MAX)
        return cs_errorf(err, CS_EPROTO, "reply: %u entries, more than the %u a request may ask",
                         v->via.array.size, CS_AUDIT_LIMIT_MAX);
    CS_TRY(cs_obj_bool(o, "more", true, &out->more, err));
    out->entries = cs_arena_alloc(a, ((size_t)v->via.array.size + 1) * sizeof *out->entries);
    if (out->entries == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < v->via.array.size; i++) {
        int rc = decode_audit_entry(&v->via.array.ptr[i], &out->entries[i], a, err);
        if (rc != CS_OK)
            return cs_error_wrap(err, rc, "reply: entry %u", i);
    }
    out->n = v->via.array.size;
    return CS_OK;
}
