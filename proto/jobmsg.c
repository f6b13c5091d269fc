/* jobmsg.c — job.submit, kill, scale, update, note, surge, end and
 * machine.admin (see jobmsg.h). */
#include "proto/jobmsg.h"

#include <string.h>

#include "proto/proto.h"

/* ---- job.submit ------------------------------------------------------------------ */

int cs_job_spec_encode(msgpack_packer *pk, const cs_job *j)
{
    CS_PK(msgpack_pack_map(pk, 8u + (j->extra_len > 0)));
    CS_TRY(cs_pack_kv_str(pk, "name", j->name));
    CS_TRY(cs_pack_kv_str(pk, "kind", cs_job_kind_name(j->kind)));
    CS_TRY(cs_pack_kv_i64(pk, "priority", j->priority));
    CS_TRY(cs_pack_kv_u64(pk, "count", j->count));
    CS_TRY(cs_pack_kv_res(pk, "resources", &j->res));
    CS_TRY(cs_pack_kv_ports(pk, "ports", j->ports, j->nports));
    CS_TRY(cs_pack_kv_constraints(pk, "constraints", j->constraints, j->nconstraints));
    CS_TRY(cs_pack_kv_str(pk, "cmd", j->cmd ? j->cmd : ""));
    if (j->extra_len > 0) {
        CS_TRY(cs_pack_str(pk, "options"));
        CS_PK(msgpack_pack_bin(pk, j->extra_len));
        CS_PK(msgpack_pack_bin_body(pk, j->extra, j->extra_len));
    }
    return CS_OK;
}

int cs_job_submit_req_encode(msgpack_packer *pk, const cs_job *spec)
{
    return cs_job_spec_encode(pk, spec);
}

int cs_job_submit_req_decode(const msgpack_object *o, cs_job *out, cs_arena *a, cs_error *err)
{
    return cs_unpack_job_spec(o, a, out, err);
}

/* ---- job.kill, job.end -------------------------------------------------------------- */

int cs_job_ref_req_encode(msgpack_packer *pk, const cs_job_ref_req *in)
{
    return cs_ref_req_encode(pk, "job", &in->job);
}

int cs_job_ref_req_decode(const msgpack_object *o, cs_job_ref_req *out, cs_arena *a,
                          cs_error *err)
{
    return cs_ref_req_decode(o, "job", "job", a, &out->job, err);
}

/* ---- job.scale, job.surge ------------------------------------------------------------- */

static int count_encode(msgpack_packer *pk, const char *key, const cs_job_count_req *in)
{
    CS_PK(msgpack_pack_map(pk, 2));
    CS_TRY(cs_pack_kv_ref(pk, "job", &in->job));
    return cs_pack_kv_u64(pk, key, in->n);
}

static int count_decode(const msgpack_object *o, const char *key, cs_job_count_req *out,
                        cs_arena *a, cs_error *err)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return cs_not_map(err);
    uint64_t n = 0;
    CS_TRY(cs_obj_u64(o, key, true, CS_TASK_INDEX_MAX + 1u, &n, err));
    out->n = (uint32_t)n;
    return cs_obj_ref(o, "job", "job", true, a, &out->job, NULL, err);
}

int cs_job_scale_req_encode(msgpack_packer *pk, const cs_job_count_req *in)
{
    return count_encode(pk, "count", in);
}

int cs_job_scale_req_decode(const msgpack_object *o, cs_job_count_req *out, cs_arena *a,
                            cs_error *err)
{
    return count_decode(o, "count", out, a, err);
}

int cs_job_surge_req_encode(msgpack_packer *pk, const cs_job_count_req *in)
{
    return count_encode(pk, "surge", in);
}

int cs_job_surge_req_decode(const msgpack_object *o, cs_job_count_req *out, cs_arena *a,
                            cs_error *err)
{
    return count_decode(o, "surge", out, a, err);
}

/* ---- job.update ------------------------------------------------------------------------- */

int cs_job_update_req_encode(msgpack_packer *pk, const cs_job_update_req *in)
{
    CS_PK(msgpack_pack_map(pk, 2));
    CS_TRY(cs_pack_kv_ref(pk, "job", &in->job));
    CS_TRY(cs_pack_str(pk, "spec"));
    return cs_job_spec_encode(pk, &in->spec);
}

int cs_job_update_req_decode(const msgpack_object *o, cs_job_update_req *out, cs_arena *a,
                             cs_error *err)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return cs_not_map(err);
    const msgpack_object *spec = cs_obj_get(o, "spec");
    if (spec == NULL)
        return cs_errorf(err, CS_EPROTO, "field 'spec' is missing");
    CS_TRY(cs_obj_ref(o, "job", "job", true, a, &out->job, NULL, err));
    return cs_unpack_job_spec(spec, a, &out->spec, err);
}

/* ---- job.note --------------------------------------------------------------------------- */

int cs_job_note_req_encode(msgpack_packer *pk, const cs_job_note_req *in)
{
    CS_PK(msgpack_pack_map(pk, 2));
    CS_TRY(cs_pack_kv_ref(pk, "job", &in->job));
    return cs_pack_kv_str(pk, "note", in->note ? in->note : "");
}

int cs_job_note_req_decode(const msgpack_object *o, cs_job_note_req *out, cs_arena *a,
                           cs_error *err)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return cs_not_map(err);
    CS_TRY(cs_obj_str(o, "note", true, CS_NOTE_MAX, a, &out->note, err));
    return cs_obj_ref(o, "job", "job", true, a, &out->job, NULL, err);
}

/* ---- machine.admin ---------------------------------------------------------------------- */

int cs_machine_admin_req_encode(msgpack_packer *pk, const cs_machine_admin_req *in)
{
    CS_PK(msgpack_pack_map(pk, 2u + in->has_deadline));
    CS_TRY(cs_pack_kv_ref(pk, "machine", &in->machine));
    CS_TRY(cs_pack_kv_str(pk, "admin", cs_machine_admin_name(in->admin)));
    if (in->has_deadline)
        CS_TRY(cs_pack_kv_u64(pk, "deadline_ms", in->deadline_ms));
    return CS_OK;
}

int cs_machine_admin_req_decode(const msgpack_object *o, cs_machine_admin_req *out, cs_arena *a,
                                cs_error *err)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return cs_not_map(err);
    const char *name = NULL;
    uint64_t dur = 0;
    memset(out, 0, sizeof *out);
    out->has_deadline = cs_obj_get(o, "deadline_ms") != NULL;
    CS_TRY(cs_obj_str(o, "admin", true, 16, a, &name, err));
    if (cs_machine_admin_parse(name, &out->admin) != CS_OK)
        return cs_errorf(err, CS_EINVAL, "field 'admin' is '%s', not active, cordoned or draining",
                         name);
    CS_TRY(cs_obj_u64(o, "deadline_ms", false, UINT32_MAX, &dur, err));
    out->deadline_ms = (uint32_t)dur;
    if (out->has_deadline && out->admin != CS_ADMIN_DRAINING)
        return cs_errorf(err, CS_EINVAL, "field 'deadline_ms' goes with admin 'draining' only");
    return cs_obj_ref(o, "machine", "machine", true, a, &out->machine, NULL, err);
}

int cs_machine_admin_reply_encode(msgpack_packer *pk, const cs_machine_admin_reply *in)
{
    CS_PK(msgpack_pack_map(pk, 4));
    CS_TRY(cs_pack_kv_u64(pk, "id", in->id));
    CS_TRY(cs_pack_kv_str(pk, "admin", cs_machine_admin_name(in->admin)));
    CS_TRY(cs_pack_kv_u64(pk, "drain_deadline", in->drain_deadline));
    return cs_pack_kv_u64(pk, "version", in->version);
}

int cs_machine_admin_reply_decode(const msgpack_object *o, cs_machine_admin_reply *out,
                                  cs_arena *a, cs_error *err)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return cs_errorf(err, CS_EPROTO, "machine.admin reply: body is not a map");
    const char *name;
    CS_TRY(cs_obj_u64(o, "id", true, UINT64_MAX, &out->id, err));
    CS_TRY(cs_obj_str(o, "admin", true, 16, a, &name, err));
    if (cs_machine_admin_parse(name, &out->admin) != CS_OK)
        return cs_errorf(err, CS_EINVAL, "field 'admin' is '%s', not active, cordoned or draining",
                         name);
    CS_TRY(cs_obj_u64(o, "drain_deadline", true, UINT64_MAX, &out->drain_deadline, err));
    return cs_obj_u64(o, "version", true, UINT64_MAX, &out->version, err);
}
