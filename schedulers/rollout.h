/* rollout.h — rolling updates of service jobs: which old tasks to replace,
 * and how many surge tasks to run meanwhile.
 *
 * A job's update (job.update) changes its spec_hash; a placed task whose
 * `spec` differs runs an old version. Marathon's upgradeStrategy bounds the
 * replacement (../shared/DOMAIN.md): keep at least
 *     minHealthy = ceil(N x minimumHealthCapacity)
 * tasks healthy, and run at most
 *     maxCap = ceil(N x (1 + maximumOverCapacity))
 * where N is the job's count. Both fractions are the job's options
 * (cs_jobopts.min_health_pm, max_over_pm; defaults 1 and 1).
 *
 * A task is identified by its job and slot index, so an old task is
 * replaced *in place*: its slot is released to pending and placed again
 * with the new spec (a restart, protocol §7.1), in the same transaction
 * when it fits. Room beyond N comes from the job's `surge`: slots N ..
 * N + surge - 1, created and ended by job.surge and kept in the store, so
 * that a restarted scheduler finishes a rollout from the cell alone. One
 * decision, from the synced copy, per job and pass:
 *
 *   1. old tasks in slots < N that are not healthy are restarted: that
 *      costs no healthy task;
 *   2. healthy old ones are restarted while the healthy tasks left are at
 *      least minHealthy;
 *   3. when a healthy old task remains that step 2 could not restart at
 *      all, surge grows to min(maxCap - N, old tasks): so N + surge <=
 *      maxCap, and the placed tasks never exceed maxCap;
 *   4. once no slot < N runs an old task and those slots alone hold
 *      minHealthy healthy tasks, surge goes back to 0 (its tasks end).
 *
 * Marathon's edge: with minimumHealthCapacity 1 and maximumOverCapacity 0
 * (minHealthy = maxCap = N) nothing could ever be replaced; as Marathon
 * does, one healthy old task is then restarted anyway, once every task is
 * healthy again: the job runs one below its minimum while it starts.
 *
 * A drain (cellctl drain) reuses the same steps: cs_rollout_job counts a
 * task on a draining machine as old, so it is replaced, within the same
 * minimum healthy and surge, by one placed elsewhere (a draining machine
 * takes no new task).
 *
 * Healthy: running, and `healthy` by the agent's checks; a job without
 * health checks counts running as healthy (Marathon's rule; the agent
 * reports no health for it).
 *
 * cs_rollout_decide is a pure function of the slots it is given (no copy,
 * clock or I/O), so that tests drive it through random histories;
 * cs_rollout_job reads a job of the copy into it.
 */
#ifndef CS_ROLLOUT_H
#define CS_ROLLOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cellstate/error.h"
#include "schedulers/cellcopy.h"

/* One task slot as the decision sees it. */
typedef struct cs_rollout_slot {
    uint8_t state;  /* cs_task_state; CS_TASK_STATE_COUNT when the slot has no task */
    uint8_t health; /* cs_task_health */
    bool old;       /* placed, with another spec than the job's, or on a draining
                     * machine (cs_rollout_job): either way it must be replaced */
} cs_rollout_slot;

/* A job as the decision sees it. */
typedef struct cs_rollout_in {
    uint32_t count;         /* N */
    uint32_t surge;         /* the job's surge now */
    uint32_t min_health_pm; /* minimumHealthCapacity in permille, <= 1000 */
    uint32_t max_over_pm;   /* maximumOverCapacity in permille, <= 1000 */
    bool checks;            /* the job has health checks */
    const cs_rollout_slot *slots; /* count + surge slots, by index */
} cs_rollout_in;

/* What to do now. */
typedef struct cs_rollout_step {
    bool active;          /* a rollout is under way: an old task in a slot < N, or surge > 0 */
    uint32_t min_healthy; /* ceil(N x min_health) */
    uint32_t max_cap;     /* ceil(N x (1 + max_over)) */
    uint32_t old;         /* slots < N running an old task */
    uint32_t updated;     /* slots < N placed with the job's spec */
    uint32_t healthy;     /* healthy tasks over every slot, before this step */
    uint32_t surge;       /* the surge the job should have (== in->surge: no change) */
    bool below_min;       /* Marathon's edge: this step goes one below min_healthy */
    uint32_t nrestart;    /* slots < N to restart, in `restart` */
    uint32_t *restart;    /* slot indexes, not-healthy ones first (the caller's storage) */
} cs_rollout_step;

/* Decide one step for `in`. `restart` is the caller's, with room for
 * in->count indexes; out->restart points to it. CS_EINVAL (nothing
 * decided) when a fraction exceeds 1000 permille, or slots are missing. */
int cs_rollout_decide(const cs_rollout_in *in, uint32_t *restart, cs_rollout_step *out,
                      cs_error *err);

/* The job's note for a step under way, e.g. "rolling update: 3/5 updated,
 * 4 healthy (min 5), surge 2"; "" when the step is not active. Returns what
 * snprintf would. */
int cs_rollout_note(const cs_rollout_step *st, char *buf, size_t size);

/* Whether `note` is one that cs_rollout_note wrote: a finished rollout
 * clears its own note and no other. */
bool cs_rollout_is_note(const char *note);

/* Scratch storage for cs_rollout_job: grows as jobs need; zero it to start,
 * cs_rollout_free to end. */
typedef struct cs_rollout {
    cs_rollout_slot *slots;
    uint32_t *restart;
    size_t cap;
    cs_rollout_step step; /* the last decision; its restart points into this */
} cs_rollout;

void cs_rollout_free(cs_rollout *r);

/* Decide for job `j` of copy `c` (both borrowed, only read) into r->step.
 * A job that is not an active service job, or cannot be read (`bad`), or
 * whose options say nothing can move, gets an inactive step. A global job
 * runs no surge (its slots are pinned to machines): its rollout is the
 * one-at-a-time edge. CS_ENOMEM. */
int cs_rollout_job(const cs_copy *c, const cs_cjob *j, cs_rollout *r, cs_error *err);

#endif
