/* schedopts.h — the command line shared by cell-batch and cell-service.
 *
 * Both schedulers take the same concurrency-control knobs, because the point
 * of running them side by side is to compare those knobs (Omega §4-5):
 *   --conflict fine|coarse       conflict detection asked of the store
 *   --commit incremental|gang    commit mode of each transaction
 *   --t-job S --t-task S         emulated decision time, Omega's
 *                                t_decision = t_job + t_task x tasks
 *   --txn-per-job                one job per transaction (the paper's form)
 *   --retry front|tail           where a conflicted job is retried; tail (the
 *                                paper's) abandons it after --max-attempts
 *   --monolithic, --multipath    one scheduler for both kinds (cell-batch)
 *   --offers                     under the offers of a two-level cell
 * plus what each needs to run: the server, a name (unique per scheduler:
 * the store's idempotency key and the sched.report name), the placement
 * policy, and the batch scheduler's share of the work.
 */
#ifndef CS_SCHEDOPTS_H
#define CS_SCHEDOPTS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cellstate/error.h"
#include "proto/tls.h"

typedef enum cs_sched_kind { CS_SCHED_BATCH = 0, CS_SCHED_SERVICE = 1 } cs_sched_kind;

/* Where a job whose claims conflicted goes (--retry). */
typedef enum cs_sched_retry {
    /* Back to its place by priority and submission, tried again next
     * round; parked with a note after --max-attempts (20 batch, 10
     * service), tried again once the cell changed. The default: a job is
     * not starved by later ones, and a parked job is never lost. */
    CS_RETRY_FRONT = 0,
    /* The paper's: to the tail of the queue after --retry-ms, and
     * abandoned for good after --max-attempts (default 1,000 then). */
    CS_RETRY_TAIL = 1,
} cs_sched_retry;

/* Records per piece of a full sync (--sync-chunk): cellstated's own
 * default bound, so that a piece is about 1 MB (server/server.h). */
#define CS_SCHED_SYNC_CHUNK_DEFAULT 10000

typedef struct cs_sched_opts {
    cs_sched_kind kind;
    const char *server;      /* borrowed from argv or the environment: one URL or a list (proto/servers.h) */
    cs_tls_files tls;        /* --tls-cert/--tls-key/--tls-ca, else $CELLSCHED_TLS_* (proto/tls.h) */
    const char *token_file;  /* --token-file, else $CELLSCHED_TOKEN_FILE (proto/principal.h) */
    const char *name;        /* default "batch-<instance>" / "service" */
    char name_buf[64];
    uint8_t conflict;        /* cs_conflict_mode */
    uint8_t commit;          /* cs_commit_mode; a job's `gang` option forces gang for it */
    double t_job_s, t_task_s;
    /* A scheduler that owns both kinds (cs_sched_all_hooks): when true,
     * service jobs take t_job_service_s + t_task_service_s x tasks and
     * batch jobs the pair above. cell-batch --multipath and cellsim's
     * multipath mode set it (off: every job takes the pair above). */
    bool per_kind_times;
    double t_job_service_s, t_task_service_s;
    /* cell-batch --monolithic (Omega's monolithic scheduler, single-path:
     * one decision time for every job) or --multipath (which sets both:
     * batch jobs take --t-job/--t-task, service jobs --t-job-service/
     * --t-task-service): one process owns every job of both kinds, in one
     * queue, with cs_sched_all_hooks. */
    bool monolithic;
    /* --offers: a cell started with cellstated --concurrency offers; each
     * round is bracketed by the offer (acquire, round, release: sched.c). */
    bool offers;
    uint32_t max_attempts;   /* attempts at one job: then parked (front) or abandoned (tail) */
    uint8_t retry;           /* cs_sched_retry */
    uint32_t retry_ms;       /* tail: a conflicted job waits this long before it queues again */
    uint32_t instance, instances; /* batch: this one takes jobs with XXH3(id) % instances == instance */
    const char *strategy;    /* spread | binpack | random | firstfit (policy preset) */
    const char *policy_path; /* a Kubernetes Policy file; overrides strategy */
    uint64_t seed;           /* 0: derived from the name and the pid */
    uint32_t report_ms;      /* sched.report interval */
    uint32_t idle_ms;        /* sync interval when there is nothing to do */
    uint32_t park_ms;        /* a parked job is tried again after this, if the cell changed */
    uint32_t timeout_ms;     /* per request */
    uint32_t sync_chunk;     /* full syncs in pieces of this many records (§5.7); 0: whole */
    uint32_t max_claims;     /* claims per transaction (a gang job is never split) */
    /* One job per transaction, whatever the commit mode (the paper's form).
     * Off: incremental jobs share a transaction up to 1,000 claims (one
     * round trip and one sync for many small jobs), gang jobs go alone. */
    bool txn_per_job;
    uint32_t candidates;     /* feasible machines scored per task (0: the placer's default) */
    bool preempt;            /* service: may evict lower-priority tasks */
    bool once;               /* place what is pending, then exit (tests, scripts) */
    bool verbose;
} cs_sched_opts;

/* Parse argv for a scheduler of `kind`. On CS_EINVAL `err` names the bad
 * flag or value; *help is set (and CS_OK returned) for --help. `o` borrows
 * strings from argv. */
int cs_sched_opts_parse(cs_sched_kind kind, int argc, char **argv, cs_sched_opts *o, bool *help,
                        cs_error *err);

/* Print the usage text of `prog` to `f`. */
void cs_sched_opts_usage(cs_sched_kind kind, const char *prog, FILE *f);

#endif
