/* cellsim — Omega's experiments in simulated time on the real scheduler
 * loop, placement and commit code (issue 15).
 *
 *   cellsim [--preset omega|small] [--config FILE.json] [--SETTING VALUE ...]
 *   cellsim sweep ... --vary KEY=V1,V2,...   (cellsim_sweep.h)
 *   cellsim plot RESULTS.csv [--out DIR]      (cellsim_plot.h)
 *
 * What it runs is cellsim_kernel.h's; what it reports, cellsim_report.h's;
 * its settings, cellsim_conf.h's. The output on stdout is a function of the
 * seed and the settings only; --timing adds the run's wall-clock time and
 * events per second on stderr.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tools/cellsim_conf.h"
#include "tools/cellsim_kernel.h"
#include "tools/cellsim_plot.h"
#include "tools/cellsim_report.h"
#include "tools/cellsim_sweep.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    /* Subcommands only as the first argument: every other first argument
     * is a setting of a single run, as before. */
    if (argc > 1 && strcmp(argv[1], "sweep") == 0)
        return sim_sweep_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "plot") == 0)
        return sim_plot_main(argc - 1, argv + 1);
    sim_conf c;
    bool help;
    cs_error err = {0};
    if (sim_conf_parse(argc, argv, &c, &help, &err) != CS_OK) {
        fprintf(stderr, "cellsim: %s\n(cellsim --help lists the settings)\n", err.msg);
        return 2;
    }
    if (help) {
        sim_conf_usage(stdout);
        return 0;
    }
    double t0 = now_s();
    sim_result r;
    if (sim_run(&c, &r, &err) != CS_OK) {
        fprintf(stderr, "cellsim: %s\n", err.msg);
        return 1;
    }
    double wall = now_s() - t0;
    int rc = sim_report_text(&c, &r, stdout, &err);
    if (rc == CS_OK && r.replayed) {
        /* What the replay changed from the trace (cellsim_replay.h). */
        fputs("\nreplay of the trace:\n", stdout);
        sim_replay_report(&r.replay, &r.trace, stdout);
    }
    if (rc == CS_OK && c.json)
        rc = sim_report_json(&c, &r, stdout, &err);
    if (c.timing)
        fprintf(stderr, "cellsim: %.3f s of wall-clock time, %.0f simulated s per s, %.0f events/s\n",
                wall, (double)r.end_ns / 1e9 / (wall > 0 ? wall : 1e-9),
                (double)r.events / (wall > 0 ? wall : 1e-9));
    sim_result_free(&r);
    if (rc != CS_OK) {
        fprintf(stderr, "cellsim: %s\n", err.msg);
        return 1;
    }
    return 0;
}
