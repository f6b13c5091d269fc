/* cellsim_report.h — the figures of a cellsim run, in the Omega paper's
 * terms (EuroSys 2013 §4; ../shared/DOMAIN.md), per scheduler, per
 * simulated day and overall:
 *
 *   job wait time      submission to the start of the job's first
 *                      scheduling attempt; mean (the paper's) and nearest-
 *                      rank p50/p90/p99. A job never attempted by the end
 *                      counts with its wait so far (the end minus its
 *                      submission), so that a saturated scheduler cannot
 *                      look fast by never starting its queue;
 *   busyness           the fraction of simulated time spent in decisions
 *                      (the emulated t_decision); the median of the daily
 *                      values with their median absolute deviation (MAD);
 *   conflict fraction  conflicted transactions per successful one (0: none;
 *                      3: four attempts on average); median of the daily
 *                      values (a day without a successful transaction has
 *                      none and is left out) with MAD, and over the run;
 *   jobs               scheduled (every task placed), abandoned (given up
 *                      after max_attempts), unscheduled (neither, by the
 *                      end), and the tasks still unplaced;
 *   placements         claims committed; commits: transactions with claims.
 *
 * A partial last day is a day of its own length. Every figure is a
 * function of the run's events: the output has no wall-clock value and is
 * the same, byte for byte, for the same seed and settings.
 */
#ifndef CELLSIM_REPORT_H
#define CELLSIM_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "cellstate/error.h"
#include "tools/cellsim_conf.h"
#include "tools/cellsim_kernel.h"

/* What the jobs of one scheduler (or of several, pooled) waited: counts,
 * the mean wait in seconds, nearest-rank p50/p90/p99 in ms. */
typedef struct sim_waits {
    uint64_t jobs, scheduled, abandoned, unscheduled, unattempted, tasks_unplaced;
    double mean_s;
    uint32_t pct_ms[3]; /* p50, p90, p99 */
} sim_waits;

/* One scheduler's figures over the run, or those of every scheduler of a
 * kind: busyness and conflict fraction are medians of daily values with
 * their MAD (NAN when there is none), cf_all over the whole run. */
typedef struct sim_summary {
    sim_waits w;
    double busy_med, busy_mad, cf_med, cf_mad, cf_all;
    uint64_t placements, commits, successful, conflicted;
} sim_summary;

/* `which` of sim_summarize: every scheduler of a kind rather than one. */
#define SIM_ALL_SERVICE (UINT32_MAX - 1)
#define SIM_ALL_BATCH (UINT32_MAX - 2)

/* The figures of scheduler `which` (an index into r->scheds) of `r` (only
 * read), or of all its service or batch schedulers aggregated: the jobs
 * of that kind pooled, counts summed, a day's busyness the mean of the
 * schedulers', a day's conflict fraction that of their transactions
 * pooled. Under monolithic and multipath, whose one scheduler decides
 * both kinds, a kind's jobs are still its own and its busyness and
 * conflicts are that scheduler's (the paper's Figs. 5-6 show batch and
 * service waits apart). With no job of the kind, zero jobs. */
int sim_summarize(const sim_result *r, uint32_t which, sim_summary *out, cs_error *err);

/* The human summary of `r` (of a run of `c`; both only read) on `f`. */
int sim_report_text(const sim_conf *c, const sim_result *r, FILE *f, cs_error *err);

/* The same as one line of JSON (compact, keys sorted) on `f`. */
int sim_report_json(const sim_conf *c, const sim_result *r, FILE *f, cs_error *err);

/* The median of v[0..n) (sorted in place) and the median absolute
 * deviation from it; NAN for n = 0. */
void sim_median_mad(double *v, size_t n, double *median, double *mad);

#endif
