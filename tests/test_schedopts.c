/* test_schedopts.c — the schedulers' command line (schedulers/schedopts.h):
 * defaults, every knob, and errors that name the flag.
 *
 * Unit tier: no process.
 */
#include <criterion/criterion.h>

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "schedulers/schedopts.h"
#include "txn/txn.h"

static int parse(cs_sched_kind kind, cs_sched_opts *o, cs_error *err, int n, ...)
{
    static char prog[] = "prog";
    char *argv[32] = {prog};
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        argv[i + 1] = va_arg(ap, char *);
    va_end(ap);
    bool help;
    return cs_sched_opts_parse(kind, n + 1, argv, o, &help, err);
}

Test(schedopts, defaults)
{
    cs_sched_opts o;
    cs_error err = {0};
    cr_assert_eq(parse(CS_SCHED_BATCH, &o, &err, 0), CS_OK, "%s", err.msg);
    cr_expect_eq(o.conflict, CS_CONFLICT_FINE);
    cr_expect_eq(o.commit, CS_COMMIT_INCREMENTAL, "incremental should be the default (Omega)");
    cr_expect_str_eq(o.name, "batch-0");
    cr_expect_eq(o.instances, 1);
    cr_expect(!o.preempt);
    cr_expect_str_eq(o.strategy, "binpack", "batch work packs by default (Nomad, Omega's first fit)");
    cr_expect_eq(o.sync_chunk, 10000, "full syncs in pieces of 10,000 records by default");
    cr_assert_eq(parse(CS_SCHED_SERVICE, &o, &err, 0), CS_OK, "%s", err.msg);
    cr_expect_str_eq(o.name, "service");
    cr_expect(o.preempt);
    cr_expect_str_eq(o.strategy, "spread", "services spread by default");
}

Test(schedopts, every_knob)
{
    cs_sched_opts o;
    cs_error err = {0};
    cr_assert_eq(parse(CS_SCHED_BATCH, &o, &err, 16, "--conflict", "coarse", "--commit", "gang",
                       "--t-job", "0.1", "--t-task", "5ms", "--instance", "2", "--instances", "4",
                       "--name", "b2", "--max-attempts", "7"),
                 CS_OK, "%s", err.msg);
    cr_expect_eq(o.conflict, CS_CONFLICT_COARSE);
    cr_expect_eq(o.commit, CS_COMMIT_GANG);
    cr_expect_float_eq(o.t_job_s, 0.1, 1e-12);
    cr_expect_float_eq(o.t_task_s, 0.005, 1e-12);
    cr_expect_eq(o.instance, 2);
    cr_expect_eq(o.instances, 4);
    cr_expect_str_eq(o.name, "b2");
    cr_expect_eq(o.max_attempts, 7);
    cr_assert_eq(parse(CS_SCHED_BATCH, &o, &err, 2, "--sync-chunk", "0"), CS_OK, "%s", err.msg);
    cr_expect_eq(o.sync_chunk, 0, "0: a full sync in one reply");
    cr_assert_eq(parse(CS_SCHED_SERVICE, &o, &err, 2, "--sync-chunk", "500"), CS_OK, "%s", err.msg);
    cr_expect_eq(o.sync_chunk, 500);
}

Test(schedopts, errors_name_the_flag)
{
    static const struct {
        cs_sched_kind kind;
        const char *a, *b, *want;
    } cases[] = {
        {CS_SCHED_BATCH, "--conflict", "medium", "--conflict"},
        {CS_SCHED_BATCH, "--commit", "some", "--commit"},
        {CS_SCHED_BATCH, "--t-job", "soon", "--t-job"},
        {CS_SCHED_BATCH, "--t-task", "-1", "--t-task"},
        {CS_SCHED_BATCH, "--instances", "0", "--instances"},
        {CS_SCHED_BATCH, "--instance", "3", "--instance 3 must be below --instances 1"},
        {CS_SCHED_BATCH, "--strategy", "worst", "--strategy"},
        {CS_SCHED_BATCH, "--frobnicate", NULL, "--frobnicate"},
        {CS_SCHED_BATCH, "--preempt", NULL, "--preempt"},
        {CS_SCHED_SERVICE, "--instances", "2", "--instance"},
        {CS_SCHED_BATCH, "--max-attempts", "0", "--max-attempts"},
        {CS_SCHED_BATCH, "--name", "", "--name"},
        {CS_SCHED_BATCH, "--retry", "sideways", "--retry: 'sideways' is not front or tail"},
        {CS_SCHED_BATCH, "--retry-ms", "soon", "--retry-ms"},
        {CS_SCHED_BATCH, "--sync-chunk", "-5", "--sync-chunk"},
        {CS_SCHED_SERVICE, "--sync-chunk", "many", "--sync-chunk"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cs_sched_opts o;
        cs_error err = {0};
        int rc = cases[i].b ? parse(cases[i].kind, &o, &err, 2, cases[i].a, cases[i].b)
                            : parse(cases[i].kind, &o, &err, 1, cases[i].a);
        cr_expect_eq(rc, CS_EINVAL, "%s %s accepted", cases[i].a, cases[i].b ? cases[i].b : "");
        cr_expect(strstr(err.msg, cases[i].want) != NULL, "'%s' does not name %s", err.msg,
                  cases[i].want);
    }
}

Test(schedopts, missing_value)
{
    cs_sched_opts o;
    cs_error err = {0};
    cr_expect_eq(parse(CS_SCHED_BATCH, &o, &err, 1, "--conflict"), CS_EINVAL);
    cr_expect(strstr(err.msg, "--conflict") != NULL, "%s", err.msg);
}

Test(schedopts, server_list)
{
    cs_sched_opts o;
    cs_error err = {0};
    cr_assert_eq(parse(CS_SCHED_BATCH, &o, &err, 2, "--server",
                       "tcp://127.0.0.1:7600,tcp://127.0.0.1:7601"),
                 CS_OK, "%s", err.msg);
    cr_expect_str_eq(o.server, "tcp://127.0.0.1:7600,tcp://127.0.0.1:7601");
    /* Checked whole at parse time, the bad entry named. */
    cr_assert_eq(parse(CS_SCHED_SERVICE, &o, &err, 2, "--server", "tcp://127.0.0.1:7600,7601"),
                 CS_EINVAL);
    cr_expect(strstr(err.msg, "--server") && strstr(err.msg, "server 2 '7601' is not a URL"), "%s",
              err.msg);
    setenv("CELL_SERVER", "tcp://127.0.0.1:7600,,", 1);
    err = (cs_error){0};
    cr_assert_eq(parse(CS_SCHED_BATCH, &o, &err, 0), CS_EINVAL);
    cr_expect(strstr(err.msg, "$CELL_SERVER") && strstr(err.msg, "server 2 is empty"), "%s",
              err.msg);
    unsetenv("CELL_SERVER");
}

Test(schedopts, paper_faithful_switches)
{
    cs_sched_opts o;
    cs_error err = {0};
    cr_assert_eq(parse(CS_SCHED_BATCH, &o, &err, 0), CS_OK, "%s", err.msg);
    cr_expect(!o.txn_per_job, "jobs share a transaction by default");
    cr_expect_eq(o.retry, CS_RETRY_FRONT, "a conflicted job keeps its place by default");
    cr_expect_eq(o.max_attempts, 20);
    cr_assert_eq(parse(CS_SCHED_SERVICE, &o, &err, 1, "--txn-per-job"), CS_OK, "%s", err.msg);
    cr_expect(o.txn_per_job);
    /* The paper's retries: 1,000 attempts unless told otherwise. */
    cr_assert_eq(parse(CS_SCHED_SERVICE, &o, &err, 4, "--retry", "tail", "--retry-ms", "25"), CS_OK,
                 "%s", err.msg);
    cr_expect_eq(o.retry, CS_RETRY_TAIL);
    cr_expect_eq(o.max_attempts, 1000);
    cr_expect_eq(o.retry_ms, 25);
    cr_assert_eq(parse(CS_SCHED_BATCH, &o, &err, 4, "--max-attempts", "5", "--retry", "tail"), CS_OK,
                 "%s", err.msg);
    cr_expect_eq(o.max_attempts, 5, "a given --max-attempts stays");
    cr_assert_eq(parse(CS_SCHED_BATCH, &o, &err, 2, "--strategy", "firstfit"), CS_OK, "%s", err.msg);
    cr_expect_str_eq(o.strategy, "firstfit");
}
