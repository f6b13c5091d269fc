/* health.h — the health checks of running tasks (a job's `health` option,
 * cellstate/jobopts.h), with Marathon's meaning:
 *
 *   - each check runs every interval_ms, the first right after the task
 *     started; a run that takes longer than timeout_ms failed;
 *   - COMMAND: `/bin/sh -c command` in the task's directory with the task's
 *     environment, exit 0 = healthy; TCP: a connect to 127.0.0.1:PORT<i>
 *     succeeds; HTTP: `GET path HTTP/1.1` to 127.0.0.1:PORT<i> answers a
 *     status in 200..399 (only the status line is read);
 *   - a failure within grace_ms of the task's start does not count, until
 *     the check's first success (which ends the grace period);
 *   - a task is healthy when every check's latest result is healthy, and
 *     unhealthy when any check's latest result is a counted failure;
 *   - max_failures consecutive counted failures of one check (0 = never)
 *     condemn the task: whoever watches it kills it and reports it failed
 *     with the reason given here.
 *
 * One checker (ag_health) serves every task of an agent from one thread of
 * its own: sockets are non-blocking and multiplexed with poll(2), COMMAND
 * checks are child processes watched through pidfds, and every run has a
 * deadline. So a slow or hung check delays neither the agent's loop nor
 * any other check. The checker only records results; the agent's loop
 * reads them (ag_health_get) when it looks at its tasks, so no callback
 * ever crosses from this thread into the loop's locks.
 */
#ifndef AG_HEALTH_H
#define AG_HEALTH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent/loop.h"
#include "cellstate/jobopts.h"

typedef struct ag_health ag_health;

/* Start the checker's thread. On success *out is the caller's:
 * ag_health_close. CS_ENOMEM or CS_EIO (thread, eventfd) naming what failed. */
int ag_health_open(ag_health **out, cs_error *err);

/* Stop the thread, kill the process groups of COMMAND checks still
 * running, reap them and free everything. NULL is allowed. */
void ag_health_close(ag_health *h);

/* What a task's checks need. Everything is borrowed for the call only. */
typedef struct ag_health_target {
    cs_id id;
    uint32_t attempt;
    const cs_health *checks;
    uint32_t nchecks;         /* 1..CS_HEALTH_MAX */
    const uint16_t *ports;    /* the task's ports: PORT0.. */
    uint32_t nports;
    const char *dir;          /* COMMAND checks run here: the task's sandbox */
    const char *env;          /* their environment: NUL-separated KEY=VALUE entries */
    size_t envlen;            /* bytes of env */
    int64_t started_ms;       /* when the task started (cs_clock_now_ms clock): grace counts from it */
    uid_t uid;                /* COMMAND checks run as the task's user (isolate.h): a */
    gid_t gid;                /* check is the task's code, never root's unless it is */
    const char *cgroups;      /* and in its cgroups (one directory a line; NULL: none), */
                              /* counted against its memory and processes as the task */
} ag_health_target;

/* Begin checking the task (id, attempt); everything in `t` is copied. The
 * first run of each check is due at once. Watching a task already watched
 * replaces nothing and returns CS_OK. CS_EINVAL for a target without
 * checks or with more than CS_HEALTH_MAX, CS_ENOMEM. */
int ag_health_watch(ag_health *h, const ag_health_target *t, cs_error *err);

/* Stop checking the task: its runs in flight are abandoned (a COMMAND
 * check's process group is killed). Unknown tasks are ignored. */
void ag_health_unwatch(ag_health *h, cs_id id, uint32_t attempt);

/* The latest verdict on a watched task. */
typedef struct ag_health_status {
    ag_health_state state;       /* UNKNOWN until every check has a result that counts */
    bool kill;                   /* a check failed max_failures consecutive times */
    char reason[AG_REASON_MAX];  /* when kill: why, naming the check */
} ag_health_status;

/* Copy the verdict on (id, attempt) into *out; false when the task is not
 * watched. */
bool ag_health_get(ag_health *h, cs_id id, uint32_t attempt, ag_health_status *out);

/* "health check N (HTTP /path on port P)", "(TCP on port P)" or
 * "(COMMAND text)", N counting from 1, into out[0..size). `ports` may lack
 * the check's port_index: the text then says so. Shared by the simulator
 * so that simulated failures read like real ones. */
void ag_health_describe(const cs_health *c, uint32_t number, const uint16_t *ports,
                        uint32_t nports, char *out, size_t size);

/* The reason a task is killed for its health: "<desc> failed N
 * consecutive times: <last failure>", into out[0..size); desc is
 * ag_health_describe's text. */
void ag_health_kill_reason(const char *desc, uint32_t failures, const char *last, char *out,
                           size_t size);

#endif
