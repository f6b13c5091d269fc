/* cellbench_watch.h — what `cellbench place`'s watcher knows about the
 * run's tasks: which are placed now, when each was first seen placed, and
 * how often a placed one came back. It is kept from delta `sync` replies in
 * the compact form (docs/protocol.md §5.7), read in place with the same
 * entry decoder as the schedulers' copies (cs_read_task_entry), because at
 * C1M scale the watcher decodes two million task changes while it competes
 * for the CPU with what it measures. No I/O here: cellbench_place.c sends
 * the syncs and hands over the replies.
 */
#ifndef CB_WATCH_H
#define CB_WATCH_H

#include <stddef.h>
#include <stdint.h>

#include "cellstate/arena.h"
#include "cellstate/error.h"
#include "cellstate/record.h"

/* The run's tasks are numbered job number x T + index, where the job
 * number is the job's id minus job0: a fresh cell gives the J jobs
 * consecutive ids (cellbench_place.c checks it). */
typedef struct cb_watch {
    cs_id job0;           /* id of the run's first job: set before the first apply */
    uint32_t jobs, tasks; /* J jobs of T tasks */
    int64_t *placed_ns;   /* per task: when first seen placed (caller's clock), 0 not yet */
    uint8_t *held;        /* per task: placed as last seen */
    uint64_t placed;      /* tasks placed now */
    uint64_t requeued;    /* times a placed task was seen back out (pending, lost) */
    uint64_t since;       /* version of the last reply applied: the next sync's `since` */
    cs_arena scratch;     /* the ports and reason of the entry being read */
} cb_watch;

/* A watcher of `jobs` x `tasks` tasks, none placed, at version 0 and job0
 * 0 (the caller sets both before the first apply). The arrays belong to
 * *w: release them with cb_watch_free (also after a failed init).
 * CS_ENOMEM. */
int cb_watch_init(cb_watch *w, uint32_t jobs, uint32_t tasks, cs_error *err);
void cb_watch_free(cb_watch *w);

/* Apply one `sync` reply body data[0..len) (borrowed: only read during
 * the call), received at now_ns. A task is placed when it is assigned,
 * running or finished (it held a machine to its end); every task of a run
 * of entries is as its entry says. A task placed for the first time gets
 * now_ns; one seen back out counts as requeued. Tasks outside the run
 * (other jobs, indexes >= T) are skipped. On CS_OK `since` is the reply's
 * version. A reply in the map form, or a malformed one, is CS_EPROTO
 * naming the field ("sync: tasks[3]: field 'machine' (4) is not an
 * unsigned integer"); CS_ENOMEM. On error the entries before the bad one
 * have been applied and `since` is unchanged: the run cannot go on. */
int cb_watch_apply(cb_watch *w, const void *data, size_t len, int64_t now_ns, cs_error *err);

#endif
