/* offermsg.h — the codecs of the Mesos-style offer on the wire
 * (docs/protocol.md §5.25-§5.27): `offer.acquire` (27), `offer.release`
 * (28) and `offer.commit` (29), which a cell started with
 * `cellstated --concurrency offers` takes instead of `commit`.
 * Conventions (ownership, errors, defaults): proto/msg.h.
 *
 * Why these messages: Omega §3.3 and §5 compare shared state with
 * two-level scheduling, where "a centralized resource allocator
 * dynamically partitions a cluster, allocating resources to different
 * scheduler frameworks" and offers them "to only one framework at a time"
 * (a pessimistic lock). The offer is a lease: an id, who holds it, until
 * when, and the free resources it stood for when it was made; a commit in
 * offers mode names its lease so that the server can refuse one made
 * outside it. One codec per message, used by cellstated and by the
 * schedulers' port alike.
 */
#ifndef CS_OFFERMSG_H
#define CS_OFFERMSG_H

#include "proto/msg.h"
#include "txn/txn.h"

/* The longest scheduler name an acquire may carry: a scheduler's --name
 * (schedopts.c takes 1 to 255 bytes). */
#define CS_OFFER_SCHED_MAX 255

/* ---- offer.acquire (27) ---------------------------------------------------------------
 * {"sched": str, "held": res, "wait_ms": uint}
 *   sched    the scheduler's name (1..255 bytes), who will hold the lease;
 *   held     what the scheduler's own tasks hold now (cpu millicores, mem
 *            and disk MiB): its dominant share (DRF) is the largest
 *            fraction of the cell's capacity in any of the three. The
 *            scheduler says it because the cell does not know which jobs
 *            are whose (cell-batch instances split them by a hash of their
 *            ids). Optional: absent is nothing held.
 *   wait_ms  how long the request may wait for the offer (optional, 0:
 *            answer at once). Bounded by the server's --poll-max-wait. */
typedef struct cs_offer_acquire_req {
    const char *sched; /* decode: in the arena */
    cs_res held;
    uint32_t wait_ms;
} cs_offer_acquire_req;

int cs_offer_acquire_req_encode(msgpack_packer *pk, const cs_offer_acquire_req *in);
/* CS_EPROTO for a missing or mistyped field ("field 'sched' is missing"),
 * CS_EINVAL for an empty name. */
int cs_offer_acquire_req_decode(const msgpack_object *o, cs_offer_acquire_req *out, cs_arena *a,
                                cs_error *err);

/* The reply: {"granted", "lease", "expires_ms", "version", "free",
 * "machines", "holder", "waiting"}, every key written and required.
 *   granted     whether this scheduler holds the offer now;
 *   lease       its id (0 when not granted);
 *   expires_ms  how long it stays valid from the reply (0 when not
 *               granted): released later, it is taken back;
 *   version     the cell version the offer was made at;
 *   free        the offered resources summed over `machines` machines
 *               (the machines up with something free at `version`);
 *   holder      who holds the offer ("" when nobody does): the caller
 *               when granted;
 *   waiting     schedulers waiting for the offer besides the caller. */
typedef struct cs_offer_reply {
    bool granted;
    uint64_t lease;
    uint64_t expires_ms;
    uint64_t version;
    cs_res free;
    uint32_t machines;
    const char *holder; /* encode: borrowed; decode: in the arena */
    uint32_t waiting;
} cs_offer_reply;

int cs_offer_reply_encode(msgpack_packer *pk, const cs_offer_reply *in);
int cs_offer_reply_decode(const msgpack_object *o, cs_offer_reply *out, cs_arena *a,
                          cs_error *err);

/* ---- offer.release (28) ---------------------------------------------------------------
 * {"lease": uint}: give the offer back. The reply is {"version"}
 * (cs_version_reply). Releasing a lease that is not the current one is
 * CS_ESTATE naming it. */
typedef struct cs_offer_release_req {
    uint64_t lease;
} cs_offer_release_req;

int cs_offer_release_req_encode(msgpack_packer *pk, const cs_offer_release_req *in);
/* CS_EPROTO for a missing or mistyped lease, CS_EINVAL for lease 0. */
int cs_offer_release_req_decode(const msgpack_object *o, cs_offer_release_req *out, cs_arena *a,
                                cs_error *err);

/* ---- offer.commit (29) ----------------------------------------------------------------
 * {"lease": uint, "txn": transaction}: a commit (§5.8) made under a lease;
 * `txn` is the transaction array of §7.1, its bytes those `commit` sends.
 * The reply is the commit's (proto/commitmsg.h). */

/* Append the body for lease `lease` and transaction `t` (only read) to
 * `buf`. CS_ENOMEM. */
int cs_offer_commit_req_encode(msgpack_sbuffer *buf, uint64_t lease, const cs_txn *t);
/* Read the lease into *lease and the transaction into `t`, which must be
 * initialised (cs_txn_init) and owns what it reads. CS_EPROTO for a body
 * that is not a map, a missing or mistyped field, or a transaction that
 * cs_txn_from_object refuses (its message prefixed with "field 'txn': ");
 * CS_EINVAL for lease 0. */
int cs_offer_commit_req_decode(const msgpack_object *o, uint64_t *lease, cs_txn *t,
                               cs_error *err);

#endif
