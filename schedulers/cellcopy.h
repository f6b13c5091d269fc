/* cellcopy.h — a scheduler's local copy of the cell.
 *
 * Omega §3.4: "each scheduler is granted ... a private, local, frequently-
 * updated copy of cell state that it uses for making scheduling decisions."
 * A cs_copy is that copy: every machine, job and task of the cell, built and
 * kept current from `sync` replies (docs/protocol.md §5.7), with the indexes
 * the placer needs — tasks by machine, tasks by job (by index), the pending
 * tasks of each job, active jobs by name — and each job's constraints
 * compiled (constraint.h) and options decoded (cellstate/jobopts.h) once per
 * job version.
 *
 * Tentative changes. While a scheduler decides, it reserves what it has
 * chosen in the copy (cs_copy_claim, cs_copy_evict for preemption and
 * cs_copy_requeue for a restart in place; cs_copy_hold withholds room
 * from the placer), so
 * that the next task of the same decision sees the machine's room already
 * taken. Each such change is recorded in an undo log. Nothing tentative is
 * ever sent to the cell: the transaction carries the claims, and after the
 * commit cs_copy_sync first rolls every tentative change back and then
 * applies the delta, in which the committed claims come back as the cell's
 * own records and the conflicted ones are simply gone.
 *
 * Memory. A cell of 10,000 machines must fit in a few MiB per scheduler, so
 * records are kept compact: names, attribute keys and values are interned
 * (strtab.h) and referred to by 32-bit ids, a machine's attributes are an
 * interned set shared by every machine with the same ones, ports in use are
 * a sorted array allocated only when non-empty, links between records are
 * 32-bit slots. cs_copy_memory accounts for every byte held.
 *
 * Records are read through the structs below (borrowed from the copy: valid
 * until the next cs_copy_sync, cs_copy_apply, cs_copy_free, or — for the
 * records they touch — the next claim, eviction or undo). They are the
 * copy's own: change them only through these functions. Slots are indexes
 * into the copy's arrays (0 .. n-1); a record keeps its slot until a full
 * sync replaces the copy.
 *
 * A cs_copy belongs to one thread.
 */
#ifndef CS_CELLCOPY_H
#define CS_CELLCOPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "cellstate/arena.h"
#include "cellstate/error.h"
#include "cellstate/jobopts.h"
#include "cellstate/record.h"
#include "cellstate/store.h"
#include "proto/sync.h"
#include "schedulers/constraint.h"
#include "schedulers/port.h"
#include "schedulers/strtab.h"

typedef struct cs_copy cs_copy;

typedef struct cs_cmachine {
    cs_id id;
    uint64_t seq;          /* as the cell sent it: what a claim carries */
    cs_res capacity;
    cs_res allocated;      /* tentative claims and evictions included */
    uint16_t *ports;       /* in use, ascending, unique; NULL when the cell says none */
    uint32_t name;         /* interned (cs_copy_str) */
    uint32_t attrs;        /* the interned attribute set: cs_copy_attr, cs_copy_attrs */
    uint32_t ntasks;       /* placed here (assigned or running), tentative included */
    uint32_t tasks;        /* slot of the first task placed here, CS_NONE; linked by cs_ctask.next */
    uint16_t port_lo, port_hi; /* dynamic ports; 0, 0 = none */
    uint16_t nports;       /* ports in use (port 0 is never one: at most 65,535) */
    uint8_t ports_log2;    /* `ports` has room for 1 << ports_log2 (when not NULL) */
    uint8_t state;         /* cs_machine_state, or CS_CMACHINE_EVACUATING: only `up`
                            * machines are ever feasible */
} cs_cmachine;             /* 96 bytes */

/* The copy folds the operator's word (cs_machine.admin) into `state`, which
 * keeps a machine in 96 bytes: an up machine that is cordoned is
 * CS_MACHINE_DRAINING (keeps its tasks, takes no new ones), one that is
 * draining is CS_CMACHINE_EVACUATING (takes none, and its service tasks
 * move off, rollout.h). */
#define CS_CMACHINE_EVACUATING CS_MACHINE_STATE_COUNT

typedef struct cs_ctask {
    cs_id id;
    cs_res res;
    uint16_t *ports;       /* held on its machine while placed (job's port order); NULL if none */
    uint32_t job;          /* slot of its job */
    uint32_t machine;      /* slot of the machine it is placed on (or last was); CS_NONE if never */
    uint32_t next, prev;   /* placed: its machine's task list; pending: its job's pending list */
    uint32_t attempts;
    uint8_t state;         /* cs_task_state; tentative: ASSIGNED when claimed, PREEMPTED when
                            * evicted, PENDING when requeued */
    uint8_t last_end;
    uint8_t nports;
    uint8_t health;        /* cs_task_health */
    uint64_t spec;         /* its job's spec_hash when last placed, as the cell says (a
                            * tentative claim leaves it): another hash = an old version */
} cs_ctask;

typedef struct cs_cjob {
    cs_job job;            /* the record (strings and arrays owned by the copy) */
    cs_jobopts opts;       /* decoded options; the defaults when they could not be read */
    const char *bad;       /* why the job cannot be placed (a constraint or its options do
                            * not compile), or NULL: its tasks stay pending with this reason */
    cs_ccons *cons;        /* job.constraints compiled, in the same order */
    uint32_t name;         /* interned name */
    uint32_t *tasks;       /* task slot by index, CS_NONE where the copy has none */
    uint32_t ntaskidx;     /* length of `tasks` */
    uint32_t pending;      /* slot of the first pending task, CS_NONE; linked by cs_ctask.next */
    uint32_t pending_tail;
    uint32_t npending;
    uint32_t nplaced;      /* assigned or running, tentative included */
    uint32_t nended;       /* failed, finished or lost (no tentative change makes or
                            * unmakes one): upkeep skips a job with none */
    size_t bytes;          /* memory held for the record, its options and constraints */
    cs_arena arena;        /* where `job`, `opts` and `bad` live */
} cs_cjob;

/* An empty copy at version 0 (the first sync is a full one). On success
 * *out is the caller's: cs_copy_free. CS_ENOMEM. */
int cs_copy_new(cs_copy **out, cs_error *err);
void cs_copy_free(cs_copy *c);

/* Omega's sync: roll back every tentative change and bring the copy up to
 * the cell's version through `port` (borrowed; one call of its `sync`:
 * over nng a `sync` request with the copy's version and the compact form,
 * whose reply cs_copy_apply_bytes applies). On failure the copy is left
 * consistent but possibly behind or partly updated, and its version is
 * reset to 0 so that the next sync fetches everything. Errors: the port's
 * (CS_EIO on a timeout, the server's code on an error reply) and those of
 * cs_copy_apply. */
int cs_copy_sync(cs_copy *c, const cs_sched_port *port, cs_error *err);

/* Apply one `sync` reply body: {"version", "full", "machines", "jobs",
 * "tasks"}. Tentative changes are rolled back first. full = true replaces
 * the whole copy; otherwise each record is inserted or replaced (records are
 * never deleted). Jobs whose version did not change are not decoded again.
 * `reply` is borrowed (only read during the call). A malformed reply is
 * CS_EPROTO naming the record and field — also a task whose job, or a
 * placed task whose machine, the copy does not hold; CS_ENOMEM. On failure
 * the version is reset to 0, as in cs_copy_sync. */
int cs_copy_apply(cs_copy *c, const msgpack_object *reply, cs_error *err);

/* The same for a reply body as bytes (data[0..len), borrowed: only read
 * during the call), read in place: in the compact form (docs/protocol.md
 * §5.7: "form": "compact", tasks as runs of positional entries), or in the
 * map form (no "form", or "map": a server that predates the compact form)
 * through cs_copy_apply. Both give the same copy. Errors as cs_copy_apply;
 * a malformed entry is CS_EPROTO naming it ("sync: tasks[3]: field
 * 'machine' (4) is not an unsigned integer"). */
int cs_copy_apply_bytes(cs_copy *c, const void *data, size_t len, cs_error *err);

/* The same, for a reader that asks for a full sync in pieces (protocol.md
 * §5.7, "chunk"; schedulers/port_nng.c): the reply may also be a piece,
 * and *piece (NULL: not wanted) says whether it was one and *at (NULL:
 * not wanted) what it says — base, ids, and with `more` where the request
 * for the next goes on (cs_sync_req.cont, .at). The first piece (full)
 * replaces the copy as a full reply does; each later one (full false)
 * adds its records, and must continue the pieces the copy is receiving
 * (the same base; else CS_EPROTO). While pieces come the copy's version
 * is 0: it mixes versions and is not for placement. After the last its
 * version is the pieces' base, and the reader syncs from there (with
 * "gone"): that delta sends again every record changed since base, which
 * replaces what a later piece read at a newer version. The compact form
 * only: a piece in the map form is CS_EPROTO. Errors as cs_copy_apply; on
 * failure the version is reset to 0 and the pieces forgotten. */
int cs_copy_apply_piece(cs_copy *c, const void *data, size_t len, bool *piece, cs_sync_piece *at,
                        cs_error *err);

/* One `sync` request `req` (only read), made by whoever reads for the
 * copy (schedulers/port_nng.c over a client): *body, len bytes, is the
 * reply's body, borrowed until the next call. Errors: the caller's. */
typedef int (*cs_copy_sync_call)(void *ctx, const cs_sync_req *req, const void **body,
                                 size_t *len, cs_error *err);

/* Bring the copy up to date through `call` (ctx passed along): a sync
 * from the copy's version in the compact form, asking for "gone" and,
 * as the copy says, omitting starts; `min_index` as cs_sync_req's. With
 * `chunk` > 0 a full reply comes in pieces of at most that many records
 * (protocol.md §5.7): the next is asked for while the last says `more`,
 * then the changes since the pieces' base, which make the copy one
 * version again; a catch-up delta that comes back as a first piece (its
 * base fell behind the log floor) starts the pieces again, up to four
 * times (then CS_EUNAVAIL). A server that answers whole is read as
 * before. Errors: call's and cs_copy_apply_piece's; on failure the
 * version is 0. */
int cs_copy_sync_with(cs_copy *c, cs_copy_sync_call call, void *ctx, uint32_t chunk,
                      uint64_t min_index, cs_error *err);

/* The same from a snapshot of a store in this process (borrowed; the
 * caller closes it): what a sync through a server holding that store
 * would apply, in the same order — the reply cs_sync_reply_encode would
 * pack for the copy's version, compact, leaving out running tasks if the
 * copy does — without packing and reading it (the in-process port's sync:
 * a simulated day applies tens of millions of records). *full says
 * whether the reply was the whole cell. Errors as cs_copy_apply, and the
 * store's; on failure the version is reset to 0. */
int cs_copy_apply_snap(cs_copy *c, cs_snap *snap, bool *full, cs_error *err);

/* Whether cs_copy_sync asks the server to leave out the tasks whose only
 * change was to start running ("omit": "running", docs/protocol.md §5.7):
 * the copy then keeps such a task `assigned` until something else about
 * it changes (it ends, fails, is lost or reports its health). For a
 * scheduler that treats the two alike (cell-batch): at scale every task
 * starts once, so its syncs read half the tasks. Off by default. */
void cs_copy_omit_running(cs_copy *c, bool omit);
/* Whether it does (what a port's sync asks for). */
bool cs_copy_omits_running(const cs_copy *c);

/* The top-level fields of a `sync` reply body, found in place: what
 * cs_copy_apply_bytes starts with, public for other readers of sync
 * replies (cellbench's watcher), which walk `tasks` with
 * cs_read_task_entry when `compact`. */
typedef struct cs_copy_reply {
    uint64_t version;
    bool full;
    bool compact;                    /* "form": "compact"; false: the map form */
    cs_mp_cur machines, jobs, tasks; /* each spans its field's value, not yet read */
    bool has_gone;                   /* "gone": the collected jobs (a delta's), in `gone` */
    cs_mp_cur gone;
    bool piece;                      /* "base", "ids" and "more" (and "next" with more): */
    cs_sync_piece at;                /* a piece of a full sync in pieces, which says this */
} cs_copy_reply;

/* Find the fields of reply body data[0..len) (borrowed: the cursors point
 * into it). "version", "full", "machines", "jobs" and "tasks" are required,
 * once each; "form" ("map" or "compact"), "gone" and a piece's "base",
 * "ids", "more" and "next" (all or none; "next" with more only) are
 * optional; other keys are skipped. Values other than version, full and form are not checked here.
 * CS_EPROTO naming the field ("sync: field 'tasks' is missing"). */
int cs_copy_read_reply(const void *data, size_t len, cs_copy_reply *r, cs_error *err);

/* The cell version the copy reflects (0 before the first sync). */
uint64_t cs_copy_version(const cs_copy *c);

/* ---- reading the copy ---------------------------------------------------- */

uint32_t cs_copy_nmachines(const cs_copy *c);
uint32_t cs_copy_njobs(const cs_copy *c);
uint32_t cs_copy_ntasks(const cs_copy *c);

/* By slot (< the count above). */
const cs_cmachine *cs_copy_machine_at(const cs_copy *c, uint32_t slot);
const cs_cjob *cs_copy_job_at(const cs_copy *c, uint32_t slot);
const cs_ctask *cs_copy_task_at(const cs_copy *c, uint32_t slot);

/* By id: the slot, or CS_NONE when the copy has no such record. */
uint32_t cs_copy_machine_slot(const cs_copy *c, cs_id id);
uint32_t cs_copy_job_slot(const cs_copy *c, cs_id id);
uint32_t cs_copy_task_slot(const cs_copy *c, cs_id id);
/* By id: the record, or NULL. */
const cs_cmachine *cs_copy_machine(const cs_copy *c, cs_id id);
const cs_cjob *cs_copy_job(const cs_copy *c, cs_id id);
const cs_ctask *cs_copy_task(const cs_copy *c, cs_id id);

/* The active job named `name` (borrowed), or NULL. */
const cs_cjob *cs_copy_job_named(const cs_copy *c, const char *name);
/* The slot of the active job whose interned name is `name`, or CS_NONE. */
uint32_t cs_copy_job_named_slot(const cs_copy *c, uint32_t name);

/* An interned string (machine or job name, attribute key or value). The
 * string is the copy's: valid until the next sync or apply. */
const char *cs_copy_str(const cs_copy *c, uint32_t id);
/* The id of `s` if some record uses it, else CS_NONE. */
uint32_t cs_copy_find_str(const cs_copy *c, const char *s);
/* The table itself, for cs_ccons_match. */
const cs_strtab *cs_copy_strtab(const cs_copy *c);

/* Whether any machine the copy has seen carried a NoExecute taint (one
 * that lost it since still counts): false lets upkeep skip checking every
 * placed task's machine, which on a large cell is most of a round. */
bool cs_copy_noexecute(const cs_copy *c);

/* The machine's taints: *triples points to n (key, value, effect) triples,
 * key and value interned, effect a cs_taint_effect, sorted by key name then
 * effect; returns n. Borrowed like the machine. */
uint32_t cs_copy_taints(const cs_copy *c, const cs_cmachine *m, const uint32_t **triples);

/* The machine's value of attribute `key` (an interned id), or CS_NONE. */
uint32_t cs_copy_attr(const cs_copy *c, const cs_cmachine *m, uint32_t key);
/* The machine's attributes: *pairs points to n (key, value) id pairs,
 * sorted by key name; returns n. Borrowed like the machine. */
uint32_t cs_copy_attrs(const cs_copy *c, const cs_cmachine *m, const uint32_t **pairs);

/* The job's compiled constraints, writable (a LIKE keeps its verdicts per
 * value in them). NULL when the job has none. */
cs_ccons *cs_copy_job_cons(cs_copy *c, uint32_t job_slot);

/* Up to `max` ids of the job's pending tasks, in the order they became
 * pending (by index after a sync), into `out` (caller storage); returns how
 * many were written. 0 for an unknown job. */
size_t cs_copy_pending(const cs_copy *c, cs_id job, cs_id *out, size_t max);

/* ---- tentative changes ----------------------------------------------------- */

/* Reserve `machine` for pending `task`: the task becomes ASSIGNED there with
 * `res` and `ports` (nports entries, in the job's port order; copied), and
 * the machine's allocated, ports in use and ntasks grow. Nothing is checked
 * against capacity (the placer decides what fits); a port already in use on
 * the machine, or named twice, is refused. Errors, with nothing changed:
 * CS_ENOTFOUND (unknown task or machine), CS_ESTATE (task not pending, port
 * in use), CS_EINVAL (more than 64 ports), CS_ENOMEM. */
int cs_copy_claim(cs_copy *c, cs_id task, cs_id machine, const cs_res *res,
                  const uint16_t *ports, uint32_t nports, cs_error *err);

/* Tentatively evict placed `task` (preemption): it becomes PREEMPTED and
 * gives back its resources and ports on its machine. CS_ENOTFOUND,
 * CS_ESTATE (not placed), CS_ENOMEM; nothing changed on error. */
int cs_copy_evict(cs_copy *c, cs_id task, cs_error *err);

/* Tentatively end placed `task`'s placement and put it back among its
 * job's pending tasks (last), as a commit release to pending does (a
 * restart in place, protocol §7.1): it gives back its resources and ports,
 * asks for its job's resources again, and its health is unknown. The
 * placer may then claim it in the same decision. CS_ENOTFOUND, CS_ESTATE
 * (not placed), CS_ENOMEM; nothing changed on error. */
int cs_copy_requeue(cs_copy *c, cs_id task, cs_error *err);

/* Withhold `res` of `machine` from the placer: its allocated grows by
 * `res` (copied), as if a task held it, and nothing else changes (no
 * task, no ports, ntasks as it was). A two-level resource manager's view
 * (tools/cellsim_kernel.c, mesos): right after a sync, every machine's
 * free resources beyond what the framework was offered are held, so the
 * placer sees only the offer. Undone like a claim: by cs_copy_undo past
 * its mark, and so by the next sync's rollback. Errors, with nothing
 * changed: CS_ENOTFOUND (unknown machine), CS_EINVAL (a negative amount),
 * CS_ENOMEM. */
int cs_copy_hold(cs_copy *c, cs_id machine, const cs_res *res, cs_error *err);

/* The undo log's length: a mark to come back to. */
size_t cs_copy_mark(const cs_copy *c);
/* Undo every tentative change made after `mark`, newest first. */
void cs_copy_undo(cs_copy *c, size_t mark);
/* Undo every tentative change (cs_copy_undo(c, 0)). */
void cs_copy_rollback(cs_copy *c);

/* ---- memory ------------------------------------------------------------------ */

typedef struct cs_copy_mem {
    size_t machines; /* machine array, id index, ports in use, attribute sets */
    size_t strings;  /* interned names, keys and values */
    size_t jobs;     /* job array, id and name indexes, records, options, constraints, task-by-index arrays */
    size_t tasks;    /* task array, id index, ports */
    size_t undo;     /* the undo log */
    size_t total;
} cs_copy_mem;

/* What the copy holds, in bytes, by part (arrays at their capacity). */
void cs_copy_memory(const cs_copy *c, cs_copy_mem *out);

#endif
