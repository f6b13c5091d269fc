/* test_proto.c — records as maps (proto/proto.h): what cs_pack_* sends,
 * cs_unpack_* reads back whole; a missing or mistyped key is named.
 *
 * Unit tier: no store, no process.
 */
#include <criterion/criterion.h>

#include <string.h>

#include "proto/proto.h"

typedef struct packed {
    msgpack_sbuffer buf;
    msgpack_zone zone;
    msgpack_object obj;
} packed;

static void pack_begin(packed *p, msgpack_packer *pk)
{
    msgpack_sbuffer_init(&p->buf);
    msgpack_packer_init(pk, &p->buf, msgpack_sbuffer_write);
}

static void pack_end(packed *p)
{
    msgpack_zone_init(&p->zone, 1024);
    cr_assert_eq(msgpack_unpack(p->buf.data, p->buf.size, NULL, &p->zone, &p->obj),
                 MSGPACK_UNPACK_SUCCESS);
}

static void packed_free(packed *p)
{
    msgpack_zone_destroy(&p->zone);
    msgpack_sbuffer_destroy(&p->buf);
}

Test(proto, machine_map_round_trip)
{
    cs_attr attrs[] = {{"rack", "r1"}, {"zone", "z"}};
    uint16_t ports[] = {31000, 31007};
    cs_machine m = {.id = 9, .name = "m9", .attrs = attrs, .nattrs = 2,
                    .capacity = {4000, 8192, 100000}, .port_lo = 31000, .port_hi = 32000,
                    .allocated = {1500, 2048, 0}, .ports = ports, .nports = 2, .ntasks = 2,
                    .state = CS_MACHINE_DRAINING, .seq = 77, .version = 78};
    packed p;
    msgpack_packer pk;
    pack_begin(&p, &pk);
    cr_assert_eq(cs_pack_machine(&pk, &m), CS_OK);
    pack_end(&p);
    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};
    cs_machine d;
    cr_assert_eq(cs_unpack_machine(&p.obj, &a, &d, &err), CS_OK, "%s", err.msg);
    cr_expect_eq(d.id, 9);
    cr_expect_str_eq(d.name, "m9");
    cr_expect_eq(d.nattrs, 2);
    cr_expect_str_eq(d.attrs[1].value, "z");
    cr_expect_eq(d.capacity.mem, 8192);
    cr_expect_eq(d.allocated.cpu, 1500);
    cr_assert_eq(d.nports, 2);
    cr_expect_eq(d.ports[1], 31007);
    cr_expect_eq(d.ntasks, 2);
    cr_expect_eq(d.state, CS_MACHINE_DRAINING);
    cr_expect_eq(d.seq, 77);
    cr_expect_eq(d.version, 78);
    cs_arena_free(&a);
    packed_free(&p);
}

Test(proto, job_and_task_maps_round_trip)
{
    cs_constraint c[] = {{"hostname", "UNIQUE", "", false}, {"rack", "==", "r1", true}};
    uint16_t jports[] = {0, 8080};
    const uint8_t opts[] = {0x81, 0xa4, 'g', 'a', 'n', 'g', 0xc3};
    cs_job j = {.id = 3, .name = "web", .kind = CS_JOB_SERVICE, .state = CS_JOB_KILLED,
                .priority = -5, .count = 4, .res = {500, 256, 10}, .ports = jports, .nports = 2,
                .constraints = c, .nconstraints = 2, .cmd = "serve", .extra = opts,
                .extra_len = sizeof opts, .spec_hash = 0xdeadbeef, .version = 12, .surge = 2};
    uint16_t tports[] = {31001, 8080};
    cs_task t = {.id = cs_task_id(3, 2), .job = 3, .index = 2, .state = CS_TASK_RUNNING,
                 .last_end = CS_TASK_LOST, .machine = 7, .res = {500, 256, 10}, .ports = tports,
                 .nports = 2, .attempts = 3, .exit_code = -1, .reason = "oom", .version = 13};
    packed pj, pt;
    msgpack_packer pk;
    pack_begin(&pj, &pk);
    cr_assert_eq(cs_pack_job(&pk, &j), CS_OK);
    pack_end(&pj);
    pack_begin(&pt, &pk);
    cr_assert_eq(cs_pack_task(&pk, &t), CS_OK);
    pack_end(&pt);

    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};
    cs_job dj;
    cr_assert_eq(cs_unpack_job(&pj.obj, &a, &dj, &err), CS_OK, "%s", err.msg);
    cr_expect_eq(dj.id, 3);
    cr_expect_eq(dj.kind, CS_JOB_SERVICE);
    cr_expect_eq(dj.state, CS_JOB_KILLED);
    cr_expect_eq(dj.priority, -5);
    cr_expect_eq(dj.nconstraints, 2);
    cr_expect(dj.constraints[1].soft);
    cr_expect_eq(dj.extra_len, sizeof opts);
    cr_expect(memcmp(dj.extra, opts, sizeof opts) == 0);
    cr_expect_eq(dj.spec_hash, 0xdeadbeef);
    cr_expect_eq(dj.version, 12);
    cr_expect_eq(dj.surge, 2);

    cs_task dt;
    cr_assert_eq(cs_unpack_task(&pt.obj, &a, &dt, &err), CS_OK, "%s", err.msg);
    cr_expect_eq(dt.id, t.id);
    cr_expect_eq(dt.index, 2);
    cr_expect_eq(dt.state, CS_TASK_RUNNING);
    cr_expect_eq(dt.last_end, CS_TASK_LOST);
    cr_expect_eq(dt.machine, 7);
    cr_expect_eq(dt.nports, 2);
    cr_expect_eq(dt.ports[0], 31001);
    cr_expect_eq(dt.attempts, 3);
    cr_expect_eq(dt.exit_code, -1);
    cr_expect_str_eq(dt.reason, "oom");
    cs_arena_free(&a);
    packed_free(&pj);
    packed_free(&pt);
}

Test(proto, bad_record_maps_are_named)
{
    /* A task map whose id does not match its job and index, then one
     * missing `attempts`. */
    cs_task t = {.id = cs_task_id(3, 2), .job = 3, .index = 2, .reason = ""};
    packed p;
    msgpack_packer pk;
    pack_begin(&p, &pk);
    t.index = 1;
    cr_assert_eq(cs_pack_task(&pk, &t), CS_OK);
    pack_end(&p);
    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};
    cs_task d;
    cr_expect_eq(cs_unpack_task(&p.obj, &a, &d, &err), CS_EPROTO);
    cr_expect(strstr(err.msg, "does not match") != NULL, "%s", err.msg);
    packed_free(&p);

    pack_begin(&p, &pk);
    msgpack_pack_map(&pk, 1);
    cs_pack_kv_u64(&pk, "id", 1);
    pack_end(&p);
    cs_machine m;
    cr_expect_neq(cs_unpack_machine(&p.obj, &a, &m, &err), CS_OK);
    cr_expect(strstr(err.msg, "name") != NULL, "%s", err.msg);
    cs_job j;
    cr_expect_neq(cs_unpack_job(&p.obj, &a, &j, &err), CS_OK);
    cr_expect(strstr(err.msg, "name") != NULL, "%s", err.msg);
    packed_free(&p);
    cs_arena_free(&a);
}

/* The task map as msgpack's packer writes it, key by key: what
 * cs_pack_task's one-buffer encoding must equal byte for byte. */
static void pack_task_reference(msgpack_packer *pk, const cs_task *t)
{
    cr_assert_eq(msgpack_pack_map(pk, 14), 0);
    cs_pack_kv_u64(pk, "id", t->id);
    cs_pack_kv_u64(pk, "job", t->job);
    cs_pack_kv_u64(pk, "index", t->index);
    cs_pack_kv_str(pk, "state", cs_task_state_name(t->state));
    cs_pack_kv_str(pk, "last_end", cs_task_state_name(t->last_end));
    cs_pack_kv_u64(pk, "machine", t->machine);
    cs_pack_kv_res(pk, "resources", &t->res);
    cs_pack_str(pk, "ports");
    msgpack_pack_array(pk, t->nports);
    for (uint32_t i = 0; i < t->nports; i++)
        msgpack_pack_uint16(pk, t->ports[i]);
    cs_pack_kv_u64(pk, "attempts", t->attempts);
    cs_pack_kv_i64(pk, "exit_code", t->exit_code);
    cs_pack_kv_str(pk, "reason", t->reason);
    cs_pack_kv_str(pk, "health", cs_task_health_name(t->health));
    cs_pack_kv_u64(pk, "spec", t->spec);
    cs_pack_kv_u64(pk, "version", t->version);
}

Test(proto, task_map_bytes_equal_the_packers)
{
    /* Every width of every integer, negative exit codes, reasons around
     * each string form's limit, port lists around fixarray's. */
    static const uint64_t u[] = {0, 1, 127, 128, 255, 256, 65535, 65536, UINT32_MAX,
                                 (uint64_t)UINT32_MAX + 1, UINT64_MAX};
    static const int32_t codes[] = {0, -1, -32, -33, -128, -129, -32768, -32769, INT32_MIN,
                                    1, 200, INT32_MAX};
    static const size_t rlens[] = {0, 31, 32, 255, 256, CS_REASON_MAX};
    static const uint32_t nports[] = {0, 1, 15, 16, CS_PORTS_PER_TASK_MAX};
    char reason[CS_REASON_MAX + 1];
    uint16_t ports[CS_PORTS_PER_TASK_MAX];
    for (uint32_t i = 0; i < CS_PORTS_PER_TASK_MAX; i++)
        ports[i] = (uint16_t)(i * 1021 + 7);
    for (size_t k = 0; k < 64; k++) {
        size_t rl = rlens[k % 6];
        memset(reason, 'a' + (int)(k % 26), rl);
        reason[rl] = '\0';
        cs_task t = {.id = u[k % 11], .job = u[(k + 3) % 11], .index = (uint32_t)(k * 4099),
                     .state = (uint8_t)(k % CS_TASK_STATE_COUNT),
                     .last_end = (uint8_t)((k + 5) % CS_TASK_STATE_COUNT),
                     .machine = u[(k + 7) % 11], .res = {(int64_t)(u[k % 9] >> 24), INT64_C(1) << (k % 40),
                                                         (int64_t)k * 1000},
                     .ports = ports, .nports = nports[k % 5], .attempts = (uint32_t)u[(k + 1) % 9],
                     .exit_code = codes[k % 12], .reason = reason,
                     .health = (uint8_t)(k % CS_TASK_HEALTH_COUNT), .spec = u[(k + 9) % 11],
                     .version = u[(k + 5) % 11]};
        msgpack_sbuffer a, b;
        msgpack_sbuffer_init(&a);
        msgpack_sbuffer_init(&b);
        msgpack_packer pa, pb;
        msgpack_packer_init(&pa, &a, msgpack_sbuffer_write);
        msgpack_packer_init(&pb, &b, msgpack_sbuffer_write);
        cr_assert_eq(cs_pack_task(&pa, &t), CS_OK);
        pack_task_reference(&pb, &t);
        cr_assert_eq(a.size, b.size, "case %zu: %zu bytes, the packer writes %zu", k, a.size,
                     b.size);
        cr_assert_arr_eq(a.data, b.data, a.size, "case %zu: bytes differ", k);
        msgpack_sbuffer_destroy(&a);
        msgpack_sbuffer_destroy(&b);
    }
}
