/* proctree.h — every process a task started, found and signalled, even the
 * ones that left its process group or its session (`setsid`).
 *
 * A task's supervisor (runner.h) makes itself a child subreaper
 * (PR_SET_CHILD_SUBREAPER): a process of the task whose parent dies is
 * re-parented to the supervisor, not to init, so every process the task
 * ever started and that still lives is a descendant of the supervisor,
 * whatever session or group it put itself in. Killing the task is then:
 * signal every descendant found by a walk of /proc (ppid chains), reap,
 * and walk again until none is left. Nothing escapes by forking during a
 * walk: a child forked after the walk read /proc is a descendant at the
 * next walk, and a process killed with SIGKILL forks no more.
 *
 * Where the task has a cgroup (isolate.h) the supervisor kills that first,
 * atomically, and the walk then finds only zombies; the walk is what ends
 * a task where there is none: it needs neither root nor a delegated cgroup
 * subtree (unprivileged agents and CI runners have no writable cgroup),
 * and covers exactly "every process the task started": a descendant can
 * leave a group or a session but not its ancestry. What neither catches is
 * work a task asks another daemon to run (at, systemd-run).
 *
 * When the kernel refuses the subreaper (before Linux 3.4), the supervisor
 * says so once in its log and falls back to killing the task's process
 * group, as before: a child that called setsid then survives.
 */
#ifndef AG_PROCTREE_H
#define AG_PROCTREE_H

#include <stdint.h>
#include <sys/types.h>

#include "cellstate/error.h"

/* Make the calling process a child subreaper. CS_EIO (with err) when the
 * kernel refuses. */
int ag_proctree_subreaper(cs_error *err);

/* Send `sig` to every live descendant of `root` (not to root itself;
 * zombies are skipped: they are already dead). *count is how many were
 * signalled. A process that ends during the walk is skipped. CS_EIO when
 * /proc cannot be read, CS_ENOMEM. */
int ag_proctree_signal(pid_t root, int sig, uint32_t *count, cs_error *err);

#endif
