/* cellctl_audit.h — `cellctl audit`: the cell's audit log of accepted writes
 * (docs/protocol.md §5.28, docs/security.md "Audit").
 *
 *   audit [--since D|TIME] [--who W] [--action A] [-n N] [-o json]
 *
 * Why it asks every server of --server: each cellstated writes the writes
 * it accepted into its own DATA/audit.log, and in a replicated cell the
 * writes are accepted by whichever replica led at the time (a follower
 * forwards them). The whole trail is the union of the replicas' files, so
 * every server is asked at once (a thread each: a dead one costs one
 * --timeout, not one per server), their entries merged by time, and the
 * newest N printed, oldest first. A server that does not answer is named on
 * standard error, the others' entries are still printed, and the command
 * then fails (the trail shown may lack that server's entries).
 *
 * Returns CS_OK, CTL_EUSAGE for a bad command line (a --since that is
 * neither a duration nor a time, an -n out of 1..10000, a --who or
 * --action too long), or CS_EUNAVAIL when some server did not answer;
 * the ctl is borrowed.
 */
#ifndef CELLCTL_AUDIT_H
#define CELLCTL_AUDIT_H

#include "cellstate/error.h"
#include "tools/cellctl_cell.h"

int ctl_cmd_audit(ctl *c, const ctl_args *a, cs_error *err);

/* --since TEXT as wall-clock ms since the epoch, given the time `now_ms`: a
 * duration back from now ("1h", "30m", "90s"), or a UTC time
 * "YYYY-MM-DD", "YYYY-MM-DDTHH:MM", "YYYY-MM-DDTHH:MM:SS" (a trailing "Z"
 * or a space for the "T" allowed). CTL_EUSAGE naming the text otherwise.
 * `text` is borrowed. */
int ctl_audit_since(const char *text, uint64_t now_ms, uint64_t *out, cs_error *err);

#endif
