/* sync.h — Omega's sync on the wire: the request a scheduler sends with the
 * version its copy has, and the reply cellstated builds from a snapshot of
 * the store: every record changed since, or the whole cell (protocol.md
 * §5.7).
 *
 * Both ends use these functions, so that what a scheduler reads is decided
 * in one place: cellstated's feed answers `sync` with cs_sync_reply_encode,
 * and the in-process twin of the scheduler's port (schedulers/) walks the
 * very same reply, record by record, from a store it holds, with neither
 * socket nor bytes in between (cs_sync_reply_visit; the encoder is that walk
 * with a reader that packs). The copy's decoder of the bytes is
 * cs_copy_apply_bytes (schedulers/cellcopy.h), which applies them without
 * building objects; its reader of the walk is cs_copy_apply_snap.
 */
#ifndef CS_SYNC_H
#define CS_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "cellstate/error.h"
#include "cellstate/store.h"
#include "proto/proto.h"

/* A full sync in pieces (protocol.md §5.7, "chunk"). A full reply of a
 * large cell is tens of MB built in the server's memory and read whole by
 * the scheduler; asked with "chunk": N, it comes as pieces of at most N
 * records, each read in a read transaction of its own (an LMDB reader held
 * across a whole transfer would pin every page the writer frees
 * meanwhile). The server keeps nothing between pieces: what they share
 * travels in each request and each reply.
 *
 * A record's place in the order of a full reply: machines by id, then
 * jobs, then tasks. */
typedef struct cs_sync_key {
    uint8_t kind; /* cs_kind */
    cs_id id;
} cs_sync_key;

/* What a piece says of the transfer, and what the next request repeats. */
typedef struct cs_sync_piece {
    uint64_t base;     /* V_0, the first piece's version: the reader's version after the last */
    cs_id max_machine; /* "ids": the largest machine and job ids at base; later pieces leave */
    cs_id max_job;     /* out every record above them (made after base: the delta brings it) */
    bool more;         /* another piece follows; the request for it goes on after `next` */
    cs_sync_key next;  /* with `more`: the last record this piece read */
} cs_sync_piece;

/* A sync request: {"since": version, "form": "map" | "compact",
 * "omit": "running", "min_index": index, "gone": true, "chunk": N,
 * "after": [kind, id], "base": V_0, "ids": [machine, job]}, every field
 * optional; after, base and ids go together, with chunk and since 0. */
typedef struct cs_sync_req {
    uint64_t since;    /* the reader's version; 0 = send the whole cell */
    bool compact;      /* the compact form: tasks as runs of positional entries */
    bool omit_running; /* leave out tasks whose only change was being reported running */
    /* Read-your-writes on a replicated cell: answer once the replica asked
     * has applied this Raft log index (a commit reply's `index`); 0 = no
     * wait. Sent only when nonzero, so that the bytes of a request without
     * it are those of before. */
    uint64_t min_index;
    /* The reader understands "gone" (protocol §5.7): a delta whose changes
     * include collected jobs then lists their ids under "gone" instead of
     * being answered in full. Sent only when true (the bytes of a request
     * without it are those of before), so a reader that never sends it
     * still gets the whole cell after each collection. */
    bool gone;
    /* Not on the wire: the server's own, for a reader's reply (a reader
     * sees no job environment, docs/security.md "Roles"). */
    bool redact;
    /* Records per piece of a full reply (the server lowers it to its
     * --sync-chunk); 0 = one reply, as before. A request whose reply is
     * full (since 0, since below the log floor, a removed job without
     * `gone`) is then answered with the first piece. Sent only when
     * nonzero. */
    uint32_t chunk;
    /* A continuation: the next piece after the one `at` describes (its
     * base, ids and next; `more` is not read). */
    bool cont;
    cs_sync_piece at;
} cs_sync_req;

/* Pack `r` (only read) as a request body. CS_ENOMEM. */
int cs_sync_req_encode(msgpack_packer *pk, const cs_sync_req *r);

/* Read a request body (borrowed; *out keeps nothing of it). CS_EPROTO or
 * CS_EINVAL naming the field for a wrong type, an unknown word, or a
 * continuation key without the others, without chunk or with a since. */
int cs_sync_req_decode(const msgpack_object *body, cs_sync_req *out, cs_error *err);

/* Pack the reply to `req` (only read) from `snap` (borrowed; the caller
 * closes it): {"version", "full", ["form": "compact"], ["gone": [job id,
 * ...]], ["base", "ids", "more", ["next"]], "machines", "jobs", "tasks"}.
 * With req->chunk, a full reply is one piece of at most chunk records:
 * the first (full true; base its version, ids the largest ids) or, with
 * req->cont, the next after req->at (full false: its records are added to
 * the copy, not put in its place), leaving out the records above at's ids
 * and the tasks whose machine is above them. A `since` that the log no longer
 * reaches back to is answered in full, and so is one whose changes include
 * a removed (collected) job unless the request said "gone": the reply
 * then lists those jobs under "gone" (their tasks went with them) and
 * leaves them and their tasks out of the lists. Errors: the store's, and
 * CS_ENOMEM. */
int cs_sync_reply_encode(cs_snap *snap, const cs_sync_req *req, msgpack_packer *pk,
                         cs_error *err);

/* The same reply record by record, for a reader in the same process as the
 * store (the scheduler port's in-process twin): cs_sync_reply_encode is
 * this walk with a reader that packs. The callbacks are called in the
 * reply's order — head; gone(ids, n) when n jobs are gone (n > 0 only);
 * list(machines, n) and n machines; list(jobs, n) and n jobs; list(tasks,
 * n) and the tasks; end — each with records
 * borrowed for the call only. A nonzero return stops the walk and is
 * returned (with `err` set by the callback).
 *
 * `keeps_records` says that the reader holds every machine record as of
 * the request's `since` (a copy that applied each reply since its last
 * full one, as cellcopy does). A changed machine whose record is no newer
 * than `since` (cs_machine.record_version) is then handed to `machine`
 * from the allocation table alone — no record read or decoded — with name
 * NULL and no attributes, taints or log_url: the reader keeps its own.
 * Most changes to a machine are placements and task ends, which leave its
 * record as it was: reading and comparing it again was a fifth of a
 * scheduler's sync in cellsim. */
#define CS_SYNC_UNCOUNTED SIZE_MAX /* list(tasks): a compact full reply walks them uncounted */
typedef struct cs_sync_visitor {
    void *ctx;
    /* `piece`: NULL, or what this piece of a full sync in pieces says
     * (borrowed for the call). */
    int (*head)(void *ctx, uint64_t version, bool full, size_t ngone, const cs_sync_piece *piece,
                cs_error *err);
    int (*gone)(void *ctx, const cs_id *jobs, size_t n, cs_error *err); /* ascending */
    int (*list)(void *ctx, int kind, size_t n, cs_error *err); /* kind: CS_KIND_* */
    int (*machine)(void *ctx, const cs_machine *m, cs_error *err);
    int (*job)(void *ctx, const cs_job *j, cs_error *err);
    int (*task)(void *ctx, const cs_task *t, cs_error *err);
    int (*end)(void *ctx, cs_error *err);
    bool keeps_records;
} cs_sync_visitor;
int cs_sync_reply_visit(cs_snap *snap, const cs_sync_req *req, const cs_sync_visitor *v,
                        cs_error *err);

#endif
