/* test_mpcheck.c — the allocation-free msgpack bounds check. */
#include <criterion/criterion.h>
#include <string.h>

#include "cellstate/mpcheck.h"

static cs_mp_verdict check(const char *bytes, size_t len, size_t *end)
{
    size_t e = (size_t)-1;
    cs_mp_verdict v = cs_mp_check(bytes, len, &e);
    if (end)
        *end = e;
    return v;
}

Test(mpcheck, every_scalar_kind)
{
    /* One encoding of each kind of the format, with its length. */
    static const struct {
        const char *b;
        size_t n;
    } ok[] = {
        {"\x05", 1},         {"\xe0", 1},          {"\xc0", 1},
        {"\xc2", 1},         {"\xc3", 1},          {"\xcc\x01", 2},
        {"\xcd\x01\x02", 3}, {"\xce\x01\x02\x03\x04", 5},
        {"\xcf\0\0\0\0\0\0\0\1", 9},               {"\xd0\xff", 2},
        {"\xca\0\0\0\0", 5}, {"\xcb\0\0\0\0\0\0\0\0", 9},
        {"\xa3" "abc", 4},   {"\xd9\x02" "ab", 4}, {"\xda\0\x01" "a", 4},
        {"\xc4\x02\x01\x02", 4},                   {"\xd4\x01\x02", 3},
        {"\xc7\x01\x05\xaa", 4},                   {"\x92\x01\x02", 3},
        {"\x81\xa1" "k\x01", 4},                   {"\xdc\0\x01\x07", 4},
        {"\xde\0\x01\x01\x02", 5},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        size_t end;
        cr_assert_eq(check(ok[i].b, ok[i].n, &end), CS_MP_OK, "case %zu", i);
        cr_assert_eq(end, ok[i].n, "case %zu ends at %zu", i, end);
        /* Every strict prefix is truncated. */
        for (size_t n = 0; n < ok[i].n; n++)
            cr_assert_eq(check(ok[i].b, n, NULL), CS_MP_TRUNCATED, "case %zu prefix %zu", i, n);
    }
}

Test(mpcheck, reserved_byte_is_invalid)
{
    cr_assert_eq(check("\xc1", 1, NULL), CS_MP_INVALID);
    cr_assert_eq(check("\x92\x01\xc1", 3, NULL), CS_MP_INVALID);
}

Test(mpcheck, huge_declared_counts_are_refused_without_allocating)
{
    /* 2^32-1 elements in 5 bytes: msgpack-c alone would reserve 64 GiB. */
    cr_assert_eq(check("\xdd\xff\xff\xff\xff", 5, NULL), CS_MP_TRUNCATED);
    cr_assert_eq(check("\xdf\xff\xff\xff\xff", 5, NULL), CS_MP_TRUNCATED);
    cr_assert_eq(check("\xdb\xff\xff\xff\xff", 5, NULL), CS_MP_TRUNCATED);
    /* Nested: an array of arrays each declaring 15 elements. */
    char buf[64];
    memset(buf, 0x9f, sizeof buf);
    cr_assert_eq(check(buf, sizeof buf, NULL), CS_MP_TRUNCATED);
}

Test(mpcheck, trailing_bytes_are_left_to_the_caller)
{
    size_t end;
    cr_assert_eq(check("\x91\x01\x02\x03", 4, &end), CS_MP_OK);
    cr_assert_eq(end, 2);
    cs_error err = {0};
    msgpack_zone zone;
    msgpack_zone_init(&zone, 256);
    msgpack_object o;
    cr_assert_eq(cs_mp_unpack("\x91\x01\x02\x03", 4, &zone, &o, CS_EPROTO, "thing", &err),
                 CS_EPROTO);
    cr_assert(strstr(err.msg, "thing: 2 trailing bytes") != NULL, "%s", err.msg);
    cr_assert_eq(cs_mp_unpack("\x91\x01", 2, &zone, &o, CS_EPROTO, "thing", &err), CS_OK);
    cr_assert_eq(o.type, MSGPACK_OBJECT_ARRAY);
    cr_assert_eq(o.via.array.ptr[0].via.u64, 1);
    cr_assert_eq(cs_mp_unpack("\x92\x01", 2, &zone, &o, CS_ECORRUPT, "rec", &err), CS_ECORRUPT);
    cr_assert(strstr(err.msg, "rec: truncated") != NULL, "%s", err.msg);
    msgpack_zone_destroy(&zone);
}

Test(mpcheck, random_bytes_never_overrun)
{
    /* ASan catches any read past the buffer: each input is its own
     * allocation of exactly its length. */
    uint64_t s = 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < 20000; i++) {
        size_t n = 1 + (size_t)(s % 64);
        char *b = malloc(n);
        for (size_t k = 0; k < n; k++) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            b[k] = (char)s;
        }
        size_t end = 0;
        if (cs_mp_check(b, n, &end) == CS_MP_OK)
            cr_assert_leq(end, n);
        free(b);
    }
}
