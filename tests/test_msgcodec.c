/* test_msgcodec.c — one codec per message (proto/msg.h and the files it
 * lists): each encoder writes the bytes the hand-written packers it
 * replaced wrote (copied here as they were, or pinned in hex), each
 * decoder reads back what its encoder wrote, and malformed bodies are
 * refused naming the field. A seeded randomized tier round-trips many
 * values of each message.
 *
 * Unit tier: no store, no process. Bodies go through cs_mp_unpack, the
 * bounds check the server runs before any decoder.
 */
#include <criterion/criterion.h>

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cellstate/rng.h"
#include "proto/agentmsg.h"
#include "proto/commitmsg.h"
#include "proto/jobmsg.h"
#include "proto/membermsg.h"
#include "proto/msg.h"
#include "proto/proto.h"
#include "proto/readmsg.h"
#include "proto/schedreport.h"
#include "proto/sync.h"
#include "spec/jobspec.h"

/* ---- helpers ------------------------------------------------------------------ */

typedef struct body {
    msgpack_sbuffer buf;
    msgpack_packer pk;
    msgpack_zone zone;
    msgpack_object obj;
} body;

static void body_init(body *b)
{
    msgpack_sbuffer_init(&b->buf);
    msgpack_packer_init(&b->pk, &b->buf, msgpack_sbuffer_write);
    msgpack_zone_init(&b->zone, 1024);
}

static void body_free(body *b)
{
    msgpack_zone_destroy(&b->zone);
    msgpack_sbuffer_destroy(&b->buf);
}

/* Unpack what was packed into b, through the bounds check. */
static const msgpack_object *body_obj(body *b)
{
    cs_error err = {0};
    cr_assert_eq(cs_mp_unpack(b->buf.data, b->buf.size, &b->zone, &b->obj, CS_EPROTO, "body",
                              &err),
                 CS_OK, "%s", err.msg);
    return &b->obj;
}

static void expect_same(const body *old, const body *now, const char *what)
{
    cr_assert_eq(now->buf.size, old->buf.size, "%s: %zu bytes, the old packer wrote %zu", what,
                 now->buf.size, old->buf.size);
    cr_assert(memcmp(now->buf.data, old->buf.data, old->buf.size) == 0,
              "%s: bytes differ from the old packer's", what);
}

static void hex(const body *b, char *out, size_t size)
{
    size_t k = 0;
    for (size_t i = 0; i < b->buf.size && k + 3 < size; i++)
        k += (size_t)snprintf(out + k, size - k, "%s%02x", i ? " " : "", (uint8_t)b->buf.data[i]);
    out[k] = '\0';
}

/* The body `json` written as msgpack (a tiny converter for malformed
 * bodies: objects, arrays, strings, integers, booleans). */
static void pack_json(msgpack_packer *pk, const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        msgpack_pack_map(pk, (uint32_t)json_object_size(j));
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v) {
            msgpack_pack_str(pk, strlen(k));
            msgpack_pack_str_body(pk, k, strlen(k));
            pack_json(pk, v);
        }
        break;
    }
    case JSON_ARRAY:
        msgpack_pack_array(pk, (uint32_t)json_array_size(j));
        for (size_t i = 0; i < json_array_size(j); i++)
            pack_json(pk, json_array_get(j, i));
        break;
    case JSON_STRING:
        msgpack_pack_str(pk, json_string_length(j));
        msgpack_pack_str_body(pk, json_string_value(j), json_string_length(j));
        break;
    case JSON_INTEGER:
        if (json_integer_value(j) < 0)
            msgpack_pack_int64(pk, json_integer_value(j));
        else
            msgpack_pack_uint64(pk, (uint64_t)json_integer_value(j));
        break;
    case JSON_TRUE: msgpack_pack_true(pk); break;
    case JSON_FALSE: msgpack_pack_false(pk); break;
    default: msgpack_pack_nil(pk); break;
    }
}

static const msgpack_object *json_obj(body *b, const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
    cr_assert_not_null(j, "%s: %s", text, je.text);
    b->buf.size = 0;
    pack_json(&b->pk, j);
    json_decref(j);
    return body_obj(b);
}

typedef int (*decode_fn)(const msgpack_object *o, void *out, cs_arena *a, cs_error *err);

/* Decoding `text` fails with `code` and a message containing `want`. */
static void refused(decode_fn fn, void *out, const char *text, int code, const char *want)
{
    body b;
    body_init(&b);
    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};
    int rc = fn(json_obj(&b, text), out, &a, &err);
    cr_expect_eq(rc, code, "%s: code %d (%s), want %d", text, rc, err.msg, code);
    cr_expect(strstr(err.msg, want) != NULL, "%s: '%s' does not say '%s'", text, err.msg, want);
    cs_arena_free(&a);
    body_free(&b);
}

#define REFUSED(fn, type, text, code, want)                                                      \
    do {                                                                                          \
        type out_;                                                                                \
        refused((decode_fn)(fn), &out_, text, code, want);                                        \
    } while (0)

/* ---- pinned bytes: docs/protocol.md §2 ---------------------------------------------- */

Test(msgcodec, heartbeat_bytes_are_those_of_protocol_md)
{
    body b;
    body_init(&b);
    cs_heartbeat_req q = {cs_ref_name("m1")};
    cr_assert_eq(cs_msg_begin(&b.pk, CS_MSG_HEARTBEAT, 7), CS_OK);
    cr_assert_eq(cs_heartbeat_req_encode(&b.pk, &q), CS_OK);
    char h[256];
    hex(&b, h, sizeof h);
    cr_expect_str_eq(h, "94 01 02 07 81 a7 6d 61 63 68 69 6e 65 a2 6d 31");
    b.buf.size = 0;
    cs_heartbeat_reply r = {3, CS_MACHINE_UP, 42};
    cr_assert_eq(cs_msg_begin(&b.pk, CS_MSG_HEARTBEAT, 7), CS_OK);
    cr_assert_eq(cs_heartbeat_reply_encode(&b.pk, &r), CS_OK);
    hex(&b, h, sizeof h);
    cr_expect_str_eq(h, "94 01 02 07 83 a7 6d 61 63 68 69 6e 65 03 a5 73 74 61 74 65 a2 75 70 "
                        "a7 76 65 72 73 69 6f 6e 2a");
    body_free(&b);
}

Test(msgcodec, commit_reply_bytes_are_pinned)
{
    /* protocol.md §5.8's example reply. */
    uint8_t claims[] = {0};
    cs_commit_reply r = {.version = 58, .committed = 1, .claims = claims, .nclaims = 1};
    body b;
    body_init(&b);
    cr_assert_eq(cs_commit_reply_encode(&b.pk, &r), CS_OK);
    char h[512];
    hex(&b, h, sizeof h);
    cr_expect_str_eq(h, "87 a7 76 65 72 73 69 6f 6e 3a a8 72 65 70 6c 61 79 65 64 c2 a9 63 6f 6d "
                        "6d 69 74 74 65 64 01 a9 63 6f 6e 66 6c 69 63 74 73 00 a6 63 6c 61 69 6d "
                        "73 91 00 a8 72 65 6c 65 61 73 65 73 90 a8 70 72 65 65 6d 70 74 73 90");
    body_free(&b);
}

/* Replication's optional fields (docs/protocol.md §5.7-§5.9): absent they
 * leave the bytes as they were; set, they come last and read back. */
Test(msgcodec, min_index_and_index_are_sent_only_when_set)
{
    body b;
    body_init(&b);
    char h[512];
    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};
    /* sync: {"since": 5} as schedulers have always sent it, then with
     * "min_index": 42 after every other field */
    cs_sync_req s = {.since = 5}, sd;
    cr_assert_eq(cs_sync_req_encode(&b.pk, &s), CS_OK);
    hex(&b, h, sizeof h);
    cr_expect_str_eq(h, "81 a5 73 69 6e 63 65 05");
    b.buf.size = 0;
    s = (cs_sync_req){.since = 5, .compact = true, .min_index = 42};
    cr_assert_eq(cs_sync_req_encode(&b.pk, &s), CS_OK);
    hex(&b, h, sizeof h);
    cr_expect_str_eq(h, "83 a5 73 69 6e 63 65 05 a4 66 6f 72 6d a7 63 6f 6d 70 61 63 74 "
                        "a9 6d 69 6e 5f 69 6e 64 65 78 2a");
    cr_assert_eq(cs_sync_req_decode(body_obj(&b), &sd, &err), CS_OK, "%s", err.msg);
    cr_expect(sd.since == 5 && sd.compact && !sd.omit_running && sd.min_index == 42);
    /* poll: {"machine": 3, "since": 0, "wait_ms": 0, "min_index": 7} */
    b.buf.size = 0;
    cs_poll_req p = {.machine = cs_ref_id(3), .min_index = 7}, pd;
    cr_assert_eq(cs_poll_req_encode(&b.pk, &p), CS_OK);
    hex(&b, h, sizeof h);
    cr_expect_str_eq(h, "84 a7 6d 61 63 68 69 6e 65 03 a5 73 69 6e 63 65 00 a7 77 61 69 74 5f "
                        "6d 73 00 a9 6d 69 6e 5f 69 6e 64 65 78 07");
    cr_assert_eq(cs_poll_req_decode(body_obj(&b), &pd, &a, &err), CS_OK, "%s", err.msg);
    cr_expect(pd.machine.id == 3 && pd.min_index == 7);
    /* commit reply: §5.8's example plus "index": 300 (a uint16) */
    b.buf.size = 0;
    uint8_t claims[] = {0};
    cs_commit_reply r = {.version = 58, .committed = 1, .claims = claims, .nclaims = 1,
                         .index = 300}, rd;
    cr_assert_eq(cs_commit_reply_encode(&b.pk, &r), CS_OK);
    hex(&b, h, sizeof h);
    cr_expect_str_eq(h, "88 a7 76 65 72 73 69 6f 6e 3a a8 72 65 70 6c 61 79 65 64 c2 a9 63 6f 6d "
                        "6d 69 74 74 65 64 01 a9 63 6f 6e 66 6c 69 63 74 73 00 a6 63 6c 61 69 6d "
                        "73 91 00 a8 72 65 6c 65 61 73 65 73 90 a8 70 72 65 65 6d 70 74 73 90 "
                        "a5 69 6e 64 65 78 cd 01 2c");
    cr_assert_eq(cs_commit_reply_decode(body_obj(&b), &rd, &a, &err), CS_OK, "%s", err.msg);
    cr_expect(rd.version == 58 && rd.index == 300 && rd.nclaims == 1);
    /* absent: 0, as a single replica's reply reads */
    REFUSED(cs_commit_reply_decode, cs_commit_reply,
            "{\"version\": 1, \"replayed\": false, \"committed\": 0, \"conflicts\": 0, "
            "\"index\": \"300\", \"claims\": [], \"releases\": [], \"preempts\": []}",
            CS_EPROTO, "commit reply: field 'index' is not an unsigned integer");
    REFUSED(cs_poll_req_decode, cs_poll_req, "{\"machine\": 3, \"min_index\": -1}", CS_EPROTO,
            "field 'min_index' is not an unsigned integer");
    cs_arena_free(&a);
    body_free(&b);
}

/* The sync request has no arena: its refusals are checked here. */
Test(msgcodec, sync_request_refuses_a_min_index_of_another_type)
{
    body b;
    body_init(&b);
    cs_sync_req d;
    cs_error err = {0};
    cr_expect_eq(cs_sync_req_decode(json_obj(&b, "{\"since\": 1, \"min_index\": \"9\"}"), &d, &err),
                 CS_EPROTO);
    cr_expect_str_eq(err.msg, "field 'min_index' is not an unsigned integer");
    cr_expect_eq(cs_sync_req_decode(json_obj(&b, "{\"since\": 1}"), &d, &err), CS_OK);
    cr_expect_eq(d.min_index, 0);
    body_free(&b);
}

/* ---- the same bytes as the packers they replace ---------------------------------------- */

Test(msgcodec, register_is_the_agents_old_body)
{
    cs_attr attrs[] = {{"rack", "r1"}, {"zone", "a"}};
    cs_taint taints[] = {{"dedicated", "gpu", CS_TAINT_NO_SCHEDULE}};
    for (int url = 0; url < 2; url++) {
        cs_machine m = {.name = "m1", .attrs = attrs, .nattrs = 2, .taints = taints,
                        .ntaints = 1, .capacity = {2000, 2048, 0}, .port_lo = 31000,
                        .port_hi = 32000, .log_url = url ? "tcp://h:1" : ""};
        body old, now;
        body_init(&old);
        body_init(&now);
        /* agent/loop.c pack_register, as it was */
        msgpack_packer *pk = &old.pk;
        cr_assert(!(msgpack_pack_map(pk, url ? 7 : 6) || cs_pack_kv_str(pk, "name", m.name) ||
                    (url && cs_pack_kv_str(pk, "log_url", m.log_url)) ||
                    cs_pack_taints(pk, m.taints, m.ntaints) ||
                    cs_pack_kv_res(pk, "capacity", &m.capacity) ||
                    cs_pack_kv_u64(pk, "port_lo", m.port_lo) ||
                    cs_pack_kv_u64(pk, "port_hi", m.port_hi) || cs_pack_str(pk, "attrs") ||
                    msgpack_pack_map(pk, m.nattrs)));
        for (uint32_t i = 0; i < m.nattrs; i++)
            cs_pack_kv_str(pk, m.attrs[i].key, m.attrs[i].value);
        cr_assert_eq(cs_register_req_encode(&now.pk, &m), CS_OK);
        expect_same(&old, &now, "machine.register");
        cs_arena a;
        cs_arena_init(&a);
        cs_error err = {0};
        cs_machine d;
        cr_assert_eq(cs_register_req_decode(body_obj(&now), &d, &a, &err), CS_OK, "%s", err.msg);
        cr_expect_str_eq(d.name, "m1");
        cr_expect_str_eq(d.log_url, m.log_url);
        cr_expect_eq(d.nattrs, 2);
        cr_expect_eq(d.ntaints, 1);
        cr_expect_eq(d.port_hi, 32000);
        cr_expect_eq(d.state, CS_MACHINE_UP);
        cs_arena_free(&a);
        body_free(&old);
        body_free(&now);
    }
}

Test(msgcodec, a_registration_as_down_carries_its_state)
{
    cs_machine m = {.name = "m2", .capacity = {1000, 0, 0}, .state = CS_MACHINE_DOWN,
                    .log_url = ""};
    body b;
    body_init(&b);
    cr_assert_eq(cs_register_req_encode(&b.pk, &m), CS_OK);
    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};
    cs_machine d;
    cr_assert_eq(cs_register_req_decode(body_obj(&b), &d, &a, &err), CS_OK, "%s", err.msg);
    cr_expect_eq(d.state, CS_MACHINE_DOWN);
    cs_arena_free(&a);
    body_free(&b);
}

/* agent/loop.c pack_report, as it was: final = finished or failed. */
static void old_report(msgpack_packer *pk, const cs_task_report *r)
{
    bool final = r->state != CS_TASK_RUNNING;
    bool ok = r->state == CS_TASK_FINISHED;
    uint32_t n = final ? 5 : r->health != CS_TASK_HEALTH_UNKNOWN ? 4 : 3;
    msgpack_pack_map(pk, n);
    cs_pack_kv_u64(pk, "task", r->task);
    cs_pack_kv_u64(pk, "attempt", r->attempt);
    cs_pack_kv_str(pk, "state", !final ? "running" : ok ? "finished" : "failed");
    if (final) {
        cs_pack_kv_i64(pk, "exit_code", r->exit_code);
        cs_pack_kv_str(pk, "reason", ok ? "" : r->reason);
    }
    if (n == 4)
        cs_pack_kv_str(pk, "health",
                       r->health == CS_TASK_HEALTH_HEALTHY ? "healthy" : "unhealthy");
}

static const cs_task_report sample_reports[] = {
    {1048576, 1, CS_TASK_RUNNING, 0, NULL, CS_TASK_HEALTH_UNKNOWN},
    {1048577, 2, CS_TASK_RUNNING, 0, NULL, CS_TASK_HEALTH_HEALTHY},
    {1048578, 3, CS_TASK_RUNNING, 0, NULL, CS_TASK_HEALTH_UNHEALTHY},
    {1048579, 1, CS_TASK_FINISHED, 0, "", CS_TASK_HEALTH_UNKNOWN},
    {1048580, 7, CS_TASK_FAILED, -9, "killed by signal 9", CS_TASK_HEALTH_UNKNOWN},
};
#define NSAMPLE (sizeof sample_reports / sizeof *sample_reports)

Test(msgcodec, task_status_is_the_agents_old_body)
{
    body old, now;
    body_init(&old);
    body_init(&now);
    for (size_t i = 0; i < NSAMPLE; i++) {
        old.buf.size = now.buf.size = 0;
        old_report(&old.pk, &sample_reports[i]);
        cs_task_status_req q = {.reports = (cs_task_report *)&sample_reports[i], .n = 1};
        cr_assert_eq(cs_task_status_req_encode(&now.pk, &q), CS_OK);
        expect_same(&old, &now, "task.status");
    }
    old.buf.size = now.buf.size = 0;
    msgpack_pack_map(&old.pk, 1);
    cs_pack_str(&old.pk, "reports");
    msgpack_pack_array(&old.pk, NSAMPLE);
    for (size_t i = 0; i < NSAMPLE; i++)
        old_report(&old.pk, &sample_reports[i]);
    cs_task_status_req q = {.batch = true, .reports = (cs_task_report *)sample_reports,
                            .n = NSAMPLE};
    cr_assert_eq(cs_task_status_req_encode(&now.pk, &q), CS_OK);
    expect_same(&old, &now, "task.status batch");
    /* and back */
    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};
    cs_task_status_req d;
    cr_assert_eq(cs_task_status_req_decode(body_obj(&now), &d, &a, &err), CS_OK, "%s", err.msg);
    cr_assert(d.batch);
    cr_assert_eq(d.n, NSAMPLE);
    for (size_t i = 0; i < NSAMPLE; i++) {
        const cs_task_report *w = &sample_reports[i], *g = &d.reports[i];
        cr_expect_eq(d.codes[i], CS_OK, "%s", d.errors[i]);
        cr_expect_eq(g->task, w->task);
        cr_expect_eq(g->attempt, w->attempt);
        cr_expect_eq(g->state, w->state);
        cr_expect_eq(g->exit_code, w->exit_code);
        cr_expect_eq(g->health, w->health);
        cr_expect_str_eq(g->reason ? g->reason : "", w->reason ? w->reason : "");
    }
    cs_arena_free(&a);
    body_free(&old);
    body_free(&now);
}

Test(msgcodec, poll_request_is_the_agents_and_cellbenchs_old_body)
{
    body old, now;
    body_init(&old);
    body_init(&now);
    /* agent/loop.c poll_next */
    msgpack_pack_map(&old.pk, 5);
    cs_pack_kv_u64(&old.pk, "machine", 12);
    cs_pack_kv_u64(&old.pk, "since", 99);
    cs_pack_kv_u64(&old.pk, "wait_ms", 25000);
    cs_pack_str(&old.pk, "jobs");
    cs_pack_str(&old.pk, "once");
    cs_pack_str(&old.pk, "known");
    cs_pack_str(&old.pk, "short");
    cs_poll_req q = {cs_ref_id(12), 99, 25000, true, true, 0};
    cr_assert_eq(cs_poll_req_encode(&now.pk, &q), CS_OK);
    expect_same(&old, &now, "poll (agent)");
    /* tools/cellbench_poll.c */
    old.buf.size = now.buf.size = 0;
    msgpack_pack_map(&old.pk, 3);
    cs_pack_kv_u64(&old.pk, "machine", 12);
    cs_pack_kv_u64(&old.pk, "since", 0);
    cs_pack_kv_u64(&old.pk, "wait_ms", 30000);
    q = (cs_poll_req){cs_ref_id(12), 0, 30000, false, false, 0};
    cr_assert_eq(cs_poll_req_encode(&now.pk, &q), CS_OK);
    expect_same(&old, &now, "poll (cellbench)");
    body_free(&old);
    body_free(&now);
}

static cs_job sample_job(cs_id id, const char *name)
{
    static uint16_t ports[] = {0, 8080};
    static cs_constraint cons[] = {{"rack", "!=", "r2", false}};
    static const uint8_t opts[] = {0x81, 0xa6, 'g', 'l', 'o', 'b', 'a', 'l', 0xc3};
    return (cs_job){.id = id, .name = name, .kind = CS_JOB_SERVICE, .priority = 60, .count = 3,
                    .res = {500, 256, 10}, .ports = ports, .nports = 2, .constraints = cons,
                    .nconstraints = 1, .cmd = "./web --port $PORT0", .extra = opts,
                    .extra_len = sizeof opts, .spec_hash = 77, .version = 5, .note = "",
                    .submitted = 1700000000000ull};
}

static cs_task sample_task(cs_id job, uint32_t index, uint32_t attempts, uint64_t version)
{
    static uint16_t ports[] = {31000, 8080};
    return (cs_task){.id = (job << 20) | index, .job = job, .index = index,
                     .state = CS_TASK_ASSIGNED, .machine = 3, .res = {500, 256, 10},
                     .ports = ports, .nports = 2, .attempts = attempts, .reason = "",
                     .spec = 77, .version = version};
}

Test(msgcodec, poll_reply_is_the_servers_old_reply)
{
    cs_job jobs[2] = {sample_job(12, "web"), sample_job(14, "db")};
    cs_task tasks[3] = {sample_task(12, 0, 1, 50), sample_task(12, 1, 2, 61),
                        sample_task(14, 0, 1, 61)};
    bool shrt[3] = {true, false, false};
    body old, now;
    body_init(&old);
    body_init(&now);
    /* server.c pack_poll_compact / pack_poll_entry, as they were (the
     * jobs of the full entries only: 12 and 14) */
    msgpack_packer *pk = &old.pk;
    msgpack_pack_map(pk, 3);
    cs_pack_kv_u64(pk, "version", 61);
    cs_pack_str(pk, "jobs");
    msgpack_pack_array(pk, 2);
    cs_pack_job(pk, &jobs[0]);
    cs_pack_job(pk, &jobs[1]);
    cs_pack_str(pk, "tasks");
    msgpack_pack_array(pk, 3);
    msgpack_pack_array(pk, 2);
    msgpack_pack_uint64(pk, tasks[0].id);
    msgpack_pack_uint32(pk, tasks[0].attempts);
    for (int i = 1; i < 3; i++) {
        msgpack_pack_map(pk, 2);
        cs_pack_str(pk, "task");
        cs_pack_task(pk, &tasks[i]);
        cs_pack_kv_u64(pk, "job", tasks[i].job);
    }
    cs_poll_out out = {61, true, jobs, 2, tasks, shrt, 3};
    cr_assert_eq(cs_poll_reply_encode(&now.pk, &out), CS_OK);
    expect_same(&old, &now, "poll reply (once)");

    /* the default form: every entry embeds its job (reads.c pack_tasks) */
    old.buf.size = now.buf.size = 0;
    msgpack_pack_map(pk, 2);
    cs_pack_kv_u64(pk, "version", 61);
    cs_pack_str(pk, "tasks");
    msgpack_pack_array(pk, 3);
    for (int i = 0; i < 3; i++) {
        msgpack_pack_map(pk, 2);
        cs_pack_str(pk, "task");
        cs_pack_task(pk, &tasks[i]);
        cs_pack_str(pk, "job");
        cs_pack_job(pk, &jobs[i < 2 ? 0 : 1]);
    }
    out = (cs_poll_out){61, false, jobs, 2, tasks, NULL, 3};
    cr_assert_eq(cs_poll_reply_encode(&now.pk, &out), CS_OK);
    expect_same(&old, &now, "poll reply (each)");
    body_free(&old);
    body_free(&now);
}

Test(msgcodec, commit_reply_is_the_servers_old_reply)
{
    uint8_t claims[] = {0, 1, 11}, releases[] = {0}, preempts[] = {12, 0};
    cs_txn_result r = {.version = 901, .replayed = true, .nclaims = 3, .nreleases = 1,
                       .npreempts = 2, .claims = claims, .releases = releases,
                       .preempts = preempts, .committed = 1, .conflicts = 1};
    body old, now;
    body_init(&old);
    body_init(&now);
    msgpack_packer *pk = &old.pk;
    msgpack_pack_map(pk, 7);
    cs_pack_kv_u64(pk, "version", r.version);
    cs_pack_kv_bool(pk, "replayed", r.replayed);
    cs_pack_kv_u64(pk, "committed", r.committed);
    cs_pack_kv_u64(pk, "conflicts", r.conflicts);
    const char *keys[3] = {"claims", "releases", "preempts"};
    const uint8_t *lists[3] = {claims, releases, preempts};
    uint32_t ns[3] = {3, 1, 2};
    for (int k = 0; k < 3; k++) {
        cs_pack_str(pk, keys[k]);
        msgpack_pack_array(pk, ns[k]);
        for (uint32_t i = 0; i < ns[k]; i++)
            msgpack_pack_uint8(pk, lists[k][i]);
    }
    cs_commit_reply c = cs_commit_reply_of(&r);
    cr_assert_eq(cs_commit_reply_encode(&now.pk, &c), CS_OK);
    expect_same(&old, &now, "commit reply");

    /* read back as the result of a transaction of 3 claims, 1 release, 2 preemptions */
    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};
    cs_commit_reply d;
    cr_assert_eq(cs_commit_reply_decode(body_obj(&now), &d, &a, &err), CS_OK, "%s", err.msg);
    cr_expect_eq(d.version, 901);
    cr_expect(d.replayed);
    cs_txn t = {.nclaims = 3, .nreleases = 1, .npreempts = 2};
    cs_txn_result got;
    cs_txn_result_init(&got);
    cr_assert_eq(cs_commit_reply_result(&d, &t, &got, &err), CS_OK, "%s", err.msg);
    cr_expect_eq(got.committed, 1);
    cr_expect_eq(got.conflicts, 1, "the gang abort is not a conflict");
    cr_expect_eq(got.preempts[0], 12);
    t.nclaims = 4;
    cr_expect_eq(cs_commit_reply_result(&d, &t, &got, &err), CS_EPROTO);
    cr_expect_str_eq(err.msg, "commit reply: 'claims' is not 4 outcomes");
    cs_txn_result_free(&got);
    cs_arena_free(&a);
    body_free(&old);
    body_free(&now);
}

Test(msgcodec, job_requests_are_the_clients_old_bodies)
{
    body old, now;
    body_init(&old);
    body_init(&now);
    /* cellctl kill / end: {"job": name} */
    msgpack_pack_map(&old.pk, 1);
    cs_pack_kv_str(&old.pk, "job", "web");
    cs_job_ref_req k = {cs_ref_name("web")};
    cr_assert_eq(cs_job_ref_req_encode(&now.pk, &k), CS_OK);
    expect_same(&old, &now, "job.kill");
    /* cellctl scale: job, count */
    old.buf.size = now.buf.size = 0;
    msgpack_pack_map(&old.pk, 2);
    cs_pack_kv_str(&old.pk, "job", "web");
    cs_pack_kv_u64(&old.pk, "count", 5);
    cs_job_count_req s = {cs_ref_name("web"), 5};
    cr_assert_eq(cs_job_scale_req_encode(&now.pk, &s), CS_OK);
    expect_same(&old, &now, "job.scale");
    /* client.c cs_client_job_surge: job id, surge */
    old.buf.size = now.buf.size = 0;
    msgpack_pack_map(&old.pk, 2);
    cs_pack_kv_u64(&old.pk, "job", 9);
    cs_pack_kv_u64(&old.pk, "surge", 2);
    s = (cs_job_count_req){cs_ref_id(9), 2};
    cr_assert_eq(cs_job_surge_req_encode(&now.pk, &s), CS_OK);
    expect_same(&old, &now, "job.surge");
    /* schedulers' job.note: job id, note */
    old.buf.size = now.buf.size = 0;
    msgpack_pack_map(&old.pk, 2);
    cs_pack_kv_u64(&old.pk, "job", 9);
    cs_pack_kv_str(&old.pk, "note", "no machine fits");
    cs_job_note_req n = {cs_ref_id(9), "no machine fits"};
    cr_assert_eq(cs_job_note_req_encode(&now.pk, &n), CS_OK);
    expect_same(&old, &now, "job.note");
    /* cellctl drain: machine, admin, deadline_ms */
    for (int dl = 0; dl < 2; dl++) {
        old.buf.size = now.buf.size = 0;
        msgpack_pack_map(&old.pk, dl ? 3 : 2);
        cs_pack_kv_str(&old.pk, "machine", "m2");
        cs_pack_kv_str(&old.pk, "admin", dl ? "draining" : "cordoned");
        if (dl)
            cs_pack_kv_u64(&old.pk, "deadline_ms", 600000);
        cs_machine_admin_req m = {cs_ref_name("m2"), dl ? CS_ADMIN_DRAINING : CS_ADMIN_CORDONED,
                                  dl, dl ? 600000 : 0};
        cr_assert_eq(cs_machine_admin_req_encode(&now.pk, &m), CS_OK);
        expect_same(&old, &now, "machine.admin");
    }
    /* the admin reply (writer.c h_machine_admin) */
    old.buf.size = now.buf.size = 0;
    msgpack_pack_map(&old.pk, 4);
    cs_pack_kv_u64(&old.pk, "id", 1);
    cs_pack_kv_str(&old.pk, "admin", "draining");
    cs_pack_kv_u64(&old.pk, "drain_deadline", 1765012345678ull);
    cs_pack_kv_u64(&old.pk, "version", 42);
    cs_machine_admin_reply ar = {1, CS_ADMIN_DRAINING, 1765012345678ull, 42};
    cr_assert_eq(cs_machine_admin_reply_encode(&now.pk, &ar), CS_OK);
    expect_same(&old, &now, "machine.admin reply");
    body_free(&old);
    body_free(&now);
}

Test(msgcodec, job_spec_is_the_submit_body_spec_builds)
{
    static const char *const specs[] = {
        "{\"name\": \"web\", \"kind\": \"service\", \"count\": 3, \"resources\": {\"cpu\": 0.5, "
        "\"mem\": 256}, \"ports\": [0], \"constraints\": [[\"rack\", \"!=\", \"r2\"]], "
        "\"cmd\": \"./web\", \"env\": {\"MODE\": \"prod\"}, \"kill_grace\": \"3s\"}",
        "{\"name\": \"crunch\", \"count\": 10, \"resources\": {\"cpu\": 1, \"mem\": 64}, "
        "\"cmd\": \"true\"}",
    };
    for (size_t i = 0; i < sizeof specs / sizeof *specs; i++) {
        cs_jobspec s;
        cs_error err = {0};
        cr_assert_eq(cs_jobspec_parse(specs[i], strlen(specs[i]), &s, &err), CS_OK, "%s",
                     err.msg);
        body now;
        body_init(&now);
        cr_assert_eq(cs_job_submit_req_encode(&now.pk, &s.job), CS_OK);
        cr_assert_eq(now.buf.size, s.body.size, "spec %zu", i);
        cr_assert(memcmp(now.buf.data, s.body.data, s.body.size) == 0, "spec %zu", i);
        /* job.update wraps the same map: {"job": name, "spec": body} (cellctl update) */
        body old;
        body_init(&old);
        msgpack_pack_map(&old.pk, 2);
        cs_pack_kv_str(&old.pk, "job", s.job.name);
        cs_pack_str(&old.pk, "spec");
        msgpack_sbuffer_write(&old.buf, s.body.data, s.body.size);
        now.buf.size = 0;
        cs_job_update_req u = {cs_ref_name(s.job.name), s.job};
        cr_assert_eq(cs_job_update_req_encode(&now.pk, &u), CS_OK);
        expect_same(&old, &now, "job.update");
        cs_arena a;
        cs_arena_init(&a);
        cs_job_update_req d;
        cr_assert_eq(cs_job_update_req_decode(body_obj(&now), &d, &a, &err), CS_OK, "%s",
                     err.msg);
        cr_expect_str_eq(d.job.name, s.job.name);
        cr_expect_str_eq(d.spec.cmd, s.job.cmd);
        cr_expect_eq(d.spec.count, s.job.count);
        cr_expect_eq(d.spec.extra_len, s.job.extra_len);
        cs_arena_free(&a);
        body_free(&old);
        body_free(&now);
        cs_jobspec_free(&s);
    }
}

Test(msgcodec, logs_are_cellctls_and_the_agents_old_bodies)
{
    body old, now;
    body_init(&old);
    body_init(&now);
    for (int tail = 0; tail < 2; tail++) {
        old.buf.size = now.buf.size = 0;
        msgpack_pack_map(&old.pk, 5);
        cs_pack_kv_u64(&old.pk, "task", 1048576);
        cs_pack_kv_u64(&old.pk, "attempt", 2);
        cs_pack_kv_str(&old.pk, "stream", tail ? "stderr" : "stdout");
        cs_pack_kv_u64(&old.pk, "max", 65536);
        cs_pack_kv_u64(&old.pk, tail ? "tail" : "offset", tail ? 20 : 1234);
        cs_logs_req q = {1048576, 2, tail, tail ? 0 : 1234, tail ? 20 : 0, 65536};
        cr_assert_eq(cs_logs_req_encode(&now.pk, &q), CS_OK);
        expect_same(&old, &now, "task.logs");
        cs_logs_req d;
        cs_error err = {0};
        cr_assert_eq(cs_logs_req_decode(body_obj(&now), &d, NULL, &err), CS_OK, "%s", err.msg);
        cr_expect_eq(d.err_stream, q.err_stream);
        cr_expect_eq(d.tail, q.tail);
        cr_expect_eq(d.offset, q.offset);
        cr_expect_eq(d.max, q.max);
    }
    /* agent/logserve.c answer */
    old.buf.size = now.buf.size = 0;
    msgpack_pack_map(&old.pk, 4);
    cs_pack_kv_u64(&old.pk, "offset", 4);
    cs_pack_kv_u64(&old.pk, "size", 14);
    cs_pack_kv_u64(&old.pk, "next", 14);
    cs_pack_str(&old.pk, "data");
    msgpack_pack_bin(&old.pk, 10);
    msgpack_pack_bin_body(&old.pk, "two\nthree\n", 10);
    cs_logs_reply r = {4, 14, 14, "two\nthree\n", 10};
    cr_assert_eq(cs_logs_reply_encode(&now.pk, &r), CS_OK);
    expect_same(&old, &now, "task.logs reply");
    cs_logs_reply d;
    cs_error err = {0};
    cr_assert_eq(cs_logs_reply_decode(body_obj(&now), &d, NULL, &err), CS_OK, "%s", err.msg);
    cr_expect_eq(d.len, 10);
    cr_expect(memcmp(d.data, "two\nthree\n", 10) == 0);
    body_free(&old);
    body_free(&now);
}

Test(msgcodec, stats_head_and_table_are_the_servers_old_reply)
{
    cs_stats_reply st = {.version = 7, .machines = 3, .machines_up = 2, .jobs = 4,
                         .jobs_active = 1, .tasks = {1, 2, 3, 4, 5, 6, 7, 8},
                         .capacity = {6000, 6144, 0}, .allocated = {500, 256, 0},
                         .server = {10, 1, 5, 2, 1, 9, 8, 0, 3, 4096}, .workers = 1024};
    body old, now;
    body_init(&old);
    body_init(&now);
    /* reads.c srv_stats, as it was */
    msgpack_packer *pk = &old.pk;
    msgpack_pack_map(pk, 11);
    cs_pack_kv_u64(pk, "version", 7);
    cs_pack_kv_u64(pk, "machines", 3);
    cs_pack_kv_u64(pk, "machines_up", 2);
    cs_pack_kv_u64(pk, "jobs", 4);
    cs_pack_kv_u64(pk, "jobs_active", 1);
    cs_pack_str(pk, "tasks");
    msgpack_pack_map(pk, CS_TASK_STATE_COUNT);
    for (int i = 0; i < CS_TASK_STATE_COUNT; i++)
        cs_pack_kv_u64(pk, cs_task_state_name((uint8_t)i), (uint64_t)i + 1);
    cs_pack_kv_res(pk, "capacity", &st.capacity);
    cs_pack_kv_res(pk, "allocated", &st.allocated);
    cs_pack_str(pk, "server");
    msgpack_pack_map(pk, 10);
    const char *names[10] = {"requests", "errors", "writes", "commits", "commits_conflicted",
                             "claims", "claims_committed", "queued", "parked_polls",
                             "inflight_bytes"};
    uint64_t vals[10] = {10, 1, 5, 2, 1, 9, 8, 0, 3, 4096};
    for (int i = 0; i < 10; i++)
        cs_pack_kv_u64(pk, names[i], vals[i]);
    cs_pack_kv_u64(pk, "workers", 1024);
    cs_pack_str(pk, "schedulers");
    cr_assert_eq(cs_stats_reply_head(&now.pk, &st), CS_OK);
    expect_same(&old, &now, "stats head");

    /* the schedulers' entries: cs_sched_table_pack's bytes, decoded and
     * encoded again */
    cs_sched_table t;
    cs_sched_table_init(&t);
    cs_sched_report *r = calloc(1, sizeof *r);
    cs_error err = {0};
    snprintf(r->name, sizeof r->name, "batch-0");
    snprintf(r->kind, sizeof r->kind, "batch");
    snprintf(r->warning, sizeof r->warning, "policy: ignoring X");
    cr_assert_eq(cs_sched_report_add_uint(r, "txn_committed", 1870, &err), CS_OK);
    cr_assert_eq(cs_sched_report_add_float(r, "busyness", 0.31, &err), CS_OK);
    cr_assert_eq(cs_sched_table_put(&t, r, 1000, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_sched_table_pack(&t, 2200, pk), CS_OK);
    cs_arena a;
    cs_arena_init(&a);
    cs_stats_reply d;
    cr_assert_eq(cs_stats_reply_decode(body_obj(&old), &d, &a, &err), CS_OK, "%s", err.msg);
    cr_expect_eq(d.server.parked_polls, 3);
    cr_expect_eq(d.server.inflight_bytes, 4096);
    cr_expect_eq(d.tasks[CS_TASK_PREEMPTED], 8);
    cr_expect_eq(d.nscheds, 1);
    cr_expect_str_eq(d.scheds[0].name, "batch-0");
    cr_expect_str_eq(d.scheds[0].warning, "policy: ignoring X");
    cr_expect_eq(d.scheds[0].age_ms, 1200);
    now.buf.size = 0;
    cr_assert_eq(cs_stats_reply_encode(&now.pk, &d), CS_OK);
    expect_same(&old, &now, "stats");
    cs_arena_free(&a);
    cs_sched_table_free(&t);
    free(r);
    body_free(&old);
    body_free(&now);
}

Test(msgcodec, get_tasks_request_is_cellctls_old_body)
{
    body old, now;
    body_init(&old);
    body_init(&now);
    msgpack_pack_map(&old.pk, 3);
    cs_pack_kv_str(&old.pk, "job", "web");
    cs_pack_kv_str(&old.pk, "machine", "m1");
    cs_pack_kv_str(&old.pk, "state", "running");
    cs_get_tasks_req q = {true, true, cs_ref_name("web"), cs_ref_name("m1"), CS_TASK_RUNNING};
    cr_assert_eq(cs_get_tasks_req_encode(&now.pk, &q), CS_OK);
    expect_same(&old, &now, "get.tasks");
    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};
    cs_get_tasks_req d;
    cr_assert_eq(cs_get_tasks_req_decode(body_obj(&now), &d, &a, &err), CS_OK, "%s", err.msg);
    cr_expect(d.has_job && d.has_machine);
    cr_expect_str_eq(d.job.name, "web");
    cr_expect_eq(d.state, CS_TASK_RUNNING);
    now.buf.size = 0;
    q = (cs_get_tasks_req){.state = -1};
    cr_assert_eq(cs_get_tasks_req_encode(&now.pk, &q), CS_OK);
    cr_assert_eq(now.buf.size, 1, "no filter: {}");
    cr_assert_eq(cs_get_tasks_req_decode(body_obj(&now), &d, &a, &err), CS_OK);
    cr_expect(!d.has_job && !d.has_machine && d.state == -1);
    cs_arena_free(&a);
    body_free(&old);
    body_free(&now);
}

/* ---- round trips of the replies the readers decode ------------------------------------- */

Test(msgcodec, read_replies_are_the_servers_old_replies)
{
    cs_job job = sample_job(12, "web");
    cs_task tasks[2] = {sample_task(12, 0, 1, 50), sample_task(12, 1, 2, 61)};
    body old, now;
    body_init(&old);
    body_init(&now);
    /* reads.c srv_get_job and pack_tasks, as they were */
    msgpack_packer *pk = &old.pk;
    msgpack_pack_map(pk, 2);
    cs_pack_str(pk, "job");
    cs_pack_job(pk, &job);
    cs_pack_str(pk, "tasks");
    msgpack_pack_map(pk, 2);
    cs_pack_kv_u64(pk, "version", 11);
    cs_pack_str(pk, "tasks");
    msgpack_pack_array(pk, 2);
    cs_pack_task(pk, &tasks[0]);
    cs_pack_task(pk, &tasks[1]);
    cs_get_job_reply r = {job, {11, tasks, 2}};
    cr_assert_eq(cs_get_job_reply_encode(&now.pk, &r), CS_OK);
    expect_same(&old, &now, "get.job reply");
    /* h_list: {"version", "jobs": [...]} */
    old.buf.size = now.buf.size = 0;
    msgpack_pack_map(pk, 2);
    cs_pack_kv_u64(pk, "version", 3);
    cs_pack_str(pk, "jobs");
    msgpack_pack_array(pk, 1);
    cs_pack_job(pk, &job);
    cs_jobs_reply jr = {3, &job, 1};
    cr_assert_eq(cs_jobs_reply_encode(&now.pk, &jr), CS_OK);
    expect_same(&old, &now, "get.jobs reply");
    body_free(&old);
    body_free(&now);
}

Test(msgcodec, list_and_get_job_replies_round_trip)
{
    cs_job jobs[2] = {sample_job(12, "web"), sample_job(14, "db")};
    cs_task tasks[2] = {sample_task(12, 0, 1, 50), sample_task(12, 1, 2, 61)};
    cs_attr attrs[] = {{"rack", "r1"}};
    cs_machine ms[1] = {{.id = 3, .name = "m3", .attrs = attrs, .nattrs = 1,
                         .capacity = {2000, 2048, 0}, .admin = CS_ADMIN_CORDONED,
                         .log_url = "tcp://a:1"}};
    body b;
    body_init(&b);
    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};
    cs_machines_reply mr = {9, ms, 1}, md;
    cr_assert_eq(cs_machines_reply_encode(&b.pk, &mr), CS_OK);
    cr_assert_eq(cs_machines_reply_decode(body_obj(&b), &md, &a, &err), CS_OK, "%s", err.msg);
    cr_expect_eq(md.version, 9);
    cr_expect_eq(md.n, 1);
    cr_expect_str_eq(md.machines[0].log_url, "tcp://a:1");
    cr_expect_eq(md.machines[0].admin, CS_ADMIN_CORDONED);
    b.buf.size = 0;
    cs_jobs_reply jr = {10, jobs, 2}, jd;
    cr_assert_eq(cs_jobs_reply_encode(&b.pk, &jr), CS_OK);
    cr_assert_eq(cs_jobs_reply_decode(body_obj(&b), &jd, &a, &err), CS_OK, "%s", err.msg);
    cr_expect_eq(jd.n, 2);
    cr_expect_str_eq(jd.jobs[1].name, "db");
    cr_expect_eq(jd.jobs[0].extra_len, jobs[0].extra_len);
    b.buf.size = 0;
    cs_get_job_reply gr = {jobs[0], {11, tasks, 2}}, gd;
    cr_assert_eq(cs_get_job_reply_encode(&b.pk, &gr), CS_OK);
    cr_assert_eq(cs_get_job_reply_decode(body_obj(&b), &gd, &a, &err), CS_OK, "%s", err.msg);
    cr_expect_str_eq(gd.job.name, "web");
    cr_expect_eq(gd.tasks.version, 11);
    cr_expect_eq(gd.tasks.n, 2);
    cr_expect_eq(gd.tasks.tasks[1].attempts, 2);
    cs_arena_free(&a);
    body_free(&b);
}

Test(msgcodec, poll_reply_decodes_entries_and_names_the_bad_ones)
{
    cs_job jobs[1] = {sample_job(12, "web")};
    cs_task tasks[2] = {sample_task(12, 0, 1, 50), sample_task(12, 1, 2, 61)};
    bool shrt[2] = {true, false};
    body b;
    body_init(&b);
    cs_poll_out out = {61, true, jobs, 1, tasks, shrt, 2};
    cr_assert_eq(cs_poll_reply_encode(&b.pk, &out), CS_OK);
    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};
    cs_poll_reply r;
    cr_assert_eq(cs_poll_reply_decode(body_obj(&b), &r, &a, &err), CS_OK, "%s", err.msg);
    cr_expect_eq(r.version, 61);
    cr_expect(r.compact);
    cr_assert_eq(r.ntasks, 2);
    cr_expect_eq(r.tasks[0].kind, CS_POLL_SHORT);
    cr_expect_eq(r.tasks[0].id, tasks[0].id);
    cr_expect_eq(r.tasks[0].attempts, 1);
    cr_expect_eq(r.tasks[1].kind, CS_POLL_FULL);
    cr_expect_eq(r.tasks[1].job_index, 0);
    cs_task t;
    cr_assert_eq(cs_unpack_task(r.tasks[1].task, &a, &t, &err), CS_OK, "%s", err.msg);
    cr_expect_eq(t.index, 1);
    cs_job j;
    cr_assert_eq(cs_unpack_job_spec(r.tasks[1].job_map, &a, &j, &err), CS_OK, "%s", err.msg);
    cr_expect_str_eq(j.cmd, jobs[0].cmd);

    /* Unreadable entries are BAD with a reason; the others still read. */
    const char *bad = "{\"version\": 5, \"jobs\": [{\"id\": 12}, {\"name\": \"x\"}], \"tasks\": ["
                      "[1, 2, 3], {\"job\": 12}, {\"task\": {\"id\": 7, \"attempts\": 1}, "
                      "\"job\": 99}, {\"task\": {\"id\": 8, \"attempts\": 1}, \"job\": 12}, "
                      "[4294967296, 4294967296]]}";
    cr_assert_eq(cs_poll_reply_decode(json_obj(&b, bad), &r, &a, &err), CS_OK, "%s", err.msg);
    cr_expect_eq(r.jobs[1].id, 0);
    cr_expect(strstr(r.jobs[1].bad, "field 'id' is missing") != NULL, "%s", r.jobs[1].bad);
    cr_assert_eq(r.ntasks, 5);
    cr_expect_eq(r.tasks[0].kind, CS_POLL_BAD);
    cr_expect_str_eq(r.tasks[0].bad, "short entry is not [task id, attempts]");
    cr_expect_str_eq(r.tasks[1].bad, "entry has no 'task' map");
    cr_expect_str_eq(r.tasks[2].bad, "task 7: job 99 is not in the reply's 'jobs'");
    cr_expect_eq(r.tasks[3].kind, CS_POLL_FULL);
    cr_expect_eq(r.tasks[4].kind, CS_POLL_BAD, "attempts above 2^32-1");

    /* The reply's own shape is refused whole. */
    REFUSED(cs_poll_reply_decode, cs_poll_reply, "{\"tasks\": []}", CS_EPROTO,
            "poll reply: field 'version' is missing");
    REFUSED(cs_poll_reply_decode, cs_poll_reply, "{\"version\": 1, \"tasks\": {}}", CS_EPROTO,
            "poll reply: field 'tasks' is not an array");
    REFUSED(cs_poll_reply_decode, cs_poll_reply, "{\"version\": 1, \"tasks\": [], \"jobs\": 3}",
            CS_EPROTO, "poll reply: field 'jobs' is not an array");
    cs_arena_free(&a);
    body_free(&b);
}

Test(msgcodec, task_status_reply_round_trips_and_marks_malformed_results)
{
    /* A replicated cell's per-report codes (not the leader, unavailable)
     * are codes too: an agent that read them as malformed would wait out
     * its back-off instead of trying another replica. */
    cs_report_result res[3] = {{0, ""},
                               {CS_ESTATE, "task 5: attempt 1 is not its current"},
                               {CS_ENOTLEADER, "replica 2 lost its leadership"}};
    cs_task_status_reply r = {60, res, 3}, d;
    body b;
    body_init(&b);
    cr_assert_eq(cs_task_status_reply_encode(&b.pk, &r), CS_OK);
    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};
    cr_assert_eq(cs_task_status_reply_decode(body_obj(&b), &d, &a, &err), CS_OK, "%s", err.msg);
    cr_expect_eq(d.version, 60);
    cr_expect_eq(d.n, 3);
    cr_expect_eq(d.results[1].code, CS_ESTATE);
    cr_expect_str_eq(d.results[1].message, res[1].message);
    cr_expect_eq(d.results[2].code, CS_ENOTLEADER);
    const char *bad = "{\"version\": 3, \"results\": [{\"code\": 0, \"message\": \"\"}, "
                      "{\"code\": 99, \"message\": \"\"}, 7]}";
    cr_assert_eq(cs_task_status_reply_decode(json_obj(&b, bad), &d, &a, &err), CS_OK);
    cr_expect_eq(d.results[0].code, CS_OK);
    cr_expect_eq(d.results[1].code, CS_EPROTO);
    cr_expect_str_eq(d.results[2].message, "task.status reply: results[2] is malformed");
    REFUSED(cs_task_status_reply_decode, cs_task_status_reply, "{\"version\": 3}", CS_EPROTO,
            "field 'results' is not an array");
    cs_arena_free(&a);
    body_free(&b);
}

Test(msgcodec, small_replies_round_trip)
{
    body b;
    body_init(&b);
    cs_error err = {0};
    cs_id_reply ir = {12, 57}, id;
    cr_assert_eq(cs_id_reply_encode(&b.pk, &ir), CS_OK);
    cr_assert_eq(cs_id_reply_decode(body_obj(&b), &id, NULL, &err), CS_OK);
    cr_expect(id.id == 12 && id.version == 57);
    b.buf.size = 0;
    cs_version_reply vr = {UINT64_MAX}, vd;
    cr_assert_eq(cs_version_reply_encode(&b.pk, &vr), CS_OK);
    cr_assert_eq(cs_version_reply_decode(body_obj(&b), &vd, NULL, &err), CS_OK);
    cr_expect_eq(vd.version, UINT64_MAX);
    b.buf.size = 0;
    cs_heartbeat_reply hr = {4, CS_MACHINE_DOWN, 9}, hd;
    cr_assert_eq(cs_heartbeat_reply_encode(&b.pk, &hr), CS_OK);
    cs_arena a;
    cs_arena_init(&a);
    cr_assert_eq(cs_heartbeat_reply_decode(body_obj(&b), &hd, &a, &err), CS_OK);
    cs_arena_free(&a);
    cr_expect(hd.machine == 4 && hd.state == CS_MACHINE_DOWN && hd.version == 9);
    b.buf.size = 0;
    cs_error_reply er = {CS_ENOTFOUND, NULL, "unknown machine 'm1'", 0}, ed;
    cr_assert_eq(cs_error_reply_encode(&b.pk, &er), CS_OK);
    cr_assert_eq(cs_error_reply_decode(body_obj(&b), &ed, NULL, &err), CS_OK);
    cr_expect_eq(ed.code, CS_ENOTFOUND);
    cr_expect(ed.message_len == 20 && memcmp(ed.message, "unknown machine 'm1'", 20) == 0);
    /* the same bytes as cs_msg_error wrote before it used the codec */
    body old;
    body_init(&old);
    msgpack_pack_map(&old.pk, 3);
    cs_pack_kv_i64(&old.pk, "code", CS_ENOTFOUND);
    cs_pack_kv_str(&old.pk, "error", "not found");
    cs_pack_kv_str(&old.pk, "message", "unknown machine 'm1'");
    expect_same(&old, &b, "error reply");
    msgpack_sbuffer whole;
    msgpack_sbuffer_init(&whole);
    cr_assert_eq(cs_msg_error(&whole, 7, CS_ENOTFOUND, "unknown machine 'm1'"), CS_OK);
    cr_assert_eq(whole.size, 4 + b.buf.size);
    cr_expect(memcmp(whole.data + 4, b.buf.data, b.buf.size) == 0);
    msgpack_sbuffer_destroy(&whole);
    body_free(&old);
    /* a nonsense error body still reads as an error */
    cr_assert_eq(cs_error_reply_decode(json_obj(&b, "{\"code\": \"x\"}"), &ed, NULL, &err), CS_OK);
    cr_expect(ed.code == CS_EPROTO && ed.message_len == 0);
    body_free(&b);
}

/* ---- malformed requests: the server's texts ------------------------------------------------ */

Test(msgcodec, malformed_agent_requests_are_named)
{
    REFUSED(cs_heartbeat_req_decode, cs_heartbeat_req, "{}", CS_EPROTO,
            "field 'machine' is missing");
    REFUSED(cs_heartbeat_req_decode, cs_heartbeat_req, "{\"machine\": -3}", CS_EPROTO,
            "field 'machine' is neither a machine id nor a machine name");
    REFUSED(cs_poll_req_decode, cs_poll_req, "{\"machine\": 1, \"since\": \"x\"}", CS_EPROTO,
            "field 'since' is not an unsigned integer");
    REFUSED(cs_poll_req_decode, cs_poll_req, "{\"machine\": 1, \"wait_ms\": 4294967296}",
            CS_EINVAL, "field 'wait_ms' is out of range");
    REFUSED(cs_poll_req_decode, cs_poll_req, "{\"machine\": 1, \"jobs\": \"twice\"}", CS_EPROTO,
            "field 'jobs': must be \"each\" or \"once\"");
    REFUSED(cs_poll_req_decode, cs_poll_req, "{\"machine\": 1, \"known\": \"short\"}", CS_EPROTO,
            "field 'known': \"short\" needs \"jobs\": \"once\"");
    REFUSED(cs_poll_req_decode, cs_poll_req, "{\"since\": 3}", CS_EPROTO,
            "field 'machine' is missing");
    REFUSED(cs_report_decode, cs_task_report, "{\"attempt\": 1, \"state\": \"running\"}",
            CS_EPROTO, "field 'task' is missing");
    REFUSED(cs_report_decode, cs_task_report,
            "{\"task\": 1, \"attempt\": 4294967296, \"state\": \"running\"}", CS_EINVAL,
            "field 'attempt' is out of range");
    REFUSED(cs_report_decode, cs_task_report, "{\"task\": 1, \"attempt\": 1, \"state\": \"ok\"}",
            CS_EINVAL, "field 'state': unknown task state 'ok'");
    REFUSED(cs_report_decode, cs_task_report,
            "{\"task\": 1, \"attempt\": 1, \"state\": \"running\", \"health\": \"unknown\"}",
            CS_EINVAL, "field 'health' is 'unknown', not healthy or unhealthy");
    REFUSED(cs_report_decode, cs_task_report,
            "{\"task\": 1, \"attempt\": 1, \"state\": \"failed\", \"exit_code\": 2147483648}",
            CS_EINVAL, "exit_code");
    REFUSED(cs_task_status_req_decode, cs_task_status_req, "{\"reports\": 3}", CS_EPROTO,
            "field 'reports' is not an array of at most 1024 reports");
    REFUSED(cs_logs_req_decode, cs_logs_req, "{\"task\": 1, \"attempt\": 1, \"stream\": \"x\"}",
            CS_EINVAL, "field 'stream' is neither stdout nor stderr");
    REFUSED(cs_logs_req_decode, cs_logs_req, "{\"task\": 1, \"attempt\": 1, \"max\": 0}",
            CS_EINVAL, "field 'max' must be at least 1");
    REFUSED(cs_logs_req_decode, cs_logs_req, "{\"task\": 1, \"attempt\": 1, \"max\": 1048577}",
            CS_EINVAL, "field 'max' is out of range");
    REFUSED(cs_logs_req_decode, cs_logs_req, "{\"attempt\": 1}", CS_EPROTO,
            "field 'task' is missing");
    REFUSED(cs_register_req_decode, cs_machine, "{\"capacity\": {}}", CS_EPROTO,
            "field 'name' is missing");
}

Test(msgcodec, a_batch_names_each_bad_report_and_keeps_the_rest)
{
    body b;
    body_init(&b);
    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};
    cs_task_status_req d;
    const char *text = "{\"reports\": [{\"task\": 1, \"attempt\": 1, \"state\": \"running\"}, 5, "
                       "{\"task\": 2, \"attempt\": 1, \"state\": \"gone\"}]}";
    cr_assert_eq(cs_task_status_req_decode(json_obj(&b, text), &d, &a, &err), CS_OK, "%s",
                 err.msg);
    cr_assert_eq(d.n, 3);
    cr_expect_eq(d.codes[0], CS_OK);
    cr_expect_eq(d.codes[1], CS_EPROTO);
    cr_expect_str_eq(d.errors[1], "reports[1] is not a map");
    cr_expect_eq(d.codes[2], CS_EINVAL);
    cr_expect_str_eq(d.errors[2], "field 'state': unknown task state 'gone'");
    /* 1025 reports: refused whole */
    b.buf.size = 0;
    msgpack_pack_map(&b.pk, 1);
    cs_pack_str(&b.pk, "reports");
    msgpack_pack_array(&b.pk, CS_REPORTS_MAX + 1);
    for (int i = 0; i <= CS_REPORTS_MAX; i++)
        msgpack_pack_nil(&b.pk);
    cr_expect_eq(cs_task_status_req_decode(body_obj(&b), &d, &a, &err), CS_EPROTO);
    cs_arena_free(&a);
    body_free(&b);
}

Test(msgcodec, malformed_job_requests_are_named)
{
    REFUSED(cs_job_ref_req_decode, cs_job_ref_req, "{}", CS_EPROTO, "field 'job' is missing");
    REFUSED(cs_job_ref_req_decode, cs_job_ref_req, "{\"job\": true}", CS_EPROTO,
            "field 'job' is neither a job id nor a job name");
    REFUSED(cs_job_scale_req_decode, cs_job_count_req, "{\"job\": 1}", CS_EPROTO,
            "field 'count' is missing");
    REFUSED(cs_job_scale_req_decode, cs_job_count_req, "{\"job\": 1, \"count\": 1048577}",
            CS_EINVAL, "field 'count' is out of range");
    /* the number is checked before the job, as the server did */
    REFUSED(cs_job_surge_req_decode, cs_job_count_req, "{\"surge\": \"x\"}", CS_EPROTO,
            "field 'surge' is not an unsigned integer");
    REFUSED(cs_job_surge_req_decode, cs_job_count_req, "{\"surge\": 1}", CS_EPROTO,
            "field 'job' is missing");
    REFUSED(cs_job_update_req_decode, cs_job_update_req, "{\"job\": 1}", CS_EPROTO,
            "field 'spec' is missing");
    REFUSED(cs_job_update_req_decode, cs_job_update_req, "{\"spec\": {}}", CS_EPROTO,
            "field 'job' is missing");
    REFUSED(cs_job_update_req_decode, cs_job_update_req, "{\"job\": 1, \"spec\": 5}", CS_EPROTO,
            "job: body is not a map");
    REFUSED(cs_job_note_req_decode, cs_job_note_req, "{\"job\": 1}", CS_EPROTO,
            "field 'note' is missing");
    char longnote[CS_NOTE_MAX + 64];
    snprintf(longnote, sizeof longnote, "{\"job\": 1, \"note\": \"%0*d\"}", CS_NOTE_MAX + 1, 0);
    REFUSED(cs_job_note_req_decode, cs_job_note_req, longnote, CS_EINVAL,
            "field 'note' is longer than 1024 bytes");
    REFUSED(cs_machine_admin_req_decode, cs_machine_admin_req,
            "{\"machine\": 1, \"admin\": \"sleepy\"}", CS_EINVAL,
            "field 'admin' is 'sleepy', not active, cordoned or draining");
    REFUSED(cs_machine_admin_req_decode, cs_machine_admin_req,
            "{\"machine\": 1, \"admin\": \"cordoned\", \"deadline_ms\": 5}", CS_EINVAL,
            "field 'deadline_ms' goes with admin 'draining' only");
    REFUSED(cs_machine_admin_req_decode, cs_machine_admin_req, "{\"machine\": 1}", CS_EPROTO,
            "field 'admin' is missing");
    REFUSED(cs_job_submit_req_decode, cs_job, "{\"count\": 1}", CS_EPROTO,
            "field 'name' is missing");
    REFUSED(cs_get_tasks_req_decode, cs_get_tasks_req, "{\"state\": \"sleeping\"}", CS_EINVAL,
            "field 'state': unknown task state 'sleeping'");
    REFUSED(cs_get_tasks_req_decode, cs_get_tasks_req, "{\"machine\": [1]}", CS_EPROTO,
            "field 'machine' is neither a machine id nor a machine name");
}

Test(msgcodec, malformed_replies_are_named)
{
    REFUSED(cs_commit_reply_decode, cs_commit_reply, "{\"version\": 1}", CS_EPROTO,
            "commit reply: field 'replayed' is missing");
    REFUSED(cs_commit_reply_decode, cs_commit_reply,
            "{\"version\": 1, \"replayed\": false, \"committed\": 0, \"conflicts\": 0, "
            "\"claims\": [0, 14], \"releases\": [], \"preempts\": []}",
            CS_EPROTO, "commit reply: claims[1] is not an outcome");
    REFUSED(cs_commit_reply_decode, cs_commit_reply,
            "{\"version\": 1, \"replayed\": false, \"committed\": 0, \"conflicts\": 0, "
            "\"claims\": [], \"releases\": {}}",
            CS_EPROTO, "commit reply: field 'releases' is not an array");
    REFUSED(cs_machines_reply_decode, cs_machines_reply, "{\"version\": 1}", CS_EPROTO,
            "reply: field 'machines' is missing or not an array");
    REFUSED(cs_tasks_reply_decode, cs_tasks_reply, "{\"version\": 1, \"tasks\": [{}]}", CS_EPROTO,
            "is missing");
    REFUSED(cs_get_job_reply_decode, cs_get_job_reply, "{\"job\": {}}", CS_EPROTO,
            "reply to get.job lacks 'job' or 'tasks'");
    REFUSED(cs_heartbeat_reply_decode, cs_heartbeat_reply,
            "{\"machine\": 1, \"state\": \"asleep\", \"version\": 1}", CS_EINVAL,
            "field 'state' is 'asleep'");
    REFUSED(cs_machine_admin_reply_decode, cs_machine_admin_reply,
            "{\"id\": 1, \"admin\": \"active\"}", CS_EPROTO, "field 'drain_deadline' is missing");
    REFUSED(cs_logs_reply_decode, cs_logs_reply,
            "{\"offset\": 0, \"size\": 0, \"next\": 0, \"data\": \"text\"}", CS_EPROTO,
            "field 'data' is missing or not binary");
    REFUSED(cs_stats_reply_decode, cs_stats_reply, "{\"version\": 1}", CS_EPROTO,
            "field 'machines' is missing");
    REFUSED(cs_id_reply_decode, cs_id_reply, "{\"id\": 1}", CS_EPROTO,
            "field 'version' is missing");
}

/* A hostile size is refused by the bounds check in front of every
 * decoder, before anything is allocated for it. */
Test(msgcodec, hostile_sizes_stop_at_the_bounds_check)
{
    static const uint8_t huge_map[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t huge_reports[] = {0x81, 0xa7, 'r', 'e', 'p', 'o', 'r', 't', 's',
                                           0xdd, 0xff, 0xff, 0xff, 0xff};
    msgpack_zone z;
    msgpack_zone_init(&z, 256);
    msgpack_object o;
    cs_error err = {0};
    cr_expect_eq(cs_mp_unpack(huge_map, sizeof huge_map, &z, &o, CS_EPROTO, "body", &err),
                 CS_EPROTO);
    cr_expect_eq(cs_mp_unpack(huge_reports, sizeof huge_reports, &z, &o, CS_EPROTO, "body", &err),
                 CS_EPROTO);
    cr_expect(strstr(err.msg, "truncated") != NULL, "%s", err.msg);
    msgpack_zone_destroy(&z);
}

/* ---- membership: members, members.add, members.remove, members.transfer ------------------ */

Test(msgcodec, member_requests_and_index_reply_bytes_are_pinned)
{
    body b;
    body_init(&b);
    char h[256];
    cs_member_req q = {4, "tcp://h:1", "h:2"};
    cr_assert_eq(cs_member_add_req_encode(&b.pk, &q), CS_OK);
    hex(&b, h, sizeof h);
    cr_expect_str_eq(h, "83 a2 69 64 04 a6 6c 69 73 74 65 6e a9 74 63 70 3a 2f 2f 68 3a 31 a4 72 "
                        "61 66 74 a3 68 3a 32");
    b.buf.size = 0;
    cr_assert_eq(cs_member_id_req_encode(&b.pk, &(cs_member_req){2, NULL, NULL}), CS_OK);
    hex(&b, h, sizeof h);
    cr_expect_str_eq(h, "81 a2 69 64 02");
    b.buf.size = 0;
    cr_assert_eq(cs_index_reply_encode(&b.pk, &(cs_index_reply){12}), CS_OK);
    hex(&b, h, sizeof h);
    cr_expect_str_eq(h, "81 a5 69 6e 64 65 78 0c");
    cr_expect_str_eq(cs_msg_name(CS_MSG_MEMBERS), "members");
    cr_expect_str_eq(cs_msg_name(CS_MSG_MEMBERS_ADD), "members.add");
    cr_expect_str_eq(cs_msg_name(CS_MSG_MEMBERS_REMOVE), "members.remove");
    cr_expect_str_eq(cs_msg_name(CS_MSG_MEMBERS_TRANSFER), "members.transfer");
    cr_expect_eq(CS_MSG_MEMBERS_TRANSFER, 26);
    body_free(&b);
}

/* The three members of protocol.md §5.21's example, as the leader sees them. */
static const cs_member_info three[] = {
    {1, "tcp://127.0.0.1:7600", "127.0.0.1:7610", CS_MEMBER_LEADER, true, 120},
    {2, "tcp://127.0.0.1:7601", "127.0.0.1:7611", CS_MEMBER_FOLLOWER, true, 118},
    {3, "ipc:///run/cell/3", "[::1]:7612", CS_MEMBER_FOLLOWER, false, 0},
};

Test(msgcodec, members_reply_round_trips_in_its_key_order)
{
    body old, now;
    body_init(&old);
    body_init(&now);
    cs_members_reply r = {1, CS_MEMBER_LEADER, 7, 1, 121, 120, 120, 100,
                          (cs_member_info *)three, 3};
    /* the order docs/protocol.md §5.21 lists, every key always written */
    msgpack_pack_map(&old.pk, 9);
    cs_pack_kv_u64(&old.pk, "id", 1);
    cs_pack_kv_str(&old.pk, "role", "leader");
    cs_pack_kv_u64(&old.pk, "term", 7);
    cs_pack_kv_u64(&old.pk, "leader", 1);
    cs_pack_kv_u64(&old.pk, "last_index", 121);
    cs_pack_kv_u64(&old.pk, "commit_index", 120);
    cs_pack_kv_u64(&old.pk, "applied_index", 120);
    cs_pack_kv_u64(&old.pk, "snapshot_index", 100);
    cs_pack_str(&old.pk, "members");
    msgpack_pack_array(&old.pk, 3);
    for (int i = 0; i < 3; i++) {
        msgpack_pack_map(&old.pk, 6);
        cs_pack_kv_u64(&old.pk, "id", three[i].id);
        cs_pack_kv_str(&old.pk, "listen", three[i].listen);
        cs_pack_kv_str(&old.pk, "raft", three[i].raft);
        cs_pack_kv_str(&old.pk, "role", i == 0 ? "leader" : "follower");
        cs_pack_kv_bool(&old.pk, "voter", three[i].voter);
        cs_pack_kv_u64(&old.pk, "match", three[i].match);
    }
    cr_assert_eq(cs_members_reply_encode(&now.pk, &r), CS_OK);
    expect_same(&old, &now, "members reply");
    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};
    cs_members_reply d;
    cr_assert_eq(cs_members_reply_decode(body_obj(&now), &d, &a, &err), CS_OK, "%s", err.msg);
    cr_expect(d.id == 1 && d.role == CS_MEMBER_LEADER && d.term == 7 && d.leader == 1 &&
              d.last_index == 121 && d.commit_index == 120 && d.applied_index == 120 &&
              d.snapshot_index == 100);
    cr_assert_eq(d.n, 3);
    for (uint32_t i = 0; i < 3; i++) {
        cr_expect(d.members[i].id == three[i].id && d.members[i].role == three[i].role &&
                  d.members[i].voter == three[i].voter && d.members[i].match == three[i].match,
                  "member %u", i);
        cr_expect_str_eq(d.members[i].listen, three[i].listen);
        cr_expect_str_eq(d.members[i].raft, three[i].raft);
    }
    /* a single replica without --cluster: itself, and no member yet known
     * by address is shown with "" */
    now.buf.size = 0;
    cs_member_info self = {1, "", "", CS_MEMBER_LEADER, true, 0};
    r = (cs_members_reply){1, CS_MEMBER_LEADER, 0, 1, 0, 0, 0, 0, &self, 1};
    cr_assert_eq(cs_members_reply_encode(&now.pk, &r), CS_OK);
    cr_assert_eq(cs_members_reply_decode(body_obj(&now), &d, &a, &err), CS_OK, "%s", err.msg);
    cr_expect(d.n == 1 && d.members[0].listen[0] == '\0' && d.applied_index == 0);
    cs_arena_free(&a);
    body_free(&old);
    body_free(&now);
}

Test(msgcodec, role_words_are_the_replicas_numbers)
{
    static const char *const words[] = {"unavailable", "follower", "candidate", "leader"};
    for (uint8_t r = 0; r < CS_MEMBER_ROLE_COUNT; r++) {
        uint8_t back = 99;
        cr_expect_str_eq(cs_role_word(r), words[r]);
        cr_expect_eq(cs_role_parse(words[r], strlen(words[r]), &back), CS_OK);
        cr_expect_eq(back, r);
    }
    uint8_t x;
    cr_expect_str_eq(cs_role_word(CS_MEMBER_ROLE_COUNT), "unknown");
    cr_expect_eq(cs_role_parse("lead", 4, &x), CS_EINVAL);
    cr_expect_eq(cs_role_parse("leaders", 7, &x), CS_EINVAL);
    cr_expect_eq(CS_MEMBER_LEADER, 3);
    cr_expect_eq(CS_MEMBER_UNAVAILABLE, 0);
}

#define MEMBER(extra)                                                                         \
    "{\"id\": 2, \"role\": \"follower\", \"voter\": true, \"match\": 0, \"listen\": "         \
    "\"tcp://a:1\", \"raft\": \"a:2\"" extra "}"
#define MEMBERS_HEAD                                                                          \
    "{\"id\": 1, \"role\": \"leader\", \"term\": 3, \"leader\": 1, \"last_index\": 9, "       \
    "\"commit_index\": 9, \"applied_index\": 9, \"snapshot_index\": 0, "

Test(msgcodec, malformed_members_replies_are_named)
{
    REFUSED(cs_members_reply_decode, cs_members_reply, "[1]", CS_EPROTO,
            "members reply: body is not a map");
    REFUSED(cs_members_reply_decode, cs_members_reply,
            "{\"id\": 1, \"role\": \"leader\", \"leader\": 1}", CS_EPROTO,
            "members reply: field 'term' is missing");
    REFUSED(cs_members_reply_decode, cs_members_reply,
            "{\"id\": 1, \"role\": \"boss\", \"term\": 1}", CS_EINVAL,
            "members reply: field 'role' is 'boss', not leader, follower, candidate or "
            "unavailable");
    REFUSED(cs_members_reply_decode, cs_members_reply, "{\"id\": 1, \"role\": 3}", CS_EPROTO,
            "members reply: field 'role' is not a string");
    REFUSED(cs_members_reply_decode, cs_members_reply,
            MEMBERS_HEAD "\"applied_index\": -1, \"members\": []}", CS_EPROTO,
            "field 'applied_index' is not an unsigned integer");
    REFUSED(cs_members_reply_decode, cs_members_reply, MEMBERS_HEAD "\"members\": {}}",
            CS_EPROTO, "members reply: field 'members' is not an array of at most 64");
    REFUSED(cs_members_reply_decode, cs_members_reply,
            MEMBERS_HEAD "\"members\": [" MEMBER("") ", 5]}", CS_EPROTO,
            "members reply: members[1]: not a map");
    REFUSED(cs_members_reply_decode, cs_members_reply,
            MEMBERS_HEAD "\"members\": [" MEMBER(", \"voter\": 1") "]}", CS_EPROTO,
            "members reply: members[0]: field 'voter' is not a boolean");
    REFUSED(cs_members_reply_decode, cs_members_reply,
            MEMBERS_HEAD "\"members\": [" MEMBER(", \"id\": 0") "]}", CS_EINVAL,
            "members reply: members[0]: field 'id' is 0 (member ids start at 1)");
    REFUSED(cs_members_reply_decode, cs_members_reply,
            MEMBERS_HEAD "\"members\": [" MEMBER(", \"role\": \"king\"") "]}", CS_EINVAL,
            "members[0]: field 'role' is 'king'");
    REFUSED(cs_members_reply_decode, cs_members_reply,
            MEMBERS_HEAD "\"members\": [{\"id\": 2, \"listen\": \"tcp://a:1\"}]}", CS_EPROTO,
            "members reply: members[0]: field 'raft' is missing");
    /* 65 members: one more than a reply may list */
    char text[4096];
    size_t k = (size_t)snprintf(text, sizeof text, MEMBERS_HEAD "\"members\": [");
    for (int i = 0; i < CS_MEMBERS_MAX + 1; i++)
        k += (size_t)snprintf(text + k, sizeof text - k, "%s{}", i ? ", " : "");
    snprintf(text + k, sizeof text - k, "]}");
    REFUSED(cs_members_reply_decode, cs_members_reply, text, CS_EPROTO,
            "field 'members' is not an array of at most 64");
    /* an address of 128 bytes: one more than a member's may hold */
    char listen[129], member[512];
    memset(listen, 'x', 128);
    listen[128] = '\0';
    snprintf(member, sizeof member, MEMBERS_HEAD "\"members\": [" MEMBER(", \"listen\": \"%s\"") "]}",
             listen);
    REFUSED(cs_members_reply_decode, cs_members_reply, member, CS_EINVAL,
            "members[0]: field 'listen' is longer than 127 bytes");
}

Test(msgcodec, member_requests_round_trip)
{
    body b;
    body_init(&b);
    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};
    static const char *const listens[] = {"tcp://127.0.0.1:7600", "tls+tcp://cell.example:443",
                                          "ipc:///run/cell/4", "tcp://[::1]:7603",
                                          "tcp://node-4.rack_2:65535"};
    static const char *const rafts[] = {"127.0.0.1:7610", "cell.example:1", "[fe80::1]:7611",
                                        "n4:7613", "localhost:65535"};
    for (int i = 0; i < 5; i++) {
        b.buf.size = 0;
        cs_member_req q = {(uint64_t)i + 1, listens[i], rafts[i]}, d;
        cr_assert_eq(cs_member_add_req_encode(&b.pk, &q), CS_OK);
        cr_assert_eq(cs_member_add_req_decode(body_obj(&b), &d, &a, &err), CS_OK, "%s: %s",
                     listens[i], err.msg);
        cr_expect(d.id == q.id);
        cr_expect_str_eq(d.listen, listens[i]);
        cr_expect_str_eq(d.raft, rafts[i]);
    }
    cs_member_req d;
    b.buf.size = 0;
    cr_assert_eq(cs_member_id_req_encode(&b.pk, &(cs_member_req){UINT64_MAX, NULL, NULL}), CS_OK);
    cr_assert_eq(cs_member_remove_req_decode(body_obj(&b), &d, &a, &err), CS_OK, "%s", err.msg);
    cr_expect(d.id == UINT64_MAX && d.listen == NULL && d.raft == NULL);
    /* transfer: 0 and absent both mean "let Raft pick" */
    b.buf.size = 0;
    cr_assert_eq(cs_member_id_req_encode(&b.pk, &(cs_member_req){0, NULL, NULL}), CS_OK);
    cr_assert_eq(cs_member_transfer_req_decode(body_obj(&b), &d, &a, &err), CS_OK, "%s", err.msg);
    cr_expect_eq(d.id, 0);
    cr_assert_eq(cs_member_transfer_req_decode(json_obj(&b, "{}"), &d, &a, &err), CS_OK);
    cr_expect_eq(d.id, 0);
    cr_assert_eq(cs_member_transfer_req_decode(json_obj(&b, "{\"id\": 3}"), &d, &a, &err), CS_OK);
    cr_expect_eq(d.id, 3);
    cs_index_reply ir;
    cr_assert_eq(cs_index_reply_decode(json_obj(&b, "{\"index\": 4096}"), &ir, NULL, &err), CS_OK);
    cr_expect_eq(ir.index, 4096);
    cs_arena_free(&a);
    body_free(&b);
}

/* prefix, then `host` bytes of 'a', then suffix, into out. */
static void long_addr(char *out, const char *prefix, size_t host, const char *suffix)
{
    size_t p = strlen(prefix);
    memcpy(out, prefix, p);
    memset(out + p, 'a', host);
    strcpy(out + p + host, suffix);
}

#define ADD(id, listen, raft) "{\"id\": " id ", \"listen\": " listen ", \"raft\": " raft "}"

Test(msgcodec, malformed_member_requests_are_named)
{
    REFUSED(cs_member_add_req_decode, cs_member_req, "[]", CS_EPROTO,
            "message body is not a map");
    REFUSED(cs_member_add_req_decode, cs_member_req, "{\"listen\": \"tcp://a:1\"}", CS_EPROTO,
            "field 'id' is missing");
    REFUSED(cs_member_add_req_decode, cs_member_req, ADD("0", "\"tcp://a:1\"", "\"a:2\""),
            CS_EINVAL, "field 'id' is 0 (member ids start at 1)");
    REFUSED(cs_member_add_req_decode, cs_member_req, ADD("\"4\"", "\"tcp://a:1\"", "\"a:2\""),
            CS_EPROTO, "field 'id' is not an unsigned integer");
    REFUSED(cs_member_add_req_decode, cs_member_req, "{\"id\": 4, \"raft\": \"a:2\"}",
            CS_EPROTO, "field 'listen' is missing");
    REFUSED(cs_member_add_req_decode, cs_member_req, ADD("4", "7600", "\"a:2\""), CS_EPROTO,
            "field 'listen' is not a string");
    REFUSED(cs_member_add_req_decode, cs_member_req, ADD("4", "\"\"", "\"a:2\""), CS_EINVAL,
            "field 'listen' is empty");
    static const char *const bad_listens[] = {
        "\"http://a:1\"", "\"tcp://a\"", "\"tcp://a:\"", "\"tcp://:7600\"", "\"tcp://a:0\"",
        "\"tcp://a:65536\"", "\"tcp://a:76x0\"", "\"tcp://::1:7600\"", "\"tcp://[]:1\"",
        "\"tcp://[::1]7600\"", "\"ipc://\"", "\"tcp://a:123456\"", "\"a:1\""};
    for (size_t i = 0; i < sizeof bad_listens / sizeof *bad_listens; i++) {
        char text[256], want[128];
        snprintf(text, sizeof text, ADD("4", "%s", "\"a:2\""), bad_listens[i]);
        snprintf(want, sizeof want, "field 'listen' is '%.*s', not tcp://HOST:PORT",
                 (int)strlen(bad_listens[i]) - 2, bad_listens[i] + 1);
        REFUSED(cs_member_add_req_decode, cs_member_req, text, CS_EINVAL, want);
    }
    REFUSED(cs_member_add_req_decode, cs_member_req, ADD("4", "\"tcp://a b:1\"", "\"a:2\""),
            CS_EINVAL, "field 'listen' contains a space or a control byte");
    /* listen: 127 bytes fit (NUL included: 128), 128 do not */
    char text[512], addr[200];
    body b;
    body_init(&b);
    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};
    cs_member_req ok;
    for (size_t len = 126; len <= 128; len++) {
        long_addr(addr, "tcp://", len - 11, ":7600");
        cr_assert_eq(strlen(addr), len);
        snprintf(text, sizeof text, ADD("4", "\"%s\"", "\"a:2\""), addr);
        if (len < CS_MEMBER_LISTEN_MAX)
            cr_expect_eq(cs_member_add_req_decode(json_obj(&b, text), &ok, &a, &err), CS_OK,
                         "%zu bytes fit: %s", len, err.msg);
        else
            REFUSED(cs_member_add_req_decode, cs_member_req, text, CS_EINVAL,
                    "field 'listen' is longer than 127 bytes");
    }
    /* raft: 63 bytes fit, 64 do not */
    for (size_t len = 63; len <= 64; len++) {
        long_addr(addr, "", len - 5, ":7610");
        snprintf(text, sizeof text, ADD("4", "\"tcp://a:1\"", "\"%s\""), addr);
        if (len < CS_MEMBER_RAFT_MAX)
            cr_expect_eq(cs_member_add_req_decode(json_obj(&b, text), &ok, &a, &err), CS_OK,
                         "%zu bytes fit: %s", len, err.msg);
        else
            REFUSED(cs_member_add_req_decode, cs_member_req, text, CS_EINVAL,
                    "field 'raft' is longer than 63 bytes");
    }
    cs_arena_free(&a);
    body_free(&b);
    REFUSED(cs_member_add_req_decode, cs_member_req, "{\"id\": 4, \"listen\": \"tcp://a:1\"}",
            CS_EPROTO, "field 'raft' is missing");
    REFUSED(cs_member_add_req_decode, cs_member_req, ADD("4", "\"tcp://a:1\"", "\"127.0.0.1\""),
            CS_EINVAL, "field 'raft' is '127.0.0.1', not HOST:PORT");
    REFUSED(cs_member_add_req_decode, cs_member_req,
            ADD("4", "\"tcp://a:1\"", "\"tcp://127.0.0.1:7610\""), CS_EINVAL,
            "field 'raft' is 'tcp://127.0.0.1:7610', not HOST:PORT");
    REFUSED(cs_member_add_req_decode, cs_member_req, ADD("4", "\"tcp://a:1\"", "[\"a:2\"]"),
            CS_EPROTO, "field 'raft' is not a string");
    REFUSED(cs_member_remove_req_decode, cs_member_req, "{}", CS_EPROTO, "field 'id' is missing");
    REFUSED(cs_member_remove_req_decode, cs_member_req, "{\"id\": 0}", CS_EINVAL,
            "field 'id' is 0 (member ids start at 1)");
    REFUSED(cs_member_remove_req_decode, cs_member_req, "\"id\"", CS_EPROTO,
            "message body is not a map");
    REFUSED(cs_member_transfer_req_decode, cs_member_req, "{\"id\": \"2\"}", CS_EPROTO,
            "field 'id' is not an unsigned integer");
    REFUSED(cs_member_transfer_req_decode, cs_member_req, "{\"id\": -2}", CS_EPROTO,
            "field 'id' is not an unsigned integer");
    REFUSED(cs_index_reply_decode, cs_index_reply, "{}", CS_EPROTO, "field 'index' is missing");
    REFUSED(cs_index_reply_decode, cs_index_reply, "{\"index\": true}", CS_EPROTO,
            "field 'index' is not an unsigned integer");
    REFUSED(cs_index_reply_decode, cs_index_reply, "[]", CS_EPROTO, "reply is not a map");
}

/* ---- randomized round trips (fixed seed) ------------------------------------------------- */

static uint64_t rnd(uint64_t *s) { return cs_rng_next(s); }

/* A width-varied unsigned value: small, 16-bit, 32-bit or full. */
static uint64_t rnd_u(uint64_t *s)
{
    static const uint64_t masks[4] = {0x7f, 0xffff, 0xffffffffull, UINT64_MAX};
    return rnd(s) & masks[rnd(s) % 4];
}

Test(msgcodec, random_messages_round_trip)
{
    uint64_t seed = 20261206;
    body b;
    body_init(&b);
    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};
    char reason[64], name[32];
    for (int it = 0; it < 3000; it++) {
        b.buf.size = 0;
        cs_arena_reset(&a);
        msgpack_zone_clear(&b.zone);
        switch (it % 6) {
        case 0: { /* task.status */
            uint8_t states[3] = {CS_TASK_RUNNING, CS_TASK_FINISHED, CS_TASK_FAILED};
            cs_task_report r = {rnd_u(&seed), (uint32_t)rnd_u(&seed), states[rnd(&seed) % 3],
                                (int32_t)rnd(&seed), NULL, CS_TASK_HEALTH_UNKNOWN};
            snprintf(reason, sizeof reason, "r%llu", (unsigned long long)rnd(&seed));
            r.reason = r.state == CS_TASK_RUNNING ? NULL : reason;
            if (r.state == CS_TASK_RUNNING)
                r.health = (uint8_t)(rnd(&seed) % 3);
            cs_task_status_req q = {.batch = rnd(&seed) % 2, .reports = &r, .n = 1}, d;
            cr_assert_eq(cs_task_status_req_encode(&b.pk, &q), CS_OK);
            cr_assert_eq(cs_task_status_req_decode(body_obj(&b), &d, &a, &err), CS_OK, "%s",
                         err.msg);
            cr_assert_eq(d.batch, q.batch);
            cr_assert(d.batch == false || d.codes[0] == CS_OK);
            const cs_task_report *g = &d.reports[0];
            cr_assert(g->task == r.task && g->attempt == r.attempt && g->state == r.state &&
                      g->health == r.health, "iteration %d", it);
            if (r.state != CS_TASK_RUNNING)
                cr_assert(g->exit_code == r.exit_code && strcmp(g->reason, reason) == 0);
            break;
        }
        case 1: { /* poll */
            cs_poll_req q = {rnd(&seed) % 2 ? cs_ref_id(rnd_u(&seed)) : cs_ref_name(name),
                             rnd_u(&seed), (uint32_t)rnd_u(&seed), rnd(&seed) % 2, false, 0}, d;
            snprintf(name, sizeof name, "m%llu", (unsigned long long)(rnd(&seed) % 1000));
            q.known_short = q.jobs_once && rnd(&seed) % 2;
            q.min_index = rnd(&seed) % 2 ? rnd_u(&seed) : 0;
            cr_assert_eq(cs_poll_req_encode(&b.pk, &q), CS_OK);
            cr_assert_eq(cs_poll_req_decode(body_obj(&b), &d, &a, &err), CS_OK, "%s", err.msg);
            cr_assert(d.since == q.since && d.wait_ms == q.wait_ms &&
                      d.jobs_once == q.jobs_once && d.known_short == q.known_short &&
                      d.min_index == q.min_index);
            cr_assert((q.machine.name == NULL && d.machine.name == NULL &&
                       d.machine.id == q.machine.id) ||
                      (q.machine.name && d.machine.name &&
                       strcmp(q.machine.name, d.machine.name) == 0));
            break;
        }
        case 2: { /* job.scale / job.surge */
            cs_job_count_req q = {cs_ref_id(rnd_u(&seed)),
                                  (uint32_t)(rnd(&seed) % (CS_TASK_INDEX_MAX + 2u))}, d;
            bool surge = rnd(&seed) % 2;
            cr_assert_eq((surge ? cs_job_surge_req_encode : cs_job_scale_req_encode)(&b.pk, &q),
                         CS_OK);
            cr_assert_eq((surge ? cs_job_surge_req_decode : cs_job_scale_req_decode)(
                             body_obj(&b), &d, &a, &err),
                         CS_OK, "%s", err.msg);
            cr_assert(d.n == q.n && d.job.id == q.job.id && d.job.name == NULL);
            break;
        }
        case 3: { /* machine.admin */
            cs_machine_admin_req q = {cs_ref_id(rnd_u(&seed)), (uint8_t)(rnd(&seed) % 3), false,
                                      0}, d;
            if (q.admin == CS_ADMIN_DRAINING && rnd(&seed) % 2) {
                q.has_deadline = true;
                q.deadline_ms = (uint32_t)rnd_u(&seed);
            }
            cr_assert_eq(cs_machine_admin_req_encode(&b.pk, &q), CS_OK);
            cr_assert_eq(cs_machine_admin_req_decode(body_obj(&b), &d, &a, &err), CS_OK, "%s",
                         err.msg);
            cr_assert(d.admin == q.admin && d.has_deadline == q.has_deadline &&
                      d.deadline_ms == q.deadline_ms && d.machine.id == q.machine.id);
            break;
        }
        case 4: { /* commit reply */
            uint8_t o[3][8];
            uint32_t n[3];
            for (int k = 0; k < 3; k++) {
                n[k] = (uint32_t)(rnd(&seed) % 8);
                for (uint32_t i = 0; i < n[k]; i++)
                    o[k][i] = (uint8_t)(rnd(&seed) % CS_OUTCOME_COUNT);
            }
            cs_commit_reply q = {rnd_u(&seed), rnd(&seed) % 2, (uint32_t)rnd_u(&seed),
                                 (uint32_t)rnd_u(&seed), o[0], o[1], o[2], n[0], n[1], n[2], 0}, d;
            q.index = rnd(&seed) % 2 ? rnd_u(&seed) : 0;
            cr_assert_eq(cs_commit_reply_encode(&b.pk, &q), CS_OK);
            cr_assert_eq(cs_commit_reply_decode(body_obj(&b), &d, &a, &err), CS_OK, "%s",
                         err.msg);
            cr_assert(d.version == q.version && d.replayed == q.replayed &&
                      d.committed == q.committed && d.conflicts == q.conflicts &&
                      d.index == q.index);
            cr_assert(d.nclaims == n[0] && d.nreleases == n[1] && d.npreempts == n[2]);
            cr_assert(memcmp(d.claims, o[0], n[0]) == 0 && memcmp(d.releases, o[1], n[1]) == 0 &&
                      memcmp(d.preempts, o[2], n[2]) == 0);
            break;
        }
        case 5: { /* task.logs */
            cs_logs_req q = {rnd_u(&seed), (uint32_t)rnd_u(&seed), rnd(&seed) % 2, 0, 0,
                             1 + (uint32_t)(rnd(&seed) % CS_LOGS_MAX)}, d;
            if (rnd(&seed) % 2)
                q.tail = 1 + (uint32_t)(rnd_u(&seed) % UINT32_MAX);
            else
                q.offset = rnd_u(&seed);
            cr_assert_eq(cs_logs_req_encode(&b.pk, &q), CS_OK);
            cr_assert_eq(cs_logs_req_decode(body_obj(&b), &d, NULL, &err), CS_OK, "%s",
                         err.msg);
            cr_assert(d.task == q.task && d.attempt == q.attempt &&
                      d.err_stream == q.err_stream && d.offset == q.offset &&
                      d.tail == q.tail && d.max == q.max);
            break;
        }
        }
    }
    cs_arena_free(&a);
    body_free(&b);
}
