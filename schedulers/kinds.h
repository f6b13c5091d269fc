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

/* One scheduler for every job (Omega's monolithic scheduler; cellsim's
 * single-path and multipath modes): owns every active batch job of its
 * share (as cell-batch: --instance of --instances) and every active
 * service job, and tends each as its own kind's hooks above would
 * (sched.h, per_job): a batch job's failed tasks retried within its
 * limit and the job ended when its tasks have, a service job's ended
 * tasks replaced after their back-off and its versions rolled out. The
 * copy keeps task starts (service rollouts read `running`). With the
 * options' per_kind_times, service jobs take the service decision time
 * (schedopts.h). */
extern const cs_sched_hooks cs_sched_all_hooks;

#endif
