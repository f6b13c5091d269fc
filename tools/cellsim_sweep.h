/* cellsim_sweep.h — `cellsim sweep`: one simulation per point of a grid
 * of settings, one CSV row per run (issue 15 §4).
 *
 *   cellsim sweep [--preset ...] [--config FILE] [--SETTING VALUE ...]
 *                 --vary KEY=V1,V2,... [--vary KEY2=...] [--out RESULTS.csv]
 *                 [--jobs N]
 *
 * Why a sweep inside cellsim and not a shell loop: the paper's figures are
 * grids (t_job(service) × architecture, batch schedulers × conflict mode),
 * each point a whole run, and a researcher wants them on both cores, in
 * one file whose rows come in the grid's order whatever finished first,
 * the same bytes for the same seed — a loop of processes gives none of
 * that without glue.
 *
 * The grid is the cartesian product of the --vary lists, the first --vary
 * the slowest to change (as nested loops in the order given). A --vary
 * takes any key sim_conf_set takes; its values are separated by commas, or
 * by semicolons when the list holds one (an empirical distribution has
 * commas of its own: --vary 'batch_tasks=exp:100;emp:0=1,1=10'). Every
 * value is tried on the base settings before any run, so a bad one stops
 * the sweep at once, named.
 *
 * The CSV (RFC 4180: a field with a comma or a quote is quoted): a header,
 * then one row per point. Columns: the varied keys (their values as
 * given); every other setting that defines the run (sim_conf_get's form;
 * not json and timing, which only change how a run reports); then per
 * kind, service_* and batch_*, the figures of cellsim_report.h —
 * jobs, scheduled, abandoned, unscheduled, tasks_unplaced, wait_mean_s,
 * wait_p50_s, wait_p90_s, wait_p99_s, busyness_median, busyness_mad,
 * conflict_fraction_median, conflict_fraction_mad, conflict_fraction (over
 * the run), placements, commits — and events. The batch columns aggregate
 * the batch schedulers (sim_summarize with SIM_ALL_BATCH): jobs pooled for
 * the waits, counts summed, a day's busyness the mean of the schedulers',
 * a day's conflict fraction that of their transactions pooled, then the
 * median and MAD over days. A figure that has no value (no successful
 * transaction) is an empty field.
 *
 * Parallel runs are processes, not threads: sim_run is not safe to run
 * twice at once in one process — the kernel hands each scheduler its
 * options through cs_sched_opts_parse, whose getopt_long keeps its state
 * in globals (optind, optarg), and two runs on threads crashed there under
 * ASan. So each point is a child forked for it (up to --jobs at once),
 * which runs sim_run and writes its row back through a pipe; a crash in
 * one run becomes that point's error, not the sweep's. Each run uses one
 * core at a time (its baton lets one of its threads run), so --jobs
 * defaults to the online CPUs.
 */
#ifndef CELLSIM_SWEEP_H
#define CELLSIM_SWEEP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "cellstate/error.h"
#include "tools/cellsim_conf.h"

#define SIM_SWEEP_MAX_VARY 16 /* settings varied at once: a grid, not a search */

/* One --vary: a setting and its values (owned by the sweep). */
typedef struct sim_vary {
    char key[64];
    char **values;
    size_t n;
} sim_vary;

typedef struct sim_sweep {
    sim_conf base;       /* every setting but the varied ones */
    sim_vary *vary;
    size_t nvary;
    const char *out;     /* --out (borrowed from argv); NULL: stdout */
    unsigned jobs;       /* runs at once */
    bool help;
} sim_sweep;

/* The sweep's command line (argv[0] is "sweep"; argv only read, --out
 * borrowed from it) into *sw: the settings as cellsim's own, then every
 * --vary checked against them. CS_EINVAL naming the flag, the key or the
 * value. On success (or --help) *sw is the caller's: sim_sweep_free. */
int sim_sweep_parse(int argc, char **argv, sim_sweep *sw, cs_error *err);
void sim_sweep_free(sim_sweep *sw);

/* The points of the grid: the product of the --vary lists' lengths. */
size_t sim_sweep_points(const sim_sweep *sw);

/* Run every point in up to sw->jobs child processes and write the CSV to `out` (rows in
 * the grid's order, each written as soon as those before it are); a
 * progress bar on `progress` when it is not NULL. Both streams borrowed.
 * On a failed run, the rows before it are written and its error, naming
 * the point, is returned. */
int sim_sweep_run(const sim_sweep *sw, FILE *out, FILE *progress, cs_error *err);

/* Whether CSV column `name` (only read) is one of the sweep's results
 * (service_*, batch_* figures, events) rather than a setting. */
bool sim_sweep_is_figure(const char *name);

void sim_sweep_usage(FILE *f);

/* `cellsim sweep ...` as a program: exit status 0, 1 (a run failed or the
 * file could not be written) or 2 (a bad command line). */
int sim_sweep_main(int argc, char **argv);

#endif
