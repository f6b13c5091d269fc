/* cellchaos — a chaos test of a replicated cell (issue 14).
 *
 *   cellchaos [--duration 60s] [--kill-every 5s] [--seed N] [--replicas 3]
 *             [--machines 1000] [--agents 4] [--batch-schedulers 4] [--dir DIR]
 *
 * Starts a whole cell on 127.0.0.1 — R cellstated replicas (--cluster), B
 * cell-batch and one cell-service, and `--agents` cell-agent --simulate
 * processes sharing `--machines` simulated machines — submits a service job
 * and then batch jobs without pause (killing some), and every `--kill-every`
 * sends SIGKILL to one process chosen at random (seeded splitmix64): a
 * replica, a scheduler or an agent simulator. What was killed is started
 * again after a pause: a replica or a scheduler after a second, an agent
 * after the heartbeat timeout and a margin, so that each agent kill is the
 * loss of its machines (marked down, their tasks lost and replaced). At most
 * one replica is down at a time, so a majority always remains.
 *
 * A checker (cellchaos_check.h) watches every replica and records every
 * acknowledged write; at the end, one JSON line on standard output:
 * acknowledged, lost, overcommits, double_placements, kills by kind, the
 * service's recovery after each machine loss (seconds, max and p50), and
 * each replica's final applied index and version. Exit status 0 when
 * nothing was lost, overcommitted or placed twice, 1 otherwise (or when
 * the cell could not be started, or the run was interrupted), 2 for a bad
 * command line. Progress goes to standard error.
 *
 * Everything lives in --dir (default: a fresh directory under $TMPDIR,
 * removed after a run that passed, kept and named after one that did not):
 * the cluster file, each replica's data and every process's log. SIGINT or
 * SIGTERM ends the run early: every process is stopped and the report is
 * printed for what ran. The binaries come from $CELLSCHED_BIN, else the
 * directory of cellchaos itself.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cellstate/rng.h"
#include "cellstate/units.h"
#include "proto/client.h"
#include "proto/membermsg.h"
#include "proto/readmsg.h"
#include "tools/cellbench_util.h"
#include "tools/cellchaos_check.h"
#include "tools/cellchaos_load.h"
#include "tools/cellchaos_procs.h"

static const char usage_text[] =
    "usage: cellchaos [options]\n"
    "\n"
    "A chaos test of a replicated cell: starts R replicas, the schedulers and\n"
    "simulated machines on 127.0.0.1, writes continuously, SIGKILLs a random\n"
    "process every --kill-every, and prints one JSON line: acknowledged, lost,\n"
    "overcommits, double_placements, kills, service_recovery_s, applied_index.\n"
    "Exit 0 when nothing was lost, overcommitted or placed twice.\n"
    "\n"
    "  --duration D          how long the chaos lasts (default 60s)\n"
    "  --kill-every D        time between two kills (default 5s; 0: no kills)\n"
    "  --seed N              the choice of victims (default 1)\n"
    "  --replicas N          cellstated replicas, 1 to 7 (default 3)\n"
    "  --machines N          simulated machines (default 1000)\n"
    "  --agents N            cell-agent --simulate processes sharing them (default 4)\n"
    "  --batch-schedulers N  cell-batch processes (default 4); one cell-service\n"
    "  --dir DIR             where data and logs go (default: a fresh directory in\n"
    "                        $TMPDIR, removed after a run that passed)\n"
    "Durations as \"30s\", \"10m\", \"500ms\" or seconds. Binaries from\n"
    "$CELLSCHED_BIN, else the directory of cellchaos.\n";

typedef struct options {
    uint32_t duration_ms, kill_every_ms;
    uint64_t seed;
    uint32_t replicas, machines, agents, batch;
    const char *dir;
} options;

/* The machines' heartbeat timeout in cellstated, and the pauses before
 * a killed process is started again. An agent simulator stays down past
 * the timeout so that its kill is a machine loss; a replica or a scheduler
 * comes back after a second (its clients have moved to another replica
 * meanwhile: they are given every one). */
#define CC_HEARTBEAT_TIMEOUT_MS 4000u
#define CC_PAUSE_REPLICA_MS 1000u
#define CC_PAUSE_SCHEDULER_MS 1000u
#define CC_PAUSE_AGENT_MS (CC_HEARTBEAT_TIMEOUT_MS + 2000u)

static int parse_duration(const char *flag, const char *v, uint32_t min_ms, uint32_t *out,
                          cs_error *err)
{
    CS_TRY(cs_duration_parse_ms(v, out, err) == CS_OK
               ? CS_OK
               : cs_error_wrap(err, CS_EINVAL, "%s", flag));
    if (*out < min_ms)
        return cs_errorf(err, CS_EINVAL, "%s: %s is below %u ms", flag, v, min_ms);
    return CS_OK;
}

static int parse(int argc, char **argv, options *o, cs_error *err)
{
    static const char *const switches[] = {"--help", NULL};
    static const char *const valued[] = {"--duration", "--kill-every", "--seed",
                                         "--replicas", "--machines",   "--agents",
                                         "--batch-schedulers", "--dir", NULL};
    *o = (options){.duration_ms = 60000,
                   .kill_every_ms = 5000,
                   .seed = 1,
                   .replicas = 3,
                   .machines = 1000,
                   .agents = 4,
                   .batch = 4};
    for (int i = 1; i < argc;) {
        cb_opt opt;
        if (cb_opt_next(argc, argv, &i, switches, valued, &opt, err) != CS_OK)
            return CB_PARSE_BAD;
        const char *f = opt.flag, *v = opt.val;
        int rc = CS_OK;
        if (strcmp(f, "--help") == 0)
            return CB_PARSE_HELP;
        else if (strcmp(f, "--duration") == 0)
            rc = parse_duration(f, v, 1000, &o->duration_ms, err);
        else if (strcmp(f, "--kill-every") == 0)
            rc = parse_duration(f, v, 0, &o->kill_every_ms, err);
        else if (strcmp(f, "--seed") == 0)
            rc = cb_parse_u64(f, v, 0, UINT64_MAX, &o->seed, err);
        else if (strcmp(f, "--replicas") == 0)
            rc = cb_parse_u32(f, v, 1, CC_REPLICAS_MAX, &o->replicas, err);
        else if (strcmp(f, "--machines") == 0)
            rc = cb_parse_u32(f, v, 1, 100000, &o->machines, err);
        else if (strcmp(f, "--agents") == 0)
            rc = cb_parse_u32(f, v, 1, 64, &o->agents, err);
        else if (strcmp(f, "--batch-schedulers") == 0)
            rc = cb_parse_u32(f, v, 1, 64, &o->batch, err);
        else
            o->dir = v;
        if (rc != CS_OK)
            return CB_PARSE_BAD;
    }
    if (o->machines < o->agents) {
        cs_errorf(err, CS_EINVAL, "--machines %u is fewer than --agents %u", o->machines,
                  o->agents);
        return CB_PARSE_BAD;
    }
    if (o->kill_every_ms > 0 && o->kill_every_ms < 500) {
        cs_errorf(err, CS_EINVAL, "--kill-every: at least 500ms (or 0: no kills)");
        return CB_PARSE_BAD;
    }
    return CB_PARSE_RUN;
}

/* ---- the run ------------------------------------------------------------------- */

typedef struct run {
    options o;
    char dir[CC_PATH_MAX];
    bool made_dir; /* a temporary directory of ours, removed after a pass */
    char bindir[CC_PATH_MAX];
    cc_cell cell;
    cc_check *check;
    cc_load *load;
    uint64_t rng;
    cs_id service;
    uint32_t service_tasks;
    uint32_t kills[CC_KIND_COUNT];
    bool interrupted;
    double started_s, chaos_s;
} run;

/* Wait for SIGINT or SIGTERM (blocked, so that only this wait takes them)
 * for up to `ms`; true when one came. */
static bool signalled(const sigset_t *set, uint32_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    for (;;) {
        int s = sigtimedwait(set, NULL, &ts);
        if (s > 0)
            return true;
        if (s < 0 && errno == EINTR)
            continue;
        return false;
    }
}

/* Whether some replica says it leads, through a fresh client each. */
static bool leader_elected(const cc_cell *c)
{
    bool found = false;
    for (uint32_t i = 0; i < c->nreplicas && !found; i++) {
        cs_client *cl;
        cs_error err = {0};
        if (cs_client_open(c->url[i], 500, &cl, &err) != CS_OK)
            continue;
        cs_arena a;
        cs_arena_init(&a);
        cs_msg m;
        cs_members_reply mr;
        found = cs_client_call(cl, CS_MSG_MEMBERS, "\x80", 1, &m, &err) == CS_OK &&
                cs_members_reply_decode(&m.body, &mr, &a, &err) == CS_OK &&
                mr.role == CS_MEMBER_LEADER;
        cs_arena_free(&a);
        cs_client_close(cl);
    }
    return found;
}

static int start_kind(run *r, cc_kind kind, cs_error *err)
{
    for (size_t i = 0; i < r->cell.nprocs; i++)
        if (r->cell.procs[i].kind == kind)
            CS_TRY(cc_proc_start(&r->cell.procs[i], err));
    return CS_OK;
}

static int make_dir(run *r, cs_error *err)
{
    if (r->o.dir != NULL) {
        if (snprintf(r->dir, sizeof r->dir, "%s", r->o.dir) >= (int)sizeof r->dir - 64)
            return cs_errorf(err, CS_EINVAL, "--dir %s is too long", r->o.dir);
        if (mkdir(r->dir, 0755) != 0 && errno != EEXIST)
            return cs_errorf(err, CS_EIO, "--dir %s: %s", r->dir, strerror(errno));
        return CS_OK;
    }
    const char *tmp = getenv("TMPDIR");
    if (tmp == NULL || tmp[0] == '\0')
        tmp = "/tmp";
    if (snprintf(r->dir, sizeof r->dir, "%s/cellchaos-XXXXXX", tmp) >= (int)sizeof r->dir - 64)
        return cs_errorf(err, CS_EINVAL, "$TMPDIR %s is too long", tmp);
    if (mkdtemp(r->dir) == NULL)
        return cs_errorf(err, CS_EIO, "a temporary directory in %s: %s", tmp, strerror(errno));
    r->made_dir = true;
    return CS_OK;
}

/* Start the cell: replicas, a leader, the service job, the watchers, then
 * the schedulers and the agents. */
static int setup(run *r, const sigset_t *sigs, cs_error *err)
{
    CS_TRY(make_dir(r, err));
    cc_layout l = {.dir = r->dir,
                   .bindir = r->bindir,
                   .replicas = r->o.replicas,
                   .batch = r->o.batch,
                   .machines = r->o.machines,
                   .agents = r->o.agents,
                   .heartbeat_timeout_ms = CC_HEARTBEAT_TIMEOUT_MS,
                   .seed = r->o.seed};
    CS_TRY(cc_cell_init(&r->cell, &l, err));
    CS_TRY(start_kind(r, CC_REPLICA, err));
    fprintf(stderr, "cellchaos: %u replicas starting in %s\n", r->o.replicas, r->dir);
    for (int waited = 0; !leader_elected(&r->cell); waited += 100) {
        for (uint32_t i = 0; i < r->o.replicas; i++)
            if (cc_proc_reap(&r->cell.procs[i]))
                return cs_errorf(err, CS_EIO, "%s exited as it started (log: %s)",
                                 r->cell.procs[i].name, r->cell.procs[i].log);
        if (waited >= 30000)
            return cs_errorf(err, CS_EIO, "no leader elected within 30 s (logs in %s)", r->dir);
        if (signalled(sigs, 100)) {
            r->interrupted = true;
            return cs_errorf(err, CS_EIO, "interrupted");
        }
    }
    CS_TRY(cc_check_new((const char (*)[64])r->cell.url, r->cell.nreplicas, &r->check, err));
    /* Batch jobs of a task per 20 machines (at least 4), one every 100 ms:
     * with their 1-4 s of simulated run time they keep a tenth of the cell
     * busy and every scheduler committing. A kill after every 10 submits. */
    cc_load_opts lo = {.batch_tasks = r->o.machines / 20 > 4 ? r->o.machines / 20 : 4,
                       .every_ms = 100,
                       .kill_each = 10,
                       .seed = r->o.seed};
    CS_TRY(cc_load_new(r->cell.servers, r->check, &lo, &r->load, err));
    /* A service of a task per 50 machines (at least 10): an agent's loss
     * takes some of them. */
    r->service_tasks = r->o.machines / 50 > 10 ? r->o.machines / 50 : 10;
    CS_TRY(cc_load_service(r->load, r->service_tasks, 30000, &r->service, err));
    cc_check_service(r->check, r->service, r->service_tasks);
    CS_TRY(cc_check_start(r->check, err));
    CS_TRY(start_kind(r, CC_SCHEDULER, err));
    CS_TRY(start_kind(r, CC_AGENT, err));
    return cc_load_start(r->load, err);
}

static uint32_t pause_ms(cc_kind k)
{
    return k == CC_REPLICA ? CC_PAUSE_REPLICA_MS
           : k == CC_AGENT ? CC_PAUSE_AGENT_MS
                           : CC_PAUSE_SCHEDULER_MS;
}

/* SIGKILL one running process chosen at random, never a replica while
 * another is down (so that a cell of 3 or 5 keeps a majority, and one of
 * 1 or 2 comes back), and schedule its restart. */
static void kill_one(run *r)
{
    cc_cell *c = &r->cell;
    bool replica_down = false;
    for (size_t i = 0; i < c->nprocs; i++)
        replica_down = replica_down || (c->procs[i].kind == CC_REPLICA && c->procs[i].pid == 0);
    size_t cand[256], n = 0;
    for (size_t i = 0; i < c->nprocs && n < sizeof cand / sizeof *cand; i++) {
        const cc_proc *p = &c->procs[i];
        if (p->pid > 0 && !(p->kind == CC_REPLICA && replica_down))
            cand[n++] = i;
    }
    if (n == 0)
        return;
    cc_proc *p = &c->procs[cand[cs_rng_below(&r->rng, (uint32_t)n)]];
    cc_proc_kill(p);
    r->kills[p->kind]++;
    p->restart_ns = cb_now_ns() + (int64_t)pause_ms(p->kind) * 1000000;
    fprintf(stderr, "cellchaos: %6.1f s  kill -9 %s\n", cb_now_s() - r->chaos_s, p->name);
}

/* Start again what is due (or everything that is down, when `all`);
 * schedule the restart of what exited on its own. */
static void tend(run *r, bool all)
{
    cc_cell *c = &r->cell;
    int64_t now = cb_now_ns();
    for (size_t i = 0; i < c->nprocs; i++) {
        cc_proc *p = &c->procs[i];
        if (p->pid > 0 || p->restart_ns == 0 || (!all && p->restart_ns > now))
            continue;
        cs_error err = {0};
        if (cc_proc_start(p, &err) != CS_OK) {
            fprintf(stderr, "cellchaos: %s\n", err.msg);
            p->restart_ns = now + 1000000000;
        }
    }
    for (size_t i = 0; i < c->nprocs; i++) {
        cc_proc *p = &c->procs[i];
        if (cc_proc_reap(p)) {
            fprintf(stderr, "cellchaos: %s exited on its own (log: %s); starting it again\n",
                    p->name, p->log);
            p->restart_ns = now + (int64_t)pause_ms(p->kind) * 1000000;
        }
    }
}

/* The chaos itself: a kill every kill_every_ms for duration_ms. */
static void chaos(run *r, const sigset_t *sigs)
{
    r->chaos_s = cb_now_s();
    int64_t end = cb_now_ns() + (int64_t)r->o.duration_ms * 1000000;
    int64_t next = r->o.kill_every_ms ? cb_now_ns() + (int64_t)r->o.kill_every_ms * 1000000
                                      : INT64_MAX;
    while (cb_now_ns() < end) {
        if (signalled(sigs, 50)) {
            r->interrupted = true;
            fprintf(stderr, "cellchaos: interrupted; stopping the cell\n");
            return;
        }
        if (cb_now_ns() >= next) {
            kill_one(r);
            next += (int64_t)r->o.kill_every_ms * 1000000;
        }
        tend(r, false);
    }
}

/* ---- the report ------------------------------------------------------------------ */

static void json_real(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.3f", v);
    else
        fputs("null", f);
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void json_u64s(FILE *f, const uint64_t *v, uint32_t n)
{
    fputc('[', f);
    for (uint32_t i = 0; i < n; i++)
        fprintf(f, "%s%llu", i ? "," : "", (unsigned long long)v[i]);
    fputc(']', f);
}

static void report(const run *r, const cc_result *res, uint64_t tried, uint32_t exits, FILE *f)
{
    fprintf(f,
            "{\"duration_s\":%.1f,\"kill_every_s\":%.1f,\"seed\":%llu,\"replicas\":%u,"
            "\"machines\":%u,\"acknowledged\":%llu,\"acknowledged_submits\":%llu,"
            "\"acknowledged_kills\":%llu,\"writes_tried\":%llu,\"lost\":%llu,"
            "\"overcommits\":%llu,\"double_placements\":%llu,",
            r->o.duration_ms / 1000.0, r->o.kill_every_ms / 1000.0,
            (unsigned long long)r->o.seed, r->o.replicas, r->o.machines,
            (unsigned long long)res->acknowledged, (unsigned long long)res->acked_submits,
            (unsigned long long)res->acked_kills, (unsigned long long)tried,
            (unsigned long long)res->lost, (unsigned long long)res->overcommits,
            (unsigned long long)res->double_placements);
    fprintf(f, "\"kills\":{\"replica\":%u,\"scheduler\":%u,\"agent\":%u,\"total\":%u},",
            r->kills[CC_REPLICA], r->kills[CC_SCHEDULER], r->kills[CC_AGENT],
            r->kills[CC_REPLICA] + r->kills[CC_SCHEDULER] + r->kills[CC_AGENT]);
    fprintf(f, "\"exits\":%u,\"service_tasks\":%u,\"service_recovery_s\":{\"losses\":%u,\"max\":",
            exits, r->service_tasks, res->losses);
    json_real(f, res->recovery_max_s);
    fputs(",\"p50\":", f);
    json_real(f, res->recovery_p50_s);
    fprintf(f, ",\"unrecovered\":%u},\"unread\":%u,\"applied_index\":", res->unrecovered,
            res->unread);
    json_u64s(f, res->applied, res->nreplicas);
    fputs(",\"version\":", f);
    json_u64s(f, res->version, res->nreplicas);
    fputs(",\"lost_on\":", f);
    json_u64s(f, res->lost_on, res->nreplicas);
    fprintf(f,
            ",\"versions_checked\":%llu,\"resyncs\":%llu,\"regressions\":%llu,"
            "\"alloc_mismatches\":%llu,\"interrupted\":%s,\"first_violation\":",
            (unsigned long long)res->versions, (unsigned long long)res->resyncs,
            (unsigned long long)res->regressions, (unsigned long long)res->alloc_mismatch,
            r->interrupted ? "true" : "false");
    json_str(f, res->first_violation);
    fputs("}\n", f);
    fflush(f);
}

int main(int argc, char **argv)
{
    run r = {0};
    cs_error err = {0};
    int status = CB_EXIT_RUN;
    switch (parse(argc, argv, &r.o, &err)) {
    case CB_PARSE_HELP:
        fputs(usage_text, stdout);
        return 0;
    case CB_PARSE_BAD:
        fprintf(stderr, "cellchaos: %s\n%s", err.msg, usage_text);
        return CB_EXIT_USAGE;
    default:
        break;
    }
    if (cc_bindir(r.bindir, sizeof r.bindir, &err) != CS_OK) {
        fprintf(stderr, "cellchaos: %s\n", err.msg);
        return CB_EXIT_RUN;
    }
    r.rng = r.o.seed;
    /* Blocked before any thread starts, so that every thread inherits the
     * mask and only signalled() takes them (each child unblocks them). */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    r.started_s = cb_now_s();
    if (setup(&r, &sigs, &err) != CS_OK) {
        fprintf(stderr, "cellchaos: %s\n", err.msg);
        goto cleanup;
    }
    fprintf(stderr, "cellchaos: cell up in %.1f s (service job %llu, %u tasks); chaos for %.0f s\n",
            cb_now_s() - r.started_s, (unsigned long long)r.service, r.service_tasks,
            r.o.duration_ms / 1000.0);
    chaos(&r, &sigs);
    cc_load_stop(r.load);
    /* Bring back everything, so that every replica can catch up. */
    tend(&r, true);
    uint64_t tried = 0, acked = 0;
    cc_load_counts(r.load, &tried, &acked);
    cc_result res;
    if (cc_check_finish(r.check, r.interrupted ? 5000 : 60000, &res, &err) != CS_OK) {
        fprintf(stderr, "cellchaos: the final check: %s\n", err.msg);
        goto cleanup;
    }
    uint32_t exits = 0;
    for (size_t i = 0; i < r.cell.nprocs; i++)
        exits += r.cell.procs[i].exits;
    report(&r, &res, tried, exits, stdout);
    /* An interrupted run did not do what was asked: 1, its data kept. */
    status = res.lost == 0 && res.overcommits == 0 && res.double_placements == 0 &&
                     res.unread == 0 && !r.interrupted
                 ? 0
                 : CB_EXIT_RUN;
    if (res.first_violation[0] != '\0')
        fprintf(stderr, "cellchaos: %s\n", res.first_violation);
cleanup:
    cc_load_free(r.load);
    cc_check_free(r.check);
    cc_cell_stop(&r.cell, 5000);
    cc_cell_free(&r.cell);
    if (r.made_dir && status == 0)
        cb_rmtree(r.dir);
    else if (r.dir[0] != '\0')
        fprintf(stderr, "cellchaos: data and logs kept in %s\n", r.dir);
    return status;
}
