/* recview.h — a fast path for decoding task records, read in place.
 *
 * A commit reads the record of every task it claims, and cs_task_decode
 * (record.h) does it the general way: a bounds-check pass and an unpack of
 * the whole record into a msgpack zone (a malloc and a free per record),
 * then a check of each field, with an error context formatted up front. For
 * a 100-claim commit that was a quarter of its instructions
 * (docs/benchmarks.md). This reads the fields straight from the bytes, in
 * the encodings cs_task_encode writes.
 *
 * It is a fast path, not a second decoder: it accepts only records that
 * cs_task_decode accepts, and gives the same struct; anything else (another
 * layout, an encoding cs_task_encode does not write, a corrupt record) it
 * declines, and the caller then calls cs_task_decode, which decodes it or
 * says what is wrong. A change to the task record's layout therefore costs
 * speed until this file follows it, never correctness; tests/test_recview.c
 * fails until then.
 */
#ifndef CS_RECVIEW_H
#define CS_RECVIEW_H

#include <stdbool.h>
#include <stddef.h>

#include "cellstate/arena.h"
#include "cellstate/record.h"

/* Decode the task record data[0..len) into *out, its ports and reason in
 * `a`, exactly as cs_task_decode would. False when declined (see above),
 * including when `a` is out of memory; *out is then unspecified. `data` is
 * only read. */
bool cs_task_view(const void *data, size_t len, cs_arena *a, cs_task *out);

#endif
