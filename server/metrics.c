/* metrics.c — what cellstated measures, and its Prometheus text
 * (server.h's cs_server_metrics_text; every family in docs/metrics.md).
 *
 * Two kinds of figure:
 *
 *   counted as it happens   requests by type and outcome, commit latency,
 *                           group sizes, the store's commit (fsync) or the
 *                           Raft round's latency, commits by scheduler:
 *                           atomics and fixed-bucket histograms
 *                           (cellstate/promtext.h) on the threads that do
 *                           the work, so that the request path takes no lock
 *                           of its own for them; the commits by scheduler in
 *                           the writer's section under `mu` that the `stats`
 *                           counters already take;
 *   read at the scrape      the write queue, the machines and resources of
 *                           the cell (one snapshot, one walk of the
 *                           machines), the log, the schedulers' latest
 *                           sched.report (server/reports.c), the replica's
 *                           status, the offer.
 *
 * Omega §5 judges a scheduler by its busyness, conflict fraction and job
 * wait times; the schedulers measure those themselves and report them
 * (proto/schedreport.h), and the scrape passes them on as gauges. What the
 * cell state sees of each scheduler — its commits, their conflicts, the
 * claims placed — the server counts itself, under the name the
 * scheduler's reports give its transactions' id (cs_sched_id_of).
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cellstate/vec.h"
#include "proto/msg.h"
#include "server/internal.h"
#include "server/replica.h"

/* ---- the histograms' buckets ----------------------------------------------------- */

/* Commit latency, receipt to reply, and a Raft round (nanoseconds): a
 * commit on one replica without fsync answers in about 100 µs, with an
 * SSD's fsync in 1-5 ms, through a replicated cell on a LAN in a few ms
 * more; a scheduler's whole cycle is tens of ms, and past a second the
 * clients' timeouts are near. A 1-2.5-5 ladder from 100 µs to 10 s sees
 * each of those apart. */
static const uint64_t latency_bounds[] = {
    100000,    250000,    500000,     1000000,    2500000,    5000000,
    10000000,  25000000,  50000000,   100000000,  250000000,  500000000,
    1000000000, 2500000000, 5000000000, 10000000000,
};

/* The store's commit (nanoseconds): LMDB's page writes and fsyncs. Without
 * fsync (--nosync) tens of µs, an SSD's fsync 0.1-2 ms, a disk's 5-20 ms;
 * above 100 ms the writer, and every client behind it, is stalled. */
static const uint64_t store_bounds[] = {
    10000,    25000,    50000,     100000,    250000,    500000,   1000000, 2500000,
    5000000,  10000000, 25000000,  50000000,  100000000, 250000000, 1000000000,
};

/* Writes per group: powers of two up to the writer's GROUP_MAX (1024, so
 * the +Inf bucket stays empty): 1 is a quiet cell, the high buckets a burst
 * of agents' reports or many schedulers committing at once. */
static const uint64_t group_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};

#define NB(a) (sizeof(a) / sizeof *(a))

int srv_metrics_init(srv_metrics *m, cs_error *err)
{
    memset(m, 0, sizeof *m);
    snprintf(m->others.name, sizeof m->others.name, "%s", SRV_SCHED_OTHERS);
    CS_TRY(cs_prom_hist_init(&m->commit_ns, latency_bounds, NB(latency_bounds), 1e9, err));
    CS_TRY(cs_prom_hist_init(&m->raft_ns, latency_bounds, NB(latency_bounds), 1e9, err));
    CS_TRY(cs_prom_hist_init(&m->store_commit_ns, store_bounds, NB(store_bounds), 1e9, err));
    return cs_prom_hist_init(&m->group_writes, group_bounds, NB(group_bounds), 1, err);
}

void srv_metrics_free(srv_metrics *m)
{
    free(m->scheds);
    m->scheds = NULL;
    m->nscheds = m->capscheds = 0;
}

/* ---- counted as it happens ---------------------------------------------------------- */

static bool is_commit(uint32_t type)
{
    return type == CS_MSG_COMMIT || type == CS_MSG_OFFER_COMMIT;
}

void srv_metrics_reply(worker *w)
{
    srv_metrics *m = &w->s->metrics;
    size_t t = w->decoded && w->msg.type < CS_MSG_COUNT ? w->msg.type : CS_MSG_COUNT;
    size_t o = w->outcome >= 0 && w->outcome <= CS_ECODE_MAX ? (size_t)w->outcome
                                                               : CS_ECODE_MAX + 1;
    atomic_fetch_add_explicit(&m->requests[t][o], 1, memory_order_relaxed);
    if (t < CS_MSG_COUNT && is_commit((uint32_t)t)) {
        int64_t d = now_ns() - w->recv_ns;
        cs_prom_hist_observe(&m->commit_ns, d > 0 ? (uint64_t)d : 0);
    }
}

/* An error reply is a few hundred bytes (its message at most 255): a
 * larger reply is not one, and is not decoded here. */
#define ERROR_REPLY_MAX 1024

int srv_metrics_reply_outcome(const void *data, size_t len)
{
    if (len > ERROR_REPLY_MAX)
        return CS_OK;
    msgpack_zone zone;
    msgpack_zone_init(&zone, 512);
    cs_msg m;
    cs_error err = {0};
    int code = CS_OK;
    if (cs_msg_decode(data, len, &zone, &m, &err) != CS_OK) {
        code = CS_EPROTO; /* the leader's reply did not decode; the client will say so too */
    } else if (m.type == CS_MSG_ERROR) {
        /* Lenient: always a code, CS_EPROTO for one that is not 1..1000
         * (srv_metrics_reply counts a code outside the table as unknown). */
        cs_error_reply e;
        code = cs_error_reply_decode(&m.body, &e, NULL, &err) == CS_OK ? e.code : CS_EPROTO;
    }
    msgpack_zone_destroy(&zone);
    return code;
}

/* The counts of scheduler `id` (mu held): found, or added while there is
 * room, else the shared entry of the others. Linear: a cell has a handful
 * of schedulers, and the table is bounded. */
static srv_sched_counts *sched_counts(srv_metrics *m, uint64_t id)
{
    for (size_t i = 0; i < m->nscheds; i++)
        if (m->scheds[i].id == id)
            return &m->scheds[i];
    if (m->nscheds >= SRV_SCHED_COUNTS_MAX)
        return &m->others;
    srv_sched_counts *v =
        cs_vec_grow(m->scheds, &m->capscheds, m->nscheds + 1, sizeof *v, 8);
    if (v == NULL)
        return &m->others; /* out of memory: still counted, among the others */
    m->scheds = v;
    srv_sched_counts *c = &v[m->nscheds++];
    memset(c, 0, sizeof *c);
    c->id = id;
    return c;
}

void srv_metrics_commit(cs_server *s, uint64_t sched, const cs_txn_result *r)
{
    srv_sched_counts *c = sched_counts(&s->metrics, sched);
    c->commits++;
    c->commits_conflicted += r->conflicts > 0;
    c->claims_conflicted += r->conflicts;
    c->placements += r->committed;
}

void srv_metrics_named(cs_server *s, const char *name)
{
    uint64_t id = cs_sched_id_of(name);
    pthread_mutex_lock(&s->mu);
    srv_sched_counts *c = sched_counts(&s->metrics, id);
    if (c != &s->metrics.others)
        snprintf(c->name, sizeof c->name, "%s", name);
    pthread_mutex_unlock(&s->mu);
}

void srv_metrics_store_committed(void *ctx, uint64_t ns)
{
    cs_server *s = ctx;
    cs_prom_hist_observe(&s->metrics.store_commit_ns, ns);
}

/* ---- the text: the server --------------------------------------------------------------- */

static const char *type_label(size_t t)
{
    return t < CS_MSG_COUNT ? cs_msg_name((uint32_t)t) : "unknown";
}

static const char *outcome_label(size_t o)
{
    return o == CS_OK ? "ok" : o <= CS_ECODE_MAX ? cs_error_name((int)o) : "unknown";
}

/* Every request type with outcome "ok" (0 until one is served, so that
 * rate() sees the first), and each other pair once it happened: 30 types
 * times 16 outcomes would be 480 series mostly zero. */
static void write_requests(cs_server *s, cs_prom *p)
{
    cs_prom_family(p, "cellsched_server_requests_total", CS_PROM_COUNTER,
                   "Requests answered, by message type (docs/protocol.md; unknown: the "
                   "request did not decode) and outcome (ok, or the error code's name).");
    for (size_t t = 0; t < SRV_MTYPES; t++)
        for (size_t o = 0; o < SRV_OUTCOMES; o++) {
            uint64_t n = atomic_load_explicit(&s->metrics.requests[t][o], memory_order_relaxed);
            bool request = t < CS_MSG_COUNT && srv_route_of((uint32_t)t)->how != SRV_NONE;
            if (n == 0 && !(o == CS_OK && request))
                continue;
            cs_prom_label l[] = {{"type", type_label(t)}, {"outcome", outcome_label(o)}};
            cs_prom_u64(p, "cellsched_server_requests_total", l, 2, n);
        }
}

static void gauge(cs_prom *p, const char *name, const char *help, double v)
{
    cs_prom_family(p, name, CS_PROM_GAUGE, help);
    cs_prom_f64(p, name, NULL, 0, v);
}

static void counter(cs_prom *p, const char *name, const char *help, uint64_t v)
{
    cs_prom_family(p, name, CS_PROM_COUNTER, help);
    cs_prom_u64(p, name, NULL, 0, v);
}

static void histogram(cs_prom *p, const char *name, const char *help, const cs_prom_hist *h)
{
    cs_prom_family(p, name, CS_PROM_HISTOGRAM, help);
    cs_prom_hist_write(p, name, NULL, 0, h);
}

static void write_writer(cs_server *s, cs_prom *p)
{
    pthread_mutex_lock(&s->mu);
    counters k = s->c;
    uint32_t parked = s->nparked;
    pthread_mutex_unlock(&s->mu);
    gauge(p, "cellsched_server_write_queue_depth",
          "Writes waiting for the writer thread now.", (double)k.queued);
    counter(p, "cellsched_server_writes_total",
            "Writes the writer thread has taken (requests and the monitor's verdicts).",
            k.writes);
    gauge(p, "cellsched_server_parked_polls", "Agents' polls parked until their machine changes.",
          parked);
    gauge(p, "cellsched_server_workers", "Requests the server serves at once (--workers).",
          s->nworkers);
    gauge(p, "cellsched_server_inflight_bytes",
          "Bytes of requests received and not yet answered (bounded by --max-inflight-bytes).",
          (double)atomic_load(&s->inflight));
    counter(p, "cellsched_server_connections_refused_total",
            "Connections closed as they were made: their peer had --max-conns-per-peer open.",
            srv_peers_refused(s->peers));
    counter(p, "cellsched_audit_errors_total",
            "Audit log failures: an append that failed (its entries lost), a rotation that "
            "failed (the file grows past --audit-max-bytes), out of memory. The writes went on.",
            cs_audit_errors(s->audit));
    histogram(p, "cellsched_server_write_group_size",
              "Writes per group the writer applies in one LMDB transaction (one replica) or "
              "one Raft entry (a replicated cell).",
              &s->metrics.group_writes);
    histogram(p, "cellsched_server_commit_duration_seconds",
              "Commits (commit, offer.commit) from the request's receipt to its reply: the "
              "queue, the group's apply and its durability.",
              &s->metrics.commit_ns);
    if (s->replicated)
        histogram(p, "cellsched_raft_commit_duration_seconds",
                  "A replicated cell's group of writes from its proposal to its result: "
                  "appended on a majority of the replicas, committed and applied here (the "
                  "durability a write waits for; cellstated's own store does not fsync).",
                  &s->metrics.raft_ns);
    else
        histogram(p, "cellsched_store_commit_duration_seconds",
                  "The store's durable commits (a write, or a group of them): LMDB's page "
                  "writes and fsync (no fsync under --nosync).",
                  &s->metrics.store_commit_ns);
}

/* ---- the text: schedulers ------------------------------------------------------------- */

/* The label of a scheduler's counts: the name its reports gave, else its id
 * (a scheduler that has not reported yet, or a client that never does). */
static const char *sched_label(const srv_sched_counts *c, char *buf, size_t size)
{
    if (c->name[0] != '\0')
        return c->name;
    snprintf(buf, size, "id-%016" PRIx64, c->id);
    return buf;
}

typedef struct sched_family {
    const char *name, *help;
    size_t off; /* of the count in srv_sched_counts */
} sched_family;

static const sched_family sched_families[] = {
    {"cellsched_scheduler_commits_total",
     "Transactions a scheduler committed (commit, offer.commit; a retried request answered from "
     "its idempotency record is not counted again).",
     offsetof(srv_sched_counts, commits)},
    {"cellsched_scheduler_commits_conflicted_total",
     "Of those, the transactions in which some claim conflicted (Omega's conflict).",
     offsetof(srv_sched_counts, commits_conflicted)},
    {"cellsched_scheduler_claims_conflicted_total",
     "Claims (task placements) refused for a conflict.",
     offsetof(srv_sched_counts, claims_conflicted)},
    {"cellsched_scheduler_placements_total",
     "Claims committed: tasks placed. rate() of it is the scheduler's placements per second.",
     offsetof(srv_sched_counts, placements)},
};

static void write_sched_counts(cs_server *s, cs_prom *p)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->metrics.nscheds;
    srv_sched_counts *v = malloc((n + 1) * sizeof *v);
    if (v != NULL) {
        if (n > 0)
            memcpy(v, s->metrics.scheds, n * sizeof *v);
        v[n] = s->metrics.others;
    }
    pthread_mutex_unlock(&s->mu);
    if (v == NULL) {
        p->failed = true;
        return;
    }
    bool others = v[n].commits > 0;
    char buf[32];
    for (size_t f = 0; f < NB(sched_families); f++) {
        cs_prom_family(p, sched_families[f].name, CS_PROM_COUNTER, sched_families[f].help);
        for (size_t i = 0; i < n + others; i++) {
            cs_prom_label l[] = {{"scheduler", sched_label(&v[i], buf, sizeof buf)}};
            uint64_t x;
            memcpy(&x, (const char *)&v[i] + sched_families[f].off, sizeof x);
            cs_prom_u64(p, sched_families[f].name, l, 1, x);
        }
    }
    free(v);
}

/* The value of metric `key` in report `r` as a double; false when absent. */
static bool report_value(const cs_sched_report *r, const char *key, double *out)
{
    for (uint32_t i = 0; i < r->nmetrics; i++) {
        const cs_sched_metric *m = &r->metrics[i];
        if (strcmp(m->key, key) != 0)
            continue;
        *out = m->type == CS_METRIC_UINT  ? (double)m->v.u
               : m->type == CS_METRIC_INT ? (double)m->v.i
                                          : m->v.f;
        return true;
    }
    return false;
}

typedef struct report_family {
    const char *name, *help, *key;
    double divisor; /* to the base unit */
} report_family;

/* Gauges passed on from each scheduler's latest sched.report
 * (schedulers/metrics.h defines them). */
static const report_family report_families[] = {
    {"cellsched_scheduler_busyness_ratio",
     "Omega's scheduler busyness from the scheduler's latest report: the fraction of time it "
     "spent deciding, since it started.",
     "busyness", 1},
    {"cellsched_scheduler_busyness_wasted_ratio",
     "The part of busyness whose claims conflicted and were decided again.", "busyness_wasted",
     1},
    {"cellsched_scheduler_conflict_fraction",
     "Omega's conflict fraction from the latest report: conflicted transactions per successful "
     "one (0: none; 3: four attempts on average).",
     "conflict_fraction", 1},
    {"cellsched_scheduler_pending_tasks", "Tasks waiting for this scheduler, as last reported.",
     "pending_tasks", 1},
};

/* Job wait time percentiles (schedulers/metrics.h): to first attempt and
 * to fully placed. */
static const struct {
    const char *wait, *pct, *key;
} wait_keys[] = {
    {"first", "50", "wait_first_p50_ms"},   {"first", "90", "wait_first_p90_ms"},
    {"first", "99", "wait_first_p99_ms"},   {"placed", "50", "wait_placed_p50_ms"},
    {"placed", "90", "wait_placed_p90_ms"}, {"placed", "99", "wait_placed_p99_ms"},
};

static void write_reports(cs_server *s, cs_prom *p)
{
    int64_t now = now_ms();
    pthread_mutex_lock(&s->rmu);
    cs_sched_table_expire(&s->reports, now);
    const cs_sched_table *t = &s->reports;
    cs_prom_family(p, "cellsched_scheduler_info", CS_PROM_GAUGE,
                   "1 for each scheduler that reported within the last 10 minutes, with its "
                   "kind.");
    for (size_t i = 0; i < t->n; i++) {
        cs_prom_label l[] = {{"scheduler", t->v[i].r.name}, {"kind", t->v[i].r.kind}};
        cs_prom_u64(p, "cellsched_scheduler_info", l, 2, 1);
    }
    cs_prom_family(p, "cellsched_scheduler_report_age_seconds", CS_PROM_GAUGE,
                   "Time since the scheduler's latest sched.report.");
    for (size_t i = 0; i < t->n; i++) {
        cs_prom_label l[] = {{"scheduler", t->v[i].r.name}};
        int64_t age = now - t->v[i].seen_ms;
        cs_prom_f64(p, "cellsched_scheduler_report_age_seconds", l, 1,
                    (double)(age > 0 ? age : 0) / 1000);
    }
    for (size_t f = 0; f < NB(report_families); f++) {
        const report_family *rf = &report_families[f];
        cs_prom_family(p, rf->name, CS_PROM_GAUGE, rf->help);
        for (size_t i = 0; i < t->n; i++) {
            double v;
            cs_prom_label l[] = {{"scheduler", t->v[i].r.name}};
            if (report_value(&t->v[i].r, rf->key, &v))
                cs_prom_f64(p, rf->name, l, 1, v / rf->divisor);
        }
    }
    cs_prom_family(p, "cellsched_scheduler_job_wait_seconds", CS_PROM_GAUGE,
                   "Omega's job wait time from the latest report, by percentile over the jobs "
                   "since the scheduler started: wait=first, submission to the first scheduling "
                   "attempt; wait=placed, submission to every task placed.");
    for (size_t i = 0; i < t->n; i++)
        for (size_t k = 0; k < NB(wait_keys); k++) {
            double v;
            if (!report_value(&t->v[i].r, wait_keys[k].key, &v))
                continue;
            cs_prom_label l[] = {{"scheduler", t->v[i].r.name},
                                 {"wait", wait_keys[k].wait},
                                 {"percentile", wait_keys[k].pct}};
            cs_prom_f64(p, "cellsched_scheduler_job_wait_seconds", l, 3, v / 1000);
        }
    pthread_mutex_unlock(&s->rmu);
}

/* ---- the text: the cell ---------------------------------------------------------------- */

#define MIB 1048576.0

/* One machine as the per-machine series need it (name in the walk's arena). */
typedef struct mrow {
    const char *name;
    cs_res cap, alloc;
    uint32_t ntasks;
} mrow;

typedef struct cell_walk {
    uint32_t by_state[CS_MACHINE_STATE_COUNT];
    uint32_t by_admin[CS_ADMIN_COUNT];
    cs_res cap, alloc;
    uint64_t placed;
    bool per_machine;
    mrow *rows;
    size_t nrows, caprows;
    cs_arena a;
} cell_walk;

static int walk_machine(void *ctx, const cs_machine *m)
{
    cell_walk *c = ctx;
    if (m->state < CS_MACHINE_STATE_COUNT)
        c->by_state[m->state]++;
    if (m->admin < CS_ADMIN_COUNT)
        c->by_admin[m->admin]++;
    /* As `stats` counts them: capacity of the machines up, allocation of
     * every machine (a machine down holds nothing once its tasks are
     * lost). */
    if (m->state == CS_MACHINE_UP)
        cs_res_add(&c->cap, &m->capacity);
    cs_res_add(&c->alloc, &m->allocated);
    c->placed += m->ntasks;
    if (!c->per_machine)
        return 0;
    mrow *v = cs_vec_grow(c->rows, &c->caprows, c->nrows + 1, sizeof *v, 64);
    const char *name = cs_arena_strndup(&c->a, m->name, strlen(m->name));
    if (v == NULL || name == NULL)
        return CS_ENOMEM;
    c->rows = v;
    v[c->nrows++] = (mrow){name, m->capacity, m->allocated, m->ntasks};
    return 0;
}

/* The three resources in their base units: cpu in cores (from millicores),
 * memory and disk in bytes (from MiB). */
typedef struct res_family {
    const char *resource, *unit;
    double per; /* base units per stored unit */
} res_family;

static const res_family res_families[] = {
    {"cpu", "cores", 0.001},
    {"memory", "bytes", MIB},
    {"disk", "bytes", MIB},
};

static double res_of(const cs_res *r, size_t i)
{
    return (double)(i == 0 ? r->cpu : i == 1 ? r->mem : r->disk) * res_families[i].per;
}

/* cellsched_{cell,machine}_RESOURCE_{capacity,allocated}_UNIT. */
static void res_name(char *buf, size_t size, const char *scope, size_t i, const char *what)
{
    snprintf(buf, size, "cellsched_%s_%s_%s_%s", scope, res_families[i].resource, what,
             res_families[i].unit);
}

static void write_resources(cs_prom *p, const cell_walk *c)
{
    char name[96], help[200];
    for (size_t i = 0; i < NB(res_families); i++) {
        res_name(name, sizeof name, "cell", i, "capacity");
        snprintf(help, sizeof help, "The cell's %s capacity in %s: the machines up.",
                 res_families[i].resource, res_families[i].unit);
        gauge(p, name, help, res_of(&c->cap, i));
        res_name(name, sizeof name, "cell", i, "allocated");
        snprintf(help, sizeof help, "The cell's %s in %s held by the tasks placed.",
                 res_families[i].resource, res_families[i].unit);
        gauge(p, name, help, res_of(&c->alloc, i));
    }
    gauge(p, "cellsched_cell_tasks_placed", "Tasks placed on a machine (assigned or running).",
          (double)c->placed);
}

static void write_per_machine(cs_prom *p, const cell_walk *c)
{
    char name[96], help[200];
    for (size_t i = 0; i < NB(res_families); i++)
        for (int alloc = 0; alloc < 2; alloc++) {
            res_name(name, sizeof name, "machine", i, alloc ? "allocated" : "capacity");
            snprintf(help, sizeof help, "A machine's %s %s in %s (--metrics-per-machine).",
                     res_families[i].resource, alloc ? "allocated" : "capacity",
                     res_families[i].unit);
            cs_prom_family(p, name, CS_PROM_GAUGE, help);
            for (size_t m = 0; m < c->nrows; m++) {
                cs_prom_label l[] = {{"machine", c->rows[m].name}};
                cs_prom_f64(p, name, l, 1, res_of(alloc ? &c->rows[m].alloc : &c->rows[m].cap, i));
            }
        }
    cs_prom_family(p, "cellsched_machine_tasks", CS_PROM_GAUGE,
                   "Tasks placed on a machine (--metrics-per-machine).");
    for (size_t m = 0; m < c->nrows; m++) {
        cs_prom_label l[] = {{"machine", c->rows[m].name}};
        cs_prom_u64(p, "cellsched_machine_tasks", l, 1, c->rows[m].ntasks);
    }
}

static int write_cell(cs_server *s, cs_prom *p, bool per_machine, cs_error *err)
{
    cell_walk c = {.per_machine = per_machine};
    cs_arena_init(&c.a);
    cs_snap *snap;
    int rc = srv_snap_open(s, &snap, err);
    if (rc != CS_OK)
        goto out;
    uint64_t version = cs_snap_version(snap), floor = cs_snap_floor(snap), entries = 0, bytes = 0;
    rc = cs_snap_each_machine(snap, walk_machine, &c, err);
    if (rc == CS_ENOMEM)
        rc = cs_errorf(err, CS_ENOMEM, "metrics: out of memory");
    if (rc == CS_OK)
        rc = cs_snap_log_size(snap, &entries, &bytes, err);
    srv_snap_close(s, snap);
    if (rc != CS_OK)
        goto out;
    cs_prom_family(p, "cellsched_machines", CS_PROM_GAUGE,
                   "Machines by state (up, draining, down: the agent's liveness).");
    for (int i = 0; i < CS_MACHINE_STATE_COUNT; i++) {
        cs_prom_label l[] = {{"state", cs_machine_state_name((uint8_t)i)}};
        cs_prom_u64(p, "cellsched_machines", l, 1, c.by_state[i]);
    }
    cs_prom_family(p, "cellsched_machines_admin", CS_PROM_GAUGE,
                   "Machines by the operator's word (active, cordoned, draining).");
    for (int i = 0; i < CS_ADMIN_COUNT; i++) {
        cs_prom_label l[] = {{"admin", cs_machine_admin_name((uint8_t)i)}};
        cs_prom_u64(p, "cellsched_machines_admin", l, 1, c.by_admin[i]);
    }
    write_resources(p, &c);
    if (per_machine)
        write_per_machine(p, &c);
    gauge(p, "cellsched_cell_version", "The cell version: commands that changed the store.",
          (double)version);
    gauge(p, "cellsched_log_floor_version",
          "The commit log's compaction floor: a reader behind this version gets the whole cell.",
          (double)floor);
    gauge(p, "cellsched_log_entries", "Entries in the commit log (above the floor).",
          (double)entries);
    gauge(p, "cellsched_log_size_bytes", "Bytes of the LMDB pages holding the commit log.",
          (double)bytes);
out:
    free(c.rows);
    cs_arena_free(&c.a);
    return rc;
}

/* ---- the text: replica and offers --------------------------------------------------------- */

static int write_replica(cs_server *s, cs_prom *p, cs_error *err)
{
    cs_replica_status st;
    CS_TRY(srv_replica_status(s, &st, err));
    size_t nmembers = st.nmembers;
    free(st.members);
    static const cs_role roles[] = {CS_ROLE_UNAVAILABLE, CS_ROLE_FOLLOWER, CS_ROLE_CANDIDATE,
                                    CS_ROLE_LEADER};
    cs_prom_family(p, "cellsched_replica_role", CS_PROM_GAUGE,
                   "1 for this replica's Raft role, 0 for the others.");
    for (size_t i = 0; i < NB(roles); i++) {
        cs_prom_label l[] = {{"role", cs_role_name(roles[i])}};
        cs_prom_u64(p, "cellsched_replica_role", l, 1, st.role == roles[i]);
    }
    gauge(p, "cellsched_replica_id", "This replica's member id.", (double)st.id);
    gauge(p, "cellsched_replica_leader_id", "The leader's member id as this replica knows it (0: "
          "none known).", (double)st.leader);
    gauge(p, "cellsched_replica_term", "The Raft term.", (double)st.term);
    gauge(p, "cellsched_replica_last_index", "The last entry in this replica's Raft log.",
          (double)st.last_index);
    gauge(p, "cellsched_replica_commit_index", "The Raft commit index this replica knows.",
          (double)st.commit_index);
    gauge(p, "cellsched_replica_applied_index", "The last Raft entry applied to this replica's "
          "store.", (double)st.applied_index);
    gauge(p, "cellsched_replica_snapshot_index", "The last Raft snapshot taken or installed.",
          (double)st.snapshot_index);
    gauge(p, "cellsched_replica_members", "Members of the cell's configuration.",
          (double)nmembers);
    return CS_OK;
}

static void write_offers(cs_server *s, cs_prom *p)
{
    srv_offer_view v;
    srv_offers_view(s->offers, &v);
    gauge(p, "cellsched_offer_held", "1 while a scheduler holds the offer (--concurrency offers).",
          v.held);
    cs_prom_family(p, "cellsched_offer_holder", CS_PROM_GAUGE,
                   "1 for the scheduler that holds the offer now (no series when none does).");
    if (v.held) {
        cs_prom_label l[] = {{"scheduler", v.holder}};
        cs_prom_u64(p, "cellsched_offer_holder", l, 1, 1);
    }
    gauge(p, "cellsched_offer_waiting_schedulers", "Schedulers waiting for the offer.",
          v.waiting);
    gauge(p, "cellsched_offer_machines", "Machines with something free in the offer held.",
          v.nmachines);
    char name[96], help[200];
    for (size_t i = 0; i < NB(res_families); i++) {
        snprintf(name, sizeof name, "cellsched_offer_%s_%s", res_families[i].resource,
                 res_families[i].unit);
        snprintf(help, sizeof help, "The %s in %s free when the offer held was granted (0 when "
                 "none is held).", res_families[i].resource, res_families[i].unit);
        gauge(p, name, help, res_of(&v.offered, i));
    }
    counter(p, "cellsched_offer_grants_total", "Leases on the offer granted.", v.grants);
    counter(p, "cellsched_offer_expiries_total",
            "Leases taken back because they were held past --offer-timeout.", v.expiries);
}

int cs_server_metrics_text(cs_server *s, bool per_machine, char **out, size_t *len,
                           cs_error *err)
{
    cs_prom p;
    cs_prom_init(&p);
    write_requests(s, &p);
    write_writer(s, &p);
    write_sched_counts(s, &p);
    write_reports(s, &p);
    int rc = write_cell(s, &p, per_machine, err);
    if (rc == CS_OK && s->replicated)
        rc = write_replica(s, &p, err);
    if (rc == CS_OK && s->offers != NULL)
        write_offers(s, &p);
    if (rc != CS_OK) {
        cs_prom_free(&p);
        return rc;
    }
    return cs_prom_finish(&p, out, len, err);
}
