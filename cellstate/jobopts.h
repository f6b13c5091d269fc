/* jobopts.h — a job's scheduler and agent options: health checks, rolling
 * update limits, host volumes, environment, gang and global placement,
 * retries, restart back-off, kill grace period, and the run time of
 * simulated tasks.
 *
 * The store treats them as opaque bytes (cs_job.extra, the `options` field
 * of a job spec on the wire); this module is the one place that gives those
 * bytes a meaning, so that cellctl (which writes them), the agents (health
 * checks, environment, kill grace, simulated run time) and the schedulers
 * (update strategy, volumes, gang, global, retries) read the same thing.
 *
 * Encoding: one msgpack map with keys in the fixed order of the struct below,
 * each key present only when its value differs from the default, so that a
 * job with default options has empty options and the encoding of a given
 * struct is canonical (the spec hash depends on it). Decoding is strict: an
 * unknown key, a wrong type or an out-of-range value is CS_EINVAL with a
 * message naming the key. docs/protocol.md lists the keys.
 */
#ifndef CS_JOBOPTS_H
#define CS_JOBOPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "cellstate/arena.h"
#include "cellstate/error.h"
#include "cellstate/record.h"

#define CS_HEALTH_MAX 8      /* health checks per job */
#define CS_VOLUME_MAX 32     /* host volumes per job */
#define CS_ENV_MAX 128       /* environment variables per job */
#define CS_OPT_STR_MAX 4096  /* any string in the options */

/* Health check protocols, with Marathon's meaning: COMMAND runs a shell
 * command in the task's directory (exit 0 = healthy); TCP connects to the
 * task's port; HTTP sends GET path to the task's port (2xx or 3xx = healthy). */
typedef enum cs_health_proto {
    CS_HEALTH_COMMAND = 0,
    CS_HEALTH_TCP = 1,
    CS_HEALTH_HTTP = 2,
    CS_HEALTH_PROTO_COUNT
} cs_health_proto;

/* Marathon's defaults (gracePeriodSeconds 300, intervalSeconds 60,
 * timeoutSeconds 20, maxConsecutiveFailures 3). */
#define CS_HEALTH_DEFAULT_GRACE_MS 300000u
#define CS_HEALTH_DEFAULT_INTERVAL_MS 60000u
#define CS_HEALTH_DEFAULT_TIMEOUT_MS 20000u
#define CS_HEALTH_DEFAULT_MAX_FAILURES 3u

typedef struct cs_health {
    uint8_t proto;         /* cs_health_proto */
    const char *command;   /* COMMAND: run with /bin/sh -c; "" otherwise */
    const char *path;      /* HTTP: request path, default "/"; "" otherwise */
    uint32_t port_index;   /* TCP, HTTP: which of the task's ports (PORT<i>) */
    uint32_t grace_ms;     /* failures during this time after start do not count */
    uint32_t interval_ms;  /* between checks; > 0 */
    uint32_t timeout_ms;   /* a check that takes longer failed; > 0 */
    uint32_t max_failures; /* consecutive failures before the task is killed; 0 = never */
} cs_health;

/* A host path a task uses. Two tasks on one machine never share a path when
 * either writes it (Kubernetes' NoDiskConflict). */
typedef struct cs_volume {
    const char *path; /* absolute */
    bool rw;
} cs_volume;

/* A toleration (Kubernetes' meaning): it matches a machine's taint when
 * its effect is the taint's (or any), its key is the taint's (or, with
 * Exists and no key, any), and with Equal its value is the taint's. A task
 * goes only where it tolerates every NoSchedule and NoExecute taint. */
typedef enum cs_toleration_op { CS_TOL_EQUAL = 0, CS_TOL_EXISTS = 1, CS_TOL_OP_COUNT } cs_toleration_op;

#define CS_TOLERATION_MAX 32 /* tolerations per job */
#define CS_TOL_ANY_EFFECT CS_TAINT_EFFECT_COUNT

typedef struct cs_toleration {
    const char *key;   /* "" with Exists: every key */
    const char *value; /* Equal: the taint's value ("" matches an empty one) */
    uint8_t op;        /* cs_toleration_op */
    uint8_t effect;    /* a cs_taint_effect, or CS_TOL_ANY_EFFECT */
    /* NoExecute only: the task may stay this long after the taint appears
     * (evicted then); absent = for ever. */
    bool has_seconds;
    uint32_t seconds;
} cs_toleration;

/* Permille, so that the canonical encoding holds no floating point. */
#define CS_PERMILLE 1000u

typedef struct cs_jobopts {
    cs_attr *env;  /* set in the task's environment; sorted by key, unique */
    uint32_t nenv;
    cs_health *health;
    uint32_t nhealth;
    /* Rolling update (Marathon's upgradeStrategy): keep at least
     * ceil(N x min_health) healthy and at most ceil(N x (1 + max_over))
     * running. Both in permille; defaults 1000 and 1000. */
    uint32_t min_health_pm;
    uint32_t max_over_pm;
    cs_volume *volumes; /* sorted by path, unique */
    uint32_t nvolumes;
    bool gang;            /* all-or-nothing placement of the job's tasks */
    bool global;          /* one task on every machine that fits; count is ignored */
    uint32_t max_retries; /* a failed batch task is placed again up to this many times; default 3 */
    uint32_t kill_grace_ms; /* SIGTERM, then SIGKILL after this; default 5000 */
    uint32_t duration_ms;   /* simulated agents: how long a task runs; 0 = the agent's default */
    /* Restart back-off of a service task that keeps ending (Marathon's
     * backoffSeconds, backoffFactor, maxLaunchDelaySeconds): the n-th
     * restart in a row waits backoff x factor^(n-1), at most max_delay. */
    uint32_t backoff_ms;        /* default 1000 */
    uint32_t backoff_factor_pm; /* permille, >= 1000; default 1150 */
    uint32_t max_delay_ms;      /* default 3,600,000 (an hour) */
    cs_toleration *tolerations; /* in the order given */
    uint32_t ntolerations;
    /* The task's cpu request as a hard cap (Kubernetes' limits: cgroup
     * cpu.max / CFS quota) rather than a share of contended CPU (its
     * requests: cpu.weight / cpu.shares, the default). Last, and absent
     * when false, so that every earlier job's options bytes are unchanged. */
    bool cpu_hard;
} cs_jobopts;

#define CS_JOBOPTS_DEFAULT_MAX_RETRIES 3u
#define CS_JOBOPTS_DEFAULT_KILL_GRACE_MS 5000u
/* Marathon's defaults (its app schema, ../shared/testdata/marathon/app.json). */
#define CS_JOBOPTS_DEFAULT_BACKOFF_MS 1000u
#define CS_JOBOPTS_DEFAULT_BACKOFF_FACTOR_PM 1150u
#define CS_JOBOPTS_DEFAULT_MAX_DELAY_MS 3600000u

/* The defaults (no env, no health checks, no volumes, ...). */
void cs_jobopts_init(cs_jobopts *o);

/* A health check with Marathon's defaults for `proto`. */
void cs_health_init(cs_health *h, uint8_t proto);

const char *cs_health_proto_name(uint8_t proto);
/* "COMMAND", "TCP", "HTTP" (also "MESOS_TCP", "MESOS_HTTP", "MESOS_HTTPS"
 * and "HTTPS" are refused: CS_EINVAL). */
int cs_health_proto_parse(const char *name, uint8_t *out);

/* Whether `t` tolerates the taint (key, value, effect): Kubernetes'
 * ToleratesTaint. Both strings are borrowed. */
bool cs_toleration_matches(const cs_toleration *t, const char *key, const char *value,
                           uint8_t effect);

const char *cs_toleration_op_name(uint8_t op);

/* Append the canonical encoding to `buf` (caller-owned); nothing at all when
 * every option has its default. Checks ranges first (CS_EINVAL naming the
 * option) and sorts env and volumes in place (so `o` may be reordered).
 * CS_EINVAL or CS_ENOMEM. */
int cs_jobopts_encode(cs_jobopts *o, msgpack_sbuffer *buf, cs_error *err);

/* Decode options bytes (len 0 = the defaults). Strings and arrays of `out`
 * live in `a`. CS_EINVAL with a message naming the key. */
int cs_jobopts_decode(const void *data, size_t len, cs_arena *a, cs_jobopts *out,
                      cs_error *err);

/* The options of a job: cs_jobopts_decode of j->extra. */
int cs_job_opts(const cs_job *j, cs_arena *a, cs_jobopts *out, cs_error *err);

#endif
