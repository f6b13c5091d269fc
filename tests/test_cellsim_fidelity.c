/* test_cellsim_fidelity.c — the Omega paper's trends (issue 15 §5;
 * ../shared/DOMAIN.md, Omega) as seeded runs of cellsim on small cells.
 *
 * Each test runs a few configurations that differ in the one setting the
 * paper varies, and asserts the direction of the paper's result with a
 * generous ratio: a trend, not a figure (the figures at full size are in
 * docs/research.md, "Fidelity"). Every run is the real scheduler loop,
 * placement and commit on the simulated clock (sim_run), so no assertion
 * here times anything. docs/research.md says which of the paper's trends
 * cellsim does not reproduce, and why.
 *
 * The cell: the small preset (100 machines of 4 cores), a batch job every
 * 5 s of 8 one-core tasks lasting 40 s and a service job every 30 s of 5
 * tasks lasting 300 s, over 0.03 days (43 minutes, about 600 jobs).
 * Pre-filled to 30% unless said, so that every job fits and the trends are
 * those of decision time alone. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/simconf.h"
#include "tests/support.h"
#include "tools/cellsim_conf.h"
#include "tools/cellsim_kernel.h"
#include "tools/cellsim_plot.h"
#include "tools/cellsim_report.h"

/* The cell above with `first`... ("key=value", NULL-ended) set after it. */
static sim_conf cell(const char *first, ...)
{
    sim_conf c;
    cs_error err = {0};
    cr_assert_eq(sim_conf_preset("small", &c, &err), CS_OK, "%s", err.msg);
    const char *base[][2] = {
        {"days", "0.03"},          {"prefill", "0.3"},           {"batch_interarrival", "exp:5"},
        {"batch_tasks", "exp:8"},  {"batch_duration", "exp:40"}, {"service_interarrival", "exp:30"},
        {"service_tasks", "exp:5"}, {"service_duration", "exp:300"}, {"seed", "1"},
    };
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
        cr_assert_eq(sim_conf_set(&c, base[i][0], base[i][1], &err), CS_OK, "%s", err.msg);
    va_list ap;
    va_start(ap, first);
    ts_sim_conf_set(&c, first, ap);
    va_end(ap);
    return c;
}

static void set(sim_conf *c, const char *key, const char *value)
{
    cs_error err = {0};
    cr_assert_eq(sim_conf_set(c, key, value, &err), CS_OK, "%s=%s: %s", key, value, err.msg);
}

/* The figures of one kind's jobs and schedulers (SIM_ALL_BATCH or
 * SIM_ALL_SERVICE) of a run of c, as a sweep's CSV row has them. */
typedef struct figs {
    sim_summary batch, service;
    double end_s;
    double locked; /* mesos: offers' holding time summed over the frameworks, over the run's */
    uint64_t offers_service_ns, offers_ns, decide_service_ns;
    /* mesos: offers granted and the cpu (milli) they held when granted,
     * service framework [1] and batch ones [0]. */
    uint64_t offers[2], offer_cpu[2];
    /* The time a scheduler would spend deciding each batch job once, in
     * the batch decision time (t_job + t_task x its tasks), over the
     * run's: the batch jobs' share of a multipath scheduler's busyness
     * when every batch job is placed at its first decision. */
    double batch_once;
    uint32_t batch_attempted, batch_partial;
} figs;

static figs run(const sim_conf *c)
{
    sim_result r;
    cs_error err = {0};
    cr_assert_eq(sim_run(c, &r, &err), CS_OK, "%s", err.msg);
    figs f = {.end_s = (double)r.end_ns / 1e9};
    double once = 0;
    for (size_t i = 0; i < r.njobs; i++) {
        const sim_job_figs *j = &r.jobs[i];
        if (j->service || !j->attempted)
            continue;
        once += c->t_job_batch + c->t_task_batch * (double)j->count;
        f.batch_attempted++;
        f.batch_partial += j->placed < j->count;
    }
    f.batch_once = once / f.end_s;
    cr_assert_eq(sim_summarize(&r, SIM_ALL_BATCH, &f.batch, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(sim_summarize(&r, SIM_ALL_SERVICE, &f.service, &err), CS_OK, "%s", err.msg);
    for (uint32_t s = 0; s < r.nscheds; s++)
        for (uint32_t d = 0; d < r.ndays; d++) {
            f.offers_ns += (uint64_t)r.scheds[s].days[d].offer_ns;
            f.offers[r.scheds[s].service] += r.scheds[s].days[d].offers;
            f.offer_cpu[r.scheds[s].service] += r.scheds[s].days[d].offer_cpu;
            if (r.scheds[s].service) {
                f.offers_service_ns += (uint64_t)r.scheds[s].days[d].offer_ns;
                f.decide_service_ns += (uint64_t)r.scheds[s].days[d].decide_ns;
            }
        }
    f.locked = (double)f.offers_ns / (double)r.end_ns;
    sim_result_free(&r);
    return f;
}

/* ---- monolithic (§4.1, Figs. 5-6) ----------------------------------------------------- */

/* "Monolithic single-path busyness grows linearly with t_job and
 * saturates; wait time follows." Busyness is the job rate times
 * t_job + t_task x tasks: its slope in t_job is the job rate, whatever
 * t_job, until the scheduler is busy all the time; then jobs queue. */
Test(cellsim_fidelity, single_path_busyness_grows_linearly_with_t_job_then_saturates)
{
    static const char *const tj[] = {"0.1", "0.4", "1.6", "25"};
    figs f[4];
    for (int i = 0; i < 4; i++) {
        sim_conf c = cell("architecture=monolithic", NULL);
        set(&c, "t_job_service", tj[i]);
        f[i] = run(&c);
    }
    /* One scheduler decides both kinds: its busyness under either. */
    cr_assert_float_eq(f[0].batch.busy_med, f[0].service.busy_med, 1e-12);
    double b[4], w[4];
    for (int i = 0; i < 4; i++) {
        b[i] = f[i].batch.busy_med;
        w[i] = (f[i].batch.w.mean_s * (double)f[i].batch.w.jobs +
                f[i].service.w.mean_s * (double)f[i].service.w.jobs) /
               (double)(f[i].batch.w.jobs + f[i].service.w.jobs);
    }
    double s1 = (b[1] - b[0]) / 0.3, s2 = (b[2] - b[1]) / 1.2;
    double rate = (double)(f[0].batch.w.jobs + f[0].service.w.jobs) / f[0].end_s;
    cr_assert(s1 > 0 && s2 / s1 > 0.75 && s2 / s1 < 1.33,
              "busyness %f %f %f at t_job 0.1 0.4 1.6: slopes %f and %f, not one line", b[0], b[1],
              b[2], s1, s2);
    cr_assert(fabs(s1 / rate - 1) < 0.25, "slope %f, jobs arrive at %f/s", s1, rate);
    cr_assert_gt(b[3], 0.95, "busyness %f at t_job 25 s: not saturated", b[3]);
    /* The wait follows: it grows with t_job, and past saturation the
     * queue grows all run long. */
    for (int i = 1; i < 4; i++)
        cr_assert_gt(w[i], w[i - 1], "mean wait %f s at t_job %s, %f s at %s", w[i], tj[i], w[i - 1],
                     tj[i - 1]);
    cr_assert_gt(w[3], 100 * w[1], "mean wait %f s saturated, %f s at t_job 0.4 s", w[3], w[1]);
    cr_assert_gt(f[3].batch.w.unattempted, 0, "a saturated scheduler reached every job");
}

/* "Multi-path still blocks batch jobs behind slow service jobs (head of
 * line)": with the batch decision time fixed, batch jobs wait longer as
 * service decisions slow down; the fast path helps (single-path at the
 * same t_job is worse) but does not remove the wait, which Omega does
 * (its batch scheduler decides beside the service one). */
Test(cellsim_fidelity, multipath_batch_jobs_wait_behind_service_decisions_and_omega_s_do_not)
{
    static const char *const tj[] = {"0.1", "1.6", "6.4"};
    figs mp[3], om[3];
    for (int i = 0; i < 3; i++) {
        sim_conf c = cell("architecture=multipath", NULL);
        set(&c, "t_job_service", tj[i]);
        mp[i] = run(&c);
        set(&c, "architecture", "omega");
        if (i != 1) /* omega's two ends suffice */
            om[i] = run(&c);
    }
    for (int i = 1; i < 3; i++)
        cr_assert_gt(mp[i].batch.w.mean_s, mp[i - 1].batch.w.mean_s,
                     "multipath batch wait %f s at t_job(service) %s, %f s at %s", mp[i].batch.w.mean_s,
                     tj[i], mp[i - 1].batch.w.mean_s, tj[i - 1]);
    cr_assert_gt(mp[2].batch.w.mean_s, 5 * mp[0].batch.w.mean_s + 0.5,
                 "multipath batch wait %f s at 6.4 s, %f s at 0.1 s", mp[2].batch.w.mean_s,
                 mp[0].batch.w.mean_s);
    /* Omega: the batch jobs' wait hardly moves ("nearly independent of
     * t_job(service)"), and at 6.4 s it is a fraction of multipath's. */
    cr_assert_lt(om[2].batch.w.mean_s, 2 * om[0].batch.w.mean_s + 0.2,
                 "omega batch wait %f s at 6.4 s, %f s at 0.1 s", om[2].batch.w.mean_s,
                 om[0].batch.w.mean_s);
    cr_assert_lt(5 * om[2].batch.w.mean_s, mp[2].batch.w.mean_s, "omega %f s, multipath %f s",
                 om[2].batch.w.mean_s, mp[2].batch.w.mean_s);
    /* Single-path decides batch jobs in the service time too: worse. */
    sim_conf c = cell("architecture=monolithic", "t_job_service=6.4", NULL);
    figs sp = run(&c);
    cr_assert_gt(sp.batch.w.mean_s, 2 * mp[2].batch.w.mean_s, "single-path %f s, multipath %f s",
                 sp.batch.w.mean_s, mp[2].batch.w.mean_s);
}

/* ---- mesos (§4.2, Fig. 7) ----------------------------------------------------------------- */

/* "Offers lock most resources during long service decisions": the
 * service framework holds its offer (what was free and not offered when
 * it was granted) for its whole decision, and batch jobs wait where
 * Omega's do not. Several offers may be outstanding at once, so `locked`
 * sums the frameworks' holds. */
Test(cellsim_fidelity, mesos_long_service_decisions_lock_most_resources_in_offers)
{
    sim_conf c = cell("architecture=mesos", NULL);
    figs fast = run(&c);
    set(&c, "t_job_service", "25");
    figs slow = run(&c);
    set(&c, "architecture", "omega");
    figs om = run(&c);
    cr_assert_lt(fast.locked, 0.2, "offers locked resources %f of the time at 0.1 s", fast.locked);
    cr_assert_gt(slow.locked, 0.5, "offers locked resources %f of the time at 25 s", slow.locked);
    cr_assert_gt(slow.offers_service_ns, 0.8 * (double)slow.offers_ns,
                 "the service framework held %lu of %lu ns of offers",
                 (unsigned long)slow.offers_service_ns, (unsigned long)slow.offers_ns);
    cr_assert_gt(slow.batch.w.mean_s, 3 * om.batch.w.mean_s + 1,
                 "mesos batch wait %f s, omega %f s at 25 s service decisions", slow.batch.w.mean_s,
                 om.batch.w.mean_s);
    /* Pessimistic: no conflicts at all; every decision inside an offer,
     * the one still held at the end included. */
    cr_assert_eq(slow.batch.conflicted + slow.service.conflicted, 0);
    cr_assert_geq(slow.offers_service_ns, slow.decide_service_ns, "offers %lu ns, decisions %lu ns",
                  (unsigned long)slow.offers_service_ns, (unsigned long)slow.decide_service_ns);
    /* Most of the free resources: the service framework's offers are on
     * average twice the batch framework's or more, which are mostly what
     * freed up while the service framework held the rest; at 0.1 s the
     * batch framework's offers are as large as the service one's. */
    double svc = (double)slow.offer_cpu[1] / (double)slow.offers[1];
    double bat = (double)slow.offer_cpu[0] / (double)slow.offers[0];
    double bat_fast = (double)fast.offer_cpu[0] / (double)fast.offers[0];
    cr_assert_gt(svc, 2 * bat, "mean offer %f milli-cores to the service framework, %f to the batch one",
                 svc, bat);
    cr_assert_gt(bat_fast, 2 * bat, "mean batch offer %f milli-cores at 0.1 s, %f at 25 s", bat_fast, bat);
}

/* Runs of mesos cell `c` at 25 s and 0.1 s service decisions, then under
 * architecture `other` at 25 s. */
static void mesos_and(sim_conf c, const char *other, figs *slow, figs *fast, figs *o)
{
    set(&c, "architecture", "mesos");
    set(&c, "t_job_service", "25");
    *slow = run(&c);
    set(&c, "t_job_service", "0.1");
    *fast = run(&c);
    set(&c, "architecture", other);
    set(&c, "t_job_service", "25");
    *o = run(&c);
}

/* "Batch busyness is higher than multi-path" (issue 15 §5). What is
 * compared: the paper's Fig. 7b against Fig. 6b, the batch framework's
 * busyness under mesos against the time a multipath scheduler spends on
 * the batch jobs — its decisions on them, one per job here, as the test
 * checks (its whole busyness also holds the service decisions, 25 s
 * each, which no batch framework makes). While the service framework
 * holds most of the cell, the batch framework is offered what freed up
 * meanwhile, places jobs in part, and decides them again in the next
 * offer: each decision again costs t_job + t_task x the tasks left. */
Test(cellsim_fidelity, mesos_batch_framework_is_busier_than_multipath_s_batch_decisions)
{
    figs slow, fast, mp;
    mesos_and(cell(NULL), "multipath", &slow, &fast, &mp);
    /* multipath's batch decisions: every attempted batch job placed whole
     * (so decided once), nothing conflicts (one scheduler). */
    cr_assert_eq(mp.batch_partial, 0, "multipath left %u batch jobs part-placed", mp.batch_partial);
    cr_assert_eq(mp.batch.conflicted, 0);
    cr_assert_gt(mp.batch_attempted, 100, "only %u batch jobs", mp.batch_attempted);
    cr_assert_gt(slow.batch.busy_med, 2 * mp.batch_once,
                 "mesos batch framework busy %f, multipath's batch decisions %f of the time",
                 slow.batch.busy_med, mp.batch_once);
    /* And it is the long service offers that do it: at 0.1 s the batch
     * framework decides each job about once, as multipath does. */
    cr_assert_gt(slow.batch.busy_med, 2 * fast.batch.busy_med, "mesos batch busy %f at 25 s, %f at 0.1 s",
                 slow.batch.busy_med, fast.batch.busy_med);
    cr_assert_lt(fast.batch.busy_med, 1.5 * mp.batch_once, "mesos batch busy %f at 0.1 s, multipath's %f",
                 fast.batch.busy_med, mp.batch_once);
    cr_assert_gt(slow.batch.commits, fast.batch.commits + fast.batch.commits / 5,
                 "batch transactions %lu at 25 s, %lu at 0.1 s: jobs not placed in parts",
                 (unsigned long)slow.batch.commits, (unsigned long)fast.batch.commits);
}

/* "Batch jobs are abandoned at the attempt limit": with a limit of 5
 * attempts (the paper's 1,000 over its week scaled to this cell's 43
 * minutes), a batch job that small offers leave part-placed offer after
 * offer is abandoned at 25 s service decisions; at 0.1 s none is, and
 * Omega abandons none at either (its attempts are conflicts). */
Test(cellsim_fidelity, mesos_abandons_batch_jobs_at_the_attempt_limit_behind_long_service_offers)
{
    figs slow, fast, om;
    mesos_and(cell("max_attempts=5", NULL), "omega", &slow, &fast, &om);
    cr_assert_gt(slow.batch.w.abandoned, slow.batch.w.jobs / 50,
                 "mesos abandoned %lu of %lu batch jobs at 25 s", (unsigned long)slow.batch.w.abandoned,
                 (unsigned long)slow.batch.w.jobs);
    cr_assert_eq(fast.batch.w.abandoned, 0, "mesos abandoned %lu batch jobs at 0.1 s",
                 (unsigned long)fast.batch.w.abandoned);
    cr_assert_eq(om.batch.w.abandoned, 0, "omega abandoned %lu batch jobs", (unsigned long)om.batch.w.abandoned);
    /* The cause is the small offers, not a full cell: at the same load
     * Omega places every batch job. */
    cr_assert_eq(om.batch.w.scheduled, om.batch.w.jobs);
}

/* ---- Omega (§4.3, Figs. 8-9, §5.2 Fig. 14) ---------------------------------------------- */

/* "Omega schedules all jobs": across t_job(service) up to a busy service
 * scheduler, on a cell pre-filled to 45%, nothing is abandoned and every
 * job that arrived five minutes before the end is placed. */
Test(cellsim_fidelity, omega_schedules_every_job)
{
    static const char *const tj[] = {"0.1", "10"};
    for (int i = 0; i < 2; i++) {
        sim_conf c = cell("prefill=0.45", NULL);
        set(&c, "t_job_service", tj[i]);
        sim_result r;
        cs_error err = {0};
        cr_assert_eq(sim_run(&c, &r, &err), CS_OK, "%s", err.msg);
        uint64_t conflicted = 0;
        for (uint32_t s = 0; s < r.nscheds; s++)
            for (uint32_t d = 0; d < r.ndays; d++)
                conflicted += r.scheds[s].days[d].txn_conflicted;
        for (size_t j = 0; j < r.njobs; j++)
            if (r.jobs[j].submitted_ns < r.end_ns - 300 * INT64_C(1000000000))
                cr_assert_eq(r.jobs[j].outcome, SIM_JOB_SCHEDULED, "t_job %s: job %zu: %u of %u placed",
                             tj[i], j, r.jobs[j].placed, r.jobs[j].count);
        /* ... though its schedulers did conflict on this full cell. */
        if (i == 1)
            cr_assert_gt(conflicted, 10);
        sim_result_free(&r);
    }
}

/* "Conflict fraction rises with more batch schedulers but throughput
 * still gains up to 32": batch jobs decided in 4 s each arrive every 5 s,
 * so one batch scheduler is nearly saturated; split over more, each is
 * less busy and the jobs wait less, though they conflict more often. */
Test(cellsim_fidelity, more_batch_schedulers_conflict_more_and_still_gain)
{
    static const char *const n[] = {"1", "2", "8"};
    figs f[3];
    for (int i = 0; i < 3; i++) {
        sim_conf c = cell("prefill=0.6", "t_job_batch=4", NULL);
        set(&c, "batch_schedulers", n[i]);
        f[i] = run(&c);
    }
    for (int i = 1; i < 3; i++) {
        cr_assert_gt(f[i].batch.cf_all, 1.5 * f[i - 1].batch.cf_all,
                     "conflict fraction %f with %s batch schedulers, %f with %s", f[i].batch.cf_all,
                     n[i], f[i - 1].batch.cf_all, n[i - 1]);
        cr_assert_lt(f[i].batch.busy_med, f[i - 1].batch.busy_med, "busyness %f with %s, %f with %s",
                     f[i].batch.busy_med, n[i], f[i - 1].batch.busy_med, n[i - 1]);
        cr_assert_lt(f[i].batch.w.mean_s, f[i - 1].batch.w.mean_s, "wait %f s with %s, %f s with %s",
                     f[i].batch.w.mean_s, n[i], f[i - 1].batch.w.mean_s, n[i - 1]);
    }
    cr_assert_gt(f[0].batch.busy_med, 0.8, "one batch scheduler only %f busy", f[0].batch.busy_med);
    cr_assert_gt(f[2].batch.w.scheduled, f[0].batch.w.scheduled,
                 "8 schedulers placed %lu jobs, one %lu", (unsigned long)f[2].batch.w.scheduled,
                 (unsigned long)f[0].batch.w.scheduled);
    cr_assert_lt(5 * f[2].batch.w.mean_s, f[0].batch.w.mean_s);
}

/* Fig. 14's four modes for the service scheduler, deciding in 10 s a job
 * (a service job every 60 s) on a cell pre-filled to 60% where batch
 * tasks start and end all the time: index [coarse][gang]. */
static void modes(figs f[2][2])
{
    static const char *const conflict[] = {"fine", "coarse"}, *const commit[] = {"incremental", "gang"};
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++) {
            sim_conf c = cell("days=0.06", "prefill=0.6", "service_interarrival=exp:60",
                              "t_job_service=10", NULL);
            set(&c, "conflict", conflict[a]);
            set(&c, "commit", commit[b]);
            f[a][b] = run(&c);
            cr_assert_gt(f[a][b].service.successful, 40, "%s/%s", conflict[a], commit[b]);
        }
}

/* "All-or-nothing about doubles the conflict fraction; coarse-grained
 * detection raises conflicts and busyness 2-3x" (§5.2, Fig. 14). A gang
 * transaction that conflicts is retried whole, so it conflicts again as
 * often; an incremental one retries only the claims that failed. Coarse
 * detection refuses a claim on any machine that changed since the sync,
 * fine only one that would be overcommitted; every retry is another
 * decision. Asserted: gang above incremental under fine-grained detection
 * and at least 1.5x it under coarse, coarse at least 2x fine's conflict
 * fraction and 1.3x its busyness. Seed 1 gives 2.1x and 1.9x, 2.8x (2.5x
 * gang) and 1.6x; seeds 2-6 no less than 1.07x and 1.9x, 2.2x and 1.4x:
 * gang's effect under fine-grained detection is the weak one here
 * (docs/research.md, Fidelity). */
Test(cellsim_fidelity, gang_and_coarse_grained_detection_conflict_more)
{
    figs f[2][2];
    modes(f);
    static const char *const cn[] = {"fine", "coarse"}, *const mn[] = {"incremental", "gang"};
    for (int a = 0; a < 2; a++)
        cr_assert_gt(f[a][1].service.cf_all, (a ? 1.5 : 1.0) * f[a][0].service.cf_all,
                     "%s: gang %f, incremental %f conflicts per successful transaction", cn[a],
                     f[a][1].service.cf_all, f[a][0].service.cf_all);
    for (int b = 0; b < 2; b++) {
        cr_assert_gt(f[1][b].service.cf_all, 2 * f[0][b].service.cf_all,
                     "%s: coarse %f, fine %f conflicts per successful transaction", mn[b],
                     f[1][b].service.cf_all, f[0][b].service.cf_all);
        cr_assert_gt(f[1][b].service.busy_med, 1.3 * f[0][b].service.busy_med,
                     "%s: coarse %f, fine %f busy", mn[b], f[1][b].service.busy_med,
                     f[0][b].service.busy_med);
    }
    /* Fine and incremental, the paper's default, conflicts least. */
    cr_assert_gt(f[0][0].service.cf_all, 0.1, "too few conflicts to compare: %f", f[0][0].service.cf_all);
}

/* ---- the aggregates a sweep writes ---------------------------------------------------- */

/* Under monolithic and multipath one scheduler owns both kinds: the
 * aggregates a sweep writes (service_*, batch_*) still split the jobs by
 * kind, and both carry that scheduler's busyness. */
Test(cellsim_fidelity, a_single_schedulers_jobs_are_summarized_by_kind)
{
    sim_conf c = cell("days=0.01", "architecture=multipath", NULL);
    sim_result r;
    cs_error err = {0};
    cr_assert_eq(sim_run(&c, &r, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(r.nscheds, 1);
    sim_summary b, s, one;
    cr_assert_eq(sim_summarize(&r, SIM_ALL_BATCH, &b, &err), CS_OK);
    cr_assert_eq(sim_summarize(&r, SIM_ALL_SERVICE, &s, &err), CS_OK);
    cr_assert_eq(sim_summarize(&r, 0, &one, &err), CS_OK);
    uint64_t services = 0;
    for (size_t i = 0; i < r.njobs; i++)
        services += r.jobs[i].service;
    cr_assert_gt(services, 0);
    cr_assert_eq(s.w.jobs, services);
    cr_assert_eq(b.w.jobs + s.w.jobs, one.w.jobs);
    cr_assert_float_eq(b.busy_med, one.busy_med, 1e-12);
    cr_assert_float_eq(s.busy_med, one.busy_med, 1e-12);
    sim_result_free(&r);
}

/* ---- checked for §5: a replay's cell, the wait figure (tests that write files) --------- */

/* Write `lines` (NULL-ended) as the one shard of table `name` of the
 * trace under ts_tmp/trace. */
static void shard(const char *name, const char *const *lines)
{
    char path[512];
    snprintf(path, sizeof path, "%s/trace/%s", ts_tmp, name);
    cr_assert_eq(mkdir(path, 0755), 0, "%s", path);
    snprintf(path, sizeof path, "%s/trace/%s/part-00000-of-00001.csv", ts_tmp, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    for (; *lines != NULL; lines++)
        fprintf(f, "%s\n", *lines);
    cr_assert_eq(fclose(f), 0);
}

/* Three machines unlike the preset's (1.0, 0.5 and 0.25 of the largest's
 * cpu; 1.0, 0.25 and 0.5 of its memory) and one job of one task: with
 * 1.0 = 8 cores and 16 GiB, 14 cores and 28 GiB in all. */
static sim_conf replay_conf(const char *arch)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/trace", ts_tmp);
    cr_assert_eq(mkdir(dir, 0755), 0, "%s", dir);
    shard("machine_events", (const char *const[]){"0,1,0,pA,1,1", "0,2,0,pA,0.5,0.25",
                                                    "0,3,0,pB,0.25,0.5", NULL});
    shard("job_events", (const char *const[]){"610000000,,7,0,u,1,n,l", NULL});
    shard("task_events", (const char *const[]){"610000000,,7,0,,0,u,1,0,0.1,0.1,0,0",
                                                 "611000000,,7,0,1,1,u,1,0,,,,",
                                                 "631000000,,7,0,1,4,u,1,0,,,,", NULL});
    sim_conf c = cell("days=0.01", "prefill=0", "trace_cpu=8", "trace_mem=16", NULL);
    set(&c, "trace", dir);
    set(&c, "architecture", arch);
    return c;
}

TestSuite(cellsim_fidelity_files, .init = ts_tmp_setup, .fini = ts_tmp_teardown);

/* The header of a replay says the trace's machines, not the preset's (100
 * machines of 4 cpu, 16 GiB, which it does not use); the result carries
 * the cell's size from the same fields mesos' DRF divides by
 * (cellsim_kernel.c, dominant_share), which took the preset's before. */
Test(cellsim_fidelity_files, a_replays_header_and_cell_size_are_the_traces)
{
    sim_conf c = replay_conf("mesos");
    sim_result r;
    cs_error err = {0};
    cr_assert_eq(sim_run(&c, &r, &err), CS_OK, "%s", err.msg);
    cr_assert(r.replayed);
    cr_assert_eq(r.machines, 3);
    cr_assert_float_eq(r.cell_cpu, 14, 1e-9);
    cr_assert_float_eq(r.cell_mem, 28, 1e-9);
    cr_assert_eq(r.njobs, 1);
    cr_assert_eq(r.jobs[0].outcome, SIM_JOB_SCHEDULED);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_eq(sim_report_text(&c, &r, f, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(sim_report_json(&c, &r, f, &err), CS_OK, "%s", err.msg);
    fclose(f);
    cr_assert(strstr(text, "cellsim: 3 machines of the trace ") != NULL, "%s", text);
    cr_assert(strstr(text, "(14 cpu, 28 GiB in all)") != NULL, "%s", text);
    cr_assert(strstr(text, "100 machines") == NULL, "%s", text);
    cr_assert(strstr(text, "\"replay_cell\":{\"cpu\":14.0,\"machines\":3,\"mem\":28.0}") != NULL, "%s", text);
    free(text);
    sim_result_free(&r);
    /* The synthetic cell's header is as it was. */
    sim_conf s = cell("days=0.001", NULL);
    cr_assert_eq(sim_run(&s, &r, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(r.machines, 100);
    cr_assert_float_eq(r.cell_cpu, 400, 1e-9);
    f = open_memstream(&text, &len);
    cr_assert_eq(sim_report_text(&s, &r, f, &err), CS_OK, "%s", err.msg);
    fclose(f);
    const char *head = "cellsim: 100 machines of 4 cpu, 16 GiB; ";
    cr_assert(strncmp(text, head, strlen(head)) == 0, "%s", text);
    free(text);
    sim_result_free(&r);
}

/* The text of file `path` into out[size] (through cat: ts_run). */
static void file_text(const char *path, char *out, size_t size)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "cat '%s'", path);
    cr_assert_eq(ts_run(cmd, out, size), 0, "%s: %s", path, out);
}

/* Figs. 5-7's waits span milliseconds to a saturated scheduler's hours:
 * the wait figure has a log y axis, and a wait of 0, which a log axis
 * cannot show, is left out rather than drawn at the bottom. The script
 * is checked; `true` stands in for gnuplot. */
Test(cellsim_fidelity_files, the_wait_figure_has_a_log_y_axis)
{
    char csv[512], gp[512];
    snprintf(csv, sizeof csv, "%s/r.csv", ts_tmp);
    FILE *f = fopen(csv, "w");
    cr_assert_not_null(f);
    fputs("t_job_service,batch_wait_mean_s,service_wait_mean_s,batch_busyness_median,"
          "service_busyness_median\n0.1,0,0.5,0.1,0.2\n1,0.25,2,0,0.4\n10,3000,40,0.9,1\n",
          f);
    cr_assert_eq(fclose(f), 0);
    int written = 0;
    cs_error err = {0};
    FILE *log = fopen("/dev/null", "w");
    cr_assert_eq(sim_plot(csv, ts_tmp, "true", log, &written, &err), CS_OK, "%s", err.msg);
    fclose(log);
    cr_assert_eq(written, 2);
    static char text[8192];
    snprintf(gp, sizeof gp, "%s/tjob_wait.gp", ts_tmp);
    file_text(gp, text, sizeof text);
    cr_assert(strstr(text, "set logscale y 10\n") != NULL, "%s", text);
    cr_assert(strstr(text, "$s0 << EOD\n1 0.25\n10 3000\nEOD\n") != NULL, "%s", text);
    cr_assert(strstr(text, "$s1 << EOD\n0.1 0.5\n1 2\n10 40\nEOD\n") != NULL, "%s", text);
    /* Busyness keeps its linear axis from 0, and its zeros. */
    snprintf(gp, sizeof gp, "%s/tjob_busyness.gp", ts_tmp);
    file_text(gp, text, sizeof text);
    cr_assert(strstr(text, "logscale y") == NULL && strstr(text, "set yrange [0:*]") != NULL, "%s", text);
    cr_assert(strstr(text, "\n1 0\n") != NULL, "%s", text);
}
