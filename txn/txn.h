/* txn.h — an Omega transaction: what one scheduler wants to change in the
 * cell, built against the snapshot it read.
 *
 * Omega §3.4: "Once a scheduler makes a placement decision, it updates the
 * shared copy of cell state in an atomic commit. At most one such commit will
 * succeed in the case of conflict ... Whether or not the transaction
 * succeeds, the scheduler resyncs its local copy of cell state afterwards
 * and, if necessary, re-runs its scheduling algorithm and tries again."
 *
 * A transaction holds:
 *   claims       task -> machine, with the resources and ports it takes and
 *                the machine's sequence number the scheduler saw;
 *   releases     a task ended (finished, failed, killed, lost), or an ended
 *                task goes back to pending for another attempt;
 *   preemptions  evict a lower-priority task to make room for a claim of
 *                this transaction on the same machine.
 * and two choices, per transaction: fine- or coarse-grained conflict
 * detection, incremental or all-or-nothing commit (commit.h).
 *
 * A cs_txn owns its arrays (grown by the add functions); cs_txn_free
 * releases them.
 */
#ifndef CS_TXN_H
#define CS_TXN_H

#include <stdbool.h>
#include <stdint.h>

#include <msgpack.h>

#include "cellstate/error.h"
#include "cellstate/record.h"

typedef enum cs_conflict_mode {
    CS_CONFLICT_FINE = 0,   /* reject only a claim that would overcommit */
    CS_CONFLICT_COARSE = 1, /* reject a claim on a machine that changed at all */
    CS_CONFLICT_MODE_COUNT
} cs_conflict_mode;

typedef enum cs_commit_mode {
    CS_COMMIT_INCREMENTAL = 0, /* commit every part that does not conflict */
    CS_COMMIT_GANG = 1,        /* all-or-nothing: one conflict and nothing commits */
    CS_COMMIT_MODE_COUNT
} cs_commit_mode;

const char *cs_conflict_mode_name(uint8_t m);
const char *cs_commit_mode_name(uint8_t m);
int cs_conflict_mode_parse(const char *s, uint8_t *out);
int cs_commit_mode_parse(const char *s, uint8_t *out);

typedef struct cs_claim {
    cs_id task;
    cs_id machine;
    cs_res res;
    uint32_t port_off; /* this claim's ports are txn->ports[port_off .. port_off+nports) */
    uint32_t nports;
    uint64_t seq; /* the machine's sequence number in the scheduler's snapshot */
} cs_claim;

typedef struct cs_release {
    cs_id task;
    uint8_t state; /* FINISHED, FAILED, KILLED, LOST; or PENDING to retry an ended task */
    int32_t exit_code;
} cs_release;

typedef struct cs_preempt {
    cs_id victim;    /* a placed task of a lower-priority job */
    cs_id preemptor; /* the task of a claim in this transaction that needs its room */
} cs_preempt;

typedef struct cs_txn {
    uint64_t sched;        /* the scheduler's id */
    uint64_t req;          /* its request id: (sched, req) makes a commit idempotent */
    uint64_t snap_version; /* the cell version the transaction was built on */
    uint8_t conflict;      /* cs_conflict_mode */
    uint8_t commit;        /* cs_commit_mode */
    cs_claim *claims;
    uint32_t nclaims, capclaims;
    uint16_t *ports;
    uint32_t nports, capports;
    cs_release *releases;
    uint32_t nreleases, capreleases;
    cs_preempt *preempts;
    uint32_t npreempts, cappreempts;
} cs_txn;

/* Limits on one transaction: more is CS_EINVAL at commit. */
#define CS_TXN_MAX_ITEMS 1000000u

void cs_txn_init(cs_txn *t, uint64_t sched, uint64_t req, uint64_t snap_version, uint8_t conflict,
                 uint8_t commit);
/* Empty the transaction for reuse, keeping its arrays' memory. */
void cs_txn_reset(cs_txn *t, uint64_t req, uint64_t snap_version);
void cs_txn_free(cs_txn *t);

/* Append an item; the arguments are copied. CS_ENOMEM on failure. */
int cs_txn_add_claim(cs_txn *t, cs_id task, cs_id machine, const cs_res *res, const uint16_t *ports,
                     uint32_t nports, uint64_t seq);
int cs_txn_add_release(cs_txn *t, cs_id task, uint8_t state, int32_t exit_code);
int cs_txn_add_preempt(cs_txn *t, cs_id victim, cs_id preemptor);

/* The claim's ports (borrowed from the transaction); NULL when it has
 * none. A transaction without any port has t->ports NULL, and NULL + 0 is
 * undefined behaviour in C (clang's UBSan reports it: make fuzz). */
static inline const uint16_t *cs_claim_ports(const cs_txn *t, const cs_claim *c)
{
    return c->nports > 0 ? t->ports + c->port_off : NULL;
}

/* The canonical encoding (what the commit log stores), and its inverse.
 * cs_txn_decode fills an initialised `t`; on a malformed input it returns
 * CS_EPROTO with a message naming the field. */
int cs_txn_encode(const cs_txn *t, msgpack_sbuffer *buf);
int cs_txn_decode(const void *data, size_t len, cs_txn *t, cs_error *err);
/* The same from an already unpacked msgpack object (for wire messages). */
int cs_txn_from_object(const msgpack_object *o, cs_txn *t, cs_error *err);

/* ---- results ---------------------------------------------------------- */

/* The outcome of each item. 0 is success; the CS_CONFLICT_* codes say why a
 * claim (or release, or preemption) did not commit. */
#define CS_OUTCOME_TABLE(X)                                                                 \
    X(CS_COMMITTED, 0, "committed")                                                         \
    X(CS_CONFLICT_CPU, 1, "would overcommit cpu")                                           \
    X(CS_CONFLICT_MEM, 2, "would overcommit memory")                                        \
    X(CS_CONFLICT_DISK, 3, "would overcommit disk")                                         \
    X(CS_CONFLICT_PORT, 4, "port in use")                                                   \
    X(CS_CONFLICT_MACHINE_NOT_UP, 5, "machine is not up")                                   \
    X(CS_CONFLICT_TASK_NOT_PENDING, 6, "task is no longer pending")                         \
    X(CS_CONFLICT_MACHINE_CHANGED, 7, "machine changed since the snapshot")                 \
    X(CS_CONFLICT_TASK_NOT_PLACED, 8, "task is not in a state this allows")                 \
    X(CS_CONFLICT_PRIORITY, 9, "victim is not of lower priority")                           \
    X(CS_CONFLICT_VICTIM_ELSEWHERE, 10, "victim is not on the claimed machine")             \
    X(CS_ABORTED_GANG, 11, "not committed: another part of the all-or-nothing transaction " \
                           "conflicted")                                                    \
    X(CS_ABORTED_PREEMPTOR, 12, "not committed: the claim it made room for conflicted")       \
    X(CS_CONFLICT_SPEC_CHANGED, 13, "the task's resources or ports changed since the snapshot")

enum {
#define CS_OUTCOME_ENUM(name, value, text) name = value,
    CS_OUTCOME_TABLE(CS_OUTCOME_ENUM)
#undef CS_OUTCOME_ENUM
        CS_OUTCOME_COUNT
};

const char *cs_outcome_str(uint8_t outcome);

typedef struct cs_txn_result {
    uint64_t version;      /* cell version after the commit */
    bool replayed;         /* the first result of an earlier commit of the same request */
    uint32_t nclaims, nreleases, npreempts;
    uint8_t *claims;       /* outcome per claim, in the transaction's order */
    uint8_t *releases;
    uint8_t *preempts;
    uint32_t committed;    /* claims committed */
    uint32_t conflicts;    /* claims that conflicted (not counting gang aborts) */
} cs_txn_result;

/* The result owns its arrays: cs_txn_result_free. Init before first use. */
void cs_txn_result_init(cs_txn_result *r);
void cs_txn_result_free(cs_txn_result *r);
/* Size the arrays for `t` and zero the counts. */
int cs_txn_result_prepare(cs_txn_result *r, const cs_txn *t);
int cs_txn_result_encode(const cs_txn_result *r, msgpack_sbuffer *buf);
int cs_txn_result_decode(const void *data, size_t len, cs_txn_result *r, cs_error *err);

#endif
