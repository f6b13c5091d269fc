/* cellbench_etcd.c — `cellbench etcd` (see cellbench_etcd.h).
 *
 * For each member count N (default 1 and 3), in a fresh directory:
 *   1. cellsched: M machines and enough pending tasks written straight into
 *      a store (cellbench_cell.h), copied into N members' data directories,
 *      and N cellstated members of one replicated cell started on them
 *      (cellbench_replicas.h): the Raft log fsyncs, as etcd's WAL does;
 *   2. etcd: N members started with their defaults on free ports of
 *      127.0.0.1, each its own data directory (--initial-cluster on
 *      127.0.0.1 only: nothing leaves the machine); M machine keys put in
 *      transactions of 100, the revision of each noted as its keys'
 *      mod_revision;
 *   3. rounds: for each K, a run on each side, the side that goes first
 *      alternating from round to round. A run: C client threads, each
 *      connected to its side's leader before the clock starts, commit T
 *      transactions of K placements each, one after another:
 *        etcd      POST /v3/kv/txn on a keep-alive connection (the v3 JSON
 *                  gateway; cellbench_http.h): compare mod_revision == the
 *                  noted one for K random machine keys, put K new task
 *                  records of TASK_BYTES bytes; committed when "succeeded";
 *        cellsched a commit of K claims of pending tasks on random
 *                  machines (fine-grained); committed when every claim is.
 *      The window runs from the start to the last reply. Client CPU is this
 *      process's (getrusage: the client threads, nng's I/O threads, the
 *      JSON and msgpack work) over the window; server CPU is the members'.
 * Neither side conflicts: the etcd transactions put no machine key, and
 * the machines have room for every claim; what is measured is the commit
 * path (validation, replication, fsync), not retries.
 *
 * docs/benchmarks.md records measured figures.
 */
#include "tools/cellbench_etcd.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto/client.h"
#include "proto/commitmsg.h"
#include "proto/msg.h"
#include "proto/tls.h"
#include "tools/cellbench_cell.h"
#include "tools/cellbench_daemon.h"
#include "tools/cellbench_http.h"
#include "tools/cellbench_replicas.h"
#include "tools/cellbench_util.h"
#include "txn/txn.h"

const char cb_etcd_usage[] =
    "options of etcd:\n"
    "  --members LIST      member counts, each a fresh cell of each side (default 1,3)\n"
    "  --k LIST            placements per transaction (default 1,10,100)\n"
    "  --clients C         concurrent clients per side (default 4)\n"
    "  --txns T            transactions per client per run (default 200)\n"
    "  --rounds R          interleaved rounds (default 3)\n"
    "  --machines M        machines (cellsched) and machine keys (etcd) (default 10000)\n"
    "  --seed S            seed of the machine choice (default 1)\n"
    "  --etcd PATH         the etcd binary (default: etcd on $PATH; without one the\n"
    "                      benchmark is skipped: sh tools/deps.sh install bench)\n"
    "  --cellstated PATH   the server binary (default: beside cellbench)\n"
    "  --tls DIR           cellsched over mutual TLS, clients and Raft between members,\n"
    "                      with DIR's server.pem/.key and ca.pem (the client too: it acts\n"
    "                      as every role)\n"
    "                      (tools/cellsched-certs.sh DIR server; etcd stays\n"
    "                      plain)\n"
    "  --json              end the output with one line of JSON\n";

/* ---- options ----------------------------------------------------------------- */

#define MAX_LIST 8
/* etcd's --max-txn-ops default: 128 compares and 128 puts at most. */
#define K_MAX 128
#define CLIENTS_MAX 64
/* An etcd task record: the size of a cellsched task record after a claim,
 * rounded up (docs/benchmarks.md: 43 bytes with schema 3). */
#define TASK_BYTES 48

typedef struct etcd_opts {
    uint32_t members[MAX_LIST], nmembers;
    uint32_t ks[MAX_LIST], nks;
    uint32_t clients, txns, rounds, machines;
    uint64_t seed;
    const char *etcd, *cellstated;
    const char *tls_dir; /* --tls */
    cs_tls *tls;         /* its operator certificate, for the clients */
    bool json;
} etcd_opts;

/* "1,10,100": each in [min, max]. */
static int parse_list(const char *flag, const char *s, uint32_t min, uint32_t max, uint32_t *out,
                      uint32_t *n, cs_error *err)
{
    *n = 0;
    for (const char *p = s;;) {
        char item[16];
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof item)
            return cs_errorf(err, CS_EINVAL, "%s: '%s' is not a comma-separated list", flag, s);
        if (*n == MAX_LIST)
            return cs_errorf(err, CS_EINVAL, "%s: more than %d values", flag, MAX_LIST);
        memcpy(item, p, len);
        item[len] = '\0';
        int rc = cb_parse_u32(flag, item, min, max, &out[*n], err);
        if (rc != CS_OK)
            return rc;
        (*n)++;
        if (p[len] == '\0')
            return CS_OK;
        p += len + 1;
    }
}

static int etcd_parse(int argc, char **argv, etcd_opts *o, cs_error *err)
{
    *o = (etcd_opts){
        .members = {1, 3},
        .nmembers = 2,
        .ks = {1, 10, 100},
        .nks = 3,
        .clients = 4,
        .txns = 200,
        .rounds = 3,
        .machines = 10000,
        .seed = 1,
    };
    static const char *const switches[] = {"--help", "--json", NULL};
    static const char *const valued[] = {"--members", "--k",    "--clients", "--txns",
                                         "--rounds",  "--machines", "--seed", "--etcd",
                                         "--cellstated", "--tls", NULL};
    for (int i = 1; i < argc;) {
        cb_opt opt;
        if (cb_opt_next(argc, argv, &i, switches, valued, &opt, err) != CS_OK)
            return CB_PARSE_BAD;
        const char *f = opt.flag, *v = opt.val;
        int rc = CS_OK;
        if (strcmp(f, "--help") == 0)
            return CB_PARSE_HELP;
        else if (strcmp(f, "--json") == 0)
            o->json = true;
        else if (strcmp(f, "--members") == 0)
            rc = parse_list(f, v, 1, CB_REPLICAS_MAX, o->members, &o->nmembers, err);
        else if (strcmp(f, "--k") == 0)
            rc = parse_list(f, v, 1, K_MAX, o->ks, &o->nks, err);
        else if (strcmp(f, "--clients") == 0)
            rc = cb_parse_u32(f, v, 1, CLIENTS_MAX, &o->clients, err);
        else if (strcmp(f, "--txns") == 0)
            rc = cb_parse_u32(f, v, 1, 1000000, &o->txns, err);
        else if (strcmp(f, "--rounds") == 0)
            rc = cb_parse_u32(f, v, 1, 100, &o->rounds, err);
        else if (strcmp(f, "--machines") == 0)
            rc = cb_parse_u32(f, v, 1, 100000, &o->machines, err);
        else if (strcmp(f, "--seed") == 0)
            rc = cb_parse_u64(f, v, 0, UINT64_MAX, &o->seed, err);
        else if (strcmp(f, "--etcd") == 0)
            o->etcd = v;
        else if (strcmp(f, "--tls") == 0)
            o->tls_dir = v;
        else
            o->cellstated = v;
        if (rc != CS_OK)
            return CB_PARSE_BAD;
    }
    uint64_t per_k = 0;
    for (uint32_t i = 0; i < o->nks; i++)
        per_k += o->ks[i];
    if (per_k * o->clients * o->txns * o->rounds > 4000000) {
        cs_errorf(err, CS_EINVAL, "--k, --clients, --txns and --rounds ask for more than 4,000,000 "
                                  "placements per member count");
        return CB_PARSE_BAD;
    }
    return CB_PARSE_RUN;
}

/* The etcd binary: --etcd, else "etcd" in a directory of $PATH. false when
 * there is none (the benchmark is then skipped). */
static bool find_etcd(const etcd_opts *o, char *out, size_t size)
{
    if (o->etcd != NULL) {
        snprintf(out, size, "%s", o->etcd);
        return access(out, X_OK) == 0;
    }
    const char *path = getenv("PATH");
    for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
        size_t len = strcspn(p, ":");
        if (len > 0 && snprintf(out, size, "%.*s/etcd", (int)len, p) < (int)size &&
            access(out, X_OK) == 0)
            return true;
        p += len + (p[len] == ':');
    }
    return false;
}

/* The first line of `etcd --version` ("etcd Version: 3.4.23"), or "". */
static void etcd_version(const char *bin, char *out, size_t size)
{
    out[0] = '\0';
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "'%s' --version 2>/dev/null", bin);
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        return;
    if (fgets(out, (int)size, p) != NULL)
        out[strcspn(out, "\n")] = '\0';
    pclose(p);
}

/* ---- SIGINT and SIGTERM ---------------------------------------------------------- */

/* The one piece of mutable state outside main: a signal handler reaches
 * nothing else. Runs stop at the next transaction. */
static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* ---- etcd, started here ---------------------------------------------------------- */

typedef struct etcd_cluster {
    uint32_t n;
    cb_daemon d[CB_REPLICAS_MAX];
    int client_port[CB_REPLICAS_MAX], peer_port[CB_REPLICAS_MAX];
    uint32_t leader; /* index into d */
} etcd_cluster;

static void etcd_stop(etcd_cluster *e)
{
    for (uint32_t i = 0; i < e->n; i++)
        if (e->d[i].pid > 0)
            kill(e->d[i].pid, SIGTERM);
    for (uint32_t i = 0; i < e->n; i++)
        if (cb_daemon_stop(&e->d[i], 20000) == -1)
            fprintf(stderr, "cellbench etcd: etcd member %u had to be killed\n", i + 1);
    e->n = 0;
}

static double etcd_cpu_s(const etcd_cluster *e)
{
    double s = 0;
    for (uint32_t i = 0; i < e->n; i++)
        s += cb_daemon_cpu_s(&e->d[i]);
    return s;
}

/* A JSON reply of member i to `path` (GET when body is NULL): the parsed
 * object (the caller's), or NULL. */
static json_t *etcd_ask(const etcd_cluster *e, uint32_t i, const char *path, const char *body)
{
    cb_http h;
    cs_error err = {0};
    if (cb_http_open(&h, e->client_port[i], &err) != CS_OK)
        return NULL;
    int status = 0;
    const char *out;
    size_t len;
    json_t *j = NULL;
    int rc = body ? cb_http_post(&h, path, body, strlen(body), &status, &out, &len, &err)
                  : cb_http_get(&h, path, &status, &out, &len, &err);
    if (rc == CS_OK && status == 200)
        j = json_loadb(out, len, 0, NULL);
    cb_http_close(&h);
    return j;
}

/* Whether every member is healthy (it has a leader) and one of them says
 * it leads: e->leader. */
static bool etcd_ready(etcd_cluster *e)
{
    uint32_t leaders = 0;
    for (uint32_t i = 0; i < e->n; i++) {
        json_t *h = etcd_ask(e, i, "/health", NULL);
        bool healthy = h != NULL && json_is_string(json_object_get(h, "health")) &&
                       strcmp(json_string_value(json_object_get(h, "health")), "true") == 0;
        json_decref(h);
        if (!healthy)
            return false;
        /* int64 fields come as strings from the gateway. */
        json_t *s = etcd_ask(e, i, "/v3/maintenance/status", "{}");
        const char *me = json_string_value(json_object_get(json_object_get(s, "header"), "member_id"));
        const char *leader = json_string_value(json_object_get(s, "leader"));
        if (me != NULL && leader != NULL && strcmp(me, leader) == 0) {
            e->leader = i;
            leaders++;
        }
        json_decref(s);
    }
    return leaders == 1;
}

static int etcd_start(etcd_cluster *e, const char *bin, const char *dir, uint32_t n,
                      cs_error *err)
{
    memset(e, 0, sizeof *e);
    int ports[2 * CB_REPLICAS_MAX];
    int rc = cb_free_ports(2 * n, ports, err);
    if (rc != CS_OK)
        return rc;
    char initial[1024] = "";
    size_t used = 0;
    for (uint32_t i = 0; i < n; i++) {
        e->client_port[i] = ports[2 * i];
        e->peer_port[i] = ports[2 * i + 1];
        used += (size_t)snprintf(initial + used, sizeof initial - used,
                                 "%se%u=http://127.0.0.1:%d", i ? "," : "", i + 1,
                                 e->peer_port[i]);
    }
    e->n = n;
    for (uint32_t i = 0; i < n && rc == CS_OK; i++) {
        char name[16], data[400], client[64], peer[64], log[400];
        snprintf(name, sizeof name, "e%u", i + 1);
        snprintf(data, sizeof data, "%s/etcd-%u", dir, i + 1);
        snprintf(client, sizeof client, "http://127.0.0.1:%d", e->client_port[i]);
        snprintf(peer, sizeof peer, "http://127.0.0.1:%d", e->peer_port[i]);
        snprintf(log, sizeof log, "%s/etcd-%u.log", dir, i + 1);
        snprintf(e->d[i].log, sizeof e->d[i].log, "%s", log);
        snprintf(e->d[i].url, sizeof e->d[i].url, "%s", client);
        /* Everything else at etcd's defaults (fsync of the WAL, snapshot
         * count, heartbeat and election timeouts, --max-txn-ops 128). */
        char f_name[] = "--name", f_data[] = "--data-dir", f_lc[] = "--listen-client-urls",
             f_ac[] = "--advertise-client-urls", f_lp[] = "--listen-peer-urls",
             f_ap[] = "--initial-advertise-peer-urls", f_ic[] = "--initial-cluster",
             f_tok[] = "--initial-cluster-token", tok[] = "cellbench",
             f_st[] = "--initial-cluster-state", st[] = "new";
        char *argv[] = {(char *)bin, f_name, name,   f_data, data,  f_lc,  client, f_ac,
                        client,      f_lp,   peer,   f_ap,   peer,  f_ic,  initial, f_tok,
                        tok,         f_st,   st,     NULL};
        rc = cb_spawn(argv, log, &e->d[i].pid, err);
    }
    for (uint32_t waited = 0; rc == CS_OK && !etcd_ready(e); waited += 100) {
        for (uint32_t i = 0; i < n && rc == CS_OK; i++) {
            int status;
            if (e->d[i].pid > 0 && waitpid(e->d[i].pid, &status, WNOHANG) == e->d[i].pid) {
                e->d[i].pid = 0;
                rc = cs_errorf(err, CS_EIO, "etcd member %u exited with status %d (log: %s)",
                               i + 1, status, e->d[i].log);
            }
        }
        if (rc == CS_OK && waited >= 60000)
            rc = cs_errorf(err, CS_EIO, "etcd: no leader within 60 s (logs: %s/etcd-*.log)", dir);
        if (rc == CS_OK)
            cb_sleep_ms(100);
    }
    if (rc != CS_OK)
        etcd_stop(e);
    return rc;
}

/* ---- the workload ------------------------------------------------------------------ */

/* What one member count's cells hold, shared by every run on them. */
typedef struct world {
    const etcd_opts *o;
    cb_cell cell;          /* cellsched's machines and tasks */
    int64_t *machine_rev;  /* etcd: mod_revision of machine key i */
    const char *cs_url;    /* cellsched's leader */
    int etcd_port;         /* etcd's leader's client port */
    uint64_t next_task[2]; /* the next unused task number: [0] cellsched's, [1] etcd's */
    uint64_t next_req;     /* cellsched: the next request id (idempotency) */
} world;

/* One client's part of one run. */
typedef struct client {
    const world *w;
    bool etcd;
    uint32_t index, k, txns;
    uint64_t task0, req0, rng;
    uint64_t committed; /* transactions that committed whole */
    int64_t end_ns;
    int rc;
    cs_error err;
    struct gate *gate;
} client;

/* Where the clients wait, connected, until every one is: then the clock
 * starts. `abort` sends them home without a transaction. */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint32_t ready;
    bool go, abort;
} gate;

/* Say this client is connected and wait for the start; false: abort. */
static bool gate_wait(gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->ready++;
    pthread_cond_broadcast(&g->cv);
    while (!g->go)
        pthread_cond_wait(&g->cv, &g->mu);
    bool run = !g->abort;
    pthread_mutex_unlock(&g->mu);
    return run;
}

/* Wait until n clients are ready (or have given up), then open the gate. */
static void gate_open(gate *g, uint32_t n, bool abort)
{
    pthread_mutex_lock(&g->mu);
    while (!abort && g->ready < n)
        pthread_cond_wait(&g->cv, &g->mu);
    g->go = true;
    g->abort = abort;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void etcd_key(char *out, size_t size, char kind, uint64_t n)
{
    snprintf(out, size, "%c/%010" PRIu64, kind, n);
}

/* Append a base64 field "name":"..." of `s` to the buffer at *at. */
static size_t put_b64(char *buf, size_t at, const char *name, const char *s, size_t n)
{
    at += (size_t)sprintf(buf + at, "\"%s\":\"", name);
    at += cb_base64(s, n, buf + at);
    buf[at++] = '"';
    return at;
}

/* One etcd transaction's body: compare K machine keys' mod_revision, put K
 * task records. */
static size_t etcd_txn_body(client *c, char *buf, uint64_t task0)
{
    const world *w = c->w;
    size_t at = (size_t)sprintf(buf, "{\"compare\":[");
    for (uint32_t j = 0; j < c->k; j++) {
        uint64_t m = cb_rng_next(&c->rng) % w->o->machines;
        char key[32];
        etcd_key(key, sizeof key, 'm', m);
        at += (size_t)sprintf(buf + at, "%s{", j ? "," : "");
        at = put_b64(buf, at, "key", key, strlen(key));
        at += (size_t)sprintf(buf + at, ",\"target\":\"MOD\",\"result\":\"EQUAL\","
                                        "\"mod_revision\":\"%" PRId64 "\"}",
                              w->machine_rev[m]);
    }
    at += (size_t)sprintf(buf + at, "],\"success\":[");
    for (uint32_t j = 0; j < c->k; j++) {
        char key[32], value[TASK_BYTES + 1];
        etcd_key(key, sizeof key, 't', task0 + j);
        /* The claim: which task, on which machine, for how much. */
        snprintf(value, sizeof value, "%-*s", TASK_BYTES, "placed cpu=10 mem=16");
        at += (size_t)sprintf(buf + at, "%s{\"request_put\":{", j ? "," : "");
        at = put_b64(buf, at, "key", key, strlen(key));
        buf[at++] = ',';
        at = put_b64(buf, at, "value", value, TASK_BYTES);
        at += (size_t)sprintf(buf + at, "}}");
    }
    at += (size_t)sprintf(buf + at, "]}");
    return at;
}

/* The most one body takes: per placement, a compare and a put with their
 * base64 fields. */
static size_t etcd_body_max(uint32_t k) { return 256 + (size_t)k * 400; }

static int etcd_client(client *c)
{
    cb_http h;
    int rc = cb_http_open(&h, c->w->etcd_port, &c->err);
    char *body = rc == CS_OK ? malloc(etcd_body_max(c->k)) : NULL;
    if (rc == CS_OK && body == NULL)
        rc = cs_errorf(&c->err, CS_ENOMEM, "out of memory");
    if (rc != CS_OK) {
        /* Counted as ready, so that the others are not held. */
        gate_wait(c->gate);
        cb_http_close(&h);
        return rc;
    }
    bool go = gate_wait(c->gate);
    for (uint32_t i = 0; go && i < c->txns && rc == CS_OK && !interrupted; i++) {
        size_t len = etcd_txn_body(c, body, c->task0 + (uint64_t)i * c->k);
        int status;
        const char *out;
        size_t out_len;
        if ((rc = cb_http_post(&h, "/v3/kv/txn", body, len, &status, &out, &out_len, &c->err)) !=
            CS_OK)
            break;
        json_t *j = status == 200 ? json_loadb(out, out_len, 0, NULL) : NULL;
        if (j == NULL)
            rc = cs_errorf(&c->err, CS_EPROTO, "etcd txn: status %d: %.200s", status, out);
        else if (json_is_true(json_object_get(j, "succeeded")))
            c->committed++;
        json_decref(j);
    }
    c->end_ns = cb_now_ns();
    free(body);
    cb_http_close(&h);
    return rc;
}

static const cs_res claim_res = {.cpu = 10, .mem = 16, .disk = 0};

static int cellsched_client(client *c)
{
    cs_client *cl;
    int rc = cs_client_open_tls(c->w->cs_url, c->w->o->tls, 60000, &cl, &c->err);
    if (rc != CS_OK) {
        gate_wait(c->gate); /* counted as ready, so that the others are not held */
        return rc;
    }
    cs_txn t;
    /* One scheduler id per client, so that request ids never collide. */
    cs_txn_init(&t, c->index + 1, 0, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    cs_arena a;
    cs_arena_init(&a);
    bool go = gate_wait(c->gate);
    for (uint32_t i = 0; go && i < c->txns && rc == CS_OK && !interrupted; i++) {
        cs_txn_reset(&t, c->req0 + i, 0);
        uint64_t g0 = c->task0 + (uint64_t)i * c->k;
        for (uint32_t j = 0; j < c->k && rc == CS_OK; j++) {
            cs_id m = c->w->cell.machines[cb_rng_next(&c->rng) % c->w->o->machines];
            if (cs_txn_add_claim(&t, cb_cell_task(&c->w->cell, g0 + j), m, &claim_res, NULL, 0,
                                 0) != CS_OK)
                rc = cs_errorf(&c->err, CS_ENOMEM, "out of memory");
        }
        buf.size = 0;
        if (rc == CS_OK && cs_commit_req_encode(&buf, &t) != CS_OK)
            rc = cs_errorf(&c->err, CS_ENOMEM, "out of memory");
        cs_msg r;
        if (rc != CS_OK || (rc = cs_client_callb(cl, CS_MSG_COMMIT, &buf, &r, &c->err)) != CS_OK)
            break;
        cs_arena_reset(&a);
        cs_commit_reply cr;
        if ((rc = cs_commit_reply_decode(&r.body, &cr, &a, &c->err)) == CS_OK &&
            cr.committed == c->k)
            c->committed++;
    }
    c->end_ns = cb_now_ns();
    cs_arena_free(&a);
    msgpack_sbuffer_destroy(&buf);
    cs_txn_free(&t);
    cs_client_close(cl);
    return rc;
}

static void *client_main(void *arg)
{
    client *c = arg;
    c->rc = c->etcd ? etcd_client(c) : cellsched_client(c);
    return NULL;
}

/* ---- one run ----------------------------------------------------------------------- */

typedef struct run {
    uint32_t members, k, round;
    bool etcd;
    uint64_t txns, committed;
    double window_s, client_cpu_s, server_cpu_s;
} run;

static double process_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* C clients of one side, T transactions of K each. */
static int run_side(world *w, bool etcd, uint32_t k, const cb_replicas *reps,
                    const etcd_cluster *ec, run *out, cs_error *err)
{
    const etcd_opts *o = w->o;
    client cs[CLIENTS_MAX];
    pthread_t th[CLIENTS_MAX];
    gate g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    memset(cs, 0, sizeof cs);
    for (uint32_t i = 0; i < o->clients; i++) {
        cs[i] = (client){.w = w, .etcd = etcd, .index = i, .k = k, .txns = o->txns,
                         .task0 = w->next_task[etcd], .req0 = w->next_req,
                         .rng = cb_rng_seed(o->seed, w->next_task[etcd] + i), .gate = &g};
        w->next_task[etcd] += (uint64_t)o->txns * k;
        w->next_req += o->txns;
    }
    uint32_t started = 0;
    int rc = CS_OK;
    for (; started < o->clients; started++)
        if (pthread_create(&th[started], NULL, client_main, &cs[started]) != 0) {
            rc = cs_errorf(err, CS_ENOMEM, "starting a client thread");
            break;
        }
    double scpu0 = etcd ? etcd_cpu_s(ec) : cb_replicas_cpu_s(reps);
    double ccpu0 = process_cpu_s();
    /* Without every thread, the ones that started go home at once. */
    gate_open(&g, started, rc != CS_OK);
    int64_t t0 = cb_now_ns(), end = t0;
    for (uint32_t i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    out->client_cpu_s = process_cpu_s() - ccpu0;
    out->server_cpu_s = (etcd ? etcd_cpu_s(ec) : cb_replicas_cpu_s(reps)) - scpu0;
    pthread_mutex_destroy(&g.mu);
    pthread_cond_destroy(&g.cv);
    if (rc != CS_OK)
        return rc;
    out->etcd = etcd;
    out->k = k;
    out->txns = out->committed = 0;
    for (uint32_t i = 0; i < o->clients; i++) {
        if (cs[i].rc != CS_OK && rc == CS_OK) {
            rc = cs[i].rc;
            *err = cs[i].err;
        }
        out->committed += cs[i].committed;
        out->txns += o->txns;
        if (cs[i].end_ns > end)
            end = cs[i].end_ns;
    }
    out->window_s = (double)(end - t0) / 1e9;
    if (rc == CS_OK && interrupted)
        rc = cs_errorf(err, CS_EIO, "interrupted");
    return rc;
}

/* ---- one member count ------------------------------------------------------------------ */

/* Put machine keys m/0 .. m/M-1 in transactions of 100 puts, noting each
 * transaction's revision as its keys' mod_revision. */
static int etcd_put_machines(world *w, cs_error *err)
{
    cb_http h;
    int rc = cb_http_open(&h, w->etcd_port, err);
    if (rc != CS_OK)
        return rc;
    char *body = malloc(etcd_body_max(100));
    if (body == NULL) {
        cb_http_close(&h);
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    }
    for (uint32_t m0 = 0; m0 < w->o->machines && rc == CS_OK; m0 += 100) {
        uint32_t n = w->o->machines - m0 < 100 ? w->o->machines - m0 : 100;
        size_t at = (size_t)sprintf(body, "{\"success\":[");
        for (uint32_t j = 0; j < n; j++) {
            char key[32], value[] = "machine cpu=64000 mem=262144";
            etcd_key(key, sizeof key, 'm', m0 + j);
            at += (size_t)sprintf(body + at, "%s{\"request_put\":{", j ? "," : "");
            at = put_b64(body, at, "key", key, strlen(key));
            body[at++] = ',';
            at = put_b64(body, at, "value", value, strlen(value));
            at += (size_t)sprintf(body + at, "}}");
        }
        at += (size_t)sprintf(body + at, "]}");
        int status;
        const char *out;
        size_t len;
        if ((rc = cb_http_post(&h, "/v3/kv/txn", body, at, &status, &out, &len, err)) != CS_OK)
            break;
        json_t *j = status == 200 ? json_loadb(out, len, 0, NULL) : NULL;
        const char *rev =
            json_string_value(json_object_get(json_object_get(j, "header"), "revision"));
        if (rev == NULL)
            rc = cs_errorf(err, CS_EPROTO, "etcd: putting machines: status %d: %.200s", status,
                           out);
        else
            for (uint32_t k = 0; k < n; k++)
                w->machine_rev[m0 + k] = strtoll(rev, NULL, 10);
        json_decref(j);
    }
    free(body);
    cb_http_close(&h);
    return rc;
}

/* cellsched's cell: machines with room for every claim, and the tasks. */
static int write_cell(const etcd_opts *o, const char *data, cb_cell *cell, cs_error *err)
{
    uint64_t per_round = 0;
    for (uint32_t i = 0; i < o->nks; i++)
        per_round += (uint64_t)o->ks[i] * o->clients * o->txns;
    cs_store *s;
    cs_store_opts so = {.nosync = true};
    int rc = cs_store_open(data, &so, &s, err);
    if (rc != CS_OK)
        return rc;
    cb_cell_spec spec = {
        .machines = o->machines,
        .ntasks = per_round * o->rounds,
        .task_res = claim_res,
        .machine_cap = {.cpu = 64000, .mem = 256 * 1024, .disk = 1000 * 1000},
    };
    /* Random claims: a machine gets a few times the average at worst. */
    uint64_t worst = (spec.ntasks + o->machines - 1) / o->machines * 4 + 64;
    if (worst * (uint64_t)claim_res.cpu > (uint64_t)spec.machine_cap.cpu)
        spec.machine_cap.cpu = (int64_t)worst * claim_res.cpu;
    if (worst * (uint64_t)claim_res.mem > (uint64_t)spec.machine_cap.mem)
        spec.machine_cap.mem = (int64_t)worst * claim_res.mem;
    rc = cb_cell_setup(s, &spec, cell, err);
    if (rc == CS_OK)
        rc = cb_replicas_mark_seed(s, err); /* the members' common seed */
    cs_store_close(s);
    return rc;
}

static void print_run(const run *r)
{
    double tps = cb_per_s((double)r->committed, r->window_s);
    fprintf(stderr,
            "cellbench etcd: %u member%s K %3u, round %u, %-9s %9.1f txn/s %10.0f "
            "placements/s  client cpu %.2f cores, servers %.2f cores%s\n",
            r->members, r->members == 1 ? ", " : "s,", r->k, r->round + 1,
            r->etcd ? "etcd" : "cellsched", tps, tps * r->k, r->client_cpu_s / r->window_s,
            r->server_cpu_s / r->window_s,
            r->committed < r->txns ? "  (some did not commit)" : "");
}

static int run_members(const etcd_opts *o, const char *etcd_bin, const char *cs_bin,
                       const char *root, uint32_t n, run *runs, uint32_t *nruns, cs_error *err)
{
    char dir[300], data[330], name[32];
    snprintf(name, sizeof name, "members-%u", n);
    int rc = cb_make_subdir(root, name, dir, sizeof dir, err);
    if (rc != CS_OK)
        return rc;
    world w = {.o = o};
    cb_replicas reps = {0};
    etcd_cluster ec = {0};
    w.machine_rev = calloc(o->machines, sizeof *w.machine_rev);
    if (w.machine_rev == NULL) {
        rc = cs_errorf(err, CS_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = cb_replicas_data_dir(dir, 0, data, sizeof data, err)) != CS_OK)
        goto done;
    if (mkdir(data, 0755) != 0) {
        rc = cs_errorf(err, CS_EIO, "%s: %s", data, strerror(errno));
        goto done;
    }
    fprintf(stderr, "cellbench etcd: %u member%s: writing the cell, starting both sides ...\n",
            n, n == 1 ? "" : "s");
    /* No agent heartbeats here: a day's timeout, or the leader's monitor
     * would mark every machine down after 10 s and refuse their claims. */
    char f_workers[] = "--workers", workers[] = "256", f_hb[] = "--heartbeat-timeout",
         hb[] = "86400000";
    char *extra[] = {f_workers, workers, f_hb, hb, NULL};
    if ((rc = write_cell(o, data, &w.cell, err)) != CS_OK ||
        (rc = cb_replicas_copy_store(dir, n, err)) != CS_OK ||
        (rc = cb_replicas_start_tls(&reps, cs_bin, dir, n, extra, o->tls_dir, o->tls, 60000,
                                    err)) != CS_OK)
        goto done;
    w.cs_url = reps.d[reps.leader].url;
    if ((rc = etcd_start(&ec, etcd_bin, dir, n, err)) != CS_OK)
        goto done;
    w.etcd_port = ec.client_port[ec.leader];
    if ((rc = etcd_put_machines(&w, err)) != CS_OK)
        goto done;
    w.next_req = 1;
    for (uint32_t r = 0; r < o->rounds && rc == CS_OK; r++)
        for (uint32_t ki = 0; ki < o->nks && rc == CS_OK; ki++)
            for (uint32_t side = 0; side < 2 && rc == CS_OK; side++) {
                /* Who goes first alternates from round to round, so that
                 * a drift of the machine's speed favours neither. */
                bool etcd = (side + r) % 2 == 1;
                run *x = &runs[*nruns];
                *x = (run){.members = n, .round = r};
                if ((rc = run_side(&w, etcd, o->ks[ki], &reps, &ec, x, err)) != CS_OK)
                    break;
                if ((rc = cb_replicas_check(&reps, err)) != CS_OK)
                    break;
                print_run(x);
                (*nruns)++;
            }
done:
    etcd_stop(&ec);
    if (cb_replicas_stop(&reps, 30000) > 0)
        fprintf(stderr, "cellbench etcd: a cellstated member had to be killed\n");
    free(w.machine_rev);
    cb_cell_free(&w.cell);
    cb_rmtree(dir);
    return rc;
}

/* ---- the report ---------------------------------------------------------------------- */

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* The median over the rounds of one (members, K, side). */
typedef struct summary {
    uint32_t members, k;
    double txn_per_s[2], client_cores[2], server_cores[2]; /* [0] cellsched, [1] etcd */
    uint64_t failed[2]; /* transactions that did not commit, over the rounds */
} summary;

static double median(double *v, size_t n)
{
    if (n == 0)
        return (double)NAN;
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void summarize(const run *runs, uint32_t nruns, uint32_t members, uint32_t k,
                      summary *s)
{
    *s = (summary){.members = members, .k = k};
    for (int side = 0; side < 2; side++) {
        double tps[100], cc[100], sc[100];
        size_t n = 0;
        for (uint32_t i = 0; i < nruns && n < 100; i++) {
            const run *r = &runs[i];
            if (r->members != members || r->k != k || r->etcd != (side == 1))
                continue;
            tps[n] = cb_per_s((double)r->committed, r->window_s);
            cc[n] = r->client_cpu_s / r->window_s;
            sc[n] = r->server_cpu_s / r->window_s;
            s->failed[side] += r->txns - r->committed;
            n++;
        }
        s->txn_per_s[side] = median(tps, n);
        s->client_cores[side] = median(cc, n);
        s->server_cores[side] = median(sc, n);
    }
}

static void report(FILE *out, const etcd_opts *o, const cb_host *h, const char *version,
                   const run *runs, uint32_t nruns)
{
    fprintf(out, "cellbench etcd: %u clients, %u transactions each per run, %u rounds, %u "
                 "machines; %s; cellsched: Raft cells of cellstated%s\n",
            o->clients, o->txns, o->rounds, o->machines, version,
            o->tls != NULL ? " over mutual TLS (clients and Raft)" : "");
    fprintf(out, "machine: nproc %ld, cpu %s\n", h->nproc, h->cpu);
    fprintf(out, "medians over the rounds; cpu in cores (client: this process; servers: all "
                 "members)\n");
    fprintf(out, "%7s %4s %14s %14s %16s %16s %8s %11s %11s %11s %11s\n", "members", "K",
            "cellsched tx/s", "etcd tx/s", "cellsched pl/s", "etcd pl/s", "ratio", "cs client",
            "etcd client", "cs servers", "etcd srv");
    for (uint32_t mi = 0; mi < o->nmembers; mi++)
        for (uint32_t ki = 0; ki < o->nks; ki++) {
            summary s;
            summarize(runs, nruns, o->members[mi], o->ks[ki], &s);
            char a[32];
            fprintf(out, "%7u %4u %14.1f %14.1f %16.0f %16.0f %8s %11.2f %11.2f %11.2f %11.2f%s\n",
                    s.members, s.k, s.txn_per_s[0], s.txn_per_s[1], s.txn_per_s[0] * s.k,
                    s.txn_per_s[1] * s.k,
                    cb_fig(a, sizeof a, s.txn_per_s[0] / s.txn_per_s[1], 2), s.client_cores[0],
                    s.client_cores[1], s.server_cores[0], s.server_cores[1],
                    s.failed[0] || s.failed[1] ? "  (some transactions did not commit)" : "");
        }
}

static void report_json(FILE *out, const etcd_opts *o, const cb_host *h, const char *version,
                        const run *runs, uint32_t nruns)
{
    cb_json j = {out, true};
    cb_json_str(&j, "benchmark", "etcd");
    cb_json_bool(&j, "skipped", false);
    cb_json_str(&j, "etcd_version", version);
    cb_json_bool(&j, "tls", o->tls != NULL);
    cb_json_u64(&j, "clients", o->clients);
    cb_json_u64(&j, "txns_per_client", o->txns);
    cb_json_u64(&j, "rounds", o->rounds);
    cb_json_u64(&j, "machines", o->machines);
    cb_json_u64(&j, "nproc", h->nproc > 0 ? (uint64_t)h->nproc : 0);
    cb_json_str(&j, "cpu", h->cpu);
    fputs(",\"runs\":[", out);
    for (uint32_t i = 0; i < nruns; i++) {
        const run *r = &runs[i];
        cb_json x = {out, true};
        if (i > 0)
            fputc(',', out);
        cb_json_str(&x, "side", r->etcd ? "etcd" : "cellsched");
        cb_json_u64(&x, "members", r->members);
        cb_json_u64(&x, "k", r->k);
        cb_json_u64(&x, "round", r->round + 1);
        cb_json_u64(&x, "txns", r->txns);
        cb_json_u64(&x, "committed", r->committed);
        cb_json_real(&x, "window_s", r->window_s);
        cb_json_real(&x, "txn_per_s", cb_per_s((double)r->committed, r->window_s));
        cb_json_real(&x, "placements_per_s", cb_per_s((double)r->committed * r->k, r->window_s));
        cb_json_real(&x, "client_cpu_s", r->client_cpu_s);
        cb_json_real(&x, "server_cpu_s", r->server_cpu_s);
        fputc('}', out);
    }
    fputs("],\"summary\":[", out);
    bool first = true;
    for (uint32_t mi = 0; mi < o->nmembers; mi++)
        for (uint32_t ki = 0; ki < o->nks; ki++) {
            summary s;
            summarize(runs, nruns, o->members[mi], o->ks[ki], &s);
            cb_json x = {out, true};
            if (!first)
                fputc(',', out);
            first = false;
            cb_json_u64(&x, "members", s.members);
            cb_json_u64(&x, "k", s.k);
            cb_json_real(&x, "cellsched_txn_per_s", s.txn_per_s[0]);
            cb_json_real(&x, "etcd_txn_per_s", s.txn_per_s[1]);
            cb_json_real(&x, "cellsched_placements_per_s", s.txn_per_s[0] * s.k);
            cb_json_real(&x, "etcd_placements_per_s", s.txn_per_s[1] * s.k);
            cb_json_real(&x, "ratio", s.txn_per_s[0] / s.txn_per_s[1]);
            cb_json_real(&x, "cellsched_client_cores", s.client_cores[0]);
            cb_json_real(&x, "etcd_client_cores", s.client_cores[1]);
            cb_json_real(&x, "cellsched_server_cores", s.server_cores[0]);
            cb_json_real(&x, "etcd_server_cores", s.server_cores[1]);
            cb_json_u64(&x, "cellsched_failed", s.failed[0]);
            cb_json_u64(&x, "etcd_failed", s.failed[1]);
            fputc('}', out);
        }
    fputc(']', out);
    cb_json_end(&j);
}

/* ---- main ------------------------------------------------------------------------------ */

int cb_etcd_main(int argc, char **argv)
{
    etcd_opts o;
    cs_error err = {0};
    int done = cb_parse_exit(etcd_parse(argc, argv, &o, &err), "etcd", cb_etcd_usage, &err);
    if (done >= 0)
        return done;
    char etcd_bin[4096], cs_bin[4096], version[128];
    if (!find_etcd(&o, etcd_bin, sizeof etcd_bin)) {
        const char *why = o.etcd ? "the --etcd binary is not an executable"
                                 : "etcd is not installed";
        printf("cellbench etcd: skipped: %s (sh tools/deps.sh install bench installs Debian's "
               "etcd-server)\n",
               why);
        if (o.json) {
            cb_json j = {stdout, true};
            cb_json_str(&j, "benchmark", "etcd");
            cb_json_bool(&j, "skipped", true);
            cb_json_str(&j, "reason", why);
            cb_json_end(&j);
        }
        return fflush(stdout) == 0 ? 0 : CB_EXIT_RUN;
    }
    etcd_version(etcd_bin, version, sizeof version);
    int rc = cb_cellstated_path(o.cellstated, cs_bin, sizeof cs_bin, &err);
    if (rc == CS_OK && o.tls_dir != NULL) {
        char cert[400], key[400], ca[400];
        /* The benchmark's client registers machines, submits and commits:
         * every role at once, which only a replica's certificate holds
         * (docs/security.md "Roles"). */
        snprintf(cert, sizeof cert, "%s/server.pem", o.tls_dir);
        snprintf(key, sizeof key, "%s/server.key", o.tls_dir);
        snprintf(ca, sizeof ca, "%s/ca.pem", o.tls_dir);
        cs_tls_files f = {.cert = cert, .key = key, .ca = ca};
        if ((rc = cs_tls_load(&f, &o.tls, &err)) != CS_OK)
            cs_error_wrap(&err, rc, "--tls %s", o.tls_dir);
    }
    if (rc != CS_OK) {
        fprintf(stderr, "cellbench etcd: %s\n", err.msg);
        return CB_EXIT_RUN;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    uint32_t cap = o.nmembers * o.nks * o.rounds * 2, nruns = 0;
    run *runs = calloc(cap, sizeof *runs);
    char root[256];
    if (runs == NULL) {
        fprintf(stderr, "cellbench etcd: out of memory\n");
        cs_tls_free(o.tls);
        return CB_EXIT_RUN;
    }
    if ((rc = cb_make_tmpdir(root, sizeof root, &err)) == CS_OK) {
        for (uint32_t i = 0; i < o.nmembers && rc == CS_OK; i++)
            rc = run_members(&o, etcd_bin, cs_bin, root, o.members[i], runs, &nruns, &err);
        cb_rmtree(root);
    }
    if (rc != CS_OK) {
        fprintf(stderr, "cellbench etcd: %s (%s)\n", err.msg, cs_strerror(rc));
        free(runs);
        cs_tls_free(o.tls);
        return CB_EXIT_RUN;
    }
    cb_host h;
    cb_host_read(&h);
    report(stdout, &o, &h, version, runs, nruns);
    if (o.json)
        report_json(stdout, &o, &h, version, runs, nruns);
    free(runs);
    cs_tls_free(o.tls);
    return fflush(stdout) == 0 ? 0 : CB_EXIT_RUN;
}
