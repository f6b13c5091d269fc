/* cellbench_cell.c — the cell a benchmark runs on (see cellbench_cell.h). */
#include "tools/cellbench_cell.h"

#include <stdio.h>
#include <stdlib.h>

#include "txn/ops.h"

void cb_machine_spec(uint32_t i, const cs_res *cap, cb_machine_strs *ms, cs_machine *m)
{
    snprintf(ms->name, sizeof ms->name, "m%06u", i);
    snprintf(ms->rack, sizeof ms->rack, "r%u", i / 40);
    snprintf(ms->zone, sizeof ms->zone, "z%u", i / 2000);
    ms->attrs[0] = (cs_attr){"rack", ms->rack}; /* sorted by key */
    ms->attrs[1] = (cs_attr){"zone", ms->zone};
    *m = (cs_machine){
        .name = ms->name,
        .attrs = ms->attrs,
        .nattrs = 2,
        .capacity = *cap,
        .port_lo = 31000,
        .port_hi = 32000,
        .state = CS_MACHINE_UP,
    };
}

int cb_cell_setup(cs_store *s, const cb_cell_spec *spec, cb_cell *c, cs_error *err)
{
    *c = (cb_cell){0};
    c->machines = calloc(spec->machines ? spec->machines : 1, sizeof *c->machines);
    c->ntasks = spec->ntasks;
    c->njobs = (uint32_t)((c->ntasks + CB_TASKS_PER_JOB - 1) / CB_TASKS_PER_JOB);
    c->jobs = calloc(c->njobs ? c->njobs : 1, sizeof *c->jobs);
    if (c->machines == NULL || c->jobs == NULL)
        return cs_errorf(err, CS_ENOMEM, "setup: out of memory");
    for (uint32_t i = 0; i < spec->machines; i++) {
        cb_machine_strs ms;
        cs_machine m;
        cb_machine_spec(i, &spec->machine_cap, &ms, &m);
        int rc = cs_op_machine_put(s, &m, &c->machines[i], &c->version, err);
        if (rc != CS_OK)
            return cs_error_wrap(err, rc, "registering machine %s", ms.name);
        c->nmachines++;
    }
    char name[32];
    for (uint32_t i = 0; i < c->njobs; i++) {
        uint64_t left = c->ntasks - (uint64_t)i * CB_TASKS_PER_JOB;
        snprintf(name, sizeof name, "bench-%u", i);
        cs_job j = {
            .name = name,
            .kind = CS_JOB_BATCH,
            .priority = 0,
            .count = left < CB_TASKS_PER_JOB ? (uint32_t)left : CB_TASKS_PER_JOB,
            .res = spec->task_res,
            .cmd = "true",
        };
        int rc = cs_op_job_submit(s, &j, &c->jobs[i], &c->version, err);
        if (rc != CS_OK)
            return cs_error_wrap(err, rc, "submitting job %s", name);
    }
    return CS_OK;
}

void cb_cell_free(cb_cell *c)
{
    free(c->machines);
    free(c->jobs);
    *c = (cb_cell){0};
}

cs_id cb_cell_task(const cb_cell *c, uint64_t g)
{
    return cs_task_id(c->jobs[g / CB_TASKS_PER_JOB], (uint32_t)(g % CB_TASKS_PER_JOB));
}

bool cb_cell_task_number(const cb_cell *c, cs_id task, uint64_t *g)
{
    /* Jobs are submitted in order, so their ids ascend: a binary search. */
    cs_id job = cs_task_job(task);
    uint32_t lo = 0, hi = c->njobs;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (c->jobs[mid] < job)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == c->njobs || c->jobs[lo] != job || cs_task_index(task) >= CB_TASKS_PER_JOB)
        return false;
    uint64_t n = (uint64_t)lo * CB_TASKS_PER_JOB + cs_task_index(task);
    if (n >= c->ntasks)
        return false;
    *g = n;
    return true;
}
