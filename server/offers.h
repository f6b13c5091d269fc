/* offers.h — cellstated as a Mesos-style resource manager
 * (`--concurrency offers`; docs/design.md, docs/protocol.md §5.25-§5.27).
 *
 * Omega §3.3 describes two-level scheduling as Mesos does it: "a
 * centralized resource allocator dynamically partitions a cluster,
 * allocating resources to different scheduler frameworks", offering the
 * available resources "to only one framework at a time" — a pessimistic
 * lock, which the paper shows costs the frameworks that wait behind a slow
 * one (§5.2). Here the lock is the *offer*: a lease on every resource free
 * when it is made, held by one scheduler at a time, with an id and an
 * expiry. A scheduler asks (offer.acquire); the server grants the offer to
 * one scheduler, and once it is given back (offer.release) or taken back
 * (held past --offer-timeout: a dead scheduler cannot lock the cell) to the
 * waiting scheduler of lowest dominant share — dominant resource fairness
 * (Ghodsi et al., NSDI 2011), as Mesos' allocator orders its frameworks: a
 * scheduler's share is the largest fraction of the cell's cpu, memory or
 * disk that its tasks hold. A commit in offers mode (offer.commit) names
 * its lease, and is refused, naming the lease, unless that lease is the
 * current one, each claim is on a machine the offer had, and the claims on
 * each machine fit what the offer holds there now: what was free at the
 * grant, less what the lease committed, plus what was freed since (a task
 * that ended meanwhile). The offer is of all free resources, and while it
 * is held nobody else can be offered what frees up — as cellsim's offer, a
 * lock whose holder commits on whatever is free (docs/research.md).
 *
 * Why the lease lives here, in the leader's memory, and not in the state
 * machine (txn/command.h): nothing the cell stores depends on it. A lease
 * decides only whether a commit is taken, on the server that takes
 * commits; the commit itself is replicated as ever. A new leader starts
 * without a lease: the scheduler that held one is refused ("lease 7 is
 * not held") and asks again, as after an expiry.
 *
 * Why a waiting acquire is parked, not answered "retry later": DRF orders
 * the schedulers that wait, so the server must know who waits; and a
 * parked request costs an nng context, not a thread (as a parked poll,
 * feed.c), and is answered the moment the offer is its own.
 *
 * Threads: acquire, release and the commit's check on the workers' threads,
 * the expiry on the server clock's thread, admit on the writer's; one mutex of
 * the module's own guards everything here. It is taken before the store's
 * read lock (a grant reads a snapshot), never after `cs_server.mu`.
 */
#ifndef CS_SERVER_OFFERS_H
#define CS_SERVER_OFFERS_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "cellstate/error.h"
#include "cellstate/record.h"
#include "proto/offermsg.h"
#include "txn/txn.h"

struct worker;
struct cs_server;

/* A worker's place in the queue of schedulers waiting for the offer
 * (embedded in the worker; the module's fields). */
typedef struct srv_offer_wait {
    char sched[CS_OFFER_SCHED_MAX + 1];
    cs_res held;         /* what its tasks hold: the DRF numerators */
    uint64_t seq;        /* arrival order: ties of share go to the earlier */
    uint64_t lease;      /* granted while it waited (0: not yet) */
    bool waiting;        /* in the queue */
    struct worker *next; /* the queue's next */
} srv_offer_wait;

typedef struct srv_offers srv_offers;

/* The offers of server `s` (borrowed: it outlives them), whose leases are
 * taken back `timeout_ms` after they are granted. One timer of s->clock is
 * reserved for the expiry. On success *out is the server's:
 * srv_offers_free, once no worker can call in. CS_ENOMEM. */
int srv_offers_new(struct cs_server *s, uint32_t timeout_ms, srv_offers **out, cs_error *err);
void srv_offers_free(srv_offers *o);

/* Serve offer.acquire: answer at once (granted, or not when wait_ms is 0),
 * or park w until it is granted or its wait runs out (state W_OFFER). */
void srv_offer_acquire(struct worker *w);
/* A parked acquire's sleep ended (granted, run out, or stopping: `stop`). */
void srv_offer_woken(struct worker *w, bool stop);
/* offer.release: a handler (server.c's routes). */
int srv_offer_release(struct worker *w, msgpack_packer *pk, cs_error *err);

/* offer.commit, on w's thread before it is queued for the writer:
 * whether its lease is the current one and each claim fits what the offer
 * holds on its machine now (reading a snapshot, which the writer's thread
 * must not). False when it answered w: CS_ESTATE naming the lease (none,
 * another's, expired; a claim beyond the offer or on a machine it did not
 * have), CS_EPROTO for a body that does not decode. True on a cell without
 * offers: the writer refuses it. */
bool srv_offer_commit_check(struct worker *w);

/* The writer, preparing offer.commit: whether `lease` is still the current
 * one (it may have expired since srv_offer_commit_check). CS_ESTATE naming
 * it, or naming the mode on a cell without offers. */
int srv_offer_admit(struct cs_server *s, uint64_t lease, cs_error *err);

/* What the offer is now, for the metrics (server/metrics.c): whether a
 * lease is held and by whom, what it offered (free when it was granted,
 * summed over nmachines machines), the schedulers waiting, and the leases
 * granted and taken back since the server started. */
typedef struct srv_offer_view {
    bool held;
    char holder[CS_OFFER_SCHED_MAX + 1];
    cs_res offered;
    uint32_t nmachines;
    uint32_t waiting;
    uint64_t grants, expiries;
} srv_offer_view;
void srv_offers_view(srv_offers *o, srv_offer_view *out);

#endif
