/* readmsg.h — the codecs of the reads answered from a snapshot
 * (docs/protocol.md §5.11 get.machines, §5.12 get.jobs, §5.13 get.tasks,
 * §5.14 get.job, §5.15 stats, §5.28 audit). The sync request and reply are
 * proto/sync.h's; the version announcement (§9) is cs_version_reply
 * (proto/msg.h). Conventions: proto/msg.h.
 *
 * The server streams its list replies from a snapshot, counting first
 * (msgpack puts an array's length before its elements), so each reply has
 * a begin function that writes everything up to the elements, which the
 * caller then packs with cs_pack_machine / cs_pack_job / cs_pack_task;
 * the whole-reply encoders are built from the same pieces.
 */
#ifndef CS_READMSG_H
#define CS_READMSG_H

#include "proto/jobmsg.h"
#include "proto/msg.h"

/* ---- the empty request of get.machines (11), get.jobs (12), stats (15) ---- */
int cs_empty_req_encode(msgpack_packer *pk);
/* A map; its keys are ignored (unknown keys always are). */
int cs_empty_req_decode(const msgpack_object *o, cs_error *err);

/* ---- list replies: {"version": uint, key: [record map, ...]} ----------------- */
int cs_list_reply_begin(msgpack_packer *pk, uint64_t version, const char *key, uint32_t n);

typedef struct cs_machines_reply {
    uint64_t version;
    cs_machine *machines; /* decode: in the arena */
    uint32_t n;
} cs_machines_reply;
int cs_machines_reply_encode(msgpack_packer *pk, const cs_machines_reply *in);
/* "reply: field 'machines' is missing or not an array", or the record's
 * own error (cs_unpack_machine). */
int cs_machines_reply_decode(const msgpack_object *o, cs_machines_reply *out, cs_arena *a,
                             cs_error *err);

typedef struct cs_jobs_reply {
    uint64_t version;
    cs_job *jobs;
    uint32_t n;
} cs_jobs_reply;
int cs_jobs_reply_encode(msgpack_packer *pk, const cs_jobs_reply *in);
int cs_jobs_reply_decode(const msgpack_object *o, cs_jobs_reply *out, cs_arena *a,
                         cs_error *err);

/* get.tasks' reply, and the "tasks" value of get.job's. */
typedef struct cs_tasks_reply {
    uint64_t version;
    cs_task *tasks;
    uint32_t n;
} cs_tasks_reply;
int cs_tasks_reply_encode(msgpack_packer *pk, const cs_tasks_reply *in);
int cs_tasks_reply_decode(const msgpack_object *o, cs_tasks_reply *out, cs_arena *a,
                          cs_error *err);

/* ---- get.tasks (13): {"job"?: ref, "machine"?: ref, "state"?: name} -------- */
typedef struct cs_get_tasks_req {
    bool has_job, has_machine;
    cs_ref job, machine;
    int state; /* cs_task_state, or -1: any */
} cs_get_tasks_req;
int cs_get_tasks_req_encode(msgpack_packer *pk, const cs_get_tasks_req *in);
/* "field 'state': unknown task state 'x'" is CS_EINVAL. */
int cs_get_tasks_req_decode(const msgpack_object *o, cs_get_tasks_req *out, cs_arena *a,
                            cs_error *err);

/* ---- get.job (14): the request is cs_job_ref_req (proto/jobmsg.h) ------------
 * Reply {"job": job map, "tasks": {"version", "tasks": [...]}}: the
 * begin function writes through the key "tasks"; the caller then packs a
 * tasks reply. */
/* `redact`: the job's environment hidden (cs_pack_job_as). */
int cs_get_job_reply_begin(msgpack_packer *pk, const cs_job *job, bool redact);
typedef struct cs_get_job_reply {
    cs_job job;
    cs_tasks_reply tasks;
} cs_get_job_reply;
int cs_get_job_reply_encode(msgpack_packer *pk, const cs_get_job_reply *in);
int cs_get_job_reply_decode(const msgpack_object *o, cs_get_job_reply *out, cs_arena *a,
                            cs_error *err);

/* ---- stats (15) ---------------------------------------------------------------- */
typedef struct cs_server_counters {
    uint64_t requests, errors, writes, commits, commits_conflicted, claims, claims_committed;
    uint64_t queued, parked_polls;
    /* The bytes of requests held by the server's workers now
     * (--max-inflight-bytes); 0 from a server before it sent it. */
    uint64_t inflight_bytes;
} cs_server_counters;

/* One entry of "schedulers" (§5.15). Decoded `metrics` points into the
 * body: a map of name → number, each of the msgpack kind it was sent as. */
typedef struct cs_stats_sched {
    const char *name, *kind, *warning; /* warning "" when none */
    uint64_t age_ms;
    const msgpack_object *metrics;
} cs_stats_sched;

typedef struct cs_stats_reply {
    uint64_t version;
    uint64_t machines, machines_up, jobs, jobs_active;
    uint64_t tasks[CS_TASK_STATE_COUNT]; /* per task state */
    cs_res capacity, allocated;
    cs_server_counters server;
    uint64_t workers;
    cs_stats_sched *scheds; /* decode: in the arena */
    uint32_t nscheds;
} cs_stats_reply;
/* Everything up to and including the key "schedulers": the server then
 * packs the array from its table under its lock (cs_sched_table_pack,
 * proto/schedreport.h), whose entries are those cs_stats_reply_encode
 * writes. */
int cs_stats_reply_head(msgpack_packer *pk, const cs_stats_reply *in);
int cs_stats_reply_encode(msgpack_packer *pk, const cs_stats_reply *in);
int cs_stats_reply_decode(const msgpack_object *o, cs_stats_reply *out, cs_arena *a,
                          cs_error *err);

/* ---- audit (30): the server's audit log of accepted writes -------------------------
 * Request {"since"?: ms, "limit"?: n, "who"?: text, "action"?: text}; reply
 * {"entries": [{"time", "who", "action", "target", "version"}, ...], "more":
 * bool}: the newest `limit` entries that match, oldest first, and whether
 * older ones matched too (docs/protocol.md §5.28, server/audit.h). */
#define CS_AUDIT_LIMIT_DEFAULT 100
#define CS_AUDIT_LIMIT_MAX 10000
/* The longest principal ("scheduler.batch:cell-batch"), action (a message
 * type's name) and target text an entry holds, in bytes. */
#define CS_AUDIT_WHO_MAX 95
#define CS_AUDIT_ACTION_MAX 31
#define CS_AUDIT_TARGET_MAX 255

typedef struct cs_audit_req {
    uint64_t since;     /* wall-clock ms: entries at or after it; 0: any */
    uint32_t limit;     /* 1 .. CS_AUDIT_LIMIT_MAX (default CS_AUDIT_LIMIT_DEFAULT) */
    const char *who;    /* NULL: anyone; else cs_audit_who_matches */
    const char *action; /* NULL: any; else exactly this action */
} cs_audit_req;
int cs_audit_req_encode(msgpack_packer *pk, const cs_audit_req *in);
/* "field 'limit' ..." for a limit that is not a uint in 1..10000, "field
 * 'who' is longer than 95 bytes", and so on (CS_EPROTO or CS_EINVAL). */
int cs_audit_req_decode(const msgpack_object *o, cs_audit_req *out, cs_arena *a, cs_error *err);

/* Whether principal `who` matches the filter `want` (both only read): the
 * same text, or `want` is a prefix of `who` that ends where a part of it
 * ends, so that "agent" and "agent:" match "agent:m1" and "scheduler"
 * matches "scheduler.batch:cell-batch", but "agent:m" does not match
 * "agent:m1". */
bool cs_audit_who_matches(const char *who, const char *want);

typedef struct cs_audit_entry {
    uint64_t time_ms; /* wall clock, ms since the epoch */
    const char *who, *action, *target;
    uint64_t version; /* the cell version after the write */
} cs_audit_entry;

typedef struct cs_audit_reply {
    cs_audit_entry *entries; /* decode: in the arena */
    uint32_t n;
    bool more;
} cs_audit_reply;
int cs_audit_reply_encode(msgpack_packer *pk, const cs_audit_reply *in);
int cs_audit_reply_decode(const msgpack_object *o, cs_audit_reply *out, cs_arena *a,
                          cs_error *err);

#endif
