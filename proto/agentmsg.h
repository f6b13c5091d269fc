/* agentmsg.h — the codecs of what an agent says and hears (docs/protocol.md
 * §5.1 machine.register, §5.2 machine.heartbeat, §5.9 poll, §5.10
 * task.status, §12 task.logs). Conventions (ownership, errors, defaults):
 * proto/msg.h.
 *
 * Used by cell-agent (agent/loop.c, agent/logserve.c), by cellstated's
 * feed (poll, heartbeat) and writer (register, task.status), by cellctl
 * logs and by cellbench poll.
 */
#ifndef CS_AGENTMSG_H
#define CS_AGENTMSG_H

#include "proto/msg.h"
#include "txn/ops.h"

/* ---- machine.register (1) ---------------------------------------------------
 * The request is the machine's spec: name, log_url (only when not ""),
 * taints, capacity, port_lo, port_hi, attrs, and state (only when not up).
 * Decoded by cs_unpack_machine_spec (proto/proto.h), which validates it.
 * Reply: cs_id_reply (proto/msg.h). */
int cs_register_req_encode(msgpack_packer *pk, const cs_machine *spec);
int cs_register_req_decode(const msgpack_object *o, cs_machine *out, cs_arena *a, cs_error *err);

/* ---- machine.heartbeat (2) ----------------------------------------------- */
typedef struct cs_heartbeat_req {
    cs_ref machine;
} cs_heartbeat_req;
int cs_heartbeat_req_encode(msgpack_packer *pk, const cs_heartbeat_req *in);
int cs_heartbeat_req_decode(const msgpack_object *o, cs_heartbeat_req *out, cs_arena *a,
                            cs_error *err);

/* {"machine": id, "state": machine state name, "version": uint}. A state
 * name the decoder does not know is CS_EINVAL. */
typedef struct cs_heartbeat_reply {
    cs_id machine;
    uint8_t state; /* cs_machine_state: down means "register again" */
    uint64_t version;
} cs_heartbeat_reply;
int cs_heartbeat_reply_encode(msgpack_packer *pk, const cs_heartbeat_reply *in);
int cs_heartbeat_reply_decode(const msgpack_object *o, cs_heartbeat_reply *out, cs_arena *a,
                              cs_error *err);

/* ---- poll (9) ---------------------------------------------------------------
 * {"machine", "since", "wait_ms"} and, when asked, "jobs": "once" (the
 * compact reply), "known": "short" (short entries; needs "once") and
 * "min_index" (only when nonzero). The decoder checks in the server's
 * order: since, wait_ms, min_index, jobs, known, machine. */
typedef struct cs_poll_req {
    cs_ref machine;
    uint64_t since;
    uint32_t wait_ms;
    bool jobs_once;
    bool known_short;
    /* Read-your-writes on a replicated cell: answer once the replica asked
     * has applied this Raft log index; 0 = no wait. */
    uint64_t min_index;
} cs_poll_req;
int cs_poll_req_encode(msgpack_packer *pk, const cs_poll_req *in);
int cs_poll_req_decode(const msgpack_object *o, cs_poll_req *out, cs_arena *a, cs_error *err);

/* The reply, written piece by piece: the server streams it from a
 * snapshot (the count of each array first), so it has no whole-reply
 * struct to hand over.
 *   default form: cs_poll_reply_begin_each, then per task
 *                 cs_poll_entry_each_encode
 *   compact form: cs_poll_reply_begin_once, then njobs job maps
 *                 (cs_pack_job), cs_poll_reply_tasks, then per task
 *                 cs_poll_entry_short_encode or cs_poll_entry_full_encode.
 * cs_poll_reply_encode writes a whole reply from a cs_poll_out with these.
 * Every argument is only read (the job map's bytes are copied into the
 * packer); each returns CS_OK or CS_ENOMEM. */
int cs_poll_reply_begin_each(msgpack_packer *pk, uint64_t version, uint32_t ntasks);
/* {"task": t, "job": <job_map[0..job_len), one packed job map>} */
int cs_poll_entry_each_encode(msgpack_packer *pk, const cs_task *t, const void *job_map,
                              size_t job_len);
int cs_poll_reply_begin_once(msgpack_packer *pk, uint64_t version, uint32_t njobs);
int cs_poll_reply_tasks(msgpack_packer *pk, uint32_t ntasks);
/* [id, attempts] */
int cs_poll_entry_short_encode(msgpack_packer *pk, cs_id id, uint32_t attempts);
/* {"task": t, "job": t->job} */
int cs_poll_entry_full_encode(msgpack_packer *pk, const cs_task *t);

/* A whole reply as records (tests, simulators): `tasks[i]` goes short when
 * `shrt[i]` (shrt may be NULL: none). In the default form (!once) each
 * entry embeds the job of `jobs` with its task's job id (CS_ENOTFOUND when
 * none has it). All borrowed. */
typedef struct cs_poll_out {
    uint64_t version;
    bool once;
    const cs_job *jobs;
    uint32_t njobs;
    const cs_task *tasks;
    const bool *shrt;
    uint32_t ntasks;
} cs_poll_out;
int cs_poll_reply_encode(msgpack_packer *pk, const cs_poll_out *in);

/* A decoded reply. Agents read it as the protocol says (§5.9): an entry
 * that cannot be read is not an error of the whole reply but a BAD entry
 * with its reason, so that the others are still applied (and that reply
 * revokes nothing). Task and job maps are not decoded here: an agent
 * decodes only the entries of tasks it does not run yet (cs_unpack_task,
 * cs_unpack_job_spec), at most once per job — at C1M nearly every entry
 * names a task it already runs. The maps point into the decoded body. */
typedef enum cs_poll_kind {
    CS_POLL_FULL = 0,  /* {"task": map, "job": map or id} */
    CS_POLL_SHORT = 1, /* [id, attempts]: a task unchanged since the request's since */
    CS_POLL_BAD = 2,   /* unreadable: `bad` says why */
} cs_poll_kind;

typedef struct cs_poll_job {
    cs_id id;                  /* 0: no readable id (`bad` says why); matches no entry */
    const msgpack_object *map;
    const char *bad;
} cs_poll_job;

typedef struct cs_poll_entry {
    uint8_t kind;                  /* cs_poll_kind */
    cs_id id;                      /* FULL, SHORT */
    uint32_t attempts;             /* FULL, SHORT */
    cs_id job;                     /* FULL, compact form: the job id the entry names */
    int32_t job_index;             /* FULL, compact form: its index in jobs[]; else -1 */
    const msgpack_object *task;    /* FULL: the task map */
    const msgpack_object *job_map; /* FULL: the job map (jobs[job_index].map, or the one
                                    * embedded in a default-form entry: NULL when absent) */
    const char *bad;               /* BAD: the reason, in the arena */
} cs_poll_entry;

typedef struct cs_poll_reply {
    uint64_t version;
    bool compact; /* the reply has "jobs" (a server may ignore "jobs": "once") */
    cs_poll_job *jobs;
    uint32_t njobs;
    cs_poll_entry *tasks;
    uint32_t ntasks;
} cs_poll_reply;
/* CS_EPROTO for the reply's own shape ("poll reply: field 'tasks' is not
 * an array"); the entries' faults are BAD entries ("entry has no 'task'
 * map", "short entry is not [task id, attempts]", "task 5: job 99 is not
 * in the reply's 'jobs'"). CS_ENOMEM. */
int cs_poll_reply_decode(const msgpack_object *o, cs_poll_reply *out, cs_arena *a,
                         cs_error *err);

/* ---- task.status (10) -------------------------------------------------------
 * One report: task, attempt, state, then exit_code and reason unless the
 * state is running, then health unless unknown. The single form is one
 * report map; the batch form {"reports": [report, ...]} (at most
 * CS_REPORTS_MAX). */
int cs_report_encode(msgpack_packer *pk, const cs_task_report *r);
/* One report map: the server's checks and texts ("field 'state': unknown
 * task state 'x'", "field 'health' is 'unknown', not healthy or
 * unhealthy"). The reason lives in `a`. */
int cs_report_decode(const msgpack_object *o, cs_task_report *out, cs_arena *a, cs_error *err);

typedef struct cs_task_status_req {
    bool batch;              /* the batch form (else exactly one report) */
    cs_task_report *reports; /* encode: borrowed; decode: in the arena */
    uint32_t n;
    /* decode, batch form: each report's verdict, CS_OK or the code the
     * server answers for it, with errors[i] (in the arena) naming the
     * problem ("reports[4] is not a map"); NULL in the single form */
    int *codes;
    const char **errors;
} cs_task_status_req;
int cs_task_status_req_encode(msgpack_packer *pk, const cs_task_status_req *in);
/* The single form is refused whole by the report's own error; in the batch
 * form only a "reports" that is not an array of at most CS_REPORTS_MAX is
 * ("field 'reports' is not an array of at most 1024 reports"). */
int cs_task_status_req_decode(const msgpack_object *o, cs_task_status_req *out, cs_arena *a,
                              cs_error *err);

/* The batch form's reply: {"version", "results": [{"code", "message"}]}
 * (the single form's is cs_version_reply). A result that is not a map of
 * a code 0 .. CS_ECODE_MAX and a string message decodes as code CS_EPROTO,
 * message "task.status reply: results[i] is malformed". Messages live in
 * the arena. */
typedef struct cs_report_result {
    int code;
    const char *message;
} cs_report_result;
typedef struct cs_task_status_reply {
    uint64_t version;
    cs_report_result *results;
    uint32_t n;
} cs_task_status_reply;
int cs_task_status_reply_encode(msgpack_packer *pk, const cs_task_status_reply *in);
int cs_task_status_reply_decode(const msgpack_object *o, cs_task_status_reply *out, cs_arena *a,
                                cs_error *err);

/* ---- task.logs (22), served by each agent ---------------------------------- */
#define CS_LOGS_MAX (1u << 20)      /* bytes in one reply, at most */
#define CS_LOGS_DEFAULT (64u << 10) /* ... when the request says no "max" */

/* Encoded as task, attempt, stream, max, then tail when > 0 else offset. */
typedef struct cs_logs_req {
    cs_id task;
    uint32_t attempt;
    bool err_stream; /* stderr instead of stdout */
    uint64_t offset; /* read from here (ignored with tail) */
    uint32_t tail;   /* > 0: the last `tail` lines instead (bounded by max) */
    uint32_t max;    /* bytes, 1 .. CS_LOGS_MAX */
} cs_logs_req;
int cs_logs_req_encode(msgpack_packer *pk, const cs_logs_req *in);
int cs_logs_req_decode(const msgpack_object *o, cs_logs_req *out, cs_arena *a, cs_error *err);

/* {"offset", "size", "next", "data": bin}; decoded `data` points into `o`. */
typedef struct cs_logs_reply {
    uint64_t offset, size, next;
    const void *data;
    uint32_t len;
} cs_logs_reply;
int cs_logs_reply_encode(msgpack_packer *pk, const cs_logs_reply *in);
int cs_logs_reply_decode(const msgpack_object *o, cs_logs_reply *out, cs_arena *a,
                         cs_error *err);

#endif
