/* commitmsg.c — the commit request and reply (see commitmsg.h). */
#include "proto/commitmsg.h"

#include <inttypes.h>
#include <string.h>

#include "proto/proto.h"

int cs_commit_req_encode(msgpack_sbuffer *buf, const cs_txn *t)
{
    return cs_txn_encode(t, buf);
}

int cs_commit_req_decode(const msgpack_object *o, cs_txn *t, cs_arena *a, cs_error *err)
{
    (void)a;
    return cs_txn_from_object(o, t, err);
}

cs_commit_reply cs_commit_reply_of(const cs_txn_result *r)
{
    return (cs_commit_reply){r->version,  r->replayed,  r->committed, r->conflicts,
                             r->claims,   r->releases,  r->preempts,  r->nclaims,
                             r->nreleases, r->npreempts, 0};
}

static int pack_outcomes(msgpack_packer *pk, const char *key, const uint8_t *o, uint32_t n)
{
    CS_TRY(cs_pack_str(pk, key));
    CS_PK(msgpack_pack_array(pk, n));
    for (uint32_t i = 0; i < n; i++)
        CS_PK(msgpack_pack_uint8(pk, o[i]));
    return CS_OK;
}

int cs_commit_reply_encode(msgpack_packer *pk, const cs_commit_reply *in)
{
    bool indexed = in->index != 0;
    CS_PK(msgpack_pack_map(pk, 7u + indexed));
    CS_TRY(cs_pack_kv_u64(pk, "version", in->version));
    CS_TRY(cs_pack_kv_bool(pk, "replayed", in->replayed));
    CS_TRY(cs_pack_kv_u64(pk, "committed", in->committed));
    CS_TRY(cs_pack_kv_u64(pk, "conflicts", in->conflicts));
    CS_TRY(pack_outcomes(pk, "claims", in->claims, in->nclaims));
    CS_TRY(pack_outcomes(pk, "releases", in->releases, in->nreleases));
    CS_TRY(pack_outcomes(pk, "preempts", in->preempts, in->npreempts));
    return indexed ? cs_pack_kv_u64(pk, "index", in->index) : CS_OK;
}

static int read_outcomes(const msgpack_object *o, const char *key, const uint8_t **out,
                         uint32_t *n, cs_arena *a, cs_error *err)
{
    const msgpack_object *l = cs_obj_get(o, key);
    if (l == NULL || l->type != MSGPACK_OBJECT_ARRAY)
        return cs_errorf(err, CS_EPROTO, "commit reply: field '%s' is not an array", key);
    uint8_t *v = cs_arena_alloc(a, (size_t)l->via.array.size + 1);
    if (v == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < l->via.array.size; i++) {
        const msgpack_object *x = &l->via.array.ptr[i];
        if (x->type != MSGPACK_OBJECT_POSITIVE_INTEGER || x->via.u64 >= CS_OUTCOME_COUNT)
            return cs_errorf(err, CS_EPROTO, "commit reply: %s[%" PRIu32 "] is not an outcome",
                             key, i);
        v[i] = (uint8_t)x->via.u64;
    }
    *out = v;
    *n = l->via.array.size;
    return CS_OK;
}

int cs_commit_reply_decode(const msgpack_object *o, cs_commit_reply *out, cs_arena *a,
                           cs_error *err)
{
    memset(out, 0, sizeof *out);
    if (o->type != MSGPACK_OBJECT_MAP)
        return cs_errorf(err, CS_EPROTO, "commit reply: body is not a map");
    uint64_t committed, conflicts;
    int rc;
    if ((rc = cs_obj_u64(o, "version", true, UINT64_MAX, &out->version, err)) ||
        (rc = cs_obj_bool(o, "replayed", true, &out->replayed, err)) ||
        (rc = cs_obj_u64(o, "committed", true, UINT32_MAX, &committed, err)) ||
        (rc = cs_obj_u64(o, "conflicts", true, UINT32_MAX, &conflicts, err)) ||
        (rc = cs_obj_u64(o, "index", false, UINT64_MAX, &out->index, err)))
        return cs_error_wrap(err, rc, "commit reply");
    out->committed = (uint32_t)committed;
    out->conflicts = (uint32_t)conflicts;
    CS_TRY(read_outcomes(o, "claims", &out->claims, &out->nclaims, a, err));
    CS_TRY(read_outcomes(o, "releases", &out->releases, &out->nreleases, a, err));
    return read_outcomes(o, "preempts", &out->preempts, &out->npreempts, a, err);
}

int cs_commit_reply_result(const cs_commit_reply *in, const cs_txn *t, cs_txn_result *r,
                           cs_error *err)
{
    static const char *const lists[3] = {"claims", "releases", "preempts"};
    const uint8_t *got[3] = {in->claims, in->releases, in->preempts};
    uint32_t have[3] = {in->nclaims, in->nreleases, in->npreempts};
    uint32_t want[3] = {t->nclaims, t->nreleases, t->npreempts};
    for (int k = 0; k < 3; k++)
        if (have[k] != want[k])
            return cs_errorf(err, CS_EPROTO, "commit reply: '%s' is not %" PRIu32 " outcomes",
                             lists[k], want[k]);
    if (cs_txn_result_prepare(r, t) != CS_OK)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    uint8_t *dst[3] = {r->claims, r->releases, r->preempts};
    for (int k = 0; k < 3; k++)
        if (want[k] > 0)
            memcpy(dst[k], got[k], want[k]);
    r->version = in->version;
    r->replayed = in->replayed;
    for (uint32_t i = 0; i < t->nclaims; i++) {
        if (r->claims[i] == CS_COMMITTED)
            r->committed++;
        else if (r->claims[i] != CS_ABORTED_GANG)
            r->conflicts++;
    }
    return CS_OK;
}
