/* cellctl_ops.h — cellctl's operators' verbs: `cordon M`, `uncordon M`,
 * `drain M [--deadline D | --no-deadline]` (machine.admin to cellstated),
 * and `logs JOB[/INDEX] [--stderr] [--tail N] [-f]`, which asks cellstated
 * where the task runs and then asks that machine's agent (task.logs,
 * agent/logserve.h) for its output: no shared filesystem is assumed.
 *
 * Each returns CS_OK, CTL_EUSAGE for a bad command line, or the error of a
 * request with a sentence in `err` naming what failed; the ctl is borrowed.
 */
#ifndef CELLCTL_OPS_H
#define CELLCTL_OPS_H

#include "cellstate/error.h"
#include "tools/cellctl_cell.h"

/* A drain's deadline when none is given: Nomad's default, one hour. */
#define CTL_DRAIN_DEADLINE_MS 3600000u
/* Bytes asked of the agent per task.logs request. */
#define CTL_LOGS_CHUNK (64u << 10)
/* logs -f: how often the agent is asked for new bytes, and the cell
 * whether the task ended. */
#define CTL_FOLLOW_POLL_MS 250

int ctl_cmd_cordon(ctl *c, const ctl_args *a, cs_error *err);
int ctl_cmd_uncordon(ctl *c, const ctl_args *a, cs_error *err);
int ctl_cmd_drain(ctl *c, const ctl_args *a, cs_error *err);
int ctl_cmd_logs(ctl *c, const ctl_args *a, cs_error *err);

/* A machine's state as `get machines` shows it: its liveness (up, down,
 * draining), then the operator's word when there is one: "up,cordoned",
 * "up,draining", or "up,drained" once a draining machine holds no task.
 * Written into buf, which is returned. */
const char *ctl_machine_status(const cs_machine *m, char *buf, size_t size);

#endif
