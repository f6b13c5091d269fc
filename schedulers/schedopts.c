/* schedopts.c — the schedulers' shared command line (see schedopts.h). */
#include "schedulers/schedopts.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cellstate/units.h"
#include "proto/proto.h"
#include "proto/servers.h"
#include "txn/txn.h"

enum {
    OPT_SERVER = 256,
    OPT_NAME,
    OPT_CONFLICT,
    OPT_COMMIT,
    OPT_T_JOB,
    OPT_T_TASK,
    OPT_MAX_ATTEMPTS,
    OPT_INSTANCE,
    OPT_INSTANCES,
    OPT_STRATEGY,
    OPT_POLICY,
    OPT_SEED,
    OPT_REPORT_MS,
    OPT_IDLE_MS,
    OPT_PARK_MS,
    OPT_TIMEOUT_MS,
    OPT_MAX_CLAIMS,
    OPT_CANDIDATES,
    OPT_TXN_PER_JOB,
    OPT_RETRY,
    OPT_RETRY_MS,
    OPT_PREEMPT,
    OPT_NO_PREEMPT,
    OPT_ONCE,
    OPT_VERBOSE,
    OPT_HELP,
    OPT_MONOLITHIC,
    OPT_MULTIPATH,
    OPT_T_JOB_SERVICE,
    OPT_T_TASK_SERVICE,
    OPT_OFFERS,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_TLS_CA,
    OPT_TOKEN_FILE,
    OPT_TLS_CRL,
    OPT_SYNC_CHUNK,
};

static const struct option long_opts[] = {
    {"server", required_argument, NULL, OPT_SERVER},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"tls-ca", required_argument, NULL, OPT_TLS_CA},
    {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
    {"tls-crl", required_argument, NULL, OPT_TLS_CRL},
    {"name", required_argument, NULL, OPT_NAME},
    {"conflict", required_argument, NULL, OPT_CONFLICT},
    {"commit", required_argument, NULL, OPT_COMMIT},
    {"t-job", required_argument, NULL, OPT_T_JOB},
    {"t-task", required_argument, NULL, OPT_T_TASK},
    {"max-attempts", required_argument, NULL, OPT_MAX_ATTEMPTS},
    {"instance", required_argument, NULL, OPT_INSTANCE},
    {"instances", required_argument, NULL, OPT_INSTANCES},
    {"strategy", required_argument, NULL, OPT_STRATEGY},
    {"policy", required_argument, NULL, OPT_POLICY},
    {"seed", required_argument, NULL, OPT_SEED},
    {"report-ms", required_argument, NULL, OPT_REPORT_MS},
    {"idle-ms", required_argument, NULL, OPT_IDLE_MS},
    {"park-ms", required_argument, NULL, OPT_PARK_MS},
    {"timeout-ms", required_argument, NULL, OPT_TIMEOUT_MS},
    {"sync-chunk", required_argument, NULL, OPT_SYNC_CHUNK},
    {"max-claims", required_argument, NULL, OPT_MAX_CLAIMS},
    {"candidates", required_argument, NULL, OPT_CANDIDATES},
    {"txn-per-job", no_argument, NULL, OPT_TXN_PER_JOB},
    {"retry", required_argument, NULL, OPT_RETRY},
    {"retry-ms", required_argument, NULL, OPT_RETRY_MS},
    {"preempt", no_argument, NULL, OPT_PREEMPT},
    {"no-preempt", no_argument, NULL, OPT_NO_PREEMPT},
    {"once", no_argument, NULL, OPT_ONCE},
    {"verbose", no_argument, NULL, OPT_VERBOSE},
    {"help", no_argument, NULL, OPT_HELP},
    {"monolithic", no_argument, NULL, OPT_MONOLITHIC},
    {"multipath", no_argument, NULL, OPT_MULTIPATH},
    {"t-job-service", required_argument, NULL, OPT_T_JOB_SERVICE},
    {"t-task-service", required_argument, NULL, OPT_T_TASK_SERVICE},
    {"offers", no_argument, NULL, OPT_OFFERS},
    {NULL, 0, NULL, 0},
};

void cs_sched_opts_usage(cs_sched_kind kind, const char *prog, FILE *f)
{
    fprintf(f,
            "usage: %s [options]\n"
            "\n"
            "The %s scheduler of a cellsched cell: keeps a local copy of the cell, places\n"
            "pending %s jobs on it and commits the placements as optimistic transactions.\n"
            "\n"
            "  --server URL[,URL...] cellstated, or the replicas of a replicated cell (default\n"
            "                        $CELL_SERVER, else tcp://127.0.0.1:7600)\n"
            "  --tls-cert FILE --tls-key FILE --tls-ca FILE  this scheduler's certificate\n"
            "                        and key and the cell's CA (PEM; else $CELLSCHED_TLS_CERT,\n"
            "                        _KEY, _CA): for, and only for, tls+tcp:// servers\n"
            "  --token-file FILE     this scheduler's token in a cell with roles from tokens\n"
            "                        (cellstated --auth-tokens; else $CELLSCHED_TOKEN_FILE)\n"
            "  --tls-crl FILE        the CA's revocation list (PEM; else $CELLSCHED_TLS_CRL):\n"
            "                        a server whose certificate it lists is refused\n"
            "  --name NAME           unique scheduler name (default %s)\n"
            "  --conflict fine|coarse        conflict detection (default fine)\n"
            "  --commit incremental|gang     commit mode (default incremental; a job's gang\n"
            "                                option always commits that job all-or-nothing)\n"
            "  --t-job S --t-task S  emulated decision time t_job + t_task x tasks (default 0)\n"
            "  --max-attempts N      attempts at one job before it is parked with a note\n"
            "                        (default %u; with --retry tail: abandoned, default 1000)\n"
            "  --retry front|tail    where a job whose claims conflicted is tried again.\n"
            "                        front (default): at its place by priority and age, in\n"
            "                        the next round; parked after --max-attempts and tried\n"
            "                        again once the cell changed, so no job is lost.\n"
            "                        tail (the Omega paper's): at the tail of the queue after\n"
            "                        --retry-ms, abandoned for good after --max-attempts\n"
            "                        (counted in jobs_abandoned)\n"
            "  --retry-ms MS         tail: the back-off before a conflicted job queues again\n"
            "                        (default 10)\n"
            "  --strategy S          spread, binpack, random or firstfit (default %s).\n"
            "                        firstfit is the Omega paper's simulator's randomized\n"
            "                        first fit: each task on the first machine that fits in\n"
            "                        a random order of its own (random with --candidates 1\n"
            "                        packs a job's equal tasks onto one machine until full)\n"
            "  --policy FILE         a Kubernetes scheduler Policy file (overrides --strategy)\n"
            "  --candidates K        feasible machines scored per task (default: the placer's)\n"
            "  --seed N              randomization seed (default: from the name and pid)\n"
            "  --report-ms MS        metrics report interval (default 1000)\n"
            "  --idle-ms MS          sync interval when idle (default 50)\n"
            "  --park-ms MS          retry a parked job after this if the cell changed (default 500)\n"
            "  --max-claims N        claims per transaction (default 5000)\n"
            "  --txn-per-job         one job per transaction, whatever the commit mode: the\n"
            "                        Omega paper's form, for comparing commit modes. Default:\n"
            "                        incremental jobs share a transaction up to 1,000 claims\n"
            "                        (one round trip and one sync for many small jobs; each\n"
            "                        counts once in txn_committed), gang jobs go alone\n"
            "  --timeout-ms MS       per request (default 10000)\n"
            "  --sync-chunk N        a full sync comes in pieces of at most N records\n"
            "                        (default 10000; cellstated may lower it); 0: in one reply\n"
            "  --offers              the cell makes Mesos-style offers (cellstated --concurrency\n"
            "                        offers): each round waits for the offer, runs under its\n"
            "                        lease and gives it back\n",
            prog, kind == CS_SCHED_BATCH ? "batch" : "service",
            kind == CS_SCHED_BATCH ? "batch" : "service",
            kind == CS_SCHED_BATCH ? "batch-<instance>" : "service",
            kind == CS_SCHED_BATCH ? 20u : 10u, kind == CS_SCHED_BATCH ? "binpack" : "spread");
    if (kind == CS_SCHED_BATCH)
        fprintf(f, "  --instance I --instances N  take the jobs with XXH3(job id) %% N == I\n"
                   "  --monolithic          one scheduler for batch and service jobs, one queue:\n"
                   "                        Omega's monolithic single-path scheduler (every job\n"
                   "                        takes --t-job + --t-task x tasks; default name\n"
                   "                        monolithic)\n"
                   "  --multipath           --monolithic with a fast path: batch jobs take --t-job\n"
                   "                        and --t-task, service jobs --t-job-service and\n"
                   "                        --t-task-service S (default 0)\n");
    else
        fprintf(f, "  --no-preempt          never evict lower-priority tasks (default: may)\n");
    fprintf(f, "  --once                place what is pending now, then exit\n"
               "  --verbose             log each transaction\n");
}

static int parse_u32(const char *flag, const char *v, uint32_t lo, uint32_t hi, uint32_t *out,
                     cs_error *err)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-' || x < lo || x > hi)
        return cs_errorf(err, CS_EINVAL, "%s: '%s' is not an integer in [%" PRIu32 ", %" PRIu32 "]",
                         flag, v, lo, hi);
    *out = (uint32_t)x;
    return CS_OK;
}

/* Seconds as a number ("0.005") or with units ("5ms", "1m"). */
static int parse_seconds(const char *flag, const char *v, double *out, cs_error *err)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (!errno && end != v && *end == '\0' && isfinite(x) && x >= 0 && x <= 86400) {
        *out = x;
        return CS_OK;
    }
    uint32_t ms;
    cs_error e2 = {0};
    if (cs_duration_parse_ms(v, &ms, &e2) == CS_OK) {
        *out = ms / 1000.0;
        return CS_OK;
    }
    return cs_errorf(err, CS_EINVAL, "%s: '%s' is not a duration (seconds, or e.g. 5ms, 1.5s)",
                     flag, v);
}

int cs_sched_opts_parse(cs_sched_kind kind, int argc, char **argv, cs_sched_opts *o, bool *help,
                        cs_error *err)
{
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->conflict = CS_CONFLICT_FINE;
    o->commit = CS_COMMIT_INCREMENTAL;
    /* Nomad retries a batch plan 2 times and a service plan 5 before it
     * blocks the evaluation; ours are cheaper, and the paper's simulator
     * gives up only after 1,000. */
    o->max_attempts = kind == CS_SCHED_BATCH ? 20 : 10;
    o->instances = 1;
    /* Services spread (Kubernetes, Marathon and Swarm do): replicas on
     * different machines survive the loss of one. Batch work packs, as
     * Nomad's default and Omega's first fit do: a spread that spreads puts
     * each of a job's tasks on a machine of its own, so that every commit
     * touches a thousand machines, wakes their agents and fills every
     * scheduler's sync — at 10,000 machines, 52,000 placements/s against
     * 135,000 packed (docs/benchmarks.md, session 6). */
    o->strategy = kind == CS_SCHED_BATCH ? "binpack" : "spread";
    o->report_ms = 1000;
    o->idle_ms = 50;
    o->park_ms = 500;
    o->timeout_ms = 10000;
    o->sync_chunk = CS_SCHED_SYNC_CHUNK_DEFAULT;
    o->max_claims = 5000;
    o->retry = CS_RETRY_FRONT;
    o->retry_ms = 10;
    o->preempt = kind == CS_SCHED_SERVICE;
    *help = false;
    bool have_instance = false, have_attempts = false, have_service_times = false;
    int rc = CS_OK;

    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":", long_opts, NULL)) != -1) {
        const char *flag = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
        switch (c) {
        case OPT_SERVER: o->server = optarg; break;
        case OPT_TLS_CERT: o->tls.cert = optarg; break;
        case OPT_TLS_KEY: o->tls.key = optarg; break;
        case OPT_TLS_CA: o->tls.ca = optarg; break;
        case OPT_TOKEN_FILE: o->token_file = optarg; break;
        case OPT_TLS_CRL: o->tls.crl = optarg; break;
        case OPT_NAME:
            if (optarg[0] == '\0' || strlen(optarg) > 255)
                return cs_errorf(err, CS_EINVAL, "--name: must be 1 to 255 bytes");
            o->name = optarg;
            break;
        case OPT_CONFLICT:
            if (cs_conflict_mode_parse(optarg, &o->conflict) != CS_OK)
                return cs_errorf(err, CS_EINVAL, "--conflict: '%s' is not fine or coarse", optarg);
            break;
        case OPT_COMMIT:
            if (cs_commit_mode_parse(optarg, &o->commit) != CS_OK)
                return cs_errorf(err, CS_EINVAL, "--commit: '%s' is not incremental or gang",
                                 optarg);
            break;
        case OPT_T_JOB: rc = parse_seconds("--t-job", optarg, &o->t_job_s, err); break;
        case OPT_T_TASK: rc = parse_seconds("--t-task", optarg, &o->t_task_s, err); break;
        case OPT_MAX_ATTEMPTS:
            rc = parse_u32("--max-attempts", optarg, 1, 1000000, &o->max_attempts, err);
            have_attempts = true;
            break;
        case OPT_INSTANCE:
            rc = parse_u32("--instance", optarg, 0, 65535, &o->instance, err);
            have_instance = true;
            break;
        case OPT_INSTANCES: rc = parse_u32("--instances", optarg, 1, 65536, &o->instances, err); break;
        case OPT_STRATEGY:
            if (strcmp(optarg, "spread") && strcmp(optarg, "binpack") && strcmp(optarg, "random") &&
                strcmp(optarg, "firstfit"))
                return cs_errorf(err, CS_EINVAL,
                                 "--strategy: '%s' is not spread, binpack, random or firstfit",
                                 optarg);
            o->strategy = optarg;
            break;
        case OPT_POLICY: o->policy_path = optarg; break;
        case OPT_SEED: {
            char *end;
            errno = 0;
            o->seed = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-')
                return cs_errorf(err, CS_EINVAL, "--seed: '%s' is not an unsigned integer", optarg);
            break;
        }
        case OPT_REPORT_MS: rc = parse_u32("--report-ms", optarg, 10, 3600000, &o->report_ms, err); break;
        case OPT_IDLE_MS: rc = parse_u32("--idle-ms", optarg, 1, 60000, &o->idle_ms, err); break;
        case OPT_PARK_MS: rc = parse_u32("--park-ms", optarg, 0, 3600000, &o->park_ms, err); break;
        case OPT_TIMEOUT_MS: rc = parse_u32("--timeout-ms", optarg, 10, 3600000, &o->timeout_ms, err); break;
        case OPT_SYNC_CHUNK: rc = parse_u32("--sync-chunk", optarg, 0, UINT32_MAX, &o->sync_chunk, err); break;
        case OPT_MAX_CLAIMS:
            rc = parse_u32("--max-claims", optarg, 1, CS_TXN_MAX_ITEMS, &o->max_claims, err);
            break;
        case OPT_CANDIDATES: rc = parse_u32("--candidates", optarg, 1, 1000000, &o->candidates, err); break;
        case OPT_TXN_PER_JOB: o->txn_per_job = true; break;
        case OPT_RETRY:
            if (strcmp(optarg, "front") == 0)
                o->retry = CS_RETRY_FRONT;
            else if (strcmp(optarg, "tail") == 0)
                o->retry = CS_RETRY_TAIL;
            else
                return cs_errorf(err, CS_EINVAL, "--retry: '%s' is not front or tail", optarg);
            break;
        case OPT_RETRY_MS:
            rc = parse_u32("--retry-ms", optarg, 0, 3600000, &o->retry_ms, err);
            break;
        case OPT_PREEMPT: o->preempt = true; break;
        case OPT_NO_PREEMPT: o->preempt = false; break;
        case OPT_ONCE: o->once = true; break;
        case OPT_VERBOSE: o->verbose = true; break;
        case OPT_MONOLITHIC: o->monolithic = true; break;
        case OPT_MULTIPATH: o->monolithic = o->per_kind_times = true; break;
        case OPT_T_JOB_SERVICE:
            rc = parse_seconds("--t-job-service", optarg, &o->t_job_service_s, err);
            have_service_times = true;
            break;
        case OPT_T_TASK_SERVICE:
            rc = parse_seconds("--t-task-service", optarg, &o->t_task_service_s, err);
            have_service_times = true;
            break;
        case OPT_OFFERS: o->offers = true; break;
        case OPT_HELP: *help = true; return CS_OK;
        case ':': return cs_errorf(err, CS_EINVAL, "%s: needs a value", flag);
        default: return cs_errorf(err, CS_EINVAL, "unknown option '%s'", flag);
        }
        if (rc != CS_OK)
            return rc;
    }
    if (optind < argc)
        return cs_errorf(err, CS_EINVAL, "unexpected argument '%s'", argv[optind]);
    if (kind == CS_SCHED_SERVICE && (have_instance || o->instances != 1))
        return cs_errorf(err, CS_EINVAL,
                         "--instance/--instances: only the batch scheduler shares jobs by hashing");
    /* The paper's simulator abandons a job after 1,000 attempts. */
    if (o->retry == CS_RETRY_TAIL && !have_attempts)
        o->max_attempts = 1000;
    if (o->instance >= o->instances)
        return cs_errorf(err, CS_EINVAL, "--instance %" PRIu32 " must be below --instances %" PRIu32,
                         o->instance, o->instances);
    if (kind == CS_SCHED_SERVICE && o->monolithic)
        return cs_errorf(err, CS_EINVAL,
                         "--monolithic/--multipath: the monolithic scheduler is cell-batch "
                         "--monolithic");
    if (have_service_times && !o->per_kind_times)
        return cs_errorf(err, CS_EINVAL,
                         "--t-job-service/--t-task-service: only with --multipath (one scheduler "
                         "with a decision time per kind)");
    if (kind == CS_SCHED_BATCH && o->preempt)
        return cs_errorf(err, CS_EINVAL, "--preempt: only the service scheduler preempts");
    /* The list is checked here, so that a bad entry is a bad command line
     * (named, exit 2) rather than a scheduler that starts and cannot dial. */
    cs_servers servers;
    CS_TRY(cs_servers_from(o->server, &servers, &o->server, err));
    /* The certificates' paths only; sched.c reads the files. A TLS URL
     * without them is a bad command line too. */
    cs_tls_files_env(&o->tls);
    if (o->tls.cert == NULL && o->tls.key == NULL && o->tls.ca == NULL)
        CS_TRY(cs_servers_check_tls(&servers, NULL, err));
    if (o->name == NULL) {
        if (o->monolithic)
            snprintf(o->name_buf, sizeof o->name_buf, "monolithic");
        else if (kind == CS_SCHED_BATCH)
            snprintf(o->name_buf, sizeof o->name_buf, "batch-%" PRIu32, o->instance);
        else
            snprintf(o->name_buf, sizeof o->name_buf, "service");
        o->name = o->name_buf;
    }
    return CS_OK;
}
