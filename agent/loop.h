/* loop.h — one machine's conversation with cellstated: register, heartbeat,
 * long-poll the assignments, reconcile them with the tasks it runs, and
 * report each task's state.
 *
 * The machine is driven by two nng aios on two REQ contexts of a socket the
 * caller owns: the *poll* aio keeps one long poll outstanding (protocol.md
 * §8); the *control* aio sends registrations, reports and heartbeats one at
 * a time and otherwise sleeps until the next thing is due, on a clock
 * (clock.h) the process's machines share. No thread is owned by a
 * machine, so one process can drive thousands of them (the simulator) over
 * one socket.
 *
 * A replicated cell: the socket dials every replica of the list
 * (proto/servers.h cs_servers_dial), and nng's REQ sends each request on
 * one connected pipe, in turn — so a process's machines spread their polls
 * over the replicas, each served where it lands. Each context keeps
 * resends off, so req0 fails a request whose pipe closes (NNG_ECONNRESET) instead
 * of sending it again: a poll parked on a replica that dies ends at once,
 * and its retry (after the back-off below) goes to a replica still
 * connected; a replica that is stopped, not dead, costs the request's
 * timeout. An answer of CS_ENOTLEADER or CS_EUNAVAIL is retried the same
 * way. Why cs_client (proto/client.h) does it differently: proto/client.c.
 *
 * What "running a task" means is the backend's business (ag_backend): real
 * processes under a supervisor (runner.h) or timers (sim.h). The loop only
 * decides when to start, kill, report and forget, from the poll replies and
 * the report replies:
 *
 *   - a listed (task, attempt) that is not known locally is started;
 *   - a known task that a complete poll reply no longer lists is revoked:
 *     SIGTERM, SIGKILL after the grace period, and never reported again;
 *   - reports are retried until the server answers; CS_ESTATE (the
 *     placement is stale) revokes the task and drops the report;
 *   - each change of a running task's health (as the backend's checks see
 *     it) is reported as `running` with `health`; a task its checks
 *     condemn is killed like a revoked one, and then reported `failed`
 *     with the checks' reason;
 *   - a heartbeat answered "down", or CS_ENOTFOUND, registers again.
 */
#ifndef AG_LOOP_H
#define AG_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include <nng/nng.h>

#include "proto/clock.h"
#include "cellstate/error.h"
#include "cellstate/jobopts.h"
#include "cellstate/record.h"

/* How far a task has got, as the backend sees it. */
typedef enum ag_phase {
    AG_STARTING = 0, /* asked to start, not yet known to run */
    AG_RUNNING = 1,  /* its process (or timer) runs */
    AG_ENDED = 2     /* exited, was killed, or could not start */
} ag_phase;

#define AG_REASON_MAX 256

/* A task's health as its checks last judged it (health.h). UNKNOWN: no
 * checks, or not every check has a result that counts yet. */
typedef enum ag_health_state {
    AG_HEALTH_UNKNOWN = 0,
    AG_HEALTH_HEALTHY = 1,
    AG_HEALTH_UNHEALTHY = 2
} ag_health_state;

/* One placement of a task on this machine: the (task id, attempt) pair is
 * the key, since the same task placed again is a new attempt. Owned by the
 * machine; backends fill the fields marked "backend". */
typedef struct ag_task {
    /* First, what the loop reads on each pass over a machine's tasks
     * (tick, reports, lookups): a simulator walks hundreds of thousands of
     * tasks, and each cache line a step touches is a miss. */
    struct ag_task *next;
    cs_id id;
    uint32_t attempt;
    ag_phase phase;            /* backend */
    int64_t wake_at;           /* backend: when refresh should next look (ms, monotonic); 0 = no need */
    int64_t retry_at;          /* next report attempt after a failure */
    int64_t kill_at;           /* when revoked: SIGKILL due (0 = SIGTERM not sent yet) */
    uint64_t done_version;     /* forget once a poll at or after this version omits it */
    int64_t end_at;            /* backend (simulation): when it finishes */
    int64_t sick_at;           /* backend (simulation): when its checks condemn it, 0 never */
    bool started;              /* backend: a process (or timer) did run, so "running" is true */
    bool revoked;              /* no longer ours: kill it, report nothing more */
    bool killed;               /* SIGKILL sent */
    bool running_acked;        /* the server took "running" */
    bool done;                 /* nothing more to report: final report taken, or dropped */
    bool listed;               /* in the last poll reply */
    bool health_kill;          /* backend: its checks condemned it: kill it, report failed */
    bool ok;                   /* backend, when ENDED: exited 0 */
    ag_health_state health;    /* backend: what its checks say now */
    ag_health_state health_acked; /* the health the server last took */
    /* The rest is read when something happens to the task. */
    uint32_t index;
    uint32_t grace_ms;         /* SIGTERM to SIGKILL */
    uint32_t backoff_ms;
    int32_t exit_code;         /* backend, when ENDED */
    bool watched;              /* backend (processes): handed to the health checker */
    int pgid;                  /* backend (processes): the task's process group, 0 unknown */
    char job[CS_NAME_MAX + 1];
    char reason[AG_REASON_MAX];/* backend, when ENDED and not ok */
    char health_reason[AG_REASON_MAX]; /* backend, when health_kill: the failed report's reason */
} ag_task;

/* One entry of a poll reply, decoded. Strings live in the reply's arena,
 * valid during the start call only. `bad` is non-NULL when the task could
 * be identified but its job could not be read: the backend reports the
 * start as failed with this reason instead of running anything. */
typedef struct ag_assign {
    cs_id id;
    uint32_t attempt;
    uint32_t index;
    const char *job;
    const char *machine; /* the name this agent registered its machine under */
    const char *cmd;
    const uint16_t *ports;
    uint32_t nports;
    cs_res res;          /* what the task asked for: its limits (isolate.h) */
    cs_jobopts opts;
    const char *bad;
} ag_assign;

/* What runs tasks. Every function is called with the machine's lock held,
 * so it must not block for long (a fork, a few small files). */
typedef struct ag_backend {
    void *ctx;
    /* Begin running `a` as `t` (id, attempt, index, job and grace are
     * filled). A (task, attempt) begun by an earlier incarnation of the
     * agent is adopted, never started again. Sets t->phase; a failure to
     * start is AG_ENDED with a reason, not an error. */
    void (*start)(void *ctx, ag_task *t, const ag_assign *a, int64_t now);
    /* Look at the world again: started? exited? healthy? Updates phase,
     * wake_at, health, and health_kill with health_reason. */
    void (*refresh)(void *ctx, ag_task *t, int64_t now);
    /* Deliver SIGTERM or SIGKILL to the task. false: nothing to signal
     * yet (its process is still being started); the loop asks again. */
    bool (*signal)(void *ctx, ag_task *t, int sig);
    /* The machine forgets the task: make that durable (no-op allowed). */
    void (*forget)(void *ctx, ag_task *t);
} ag_backend;

typedef struct ag_config {
    const char *name;         /* copied */
    cs_res capacity;
    uint16_t port_lo, port_hi;
    const cs_attr *attrs;     /* borrowed for the machine's lifetime */
    uint32_t nattrs;
    const cs_taint *taints;   /* borrowed for the machine's lifetime; sorted (cs_taints_sort) */
    uint32_t ntaints;
    uint32_t heartbeat_ms;    /* between heartbeats */
    uint32_t poll_wait_ms;    /* long poll wait */
    uint32_t call_timeout_ms; /* a request without an answer after this is retried */
    uint32_t tick_ms;         /* how often running tasks are looked at */
    uint32_t kill_grace_ms;   /* overrides the job's kill_grace_ms when > 0 */
    bool quiet;               /* log only warnings, and not "unreachable" (simulated machines) */
    const char *log_url;      /* where this agent serves its tasks' output (logserve.h),
                               * advertised in machine.register; borrowed like attrs;
                               * NULL = none */
    const char *token;        /* the credentials every request carries (cellstated
                               * --auth-tokens, docs/security.md); borrowed like
                               * attrs; NULL = none */
} ag_config;

/* Defaults: heartbeat 3 s, poll wait 25 s, call timeout 5 s, tick 100 ms. */
void ag_config_default(ag_config *c);

typedef struct ag_machine ag_machine;

/* A machine on `sock` whose loops pause on `clock` (both borrowed: the
 * caller closes and frees them after ag_machine_free). `cfg` is copied
 * except attrs and taints; `be` is copied, its ctx borrowed. Does not start talking:
 * ag_machine_start. On success *out is the caller's: ag_machine_stop, then
 * ag_machine_free. */
int ag_machine_new(nng_socket sock, cs_clock *clock, const ag_config *cfg, const ag_backend *be,
                   ag_machine **out, cs_error *err);

/* Add a task adopted from an earlier incarnation (before start). `t` is
 * copied; its phase and exit come from the backend. */
int ag_machine_adopt(ag_machine *m, const ag_task *t, cs_error *err);

/* Register and start the loops. */
void ag_machine_start(ag_machine *m);

/* Stop talking: no new requests, outstanding ones cancelled. Tasks are left
 * as they are (they belong to the cell). Waits for the callbacks. */
void ag_machine_stop(ag_machine *m);
void ag_machine_free(ag_machine *m);

typedef struct ag_counts {
    bool registered;
    uint32_t running;  /* tasks known and not ended */
    uint64_t started;  /* tasks started since the machine was made */
    uint64_t reported; /* final reports taken by the server */
} ag_counts;
void ag_machine_counts(ag_machine *m, ag_counts *out);

#endif
