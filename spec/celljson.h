/* celljson.h — the cell as its JSON clients see it: the records of
 * get.machines, get.jobs, get.tasks and get.job decoded into one view,
 * their JSON form (cpu in cores as a number, mem and disk in MiB, names
 * instead of ids), and the write requests those clients send (submit,
 * update, kill, scale, machine.admin) with the fit warnings after a submit.
 *
 * Why here and not in cellctl: `cellctl ... -o json` and cellstated's HTTP
 * API (http/gateway.h) must print the same shapes, byte for byte, so that a
 * script written against one works against the other. Both fetch through
 * the same functions and render through the same functions; only how a
 * request reaches cellstated differs (a cs_call_fn: cellctl's names the
 * server it could not reach, the gateway's is an in-process client). Every
 * message a user reads is therefore the same in both: a spec refused, a
 * state filter that is not a state, why a job waits.
 */
#ifndef CS_CELLJSON_H
#define CS_CELLJSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <msgpack.h>

#include "cellstate/arena.h"
#include "cellstate/error.h"
#include "cellstate/record.h"
#include "proto/jobmsg.h"
#include "proto/msg.h"
#include "proto/proto.h"
#include "proto/readmsg.h"

/* How every JSON document of the cell is written: indented by two, cpu
 * without float noise (0.1, not 0.10000000000000001). */
#define CS_JSON_FLAGS (JSON_INDENT(2) | JSON_REAL_PRECISION(15))

/* One request to cellstated: `type` with the msgpack body[0..len); on
 * CS_OK *reply is valid until the next call (cs_client_call's contract). */
typedef int (*cs_call_fn)(void *ctx, uint32_t type, const void *body, size_t len, cs_msg *reply,
                          cs_error *err);

/* The records of one or more replies, copied into `a` (owned by the view). */
typedef struct cs_cellview {
    cs_arena a;
    uint64_t version; /* the newest version a reply showed */
    cs_machine *machines; /* sorted by id */
    uint32_t nmachines;
    cs_job *jobs; /* sorted by id */
    uint32_t njobs;
    cs_task *tasks; /* in the server's order (by id) */
    uint32_t ntasks;
} cs_cellview;

void cs_cellview_init(cs_cellview *v);
void cs_cellview_free(cs_cellview *v);

/* get.machines, get.jobs: replace the view's list. */
int cs_cellview_fetch_machines(cs_call_fn call, void *ctx, cs_cellview *v, cs_error *err);
int cs_cellview_fetch_jobs(cs_call_fn call, void *ctx, cs_cellview *v, cs_error *err);
/* get.tasks with the filters that are not NULL (job and machine by name,
 * state by its name: CS_EINVAL "unknown task state 'x'"). Borrowed. */
int cs_cellview_fetch_tasks(cs_call_fn call, void *ctx, cs_cellview *v, const char *job,
                            const char *machine, const char *state, cs_error *err);
/* get.job: the view's jobs become that one job, its tasks the job's. */
int cs_cellview_fetch_job(cs_call_fn call, void *ctx, cs_cellview *v, const char *job,
                          cs_error *err);

/* A state filter against a record kind's state names (cs_machine_state_name
 * and CS_MACHINE_STATE_COUNT, ...): CS_OK for NULL or a name; else `code`
 * with "LABEL 'x' is not a WHAT state (a, b, c)" (label: "--state" for
 * cellctl, "state" for the HTTP API). */
int cs_cellview_check_state(const char *label, const char *state, const char *what,
                            const char *(*name)(uint8_t), uint8_t count, int code, cs_error *err);

/* After a submission: why no machine of the cell could hold job `j`, if
 * none could (spec/fitcheck.h), one line each ("job web waits: resources:
 * ..."), handed to `line` with `ctx`. It was accepted anyway: machines may
 * join. The machines are fetched here; a cell that cannot be read is not
 * the submission's failure: nothing is said. */
void cs_cell_unfit(cs_call_fn call, void *ctx, const cs_job *j,
                   void (*line)(void *lctx, const char *text), void *lctx);

/* ---- writes: the requests cellctl and the HTTP API send alike. Errors are
 * the call's (the server's code and message); the caller names the command.
 * Arguments are borrowed. ----------------------------------------------------- */

/* job.submit of spec `j` (its spec fields: cs_jobspec's job); *out the
 * reply's id and version (0 when the reply carries none). */
int cs_cell_submit(cs_call_fn call, void *ctx, const cs_job *j, cs_id_reply *out, cs_error *err);
/* job.update: job `job`'s spec becomes `spec`; *version the reply's. */
int cs_cell_update(cs_call_fn call, void *ctx, const char *job, const cs_job *spec,
                   uint64_t *version, cs_error *err);
/* job.kill (count < 0) or job.scale to `count`; *version the reply's. */
int cs_cell_job_request(cs_call_fn call, void *ctx, const char *job, int64_t count,
                        uint64_t *version, cs_error *err);
/* machine.admin: machine `machine` to `admin` (cs_machine_admin), with a
 * drain deadline in ms from now when deadline >= 0; *out the reply. */
int cs_cell_machine_admin(cs_call_fn call, void *ctx, const char *machine, uint8_t admin,
                          int64_t deadline, cs_machine_admin_reply *out, cs_error *err);

/* By id; NULL when absent (borrowed from the view). */
const cs_machine *cs_cellview_machine(const cs_cellview *v, cs_id id);
const cs_job *cs_cellview_job(const cs_cellview *v, cs_id id);
/* A machine's name, "" for id 0 and "#<id>" for an unknown one (in buf). */
const char *cs_cellview_machine_name(const cs_cellview *v, cs_id id, char *buf, size_t size);
const char *cs_cellview_job_name(const cs_cellview *v, cs_id id, char *buf, size_t size);

/* ---- JSON: every function returns a new reference, NULL when out of memory;
 * the records are borrowed. -------------------------------------------------- */

json_t *cs_json_res(const cs_res *r);
json_t *cs_json_machine(const cs_machine *m);
/* A task, its job and machine named from the view's lists. */
json_t *cs_json_task(const cs_cellview *v, const cs_task *t);
/* The job's native spec (cs_jobspec_to_json) plus id, state, version,
 * spec_hash, submitted, note, surge, ended and, when `tasks` is not NULL,
 * the count of its tasks per state among tasks->tasks. */
json_t *cs_json_job(const cs_job *j, const cs_cellview *tasks, cs_error *err);
/* Any msgpack reply as JSON (maps with string keys, as every reply has). */
json_t *cs_json_of_msgpack(const msgpack_object *o);
/* The stats reply `body` as JSON, with capacity and allocated from its
 * decoded form `st` in cores and MiB. */
json_t *cs_json_stats(const msgpack_object *body, const cs_stats_reply *st);
/* What a job write answers: {"job", "id" (when id != 0), "version"}. */
json_t *cs_json_job_written(const char *job, uint64_t id, uint64_t version);
/* What machine.admin answers: {"machine", "admin", "drain_deadline", "version"}. */
json_t *cs_json_machine_admin(const char *machine, uint8_t admin, uint64_t drain_deadline,
                              uint64_t version);

#endif
