/* msg.h — the pieces every message codec shares (docs/protocol.md §2-§4).
 *
 * cellsched has one encoder and one decoder per message body, used by both
 * ends: the server, the agent, the schedulers and the tools. They are
 * grouped by concept:
 *
 *   proto/msg.h       references (a record by id or name), the {version} and
 *                     {id, version} replies, the error reply
 *   proto/agentmsg.h  what an agent says: machine.register, machine.heartbeat,
 *                     poll, task.status, task.logs
 *   proto/jobmsg.h    changes to jobs and machines: job.submit, job.kill,
 *                     job.scale, job.update, job.note, job.surge, job.end,
 *                     machine.admin
 *   proto/commitmsg.h the commit reply (the request is the transaction,
 *                     txn/txn.h: cs_txn_encode / cs_txn_from_object)
 *   proto/readmsg.h   reads: get.machines, get.jobs, get.tasks, get.job,
 *                     stats, the sync request, the version announcement
 *   proto/schedreport.h  sched.report
 *   proto/membermsg.h the replicated cell's members: members, members.add,
 *                     members.remove, members.transfer
 *   proto/offermsg.h  the offer of --concurrency offers: offer.acquire,
 *                     offer.release, offer.commit
 *
 * Why one codec per message: each message used to be packed by one end and
 * read by hand by the other (the commit reply three times, the poll reply
 * twice), so a field added on one side was silently missed on the other.
 *
 * Conventions, for every message M:
 *   int cs_M_encode(msgpack_packer *pk, const cs_M *in);
 *       packs exactly one body object; `in` is borrowed. CS_ENOMEM.
 *   int cs_M_decode(const msgpack_object *o, cs_M *out, cs_arena *a, cs_error *err);
 *       reads a body that cs_mp_unpack (cellstate/mpcheck.h, the bounds
 *       check) has already unpacked: nothing here runs on raw bytes. `o` is
 *       borrowed; strings and arrays of *out are copied into `a` (which may
 *       be NULL for messages that carry none), except where a header says
 *       that a field points into `o` (then *out lives as long as `o`).
 *       A missing field or one of the wrong msgpack type is CS_EPROTO, a
 *       wrong value CS_EINVAL, each naming the field ("field 'count' is
 *       missing") with the server's texts of docs/protocol.md.
 * Optional fields are encoded only when they differ from their default,
 * so that the bytes are those the hand-written packers sent before.
 */
#ifndef CS_MSG_H
#define CS_MSG_H

#include <stdbool.h>
#include <stdint.h>

#include <msgpack.h>

#include "cellstate/arena.h"
#include "cellstate/error.h"
#include "cellstate/record.h"
#include "cellstate/store.h"

/* A record named by id (`name` NULL) or by name (docs/protocol.md §4, "ref"). */
typedef struct cs_ref {
    cs_id id;
    const char *name; /* NULL: by id */
} cs_ref;

static inline cs_ref cs_ref_id(cs_id id) { return (cs_ref){id, NULL}; }
static inline cs_ref cs_ref_name(const char *name) { return (cs_ref){0, name}; }

/* Key `key` and the reference: a uint id or a str name. */
int cs_pack_kv_ref(msgpack_packer *pk, const char *key, const cs_ref *r);

/* The reference under `key` of map `o`. `what` ("job", "machine") names
 * the record in the error: "field 'job' is neither a job id nor a job name"
 * (a name longer than CS_NAME_MAX is neither). Absent: CS_EPROTO "field
 * 'job' is missing" when `required`, else CS_OK with *present false (may
 * be NULL when required). The name is copied into `a`. */
int cs_obj_ref(const msgpack_object *o, const char *key, const char *what, bool required,
               cs_arena *a, cs_ref *out, bool *present, cs_error *err);

/* A body that is only a reference, {key: ref} (machine.heartbeat,
 * job.kill, job.end, get.job): its encoder and decoder ("message body is
 * not a map", then cs_obj_ref's errors). */
int cs_ref_req_encode(msgpack_packer *pk, const char *key, const cs_ref *r);
int cs_ref_req_decode(const msgpack_object *o, const char *key, const char *what, cs_arena *a,
                      cs_ref *out, cs_error *err);

/* The job or machine `r` names, read from `snap` into *out (its strings
 * in `a`): by id, or by name (the most recent job of that name).
 * CS_ENOTFOUND, or the store's error. `r` is only read. */
int cs_ref_job(cs_snap *snap, const cs_ref *r, cs_arena *a, cs_job *out, cs_error *err);
int cs_ref_machine(cs_snap *snap, const cs_ref *r, cs_arena *a, cs_machine *out, cs_error *err);

/* {"version": uint}: the reply of job.kill, job.scale, job.update,
 * job.note, job.surge, job.end, a single task.status and sched.report,
 * and the body of the PUB announcement (type version, §9). */
typedef struct cs_version_reply {
    uint64_t version;
} cs_version_reply;
int cs_version_reply_encode(msgpack_packer *pk, const cs_version_reply *in);
int cs_version_reply_decode(const msgpack_object *o, cs_version_reply *out, cs_arena *a,
                            cs_error *err);

/* {"id": uint, "version": uint}: the reply of machine.register and
 * job.submit. */
typedef struct cs_id_reply {
    cs_id id;
    uint64_t version;
} cs_id_reply;
int cs_id_reply_encode(msgpack_packer *pk, const cs_id_reply *in);
int cs_id_reply_decode(const msgpack_object *o, cs_id_reply *out, cs_arena *a, cs_error *err);

/* {"code": int, "error": str, "message": str} (§3): the body of a reply of
 * type error. The encoder takes `error` from cs_strerror(code) when it is
 * NULL. The decoder is lenient on purpose, since whatever it finds is
 * turned into an error anyway: a code that is not an int in 1..1000 reads
 * as CS_EPROTO, a missing or non-string message as "", and `error` is not
 * read (NULL). `message` points into `o` as (ptr, len), not NUL-terminated. */
typedef struct cs_error_reply {
    int code;
    const char *error;
    const char *message;
    uint32_t message_len; /* decode: the length of `message`; encode: ignored */
} cs_error_reply;
int cs_error_reply_encode(msgpack_packer *pk, const cs_error_reply *in);
int cs_error_reply_decode(const msgpack_object *o, cs_error_reply *out, cs_arena *a,
                          cs_error *err);

/* Whether `v` is the string `s`. */
bool cs_obj_str_is(const msgpack_object *v, const char *s);

#endif
