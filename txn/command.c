/* command.c — applying a logged command (see command.h). */
#include "txn/command.h"

#include <msgpack.h>

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
    default:
        return "unknown";
    }
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

int cs_command_apply(cs_store *s, uint8_t kind, const void *cmd, size_t len, cs_error *err)
{
    cs_arena a;
    cs_arena_init(&a);
    int rc;
    uint64_t id;
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
        if ((rc = decode_ids(cmd, len, 1, &id, NULL, err)) == CS_OK)
            rc = cs_op_job_kill(s, id, NULL, err);
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
    default:
        rc = cs_errorf(err, CS_ECORRUPT, "unknown logged command kind %u", kind);
    }
    cs_arena_free(&a);
    if (rc != CS_OK)
        cs_error_wrap(err, rc, "applying %s", cs_cmd_name(kind));
    return rc;
}
