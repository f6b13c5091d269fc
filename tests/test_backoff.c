/* test_backoff.c — the restart back-off's arithmetic and bookkeeping
 * (schedulers/backoff.h), with the clock passed in: no test sleeps. */
#include <criterion/criterion.h>

#include <string.h>

#include "schedulers/backoff.h"

static cs_jobopts opts(uint32_t backoff_ms, uint32_t factor_pm, uint32_t max_ms)
{
    cs_jobopts o;
    cs_jobopts_init(&o);
    o.backoff_ms = backoff_ms;
    o.backoff_factor_pm = factor_pm;
    o.max_delay_ms = max_ms;
    return o;
}

Test(backoff, marathon_defaults_grow_by_the_factor_up_to_an_hour)
{
    cs_jobopts o;
    cs_jobopts_init(&o);
    cr_assert_eq(o.backoff_ms, 1000u, "backoffSeconds 1");
    cr_assert_eq(o.backoff_factor_pm, 1150u, "backoffFactor 1.15");
    cr_assert_eq(o.max_delay_ms, 3600000u, "maxLaunchDelaySeconds 3600");
    cr_assert_eq(cs_backoff_delay_ms(&o, 1), 1000u);
    cr_assert_eq(cs_backoff_delay_ms(&o, 2), 1150u);
    /* 1.15^2 is 1.32249999... in binary floating point: 1322, not 1323. */
    cr_assert_eq(cs_backoff_delay_ms(&o, 3), 1322u);
    cr_assert_eq(cs_backoff_delay_ms(&o, 59), 3314933u, "1000 x 1.15^58");
    cr_assert_eq(cs_backoff_delay_ms(&o, 60), 3600000u, "1000 x 1.15^59 is above the cap");
    cr_assert_eq(cs_backoff_delay_ms(&o, UINT32_MAX), 3600000u, "no overflow, the cap");
    for (uint32_t n = 2; n < 80; n++)
        cr_assert_geq(cs_backoff_delay_ms(&o, n), cs_backoff_delay_ms(&o, n - 1), "n %u", n);
}

Test(backoff, other_factors_and_caps)
{
    cs_jobopts o = opts(200, 2000, 1000);
    cr_assert_eq(cs_backoff_delay_ms(&o, 1), 200u);
    cr_assert_eq(cs_backoff_delay_ms(&o, 2), 400u);
    cr_assert_eq(cs_backoff_delay_ms(&o, 3), 800u);
    cr_assert_eq(cs_backoff_delay_ms(&o, 4), 1000u, "capped");
    o = opts(500, 1000, 3600000);
    cr_assert_eq(cs_backoff_delay_ms(&o, 40), 500u, "a factor of 1 never grows");
    o = opts(0, 1150, 3600000);
    cr_assert_eq(cs_backoff_delay_ms(&o, 10), 0u, "no back-off at all");
    o = opts(5000, 1150, 2000);
    cr_assert_eq(cs_backoff_delay_ms(&o, 1), 2000u, "a first delay above the cap is the cap");
}

Test(backoff, each_end_counts_once_and_sets_the_next_start)
{
    cs_backoff b;
    cs_backoff_init(&b);
    cs_jobopts o = opts(1000, 2000, 60000);
    cs_id t = cs_task_id(7, 3);
    int64_t nb;
    uint32_t ends;
    cr_assert_eq(cs_backoff_ended(&b, t, 1, &o, 10000, &nb, &ends), CS_OK);
    cr_assert_eq(ends, 1u);
    cr_assert_eq(nb, 11000);
    /* The same end seen again (every upkeep while it waits): unchanged. */
    cr_assert_eq(cs_backoff_ended(&b, t, 1, &o, 10700, &nb, &ends), CS_OK);
    cr_assert_eq(ends, 1u);
    cr_assert_eq(nb, 11000);
    /* Started again, seen running briefly, ended again: the count grows. */
    cs_backoff_running(&b, t, 2, 11100);
    cr_assert_eq(cs_backoff_ended(&b, t, 2, &o, 12000, &nb, &ends), CS_OK);
    cr_assert_eq(ends, 2u);
    cr_assert_eq(nb, 14000);
    /* Never seen running (it ended between two syncs): still one more. */
    cr_assert_eq(cs_backoff_ended(&b, t, 3, &o, 15000, &nb, &ends), CS_OK);
    cr_assert_eq(ends, 3u);
    cr_assert_eq(nb, 19000);
    const cs_backoff_entry *e = cs_backoff_find(&b, t);
    cr_assert(e != NULL && e->attempt == 3);
    cs_backoff_free(&b);
}

Test(backoff, a_task_that_stays_up_starts_the_count_again)
{
    cs_backoff b;
    cs_backoff_init(&b);
    cs_jobopts o = opts(1000, 2000, 60000);
    cs_id t = cs_task_id(7, 0), u = cs_task_id(7, 1);
    int64_t nb;
    uint32_t ends;
    for (uint32_t a = 1; a <= 4; a++)
        cr_assert_eq(cs_backoff_ended(&b, t, a, &o, a * 100000, &nb, &ends), CS_OK);
    cr_assert_eq(ends, 4u);
    /* Seen running since 500,000; still in the table just before the
     * window, gone once it has run that long. */
    cs_backoff_running(&b, t, 5, 500000);
    cs_backoff_running(&b, t, 5, 500000 + CS_BACKOFF_RESET_MS - 1);
    cr_assert(cs_backoff_find(&b, t) != NULL);
    cs_backoff_running(&b, t, 5, 500000 + CS_BACKOFF_RESET_MS);
    cr_assert(cs_backoff_find(&b, t) == NULL, "reset after the window");
    cr_assert_eq(cs_backoff_ended(&b, t, 5, &o, 2000000, &nb, &ends), CS_OK);
    cr_assert_eq(ends, 1u, "its next end is a first one");
    cr_assert_eq(nb, 2001000);

    /* Ended after the window without a sighting at its end: reset too. */
    for (uint32_t a = 1; a <= 3; a++)
        cr_assert_eq(cs_backoff_ended(&b, u, a, &o, a * 1000, &nb, &ends), CS_OK);
    cs_backoff_running(&b, u, 4, 10000);
    cr_assert_eq(cs_backoff_ended(&b, u, 4, &o, 10000 + CS_BACKOFF_RESET_MS, &nb, &ends), CS_OK);
    cr_assert_eq(ends, 1u);
    /* One that ran a little less than the window: counted. */
    cs_backoff_running(&b, u, 5, 700000);
    cr_assert_eq(cs_backoff_ended(&b, u, 5, &o, 700000 + CS_BACKOFF_RESET_MS - 1, &nb, &ends),
                 CS_OK);
    cr_assert_eq(ends, 2u);
    /* Tasks that never ended are not held. */
    cs_backoff_running(&b, cs_task_id(9, 0), 1, 0);
    cr_assert(cs_backoff_find(&b, cs_task_id(9, 0)) == NULL);
    cs_backoff_free(&b);
}

Test(backoff, forgetting_a_job_keeps_the_others)
{
    cs_backoff b;
    cs_backoff_init(&b);
    cs_jobopts o = opts(1000, 1150, 60000);
    int64_t nb;
    uint32_t ends;
    /* Enough entries to grow the table, in no particular order. */
    for (cs_id job = 9; job >= 5; job--)
        for (uint32_t i = 0; i < 7; i++)
            cr_assert_eq(cs_backoff_ended(&b, cs_task_id(job, i), 1, &o, 0, &nb, &ends), CS_OK);
    cr_assert_eq(b.n, 35u);
    for (size_t i = 1; i < b.n; i++)
        cr_assert_lt(b.v[i - 1].task, b.v[i].task, "sorted");
    cs_backoff_forget_job(&b, 7);
    cr_assert_eq(b.n, 28u);
    cr_assert(cs_backoff_find(&b, cs_task_id(7, 3)) == NULL);
    cr_assert(cs_backoff_find(&b, cs_task_id(6, 6)) != NULL);
    cr_assert(cs_backoff_find(&b, cs_task_id(8, 0)) != NULL);
    cs_backoff_forget_job(&b, 42);
    cr_assert_eq(b.n, 28u);
    cs_backoff_free(&b);
}

Test(backoff, the_note_carries_the_time_and_reads_back)
{
    char note[256];
    cs_backoff_note(UINT64_C(1765021330123), 3, 5, note, sizeof note);
    cr_assert_str_eq(note, "back-off: next start at 2025-12-06T11:42:10.123Z (task 3 ended 5 "
                           "times in a row)");
    uint64_t at;
    const char *rest;
    cr_assert(cs_backoff_note_parse(note, &at, &rest));
    cr_assert_eq(at, UINT64_C(1765021330123));
    cr_assert_str_eq(rest, " (task 3 ended 5 times in a row)");
    cs_backoff_note(UINT64_C(1765021330000), 0, 1, note, sizeof note);
    cr_assert(strstr(note, ".000Z (task 0 ended 1 time in a row)") != NULL, "%s", note);
    cr_assert_not(cs_backoff_note_parse("no machine fits: cpu on 3", &at, &rest));
    cr_assert_not(cs_backoff_note_parse("back-off: next start at soon", &at, &rest));
    cr_assert_not(cs_backoff_note_parse("back-off: next start at 2025-12-06T11:42:10Z", &at, &rest),
                  "milliseconds are part of the form");
}
