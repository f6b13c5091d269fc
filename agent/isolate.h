/* isolate.h — each task held to what it asked for: its own cgroup (memory,
 * CPU, process count), an unprivileged user, and a work directory of its
 * own outside the agent's state.
 *
 * Why: without it a task that asked for 16 MiB used 400 MiB, two busy loops
 * under a 0.1-core request ran uncapped, tasks ran as root inside the
 * agent's own cgroup and could rewrite the agent's state (issue 17 §4).
 * Borg, Kubernetes (the kubelet's cgroup per pod) and Mesos (its cgroups
 * isolator) all hold tasks this way.
 *
 * Two halves, one per process:
 *
 *   - the agent, at start (ag_iso_open): chooses the isolation level from
 *     what the machine allows and --isolation asks — cgroup v2 (a unified
 *     hierarchy at /sys/fs/cgroup with cgroup.controllers), cgroup v1 (a
 *     memory controller at /sys/fs/cgroup/memory; cpu, pids and freezer
 *     used when mounted), rlimits (RLIMIT_AS and RLIMIT_NPROC; process-group
 *     kills) or none — proving a cgroup level by making and removing a
 *     cgroup; resolves the task user; makes the task root. For each task it
 *     writes the file `isolation` into the task's directory (runner.h):
 *     level, user, sandbox, limits and the parent cgroups.
 *
 *   - the supervisor, per task (ag_jail_*): reads that file, makes the
 *     task's cgroups (`task-<supervisor pid>` under each parent: unique on
 *     the machine while the supervisor lives, whichever agent or cell it
 *     serves) with their limits and the sandbox owned by the task user;
 *     the task's process enters them before exec; at the end every process
 *     in the cgroup is killed (cgroup.kill, else freeze, SIGKILL each pid,
 *     thaw), the memory controller says whether the kernel killed for the
 *     limit, and the cgroups are removed.
 *
 * A task directory without `isolation` (begun by an agent from before this
 * module) runs as it did: as the supervisor's user, in the task directory.
 *
 * Why nested under the agent's own cgroup and not at the root of each
 * hierarchy: the agent's limits (a systemd unit's, a container's) then hold
 * its tasks too. On v2 the "no internal processes" rule forbids enabling
 * controllers for children of a cgroup that has processes, so the agent
 * moves itself into a leaf `agent` of its cgroup first (systemd's
 * delegation does the same).
 */
#ifndef AG_ISOLATE_H
#define AG_ISOLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cellstate/error.h"
#include "cellstate/record.h"

typedef enum ag_iso_level {
    AG_ISO_NONE = 0,      /* no limits: only the user and the sandbox */
    AG_ISO_RLIMIT = 1,    /* RLIMIT_AS, RLIMIT_NPROC; process-group and /proc-walk kills */
    AG_ISO_CGROUP_V1 = 2,
    AG_ISO_CGROUP_V2 = 3,
    AG_ISO_AUTO = 4       /* --isolation auto: the best the machine allows */
} ag_iso_level;

/* "none", "rlimit", "cgroup-v1", "cgroup-v2", "auto". */
const char *ag_iso_level_name(ag_iso_level l);
/* --isolation's words: auto, cgroup (v2 or v1, whichever is mounted),
 * rlimit, none. CS_EINVAL naming them otherwise. *out is AG_ISO_CGROUP_V1
 * for "cgroup" (ag_iso_open takes it as "either version"). */
int ag_iso_parse(const char *word, ag_iso_level *out, cs_error *err);

/* The machine attribute that shows a machine's isolation level
 * (`cellctl get machines`, column ISOLATION), as Kubernetes' node labels. */
#define AG_ISO_ATTR "cellsched.io/isolation"

/* The default of --task-pids-max: far above what a service needs, far
 * below what exhausts the machine's pid space (a fork bomb). */
#define AG_ISO_PIDS_DEFAULT 4096u

/* The user the agent makes (useradd, when root) for its tasks by default;
 * `nobody` when it cannot. */
#define AG_ISO_DEFAULT_USER "cellsched-task"

#define AG_ISO_CGROUPS_MAX 4 /* v1: memory, cpu, pids, freezer */
#define AG_ISO_PATH_MAX 3200

typedef struct ag_iso_opts {
    ag_iso_level want;     /* AUTO, CGROUP_V1 for "cgroup", RLIMIT, NONE */
    const char *task_user; /* NULL: the default (above) */
    const char *task_root; /* where sandboxes are made; borrowed */
    uint32_t pids_max;     /* per task */
} ag_iso_opts;

typedef struct ag_iso ag_iso;

/* Choose the level, resolve the user (making AG_ISO_DEFAULT_USER when
 * root and it is absent) and make the task root (mode 0711: a task
 * reaches its own sandbox, lists no other). `note` gets the one line the
 * agent prints at start: the level, why a fallback was taken, the user.
 * Call before the process starts threads (on v2 the agent may move itself
 * into a leaf cgroup). CS_ESTATE when --isolation cgroup was asked and no
 * cgroup can be made, CS_EINVAL for an unknown user; the reason in err.
 * On success *out is the caller's: ag_iso_close, which also removes the
 * parent cgroups when no task cgroup is left in them. */
int ag_iso_open(const ag_iso_opts *o, ag_iso **out, char *note, size_t notesize, cs_error *err);
void ag_iso_close(ag_iso *iso);

ag_iso_level ag_iso_level_of(const ag_iso *iso);
/* The task user's uid (the agent's own when it cannot switch). */
uid_t ag_iso_uid(const ag_iso *iso);

/* The task user's name (borrowed from iso). */
const char *ag_iso_user(const ag_iso *iso);
/* The sandbox of placement `name` ("<task id>-<attempt>") into out.
 * CS_EINVAL when it does not fit. */
int ag_iso_sandbox(const ag_iso *iso, const char *name, char *out, size_t size, cs_error *err);

/* What one task asked for. */
typedef struct ag_iso_task {
    int64_t cpu_millis; /* the job's cpu request, millicores */
    int64_t mem_mib;    /* the job's memory request; 0 = no memory limit */
    bool cpu_hard;      /* a cap (cpu.max / cfs quota), else a share (cpu.weight / shares) */
} ag_iso_task;

/* The text of a task's `isolation` file for the placement named `name`
 * ("<task id>-<attempt>": its sandbox's name) into out. CS_EINVAL when it
 * does not fit. */
int ag_iso_task_file(const ag_iso *iso, const char *name, const ag_iso_task *t, char *out,
                     size_t size, cs_error *err);

/* ---- the supervisor's side -------------------------------------------------------------- */

/* One task's jail, from its `isolation` file. Plain data: the supervisor
 * forks with it. */
typedef struct ag_jail {
    ag_iso_level level;
    uid_t uid;
    gid_t gid;
    bool switch_user; /* uid differs from the supervisor's */
    int64_t mem_mib, cpu_millis;
    bool cpu_hard;
    uint32_t pids_max;
    char sandbox[AG_ISO_PATH_MAX];
    uint32_t nparents;
    char parent[AG_ISO_CGROUPS_MAX][AG_ISO_PATH_MAX];
    /* made by ag_jail_make: the task's cgroups (one per parent) */
    uint32_t ncg;
    char cg[AG_ISO_CGROUPS_MAX][AG_ISO_PATH_MAX];
    int sandbox_fd; /* open on the sandbox, for the task's fchdir; -1 none */
} ag_jail;

/* Parse an `isolation` file's text (borrowed). CS_EINVAL naming the line. */
int ag_jail_parse(const char *text, ag_jail *out, cs_error *err);

/* Make the sandbox (owned by the task user, mode 0700) and the task's
 * cgroups, named after `tag` (the supervisor's pid), with their limits. A
 * leftover cgroup of that name (a supervisor killed with SIGKILL whose pid
 * came round again) is emptied and reused. CS_EIO naming the file. */
int ag_jail_make(ag_jail *j, pid_t tag, cs_error *err);

/* In the task's process, between fork and exec: join the cgroups, set the
 * rlimits, enter the sandbox, become the task user. Returns 0, or an errno
 * with *stage naming the step that failed ("join cgroup", ...). Only
 * system calls (the supervisor is single-threaded, but keep it lean). */
int ag_jail_enter(const ag_jail *j, const char **stage);

/* Kill every process in the task's cgroups. *left is how many were still
 * there (0: empty). Nothing to do without cgroups (*left 0). */
void ag_jail_kill(const ag_jail *j, uint32_t *left);

/* Whether the kernel killed a process of the task for its memory limit
 * (v2 memory.events oom_kill; v1 memory.oom_control oom_kill, else
 * memory.failcnt with memory.max_usage_in_bytes at the limit). */
bool ag_jail_oom(const ag_jail *j);

/* Remove the task's cgroups (their processes are gone) and close the
 * sandbox's descriptor. The sandbox itself stays for the task's files
 * (removed with the task's directory: ag_jail_remove_sandbox). */
void ag_jail_release(ag_jail *j);

/* Remove the sandbox named by the `isolation` file of task directory
 * `taskdir`, as its owner (a task cannot make root delete through a link
 * it planted). Nothing when there is none. Callable from a threaded
 * process: the child only makes system calls and execs rm. */
void ag_jail_remove_sandbox(const char *taskdir);

#endif
