/* kinds.c — the hooks of cell-batch and cell-service (see kinds.h). */
#include "schedulers/kinds.h"

#include <xxhash.h>

#include "cellstate/record.h"
#include "schedulers/rollout.h"

static bool batch_takes(const cs_sched *s, const cs_cjob *j)
{
    const cs_sched_opts *o = cs_sched_options(s);
    if (j->job.kind != CS_JOB_BATCH)
        return false;
    if (o->instances <= 1)
        return true;
    uint8_t le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (uint8_t)(j->job.id >> (8 * i));
    return XXH3_64bits(le, sizeof le) % o->instances == o->instance;
}

static bool batch_again(const cs_cjob *j, const cs_ctask *t)
{
    /* attempts counts placements: the first run and max_retries more. A
     * lost task did not fail: it always runs again. */
    return (t->state == CS_TASK_FAILED && t->attempts <= j->opts.max_retries) ||
           t->state == CS_TASK_LOST;
}

static bool service_takes(const cs_sched *s, const cs_cjob *j)
{
    (void)s;
    return j->job.kind == CS_JOB_SERVICE;
}

static bool service_again(const cs_cjob *j, const cs_ctask *t)
{
    /* A service runs until it is killed or scaled down: any other end
     * (failed, finished, lost) is replaced. */
    (void)j;
    (void)t;
    return true;
}

/* A batch task holds its machine alike placed or running: the copy need
 * not hear of starts, half of all task changes at scale. */
const cs_sched_hooks cs_sched_batch_hooks = {
    .takes = batch_takes, .again = batch_again, .omit_running = true, .ends_jobs = true};

const cs_sched_hooks cs_sched_service_hooks = {
    .takes = service_takes, .again = service_again, .rollout = cs_rollout_job, .backoff = true};

static const cs_sched_hooks *all_per_job(const cs_cjob *j)
{
    return j->job.kind == CS_JOB_SERVICE ? &cs_sched_service_hooks : &cs_sched_batch_hooks;
}

static bool all_takes(const cs_sched *s, const cs_cjob *j)
{
    return service_takes(s, j) || batch_takes(s, j);
}

/* again, rollout, ends_jobs and backoff are per job (per_job); again is
 * still set, for whatever reads the set's own fields. */
static bool all_again(const cs_cjob *j, const cs_ctask *t)
{
    return all_per_job(j)->again(j, t);
}

const cs_sched_hooks cs_sched_all_hooks = {
    .takes = all_takes, .again = all_again, .per_job = all_per_job};
