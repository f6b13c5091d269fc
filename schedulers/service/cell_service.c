/* cell_service.c — cell-service, the service scheduler.
 *
 * Takes every active service job and keeps its tasks running: a task that
 * failed (an unhealthy task is killed by its agent and reported failed),
 * finished or was lost with its machine goes back to pending and is placed
 * again; scale up and down are the cell's (job.scale) and show up as new
 * pending tasks or killed ones. Jobs with the `gang` option (or every job,
 * with --commit gang) are committed all-or-nothing. When nothing else fits,
 * a task may preempt lower-priority tasks in the same transaction (the
 * victims go back to pending and their scheduler places them again);
 * --no-preempt turns that off. Placement follows --policy, a Kubernetes
 * scheduler Policy file, or the --strategy preset. The loop — sync, decide,
 * commit, resync, park with a note — is sched.h's.
 *
 * Rolling updates: when a job's spec changes (job.update), its tasks of the
 * old version are restarted in place with the new one, keeping at least
 * ceil(N x minimumHealthCapacity) healthy and running at most
 * ceil(N x (1 + maximumOverCapacity)), with surge tasks for the room in
 * between (rollout.h decides; the loop applies it).
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
    return cs_sched_main(CS_SCHED_SERVICE, argc, argv, &cs_sched_service_hooks, &stop_flag, on_signal);
}
