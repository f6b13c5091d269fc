/* commit.h — validate a scheduler's transaction against the cell and apply
 * it: Omega's optimistic commit.
 *
 * Omega §3.4: "Schedulers can choose to use incremental transactions, which
 * accept all but the conflicting changes (i.e., the transaction provides
 * atomicity but not independence), or all-or-nothing transactions that
 * either commit the whole transaction or none of it (gang scheduling)."
 *
 * Commit runs inside one LMDB write transaction, in this order:
 *   1. idempotency: a transaction whose (scheduler, request) was committed
 *      before returns that first result and changes nothing;
 *   2. validation of the input: every task and machine named exists, no task
 *      appears twice (except once in a release to pending and once in a
 *      claim: a restart, placed again by the same transaction), resources
 *      are in [0, CS_RES_MAX], ports match the job's spec, every preemptor
 *      is a claim of this transaction. Any failure is a refusal (CS_EINVAL,
 *      CS_ENOTFOUND): logged, and nothing else is written;
 *   3. releases, then claims in order, each claim preceded by the
 *      preemptions that make room for it, judged against the machine as the
 *      transaction has left it so far (conflict.h);
 *   4. incremental: what did not conflict is written; gang: everything is
 *      written if nothing conflicted, else nothing;
 *   5. its result is stored under (scheduler, request), and the state
 *      machine (command.h) appends the transaction to the commit log; it
 *      logs a transaction refused in step 2 as well, so that replay
 *      refuses it again.
 *
 * Deterministic: the outcome is a pure function of the store and the
 * transaction (no clock, no randomness), so that replicas applying the same
 * log reach the same store.
 */
#ifndef CS_COMMIT_H
#define CS_COMMIT_H

#include "cellstate/store.h"
#include "txn/txn.h"

/* Commit `t` to the store: the transaction command (command.h) built and
 * applied, for callers that need no more of the result than `r`. On
 * success (CS_OK), `r` (initialised by the caller, owned by the caller)
 * holds each item's outcome and the cell version after the commit;
 * r->replayed tells an idempotent repeat. A refused transaction (step 2)
 * is logged and returns its code, `err` naming the problem; on another
 * error nothing was written. `t` is only read. */
int cs_commit(cs_store *s, const cs_txn *t, cs_txn_result *r, cs_error *err);

/* The same judgement on a snapshot, writing nothing: what cs_commit would
 * answer if the store were at `snap` (idempotency aside). r->version is the
 * snapshot's version. */
int cs_commit_check(cs_snap *snap, const cs_txn *t, cs_txn_result *r, cs_error *err);

#endif
