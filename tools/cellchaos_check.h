/* cellchaos_check.h — the checker of a chaos run: what a replicated cell
 * must never do while its processes are killed, seen from outside as any
 * client sees it.
 *
 *   lost              an acknowledged write (a submit, a kill) absent from
 *                     a replica at the end, once that replica has reached
 *                     the version the write was acknowledged at. A reply is
 *                     sent only once the entry is committed on a majority
 *                     and applied (issue 14), so nothing acknowledged may
 *                     ever go missing.
 *   overcommits       at a version some replica served, a machine whose
 *                     placed tasks (assigned or running) ask for more cpu,
 *                     memory or disk than it has, or whose allocation as the
 *                     store derives it does: Omega's first invariant, which
 *                     the leader's commit validation must keep whatever
 *                     stale copy a scheduler committed from.
 *   double_placements a task placed on two machines: the same placement
 *                     (task id and attempt, which every placement increments)
 *                     seen on two different machines, at any two versions on
 *                     any replicas. A commit retried after a leader change
 *                     must be answered from its idempotency record, never
 *                     applied twice.
 *   service recovery  after a machine loss, the seconds until the service
 *                     job has its N tasks running again, from the first
 *                     version that showed fewer to the first that shows N.
 *
 * One watcher thread per replica syncs the cell from it over and over (the
 * `sync` message, incrementally from the version it holds, as a scheduler's
 * copy does) and checks every version it receives. Every function may be
 * called from any thread.
 */
#ifndef CC_CHECK_H
#define CC_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cellstate/error.h"
#include "cellstate/record.h"

typedef struct cc_check cc_check;

/* A checker of the replicas at urls[0..n) (copied). On success *out is the
 * caller's: cc_check_free. */
int cc_check_new(const char (*urls)[64], uint32_t n, cc_check **out, cs_error *err);

/* Stops the watchers if running and frees everything. NULL is allowed. */
void cc_check_free(cc_check *k);

/* The service job whose recovery is measured, and its task count. Call
 * before cc_check_start. */
void cc_check_service(cc_check *k, cs_id job, uint32_t count);

/* Start one watcher per replica; cc_check_stop ends them. */
int cc_check_start(cc_check *k, cs_error *err);
void cc_check_stop(cc_check *k);

/* Record an acknowledged submit of job `id` named `name` (copied), and an
 * acknowledged kill; `version` is the cell version the reply carried. At
 * the end the job must be there under that name, and a killed one must no
 * longer be active (a kill of a job that had finished leaves it finished).
 * CS_ENOMEM; cc_check_ack_kill: CS_ENOTFOUND for a job never acknowledged. */
int cc_check_ack_submit(cc_check *k, cs_id id, const char *name, uint64_t version);
int cc_check_ack_kill(cc_check *k, cs_id id, uint64_t version);

/* A random acknowledged job that no acknowledged kill has named yet, the
 * service job excepted, for the load to kill; false when there is none. */
bool cc_check_pick_live(cc_check *k, uint64_t *rng, cs_id *out);

/* What the run found. */
typedef struct cc_result {
    uint64_t acknowledged;   /* acknowledged writes: submits + kills */
    uint64_t acked_submits, acked_kills;
    uint64_t lost;           /* acknowledged writes absent from some replica */
    uint64_t overcommits;    /* (replica, version, machine) observations */
    uint64_t double_placements;
    uint64_t versions;       /* versions checked, over every watcher */
    uint64_t resyncs;        /* full syncs after a version went backwards or a compaction */
    uint64_t regressions;    /* replies whose version was below the one held */
    uint64_t alloc_mismatch; /* observations where a machine's derived allocation differed
                              * from the sum of its placed tasks (not an overcommit) */
    uint32_t unread;         /* replicas whose jobs could not be read at the end */
    uint32_t losses;         /* service recoveries measured */
    uint32_t unrecovered;    /* a drop below N still open when the final wait ended */
    double recovery_max_s, recovery_p50_s; /* NaN when none */
    uint32_t nreplicas;
    uint64_t applied[8];     /* each replica's applied index at the end (0: no answer) */
    uint64_t version[8];     /* each replica's cell version at the end (0: no answer) */
    uint64_t lost_on[8];     /* acknowledged writes each replica lacks */
    char first_violation[256]; /* the first overcommit, double placement or loss, in words */
} cc_result;

/* The end of the run, once the load has stopped: wait up to `wait_ms` for
 * every replica to serve at least the highest acknowledged version and for
 * the service to be back to N (the watchers still running), stop the
 * watchers, then read each replica's jobs and count the acknowledged
 * writes it lacks; fill *out with everything above. A replica that cannot
 * be read counts in `unread`, not in `lost`. */
int cc_check_finish(cc_check *k, uint32_t wait_ms, cc_result *out, cs_error *err);

#endif
