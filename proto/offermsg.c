/* offermsg.c — offer.acquire, offer.release, offer.commit (see offermsg.h). */
#include "proto/offermsg.h"

#include <string.h>

#include "proto/proto.h"

static bool res_zero(const cs_res *r) { return r->cpu == 0 && r->mem == 0 && r->disk == 0; }

/* ---- offer.acquire ---------------------------------------------------------------------- */

int cs_offer_acquire_req_encode(msgpack_packer *pk, const cs_offer_acquire_req *in)
{
    bool held = !res_zero(&in->held), wait = in->wait_ms != 0;
    CS_PK(msgpack_pack_map(pk, 1u + held + wait));
    CS_TRY(cs_pack_kv_str(pk, "sched", in->sched ? in->sched : ""));
    if (held)
        CS_TRY(cs_pack_kv_res(pk, "held", &in->held));
    if (wait)
        CS_TRY(cs_pack_kv_u64(pk, "wait_ms", in->wait_ms));
    return CS_OK;
}

int cs_offer_acquire_req_decode(const msgpack_object *o, cs_offer_acquire_req *out, cs_arena *a,
                                cs_error *err)
{
    memset(out, 0, sizeof *out);
    if (o->type != MSGPACK_OBJECT_MAP)
        return cs_not_map(err);
    uint64_t wait = 0;
    CS_TRY(cs_obj_str(o, "sched", true, CS_OFFER_SCHED_MAX, a, &out->sched, err));
    CS_TRY(cs_obj_res(o, "held", false, &out->held, err));
    CS_TRY(cs_obj_u64(o, "wait_ms", false, UINT32_MAX, &wait, err));
    if (out->sched[0] == '\0')
        return cs_errorf(err, CS_EINVAL, "field 'sched' is empty: name the scheduler");
    out->wait_ms = (uint32_t)wait;
    return CS_OK;
}

int cs_offer_reply_encode(msgpack_packer *pk, const cs_offer_reply *in)
{
    CS_PK(msgpack_pack_map(pk, 8));
    CS_TRY(cs_pack_kv_bool(pk, "granted", in->granted));
    CS_TRY(cs_pack_kv_u64(pk, "lease", in->lease));
    CS_TRY(cs_pack_kv_u64(pk, "expires_ms", in->expires_ms));
    CS_TRY(cs_pack_kv_u64(pk, "version", in->version));
    CS_TRY(cs_pack_kv_res(pk, "free", &in->free));
    CS_TRY(cs_pack_kv_u64(pk, "machines", in->machines));
    CS_TRY(cs_pack_kv_str(pk, "holder", in->holder ? in->holder : ""));
    return cs_pack_kv_u64(pk, "waiting", in->waiting);
}

int cs_offer_reply_decode(const msgpack_object *o, cs_offer_reply *out, cs_arena *a,
                          cs_error *err)
{
    memset(out, 0, sizeof *out);
    if (o->type != MSGPACK_OBJECT_MAP)
        return cs_errorf(err, CS_EPROTO, "offer reply: not a map");
    uint64_t machines = 0, waiting = 0;
    int rc;
    if ((rc = cs_obj_bool(o, "granted", true, &out->granted, err)) ||
        (rc = cs_obj_u64(o, "lease", true, UINT64_MAX, &out->lease, err)) ||
        (rc = cs_obj_u64(o, "expires_ms", true, UINT64_MAX, &out->expires_ms, err)) ||
        (rc = cs_obj_u64(o, "version", true, UINT64_MAX, &out->version, err)) ||
        (rc = cs_obj_res(o, "free", true, &out->free, err)) ||
        (rc = cs_obj_u64(o, "machines", true, UINT32_MAX, &machines, err)) ||
        (rc = cs_obj_str(o, "holder", true, CS_OFFER_SCHED_MAX, a, &out->holder, err)) ||
        (rc = cs_obj_u64(o, "waiting", true, UINT32_MAX, &waiting, err)))
        return cs_error_wrap(err, rc, "offer reply");
    if (out->granted && out->lease == 0)
        return cs_errorf(err, CS_EPROTO, "offer reply: granted with lease 0");
    out->machines = (uint32_t)machines;
    out->waiting = (uint32_t)waiting;
    return CS_OK;
}

/* ---- offer.release ---------------------------------------------------------------------- */

int cs_offer_release_req_encode(msgpack_packer *pk, const cs_offer_release_req *in)
{
    CS_PK(msgpack_pack_map(pk, 1));
    return cs_pack_kv_u64(pk, "lease", in->lease);
}

static int lease_field(const msgpack_object *o, uint64_t *lease, cs_error *err)
{
    CS_TRY(cs_obj_u64(o, "lease", true, UINT64_MAX, lease, err));
    if (*lease == 0)
        return cs_errorf(err, CS_EINVAL, "field 'lease' is 0: no lease has that id");
    return CS_OK;
}

int cs_offer_release_req_decode(const msgpack_object *o, cs_offer_release_req *out, cs_arena *a,
                                cs_error *err)
{
    (void)a;
    if (o->type != MSGPACK_OBJECT_MAP)
        return cs_not_map(err);
    return lease_field(o, &out->lease, err);
}

/* ---- offer.commit ----------------------------------------------------------------------- */

int cs_offer_commit_req_encode(msgpack_sbuffer *buf, uint64_t lease, const cs_txn *t)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
    CS_PK(msgpack_pack_map(&pk, 2));
    CS_TRY(cs_pack_kv_u64(&pk, "lease", lease));
    CS_TRY(cs_pack_str(&pk, "txn"));
    /* The transaction's own codec appends the array: the bytes `commit`
     * sends, and the log stores. */
    return cs_txn_encode(t, buf);
}

int cs_offer_commit_req_decode(const msgpack_object *o, uint64_t *lease, cs_txn *t,
                               cs_error *err)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return cs_not_map(err);
    CS_TRY(lease_field(o, lease, err));
    const msgpack_object *x = cs_obj_get(o, "txn");
    if (x == NULL)
        return cs_errorf(err, CS_EPROTO, "field 'txn' is missing");
    int rc = cs_txn_from_object(x, t, err);
    return rc == CS_OK ? CS_OK : cs_error_wrap(err, rc, "field 'txn'");
}
