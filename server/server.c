/* server.c — cellstated (see server.h): transport, dispatch, start and stop.
 *
 * Threads: nng's callbacks run the workers (decode, reads, parking polls);
 * one writer thread applies every write in arrival order (writer.c); one
 * monitor thread watches heartbeats (monitor.c). `mu` guards the write
 * queue, the per-machine table, the parked polls and the counters (the
 * metrics' own are atomics, but for the commits by scheduler: metrics.c);
 * `rmu` the schedulers' reports (apart, so that reports and stats never
 * wait behind polls). The other files of the server are listed in
 * internal.h.
 */
#include "server/server.h"

#include <errno.h>
#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/reqrep0/rep.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cellstate/mpcheck.h"
#include "proto/tls.h"
#include "server/internal.h"
#include "server/replica.h"

void cs_server_opts_default(cs_server_opts *o)
{
    memset(o, 0, sizeof *o);
    o->listen_url = CS_DEFAULT_URL;
    o->workers = 1024;
    o->heartbeat_timeout_ms = CS_HEARTBEAT_TIMEOUT_DEFAULT_MS;
    o->poll_max_wait_ms = 30000;
    o->max_msg = CS_DEFAULT_MAX_MSG;
    o->max_inflight_bytes = CS_MAX_INFLIGHT_DEFAULT;
    o->max_conns_per_peer = CS_MAX_CONNS_PER_PEER_DEFAULT;
    o->max_job_tasks = CS_MAX_JOB_TASKS_DEFAULT;
    o->sync_chunk = CS_SYNC_CHUNK_DEFAULT;
    o->job_gc_ms = 4 * 3600 * 1000;
    o->log_retain_ms = 10 * 60 * 1000;
    o->concurrency = CS_CONCURRENCY_OPTIMISTIC;
    o->offer_timeout_ms = CS_OFFER_TIMEOUT_DEFAULT_MS;
    o->audit_max_bytes = CS_AUDIT_MAX_BYTES_DEFAULT;
}

/* The slot of machine `id`, growing the table; NULL when out of memory.
 * Called with mu held. */
mslot *srv_slot_of(cs_server *s, cs_id id)
{
    if (id >= s->nmach) {
        size_t n = s->nmach ? s->nmach : 64;
        while (n <= id)
            n *= 2;
        mslot *m = realloc(s->mach, n * sizeof *m);
        if (m == NULL)
            return NULL;
        memset(m + s->nmach, 0, (n - s->nmach) * sizeof *m);
        s->mach = m;
        s->nmach = n;
    }
    return &s->mach[id];
}

/* ---- replies ------------------------------------------------------------ */

void srv_release_req(worker *w)
{
    if (w->req != NULL) {
        nng_msg_free(w->req);
        w->req = NULL;
    }
    if (w->charged > 0) {
        atomic_fetch_sub(&w->s->inflight, w->charged);
        w->charged = 0;
    }
    msgpack_zone_clear(&w->zone);
}

void srv_send_bytes(worker *w, const void *data, size_t len)
{
    srv_release_req(w);
    nng_msg *m;
    if (nng_msg_alloc(&m, len) != 0) {
        /* Without memory for a reply the request is dropped; the client's
         * REQ socket times out and retries. */
        w->state = W_RECV;
        nng_ctx_recv(w->ctx, w->aio);
        return;
    }
    memcpy(nng_msg_body(m), data, len);
    srv_metrics_reply(w);
    w->state = W_SEND;
    nng_aio_set_msg(w->aio, m);
    nng_ctx_send(w->ctx, w->aio);
}

void srv_send_error(worker *w, int code, const char *message)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    if (code == CS_OK)
        code = CS_EINVAL;
    w->outcome = code;
    cs_msg_error(&b, w->msg.req, code, message);
    pthread_mutex_lock(&w->s->mu);
    w->s->c.errors++;
    pthread_mutex_unlock(&w->s->mu);
    srv_send_bytes(w, b.data, b.size);
    msgpack_sbuffer_destroy(&b);
}

/* The reply to w's request: the handler's, or an error reply. */
void srv_build_reply(worker *w, handler_fn fn, msgpack_sbuffer *b)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, msgpack_sbuffer_write);
    cs_error err = {0};
    int rc = cs_msg_begin(&pk, w->msg.type, w->msg.req);
    if (rc == CS_OK)
        rc = fn(w, &pk, &err);
    if (rc == CS_OK)
        return;
    b->size = 0;
    w->outcome = rc;
    cs_msg_error(b, w->msg.req, rc, err.msg[0] ? err.msg : cs_strerror(rc));
    pthread_mutex_lock(&w->s->mu);
    w->s->c.errors++;
    pthread_mutex_unlock(&w->s->mu);
}

void srv_run_handler(worker *w, handler_fn fn)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    srv_build_reply(w, fn, &b);
    srv_send_bytes(w, b.data, b.size);
    msgpack_sbuffer_destroy(&b);
}


/* ---- dispatch ------------------------------------------------------------------ */

/* Every request type and how it is served; a type absent here (error,
 * version, task.logs: replies, announcements, the agent's own service) is
 * not a request cellstated takes. Writes go to the one writer thread;
 * reads are answered from a snapshot on the worker's thread; a poll may
 * park. */
static const srv_route routes[CS_MSG_COUNT] = {
    [CS_MSG_MACHINE_REGISTER] = {NULL, SRV_WRITE},
    [CS_MSG_HEARTBEAT] = {srv_heartbeat, SRV_READ},
    [CS_MSG_JOB_SUBMIT] = {NULL, SRV_WRITE},
    [CS_MSG_JOB_KILL] = {NULL, SRV_WRITE},
    [CS_MSG_JOB_SCALE] = {NULL, SRV_WRITE},
    [CS_MSG_JOB_UPDATE] = {NULL, SRV_WRITE},
    [CS_MSG_SYNC] = {srv_sync, SRV_READ},
    [CS_MSG_COMMIT] = {NULL, SRV_WRITE},
    [CS_MSG_POLL] = {NULL, SRV_PARK},
    [CS_MSG_TASK_STATUS] = {NULL, SRV_WRITE},
    [CS_MSG_GET_MACHINES] = {srv_get_machines, SRV_READ},
    [CS_MSG_GET_JOBS] = {srv_get_jobs, SRV_READ},
    [CS_MSG_GET_TASKS] = {srv_get_tasks, SRV_READ},
    [CS_MSG_GET_JOB] = {srv_get_job, SRV_READ},
    [CS_MSG_STATS] = {srv_stats, SRV_READ},
    [CS_MSG_JOB_NOTE] = {NULL, SRV_WRITE},
    [CS_MSG_SCHED_REPORT] = {srv_sched_report, SRV_READ},
    [CS_MSG_JOB_SURGE] = {NULL, SRV_WRITE},
    [CS_MSG_JOB_END] = {NULL, SRV_WRITE},
    [CS_MSG_MACHINE_ADMIN] = {NULL, SRV_WRITE},
    [CS_MSG_MEMBERS] = {srv_members, SRV_READ},
    [CS_MSG_MEMBERS_ADD] = {srv_members_change, SRV_READ},
    [CS_MSG_MEMBERS_REMOVE] = {srv_members_change, SRV_READ},
    [CS_MSG_MEMBERS_TRANSFER] = {srv_members_change, SRV_READ},
    [CS_MSG_OFFER_ACQUIRE] = {NULL, SRV_OFFER},
    [CS_MSG_OFFER_RELEASE] = {srv_offer_release, SRV_READ},
    [CS_MSG_OFFER_COMMIT] = {NULL, SRV_WRITE},
    [CS_MSG_AUDIT] = {srv_audit, SRV_READ},
};

static const srv_route not_a_request = {NULL, SRV_NONE};

bool srv_leads(cs_server *s)
{
    if (!s->replicated)
        return true;
    pthread_mutex_lock(&s->mu);
    bool leads = s->role == CS_ROLE_LEADER;
    pthread_mutex_unlock(&s->mu);
    return leads;
}

int srv_replica_status(cs_server *s, cs_replica_status *st, cs_error *err)
{
    memset(st, 0, sizeof *st);
    pthread_rwlock_rdlock(&s->store_lk);
    int rc = s->replica != NULL ? cs_replica_status_get(s->replica, st, err)
                                : cs_errorf(err, CS_EUNAVAIL, "the replica is stopping");
    pthread_rwlock_unlock(&s->store_lk);
    return rc;
}

int srv_snap_open(cs_server *s, cs_snap **snap, cs_error *err)
{
    pthread_rwlock_rdlock(&s->store_lk);
    if (s->store == NULL) {
        pthread_rwlock_unlock(&s->store_lk);
        return cs_errorf(err, CS_EUNAVAIL, "the replica is stopping");
    }
    int rc = cs_snap_open(s->store, snap, err);
    if (rc != CS_OK)
        pthread_rwlock_unlock(&s->store_lk);
    return rc;
}

void srv_snap_close(cs_server *s, cs_snap *snap)
{
    cs_snap_close(snap);
    pthread_rwlock_unlock(&s->store_lk);
}

const srv_route *srv_route_of(uint32_t type)
{
    return type < CS_MSG_COUNT && routes[type].how != SRV_NONE ? &routes[type] : &not_a_request;
}

/* ---- the worker state machine ------------------------------------------------ */

/* Count w's request of `len` bytes among those in flight, or refuse it at
 * once when it would take them past --max-inflight-bytes: a reply that
 * says so now costs the client a retry, where a queue would hold the bytes
 * (and the client's wait) without bound. The envelope's request id is read
 * without decoding the body, so that the refusal costs nothing. */
static bool charge(worker *w, size_t len)
{
    cs_server *s = w->s;
    size_t max = s->o.max_inflight_bytes;
    size_t before = atomic_fetch_add(&s->inflight, len);
    if (max == 0 || before + len <= max) {
        w->charged = len;
        return true;
    }
    atomic_fetch_sub(&s->inflight, len);
    cs_mp_cur cur;
    uint32_t n;
    uint64_t version, type, req = 0;
    cs_mp_cur_init(&cur, nng_msg_body(w->req), len);
    if (cs_mp_read_array(&cur, &n) != CS_OK || n < 4 || n > 5 ||
        cs_mp_read_uint(&cur, &version) != CS_OK || cs_mp_read_uint(&cur, &type) != CS_OK ||
        cs_mp_read_uint(&cur, &req) != CS_OK)
        req = 0;
    char m[160];
    snprintf(m, sizeof m,
             "busy: %zu bytes of requests in flight, this one %zu, --max-inflight-bytes %zu",
             before, len, max);
    w->msg.req = req;
    srv_send_error(w, CS_EUNAVAIL, m);
    return false;
}

static void serve(worker *w)
{
    cs_server *s = w->s;
    cs_error err = {0};
    size_t len = nng_msg_len(w->req);
    w->decoded = false;
    w->outcome = CS_OK;
    snprintf(w->who, sizeof w->who, "%s", "anonymous");
    pthread_mutex_lock(&s->mu);
    s->c.requests++;
    pthread_mutex_unlock(&s->mu);
    if (len > s->o.max_msg) {
        char m[128];
        snprintf(m, sizeof m, "message of %zu bytes exceeds the limit of %zu bytes", len,
                 s->o.max_msg);
        w->msg.req = 0;
        srv_send_error(w, CS_ETOOBIG, m);
        return;
    }
    if (!charge(w, len))
        return;
    int rc = cs_msg_decode(nng_msg_body(w->req), len, &w->zone, &w->msg, &err);
    if (rc != CS_OK) {
        srv_send_error(w, rc, err.msg);
        return;
    }
    w->decoded = true;
    if (w->msg.body.type != MSGPACK_OBJECT_MAP && w->msg.type != CS_MSG_COMMIT) {
        srv_send_error(w, CS_EPROTO, "message body is not a map");
        return;
    }
    if ((rc = srv_auth_request(w, &err)) != CS_OK) {
        srv_send_error(w, rc, err.msg);
        return;
    }
    const srv_route *r = srv_route_of(w->msg.type);
    if (r->how != SRV_NONE && s->replicated && srv_leader_only(w->msg.type) && !srv_leads(s)) {
        srv_forward(w);
        return;
    }
    switch (r->how) {
    case SRV_READ:
        srv_run_handler(w, r->fn);
        return;
    case SRV_PARK:
        srv_poll(w);
        return;
    case SRV_OFFER:
        srv_offer_acquire(w);
        return;
    case SRV_WRITE:
        /* Under offers, a commit is checked against its lease's offer
         * here, where a snapshot may be read (offers.h). */
        if (w->msg.type == CS_MSG_OFFER_COMMIT && !srv_offer_commit_check(w))
            return;
        w->state = W_WRITE;
        w->job.w = w;
        srv_enqueue(s, &w->job);
        return;
    case SRV_NONE:
        break;
    }
    char m[64];
    snprintf(m, sizeof m, "message type %s (%u) is not a request", cs_msg_name(w->msg.type),
             w->msg.type);
    srv_send_error(w, CS_EPROTO, m);
}

bool srv_stopping(cs_server *s)
{
    pthread_mutex_lock(&s->mu);
    bool stop = s->stopping;
    pthread_mutex_unlock(&s->mu);
    return stop;
}

static void worker_cb(void *arg)
{
    worker *w = arg;
    int rv;
    switch (w->state) {
    case W_INIT:
        w->state = W_RECV;
        nng_ctx_recv(w->ctx, w->aio);
        break;
    case W_RECV:
        if ((rv = nng_aio_result(w->aio)) != 0) {
            if (rv == NNG_ECLOSED || srv_stopping(w->s))
                return;
            nng_ctx_recv(w->ctx, w->aio);
            break;
        }
        w->req = nng_aio_get_msg(w->aio);
        w->recv_ns = now_ns();
        w->recv_ms = w->recv_ns / 1000000;
        if (srv_stopping(w->s)) {
            /* Stopping: not served (it could be a sync that takes seconds
             * to encode); the client times out and retries elsewhere. */
            srv_release_req(w);
            return;
        }
        serve(w);
        break;
    case W_WAIT: {
        /* The sleep ran out, or the writer cancelled it: answer now. */
        rv = nng_aio_result(w->aio);
        pthread_mutex_lock(&w->s->mu);
        srv_park_remove(w->s, w);
        bool stop = w->s->stopping;
        pthread_mutex_unlock(&w->s->mu);
        if (stop || rv == NNG_ECLOSED) {
            srv_release_req(w);
            return;
        }
        srv_run_handler(w, srv_poll_reply);
        break;
    }
    case W_SEND:
        if ((rv = nng_aio_result(w->aio)) != 0) {
            nng_msg_free(nng_aio_get_msg(w->aio));
            if (rv == NNG_ECLOSED)
                return;
        }
        if (srv_stopping(w->s))
            return; /* do not re-arm an aio that cs_server_stop is stopping */
        w->state = W_RECV;
        nng_ctx_recv(w->ctx, w->aio);
        break;
    case W_OFFER:
        /* Granted, or its wait ran out, or the server stops. */
        rv = nng_aio_result(w->aio);
        srv_offer_woken(w, rv == NNG_ECLOSED || srv_stopping(w->s));
        break;
    case W_WRITE:
        break; /* the writer owns the worker until it sends */
    case W_FORWARD:
        break; /* forward.c owns the worker until it sends */
    }
}

/* ---- start and stop ------------------------------------------------------------ */

typedef struct init_ctx {
    cs_server *s;
} init_ctx;

static int init_machine(void *ctx, const cs_machine *m)
{
    cs_server *s = ((init_ctx *)ctx)->s;
    pthread_mutex_lock(&s->mu);
    mslot *sl = srv_slot_of(s, m->id);
    if (sl != NULL && sl->changed <= m->version) {
        /* A grace period: every machine gets one timeout to check in after
         * a restart of the server. (A replica's applies may have noted a
         * later change meanwhile: that one stands.) */
        sl->seen_ms = now_ms();
        sl->changed = m->version;
        sl->known = true;
        sl->state = m->state;
    }
    pthread_mutex_unlock(&s->mu);
    return sl == NULL ? CS_ENOMEM : 0;
}

/* ---- a replicated cell: the replica's hooks ----------------------------------- */

/* The role or term changed. A new leader gives every machine one heartbeat
 * timeout of grace before its monitor marks anything down: the agents were
 * heartbeating to the old leader (Borg's and Nomad's masters do the same
 * after a failover). */
static void on_role(void *ctx, cs_role role, uint64_t term, uint64_t leader)
{
    cs_server *s = ctx;
    pthread_mutex_lock(&s->mu);
    if (role == CS_ROLE_LEADER && s->role != CS_ROLE_LEADER) {
        int64_t now = now_ms();
        for (size_t i = 0; i < s->nmach; i++) {
            s->mach[i].seen_ms = now;
            s->mach[i].down_queued = false;
        }
    }
    s->role = (uint8_t)role;
    s->term = term;
    bool changed = s->leader != leader && s->workers_ready;
    s->leader = leader;
    pthread_mutex_unlock(&s->mu);
    if (changed)
        cs_clock_arm(s->clock, &s->fwd_timer, cs_clock_now_ms() + FORWARD_GRACE_MS);
}

/* FORWARD_GRACE_MS after the leader changed: the requests still forwarded
 * to another leader are answered CS_ENOTLEADER (srv_forward_leader_changed).
 * Not at once: an old leader that is alive still answers what it took (a
 * leadership transfer's own reply comes after the change). */
static void on_forward_grace(cs_timer *t)
{
    cs_server *s = (cs_server *)((char *)t - offsetof(cs_server, fwd_timer));
    pthread_mutex_lock(&s->mu);
    uint64_t leader = s->leader;
    pthread_mutex_unlock(&s->mu);
    srv_forward_leader_changed(s, leader);
}

static void on_applied(void *ctx, uint64_t index, const cs_result *res, size_t n)
{
    cs_server *s = ctx;
    pthread_mutex_lock(&s->mu);
    bool ready = s->ready;
    pthread_mutex_unlock(&s->mu);
    if (ready)
        srv_applied(s, index, res, n);
}

/* An installed snapshot is about to replace the store: wait for every
 * reader to leave it. A stop that holds the lock already excludes them
 * (and waits for this thread): go on without it. */
static void on_replacing(void *ctx)
{
    cs_server *s = ctx;
    while (pthread_rwlock_trywrlock(&s->store_lk) != 0) {
        pthread_mutex_lock(&s->mu);
        bool stop = s->stopping;
        pthread_mutex_unlock(&s->mu);
        if (stop) {
            s->swap_unlocked = true;
            return;
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    s->store = NULL;
}

static int restored_machine(void *ctx, const cs_machine *m)
{
    cs_server *s = ctx;
    mslot *sl = srv_slot_of(s, m->id);
    if (sl == NULL)
        return CS_ENOMEM;
    sl->known = true;
    sl->state = m->state;
    return 0;
}

/* The store is the snapshot's now: what the server keeps of it in memory
 * (each machine's state, the version) is read again, and every parked
 * poll is woken, since any machine may have changed. */
static void on_restored(void *ctx, cs_store *store, uint64_t index)
{
    cs_server *s = ctx;
    s->store = store;
    cs_snap *snap;
    cs_error err;
    if (cs_snap_open(store, &snap, &err) == CS_OK) {
        uint64_t v = cs_snap_version(snap);
        pthread_mutex_lock(&s->mu);
        for (size_t i = 0; i < s->nmach; i++)
            s->mach[i].known = false;
        if (cs_snap_each_machine(snap, restored_machine, s, &err) != CS_OK)
            fprintf(stderr, "cellstated: reading the installed snapshot's machines: %s\n",
                    err.msg);
        int64_t now = now_ms();
        for (size_t i = 0; i < s->nmach; i++) {
            s->mach[i].changed = v;
            s->mach[i].seen_ms = now;
            srv_wake_polls(&s->mach[i]);
        }
        s->version = v;
        s->applied_index = index;
        pthread_cond_broadcast(&s->applied_cv);
        pthread_mutex_unlock(&s->mu);
        cs_snap_close(snap);
        srv_announce(s, v); /* subscribers may be waiting for a version it passed */
    } else {
        fprintf(stderr, "cellstated: reading the installed snapshot: %s\n", err.msg);
    }
    if (s->swap_unlocked)
        s->swap_unlocked = false;
    else
        pthread_rwlock_unlock(&s->store_lk);
}

/* Start this member's replica (replica.h), which opens the store. */
static int start_replica(cs_server *s, const cs_server_opts *o, const cs_store_opts *so,
                         cs_error *err)
{
    s->members = malloc(o->nmembers * sizeof *s->members);
    if (s->members == NULL)
        return cs_errorf(err, CS_ENOMEM, "server: out of memory");
    memcpy(s->members, o->members, o->nmembers * sizeof *s->members);
    s->o.members = s->members;
    s->replicated = true;
    if (o->raft_addr != NULL && (s->raft_addr = strdup(o->raft_addr)) == NULL)
        return cs_errorf(err, CS_ENOMEM, "server: out of memory");
    s->o.raft_addr = s->raft_addr;
    char raft_dir[4096];
    int n = snprintf(raft_dir, sizeof raft_dir, "%s/raft", s->data_dir);
    if (n < 0 || (size_t)n >= sizeof raft_dir)
        return cs_errorf(err, CS_EINVAL, "data directory %s: path too long", s->data_dir);
    CS_TRY(srv_touched_new(s) == CS_OK ? CS_OK
                                       : cs_errorf(err, CS_ENOMEM, "server: out of memory"));
    CS_TRY(srv_forward_init(s, err));
    cs_replica_opts ro = {
        .id = o->member_id,
        .raft_addr = s->raft_addr,
        .members = s->members,
        .nmembers = o->nmembers,
        .raft_dir = raft_dir,
        .store_dir = s->data_dir,
        .store_opts = *so,
        .election_timeout_ms = o->election_timeout_ms,
        .snapshot_threshold = o->snapshot_threshold,
        .snapshot_trailing = o->snapshot_trailing,
        .install_snapshot_timeout_ms = o->install_snapshot_timeout_ms,
        .tls = s->o.tls,
    };
    cs_replica_hooks h = {s, on_applied, on_replacing, on_restored, on_role};
    cs_replica *r;
    CS_TRY(cs_replica_start(&ro, &h, &r, err));
    pthread_rwlock_wrlock(&s->store_lk);
    s->replica = r;
    s->store = cs_replica_store(r);
    pthread_rwlock_unlock(&s->store_lk);
    return CS_OK;
}

/* Stop the replica (which closes the store): proposals in flight fail, so
 * that a writer waiting for them goes on; readers are kept out until the
 * store is gone. */
static void stop_replica(cs_server *s)
{
    if (s->replica == NULL)
        return;
    pthread_rwlock_wrlock(&s->store_lk);
    cs_replica_stop(s->replica);
    s->replica = NULL;
    s->store = NULL;
    pthread_rwlock_unlock(&s->store_lk);
}

static int nng_fail(cs_error *err, int rv, const char *what, const char *url)
{
    return cs_errorf(err, CS_EIO, "%s %s: %s", what, url ? url : "", nng_strerror(rv));
}

/* Listen at `url`: over TLS when it is a tls+tcp URL (s->o.tls then
 * required), else as ever, with the same errors as ever. */
static int tls_or_plain_listen(cs_server *s, nng_socket sock, const char *url, nng_listener *l,
                               const char *what, cs_error *err)
{
    int rc = cs_tls_check_url(s->o.tls, url, what, err);
    if (rc != CS_OK || cs_tls_url(url))
        return rc != CS_OK ? rc : cs_tls_listen(sock, url, s->o.tls, l, what, err);
    int rv = nng_listen(sock, url, l, 0);
    return rv != 0 ? nng_fail(err, rv, sock.id == s->rep.id ? "listening on" : "publishing on", url)
                   : CS_OK;
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

int cs_server_start(const cs_server_opts *o, cs_server **out, cs_error *err)
{
    cs_server *s = calloc(1, sizeof *s);
    if (s == NULL)
        return cs_errorf(err, CS_ENOMEM, "server: out of memory");
    s->o = *o;
    s->data_dir = dup_or_null(o->data_dir);
    s->listen_url = dup_or_null(o->listen_url);
    s->pub_url = dup_or_null(o->pub_url);
    s->local_url = dup_or_null(o->local_url);
    s->local_pub_url = dup_or_null(o->local_pub_url);
    s->o.data_dir = s->data_dir;
    s->o.listen_url = s->listen_url;
    s->o.pub_url = s->pub_url;
    s->o.local_url = s->local_url;
    s->o.local_pub_url = s->local_pub_url;
    if (s->o.workers == 0)
        s->o.workers = 1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->rmu, NULL);
    pthread_mutex_init(&s->fmu, NULL);
    pthread_rwlock_init(&s->store_lk, NULL);
    cs_sched_table_init(&s->reports);
    pthread_cond_init(&s->cv, NULL);
    pthread_cond_init(&s->mon_cv, NULL);
    pthread_cond_init(&s->applied_cv, NULL);
    int rc, rv;
    if ((rc = srv_metrics_init(&s->metrics, err)) != CS_OK ||
        (rc = srv_auth_init(s, err)) != CS_OK)
        goto err_after_alloc;
    if (s->data_dir == NULL || s->listen_url == NULL) {
        rc = cs_errorf(err, CS_EINVAL, "server: a data directory and a listen URL are needed");
        goto err_after_alloc;
    }
    if (mkdir(s->data_dir, 0755) != 0 && errno != EEXIST) {
        rc = cs_errorf(err, CS_EIO, "creating data directory %s: %s", s->data_dir,
                       strerror(errno));
        goto err_after_alloc;
    }
    if ((rc = cs_audit_open(s->data_dir, s->o.audit_max_bytes, &s->audit, err)) != CS_OK)
        goto err_after_alloc;
    cs_store_opts so = {.nosync = o->nosync};
    if (o->nmembers > 0) {
        rc = start_replica(s, o, &so, err);
    } else {
        /* One replica: its store's commits are the durability a write
         * waits for, and are timed (a replicated cell's is the Raft
         * round, timed by the writer). */
        so.committed = srv_metrics_store_committed;
        so.committed_ctx = s;
        rc = cs_store_open(s->data_dir, &so, &s->store, err);
    }
    if (rc != CS_OK)
        goto err_after_alloc;
    pthread_mutex_lock(&s->mu);
    s->ready = true; /* the replica's hooks may act from here on */
    pthread_mutex_unlock(&s->mu);

    cs_snap *snap;
    if ((rc = srv_snap_open(s, &snap, err)) != CS_OK)
        goto err_after_store;
    uint64_t v = cs_snap_version(snap);
    pthread_mutex_lock(&s->mu);
    if (v > s->version)
        s->version = v;
    pthread_mutex_unlock(&s->mu);
    init_ctx ic = {s};
    rc = cs_snap_each_machine(snap, init_machine, &ic, err);
    srv_snap_close(s, snap);
    if (rc != CS_OK)
        goto err_after_store;

    if ((rv = nng_rep0_open(&s->rep)) != 0) {
        rc = nng_fail(err, rv, "opening REP socket", NULL);
        goto err_after_store;
    }
    /* nng itself drops (and disconnects) messages beyond a hard cap; below
     * it, a request over max_msg gets an error reply that says so. */
    size_t hard = s->o.max_msg > SIZE_MAX / 4 ? SIZE_MAX : s->o.max_msg * 4 + 4096;
    nng_socket_set_size(s->rep, NNG_OPT_RECVMAXSZ, hard);
    if ((rc = srv_peers_new(s->rep, s->o.max_conns_per_peer, &s->peers, err)) != CS_OK)
        goto err_after_rep;
    s->nworkers = s->o.workers;
    s->workers = calloc(s->nworkers, sizeof *s->workers);
    if (s->workers == NULL) {
        rc = cs_errorf(err, CS_ENOMEM, "server: out of memory");
        goto err_after_rep;
    }
    /* Parked polls sleep on a clock of the server's own (proto/clock.h
     * says why not nng_sleep_aio): room for every worker to park. */
    s->fwd_timer.fire = on_forward_grace;
    if ((rc = cs_clock_new(&s->clock, err)) != CS_OK ||
        (rc = cs_clock_reserve(s->clock, s->nworkers + 1, err)) != CS_OK)
        goto err_after_workers;
    for (uint32_t i = 0; i < s->nworkers; i++) {
        worker *w = &s->workers[i];
        w->s = s;
        cs_sleep_init(&w->psleep, s->clock);
        msgpack_zone_init(&w->zone, 4096);
        if ((rv = nng_aio_alloc(&w->aio, worker_cb, w)) != 0 ||
            (rv = nng_ctx_open(&w->ctx, s->rep)) != 0) {
            rc = nng_fail(err, rv, "creating worker", NULL);
            goto err_after_workers;
        }
        if (s->replicated && (rc = srv_forward_worker_init(w, err)) != CS_OK)
            goto err_after_workers;
    }
    if (s->o.concurrency == CS_CONCURRENCY_OFFERS &&
        (rc = srv_offers_new(s, s->o.offer_timeout_ms, &s->offers, err)) != CS_OK)
        goto err_after_workers;
    pthread_mutex_lock(&s->mu);
    s->workers_ready = true; /* the leader's changes reach their forwards from here on */
    pthread_mutex_unlock(&s->mu);
    if ((rv = nng_aio_alloc(&s->probe, srv_probe_cb, s)) != 0) {
        rc = nng_fail(err, rv, "creating the monitor's probe", NULL);
        goto err_after_workers;
    }
    s->served_ms = now_ms();
    if ((rc = tls_or_plain_listen(s, s->rep, s->listen_url, &s->listener, "--listen", err)) !=
        CS_OK)
        goto err_after_workers;
    if (s->local_url != NULL) {
        if ((rv = nng_listen(s->rep, s->local_url, &s->auth.local, 0)) != 0) {
            rc = nng_fail(err, rv, "listening on", s->local_url);
            goto err_after_workers;
        }
        s->auth.have_local = true;
    }
    if (s->pub_url != NULL || s->local_pub_url != NULL) {
        if ((rv = nng_pub0_open(&s->pub)) != 0) {
            rc = nng_fail(err, rv, "opening PUB socket", NULL);
            goto err_after_workers;
        }
        s->have_pub = true;
        const char *urls[] = {s->pub_url, s->local_pub_url};
        for (size_t i = 0; i < 2; i++)
            if (urls[i] != NULL &&
                (rc = tls_or_plain_listen(s, s->pub, urls[i], NULL, "--pub", err)) != CS_OK)
                goto err_after_workers;
    }
    if (pthread_create(&s->writer, NULL, srv_writer_main, s) != 0) {
        rc = cs_errorf(err, CS_ENOMEM, "starting the writer thread");
        goto err_after_workers;
    }
    s->writer_started = true;
    if (pthread_create(&s->monitor, NULL, srv_monitor_main, s) != 0) {
        rc = cs_errorf(err, CS_ENOMEM, "starting the monitor thread");
        goto err_after_workers;
    }
    s->monitor_started = true;
    for (uint32_t i = 0; i < s->nworkers; i++)
        worker_cb(&s->workers[i]);
    *out = s;
    return CS_OK;

err_after_workers:
    cs_server_stop(s);
    return rc;
err_after_rep:
    nng_close(s->rep);
    srv_peers_free(s->peers);
err_after_store:
    if (s->replicated)
        stop_replica(s);
    else
        cs_store_close(s->store);
err_after_alloc:
    if (s->replica != NULL)
        stop_replica(s);
    if (s->have_fwd)
        nng_close(s->fwd);
    srv_touched_free(s);
    cs_audit_close(s->audit);
    free(s->members);
    free(s->raft_addr);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->mon_cv);
    pthread_cond_destroy(&s->applied_cv);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->rmu);
    pthread_mutex_destroy(&s->fmu);
    pthread_rwlock_destroy(&s->store_lk);
    srv_metrics_free(&s->metrics);
    srv_auth_free(s);
    free(s->data_dir);
    free(s->listen_url);
    free(s->pub_url);
    free(s->local_url);
    free(s->local_pub_url);
    free(s);
    return rc;
}

int cs_server_bound_url(cs_server *s, char *out, size_t size, cs_error *err)
{
    int port = 0, n;
    const char *url = s->listen_url;
    const char *colon = strrchr(url, ':');
    /* Only TCP listeners have a port; ipc:// and inproc:// are their URL. */
    if ((strncmp(url, "tcp", 3) == 0 || cs_tls_url(url)) && colon != NULL &&
        nng_listener_get_int(s->listener, NNG_OPT_TCP_BOUND_PORT, &port) == 0)
        n = snprintf(out, size, "%.*s:%d", (int)(colon - url), url, port);
    else
        n = snprintf(out, size, "%s", url);
    if (n < 0 || (size_t)n >= size)
        return cs_errorf(err, CS_EINVAL, "the listen address %s is too long", url);
    return CS_OK;
}

void cs_server_stop(cs_server *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_broadcast(&s->cv);
    pthread_cond_broadcast(&s->mon_cv);
    pthread_cond_broadcast(&s->applied_cv);
    pthread_mutex_unlock(&s->mu);
    /* A replicated cell: the replica first, so that proposals in flight
     * fail and a writer waiting for them can answer and leave. */
    stop_replica(s);
    /* The writer first: it finishes the write in progress and replies on a
     * socket still open, then leaves. Only then are the sockets closed
     * (nng must never be handed a context of a closed socket). */
    if (s->writer_started)
        pthread_join(s->writer, NULL);
    if (s->monitor_started)
        pthread_join(s->monitor, NULL);
    if (s->probe != NULL)
        nng_aio_stop(s->probe);
    /* Then the workers: nng_aio_stop waits for a callback in flight (a
     * read being answered) and ends parked polls; callbacks see `stopping`
     * and do not re-arm. Only then is the socket closed. Every aio is
     * cancelled first, all at once: stopping them one by one waited for
     * each cancellation's callback in turn behind nng's task queue (11,024
     * workers at C1M scale). The listener goes first, so that no new
     * request arrives meanwhile. */
    if (nng_listener_id(s->listener) > 0)
        nng_listener_close(s->listener);
    if (s->clock != NULL)
        cs_clock_disarm(s->clock, &s->fwd_timer, true);
    srv_forward_stop(s);
    for (uint32_t i = 0; i < s->nworkers; i++)
        if (s->workers[i].aio != NULL)
            nng_aio_cancel(s->workers[i].aio);
    for (uint32_t i = 0; i < s->nworkers; i++)
        if (s->workers[i].aio != NULL)
            nng_aio_stop(s->workers[i].aio);
    nng_close(s->rep);
    srv_peers_free(s->peers); /* the socket is closed: no pipe callback comes any more */
    if (s->have_pub)
        nng_close(s->pub);
    for (uint32_t i = 0; i < s->nworkers; i++) {
        worker *w = &s->workers[i];
        if (w->aio != NULL)
            nng_aio_free(w->aio);
        srv_release_req(w);
        msgpack_zone_destroy(&w->zone);
    }
    if (s->probe != NULL)
        nng_aio_free(s->probe);
    /* No worker calls in any more: the offer's expiry is disarmed with it. */
    srv_offers_free(s->offers);
    /* Every parked poll's aio is stopped: no sleep is armed. */
    cs_clock_free(s->clock);
    /* Writes queued after the writer left, and monitor verdicts: dropped. */
    for (int l = 0; l < NLANES; l++)
        while (s->lanes[l].head != NULL) {
            wjob *j = s->lanes[l].head;
            s->lanes[l].head = j->next;
            if (j->w == NULL) {
                free(j->gc);
                free(j);
            }
        }
    free(s->workers);
    free(s->mach);
    if (!s->replicated)
        cs_store_close(s->store);
    srv_touched_free(s);
    cs_audit_close(s->audit); /* the writer and the workers are gone */
    free(s->members);
    free(s->raft_addr);
    cs_sched_table_free(&s->reports);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->mon_cv);
    pthread_cond_destroy(&s->applied_cv);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->rmu);
    pthread_mutex_destroy(&s->fmu);
    pthread_rwlock_destroy(&s->store_lk);
    srv_metrics_free(&s->metrics);
    srv_auth_free(s);
    free(s->data_dir);
    free(s->listen_url);
    free(s->pub_url);
    free(s->local_url);
    free(s->local_pub_url);
    free(s);
}

