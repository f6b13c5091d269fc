/* test_synccompact.c — the compact form of `sync` (docs/protocol.md §5.7):
 * the in-place msgpack cursor, task runs encoded and read back (a run
 * broken by one placed task), strict errors on malformed entries and
 * replies, a property test that a copy built from compact replies equals
 * one built from the map form over random cells and histories, and both
 * forms from a real cellstated. */
#include <criterion/criterion.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cellstate/rng.h"
#include "proto/client.h"
#include "cellstate/mpcheck.h"
#include "proto/proto.h"
#include "proto/sync.h"
#include "txn/commit.h"
#include "txn/ops.h"
#include "schedulers/cellcopy.h"
#include "tests/cellbuild.h"
#include "tests/support.h"

/* ---- the cursor ------------------------------------------------------------------ */

Test(synccompact, cursor_reads_every_integer_width)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    static const uint64_t us[] = {0, 127, 128, 255, 256, 65535, 65536, UINT32_MAX,
                                  (uint64_t)UINT32_MAX + 1, UINT64_MAX};
    static const int64_t is[] = {-1, -32, -33, -128, -129, -32768, -32769, INT32_MIN,
                                 (int64_t)INT32_MIN - 1, INT64_MIN, INT64_MAX};
    for (size_t i = 0; i < sizeof us / sizeof us[0]; i++)
        msgpack_pack_uint64(&pk, us[i]);
    for (size_t i = 0; i < sizeof is / sizeof is[0]; i++)
        msgpack_pack_int64(&pk, is[i]);
    /* A positive value in a signed encoding is still an unsigned one. */
    const char signed_pos[] = "\xd1\x01\x00"; /* int16 256 */
    msgpack_sbuffer_write(&b, signed_pos, 3);
    cs_mp_cur c;
    cs_mp_cur_init(&c, b.data, b.size);
    for (size_t i = 0; i < sizeof us / sizeof us[0]; i++) {
        uint64_t v;
        cr_assert_eq(cs_mp_read_uint(&c, &v), CS_OK, "uint %zu", i);
        cr_assert_eq(v, us[i]);
    }
    for (size_t i = 0; i < sizeof is / sizeof is[0]; i++) {
        uint64_t u;
        const uint8_t *at = c.p;
        if (is[i] < 0) {
            cr_assert_eq(cs_mp_read_uint(&c, &u), CS_EPROTO, "%lld is not unsigned",
                         (long long)is[i]);
            cr_assert_eq(c.p, at, "a refused read consumes nothing");
        }
        int64_t v;
        cr_assert_eq(cs_mp_read_int(&c, &v), CS_OK, "int %zu", i);
        cr_assert_eq(v, is[i]);
    }
    uint64_t v;
    cr_assert_eq(cs_mp_read_uint(&c, &v), CS_OK);
    cr_assert_eq(v, 256);
    cr_assert_eq(cs_mp_cur_left(&c), 0);
    cr_assert_eq(cs_mp_read_uint(&c, &v), CS_EPROTO, "nothing left");
    msgpack_sbuffer_destroy(&b);

    /* uint64 above INT64_MAX is not an int. */
    cs_mp_cur_init(&c, "\xcf\x80\0\0\0\0\0\0\0", 9);
    int64_t iv;
    cr_assert_eq(cs_mp_read_int(&c, &iv), CS_EPROTO);
}

Test(synccompact, cursor_refuses_wrong_types_and_short_input)
{
    cs_mp_cur c;
    uint32_t n;
    const char *s;
    bool bv;
    uint64_t u;
    /* A map is not an array, a string is not an integer, ... */
    cs_mp_cur_init(&c, "\x81\xa1k\x01", 4);
    cr_assert_eq(cs_mp_read_array(&c, &n), CS_EPROTO);
    cr_assert_eq(cs_mp_read_map(&c, &n), CS_OK);
    cr_assert_eq(n, 1);
    cr_assert_eq(cs_mp_read_uint(&c, &u), CS_EPROTO);
    cr_assert_eq(cs_mp_read_str(&c, &s, &n), CS_OK);
    cr_assert(n == 1 && s[0] == 'k');
    cr_assert_eq(cs_mp_read_bool(&c, &bv), CS_EPROTO);
    cr_assert_eq(cs_mp_read_uint(&c, &u), CS_OK);
    /* An array declaring more elements than bytes are left. */
    cs_mp_cur_init(&c, "\xdd\xff\xff\xff\xff\x01", 6);
    cr_assert_eq(cs_mp_read_array(&c, &n), CS_EPROTO);
    cs_mp_cur_init(&c, "\x93\x01\x02", 3);
    cr_assert_eq(cs_mp_read_array(&c, &n), CS_EPROTO);
    /* A string longer than the input; a truncated integer. */
    cs_mp_cur_init(&c, "\xa5" "abc", 4);
    cr_assert_eq(cs_mp_read_str(&c, &s, &n), CS_EPROTO);
    cs_mp_cur_init(&c, "\xcd\x01", 2);
    cr_assert_eq(cs_mp_read_uint(&c, &u), CS_EPROTO);
    /* Raw spans: one whole value, or nothing when it is truncated. */
    const void *start;
    size_t len;
    cs_mp_cur_init(&c, "\x92\x01\xa1x\x05", 5);
    cr_assert_eq(cs_mp_read_raw(&c, &start, &len), CS_OK);
    cr_assert_eq(len, 4);
    cr_assert_eq(cs_mp_cur_left(&c), 1);
    cs_mp_cur_init(&c, "\x92\x01", 2);
    cr_assert_eq(cs_mp_read_raw(&c, &start, &len), CS_EPROTO);
}

Test(synccompact, cursor_reads_bins_of_every_width_and_nil)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    static char data[70000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)(i * 7);
    const uint32_t sizes[] = {0, 10, 300, 70000}; /* bin8 twice, bin16, bin32 */
    for (int i = 0; i < 4; i++) {
        msgpack_pack_bin(&pk, sizes[i]);
        msgpack_pack_bin_body(&pk, data, sizes[i]);
    }
    msgpack_pack_nil(&pk);
    msgpack_pack_str(&pk, 1);
    msgpack_pack_str_body(&pk, "x", 1);
    cs_mp_cur c;
    cs_mp_cur_init(&c, b.data, b.size);
    for (int i = 0; i < 4; i++) {
        const void *p;
        uint32_t n;
        cr_assert_eq(cs_mp_read_nil(&c), false, "a bin read as nil");
        cr_assert_eq(cs_mp_read_bin(&c, &p, &n), CS_OK, "bin of %u", sizes[i]);
        cr_assert_eq(n, sizes[i]);
        cr_assert(memcmp(p, data, n) == 0);
    }
    const void *p;
    uint32_t n;
    cr_assert_eq(cs_mp_read_bin(&c, &p, &n), CS_EPROTO, "nil read as a bin");
    cr_assert(cs_mp_read_nil(&c));
    cr_assert_eq(cs_mp_read_bin(&c, &p, &n), CS_EPROTO, "a string read as a bin");
    cr_assert_eq(cs_mp_cur_left(&c), 2, "a refused read consumed input");
    /* A bin longer than the input. */
    cs_mp_cur_init(&c, "\xc4\x05" "ab", 4);
    cr_assert_eq(cs_mp_read_bin(&c, &p, &n), CS_EPROTO);
    msgpack_sbuffer_destroy(&b);
}

/* ---- runs of tasks ------------------------------------------------------------------- */

static cs_task pending_task(cs_id job, uint32_t index)
{
    return (cs_task){.id = cs_task_id(job, index), .job = job, .index = index,
                     .state = CS_TASK_PENDING, .last_end = CS_TASK_PENDING,
                     .res = {500, 256, 0}, .reason = "", .version = 7};
}

/* Encode `ts` into entries, then read them back expanded into `out`;
 * returns the number of entries. */
static uint32_t round_trip(const cs_task *ts, uint32_t n, cs_task *out, uint32_t *nout,
                           cs_arena *a)
{
    cs_task_runs *r = malloc(sizeof *r);
    cr_assert_not_null(r);
    cs_task_runs_init(r);
    for (uint32_t i = 0; i < n; i++)
        cr_assert_eq(cs_task_runs_add(r, &ts[i]), CS_OK);
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    cr_assert_eq(cs_task_runs_finish(r, &pk), CS_OK);
    cs_task_runs_free(r);
    free(r);

    cs_mp_cur c;
    cs_mp_cur_init(&c, b.data, b.size);
    uint32_t entries;
    cr_assert_eq(cs_mp_read_array(&c, &entries), CS_OK);
    *nout = 0;
    for (uint32_t e = 0; e < entries; e++) {
        cs_task t;
        uint32_t run;
        cs_error err = {0};
        cr_assert_eq(cs_read_task_entry(&c, a, &t, &run, &err), CS_OK, "%s", err.msg);
        for (uint32_t k = 0; k < run; k++) {
            cr_assert_lt(*nout, n, "more tasks read back than written");
            out[*nout] = t;
            out[*nout].id = t.id + k;
            out[*nout].index = t.index + k;
            (*nout)++;
        }
    }
    cr_assert_eq(cs_mp_cur_left(&c), 0);
    msgpack_sbuffer_destroy(&b);
    return entries;
}

static void assert_same_task(const cs_task *x, const cs_task *y)
{
    cr_assert_eq(x->id, y->id);
    cr_assert_eq(x->job, y->job);
    cr_assert_eq(x->index, y->index);
    cr_assert_eq(x->state, y->state, "task %llu", (unsigned long long)x->id);
    cr_assert_eq(x->last_end, y->last_end);
    cr_assert_eq(x->machine, y->machine);
    cr_assert(x->res.cpu == y->res.cpu && x->res.mem == y->res.mem && x->res.disk == y->res.disk);
    cr_assert_eq(x->nports, y->nports);
    for (uint32_t i = 0; i < x->nports; i++)
        cr_assert_eq(x->ports[i], y->ports[i]);
    cr_assert_eq(x->attempts, y->attempts);
    cr_assert_eq(x->exit_code, y->exit_code);
    cr_assert_str_eq(x->reason, y->reason);
    cr_assert_eq(x->health, y->health);
    cr_assert_eq(x->spec, y->spec);
    cr_assert_eq(x->version, y->version);
}

Test(synccompact, pending_tasks_of_a_job_are_one_entry)
{
    cs_task ts[1000], back[1000];
    for (uint32_t i = 0; i < 1000; i++)
        ts[i] = pending_task(3, i);
    cs_arena a;
    cs_arena_init(&a);
    uint32_t n;
    cr_assert_eq(round_trip(ts, 1000, back, &n, &a), 1);
    cr_assert_eq(n, 1000);
    for (uint32_t i = 0; i < n; i++)
        assert_same_task(&ts[i], &back[i]);
    cs_arena_free(&a);
}

Test(synccompact, a_run_broken_by_one_placed_task)
{
    cs_task ts[20], back[20];
    uint16_t ports[2] = {31000, 8080};
    for (uint32_t i = 0; i < 10; i++)
        ts[i] = pending_task(3, i);
    ts[5].state = CS_TASK_ASSIGNED;
    ts[5].machine = 9;
    ts[5].attempts = 1;
    ts[5].ports = ports;
    ts[5].nports = 2;
    ts[5].exit_code = -3;
    ts[5].reason = "a reason";
    ts[5].health = CS_TASK_HEALTH_UNHEALTHY;
    ts[5].spec = UINT64_MAX;
    /* Then: another job (not joined to job 3's run though its index
     * follows), a gap in indexes, a different version. */
    ts[10] = pending_task(4, 10);
    ts[11] = pending_task(4, 12);
    ts[12] = pending_task(4, 13);
    ts[13] = pending_task(4, 14);
    ts[13].version = 8;
    cs_arena a;
    cs_arena_init(&a);
    uint32_t n;
    /* [0..4] [5] [6..9] | [10] [12 13] [14] */
    cr_assert_eq(round_trip(ts, 14, back, &n, &a), 6);
    cr_assert_eq(n, 14);
    for (uint32_t i = 0; i < n; i++)
        assert_same_task(&ts[i], &back[i]);
    cs_arena_free(&a);
}

Test(synccompact, runs_refuse_what_a_task_map_refuses)
{
    cs_task_runs *r = malloc(sizeof *r);
    cs_task_runs_init(r);
    cs_task t = pending_task(1, 0);
    t.nports = CS_PORTS_PER_TASK_MAX + 1;
    cr_assert_eq(cs_task_runs_add(r, &t), CS_EINVAL);
    cs_task_runs_free(r);
    free(r);
}

/* ---- malformed entries ------------------------------------------------------------------ */

/* Pack an entry of `nfields` fields (15 for a well-formed one) whose field
 * `bad` (or none: -1) is replaced by `how`: 's' a string, 'n' -1, 'b' a
 * value above the field's range. */
static void pack_entry(msgpack_packer *pk, uint32_t nfields, int bad, char how)
{
    msgpack_pack_array(pk, nfields);
    for (uint32_t f = 0; f < nfields && f < CS_TASK_ENTRY_FIELDS; f++) {
        if ((int)f == bad) {
            if (how == 's')
                cs_pack_str(pk, "x");
            else if (how == 'n')
                msgpack_pack_int64(pk, -1);
            else if (f == 1)
                msgpack_pack_uint64(pk, 0); /* a run of no task */
            else if (f == 8)
                for (uint32_t i = 0, n = (msgpack_pack_array(pk, 65), 65); i < n; i++)
                    msgpack_pack_uint32(pk, 31000 + i);
            else
                msgpack_pack_uint64(pk, f == 2 || f == 3 ? 8 : f == 12 ? 3 : f == 10 ? (1ULL << 40) : UINT64_MAX);
            continue;
        }
        switch (f) {
        case 0: msgpack_pack_uint64(pk, cs_task_id(5, 2)); break;
        case 1: msgpack_pack_uint32(pk, 3); break;
        case 8: msgpack_pack_array(pk, 1); msgpack_pack_uint32(pk, 31000); break;
        case 11: cs_pack_str(pk, "ok"); break;
        default: msgpack_pack_uint32(pk, 1); break;
        }
    }
}

static int read_entry(int bad, char how, uint32_t nfields, cs_error *err)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    pack_entry(&pk, nfields, bad, how);
    cs_mp_cur c;
    cs_mp_cur_init(&c, b.data, b.size);
    cs_arena a;
    cs_arena_init(&a);
    cs_task t;
    uint32_t run = 0;
    int rc = cs_read_task_entry(&c, &a, &t, &run, err);
    if (rc == CS_OK) {
        cr_assert_eq(t.id, cs_task_id(5, 2));
        cr_assert_eq(t.job, 5);
        cr_assert_eq(t.index, 2);
        cr_assert_eq(run, 3);
        cr_assert_eq(t.state, CS_TASK_ASSIGNED);
        cr_assert_eq(t.nports, 1);
        cr_assert_eq(t.ports[0], 31000);
        cr_assert_str_eq(t.reason, "ok");
    }
    cs_arena_free(&a);
    msgpack_sbuffer_destroy(&b);
    return rc;
}

Test(synccompact, malformed_entries_name_the_field)
{
    cs_error err = {0};
    cr_assert_eq(read_entry(-1, 0, 15, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(read_entry(-1, 0, 14, &err), CS_EPROTO);
    cr_assert(strstr(err.msg, "array of 15 fields"), "%s", err.msg);
    static const char *const names[CS_TASK_ENTRY_FIELDS] = {
        "'id' (0)", "'n' (1)", "'state' (2)", "'last_end' (3)", "'machine' (4)", "'cpu' (5)",
        "'mem' (6)", "'disk' (7)", "'ports' (8)", "'attempts' (9)", "'exit_code' (10)",
        "'reason' (11)", "'health' (12)", "'spec' (13)", "'version' (14)"};
    for (int f = 0; f < CS_TASK_ENTRY_FIELDS; f++) {
        /* Every field refuses a string but `reason`, which refuses an integer. */
        cr_assert_eq(read_entry(f, f == 11 ? 'n' : 's', 15, &err), CS_EPROTO, "field %d", f);
        cr_assert(strstr(err.msg, names[f]), "field %d: %s", f, err.msg);
        /* Unsigned fields refuse -1; ranges are checked. */
        if (f != 5 && f != 6 && f != 7 && f != 10 && f != 11) {
            cr_assert_eq(read_entry(f, 'n', 15, &err), CS_EPROTO, "field %d: -1", f);
            cr_assert(strstr(err.msg, names[f]), "field %d: %s", f, err.msg);
        }
        if (f == 1 || f == 2 || f == 3 || f == 8 || f == 10 || f == 12) {
            cr_assert_eq(read_entry(f, 'b', 15, &err), CS_EPROTO, "field %d: out of range", f);
            cr_assert(strstr(err.msg, names[f]), "field %d: %s", f, err.msg);
        }
    }
    /* Negative resources. */
    cr_assert_eq(read_entry(5, 'n', 15, &err), CS_EPROTO);
    cr_assert(strstr(err.msg, "'cpu' (5)"), "%s", err.msg);
}

Test(synccompact, a_run_may_not_pass_the_last_index)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    cs_task t = pending_task(2, CS_TASK_INDEX_MAX - 1);
    cs_task_runs *r = malloc(sizeof *r);
    cs_task_runs_init(r);
    cr_assert_eq(cs_task_runs_add(r, &t), CS_OK);
    t = pending_task(2, CS_TASK_INDEX_MAX);
    cr_assert_eq(cs_task_runs_add(r, &t), CS_OK);
    cr_assert_eq(cs_task_runs_finish(r, &pk), CS_OK);
    cs_task_runs_free(r);
    free(r);
    /* Written as a run of 2 ending at the last index: fine. Make it 3. */
    const uint8_t *p = (const uint8_t *)b.data;
    cr_assert_eq(p[0], 0x91);
    cr_assert_eq(p[1], 0x9f);
    size_t n_at = 2 + 5; /* after the id (a uint32) */
    cr_assert_eq(p[n_at], 2);
    cs_mp_cur c;
    cs_arena a;
    cs_arena_init(&a);
    cs_task back;
    uint32_t run;
    cs_error err = {0};
    cs_mp_cur_init(&c, p + 1, b.size - 1);
    cr_assert_eq(cs_read_task_entry(&c, &a, &back, &run, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(run, 2);
    b.data[n_at] = 3;
    cs_mp_cur_init(&c, p + 1, b.size - 1);
    cr_assert_eq(cs_read_task_entry(&c, &a, &back, &run, &err), CS_EPROTO);
    cr_assert(strstr(err.msg, "passes the last task index"), "%s", err.msg);
    cs_arena_free(&a);
    msgpack_sbuffer_destroy(&b);
}

/* ---- replies --------------------------------------------------------------------------- */

static cs_copy *new_copy(void)
{
    cs_copy *c;
    cs_error err = {0};
    cr_assert_eq(cs_copy_new(&c, &err), CS_OK, "%s", err.msg);
    return c;
}

/* Apply a reply given as msgpack bytes; returns the code, the message in err. */
static int apply_bytes(cs_copy *c, const msgpack_sbuffer *b, cs_error *err)
{
    return cs_copy_apply_bytes(c, b->data, b->size, err);
}

Test(synccompact, malformed_replies_are_refused_by_name)
{
    tb_cell b;
    tb_init(&b);
    tb_machine_add(&b, "m1", 4000, 8192, 100, 0, 0, NULL);
    tb_job_add(&b, "web", CS_JOB_BATCH, 0, 4, 500, 256, 0);
    tb_reply r;
    tb_reply_make(&b, true, &r);
    cs_copy *c = new_copy();
    cs_error err = {0};
    cr_assert_eq(apply_bytes(c, &r.compact, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_copy_ntasks(c), 4);
    cr_assert_eq(cs_copy_version(c), b.version);

    /* Each mutation of the reply's top level, with what the error names. */
    static const struct {
        const char *what;
        const char *says;
    } cases[] = {
        {"no version", "'version' is missing"},
        {"form twice", "'form' is not one string"},
        {"form other", "'form' is 'other'"},
        {"tasks not an array", "'tasks' is not an array"},
        {"entry short", "tasks[0]: not an array of 15 fields"},
        {"version twice", "'version' appears twice"},
        {"not a map", "the reply is not a map"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        msgpack_sbuffer m;
        msgpack_sbuffer_init(&m);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &m, msgpack_sbuffer_write);
        const char *w = cases[i].what;
        if (strcmp(w, "not a map") == 0) {
            msgpack_pack_array(&pk, 0);
        } else {
            bool nover = strcmp(w, "no version") == 0, twice = strcmp(w, "form twice") == 0,
                 vtwice = strcmp(w, "version twice") == 0;
            msgpack_pack_map(&pk, 6 - nover + twice + vtwice);
            cs_pack_kv_str(&pk, "form", strcmp(w, "form other") == 0 ? "other" : "compact");
            if (twice)
                cs_pack_kv_str(&pk, "form", "compact");
            if (!nover)
                cs_pack_kv_u64(&pk, "version", 9);
            if (vtwice)
                cs_pack_kv_u64(&pk, "version", 9);
            cs_pack_kv_bool(&pk, "full", false);
            cs_pack_str(&pk, "machines");
            msgpack_pack_array(&pk, 0);
            cs_pack_str(&pk, "jobs");
            msgpack_pack_array(&pk, 0);
            cs_pack_str(&pk, "tasks");
            if (strcmp(w, "tasks not an array") == 0) {
                msgpack_pack_map(&pk, 0);
            } else if (strcmp(w, "entry short") == 0) {
                msgpack_pack_array(&pk, 1);
                pack_entry(&pk, 3, -1, 0);
            } else {
                msgpack_pack_array(&pk, 0);
            }
        }
        cr_assert_eq(apply_bytes(c, &m, &err), CS_EPROTO, "%s", w);
        cr_assert(strstr(err.msg, cases[i].says), "%s: %s", w, err.msg);
        cr_assert_eq(cs_copy_version(c), 0, "%s: a failed sync resets the version", w);
        msgpack_sbuffer_destroy(&m);
    }
    /* Truncated anywhere: refused, never read past the end. */
    for (size_t n = 0; n < r.compact.size; n += 7) {
        msgpack_sbuffer m = {.data = r.compact.data, .size = n, .alloc = 0};
        cr_assert_neq(apply_bytes(c, &m, &err), CS_OK, "prefix of %zu bytes", n);
    }
    /* A task entry of a job the copy lacks. */
    cs_copy_free(c);
    c = new_copy();
    tb_reply_free(&r);
    tb_place(&b, 1, 2, 1); /* the delta lists the task and its machine, not its job */
    tb_reply_make(&b, false, &r);
    cr_assert_eq(apply_bytes(c, &r.compact, &err), CS_EPROTO);
    cr_assert(strstr(err.msg, "the copy has no job"), "%s", err.msg);
    tb_reply_free(&r);
    cs_copy_free(c);
    tb_free(&b);
}

/* ---- the copy from both forms: a property test -------------------------------------------- */

/* The jobs of a random cell: their count of tasks by id - 1. */
typedef struct jobs {
    uint32_t n;
    uint32_t count[16];
} jobs;

static void add_job(tb_cell *b, jobs *js, uint64_t *seed)
{
    char name[32];
    snprintf(name, sizeof name, "j%u", js->n);
    uint32_t count = 1 + (uint32_t)(cs_rng_next(seed) % 60);
    uint8_t kind = cs_rng_next(seed) % 2 ? CS_JOB_BATCH : CS_JOB_SERVICE;
    cs_id id = tb_job_add(b, name, kind, 0, count, 100, 64, 0);
    if (cs_rng_next(seed) % 2) {
        uint16_t ports[] = {0};
        tb_job_ports(b, id, ports, 1);
    }
    js->count[js->n++] = count;
}

/* One random change of the cell. */
static void mutate(tb_cell *b, uint64_t *seed, jobs *js)
{
    uint64_t k = cs_rng_next(seed) % 10;
    if (k == 0 && js->n < 16) {
        add_job(b, js, seed);
        return;
    }
    cs_id job = 1 + cs_rng_next(seed) % js->n;
    uint32_t index = (uint32_t)(cs_rng_next(seed) % js->count[job - 1]);
    const cs_task *t = tb_task_get(b, cs_task_id(job, index));
    cs_id m = 1 + cs_rng_next(seed) % 8;
    if (t->state == CS_TASK_PENDING) {
        if (k < 7)
            tb_place(b, job, t->index, m);
        else
            tb_task_state(b, t->id, CS_TASK_KILLED);
    } else if (cs_task_state_placed(t->state)) {
        static const uint8_t to[] = {CS_TASK_RUNNING, CS_TASK_FINISHED, CS_TASK_FAILED,
                                     CS_TASK_LOST, CS_TASK_PENDING};
        tb_task_state(b, t->id, to[cs_rng_next(seed) % 5]);
    } else if (t->state != CS_TASK_KILLED) {
        tb_task_state(b, t->id, CS_TASK_PENDING);
    }
}

/* Apply one reply three ways: map objects (cs_copy_apply), compact bytes
 * and map bytes (cs_copy_apply_bytes). */
static void sync3(tb_cell *b, cs_copy *c[3], bool full)
{
    tb_reply r;
    tb_reply_make(b, full, &r);
    cs_error err = {0};
    cr_assert_eq(cs_copy_apply(c[0], &r.obj, &err), CS_OK, "map: %s", err.msg);
    cr_assert_eq(apply_bytes(c[1], &r.compact, &err), CS_OK, "compact: %s", err.msg);
    cr_assert_eq(apply_bytes(c[2], &r.buf, &err), CS_OK, "map bytes: %s", err.msg);
    tb_reply_free(&r);
}

Test(synccompact, property_compact_and_map_forms_give_the_same_copy, .timeout = 120)
{
    for (uint64_t cell = 0; cell < 40; cell++) {
        uint64_t seed = 0x9e3779b97f4a7c15ULL ^ (cell * 7919 + 1);
        tb_cell b;
        tb_init(&b);
        for (int i = 0; i < 8; i++) {
            char name[16];
            snprintf(name, sizeof name, "m%d", i);
            tb_machine_add(&b, name, 1 << 20, 1 << 20, 1 << 20, 31000, 31999,
                           i % 2 ? "rack=r1 zone=a" : "zone=b");
        }
        jobs js = {0};
        for (uint64_t j = 1 + cs_rng_next(&seed) % 4; j > 0; j--)
            add_job(&b, &js, &seed);
        for (int i = 0; i < 30; i++)
            mutate(&b, &seed, &js);
        cs_copy *c[3] = {new_copy(), new_copy(), new_copy()};
        sync3(&b, c, true);
        char when[64];
        snprintf(when, sizeof when, "cell %llu, full", (unsigned long long)cell);
        tb_assert_same_copy(c[0], c[1], when);
        tb_assert_same_copy(c[0], c[2], when);
        for (int round = 0; round < 15; round++) {
            int changes = (int)(cs_rng_next(&seed) % 20);
            for (int i = 0; i < changes; i++)
                mutate(&b, &seed, &js);
            bool full = cs_rng_next(&seed) % 8 == 0;
            sync3(&b, c, full);
            snprintf(when, sizeof when, "cell %llu, round %d%s", (unsigned long long)cell, round,
                     full ? " (full)" : "");
            tb_assert_same_copy(c[0], c[1], when);
            tb_assert_same_copy(c[0], c[2], when);
        }
        for (int i = 0; i < 3; i++)
            cs_copy_free(c[i]);
        tb_free(&b);
    }
}

/* ---- the in-process sync: records straight from a store ---------------------------------- */

/* Bring copy `bytes` up to date through the reply's bytes and copy `direct`
 * through cs_copy_apply_snap, from the same snapshot. */
/* Sync `bytes` from an encoded reply (compact or, !compact, the map form;
 * asking for "gone" or not) and `direct` in process (which always asks
 * for "gone"); *full: whether direct's sync was a full one. */
static void sync_both(cs_store *st, cs_copy *bytes, cs_copy *direct, bool *full, bool compact,
                      bool gone, bool *bytes_full)
{
    cs_error err = {0};
    cs_snap *snap;
    cr_assert_eq(cs_snap_open(st, &snap, &err), CS_OK, "%s", err.msg);
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    cs_sync_req req = {.since = cs_copy_version(bytes), .compact = compact,
                       .omit_running = cs_copy_omits_running(bytes), .gone = gone};
    cr_assert_eq(cs_sync_reply_encode(snap, &req, &pk, &err), CS_OK, "%s", err.msg);
    cs_copy_reply r;
    cr_assert_eq(cs_copy_read_reply(b.data, b.size, &r, &err), CS_OK, "%s", err.msg);
    cr_assert(!r.has_gone || (gone && !r.full), "\"gone\" unasked, or in a full reply");
    *bytes_full = r.full;
    cr_assert_eq(cs_copy_apply_bytes(bytes, b.data, b.size, &err), CS_OK, "bytes: %s", err.msg);
    cr_assert_eq(cs_copy_apply_snap(direct, snap, full, &err), CS_OK, "snap: %s", err.msg);
    cs_snap_close(snap);
    msgpack_sbuffer_destroy(&b);
}

/* One random change through the state machine: a job, a claim, a report,
 * a kill or a collection. Refusals (a claim on a task already placed, a
 * report on a stale attempt) are results too, and logged. */
static void store_mutate(cs_store *st, uint64_t *seed, uint32_t *njobs, uint32_t counts[64],
                         cs_txn *txn, uint64_t *req, unsigned *collected)
{
    cs_error err = {0};
    uint64_t k = cs_rng_next(seed) % 20;
    if (*njobs == 0 || (k == 0 && *njobs < 64)) {
        char name[16];
        snprintf(name, sizeof name, "j%u", *njobs);
        uint16_t ports[] = {0};
        cs_job spec = {.name = name, .kind = cs_rng_next(seed) % 2 ? CS_JOB_SERVICE : CS_JOB_BATCH,
                       .count = 1 + (uint32_t)(cs_rng_next(seed) % 40),
                       .res = {.cpu = 100, .mem = 64}, .cmd = "true"};
        if (cs_rng_next(seed) % 3 == 0) {
            spec.ports = ports;
            spec.nports = 1;
        }
        cs_id id;
        cr_assert_eq(cs_op_job_submit(st, &spec, &id, NULL, &err), CS_OK, "%s", err.msg);
        counts[(*njobs)++] = spec.count;
        return;
    }
    if (k == 3) {
        /* A machine's record changes: registered again with other
         * attributes, taints or capacity, or the operator's word. The
         * in-process copy skips the records it has (keeps_records): this
         * is what says it noticed these. */
        cs_id mid = 1 + cs_rng_next(seed) % 8;
        uint64_t how = cs_rng_next(seed) % 4;
        if (how < 2) {
            char name[16], rack[16];
            snprintf(name, sizeof name, "m%llu", (unsigned long long)(mid - 1));
            snprintf(rack, sizeof rack, "r%llu", (unsigned long long)(cs_rng_next(seed) % 3));
            cs_attr attrs[] = {{"rack", rack}};
            cs_taint taints[] = {{"gpu", "", CS_TAINT_NO_SCHEDULE}};
            cs_machine m = {.name = name, .attrs = attrs, .nattrs = 1,
                            .capacity = {.cpu = 4000 + 1000 * (int64_t)(how == 1),
                                         .mem = 1 << 14, .disk = 1 << 20},
                            .port_lo = 31000, .port_hi = 31999,
                            .taints = taints, .ntaints = cs_rng_next(seed) % 2};
            cs_id id;
            cr_assert_eq(cs_op_machine_put(st, &m, &id, NULL, &err), CS_OK, "%s", err.msg);
            cr_assert_eq(id, mid);
        } else {
            cs_op_machine_admin(st, mid, (uint8_t)(cs_rng_next(seed) % CS_ADMIN_COUNT), 0, NULL,
                                &err);
        }
        return;
    }
    cs_id job = 1 + cs_rng_next(seed) % *njobs;
    cs_id task = cs_task_id(job, (uint32_t)(cs_rng_next(seed) % counts[job - 1]));
    if (k == 1) {
        cs_op_job_kill(st, job, 1000, NULL, &err);
        return;
    }
    if (k == 2) {
        if (cs_op_job_gc(st, &job, 1, NULL, &err) == CS_OK) /* refused unless ended */
            ++*collected;
        return;
    }
    if (k < 12) {
        cs_txn_reset(txn, ++*req, 0);
        cs_res res = {.cpu = 100, .mem = 64};
        cr_assert_eq(cs_txn_add_claim(txn, task, 1 + cs_rng_next(seed) % 8, &res, NULL, 0, 0),
                     CS_OK);
        cs_txn_result r;
        cs_txn_result_init(&r);
        cs_commit(st, txn, &r, &err);
        cs_txn_result_free(&r);
        return;
    }
    cs_snap *snap;
    cs_arena a;
    cs_arena_init(&a);
    cs_task t;
    cr_assert_eq(cs_snap_open(st, &snap, &err), CS_OK, "%s", err.msg);
    int rc = cs_snap_task(snap, task, &a, &t, &err);
    uint32_t attempt = rc == CS_OK ? t.attempts : 0;
    cs_snap_close(snap);
    cs_arena_free(&a);
    static const uint8_t to[] = {CS_TASK_RUNNING, CS_TASK_RUNNING, CS_TASK_FINISHED,
                                 CS_TASK_FAILED};
    cs_op_task_status(st, task, attempt, to[cs_rng_next(seed) % 4], 0, NULL, NULL, &err);
}

Test(synccompact, property_a_copy_from_the_store_in_process_equals_one_from_the_reply_bytes,
     .timeout = 120)
{
    unsigned all_collected = 0;
    for (uint64_t cell = 0; cell < 12; cell++) {
        uint64_t seed = 0x5eed5eedULL ^ (cell * 104729 + 3);
        ts_store st;
        ts_store_create(&st);
        cs_error err = {0};
        for (int i = 0; i < 8; i++) {
            char name[16];
            snprintf(name, sizeof name, "m%d", i);
            cs_attr attrs[] = {{"rack", i % 2 ? "r1" : "r2"}};
            cs_taint taints[] = {{"gpu", "", CS_TAINT_NO_EXECUTE}};
            cs_machine m = {.name = name, .attrs = attrs, .nattrs = 1,
                            .capacity = {.cpu = 4000, .mem = 1 << 14, .disk = 1 << 20},
                            .port_lo = 31000, .port_hi = 31999,
                            .taints = taints, .ntaints = cell % 2 == 0 && i == 7};
            cs_id id;
            cr_assert_eq(cs_op_machine_put(st.s, &m, &id, NULL, &err), CS_OK, "%s", err.msg);
        }
        /* In pairs, each from the bytes and in process: without "gone"
         * (a collection is then answered in full), compact with it, the
         * map form with it, the compact form with it and omit running. */
        cs_copy *c[8];
        for (int i = 0; i < 8; i++)
            c[i] = new_copy();
        cs_copy_omit_running(c[6], true);
        cs_copy_omit_running(c[7], true);
        unsigned collected = 0, fulls_without = 0;
        uint32_t njobs = 0, counts[64];
        uint64_t req = 0;
        cs_txn txn;
        cs_txn_init(&txn, 1, 0, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
        unsigned fulls = 0;
        for (int round = 0; round < 25; round++) {
            int changes = (int)(cs_rng_next(&seed) % 30);
            for (int i = 0; i < changes; i++)
                store_mutate(st.s, &seed, &njobs, counts, &txn, &req, &collected);
            bool full[4], bfull[4];
            sync_both(st.s, c[0], c[1], &full[0], true, false, &bfull[0]);
            sync_both(st.s, c[2], c[3], &full[1], true, true, &bfull[1]);
            sync_both(st.s, c[4], c[5], &full[2], false, true, &bfull[2]);
            sync_both(st.s, c[6], c[7], &full[3], true, true, &bfull[3]);
            fulls += full[0];
            fulls_without += bfull[0];
            char when[64];
            snprintf(when, sizeof when, "cell %llu, round %d", (unsigned long long)cell, round);
            for (int i = 0; i < 8; i += 2)
                tb_assert_same_copy(c[i], c[i + 1], when);
            /* What forget_jobs left is what a full sync built. */
            tb_assert_same_copy(c[0], c[3], when);
            tb_assert_same_copy(c[0], c[4], when);
            cr_assert_eq(cs_copy_noexecute(c[1]), cell % 2 == 0, "%s", when);
        }
        /* Only the first sync is a full one for a reader of "gone"; one
         * that does not read it gets the whole cell after collections. */
        cr_assert_eq(fulls, 1, "cell %llu: %u full syncs, %u collections",
                     (unsigned long long)cell, fulls, collected);
        cr_assert_geq(fulls_without, 1 + (collected > 0), "cell %llu", (unsigned long long)cell);
        all_collected += collected;
        cs_txn_free(&txn);
        for (int i = 0; i < 8; i++)
            cs_copy_free(c[i]);
        ts_store_destroy(&st);
    }
    cr_assert_gt(all_collected, 0, "no collection: \"gone\" went untested");
}

/* ---- from a real cellstated --------------------------------------------------------------- */

static ts_daemon d;
static void daemon_down(void) { ts_daemon_teardown(&d); }

/* A sync with the given "form" and "omit" (NULL: not sent). */
static void sync_req(cs_client *cl, uint64_t since, const char *form, const char *omit,
                     msgpack_sbuffer *out, int want, const char *says)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1 + (form != NULL) + (omit != NULL));
    cs_pack_kv_u64(&pk, "since", since);
    if (form)
        cs_pack_kv_str(&pk, "form", form);
    if (omit)
        cs_pack_kv_str(&pk, "omit", omit);
    const void *body;
    size_t len;
    cs_error err = {0};
    int rc = cs_client_call_raw(cl, CS_MSG_SYNC, b.data, b.size, &body, &len, &err);
    cr_assert_eq(rc, want, "sync %s: %s", form ? form : "(none)", err.msg);
    if (says)
        cr_assert(strstr(err.msg, says), "%s", err.msg);
    if (rc == CS_OK) {
        out->size = 0;
        msgpack_sbuffer_write(out, body, len);
    }
    msgpack_sbuffer_destroy(&b);
}

static void sync_form(cs_client *cl, uint64_t since, const char *form, msgpack_sbuffer *out,
                      int want, const char *says)
{
    sync_req(cl, since, form, NULL, out, want, says);
}

Test(synccompact, a_real_cellstated_answers_both_forms_alike, .timeout = 60, .fini = daemon_down)
{
    ts_daemon_setup(&d, NULL, NULL);
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    for (int i = 0; i < 4; i++) {
        char name[16];
        snprintf(name, sizeof name, "m%d", i);
        msgpack_pack_map(&pk, 2);
        cs_pack_kv_str(&pk, "name", name);
        cs_res cap = {1 << 30, 1 << 30, 1 << 30};
        cs_pack_kv_res(&pk, "capacity", &cap);
        cs_msg r;
        cs_error err = {0};
        cr_assert_eq(cs_client_callb(d.c, CS_MSG_MACHINE_REGISTER, &b, &r, &err), CS_OK, "%s",
                     err.msg);
        b.size = 0;
    }
    cs_id web = ts_submit(d.c, "{\"name\": \"web\", \"count\": 300, \"cmd\": \"true\", "
                               "\"resources\": {\"cpu\": 10, \"mem\": 10}}");
    ts_submit(d.c, "{\"name\": \"db\", \"count\": 5, \"cmd\": \"true\", \"resources\": {\"cpu\": 10, \"mem\": 10}}");

    msgpack_sbuffer map, compact;
    msgpack_sbuffer_init(&map);
    msgpack_sbuffer_init(&compact);
    sync_form(d.c, 0, NULL, &map, CS_OK, NULL);
    sync_form(d.c, 0, "compact", &compact, CS_OK, NULL);
    cr_assert_lt(compact.size * 20, map.size, "305 pending tasks: two entries (%zu vs %zu bytes)",
                 compact.size, map.size);
    cs_copy *c[2] = {new_copy(), new_copy()};
    cs_error err = {0};
    cr_assert_eq(apply_bytes(c[0], &map, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(apply_bytes(c[1], &compact, &err), CS_OK, "%s", err.msg);
    tb_assert_same_copy(c[0], c[1], "full");
    uint64_t v = cs_copy_version(c[0]);

    /* Place task 7 of web: its run of pending tasks breaks in two. */
    const cs_cmachine *m = cs_copy_machine_at(c[1], 2);
    cs_txn txn;
    cs_res res = cs_copy_task(c[1], cs_task_id(web, 7))->res;
    cs_txn_init(&txn, 5, 1, v, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    cr_assert_eq(cs_txn_add_claim(&txn, cs_task_id(web, 7), m->id, &res, NULL, 0, m->seq), CS_OK);
    cr_assert_eq(cs_txn_encode(&txn, &b), CS_OK);
    cs_msg r;
    cr_assert_eq(cs_client_callb(d.c, CS_MSG_COMMIT, &b, &r, &err), CS_OK, "%s", err.msg);
    uint64_t committed = 0;
    cr_assert_eq(cs_obj_u64(&r.body, "committed", true, UINT64_MAX, &committed, &err), CS_OK);
    const msgpack_object *oc = cs_obj_get(&r.body, "claims");
    cr_assert_eq(committed, 1, "outcome %s", cs_outcome_str((uint8_t)oc->via.array.ptr[0].via.u64));
    cs_txn_free(&txn);

    sync_form(d.c, v, "map", &map, CS_OK, NULL);
    sync_form(d.c, v, "compact", &compact, CS_OK, NULL);
    cr_assert_eq(apply_bytes(c[0], &map, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(apply_bytes(c[1], &compact, &err), CS_OK, "%s", err.msg);
    tb_assert_same_copy(c[0], c[1], "delta");
    cr_assert_eq(cs_copy_task(c[1], cs_task_id(web, 7))->state, CS_TASK_ASSIGNED);
    cr_assert_eq(cs_copy_job(c[1], web)->npending, 299);

    /* A full compact sync now: web's tasks in three entries. */
    sync_form(d.c, 0, "compact", &compact, CS_OK, NULL);
    cs_copy *fresh = new_copy();
    cr_assert_eq(apply_bytes(fresh, &compact, &err), CS_OK, "%s", err.msg);
    tb_assert_same_copy(c[0], fresh, "full after the claim");
    /* And through cs_copy_sync itself. */
    cs_copy *synced = new_copy();
    cr_assert_eq(tb_sync_client(synced, d.c, &err), CS_OK, "%s", err.msg);
    tb_assert_same_copy(c[0], synced, "cs_copy_sync");

    /* Task 7 starts. A copy that omits starts keeps it assigned; one
     * that does not sees it running; both reach the same version. */
    cs_copy *quiet = new_copy();
    cs_copy_omit_running(quiet, true);
    cr_assert_eq(tb_sync_client(quiet, d.c, &err), CS_OK, "%s", err.msg);
    b.size = 0;
    msgpack_pack_map(&pk, 3);
    cs_pack_kv_u64(&pk, "task", cs_task_id(web, 7));
    cs_pack_kv_u64(&pk, "attempt", 1);
    cs_pack_kv_str(&pk, "state", "running");
    cr_assert_eq(cs_client_callb(d.c, CS_MSG_TASK_STATUS, &b, &r, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(tb_sync_client(synced, d.c, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(tb_sync_client(quiet, d.c, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_copy_task(synced, cs_task_id(web, 7))->state, CS_TASK_RUNNING);
    cr_assert_eq(cs_copy_task(quiet, cs_task_id(web, 7))->state, CS_TASK_ASSIGNED);
    cr_assert_eq(cs_copy_version(quiet), cs_copy_version(synced));
    cr_assert_eq(cs_copy_job(quiet, web)->nplaced, 1);
    cs_copy_free(quiet);

    sync_form(d.c, 0, "columns", &compact, CS_EINVAL, "'form' is 'columns'");
    sync_req(d.c, 0, "compact", "everything", &compact, CS_EINVAL, "'omit' is 'everything'");

    cs_copy_free(synced);
    cs_copy_free(fresh);
    cs_copy_free(c[0]);
    cs_copy_free(c[1]);
    msgpack_sbuffer_destroy(&map);
    msgpack_sbuffer_destroy(&compact);
    msgpack_sbuffer_destroy(&b);
}

/* ---- a server whose reply bodies are cut short ------------------------------------------ */

/* Criterion's runner (the parent of the forked tests, not test code) loses
 * track of a 48-byte record of its own in some interleavings of two
 * parallel tests (--jobs=2), as in test_agent: seen here once this suite
 * started tests with threads and sockets. LeakSanitizer then fails the
 * whole binary. Leaks whose stack lies in libcriterion are not this
 * project's to fix: suppress those. (The copy's own leaks are still caught
 * by test_cellcopy and test_place, which suppress nothing.) */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libcriterion.so\n"; }

/* cs_client_call_raw hands the body on unchecked past its first byte:
 * whatever is malformed must still be refused, by name, by the reader. */
typedef struct cut_server {
    nng_socket sock;
    char url[64];
    const char *body; /* the reply body to send, len bytes */
    size_t len;
    pthread_t thread;
} cut_server;

static void *cut_serve(void *arg)
{
    cut_server *cs = arg;
    nng_msg *req;
    if (nng_recvmsg(cs->sock, &req, 0) != 0)
        return NULL;
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    cs_msg m;
    cs_error err;
    uint64_t id = cs_msg_decode(nng_msg_body(req), nng_msg_len(req), &zone, &m, &err) == CS_OK
                      ? m.req
                      : 0;
    nng_msg_free(req);
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint64(&pk, CS_PROTO_VERSION);
    msgpack_pack_uint64(&pk, CS_MSG_SYNC);
    msgpack_pack_uint64(&pk, id);
    msgpack_sbuffer_write(&b, cs->body, cs->len);
    nng_send(cs->sock, b.data, b.size, 0);
    msgpack_sbuffer_destroy(&b);
    msgpack_zone_destroy(&zone);
    return NULL;
}

Test(synccompact, a_reply_cut_short_after_its_envelope_is_refused_by_name, .timeout = 30)
{
    /* A compact reply whose tasks (the last field) declare two entries
     * and hold one; then one whose map declares more fields than it has. */
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 6);
    cs_pack_kv_str(&pk, "form", "compact");
    cs_pack_kv_u64(&pk, "version", 9);
    cs_pack_kv_bool(&pk, "full", false);
    cs_pack_str(&pk, "machines");
    msgpack_pack_array(&pk, 0);
    cs_pack_str(&pk, "jobs");
    msgpack_pack_array(&pk, 0);
    cs_pack_str(&pk, "tasks");
    msgpack_pack_array(&pk, 2);
    pack_entry(&pk, 3, -1, 0);
    const struct {
        size_t len;
        const char *says;
    } cuts[] = {{b.size, "tasks"}, {b.size / 2, "sync"}};
    for (int i = 0; i < 2; i++) {
        cut_server cs = {.body = b.data, .len = cuts[i].len};
        snprintf(cs.url, sizeof cs.url, "tcp://127.0.0.1:%d", ts_free_port());
        cr_assert_eq(nng_rep0_open(&cs.sock), 0);
        cr_assert_eq(nng_listen(cs.sock, cs.url, NULL, 0), 0, "listen on %s", cs.url);
        cr_assert_eq(pthread_create(&cs.thread, NULL, cut_serve, &cs), 0);
        cs_client *cl;
        cs_error err = {0};
        cr_assert_eq(cs_client_open(cs.url, 5000, &cl, &err), CS_OK, "%s", err.msg);
        cs_copy *c = new_copy();
        int rc = tb_sync_client(c, cl, &err);
        cr_assert_eq(rc, CS_EPROTO, "cut %d: rc %d: %s", i, rc, err.msg);
        cr_assert(strstr(err.msg, cuts[i].says), "cut %d: %s", i, err.msg);
        cr_assert_eq(cs_copy_version(c), 0);
        cs_copy_free(c);
        cs_client_close(cl);
        pthread_join(cs.thread, NULL);
        nng_close(cs.sock);
    }
    msgpack_sbuffer_destroy(&b);
}

