/* policy.h — which filters apply and how machines are scored: the placement
 * policy both schedulers share.
 *
 * A policy is plain data (cs_policy): a set of optional filters and one
 * weight per scoring function. It comes from a preset ("spread", "binpack",
 * "random", the strategies of Docker Swarm, and "firstfit", the Omega
 * paper's simulator's) or from a Kubernetes legacy
 * Policy file (kind "Policy", apiVersion "v1"), whose predicate and priority
 * names map onto the bits and weights below. The placement engine
 * (schedulers/place.h) filters machines with the predicates, computes each
 * used priority's 0..10 score with the helpers here, and ranks machines by
 * the weighted sum (cs_policy_combine).
 *
 * Always enforced, whatever the policy: resources (the cell refuses
 * overcommit, so a placement that does not fit would only conflict at
 * commit), ports (the copy cannot hold a port twice), machine up, the
 * machine's NoSchedule and NoExecute taints (its owner's word, as in
 * Kubernetes from 1.12, where PodToleratesNodeTaints and
 * CheckNodeUnschedulable became mandatory) and every hard constraint of the
 * job (its own contract: a Policy file written for Kubernetes does not know
 * cellsched's operators, and leaving MatchInterPodAffinity out of it must
 * not put an AFFINITY job away from its anchor). The Kubernetes names of
 * those filters are accepted and change nothing; the policy chooses the
 * scores and the one optional filter, NoDiskConflict.
 *
 * Kubernetes names that mean nothing in a cell without container images or
 * cloud volumes (ImageLocalityPriority, MaxEBSVolumeCount, ...) are
 * accepted and ignored, and the policy remembers them (cs_policy.ignored)
 * so that the scheduler can warn once, naming them (cs_policy_warning). A
 * name Kubernetes does not have is refused; every such name of a file is
 * named in one message.
 *
 * Soft constraints (cs_constraint.soft) are the job's own request: the policy
 * only weighs them. NodeAffinityPriority and InterPodAffinityPriority
 * therefore always have a weight: a Policy file that leaves one of them out
 * gets weight 1 for it, so a file written for Kubernetes (which has no soft
 * constraints of this kind) still honours them.
 *
 * Scores follow Kubernetes 1.x's priority functions, each 0..10, but in
 * floating point: Kubernetes truncates each to an integer, which makes
 * machines that differ by less than a tenth of their capacity tie; keeping
 * the fraction lets the placer order them. Resource scores use cpu and
 * memory only, as Kubernetes does; disk is a filter, never a score.
 *
 * Nothing here allocates or keeps a pointer: every function reads its
 * arguments during the call only and writes results into caller storage.
 */
#ifndef CS_POLICY_H
#define CS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cellstate/error.h"
#include "cellstate/record.h"

/* The filters, as bits of cs_policy.predicates. Only CS_PRED_DISK_CONFLICT
 * is optional: the others are always set (see the top of this file) and
 * kept as bits so that a policy says in full what it filters by. */
typedef enum cs_predicate {
    CS_PRED_PORTS = 1u << 0,           /* fixed ports must be free (PodFitsPorts, PodFitsHostPorts) */
    CS_PRED_DISK_CONFLICT = 1u << 1,   /* host volumes: no shared path when either writes (NoDiskConflict) */
    CS_PRED_SELECTOR = 1u << 2,        /* attribute constraints ==, !=, IS, LIKE, UNLIKE, CLUSTER (MatchNodeSelector) */
    CS_PRED_HOSTNAME = 1u << 3,        /* hostname pins (HostName) */
    CS_PRED_AFFINITY = 1u << 4,        /* job AFFINITY / ANTI_AFFINITY (MatchInterPodAffinity) */
    CS_PRED_SPREAD = 1u << 5,          /* UNIQUE, MAX_PER, GROUP_BY (Marathon's operators; no Kubernetes name) */
    CS_PRED_TAINTS = 1u << 6,          /* NoSchedule / NoExecute taints tolerated (PodToleratesNodeTaints) */
    CS_PRED_ALL = (1u << 7) - 1,
    /* What every policy enforces: all but NoDiskConflict. */
    CS_PRED_ENFORCED = CS_PRED_ALL & ~(uint32_t)CS_PRED_DISK_CONFLICT
} cs_predicate;

typedef enum cs_priority {
    CS_PRIO_LEAST_REQUESTED,   /* LeastRequestedPriority: (cap - requested) * 10 / cap, mean of cpu and mem */
    CS_PRIO_MOST_REQUESTED,    /* MostRequestedPriority: requested * 10 / cap (bin packing) */
    CS_PRIO_BALANCED,          /* BalancedResourceAllocation: 10 - |cpu_frac - mem_frac| * 10 */
    CS_PRIO_SPREADING,         /* ServiceSpreadingPriority / SelectorSpreadPriority: fewest tasks of the same job */
    CS_PRIO_EQUAL,             /* EqualPriority: every machine 1 */
    CS_PRIO_NODE_AFFINITY,     /* NodeAffinityPriority: soft attribute/hostname constraints */
    CS_PRIO_JOB_AFFINITY,      /* InterPodAffinityPriority: soft AFFINITY / ANTI_AFFINITY */
    CS_PRIO_TAINT_TOLERATION,  /* TaintTolerationPriority: fewest PreferNoSchedule taints not tolerated */
    CS_PRIO_COUNT
} cs_priority;

/* Kubernetes' priority functions score 0..MaxPriority. */
#define CS_POLICY_MAX_SCORE 10.0

typedef struct cs_policy {
    uint32_t predicates;             /* cs_predicate bits */
    uint32_t weights[CS_PRIO_COUNT]; /* 0 = not used */
    /* Docker Swarm's spread: the machine with the fewest tasks (of any job)
     * first, the weighted sum only among machines with equally few. The
     * "spread" preset sets it; the placer then scans machines from the
     * least loaded (place.h). */
    bool fewest_tasks;
    /* Bits of the names the Policy file listed that cellsched ignores
     * (container images, cloud volumes): cs_policy_warning names them. */
    uint32_t ignored;
    /* Randomized first fit, the placement of the Omega paper's lightweight
     * simulator: each task goes to the first machine that fits in an order
     * drawn at random for it, and no machine is scored (the "firstfit"
     * preset; place.h). */
    bool first_fit;
} cs_policy;

/* ---- names ----------------------------------------------------------------- */

/* The Kubernetes name of a priority ("LeastRequestedPriority"; the spreading
 * priority is "SelectorSpreadPriority", the newer of its two names), or
 * "unknown" outside the enum. Static string: never freed. */
const char *cs_priority_name(cs_priority p);

/* The name of one predicate bit: the Kubernetes name where there is one
 * ("PodFitsHostPorts", "NoDiskConflict", "MatchNodeSelector", "HostName",
 * "MatchInterPodAffinity"), "Spread" for CS_PRED_SPREAD, "unknown" for
 * anything that is not exactly one known bit. Static string: never freed. */
const char *cs_predicate_name(cs_predicate p);

/* The warning a scheduler prints once for a policy that lists names
 * cellsched ignores: "policy: ignoring ImageLocalityPriority (container
 * images), MaxEBSVolumeCount (cloud volumes): cellsched has neither".
 * Writes at most `size` bytes into `buf` (NUL-terminated, cut if longer)
 * and returns true; false with buf "" when the policy ignores nothing.
 * `p` is borrowed. */
bool cs_policy_warning(const cs_policy *p, char *buf, size_t size);

/* ---- building a policy ------------------------------------------------------ */

/* Fill `out` with a preset, all predicates on in each:
 *   "spread"  fewest tasks first (Swarm), then LeastRequested 1, Balanced 1,
 *             Spreading 1 (the default policy)
 *   "binpack" MostRequested 1
 *   "random"  Equal 1 (every machine ties; the placer breaks ties randomly)
 *   "firstfit" randomized first fit (first_fit): per task, the first machine
 *             that fits in a random order; Equal 1 (nothing is scored)
 * plus NodeAffinity 1, JobAffinity 1 and TaintToleration 1 in each (first
 * fit ignores them: soft constraints and PreferNoSchedule are scores). An
 * unknown name is CS_EINVAL naming it and listing these four. `name` is borrowed; `out` is
 * written only on success. */
int cs_policy_preset(const char *name, cs_policy *out, cs_error *err);

/* Parse a Kubernetes legacy Policy (JSON) of `len` bytes:
 *   {"kind": "Policy", "apiVersion": "v1",
 *    "predicates": [{"name": N}, ...], "priorities": [{"name": N, "weight": W}, ...]}
 * The listed predicates are the filters that apply besides the
 * always-enforced ones (CS_PRED_ENFORCED: no "predicates" key = all of
 * them, [] = only those), and the listed priorities get their weights (no
 * "priorities" key = the spread preset's weights, without its fewest-tasks
 * rule; [] = EqualPriority 1, Kubernetes' fallback when no priority is
 * configured). NodeAffinity and JobAffinity get weight 1 when not listed
 * (see the top of this file).
 *
 * Predicates: NoDiskConflict (optional); PodFitsPorts, PodFitsHostPorts,
 * PodFitsResources, GeneralPredicates, HostName, MatchNodeSelector,
 * MatchInterPodAffinity, PodToleratesNodeTaints,
 * PodToleratesNodeNoExecuteTaints, CheckNodeUnschedulable,
 * CheckNodeCondition (always enforced); NoVolumeZoneConflict (host volumes
 * have no zone: always satisfied). Priorities: LeastRequestedPriority,
 * MostRequestedPriority, BalancedResourceAllocation,
 * ServiceSpreadingPriority or SelectorSpreadPriority (the same function:
 * listing both is a repeat), EqualPriority, NodeAffinityPriority,
 * InterPodAffinityPriority, TaintTolerationPriority; weight an integer in
 * 1..UINT32_MAX. Ignored with a warning (bits in `ignored`):
 * ImageLocalityPriority; MaxEBSVolumeCount, MaxGCEPDVolumeCount,
 * MaxAzureDiskVolumeCount, MaxCinderVolumeCount, MaxCSIVolumeCountPred,
 * CheckVolumeBinding, NoVolumeNodeConflict.
 *
 * Refused with CS_EINVAL and a message naming where: not JSON (jansson's
 * line and column), `kind: expected "Policy"`, `apiVersion: expected "v1"`,
 * `predicates[0]: "name" is missing`, unknown names — all of them, in list
 * order: `predicates[2]: unknown predicate "PodFitsPort"; priorities[0]:
 * unknown priority "Spread"` —, a repeated name, `priorities[1].weight: must be
 * a positive integer`, arguments (`predicates[0].argument: not supported`),
 * unknown keys at the top level or in an entry (named), and the Kubernetes
 * keys cellsched does not implement (`extenders: not supported`,
 * hardPodAffinitySymmetricWeight, alwaysCheckAllPredicates). `json` is
 * borrowed and need not be NUL-terminated; `out` is written only on
 * success. */
int cs_policy_parse(const char *json, size_t len, cs_policy *out, cs_error *err);

/* cs_policy_parse on the contents of the file at `path`. Every error starts
 * with the path: a missing file is CS_ENOTFOUND and one that cannot be read
 * CS_EIO, each with strerror; a file above 1 MiB is CS_ETOOBIG. `path` is borrowed; `out` is written only on
 * success. */
int cs_policy_load(const char *path, cs_policy *out, cs_error *err);

/* A scheduler's --policy argument: a preset name, else the path of a Policy
 * file (a file named like a preset is reached as "./spread"). `arg` is
 * borrowed; `out` is written only on success. */
int cs_policy_resolve(const char *arg, cs_policy *out, cs_error *err);

/* ---- scores ------------------------------------------------------------------ */

/* The resource priorities of a machine with capacity `cap` and allocation
 * `alloc` if it took a task requesting `req`, each 0..10 as in Kubernetes
 * with requested = alloc + req:
 *   least_requested  mean over cpu and mem of (cap - requested) * 10 / cap
 *   most_requested   mean over cpu and mem of requested * 10 / cap
 *   balanced         10 - |requested_cpu / cap_cpu - requested_mem / cap_mem| * 10
 * A resource with zero capacity or requested beyond capacity scores 0 (in
 * least and most requested), and balanced is 0 when either fraction reaches
 * 1, as in Kubernetes. All three arguments are borrowed and must not be
 * NULL; amounts lie in [0, CS_RES_MAX] (record.h). */
double cs_policy_least_requested(const cs_res *cap, const cs_res *alloc, const cs_res *req);
double cs_policy_most_requested(const cs_res *cap, const cs_res *alloc, const cs_res *req);
double cs_policy_balanced(const cs_res *cap, const cs_res *alloc, const cs_res *req);

/* TaintTolerationPriority: 10 * (max_bad - bad) / max_bad, where `bad` is
 * the number of the machine's PreferNoSchedule taints the task does not
 * tolerate and `max_bad` the largest such number over the machines being
 * scored (Kubernetes' ComputeTaintTolerationPriority, reversed and
 * normalised); 10 everywhere when max_bad is 0. */
double cs_policy_taint_toleration(uint32_t bad, uint32_t max_bad);

/* SelectorSpreadPriority: 10 * (max_here - here) / max_here, where `here`
 * is the number of the job's tasks on this machine and `max_here` the
 * largest such number over the machines being scored; 10 everywhere when
 * the job has no task yet (max_here 0). A `here` above `max_here` scores 0. */
double cs_policy_spreading(uint32_t here, uint32_t max_here);

/* NodeAffinityPriority: 10 * matched / max_matched, where `matched` is the
 * sum of the weights of the soft attribute and hostname constraints this
 * machine satisfies and `max_matched` the largest sum over the machines
 * being scored; 0 when max_matched is 0. Clamped to 0..10. */
double cs_policy_node_affinity(double matched, double max_matched);

/* InterPodAffinityPriority: 10 * (raw - lo) / (hi - lo), where `raw` is this
 * machine's soft affinity count minus its soft anti-affinity count and
 * lo/hi the smallest and largest raw over the machines being scored. As in
 * Kubernetes the range always includes 0 (lo is taken as min(lo, 0), hi as
 * max(hi, 0)), so a machine that neither attracts nor repels sits between
 * the two; 0 when the range is empty. Clamped to 0..10. */
double cs_policy_job_affinity(double raw, double lo, double hi);

/* Write the machine-only scores (least and most requested, balanced, equal =
 * 1) into their slots of `scores`; the other slots (spreading and the two
 * affinities, which need the other machines) are left as they were. The
 * cs_res arguments are borrowed; `scores` is caller storage. */
void cs_policy_resource_scores(const cs_res *cap, const cs_res *alloc, const cs_res *req,
                               double scores[CS_PRIO_COUNT]);

/* The weighted sum of `scores` by the policy's weights: sum over i of
 * weights[i] * scores[i]. Slots with weight 0 are not read, so a caller
 * need not compute unused priorities. Both arguments are borrowed. */
double cs_policy_combine(const cs_policy *p, const double scores[CS_PRIO_COUNT]);

/* cs_policy_combine over the machine-only scores alone
 * (cs_policy_resource_scores): what a machine scores before spreading and
 * affinities are added. All arguments are borrowed. */
double cs_policy_score_resources(const cs_policy *p, const cs_res *cap, const cs_res *alloc,
                                 const cs_res *req);

#endif
