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

#include "schedulers/kinds.h"

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

int main(int argc, char **argv)
{
    return cs_sched_main(CS_SCHED_BATCH, argc, argv, &cs_sched_batch_hooks, &stop_flag, on_signal);
}
