/* cellbench_place.c — `cellbench place` (see cellbench_place.h).
 *
 * For each number of schedulers N, on a fresh cell:
 *   1. starts a real cellstated (temporary directory, free port of
 *      127.0.0.1) and S `cell-agent --simulate` processes that register the
 *      M machines between them; each process gives its machines one rack
 *      (r<p>) and one zone (z<p mod 2>), so that constraints have something
 *      to choose between;
 *   2. submits every job first — J jobs of T tasks, PCT% of them constrained
 *      (zone == z<k>, or rack != r<k>) — through the wire, timed apart;
 *   3. starts N `cell-batch --instance I --instances N` (and, with
 *      --service-scheduler, one cell-service for the service jobs of the
 *      mix), each with the schedulers' knobs given (--conflict, --commit,
 *      --t-job, --t-task, --txn-per-job, --retry, --strategy: checked here
 *      by the schedulers' own parser), and measures from
 *      that moment until every task has been seen placed (or --timeout):
 *      a watcher (cellbench_watch.h) follows the cell with delta `sync`s
 *      in the compact form every WATCH_MS and notes when each task is
 *      first seen out of pending;
 *   4. stops the schedulers (each sends a last `sched.report` as it exits),
 *      reads their metrics from `stats`, stops everything and removes the
 *      directory.
 *
 * With --architecture (issue 15 §7) the same run compares Omega's
 * architectures on real processes: omega (the above), monolithic and
 * multipath (one cell-batch --monolithic / --multipath for every job,
 * --schedulers 1), mesos (cellstated --concurrency offers, and every
 * scheduler with --offers). All but omega have service jobs in the mix.
 *
 * With --replicas N the cell state is N cellstated members of one
 * replicated cell (cellbench_replicas.h), each with its own data directory:
 * the schedulers and the watcher talk to the leader, the simulators to the
 * followers in turn (or to the leader with --agents-at leader), so that
 * every agent's report is a forwarded write and every poll a follower
 * read, as agents spread over a cell's replicas would make them. Each is
 * given every member's URL, that one first, and fails over to the others
 * (proto/client.h) when it stops answering.
 *
 * Tasks run --task-duration (default ten minutes) on their simulated
 * machines, so that the cell never drains while it is measured, and the
 * machines have room for every task at once (capacity_slots), or the run
 * could never end.
 *
 * docs/benchmarks.md defines the figures and records measured ones.
 */
#include "tools/cellbench_place.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proto/client.h"
#include "spec/jobspec.h"
#include "proto/msg.h"
#include "proto/proto.h"
#include "proto/sync.h"
#include "schedulers/schedopts.h"
#include "txn/txn.h"
#include "tools/cellbench_daemon.h"
#include "tools/cellbench_replicas.h"
#include "tools/cellbench_util.h"
#include "tools/cellbench_watch.h"

const char cb_place_usage[] =
    "options of place:\n"
    "  --machines M        simulated machines (default 10000)\n"
    "  --jobs J            batch jobs (default 100; 1000 is C1M, see\n"
    "                      docs/benchmarks.md for what that costs here)\n"
    "  --tasks T           tasks per job (default 1000)\n"
    "  --schedulers LIST   numbers of cell-batch processes, one fresh cell each\n"
    "                      (default 1,2,4,8)\n"
    "  --constrained PCT   percent of jobs with a constraint: zone == z<k> or\n"
    "                      rack != r<k> (default 10)\n"
    "  --simulators S      cell-agent --simulate processes, one rack each, zones\n"
    "                      alternating (default 4)\n"
    "  --task-duration MS  how long each task runs (default 600000)\n"
    "  --timeout S         give up on a scheduler count after S seconds of\n"
    "                      placing (default 600)\n"
    "  --heartbeat-timeout MS  cellstated's --heartbeat-timeout (default 600000)\n"
    "  --seed N            seed of the schedulers and simulators (default 1)\n"
    "  --strategy S        the schedulers' --strategy: spread, binpack, random or\n"
    "                      firstfit (default: each scheduler's own: binpack for\n"
    "                      cell-batch, spread for cell-service)\n"
    "The schedulers' concurrency-control knobs, passed to every scheduler started\n"
    "(as cell-batch --help describes them), so that a live run is configured as a\n"
    "simulated one (cellsim):\n"
    "  --conflict fine|coarse       conflict detection (default fine)\n"
    "  --commit incremental|gang    commit mode (default incremental)\n"
    "  --t-job S --t-task S         emulated decision time t_job + t_task x tasks\n"
    "                               (default 0)\n"
    "  --txn-per-job                one job per transaction (the paper's form)\n"
    "  --retry front|tail           where a conflicted job is retried (default front;\n"
    "                               tail abandons a job after 1,000 attempts, and a\n"
    "                               run with an abandoned job ends at --timeout)\n"
    "  --architecture A    omega (default): N cell-batch sharing the batch jobs by\n"
    "                      hash (and cell-service with --service-scheduler), Omega's\n"
    "                      shared state; monolithic: one cell-batch --monolithic for\n"
    "                      every job, single-path (every job takes the service time,\n"
    "                      --t-job-service if given, else --t-job); multipath: one\n"
    "                      cell-batch --multipath (service jobs take --t-job-service);\n"
    "                      mesos: cellstated --concurrency offers, N cell-batch and one\n"
    "                      cell-service, each with --offers. Every architecture but\n"
    "                      omega has service jobs in the mix (--service-pct); the\n"
    "                      monolithic ones run one scheduler (--schedulers 1)\n"
    "  --t-job-service S --t-task-service S  the service jobs' decision time: the\n"
    "                      cell-service's --t-job/--t-task (omega, mesos), the\n"
    "                      multipath scheduler's --t-job-service/--t-task-service, or\n"
    "                      every job's (monolithic), as cellsim takes them\n"
    "  --service-scheduler  one cell-service beside the cell-batch processes, and\n"
    "                      service jobs in the mix: --service-pct of the jobs\n"
    "  --service-pct PCT   with --service-scheduler: percent of the jobs that are\n"
    "                      service jobs, spread evenly from the last (default 10)\n"
    "  --nosync            start cellstated with --nosync (default: fsync per commit;\n"
    "                      with --replicas, the Raft log fsyncs whatever this says)\n"
    "  --replicas N        N cellstated members of one replicated cell (1 to 5),\n"
    "                      each its own data directory (default: one plain\n"
    "                      cellstated, not replicated)\n"
    "  --agents-at WHERE   with --replicas: the simulators talk to the\n"
    "                      `followers` in turn (default) or to the `leader`\n"
    "  --snapshot-threshold N  with --replicas: the members' --snapshot-threshold\n"
    "                      (default: cellstated's own)\n"
    "  --progress          each second, placed tasks and the cell version on stderr\n"
    "  --json              end the output with one line of JSON\n";

/* ---- options ----------------------------------------------------------------- */

#define MAX_COUNTS 16

typedef struct place_opts {
    uint32_t machines, jobs, tasks, constrained, simulators, task_duration_ms, timeout_s;
    uint32_t heartbeat_timeout_ms;
    uint32_t replicas;  /* 0: one plain cellstated */
    uint32_t snapshot_threshold; /* 0: cellstated's default */
    bool agents_at_leader;
    uint32_t counts[MAX_COUNTS]; /* scheduler counts, in the order given */
    uint32_t ncounts;
    uint64_t seed;
    const char *strategy; /* the schedulers' --strategy; NULL: each one's default */
    /* The schedulers' knobs as given (NULL: the schedulers' default), in
     * the order of sched_knobs, and what cell-batch makes of them. */
    const char *knob[5];
    bool txn_per_job;
    cs_sched_opts sched; /* parsed: only the knobs are read */
    bool service;        /* service jobs in the mix: --service-scheduler, or not omega */
    uint8_t arch;        /* place_arch */
    const char *t_job_service, *t_task_service; /* as given; NULL: not */
    cs_sched_opts svc;   /* what the service jobs' scheduler makes of its flags */
    uint32_t service_pct;
    bool nosync, json, progress;
} place_opts;

/* The architectures of Omega's comparison (§3, §4), each with real
 * processes (docs/research.md, "Live modes"). */
typedef enum place_arch {
    ARCH_OMEGA = 0,
    ARCH_MONOLITHIC = 1,
    ARCH_MULTIPATH = 2,
    ARCH_MESOS = 3,
} place_arch;

static const char *const arch_names[] = {"omega", "monolithic", "multipath", "mesos"};

/* Which scheduler a command line is for: a cell-batch sharing the batch
 * jobs, the cell-service, or the one monolithic cell-batch. */
typedef enum sched_role { ROLE_BATCH, ROLE_SERVICE, ROLE_MONO } sched_role;

/* The schedulers' flags `place` passes on, with a value each. */
static const char *const sched_knobs[] = {"--conflict", "--commit", "--t-job", "--t-task",
                                          "--retry"};
#define NKNOBS (sizeof sched_knobs / sizeof *sched_knobs)

/* The knobs given, as the arguments of a scheduler of `role`, into
 * out[0..); the count. out needs 2 x NKNOBS + 8 slots; the strings are
 * borrowed from `o` and static. The service jobs' decision time is the
 * cell-service's --t-job/--t-task, or the multipath scheduler's
 * --t-job-service/--t-task-service. */
static size_t knob_args(const place_opts *o, sched_role role, char **out)
{
    static char f_txn[] = "--txn-per-job", f_strategy[] = "--strategy", f_offers[] = "--offers",
                f_mono[] = "--monolithic", f_multi[] = "--multipath",
                f_tjs[] = "--t-job-service", f_tts[] = "--t-task-service";
    size_t n = 0;
    for (size_t k = 0; k < NKNOBS; k++) {
        const char *v = o->knob[k];
        /* Single-path: every job takes the service decision time, as
         * cellsim's monolithic mode (docs/research.md), when one is given. */
        bool svc = role == ROLE_SERVICE || (role == ROLE_MONO && o->arch == ARCH_MONOLITHIC);
        if (svc && k == 2 && o->t_job_service != NULL)
            v = o->t_job_service;
        if (svc && k == 3 && o->t_task_service != NULL)
            v = o->t_task_service;
        if (v != NULL) {
            out[n++] = (char *)sched_knobs[k];
            out[n++] = (char *)v;
        }
    }
    if (o->txn_per_job)
        out[n++] = f_txn;
    if (o->strategy != NULL) {
        out[n++] = f_strategy;
        out[n++] = (char *)o->strategy;
    }
    if (o->arch == ARCH_MESOS)
        out[n++] = f_offers;
    if (role == ROLE_MONO)
        out[n++] = o->arch == ARCH_MULTIPATH ? f_multi : f_mono;
    bool multi = role == ROLE_MONO && o->arch == ARCH_MULTIPATH;
    if (multi && o->t_job_service != NULL) {
        out[n++] = f_tjs;
        out[n++] = (char *)o->t_job_service;
    }
    if (multi && o->t_task_service != NULL) {
        out[n++] = f_tts;
        out[n++] = (char *)o->t_task_service;
    }
    return n;
}

/* Check the knobs as the schedulers will (their parser, their messages),
 * so that a bad one fails here and not in every scheduler started. */
static int check_knobs(place_opts *o, sched_role role, cs_error *err)
{
    static char prog[] = "cell-batch", f_server[] = "--server", url[] = "tcp://127.0.0.1:1";
    char *argv[2 * NKNOBS + 16] = {prog, f_server, url};
    int argc = 3 + (int)knob_args(o, role, argv + 3);
    bool help;
    cs_sched_opts so;
    int rc = cs_sched_opts_parse(role == ROLE_SERVICE ? CS_SCHED_SERVICE : CS_SCHED_BATCH, argc,
                                 argv, &so, &help, err);
    if (rc == CS_OK && role != ROLE_SERVICE)
        o->sched = so;
    if (rc == CS_OK && (role == ROLE_SERVICE || o->arch == ARCH_MULTIPATH))
        o->svc = so;
    return rc;
}

/* Every task lives in the watcher's arrays and in each scheduler's copy. */
#define PLACE_TASKS_MAX 4000000u

/* What each task asks for: small, so that machines of a few cores hold a
 * hundred of them. */
#define TASK_CPU_MC 10
#define TASK_MEM_MIB 1

/* How often the watcher asks what changed: the resolution of the elapsed
 * time and of the wait figures. */
#define WATCH_MS 50

/* "1,2,4,8": each in [1, 64]. */
static int parse_counts(const char *flag, const char *s, place_opts *o, cs_error *err)
{
    o->ncounts = 0;
    const char *p = s;
    for (;;) {
        char item[16];
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof item)
            return cs_errorf(err, CS_EINVAL, "%s: '%s' is not a comma-separated list of counts",
                             flag, s);
        if (o->ncounts == MAX_COUNTS)
            return cs_errorf(err, CS_EINVAL, "%s: more than %d counts", flag, MAX_COUNTS);
        memcpy(item, p, len);
        item[len] = '\0';
        int rc = cb_parse_u32(flag, item, 1, 64, &o->counts[o->ncounts], err);
        if (rc != CS_OK)
            return rc;
        o->ncounts++;
        if (p[len] == '\0')
            return CS_OK;
        p += len + 1;
    }
}

static int place_parse(int argc, char **argv, place_opts *o, cs_error *err)
{
    *o = (place_opts){
        .machines = 10000,
        .jobs = 100,
        .tasks = 1000,
        .constrained = 10,
        .simulators = 4,
        .task_duration_ms = 600000,
        .timeout_s = 600,
        .heartbeat_timeout_ms = 600000,
        .counts = {1, 2, 4, 8},
        .ncounts = 4,
        .seed = 1,
        .service_pct = 10,
    };
    bool have_pct = false, have_counts = false;
    static const char *const switches[] = {"--help",        "--nosync",           "--json",
                                           "--progress",    "--txn-per-job",      "--service-scheduler",
                                           NULL};
    static const char *const valued[] = {"--machines",   "--jobs",          "--tasks",
                                         "--schedulers", "--constrained",   "--simulators",
                                         "--timeout",    "--task-duration", "--seed",
                                         "--heartbeat-timeout", "--strategy",
                                         "--replicas",   "--agents-at",
                                         "--snapshot-threshold", "--conflict",
                                         "--commit",     "--t-job",         "--t-task",
                                         "--retry",      "--service-pct",   "--architecture",
                                         "--t-job-service", "--t-task-service", NULL};
    for (int i = 1; i < argc;) {
        cb_opt opt;
        if (cb_opt_next(argc, argv, &i, switches, valued, &opt, err) != CS_OK)
            return CB_PARSE_BAD;
        const char *f = opt.flag, *v = opt.val;
        int rc = CS_OK;
        if (strcmp(f, "--help") == 0)
            return CB_PARSE_HELP;
        else if (strcmp(f, "--nosync") == 0)
            o->nosync = true;
        else if (strcmp(f, "--json") == 0)
            o->json = true;
        else if (strcmp(f, "--progress") == 0)
            o->progress = true;
        else if (strcmp(f, "--txn-per-job") == 0)
            o->txn_per_job = true;
        else if (strcmp(f, "--service-scheduler") == 0)
            o->service = true;
        else if (strcmp(f, "--service-pct") == 0) {
            rc = cb_parse_u32(f, v, 1, 100, &o->service_pct, err);
            have_pct = true;
        } else if (strcmp(f, "--conflict") == 0)
            o->knob[0] = v;
        else if (strcmp(f, "--commit") == 0)
            o->knob[1] = v;
        else if (strcmp(f, "--t-job") == 0)
            o->knob[2] = v;
        else if (strcmp(f, "--t-task") == 0)
            o->knob[3] = v;
        else if (strcmp(f, "--retry") == 0)
            o->knob[4] = v;
        else if (strcmp(f, "--machines") == 0)
            rc = cb_parse_u32(f, v, 1, 100000, &o->machines, err);
        else if (strcmp(f, "--jobs") == 0)
            rc = cb_parse_u32(f, v, 1, 100000, &o->jobs, err);
        else if (strcmp(f, "--tasks") == 0)
            rc = cb_parse_u32(f, v, 1, 100000, &o->tasks, err);
        else if (strcmp(f, "--schedulers") == 0) {
            rc = parse_counts(f, v, o, err);
            have_counts = true;
        } else if (strcmp(f, "--architecture") == 0) {
            size_t a = 0;
            while (a < 4 && strcmp(v, arch_names[a]) != 0)
                a++;
            if (a == 4)
                rc = cs_errorf(err, CS_EINVAL,
                               "--architecture: '%s' is not omega, monolithic, multipath or mesos",
                               v);
            o->arch = (uint8_t)a;
        } else if (strcmp(f, "--t-job-service") == 0)
            o->t_job_service = v;
        else if (strcmp(f, "--t-task-service") == 0)
            o->t_task_service = v;
        else if (strcmp(f, "--constrained") == 0)
            rc = cb_parse_u32(f, v, 0, 100, &o->constrained, err);
        else if (strcmp(f, "--simulators") == 0)
            rc = cb_parse_u32(f, v, 1, 64, &o->simulators, err);
        else if (strcmp(f, "--timeout") == 0)
            rc = cb_parse_u32(f, v, 1, 86400, &o->timeout_s, err);
        else if (strcmp(f, "--task-duration") == 0)
            rc = cb_parse_u32(f, v, 1, UINT32_MAX, &o->task_duration_ms, err);
        else if (strcmp(f, "--heartbeat-timeout") == 0)
            rc = cb_parse_u32(f, v, 1, 86400000, &o->heartbeat_timeout_ms, err);
        else if (strcmp(f, "--replicas") == 0)
            rc = cb_parse_u32(f, v, 1, CB_REPLICAS_MAX, &o->replicas, err);
        else if (strcmp(f, "--snapshot-threshold") == 0)
            rc = cb_parse_u32(f, v, 1, UINT32_MAX, &o->snapshot_threshold, err);
        else if (strcmp(f, "--agents-at") == 0) {
            if (strcmp(v, "leader") != 0 && strcmp(v, "followers") != 0)
                rc = cs_errorf(err, CS_EINVAL, "--agents-at: '%s' is not leader or followers", v);
            o->agents_at_leader = strcmp(v, "leader") == 0;
        } else if (strcmp(f, "--strategy") == 0) {
            o->strategy = v; /* checked with the other knobs, as the schedulers check it */
        } else
            rc = cb_parse_u64(f, v, 0, UINT64_MAX, &o->seed, err);
        if (rc != CS_OK)
            return CB_PARSE_BAD;
    }
    if ((uint64_t)o->jobs * o->tasks > PLACE_TASKS_MAX) {
        cs_errorf(err, CS_EINVAL, "--jobs %u x --tasks %u is more than %u tasks", o->jobs, o->tasks,
                  PLACE_TASKS_MAX);
        return CB_PARSE_BAD;
    }
    bool mono = o->arch == ARCH_MONOLITHIC || o->arch == ARCH_MULTIPATH;
    if (o->arch != ARCH_OMEGA)
        o->service = true; /* the paper's comparison is of batch and service jobs together */
    if (have_pct && !o->service) {
        cs_errorf(err, CS_EINVAL, "--service-pct: only with --service-scheduler (or an "
                                  "--architecture other than omega)");
        return CB_PARSE_BAD;
    }
    if ((o->t_job_service != NULL || o->t_task_service != NULL) && !o->service) {
        cs_errorf(err, CS_EINVAL,
                  "--t-job-service/--t-task-service: only with service jobs in the mix "
                  "(--service-scheduler, or an --architecture other than omega)");
        return CB_PARSE_BAD;
    }
    if (mono && have_counts && (o->ncounts != 1 || o->counts[0] != 1)) {
        cs_errorf(err, CS_EINVAL, "--schedulers: --architecture %s runs one scheduler",
                  arch_names[o->arch]);
        return CB_PARSE_BAD;
    }
    if (mono) {
        o->counts[0] = 1;
        o->ncounts = 1;
    }
    if (check_knobs(o, mono ? ROLE_MONO : ROLE_BATCH, err) != CS_OK ||
        (o->service && !mono && check_knobs(o, ROLE_SERVICE, err) != CS_OK))
        return CB_PARSE_BAD;
    if (o->simulators > o->machines) {
        cs_errorf(err, CS_EINVAL, "--simulators %u is more than --machines %u", o->simulators,
                  o->machines);
        return CB_PARSE_BAD;
    }
    return CB_PARSE_RUN;
}

/* Task slots per machine: every task must fit at once, or the run never
 * ends. Four times the average, because constrained jobs crowd onto the
 * machines of one zone (half the cell) and the spread is not perfect. */
static uint64_t capacity_slots(const place_opts *o)
{
    uint64_t total = (uint64_t)o->jobs * o->tasks;
    return (total + o->machines - 1) / o->machines * 4 + 16;
}

/* Zones alternate between simulator processes: two when there are two. */
static uint32_t zones(const place_opts *o) { return o->simulators >= 2 ? 2 : 1; }

/* Whether job k carries a constraint: PCT% of the jobs, spread evenly. */
static bool constrained(const place_opts *o, uint32_t k)
{
    return (uint64_t)(k + 1) * o->constrained / 100 > (uint64_t)k * o->constrained / 100;
}

/* Whether job k is a service job (--service-scheduler): --service-pct of
 * the jobs, spread evenly, counted from the last so that they are not the
 * constrained ones (counted from the first) by construction. */
static bool service_job(const place_opts *o, uint32_t k)
{
    uint32_t r = o->jobs - 1 - k;
    return o->service &&
           (uint64_t)(r + 1) * o->service_pct / 100 > (uint64_t)r * o->service_pct / 100;
}

/* ---- SIGINT and SIGTERM ---------------------------------------------------------- */

/* Set by the handler; every wait of the run looks at it and unwinds. The
 * one piece of mutable state outside main, because a signal handler can
 * reach nothing else. */
static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void sleep_ms(uint32_t ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL); /* a signal ends it early: the caller looks at `interrupted` */
}

/* ---- child processes ------------------------------------------------------------- */

typedef struct child {
    cb_daemon d; /* pid, and the log its output goes to */
    char name[32];
} child;

/* A cell of one run: the server (or the replicas), the simulators, the
 * schedulers. */
typedef struct cell {
    const place_opts *o;
    char bindir[4096], dir[300];
    cb_daemon server;  /* without --replicas */
    cb_replicas reps;  /* with --replicas; reps.n is 0 otherwise */
    /* Where the schedulers and the watcher go: the server, or every member
     * with the leader first (they fail over to the others). */
    char url[CB_REPLICAS_MAX * 64];
    char agent_urls[CB_REPLICAS_MAX][CB_REPLICAS_MAX * 64]; /* simulator p: [p % n] */
    child *sims, *scheds;
    uint32_t nsims, nscheds;
    cs_client *client;
    cs_id *jobs; /* job ids in submission order: consecutive in a fresh cell */
    cb_watch watch;
    msgpack_sbuffer buf; /* the watcher's requests */
} cell;

/* Print the last lines of a child's log, which is about to be removed with
 * its directory: they say why it died. */
static void log_tail(const char *path)
{
    if (access(path, F_OK) != 0)
        return;
    char buf[2048];
    size_t n = cb_log_tail(path, buf, sizeof buf);
    fprintf(stderr, "--- end of %s ---\n%s%s", path, buf, n && buf[n - 1] != '\n' ? "\n" : "");
}

/* Start child number *n of `list`, named `name`, logging into the run's
 * directory; *n counts it once it runs. */
static int spawn(const cell *c, child *list, uint32_t *n, const char *name, char **argv,
                 cs_error *err)
{
    child *ch = &list[*n];
    snprintf(ch->name, sizeof ch->name, "%s", name);
    snprintf(ch->d.log, sizeof ch->d.log, "%s/%s.log", c->dir, ch->name);
    int rc = cb_spawn(argv, ch->d.log, &ch->d.pid, err);
    if (rc != CS_OK)
        return cs_error_wrap(err, rc, "starting %s", ch->name);
    (*n)++;
    return CS_OK;
}

/* CS_EIO naming the first child that has exited, after printing its log. */
static int check_alive(child *ch, uint32_t n, cs_error *err)
{
    for (uint32_t i = 0; i < n; i++) {
        int status;
        if (ch[i].d.pid <= 0 || waitpid(ch[i].d.pid, &status, WNOHANG) != ch[i].d.pid)
            continue;
        ch[i].d.pid = 0;
        log_tail(ch[i].d.log);
        return cs_errorf(err, CS_EIO, "%s exited with status %d", ch[i].name, status);
    }
    return CS_OK;
}

static int check_cell(cell *c, cs_error *err)
{
    if (interrupted)
        return cs_errorf(err, CS_EIO, "interrupted");
    int rc = check_alive(c->sims, c->nsims, err);
    if (rc == CS_OK)
        rc = check_alive(c->scheds, c->nscheds, err);
    if (rc == CS_OK && c->server.pid > 0 && waitpid(c->server.pid, NULL, WNOHANG) == c->server.pid) {
        c->server.pid = 0;
        log_tail(c->server.log);
        rc = cs_errorf(err, CS_EIO, "cellstated exited");
    }
    if (rc == CS_OK && (rc = cb_replicas_check(&c->reps, err)) != CS_OK)
        for (uint32_t i = 0; i < c->reps.n; i++)
            if (c->reps.d[i].pid == 0)
                log_tail(c->reps.d[i].log);
    return rc;
}

/* CPU seconds of the cell state's processes: one server or every replica. */
static double server_cpu_s(const cell *c)
{
    return c->reps.n ? cb_replicas_cpu_s(&c->reps) : cb_daemon_cpu_s(&c->server);
}

/* The log that says why the cell state failed: the server's or the leader's. */
static const char *server_log(const cell *c)
{
    return c->reps.n ? c->reps.d[c->reps.leader].log : c->server.log;
}

/* Where simulator p's machines talk to the cell: the server, or every
 * member with a follower (taken in turn) or the leader first. */
static const char *agent_url(const cell *c, uint32_t p)
{
    if (c->reps.n == 0)
        return c->server.url;
    return c->agent_urls[p % c->reps.n];
}

static void stop_all(child *ch, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (cb_daemon_stop(&ch[i].d, 10000) == -1)
            fprintf(stderr, "cellbench place: %s had to be killed\n", ch[i].name);
}

static double cpu_of(const child *ch, uint32_t n)
{
    double s = 0;
    for (uint32_t i = 0; i < n; i++)
        s += cb_daemon_cpu_s(&ch[i].d);
    return s;
}

/* This process's CPU time, read as the children's is. */
static double self_cpu_s(void)
{
    cb_daemon self = {.pid = getpid()};
    return cb_daemon_cpu_s(&self);
}

/* ---- the cell's processes -------------------------------------------------------- */

static int start_server(cell *c, cs_error *err)
{
    char bin[4200], workers[32], data[320], log[320], hb[16];
    snprintf(bin, sizeof bin, "%s/cellstated", c->bindir);
    snprintf(hb, sizeof hb, "%u", c->o->heartbeat_timeout_ms);
    snprintf(data, sizeof data, "%s/data", c->dir);
    snprintf(log, sizeof log, "%s/cellstated.log", c->dir);
    /* One worker per parked long poll, and room for everything else. */
    snprintf(workers, sizeof workers, "%u", c->o->machines + 1024);
    char f_data[] = "--data", f_workers[] = "--workers", f_hb[] = "--heartbeat-timeout",
         f_nosync[] = "--nosync", f_cc[] = "--concurrency", offers[] = "offers";
    /* Ten minutes of heartbeat timeout by default: no machine fails in this
     * benchmark, and a machine marked down sends its tasks back to pending
     * in the middle of the measurement (at C1M scale, before heartbeats
     * were answered from memory and judged against the server's progress,
     * 20 machines were). --heartbeat-timeout 10000 checks they hold. */
    if (c->o->replicas > 0) {
        /* The cluster file gives each member its data directory, listen and
         * raft address; the rest is the same as for one server. */
        char f_snap[] = "--snapshot-threshold", snap[16];
        snprintf(snap, sizeof snap, "%u", c->o->snapshot_threshold);
        char *extra[10] = {f_workers, workers, f_hb, hb};
        size_t n = 4;
        if (c->o->arch == ARCH_MESOS) {
            extra[n++] = f_cc;
            extra[n++] = offers;
        }
        if (c->o->nosync)
            extra[n++] = f_nosync;
        if (c->o->snapshot_threshold > 0) {
            extra[n++] = f_snap;
            extra[n++] = snap;
        }
        int rc = cb_replicas_start(&c->reps, bin, c->dir, c->o->replicas, extra, 60000, err);
        if (rc == CS_OK)
            rc = cb_replicas_urls(&c->reps, c->reps.leader, c->url, sizeof c->url, err);
        for (uint32_t p = 0; rc == CS_OK && p < c->reps.n; p++) {
            uint32_t first = c->o->agents_at_leader ? c->reps.leader
                                                    : cb_replicas_follower(&c->reps, p);
            rc = cb_replicas_urls(&c->reps, first, c->agent_urls[p], sizeof c->agent_urls[p],
                                  err);
        }
        return rc;
    }
    /* mesos: the cell makes offers (server/offers.h). */
    char *argv[12] = {bin, f_data, data, f_workers, workers, f_hb, hb};
    size_t a = 7;
    if (c->o->nosync)
        argv[a++] = f_nosync;
    if (c->o->arch == ARCH_MESOS) {
        argv[a++] = f_cc;
        argv[a++] = offers;
    }
    argv[a] = NULL;
    int rc = cb_daemon_start(&c->server, argv, log, 30000, err);
    snprintf(c->url, sizeof c->url, "%s", c->server.url);
    return rc;
}

/* Simulator p: its share of the machines, rack r<p>, zone z<p mod zones>. */
static int start_sims(cell *c, cs_error *err)
{
    const place_opts *o = c->o;
    uint64_t slots = capacity_slots(o);
    char bin[4200], n[16], prefix[16], dur[16], seed[24], cpu[24], mem[24], rack[24], zone[24];
    snprintf(bin, sizeof bin, "%s/cell-agent", c->bindir);
    snprintf(dur, sizeof dur, "%u", o->task_duration_ms);
    snprintf(cpu, sizeof cpu, "%" PRIu64, (slots * TASK_CPU_MC + 999) / 1000);
    snprintf(mem, sizeof mem, "%" PRIu64, slots * TASK_MEM_MIB);
    char f_server[] = "--server", f_sim[] = "--simulate", f_prefix[] = "--sim-prefix",
         f_dur[] = "--sim-duration", f_seed[] = "--seed", f_cpu[] = "--cpu", f_mem[] = "--mem",
         f_attr[] = "--attr";
    for (uint32_t p = 0; p < o->simulators; p++) {
        char name[32];
        snprintf(name, sizeof name, "cell-agent-%u", p);
        snprintf(n, sizeof n, "%u", o->machines / o->simulators + (p < o->machines % o->simulators));
        snprintf(prefix, sizeof prefix, "s%u-", p);
        snprintf(seed, sizeof seed, "%" PRIu64, o->seed + p);
        snprintf(rack, sizeof rack, "rack=r%u", p);
        snprintf(zone, sizeof zone, "zone=z%u", p % zones(o));
        char *argv[] = {bin,  f_server, (char *)agent_url(c, p), f_sim,  n,      f_prefix, prefix,
                        f_dur, dur,     f_seed,        seed,   f_cpu,  cpu,      f_mem,
                        mem,   f_attr,  rack,          f_attr, zone,   NULL};
        int rc = spawn(c, c->sims, &c->nsims, name, argv, err);
        if (rc != CS_OK)
            return rc;
    }
    return CS_OK;
}

/* N cell-batch processes sharing the batch jobs by hash and, with service
 * jobs in the mix, one cell-service; each with the knobs given (and
 * --offers under mesos). The monolithic architectures: one cell-batch
 * --monolithic or --multipath for every job. */
static int start_scheds(cell *c, uint32_t n, cs_error *err)
{
    char bin[4200], inst[16], insts[16], seed[24];
    snprintf(insts, sizeof insts, "%u", n);
    char f_server[] = "--server", f_inst[] = "--instance", f_insts[] = "--instances",
         f_seed[] = "--seed", f_report[] = "--report-ms", report[] = "500";
    bool mono = c->o->arch == ARCH_MONOLITHIC || c->o->arch == ARCH_MULTIPATH;
    uint32_t total = mono ? 1 : n + c->o->service;
    for (uint32_t i = 0; i < total; i++) {
        sched_role role = mono ? ROLE_MONO : i == n ? ROLE_SERVICE : ROLE_BATCH;
        bool service = role == ROLE_SERVICE;
        char name[32];
        if (mono)
            snprintf(name, sizeof name, "cell-batch-%s", arch_names[c->o->arch]);
        else
            snprintf(name, sizeof name, service ? "cell-service" : "cell-batch-%u", i);
        snprintf(bin, sizeof bin, "%s/%s", c->bindir, service ? "cell-service" : "cell-batch");
        snprintf(inst, sizeof inst, "%u", i);
        snprintf(seed, sizeof seed, "%" PRIu64, c->o->seed * 1000 + i + 1);
        char *argv[2 * NKNOBS + 24] = {bin, f_server, (char *)c->url, f_seed, seed, f_report,
                                       report};
        size_t a = 7;
        if (role == ROLE_BATCH) {
            argv[a++] = f_inst;
            argv[a++] = inst;
            argv[a++] = f_insts;
            argv[a++] = insts;
        }
        argv[a + knob_args(c->o, role, argv + a)] = NULL;
        int rc = spawn(c, c->scheds, &c->nscheds, name, argv, err);
        if (rc != CS_OK)
            return rc;
    }
    return CS_OK;
}

/* ---- requests ------------------------------------------------------------------------ */

static int call(cell *c, uint32_t type, const msgpack_sbuffer *body, cs_msg *reply,
                cs_error *err)
{
    int rc = cs_client_callb(c->client, type, body, reply, err);
    return rc == CS_OK ? rc : cs_error_wrap(err, rc, "%s", cs_msg_name(type));
}

/* The number under `key` of map `o`, whatever its msgpack kind; NaN when
 * absent or not a number. */
static double num(const msgpack_object *o, const char *key)
{
    const msgpack_object *v = cs_obj_get(o, key);
    if (v == NULL)
        return (double)NAN;
    switch (v->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return (double)v->via.u64;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return (double)v->via.i64;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return v->via.f64;
    default:
        return (double)NAN;
    }
}

/* The server's stats, decoded into *st (its lists in `a`, the caller's). */
static int stats(cell *c, cs_stats_reply *st, cs_arena *a, cs_error *err)
{
    return cs_client_stats(c->client, st, a, err);
}

/* Wait until every simulated machine is registered and up. */
static int wait_machines(cell *c, double *took_s, cs_error *err)
{
    double t0 = cb_now_s();
    for (;;) {
        cs_stats_reply st;
        cs_arena a;
        cs_arena_init(&a);
        int rc = stats(c, &st, &a, err);
        cs_arena_free(&a);
        if (rc != CS_OK)
            return rc;
        if (st.machines_up >= c->o->machines)
            break;
        if ((rc = check_cell(c, err)) != CS_OK)
            return rc;
        if (cb_now_s() - t0 > 120)
            return cs_errorf(err, CS_EIO, "%" PRIu64 " of %u machines up after 120 s",
                             st.machines_up, c->o->machines);
        sleep_ms(50);
    }
    *took_s = cb_now_s() - t0;
    return CS_OK;
}

/* Job k's spec as cellctl would read it (jobspec.h builds the body). */
static int job_json(const place_opts *o, uint32_t k, json_t **out, cs_error *err)
{
    char name[32];
    snprintf(name, sizeof name, "c1m-%05u", k);
    json_t *j = json_pack("{s:s, s:s, s:i, s:s, s:{s:f, s:i}, s:f}", "name", name, "kind",
                          service_job(o, k) ? "service" : "batch",
                          "count", (json_int_t)o->tasks, "cmd", "true", "resources", "cpu",
                          TASK_CPU_MC / 1000.0, "mem", (json_int_t)TASK_MEM_MIB, "duration",
                          o->task_duration_ms / 1000.0);
    if (j == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    if (constrained(o, k)) {
        /* Half of them keep to one zone (half the cell), half avoid one
         * rack; with one simulator there is one rack and one zone, and
         * both kinds become zone == z0. */
        char v[16];
        json_t *con;
        if (k % 2 == 0 || o->simulators < 2) {
            snprintf(v, sizeof v, "z%u", k / 2 % zones(o));
            con = json_pack("[[s, s, s]]", "zone", "==", v);
        } else {
            snprintf(v, sizeof v, "r%u", k / 2 % o->simulators);
            con = json_pack("[[s, s, s]]", "rack", "!=", v);
        }
        if (con == NULL || json_object_set_new(j, "constraints", con) != 0) {
            json_decref(j);
            return cs_errorf(err, CS_ENOMEM, "out of memory");
        }
    }
    *out = j;
    return CS_OK;
}

static int submit_jobs(cell *c, double *took_s, cs_error *err)
{
    double t0 = cb_now_s();
    for (uint32_t k = 0; k < c->o->jobs; k++) {
        json_t *j;
        int rc = job_json(c->o, k, &j, err);
        if (rc != CS_OK)
            return rc;
        cs_jobspec s;
        rc = cs_jobspec_from_json(j, &s, err);
        json_decref(j);
        cs_msg r;
        cs_id_reply got = {0};
        if (rc == CS_OK && (rc = call(c, CS_MSG_JOB_SUBMIT, &s.body, &r, err)) == CS_OK)
            rc = cs_id_reply_decode(&r.body, &got, NULL, err);
        uint64_t id = got.id;
        cs_jobspec_free(&s);
        if (rc != CS_OK)
            return cs_error_wrap(err, rc, "submitting job %u", k);
        if (k > 0 && id != c->jobs[0] + k)
            return cs_errorf(err, CS_EPROTO,
                             "job %u got id %" PRIu64 " in a fresh cell, not %" PRIu64, k, id,
                             c->jobs[0] + k);
        c->jobs[k] = id;
        if (interrupted)
            return cs_errorf(err, CS_EIO, "interrupted");
    }
    *took_s = cb_now_s() - t0;
    return CS_OK;
}

/* ---- the watcher ------------------------------------------------------------------- */

/* One delta sync in the compact form, read in place: every task of the
 * run is placed or not as it is now (cb_watch_apply). Starts are omitted
 * ("omit": "running"): a start does not change whether a task is placed,
 * and a task placed and started between two looks comes with its
 * placement. */
static int watch_once(cell *c, cs_error *err)
{
    c->buf.size = 0;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &c->buf, msgpack_sbuffer_write);
    cs_sync_req req = {.since = c->watch.since, .compact = true, .omit_running = true};
    if (cs_sync_req_encode(&pk, &req) != CS_OK)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    const void *body;
    size_t len;
    int rc = cs_client_call_raw(c->client, CS_MSG_SYNC, c->buf.data, c->buf.size, &body, &len, err);
    if (rc != CS_OK)
        return cs_error_wrap(err, rc, "sync");
    return cb_watch_apply(&c->watch, body, len, cb_now_ns(), err);
}

/* ---- one run ---------------------------------------------------------------------------- */

typedef struct dist {
    double p50, p99, max; /* ms; NaN without samples */
} dist;

/* What one scheduler count gave. */
/* One scheduler's last report (its sched.report metrics). */
typedef struct sched_figs {
    char name[64];
    uint64_t txn_ok, txn_conflicted, claims_committed, jobs_placed, jobs_abandoned;
    double busyness, wait_mean_ms, wait_p50_ms, wait_p99_ms;
} sched_figs;

#define SCHED_FIGS_MAX (64 + 1)

typedef struct place_run {
    uint32_t schedulers;
    double ready_s, submit_s;      /* machines registered; jobs submitted */
    double elapsed_s;              /* schedulers started -> last task seen placed (or timeout) */
    uint64_t total, placed, requeued;
    bool timed_out;
    dist wait;                     /* per task: schedulers started -> seen placed */
    uint32_t reports;              /* schedulers whose final report was read */
    uint64_t txn_ok, txn_conflicted, claims_committed, claims_conflicted, attempts;
    uint64_t abandoned; /* jobs the schedulers abandoned (--retry tail) */
    double sched_wait_placed_p50_ms, sched_wait_placed_p99_ms; /* worst scheduler's */
    double server_cpu_s, sched_cpu_s, sim_cpu_s, bench_cpu_s;  /* over the placing */
    uint64_t server_commits, server_commits_conflicted;
    uint64_t server_requests, server_writes; /* whole run, setup included */
    sched_figs sched[SCHED_FIGS_MAX];        /* each scheduler's, as `stats` lists them */
    uint32_t nsched;
} place_run;

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* Nearest-rank percentiles of the waits of the placed tasks. */
static int waits(const cell *c, int64_t start_ns, uint64_t total, dist *d, cs_error *err)
{
    *d = (dist){(double)NAN, (double)NAN, (double)NAN};
    double *v = malloc((c->watch.placed ? c->watch.placed : 1) * sizeof *v);
    if (v == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    size_t n = 0;
    for (uint64_t g = 0; g < total; g++)
        if (c->watch.placed_ns[g] != 0)
            v[n++] = (double)(c->watch.placed_ns[g] - start_ns) / 1e6;
    if (n > 0) {
        qsort(v, n, sizeof *v, cmp_double);
        d->p50 = v[(size_t)ceil(0.50 * (double)n) - 1];
        d->p99 = v[(size_t)ceil(0.99 * (double)n) - 1];
        d->max = v[n - 1];
    }
    free(v);
    return CS_OK;
}

/* Sum the schedulers' last reports (sent as they stopped) and read the
 * server's counters. */
static int read_reports(cell *c, place_run *f, cs_error *err)
{
    cs_stats_reply st;
    cs_arena a;
    cs_arena_init(&a);
    int rc = stats(c, &st, &a, err);
    if (rc != CS_OK) {
        cs_arena_free(&a);
        return rc;
    }
    f->server_commits = st.server.commits;
    f->server_commits_conflicted = st.server.commits_conflicted;
    f->server_requests = st.server.requests;
    f->server_writes = st.server.writes;
    f->sched_wait_placed_p50_ms = f->sched_wait_placed_p99_ms = 0;
    for (uint32_t i = 0; i < st.nscheds; i++) {
        const msgpack_object *m = st.scheds[i].metrics;
        double ok = num(m, "txn_committed"), bad = num(m, "txn_conflicted"),
               cc = num(m, "claims_committed"), cx = num(m, "claims_conflicted"),
               at = num(m, "attempts"), p50 = num(m, "wait_placed_p50_ms"),
               p99 = num(m, "wait_placed_p99_ms"), ab = num(m, "jobs_abandoned");
        if (isnan(ok) || isnan(bad) || isnan(cc) || isnan(cx) || isnan(at) || isnan(p50) ||
            isnan(p99) || isnan(ab)) {
            rc = cs_errorf(err, CS_EPROTO, "stats: scheduler %u's report lacks a metric", i);
            break;
        }
        f->txn_ok += (uint64_t)ok;
        f->txn_conflicted += (uint64_t)bad;
        f->claims_committed += (uint64_t)cc;
        f->claims_conflicted += (uint64_t)cx;
        f->attempts += (uint64_t)at;
        f->abandoned += (uint64_t)ab;
        f->sched_wait_placed_p50_ms = fmax(f->sched_wait_placed_p50_ms, p50);
        f->sched_wait_placed_p99_ms = fmax(f->sched_wait_placed_p99_ms, p99);
        f->reports++;
        if (f->nsched < SCHED_FIGS_MAX) {
            sched_figs *g = &f->sched[f->nsched++];
            *g = (sched_figs){.txn_ok = (uint64_t)ok, .txn_conflicted = (uint64_t)bad,
                              .claims_committed = (uint64_t)cc,
                              .jobs_placed = (uint64_t)fmax(0, num(m, "jobs_placed")),
                              .jobs_abandoned = (uint64_t)ab, .busyness = num(m, "busyness"),
                              .wait_mean_ms = num(m, "wait_mean_ms"), .wait_p50_ms = p50,
                              .wait_p99_ms = p99};
            snprintf(g->name, sizeof g->name, "%s", st.scheds[i].name);
        }
    }
    cs_arena_free(&a);
    return rc;
}

/* Start the schedulers and follow the cell until every task is placed, the
 * timeout, a signal, or a child's death. */
static int place_all(cell *c, uint32_t n, place_run *f, cs_error *err)
{
    double srv0 = server_cpu_s(c), sim0 = cpu_of(c->sims, c->nsims),
           self0 = self_cpu_s();
    int64_t start = cb_now_ns(), deadline = start + (int64_t)c->o->timeout_s * 1000000000;
    int64_t last = start, next_progress = start + 1000000000;
    uint64_t progress0 = 0;
    int rc = start_scheds(c, n, err);
    while (rc == CS_OK && c->watch.placed < f->total) {
        int64_t now = cb_now_ns();
        if (now >= deadline) {
            f->timed_out = true;
            break;
        }
        if (c->o->progress && now >= next_progress) {
            fprintf(stderr, "  %5.1f s: %" PRIu64 " placed (%" PRIu64 " in the last second), "
                            "version %" PRIu64 "\n",
                    (double)(now - start) / 1e9, c->watch.placed, c->watch.placed - progress0,
                    c->watch.since);
            progress0 = c->watch.placed;
            next_progress = now + 1000000000;
        }
        sleep_ms(WATCH_MS);
        uint64_t before = c->watch.placed;
        if ((rc = check_cell(c, err)) == CS_OK && (rc = watch_once(c, err)) == CS_OK &&
            c->watch.placed > before)
            last = cb_now_ns();
    }
    /* Elapsed to the reply that showed the last placement; on a timeout,
     * the whole time given. */
    f->elapsed_s = (double)((f->timed_out ? cb_now_ns() : last) - start) / 1e9;
    f->placed = c->watch.placed;
    f->requeued = c->watch.requeued;
    f->server_cpu_s = server_cpu_s(c) - srv0;
    f->sim_cpu_s = cpu_of(c->sims, c->nsims) - sim0;
    f->sched_cpu_s = cpu_of(c->scheds, c->nscheds);
    f->bench_cpu_s = self_cpu_s() - self0;
    if (rc != CS_OK)
        return rc;
    if ((rc = waits(c, start, f->total, &f->wait, err)) != CS_OK)
        return rc;
    stop_all(c->scheds, c->nscheds);
    return read_reports(c, f, err);
}

static int run_one(const place_opts *o, const char *bindir, const char *root, uint32_t n,
                   place_run *f, cs_error *err)
{
    memset(f, 0, sizeof *f);
    f->schedulers = n;
    f->total = (uint64_t)o->jobs * o->tasks;
    cell c = {.o = o};
    msgpack_sbuffer_init(&c.buf);
    snprintf(c.bindir, sizeof c.bindir, "%s", bindir);
    char name[32];
    snprintf(name, sizeof name, "run-%u", n);
    int rc = cb_make_subdir(root, name, c.dir, sizeof c.dir, err);
    if (rc != CS_OK)
        return rc;
    c.sims = calloc(o->simulators, sizeof *c.sims);
    c.scheds = calloc(n + 1, sizeof *c.scheds); /* + cell-service */
    c.jobs = calloc(o->jobs, sizeof *c.jobs);
    if ((rc = cb_watch_init(&c.watch, o->jobs, o->tasks, err)) != CS_OK)
        goto free_arrays;
    if (c.sims == NULL || c.scheds == NULL || c.jobs == NULL) {
        rc = cs_errorf(err, CS_ENOMEM, "out of memory");
        goto free_arrays;
    }
    if ((rc = start_server(&c, err)) != CS_OK)
        goto free_arrays;
    if ((rc = cs_client_open(c.url, 120000, &c.client, err)) != CS_OK)
        goto stop_server;
    cs_stats_reply st;
    cs_arena sa;
    cs_arena_init(&sa);
    if ((rc = start_sims(&c, err)) != CS_OK || (rc = wait_machines(&c, &f->ready_s, err)) != CS_OK ||
        (rc = submit_jobs(&c, &f->submit_s, err)) != CS_OK ||
        (rc = stats(&c, &st, &sa, err)) != CS_OK) {
        cs_arena_free(&sa);
        goto stop_children;
    }
    cs_arena_free(&sa);
    /* The watcher starts at the version after the submissions: every task
     * of the run is pending there, and a full sync of them is not needed. */
    c.watch.job0 = c.jobs[0];
    c.watch.since = st.version;
    rc = place_all(&c, n, f, err);

stop_children:
    if (rc != CS_OK && !interrupted)
        log_tail(server_log(&c));
    stop_all(c.scheds, c.nscheds);
    stop_all(c.sims, c.nsims);
    cs_client_close(c.client);
stop_server:
    if (cb_daemon_stop(&c.server, 30000) == -1 || cb_replicas_stop(&c.reps, 30000) > 0)
        fprintf(stderr, "cellbench place: cellstated had to be killed\n");
free_arrays:
    free(c.sims);
    free(c.scheds);
    free(c.jobs);
    cb_watch_free(&c.watch);
    msgpack_sbuffer_destroy(&c.buf);
    cb_rmtree(c.dir);
    return rc;
}

/* ---- the report ---------------------------------------------------------------------- */

static double conflict_fraction(const place_run *f)
{
    return f->txn_ok ? (double)f->txn_conflicted / (double)f->txn_ok : (double)NAN;
}

/* The service jobs' decision time, as their scheduler was given it. */
static double svc_t_job(const place_opts *o)
{
    return o->arch == ARCH_MULTIPATH ? o->svc.t_job_service_s : o->svc.t_job_s;
}

static double svc_t_task(const place_opts *o)
{
    return o->arch == ARCH_MULTIPATH ? o->svc.t_task_service_s : o->svc.t_task_s;
}

static void report_text(FILE *out, const place_opts *o, const cb_host *h, const place_run *runs,
                        uint32_t nruns)
{
    uint64_t slots = capacity_slots(o);
    fprintf(out,
            "cellbench place: %u machines (%u simulators, %" PRIu64 " task slots each), %u jobs x "
            "%u tasks, %u%% constrained, tasks run %u ms, %s\n",
            o->machines, o->simulators, slots, o->jobs, o->tasks, o->constrained,
            o->task_duration_ms, o->nosync ? "cellstated --nosync" : "fsync per commit");
    if (o->replicas > 0)
        fprintf(out, "cell state: %u replicas of one Raft cell (the Raft log fsyncs), "
                     "schedulers at the leader, agents at the %s\n",
                o->replicas, o->agents_at_leader || o->replicas == 1 ? "leader" : "followers");
    fprintf(out,
            "schedulers: --conflict %s --commit %s --t-job %g --t-task %g%s --retry %s "
            "(--max-attempts %u) --strategy %s%s\n",
            cs_conflict_mode_name(o->sched.conflict), cs_commit_mode_name(o->sched.commit),
            o->sched.t_job_s, o->sched.t_task_s, o->sched.txn_per_job ? " --txn-per-job" : "",
            o->sched.retry == CS_RETRY_TAIL ? "tail" : "front", o->sched.max_attempts,
            o->strategy ? o->strategy : "binpack (cell-batch's default)",
            o->arch == ARCH_OMEGA && o->service ? "; one cell-service beside them" : "");
    fprintf(out, "architecture: %s\n", arch_names[o->arch]);
    if (o->service)
        fprintf(out, "service jobs: %u%% of the jobs (decided in --t-job %g --t-task %g; "
                     "strategy: %s)\n",
                o->service_pct, o->arch == ARCH_MONOLITHIC ? o->sched.t_job_s : svc_t_job(o),
                o->arch == ARCH_MONOLITHIC ? o->sched.t_task_s : svc_t_task(o),
                o->strategy ? o->strategy : o->arch == ARCH_OMEGA || o->arch == ARCH_MESOS
                                                ? "spread, cell-service's default"
                                                : "binpack, cell-batch's default");
    fprintf(out, "machine: nproc %ld, cpu %s\n", h->nproc, h->cpu);
    fprintf(out, "%5s %9s %9s %12s %9s %9s %9s %8s %8s  %s\n", "sched", "placed", "elapsed",
            "placements/s", "conflicts", "wait p50", "wait p99", "submit", "cpu", "cpu split");
    for (uint32_t i = 0; i < nruns; i++) {
        const place_run *f = &runs[i];
        char a[32], b[32], c[32], d[32];
        double cpu = f->server_cpu_s + f->sched_cpu_s + f->sim_cpu_s + f->bench_cpu_s;
        fprintf(out,
                "%5u %9" PRIu64 " %8.2fs %12s %9s %7.0fms %7.0fms %7.1fs %7.1fs  cellstated %.0f%%, "
                "cell-batch %.0f%%, agents %.0f%%, cellbench %.0f%%%s\n",
                f->schedulers, f->placed, f->elapsed_s,
                cb_fig(a, sizeof a, cb_per_s((double)f->placed, f->elapsed_s), 0),
                cb_fig(b, sizeof b, conflict_fraction(f), 3), f->wait.p50, f->wait.p99,
                f->submit_s, cpu, 100 * f->server_cpu_s / cpu, 100 * f->sched_cpu_s / cpu,
                100 * f->sim_cpu_s / cpu, 100 * f->bench_cpu_s / cpu,
                f->timed_out ? "  TIMED OUT" : "");
        fprintf(out,
                "      txns %" PRIu64 " ok, %" PRIu64 " conflicted; claims %" PRIu64
                " committed, %" PRIu64 " conflicted; %" PRIu64 " requeued; schedulers' "
                "wait_placed p50 %s p99 %s ms (from submission, worst of %u)\n",
                f->txn_ok, f->txn_conflicted, f->claims_committed, f->claims_conflicted, f->requeued,
                cb_fig(c, sizeof c, f->sched_wait_placed_p50_ms, 0),
                cb_fig(d, sizeof d, f->sched_wait_placed_p99_ms, 0), f->reports);
        /* The architectures are compared scheduler by scheduler (a batch
         * job's wait behind a service decision): one line each, when the
         * mix has service jobs. */
        for (uint32_t k = 0; o->service && k < f->nsched; k++) {
            const sched_figs *g = &f->sched[k];
            fprintf(out,
                    "      %-22s jobs placed %" PRIu64 ", abandoned %" PRIu64 "; wait mean %s "
                    "p50 %s p99 %s ms; busyness %s; txns %" PRIu64 " ok, %" PRIu64
                    " conflicted\n",
                    g->name, g->jobs_placed, g->jobs_abandoned,
                    cb_fig(a, sizeof a, g->wait_mean_ms, 0), cb_fig(b, sizeof b, g->wait_p50_ms, 0),
                    cb_fig(c, sizeof c, g->wait_p99_ms, 0), cb_fig(d, sizeof d, g->busyness, 3),
                    g->txn_ok, g->txn_conflicted);
        }
    }
}

static void report_json(FILE *out, const place_opts *o, const cb_host *h, const place_run *runs,
                        uint32_t nruns)
{
    cb_json j = {out, true};
    bool all = true;
    for (uint32_t i = 0; i < nruns; i++)
        all = all && runs[i].placed == runs[i].total;
    cb_json_str(&j, "benchmark", "place");
    cb_json_u64(&j, "machines", o->machines);
    cb_json_u64(&j, "jobs", o->jobs);
    cb_json_u64(&j, "tasks_per_job", o->tasks);
    cb_json_u64(&j, "constrained_pct", o->constrained);
    cb_json_u64(&j, "simulators", o->simulators);
    cb_json_u64(&j, "slots_per_machine", capacity_slots(o));
    cb_json_u64(&j, "task_duration_ms", o->task_duration_ms);
    cb_json_bool(&j, "fsync", !o->nosync);
    /* 0: one plain cellstated. */
    cb_json_u64(&j, "replicas", o->replicas);
    cb_json_u64(&j, "snapshot_threshold", o->snapshot_threshold); /* 0: cellstated's */
    cb_json_str(&j, "agents_at",
                o->replicas > 1 && !o->agents_at_leader ? "followers" : "leader");
    /* The knobs the schedulers ran with, defaults included. */
    cb_json_str(&j, "strategy", o->strategy ? o->strategy : "binpack");
    cb_json_str(&j, "conflict", cs_conflict_mode_name(o->sched.conflict));
    cb_json_str(&j, "commit", cs_commit_mode_name(o->sched.commit));
    cb_json_real(&j, "t_job_s", o->sched.t_job_s);
    cb_json_real(&j, "t_task_s", o->sched.t_task_s);
    cb_json_bool(&j, "txn_per_job", o->sched.txn_per_job);
    cb_json_str(&j, "retry", o->sched.retry == CS_RETRY_TAIL ? "tail" : "front");
    cb_json_u64(&j, "max_attempts", o->sched.max_attempts);
    cb_json_str(&j, "architecture", arch_names[o->arch]);
    cb_json_bool(&j, "service_scheduler", o->service);
    cb_json_u64(&j, "service_pct", o->service ? o->service_pct : 0);
    if (o->service) {
        bool single = o->arch == ARCH_MONOLITHIC;
        cb_json_real(&j, "t_job_service_s", single ? o->sched.t_job_s : svc_t_job(o));
        cb_json_real(&j, "t_task_service_s", single ? o->sched.t_task_s : svc_t_task(o));
    }
    if (o->service)
        cb_json_str(&j, "service_strategy", o->strategy ? o->strategy : "spread");
    cb_json_u64(&j, "nproc", h->nproc > 0 ? (uint64_t)h->nproc : 0);
    cb_json_str(&j, "cpu", h->cpu);
    cb_json_bool(&j, "all_placed", all);
    /* cb_json writes flat objects: the array of runs is written around one
     * object per run. */
    fputs(",\"runs\":[", out);
    for (uint32_t i = 0; i < nruns; i++) {
        const place_run *f = &runs[i];
        cb_json r = {out, true};
        if (i > 0)
            fputc(',', out);
        cb_json_u64(&r, "schedulers", f->schedulers);
        cb_json_u64(&r, "tasks", f->total);
        cb_json_u64(&r, "placed", f->placed);
        cb_json_u64(&r, "requeued", f->requeued);
        cb_json_bool(&r, "timed_out", f->timed_out);
        cb_json_real(&r, "elapsed_s", f->elapsed_s);
        cb_json_real(&r, "placements_per_s", cb_per_s((double)f->placed, f->elapsed_s));
        cb_json_real(&r, "conflict_fraction", conflict_fraction(f));
        cb_json_u64(&r, "txn_successful", f->txn_ok);
        cb_json_u64(&r, "txn_conflicted", f->txn_conflicted);
        cb_json_u64(&r, "claims_committed", f->claims_committed);
        cb_json_u64(&r, "claims_conflicted", f->claims_conflicted);
        cb_json_u64(&r, "attempts", f->attempts);
        cb_json_u64(&r, "jobs_abandoned", f->abandoned);
        cb_json_u64(&r, "reports", f->reports);
        cb_json_real(&r, "wait_p50_ms", f->wait.p50);
        cb_json_real(&r, "wait_p99_ms", f->wait.p99);
        cb_json_real(&r, "wait_max_ms", f->wait.max);
        cb_json_real(&r, "sched_wait_placed_p50_ms", f->sched_wait_placed_p50_ms);
        cb_json_real(&r, "sched_wait_placed_p99_ms", f->sched_wait_placed_p99_ms);
        cb_json_real(&r, "ready_s", f->ready_s);
        cb_json_real(&r, "submit_s", f->submit_s);
        cb_json_u64(&r, "server_commits", f->server_commits);
        cb_json_u64(&r, "server_commits_conflicted", f->server_commits_conflicted);
        cb_json_u64(&r, "server_requests", f->server_requests);
        cb_json_u64(&r, "server_writes", f->server_writes);
        cb_json_real(&r, "cellstated_cpu_s", f->server_cpu_s);
        cb_json_real(&r, "schedulers_cpu_s", f->sched_cpu_s);
        cb_json_real(&r, "agents_cpu_s", f->sim_cpu_s);
        cb_json_real(&r, "cellbench_cpu_s", f->bench_cpu_s);
        /* Each scheduler's own figures, as its last sched.report gave them. */
        fputs(",\"scheds\":[", out);
        for (uint32_t k = 0; k < f->nsched; k++) {
            const sched_figs *g = &f->sched[k];
            cb_json q = {out, true};
            if (k > 0)
                fputc(',', out);
            cb_json_str(&q, "name", g->name);
            cb_json_u64(&q, "jobs_placed", g->jobs_placed);
            cb_json_u64(&q, "jobs_abandoned", g->jobs_abandoned);
            cb_json_real(&q, "wait_mean_ms", g->wait_mean_ms);
            cb_json_real(&q, "wait_placed_p50_ms", g->wait_p50_ms);
            cb_json_real(&q, "wait_placed_p99_ms", g->wait_p99_ms);
            cb_json_real(&q, "busyness", g->busyness);
            cb_json_u64(&q, "txn_successful", g->txn_ok);
            cb_json_u64(&q, "txn_conflicted", g->txn_conflicted);
            cb_json_u64(&q, "claims_committed", g->claims_committed);
            fputc('}', out);
        }
        fputc(']', out);
        fputc('}', out);
    }
    fputc(']', out);
    cb_json_end(&j);
}

/* ---- main ------------------------------------------------------------------------------ */

static int place_run_all(const place_opts *o, place_run *runs, uint32_t *nruns, cs_error *err)
{
    char bindir[4096], root[256];
    int rc = cb_cellstated_path(NULL, bindir, sizeof bindir, err);
    if (rc != CS_OK)
        return rc;
    *strrchr(bindir, '/') = '\0'; /* cellstated's folder holds cell-agent and cell-batch too */
    if ((rc = cb_make_tmpdir(root, sizeof root, err)) != CS_OK)
        return rc;
    *nruns = 0;
    for (uint32_t i = 0; i < o->ncounts && rc == CS_OK; i++) {
        fprintf(stderr, "cellbench place: %u scheduler%s ...\n", o->counts[i],
                o->counts[i] == 1 ? "" : "s");
        rc = run_one(o, bindir, root, o->counts[i], &runs[i], err);
        if (rc == CS_OK) {
            /* The figures so far, in case a later count fails or is cut short. */
            fprintf(stderr, "cellbench place: %u scheduler%s: %" PRIu64 " of %" PRIu64
                            " placed in %.2f s\n",
                    o->counts[i], o->counts[i] == 1 ? "" : "s", runs[i].placed, runs[i].total,
                    runs[i].elapsed_s);
            (*nruns)++;
        } else
            cs_error_wrap(err, rc, "with %u schedulers", o->counts[i]);
    }
    cb_rmtree(root);
    return rc;
}

int cb_place_main(int argc, char **argv)
{
    place_opts o;
    cs_error err = {0};
    int done = cb_parse_exit(place_parse(argc, argv, &o, &err), "place", cb_place_usage, &err);
    if (done >= 0)
        return done;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: waits end at once */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    cb_host h;
    cb_host_read(&h);
    place_run runs[MAX_COUNTS];
    uint32_t nruns = 0;
    int rc = place_run_all(&o, runs, &nruns, &err);
    if (rc != CS_OK) {
        fprintf(stderr, "cellbench place: %s (%s)\n", err.msg, cs_strerror(rc));
        return CB_EXIT_RUN;
    }
    report_text(stdout, &o, &h, runs, nruns);
    if (o.json)
        report_json(stdout, &o, &h, runs, nruns);
    return fflush(stdout) == 0 ? 0 : CB_EXIT_RUN;
}
