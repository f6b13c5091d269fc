/* cellsim_plot.h — `cellsim plot`: the Omega paper's figures (EuroSys 2013
 * §4-5) from a `cellsim sweep` CSV, as PNGs drawn by gnuplot.
 *
 *   cellsim plot RESULTS.csv [--out DIR] [--gnuplot PROGRAM]
 *
 * Why gnuplot, run as a child: it is one Debian package (gnuplot-nox, no
 * X11), draws log axes and PNGs, and its script is text that a researcher
 * can edit and re-run — so each figure's script is kept beside its PNG
 * (DIR/NAME.gp, the data inline). It runs without a shell
 * (posix_spawnp, the script as its argument), so no value of the CSV is
 * ever a command.
 *
 * The figures come from whatever the CSV holds. A column is a setting
 * unless it is one of the sweep's figures (sim_sweep_is_figure); each
 * figure draws one line per combination of the settings that vary in the
 * CSV (other than its x axis), so a sweep over architectures gives a line
 * per architecture, one over conflict and commit a line per pair:
 *
 *   tjob_wait.png              Figs. 5-7 (a): mean job wait, batch and
 *   tjob_busyness.png          service, and (b) busyness (median of daily
 *                              values), against t_job_service, log x;
 *   schedulers_conflict.png    Fig. 9: the batch schedulers' conflict
 *   schedulers_busyness.png    fraction and busyness against
 *                              batch_schedulers, log2 x (Omega's rows
 *                              only when the CSV has an architecture);
 *   modes_conflict.png         Fig. 14: the service scheduler's conflict
 *   modes_busyness.png         fraction and busyness against
 *                              t_job_service, log x, when conflict or
 *                              commit varies (fine/coarse ×
 *                              incremental/gang).
 *
 * A figure whose x column is absent or constant, whose y columns are
 * absent or empty, or (Fig. 14) whose modes do not vary, is skipped with
 * a line saying which and why.
 */
#ifndef CELLSIM_PLOT_H
#define CELLSIM_PLOT_H

#include <stdio.h>

#include "cellstate/error.h"

/* The figures from the CSV at `csv` into directory `dir` (both only read;
 * the directory must exist), by running `gnuplot` (a program name looked
 * up on PATH, or a path). One line per figure on `log` (borrowed): the
 * PNG written, or why it was skipped. *written counts the PNGs. CS_EINVAL
 * for a malformed CSV (naming the line), CS_ENOTFOUND when gnuplot cannot
 * be run, CS_EIO when it fails (its exit status) or a file cannot be
 * written. */
int sim_plot(const char *csv, const char *dir, const char *gnuplot, FILE *log, int *written,
             cs_error *err);

void sim_plot_usage(FILE *f);

/* `cellsim plot ...` as a program (argv[0] is "plot"): exit status 0, 1
 * (a failure), 2 (a bad command line). */
int sim_plot_main(int argc, char **argv);

#endif
