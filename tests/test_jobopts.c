/* test_jobopts.c — a job's options (cellstate/jobopts.h): canonical
 * encoding, strict decoding, and the errors that name the option.
 *
 * Unit tier: no store, no process.
 */
#include <criterion/criterion.h>

#include <string.h>

#include "cellstate/jobopts.h"

static void encode(cs_jobopts *o, msgpack_sbuffer *buf)
{
    cs_error err = {0};
    msgpack_sbuffer_init(buf);
    cr_assert_eq(cs_jobopts_encode(o, buf, &err), CS_OK, "%s", err.msg);
}

Test(jobopts, defaults_encode_to_nothing_and_decode_from_nothing)
{
    cs_jobopts o;
    cs_jobopts_init(&o);
    msgpack_sbuffer buf;
    encode(&o, &buf);
    cr_expect_eq(buf.size, 0, "default options must encode to no bytes, got %zu", buf.size);
    msgpack_sbuffer_destroy(&buf);

    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};
    cs_jobopts d;
    cr_assert_eq(cs_jobopts_decode(NULL, 0, &a, &d, &err), CS_OK);
    cr_expect_eq(d.min_health_pm, 1000);
    cr_expect_eq(d.max_over_pm, 1000);
    cr_expect_eq(d.max_retries, CS_JOBOPTS_DEFAULT_MAX_RETRIES);
    cr_expect_eq(d.kill_grace_ms, CS_JOBOPTS_DEFAULT_KILL_GRACE_MS);
    cr_expect_eq(d.nhealth + d.nenv + d.nvolumes, 0);
    cr_expect(!d.gang && !d.global && !d.cpu_hard);
    cs_arena_free(&a);
}

Test(jobopts, round_trip_and_canonical_order)
{
    cs_attr env[] = {{"ZED", "1"}, {"ALPHA", "two words"}};
    cs_health h[2];
    cs_health_init(&h[0], CS_HEALTH_HTTP);
    h[0].path = "/health";
    h[0].port_index = 1;
    h[0].grace_ms = 1000;
    cs_health_init(&h[1], CS_HEALTH_COMMAND);
    h[1].command = "test -f ready";
    cs_volume v[] = {{"/var/data", true}, {"/etc/conf", false}};
    cs_jobopts o;
    cs_jobopts_init(&o);
    o.env = env;
    o.nenv = 2;
    o.health = h;
    o.nhealth = 2;
    o.min_health_pm = 500;
    o.max_over_pm = 0;
    o.volumes = v;
    o.nvolumes = 2;
    o.gang = true;
    o.global = true;
    o.cpu_hard = true;
    o.max_retries = 7;
    o.kill_grace_ms = 100;
    o.duration_ms = 2500;
    o.backoff_ms = 200;
    o.backoff_factor_pm = 2000;
    o.max_delay_ms = 60000;
    cs_toleration tol[] = {
        {"dedicated", "gpu", CS_TOL_EQUAL, CS_TAINT_NO_SCHEDULE, false, 0},
        {"", "", CS_TOL_EXISTS, CS_TOL_ANY_EFFECT, false, 0},
        {"maintenance", "", CS_TOL_EXISTS, CS_TAINT_NO_EXECUTE, true, 300},
    };
    o.tolerations = tol;
    o.ntolerations = 3;
    msgpack_sbuffer b1;
    encode(&o, &b1);
    /* Sorted in place: env by name, volumes by path. */
    cr_expect_str_eq(o.env[0].key, "ALPHA");
    cr_expect_str_eq(o.volumes[0].path, "/etc/conf");

    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};
    cs_jobopts d;
    cr_assert_eq(cs_jobopts_decode(b1.data, b1.size, &a, &d, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(d.nenv, 2);
    cr_expect_str_eq(d.env[1].key, "ZED");
    cr_expect_str_eq(d.env[0].value, "two words");
    cr_assert_eq(d.nhealth, 2);
    cr_expect_eq(d.health[0].proto, CS_HEALTH_HTTP);
    cr_expect_str_eq(d.health[0].path, "/health");
    cr_expect_eq(d.health[0].port_index, 1);
    cr_expect_eq(d.health[0].grace_ms, 1000);
    cr_expect_eq(d.health[0].interval_ms, CS_HEALTH_DEFAULT_INTERVAL_MS);
    cr_expect_str_eq(d.health[1].command, "test -f ready");
    cr_expect_eq(d.min_health_pm, 500);
    cr_expect_eq(d.max_over_pm, 0);
    cr_assert_eq(d.nvolumes, 2);
    cr_expect(d.volumes[1].rw);
    cr_expect(!d.volumes[0].rw);
    cr_expect(d.gang && d.global);
    cr_expect(d.cpu_hard);
    cr_expect_eq(d.max_retries, 7);
    cr_expect_eq(d.kill_grace_ms, 100);
    cr_expect_eq(d.duration_ms, 2500);
    cr_expect_eq(d.backoff_ms, 200);
    cr_expect_eq(d.backoff_factor_pm, 2000);
    cr_expect_eq(d.max_delay_ms, 60000);
    cr_assert_eq(d.ntolerations, 3, "in the order given");
    cr_expect_str_eq(d.tolerations[0].value, "gpu");
    cr_expect_eq(d.tolerations[1].effect, CS_TOL_ANY_EFFECT);
    cr_expect_eq(d.tolerations[1].op, CS_TOL_EXISTS);
    cr_expect(d.tolerations[2].has_seconds && d.tolerations[2].seconds == 300u);
    cr_expect(!d.tolerations[0].has_seconds);

    /* Re-encoding the decoded struct gives the same bytes: canonical. */
    msgpack_sbuffer b2;
    encode(&d, &b2);
    cr_assert_eq(b1.size, b2.size);
    cr_expect(memcmp(b1.data, b2.data, b1.size) == 0);
    msgpack_sbuffer_destroy(&b1);
    msgpack_sbuffer_destroy(&b2);
    cs_arena_free(&a);
}

/* Options built by hand (as a client in another language would send them). */
static int decode_map(void (*build)(msgpack_packer *), char *msg, size_t msglen)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    build(&pk);
    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};
    cs_jobopts d;
    int rc = cs_jobopts_decode(buf.data, buf.size, &a, &d, &err);
    snprintf(msg, msglen, "%s", err.msg);
    cs_arena_free(&a);
    msgpack_sbuffer_destroy(&buf);
    return rc;
}

static void key(msgpack_packer *pk, const char *k)
{
    cs_pack_str(pk, k);
}

static void unknown_key(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    key(pk, "colour");
    msgpack_pack_true(pk);
}
static void min_health_too_big(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    key(pk, "min_health");
    msgpack_pack_uint32(pk, 1001);
}
static void gang_not_bool(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    key(pk, "gang");
    msgpack_pack_uint32(pk, 1);
}
static void health_bad_proto(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    key(pk, "health");
    msgpack_pack_array(pk, 1);
    msgpack_pack_map(pk, 1);
    key(pk, "protocol");
    key(pk, "MESOS_HTTP");
}
static void health_command_without_command(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    key(pk, "health");
    msgpack_pack_array(pk, 1);
    msgpack_pack_map(pk, 1);
    key(pk, "protocol");
    key(pk, "COMMAND");
}
static void volume_relative(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    key(pk, "volumes");
    msgpack_pack_array(pk, 1);
    msgpack_pack_map(pk, 2);
    key(pk, "path");
    key(pk, "data");
    key(pk, "mode");
    key(pk, "rw");
}
static void env_bad_name(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    key(pk, "env");
    msgpack_pack_map(pk, 1);
    key(pk, "1BAD");
    key(pk, "x");
}
static void backoff_factor_below_one(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    key(pk, "backoff_factor");
    msgpack_pack_uint32(pk, 999);
}
/* One toleration map of `n` string pairs (key, value, ...). */
static void toleration(msgpack_packer *pk, uint32_t n, const char *const *kv)
{
    msgpack_pack_map(pk, 1);
    key(pk, "tolerations");
    msgpack_pack_array(pk, 1);
    msgpack_pack_map(pk, n);
    for (uint32_t i = 0; i < 2 * n; i++)
        key(pk, kv[i]);
}
static void tol_empty_key_equal(msgpack_packer *pk)
{
    toleration(pk, 2, (const char *const[]){"key", "", "operator", "Equal"});
}
static void tol_exists_with_value(msgpack_packer *pk)
{
    toleration(pk, 3, (const char *const[]){"key", "k", "operator", "Exists", "value", "v"});
}
static void tol_bad_effect(msgpack_packer *pk)
{
    toleration(pk, 2, (const char *const[]){"key", "k", "effect", "Never"});
}
static void tol_seconds_not_no_execute(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    key(pk, "tolerations");
    msgpack_pack_array(pk, 1);
    msgpack_pack_map(pk, 3);
    key(pk, "key");
    key(pk, "k");
    key(pk, "effect");
    key(pk, "NoSchedule");
    key(pk, "seconds");
    msgpack_pack_uint32(pk, 5);
}
static void not_a_map(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 0);
}

Test(jobopts, bad_options_are_named)
{
    struct {
        void (*build)(msgpack_packer *);
        const char *needle;
    } cases[] = {
        {unknown_key, "unknown key 'colour'"},
        {min_health_too_big, "min_health"},
        {gang_not_bool, "gang is not a boolean"},
        {health_bad_proto, "'MESOS_HTTP' is not COMMAND, TCP or HTTP"},
        {health_command_without_command, "needs a command"},
        {volume_relative, "not absolute"},
        {env_bad_name, "'1BAD' is not a valid variable name"},
        {backoff_factor_below_one, "backoff_factor 999 permille"},
        {not_a_map, "not a map"},
        {tol_empty_key_equal, "an empty key needs operator Exists"},
        {tol_exists_with_value, "operator Exists takes no value"},
        {tol_bad_effect, "'Never' is not NoSchedule, PreferNoSchedule or NoExecute"},
        {tol_seconds_not_no_execute, "seconds apply to effect NoExecute only"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char msg[256];
        cr_expect_eq(decode_map(cases[i].build, msg, sizeof msg), CS_EINVAL, "case %zu", i);
        cr_expect(strstr(msg, cases[i].needle) != NULL, "case %zu: '%s' lacks '%s'", i, msg,
                  cases[i].needle);
    }
}

Test(jobopts, truncated_bytes_are_refused)
{
    cs_jobopts o;
    cs_jobopts_init(&o);
    o.gang = true;
    o.duration_ms = 10;
    msgpack_sbuffer buf;
    encode(&o, &buf);
    cs_arena a;
    cs_arena_init(&a);
    for (size_t cut = 1; cut < buf.size; cut++) {
        cs_error err = {0};
        cs_jobopts d;
        cr_expect_eq(cs_jobopts_decode(buf.data, cut, &a, &d, &err), CS_EINVAL, "cut %zu", cut);
    }
    cs_arena_free(&a);
    msgpack_sbuffer_destroy(&buf);
}
