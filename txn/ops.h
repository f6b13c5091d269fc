/* ops.h — the cell operations that are not scheduler transactions:
 * registering machines, changing their state, submitting and killing jobs.
 *
 * Each is a command of the state machine (command.h): what it does when
 * applied is said here, next to a shorthand that builds the command from
 * its arguments, applies it and gives a refusal back as its error code and
 * message — for callers that hold the values and need no more of the
 * result than an id and the version (tests, benchmarks' setup). A refusal
 * goes through the state machine like any command, so it is logged.
 * Inputs are only read; results come back through the pointer arguments
 * (any of which may be NULL).
 */
#ifndef CS_OPS_H
#define CS_OPS_H

#include "cellstate/store.h"
#include "txn/command.h"

/* Register a machine, or update the one with the same name: its attributes,
 * capacity, port range and state. Allocations, ports in use and tasks are
 * kept; a capacity below what is allocated is CS_ESTATE. An update that
 * changes nothing writes nothing (the machine's seq stays, so schedulers'
 * coarse-grained claims on it stay valid). `spec`'s id, allocated, ports,
 * ntasks, seq and version are ignored. */
int cs_op_machine_put(cs_store *s, const cs_machine *spec, cs_id *id, uint64_t *version,
                      cs_error *err);

/* Set a machine's state. Going down, every task placed on it becomes lost
 * and its resources are released, in the same transaction. */
int cs_op_machine_state(cs_store *s, cs_id id, uint8_t state, uint64_t *version, cs_error *err);

/* Set what the operator says about machine `id` (cellctl cordon, drain,
 * uncordon): CS_ADMIN_ACTIVE, _CORDONED or _DRAINING, and with draining
 * the deadline (wall-clock ms since the epoch, stamped by the caller so
 * that the logged command carries it; 0 = none) after which
 * cs_op_machine_drain_deadline moves its batch tasks. Tasks stay where they
 * are: the schedulers move service tasks off a draining machine, and place
 * nothing new on a machine that is not active. The same word again writes
 * nothing (not even a log entry). CS_EINVAL for an unknown admin state or a
 * deadline without draining; CS_ENOTFOUND. Kept across re-registrations
 * (cs_op_machine_put leaves it). */
int cs_op_machine_admin(cs_store *s, cs_id id, uint8_t admin, uint64_t deadline,
                        uint64_t *version, cs_error *err);

/* A draining machine's deadline came (the caller, cellstated's monitor,
 * judged it on its clock): every batch task placed there goes back to
 * pending with last_end killed, releasing what it held, to be placed
 * elsewhere; its deadline becomes 0. Service tasks stay (their scheduler
 * moves them within their update strategy). A machine that is not
 * draining, or whose deadline is already 0, is left as it is and nothing
 * is logged, so that a repeated verdict is harmless. CS_ENOTFOUND. */
int cs_op_machine_drain_deadline(cs_store *s, cs_id id, uint64_t *version, cs_error *err);

/* Submit a job: the job record (state active, spec hash computed here) and
 * `count` pending tasks. A name held by an active job is CS_EEXIST. `spec`'s
 * id, state, spec_hash, version and note are ignored; its `submitted` is
 * kept: the caller stamps the wall clock there (cellstated's writer does),
 * and the logged command carries it, so that replay reproduces it. */
int cs_op_job_submit(cs_store *s, const cs_job *spec, cs_id *id, uint64_t *version, cs_error *err);

/* Kill a job: it becomes killed, `ended` (wall-clock ms, stamped by the
 * caller as `submitted` is) its end; each of its tasks not yet ended is
 * killed, and placed ones release their resources. Killing a job that has
 * ended (killed, finished, failed) changes nothing. */
int cs_op_job_kill(cs_store *s, cs_id id, uint64_t ended, uint64_t *version, cs_error *err);

/* End batch job `id` whose tasks have all ended for good: it becomes
 * finished when every task in its slots (0 .. count + surge - 1) finished,
 * failed otherwise, with `ended` (wall-clock ms, stamped by the caller) as
 * its end. Whether a failed task is retried is the batch scheduler's
 * policy (the job's max_retries), so the scheduler asks for this once none
 * will be; the cell checks what it can: CS_ESTATE when a task has not
 * ended (pending, assigned, running: the asker's view was stale) or the job
 * has ended already, CS_EINVAL for a service job (it runs until killed). */
int cs_op_job_end(cs_store *s, cs_id id, uint64_t ended, uint64_t *version, cs_error *err);

/* Garbage collection: remove the ended jobs `ids[0..n)` (ascending and
 * unique, CS_EINVAL otherwise; only read) and all their tasks from the
 * cell, job names included (a later job of the same name keeps its name).
 * All or nothing: CS_ENOTFOUND for an unknown job, CS_ESTATE for an active
 * one. Which jobs are old enough is the caller's decision (cellstated's
 * --job-gc); the logged command names them, so replay removes the same. */
int cs_op_job_gc(cs_store *s, const cs_id *ids, size_t n, uint64_t *version, cs_error *err);

/* An agent's report on attempt `attempt` of task `task`:
 *   CS_TASK_RUNNING   the process started (the task was assigned), or it
 *                     still runs and its health checks say `health`;
 *   CS_TASK_FINISHED  it exited with code 0;
 *   CS_TASK_FAILED    it exited with another code, or could not start
 *                     (`reason` says why).
 * `health` is CS_TASK_HEALTH_HEALTHY or _UNHEALTHY with state running only
 * (CS_EINVAL otherwise), or CS_TASK_HEALTH_UNKNOWN for "not reported": the
 * task's health is then kept. A running report on a running task that
 * changes nothing is not even logged, so that agents may repeat it freely.
 * An ended task releases its resources in the same transaction. A report on
 * an attempt that is no longer the task's current placement (it was
 * preempted, killed, lost and placed again) is CS_ESTATE: the agent's view
 * is stale: the refusal is logged and nothing else is written. `reason`
 * may be NULL. The report (cs_task_report, command.h) is only read. */
int cs_op_task_report(cs_store *s, const cs_task_report *r, uint64_t *version, cs_error *err);

/* cs_op_task_report without a health report. */
int cs_op_task_status(cs_store *s, cs_id id, uint32_t attempt, uint8_t state, int32_t exit_code,
                      const char *reason, uint64_t *version, cs_error *err);

/* Set job `id`'s note: a scheduler's latest word on why its pending tasks
 * wait (at most CS_NOTE_MAX bytes, "" = none; CS_EINVAL beyond). Killed
 * jobs too. Not part of the spec: spec_hash stays. An identical note is not
 * even logged, so that schedulers may repeat it at every pass. `note` is
 * only read. */
int cs_op_job_note(cs_store *s, cs_id id, const char *note, uint64_t *version, cs_error *err);

/* Scale a job to `count` tasks. Its task slots are always 0 .. count +
 * surge - 1, so the surge slots move on top of the new count. Up: new
 * pending tasks at the next indexes (an index left by an earlier scale-down
 * starts afresh). Down: tasks at index >= count + surge that have not ended
 * are killed, placed ones releasing their resources. The spec hash does not
 * change (it leaves count out): no task becomes old. CS_ESTATE for a job
 * that has ended (killed, finished, failed); CS_EINVAL when count + surge exceeds 2^20. */
int cs_op_job_scale(cs_store *s, cs_id id, uint32_t count, uint64_t *version, cs_error *err);

/* Replace job `id`'s spec (same name and kind required) and recompute its
 * spec hash: pending tasks take the new resources, running ones keep theirs
 * until a scheduler replaces them (a rolling update); a new count scales as
 * cs_op_job_scale. An identical spec (same hash and count) writes nothing.
 * The job keeps its `submitted`, `note` and `surge` (`spec`'s are ignored). */
int cs_op_job_update(cs_store *s, cs_id id, const cs_job *spec, uint64_t *version, cs_error *err);

/* Set service job `id`'s surge: the extra task slots a rolling update runs
 * beside its `count` (slots count .. count + surge - 1). Up: pending tasks
 * at the new slots, as a scale up makes them. Down: the tasks at index >=
 * count + surge that have not ended are killed, placed ones releasing their
 * resources. The same surge again writes nothing (not even a log entry).
 * CS_EINVAL for surge > 0 on a batch job (naming it) or count + surge above
 * 2^20; CS_ESTATE for a killed job. */
int cs_op_job_surge(cs_store *s, cs_id id, uint32_t surge, uint64_t *version, cs_error *err);

#endif
