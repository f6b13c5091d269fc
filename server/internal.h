/* internal.h — what cellstated's files share, and nothing else includes.
 *
 * cellstated is split along its seams, each a file of server/:
 *
 *   server.c    transport: the nng workers, one table routing each message
 *               type to its handler (a read, a write, or a poll), start/stop
 *   reads.c     get.machines, get.jobs, get.tasks, get.job, stats: answered
 *               from a snapshot on the worker's thread
 *   feed.c      what keeps readers current: sync, and agents' polls parked
 *               until their machine changes, woken by the writer
 *   writer.c    the one writer thread: every write, in arrival order, in
 *               group commits; after each group, wake-ups and the version
 *   monitor.c   heartbeats, the monitor thread that marks silent machines
 *               down and judges drain deadlines, upkeep (job GC, compaction)
 *   reports.c   schedulers' sched.report, kept in memory for stats
 *   offers.c    --concurrency offers: the Mesos-style offer, one lease at a
 *               time in DRF order (offers.h)
 *   metrics.c   what the server measures of itself and of the cell, and
 *               its Prometheus text (cs_server_metrics_text)
 *   peers.c     connections per peer (--max-conns-per-peer): nng's pipe
 *               notifications, counted by the peer's IP address
 *   authz.c     who sends each request (certificate, token, a replica's
 *               "as") and whether that principal may (docs/security.md)
 *   audit.c     the audit log of accepted writes (audit.h: a module of its
 *               own, cs_audit_); what each write records is writer.c's
 *
 * Names shared between these files carry the srv_ prefix; everything else
 * is static to its file. Threads and locks are described in server.c.
 */
#ifndef CS_SERVER_INTERNAL_H
#define CS_SERVER_INTERNAL_H

#include <nng/nng.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "cellstate/promtext.h"
#include "cellstate/store.h"
#include "proto/agentmsg.h"
#include "proto/clock.h"
#include "proto/principal.h"
#include "proto/proto.h"
#include "proto/schedreport.h"
#include "server/audit.h"
#include "server/offers.h"
#include "server/server.h"
#include "txn/command.h"

typedef enum wstate { W_INIT, W_RECV, W_WRITE, W_WAIT, W_SEND, W_FORWARD, W_OFFER } wstate;

typedef struct worker worker;

/* One command of a prepared write (writer.c). */
typedef struct wcmd {
    struct cs_server *s; /* a replicated cell: whose proposal (writer.c) */
    cs_command c;
    bool built;     /* its builder succeeded: it is applied (proposed) */
    int rc;         /* the builder's code, then the apply's (CS_OK: `res` holds the result) */
    cs_error err;   /* with rc */
    cs_result res;
    uint64_t index; /* a replicated cell: its Raft log index; else 0 */
} wcmd;

/* A write prepared for the state machine: its commands (one; a batch of
 * reports has one per report), and what its reply needs besides their
 * results. Built by the write's `prep` (writer.c), answered by its `reply`
 * once every command is applied. Owned by its wjob. */
typedef struct wprep {
    wcmd one;
    wcmd *cmds; /* &one, or n of them (a batch of reports) */
    uint32_t n;
    bool ready;                 /* prepared: the fields below are set */
    int rc;                     /* the prep's own error (no command), e.g. an unknown name */
    cs_error err;
    cs_arena a;                 /* the decoded request */
    cs_txn txn;                 /* commit: the transaction (its command borrows it) */
    cs_task_status_req reports; /* task.status */
    cs_id id;                   /* machine.admin: the machine */
    uint64_t lease;             /* offer.commit: the lease it names */
    uint8_t admin;
    uint64_t deadline;
    const char *name; /* the job or machine a write named, for the audit (in `a`); NULL: none */
} wprep;

/* An item of the writer's queue: a worker's request, or one of the
 * monitor's (w == NULL): "machine is silent" (down_machine), "its drain
 * deadline came" (down_machine with drain), or "these ended jobs are due
 * for collection" (gc, ngc: owned by the item). */
typedef struct wjob {
    struct wjob *next;
    worker *w;
    cs_id down_machine;
    cs_id *gc;
    size_t ngc;
    bool drain;
    wprep p;
} wjob;

/* A FIFO of queued writes. */
typedef struct wlane {
    wjob *head, *tail;
} wlane;
enum { LANE_CELL, LANE_REPORTS, NLANES };

struct worker {
    cs_server *s;
    /* Who sent the request being served (authz.c, set by serve()), its
     * text (the audit log's "who": "agent:m1", "operator"; "anonymous" in a
     * cell without roles), and whether job environments are hidden from it
     * (a reader). */
    cs_principal principal;
    char who[CS_PRINCIPAL_MAX + 1];
    bool redact;
    nng_aio *aio;
    nng_ctx ctx;
    wstate state;
    nng_msg *req; /* the request being served; owned */
    size_t charged; /* its bytes, counted in cs_server.inflight until it is released */
    msgpack_zone zone;
    cs_msg msg;
    wjob job;
    int64_t recv_ms; /* when nng handed us the request (monotonic) */
    int64_t recv_ns; /* the same in nanoseconds: a commit's latency (metrics.c) */
    /* What the reply will say, for the request counters (metrics.c): the
     * request decoded (else its type is unknown), and its error code
     * (CS_OK: a reply of its own type). Set by serve() and the paths that
     * answer with an error. */
    bool decoded;
    int outcome;
    /* A parked poll, in its machine's list (mslot.parked). */
    cs_id poll_machine;
    uint64_t poll_since;
    bool poll_jobs_once; /* the compact reply: each job once, entries name it */
    bool poll_short;     /* "known": "short": tasks unchanged since poll_since come short */
    bool parked;
    worker *wprev, *wnext;
    cs_sleep psleep; /* its sleep on the server's clock (cs_server.clock) */
    /* A parked offer.acquire (offers.c): its place in the queue. */
    srv_offer_wait ow;
    /* Forwarding to the leader (forward.c): its own aio and context on
     * the server's forwarding socket, opened on first use. */
    nng_aio *faio;
    nng_ctx fctx;
    bool fctx_open;
    bool fsent; /* the request went out: the aio now receives the reply */
    /* The leader a request in flight was forwarded to (0: none); set to 0
     * by srv_forward_leader_changed when it cancels the request. */
    _Atomic uint64_t fleader;
};

typedef struct mslot {
    int64_t seen_ms;  /* receipt of the last heartbeat or registration (monotonic) */
    uint64_t changed; /* cell version of the machine record's last change */
    /* The record's state as of s->version, kept by the writer (after_write)
     * so that a heartbeat is answered from memory: it never opens a
     * snapshot, which waits while the writer publishes a group. */
    uint8_t state;
    bool known; /* a record with this id exists */
    bool down_queued;
    bool drain_queued; /* the monitor queued its drain deadline's verdict */
    /* The polls parked on this machine: a write wakes only the polls of the
     * machines it changed, instead of walking every parked poll of the cell
     * (10,000 at 10,000 machines) under `mu` at each write. */
    struct worker *parked;
} mslot;

#define STATE_UNREAD 0xff /* after_write: a changed machine whose state it could not read */

typedef struct counters {
    uint64_t requests, errors, writes, commits, commits_conflicted, claims, claims_committed;
    uint64_t queued; /* writes waiting for the writer now */
} counters;

/* ---- metrics (metrics.c) ---- */

/* Request types as counted: each message type, and [CS_MSG_COUNT] for a
 * request that did not decode (type unknown). Outcomes: each error code
 * (CS_OK: answered with its own type), and [CS_ECODE_MAX + 1] for a code
 * outside the table (a relayed leader's reply). */
#define SRV_MTYPES (CS_MSG_COUNT + 1)
#define SRV_OUTCOMES (CS_ECODE_MAX + 2)

/* One scheduler's commits, by the id its transactions carry (cs_txn.sched)
 * and the name its sched.report gave that id ("" until one did). */
typedef struct srv_sched_counts {
    uint64_t id;
    char name[CS_NAME_MAX + 1];
    uint64_t commits;           /* transactions applied (not replays) */
    uint64_t commits_conflicted; /* of which some claim conflicted */
    uint64_t claims_conflicted;
    uint64_t placements; /* claims committed */
} srv_sched_counts;

/* The most schedulers counted apart; the commits of any further ones are
 * counted together under SRV_SCHED_OTHERS (a client inventing ids must not
 * grow the table, or the text, without bound). */
#define SRV_SCHED_COUNTS_MAX CS_SCHED_TABLE_MAX
#define SRV_SCHED_OTHERS "(others)"

/* The server's own measurements. The request counters and histograms are
 * atomics, counted on whichever thread answers; the schedulers' commit
 * counts change under cs_server.mu, in the section of the writer's reply
 * that already took it for the `stats` counters. */
typedef struct srv_metrics {
    _Atomic uint64_t requests[SRV_MTYPES][SRV_OUTCOMES];
    cs_prom_hist commit_ns;       /* commit and offer.commit: receipt to reply */
    cs_prom_hist group_writes;    /* writes per group the writer takes */
    cs_prom_hist store_commit_ns; /* one replica: the store's durable commits */
    cs_prom_hist raft_ns;         /* a replicated cell: a group's proposal to its result */
    srv_sched_counts *scheds;     /* (mu) */
    size_t nscheds, capscheds;
    srv_sched_counts others;      /* (mu) beyond SRV_SCHED_COUNTS_MAX */
} srv_metrics;

/* Roles (authz.c): whether they are enforced, the --auth-tokens file's
 * tokens, and the in-process listener whose clients (the HTTP gateway) may
 * act for others. */
typedef struct srv_auth {
    bool enforce;
    struct srv_token *tokens;
    size_t ntokens;
    nng_listener local;
    bool have_local;
} srv_auth;

struct cs_server {
    cs_server_opts o;
    srv_auth auth;
    char *data_dir, *listen_url, *pub_url, *local_url, *local_pub_url;
    cs_store *store;
    nng_socket rep, pub;
    bool have_pub;
    worker *workers;
    uint32_t nworkers;
    cs_clock *clock; /* the parked polls' sleeps (proto/clock.h), the forwards' grace */
    cs_timer fwd_timer; /* armed when the leader changes (server.c on_forward_grace) */

    pthread_mutex_t mu;
    pthread_cond_t cv;     /* the writer's queue is not empty, or stopping */
    pthread_cond_t mon_cv; /* stopping: wakes the monitor's sleep */
    /* The writer's queue, in two lanes: [LANE_CELL] the schedulers' and
     * operators' writes (commits, jobs, machines, the monitor's verdicts),
     * [LANE_REPORTS] the agents' task reports. See writer_main. */
    wlane lanes[NLANES];
    bool stopping;
    pthread_t writer, monitor;
    bool writer_started, monitor_started;
    /* The monitor's probe (monitor_main): a chain of PROBE_HOPS callbacks
     * through nng's task queue, the queue that reads heartbeats. */
    nng_aio *probe;
    bool probe_busy;
    uint32_t probe_hops;
    int64_t probe_armed_ms;
    int64_t served_ms; /* requests received before this have been read */
    bool gc_queued;    /* a collection of ended jobs waits for the writer */
    nng_listener listener;
    /* Connections refused at the TLS handshake so far (cs_tls_refused),
     * as the monitor last logged them; the monitor's alone. */
    uint64_t tls_refused;
    mslot *mach;
    size_t nmach;
    uint32_t nparked;
    uint64_t version;
    counters c;
    /* The machines the writer's current group changed, from its commands'
     * results (writer.c): the polls to wake. Writer thread only. */
    struct wtouched *touched;

    /* A replicated cell (server/replica.h): the replica owns the store.
     * `store_lk` is held for reading by whoever uses the store off the
     * replica's thread (snapshots, the writer's prep), and for writing
     * while a snapshot replaces the store or the replica stops. */
    bool replicated;
    struct cs_replica *replica;
    pthread_rwlock_t store_lk;
    struct wgroup *wdone, *wdone_tail; /* groups whose results came back (mu) */
    uint32_t winflight;        /* the writer's groups in flight (mu) */
    struct wtouched *rtouched; /* what applied entries touched: replica thread */
    uint64_t applied_index;    /* the last entry applied here (mu) */
    pthread_cond_t applied_cv; /* applied_index moved (mu) */
    uint8_t role;              /* cs_role (mu) */
    uint64_t term, leader;     /* (mu) */
    bool swap_unlocked;        /* a snapshot install found store_lk taken by a stop */
    bool ready;                /* started: the replica's hooks act (mu) */
    bool workers_ready;        /* the workers exist: on_role may cancel forwards (mu) */
    struct cs_member *members; /* opts.members, copied */
    char *raft_addr;           /* opts.raft_addr, copied */
    /* Forwarding (forward.c): one REQ socket dialled to the leader's
     * listen URL, redialled when the leader changes (fmu). */
    pthread_mutex_t fmu;
    nng_socket fwd;
    bool have_fwd;
    nng_dialer fwd_dialer;
    bool have_fwd_dialer;
    uint64_t fwd_leader; /* whose URL fwd_dialer dials; 0: none */
    char fwd_url[128];

    pthread_mutex_t rmu;
    cs_sched_table reports; /* the latest sched.report of each scheduler */

    /* --concurrency offers: the offer (offers.c); NULL when optimistic. */
    struct srv_offers *offers;

    srv_metrics metrics;
    /* The bytes of the requests workers hold now (--max-inflight-bytes):
     * charged as a request is received, given back as it is released. */
    _Atomic size_t inflight;
    /* --max-conns-per-peer (peers.c); NULL when unbounded. */
    struct srv_peers *peers;
    /* The audit log (audit.h), DIR/audit.log: appended to by the writer
     * and by membership changes, read by `audit` requests. */
    cs_audit *audit;
};

static inline int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Wall-clock milliseconds since the epoch, for what people read as a date. */
static inline uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}


#define PK(call)                                                       \
    do {                                                               \
        if ((call) != 0)                                               \
            return cs_errorf(err, CS_ENOMEM, "reply: out of memory");  \
    } while (0)

/* The body of the request `w` serves: valid until its reply is sent. */
static inline const msgpack_object *body(worker *w) { return &w->msg.body; }

/* A snapshot of the store, off the replica's thread: taken under the
 * store's read lock (a replicated cell's store may be replaced by an
 * installed snapshot, or closed by a stop), released by srv_snap_close.
 * CS_EUNAVAIL when the replica has stopped. */
int srv_snap_open(cs_server *s, cs_snap **snap, cs_error *err);
void srv_snap_close(cs_server *s, cs_snap *snap);

static inline int open_snap(worker *w, cs_snap **snap, cs_error *err)
{
    return srv_snap_open(w->s, snap, err);
}

/* ---- transport (server.c) ---- */

/* A handler packs the body of a successful reply into `pk` (the envelope is
 * already there) or returns an error code with `err` filled. */
typedef int (*handler_fn)(worker *w, msgpack_packer *pk, cs_error *err);

/* How a message type is served: read on the worker's thread, queued for
 * the writer, or (poll) parked until its machine changes. */
typedef enum srv_how { SRV_NONE, SRV_READ, SRV_WRITE, SRV_PARK, SRV_OFFER } srv_how;

/* One row of the dispatch table. */
typedef struct srv_route {
    handler_fn fn; /* SRV_READ, SRV_WRITE */
    srv_how how;
} srv_route;

/* The route of message type `type`; how == SRV_NONE for a type that is not
 * a request. */
const srv_route *srv_route_of(uint32_t type);

/* The slot of machine `id`, growing the table; NULL when out of memory.
 * Called with mu held. */
mslot *srv_slot_of(cs_server *s, cs_id id);

/* Whether the server is stopping (takes mu). */
bool srv_stopping(cs_server *s);
/* Drop w's request without a reply (the server is stopping). */
void srv_release_req(worker *w);
/* Send `data[0..len)` (copied) as w's reply; the request is released. */
void srv_send_bytes(worker *w, const void *data, size_t len);
/* Send an error reply with `code` and `message` (copied). */
void srv_send_error(worker *w, int code, const char *message);
/* The reply to w's request into `b`: fn's, or an error reply. */
void srv_build_reply(worker *w, handler_fn fn, msgpack_sbuffer *b);
/* Build and send the reply of fn. */
void srv_run_handler(worker *w, handler_fn fn);

/* A replicated cell: the replica's status (replica.h's
 * cs_replica_status_get; st->members is the caller's: free), or CS_EUNAVAIL
 * once it has stopped. */
struct cs_replica_status;
int srv_replica_status(cs_server *s, struct cs_replica_status *st, cs_error *err);

/* Whether this server judges heartbeats, drain deadlines and upkeep: one
 * replica always; in a replicated cell, the leader. */
bool srv_leads(cs_server *s);

/* ---- forwarding to the leader (forward.c) ---- */

/* Whether a request of `type` must be served by the leader: writes,
 * heartbeats (the leader's monitor reads them), schedulers' reports (kept
 * where stats are whole) and membership changes. */
bool srv_leader_only(uint32_t type);
/* Forward w's request to the leader and relay its reply (a follower of a
 * replicated cell); CS_ENOTLEADER when no leader is known. */
void srv_forward(worker *w);
/* The forwarding side of a worker and of the server: set up, torn down. */
int srv_forward_init(cs_server *s, cs_error *err);
int srv_forward_worker_init(worker *w, cs_error *err);
void srv_forward_stop(cs_server *s);
/* The leader is now `leader` (0: none known): answer every request still
 * forwarded to another one CS_ENOTLEADER at once, instead of holding its
 * worker until the forwarding timeout (a dead leader never replies; with
 * every worker held so, a follower stopped answering even reads). Called
 * FORWARD_GRACE_MS after a change of leader, on the server's clock. */
#define FORWARD_GRACE_MS 2000
void srv_forward_leader_changed(cs_server *s, uint64_t leader);

/* ---- the cell's members (members.c) ---- */

/* members: this replica's view (any replica; one member without --cluster). */
int srv_members(worker *w, msgpack_packer *pk, cs_error *err);
/* members.add, members.remove, members.transfer: on the leader, waited for
 * until committed (or refused on a cell of one replica). */
int srv_members_change(worker *w, msgpack_packer *pk, cs_error *err);

/* Wait until this replica has applied `index` (a sync's or poll's
 * min_index), at most timeout_ms: CS_OK, or CS_EUNAVAIL naming both
 * indexes. One replica: at once (every write is applied before its
 * reply). */
int srv_wait_applied(cs_server *s, uint64_t index, uint32_t timeout_ms, cs_error *err);

/* ---- reads (reads.c) ---- */

/* audit: the newest entries of this server's audit log that match. */
int srv_audit(worker *w, msgpack_packer *pk, cs_error *err);

int srv_get_machines(worker *w, msgpack_packer *pk, cs_error *err);
int srv_get_jobs(worker *w, msgpack_packer *pk, cs_error *err);
int srv_get_tasks(worker *w, msgpack_packer *pk, cs_error *err);
int srv_get_job(worker *w, msgpack_packer *pk, cs_error *err);
int srv_stats(worker *w, msgpack_packer *pk, cs_error *err);
/* {"version", "tasks": [{"task", "job"}, ...]}: the tasks placed on
 * `machine`, each with its job (a poll's reply in the "each" form). */
int srv_pack_machine_tasks(cs_snap *snap, msgpack_packer *pk, cs_id machine, cs_error *err);

/* ---- the feed (feed.c) ---- */

int srv_sync(worker *w, msgpack_packer *pk, cs_error *err);
/* Serve a poll: answer at once, or park w until its machine changes. */
void srv_poll(worker *w);
/* The reply of a poll whose wait ended. */
int srv_poll_reply(worker *w, msgpack_packer *pk, cs_error *err);
/* Take a parked poll off its machine's list (mu held). */
void srv_park_remove(cs_server *s, worker *w);
/* Wake the polls parked on `sl`, which changed at sl->changed (mu held). */
void srv_wake_polls(mslot *sl);
/* Announce cell version `v` on the PUB socket (its --pub URL and the
 * in-process one), if any: a version message (protocol.md §9). */
void srv_announce(cs_server *s, uint64_t v);

/* ---- the writer (writer.c) ---- */

/* Whether message `type` is a write (writer.c's table of writes). */
bool srv_is_write(uint32_t type);
/* A replicated cell: the replica applied entry `index`, whose commands
 * gave res[0..n) (replica.h's hooks.applied; ctx: the cs_server). On the
 * replica's thread: notes what they touched, wakes their polls, moves the
 * version. */
void srv_applied(void *ctx, uint64_t index, const cs_result *res, size_t n);
/* The replica thread's record of what was touched (cs_server.rtouched). */
int srv_touched_new(cs_server *s);
void srv_touched_free(cs_server *s);
/* Queue `j` for the writer (its lane by kind). */
void srv_enqueue(cs_server *s, wjob *j);
/* The writer thread's body (arg: the cs_server). */
void *srv_writer_main(void *arg);

/* ---- the monitor (monitor.c) ---- */

int srv_heartbeat(worker *w, msgpack_packer *pk, cs_error *err);
/* The monitor thread's body (arg: the cs_server). */
void *srv_monitor_main(void *arg);
/* The callback of the monitor's probe through nng's task queue. */
void srv_probe_cb(void *arg);

/* ---- scheduler reports (reports.c) ---- */

int srv_sched_report(worker *w, msgpack_packer *pk, cs_error *err);

/* ---- connections per peer (peers.c) ---- */

typedef struct srv_peers srv_peers;
/* Count the pipes of `sock` by their peer's IP address and close one that
 * would give its peer more than `max` (nng's pipe notifications). Call
 * before `sock` listens. *out is the caller's, freed by srv_peers_free
 * once `sock` is closed; NULL (and CS_OK) when max is 0. CS_ENOMEM, CS_EIO. */
int srv_peers_new(nng_socket sock, uint32_t max, srv_peers **out, cs_error *err);
/* Connections closed for the bound since start (0 for NULL). */
uint64_t srv_peers_refused(srv_peers *t);
void srv_peers_free(srv_peers *t);

/* ---- metrics (metrics.c) ---- */

/* Set up and release s->metrics (the histograms' buckets). */
int srv_metrics_init(srv_metrics *m, cs_error *err);
void srv_metrics_free(srv_metrics *m);
/* w's reply is about to be sent: count it by type and outcome, and a
 * commit's time since its receipt. */
void srv_metrics_reply(worker *w);
/* The outcome of a reply relayed from the leader (data[0..len), only
 * read): its error code, CS_OK for any other reply. */
int srv_metrics_reply_outcome(const void *data, size_t len);
/* A commit applied for scheduler `sched` with result `r` (only read): its
 * counts. Called with mu held. */
void srv_metrics_commit(cs_server *s, uint64_t sched, const cs_txn_result *r);
/* A sched.report named `name` (borrowed): the commits of its id are
 * counted under that name from now on. Takes mu. */
void srv_metrics_named(cs_server *s, const char *name);
/* The store's cs_store_opts.committed (ctx: the cs_server). */
void srv_metrics_store_committed(void *ctx, uint64_t ns);

/* ---- roles (authz.c) ---- */

/* Load --auth-tokens and decide whether roles are enforced (certificates
 * or tokens given). CS_EINVAL naming the file and line. */
int srv_auth_init(cs_server *s, cs_error *err);
void srv_auth_free(cs_server *s);
/* Who sent w's request (w->principal, w->who, w->redact) and whether that
 * role may send its type at all: CS_OK, CS_EPERM "permission denied: WHO
 * may not TYPE: ..." (or an unknown token), CS_EPROTO for credentials of
 * the wrong shape. Every request, before it is routed. */
int srv_auth_request(worker *w, cs_error *err);
/* CS_EPERM "permission denied: <w->who> may not <type>: <why>". */
int srv_auth_denied(const worker *w, cs_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Whether w's request comes from an agent, or a scheduler, of a cell that
 * enforces roles: then the checks below apply. */
bool srv_auth_agent(const worker *w);
bool srv_auth_sched(const worker *w);
/* An agent acts only for the machine of its own name. */
int srv_auth_machine(const worker *w, const char *name, cs_error *err);
/* A task report of an agent: a report on the current placement of its
 * task must come from `machine`, the agent's machine's id (a stale report
 * and an unknown task pass: the state machine refuses and names them). */
int srv_auth_report(const worker *w, cs_snap *snap, cs_id machine, const cs_task_report *r,
                    cs_error *err);
/* A scheduler whose role names job kinds acts only for jobs of them. */
int srv_auth_job(const worker *w, cs_snap *snap, cs_id job, cs_error *err);
/* A scheduler's transaction: signed with its own id (cs_sched_id_of its
 * name), and placing or ending only tasks of its kinds. */
int srv_auth_txn(const worker *w, cs_snap *snap, const cs_txn *t, cs_error *err);
/* A scheduler names only itself (sched.report, offer.acquire). */
int srv_auth_sched_name(const worker *w, const char *name, cs_error *err);

#endif
