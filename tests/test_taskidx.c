/* test_taskidx.c — the agent's task index (agent/taskidx.h) against a
 * plain array, over random histories with fixed seeds: adds, removals
 * (whose backward shift must keep every other entry reachable, across the
 * table's wrap-around) and lookups of present and absent pairs. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "cellstate/rng.h"
#include "agent/taskidx.h"

#define POOL 600

Test(taskidx, matches_a_plain_list_over_random_histories)
{
    ag_task *pool = calloc(POOL, sizeof *pool);
    bool *in = calloc(POOL, sizeof *in);
    cr_assert(pool && in);
    for (uint64_t seed = 1; seed <= 24; seed++) {
        uint64_t s = seed * 0x2545F4914F6CDD1Dull;
        /* Ids in a few dense runs (tasks of one job are consecutive), a
         * task sometimes under two attempts, and a pool size that makes
         * the table grow and then empty again. */
        uint32_t live = 40 + (uint32_t)(cs_rng_next(&s) % (POOL - 40));
        for (uint32_t i = 0; i < POOL; i++) {
            pool[i].id = 1000 * (1 + i % 3) + i / 3 * (1 + seed % 2);
            pool[i].attempt = (uint32_t)(i % 7 == 0);
            in[i] = false;
        }
        ag_taskidx x;
        ag_taskidx_init(&x);
        uint32_t n = 0;
        for (uint32_t k = 0; k < 20 * live; k++) {
            uint32_t i = (uint32_t)(cs_rng_next(&s) % live);
            uint32_t op = (uint32_t)(cs_rng_next(&s) % 3);
            if (op == 0 && !in[i]) {
                cs_error err = {0};
                cr_assert_eq(ag_taskidx_add(&x, &pool[i], &err), CS_OK, "%s", err.msg);
                in[i] = true;
                n++;
            } else if (op == 1) {
                ag_taskidx_remove(&x, &pool[i]);
                n -= in[i];
                in[i] = false;
            }
            uint32_t j = (uint32_t)(cs_rng_next(&s) % live);
            ag_task *f = ag_taskidx_find(&x, pool[j].id, pool[j].attempt);
            cr_assert_eq(f, in[j] ? &pool[j] : NULL,
                         "seed %llu step %u: find(%llu, %u) gave %p, expected %s",
                         (unsigned long long)seed, k, (unsigned long long)pool[j].id,
                         pool[j].attempt, (void *)f, in[j] ? "the task" : "nothing");
            cr_assert_eq(x.n, n, "seed %llu step %u: %u entries, expected %u",
                         (unsigned long long)seed, k, x.n, n);
        }
        /* Every survivor is still found after all those shifts, and an
         * attempt it does not have is not. */
        for (uint32_t i = 0; i < live; i++) {
            cr_assert_eq(ag_taskidx_find(&x, pool[i].id, pool[i].attempt), in[i] ? &pool[i] : NULL,
                         "seed %llu: task %u at the end", (unsigned long long)seed, i);
            cr_assert_null(ag_taskidx_find(&x, pool[i].id, 9),
                           "seed %llu: an attempt no task has was found", (unsigned long long)seed);
        }
        ag_taskidx_free(&x);
    }
    free(pool);
    free(in);
}

Test(taskidx, empty_index_finds_nothing_and_removes_nothing)
{
    ag_taskidx x;
    ag_taskidx_init(&x);
    ag_task t = {.id = 7};
    cr_assert_null(ag_taskidx_find(&x, 7, 0));
    ag_taskidx_remove(&x, &t);
    cr_assert_eq(x.n, 0);
    ag_taskidx_free(&x);
}
