/* cellbench_cell.h — the cell a benchmark runs on: N machines and jobs of
 * pending tasks, written straight into a store before anything is timed.
 */
#ifndef CB_CELL_H
#define CB_CELL_H

#include <stdint.h>

#include "cellstate/error.h"
#include "cellstate/record.h"
#include "cellstate/store.h"

/* Tasks per job: well below CS_TASK_INDEX_MAX, and a submit stays one
 * moderate write transaction. */
#define CB_TASKS_PER_JOB 10000u

/* What to make: `machines` machines of capacity `machine_cap`, and `ntasks`
 * pending tasks, each asking for `task_res`, in jobs of CB_TASKS_PER_JOB. */
typedef struct cb_cell_spec {
    uint32_t machines;
    uint64_t ntasks;
    cs_res task_res, machine_cap;
} cb_cell_spec;

typedef struct cb_cell {
    cs_id *machines; /* machine ids, in registration order */
    uint32_t nmachines;
    cs_id *jobs; /* job ids, in submission order */
    uint32_t njobs;
    uint64_t ntasks;  /* task number g is index g % CB_TASKS_PER_JOB of job g / CB_TASKS_PER_JOB */
    uint64_t version; /* cell version after setup */
} cb_cell;

/* The strings of one machine's spec. */
typedef struct cb_machine_strs {
    char name[32], rack[32], zone[32];
    cs_attr attrs[2];
} cb_machine_strs;

/* Machine number i (from 0) as the benchmarks register it: name m<i>, 40
 * machines a rack, 2000 a zone, ports 31000-32000. `m` borrows the strings
 * of `ms`. */
void cb_machine_spec(uint32_t i, const cs_res *cap, cb_machine_strs *ms, cs_machine *m);

/* Register the machines and submit the jobs through `s`, one write
 * transaction each, with the store's own durability. On success `c` owns
 * its arrays: cb_cell_free (also safe after a failure). */
int cb_cell_setup(cs_store *s, const cb_cell_spec *spec, cb_cell *c, cs_error *err);
void cb_cell_free(cb_cell *c);

/* The id of task number g. */
cs_id cb_cell_task(const cb_cell *c, uint64_t g);
/* The inverse: false for a task that is not one of the cell's. */
bool cb_cell_task_number(const cb_cell *c, cs_id task, uint64_t *g);

#endif
