/* test_fitcheck.c — submit-time warnings (spec/fitcheck.h): every
 * reason no machine could hold a job, and none when one could. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "spec/fitcheck.h"
#include "cellstate/jobopts.h"

static cs_attr zone_a[] = {{"rack", "r1"}, {"zone", "a"}};
static cs_attr zone_b[] = {{"rack", "r2"}, {"zone", "b"}};

static cs_machine machine(const char *name, int64_t cpu, int64_t mem, int64_t disk, cs_attr *attrs,
                          uint32_t nattrs)
{
    cs_machine m = {0};
    m.name = name;
    m.capacity = (cs_res){cpu, mem, disk};
    m.attrs = attrs;
    m.nattrs = nattrs;
    m.state = CS_MACHINE_UP;
    return m;
}

static cs_job job(int64_t cpu, int64_t mem, int64_t disk, cs_constraint *cons, uint32_t ncons)
{
    cs_job j = {0};
    j.name = "j";
    j.res = (cs_res){cpu, mem, disk};
    j.constraints = cons;
    j.nconstraints = ncons;
    return j;
}

static void expect(const cs_fit_warnings *w, uint32_t n, const char *const *msgs)
{
    for (uint32_t i = 0; i < w->n; i++)
        cr_log_info("warning %u: %s", i, w->msg[i]);
    cr_assert_eq(w->n, n, "%u warnings, expected %u (first: %s)", w->n, n, w->n ? w->msg[0] : "");
    for (uint32_t i = 0; i < n; i++)
        cr_assert_str_eq(w->msg[i], msgs[i]);
}

Test(fitcheck, a_job_some_machine_holds_gets_no_warning)
{
    cs_machine ms[] = {machine("m1", 4000, 4096, 100, zone_a, 2),
                       machine("m2", 16000, 65536, 0, zone_b, 2)};
    cs_constraint c[] = {{"zone", "==", "b", false}, {"rack", "UNIQUE", "", false},
                         {"hostname", "IS", "m2", false}};
    cs_job j = job(16000, 65536, 0, c, 3);
    cs_fit_warnings w;
    cs_fit_check(&j, ms, 2, &w);
    expect(&w, 0, NULL);
}

Test(fitcheck, resources_above_every_capacity_are_each_named)
{
    cs_machine ms[] = {machine("m1", 4000, 4096, 100, NULL, 0),
                       machine("m2", 16000, 2048, 50, NULL, 0)};
    cs_job j = job(64000, 8192, 100, NULL, 0);
    cs_fit_warnings w;
    cs_fit_check(&j, ms, 2, &w);
    const char *want[] = {
        "resources: cpu 64 cores per task is above every machine's capacity (the largest has 16 "
        "cores)",
        "resources: mem 8192 MiB per task is above every machine's capacity (the largest has 4096 "
        "MiB)"};
    expect(&w, 2, want);
    j = job(2500, 0, 101, NULL, 0);
    cs_fit_check(&j, ms, 2, &w);
    const char *disk[] = {"resources: disk 101 MiB per task is above every machine's capacity "
                          "(the largest has 100 MiB)"};
    expect(&w, 1, disk);
}

Test(fitcheck, resources_no_single_machine_has_together)
{
    cs_machine ms[] = {machine("cpu-rich", 16000, 1024, 0, NULL, 0),
                       machine("mem-rich", 1000, 65536, 0, NULL, 0)};
    cs_job j = job(2500, 4096, 0, NULL, 0);
    cs_fit_warnings w;
    cs_fit_check(&j, ms, 2, &w);
    const char *want[] = {"resources: no machine has cpu 2.5 cores, mem 4096 MiB and disk 0 MiB "
                          "together"};
    expect(&w, 1, want);
}

Test(fitcheck, constraints_on_attributes_and_names_no_machine_has)
{
    cs_machine ms[] = {machine("m1", 4000, 4096, 0, zone_a, 2),
                       machine("m2", 4000, 4096, 0, zone_b, 2)};
    cs_constraint c[] = {
        {"gpu", "==", "yes", false},      {"zone", "==", "c", false},
        {"ssd", "UNIQUE", "", false},     {"hostname", "IS", "m9", false},
        {"zone", "LIKE", "[ab]", false},  /* the key exists: no regex is run here */
        {"gpu", "!=", "yes", false},      /* a machine without it passes */
        {"gpu", "UNLIKE", "y.*", false},  /* likewise */
        {"gpu", "==", "yes", true},       /* soft: a preference */
        {"job", "AFFINITY", "db", false}, /* other jobs come and go */
        {"hostname", "UNIQUE", "", false}};
    cs_job j = job(1000, 1024, 0, c, 10);
    cs_fit_warnings w;
    cs_fit_check(&j, ms, 2, &w);
    const char *want[] = {"constraints[0] (gpu == yes): no machine has attribute 'gpu'",
                          "constraints[1] (zone == c): no machine has zone = c",
                          "constraints[2] (ssd UNIQUE): no machine has attribute 'ssd'",
                          "constraints[3] (hostname IS m9): no machine is named 'm9'"};
    expect(&w, 4, want);
}

Test(fitcheck, only_machines_that_are_up_count)
{
    cs_machine ms[] = {machine("big", 64000, 65536, 0, zone_a, 2),
                       machine("small", 1000, 1024, 0, NULL, 0)};
    ms[0].state = CS_MACHINE_DRAINING;
    cs_constraint c[] = {{"zone", "==", "a", false}};
    cs_job j = job(8000, 1024, 0, c, 1);
    cs_fit_warnings w;
    cs_fit_check(&j, ms, 2, &w);
    const char *want[] = {
        "resources: cpu 8 cores per task is above every machine's capacity (the largest has 1 "
        "core)",
        "constraints[0] (zone == a): no machine has attribute 'zone'"};
    expect(&w, 2, want);
    ms[1].state = CS_MACHINE_DOWN;
    cs_fit_check(&j, ms, 2, &w);
    const char *none_up[] = {"machines: none of the 2 machines takes new tasks (up, not cordoned)"};
    expect(&w, 1, none_up);
    cs_fit_check(&j, ms, 0, &w);
    const char *empty[] = {"machines: the cell has no machine yet"};
    expect(&w, 1, empty);
}

Test(fitcheck, warnings_beyond_the_limit_are_counted)
{
    cs_machine ms[] = {machine("m1", 4000, 4096, 0, NULL, 0)};
    char fields[12][16];
    cs_constraint c[12];
    for (int i = 0; i < 12; i++) {
        snprintf(fields[i], sizeof fields[i], "k%d", i);
        c[i] = (cs_constraint){fields[i], "==", "v", false};
    }
    cs_job j = job(1000, 1024, 0, c, 12);
    cs_fit_warnings w;
    cs_fit_check(&j, ms, 1, &w);
    cr_assert_eq(w.n, CS_FIT_WARN_MAX);
    cr_assert_eq(w.more, 12 - CS_FIT_WARN_MAX);
    cr_assert_str_eq(w.msg[0], "constraints[0] (k0 == v): no machine has attribute 'k0'");
}

/* A job whose options hold `tol` (n of them), encoded into buf. */
static cs_job tolerating(cs_toleration *tol, uint32_t n, msgpack_sbuffer *buf)
{
    cs_jobopts o;
    cs_jobopts_init(&o);
    o.tolerations = tol;
    o.ntolerations = n;
    msgpack_sbuffer_init(buf);
    cs_error err = {0};
    cr_assert_eq(cs_jobopts_encode(&o, buf, &err), CS_OK, "%s", err.msg);
    cs_job j = job(100, 64, 0, NULL, 0);
    j.extra = (const uint8_t *)buf->data;
    j.extra_len = (uint32_t)buf->size;
    return j;
}

Test(fitcheck, a_taint_on_every_machine_that_the_job_does_not_tolerate_is_named)
{
    cs_taint gpu[] = {{"dedicated", "gpu", CS_TAINT_NO_SCHEDULE}};
    cs_taint maint[] = {{"maintenance", "", CS_TAINT_NO_EXECUTE}};
    cs_taint soft[] = {{"slow", "", CS_TAINT_PREFER_NO_SCHEDULE}};
    cs_machine ms[] = {machine("m1", 4000, 4096, 0, NULL, 0), machine("m2", 4000, 4096, 0, NULL, 0)};
    ms[0].taints = gpu;
    ms[0].ntaints = 1;
    ms[1].taints = maint;
    ms[1].ntaints = 1;
    msgpack_sbuffer b;
    cs_job plain = tolerating(NULL, 0, &b);
    cs_fit_warnings w;
    cs_fit_check(&plain, ms, 2, &w);
    const char *want[] = {"tolerations: every machine up has a taint the job does not tolerate "
                          "(m1: dedicated=gpu:NoSchedule)"};
    expect(&w, 1, want);
    msgpack_sbuffer_destroy(&b);

    /* Tolerating one machine's taint is enough. */
    cs_toleration t[] = {{"dedicated", "gpu", CS_TOL_EQUAL, CS_TAINT_NO_SCHEDULE, false, 0}};
    cs_job ok = tolerating(t, 1, &b);
    cs_fit_check(&ok, ms, 2, &w);
    expect(&w, 0, NULL);
    msgpack_sbuffer_destroy(&b);

    /* A NoExecute toleration with tolerationSeconds lets no new task on
     * (the placer's rule), so it does not count here either. */
    cs_toleration limited[] = {{"maintenance", "", CS_TOL_EXISTS, CS_TAINT_NO_EXECUTE, true, 60}};
    cs_job brief = tolerating(limited, 1, &b);
    cs_fit_check(&brief, ms, 2, &w);
    expect(&w, 1, want);
    msgpack_sbuffer_destroy(&b);

    /* A PreferNoSchedule taint only lowers a score; a cordoned machine
     * without taints takes nothing new, so it does not help. */
    ms[1].taints = soft;
    plain = tolerating(NULL, 0, &b);
    cs_fit_check(&plain, ms, 2, &w);
    expect(&w, 0, NULL);
    ms[1].taints = NULL;
    ms[1].ntaints = 0;
    ms[1].admin = CS_ADMIN_CORDONED;
    cs_fit_check(&plain, ms, 2, &w);
    expect(&w, 1, want);
    msgpack_sbuffer_destroy(&b);
}
