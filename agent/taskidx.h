/* taskidx.h — a machine's tasks by (task id, attempt), for the loop's
 * lookups: each poll reply entry and each report answer names a task, and
 * a simulated machine at C1M scale holds a hundred, so a walk of the list
 * per lookup made every poll and every report batch quadratic (~4% of all
 * the CPU of a C1M run, docs/benchmarks.md).
 *
 * Open addressing with linear probing and backward-shift deletion; the
 * index borrows the tasks (the loop's list owns them). Not thread-safe:
 * the machine's lock guards it.
 */
#ifndef AG_TASKIDX_H
#define AG_TASKIDX_H

#include <stdint.h>

#include "agent/loop.h"

typedef struct ag_taskidx {
    ag_task **slot; /* NULL: empty */
    uint32_t cap;   /* 0 or a power of two */
    uint32_t n;
} ag_taskidx;

void ag_taskidx_init(ag_taskidx *x);
void ag_taskidx_free(ag_taskidx *x); /* the tasks are not freed */

/* Add t (borrowed until removed), whose (id, attempt) is not in x yet.
 * CS_ENOMEM (with err) leaves x as it was. */
int ag_taskidx_add(ag_taskidx *x, ag_task *t, cs_error *err);

/* The task of (id, attempt), or NULL. */
ag_task *ag_taskidx_find(const ag_taskidx *x, cs_id id, uint32_t attempt);

/* Remove t if it is in x. */
void ag_taskidx_remove(ag_taskidx *x, const ag_task *t);

#endif
