/* cellbuild.h — a cell built in memory for the local copy and placement
 * suites: machines, jobs and tasks in any state a test wants, and the
 * `sync` replies (docs/protocol.md §5.7) cellstated would send for it, so
 * that a cs_copy can be fed without a server. The replies are not packed
 * here: the changed records go into a store of the cell's own (raw record
 * writes, so that states no operation makes — an old spec, a task on a
 * drained machine — can be built), which derives machines' allocations,
 * ports in use, ntasks and seq from the tasks, and proto/sync.h's encoder,
 * cellstated's, builds both forms of the reply from it.
 *
 * Also for the scheduler suites: cs_copy_sync over a client, and a port
 * that interposes on commit. Not a suite itself (no test_ prefix).
 */
#ifndef CS_TEST_CELLBUILD_H
#define CS_TEST_CELLBUILD_H

#include <stdbool.h>
#include <stdint.h>

#include <msgpack.h>

#include "cellstate/jobopts.h"
#include "cellstate/record.h"
#include "schedulers/cellcopy.h"
#include "txn/txn.h"

typedef struct tb_machine tb_machine;
typedef struct tb_job tb_job;
typedef struct tb_task tb_task;

typedef struct tb_cell {
    tb_machine *m;
    uint32_t nm, capm;
    tb_job *j;
    uint32_t nj, capj;
    tb_task *t;
    uint32_t nt, capt;
    uint64_t version;      /* of the last reply */
    struct ts_store *store; /* where the replies come from (tests/support.h), made at the first */
} tb_cell;

void tb_init(tb_cell *b);
void tb_free(tb_cell *b);

/* A machine, up; `attrs` is "k=v k=v" (NULL or "" for none). Returns its id
 * (1, 2, ...). */
cs_id tb_machine_add(tb_cell *b, const char *name, int64_t cpu, int64_t mem, int64_t disk,
                     uint16_t port_lo, uint16_t port_hi, const char *attrs);
void tb_machine_state(tb_cell *b, cs_id machine, uint8_t state);
/* The operator's word on a machine (cs_machine_admin). */
void tb_machine_admin(tb_cell *b, cs_id machine, uint8_t admin);
/* Add a taint "key=value:Effect" or "key:Effect" (the sync reply sorts
 * the machine's taints). */
void tb_machine_taint(tb_cell *b, cs_id machine, const char *taint);

/* A job of `count` pending tasks; returns its id (1, 2, ...). */
cs_id tb_job_add(tb_cell *b, const char *name, uint8_t kind, int32_t priority, uint32_t count,
                 int64_t cpu, int64_t mem, int64_t disk);
void tb_job_ports(tb_cell *b, cs_id job, const uint16_t *ports, uint32_t n);
void tb_job_constraint(tb_cell *b, cs_id job, const char *field, const char *op,
                       const char *value, bool soft);
/* Encode `o` (normalised in place) as the job's options. */
void tb_job_opts(tb_cell *b, cs_id job, cs_jobopts *o);
/* Kill the job and its tasks not yet ended. */
void tb_job_kill(tb_cell *b, cs_id job);

/* Place task `index` of `job` on `machine` (assigned, the job's resources,
 * its fixed ports and the lowest free dynamic ones). */
void tb_place(tb_cell *b, cs_id job, uint32_t index, cs_id machine);
/* Set a task's state (placed tasks leaving their machine release it). */
void tb_task_state(tb_cell *b, cs_id task, uint8_t state);
/* Mark a placed task as running its job's current spec (tb_place leaves
 * spec 0: an old version). */
void tb_task_current(tb_cell *b, cs_id task);
/* Apply a transaction as a commit that accepts everything: claims place
 * their tasks with the claim's resources and ports, victims go back to
 * pending (last_end preempted). */
void tb_commit(tb_cell *b, const cs_txn *t);

/* A packed reply and the object read from it (valid until tb_reply_free);
 * `compact` is the same reply in the compact form (protocol §5.7). */
typedef struct tb_reply {
    msgpack_sbuffer buf;
    msgpack_zone zone;
    msgpack_object obj;
    msgpack_sbuffer compact;
} tb_reply;

/* The `sync` reply after the changes made since the previous reply:
 * everything (full) or the delta since the previous reply's version. The
 * version moves only when something changed (b->version is the reply's). */
void tb_reply_make(tb_cell *b, bool full, tb_reply *r);
void tb_reply_free(tb_reply *r);
/* tb_reply_make then cs_copy_apply, asserting success. */
void tb_sync(tb_cell *b, cs_copy *c, bool full);

/* cs_copy_sync over cellstated through `client` (borrowed), with an nng
 * port made for the call. */
int tb_sync_client(cs_copy *c, cs_client *client, cs_error *err);

/* A scheduler port that hands every call to `base` except commit, which
 * goes to the test's `commit` first: to run something between a
 * scheduler's decision and its commit (another scheduler's round, a cell
 * event), or to check each commit. `commit` reaches the base through
 * w->base; `user` is the test's. */
typedef struct tb_port tb_port;
struct tb_port {
    cs_sched_port table; /* give this to cs_sched_new */
    const cs_sched_port *base;
    int (*commit)(tb_port *w, const cs_txn *t, cs_txn_result *r, cs_error *err);
    void *user;
};
void tb_port_wrap(tb_port *w, const cs_sched_port *base,
                  int (*commit)(tb_port *w, const cs_txn *t, cs_txn_result *r, cs_error *err),
                  void *user);

/* Fail the test (naming `when` and the record) unless copies x and y hold
 * the same records at the same version: machines with their names,
 * attributes, taints, allocation and task lists, jobs with their pending
 * order, tasks with their job and machine. Both borrowed. */
void tb_assert_same_copy(const cs_copy *x, const cs_copy *y, const char *when);

/* Fail the test if a machine is over capacity or holds a port twice. */
void tb_check(const tb_cell *b);

/* The builder's view of a task (state, machine). */
const cs_task *tb_task_get(const tb_cell *b, cs_id task);

#endif
