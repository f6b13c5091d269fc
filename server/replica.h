/* replica.h — the cell state replicated with Raft: one replica of a cell of
 * 1, 3 or 5, the only module that knows the consensus library.
 *
 * Why a module of its own: the engine is canonical raft 0.15 (Debian's
 * libraft, with its libuv I/O and TCP transport), an existing, tested
 * implementation of the Raft paper, not one of ours. Everything that names
 * it is here, so that a fork with the same API (cowsql/raft) is a drop-in
 * and the rest of cellstated speaks of replicas, leaders and indexes.
 *
 * The concepts are the Raft paper's. Each member has an id and two
 * addresses: `listen`, where clients reach its cellstated, and `raft`
 * (host:port), where the members talk Raft. A replica is a follower, a
 * candidate or the leader of a term. Commands the leader accepts are
 * appended to the replicated log; an entry is committed once a majority has
 * it on disk, and every replica then applies it, in log order, to its state
 * machine. The applied index is the last entry applied.
 *
 * The state machine is the cell's (txn/command.h): an entry holds a command
 * (its kind and canonical bytes), and applying it is cs_command_apply on
 * this replica's LMDB store. The Raft log is the durability: the store runs
 * without its own fsync, and records the applied index in the same LMDB
 * transaction as the entry's effects, so that after a crash the replica
 * re-applies exactly the entries after the index the store holds (an entry
 * at or below it is skipped: never applied twice). Snapshots are compacting
 * LMDB copies (mdb_env_copy2) carrying the applied index they hold; a
 * lagging or new replica installs one and goes on from there. The store's
 * own commit log (the change feed of sync and poll, and the idempotency
 * records) is compacted by a replicated command, so that every replica
 * answers a retried transaction the same way.
 *
 * Also replicated: the members' client addresses (`listen`), so that a
 * follower can forward a write to the leader and `members` can list them.
 *
 * Threads. The replica runs libuv's loop on a thread of its own; Raft,
 * the state machine's applies and every hook below run there. The other
 * functions may be called from any thread.
 */
#ifndef CS_REPLICA_H
#define CS_REPLICA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cellstate/error.h"
#include "cellstate/store.h"
#include "txn/command.h"

typedef struct cs_replica cs_replica;

#define CS_MEMBER_LISTEN_MAX 128
#define CS_MEMBER_RAFT_MAX 64

/* A member of the cell: its id (1, 2, ...) and its two addresses. */
typedef struct cs_member {
    uint64_t id;
    char listen[CS_MEMBER_LISTEN_MAX]; /* clients' URL, e.g. tcp://127.0.0.1:7600 */
    char raft[CS_MEMBER_RAFT_MAX];     /* Raft's host:port, e.g. 127.0.0.1:7610 */
} cs_member;

/* Parse a cluster file: a JSON array of {"id", "listen", "raft"}, 1 to 7
 * members, ids unique and nonzero, addresses unique and within their
 * bounds. On CS_OK *out (n of them) is the caller's: free(). CS_EINVAL
 * names the file and the member that is wrong; a file that cannot be read
 * is CS_EIO with the path. */
int cs_members_load(const char *path, cs_member **out, size_t *n, cs_error *err);

typedef enum cs_role {
    CS_ROLE_UNAVAILABLE = 0, /* starting, stopping, or removed from the cell */
    CS_ROLE_FOLLOWER = 1,
    CS_ROLE_CANDIDATE = 2,
    CS_ROLE_LEADER = 3,
} cs_role;

const char *cs_role_name(cs_role role);

/* What cellstated learns from its replica. Every hook runs on the
 * replica's thread, and must not call back into the replica except for
 * cs_replica_status. */
typedef struct cs_replica_hooks {
    void *ctx;
    /* After each entry holding commands is applied (on every replica, the
     * leader's own entries included, and for entries re-applied at start):
     * its index and its commands' results res[0..n) (only read; owned by
     * the replica). cellstated wakes the polls of the machines they
     * touched and moves its version. */
    void (*applied)(void *ctx, uint64_t index, const cs_result *res, size_t n);
    /* The store is about to be replaced by an installed snapshot: stop
     * every use of it (readers included) and return; `restored` follows
     * with the new store once it is open (the old one is closed by then). */
    void (*replacing)(void *ctx);
    void (*restored)(void *ctx, cs_store *store, uint64_t index);
    /* The role changed, or the term did (e.g. a new leader elsewhere). */
    void (*role)(void *ctx, cs_role role, uint64_t term, uint64_t leader);
} cs_replica_hooks;

typedef struct cs_replica_opts {
    uint64_t id;                /* this member's id */
    const cs_member *members;   /* the cell's members as first configured (copied) */
    size_t nmembers;
    /* This member's Raft host:port when it is not in `members` (a member
     * added at run time: it must not bootstrap, and has no entry there to
     * take its address from); NULL for its entry in `members`. */
    const char *raft_addr;
    /* Where the Raft log, Raft's metadata and snapshots live (created if
     * missing), e.g. DATA/raft. */
    const char *raft_dir;
    /* The store's directory and options (nosync is forced on: the Raft log
     * is the durability). The replica opens the store, and replaces it when
     * it installs a snapshot: cs_replica_store. */
    const char *store_dir;
    cs_store_opts store_opts;
    /* Timeouts in ms (0: 1000 and 100). Raft takes a random election
     * timeout between this and twice this. */
    unsigned election_timeout_ms;
    unsigned heartbeat_timeout_ms;
    /* Take a snapshot every `snapshot_threshold` entries (0: 131072) and keep
     * `snapshot_trailing` entries behind it in the log (0: 16384), so that a
     * follower a little behind catches up from the log. */
    unsigned snapshot_threshold;
    unsigned snapshot_trailing;
    /* How long the leader waits for a follower to install a snapshot
     * before it sends it again (0: libraft's 30000 ms). It must cover the
     * transfer of the whole store; it is also how long a member that comes
     * back with an empty directory waits, in libraft 0.15, before it is
     * sent the entries after the snapshot (replica.c, known bugs). */
    unsigned install_snapshot_timeout_ms;
    /* This server's certificates (borrowed, for the call): with them Raft
     * between replicas is mutual TLS, each peer's certificate signed by the
     * CA and naming CN=server (server/rafttls.h); NULL: plain TCP. */
    const struct cs_tls *tls;
} cs_replica_opts;

/* Start the replica: open the store and the Raft log, bootstrap the
 * configuration from `members` when the Raft directory is new (every
 * member of a new cell bootstraps the same one; a member added later with
 * cellctl starts with an empty directory and is not in `members`: it waits
 * to be contacted), start the loop thread. `hooks` is copied; its
 * functions may be NULL. On success *out is the caller's: cs_replica_stop. */
int cs_replica_start(const cs_replica_opts *o, const cs_replica_hooks *hooks, cs_replica **out,
                     cs_error *err);

/* Stop: leave the loop, close Raft, the log and the store. Proposals in
 * flight get CS_EUNAVAIL, and so do waits (cs_replica_wait_applied) that
 * are blocked; no other call may begin once stop has, and it must not be
 * called from a hook. Frees `r`. */
void cs_replica_stop(cs_replica *r);

/* The store this replica applies to. The pointer changes when a snapshot
 * is installed (hooks.restored says when); between `replacing` and
 * `restored` there is none. */
cs_store *cs_replica_store(cs_replica *r);

/* ---- proposing (the leader) ---- */

/* The results of an entry's commands, in their order (owned by the
 * replica, valid during the call that hands them over). */
typedef struct cs_replica_results {
    cs_result *res;
    size_t n;
} cs_replica_results;

/* What a proposal gave: `rc` CS_OK with `res[0..n)` the results of its
 * commands, in order, and `index` the entry's log index (the results are
 * the replica's and valid during the call; the callback may take one by
 * swapping it with an initialised cs_result of its own, so that no result
 * is copied on the replica's thread), or an error: CS_ENOTLEADER (this replica is not the
 * leader, or lost leadership before the entry committed — it may still
 * commit under the next leader: a client retries, and an idempotent
 * command is answered from its record) or CS_EUNAVAIL (stopping), with a
 * message in `msg` (res NULL, n 0). Called on the replica's thread, once. */
typedef void (*cs_propose_cb)(void *arg, int rc, uint64_t index, cs_result *res, size_t n,
                              const char *msg);

/* Append commands `cmds[0..n)` (1 to 4,194,304; their kinds and bytes are
 * copied), as ONE entry, to the log, if this replica is the leader, and
 * call cb once it is applied here. Every replica applies the entry's
 * commands in order in one LMDB transaction: a writer's group costs one
 * entry and one transaction per replica, however many writes it holds.
 * Proposals are appended in the order of the calls. While entries are in
 * flight (appended, not committed yet) new proposals wait, and go out
 * together once those commit: one write and fsync of the log per batch,
 * and batches grow with the load (replica.c says why libraft 0.15 needs
 * this). CS_OK when queued (cb will be called), else an error
 * (CS_ENOTLEADER at once when this replica is known not to lead) and cb is
 * not called. */
int cs_replica_propose(cs_replica *r, const cs_command *const *cmds, size_t n, cs_propose_cb cb,
                       void *arg, cs_error *err);

/* Propose that the store's commit log drop what is at or below version
 * `floor` (store.h cs_store_compact), on every replica at the same point of
 * the log. No callback: the leader's upkeep proposes it and moves on. */
int cs_replica_propose_compact(cs_replica *r, uint64_t floor, cs_error *err);

/* ---- the cell's members ---- */

typedef struct cs_member_status {
    cs_member m;
    cs_role role;      /* as this replica knows it: the leader, voters are followers */
    bool voter;
    uint64_t match;    /* leader only: the last index known replicated there */
} cs_member_status;

typedef struct cs_replica_status {
    uint64_t id;
    cs_role role;
    uint64_t term;
    uint64_t leader;         /* 0: none known */
    char leader_listen[CS_MEMBER_LISTEN_MAX]; /* "" when unknown */
    uint64_t last_index;     /* the last entry in the log */
    uint64_t commit_index;
    uint64_t applied_index;
    uint64_t snapshot_index; /* the last snapshot taken or installed */
    cs_member_status *members; /* the configuration (owned by the caller: free) */
    size_t nmembers;
} cs_replica_status;

/* A consistent picture of the replica, taken on its thread (waits for it).
 * `st->members` is the caller's: free(). */
int cs_replica_status_get(cs_replica *r, cs_replica_status *st, cs_error *err);

/* Wait until this replica has applied `index` or `timeout_ms` passed:
 * CS_OK, or CS_EUNAVAIL naming both indexes on timeout. For read-your-
 * writes (a sync or poll with min_index). Any thread; blocks. */
int cs_replica_wait_applied(cs_replica *r, uint64_t index, uint32_t timeout_ms, cs_error *err);

/* Membership changes, on the leader (CS_ENOTLEADER elsewhere), each waited
 * for (up to timeout_ms) until committed:
 *   add: record the member's addresses, add it to the configuration and
 *        make it a voter once it has caught up (Raft's catch-up rounds);
 *   remove: take it out of the configuration (the leader may remove
 *        itself: it steps down once the change commits);
 *   transfer: hand leadership to `id` (0: the most up-to-date voter). */
int cs_replica_add(cs_replica *r, const cs_member *m, uint32_t timeout_ms, cs_error *err);
int cs_replica_remove(cs_replica *r, uint64_t id, uint32_t timeout_ms, cs_error *err);
int cs_replica_transfer(cs_replica *r, uint64_t id, uint32_t timeout_ms, cs_error *err);

/* ---- for tests: the state machine alone, under libraft's fixture ---------
 *
 * tests/test_replica.c drives the replica's state machine (entries, apply,
 * snapshots, restore) on libraft's in-memory cluster (raft/fixture.h), which
 * owns the struct raft instances and their I/O. Nothing else uses these. */

typedef struct cs_replica_fsm cs_replica_fsm;

/* Open the store in `store_dir` (created if missing; nosync forced) and
 * make a state machine over it. `hooks` is copied. On CS_OK *out is the
 * caller's: cs_replica_fsm_free (after the raft instance that uses it is
 * closed). */
int cs_replica_fsm_new(const char *store_dir, const cs_store_opts *o,
                       const cs_replica_hooks *hooks, cs_replica_fsm **out, cs_error *err);
/* Its `struct raft_fsm *` (void here, so that this header does not name the
 * library), to give raft_init or raft_fixture_grow. Borrowed. */
void *cs_replica_fsm_raft(cs_replica_fsm *f);
/* The `struct raft *` that applies to it (borrowed; it asks it for the
 * index of each entry it applies): set before raft_start. */
void cs_replica_fsm_bind(cs_replica_fsm *f, void *raft);
/* The store it applies to now (borrowed; replaced by a restore). */
cs_store *cs_replica_fsm_store(cs_replica_fsm *f);
/* The members' addresses it holds (the replicated record): borrowed, valid
 * until the next entry is applied. */
const cs_member *cs_replica_fsm_members(cs_replica_fsm *f, size_t *n);
void cs_replica_fsm_free(cs_replica_fsm *f);

/* Entries as the log holds them, in memory from raft_malloc (what
 * raft_apply takes: on its success the buffer is the library's, else still
 * the caller's, to release with raft_free). The command's kind and bytes
 * are copied. */
int cs_replica_entry_commands(const cs_command *const *cmds, size_t n, void **base, size_t *len,
                              cs_error *err);
/* The one-command entry of builds before groups (still applied). */
int cs_replica_entry_command(const cs_command *c, void **base, size_t *len, cs_error *err);
int cs_replica_entry_compact(uint64_t floor, void **base, size_t *len, cs_error *err);
int cs_replica_entry_member_put(const cs_member *m, void **base, size_t *len, cs_error *err);
int cs_replica_entry_member_remove(uint64_t id, void **base, size_t *len, cs_error *err);

/* Whether leader `raft` (a `struct raft *`) may append new entries now:
 * the discipline the runtime keeps (one batch in flight, replica.c says
 * why), for a test that proposes on the fixture's instances. */
bool cs_replica_may_append(void *raft);

#endif
