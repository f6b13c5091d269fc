/* jobmsg.h — the codecs of the writes that change jobs and machines on an
 * operator's or a scheduler's word (docs/protocol.md §5.3 job.submit, §5.4
 * job.kill, §5.5 job.scale, §5.6 job.update, §5.16 job.note, §5.18
 * job.surge, §5.19 job.end, §5.20 machine.admin). Conventions: proto/msg.h.
 *
 * Each request decoder reads the fields in the order cellstated checked
 * them, so that a request with two faults is refused for the same one.
 * The decoders only read the body: a reference names a job or machine,
 * whose lookup (CS_ENOTFOUND) is the server's, after decoding.
 * Replies: job.submit's is cs_id_reply, machine.admin's its own, every
 * other one cs_version_reply (proto/msg.h).
 */
#ifndef CS_JOBMSG_H
#define CS_JOBMSG_H

#include "proto/msg.h"

/* ---- job.submit (3) ---------------------------------------------------------
 * The job spec map: name, kind, priority, count, resources, ports,
 * constraints, cmd, and options only when not empty (the bytes cellctl and
 * spec/jobspec.c send). Decoded and validated by cs_unpack_job_spec. */
int cs_job_spec_encode(msgpack_packer *pk, const cs_job *spec);
int cs_job_submit_req_encode(msgpack_packer *pk, const cs_job *spec);
int cs_job_submit_req_decode(const msgpack_object *o, cs_job *out, cs_arena *a, cs_error *err);

/* ---- job.kill (4), job.end (20): {"job": ref} -------------------------------- */
typedef struct cs_job_ref_req {
    cs_ref job;
} cs_job_ref_req;
int cs_job_ref_req_encode(msgpack_packer *pk, const cs_job_ref_req *in);
int cs_job_ref_req_decode(const msgpack_object *o, cs_job_ref_req *out, cs_arena *a,
                          cs_error *err);

/* ---- job.scale (5), job.surge (19): {"job": ref, key: n} ----------------------
 * n ≤ 1048576 (CS_TASK_INDEX_MAX + 1); `count` for job.scale, `surge` for
 * job.surge. Encoded as job then the number; decoded number first. */
typedef struct cs_job_count_req {
    cs_ref job;
    uint32_t n;
} cs_job_count_req;
int cs_job_scale_req_encode(msgpack_packer *pk, const cs_job_count_req *in);
int cs_job_scale_req_decode(const msgpack_object *o, cs_job_count_req *out, cs_arena *a,
                            cs_error *err);
int cs_job_surge_req_encode(msgpack_packer *pk, const cs_job_count_req *in);
int cs_job_surge_req_decode(const msgpack_object *o, cs_job_count_req *out, cs_arena *a,
                            cs_error *err);

/* ---- job.update (6): {"job": ref, "spec": job spec map} ----------------------
 * Decoded: "field 'spec' is missing" first, then the job, then the spec. */
typedef struct cs_job_update_req {
    cs_ref job;
    cs_job spec; /* encode: borrowed (`spec` fields as cs_job_spec_encode reads them) */
} cs_job_update_req;
int cs_job_update_req_encode(msgpack_packer *pk, const cs_job_update_req *in);
int cs_job_update_req_decode(const msgpack_object *o, cs_job_update_req *out, cs_arena *a,
                             cs_error *err);

/* ---- job.note (17): {"job": ref, "note": str ≤ CS_NOTE_MAX} ------------------ */
typedef struct cs_job_note_req {
    cs_ref job;
    const char *note;
} cs_job_note_req;
int cs_job_note_req_encode(msgpack_packer *pk, const cs_job_note_req *in);
int cs_job_note_req_decode(const msgpack_object *o, cs_job_note_req *out, cs_arena *a,
                           cs_error *err);

/* ---- machine.admin (21) -------------------------------------------------------
 * {"machine": ref, "admin": name, "deadline_ms": uint32 (draining only)}.
 * Decoded admin first ("field 'admin' is 'sleepy', not active, cordoned or
 * draining"), then deadline_ms ("field 'deadline_ms' goes with admin
 * 'draining' only"), then machine. */
typedef struct cs_machine_admin_req {
    cs_ref machine;
    uint8_t admin; /* cs_machine_admin */
    bool has_deadline;
    uint32_t deadline_ms;
} cs_machine_admin_req;
int cs_machine_admin_req_encode(msgpack_packer *pk, const cs_machine_admin_req *in);
int cs_machine_admin_req_decode(const msgpack_object *o, cs_machine_admin_req *out, cs_arena *a,
                                cs_error *err);

/* {"id", "admin": name, "drain_deadline": ms since the epoch (0 = none),
 * "version"} */
typedef struct cs_machine_admin_reply {
    cs_id id;
    uint8_t admin;
    uint64_t drain_deadline;
    uint64_t version;
} cs_machine_admin_reply;
int cs_machine_admin_reply_encode(msgpack_packer *pk, const cs_machine_admin_reply *in);
int cs_machine_admin_reply_decode(const msgpack_object *o, cs_machine_admin_reply *out,
                                  cs_arena *a, cs_error *err);

#endif
