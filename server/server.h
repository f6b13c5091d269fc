/* server.h — cellstated: the cell state as a service.
 *
 * Owns the store. A REP socket serves requests concurrently through nng
 * contexts (one per worker, so that thousands of agents may long-poll at
 * once); every write — registrations, submissions, commits, reports — goes
 * through one writer thread, in arrival order, so that the store sees one
 * writer as Omega's cell state does. A PUB socket announces each new cell
 * version. A monitor marks machines that miss their heartbeats down, in a
 * committed transaction that turns their tasks lost.
 *
 * The protocol is in proto/proto.h and docs/protocol.md.
 */
#ifndef CS_SERVER_H
#define CS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cellstate/error.h"

typedef struct cs_server cs_server;

/* How schedulers' commits are admitted (cellstated --concurrency):
 * optimistic, Omega's shared state (any scheduler commits at any time, the
 * store judges each claim), or offers, Mesos-style two-level scheduling (a
 * scheduler commits only under the one lease on the free resources that it
 * holds: server/offers.h). */
typedef enum cs_concurrency {
    CS_CONCURRENCY_OPTIMISTIC = 0,
    CS_CONCURRENCY_OFFERS = 1,
} cs_concurrency;

/* An offer not released within this long is taken back (--offer-timeout). */
#define CS_OFFER_TIMEOUT_DEFAULT_MS 30000

typedef struct cs_server_opts {
    const char *data_dir;   /* the store's directory (created if missing) */
    const char *listen_url; /* REP endpoint, e.g. tcp://127.0.0.1:7600 */
    const char *pub_url;    /* PUB endpoint, or NULL for none */
    /* In-process endpoints for a client inside this process (the HTTP
     * gateway, http/gateway.h): the REP socket also listens on
     * local_url, and the version announcements also go to local_pub_url
     * (a PUB socket is opened for it even without pub_url). Both
     * inproc:// URLs, or NULL for none. */
    const char *local_url;
    const char *local_pub_url;
    /* The certificates for tls+tcp:// listen and pub URLs and for a
     * follower's dial to its leader (proto/tls.h); NULL for a plain cell.
     * Borrowed: it must outlive the server. */
    const struct cs_tls *tls;
    /* --auth-tokens: a file of "TOKEN PRINCIPAL" lines (docs/security.md
     * "Roles"): requests carrying one of them act as its principal. With
     * certificates or tokens the cell enforces roles; with neither it
     * takes every request. Borrowed; NULL: none. */
    const char *auth_tokens;
    /* This replica's own token (a "server" principal of --auth-tokens),
     * which a follower's forwarded requests carry when the leader must be
     * told whom they act for (forward.c). Borrowed; NULL: none. */
    const char *self_token;
    uint32_t workers;       /* concurrent requests, parked long polls included */
    uint32_t heartbeat_timeout_ms; /* a machine silent this long is marked down */
    uint32_t poll_max_wait_ms;     /* the longest a poll may wait */
    size_t max_msg;                /* larger requests get an error reply */
    /* The bytes of requests held by workers at once, across every
     * connection (received, not yet answered): a request that would pass
     * it is refused at once (CS_EUNAVAIL, "busy") rather than queued, so
     * that many large requests cannot take the server's memory. 0: no
     * bound. nng's own buffer of a message still being received is not
     * counted (docs/security.md). */
    size_t max_inflight_bytes;
    /* The connections one peer (an IP address) may hold open at once: the
     * one beyond is closed as it is made (server/peers.c). 0: no bound. */
    uint32_t max_conns_per_peer;
    /* The tasks one job may have (--max-job-tasks): job.submit,
     * job.update, job.scale and job.surge asking for more are refused
     * CS_EINVAL before anything is proposed. 0: only the protocol's own
     * limit (CS_TASK_INDEX_MAX + 1). */
    uint32_t max_job_tasks;
    /* The most records one piece of a full sync in pieces may carry
     * (--sync-chunk): a request's larger "chunk" is lowered to it
     * (protocol.md §5.7). At least 1. */
    uint32_t sync_chunk;
    bool nosync;                   /* skip fsync (tests and benchmarks only) */
    /* Ended jobs (killed, finished, failed) and their tasks are removed
     * this long after they ended (Nomad's job_gc_threshold); 0 = kept. */
    uint64_t job_gc_ms;
    /* The commit log keeps an entry at least this long and at most twice
     * as long, then compacts it away (and the idempotency records with
     * it); 0 = the log is never compacted. */
    uint64_t log_retain_ms;
    /* A replicated cell (server/replica.h, docs/design.md): every member
     * (copied) and this one's id; listen_url is then this member's
     * `listen`, the store lives in data_dir and the Raft log in
     * data_dir/raft. nmembers == 0: one replica, as always. */
    const struct cs_member *members;
    size_t nmembers;
    uint64_t member_id;
    const char *raft_addr;        /* a member not in `members` (added at run time): its Raft host:port */
    unsigned election_timeout_ms; /* 0: the replica's default */
    unsigned snapshot_threshold;  /* 0: the replica's default */
    unsigned snapshot_trailing;   /* 0: the replica's default */
    /* How long the leader waits for a member to install a snapshot before
     * it sends it again (0: libraft's 30 s). A member back with an empty
     * directory waits this long in libraft 0.15 (design.md §12). */
    unsigned install_snapshot_timeout_ms;
    uint8_t concurrency;       /* cs_concurrency */
    uint32_t offer_timeout_ms; /* offers: a lease held longer is taken back */
    /* The metrics' per-machine series (--metrics-per-machine): whoever
     * serves cs_server_metrics_text passes it. Off by default: seven series
     * a machine is 70,000 at 10,000 machines. */
    bool metrics_per_machine;
    /* The audit log's size (--audit-max-bytes, server/audit.h): past it
     * DIR/audit.log becomes DIR/audit.log.1 and a new one begins; 0: one
     * file without bound. Default 64 MiB. */
    uint64_t audit_max_bytes;
} cs_server_opts;

/* Requests in flight, in bytes (--max-inflight-bytes): sixteen requests of
 * the largest size (--max-msg, 16 MiB) at once; a cell's own traffic is
 * far below it (a commit is kilobytes, a poll bytes). */
#define CS_MAX_INFLIGHT_DEFAULT (256u << 20)

/* Connections per peer (--max-conns-per-peer): an agent holds two or
 * three, a scheduler a few, cellbench's poll test up to --connections (8
 * by default) from one host; 256 leaves room for a host that runs many of
 * them and still bounds one that opens thousands. */
#define CS_MAX_CONNS_PER_PEER_DEFAULT 256

/* A job's tasks (--max-job-tasks). One job of 1,048,576 tasks (the index
 * limit) made a full sync take 25 s; the largest jobs the cell is measured
 * with are cellbench's (--tasks at most 100,000; C1M is 1,000 jobs of
 * 1,000), and Borg's largest jobs are tens of thousands of tasks. A cell
 * that needs more raises it. */
#define CS_MAX_JOB_TASKS_DEFAULT 100000

/* Records per piece of a full sync (--sync-chunk): 10,000 records are
 * about 1 MB in the compact form (machines and jobs as maps, tasks as
 * runs), a few milliseconds to read and send, so a cell of 1,000,000
 * tasks is a hundred pieces and no reply is larger than a few MB. */
#define CS_SYNC_CHUNK_DEFAULT 10000

/* Defaults: 1024 workers, 10 s heartbeat timeout, 30 s poll wait, 16 MiB,
 * 256 MiB in flight, 256 connections per peer, 100,000 tasks a job, optimistic concurrency (offers: 30 s lease),
 * a 64 MiB audit log. */
void cs_server_opts_default(cs_server_opts *o);

/* Open the store and start serving. On success *out is the caller's: stop
 * it with cs_server_stop. `o` is copied (its strings too). */
int cs_server_start(const cs_server_opts *o, cs_server **out, cs_error *err);

/* The address clients reach `s` at, into out[0..size): listen_url with the
 * port the listener was given, so that a listen URL with port 0 (any free
 * port, chosen by the kernel at bind time) can be told to clients. CS_EINVAL
 * when it does not fit. */
int cs_server_bound_url(cs_server *s, char *out, size_t size, cs_error *err);

/* What the server measures of itself and of the cell, as Prometheus' text
 * exposition format 0.0.4 (docs/metrics.md lists every family): request
 * counters by type and outcome, the writer's queue, group sizes and
 * latencies, each scheduler's commits and latest report, the machines and
 * resources of the cell, the log, and the replica or the offer where there
 * is one. `per_machine`: also each machine's resources (cellstated passes
 * --metrics-per-machine, s's opts.metrics_per_machine). Reads one snapshot
 * of the store; safe from any thread while `s` runs. On CS_OK *out
 * (NUL-terminated, *len bytes) is transferred to the caller: free().
 * CS_ENOMEM; CS_EUNAVAIL while a replica stops; a store error. */
int cs_server_metrics_text(cs_server *s, bool per_machine, char **out, size_t *len,
                           cs_error *err);

/* Stop serving: close the sockets, finish the write in progress, join the
 * threads and close the store. Frees `s`. */
void cs_server_stop(cs_server *s);

#endif
