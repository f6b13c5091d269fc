/* mpcheck.c — allocation-free walk of msgpack (see mpcheck.h). The format's
 * byte table is https://github.com/msgpack/msgpack/blob/master/spec.md. */
#include "cellstate/mpcheck.h"

#include <stdint.h>
#include <string.h>

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

cs_mp_verdict cs_mp_check(const void *data, size_t len, size_t *end)
{
    const uint8_t *p = data;
    size_t off = 0;
    /* Objects still to read. Containers add their elements: the walk is
     * flat, so nesting depth costs nothing here. */
    uint64_t pending = 1;
    while (pending > 0) {
        if (off >= len)
            return CS_MP_TRUNCATED;
        uint8_t b = p[off++];
        pending--;
        uint64_t skip = 0, add = 0;
        int lenbytes = 0;
        if (b <= 0x7f || b >= 0xe0 || (b >= 0xc0 && b <= 0xc3 && b != 0xc1)) {
            /* fixint, nil, false, true */
        } else if (b >= 0x80 && b <= 0x8f) {
            add = 2u * (b & 0x0f);
        } else if (b >= 0x90 && b <= 0x9f) {
            add = b & 0x0f;
        } else if (b >= 0xa0 && b <= 0xbf) {
            skip = b & 0x1f;
        } else {
            switch (b) {
            case 0xc4: case 0xd9: lenbytes = 1; break; /* bin8, str8 */
            case 0xc5: case 0xda: lenbytes = 2; break; /* bin16, str16 */
            case 0xc6: case 0xdb: lenbytes = 4; break; /* bin32, str32 */
            case 0xc7: lenbytes = 1; skip = 1; break;  /* ext8: + type */
            case 0xc8: lenbytes = 2; skip = 1; break;
            case 0xc9: lenbytes = 4; skip = 1; break;
            case 0xca: skip = 4; break;                /* float32 */
            case 0xcb: skip = 8; break;                /* float64 */
            case 0xcc: case 0xd0: skip = 1; break;
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xce: case 0xd2: skip = 4; break;
            case 0xcf: case 0xd3: skip = 8; break;
            case 0xd4: skip = 2; break;                /* fixext: type + data */
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xdc: case 0xde:
            case 0xdd: case 0xdf: {
                int n = (b == 0xdc || b == 0xde) ? 2 : 4;
                if (len - off < (size_t)n)
                    return CS_MP_TRUNCATED;
                uint64_t cnt = be(p + off, n);
                off += (size_t)n;
                add = (b == 0xde || b == 0xdf) ? 2 * cnt : cnt;
                break;
            }
            default:
                return CS_MP_INVALID; /* 0xc1: never used */
            }
        }
        if (lenbytes > 0) {
            if (len - off < (size_t)lenbytes)
                return CS_MP_TRUNCATED;
            skip += be(p + off, lenbytes);
            off += (size_t)lenbytes;
        }
        if (skip > len - off)
            return CS_MP_TRUNCATED;
        off += (size_t)skip;
        pending += add;
        /* Every element takes at least one byte: a count beyond what is
         * left means the input ends inside the object, however large the
         * count claims to be. */
        if (pending > len - off)
            return CS_MP_TRUNCATED;
    }
    *end = off;
    return CS_MP_OK;
}

/* ---- unpacking in one pass ----------------------------------------------- */

/* The unpacker makes the same objects as msgpack-c's msgpack_unpack (its
 * type for each format, strings, binaries and extensions pointing into the
 * input, arrays and maps in the zone) in one pass that also does
 * cs_mp_check's bounds check: checking and then unpacking walked every
 * record twice, and msgpack-c's general state machine was the larger part of
 * decoding a record (docs/benchmarks.md). */

typedef struct rd {
    const uint8_t *p;
    size_t len, off;
    /* Objects declared and not read yet, as in cs_mp_check: a container
     * whose elements would not fit in what is left is refused before
     * anything is allocated for it, so what the zone holds stays
     * proportional to the input. */
    uint64_t pending;
    msgpack_zone *zone;
} rd;

typedef enum rd_status { RD_OK, RD_TRUNCATED, RD_INVALID, RD_NOMEM, RD_DEEP } rd_status;

static rd_status rd_take(rd *r, size_t n, const uint8_t **out)
{
    if (r->len - r->off < n)
        return RD_TRUNCATED;
    *out = r->p + r->off;
    r->off += n;
    return RD_OK;
}

/* `n` more bytes as a big-endian count or length. */
static rd_status rd_uint(rd *r, int n, uint64_t *out)
{
    const uint8_t *b;
    rd_status st = rd_take(r, (size_t)n, &b);
    if (st == RD_OK)
        *out = be(b, n);
    return st;
}

static rd_status rd_bytes(rd *r, uint64_t n, const char **ptr, uint32_t *size)
{
    const uint8_t *b;
    if (n > r->len - r->off)
        return RD_TRUNCATED;
    rd_take(r, (size_t)n, &b);
    *ptr = (const char *)b;
    *size = (uint32_t)n;
    return RD_OK;
}

/* Declare `n` elements of a container; refuse them if they cannot fit. */
static rd_status rd_declare(rd *r, uint64_t n)
{
    r->pending += n;
    return r->pending > r->len - r->off ? RD_TRUNCATED : RD_OK;
}

static rd_status rd_obj(rd *r, msgpack_object *o, int depth);

static rd_status rd_array(rd *r, uint64_t n, msgpack_object *o, int depth)
{
    rd_status st = rd_declare(r, n);
    if (st != RD_OK)
        return st;
    if (n > 0 && depth >= CS_MP_DEPTH_MAX)
        return RD_DEEP;
    o->type = MSGPACK_OBJECT_ARRAY;
    o->via.array.size = (uint32_t)n;
    o->via.array.ptr = msgpack_zone_malloc(r->zone, (size_t)n * sizeof(msgpack_object));
    if (o->via.array.ptr == NULL)
        return RD_NOMEM;
    for (uint64_t i = 0; i < n; i++)
        if ((st = rd_obj(r, &o->via.array.ptr[i], depth + 1)) != RD_OK)
            return st;
    return RD_OK;
}

static rd_status rd_map(rd *r, uint64_t n, msgpack_object *o, int depth)
{
    rd_status st = rd_declare(r, 2 * n);
    if (st != RD_OK)
        return st;
    if (n > 0 && depth >= CS_MP_DEPTH_MAX)
        return RD_DEEP;
    o->type = MSGPACK_OBJECT_MAP;
    o->via.map.size = (uint32_t)n;
    o->via.map.ptr = msgpack_zone_malloc(r->zone, (size_t)n * sizeof(msgpack_object_kv));
    if (o->via.map.ptr == NULL)
        return RD_NOMEM;
    for (uint64_t i = 0; i < n; i++)
        if ((st = rd_obj(r, &o->via.map.ptr[i].key, depth + 1)) != RD_OK ||
            (st = rd_obj(r, &o->via.map.ptr[i].val, depth + 1)) != RD_OK)
            return st;
    return RD_OK;
}

static rd_status rd_ext(rd *r, uint64_t n, msgpack_object *o)
{
    const uint8_t *t;
    rd_status st = rd_take(r, 1, &t);
    if (st != RD_OK)
        return st;
    o->type = MSGPACK_OBJECT_EXT;
    o->via.ext.type = (int8_t)t[0];
    return rd_bytes(r, n, &o->via.ext.ptr, &o->via.ext.size);
}

/* A signed integer: msgpack-c types the non-negative ones as positive. */
static void set_int(msgpack_object *o, int64_t v)
{
    if (v < 0) {
        o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
        o->via.i64 = v;
    } else {
        o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o->via.u64 = (uint64_t)v;
    }
}

static rd_status rd_obj(rd *r, msgpack_object *o, int depth)
{
    const uint8_t *b;
    rd_status st = rd_take(r, 1, &b);
    if (st != RD_OK)
        return st;
    r->pending--;
    uint8_t c = b[0];
    uint64_t n = 0;
    if (c <= 0x7f) {
        o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o->via.u64 = c;
        return RD_OK;
    }
    if (c >= 0xe0) {
        set_int(o, (int8_t)c);
        return RD_OK;
    }
    if (c <= 0x8f)
        return rd_map(r, c & 0x0fu, o, depth);
    if (c <= 0x9f)
        return rd_array(r, c & 0x0fu, o, depth);
    if (c <= 0xbf) {
        o->type = MSGPACK_OBJECT_STR;
        return rd_bytes(r, c & 0x1fu, &o->via.str.ptr, &o->via.str.size);
    }
    switch (c) {
    case 0xc0:
        o->type = MSGPACK_OBJECT_NIL;
        return RD_OK;
    case 0xc2:
    case 0xc3:
        o->type = MSGPACK_OBJECT_BOOLEAN;
        o->via.boolean = c == 0xc3;
        return RD_OK;
    case 0xc4: case 0xc5: case 0xc6: /* bin 8, 16, 32 */
        if ((st = rd_uint(r, 1 << (c - 0xc4), &n)) != RD_OK)
            return st;
        o->type = MSGPACK_OBJECT_BIN;
        return rd_bytes(r, n, &o->via.bin.ptr, &o->via.bin.size);
    case 0xc7: case 0xc8: case 0xc9: /* ext 8, 16, 32 */
        if ((st = rd_uint(r, 1 << (c - 0xc7), &n)) != RD_OK)
            return st;
        return rd_ext(r, n, o);
    case 0xca: /* float 32 */
        if ((st = rd_uint(r, 4, &n)) != RD_OK)
            return st;
        float f;
        uint32_t f32 = (uint32_t)n;
        memcpy(&f, &f32, sizeof f);
        o->type = MSGPACK_OBJECT_FLOAT32;
        o->via.f64 = (double)f;
        return RD_OK;
    case 0xcb: /* float 64 */
        if ((st = rd_uint(r, 8, &n)) != RD_OK)
            return st;
        o->type = MSGPACK_OBJECT_FLOAT64;
        memcpy(&o->via.f64, &n, sizeof n);
        return RD_OK;
    case 0xcc: case 0xcd: case 0xce: case 0xcf: /* uint 8 .. 64 */
        if ((st = rd_uint(r, 1 << (c - 0xcc), &n)) != RD_OK)
            return st;
        o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o->via.u64 = n;
        return RD_OK;
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: { /* int 8 .. 64 */
        int bytes = 1 << (c - 0xd0);
        if ((st = rd_uint(r, bytes, &n)) != RD_OK)
            return st;
        /* Sign-extend from the encoded width. */
        int shift = 64 - 8 * bytes;
        set_int(o, (int64_t)(n << shift) >> shift);
        return RD_OK;
    }
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: /* fixext 1 .. 16 */
        return rd_ext(r, 1u << (c - 0xd4), o);
    case 0xd9: case 0xda: case 0xdb: /* str 8, 16, 32 */
        if ((st = rd_uint(r, 1 << (c - 0xd9), &n)) != RD_OK)
            return st;
        o->type = MSGPACK_OBJECT_STR;
        return rd_bytes(r, n, &o->via.str.ptr, &o->via.str.size);
    case 0xdc: case 0xdd: /* array 16, 32 */
        if ((st = rd_uint(r, c == 0xdc ? 2 : 4, &n)) != RD_OK)
            return st;
        return rd_array(r, n, o, depth);
    case 0xde: case 0xdf: /* map 16, 32 */
        if ((st = rd_uint(r, c == 0xde ? 2 : 4, &n)) != RD_OK)
            return st;
        return rd_map(r, n, o, depth);
    default:
        return RD_INVALID; /* 0xc1: never used */
    }
}

int cs_mp_unpack(const void *data, size_t len, msgpack_zone *zone, msgpack_object *out, int code,
                 const char *what, cs_error *err)
{
    rd r = {data, len, 0, 1, zone};
    switch (rd_obj(&r, out, 0)) {
    case RD_OK:
        break;
    case RD_TRUNCATED:
        return cs_errorf(err, code, "%s: truncated (%zu bytes)", what, len);
    case RD_INVALID:
        return cs_errorf(err, code, "%s: not valid msgpack", what);
    case RD_DEEP:
        return cs_errorf(err, code, "%s: nested deeper than %d levels", what, CS_MP_DEPTH_MAX);
    case RD_NOMEM:
        return cs_errorf(err, CS_ENOMEM, "%s: out of memory", what);
    }
    if (r.off != len)
        return cs_errorf(err, code, "%s: %zu trailing bytes", what, len - r.off);
    return CS_OK;
}

/* ---- reading in place ------------------------------------------------------ */

void cs_mp_cur_init(cs_mp_cur *c, const void *data, size_t len)
{
    c->p = data;
    c->end = c->p + len;
}

/* The header of a container: fixed form `lo`..`lo + 15`, or 16/32-bit counts
 * after `b16`/`b32`. `per` elements per entry (2 for maps). */
static int read_container(cs_mp_cur *c, uint8_t lo, uint8_t b16, uint8_t b32, uint64_t per,
                          uint32_t *n)
{
    if (c->p >= c->end)
        return CS_EPROTO;
    uint8_t b = c->p[0];
    size_t hdr;
    uint64_t cnt;
    if (b >= lo && b <= lo + 15) {
        hdr = 1;
        cnt = b & 0x0f;
    } else if (b == b16 || b == b32) {
        hdr = b == b16 ? 3 : 5;
        if (cs_mp_cur_left(c) < hdr)
            return CS_EPROTO;
        cnt = be(c->p + 1, (int)hdr - 1);
    } else {
        return CS_EPROTO;
    }
    if (cnt * per > cs_mp_cur_left(c) - hdr)
        return CS_EPROTO;
    c->p += hdr;
    *n = (uint32_t)cnt;
    return CS_OK;
}

int cs_mp_read_map(cs_mp_cur *c, uint32_t *n) { return read_container(c, 0x80, 0xde, 0xdf, 2, n); }

int cs_mp_read_array(cs_mp_cur *c, uint32_t *n)
{
    return read_container(c, 0x90, 0xdc, 0xdd, 1, n);
}

/* Any integer, as a sign and a magnitude. */
static int read_integer(cs_mp_cur *c, bool *neg, uint64_t *mag)
{
    if (c->p >= c->end)
        return CS_EPROTO;
    uint8_t b = c->p[0];
    if (b <= 0x7f || b >= 0xe0) {
        int64_t v = (int8_t)b;
        *neg = v < 0;
        *mag = *neg ? (uint64_t)(-v) : (uint64_t)v;
        c->p++;
        return CS_OK;
    }
    int n;
    bool sgn = b >= 0xd0;
    switch (b) {
    case 0xcc: case 0xd0: n = 1; break;
    case 0xcd: case 0xd1: n = 2; break;
    case 0xce: case 0xd2: n = 4; break;
    case 0xcf: case 0xd3: n = 8; break;
    default: return CS_EPROTO;
    }
    if (cs_mp_cur_left(c) < (size_t)n + 1)
        return CS_EPROTO;
    uint64_t u = be(c->p + 1, n);
    if (sgn && (u >> (8 * n - 1)) & 1) {
        /* Sign-extend, then the magnitude of a negative value. */
        if (n < 8)
            u |= ~UINT64_C(0) << (8 * n);
        *neg = true;
        *mag = (uint64_t)0 - u;
    } else {
        *neg = false;
        *mag = u;
    }
    c->p += 1 + n;
    return CS_OK;
}

int cs_mp_read_uint(cs_mp_cur *c, uint64_t *v)
{
    const uint8_t *at = c->p;
    bool neg;
    uint64_t m;
    if (read_integer(c, &neg, &m) != CS_OK)
        return CS_EPROTO;
    if (neg) {
        c->p = at;
        return CS_EPROTO;
    }
    *v = m;
    return CS_OK;
}

int cs_mp_read_int(cs_mp_cur *c, int64_t *v)
{
    const uint8_t *at = c->p;
    bool neg;
    uint64_t m;
    if (read_integer(c, &neg, &m) != CS_OK)
        return CS_EPROTO;
    if (neg ? m > (uint64_t)INT64_MAX + 1 : m > (uint64_t)INT64_MAX) {
        c->p = at;
        return CS_EPROTO;
    }
    *v = neg ? (int64_t)((uint64_t)0 - m) : (int64_t)m;
    return CS_OK;
}

int cs_mp_read_bool(cs_mp_cur *c, bool *v)
{
    if (c->p >= c->end || (c->p[0] != 0xc2 && c->p[0] != 0xc3))
        return CS_EPROTO;
    *v = *c->p++ == 0xc3;
    return CS_OK;
}

/* A string (str8 = 0xd9) or binary (bin8 = 0xc4) value whose 8-, 16- or
 * 32-bit length follows its first byte; str also has a fixed form (0xa0 to
 * 0xbf, `fix` true). */
static int read_bytes(cs_mp_cur *c, uint8_t first8, bool fix, const void **s, uint32_t *n)
{
    if (c->p >= c->end)
        return CS_EPROTO;
    uint8_t b = c->p[0];
    size_t hdr;
    uint64_t len;
    if (fix && b >= 0xa0 && b <= 0xbf) {
        hdr = 1;
        len = b & 0x1f;
    } else if (b >= first8 && b <= first8 + 2) {
        hdr = b == first8 ? 2 : b == first8 + 1 ? 3 : 5;
        if (cs_mp_cur_left(c) < hdr)
            return CS_EPROTO;
        len = be(c->p + 1, (int)hdr - 1);
    } else {
        return CS_EPROTO;
    }
    if (len > cs_mp_cur_left(c) - hdr)
        return CS_EPROTO;
    *s = c->p + hdr;
    *n = (uint32_t)len;
    c->p += hdr + len;
    return CS_OK;
}

int cs_mp_read_str(cs_mp_cur *c, const char **s, uint32_t *n)
{
    const void *p;
    int rc = read_bytes(c, 0xd9, true, &p, n);
    if (rc == CS_OK)
        *s = p;
    return rc;
}

int cs_mp_read_bin(cs_mp_cur *c, const void **b, uint32_t *n)
{
    return read_bytes(c, 0xc4, false, b, n);
}

bool cs_mp_read_nil(cs_mp_cur *c)
{
    if (c->p >= c->end || c->p[0] != 0xc0)
        return false;
    c->p++;
    return true;
}

int cs_mp_read_raw(cs_mp_cur *c, const void **start, size_t *len)
{
    size_t n;
    if (cs_mp_check(c->p, cs_mp_cur_left(c), &n) != CS_MP_OK)
        return CS_EPROTO;
    *start = c->p;
    *len = n;
    c->p += n;
    return CS_OK;
}
