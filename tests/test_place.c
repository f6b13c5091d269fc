/* test_place.c — feasibility and scoring: every constraint kind honoured and
 * violated, each priority steering the choice, ports, volumes, preemption,
 * reasons, gang and global jobs, no overcommit through tentative claims, and
 * equivalence classes equal to a per-task scan (property test, fixed seeds).
 * Cells are built in memory (tests/cellbuild.h) and fed to a cs_copy. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "cellstate/rng.h"
#include "schedulers/cellcopy.h"
#include "schedulers/place.h"
#include "tests/cellbuild.h"

/* One cell, its copy, a placer and a transaction. */
typedef struct fx {
    tb_cell b;
    cs_copy *c;
    cs_placer *p;
    cs_txn txn;
    cs_place_report rep;
    cs_policy pol;
    cs_place_opts o;
} fx;

static void fx_init(fx *f)
{
    memset(f, 0, sizeof *f);
    tb_init(&f->b);
    cs_error err = {0};
    cr_assert_eq(cs_copy_new(&f->c, &err), CS_OK);
    f->pol.predicates = CS_PRED_ALL;
    f->pol.weights[CS_PRIO_LEAST_REQUESTED] = 1;
    f->o.seed = 7;
    cs_txn_init(&f->txn, 1, 1, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
}

/* Sync the copy (full) and make the placer with the current policy. */
static void fx_ready(fx *f)
{
    tb_sync(&f->b, f->c, true);
    cs_placer_free(f->p);
    cs_error err = {0};
    cr_assert_eq(cs_placer_new(&f->pol, &f->o, &f->p, &err), CS_OK);
}

static void fx_free(fx *f)
{
    cs_placer_free(f->p);
    cs_copy_free(f->c);
    cs_txn_free(&f->txn);
    tb_free(&f->b);
}

/* Place every pending task of `job`; returns how many were placed. */
static uint32_t place(fx *f, cs_id job)
{
    cs_id ids[4096];
    size_t n = cs_copy_pending(f->c, job, ids, 4096);
    cs_error err = {0};
    int rc = cs_place_job(f->p, f->c, job, ids, n, NULL, &f->txn, &f->rep, &err);
    cr_assert_eq(rc, CS_OK, "cs_place_job: %s", err.msg);
    cr_assert_eq(f->rep.placed + f->rep.pending, n);
    return f->rep.placed;
}

/* The machine of task `index` of `job` in the copy (0 if not placed). */
static cs_id where(fx *f, cs_id job, uint32_t index)
{
    const cs_ctask *t = cs_copy_task(f->c, cs_task_id(job, index));
    if (!cs_task_state_placed(t->state))
        return 0;
    return cs_copy_machine_at(f->c, t->machine)->id;
}

static const char *attr_of(fx *f, cs_id machine, const char *key)
{
    uint32_t v = cs_copy_attr(f->c, cs_copy_machine(f->c, machine), cs_copy_find_str(f->c, key));
    return v == CS_NONE ? NULL : cs_copy_str(f->c, v);
}

/* Commit what the transaction holds into the built cell and sync. */
static void fx_commit(fx *f)
{
    tb_commit(&f->b, &f->txn);
    cs_txn_reset(&f->txn, 2, 0);
    tb_sync(&f->b, f->c, false);
}

/* ---- resources, state, reasons ------------------------------------------------ */

Test(place, tentative_claims_never_overcommit_a_nearly_full_cell)
{
    fx f;
    fx_init(&f);
    for (int i = 0; i < 20; i++) {
        char name[16];
        snprintf(name, sizeof name, "m%02d", i);
        cs_id m = tb_machine_add(&f.b, name, 4000, 8192, 100, 0, 0, NULL);
        cs_id filler = tb_job_add(&f.b, name, CS_JOB_BATCH, 10, 1, 2000 + 100 * (i % 7), 1000, 0);
        tb_place(&f.b, filler, 0, m);
    }
    /* 20 machines with 1,400..2,000 millicores free: room for 107 tasks of 300. */
    cs_id j = tb_job_add(&f.b, "big", CS_JOB_BATCH, 50, 150, 300, 100, 0);
    fx_ready(&f);
    uint32_t placed = place(&f, j);
    uint32_t room = 0;
    for (int i = 0; i < 20; i++)
        room += (4000 - (2000 + 100 * (i % 7))) / 300;
    cr_assert_eq(placed, room, "placed %u, room for %u", placed, room);
    cr_assert_eq(f.rep.pending, 150 - room);
    cr_assert_str_eq(f.rep.reason, "no machine fits: cpu on 20", "%s", f.rep.reason);
    cr_assert_eq(f.txn.nclaims, placed);
    for (uint32_t i = 0; i < f.txn.nclaims; i++)
        cr_assert_eq(f.txn.claims[i].seq, cs_copy_machine(f.c, f.txn.claims[i].machine)->seq);
    fx_commit(&f);
    tb_check(&f.b);
    fx_free(&f);
}

/* A machine short of several resources is counted once, under all of them:
 * the note says what would have to grow. */
Test(place, reasons_name_every_resource_a_machine_lacks)
{
    fx f;
    fx_init(&f);
    tb_machine_add(&f.b, "a", 1000, 1000, 10, 0, 0, NULL);
    tb_machine_add(&f.b, "b", 1000, 1000, 10, 0, 0, NULL);
    tb_machine_add(&f.b, "c", 1000, 1000, 10, 0, 0, NULL);
    tb_machine_add(&f.b, "d", 8000, 1000, 10, 0, 0, NULL);
    tb_machine_add(&f.b, "e", 8000, 8000, 5, 0, 0, NULL);
    cs_id j = tb_job_add(&f.b, "wide", CS_JOB_BATCH, 50, 1, 2000, 2000, 8);
    fx_ready(&f);
    cr_assert_eq(place(&f, j), 0);
    cr_assert_str_eq(f.rep.reason, "no machine fits: cpu and memory on 3, memory on 1, disk on 1",
                     "%s", f.rep.reason);
    fx_free(&f);
}

Test(place, machines_not_up_are_never_chosen_and_reasons_count_them)
{
    fx f;
    fx_init(&f);
    tb_machine_add(&f.b, "a", 1000, 1000, 10, 0, 0, NULL);
    cs_id d = tb_machine_add(&f.b, "b", 8000, 8000, 10, 0, 0, NULL);
    cs_id x = tb_machine_add(&f.b, "c", 8000, 8000, 10, 0, 0, NULL);
    tb_machine_state(&f.b, d, CS_MACHINE_DRAINING);
    tb_machine_state(&f.b, x, CS_MACHINE_DOWN);
    cs_id j = tb_job_add(&f.b, "j", CS_JOB_BATCH, 50, 3, 600, 100, 20);
    fx_ready(&f);
    cr_assert_eq(place(&f, j), 0);
    cr_assert_str_eq(f.rep.reason, "no machine fits: machine not up on 2, disk on 1");
    fx_free(&f);
}

Test(place, cordoned_and_draining_machines_are_never_chosen)
{
    fx f;
    fx_init(&f);
    cs_id a = tb_machine_add(&f.b, "a", 8000, 8000, 10, 0, 0, NULL);
    cs_id c = tb_machine_add(&f.b, "c", 8000, 8000, 10, 0, 0, NULL);
    cs_id d = tb_machine_add(&f.b, "d", 8000, 8000, 10, 0, 0, NULL);
    tb_machine_admin(&f.b, c, CS_ADMIN_CORDONED);
    tb_machine_admin(&f.b, d, CS_ADMIN_DRAINING);
    cs_id j = tb_job_add(&f.b, "j", CS_JOB_BATCH, 50, 4, 100, 100, 0);
    fx_ready(&f);
    cr_assert_eq(cs_copy_machine(f.c, c)->state, CS_MACHINE_DRAINING);
    cr_assert_eq(cs_copy_machine(f.c, d)->state, CS_CMACHINE_EVACUATING);
    cr_assert_eq(place(&f, j), 4, "the active machine has room for all four");
    for (uint32_t i = 0; i < f.txn.nclaims; i++)
        cr_assert_eq(f.txn.claims[i].machine, a, "a task went to a machine taking none");
    /* Only cordoned machines left: nothing placed, and the reason says so. */
    tb_machine_admin(&f.b, a, CS_ADMIN_CORDONED);
    cs_id k = tb_job_add(&f.b, "k", CS_JOB_BATCH, 50, 1, 100, 100, 0);
    cs_txn_free(&f.txn);
    cs_txn_init(&f.txn, 1, 2, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    fx_ready(&f);
    cr_assert_eq(place(&f, k), 0);
    cr_assert_str_eq(f.rep.reason, "no machine fits: machine not up on 3");
    /* Uncordoned, it takes tasks again. */
    tb_machine_admin(&f.b, c, CS_ADMIN_ACTIVE);
    fx_ready(&f);
    cr_assert_eq(place(&f, k), 1);
    cr_assert_eq(f.txn.claims[0].machine, c);
    fx_free(&f);
}

Test(place, reasons_use_thousands_separators_most_frequent_first, .timeout = 60)
{
    fx f;
    fx_init(&f);
    for (int i = 0; i < 1300; i++) {
        char name[16];
        snprintf(name, sizeof name, "m%04d", i);
        tb_machine_add(&f.b, name, i < 1290 ? 4000 : 500, 8192, 100, 0, 0,
                       i < 1290 ? "zone=a" : "zone=b");
    }
    cs_id j = tb_job_add(&f.b, "j", CS_JOB_SERVICE, 50, 1, 1000, 100, 0);
    tb_job_constraint(&f.b, j, "zone", "==", "b", false);
    fx_ready(&f);
    cr_assert_eq(place(&f, j), 0);
    cr_assert_str_eq(f.rep.reason, "no machine fits: zone == b on 1,290, cpu on 10", "%s",
                     f.rep.reason);
    fx_free(&f);
}

/* ---- attribute and hostname constraints ------------------------------------------ */

static void attr_cell(fx *f)
{
    tb_machine_add(&f->b, "h1", 4000, 8192, 100, 0, 0, "rack=r1 zone=a");
    tb_machine_add(&f->b, "h2", 4000, 8192, 100, 0, 0, "rack=r2 zone=a");
    tb_machine_add(&f->b, "h3", 4000, 8192, 100, 0, 0, "rack=r3 zone=b");
    tb_machine_add(&f->b, "h4", 4000, 8192, 100, 0, 0, "zone=b");
}

/* Place `count` tasks with one hard constraint; check each landed on a
 * machine `ok` accepts, and that `want` were placed. */
static void one_constraint(const char *field, const char *op, const char *value,
                           uint32_t count, uint32_t want, bool (*ok)(fx *, cs_id))
{
    fx f;
    fx_init(&f);
    attr_cell(&f);
    cs_id j = tb_job_add(&f.b, "j", CS_JOB_BATCH, 50, count, 100, 100, 0);
    tb_job_constraint(&f.b, j, field, op, value, false);
    fx_ready(&f);
    cr_assert_eq(place(&f, j), want, "%s %s %s: placed %u, want %u (%s)", field, op, value,
                 f.rep.placed, want, f.rep.reason);
    for (uint32_t i = 0; i < count; i++) {
        cs_id m = where(&f, j, i);
        cr_assert(m == 0 || ok(&f, m), "%s %s %s: task %u on machine %llu", field, op, value, i,
                  (unsigned long long)m);
    }
    fx_free(&f);
}

static bool is_r2(fx *f, cs_id m) { const char *r = attr_of(f, m, "rack"); return r && !strcmp(r, "r2"); }
static bool not_r2(fx *f, cs_id m) { return !is_r2(f, m); }
static bool r1_or_r3(fx *f, cs_id m)
{
    const char *r = attr_of(f, m, "rack");
    return r && (!strcmp(r, "r1") || !strcmp(r, "r3"));
}
static bool not_r1_r3(fx *f, cs_id m) { return !r1_or_r3(f, m); }
static bool is_h3(fx *f, cs_id m) { return !strcmp(cs_copy_str(f->c, cs_copy_machine(f->c, m)->name), "h3"); }
static bool has_rack(fx *f, cs_id m) { return attr_of(f, m, "rack") != NULL; }

Test(place, equality_operators)
{
    one_constraint("rack", "==", "r2", 6, 6, is_r2);
    one_constraint("rack", "IS", "r2", 2, 2, is_r2);
    one_constraint("rack", "is", "r2", 2, 2, is_r2);
    one_constraint("rack", "==", "r9", 3, 0, is_r2);
    /* != accepts the machine without a rack, as UNLIKE does. */
    one_constraint("rack", "!=", "r2", 12, 12, not_r2);
}

Test(place, like_and_unlike_match_the_whole_value)
{
    one_constraint("rack", "LIKE", "r[13]", 8, 8, r1_or_r3);
    /* Anchored: "r" alone matches no rack. */
    one_constraint("rack", "LIKE", "r", 2, 0, r1_or_r3);
    one_constraint("rack", "LIKE", "r1|r3", 4, 4, r1_or_r3);
    /* UNLIKE accepts h4, which has no rack. */
    one_constraint("rack", "UNLIKE", "r[13]", 8, 8, not_r1_r3);
}

Test(place, hostname_pins)
{
    one_constraint("hostname", "==", "h3", 5, 5, is_h3);
    one_constraint("hostname", "LIKE", "h[3]", 2, 2, is_h3);
    one_constraint("hostname", "CLUSTER", "h3", 2, 2, is_h3);
}

Test(place, cluster_with_a_value_and_without)
{
    one_constraint("rack", "CLUSTER", "r2", 4, 4, is_r2);
    /* Without a value: all on the rack of the first placed task; machines
     * without a rack never qualify. */
    fx f;
    fx_init(&f);
    attr_cell(&f);
    tb_machine_add(&f.b, "h5", 4000, 8192, 100, 0, 0, "rack=r3 zone=c");
    cs_id j = tb_job_add(&f.b, "j", CS_JOB_BATCH, 50, 6, 100, 100, 0);
    tb_job_constraint(&f.b, j, "rack", "CLUSTER", "", false);
    tb_place(&f.b, j, 0, 3); /* h3, rack r3 */
    fx_ready(&f);
    cr_assert_eq(place(&f, j), 5);
    for (uint32_t i = 0; i < 6; i++)
        cr_assert_str_eq(attr_of(&f, where(&f, j, i), "rack"), "r3");
    /* Nothing placed yet: whichever rack the first task gets, all follow. */
    cs_id k = tb_job_add(&f.b, "k", CS_JOB_BATCH, 50, 6, 100, 100, 0);
    tb_job_constraint(&f.b, k, "rack", "CLUSTER", "", false);
    fx_ready(&f);
    cr_assert_eq(place(&f, k), 6);
    const char *first = attr_of(&f, where(&f, k, 0), "rack");
    cr_assert_not_null(first);
    for (uint32_t i = 1; i < 6; i++)
        cr_assert_str_eq(attr_of(&f, where(&f, k, i), "rack"), first);
    fx_free(&f);
}

/* ---- counting constraints ---------------------------------------------------------- */

Test(place, unique_hostname_and_unique_attribute)
{
    one_constraint("rack", "UNIQUE", "", 5, 3, has_rack);
    fx f;
    fx_init(&f);
    attr_cell(&f);
    cs_id j = tb_job_add(&f.b, "j", CS_JOB_BATCH, 50, 6, 100, 100, 0);
    tb_job_constraint(&f.b, j, "hostname", "UNIQUE", "", false);
    fx_ready(&f);
    cr_assert_eq(place(&f, j), 4);
    cr_assert_str_eq(f.rep.reason, "no machine fits: UNIQUE hostname on 4", "%s", f.rep.reason);
    for (uint32_t a = 0; a < 6; a++)
        for (uint32_t b = a + 1; b < 6; b++)
            cr_assert(where(&f, j, a) == 0 || where(&f, j, a) != where(&f, j, b));
    /* The placed ones count after a commit too: nothing more fits. */
    fx_commit(&f);
    cr_assert_eq(place(&f, j), 0);
    fx_free(&f);
}

Test(place, max_per_caps_each_value)
{
    fx f;
    fx_init(&f);
    attr_cell(&f);
    cs_id j = tb_job_add(&f.b, "j", CS_JOB_BATCH, 50, 8, 100, 100, 0);
    tb_job_constraint(&f.b, j, "zone", "MAX_PER", "3", false);
    tb_place(&f.b, j, 0, 1); /* zone a */
    fx_ready(&f);
    cr_assert_eq(place(&f, j), 5, "3 in zone a, 3 in zone b: %s", f.rep.reason);
    int a = 0, b = 0;
    for (uint32_t i = 0; i < 8; i++) {
        const char *z = where(&f, j, i) ? attr_of(&f, where(&f, j, i), "zone") : NULL;
        a += z && !strcmp(z, "a");
        b += z && !strcmp(z, "b");
    }
    cr_assert(a == 3 && b == 3, "zone a %d, zone b %d", a, b);
    cr_assert_str_eq(f.rep.reason, "no machine fits: MAX_PER zone 3 on 4");
    fx_free(&f);
}

Test(place, group_by_spreads_evenly)
{
    fx f;
    fx_init(&f);
    for (int i = 0; i < 9; i++) {
        char name[16], attrs[32];
        snprintf(name, sizeof name, "g%d", i);
        snprintf(attrs, sizeof attrs, "zone=z%d", i % 3);
        tb_machine_add(&f.b, name, 16000, 65536, 100, 0, 0, attrs);
    }
    /* Binpacking would pile everything on one machine; GROUP_BY must not. */
    f.pol.weights[CS_PRIO_LEAST_REQUESTED] = 0;
    f.pol.weights[CS_PRIO_MOST_REQUESTED] = 1;
    cs_id j = tb_job_add(&f.b, "j", CS_JOB_SERVICE, 50, 12, 100, 100, 0);
    tb_job_constraint(&f.b, j, "zone", "GROUP_BY", "3", false);
    tb_place(&f.b, j, 0, 1); /* z1 starts ahead */
    fx_ready(&f);
    cr_assert_eq(place(&f, j), 11);
    int per[3] = {0};
    for (uint32_t i = 0; i < 12; i++)
        per[attr_of(&f, where(&f, j, i), "zone")[1] - '0']++;
    cr_assert(per[0] == 4 && per[1] == 4 && per[2] == 4, "%d %d %d", per[0], per[1], per[2]);
    fx_free(&f);
}

Test(place, group_by_without_a_count_spreads_over_every_value_in_the_cell)
{
    /* Marathon, seeing only the offers in hand, lets tasks pile into the
     * first groups when no count is given; the copy knows every value the
     * field takes on an up machine, so the spread is even. */
    fx f;
    fx_init(&f);
    for (int i = 0; i < 8; i++) {
        char name[16], attrs[32];
        snprintf(name, sizeof name, "g%d", i);
        snprintf(attrs, sizeof attrs, "zone=z%d", i % 4);
        tb_machine_add(&f.b, name, 16000, 65536, 100, 0, 0, attrs);
    }
    f.pol.weights[CS_PRIO_LEAST_REQUESTED] = 0;
    f.pol.weights[CS_PRIO_MOST_REQUESTED] = 1;
    cs_id j = tb_job_add(&f.b, "j", CS_JOB_BATCH, 50, 8, 100, 100, 0);
    tb_job_constraint(&f.b, j, "zone", "GROUP_BY", "", false);
    fx_ready(&f);
    cr_assert_eq(place(&f, j), 8);
    int per[4] = {0};
    for (uint32_t i = 0; i < 8; i++)
        per[attr_of(&f, where(&f, j, i), "zone")[1] - '0']++;
    cr_assert(per[0] == 2 && per[1] == 2 && per[2] == 2 && per[3] == 2, "%d %d %d %d", per[0],
              per[1], per[2], per[3]);
    fx_free(&f);
}

/* ---- job affinity -------------------------------------------------------------------- */

Test(place, affinity_and_anti_affinity_to_another_job)
{
    fx f;
    fx_init(&f);
    attr_cell(&f);
    cs_id db = tb_job_add(&f.b, "db", CS_JOB_SERVICE, 50, 2, 100, 100, 0);
    tb_place(&f.b, db, 0, 2);
    tb_place(&f.b, db, 1, 4);
    cs_id near = tb_job_add(&f.b, "near", CS_JOB_BATCH, 50, 6, 100, 100, 0);
    tb_job_constraint(&f.b, near, "job", "AFFINITY", "db", false);
    cs_id far = tb_job_add(&f.b, "far", CS_JOB_BATCH, 50, 6, 100, 100, 0);
    tb_job_constraint(&f.b, far, "job", "ANTI_AFFINITY", "db", false);
    cs_id none = tb_job_add(&f.b, "none", CS_JOB_BATCH, 50, 1, 100, 100, 0);
    tb_job_constraint(&f.b, none, "job", "AFFINITY", "nosuch", false);
    fx_ready(&f);
    cr_assert_eq(place(&f, near), 6);
    cr_assert_eq(place(&f, far), 6);
    for (uint32_t i = 0; i < 6; i++) {
        cs_id a = where(&f, near, i), b = where(&f, far, i);
        cr_assert(a == 2 || a == 4, "near on %llu", (unsigned long long)a);
        cr_assert(b == 1 || b == 3, "far on %llu", (unsigned long long)b);
    }
    cr_assert_eq(place(&f, none), 0);
    cr_assert_str_eq(f.rep.reason, "no machine fits: AFFINITY job nosuch on 4");
    fx_free(&f);
}

/* A job's hard constraints are its contract: a policy whose predicates
 * name none of them (Kubernetes' example Policy file lists no
 * MatchInterPodAffinity) still enforces every one. */
Test(place, hard_constraints_hold_whatever_the_policy_lists)
{
    fx f;
    fx_init(&f);
    f.pol.predicates = 0;
    attr_cell(&f);
    cs_id db = tb_job_add(&f.b, "db", CS_JOB_SERVICE, 50, 1, 100, 100, 0);
    tb_place(&f.b, db, 0, 2);
    cs_id near = tb_job_add(&f.b, "near", CS_JOB_BATCH, 50, 4, 100, 100, 0);
    tb_job_constraint(&f.b, near, "job", "AFFINITY", "db", false);
    cs_id far = tb_job_add(&f.b, "far", CS_JOB_BATCH, 50, 4, 100, 100, 0);
    tb_job_constraint(&f.b, far, "job", "ANTI_AFFINITY", "db", false);
    cs_id pinned = tb_job_add(&f.b, "pinned", CS_JOB_BATCH, 50, 2, 100, 100, 0);
    tb_job_constraint(&f.b, pinned, "hostname", "==", "h3", false);
    cs_id racked = tb_job_add(&f.b, "racked", CS_JOB_BATCH, 50, 3, 100, 100, 0);
    tb_job_constraint(&f.b, racked, "rack", "==", "r2", false);
    cs_id one = tb_job_add(&f.b, "one", CS_JOB_BATCH, 50, 6, 100, 100, 0);
    tb_job_constraint(&f.b, one, "hostname", "UNIQUE", "", false);
    fx_ready(&f);
    cr_assert_eq(place(&f, near), 4);
    cr_assert_eq(place(&f, far), 4);
    cr_assert_eq(place(&f, pinned), 2);
    cr_assert_eq(place(&f, racked), 3);
    for (uint32_t i = 0; i < 4; i++) {
        cr_assert_eq(where(&f, near, i), 2, "AFFINITY: next to db");
        cr_assert_neq(where(&f, far, i), 2, "ANTI_AFFINITY: away from db");
    }
    for (uint32_t i = 0; i < 2; i++)
        cr_assert(is_h3(&f, where(&f, pinned, i)));
    for (uint32_t i = 0; i < 3; i++)
        cr_assert(is_r2(&f, where(&f, racked, i)));
    cr_assert_eq(place(&f, one), (uint32_t)cs_copy_nmachines(f.c), "UNIQUE: one per machine");
    fx_free(&f);
}

/* ---- taints and tolerations ---------------------------------------------------------------- */

/* A job with these tolerations, each "key|op|value|effect" ("-" for an
 * empty key or value, and for any effect). */
static void tolerate(fx *f, cs_id job, const char *const *tols, uint32_t n)
{
    cs_toleration t[4];
    cr_assert(n <= 4);
    for (uint32_t i = 0; i < n; i++) {
        char key[32], op[16], value[32], effect[32];
        cr_assert_eq(sscanf(tols[i], "%31[^|]|%15[^|]|%31[^|]|%31s", key, op, value, effect), 4,
                     "%s", tols[i]);
        memset(&t[i], 0, sizeof t[i]);
        t[i].key = strcmp(key, "-") == 0 ? "" : strdup(key);
        t[i].op = strcmp(op, "Exists") == 0 ? CS_TOL_EXISTS : CS_TOL_EQUAL;
        t[i].value = strcmp(value, "-") == 0 ? "" : strdup(value);
        t[i].effect = CS_TOL_ANY_EFFECT;
        if (strcmp(effect, "-") != 0)
            cr_assert_eq(cs_taint_effect_parse(effect, &t[i].effect), CS_OK);
    }
    cs_jobopts o;
    cs_jobopts_init(&o);
    o.tolerations = t;
    o.ntolerations = n;
    tb_job_opts(&f->b, job, &o);
    for (uint32_t i = 0; i < n; i++) {
        if (t[i].key[0])
            free((char *)t[i].key);
        if (t[i].value[0])
            free((char *)t[i].value);
    }
}

/* NoSchedule and NoExecute keep an untolerating task off, whatever the
 * policy (predicates 0); a matching toleration lets it on; Kubernetes'
 * matching rules: Equal compares values, Exists any value, an empty key
 * with Exists every taint, an effect only its own. */
Test(place, taints_keep_off_what_does_not_tolerate_them)
{
    fx f;
    fx_init(&f);
    f.pol.predicates = 0;
    cs_id clean = tb_machine_add(&f.b, "clean", 1000, 1000, 100, 0, 0, NULL);
    cs_id gpu = tb_machine_add(&f.b, "gpu", 64000, 64000, 100, 0, 0, NULL);
    cs_id evict = tb_machine_add(&f.b, "evict", 64000, 64000, 100, 0, 0, NULL);
    tb_machine_taint(&f.b, gpu, "dedicated=gpu:NoSchedule");
    tb_machine_taint(&f.b, evict, "maintenance:NoExecute");
    /* plain: only `clean` (which holds 3 of 300m); gpu: Equal gpu; wrong:
     * Equal with another value; any: Exists with no key; gpu_ne: right key,
     * wrong effect. */
    cs_id plain = tb_job_add(&f.b, "plain", CS_JOB_BATCH, 50, 5, 300, 10, 0);
    cs_id ok = tb_job_add(&f.b, "ok", CS_JOB_BATCH, 50, 8, 300, 10, 0);
    tolerate(&f, ok, (const char *const[]){"dedicated|Equal|gpu|NoSchedule"}, 1);
    cs_id wrong = tb_job_add(&f.b, "wrong", CS_JOB_BATCH, 50, 8, 300, 10, 0);
    tolerate(&f, wrong, (const char *const[]){"dedicated|Equal|cpu|NoSchedule"}, 1);
    cs_id any = tb_job_add(&f.b, "any", CS_JOB_BATCH, 50, 12, 300, 10, 0);
    tolerate(&f, any, (const char *const[]){"-|Exists|-|-"}, 1);
    cs_id ne = tb_job_add(&f.b, "ne", CS_JOB_BATCH, 50, 8, 300, 10, 0);
    tolerate(&f, ne, (const char *const[]){"dedicated|Exists|-|NoExecute"}, 1);
    fx_ready(&f);
    cr_assert_eq(place(&f, plain), 3, "room on clean only");
    cr_assert_str_eq(f.rep.reason, "no machine fits: taint not tolerated on 2, cpu on 1",
                     "%s", f.rep.reason);
    for (uint32_t i = 0; i < 5; i++)
        cr_assert(where(&f, plain, i) == clean || where(&f, plain, i) == 0);
    cr_assert_eq(place(&f, ok), 8);
    for (uint32_t i = 0; i < 8; i++)
        cr_assert_eq(where(&f, ok, i), gpu, "tolerates dedicated=gpu only");
    cr_assert_eq(place(&f, wrong), 0, "Equal compares the value; clean is full");
    cr_assert_eq(place(&f, any), 12, "an empty key with Exists tolerates everything");
    bool on_evict = false;
    for (uint32_t i = 0; i < 12; i++)
        on_evict |= where(&f, any, i) == evict;
    cr_assert(on_evict, "12 tasks spread by LeastRequested reach the NoExecute machine");
    cr_assert_eq(place(&f, ne), 0, "a NoExecute toleration does not cover NoSchedule");
    fx_free(&f);
}

/* How long a placed task may stay under NoExecute taints: never without a
 * toleration, for ever with one without a limit, else the smallest limit;
 * and a limited toleration does not let a new task on. */
Test(place, no_execute_stay_follows_the_tolerations)
{
    fx f;
    fx_init(&f);
    cs_id clean = tb_machine_add(&f.b, "clean", 64000, 64000, 100, 0, 0, NULL);
    cs_id ne = tb_machine_add(&f.b, "ne", 64000, 64000, 100, 0, 0, NULL);
    tb_machine_taint(&f.b, ne, "maintenance:NoExecute");
    tb_machine_taint(&f.b, ne, "flaky=yes:NoExecute");
    tb_machine_taint(&f.b, ne, "soft:NoSchedule");
    cs_id none = tb_job_add(&f.b, "none", CS_JOB_SERVICE, 50, 1, 100, 10, 0);
    cs_id all = tb_job_add(&f.b, "all", CS_JOB_SERVICE, 50, 1, 100, 10, 0);
    tolerate(&f, all, (const char *const[]){"-|Exists|-|-"}, 1);
    cs_id timed = tb_job_add(&f.b, "timed", CS_JOB_SERVICE, 50, 1, 100, 10, 0);
    cs_id half = tb_job_add(&f.b, "half", CS_JOB_SERVICE, 50, 1, 100, 10, 0);
    tolerate(&f, half, (const char *const[]){"maintenance|Exists|-|NoExecute"}, 1);
    /* tolerate() takes no seconds: set them by hand. */
    cs_toleration t[3] = {
        {"maintenance", "", CS_TOL_EXISTS, CS_TAINT_NO_EXECUTE, true, 30},
        {"flaky", "yes", CS_TOL_EQUAL, CS_TAINT_NO_EXECUTE, true, 5},
        {"soft", "", CS_TOL_EXISTS, CS_TOL_ANY_EFFECT, false, 0},
    };
    cs_jobopts o;
    cs_jobopts_init(&o);
    o.tolerations = t;
    o.ntolerations = 3;
    tb_job_opts(&f.b, timed, &o);
    fx_ready(&f);
    const cs_cmachine *m = cs_copy_machine(f.c, ne), *c0 = cs_copy_machine(f.c, clean);
    cr_assert_eq(cs_place_noexecute_stay(f.c, cs_copy_job(f.c, none), m), 0);
    cr_assert_eq(cs_place_noexecute_stay(f.c, cs_copy_job(f.c, none), c0), CS_PLACE_STAY_FOREVER);
    cr_assert_eq(cs_place_noexecute_stay(f.c, cs_copy_job(f.c, all), m), CS_PLACE_STAY_FOREVER);
    cr_assert_eq(cs_place_noexecute_stay(f.c, cs_copy_job(f.c, timed), m), 5, "the smallest");
    cr_assert_eq(cs_place_noexecute_stay(f.c, cs_copy_job(f.c, half), m), 0, "flaky untolerated");
    cr_assert_eq(place(&f, timed), 1);
    cr_assert_eq(where(&f, timed, 0), clean, "a limited NoExecute toleration lets no task on");
    cr_assert_eq(place(&f, all), 1);
    fx_free(&f);
}

/* PreferNoSchedule only scores: an untolerating task goes to the tainted
 * machine when nothing else fits, and elsewhere when something does. */
Test(place, prefer_no_schedule_is_a_preference)
{
    fx f;
    fx_init(&f);
    f.pol.weights[CS_PRIO_TAINT_TOLERATION] = 100; /* outweighs LeastRequested */
    f.o.k_batch = 8;
    cs_id big = tb_machine_add(&f.b, "big", 64000, 64000, 100, 0, 0, NULL);
    cs_id small = tb_machine_add(&f.b, "small", 1000, 1000, 100, 0, 0, NULL);
    tb_machine_taint(&f.b, big, "spot:PreferNoSchedule");
    cs_id j = tb_job_add(&f.b, "j", CS_JOB_BATCH, 50, 5, 300, 10, 0);
    cs_id tol = tb_job_add(&f.b, "tol", CS_JOB_BATCH, 50, 3, 300, 10, 0);
    tolerate(&f, tol, (const char *const[]){"spot|Exists|-|PreferNoSchedule"}, 1);
    fx_ready(&f);
    cr_assert_eq(place(&f, j), 5, "placed anyway");
    uint32_t on_small = 0;
    for (uint32_t i = 0; i < 5; i++)
        on_small += where(&f, j, i) == small;
    cr_assert_eq(on_small, 3, "small first (room for 3), then the tainted machine");
    cr_assert_eq(place(&f, tol), 3);
    for (uint32_t i = 0; i < 3; i++)
        cr_assert_eq(where(&f, tol, i), big, "tolerated: LeastRequested picks the big one");
    fx_free(&f);
}

/* ---- fewest tasks first (the spread preset) ---------------------------------------------- */


/* Tasks per machine in the copy: the smallest and largest counts. */
static void task_spread(fx *f, uint32_t *lo, uint32_t *hi)
{
    *lo = UINT32_MAX;
    *hi = 0;
    for (uint32_t ms = 0; ms < cs_copy_nmachines(f->c); ms++) {
        uint32_t n = cs_copy_machine_at(f->c, ms)->ntasks;
        *lo = n < *lo ? n : *lo;
        *hi = n > *hi ? n : *hi;
    }
}

/* Property (fixed seeds): under the spread preset, N tasks on M equal
 * machines end within one of N/M — max - min <= 1 — whether they come as
 * one job placed in one pass or as jobs of random sizes over several
 * passes, each committed before the next, batch (K = 2) and service. */
Test(place, spread_preset_keeps_equal_machines_within_one_task, .timeout = 120)
{
    for (uint64_t seed = 1; seed <= 12; seed++) {
        uint64_t rng = seed * 0x9E3779B97F4A7C15u;
        fx f;
        fx_init(&f);
        cr_assert_eq(cs_policy_preset("spread", &f.pol, NULL), CS_OK);
        f.o.seed = seed;
        uint32_t m = 2 + (uint32_t)(cs_rng_next(&rng) % 11);
        for (uint32_t i = 0; i < m; i++) {
            char name[16];
            snprintf(name, sizeof name, "m%02u", i);
            tb_machine_add(&f.b, name, 64000, 65536, 1000, 0, 0, NULL);
        }
        /* Every job is submitted first; the first is placed in one pass,
         * the others (1..7 tasks each) one call each, committed and synced
         * after most calls and sometimes two calls to one transaction. */
        uint32_t n = 1 + (uint32_t)(cs_rng_next(&rng) % (5 * m));
        uint8_t kind = seed % 2 ? CS_JOB_BATCH : CS_JOB_SERVICE;
        cs_id jobs[11];
        uint32_t cnt[11];
        cnt[0] = n;
        jobs[0] = tb_job_add(&f.b, "one", kind, 50, n, 100, 64, 0);
        for (int pass = 1; pass < 11; pass++) {
            char name[16];
            snprintf(name, sizeof name, "p%d", pass);
            cnt[pass] = 1 + (uint32_t)(cs_rng_next(&rng) % 7);
            jobs[pass] = tb_job_add(&f.b, name, pass % 2 ? CS_JOB_SERVICE : CS_JOB_BATCH, 50,
                                    cnt[pass], 100 + 50 * (pass % 3), 64, 0);
        }
        fx_ready(&f);
        uint32_t total = 0;
        for (int pass = 0; pass < 11; pass++) {
            cr_assert_eq(place(&f, jobs[pass]), cnt[pass]);
            total += cnt[pass];
            uint32_t lo, hi;
            task_spread(&f, &lo, &hi);
            cr_assert_leq(hi - lo, 1, "seed %llu pass %d: %u tasks on %u machines: %u..%u",
                          (unsigned long long)seed, pass, total, m, lo, hi);
            if (pass % 3 != 2)
                fx_commit(&f);
        }
        fx_commit(&f);
        tb_check(&f.b);
        fx_free(&f);
    }
}

/* A cell with no machine yet: nothing to order, nothing placed, and the
 * reason says so (a rollout's first pass can run this early). */
Test(place, fewest_tasks_first_in_a_cell_without_machines)
{
    fx f;
    fx_init(&f);
    cr_assert_eq(cs_policy_preset("spread", &f.pol, NULL), CS_OK);
    cs_id j = tb_job_add(&f.b, "early", CS_JOB_SERVICE, 50, 2, 100, 64, 0);
    fx_ready(&f);
    cr_assert_eq(place(&f, j), 0);
    cr_assert_str_eq(f.rep.reason, "no machine fits: the cell has no machines");
    tb_machine_add(&f.b, "late", 4000, 4096, 100, 0, 0, NULL);
    tb_sync(&f.b, f.c, false);
    cr_assert_eq(place(&f, j), 2, "the first machine takes both");
    fx_free(&f);
}

/* Without the rule (a Kubernetes Policy file's weights), a batch job's
 * class keeps its first K = 2 candidates: the rule is what spreads. This
 * is the case the fix was for: 6 tasks on 3 machines went 3/3/0. */
Test(place, fewest_tasks_first_reaches_every_machine_in_one_pass)
{
    fx f;
    fx_init(&f);
    cr_assert_eq(cs_policy_preset("spread", &f.pol, NULL), CS_OK);
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "e%d", i);
        tb_machine_add(&f.b, name, 4000, 4096, 100, 0, 0, NULL);
    }
    cs_id j = tb_job_add(&f.b, "six", CS_JOB_BATCH, 50, 6, 100, 64, 0);
    fx_ready(&f);
    cr_assert_eq(place(&f, j), 6);
    for (uint32_t ms = 0; ms < 3; ms++)
        cr_assert_eq(cs_copy_machine_at(f.c, ms)->ntasks, 2, "2/2/2");
    fx_free(&f);
}

/* A Kubernetes Policy file that weighs spreading (ServiceSpreadingPriority,
 * as the one `make run` gives cell-service) spreads a job's tasks over
 * every machine of a small cell: it scores at least 100 feasible machines,
 * as Kubernetes does, not K = 2 or 3 (9 tasks on 3 machines went 5/4/0). */
Test(place, a_policy_that_weighs_spreading_scores_enough_machines_to_spread)
{
    static const char json[] =
        "{\"kind\": \"Policy\", \"apiVersion\": \"v1\","
        " \"predicates\": [{\"name\": \"PodFitsResources\"}],"
        " \"priorities\": [{\"name\": \"LeastRequestedPriority\", \"weight\": 1},"
        " {\"name\": \"ServiceSpreadingPriority\", \"weight\": 1},"
        " {\"name\": \"EqualPriority\", \"weight\": 1}]}";
    for (uint8_t kind = 0; kind < CS_JOB_KIND_COUNT; kind++) {
        fx f;
        fx_init(&f);
        cs_error err = {0};
        cr_assert_eq(cs_policy_parse(json, sizeof json - 1, &f.pol, &err), CS_OK, "%s", err.msg);
        for (int i = 0; i < 3; i++) {
            char name[16];
            snprintf(name, sizeof name, "k%d", i);
            tb_machine_add(&f.b, name, 4000, 4096, 100, 0, 0, NULL);
        }
        cs_id j = tb_job_add(&f.b, "nine", kind, 50, 9, 10, 1, 0);
        fx_ready(&f);
        cr_assert_eq(place(&f, j), 9);
        for (uint32_t ms = 0; ms < 3; ms++)
            cr_assert_eq(cs_copy_machine_at(f.c, ms)->ntasks, 3, "%s: 3/3/3, machine %u has %u",
                         cs_job_kind_name(kind), ms, cs_copy_machine_at(f.c, ms)->ntasks);
        fx_free(&f);
    }
}

/* ---- soft constraints and priorities ---------------------------------------------------- */

/* Where one task of a fresh job goes, every machine scored (K = N). */
static cs_id choice(fx *f, const char *name, int64_t cpu, int64_t mem)
{
    cs_id j = tb_job_add(&f->b, name, CS_JOB_BATCH, 50, 1, cpu, mem, 0);
    f->o.k_batch = 100;
    fx_ready(f);
    cr_assert_eq(place(f, j), 1, "%s", f->rep.reason);
    return where(f, j, 0);
}

static void priority_cell(fx *f, const cs_policy *pol)
{
    fx_init(f);
    f->pol = *pol;
    f->pol.predicates = CS_PRED_ALL;
    /* m1 empty, m2 half full on cpu and memory, m3 unbalanced (cpu full-ish). */
    tb_machine_add(&f->b, "m1", 4000, 4000, 100, 0, 0, "rack=r1");
    cs_id m2 = tb_machine_add(&f->b, "m2", 4000, 4000, 100, 0, 0, "rack=r2");
    cs_id m3 = tb_machine_add(&f->b, "m3", 4000, 4000, 100, 0, 0, "rack=r3");
    cs_id x = tb_job_add(&f->b, "x", CS_JOB_BATCH, 10, 2, 2000, 2000, 0);
    tb_place(&f->b, x, 0, m2);
    cs_id y = tb_job_add(&f->b, "y", CS_JOB_BATCH, 10, 1, 3000, 0, 0);
    tb_place(&f->b, y, 0, m3);
    (void)x;
}

Test(place, each_priority_changes_the_choice)
{
    fx f;
    cs_policy pol = {0};
    pol.weights[CS_PRIO_LEAST_REQUESTED] = 1;
    priority_cell(&f, &pol);
    cr_assert_eq(choice(&f, "t", 500, 500), 1, "least requested: the empty machine");
    fx_free(&f);

    memset(&pol, 0, sizeof pol);
    pol.weights[CS_PRIO_MOST_REQUESTED] = 1;
    priority_cell(&f, &pol);
    cr_assert_eq(choice(&f, "t", 500, 500), 2, "most requested: the fullest that fits");
    fx_free(&f);

    memset(&pol, 0, sizeof pol);
    pol.weights[CS_PRIO_BALANCED] = 1;
    priority_cell(&f, &pol);
    /* A memory-heavy task balances m3 (cpu 3000 used) best. */
    cr_assert_eq(choice(&f, "t", 0, 2900), 3, "balanced");
    fx_free(&f);

    memset(&pol, 0, sizeof pol);
    pol.weights[CS_PRIO_SPREADING] = 1;
    priority_cell(&f, &pol);
    /* x has a task on m2: another task of x goes elsewhere. */
    cs_id x = 1;
    f.o.k_batch = 100;
    fx_ready(&f);
    cr_assert_eq(place(&f, x), 1);
    cr_assert_neq(where(&f, x, 1), 2, "spreading: away from the job's own task");
    fx_free(&f);

    /* Equal: every machine ties, the generator decides; over seeds all
     * three are chosen. */
    memset(&pol, 0, sizeof pol);
    pol.weights[CS_PRIO_EQUAL] = 1;
    bool seen[4] = {false};
    for (uint64_t seed = 1; seed <= 30; seed++) {
        priority_cell(&f, &pol);
        f.o.seed = seed;
        seen[choice(&f, "t", 500, 500)] = true;
        fx_free(&f);
    }
    cr_assert(seen[1] && seen[2] && seen[3], "equal: random among ties");

    /* NodeAffinity with a soft constraint outweighs least requested. */
    memset(&pol, 0, sizeof pol);
    pol.weights[CS_PRIO_LEAST_REQUESTED] = 1;
    pol.weights[CS_PRIO_NODE_AFFINITY] = 2;
    priority_cell(&f, &pol);
    cs_id j = tb_job_add(&f.b, "soft", CS_JOB_BATCH, 50, 1, 500, 500, 0);
    tb_job_constraint(&f.b, j, "rack", "==", "r2", true);
    f.o.k_batch = 100;
    fx_ready(&f);
    cr_assert_eq(place(&f, j), 1);
    cr_assert_eq(where(&f, j, 0), 2, "node affinity: the preferred rack");
    fx_free(&f);

    /* JobAffinity: a soft AFFINITY to y draws the task to m3. */
    memset(&pol, 0, sizeof pol);
    pol.weights[CS_PRIO_LEAST_REQUESTED] = 1;
    pol.weights[CS_PRIO_JOB_AFFINITY] = 2;
    priority_cell(&f, &pol);
    j = tb_job_add(&f.b, "near", CS_JOB_BATCH, 50, 1, 500, 500, 0);
    tb_job_constraint(&f.b, j, "job", "AFFINITY", "y", true);
    f.o.k_batch = 100;
    fx_ready(&f);
    cr_assert_eq(place(&f, j), 1);
    cr_assert_eq(where(&f, j, 0), 3, "job affinity: beside y");
    fx_free(&f);
}

Test(place, soft_constraints_prefer_but_never_filter)
{
    fx f;
    fx_init(&f);
    f.pol.weights[CS_PRIO_NODE_AFFINITY] = 5;
    tb_machine_add(&f.b, "a", 1000, 4000, 100, 0, 0, "disk=ssd");
    tb_machine_add(&f.b, "b", 8000, 8000, 100, 0, 0, "disk=hdd");
    cs_id j = tb_job_add(&f.b, "j", CS_JOB_BATCH, 50, 4, 400, 100, 0);
    tb_job_constraint(&f.b, j, "disk", "==", "ssd", true);
    f.o.k_batch = 2;
    fx_ready(&f);
    cr_assert_eq(place(&f, j), 4, "a soft constraint never makes a task pending");
    cr_assert_eq(where(&f, j, 0), 1);
    cr_assert_eq(where(&f, j, 1), 1);
    cr_assert_eq(where(&f, j, 2), 2, "a is full: b takes the rest");
    fx_free(&f);
}

/* ---- ports and volumes ------------------------------------------------------------------ */

Test(place, fixed_and_dynamic_ports)
{
    fx f;
    fx_init(&f);
    tb_machine_add(&f.b, "a", 64000, 64000, 100, 31000, 31003, NULL);
    tb_machine_add(&f.b, "b", 64000, 64000, 100, 31000, 31003, NULL);
    cs_id j = tb_job_add(&f.b, "j", CS_JOB_SERVICE, 50, 6, 10, 10, 0);
    uint16_t ports[] = {8080, 0, 0};
    tb_job_ports(&f.b, j, ports, 3);
    fx_ready(&f);
    /* The fixed port allows one task per machine. */
    cr_assert_eq(place(&f, j), 2);
    cr_assert_str_eq(f.rep.reason, "no machine fits: ports in use on 2");
    for (uint32_t i = 0; i < f.txn.nclaims; i++) {
        const uint16_t *p = cs_claim_ports(&f.txn, &f.txn.claims[i]);
        cr_assert_eq(f.txn.claims[i].nports, 3);
        cr_assert_eq(p[0], 8080);
        cr_assert(p[1] >= 31000 && p[1] <= 31003 && p[2] >= 31000 && p[2] <= 31003);
        cr_assert_neq(p[1], p[2]);
    }
    fx_commit(&f);
    tb_check(&f.b);

    /* Dynamic only: four ports per machine, two per task. */
    cs_id k = tb_job_add(&f.b, "k", CS_JOB_SERVICE, 50, 5, 10, 10, 0);
    uint16_t dyn[] = {0, 0};
    tb_job_ports(&f.b, k, dyn, 2);
    fx_ready(&f);
    cr_assert_eq(place(&f, k), 2, "each machine has two dynamic ports left");
    cr_assert_str_eq(f.rep.reason, "no machine fits: no free dynamic port on 2");
    fx_commit(&f);
    tb_check(&f.b);
    fx_free(&f);
}

Test(place, volumes_ro_share_rw_conflict)
{
    fx f;
    fx_init(&f);
    tb_machine_add(&f.b, "a", 64000, 64000, 100, 0, 0, NULL);
    cs_volume ro = {"/data", false}, rw = {"/data", true};
    cs_jobopts o;
    cs_id r1 = tb_job_add(&f.b, "r1", CS_JOB_SERVICE, 50, 3, 10, 10, 0);
    cs_jobopts_init(&o);
    o.volumes = &ro;
    o.nvolumes = 1;
    tb_job_opts(&f.b, r1, &o);
    cs_id w = tb_job_add(&f.b, "w", CS_JOB_SERVICE, 50, 1, 10, 10, 0);
    cs_jobopts_init(&o);
    o.volumes = &rw;
    o.nvolumes = 1;
    tb_job_opts(&f.b, w, &o);
    fx_ready(&f);
    cr_assert_eq(place(&f, r1), 3, "ro and ro share: %s", f.rep.reason);
    cr_assert_eq(place(&f, w), 0, "rw beside ro conflicts");
    cr_assert_str_eq(f.rep.reason, "no machine fits: volume in use on 1");
    /* Without the predicate the conflict is not checked. */
    f.pol.predicates &= ~(uint32_t)CS_PRED_DISK_CONFLICT;
    fx_ready(&f);
    cr_assert_eq(place(&f, w), 1);
    fx_free(&f);

    fx_init(&f);
    tb_machine_add(&f.b, "a", 64000, 64000, 100, 0, 0, NULL);
    w = tb_job_add(&f.b, "w", CS_JOB_SERVICE, 50, 2, 10, 10, 0);
    cs_jobopts_init(&o);
    o.volumes = &rw;
    o.nvolumes = 1;
    tb_job_opts(&f.b, w, &o);
    fx_ready(&f);
    cr_assert_eq(place(&f, w), 1, "two writers of one path never share a machine");
    fx_free(&f);
}

/* ---- preemption ----------------------------------------------------------------------------- */

Test(place, preemption_evicts_only_lower_priority_fewest_victims)
{
    fx f;
    fx_init(&f);
    f.o.preempt = true;
    cs_id a = tb_machine_add(&f.b, "a", 4000, 8000, 100, 0, 0, NULL);
    cs_id b = tb_machine_add(&f.b, "b", 4000, 8000, 100, 0, 0, NULL);
    cs_id c = tb_machine_add(&f.b, "c", 4000, 8000, 100, 0, 0, NULL);
    /* a: four small low-priority tasks; b: one big low-priority task;
     * c: one big task of the same priority as the newcomer. */
    cs_id small = tb_job_add(&f.b, "small", CS_JOB_BATCH, 10, 4, 1000, 100, 0);
    for (uint32_t i = 0; i < 4; i++)
        tb_place(&f.b, small, i, a);
    cs_id big = tb_job_add(&f.b, "big", CS_JOB_BATCH, 20, 1, 4000, 100, 0);
    tb_place(&f.b, big, 0, b);
    cs_id peer = tb_job_add(&f.b, "peer", CS_JOB_SERVICE, 60, 1, 4000, 100, 0);
    tb_place(&f.b, peer, 0, c);
    cs_id svc = tb_job_add(&f.b, "svc", CS_JOB_SERVICE, 60, 1, 3000, 100, 0);
    fx_ready(&f);
    cr_assert_eq(place(&f, svc), 1, "%s", f.rep.reason);
    cr_assert_eq(where(&f, svc, 0), b, "one victim on b beats three on a");
    cr_assert_eq(f.rep.victims, 1);
    cr_assert_eq(f.txn.npreempts, 1);
    cr_assert_eq(f.txn.preempts[0].victim, cs_task_id(big, 0));
    cr_assert_eq(f.txn.preempts[0].preemptor, cs_task_id(svc, 0));
    cr_assert_eq(cs_copy_task(f.c, cs_task_id(big, 0))->state, CS_TASK_PREEMPTED);
    fx_commit(&f);
    tb_check(&f.b);

    /* Next: b is taken by svc, so room must come from a (three victims of
     * the four, the fourth spared), never from c's equal-priority task. */
    cs_id svc2 = tb_job_add(&f.b, "svc2", CS_JOB_SERVICE, 60, 1, 3000, 100, 0);
    fx_ready(&f);
    cr_assert_eq(place(&f, svc2), 1, "%s", f.rep.reason);
    cr_assert_eq(where(&f, svc2, 0), a);
    cr_assert_eq(f.rep.victims, 3);
    for (uint32_t i = 0; i < f.txn.npreempts; i++)
        cr_assert_eq(cs_task_job(f.txn.preempts[i].victim), small);
    fx_commit(&f);
    tb_check(&f.b);

    /* Nothing of lower priority left where it would help: pending. */
    cs_id svc3 = tb_job_add(&f.b, "svc3", CS_JOB_SERVICE, 60, 1, 4000, 100, 0);
    fx_ready(&f);
    cr_assert_eq(place(&f, svc3), 0);
    cr_assert_eq(f.txn.npreempts, 0);
    /* Without the option nobody is evicted. */
    f.o.preempt = false;
    cs_id svc4 = tb_job_add(&f.b, "svc4", CS_JOB_SERVICE, 90, 1, 2000, 100, 0);
    fx_ready(&f);
    cr_assert_eq(place(&f, svc4), 0);
    fx_free(&f);
}

/* ---- gang, global, bad jobs, errors ----------------------------------------------------------- */

Test(place, gang_jobs_are_all_or_nothing)
{
    fx f;
    fx_init(&f);
    tb_machine_add(&f.b, "a", 4000, 8000, 100, 0, 0, NULL);
    cs_id j = tb_job_add(&f.b, "j", CS_JOB_BATCH, 50, 5, 1000, 100, 0);
    cs_jobopts o;
    cs_jobopts_init(&o);
    o.gang = true;
    tb_job_opts(&f.b, j, &o);
    cs_id ok = tb_job_add(&f.b, "ok", CS_JOB_BATCH, 50, 1, 1000, 100, 0);
    fx_ready(&f);
    cr_assert_eq(place(&f, j), 0);
    cr_assert_eq(f.rep.pending, 5);
    cr_assert(strstr(f.rep.reason, "gang"), "%s", f.rep.reason);
    cr_assert_eq(f.txn.nclaims, 0);
    cr_assert_eq(cs_copy_machine_at(f.c, 0)->allocated.cpu, 0, "the copy is as it was");
    cr_assert_eq(cs_copy_job(f.c, j)->npending, 5);
    cr_assert_eq(place(&f, ok), 1);
    fx_free(&f);
}

Test(place, global_jobs_list_machines_and_pin)
{
    fx f;
    fx_init(&f);
    attr_cell(&f);
    cs_id tiny = tb_machine_add(&f.b, "tiny", 10, 10, 1, 0, 0, "zone=b");
    cs_id g = tb_job_add(&f.b, "g", CS_JOB_SERVICE, 50, 1, 100, 100, 0);
    tb_job_constraint(&f.b, g, "zone", "==", "b", false);
    cs_jobopts o;
    cs_jobopts_init(&o);
    o.global = true;
    tb_job_opts(&f.b, g, &o);
    tb_place(&f.b, g, 0, 3);
    fx_ready(&f);
    cs_id *ms;
    size_t n;
    cs_error err = {0};
    cr_assert_eq(cs_place_global(f.p, f.c, g, &ms, &n, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(n, 1, "zone b: h3 has the job's task, tiny is too small: h4 is left");
    cr_assert_eq(ms[0], 4);
    free(ms);
    /* The scheduler pins one new task per listed machine; a pin that does
     * not fit says which machine and why. */
    cs_id g2 = tb_job_add(&f.b, "g2", CS_JOB_SERVICE, 50, 2, 100, 100, 0);
    fx_ready(&f);
    cs_id ids[] = {cs_task_id(g2, 0), cs_task_id(g2, 1)};
    cs_id pins[] = {4, tiny};
    cr_assert_eq(cs_place_job(f.p, f.c, g2, ids, 2, pins, &f.txn, &f.rep, &err), CS_OK, "%s",
                 err.msg);
    cr_assert_eq(f.rep.placed, 1);
    cr_assert_eq(where(&f, g2, 0), 4);
    cr_assert_str_eq(f.rep.reason, "machine tiny does not fit: cpu and memory", "%s",
                     f.rep.reason);
    fx_free(&f);
}

Test(place, bad_jobs_stay_pending_and_bad_calls_are_errors)
{
    fx f;
    fx_init(&f);
    tb_machine_add(&f.b, "a", 4000, 8000, 100, 0, 0, NULL);
    cs_id bad = tb_job_add(&f.b, "bad", CS_JOB_BATCH, 50, 2, 1, 1, 0);
    tb_job_constraint(&f.b, bad, "rack", "LIKE", "(", false);
    cs_id j = tb_job_add(&f.b, "j", CS_JOB_BATCH, 50, 2, 1, 1, 0);
    cs_id dead = tb_job_add(&f.b, "dead", CS_JOB_BATCH, 50, 1, 1, 1, 0);
    tb_job_kill(&f.b, dead);
    fx_ready(&f);
    cr_assert_eq(place(&f, bad), 0);
    cr_assert(strstr(f.rep.reason, "rack LIKE ("), "%s", f.rep.reason);
    cs_error err = {0};
    cs_id twice[] = {cs_task_id(j, 0), cs_task_id(j, 0)};
    cr_assert_eq(cs_place_job(f.p, f.c, j, twice, 2, NULL, &f.txn, &f.rep, &err), CS_EINVAL);
    cr_assert(strstr(err.msg, "listed twice"), "%s", err.msg);
    cs_id other[] = {cs_task_id(bad, 0)};
    cr_assert_eq(cs_place_job(f.p, f.c, j, other, 1, NULL, &f.txn, &f.rep, &err), CS_EINVAL);
    cs_id missing[] = {cs_task_id(j, 7)};
    cr_assert_eq(cs_place_job(f.p, f.c, j, missing, 1, NULL, &f.txn, &f.rep, &err), CS_ENOTFOUND);
    cr_assert_eq(cs_place_job(f.p, f.c, 99, missing, 1, NULL, &f.txn, &f.rep, &err), CS_ENOTFOUND);
    cs_id d0[] = {cs_task_id(dead, 0)};
    cr_assert_eq(cs_place_job(f.p, f.c, dead, d0, 1, NULL, &f.txn, &f.rep, &err), CS_ESTATE);
    cs_id one[] = {cs_task_id(j, 0)}, nowhere[] = {42};
    cr_assert_eq(cs_place_job(f.p, f.c, j, one, 1, nowhere, &f.txn, &f.rep, &err), CS_ENOTFOUND);
    cr_assert_eq(f.txn.nclaims, 0);
    cr_assert_eq(place(&f, j), 2);
    cr_assert_eq(cs_place_job(f.p, f.c, j, one, 1, NULL, &f.txn, &f.rep, &err), CS_EINVAL,
                 "no longer pending");
    fx_free(&f);
}

/* ---- properties ----------------------------------------------------------------------------------- */

/* A random cell: machines of random sizes and racks, a random filler load,
 * then jobs with random constraints. */
static void random_cell(fx *f, uint64_t seed)
{
    uint64_t s = seed;
    uint32_t nm = 30 + (uint32_t)(cs_rng_next(&s) % 40);
    for (uint32_t i = 0; i < nm; i++) {
        char name[16], attrs[48];
        snprintf(name, sizeof name, "m%u", i);
        snprintf(attrs, sizeof attrs, "rack=r%u zone=z%u", (unsigned)(cs_rng_next(&s) % 6),
                 (unsigned)(cs_rng_next(&s) % 3));
        int64_t cpu = 2000 + (int64_t)(cs_rng_next(&s) % 6) * 1000;
        tb_machine_add(&f->b, name, cpu, 8192, 100, 31000, 31000 + (uint16_t)(cs_rng_next(&s) % 4),
                       attrs);
    }
    static const char *const ops[][3] = {
        {"rack", "UNIQUE", ""}, {"hostname", "UNIQUE", ""}, {"rack", "MAX_PER", "2"},
        {"zone", "!=", "z1"},   {"rack", "LIKE", "r[0-3]"}, {"zone", "CLUSTER", ""},
        {"hostname", "MAX_PER", "3"},
    };
    for (uint32_t j = 0; j < 6; j++) {
        char name[16];
        snprintf(name, sizeof name, "j%u", j);
        cs_id id = tb_job_add(&f->b, name, j % 2 ? CS_JOB_SERVICE : CS_JOB_BATCH, 50,
                              20 + (uint32_t)(cs_rng_next(&s) % 60),
                              300 + (int64_t)(cs_rng_next(&s) % 4) * 250, 100, 0);
        uint32_t nc = (uint32_t)(cs_rng_next(&s) % 3);
        for (uint32_t k = 0; k < nc; k++) {
            const char *const *c = ops[cs_rng_next(&s) % (sizeof ops / sizeof ops[0])];
            tb_job_constraint(&f->b, id, c[0], c[1], c[2], cs_rng_next(&s) % 4 == 0);
        }
        if (cs_rng_next(&s) % 3 == 0) {
            uint16_t ports[] = {0};
            tb_job_ports(&f->b, id, ports, 1);
        }
    }
}

/* Every claim of every job, placed in order with `opts` (under the spread
 * preset, fewest tasks first, when `fewest`). */
static void run_all(uint64_t seed, uint64_t place_seed, bool no_classes, bool fewest, cs_txn *out,
                    uint32_t *pending)
{
    fx f;
    fx_init(&f);
    f.pol.weights[CS_PRIO_SPREADING] = 1;
    f.pol.weights[CS_PRIO_NODE_AFFINITY] = 1;
    if (fewest)
        cr_assert_eq(cs_policy_preset("spread", &f.pol, NULL), CS_OK);
    f.o.seed = place_seed;
    f.o.no_classes = no_classes;
    random_cell(&f, seed);
    fx_ready(&f);
    *pending = 0;
    for (cs_id j = 1; j <= f.b.nj; j++) {
        place(&f, j);
        *pending += f.rep.pending;
    }
    for (uint32_t i = 0; i < f.txn.nclaims; i++) {
        const cs_claim *c = &f.txn.claims[i];
        cr_assert_eq(cs_txn_add_claim(out, c->task, c->machine, &c->res, cs_claim_ports(&f.txn, c),
                                      c->nports, c->seq), CS_OK);
    }
    fx_commit(&f);
    tb_check(&f.b);
    fx_free(&f);
}

/* Under fewest tasks first, the rejections remembered per class (no
 * re-check of a machine that failed once in the call) equal checking every
 * machine again (no_classes) — odd seeds — and classes equal per-task
 * scans — even seeds. */
Test(place, equivalence_classes_equal_a_per_task_scan, .timeout = 120)
{
    for (uint64_t seed = 1; seed <= 50; seed++) {
        cs_txn a, b;
        cs_txn_init(&a, 0, 0, 0, 0, 0);
        cs_txn_init(&b, 0, 0, 0, 0, 0);
        uint32_t pa, pb;
        bool fewest = seed % 2 == 1;
        run_all(seed, seed, false, fewest, &a, &pa);
        run_all(seed, seed, true, fewest, &b, &pb);
        cr_assert_eq(a.nclaims, b.nclaims, "seed %llu: %u claims vs %u",
                     (unsigned long long)seed, a.nclaims, b.nclaims);
        cr_assert_eq(pa, pb);
        for (uint32_t i = 0; i < a.nclaims; i++) {
            cr_assert(a.claims[i].task == b.claims[i].task &&
                          a.claims[i].machine == b.claims[i].machine,
                      "seed %llu: claim %u differs", (unsigned long long)seed, i);
            cr_assert_eq(a.claims[i].nports, b.claims[i].nports);
            for (uint32_t k = 0; k < a.claims[i].nports; k++)
                cr_assert_eq(cs_claim_ports(&a, &a.claims[i])[k], cs_claim_ports(&b, &b.claims[i])[k]);
        }
        cr_assert_gt(a.nclaims, 0);
        cs_txn_free(&a);
        cs_txn_free(&b);
    }
}

Test(place, deterministic_for_a_seed)
{
    cs_txn a, b, c;
    cs_txn_init(&a, 0, 0, 0, 0, 0);
    cs_txn_init(&b, 0, 0, 0, 0, 0);
    cs_txn_init(&c, 0, 0, 0, 0, 0);
    uint32_t p;
    run_all(3, 3, false, false, &a, &p);
    run_all(3, 3, false, false, &b, &p);
    cr_assert_eq(a.nclaims, b.nclaims);
    for (uint32_t i = 0; i < a.nclaims; i++)
        cr_assert(a.claims[i].task == b.claims[i].task && a.claims[i].machine == b.claims[i].machine);
    /* Another placer seed visits the same cell in another order. */
    run_all(3, 4, false, false, &c, &p);
    uint32_t same = 0;
    for (uint32_t i = 0; i < a.nclaims && i < c.nclaims; i++)
        same += a.claims[i].machine == c.claims[i].machine;
    cr_assert_lt(same, a.nclaims / 2, "seed 4 chose like seed 3 for %u of %u", same, a.nclaims);
    cs_txn_free(&a);
    cs_txn_free(&b);
    cs_txn_free(&c);
}

/* ---- randomized first fit (the Omega paper's simulator) ------------------------ */

/* 20 equal machines of 8 cores, one job of 20 one-core tasks, placed with
 * `preset` (k_batch 1 when `one`); the distinct machines used. */
static uint32_t machines_used(const char *preset, bool one, uint64_t seed, cs_id *on)
{
    fx f;
    fx_init(&f);
    for (int i = 0; i < 20; i++) {
        char name[16];
        snprintf(name, sizeof name, "m%02d", i);
        tb_machine_add(&f.b, name, 8000, 65536, 100, 0, 0, NULL);
    }
    cs_id j = tb_job_add(&f.b, "equal", CS_JOB_BATCH, 50, 20, 1000, 100, 0);
    cs_error err = {0};
    cr_assert_eq(cs_policy_preset(preset, &f.pol, &err), CS_OK, "%s", err.msg);
    f.o.k_batch = one ? 1 : 0;
    f.o.seed = seed;
    fx_ready(&f);
    cr_assert_eq(place(&f, j), 20);
    uint32_t used = 0;
    for (uint32_t i = 0; i < 20; i++) {
        on[i] = where(&f, j, i);
        bool seen = false;
        for (uint32_t k = 0; k < i; k++)
            seen |= on[k] == on[i];
        used += !seen;
    }
    fx_commit(&f);
    tb_check(&f.b);
    fx_free(&f);
    return used;
}

Test(place, firstfit_draws_a_machine_per_task_where_random_with_one_candidate_packs)
{
    cs_id a[20], b[20];
    /* The class keeps its one candidate while it fits: 8 + 8 + 4. */
    cr_assert_eq(machines_used("random", true, 7, a), 3);
    /* First fit draws again for every task: 20 draws over 20 machines
     * reach about 13 of them (20 x (1 - (19/20)^20)). */
    uint32_t used = machines_used("firstfit", false, 7, a);
    cr_assert_geq(used, 8, "first fit used only %u machines", used);
    /* Seeded: the same seed, the same machines. */
    cr_assert_eq(machines_used("firstfit", false, 7, b), used);
    cr_assert_arr_eq(a, b, sizeof a);
}

Test(place, firstfit_takes_the_only_machine_that_fits_and_says_why_the_rest_wait)
{
    fx f;
    fx_init(&f);
    for (int i = 0; i < 30; i++) {
        char name[24];
        snprintf(name, sizeof name, "small%02d", i);
        tb_machine_add(&f.b, name, 1000, 65536, 100, 0, 0, NULL);
    }
    cs_id big = tb_machine_add(&f.b, "big", 8000, 65536, 100, 0, 0, NULL);
    cs_id j = tb_job_add(&f.b, "two-core", CS_JOB_BATCH, 50, 5, 2000, 100, 0);
    cs_error err = {0};
    cr_assert_eq(cs_policy_preset("firstfit", &f.pol, &err), CS_OK, "%s", err.msg);
    cr_assert(f.pol.first_fit);
    fx_ready(&f);
    cr_assert_eq(place(&f, j), 4);
    for (uint32_t i = 0; i < 4; i++)
        cr_assert_eq(where(&f, j, i), big);
    /* Every machine was drawn and rejected once: the small ones for the
     * first task, big when it filled. */
    cr_assert_str_eq(f.rep.reason, "no machine fits: cpu on 31", "%s", f.rep.reason);
    fx_commit(&f);
    tb_check(&f.b);
    fx_free(&f);
}
