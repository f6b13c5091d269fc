/* agentmsg.c — register, heartbeat, poll, task.status, task.logs (see
 * agentmsg.h). */
#include "proto/agentmsg.h"

#include <stdio.h>
#include <string.h>

#include "proto/proto.h"

/* ---- machine.register ------------------------------------------------------- */

int cs_register_req_encode(msgpack_packer *pk, const cs_machine *m)
{
    bool url = m->log_url != NULL && m->log_url[0] != '\0';
    bool state = m->state != CS_MACHINE_UP;
    CS_PK(msgpack_pack_map(pk, 6u + url + state));
    CS_TRY(cs_pack_kv_str(pk, "name", m->name));
    if (url)
        CS_TRY(cs_pack_kv_str(pk, "log_url", m->log_url));
    CS_TRY(cs_pack_taints(pk, m->taints, m->ntaints));
    CS_TRY(cs_pack_kv_res(pk, "capacity", &m->capacity));
    CS_TRY(cs_pack_kv_u64(pk, "port_lo", m->port_lo));
    CS_TRY(cs_pack_kv_u64(pk, "port_hi", m->port_hi));
    CS_TRY(cs_pack_str(pk, "attrs"));
    CS_PK(msgpack_pack_map(pk, m->nattrs));
    for (uint32_t i = 0; i < m->nattrs; i++)
        CS_TRY(cs_pack_kv_str(pk, m->attrs[i].key, m->attrs[i].value));
    if (state)
        CS_TRY(cs_pack_kv_str(pk, "state", cs_machine_state_name(m->state)));
    return CS_OK;
}

int cs_register_req_decode(const msgpack_object *o, cs_machine *out, cs_arena *a, cs_error *err)
{
    return cs_unpack_machine_spec(o, a, out, err);
}

/* ---- machine.heartbeat -------------------------------------------------------- */

int cs_heartbeat_req_encode(msgpack_packer *pk, const cs_heartbeat_req *in)
{
    return cs_ref_req_encode(pk, "machine", &in->machine);
}

int cs_heartbeat_req_decode(const msgpack_object *o, cs_heartbeat_req *out, cs_arena *a,
                            cs_error *err)
{
    return cs_ref_req_decode(o, "machine", "machine", a, &out->machine, err);
}

int cs_heartbeat_reply_encode(msgpack_packer *pk, const cs_heartbeat_reply *in)
{
    CS_PK(msgpack_pack_map(pk, 3));
    CS_TRY(cs_pack_kv_u64(pk, "machine", in->machine));
    CS_TRY(cs_pack_kv_str(pk, "state", cs_machine_state_name(in->state)));
    return cs_pack_kv_u64(pk, "version", in->version);
}

int cs_heartbeat_reply_decode(const msgpack_object *o, cs_heartbeat_reply *out, cs_arena *a,
                              cs_error *err)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return cs_not_map(err);
    const char *state;
    CS_TRY(cs_obj_u64(o, "machine", true, UINT64_MAX, &out->machine, err));
    CS_TRY(cs_obj_str(o, "state", true, 16, a, &state, err));
    if (cs_machine_state_parse(state, &out->state) != CS_OK)
        return cs_errorf(err, CS_EINVAL, "field 'state' is '%s', not up, draining or down", state);
    return cs_obj_u64(o, "version", true, UINT64_MAX, &out->version, err);
}

/* ---- poll: the request -------------------------------------------------------- */

int cs_poll_req_encode(msgpack_packer *pk, const cs_poll_req *in)
{
    bool wait = in->min_index != 0;
    CS_PK(msgpack_pack_map(pk, 3u + in->jobs_once + in->known_short + wait));
    CS_TRY(cs_pack_kv_ref(pk, "machine", &in->machine));
    CS_TRY(cs_pack_kv_u64(pk, "since", in->since));
    CS_TRY(cs_pack_kv_u64(pk, "wait_ms", in->wait_ms));
    if (in->jobs_once)
        CS_TRY(cs_pack_kv_str(pk, "jobs", "once"));
    if (in->known_short)
        CS_TRY(cs_pack_kv_str(pk, "known", "short"));
    if (wait)
        CS_TRY(cs_pack_kv_u64(pk, "min_index", in->min_index));
    return CS_OK;
}

/* An optional two-valued string field `key`: absent or `dflt` (*is_alt
 * false), or `alt` (*is_alt true); anything else is CS_EPROTO. */
static int choice(const msgpack_object *o, const char *key, const char *dflt, const char *alt,
                  bool *is_alt, cs_error *err)
{
    const msgpack_object *v = cs_obj_get(o, key);
    *is_alt = v != NULL && cs_obj_str_is(v, alt);
    if (v != NULL && !*is_alt && !cs_obj_str_is(v, dflt))
        return cs_errorf(err, CS_EPROTO, "field '%s': must be \"%s\" or \"%s\"", key, dflt, alt);
    return CS_OK;
}

int cs_poll_req_decode(const msgpack_object *o, cs_poll_req *out, cs_arena *a, cs_error *err)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return cs_not_map(err);
    uint64_t wait = 0;
    memset(out, 0, sizeof *out);
    CS_TRY(cs_obj_u64(o, "since", false, UINT64_MAX, &out->since, err));
    CS_TRY(cs_obj_u64(o, "wait_ms", false, UINT32_MAX, &wait, err));
    out->wait_ms = (uint32_t)wait;
    CS_TRY(cs_obj_u64(o, "min_index", false, UINT64_MAX, &out->min_index, err));
    CS_TRY(choice(o, "jobs", "each", "once", &out->jobs_once, err));
    CS_TRY(choice(o, "known", "full", "short", &out->known_short, err));
    /* A short entry names no job: it needs the reply that carries them. */
    if (out->known_short && !out->jobs_once)
        return cs_errorf(err, CS_EPROTO, "field 'known': \"short\" needs \"jobs\": \"once\"");
    return cs_obj_ref(o, "machine", "machine", true, a, &out->machine, NULL, err);
}

/* ---- poll: the reply ------------------------------------------------------------ */

int cs_poll_reply_begin_each(msgpack_packer *pk, uint64_t version, uint32_t ntasks)
{
    CS_PK(msgpack_pack_map(pk, 2));
    CS_TRY(cs_pack_kv_u64(pk, "version", version));
    CS_TRY(cs_pack_str(pk, "tasks"));
    CS_PK(msgpack_pack_array(pk, ntasks));
    return CS_OK;
}

int cs_poll_entry_each_encode(msgpack_packer *pk, const cs_task *t, const void *job_map,
                              size_t job_len)
{
    CS_PK(msgpack_pack_map(pk, 2));
    CS_TRY(cs_pack_str(pk, "task"));
    CS_TRY(cs_pack_task(pk, t));
    CS_TRY(cs_pack_str(pk, "job"));
    /* The job's bytes as packed once per reply (the server's memo). */
    CS_PK(pk->callback(pk->data, job_map, job_len));
    return CS_OK;
}

int cs_poll_reply_begin_once(msgpack_packer *pk, uint64_t version, uint32_t njobs)
{
    CS_PK(msgpack_pack_map(pk, 3));
    CS_TRY(cs_pack_kv_u64(pk, "version", version));
    CS_TRY(cs_pack_str(pk, "jobs"));
    CS_PK(msgpack_pack_array(pk, njobs));
    return CS_OK;
}

int cs_poll_reply_tasks(msgpack_packer *pk, uint32_t ntasks)
{
    CS_TRY(cs_pack_str(pk, "tasks"));
    CS_PK(msgpack_pack_array(pk, ntasks));
    return CS_OK;
}

int cs_poll_entry_short_encode(msgpack_packer *pk, cs_id id, uint32_t attempts)
{
    CS_PK(msgpack_pack_array(pk, 2));
    CS_PK(msgpack_pack_uint64(pk, id));
    CS_PK(msgpack_pack_uint32(pk, attempts));
    return CS_OK;
}

int cs_poll_entry_full_encode(msgpack_packer *pk, const cs_task *t)
{
    CS_PK(msgpack_pack_map(pk, 2));
    CS_TRY(cs_pack_str(pk, "task"));
    CS_TRY(cs_pack_task(pk, t));
    return cs_pack_kv_u64(pk, "job", t->job);
}

static const cs_job *find_job(const cs_poll_out *in, cs_id id)
{
    for (uint32_t i = 0; i < in->njobs; i++)
        if (in->jobs[i].id == id)
            return &in->jobs[i];
    return NULL;
}

int cs_poll_reply_encode(msgpack_packer *pk, const cs_poll_out *in)
{
    if (in->once) {
        CS_TRY(cs_poll_reply_begin_once(pk, in->version, in->njobs));
        for (uint32_t i = 0; i < in->njobs; i++)
            CS_TRY(cs_pack_job(pk, &in->jobs[i]));
        CS_TRY(cs_poll_reply_tasks(pk, in->ntasks));
        for (uint32_t i = 0; i < in->ntasks; i++) {
            const cs_task *t = &in->tasks[i];
            CS_TRY(in->shrt && in->shrt[i] ? cs_poll_entry_short_encode(pk, t->id, t->attempts)
                                           : cs_poll_entry_full_encode(pk, t));
        }
        return CS_OK;
    }
    CS_TRY(cs_poll_reply_begin_each(pk, in->version, in->ntasks));
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer jp;
    msgpack_packer_init(&jp, &b, msgpack_sbuffer_write);
    int rc = CS_OK;
    for (uint32_t i = 0; i < in->ntasks && rc == CS_OK; i++) {
        const cs_job *j = find_job(in, in->tasks[i].job);
        b.size = 0;
        if (j == NULL)
            rc = CS_ENOTFOUND;
        else if ((rc = cs_pack_job(&jp, j)) == CS_OK)
            rc = cs_poll_entry_each_encode(pk, &in->tasks[i], b.data, b.size);
    }
    msgpack_sbuffer_destroy(&b);
    return rc;
}

/* Note why entry or job `what` cannot be read: the message in the arena. */
static const char *bad_text(cs_arena *a, const cs_error *e)
{
    const char *s = cs_arena_strndup(a, e->msg, strlen(e->msg));
    return s ? s : "out of memory";
}

/* The compact reply's jobs, each with its id when readable. */
static int decode_jobs(const msgpack_object *jobs, cs_poll_reply *out, cs_arena *a,
                       cs_error *err)
{
    if (jobs->type != MSGPACK_OBJECT_ARRAY)
        return cs_errorf(err, CS_EPROTO, "poll reply: field 'jobs' is not an array");
    out->compact = true;
    out->njobs = jobs->via.array.size;
    out->jobs = cs_arena_alloc(a, (out->njobs + 1) * sizeof *out->jobs);
    if (out->jobs == NULL)
        return cs_errorf(err, CS_ENOMEM, "poll reply: out of memory");
    for (uint32_t i = 0; i < out->njobs; i++) {
        cs_poll_job *j = &out->jobs[i];
        cs_error e = {0};
        uint64_t id = 0;
        *j = (cs_poll_job){0, &jobs->via.array.ptr[i], NULL};
        if (j->map->type != MSGPACK_OBJECT_MAP)
            cs_errorf(&e, CS_EPROTO, "not a map");
        else if (cs_obj_u64(j->map, "id", true, UINT64_MAX, &id, &e) == CS_OK && id == 0)
            cs_errorf(&e, CS_EPROTO, "id 0");
        j->id = id;
        if (id == 0)
            j->bad = bad_text(a, &e);
    }
    return CS_OK;
}

static int32_t job_index(const cs_poll_reply *r, cs_id id)
{
    for (uint32_t i = 0; i < r->njobs; i++)
        if (r->jobs[i].id == id)
            return (int32_t)i;
    return -1;
}

/* One entry into *e; CS_OK, or an error naming why it cannot be read. */
static int decode_entry(const msgpack_object *o, const cs_poll_reply *r, cs_poll_entry *e,
                        cs_error *err)
{
    *e = (cs_poll_entry){.job_index = -1};
    if (o->type == MSGPACK_OBJECT_ARRAY) {
        const msgpack_object *v = o->via.array.ptr;
        if (o->via.array.size != 2 || v[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
            v[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || v[1].via.u64 > UINT32_MAX)
            return cs_errorf(err, CS_EPROTO, "short entry is not [task id, attempts]");
        e->kind = CS_POLL_SHORT;
        e->id = v[0].via.u64;
        e->attempts = (uint32_t)v[1].via.u64;
        return CS_OK;
    }
    const msgpack_object *task = o->type == MSGPACK_OBJECT_MAP ? cs_obj_get(o, "task") : NULL;
    if (task == NULL || task->type != MSGPACK_OBJECT_MAP)
        return cs_errorf(err, CS_EPROTO, "entry has no 'task' map");
    uint64_t id, attempts, job = 0;
    CS_TRY(cs_obj_u64(task, "id", true, UINT64_MAX, &id, err));
    CS_TRY(cs_obj_u64(task, "attempts", true, UINT32_MAX, &attempts, err));
    e->kind = CS_POLL_FULL;
    e->id = id;
    e->attempts = (uint32_t)attempts;
    e->task = task;
    if (!r->compact) {
        e->job_map = cs_obj_get(o, "job");
        return CS_OK;
    }
    CS_TRY(cs_obj_u64(o, "job", true, UINT64_MAX, &job, err));
    if ((e->job_index = job_index(r, job)) < 0)
        return cs_errorf(err, CS_EPROTO, "task %llu: job %llu is not in the reply's 'jobs'",
                         (unsigned long long)id, (unsigned long long)job);
    e->job = job;
    e->job_map = r->jobs[e->job_index].map;
    return CS_OK;
}

int cs_poll_reply_decode(const msgpack_object *o, cs_poll_reply *out, cs_arena *a,
                         cs_error *err)
{
    memset(out, 0, sizeof *out);
    if (o->type != MSGPACK_OBJECT_MAP)
        return cs_errorf(err, CS_EPROTO, "poll reply: body is not a map");
    int rc = cs_obj_u64(o, "version", true, UINT64_MAX, &out->version, err);
    if (rc != CS_OK)
        return cs_error_wrap(err, rc, "poll reply");
    const msgpack_object *tasks = cs_obj_get(o, "tasks");
    if (tasks == NULL || tasks->type != MSGPACK_OBJECT_ARRAY)
        return cs_errorf(err, CS_EPROTO, "poll reply: field 'tasks' is not an array");
    const msgpack_object *jobs = cs_obj_get(o, "jobs");
    if (jobs != NULL)
        CS_TRY(decode_jobs(jobs, out, a, err));
    out->ntasks = tasks->via.array.size;
    out->tasks = cs_arena_alloc(a, (out->ntasks + 1) * sizeof *out->tasks);
    if (out->tasks == NULL)
        return cs_errorf(err, CS_ENOMEM, "poll reply: out of memory");
    for (uint32_t i = 0; i < out->ntasks; i++) {
        cs_error e = {0};
        cs_poll_entry *pe = &out->tasks[i];
        if (decode_entry(&tasks->via.array.ptr[i], out, pe, &e) != CS_OK) {
            *pe = (cs_poll_entry){.kind = CS_POLL_BAD, .job_index = -1, .bad = bad_text(a, &e)};
        }
    }
    return CS_OK;
}

/* ---- task.status ---------------------------------------------------------------- */

int cs_report_encode(msgpack_packer *pk, const cs_task_report *r)
{
    bool end = r->state != CS_TASK_RUNNING;
    bool health = r->health != CS_TASK_HEALTH_UNKNOWN;
    CS_PK(msgpack_pack_map(pk, 3u + 2u * end + health));
    CS_TRY(cs_pack_kv_u64(pk, "task", r->task));
    CS_TRY(cs_pack_kv_u64(pk, "attempt", r->attempt));
    CS_TRY(cs_pack_kv_str(pk, "state", cs_task_state_name(r->state)));
    if (end) {
        CS_TRY(cs_pack_kv_i64(pk, "exit_code", r->exit_code));
        CS_TRY(cs_pack_kv_str(pk, "reason", r->reason ? r->reason : ""));
    }
    if (health)
        CS_TRY(cs_pack_kv_str(pk, "health", cs_task_health_name(r->health)));
    return CS_OK;
}

int cs_report_decode(const msgpack_object *o, cs_task_report *out, cs_arena *a, cs_error *err)
{
    uint64_t id = 0, attempt = 0;
    int64_t code = 0;
    const char *state = NULL, *reason = NULL, *health = NULL;
    if (o->type != MSGPACK_OBJECT_MAP)
        return cs_not_map(err);
    CS_TRY(cs_obj_u64(o, "task", true, UINT64_MAX, &id, err));
    CS_TRY(cs_obj_u64(o, "attempt", true, UINT32_MAX, &attempt, err));
    CS_TRY(cs_obj_str(o, "state", true, 16, a, &state, err));
    CS_TRY(cs_obj_i64(o, "exit_code", false, INT32_MIN, INT32_MAX, &code, err));
    CS_TRY(cs_obj_str(o, "reason", false, CS_REASON_MAX, a, &reason, err));
    CS_TRY(cs_obj_str(o, "health", false, 16, a, &health, err));
    *out = (cs_task_report){id, (uint32_t)attempt, 0, (int32_t)code, reason,
                            CS_TASK_HEALTH_UNKNOWN};
    if (cs_task_state_parse(state, &out->state) != CS_OK)
        return cs_errorf(err, CS_EINVAL, "field 'state': unknown task state '%s'", state);
    /* "unknown" is what a new placement starts with, not a report. */
    if (health != NULL && (cs_task_health_parse(health, &out->health) != CS_OK ||
                           out->health == CS_TASK_HEALTH_UNKNOWN))
        return cs_errorf(err, CS_EINVAL, "field 'health' is '%s', not healthy or unhealthy",
                         health);
    return CS_OK;
}

int cs_task_status_req_encode(msgpack_packer *pk, const cs_task_status_req *in)
{
    if (!in->batch)
        return in->n == 1 ? cs_report_encode(pk, &in->reports[0]) : CS_EINVAL;
    CS_PK(msgpack_pack_map(pk, 1));
    CS_TRY(cs_pack_str(pk, "reports"));
    CS_PK(msgpack_pack_array(pk, in->n));
    for (uint32_t i = 0; i < in->n; i++)
        CS_TRY(cs_report_encode(pk, &in->reports[i]));
    return CS_OK;
}

int cs_task_status_req_decode(const msgpack_object *o, cs_task_status_req *out, cs_arena *a,
                              cs_error *err)
{
    memset(out, 0, sizeof *out);
    if (o->type != MSGPACK_OBJECT_MAP)
        return cs_not_map(err);
    const msgpack_object *list = cs_obj_get(o, "reports");
    if (list == NULL) {
        out->n = 1;
        if ((out->reports = cs_arena_alloc(a, sizeof *out->reports)) == NULL)
            return cs_errorf(err, CS_ENOMEM, "task.status: out of memory");
        return cs_report_decode(o, out->reports, a, err);
    }
    if (list->type != MSGPACK_OBJECT_ARRAY || list->via.array.size > CS_REPORTS_MAX)
        return cs_errorf(err, CS_EPROTO, "field 'reports' is not an array of at most %d reports",
                         CS_REPORTS_MAX);
    uint32_t n = list->via.array.size;
    out->batch = true;
    out->n = n;
    out->reports = cs_arena_alloc(a, (n + 1) * sizeof *out->reports);
    out->codes = cs_arena_alloc(a, (n + 1) * sizeof *out->codes);
    out->errors = cs_arena_alloc(a, (n + 1) * sizeof *out->errors);
    if (out->reports == NULL || out->codes == NULL || out->errors == NULL)
        return cs_errorf(err, CS_ENOMEM, "task.status: out of memory");
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *r = &list->via.array.ptr[i];
        cs_error e = {0};
        if (r->type != MSGPACK_OBJECT_MAP)
            out->codes[i] = cs_errorf(&e, CS_EPROTO, "reports[%u] is not a map", i);
        else
            out->codes[i] = cs_report_decode(r, &out->reports[i], a, &e);
        out->errors[i] = out->codes[i] == CS_OK ? "" : bad_text(a, &e);
        if (out->codes[i] == CS_ENOMEM)
            return cs_errorf(err, CS_ENOMEM, "task.status: out of memory");
    }
    return CS_OK;
}

int cs_task_status_reply_encode(msgpack_packer *pk, const cs_task_status_reply *in)
{
    CS_PK(msgpack_pack_map(pk, 2));
    CS_TRY(cs_pack_kv_u64(pk, "version", in->version));
    CS_TRY(cs_pack_str(pk, "results"));
    CS_PK(msgpack_pack_array(pk, in->n));
    for (uint32_t i = 0; i < in->n; i++) {
        const cs_report_result *r = &in->results[i];
        CS_PK(msgpack_pack_map(pk, 2));
        CS_TRY(cs_pack_kv_u64(pk, "code", (uint64_t)r->code));
        CS_TRY(cs_pack_kv_str(pk, "message", r->code == CS_OK || !r->message ? "" : r->message));
    }
    return CS_OK;
}

/* One result {"code", "message"} into *r, or CS_EPROTO. */
static int decode_result(const msgpack_object *o, cs_report_result *r, cs_arena *a)
{
    uint64_t code;
    const msgpack_object *msg = cs_obj_get(o, "message");
    cs_error ignore;
    if (o->type != MSGPACK_OBJECT_MAP ||
        cs_obj_u64(o, "code", true, CS_ECODE_MAX, &code, &ignore) != CS_OK || msg == NULL ||
        msg->type != MSGPACK_OBJECT_STR)
        return CS_EPROTO;
    r->code = (int)code;
    r->message = cs_arena_strndup(a, msg->via.str.ptr, msg->via.str.size);
    return r->message ? CS_OK : CS_ENOMEM;
}

int cs_task_status_reply_decode(const msgpack_object *o, cs_task_status_reply *out, cs_arena *a,
                                cs_error *err)
{
    memset(out, 0, sizeof *out);
    if (o->type != MSGPACK_OBJECT_MAP)
        return cs_errorf(err, CS_EPROTO, "task.status reply: body is not a map");
    const msgpack_object *res = cs_obj_get(o, "results");
    CS_TRY(cs_obj_u64(o, "version", true, UINT64_MAX, &out->version, err));
    if (res == NULL || res->type != MSGPACK_OBJECT_ARRAY)
        return cs_errorf(err, CS_EPROTO, "task.status reply: field 'results' is not an array");
    out->n = res->via.array.size;
    if ((out->results = cs_arena_alloc(a, (out->n + 1) * sizeof *out->results)) == NULL)
        return cs_errorf(err, CS_ENOMEM, "task.status reply: out of memory");
    for (uint32_t i = 0; i < out->n; i++) {
        cs_report_result *r = &out->results[i];
        int rc = decode_result(&res->via.array.ptr[i], r, a);
        if (rc == CS_ENOMEM)
            return cs_errorf(err, CS_ENOMEM, "task.status reply: out of memory");
        if (rc != CS_OK) {
            char text[64];
            snprintf(text, sizeof text, "task.status reply: results[%u] is malformed", i);
            r->code = CS_EPROTO;
            if ((r->message = cs_arena_strndup(a, text, strlen(text))) == NULL)
                return cs_errorf(err, CS_ENOMEM, "task.status reply: out of memory");
        }
    }
    return CS_OK;
}

/* ---- task.logs -------------------------------------------------------------------- */

int cs_logs_req_encode(msgpack_packer *pk, const cs_logs_req *in)
{
    CS_PK(msgpack_pack_map(pk, 5));
    CS_TRY(cs_pack_kv_u64(pk, "task", in->task));
    CS_TRY(cs_pack_kv_u64(pk, "attempt", in->attempt));
    CS_TRY(cs_pack_kv_str(pk, "stream", in->err_stream ? "stderr" : "stdout"));
    CS_TRY(cs_pack_kv_u64(pk, "max", in->max));
    return in->tail > 0 ? cs_pack_kv_u64(pk, "tail", in->tail)
                        : cs_pack_kv_u64(pk, "offset", in->offset);
}

int cs_logs_req_decode(const msgpack_object *o, cs_logs_req *out, cs_arena *a, cs_error *err)
{
    (void)a;
    if (o->type != MSGPACK_OBJECT_MAP)
        return cs_not_map(err);
    uint64_t task = 0, attempt = 0, off = 0, tail = 0, max = CS_LOGS_DEFAULT;
    const msgpack_object *s = cs_obj_get(o, "stream");
    CS_TRY(cs_obj_u64(o, "task", true, UINT64_MAX, &task, err));
    CS_TRY(cs_obj_u64(o, "attempt", true, UINT32_MAX, &attempt, err));
    CS_TRY(cs_obj_u64(o, "offset", false, UINT64_MAX, &off, err));
    CS_TRY(cs_obj_u64(o, "tail", false, UINT32_MAX, &tail, err));
    CS_TRY(cs_obj_u64(o, "max", false, CS_LOGS_MAX, &max, err));
    bool err_stream = s != NULL && cs_obj_str_is(s, "stderr");
    if (s != NULL && !err_stream && !cs_obj_str_is(s, "stdout"))
        return cs_errorf(err, CS_EINVAL, "field 'stream' is neither stdout nor stderr");
    if (max == 0)
        return cs_errorf(err, CS_EINVAL, "field 'max' must be at least 1");
    *out = (cs_logs_req){task, (uint32_t)attempt, err_stream, off, (uint32_t)tail, (uint32_t)max};
    return CS_OK;
}

int cs_logs_reply_encode(msgpack_packer *pk, const cs_logs_reply *in)
{
    CS_PK(msgpack_pack_map(pk, 4));
    CS_TRY(cs_pack_kv_u64(pk, "offset", in->offset));
    CS_TRY(cs_pack_kv_u64(pk, "size", in->size));
    CS_TRY(cs_pack_kv_u64(pk, "next", in->next));
    CS_TRY(cs_pack_str(pk, "data"));
    CS_PK(msgpack_pack_bin(pk, in->len));
    if (in->len > 0)
        CS_PK(msgpack_pack_bin_body(pk, in->data, in->len));
    return CS_OK;
}

int cs_logs_reply_decode(const msgpack_object *o, cs_logs_reply *out, cs_arena *a,
                         cs_error *err)
{
    (void)a;
    if (o->type != MSGPACK_OBJECT_MAP)
        return cs_errorf(err, CS_EPROTO, "task.logs reply: body is not a map");
    CS_TRY(cs_obj_u64(o, "offset", true, UINT64_MAX, &out->offset, err));
    CS_TRY(cs_obj_u64(o, "size", true, UINT64_MAX, &out->size, err));
    CS_TRY(cs_obj_u64(o, "next", true, UINT64_MAX, &out->next, err));
    const msgpack_object *d = cs_obj_get(o, "data");
    if (d == NULL || d->type != MSGPACK_OBJECT_BIN)
        return cs_errorf(err, CS_EPROTO, "field 'data' is missing or not binary");
    out->data = d->via.bin.ptr;
    out->len = d->via.bin.size;
    return CS_OK;
}
