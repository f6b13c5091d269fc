/* sched.h — the scheduling loop both cell-batch and cell-service run.
 *
 * Omega §3.4, one round after another:
 *   sync     bring the local copy up to date (cellcopy.h);
 *   tend     each job this scheduler owns gets its upkeep: ended tasks that
 *            should run again go back to pending (a release in a small
 *            transaction of its own) — what "should" means is the hook's
 *            business: cell-batch retries failed tasks up to a limit,
 *            cell-service restarts whatever is not running; a job
 *            whose every task has ended for good ends (hooks.ends_jobs);
 *   decide   for one job at a time, highest priority first, then oldest:
 *            place its pending tasks on the copy (place.h), taking the
 *            emulated decision time t_job + t_task x tasks;
 *   commit   send the transaction; the store judges every claim
 *            (fine/coarse, incremental/gang). Small incremental jobs share
 *            one transaction (up to 1,000 claims) unless --txn-per-job
 *            asks for the paper's one job per transaction;
 *   resync   "whether or not the transaction succeeds, the scheduler
 *            resyncs its local copy of cell state afterwards and, if
 *            necessary, re-runs its scheduling algorithm and tries again".
 *
 * A job whose conflicts recur gives up after --max-attempts attempts; a job
 * whose tasks fit nowhere gives up at once. (With --retry tail, the paper's
 * form, a conflicted job queues again at the tail after --retry-ms and is
 * abandoned for good at the limit, counted in jobs_abandoned.) Either way it is *parked*: its
 * note (job.note) says why — the placer's "no machine fits: cpu on 9,870,
 * UNIQUE hostname on 130", or the conflicts that wore it out — and it is
 * tried again only after --park-ms, once the cell has changed. A job placed
 * whole has its note cleared.
 *
 * Rolling updates (hooks.rollout): after upkeep, each owned job with tasks
 * of an old version is stepped towards its new one (rollout.h).
 *
 * Global jobs (option `global`): one task on every machine that fits. The
 * loop grows the job (job.scale) to its placed tasks plus the machines that
 * fit and lack one, and pins each new task to one of them; a task whose
 * machine went away waits, pending, for the next machine that joins.
 *
 * Every --report-ms the scheduler sends its metrics (metrics.h) to
 * cellstated (`sched.report`): `cellctl stats` shows them.
 *
 * The loop reaches the cell and the clock only through its port (port.h):
 * cellstated over nng in the daemons, a store in process with a virtual
 * clock in the tests and cellbench, where cs_sched_round steps it.
 *
 * A cs_sched belongs to one thread.
 */
#ifndef CS_SCHED_H
#define CS_SCHED_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "cellstate/error.h"
#include "schedulers/backoff.h"
#include "schedulers/cellcopy.h"
#include "schedulers/metrics.h"
#include "schedulers/port.h"
#include "schedulers/rollout.h"
#include "schedulers/schedopts.h"
#include "txn/txn.h"

typedef struct cs_sched cs_sched;

/* What differs between the batch and the service scheduler. */
typedef struct cs_sched_hooks {
    /* Whether this scheduler owns `j` (an active job). */
    bool (*takes)(const cs_sched *s, const cs_cjob *j);
    /* Upkeep: whether ended task `t` (failed, finished or lost; index
     * below the job's count + surge) of owned job `j` should run again. */
    bool (*again)(const cs_cjob *j, const cs_ctask *t);
    /* Rolling updates (cell-service: cs_rollout_job), or NULL for none:
     * decide, from the synced copy, which old tasks of owned job `j` to
     * restart and its surge, into r->step. Each pass the loop sets the
     * surge (job.surge), commits the restarts with the claims that place
     * them again in the same transaction where they fit, and keeps the
     * job's note on the rollout's progress. */
    int (*rollout)(const cs_copy *c, const cs_cjob *j, cs_rollout *r, cs_error *err);
    /* Whether the copy may miss that a placed task started running
     * (cs_copy_omit_running): true only for a scheduler that never looks
     * at `running` (rollouts do: running is healthy without checks). */
    bool omit_running;
    /* Whether an owned job ends when its tasks have: once every task in
     * its slots has ended and `again` wants none of them (cell-batch), the
     * loop sends job.end and the cell makes the job finished or failed. A
     * service job runs until killed (false). */
    bool ends_jobs;
    /* Whether a task that ended (failed or finished; not lost: its machine
     * went away, not its program) waits before `again` restarts it, as
     * its job's back-off options say (backoff.h; cell-service). The job's
     * note says when the next one starts. */
    bool backoff;
    /* Or NULL. When set, each owned job's upkeep — again, rollout,
     * ends_jobs, backoff — follows the hooks this returns for that job
     * (borrowed, static) instead of the fields above; takes and
     * omit_running stay this set's. So one scheduler can own jobs of both
     * kinds, each tended as its own kind's scheduler would (kinds.h,
     * cs_sched_all_hooks). The returned set's own per_job is not read. */
    const struct cs_sched_hooks *(*per_job)(const cs_cjob *j);
} cs_sched_hooks;

/* A scheduler with options `o`, `hooks` and `port` (all borrowed for its
 * life): it reaches the cell and the clock only through the port (port.h),
 * cellstated's over nng or a store's in process. Nothing is sent yet (the
 * server may start later). On success *out is the caller's:
 * cs_sched_free. */
int cs_sched_new(const cs_sched_opts *o, const cs_sched_hooks *hooks, const cs_sched_port *port,
                 cs_sched **out, cs_error *err);
void cs_sched_free(cs_sched *s);

/* Run rounds until *stop becomes non-zero (a signal handler sets it), or,
 * with --once, until a round finds nothing left to do. Errors talking to the
 * server are logged and retried, never fatal; returns CS_OK, or CS_ENOMEM,
 * or with --offers CS_EINVAL for a port without offers and CS_ESTATE for a
 * cell that makes none (cellstated without --concurrency offers). With
 * --offers each round is bracketed by the offer: acquired (waited for) before
 * it, released after it (port.h's acquire and release). */
int cs_sched_run(cs_sched *s, volatile sig_atomic_t *stop, cs_error *err);

/* One round of cs_sched_run: sync; upkeep and rollouts when due; place
 * each candidate job, each commit followed by a sync; report when due:
 * also between the jobs of a batch and during a long emulated decision, so
 * that reports keep flowing. Once *stop is non-zero the round stops early:
 * between jobs, and inside a decision, whose sleep it cuts short (what was
 * placed still commits). *synced is false when the first
 * sync failed (logged; the round then only reported and slept 4 x
 * --idle-ms); *progress is true when anything committed. The caller
 * decides when the next round runs: cs_sched_run sleeps --idle-ms after a
 * round without progress; a test or a simulator on the local port steps
 * rounds of several schedulers in the order it chooses. Returns CS_OK, or
 * CS_ENOMEM. */
int cs_sched_round(cs_sched *s, volatile sig_atomic_t *stop, bool *synced, bool *progress,
                   cs_error *err);

/* A scheduler's whole main(): parse argv (exit status 2 and a message
 * naming the flag on a bad one; --help prints the usage), run until *stop,
 * and return the process exit status (0, or 1 after an error that stopped
 * it). `on_signal` (the caller's: it sets *stop) is installed for SIGINT
 * and SIGTERM, so that a signal ends the loop after the request in flight. */
int cs_sched_main(cs_sched_kind kind, int argc, char **argv, const cs_sched_hooks *hooks,
                  volatile sig_atomic_t *stop, void (*on_signal)(int));

/* For hooks: the options (borrowed from the scheduler). */
const cs_sched_opts *cs_sched_options(const cs_sched *s);

#endif
