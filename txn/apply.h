/* apply.h — inside the state machine: how each kind of command changes the
 * store, within the write transaction that command.c has begun for it.
 *
 * command.c owns the transaction's life (begin, commit and log, or abort
 * and log the refusal); ops.c and commit.c only judge and write. Only
 * txn/ includes this header: everyone else goes through command.h.
 */
#ifndef CS_APPLY_H
#define CS_APPLY_H

#include "cellstate/arena.h"
#include "cellstate/store.h"
#include "txn/command.h"
#include "txn/txn.h"

/* What an applier returns for a repeat that changes nothing and that
 * clients send often (a note, a health report, a retried transaction):
 * the transaction is dropped instead of logged, which spares the log an
 * entry and the disk a sync. Not a cs error code. */
enum { CS_UNCHANGED = -1 };

/* Apply the operation `kind` (any kind but CS_CMD_TXN) with fields `c` in
 * `w`. CS_OK: the writes are in `w`, to be logged; CS_UNCHANGED; a refusal
 * (cs_command_refusal) or an error, `err` saying which. *id receives the
 * machine of a machine-put or the job of a job-submit. Scratch memory
 * comes from `a`. */
int cs_apply_op(cs_wtxn *w, uint8_t kind, const cs_cmd_args *c, cs_arena *a, cs_id *id,
                cs_error *err);

/* Judge and write transaction `t` in `w` (commit.h has the steps), `r`
 * receiving the outcomes; its first result is stored under (scheduler,
 * request). CS_UNCHANGED for a request already committed: `r` is then its
 * first result, r->replayed set. Otherwise as cs_apply_op. */
int cs_commit_apply(cs_wtxn *w, const cs_txn *t, cs_txn_result *r, cs_error *err);

#endif
