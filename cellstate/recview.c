/* recview.c — task records decoded in place (see recview.h). The layout is
 * cs_task_encode's (record.c, schema 3): an array of 15 fields, [id, job,
 * index, state, last_end, machine, [cpu, mem, disk], [ports...], attempts,
 * exit_code, version, reason or nil, health, spec, nil (reserved)]; the
 * limits are cs_task_decode's. */
#include "cellstate/recview.h"

#include <stdint.h>
#include <string.h>

/* What this file reads: the number of fields of cs_task_encode's array. */
#define TASK_FIELDS 15

typedef struct rv {
    const uint8_t *p, *end;
} rv;

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* The next byte, or false at the end. */
static bool rv_byte(rv *r, uint8_t *out)
{
    if (r->p == r->end)
        return false;
    *out = *r->p++;
    return true;
}

/* `n` bytes big-endian. */
static bool rv_be(rv *r, int n, uint64_t *out)
{
    if (r->end - r->p < n)
        return false;
    *out = be(r->p, n);
    r->p += n;
    return true;
}

/* An unsigned integer (positive fixint or uint 8..64) at most `max`. */
static bool rv_uint(rv *r, uint64_t max, uint64_t *out)
{
    uint8_t c;
    if (!rv_byte(r, &c))
        return false;
    uint64_t v = c;
    if (c >= 0xcc && c <= 0xcf) {
        if (!rv_be(r, 1 << (c - 0xcc), &v))
            return false;
    } else if (c > 0x7f) {
        return false;
    }
    *out = v;
    return v <= max;
}

/* A signed integer (any of msgpack's integer encodings) in [min, max]. */
static bool rv_int(rv *r, int64_t min, int64_t max, int64_t *out)
{
    uint8_t c;
    if (!rv_byte(r, &c))
        return false;
    int64_t v;
    uint64_t u;
    if (c <= 0x7f) {
        v = c;
    } else if (c >= 0xe0) {
        v = (int8_t)c;
    } else if (c >= 0xcc && c <= 0xcf) {
        if (!rv_be(r, 1 << (c - 0xcc), &u) || u > (uint64_t)INT64_MAX)
            return false;
        v = (int64_t)u;
    } else if (c >= 0xd0 && c <= 0xd3) {
        int bytes = 1 << (c - 0xd0), shift = 64 - 8 * bytes;
        if (!rv_be(r, bytes, &u))
            return false;
        v = (int64_t)(u << shift) >> shift;
    } else {
        return false;
    }
    *out = v;
    return v >= min && v <= max;
}

/* An array header (fixarray or array 16, what the encoder writes for up
 * to 65535 elements); its count. */
static bool rv_array(rv *r, uint32_t *n)
{
    uint8_t c;
    uint64_t v;
    if (!rv_byte(r, &c))
        return false;
    if (c >= 0x90 && c <= 0x9f)
        v = c & 0x0fu;
    else if (c != 0xdc || !rv_be(r, 2, &v))
        return false;
    *n = (uint32_t)v;
    return true;
}

static bool rv_res(rv *r, cs_res *out)
{
    uint32_t n;
    /* cs_task_decode's bound on a stored amount. */
    const int64_t max = CS_RES_MAX * 16;
    return rv_array(r, &n) && n == 3 && rv_int(r, 0, max, &out->cpu) &&
           rv_int(r, 0, max, &out->mem) && rv_int(r, 0, max, &out->disk);
}

static bool rv_ports(rv *r, cs_arena *a, uint16_t **out, uint32_t *n)
{
    if (!rv_array(r, n) || *n > CS_PORTS_PER_TASK_MAX)
        return false;
    *out = NULL;
    if (*n == 0)
        return true;
    if ((*out = cs_arena_alloc(a, *n * sizeof **out)) == NULL)
        return false;
    for (uint32_t i = 0; i < *n; i++) {
        uint64_t v;
        if (!rv_uint(r, UINT16_MAX, &v))
            return false;
        (*out)[i] = (uint16_t)v;
    }
    return true;
}

static bool rv_nil(rv *r)
{
    uint8_t c;
    return rv_byte(r, &c) && c == 0xc0;
}

/* The reason: nil for none, else a string without NUL bytes. */
static bool rv_reason(rv *r, cs_arena *a, const char **out)
{
    uint8_t c;
    if (!rv_byte(r, &c))
        return false;
    if (c == 0xc0) {
        *out = "";
        return true;
    }
    uint64_t len;
    if (c >= 0xa0 && c <= 0xbf)
        len = c & 0x1fu;
    else if (c < 0xd9 || c > 0xdb || !rv_be(r, 1 << (c - 0xd9), &len))
        return false;
    if (len > CS_REASON_MAX || len > (uint64_t)(r->end - r->p) ||
        memchr(r->p, '\0', (size_t)len) != NULL)
        return false;
    char *s = cs_arena_strndup(a, (const char *)r->p, (size_t)len);
    r->p += len;
    *out = s;
    return s != NULL;
}

bool cs_task_view(const void *data, size_t len, cs_arena *a, cs_task *t)
{
    rv r = {data, (const uint8_t *)data + len};
    uint32_t n;
    uint64_t index, state, last_end, attempts, health;
    int64_t code;
    memset(t, 0, sizeof *t);
    if (!rv_array(&r, &n) || n != TASK_FIELDS || !rv_uint(&r, UINT64_MAX, &t->id) ||
        !rv_uint(&r, CS_JOB_ID_MAX, &t->job) || !rv_uint(&r, CS_TASK_INDEX_MAX, &index) ||
        !rv_uint(&r, CS_TASK_STATE_COUNT - 1, &state) ||
        !rv_uint(&r, CS_TASK_STATE_COUNT - 1, &last_end) ||
        !rv_uint(&r, UINT64_MAX, &t->machine) || !rv_res(&r, &t->res) ||
        !rv_ports(&r, a, &t->ports, &t->nports) || !rv_uint(&r, UINT32_MAX, &attempts) ||
        !rv_int(&r, INT32_MIN, INT32_MAX, &code) || !rv_uint(&r, UINT64_MAX, &t->version) ||
        !rv_reason(&r, a, &t->reason) || !rv_uint(&r, CS_TASK_HEALTH_COUNT - 1, &health) ||
        !rv_uint(&r, UINT64_MAX, &t->spec) || !rv_nil(&r) || r.p != r.end)
        return false;
    t->index = (uint32_t)index;
    t->state = (uint8_t)state;
    t->last_end = (uint8_t)last_end;
    t->attempts = (uint32_t)attempts;
    t->exit_code = (int32_t)code;
    t->health = (uint8_t)health;
    return t->id == cs_task_id(t->job, t->index);
}
