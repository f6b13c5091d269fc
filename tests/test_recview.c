/* test_recview.c — the fast path for task records agrees with
 * cs_task_decode: it takes every record cs_task_encode writes, gives the
 * same struct, and never takes a record cs_task_decode refuses. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "cellstate/rng.h"
#include "cellstate/recview.h"

/* A value of up to 64 bits whose width varies, so that every integer
 * encoding appears. */
static uint64_t some_width(uint64_t *s)
{
    int bits = (int)(cs_rng_next(s) % 65);
    uint64_t v = cs_rng_next(s);
    return bits == 64 ? v : v & ((UINT64_C(1) << bits) - 1);
}

/* A valid task with fields of every width, ports and reasons included. */
static void random_task(uint64_t *s, cs_arena *a, cs_task *t)
{
    memset(t, 0, sizeof *t);
    t->job = some_width(s) % (CS_JOB_ID_MAX + 1);
    t->index = (uint32_t)(some_width(s) % (CS_TASK_INDEX_MAX + 1));
    t->id = cs_task_id(t->job, t->index);
    t->state = (uint8_t)(cs_rng_next(s) % CS_TASK_STATE_COUNT);
    t->last_end = (uint8_t)(cs_rng_next(s) % CS_TASK_STATE_COUNT);
    t->machine = some_width(s);
    t->res.cpu = (int64_t)(some_width(s) % (uint64_t)CS_RES_MAX);
    t->res.mem = (int64_t)(some_width(s) % (uint64_t)CS_RES_MAX);
    t->res.disk = (int64_t)(some_width(s) % (uint64_t)CS_RES_MAX);
    bool ports = cs_rng_next(s) % 4 == 0;
    t->nports = ports ? (uint32_t)(cs_rng_next(s) % (CS_PORTS_PER_TASK_MAX + 1)) : 0;
    t->ports = t->nports ? cs_arena_alloc(a, t->nports * sizeof *t->ports) : NULL;
    for (uint32_t i = 0; i < t->nports; i++)
        t->ports[i] = (uint16_t)cs_rng_next(s);
    t->attempts = (uint32_t)some_width(s);
    t->exit_code = (int32_t)(uint32_t)some_width(s);
    t->version = some_width(s);
    size_t rlen = cs_rng_next(s) % 3 == 0 ? (size_t)(cs_rng_next(s) % (CS_REASON_MAX + 1)) : 0;
    char *reason = cs_arena_alloc(a, rlen + 1);
    for (size_t i = 0; i < rlen; i++)
        reason[i] = (char)('a' + cs_rng_next(s) % 26);
    reason[rlen] = '\0';
    t->reason = reason;
    t->health = (uint8_t)(cs_rng_next(s) % CS_TASK_HEALTH_COUNT);
    t->spec = some_width(s);
}

/* A random valid task (in *t, its arrays in `a`) and its encoding. */
static void encode_random(uint64_t *s, cs_arena *a, cs_task *t, msgpack_sbuffer *buf)
{
    cs_arena_reset(a);
    random_task(s, a, t);
    msgpack_sbuffer_init(buf);
    cr_assert_eq(cs_task_encode(t, buf), CS_OK);
}

static void assert_same(const cs_task *x, const cs_task *y, const char *what)
{
    cr_assert_eq(x->id, y->id, "%s: id", what);
    cr_assert_eq(x->job, y->job, "%s: job", what);
    cr_assert_eq(x->index, y->index, "%s: index", what);
    cr_assert_eq(x->state, y->state, "%s: state", what);
    cr_assert_eq(x->last_end, y->last_end, "%s: last_end", what);
    cr_assert_eq(x->machine, y->machine, "%s: machine", what);
    cr_assert(memcmp(&x->res, &y->res, sizeof x->res) == 0, "%s: resources", what);
    cr_assert_eq(x->nports, y->nports, "%s: nports", what);
    if (x->nports > 0)
        cr_assert(memcmp(x->ports, y->ports, x->nports * sizeof *x->ports) == 0, "%s: ports",
                  what);
    cr_assert_eq(x->attempts, y->attempts, "%s: attempts", what);
    cr_assert_eq(x->exit_code, y->exit_code, "%s: exit_code", what);
    cr_assert_eq(x->version, y->version, "%s: version", what);
    cr_assert_str_eq(x->reason, y->reason, "%s: reason", what);
    cr_assert_eq(x->health, y->health, "%s: health", what);
    cr_assert_eq(x->spec, y->spec, "%s: spec", what);
}

Test(recview, takes_every_encoded_task_and_agrees)
{
    uint64_t s = 0x2545F4914F6CDD1DULL;
    cs_arena a;
    cs_arena_init(&a);
    for (int i = 0; i < 5000; i++) {
        cs_task t, fast, slow;
        msgpack_sbuffer buf;
        encode_random(&s, &a, &t, &buf);
        char what[32];
        snprintf(what, sizeof what, "task %d", i);
        /* A layout change in record.c lands here first: update recview.c. */
        cr_assert(cs_task_view(buf.data, buf.size, &a, &fast),
                  "%s: the fast path declined a record cs_task_encode wrote", what);
        cs_error err = {0};
        cr_assert_eq(cs_task_decode(buf.data, buf.size, &a, &slow, &err), CS_OK, "%s: %s", what,
                     err.msg);
        assert_same(&fast, &t, what);
        assert_same(&fast, &slow, what);
        msgpack_sbuffer_destroy(&buf);
    }
    cs_arena_free(&a);
}

/* Damaged records: whatever the fast path takes, cs_task_decode takes too,
 * with the same result. Each input is its own allocation of exactly its
 * length, so that ASan sees any read past it. */
Test(recview, takes_nothing_the_decoder_refuses)
{
    uint64_t s = 0x9E3779B97F4A7C15ULL;
    cs_arena a;
    cs_arena_init(&a);
    int taken = 0, refused = 0;
    for (int i = 0; i < 20000; i++) {
        cs_task t, fast, slow;
        msgpack_sbuffer buf;
        encode_random(&s, &a, &t, &buf);
        size_t len = buf.size;
        switch (cs_rng_next(&s) % 3) {
        case 0: /* truncated */
            len = (size_t)(cs_rng_next(&s) % buf.size);
            break;
        case 1: /* one byte changed */
            buf.data[cs_rng_next(&s) % buf.size] = (char)cs_rng_next(&s);
            break;
        default: /* two bytes changed */
            buf.data[cs_rng_next(&s) % buf.size] = (char)cs_rng_next(&s);
            buf.data[cs_rng_next(&s) % buf.size] = (char)cs_rng_next(&s);
            break;
        }
        uint8_t *in = malloc(len ? len : 1);
        memcpy(in, buf.data, len);
        msgpack_sbuffer_destroy(&buf);
        char what[32];
        snprintf(what, sizeof what, "input %d", i);
        cs_error err = {0};
        int rc = cs_task_decode(in, len, &a, &slow, &err);
        if (cs_task_view(in, len, &a, &fast)) {
            cr_assert_eq(rc, CS_OK, "%s: the fast path took a record the decoder refuses (%s)",
                         what, err.msg);
            assert_same(&fast, &slow, what);
            taken++;
        } else {
            refused++;
        }
        free(in);
    }
    /* Both outcomes must occur, or the test proves nothing. */
    cr_assert_gt(taken, 100);
    cr_assert_gt(refused, 100);
    cs_arena_free(&a);
}
