/* conflict.h — does a claim fit a machine? Omega's two conflict detectors.
 *
 * Omega §3.4: "Omega uses fine-grained conflict detection: it rejects a
 * change only if it would overcommit a machine, and accepts changes from
 * schedulers whose view was slightly out of date. ... In coarse-grained
 * conflict detection, a scheduler's placement choice is rejected if any
 * changes have been made to the target machine since the local copy of cell
 * state was synchronized at the beginning of the transaction. This can be
 * implemented with a simple sequence number in the machine's state object."
 *
 * These are pure functions of a machine record and a claim: no store, no
 * clock, so commit (txn/commit.c), the schedulers and the simulator all judge
 * a claim the same way.
 */
#ifndef CS_CONFLICT_H
#define CS_CONFLICT_H

#include "cellstate/arena.h"
#include "cellstate/record.h"
#include "txn/txn.h"

/* Fine-grained: CS_COMMITTED if the claim fits `m` as it stands (which may
 * include earlier parts of the same transaction), else the first reason it
 * does not: machine not up, cpu, memory, disk, or a port in use (or asked
 * for twice by the claim itself). */
uint8_t cs_conflict_fine(const cs_machine *m, const cs_res *res, const uint16_t *ports,
                         uint32_t nports);

/* Coarse-grained: CS_CONFLICT_MACHINE_CHANGED when the machine's sequence
 * number at the start of the transaction (`seq_at_start`) is not the one the
 * scheduler saw (`seen`); otherwise the fine-grained verdict, so that even a
 * scheduler that built an impossible claim on an unchanged machine can never
 * overcommit it. Hence coarse conflicts are a superset of fine ones. */
uint8_t cs_conflict_coarse(const cs_machine *m, uint64_t seq_at_start, uint64_t seen,
                           const cs_res *res, const uint16_t *ports, uint32_t nports);

/* Take (or give back) a task's resources and ports on `m`. The new ports
 * array is allocated in `a`. The caller has checked that the claim fits
 * (take) or that the task holds them (give). CS_ENOMEM on failure. */
int cs_machine_take(cs_machine *m, const cs_res *res, const uint16_t *ports, uint32_t nports,
                    cs_arena *a);
int cs_machine_give(cs_machine *m, const cs_res *res, const uint16_t *ports, uint32_t nports,
                    cs_arena *a);

#endif
