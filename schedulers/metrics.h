/* metrics.h — what a scheduler measures about itself, in the Omega paper's
 * terms, and how it is packed into the `sched.report` it sends cellstated.
 *
 * Omega §4 / ../shared/DOMAIN.md:
 *   "job wait time" — from submission to the start of the first scheduling
 *       attempt; we also measure submission to fully placed. The
 *       percentiles leave out the jobs not yet attempted (they have no wait
 *       yet), which flatters a scheduler that falls behind: a run where 7
 *       of 8 service jobs still waited reported 4 ms. The paper's mean
 *       (wait_mean_ms) counts those jobs with their wait so far;
 *   "scheduler busyness" — the fraction of time the scheduler is busy
 *       making decisions (placement work and the emulated decision time
 *       t_job + t_task x tasks; not waiting on the network or idling);
 *       split, as the paper's figures split it, into useful work and work
 *       wasted: decision time whose claims conflicted and are decided again
 *       (a transaction's time shared out by its claims: a gang aborted
 *       whole wastes all of it). Busyness is cumulative since the
 *       scheduler started; the paper's median of daily values is the
 *       simulator's to compute (cellsim), from these sums;
 *   "conflict fraction" — "the average number of conflicts per successful
 *       transaction": 0 means none, 3 means four attempts on average. A
 *       transaction is conflicted when any of its claims conflicted or it was
 *       aborted (gang), successful when every claim committed — the same
 *       counting as cellbench.
 *
 * A cs_metrics belongs to one scheduler thread: no locking. Wait-time samples
 * are kept whole (one per job, milliseconds) so that percentiles are exact.
 */
#ifndef CS_METRICS_H
#define CS_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include <msgpack.h>

typedef struct cs_samples {
    uint32_t *v; /* milliseconds, saturated at UINT32_MAX */
    size_t n, cap;
    size_t sorted; /* v[0 .. sorted) is in order: what the last percentiles left */
} cs_samples;

typedef struct cs_metrics {
    int64_t start_ns;        /* when the scheduler started */
    int64_t decide_ns;       /* time spent deciding, in total */
    int64_t wasted_ns;       /* of which the claims conflicted: decided again */
    uint64_t txn_successful; /* every claim committed */
    uint64_t txn_conflicted; /* at least one claim conflicted, or aborted */
    uint64_t claims_committed, claims_conflicted;
    uint64_t attempts;       /* scheduling attempts (one job's decision each) */
    uint64_t abandoned;      /* jobs given up for good (--retry tail, the paper's limit) */
    cs_samples wait_first;   /* submission -> first attempt, per job */
    uint64_t wait_first_sum_ms; /* their sum (saturated samples as kept) */
    cs_samples wait_placed;  /* submission -> every task placed, per job */
    /* the previous view, for rates over the last report interval */
    int64_t last_ns;
    uint64_t last_claims;
} cs_metrics;

/* The figures at one moment. */
typedef struct cs_metrics_view {
    double busyness;          /* decide time / time since start, 0..1 */
    double busyness_useful, busyness_wasted; /* its two parts (they add up to it) */
    double conflict_fraction; /* conflicted / successful transactions (0 when none succeeded) */
    double placements_per_s;  /* claims committed per second since the previous view */
    uint64_t txn_successful, txn_conflicted;
    uint64_t claims_committed, claims_conflicted, attempts;
    uint64_t jobs_abandoned;
    uint64_t jobs_first, jobs_placed;                 /* samples behind the percentiles */
    uint32_t wait_first_ms[3], wait_placed_ms[3];     /* p50, p90, p99 (0 when no sample) */
    double wait_first_mean_ms;  /* mean over the jobs attempted (0 when none) */
    /* The paper's mean: the jobs attempted and those still waiting for a
     * first attempt (cs_metrics_view_waiting), each with its wait so far. */
    double wait_mean_ms;
    uint64_t jobs_waiting;
} cs_metrics_view;

void cs_metrics_init(cs_metrics *m, int64_t now_ns);
/* Frees the samples; `m` may be re-initialised afterwards. */
void cs_metrics_free(cs_metrics *m);

/* Add `ns` of decision time. */
void cs_metrics_decided(cs_metrics *m, int64_t ns);
/* Count `ns` of the decision time already added as wasted: its claims
 * conflicted and the work is redone. */
void cs_metrics_wasted(cs_metrics *m, int64_t ns);
/* Count one scheduling attempt. */
void cs_metrics_attempt(cs_metrics *m);
/* Count one job abandoned after its last attempt. */
void cs_metrics_abandoned(cs_metrics *m);
/* Count one transaction's result: claims committed and conflicted, and
 * whether it was aborted as a whole (gang). */
void cs_metrics_txn(cs_metrics *m, uint32_t committed, uint32_t conflicted, bool aborted);
/* Record one job's wait, in milliseconds. CS_ENOMEM on failure. */
int cs_metrics_wait_first(cs_metrics *m, uint64_t ms);
int cs_metrics_wait_placed(cs_metrics *m, uint64_t ms);

/* Compute the figures at `now_ns` (the rate is over the time since the
 * previous call, or since start). Sorts the samples in place. */
void cs_metrics_view_at(cs_metrics *m, int64_t now_ns, cs_metrics_view *out);

/* Add to view `v` the `n` jobs not yet attempted at its moment, whose waits
 * so far sum to `sum_ms`: jobs_waiting and wait_mean_ms. */
void cs_metrics_view_waiting(cs_metrics_view *v, uint64_t n, uint64_t sum_ms);

/* The nearest-rank percentile `p` (0 < p <= 100) of n ascending values. */
uint32_t cs_percentile(const uint32_t *sorted, size_t n, double p);

/* Pack the view as the `metrics` map of a sched.report (docs/protocol.md),
 * plus `pending_tasks` as given. CS_ENOMEM on failure. */
int cs_metrics_pack(const cs_metrics_view *v, uint64_t pending_tasks, msgpack_packer *pk);

#endif
