/* store.h — the cell state: the whole cluster's allocation in one LMDB
 * environment.
 *
 * Omega: "a resilient master copy of the resource allocations in the
 * cluster, which we call cell state" (§3.4). This module is the mechanism of
 * that copy: records, indexes, versions, the commit log and snapshots. What a
 * change *means* (when a claim conflicts, what killing a job does) lives in
 * txn/, which is the only writer.
 *
 * Named databases in the environment (docs/design.md has the byte layout):
 *   meta           schema version, log floor, id counters; the cell version
 *                  and last log sub-index as of the last compaction; with
 *                  replication, the applied index and the replica's record
 *   machines       id -> machine record      machine_names  name -> id
 *   jobs           id -> job record          job_names      name -> id
 *   tasks          id -> task record
 *   log            (version, n) -> logged command, the keys it touched and,
 *                  for a transaction, its idempotency record
 *
 * Versions. The cell version counts the commands that changed the store. A
 * command that changes nothing (a transaction whose every claim conflicted)
 * is still logged, under the current version with a sub-index n > 0, so that
 * replaying the log reproduces the store exactly, idempotency records
 * included. The cell version is the version of the last log entry (meta
 * holds it only for when compaction has emptied the log), so that a commit
 * writes nothing in meta.
 *
 * Idempotency. A transaction's first result is stored in its log entry,
 * under (scheduler, request), and found through an index the store keeps in
 * memory and rebuilds from the log at open: an idempotency record lives
 * exactly as long as its log entry.
 *
 * Derived state. What each machine has allocated (resources, ports, its
 * placed tasks) and its `seq` are not stored: they follow from the task
 * records, and the store keeps them in memory (cellstate/alloc.h), rebuilt
 * at open and versioned like the records, so that a snapshot sees them as
 * of its version. A claim then writes its task record and nothing on its
 * machine. A machine's `seq` is the cell version of its last change (a put
 * of its record, or a task placed or ended there), raised to the log floor:
 * the log above the floor is where a reopened store learns it from.
 *
 * Threads. A cs_store may be shared by threads: snapshots are LMDB read
 * transactions (MDB_NOTLS, so any thread may hold several); write
 * transactions (and compaction) run one at a time, each begun and ended by
 * one thread.
 */
#ifndef CS_STORE_H
#define CS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cellstate/arena.h"
#include "cellstate/error.h"
#include "cellstate/record.h"

typedef struct cs_store cs_store;
typedef struct cs_snap cs_snap;
typedef struct cs_wtxn cs_wtxn;

typedef struct cs_store_opts {
    size_t map_size; /* bytes of address space for the map; 0 = 4 GiB */
    bool nosync;     /* skip fsync at commit (MDB_NOSYNC): for benchmarks and tests */
    /* Write pages in place in the map (MDB_WRITEMAP) instead of copying
     * them at commit: with nosync, a commit writes nothing itself. A
     * replicated cell's stores (server/replica.h): the Raft log is the
     * durability, and what a crash leaves behind is replaced by a
     * snapshot. */
    bool writemap;
    /* Called after each durable commit of a write (a write transaction, a
     * group commit) with how long LMDB's commit took in nanoseconds: its
     * page writes and, without nosync, its fsyncs. On the committing
     * thread, under the writer lock: it must be quick (an atomic add).
     * NULL: not measured. cellstated's metrics (server/metrics.c). */
    void (*committed)(void *ctx, uint64_t ns);
    void *committed_ctx;
} cs_store_opts;

/* The databases, for the raw iteration used by dumps and replicas. */
typedef enum cs_db {
    CS_DB_META,
    CS_DB_MACHINES,
    CS_DB_MACHINE_NAMES,
    CS_DB_JOBS,
    CS_DB_JOB_NAMES,
    CS_DB_TASKS,
    CS_DB_LOG,
    CS_DB_COUNT
} cs_db;
const char *cs_db_name(cs_db db);

/* Kinds of record a logged command may touch. */
typedef enum cs_kind { CS_KIND_MACHINE = 0, CS_KIND_JOB = 1, CS_KIND_TASK = 2, CS_KIND_COUNT } cs_kind;

/* Open (creating if needed) the store in directory `dir`, which must exist.
 * A store written with another CS_SCHEMA_VERSION is CS_ESCHEMA. On success
 * *out is owned by the caller: release it with cs_store_close. `opts` may be
 * NULL for the defaults; it is copied. */
int cs_store_open(const char *dir, const cs_store_opts *opts, cs_store **out, cs_error *err);

/* Close the store. Every snapshot and write transaction must be closed first. */
void cs_store_close(cs_store *s);

/* ---- snapshots: a consistent view of the whole cell at one version ---- */

/* Begin a snapshot. Owned by the caller; close it with cs_snap_close. It
 * pins the pages it sees: do not keep one open for long. */
int cs_snap_open(cs_store *s, cs_snap **out, cs_error *err);
void cs_snap_close(cs_snap *snap);

uint64_t cs_snap_version(const cs_snap *snap);
/* The log floor: changes since a version below it are no longer in the log. */
uint64_t cs_snap_floor(const cs_snap *snap);

/* The commit log's size as of the snapshot: its entries, and the bytes of
 * the LMDB pages that hold them (branch, leaf and overflow pages; what
 * compaction gives back). From LMDB's own counts: no entry is read. */
int cs_snap_log_size(cs_snap *snap, uint64_t *entries, uint64_t *bytes, cs_error *err);

/* Point look-ups. CS_ENOTFOUND (with a message) when absent; the record's
 * strings and arrays live in `a`. */
int cs_snap_machine(cs_snap *snap, cs_id id, cs_arena *a, cs_machine *out, cs_error *err);
int cs_snap_machine_by_name(cs_snap *snap, const char *name, cs_arena *a, cs_machine *out,
                            cs_error *err);
int cs_snap_job(cs_snap *snap, cs_id id, cs_arena *a, cs_job *out, cs_error *err);
int cs_snap_job_by_name(cs_snap *snap, const char *name, cs_arena *a, cs_job *out, cs_error *err);
int cs_snap_task(cs_snap *snap, cs_id id, cs_arena *a, cs_task *out, cs_error *err);

/* What judging a claim needs of machine `id` (capacity, port range, state,
 * version, and the derived allocation, ports, ntasks and seq), as
 * cs_snap_machine gives them, but from the copy the store keeps in memory:
 * no record is read or decoded. Name and attributes are left empty. The
 * ports live in `a`. CS_ENOTFOUND (with a message) when absent. */
int cs_snap_machine_fit(cs_snap *snap, cs_id id, cs_arena *a, cs_machine *out, cs_error *err);

/* Iteration, in id order. The record passed to the callback is valid only
 * during the call (the iterator resets its arena after each). A callback
 * returns 0 to go on, anything else to stop; that value is then returned. */
typedef int (*cs_machine_fn)(void *ctx, const cs_machine *m);
typedef int (*cs_job_fn)(void *ctx, const cs_job *j);
typedef int (*cs_task_fn)(void *ctx, const cs_task *t);
int cs_snap_each_machine(cs_snap *snap, cs_machine_fn fn, void *ctx, cs_error *err);
int cs_snap_each_job(cs_snap *snap, cs_job_fn fn, void *ctx, cs_error *err);
int cs_snap_each_task(cs_snap *snap, cs_task_fn fn, void *ctx, cs_error *err);
int cs_snap_each_task_of_job(cs_snap *snap, cs_id job, cs_task_fn fn, void *ctx, cs_error *err);
/* The same from a key: the records with ids >= `from`, at most `limit` of
 * them (0: no limit). One LMDB cursor placed with MDB_SET_RANGE and
 * stepped: a full sync in pieces (proto/sync.h) reads each piece so, in a
 * read transaction of its own, rather than holding one snapshot for the
 * whole transfer. */
int cs_snap_each_machine_from(cs_snap *snap, cs_id from, size_t limit, cs_machine_fn fn,
                              void *ctx, cs_error *err);
int cs_snap_each_job_from(cs_snap *snap, cs_id from, size_t limit, cs_job_fn fn, void *ctx,
                          cs_error *err);
int cs_snap_each_task_from(cs_snap *snap, cs_id from, size_t limit, cs_task_fn fn, void *ctx,
                           cs_error *err);
/* The largest id of `kind` in the snapshot, 0 when it holds none (the
 * last key: no record is read). Ids only grow (meta's counters), so every
 * record with a larger id was made after the snapshot. */
int cs_snap_last_id(cs_snap *snap, cs_kind kind, cs_id *out, cs_error *err);
/* The tasks `ids[0..n)` (borrowed, only read), in that order, as
 * cs_snap_task reads each: the ids must be ascending and unique, as
 * cs_snap_changes_since gives them (CS_EINVAL naming the first position
 * that is not, before any callback). One cursor walks them, stepping to the
 * next key where it can instead of searching from the root for each: for
 * runs of adjacent ids this is much cheaper than a cs_snap_task per id. An
 * absent id is CS_ENOTFOUND ("unknown task N") when the walk reaches it,
 * after the callbacks for the ids before it. In a write transaction it
 * reads through the transaction's own tasks cursor and sees its writes.
 * The record passed to fn is valid during the call; fn's value as above. */
int cs_snap_each_task_in(cs_snap *snap, const cs_id *ids, size_t n, cs_task_fn fn, void *ctx,
                         cs_error *err);
/* Tasks placed (assigned or running) on one machine, in id order, through
 * the allocation table. */
int cs_snap_each_task_on_machine(cs_snap *snap, cs_id machine, cs_task_fn fn, void *ctx,
                                 cs_error *err);

/* What changed since version `since`: the ids of every machine, job and task
 * touched by a command logged after it, each once, in ascending order. Read
 * the records with the look-ups above; a record that is absent was removed.
 * CS_ECOMPACTED when `since` is below the log floor: the reader then needs a
 * full snapshot. The arrays are owned by the caller: cs_changes_free. */
typedef struct cs_changes {
    uint64_t since, version;
    cs_id *ids[CS_KIND_COUNT];
    size_t n[CS_KIND_COUNT];
} cs_changes;
int cs_snap_changes_since(cs_snap *snap, uint64_t since, cs_changes *out, cs_error *err);

/* The same, leaving out the tasks touched only by "quiet" commands: those
 * for which quiet(ctx, kind, cmd, len) is true (a task a quiet command and
 * another one both touched is listed). The machines and jobs a quiet
 * command touches are listed as usual. For readers that do not care about
 * some changes (a batch scheduler and a task's start: txn/command.h). */
typedef bool (*cs_quiet_fn)(void *ctx, uint8_t kind, const void *cmd, size_t len);
int cs_snap_changes_except(cs_snap *snap, uint64_t since, cs_quiet_fn quiet, void *ctx,
                           cs_changes *out, cs_error *err);
void cs_changes_free(cs_changes *c);

/* The commit log after (since, 0), in order. `cmd` is the logged command's
 * bytes, valid during the call. CS_ECOMPACTED as above. */
typedef int (*cs_log_fn)(void *ctx, uint64_t version, uint32_t n, uint8_t kind, const void *cmd,
                         size_t len);
int cs_snap_each_log(cs_snap *snap, uint64_t since, cs_log_fn fn, void *ctx, cs_error *err);

/* Raw key/value iteration of one database, for dumps and comparisons. */
typedef int (*cs_raw_fn)(void *ctx, const void *key, size_t klen, const void *val, size_t vlen);
int cs_snap_each_raw(cs_snap *snap, cs_db db, cs_raw_fn fn, void *ctx, cs_error *err);

/* ---- write transactions (used by txn/ only) --------------------------- */

/* Begin the single write transaction. Owned by the caller until
 * cs_wtxn_commit or cs_wtxn_abort, either of which frees it. */
int cs_wtxn_begin(cs_store *s, cs_wtxn **out, cs_error *err);

/* A snapshot view of the write transaction: reads see its own writes. Valid
 * until the transaction ends; do not close it. */
cs_snap *cs_wtxn_snap(cs_wtxn *w);

/* The version records written in this transaction will carry. */
uint64_t cs_wtxn_new_version(const cs_wtxn *w);

/* The ids of kind `kind` this transaction has written so far (records put
 * or removed, and for a task the machines it left or landed on), ascending
 * and unique; *n receives how many. What the log entry will list as
 * touched: the state machine (txn/command.h) hands the machines to whoever
 * wakes their agents' polls, so that nobody reads the log back. Borrowed:
 * valid until the next write or the end of the transaction. */
const cs_id *cs_wtxn_touched(cs_wtxn *w, cs_kind kind, size_t *n);

/* Allocate the next machine or job id (1, 2, ...). */
int cs_wtxn_next_machine_id(cs_wtxn *w, cs_id *out, cs_error *err);
int cs_wtxn_next_job_id(cs_wtxn *w, cs_id *out, cs_error *err);

/* Write a record; the store sets its version to the new version. For a
 * machine, `create` indexes its name; its allocation, ports, ntasks and seq
 * are ignored (derived). For a job, `create` indexes its name. For a task,
 * `old` is the record it replaces (NULL when new): the allocations of the
 * machines it leaves or lands on follow (CS_ECORRUPT if `old` disagrees
 * with them). The records are only read. */
int cs_wtxn_put_machine(cs_wtxn *w, const cs_machine *m, bool create, cs_error *err);
int cs_wtxn_put_job(cs_wtxn *w, const cs_job *j, bool create, cs_error *err);
int cs_wtxn_put_task(cs_wtxn *w, const cs_task *old, const cs_task *t, cs_error *err);

/* Remove a record (used by job garbage collection, txn/ops.h): job `j`'s
 * record, and its name from the name index when the name still belongs to
 * it; a task, which must hold nothing on a machine (not assigned or
 * running: CS_ESTATE). CS_ENOTFOUND when absent. The removed key counts as
 * touched: a reader's change set lists it, and finds no record. The records
 * are only read. */
int cs_wtxn_del_job(cs_wtxn *w, const cs_job *j, cs_error *err);
int cs_wtxn_del_task(cs_wtxn *w, const cs_task *t, cs_error *err);

/* The first result stored for (scheduler, request), if any: CS_ENOTFOUND
 * when none. *data points into the map, valid until the transaction ends. */
int cs_wtxn_request_get(cs_wtxn *w, uint64_t sched, uint64_t req, const void **data, size_t *len,
                        cs_error *err);
/* Store `data` (copied) as the first result of (scheduler, request): it is
 * written with this transaction's log entry. One per transaction
 * (CS_EINVAL for a second). */
int cs_wtxn_request_put(cs_wtxn *w, uint64_t sched, uint64_t req, const void *data, size_t len,
                        cs_error *err);

/* Append the command to the log and commit. The cell version moves to the
 * new version when a record was written, else stays. `*version` (may be
 * NULL) receives the cell version after the commit. Frees `w` in every case;
 * on error nothing is written. */
int cs_wtxn_commit(cs_wtxn *w, uint8_t kind, const void *cmd, size_t len, uint64_t *version,
                   cs_error *err);
void cs_wtxn_abort(cs_wtxn *w);

/* ---- group commit ------------------------------------------------------- */

/* Group commit: the write transactions the calling thread begins between
 * cs_store_group_begin and cs_store_group_end share one LMDB write
 * transaction, so that a burst of small commands (agents' reports, a
 * scheduler's commit queued behind them) costs one commit — one fsync
 * without `nosync` — instead of one each. Each command of the group is what
 * it would be alone: it sees the commands before it, gets its own version
 * and log entry (replay is unchanged), and cs_wtxn_commit returns its
 * version; but nothing of the group is visible to snapshots, or durable,
 * before cs_store_group_end has returned CS_OK: a caller answers its
 * clients only then.
 *
 * A command refused before it wrote anything (validation, a stale report,
 * a repeat that changes nothing) is aborted alone and leaves the group
 * intact. One that fails after writing (out of memory, a full map, an I/O
 * error: never a client's mistake) poisons the group: every later
 * cs_wtxn_begin of the group fails with CS_EIO, and cs_store_group_end
 * drops the whole group and sets *abandoned, so that the caller runs the
 * group's commands again, one by one, outside a group.
 *
 * The group holds the writer lock from begin to end (other threads' write
 * transactions and compaction wait). Begin: CS_EINVAL if this thread
 * already holds a group. End: CS_EINVAL without an open group; an LMDB
 * commit failure drops the group and returns the error (nothing of it was
 * applied); on CS_OK `*version` (may be NULL) is the cell version after
 * the group. */
int cs_store_group_begin(cs_store *s, cs_error *err);
int cs_store_group_end(cs_store *s, bool *abandoned, uint64_t *version, cs_error *err);

/* ---- maintenance ------------------------------------------------------ */

/* Drop log entries and idempotency records at or below `floor` (clamped to
 * the current version); readers behind it then need a full snapshot. */
int cs_store_compact(cs_store *s, uint64_t floor, cs_error *err);

/* ---- replication (server/replica.h) -------------------------------------- */

/* A replicated store runs without its own fsync: the Raft log is the
 * durability. What makes that safe is the applied index, meta's `applied`:
 * the index of the last Raft log entry whose effects the store holds,
 * written in the same LMDB transaction as those effects, so that the two
 * cannot disagree after a crash. A replica that restarts re-applies the
 * entries after it and skips those at or below it: an entry is never
 * applied twice. 0 in a store that was never replicated.
 *
 * cs_store_applied reads it (a read transaction of its own: CS_OK and 0
 * when absent). */
int cs_store_applied(cs_store *s, uint64_t *index, cs_error *err);

/* Record the applied index in the group this thread holds open
 * (cs_store_group_begin): it commits with the group's commands, or not at
 * all. The group commits the meta write even when none of its commands
 * wrote anything (a refusal, a repeat). CS_EINVAL without an open group. */
int cs_store_group_set_applied(cs_store *s, uint64_t index, cs_error *err);

/* The replica's own record in meta (`replica`): an opaque blob the replica
 * module encodes (the members' client addresses), replicated by its log
 * entries and carried by snapshots like every record. Put: in the group
 * this thread holds open, `data[0..len)` copied (CS_EINVAL without a
 * group). Get: *data is the caller's (free()), NULL with *len 0 when none
 * was ever put. */
int cs_store_group_put_replica(cs_store *s, const void *data, size_t len, cs_error *err);
int cs_store_replica(cs_store *s, void **data, size_t *len, cs_error *err);

/* cs_store_compact, and the applied index `index` recorded in the same LMDB
 * transaction (also when there is nothing to drop): a compaction that is a
 * replicated log entry. */
int cs_store_compact_applied(cs_store *s, uint64_t floor, uint64_t index, cs_error *err);

/* Write a compacting copy of the whole environment (mdb_env_copyfd2 with
 * MDB_CP_COMPACT: free pages left out) to `fd` (borrowed; written from its
 * current offset, not synced, not closed). The copy is one LMDB read
 * transaction: a consistent store as of some commit, which may run
 * concurrently with writers. Open the copy as a store by naming it
 * `data.mdb` in a directory of its own. */
int cs_store_copy(cs_store *s, int fd, cs_error *err);

/* Puts and bytes written by write transactions since open, for benchmarks. */
typedef struct cs_store_stats {
    uint64_t puts;
    uint64_t put_bytes;
} cs_store_stats;
void cs_store_get_stats(cs_store *s, cs_store_stats *out);

#endif
