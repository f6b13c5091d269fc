/* membermsg.c — members, members.add, members.remove, members.transfer (see
 * membermsg.h). */
#include "proto/membermsg.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "proto/proto.h"

/* ---- roles ----------------------------------------------------------------------- */

static const char *const role_words[CS_MEMBER_ROLE_COUNT] = {"unavailable", "follower",
                                                             "candidate", "leader"};

const char *cs_role_word(uint8_t role)
{
    return role < CS_MEMBER_ROLE_COUNT ? role_words[role] : "unknown";
}

int cs_role_parse(const char *s, size_t len, uint8_t *out)
{
    for (uint8_t r = 0; r < CS_MEMBER_ROLE_COUNT; r++)
        if (strlen(role_words[r]) == len && memcmp(role_words[r], s, len) == 0) {
            *out = r;
            return CS_OK;
        }
    return CS_EINVAL;
}

/* ---- addresses ------------------------------------------------------------------- */

/* At most this much of a refused address is quoted back. */
#define SHOW 64

static bool host_byte(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_';
}

static bool v6_byte(char c)
{
    return (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || (c >= '0' && c <= '9') ||
           c == ':' || c == '.';
}

/* Whether s[0..len) is HOST:PORT with PORT in 1..65535: a bracketed IPv6
 * address, or a name or IPv4 address without a colon (so that the port's
 * colon is never ambiguous). */
static bool host_port(const char *s, size_t len)
{
    size_t colon;
    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (close == NULL || close == s + 1)
            return false;
        for (const char *p = s + 1; p < close; p++)
            if (!v6_byte(*p))
                return false;
        colon = (size_t)(close - s) + 1;
        if (colon >= len || s[colon] != ':')
            return false;
    } else {
        const char *c = memchr(s, ':', len);
        if (c == NULL || c == s)
            return false;
        colon = (size_t)(c - s);
        for (size_t i = 0; i < colon; i++)
            if (!host_byte(s[i]))
                return false;
    }
    size_t digits = len - colon - 1;
    if (digits == 0 || digits > 5)
        return false;
    unsigned port = 0;
    for (size_t i = colon + 1; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        port = port * 10 + (unsigned)(s[i] - '0');
    }
    return port >= 1 && port <= 65535;
}

/* The checks both addresses share: not empty, under `max` bytes, no space,
 * control byte or NUL (nng would refuse them later, less clearly). */
static int printable(const char *what, const char *s, size_t len, size_t max, cs_error *err)
{
    if (len == 0)
        return cs_errorf(err, CS_EINVAL, "%s is empty", what);
    if (len >= max)
        return cs_errorf(err, CS_EINVAL, "%s is longer than %zu bytes", what, max - 1);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] == 0x7f)
            return cs_errorf(err, CS_EINVAL, "%s contains a space or a control byte", what);
    return CS_OK;
}

static bool has_prefix(const char *s, size_t len, const char *p, size_t *plen)
{
    *plen = strlen(p);
    return len >= *plen && memcmp(s, p, *plen) == 0;
}

int cs_member_listen_check(const char *what, const char *s, size_t len, cs_error *err)
{
    CS_TRY(printable(what, s, len, CS_MEMBER_LISTEN_MAX, err));
    size_t p;
    bool ok;
    if (has_prefix(s, len, "tcp://", &p) || has_prefix(s, len, "tls+tcp://", &p))
        ok = host_port(s + p, len - p);
    else if (has_prefix(s, len, "ipc://", &p))
        ok = len > p;
    else
        ok = false;
    if (!ok)
        return cs_errorf(err, CS_EINVAL,
                         "%s is '%.*s', not tcp://HOST:PORT, tls+tcp://HOST:PORT or ipc://PATH",
                         what, (int)(len > SHOW ? SHOW : len), s);
    return CS_OK;
}

int cs_member_raft_check(const char *what, const char *s, size_t len, cs_error *err)
{
    CS_TRY(printable(what, s, len, CS_MEMBER_RAFT_MAX, err));
    if (!host_port(s, len))
        return cs_errorf(err, CS_EINVAL, "%s is '%.*s', not HOST:PORT", what,
                         (int)(len > SHOW ? SHOW : len), s);
    return CS_OK;
}

/* ---- members: the reply ------------------------------------------------------------ */

static int pack_member(msgpack_packer *pk, const cs_member_info *m)
{
    CS_PK(msgpack_pack_map(pk, 6));
    CS_TRY(cs_pack_kv_u64(pk, "id", m->id));
    CS_TRY(cs_pack_kv_str(pk, "listen", m->listen ? m->listen : ""));
    CS_TRY(cs_pack_kv_str(pk, "raft", m->raft ? m->raft : ""));
    CS_TRY(cs_pack_kv_str(pk, "role", cs_role_word(m->role)));
    CS_TRY(cs_pack_kv_bool(pk, "voter", m->voter));
    return cs_pack_kv_u64(pk, "match", m->match);
}

int cs_members_reply_encode(msgpack_packer *pk, const cs_members_reply *in)
{
    CS_PK(msgpack_pack_map(pk, 9));
    CS_TRY(cs_pack_kv_u64(pk, "id", in->id));
    CS_TRY(cs_pack_kv_str(pk, "role", cs_role_word(in->role)));
    CS_TRY(cs_pack_kv_u64(pk, "term", in->term));
    CS_TRY(cs_pack_kv_u64(pk, "leader", in->leader));
    CS_TRY(cs_pack_kv_u64(pk, "last_index", in->last_index));
    CS_TRY(cs_pack_kv_u64(pk, "commit_index", in->commit_index));
    CS_TRY(cs_pack_kv_u64(pk, "applied_index", in->applied_index));
    CS_TRY(cs_pack_kv_u64(pk, "snapshot_index", in->snapshot_index));
    CS_TRY(cs_pack_str(pk, "members"));
    CS_PK(msgpack_pack_array(pk, in->n));
    for (uint32_t i = 0; i < in->n; i++)
        CS_TRY(pack_member(pk, &in->members[i]));
    return CS_OK;
}

/* The role under `key`: a string naming one of the four. */
static int obj_role(const msgpack_object *o, const char *key, uint8_t *out, cs_error *err)
{
    const msgpack_object *v = cs_obj_get(o, key);
    if (v == NULL)
        return cs_errorf(err, CS_EPROTO, "field '%s' is missing", key);
    if (v->type != MSGPACK_OBJECT_STR)
        return cs_errorf(err, CS_EPROTO, "field '%s' is not a string", key);
    if (cs_role_parse(v->via.str.ptr, v->via.str.size, out) != CS_OK)
        return cs_errorf(err, CS_EINVAL,
                         "field '%s' is '%.*s', not leader, follower, candidate or unavailable",
                         key, (int)(v->via.str.size > 32 ? 32 : v->via.str.size),
                         v->via.str.ptr);
    return CS_OK;
}

/* One member map. The addresses are taken as the server knows them (""
 * when it knows none), only bounded: what a replica reports is shown, not
 * dialled blindly — cellctl checks a listen URL before it asks there. */
static int unpack_member(const msgpack_object *o, cs_member_info *m, cs_arena *a, cs_error *err)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return cs_errorf(err, CS_EPROTO, "not a map");
    CS_TRY(cs_obj_u64(o, "id", true, UINT64_MAX, &m->id, err));
    if (m->id == 0)
        return cs_errorf(err, CS_EINVAL, "field 'id' is 0 (member ids start at 1)");
    CS_TRY(cs_obj_str(o, "listen", true, CS_MEMBER_LISTEN_MAX - 1, a, &m->listen, err));
    CS_TRY(cs_obj_str(o, "raft", true, CS_MEMBER_RAFT_MAX - 1, a, &m->raft, err));
    CS_TRY(obj_role(o, "role", &m->role, err));
    CS_TRY(cs_obj_bool(o, "voter", true, &m->voter, err));
    return cs_obj_u64(o, "match", true, UINT64_MAX, &m->match, err);
}

int cs_members_reply_decode(const msgpack_object *o, cs_members_reply *out, cs_arena *a,
                            cs_error *err)
{
    memset(out, 0, sizeof *out);
    if (o->type != MSGPACK_OBJECT_MAP)
        return cs_errorf(err, CS_EPROTO, "members reply: body is not a map");
    int rc;
    if ((rc = cs_obj_u64(o, "id", true, UINT64_MAX, &out->id, err)) ||
        (rc = obj_role(o, "role", &out->role, err)) ||
        (rc = cs_obj_u64(o, "term", true, UINT64_MAX, &out->term, err)) ||
        (rc = cs_obj_u64(o, "leader", true, UINT64_MAX, &out->leader, err)) ||
        (rc = cs_obj_u64(o, "last_index", true, UINT64_MAX, &out->last_index, err)) ||
        (rc = cs_obj_u64(o, "commit_index", true, UINT64_MAX, &out->commit_index, err)) ||
        (rc = cs_obj_u64(o, "applied_index", true, UINT64_MAX, &out->applied_index, err)) ||
        (rc = cs_obj_u64(o, "snapshot_index", true, UINT64_MAX, &out->snapshot_index, err)))
        return cs_error_wrap(err, rc, "members reply");
    const msgpack_object *l = cs_obj_get(o, "members");
    if (l == NULL || l->type != MSGPACK_OBJECT_ARRAY || l->via.array.size > CS_MEMBERS_MAX)
        return cs_errorf(err, CS_EPROTO,
                         "members reply: field 'members' is not an array of at most %d",
                         CS_MEMBERS_MAX);
    uint32_t n = l->via.array.size;
    cs_member_info *v = cs_arena_alloc(a, ((size_t)n + 1) * sizeof *v);
    if (v == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    memset(v, 0, ((size_t)n + 1) * sizeof *v);
    for (uint32_t i = 0; i < n; i++)
        if ((rc = unpack_member(&l->via.array.ptr[i], &v[i], a, err)) != CS_OK)
            return cs_error_wrap(err, rc, "members reply: members[%" PRIu32 "]", i);
    out->members = v;
    out->n = n;
    return CS_OK;
}

/* ---- members.add, members.remove, members.transfer ------------------------------------ */

int cs_member_add_req_encode(msgpack_packer *pk, const cs_member_req *in)
{
    CS_PK(msgpack_pack_map(pk, 3));
    CS_TRY(cs_pack_kv_u64(pk, "id", in->id));
    CS_TRY(cs_pack_kv_str(pk, "listen", in->listen ? in->listen : ""));
    return cs_pack_kv_str(pk, "raft", in->raft ? in->raft : "");
}

int cs_member_id_req_encode(msgpack_packer *pk, const cs_member_req *in)
{
    CS_PK(msgpack_pack_map(pk, 1));
    return cs_pack_kv_u64(pk, "id", in->id);
}

/* The "id" of a request: required and >= 1 unless `zero_ok` (transfer,
 * where absent and 0 both mean "any"). */
static int req_id(const msgpack_object *o, bool zero_ok, cs_member_req *out, cs_error *err)
{
    memset(out, 0, sizeof *out);
    if (o->type != MSGPACK_OBJECT_MAP)
        return cs_errorf(err, CS_EPROTO, "message body is not a map");
    CS_TRY(cs_obj_u64(o, "id", !zero_ok, UINT64_MAX, &out->id, err));
    if (out->id == 0 && !zero_ok)
        return cs_errorf(err, CS_EINVAL, "field 'id' is 0 (member ids start at 1)");
    return CS_OK;
}

/* The string under `key`, required, bounded by `max` (NUL included) and
 * checked by `check`, copied into `a`. */
static int req_addr(const msgpack_object *o, const char *key, size_t max,
                    int (*check)(const char *, const char *, size_t, cs_error *), cs_arena *a,
                    const char **out, cs_error *err)
{
    const msgpack_object *v = cs_obj_get(o, key);
    char what[32];
    snprintf(what, sizeof what, "field '%s'", key);
    if (v != NULL && v->type == MSGPACK_OBJECT_STR)
        CS_TRY(check(what, v->via.str.ptr, v->via.str.size, err));
    /* cs_obj_str says "missing" and "not a string", and copies. */
    return cs_obj_str(o, key, true, max - 1, a, out, err);
}

int cs_member_add_req_decode(const msgpack_object *o, cs_member_req *out, cs_arena *a,
                             cs_error *err)
{
    CS_TRY(req_id(o, false, out, err));
    CS_TRY(req_addr(o, "listen", CS_MEMBER_LISTEN_MAX, cs_member_listen_check, a, &out->listen,
                    err));
    return req_addr(o, "raft", CS_MEMBER_RAFT_MAX, cs_member_raft_check, a, &out->raft, err);
}

int cs_member_remove_req_decode(const msgpack_object *o, cs_member_req *out, cs_arena *a,
                                cs_error *err)
{
    (void)a;
    return req_id(o, false, out, err);
}

int cs_member_transfer_req_decode(const msgpack_object *o, cs_member_req *out, cs_arena *a,
                                  cs_error *err)
{
    (void)a;
    return req_id(o, true, out, err);
}

int cs_index_reply_encode(msgpack_packer *pk, const cs_index_reply *in)
{
    CS_PK(msgpack_pack_map(pk, 1));
    return cs_pack_kv_u64(pk, "index", in->index);
}

int cs_index_reply_decode(const msgpack_object *o, cs_index_reply *out, cs_arena *a,
                          cs_error *err)
{
    (void)a;
    if (o->type != MSGPACK_OBJECT_MAP)
        return cs_errorf(err, CS_EPROTO, "reply is not a map");
    return cs_obj_u64(o, "index", true, UINT64_MAX, &out->index, err);
}
