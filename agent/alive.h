/* alive.h — how a task's supervisor knows that its agent is still there,
 * so that tasks never outlive their agent unsupervised.
 *
 * A running agent rewrites one small file, <workdir>/agent.alive, every
 * ag_alive_period_ms(grace) from a thread of its own; each supervisor
 * (runner.h) reads it as often and stops its task once the file has not
 * changed for the grace period (`--orphan-grace`), measured on the
 * supervisor's own monotonic clock. The record is
 *
 *     "<agent pid> <sequence> <grace ms>\n"
 *
 * at offset 0, fixed width, rewritten in place. The sequence starts from the
 * monotonic clock in nanoseconds, so two agents never write the same
 * record; the grace travels in it, so that every supervisor follows the
 * `--orphan-grace` of the agent now running, not the one that started it.
 *
 * Why a file the agent touches, and not a pipe or a socket the supervisor
 * watches: adoption. A pipe's end dies with the agent that held it, and a
 * restarted agent could never hand a new one to a supervisor already
 * running; a file in the work directory outlives both, so a new agent on
 * the same directory (it holds agent.lock first: one writer at a time) is
 * "in touch" with every supervisor of every task it adopts by its first
 * write, and a restart within the grace keeps them all running. One file
 * for the whole agent, not one per task, keeps the cost at one write a
 * period however many tasks run. Why change detection on the reader's
 * clock, and not the file's mtime against the wall clock: a wall clock
 * step (NTP, a VM resumed) would stop every task of a machine at once, and
 * a file system with one-second timestamps would hide a short grace.
 *
 * A reader that sees a torn record (a read racing the in-place write) sees
 * a change, which is what it is: the agent wrote.
 */
#ifndef AG_ALIVE_H
#define AG_ALIVE_H

#include <stdbool.h>
#include <stdint.h>

#include "cellstate/error.h"
#include "proto/proto.h"

/* The file's name in the work directory. */
#define AG_ALIVE_FILE "agent.alive"

/* The default --orphan-grace: the server's default heartbeat timeout (a
 * machine silent that long is marked down and its tasks lost, to be placed
 * elsewhere) plus a margin of 5 s. The margin covers the server's monitor,
 * which looks every min(timeout/4, 1 s), the agent's last heartbeat, sent
 * up to --heartbeat-ms before it died, and an agent restart (a restart
 * within the grace adopts the tasks, and its machine is not marked down
 * either when it restarts within the timeout). So the old copies stop
 * within about 5 s of the cell giving up on the machine. A cellstated run
 * with another --heartbeat-timeout wants --orphan-grace to match it. */
#define AG_ORPHAN_MARGIN_MS 5000
#define AG_ORPHAN_GRACE_DEFAULT_MS (CS_HEARTBEAT_TIMEOUT_DEFAULT_MS + AG_ORPHAN_MARGIN_MS)
#define AG_ORPHAN_GRACE_MIN_MS 100

/* How often the agent writes and a supervisor reads, for a grace: an
 * eighth of it, between 10 ms and 1 s. A task is stopped between `grace`
 * and `grace` + two periods after the agent's last write. */
uint32_t ag_alive_period_ms(uint32_t grace_ms);

typedef struct ag_alive ag_alive;

/* Start writing `dir`/agent.alive (created if missing) now and every
 * period from a thread, announcing `grace_ms`. The caller holds the work
 * directory's lock. On success *out is the caller's: ag_alive_stop. */
int ag_alive_start(const char *dir, uint32_t grace_ms, ag_alive **out, cs_error *err);

/* Stop writing (join the thread, close the file; the file stays, and the
 * supervisors stop their tasks a grace after its last write unless another
 * agent takes over). NULL is allowed. */
void ag_alive_stop(ag_alive *a);

/* What a supervisor keeps between two looks at the file. */
typedef struct ag_alive_watch {
    char last[64];     /* the record last read ("" none yet) */
    int64_t heard_ms;  /* when it last changed, on cs_clock_now_ms's clock */
    uint32_t grace_ms; /* the grace of the last well-formed record */
} ag_alive_watch;

/* Begin watching at `now`: the agent is taken as heard from now, so that a
 * task starts with a whole grace before it. `grace_ms` is the grace until a
 * record says otherwise. */
void ag_alive_watch_init(ag_alive_watch *w, uint32_t grace_ms, int64_t now);

/* Read `path` (an agent.alive) at `now`; true when the agent has not been
 * heard from for the grace: the task is an orphan. A missing or unreadable
 * file is silence. */
bool ag_alive_orphaned(ag_alive_watch *w, const char *path, int64_t now);

#endif
