/* cellsim_kernel.h — cellsim's discrete-event kernel: a virtual clock, an
 * event queue, and the real scheduler loop run on it.
 *
 * What runs. One simulated cell: a cs_store in a fresh temporary
 * directory (LMDB without fsync; removed at the end) whose machines are
 * registered, jobs submitted, tasks ended and jobs killed through the
 * state machine (txn/ops.h: each a command of txn/command.h applied by
 * cs_command_apply_built). The schedulers are the real loop (sched.h,
 * cs_sched_round) with the real hooks of cell-service and cell-batch
 * (kinds.h): one service scheduler and N batch schedulers sharing the
 * batch jobs by XXH3(job id) % N, as the daemons do. They reach the store
 * through the in-process port (port.h, port_local.c: sync is the reply
 * cellstated would send, commit is cs_commit), so placement, conflict
 * detection and commit are the production code.
 *
 * The clock. Events (a job's arrival, a task's end, a service job's end,
 * a scheduler's wake-up) sit in a binary heap ordered by (time, sequence
 * number): ties run in the order they were scheduled, so a run is a
 * function of its configuration. Each scheduler's loop runs as a
 * coroutine with a stack of its own on the kernel's thread
 * (cellsim_coro.h), so only one party runs at a time: the baton passes
 * from the kernel to a scheduler at its wake-up event and back when the
 * scheduler next sleeps. (It was a thread each with a mutex and condition
 * variables until a profile showed the hand-overs at 15% of a run.)
 * The loop sleeps through its port for the emulated decision time
 * (Omega's t_decision = t_job + t_task x tasks): the port's `sleep` here
 * schedules a wake-up at `until` and hands the baton back, and while the
 * scheduler "thinks", the kernel runs everything due before it — other
 * schedulers' commits, arrivals, task ends. That is exactly how Omega's
 * conflicts arise: a decision made on a copy that the cell has moved past.
 *
 * The port. Each scheduler has its own local port over the shared store,
 * wrapped by a table of the kernel's (the way tests/cellbuild.h's tb_port
 * interposes): `now`/`wall` read the kernel's clock, `sleep` is the
 * baton, `commit` and `note` pass through and are watched. Why a port
 * each: its counts and last report are then one scheduler's, and nothing
 * in a port is shared state of the cell (the store is). Why a wrapper and
 * no hook inside port_local.c: the port is already a table of functions,
 * so interposing needs no change to it.
 *
 * Architectures (conf `architecture`, docs/research.md). The above is
 * omega. monolithic and multipath run one scheduler instead, the loop with
 * kinds.h's cs_sched_all_hooks owning every job (single-path: the service
 * decision time for all; multipath: per_kind_times). mesos runs omega's
 * schedulers as frameworks under offers (the paper's Mesos 0.9): a
 * resource manager (a copy of the cell of the kernel's own) grants, one
 * framework at a time (EV_OFFER, 1 ms each) to the waiting framework with
 * the lowest dominant share, every resource that is free and in no other
 * outstanding offer, per machine; a framework runs a round only while it
 * holds an offer, its copy shows only the offer (cs_copy_hold after each
 * sync), what it commits leaves the offer and the rest returns at the
 * round's end. The kernel counts each offer a waiting job's framework
 * held as an attempt of it, and kills the job at max_attempts
 * (abandoned).
 *
 * Idle. cellsim drives the rounds itself (cs_sched_round, as cs_sched_run
 * does); after a round that committed nothing it waits until the next job
 * of its kind arrives or `idle` passes, whichever comes first — the
 * event-driven form of the daemons' --idle-ms polling. So every sleep the
 * loop makes through the port is a decision: busyness is their sum.
 *
 * What is measured comes from what passes through the port: each
 * transaction with claims (committed, conflicted, aborted), each decision
 * sleep, each note ("gave up after N conflicting attempts": abandoned) —
 * never from re-deriving placement. See cellsim_report.h for the figures.
 */
#ifndef CELLSIM_KERNEL_H
#define CELLSIM_KERNEL_H

#include <stdbool.h>
#include <stdint.h>

#include "cellstate/error.h"
#include "cellstate/record.h"
#include "tools/cellsim_conf.h"
#include "tools/cellsim_replay.h"

#define SIM_DAY_NS (INT64_C(86400) * 1000000000)

/* One scheduler's figures over one simulated day. */
typedef struct sim_day_figs {
    int64_t decide_ns;       /* emulated decision time (busyness' numerator) */
    uint64_t txn_successful; /* transactions with claims whose every claim committed */
    uint64_t txn_conflicted; /* with a conflicting claim, or aborted whole (gang) */
    uint64_t commits;        /* transactions with claims */
    uint64_t claims;         /* claims committed: placements */
    /* mesos: offers this framework was granted, the time it held them,
     * and the cpu (milli) they offered in all when granted (over
     * `offers`: the mean offer). */
    uint64_t offers;
    int64_t offer_ns;
    uint64_t offer_cpu;
} sim_day_figs;

typedef struct sim_sched_figs {
    char name[32];
    bool service;
    sim_day_figs *days; /* ndays of the result */
} sim_sched_figs;

typedef enum sim_outcome {
    SIM_JOB_WAITING = 0,   /* not every task placed by the end */
    SIM_JOB_SCHEDULED = 1, /* every task placed */
    /* Given up after max_attempts, not every task placed: by the loop
     * (its note), or in mesos mode by the kernel after max_attempts
     * offers that left it not wholly placed (the job is then killed). */
    SIM_JOB_ABANDONED = 2,
} sim_outcome;

/* One job that arrived during the run (the prefill's jobs are not). */
typedef struct sim_job_figs {
    cs_id id;
    uint32_t owner;   /* index into the result's scheds */
    uint32_t day;     /* of its submission */
    uint32_t count, placed;
    int64_t submitted_ns;
    int64_t wait_ns;  /* submission to its first attempt; to the end if never attempted */
    bool attempted;
    bool service;     /* of the service workload */
    uint8_t outcome;  /* sim_outcome */
} sim_job_figs;

typedef struct sim_result {
    int64_t end_ns;   /* simulated time */
    uint32_t ndays;   /* the last may be partial */
    sim_sched_figs *scheds; /* [0] the service scheduler, then batch-0 .. */
    uint32_t nscheds;
    sim_job_figs *jobs;
    size_t njobs;
    uint64_t prefill_tasks;
    double prefill_cpu; /* fraction of the cell's cpu the prefill took */
    /* The machines at the start and their cores and GiB in all: the
     * preset's, or under a replay the trace's (the report's header). */
    uint32_t machines;
    double cell_cpu, cell_mem;
    uint64_t events;
    bool replayed;            /* c->trace was set: what the replay did and changed */
    sim_replay_counts replay;
    cs_trace_counts trace;
} sim_result;

/* Run the simulation `c` describes (only read). On success *out is the
 * caller's: sim_result_free. Errors: the store's, out of memory, or a
 * command the cell refused that the simulation never sends unless it is
 * wrong (named in `err`). The temporary directory is removed either way. */
int sim_run(const sim_conf *c, sim_result *out, cs_error *err);
void sim_result_free(sim_result *r);

#endif
