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

#include <stddef.h>

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

#endif
