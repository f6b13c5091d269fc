/* record.c — msgpack codec and validation of machines, jobs and tasks.
 *
 * Field order of each record array is documented in docs/design.md; the
 * decoder checks every field's type and the array's length, so a record that
 * an older or newer layout wrote is refused rather than misread.
 */
#include "cellstate/record.h"

#include "cellstate/mpcheck.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* ---- names ------------------------------------------------------------ */

static const char *const machine_states[] = {"up", "draining", "down"};
static const char *const machine_admins[] = {"active", "cordoned", "draining"};
static const char *const job_kinds[] = {"batch", "service"};
static const char *const job_states[] = {"active", "killed", "finished", "failed"};
static const char *const task_states[] = {"pending",  "assigned", "running", "finished",
                                          "failed",   "killed",   "lost",    "preempted"};
static const char *const task_healths[] = {"unknown", "healthy", "unhealthy"};
static const char *const taint_effects[] = {"NoSchedule", "PreferNoSchedule", "NoExecute"};

#define NAME_OF(table, v) ((v) < sizeof(table) / sizeof(table[0]) ? table[v] : "unknown")

const char *cs_machine_state_name(uint8_t s) { return NAME_OF(machine_states, s); }
const char *cs_machine_admin_name(uint8_t a) { return NAME_OF(machine_admins, a); }
const char *cs_job_kind_name(uint8_t k) { return NAME_OF(job_kinds, k); }
const char *cs_job_state_name(uint8_t s) { return NAME_OF(job_states, s); }
const char *cs_task_state_name(uint8_t s) { return NAME_OF(task_states, s); }
const char *cs_task_health_name(uint8_t h) { return NAME_OF(task_healths, h); }
const char *cs_taint_effect_name(uint8_t e) { return NAME_OF(taint_effects, e); }

static int parse_name(const char *const *table, size_t n, const char *name, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(table[i], name) == 0) {
            *out = (uint8_t)i;
            return CS_OK;
        }
    }
    return CS_EINVAL;
}

int cs_taint_effect_parse(const char *name, uint8_t *out)
{
    return parse_name(taint_effects, CS_TAINT_EFFECT_COUNT, name, out);
}

int cs_taint_parse(const char *text, cs_arena *a, cs_taint *out, cs_error *err)
{
    const char *colon = strrchr(text, ':');
    if (colon == NULL)
        return cs_errorf(err, CS_EINVAL,
                         "taint '%.300s': expected key=value:Effect or key:Effect", text);
    if (cs_taint_effect_parse(colon + 1, &out->effect) != CS_OK)
        return cs_errorf(err, CS_EINVAL,
                         "taint '%.300s': effect '%.64s' is not NoSchedule, PreferNoSchedule or "
                         "NoExecute",
                         text, colon + 1);
    const char *eq = memchr(text, '=', (size_t)(colon - text));
    size_t klen = (size_t)((eq ? eq : colon) - text);
    size_t vlen = eq ? (size_t)(colon - eq - 1) : 0;
    if (klen == 0)
        return cs_errorf(err, CS_EINVAL, "taint '%.300s': the key is empty", text);
    if (klen > CS_ATTR_LEN_MAX || vlen > CS_ATTR_LEN_MAX)
        return cs_errorf(err, CS_EINVAL, "taint '%.300s': key or value is longer than %d bytes",
                         text, CS_ATTR_LEN_MAX);
    out->key = cs_arena_strndup(a, text, klen);
    out->value = cs_arena_strndup(a, eq ? eq + 1 : "", vlen);
    if (out->key == NULL || out->value == NULL)
        return cs_errorf(err, CS_ENOMEM, "taint: out of memory");
    return CS_OK;
}

static int cmp_taint(const void *x, const void *y)
{
    const cs_taint *a = x, *b = y;
    int c = strcmp(a->key, b->key);
    return c != 0 ? c : (int)a->effect - (int)b->effect;
}

void cs_taints_sort(cs_taint *t, uint32_t n)
{
    if (n > 1)
        qsort(t, n, sizeof *t, cmp_taint);
}

int cs_machine_state_parse(const char *name, uint8_t *out)
{
    return parse_name(machine_states, CS_MACHINE_STATE_COUNT, name, out);
}

int cs_machine_admin_parse(const char *name, uint8_t *out)
{
    return parse_name(machine_admins, CS_ADMIN_COUNT, name, out);
}
int cs_task_state_parse(const char *name, uint8_t *out)
{
    return parse_name(task_states, CS_TASK_STATE_COUNT, name, out);
}
int cs_job_kind_parse(const char *name, uint8_t *out)
{
    return parse_name(job_kinds, CS_JOB_KIND_COUNT, name, out);
}
int cs_job_state_parse(const char *name, uint8_t *out)
{
    return parse_name(job_states, CS_JOB_STATE_COUNT, name, out);
}
int cs_task_health_parse(const char *name, uint8_t *out)
{
    return parse_name(task_healths, CS_TASK_HEALTH_COUNT, name, out);
}

/* ---- encoding --------------------------------------------------------- */

/* msgpack-c's packer returns -1 only when the sbuffer cannot grow. */
#define PK(call)                  \
    do {                          \
        if ((call) != 0)          \
            return CS_ENOMEM;     \
    } while (0)

int cs_pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    PK(msgpack_pack_str(pk, n));
    if (n > 0)
        PK(msgpack_pack_str_body(pk, s, n));
    return CS_OK;
}

static int pack_res(msgpack_packer *pk, const cs_res *r)
{
    PK(msgpack_pack_array(pk, 3));
    PK(msgpack_pack_int64(pk, r->cpu));
    PK(msgpack_pack_int64(pk, r->mem));
    PK(msgpack_pack_int64(pk, r->disk));
    return CS_OK;
}

static int pack_ports(msgpack_packer *pk, const uint16_t *p, uint32_t n)
{
    PK(msgpack_pack_array(pk, n));
    for (uint32_t i = 0; i < n; i++)
        PK(msgpack_pack_uint16(pk, p[i]));
    return CS_OK;
}

/* An optional string: nil when empty, so that records without one keep
 * their bytes small and one canonical form. */
static int pack_opt_str(msgpack_packer *pk, const char *s)
{
    if (s != NULL && s[0] != '\0')
        return cs_pack_str(pk, s);
    PK(msgpack_pack_nil(pk));
    return CS_OK;
}

enum { MACHINE_FIELDS = 13, JOB_FIELDS = 18, TASK_FIELDS = 15 };

int cs_machine_encode(const cs_machine *m, msgpack_sbuffer *buf)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
    PK(msgpack_pack_array(&pk, MACHINE_FIELDS));
    PK(msgpack_pack_uint64(&pk, m->id));
    CS_TRY(cs_pack_str(&pk, m->name));
    PK(msgpack_pack_array(&pk, m->nattrs * 2));
    for (uint32_t i = 0; i < m->nattrs; i++) {
        CS_TRY(cs_pack_str(&pk, m->attrs[i].key));
        CS_TRY(cs_pack_str(&pk, m->attrs[i].value));
    }
    CS_TRY(pack_res(&pk, &m->capacity));
    PK(msgpack_pack_uint16(&pk, m->port_lo));
    PK(msgpack_pack_uint16(&pk, m->port_hi));
    /* The allocation (allocated, ports, ntasks) and seq are not stored: the
     * store derives them from the placed tasks (cellstate/alloc.h). */
    PK(msgpack_pack_uint8(&pk, m->state));
    PK(msgpack_pack_uint64(&pk, m->version));
    PK(msgpack_pack_nil(&pk)); /* reserved: keeps the layout extensible without a schema bump */
    PK(msgpack_pack_uint8(&pk, m->admin));
    PK(msgpack_pack_uint64(&pk, m->drain_deadline));
    CS_TRY(pack_opt_str(&pk, m->log_url));
    /* Taints: [key, value, effect] flattened, as attrs are pairs. */
    PK(msgpack_pack_array(&pk, m->ntaints * 3));
    for (uint32_t i = 0; i < m->ntaints; i++) {
        CS_TRY(cs_pack_str(&pk, m->taints[i].key));
        CS_TRY(cs_pack_str(&pk, m->taints[i].value));
        PK(msgpack_pack_uint8(&pk, m->taints[i].effect));
    }
    return CS_OK;
}

/* The spec part of a job, shared by the record encoding and the spec hash so
 * that the two can never disagree on what "the spec" is. The hash leaves
 * out `count` (with_count false): scaling is not a new version of what the
 * tasks run. */
static int pack_job_spec(msgpack_packer *pk, const cs_job *j, bool with_count)
{
    CS_TRY(cs_pack_str(pk, j->name));
    PK(msgpack_pack_uint8(pk, j->kind));
    PK(msgpack_pack_int32(pk, j->priority));
    if (with_count)
        PK(msgpack_pack_uint32(pk, j->count));
    CS_TRY(pack_res(pk, &j->res));
    CS_TRY(pack_ports(pk, j->ports, j->nports));
    PK(msgpack_pack_array(pk, j->nconstraints));
    for (uint32_t i = 0; i < j->nconstraints; i++) {
        const cs_constraint *c = &j->constraints[i];
        PK(msgpack_pack_array(pk, 4));
        CS_TRY(cs_pack_str(pk, c->field));
        CS_TRY(cs_pack_str(pk, c->op));
        CS_TRY(cs_pack_str(pk, c->value));
        PK(c->soft ? msgpack_pack_true(pk) : msgpack_pack_false(pk));
    }
    CS_TRY(cs_pack_str(pk, j->cmd));
    PK(msgpack_pack_bin(pk, j->extra_len));
    if (j->extra_len > 0)
        PK(msgpack_pack_bin_body(pk, j->extra, j->extra_len));
    return CS_OK;
}

int cs_job_encode(const cs_job *j, msgpack_sbuffer *buf)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
    PK(msgpack_pack_array(&pk, JOB_FIELDS));
    PK(msgpack_pack_uint64(&pk, j->id));
    PK(msgpack_pack_uint8(&pk, j->state));
    CS_TRY(pack_job_spec(&pk, j, true)); /* 9 fields */
    PK(msgpack_pack_uint64(&pk, j->spec_hash));
    PK(msgpack_pack_uint64(&pk, j->version));
    PK(msgpack_pack_uint64(&pk, j->submitted));
    CS_TRY(pack_opt_str(&pk, j->note));
    PK(msgpack_pack_uint32(&pk, j->surge));
    PK(msgpack_pack_uint64(&pk, j->ended));
    PK(msgpack_pack_nil(&pk)); /* reserved */
    return CS_OK;
}

int cs_task_encode(const cs_task *t, msgpack_sbuffer *buf)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
    PK(msgpack_pack_array(&pk, TASK_FIELDS));
    PK(msgpack_pack_uint64(&pk, t->id));
    PK(msgpack_pack_uint64(&pk, t->job));
    PK(msgpack_pack_uint32(&pk, t->index));
    PK(msgpack_pack_uint8(&pk, t->state));
    PK(msgpack_pack_uint8(&pk, t->last_end));
    PK(msgpack_pack_uint64(&pk, t->machine));
    CS_TRY(pack_res(&pk, &t->res));
    CS_TRY(pack_ports(&pk, t->ports, t->nports));
    PK(msgpack_pack_uint32(&pk, t->attempts));
    PK(msgpack_pack_int32(&pk, t->exit_code));
    PK(msgpack_pack_uint64(&pk, t->version));
    CS_TRY(pack_opt_str(&pk, t->reason));
    PK(msgpack_pack_uint8(&pk, t->health));
    PK(msgpack_pack_uint64(&pk, t->spec));
    PK(msgpack_pack_nil(&pk)); /* reserved */
    return CS_OK;
}

int cs_job_spec_hash(const cs_job *j, uint64_t *out)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = pack_job_spec(&pk, j, false);
    if (rc == CS_OK)
        *out = XXH3_64bits(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* ---- decoding --------------------------------------------------------- */

/* A decoding context: the record kind for messages, the arena for results. */
typedef struct dec {
    const char *what;
    cs_arena *a;
    cs_error *err;
} dec;

static int bad(dec *d, const char *field, const char *why)
{
    return cs_errorf(d->err, CS_ECORRUPT, "%s record: field '%s' %s", d->what, field, why);
}

static int get_u64(dec *d, const msgpack_object *o, const char *field, uint64_t max, uint64_t *out)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return bad(d, field, "is not an unsigned integer");
    if (o->via.u64 > max)
        return bad(d, field, "is out of range");
    *out = o->via.u64;
    return CS_OK;
}

static int get_i64(dec *d, const msgpack_object *o, const char *field, int64_t min, int64_t max,
                   int64_t *out)
{
    int64_t v = 0;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > (uint64_t)INT64_MAX)
            return bad(d, field, "is out of range");
        v = (int64_t)o->via.u64;
    } else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        v = o->via.i64;
    } else {
        return bad(d, field, "is not an integer");
    }
    if (v < min || v > max)
        return bad(d, field, "is out of range");
    *out = v;
    return CS_OK;
}

static int get_u32(dec *d, const msgpack_object *o, const char *field, uint32_t *out)
{
    uint64_t v = 0;
    CS_TRY(get_u64(d, o, field, UINT32_MAX, &v));
    *out = (uint32_t)v;
    return CS_OK;
}

static int get_u8(dec *d, const msgpack_object *o, const char *field, uint8_t limit, uint8_t *out)
{
    uint64_t v = 0;
    CS_TRY(get_u64(d, o, field, (uint64_t)limit - 1, &v));
    *out = (uint8_t)v;
    return CS_OK;
}

static int get_str(dec *d, const msgpack_object *o, const char *field, size_t max, const char **out)
{
    if (o->type != MSGPACK_OBJECT_STR)
        return bad(d, field, "is not a string");
    if (o->via.str.size > max)
        return bad(d, field, "is too long");
    if (memchr(o->via.str.ptr, '\0', o->via.str.size) != NULL)
        return bad(d, field, "contains a NUL byte");
    char *s = cs_arena_strndup(d->a, o->via.str.ptr, o->via.str.size);
    if (s == NULL)
        return cs_errorf(d->err, CS_ENOMEM, "%s record: out of memory", d->what);
    *out = s;
    return CS_OK;
}

/* A string that is encoded as nil when empty (pack_opt_str). */
static int get_opt_str(dec *d, const msgpack_object *o, const char *field, size_t max,
                       const char **out)
{
    *out = "";
    return o->type == MSGPACK_OBJECT_NIL ? CS_OK : get_str(d, o, field, max, out);
}

/* A reserved slot: nil until a later layout gives it a meaning. */
static int get_reserved(dec *d, const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_NIL ? CS_OK : bad(d, "reserved", "is not nil");
}

static int get_res(dec *d, const msgpack_object *o, const char *field, cs_res *out)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 3)
        return bad(d, field, "is not an array of 3 integers");
    const msgpack_object *v = o->via.array.ptr;
    CS_TRY(get_i64(d, &v[0], field, 0, CS_RES_MAX * 16, &out->cpu));
    CS_TRY(get_i64(d, &v[1], field, 0, CS_RES_MAX * 16, &out->mem));
    CS_TRY(get_i64(d, &v[2], field, 0, CS_RES_MAX * 16, &out->disk));
    return CS_OK;
}

static int get_ports(dec *d, const msgpack_object *o, const char *field, uint32_t max,
                     uint16_t **out, uint32_t *n)
{
    if (o->type != MSGPACK_OBJECT_ARRAY)
        return bad(d, field, "is not an array");
    if (o->via.array.size > max)
        return bad(d, field, "has too many ports");
    uint32_t cnt = o->via.array.size;
    uint16_t *p = NULL;
    if (cnt > 0) {
        p = cs_arena_alloc(d->a, cnt * sizeof *p);
        if (p == NULL)
            return cs_errorf(d->err, CS_ENOMEM, "%s record: out of memory", d->what);
    }
    for (uint32_t i = 0; i < cnt; i++) {
        uint64_t v = 0;
        CS_TRY(get_u64(d, &o->via.array.ptr[i], field, UINT16_MAX, &v));
        p[i] = (uint16_t)v;
    }
    *out = p;
    *n = cnt;
    return CS_OK;
}

/* Unpack exactly one msgpack array of `fields` elements spanning all of
 * `data`: trailing bytes mean a record written over another, or a torn one. */
/* `label` is d->what + " record", a literal: formatting it here would cost
 * every decode an snprintf for a text only an error needs. */
static int unpack_record(dec *d, const char *label, const void *data, size_t len,
                         msgpack_zone *zone, uint32_t fields, const msgpack_object **out)
{
    msgpack_object obj;
    int rc = cs_mp_unpack(data, len, zone, &obj, CS_ECORRUPT, label, d->err);
    if (rc != CS_OK)
        return rc;
    if (obj.type != MSGPACK_OBJECT_ARRAY || obj.via.array.size != fields)
        return cs_errorf(d->err, CS_ECORRUPT, "%s record: expected an array of %u fields",
                         d->what, fields);
    msgpack_object *copy = cs_arena_alloc(d->a, sizeof *copy);
    if (copy == NULL)
        return cs_errorf(d->err, CS_ENOMEM, "%s record: out of memory", d->what);
    *copy = obj;
    *out = copy;
    return CS_OK;
}

int cs_machine_decode(const void *data, size_t len, cs_arena *a, cs_machine *m, cs_error *err)
{
    dec d = {"machine", a, err};
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, 2048))
        return cs_errorf(err, CS_ENOMEM, "machine record: out of memory");
    const msgpack_object *root;
    int rc = unpack_record(&d, "machine record", data, len, &zone, MACHINE_FIELDS, &root);
    if (rc != CS_OK)
        goto out;
    const msgpack_object *f = root->via.array.ptr;
    memset(m, 0, sizeof *m);
    uint64_t v = 0;
    if ((rc = get_u64(&d, &f[0], "id", UINT64_MAX, &m->id)) ||
        (rc = get_str(&d, &f[1], "name", CS_NAME_MAX, &m->name)))
        goto out;
    if (f[2].type != MSGPACK_OBJECT_ARRAY || f[2].via.array.size % 2 != 0 ||
        f[2].via.array.size / 2 > CS_ATTR_MAX) {
        rc = bad(&d, "attrs", "is not an array of key, value pairs");
        goto out;
    }
    m->nattrs = f[2].via.array.size / 2;
    if (m->nattrs > 0 && (m->attrs = cs_arena_alloc(a, m->nattrs * sizeof *m->attrs)) == NULL) {
        rc = cs_errorf(err, CS_ENOMEM, "machine record: out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < m->nattrs; i++) {
        if ((rc = get_str(&d, &f[2].via.array.ptr[2 * i], "attrs", CS_ATTR_LEN_MAX, &m->attrs[i].key)) ||
            (rc = get_str(&d, &f[2].via.array.ptr[2 * i + 1], "attrs", CS_ATTR_LEN_MAX,
                          &m->attrs[i].value)))
            goto out;
    }
    if ((rc = get_res(&d, &f[3], "capacity", &m->capacity)) ||
        (rc = get_u64(&d, &f[4], "port_lo", UINT16_MAX, &v)))
        goto out;
    m->port_lo = (uint16_t)v;
    if ((rc = get_u64(&d, &f[5], "port_hi", UINT16_MAX, &v)))
        goto out;
    m->port_hi = (uint16_t)v;
    if ((rc = get_u8(&d, &f[6], "state", CS_MACHINE_STATE_COUNT, &m->state)) ||
        (rc = get_u64(&d, &f[7], "version", UINT64_MAX, &m->version)) ||
        (rc = get_u8(&d, &f[9], "admin", CS_ADMIN_COUNT, &m->admin)) ||
        (rc = get_u64(&d, &f[10], "drain_deadline", UINT64_MAX, &m->drain_deadline)) ||
        (rc = get_opt_str(&d, &f[11], "log_url", CS_URL_MAX, &m->log_url)))
        goto out;
    if (m->log_url == NULL)
        m->log_url = "";
    m->seq = m->version; /* the store raises it to the machine's last change */
    if ((rc = get_reserved(&d, &f[8])))
        goto out;
    if (f[12].type != MSGPACK_OBJECT_ARRAY || f[12].via.array.size % 3 != 0 ||
        f[12].via.array.size / 3 > CS_TAINT_MAX) {
        rc = bad(&d, "taints", "is not an array of key, value, effect triples");
        goto out;
    }
    m->ntaints = f[12].via.array.size / 3;
    if (m->ntaints > 0 && (m->taints = cs_arena_alloc(a, m->ntaints * sizeof *m->taints)) == NULL) {
        rc = cs_errorf(err, CS_ENOMEM, "machine record: out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < m->ntaints; i++) {
        const msgpack_object *t = &f[12].via.array.ptr[3 * i];
        if ((rc = get_str(&d, &t[0], "taints", CS_ATTR_LEN_MAX, &m->taints[i].key)) ||
            (rc = get_str(&d, &t[1], "taints", CS_ATTR_LEN_MAX, &m->taints[i].value)) ||
            (rc = get_u8(&d, &t[2], "taints", CS_TAINT_EFFECT_COUNT, &m->taints[i].effect)))
            goto out;
    }
out:
    msgpack_zone_destroy(&zone);
    return rc;
}

int cs_job_decode(const void *data, size_t len, cs_arena *a, cs_job *j, cs_error *err)
{
    dec d = {"job", a, err};
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, 2048))
        return cs_errorf(err, CS_ENOMEM, "job record: out of memory");
    const msgpack_object *root;
    int rc = unpack_record(&d, "job record", data, len, &zone, JOB_FIELDS, &root);
    if (rc != CS_OK)
        goto out;
    const msgpack_object *f = root->via.array.ptr;
    memset(j, 0, sizeof *j);
    int64_t prio;
    if ((rc = get_u64(&d, &f[0], "id", CS_JOB_ID_MAX, &j->id)) ||
        (rc = get_u8(&d, &f[1], "state", CS_JOB_STATE_COUNT, &j->state)) ||
        (rc = get_str(&d, &f[2], "name", CS_NAME_MAX, &j->name)) ||
        (rc = get_u8(&d, &f[3], "kind", CS_JOB_KIND_COUNT, &j->kind)) ||
        (rc = get_i64(&d, &f[4], "priority", INT32_MIN, INT32_MAX, &prio)) ||
        (rc = get_u32(&d, &f[5], "count", &j->count)) ||
        (rc = get_res(&d, &f[6], "resources", &j->res)) ||
        (rc = get_ports(&d, &f[7], "ports", CS_PORTS_PER_TASK_MAX, &j->ports, &j->nports)))
        goto out;
    j->priority = (int32_t)prio;
    const msgpack_object *cs = &f[8];
    if (cs->type != MSGPACK_OBJECT_ARRAY || cs->via.array.size > CS_CONSTRAINT_MAX) {
        rc = bad(&d, "constraints", "is not an array of constraints");
        goto out;
    }
    j->nconstraints = cs->via.array.size;
    if (j->nconstraints > 0 &&
        (j->constraints = cs_arena_alloc(a, j->nconstraints * sizeof *j->constraints)) == NULL) {
        rc = cs_errorf(err, CS_ENOMEM, "job record: out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < j->nconstraints; i++) {
        const msgpack_object *c = &cs->via.array.ptr[i];
        if (c->type != MSGPACK_OBJECT_ARRAY || c->via.array.size != 4 ||
            c->via.array.ptr[3].type != MSGPACK_OBJECT_BOOLEAN) {
            rc = bad(&d, "constraints", "has an entry that is not [field, op, value, soft]");
            goto out;
        }
        if ((rc = get_str(&d, &c->via.array.ptr[0], "constraints", CS_ATTR_LEN_MAX,
                          &j->constraints[i].field)) ||
            (rc = get_str(&d, &c->via.array.ptr[1], "constraints", CS_ATTR_LEN_MAX,
                          &j->constraints[i].op)) ||
            (rc = get_str(&d, &c->via.array.ptr[2], "constraints", CS_ATTR_LEN_MAX,
                          &j->constraints[i].value)))
            goto out;
        j->constraints[i].soft = c->via.array.ptr[3].via.boolean;
    }
    if ((rc = get_str(&d, &f[9], "cmd", CS_CMD_MAX, &j->cmd)))
        goto out;
    if (f[10].type != MSGPACK_OBJECT_BIN || f[10].via.bin.size > CS_EXTRA_MAX) {
        rc = bad(&d, "extra", "is not a binary of at most 64 KiB");
        goto out;
    }
    j->extra_len = f[10].via.bin.size;
    if (j->extra_len > 0) {
        uint8_t *e = cs_arena_alloc(a, j->extra_len);
        if (e == NULL) {
            rc = cs_errorf(err, CS_ENOMEM, "job record: out of memory");
            goto out;
        }
        memcpy(e, f[10].via.bin.ptr, j->extra_len);
        j->extra = e;
    }
    if ((rc = get_u64(&d, &f[11], "spec_hash", UINT64_MAX, &j->spec_hash)) ||
        (rc = get_u64(&d, &f[12], "version", UINT64_MAX, &j->version)) ||
        (rc = get_u64(&d, &f[13], "submitted", UINT64_MAX, &j->submitted)) ||
        (rc = get_opt_str(&d, &f[14], "note", CS_NOTE_MAX, &j->note)) ||
        (rc = get_u32(&d, &f[15], "surge", &j->surge)) ||
        (rc = get_u64(&d, &f[16], "ended", UINT64_MAX, &j->ended)) ||
        (rc = get_reserved(&d, &f[17])))
        goto out;
out:
    msgpack_zone_destroy(&zone);
    return rc;
}

int cs_task_decode(const void *data, size_t len, cs_arena *a, cs_task *t, cs_error *err)
{
    dec d = {"task", a, err};
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, 1024))
        return cs_errorf(err, CS_ENOMEM, "task record: out of memory");
    const msgpack_object *root;
    int rc = unpack_record(&d, "task record", data, len, &zone, TASK_FIELDS, &root);
    if (rc != CS_OK)
        goto out;
    const msgpack_object *f = root->via.array.ptr;
    memset(t, 0, sizeof *t);
    int64_t code;
    if ((rc = get_u64(&d, &f[0], "id", UINT64_MAX, &t->id)) ||
        (rc = get_u64(&d, &f[1], "job", CS_JOB_ID_MAX, &t->job)) ||
        (rc = get_u32(&d, &f[2], "index", &t->index)) ||
        (rc = get_u8(&d, &f[3], "state", CS_TASK_STATE_COUNT, &t->state)) ||
        (rc = get_u8(&d, &f[4], "last_end", CS_TASK_STATE_COUNT, &t->last_end)) ||
        (rc = get_u64(&d, &f[5], "machine", UINT64_MAX, &t->machine)) ||
        (rc = get_res(&d, &f[6], "resources", &t->res)) ||
        (rc = get_ports(&d, &f[7], "ports", CS_PORTS_PER_TASK_MAX, &t->ports, &t->nports)) ||
        (rc = get_u32(&d, &f[8], "attempts", &t->attempts)) ||
        (rc = get_i64(&d, &f[9], "exit_code", INT32_MIN, INT32_MAX, &code)) ||
        (rc = get_u64(&d, &f[10], "version", UINT64_MAX, &t->version)))
        goto out;
    t->exit_code = (int32_t)code;
    if ((rc = get_opt_str(&d, &f[11], "reason", CS_REASON_MAX, &t->reason)) ||
        (rc = get_u8(&d, &f[12], "health", CS_TASK_HEALTH_COUNT, &t->health)) ||
        (rc = get_u64(&d, &f[13], "spec", UINT64_MAX, &t->spec)) ||
        (rc = get_reserved(&d, &f[14])))
        goto out;
    if (t->index > CS_TASK_INDEX_MAX)
        rc = bad(&d, "index", "is out of range");
    else if (t->id != cs_task_id(t->job, t->index))
        rc = bad(&d, "id", "does not match its job and index");
out:
    msgpack_zone_destroy(&zone);
    return rc;
}

/* ---- validation ------------------------------------------------------- */

int cs_res_validate(const cs_res *r, const char *what, cs_error *err)
{
    const struct {
        const char *name;
        int64_t v;
    } f[] = {{"cpu", r->cpu}, {"mem", r->mem}, {"disk", r->disk}};
    for (size_t i = 0; i < 3; i++) {
        if (f[i].v < 0)
            return cs_errorf(err, CS_EINVAL, "%s: %s is negative (%lld)", what, f[i].name,
                             (long long)f[i].v);
        if (f[i].v > CS_RES_MAX)
            return cs_errorf(err, CS_EINVAL, "%s: %s is too large (%lld > %lld)", what, f[i].name,
                             (long long)f[i].v, (long long)CS_RES_MAX);
    }
    return CS_OK;
}

static int check_name(const char *what, const char *name, cs_error *err)
{
    if (name == NULL || name[0] == '\0')
        return cs_errorf(err, CS_EINVAL, "%s: name is empty", what);
    if (strlen(name) > CS_NAME_MAX)
        return cs_errorf(err, CS_EINVAL, "%s: name is longer than %d bytes", what, CS_NAME_MAX);
    return CS_OK;
}

int cs_machine_validate(const cs_machine *m, cs_error *err)
{
    CS_TRY(check_name("machine", m->name, err));
    CS_TRY(cs_res_validate(&m->capacity, "machine capacity", err));
    if (m->port_lo > m->port_hi)
        return cs_errorf(err, CS_EINVAL, "machine %s: port range %u-%u is reversed", m->name,
                         m->port_lo, m->port_hi);
    if (m->port_lo == 0 && m->port_hi != 0)
        return cs_errorf(err, CS_EINVAL, "machine %s: port range may not include port 0", m->name);
    if (m->state >= CS_MACHINE_STATE_COUNT)
        return cs_errorf(err, CS_EINVAL, "machine %s: unknown state %u", m->name, m->state);
    if (m->admin >= CS_ADMIN_COUNT)
        return cs_errorf(err, CS_EINVAL, "machine %s: unknown admin state %u", m->name, m->admin);
    if (m->log_url != NULL && strlen(m->log_url) > CS_URL_MAX)
        return cs_errorf(err, CS_EINVAL, "machine %s: log_url is longer than %d bytes", m->name,
                         CS_URL_MAX);
    if (m->nattrs > CS_ATTR_MAX)
        return cs_errorf(err, CS_EINVAL, "machine %s: more than %d attributes", m->name, CS_ATTR_MAX);
    for (uint32_t i = 0; i < m->nattrs; i++) {
        const cs_attr *at = &m->attrs[i];
        if (at->key == NULL || at->key[0] == '\0' || at->value == NULL)
            return cs_errorf(err, CS_EINVAL, "machine %s: attribute %u has an empty key", m->name, i);
        if (strlen(at->key) > CS_ATTR_LEN_MAX || strlen(at->value) > CS_ATTR_LEN_MAX)
            return cs_errorf(err, CS_EINVAL, "machine %s: attribute %s is longer than %d bytes",
                             m->name, at->key, CS_ATTR_LEN_MAX);
        if (i > 0 && strcmp(m->attrs[i - 1].key, at->key) >= 0)
            return cs_errorf(err, CS_EINVAL,
                             "machine %s: attributes are not sorted by key or repeat %s", m->name,
                             at->key);
    }
    if (m->ntaints > CS_TAINT_MAX)
        return cs_errorf(err, CS_EINVAL, "machine %s: more than %d taints", m->name, CS_TAINT_MAX);
    for (uint32_t i = 0; i < m->ntaints; i++) {
        const cs_taint *t = &m->taints[i];
        if (t->key == NULL || t->key[0] == '\0' || t->value == NULL)
            return cs_errorf(err, CS_EINVAL, "machine %s: taint %u has an empty key", m->name, i);
        if (strlen(t->key) > CS_ATTR_LEN_MAX || strlen(t->value) > CS_ATTR_LEN_MAX)
            return cs_errorf(err, CS_EINVAL, "machine %s: taint %s is longer than %d bytes",
                             m->name, t->key, CS_ATTR_LEN_MAX);
        if (t->effect >= CS_TAINT_EFFECT_COUNT)
            return cs_errorf(err, CS_EINVAL, "machine %s: taint %s has the unknown effect %u",
                             m->name, t->key, t->effect);
        if (i > 0 && cmp_taint(&m->taints[i - 1], t) >= 0)
            return cs_errorf(err, CS_EINVAL,
                             "machine %s: taints are not sorted or repeat %s:%s", m->name, t->key,
                             cs_taint_effect_name(t->effect));
    }
    return CS_OK;
}

int cs_job_validate(const cs_job *j, cs_error *err)
{
    CS_TRY(check_name("job", j->name, err));
    if (j->kind >= CS_JOB_KIND_COUNT)
        return cs_errorf(err, CS_EINVAL, "job %s: unknown kind %u", j->name, j->kind);
    if (j->count > CS_TASK_INDEX_MAX + 1u)
        return cs_errorf(err, CS_EINVAL, "job %s: count %u exceeds %u tasks", j->name, j->count,
                         CS_TASK_INDEX_MAX + 1u);
    char what[CS_NAME_MAX + 32];
    snprintf(what, sizeof what, "job %s resources", j->name);
    CS_TRY(cs_res_validate(&j->res, what, err));
    if (j->nports > CS_PORTS_PER_TASK_MAX)
        return cs_errorf(err, CS_EINVAL, "job %s: more than %d ports per task", j->name,
                         CS_PORTS_PER_TASK_MAX);
    for (uint32_t i = 0; i < j->nports; i++)
        for (uint32_t k = 0; k < i; k++)
            if (j->ports[i] != 0 && j->ports[i] == j->ports[k])
                return cs_errorf(err, CS_EINVAL, "job %s: port %u is asked for twice", j->name,
                                 j->ports[i]);
    if (j->nconstraints > CS_CONSTRAINT_MAX)
        return cs_errorf(err, CS_EINVAL, "job %s: more than %d constraints", j->name,
                         CS_CONSTRAINT_MAX);
    for (uint32_t i = 0; i < j->nconstraints; i++) {
        const cs_constraint *c = &j->constraints[i];
        if (c->field == NULL || c->field[0] == '\0' || c->op == NULL || c->op[0] == '\0')
            return cs_errorf(err, CS_EINVAL, "job %s: constraint %u lacks a field or operator",
                             j->name, i);
        if (strlen(c->field) > CS_ATTR_LEN_MAX || strlen(c->op) > CS_ATTR_LEN_MAX ||
            (c->value && strlen(c->value) > CS_ATTR_LEN_MAX))
            return cs_errorf(err, CS_EINVAL, "job %s: constraint %u is too long", j->name, i);
    }
    if (j->cmd != NULL && strlen(j->cmd) > CS_CMD_MAX)
        return cs_errorf(err, CS_EINVAL, "job %s: cmd is longer than %d bytes", j->name, CS_CMD_MAX);
    if (j->extra_len > CS_EXTRA_MAX)
        return cs_errorf(err, CS_EINVAL, "job %s: options are larger than %d bytes", j->name,
                         CS_EXTRA_MAX);
    return CS_OK;
}

/* ---- copies and ports ------------------------------------------------- */

static const char *dup_str(cs_arena *a, const char *s)
{
    return s ? cs_arena_strndup(a, s, strlen(s)) : cs_arena_strndup(a, "", 0);
}

static void *dup_mem(cs_arena *a, const void *p, size_t n)
{
    if (n == 0)
        return NULL;
    void *q = cs_arena_alloc(a, n);
    if (q != NULL)
        memcpy(q, p, n);
    return q;
}

int cs_machine_copy(const cs_machine *src, cs_arena *a, cs_machine *dst)
{
    *dst = *src;
    dst->name = dup_str(a, src->name);
    dst->attrs = dup_mem(a, src->attrs, src->nattrs * sizeof *src->attrs);
    dst->ports = dup_mem(a, src->ports, src->nports * sizeof *src->ports);
    dst->log_url = src->log_url ? dup_str(a, src->log_url) : NULL;
    if (dst->name == NULL || (src->nattrs && dst->attrs == NULL) ||
        (src->nports && dst->ports == NULL) || (src->log_url && dst->log_url == NULL))
        return CS_ENOMEM;
    for (uint32_t i = 0; i < src->nattrs; i++) {
        dst->attrs[i].key = dup_str(a, src->attrs[i].key);
        dst->attrs[i].value = dup_str(a, src->attrs[i].value);
        if (dst->attrs[i].key == NULL || dst->attrs[i].value == NULL)
            return CS_ENOMEM;
    }
    dst->taints = dup_mem(a, src->taints, src->ntaints * sizeof *src->taints);
    if (src->ntaints && dst->taints == NULL)
        return CS_ENOMEM;
    for (uint32_t i = 0; i < src->ntaints; i++) {
        dst->taints[i].key = dup_str(a, src->taints[i].key);
        dst->taints[i].value = dup_str(a, src->taints[i].value);
        if (dst->taints[i].key == NULL || dst->taints[i].value == NULL)
            return CS_ENOMEM;
    }
    return CS_OK;
}

int cs_job_copy(const cs_job *src, cs_arena *a, cs_job *dst)
{
    *dst = *src;
    dst->name = dup_str(a, src->name);
    dst->cmd = dup_str(a, src->cmd);
    dst->note = dup_str(a, src->note);
    dst->ports = dup_mem(a, src->ports, src->nports * sizeof *src->ports);
    dst->extra = dup_mem(a, src->extra, src->extra_len);
    dst->constraints = dup_mem(a, src->constraints, src->nconstraints * sizeof *src->constraints);
    if (dst->name == NULL || dst->cmd == NULL || dst->note == NULL ||
        (src->nports && dst->ports == NULL) ||
        (src->extra_len && dst->extra == NULL) || (src->nconstraints && dst->constraints == NULL))
        return CS_ENOMEM;
    for (uint32_t i = 0; i < src->nconstraints; i++) {
        cs_constraint *c = &dst->constraints[i];
        c->field = dup_str(a, src->constraints[i].field);
        c->op = dup_str(a, src->constraints[i].op);
        c->value = dup_str(a, src->constraints[i].value);
        if (c->field == NULL || c->op == NULL || c->value == NULL)
            return CS_ENOMEM;
    }
    return CS_OK;
}

bool cs_ports_contains(const uint16_t *ports, uint32_t n, uint16_t port)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (ports[mid] < port)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && ports[lo] == port;
}
