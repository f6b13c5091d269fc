/* command.c — applying a logged command (see command.h). */
#include "txn/command.h"

#include <msgpack.h>
#include <stdbool.h>
#include <string.h>

#include "cellstate/mpcheck.h"
#include "txn/commit.h"
#include "txn/ops.h"

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

static int apply_task_status(cs_store *s, const void *cmd, size_t len, cs_arena *a, cs_error *err)
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
            cs_task_report r = {id, (uint32_t)attempt, (uint8_t)state, (int32_t)code, NULL,
                                (uint8_t)health};
            r.reason = cs_arena_strndup(a, f[4].via.str.ptr, f[4].via.str.size);
            rc = r.reason ? cs_op_task_report(s, &r, NULL, err)
                          : cs_errorf(err, CS_ENOMEM, "out of memory");
        }
    }
    msgpack_zone_destroy(&zone);
    return rc;
}

static int apply_job_note(cs_store *s, const void *cmd, size_t len, cs_arena *a, cs_error *err)
{
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, 256))
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    const msgpack_object *f;
    uint64_t id = 0;
    int rc = decode_array(cmd, len, 2, &zone, &f, err);
    if (rc == CS_OK && (!u64_at(&f[0], UINT64_MAX, &id) || f[1].type != MSGPACK_OBJECT_STR ||
                        memchr(f[1].via.str.ptr, '\0', f[1].via.str.size) != NULL))
        rc = cs_errorf(err, CS_ECORRUPT, "logged job note is corrupt");
    if (rc == CS_OK) {
        char *note = cs_arena_strndup(a, f[1].via.str.ptr, f[1].via.str.size);
        rc = note ? cs_op_job_note(s, id, note, NULL, err)
                  : cs_errorf(err, CS_ENOMEM, "out of memory");
    }
    msgpack_zone_destroy(&zone);
    return rc;
}

/* job-scale, job-surge ([id, n]) and job-update ([id, job record]). */
static int apply_job_scale_or_update(cs_store *s, uint8_t kind, const void *cmd, size_t len,
                                     cs_arena *a, cs_error *err)
{
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, 256))
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    const msgpack_object *f;
    uint64_t id = 0, count = 0;
    int rc = decode_array(cmd, len, 2, &zone, &f, err);
    if (rc == CS_OK && !u64_at(&f[0], UINT64_MAX, &id))
        rc = cs_errorf(err, CS_ECORRUPT, "logged %s is corrupt", cs_cmd_name(kind));
    if (rc == CS_OK && kind != CS_CMD_JOB_UPDATE) {
        if (!u64_at(&f[1], UINT32_MAX, &count))
            rc = cs_errorf(err, CS_ECORRUPT, "logged %s is corrupt", cs_cmd_name(kind));
        else if (kind == CS_CMD_JOB_SCALE)
            rc = cs_op_job_scale(s, id, (uint32_t)count, NULL, err);
        else
            rc = cs_op_job_surge(s, id, (uint32_t)count, NULL, err);
    } else if (rc == CS_OK) {
        cs_job j;
        if (f[1].type != MSGPACK_OBJECT_BIN)
            rc = cs_errorf(err, CS_ECORRUPT, "logged job update is corrupt");
        else if ((rc = cs_job_decode(f[1].via.bin.ptr, f[1].via.bin.size, a, &j, err)) == CS_OK)
            rc = cs_op_job_update(s, id, &j, NULL, err);
    }
    msgpack_zone_destroy(&zone);
    return rc;
}

/* job-kill and job-end: [id, ended]. */
static int apply_job_end(cs_store *s, uint8_t kind, const void *cmd, size_t len, cs_error *err)
{
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, 256))
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    const msgpack_object *f;
    uint64_t id = 0, ended = 0;
    int rc = decode_array(cmd, len, 2, &zone, &f, err);
    if (rc == CS_OK && (!u64_at(&f[0], UINT64_MAX, &id) || !u64_at(&f[1], UINT64_MAX, &ended)))
        rc = cs_errorf(err, CS_ECORRUPT, "logged %s is corrupt", cs_cmd_name(kind));
    if (rc == CS_OK)
        rc = kind == CS_CMD_JOB_KILL ? cs_op_job_kill(s, id, ended, NULL, err)
                                     : cs_op_job_end(s, id, ended, NULL, err);
    msgpack_zone_destroy(&zone);
    return rc;
}

/* machine-admin: [id, admin, deadline]. */
static int apply_machine_admin(cs_store *s, const void *cmd, size_t len, cs_error *err)
{
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, 256))
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    const msgpack_object *f;
    uint64_t id = 0, admin = 0, deadline = 0;
    int rc = decode_array(cmd, len, 3, &zone, &f, err);
    if (rc == CS_OK && (!u64_at(&f[0], UINT64_MAX, &id) || !u64_at(&f[1], UINT8_MAX, &admin) ||
                        !u64_at(&f[2], UINT64_MAX, &deadline)))
        rc = cs_errorf(err, CS_ECORRUPT, "logged machine admin is corrupt");
    if (rc == CS_OK)
        rc = cs_op_machine_admin(s, id, (uint8_t)admin, deadline, NULL, err);
    msgpack_zone_destroy(&zone);
    return rc;
}

/* job-gc: [id, id, ...]. */
static int apply_job_gc(cs_store *s, const void *cmd, size_t len, cs_arena *a, cs_error *err)
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
    if (rc == CS_OK)
        rc = cs_op_job_gc(s, ids, o.via.array.size, NULL, err);
    msgpack_zone_destroy(&zone);
    return rc;
}

int cs_command_apply(cs_store *s, uint8_t kind, const void *cmd, size_t len, cs_error *err)
{
    cs_arena a;
    cs_arena_init(&a);
    int rc;
    uint64_t id = 0;
    uint8_t extra = 0;
    switch (kind) {
    case CS_CMD_MACHINE_PUT: {
        cs_machine m;
        if ((rc = cs_machine_decode(cmd, len, &a, &m, err)) == CS_OK)
            rc = cs_op_machine_put(s, &m, NULL, NULL, err);
        break;
    }
    case CS_CMD_MACHINE_STATE:
        if ((rc = decode_ids(cmd, len, 2, &id, &extra, err)) == CS_OK)
            rc = cs_op_machine_state(s, id, extra, NULL, err);
        break;
    case CS_CMD_JOB_SUBMIT: {
        cs_job j;
        if ((rc = cs_job_decode(cmd, len, &a, &j, err)) == CS_OK)
            rc = cs_op_job_submit(s, &j, NULL, NULL, err);
        break;
    }
    case CS_CMD_JOB_KILL:
    case CS_CMD_JOB_END:
        rc = apply_job_end(s, kind, cmd, len, err);
        break;
    case CS_CMD_JOB_GC:
        rc = apply_job_gc(s, cmd, len, &a, err);
        break;
    case CS_CMD_TXN: {
        cs_txn t;
        cs_txn_init(&t, 0, 0, 0, 0, 0);
        cs_txn_result r;
        cs_txn_result_init(&r);
        if ((rc = cs_txn_decode(cmd, len, &t, err)) == CS_OK)
            rc = cs_commit(s, &t, &r, err);
        cs_txn_result_free(&r);
        cs_txn_free(&t);
        break;
    }
    case CS_CMD_TASK_STATUS:
        rc = apply_task_status(s, cmd, len, &a, err);
        break;
    case CS_CMD_JOB_SCALE:
    case CS_CMD_JOB_SURGE:
    case CS_CMD_JOB_UPDATE:
        rc = apply_job_scale_or_update(s, kind, cmd, len, &a, err);
        break;
    case CS_CMD_JOB_NOTE:
        rc = apply_job_note(s, cmd, len, &a, err);
        break;
    case CS_CMD_MACHINE_ADMIN:
        rc = apply_machine_admin(s, cmd, len, err);
        break;
    case CS_CMD_DRAIN_DEADLINE:
        if ((rc = decode_ids(cmd, len, 1, &id, NULL, err)) == CS_OK)
            rc = cs_op_machine_drain_deadline(s, id, NULL, err);
        break;
    default:
        rc = cs_errorf(err, CS_ECORRUPT, "unknown logged command kind %u", kind);
    }
    cs_arena_free(&a);
    if (rc != CS_OK)
        cs_error_wrap(err, rc, "applying %s", cs_cmd_name(kind));
    return rc;
}
