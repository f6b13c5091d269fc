/* cellsim_trace.h — a reader for Google's public cluster-data 2011 trace
 * (clusterdata-2011-2), so that cellsim can replay the 29 days of the
 * Omega paper's cluster C: heterogeneous machines from machine_events, jobs
 * with their tasks' requests and durations from job_events and task_events.
 *
 * The format (trace-data v2.1 schema, google/cluster-data's
 * ClusterData2011_2.md). A trace is a directory with one folder per table;
 * each folder holds shards named part-NNNNN-of-MMMMM.csv.gz (plain .csv is
 * read too: zlib's gzopen reads both), comma-separated, no header, read in
 * shard order (the trace is sorted by time across a table's shards). Times
 * are microseconds; the trace starts at 600 s; 0 means "before the trace
 * started" and 2^63-1 "after it ended". Resources are normalised to the
 * largest machine of the cell (1.0). An empty field is a missing value; the
 * columns marked * may not be empty. Columns are numbered from 1, as in the
 * schema and in this reader's error messages.
 *
 *   machine_events (6): 1 time*, 2 machine ID*, 3 event type* (0 ADD,
 *     1 REMOVE, 2 UPDATE), 4 platform ID (a hash), 5 CPUs, 6 memory.
 *   job_events (8): 1 time*, 2 missing info, 3 job ID*, 4 event type*,
 *     5 user (hash), 6 scheduling class (0-3, 3 the most latency-
 *     sensitive), 7 job name (hash), 8 logical job name (hash).
 *   task_events (13): 1 time*, 2 missing info, 3 job ID*, 4 task index*,
 *     5 machine ID, 6 event type*, 7 user (hash), 8 scheduling class,
 *     9 priority* (0-11; 9-11 "production"), 10 CPU request, 11 memory
 *     request, 12 disk request, 13 different-machines restriction (0/1).
 *   Event types of jobs and tasks: 0 SUBMIT, 1 SCHEDULE, 2 EVICT, 3 FAIL,
 *   4 FINISH, 5 KILL, 6 LOST, 7 UPDATE_PENDING, 8 UPDATE_RUNNING. Missing
 *   info: 0 the event was synthesised from a later snapshot, 1 a
 *   termination synthesised because the job or task vanished, 2 its
 *   creation was not seen (metadata may be missing, SUBMIT/SCHEDULE late).
 *
 * What is kept (everything a scheduler replay needs, nothing it cannot use):
 *   - every machine event before the window's end, with the capacity the
 *     machine has after it (an UPDATE or a re-ADD with an empty field keeps
 *     the machine's previous value), so a simulator can add, remove and
 *     resize machines over time; cs_trace_machines_at gives the set at a
 *     time (the initial cell is the set at the window's start);
 *   - the jobs whose first SUBMIT (job_events) falls in the window, by
 *     submission time, then id,
 *     with their scheduling class, priority (the highest of their tasks')
 *     and kind (cs_trace_job_kind, below), and each task's index, CPU and
 *     memory request (the last value given by its SUBMIT, UPDATE_PENDING or
 *     UPDATE_RUNNING events), different-machines flag, number of runs, its
 *     last run (from its last SCHEDULE to the end event that stopped it)
 *     and its fate (the last end event, or none). A job may have no task
 *     (its task events all outside the window, or absent): counted.
 * What is dropped, and why: user, job and platform names (hashes that no
 * scheduler decision here reads); the machine a task ran on (the simulator
 * places the task itself); disk requests (machine_events gives no disk
 * capacity to place them against); missing info (only counted: the events
 * are used as they are, as the trace's authors intend).
 *
 * Rules:
 *   - Time 0 is read as the trace's start (600 s) and flagged, so that jobs
 *     and tasks present when the trace began are part of a window that
 *     starts there; their durations are lower bounds.
 *   - The window is [from, to) in trace seconds: a job is kept when its
 *     first SUBMIT is in it (and fewer than the job limit were kept before
 *     it); events at or after `to` are not applied, and no shard after the
 *     first one that reaches `to` is opened. A task still running at the
 *     window's end ends there, flagged CS_TRACE_TASK_CUT; its fate is none.
 *     A window starting after 600 s loses the jobs already running then
 *     (keeping them would mean holding every earlier job while reading).
 *   - A task enters on its first SUBMIT (or on a SCHEDULE whose SUBMIT the
 *     trace lacks, counted); it may run several times (EVICT, FAIL or LOST
 *     and then SUBMIT again): `runs` counts SCHEDULEs, `run_us` adds up
 *     every run, and the last run is the one a replay should time, since
 *     the earlier ones were cut by the real scheduler or a failure.
 *   - Service or batch (cs_trace_job_kind): service when the job's priority
 *     is production (>= 9) and its scheduling class is 2 or 3. This is the
 *     Omega paper's own split ("CMB_PBB", google/cluster-scheduler-simulator
 *     traces/README.txt), so that a replay splits the workload as the
 *     paper's experiments did: production work that is latency-sensitive
 *     is service, and production work of class 0-1 counts as batch with
 *     everything else. Both thresholds are options.
 *   - Bad input stops the read with an error naming the shard, the line and
 *     the column (a short line, a bad number, an out-of-range value, a
 *     missing shard, a damaged gzip stream). Events that are well-formed
 *     but do not fit what was read so far (an event for a job not kept, an
 *     end event of a task never submitted, a second SCHEDULE, a machine
 *     removed that is not there) are counted in cs_trace_counts and
 *     skipped: the trace's notes say events can be missing or synthesised,
 *     and such an event costs a replay nothing. A task killed while
 *     pending is no such case: it ends with that fate and no run.
 *
 * Memory is bounded by the jobs in the window (a job is found by id through
 * cellstate/idindex.h) plus the machine events: about 72 bytes a task, up
 * to twice that while a job's task array grows. Reading runs at about a
 * million lines a second on a 2-core machine, gunzip included (2M tasks,
 * 6.2M lines: 5.4 s, 240 MB). Not thread-safe; no global state.
 */
#ifndef CELLSIM_TRACE_H
#define CELLSIM_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cellstate/error.h"
#include "cellstate/record.h"

/* The trace's start (600 s) and its "after the end" mark, in microseconds. */
#define CS_TRACE_START_US UINT64_C(600000000)
#define CS_TRACE_NEVER_US ((uint64_t)INT64_MAX)

/* Job and task event types, as the trace numbers them. */
enum cs_trace_event {
    CS_TRACE_SUBMIT = 0,
    CS_TRACE_SCHEDULE = 1,
    CS_TRACE_EVICT = 2,
    CS_TRACE_FAIL = 3,
    CS_TRACE_FINISH = 4,
    CS_TRACE_KILL = 5,
    CS_TRACE_LOST = 6,
    CS_TRACE_UPDATE_PENDING = 7,
    CS_TRACE_UPDATE_RUNNING = 8,
    CS_TRACE_EVENT_COUNT,
    CS_TRACE_NO_EVENT = 255 /* a fate: still pending or running at the end */
};

/* Machine event types. */
enum cs_trace_machine_event_type {
    CS_TRACE_MACHINE_ADD = 0,
    CS_TRACE_MACHINE_REMOVE = 1,
    CS_TRACE_MACHINE_UPDATE = 2,
    CS_TRACE_MACHINE_EVENT_COUNT
};

/* "SUBMIT", "ADD", ...; "NONE" for CS_TRACE_NO_EVENT, "?" outside the
 * tables. Static strings. */
const char *cs_trace_event_name(uint8_t type);
const char *cs_trace_machine_event_name(uint8_t type);

/* cs_trace_machine_event.given: which capacity fields the line had. */
enum { CS_TRACE_GIVEN_CPU = 1, CS_TRACE_GIVEN_MEM = 2 };

typedef struct cs_trace_machine_event {
    uint64_t time_us;
    uint64_t machine;
    double cpu, mem; /* the capacity after the event (normalised) */
    uint8_t type;    /* enum cs_trace_machine_event_type */
    uint8_t given;   /* CS_TRACE_GIVEN_* */
} cs_trace_machine_event;

/* A machine at a time (cs_trace_machines_at). */
typedef struct cs_trace_machine {
    uint64_t id;
    double cpu, mem;
} cs_trace_machine;

/* A task's state at the window's end. */
enum cs_trace_task_state { CS_TRACE_PENDING = 0, CS_TRACE_RUNNING = 1, CS_TRACE_ENDED = 2 };

/* cs_trace_task.flags */
enum {
    CS_TRACE_TASK_CUT = 1 << 0,           /* running at the window's end: last_end_us is it */
    CS_TRACE_TASK_BEFORE_START = 1 << 1,  /* submitted or scheduled at time 0 */
    CS_TRACE_TASK_NO_SUBMIT = 1 << 2,     /* entered on a SCHEDULE */
    CS_TRACE_TASK_NO_REQUEST = 1 << 3,    /* no CPU or no memory request given: 0 */
    CS_TRACE_TASK_DIFFERENT_MACHINES = 1 << 4 /* column 13 was 1 */
};

typedef struct cs_trace_task {
    uint32_t index;
    uint32_t runs;        /* SCHEDULE events */
    double cpu, mem;      /* request (normalised) */
    uint64_t submit_us;   /* first SUBMIT (or the SCHEDULE it entered on) */
    uint64_t start_us;    /* the last run's SCHEDULE; 0 when it never ran */
    uint64_t stop_us;     /* the last run's end (end event or window's end) */
    uint64_t end_us;      /* time of the fate's event; 0 when none */
    uint64_t run_us;      /* every run added up */
    uint8_t state;        /* enum cs_trace_task_state */
    uint8_t fate;         /* last end event (EVICT..LOST) or CS_TRACE_NO_EVENT */
    uint8_t last_run_end; /* the event that ended the last run, or CS_TRACE_NO_EVENT (cut) */
    uint8_t priority;     /* the last given */
    uint16_t flags;       /* CS_TRACE_TASK_* */
} cs_trace_task;

/* The last run's duration in microseconds (0 when it never ran). */
static inline uint64_t cs_trace_task_duration_us(const cs_trace_task *t)
{
    return t->runs > 0 ? t->stop_us - t->start_us : 0;
}

/* cs_trace_job.flags */
enum { CS_TRACE_JOB_BEFORE_START = 1 << 0 /* submitted at time 0 */ };

typedef struct cs_trace_job {
    cs_id id; /* first: cellstate/idindex.h finds jobs by it */
    uint64_t submit_us;
    uint64_t end_us;       /* the job's last end event (job_events), 0 if none */
    cs_trace_task *tasks;  /* by index, ascending; owned by the trace */
    uint32_t ntasks;
    uint32_t cap;          /* slots of tasks[] (while reading: by index) */
    int8_t sched_class;    /* -1 when never given */
    int8_t priority;       /* highest of its tasks', -1 without tasks */
    uint8_t kind;          /* cs_job_kind */
    uint8_t end_event;     /* enum cs_trace_event or CS_TRACE_NO_EVENT */
    uint8_t flags;         /* CS_TRACE_JOB_* */
} cs_trace_job;

/* What the reader skipped or repaired, each with the sentence
 * cs_trace_report prints. */
#define CS_TRACE_COUNTS(X)                                                                  \
    X(shards, "shards read")                                                                \
    X(lines, "lines read")                                                                  \
    X(after_window, "events at or after the window's end (not applied)")                    \
    X(synthesized, "events the trace marks with missing info (used as they are)")          \
    X(jobs_before_window, "jobs submitted before the window (dropped)")                     \
    X(jobs_over_limit, "jobs beyond the job limit (dropped)")                               \
    X(jobs_resubmitted, "SUBMITs of a job already kept (ignored)")                          \
    X(job_events_other, "job events of jobs not kept (skipped)")                            \
    X(task_events_other, "task events of jobs not kept (skipped)")                          \
    X(task_events_no_task, "task events before the task's SUBMIT (skipped)")                \
    X(tasks_no_submit, "tasks that entered on a SCHEDULE without SUBMIT")                    \
    X(task_events_out_of_order, "task events its state does not allow (skipped)")           \
    X(machine_events_unknown, "REMOVE or UPDATE of a machine not present (skipped)")        \
    X(machine_events_readded, "ADD of a machine already present (applied as an UPDATE)")    \
    X(machines_no_capacity, "machine ADDs without CPU or memory (0 until an UPDATE)")           \
    X(jobs_no_tasks, "jobs kept without a task in the window")

typedef struct cs_trace_counts {
#define CS_TRACE_COUNT_FIELD(name, text) uint64_t name;
    CS_TRACE_COUNTS(CS_TRACE_COUNT_FIELD)
#undef CS_TRACE_COUNT_FIELD
} cs_trace_counts;

typedef struct cs_trace_opts {
    uint64_t from_s;      /* window start, trace seconds (0: from the beginning) */
    uint64_t to_s;        /* window end, trace seconds; 0: to the trace's end */
    uint32_t job_limit;   /* keep at most this many jobs; 0: no limit */
    uint8_t service_min_priority; /* cs_trace_job_kind's thresholds */
    uint8_t service_min_class;
} cs_trace_opts;

/* The whole window, ready for a replay. */
typedef struct cs_trace {
    cs_trace_machine_event *machine_events; /* by time, as in the trace */
    size_t nmachine_events;
    cs_trace_job *jobs; /* by submit time, then id */
    size_t njobs;
    uint64_t from_us, to_us; /* the window read; to_us is its end: `to`, or the last event's time */
    cs_trace_counts counts;
} cs_trace;

/* The whole trace, no limit, the Omega paper's split (9, 2). */
void cs_trace_opts_default(cs_trace_opts *o);

/* Service or batch (cs_job_kind) for a job of `priority` (-1: no task,
 * batch) and scheduling class `sched_class` (-1: unknown, read as 0):
 * service when priority >= o->service_min_priority and sched_class >=
 * o->service_min_class. The simulator may call it again with other
 * thresholds on a trace already read. */
uint8_t cs_trace_job_kind(const cs_trace_opts *o, int priority, int sched_class);

/* Read the trace in directory `dir` (borrowed) into *out within o's window.
 * On success *out is the caller's to free with cs_trace_free; on error
 * *out holds nothing (freed) and `err` names the shard (relative to dir),
 * the line and the column. CS_EINVAL for bad input or options, CS_EIO for a
 * shard that cannot be opened or read, CS_ENOMEM. */
int cs_trace_read(const char *dir, const cs_trace_opts *o, cs_trace *out, cs_error *err);

/* Free what cs_trace_read allocated; *t is empty afterwards. */
void cs_trace_free(cs_trace *t);

/* The machines present at `time_us` (after every machine event at or before
 * it), by id, with their capacity then. *out is allocated and transferred
 * to the caller (free()); NULL when *n is 0. CS_ENOMEM. */
int cs_trace_machines_at(const cs_trace *t, uint64_t time_us, cs_trace_machine **out, size_t *n);

/* Write the counts, one per line with its sentence, to f (borrowed). */
void cs_trace_report(const cs_trace *t, FILE *f);

/* What 1.0 of the trace is in cellsched's units: the trace hides the size
 * of its largest machine, so the simulator (or the researcher) says it. */
typedef struct cs_trace_scale {
    int64_t cpu_millicores; /* e.g. 32000 for a 32-core largest machine */
    int64_t mem_mib;
} cs_trace_scale;

/* Convert a normalised (cpu, mem) into cs_res (disk 0), rounding to the
 * nearest unit; a non-zero amount never rounds to 0 (a tiny request still
 * occupies something, as it did in the cell). CS_EINVAL for a scale outside
 * 1..CS_RES_MAX, a negative or non-finite amount, or a result above
 * CS_RES_MAX. */
int cs_trace_res(const cs_trace_scale *s, double cpu, double mem, cs_res *out, cs_error *err);

#endif
