/* cell_batch.c — cell-batch, the batch scheduler.
 *
 * Takes the active batch jobs whose share it owns — with --instances N, the
 * jobs whose XXH3-64 of the id (its 8 bytes, little-endian) modulo N is
 * --instance — and places their pending tasks with incremental commits by
 * default (Omega: "incremental transactions should be the default"). Failed
 * tasks are placed again while their placements so far are within the job's
 * max_retries + 1; lost tasks (their machine went down) always. A job whose
 * tasks have all ended, none to be retried, ends: finished or failed. The loop
 * itself — sync, decide, commit, resync, park with a note — is sched.h's.
 */
#include <signal.h>

#include <xxhash.h>

#include "cellstate/record.h"
#include "schedulers/sched.h"

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

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

int main(int argc, char **argv)
{
    /* A batch task holds its machine alike placed or running: the copy
     * need not hear of starts, half of all task changes at scale. */
    static const cs_sched_hooks hooks = {
        .takes = batch_takes, .again = batch_again, .omit_running = true, .ends_jobs = true};
    return cs_sched_main(CS_SCHED_BATCH, argc, argv, &hooks, &stop_flag, on_signal);
}
