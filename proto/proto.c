/* proto.c — envelope, body readers and writers (see proto.h). */
#include "proto/proto.h"

#include "cellstate/jobopts.h"
#include "cellstate/mpcheck.h"
#include "proto/msg.h"

#include <stdlib.h>
#include <string.h>

const char *cs_msg_name(uint32_t type)
{
    switch (type) {
#define CS_MSG_CASE(name, value, text) \
    case value:                        \
        return text;
        CS_MSG_TABLE(CS_MSG_CASE)
#undef CS_MSG_CASE
    default:
        return "unknown";
    }
}

int cs_msg_decode(const void *data, size_t len, msgpack_zone *zone, cs_msg *m, cs_error *err)
{
    memset(m, 0, sizeof *m);
    msgpack_object o;
    int rc = cs_mp_unpack(data, len, zone, &o, CS_EPROTO, "message", err);
    if (rc != CS_OK)
        return rc;
    if (o.type != MSGPACK_OBJECT_ARRAY || o.via.array.size < 4 || o.via.array.size > 5)
        return cs_errorf(err, CS_EPROTO,
                         "message is not [version, type, request id, body] (nor with credentials)");
    const msgpack_object *f = o.via.array.ptr;
    if (f[2].type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        m->req = f[2].via.u64;
    else
        return cs_errorf(err, CS_EPROTO, "message request id is not an unsigned integer");
    if (f[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || f[0].via.u64 != CS_PROTO_VERSION)
        return cs_errorf(err, CS_EPROTO, "unsupported protocol version (this server speaks %d)",
                         CS_PROTO_VERSION);
    if (f[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || f[1].via.u64 >= CS_MSG_COUNT)
        return cs_errorf(err, CS_EPROTO, "unknown message type %llu",
                         f[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER
                             ? (unsigned long long)f[1].via.u64
                             : 0ULL);
    m->type = (uint32_t)f[1].via.u64;
    m->body = f[3];
    m->auth.type = MSGPACK_OBJECT_NIL;
    if (o.via.array.size == 5)
        m->auth = f[4];
    return CS_OK;
}

/* The envelope's head: an array of n (4, or 5 with credentials) and its
 * first three elements. */
static int begin(msgpack_packer *pk, uint32_t n, uint32_t type, uint64_t req)
{
    CS_PK(msgpack_pack_array(pk, n));
    CS_PK(msgpack_pack_uint32(pk, CS_PROTO_VERSION));
    CS_PK(msgpack_pack_uint32(pk, type));
    CS_PK(msgpack_pack_uint64(pk, req));
    return CS_OK;
}

int cs_msg_begin(msgpack_packer *pk, uint32_t type, uint64_t req) { return begin(pk, 4, type, req); }

int cs_msg_begin_auth(msgpack_packer *pk, uint32_t type, uint64_t req)
{
    return begin(pk, 5, type, req);
}

int cs_pack_kv_str(msgpack_packer *pk, const char *key, const char *value)
{
    CS_TRY(cs_pack_str(pk, key));
    return cs_pack_str(pk, value);
}

int cs_pack_kv_u64(msgpack_packer *pk, const char *key, uint64_t value)
{
    CS_TRY(cs_pack_str(pk, key));
    CS_PK(msgpack_pack_uint64(pk, value));
    return CS_OK;
}

int cs_pack_kv_i64(msgpack_packer *pk, const char *key, int64_t value)
{
    CS_TRY(cs_pack_str(pk, key));
    CS_PK(msgpack_pack_int64(pk, value));
    return CS_OK;
}

int cs_pack_kv_bool(msgpack_packer *pk, const char *key, bool value)
{
    CS_TRY(cs_pack_str(pk, key));
    CS_PK(value ? msgpack_pack_true(pk) : msgpack_pack_false(pk));
    return CS_OK;
}

int cs_pack_kv_res(msgpack_packer *pk, const char *key, const cs_res *r)
{
    CS_TRY(cs_pack_str(pk, key));
    CS_PK(msgpack_pack_map(pk, 3));
    CS_TRY(cs_pack_kv_i64(pk, "cpu", r->cpu));
    CS_TRY(cs_pack_kv_i64(pk, "mem", r->mem));
    return cs_pack_kv_i64(pk, "disk", r->disk);
}

int cs_msg_error(msgpack_sbuffer *buf, uint64_t req, int code, const char *message)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
    CS_TRY(cs_msg_begin(&pk, CS_MSG_ERROR, req));
    cs_error_reply e = {code, NULL, message, 0};
    return cs_error_reply_encode(&pk, &e);
}

int cs_pack_kv_ports(msgpack_packer *pk, const char *key, const uint16_t *p, uint32_t n)
{
    CS_TRY(cs_pack_str(pk, key));
    CS_PK(msgpack_pack_array(pk, n));
    for (uint32_t i = 0; i < n; i++)
        CS_PK(msgpack_pack_uint16(pk, p[i]));
    return CS_OK;
}

int cs_pack_taints(msgpack_packer *pk, const cs_taint *t, uint32_t n)
{
    CS_TRY(cs_pack_str(pk, "taints"));
    CS_PK(msgpack_pack_array(pk, n));
    for (uint32_t i = 0; i < n; i++) {
        CS_PK(msgpack_pack_map(pk, 3));
        CS_TRY(cs_pack_kv_str(pk, "key", t[i].key));
        CS_TRY(cs_pack_kv_str(pk, "value", t[i].value));
        CS_TRY(cs_pack_kv_str(pk, "effect", cs_taint_effect_name(t[i].effect)));
    }
    return CS_OK;
}

/* The optional "taints" of a machine: [{key, value, effect}], sorted here. */
static int unpack_taints(const msgpack_object *o, cs_arena *a, cs_machine *m, cs_error *err)
{
    const msgpack_object *ts = cs_obj_get(o, "taints");
    if (ts == NULL)
        return CS_OK;
    if (ts->type != MSGPACK_OBJECT_ARRAY || ts->via.array.size > CS_TAINT_MAX)
        return cs_errorf(err, CS_EPROTO, "machine: field 'taints' is not an array of at most %d",
                         CS_TAINT_MAX);
    m->ntaints = ts->via.array.size;
    m->taints = cs_arena_alloc(a, (m->ntaints + 1) * sizeof *m->taints);
    if (m->taints == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < m->ntaints; i++) {
        const msgpack_object *t = &ts->via.array.ptr[i];
        cs_taint *d = &m->taints[i];
        const char *effect;
        d->value = "";
        int rc;
        if ((rc = cs_obj_str(t, "key", true, CS_ATTR_LEN_MAX, a, &d->key, err)) ||
            (rc = cs_obj_str(t, "value", false, CS_ATTR_LEN_MAX, a, &d->value, err)) ||
            (rc = cs_obj_str(t, "effect", true, 32, a, &effect, err)))
            return cs_error_wrap(err, rc, "machine: taint %u", i);
        if (cs_taint_effect_parse(effect, &d->effect) != CS_OK)
            return cs_errorf(err, CS_EINVAL,
                             "machine: taint %u: effect '%s' is not NoSchedule, PreferNoSchedule "
                             "or NoExecute",
                             i, effect);
    }
    cs_taints_sort(m->taints, m->ntaints);
    return CS_OK;
}

int cs_pack_machine(msgpack_packer *pk, const cs_machine *m)
{
    CS_PK(msgpack_pack_map(pk, 16));
    CS_TRY(cs_pack_kv_u64(pk, "id", m->id));
    CS_TRY(cs_pack_kv_str(pk, "name", m->name));
    CS_TRY(cs_pack_kv_str(pk, "state", cs_machine_state_name(m->state)));
    CS_TRY(cs_pack_str(pk, "attrs"));
    CS_PK(msgpack_pack_map(pk, m->nattrs));
    for (uint32_t i = 0; i < m->nattrs; i++)
        CS_TRY(cs_pack_kv_str(pk, m->attrs[i].key, m->attrs[i].value));
    CS_TRY(cs_pack_taints(pk, m->taints, m->ntaints));
    CS_TRY(cs_pack_kv_res(pk, "capacity", &m->capacity));
    CS_TRY(cs_pack_kv_res(pk, "allocated", &m->allocated));
    CS_TRY(cs_pack_kv_u64(pk, "port_lo", m->port_lo));
    CS_TRY(cs_pack_kv_u64(pk, "port_hi", m->port_hi));
    CS_TRY(cs_pack_kv_ports(pk, "ports", m->ports, m->nports));
    CS_TRY(cs_pack_kv_u64(pk, "ntasks", m->ntasks));
    CS_TRY(cs_pack_kv_u64(pk, "seq", m->seq));
    CS_TRY(cs_pack_kv_u64(pk, "version", m->version));
    CS_TRY(cs_pack_kv_str(pk, "admin", cs_machine_admin_name(m->admin)));
    CS_TRY(cs_pack_kv_u64(pk, "drain_deadline", m->drain_deadline));
    return cs_pack_kv_str(pk, "log_url", m->log_url ? m->log_url : "");
}

int cs_pack_kv_constraints(msgpack_packer *pk, const char *key, const cs_constraint *c,
                           uint32_t n)
{
    CS_TRY(cs_pack_str(pk, key));
    CS_PK(msgpack_pack_array(pk, n));
    for (uint32_t i = 0; i < n; i++) {
        CS_PK(msgpack_pack_map(pk, 4));
        CS_TRY(cs_pack_kv_str(pk, "field", c[i].field));
        CS_TRY(cs_pack_kv_str(pk, "op", c[i].op));
        CS_TRY(cs_pack_kv_str(pk, "value", c[i].value));
        CS_TRY(cs_pack_kv_bool(pk, "soft", c[i].soft));
    }
    return CS_OK;
}

int cs_pack_job(msgpack_packer *pk, const cs_job *j)
{
    CS_PK(msgpack_pack_map(pk, 17));
    CS_TRY(cs_pack_kv_u64(pk, "id", j->id));
    CS_TRY(cs_pack_kv_str(pk, "name", j->name));
    CS_TRY(cs_pack_kv_str(pk, "kind", cs_job_kind_name(j->kind)));
    CS_TRY(cs_pack_kv_str(pk, "state", cs_job_state_name(j->state)));
    CS_TRY(cs_pack_kv_i64(pk, "priority", j->priority));
    CS_TRY(cs_pack_kv_u64(pk, "count", j->count));
    CS_TRY(cs_pack_kv_res(pk, "resources", &j->res));
    CS_TRY(cs_pack_kv_ports(pk, "ports", j->ports, j->nports));
    CS_TRY(cs_pack_kv_constraints(pk, "constraints", j->constraints, j->nconstraints));
    CS_TRY(cs_pack_kv_str(pk, "cmd", j->cmd));
    CS_TRY(cs_pack_str(pk, "options"));
    CS_PK(msgpack_pack_bin(pk, j->extra_len));
    if (j->extra_len)
        CS_PK(msgpack_pack_bin_body(pk, j->extra, j->extra_len));
    CS_TRY(cs_pack_kv_u64(pk, "spec_hash", j->spec_hash));
    CS_TRY(cs_pack_kv_u64(pk, "version", j->version));
    CS_TRY(cs_pack_kv_u64(pk, "submitted", j->submitted));
    CS_TRY(cs_pack_kv_str(pk, "note", j->note));
    CS_TRY(cs_pack_kv_u64(pk, "surge", j->surge));
    return cs_pack_kv_u64(pk, "ended", j->ended);
}

int cs_pack_job_as(msgpack_packer *pk, const cs_job *j, bool redact)
{
    if (!redact || j->extra_len == 0)
        return cs_pack_job(pk, j);
    cs_arena a;
    cs_arena_init(&a);
    cs_jobopts o;
    cs_error ignored;
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    cs_job copy = *j;
    int rc = CS_OK;
    if (cs_jobopts_decode(j->extra, j->extra_len, &a, &o, &ignored) != CS_OK) {
        copy.extra = NULL;
        copy.extra_len = 0;
    } else if (o.nenv > 0) {
        for (uint32_t i = 0; i < o.nenv; i++)
            o.env[i].value = CS_REDACTED;
        if ((rc = cs_jobopts_encode(&o, &b, &ignored)) == CS_OK) {
            copy.extra = (const uint8_t *)b.data;
            copy.extra_len = (uint32_t)b.size;
        }
    }
    if (rc == CS_OK)
        rc = cs_pack_job(pk, &copy);
    msgpack_sbuffer_destroy(&b);
    cs_arena_free(&a);
    return rc == CS_OK ? CS_OK : CS_ENOMEM;
}

/* A task map written byte by byte into one buffer and handed to the packer
 * in one write: sync replies carry every changed task to every scheduler,
 * and packing it key by key through msgpack's packer (two calls and a
 * strlen per field) was the largest part of cellstated's CPU time in
 * cellbench place (docs/benchmarks.md). The bytes are exactly the packer's:
 * the smallest form of each integer and string. */
static uint8_t *put_uint(uint8_t *p, uint64_t v)
{
    if (v < 128) {
        *p++ = (uint8_t)v;
    } else if (v < 256) {
        *p++ = 0xcc;
        *p++ = (uint8_t)v;
    } else if (v < 65536) {
        *p++ = 0xcd;
        *p++ = (uint8_t)(v >> 8);
        *p++ = (uint8_t)v;
    } else if (v < (UINT64_C(1) << 32)) {
        *p++ = 0xce;
        for (int s = 24; s >= 0; s -= 8)
            *p++ = (uint8_t)(v >> s);
    } else {
        *p++ = 0xcf;
        for (int s = 56; s >= 0; s -= 8)
            *p++ = (uint8_t)(v >> s);
    }
    return p;
}

static uint8_t *put_int(uint8_t *p, int64_t v)
{
    if (v >= 0)
        return put_uint(p, (uint64_t)v);
    uint64_t u = (uint64_t)v;
    if (v >= -32) {
        *p++ = (uint8_t)u;
    } else if (v >= INT8_MIN) {
        *p++ = 0xd0;
        *p++ = (uint8_t)u;
    } else if (v >= INT16_MIN) {
        *p++ = 0xd1;
        *p++ = (uint8_t)(u >> 8);
        *p++ = (uint8_t)u;
    } else if (v >= INT32_MIN) {
        *p++ = 0xd2;
        for (int s = 24; s >= 0; s -= 8)
            *p++ = (uint8_t)(u >> s);
    } else {
        *p++ = 0xd3;
        for (int s = 56; s >= 0; s -= 8)
            *p++ = (uint8_t)(u >> s);
    }
    return p;
}

/* A string of at most 65535 bytes (every string of a task record). */
static uint8_t *put_str(uint8_t *p, const char *str, size_t n)
{
    if (n < 32) {
        *p++ = (uint8_t)(0xa0 | n);
    } else if (n < 256) {
        *p++ = 0xd9;
        *p++ = (uint8_t)n;
    } else {
        *p++ = 0xda;
        *p++ = (uint8_t)(n >> 8);
        *p++ = (uint8_t)n;
    }
    memcpy(p, str, n);
    return p + n;
}

/* A key: a fixstr literal, its length known at compile time. */
#define PUT_KEY(p, k) put_str((p), (k), sizeof(k) - 1)

static uint8_t *put_res(uint8_t *p, const cs_res *r)
{
    *p++ = 0x83;
    p = put_int(PUT_KEY(p, "cpu"), r->cpu);
    p = put_int(PUT_KEY(p, "mem"), r->mem);
    return put_int(PUT_KEY(p, "disk"), r->disk);
}

/* The largest task map: 14 keys, integers of 9 bytes, the longest state
 * names, 64 ports of 3 bytes, a reason of CS_REASON_MAX bytes. */
#define TASK_MAP_MAX (256 + 3 * 16 + 3 + 3 * CS_PORTS_PER_TASK_MAX + 3 + CS_REASON_MAX)

int cs_pack_task(msgpack_packer *pk, const cs_task *t)
{
    uint8_t b[TASK_MAP_MAX];
    size_t rlen = t->reason != NULL ? strlen(t->reason) : 0;
    if (t->nports > CS_PORTS_PER_TASK_MAX || rlen > CS_REASON_MAX)
        return CS_EINVAL;
    const char *state = cs_task_state_name(t->state), *last = cs_task_state_name(t->last_end),
               *health = cs_task_health_name(t->health);
    uint8_t *p = b;
    *p++ = 0x8e; /* fixmap of 14 */
    p = put_uint(PUT_KEY(p, "id"), t->id);
    p = put_uint(PUT_KEY(p, "job"), t->job);
    p = put_uint(PUT_KEY(p, "index"), t->index);
    p = put_str(PUT_KEY(p, "state"), state, strlen(state));
    p = put_str(PUT_KEY(p, "last_end"), last, strlen(last));
    p = put_uint(PUT_KEY(p, "machine"), t->machine);
    p = put_res(PUT_KEY(p, "resources"), &t->res);
    p = PUT_KEY(p, "ports");
    if (t->nports < 16) {
        *p++ = (uint8_t)(0x90 | t->nports);
    } else {
        *p++ = 0xdc;
        *p++ = (uint8_t)(t->nports >> 8);
        *p++ = (uint8_t)t->nports;
    }
    for (uint32_t i = 0; i < t->nports; i++)
        p = put_uint(p, t->ports[i]);
    p = put_uint(PUT_KEY(p, "attempts"), t->attempts);
    p = put_int(PUT_KEY(p, "exit_code"), t->exit_code);
    p = put_str(PUT_KEY(p, "reason"), t->reason != NULL ? t->reason : "", rlen);
    p = put_str(PUT_KEY(p, "health"), health, strlen(health));
    p = put_uint(PUT_KEY(p, "spec"), t->spec);
    p = put_uint(PUT_KEY(p, "version"), t->version);
    return pk->callback(pk->data, (const char *)b, (size_t)(p - b)) != 0 ? CS_ENOMEM : CS_OK;
}

/* ---- the compact form of sync's tasks ------------------------------------ */

void cs_task_runs_init(cs_task_runs *r)
{
    memset(r, 0, sizeof *r);
    msgpack_sbuffer_init(&r->buf);
}

void cs_task_runs_free(cs_task_runs *r) { msgpack_sbuffer_destroy(&r->buf); }

static int put_entry(cs_task_runs *r)
{
    const cs_task *t = &r->head;
    uint8_t b[TASK_MAP_MAX];
    uint8_t *p = b;
    *p++ = 0x90 | CS_TASK_ENTRY_FIELDS;
    p = put_uint(p, t->id);
    p = put_uint(p, r->n);
    p = put_uint(p, t->state);
    p = put_uint(p, t->last_end);
    p = put_uint(p, t->machine);
    p = put_int(p, t->res.cpu);
    p = put_int(p, t->res.mem);
    p = put_int(p, t->res.disk);
    if (t->nports < 16) {
        *p++ = (uint8_t)(0x90 | t->nports);
    } else {
        *p++ = 0xdc;
        *p++ = (uint8_t)(t->nports >> 8);
        *p++ = (uint8_t)t->nports;
    }
    for (uint32_t i = 0; i < t->nports; i++)
        p = put_uint(p, t->ports[i]);
    p = put_uint(p, t->attempts);
    p = put_int(p, t->exit_code);
    p = put_str(p, t->reason, strlen(t->reason));
    p = put_uint(p, t->health);
    p = put_uint(p, t->spec);
    p = put_uint(p, t->version);
    if (msgpack_sbuffer_write(&r->buf, (const char *)b, (size_t)(p - b)) != 0)
        return CS_ENOMEM;
    r->entries++;
    r->n = 0;
    return CS_OK;
}

/* Whether `t` continues the open run: the next index of the same job, and
 * every other field equal. */
static bool joins_run(const cs_task_runs *r, const cs_task *t)
{
    const cs_task *h = &r->head;
    return r->n > 0 && t->job == h->job && t->index == h->index + r->n &&
           t->state == h->state && t->last_end == h->last_end && t->machine == h->machine &&
           t->res.cpu == h->res.cpu && t->res.mem == h->res.mem && t->res.disk == h->res.disk &&
           t->nports == h->nports && t->attempts == h->attempts &&
           t->exit_code == h->exit_code && t->health == h->health && t->spec == h->spec &&
           t->version == h->version &&
           (t->nports == 0 || memcmp(t->ports, h->ports, t->nports * sizeof *t->ports) == 0) &&
           strcmp(t->reason != NULL ? t->reason : "", h->reason) == 0;
}

int cs_task_runs_add(cs_task_runs *r, const cs_task *t)
{
    size_t rlen = t->reason != NULL ? strlen(t->reason) : 0;
    if (t->nports > CS_PORTS_PER_TASK_MAX || rlen > CS_REASON_MAX)
        return CS_EINVAL;
    if (joins_run(r, t)) {
        r->n++;
        return CS_OK;
    }
    if (r->n > 0 && put_entry(r) != CS_OK)
        return CS_ENOMEM;
    r->head = *t;
    if (t->nports > 0)
        memcpy(r->ports, t->ports, t->nports * sizeof *t->ports);
    memcpy(r->reason, t->reason != NULL ? t->reason : "", rlen + 1);
    r->head.ports = r->ports;
    r->head.reason = r->reason;
    r->n = 1;
    return CS_OK;
}

int cs_task_runs_finish(cs_task_runs *r, msgpack_packer *pk)
{
    if (r->n > 0 && put_entry(r) != CS_OK)
        return CS_ENOMEM;
    int rc = msgpack_pack_array(pk, r->entries) != 0 ||
                     pk->callback(pk->data, r->buf.data, r->buf.size) != 0
                 ? CS_ENOMEM
                 : CS_OK;
    r->buf.size = 0;
    r->entries = 0;
    return rc;
}

/* The field names of an entry, for errors. */
static const char *const entry_field[CS_TASK_ENTRY_FIELDS] = {
    "id", "n", "state", "last_end", "machine", "cpu", "mem", "disk",
    "ports", "attempts", "exit_code", "reason", "health", "spec", "version"};

static int bad_entry(cs_error *err, int f, const char *what)
{
    return cs_errorf(err, CS_EPROTO, "field '%s' (%d) %s", entry_field[f], f, what);
}

/* Field f as an unsigned integer of at most max. */
static int entry_uint(cs_mp_cur *c, int f, uint64_t max, uint64_t *v, cs_error *err)
{
    if (cs_mp_read_uint(c, v) != CS_OK)
        return bad_entry(err, f, "is not an unsigned integer");
    if (*v > max)
        return cs_errorf(err, CS_EPROTO, "field '%s' (%d) is %llu, above %llu", entry_field[f],
                         f, (unsigned long long)*v, (unsigned long long)max);
    return CS_OK;
}

int cs_read_task_entry(cs_mp_cur *c, cs_arena *a, cs_task *t, uint32_t *n, cs_error *err)
{
    memset(t, 0, sizeof *t);
    uint32_t len;
    if (cs_mp_read_array(c, &len) != CS_OK || len != CS_TASK_ENTRY_FIELDS)
        return cs_errorf(err, CS_EPROTO, "not an array of %d fields", CS_TASK_ENTRY_FIELDS);
    uint64_t u[5];
    int rc;
    if ((rc = entry_uint(c, 0, UINT64_MAX, &t->id, err)) ||
        (rc = entry_uint(c, 1, CS_TASK_INDEX_MAX + 1u, &u[0], err)) ||
        (rc = entry_uint(c, 2, CS_TASK_STATE_COUNT - 1, &u[1], err)) ||
        (rc = entry_uint(c, 3, CS_TASK_STATE_COUNT - 1, &u[2], err)) ||
        (rc = entry_uint(c, 4, UINT64_MAX, &t->machine, err)))
        return rc;
    if (u[0] == 0)
        return bad_entry(err, 1, "is 0: a run has at least one task");
    t->job = cs_task_job(t->id);
    t->index = cs_task_index(t->id);
    if (t->index + (u[0] - 1) > CS_TASK_INDEX_MAX)
        return cs_errorf(err, CS_EPROTO,
                         "field 'n' (1) is %llu: the run passes the last task index of job %llu",
                         (unsigned long long)u[0], (unsigned long long)t->job);
    *n = (uint32_t)u[0];
    t->state = (uint8_t)u[1];
    t->last_end = (uint8_t)u[2];
    int64_t *res[3] = {&t->res.cpu, &t->res.mem, &t->res.disk};
    for (int k = 0; k < 3; k++) {
        if (cs_mp_read_int(c, res[k]) != CS_OK)
            return bad_entry(err, 5 + k, "is not an integer");
        if (*res[k] < 0 || *res[k] > CS_RES_MAX)
            return bad_entry(err, 5 + k, "is out of range");
    }
    uint32_t np;
    if (cs_mp_read_array(c, &np) != CS_OK || np > CS_PORTS_PER_TASK_MAX)
        return bad_entry(err, 8, "is not an array of at most 64 ports");
    if (np > 0) {
        t->ports = cs_arena_alloc(a, np * sizeof *t->ports);
        if (t->ports == NULL)
            return cs_errorf(err, CS_ENOMEM, "out of memory");
        for (uint32_t i = 0; i < np; i++) {
            uint64_t port;
            if (cs_mp_read_uint(c, &port) != CS_OK || port > UINT16_MAX)
                return cs_errorf(err, CS_EPROTO, "field 'ports' (8): entry %u is not a port number",
                                 i);
            t->ports[i] = (uint16_t)port;
        }
    }
    t->nports = np;
    int64_t code;
    if ((rc = entry_uint(c, 9, UINT32_MAX, &u[3], err)))
        return rc;
    t->attempts = (uint32_t)u[3];
    if (cs_mp_read_int(c, &code) != CS_OK || code < INT32_MIN || code > INT32_MAX)
        return bad_entry(err, 10, "is not a 32-bit integer");
    t->exit_code = (int32_t)code;
    const char *s;
    uint32_t slen;
    if (cs_mp_read_str(c, &s, &slen) != CS_OK || slen > CS_REASON_MAX)
        return bad_entry(err, 11, "is not a string of at most 1024 bytes");
    if ((t->reason = cs_arena_strndup(a, s, slen)) == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    if ((rc = entry_uint(c, 12, CS_TASK_HEALTH_COUNT - 1, &u[4], err)) ||
        (rc = entry_uint(c, 13, UINT64_MAX, &t->spec, err)) ||
        (rc = entry_uint(c, 14, UINT64_MAX, &t->version, err)))
        return rc;
    t->health = (uint8_t)u[4];
    return CS_OK;
}

/* ---- reading ------------------------------------------------------------- */

const msgpack_object *cs_obj_get(const msgpack_object *o, const char *key)
{
    if (o == NULL || o->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t n = strlen(key);
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
            memcmp(k->via.str.ptr, key, n) == 0)
            return &o->via.map.ptr[i].val;
    }
    return NULL;
}

static int absent(const char *key, bool required, cs_error *err)
{
    return required ? cs_errorf(err, CS_EPROTO, "field '%s' is missing", key) : CS_OK;
}

int cs_obj_u64(const msgpack_object *o, const char *key, bool required, uint64_t max,
               uint64_t *out, cs_error *err)
{
    const msgpack_object *v = cs_obj_get(o, key);
    if (v == NULL)
        return absent(key, required, err);
    if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return cs_errorf(err, CS_EPROTO, "field '%s' is not an unsigned integer", key);
    if (v->via.u64 > max)
        return cs_errorf(err, CS_EINVAL, "field '%s' is out of range (%llu > %llu)", key,
                         (unsigned long long)v->via.u64, (unsigned long long)max);
    *out = v->via.u64;
    return CS_OK;
}

int cs_obj_i64(const msgpack_object *o, const char *key, bool required, int64_t min, int64_t max,
               int64_t *out, cs_error *err)
{
    const msgpack_object *v = cs_obj_get(o, key);
    if (v == NULL)
        return absent(key, required, err);
    int64_t x;
    if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        x = v->via.i64;
    else if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= (uint64_t)INT64_MAX)
        x = (int64_t)v->via.u64;
    else if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return cs_errorf(err, CS_EINVAL, "field '%s' overflows", key);
    else
        return cs_errorf(err, CS_EPROTO, "field '%s' is not an integer", key);
    if (x < min || x > max)
        return cs_errorf(err, CS_EINVAL, "field '%s' is out of range (%lld not in %lld..%lld)",
                         key, (long long)x, (long long)min, (long long)max);
    *out = x;
    return CS_OK;
}

int cs_obj_str(const msgpack_object *o, const char *key, bool required, size_t maxlen, cs_arena *a,
               const char **out, cs_error *err)
{
    const msgpack_object *v = cs_obj_get(o, key);
    if (v == NULL)
        return absent(key, required, err);
    if (v->type != MSGPACK_OBJECT_STR)
        return cs_errorf(err, CS_EPROTO, "field '%s' is not a string", key);
    if (v->via.str.size > maxlen)
        return cs_errorf(err, CS_EINVAL, "field '%s' is longer than %zu bytes", key, maxlen);
    if (memchr(v->via.str.ptr, '\0', v->via.str.size))
        return cs_errorf(err, CS_EINVAL, "field '%s' contains a NUL byte", key);
    char *s = cs_arena_strndup(a, v->via.str.ptr, v->via.str.size);
    if (s == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    *out = s;
    return CS_OK;
}

int cs_obj_bool(const msgpack_object *o, const char *key, bool required, bool *out, cs_error *err)
{
    const msgpack_object *v = cs_obj_get(o, key);
    if (v == NULL)
        return absent(key, required, err);
    if (v->type != MSGPACK_OBJECT_BOOLEAN)
        return cs_errorf(err, CS_EPROTO, "field '%s' is not a boolean", key);
    *out = v->via.boolean;
    return CS_OK;
}

int cs_obj_res(const msgpack_object *o, const char *key, bool required, cs_res *out,
               cs_error *err)
{
    const msgpack_object *v = cs_obj_get(o, key);
    if (v == NULL)
        return absent(key, required, err);
    if (v->type != MSGPACK_OBJECT_MAP)
        return cs_errorf(err, CS_EPROTO, "field '%s' is not a map of cpu, mem, disk", key);
    cs_res r = {0, 0, 0};
    int rc;
    if ((rc = cs_obj_i64(v, "cpu", false, 0, CS_RES_MAX, &r.cpu, err)) ||
        (rc = cs_obj_i64(v, "mem", false, 0, CS_RES_MAX, &r.mem, err)) ||
        (rc = cs_obj_i64(v, "disk", false, 0, CS_RES_MAX, &r.disk, err)))
        return cs_error_wrap(err, rc, "field '%s'", key);
    *out = r;
    return CS_OK;
}

static int cmp_attr(const void *a, const void *b)
{
    return strcmp(((const cs_attr *)a)->key, ((const cs_attr *)b)->key);
}

static int unpack_ports(const msgpack_object *o, const char *key, uint32_t max, cs_arena *a,
                        uint16_t **out, uint32_t *n, cs_error *err)
{
    const msgpack_object *v = cs_obj_get(o, key);
    *out = NULL;
    *n = 0;
    if (v == NULL)
        return CS_OK;
    if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size > max)
        return cs_errorf(err, CS_EPROTO, "field '%s' is not an array of at most %u ports", key,
                         max);
    uint16_t *p = cs_arena_alloc(a, (v->via.array.size + 1) * sizeof *p);
    if (p == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < v->via.array.size; i++) {
        const msgpack_object *e = &v->via.array.ptr[i];
        if (e->type != MSGPACK_OBJECT_POSITIVE_INTEGER || e->via.u64 > UINT16_MAX)
            return cs_errorf(err, CS_EINVAL, "field '%s': entry %u is not a port number", key, i);
        p[i] = (uint16_t)e->via.u64;
    }
    *out = p;
    *n = v->via.array.size;
    return CS_OK;
}

int cs_unpack_machine_spec(const msgpack_object *o, cs_arena *a, cs_machine *m, cs_error *err)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return cs_errorf(err, CS_EPROTO, "machine: body is not a map");
    memset(m, 0, sizeof *m);
    uint64_t lo = 0, hi = 0;
    const char *state = "up";
    m->log_url = "";
    int rc;
    if ((rc = cs_obj_str(o, "name", true, CS_NAME_MAX, a, &m->name, err)) ||
        (rc = cs_obj_res(o, "capacity", true, &m->capacity, err)) ||
        (rc = cs_obj_u64(o, "port_lo", false, UINT16_MAX, &lo, err)) ||
        (rc = cs_obj_u64(o, "port_hi", false, UINT16_MAX, &hi, err)) ||
        (rc = cs_obj_str(o, "state", false, 16, a, &state, err)) ||
        (rc = cs_obj_str(o, "log_url", false, CS_URL_MAX, a, &m->log_url, err)))
        return cs_error_wrap(err, rc, "machine");
    m->port_lo = (uint16_t)lo;
    m->port_hi = (uint16_t)hi;
    if (cs_machine_state_parse(state, &m->state) != CS_OK)
        return cs_errorf(err, CS_EINVAL, "machine: field 'state' is '%s', not up, draining or down",
                         state);
    const msgpack_object *attrs = cs_obj_get(o, "attrs");
    if (attrs != NULL) {
        if (attrs->type != MSGPACK_OBJECT_MAP || attrs->via.map.size > CS_ATTR_MAX)
            return cs_errorf(err, CS_EPROTO, "machine: field 'attrs' is not a map of at most %d",
                             CS_ATTR_MAX);
        m->nattrs = attrs->via.map.size;
        m->attrs = cs_arena_alloc(a, (m->nattrs + 1) * sizeof *m->attrs);
        if (m->attrs == NULL)
            return cs_errorf(err, CS_ENOMEM, "out of memory");
        for (uint32_t i = 0; i < m->nattrs; i++) {
            const msgpack_object *k = &attrs->via.map.ptr[i].key, *v = &attrs->via.map.ptr[i].val;
            if (k->type != MSGPACK_OBJECT_STR || v->type != MSGPACK_OBJECT_STR)
                return cs_errorf(err, CS_EPROTO, "machine: attribute %u is not string: string", i);
            m->attrs[i].key = cs_arena_strndup(a, k->via.str.ptr, k->via.str.size);
            m->attrs[i].value = cs_arena_strndup(a, v->via.str.ptr, v->via.str.size);
            if (!m->attrs[i].key || !m->attrs[i].value)
                return cs_errorf(err, CS_ENOMEM, "out of memory");
        }
        if (m->nattrs > 1)
            qsort(m->attrs, m->nattrs, sizeof *m->attrs, cmp_attr);
    }
    if ((rc = unpack_taints(o, a, m, err)) != CS_OK)
        return rc;
    return cs_machine_validate(m, err);
}

int cs_unpack_job_spec(const msgpack_object *o, cs_arena *a, cs_job *j, cs_error *err)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return cs_errorf(err, CS_EPROTO, "job: body is not a map");
    memset(j, 0, sizeof *j);
    const char *kind = "batch";
    int64_t prio = 50;
    uint64_t count = 1;
    j->cmd = "";
    j->note = "";
    int rc;
    if ((rc = cs_obj_str(o, "name", true, CS_NAME_MAX, a, &j->name, err)) ||
        (rc = cs_obj_str(o, "kind", false, 16, a, &kind, err)) ||
        (rc = cs_obj_i64(o, "priority", false, INT32_MIN, INT32_MAX, &prio, err)) ||
        (rc = cs_obj_u64(o, "count", false, CS_TASK_INDEX_MAX + 1u, &count, err)) ||
        (rc = cs_obj_res(o, "resources", false, &j->res, err)) ||
        (rc = cs_obj_str(o, "cmd", false, CS_CMD_MAX, a, &j->cmd, err)) ||
        (rc = unpack_ports(o, "ports", CS_PORTS_PER_TASK_MAX, a, &j->ports, &j->nports, err)))
        return cs_error_wrap(err, rc, "job");
    if (cs_job_kind_parse(kind, &j->kind) != CS_OK)
        return cs_errorf(err, CS_EINVAL, "job %s: field 'kind' is '%s', not batch or service",
                         j->name, kind);
    j->priority = (int32_t)prio;
    j->count = (uint32_t)count;
    const msgpack_object *cs = cs_obj_get(o, "constraints");
    if (cs != NULL) {
        if (cs->type != MSGPACK_OBJECT_ARRAY || cs->via.array.size > CS_CONSTRAINT_MAX)
            return cs_errorf(err, CS_EPROTO, "job %s: field 'constraints' is not an array of at "
                             "most %d", j->name, CS_CONSTRAINT_MAX);
        j->nconstraints = cs->via.array.size;
        j->constraints = cs_arena_alloc(a, (j->nconstraints + 1) * sizeof *j->constraints);
        if (j->constraints == NULL)
            return cs_errorf(err, CS_ENOMEM, "out of memory");
        for (uint32_t i = 0; i < j->nconstraints; i++) {
            const msgpack_object *c = &cs->via.array.ptr[i];
            cs_constraint *d = &j->constraints[i];
            d->value = "";
            d->soft = false;
            if ((rc = cs_obj_str(c, "field", true, CS_ATTR_LEN_MAX, a, &d->field, err)) ||
                (rc = cs_obj_str(c, "op", true, CS_ATTR_LEN_MAX, a, &d->op, err)) ||
                (rc = cs_obj_str(c, "value", false, CS_ATTR_LEN_MAX, a, &d->value, err)) ||
                (rc = cs_obj_bool(c, "soft", false, &d->soft, err)))
                return cs_error_wrap(err, rc, "job %s: constraint %u", j->name, i);
        }
    }
    const msgpack_object *opt = cs_obj_get(o, "options");
    if (opt != NULL) {
        if (opt->type != MSGPACK_OBJECT_BIN || opt->via.bin.size > CS_EXTRA_MAX)
            return cs_errorf(err, CS_EPROTO, "job %s: field 'options' is not msgpack bytes of at "
                             "most %d", j->name, CS_EXTRA_MAX);
        j->extra_len = opt->via.bin.size;
        if (j->extra_len) {
            uint8_t *e = cs_arena_alloc(a, j->extra_len);
            if (e == NULL)
                return cs_errorf(err, CS_ENOMEM, "out of memory");
            memcpy(e, opt->via.bin.ptr, j->extra_len);
            j->extra = e;
        }
    }
    return cs_job_validate(j, err);
}

/* ---- records as the server sends them ------------------------------------ */

static int unpack_state(const msgpack_object *o, const char *key, const char *what,
                        int (*parse)(const char *, uint8_t *), cs_arena *a, uint8_t *out,
                        cs_error *err)
{
    const char *name;
    int rc = cs_obj_str(o, key, true, 16, a, &name, err);
    if (rc != CS_OK)
        return cs_error_wrap(err, rc, "%s", what);
    if (parse(name, out) != CS_OK)
        return cs_errorf(err, CS_EPROTO, "%s: field '%s' has the unknown value '%s'", what, key,
                         name);
    return CS_OK;
}

int cs_unpack_machine(const msgpack_object *o, cs_arena *a, cs_machine *m, cs_error *err)
{
    int rc = cs_unpack_machine_spec(o, a, m, err);
    if (rc != CS_OK)
        return rc;
    uint64_t ntasks = 0;
    const char *admin = "active";
    if ((rc = cs_obj_u64(o, "id", true, UINT64_MAX, &m->id, err)) ||
        (rc = cs_obj_str(o, "admin", true, 16, a, &admin, err)) ||
        (rc = cs_obj_u64(o, "drain_deadline", true, UINT64_MAX, &m->drain_deadline, err)) ||
        (rc = cs_obj_res(o, "allocated", true, &m->allocated, err)) ||
        (rc = unpack_ports(o, "ports", UINT16_MAX + 1u, a, &m->ports, &m->nports, err)) ||
        (rc = cs_obj_u64(o, "ntasks", true, UINT32_MAX, &ntasks, err)) ||
        (rc = cs_obj_u64(o, "seq", true, UINT64_MAX, &m->seq, err)) ||
        (rc = cs_obj_u64(o, "version", true, UINT64_MAX, &m->version, err)))
        return cs_error_wrap(err, rc, "machine %s", m->name);
    if (cs_machine_admin_parse(admin, &m->admin) != CS_OK)
        return cs_errorf(err, CS_EPROTO, "machine %s: field 'admin' is '%s', not active, "
                         "cordoned or draining", m->name, admin);
    m->ntasks = (uint32_t)ntasks;
    return CS_OK;
}

int cs_unpack_job(const msgpack_object *o, cs_arena *a, cs_job *j, cs_error *err)
{
    int rc = cs_unpack_job_spec(o, a, j, err);
    if (rc != CS_OK)
        return rc;
    uint64_t surge = 0;
    if ((rc = cs_obj_u64(o, "id", true, CS_JOB_ID_MAX, &j->id, err)) ||
        (rc = cs_obj_u64(o, "spec_hash", true, UINT64_MAX, &j->spec_hash, err)) ||
        (rc = cs_obj_u64(o, "version", true, UINT64_MAX, &j->version, err)) ||
        (rc = cs_obj_u64(o, "submitted", true, UINT64_MAX, &j->submitted, err)) ||
        (rc = cs_obj_str(o, "note", true, CS_NOTE_MAX, a, &j->note, err)) ||
        (rc = cs_obj_u64(o, "surge", true, CS_TASK_INDEX_MAX + 1u, &surge, err)) ||
        /* Absent from a server that predates job ends: the job has not. */
        (rc = cs_obj_u64(o, "ended", false, UINT64_MAX, &j->ended, err)))
        return cs_error_wrap(err, rc, "job %s", j->name);
    j->surge = (uint32_t)surge;
    return unpack_state(o, "state", "job", cs_job_state_parse, a, &j->state, err);
}

int cs_unpack_task(const msgpack_object *o, cs_arena *a, cs_task *t, cs_error *err)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return cs_errorf(err, CS_EPROTO, "task: not a map");
    memset(t, 0, sizeof *t);
    uint64_t index = 0, attempts = 0;
    int64_t code = 0;
    int rc;
    if ((rc = cs_obj_u64(o, "id", true, UINT64_MAX, &t->id, err)) ||
        (rc = cs_obj_u64(o, "job", true, CS_JOB_ID_MAX, &t->job, err)) ||
        (rc = cs_obj_u64(o, "index", true, CS_TASK_INDEX_MAX, &index, err)) ||
        (rc = cs_obj_u64(o, "machine", true, UINT64_MAX, &t->machine, err)) ||
        (rc = cs_obj_res(o, "resources", true, &t->res, err)) ||
        (rc = unpack_ports(o, "ports", CS_PORTS_PER_TASK_MAX, a, &t->ports, &t->nports, err)) ||
        (rc = cs_obj_u64(o, "attempts", true, UINT32_MAX, &attempts, err)) ||
        (rc = cs_obj_i64(o, "exit_code", true, INT32_MIN, INT32_MAX, &code, err)) ||
        (rc = cs_obj_str(o, "reason", true, CS_REASON_MAX, a, &t->reason, err)) ||
        (rc = cs_obj_u64(o, "spec", true, UINT64_MAX, &t->spec, err)) ||
        (rc = cs_obj_u64(o, "version", true, UINT64_MAX, &t->version, err)))
        return cs_error_wrap(err, rc, "task");
    if (t->id != cs_task_id(t->job, (uint32_t)index))
        return cs_errorf(err, CS_EPROTO, "task %llu: id does not match job %llu index %llu",
                         (unsigned long long)t->id, (unsigned long long)t->job,
                         (unsigned long long)index);
    t->index = (uint32_t)index;
    t->attempts = (uint32_t)attempts;
    t->exit_code = (int32_t)code;
    if ((rc = unpack_state(o, "state", "task", cs_task_state_parse, a, &t->state, err)) ||
        (rc = unpack_state(o, "last_end", "task", cs_task_state_parse, a, &t->last_end, err)) ||
        (rc = unpack_state(o, "health", "task", cs_task_health_parse, a, &t->health, err)))
        return rc;
    return CS_OK;
}

const char *cs_server_url(const char *flag)
{
    if (flag != NULL && flag[0] != '\0')
        return flag;
    const char *env = getenv(CS_URL_ENV);
    if (env != NULL && env[0] != '\0')
        return env;
    return CS_DEFAULT_URL;
}

int cs_not_map(cs_error *err) { return cs_errorf(err, CS_EPROTO, "message body is not a map"); }
