/* test_txn_prop.c — randomized property tests of Omega's commit, with fixed
 * seeds, in two kinds of runs.
 *
 * Real schedulers: cell-batch (two instances) and cell-service, the real
 * loop on the local port (schedulers/port.h), place and restart the cell's
 * jobs while the cell changes under them (machines cordoned, drained, going
 * down and coming back; agents reporting; jobs submitted, scaled, updated,
 * killed); before a commit, now and then the cell changes or another
 * scheduler runs a round, so that the transaction was decided on a stale
 * copy. Every commit they make is checked as below.
 *
 * Generated transactions: what no correct scheduler sends, to reach the
 * commit's every refusal — claims that ignore capacity, ports chosen on a
 * stale view, releases of tasks in any state, preemptions of whatever has
 * a lower priority, a deliberately impossible claim now and then — built
 * on snapshots that go stale (each resyncs only now and then) by three
 * such senders.
 *
 * Thousands of rounds, once per combination of fine/coarse x
 * incremental/gang. After every commit:
 *   - the cell invariants hold (no machine over capacity on any resource, no
 *     port held twice, allocations equal the sums of the tasks placed, the
 *     placed index exact, every task on at most one machine);
 *   - all-or-nothing is atomic: a gang transaction commits all its items or
 *     leaves every record untouched;
 *   - coarse-grained conflicts are a superset of fine-grained ones for the
 *     same transaction against the same store;
 *   - the dry run (cs_commit_check) predicted the commit exactly;
 *   - a replayed (scheduler, request) returns its first result, writes nothing.
 * At the end, replaying the commit log into an empty store reproduces the
 * store byte for byte.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "schedulers/kinds.h"
#include "cellstate/rng.h"
#include "schedulers/port.h"
#include "tests/cellbuild.h"
#include "tests/support.h"
#include "txn/command.h"

/* ---- deterministic randomness ------------------------------------------- */

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t rnd(rng *r) { return cs_rng_next(&r->s); }
static uint32_t below(rng *r, uint32_t n) { return cs_rng_below(&r->s, n); }
static bool chance(rng *r, uint32_t percent) { return below(r, 100) < percent; }

/* ---- a sender's view of the cell --------------------------------------- */

#define NMACHINES 10
#define NSCHED 3
#define PORT_LO 30000
#define PORT_HI 30011

typedef struct lmachine {
    cs_id id;
    uint64_t seq;
    uint8_t state;
    cs_res cap, alloc;
    uint8_t used[PORT_HI - PORT_LO + 1]; /* dynamic range */
    uint16_t fixed_used[8];              /* fixed ports seen in use */
    uint32_t nfixed;
} lmachine;

typedef struct ltask {
    cs_id id, job, machine;
    uint8_t state;
    int32_t prio;
    cs_res res;
} ltask;

typedef struct lcopy {
    uint64_t version;
    lmachine m[NMACHINES + 4];
    uint32_t nm;
    ltask *t;
    uint32_t nt, capt;
    struct ljob {
        cs_id id;
        int32_t prio;
        uint32_t nports;
        uint16_t ports[4];
        uint8_t state;
    } j[128];
    uint32_t nj;
} lcopy;

static int sync_machine(void *ctx, const cs_machine *m)
{
    lcopy *c = ctx;
    cr_assert_lt(c->nm, NMACHINES + 4);
    lmachine *lm = &c->m[c->nm++];
    memset(lm, 0, sizeof *lm);
    lm->id = m->id;
    lm->seq = m->seq;
    /* A cordoned or draining machine takes nothing new, as in the
     * schedulers' copy (cellcopy.h). */
    lm->state = m->state == CS_MACHINE_UP && m->admin != CS_ADMIN_ACTIVE ? CS_MACHINE_DRAINING
                                                                          : m->state;
    lm->cap = m->capacity;
    lm->alloc = m->allocated;
    for (uint32_t i = 0; i < m->nports; i++) {
        if (m->ports[i] >= PORT_LO && m->ports[i] <= PORT_HI)
            lm->used[m->ports[i] - PORT_LO] = 1;
        else if (lm->nfixed < 8)
            lm->fixed_used[lm->nfixed++] = m->ports[i];
    }
    return 0;
}

static int sync_job(void *ctx, const cs_job *j)
{
    lcopy *c = ctx;
    cr_assert_lt(c->nj, 128u);
    struct ljob *lj = &c->j[c->nj++];
    lj->id = j->id;
    lj->prio = j->priority;
    lj->nports = j->nports;
    lj->state = j->state;
    if (j->nports > 0)
        memcpy(lj->ports, j->ports, j->nports * sizeof *j->ports);
    return 0;
}

static struct ljob *ljob_of(lcopy *c, cs_id id)
{
    for (uint32_t i = 0; i < c->nj; i++)
        if (c->j[i].id == id)
            return &c->j[i];
    cr_assert_fail("job %llu not in local copy", (unsigned long long)id);
    return NULL;
}

static int sync_task(void *ctx, const cs_task *t)
{
    lcopy *c = ctx;
    if (c->nt == c->capt) {
        c->capt = c->capt ? 2 * c->capt : 256;
        c->t = realloc(c->t, c->capt * sizeof *c->t);
        cr_assert(c->t != NULL);
    }
    c->t[c->nt++] = (ltask){t->id, t->job, t->machine, t->state, ljob_of(c, t->job)->prio, t->res};
    return 0;
}

/* Omega's sync: the local copy becomes the cell as it is now. */
static void lsync(lcopy *c, cs_store *s)
{
    cs_snap *snap;
    cs_error err = {0};
    cr_assert_eq(cs_snap_open(s, &snap, &err), CS_OK, "%s", err.msg);
    c->nm = c->nt = c->nj = 0;
    c->version = cs_snap_version(snap);
    cr_assert_eq(cs_snap_each_machine(snap, sync_machine, c, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_snap_each_job(snap, sync_job, c, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_snap_each_task(snap, sync_task, c, &err), CS_OK, "%s", err.msg);
    cs_snap_close(snap);
}

static bool lfits(const lmachine *m, const cs_res *r)
{
    return m->state == CS_MACHINE_UP && m->alloc.cpu + r->cpu <= m->cap.cpu &&
           m->alloc.mem + r->mem <= m->cap.mem && m->alloc.disk + r->disk <= m->cap.disk;
}

static bool lfixed_free(const lmachine *m, uint16_t p)
{
    for (uint32_t i = 0; i < m->nfixed; i++)
        if (m->fixed_used[i] == p)
            return false;
    return true;
}

/* Choose ports on `m` for a task of `j` in the local view; false if none. */
static bool lports(rng *r, lmachine *m, const struct ljob *j, uint16_t *out)
{
    for (uint32_t p = 0; p < j->nports; p++) {
        if (j->ports[p] != 0) {
            if (!lfixed_free(m, j->ports[p]))
                return false;
            out[p] = j->ports[p];
            continue;
        }
        uint32_t n = PORT_HI - PORT_LO + 1, start = below(r, n), k;
        for (k = 0; k < n; k++) {
            uint32_t i = (start + k) % n;
            bool taken = m->used[i];
            for (uint32_t q = 0; q < p && !taken; q++)
                taken = out[q] == PORT_LO + i;
            if (!taken) {
                out[p] = (uint16_t)(PORT_LO + i);
                break;
            }
        }
        if (k == n)
            return false;
    }
    return true;
}

static void ltake(lmachine *m, const cs_res *r, const uint16_t *ports, uint32_t n)
{
    cs_res_add(&m->alloc, r);
    for (uint32_t p = 0; p < n; p++) {
        if (ports[p] >= PORT_LO && ports[p] <= PORT_HI)
            m->used[ports[p] - PORT_LO] = 1;
        else if (m->nfixed < 8)
            m->fixed_used[m->nfixed++] = ports[p];
    }
}

/* ---- building transactions ---------------------------------------------- */

static lmachine *lmachine_of(lcopy *c, cs_id id)
{
    for (uint32_t i = 0; i < c->nm; i++)
        if (c->m[i].id == id)
            return &c->m[i];
    return NULL;
}

static bool in_txn(const cs_txn *t, cs_id task)
{
    for (uint32_t i = 0; i < t->nclaims; i++)
        if (t->claims[i].task == task)
            return true;
    for (uint32_t i = 0; i < t->nreleases; i++)
        if (t->releases[i].task == task)
            return true;
    for (uint32_t i = 0; i < t->npreempts; i++)
        if (t->preempts[i].victim == task)
            return true;
    return false;
}

/* A transaction as a scheduler working on its (possibly stale) copy would
 * build it. Returns false if it found nothing to do. */
static bool build(rng *r, lcopy *c, cs_txn *t, uint32_t self)
{
    /* Releases: running tasks end, failed and lost ones are retried. Pick
     * among a few random tasks, preferring placed ones, so that the cell
     * turns over instead of filling up for good. */
    uint32_t nrel = chance(r, 60) ? 1 + below(r, 3) : 0;
    for (uint32_t k = 0; k < nrel && c->nt; k++) {
        ltask *lt = &c->t[below(r, c->nt)];
        for (int tries = 0; tries < 8 && !cs_task_state_placed(lt->state); tries++)
            lt = &c->t[below(r, c->nt)];
        if (in_txn(t, lt->id))
            continue;
        if (cs_task_state_placed(lt->state)) {
            static const uint8_t ends[] = {CS_TASK_FINISHED, CS_TASK_FAILED, CS_TASK_KILLED};
            cs_txn_add_release(t, lt->id, ends[below(r, 3)], (int32_t)below(r, 3));
        } else if (lt->state == CS_TASK_FAILED || lt->state == CS_TASK_LOST) {
            cs_txn_add_release(t, lt->id, CS_TASK_PENDING, 0);
        } else if (lt->state == CS_TASK_PENDING && chance(r, 10)) {
            cs_txn_add_release(t, lt->id, CS_TASK_KILLED, 0);
        }
    }

    /* Claims by randomized first fit on the local copy. */
    uint32_t want = 1 + below(r, 6);
    uint32_t start = below(r, c->nt ? c->nt : 1);
    for (uint32_t k = 0; k < c->nt && t->nclaims < want; k++) {
        ltask *lt = &c->t[(start + k) % c->nt];
        /* Omega spreads jobs over schedulers by hashing the job id; now and
         * then one strays onto another's job, so that tasks are raced for. */
        if (lt->state != CS_TASK_PENDING || in_txn(t, lt->id) ||
            (lt->job % NSCHED != self && !chance(r, 10)))
            continue;
        struct ljob *j = ljob_of(c, lt->job);
        uint16_t ports[4] = {0};
        uint32_t m0 = below(r, c->nm);
        bool placed = false;
        bool sloppy = chance(r, 3); /* a buggy scheduler: ignores capacity */
        for (uint32_t i = 0; i < c->nm && !placed; i++) {
            lmachine *m = &c->m[(m0 + i) % c->nm];
            if ((!sloppy && !lfits(m, &lt->res)) || !lports(r, m, j, ports))
                continue;
            cs_txn_add_claim(t, lt->id, m->id, &lt->res, ports, j->nports, m->seq);
            ltake(m, &lt->res, ports, j->nports);
            placed = true;
        }
        if (placed || !chance(r, 50))
            continue;
        /* Nothing fits: try to preempt a lower-priority task somewhere. */
        for (uint32_t v = 0; v < c->nt; v++) {
            ltask *victim = &c->t[(start + v) % c->nt];
            if (!cs_task_state_placed(victim->state) || victim->prio >= lt->prio ||
                in_txn(t, victim->id))
                continue;
            lmachine *m = lmachine_of(c, victim->machine);
            if (m == NULL || !lports(r, m, j, ports))
                continue;
            cs_txn_add_claim(t, lt->id, m->id, &lt->res, ports, j->nports, m->seq);
            cs_txn_add_preempt(t, victim->id, lt->id);
            cs_res_sub(&m->alloc, &victim->res);
            ltake(m, &lt->res, ports, j->nports);
            break;
        }
    }
    return t->nclaims + t->nreleases + t->npreempts > 0;
}

/* ---- cell events between transactions ------------------------------------ */

typedef struct placed_pick {
    rng *r;
    uint32_t seen;
    cs_id id;
    uint32_t attempt;
} placed_pick;

/* Reservoir-sample one placed task. */
static int pick_placed(void *ctx, const cs_task *t)
{
    placed_pick *p = ctx;
    if (cs_task_state_placed(t->state) && below(p->r, ++p->seen) == 0) {
        p->id = t->id;
        p->attempt = t->attempts;
    }
    return 0;
}

/* An agent's report on a random placed task: started, exited, failed; now
 * and then on a stale attempt, which must be refused without a write. */
static void agent_report(rng *r, cs_store *s)
{
    cs_snap *snap;
    cs_error err = {0};
    cr_assert_eq(cs_snap_open(s, &snap, &err), CS_OK);
    placed_pick p = {r, 0, 0, 0};
    cr_assert_eq(cs_snap_each_task(snap, pick_placed, &p, &err), CS_OK);
    uint64_t v0 = cs_snap_version(snap);
    cs_snap_close(snap);
    if (p.seen == 0)
        return;
    static const uint8_t states[] = {CS_TASK_RUNNING, CS_TASK_RUNNING, CS_TASK_FINISHED,
                                     CS_TASK_FAILED};
    uint8_t st = states[below(r, 4)];
    bool stale = chance(r, 10);
    uint64_t v = 0;
    int rc = cs_op_task_status(s, p.id, p.attempt + (stale ? 1 : 0), st,
                               st == CS_TASK_FAILED ? 1 : 0, st == CS_TASK_FAILED ? "exit 1" : NULL,
                               &v, &err);
    if (stale) {
        cr_assert_eq(rc, CS_ESTATE, "a stale report was accepted");
        return;
    }
    cr_assert_eq(rc, CS_OK, "%s", err.msg);
    cr_assert_geq(v, v0);
}

static void cell_event(rng *r, cs_store *s, uint32_t *jobs_made)
{
    cs_error err = {0};
    uint32_t what = below(r, 100);
    if (what < 5) {
        /* The operator: cordon, drain (with a deadline or none), uncordon,
         * or a drain deadline coming (a no-op on a machine not draining). */
        cs_id m = 1 + below(r, NMACHINES);
        if (chance(r, 30)) {
            cr_assert_eq(cs_op_machine_drain_deadline(s, m, NULL, &err), CS_OK, "%s", err.msg);
        } else {
            /* Mostly back to active, so that the cell stays full enough to
             * preempt. */
            static const uint8_t admins[] = {CS_ADMIN_ACTIVE, CS_ADMIN_ACTIVE, CS_ADMIN_CORDONED,
                                             CS_ADMIN_DRAINING};
            uint8_t admin = admins[below(r, 4)];
            uint64_t deadline = admin == CS_ADMIN_DRAINING && chance(r, 70)
                                    ? TS_SUBMITTED_MS + below(r, 1000)
                                    : 0;
            cr_assert_eq(cs_op_machine_admin(s, m, admin, deadline, NULL, &err), CS_OK, "%s",
                         err.msg);
        }
    } else if (what < 30) {
        cs_id m = 1 + below(r, NMACHINES);
        static const uint8_t states[] = {CS_MACHINE_UP, CS_MACHINE_UP, CS_MACHINE_DRAINING,
                                         CS_MACHINE_DOWN};
        cr_assert_eq(cs_op_machine_state(s, m, states[below(r, 4)], NULL, &err), CS_OK, "%s",
                     err.msg);
    } else if (what < 60) {
        agent_report(r, s);
    } else if (what < 75 && *jobs_made < 100) {
        char name[32];
        snprintf(name, sizeof name, "job%u", (*jobs_made)++);
        uint16_t fixed[2] = {0, (uint16_t)(8000 + below(r, 3))};
        uint32_t np = below(r, 3);
        ts_job(s, name, (uint8_t)below(r, 2), (int32_t)below(r, 4) * 10, 3 + below(r, 10),
               250 * (1 + below(r, 6)), 256 * (1 + below(r, 8)), below(r, 2) * 1000,
               np == 2 ? fixed : NULL, np);
    } else if (what < 88 && *jobs_made > 0) {
        /* Scale, or update the resources of, a random job (killed ones refuse). */
        cs_id j = 1 + below(r, *jobs_made);
        int rc;
        if (chance(r, 50)) {
            rc = cs_op_job_scale(s, j, below(r, 14), NULL, &err);
        } else {
            cs_arena a;
            cs_arena_init(&a);
            cs_snap *snap;
            cr_assert_eq(cs_snap_open(s, &snap, &err), CS_OK);
            cs_job spec;
            cr_assert_eq(cs_snap_job(snap, j, &a, &spec, &err), CS_OK, "%s", err.msg);
            cs_snap_close(snap);
            spec.res.cpu = 250 * (1 + below(r, 6));
            spec.count = below(r, 14);
            rc = cs_op_job_update(s, j, &spec, NULL, &err);
            cs_arena_free(&a);
        }
        cr_assert(rc == CS_OK || rc == CS_ESTATE, "rc %d: %s", rc, err.msg);
    } else if (*jobs_made > 0) {
        /* Kill a random job, or end it: a batch job whose tasks have all
         * ended does, others refuse (tasks not ended, a service job, an
         * ended job), writing nothing. */
        cs_id j = 1 + below(r, *jobs_made);
        if (chance(r, 50)) {
            cr_assert_eq(cs_op_job_kill(s, j, 1000, NULL, &err), CS_OK, "%s", err.msg);
        } else {
            int rc = cs_op_job_end(s, j, 2000, NULL, &err);
            cr_assert(rc == CS_OK || rc == CS_ESTATE || rc == CS_EINVAL, "rc %d: %s", rc, err.msg);
        }
    }
}

/* ---- the property run ---------------------------------------------------- */

typedef struct counts {
    uint32_t commits, conflicts, coarse_only, gang_aborts, replays, preempted;
} counts;

static bool same_cell(cs_store *s, const uint8_t *before, size_t blen)
{
    uint8_t *after;
    size_t alen;
    ts_dump_cell(s, &after, &alen);
    bool same = alen == blen && memcmp(before, after, blen) == 0;
    free(after);
    return same;
}

static bool same_outcomes(const cs_txn_result *a, const cs_txn_result *b)
{
    return a->nclaims == b->nclaims && a->nreleases == b->nreleases &&
           a->npreempts == b->npreempts && a->committed == b->committed &&
           a->conflicts == b->conflicts &&
           (a->nclaims == 0 || memcmp(a->claims, b->claims, a->nclaims) == 0) &&
           (a->nreleases == 0 || memcmp(a->releases, b->releases, a->nreleases) == 0) &&
           (a->npreempts == 0 || memcmp(a->preempts, b->preempts, a->npreempts) == 0);
}

static bool all_committed(const cs_txn_result *r)
{
    for (uint32_t i = 0; i < r->nclaims; i++)
        if (r->claims[i] != CS_COMMITTED)
            return false;
    for (uint32_t i = 0; i < r->nreleases; i++)
        if (r->releases[i] != CS_COMMITTED)
            return false;
    for (uint32_t i = 0; i < r->npreempts; i++)
        if (r->preempts[i] != CS_COMMITTED)
            return false;
    return true;
}

/* Judge `tx` in both detection modes on the current store: every item that
 * fine-grained detection rejects, coarse-grained must reject too. Returns
 * the verdict for the transaction's own mode in `pred`. */
static void check_superset(cs_store *s, cs_txn *tx, cs_txn_result *pred, counts *cnt)
{
    cs_snap *snap;
    cs_error err = {0};
    cr_assert_eq(cs_snap_open(s, &snap, &err), CS_OK, "%s", err.msg);
    cs_txn_result rf, rc;
    cs_txn_result_init(&rf);
    cs_txn_result_init(&rc);
    uint8_t mode = tx->conflict;
    tx->conflict = CS_CONFLICT_FINE;
    cr_assert_eq(cs_commit_check(snap, tx, &rf, &err), CS_OK, "%s", err.msg);
    tx->conflict = CS_CONFLICT_COARSE;
    cr_assert_eq(cs_commit_check(snap, tx, &rc, &err), CS_OK, "%s", err.msg);
    tx->conflict = mode;
    const uint8_t *f[3] = {rf.claims, rf.releases, rf.preempts};
    const uint8_t *c[3] = {rc.claims, rc.releases, rc.preempts};
    uint32_t n[3] = {rf.nclaims, rf.nreleases, rf.npreempts};
    for (int l = 0; l < 3; l++)
        for (uint32_t i = 0; i < n[l]; i++) {
            if (f[l][i] != CS_COMMITTED)
                cr_assert_neq(c[l][i], CS_COMMITTED,
                              "list %d item %u: fine rejects (%s) but coarse commits", l, i,
                              cs_outcome_str(f[l][i]));
            if (f[l][i] == CS_COMMITTED && c[l][i] != CS_COMMITTED)
                cnt->coarse_only++;
        }
    cs_txn_result *keep = mode == CS_CONFLICT_FINE ? &rf : &rc;
    cs_txn_result *drop = mode == CS_CONFLICT_FINE ? &rc : &rf;
    *pred = *keep;
    cs_txn_result_free(drop);
    cs_snap_close(snap);
}

/* Commit `tx` to `s` (res initialised by the caller, who keeps it) and
 * check it: fine-grained rejections are a subset of coarse-grained ones, the
 * dry run predicted the result, the cell invariants hold, a gang
 * transaction committed all or left every byte, nothing committed means
 * nothing changed and anything committed advances the version by one; now
 * and then the same request again must be answered with its first result
 * and write nothing. `tx` is restored as it came. */
static void commit_checked(cs_store *s, cs_txn *tx, cs_txn_result *res, rng *r, counts *cnt,
                           uint32_t round)
{
    cs_error err = {0};
    char why[256];
    cs_txn_result pred;
    check_superset(s, tx, &pred, cnt);

    uint8_t *before;
    size_t blen;
    ts_dump_cell(s, &before, &blen);
    cs_snap *snap;
    cr_assert_eq(cs_snap_open(s, &snap, &err), CS_OK);
    uint64_t v0 = cs_snap_version(snap);
    cs_snap_close(snap);

    cr_assert_eq(cs_commit(s, tx, res, &err), CS_OK, "round %u: %s", round, err.msg);
    cr_assert(!res->replayed);
    cr_assert(same_outcomes(&pred, res), "round %u: the dry run predicted another result", round);
    cr_assert(ts_check_invariants(s, why, sizeof why), "round %u: %s", round, why);

    bool all = all_committed(res);
    bool any = res->committed > 0;
    for (uint32_t i = 0; i < res->nreleases; i++)
        any |= res->releases[i] == CS_COMMITTED;
    if (tx->commit == CS_COMMIT_GANG) {
        /* Atomic: all of it, or not a byte of the cell. */
        if (!all) {
            cr_assert(same_cell(s, before, blen), "round %u: gang abort changed the cell", round);
            cr_assert_eq(res->version, v0);
            cr_assert_eq(res->committed, 0);
            cnt->gang_aborts++;
        }
    } else {
        cs_arena a;
        cs_arena_init(&a);
        for (uint32_t i = 0; i < tx->nclaims; i++) {
            cs_task tk;
            ts_get_task(s, tx->claims[i].task, &a, &tk);
            if (res->claims[i] == CS_COMMITTED)
                cr_assert(tk.state == CS_TASK_ASSIGNED && tk.machine == tx->claims[i].machine,
                          "round %u: committed claim %u not applied", round, i);
        }
        cs_arena_free(&a);
    }
    if (!any)
        cr_assert(res->version == v0 && same_cell(s, before, blen),
                  "round %u: nothing committed but the cell changed", round);
    else
        cr_assert_eq(res->version, v0 + 1, "round %u: version must advance by one", round);
    free(before);

    cnt->commits += all;
    cnt->conflicts += res->conflicts > 0;
    for (uint32_t i = 0; i < res->npreempts; i++)
        cnt->preempted += res->preempts[i] == CS_COMMITTED;

    if (chance(r, 5)) {
        /* The same request again, even with other contents: its first
         * result, and nothing written. */
        cs_txn_result again;
        cs_txn_result_init(&again);
        uint8_t *b0, *b1;
        size_t l0, l1;
        ts_dump(s, &b0, &l0);
        uint32_t nclaims = tx->nclaims;
        tx->nclaims = nclaims ? nclaims - 1 : 0;
        cr_assert_eq(cs_commit(s, tx, &again, &err), CS_OK, "%s", err.msg);
        tx->nclaims = nclaims;
        ts_dump(s, &b1, &l1);
        cr_assert(again.replayed);
        cs_txn_result first = *res;
        first.nclaims = again.nclaims; /* compare what both have */
        cr_assert(same_outcomes(&first, &again) && again.version == res->version,
                  "round %u: a replayed request got another result", round);
        cr_assert(l0 == l1 && memcmp(b0, b1, l0) == 0, "round %u: a replay wrote", round);
        free(b0);
        free(b1);
        cs_txn_result_free(&again);
        cnt->replays++;
    }
    cs_txn_result_free(&pred);
}

typedef struct logged {
    uint8_t kind;
    void *cmd;
    size_t len;
} logged;

typedef struct logbuf {
    logged *v;
    size_t n, cap;
} logbuf;

static int collect_log(void *ctx, uint64_t version, uint32_t n, uint8_t kind, const void *cmd,
                       size_t len)
{
    (void)version;
    (void)n;
    logbuf *b = ctx;
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 1024;
        b->v = realloc(b->v, b->cap * sizeof *b->v);
        cr_assert(b->v != NULL);
    }
    void *copy = malloc(len ? len : 1);
    memcpy(copy, cmd, len);
    b->v[b->n++] = (logged){kind, copy, len};
    return 0;
}

/* Replay the whole log of `s` into an empty store: it must come out equal,
 * byte for byte, in every database. */
static void check_replay(cs_store *s)
{
    logbuf lb = {0};
    cs_snap *snap;
    cs_error err = {0};
    cr_assert_eq(cs_snap_open(s, &snap, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_snap_each_log(snap, 0, collect_log, &lb, &err), CS_OK, "%s", err.msg);
    cs_snap_close(snap);

    ts_store u;
    ts_store_create(&u);
    for (size_t i = 0; i < lb.n; i++) {
        cr_assert_eq(cs_command_apply(u.s, lb.v[i].kind, lb.v[i].cmd, lb.v[i].len, NULL, &err), CS_OK,
                     "replaying entry %zu (%s): %s", i, cs_cmd_name(lb.v[i].kind), err.msg);
        free(lb.v[i].cmd);
    }
    free(lb.v);
    uint8_t *a, *b;
    size_t alen, blen;
    ts_dump(s, &a, &alen);
    ts_dump(u.s, &b, &blen);
    cr_assert_eq(alen, blen, "replayed store has %zu bytes, original %zu", blen, alen);
    cr_assert(memcmp(a, b, alen) == 0, "replayed store differs from the original");
    free(a);
    free(b);
    ts_store_destroy(&u);
}

#define ROUNDS 4000

/* The cell both runs start from: NMACHINES machines of three sizes on
 * three racks, and cell events until 8 jobs were submitted. Returns the
 * jobs submitted. */
static uint32_t make_cell(cs_store *s, rng *r)
{
    for (uint32_t i = 0; i < NMACHINES; i++) {
        char name[16], rack[16];
        snprintf(name, sizeof name, "m%u", i);
        snprintf(rack, sizeof rack, "rack=r%u", i % 3);
        const char *attrs[] = {rack};
        ts_machine(s, name, 2000 + 1000 * (i % 3), 4096 + 2048 * (i % 2), 3000, PORT_LO, PORT_HI,
                   attrs, 1);
    }
    uint32_t jobs = 0;
    while (jobs < 8)
        cell_event(&(rng){rnd(r) | 1}, s, &jobs); /* job or machine event */
    return jobs;
}

static void run_property(uint8_t conflict, uint8_t commit, uint64_t seed)
{
    rng r = {seed};
    ts_store t;
    ts_store_create(&t);
    uint32_t jobs = make_cell(t.s, &r);

    lcopy copies[NSCHED];
    memset(copies, 0, sizeof copies);
    for (int k = 0; k < NSCHED; k++)
        lsync(&copies[k], t.s);
    uint64_t req[NSCHED] = {0};
    counts cnt = {0};
    char why[256];

    for (uint32_t round = 0; round < ROUNDS; round++) {
        if (chance(&r, 12)) {
            cell_event(&r, t.s, &jobs);
            cr_assert(ts_check_invariants(t.s, why, sizeof why), "round %u (event): %s", round,
                      why);
            continue;
        }
        uint32_t k = below(&r, NSCHED);
        if (chance(&r, 30))
            lsync(&copies[k], t.s);
        cs_txn tx;
        cs_txn_init(&tx, k + 1, ++req[k], copies[k].version, conflict, commit);
        if (!build(&r, &copies[k], &tx, k)) {
            cs_txn_free(&tx);
            lsync(&copies[k], t.s);
            continue;
        }

        cs_txn_result res;
        cs_txn_result_init(&res);
        commit_checked(t.s, &tx, &res, &r, &cnt, round);
        /* Omega: the scheduler resyncs after its commit, succeeded or not;
         * the others stay stale. */
        if (chance(&r, 70))
            lsync(&copies[k], t.s);
        cs_txn_result_free(&res);
        cs_txn_free(&tx);
    }

    /* The run must have exercised what it claims to test. */
    cr_assert_gt(cnt.commits, ROUNDS / 10, "only %u transactions committed fully", cnt.commits);
    cr_assert_gt(cnt.conflicts, 20, "only %u transactions conflicted", cnt.conflicts);
    cr_assert_gt(cnt.replays, 20);
    cr_assert_gt(cnt.preempted, 0, "no preemption committed");
    if (commit == CS_COMMIT_GANG)
        cr_assert_gt(cnt.gang_aborts, 20);
    cr_assert_gt(cnt.coarse_only, 0, "coarse never rejected more than fine");
    cr_log_info("%s/%s: %u full commits, %u conflicted, %u coarse-only rejections, %u gang aborts, "
                "%u preemptions, %u replays",
                cs_conflict_mode_name(conflict), cs_commit_mode_name(commit), cnt.commits,
                cnt.conflicts, cnt.coarse_only, cnt.gang_aborts, cnt.preempted, cnt.replays);

    check_replay(t.s);
    for (int k = 0; k < NSCHED; k++)
        free(copies[k].t);
    ts_store_destroy(&t);
}

/* ---- the real schedulers ----------------------------------------------------
 *
 * The same properties with cell-batch (two instances sharing the batch jobs)
 * and cell-service, the real loop on the local port (schedulers/port.h), in
 * place of the generated transactions: every commit they make goes through
 * commit_checked. Their copies go stale the way Omega's do: before a commit,
 * now and then the cell changes (an operator, an agent, a submission) or
 * another scheduler runs a whole round, so that the transaction was decided
 * on a cell that is gone. The virtual clock moves 20 ms a round, so that
 * upkeep, back-off and parking run as they do in the daemons. */

#define NREAL 3
#define REAL_ROUNDS 6000

typedef struct real_run {
    cs_store *s;
    cs_port_local *port;
    rng *r;
    uint32_t *jobs;
    counts *cnt;
    cs_sched *sched[NREAL];
    bool racing; /* a commit is letting something else run first */
    uint32_t round;
} real_run;

/* What a scheduler's port knows: the run, and which scheduler it serves
 * (a race runs one of the others: the loop is not reentrant). */
typedef struct real_port {
    tb_port w;
    real_run *run;
    uint32_t self;
} real_port;

static void real_round(real_run *run, uint32_t k)
{
    static volatile sig_atomic_t never;
    bool synced, progress;
    cs_error err = {0};
    cr_assert_eq(cs_sched_round(run->sched[k], &never, &synced, &progress, &err), CS_OK, "%s",
                 err.msg);
    cr_assert(synced, "round %u: %s", run->round, err.msg);
}

static int real_commit(tb_port *w, const cs_txn *t, cs_txn_result *res, cs_error *err)
{
    (void)err; /* every commit must succeed: commit_checked asserts it */
    const real_port *p = w->user;
    real_run *run = p->run;
    if (!run->racing && chance(run->r, 50)) {
        run->racing = true;
        if (chance(run->r, 50))
            cell_event(run->r, run->s, run->jobs);
        else
            real_round(run, (p->self + 1 + below(run->r, NREAL - 1)) % NREAL);
        run->racing = false;
    }
    cs_txn tx = *t; /* check_superset and the replay change a field and restore it */
    cs_txn_result_free(res);
    cs_txn_result_init(res);
    commit_checked(run->s, &tx, res, run->r, run->cnt, run->round);
    return CS_OK;
}

static void run_real(const char *conflict, const char *commit, uint64_t seed)
{
    rng r = {seed};
    ts_store t;
    ts_store_create(&t);
    uint32_t jobs = make_cell(t.s, &r);

    counts cnt = {0};
    real_run run = {.s = t.s, .r = &r, .jobs = &jobs, .cnt = &cnt};
    cs_error err = {0};
    cr_assert_eq(cs_port_local_new(t.s, 1000000000, (int64_t)TS_SUBMITTED_MS, &run.port, &err),
                 CS_OK, "%s", err.msg);
    static const char *const names[NREAL] = {"batch-0", "batch-1", "service"};
    static const char *const instance[NREAL] = {"0", "1", "0"};
    cs_sched_opts o[NREAL];
    real_port w[NREAL];
    for (int k = 0; k < NREAL; k++) {
        cs_sched_kind kind = k < 2 ? CS_SCHED_BATCH : CS_SCHED_SERVICE;
        const char *argv[] = {"sched",      "--name",     names[k], "--seed",    "7",
                              "--conflict", conflict,     "--commit", commit,   "--park-ms",
                              "200",        "--idle-ms",  "10",       "--instances", "2",
                              "--instance", instance[k]};
        int argc = kind == CS_SCHED_BATCH ? 17 : 13;
        bool help;
        cr_assert_eq(cs_sched_opts_parse(kind, argc, (char **)argv, &o[k], &help, &err), CS_OK,
                     "%s", err.msg);
        w[k] = (real_port){.run = &run, .self = (uint32_t)k};
        tb_port_wrap(&w[k].w, cs_port_local_table(run.port), real_commit, &w[k]);
        const cs_sched_hooks *h = kind == CS_SCHED_BATCH ? &cs_sched_batch_hooks
                                                         : &cs_sched_service_hooks;
        cr_assert_eq(cs_sched_new(&o[k], h, &w[k].w.table, &run.sched[k], &err), CS_OK, "%s",
                     err.msg);
    }

    char why[256];
    for (run.round = 0; run.round < REAL_ROUNDS; run.round++) {
        if (chance(&r, 20)) {
            cell_event(&r, t.s, &jobs);
            cr_assert(ts_check_invariants(t.s, why, sizeof why), "round %u (event): %s", run.round,
                      why);
        }
        real_round(&run, below(&r, NREAL));
        cs_port_local_advance(run.port, 20000000);
    }

    cs_port_local_counts k;
    cs_port_local_counts_get(run.port, &k);
    cr_log_info("real schedulers %s/%s: %u full commits, %u conflicted, %u coarse-only "
                "rejections, %u gang aborts, %u preemptions, %u replays; %" PRIu64 " syncs",
                conflict, commit, cnt.commits, cnt.conflicts, cnt.coarse_only, cnt.gang_aborts,
                cnt.preempted, cnt.replays, k.syncs);
    cr_assert_gt(cnt.commits, REAL_ROUNDS / 20, "only %u transactions committed fully",
                 cnt.commits);
    cr_assert_gt(cnt.conflicts + cnt.gang_aborts, 10, "only %u transactions conflicted",
                 cnt.conflicts + cnt.gang_aborts);
    cr_assert_gt(cnt.replays, 10);
    cr_assert_gt(cnt.preempted, 0, "no preemption committed");
    if (strcmp(commit, "gang") == 0)
        cr_assert_gt(cnt.gang_aborts, 5);
    cr_assert_gt(cnt.coarse_only, 0, "coarse never rejected more than fine");

    check_replay(t.s);
    for (int i = 0; i < NREAL; i++)
        cs_sched_free(run.sched[i]);
    cs_port_local_free(run.port);
    ts_store_destroy(&t);
}

Test(txn_prop, fine_incremental, .timeout = 300)
{
    run_property(CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL, 0x5eed0001);
}

Test(txn_prop, fine_gang, .timeout = 300)
{
    run_property(CS_CONFLICT_FINE, CS_COMMIT_GANG, 0x5eed0002);
}

Test(txn_prop, coarse_incremental, .timeout = 300)
{
    run_property(CS_CONFLICT_COARSE, CS_COMMIT_INCREMENTAL, 0x5eed0003);
}

Test(txn_prop, coarse_gang, .timeout = 300)
{
    run_property(CS_CONFLICT_COARSE, CS_COMMIT_GANG, 0x5eed0004);
}

Test(txn_prop, real_schedulers_fine_incremental, .timeout = 300)
{
    run_real("fine", "incremental", 0x5eed0011);
}

Test(txn_prop, real_schedulers_fine_gang, .timeout = 300)
{
    run_real("fine", "gang", 0x5eed0012);
}

Test(txn_prop, real_schedulers_coarse_incremental, .timeout = 300)
{
    run_real("coarse", "incremental", 0x5eed0013);
}

Test(txn_prop, real_schedulers_coarse_gang, .timeout = 300)
{
    run_real("coarse", "gang", 0x5eed0014);
}
