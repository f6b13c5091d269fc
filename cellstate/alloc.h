/* alloc.h — what each machine has allocated, derived from the tasks placed
 * on it and kept in memory, versioned so that every snapshot sees the
 * allocation of its own version.
 *
 * Why not in the machine records: a claim changes its machine's allocation,
 * and Omega's claims land on machines spread over the whole cell. Writing the
 * machine record (and an index of placed tasks) for every claim dirtied two
 * random B-tree pages per claim on top of the task's own, so that a commit of
 * 100 claims wrote about 158 pages where the same number of raw puts writes
 * about 5 (docs/benchmarks.md). The allocation is a pure function of the task
 * records (the sum of what the placed ones hold), so the store keeps only the
 * task records on disk and derives the rest: at open from the tasks, then
 * after each commit from the tasks it wrote.
 *
 * Versions. Each machine has a chain of immutable entries, newest first; an
 * entry is visible to snapshots at or after its version. A snapshot at V
 * reads the newest entry at or below V, so readers never lock and never see
 * a commit after their own version. The writer publishes a commit's entries
 * after LMDB has committed it, and frees entries that no open snapshot can
 * reach any more; the store tells it the oldest version still read (its
 * snapshot registry), which is why publishing takes `oldest`.
 *
 * Threads: any number of readers (cs_alloc_get) with one writer (the
 * cs_alloc_txn functions and cs_alloc_publish), which the store serialises
 * with LMDB's single write transaction.
 */
#ifndef CS_ALLOC_H
#define CS_ALLOC_H

#include <stdbool.h>
#include <stdint.h>

#include "cellstate/error.h"
#include "cellstate/record.h"

typedef struct cs_alloc cs_alloc;
typedef struct cs_alloc_txn cs_alloc_txn;

/* What a machine's record says that judging a claim on it needs. The table
 * keeps a copy beside the allocation, so that a commit judges its claims
 * without reading and decoding a machine record per claim (those reads were
 * about half of a commit's CPU time: docs/benchmarks.md). */
typedef struct cs_alloc_spec {
    cs_res capacity;
    uint16_t port_lo, port_hi;
    uint8_t state;    /* cs_machine_state */
    uint8_t admin;    /* cs_machine_admin: a commit refuses claims on a machine not active */
    uint64_t version; /* the record's version */
} cs_alloc_spec;

/* One machine's allocation, borrowed from the table: valid while the
 * snapshot that read it is open (or, in a write transaction, until the next
 * change to that machine). */
typedef struct cs_alloc_view {
    cs_res allocated;      /* sum of the resources of the tasks placed here */
    uint32_t ntasks;       /* tasks placed here (assigned or running) */
    uint32_t nports;
    const cs_id *tasks;    /* their ids, ascending */
    const uint16_t *ports; /* ports they hold, ascending, unique */
    uint64_t changed;      /* cell version of the last placement change here; 0 if none */
    bool known;            /* the machine's record exists: `spec` is its copy */
    cs_alloc_spec spec;
} cs_alloc_view;

int cs_alloc_create(cs_alloc **out, cs_error *err);
/* Frees every entry. No reader may be using the table. */
void cs_alloc_destroy(cs_alloc *t);

/* The allocation of `machine` as of `version` (all zero when nothing was
 * ever placed there). The caller guarantees that entries at or below
 * `version` are not freed meanwhile (a registered snapshot). */
void cs_alloc_get(const cs_alloc *t, cs_id machine, uint64_t version, cs_alloc_view *out);

/* ---- the writer ---------------------------------------------------------- */

/* Changes of one write transaction, visible only through cs_alloc_txn_get
 * until published. Entries it makes will carry `version`; when `stamp`, a
 * machine's `changed` moves to `version` with every add or remove (a
 * commit), else only cs_alloc_txn_changed moves it (rebuilding at open,
 * where the log says when each machine changed). Owned by the caller:
 * publish or discard it. */
int cs_alloc_txn_begin(cs_alloc *t, uint64_t version, bool stamp, cs_alloc_txn **out,
                       cs_error *err);

/* From now on the transaction's changes are stamped (when `stamp`) and
 * published with `version`: the store's group commit runs several logged
 * commands, each with its own version, through one overlay. */
void cs_alloc_txn_set_version(cs_alloc_txn *x, uint64_t version);

/* The allocation as this transaction sees it: the last published entry with
 * the transaction's own changes applied. */
void cs_alloc_txn_get(const cs_alloc_txn *x, cs_id machine, cs_alloc_view *out);

/* Task `task` stops holding `res` and `ports` on `machine`: the entry
 * forgets it. CS_ECORRUPT if the task is not there (the caller's records
 * and the table disagree), CS_ENOMEM. */
int cs_alloc_txn_remove(cs_alloc_txn *x, cs_id machine, cs_id task, const cs_res *res,
                        const uint16_t *ports, uint32_t nports, cs_error *err);
/* Task `task` starts holding `res` and `ports` on `machine`. CS_ECORRUPT if
 * it is already there or holds a port in use; CS_ENOMEM. */
int cs_alloc_txn_add(cs_alloc_txn *x, cs_id machine, cs_id task, const cs_res *res,
                     const uint16_t *ports, uint32_t nports, cs_error *err);
/* The machine's record was written (or read, rebuilding at open): keep
 * `spec`, copied. CS_ENOMEM, or CS_EFULL for an id beyond the table. */
int cs_alloc_txn_spec(cs_alloc_txn *x, cs_id machine, const cs_alloc_spec *spec, cs_error *err);
/* Raise the machine's `changed` to at least `version` (rebuilding at open
 * from the log). CS_ENOMEM. */
int cs_alloc_txn_changed(cs_alloc_txn *x, cs_id machine, uint64_t version, cs_error *err);

/* Make the transaction's entries visible to snapshots at or after its
 * version, then free what no snapshot at or after `oldest` can reach. Frees
 * `x`. On CS_ENOMEM nothing is published and `x` is freed: the caller's
 * table no longer matches its store and must be rebuilt. */
int cs_alloc_publish(cs_alloc_txn *x, uint64_t oldest, cs_error *err);
/* Drop the transaction's changes and free it. */
void cs_alloc_txn_discard(cs_alloc_txn *x);

#endif
