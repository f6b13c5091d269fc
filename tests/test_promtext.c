/* test_promtext.c — the Prometheus text writer (cellstate/promtext.h) on
 * its own: escaping of label values and HELP text, numbers, the histogram's
 * cumulative buckets ending in +Inf with _sum and _count, bounds checked
 * at init, and promtool's verdict on a text with every kind of family when
 * promtool (Debian's prometheus) is on the machine. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cellstate/promtext.h"
#include "tests/promcheck.h"

static char *finish(cs_prom *p)
{
    char *text;
    size_t len;
    cs_error err = {0};
    cr_assert_eq(cs_prom_finish(p, &text, &len, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(strlen(text), len);
    return text;
}

Test(promtext, family_header_and_plain_samples)
{
    cs_prom p;
    cs_prom_init(&p);
    cs_prom_family(&p, "x_requests_total", CS_PROM_COUNTER, "Requests served.");
    cs_prom_u64(&p, "x_requests_total", NULL, 0, 18446744073709551615u);
    cs_prom_family(&p, "x_ratio", CS_PROM_GAUGE, "A ratio.");
    cs_prom_label l[] = {{"a", "1"}, {"b", "two"}};
    cs_prom_f64(&p, "x_ratio", l, 2, 0.1);
    char *t = finish(&p);
    cr_assert_str_eq(t, "# HELP x_requests_total Requests served.\n"
                        "# TYPE x_requests_total counter\n"
                        "x_requests_total 18446744073709551615\n"
                        "# HELP x_ratio A ratio.\n"
                        "# TYPE x_ratio gauge\n"
                        "x_ratio{a=\"1\",b=\"two\"} 0.1\n");
    free(t);
}

Test(promtext, label_values_and_help_are_escaped)
{
    cs_prom p;
    cs_prom_init(&p);
    cs_prom_family(&p, "x", CS_PROM_GAUGE, "back\\slash and\nnewline \"quoted\"");
    cs_prom_label l[] = {{"name", "a\"b\\c\nd"}};
    cs_prom_u64(&p, "x", l, 1, 3);
    char *t = finish(&p);
    /* HELP escapes backslash and newline only; a label value the quote too. */
    cr_assert_str_eq(t, "# HELP x back\\\\slash and\\nnewline \"quoted\"\n"
                        "# TYPE x gauge\n"
                        "x{name=\"a\\\"b\\\\c\\nd\"} 3\n");
    free(t);
}

/* A label value from a client may hold any bytes: what is not UTF-8 is
 * written as U+FFFD, so that the scrape stays readable; valid multi-byte
 * characters pass as they are. */
Test(promtext, bytes_that_are_not_utf8_become_the_replacement_character)
{
    cs_prom p;
    cs_prom_init(&p);
    cs_prom_label l[] = {{"name", "caf\xc3\xa9 \xff\xc3 \xe2\x82\xac \xed\xa0\x80 \xf0\x9f\x99\x82"}};
    cs_prom_u64(&p, "x", l, 1, 1);
    char *t = finish(&p);
    /* é and € and 🙂 kept; 0xff, a lone lead byte and a surrogate (3 bytes) replaced. */
    cr_assert_str_eq(t, "x{name=\"caf\xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd \xe2\x82\xac "
                        "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd \xf0\x9f\x99\x82\"} 1\n");
    free(t);
}

Test(promtext, floats_shortest_and_special_values)
{
    cs_prom p;
    cs_prom_init(&p);
    cs_prom_f64(&p, "a", NULL, 0, 1.0 / 3.0);
    cs_prom_f64(&p, "b", NULL, 0, INFINITY);
    cs_prom_f64(&p, "c", NULL, 0, -INFINITY);
    cs_prom_f64(&p, "d", NULL, 0, NAN);
    cs_prom_f64(&p, "e", NULL, 0, 2.5e-7);
    cs_prom_f64(&p, "f", NULL, 0, 1048576.0 * 4096);
    char *t = finish(&p);
    cr_assert_str_eq(t, "a 0.3333333333333333\nb +Inf\nc -Inf\nd NaN\ne 2.5e-07\n"
                        "f 4294967296\n");
    double back = strtod(t + 2, NULL);
    cr_assert(back == 1.0 / 3.0, "the printed value reads back exactly");
    free(t);
}

static const uint64_t ns_bounds[] = {1000000, 10000000, 100000000}; /* 1 ms, 10 ms, 100 ms */

Test(promtext, histogram_is_cumulative_with_inf_sum_and_count)
{
    cs_prom_hist h;
    cs_error err = {0};
    cr_assert_eq(cs_prom_hist_init(&h, ns_bounds, 3, 1e9, &err), CS_OK, "%s", err.msg);
    cs_prom_hist_observe(&h, 500000);     /* 0.5 ms: first bucket */
    cs_prom_hist_observe(&h, 1000000);    /* 1 ms: on the bound, which is inclusive */
    cs_prom_hist_observe(&h, 50000000);   /* 50 ms: third */
    cs_prom_hist_observe(&h, 2000000000); /* 2 s: only +Inf */
    cs_prom p;
    cs_prom_init(&p);
    cs_prom_family(&p, "x_seconds", CS_PROM_HISTOGRAM, "Latency.");
    cs_prom_label l[] = {{"type", "commit"}};
    cs_prom_hist_write(&p, "x_seconds", l, 1, &h);
    cs_prom_hist_write(&p, "y_seconds", NULL, 0, &h);
    char *t = finish(&p);
    cr_assert_str_eq(t, "# HELP x_seconds Latency.\n"
                        "# TYPE x_seconds histogram\n"
                        "x_seconds_bucket{type=\"commit\",le=\"0.001\"} 2\n"
                        "x_seconds_bucket{type=\"commit\",le=\"0.01\"} 2\n"
                        "x_seconds_bucket{type=\"commit\",le=\"0.1\"} 3\n"
                        "x_seconds_bucket{type=\"commit\",le=\"+Inf\"} 4\n"
                        "x_seconds_sum{type=\"commit\"} 2.0515\n"
                        "x_seconds_count{type=\"commit\"} 4\n"
                        "y_seconds_bucket{le=\"0.001\"} 2\n"
                        "y_seconds_bucket{le=\"0.01\"} 2\n"
                        "y_seconds_bucket{le=\"0.1\"} 3\n"
                        "y_seconds_bucket{le=\"+Inf\"} 4\n"
                        "y_seconds_sum 2.0515\n"
                        "y_seconds_count 4\n");
    free(t);
}

Test(promtext, histogram_bounds_are_checked)
{
    cs_prom_hist h;
    cs_error err = {0};
    static const uint64_t unordered[] = {5, 5};
    cr_assert_eq(cs_prom_hist_init(&h, unordered, 2, 1, &err), CS_EINVAL);
    cr_assert(strstr(err.msg, "bound 1 is not above bound 0") != NULL, "%s", err.msg);
    cr_assert_eq(cs_prom_hist_init(&h, unordered, 0, 1, &err), CS_EINVAL);
    cr_assert_eq(cs_prom_hist_init(&h, ns_bounds, CS_PROM_BUCKETS_MAX + 1, 1, &err), CS_EINVAL);
    cr_assert_eq(cs_prom_hist_init(&h, ns_bounds, 3, 0, &err), CS_EINVAL);
}

Test(promtext, an_empty_text_is_an_empty_string)
{
    cs_prom p;
    cs_prom_init(&p);
    char *t = finish(&p);
    cr_assert_str_eq(t, "");
    free(t);
}

/* The check below can fail: promtool's linter names a counter without
 * _total, and its parser a sample without a value. */
Test(promtext, promtool_finds_what_is_wrong)
{
    if (!ts_have_promtool())
        cr_skip_test("promtool is not installed (Debian: prometheus; tools/deps.sh installs it)");
    char out[4096];
    int rc = ts_promtool_run("# HELP x_requests Requests.\n# TYPE x_requests counter\n"
                             "x_requests 1\n",
                             out, sizeof out);
    cr_assert(rc != 0 || out[0] != '\0', "promtool said nothing of a counter without _total");
    cr_assert(strstr(out, "_total") != NULL, "%s", out);
    rc = ts_promtool_run("# HELP x Gauge.\n# TYPE x gauge\nx{a=\"1\"}\n", out, sizeof out);
    cr_assert_neq(rc, 0, "promtool took a sample without a value: %s", out);
}

Test(promtext, promtool_accepts_every_kind)
{
    cs_prom_hist h;
    cs_error err = {0};
    cr_assert_eq(cs_prom_hist_init(&h, ns_bounds, 3, 1e9, &err), CS_OK);
    cs_prom_hist_observe(&h, 3000000);
    cs_prom p;
    cs_prom_init(&p);
    cs_prom_family(&p, "x_requests_total", CS_PROM_COUNTER, "Requests \"served\".");
    cs_prom_label l[] = {{"type", "a\"b\\c\nd"}};
    cs_prom_u64(&p, "x_requests_total", l, 1, 7);
    cs_prom_family(&p, "x_queue_depth", CS_PROM_GAUGE, "Queued.");
    cs_prom_f64(&p, "x_queue_depth", NULL, 0, 0.25);
    cs_prom_family(&p, "x_latency_seconds", CS_PROM_HISTOGRAM, "Latency.");
    cs_prom_hist_write(&p, "x_latency_seconds", NULL, 0, &h);
    char *t = finish(&p);
    ts_promtool_check(t);
    free(t);
}
