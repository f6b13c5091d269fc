/* test_cellcopy.c — the schedulers' local copy: full and delta syncs from
 * replies packed with the record pack functions, indexes, tentative claims
 * and evictions with their undo, memory accounting, and one sync through a
 * real cellstated. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "proto/client.h"
#include "proto/proto.h"
#include "schedulers/cellcopy.h"
#include "tests/cellbuild.h"
#include "tests/support.h"
#include "txn/commit.h"

static cs_copy *new_copy(void)
{
    cs_copy *c;
    cs_error err = {0};
    cr_assert_eq(cs_copy_new(&c, &err), CS_OK, "%s", err.msg);
    return c;
}

static uint32_t count_list(const cs_copy *c, uint32_t head)
{
    uint32_t n = 0;
    for (uint32_t s = head; s != CS_NONE; s = cs_copy_task_at(c, s)->next)
        n++;
    return n;
}

static void claim_ok(cs_copy *c, cs_id task, cs_id machine, int64_t cpu, const uint16_t *ports,
                     uint32_t n)
{
    cs_res r = {cpu, 100, 0};
    cs_error err = {0};
    cr_assert_eq(cs_copy_claim(c, task, machine, &r, ports, n, &err), CS_OK, "%s", err.msg);
}

Test(cellcopy, full_sync_builds_records_and_indexes)
{
    tb_cell b;
    tb_init(&b);
    cs_id m1 = tb_machine_add(&b, "m1", 4000, 8192, 100, 31000, 31009, "rack=r1 zone=a");
    cs_id m2 = tb_machine_add(&b, "m2", 2000, 4096, 100, 31000, 31009, "rack=r2 zone=a");
    tb_machine_add(&b, "m3", 2000, 4096, 100, 0, 0, "zone=b");
    cs_id web = tb_job_add(&b, "web", CS_JOB_SERVICE, 60, 4, 500, 256, 0);
    uint16_t ports[] = {0, 8080};
    tb_job_ports(&b, web, ports, 2);
    tb_job_constraint(&b, web, "rack", "LIKE", "r[12]", false);
    /* One task per machine: both hold the fixed port 8080 (a cell never
     * holds a port twice on one machine; the store refuses it). */
    tb_place(&b, web, 0, m1);
    tb_place(&b, web, 2, m2);
    tb_task_state(&b, cs_task_id(web, 3), CS_TASK_FINISHED);

    cs_copy *c = new_copy();
    tb_sync(&b, c, true);
    cr_assert_eq(cs_copy_nmachines(c), 3);
    cr_assert_eq(cs_copy_njobs(c), 1);
    cr_assert_eq(cs_copy_ntasks(c), 4);

    const cs_cmachine *m = cs_copy_machine(c, m1);
    cr_assert_not_null(m);
    cr_assert_str_eq(cs_copy_str(c, m->name), "m1");
    cr_assert_eq(m->allocated.cpu, 500);
    cr_assert_eq(m->ntasks, 1);
    cr_assert_eq(m->nports, 2, "a dynamic and a fixed port: %u", m->nports);
    cr_assert_eq(m->ports[0], 8080);
    cr_assert_eq(m->ports[1], 31000);
    cr_assert_eq(m->port_lo, 31000);
    cr_assert_eq(count_list(c, m->tasks), 1, "tasks by machine");
    cr_assert_eq(count_list(c, cs_copy_machine(c, m2)->tasks), 1);
    uint32_t rack = cs_copy_find_str(c, "rack");
    cr_assert_neq(rack, CS_NONE);
    cr_assert_str_eq(cs_copy_str(c, cs_copy_attr(c, m, rack)), "r1");
    cr_assert_eq(cs_copy_attr(c, cs_copy_machine(c, 3), rack), CS_NONE, "m3 has no rack");
    const uint32_t *pairs;
    cr_assert_eq(cs_copy_attrs(c, m, &pairs), 2);
    cr_assert_str_eq(cs_copy_str(c, pairs[0]), "rack");
    cr_assert_str_eq(cs_copy_str(c, pairs[3]), "a");
    /* Same zone value: one interned string. */
    cr_assert_eq(cs_copy_attr(c, m, cs_copy_find_str(c, "zone")),
                 cs_copy_attr(c, cs_copy_machine(c, m2), cs_copy_find_str(c, "zone")));

    const cs_cjob *j = cs_copy_job_named(c, "web");
    cr_assert_not_null(j);
    cr_assert_eq(j->job.id, web);
    cr_assert_null(j->bad);
    cr_assert_not_null(j->cons);
    cr_assert_eq(j->cons[0].op, CS_OP_LIKE);
    cr_assert_eq(j->npending, 1);
    cr_assert_eq(j->nplaced, 2);
    cr_assert_eq(j->tasks[3], cs_copy_task_slot(c, cs_task_id(web, 3)), "tasks by index");
    cs_id pend[8];
    cr_assert_eq(cs_copy_pending(c, web, pend, 8), 1);
    cr_assert_eq(pend[0], cs_task_id(web, 1));
    const cs_ctask *t = cs_copy_task(c, cs_task_id(web, 2));
    cr_assert_eq(t->state, CS_TASK_ASSIGNED);
    cr_assert_eq(t->machine, cs_copy_machine_slot(c, m2));
    cr_assert_eq(t->nports, 2);
    cr_assert_eq(t->ports[1], 8080);
    cr_assert_null(cs_copy_job_named(c, "nope"));
    cr_assert_null(cs_copy_task(c, cs_task_id(web, 9)));
    cs_copy_free(c);
    tb_free(&b);
}

/* Taints live in the machine's interned set with its attributes: machines
 * with the same attributes and taints share one set, a different taint
 * makes another, and a delta sync that adds a taint is seen (the attrix
 * grows past its first size on the way: 80 distinct sets). */
Test(cellcopy, taints_are_interned_with_the_attributes)
{
    tb_cell b;
    tb_init(&b);
    cs_id a = tb_machine_add(&b, "a", 1000, 1000, 10, 0, 0, "rack=r1");
    cs_id a2 = tb_machine_add(&b, "a2", 1000, 1000, 10, 0, 0, "rack=r1");
    cs_id t = tb_machine_add(&b, "t", 1000, 1000, 10, 0, 0, "rack=r1");
    tb_machine_taint(&b, a, "gpu=yes:NoSchedule");
    tb_machine_taint(&b, a2, "gpu=yes:NoSchedule");
    tb_machine_taint(&b, t, "gpu=yes:NoExecute");
    for (int i = 0; i < 80; i++) {
        char name[16], rack[32];
        snprintf(name, sizeof name, "x%02d", i);
        snprintf(rack, sizeof rack, "rack=x%d", i);
        cs_id x = tb_machine_add(&b, name, 1000, 1000, 10, 0, 0, rack);
        if (i % 2)
            tb_machine_taint(&b, x, "odd:PreferNoSchedule");
    }
    cs_copy *c = new_copy();
    tb_sync(&b, c, true);
    const cs_cmachine *ma = cs_copy_machine(c, a), *ma2 = cs_copy_machine(c, a2),
                      *mt = cs_copy_machine(c, t);
    cr_assert_eq(ma->attrs, ma2->attrs, "same attributes and taints: one set");
    cr_assert_neq(ma->attrs, mt->attrs, "another effect: another set");
    const uint32_t *tr, *pairs;
    cr_assert_eq(cs_copy_taints(c, ma, &tr), 1);
    cr_assert_str_eq(cs_copy_str(c, tr[0]), "gpu");
    cr_assert_str_eq(cs_copy_str(c, tr[1]), "yes");
    cr_assert_eq(tr[2], CS_TAINT_NO_SCHEDULE);
    cr_assert_eq(cs_copy_attrs(c, mt, &pairs), 1, "the attributes are as before");
    cr_assert_str_eq(cs_copy_str(c, cs_copy_attr(c, mt, cs_copy_find_str(c, "rack"))), "r1");
    cr_assert_eq(cs_copy_taints(c, mt, &tr), 1);
    cr_assert_eq(tr[2], CS_TAINT_NO_EXECUTE);
    for (int i = 0; i < 80; i++) {
        const cs_cmachine *x = cs_copy_machine(c, (cs_id)(4 + i));
        cr_assert_eq(cs_copy_taints(c, x, &tr), (uint32_t)(i % 2), "x%02d", i);
        cr_assert_eq(cs_copy_attrs(c, x, &pairs), 1);
    }
    tb_machine_taint(&b, a2, "spot:PreferNoSchedule");
    tb_sync(&b, c, false);
    ma2 = cs_copy_machine(c, a2);
    cr_assert_eq(cs_copy_taints(c, ma2, &tr), 2, "a delta sync brings the new taint");
    cr_assert_str_eq(cs_copy_str(c, tr[3]), "spot");
    cr_assert_eq(cs_copy_taints(c, cs_copy_machine(c, a), &tr), 1, "a is unchanged");
    cs_copy_free(c);
    tb_free(&b);
}

Test(cellcopy, delta_sync_upserts_changed_records_only)
{
    tb_cell b;
    tb_init(&b);
    cs_id m1 = tb_machine_add(&b, "m1", 4000, 8192, 100, 0, 0, "rack=r1");
    cs_id m2 = tb_machine_add(&b, "m2", 4000, 8192, 100, 0, 0, "rack=r2");
    cs_id a = tb_job_add(&b, "a", CS_JOB_BATCH, 50, 3, 1000, 100, 0);
    tb_job_constraint(&b, a, "rack", "!=", "r9", false);
    cs_copy *c = new_copy();
    tb_sync(&b, c, true);
    const cs_ccons *cons_before = cs_copy_job(c, a)->cons;

    /* The cell moves on: a task placed, another finished, a new machine,
     * a new job, m2 drained. */
    tb_place(&b, a, 0, m1);
    tb_place(&b, a, 1, m2);
    cs_id m3 = tb_machine_add(&b, "m3", 1000, 1000, 10, 0, 0, NULL);
    cs_id z = tb_job_add(&b, "z", CS_JOB_SERVICE, 70, 1, 100, 10, 0);
    tb_machine_state(&b, m2, CS_MACHINE_DRAINING);
    tb_reply r;
    tb_reply_make(&b, false, &r);
    const msgpack_object *jobs = cs_obj_get(&r.obj, "jobs");
    cr_assert_eq(jobs->via.array.size, 1, "only the new job is in the delta");
    cs_error err = {0};
    cr_assert_eq(cs_copy_apply(c, &r.obj, &err), CS_OK, "%s", err.msg);
    tb_reply_free(&r);

    cr_assert_eq(cs_copy_nmachines(c), 3);
    cr_assert_eq(cs_copy_job(c, a)->cons, cons_before, "an unchanged job is not compiled again");
    cr_assert_eq(cs_copy_machine(c, m1)->ntasks, 1);
    cr_assert_eq(cs_copy_machine(c, m1)->allocated.cpu, 1000);
    cr_assert_eq(cs_copy_machine(c, m2)->state, CS_MACHINE_DRAINING);
    cr_assert_not_null(cs_copy_machine(c, m3));
    cr_assert_eq(cs_copy_job(c, a)->npending, 1);
    cr_assert_eq(cs_copy_job(c, a)->nplaced, 2);
    cr_assert_not_null(cs_copy_job_named(c, "z"));
    cr_assert_eq(cs_copy_job(c, z)->npending, 1);

    /* Kill a: its placed tasks leave their machines, the name is free. */
    tb_job_kill(&b, a);
    tb_sync(&b, c, false);
    cr_assert_null(cs_copy_job_named(c, "a"));
    cr_assert_not_null(cs_copy_job(c, a), "killed jobs stay in the copy");
    cr_assert_eq(cs_copy_job(c, a)->npending, 0);
    cr_assert_eq(cs_copy_job(c, a)->nplaced, 0);
    cr_assert_eq(cs_copy_machine(c, m1)->tasks, CS_NONE);
    cr_assert_eq(cs_copy_machine(c, m1)->allocated.cpu, 0);
    cr_assert_eq(cs_copy_task(c, cs_task_id(a, 0))->state, CS_TASK_KILLED);

    /* A full sync afterwards gives the same copy. */
    tb_sync(&b, c, true);
    cr_assert_eq(cs_copy_nmachines(c), 3);
    cr_assert_eq(cs_copy_ntasks(c), 4);
    cr_assert_eq(cs_copy_job(c, z)->npending, 1);
    cr_assert_eq(cs_copy_machine(c, m1)->ntasks, 0);
    cs_copy_free(c);
    tb_free(&b);
}

/* Everything a claim or eviction changes, to compare before and after. */
typedef struct shot {
    cs_cmachine m[4];
    uint16_t ports[4][16];
    cs_ctask t[8];
    uint32_t npending, nplaced, pending_head;
    cs_id pend[8];
    size_t npend;
} shot;

static void take(const cs_copy *c, cs_id job, shot *s)
{
    memset(s, 0, sizeof *s);
    for (uint32_t i = 0; i < cs_copy_nmachines(c) && i < 4; i++) {
        s->m[i] = *cs_copy_machine_at(c, i);
        if (s->m[i].nports)
            memcpy(s->ports[i], s->m[i].ports, s->m[i].nports * sizeof(uint16_t));
        s->m[i].ports = NULL;
        s->m[i].ports_log2 = 0; /* room for ports may stay: it never shrinks */
    }
    for (uint32_t i = 0; i < cs_copy_ntasks(c) && i < 8; i++) {
        s->t[i] = *cs_copy_task_at(c, i);
        s->t[i].ports = NULL;
    }
    const cs_cjob *j = cs_copy_job(c, job);
    s->npending = j->npending;
    s->nplaced = j->nplaced;
    s->pending_head = j->pending;
    s->npend = cs_copy_pending(c, job, s->pend, 8);
}

Test(cellcopy, claims_and_evictions_roll_back_exactly)
{
    tb_cell b;
    tb_init(&b);
    cs_id m1 = tb_machine_add(&b, "m1", 4000, 8192, 100, 31000, 31009, NULL);
    cs_id m2 = tb_machine_add(&b, "m2", 4000, 8192, 100, 31000, 31009, NULL);
    cs_id j = tb_job_add(&b, "j", CS_JOB_SERVICE, 50, 5, 500, 100, 0);
    uint16_t jp[] = {0};
    tb_job_ports(&b, j, jp, 1);
    tb_place(&b, j, 4, m2);
    cs_copy *c = new_copy();
    tb_sync(&b, c, true);
    shot before, after;
    take(c, j, &before);

    uint16_t p1[] = {31005}, p2[] = {31006}, p3[] = {31001};
    claim_ok(c, cs_task_id(j, 2), m1, 700, p1, 1);
    claim_ok(c, cs_task_id(j, 0), m1, 500, p2, 1);
    claim_ok(c, cs_task_id(j, 3), m2, 500, p3, 1);
    const cs_cmachine *m = cs_copy_machine(c, m1);
    cr_assert_eq(m->allocated.cpu, 1200);
    cr_assert_eq(m->ntasks, 2);
    cr_assert_eq(m->nports, 2);
    cr_assert_eq(m->ports[0], 31005);
    cr_assert_eq(m->ports[1], 31006);
    cr_assert_eq(count_list(c, m->tasks), 2);
    cr_assert_eq(cs_copy_task(c, cs_task_id(j, 2))->state, CS_TASK_ASSIGNED);
    cr_assert_eq(cs_copy_job(c, j)->npending, 1);
    cs_id pend[8];
    cr_assert_eq(cs_copy_pending(c, j, pend, 8), 1);
    cr_assert_eq(pend[0], cs_task_id(j, 1));

    /* A claim on a port in use, or on a task no longer pending, changes nothing. */
    cs_error err = {0};
    cs_res r = {1, 1, 0};
    cr_assert_eq(cs_copy_claim(c, cs_task_id(j, 1), m1, &r, p1, 1, &err), CS_ESTATE);
    cr_assert(strstr(err.msg, "port 31005 in use"), "%s", err.msg);
    cr_assert_eq(cs_copy_claim(c, cs_task_id(j, 2), m2, &r, NULL, 0, &err), CS_ESTATE);
    cr_assert(strstr(err.msg, "assigned, not pending"), "%s", err.msg);
    cr_assert_eq(cs_copy_claim(c, cs_task_id(j, 9), m2, &r, NULL, 0, &err), CS_ENOTFOUND);
    cr_assert_eq(cs_copy_claim(c, cs_task_id(j, 1), 77, &r, NULL, 0, &err), CS_ENOTFOUND);
    uint16_t twice[] = {31007, 31007};
    cr_assert_eq(cs_copy_claim(c, cs_task_id(j, 1), m1, &r, twice, 2, &err), CS_ESTATE);
    cr_assert_eq(cs_copy_machine(c, m1)->allocated.cpu, 1200);

    /* Evict the committed task on m2 and a tentative one on m1. */
    size_t mark = cs_copy_mark(c);
    cr_assert_eq(cs_copy_evict(c, cs_task_id(j, 4), &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_copy_evict(c, cs_task_id(j, 2), &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_copy_evict(c, cs_task_id(j, 1), &err), CS_ESTATE, "a pending task");
    cr_assert_eq(cs_copy_machine(c, m2)->ntasks, 1);
    cr_assert_eq(cs_copy_machine(c, m2)->nports, 1);
    cr_assert_eq(cs_copy_machine(c, m1)->allocated.cpu, 500);
    cr_assert_eq(cs_copy_task(c, cs_task_id(j, 4))->state, CS_TASK_PREEMPTED);
    cr_assert_eq(cs_copy_job(c, j)->npending, 1, "an evicted task is not placed again this round");
    cs_copy_undo(c, mark);
    cr_assert_eq(cs_copy_machine(c, m1)->allocated.cpu, 1200);
    cr_assert_eq(cs_copy_machine(c, m2)->ntasks, 2);
    cr_assert_eq(cs_copy_task(c, cs_task_id(j, 4))->state, CS_TASK_ASSIGNED);

    cs_copy_rollback(c);
    take(c, j, &after);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(memcmp(&before.m[i], &after.m[i], sizeof before.m[i]), 0, "machine %d", i);
        cr_assert_eq(memcmp(before.ports[i], after.ports[i], sizeof before.ports[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        const cs_ctask *x = &before.t[i], *y = &after.t[i];
        cr_assert(x->id == y->id && x->state == y->state && x->last_end == y->last_end &&
                      x->machine == y->machine && x->next == y->next && x->prev == y->prev &&
                      x->nports == y->nports && x->res.cpu == y->res.cpu &&
                      x->attempts == y->attempts,
                  "task slot %d differs after the rollback", i);
    }
    cr_assert(before.npending == after.npending && before.nplaced == after.nplaced &&
              before.pending_head == after.pending_head && before.npend == after.npend);
    cr_assert_eq(memcmp(before.pend, after.pend, sizeof before.pend), 0, "pending order");
    cr_assert_eq(cs_copy_mark(c), 0);
    cs_copy_free(c);
    tb_free(&b);
}

Test(cellcopy, sync_rolls_back_then_applies_what_committed)
{
    tb_cell b;
    tb_init(&b);
    cs_id m1 = tb_machine_add(&b, "m1", 4000, 8192, 100, 0, 0, NULL);
    cs_id j = tb_job_add(&b, "j", CS_JOB_BATCH, 50, 3, 1000, 100, 0);
    cs_copy *c = new_copy();
    tb_sync(&b, c, true);
    claim_ok(c, cs_task_id(j, 0), m1, 1000, NULL, 0);
    claim_ok(c, cs_task_id(j, 1), m1, 1000, NULL, 0);
    cr_assert_eq(cs_copy_machine(c, m1)->allocated.cpu, 2000);
    /* Only task 0's claim committed; task 1's conflicted. */
    tb_place(&b, j, 0, m1);
    tb_sync(&b, c, false);
    cr_assert_eq(cs_copy_mark(c), 0, "no tentative change survives a sync");
    cr_assert_eq(cs_copy_machine(c, m1)->allocated.cpu, 1000);
    cr_assert_eq(cs_copy_machine(c, m1)->ntasks, 1);
    cr_assert_eq(cs_copy_task(c, cs_task_id(j, 0))->state, CS_TASK_ASSIGNED);
    cr_assert_eq(cs_copy_task(c, cs_task_id(j, 1))->state, CS_TASK_PENDING);
    cr_assert_eq(cs_copy_job(c, j)->npending, 2);
    cr_assert_eq(count_list(c, cs_copy_job(c, j)->pending), 2);
    cs_copy_free(c);
    tb_free(&b);
}

/* A hold withholds room without a task; it is undone with the claims
 * after it (newest first) and by the next sync. */
Test(cellcopy, holds_withhold_room_and_roll_back_like_claims)
{
    tb_cell b;
    tb_init(&b);
    cs_id m1 = tb_machine_add(&b, "m1", 4000, 8192, 100, 0, 0, NULL);
    cs_id j = tb_job_add(&b, "j", CS_JOB_BATCH, 50, 2, 1000, 100, 0);
    tb_place(&b, j, 1, m1);
    cs_copy *c = new_copy();
    tb_sync(&b, c, true);
    const cs_cmachine *m = cs_copy_machine(c, m1);
    cr_assert_eq(m->allocated.cpu, 1000);
    cs_error err = {0};
    cs_res h = {2500, 4096, 0};
    cr_assert_eq(cs_copy_hold(c, m1, &h, &err), CS_OK, "%s", err.msg);
    m = cs_copy_machine(c, m1);
    cr_assert(m->allocated.cpu == 3500 && m->allocated.mem == 100 + 4096);
    cr_assert_eq(m->ntasks, 1, "a hold is no task");
    size_t mark = cs_copy_mark(c);
    claim_ok(c, cs_task_id(j, 0), m1, 500, NULL, 0);
    cr_assert_eq(cs_copy_machine(c, m1)->allocated.cpu, 4000);
    cs_copy_undo(c, mark);
    cr_assert_eq(cs_copy_machine(c, m1)->allocated.cpu, 3500, "the claim undone, the hold kept");
    /* Refused, with nothing changed. */
    cs_res neg = {-1, 0, 0};
    cr_assert_eq(cs_copy_hold(c, m1, &neg, &err), CS_EINVAL);
    cr_assert(strstr(err.msg, "negative") && strstr(err.msg, "m1"), "%s", err.msg);
    cr_assert_eq(cs_copy_hold(c, 77, &h, &err), CS_ENOTFOUND);
    cr_assert(strstr(err.msg, "unknown machine 77"), "%s", err.msg);
    cr_assert_eq(cs_copy_mark(c), mark);
    cs_copy_rollback(c);
    cr_assert_eq(cs_copy_machine(c, m1)->allocated.cpu, 1000);
    cr_assert_eq(cs_copy_machine(c, m1)->allocated.mem, 100);
    /* And a sync rolls a hold back before it applies the delta. */
    cr_assert_eq(cs_copy_hold(c, m1, &h, &err), CS_OK, "%s", err.msg);
    tb_place(&b, j, 0, m1);
    tb_sync(&b, c, false);
    cr_assert_eq(cs_copy_mark(c), 0);
    cr_assert_eq(cs_copy_machine(c, m1)->allocated.cpu, 2000);
    cs_copy_free(c);
    tb_free(&b);
}

Test(cellcopy, a_job_that_cannot_be_read_is_bad_not_an_error)
{
    tb_cell b;
    tb_init(&b);
    tb_machine_add(&b, "m1", 4000, 8192, 100, 0, 0, NULL);
    cs_id j1 = tb_job_add(&b, "regex", CS_JOB_BATCH, 50, 1, 1, 1, 0);
    tb_job_constraint(&b, j1, "rack", "LIKE", "r[", false);
    cs_id j2 = tb_job_add(&b, "op", CS_JOB_BATCH, 50, 1, 1, 1, 0);
    tb_job_constraint(&b, j2, "rack", "NEAR", "r1", false);
    cs_id j3 = tb_job_add(&b, "maxper", CS_JOB_BATCH, 50, 1, 1, 1, 0);
    tb_job_constraint(&b, j3, "rack", "MAX_PER", "zero", false);
    cs_id j4 = tb_job_add(&b, "aff", CS_JOB_BATCH, 50, 1, 1, 1, 0);
    tb_job_constraint(&b, j4, "rack", "AFFINITY", "web", false);
    cs_copy *c = new_copy();
    tb_sync(&b, c, true);
    cr_assert_not_null(cs_copy_job(c, j1)->bad);
    cr_assert(strstr(cs_copy_job(c, j1)->bad, "rack LIKE r["), "%s", cs_copy_job(c, j1)->bad);
    cr_assert(strstr(cs_copy_job(c, j2)->bad, "unknown operator"), "%s", cs_copy_job(c, j2)->bad);
    cr_assert(strstr(cs_copy_job(c, j3)->bad, "number >= 1"), "%s", cs_copy_job(c, j3)->bad);
    cr_assert(strstr(cs_copy_job(c, j4)->bad, "field 'job'"), "%s", cs_copy_job(c, j4)->bad);
    cs_copy_free(c);
    tb_free(&b);
}

Test(cellcopy, malformed_replies_are_refused_and_force_a_full_sync)
{
    tb_cell b;
    tb_init(&b);
    tb_machine_add(&b, "m1", 4000, 8192, 100, 0, 0, NULL);
    cs_copy *c = new_copy();
    tb_sync(&b, c, true);
    cr_assert_neq(cs_copy_version(c), 0);

    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 5);
    cs_pack_kv_u64(&pk, "version", 9);
    cs_pack_kv_bool(&pk, "full", false);
    cs_pack_str(&pk, "machines");
    msgpack_pack_array(&pk, 0);
    cs_pack_str(&pk, "jobs");
    msgpack_pack_array(&pk, 0);
    cs_pack_str(&pk, "tasks");
    msgpack_pack_array(&pk, 1);
    cs_task t = {.id = cs_task_id(42, 0), .job = 42, .reason = ""};
    cs_pack_task(&pk, &t);
    msgpack_zone z;
    msgpack_zone_init(&z, 1024);
    msgpack_object o;
    size_t off = 0;
    cr_assert_eq(msgpack_unpack(buf.data, buf.size, &off, &z, &o), MSGPACK_UNPACK_SUCCESS);
    cs_error err = {0};
    cr_assert_eq(cs_copy_apply(c, &o, &err), CS_EPROTO);
    cr_assert(strstr(err.msg, "no job 42"), "%s", err.msg);
    cr_assert_eq(cs_copy_version(c), 0, "the next sync must be a full one");

    /* Not a map, a missing list. */
    msgpack_object nil = {.type = MSGPACK_OBJECT_NIL};
    cr_assert_eq(cs_copy_apply(c, &nil, &err), CS_EPROTO);
    msgpack_sbuffer_clear(&buf);
    msgpack_pack_map(&pk, 2);
    cs_pack_kv_u64(&pk, "version", 9);
    cs_pack_kv_bool(&pk, "full", true);
    off = 0;
    cr_assert_eq(msgpack_unpack(buf.data, buf.size, &off, &z, &o), MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(cs_copy_apply(c, &o, &err), CS_EPROTO);
    cr_assert(strstr(err.msg, "'machines' is missing"), "%s", err.msg);
    msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&buf);
    cs_copy_free(c);
    tb_free(&b);
}

/* The brief: at most about 200 bytes per machine, measured at 10,000
 * machines with 4 attributes (names unique, racks and zones shared, one
 * attribute unique per machine as the worst case for attribute sets). */
Test(cellcopy, memory_per_machine_at_ten_thousand_machines, .timeout = 60)
{
    tb_cell b;
    tb_init(&b);
    enum { N = 10000 };
    for (int i = 0; i < N; i++) {
        char name[32], attrs[128];
        snprintf(name, sizeof name, "m%05d", i);
        snprintf(attrs, sizeof attrs, "rack=r%03d zone=z%d os=linux serial=s%05d", i / 40, i % 4,
                 i);
        tb_machine_add(&b, name, 16000, 65536, 500000, 31000, 32000, attrs);
    }
    cs_copy *c = new_copy();
    tb_sync(&b, c, true);
    cs_copy_mem mem;
    cs_copy_memory(c, &mem);
    double per = (double)(mem.machines + mem.strings) / N;
    cr_log_info("local copy: %.1f bytes per machine (machines %zu, strings %zu, total %zu)", per,
                mem.machines, mem.strings, mem.total);
    fprintf(stderr, "cellcopy memory: %.1f bytes per machine at %d machines, 4 attributes "
            "(machines %zu, strings %zu bytes)\n", per, N, mem.machines, mem.strings);
    cr_assert_lt(per, 200.0, "%.1f bytes per machine", per);
    cr_assert_gt(per, (double)sizeof(cs_cmachine), "the accounting counts the records");
    /* A delta touching a tenth of the machines adds nothing per machine. */
    for (int i = 0; i < N; i += 10)
        tb_machine_state(&b, (cs_id)i + 1, CS_MACHINE_DRAINING);
    tb_sync(&b, c, false);
    cs_copy_mem mem2;
    cs_copy_memory(c, &mem2);
    cr_assert_eq(mem2.machines + mem2.strings, mem.machines + mem.strings);
    cs_copy_free(c);
    tb_free(&b);
}

/* ---- through a real cellstated -------------------------------------------------- */

static void call(cs_client *cl, uint32_t type, msgpack_sbuffer *b)
{
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(cs_client_callb(cl, type, b, &r, &err), CS_OK, "%s", err.msg);
    msgpack_sbuffer_clear(b);
}

/* In a fini so that a failed assertion still stops the daemon. */
static ts_daemon d;
static void daemon_down(void) { ts_daemon_teardown(&d); }

Test(cellcopy, syncs_from_a_real_cellstated, .timeout = 60, .fini = daemon_down)
{
    ts_daemon_setup(&d, NULL, NULL);
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "m%d", i);
        msgpack_pack_map(&pk, 3);
        cs_pack_kv_str(&pk, "name", name);
        cs_res cap = {4000, 4096, 1000};
        cs_pack_kv_res(&pk, "capacity", &cap);
        cs_pack_str(&pk, "attrs");
        msgpack_pack_map(&pk, 1);
        cs_pack_kv_str(&pk, "rack", i < 2 ? "r1" : "r2");
        call(d.c, CS_MSG_MACHINE_REGISTER, &b);
    }
    msgpack_pack_map(&pk, 3);
    cs_pack_kv_str(&pk, "name", "web");
    cs_pack_kv_u64(&pk, "count", 2);
    cs_res res = {1000, 512, 0};
    cs_pack_kv_res(&pk, "resources", &res);
    call(d.c, CS_MSG_JOB_SUBMIT, &b);

    cs_copy *c = new_copy();
    cs_error err = {0};
    cr_assert_eq(tb_sync_client(c, d.c, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_copy_nmachines(c), 3);
    const cs_cjob *j = cs_copy_job_named(c, "web");
    cr_assert_not_null(j);
    cr_assert_eq(j->npending, 2);
    uint64_t v1 = cs_copy_version(c);

    /* Commit one claim as a scheduler would, with the copy's seq. */
    cs_id t0 = cs_task_id(j->job.id, 0);
    const cs_cmachine *m = cs_copy_machine_at(c, 1);
    cs_txn txn;
    cs_txn_init(&txn, 5, 1, v1, CS_CONFLICT_COARSE, CS_COMMIT_INCREMENTAL);
    cr_assert_eq(cs_txn_add_claim(&txn, t0, m->id, &res, NULL, 0, m->seq), CS_OK);
    cr_assert_eq(cs_copy_claim(c, t0, m->id, &res, NULL, 0, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_txn_encode(&txn, &b), CS_OK);
    cs_msg r;
    cr_assert_eq(cs_client_callb(d.c, CS_MSG_COMMIT, &b, &r, &err), CS_OK, "%s", err.msg);
    cs_txn_free(&txn);
    msgpack_sbuffer_destroy(&b);

    cr_assert_eq(tb_sync_client(c, d.c, &err), CS_OK, "%s", err.msg);
    cr_assert_gt(cs_copy_version(c), v1);
    cr_assert_eq(cs_copy_mark(c), 0);
    m = cs_copy_machine_at(c, 1);
    cr_assert_eq(m->ntasks, 1, "the committed claim came back from the cell");
    cr_assert_eq(m->allocated.cpu, 1000);
    cr_assert_eq(cs_copy_task(c, t0)->state, CS_TASK_ASSIGNED);
    cr_assert_eq(cs_copy_job_named(c, "web")->npending, 1);
    cs_copy_free(c);
}
