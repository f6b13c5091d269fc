/* backoff.h — restart back-off of service tasks that keep ending.
 *
 * Marathon delays the relaunch of an app whose tasks keep failing:
 * backoffSeconds (default 1), multiplied by backoffFactor (1.15) for each
 * failure in a row, capped at maxLaunchDelaySeconds (3600). Without it a
 * service whose command exits at once was restarted 20 times in 15 s. The
 * job's options carry the three (cellstate/jobopts.h); this module keeps,
 * per task, how many times in a row it ended and when it may start again.
 *
 * The table lives in the scheduler's memory, not in the cell: a task
 * record has no end time, and logging one per restart would add a command
 * per crash for what only pacing needs. A restarted scheduler starts with an
 * empty table and treats each ended task it finds as a first end: it waits
 * backoff_ms (not zero) before restarting it, so a restart never causes a
 * burst, and the delay grows again from there. Only tasks that ended at
 * least once are held (a few, not every running task).
 *
 * Reset: a task that, once started again, stays running for
 * CS_BACKOFF_RESET_MS (10 minutes, Kubernetes' CrashLoopBackOff window)
 * leaves the table; its next end counts as the first.
 *
 * Time is passed in (monotonic milliseconds) so that the arithmetic is
 * tested without sleeping. A cs_backoff belongs to one thread.
 */
#ifndef CS_BACKOFF_H
#define CS_BACKOFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cellstate/error.h"
#include "cellstate/jobopts.h"
#include "cellstate/record.h"

#define CS_BACKOFF_RESET_MS 600000

/* The wait before the n-th restart in a row (n >= 1) of a task of a job
 * with options `o` (borrowed): backoff x factor^(n-1), at most max_delay. */
uint64_t cs_backoff_delay_ms(const cs_jobopts *o, uint32_t n);

typedef struct cs_backoff_entry {
    cs_id task;
    uint32_t attempt;      /* the placement whose end was counted last */
    uint32_t ends;         /* ends in a row */
    int64_t not_before;    /* it may start again from then (ms) */
    int64_t running_since; /* when a later placement was first seen running, or -1 */
} cs_backoff_entry;

typedef struct cs_backoff {
    cs_backoff_entry *v; /* sorted by task id */
    size_t n, cap;
} cs_backoff;

void cs_backoff_init(cs_backoff *b);
void cs_backoff_free(cs_backoff *b);

/* Task `task` of a job with options `o` (borrowed) is seen ended after
 * placement `attempt` at `now`. The first sight of a placement's end counts
 * one more end in a row (none counted after a reset) and sets when it may
 * start again; a later sight of the same end changes nothing. *not_before
 * receives that time, *ends the count. CS_ENOMEM. */
int cs_backoff_ended(cs_backoff *b, cs_id task, uint32_t attempt, const cs_jobopts *o, int64_t now,
                     int64_t *not_before, uint32_t *ends);

/* Task `task` is seen running placement `attempt` at `now`: a task that
 * has stayed running CS_BACKOFF_RESET_MS since it was first seen so leaves
 * the table. Tasks not in the table are not added. */
void cs_backoff_running(cs_backoff *b, cs_id task, uint32_t attempt, int64_t now);

/* Forget the entries of job `job`'s tasks (the job ended or left). */
void cs_backoff_forget_job(cs_backoff *b, cs_id job);

/* The entry of `task`, or NULL (borrowed: valid until the next call that
 * changes the table). */
const cs_backoff_entry *cs_backoff_find(const cs_backoff *b, cs_id task);

/* The job note that says a task waits: "back-off: next start at
 * 2026-12-06T11:42:10.123Z (task 3 ended 5 times in a row)", the time
 * being wall-clock ms since the epoch in UTC, so that whoever reads it
 * later can say how long is left (cellctl describe). Written into
 * buf[0..size). */
void cs_backoff_note(uint64_t start_wall_ms, uint32_t index, uint32_t ends, char *buf,
                     size_t size);

/* Read a note cs_backoff_note wrote: *start_wall_ms gets its time and
 * *rest points at what follows the time in `note` (borrowed). false when
 * `note` is not such a note. */
bool cs_backoff_note_parse(const char *note, uint64_t *start_wall_ms, const char **rest);

#endif
