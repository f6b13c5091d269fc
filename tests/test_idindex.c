/* test_idindex.c — the shared id index (cellstate/idindex.h) and the one
 * seeded generator (cellstate/rng.h). */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "cellstate/idindex.h"
#include "cellstate/rng.h"

/* A record as the index's users lay them out: the id first. */
typedef struct rec {
    cs_id id;
    uint32_t payload;
} rec;

Test(idindex, an_empty_index_finds_nothing)
{
    cs_idindex x;
    cs_idindex_init(&x);
    rec r[1] = {{7, 0}};
    cr_assert_eq(cs_idindex_find(&x, r, sizeof *r, 7), CS_IDINDEX_NONE);
    cs_idindex_free(&x);
}

/* Random distinct ids (dense runs, as the store hands out, and scattered
 * 64-bit ones) added in position order across several growths: each is
 * found at its position, and ids never added are not, before and after a
 * clear. Fixed seed. */
Test(idindex, finds_every_record_across_growth_and_nothing_else)
{
    enum { N = 20000 };
    uint64_t seed = 42;
    rec *v = calloc(N, sizeof *v);
    cr_assert_not_null(v);
    for (uint32_t i = 0; i < N; i++) {
        /* Odd ids only: even ones are the absent probes below. */
        v[i].id = i < N / 2 ? 2 * (cs_id)i + 1 : (cs_rng_next(&seed) | 1);
        v[i].payload = i;
    }
    cs_idindex x;
    cs_idindex_init(&x);
    for (uint32_t i = 0; i < N; i++) {
        cr_assert_eq(cs_idindex_add(&x, v, sizeof *v, i), 0);
        if (i % 997 == 0)
            for (uint32_t k = 0; k <= i; k++)
                cr_assert_eq(cs_idindex_find(&x, v, sizeof *v, v[k].id), k, "id %llu after %u",
                             (unsigned long long)v[k].id, i);
    }
    cr_assert_eq(x.n, N);
    cr_assert(x.nslots >= N * 4 / 3 && (x.nslots & (x.nslots - 1)) == 0, "%u slots", x.nslots);
    for (uint32_t i = 0; i < N; i++) {
        cr_assert_eq(cs_idindex_find(&x, v, sizeof *v, v[i].id), i);
        cr_assert_eq(cs_idindex_find(&x, v, sizeof *v, 2 * (cs_id)i + 2), CS_IDINDEX_NONE);
    }
    cs_idindex_clear(&x);
    cr_assert_eq(cs_idindex_find(&x, v, sizeof *v, v[0].id), CS_IDINDEX_NONE);
    cr_assert_eq(cs_idindex_add(&x, v, sizeof *v, 0), 0);
    cr_assert_eq(cs_idindex_find(&x, v, sizeof *v, v[0].id), 0);
    cr_assert_eq(cs_idindex_find(&x, v, sizeof *v, v[1].id), CS_IDINDEX_NONE);
    cs_idindex_free(&x);
    free(v);
}

Test(rng, a_seed_gives_one_sequence_and_below_stays_in_range)
{
    /* splitmix64's published first output for seed 0. */
    uint64_t s = 0;
    cr_assert_eq(cs_rng_next(&s), UINT64_C(0xE220A8397B1DCDAF));
    uint64_t a = 1234, b = 1234;
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(cs_rng_next(&a), cs_rng_next(&b));
    unsigned hits[10] = {0};
    for (int i = 0; i < 100000; i++) {
        uint32_t k = cs_rng_below(&a, 10);
        cr_assert_lt(k, 10);
        hits[k]++;
        double u = cs_rng_unit(&a);
        cr_assert(u >= 0.0 && u < 1.0);
    }
    /* Each bucket near 10,000: a broken reduction (always 0, or the low
     * bits only) would be far off. */
    for (int k = 0; k < 10; k++)
        cr_assert(hits[k] > 9000 && hits[k] < 11000, "bucket %d: %u", k, hits[k]);
    cr_assert_eq(cs_rng_below(&a, 0), 0);
}
