/* record.h — the cell's data model: machines, jobs and tasks, and their
 * msgpack encoding.
 *
 * These are the records the store keeps and every process exchanges. Each
 * carries `version`, the cell version at which it last changed, so that a
 * reader holding version V knows which records are newer than its copy.
 *
 * Encoding: one msgpack array per record, fields in a fixed order (listed in
 * docs/design.md). The encoding of a given record is canonical (the same
 * struct always gives the same bytes), which the byte-for-byte replay
 * property relies on.
 *
 * Decoded records borrow: every string and array in a decoded struct lives in
 * the cs_arena passed to the decoder, until that arena is reset.
 */
#ifndef CS_RECORD_H
#define CS_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "cellstate/arena.h"
#include "cellstate/error.h"

/* Bumped whenever a record layout changes; a store written with another
 * version is refused at open (CS_ESCHEMA). 4: the job's `surge`; 5: the
 * job's `ended` (and its states finished and failed), the machine's `admin`,
 * `drain_deadline`, `log_url` and `taints`. */
#define CS_SCHEMA_VERSION 5

typedef uint64_t cs_id;

/* A task's id is its job's id and its index: job << 20 | index. Tasks of one
 * job are then adjacent in the store, and a job's tasks are one range scan. */
#define CS_TASK_INDEX_BITS 20
#define CS_TASK_INDEX_MAX ((1u << CS_TASK_INDEX_BITS) - 1)
#define CS_JOB_ID_MAX ((UINT64_C(1) << (64 - CS_TASK_INDEX_BITS)) - 1)
static inline cs_id cs_task_id(cs_id job, uint32_t index)
{
    return (job << CS_TASK_INDEX_BITS) | index;
}
static inline cs_id cs_task_job(cs_id task) { return task >> CS_TASK_INDEX_BITS; }
static inline uint32_t cs_task_index(cs_id task) { return (uint32_t)(task & CS_TASK_INDEX_MAX); }

/* Resources: cpu in millicores, memory and disk in MiB. Each amount lies in
 * [0, CS_RES_MAX] so that sums over a machine's tasks never overflow. */
typedef struct cs_res {
    int64_t cpu;
    int64_t mem;
    int64_t disk;
} cs_res;
#define CS_RES_MAX (INT64_C(1) << 40)

/* Limits on what a record may hold; inputs beyond them are refused with
 * CS_EINVAL rather than truncated. */
#define CS_NAME_MAX 255        /* machine and job names */
#define CS_ATTR_MAX 64         /* attributes per machine */
#define CS_ATTR_LEN_MAX 255    /* attribute key or value */
#define CS_PORTS_PER_TASK_MAX 64
#define CS_CONSTRAINT_MAX 64
#define CS_CMD_MAX 65536
#define CS_EXTRA_MAX 65536
#define CS_REASON_MAX 1024
#define CS_NOTE_MAX 1024       /* a scheduler's note on a job */
#define CS_URL_MAX 255         /* an agent's log service address */
#define CS_TAINT_MAX 32        /* taints per machine */

typedef struct cs_attr {
    const char *key;
    const char *value;
} cs_attr;

/* A machine's taint, with Kubernetes' meaning: a task that does not
 * tolerate it (cellstate/jobopts.h, cs_toleration) is never placed there
 * (NoSchedule), placed there only when nothing better fits
 * (PreferNoSchedule), or neither placed nor kept there (NoExecute). */
typedef enum cs_taint_effect {
    CS_TAINT_NO_SCHEDULE = 0,
    CS_TAINT_PREFER_NO_SCHEDULE = 1,
    CS_TAINT_NO_EXECUTE = 2,
    CS_TAINT_EFFECT_COUNT
} cs_taint_effect;

typedef struct cs_taint {
    const char *key;   /* non-empty */
    const char *value; /* may be "" */
    uint8_t effect;    /* cs_taint_effect */
} cs_taint;

typedef enum cs_machine_state {
    CS_MACHINE_UP = 0,
    CS_MACHINE_DRAINING = 1, /* keeps its tasks, takes no new ones */
    CS_MACHINE_DOWN = 2,
    CS_MACHINE_STATE_COUNT
} cs_machine_state;

/* What the operator says about new placements on a machine (cellctl
 * cordon, drain, uncordon), apart from `state`, which is the machine's
 * liveness as its agent and the heartbeat monitor see it: a cordon
 * outlives the agent's restarts and re-registrations. */
typedef enum cs_machine_admin {
    CS_ADMIN_ACTIVE = 0,   /* takes new placements (when up) */
    CS_ADMIN_CORDONED = 1, /* keeps its tasks, takes no new ones */
    CS_ADMIN_DRAINING = 2, /* cordoned, and its tasks move off: service tasks within their
                            * update strategy, batch ones at the drain deadline */
    CS_ADMIN_COUNT
} cs_machine_admin;

typedef struct cs_machine {
    cs_id id;
    const char *name;
    cs_attr *attrs; /* sorted by key, keys unique */
    uint32_t nattrs;
    cs_res capacity;
    uint16_t port_lo, port_hi; /* dynamic ports come from [lo, hi]; 0,0 = none */
    cs_taint *taints;          /* sorted by key then effect; (key, effect) unique */
    uint32_t ntaints;
    /* Derived by the store from the tasks placed here (cellstate/alloc.h);
     * not part of the stored record. */
    cs_res allocated;          /* sum of the resources of the tasks placed here */
    uint16_t *ports;           /* ports in use, sorted ascending, unique */
    uint32_t nports;
    uint32_t ntasks;           /* tasks placed here (assigned or running) */
    uint8_t state;             /* cs_machine_state */
    /* Changes with every change to the machine (its record, or a task placed
     * or ended there): Omega's coarse-grained conflict detection compares it
     * with the value a scheduler saw. The store presents the cell version of
     * the machine's last change, raised to the log floor (see store.h).
     * Derived, like the allocation. */
    uint64_t seq;
    uint64_t version;
    /* The version of the record itself (its registration or the
     * operator's last word), below `version` when a placement came after:
     * what says that its name, attributes and taints may have changed.
     * Derived like `seq`; 0 where unknown (a record off the wire). */
    uint64_t record_version;
    /* The operator's word and the agent's log service (schema 5). */
    uint8_t admin;           /* cs_machine_admin */
    uint64_t drain_deadline; /* draining: wall-clock ms since the epoch when its batch tasks
                              * are killed and placed again; 0 = none (not draining, drained
                              * without one, or the deadline already acted) */
    const char *log_url;     /* where its agent serves task output (task.logs), "" = nowhere */
} cs_machine;

typedef enum cs_job_kind { CS_JOB_BATCH = 0, CS_JOB_SERVICE = 1, CS_JOB_KIND_COUNT } cs_job_kind;
/* A job is active until it ends: killed (by an operator), or, for a batch
 * job whose every task has ended for good, finished (all finished) or failed
 * (some failed past their retries). A service job ends only when killed. */
typedef enum cs_job_state {
    CS_JOB_ACTIVE = 0,
    CS_JOB_KILLED = 1,
    CS_JOB_FINISHED = 2,
    CS_JOB_FAILED = 3,
    CS_JOB_STATE_COUNT
} cs_job_state;

/* A placement constraint, kept as data: the store does not interpret it; the
 * schedulers do (schedulers/). `value` may be "" for operators without one. */
typedef struct cs_constraint {
    const char *field;
    const char *op;
    const char *value;
    bool soft; /* a preference that scores, not a filter */
} cs_constraint;

typedef struct cs_job {
    cs_id id;
    const char *name;
    uint8_t kind;  /* cs_job_kind */
    uint8_t state; /* cs_job_state */
    int32_t priority;
    uint32_t count;     /* tasks wanted */
    cs_res res;         /* per task */
    uint16_t *ports;    /* per task: 0 = any port from the machine's range */
    uint32_t nports;
    cs_constraint *constraints;
    uint32_t nconstraints;
    const char *cmd;
    /* Scheduler-interpreted options (health check, update strategy, volumes,
     * environment) as one msgpack map; opaque to the store, part of the spec. */
    const uint8_t *extra;
    uint32_t extra_len;
    uint64_t spec_hash; /* XXH3 of what its tasks run: see cs_job_spec_hash */
    uint64_t version;
    /* Not part of the spec (nor of spec_hash): */
    uint64_t submitted; /* wall-clock ms since the epoch when the server accepted it; the
                         * writer stamps it into the logged command, so replay keeps it */
    const char *note;   /* a scheduler's latest word on why its tasks wait ("" = none) */
    /* Extra task slots of a rolling update (service jobs only): the job's
     * tasks are indexes 0 .. count + surge - 1. Set by job.surge; kept by
     * scale and update. */
    uint32_t surge;
    /* Wall-clock ms since the epoch when the job ended (killed, finished or
     * failed), 0 while active; stamped by the writer into the logged command
     * as `submitted` is. Job garbage collection counts from it. */
    uint64_t ended;
} cs_job;

typedef enum cs_task_state {
    CS_TASK_PENDING = 0,
    CS_TASK_ASSIGNED = 1,
    CS_TASK_RUNNING = 2,
    CS_TASK_FINISHED = 3,
    CS_TASK_FAILED = 4,
    CS_TASK_KILLED = 5,
    CS_TASK_LOST = 6,
    CS_TASK_PREEMPTED = 7,
    CS_TASK_STATE_COUNT
} cs_task_state;

/* Whether a task in this state holds resources on its machine. */
static inline bool cs_task_state_placed(uint8_t s)
{
    return s == CS_TASK_ASSIGNED || s == CS_TASK_RUNNING;
}
/* Whether a task in this state has ended for good. */
static inline bool cs_task_state_final(uint8_t s)
{
    return s == CS_TASK_FINISHED || s == CS_TASK_FAILED || s == CS_TASK_KILLED ||
           s == CS_TASK_LOST;
}

/* What the agent's health checks last said of a running task. Meaningful
 * only while the task runs: a new placement starts at UNKNOWN. */
typedef enum cs_task_health {
    CS_TASK_HEALTH_UNKNOWN = 0, /* no check has answered yet, or the job has none */
    CS_TASK_HEALTH_HEALTHY = 1,
    CS_TASK_HEALTH_UNHEALTHY = 2,
    CS_TASK_HEALTH_COUNT
} cs_task_health;

typedef struct cs_task {
    cs_id id;
    cs_id job;
    uint32_t index;
    uint8_t state;    /* cs_task_state */
    uint8_t last_end; /* how its previous placement ended (a cs_task_state), or PENDING if none */
    cs_id machine;    /* 0 while not placed */
    cs_res res;
    uint16_t *ports; /* the ports it holds on its machine */
    uint32_t nports;
    uint32_t attempts; /* placements so far */
    int32_t exit_code;
    const char *reason; /* why it last failed or ended, as reported ("" if none) */
    uint64_t version;
    uint8_t health; /* cs_task_health */
    /* The spec_hash of its job when it was last placed: a placed task whose
     * spec differs from its job's now runs an old version (rolling update). */
    uint64_t spec;
} cs_task;

const char *cs_machine_state_name(uint8_t s);
const char *cs_machine_admin_name(uint8_t a);
/* "NoSchedule", "PreferNoSchedule", "NoExecute" (Kubernetes' names). */
const char *cs_taint_effect_name(uint8_t e);
int cs_taint_effect_parse(const char *name, uint8_t *out);

/* A taint as the agent's --taint flag and cellctl write it: "key=value:Effect"
 * or "key:Effect" (value ""). The key and value are copied into `a`. A
 * missing or unknown effect, an empty key, or a key or value longer than
 * CS_ATTR_LEN_MAX is CS_EINVAL naming the text. */
int cs_taint_parse(const char *text, cs_arena *a, cs_taint *out, cs_error *err);

/* Sort `t[0..n)` by key then effect (the order a machine keeps). */
void cs_taints_sort(cs_taint *t, uint32_t n);
const char *cs_job_kind_name(uint8_t k);
const char *cs_job_state_name(uint8_t s);
const char *cs_task_state_name(uint8_t s);
const char *cs_task_health_name(uint8_t h);
/* Parse a name back; CS_EINVAL when unknown. */
int cs_machine_state_parse(const char *name, uint8_t *out);
int cs_machine_admin_parse(const char *name, uint8_t *out);
int cs_task_state_parse(const char *name, uint8_t *out);
int cs_job_kind_parse(const char *name, uint8_t *out);
int cs_job_state_parse(const char *name, uint8_t *out);
int cs_task_health_parse(const char *name, uint8_t *out);

/* Pack a C string (NULL packs as "") as a msgpack str. CS_ENOMEM on failure. */
int cs_pack_str(msgpack_packer *pk, const char *s);

/* Encoding: appends the record to `buf` (caller-owned). CS_ENOMEM on failure. */
int cs_machine_encode(const cs_machine *m, msgpack_sbuffer *buf);
int cs_job_encode(const cs_job *j, msgpack_sbuffer *buf);
int cs_task_encode(const cs_task *t, msgpack_sbuffer *buf);

/* Decoding: strict. A record of the wrong shape or type, truncated or with
 * trailing bytes, is CS_ECORRUPT with a message naming the field. Strings and
 * arrays of `out` live in `a`. */
int cs_machine_decode(const void *data, size_t len, cs_arena *a, cs_machine *out, cs_error *err);
int cs_job_decode(const void *data, size_t len, cs_arena *a, cs_job *out, cs_error *err);
int cs_task_decode(const void *data, size_t len, cs_arena *a, cs_task *out, cs_error *err);

/* Validation of what a client asks for (names, limits, resources, ports).
 * CS_EINVAL with a message naming the field. */
int cs_res_validate(const cs_res *r, const char *what, cs_error *err);
int cs_machine_validate(const cs_machine *m, cs_error *err);
int cs_job_validate(const cs_job *j, cs_error *err);

/* XXH3-64 of what the job's tasks run: name, kind, priority, resources,
 * ports, constraints, cmd and extra, in that order, msgpack-encoded — the
 * job's canonical spec without `count`. A task placed under another hash
 * runs an old version (a rolling update replaces it), so whatever does not
 * change a task is left out: count (a scale is no new version), surge,
 * ids, state, version, submitted and note. */
int cs_job_spec_hash(const cs_job *j, uint64_t *out);

/* Deep copies into `a`: the copy shares nothing with the source. */
int cs_machine_copy(const cs_machine *src, cs_arena *a, cs_machine *dst);
int cs_job_copy(const cs_job *src, cs_arena *a, cs_job *dst);

/* Resource arithmetic. */
static inline void cs_res_add(cs_res *a, const cs_res *b)
{
    a->cpu += b->cpu;
    a->mem += b->mem;
    a->disk += b->disk;
}
static inline void cs_res_sub(cs_res *a, const cs_res *b)
{
    a->cpu -= b->cpu;
    a->mem -= b->mem;
    a->disk -= b->disk;
}

/* Ports in use: binary search in a machine's sorted list. */
bool cs_ports_contains(const uint16_t *ports, uint32_t n, uint16_t port);

#endif
