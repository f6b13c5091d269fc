/* test_record.c — the record codec, validation, state names, ports and the
 * arena (cellstate/record.h, cellstate/arena.h).
 *
 * Unit tier: no store. Every decoder is fed what a torn write, an older or
 * newer layout, or an attacker could put in a record, and must answer
 * CS_ECORRUPT with a message that names the problem, never crash and never
 * leak (ASan runs these).
 */
#include <criterion/criterion.h>

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cellstate/arena.h"
#include "cellstate/record.h"
#include "cellstate/rng.h"

/* ---- sample records --------------------------------------------------- */

static cs_attr sample_attrs[] = {{"arch", "x86_64"}, {"rack", "r12"}, {"zone", "eu-1"}};
static uint16_t sample_mports[] = {31000, 31005, 31010};

static cs_taint sample_taints[] = {
    {"dedicated", "gpu", CS_TAINT_NO_SCHEDULE},
    {"dedicated", "gpu", CS_TAINT_NO_EXECUTE},
    {"spot", "", CS_TAINT_PREFER_NO_SCHEDULE},
};

static cs_machine sample_machine(void)
{
    cs_machine m = {0};
    m.id = 5;
    m.name = "m-005";
    m.attrs = sample_attrs;
    m.nattrs = 3;
    m.capacity = (cs_res){16000, 65536, INT64_C(1) << 20};
    m.port_lo = 31000;
    m.port_hi = 32000;
    m.taints = sample_taints;
    m.ntaints = 3;
    m.allocated = (cs_res){2000, 4096, 0};
    m.ports = sample_mports;
    m.nports = 3;
    m.ntasks = 2;
    m.state = CS_MACHINE_DRAINING;
    m.seq = 17;
    m.version = 99;
    m.admin = CS_ADMIN_DRAINING;
    m.drain_deadline = UINT64_C(1700000000123);
    m.log_url = "tcp://h1:40000";
    return m;
}

static uint16_t sample_jports[] = {8080, 0, 0};
static cs_constraint sample_cons[] = {
    {"arch", "==", "x86_64", false},
    {"rack", "!=", "r7", true},
    {"ssd", "exists", "", true},
};
/* msgpack {"env": "x"}: what a scheduler would keep in extra. */
static const uint8_t sample_extra[] = {0x81, 0xa3, 'e', 'n', 'v', 0xa1, 'x'};

static cs_job sample_job(void)
{
    cs_job j = {0};
    j.id = 3;
    j.name = "web";
    j.kind = CS_JOB_SERVICE;
    j.state = CS_JOB_ACTIVE;
    j.priority = -5;
    j.count = 4;
    j.res = (cs_res){500, 1024, 2048};
    j.ports = sample_jports;
    j.nports = 3;
    j.constraints = sample_cons;
    j.nconstraints = 3;
    j.cmd = "/bin/web --port $PORT0";
    j.extra = sample_extra;
    j.extra_len = sizeof sample_extra;
    j.spec_hash = UINT64_C(0x0123456789abcdef);
    j.version = 12;
    j.submitted = UINT64_C(1700000000123);
    j.note = "no machine fits: cpu on 9,870, UNIQUE hostname on 130";
    j.surge = 2;
    return j;
}

static uint16_t sample_tports[] = {31001, 31002};

static cs_task sample_task(void)
{
    cs_task t = {0};
    t.job = 7;
    t.index = 3;
    t.id = cs_task_id(7, 3);
    t.state = CS_TASK_RUNNING;
    t.last_end = CS_TASK_LOST;
    t.machine = 2;
    t.res = (cs_res){500, 1024, 2048};
    t.ports = sample_tports;
    t.nports = 2;
    t.attempts = 2;
    t.exit_code = -9;
    t.reason = "OOM killed";
    t.version = 42;
    t.health = CS_TASK_HEALTH_UNHEALTHY;
    return t;
}

/* ---- field-by-field equality ----------------------------------------- */

static void res_eq(const cs_res *a, const cs_res *b, const char *what)
{
    cr_assert_eq(a->cpu, b->cpu, "%s cpu", what);
    cr_assert_eq(a->mem, b->mem, "%s mem", what);
    cr_assert_eq(a->disk, b->disk, "%s disk", what);
}

static void ports_eq(const uint16_t *a, uint32_t na, const uint16_t *b, uint32_t nb)
{
    cr_assert_eq(na, nb, "port count %u != %u", na, nb);
    for (uint32_t i = 0; i < na; i++)
        cr_assert_eq(a[i], b[i], "port %u: %u != %u", i, a[i], b[i]);
}

static const char *or_empty(const char *s) { return s ? s : ""; }

static void machine_eq(const cs_machine *a, const cs_machine *b, bool decoded)
{
    cr_assert_eq(a->id, b->id);
    cr_assert_str_eq(a->name, or_empty(b->name));
    cr_assert_eq(a->nattrs, b->nattrs);
    for (uint32_t i = 0; i < a->nattrs; i++) {
        cr_assert_str_eq(a->attrs[i].key, b->attrs[i].key);
        cr_assert_str_eq(a->attrs[i].value, b->attrs[i].value);
    }
    cr_assert_eq(a->ntaints, b->ntaints);
    for (uint32_t i = 0; i < a->ntaints; i++) {
        cr_assert_str_eq(a->taints[i].key, b->taints[i].key);
        cr_assert_str_eq(a->taints[i].value, b->taints[i].value);
        cr_assert_eq(a->taints[i].effect, b->taints[i].effect);
    }
    res_eq(&a->capacity, &b->capacity, "capacity");
    cr_assert_eq(a->port_lo, b->port_lo);
    cr_assert_eq(a->port_hi, b->port_hi);
    cr_assert_eq(a->state, b->state);
    cr_assert_eq(a->admin, b->admin);
    cr_assert_eq(a->drain_deadline, b->drain_deadline);
    cr_assert_str_eq(a->log_url, or_empty(b->log_url));
    if (!decoded) {
        res_eq(&a->allocated, &b->allocated, "allocated");
        ports_eq(a->ports, a->nports, b->ports, b->nports);
        cr_assert_eq(a->ntasks, b->ntasks);
        cr_assert_eq(a->seq, b->seq);
    } else {
        /* The allocation and seq are not stored (the store derives them
         * from the placed tasks): a decoded record has none, seq = version. */
        cs_res zero = {0, 0, 0};
        res_eq(&a->allocated, &zero, "allocated");
        ports_eq(a->ports, a->nports, NULL, 0);
        cr_assert_eq(a->ntasks, 0);
        cr_assert_eq(a->seq, b->version);
    }
    cr_assert_eq(a->version, b->version);
}

static void job_eq(const cs_job *a, const cs_job *b)
{
    cr_assert_eq(a->id, b->id);
    cr_assert_str_eq(a->name, or_empty(b->name));
    cr_assert_eq(a->kind, b->kind);
    cr_assert_eq(a->state, b->state);
    cr_assert_eq(a->priority, b->priority);
    cr_assert_eq(a->count, b->count);
    res_eq(&a->res, &b->res, "resources");
    ports_eq(a->ports, a->nports, b->ports, b->nports);
    cr_assert_eq(a->nconstraints, b->nconstraints);
    for (uint32_t i = 0; i < a->nconstraints; i++) {
        cr_assert_str_eq(a->constraints[i].field, b->constraints[i].field);
        cr_assert_str_eq(a->constraints[i].op, b->constraints[i].op);
        cr_assert_str_eq(a->constraints[i].value, or_empty(b->constraints[i].value));
        cr_assert_eq(a->constraints[i].soft, b->constraints[i].soft, "constraint %u soft", i);
    }
    cr_assert_str_eq(a->cmd, or_empty(b->cmd));
    cr_assert_eq(a->extra_len, b->extra_len);
    if (a->extra_len > 0)
        cr_assert_arr_eq(a->extra, b->extra, a->extra_len);
    cr_assert_eq(a->spec_hash, b->spec_hash);
    cr_assert_eq(a->version, b->version);
    cr_assert_eq(a->submitted, b->submitted);
    cr_assert_str_eq(a->note, or_empty(b->note));
    cr_assert_eq(a->surge, b->surge);
}

static void task_eq(const cs_task *a, const cs_task *b)
{
    cr_assert_eq(a->id, b->id);
    cr_assert_eq(a->job, b->job);
    cr_assert_eq(a->index, b->index);
    cr_assert_eq(a->state, b->state);
    cr_assert_eq(a->last_end, b->last_end);
    cr_assert_eq(a->machine, b->machine);
    res_eq(&a->res, &b->res, "resources");
    ports_eq(a->ports, a->nports, b->ports, b->nports);
    cr_assert_eq(a->attempts, b->attempts);
    cr_assert_eq(a->exit_code, b->exit_code);
    cr_assert_str_eq(a->reason, or_empty(b->reason));
    cr_assert_eq(a->version, b->version);
    cr_assert_eq(a->health, b->health);
}

/* ---- one decoder for all three kinds ---------------------------------- */

enum { K_MACHINE, K_JOB, K_TASK, K_COUNT };
static const char *const kind_word[K_COUNT] = {"machine", "job", "task"};

static int decode_any(int kind, const void *data, size_t len, cs_arena *a, cs_error *err)
{
    cs_machine m;
    cs_job j;
    cs_task t;
    switch (kind) {
    case K_MACHINE:
        return cs_machine_decode(data, len, a, &m, err);
    case K_JOB:
        return cs_job_decode(data, len, a, &j, err);
    default:
        return cs_task_decode(data, len, a, &t, err);
    }
}

static void encode_sample(int kind, msgpack_sbuffer *sb)
{
    msgpack_sbuffer_init(sb);
    int rc;
    if (kind == K_MACHINE) {
        cs_machine m = sample_machine();
        rc = cs_machine_encode(&m, sb);
    } else if (kind == K_JOB) {
        cs_job j = sample_job();
        rc = cs_job_encode(&j, sb);
    } else {
        cs_task t = sample_task();
        rc = cs_task_encode(&t, sb);
    }
    cr_assert_eq(rc, CS_OK);
}

/* Decode must refuse with CS_ECORRUPT and a message containing each needle. */
static void expect_corrupt(int kind, const void *data, size_t len, const char *needle,
                           const char *needle2)
{
    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};
    int rc = decode_any(kind, data, len, &a, &err);
    cs_arena_free(&a);
    cr_assert_eq(rc, CS_ECORRUPT, "%s record of %zu bytes: rc %d (%s), expected CS_ECORRUPT",
                 kind_word[kind], len, rc, err.msg);
    cr_assert_eq(err.code, CS_ECORRUPT);
    cr_assert(strstr(err.msg, needle) != NULL, "message '%s' does not name '%s'", err.msg, needle);
    if (needle2 != NULL)
        cr_assert(strstr(err.msg, needle2) != NULL, "message '%s' does not name '%s'", err.msg,
                  needle2);
}

/* A valid encoding unpacked into a msgpack object tree that a test edits
 * and packs again: the way to build a record that is wrong in one field. */
typedef struct edit {
    msgpack_sbuffer src;
    msgpack_zone zone;
    msgpack_object root;
    msgpack_sbuffer out;
} edit;

static msgpack_object *edit_begin(edit *e, int kind)
{
    encode_sample(kind, &e->src);
    cr_assert(msgpack_zone_init(&e->zone, 1024));
    size_t off = 0;
    cr_assert_eq(msgpack_unpack(e->src.data, e->src.size, &off, &e->zone, &e->root),
                 MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(e->root.type, MSGPACK_OBJECT_ARRAY);
    msgpack_sbuffer_init(&e->out);
    return e->root.via.array.ptr;
}

static void edit_pack(edit *e)
{
    msgpack_packer pk;
    e->out.size = 0;
    msgpack_packer_init(&pk, &e->out, msgpack_sbuffer_write);
    cr_assert_eq(msgpack_pack_object(&pk, e->root), 0);
}

static void edit_end(edit *e)
{
    msgpack_sbuffer_destroy(&e->out);
    msgpack_zone_destroy(&e->zone);
    msgpack_sbuffer_destroy(&e->src);
}

static void set_uint(msgpack_object *o, uint64_t v)
{
    o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    o->via.u64 = v;
}

/* ======================================================================= */
/* round trips                                                              */

Test(record, machine_round_trip)
{
    cs_machine m = sample_machine();
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cr_assert_eq(cs_machine_encode(&m, &sb), CS_OK);
    cs_arena a;
    cs_arena_init(&a);
    cs_machine d;
    cs_error err = {0};
    cr_assert_eq(cs_machine_decode(sb.data, sb.size, &a, &d, &err), CS_OK, "%s", err.msg);
    machine_eq(&d, &m, true);
    /* Decoded strings and arrays live in the arena, not in the buffer. */
    cr_assert(d.name != m.name && d.ports != m.ports && d.attrs != m.attrs);
    msgpack_sbuffer_destroy(&sb);
    cs_arena_free(&a);
}

static void expect_einval(int rc, const cs_error *err, const char *needle);

Test(record, taints_are_validated)
{
    cs_error err = {0};
    cs_machine m = sample_machine();
    cs_taint t[2] = {{"k", "", CS_TAINT_NO_SCHEDULE}, {"k", "v", CS_TAINT_NO_SCHEDULE}};
    m.taints = t;
    m.ntaints = 2;
    expect_einval(cs_machine_validate(&m, &err), &err, "repeat k:NoSchedule");
    t[1].effect = CS_TAINT_EFFECT_COUNT;
    expect_einval(cs_machine_validate(&m, &err), &err, "unknown effect");
    t[1] = (cs_taint){"", "v", CS_TAINT_NO_EXECUTE};
    expect_einval(cs_machine_validate(&m, &err), &err, "empty key");
    t[0] = (cs_taint){"z", "", CS_TAINT_NO_SCHEDULE};
    t[1] = (cs_taint){"a", "", CS_TAINT_NO_SCHEDULE};
    expect_einval(cs_machine_validate(&m, &err), &err, "not sorted");
    cs_taints_sort(t, 2);
    cr_assert_eq(cs_machine_validate(&m, &err), CS_OK, "%s", err.msg);
    cr_assert_str_eq(t[0].key, "a");
}

Test(record, taint_text_is_parsed)
{
    cs_arena a;
    cs_arena_init(&a);
    cs_taint t;
    cs_error err = {0};
    cr_assert_eq(cs_taint_parse("dedicated=gpu:NoSchedule", &a, &t, &err), CS_OK, "%s", err.msg);
    cr_assert_str_eq(t.key, "dedicated");
    cr_assert_str_eq(t.value, "gpu");
    cr_assert_eq(t.effect, CS_TAINT_NO_SCHEDULE);
    cr_assert_eq(cs_taint_parse("spot:PreferNoSchedule", &a, &t, &err), CS_OK, "%s", err.msg);
    cr_assert_str_eq(t.key, "spot");
    cr_assert_str_eq(t.value, "");
    cr_assert_eq(t.effect, CS_TAINT_PREFER_NO_SCHEDULE);
    cr_assert_eq(cs_taint_parse("a=b=c:NoExecute", &a, &t, &err), CS_OK, "%s", err.msg);
    cr_assert_str_eq(t.value, "b=c");
    cr_assert_eq(cs_taint_parse("k=v", &a, &t, &err), CS_EINVAL);
    cr_assert(strstr(err.msg, "key=value:Effect") != NULL, "%s", err.msg);
    cr_assert_eq(cs_taint_parse("k=v:NoSchedul", &a, &t, &err), CS_EINVAL);
    cr_assert(strstr(err.msg, "'NoSchedul'") != NULL, "%s", err.msg);
    cr_assert_eq(cs_taint_parse("=v:NoSchedule", &a, &t, &err), CS_EINVAL);
    cr_assert(strstr(err.msg, "key is empty") != NULL, "%s", err.msg);
    for (uint8_t e = 0; e < CS_TAINT_EFFECT_COUNT; e++) {
        uint8_t back;
        cr_assert_eq(cs_taint_effect_parse(cs_taint_effect_name(e), &back), CS_OK);
        cr_assert_eq(back, e);
    }
    cs_arena_free(&a);
}

Test(record, job_round_trip)
{
    cs_job j = sample_job();
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cr_assert_eq(cs_job_encode(&j, &sb), CS_OK);
    cs_arena a;
    cs_arena_init(&a);
    cs_job d;
    cs_error err = {0};
    cr_assert_eq(cs_job_decode(sb.data, sb.size, &a, &d, &err), CS_OK, "%s", err.msg);
    job_eq(&d, &j);
    /* The soft flags differ between constraints: both values survive. */
    cr_assert(!d.constraints[0].soft && d.constraints[1].soft);
    msgpack_sbuffer_destroy(&sb);
    cs_arena_free(&a);
}

Test(record, task_round_trip)
{
    cs_task t = sample_task();
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cr_assert_eq(cs_task_encode(&t, &sb), CS_OK);
    cs_arena a;
    cs_arena_init(&a);
    cs_task d;
    cs_error err = {0};
    cr_assert_eq(cs_task_decode(sb.data, sb.size, &a, &d, &err), CS_OK, "%s", err.msg);
    task_eq(&d, &t);
    msgpack_sbuffer_destroy(&sb);
    cs_arena_free(&a);
}

/* Empty arrays, NULL strings and the extremes of every numeric field. */
Test(record, round_trip_limits_and_empties)
{
    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);

    cs_machine m = {0};
    m.id = UINT64_MAX;
    m.name = "x";
    m.capacity = (cs_res){CS_RES_MAX, CS_RES_MAX, CS_RES_MAX};
    m.port_lo = 1;
    m.port_hi = UINT16_MAX;
    m.ntasks = UINT32_MAX;
    m.state = CS_MACHINE_DOWN;
    m.seq = UINT64_MAX;
    m.version = UINT64_MAX;
    cs_machine dm;
    cr_assert_eq(cs_machine_encode(&m, &sb), CS_OK);
    cr_assert_eq(cs_machine_decode(sb.data, sb.size, &a, &dm, &err), CS_OK, "%s", err.msg);
    machine_eq(&dm, &m, true);
    cr_assert_eq(dm.nattrs, 0);
    cr_assert_eq(dm.nports, 0);

    cs_job j = {0};
    j.id = CS_JOB_ID_MAX;
    j.name = "j";
    j.kind = CS_JOB_BATCH;
    j.state = CS_JOB_KILLED;
    j.priority = INT32_MIN;
    j.count = CS_TASK_INDEX_MAX + 1;
    j.cmd = NULL; /* encodes as "" */
    j.spec_hash = UINT64_MAX;
    j.submitted = UINT64_MAX;
    j.note = NULL; /* encodes as nil, decodes as "" */
    j.surge = UINT32_MAX;
    cs_job dj;
    sb.size = 0;
    cr_assert_eq(cs_job_encode(&j, &sb), CS_OK);
    cr_assert_eq(cs_job_decode(sb.data, sb.size, &a, &dj, &err), CS_OK, "%s", err.msg);
    job_eq(&dj, &j);
    cr_assert_eq(dj.extra_len, 0);
    cr_assert_eq(dj.nconstraints, 0);

    cs_task t = {0};
    t.job = CS_JOB_ID_MAX;
    t.index = CS_TASK_INDEX_MAX;
    t.id = cs_task_id(t.job, t.index);
    t.state = CS_TASK_PREEMPTED;
    t.last_end = CS_TASK_PREEMPTED;
    t.exit_code = INT32_MIN;
    t.attempts = UINT32_MAX;
    t.health = CS_TASK_HEALTH_COUNT - 1;
    cs_task dt;
    sb.size = 0;
    cr_assert_eq(cs_task_encode(&t, &sb), CS_OK);
    cr_assert_eq(cs_task_decode(sb.data, sb.size, &a, &dt, &err), CS_OK, "%s", err.msg);
    task_eq(&dt, &t);
    cr_assert_eq(cs_task_job(dt.id), CS_JOB_ID_MAX);
    cr_assert_eq(cs_task_index(dt.id), CS_TASK_INDEX_MAX);

    msgpack_sbuffer_destroy(&sb);
    cs_arena_free(&a);
}

Test(record, copies_share_nothing)
{
    cs_arena a;
    cs_arena_init(&a);
    cs_machine m = sample_machine(), mc;
    cs_job j = sample_job(), jc;
    cr_assert_eq(cs_machine_copy(&m, &a, &mc), CS_OK);
    cr_assert_eq(cs_job_copy(&j, &a, &jc), CS_OK);
    machine_eq(&mc, &m, false);
    job_eq(&jc, &j);
    cr_assert(mc.name != m.name && mc.attrs != m.attrs && mc.attrs[0].key != m.attrs[0].key);
    cr_assert(mc.ports != m.ports);
    cr_assert(jc.constraints != j.constraints && jc.constraints[0].field != j.constraints[0].field);
    cr_assert(jc.extra != j.extra && jc.ports != j.ports && jc.cmd != j.cmd);
    cr_assert(jc.note != j.note);
    cs_arena_free(&a);
}

/* ======================================================================= */
/* canonical encoding and the spec hash                                     */

Test(record, encoding_is_canonical)
{
    for (int kind = 0; kind < K_COUNT; kind++) {
        msgpack_sbuffer x, y;
        encode_sample(kind, &x);
        encode_sample(kind, &y);
        cr_assert_eq(x.size, y.size, "%s", kind_word[kind]);
        cr_assert_arr_eq(x.data, y.data, x.size, "%s encodings differ", kind_word[kind]);

        /* decode then encode gives the same bytes again */
        cs_arena a;
        cs_arena_init(&a);
        cs_error err = {0};
        msgpack_sbuffer z;
        msgpack_sbuffer_init(&z);
        int rc;
        if (kind == K_MACHINE) {
            cs_machine m;
            rc = cs_machine_decode(x.data, x.size, &a, &m, &err);
            cr_assert_eq(rc, CS_OK, "%s", err.msg);
            rc = cs_machine_encode(&m, &z);
        } else if (kind == K_JOB) {
            cs_job j;
            rc = cs_job_decode(x.data, x.size, &a, &j, &err);
            cr_assert_eq(rc, CS_OK, "%s", err.msg);
            rc = cs_job_encode(&j, &z);
        } else {
            cs_task t;
            rc = cs_task_decode(x.data, x.size, &a, &t, &err);
            cr_assert_eq(rc, CS_OK, "%s", err.msg);
            rc = cs_task_encode(&t, &z);
        }
        cr_assert_eq(rc, CS_OK);
        cr_assert_eq(z.size, x.size, "%s re-encoding changed size", kind_word[kind]);
        cr_assert_arr_eq(z.data, x.data, x.size, "%s re-encoding changed bytes", kind_word[kind]);
        msgpack_sbuffer_destroy(&x);
        msgpack_sbuffer_destroy(&y);
        msgpack_sbuffer_destroy(&z);
        cs_arena_free(&a);
    }
}

static uint64_t hash_of(const cs_job *j)
{
    uint64_t h = 0;
    cr_assert_eq(cs_job_spec_hash(j, &h), CS_OK);
    return h;
}

Test(record, spec_hash_stable_and_ignores_identity)
{
    cs_job j = sample_job();
    uint64_t h = hash_of(&j);
    cr_assert_eq(hash_of(&j), h, "hash is not stable");

    cs_job k = j;
    k.id = 999;
    k.state = CS_JOB_KILLED;
    k.version = 12345;
    k.spec_hash = 1;
    cr_assert_eq(hash_of(&k), h, "id, state, version or spec_hash changed the hash");
    /* When it was submitted and what a scheduler says of it are not its
     * spec: a job.update must not see them as a change. */
    k.submitted = 1;
    k.note = "waiting";
    cr_assert_eq(hash_of(&k), h, "submitted or note changed the hash");
    /* Nor are the number of tasks and the surge slots: scaling is no new
     * version, and a task placed before a scale must not count as old. */
    k.count = j.count + 7;
    k.surge = 3;
    cr_assert_eq(hash_of(&k), h, "count or surge changed the hash");

    /* Equal content in other memory hashes equally. */
    cs_arena a;
    cs_arena_init(&a);
    cs_job c;
    cr_assert_eq(cs_job_copy(&j, &a, &c), CS_OK);
    cr_assert_eq(hash_of(&c), h);
    cs_arena_free(&a);
}

Test(record, spec_hash_changes_with_spec)
{
    const cs_job base = sample_job();
    const uint64_t h = hash_of(&base);
    cs_job j;
    uint16_t ports[3] = {8080, 0, 0};
    cs_constraint cons[3];
    uint8_t extra[sizeof sample_extra];

#define CHANGED(what)                                                        \
    cr_assert_neq(hash_of(&j), h, "changing %s did not change the hash", what); \
    j = base

    j = base;
    j.cmd = "/bin/web --port $PORT1";
    CHANGED("cmd");
    j.res.cpu++;
    CHANGED("cpu");
    j.res.mem++;
    CHANGED("mem");
    j.res.disk++;
    CHANGED("disk");
    j.priority = 6;
    CHANGED("priority");
    j.kind = CS_JOB_BATCH;
    CHANGED("kind");
    j.name = "web2";
    CHANGED("name");
    ports[0] = 8081;
    j.ports = ports;
    CHANGED("ports");
    j.nports = 2;
    CHANGED("number of ports");

    memcpy(cons, sample_cons, sizeof cons);
    cons[2].soft = false;
    j.constraints = cons;
    CHANGED("a constraint's soft flag");
    memcpy(cons, sample_cons, sizeof cons);
    cons[1].value = "r8";
    j.constraints = cons;
    CHANGED("a constraint's value");
    memcpy(cons, sample_cons, sizeof cons);
    cons[0].op = "!=";
    j.constraints = cons;
    CHANGED("a constraint's op");
    j.nconstraints = 2;
    CHANGED("the number of constraints");

    memcpy(extra, sample_extra, sizeof extra);
    extra[6] = 'y';
    j.extra = extra;
    CHANGED("extra");
    j.extra_len = 0;
    CHANGED("extra's length");
#undef CHANGED
    cr_assert_eq(hash_of(&j), h);
}

/* ======================================================================= */
/* bad input                                                                */

Test(record, every_strict_prefix_is_truncated)
{
    for (int kind = 0; kind < K_COUNT; kind++) {
        msgpack_sbuffer sb;
        encode_sample(kind, &sb);
        for (size_t len = 0; len < sb.size; len++)
            expect_corrupt(kind, sb.data, len, "truncated", kind_word[kind]);
        msgpack_sbuffer_destroy(&sb);
    }
}

/* A whole record followed by more bytes: a torn or overwritten value. */
static void append_trailing(int kind, msgpack_sbuffer *sb, int which)
{
    encode_sample(kind, sb);
    if (which == 0) {
        msgpack_sbuffer_write(sb, "\xc0", 1); /* one nil */
    } else {
        size_t one = sb->size;
        char *copy = malloc(one);
        memcpy(copy, sb->data, one);
        msgpack_sbuffer_write(sb, copy, one); /* a second record */
        free(copy);
    }
}

Test(record, trailing_bytes_are_refused)
{
    for (int kind = 0; kind < K_COUNT; kind++)
        for (int which = 0; which < 2; which++) {
            msgpack_sbuffer sb;
            append_trailing(kind, &sb, which);
            expect_corrupt(kind, sb.data, sb.size, kind_word[kind], "trailing");
            msgpack_sbuffer_destroy(&sb);
        }
}

Test(record, wrong_array_length)
{
    for (int kind = 0; kind < K_COUNT; kind++) {
        edit e;
        edit_begin(&e, kind);
        uint32_t n = e.root.via.array.size;
        char want[32];
        snprintf(want, sizeof want, "%u fields", n);
        e.root.via.array.size = n - 1; /* an older layout */
        edit_pack(&e);
        expect_corrupt(kind, e.out.data, e.out.size, want, kind_word[kind]);
        edit_end(&e);

        /* a newer layout: one more field */
        edit_begin(&e, kind);
        msgpack_object *f = calloc(n + 1, sizeof *f);
        memcpy(f, e.root.via.array.ptr, n * sizeof *f);
        f[n].type = MSGPACK_OBJECT_NIL;
        e.root.via.array.ptr = f;
        e.root.via.array.size = n + 1;
        edit_pack(&e);
        expect_corrupt(kind, e.out.data, e.out.size, want, kind_word[kind]);
        free(f);
        edit_end(&e);
    }
    /* not an array at all */
    const uint8_t map[] = {0x80};
    expect_corrupt(K_MACHINE, map, sizeof map, "array", "machine");
}

/* One field of one kind replaced by a value of the wrong type or range. */
typedef struct bad_field {
    int kind;
    uint32_t index;
    int how; /* 0: becomes an int; 1: becomes a string; 2: out-of-range uint */
    uint64_t value;
    const char *needle;
} bad_field;

static const bad_field bad_fields[] = {
    {K_MACHINE, 1, 0, 7, "'name'"},
    {K_MACHINE, 0, 1, 0, "'id'"},
    {K_MACHINE, 2, 0, 1, "'attrs'"},
    {K_MACHINE, 3, 0, 1, "'capacity'"},
    {K_MACHINE, 4, 2, 65536, "'port_lo'"},
    {K_MACHINE, 5, 1, 0, "'port_hi'"},
    {K_MACHINE, 6, 2, CS_MACHINE_STATE_COUNT, "'state'"},
    {K_MACHINE, 7, 1, 0, "'version'"},
    {K_JOB, 1, 2, CS_JOB_STATE_COUNT, "'state'"},
    {K_JOB, 2, 0, 1, "'name'"},
    {K_JOB, 3, 2, CS_JOB_KIND_COUNT, "'kind'"},
    {K_JOB, 4, 2, UINT64_C(1) << 31, "'priority'"},
    {K_JOB, 5, 1, 0, "'count'"},
    {K_JOB, 6, 1, 0, "'resources'"},
    {K_JOB, 8, 0, 1, "'constraints'"},
    {K_JOB, 9, 0, 1, "'cmd'"},
    {K_JOB, 10, 1, 0, "'extra'"},
    {K_JOB, 0, 2, CS_JOB_ID_MAX + 1, "'id'"},
    {K_JOB, 13, 1, 0, "'submitted'"},
    {K_JOB, 14, 0, 5, "'note'"},
    {K_JOB, 15, 1, 0, "'surge'"},
    {K_JOB, 15, 2, UINT64_C(1) << 32, "'surge'"},
    {K_JOB, 16, 1, 0, "'ended'"},
    {K_JOB, 17, 1, 0, "'reserved'"},
    {K_TASK, 1, 1, 0, "'job'"},
    {K_TASK, 3, 2, CS_TASK_STATE_COUNT, "'state'"},
    {K_TASK, 4, 2, 200, "'last_end'"},
    {K_TASK, 6, 0, 1, "'resources'"},
    {K_TASK, 9, 2, UINT64_C(1) << 31, "'exit_code'"},
    {K_TASK, 10, 1, 0, "'version'"},
    {K_TASK, 11, 0, 3, "'reason'"},
    {K_TASK, 12, 2, CS_TASK_HEALTH_COUNT, "'health'"},
    {K_TASK, 12, 1, 0, "'health'"},
    {K_TASK, 13, 1, 0, "'spec'"},
    {K_TASK, 14, 0, 0, "'reserved'"},
};

Test(record, wrong_field_type_or_range)
{
    for (size_t i = 0; i < sizeof bad_fields / sizeof bad_fields[0]; i++) {
        const bad_field *b = &bad_fields[i];
        edit e;
        msgpack_object *f = edit_begin(&e, b->kind);
        if (b->how == 0) {
            set_uint(&f[b->index], b->value);
        } else if (b->how == 1) {
            f[b->index].type = MSGPACK_OBJECT_STR;
            f[b->index].via.str.ptr = "oops";
            f[b->index].via.str.size = 4;
        } else {
            set_uint(&f[b->index], b->value);
        }
        edit_pack(&e);
        expect_corrupt(b->kind, e.out.data, e.out.size, b->needle, kind_word[b->kind]);
        edit_end(&e);
    }
}

Test(record, nested_shapes)
{
    edit e;
    /* a resource array of 2 */
    msgpack_object *f = edit_begin(&e, K_MACHINE);
    f[3].via.array.size = 2;
    edit_pack(&e);
    expect_corrupt(K_MACHINE, e.out.data, e.out.size, "'capacity'", NULL);
    edit_end(&e);

    /* a negative resource */
    f = edit_begin(&e, K_TASK);
    f[6].via.array.ptr[1].type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
    f[6].via.array.ptr[1].via.i64 = -1;
    edit_pack(&e);
    expect_corrupt(K_TASK, e.out.data, e.out.size, "'resources'", "range");
    edit_end(&e);

    /* attrs of odd length */
    f = edit_begin(&e, K_MACHINE);
    f[2].via.array.size = 5;
    edit_pack(&e);
    expect_corrupt(K_MACHINE, e.out.data, e.out.size, "'attrs'", NULL);
    edit_end(&e);

    /* a constraint whose soft flag is not a boolean */
    f = edit_begin(&e, K_JOB);
    set_uint(&f[8].via.array.ptr[1].via.array.ptr[3], 1);
    edit_pack(&e);
    expect_corrupt(K_JOB, e.out.data, e.out.size, "'constraints'", NULL);
    edit_end(&e);

    /* a constraint of 3 elements */
    f = edit_begin(&e, K_JOB);
    f[8].via.array.ptr[0].via.array.size = 3;
    edit_pack(&e);
    expect_corrupt(K_JOB, e.out.data, e.out.size, "'constraints'", NULL);
    edit_end(&e);

    /* a port above 65535 */
    f = edit_begin(&e, K_TASK);
    set_uint(&f[7].via.array.ptr[0], 70000);
    edit_pack(&e);
    expect_corrupt(K_TASK, e.out.data, e.out.size, "'ports'", NULL);
    edit_end(&e);

    /* a name longer than CS_NAME_MAX */
    char longname[CS_NAME_MAX + 2];
    memset(longname, 'n', sizeof longname);
    f = edit_begin(&e, K_JOB);
    f[2].via.str.ptr = longname;
    f[2].via.str.size = CS_NAME_MAX + 1;
    edit_pack(&e);
    expect_corrupt(K_JOB, e.out.data, e.out.size, "'name'", "long");
    edit_end(&e);
}

/* Job field `index`, a string, holding `size` bytes with a NUL among them. */
static void nul_in_job_string(uint32_t index, const char *bytes, uint32_t size, const char *field)
{
    edit e;
    msgpack_object *f = edit_begin(&e, K_JOB);
    f[index].type = MSGPACK_OBJECT_STR;
    f[index].via.str.ptr = bytes;
    f[index].via.str.size = size;
    edit_pack(&e);
    expect_corrupt(K_JOB, e.out.data, e.out.size, field, "NUL");
    edit_end(&e);
}

Test(record, string_with_nul_is_refused)
{
    edit e;
    msgpack_object *f = edit_begin(&e, K_MACHINE);
    f[1].via.str.ptr = "m\0x";
    f[1].via.str.size = 3;
    edit_pack(&e);
    expect_corrupt(K_MACHINE, e.out.data, e.out.size, "'name'", "NUL");
    edit_end(&e);

    f = edit_begin(&e, K_MACHINE);
    f[2].via.array.ptr[1].via.str.ptr = "x86\0";
    f[2].via.array.ptr[1].via.str.size = 4;
    edit_pack(&e);
    expect_corrupt(K_MACHINE, e.out.data, e.out.size, "'attrs'", "NUL");
    edit_end(&e);

    nul_in_job_string(9, "\0rm -rf", 7, "'cmd'");
    nul_in_job_string(14, "wait\0", 5, "'note'");
}

/* The note is bounded like a reason: a longer one is a corrupt record. */
Test(record, note_longer_than_its_limit_is_refused)
{
    static char long_note[CS_NOTE_MAX + 2];
    memset(long_note, 'n', CS_NOTE_MAX + 1);
    cs_job j = sample_job();
    j.note = long_note;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cr_assert_eq(cs_job_encode(&j, &sb), CS_OK);
    expect_corrupt(K_JOB, sb.data, sb.size, "'note'", "too long");
    sb.size = 0;
    long_note[CS_NOTE_MAX] = '\0'; /* exactly the limit */
    cr_assert_eq(cs_job_encode(&j, &sb), CS_OK);
    cs_arena a;
    cs_arena_init(&a);
    cs_job d;
    cs_error err = {0};
    cr_assert_eq(cs_job_decode(sb.data, sb.size, &a, &d, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(strlen(d.note), CS_NOTE_MAX);
    cs_arena_free(&a);
    msgpack_sbuffer_destroy(&sb);
}

Test(record, task_id_must_match_job_and_index)
{
    edit e;
    msgpack_object *f = edit_begin(&e, K_TASK);
    set_uint(&f[0], cs_task_id(7, 4)); /* index says 3 */
    edit_pack(&e);
    expect_corrupt(K_TASK, e.out.data, e.out.size, "'id'", NULL);
    edit_end(&e);

    f = edit_begin(&e, K_TASK);
    set_uint(&f[1], 8); /* job says 7 */
    edit_pack(&e);
    expect_corrupt(K_TASK, e.out.data, e.out.size, "'id'", NULL);
    edit_end(&e);
}

/* An index above bit 19 would spill into the job bits of the id. */
Test(record, task_index_beyond_20_bits_is_refused)
{
    edit e;
    msgpack_object *f = edit_begin(&e, K_TASK);
    set_uint(&f[0], UINT64_C(1) << CS_TASK_INDEX_BITS);
    set_uint(&f[1], 1);
    set_uint(&f[2], UINT64_C(1) << CS_TASK_INDEX_BITS);
    edit_pack(&e);
    expect_corrupt(K_TASK, e.out.data, e.out.size, "task", NULL);
    edit_end(&e);
}


/* Random bytes and random mutations of valid records through every
 * decoder: each answer is success or CS_ECORRUPT with a message, never a
 * crash, a leak or a huge allocation (ASan would abort on one). */
Test(record, random_garbage_never_crashes)
{
    uint64_t x = UINT64_C(0x9E3779B97F4A7C15); /* fixed seed */
    msgpack_sbuffer valid[K_COUNT];
    for (int k = 0; k < K_COUNT; k++)
        encode_sample(k, &valid[k]);
    uint8_t buf[256];
    cs_arena a;
    cs_arena_init(&a);
    unsigned errors = 0, oks = 0;
    for (int i = 0; i < 30000; i++) {
        int kind = (int)(cs_rng_next(&x) % K_COUNT);
        size_t len;
        if (i % 2 == 0) {
            len = cs_rng_next(&x) % 96;
            for (size_t b = 0; b < len; b++)
                buf[b] = (uint8_t)cs_rng_next(&x);
        } else {
            len = valid[kind].size;
            memcpy(buf, valid[kind].data, len);
            int flips = 1 + (int)(cs_rng_next(&x) % 4);
            for (int fl = 0; fl < flips; fl++) {
                size_t at = cs_rng_next(&x) % len;
                buf[at] = (uint8_t)cs_rng_next(&x);
            }
            if (cs_rng_next(&x) % 4 == 0)
                len = cs_rng_next(&x) % (len + 1);
        }
        cs_error err = {0};
        int rc = decode_any(kind, buf, len, &a, &err);
        cr_assert(rc == CS_OK || rc == CS_ECORRUPT, "iteration %d: unexpected code %d (%s)", i, rc,
                  err.msg);
        if (rc != CS_OK) {
            cr_assert_eq(err.code, rc);
            cr_assert(strstr(err.msg, kind_word[kind]) != NULL,
                      "iteration %d: message '%s' does not name the record kind", i, err.msg);
            errors++;
        } else {
            oks++;
        }
        cs_arena_reset(&a);
    }
    /* Both answers happen: the mutations are not all fatal nor all harmless. */
    cr_assert_gt(errors, 1000);
    cr_assert_gt(oks, 0);
    cs_arena_free(&a);
    for (int k = 0; k < K_COUNT; k++)
        msgpack_sbuffer_destroy(&valid[k]);
}

/* msgpack-c's unpacker reserves count * 24 bytes as soon as it reads an
 * array or map header: a 5-byte record must be refused as truncated before
 * that, not make the decoder ask for 128 GiB (ASan would abort). */
Test(record, huge_array_header_is_refused_cheaply)
{
    const uint8_t arr32[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    const uint8_t map32[] = {0xdd, 0x00, 0x00, 0x00, 0x0d, 0xdf, 0xff, 0xff, 0xff, 0xff};
    for (int kind = 0; kind < K_COUNT; kind++) {
        expect_corrupt(kind, arr32, sizeof arr32, kind_word[kind], NULL);
        expect_corrupt(kind, map32, sizeof map32, kind_word[kind], NULL);
    }
}

/* ======================================================================= */
/* validation                                                               */

static void expect_einval(int rc, const cs_error *err, const char *needle)
{
    cr_assert_eq(rc, CS_EINVAL, "rc %d (%s), expected CS_EINVAL", rc, err->msg);
    cr_assert_eq(err->code, CS_EINVAL);
    cr_assert(strstr(err->msg, needle) != NULL, "message '%s' does not name '%s'", err->msg,
              needle);
}

Test(record, res_validate)
{
    cs_error err = {0};
    cs_res ok = {0, CS_RES_MAX, 1};
    cr_assert_eq(cs_res_validate(&ok, "claim", &err), CS_OK, "%s", err.msg);

    cs_res r = {-1, 0, 0};
    expect_einval(cs_res_validate(&r, "claim 3", &err), &err, "cpu");
    cr_assert(strstr(err.msg, "claim 3") && strstr(err.msg, "negative"), "%s", err.msg);
    r = (cs_res){0, 0, INT64_MIN};
    expect_einval(cs_res_validate(&r, "x", &err), &err, "disk");
    r = (cs_res){0, CS_RES_MAX + 1, 0};
    expect_einval(cs_res_validate(&r, "x", &err), &err, "mem");
    cr_assert(strstr(err.msg, "too large"), "%s", err.msg);
    r = (cs_res){INT64_MAX, 0, 0};
    expect_einval(cs_res_validate(&r, "x", &err), &err, "cpu");
    /* NULL err is allowed */
    cr_assert_eq(cs_res_validate(&r, "x", NULL), CS_EINVAL);
}

Test(record, machine_validate)
{
    cs_error err = {0};
    cs_machine m = sample_machine();
    cr_assert_eq(cs_machine_validate(&m, &err), CS_OK, "%s", err.msg);
    m.port_lo = m.port_hi = 0; /* no dynamic ports at all */
    cr_assert_eq(cs_machine_validate(&m, &err), CS_OK, "%s", err.msg);

    m = sample_machine();
    m.name = "";
    expect_einval(cs_machine_validate(&m, &err), &err, "name");
    m.name = NULL;
    expect_einval(cs_machine_validate(&m, &err), &err, "name");

    char longname[CS_NAME_MAX + 2];
    memset(longname, 'a', sizeof longname - 1);
    longname[CS_NAME_MAX + 1] = '\0';
    m.name = longname;
    expect_einval(cs_machine_validate(&m, &err), &err, "name");
    longname[CS_NAME_MAX] = '\0';
    cr_assert_eq(cs_machine_validate(&m, &err), CS_OK, "a name of CS_NAME_MAX bytes: %s", err.msg);

    m = sample_machine();
    m.port_lo = 32000;
    m.port_hi = 31000;
    expect_einval(cs_machine_validate(&m, &err), &err, "port range");
    m.port_lo = 0;
    m.port_hi = 100;
    expect_einval(cs_machine_validate(&m, &err), &err, "port");

    m = sample_machine();
    m.capacity.mem = -1;
    expect_einval(cs_machine_validate(&m, &err), &err, "mem");

    m = sample_machine();
    m.state = CS_MACHINE_STATE_COUNT;
    expect_einval(cs_machine_validate(&m, &err), &err, "state");

    cs_attr unsorted[] = {{"zone", "a"}, {"arch", "b"}};
    m = sample_machine();
    m.attrs = unsorted;
    m.nattrs = 2;
    expect_einval(cs_machine_validate(&m, &err), &err, "sorted");
    cs_attr dup[] = {{"arch", "a"}, {"arch", "b"}};
    m.attrs = dup;
    expect_einval(cs_machine_validate(&m, &err), &err, "arch");
    cs_attr nokey[] = {{"", "a"}};
    m.attrs = nokey;
    m.nattrs = 1;
    expect_einval(cs_machine_validate(&m, &err), &err, "attribute");
}

Test(record, job_validate)
{
    cs_error err = {0};
    cs_job j = sample_job();
    cr_assert_eq(cs_job_validate(&j, &err), CS_OK, "%s", err.msg);

    j.name = "";
    expect_einval(cs_job_validate(&j, &err), &err, "name");

    j = sample_job();
    j.count = CS_TASK_INDEX_MAX + 1;
    cr_assert_eq(cs_job_validate(&j, &err), CS_OK, "the largest count: %s", err.msg);
    j.count = CS_TASK_INDEX_MAX + 2;
    expect_einval(cs_job_validate(&j, &err), &err, "count");

    j = sample_job();
    j.res.cpu = -1;
    expect_einval(cs_job_validate(&j, &err), &err, "cpu");

    j = sample_job();
    uint16_t dup[] = {8080, 0, 8080};
    j.ports = dup;
    expect_einval(cs_job_validate(&j, &err), &err, "8080");
    uint16_t dyn[] = {0, 0, 0}; /* several dynamic ports are fine */
    j.ports = dyn;
    cr_assert_eq(cs_job_validate(&j, &err), CS_OK, "%s", err.msg);

    j = sample_job();
    cs_constraint noop[] = {{"arch", "", "x86_64", false}};
    j.constraints = noop;
    j.nconstraints = 1;
    expect_einval(cs_job_validate(&j, &err), &err, "constraint 0");
    cs_constraint nullop[] = {{"arch", "==", "x", false}, {"rack", NULL, "r1", true}};
    j.constraints = nullop;
    j.nconstraints = 2;
    expect_einval(cs_job_validate(&j, &err), &err, "constraint 1");
    cs_constraint nofield[] = {{"", "exists", "", false}};
    j.constraints = nofield;
    j.nconstraints = 1;
    expect_einval(cs_job_validate(&j, &err), &err, "constraint");

    j = sample_job();
    j.kind = CS_JOB_KIND_COUNT;
    expect_einval(cs_job_validate(&j, &err), &err, "kind");

    j = sample_job();
    j.extra_len = CS_EXTRA_MAX + 1;
    expect_einval(cs_job_validate(&j, &err), &err, "options");
}

/* ======================================================================= */
/* names and ports                                                          */

Test(record, state_names_round_trip)
{
    for (uint8_t s = 0; s < CS_MACHINE_STATE_COUNT; s++) {
        uint8_t back = 0xff;
        const char *n = cs_machine_state_name(s);
        cr_assert_neq(strcmp(n, "unknown"), 0);
        cr_assert_eq(cs_machine_state_parse(n, &back), CS_OK, "%s", n);
        cr_assert_eq(back, s);
    }
    for (uint8_t s = 0; s < CS_TASK_STATE_COUNT; s++) {
        uint8_t back = 0xff;
        const char *n = cs_task_state_name(s);
        cr_assert_neq(strcmp(n, "unknown"), 0);
        cr_assert_eq(cs_task_state_parse(n, &back), CS_OK, "%s", n);
        cr_assert_eq(back, s);
    }
    for (uint8_t k = 0; k < CS_JOB_KIND_COUNT; k++) {
        uint8_t back = 0xff;
        const char *n = cs_job_kind_name(k);
        cr_assert_eq(cs_job_kind_parse(n, &back), CS_OK, "%s", n);
        cr_assert_eq(back, k);
    }
    for (uint8_t h = 0; h < CS_TASK_HEALTH_COUNT; h++) {
        uint8_t back = 0xff;
        const char *n = cs_task_health_name(h);
        cr_assert_eq(cs_task_health_parse(n, &back), CS_OK, "%s", n);
        cr_assert_eq(back, h);
    }
    cr_assert_str_eq(cs_task_health_name(CS_TASK_HEALTH_UNKNOWN), "unknown");
    cr_assert_str_eq(cs_task_health_name(CS_TASK_HEALTH_HEALTHY), "healthy");
    cr_assert_str_eq(cs_task_health_name(CS_TASK_HEALTH_UNHEALTHY), "unhealthy");
    cr_assert_str_eq(cs_machine_state_name(CS_MACHINE_DRAINING), "draining");
    cr_assert_str_eq(cs_task_state_name(CS_TASK_PREEMPTED), "preempted");
    cr_assert_str_eq(cs_job_kind_name(CS_JOB_SERVICE), "service");
    cr_assert_str_eq(cs_job_state_name(CS_JOB_KILLED), "killed");
    cr_assert_str_eq(cs_job_state_name(CS_JOB_ACTIVE), "active");

    cr_assert_str_eq(cs_machine_state_name(CS_MACHINE_STATE_COUNT), "unknown");
    cr_assert_str_eq(cs_task_state_name(255), "unknown");
    cr_assert_str_eq(cs_job_kind_name(CS_JOB_KIND_COUNT), "unknown");
    cr_assert_str_eq(cs_job_state_name(CS_JOB_STATE_COUNT), "unknown");

    uint8_t out = 42;
    cr_assert_eq(cs_machine_state_parse("sideways", &out), CS_EINVAL);
    cr_assert_eq(cs_task_state_parse("", &out), CS_EINVAL);
    cr_assert_eq(cs_task_state_parse("Running", &out), CS_EINVAL);
    cr_assert_eq(cs_job_kind_parse("unknown", &out), CS_EINVAL);
    cr_assert_eq(cs_task_health_parse("Healthy", &out), CS_EINVAL);
    cr_assert_eq(out, 42, "a failed parse wrote its output");
}

Test(record, ports_contains)
{
    cr_assert(!cs_ports_contains(NULL, 0, 80));
    const uint16_t one[] = {80};
    cr_assert(cs_ports_contains(one, 1, 80));
    cr_assert(!cs_ports_contains(one, 1, 79));
    cr_assert(!cs_ports_contains(one, 1, 81));
    const uint16_t edge[] = {0, 1, 65534, 65535};
    for (int i = 0; i < 4; i++)
        cr_assert(cs_ports_contains(edge, 4, edge[i]), "%u", edge[i]);
    cr_assert(!cs_ports_contains(edge, 4, 2));
    cr_assert(!cs_ports_contains(edge, 3, 65535), "n bounds the search");

    /* every even port of a large sorted list, odd ones absent */
    uint16_t *evens = malloc(32768 * sizeof *evens);
    for (uint32_t i = 0; i < 32768; i++)
        evens[i] = (uint16_t)(2 * i);
    for (uint32_t p = 0; p < 65536; p++)
        cr_assert_eq(cs_ports_contains(evens, 32768, (uint16_t)p), p % 2 == 0, "port %u", p);
    free(evens);
}

/* ======================================================================= */
/* the arena                                                                */

Test(arena, many_allocations_aligned_and_disjoint)
{
    cs_arena a;
    cs_arena_init(&a);
    enum { N = 20000 };
    unsigned char **p = malloc(N * sizeof *p);
    size_t *sz = malloc(N * sizeof *sz);
    uint64_t x = 12345;
    for (int i = 0; i < N; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        /* mostly small, sometimes larger than a whole chunk */
        sz[i] = i % 997 == 0 ? 100000 + (x >> 50) : (x >> 58) + (i % 3 == 0 ? 0 : 1);
        p[i] = cs_arena_alloc(&a, sz[i]);
        cr_assert_not_null(p[i], "allocation %d of %zu bytes", i, sz[i]);
        cr_assert_eq((uintptr_t)p[i] % alignof(max_align_t), 0, "allocation %d misaligned", i);
        memset(p[i], (unsigned char)i, sz[i]);
    }
    /* nothing was overwritten by a later allocation */
    for (int i = 0; i < N; i++)
        for (size_t b = 0; b < sz[i]; b++)
            cr_assert_eq(p[i][b], (unsigned char)i, "allocation %d byte %zu", i, b);

    char *s = cs_arena_strndup(&a, "hello, world", 5);
    cr_assert_str_eq(s, "hello");
    char *e = cs_arena_strndup(&a, NULL, 0);
    cr_assert_not_null(e);
    cr_assert_str_eq(e, "");

    free(p);
    free(sz);
    cs_arena_free(&a);
}

Test(arena, reset_and_free_allow_reuse)
{
    cs_arena a;
    cs_arena_init(&a);
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 500; i++) {
            uint64_t *v = cs_arena_alloc(&a, sizeof *v * (size_t)(1 + i % 7));
            cr_assert_not_null(v);
            cr_assert_eq((uintptr_t)v % alignof(max_align_t), 0);
            *v = (uint64_t)i;
        }
        cs_arena_reset(&a);
        cr_assert_not_null(a.head, "reset dropped the chunk it should keep");
    }
    void *before = cs_arena_alloc(&a, 16);
    cs_arena_reset(&a);
    void *after = cs_arena_alloc(&a, 16);
    cr_assert_eq(before, after, "reset did not rewind the kept chunk");

    cs_arena_free(&a);
    cr_assert_null(a.head);
    /* usable again after free, and after free of an empty arena */
    cr_assert_not_null(cs_arena_alloc(&a, 1));
    cs_arena_free(&a);
    cs_arena_free(&a);
    cs_arena_reset(&a);
    cs_arena_init(&a);
    cr_assert_not_null(cs_arena_strndup(&a, "x", 1));
    cs_arena_free(&a);
}

/* A size near SIZE_MAX must not wrap when rounded to the alignment. */
Test(arena, huge_request_returns_null)
{
    cs_arena a;
    cs_arena_init(&a);
    for (size_t d = 0; d < 16; d++)
        cr_assert_null(cs_arena_alloc(&a, SIZE_MAX - d), "alloc(SIZE_MAX - %zu) succeeded", d);
    cs_arena_free(&a);
}
