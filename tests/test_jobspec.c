/* test_jobspec.c — unit: JSON job specs (native and Marathon) to job.submit
 * bodies (spec/jobspec.h). Every accepted spec is also checked through
 * the server's own decoder (cs_unpack_job_spec, cs_job_opts), so that what
 * is asserted is what cellstated would store. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spec/jobspec.h"
#include "cellstate/units.h"
#include "cellstate/mpcheck.h"
#include "proto/proto.h"

#define TESTDATA "../shared/testdata/marathon"

/* The body as cellstated decodes it: job (spec fields) and options. */
typedef struct decoded {
    msgpack_zone zone;
    cs_arena a;
    cs_job job;
    cs_jobopts opts;
} decoded;

static void decode_body(const cs_jobspec *s, decoded *d)
{
    msgpack_zone_init(&d->zone, 4096);
    cs_arena_init(&d->a);
    msgpack_object o;
    cs_error err = {0};
    cr_assert_eq(cs_mp_unpack(s->body.data, s->body.size, &d->zone, &o, CS_EPROTO, "body", &err),
                 CS_OK, "%s", err.msg);
    cr_assert_eq(cs_unpack_job_spec(&o, &d->a, &d->job, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_job_opts(&d->job, &d->a, &d->opts, &err), CS_OK, "%s", err.msg);
}

static void decoded_free(decoded *d)
{
    cs_arena_free(&d->a);
    msgpack_zone_destroy(&d->zone);
}

static void parse_ok(const char *json, cs_jobspec *s)
{
    cs_error err = {0};
    cr_assert_eq(cs_jobspec_parse(json, strlen(json), s, &err), CS_OK, "refused: %s\n%s", err.msg,
                 json);
}

/* The spec is refused with a message that starts with `path` and holds
 * `what`. */
static void expect_error(const char *json, const char *path, const char *what)
{
    cs_jobspec s;
    cs_error err = {0};
    int rc = cs_jobspec_parse(json, strlen(json), &s, &err);
    cr_assert_neq(rc, CS_OK, "accepted: %s", json);
    cr_assert_eq(strncmp(err.msg, path, strlen(path)), 0, "error '%s' does not start with '%s'",
                 err.msg, path);
    cr_assert(strstr(err.msg, what) != NULL, "error '%s' lacks '%s'", err.msg, what);
    cr_assert_eq(s.body.size, 0u);
    cs_jobspec_free(&s);
}

static bool has_warning(const cs_jobspec *s, const char *prefix)
{
    for (uint32_t i = 0; i < s->nwarnings; i++)
        if (strncmp(s->warnings[i], prefix, strlen(prefix)) == 0)
            return true;
    return false;
}

static void expect_warning(const cs_jobspec *s, const char *prefix)
{
    if (has_warning(s, prefix))
        return;
    for (uint32_t i = 0; i < s->nwarnings; i++)
        cr_log_error("warning: %s", s->warnings[i]);
    cr_assert_fail("no warning starts with '%s'", prefix);
}

static const char *testdata(const char *file, char *buf, size_t size)
{
    snprintf(buf, size, TESTDATA "/%s", file);
    if (access(buf, R_OK) != 0)
        cr_skip_test("%s is absent: the Marathon testdata lives in ../shared/testdata", buf);
    return buf;
}

/* ---- native: happy paths ---------------------------------------------------------- */

Test(native, minimal_spec_takes_the_defaults)
{
    cs_jobspec s;
    parse_ok("{\"name\": \"j\", \"cmd\": \"true\"}", &s);
    cr_assert_eq(s.format, CS_JOBSPEC_NATIVE);
    cr_assert_eq(s.nwarnings, 0u);
    decoded d;
    decode_body(&s, &d);
    cr_assert_str_eq(d.job.name, "j");
    cr_assert_eq(d.job.kind, CS_JOB_BATCH);
    cr_assert_eq(d.job.priority, 50);
    cr_assert_eq(d.job.count, 1u);
    cr_assert_eq(d.job.res.cpu, 0);
    cr_assert_eq(d.job.nports, 0u);
    cr_assert_eq(d.job.nconstraints, 0u);
    cr_assert_str_eq(d.job.cmd, "true");
    cr_assert_eq(d.job.extra_len, 0u, "default options encode to nothing");
    cr_assert_eq(d.opts.max_retries, CS_JOBOPTS_DEFAULT_MAX_RETRIES);
    decoded_free(&d);
    cs_jobspec_free(&s);
}

static const char every_field[] =
    "{\"name\": \"web\", \"kind\": \"service\", \"priority\": 120, \"count\": 4,"
    " \"cmd\": \"./web --port $PORT0\","
    " \"resources\": {\"cpu\": 0.25, \"mem\": \"1Gi\", \"disk\": 100},"
    " \"ports\": [0, 8080],"
    " \"constraints\": [[\"hostname\", \"UNIQUE\"], [\"rack\", \"GROUP_BY\", 3],"
    "   {\"field\": \"zone\", \"op\": \"==\", \"value\": \"a\", \"soft\": true},"
    "   {\"field\": \"job\", \"op\": \"ANTI_AFFINITY\", \"value\": \"db\"},"
    "   [\"hostname\", \"MAX_PER\", \"2\"], [\"os\", \"LIKE\", \"linux.*\"]],"
    " \"health_checks\": [{\"protocol\": \"HTTP\", \"path\": \"/health\", \"port_index\": 1,"
    "   \"grace_period\": \"1m\", \"interval\": 5, \"timeout\": \"1500ms\", \"max_failures\": 4},"
    "   {\"protocol\": \"COMMAND\", \"command\": \"test -f ready\"},"
    "   {\"protocol\": \"tcp\"}],"
    " \"update_strategy\": {\"minimum_health_capacity\": 0.5, \"maximum_over_capacity\": 0.25},"
    " \"env\": {\"ZED\": \"last\", \"ALPHA\": \"first\"},"
    " \"volumes\": [{\"path\": \"/data\", \"mode\": \"ro\"}, \"/scratch\", \"/logs:rw\", "
    "   \"/etc/app:ro\"],"
    " \"gang\": true, \"global\": true, \"max_retries\": 7, \"kill_grace\": \"10s\","
    " \"duration\": 2.5, \"backoff\": \"200ms\", \"backoff_factor\": 2,"
    " \"max_launch_delay\": \"30s\"}";

Test(native, every_field_reaches_the_wire)
{
    cs_jobspec s;
    parse_ok(every_field, &s);
    cr_assert_eq(s.nwarnings, 0u);
    decoded d;
    decode_body(&s, &d);
    const cs_job *j = &d.job;
    cr_assert_str_eq(j->name, "web");
    cr_assert_eq(j->kind, CS_JOB_SERVICE);
    cr_assert_eq(j->priority, 120);
    cr_assert_eq(j->count, 4u);
    cr_assert_str_eq(j->cmd, "./web --port $PORT0");
    cr_assert_eq(j->res.cpu, 250);
    cr_assert_eq(j->res.mem, 1024);
    cr_assert_eq(j->res.disk, 100);
    cr_assert_eq(j->nports, 2u);
    cr_assert_eq(j->ports[0], 0);
    cr_assert_eq(j->ports[1], 8080);
    cr_assert_eq(j->nconstraints, 6u);
    const struct {
        const char *field, *op, *value;
        bool soft;
    } want[] = {{"hostname", "UNIQUE", "", false},   {"rack", "GROUP_BY", "3", false},
                {"zone", "==", "a", true},           {"job", "ANTI_AFFINITY", "db", false},
                {"hostname", "MAX_PER", "2", false}, {"os", "LIKE", "linux.*", false}};
    for (size_t i = 0; i < 6; i++) {
        cr_assert_str_eq(j->constraints[i].field, want[i].field);
        cr_assert_str_eq(j->constraints[i].op, want[i].op);
        cr_assert_str_eq(j->constraints[i].value, want[i].value);
        cr_assert_eq(j->constraints[i].soft, want[i].soft, "constraint %zu", i);
    }
    const cs_jobopts *o = &d.opts;
    cr_assert_eq(o->nhealth, 3u);
    cr_assert_eq(o->health[0].proto, CS_HEALTH_HTTP);
    cr_assert_str_eq(o->health[0].path, "/health");
    cr_assert_eq(o->health[0].port_index, 1u);
    cr_assert_eq(o->health[0].grace_ms, 60000u);
    cr_assert_eq(o->health[0].interval_ms, 5000u);
    cr_assert_eq(o->health[0].timeout_ms, 1500u);
    cr_assert_eq(o->health[0].max_failures, 4u);
    cr_assert_eq(o->health[1].proto, CS_HEALTH_COMMAND);
    cr_assert_str_eq(o->health[1].command, "test -f ready");
    cr_assert_eq(o->health[1].grace_ms, CS_HEALTH_DEFAULT_GRACE_MS);
    cr_assert_eq(o->health[2].proto, CS_HEALTH_TCP);
    cr_assert_eq(o->min_health_pm, 500u);
    cr_assert_eq(o->max_over_pm, 250u);
    cr_assert_eq(o->nenv, 2u);
    cr_assert_str_eq(o->env[0].key, "ALPHA");
    cr_assert_str_eq(o->env[1].value, "last");
    cr_assert_eq(o->nvolumes, 4u);
    cr_assert_str_eq(o->volumes[0].path, "/data");
    cr_assert_not(o->volumes[0].rw);
    cr_assert_str_eq(o->volumes[1].path, "/etc/app");
    cr_assert_not(o->volumes[1].rw);
    cr_assert_str_eq(o->volumes[2].path, "/logs");
    cr_assert(o->volumes[2].rw);
    cr_assert_str_eq(o->volumes[3].path, "/scratch");
    cr_assert(o->volumes[3].rw, "a volume is rw unless it says ro");
    cr_assert(o->gang);
    cr_assert(o->global);
    cr_assert_eq(o->max_retries, 7u);
    cr_assert_eq(o->kill_grace_ms, 10000u);
    cr_assert_eq(o->duration_ms, 2500u);
    cr_assert_eq(o->backoff_ms, 200u);
    cr_assert_eq(o->backoff_factor_pm, 2000u);
    cr_assert_eq(o->max_delay_ms, 30000u);
    decoded_free(&d);
    cs_jobspec_free(&s);
}

Test(native, args_are_quoted_for_the_shell)
{
    cs_jobspec s;
    parse_ok("{\"name\": \"a\", \"args\": [\"echo\", \"it's\", \"$HOME\", \"a b\", \"\", "
             "\"x=1,y/z\"]}",
             &s);
    cr_assert_str_eq(s.job.cmd, "echo 'it'\\''s' '$HOME' 'a b' '' x=1,y/z");
    cs_jobspec_free(&s);
}

Test(native, cpu_in_cores_rounds_to_millicores)
{
    const struct {
        const char *cpu;
        int64_t milli;
    } cases[] = {{"0.1", 100},  {"2", 2000},   {"\"0.5\"", 500}, {"\"250m\"", 250},
                 {"0.0016", 2}, {"0.0004", 0}, {"1e-3", 1},      {"0", 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char json[128];
        snprintf(json, sizeof json,
                 "{\"name\": \"c\", \"cmd\": \"x\", \"resources\": {\"cpu\": %s}}", cases[i].cpu);
        cs_jobspec s;
        parse_ok(json, &s);
        cr_assert_eq(s.job.res.cpu, cases[i].milli, "cpu %s gave %lld", cases[i].cpu,
                     (long long)s.job.res.cpu);
        cs_jobspec_free(&s);
    }
}

Test(native, mem_and_disk_in_mib_round_up)
{
    cs_jobspec s;
    parse_ok("{\"name\": \"m\", \"cmd\": \"x\", \"resources\": {\"mem\": 0.5, \"disk\": \"2Gi\"}}",
             &s);
    cr_assert_eq(s.job.res.mem, 1);
    cr_assert_eq(s.job.res.disk, 2048);
    cs_jobspec_free(&s);
    parse_ok("{\"name\": \"m\", \"cmd\": \"x\", \"resources\": {\"mem\": \"512Mi\"}}", &s);
    cr_assert_eq(s.job.res.mem, 512);
    cs_jobspec_free(&s);
}

Test(native, constraint_spellings_are_normalised)
{
    cs_jobspec s;
    parse_ok(
        "{\"name\": \"n\", \"cmd\": \"x\", \"constraints\": [[\"@hostname\", \"unique\"],"
        " {\"field\": \"rack\", \"operator\": \"=\", \"value\": \"r1\"}, [\"zone\", \"CLUSTER\"]]}",
        &s);
    cr_assert_str_eq(s.job.constraints[0].field, "hostname");
    cr_assert_str_eq(s.job.constraints[0].op, "UNIQUE");
    cr_assert_str_eq(s.job.constraints[1].op, "==");
    cr_assert_str_eq(s.job.constraints[2].value, "");
    cs_jobspec_free(&s);
}

Test(native, read_only_fields_of_get_output_are_warned)
{
    cs_jobspec s;
    parse_ok("{\"name\": \"r\", \"cmd\": \"x\", \"id\": 7, \"state\": \"active\"}", &s);
    cr_assert_eq(s.format, CS_JOBSPEC_NATIVE, "name decides, even beside id");
    expect_warning(&s, "id: a read-only field");
    expect_warning(&s, "state: a read-only field");
    cs_jobspec_free(&s);
}

/* ---- native: errors name the field -------------------------------------------------- */

Test(native_errors, structure)
{
    expect_error("{\"name\": \"x\", \"cmd\": ", "line 1", "");
    expect_error("[1, 2]", "the spec", "not a JSON object");
    expect_error("{\"cmd\": \"x\"}", "neither 'name'", "Marathon");
    expect_error("{\"name\": \"x\", \"cmd\": \"a\", \"cmd\": \"b\"}", "line 1", "duplicate");
    expect_error("{\"name\": \"x\", \"cmd\": \"y\", \"resouces\": {}}", "resouces",
                 "unknown field");
    expect_error("{\"name\": \"x\"}", "cmd", "give cmd");
    expect_error("{\"name\": \"x\", \"cmd\": \"a\", \"args\": [\"b\"]}", "args", "one of them");
    expect_error("{\"name\": \"x\", \"args\": []}", "args", "is empty");
    expect_error("{\"name\": \"x\", \"args\": [\"a\", 3]}", "args[1]", "not a string");
}

Test(native_errors, scalars)
{
    expect_error("{\"name\": \"\", \"cmd\": \"x\"}", "name", "is empty");
    expect_error("{\"name\": \"a\\nb\", \"cmd\": \"x\"}", "name", "control character");
    expect_error("{\"name\": 5, \"cmd\": \"x\"}", "name", "is an integer, not a string");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"kind\": \"daemon\"}", "kind",
                 "batch or service");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"count\": \"many\"}", "count", "not a number");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"count\": -1}", "count", "out of range");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"count\": 1048577}", "count", "out of range");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"priority\": 1.5}", "priority",
                 "not a whole number");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"gang\": \"yes\"}", "gang", "true or false");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"max_retries\": -2}", "max_retries",
                 "out of range");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"kill_grace\": \"-1s\"}", "kill_grace",
                 "negative");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"duration\": \"5 s\"}", "duration",
                 "not a duration");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"duration\": 1e9}", "duration", "49 days");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"backoff_factor\": 0.5}", "backoff_factor",
                 "not between 1 and 1000");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"backoff\": \"-1s\"}", "backoff",
                 "negative");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"max_launch_delay\": \"soon\"}",
                 "max_launch_delay", "not a duration");
    char longname[400];
    memset(longname, 'a', sizeof longname);
    snprintf(longname, sizeof longname, "{\"name\": \"%0256d\", \"cmd\": \"x\"}", 0);
    expect_error(longname, "name", "longer than 255 bytes");
}

Test(native_errors, resources)
{
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"resources\": {\"cpu\": -1}}", "resources.cpu",
                 "negative");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"resources\": {\"cpu\": 1e300}}",
                 "resources.cpu", "more than the limit");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"resources\": {\"cpu\": \"NaN\"}}",
                 "resources.cpu", "not a number");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"resources\": {\"cpu\": \"0x10\"}}",
                 "resources.cpu", "not a number");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"resources\": {\"mem\": \"10XB\"}}",
                 "resources.mem", "not a size");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"resources\": {\"mem\": -5}}", "resources.mem",
                 "negative");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"resources\": {\"gpu\": 1}}", "resources.gpu",
                 "unknown resource");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"resources\": [1]}", "resources",
                 "not an object");
}

Test(native_errors, ports_and_constraints)
{
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"ports\": [0, 70000]}", "ports[1]",
                 "out of range");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"ports\": [80, 80]}", "ports[1]", "twice");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"ports\": 80}", "ports", "not an array");
    const char *pre = "{\"name\": \"x\", \"cmd\": \"x\", \"constraints\": [";
    const struct {
        const char *c, *path, *what;
    } cases[] = {
        {"[\"rack\", \"NEAR\", \"r1\"]]}", "constraints[0][1]", "not an operator"},
        {"[\"rack\"]]}", "constraints[0]", "not [field, operator]"},
        {"[\"hostname\", \"UNIQUE\", \"x\"]]}", "constraints[0]", "UNIQUE takes no value"},
        {"[\"hostname\", \"MAX_PER\", \"lots\"]]}", "constraints[0]", "MAX_PER takes"},
        {"[\"rack\", \"GROUP_BY\", \"0\"]]}", "constraints[0]", "GROUP_BY takes"},
        {"[\"os\", \"LIKE\", \"(\"]]}", "constraints[0]", "not a regular expression"},
        {"[\"os\", \"IS\"]]}", "constraints[0]", "IS needs a value"},
        {"[\"rack\", \"AFFINITY\", \"db\"]]}", "constraints[0]", "applies to field \"job\""},
        {"[\"job\", \"==\", \"db\"]]}", "constraints[0]", "AFFINITY or ANTI_AFFINITY"},
        {"{\"field\": \"a\", \"op\": \"==\", \"value\": \"b\", \"hard\": true}]}",
         "constraints[0].hard", "unknown field"},
        {"{\"field\": \"a\", \"op\": \"CLUSTER\", \"soft\": 1}]}", "constraints[0].soft",
         "true or false"},
        {"[\"a\", \"CLUSTER\"], 7]}", "constraints[1]", "is an integer"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char json[256];
        snprintf(json, sizeof json, "%s%s", pre, cases[i].c);
        expect_error(json, cases[i].path, cases[i].what);
    }
}

Test(native_errors, health_checks)
{
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"ports\": [0], \"health_checks\": "
                 "[{\"protocol\": \"HTTP\", \"port_index\": 1}]}",
                 "health_checks[0].port_index", "out of range: the job has 1 port");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"health_checks\": [{\"protocol\": \"TCP\"}]}",
                 "health_checks[0].port_index", "has 0 ports");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"ports\": [0], \"health_checks\": "
                 "[{\"protocol\": \"HTTPS\"}]}",
                 "health_checks[0].protocol", "not supported");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"health_checks\": [{\"protocol\": \"UDP\"}]}",
                 "health_checks[0].protocol", "not COMMAND, TCP or HTTP");
    expect_error(
        "{\"name\": \"x\", \"cmd\": \"x\", \"health_checks\": [{\"protocol\": \"COMMAND\"}]}",
        "health_checks[0]", "needs a command");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"ports\": [0], \"health_checks\": "
                 "[{\"path\": \"health\"}]}",
                 "health_checks[0].path", "does not start with /");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"ports\": [0], \"health_checks\": "
                 "[{\"interval\": 0}]}",
                 "health_checks[0].interval", "more than 0");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"health_checks\": [{\"protocol\": \"TCP\", "
                 "\"retries\": 3}]}",
                 "health_checks[0].retries", "unknown field");
}

Test(native_errors, env_volumes_update)
{
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"env\": {\"1X\": \"a\"}}", "env.1X",
                 "not a valid variable name");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"env\": {\"X\": 1}}", "env.X",
                 "is an integer, not a string");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"env\": [\"X=1\"]}", "env", "not an object");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"volumes\": [\"data\"]}", "volumes[0]",
                 "not an absolute path");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"volumes\": [\"/d\", {\"path\": \"/d\"}]}",
                 "volumes[1]", "given twice");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"volumes\": [{\"path\": \"/d\", \"mode\": "
                 "\"rx\"}]}",
                 "volumes[0].mode", "not ro or rw");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"update_strategy\": "
                 "{\"minimum_health_capacity\": 1.5}}",
                 "update_strategy.minimum_health_capacity", "between 0 and 1");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"update_strategy\": {\"max_surge\": 1}}",
                 "update_strategy.max_surge", "unknown field");
}

/* Tolerations in the native spec, Kubernetes' fields: they reach the
 * options, match as Kubernetes matches, and `get jobs -o json` gives them
 * back in a form that parses to the same. */
Test(native, tolerations_reach_the_options_and_match_as_kubernetes)
{
    const char *json =
        "{\"name\": \"t\", \"cmd\": \"x\", \"tolerations\": ["
        " {\"key\": \"dedicated\", \"operator\": \"Equal\", \"value\": \"gpu\","
        "  \"effect\": \"NoSchedule\"},"
        " {\"key\": \"maintenance\", \"operator\": \"Exists\", \"effect\": \"NoExecute\","
        "  \"tolerationSeconds\": 30},"
        " {\"key\": \"spot\", \"value\": \"\"},"
        " {\"operator\": \"Exists\", \"effect\": \"PreferNoSchedule\"}]}";
    cs_jobspec s;
    parse_ok(json, &s);
    decoded d;
    decode_body(&s, &d);
    const cs_jobopts *o = &d.opts;
    cr_assert_eq(o->ntolerations, 4u);
    const cs_toleration *t = o->tolerations;
    cr_assert_str_eq(t[0].key, "dedicated");
    cr_assert_eq(t[0].op, CS_TOL_EQUAL);
    cr_assert_eq(t[1].op, CS_TOL_EXISTS);
    cr_assert(t[1].has_seconds && t[1].seconds == 30u);
    cr_assert_eq(t[2].op, CS_TOL_EQUAL, "Equal is the default operator");
    cr_assert_eq(t[2].effect, CS_TOL_ANY_EFFECT, "no effect: every effect");
    /* Kubernetes' ToleratesTaint. */
    cr_assert(cs_toleration_matches(&t[0], "dedicated", "gpu", CS_TAINT_NO_SCHEDULE));
    cr_assert_not(cs_toleration_matches(&t[0], "dedicated", "cpu", CS_TAINT_NO_SCHEDULE));
    cr_assert_not(cs_toleration_matches(&t[0], "dedicated", "gpu", CS_TAINT_NO_EXECUTE));
    cr_assert(cs_toleration_matches(&t[1], "maintenance", "anything", CS_TAINT_NO_EXECUTE));
    cr_assert_not(cs_toleration_matches(&t[1], "other", "", CS_TAINT_NO_EXECUTE));
    cr_assert(cs_toleration_matches(&t[2], "spot", "", CS_TAINT_NO_EXECUTE));
    cr_assert_not(cs_toleration_matches(&t[2], "spot", "x", CS_TAINT_NO_SCHEDULE));
    cr_assert(cs_toleration_matches(&t[3], "anything", "v", CS_TAINT_PREFER_NO_SCHEDULE));
    cr_assert_not(cs_toleration_matches(&t[3], "anything", "v", CS_TAINT_NO_SCHEDULE));
    /* Back to JSON and in again: the same options. */
    json_t *back;
    cs_error err = {0};
    cr_assert_eq(cs_jobspec_to_json(&d.job, o, &back, &err), CS_OK, "%s", err.msg);
    char *text = json_dumps(back, 0);
    cs_jobspec s2;
    parse_ok(text, &s2);
    decoded d2;
    decode_body(&s2, &d2);
    cr_assert_eq(d2.job.extra_len, d.job.extra_len);
    cr_assert_eq(memcmp(d2.job.extra, d.job.extra, d.job.extra_len), 0, "%s", text);
    free(text);
    json_decref(back);
    decoded_free(&d2);
    cs_jobspec_free(&s2);
    decoded_free(&d);
    cs_jobspec_free(&s);
}

Test(native_errors, tolerations)
{
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"tolerations\": {}}", "tolerations",
                 "not an array");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"tolerations\": [{\"key\": \"k\","
                 " \"operator\": \"In\"}]}",
                 "tolerations[0].operator", "'In' is not Equal or Exists");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"tolerations\": [{\"key\": \"k\","
                 " \"effect\": \"NoSchedul\"}]}",
                 "tolerations[0].effect", "not NoSchedule, PreferNoSchedule or NoExecute");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"tolerations\": [{\"value\": \"v\"}]}",
                 "tolerations[0]", "only with operator Exists");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"tolerations\": [{\"key\": \"k\","
                 " \"operator\": \"Exists\", \"value\": \"v\"}]}",
                 "tolerations[0]", "Exists takes no value");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"tolerations\": [{\"key\": \"k\","
                 " \"effect\": \"NoSchedule\", \"tolerationSeconds\": 5}]}",
                 "tolerations[0]", "NoExecute only");
    expect_error("{\"name\": \"x\", \"cmd\": \"x\", \"tolerations\": [{\"key\": \"k\","
                 " \"colour\": 1}]}",
                 "tolerations[0].colour", "unknown field");
}

/* ---- Marathon ---------------------------------------------------------------------- */

Test(marathon, numbers_as_strings_and_defaults)
{
    cs_jobspec s;
    parse_ok("{\"id\": \"/prod/web\", \"cmd\": \"./web\", \"cpus\": \"0.5\", \"instances\": \"3\","
             " \"mem\": \"64\"}",
             &s);
    cr_assert_eq(s.format, CS_JOBSPEC_MARATHON);
    decoded d;
    decode_body(&s, &d);
    cr_assert_str_eq(d.job.name, "prod/web");
    cr_assert_eq(d.job.kind, CS_JOB_SERVICE);
    cr_assert_eq(d.job.count, 3u);
    cr_assert_eq(d.job.res.cpu, 500);
    cr_assert_eq(d.job.res.mem, 64);
    cr_assert_eq(d.job.nports, 1u, "Marathon gives every app one port by default");
    cr_assert_eq(d.job.ports[0], 0);
    decoded_free(&d);
    cs_jobspec_free(&s);
    parse_ok("{\"id\": \"bare\", \"cmd\": \"x\", \"ports\": []}", &s);
    cr_assert_eq(s.job.res.cpu, 1000, "Marathon's default cpus is 1");
    cr_assert_eq(s.job.res.mem, 128, "Marathon's default mem is 128");
    cr_assert_eq(s.job.nports, 0u);
    cs_jobspec_free(&s);
}

Test(marathon, app_json_is_accepted_with_warnings)
{
    char path[256];
    cs_jobspec s;
    cs_error err = {0};
    cr_assert_eq(cs_jobspec_load(testdata("app.json", path, sizeof path), &s, &err), CS_OK, "%s",
                 err.msg);
    decoded d;
    decode_body(&s, &d);
    const cs_job *j = &d.job;
    cr_assert_str_eq(j->name, "foo");
    cr_assert_eq(j->kind, CS_JOB_SERVICE);
    cr_assert_eq(j->count, 2u);
    cr_assert_str_eq(j->cmd, "sleep 1000", "cmd wins over args");
    cr_assert_eq(j->res.cpu, 100);
    cr_assert_eq(j->res.mem, 16);
    cr_assert_eq(j->res.disk, 0);
    cr_assert_eq(j->nports, 1u);
    cr_assert_eq(j->ports[0], 0);
    cr_assert_eq(j->nconstraints, 1u);
    cr_assert_str_eq(j->constraints[0].field, "hostname");
    cr_assert_str_eq(j->constraints[0].op, "LIKE");
    cr_assert_str_eq(j->constraints[0].value, "srv2.*");
    const cs_jobopts *o = &d.opts;
    cr_assert_eq(o->nhealth, 1u);
    cr_assert_eq(o->health[0].proto, CS_HEALTH_HTTP);
    cr_assert_str_eq(o->health[0].path, "/");
    cr_assert_eq(o->health[0].grace_ms, 300000u);
    cr_assert_eq(o->health[0].interval_ms, 20000u);
    cr_assert_eq(o->health[0].timeout_ms, 20000u);
    cr_assert_eq(o->health[0].max_failures, 3u);
    cr_assert_eq(o->min_health_pm, 1000u);
    cr_assert_eq(o->max_over_pm, 1000u);
    cr_assert_eq(o->nenv, 2u);
    cr_assert_str_eq(o->env[0].key, "XPS1");
    cr_assert_str_eq(o->env[0].value, "Test");
    cr_assert_eq(o->nvolumes, 1u);
    cr_assert_str_eq(o->volumes[0].path, "/hdd/tools/docker/registry");
    cr_assert(o->volumes[0].rw);
    /* Its back-off is Marathon's default, taken as it is, not warned about. */
    cr_assert_eq(o->backoff_ms, 1000u);
    cr_assert_eq(o->backoff_factor_pm, 1150u);
    cr_assert_eq(o->max_delay_ms, 3600000u);
    cr_assert_not(has_warning(&s, "backoff"));
    cr_assert_not(has_warning(&s, "maxLaunchDelaySeconds"));
    const char *warned[] = {"acceptedResourceRoles",
                            "args",
                            "container.docker.image",
                            "container.docker.network",
                            "container.docker.parameters",
                            "container.docker.portMappings[0].containerPort",
                            "container.docker.portMappings[0].servicePort",
                            "container.docker.portMappings[0].name",
                            "container.type",
                            "container.volumes[0].containerPath",
                            "dependencies",
                            "labels",
                            "readinessChecks",
                            "ipAddress",
                            "portDefinitions: ignored",
                            "ports: ignored",
                            "fetch",
                            "user"};
    for (size_t i = 0; i < sizeof warned / sizeof warned[0]; i++)
        expect_warning(&s, warned[i]);
    cr_assert_not(has_warning(&s, "executor"), "an empty executor asks for nothing");
    cr_assert_not(has_warning(&s, "requirePorts"));
    decoded_free(&d);
    cs_jobspec_free(&s);
}

Test(marathon, readiness_and_health_app_is_accepted)
{
    char path[256];
    cs_jobspec s;
    cs_error err = {0};
    cr_assert_eq(
        cs_jobspec_load(testdata("readiness-and-health-app.json", path, sizeof path), &s, &err),
        CS_OK, "%s", err.msg);
    cr_assert_str_eq(s.job.name, "readiness-and-health-app");
    cr_assert_eq(s.job.res.cpu, 500);
    cr_assert_eq(s.job.res.mem, 128);
    cr_assert_eq(s.job.count, 1u);
    cr_assert_eq(s.job.nports, 1u);
    cr_assert_eq(s.opts.health[0].max_failures, 0u);
    cr_assert_eq(s.opts.health[0].grace_ms, 10000u);
    cr_assert_eq(s.opts.health[0].interval_ms, 2000u);
    cr_assert_eq(s.opts.min_health_pm, 0u);
    cr_assert_eq(s.opts.max_over_pm, 0u);
    expect_warning(&s, "readinessChecks: ignored");
    expect_warning(&s, "portDefinitions[0].name: ignored");
    cr_assert_eq(s.nwarnings, 2u);
    cs_jobspec_free(&s);
}

Test(marathon, nginx_without_cmd_is_refused)
{
    char path[256];
    cs_jobspec s;
    cs_error err = {0};
    int rc = cs_jobspec_load(testdata("nginx.json", path, sizeof path), &s, &err);
    cr_assert_eq(rc, CS_EINVAL);
    cr_assert(strstr(err.msg, "nginx.json: cmd: the app has neither cmd nor args") != NULL, "%s",
              err.msg);
    cr_assert(strstr(err.msg, "container image") != NULL, "%s", err.msg);
    cs_jobspec_free(&s);
}

Test(marathon, require_ports_decides_fixed_or_dynamic)
{
    cs_jobspec s;
    parse_ok("{\"id\": \"p\", \"cmd\": \"x\", \"ports\": [8080, 0]}", &s);
    cr_assert_eq(s.job.ports[0], 0, "a service port without requirePorts is dynamic");
    expect_warning(&s, "ports[0]: 8080 is a service port");
    cs_jobspec_free(&s);
    parse_ok("{\"id\": \"p\", \"cmd\": \"x\", \"requirePorts\": true, \"portDefinitions\": "
             "[{\"port\": 8080}, {\"port\": 0}], \"healthChecks\": [{\"protocol\": \"TCP\", "
             "\"port\": 8080}]}",
             &s);
    cr_assert_eq(s.job.ports[0], 8080);
    cr_assert_eq(s.job.ports[1], 0);
    cr_assert_eq(s.opts.health[0].port_index, 0u);
    cr_assert_eq(s.nwarnings, 0u);
    cs_jobspec_free(&s);
}

Test(marathon, health_protocols_mapped_or_refused)
{
    cs_jobspec s;
    parse_ok("{\"id\": \"h\", \"cmd\": \"x\", \"healthChecks\": [{\"protocol\": \"MESOS_HTTP\"}, "
             "{\"protocol\": \"COMMAND\", \"command\": {\"value\": \"true\"}}]}",
             &s);
    cr_assert_eq(s.opts.health[0].proto, CS_HEALTH_HTTP);
    expect_warning(&s, "healthChecks[0].protocol: MESOS_HTTP is run as HTTP");
    cr_assert_str_eq(s.opts.health[1].command, "true");
    cs_jobspec_free(&s);
    expect_error("{\"id\": \"h\", \"cmd\": \"x\", \"healthChecks\": [{\"protocol\": \"HTTPS\"}]}",
                 "healthChecks[0].protocol", "HTTPS is not supported");
    expect_error("{\"id\": \"h\", \"cmd\": \"x\", \"healthChecks\": [{\"protocol\": "
                 "\"MESOS_HTTPS\"}]}",
                 "healthChecks[0].protocol", "not supported");
    expect_error("{\"id\": \"h\", \"cmd\": \"x\", \"healthChecks\": [{\"portIndex\": 1}]}",
                 "healthChecks[0].portIndex", "1 is out of range: the app has 1 port");
    expect_error("{\"id\": \"h\", \"cmd\": \"x\", \"healthChecks\": [{\"port\": 9}]}",
                 "healthChecks[0].port", "not one of the app's fixed ports");
    expect_error("{\"id\": \"h\", \"cmd\": \"x\", \"healthChecks\": [{\"intervalSeconds\": "
                 "\"often\"}]}",
                 "healthChecks[0].intervalSeconds", "not a number");
}

Test(marathon, errors_name_the_field)
{
    expect_error("{\"id\": \"/a\"}", "cmd", "neither cmd nor args");
    expect_error("{\"id\": \"/a\", \"cmd\": \"x\", \"instances\": \"abc\"}", "instances",
                 "not a number");
    expect_error("{\"id\": \"/a\", \"cmd\": \"x\", \"cpus\": -0.5}", "cpus", "negative");
    expect_error("{\"id\": \"/a//b\", \"cmd\": \"x\"}", "id", "empty");
    expect_error("{\"id\": \"/\", \"cmd\": \"x\"}", "id", "names no app");
    expect_error("{\"id\": \"/g\", \"apps\": [{\"id\": \"a\"}]}", "apps", "group");
    expect_error("{\"id\": \"/a\", \"cmd\": \"x\", \"constraints\": [[\"hostname\", \"NEAR\"]]}",
                 "constraints[0][1]", "not an operator");
    expect_error("{\"id\": \"/a\", \"cmd\": \"x\", \"ports\": [1], \"portDefinitions\": "
                 "[{\"port\": 2}], \"requirePorts\": true}",
                 "ports", "disagrees with portDefinitions");
    expect_error("{\"id\": \"/a\", \"cmd\": \"x\", \"upgradeStrategy\": "
                 "{\"minimumHealthCapacity\": 2}}",
                 "upgradeStrategy.minimumHealthCapacity", "between 0 and 1");
    expect_error("{\"id\": \"/a\", \"cmd\": \"x\", \"taskKillGracePeriodSeconds\": -3}",
                 "taskKillGracePeriodSeconds", "negative");
}

Test(marathon, ignored_parts_are_warned_by_name)
{
    cs_jobspec s;
    parse_ok("{\"id\": \"w\", \"args\": [\"run\"], \"env\": {\"PW\": {\"secret\": \"s1\"}, "
             "\"OK\": \"1\"}, \"container\": {\"type\": \"MESOS\", \"volumes\": "
             "[{\"containerPath\": \"data\", \"persistent\": {\"size\": 10}, \"mode\": \"RW\"}]},"
             " \"someFutureField\": 1, \"cmd\": null, \"taskKillGracePeriodSeconds\": \"2.5\"}",
             &s);
    cr_assert_str_eq(s.job.cmd, "run", "null means not set");
    cr_assert_eq(s.opts.nenv, 1u);
    cr_assert_eq(s.opts.nvolumes, 0u);
    cr_assert_eq(s.opts.kill_grace_ms, 2500u);
    expect_warning(&s, "env.PW: a secret reference");
    expect_warning(&s, "container.volumes[0]: ignored");
    expect_warning(&s, "someFutureField: is not a Marathon field");
    cr_assert_not(has_warning(&s, "container.type"), "MESOS needs no container");
    cs_jobspec_free(&s);
}

/* ---- examples/ and the round trip ------------------------------------------------------ */

static void load_example(const char *file, cs_jobspec *s)
{
    cs_error err = {0};
    cr_assert_eq(cs_jobspec_load(file, s, &err), CS_OK, "%s", err.msg);
}

Test(examples, batch)
{
    cs_jobspec s;
    load_example("examples/batch.json", &s);
    cr_assert_eq(s.job.kind, CS_JOB_BATCH);
    cr_assert_eq(s.job.count, 200u);
    cr_assert_eq(s.job.res.cpu, 100);
    cr_assert_eq(s.opts.duration_ms, 500u);
    cr_assert_eq(s.nwarnings, 0u);
    cs_jobspec_free(&s);
}

Test(examples, web)
{
    cs_jobspec s;
    load_example("examples/web.json", &s);
    cr_assert_eq(s.job.kind, CS_JOB_SERVICE);
    cr_assert_eq(s.job.nports, 1u);
    cr_assert_str_eq(s.job.constraints[0].field, "hostname");
    cr_assert_str_eq(s.job.constraints[0].op, "UNIQUE");
    cr_assert_eq(s.opts.health[0].proto, CS_HEALTH_HTTP);
    cr_assert(strstr(s.job.cmd, "$PORT0") != NULL);
    cr_assert_eq(s.nwarnings, 0u);
    cs_jobspec_free(&s);
}

Test(examples, marathon_app)
{
    cs_jobspec s;
    load_example("examples/marathon-app.json", &s);
    cr_assert_eq(s.format, CS_JOBSPEC_MARATHON);
    cr_assert_str_eq(s.job.name, "examples/hello-marathon");
    cr_assert_eq(s.job.count, 2u);
    cr_assert_eq(s.job.res.cpu, 200);
    cr_assert_eq(s.opts.kill_grace_ms, 3000u);
    expect_warning(&s, "labels: ignored");
    cr_assert_eq(s.nwarnings, 1u);
    cs_jobspec_free(&s);
}

/* to_json is the inverse: converting its output again gives the same body. */
static void round_trip(const char *json)
{
    cs_jobspec a, b;
    parse_ok(json, &a);
    json_t *j = NULL;
    cs_error err = {0};
    cr_assert_eq(cs_jobspec_to_json(&a.job, &a.opts, &j, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_jobspec_from_json(j, &b, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(b.format, CS_JOBSPEC_NATIVE);
    cr_assert_eq(a.body.size, b.body.size);
    cr_assert_eq(memcmp(a.body.data, b.body.data, a.body.size), 0, "bodies differ");
    json_decref(j);
    cs_jobspec_free(&a);
    cs_jobspec_free(&b);
}

/* How the agent holds a task to its cpu (agent/isolate.h): a share unless
 * the job asks for a cap; the option exists only when it is a cap, so that
 * every other job's options bytes stay as they were. */
Test(native, cpu_limit_is_a_share_by_default_or_a_hard_cap)
{
    const char *const specs[] = {"{\"name\": \"j\", \"cmd\": \"x\", \"cpu_limit\": \"hard\"}",
                                 "{\"name\": \"j\", \"cmd\": \"x\", \"cpu_limit\": \"share\"}",
                                 "{\"id\": \"/j\", \"cmd\": \"x\", \"cpus\": 0.5}"};
    for (int i = 0; i < 3; i++) {
        cs_jobspec s;
        parse_ok(specs[i], &s);
        decoded d;
        decode_body(&s, &d);
        cr_assert_eq(d.opts.cpu_hard, i == 0, "%s", specs[i]);
        if (i > 0)
            cr_assert_eq(d.job.extra_len, 0u, "a share is the default: no options bytes");
        decoded_free(&d);
        cs_jobspec_free(&s);
    }
    expect_error("{\"name\": \"j\", \"cmd\": \"x\", \"cpu_limit\": \"max\"}", "cpu_limit",
                 "not \"hard\" or \"share\"");
    expect_error("{\"name\": \"j\", \"cmd\": \"x\", \"cpu_limit\": true}", "cpu_limit",
                 "not \"hard\" or \"share\"");
}

Test(roundtrip, native_and_marathon_specs)
{
    round_trip("{\"name\": \"j\", \"cmd\": \"x\", \"cpu_limit\": \"hard\"}");
    round_trip(every_field);
    round_trip("{\"name\": \"j\", \"cmd\": \"true\"}");
    round_trip("{\"id\": \"/a/b\", \"cmd\": \"x\", \"cpus\": 0.333, \"healthChecks\": "
               "[{\"protocol\": \"COMMAND\", \"command\": {\"value\": \"true\"}}]}");
}

/* ---- helpers ------------------------------------------------------------------------ */

Test(helpers, durations)
{
    const struct {
        const char *text;
        uint32_t ms;
    } ok[] = {{"1m30s", 90000}, {"500ms", 500}, {"2.5", 2500},         {"2h", 7200000},
              {"1.5s", 1500},   {"0", 0},       {"1h1m1s1ms", 3661001}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint32_t ms = 1;
        cs_error err = {0};
        cr_assert_eq(cs_duration_parse_ms(ok[i].text, &ms, &err), CS_OK, "%s: %s", ok[i].text,
                     err.msg);
        cr_assert_eq(ms, ok[i].ms, "%s gave %u", ok[i].text, ms);
    }
    const char *bad[] = {"", "s", "5x", "5 s", "-1", "1m-5s", "inf", "nan", "50d", "1200h"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint32_t ms;
        cs_error err = {0};
        cr_assert_eq(cs_duration_parse_ms(bad[i], &ms, &err), CS_EINVAL, "'%s' accepted", bad[i]);
    }
}

Test(helpers, marathon_names)
{
    char out[CS_NAME_MAX + 1];
    cs_error err = {0};
    cr_assert_eq(cs_jobspec_marathon_name("/prod/web/api", out, sizeof out, &err), CS_OK);
    cr_assert_str_eq(out, "prod/web/api");
    cr_assert_eq(cs_jobspec_marathon_name("nginx", out, sizeof out, &err), CS_OK);
    cr_assert_str_eq(out, "nginx");
    cr_assert_eq(cs_jobspec_marathon_name("/a/../b", out, sizeof out, &err), CS_EINVAL);
    cr_assert_eq(cs_jobspec_marathon_name("/a/", out, sizeof out, &err), CS_EINVAL);
    char longid[300];
    memset(longid, 'x', sizeof longid);
    longid[0] = '/';
    longid[sizeof longid - 1] = '\0';
    cr_assert_eq(cs_jobspec_marathon_name(longid, out, sizeof out, &err), CS_EINVAL);
    cr_assert(strstr(err.msg, "255") != NULL, "%s", err.msg);
}
