/* command.h — the cell's state machine: its commands, and the one function
 * that applies any of them.
 *
 * Every change to the cell is a command: a kind and the bytes of its
 * canonical encoding (docs/design.md §4 has the table). Whoever proposes a
 * change — cellstated's writer, a test, with Raft the leader — builds the
 * command with a cs_cmd_* function and stamps into it every instant it
 * needs (a job's `submitted`, an end, a drain deadline): applying a command
 * reads no clock and draws no random number, so the store is a pure
 * function of the commands applied to it, in order. cs_command_apply
 * decodes a command, applies it in one write transaction and returns its
 * result: everything the proposer answers with (the ids it created, the
 * cell version, each claim's outcome) and the machines it touched (whose
 * agents' parked polls to wake), so that nobody reads the log back to learn
 * what the command already knew. Log replay, a restored backup and (next)
 * Raft's FSM apply call the same function on the logged bytes and get the
 * same results.
 *
 * Refusals are results. A command the cell refuses as it finds it (a name
 * already taken, an unknown id, a report on a stale attempt, a scale of an
 * ended job, an invalid transaction) is judged deterministically: the same
 * command on the same store is refused with the same code and message. It
 * is logged, and writes nothing else: a log entry under the current version
 * with a sub-index n > 0 and no touched key, exactly as a transaction whose
 * every claim conflicted is logged. Why logged: a replicated log holds a
 * command before anyone has judged it, and replaying it must reproduce the
 * refusal; logging the refusal in the store's own log keeps "replaying the
 * log reproduces the store and every result" true of every command. Why it
 * costs readers nothing: an entry with no touched key adds nothing to a
 * change set (cs_snap_changes_since) and moves no version, so a sync, a
 * poll or a machine's `seq` sees what it saw before. Errors that are no
 * judgement of the cell (out of memory, I/O, a full map, bytes that do not
 * decode, an unknown kind) are not results: nothing is written and the
 * caller gets the code.
 *
 * Repeats that change nothing and that clients send often (an identical
 * note, a running report that changes nothing, the same admin word, a drain
 * deadline already acted on, a transaction retried after its first result
 * was stored) are not logged: result.logged is false. Replay is unaffected:
 * they changed nothing.
 *
 * Batching: the write transaction of an apply joins the calling thread's
 * group when one is open (cs_store_group_begin, store.h). A writer applies a
 * burst of commands in one LMDB transaction, one fsync, and each command
 * still gets its own version, log entry and result.
 */
#ifndef CS_COMMAND_H
#define CS_COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "cellstate/arena.h"
#include "cellstate/error.h"
#include "cellstate/store.h"
#include "txn/txn.h"

typedef enum cs_cmd_kind {
    CS_CMD_MACHINE_PUT = 1,   /* register or update a machine (ops.h) */
    CS_CMD_MACHINE_STATE = 2, /* up, draining, down (ops.h) */
    CS_CMD_JOB_SUBMIT = 3,    /* a new job and its pending tasks (ops.h) */
    CS_CMD_JOB_KILL = 4,      /* kill a job and all its tasks (ops.h) */
    CS_CMD_TXN = 5,           /* a scheduler's transaction (commit.h) */
    CS_CMD_TASK_STATUS = 6,   /* an agent's report: running, exited, failed (ops.h) */
    CS_CMD_JOB_SCALE = 7,     /* change a job's task count (ops.h) */
    CS_CMD_JOB_UPDATE = 8,    /* replace a job's spec (ops.h) */
    CS_CMD_JOB_NOTE = 9,      /* a scheduler's note on a job (ops.h) */
    CS_CMD_JOB_SURGE = 10,    /* a rolling update's extra task slots (ops.h) */
    CS_CMD_JOB_END = 11,      /* a batch job whose tasks all ended: finished or failed (ops.h) */
    CS_CMD_JOB_GC = 12,       /* remove ended jobs and their tasks (ops.h) */
    CS_CMD_MACHINE_ADMIN = 13, /* cordon, drain, uncordon a machine (ops.h) */
    CS_CMD_DRAIN_DEADLINE = 14, /* a draining machine's batch tasks move (ops.h) */
} cs_cmd_kind;

const char *cs_cmd_name(uint8_t kind);

/* Whether a logged command only marks its task running: an agent's
 * "running" report without health. A reader whose copy treats a placed
 * task the same whether it runs yet or not (a batch scheduler, a watcher of
 * placements) can leave these out of what it reads (the sync request's
 * "omit": "running", protocol.md), which at scale halves the tasks it is
 * sent: every task is placed once and reported running once. A command
 * that cannot be read is not quiet. Fits cs_quiet_fn (ctx unused). */
bool cs_cmd_only_marks_running(void *ctx, uint8_t kind, const void *cmd, size_t len);

/* Whether `code` is the cell's judgement of a command (a refusal: logged,
 * replayed, part of the result) rather than an error: CS_EINVAL,
 * CS_ENOTFOUND, CS_EEXIST and CS_ESTATE. */
bool cs_command_refusal(int code);

/* An agent's report on attempt `attempt` of task `task` (cs_op_task_report,
 * ops.h, says what each state means). */
typedef struct cs_task_report {
    cs_id task;
    uint32_t attempt;
    uint8_t state;  /* cs_task_state */
    int32_t exit_code;
    const char *reason;
    uint8_t health; /* cs_task_health; UNKNOWN = not reported */
} cs_task_report;

/* A command's fields, decoded. Which are used depends on the kind:
 *   machine-put     machine               job-submit    job
 *   machine-state   id, n = state         job-kill      id, n = ended
 *   machine-admin   id, n = admin,        job-end       id, n = ended
 *                   deadline              job-scale     id, n = count
 *   drain-deadline  id                    job-surge     id, n = surge
 *   task-status     report                job-update    id, job
 *   transaction     txn                   job-note      id, note
 *                                         job-gc        ids, nids
 * The pointers are borrowed. */
typedef struct cs_cmd_args {
    cs_id id;
    uint64_t n;
    uint64_t deadline;
    const cs_machine *machine;
    const cs_job *job;
    const cs_txn *txn;
    cs_task_report report;
    const char *note;
    const cs_id *ids;
    size_t nids;
} cs_cmd_args;

/* A command as its proposer builds it: the kind, the canonical bytes (what
 * the log will hold) and the same fields decoded, so that applying a
 * command one built does not decode what it just encoded (a scheduler's
 * transaction is the commit path's hot spot: docs/benchmarks.md). Machine
 * and job records are decoded back from the bytes into `arena`, so that
 * the proposer applies exactly what replay will; a note and a report's
 * reason are copied there too. The transaction and job-gc's ids are
 * borrowed from the builder's caller and must outlive the command. Owned
 * by the caller: cs_command_free, also after a builder failed. */
typedef struct cs_command {
    uint8_t kind;
    msgpack_sbuffer bytes;
    cs_cmd_args args;
    cs_arena arena;
    cs_machine machine;
    cs_job job;
} cs_command;

void cs_command_free(cs_command *c);

/* The builders: each initialises `c` and fills it. Only CS_ENOMEM fails,
 * except that a machine or job that its record encoding cannot carry (a
 * field over its bound, as cs_machine_decode and cs_job_decode would read
 * it) is CS_EINVAL: it never becomes a command, since replay could not
 * decode it. Every time in a command is the caller's (stamped by the
 * proposer): `spec->submitted`, `ended`, `deadline`. The arguments are
 * copied into the bytes; see cs_command for what stays borrowed. What each
 * command does when applied is in ops.h and commit.h. */
int cs_cmd_machine_put(cs_command *c, const cs_machine *spec, cs_error *err);
int cs_cmd_machine_state(cs_command *c, cs_id id, uint8_t state, cs_error *err);
int cs_cmd_machine_admin(cs_command *c, cs_id id, uint8_t admin, uint64_t deadline,
                         cs_error *err);
int cs_cmd_drain_deadline(cs_command *c, cs_id id, cs_error *err);
int cs_cmd_job_submit(cs_command *c, const cs_job *spec, cs_error *err);
int cs_cmd_job_kill(cs_command *c, cs_id id, uint64_t ended, cs_error *err);
int cs_cmd_job_end(cs_command *c, cs_id id, uint64_t ended, cs_error *err);
int cs_cmd_job_gc(cs_command *c, const cs_id *ids, size_t n, cs_error *err);
int cs_cmd_job_scale(cs_command *c, cs_id id, uint32_t count, cs_error *err);
int cs_cmd_job_surge(cs_command *c, cs_id id, uint32_t surge, cs_error *err);
int cs_cmd_job_update(cs_command *c, cs_id id, const cs_job *spec, cs_error *err);
int cs_cmd_job_note(cs_command *c, cs_id id, const char *note, cs_error *err);
int cs_cmd_task_report(cs_command *c, const cs_task_report *r, cs_error *err);
int cs_cmd_txn(cs_command *c, const cs_txn *t, cs_error *err);

/* What applying a command gave. Owned by the caller: cs_result_init before
 * the first use, cs_result_free after the last; one result may serve many
 * applies, each overwriting it. */
typedef struct cs_result {
    uint8_t kind;
    int status;                       /* CS_OK, or the refusal's code */
    char message[CS_ERROR_MSG_SIZE];  /* the refusal in words; "" with CS_OK */
    uint64_t version;                 /* the cell version after the command */
    bool logged;                      /* it has its log entry (a refusal does) */
    cs_id id;                         /* machine-put: the machine; job-submit: the new job */
    cs_txn_result txn;                /* transaction: each item's outcome (commit.h) */
    cs_id *machines;                  /* the machines it changed: ascending, unique */
    size_t nmachines, capmachines;
} cs_result;

void cs_result_init(cs_result *r);
void cs_result_free(cs_result *r);

/* Copy `src` (only read) into `dst` (initialised; what it held is
 * replaced), arrays included: for a proposer whose result is handed over
 * on another thread (a replicated cell's, server/replica.h). CS_ENOMEM
 * leaves `dst` empty (cs_result_init's state). */
int cs_result_copy(cs_result *dst, const cs_result *src, cs_error *err);

/* The refusal as an error: copies the status and message into `err` (may
 * be NULL) and returns the status (CS_OK when the command was taken). */
int cs_result_error(const cs_result *r, cs_error *err);

/* The state machine: decode the command `kind`/`cmd[0..len)` (only read)
 * and apply it in one write transaction (joining the thread's group, if
 * any); `res` (may be NULL: replay that only rebuilds the store) receives
 * its result. CS_OK when the command was judged — taken or refused, as
 * res->status says, and logged unless a repeat that changed nothing —;
 * another code for an error, with nothing written. */
int cs_command_apply(cs_store *s, uint8_t kind, const void *cmd, size_t len, cs_result *res,
                     cs_error *err);

/* The same for a command its caller built (cs_cmd_*), without decoding its
 * bytes again: the proposer's path. `c` is only read. */
int cs_command_apply_built(cs_store *s, const cs_command *c, cs_result *res, cs_error *err);

#endif
