/* fitcheck.h — submit-time warnings: could any machine of the cell, as it
 * is now, ever hold a task of this job?
 *
 * A job that no machine can hold is still accepted — machines may join or
 * grow — but whoever submits it should hear why at once, rather than find
 * a parked job with a note later. Each check answers one "why not" for the
 * whole cell, ignoring what is allocated (room comes and goes; capacity and
 * attributes do not): resources above every machine's capacity, or held by
 * no single machine together; a hard constraint on an attribute no machine
 * has, or an equality no machine meets; a hostname no machine has; a taint
 * on every machine that the job does not tolerate. Only machines that are
 * up and take placements count (cordoned, draining and down ones take no
 * tasks).
 *
 * The checks are a table of functions (fitcheck.c): one per kind of
 * obstacle, each adding its own warnings.
 * Pure functions over records the caller holds, so that any front end
 * (cellctl submit today) and the tests call them alike.
 */
#ifndef CS_FITCHECK_H
#define CS_FITCHECK_H

#include <stddef.h>
#include <stdint.h>

#include "cellstate/record.h"

#define CS_FIT_WARN_MAX 8    /* warnings kept; more are counted in `more` */
#define CS_FIT_WARN_LEN 320

typedef struct cs_fit_warnings {
    char msg[CS_FIT_WARN_MAX][CS_FIT_WARN_LEN];
    uint32_t n;
    uint32_t more; /* warnings beyond CS_FIT_WARN_MAX, not kept */
} cs_fit_warnings;

/* Fill *out with every reason why no machine of `ms[0..n)` could hold a
 * task of job `j` (all borrowed, only read); out->n == 0 when some machine
 * could. Each message starts with what it is about ("resources: ...",
 * "constraints[1] (zone == c): ..."). */
void cs_fit_check(const cs_job *j, const cs_machine *ms, size_t n, cs_fit_warnings *out);

#endif
