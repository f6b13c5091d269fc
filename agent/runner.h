/* runner.h — tasks as real processes, with durable per-task state so that
 * an agent restart never starts a task twice and still learns how each one
 * ended.
 *
 * Layout under the work directory:
 *
 *   agent.lock                 flock'd by the running agent (one per dir)
 *   agent.alive                the running agent's heartbeat to the
 *                              supervisors (alive.h)
 *   tasks/<task id>-<attempt>/ one directory per placement, made with
 *                              mkdir(2) before anything runs: its existence
 *                              is the durable "this placement was begun"
 *     meta                     job name, index, kill grace, ports (for adoption)
 *     cmd, env                 what the supervisor runs (env: NUL-separated)
 *     health                   the job's health checks (options bytes holding
 *                              only them), when it has any
 *     isolation                the task's level, user, sandbox, limits and
 *                              parent cgroups (isolate.h), for the supervisor
 *     cgroup                   written by the supervisor: the task's cgroups
 *     stdout, stderr           the task's output
 *     pid                      written by the supervisor once exec succeeded:
 *                              the task's pid, which is its process group
 *     exit                     written by the supervisor when the task ended:
 *                              "exit N", "signal N", "memory MIB exit|signal N"
 *                              (the kernel killed for the memory limit) or
 *                              "error TEXT"
 *     orphaned                 written by the supervisor when it stopped the
 *                              task for want of an agent: the reason
 *     health_kill              written by the agent when the task's health
 *                              checks condemned it: the reason it reports
 *     done                     written by the agent when the cell needs
 *                              nothing more about this placement
 *
 * The task itself works in its sandbox, --task-root/<task id>-<attempt>/,
 * outside the agent's state and owned by the task user (isolate.h); the
 * sandbox goes when retention removes the task's directory (logserve.h).
 *
 * Each task runs under a small supervisor: the agent binary re-executed
 * with --supervise DIR, detached (double fork, own session) so that it
 * survives the agent. It makes the task's cgroups and sandbox, starts
 * `/bin/sh -c CMD` in its own process group, in the cgroups, in the
 * sandbox, as the task user, waits for it, kills what is left of the task
 * (its cgroup, then the walk below), and writes `exit` atomically
 * (temporary file and rename). pid and exit are therefore known to any
 * later agent.
 *
 * "What is left of the task" is every process it started, in its group or
 * not (setsid): the supervisor is a child subreaper, so they all remain its
 * descendants, and it kills them by a walk of /proc (proctree.h), after
 * killing the task's cgroup where it has one (isolate.h). And a task never outlives its agent
 * unsupervised: the supervisor stops it (SIGTERM, SIGKILL after the kill
 * grace) once agent.alive has not changed for --orphan-grace. The agent is
 * in touch through that file, not a pipe, so that a restarted agent is in
 * touch with the supervisors of the tasks it adopts (alive.h).
 *
 * The runner owns the agent's health checker (health.h): a task is handed to
 * it once its pid is known, from the files above, and taken back when it
 * ends; refresh passes on the checker's verdicts.
 */
#ifndef AG_RUNNER_H
#define AG_RUNNER_H

#include "agent/isolate.h"
#include "agent/loop.h"

typedef struct ag_runner ag_runner;

/* Use `workdir` (created if missing) and lock it against a second agent,
 * and start the health checker's thread. `self_exe` is the path of this
 * binary, for the supervisor; copied. Tasks are looked at every `tick_ms`.
 * `iso` (borrowed for the runner's life; NULL: no isolation file, tasks
 * run as the agent's user in their task directory) holds the tasks to
 * their requests; when its task user is not the agent's, the work
 * directory is made private (0700). On success *out is the caller's:
 * ag_runner_close (which stops the checker; the tasks keep running). */
int ag_runner_open(const char *workdir, const char *self_exe, uint32_t tick_ms,
                   const ag_iso *iso, ag_runner **out, cs_error *err);
void ag_runner_close(ag_runner *r);

/* The backend that runs tasks as processes (ctx borrows `r`). */
void ag_runner_backend(ag_runner *r, ag_backend *out);

/* Call fn for every placement begun by an earlier incarnation that is not
 * `done`: running, ended but unreported, or interrupted while starting.
 * The task passed is filled from its directory and only valid during the
 * call. fn's non-zero return stops the scan and is returned. */
int ag_runner_scan(ag_runner *r, int (*fn)(void *arg, const ag_task *t), void *arg,
                   cs_error *err);

/* The supervisor's main: run the task prepared in `dir`. Returns the exit
 * status for the supervisor process. */
int ag_supervise(const char *dir);

#endif
