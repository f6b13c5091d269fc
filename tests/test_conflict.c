/* test_conflict.c — the pure conflict functions of txn/conflict.h: Omega's
 * fine- and coarse-grained detectors and the take/give arithmetic that
 * commit applies to a machine. No store: machines are built in memory.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "txn/conflict.h"

/* A machine that is up, with the given capacity and nothing placed. */
static cs_machine machine(int64_t cpu, int64_t mem, int64_t disk)
{
    cs_machine m;
    memset(&m, 0, sizeof m);
    m.id = 1;
    m.name = "m1";
    m.capacity = (cs_res){cpu, mem, disk};
    m.port_lo = 31000;
    m.port_hi = 31999;
    m.state = CS_MACHINE_UP;
    m.seq = 5;
    return m;
}

/* ---- cs_conflict_fine --------------------------------------------------- */

Test(conflict_fine, fits_exactly_at_capacity)
{
    cs_machine m = machine(4000, 8192, 1000);
    m.allocated = (cs_res){3000, 8000, 900};
    cs_res r = {1000, 192, 100};
    cr_assert_eq(cs_conflict_fine(&m, &r, NULL, 0), CS_COMMITTED);

    /* An empty machine takes a claim of its whole capacity. */
    cs_machine e = machine(4000, 8192, 1000);
    cs_res all = e.capacity;
    cr_assert_eq(cs_conflict_fine(&e, &all, NULL, 0), CS_COMMITTED);

    /* A zero claim fits a full machine. */
    cs_res zero = {0, 0, 0};
    m.allocated = m.capacity;
    cr_assert_eq(cs_conflict_fine(&m, &zero, NULL, 0), CS_COMMITTED);
}

Test(conflict_fine, one_over_on_each_resource)
{
    cs_machine m = machine(4000, 8192, 1000);
    m.allocated = (cs_res){3000, 8000, 900};
    cs_res cpu = {1001, 192, 100};
    cs_res mem = {1000, 193, 100};
    cs_res disk = {1000, 192, 101};
    cr_assert_eq(cs_conflict_fine(&m, &cpu, NULL, 0), CS_CONFLICT_CPU);
    cr_assert_eq(cs_conflict_fine(&m, &mem, NULL, 0), CS_CONFLICT_MEM);
    cr_assert_eq(cs_conflict_fine(&m, &disk, NULL, 0), CS_CONFLICT_DISK);
}

Test(conflict_fine, resource_order_cpu_mem_disk)
{
    /* "the first reason it does not" fit: cpu before memory before disk. */
    cs_machine m = machine(1000, 1000, 1000);
    cs_res all_over = {2000, 2000, 2000};
    cs_res mem_disk = {1000, 2000, 2000};
    cr_assert_eq(cs_conflict_fine(&m, &all_over, NULL, 0), CS_CONFLICT_CPU);
    cr_assert_eq(cs_conflict_fine(&m, &mem_disk, NULL, 0), CS_CONFLICT_MEM);
}

Test(conflict_fine, machine_not_up)
{
    cs_machine m = machine(4000, 8192, 1000);
    cs_res r = {1000, 1024, 0};
    m.state = CS_MACHINE_DRAINING;
    cr_assert_eq(cs_conflict_fine(&m, &r, NULL, 0), CS_CONFLICT_MACHINE_NOT_UP);
    m.state = CS_MACHINE_DOWN;
    cr_assert_eq(cs_conflict_fine(&m, &r, NULL, 0), CS_CONFLICT_MACHINE_NOT_UP);
    /* Not up wins over an overcommit. */
    cs_res big = {40000, 1, 1};
    cr_assert_eq(cs_conflict_fine(&m, &big, NULL, 0), CS_CONFLICT_MACHINE_NOT_UP);
    m.state = CS_MACHINE_UP;
    cr_assert_eq(cs_conflict_fine(&m, &r, NULL, 0), CS_COMMITTED);
}

Test(conflict_fine, port_in_use)
{
    cs_machine m = machine(4000, 8192, 1000);
    uint16_t used[] = {80, 443, 8080};
    m.ports = used;
    m.nports = 3;
    cs_res r = {0, 0, 0};
    uint16_t first[] = {80}, mid[] = {31000, 443}, last[] = {8080}, free_[] = {81, 444, 8081};
    cr_assert_eq(cs_conflict_fine(&m, &r, first, 1), CS_CONFLICT_PORT);
    cr_assert_eq(cs_conflict_fine(&m, &r, mid, 2), CS_CONFLICT_PORT);
    cr_assert_eq(cs_conflict_fine(&m, &r, last, 1), CS_CONFLICT_PORT);
    cr_assert_eq(cs_conflict_fine(&m, &r, free_, 3), CS_COMMITTED);
}

Test(conflict_fine, same_port_twice_in_one_claim)
{
    cs_machine m = machine(4000, 8192, 1000);
    cs_res r = {0, 0, 0};
    uint16_t twice[] = {31000, 31001, 31000};
    uint16_t distinct[] = {31000, 31001, 31002};
    cr_assert_eq(cs_conflict_fine(&m, &r, twice, 3), CS_CONFLICT_PORT);
    cr_assert_eq(cs_conflict_fine(&m, &r, distinct, 3), CS_COMMITTED);
}

/* ---- cs_conflict_coarse ------------------------------------------------- */

Test(conflict_coarse, seq_differs_conflicts_even_if_it_fits)
{
    cs_machine m = machine(4000, 8192, 1000);
    cs_res r = {1, 1, 1};
    cr_assert_eq(cs_conflict_fine(&m, &r, NULL, 0), CS_COMMITTED);
    cr_assert_eq(cs_conflict_coarse(&m, 6, 5, &r, NULL, 0), CS_CONFLICT_MACHINE_CHANGED);
    cr_assert_eq(cs_conflict_coarse(&m, 5, 6, &r, NULL, 0), CS_CONFLICT_MACHINE_CHANGED);
    /* Changed wins over every fine-grained reason. */
    cs_res big = {99999, 1, 1};
    m.state = CS_MACHINE_DOWN;
    cr_assert_eq(cs_conflict_coarse(&m, 6, 5, &big, NULL, 0), CS_CONFLICT_MACHINE_CHANGED);
}

Test(conflict_coarse, same_seq_gives_the_fine_verdict)
{
    uint16_t used[] = {31005};
    uint16_t p_used[] = {31005}, p_free[] = {31006}, p_twice[] = {31007, 31007};
    struct {
        cs_res alloc, res;
        uint8_t state;
        const uint16_t *ports;
        uint32_t nports;
    } cases[] = {
        {{0, 0, 0}, {4000, 8192, 1000}, CS_MACHINE_UP, NULL, 0},
        {{3000, 0, 0}, {1001, 0, 0}, CS_MACHINE_UP, NULL, 0},
        {{0, 8000, 0}, {0, 193, 0}, CS_MACHINE_UP, NULL, 0},
        {{0, 0, 999}, {0, 0, 2}, CS_MACHINE_UP, NULL, 0},
        {{0, 0, 0}, {1, 1, 1}, CS_MACHINE_DRAINING, NULL, 0},
        {{0, 0, 0}, {1, 1, 1}, CS_MACHINE_DOWN, NULL, 0},
        {{0, 0, 0}, {1, 1, 1}, CS_MACHINE_UP, p_used, 1},
        {{0, 0, 0}, {1, 1, 1}, CS_MACHINE_UP, p_free, 1},
        {{0, 0, 0}, {1, 1, 1}, CS_MACHINE_UP, p_twice, 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cs_machine m = machine(4000, 8192, 1000);
        m.ports = used;
        m.nports = 1;
        m.allocated = cases[i].alloc;
        m.state = cases[i].state;
        uint8_t fine = cs_conflict_fine(&m, &cases[i].res, cases[i].ports, cases[i].nports);
        uint8_t coarse =
            cs_conflict_coarse(&m, 9, 9, &cases[i].res, cases[i].ports, cases[i].nports);
        cr_assert_eq(coarse, fine, "case %zu: coarse %s, fine %s", i, cs_outcome_str(coarse),
                     cs_outcome_str(fine));
    }
    /* The table exercised every fine-grained verdict, not only success. */
    cs_machine m = machine(4000, 8192, 1000);
    cs_res over = {4001, 0, 0};
    cr_assert_eq(cs_conflict_coarse(&m, 1, 1, &over, NULL, 0), CS_CONFLICT_CPU);
}

/* ---- cs_machine_take / cs_machine_give ---------------------------------- */

static void assert_ports(const cs_machine *m, const uint16_t *want, uint32_t n)
{
    cr_assert_eq(m->nports, n, "machine holds %u ports, want %u", m->nports, n);
    for (uint32_t i = 0; i < n; i++)
        cr_assert_eq(m->ports[i], want[i], "port %u is %u, want %u", i, m->ports[i], want[i]);
}

Test(machine_take_give, ports_sorted_and_sums_right)
{
    cs_arena a;
    cs_arena_init(&a);
    cs_machine m = machine(8000, 16384, 1000);

    cs_res r1 = {1000, 2048, 10}, r2 = {500, 1024, 0}, r3 = {250, 0, 5};
    uint16_t p1[] = {31300, 31100}, p2[] = {31200, 31050, 31400}, p3[] = {0};
    cr_assert_eq(cs_machine_take(&m, &r1, p1, 2, &a), CS_OK);
    uint16_t w1[] = {31100, 31300};
    assert_ports(&m, w1, 2);
    cr_assert_eq(cs_machine_take(&m, &r2, p2, 3, &a), CS_OK);
    uint16_t w2[] = {31050, 31100, 31200, 31300, 31400};
    assert_ports(&m, w2, 5);
    cr_assert_eq(cs_machine_take(&m, &r3, p3, 0, &a), CS_OK);
    assert_ports(&m, w2, 5);
    cr_assert_eq(m.allocated.cpu, 1750);
    cr_assert_eq(m.allocated.mem, 3072);
    cr_assert_eq(m.allocated.disk, 15);
    cr_assert_eq(m.ntasks, 3);

    /* Ports are compared numerically, not as signed shorts: 65535 sorts last. */
    cs_res z = {0, 0, 0};
    uint16_t hi[] = {65535, 1};
    cr_assert_eq(cs_machine_take(&m, &z, hi, 2, &a), CS_OK);
    uint16_t w3[] = {1, 31050, 31100, 31200, 31300, 31400, 65535};
    assert_ports(&m, w3, 7);
    cr_assert_eq(cs_machine_give(&m, &z, hi, 2, &a), CS_OK);
    assert_ports(&m, w2, 5);

    cr_assert_eq(cs_machine_give(&m, &r2, p2, 3, &a), CS_OK);
    assert_ports(&m, w1, 2);
    cr_assert_eq(m.allocated.cpu, 1250);
    cr_assert_eq(m.allocated.mem, 2048);
    cr_assert_eq(m.allocated.disk, 15);
    cr_assert_eq(m.ntasks, 2);

    cr_assert_eq(cs_machine_give(&m, &r1, p1, 2, &a), CS_OK);
    cr_assert_eq(cs_machine_give(&m, &r3, p3, 0, &a), CS_OK);
    cr_assert_eq(m.nports, 0);
    cr_assert_eq(m.allocated.cpu, 0);
    cr_assert_eq(m.allocated.mem, 0);
    cr_assert_eq(m.allocated.disk, 0);
    cr_assert_eq(m.ntasks, 0);
    cs_arena_free(&a);
}

Test(machine_take_give, leaves_the_old_ports_array_alone)
{
    /* Commit keeps a shallow copy of a machine to undo preemptions: take and
     * give must build a new ports array, never edit the one they were given. */
    cs_arena a;
    cs_arena_init(&a);
    cs_machine m = machine(8000, 16384, 1000);
    uint16_t used[] = {31001, 31003};
    m.ports = used;
    m.nports = 2;
    m.allocated = (cs_res){100, 100, 0};
    m.ntasks = 2;
    cs_machine before = m;

    cs_res r = {100, 100, 0};
    uint16_t p[] = {31002};
    cr_assert_eq(cs_machine_take(&m, &r, p, 1, &a), CS_OK);
    uint16_t w[] = {31001, 31002, 31003};
    assert_ports(&m, w, 3);
    cr_assert_eq(used[0], 31001);
    cr_assert_eq(used[1], 31003);

    m = before;
    uint16_t g[] = {31001};
    cr_assert_eq(cs_machine_give(&m, &r, g, 1, &a), CS_OK);
    uint16_t w2[] = {31003};
    assert_ports(&m, w2, 1);
    cr_assert_eq(used[0], 31001);
    cr_assert_eq(used[1], 31003);
    cr_assert_eq(before.nports, 2);
    cs_arena_free(&a);
}

Test(machine_take_give, take_then_judge_sees_the_ports)
{
    /* What a transaction took is what the next claim of it is judged against. */
    cs_arena a;
    cs_arena_init(&a);
    cs_machine m = machine(2000, 2000, 0);
    cs_res r = {1000, 1000, 0};
    uint16_t p[] = {31010};
    cr_assert_eq(cs_conflict_fine(&m, &r, p, 1), CS_COMMITTED);
    cr_assert_eq(cs_machine_take(&m, &r, p, 1, &a), CS_OK);
    cr_assert_eq(cs_conflict_fine(&m, &r, p, 1), CS_CONFLICT_PORT);
    uint16_t q[] = {31011};
    cr_assert_eq(cs_conflict_fine(&m, &r, q, 1), CS_COMMITTED);
    cr_assert_eq(cs_machine_take(&m, &r, q, 1, &a), CS_OK);
    uint16_t s[] = {31012};
    cr_assert_eq(cs_conflict_fine(&m, &r, s, 1), CS_CONFLICT_CPU);
    cr_assert_eq(cs_machine_give(&m, &r, p, 1, &a), CS_OK);
    cr_assert_eq(cs_conflict_fine(&m, &r, p, 1), CS_COMMITTED);
    cs_arena_free(&a);
}
