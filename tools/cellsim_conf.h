/* cellsim_conf.h — what a cellsim run simulates: the cell, the schedulers
 * and the workload, from a preset, a JSON file and flags.
 *
 * Every setting has one name: `--batch-tasks exp:100` on the command line
 * is `"batch_tasks": "exp:100"` in the file (dashes become underscores;
 * numbers may be given as JSON numbers). The preset comes first, then the
 * file (--config), then the other flags, so that a flag overrides the file.
 *
 * The preset `omega` is the Omega paper's lightweight simulator setup
 * (EuroSys 2013 §4; ../shared/DOMAIN.md): homogeneous machines, the cell
 * pre-filled to 60%, t_job 0.1 s and t_task 5 ms for every scheduler,
 * 1,000 attempts per job. Its machines and workloads are those of the
 * simulator's published example (google/cluster-scheduler-simulator,
 * src/main/scala/Workloads.scala: 10,000 machines of 4 cpus and 16 GiB;
 * batch jobs every 10 s of 100 tasks and 100 s, service jobs every 20 s of
 * 10 tasks and 500 s, each task 1 cpu and 2 GiB; inter-arrival, tasks and
 * duration exponential, resources constant), which its authors call
 * fabricated numbers for an example: an assumption, not a measured cell.
 * `small` is the same shape on 100 machines for quick runs and tests.
 */
#ifndef CELLSIM_CONF_H
#define CELLSIM_CONF_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cellstate/error.h"
#include "tools/cellsim_dist.h"

/* One workload (batch or service): its jobs' distributions. Seconds,
 * tasks, cores and GiB. */
typedef struct sim_workload {
    sim_dist interarrival, tasks, duration, cpu, mem;
} sim_workload;

/* Omega §2's scheduler architectures (docs/research.md, one section each). */
typedef enum sim_arch {
    SIM_ARCH_OMEGA = 0,      /* shared state: 1 service + N batch schedulers, optimistic commits */
    SIM_ARCH_MONOLITHIC = 1, /* single-path: one scheduler, one queue, the service decision time for every job */
    SIM_ARCH_MULTIPATH = 2,  /* one scheduler, one queue, each job its kind's decision time */
    SIM_ARCH_MESOS = 3,      /* two-level: the omega mode's schedulers, each deciding only while it holds the offer */
} sim_arch;

/* "omega", "monolithic", "multipath", "mesos". */
const char *sim_arch_name(uint8_t arch);

typedef struct sim_conf {
    uint64_t seed;
    double days;              /* simulated time */
    uint32_t machines;
    double machine_cpu, machine_mem; /* cores, GiB */
    double prefill;           /* fraction of the cell's cpu taken before the clock starts */
    uint32_t batch_schedulers;
    uint8_t conflict, commit; /* cs_conflict_mode, cs_commit_mode (txn/txn.h) */
    double t_job_batch, t_task_batch, t_job_service, t_task_service; /* seconds */
    uint32_t max_attempts;
    double idle_s;            /* an idle scheduler looks again after this, at the latest */
    char batch_strategy[16], service_strategy[16]; /* the loop's --strategy: spread, binpack, random, firstfit */
    bool txn_per_job;         /* the loop's --txn-per-job: one job per transaction (the paper's) */
    bool retry_tail;          /* the loop's --retry tail (the paper's) rather than front */
    uint8_t architecture;     /* sim_arch (default omega) */
    sim_workload batch, service;
    /* Replaying Google's 2011 trace (cellsim_replay.h) instead of the
     * synthetic workload and the homogeneous machines: `trace` is its
     * directory ("" = no replay). */
    char trace[1024];
    uint64_t trace_from, trace_to; /* the window, trace seconds (0: the start; 0: from + days) */
    uint32_t trace_jobs;           /* at most this many trace jobs (0: all) */
    double trace_cpu, trace_mem;   /* cores and GiB that 1.0 of the trace stands for */
    uint32_t trace_service_priority, trace_service_class; /* cs_trace_job_kind's thresholds */
    bool json;                /* end the output with one line of JSON */
    bool timing;              /* wall-clock figures on stderr */
} sim_conf;

/* The preset `name` ("omega", "small") into *c. CS_EINVAL for another. */
int sim_conf_preset(const char *name, sim_conf *c, cs_error *err);

/* Set the key `key` (a file's name or a flag's without its dashes, '-' or
 * '_' alike) to `value` (only read). CS_EINVAL naming the key for an
 * unknown one or a bad value. */
int sim_conf_set(sim_conf *c, const char *key, const char *value, cs_error *err);

/* Read the JSON object in file `path` (only read) into *c: each member a
 * key of sim_conf_set with a string or number (true/false for flags).
 * CS_EINVAL naming the file and the member (or the JSON error's line). */
int sim_conf_load(sim_conf *c, const char *path, cs_error *err);

/* The whole command line (argv[0] is the program): --preset, then
 * --config, then every other flag. *help is set for --help. */
int sim_conf_parse(int argc, char **argv, sim_conf *c, bool *help, cs_error *err);

/* The number of settings, and the name of the i-th (a static string;
 * NULL past the end) in --help's order. *output (may be NULL) is set for
 * a setting that only changes how a run reports (json, timing), not what
 * it simulates. For tools that list every setting (cellsim sweep). */
size_t sim_conf_nkeys(void);
const char *sim_conf_key(size_t i, bool *output);

/* The value of setting `key` in *c (only read) as text into out[size], in
 * the form sim_conf_set reads back to the same value (shortest round-trip
 * numbers, distributions as sim_dist_format). CS_EINVAL for an unknown
 * key. */
int sim_conf_get(const sim_conf *c, const char *key, char *out, size_t size, cs_error *err);

/* The usage, listing every flag and file key. */
void sim_conf_usage(FILE *f);

#endif
