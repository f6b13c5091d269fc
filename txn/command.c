/* command.c — the state machine: building commands, decoding them, and
 * applying one (see command.h). */
#include "txn/command.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cellstate/mpcheck.h"
#include "cellstate/vec.h"
#include "txn/apply.h"

const char *cs_cmd_name(uint8_t kind)
{
    switch (kind) {
    case CS_CMD_MACHINE_PUT:
        return "machine-put";
    case CS_CMD_MACHINE_STATE:
        return "machine-state";
    case CS_CMD_JOB_SUBMIT:
        return "job-submit";
    case CS_CMD_JOB_KILL:
        return "job-kill";
    case CS_CMD_TXN:
        return "transaction";
    case CS_CMD_TASK_STATUS:
        return "task-status";
    case CS_CMD_JOB_SCALE:
        return "job-scale";
    case CS_CMD_JOB_UPDATE:
        return "job-update";
    case CS_CMD_JOB_NOTE:
        return "job-note";
    case CS_CMD_JOB_SURGE:
        return "job-surge";
    case CS_CMD_JOB_END:
        return "job-end";
    case CS_CMD_JOB_GC:
        return "job-gc";
    case CS_CMD_MACHINE_ADMIN:
        return "machine-admin";
    case CS_CMD_DRAIN_DEADLINE:
        return "drain-deadline";
    default:
        return "unknown";
    }
}

bool cs_cmd_only_marks_running(void *ctx, uint8_t kind, const void *cmd, size_t len)
{
    (void)ctx;
    if (kind != CS_CMD_TASK_STATUS)
        return false;
    /* [task, attempt, state, exit_code, reason, health], as cs_op_task_report
     * logs it: read in place, the sync walks one per report. */
    cs_mp_cur c;
    cs_mp_cur_init(&c, cmd, len);
    uint32_t n, rlen;
    uint64_t task, attempt, state, health;
    int64_t code;
    const char *reason;
    return cs_mp_read_array(&c, &n) == CS_OK && n == 6 && cs_mp_read_uint(&c, &task) == CS_OK &&
           cs_mp_read_uint(&c, &attempt) == CS_OK && cs_mp_read_uint(&c, &state) == CS_OK &&
           cs_mp_read_int(&c, &code) == CS_OK && cs_mp_read_str(&c, &reason, &rlen) == CS_OK &&
           cs_mp_read_uint(&c, &health) == CS_OK && state == CS_TASK_RUNNING &&
           health == CS_TASK_HEALTH_UNKNOWN;
}

/* [id] or [id, small] as ops.c encodes them. */
static int decode_ids(const void *data, size_t len, uint32_t n, uint64_t *id, uint8_t *extra,
                      cs_error *err)
{
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, 256))
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    msgpack_object o;
    int rc = CS_OK;
    if (cs_mp_unpack(data, len, &zone, &o, CS_ECORRUPT, "logged command", NULL) != CS_OK ||
        o.type != MSGPACK_OBJECT_ARRAY || o.via.array.size != n ||
        o.via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        (n == 2 && (o.via.array.ptr[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
                    o.via.array.ptr[1].via.u64 > UINT8_MAX)))
        rc = cs_errorf(err, CS_ECORRUPT, "logged command is corrupt");
    if (rc == CS_OK) {
        *id = o.via.array.ptr[0].via.u64;
        if (n == 2)
            *extra = (uint8_t)o.via.array.ptr[1].via.u64;
    }
    msgpack_zone_destroy(&zone);
    return rc;
}

/* The array of `n` elements a command of ops.c is encoded as. The objects
 * live in `zone`. */
static int decode_array(const void *data, size_t len, uint32_t n, msgpack_zone *zone,
                        const msgpack_object **out, cs_error *err)
{
    msgpack_object o;
    if (cs_mp_unpack(data, len, zone, &o, CS_ECORRUPT, "logged command", err) != CS_OK ||
        o.type != MSGPACK_OBJECT_ARRAY || o.via.array.size != n)
        return cs_errorf(err, CS_ECORRUPT, "logged command is corrupt");
    for (uint32_t i = 0; i < n; i++) {
        msgpack_object_type t = o.via.array.ptr[i].type;
        /* Every field is an unsigned integer but the exit code (any
         * integer), the reason and the note (strings) and the job spec
         * (bytes). */
        if (t != MSGPACK_OBJECT_POSITIVE_INTEGER && t != MSGPACK_OBJECT_NEGATIVE_INTEGER &&
            t != MSGPACK_OBJECT_STR && t != MSGPACK_OBJECT_BIN)
            return cs_errorf(err, CS_ECORRUPT, "logged command is corrupt");
    }
    *out = o.via.array.ptr;
    return CS_OK;
}

static bool u64_at(const msgpack_object *f, uint64_t max, uint64_t *out)
{
    if (f->type != MSGPACK_OBJECT_POSITIVE_INTEGER || f->via.u64 > max)
        return false;
    *out = f->via.u64;
    return true;
}

bool cs_command_refusal(int code)
{
    return code == CS_EINVAL || code == CS_ENOTFOUND || code == CS_EEXIST || code == CS_ESTATE;
}

/* ---- results ---------------------------------------------------------------- */

void cs_result_init(cs_result *r)
{
    memset(r, 0, sizeof *r);
    cs_txn_result_init(&r->txn);
}

void cs_result_free(cs_result *r)
{
    cs_txn_result_free(&r->txn);
    free(r->machines);
    memset(r, 0, sizeof *r);
}

/* A copy of n bytes of `src` into *dst (freed first): NULL stays NULL. */
static int copy_bytes(void **dst, const void *src, size_t n)
{
    free(*dst);
    *dst = NULL;
    if (src == NULL || n == 0)
        return CS_OK;
    if ((*dst = malloc(n)) == NULL)
        return CS_ENOMEM;
    memcpy(*dst, src, n);
    return CS_OK;
}

int cs_result_copy(cs_result *dst, const cs_result *src, cs_error *err)
{
    cs_result_free(dst);
    cs_result_init(dst);
    cs_result c = *src;
    c.machines = NULL;
    c.capmachines = 0;
    c.txn.claims = c.txn.releases = c.txn.preempts = NULL;
    *dst = c;
    const cs_txn_result *t = &src->txn;
    if (copy_bytes((void **)&dst->machines, src->machines, src->nmachines * sizeof(cs_id)) ||
        copy_bytes((void **)&dst->txn.claims, t->claims, t->nclaims) ||
        copy_bytes((void **)&dst->txn.releases, t->releases, t->nreleases) ||
        copy_bytes((void **)&dst->txn.preempts, t->preempts, t->npreempts)) {
        cs_result_free(dst);
        cs_result_init(dst);
        return cs_errorf(err, CS_ENOMEM, "result: out of memory");
    }
    dst->capmachines = src->nmachines;
    return CS_OK;
}

int cs_result_error(const cs_result *r, cs_error *err)
{
    if (r->status != CS_OK && err != NULL) {
        err->code = r->status;
        memcpy(err->msg, r->message, sizeof err->msg);
    }
    return r->status;
}

/* Everything but what a transaction's outcomes and the machines' array
 * hold, which the next apply reuses. */
static void result_reset(cs_result *r, uint8_t kind)
{
    r->kind = kind;
    r->status = CS_OK;
    r->message[0] = '\0';
    r->version = 0;
    r->logged = false;
    r->id = 0;
    r->nmachines = 0;
    r->txn.version = 0;
    r->txn.replayed = false;
    r->txn.nclaims = r->txn.nreleases = r->txn.npreempts = 0;
    r->txn.committed = r->txn.conflicts = 0;
}

/* The machines `w` has changed (ascending, unique) into r->machines. */
static int note_machines(cs_wtxn *w, cs_result *r, cs_error *err)
{
    size_t n;
    const cs_id *ids = cs_wtxn_touched(w, CS_KIND_MACHINE, &n);
    r->nmachines = 0;
    if (n == 0)
        return CS_OK;
    cs_id *v = cs_vec_grow(r->machines, &r->capmachines, n, sizeof *v, 8);
    if (v == NULL)
        return cs_errorf(err, CS_ENOMEM, "result: out of memory");
    r->machines = v;
    memcpy(v, ids, n * sizeof *v);
    r->nmachines = n;
    return CS_OK;
}

/* ---- building commands --------------------------------------------------------- */

static void command_init(cs_command *c, uint8_t kind)
{
    memset(c, 0, sizeof *c);
    c->kind = kind;
    msgpack_sbuffer_init(&c->bytes);
    cs_arena_init(&c->arena);
}

void cs_command_free(cs_command *c)
{
    msgpack_sbuffer_destroy(&c->bytes);
    cs_arena_free(&c->arena);
}

static int oom(cs_command *c, cs_error *err)
{
    return cs_errorf(err, CS_ENOMEM, "%s: out of memory", cs_cmd_name(c->kind));
}

/* A record read back from its encoding failed to decode: the record cannot
 * be a command. Its validation names the problem best when it sees it. */
static int not_encodable(int rc, const cs_error *derr, int valid, cs_error *err)
{
    if (rc == CS_ENOMEM)
        return cs_errorf(err, CS_ENOMEM, "%s", derr->msg);
    if (valid != CS_OK)
        return valid;
    return cs_errorf(err, CS_EINVAL, "%s", derr->msg);
}

int cs_cmd_machine_put(cs_command *c, const cs_machine *spec, cs_error *err)
{
    command_init(c, CS_CMD_MACHINE_PUT);
    if (cs_machine_encode(spec, &c->bytes) != CS_OK)
        return oom(c, err);
    cs_error derr;
    int rc = cs_machine_decode(c->bytes.data, c->bytes.size, &c->arena, &c->machine, &derr);
    if (rc != CS_OK)
        return not_encodable(rc, &derr, cs_machine_validate(spec, err), err);
    c->args.machine = &c->machine;
    return CS_OK;
}

/* [id] or [id, small]. */
static int build_ids(cs_command *c, cs_id id, int extra, cs_error *err)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, &c->bytes, msgpack_sbuffer_write);
    if (msgpack_pack_array(&pk, extra >= 0 ? 2 : 1) || msgpack_pack_uint64(&pk, id) ||
        (extra >= 0 && msgpack_pack_uint8(&pk, (uint8_t)extra)))
        return oom(c, err);
    c->args.id = id;
    c->args.n = extra >= 0 ? (uint64_t)extra : 0;
    return CS_OK;
}

int cs_cmd_machine_state(cs_command *c, cs_id id, uint8_t state, cs_error *err)
{
    command_init(c, CS_CMD_MACHINE_STATE);
    return build_ids(c, id, state, err);
}

int cs_cmd_drain_deadline(cs_command *c, cs_id id, cs_error *err)
{
    command_init(c, CS_CMD_DRAIN_DEADLINE);
    return build_ids(c, id, -1, err);
}

int cs_cmd_machine_admin(cs_command *c, cs_id id, uint8_t admin, uint64_t deadline,
                         cs_error *err)
{
    command_init(c, CS_CMD_MACHINE_ADMIN);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &c->bytes, msgpack_sbuffer_write);
    if (msgpack_pack_array(&pk, 3) || msgpack_pack_uint64(&pk, id) ||
        msgpack_pack_uint8(&pk, admin) || msgpack_pack_uint64(&pk, deadline))
        return oom(c, err);
    c->args.id = id;
    c->args.n = admin;
    c->args.deadline = deadline;
    return CS_OK;
}

int cs_cmd_job_submit(cs_command *c, const cs_job *spec, cs_error *err)
{
    command_init(c, CS_CMD_JOB_SUBMIT);
    if (cs_job_encode(spec, &c->bytes) != CS_OK)
        return oom(c, err);
    cs_error derr;
    int rc = cs_job_decode(c->bytes.data, c->bytes.size, &c->arena, &c->job, &derr);
    if (rc != CS_OK)
        return not_encodable(rc, &derr, cs_job_validate(spec, err), err);
    c->args.job = &c->job;
    return CS_OK;
}

/* [id, n]: job-kill and job-end (n = ended), job-scale (count), job-surge. */
static int build_job_n(cs_command *c, uint8_t kind, cs_id id, uint64_t n, cs_error *err)
{
    command_init(c, kind);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &c->bytes, msgpack_sbuffer_write);
    if (msgpack_pack_array(&pk, 2) || msgpack_pack_uint64(&pk, id) || msgpack_pack_uint64(&pk, n))
        return oom(c, err);
    c->args.id = id;
    c->args.n = n;
    return CS_OK;
}

int cs_cmd_job_kill(cs_command *c, cs_id id, uint64_t ended, cs_error *err)
{
    return build_job_n(c, CS_CMD_JOB_KILL, id, ended, err);
}

int cs_cmd_job_end(cs_command *c, cs_id id, uint64_t ended, cs_error *err)
{
    return build_job_n(c, CS_CMD_JOB_END, id, ended, err);
}

int cs_cmd_job_scale(cs_command *c, cs_id id, uint32_t count, cs_error *err)
{
    return build_job_n(c, CS_CMD_JOB_SCALE, id, count, err);
}

int cs_cmd_job_surge(cs_command *c, cs_id id, uint32_t surge, cs_error *err)
{
    return build_job_n(c, CS_CMD_JOB_SURGE, id, surge, err);
}

int cs_cmd_job_gc(cs_command *c, const cs_id *ids, size_t n, cs_error *err)
{
    command_init(c, CS_CMD_JOB_GC);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &c->bytes, msgpack_sbuffer_write);
    if (n > UINT32_MAX || msgpack_pack_array(&pk, (uint32_t)n))
        return oom(c, err);
    for (size_t i = 0; i < n; i++)
        if (msgpack_pack_uint64(&pk, ids[i]))
            return oom(c, err);
    c->args.ids = ids;
    c->args.nids = n;
    return CS_OK;
}

int cs_cmd_job_update(cs_command *c, cs_id id, const cs_job *spec, cs_error *err)
{
    command_init(c, CS_CMD_JOB_UPDATE);
    msgpack_sbuffer rec;
    msgpack_sbuffer_init(&rec);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &c->bytes, msgpack_sbuffer_write);
    int rc = CS_OK;
    if (cs_job_encode(spec, &rec) != CS_OK || msgpack_pack_array(&pk, 2) ||
        msgpack_pack_uint64(&pk, id) || msgpack_pack_bin(&pk, rec.size) ||
        msgpack_pack_bin_body(&pk, rec.data, rec.size))
        rc = oom(c, err);
    cs_error derr;
    if (rc == CS_OK &&
        (rc = cs_job_decode(rec.data, rec.size, &c->arena, &c->job, &derr)) != CS_OK)
        rc = not_encodable(rc, &derr, cs_job_validate(spec, err), err);
    msgpack_sbuffer_destroy(&rec);
    c->args.id = id;
    c->args.job = &c->job;
    return rc;
}

int cs_cmd_job_note(cs_command *c, cs_id id, const char *note, cs_error *err)
{
    command_init(c, CS_CMD_JOB_NOTE);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &c->bytes, msgpack_sbuffer_write);
    note = note ? note : "";
    if (msgpack_pack_array(&pk, 2) || msgpack_pack_uint64(&pk, id) ||
        cs_pack_str(&pk, note) != CS_OK)
        return oom(c, err);
    c->args.id = id;
    if ((c->args.note = cs_arena_strndup(&c->arena, note, strlen(note))) == NULL)
        return oom(c, err);
    return CS_OK;
}

int cs_cmd_task_report(cs_command *c, const cs_task_report *r, cs_error *err)
{
    command_init(c, CS_CMD_TASK_STATUS);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &c->bytes, msgpack_sbuffer_write);
    size_t rlen = r->reason ? strlen(r->reason) : 0;
    if (msgpack_pack_array(&pk, 6) || msgpack_pack_uint64(&pk, r->task) ||
        msgpack_pack_uint32(&pk, r->attempt) || msgpack_pack_uint8(&pk, r->state) ||
        msgpack_pack_int32(&pk, r->exit_code) || msgpack_pack_str(&pk, rlen) ||
        (rlen && msgpack_pack_str_body(&pk, r->reason, rlen)) ||
        msgpack_pack_uint8(&pk, r->health))
        return oom(c, err);
    c->args.report = *r;
    if ((c->args.report.reason = cs_arena_strndup(&c->arena, r->reason ? r->reason : "", rlen)) ==
        NULL)
        return oom(c, err);
    return CS_OK;
}

int cs_cmd_txn(cs_command *c, const cs_txn *t, cs_error *err)
{
    command_init(c, CS_CMD_TXN);
    if (cs_txn_encode(t, &c->bytes) != CS_OK)
        return oom(c, err);
    c->args.txn = t;
    return CS_OK;
}

/* ---- decoding logged commands ------------------------------------------------------- */

/* The fields of a logged command, decoded, and the records they point to
 * (whose strings live in the decoder's arena). */
typedef struct decoded {
    cs_cmd_args args;
    cs_machine machine;
    cs_job job;
} decoded;

static int decode_task_status(const void *cmd, size_t len, cs_arena *a, cs_cmd_args *c,
                              cs_error *err)
{
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, 256))
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    const msgpack_object *f;
    uint64_t id = 0, attempt = 0, state = 0, health = 0;
    int rc = decode_array(cmd, len, 6, &zone, &f, err);
    if (rc == CS_OK) {
        int64_t code = f[3].type == MSGPACK_OBJECT_NEGATIVE_INTEGER ? f[3].via.i64
                                                                     : (int64_t)f[3].via.u64;
        if (!u64_at(&f[0], UINT64_MAX, &id) || !u64_at(&f[1], UINT32_MAX, &attempt) ||
            !u64_at(&f[2], UINT8_MAX, &state) || code < INT32_MIN || code > INT32_MAX ||
            f[4].type != MSGPACK_OBJECT_STR || !u64_at(&f[5], UINT8_MAX, &health))
            rc = cs_errorf(err, CS_ECORRUPT, "logged task status is corrupt");
        else {
            c->report = (cs_task_report){id, (uint32_t)attempt, (uint8_t)state, (int32_t)code,
                                         NULL, (uint8_t)health};
            c->report.reason = cs_arena_strndup(a, f[4].via.str.ptr, f[4].via.str.size);
            if (c->report.reason == NULL)
                rc = cs_errorf(err, CS_ENOMEM, "out of memory");
        }
    }
    msgpack_zone_destroy(&zone);
    return rc;
}

static int decode_job_note(const void *cmd, size_t len, cs_arena *a, cs_cmd_args *c,
                           cs_error *err)
{
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, 256))
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    const msgpack_object *f;
    int rc = decode_array(cmd, len, 2, &zone, &f, err);
    if (rc == CS_OK && (!u64_at(&f[0], UINT64_MAX, &c->id) || f[1].type != MSGPACK_OBJECT_STR ||
                        memchr(f[1].via.str.ptr, '\0', f[1].via.str.size) != NULL))
        rc = cs_errorf(err, CS_ECORRUPT, "logged job note is corrupt");
    if (rc == CS_OK && (c->note = cs_arena_strndup(a, f[1].via.str.ptr, f[1].via.str.size)) == NULL)
        rc = cs_errorf(err, CS_ENOMEM, "out of memory");
    msgpack_zone_destroy(&zone);
    return rc;
}

/* [id, n]: job-kill, job-end (n = ended, any), job-scale, job-surge (n of
 * 32 bits); job-update: [id, job record (bin)]. */
static int decode_job_n(uint8_t kind, const void *cmd, size_t len, cs_arena *a, decoded *d,
                        cs_error *err)
{
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, 256))
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    const msgpack_object *f;
    cs_cmd_args *c = &d->args;
    uint64_t max = kind == CS_CMD_JOB_SCALE || kind == CS_CMD_JOB_SURGE ? UINT32_MAX : UINT64_MAX;
    int rc = decode_array(cmd, len, 2, &zone, &f, err);
    if (rc == CS_OK && !u64_at(&f[0], UINT64_MAX, &c->id))
        rc = cs_errorf(err, CS_ECORRUPT, "logged %s is corrupt", cs_cmd_name(kind));
    if (rc == CS_OK && kind != CS_CMD_JOB_UPDATE && !u64_at(&f[1], max, &c->n))
        rc = cs_errorf(err, CS_ECORRUPT, "logged %s is corrupt", cs_cmd_name(kind));
    if (rc == CS_OK && kind == CS_CMD_JOB_UPDATE) {
        if (f[1].type != MSGPACK_OBJECT_BIN)
            rc = cs_errorf(err, CS_ECORRUPT, "logged job update is corrupt");
        else if ((rc = cs_job_decode(f[1].via.bin.ptr, f[1].via.bin.size, a, &d->job, err)) ==
                 CS_OK)
            c->job = &d->job;
    }
    msgpack_zone_destroy(&zone);
    return rc;
}

/* machine-admin: [id, admin, deadline]. */
static int decode_machine_admin(const void *cmd, size_t len, cs_cmd_args *c, cs_error *err)
{
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, 256))
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    const msgpack_object *f;
    int rc = decode_array(cmd, len, 3, &zone, &f, err);
    if (rc == CS_OK && (!u64_at(&f[0], UINT64_MAX, &c->id) || !u64_at(&f[1], UINT8_MAX, &c->n) ||
                        !u64_at(&f[2], UINT64_MAX, &c->deadline)))
        rc = cs_errorf(err, CS_ECORRUPT, "logged machine admin is corrupt");
    msgpack_zone_destroy(&zone);
    return rc;
}

/* job-gc: [id, id, ...]. */
static int decode_job_gc(const void *cmd, size_t len, cs_arena *a, cs_cmd_args *c, cs_error *err)
{
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, 256))
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    msgpack_object o;
    int rc = cs_mp_unpack(cmd, len, &zone, &o, CS_ECORRUPT, "logged command", err);
    if (rc == CS_OK && o.type != MSGPACK_OBJECT_ARRAY)
        rc = cs_errorf(err, CS_ECORRUPT, "logged job gc is corrupt");
    cs_id *ids = NULL;
    if (rc == CS_OK && o.via.array.size > 0 &&
        (ids = cs_arena_alloc(a, o.via.array.size * sizeof *ids)) == NULL)
        rc = cs_errorf(err, CS_ENOMEM, "out of memory");
    for (uint32_t i = 0; rc == CS_OK && i < o.via.array.size; i++)
        if (!u64_at(&o.via.array.ptr[i], UINT64_MAX, &ids[i]))
            rc = cs_errorf(err, CS_ECORRUPT, "logged job gc is corrupt");
    if (rc == CS_OK) {
        c->ids = ids;
        c->nids = o.via.array.size;
    }
    msgpack_zone_destroy(&zone);
    return rc;
}

/* Decode command `kind` into `d`: strings in `a`, a transaction in `t`
 * (initialised by the caller, who frees it). CS_ECORRUPT (a transaction:
 * CS_EPROTO) for bytes that are not such a command. */
static int decode(uint8_t kind, const void *cmd, size_t len, cs_arena *a, decoded *d, cs_txn *t,
                  cs_error *err)
{
    cs_cmd_args *c = &d->args;
    uint8_t extra = 0;
    int rc;
    switch (kind) {
    case CS_CMD_MACHINE_PUT:
        if ((rc = cs_machine_decode(cmd, len, a, &d->machine, err)) == CS_OK)
            c->machine = &d->machine;
        return rc;
    case CS_CMD_MACHINE_STATE:
        rc = decode_ids(cmd, len, 2, &c->id, &extra, err);
        c->n = extra;
        return rc;
    case CS_CMD_DRAIN_DEADLINE:
        return decode_ids(cmd, len, 1, &c->id, NULL, err);
    case CS_CMD_MACHINE_ADMIN:
        return decode_machine_admin(cmd, len, c, err);
    case CS_CMD_JOB_SUBMIT:
        if ((rc = cs_job_decode(cmd, len, a, &d->job, err)) == CS_OK)
            c->job = &d->job;
        return rc;
    case CS_CMD_JOB_KILL:
    case CS_CMD_JOB_END:
    case CS_CMD_JOB_SCALE:
    case CS_CMD_JOB_SURGE:
    case CS_CMD_JOB_UPDATE:
        return decode_job_n(kind, cmd, len, a, d, err);
    case CS_CMD_JOB_GC:
        return decode_job_gc(cmd, len, a, c, err);
    case CS_CMD_JOB_NOTE:
        return decode_job_note(cmd, len, a, c, err);
    case CS_CMD_TASK_STATUS:
        return decode_task_status(cmd, len, a, c, err);
    case CS_CMD_TXN:
        if ((rc = cs_txn_decode(cmd, len, t, err)) == CS_OK)
            c->txn = t;
        return rc;
    default:
        return cs_errorf(err, CS_ECORRUPT, "unknown logged command kind %u", kind);
    }
}

/* ---- applying ------------------------------------------------------------------------ */

/* A refused command: logged alone, in a transaction of its own that writes
 * nothing else (the one it was judged in may have written before the
 * refusal, and is aborted), under the current version. */
static int log_refusal(cs_store *s, uint8_t kind, const void *cmd, size_t len, int code,
                       const cs_error *judged, cs_result *r, cs_error *err)
{
    result_reset(r, kind);
    cs_wtxn *w;
    int rc = cs_wtxn_begin(s, &w, err);
    if (rc == CS_OK)
        rc = cs_wtxn_commit(w, kind, cmd, len, &r->version, err);
    if (rc != CS_OK)
        return rc;
    r->status = code;
    snprintf(r->message, sizeof r->message, "%s",
             judged->msg[0] != '\0' ? judged->msg : cs_strerror(code));
    r->logged = true;
    return CS_OK;
}

/* The state machine's one step: judge command `kind` (its fields `c`, its
 * bytes cmd[0..len)) in a write transaction and end it — committed with its
 * log entry, dropped for a repeat, or aborted and its refusal logged. */
static int apply(cs_store *s, uint8_t kind, const void *cmd, size_t len, const cs_cmd_args *c,
                 cs_result *r, cs_error *err)
{
    result_reset(r, kind);
    cs_wtxn *w;
    int rc = cs_wtxn_begin(s, &w, err);
    if (rc != CS_OK)
        return rc;
    cs_arena a;
    cs_arena_init(&a);
    cs_error judged = {0};
    rc = kind == CS_CMD_TXN ? cs_commit_apply(w, c->txn, &r->txn, &judged)
                            : cs_apply_op(w, kind, c, &a, &r->id, &judged);
    if (rc == CS_OK) {
        if ((rc = note_machines(w, r, err)) != CS_OK)
            cs_wtxn_abort(w);
        else if ((rc = cs_wtxn_commit(w, kind, cmd, len, &r->version, err)) == CS_OK)
            r->logged = true;
    } else if (rc == CS_UNCHANGED) {
        r->version = cs_snap_version(cs_wtxn_snap(w));
        cs_wtxn_abort(w);
        rc = CS_OK;
    } else {
        cs_wtxn_abort(w);
        if (cs_command_refusal(rc))
            rc = log_refusal(s, kind, cmd, len, rc, &judged, r, err);
        else if (err != NULL)
            *err = judged;
    }
    cs_arena_free(&a);
    return rc;
}

int cs_command_apply(cs_store *s, uint8_t kind, const void *cmd, size_t len, cs_result *res,
                     cs_error *err)
{
    cs_result own;
    cs_result_init(&own);
    cs_result *r = res != NULL ? res : &own;
    cs_arena a;
    cs_arena_init(&a);
    decoded d;
    memset(&d, 0, sizeof d);
    cs_txn t;
    cs_txn_init(&t, 0, 0, 0, 0, 0);
    int rc = decode(kind, cmd, len, &a, &d, &t, err);
    if (rc == CS_OK)
        rc = apply(s, kind, cmd, len, &d.args, r, err);
    else
        cs_error_wrap(err, rc, "applying %s", cs_cmd_name(kind));
    cs_txn_free(&t);
    cs_arena_free(&a);
    cs_result_free(&own);
    return rc;
}

int cs_command_apply_built(cs_store *s, const cs_command *c, cs_result *res, cs_error *err)
{
    cs_result own;
    cs_result_init(&own);
    int rc = apply(s, c->kind, c->bytes.data, c->bytes.size, &c->args, res != NULL ? res : &own,
                   err);
    cs_result_free(&own);
    return rc;
}
