/* cellsim_replay.h — Google's cluster-data 2011 trace as cellsim's cell
 * and workload (issue 15 §3): the trace read by cellsim_trace.h, turned
 * into what the kernel (cellsim_kernel.c) submits and applies.
 *
 * Why a module of its own: the kernel owns the clock, the schedulers and
 * the jobs' bookkeeping; what a trace job becomes in cellsched and how a
 * machine event reaches the store are decisions of the replay, kept here
 * where they can be read and counted in one place.
 *
 * Time. Simulated time 0 is the window's start (trace_from, or the
 * trace's start at 600 s): an event at trace time T happens at T - start.
 * The window ends at trace_to, which defaults to, and may not pass, the
 * run's end (trace_from + days): a window shorter than the run leaves the
 * cell running what it holds until the end.
 *
 * The cell. The machines present at the window's start
 * (cs_trace_machines_at), each with its own capacity (trace_cpu cores and
 * trace_mem GiB per 1.0), named "g<trace id>". Later machine events are
 * applied at their time through the state machine: an ADD puts the
 * machine (up), an UPDATE puts its new capacity (a capacity below what its
 * tasks hold is raised to that, counted: the state machine refuses less),
 * a REMOVE sets it down (cs_op_machine_state, as cellstated's monitor
 * does for a silent agent): its tasks are lost, and their schedulers place
 * them again.
 *
 * The jobs. Each trace job arrives at its first SUBMIT with the tasks that
 * ran in the trace (runs > 0), each lasting its last run
 * (cs_trace_task_duration_us). Deviations, each counted:
 *   - A cellsched job has one request for all its tasks; a trace job's
 *     tasks may ask for different amounts. The job is split into one
 *     cellsched job per distinct request (in the order of first use),
 *     all arriving at the trace job's time. Why not the largest request
 *     for all: that inflates the load (a job with one large task would
 *     claim it for all); splitting keeps every task's request and
 *     duration exactly, at the cost of more, smaller jobs (t_job is paid
 *     once per piece).
 *   - A task still running at the window's end (cut, CS_TRACE_TASK_CUT)
 *     runs past the run's end: its duration is the run's length.
 *   - A task that never ran in the trace (runs == 0: killed while pending,
 *     or pending at the window's end) has no duration; it is left out. A
 *     job none of whose tasks ran is not submitted.
 *   - A service job runs from its first placement for its longest task's
 *     duration and is then killed (the kernel's rule for service jobs:
 *     cell-service replaces a task that ends, so tasks cannot end one by
 *     one).
 *   - Jobs already running at the window's start are not in the window
 *     (cellsim_trace.h): the `prefill` setting stands in for them, filling
 *     the trace's machines as it fills homogeneous ones.
 */
#ifndef CELLSIM_REPLAY_H
#define CELLSIM_REPLAY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cellstate/error.h"
#include "cellstate/record.h"
#include "cellstate/store.h"
#include "tools/cellsim_conf.h"
#include "tools/cellsim_trace.h"

/* What the replay did, and what it changed from the trace. */
#define SIM_REPLAY_COUNTS(X)                                                                  \
    X(machines_start, "machines at the window's start")                                       \
    X(machine_adds, "machine ADDs applied")                                                   \
    X(machine_removes, "machine REMOVEs applied (set down)")                                  \
    X(machine_updates, "machine UPDATEs applied")                                             \
    X(updates_raised, "UPDATEs below what the machine's tasks held (raised to that)")         \
    X(tasks_lost, "tasks lost with a removed machine")                                        \
    X(trace_jobs, "trace jobs in the window")                                                 \
    X(jobs_unrun, "trace jobs none of whose tasks ran (not submitted)")                       \
    X(jobs_split, "trace jobs with tasks of different requests (split)")                      \
    X(jobs, "cellsched jobs submitted for them")                                              \
    X(jobs_service, "of which service")                                                       \
    X(tasks, "tasks submitted")                                                               \
    X(tasks_unrun, "tasks that never ran in the trace (left out)")

typedef struct sim_replay_counts {
#define SIM_REPLAY_FIELD(name, text) uint64_t name;
    SIM_REPLAY_COUNTS(SIM_REPLAY_FIELD)
#undef SIM_REPLAY_FIELD
} sim_replay_counts;

/* One cellsched job to submit (a trace job, or one piece of it). */
typedef struct sim_replay_job {
    int64_t at_ns;       /* its arrival, simulated time */
    char name[48];       /* "g<trace job id>" or "g<id>.<piece>" */
    uint8_t kind;        /* cs_job_kind */
    uint32_t count;
    cs_res res;
    int64_t duration_ns; /* its longest task's */
    int64_t *task_ns;    /* each task's duration, by index: owned by the replay */
    uint32_t *attempt;   /* a slot per task for the kernel's use (zeroed): owned by the replay */
} sim_replay_job;

typedef struct sim_replay sim_replay;

/* Read the trace c->trace (c only read) within its window for a run of
 * run_ns, and build the jobs. *out is the caller's: sim_replay_free.
 * CS_EINVAL for a missing directory, a bad window, a bad scale or a bad
 * trace (named), CS_EIO, CS_ENOMEM. */
int sim_replay_open(const sim_conf *c, int64_t run_ns, sim_replay **out, cs_error *err);
void sim_replay_free(sim_replay *r);

/* Register the machines present at the window's start in store s
 * (borrowed), in id order: they get the store's ids 1, 2, ... in that
 * order. *caps (owned by the replay) gets their capacities, *n their
 * number. */
int sim_replay_machines(sim_replay *r, cs_store *s, const cs_res **caps, size_t *n, cs_error *err);

/* The time of the next machine event or job not yet taken (INT64_MAX when
 * none). */
int64_t sim_replay_next_ns(const sim_replay *r);

/* Apply every machine event due at `now_ns` or before to store s. The
 * tasks a removal lost are appended to *lost (a vector of *nlost ids in
 * *cap slots, owned by the caller, who frees it) before the machine goes
 * down. Errors are the store's, named with the machine. */
int sim_replay_machine_events(sim_replay *r, cs_store *s, int64_t now_ns, cs_id **lost,
                              size_t *nlost, size_t *cap, cs_error *err);

/* The next job due at `now_ns` or before, or NULL. Borrowed: valid until
 * sim_replay_free. */
const sim_replay_job *sim_replay_next_job(sim_replay *r, int64_t now_ns);

/* The counts so far, and the trace reader's (borrowed). */
const sim_replay_counts *sim_replay_counts_of(const sim_replay *r);
const cs_trace_counts *sim_replay_trace_counts(const sim_replay *r);

/* The counts (both borrowed), one a line with its sentence, then the
 * trace reader's (cs_trace_report's form), to f (borrowed). */
void sim_replay_report(const sim_replay_counts *c, const cs_trace_counts *t, FILE *f);

#endif
