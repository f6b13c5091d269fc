/* command.h — the commands of the commit log, and applying a logged one.
 *
 * Every change to the cell is one command, applied by one function of txn/
 * inside one write transaction and appended to the log as the bytes of its
 * canonical encoding. Applying the same commands in the same order to an
 * empty store yields the same store, key for key and byte for byte: that is
 * how a replica or a restored backup catches up (cs_command_apply), and what
 * the property tests check.
 */
#ifndef CS_COMMAND_H
#define CS_COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cellstate/error.h"
#include "cellstate/store.h"

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

/* Apply a command read from a log: decode it and run it exactly as it ran
 * when it was first logged. A command that was refused then is never in a
 * log; one that is refused now means the two stores have diverged, and is
 * returned as an error. */
int cs_command_apply(cs_store *s, uint8_t kind, const void *cmd, size_t len, cs_error *err);

#endif
