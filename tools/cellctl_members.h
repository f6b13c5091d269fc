/* cellctl_members.h — `cellctl members`: the replicas of a replicated cell
 * (docs/protocol.md §5.21-§5.24, docs/design.md's replication section).
 *
 *   members                      the configuration, and each member's own
 *                                role, term and applied index
 *   members add ID LISTEN RAFT   add a member (it joins as a voter once it
 *                                has caught up)
 *   members remove ID            take one out
 *   members transfer [ID]        hand leadership to ID (none: Raft picks)
 *
 * Why `members` asks every member itself: the replica that answers knows
 * the configuration, but its picture of the others is its own (a follower
 * knows nothing of their progress, and even the leader's `match` is what it
 * has heard, not what they applied). An operator looking for a stuck or
 * partitioned replica needs each one's own word, so the list comes from the
 * server asked and each row's ROLE, TERM and APPLIED from that member at its
 * `listen` URL; a member that does not answer within --timeout is shown as
 * `unreachable`, which is an answer, not a failure of the command. The
 * members are asked at once (a thread each), so a dead one costs one
 * timeout, not one per member.
 *
 * Each returns CS_OK, CTL_EUSAGE for a bad command line (a bad id, a
 * missing or malformed address, named), or the request's error with a
 * sentence in `err`; the ctl is borrowed.
 */
#ifndef CELLCTL_MEMBERS_H
#define CELLCTL_MEMBERS_H

#include <stdio.h>

#include "cellstate/error.h"
#include "tools/cellctl_cell.h"

int ctl_cmd_members(ctl *c, const ctl_args *a, cs_error *err);

/* One line for `watch` about the cell state's replicas, as the server asked
 * sees them, into `f`: "cell state: 3 replicas, leader 2 (term 4); asked 1:
 * follower, applied 410", or nothing for a cell of one. One request; an
 * error is written as the line. */
void ctl_members_line(ctl *c, FILE *f);

#endif
