/* fuzz_msg_body.c — every message codec of proto/ (msg.h lists them) on
 * outside bytes: the first input byte picks the decoder (modulo their
 * number, in the order of the table below), the rest is the body. As the
 * server and the agent read a body: the allocation-free bounds check first
 * (cs_mp_unpack, cellstate/mpcheck.h), then the decoder.
 *
 * What a decoder takes it must give back: a body it accepts is encoded
 * again, and that encoding is a fixed point — decoding it and encoding
 * once more gives the same bytes (fz_require_same). A decoder may
 * normalise (sort attributes, drop unknown keys); it may not lose or
 * invent what its encoder writes.
 */
#include <msgpack.h>

#include "cellstate/arena.h"
#include "cellstate/mpcheck.h"
#include "proto/agentmsg.h"
#include "proto/commitmsg.h"
#include "proto/jobmsg.h"
#include "proto/membermsg.h"
#include "proto/msg.h"
#include "proto/offermsg.h"
#include "proto/proto.h"
#include "proto/readmsg.h"
#include "tests/fuzz/fuzz.h"

/* Decode `o` into `out` (a struct of the codec's type, zeroed). */
typedef int (*dec_fn)(const msgpack_object *o, void *out, cs_arena *a, cs_error *err);
/* Encode what dec_fn decoded. NULL: the codec has no encoder of its
 * decoded form (the poll reply's maps stay undecoded). */
typedef int (*enc_fn)(msgpack_packer *pk, const void *in);

/* Adapters: each codec's own types, behind one shape. */
#define ADAPT(name, type, dec, enc)                                                            \
    static int name##_dec(const msgpack_object *o, void *out, cs_arena *a, cs_error *err)     \
    {                                                                                          \
        return dec(o, (type *)out, a, err);                                                    \
    }                                                                                          \
    static int name##_enc(msgpack_packer *pk, const void *in) { return enc(pk, (const type *)in); }

ADAPT(register_req, cs_machine, cs_register_req_decode, cs_register_req_encode)
ADAPT(heartbeat_req, cs_heartbeat_req, cs_heartbeat_req_decode, cs_heartbeat_req_encode)
ADAPT(heartbeat_reply, cs_heartbeat_reply, cs_heartbeat_reply_decode, cs_heartbeat_reply_encode)
ADAPT(poll_req, cs_poll_req, cs_poll_req_decode, cs_poll_req_encode)
ADAPT(report, cs_task_report, cs_report_decode, cs_report_encode)
ADAPT(status_reply, cs_task_status_reply, cs_task_status_reply_decode,
      cs_task_status_reply_encode)
ADAPT(logs_req, cs_logs_req, cs_logs_req_decode, cs_logs_req_encode)
ADAPT(logs_reply, cs_logs_reply, cs_logs_reply_decode, cs_logs_reply_encode)
ADAPT(submit_req, cs_job, cs_job_submit_req_decode, cs_job_submit_req_encode)
ADAPT(job_ref_req, cs_job_ref_req, cs_job_ref_req_decode, cs_job_ref_req_encode)
ADAPT(scale_req, cs_job_count_req, cs_job_scale_req_decode, cs_job_scale_req_encode)
ADAPT(surge_req, cs_job_count_req, cs_job_surge_req_decode, cs_job_surge_req_encode)
ADAPT(update_req, cs_job_update_req, cs_job_update_req_decode, cs_job_update_req_encode)
ADAPT(note_req, cs_job_note_req, cs_job_note_req_decode, cs_job_note_req_encode)
ADAPT(admin_req, cs_machine_admin_req, cs_machine_admin_req_decode, cs_machine_admin_req_encode)
ADAPT(admin_reply, cs_machine_admin_reply, cs_machine_admin_reply_decode,
      cs_machine_admin_reply_encode)
ADAPT(commit_reply, cs_commit_reply, cs_commit_reply_decode, cs_commit_reply_encode)
ADAPT(version_reply, cs_version_reply, cs_version_reply_decode, cs_version_reply_encode)
ADAPT(id_reply, cs_id_reply, cs_id_reply_decode, cs_id_reply_encode)
ADAPT(get_tasks_req, cs_get_tasks_req, cs_get_tasks_req_decode, cs_get_tasks_req_encode)
ADAPT(machines_reply, cs_machines_reply, cs_machines_reply_decode, cs_machines_reply_encode)
ADAPT(jobs_reply, cs_jobs_reply, cs_jobs_reply_decode, cs_jobs_reply_encode)
ADAPT(tasks_reply, cs_tasks_reply, cs_tasks_reply_decode, cs_tasks_reply_encode)
ADAPT(get_job_reply, cs_get_job_reply, cs_get_job_reply_decode, cs_get_job_reply_encode)
ADAPT(stats_reply, cs_stats_reply, cs_stats_reply_decode, cs_stats_reply_encode)
ADAPT(members_reply, cs_members_reply, cs_members_reply_decode, cs_members_reply_encode)
ADAPT(member_add_req, cs_member_req, cs_member_add_req_decode, cs_member_add_req_encode)
ADAPT(member_remove_req, cs_member_req, cs_member_remove_req_decode, cs_member_id_req_encode)
ADAPT(member_transfer_req, cs_member_req, cs_member_transfer_req_decode, cs_member_id_req_encode)
ADAPT(index_reply, cs_index_reply, cs_index_reply_decode, cs_index_reply_encode)
ADAPT(offer_acquire_req, cs_offer_acquire_req, cs_offer_acquire_req_decode,
      cs_offer_acquire_req_encode)
ADAPT(offer_reply, cs_offer_reply, cs_offer_reply_decode, cs_offer_reply_encode)
ADAPT(offer_release_req, cs_offer_release_req, cs_offer_release_req_decode,
      cs_offer_release_req_encode)
ADAPT(audit_req, cs_audit_req, cs_audit_req_decode, cs_audit_req_encode)
ADAPT(audit_reply, cs_audit_reply, cs_audit_reply_decode, cs_audit_reply_encode)

/* task.status: a batch with refused reports has no encoding of its own
 * (the refused ones are not reports), so only a batch read whole is
 * encoded again. */
static int status_req_dec(const msgpack_object *o, void *out, cs_arena *a, cs_error *err)
{
    cs_task_status_req *q = out;
    int rc = cs_task_status_req_decode(o, q, a, err);
    for (uint32_t i = 0; rc == CS_OK && q->batch && i < q->n; i++)
        if (q->codes[i] != CS_OK)
            rc = cs_errorf(err, q->codes[i], "%s", q->errors[i]);
    return rc;
}
static int status_req_enc(msgpack_packer *pk, const void *in)
{
    return cs_task_status_req_encode(pk, in);
}

/* The error reply: lenient by design, so no fixed point to ask of it. */
static int error_reply_dec(const msgpack_object *o, void *out, cs_arena *a, cs_error *err)
{
    return cs_error_reply_decode(o, out, a, err);
}

/* The poll reply as the agent reads it: every full entry's task and job
 * map decoded, as a start would. */
static int poll_reply_dec(const msgpack_object *o, void *out, cs_arena *a, cs_error *err)
{
    cs_poll_reply *r = out;
    int rc = cs_poll_reply_decode(o, r, a, err);
    for (uint32_t i = 0; rc == CS_OK && i < r->ntasks; i++) {
        const cs_poll_entry *e = &r->tasks[i];
        fz_require(e->kind <= CS_POLL_BAD, "poll entry kind");
        fz_require(e->kind != CS_POLL_BAD || e->bad != NULL, "a bad entry says why");
        if (e->kind != CS_POLL_FULL)
            continue;
        fz_require(e->task != NULL && e->task->type == MSGPACK_OBJECT_MAP, "full entry's task");
        fz_require(e->job_index < 0 || (uint32_t)e->job_index < r->njobs, "job index in range");
        cs_task t;
        cs_job j;
        cs_error ignore;
        (void)cs_unpack_task(e->task, a, &t, &ignore);
        if (e->job_map != NULL)
            (void)cs_unpack_job_spec(e->job_map, a, &j, &ignore);
    }
    return rc;
}

static int empty_req_dec(const msgpack_object *o, void *out, cs_arena *a, cs_error *err)
{
    (void)out;
    (void)a;
    return cs_empty_req_decode(o, err);
}

typedef struct codec {
    dec_fn dec;
    enc_fn enc;
} codec;

#define BOTH(name) {name##_dec, name##_enc}
static const codec codecs[] = {
    BOTH(register_req),  BOTH(heartbeat_req),  BOTH(heartbeat_reply), BOTH(poll_req),
    {poll_reply_dec, NULL}, BOTH(report),       BOTH(status_req),      BOTH(status_reply),
    BOTH(logs_req),      BOTH(logs_reply),     BOTH(submit_req),      BOTH(job_ref_req),
    BOTH(scale_req),     BOTH(surge_req),      BOTH(update_req),      BOTH(note_req),
    BOTH(admin_req),     BOTH(admin_reply),    BOTH(commit_reply),    BOTH(version_reply),
    BOTH(id_reply),      BOTH(get_tasks_req),  BOTH(machines_reply),  BOTH(jobs_reply),
    BOTH(tasks_reply),   BOTH(get_job_reply),  BOTH(stats_reply),     {error_reply_dec, NULL},
    {empty_req_dec, NULL},
    /* appended, so that every earlier seed keeps its decoder */
    BOTH(members_reply), BOTH(member_add_req), BOTH(member_remove_req),
    BOTH(member_transfer_req), BOTH(index_reply),
    BOTH(offer_acquire_req), BOTH(offer_reply), BOTH(offer_release_req),
    BOTH(audit_req), BOTH(audit_reply),
};
#define NCODECS (sizeof codecs / sizeof *codecs)

/* Room for the largest decoded struct. */
typedef union decoded {
    cs_machine m;
    cs_job j;
    cs_poll_reply pr;
    cs_stats_reply st;
    cs_get_job_reply gj;
    cs_job_update_req u;
    cs_task_status_req sq;
    cs_commit_reply cr;
    cs_error_reply er;
    cs_members_reply mr;
    cs_member_req mq;
    cs_offer_reply orp;
    cs_audit_req aq;
    cs_audit_reply ar;
} decoded;

/* Unpack body[0..len) through the bounds check and decode it with `c`;
 * on success encode the result into `out`. */
static int decode_encode(const codec *c, const void *body, size_t len, msgpack_sbuffer *out)
{
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, 1024))
        return CS_ENOMEM;
    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};
    msgpack_object o;
    decoded d;
    memset(&d, 0, sizeof d);
    int rc = cs_mp_unpack(body, len, &zone, &o, CS_EPROTO, "body", &err);
    if (rc == CS_OK)
        rc = c->dec(&o, &d, &a, &err);
    if (rc != CS_OK)
        fz_require(err.msg[0] != '\0' || rc == CS_ENOMEM, "a refusal names the problem");
    if (rc == CS_OK && c->enc != NULL) {
        msgpack_packer pk;
        msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
        rc = c->enc(&pk, &d);
        fz_require(rc == CS_OK || rc == CS_ENOMEM, "what was decoded encodes");
    }
    cs_arena_free(&a);
    msgpack_zone_destroy(&zone);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const codec *c = &codecs[data[0] % NCODECS];
    msgpack_sbuffer once, twice;
    msgpack_sbuffer_init(&once);
    msgpack_sbuffer_init(&twice);
    if (decode_encode(c, data + 1, size - 1, &once) == CS_OK && c->enc != NULL) {
        fz_require(decode_encode(c, once.data, once.size, &twice) == CS_OK,
                   "an encoding decodes");
        fz_require_same(&once, &twice, "encode(decode(x)) is a fixed point");
    }
    msgpack_sbuffer_destroy(&once);
    msgpack_sbuffer_destroy(&twice);
    return 0;
}
