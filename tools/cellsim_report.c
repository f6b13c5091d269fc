/* cellsim_report.c — a run's figures, as text and JSON (see cellsim_report.h). */
#include "tools/cellsim_report.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "schedulers/metrics.h"
#include "txn/txn.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median_sorted(const double *v, size_t n)
{
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void sim_median_mad(double *v, size_t n, double *median, double *mad)
{
    if (n == 0) {
        *median = *mad = (double)NAN;
        return;
    }
    qsort(v, n, sizeof *v, cmp_double);
    double m = median_sorted(v, n);
    for (size_t i = 0; i < n; i++)
        v[i] = fabs(v[i] - m);
    qsort(v, n, sizeof *v, cmp_double);
    *median = m;
    *mad = median_sorted(v, n);
}

typedef sim_waits waits;

/* Whether scheduler s is `which` (an index, UINT32_MAX: any, or
 * SIM_ALL_SERVICE or SIM_ALL_BATCH: every scheduler of that kind). */
static bool picked(const sim_result *r, uint32_t which, uint32_t s)
{
    if (which == UINT32_MAX)
        return true;
    if (which == SIM_ALL_SERVICE || which == SIM_ALL_BATCH)
        return s < r->nscheds && r->scheds[s].service == (which == SIM_ALL_SERVICE);
    return s == which;
}

/* Over the jobs of the schedulers `which` picks submitted on day `day`
 * (UINT32_MAX: any day), of kind `kind` (0 batch, 1 service, -1 either),
 * pooled. */
static int kind_waits(const sim_result *r, uint32_t which, uint32_t day, int kind, waits *w,
                      cs_error *err)
{
    memset(w, 0, sizeof *w);
    uint32_t *ms = malloc((r->njobs ? r->njobs : 1) * sizeof *ms);
    if (ms == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    double sum = 0;
    for (size_t i = 0; i < r->njobs; i++) {
        const sim_job_figs *j = &r->jobs[i];
        if (!picked(r, which, j->owner) || (day != UINT32_MAX && j->day != day) ||
            (kind >= 0 && j->service != (kind == 1)))
            continue;
        double wait_ms = (double)j->wait_ns / 1e6;
        ms[w->jobs++] = wait_ms >= UINT32_MAX ? UINT32_MAX : (uint32_t)wait_ms;
        sum += (double)j->wait_ns / 1e9;
        w->scheduled += j->outcome == SIM_JOB_SCHEDULED;
        w->abandoned += j->outcome == SIM_JOB_ABANDONED;
        w->unscheduled += j->outcome == SIM_JOB_WAITING;
        w->unattempted += !j->attempted;
        w->tasks_unplaced += j->count - (j->placed < j->count ? j->placed : j->count);
    }
    w->mean_s = w->jobs ? sum / (double)w->jobs : 0;
    /* Sorted as metrics.c sorts its samples; its nearest-rank percentile. */
    for (size_t i = 1; i < w->jobs; i++) {
        uint32_t x = ms[i];
        size_t k = i;
        for (; k > 0 && ms[k - 1] > x; k--)
            ms[k] = ms[k - 1];
        ms[k] = x;
    }
    static const double p[3] = {50, 90, 99};
    for (int i = 0; i < 3; i++)
        w->pct_ms[i] = cs_percentile(ms, w->jobs, p[i]);
    free(ms);
    return CS_OK;
}

/* The jobs `which` stands for: a scheduler's own, or, for SIM_ALL_SERVICE
 * and SIM_ALL_BATCH, every job of that kind whoever owns it. Under omega
 * and mesos the two agree (the service scheduler owns the service jobs);
 * under monolithic and multipath one scheduler owns both kinds, and the
 * paper's Figs. 5 and 6 still show batch and service jobs apart. */
static int job_waits(const sim_result *r, uint32_t which, uint32_t day, waits *w, cs_error *err)
{
    if (which == SIM_ALL_SERVICE || which == SIM_ALL_BATCH)
        return kind_waits(r, UINT32_MAX, day, which == SIM_ALL_SERVICE, w, err);
    return kind_waits(r, which, day, -1, w, err);
}

/* The schedulers whose busyness and conflicts `which` stands for: as
 * picked(), but a kind that has no scheduler of its own (monolithic and
 * multipath: one scheduler for both) stands for every scheduler, the one
 * that decides its jobs. */
static bool sched_picked(const sim_result *r, uint32_t which, uint32_t s)
{
    if (which != SIM_ALL_SERVICE && which != SIM_ALL_BATCH)
        return picked(r, which, s);
    for (uint32_t i = 0; i < r->nscheds; i++)
        if (picked(r, which, i))
            return picked(r, which, s);
    return s < r->nscheds;
}

/* A scheduler's offers (mesos) over the run: how many, and how long held. */
static void offers_of(const sim_result *r, uint32_t s, uint64_t *n, int64_t *ns)
{
    *n = 0;
    *ns = 0;
    for (uint32_t d = 0; d < r->ndays; d++) {
        *n += r->scheds[s].days[d].offers;
        *ns += r->scheds[s].days[d].offer_ns;
    }
}

/* The cores a scheduler's offers (mesos) held when granted, on average. */
static double offer_cores_mean(const sim_result *r, uint32_t s)
{
    uint64_t n = 0, milli = 0;
    for (uint32_t d = 0; d < r->ndays; d++) {
        n += r->scheds[s].days[d].offers;
        milli += r->scheds[s].days[d].offer_cpu;
    }
    return n > 0 ? (double)milli / 1000 / (double)n : 0;
}

/* The time offers were held, summed over the frameworks, as a share of
 * the run's: several may be outstanding at once (each of what was free
 * and in no other offer), so it may pass 1. */
static double locked_fraction(const sim_result *r)
{
    int64_t sum = 0;
    for (uint32_t s = 0; s < r->nscheds; s++) {
        uint64_t n;
        int64_t ns;
        offers_of(r, s, &n, &ns);
        sum += ns;
    }
    return r->end_ns > 0 ? (double)sum / (double)r->end_ns : 0;
}

/* Lines beyond omega's: each kind's waits over every scheduler (the
 * head-of-line blocking of one queue), and mesos' offers. */
static int arch_lines(const sim_conf *c, const sim_result *r, FILE *f, cs_error *err)
{
    static const char *const kinds[2] = {"batch", "service"};
    for (int kind = 0; kind < 2; kind++) {
        waits w;
        CS_TRY(kind_waits(r, UINT32_MAX, UINT32_MAX, kind, &w, err));
        fprintf(f, "%-7s jobs: %" PRIu64 ", scheduled %" PRIu64 ", abandoned %" PRIu64
                   ", wait mean %.3fs, p50 %.3fs, p90 %.3fs, p99 %.3fs\n",
                kinds[kind], w.jobs, w.scheduled, w.abandoned, w.mean_s, w.pct_ms[0] / 1e3,
                w.pct_ms[1] / 1e3, w.pct_ms[2] / 1e3);
    }
    if (c->architecture != SIM_ARCH_MESOS)
        return CS_OK;
    for (uint32_t s = 0; s < r->nscheds; s++) {
        uint64_t n;
        int64_t ns;
        offers_of(r, s, &n, &ns);
        fprintf(f, "%-12s offers %" PRIu64 ", held %.3fs (%.4f of the time), mean offer %.1f cores\n",
                r->scheds[s].name, n, (double)ns / 1e9,
                r->end_ns > 0 ? (double)ns / (double)r->end_ns : 0, offer_cores_mean(r, s));
    }
    fprintf(f, "offers held: %.4f of the time, summed over the frameworks (an offer holds what "
               "was free and in no other offer; attempt: an offer a waiting job's framework held)\n",
            locked_fraction(r));
    return CS_OK;
}

static double day_len_s(const sim_result *r, uint32_t d)
{
    int64_t from = (int64_t)d * SIM_DAY_NS, to = from + SIM_DAY_NS;
    return (double)((to < r->end_ns ? to : r->end_ns) - from) / 1e9;
}

typedef sim_summary summary;

int sim_summarize(const sim_result *r, uint32_t which, sim_summary *out, cs_error *err)
{
    memset(out, 0, sizeof *out);
    CS_TRY(job_waits(r, which, UINT32_MAX, &out->w, err));
    double *busy = calloc(r->ndays ? r->ndays : 1, sizeof *busy);
    double *cf = calloc(r->ndays ? r->ndays : 1, sizeof *cf);
    if (busy == NULL || cf == NULL) {
        free(busy);
        free(cf);
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    }
    size_t ncf = 0;
    for (uint32_t d = 0; d < r->ndays; d++) {
        /* Of several schedulers, a day's busyness is their mean and its
         * conflict fraction that of their transactions pooled; of one,
         * both are its own. */
        uint64_t ok = 0, conflicted = 0, n = 0;
        double decide_s = 0;
        for (uint32_t s = 0; s < r->nscheds; s++) {
            if (!sched_picked(r, which, s))
                continue;
            const sim_day_figs *f = &r->scheds[s].days[d];
            n++;
            decide_s += (double)f->decide_ns / 1e9;
            ok += f->txn_successful;
            conflicted += f->txn_conflicted;
            out->placements += f->claims;
            out->commits += f->commits;
        }
        out->successful += ok;
        out->conflicted += conflicted;
        busy[d] = n ? decide_s / (double)n / day_len_s(r, d) : (double)NAN;
        if (ok > 0)
            cf[ncf++] = (double)conflicted / (double)ok;
    }
    sim_median_mad(busy, r->ndays, &out->busy_med, &out->busy_mad);
    sim_median_mad(cf, ncf, &out->cf_med, &out->cf_mad);
    out->cf_all = out->successful ? (double)out->conflicted / (double)out->successful : (double)NAN;
    free(busy);
    free(cf);
    return CS_OK;
}

/* "0.1234" or "n/a" (NAN). */
static const char *fig(char *buf, size_t size, double v)
{
    if (isnan(v))
        snprintf(buf, size, "n/a");
    else
        snprintf(buf, size, "%.4f", v);
    return buf;
}

/* One line per scheduler and simulated day. */
static int days_text(const sim_result *r, FILE *f, cs_error *err)
{
    fprintf(f, "\n%-12s %4s %7s %9s %10s %9s %9s %10s %8s\n", "scheduler", "day", "jobs",
            "scheduled", "wait mean", "p90", "busyness", "conflicts", "placements");
    for (uint32_t s = 0; s < r->nscheds; s++)
        for (uint32_t d = 0; d < r->ndays; d++) {
            const sim_day_figs *df = &r->scheds[s].days[d];
            waits w;
            CS_TRY(job_waits(r, s, d, &w, err));
            char cf[32];
            fig(cf, sizeof cf,
                df->txn_successful ? (double)df->txn_conflicted / (double)df->txn_successful
                                   : (double)NAN);
            fprintf(f, "%-12s %4" PRIu32 " %7" PRIu64 " %9" PRIu64 " %9.3fs %8.3fs %9.4f %10s %8" PRIu64 "\n",
                    r->scheds[s].name, d, w.jobs, w.scheduled, w.mean_s, w.pct_ms[1] / 1e3,
                    (double)df->decide_ns / 1e9 / day_len_s(r, d), cf, df->claims);
        }
    return CS_OK;
}

/* The schedulers of the run, as the summary's first line says them. */
static void arch_text(const sim_conf *c, char *buf, size_t size)
{
    switch (c->architecture) {
    case SIM_ARCH_MONOLITHIC:
        snprintf(buf, size, "monolithic single-path: 1 scheduler, every job %gs + %gs/task",
                 c->t_job_service, c->t_task_service);
        return;
    case SIM_ARCH_MULTIPATH:
        snprintf(buf, size, "monolithic multipath: 1 scheduler, batch jobs %gs + %gs/task, service %gs + %gs/task",
                 c->t_job_batch, c->t_task_batch, c->t_job_service, c->t_task_service);
        return;
    case SIM_ARCH_MESOS:
        snprintf(buf, size, "mesos two-level: 1 service + %" PRIu32 " batch framework%s, offers in DRF order",
                 c->batch_schedulers, c->batch_schedulers == 1 ? "" : "s");
        return;
    default:
        snprintf(buf, size, "1 service + %" PRIu32 " batch scheduler%s", c->batch_schedulers,
                 c->batch_schedulers == 1 ? "" : "s");
    }
}

/* The cell, as the header says it: the preset's homogeneous machines, or
 * a replay's, which are the trace's (the preset's size is not used then). */
static void cell_text(const sim_conf *c, const sim_result *r, char *buf, size_t size)
{
    if (r->replayed)
        snprintf(buf, size, "%" PRIu32 " machines of the trace %s at its window's start (%.6g cpu, %.6g GiB in all)",
                 r->machines, c->trace, r->cell_cpu, r->cell_mem);
    else
        snprintf(buf, size, "%" PRIu32 " machines of %g cpu, %g GiB", c->machines, c->machine_cpu,
                 c->machine_mem);
}

int sim_report_text(const sim_conf *c, const sim_result *r, FILE *f, cs_error *err)
{
    char arch[192], cell[1280];
    arch_text(c, arch, sizeof arch);
    cell_text(c, r, cell, sizeof cell);
    fprintf(f,
            "cellsim: %s; prefill %.1f%% of cpu (%" PRIu64
            " tasks); %s, %s, %s, %s/%s placement, %s, "
            "retry %s; %g days; seed %" PRIu64 "\n",
            cell, r->prefill_cpu * 100, r->prefill_tasks,
            arch, cs_conflict_mode_name(c->conflict), cs_commit_mode_name(c->commit), c->batch_strategy,
            c->service_strategy, c->txn_per_job ? "one job per transaction" : "jobs share transactions",
            c->retry_tail ? "tail" : "front", c->days, c->seed);
    fprintf(f, "%-12s %7s %9s %9s %11s %10s %9s %9s %9s %15s %17s %10s %8s\n", "scheduler", "jobs",
            "scheduled", "abandoned", "unscheduled", "wait mean", "p50", "p90", "p99",
            "busyness(MAD)", "conflicts(MAD)", "placements", "commits");
    for (uint32_t s = 0; s < r->nscheds; s++) {
        summary m;
        CS_TRY(sim_summarize(r, s, &m, err));
        char b1[32], b2[32], c1[32], c2[32], busy[72], conf[72];
        snprintf(busy, sizeof busy, "%s(%s)", fig(b1, sizeof b1, m.busy_med), fig(b2, sizeof b2, m.busy_mad));
        snprintf(conf, sizeof conf, "%s(%s)", fig(c1, sizeof c1, m.cf_med), fig(c2, sizeof c2, m.cf_mad));
        fprintf(f,
                "%-12s %7" PRIu64 " %9" PRIu64 " %9" PRIu64 " %11" PRIu64 " %9.3fs %8.3fs %8.3fs "
                "%8.3fs %15s %17s %10" PRIu64 " %8" PRIu64 "\n",
                r->scheds[s].name, m.w.jobs, m.w.scheduled, m.w.abandoned, m.w.unscheduled,
                m.w.mean_s, m.w.pct_ms[0] / 1e3, m.w.pct_ms[1] / 1e3, m.w.pct_ms[2] / 1e3, busy, conf,
                m.placements, m.commits);
    }
    fprintf(f, "(wait: submission to the first attempt; a job never attempted counts to the end. "
               "busyness and conflicts: median of daily values, MAD)\n");
    if (c->architecture != SIM_ARCH_OMEGA)
        CS_TRY(arch_lines(c, r, f, err));
    if (r->ndays > 1)
        CS_TRY(days_text(r, f, err));
    return CS_OK;
}

static json_t *jnum(double v) { return isnan(v) ? json_null() : json_real(v); }

static int set(json_t *o, const char *key, json_t *v)
{
    return v != NULL && json_object_set_new(o, key, v) == 0 ? CS_OK : CS_ENOMEM;
}

static int waits_json(json_t *o, const waits *w)
{
    int rc = set(o, "jobs", json_integer((json_int_t)w->jobs));
    rc |= set(o, "scheduled", json_integer((json_int_t)w->scheduled));
    rc |= set(o, "abandoned", json_integer((json_int_t)w->abandoned));
    rc |= set(o, "unscheduled", json_integer((json_int_t)w->unscheduled));
    rc |= set(o, "unattempted", json_integer((json_int_t)w->unattempted));
    rc |= set(o, "tasks_unplaced", json_integer((json_int_t)w->tasks_unplaced));
    rc |= set(o, "wait_mean_s", json_real(w->mean_s));
    rc |= set(o, "wait_p50_s", json_real(w->pct_ms[0] / 1e3));
    rc |= set(o, "wait_p90_s", json_real(w->pct_ms[1] / 1e3));
    rc |= set(o, "wait_p99_s", json_real(w->pct_ms[2] / 1e3));
    return rc ? CS_ENOMEM : CS_OK;
}

static int sched_json(const sim_conf *c, const sim_result *r, uint32_t s, json_t **out, cs_error *err)
{
    summary m;
    CS_TRY(sim_summarize(r, s, &m, err));
    json_t *o = json_object(), *days = json_array();
    int rc = o && days ? CS_OK : CS_ENOMEM;
    rc |= set(o, "name", json_string(r->scheds[s].name));
    rc |= set(o, "kind", json_string(r->scheds[s].service ? "service" : "batch"));
    rc |= waits_json(o, &m.w);
    rc |= set(o, "busyness_median", jnum(m.busy_med));
    rc |= set(o, "busyness_mad", jnum(m.busy_mad));
    rc |= set(o, "conflict_fraction_median", jnum(m.cf_med));
    rc |= set(o, "conflict_fraction_mad", jnum(m.cf_mad));
    rc |= set(o, "conflict_fraction", jnum(m.cf_all));
    rc |= set(o, "placements", json_integer((json_int_t)m.placements));
    rc |= set(o, "commits", json_integer((json_int_t)m.commits));
    rc |= set(o, "txn_successful", json_integer((json_int_t)m.successful));
    rc |= set(o, "txn_conflicted", json_integer((json_int_t)m.conflicted));
    if (c->architecture == SIM_ARCH_MESOS) {
        uint64_t n;
        int64_t ns;
        offers_of(r, s, &n, &ns);
        rc |= set(o, "offers", json_integer((json_int_t)n));
        rc |= set(o, "offer_held_s", json_real((double)ns / 1e9));
        rc |= set(o, "offer_held_fraction", json_real(r->end_ns > 0 ? (double)ns / (double)r->end_ns : 0));
        rc |= set(o, "offer_cores_mean", json_real(offer_cores_mean(r, s)));
    }
    for (uint32_t d = 0; rc == CS_OK && d < r->ndays; d++) {
        const sim_day_figs *f = &r->scheds[s].days[d];
        waits w;
        if (job_waits(r, s, d, &w, err) != CS_OK) {
            rc = CS_ENOMEM;
            break;
        }
        json_t *day = json_object();
        rc |= day ? CS_OK : CS_ENOMEM;
        rc |= set(day, "day", json_integer(d));
        rc |= waits_json(day, &w);
        rc |= set(day, "busyness", json_real((double)f->decide_ns / 1e9 / day_len_s(r, d)));
        rc |= set(day, "conflict_fraction",
                  f->txn_successful ? json_real((double)f->txn_conflicted / (double)f->txn_successful)
                                    : json_null());
        rc |= set(day, "placements", json_integer((json_int_t)f->claims));
        rc |= set(day, "commits", json_integer((json_int_t)f->commits));
        rc |= json_array_append_new(days, day) ? CS_ENOMEM : CS_OK;
    }
    rc |= set(o, "days", days);
    if (rc != CS_OK) {
        json_decref(o);
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    }
    *out = o;
    return CS_OK;
}

int sim_report_json(const sim_conf *c, const sim_result *r, FILE *f, cs_error *err)
{
    json_t *root = json_object(), *conf = json_object(), *scheds = json_array();
    int rc = root && conf && scheds ? CS_OK : CS_ENOMEM;
    rc |= set(conf, "seed", json_integer((json_int_t)c->seed));
    rc |= set(conf, "days", json_real(c->days));
    rc |= set(conf, "machines", json_integer(c->machines));
    rc |= set(conf, "batch_schedulers", json_integer(c->batch_schedulers));
    rc |= set(conf, "conflict", json_string(cs_conflict_mode_name(c->conflict)));
    rc |= set(conf, "commit", json_string(cs_commit_mode_name(c->commit)));
    rc |= set(conf, "t_job_batch", json_real(c->t_job_batch));
    rc |= set(conf, "t_task_batch", json_real(c->t_task_batch));
    rc |= set(conf, "t_job_service", json_real(c->t_job_service));
    rc |= set(conf, "t_task_service", json_real(c->t_task_service));
    rc |= set(conf, "machine_cpu", json_real(c->machine_cpu));
    rc |= set(conf, "machine_mem", json_real(c->machine_mem));
    rc |= set(conf, "prefill", json_real(c->prefill));
    rc |= set(conf, "max_attempts", json_integer(c->max_attempts));
    rc |= set(conf, "txn_per_job", json_boolean(c->txn_per_job));
    rc |= set(conf, "retry", json_string(c->retry_tail ? "tail" : "front"));
    rc |= set(conf, "idle", json_real(c->idle_s));
    rc |= set(conf, "batch_strategy", json_string(c->batch_strategy));
    rc |= set(conf, "service_strategy", json_string(c->service_strategy));
    static const char *const kinds[2] = {"batch", "service"};
    static const char *const dists[5] = {"interarrival", "tasks", "duration", "cpu", "mem"};
    for (int k = 0; k < 2; k++) {
        const sim_workload *w = k ? &c->service : &c->batch;
        const sim_dist *d[5] = {&w->interarrival, &w->tasks, &w->duration, &w->cpu, &w->mem};
        for (int i = 0; i < 5; i++) {
            char key[48], text[1024];
            snprintf(key, sizeof key, "%s_%s", kinds[k], dists[i]);
            sim_dist_format(d[i], text, sizeof text);
            rc |= set(conf, key, json_string(text));
        }
    }
    if (c->architecture != SIM_ARCH_OMEGA) {
        /* Omega's output stays as it was: these keys only for the others. */
        rc |= set(conf, "architecture", json_string(sim_arch_name(c->architecture)));
        static const char *const kn[2] = {"batch", "service"};
        for (int kind = 0; rc == CS_OK && kind < 2; kind++) {
            waits w;
            json_t *o = json_object();
            if (o == NULL || kind_waits(r, UINT32_MAX, UINT32_MAX, kind, &w, err) != CS_OK) {
                json_decref(o);
                rc = CS_ENOMEM;
                break;
            }
            rc |= waits_json(o, &w);
            char key[24];
            snprintf(key, sizeof key, "%s_jobs", kn[kind]);
            rc |= set(root, key, o);
        }
        if (c->architecture == SIM_ARCH_MESOS)
            rc |= set(root, "offer_locked_fraction", json_real(locked_fraction(r)));
    }
    if (r->replayed) {
        /* The cell a replay ran on: the trace's machines, not config's. */
        json_t *cell = json_object();
        rc |= cell ? CS_OK : CS_ENOMEM;
        rc |= set(cell, "machines", json_integer(r->machines));
        rc |= set(cell, "cpu", json_real(r->cell_cpu));
        rc |= set(cell, "mem", json_real(r->cell_mem));
        rc |= set(root, "replay_cell", cell);
    }
    rc |= set(root, "config", conf);
    rc |= set(root, "prefill_cpu", json_real(r->prefill_cpu));
    rc |= set(root, "prefill_tasks", json_integer((json_int_t)r->prefill_tasks));
    rc |= set(root, "events", json_integer((json_int_t)r->events));
    for (uint32_t s = 0; rc == CS_OK && s < r->nscheds; s++) {
        json_t *o = NULL;
        if ((rc = sched_json(c, r, s, &o, err)) != CS_OK) {
            json_decref(root);
            json_decref(scheds);
            return rc;
        }
        rc = json_array_append_new(scheds, o) ? CS_ENOMEM : CS_OK;
    }
    rc |= set(root, "schedulers", scheds);
    char *text = rc == CS_OK ? json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(root);
    if (text == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    fprintf(f, "%s\n", text);
    free(text);
    return CS_OK;
}
