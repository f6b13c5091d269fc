/* mpcheck.c — allocation-free walk of msgpack (see mpcheck.h). The format's
 * byte table is https://github.com/msgpack/msgpack/blob/master/spec.md. */
#include "cellstate/mpcheck.h"

#include <stdint.h>

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

int cs_mp_unpack(const void *data, size_t len, msgpack_zone *zone, msgpack_object *out, int code,
                 const char *what, cs_error *err)
{
    size_t end = 0;
    switch (cs_mp_check(data, len, &end)) {
    case CS_MP_TRUNCATED:
        return cs_errorf(err, code, "%s: truncated (%zu bytes)", what, len);
    case CS_MP_INVALID:
        return cs_errorf(err, code, "%s: not valid msgpack", what);
    case CS_MP_OK:
        break;
    }
    if (end != len)
        return cs_errorf(err, code, "%s: %zu trailing bytes", what, len - end);
    size_t off = 0;
    msgpack_unpack_return r = msgpack_unpack(data, len, &off, zone, out);
    if (r == MSGPACK_UNPACK_NOMEM_ERROR)
        return cs_errorf(err, CS_ENOMEM, "%s: out of memory", what);
    if (r != MSGPACK_UNPACK_SUCCESS || off != len)
        return cs_errorf(err, code, "%s: not valid msgpack", what);
    return CS_OK;
}
