/* cellbench_watch.c — the watcher of `cellbench place` (see
 * cellbench_watch.h). */
#include "tools/cellbench_watch.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"
#include "schedulers/cellcopy.h"

int cb_watch_init(cb_watch *w, uint32_t jobs, uint32_t tasks, cs_error *err)
{
    memset(w, 0, sizeof *w);
    w->jobs = jobs;
    w->tasks = tasks;
    cs_arena_init(&w->scratch);
    size_t total = (size_t)jobs * tasks;
    w->placed_ns = calloc(total ? total : 1, sizeof *w->placed_ns);
    w->held = calloc(total ? total : 1, 1);
    if (w->placed_ns == NULL || w->held == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory for the watcher of %zu tasks", total);
    return CS_OK;
}

void cb_watch_free(cb_watch *w)
{
    free(w->placed_ns);
    free(w->held);
    cs_arena_free(&w->scratch);
    w->placed_ns = NULL;
    w->held = NULL;
}

/* Whether a task in state s holds a machine, or held one to its end. */
static bool is_placed(uint8_t s)
{
    return s == CS_TASK_ASSIGNED || s == CS_TASK_RUNNING || s == CS_TASK_FINISHED;
}

/* Tasks t->id .. t->id + n - 1 are each in t's state as of now_ns. */
static void note_run(cb_watch *w, const cs_task *t, uint32_t n, int64_t now_ns)
{
    if (t->job < w->job0 || t->job - w->job0 >= w->jobs || t->index >= w->tasks)
        return;
    bool placed = is_placed(t->state);
    uint64_t base = (t->job - w->job0) * w->tasks;
    /* The decoder keeps index + n within the job's index range, but not
     * within this run's T. */
    uint64_t end = (uint64_t)t->index + n < w->tasks ? (uint64_t)t->index + n : w->tasks;
    for (uint64_t g = base + t->index; g < base + end; g++) {
        if (placed == (bool)w->held[g])
            continue;
        w->held[g] = placed;
        if (placed) {
            w->placed++;
            if (w->placed_ns[g] == 0)
                w->placed_ns[g] = now_ns;
        } else {
            w->placed--;
            w->requeued++;
        }
    }
}

int cb_watch_apply(cb_watch *w, const void *data, size_t len, int64_t now_ns, cs_error *err)
{
    cs_copy_reply r;
    int rc = cs_copy_read_reply(data, len, &r, err);
    if (rc != CS_OK)
        return rc;
    /* Only a server older than the compact form answers maps; cellbench
     * runs the cellstated built with it. */
    if (!r.compact)
        return cs_errorf(err, CS_EPROTO, "sync: the reply is in the map form, not the compact "
                                         "form asked for");
    uint32_t n;
    if (cs_mp_read_array(&r.tasks, &n) != CS_OK)
        return cs_errorf(err, CS_EPROTO, "sync: field 'tasks' is not an array");
    for (uint32_t i = 0; i < n; i++) {
        cs_task t;
        uint32_t run;
        cs_arena_reset(&w->scratch);
        if ((rc = cs_read_task_entry(&r.tasks, &w->scratch, &t, &run, err)) != CS_OK)
            return cs_error_wrap(err, rc, "sync: tasks[%u]", i);
        note_run(w, &t, run, now_ns);
    }
    w->since = r.version;
    return CS_OK;
}
