/* commitmsg.h — the codec of Omega's commit on the wire (docs/protocol.md
 * §5.8, §7). Conventions: proto/msg.h.
 *
 * The request body is the transaction array itself (§7.1), whose codec is
 * the transaction's own: cs_txn_encode / cs_txn_from_object (txn/txn.h),
 * since the log stores the same bytes. cs_commit_req_decode wraps the
 * latter in this file's shape. The reply is a map: the cell version after
 * the commit, whether it was a replay, and one outcome (§7.2) per claim,
 * release and preemption — built by cellstated's writer and read by both
 * schedulers and cellbench.
 */
#ifndef CS_COMMITMSG_H
#define CS_COMMITMSG_H

#include "proto/msg.h"
#include "txn/txn.h"

/* The transaction `t` (only read) as a commit body, appended to `buf`
 * (cs_txn_encode). CS_ENOMEM. */
int cs_commit_req_encode(msgpack_sbuffer *buf, const cs_txn *t);
/* cs_txn_from_object: `t` must be initialised (cs_txn_init) and owns what
 * it reads; `a` is unused. */
int cs_commit_req_decode(const msgpack_object *o, cs_txn *t, cs_arena *a, cs_error *err);

/* {"version", "replayed", "committed", "conflicts", "claims": [outcome],
 * "releases": [outcome], "preempts": [outcome]} and, on a replicated cell,
 * "index": the Raft log index of the entry that carried the commit (sent
 * only when nonzero, so that a single replica's reply keeps its bytes; a
 * reader passes it as a sync's or poll's min_index to read its write). */
typedef struct cs_commit_reply {
    uint64_t version;
    bool replayed;
    uint32_t committed, conflicts;
    const uint8_t *claims, *releases, *preempts; /* decode: in the arena */
    uint32_t nclaims, nreleases, npreempts;
    uint64_t index; /* 0: absent (a single replica) */
} cs_commit_reply;

/* The reply of a commit's result `r` (borrowed: the arrays are r's); its
 * `index` is 0 (the caller sets it on a replicated cell). */
cs_commit_reply cs_commit_reply_of(const cs_txn_result *r);

int cs_commit_reply_encode(msgpack_packer *pk, const cs_commit_reply *in);
/* Every key required; an outcome that is not a code of §7.2 is CS_EPROTO
 * ("commit reply: claims[3] is not an outcome"). */
int cs_commit_reply_decode(const msgpack_object *o, cs_commit_reply *out, cs_arena *a,
                           cs_error *err);

/* The decoded reply `in` as the result of transaction `t` in *r (which
 * must be initialised; its arrays are sized here): CS_EPROTO when a list
 * does not have one outcome per item of `t` ("commit reply: 'claims' is
 * not 3 outcomes"). `committed` and `conflicts` are counted from the
 * claims' outcomes, as the writer counts them. CS_ENOMEM. */
int cs_commit_reply_result(const cs_commit_reply *in, const cs_txn *t, cs_txn_result *r,
                           cs_error *err);

#endif
