/* cellbench_poll.c — `cellbench poll` (see cellbench_poll.h).
 *
 * One run:
 *   1. writes a cell of N machines and enough pending tasks straight into a
 *      store in a temporary directory (setup, not timed);
 *   2. starts a real cellstated on that directory, on 127.0.0.1;
 *   3. starts N simulated machines: each keeps one `poll` outstanding with
 *      since = the version of its last reply, through nng contexts spread
 *      over a few REQ sockets (a handful of agents' connections), not one
 *      thread per machine; a small pool of contexts sends every machine a
 *      heartbeat every third of the heartbeat timeout;
 *   4. once every poll is parked, commits assignments (claims of pending
 *      tasks on random machines, B per commit) at the asked rate, recording
 *      for each claim when its commit was sent and when the reply came back;
 *   5. each simulated machine notes when a reply first lists a task, and the
 *      run waits for the stragglers before it stops everything.
 *
 * With --replicas N the store written in step 1 is copied into every
 * member's data directory and N cellstated members of one replicated cell
 * start on it (cellbench_replicas.h); the commits go to the leader and the
 * machines' connections to the followers, taken in turn, so that a claim
 * is seen once a follower has applied it: commit to the leader, Raft to
 * the follower, its poll's reply.
 *
 * docs/benchmarks.md defines every figure and records measured ones.
 */
#include "tools/cellbench_poll.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "proto/agentmsg.h"
#include "proto/client.h"
#include "proto/commitmsg.h"
#include "proto/proto.h"
#include "proto/readmsg.h"
#include "tools/cellbench_cell.h"
#include "tools/cellbench_daemon.h"
#include "tools/cellbench_replicas.h"
#include "tools/cellbench_util.h"
#include "txn/txn.h"

const char cb_poll_usage[] =
    "options of poll:\n"
    "  --machines N        simulated machines, each long-polling (default 10000)\n"
    "  --batch B           claims per commit (default 10)\n"
    "  --rate R            commits per second; 0 = one after another (default 100)\n"
    "  --duration S        seconds of commits (default 10)\n"
    "  --commits C         commit exactly C times instead of for --duration\n"
    "  --wait-ms W         each poll's wait_ms (default 25000)\n"
    "  --connections K     REQ sockets the machines share (default 8)\n"
    "  --heartbeat-timeout MS  cellstated's heartbeat timeout; every machine\n"
    "                      heartbeats every MS/3 (default 10000, the server's);\n"
    "                      0 = no heartbeats, and a timeout of one day\n"
    "  --straggler-ms MS   after the last commit, wait this long at most for\n"
    "                      unseen assignments (default: wait-ms + 5000)\n"
    "  --seed S            seed of the machine choice (default 1)\n"
    "  --cellstated PATH   the server binary (default: beside cellbench)\n"
    "  --nosync            start cellstated with --nosync (default: fsync per commit;\n"
    "                      with --replicas, the Raft log fsyncs whatever this says)\n"
    "  --replicas N        N cellstated members of one replicated cell (1 to 5): the\n"
    "                      commits go to the leader, the machines poll the\n"
    "                      followers (default: one plain cellstated)\n"
    "  --json              end the output with one line of JSON\n";

/* ---- options ----------------------------------------------------------------- */

typedef struct poll_opts {
    uint32_t machines, batch, rate, duration_s, wait_ms, connections, heartbeat_timeout_ms;
    uint64_t commits; /* 0: for duration_s */
    uint32_t straggler_ms;
    uint32_t replicas; /* 0: one plain cellstated */
    uint64_t seed;
    const char *cellstated;
    bool nosync, json;
} poll_opts;

/* Setup writes every task before cellstated starts; beyond this it would
 * take minutes. */
#define POLL_TASKS_MAX 2000000u
/* What every task asks for, and what each claim takes: small, so that
 * machines never fill up and every claim commits. */
static const cs_res poll_task_res = {.cpu = 10, .mem = 16, .disk = 0};

/* Tasks submitted for "--rate 0 --duration S": commits stop early when they
 * run out. */
#define POLL_TASKS_UNPACED 200000u

static int poll_parse(int argc, char **argv, poll_opts *o, cs_error *err)
{
    *o = (poll_opts){
        .machines = 10000,
        .batch = 10,
        .rate = 100,
        .duration_s = 10,
        .wait_ms = 25000,
        .connections = 8,
        .heartbeat_timeout_ms = 10000,
        .straggler_ms = UINT32_MAX,
        .seed = 1,
    };
    static const char *const switches[] = {"--help", "--nosync", "--json", NULL};
    static const char *const valued[] = {
        "--machines", "--batch",      "--rate",        "--duration",          "--commits",
        "--wait-ms",  "--connections", "--heartbeat-timeout", "--straggler-ms", "--seed",
        "--cellstated", "--replicas", NULL};
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
        else if (strcmp(f, "--machines") == 0)
            rc = cb_parse_u32(f, v, 1, 100000, &o->machines, err);
        else if (strcmp(f, "--batch") == 0)
            rc = cb_parse_u32(f, v, 1, 100000, &o->batch, err);
        else if (strcmp(f, "--rate") == 0)
            rc = cb_parse_u32(f, v, 0, 1000000, &o->rate, err);
        else if (strcmp(f, "--duration") == 0)
            rc = cb_parse_u32(f, v, 1, 86400, &o->duration_s, err);
        else if (strcmp(f, "--commits") == 0)
            rc = cb_parse_u64(f, v, 1, POLL_TASKS_MAX, &o->commits, err);
        else if (strcmp(f, "--wait-ms") == 0)
            rc = cb_parse_u32(f, v, 1, 3600000, &o->wait_ms, err);
        else if (strcmp(f, "--connections") == 0)
            rc = cb_parse_u32(f, v, 1, 1000, &o->connections, err);
        else if (strcmp(f, "--heartbeat-timeout") == 0)
            rc = cb_parse_u32(f, v, 0, 86400000, &o->heartbeat_timeout_ms, err);
        else if (strcmp(f, "--straggler-ms") == 0)
            rc = cb_parse_u32(f, v, 0, 3600000, &o->straggler_ms, err);
        else if (strcmp(f, "--seed") == 0)
            rc = cb_parse_u64(f, v, 0, UINT64_MAX, &o->seed, err);
        else if (strcmp(f, "--replicas") == 0)
            rc = cb_parse_u32(f, v, 1, CB_REPLICAS_MAX, &o->replicas, err);
        else
            o->cellstated = v;
        if (rc != CS_OK)
            return CB_PARSE_BAD;
    }
    if (o->straggler_ms == UINT32_MAX)
        o->straggler_ms = o->wait_ms + 5000;
    return CB_PARSE_RUN;
}

/* Claims the run may commit: every commit of --commits, or of --rate for
 * --duration; unpaced runs get a fixed pool. */
static int claims_planned(const poll_opts *o, uint64_t *out, cs_error *err)
{
    uint64_t commits = o->commits ? o->commits
                       : o->rate  ? (uint64_t)o->rate * o->duration_s
                                  : (POLL_TASKS_UNPACED + o->batch - 1) / o->batch;
    uint64_t n = commits * o->batch;
    if (n > POLL_TASKS_MAX)
        return cs_errorf(err, CS_EINVAL, "%" PRIu64 " claims planned, more than %u", n,
                         POLL_TASKS_MAX);
    *out = n;
    return CS_OK;
}

/* ---- the run's shared state ------------------------------------------------ */

typedef struct poll_bench poll_bench;

enum { A_SEND, A_RECV, A_BACKOFF };

/* One simulated machine: a context of one of the shared REQ sockets, and
 * the version its next poll asks about. */
typedef struct agent {
    poll_bench *b;
    nng_ctx ctx;
    nng_aio *aio;
    cs_id machine;
    uint64_t since, req;
    int state;
} agent;

/* A heartbeat context: idle, or carrying one heartbeat. The pacing thread
 * hands heartbeats to idle ones. */
typedef struct heart {
    poll_bench *b;
    nng_ctx ctx;
    nng_aio *aio;
    atomic_bool busy;
    bool sending;
    uint64_t req;
} heart;

typedef struct counters {
    atomic_uint_fast64_t replies;   /* poll replies, all kinds */
    atomic_uint_fast64_t news;      /* ... that listed a task for the first time */
    atomic_uint_fast64_t errors;    /* poll errors and timeouts of the REQ */
    atomic_uint_fast64_t first;     /* machines that have had their first reply */
    atomic_uint_fast64_t heartbeats;
    atomic_uint_fast64_t hb_errors;
    atomic_uint_fast64_t hb_down;   /* heartbeats answered "down" */
    atomic_uint_fast64_t hb_late;   /* due with every heartbeat context busy */
    atomic_uint_fast64_t unknown;   /* tasks listed that the run never committed */
    atomic_uint_fast64_t seen;      /* claims seen by their machine */
} counters;

struct poll_bench {
    const poll_opts *o;
    cb_cell cell;
    atomic_bool stopping;
    nng_socket *socks;
    uint32_t nsocks;
    agent *agents;
    heart *hearts;
    uint32_t nhearts;
    pthread_t pacer;
    bool pacer_started;
    counters c;
    /* Per claim (task number g of the cell): when its commit was sent, when
     * the reply came, and when its machine first saw it (0: not yet). */
    int64_t *sent_ns, *acked_ns;
    _Atomic int64_t *seen_ns;
    uint8_t *committed;
};

/* ---- requests through a context ------------------------------------------- */

static int append_msg(void *data, const char *buf, size_t len)
{
    return nng_msg_append(data, buf, len);
}

/* Start a request of `type` in a fresh nng message; the caller packs the
 * body into `pk`. NULL when out of memory. */
static nng_msg *msg_begin(msgpack_packer *pk, uint32_t type, uint64_t req)
{
    nng_msg *m;
    if (nng_msg_alloc(&m, 0) != 0)
        return NULL;
    msgpack_packer_init(pk, m, append_msg);
    if (cs_msg_begin(pk, type, req) != CS_OK) {
        nng_msg_free(m);
        return NULL;
    }
    return m;
}

static void ctx_send(nng_ctx ctx, nng_aio *aio, nng_msg *m)
{
    nng_aio_set_msg(aio, m);
    nng_ctx_send(ctx, aio);
}

/* ---- the simulated machines ---------------------------------------------------- */

static bool stopping(poll_bench *b) { return atomic_load(&b->stopping); }

static void agent_poll(agent *a)
{
    poll_bench *b = a->b;
    msgpack_packer pk;
    nng_msg *m = msg_begin(&pk, CS_MSG_POLL, ++a->req);
    cs_poll_req q = {.machine = cs_ref_id(a->machine), .since = a->since, .wait_ms = b->o->wait_ms};
    if (m == NULL || cs_poll_req_encode(&pk, &q) != CS_OK) {
        if (m != NULL)
            nng_msg_free(m);
        atomic_fetch_add(&b->c.errors, 1);
        a->state = A_BACKOFF;
        nng_sleep_aio(100, a->aio);
        return;
    }
    a->state = A_SEND;
    ctx_send(a->ctx, a->aio, m);
}

/* Note every task of the reply not seen before, at `now`. Returns the
 * reply's version, or 0 for an error reply. */
static uint64_t agent_take(agent *a, nng_msg *m, int64_t now)
{
    poll_bench *b = a->b;
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, 4096))
        return 0;
    cs_msg msg;
    cs_error err;
    cs_arena arena;
    cs_arena_init(&arena);
    cs_poll_reply r;
    uint64_t version = 0;
    if (cs_msg_decode(nng_msg_body(m), nng_msg_len(m), &zone, &msg, &err) != CS_OK ||
        msg.type != CS_MSG_POLL || cs_poll_reply_decode(&msg.body, &r, &arena, &err) != CS_OK)
        goto done;
    version = r.version;
    bool news = false;
    for (uint32_t i = 0; i < r.ntasks; i++) {
        uint64_t g;
        if (r.tasks[i].kind == CS_POLL_BAD || !cb_cell_task_number(&b->cell, r.tasks[i].id, &g)) {
            atomic_fetch_add(&b->c.unknown, 1);
            continue;
        }
        int64_t zero = 0;
        if (atomic_load(&b->seen_ns[g]) == 0 &&
            atomic_compare_exchange_strong(&b->seen_ns[g], &zero, now)) {
            atomic_fetch_add(&b->c.seen, 1);
            news = true;
        }
    }
    if (news)
        atomic_fetch_add(&b->c.news, 1);
done:
    cs_arena_free(&arena);
    msgpack_zone_destroy(&zone);
    return version;
}

static void agent_cb(void *arg)
{
    agent *a = arg;
    poll_bench *b = a->b;
    int rv = nng_aio_result(a->aio);
    if (stopping(b)) {
        if (a->state == A_SEND && rv != 0)
            nng_msg_free(nng_aio_get_msg(a->aio));
        return;
    }
    switch (a->state) {
    case A_SEND:
        if (rv != 0) {
            nng_msg_free(nng_aio_get_msg(a->aio));
            break;
        }
        a->state = A_RECV;
        nng_ctx_recv(a->ctx, a->aio);
        return;
    case A_RECV:
        if (rv != 0)
            break;
        {
            /* The moment the machine has its answer, before decoding it. */
            int64_t now = cb_now_ns();
            nng_msg *m = nng_aio_get_msg(a->aio);
            uint64_t v = agent_take(a, m, now);
            nng_msg_free(m);
            if (v == 0)
                break;
            if (a->since == 0)
                atomic_fetch_add(&b->c.first, 1);
            a->since = v;
            atomic_fetch_add(&b->c.replies, 1);
            agent_poll(a);
            return;
        }
    default: /* A_BACKOFF: the pause after an error is over */
        agent_poll(a);
        return;
    }
    /* An error or a timeout: count it, and poll again after a pause, as an
     * agent would, rather than spinning on a failing socket. */
    atomic_fetch_add(&b->c.errors, 1);
    a->state = A_BACKOFF;
    nng_sleep_aio(100, a->aio);
}

/* ---- heartbeats ------------------------------------------------------------------ */

/* Heartbeats are paced by one thread rather than by a sleep per heartbeat
 * in nng: libnng 1.5 keeps every aio with a deadline in one list that its
 * expire thread scans from end to end whenever an earlier deadline arrives,
 * and thousands of short sleeps a second made that scan of 10,000 parked
 * polls take most of the benchmark's CPU. */

static void heart_done(heart *h, atomic_uint_fast64_t *counter)
{
    atomic_fetch_add(counter, 1);
    atomic_store(&h->busy, false);
}

static void heart_cb(void *arg)
{
    heart *h = arg;
    poll_bench *b = h->b;
    int rv = nng_aio_result(h->aio);
    if (h->sending) {
        if (rv != 0) {
            nng_msg_free(nng_aio_get_msg(h->aio));
            heart_done(h, &b->c.hb_errors);
            return;
        }
        h->sending = false;
        if (!stopping(b))
            nng_ctx_recv(h->ctx, h->aio);
        return;
    }
    if (rv != 0) {
        heart_done(h, &b->c.hb_errors);
        return;
    }
    nng_msg *m = nng_aio_get_msg(h->aio);
    atomic_uint_fast64_t *counter = &b->c.hb_errors;
    msgpack_zone zone;
    if (msgpack_zone_init(&zone, 512)) {
        cs_msg msg;
        cs_error err;
        cs_arena a;
        cs_arena_init(&a);
        cs_heartbeat_reply r;
        if (cs_msg_decode(nng_msg_body(m), nng_msg_len(m), &zone, &msg, &err) == CS_OK &&
            msg.type == CS_MSG_HEARTBEAT && cs_heartbeat_reply_decode(&msg.body, &r, &a, &err) == CS_OK)
            counter = r.state == CS_MACHINE_DOWN ? &b->c.hb_down : &b->c.heartbeats;
        cs_arena_free(&a);
        msgpack_zone_destroy(&zone);
    }
    nng_msg_free(m);
    heart_done(h, counter);
}

/* Send machine `machine`'s heartbeat through idle context h. */
static void heart_send(heart *h, cs_id machine)
{
    poll_bench *b = h->b;
    msgpack_packer pk;
    nng_msg *m = msg_begin(&pk, CS_MSG_HEARTBEAT, ++h->req);
    cs_heartbeat_req q = {cs_ref_id(machine)};
    if (m == NULL || cs_heartbeat_req_encode(&pk, &q) != CS_OK) {
        if (m != NULL)
            nng_msg_free(m);
        heart_done(h, &b->c.hb_errors);
        return;
    }
    h->sending = true;
    ctx_send(h->ctx, h->aio, m);
}

/* The pacing thread: every machine once per third of the heartbeat
 * timeout, in turn, spread evenly; checked every 5 ms. */
static void *pacer_main(void *arg)
{
    poll_bench *b = arg;
    uint32_t n = b->o->machines;
    int64_t period_ns = (int64_t)b->o->heartbeat_timeout_ms * 1000000 / 3;
    int64_t t0 = cb_now_ns();
    uint64_t sent = 0;
    uint32_t next_ctx = 0;
    while (!stopping(b)) {
        uint64_t due = (uint64_t)((double)(cb_now_ns() - t0) / (double)period_ns * n);
        while (sent < due) {
            heart *h = NULL;
            for (uint32_t k = 0; k < b->nhearts && h == NULL; k++) {
                heart *c = &b->hearts[(next_ctx + k) % b->nhearts];
                bool idle = false;
                if (atomic_compare_exchange_strong(&c->busy, &idle, true))
                    h = c;
            }
            if (h == NULL) {
                /* All busy: the server is slow to answer. Count it and keep
                 * the schedule rather than bursting later. */
                atomic_fetch_add(&b->c.hb_late, due - sent);
                sent = due;
                break;
            }
            next_ctx = (uint32_t)(h - b->hearts + 1) % b->nhearts;
            heart_send(h, b->cell.machines[sent % n]);
            sent++;
        }
        cb_sleep_ms(5);
    }
    return NULL;
}

/* ---- connections ------------------------------------------------------------------- */

static int nng_fail(cs_error *err, int rv, const char *what)
{
    return cs_errorf(err, CS_EIO, "%s: %s", what, nng_strerror(rv));
}

/* The machines' K connections, socket i dialled to urls[i % nurls]. */
static int open_sockets(poll_bench *b, const char *const *urls, uint32_t nurls, cs_error *err)
{
    b->socks = calloc(b->o->connections, sizeof *b->socks);
    if (b->socks == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < b->o->connections; i++) {
        nng_socket *s = &b->socks[i];
        int rv = nng_req0_open(s);
        if (rv != 0)
            return nng_fail(err, rv, "opening a REQ socket");
        b->nsocks++;
        /* A parked poll must not be resent while it waits: a resend would
         * only park a second one. Replies of any size. */
        nng_socket_set_ms(*s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
        nng_socket_set_size(*s, NNG_OPT_RECVMAXSZ, 0);
        if ((rv = nng_dial(*s, urls[i % nurls], NULL, 0)) != 0)
            return nng_fail(err, rv, "dialling cellstated");
    }
    return CS_OK;
}

static int open_ctx(poll_bench *b, uint32_t i, void (*cb)(void *), void *arg, nng_ctx *ctx,
                    nng_aio **aio, cs_error *err)
{
    int rv;
    if ((rv = nng_aio_alloc(aio, cb, arg)) != 0 ||
        (rv = nng_ctx_open(ctx, b->socks[i % b->nsocks])) != 0)
        return nng_fail(err, rv, "opening a context");
    nng_ctx_set_ms(*ctx, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    return CS_OK;
}

/* Heartbeat contexts: enough for a few milliseconds of heartbeats in
 * flight at 10,000 machines (3,000 a second) when the server is busy. */
static uint32_t heart_contexts(const poll_opts *o)
{
    if (o->heartbeat_timeout_ms == 0)
        return 0;
    return o->machines < 256 ? o->machines : 256;
}

/* Contexts and aios for every machine and heartbeat sender. Nothing is sent
 * yet. */
static int open_agents(poll_bench *b, cs_error *err)
{
    const poll_opts *o = b->o;
    b->agents = calloc(o->machines, sizeof *b->agents);
    b->nhearts = heart_contexts(o);
    b->hearts = calloc(b->nhearts ? b->nhearts : 1, sizeof *b->hearts);
    if (b->agents == NULL || b->hearts == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    /* No deadline on the aios (see "heartbeats" above): a poll that never
     * comes back shows up as a missing assignment at the end. */
    for (uint32_t i = 0; i < o->machines; i++) {
        agent *a = &b->agents[i];
        *a = (agent){.b = b, .machine = b->cell.machines[i]};
        int rc = open_ctx(b, i, agent_cb, a, &a->ctx, &a->aio, err);
        if (rc != CS_OK)
            return rc;
    }
    for (uint32_t k = 0; k < b->nhearts; k++) {
        heart *h = &b->hearts[k];
        *h = (heart){.b = b};
        int rc = open_ctx(b, k, heart_cb, h, &h->ctx, &h->aio, err);
        if (rc != CS_OK)
            return rc;
    }
    return CS_OK;
}

/* Stop every callback, then close the sockets: the order cellstated uses,
 * so that no callback re-arms an aio on a closed socket. */
static void close_agents(poll_bench *b)
{
    atomic_store(&b->stopping, true);
    if (b->pacer_started)
        pthread_join(b->pacer, NULL);
    b->pacer_started = false;
    for (uint32_t i = 0; b->agents != NULL && i < b->o->machines; i++)
        if (b->agents[i].aio != NULL)
            nng_aio_stop(b->agents[i].aio);
    for (uint32_t k = 0; b->hearts != NULL && k < b->nhearts; k++)
        if (b->hearts[k].aio != NULL)
            nng_aio_stop(b->hearts[k].aio);
    for (uint32_t i = 0; i < b->nsocks; i++)
        nng_close(b->socks[i]);
    for (uint32_t i = 0; b->agents != NULL && i < b->o->machines; i++)
        if (b->agents[i].aio != NULL)
            nng_aio_free(b->agents[i].aio);
    for (uint32_t k = 0; b->hearts != NULL && k < b->nhearts; k++)
        if (b->hearts[k].aio != NULL)
            nng_aio_free(b->hearts[k].aio);
    free(b->agents);
    free(b->hearts);
    free(b->socks);
    b->agents = NULL;
    b->hearts = NULL;
    b->socks = NULL;
    b->nsocks = 0;
}

/* ---- the committer ------------------------------------------------------------------ */

/* The parked polls ("server"."parked_polls" of stats) of every server the
 * machines poll, summed. */
static int parked_polls(cs_client *const *cs, uint32_t n, uint64_t *out, cs_error *err)
{
    cs_arena a;
    cs_arena_init(&a);
    int rc = CS_OK;
    *out = 0;
    for (uint32_t i = 0; i < n && rc == CS_OK; i++) {
        cs_stats_reply st;
        cs_arena_reset(&a);
        if ((rc = cs_client_stats(cs[i], &st, &a, err)) == CS_OK)
            *out += st.server.parked_polls;
    }
    cs_arena_free(&a);
    return rc;
}

/* Wait until every machine has had its first answer and its next poll is
 * parked: only then does a commit measure a wake-up. */
static int wait_parked(poll_bench *b, cs_client *const *cs, uint32_t n, double *took_s,
                       cs_error *err)
{
    double t0 = cb_now_s();
    uint64_t parked = 0;
    for (;;) {
        int rc = parked_polls(cs, n, &parked, err);
        if (rc != CS_OK)
            return rc;
        if (atomic_load(&b->c.first) >= b->o->machines && parked >= b->o->machines)
            break;
        if (cb_now_s() - t0 > 120)
            return cs_errorf(err, CS_EIO,
                             "after 120 s, %" PRIu64 " of %u machines answered and %" PRIu64
                             " polls are parked",
                             (uint64_t)atomic_load(&b->c.first), b->o->machines, parked);
        cb_sleep_ms(50);
    }
    *took_s = cb_now_s() - t0;
    return CS_OK;
}

typedef struct commit_log {
    uint64_t commits, claims, committed;
    int64_t start_ns, end_ns; /* first send, last reply */
    int64_t *rtt_ns;          /* per commit */
    bool ran_out;             /* unpaced: the pending tasks ran out before the time */
} commit_log;

/* One commit of claims g0 .. g0+n-1 on random machines. */
static int commit_one(poll_bench *b, cs_client *c, cs_txn *t, msgpack_sbuffer *buf,
                      uint64_t *rng, uint64_t g0, uint32_t n, commit_log *l, cs_error *err)
{
    cs_txn_reset(t, l->commits + 1, 0);
    for (uint32_t i = 0; i < n; i++) {
        cs_id m = b->cell.machines[cb_rng_next(rng) % b->o->machines];
        /* Fine-grained conflict detection: seq is not compared. */
        if (cs_txn_add_claim(t, cb_cell_task(&b->cell, g0 + i), m, &poll_task_res, NULL, 0, 0) !=
            CS_OK)
            return cs_errorf(err, CS_ENOMEM, "out of memory");
    }
    buf->size = 0;
    if (cs_commit_req_encode(buf, t) != CS_OK)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    cs_msg r;
    int64_t sent = cb_now_ns();
    int rc = cs_client_callb(c, CS_MSG_COMMIT, buf, &r, err);
    int64_t acked = cb_now_ns();
    if (rc != CS_OK)
        return cs_error_wrap(err, rc, "commit %" PRIu64, l->commits + 1);
    cs_arena a;
    cs_arena_init(&a);
    cs_commit_reply cr;
    rc = cs_commit_reply_decode(&r.body, &cr, &a, err);
    if (rc == CS_OK && cr.nclaims != n)
        rc = cs_errorf(err, CS_EPROTO, "commit reply: no outcome per claim");
    for (uint32_t i = 0; rc == CS_OK && i < n; i++) {
        b->sent_ns[g0 + i] = sent;
        b->acked_ns[g0 + i] = acked;
        b->committed[g0 + i] = cr.claims[i] == CS_COMMITTED;
        l->committed += b->committed[g0 + i];
    }
    cs_arena_free(&a);
    if (rc != CS_OK)
        return rc;
    if (l->commits == 0)
        l->start_ns = sent;
    l->end_ns = acked;
    l->rtt_ns[l->commits++] = acked - sent;
    l->claims += n;
    return CS_OK;
}

/* Commit at the asked rate (open loop: commit k is due at start + k/rate,
 * whenever the previous one came back), for --commits or --duration. */
static int run_commits(poll_bench *b, cs_client *c, commit_log *l, cs_error *err)
{
    const poll_opts *o = b->o;
    uint64_t max_commits = b->cell.ntasks / o->batch;
    l->rtt_ns = calloc(max_commits ? max_commits : 1, sizeof *l->rtt_ns);
    if (l->rtt_ns == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    cs_txn t;
    cs_txn_init(&t, 1, 0, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    uint64_t rng = cb_rng_seed(o->seed, 0);
    int64_t t0 = cb_now_ns(), end = t0 + (int64_t)o->duration_s * 1000000000;
    int rc = CS_OK;
    for (uint64_t k = 0;; k++) {
        if (o->commits ? k >= o->commits : k >= max_commits || cb_now_ns() >= end) {
            l->ran_out = !o->commits && o->rate == 0 && k >= max_commits;
            break;
        }
        if (o->rate)
            cb_sleep_until_ns(t0 + (int64_t)(k * 1000000000 / o->rate));
        if ((rc = commit_one(b, c, &t, &buf, &rng, k * o->batch, o->batch, l, err)) != CS_OK)
            break;
    }
    msgpack_sbuffer_destroy(&buf);
    cs_txn_free(&t);
    return rc;
}

/* Wait until every committed claim has been seen, up to `limit_ms`. */
static void wait_stragglers(poll_bench *b, const commit_log *l, double *waited_s)
{
    double t0 = cb_now_s();
    while (atomic_load(&b->c.seen) < l->committed && (cb_now_s() - t0) * 1000 < b->o->straggler_ms)
        cb_sleep_ms(1);
    *waited_s = cb_now_s() - t0;
}

/* ---- figures ------------------------------------------------------------------------ */

typedef struct dist {
    double p50, p90, p99, max; /* ms; NaN without samples */
    size_t n;
} dist;

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* Nearest-rank percentiles of v[0..n) (sorted in place). */
static void dist_of(double *v, size_t n, dist *d)
{
    d->n = n;
    if (n == 0) {
        d->p50 = d->p90 = d->p99 = d->max = (double)NAN;
        return;
    }
    qsort(v, n, sizeof *v, cmp_double);
    double p[3] = {50, 90, 99}, *out[3] = {&d->p50, &d->p90, &d->p99};
    for (int i = 0; i < 3; i++) {
        size_t rank = (size_t)ceil(p[i] / 100.0 * (double)n);
        *out[i] = v[rank ? rank - 1 : 0];
    }
    d->max = v[n - 1];
}

typedef struct poll_figures {
    double setup_s, ready_s, parked_s, window_s, straggle_s;
    commit_log log;
    uint64_t seen, missing, unknown;
    uint64_t replies, news, errors, heartbeats, hb_errors, hb_down, hb_late;
    dist from_send, from_ack, rtt;
    double server_cpu_s, bench_cpu_s; /* over the window */
} poll_figures;

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static int latencies(poll_bench *b, poll_figures *f, cs_error *err)
{
    uint64_t n = f->log.claims;
    double *send = malloc((n ? n : 1) * sizeof *send), *ack = malloc((n ? n : 1) * sizeof *ack),
           *rtt = malloc((f->log.commits ? f->log.commits : 1) * sizeof *rtt);
    if (send == NULL || ack == NULL || rtt == NULL) {
        free(send);
        free(ack);
        free(rtt);
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    }
    size_t k = 0;
    for (uint64_t g = 0; g < n; g++) {
        if (!b->committed[g])
            continue;
        int64_t seen = atomic_load(&b->seen_ns[g]);
        if (seen == 0) {
            f->missing++;
            continue;
        }
        send[k] = (double)(seen - b->sent_ns[g]) / 1e6;
        ack[k] = (double)(seen - b->acked_ns[g]) / 1e6;
        k++;
    }
    f->seen = k;
    for (uint64_t i = 0; i < f->log.commits; i++)
        rtt[i] = (double)f->log.rtt_ns[i] / 1e6;
    dist_of(send, k, &f->from_send);
    dist_of(ack, k, &f->from_ack);
    dist_of(rtt, f->log.commits, &f->rtt);
    free(send);
    free(ack);
    free(rtt);
    return CS_OK;
}

/* ---- one run ---------------------------------------------------------------------------- */

/* Write the cell into a store in `dir` before cellstated opens it: going
 * through the wire would cost one fsync'd write per machine and job. */
static int write_cell(const poll_opts *o, const char *dir, cb_cell *cell, cs_error *err)
{
    uint64_t ntasks = 0;
    int rc = claims_planned(o, &ntasks, err);
    if (rc != CS_OK)
        return rc;
    cs_store *s;
    cs_store_opts so = {.nosync = true};
    if ((rc = cs_store_open(dir, &so, &s, err)) != CS_OK)
        return rc;
    /* Room for every claim a machine could get in the worst case. */
    cb_cell_spec spec = {
        .machines = o->machines,
        .ntasks = ntasks,
        .task_res = poll_task_res,
        .machine_cap = {.cpu = 64000, .mem = 256 * 1024, .disk = 1000 * 1000},
    };
    uint64_t worst = (ntasks + o->machines - 1) / o->machines * 4 + 64;
    if (worst * (uint64_t)poll_task_res.cpu > (uint64_t)spec.machine_cap.cpu)
        spec.machine_cap.cpu = (int64_t)worst * poll_task_res.cpu;
    if (worst * (uint64_t)poll_task_res.mem > (uint64_t)spec.machine_cap.mem)
        spec.machine_cap.mem = (int64_t)worst * poll_task_res.mem;
    rc = cb_cell_setup(s, &spec, cell, err);
    if (rc == CS_OK && o->replicas > 0)
        rc = cb_replicas_mark_seed(s, err); /* the members' common seed */
    cs_store_close(s);
    return rc;
}

/* The cell state the run talks to: one plain cellstated, or the members of
 * a replicated cell. */
typedef struct poll_servers {
    cb_daemon d;      /* without --replicas */
    cb_replicas reps; /* with --replicas; reps.n is 0 otherwise */
    const char *commit_url;
    const char *agent_urls[CB_REPLICAS_MAX]; /* where the machines' sockets go, in turn */
    uint32_t nagent_urls;
} poll_servers;

static double servers_cpu_s(const poll_servers *sv)
{
    return sv->reps.n ? cb_replicas_cpu_s(&sv->reps) : cb_daemon_cpu_s(&sv->d);
}

/* Start the server on the store in `root`/data, or the replicas on the
 * store in member 1's directory (copied to the others first). */
static int start_servers(const poll_opts *o, const char *root, const char *data, uint32_t nhearts,
                         poll_servers *sv, cs_error *err)
{
    char bin[4096];
    int rc = cb_cellstated_path(o->cellstated, bin, sizeof bin, err);
    if (rc != CS_OK)
        return rc;
    char workers[32], hb[32], maxwait[32], log[320];
    /* One worker per parked poll, one per heartbeat sender, and room for
     * the commits, stats and re-polls in flight. */
    snprintf(workers, sizeof workers, "%u", o->machines + nhearts + 256);
    snprintf(hb, sizeof hb, "%u", o->heartbeat_timeout_ms ? o->heartbeat_timeout_ms : 86400000u);
    snprintf(maxwait, sizeof maxwait, "%u", o->wait_ms > 30000 ? o->wait_ms : 30000);
    char f_data[] = "--data", f_workers[] = "--workers", f_hb[] = "--heartbeat-timeout",
         f_wait[] = "--poll-max-wait", f_nosync[] = "--nosync";
    /* Every connection of the benchmark comes from this host: up to
     * --connections (1,000) of them, past cellstated's default bound per
     * peer (256), which is for hosts that are not load generators. */
    char f_conns[] = "--max-conns-per-peer", conns[] = "0";
    if (o->replicas > 0) {
        char *extra[] = {f_workers, workers, f_hb, hb, f_wait, maxwait, f_conns, conns,
                         o->nosync ? f_nosync : NULL, NULL};
        if ((rc = cb_replicas_copy_store(root, o->replicas, err)) != CS_OK ||
            (rc = cb_replicas_start(&sv->reps, bin, root, o->replicas, extra, 60000, err)) !=
                CS_OK)
            return rc;
        sv->commit_url = sv->reps.d[sv->reps.leader].url;
        /* Every follower once (the leader alone in a cell of one). */
        sv->nagent_urls = o->replicas > 1 ? o->replicas - 1 : 1;
        for (uint32_t k = 0; k < sv->nagent_urls; k++)
            sv->agent_urls[k] = sv->reps.d[cb_replicas_follower(&sv->reps, k)].url;
        return CS_OK;
    }
    snprintf(log, sizeof log, "%s/cellstated.log", root);
    char *argv[] = {bin,    f_data, (char *)data, f_workers, workers, f_hb, hb, f_wait,
                    maxwait, f_conns, conns, o->nosync ? f_nosync : NULL, NULL};
    if ((rc = cb_daemon_start(&sv->d, argv, log, 20000, err)) != CS_OK)
        return rc;
    sv->commit_url = sv->agent_urls[0] = sv->d.url;
    sv->nagent_urls = 1;
    return CS_OK;
}

/* Stop what start_servers started; false when something had to be killed. */
static bool stop_servers(poll_servers *sv)
{
    bool clean = cb_replicas_stop(&sv->reps, 30000) == 0;
    return cb_daemon_stop(&sv->d, 30000) == 0 && clean;
}

static int poll_run(const poll_opts *o, poll_figures *f, cs_error *err)
{
    poll_bench b = {.o = o};
    poll_servers sv = {0};
    cs_client *c = NULL, *watch[CB_REPLICAS_MAX] = {0};
    char root[256], data[320];
    memset(f, 0, sizeof *f);

    int rc = cb_make_tmpdir(root, sizeof root, err);
    if (rc != CS_OK)
        return rc;
    double t0 = cb_now_s();
    if (o->replicas > 0) {
        /* Member 1's directory: start_servers copies it to the others. */
        if ((rc = cb_replicas_data_dir(root, 0, data, sizeof data, err)) == CS_OK &&
            mkdir(data, 0755) != 0)
            rc = cs_errorf(err, CS_EIO, "%s: %s", data, strerror(errno));
    } else
        rc = cb_make_subdir(root, "data", data, sizeof data, err);
    if (rc != CS_OK || (rc = write_cell(o, data, &b.cell, err)) != CS_OK)
        goto remove_tmpdir;
    uint64_t n = b.cell.ntasks;
    b.sent_ns = calloc(n ? n : 1, sizeof *b.sent_ns);
    b.acked_ns = calloc(n ? n : 1, sizeof *b.acked_ns);
    b.seen_ns = calloc(n ? n : 1, sizeof *b.seen_ns);
    b.committed = calloc(n ? n : 1, 1);
    if (b.sent_ns == NULL || b.acked_ns == NULL || b.seen_ns == NULL || b.committed == NULL) {
        rc = cs_errorf(err, CS_ENOMEM, "out of memory");
        goto free_arrays;
    }
    f->setup_s = cb_now_s() - t0;

    t0 = cb_now_s();
    uint32_t nhearts = heart_contexts(o);
    if ((rc = start_servers(o, root, data, nhearts, &sv, err)) != CS_OK)
        goto free_arrays;
    f->ready_s = cb_now_s() - t0;
    if ((rc = cs_client_open(sv.commit_url, 60000, &c, err)) != CS_OK)
        goto stop_server;
    for (uint32_t k = 0; k < sv.nagent_urls && rc == CS_OK; k++)
        rc = cs_client_open(sv.agent_urls[k], 60000, &watch[k], err);
    if (rc != CS_OK)
        goto close_agents;
    if ((rc = open_sockets(&b, sv.agent_urls, sv.nagent_urls, err)) != CS_OK ||
        (rc = open_agents(&b, err)) != CS_OK)
        goto close_agents;
    if (b.nhearts > 0) {
        if (pthread_create(&b.pacer, NULL, pacer_main, &b) != 0) {
            rc = cs_errorf(err, CS_ENOMEM, "starting the heartbeat thread");
            goto close_agents;
        }
        b.pacer_started = true;
    }
    for (uint32_t i = 0; i < o->machines; i++)
        agent_poll(&b.agents[i]);
    if ((rc = wait_parked(&b, watch, sv.nagent_urls, &f->parked_s, err)) != CS_OK)
        goto close_agents;

    uint64_t replies0 = atomic_load(&b.c.replies), news0 = atomic_load(&b.c.news),
             hb0 = atomic_load(&b.c.heartbeats);
    double scpu0 = servers_cpu_s(&sv), bcpu0 = self_cpu_s();
    rc = run_commits(&b, c, &f->log, err);
    f->server_cpu_s = servers_cpu_s(&sv) - scpu0;
    f->bench_cpu_s = self_cpu_s() - bcpu0;
    f->window_s = (double)(f->log.end_ns - f->log.start_ns) / 1e9;
    f->replies = atomic_load(&b.c.replies) - replies0;
    f->news = atomic_load(&b.c.news) - news0;
    f->heartbeats = atomic_load(&b.c.heartbeats) - hb0;
    if (rc != CS_OK)
        goto close_agents;
    wait_stragglers(&b, &f->log, &f->straggle_s);

close_agents:
    close_agents(&b);
    f->errors = atomic_load(&b.c.errors);
    f->hb_errors = atomic_load(&b.c.hb_errors);
    f->hb_down = atomic_load(&b.c.hb_down);
    f->hb_late = atomic_load(&b.c.hb_late);
    f->unknown = atomic_load(&b.c.unknown);
    if (rc == CS_OK)
        rc = latencies(&b, f, err);
    cs_client_close(c);
    for (uint32_t k = 0; k < CB_REPLICAS_MAX; k++)
        if (watch[k] != NULL)
            cs_client_close(watch[k]);
stop_server:
    if (!stop_servers(&sv))
        fprintf(stderr, "cellbench poll: cellstated did not exit cleanly (logs in %s)\n", root);
free_arrays:
    free(f->log.rtt_ns);
    f->log.rtt_ns = NULL;
    free(b.sent_ns);
    free(b.acked_ns);
    free(b.seen_ns);
    free(b.committed);
    cb_cell_free(&b.cell);
remove_tmpdir:
    cb_rmtree(root);
    return rc;
}

/* ---- the report ---------------------------------------------------------------------- */

static void report_text(FILE *out, const poll_opts *o, const cb_host *h, const poll_figures *f)
{
    char a[32], b[32], c[32], d[32], e[32];
    fprintf(out, "cellbench poll: %u machines on %u connections, wait_ms %u, batch %u, ",
            o->machines, o->connections, o->wait_ms, o->batch);
    if (o->rate)
        fprintf(out, "%u commits/s", o->rate);
    else
        fprintf(out, "unpaced commits");
    if (o->heartbeat_timeout_ms)
        fprintf(out, ", heartbeats every %u ms", o->heartbeat_timeout_ms / 3);
    else
        fprintf(out, ", no heartbeats");
    fprintf(out, ", %s\n", o->nosync ? "cellstated --nosync" : "fsync per commit");
    if (o->replicas > 0)
        fprintf(out, "cell state:        %u replicas of one Raft cell (the Raft log fsyncs), "
                     "commits to the leader, machines polling the %s\n",
                o->replicas, o->replicas > 1 ? "followers" : "leader");
    fprintf(out, "machine:           nproc %ld, cpu %s\n", h->nproc, h->cpu);
    fprintf(out, "setup:             cell written in %.1f s, cellstated ready in %.1f s, "
                 "all polls parked in %.1f s\n",
            f->setup_s, f->ready_s, f->parked_s);
    fprintf(out, "commits:           %" PRIu64 " in %.2f s: %s/s%s; round trip p50 %s p99 %s ms\n",
            f->log.commits, f->window_s, cb_fig(a, sizeof a, cb_per_s((double)f->log.commits, f->window_s), 1),
            f->log.ran_out ? " (ran out of pending tasks)" : "", cb_fig(b, sizeof b, f->rtt.p50, 2),
            cb_fig(c, sizeof c, f->rtt.p99, 2));
    fprintf(out, "assignments:       %" PRIu64 " committed (of %" PRIu64 " claims), %" PRIu64
                 " seen, %" PRIu64 " missing; stragglers waited for %.3f s\n",
            f->log.committed, f->log.claims, f->seen, f->missing, f->straggle_s);
    fprintf(out, "commit -> seen:    p50 %s  p90 %s  p99 %s  max %s ms (from the commit's send)\n",
            cb_fig(a, sizeof a, f->from_send.p50, 2), cb_fig(b, sizeof b, f->from_send.p90, 2),
            cb_fig(c, sizeof c, f->from_send.p99, 2), cb_fig(d, sizeof d, f->from_send.max, 2));
    fprintf(out, "ack -> seen:       p50 %s  p90 %s  p99 %s  max %s ms (from the commit's reply)\n",
            cb_fig(a, sizeof a, f->from_ack.p50, 2), cb_fig(b, sizeof b, f->from_ack.p90, 2),
            cb_fig(c, sizeof c, f->from_ack.p99, 2), cb_fig(d, sizeof d, f->from_ack.max, 2));
    fprintf(out, "poll replies:      %" PRIu64 " during the commits: %s/s (%" PRIu64
                 " with a new task); %" PRIu64 " poll errors in the run\n",
            f->replies, cb_fig(a, sizeof a, cb_per_s((double)f->replies, f->window_s), 0), f->news,
            f->errors);
    fprintf(out, "heartbeats:        %s/s during the commits; %" PRIu64 " errors, %" PRIu64
                 " answered down, %" PRIu64 " late\n",
            cb_fig(a, sizeof a, cb_per_s((double)f->heartbeats, f->window_s), 0), f->hb_errors,
            f->hb_down, f->hb_late);
    fprintf(out, "cpu:               cellstated %s%%, cellbench %s%% of one core during the "
                 "commits%s\n",
            cb_fig(a, sizeof a, 100 * f->server_cpu_s / f->window_s, 0),
            cb_fig(e, sizeof e, 100 * f->bench_cpu_s / f->window_s, 0),
            f->unknown ? "; polls listed unknown tasks" : "");
}

static void json_dist(cb_json *j, const char *prefix, const dist *d)
{
    static const char *const suffix[] = {"p50_ms", "p90_ms", "p99_ms", "max_ms"};
    const double v[] = {d->p50, d->p90, d->p99, d->max};
    for (size_t i = 0; i < 4; i++) {
        char key[64];
        snprintf(key, sizeof key, "%s_%s", prefix, suffix[i]);
        cb_json_real(j, key, v[i]);
    }
}

static void report_json(FILE *out, const poll_opts *o, const cb_host *h, const poll_figures *f)
{
    cb_json j = {out, true};
    cb_json_str(&j, "benchmark", "poll");
    cb_json_u64(&j, "machines", o->machines);
    cb_json_u64(&j, "connections", o->connections);
    cb_json_u64(&j, "batch", o->batch);
    cb_json_u64(&j, "rate", o->rate);
    cb_json_u64(&j, "wait_ms", o->wait_ms);
    cb_json_u64(&j, "heartbeat_timeout_ms", o->heartbeat_timeout_ms);
    cb_json_bool(&j, "fsync", !o->nosync);
    cb_json_u64(&j, "replicas", o->replicas); /* 0: one plain cellstated */
    cb_json_u64(&j, "nproc", h->nproc > 0 ? (uint64_t)h->nproc : 0);
    cb_json_str(&j, "cpu", h->cpu);
    cb_json_u64(&j, "commits", f->log.commits);
    cb_json_real(&j, "window_s", f->window_s);
    cb_json_real(&j, "commits_per_s", cb_per_s((double)f->log.commits, f->window_s));
    cb_json_u64(&j, "claims", f->log.claims);
    cb_json_u64(&j, "assignments", f->log.committed);
    cb_json_u64(&j, "seen", f->seen);
    cb_json_u64(&j, "missing", f->missing);
    cb_json_u64(&j, "poll_replies", f->replies);
    cb_json_u64(&j, "poll_replies_new", f->news);
    cb_json_u64(&j, "poll_errors", f->errors);
    cb_json_real(&j, "requests_per_s", cb_per_s((double)f->replies, f->window_s));
    cb_json_real(&j, "heartbeats_per_s", cb_per_s((double)f->heartbeats, f->window_s));
    cb_json_u64(&j, "heartbeats_down", f->hb_down);
    cb_json_u64(&j, "heartbeats_late", f->hb_late);
    json_dist(&j, "latency", &f->from_send);
    json_dist(&j, "ack_latency", &f->from_ack);
    json_dist(&j, "commit_rtt", &f->rtt);
    cb_json_real(&j, "server_cpu_share", f->server_cpu_s / f->window_s);
    cb_json_real(&j, "bench_cpu_share", f->bench_cpu_s / f->window_s);
    cb_json_end(&j);
}

int cb_poll_main(int argc, char **argv)
{
    poll_opts o;
    cs_error err = {0};
    int done = cb_parse_exit(poll_parse(argc, argv, &o, &err), "poll", cb_poll_usage, &err);
    if (done >= 0)
        return done;
    cb_host h;
    cb_host_read(&h);
    poll_figures f;
    int rc = poll_run(&o, &f, &err);
    if (rc != CS_OK) {
        fprintf(stderr, "cellbench poll: %s (%s)\n", err.msg, cs_strerror(rc));
        return CB_EXIT_RUN;
    }
    report_text(stdout, &o, &h, &f);
    if (o.json)
        report_json(stdout, &o, &h, &f);
    return fflush(stdout) == 0 ? 0 : CB_EXIT_RUN;
}
