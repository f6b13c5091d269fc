/* place.c — feasibility and scoring (see place.h). */
#include "schedulers/place.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cellstate/rng.h"

/* Why a machine cannot take a task: these, then R_CONS + i for the job's
 * constraint i. The resources are one reason per combination of those
 * short (R_RES + mask - 1, mask bits cpu 1, memory 2, disk 4), so that a
 * note names every resource a machine lacks ("cpu and memory on 3"), not
 * only the first checked. */
enum { RES_CPU = 1, RES_MEM = 2, RES_DISK = 4, RES_COMBOS = 7 };
enum { R_DOWN, R_TAINT, R_RES, R_PORT = R_RES + RES_COMBOS, R_DYNPORTS, R_VOLUME, R_CONS };
static const char *const reason_text[R_CONS] = {
    "machine not up",
    "taint not tolerated",
    "cpu",
    "memory",
    "cpu and memory",
    "disk",
    "cpu and disk",
    "memory and disk",
    "cpu, memory and disk",
    "ports in use",
    "no free dynamic port",
    "volume in use",
};
static bool is_room(int r)
{
    return (r >= R_RES && r < R_RES + RES_COMBOS) || r == R_PORT || r == R_DYNPORTS ||
           r == R_VOLUME;
}
#define FEASIBLE (-1)

/* One equivalence class of a call: the tasks with the same resources. */
typedef struct klass {
    cs_res res;
    uint32_t start;    /* where in the machine order its scan begins */
    uint32_t pos;      /* machines visited from start */
    uint32_t ncand;    /* feasible machines found and not yet rejected, in scan order */
    uint32_t *cand;    /* [k] machine slots */
    uint32_t *rej;     /* [R_CONS + ncons] machines rejected per reason */
    uint32_t nrej;
    bool no_preempt;   /* a preemption search already failed for it */
    /* Fewest tasks first rescans from the least loaded for every task; a
     * machine rejected once stays rejected within the call (machines only
     * lose room), so its reason is kept here, by machine slot (reason + 1,
     * 0 = not rejected), and it is not checked again. NULL when unused. */
    uint8_t *why;
    uint32_t capwhy;
    /* Randomized first fit (cs_policy.first_fit): the machine slots not yet
     * rejected for the class, pool[0 .. npool); the rejected ones are
     * swapped behind. npoolall is all of them (the cell's machines). */
    uint32_t *pool;
    uint32_t npool, npoolall, cappool;
} klass;

/* What one call knows of its job. */
typedef struct jctx {
    cs_copy *c;
    const cs_cjob *j;
    uint32_t jslot;
    cs_ccons *cons;
    uint32_t ncons;
    uint32_t k;
    uint32_t ndyn;     /* dynamic ports per task */
    bool fresh;        /* scan afresh for every task */
    bool memo;         /* fresh only for fewest tasks first: remember rejections (klass.why) */
    bool want_here;    /* tasks of the job per machine are needed */
    uint32_t nsoft_node, nsoft_job;
} jctx;

struct cs_placer {
    cs_policy pol;
    cs_place_opts o;
    uint64_t rng;
    uint32_t *perm; /* machine slots in this placer's visiting order */
    uint32_t nperm, capperm;
    /* Scratch, per constraint of the job being placed: */
    cs_u32map *counts;  /* counting operators: value -> tasks of the job there */
    cs_u32map *aff;     /* AFFINITY, ANTI_AFFINITY: machine slot -> tasks of the target there */
    uint32_t *cluster;  /* CLUSTER without value: the value of the first placed task */
    uint32_t *gmin;     /* GROUP_BY: the smallest count among the groups */
    uint32_t *gwant;    /* GROUP_BY: groups to fill before any gets a second task */
    uint32_t capcons;
    cs_u32map here;     /* machine slot -> tasks of the job there */
    cs_u32map seen;     /* task slots of one call (duplicates) */
    klass *cls;
    uint32_t ncls, capcls;
    uint32_t capk, caprej;
    /* Scoring scratch, [capk] each. */
    double *total;
    uint32_t *vict;     /* preemption: candidate victims (task slots) */
    uint32_t nvict_cap;
    uint64_t checked;
    /* Fewest tasks first (cs_policy.fewest_tasks): machine slots ordered by
     * their task count, ties in a random rotation of `perm`, kept in order
     * as the call's claims raise counts. group[h] is the first position of
     * the machines with h tasks (group[ngroups] = norder); opos[ms] is
     * machine ms's position. */
    uint32_t *order, *opos, *group;
    uint32_t norder, caporder, ngroups, capgroup;
    bool order_stale;   /* counts changed other than by a claim (preemption) */
};

/* The placer's own seeded generator (cellstate/rng.h): ties and sampling
 * are reproducible for a seed. */
static uint32_t rand_below(cs_placer *p, uint32_t n) { return cs_rng_below(&p->rng, n); }

static int nomem(cs_error *err)
{
    return cs_errorf(err, CS_ENOMEM, "placement: out of memory");
}

int cs_placer_new(const cs_policy *policy, const cs_place_opts *opts, cs_placer **out,
                  cs_error *err)
{
    cs_placer *p = calloc(1, sizeof *p);
    if (p == NULL)
        return nomem(err);
    p->pol = *policy;
    if (opts != NULL)
        p->o = *opts;
    p->rng = p->o.seed;
    cs_u32map_init(&p->here);
    cs_u32map_init(&p->seen);
    *out = p;
    return CS_OK;
}

static void free_cons_scratch(cs_placer *p)
{
    for (uint32_t i = 0; i < p->capcons; i++) {
        cs_u32map_free(&p->counts[i]);
        cs_u32map_free(&p->aff[i]);
    }
    free(p->counts);
    free(p->aff);
    free(p->cluster);
    free(p->gmin);
    free(p->gwant);
}

void cs_placer_free(cs_placer *p)
{
    if (p == NULL)
        return;
    free(p->perm);
    free_cons_scratch(p);
    cs_u32map_free(&p->here);
    cs_u32map_free(&p->seen);
    for (uint32_t i = 0; i < p->capcls; i++) {
        free(p->cls[i].cand);
        free(p->cls[i].rej);
        free(p->cls[i].why);
        free(p->cls[i].pool);
    }
    free(p->cls);
    free(p->total);
    free(p->vict);
    free(p->order);
    free(p->opos);
    free(p->group);
    free(p);
}

/* ---- the machine order ------------------------------------------------------ */

/* Keep `perm` a shuffled permutation of the copy's machine slots. New
 * machines are shuffled in (inside-out Fisher-Yates), so that the order of
 * the machines already known does not change with every new one. */
static int sync_perm(cs_placer *p, const cs_copy *c)
{
    uint32_t n = cs_copy_nmachines(c);
    if (n < p->nperm)
        p->nperm = 0; /* a full sync replaced the copy: start over */
    if (n > p->capperm) {
        uint32_t *q = realloc(p->perm, (size_t)n * sizeof *q);
        if (q == NULL)
            return CS_ENOMEM;
        p->perm = q;
        p->capperm = n;
    }
    for (uint32_t i = p->nperm; i < n; i++) {
        uint32_t j = rand_below(p, i + 1);
        p->perm[i] = p->perm[j];
        p->perm[j] = i;
    }
    p->nperm = n;
    return CS_OK;
}

/* ---- fewest tasks first ------------------------------------------------------ */

static int grow_groups(cs_placer *p, uint32_t n)
{
    if (n <= p->capgroup)
        return CS_OK;
    uint32_t cap = n < 16 ? 16 : n + n / 2;
    uint32_t *g = realloc(p->group, (size_t)cap * sizeof *g);
    if (g == NULL)
        return CS_ENOMEM;
    p->group = g;
    p->capgroup = cap;
    return CS_OK;
}

/* Order the machines by task count (a counting sort over `perm` from a
 * random point, so that machines with equally few tasks come in another
 * order each call). O(machines + largest count). */
static int build_order(cs_placer *p, const cs_copy *c)
{
    uint32_t n = p->nperm, max = 0;
    if (n > p->caporder) {
        uint32_t *o = realloc(p->order, (size_t)n * sizeof *o);
        if (o == NULL)
            return CS_ENOMEM;
        p->order = o;
        uint32_t *q = realloc(p->opos, (size_t)n * sizeof *q);
        if (q == NULL)
            return CS_ENOMEM;
        p->opos = q;
        p->caporder = n;
    }
    for (uint32_t ms = 0; ms < n; ms++)
        if (cs_copy_machine_at(c, ms)->ntasks > max)
            max = cs_copy_machine_at(c, ms)->ntasks;
    if (grow_groups(p, max + 2) != CS_OK)
        return CS_ENOMEM;
    memset(p->group, 0, (size_t)(max + 2) * sizeof *p->group);
    for (uint32_t ms = 0; ms < n; ms++)
        p->group[cs_copy_machine_at(c, ms)->ntasks + 1]++;
    for (uint32_t h = 1; h < max + 2; h++)
        p->group[h] += p->group[h - 1];
    /* group[h] is now the first position of count h; fill, advancing it
     * as a cursor, from a random point of perm. */
    uint32_t start = n ? rand_below(p, n) : 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t at = start + i, ms = p->perm[at >= n ? at - n : at];
        uint32_t h = cs_copy_machine_at(c, ms)->ntasks;
        uint32_t pos = p->group[h]++;
        p->order[pos] = ms;
        p->opos[ms] = pos;
    }
    /* The cursors ended at each group's end: shift back to starts. */
    for (uint32_t h = max + 1; h > 0; h--)
        p->group[h] = p->group[h - 1];
    p->group[0] = 0;
    p->ngroups = max + 1;
    p->norder = n;
    p->order_stale = false;
    return CS_OK;
}

/* Machine slot `ms` took one more task: move it from its group to the
 * front of the next (swap with the last of its group), O(1). */
static int order_raise(cs_placer *p, const cs_copy *c, uint32_t ms)
{
    uint32_t h = cs_copy_machine_at(c, ms)->ntasks - 1; /* before the claim */
    if (h + 1 >= p->ngroups) {
        if (grow_groups(p, p->ngroups + 2) != CS_OK)
            return CS_ENOMEM;
        p->group[p->ngroups + 1] = p->norder;
        p->ngroups++;
    }
    uint32_t i = p->opos[ms], last = p->group[h + 1] - 1, other = p->order[last];
    p->order[i] = other;
    p->opos[other] = i;
    p->order[last] = ms;
    p->opos[ms] = last;
    p->group[h + 1] = last;
    return CS_OK;
}

/* ---- per-call job context ---------------------------------------------------- */

static inline uint32_t mval(const jctx *jc, const cs_ccons *cc, const cs_cmachine *m)
{
    return cc->hostname ? m->name : cs_copy_attr(jc->c, m, cc->field);
}

static bool is_affinity(const cs_ccons *cc)
{
    return cc->op == CS_OP_AFFINITY || cc->op == CS_OP_ANTI_AFFINITY;
}

/* GROUP_BY's number of groups: its value when given; otherwise every value
 * the field takes on an up machine. Marathon, which sees only the offers in
 * hand, defaults to no minimum, so that tasks may pile into the first
 * groups; the copy knows the whole cell, so the spread is even. aff[i] is
 * free scratch for a GROUP_BY constraint. */
static int distinct_values(cs_placer *p, const jctx *jc, uint32_t i)
{
    const cs_ccons *cc = &jc->cons[i];
    if (cc->num > 0) {
        p->gwant[i] = cc->num;
        return CS_OK;
    }
    cs_u32map *seen = &p->aff[i];
    for (uint32_t ms = 0; ms < cs_copy_nmachines(jc->c); ms++) {
        const cs_cmachine *m = cs_copy_machine_at(jc->c, ms);
        uint32_t v = m->state == CS_MACHINE_UP ? mval(jc, cc, m) : CS_NONE;
        if (v != CS_NONE && cs_u32map_put(seen, v, 1) != CS_OK)
            return CS_ENOMEM;
    }
    p->gwant[i] = (uint32_t)seen->n;
    cs_u32map_clear(seen);
    return CS_OK;
}

static void recompute_gmin(cs_placer *p, uint32_t i)
{
    uint32_t min = UINT32_MAX;
    const cs_u32map *m = &p->counts[i];
    for (uint32_t e = 0; e < m->cap; e++)
        if (m->e[e].key != CS_NONE && m->e[e].value < min)
            min = m->e[e].value;
    p->gmin[i] = min;
}

/* Count one more task of the job on machine slot `ms`. */
static int note_placed(cs_placer *p, const jctx *jc, uint32_t ms)
{
    const cs_cmachine *m = cs_copy_machine_at(jc->c, ms);
    for (uint32_t i = 0; i < jc->ncons; i++) {
        const cs_ccons *cc = &jc->cons[i];
        if (cs_ccons_counts(cc)) {
            uint32_t v = mval(jc, cc, m);
            if (v == CS_NONE)
                continue;
            if (cs_u32map_add(&p->counts[i], v, 1, NULL) != CS_OK)
                return CS_ENOMEM;
            if (cc->op == CS_OP_CLUSTER && p->cluster[i] == CS_NONE)
                p->cluster[i] = v;
            if (cc->op == CS_OP_GROUP_BY)
                recompute_gmin(p, i);
        } else if (is_affinity(cc) && cc->value == jc->j->name &&
                   cs_u32map_add(&p->aff[i], ms, 1, NULL) != CS_OK) {
            return CS_ENOMEM;
        }
    }
    if (jc->want_here && cs_u32map_add(&p->here, ms, 1, NULL) != CS_OK)
        return CS_ENOMEM;
    return CS_OK;
}

static int grow_cons_scratch(cs_placer *p, uint32_t n)
{
    if (n <= p->capcons)
        return CS_OK;
    cs_u32map *counts = calloc(n, sizeof *counts), *aff = calloc(n, sizeof *aff);
    uint32_t *cluster = calloc(n, sizeof *cluster), *gmin = calloc(n, sizeof *gmin);
    uint32_t *gwant = calloc(n, sizeof *gwant);
    if (!counts || !aff || !cluster || !gmin || !gwant) {
        free(gwant);
        free(counts);
        free(aff);
        free(cluster);
        free(gmin);
        return CS_ENOMEM;
    }
    for (uint32_t i = 0; i < n; i++) {
        cs_u32map_init(&counts[i]);
        cs_u32map_init(&aff[i]);
    }
    free_cons_scratch(p);
    p->counts = counts;
    p->aff = aff;
    p->cluster = cluster;
    p->gmin = gmin;
    p->gwant = gwant;
    p->capcons = n;
    return CS_OK;
}

/* Fill the maps of the job's placed tasks (tentative ones included) and the
 * machines running the targets of its affinities. */
static int setup_job(cs_placer *p, cs_copy *c, uint32_t js, jctx *jc, cs_error *err)
{
    memset(jc, 0, sizeof *jc);
    jc->c = c;
    jc->jslot = js;
    jc->j = cs_copy_job_at(c, js);
    jc->cons = cs_copy_job_cons(c, js);
    jc->ncons = jc->cons ? jc->j->job.nconstraints : 0;
    for (uint32_t i = 0; i < jc->j->job.nports; i++)
        jc->ndyn += jc->j->job.ports[i] == 0;
    uint32_t n = cs_copy_nmachines(c);
    uint32_t log2n = 0;
    while (log2n < 32 && (UINT64_C(1) << log2n) < n)
        log2n++;
    uint32_t given = jc->j->job.kind == CS_JOB_SERVICE ? p->o.k_service : p->o.k_batch;
    if (jc->j->job.kind == CS_JOB_SERVICE)
        jc->k = given ? given : (log2n > 2 ? log2n : 2);
    else
        jc->k = given ? given : 2;
    /* A score that counts the job's own tasks (Kubernetes' spreading
     * priorities, in a Policy file) compares machines as the job's tasks
     * land; among K = 2 or 3 candidates it only alternates between them (9
     * tasks on 3 equal machines went 5/4/0). Kubernetes scores at least 100
     * feasible nodes (its minFeasibleNodesToFind), all of a smaller cell:
     * so does the placer then, unless K was given. */
    if (!given && p->pol.weights[CS_PRIO_SPREADING] > 0 && !p->pol.fewest_tasks &&
        jc->k < CS_PLACE_K_SPREADING)
        jc->k = CS_PLACE_K_SPREADING;
    if (jc->k > n)
        jc->k = n ? n : 1;
    /* Fewest tasks first scans the machines from the least loaded for every
     * task: a class's candidates would keep the first task's view. */
    jc->fresh = p->o.no_classes || p->pol.fewest_tasks;
    jc->memo = p->pol.fewest_tasks && !p->o.no_classes;
    jc->want_here = p->pol.weights[CS_PRIO_SPREADING] > 0;
    if (grow_cons_scratch(p, jc->ncons) != CS_OK)
        return nomem(err);
    cs_u32map_clear(&p->here);
    for (uint32_t i = 0; i < jc->ncons; i++) {
        const cs_ccons *cc = &jc->cons[i];
        cs_u32map_clear(&p->counts[i]);
        cs_u32map_clear(&p->aff[i]);
        p->cluster[i] = CS_NONE;
        p->gmin[i] = UINT32_MAX;
        if (cc->op == CS_OP_GROUP_BY && distinct_values(p, jc, i) != CS_OK)
            return nomem(err);
        if (cc->soft) {
            if (is_affinity(cc))
                jc->nsoft_job++;
            else
                jc->nsoft_node++;
        } else if (cc->op == CS_OP_GROUP_BY ||
                   (cc->op == CS_OP_AFFINITY && cc->value == jc->j->name)) {
            jc->fresh = true; /* feasibility can grow within the call */
            jc->memo = false;
        }
        if (!is_affinity(cc))
            continue;
        uint32_t ts = cs_copy_job_named_slot(c, cc->value);
        if (ts == CS_NONE || ts == js)
            continue; /* no such active job (or itself: counted below) */
        const cs_cjob *tj = cs_copy_job_at(c, ts);
        for (uint32_t x = 0; x < tj->ntaskidx; x++) {
            uint32_t t = tj->tasks[x];
            if (t != CS_NONE && cs_task_state_placed(cs_copy_task_at(c, t)->state) &&
                cs_u32map_add(&p->aff[i], cs_copy_task_at(c, t)->machine, 1, NULL) != CS_OK)
                return nomem(err);
        }
    }
    bool need_counts = jc->want_here;
    for (uint32_t i = 0; i < jc->ncons; i++)
        need_counts |= cs_ccons_counts(&jc->cons[i]) ||
                       (is_affinity(&jc->cons[i]) && jc->cons[i].value == jc->j->name);
    if (!need_counts)
        return CS_OK;
    /* Counted in index order, so that CLUSTER's "first placed task" is the
     * one with the lowest index. */
    for (uint32_t x = 0; x < jc->j->ntaskidx; x++) {
        uint32_t t = jc->j->tasks[x];
        if (t != CS_NONE && cs_task_state_placed(cs_copy_task_at(c, t)->state) &&
            note_placed(p, jc, cs_copy_task_at(c, t)->machine) != CS_OK)
            return nomem(err);
    }
    return CS_OK;
}

/* ---- feasibility -------------------------------------------------------------- */

/* Whether machine `m` (slot ms) satisfies constraint i, hard or soft. */
static bool cons_ok(cs_placer *p, const jctx *jc, uint32_t i, uint32_t ms, const cs_cmachine *m)
{
    cs_ccons *cc = &jc->cons[i];
    uint32_t have;
    switch (cc->op) {
    case CS_OP_AFFINITY:
        return cs_u32map_get(&p->aff[i], ms, &have);
    case CS_OP_ANTI_AFFINITY:
        return !cs_u32map_get(&p->aff[i], ms, &have);
    default:
        break;
    }
    uint32_t v = mval(jc, cc, m);
    if (!cs_ccons_counts(cc))
        return cs_ccons_match(cc, cs_copy_strtab(jc->c), v);
    if (v == CS_NONE)
        return false; /* Marathon: a missing attribute passes only UNLIKE */
    uint32_t n = 0;
    cs_u32map_get(&p->counts[i], v, &n);
    switch (cc->op) {
    case CS_OP_UNIQUE:
        return n == 0;
    case CS_OP_MAX_PER:
        return n < cc->num;
    case CS_OP_CLUSTER:
        return p->cluster[i] == CS_NONE || p->cluster[i] == v;
    case CS_OP_GROUP_BY:
        /* Marathon's checkGroupBy: a value with no task yet opens a group;
         * otherwise at least `num` groups must exist and this one must be
         * among the smallest. */
        return n == 0 || (p->counts[i].n >= p->gwant[i] && n == p->gmin[i]);
    default:
        return false;
    }
}

static uint32_t ports_in_range(const cs_cmachine *m, uint32_t lo, uint32_t hi)
{
    uint32_t a = 0, b = m->nports;
    while (a < b) { /* first >= lo */
        uint32_t mid = a + (b - a) / 2;
        if (m->ports[mid] < lo)
            a = mid + 1;
        else
            b = mid;
    }
    uint32_t first = a;
    b = m->nports;
    while (a < b) { /* first > hi */
        uint32_t mid = a + (b - a) / 2;
        if (m->ports[mid] <= hi)
            a = mid + 1;
        else
            b = mid;
    }
    return a - first;
}

static bool volumes_conflict(const jctx *jc, const cs_cmachine *m)
{
    const cs_jobopts *mine = &jc->j->opts;
    for (uint32_t t = m->tasks; t != CS_NONE; t = cs_copy_task_at(jc->c, t)->next) {
        const cs_jobopts *o = &cs_copy_job_at(jc->c, cs_copy_task_at(jc->c, t)->job)->opts;
        for (uint32_t a = 0; a < mine->nvolumes; a++)
            for (uint32_t b = 0; b < o->nvolumes; b++)
                if ((mine->volumes[a].rw || o->volumes[b].rw) &&
                    strcmp(mine->volumes[a].path, o->volumes[b].path) == 0)
                    return true;
    }
    return false;
}

/* Whether the job tolerates the taint (interned key and value, effect) for
 * a new placement. A NoExecute toleration with tolerationSeconds does not
 * count: the task would be evicted again when they pass (Kubernetes places
 * it all the same, and its taint manager evicts it over and over). */
static bool tolerated(const jctx *jc, uint32_t key, uint32_t value, uint32_t effect)
{
    const cs_jobopts *o = &jc->j->opts;
    for (uint32_t i = 0; i < o->ntolerations; i++)
        if (cs_toleration_matches(&o->tolerations[i], cs_copy_str(jc->c, key),
                                  cs_copy_str(jc->c, value), (uint8_t)effect) &&
            !(effect == CS_TAINT_NO_EXECUTE && o->tolerations[i].has_seconds))
            return true;
    return false;
}

/* How many of the machine's taints with effect `effect` (or, for
 * NoSchedule, NoSchedule and NoExecute: both keep a task off) the job does
 * not tolerate. */
static uint32_t untolerated(const jctx *jc, const cs_cmachine *m, uint32_t effect)
{
    const uint32_t *t;
    uint32_t n = cs_copy_taints(jc->c, m, &t), bad = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t e = t[3 * i + 2];
        bool counts = effect == CS_TAINT_NO_SCHEDULE
                          ? e == CS_TAINT_NO_SCHEDULE || e == CS_TAINT_NO_EXECUTE
                          : e == effect;
        bad += counts && !tolerated(jc, t[3 * i], t[3 * i + 1], e);
    }
    return bad;
}

/* FEASIBLE, or the first reason machine slot `ms` cannot take a task asking
 * `res`. Checks run from what never changes within a call to what our own
 * claims change, so that a rejected machine keeps its reason. */
static int check(cs_placer *p, const jctx *jc, const cs_res *res, uint32_t ms)
{
    p->checked++;
    const cs_cmachine *m = cs_copy_machine_at(jc->c, ms);
    if (m->state != CS_MACHINE_UP)
        return R_DOWN;
    /* The machine owner's word, like `up`: whatever the policy lists. */
    if (untolerated(jc, m, CS_TAINT_NO_SCHEDULE) > 0)
        return R_TAINT;
    for (uint32_t i = 0; i < jc->ncons; i++) {
        const cs_ccons *cc = &jc->cons[i];
        if (!cc->soft && !cs_ccons_counts(cc) && !cons_ok(p, jc, i, ms, m))
            return R_CONS + (int)i;
    }
    int lacks = (m->capacity.cpu - m->allocated.cpu < res->cpu ? RES_CPU : 0) |
                (m->capacity.mem - m->allocated.mem < res->mem ? RES_MEM : 0) |
                (m->capacity.disk - m->allocated.disk < res->disk ? RES_DISK : 0);
    if (lacks)
        return R_RES + lacks - 1;
    const cs_job *j = &jc->j->job;
    uint32_t fixed_in_range = 0;
    for (uint32_t i = 0; i < j->nports; i++) {
        uint16_t port = j->ports[i];
        if (port == 0)
            continue;
        if (cs_ports_contains(m->ports, m->nports, port))
            return R_PORT;
        fixed_in_range += port >= m->port_lo && port <= m->port_hi;
    }
    if (jc->ndyn > 0) {
        uint32_t size = m->port_hi >= m->port_lo && m->port_hi != 0
                            ? (uint32_t)m->port_hi - m->port_lo + 1 : 0;
        uint32_t used = size ? ports_in_range(m, m->port_lo, m->port_hi) : 0;
        if (size < used + fixed_in_range + jc->ndyn)
            return R_DYNPORTS;
    }
    if (jc->j->opts.nvolumes && (p->pol.predicates & CS_PRED_DISK_CONFLICT) &&
        volumes_conflict(jc, m))
        return R_VOLUME;
    for (uint32_t i = 0; i < jc->ncons; i++) {
        const cs_ccons *cc = &jc->cons[i];
        if (!cc->soft && cs_ccons_counts(cc) && !cons_ok(p, jc, i, ms, m))
            return R_CONS + (int)i;
    }
    return FEASIBLE;
}

/* ---- classes and the scan ------------------------------------------------------- */

static void class_reset(klass *k)
{
    k->pos = 0;
    k->ncand = 0;
    k->npool = k->npoolall;
    memset(k->rej, 0, k->nrej * sizeof *k->rej);
}

static int class_for(cs_placer *p, const jctx *jc, const cs_res *res, klass **out)
{
    for (uint32_t i = 0; i < p->ncls; i++)
        if (memcmp(&p->cls[i].res, res, sizeof *res) == 0) {
            *out = &p->cls[i];
            return CS_OK;
        }
    if (p->ncls == p->capcls) {
        uint32_t cap = p->capcls ? p->capcls * 2 : 4;
        klass *k = realloc(p->cls, cap * sizeof *k);
        if (k == NULL)
            return CS_ENOMEM;
        memset(k + p->capcls, 0, (cap - p->capcls) * sizeof *k);
        p->cls = k;
        p->capcls = cap;
    }
    klass *k = &p->cls[p->ncls];
    uint32_t nrej = R_CONS + jc->ncons;
    uint32_t *cand = realloc(k->cand, (size_t)(jc->k + 1) * sizeof *cand);
    if (cand == NULL)
        return CS_ENOMEM;
    k->cand = cand;
    uint32_t *rej = realloc(k->rej, nrej * sizeof *rej);
    if (rej == NULL)
        return CS_ENOMEM;
    k->rej = rej;
    k->nrej = nrej;
    if (jc->memo && p->nperm > k->capwhy) {
        uint8_t *why = realloc(k->why, p->nperm);
        if (why == NULL)
            return CS_ENOMEM;
        k->why = why;
        k->capwhy = p->nperm;
    }
    if (jc->memo && k->why != NULL) /* NULL while the cell has no machine */
        memset(k->why, 0, p->nperm);
    k->npoolall = 0;
    if (p->pol.first_fit) {
        if (p->nperm > k->cappool) {
            uint32_t *pool = realloc(k->pool, (size_t)p->nperm * sizeof *pool);
            if (pool == NULL)
                return CS_ENOMEM;
            k->pool = pool;
            k->cappool = p->nperm;
        }
        for (uint32_t i = 0; i < p->nperm; i++)
            k->pool[i] = i; /* drawn at random: the order does not matter */
        k->npoolall = p->nperm;
    }
    k->res = *res;
    k->start = p->nperm ? rand_below(p, p->nperm) : 0;
    k->no_preempt = false;
    class_reset(k);
    p->ncls++;
    *out = k;
    return CS_OK;
}

/* Bring the class's candidates up to K feasible machines, in scan order. */
static void scan(cs_placer *p, const jctx *jc, klass *k)
{
    if (jc->fresh)
        class_reset(k);
    uint32_t w = 0;
    for (uint32_t i = 0; i < k->ncand; i++) {
        int r = check(p, jc, &k->res, k->cand[i]);
        if (r == FEASIBLE)
            k->cand[w++] = k->cand[i];
        else
            k->rej[r]++;
    }
    k->ncand = w;
    uint32_t n = p->nperm;
    bool memo = jc->memo && k->why != NULL;
    while (k->ncand < jc->k && k->pos < n) {
        uint32_t at = k->start + k->pos++;
        uint32_t ms = p->pol.fewest_tasks ? p->order[k->pos - 1] : p->perm[at >= n ? at - n : at];
        if (memo && k->why[ms] != 0) {
            k->rej[k->why[ms] - 1]++;
            continue;
        }
        int r = check(p, jc, &k->res, ms);
        if (r == FEASIBLE) {
            k->cand[k->ncand++] = ms;
        } else {
            k->rej[r]++;
            if (memo)
                k->why[ms] = (uint8_t)(r + 1);
        }
    }
}

/* Randomized first fit, as the Omega paper's lightweight simulator places
 * (google/cluster-scheduler-simulator): draw a machine uniformly from the
 * class's pool; the first that fits takes the task; one that does not
 * leaves the pool for the rest of the call — within a call machines only
 * lose room, so it would not fit a later task of the class either. Each
 * task thus sees the machines in an order of its own, where the random
 * preset with one candidate keeps the class's candidate and packs the
 * job's equal tasks onto it until full. A job whose feasibility can grow
 * within the call (jc->fresh) draws from every machine for every task.
 * CS_NONE when nothing fits. */
static uint32_t first_fit(cs_placer *p, const jctx *jc, klass *k)
{
    if (jc->fresh)
        class_reset(k);
    while (k->npool > 0) {
        uint32_t i = rand_below(p, k->npool), ms = k->pool[i];
        int r = check(p, jc, &k->res, ms);
        if (r == FEASIBLE)
            return ms;
        k->rej[r]++;
        k->pool[i] = k->pool[--k->npool];
        k->pool[k->npool] = ms;
    }
    return CS_NONE;
}

/* ---- scoring --------------------------------------------------------------------- */

static void soft_counts(cs_placer *p, const jctx *jc, uint32_t ms, double *node, double *job)
{
    const cs_cmachine *m = cs_copy_machine_at(jc->c, ms);
    *node = *job = 0;
    for (uint32_t i = 0; i < jc->ncons; i++) {
        const cs_ccons *cc = &jc->cons[i];
        if (!cc->soft)
            continue;
        bool ok = cons_ok(p, jc, i, ms, m);
        if (cc->op == CS_OP_AFFINITY)
            *job += ok;
        else if (cc->op == CS_OP_ANTI_AFFINITY)
            *job -= !ok; /* repelled: the machine runs the other job */
        else
            *node += ok;
    }
}

static int grow_k(cs_placer *p, uint32_t k)
{
    if (k <= p->capk)
        return CS_OK;
    double *t = realloc(p->total, (size_t)k * 5 * sizeof *t);
    if (t == NULL)
        return CS_ENOMEM;
    p->total = t;
    p->capk = k;
    return CS_OK;
}

/* The best of the class's candidates by the policy's weighted sum; ties
 * broken uniformly at random. */
static uint32_t choose(cs_placer *p, const jctx *jc, const klass *k)
{
    double *total = p->total, *here = p->total + p->capk, *node = here + p->capk,
           *job = node + p->capk, *bad = job + p->capk;
    double max_here = 0, max_node = 0, lo = 0, hi = 0, max_bad = 0;
    const uint32_t *w = p->pol.weights;
    for (uint32_t i = 0; i < k->ncand; i++) {
        uint32_t ms = k->cand[i];
        const cs_cmachine *m = cs_copy_machine_at(jc->c, ms);
        double s[CS_PRIO_COUNT] = {0};
        cs_policy_resource_scores(&m->capacity, &m->allocated, &k->res, s);
        total[i] = cs_policy_combine(&p->pol, s);
        uint32_t h = 0;
        if (w[CS_PRIO_SPREADING])
            cs_u32map_get(&p->here, ms, &h);
        here[i] = h;
        soft_counts(p, jc, ms, &node[i], &job[i]);
        bad[i] = w[CS_PRIO_TAINT_TOLERATION] ? untolerated(jc, m, CS_TAINT_PREFER_NO_SCHEDULE) : 0;
        if (bad[i] > max_bad)
            max_bad = bad[i];
        if (here[i] > max_here)
            max_here = here[i];
        if (node[i] > max_node)
            max_node = node[i];
        lo = job[i] < lo ? job[i] : lo;
        hi = job[i] > hi ? job[i] : hi;
    }
    /* Swarm's spread: only the machines with the fewest tasks compete. */
    uint32_t fewest = UINT32_MAX;
    for (uint32_t i = 0; p->pol.fewest_tasks && i < k->ncand; i++)
        if (cs_copy_machine_at(jc->c, k->cand[i])->ntasks < fewest)
            fewest = cs_copy_machine_at(jc->c, k->cand[i])->ntasks;
    uint32_t best = CS_NONE, ties = 0;
    double best_score = 0;
    for (uint32_t i = 0; i < k->ncand; i++) {
        if (p->pol.fewest_tasks && cs_copy_machine_at(jc->c, k->cand[i])->ntasks > fewest)
            continue;
        double s = total[i];
        if (w[CS_PRIO_SPREADING])
            s += w[CS_PRIO_SPREADING] * cs_policy_spreading((uint32_t)here[i], (uint32_t)max_here);
        if (w[CS_PRIO_NODE_AFFINITY] && jc->nsoft_node)
            s += w[CS_PRIO_NODE_AFFINITY] * cs_policy_node_affinity(node[i], max_node);
        if (w[CS_PRIO_JOB_AFFINITY] && jc->nsoft_job)
            s += w[CS_PRIO_JOB_AFFINITY] * cs_policy_job_affinity(job[i], lo, hi);
        if (w[CS_PRIO_TAINT_TOLERATION])
            s += w[CS_PRIO_TAINT_TOLERATION] *
                 cs_policy_taint_toleration((uint32_t)bad[i], (uint32_t)max_bad);
        if (best == CS_NONE || s > best_score) {
            best = i;
            best_score = s;
            ties = 1;
        } else if (s == best_score && rand_below(p, ++ties) == 0) {
            best = i;
        }
    }
    return k->cand[best];
}

/* ---- ports ------------------------------------------------------------------------ */

/* The job's ports for a task on `m`: fixed ones as they are, dynamic ones
 * free in the machine's range, from a random point of it so that racing
 * schedulers rarely pick the same one. The check counted enough free ones;
 * false if not (a bug), rather than loop. */
static bool choose_ports(cs_placer *p, const jctx *jc, const cs_cmachine *m, uint16_t *out)
{
    const cs_job *j = &jc->j->job;
    uint32_t size = (uint32_t)m->port_hi - m->port_lo + 1;
    uint32_t at = jc->ndyn ? rand_below(p, size) : 0;
    for (uint32_t i = 0; i < j->nports; i++) {
        out[i] = j->ports[i];
        if (out[i] != 0)
            continue;
        bool found = false;
        for (uint32_t tries = 0; !found && tries < size; tries++) {
            uint16_t q = (uint16_t)(m->port_lo + at);
            bool taken = cs_ports_contains(m->ports, m->nports, q);
            for (uint32_t x = 0; !taken && x < j->nports; x++)
                taken = (x < i && out[x] == q) || (x > i && j->ports[x] == q);
            if (!taken) {
                out[i] = q;
                found = true;
            }
            at = at + 1 == size ? 0 : at + 1;
        }
        if (!found)
            return false;
    }
    return true;
}

/* ---- preemption ---------------------------------------------------------------------- */

static int victim_cmp(const void *a, const void *b, void *ctx)
{
    const cs_copy *c = ctx;
    const cs_ctask *x = cs_copy_task_at(c, *(const uint32_t *)a),
                   *y = cs_copy_task_at(c, *(const uint32_t *)b);
    int32_t px = cs_copy_job_at(c, x->job)->job.priority, py = cs_copy_job_at(c, y->job)->job.priority;
    if (px != py)
        return px < py ? -1 : 1;
    /* Larger first: fewer victims make the room. */
    int64_t sx = x->res.cpu + x->res.mem, sy = y->res.cpu + y->res.mem;
    if (sx != sy)
        return sx > sy ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int evict_all(cs_copy *c, const uint32_t *v, uint32_t n, uint32_t skip, cs_error *err)
{
    for (uint32_t i = 0; i < n; i++)
        if (i != skip) {
            int rc = cs_copy_evict(c, cs_copy_task_at(c, v[i])->id, err);
            if (rc != CS_OK)
                return rc;
        }
    return CS_OK;
}

/* The fewest victims on machine `ms` that make room for the class's task:
 * the lower-priority tasks there, lowest priority and largest first, until
 * it fits; then each one not needed after all is spared. On CS_OK *nv is
 * the count at the start of p->vict (0: none makes it fit); the copy is as
 * it was. */
static int victims_on(cs_placer *p, const jctx *jc, const klass *k, uint32_t ms, uint32_t *nv,
                      cs_error *err)
{
    cs_copy *c = jc->c;
    const cs_cmachine *m = cs_copy_machine_at(c, ms);
    *nv = 0;
    uint32_t n = 0;
    for (uint32_t t = m->tasks; t != CS_NONE; t = cs_copy_task_at(c, t)->next)
        if (cs_copy_job_at(c, cs_copy_task_at(c, t)->job)->job.priority < jc->j->job.priority)
            n++;
    if (n == 0)
        return CS_OK;
    if (n > p->nvict_cap) {
        uint32_t *v = realloc(p->vict, (size_t)n * sizeof *v);
        if (v == NULL)
            return nomem(err);
        p->vict = v;
        p->nvict_cap = n;
    }
    n = 0;
    for (uint32_t t = m->tasks; t != CS_NONE; t = cs_copy_task_at(c, t)->next)
        if (cs_copy_job_at(c, cs_copy_task_at(c, t)->job)->job.priority < jc->j->job.priority)
            p->vict[n++] = t;
    qsort_r(p->vict, n, sizeof *p->vict, victim_cmp, c);
    size_t mark = cs_copy_mark(c);
    uint32_t used = 0;
    int rc = CS_OK;
    bool fits = false;
    while (!fits && used < n) {
        if ((rc = cs_copy_evict(c, cs_copy_task_at(c, p->vict[used])->id, err)) != CS_OK)
            goto out;
        used++;
        fits = check(p, jc, &k->res, ms) == FEASIBLE;
    }
    if (!fits)
        goto out;
    /* Spare the costliest victims first: the highest priority is last. */
    for (uint32_t i = used; i-- > 0;) {
        cs_copy_undo(c, mark);
        if ((rc = evict_all(c, p->vict, used, i, err)) != CS_OK)
            goto out;
        if (check(p, jc, &k->res, ms) == FEASIBLE) {
            memmove(&p->vict[i], &p->vict[i + 1], (used - i - 1) * sizeof *p->vict);
            used--;
        }
    }
    *nv = used;
out:
    cs_copy_undo(c, mark);
    return rc;
}

typedef struct preemption {
    uint32_t machine;  /* slot, CS_NONE when nothing works */
    uint32_t n;
    int32_t max_prio;
    uint32_t *victims; /* task slots (malloc'd) */
} preemption;

static bool better(const cs_copy *c, const uint32_t *v, uint32_t n, const preemption *best,
                   int32_t *max_prio)
{
    *max_prio = INT32_MIN;
    for (uint32_t i = 0; i < n; i++) {
        int32_t pr = cs_copy_job_at(c, cs_copy_task_at(c, v[i])->job)->job.priority;
        if (pr > *max_prio)
            *max_prio = pr;
    }
    return best->machine == CS_NONE || n < best->n ||
           (n == best->n && *max_prio < best->max_prio);
}

/* Search the machines (all, or only `only`) for the best preemption; on
 * success the victims are evicted in the copy and *ms is the machine. */
static int preempt(cs_placer *p, const jctx *jc, klass *k, uint32_t only, uint32_t *ms,
                   preemption *best, cs_error *err)
{
    best->machine = CS_NONE;
    uint32_t n = only == CS_NONE ? p->nperm : 1;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t at = k->start + i;
        uint32_t m = only != CS_NONE ? only : p->perm[at >= p->nperm ? at - p->nperm : at];
        int r = check(p, jc, &k->res, m);
        if (!is_room(r))
            continue; /* only room can be made, not a constraint met */
        uint32_t nv;
        int rc = victims_on(p, jc, k, m, &nv, err);
        if (rc != CS_OK)
            return rc;
        int32_t max_prio;
        if (nv == 0 || !better(jc->c, p->vict, nv, best, &max_prio))
            continue;
        uint32_t *v = realloc(best->victims, nv * sizeof *v);
        if (v == NULL)
            return nomem(err);
        memcpy(v, p->vict, nv * sizeof *v);
        best->victims = v;
        best->n = nv;
        best->max_prio = max_prio;
        best->machine = m;
    }
    if (best->machine == CS_NONE)
        return CS_OK;
    *ms = best->machine;
    return evict_all(jc->c, best->victims, best->n, UINT32_MAX, err);
}

/* ---- reasons ---------------------------------------------------------------------------- */

/* snprintf for texts that may be cut: a reason longer than the note holds
 * is cut, not an error. */
static void __attribute__((format(printf, 3, 4))) cut(char *out, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, size, fmt, ap);
    va_end(ap);
}

static void thousands(uint32_t n, char *buf, size_t size)
{
    char digits[16];
    int len = snprintf(digits, sizeof digits, "%u", n), o = 0;
    for (int i = 0; i < len && (size_t)o + 2 < size; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
}

static void reason_label(const jctx *jc, uint32_t r, char *buf, size_t size)
{
    if (r < R_CONS)
        snprintf(buf, size, "%s", reason_text[r]);
    else
        cs_constraint_label(&jc->j->job.constraints[r - R_CONS], buf, size);
}

/* "no machine fits: cpu on 9,870, UNIQUE hostname on 130", or for a pinned
 * task "machine m7 does not fit: cpu". */
static void format_reason(const jctx *jc, const klass *k, uint32_t pinned, char *out, size_t size)
{
    char label[3 * CS_ATTR_LEN_MAX + 16];
    if (pinned != CS_NONE) {
        uint32_t r = 0;
        while (r < k->nrej && k->rej[r] == 0)
            r++;
        reason_label(jc, r < k->nrej ? r : R_DOWN, label, sizeof label);
        cut(out, size, "machine %s does not fit: %s",
                 cs_copy_str(jc->c, cs_copy_machine_at(jc->c, pinned)->name), label);
        return;
    }
    if (cs_copy_nmachines(jc->c) == 0) {
        snprintf(out, size, "no machine fits: the cell has no machines");
        return;
    }
    size_t o = (size_t)snprintf(out, size, "no machine fits");
    bool used[R_CONS + CS_CONSTRAINT_MAX] = {false};
    for (const char *sep = ": ";; sep = ", ") {
        uint32_t best = CS_NONE;
        for (uint32_t r = 0; r < k->nrej; r++)
            if (!used[r] && k->rej[r] > 0 && (best == CS_NONE || k->rej[r] > k->rej[best]))
                best = r;
        if (best == CS_NONE)
            break;
        used[best] = true;
        char num[24], part[sizeof label + 48];
        thousands(k->rej[best], num, sizeof num);
        reason_label(jc, best, label, sizeof label);
        int len = snprintf(part, sizeof part, "%s%s on %s", sep, label, num);
        if (o + (size_t)len + 1 > size)
            break;
        memcpy(out + o, part, (size_t)len + 1);
        o += (size_t)len;
    }
}

/* ---- placing ------------------------------------------------------------------------------ */

/* Place task slot `ts` (anywhere, or only on `only`). */
static int place_one(cs_placer *p, jctx *jc, uint32_t ts, uint32_t only, cs_txn *txn,
                     cs_place_report *rep, cs_error *err)
{
    cs_copy *c = jc->c;
    const cs_ctask *t = cs_copy_task_at(c, ts);
    klass *k;
    if (class_for(p, jc, &t->res, &k) != CS_OK || grow_k(p, jc->k) != CS_OK)
        return nomem(err);
    uint32_t ms = CS_NONE;
    if (p->pol.fewest_tasks && p->order_stale && build_order(p, c) != CS_OK)
        return nomem(err);
    if (only != CS_NONE) {
        class_reset(k);
        int r = check(p, jc, &k->res, only);
        if (r == FEASIBLE)
            ms = only;
        else
            k->rej[r]++;
    } else if (p->pol.first_fit) {
        ms = first_fit(p, jc, k);
    } else {
        scan(p, jc, k);
        if (k->ncand > 0)
            ms = choose(p, jc, k);
    }
    preemption pre = {.machine = CS_NONE};
    if (ms == CS_NONE && p->o.preempt && !k->no_preempt) {
        int rc = preempt(p, jc, k, only, &ms, &pre, err);
        if (rc != CS_OK) {
            free(pre.victims);
            return rc;
        }
        if (ms == CS_NONE && only == CS_NONE)
            k->no_preempt = true;
        else if (ms != CS_NONE) {
            class_reset(k); /* room was freed: what was rejected may fit now */
            if (jc->memo && k->why != NULL)
                memset(k->why, 0, p->nperm);
        }
    }
    if (ms == CS_NONE) {
        free(pre.victims);
        if (rep->pending++ == 0)
            format_reason(jc, k, only, rep->reason, sizeof rep->reason);
        return CS_OK;
    }
    const cs_cmachine *m = cs_copy_machine_at(c, ms);
    uint16_t ports[CS_PORTS_PER_TASK_MAX];
    cs_id tid = t->id;
    cs_res res = t->res;
    uint32_t np = jc->j->job.nports;
    int rc = CS_OK;
    if (!choose_ports(p, jc, m, ports))
        rc = cs_errorf(err, CS_ESTATE, "place: task %llu: no free dynamic port on machine %s",
                       (unsigned long long)tid, cs_copy_str(c, m->name));
    if (rc == CS_OK)
        rc = cs_copy_claim(c, tid, m->id, &res, ports, np, err);
    if (rc == CS_OK && cs_txn_add_claim(txn, tid, m->id, &res, ports, np, m->seq) != CS_OK)
        rc = nomem(err);
    for (uint32_t i = 0; rc == CS_OK && i < pre.n; i++)
        if (cs_txn_add_preempt(txn, cs_copy_task_at(c, pre.victims[i])->id, tid) != CS_OK)
            rc = nomem(err);
    if (rc == CS_OK && note_placed(p, jc, ms) != CS_OK)
        rc = nomem(err);
    if (rc == CS_OK && p->pol.fewest_tasks) {
        /* An eviction lowered counts the order does not track. */
        if (pre.n > 0)
            p->order_stale = true;
        else if (order_raise(p, c, ms) != CS_OK)
            rc = nomem(err);
    }
    if (rc == CS_OK) {
        rep->placed++;
        rep->victims += pre.n;
    }
    free(pre.victims);
    return rc;
}

/* Check the call's arguments before anything changes. */
static int validate(cs_placer *p, const cs_copy *c, cs_id job, uint32_t js, const cs_id *tasks,
                    size_t n, const cs_id *on, uint32_t *slots, cs_error *err)
{
    cs_u32map_clear(&p->seen);
    for (size_t i = 0; i < n; i++) {
        uint32_t ts = cs_copy_task_slot(c, tasks[i]);
        if (ts == CS_NONE)
            return cs_errorf(err, CS_ENOTFOUND, "place: unknown task %llu",
                             (unsigned long long)tasks[i]);
        const cs_ctask *t = cs_copy_task_at(c, ts);
        uint32_t dup;
        if (t->job != js)
            return cs_errorf(err, CS_EINVAL, "place: task %llu is not of job %llu",
                             (unsigned long long)tasks[i], (unsigned long long)job);
        if (cs_u32map_get(&p->seen, ts, &dup))
            return cs_errorf(err, CS_EINVAL, "place: task %llu is listed twice",
                             (unsigned long long)tasks[i]);
        if (t->state != CS_TASK_PENDING)
            return cs_errorf(err, CS_EINVAL, "place: task %llu is %s, not pending",
                             (unsigned long long)tasks[i], cs_task_state_name(t->state));
        if (cs_u32map_put(&p->seen, ts, 1) != CS_OK)
            return nomem(err);
        slots[2 * i] = ts;
        slots[2 * i + 1] = CS_NONE;
        if (on != NULL) {
            slots[2 * i + 1] = cs_copy_machine_slot(c, on[i]);
            if (slots[2 * i + 1] == CS_NONE)
                return cs_errorf(err, CS_ENOTFOUND, "place: task %llu: unknown machine %llu",
                                 (unsigned long long)tasks[i], (unsigned long long)on[i]);
        }
    }
    return CS_OK;
}

static int find_job(const cs_copy *c, cs_id job, uint32_t *js, cs_error *err)
{
    *js = cs_copy_job_slot(c, job);
    if (*js == CS_NONE)
        return cs_errorf(err, CS_ENOTFOUND, "place: unknown job %llu", (unsigned long long)job);
    const cs_cjob *j = cs_copy_job_at(c, *js);
    if (j->job.state != CS_JOB_ACTIVE)
        return cs_errorf(err, CS_ESTATE, "place: job %s is killed", j->job.name);
    return CS_OK;
}

int cs_place_job(cs_placer *p, cs_copy *c, cs_id job, const cs_id *tasks, size_t n,
                 const cs_id *on, cs_txn *txn, cs_place_report *rep, cs_error *err)
{
    memset(rep, 0, sizeof *rep);
    uint32_t js;
    int rc = find_job(c, job, &js, err);
    if (rc != CS_OK)
        return rc;
    uint32_t *slots = malloc((n ? n : 1) * 2 * sizeof *slots);
    if (slots == NULL)
        return nomem(err);
    if ((rc = validate(p, c, job, js, tasks, n, on, slots, err)) != CS_OK)
        goto out;
    const cs_cjob *j = cs_copy_job_at(c, js);
    if (j->bad != NULL) {
        rep->pending = (uint32_t)n;
        snprintf(rep->reason, sizeof rep->reason, "%s", j->bad);
        goto out;
    }
    size_t mark = cs_copy_mark(c);
    uint32_t nclaims = txn->nclaims, nports = txn->nports, npre = txn->npreempts;
    jctx jc;
    p->checked = 0;
    p->ncls = 0;
    if ((rc = sync_perm(p, c)) != CS_OK ||
        (p->pol.fewest_tasks && (rc = build_order(p, c)) != CS_OK)) {
        rc = nomem(err);
        goto out;
    }
    if ((rc = setup_job(p, c, js, &jc, err)) != CS_OK)
        goto undo;
    for (size_t i = 0; i < n && rc == CS_OK; i++)
        rc = place_one(p, &jc, slots[2 * i], slots[2 * i + 1], txn, rep, err);
    rep->checked = p->checked;
    if (rc == CS_OK && j->opts.gang && rep->pending > 0) {
        char why[CS_PLACE_REASON_MAX];
        snprintf(why, sizeof why, "%s", rep->reason);
        cut(rep->reason, sizeof rep->reason, "all or nothing (gang): %u of %zu tasks fit "
                 "nowhere; %s", rep->pending, n, why);
        rep->placed = rep->victims = 0;
        rep->pending = (uint32_t)n;
        goto undo_keep;
    }
    if (rc == CS_OK)
        goto out;
undo:
    memset(rep, 0, sizeof *rep);
undo_keep:
    cs_copy_undo(c, mark);
    txn->nclaims = nclaims;
    txn->nports = nports;
    txn->npreempts = npre;
out:
    free(slots);
    return rc;
}

uint32_t cs_place_noexecute_stay(const cs_copy *c, const cs_cjob *j, const cs_cmachine *m)
{
    const uint32_t *t;
    uint32_t n = cs_copy_taints(c, m, &t), stay = CS_PLACE_STAY_FOREVER;
    for (uint32_t i = 0; i < n; i++) {
        if (t[3 * i + 2] != CS_TAINT_NO_EXECUTE)
            continue;
        const cs_toleration *match = NULL;
        for (uint32_t k = 0; match == NULL && k < j->opts.ntolerations; k++)
            if (cs_toleration_matches(&j->opts.tolerations[k], cs_copy_str(c, t[3 * i]),
                                      cs_copy_str(c, t[3 * i + 1]), CS_TAINT_NO_EXECUTE))
                match = &j->opts.tolerations[k];
        if (match == NULL)
            return 0;
        if (match->has_seconds && match->seconds < stay)
            stay = match->seconds;
    }
    return stay;
}

static int cmp_id(const void *a, const void *b)
{
    cs_id x = *(const cs_id *)a, y = *(const cs_id *)b;
    return x < y ? -1 : x > y;
}

int cs_place_global(cs_placer *p, cs_copy *c, cs_id job, cs_id **machines, size_t *n,
                    cs_error *err)
{
    *machines = NULL;
    *n = 0;
    uint32_t js;
    int rc = find_job(c, job, &js, err);
    if (rc != CS_OK)
        return rc;
    const cs_cjob *j = cs_copy_job_at(c, js);
    if (j->bad != NULL)
        return cs_errorf(err, CS_EINVAL, "place: job %s: %s", j->job.name, j->bad);
    jctx jc;
    p->checked = 0;
    p->ncls = 0;
    if ((rc = setup_job(p, c, js, &jc, err)) != CS_OK)
        return rc;
    /* Which machines hold a task of the job: the map, whatever the policy. */
    if (!jc.want_here) {
        jc.want_here = true;
        for (uint32_t x = 0; x < j->ntaskidx; x++) {
            uint32_t t = j->tasks[x];
            if (t != CS_NONE && cs_task_state_placed(cs_copy_task_at(c, t)->state) &&
                cs_u32map_add(&p->here, cs_copy_task_at(c, t)->machine, 1, NULL) != CS_OK)
                return nomem(err);
        }
    }
    uint32_t nm = cs_copy_nmachines(c);
    cs_id *out = malloc((nm ? nm : 1) * sizeof *out);
    if (out == NULL)
        return nomem(err);
    size_t k = 0;
    for (uint32_t ms = 0; ms < nm; ms++) {
        uint32_t have;
        if (!cs_u32map_get(&p->here, ms, &have) && check(p, &jc, &j->job.res, ms) == FEASIBLE)
            out[k++] = cs_copy_machine_at(c, ms)->id;
    }
    qsort(out, k, sizeof *out, cmp_id);
    if (k == 0) {
        free(out);
        out = NULL;
    }
    *machines = out;
    *n = k;
    return CS_OK;
}
