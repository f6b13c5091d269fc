/* schedreport.c — sched.report bodies and the table of latest reports (see
 * schedreport.h). */
#include "proto/schedreport.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "cellstate/vec.h"
#include "proto/proto.h"

/* ---- the body --------------------------------------------------------------- */

/* A required string field into a fixed buffer of max + 1 bytes. */
static int text_field(const msgpack_object *body, const char *key, size_t max, bool nonempty,
                      char *out, cs_error *err)
{
    const msgpack_object *v = cs_obj_get(body, key);
    if (v == NULL)
        return cs_errorf(err, CS_EPROTO, "field '%s' is missing", key);
    if (v->type != MSGPACK_OBJECT_STR)
        return cs_errorf(err, CS_EPROTO, "field '%s' is not a string", key);
    if (v->via.str.size > max)
        return cs_errorf(err, CS_EINVAL, "field '%s' is longer than %zu bytes", key, max);
    if (nonempty && v->via.str.size == 0)
        return cs_errorf(err, CS_EINVAL, "field '%s' is empty", key);
    if (memchr(v->via.str.ptr, '\0', v->via.str.size) != NULL)
        return cs_errorf(err, CS_EINVAL, "field '%s' contains a NUL byte", key);
    memcpy(out, v->via.str.ptr, v->via.str.size);
    out[v->via.str.size] = '\0';
    return CS_OK;
}

static cs_sched_metric *find_metric(cs_sched_report *r, const char *key)
{
    for (uint32_t i = 0; i < r->nmetrics; i++)
        if (strcmp(r->metrics[i].key, key) == 0)
            return &r->metrics[i];
    return NULL;
}

/* The next free metric slot for `key`, checked as the server checks it. */
static int new_metric(cs_sched_report *r, const char *key, size_t len, cs_sched_metric **out,
                      cs_error *err)
{
    if (len == 0)
        return cs_errorf(err, CS_EINVAL, "field 'metrics': a key is empty");
    if (len > CS_SCHED_METRIC_KEY_MAX)
        return cs_errorf(err, CS_EINVAL, "field 'metrics': key '%.*s...' is longer than %d bytes",
                         CS_SCHED_METRIC_KEY_MAX, key, CS_SCHED_METRIC_KEY_MAX);
    if (memchr(key, '\0', len) != NULL)
        return cs_errorf(err, CS_EINVAL, "field 'metrics': a key contains a NUL byte");
    if (r->nmetrics == CS_SCHED_METRICS_MAX)
        return cs_errorf(err, CS_EINVAL, "field 'metrics': more than %d metrics",
                         CS_SCHED_METRICS_MAX);
    cs_sched_metric *m = &r->metrics[r->nmetrics];
    memcpy(m->key, key, len);
    m->key[len] = '\0';
    if (find_metric(r, m->key) != NULL)
        return cs_errorf(err, CS_EINVAL, "field 'metrics': key '%s' is repeated", m->key);
    *out = m;
    return CS_OK;
}

static int read_metric(cs_sched_report *r, const msgpack_object *k, const msgpack_object *v,
                       cs_error *err)
{
    if (k->type != MSGPACK_OBJECT_STR)
        return cs_errorf(err, CS_EPROTO, "field 'metrics': a key is not a string");
    cs_sched_metric *m;
    CS_TRY(new_metric(r, k->via.str.ptr, k->via.str.size, &m, err));
    switch (v->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        m->type = CS_METRIC_UINT;
        m->v.u = v->via.u64;
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        m->type = CS_METRIC_INT;
        m->v.i = v->via.i64;
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        /* JSON, where cellctl shows them, has no NaN or infinity. */
        if (!isfinite(v->via.f64))
            return cs_errorf(err, CS_EINVAL, "field 'metrics': '%s' is not a finite number",
                             m->key);
        m->type = CS_METRIC_FLOAT;
        m->v.f = v->via.f64;
        break;
    default:
        return cs_errorf(err, CS_EPROTO, "field 'metrics': '%s' is not a number", m->key);
    }
    r->nmetrics++;
    return CS_OK;
}

int cs_sched_report_unpack(const msgpack_object *body, cs_sched_report *out, cs_error *err)
{
    memset(out, 0, sizeof *out);
    CS_TRY(text_field(body, "name", CS_NAME_MAX, true, out->name, err));
    CS_TRY(text_field(body, "kind", CS_SCHED_KIND_MAX, false, out->kind, err));
    if (cs_obj_get(body, "warning") != NULL)
        CS_TRY(text_field(body, "warning", CS_SCHED_WARNING_MAX, false, out->warning, err));
    const msgpack_object *ms = cs_obj_get(body, "metrics");
    if (ms == NULL)
        return cs_errorf(err, CS_EPROTO, "field 'metrics' is missing");
    if (ms->type != MSGPACK_OBJECT_MAP || ms->via.map.size > CS_SCHED_METRICS_MAX)
        return cs_errorf(err, CS_EPROTO, "field 'metrics' is not a map of at most %d numbers",
                         CS_SCHED_METRICS_MAX);
    for (uint32_t i = 0; i < ms->via.map.size; i++)
        CS_TRY(read_metric(out, &ms->via.map.ptr[i].key, &ms->via.map.ptr[i].val, err));
    return CS_OK;
}

static int pack_metrics(msgpack_packer *pk, const cs_sched_report *r)
{
    CS_TRY(cs_pack_str(pk, "metrics"));
    CS_PK(msgpack_pack_map(pk, r->nmetrics));
    for (uint32_t i = 0; i < r->nmetrics; i++) {
        const cs_sched_metric *m = &r->metrics[i];
        CS_TRY(cs_pack_str(pk, m->key));
        if (m->type == CS_METRIC_UINT)
            CS_PK(msgpack_pack_uint64(pk, m->v.u));
        else if (m->type == CS_METRIC_INT)
            CS_PK(msgpack_pack_int64(pk, m->v.i));
        else
            CS_PK(msgpack_pack_double(pk, m->v.f));
    }
    return CS_OK;
}

int cs_sched_report_pack(msgpack_packer *pk, const cs_sched_report *r)
{
    CS_PK(msgpack_pack_map(pk, r->warning[0] ? 4 : 3));
    CS_TRY(cs_pack_kv_str(pk, "name", r->name));
    CS_TRY(cs_pack_kv_str(pk, "kind", r->kind));
    if (r->warning[0])
        CS_TRY(cs_pack_kv_str(pk, "warning", r->warning));
    return pack_metrics(pk, r);
}

/* A metric built by the caller (type and value set; the key is copied
 * from `key`). */
static int add_metric(cs_sched_report *r, const char *key, const cs_sched_metric *value,
                      cs_error *err)
{
    cs_sched_metric *m;
    CS_TRY(new_metric(r, key, strlen(key), &m, err));
    m->type = value->type;
    m->v = value->v;
    r->nmetrics++;
    return CS_OK;
}

int cs_sched_report_add_uint(cs_sched_report *r, const char *key, uint64_t v, cs_error *err)
{
    cs_sched_metric m = {.type = CS_METRIC_UINT, .v.u = v};
    return add_metric(r, key, &m, err);
}

int cs_sched_report_add_float(cs_sched_report *r, const char *key, double v, cs_error *err)
{
    if (!isfinite(v))
        return cs_errorf(err, CS_EINVAL, "metric '%s' is not a finite number", key);
    cs_sched_metric m = {.type = CS_METRIC_FLOAT, .v.f = v};
    return add_metric(r, key, &m, err);
}

/* ---- the table ---------------------------------------------------------------- */

void cs_sched_table_init(cs_sched_table *t) { memset(t, 0, sizeof *t); }

void cs_sched_table_free(cs_sched_table *t)
{
    free(t->v);
    memset(t, 0, sizeof *t);
}

void cs_sched_table_expire(cs_sched_table *t, int64_t now_ms)
{
    size_t k = 0;
    for (size_t i = 0; i < t->n; i++)
        if (now_ms - t->v[i].seen_ms <= CS_SCHED_REPORT_TTL_MS)
            t->v[k++] = t->v[i];
    t->n = k;
}

/* The index of `name`, or where it would be inserted (*found false). */
static size_t lookup(const cs_sched_table *t, const char *name, bool *found)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(t->v[mid].r.name, name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

int cs_sched_table_put(cs_sched_table *t, const cs_sched_report *r, int64_t now_ms,
                       cs_error *err)
{
    cs_sched_table_expire(t, now_ms);
    bool found;
    size_t i = lookup(t, r->name, &found);
    if (!found) {
        if (t->n >= CS_SCHED_TABLE_MAX)
            return cs_errorf(err, CS_EFULL,
                             "scheduler %s: %d other schedulers reported in the last %d minutes",
                             r->name, CS_SCHED_TABLE_MAX, CS_SCHED_REPORT_TTL_MS / 60000);
        cs_sched_entry *v = cs_vec_grow(t->v, &t->cap, t->n + 1, sizeof *v, 8);
        if (v == NULL)
            return cs_errorf(err, CS_ENOMEM, "scheduler %s: out of memory", r->name);
        t->v = v;
        memmove(&t->v[i + 1], &t->v[i], (t->n - i) * sizeof *t->v);
        t->n++;
    }
    t->v[i].r = *r;
    t->v[i].seen_ms = now_ms;
    return CS_OK;
}

int cs_sched_table_pack(const cs_sched_table *t, int64_t now_ms, msgpack_packer *pk)
{
    CS_PK(msgpack_pack_array(pk, t->n));
    for (size_t i = 0; i < t->n; i++) {
        const cs_sched_entry *e = &t->v[i];
        int64_t age = now_ms - e->seen_ms;
        CS_PK(msgpack_pack_map(pk, e->r.warning[0] ? 5 : 4));
        CS_TRY(cs_pack_kv_str(pk, "name", e->r.name));
        CS_TRY(cs_pack_kv_str(pk, "kind", e->r.kind));
        if (e->r.warning[0])
            CS_TRY(cs_pack_kv_str(pk, "warning", e->r.warning));
        CS_TRY(cs_pack_kv_u64(pk, "age_ms", age > 0 ? (uint64_t)age : 0));
        CS_TRY(pack_metrics(pk, &e->r));
    }
    return CS_OK;
}

uint64_t cs_sched_id_of(const char *name) { return XXH3_64bits(name, strlen(name)) | 1; }
