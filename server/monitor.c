/* monitor.c — liveness and upkeep: heartbeats (answered from memory), the
 * monitor thread that marks silent machines down and judges drain
 * deadlines, and the periodic collection of ended jobs and compaction of
 * the log. Its verdicts are writes, queued for the writer like any other. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "proto/agentmsg.h"
#include "proto/tls.h"
#include "server/internal.h"
#include "server/replica.h"

static int pack_heartbeat(msgpack_packer *pk, cs_id id, uint8_t state, uint64_t version,
                          cs_error *err)
{
    /* A machine marked down must register again: its tasks were lost. */
    cs_heartbeat_reply r = {id, state, version};
    if (cs_heartbeat_reply_encode(pk, &r) != CS_OK)
        return cs_errorf(err, CS_ENOMEM, "reply: out of memory");
    return CS_OK;
}

/* Note a heartbeat of machine `sl` received at `at` (mu held). A down
 * machine's heartbeat does not count: it must register again. */
static void heartbeat_seen(mslot *sl, int64_t at)
{
    if (sl->state != CS_MACHINE_DOWN && at > sl->seen_ms)
        sl->seen_ms = at;
}

/* A heartbeat by id is answered from the machine table, under `mu` only:
 * at C1M scale a heartbeat that waited for a snapshot (or for a worker
 * thread busy encoding a sync) came back after the timeout, and machines
 * were marked down for the server's own slowness. By name, or for an id
 * the table does not hold, the store is asked. */
int srv_heartbeat(worker *w, msgpack_packer *pk, cs_error *err)
{
    cs_server *s = w->s;
    cs_arena a;
    cs_arena_init(&a);
    cs_heartbeat_req q;
    int rc = cs_heartbeat_req_decode(body(w), &q, &a, err);
    /* An agent of a cell with roles is checked against the machine's
     * name, which the slots do not keep: the snapshot below reads it. */
    if (rc == CS_OK && q.machine.name == NULL && !srv_auth_agent(w)) {
        cs_id id = q.machine.id;
        pthread_mutex_lock(&s->mu);
        mslot *sl = id < s->nmach && s->mach[id].known ? &s->mach[id] : NULL;
        uint8_t state = sl ? sl->state : 0;
        uint64_t version = s->version;
        if (sl != NULL)
            heartbeat_seen(sl, w->recv_ms);
        pthread_mutex_unlock(&s->mu);
        if (sl != NULL) {
            cs_arena_free(&a);
            return pack_heartbeat(pk, id, state, version, err);
        }
    }
    cs_snap *snap = NULL;
    cs_machine m;
    if (rc == CS_OK && (rc = open_snap(w, &snap, err)) == CS_OK)
        rc = cs_ref_machine(snap, &q.machine, &a, &m, err);
    if (rc == CS_OK)
        rc = srv_auth_machine(w, m.name, err);
    if (rc == CS_OK) {
        pthread_mutex_lock(&s->mu);
        mslot *sl = srv_slot_of(s, m.id);
        if (sl != NULL && m.state != CS_MACHINE_DOWN && w->recv_ms > sl->seen_ms)
            sl->seen_ms = w->recv_ms;
        pthread_mutex_unlock(&s->mu);
        rc = pack_heartbeat(pk, m.id, m.state, cs_snap_version(snap), err);
    }
    cs_arena_free(&a);
    if (snap != NULL)
        srv_snap_close(s, snap);
    return rc;
}

/* ---- the monitor ------------------------------------------------------------- */

typedef struct silent_ctx {
    cs_server *s;
    int64_t served; /* s->served_ms when the scan began */
    cs_id *ids;
    size_t n, cap;
    uint64_t wall;  /* the wall clock when the scan began, for drain deadlines */
    cs_id *drains;  /* draining machines whose deadline came */
    size_t ndrains;
} silent_ctx;

/* A draining machine whose deadline has come, not yet queued: its batch
 * tasks are to move (cs_op_machine_drain_deadline). */
static void find_drain_due(silent_ctx *c, const cs_machine *m)
{
    if (m->admin != CS_ADMIN_DRAINING || m->drain_deadline == 0 || m->drain_deadline > c->wall ||
        c->ndrains == c->cap)
        return;
    pthread_mutex_lock(&c->s->mu);
    mslot *sl = srv_slot_of(c->s, m->id);
    bool due = sl != NULL && !sl->drain_queued;
    if (due)
        sl->drain_queued = true;
    pthread_mutex_unlock(&c->s->mu);
    if (due)
        c->drains[c->ndrains++] = m->id;
}

static int find_silent(void *ctx, const cs_machine *m)
{
    silent_ctx *c = ctx;
    find_drain_due(c, m);
    if (m->state == CS_MACHINE_DOWN)
        return 0;
    pthread_mutex_lock(&c->s->mu);
    mslot *sl = srv_slot_of(c->s, m->id);
    bool silent = sl != NULL && !sl->down_queued &&
                  c->served - sl->seen_ms > (int64_t)c->s->o.heartbeat_timeout_ms;
    if (silent)
        sl->down_queued = true;
    pthread_mutex_unlock(&c->s->mu);
    if (silent && c->n < c->cap)
        c->ids[c->n++] = m->id;
    return 0;
}

/* Silence is judged against the server's progress, not the clock: a
 * heartbeat is counted when a worker callback reads it, and when nng's
 * task queue is backed up (every thread encoding a sync reply) heartbeats
 * wait in it, received but not read. The probe is a chain of PROBE_HOPS
 * callbacks through that same queue, about as many as a request takes from
 * the socket to a worker (transport read of header and body, protocol,
 * worker): when the chain armed at time T completes, what arrived before T
 * has been read, so served_ms = T. A machine is silent when its last
 * heartbeat was received more than the timeout before served_ms; a server
 * too busy to read heartbeats marks no one down. */
#define PROBE_HOPS 4

void srv_probe_cb(void *arg)
{
    cs_server *s = arg;
    int rv = nng_aio_result(s->probe);
    pthread_mutex_lock(&s->mu);
    bool again = rv == 0 && !s->stopping && ++s->probe_hops < PROBE_HOPS;
    if (!again) {
        if (rv == 0 && s->probe_hops >= PROBE_HOPS)
            s->served_ms = s->probe_armed_ms;
        s->probe_busy = false;
    }
    pthread_mutex_unlock(&s->mu);
    if (again)
        nng_sleep_aio(0, s->probe);
}

/* Arm the probe unless it is on its way (mu held by the caller: false is
 * returned when nothing is to be armed). */
static bool probe_arm(cs_server *s)
{
    if (s->probe_busy || s->stopping)
        return false;
    s->probe_busy = true;
    s->probe_hops = 0;
    s->probe_armed_ms = now_ms();
    return true;
}

/* ---- upkeep: collecting ended jobs, compacting the log ------------------- */

/* The most jobs one collection command removes: each removes its tasks
 * too, and the writer holds every other write meanwhile. */
#define GC_BATCH 256

typedef struct gc_ctx {
    uint64_t before; /* wall ms: jobs that ended at or before this are due */
    cs_id *ids;
    size_t n;
} gc_ctx;

static int find_due(void *ctx, const cs_job *j)
{
    gc_ctx *c = ctx;
    if (j->state != CS_JOB_ACTIVE && j->ended <= c->before)
        c->ids[c->n++] = j->id;
    return c->n == GC_BATCH; /* stop when full: the next pass takes the rest */
}

/* Queue the collection of the ended jobs due, in id order (the store's),
 * unless one is still queued. Reads one snapshot of the jobs: at most once
 * per gc interval. */
static void queue_gc(cs_server *s)
{
    pthread_mutex_lock(&s->mu);
    bool busy = s->gc_queued;
    pthread_mutex_unlock(&s->mu);
    uint64_t now = wall_ms();
    if (busy || now < s->o.job_gc_ms)
        return;
    gc_ctx c = {now - s->o.job_gc_ms, malloc(GC_BATCH * sizeof(cs_id)), 0};
    wjob *j = calloc(1, sizeof *j);
    cs_snap *snap;
    cs_error err;
    if (c.ids != NULL && j != NULL && srv_snap_open(s, &snap, &err) == CS_OK) {
        cs_snap_each_job(snap, find_due, &c, &err);
        srv_snap_close(s, snap);
    }
    if (c.n == 0) {
        free(c.ids);
        free(j);
        return;
    }
    j->gc = c.ids;
    j->ngc = c.n;
    pthread_mutex_lock(&s->mu);
    s->gc_queued = true;
    pthread_mutex_unlock(&s->mu);
    srv_enqueue(s, j);
}

/* The monitor's schedule for upkeep (monotonic ms). Compaction drops what
 * the log held `log_retain_ms` ago: `mark` is the cell version at the
 * previous compaction, so an entry lives between one and two retention
 * periods. The mark is a version the writer has finished with (s->version),
 * so that after_write never finds its own starting point compacted away. */
typedef struct upkeep {
    int64_t next_gc, gc_every;
    int64_t next_compact;
    uint64_t mark;
} upkeep;

static void upkeep_init(cs_server *s, upkeep *u, int64_t tick)
{
    int64_t now = now_ms();
    u->gc_every = (int64_t)(s->o.job_gc_ms / 4);
    if (u->gc_every < tick)
        u->gc_every = tick;
    if (u->gc_every > 60000)
        u->gc_every = 60000;
    u->next_gc = now;
    u->next_compact = now + (int64_t)s->o.log_retain_ms;
    pthread_mutex_lock(&s->mu);
    u->mark = s->version;
    pthread_mutex_unlock(&s->mu);
}

static void upkeep_run(cs_server *s, upkeep *u)
{
    int64_t now = now_ms();
    if (s->o.job_gc_ms > 0 && now >= u->next_gc) {
        u->next_gc = now + u->gc_every;
        queue_gc(s);
    }
    if (s->o.log_retain_ms > 0 && now >= u->next_compact) {
        u->next_compact = now + (int64_t)s->o.log_retain_ms;
        cs_error err;
        int rc = CS_OK;
        if (u->mark > 0 && !s->replicated) {
            rc = cs_store_compact(s->store, u->mark, &err);
        } else if (u->mark > 0) {
            /* Every replica compacts at the same point of the log, so
             * that a retried transaction finds (or misses) its
             * idempotency record alike everywhere (replica.h). */
            pthread_rwlock_rdlock(&s->store_lk);
            rc = s->replica != NULL ? cs_replica_propose_compact(s->replica, u->mark, &err)
                                    : CS_OK;
            pthread_rwlock_unlock(&s->store_lk);
        }
        if (rc != CS_OK)
            fprintf(stderr, "cellstated: compacting the log to %llu: %s\n",
                    (unsigned long long)u->mark, err.msg);
        pthread_mutex_lock(&s->mu);
        u->mark = s->version;
        pthread_mutex_unlock(&s->mu);
    }
}

/* Log the clients refused at the TLS handshake since the last tick: nng
 * closes them itself and tells no one else, and an operator whose agent
 * has the wrong certificate must find out from this log. */
static void note_tls_refusals(cs_server *s)
{
    uint64_t n;
    cs_error err;
    if (!cs_tls_url(s->listen_url) || cs_tls_refused(s->listener, &n, &err) != CS_OK ||
        n <= s->tls_refused)
        return;
    fprintf(stderr,
            "cellstated: refused %llu connection(s) at the TLS handshake on %s (%llu in all): a "
            "client without a certificate, with one the cell's CA did not sign, or not speaking "
            "TLS (tcp:// for tls+tcp://)\n",
            (unsigned long long)(n - s->tls_refused), s->listen_url, (unsigned long long)n);
    s->tls_refused = n;
}

void *srv_monitor_main(void *arg)
{
    cs_server *s = arg;
    int64_t tick = s->o.heartbeat_timeout_ms / 4;
    if (tick < 20)
        tick = 20;
    if (tick > 1000)
        tick = 1000;
    cs_id ids[256], drains[256];
    upkeep u;
    upkeep_init(s, &u, tick);
    for (;;) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += (long)(tick % 1000) * 1000000L;
        until.tv_sec += tick / 1000 + until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_mutex_lock(&s->mu);
        while (!s->stopping && pthread_cond_timedwait(&s->mon_cv, &s->mu, &until) != ETIMEDOUT)
            ;
        bool stop = s->stopping;
        bool arm = probe_arm(s);
        int64_t served = s->served_ms;
        pthread_mutex_unlock(&s->mu);
        if (stop)
            return NULL;
        if (arm)
            nng_sleep_aio(0, s->probe);
        note_tls_refusals(s);
        if (!srv_leads(s))
            continue; /* a follower: the leader judges heartbeats and upkeep */
        cs_snap *snap;
        cs_error err;
        if (srv_snap_open(s, &snap, &err) != CS_OK)
            continue;
        silent_ctx c = {s, served, ids, 0, sizeof ids / sizeof ids[0], wall_ms(), drains, 0};
        cs_snap_each_machine(snap, find_silent, &c, &err);
        srv_snap_close(s, snap);
        for (size_t i = 0; i < c.n + c.ndrains; i++) {
            wjob *j = calloc(1, sizeof *j);
            if (j == NULL) {
                /* Unqueued drain verdicts are judged again at the next tick. */
                pthread_mutex_lock(&s->mu);
                for (size_t k = i < c.n ? 0 : i - c.n; k < c.ndrains; k++) {
                    mslot *sl = srv_slot_of(s, drains[k]);
                    if (sl != NULL)
                        sl->drain_queued = false;
                }
                pthread_mutex_unlock(&s->mu);
                break;
            }
            j->down_machine = i < c.n ? ids[i] : drains[i - c.n];
            j->drain = i >= c.n;
            srv_enqueue(s, j);
        }
        upkeep_run(s, &u);
    }
}

