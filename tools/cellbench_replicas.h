/* cellbench_replicas.h — a replicated cell for a benchmark: N cellstated
 * members (`--cluster FILE --id I`), each with its own data directory and
 * its own free ports of 127.0.0.1, started together and ready once one of
 * them leads and every member names it. What the benchmarks measure
 * against it is the same workload they run against one plain cellstated,
 * so that the cost of replication is the difference.
 */
#ifndef CB_REPLICAS_H
#define CB_REPLICAS_H

#include <stddef.h>
#include <stdint.h>

#include "cellstate/error.h"
#include "cellstate/store.h"
#include "tools/cellbench_daemon.h"

/* The cells: 1, 3 or 5 members. */
#define CB_REPLICAS_MAX 5

typedef struct cb_replicas {
    uint32_t n;                   /* members started; 0 when none runs */
    cb_daemon d[CB_REPLICAS_MAX]; /* member i+1: pid, listen URL, log */
    char raft[CB_REPLICAS_MAX][32];
    char dir[300];     /* where the cluster file, data directories and logs are */
    uint32_t leader;   /* index into d of the member that led when the start returned */
    /* A TLS cell's (cb_replicas_start_tls; NULL: plain): the certificates'
     * directory and the loaded certificates its checks dial with. */
    const char *tls_dir;
    const struct cs_tls *tls;
} cb_replicas;

/* Member i's (from 0) data directory, DIR/member-<i+1>, into `out`. A
 * benchmark that writes its cell into a store before the server starts
 * writes it there (the same bytes into every member's). */
int cb_replicas_data_dir(const char *dir, uint32_t i, char *out, size_t size, cs_error *err);

/* Mark a store a benchmark wrote directly (cellbench_cell.h) as the seed of
 * a replicated cell: its applied index becomes 1, the Raft log's bootstrap
 * configuration, which changes no record. A replica refuses a store with
 * a cell and no applied index (replica.c: a single cellstated's store,
 * which the other members would not have); a seed copied byte for byte
 * into every member's directory (cb_replicas_copy_store) is held by all of
 * them, and the log applies on top of it alike everywhere. Benchmarks
 * only: a member rebuilt from the log alone would lack the seed. */
int cb_replicas_mark_seed(cs_store *s, cs_error *err);

/* Copy the store written into member 1's data directory (its data.mdb)
 * into the data directories of members 2..n, made if missing: every
 * member starts from the same bytes, as if each had applied the same
 * entries, and Raft's log starts after them. */
int cb_replicas_copy_store(const char *dir, uint32_t n, cs_error *err);

/* Start n (1..CB_REPLICAS_MAX) members of one cell from the cellstated at
 * `bin`: writes DIR/cluster.json (free ports of 127.0.0.1, probed just
 * before), makes each member's data directory if missing, and starts
 * `bin --cluster DIR/cluster.json --id I --data DIR/member-I EXTRA...`,
 * logging into DIR/cellstated-I.log (`extra`: NULL-terminated, borrowed; a
 * NULL first element is none). Waits up to `ready_ms` for every member to
 * answer and for a leader every member agrees on (r->leader). On failure
 * nothing is left running (r->n is 0). */
int cb_replicas_start(cb_replicas *r, const char *bin, const char *dir, uint32_t n,
                      char *const extra[], uint32_t ready_ms, cs_error *err);

/* The same over mutual TLS when `tls_dir` is not NULL: every member is
 * started with its server.pem, server.key and ca.pem (made by
 * tools/cellsched-certs.sh DIR server ...), listens at tls+tcp://, and Raft
 * between the members is TLS; `tls` (borrowed; kept in r->tls) is what the
 * start's own checks, and the caller's clients, dial with. */
int cb_replicas_start_tls(cb_replicas *r, const char *bin, const char *dir, uint32_t n,
                          char *const extra[], const char *tls_dir, const struct cs_tls *tls,
                          uint32_t ready_ms, cs_error *err);

/* CS_EIO naming the first member that has exited (it is reaped; its pid
 * becomes 0); CS_OK while all run. */
int cb_replicas_check(cb_replicas *r, cs_error *err);

/* SIGTERM to every member, then wait up to `timeout_ms` for each. Returns
 * how many had to be killed. r->n is 0 after. */
uint32_t cb_replicas_stop(cb_replicas *r, uint32_t timeout_ms);

/* User plus system CPU seconds of all members so far (NaN when unknown). */
double cb_replicas_cpu_s(const cb_replicas *r);

/* The index of a follower, the k-th (from 0, cycling) member that is not
 * the leader; the leader itself when n is 1. Agents that poll followers
 * take them in turn with this. */
uint32_t cb_replicas_follower(const cb_replicas *r, uint32_t k);

/* Every member's listen URL, comma-separated, member `first` (an index
 * into d) first and the others in order: a client given the list talks to
 * `first` and fails over to the rest (proto/client.h). CS_EINVAL when it
 * does not fit in `size`. */
int cb_replicas_urls(const cb_replicas *r, uint32_t first, char *out, size_t size,
                     cs_error *err);

/* n free TCP ports of 127.0.0.1, distinct (each bound until all are
 * found), into ports[]. Another process may take one before it is used:
 * callers that cannot bind port 0 themselves (a cluster file names every
 * member's address before any starts) accept that. */
int cb_free_ports(uint32_t n, int *ports, cs_error *err);

#endif
