/* cellsim_conf.c — cellsim's configuration (see cellsim_conf.h). */
#include "tools/cellsim_conf.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "txn/txn.h"

typedef enum key_type { K_U32, K_U64, K_SECONDS, K_FRACTION, K_NUMBER, K_DIST, K_CONFLICT, K_COMMIT, K_BOOL, K_STRATEGY, K_RETRY, K_ARCH, K_PATH } key_type;

/* One setting: its name (file key; the flag is --name with dashes), where
 * it lives in sim_conf, its bounds and its line of --help. */
typedef struct key {
    const char *name;
    key_type type;
    size_t off;
    double lo, hi;
    const char *help;
} key;

#define OFF(f) offsetof(sim_conf, f)
static const key keys[] = {
    {"seed", K_U64, OFF(seed), 0, 0, "seed of the workload and the placers (default 1)"},
    {"days", K_NUMBER, OFF(days), 1e-6, 365, "simulated days (default 7)"},
    {"machines", K_U32, OFF(machines), 1, 1000000, "machines in the cell"},
    {"machine_cpu", K_NUMBER, OFF(machine_cpu), 0.001, 1e6, "cores per machine"},
    {"machine_mem", K_NUMBER, OFF(machine_mem), 0.001, 1e6, "GiB per machine"},
    {"prefill", K_FRACTION, OFF(prefill), 0, 0.99, "share of the cell's cpu taken by long-running tasks before the clock starts (0.6)"},
    {"batch_schedulers", K_U32, OFF(batch_schedulers), 1, 256, "batch schedulers, sharing the batch jobs by XXH3(job id) (default 1)"},
    {"conflict", K_CONFLICT, OFF(conflict), 0, 0, "fine | coarse conflict detection (default fine)"},
    {"commit", K_COMMIT, OFF(commit), 0, 0, "incremental | gang transactions (default incremental)"},
    {"t_job_batch", K_SECONDS, OFF(t_job_batch), 0, 86400, "batch decision time per job, seconds (0.1)"},
    {"t_task_batch", K_SECONDS, OFF(t_task_batch), 0, 86400, "batch decision time per task (0.005)"},
    {"t_job_service", K_SECONDS, OFF(t_job_service), 0, 86400, "service decision time per job (0.1)"},
    {"t_task_service", K_SECONDS, OFF(t_task_service), 0, 86400, "service decision time per task (0.005)"},
    {"batch_strategy", K_STRATEGY, OFF(batch_strategy), 0, 0, "firstfit | spread | binpack | random: the batch schedulers' placement (firstfit: the paper's per-task randomized first fit)"},
    {"service_strategy", K_STRATEGY, OFF(service_strategy), 0, 0, "the service scheduler's placement (firstfit)"},
    {"txn_per_job", K_BOOL, OFF(txn_per_job), 0, 0, "one job per transaction, as the paper (true; =false: the daemons' batching of small jobs)"},
    {"retry", K_RETRY, OFF(retry_tail), 0, 0, "tail | front: a conflicted job retries after a back-off at the tail, as the paper (tail), or at the front, as the daemons"},
    {"architecture", K_ARCH, OFF(architecture), 0, 0, "omega | monolithic | multipath | mesos: Omega §2's architectures (omega: shared state; monolithic: one scheduler, the service decision time for every job; multipath: one scheduler, each job its kind's; mesos: two-level, offers in DRF order)"},
    {"max_attempts", K_U32, OFF(max_attempts), 1, 1000000, "attempts before a job is abandoned (1000)"},
    {"idle", K_SECONDS, OFF(idle_s), 0.001, 3600, "an idle scheduler looks at the cell again after this (1)"},
    {"batch_interarrival", K_DIST, OFF(batch.interarrival), 0, 0, "seconds between batch jobs"},
    {"batch_tasks", K_DIST, OFF(batch.tasks), 0, 0, "tasks per batch job (rounded, at least 1)"},
    {"batch_duration", K_DIST, OFF(batch.duration), 0, 0, "seconds a batch task runs"},
    {"batch_cpu", K_DIST, OFF(batch.cpu), 0, 0, "cores per batch task"},
    {"batch_mem", K_DIST, OFF(batch.mem), 0, 0, "GiB per batch task"},
    {"service_interarrival", K_DIST, OFF(service.interarrival), 0, 0, "seconds between service jobs"},
    {"service_tasks", K_DIST, OFF(service.tasks), 0, 0, "tasks per service job"},
    {"service_duration", K_DIST, OFF(service.duration), 0, 0, "seconds a service job runs"},
    {"service_cpu", K_DIST, OFF(service.cpu), 0, 0, "cores per service task"},
    {"service_mem", K_DIST, OFF(service.mem), 0, 0, "GiB per service task"},
    {"trace", K_PATH, OFF(trace), 0, 0, "replay Google's cluster-data 2011 trace in this directory (machine_events/, job_events/, task_events/) instead of the synthetic workload and machines"},
    {"trace_from", K_U64, OFF(trace_from), 0, 0, "the replay's window starts at this trace second (0: the trace's start, 600)"},
    {"trace_to", K_U64, OFF(trace_to), 0, 0, "the window ends at this trace second (0: trace_from + days; no later than that)"},
    {"trace_jobs", K_U32, OFF(trace_jobs), 0, 4000000000.0, "replay at most this many trace jobs (0: all)"},
    {"trace_cpu", K_NUMBER, OFF(trace_cpu), 0.001, 1e6, "cores that 1.0 of the trace's cpu stands for (32: an assumption, Google never published it)"},
    {"trace_mem", K_NUMBER, OFF(trace_mem), 0.001, 1e6, "GiB that 1.0 of the trace's memory stands for (64: an assumption)"},
    {"trace_service_priority", K_U32, OFF(trace_service_priority), 0, 11, "a trace job is service from this priority (9: production) ..."},
    {"trace_service_class", K_U32, OFF(trace_service_class), 0, 3, "... and this scheduling class up (2): the Omega paper's split"},
    {"json", K_BOOL, OFF(json), 0, 0, "end the output with one line of JSON"},
    {"timing", K_BOOL, OFF(timing), 0, 0, "wall-clock time and events/s on stderr"},
};
#define NKEYS (sizeof keys / sizeof keys[0])

const char *sim_arch_name(uint8_t arch)
{
    static const char *const names[] = {"omega", "monolithic", "multipath", "mesos"};
    return arch <= SIM_ARCH_MESOS ? names[arch] : "?";
}

static sim_workload exp_workload(double inter, double tasks, double dur, double cpu, double mem)
{
    sim_workload w = {0};
    w.interarrival = (sim_dist){.kind = SIM_DIST_EXP, .value = inter};
    w.tasks = (sim_dist){.kind = SIM_DIST_EXP, .value = tasks};
    w.duration = (sim_dist){.kind = SIM_DIST_EXP, .value = dur};
    w.cpu = (sim_dist){.kind = SIM_DIST_CONST, .value = cpu};
    w.mem = (sim_dist){.kind = SIM_DIST_CONST, .value = mem};
    return w;
}

int sim_conf_preset(const char *name, sim_conf *c, cs_error *err)
{
    bool small = strcmp(name, "small") == 0;
    if (!small && strcmp(name, "omega") != 0)
        return cs_errorf(err, CS_EINVAL, "--preset: '%s' is not omega or small", name);
    *c = (sim_conf){
        .seed = 1,
        .days = 7,
        .machines = small ? 100 : 10000,
        .machine_cpu = 4,
        .machine_mem = 16,
        .prefill = 0.6,
        .batch_schedulers = 1,
        .conflict = CS_CONFLICT_FINE,
        .commit = CS_COMMIT_INCREMENTAL,
        .t_job_batch = 0.1,
        .t_task_batch = 0.005,
        .t_job_service = 0.1,
        .t_task_service = 0.005,
        .max_attempts = 1000,
        .idle_s = 1,
        /* The paper's forms (issue 15 §6), not the daemons' defaults:
         * per-task randomized first fit, one job per transaction, retries
         * at the tail after a back-off. */
        .batch_strategy = "firstfit",
        .service_strategy = "firstfit",
        .txn_per_job = true,
        .retry_tail = true,
        /* Google normalised the trace to its largest machine and never
         * said how large that was: 32 cores and 64 GiB are an assumption
         * (a large 2011 server), for the researcher to change. */
        .trace_cpu = 32,
        .trace_mem = 64,
        .trace_service_priority = 9,
        .trace_service_class = 2,
    };
    /* The simulator's example workloads (see the header); `small` keeps
     * the load per machine: a hundredth of the cell, a hundredth of the
     * arrivals. */
    double scale = small ? 100 : 1;
    c->batch = exp_workload(10 * scale, 100, 100, 1, 2);
    c->service = exp_workload(20 * scale, 10, 500, 1, 2);
    return CS_OK;
}

static const key *find_key(const char *name)
{
    char norm[64];
    size_t n = strlen(name);
    if (n >= sizeof norm)
        return NULL;
    for (size_t i = 0; i <= n; i++)
        norm[i] = name[i] == '-' ? '_' : name[i];
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].name, norm) == 0)
            return &keys[i];
    return NULL;
}

static void flag_name(const key *k, char *out, size_t size)
{
    size_t n = (size_t)snprintf(out, size, "--%s", k->name);
    for (size_t i = 2; i < n && i < size; i++)
        if (out[i] == '_')
            out[i] = '-';
}

int sim_conf_set(sim_conf *c, const char *name, const char *value, cs_error *err)
{
    const key *k = find_key(name);
    if (k == NULL)
        return cs_errorf(err, CS_EINVAL, "unknown setting '%s' (cellsim --help lists them)", name);
    char flag[72];
    flag_name(k, flag, sizeof flag);
    void *at = (char *)c + k->off;
    char *end;
    errno = 0;
    switch (k->type) {
    case K_U32:
    case K_U64: {
        unsigned long long x = strtoull(value, &end, 10);
        double hi = k->type == K_U64 ? 1.8e19 : k->hi;
        if (errno || end == value || *end || value[0] == '-' || (double)x < k->lo || (double)x > hi)
            return k->type == K_U64
                       ? cs_errorf(err, CS_EINVAL, "%s: '%s' is not an unsigned integer", flag, value)
                       : cs_errorf(err, CS_EINVAL, "%s: '%s' is not an integer in [%g, %g]", flag,
                                   value, k->lo, k->hi);
        if (k->type == K_U64)
            *(uint64_t *)at = x;
        else
            *(uint32_t *)at = (uint32_t)x;
        return CS_OK;
    }
    case K_SECONDS:
    case K_FRACTION:
    case K_NUMBER: {
        double x = strtod(value, &end);
        if (errno || end == value || *end || !isfinite(x) || x < k->lo || x > k->hi)
            return cs_errorf(err, CS_EINVAL, "%s: '%s' is not a number in [%g, %g]", flag, value,
                             k->lo, k->hi);
        *(double *)at = x;
        return CS_OK;
    }
    case K_DIST: return sim_dist_parse(flag, value, at, err);
    case K_CONFLICT:
        if (cs_conflict_mode_parse(value, at) != CS_OK)
            return cs_errorf(err, CS_EINVAL, "%s: '%s' is not fine or coarse", flag, value);
        return CS_OK;
    case K_COMMIT:
        if (cs_commit_mode_parse(value, at) != CS_OK)
            return cs_errorf(err, CS_EINVAL, "%s: '%s' is not incremental or gang", flag, value);
        return CS_OK;
    case K_STRATEGY:
        if (strcmp(value, "spread") && strcmp(value, "binpack") && strcmp(value, "random") &&
            strcmp(value, "firstfit"))
            return cs_errorf(err, CS_EINVAL, "%s: '%s' is not firstfit, spread, binpack or random",
                             flag, value);
        snprintf(at, 16, "%s", value);
        return CS_OK;
    case K_RETRY:
        if (strcmp(value, "tail") && strcmp(value, "front"))
            return cs_errorf(err, CS_EINVAL, "%s: '%s' is not tail or front", flag, value);
        *(bool *)at = strcmp(value, "tail") == 0;
        return CS_OK;
    case K_ARCH:
        for (uint8_t a = 0; a <= SIM_ARCH_MESOS; a++)
            if (strcmp(value, sim_arch_name(a)) == 0) {
                *(uint8_t *)at = a;
                return CS_OK;
            }
        return cs_errorf(err, CS_EINVAL, "%s: '%s' is not omega, monolithic, multipath or mesos",
                         flag, value);
    case K_PATH:
        if (strlen(value) >= sizeof c->trace)
            return cs_errorf(err, CS_EINVAL, "%s: longer than %zu bytes", flag, sizeof c->trace - 1);
        snprintf(at, sizeof c->trace, "%s", value);
        return CS_OK;
    case K_BOOL:
        if (strcmp(value, "true") == 0 || strcmp(value, "1") == 0)
            *(bool *)at = true;
        else if (strcmp(value, "false") == 0 || strcmp(value, "0") == 0)
            *(bool *)at = false;
        else
            return cs_errorf(err, CS_EINVAL, "%s: '%s' is not true or false", flag, value);
        return CS_OK;
    }
    return cs_errorf(err, CS_EINVAL, "%s: unknown type", flag);
}

int sim_conf_load(sim_conf *c, const char *path, cs_error *err)
{
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL)
        return cs_errorf(err, CS_EINVAL, "%s: line %d: %s", path, je.line, je.text);
    int rc = CS_OK;
    if (!json_is_object(root)) {
        rc = cs_errorf(err, CS_EINVAL, "%s: not a JSON object of settings", path);
        goto out;
    }
    const char *name;
    json_t *v;
    json_object_foreach(root, name, v) {
        char buf[64];
        const char *text;
        if (json_is_string(v)) {
            text = json_string_value(v);
        } else if (json_is_integer(v)) {
            snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
            text = buf;
        } else if (json_is_real(v)) {
            snprintf(buf, sizeof buf, "%.17g", json_real_value(v));
            text = buf;
        } else if (json_is_boolean(v)) {
            text = json_is_true(v) ? "true" : "false";
        } else {
            rc = cs_errorf(err, CS_EINVAL, "%s: \"%s\": a string, number or boolean is expected",
                           path, name);
            goto out;
        }
        if ((rc = sim_conf_set(c, name, text, err)) != CS_OK) {
            cs_error_wrap(err, rc, "%s: \"%s\"", path, name);
            goto out;
        }
    }
out:
    json_decref(root);
    return rc;
}

/* The value of flag argv[*i] ("--x=v" or "--x v"), moving *i past it. */
static int flag_value(int argc, char **argv, int *i, const char *flag, const char *eq,
                      const char **out, cs_error *err)
{
    if (eq != NULL) {
        *out = eq + 1;
        return CS_OK;
    }
    if (*i + 1 >= argc)
        return cs_errorf(err, CS_EINVAL, "%s: needs a value", flag);
    *out = argv[++*i];
    return CS_OK;
}

int sim_conf_parse(int argc, char **argv, sim_conf *c, bool *help, cs_error *err)
{
    *help = false;
    const char *preset = "omega", *config = NULL;
    /* First pass: --help, --preset and --config, which the others build on. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            *help = true;
            return CS_OK;
        }
        if (strncmp(a, "--", 2) != 0)
            return cs_errorf(err, CS_EINVAL, "unexpected argument '%s'", a);
        const char *eq = strchr(a, '=');
        size_t n = eq ? (size_t)(eq - a) : strlen(a);
        const char **dst = n == 8 && strncmp(a, "--preset", 8) == 0   ? &preset
                           : n == 8 && strncmp(a, "--config", 8) == 0 ? &config
                                                                       : NULL;
        const key *k = NULL;
        if (dst == NULL) {
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)(n - 2), a + 2);
            if ((k = find_key(name)) == NULL)
                return cs_errorf(err, CS_EINVAL, "unknown option '%.*s' (cellsim --help lists them)",
                                 (int)n, a);
        }
        const char *v = NULL;
        if (k != NULL && k->type == K_BOOL)
            continue;
        CS_TRY(flag_value(argc, argv, &i, a, eq, &v, err));
        if (dst != NULL)
            *dst = v;
    }
    CS_TRY(sim_conf_preset(preset, c, err));
    if (config != NULL)
        CS_TRY(sim_conf_load(c, config, err));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *eq = strchr(a, '=');
        size_t n = eq ? (size_t)(eq - a) : strlen(a);
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(n - 2), a + 2);
        const char *v = NULL;
        if (strcmp(name, "preset") == 0 || strcmp(name, "config") == 0) {
            CS_TRY(flag_value(argc, argv, &i, a, eq, &v, err));
            continue;
        }
        const key *k = find_key(name);
        if (k->type == K_BOOL && eq == NULL)
            v = "true";
        else
            CS_TRY(flag_value(argc, argv, &i, a, eq, &v, err));
        CS_TRY(sim_conf_set(c, name, v, err));
    }
    return CS_OK;
}

void sim_conf_usage(FILE *f)
{
    fputs("usage: cellsim [--preset omega|small] [--config FILE.json] [--SETTING VALUE ...]\n"
          "       cellsim sweep [settings] --vary KEY=V1,V2,... [--out RESULTS.csv] [--jobs N]\n"
          "         one run per point of a grid of settings, a CSV row each (sweep --help)\n"
          "       cellsim plot RESULTS.csv [--out DIR]\n"
          "         the paper's figures from a sweep's CSV, as PNGs by gnuplot (plot --help)\n"
          "\n"
          "Omega's experiments in simulated time on the real scheduler loop: one service\n"
          "scheduler and N batch schedulers (schedulers/sched.h, the hooks of cell-service\n"
          "and cell-batch) commit to a real store through the state machine; a virtual\n"
          "clock, simulated machines, a synthetic workload. The same seed and settings give\n"
          "the same output, byte for byte.\n"
          "\n"
          "  --preset NAME   omega (the paper's lightweight setup on the simulator's example\n"
          "                  workload, 10,000 machines; the default) or small (100 machines)\n"
          "  --config FILE   a JSON object of settings, by the names below (\"batch_tasks\":\n"
          "                  \"exp:100\", \"machines\": 50); flags given beside it win\n"
          "\n"
          "settings (flag --name-with-dashes, file key name_with_underscores):\n",
          f);
    for (size_t i = 0; i < NKEYS; i++) {
        char flag[72];
        flag_name(&keys[i], flag, sizeof flag);
        fprintf(f, "  %-24s %s\n", flag, keys[i].help);
    }
    fputs("\n"
          "Distributions: a number (constant), exp:MEAN (exponential), or\n"
          "emp:0=V0,Q1=V1,...,1=VN (empirical: values at ascending quantiles, linear\n"
          "between them).\n",
          f);
}

size_t sim_conf_nkeys(void) { return NKEYS; }

const char *sim_conf_key(size_t i, bool *output)
{
    if (i >= NKEYS)
        return NULL;
    /* These two change how a run reports, not what it simulates. */
    if (output != NULL)
        *output = keys[i].off == OFF(json) || keys[i].off == OFF(timing);
    return keys[i].name;
}

/* The shortest "%.*g" of x that reads back as x, so that a value written
 * by sim_conf_get is the one sim_conf_set took ("0.1", not
 * "0.10000000000000001"). */
static void shortest(double x, char *out, size_t size)
{
    for (int p = 1; p <= 17; p++) {
        snprintf(out, size, "%.*g", p, x);
        if (strtod(out, NULL) == x)
            return;
    }
}

int sim_conf_get(const sim_conf *c, const char *name, char *out, size_t size, cs_error *err)
{
    const key *k = find_key(name);
    if (k == NULL)
        return cs_errorf(err, CS_EINVAL, "unknown setting '%s' (cellsim --help lists them)", name);
    const void *at = (const char *)c + k->off;
    switch (k->type) {
    case K_U32: snprintf(out, size, "%" PRIu32, *(const uint32_t *)at); break;
    case K_U64: snprintf(out, size, "%" PRIu64, *(const uint64_t *)at); break;
    case K_SECONDS:
    case K_FRACTION:
    case K_NUMBER: shortest(*(const double *)at, out, size); break;
    case K_DIST: sim_dist_format(at, out, size); break;
    case K_CONFLICT: snprintf(out, size, "%s", cs_conflict_mode_name(*(const uint8_t *)at)); break;
    case K_COMMIT: snprintf(out, size, "%s", cs_commit_mode_name(*(const uint8_t *)at)); break;
    case K_STRATEGY: snprintf(out, size, "%s", (const char *)at); break;
    case K_RETRY: snprintf(out, size, "%s", *(const bool *)at ? "tail" : "front"); break;
    case K_BOOL: snprintf(out, size, "%s", *(const bool *)at ? "true" : "false"); break;
    case K_ARCH: snprintf(out, size, "%s", sim_arch_name(*(const uint8_t *)at)); break;
    case K_PATH: snprintf(out, size, "%s", (const char *)at); break;
    }
    return CS_OK;
}
