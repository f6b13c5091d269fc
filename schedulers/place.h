/* place.h — feasibility and scoring: where each pending task of a job goes.
 *
 * The placer works on a scheduler's local copy (cellcopy.h) and writes its
 * decisions as claims (and preemptions) into an Omega transaction
 * (txn/txn.h), reserving each choice in the copy as it goes (cs_copy_claim)
 * so that the next task of the same decision sees the room already taken.
 *
 * For each task: filter, then score (Kubernetes' scheduler):
 *   - hard filters: machine up; every NoSchedule and NoExecute taint of the
 *     machine tolerated by the job (cellstate/jobopts.h, Kubernetes'
 *     matching); cpu, memory and disk fit (capacity minus
 *     allocated); the job's fixed ports free and enough free dynamic ports in
 *     the machine's range (always checked: the copy cannot hold a port
 *     twice); host volumes (NoDiskConflict: no shared path when either task
 *     writes it; the policy's one optional filter, NoDiskConflict); every
 *     hard constraint of the job (constraint.h, Marathon's meaning),
 *     whatever the policy lists: they are the job's contract. A constraint
 *     no machine satisfies is not an error: the task stays pending, with a
 *     reason.
 *   - scores: the policy's weighted sum of Kubernetes' 0..10 priorities;
 *     soft constraints (soft: true) raise NodeAffinity (attribute and
 *     hostname operators) or JobAffinity (AFFINITY, ANTI_AFFINITY);
 *     PreferNoSchedule taints the job does not tolerate lower
 *     TaintToleration. Ties are
 *     broken with the placer's own seeded generator, never rand().
 *
 * Speed (a placement must cost a few microseconds), after Borg §3.4:
 *   - relaxed randomization: machines are visited in an order shuffled once
 *     per placer (seeded: racing schedulers rarely visit in the same order),
 *     from a random start per decision, and the scan stops at the first K
 *     feasible machines, which alone are scored. K defaults to 2 for batch
 *     jobs (Nomad's power of two choices) and max(2, ceil(log2 N)) for
 *     service jobs (Nomad's service limit), N the machines in the copy;
 *     under a policy that weighs spreading (fewest tasks of the same job)
 *     it is at least CS_PLACE_K_SPREADING, Kubernetes' minimum of feasible
 *     nodes scored, since a spreading score over two candidates only
 *     alternates between them.
 *   - equivalence classes: the tasks of one call with the same resources
 *     (one job, so the same ports and constraints) share one scan. Within a
 *     call a machine only loses room (claims take, nothing frees), so a
 *     machine found infeasible stays so: the class keeps its feasible
 *     candidates in scan order and its count of rejections per reason, and
 *     the next task re-checks the candidates and continues the scan where it
 *     stopped. The result is exactly that of scanning from the class's start
 *     for every task (cs_place_opts.no_classes; the test suite compares
 *     both). A job whose feasibility can grow during the call — a hard
 *     GROUP_BY (a group becomes the smallest again) or a hard AFFINITY to
 *     itself — is scanned afresh for every task.
 *
 * Fewest tasks first (cs_policy.fewest_tasks, the spread preset: Docker
 * Swarm's spread). Sampling K machines cannot spread evenly — a class kept
 * its first K candidates for all its tasks, so 6 tasks on 3 machines went
 * 3/3/0 — so under this rule the placer keeps the machines ordered by their
 * task count (a counting sort per call, O(machines); each claim moves its
 * machine up one group in O(1)), scans them from the least loaded for
 * every task (a class remembers the machines it rejected in the call, which
 * stay rejected, and skips them), and chooses among the scanned candidates
 * with the fewest tasks, by the weighted sum. N tasks on M equal machines then end within
 * one of N/M, in one call and across calls.
 *
 * Randomized first fit (cs_policy.first_fit, the "firstfit" preset): the
 * Omega paper's lightweight simulator's placement, for experiments that
 * take the paper as the reference. Each task goes to the first machine that
 * fits in a random order of its own (the placer's seeded generator); a
 * machine that does not fit is not drawn again for the class in the call.
 * Nothing is scored, so soft constraints and PreferNoSchedule change
 * nothing; hard filters, preemption and gang hold as for every policy.

 * Reasons: when a task fits nowhere the report says why, as Nomad and
 * Kubernetes do, counting the machines rejected per reason, most frequent
 * first: "no machine fits: cpu on 9,870, UNIQUE hostname on 130".
 *
 * Preemption (cs_place_opts.preempt, for the service scheduler): when
 * nothing fits, the placer looks for the machine where evicting placed tasks
 * of strictly lower-priority jobs makes the task fit, with the fewest
 * victims (then the lowest victim priority); the victims are tentatively
 * evicted in the copy and travel in the transaction as [victim, preemptor]
 * pairs (docs/protocol.md §7).
 *
 * A placer belongs to one thread; it holds its generator, its machine
 * order and scratch memory reused from call to call.
 */
#ifndef CS_PLACE_H
#define CS_PLACE_H

/* K under a policy that weighs spreading: Kubernetes' minFeasibleNodesToFind. */
#define CS_PLACE_K_SPREADING 100u

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cellstate/error.h"
#include "cellstate/record.h"
#include "schedulers/cellcopy.h"
#include "schedulers/policy.h"
#include "txn/txn.h"

typedef struct cs_placer cs_placer;

typedef struct cs_place_opts {
    uint64_t seed;      /* the generator's seed: give each scheduler its own */
    uint32_t k_batch;   /* feasible machines scored per batch task; 0 = 2 */
    uint32_t k_service; /* per service task; 0 = max(2, ceil(log2 N)) */
    bool preempt;       /* evict lower-priority tasks when nothing fits */
    bool no_classes;    /* scan afresh for every task (the reference the tests compare with) */
} cs_place_opts;

/* The longest reason text, NUL included (a job's note holds as much). */
#define CS_PLACE_REASON_MAX 512

typedef struct cs_place_report {
    uint32_t placed;   /* claims added to the transaction */
    uint32_t pending;  /* tasks left pending */
    uint32_t victims;  /* preemptions added to the transaction */
    uint64_t checked;  /* machine feasibility checks made (work done) */
    /* Why the first task left pending fits nowhere ("" when every task was
     * placed), suitable as the job's note. */
    char reason[CS_PLACE_REASON_MAX];
} cs_place_report;

/* A placer with `policy` (copied) and `opts` (copied; NULL = all defaults,
 * seed 0). On success *out is the caller's: cs_placer_free. CS_ENOMEM. */
int cs_placer_new(const cs_policy *policy, const cs_place_opts *opts, cs_placer **out,
                  cs_error *err);
void cs_placer_free(cs_placer *p);

/* Place the listed pending tasks of `job` (n ids in `tasks`, all of that
 * job, each listed once), in order. Each placed task gets a claim in `txn`
 * (task, machine, the task's resources, its ports in the job's order with
 * dynamic ones chosen from a random point of the machine's range, and the
 * machine's seq in the copy) and is claimed in the copy; preemptions add
 * [victim, task] pairs. A task that fits nowhere stays pending and is
 * counted in `rep` with the reason. When `on` is not NULL it holds n machine
 * ids: task i may go only to on[i] (global jobs pin one task per machine).
 *
 * A job with the `gang` option is placed whole or not at all: if any task
 * stays pending, its claims and preemptions are taken out of `txn` and the
 * copy, and every listed task is reported pending with the reason.
 * A job whose constraints or options cannot be read (cs_cjob.bad) leaves
 * every task pending with that reason.
 *
 * Errors (nothing of this call left in txn or the copy): CS_ENOTFOUND (job,
 * task or `on` machine not in the copy), CS_EINVAL (a task of another job,
 * listed twice, or not pending), CS_ESTATE (the job is killed), CS_ENOMEM.
 * `tasks`, `on` and `c` are borrowed; `txn` and `rep` are the caller's. */
int cs_place_job(cs_placer *p, cs_copy *c, cs_id job, const cs_id *tasks, size_t n,
                 const cs_id *on, cs_txn *txn, cs_place_report *rep, cs_error *err);

/* For a `global` job: the ids of the up machines where one task of the job
 * would fit now — hard constraints, resources, ports, volumes — and which
 * hold no placed task of the job, ascending. The scheduler scales the job to
 * its placed tasks plus this count and places the new tasks with `on`.
 * *machines is malloc'd (the caller frees it; NULL when *n is 0). Errors:
 * CS_ENOTFOUND (job), CS_ESTATE (killed), CS_EINVAL (the job is `bad`: the
 * message says why), CS_ENOMEM. */
int cs_place_global(cs_placer *p, cs_copy *c, cs_id job, cs_id **machines, size_t *n,
                    cs_error *err);

/* NoExecute, after Kubernetes' taint manager: how long a placed task of
 * job `j` may stay on machine `m` (both borrowed from `c`), in seconds:
 * 0 when one of the machine's NoExecute taints is tolerated by none of the
 * job's tolerations (evict now); else the smallest tolerationSeconds of
 * the tolerations that tolerate them (the first match per taint, as
 * Kubernetes takes it); CS_PLACE_STAY_FOREVER when none of those has a
 * limit, or the machine has no NoExecute taint. */
#define CS_PLACE_STAY_FOREVER UINT32_MAX
uint32_t cs_place_noexecute_stay(const cs_copy *c, const cs_cjob *j, const cs_cmachine *m);

#endif
