/* test_cellsim_sweep.c — `cellsim sweep` and `cellsim plot`
 * (tools/cellsim_sweep.c, tools/cellsim_plot.c) and what they build on:
 * sim_conf_get, sim_summarize's aggregate of the batch schedulers.
 *
 * Sweeps run in this process (sim_sweep_parse, sim_sweep_run) on the small
 * preset for a fraction of a day; the command line's dispatch and errors
 * through bin/cellsim. Plots need gnuplot (tools/deps.sh installs
 * gnuplot-nox); without it the tests that draw are skipped, saying so,
 * and the one that checks the missing-gnuplot error still runs.
 */
#include <criterion/criterion.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/simconf.h"
#include "tests/support.h"
#include "tools/cellsim_conf.h"
#include "tools/cellsim_kernel.h"
#include "tools/cellsim_plot.h"
#include "tools/cellsim_report.h"
#include "tools/cellsim_sweep.h"

/* Parse a sweep command line (the arguments after "sweep", NULL-ended). */
static int parse(sim_sweep *sw, cs_error *err, const char *first, ...)
{
    char *argv[64] = {(char *)"sweep"};
    int argc = 1;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a != NULL && argc < 63; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    return sim_sweep_parse(argc, argv, sw, err);
}

/* Run the sweep; the CSV as a string (the caller's). */
static char *run_csv(const sim_sweep *sw)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    cs_error err = {0};
    cr_assert_eq(sim_sweep_run(sw, f, NULL, &err), CS_OK, "%s", err.msg);
    fclose(f);
    return buf;
}

/* Field `col` (0-based, unquoted CSV) of line `line` of `csv` into out. */
static void field(const char *csv, int line, int col, char *out, size_t size)
{
    const char *p = csv;
    for (int l = 0; l < line; l++) {
        p = strchr(p, '\n');
        cr_assert_not_null(p, "no line %d in\n%s", line, csv);
        p++;
    }
    for (int c = 0; c < col; c++) {
        p = strpbrk(p, ",\n");
        cr_assert(p != NULL && *p == ',', "no field %d on line %d", col, line);
        p++;
    }
    size_t n = strcspn(p, ",\n");
    snprintf(out, size, "%.*s", (int)n, p);
}

/* The index of column `name` in the CSV's header (-1 if absent), and in
 * *count how many columns have that name. */
static int col_count(const char *csv, const char *name, int *count)
{
    char f[128];
    size_t header = strcspn(csv, "\n");
    int c = 0, at = -1;
    *count = 0;
    for (const char *p = csv; p < csv + header; c++) {
        size_t n = strcspn(p, ",\n");
        snprintf(f, sizeof f, "%.*s", (int)n, p);
        if (strcmp(f, name) == 0) {
            at = at < 0 ? c : at;
            ++*count;
        }
        p += n + 1;
    }
    return at;
}

static int col_of(const char *csv, const char *name)
{
    int count;
    return col_count(csv, name, &count);
}

static int lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

Test(sweep, a_two_by_two_grid_gives_the_header_and_four_rows_in_product_order)
{
    sim_sweep sw;
    cs_error err = {0};
    cr_assert_eq(parse(&sw, &err, "--preset", "small", "--days", "0.05", "--vary",
                       "t_job_service=0.1,10", "--vary", "batch-schedulers=1,2", "--jobs", "2", NULL),
                 CS_OK, "%s", err.msg);
    cr_assert_eq(sim_sweep_points(&sw), 4);
    char *csv = run_csv(&sw);
    cr_assert_eq(lines(csv), 5, "%s", csv);
    cr_assert(strncmp(csv, "t_job_service,batch_schedulers,seed,days,", 41) == 0, "%s", csv);
    /* Each setting once: the varied ones lead, and are not repeated. */
    int count;
    cr_assert_eq(col_count(csv, "t_job_service", &count), 0);
    cr_assert_eq(count, 1);
    cr_assert_eq(col_count(csv, "batch_schedulers", &count), 1);
    cr_assert_eq(count, 1);
    cr_assert_gt(col_count(csv, "t_task_service", &count), 1);
    cr_assert_eq(col_of(csv, "json"), -1);
    cr_assert_eq(col_of(csv, "timing"), -1);
    cr_assert(col_of(csv, "batch_busyness_median") > 0 && col_of(csv, "service_wait_p99_s") > 0 &&
              col_of(csv, "events") > 0, "%s", csv);
    static const char *const want[4][2] = {{"0.1", "1"}, {"0.1", "2"}, {"10", "1"}, {"10", "2"}};
    for (int r = 0; r < 4; r++) {
        char a[64], b[64];
        field(csv, r + 1, 0, a, sizeof a);
        field(csv, r + 1, 1, b, sizeof b);
        cr_assert_str_eq(a, want[r][0], "row %d", r + 1);
        cr_assert_str_eq(b, want[r][1], "row %d", r + 1);
    }
    /* The values were applied: a service decision 100 times longer keeps
     * the service scheduler busier. */
    int busy = col_of(csv, "service_busyness_median");
    char fast[64], slow[64];
    field(csv, 1, busy, fast, sizeof fast);
    field(csv, 3, busy, slow, sizeof slow);
    cr_assert_gt(strtod(slow, NULL), strtod(fast, NULL) * 10, "%s vs %s", slow, fast);
    free(csv);
    sim_sweep_free(&sw);
}

Test(sweep, the_same_seed_gives_the_same_bytes_on_one_thread_or_two)
{
    char *csv[2];
    for (int j = 0; j < 2; j++) {
        sim_sweep sw;
        cs_error err = {0};
        cr_assert_eq(parse(&sw, &err, "--preset", "small", "--days", "0.05", "--seed", "7",
                           "--vary", "conflict=fine,coarse", "--vary", "batch_schedulers=1,3",
                           "--jobs", j ? "2" : "1", NULL),
                     CS_OK, "%s", err.msg);
        csv[j] = run_csv(&sw);
        sim_sweep_free(&sw);
    }
    cr_assert_eq(lines(csv[0]), 5, "%s", csv[0]);
    cr_assert_str_eq(csv[0], csv[1]);
    free(csv[0]);
    free(csv[1]);
}

Test(sweep, a_bad_vary_is_refused_naming_it)
{
    static const struct {
        const char *vary, *want;
    } cases[] = {
        {"machnes=1,2", "unknown setting 'machnes'"},
        {"machines=10,many", "--vary machines: --machines: 'many'"},
        {"machines=", "--vary machines: the list of values is empty"},
        {"machines=10,,20", "--vary machines: an empty value"},
        {"machines", "--vary 'machines': KEY=V1,V2"},
        {"json=true,false", "--vary json: changes only how a run reports"},
        {"batch_tasks=exp:-1", "--vary batch_tasks"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sim_sweep sw;
        cs_error err = {0};
        cr_assert_eq(parse(&sw, &err, "--preset", "small", "--vary", cases[i].vary, NULL), CS_EINVAL,
                     "%s", cases[i].vary);
        cr_assert(strstr(err.msg, cases[i].want) != NULL, "%s: %s", cases[i].vary, err.msg);
    }
    sim_sweep sw;
    cs_error err = {0};
    cr_assert_eq(parse(&sw, &err, "--vary", "seed=1", "--vary", "seed=2", NULL), CS_EINVAL);
    cr_assert(strstr(err.msg, "--vary seed: given twice") != NULL, "%s", err.msg);
    cr_assert_eq(parse(&sw, &err, "--preset", "small", NULL), CS_EINVAL);
    cr_assert(strstr(err.msg, "--vary") != NULL, "%s", err.msg);
    cr_assert_eq(parse(&sw, &err, "--vary", "seed=1", "--jobs", "0", NULL), CS_EINVAL);
    cr_assert(strstr(err.msg, "--jobs") != NULL, "%s", err.msg);
}

Test(sweep, a_failed_run_is_named_and_the_rows_before_it_stay)
{
    sim_sweep sw;
    cs_error err = {0};
    cr_assert_eq(parse(&sw, &err, "--preset", "small", "--days", "0.01", "--vary", "seed=4,5",
                       "--jobs", "2", NULL),
                 CS_OK, "%s", err.msg);
    /* Every run makes its store's directory under $TMPDIR: one that does
     * not exist fails each run in its child (Criterion forks each test,
     * so the environment is this test's). */
    cr_assert_eq(setenv("TMPDIR", "/nonexistent/cellsim-sweep-test", 1), 0);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    int rc = sim_sweep_run(&sw, f, NULL, &err);
    fclose(f);
    cr_assert_neq(rc, CS_OK);
    cr_assert(strstr(err.msg, "run 1 of 2 (seed=4)") != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "/nonexistent") != NULL, "%s", err.msg);
    cr_assert_eq(lines(buf), 1, "only the header: %s", buf);
    free(buf);
    sim_sweep_free(&sw);
}

Test(sweep, a_list_with_a_semicolon_keeps_the_commas_of_an_empirical_distribution)
{
    sim_sweep sw;
    cs_error err = {0};
    cr_assert_eq(parse(&sw, &err, "--vary", "batch_tasks=exp:100;emp:0=1,1=10", NULL), CS_OK, "%s",
                 err.msg);
    cr_assert_eq(sw.nvary, 1);
    cr_assert_eq(sw.vary[0].n, 2);
    cr_assert_str_eq(sw.vary[0].values[1], "emp:0=1,1=10");
    sim_sweep_free(&sw);
}

Test(sweep, the_binary_dispatches_sweep_and_plot_and_refuses_before_any_run, .init = ts_tmp_setup,
     .fini = ts_tmp_teardown)
{
    char out[8192], args[512], path[320];
    cr_assert_eq(ts_cellsim("--help", out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "cellsim sweep") && strstr(out, "cellsim plot"), "%s", out);
    cr_assert_eq(ts_cellsim("sweep --help", out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "--vary") && strstr(out, "--jobs") && strstr(out, "--out"), "%s", out);
    cr_assert_eq(ts_cellsim("plot --help", out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "--out DIR") && strstr(out, "--gnuplot"), "%s", out);

    snprintf(path, sizeof path, "%s/r.csv", ts_tmp);
    snprintf(args, sizeof args, "sweep --preset small --days 0.01 --vary machines=10,x --out '%s'", path);
    cr_assert_eq(ts_cellsim(args, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "--vary machines") != NULL, "%s", out);
    cr_assert_neq(access(path, F_OK), 0, "a refused sweep made %s", path);

    /* Not a terminal: no progress bar, only the CSV. */
    snprintf(args, sizeof args, "sweep --preset small --days 0.01 --vary seed=1,2 --out '%s'", path);
    cr_assert_eq(ts_cellsim(args, out, sizeof out), 0, "%s", out);
    cr_assert_str_eq(out, "");
    cr_assert_eq(access(path, F_OK), 0);
    /* A single run's command line is as before. */
    cr_assert_eq(ts_cellsim("--preset small --days 0.01", out, sizeof out), 0, "%s", out);
    cr_assert(strncmp(out, "cellsim: ", 9) == 0, "%s", out);
}

/* ---- what the sweep builds on ------------------------------------------------------ */

Test(sweep, every_setting_reads_back_what_it_wrote)
{
    sim_conf c;
    cs_error err = {0};
    cr_assert_eq(sim_conf_preset("omega", &c, &err), CS_OK);
    cr_assert_eq(sim_conf_set(&c, "batch_tasks", "emp:0=1,0.5=3.25,1=100", &err), CS_OK, "%s", err.msg);
    cr_assert_eq(sim_conf_set(&c, "t_job_service", "0.1", &err), CS_OK);
    cr_assert_gt(sim_conf_nkeys(), 20);
    cr_assert_null(sim_conf_key(sim_conf_nkeys(), NULL));
    for (size_t i = 0; i < sim_conf_nkeys(); i++) {
        const char *key = sim_conf_key(i, NULL);
        char a[1024], b[1024];
        cr_assert_eq(sim_conf_get(&c, key, a, sizeof a, &err), CS_OK, "%s: %s", key, err.msg);
        sim_conf d = c;
        cr_assert_eq(sim_conf_set(&d, key, a, &err), CS_OK, "%s=%s: %s", key, a, err.msg);
        cr_assert_eq(sim_conf_get(&d, key, b, sizeof b, &err), CS_OK);
        cr_assert_str_eq(a, b, "%s", key);
    }
    char v[64];
    cr_assert_eq(sim_conf_get(&c, "t-job-service", v, sizeof v, &err), CS_OK);
    cr_assert_str_eq(v, "0.1");
    cr_assert_eq(sim_conf_get(&c, "nope", v, sizeof v, &err), CS_EINVAL);
}

Test(sweep, the_batch_aggregate_sums_and_pools_the_batch_schedulers)
{
    sim_conf c;
    cs_error err = {0};
    cr_assert_eq(sim_conf_preset("small", &c, &err), CS_OK);
    cr_assert_eq(sim_conf_set(&c, "days", "0.05", &err), CS_OK);
    cr_assert_eq(sim_conf_set(&c, "batch_schedulers", "3", &err), CS_OK);
    sim_result r;
    cr_assert_eq(sim_run(&c, &r, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(r.nscheds, 4);
    sim_summary all, one, svc;
    cr_assert_eq(sim_summarize(&r, SIM_ALL_BATCH, &all, &err), CS_OK);
    cr_assert_eq(sim_summarize(&r, SIM_ALL_SERVICE, &svc, &err), CS_OK);
    cr_assert_eq(sim_summarize(&r, 0, &one, &err), CS_OK);
    cr_assert_eq(svc.w.jobs, one.w.jobs);
    cr_assert_eq(svc.placements, one.placements);
    uint64_t jobs = 0, placements = 0, commits = 0;
    double busy = 0;
    for (uint32_t s = 1; s < 4; s++) {
        cr_assert_eq(sim_summarize(&r, s, &one, &err), CS_OK);
        jobs += one.w.jobs;
        placements += one.placements;
        commits += one.commits;
        busy += one.busy_med; /* one day: the median is the day's value */
    }
    cr_assert_gt(jobs, 0);
    cr_assert_eq(all.w.jobs, jobs);
    cr_assert_eq(all.placements, placements);
    cr_assert_eq(all.commits, commits);
    cr_assert_float_eq(all.busy_med, busy / 3, 1e-12);
    sim_result_free(&r);
}

/* ---- plot -------------------------------------------------------------------------- */

static bool have_gnuplot(void)
{
    char out[256];
    return ts_run("command -v gnuplot", out, sizeof out) == 0;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

static bool exists(const char *dir, const char *name)
{
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0 && st.st_size > 0;
}

/* Plot CSV `text` (written to ts_tmp/r.csv) into ts_tmp with `gnuplot`;
 * the log into log[size]. */
static int plot_text(const char *text, const char *gnuplot, char *log, size_t size, int *written,
                     cs_error *err)
{
    char csv[320];
    snprintf(csv, sizeof csv, "%s/r.csv", ts_tmp);
    write_file(csv, text);
    FILE *f = fmemopen(log, size, "w");
    cr_assert_not_null(f);
    int rc = sim_plot(csv, ts_tmp, gnuplot, f, written, err);
    fclose(f);
    return rc;
}

/* A sweep's columns, enough for every figure; a quoted field on the way. */
static const char grid_csv[] =
    "t_job_service,batch_schedulers,conflict,commit,batch_strategy,"
    "batch_wait_mean_s,service_wait_mean_s,batch_busyness_median,service_busyness_median,"
    "batch_conflict_fraction_median,service_conflict_fraction_median,events\n"
    "0.1,1,fine,incremental,\"first,fit\",0.5,0.1,0.1,0.01,0.01,0.02,100\n"
    "10,1,fine,incremental,\"first,fit\",0.6,3,0.1,0.5,0.01,0.05,100\n"
    "0.1,4,coarse,gang,\"first,fit\",0.4,0.1,0.05,0.01,0.03,0.04,100\n"
    "10,4,coarse,gang,\"first,fit\",0.5,4,0.05,0.6,0.04,,100\n";

Test(plot, a_grid_gives_every_figure, .init = ts_tmp_setup, .fini = ts_tmp_teardown)
{
    if (!have_gnuplot())
        cr_skip_test("gnuplot is not installed (sh tools/deps.sh install)");
    char log[8192];
    cs_error err = {0};
    int written;
    cr_assert_eq(plot_text(grid_csv, "gnuplot", log, sizeof log, &written, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(written, 6, "%s", log);
    static const char *const pngs[] = {"tjob_wait.png", "tjob_busyness.png", "schedulers_conflict.png",
                                       "schedulers_busyness.png", "modes_conflict.png", "modes_busyness.png"};
    for (size_t i = 0; i < 6; i++) {
        cr_assert(exists(ts_tmp, pngs[i]), "%s: %s", pngs[i], log);
        cr_assert(strstr(log, pngs[i]) != NULL, "%s", log);
    }
    cr_assert(exists(ts_tmp, "tjob_wait.gp"));
    cr_assert_null(strstr(log, "skipped"), "%s", log);

    /* An --out directory that does not exist yet is made. */
    char csv[320], dir[320];
    snprintf(csv, sizeof csv, "%s/r.csv", ts_tmp);
    snprintf(dir, sizeof dir, "%s/figures/new", ts_tmp);
    FILE *f = fmemopen(log, sizeof log, "w");
    cr_assert_not_null(f);
    cr_assert_eq(sim_plot(csv, dir, "gnuplot", f, &written, &err), CS_OK, "%s", err.msg);
    fclose(f);
    cr_assert_eq(written, 6, "%s", log);
    cr_assert(exists(dir, "tjob_wait.png"), "%s", log);
}

Test(plot, a_figure_whose_columns_are_missing_or_constant_is_skipped, .init = ts_tmp_setup,
     .fini = ts_tmp_teardown)
{
    if (!have_gnuplot())
        cr_skip_test("gnuplot is not installed (sh tools/deps.sh install)");
    char log[8192];
    cs_error err = {0};
    int written;
    /* No batch_schedulers column; conflict and commit constant. */
    cr_assert_eq(plot_text("t_job_service,conflict,commit,batch_wait_mean_s,service_wait_mean_s,"
                           "batch_busyness_median,service_busyness_median\n"
                           "0.1,fine,gang,1,2,0.1,0.2\n"
                           "1,fine,gang,1,3,0.1,0.3\n",
                           "gnuplot", log, sizeof log, &written, &err),
                 CS_OK, "%s", err.msg);
    cr_assert_eq(written, 2, "%s", log);
    cr_assert(exists(ts_tmp, "tjob_wait.png") && exists(ts_tmp, "tjob_busyness.png"), "%s", log);
    cr_assert(!exists(ts_tmp, "schedulers_conflict.png") && !exists(ts_tmp, "modes_conflict.png"));
    cr_assert(strstr(log, "skipped schedulers_conflict.png: no column batch_schedulers"), "%s", log);
    cr_assert(strstr(log, "skipped modes_busyness.png: neither conflict nor commit varies"), "%s", log);
}

Test(plot, a_missing_gnuplot_and_a_malformed_csv_are_named, .init = ts_tmp_setup, .fini = ts_tmp_teardown)
{
    char log[4096];
    cs_error err = {0};
    int written;
    cr_assert_eq(plot_text(grid_csv, "no-such-gnuplot-here", log, sizeof log, &written, &err),
                 CS_ENOTFOUND);
    cr_assert(strstr(err.msg, "no-such-gnuplot-here") && strstr(err.msg, "gnuplot-nox"), "%s", err.msg);
    cr_assert_eq(written, 0);
    cr_assert_eq(plot_text("t_job_service,batch_wait_mean_s\n0.1,1\n1,2,3\n", "gnuplot", log,
                           sizeof log, &written, &err),
                 CS_EINVAL);
    cr_assert(strstr(err.msg, "line 3: 3 fields, the header has 2"), "%s", err.msg);
    cr_assert_eq(plot_text("a,\"b\n1,2\n", "gnuplot", log, sizeof log, &written, &err), CS_EINVAL);
    cr_assert(strstr(err.msg, "quoted field does not end"), "%s", err.msg);
}
