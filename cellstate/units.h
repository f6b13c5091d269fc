/* units.h — numbers with units, as people write them in flags and specs.
 *
 * Durations appear in three places that must agree: the daemons' flags
 * (cellstated --job-gc, the schedulers' back-off), cellctl's arguments and
 * the JSON of a job spec. They share this one parser, so "1m30s" means the
 * same everywhere, and it lives below them all so that a daemon that reads
 * no JSON does not link the job-spec parser to read a flag.
 */
#ifndef CS_UNITS_H
#define CS_UNITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cellstate/error.h"

/* The length of the decimal number at the start of `s` (borrowed): digits
 * with an optional fraction and exponent, and a leading sign when `sign`;
 * 0 when there is none. The caller converts the span (strtod). */
size_t cs_scan_decimal(const char *s, bool sign);

/* A duration: a number of seconds ("2.5") or Go-style units ("1m30s",
 * "500ms", "2h"), rounded to the nearest millisecond. CS_EINVAL (with the
 * reason in `err`) when malformed, negative or above 2^32-1 ms. `text` is
 * borrowed. */
int cs_duration_parse_ms(const char *text, uint32_t *out, cs_error *err);

#endif
