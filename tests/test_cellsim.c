/* test_cellsim.c — cellsim (tools/cellsim_*.c): the real scheduler loop on
 * the simulator's virtual clock, in small seeded configurations.
 *
 * Each run goes through sim_run in this process (the kernel, the baton,
 * the store in a temporary directory) and is judged on what it reports;
 * the command line's errors through bin/cellsim. Nothing here times
 * anything: the simulated clock is the only clock.
 */
#include <criterion/criterion.h>
#include <jansson.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cellstate/rng.h"
#include "tests/simconf.h"
#include "tests/support.h"
#include "tools/cellsim_conf.h"
#include "tools/cellsim_dist.h"
#include "tools/cellsim_kernel.h"
#include "tools/cellsim_report.h"

/* The small preset with `settings` ("key=value" strings, NULL-ended). */
static sim_conf conf(const char *first, ...)
{
    sim_conf c;
    cs_error err = {0};
    cr_assert_eq(sim_conf_preset("small", &c, &err), CS_OK, "%s", err.msg);
    va_list ap;
    va_start(ap, first);
    ts_sim_conf_set(&c, first, ap);
    va_end(ap);
    return c;
}

static void run(const sim_conf *c, sim_result *r)
{
    cs_error err = {0};
    cr_assert_eq(sim_run(c, r, &err), CS_OK, "%s", err.msg);
}

/* The whole output (text and JSON) of a run, as cellsim prints it. */
static char *output(const sim_conf *c)
{
    sim_result r;
    run(c, &r);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cs_error err = {0};
    cr_assert_eq(sim_report_text(c, &r, f, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(sim_report_json(c, &r, f, &err), CS_OK, "%s", err.msg);
    fclose(f);
    sim_result_free(&r);
    return buf;
}

/* Sums over the batch schedulers (index 1 on). */
typedef struct totals {
    uint64_t successful, conflicted, placements, commits;
} totals;

static totals batch_totals(const sim_result *r)
{
    totals t = {0};
    for (uint32_t s = 1; s < r->nscheds; s++)
        for (uint32_t d = 0; d < r->ndays; d++) {
            const sim_day_figs *f = &r->scheds[s].days[d];
            t.successful += f->txn_successful;
            t.conflicted += f->txn_conflicted;
            t.placements += f->claims;
            t.commits += f->commits;
        }
    return t;
}

/* A busy cell: 60% pre-filled, batch jobs every 4 s of 8 tasks running
 * 60 s (about 120 of the 160 free cores in use), no service jobs, `n`
 * batch schedulers deciding in 0.1 s + 5 ms a task: their copies go stale
 * while they decide. */
static sim_conf busy(const char *n, const char *conflict)
{
    sim_conf c = conf("days=0.01", "batch_interarrival=exp:4", "batch_tasks=exp:8",
                      "batch_duration=exp:60", "service_interarrival=1e9", "seed=7", NULL);
    cs_error err = {0};
    cr_assert_eq(sim_conf_set(&c, "batch_schedulers", n, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(sim_conf_set(&c, "conflict", conflict, &err), CS_OK, "%s", err.msg);
    return c;
}

Test(cellsim, same_seed_and_settings_give_the_same_bytes)
{
    sim_conf c = conf("days=0.005", "batch_schedulers=3", "batch_interarrival=exp:20",
                      "service_interarrival=exp:60", "seed=42", NULL);
    char *a = output(&c), *b = output(&c);
    cr_assert_str_eq(a, b);
    cr_assert(strstr(a, "\"name\":\"batch-2\"") != NULL, "%s", a);
    /* And another seed gives another run. */
    c.seed = 43;
    char *d = output(&c);
    cr_assert_str_neq(a, d);
    free(a);
    free(b);
    free(d);
}

Test(cellsim, light_load_schedules_every_job_without_conflicts)
{
    /* A third of the cell free, small jobs now and then, one batch
     * scheduler and the service scheduler. */
    sim_conf c = conf("days=0.02", "prefill=0.3", "batch_interarrival=exp:30", "batch_tasks=exp:5",
                      "batch_duration=exp:60", "service_interarrival=exp:120",
                      "service_tasks=exp:3", "service_duration=exp:300", "seed=3", NULL);
    sim_result r;
    run(&c, &r);
    cr_assert_gt(r.njobs, 20, "only %zu jobs arrived", r.njobs);
    cr_assert(fabs(r.prefill_cpu - 0.3) < 0.01, "prefill %f", r.prefill_cpu);
    uint32_t services = 0;
    for (size_t i = 0; i < r.njobs; i++) {
        const sim_job_figs *j = &r.jobs[i];
        services += j->owner == 0;
        /* A job that arrived a minute before the end has been placed. */
        if (j->submitted_ns < r.end_ns - 60 * INT64_C(1000000000))
            cr_assert_eq(j->outcome, SIM_JOB_SCHEDULED, "job %zu: %u of %u placed", i, j->placed,
                         j->count);
        cr_assert(j->attempted || j->submitted_ns > r.end_ns - INT64_C(1000000000));
    }
    cr_assert_gt(services, 0);
    totals t = batch_totals(&r);
    cr_assert_eq(t.conflicted, 0);
    cr_assert_gt(t.placements, 0);
    cr_assert_eq(t.successful, t.commits);
    sim_result_free(&r);
}

Test(cellsim, one_batch_scheduler_never_conflicts_and_eight_do_on_a_busy_cell)
{
    sim_conf one = busy("1", "fine"), eight = busy("8", "fine");
    sim_result r1, r8;
    run(&one, &r1);
    run(&eight, &r8);
    totals t1 = batch_totals(&r1), t8 = batch_totals(&r8);
    cr_assert_gt(t1.commits, 10);
    cr_assert_eq(t1.conflicted, 0, "a lone scheduler conflicted %lu times", (unsigned long)t1.conflicted);
    cr_assert_gt(t8.conflicted, 0, "8 schedulers on a busy cell never conflicted (%lu commits)",
                 (unsigned long)t8.commits);
    sim_result_free(&r1);
    sim_result_free(&r8);
}

Test(cellsim, a_job_that_keeps_conflicting_is_abandoned_at_max_attempts)
{
    /* Eight schedulers on the busy cell, giving up after 2 attempts: the
     * loop's note ("gave up after 2 conflicting attempts") marks them. */
    sim_conf c = busy("8", "fine");
    c.max_attempts = 2;
    sim_result r;
    run(&c, &r);
    uint32_t abandoned = 0;
    for (size_t i = 0; i < r.njobs; i++) {
        abandoned += r.jobs[i].outcome == SIM_JOB_ABANDONED;
        if (r.jobs[i].outcome == SIM_JOB_ABANDONED)
            cr_assert(r.jobs[i].attempted && r.jobs[i].placed < r.jobs[i].count);
    }
    cr_assert_gt(abandoned, 0);
    sim_result_free(&r);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* A scheduler decides on one job at a time: no two of its jobs can have
 * begun their first attempt at the same instant (each attempt is a
 * decision of nonzero length). The kernel learns whose decision was whose
 * only from transactions and notes (cellsim_kernel.c, decision_start):
 * this is what a wrong matching breaks. */
static void first_attempts_distinct(const sim_result *r)
{
    int64_t *at = malloc((r->njobs + 1) * sizeof *at);
    for (uint32_t s = 0; s < r->nscheds; s++) {
        size_t n = 0;
        for (size_t i = 0; i < r->njobs; i++)
            if (r->jobs[i].owner == s && r->jobs[i].attempted)
                at[n++] = r->jobs[i].submitted_ns + r->jobs[i].wait_ns;
        qsort(at, n, sizeof *at, cmp_i64);
        for (size_t i = 1; i < n; i++)
            cr_assert_neq(at[i], at[i - 1], "%s: two jobs' first attempts began at %ld ns",
                          r->scheds[s].name, (long)at[i]);
    }
    free(at);
}

Test(cellsim, each_job_is_matched_to_a_decision_of_its_own)
{
    /* Slow decisions on a full cell: shared transactions where some
     * decisions placed nothing. */
    sim_conf c = conf("days=0.03", "batch_schedulers=2", "batch_interarrival=exp:4",
                      "batch_tasks=exp:8", "batch_duration=exp:60", "t_job_batch=1",
                      "t_job_service=10", "service_interarrival=exp:30", "seed=1", NULL);
    sim_result r;
    run(&c, &r);
    uint64_t unplaced = 0;
    for (size_t i = 0; i < r.njobs; i++)
        unplaced += r.jobs[i].count - r.jobs[i].placed;
    cr_assert_gt(unplaced, 0, "the cell never filled up");
    first_attempts_distinct(&r);
    sim_result_free(&r);
}

/* Two batch schedulers deciding slowly (2 s a job) on a cell with room,
 * where tasks end every second or so: under fine-grained detection only
 * the rare overcommit conflicts; coarse-grained also refuses a claim on a
 * machine where anything changed meanwhile — another scheduler's
 * placement, or a task's end. */
static sim_conf churn(const char *conflict)
{
    sim_conf c = conf("days=0.01", "prefill=0.3", "batch_interarrival=exp:4", "batch_tasks=exp:8",
                      "batch_duration=exp:20", "t_job_batch=2", "service_interarrival=1e9",
                      "batch_schedulers=2", "seed=7", NULL);
    cs_error err = {0};
    cr_assert_eq(sim_conf_set(&c, "conflict", conflict, &err), CS_OK, "%s", err.msg);
    return c;
}

Test(cellsim, coarse_grained_detection_conflicts_at_least_as_much_as_fine)
{
    sim_conf fine = churn("fine"), coarse = churn("coarse");
    sim_result rf, rc;
    run(&fine, &rf);
    run(&coarse, &rc);
    totals tf = batch_totals(&rf), tc = batch_totals(&rc);
    cr_assert_gt(tf.successful, 100);
    cr_assert_gt(tc.successful, 100);
    double cf = (double)tf.conflicted / (double)tf.successful;
    double cc = (double)tc.conflicted / (double)tc.successful;
    cr_assert_gt(tc.conflicted, tf.conflicted, "coarse %lu <= fine %lu conflicted transactions",
                 (unsigned long)tc.conflicted, (unsigned long)tf.conflicted);
    cr_assert_geq(cc, cf, "coarse %f < fine %f", cc, cf);
    sim_result_free(&rf);
    sim_result_free(&rc);
}

/* ---- the command line ------------------------------------------------------------- */

Test(cellsim, bad_flags_and_bad_files_are_named, .init = ts_tmp_setup, .fini = ts_tmp_teardown)
{
    char out[4096], args[512], path[320];
    cr_assert_eq(ts_cellsim("--bogus 1", out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "'--bogus'") != NULL, "%s", out);
    cr_assert_eq(ts_cellsim("--batch-tasks exp:-3", out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "--batch-tasks") != NULL, "%s", out);
    cr_assert_eq(ts_cellsim("--conflict medium", out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "--conflict: 'medium'") != NULL, "%s", out);
    cr_assert_eq(ts_cellsim("--machines", out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "--machines: needs a value") != NULL, "%s", out);

    snprintf(path, sizeof path, "%s/bad.json", ts_tmp);
    FILE *f = fopen(path, "w");
    fputs("{\"machines\": 10,\n \"batch_tasks\": \"many\"}\n", f);
    fclose(f);
    snprintf(args, sizeof args, "--config '%s'", path);
    cr_assert_eq(ts_cellsim(args, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, path) != NULL && strstr(out, "batch_tasks") != NULL, "%s", out);

    f = fopen(path, "w");
    fputs("{\"machines\": 10,\n \"days\": }\n", f);
    fclose(f);
    cr_assert_eq(ts_cellsim(args, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, path) != NULL && strstr(out, "line 2") != NULL, "%s", out);

    f = fopen(path, "w");
    fputs("{\"machnes\": 10}\n", f);
    fclose(f);
    cr_assert_eq(ts_cellsim(args, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "'machnes'") != NULL, "%s", out);

    cr_assert_eq(ts_cellsim("--help", out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "--batch-schedulers") != NULL && strstr(out, "--config") != NULL, "%s", out);
}

Test(cellsim, the_binary_prints_a_summary_and_one_line_of_json)
{
    static char out[1 << 16];
    cr_assert_eq(ts_cellsim("--preset small --days 0.003 --batch-schedulers 2 --json", out, sizeof out),
                 0, "%s", out);
    cr_assert(strstr(out, "batch-1") != NULL, "%s", out);
    char *last = strrchr(out, '{') ? strstr(out, "{\"config\"") : NULL;
    cr_assert_not_null(last, "%s", out);
    json_error_t je;
    json_t *o = json_loads(last, 0, &je);
    cr_assert_not_null(o, "%s: %s", je.text, last);
    json_t *scheds = json_object_get(o, "schedulers");
    cr_assert_eq(json_array_size(scheds), 3);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(scheds, 0), "kind")), "service");
    cr_assert(json_is_array(json_object_get(json_array_get(scheds, 2), "days")));
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(o, "config"), "batch_tasks")),
                     "exp:100");
    json_decref(o);
}

Test(cellsim, a_config_file_sets_what_flags_set_and_flags_win, .init = ts_tmp_setup,
     .fini = ts_tmp_teardown)
{
    char path[320];
    snprintf(path, sizeof path, "%s/c.json", ts_tmp);
    FILE *f = fopen(path, "w");
    fputs("{\"machines\": 12, \"batch_tasks\": \"emp:0=1,0.5=2,1=10\", \"t_job_service\": 2,"
          " \"json\": true, \"conflict\": \"coarse\"}\n", f);
    fclose(f);
    const char *argv[] = {"cellsim", "--config", path, "--machines", "20", NULL};
    sim_conf c;
    bool help;
    cs_error err = {0};
    cr_assert_eq(sim_conf_parse(5, (char **)argv, &c, &help, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(c.machines, 20);
    cr_assert_eq(c.batch.tasks.kind, SIM_DIST_EMP);
    cr_assert_eq(c.t_job_service, 2);
    cr_assert(c.json);
    cr_assert_eq(c.conflict, 1);
}

/* ---- the distributions ------------------------------------------------------------ */

Test(cellsim_dist, exponential_draws_have_their_mean)
{
    sim_dist d;
    cs_error err = {0};
    cr_assert_eq(sim_dist_parse("t", "exp:10", &d, &err), CS_OK, "%s", err.msg);
    uint64_t rng = 99;
    double sum = 0;
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        double x = sim_dist_draw(&d, &rng);
        cr_assert_geq(x, 0);
        sum += x;
    }
    cr_assert(fabs(sum / n - 10) < 0.1, "mean %f", sum / n);
    cr_assert_eq(sim_dist_mean(&d), 10);
}

Test(cellsim_dist, empirical_draws_respect_the_quantiles)
{
    sim_dist d;
    cs_error err = {0};
    cr_assert_eq(sim_dist_parse("t", "emp:0=1,0.5=2,0.9=10,1=100", &d, &err), CS_OK, "%s", err.msg);
    uint64_t rng = 5;
    const int n = 100000;
    int le2 = 0, le10 = 0;
    for (int i = 0; i < n; i++) {
        double x = sim_dist_draw(&d, &rng);
        cr_assert(x >= 1 && x <= 100, "%f", x);
        le2 += x <= 2;
        le10 += x <= 10;
    }
    cr_assert(fabs((double)le2 / n - 0.5) < 0.01, "P(x <= 2) = %f", (double)le2 / n);
    cr_assert(fabs((double)le10 / n - 0.9) < 0.01, "P(x <= 10) = %f", (double)le10 / n);
    /* 0.5 x 1.5 + 0.4 x 6 + 0.1 x 55 */
    cr_assert(fabs(sim_dist_mean(&d) - 8.65) < 1e-9, "%f", sim_dist_mean(&d));
}

Test(cellsim_dist, malformed_distributions_are_refused_by_name)
{
    sim_dist d;
    cs_error err = {0};
    const char *bad[] = {"exp:0", "exp:x", "-1", "emp:0=1,1", "emp:0=1,0.5=2",
                         "emp:0=5,1=1", "emp:0.1=1,1=2", "gauss:1", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(sim_dist_parse("--x", bad[i], &d, &err), CS_EINVAL, "'%s' was taken", bad[i]);
        cr_assert(strncmp(err.msg, "--x: ", 5) == 0, "%s", err.msg);
    }
    cr_assert_eq(sim_dist_parse("--x", "3", &d, &err), CS_OK);
    cr_assert_eq(d.kind, SIM_DIST_CONST);
    cr_assert_eq(sim_dist_draw(&d, &(uint64_t){1}), 3);
}

Test(cellsim_report, median_and_mad)
{
    double v[] = {5, 1, 3, 100, 2};
    double m, mad;
    sim_median_mad(v, 5, &m, &mad);
    cr_assert_eq(m, 3);
    cr_assert_eq(mad, 2); /* |x - 3|: 2 2 0 97 1 */
    sim_median_mad(v, 0, &m, &mad);
    cr_assert(isnan(m) && isnan(mad));
}

/* ---- busyness and wait --------------------------------------------------------------- */

/* One batch scheduler, a batch job every 10 s on average, and a decision
 * time per job of `t_job`; over `days`. */
static void saturate(const char *t_job, const char *days, sim_result *r)
{
    char tj[64], d[64];
    snprintf(tj, sizeof tj, "t_job_batch=%s", t_job);
    snprintf(d, sizeof d, "days=%s", days);
    sim_conf c = conf(d, tj, "batch_interarrival=exp:10", "batch_tasks=exp:2",
                      "batch_duration=exp:20", "service_interarrival=1e9", "seed=11", NULL);
    run(&c, r);
}

static double busyness(const sim_result *r, uint32_t s, uint32_t d)
{
    int64_t len = r->end_ns - (int64_t)d * SIM_DAY_NS;
    len = len < SIM_DAY_NS ? len : SIM_DAY_NS;
    return (double)r->scheds[s].days[d].decide_ns / (double)len;
}

static double mean_wait_s(const sim_result *r)
{
    double sum = 0;
    for (size_t i = 0; i < r->njobs; i++)
        sum += (double)r->jobs[i].wait_ns / 1e9;
    return r->njobs ? sum / (double)r->njobs : 0;
}

Test(cellsim, a_slow_scheduler_is_busy_all_day_and_its_jobs_wait)
{
    /* 0.1 s per job against one every 10 s: about 1% busy, no queue. */
    sim_result fast, slow;
    saturate("0.1", "0.05", &fast);
    double b = busyness(&fast, 1, 0);
    cr_assert(b > 0.005 && b < 0.03, "busyness %f", b);
    cr_assert_lt(mean_wait_s(&fast), 1.0);
    /* 20 s per job against one every 10 s: saturated, and the queue grows
     * all along: the paper's monolithic scheduler at a long t_job. Over
     * 1.5 days, both days are busy. */
    saturate("20", "1.5", &slow);
    cr_assert_eq(slow.ndays, 2);
    for (uint32_t d = 0; d < 2; d++)
        cr_assert_gt(busyness(&slow, 1, d), 0.95, "day %u: %f", d, busyness(&slow, 1, d));
    cr_assert_gt(mean_wait_s(&slow), 3600, "mean wait %f s", mean_wait_s(&slow));
    uint32_t never = 0;
    for (size_t i = 0; i < slow.njobs; i++)
        never += !slow.jobs[i].attempted;
    cr_assert_gt(never, 0, "a saturated scheduler left no job unattempted");
    sim_result_free(&fast);
    sim_result_free(&slow);
}

/* ---- the architectures (issue 15 §2) ---------------------------------------------------- */

static const char *const archs[] = {"omega", "monolithic", "multipath", "mesos"};
#define NARCHS (sizeof archs / sizeof archs[0])

/* The light load of light_load_schedules_every_job_without_conflicts under
 * architecture `arch`, with `extra` settings (NULL-ended after it). */
static sim_conf light(const char *arch, const char *extra)
{
    sim_conf c = conf("days=0.02", "prefill=0.3", "batch_interarrival=exp:30", "batch_tasks=exp:5",
                      "batch_duration=exp:60", "service_interarrival=exp:120",
                      "service_tasks=exp:3", "service_duration=exp:300", "seed=3", NULL);
    cs_error err = {0};
    cr_assert_eq(sim_conf_set(&c, "architecture", arch, &err), CS_OK, "%s", err.msg);
    if (extra != NULL) {
        char key[64];
        const char *eq = strchr(extra, '=');
        snprintf(key, sizeof key, "%.*s", (int)(eq - extra), extra);
        cr_assert_eq(sim_conf_set(&c, key, eq + 1, &err), CS_OK, "%s", err.msg);
    }
    return c;
}

/* Mean wait of the jobs of one kind, seconds. */
static double kind_wait_s(const sim_result *r, bool service)
{
    double sum = 0;
    size_t n = 0;
    for (size_t i = 0; i < r->njobs; i++)
        if (r->jobs[i].service == service) {
            sum += (double)r->jobs[i].wait_ns / 1e9;
            n++;
        }
    return n ? sum / (double)n : 0;
}

Test(cellsim_arch, every_architecture_schedules_every_job_under_a_light_load)
{
    for (size_t a = 0; a < NARCHS; a++) {
        sim_conf c = light(archs[a], NULL);
        sim_result r;
        run(&c, &r);
        cr_assert_gt(r.njobs, 20, "%s: only %zu jobs arrived", archs[a], r.njobs);
        cr_assert_eq(r.nscheds, a == 1 || a == 2 ? 1u : 2u, "%s", archs[a]);
        uint32_t kinds[2] = {0, 0};
        for (size_t i = 0; i < r.njobs; i++) {
            const sim_job_figs *j = &r.jobs[i];
            kinds[j->service]++;
            if (j->submitted_ns < r.end_ns - 60 * INT64_C(1000000000))
                cr_assert_eq(j->outcome, SIM_JOB_SCHEDULED, "%s: job %zu: %u of %u placed",
                             archs[a], i, j->placed, j->count);
        }
        cr_assert(kinds[0] > 0 && kinds[1] > 0, "%s", archs[a]);
        sim_result_free(&r);
    }
}

Test(cellsim_arch, each_architecture_gives_the_same_bytes_for_the_same_seed)
{
    char *prev = NULL;
    for (size_t a = 0; a < NARCHS; a++) {
        sim_conf c = light(archs[a], "days=0.005");
        char *x = output(&c), *y = output(&c);
        cr_assert_str_eq(x, y, "%s", archs[a]);
        if (a > 0)
            cr_assert(strstr(x, archs[a]) != NULL, "%s: %s", archs[a], x);
        if (prev != NULL && a != 2) /* multipath at equal decision times is single-path */
            cr_assert_str_neq(prev, x, "%s printed what %s did", archs[a], archs[a - 1]);
        free(prev);
        free(y);
        prev = x;
    }
    free(prev);
}

Test(cellsim_arch, multipath_batch_jobs_wait_behind_slow_service_decisions)
{
    /* The same seed and arrivals; only the service jobs' decision time
     * grows, and the batch jobs queue behind it (head-of-line blocking). */
    sim_conf fast = light("multipath", "service_interarrival=exp:40");
    sim_conf slow = fast;
    cs_error err = {0};
    cr_assert_eq(sim_conf_set(&slow, "t_job_service", "20", &err), CS_OK, "%s", err.msg);
    sim_result rf, rs;
    run(&fast, &rf);
    run(&slow, &rs);
    double wf = kind_wait_s(&rf, false), ws = kind_wait_s(&rs, false);
    cr_assert_lt(wf, 1.0, "batch wait %f s with fast service decisions", wf);
    cr_assert_gt(ws, 2 * wf + 1.0, "batch wait %f s with 20 s service decisions (%f s with 0.1 s)",
                 ws, wf);
    /* Batch jobs keep their fast path: single-path, deciding them in the
     * service time too, is busier on the same arrivals. */
    sim_conf mono = slow;
    cr_assert_eq(sim_conf_set(&mono, "architecture", "monolithic", &err), CS_OK, "%s", err.msg);
    sim_result rm;
    run(&mono, &rm);
    cr_assert_gt(busyness(&rm, 0, 0), busyness(&rs, 0, 0) + 0.1, "single-path %f, multipath %f",
                 busyness(&rm, 0, 0), busyness(&rs, 0, 0));
    sim_result_free(&rm);
    sim_result_free(&rf);
    sim_result_free(&rs);
}

Test(cellsim_arch, single_path_busyness_grows_with_t_job)
{
    sim_conf fast = light("monolithic", NULL);
    sim_conf slow = light("monolithic", "t_job_service=5");
    sim_result rf, rs;
    run(&fast, &rf);
    run(&slow, &rs);
    double bf = busyness(&rf, 0, 0), bs = busyness(&rs, 0, 0);
    cr_assert_gt(bs, 10 * bf, "busyness %f at t_job 5 s, %f at 0.1 s", bs, bf);
    /* Every job, batch too, takes the one decision time. */
    cr_assert_gt(kind_wait_s(&rs, false), kind_wait_s(&rf, false));
    sim_result_free(&rf);
    sim_result_free(&rs);
}

Test(cellsim_arch, mesos_long_service_decisions_lock_the_offer_and_batch_jobs_wait)
{
    /* The same seed and arrivals under omega and mesos; service jobs take
     * 20 s to decide. Omega's batch scheduler goes on deciding meanwhile;
     * mesos' is offered only what freed up since the service framework's
     * offer took the free cell, and waits for the rest. */
    sim_conf om = light("omega", "service_interarrival=exp:40");
    cs_error err = {0};
    cr_assert_eq(sim_conf_set(&om, "t_job_service", "20", &err), CS_OK, "%s", err.msg);
    sim_conf me = om;
    cr_assert_eq(sim_conf_set(&me, "architecture", "mesos", &err), CS_OK, "%s", err.msg);
    sim_result ro, rm;
    run(&om, &ro);
    run(&me, &rm);
    double wo = kind_wait_s(&ro, false), wm = kind_wait_s(&rm, false);
    cr_assert_lt(wo, 1.0, "omega batch wait %f s", wo);
    cr_assert_gt(wm, wo + 1.0, "mesos batch wait %f s, omega %f s", wm, wo);
    /* Pessimistic: nothing ever conflicts (offers are disjoint). Every
     * decision is made inside an offer, and a framework holds one offer
     * at a time (several frameworks may hold one each). */
    for (uint32_t s = 0; s < rm.nscheds; s++) {
        const sim_day_figs *d = &rm.scheds[s].days[0];
        cr_assert_eq(d->txn_conflicted, 0, "%s", rm.scheds[s].name);
        cr_assert_gt(d->offers, 0, "%s", rm.scheds[s].name);
        cr_assert_geq(d->offer_ns, d->decide_ns, "%s", rm.scheds[s].name);
        cr_assert_leq(d->offer_ns, rm.end_ns, "%s", rm.scheds[s].name);
    }
    /* The service framework held the offer for most of its 20 s decisions. */
    cr_assert_gt(rm.scheds[0].days[0].offer_ns, rm.end_ns / 4);
    sim_result_free(&ro);
    sim_result_free(&rm);
}

Test(cellsim_arch, mesos_abandons_a_job_after_max_attempts_offers)
{
    /* Batch jobs of 500 one-core tasks on a cell with about 280 free
     * cores: the first cannot be placed whole, and each offer its
     * framework holds while it waits is an attempt. */
    sim_conf c = light("mesos", "batch_tasks=500");
    cs_error err = {0};
    cr_assert_eq(sim_conf_set(&c, "days", "0.005", &err), CS_OK, "%s", err.msg);
    cr_assert_eq(sim_conf_set(&c, "max_attempts", "3", &err), CS_OK, "%s", err.msg);
    sim_result r;
    run(&c, &r);
    uint32_t abandoned = 0;
    for (size_t i = 0; i < r.njobs; i++)
        if (r.jobs[i].outcome == SIM_JOB_ABANDONED) {
            abandoned++;
            cr_assert_lt(r.jobs[i].placed, r.jobs[i].count);
            cr_assert(!r.jobs[i].service);
        }
    cr_assert_gt(abandoned, 0, "no job abandoned of %zu", r.njobs);
    sim_result_free(&r);
    /* With the paper's 1,000 attempts, none is in the same 7 minutes. */
    cr_assert_eq(sim_conf_set(&c, "max_attempts", "1000", &err), CS_OK, "%s", err.msg);
    run(&c, &r);
    for (size_t i = 0; i < r.njobs; i++)
        cr_assert_neq(r.jobs[i].outcome, SIM_JOB_ABANDONED, "job %zu", i);
    sim_result_free(&r);
}

Test(cellsim_arch, an_unknown_architecture_is_refused_by_name)
{
    sim_conf c = conf(NULL);
    cs_error err = {0};
    cr_assert_eq(sim_conf_set(&c, "architecture", "paxos", &err), CS_EINVAL);
    cr_assert(strstr(err.msg, "--architecture") != NULL && strstr(err.msg, "paxos") != NULL, "%s",
              err.msg);
    cr_assert_eq(c.architecture, SIM_ARCH_OMEGA);
}
