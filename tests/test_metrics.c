/* test_metrics.c — a scheduler's measurements (schedulers/metrics.h):
 * Omega's busyness, conflict fraction and wait-time percentiles, and the
 * metrics map a sched.report carries.
 *
 * Unit tier: no store, no process; time is passed in, never read.
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "cellstate/rng.h"
#include "schedulers/metrics.h"

#define SEC 1000000000LL

Test(metrics, percentile_is_nearest_rank)
{
    uint32_t v[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    cr_expect_eq(cs_percentile(v, 10, 50), 5);
    cr_expect_eq(cs_percentile(v, 10, 90), 9);
    cr_expect_eq(cs_percentile(v, 10, 99), 10);
    cr_expect_eq(cs_percentile(v, 10, 100), 10);
    cr_expect_eq(cs_percentile(v, 1, 99), 1);
    cr_expect_eq(cs_percentile(v, 0, 50), 0, "no samples: 0");
}

Test(metrics, conflict_fraction_counts_conflicts_per_successful_transaction)
{
    cs_metrics m;
    cs_metrics_init(&m, 0);
    /* Omega: 3 means four attempts on average. One job took four attempts:
     * three conflicted transactions (one partly committed, one aborted as a
     * gang), then one that committed everything. */
    cs_metrics_txn(&m, 10, 2, false);
    cs_metrics_txn(&m, 0, 1, false);
    cs_metrics_txn(&m, 0, 0, true);
    cs_metrics_txn(&m, 3, 0, false);
    cs_metrics_view v;
    cs_metrics_view_at(&m, SEC, &v);
    cr_expect_float_eq(v.conflict_fraction, 3.0, 1e-12);
    cr_expect_eq(v.txn_successful, 1);
    cr_expect_eq(v.txn_conflicted, 3);
    cr_expect_eq(v.claims_committed, 13);
    cr_expect_eq(v.claims_conflicted, 3);
    cs_metrics_free(&m);
}

Test(metrics, no_successful_transaction_reports_zero_not_infinity)
{
    cs_metrics m;
    cs_metrics_init(&m, 0);
    cs_metrics_txn(&m, 0, 5, false);
    cs_metrics_view v;
    cs_metrics_view_at(&m, SEC, &v);
    cr_expect_float_eq(v.conflict_fraction, 0.0, 1e-12);
    cr_expect_eq(v.txn_conflicted, 1);
    cs_metrics_free(&m);
}

Test(metrics, busyness_is_decision_time_over_elapsed_time)
{
    cs_metrics m;
    cs_metrics_init(&m, 10 * SEC);
    cs_metrics_decided(&m, SEC / 2);
    cs_metrics_decided(&m, SEC);
    cs_metrics_decided(&m, -5); /* a clock step backwards is not negative work */
    cs_metrics_view v;
    cs_metrics_view_at(&m, 16 * SEC, &v);
    cr_expect_float_eq(v.busyness, 0.25, 1e-12, "1.5 s of 6 s: %g", v.busyness);
    cs_metrics_free(&m);
}

Test(metrics, placement_rate_is_over_the_interval_since_the_previous_view)
{
    cs_metrics m;
    cs_metrics_init(&m, 0);
    cs_metrics_txn(&m, 1000, 0, false);
    cs_metrics_view v;
    cs_metrics_view_at(&m, 2 * SEC, &v);
    cr_expect_float_eq(v.placements_per_s, 500.0, 1e-9);
    cs_metrics_txn(&m, 300, 0, false);
    cs_metrics_view_at(&m, 3 * SEC, &v);
    cr_expect_float_eq(v.placements_per_s, 300.0, 1e-9, "only the last second counts");
    cs_metrics_view_at(&m, 4 * SEC, &v);
    cr_expect_float_eq(v.placements_per_s, 0.0, 1e-9);
    cs_metrics_free(&m);
}

Test(metrics, wait_percentiles_over_jobs)
{
    cs_metrics m;
    cs_metrics_init(&m, 0);
    /* 100 jobs waiting 100, 99, ..., 1 ms (unsorted on purpose). */
    for (uint64_t ms = 100; ms >= 1; ms--)
        cr_assert_eq(cs_metrics_wait_first(&m, ms), 0);
    cr_assert_eq(cs_metrics_wait_placed(&m, 7), 0);
    cr_assert_eq(cs_metrics_wait_placed(&m, (uint64_t)1 << 40), 0);
    cs_metrics_view v;
    cs_metrics_view_at(&m, SEC, &v);
    cr_expect_eq(v.wait_first_ms[0], 50);
    cr_expect_eq(v.wait_first_ms[1], 90);
    cr_expect_eq(v.wait_first_ms[2], 99);
    cr_expect_eq(v.jobs_first, 100);
    cr_expect_eq(v.wait_placed_ms[0], 7);
    cr_expect_eq(v.wait_placed_ms[2], UINT32_MAX, "a huge wait saturates, it does not wrap");
    cs_metrics_free(&m);
}

Test(metrics, pack_gives_a_map_of_named_numbers)
{
    cs_metrics m;
    cs_metrics_init(&m, 0);
    cs_metrics_txn(&m, 4, 1, false);
    cs_metrics_txn(&m, 1, 0, false);
    cr_assert_eq(cs_metrics_wait_first(&m, 12), 0);
    cs_metrics_decided(&m, SEC / 10);
    cs_metrics_view v;
    cs_metrics_view_at(&m, SEC, &v);

    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    cr_assert_eq(cs_metrics_pack(&v, 42, &pk), 0);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    cr_assert_eq(msgpack_unpack_next(&u, buf.data, buf.size, NULL), MSGPACK_UNPACK_SUCCESS);
    const msgpack_object *o = &u.data;
    cr_assert_eq(o->type, MSGPACK_OBJECT_MAP);
    int seen = 0;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        cr_assert_eq(kv->key.type, MSGPACK_OBJECT_STR);
        const char *k = kv->key.via.str.ptr;
        uint32_t n = kv->key.via.str.size;
        cr_expect(kv->val.type == MSGPACK_OBJECT_FLOAT64 ||
                      kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER,
                  "metric %.*s is not a number", (int)n, k);
        if (n == 17 && memcmp(k, "conflict_fraction", n) == 0) {
            cr_expect_float_eq(kv->val.via.f64, 1.0, 1e-12);
            seen++;
        } else if (n == 13 && memcmp(k, "pending_tasks", n) == 0) {
            cr_expect_eq(kv->val.via.u64, 42);
            seen++;
        } else if (n == 17 && memcmp(k, "wait_first_p99_ms", n) == 0) {
            cr_expect_eq(kv->val.via.u64, 12);
            seen++;
        } else if (n == 8 && memcmp(k, "busyness", n) == 0) {
            cr_expect_float_eq(kv->val.via.f64, 0.1, 1e-12);
            seen++;
        } else if (n == 15 && memcmp(k, "busyness_wasted", n) == 0) {
            cr_expect_float_eq(kv->val.via.f64, 0.0, 1e-12);
            seen++;
        } else if (n == 12 && memcmp(k, "wait_mean_ms", n) == 0) {
            cr_expect_float_eq(kv->val.via.f64, 12.0, 1e-12);
            seen++;
        } else if (n == 14 && memcmp(k, "jobs_abandoned", n) == 0) {
            cr_expect_eq(kv->val.via.u64, 0);
            seen++;
        }
    }
    cr_expect_eq(seen, 7, "conflict_fraction, pending_tasks, wait_first_p99_ms, busyness, "
                          "busyness_wasted, wait_mean_ms, jobs_abandoned");
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&buf);
    cs_metrics_free(&m);
}

Test(metrics, busyness_splits_into_useful_and_wasted)
{
    cs_metrics m;
    cs_metrics_init(&m, 0);
    /* 4 s of 10 deciding, of which 1 s on claims that conflicted. */
    cs_metrics_decided(&m, 4 * SEC);
    cs_metrics_wasted(&m, SEC);
    cs_metrics_wasted(&m, -1); /* not negative work */
    cs_metrics_view v;
    cs_metrics_view_at(&m, 10 * SEC, &v);
    cr_expect_float_eq(v.busyness, 0.4, 1e-12);
    cr_expect_float_eq(v.busyness_wasted, 0.1, 1e-12);
    cr_expect_float_eq(v.busyness_useful, 0.3, 1e-12);
    cs_metrics_free(&m);
}

Test(metrics, mean_wait_counts_the_jobs_still_waiting)
{
    cs_metrics m;
    cs_metrics_init(&m, 0);
    /* One of eight jobs attempted after 4 ms; seven still wait, 10 s each
     * so far: the percentiles see only the one, the paper's mean all. */
    cr_assert_eq(cs_metrics_wait_first(&m, 4), 0);
    cs_metrics_view v;
    cs_metrics_view_at(&m, SEC, &v);
    cr_expect_eq(v.wait_first_ms[1], 4);
    cr_expect_float_eq(v.wait_first_mean_ms, 4.0, 1e-9);
    cr_expect_float_eq(v.wait_mean_ms, 4.0, 1e-9, "none waiting: the two means agree");
    cs_metrics_view_waiting(&v, 7, 70000);
    cr_expect_eq(v.jobs_waiting, 7);
    cr_expect_float_eq(v.wait_mean_ms, (4.0 + 70000.0) / 8, 1e-9);
    cr_expect_float_eq(v.wait_first_mean_ms, 4.0, 1e-9, "the first-attempt mean stays");
    cs_metrics_view v0;
    cs_metrics m0;
    cs_metrics_init(&m0, 0);
    cs_metrics_view_at(&m0, SEC, &v0);
    cs_metrics_view_waiting(&v0, 0, 0);
    cr_expect_float_eq(v0.wait_mean_ms, 0.0, 1e-12, "no job at all: 0, not NaN");
    cs_metrics_free(&m0);
    cs_metrics_free(&m);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Views taken between batches of samples sort only what is new and merge
 * it into what the last view sorted: the percentiles must still be those
 * of all the samples, whatever the order and size of the batches. */
Test(metrics, percentiles_over_views_between_batches_are_those_of_all_samples)
{
    uint64_t seed = 0x77e1;
    for (int run = 0; run < 40; run++) {
        cs_metrics m;
        cs_metrics_init(&m, 0);
        uint32_t all[3000];
        size_t n = 0;
        while (n < 2900) {
            size_t batch = (size_t)(cs_rng_next(&seed) % (run % 4 == 0 ? 3 : 200));
            for (size_t i = 0; i < batch && n < 3000; i++) {
                /* Small ranges give ties; a rising run gives tails already in order. */
                uint32_t ms = run % 3 == 0 ? (uint32_t)n : (uint32_t)(cs_rng_next(&seed) % 500);
                cr_assert_eq(cs_metrics_wait_first(&m, ms), 0);
                all[n++] = ms;
            }
            cs_metrics_view v;
            cs_metrics_view_at(&m, 1000000000, &v);
            uint32_t sorted[3000];
            memcpy(sorted, all, n * sizeof *all);
            qsort(sorted, n, sizeof *sorted, cmp_u32);
            cr_assert_eq(v.wait_first_ms[0], cs_percentile(sorted, n, 50), "run %d, %zu samples", run, n);
            cr_assert_eq(v.wait_first_ms[1], cs_percentile(sorted, n, 90), "run %d, %zu samples", run, n);
            cr_assert_eq(v.wait_first_ms[2], cs_percentile(sorted, n, 99), "run %d, %zu samples", run, n);
        }
        cs_metrics_free(&m);
    }
}
