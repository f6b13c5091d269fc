/* msg.c — references, the small replies and the error reply (see msg.h). */
#include "proto/msg.h"

#include <string.h>

#include "proto/proto.h"

bool cs_obj_str_is(const msgpack_object *v, const char *s)
{
    size_t n = strlen(s);
    return v->type == MSGPACK_OBJECT_STR && v->via.str.size == n && !memcmp(v->via.str.ptr, s, n);
}

int cs_pack_kv_ref(msgpack_packer *pk, const char *key, const cs_ref *r)
{
    if (r->name != NULL)
        return cs_pack_kv_str(pk, key, r->name);
    return cs_pack_kv_u64(pk, key, r->id);
}

int cs_obj_ref(const msgpack_object *o, const char *key, const char *what, bool required,
               cs_arena *a, cs_ref *out, bool *present, cs_error *err)
{
    const msgpack_object *v = cs_obj_get(o, key);
    if (present != NULL)
        *present = v != NULL;
    *out = cs_ref_id(0);
    if (v == NULL)
        return required ? cs_errorf(err, CS_EPROTO, "field '%s' is missing", key) : CS_OK;
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        out->id = v->via.u64;
        return CS_OK;
    }
    if (v->type == MSGPACK_OBJECT_STR && v->via.str.size <= CS_NAME_MAX) {
        /* A NUL inside matches no stored name: looked up as the prefix
         * before it, as the server always did with its stack copy. */
        char *s = cs_arena_strndup(a, v->via.str.ptr, v->via.str.size);
        if (s == NULL)
            return cs_errorf(err, CS_ENOMEM, "out of memory");
        out->name = s;
        return CS_OK;
    }
    return cs_errorf(err, CS_EPROTO, "field '%s' is neither a %s id nor a %s name", key, what,
                     what);
}

int cs_ref_req_encode(msgpack_packer *pk, const char *key, const cs_ref *r)
{
    CS_PK(msgpack_pack_map(pk, 1));
    return cs_pack_kv_ref(pk, key, r);
}

int cs_ref_req_decode(const msgpack_object *o, const char *key, const char *what, cs_arena *a,
                      cs_ref *out, cs_error *err)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return cs_errorf(err, CS_EPROTO, "message body is not a map");
    return cs_obj_ref(o, key, what, true, a, out, NULL, err);
}

int cs_ref_job(cs_snap *snap, const cs_ref *r, cs_arena *a, cs_job *out, cs_error *err)
{
    return r->name ? cs_snap_job_by_name(snap, r->name, a, out, err)
                   : cs_snap_job(snap, r->id, a, out, err);
}

int cs_ref_machine(cs_snap *snap, const cs_ref *r, cs_arena *a, cs_machine *out, cs_error *err)
{
    return r->name ? cs_snap_machine_by_name(snap, r->name, a, out, err)
                   : cs_snap_machine(snap, r->id, a, out, err);
}

int cs_version_reply_encode(msgpack_packer *pk, const cs_version_reply *in)
{
    CS_PK(msgpack_pack_map(pk, 1));
    return cs_pack_kv_u64(pk, "version", in->version);
}

int cs_version_reply_decode(const msgpack_object *o, cs_version_reply *out, cs_arena *a,
                            cs_error *err)
{
    (void)a;
    if (o->type != MSGPACK_OBJECT_MAP)
        return cs_errorf(err, CS_EPROTO, "reply is not a map");
    return cs_obj_u64(o, "version", true, UINT64_MAX, &out->version, err);
}

int cs_id_reply_encode(msgpack_packer *pk, const cs_id_reply *in)
{
    CS_PK(msgpack_pack_map(pk, 2));
    CS_TRY(cs_pack_kv_u64(pk, "id", in->id));
    return cs_pack_kv_u64(pk, "version", in->version);
}

int cs_id_reply_decode(const msgpack_object *o, cs_id_reply *out, cs_arena *a, cs_error *err)
{
    (void)a;
    if (o->type != MSGPACK_OBJECT_MAP)
        return cs_errorf(err, CS_EPROTO, "reply is not a map");
    CS_TRY(cs_obj_u64(o, "id", true, UINT64_MAX, &out->id, err));
    return cs_obj_u64(o, "version", true, UINT64_MAX, &out->version, err);
}

int cs_error_reply_encode(msgpack_packer *pk, const cs_error_reply *in)
{
    CS_PK(msgpack_pack_map(pk, 3));
    CS_TRY(cs_pack_kv_i64(pk, "code", in->code));
    CS_TRY(cs_pack_kv_str(pk, "error", in->error ? in->error : cs_strerror(in->code)));
    return cs_pack_kv_str(pk, "message", in->message ? in->message : "");
}

int cs_error_reply_decode(const msgpack_object *o, cs_error_reply *out, cs_arena *a,
                          cs_error *err)
{
    (void)a;
    (void)err;
    int64_t code = CS_EPROTO;
    cs_error ignore;
    if (cs_obj_i64(o, "code", false, 1, 1000, &code, &ignore) != CS_OK)
        code = CS_EPROTO;
    const msgpack_object *text = cs_obj_get(o, "message");
    bool str = text != NULL && text->type == MSGPACK_OBJECT_STR;
    *out = (cs_error_reply){(int)code, NULL, str ? text->via.str.ptr : "",
                            str ? text->via.str.size : 0};
    return CS_OK;
}
