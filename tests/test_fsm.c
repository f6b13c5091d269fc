/* test_fsm.c — the state machine (txn/command.h): one function applies any
 * command and returns its result; replaying the log, refusals included,
 * reproduces the store byte for byte and the same results.
 *
 * The property test drives store A with a random mix of commands (fixed
 * seed) built as a proposer builds them, many of which the cell must
 * refuse: a job name already taken, unknown ids, claims that overcommit,
 * reports on stale attempts, scales of ended jobs, a collection of an
 * active job. Then:
 *   - the log of A, replayed into an empty store B through cs_command_apply
 *     (the bytes decoded, as a replica or Raft's FSM will), gives A's store
 *     byte for byte and, entry by entry, the results A's logged commands had;
 *   - every command, logged or not, applied to an empty store C in write
 *     groups of random sizes (cellstated's writer batches so) gives the
 *     same results and the same store;
 *   - each result's machines are exactly what the log says the command
 *     changed (cs_snap_changes_since), so that nobody needs to read it back;
 *   - a refusal moves no version and adds nothing to a reader's change set.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cellstate/rng.h"
#include "tests/support.h"
#include "txn/command.h"
#include "txn/ops.h"

/* ---- results, kept for comparison ------------------------------------------ */

#define MAX_OUT 64
#define MAX_MACH 16

typedef struct rec {
    uint8_t kind;
    int status;
    char message[CS_ERROR_MSG_SIZE];
    uint64_t version;
    bool logged;
    cs_id id;
    uint64_t tversion;
    bool replayed;
    uint32_t committed, conflicts, nclaims, nreleases, npreempts;
    uint8_t out[MAX_OUT];
    cs_id machines[MAX_MACH];
    size_t nmachines;
} rec;

static void keep(rec *k, const cs_result *r)
{
    memset(k, 0, sizeof *k);
    k->kind = r->kind;
    k->status = r->status;
    memcpy(k->message, r->message, sizeof k->message);
    k->version = r->version;
    k->logged = r->logged;
    k->id = r->id;
    const cs_txn_result *t = &r->txn;
    k->tversion = t->version;
    k->replayed = t->replayed;
    k->committed = t->committed;
    k->conflicts = t->conflicts;
    k->nclaims = t->nclaims;
    k->nreleases = t->nreleases;
    k->npreempts = t->npreempts;
    cr_assert_leq(t->nclaims + t->nreleases + t->npreempts, MAX_OUT);
    if (t->nclaims > 0)
        memcpy(k->out, t->claims, t->nclaims);
    if (t->nreleases > 0)
        memcpy(k->out + t->nclaims, t->releases, t->nreleases);
    if (t->npreempts > 0)
        memcpy(k->out + t->nclaims + t->nreleases, t->preempts, t->npreempts);
    cr_assert_leq(r->nmachines, MAX_MACH);
    if (r->nmachines > 0)
        memcpy(k->machines, r->machines, r->nmachines * sizeof *r->machines);
    k->nmachines = r->nmachines;
}

static void same_result(const rec *a, const rec *b, const char *what, size_t i)
{
    cr_assert_eq(a->kind, b->kind, "%s %zu: kind", what, i);
    cr_assert_eq(a->status, b->status, "%s %zu (%s): status %d, then %d (%s / %s)", what, i,
                 cs_cmd_name(a->kind), a->status, b->status, a->message, b->message);
    cr_assert_str_eq(a->message, b->message, "%s %zu: message", what, i);
    cr_assert_eq(a->version, b->version, "%s %zu (%s): version %llu, then %llu", what, i,
                 cs_cmd_name(a->kind), (unsigned long long)a->version,
                 (unsigned long long)b->version);
    cr_assert_eq(a->logged, b->logged, "%s %zu: logged", what, i);
    cr_assert_eq(a->id, b->id, "%s %zu: id", what, i);
    cr_assert_eq(a->tversion, b->tversion, "%s %zu: transaction version", what, i);
    cr_assert_eq(a->replayed, b->replayed, "%s %zu: replayed", what, i);
    cr_assert(a->committed == b->committed && a->conflicts == b->conflicts &&
                  a->nclaims == b->nclaims && a->nreleases == b->nreleases &&
                  a->npreempts == b->npreempts,
              "%s %zu: transaction counts", what, i);
    cr_assert_arr_eq(a->out, b->out, MAX_OUT, "%s %zu: outcomes", what, i);
    cr_assert_eq(a->nmachines, b->nmachines, "%s %zu (%s): %zu machines, then %zu", what, i,
                 cs_cmd_name(a->kind), a->nmachines, b->nmachines);
    cr_assert_arr_eq(a->machines, b->machines, a->nmachines * sizeof *a->machines,
                     "%s %zu: machines", what, i);
}

/* ---- the command mix ------------------------------------------------------------ */

#define NCMDS 600

typedef struct logged_cmd {
    uint8_t kind;
    uint8_t *bytes;
    size_t len;
} logged_cmd;

typedef struct gen {
    uint64_t rng;
    uint64_t clock; /* the proposer's wall clock: stamped into commands */
    uint64_t req;   /* the scheduler's request counter */
    cs_arena a;
} gen;

static const char *const machine_names[] = {"m0", "m1", "m2", "m3", "m4"};
static const char *const job_names[] = {"a", "b", "c", "d", "e", "f"};

static uint32_t below(gen *g, uint32_t n) { return cs_rng_below(&g->rng, n); }

/* An id among the first `n`, or one past them now and then (unknown). */
static cs_id some_id(gen *g, uint32_t n) { return 1 + below(g, n + 2); }

static int max_machine(void *ctx, const cs_machine *m)
{
    uint32_t *n = ctx;
    *n = m->id > *n ? (uint32_t)m->id : *n;
    return 0;
}

static int max_job(void *ctx, const cs_job *j)
{
    uint32_t *n = ctx;
    *n = j->id > *n ? (uint32_t)j->id : *n;
    return 0;
}

/* The highest machine (what 0) or job id in `s`: ids are handed out in
 * order, and collected jobs leave holes below it. */
static uint32_t count_of(cs_store *s, uint8_t what)
{
    cs_snap *snap;
    cs_error err = {0};
    cr_assert_eq(cs_snap_open(s, &snap, &err), CS_OK, "%s", err.msg);
    uint32_t n = 0;
    if (what == 0)
        cr_assert_eq(cs_snap_each_machine(snap, max_machine, &n, &err), CS_OK, "%s", err.msg);
    else
        cr_assert_eq(cs_snap_each_job(snap, max_job, &n, &err), CS_OK, "%s", err.msg);
    cs_snap_close(snap);
    return n;
}

/* Task `index` of job `job` as A has it now; false when absent. */
static bool read_task(cs_store *s, cs_id job, uint32_t index, cs_arena *a, cs_task *t)
{
    cs_snap *snap;
    cs_error err = {0};
    cr_assert_eq(cs_snap_open(s, &snap, &err), CS_OK, "%s", err.msg);
    bool ok = cs_snap_task(snap, cs_task_id(job, index), a, t, NULL) == CS_OK;
    cs_snap_close(snap);
    return ok;
}

static cs_job job_of(gen *g, const char *name)
{
    cs_job j = {0};
    j.name = name;
    j.kind = below(g, 3) == 0 ? CS_JOB_SERVICE : CS_JOB_BATCH;
    j.priority = (int32_t)below(g, 3);
    j.count = below(g, 5);
    j.res = (cs_res){100 * (1 + below(g, 4)), 100, 0};
    j.cmd = "true";
    return j;
}

/* A transaction of 1..4 claims on tasks of the first jobs (some unknown,
 * some placed already), on machines that may be full or down; a release
 * now and then; incremental or gang. Every few a repeat of an earlier
 * request, answered from its first result. */
static void build_txn(gen *g, cs_store *s, uint32_t njobs, uint32_t nmach, cs_txn *t)
{
    uint64_t req = g->req > 1 && below(g, 8) == 0 ? 1 + below(g, (uint32_t)g->req) : ++g->req;
    cs_txn_init(t, 1, req, 0, below(g, 4) == 0 ? CS_CONFLICT_COARSE : CS_CONFLICT_FINE,
                below(g, 4) == 0 ? CS_COMMIT_GANG : CS_COMMIT_INCREMENTAL);
    uint32_t nclaims = 1 + below(g, 4);
    cs_id used[8];
    uint32_t nused = 0;
    for (uint32_t i = 0; i < nclaims; i++) {
        /* An unknown task refuses the whole transaction: now and then. */
        cs_id job = below(g, 10) == 0 ? some_id(g, njobs) : 1 + below(g, njobs);
        uint32_t index = below(g, 10) == 0 ? below(g, 5) : below(g, 2);
        cs_id task = cs_task_id(job, index);
        bool dup = false;
        for (uint32_t k = 0; k < nused; k++)
            dup |= used[k] == task;
        if (dup && below(g, 4) != 0)
            continue; /* a task twice is refused: now and then only */
        used[nused++] = task;
        cs_res res = {100 * (1 + below(g, 6)), 100, 0};
        cr_assert_eq(cs_txn_add_claim(t, task, some_id(g, nmach), &res, NULL, 0, below(g, 40)),
                     CS_OK);
    }
    if (below(g, 3) == 0) {
        cs_arena_reset(&g->a);
        cs_task tk;
        cs_id job = some_id(g, njobs);
        uint32_t index = below(g, 5);
        if (read_task(s, job, index, &g->a, &tk) && nused < 8) {
            bool dup = false;
            for (uint32_t k = 0; k < nused; k++)
                dup |= used[k] == tk.id;
            static const uint8_t to[] = {CS_TASK_PENDING, CS_TASK_FINISHED, CS_TASK_KILLED};
            if (!dup)
                cr_assert_eq(cs_txn_add_release(t, tk.id, to[below(g, 3)], 0), CS_OK);
        }
    }
}

/* Build the next command of the mix into `c` (with what it borrows in
 * `t`, `ids`). */
static int next_command(gen *g, cs_store *s, cs_command *c, cs_txn *t, cs_id *ids,
                        cs_error *err)
{
    uint32_t nmach = count_of(s, 0), njobs = count_of(s, 1);
    g->clock += 1000;
    cs_arena_reset(&g->a);
    switch (nmach < 2 ? 0 : njobs < 2 ? 4 : below(g, 16)) {
    case 0: {
        cs_machine m = {0};
        m.name = machine_names[below(g, 5)];
        static const int64_t cpus[] = {1000, 2000, 600, 100};
        m.capacity = (cs_res){cpus[below(g, 4)], 4000, 1000};
        m.state = below(g, 6) == 0 ? CS_MACHINE_DOWN : CS_MACHINE_UP;
        return cs_cmd_machine_put(c, &m, err);
    }
    case 1: {
        static const uint8_t states[] = {CS_MACHINE_UP, CS_MACHINE_DRAINING, CS_MACHINE_DOWN,
                                         CS_MACHINE_UP};
        return cs_cmd_machine_state(c, some_id(g, nmach), states[below(g, 4)], err);
    }
    case 2: {
        uint8_t admin = (uint8_t)below(g, 4); /* 3: no such word */
        uint64_t deadline = admin == CS_ADMIN_DRAINING || below(g, 8) == 0 ? g->clock + 5000 : 0;
        return cs_cmd_machine_admin(c, some_id(g, nmach), admin, deadline, err);
    }
    case 3:
        return cs_cmd_drain_deadline(c, some_id(g, nmach), err);
    case 4: {
        cs_job j = job_of(g, job_names[below(g, 6)]);
        j.submitted = g->clock;
        return cs_cmd_job_submit(c, &j, err);
    }
    case 5:
        return cs_cmd_job_kill(c, some_id(g, njobs), g->clock, err);
    case 6:
        return cs_cmd_job_end(c, some_id(g, njobs), g->clock, err);
    case 7:
        return cs_cmd_job_scale(c, some_id(g, njobs), below(g, 6), err);
    case 8:
        return cs_cmd_job_surge(c, some_id(g, njobs), below(g, 3), err);
    case 9: {
        cs_id id = some_id(g, njobs);
        cs_job j = job_of(g, job_names[below(g, 6)]);
        cs_job cur;
        cs_snap *snap;
        cr_assert_eq(cs_snap_open(s, &snap, err), CS_OK);
        if (cs_snap_job(snap, id, &g->a, &cur, NULL) == CS_OK && below(g, 4) != 0) {
            j.name = cur.name; /* a name or kind that changes is refused */
            j.kind = cur.kind;
        }
        int rc = cs_cmd_job_update(c, id, &j, err);
        cs_snap_close(snap);
        return rc;
    }
    case 10: {
        char note[32];
        snprintf(note, sizeof note, "n%u", below(g, 3));
        return cs_cmd_job_note(c, some_id(g, njobs), note, err);
    }
    case 11:
    case 12: {
        cs_task tk;
        cs_task_report r = {cs_task_id(some_id(g, njobs), below(g, 5)), 1, CS_TASK_RUNNING, 0,
                            "", CS_TASK_HEALTH_UNKNOWN};
        if (read_task(s, cs_task_job(r.task), cs_task_index(r.task), &g->a, &tk))
            r.attempt = tk.attempts + (below(g, 5) == 0); /* now and then a stale one */
        static const uint8_t states[] = {CS_TASK_RUNNING, CS_TASK_RUNNING, CS_TASK_FINISHED,
                                         CS_TASK_FAILED};
        r.state = states[below(g, 4)];
        r.exit_code = r.state == CS_TASK_FAILED ? 3 : 0;
        r.reason = r.state == CS_TASK_FAILED ? "exit 3" : "";
        if (r.state == CS_TASK_RUNNING && below(g, 2) == 0)
            r.health = below(g, 2) ? CS_TASK_HEALTH_HEALTHY : CS_TASK_HEALTH_UNHEALTHY;
        return cs_cmd_task_report(c, &r, err);
    }
    case 13:
    case 14:
        build_txn(g, s, njobs, nmach, t);
        return cs_cmd_txn(c, t, err);
    default: {
        size_t n = 1 + below(g, 2);
        ids[0] = some_id(g, njobs);
        ids[1] = ids[0] + 1 + below(g, 2);
        return cs_cmd_job_gc(c, ids, n, err);
    }
    }
}

/* ---- logs and stores ----------------------------------------------------------------- */

typedef struct logbuf {
    logged_cmd *v;
    size_t n, cap;
} logbuf;

static int copy_entry(void *ctx, uint64_t version, uint32_t n, uint8_t kind, const void *cmd,
                      size_t len)
{
    (void)version;
    (void)n;
    logbuf *l = ctx;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        cr_assert_not_null(l->v);
    }
    logged_cmd *e = &l->v[l->n++];
    e->kind = kind;
    e->len = len;
    e->bytes = malloc(len ? len : 1);
    cr_assert_not_null(e->bytes);
    memcpy(e->bytes, cmd, len);
    return 0;
}

static void read_log(cs_store *s, logbuf *l)
{
    memset(l, 0, sizeof *l);
    cs_snap *snap;
    cs_error err = {0};
    cr_assert_eq(cs_snap_open(s, &snap, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_snap_each_log(snap, 0, copy_entry, l, &err), CS_OK, "%s", err.msg);
    cs_snap_close(snap);
}

static void logbuf_free(logbuf *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].bytes);
    free(l->v);
}

static void same_store(cs_store *a, cs_store *b, const char *what)
{
    uint8_t *pa, *pb;
    size_t na, nb;
    ts_dump(a, &pa, &na);
    ts_dump(b, &pb, &nb);
    cr_assert_eq(na, nb, "%s: %zu bytes, then %zu", what, na, nb);
    cr_assert_arr_eq(pa, pb, na, "%s: the stores differ", what);
    free(pa);
    free(pb);
}

/* What the log says changed after `since`: its machines, and whether
 * anything at all. */
static void changes_after(cs_store *s, uint64_t since, cs_changes *ch)
{
    cs_snap *snap;
    cs_error err = {0};
    cr_assert_eq(cs_snap_open(s, &snap, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_snap_changes_since(snap, since, ch, &err), CS_OK, "%s", err.msg);
    cs_snap_close(snap);
}

/* ---- the property ------------------------------------------------------------------------ */

Test(fsm, replaying_the_log_with_its_refusals_reproduces_the_store_and_the_results)
{
    ts_store A, B, C;
    ts_store_create(&A);
    gen g = {.rng = 0xf5e1, .clock = UINT64_C(1700000000000)};
    cs_arena_init(&g.a);
    cs_error err = {0};
    rec *ra = calloc(NCMDS, sizeof *ra);
    logged_cmd *all = calloc(NCMDS, sizeof *all);
    cr_assert(ra != NULL && all != NULL);
    cs_result r;
    cs_result_init(&r);
    int refusals[CS_ESTATE + 1] = {0};
    size_t taken = 0, repeats = 0, replayed = 0, conflicts = 0, woke = 0;

    for (size_t i = 0; i < NCMDS; i++) {
        cs_command c;
        cs_txn t;
        cs_txn_init(&t, 0, 0, 0, 0, 0);
        cs_id ids[2];
        int rc = next_command(&g, A.s, &c, &t, ids, &err);
        cr_assert_eq(rc, CS_OK, "command %zu: %s", i, err.msg);
        all[i].kind = c.kind;
        all[i].len = c.bytes.size;
        all[i].bytes = malloc(c.bytes.size);
        memcpy(all[i].bytes, c.bytes.data, c.bytes.size);
        uint64_t before = ts_version(A.s);

        cr_assert_eq(cs_command_apply_built(A.s, &c, &r, &err), CS_OK, "command %zu (%s): %s", i,
                     cs_cmd_name(c.kind), err.msg);
        keep(&ra[i], &r);
        cr_assert_eq(r.kind, c.kind);
        cs_changes ch;
        changes_after(A.s, before, &ch);
        if (r.status != CS_OK) {
            /* A refusal: logged, deterministic in words, and invisible to
             * readers: no version, no change. */
            cr_assert(cs_command_refusal(r.status), "command %zu: status %d", i, r.status);
            cr_assert(r.logged && r.message[0] != '\0');
            cr_assert_eq(r.version, before);
            cr_assert_eq(r.nmachines, 0);
            for (int k = 0; k < CS_KIND_COUNT; k++)
                cr_assert_eq(ch.n[k], 0, "command %zu: a refusal shows as a change", i);
            refusals[r.status]++;
        } else if (!r.logged) {
            cr_assert_eq(r.version, before, "a repeat that changes nothing moves no version");
            repeats++;
            replayed += r.txn.replayed;
        } else {
            /* Taken: its machines are what the log says it changed. */
            taken++;
            cr_assert_eq(ch.n[CS_KIND_MACHINE], r.nmachines,
                         "command %zu (%s): %zu machines in the log, %zu in the result", i,
                         cs_cmd_name(c.kind), ch.n[CS_KIND_MACHINE], r.nmachines);
            if (r.nmachines > 0)
                cr_assert_arr_eq(ch.ids[CS_KIND_MACHINE], r.machines,
                                 r.nmachines * sizeof *r.machines, "command %zu: machines", i);
            woke += r.nmachines > 0;
            conflicts += r.txn.conflicts;
        }
        cs_changes_free(&ch);
        cs_command_free(&c);
        cs_txn_free(&t);
    }
    /* The mix did what it is for: each kind of refusal, repeats, conflicts. */
    cr_assert_gt(refusals[CS_EEXIST], 0, "no duplicate name");
    cr_assert_gt(refusals[CS_ENOTFOUND], 5, "few unknown ids");
    cr_assert_gt(refusals[CS_ESTATE], 5, "few stale or ended");
    cr_assert_gt(refusals[CS_EINVAL], 5, "few invalid");
    cr_assert_gt(taken, NCMDS / 4, "taken %zu, repeats %zu, refused %d/%d/%d/%d", taken, repeats,
                 refusals[CS_EEXIST], refusals[CS_ENOTFOUND], refusals[CS_ESTATE],
                 refusals[CS_EINVAL]);
    cr_assert_gt(repeats, 0);
    cr_assert_gt(replayed, 0, "no transaction answered from its first result (%zu repeats)",
                 repeats);
    cr_assert_gt(conflicts, 10);
    cr_assert_gt(woke, 10);
    char why[256];
    cr_assert(ts_check_invariants(A.s, why, sizeof why), "%s", why);

    /* B: A's log, decoded and applied. */
    logbuf l;
    read_log(A.s, &l);
    ts_store_create(&B);
    size_t k = 0;
    for (size_t i = 0; i < l.n; i++) {
        cr_assert_eq(cs_command_apply(B.s, l.v[i].kind, l.v[i].bytes, l.v[i].len, &r, &err),
                     CS_OK, "replaying entry %zu (%s): %s", i, cs_cmd_name(l.v[i].kind), err.msg);
        cr_assert(r.logged, "entry %zu replayed without its log entry", i);
        while (k < NCMDS && !ra[k].logged)
            k++;
        cr_assert_lt(k, NCMDS);
        rec rb;
        keep(&rb, &r);
        same_result(&ra[k], &rb, "logged command", k);
        k++;
    }
    while (k < NCMDS && !ra[k].logged)
        k++;
    cr_assert_eq(k, NCMDS, "the log holds fewer commands than were logged");
    same_store(A.s, B.s, "the replayed store");

    /* C: every command, in write groups of 1 to 32, as cellstated's writer
     * batches them. */
    ts_store_create(&C);
    for (size_t i = 0; i < NCMDS;) {
        size_t n = 1 + below(&g, 32);
        if (n > NCMDS - i)
            n = NCMDS - i;
        cr_assert_eq(cs_store_group_begin(C.s, &err), CS_OK, "%s", err.msg);
        for (size_t j = i; j < i + n; j++) {
            cr_assert_eq(cs_command_apply(C.s, all[j].kind, all[j].bytes, all[j].len, &r, &err),
                         CS_OK, "command %zu in a group: %s", j, err.msg);
            rec rc;
            keep(&rc, &r);
            same_result(&ra[j], &rc, "grouped command", j);
        }
        bool abandoned = true;
        cr_assert_eq(cs_store_group_end(C.s, &abandoned, NULL, &err), CS_OK, "%s", err.msg);
        cr_assert_not(abandoned, "a refusal poisoned its group");
        i += n;
    }
    same_store(A.s, C.s, "the store built in groups");

    for (size_t i = 0; i < NCMDS; i++)
        free(all[i].bytes);
    free(all);
    free(ra);
    logbuf_free(&l);
    cs_result_free(&r);
    cs_arena_free(&g.a);
    ts_store_destroy(&C);
    ts_store_destroy(&B);
    ts_store_destroy(&A);
}

/* ---- results carry what the reply needs ------------------------------------------------ */

Test(fsm, a_result_names_ids_outcomes_and_machines)
{
    ts_store T;
    ts_store_create(&T);
    cs_error err = {0};
    cs_result r;
    cs_result_init(&r);
    cs_command c;

    cs_machine m = {0};
    m.name = "m1";
    m.capacity = (cs_res){1000, 1000, 0};
    m.state = CS_MACHINE_UP;
    cr_assert_eq(cs_cmd_machine_put(&c, &m, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_command_apply_built(T.s, &c, &r, &err), CS_OK, "%s", err.msg);
    cs_command_free(&c);
    cr_assert_eq(r.status, CS_OK);
    cs_id m1 = r.id;
    cr_assert_eq(m1, 1);
    cr_assert_eq(r.nmachines, 1);
    cr_assert_eq(r.machines[0], m1);
    cr_assert_eq(r.version, 1);

    cs_job j = {0};
    j.name = "web";
    j.kind = CS_JOB_SERVICE;
    j.count = 2;
    j.res = (cs_res){600, 100, 0};
    j.cmd = "true";
    j.submitted = 1234;
    cr_assert_eq(cs_cmd_job_submit(&c, &j, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_command_apply_built(T.s, &c, &r, &err), CS_OK, "%s", err.msg);
    cs_command_free(&c);
    cs_id job = r.id;
    cr_assert_eq(job, 1);
    cr_assert_eq(r.nmachines, 0, "a submission touches no machine");
    cr_assert_eq(r.version, 2);

    /* The same name again: refused with its reason, logged, version kept. */
    cr_assert_eq(cs_cmd_job_submit(&c, &j, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_command_apply_built(T.s, &c, &r, &err), CS_OK, "%s", err.msg);
    cs_command_free(&c);
    cr_assert_eq(r.status, CS_EEXIST);
    cr_assert(strstr(r.message, "web") != NULL, "%s", r.message);
    cr_assert(r.logged);
    cr_assert_eq(r.id, 0);
    cr_assert_eq(r.version, 2);
    cr_assert_eq(cs_result_error(&r, &err), CS_EEXIST);
    cr_assert_str_eq(err.msg, r.message);

    /* Two claims, the second over the machine's cpu: outcomes per claim. */
    cs_txn t;
    cs_txn_init(&t, 7, 1, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    cs_res res = {600, 100, 0};
    cr_assert_eq(cs_txn_add_claim(&t, cs_task_id(job, 0), m1, &res, NULL, 0, 0), CS_OK);
    cr_assert_eq(cs_txn_add_claim(&t, cs_task_id(job, 1), m1, &res, NULL, 0, 0), CS_OK);
    cr_assert_eq(cs_cmd_txn(&c, &t, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_command_apply_built(T.s, &c, &r, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(r.status, CS_OK);
    cr_assert_eq(r.txn.nclaims, 2);
    cr_assert_eq(r.txn.claims[0], CS_COMMITTED);
    cr_assert_eq(r.txn.claims[1], CS_CONFLICT_CPU);
    cr_assert_eq(r.txn.version, 3);
    cr_assert_eq(r.version, 3);
    cr_assert_eq(r.nmachines, 1);
    cr_assert_eq(r.machines[0], m1);
    cr_assert_not(r.txn.replayed);

    /* The same request again: its first result, not logged, nothing woken. */
    cr_assert_eq(cs_command_apply_built(T.s, &c, &r, &err), CS_OK, "%s", err.msg);
    cs_command_free(&c);
    cr_assert(r.txn.replayed);
    cr_assert_not(r.logged);
    cr_assert_eq(r.txn.claims[1], CS_CONFLICT_CPU);
    cr_assert_eq(r.nmachines, 0);
    cs_txn_free(&t);

    /* A kill releases the placed task: its machine is named. */
    cr_assert_eq(cs_cmd_job_kill(&c, job, 99, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_command_apply_built(T.s, &c, &r, &err), CS_OK, "%s", err.msg);
    cs_command_free(&c);
    cr_assert_eq(r.nmachines, 1);
    cr_assert_eq(r.machines[0], m1);

    /* Bytes that are no command are an error, not a result: nothing logged. */
    uint64_t v = ts_version(T.s);
    const uint8_t junk[] = {0xc1};
    cr_assert_eq(cs_command_apply(T.s, CS_CMD_JOB_KILL, junk, sizeof junk, &r, &err),
                 CS_ECORRUPT);
    cr_assert(strstr(err.msg, "job-kill") != NULL, "%s", err.msg);
    cr_assert_eq(ts_version(T.s), v);

    cs_result_free(&r);
    ts_store_destroy(&T);
}
