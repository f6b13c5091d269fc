/* mpcheck.h — bounds check of untrusted msgpack before it is unpacked.
 *
 * msgpack-c's unpacker reserves memory for as many elements as an array or
 * map header declares before reading them, so five hostile bytes
 * (dd ff ff ff ff) make it ask for 64 GiB. Every decoder of outside bytes —
 * wire messages, transactions, and records read back from disk — walks the
 * input with cs_mp_check first: it allocates nothing and refuses any
 * container that declares more elements than there are bytes left (each
 * element takes at least one byte).
 */
#ifndef CS_MPCHECK_H
#define CS_MPCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "cellstate/error.h"

typedef enum cs_mp_verdict {
    CS_MP_OK = 0,        /* one well-formed object occupies data[0 .. *end) */
    CS_MP_TRUNCATED = 1, /* the input ends inside the object, or a container
                          * declares more elements than bytes are left */
    CS_MP_INVALID = 2,   /* a byte no msgpack object starts with (0xc1) */
} cs_mp_verdict;

/* Check the first object of data[0..len). On CS_MP_OK, *end is where it
 * ends; bytes after it are the caller's to refuse. Pure: reads only. */
cs_mp_verdict cs_mp_check(const void *data, size_t len, size_t *end);

/* Containers nested deeper than this are refused (msgpack-c's unpacker has
 * the same limit). */
#define CS_MP_DEPTH_MAX 32

/* Unpack exactly one object spanning all of data[0..len) into `zone` (the
 * object's arrays and maps live there; its strings, binaries and extensions
 * point into `data`), with the same objects as msgpack-c's msgpack_unpack
 * and the same bounds as cs_mp_check, in one pass. On failure returns `code`
 * (CS_ECORRUPT for stored records, CS_EPROTO for what arrives from outside)
 * with "<what>: truncated", "<what>: not valid msgpack", "<what>: nested
 * deeper than 32 levels" or "<what>: N trailing bytes" in `err`; CS_ENOMEM
 * when the zone cannot grow. */
int cs_mp_unpack(const void *data, size_t len, msgpack_zone *zone, msgpack_object *out, int code,
                 const char *what, cs_error *err);

/* ---- reading in place ------------------------------------------------------
 * A cursor reads msgpack straight from the bytes, one value at a time, with
 * no object tree: the schedulers' sync replies (docs/protocol.md §5.7) carry
 * 100,000s of records, and building a msgpack_object for each, then looking
 * its fields up by key, was the larger part of a scheduler's CPU time
 * (docs/benchmarks.md). Every read checks the type and the bounds; a
 * container header is refused when it declares more elements than bytes
 * are left, as in cs_mp_check. The readers return CS_OK, or CS_EPROTO with
 * nothing consumed and no message: the caller knows which field it read
 * and names it. Integers are accepted in any width that holds the value. */

typedef struct cs_mp_cur {
    const uint8_t *p, *end; /* borrowed: the bytes must outlive the cursor */
} cs_mp_cur;

/* A cursor over data[0..len) (borrowed). */
void cs_mp_cur_init(cs_mp_cur *c, const void *data, size_t len);
/* Bytes left. */
static inline size_t cs_mp_cur_left(const cs_mp_cur *c) { return (size_t)(c->end - c->p); }

int cs_mp_read_map(cs_mp_cur *c, uint32_t *n);
int cs_mp_read_array(cs_mp_cur *c, uint32_t *n);
/* An unsigned value: a positive integer, or a negative-typed one that is >= 0. */
int cs_mp_read_uint(cs_mp_cur *c, uint64_t *v);
int cs_mp_read_int(cs_mp_cur *c, int64_t *v);
int cs_mp_read_bool(cs_mp_cur *c, bool *v);
/* A string: *s points into the input (not NUL-terminated), *n bytes. */
int cs_mp_read_str(cs_mp_cur *c, const char **s, uint32_t *n);
/* A binary value: *b points into the input, *n bytes. */
int cs_mp_read_bin(cs_mp_cur *c, const void **b, uint32_t *n);
/* Whether the next value is nil; if it is, it is consumed. */
bool cs_mp_read_nil(cs_mp_cur *c);
/* The next value, whatever it is, as the span *start[0..*len) of the
 * input; CS_EPROTO when it is truncated or invalid (cs_mp_check). */
int cs_mp_read_raw(cs_mp_cur *c, const void **start, size_t *len);

#endif
