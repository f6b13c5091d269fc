/* kinds.h — what makes a scheduler cell-batch or cell-service: the hooks
 * (sched.h) each passes to the loop.
 *
 * Apart from their main(), so that whatever runs the loop in process — the
 * tests and cellbench on the local port (port.h), the simulator — runs the
 * same two schedulers the daemons do.
 */
#ifndef CS_SCHED_KINDS_H
#define CS_SCHED_KINDS_H

#include "schedulers/sched.h"

/* cell-batch: owns the active batch jobs of its share (--instance of
 * --instances, by XXH3-64 of the job id's 8 little-endian bytes); retries a
 * failed task while its placements are within the job's max_retries + 1,
 * a lost one always; ends a job whose tasks have all ended; never looks at
 * `running` (the copy omits starts). */
extern const cs_sched_hooks cs_sched_batch_hooks;

/* cell-service: owns every active service job; replaces any task that
 * ended (after its restart back-off) or was lost; rolls out new versions
 * (rollout.h). */
extern const cs_sched_hooks cs_sched_service_hooks;

#endif
