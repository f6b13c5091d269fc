/* proto.h — cellsched's wire protocol: message types, the envelope, and the
 * msgpack helpers that build and read message bodies.
 *
 * Every message, request or reply, is one msgpack array:
 *
 *     [protocol version, message type, request id, body]
 *
 * A request may carry a fifth element, its credentials (docs/protocol.md
 * §2, docs/security.md): a token string (a cell without TLS, cellstated
 * --auth-tokens), or {"as": principal} from a replica or the in-process
 * HTTP gateway acting for its own client (proto/principal.h).
 *
 * sent over nanomsg's scalability protocols (nng: REQ/REP for requests,
 * PUB/SUB for announcements). A reply carries the request's type and id; a
 * failed request is answered with type CS_MSG_ERROR and the body
 * {"code": int, "error": name, "message": text}. Bodies are msgpack maps
 * with string keys, so that a client in any language can read them;
 * docs/protocol.md documents every message and field.
 */
#ifndef CS_PROTO_H
#define CS_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "cellstate/error.h"
#include "cellstate/mpcheck.h"
#include "cellstate/record.h"

/* For the encoders: return CS_ENOMEM from the calling function when a
 * msgpack pack call fails (with an sbuffer, only when it cannot grow). */
#define CS_PK(call)           \
    do {                      \
        if ((call) != 0)      \
            return CS_ENOMEM; \
    } while (0)

#define CS_PROTO_VERSION 1
#define CS_DEFAULT_URL "tcp://127.0.0.1:7600"
#define CS_URL_ENV "CELL_SERVER"
/* Requests larger than this are refused by default (cellstated --max-msg). */
#define CS_DEFAULT_MAX_MSG (16u << 20)
/* The most reports one task.status may carry in its batch form. */
#define CS_REPORTS_MAX 1024
/* A machine silent this long is marked down (cellstated
 * --heartbeat-timeout); agents derive their default --orphan-grace from it
 * (agent/alive.h), so it is part of the contract between the two. */
#define CS_HEARTBEAT_TIMEOUT_DEFAULT_MS 10000

#define CS_MSG_TABLE(X)                          \
    X(CS_MSG_ERROR, 0, "error")                  \
    X(CS_MSG_MACHINE_REGISTER, 1, "machine.register") \
    X(CS_MSG_HEARTBEAT, 2, "machine.heartbeat")  \
    X(CS_MSG_JOB_SUBMIT, 3, "job.submit")        \
    X(CS_MSG_JOB_KILL, 4, "job.kill")            \
    X(CS_MSG_JOB_SCALE, 5, "job.scale")          \
    X(CS_MSG_JOB_UPDATE, 6, "job.update")        \
    X(CS_MSG_SYNC, 7, "sync")                    \
    X(CS_MSG_COMMIT, 8, "commit")                \
    X(CS_MSG_POLL, 9, "poll")                    \
    X(CS_MSG_TASK_STATUS, 10, "task.status")     \
    X(CS_MSG_GET_MACHINES, 11, "get.machines")   \
    X(CS_MSG_GET_JOBS, 12, "get.jobs")           \
    X(CS_MSG_GET_TASKS, 13, "get.tasks")         \
    X(CS_MSG_GET_JOB, 14, "get.job")             \
    X(CS_MSG_STATS, 15, "stats")                 \
    X(CS_MSG_VERSION, 16, "version")             \
    X(CS_MSG_JOB_NOTE, 17, "job.note")           \
    X(CS_MSG_SCHED_REPORT, 18, "sched.report")   \
    X(CS_MSG_JOB_SURGE, 19, "job.surge")         \
    X(CS_MSG_JOB_END, 20, "job.end")             \
    X(CS_MSG_MACHINE_ADMIN, 21, "machine.admin") \
    X(CS_MSG_TASK_LOGS, 22, "task.logs")         \
    X(CS_MSG_MEMBERS, 23, "members")             \
    X(CS_MSG_MEMBERS_ADD, 24, "members.add")     \
    X(CS_MSG_MEMBERS_REMOVE, 25, "members.remove") \
    X(CS_MSG_MEMBERS_TRANSFER, 26, "members.transfer") \
    X(CS_MSG_OFFER_ACQUIRE, 27, "offer.acquire")   \
    X(CS_MSG_OFFER_RELEASE, 28, "offer.release")   \
    X(CS_MSG_OFFER_COMMIT, 29, "offer.commit")   \
    X(CS_MSG_AUDIT, 30, "audit")

enum {
#define CS_MSG_ENUM(name, value, text) name = value,
    CS_MSG_TABLE(CS_MSG_ENUM)
#undef CS_MSG_ENUM
        CS_MSG_COUNT
};

const char *cs_msg_name(uint32_t type);

/* A decoded envelope. `body` points into the zone passed to
 * cs_msg_decode: valid until that zone is destroyed or cleared. */
typedef struct cs_msg {
    uint32_t type;
    uint64_t req;
    msgpack_object body;
    msgpack_object auth; /* the credentials: MSGPACK_OBJECT_NIL when the message has none */
} cs_msg;

/* Decode one message spanning data[0..len). CS_EPROTO, with a message that
 * names the problem, for: not msgpack, trailing bytes, not a 4-element
 * array, another protocol version, an unknown type, a request id that is not
 * an unsigned integer. A fifth element (a request's credentials) is kept
 * in `m->auth` unchecked: its meaning is the server's. On CS_EPROTO `m->req` is still filled when the id
 * could be read, so that the error reply can carry it. */
int cs_msg_decode(const void *data, size_t len, msgpack_zone *zone, cs_msg *m, cs_error *err);

/* Start a message: packs the envelope's first three elements; the caller
 * then packs exactly one body object. */
int cs_msg_begin(msgpack_packer *pk, uint32_t type, uint64_t req);
/* The same for a request with credentials: the caller then packs the body
 * and, as the fifth element, the credentials (a token string, or an
 * {"as": principal} map). */
int cs_msg_begin_auth(msgpack_packer *pk, uint32_t type, uint64_t req);

/* A whole error reply for request `req`: {"code", "error", "message"}. */
int cs_msg_error(msgpack_sbuffer *buf, uint64_t req, int code, const char *message);

/* ---- reading bodies ------------------------------------------------------ */

/* The value under `key` in map `o`, or NULL when absent (or `o` is not a map). */
const msgpack_object *cs_obj_get(const msgpack_object *o, const char *key);

/* Typed fields. `required` false: an absent key leaves *out untouched and
 * returns CS_OK. A present key of the wrong type or range is CS_EPROTO with
 * "field 'key' ..." in the message. Strings are copied into the arena. */
int cs_obj_u64(const msgpack_object *o, const char *key, bool required, uint64_t max,
               uint64_t *out, cs_error *err);
int cs_obj_i64(const msgpack_object *o, const char *key, bool required, int64_t min, int64_t max,
               int64_t *out, cs_error *err);
int cs_obj_str(const msgpack_object *o, const char *key, bool required, size_t maxlen, cs_arena *a,
               const char **out, cs_error *err);
int cs_obj_bool(const msgpack_object *o, const char *key, bool required, bool *out, cs_error *err);
/* {"cpu": millicores, "mem": MiB, "disk": MiB}; absent members are 0. */
int cs_obj_res(const msgpack_object *o, const char *key, bool required, cs_res *out,
               cs_error *err);

/* ---- writing bodies ------------------------------------------------------ */

/* A key followed by a value of the given kind. */
int cs_pack_kv_str(msgpack_packer *pk, const char *key, const char *value);
int cs_pack_kv_u64(msgpack_packer *pk, const char *key, uint64_t value);
int cs_pack_kv_i64(msgpack_packer *pk, const char *key, int64_t value);
int cs_pack_kv_bool(msgpack_packer *pk, const char *key, bool value);
int cs_pack_kv_res(msgpack_packer *pk, const char *key, const cs_res *r);
/* A key and an array of ports (uint16), or of constraints ({"field", "op",
 * "value", "soft"}), as job maps and job specs carry them. Borrowed. */
int cs_pack_kv_ports(msgpack_packer *pk, const char *key, const uint16_t *p, uint32_t n);
int cs_pack_kv_constraints(msgpack_packer *pk, const char *key, const cs_constraint *c,
                           uint32_t n);

/* Records as maps (docs/protocol.md lists the keys). */
int cs_pack_machine(msgpack_packer *pk, const cs_machine *m);
/* The key "taints" and its value, [{key, value, effect}] with the effect's
 * name, as cs_pack_machine and machine.register carry them. `t` is
 * borrowed. CS_ENOMEM. */
int cs_pack_taints(msgpack_packer *pk, const cs_taint *t, uint32_t n);
int cs_pack_job(msgpack_packer *pk, const cs_job *j);
/* The same with the job's environment hidden when `redact` (a reader's
 * replies, docs/security.md "Roles"): every env value becomes
 * CS_REDACTED, its keys stay; options that do not decode are left out
 * whole rather than sent as they are. CS_ENOMEM. */
#define CS_REDACTED "(redacted)"
int cs_pack_job_as(msgpack_packer *pk, const cs_job *j, bool redact);
int cs_pack_task(msgpack_packer *pk, const cs_task *t);

/* The inverse for what clients send: a machine registration and a job spec.
 * Names the offending field on error (CS_EPROTO for a wrong type, CS_EINVAL
 * for a wrong value). Strings and arrays live in `a`. */
int cs_unpack_machine_spec(const msgpack_object *o, cs_arena *a, cs_machine *out, cs_error *err);
int cs_unpack_job_spec(const msgpack_object *o, cs_arena *a, cs_job *out, cs_error *err);

/* Records as the server sends them (§6 of docs/protocol.md: cs_pack_machine,
 * cs_pack_job, cs_pack_task), for clients that keep copies: schedulers,
 * agents, cellctl. Every key is required; a wrong type or value is CS_EPROTO
 * (CS_EINVAL for a spec field out of range) naming the field. Strings and
 * arrays live in `a`. */
int cs_unpack_machine(const msgpack_object *o, cs_arena *a, cs_machine *out, cs_error *err);
int cs_unpack_job(const msgpack_object *o, cs_arena *a, cs_job *out, cs_error *err);
int cs_unpack_task(const msgpack_object *o, cs_arena *a, cs_task *out, cs_error *err);

/* ---- the compact form of sync's tasks (docs/protocol.md §5.7) -------------
 * A task is a positional array of CS_TASK_ENTRY_FIELDS instead of a 14-key
 * map, and one entry stands for a run of n tasks of one job with
 * consecutive indexes whose other fields are all equal (a job's pending
 * tasks, typically):
 *   [id, n, state, last_end, machine, cpu, mem, disk, [port, ...],
 *    attempts, exit_code, reason, health, spec, version]
 * `id` is the run's first task; states and health are their numbers. */
#define CS_TASK_ENTRY_FIELDS 15

/* Tasks in, compact entries out: feed the tasks in ascending id order with
 * cs_task_runs_add; equal neighbours join one entry. cs_task_runs_finish
 * writes the array of entries to a packer. The tasks passed are copied:
 * they need not outlive the call. */
typedef struct cs_task_runs {
    msgpack_sbuffer buf; /* the entries written so far, without the array header */
    uint32_t entries;
    uint32_t n;          /* tasks in the open run (0 = none) */
    cs_task head;        /* the open run's first task; its ports and reason below */
    uint16_t ports[CS_PORTS_PER_TASK_MAX];
    char reason[CS_REASON_MAX + 1];
} cs_task_runs;

void cs_task_runs_init(cs_task_runs *r);
void cs_task_runs_free(cs_task_runs *r);
/* Add `t` (borrowed). CS_EINVAL for a task that cs_pack_task refuses too
 * (more than 64 ports, too long a reason), CS_ENOMEM. */
int cs_task_runs_add(cs_task_runs *r, const cs_task *t);
/* Write the array of every entry to `pk` and start over empty. CS_ENOMEM. */
int cs_task_runs_finish(cs_task_runs *r, msgpack_packer *pk);

/* Read one compact entry at the cursor into *t (its ports and reason in
 * `a`) and the run's length into *n (>= 1): the tasks are t->id .. t->id +
 * n - 1, each with t's other fields. A malformed entry is CS_EPROTO naming
 * the field ("field 'machine' (4) is not an unsigned integer"); CS_ENOMEM. */
int cs_read_task_entry(cs_mp_cur *c, cs_arena *a, cs_task *t, uint32_t *n, cs_error *err);

/* The server URL: `flag` if given, else $CELL_SERVER, else the default. */
const char *cs_server_url(const char *flag);

/* For the decoders: CS_EPROTO, "message body is not a map". */
int cs_not_map(cs_error *err);

#endif
