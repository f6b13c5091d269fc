/* test_syncpieces.c — a full sync in pieces (docs/protocol.md §5.7,
 * "chunk"): a cell larger than a piece read in pieces gives the copy one
 * reply gives, also when the cell changes between the pieces (a job
 * submitted, one collected, a task moved onto a machine registered
 * meanwhile) once the catch-up delta is applied; each piece is bounded;
 * malformed continuation keys are refused by name; and the same through a
 * real cellstated (its --sync-chunk) and the scheduler's nng port. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cellstate/mpcheck.h"
#include "cellstate/rng.h"
#include "cellstate/vec.h"
#include "proto/client.h"
#include "proto/proto.h"
#include "proto/sync.h"
#include "schedulers/cellcopy.h"
#include "schedulers/port.h"
#include "tests/cellbuild.h"
#include "tests/support.h"
#include "txn/commit.h"
#include "txn/ops.h"

/* ---- a cell in a store ------------------------------------------------------------------ */

static cs_id machine_add(cs_store *st, int i)
{
    char name[16], rack[8];
    snprintf(name, sizeof name, "m%d", i);
    snprintf(rack, sizeof rack, "r%d", i % 3);
    cs_attr attrs[] = {{"rack", rack}};
    cs_machine m = {.name = name, .attrs = attrs, .nattrs = 1,
                    .capacity = {.cpu = 1 << 30, .mem = 1 << 30, .disk = 1 << 20},
                    .port_lo = 31000, .port_hi = 31999};
    cs_id id;
    cs_error err = {0};
    cr_assert_eq(cs_op_machine_put(st, &m, &id, NULL, &err), CS_OK, "%s", err.msg);
    return id;
}

static cs_id job_add(cs_store *st, const char *name, uint32_t count)
{
    cs_job spec = {.name = name, .kind = CS_JOB_BATCH, .count = count,
                   .res = {.cpu = 10, .mem = 10}, .cmd = "true"};
    cs_id id;
    cs_error err = {0};
    cr_assert_eq(cs_op_job_submit(st, &spec, &id, NULL, &err), CS_OK, "%s", err.msg);
    return id;
}

/* One transaction of one item: a claim of `task` on `machine`, or (machine
 * 0) its release back to pending. The test asserts it committed. */
static void commit_one(cs_store *st, cs_id task, cs_id machine)
{
    /* A request id of its own for each (task, machine): a repeated one
     * would be answered from its idempotency record. */
    cs_txn t;
    cs_txn_init(&t, 77, task << 6 | machine, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    cs_res res = {.cpu = 10, .mem = 10};
    cr_assert_eq(machine ? cs_txn_add_claim(&t, task, machine, &res, NULL, 0, 0)
                         : cs_txn_add_release(&t, task, CS_TASK_PENDING, 0),
                 CS_OK);
    cs_txn_result r;
    cs_txn_result_init(&r);
    cs_error err = {0};
    cr_assert_eq(cs_commit(st, &t, &r, &err), CS_OK, "%s", err.msg);
    uint8_t outcome = machine ? r.claims[0] : r.releases[0];
    cr_assert_eq(outcome, CS_COMMITTED, "task %llu, machine %llu: %s", (unsigned long long)task,
                 (unsigned long long)machine, cs_outcome_str(outcome));
    cs_txn_result_free(&r);
    cs_txn_free(&t);
}

/* 12 machines and 6 jobs of 500 tasks, every third task placed (one
 * machine after another, so that the runs of the compact form break
 * often): 3,018 records, some thirty pieces of 100. */
static void cell_make(cs_store *st)
{
    for (int i = 0; i < 12; i++)
        machine_add(st, i);
    for (int j = 0; j < 6; j++) {
        char name[16];
        snprintf(name, sizeof name, "j%d", j);
        cs_id job = job_add(st, name, 500);
        for (uint32_t k = 0; k < 500; k += 3)
            commit_one(st, cs_task_id(job, k), 1 + (k / 3 + (uint32_t)j) % 12);
    }
}

/* ---- the store's walk from a key ----------------------------------------------------------- */

static int collect_machine(void *ctx, const cs_machine *m) { return cs_ids_push(ctx, m->id); }
static int collect_task(void *ctx, const cs_task *t) { return cs_ids_push(ctx, t->id); }

Test(syncpieces, the_store_walks_from_a_key_with_a_limit)
{
    ts_store st;
    ts_store_create(&st);
    cs_error err = {0};
    cs_snap *snap;
    cr_assert_eq(cs_snap_open(st.s, &snap, &err), CS_OK);
    cs_id last = 99;
    cr_assert_eq(cs_snap_last_id(snap, CS_KIND_JOB, &last, &err), CS_OK);
    cr_assert_eq(last, 0, "no job yet");
    cs_snap_close(snap);
    for (int i = 0; i < 5; i++)
        machine_add(st.s, i);
    cs_id job = job_add(st.s, "j", 10);
    cr_assert_eq(cs_snap_open(st.s, &snap, &err), CS_OK);
    cr_assert_eq(cs_snap_last_id(snap, CS_KIND_MACHINE, &last, &err), CS_OK);
    cr_assert_eq(last, 5);
    cr_assert_eq(cs_snap_last_id(snap, CS_KIND_JOB, &last, &err), CS_OK);
    cr_assert_eq(last, job);
    static const struct {
        cs_id from;
        size_t limit, n;
        cs_id first;
    } cases[] = {{3, 2, 2, 3}, {0, 0, 5, 1}, {4, 0, 2, 4}, {6, 3, 0, 0}, {2, 100, 4, 2}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cs_ids ids = {0};
        cr_assert_eq(cs_snap_each_machine_from(snap, cases[i].from, cases[i].limit,
                                               collect_machine, &ids, &err),
                     CS_OK, "%s", err.msg);
        cr_assert_eq(ids.n, cases[i].n, "case %zu: %zu machines", i, ids.n);
        for (size_t k = 0; k < ids.n; k++)
            cr_assert_eq(ids.v[k], cases[i].first + k, "case %zu", i);
        free(ids.v);
    }
    /* From a key that is no record: the next one on. */
    cs_ids ids = {0};
    cr_assert_eq(cs_snap_each_task_from(snap, cs_task_id(job, 7) - (1u << 20), 4, collect_task,
                                        &ids, &err),
                 CS_OK, "%s", err.msg);
    cr_assert_eq(ids.n, 4);
    cr_assert_eq(ids.v[0], cs_task_id(job, 0));
    free(ids.v);
    cs_snap_close(snap);
    ts_store_destroy(&st);
}

/* ---- the reader's requests, answered in process ------------------------------------------- */

/* cs_copy_sync_with's call, answered by cs_sync_reply_encode from a
 * snapshot of its own for each request (as cellstated does, with the
 * chunk lowered to `clamp`); before each request after the first,
 * `between` may change the cell. Records each reply's size and
 * records. */
typedef struct reader {
    cs_store *st;
    uint32_t clamp;
    void (*between)(struct reader *r);
    void *user;
    unsigned calls, pieces;
    size_t max_bytes, max_records;
    msgpack_sbuffer buf;
} reader;

/* The records of a reply: machines, jobs and the tasks of every run. */
static size_t reply_records(const void *data, size_t len)
{
    cs_copy_reply r;
    cs_error err = {0};
    cr_assert_eq(cs_copy_read_reply(data, len, &r, &err), CS_OK, "%s", err.msg);
    uint32_t nm, nj, nt;
    cr_assert_eq(cs_mp_read_array(&r.machines, &nm), CS_OK);
    cr_assert_eq(cs_mp_read_array(&r.jobs, &nj), CS_OK);
    cr_assert_eq(cs_mp_read_array(&r.tasks, &nt), CS_OK);
    size_t n = (size_t)nm + nj;
    cs_arena a;
    cs_arena_init(&a);
    for (uint32_t i = 0; i < nt; i++) {
        cs_task t;
        uint32_t run;
        cs_arena_reset(&a);
        cr_assert_eq(cs_read_task_entry(&r.tasks, &a, &t, &run, &err), CS_OK, "%s", err.msg);
        n += run;
    }
    cs_arena_free(&a);
    return n;
}

static int reader_call(void *ctx, const cs_sync_req *req, const void **body, size_t *len,
                       cs_error *err)
{
    reader *r = ctx;
    if (r->calls++ > 0 && r->between != NULL)
        r->between(r);
    cs_sync_req q = *req;
    if (q.chunk > r->clamp)
        q.chunk = r->clamp;
    cs_snap *snap;
    CS_TRY(cs_snap_open(r->st, &snap, err));
    r->buf.size = 0;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &r->buf, msgpack_sbuffer_write);
    int rc = cs_sync_reply_encode(snap, &q, &pk, err);
    cs_snap_close(snap);
    if (rc != CS_OK)
        return rc;
    *body = r->buf.data;
    *len = r->buf.size;
    cs_copy_reply rep;
    cr_assert_eq(cs_copy_read_reply(*body, *len, &rep, err), CS_OK, "%s", err->msg);
    if (rep.piece) {
        r->pieces++;
        size_t n = reply_records(*body, *len);
        if (n > r->max_records)
            r->max_records = n;
        if (*len > r->max_bytes)
            r->max_bytes = *len;
    }
    return CS_OK;
}

static void reader_init(reader *r, cs_store *st)
{
    memset(r, 0, sizeof *r);
    r->st = st;
    r->clamp = UINT32_MAX;
    msgpack_sbuffer_init(&r->buf);
}

/* A copy synced once through `r` in pieces of `chunk` (0: one reply). */
static cs_copy *synced(reader *r, uint32_t chunk)
{
    cs_copy *c;
    cs_error err = {0};
    cr_assert_eq(cs_copy_new(&c, &err), CS_OK);
    cr_assert_eq(cs_copy_sync_with(c, reader_call, r, chunk, 0, &err), CS_OK, "%s", err.msg);
    return c;
}

/* ---- in process ------------------------------------------------------------------------- */

Test(syncpieces, pieces_give_the_copy_one_reply_gives, .timeout = 60)
{
    ts_store st;
    ts_store_create(&st);
    cell_make(st.s);
    reader whole, parts;
    reader_init(&whole, st.s);
    reader_init(&parts, st.s);
    cs_copy *one = synced(&whole, 0), *pieces = synced(&parts, 100);
    cr_assert_eq(whole.pieces, 0, "without chunk the reply is one, as before");
    cr_assert_geq(parts.pieces, 30, "3,018 records in pieces of 100: %u pieces", parts.pieces);
    cr_assert_eq(parts.calls, parts.pieces + 1, "the pieces and the catch-up delta");
    cr_assert_leq(parts.max_records, 100);
    /* Bounded: each piece a small part of the one reply. */
    cr_assert_lt(parts.max_bytes * 10, whole.buf.size, "largest piece %zu bytes, one reply %zu",
                 parts.max_bytes, whole.buf.size);
    tb_assert_same_copy(one, pieces, "no writes between the pieces");

    /* A cell that fits in one piece is one version already: no delta. */
    reader big;
    reader_init(&big, st.s);
    cs_copy *single = synced(&big, 5000);
    cr_assert_eq(big.calls, 1);
    cr_assert_eq(big.pieces, 1);
    tb_assert_same_copy(one, single, "one piece");

    /* The server's clamp bounds what the reader asks. */
    reader clamped;
    reader_init(&clamped, st.s);
    clamped.clamp = 700;
    cs_copy *c700 = synced(&clamped, 1000000);
    cr_assert_leq(clamped.max_records, 700);
    cr_assert_geq(clamped.pieces, 5);
    tb_assert_same_copy(one, c700, "clamped");

    cs_copy_free(one);
    cs_copy_free(pieces);
    cs_copy_free(single);
    cs_copy_free(c700);
    msgpack_sbuffer_destroy(&whole.buf);
    msgpack_sbuffer_destroy(&parts.buf);
    msgpack_sbuffer_destroy(&big.buf);
    msgpack_sbuffer_destroy(&clamped.buf);
    ts_store_destroy(&st);
}

/* What happens between the pieces: at the second request a job is
 * submitted and a job collected, at the fifth a machine registered and a
 * placed task moved onto it and a pending one placed there; and at each
 * request random claims and tasks finishing. */
typedef struct churn {
    uint64_t seed;
    cs_id newjob, moved, placed, newmachine;
    int nmachines;
} churn;

static void churn_between(reader *r)
{
    churn *ch = r->user;
    cs_store *st = r->st;
    cs_error err = {0};
    if (r->calls == 2) {
        ch->newjob = job_add(st, "late", 40);
        cr_assert_eq(cs_op_job_kill(st, 2, 1000, NULL, &err), CS_OK, "%s", err.msg);
        cs_id gone = 2;
        cr_assert_eq(cs_op_job_gc(st, &gone, 1, NULL, &err), CS_OK, "%s", err.msg);
    } else if (r->calls == 5) {
        ch->newmachine = machine_add(st, ch->nmachines++);
        /* Task 0 of job 6 (placed on a machine the first pieces sent, its
         * own piece still to come) moves to the new machine; task 1 of
         * job 6, pending, is placed there. */
        ch->moved = cs_task_id(6, 0);
        ch->placed = cs_task_id(6, 1);
        commit_one(st, ch->moved, 0);
        commit_one(st, ch->moved, ch->newmachine);
        commit_one(st, ch->placed, ch->newmachine);
    }
    for (int i = 0; i < 5; i++) {
        cs_id job = 3 + cs_rng_next(&ch->seed) % 4;
        cs_id task = cs_task_id(job, (uint32_t)(cs_rng_next(&ch->seed) % 500));
        cs_txn t;
        cs_txn_init(&t, 78, 1000000 + r->calls * 10 + (uint64_t)i, 0, CS_CONFLICT_FINE,
                    CS_COMMIT_INCREMENTAL);
        cs_res res = {.cpu = 10, .mem = 10};
        uint64_t k = cs_rng_next(&ch->seed) % 3;
        /* Not back to pending: a copy kept by deltas lists a job's pending
         * tasks in the order they became pending, a full sync by index
         * (cs_copy_pending), so such a copy would differ from a fresh one
         * with or without pieces. */
        if (k < 2)
            cs_txn_add_claim(&t, task, 1 + cs_rng_next(&ch->seed) % 12, &res, NULL, 0, 0);
        else
            cs_txn_add_release(&t, task, CS_TASK_FINISHED, 0);
        cs_txn_result res_;
        cs_txn_result_init(&res_);
        cs_commit(st, &t, &res_, &err); /* refused items (not pending, not placed) are fine */
        cs_txn_result_free(&res_);
        cs_txn_free(&t);
    }
}

Test(syncpieces, writes_between_pieces_are_caught_up_by_the_delta, .timeout = 120)
{
    for (uint64_t run = 0; run < 3; run++) {
        ts_store st;
        ts_store_create(&st);
        cell_make(st.s);
        churn ch = {.seed = 0xc4a11 + run * 7919, .nmachines = 12};
        reader parts;
        reader_init(&parts, st.s);
        parts.between = churn_between;
        parts.user = &ch;
        cs_copy *pieces = synced(&parts, 100 + 50 * (uint32_t)run);
        cr_assert_geq(parts.pieces, 10);
        /* The copy is the cell as of the catch-up delta: a fresh one-piece
         * sync now (nothing changes after the delta) gives the same. */
        reader whole;
        reader_init(&whole, st.s);
        cs_copy *one = synced(&whole, 0);
        char when[32];
        snprintf(when, sizeof when, "run %llu", (unsigned long long)run);
        tb_assert_same_copy(one, pieces, when);
        cr_assert_null(cs_copy_job(pieces, 2), "the collected job is gone from the copy");
        cr_assert_not_null(cs_copy_job(pieces, ch.newjob), "the job submitted meanwhile");
        const cs_ctask *moved = cs_copy_task(pieces, ch.moved);
        const cs_ctask *placed = cs_copy_task(pieces, ch.placed);
        cr_assert(moved != NULL && placed != NULL);
        cr_assert_eq(cs_copy_machine_at(pieces, moved->machine)->id, ch.newmachine);
        cr_assert_eq(cs_copy_machine_at(pieces, placed->machine)->id, ch.newmachine);
        cs_copy_free(one);
        cs_copy_free(pieces);
        msgpack_sbuffer_destroy(&whole.buf);
        msgpack_sbuffer_destroy(&parts.buf);
        ts_store_destroy(&st);
    }
}

/* A piece asked for at a version the log no longer reaches: the catch-up
 * delta comes back as the first piece of a new transfer, and the reader
 * starts again. Compaction runs between the last piece and the delta. */
static void compact_before_delta(reader *r)
{
    cs_error err = {0};
    int *at = r->user;
    if ((int)r->calls != *at)
        return;
    job_add(r->st, "after", 10);
    cr_assert_eq(cs_store_compact(r->st, UINT64_MAX, &err), CS_OK, "%s", err.msg);
}

Test(syncpieces, a_base_behind_the_log_floor_starts_the_pieces_again, .timeout = 60)
{
    ts_store st;
    ts_store_create(&st);
    cell_make(st.s);
    reader probe;
    reader_init(&probe, st.s);
    cs_copy *p = synced(&probe, 500);
    unsigned first = probe.calls; /* pieces and the delta */
    int at = (int)first;          /* the delta's request */
    reader parts;
    reader_init(&parts, st.s);
    parts.between = compact_before_delta;
    parts.user = &at;
    cs_copy *c = synced(&parts, 500);
    cr_assert_gt(parts.calls, first + 1, "started again: %u requests", parts.calls);
    reader whole;
    reader_init(&whole, st.s);
    cs_copy *one = synced(&whole, 0);
    tb_assert_same_copy(one, c, "after starting again");
    cs_copy_free(p);
    cs_copy_free(c);
    cs_copy_free(one);
    msgpack_sbuffer_destroy(&probe.buf);
    msgpack_sbuffer_destroy(&parts.buf);
    msgpack_sbuffer_destroy(&whole.buf);
    ts_store_destroy(&st);
}

/* ---- malformed requests and pieces ---------------------------------------------------------- */

/* A field of a hand-made body: "key": an unsigned integer `a` ('u'), a
 * string ('s'), -1 ('i'), [a, b] ('p'), a one-element array ('1') or a
 * boolean a != 0 ('b'). */
typedef struct field {
    const char *key;
    char type;
    uint64_t a, b;
} field;

#define MAX_FIELDS 6

static void pack_fields(msgpack_packer *pk, const field *f)
{
    for (; f->key != NULL; f++) {
        cs_pack_str(pk, f->key);
        switch (f->type) {
        case 'u': msgpack_pack_uint64(pk, f->a); break;
        case 's': cs_pack_str(pk, "100"); break;
        case 'i': msgpack_pack_int64(pk, -1); break;
        case 'b': f->a ? msgpack_pack_true(pk) : msgpack_pack_false(pk); break;
        case '1':
            msgpack_pack_array(pk, 1);
            msgpack_pack_uint64(pk, f->a);
            break;
        default:
            msgpack_pack_array(pk, 2);
            msgpack_pack_uint64(pk, f->a);
            msgpack_pack_uint64(pk, f->b);
        }
    }
}

static uint32_t nfields(const field *f)
{
    uint32_t n = 0;
    while (f[n].key != NULL)
        n++;
    return n;
}

/* Decode a request body of the fields `f`. */
static int decode_req(const field *f, cs_sync_req *out, cs_error *err)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, nfields(f));
    pack_fields(&pk, f);
    msgpack_zone z;
    msgpack_zone_init(&z, 1024);
    msgpack_object o;
    cr_assert_eq(msgpack_unpack(b.data, b.size, NULL, &z, &o), MSGPACK_UNPACK_SUCCESS);
    int rc = cs_sync_req_decode(&o, out, err);
    msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&b);
    return rc;
}

Test(syncpieces, malformed_continuations_are_refused_by_name)
{
    static const struct {
        field f[MAX_FIELDS];
        int code;
        const char *says;
    } cases[] = {
        {{{"chunk", 's', 0, 0}}, CS_EPROTO, "'chunk'"},
        {{{"after", 'p', 0, 5}, {"base", 'u', 9, 0}, {"ids", 'p', 5, 5}}, CS_EINVAL,
         "needs 'chunk'"},
        {{{"since", 'u', 3, 0}, {"chunk", 'u', 10, 0}, {"after", 'p', 0, 5}, {"base", 'u', 9, 0},
          {"ids", 'p', 5, 5}},
         CS_EINVAL, "needs 'since' 0"},
        {{{"chunk", 'u', 10, 0}, {"after", 'u', 5, 0}, {"base", 'u', 9, 0}, {"ids", 'p', 5, 5}},
         CS_EPROTO, "'after' is not an array of two"},
        {{{"chunk", 'u', 10, 0}, {"after", 'p', 3, 5}, {"base", 'u', 9, 0}, {"ids", 'p', 5, 5}},
         CS_EINVAL, "'after': kind 3"},
        {{{"chunk", 'u', 10, 0}, {"after", 'p', 0, 5}, {"base", 'u', 9, 0}}, CS_EINVAL,
         "'ids' is missing"},
        {{{"chunk", 'u', 10, 0}, {"after", 'p', 0, 5}, {"base", 'u', 9, 0},
          {"ids", 'p', 5, CS_JOB_ID_MAX + 1}},
         CS_EINVAL, "'ids'"},
        {{{"chunk", 'u', 10, 0}, {"after", 'p', 0, 5}, {"base", 'i', 0, 0}, {"ids", 'p', 5, 5}},
         CS_EPROTO, "'base'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cs_sync_req r;
        cs_error err = {0};
        cr_assert_eq(decode_req(cases[i].f, &r, &err), cases[i].code, "case %zu: %s", i,
                     err.msg);
        cr_assert(strstr(err.msg, cases[i].says), "case %zu: %s", i, err.msg);
    }
    static const field good[] = {{"chunk", 'u', 10, 0}, {"after", 'p', 2, 77},
                                 {"base", 'u', 9, 0},   {"ids", 'p', 5, 6},
                                 {NULL, 0, 0, 0}};
    cs_sync_req r;
    cs_error err = {0};
    cr_assert_eq(decode_req(good, &r, &err), CS_OK, "%s", err.msg);
    cr_assert(r.cont && r.chunk == 10 && r.at.base == 9 && r.at.max_machine == 5 &&
              r.at.max_job == 6 && r.at.next.kind == 2 && r.at.next.id == 77);
    /* And back: the encoder writes what the decoder read. */
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    cr_assert_eq(cs_sync_req_encode(&pk, &r), CS_OK);
    msgpack_zone z;
    msgpack_zone_init(&z, 1024);
    msgpack_object o;
    cr_assert_eq(msgpack_unpack(b.data, b.size, NULL, &z, &o), MSGPACK_UNPACK_SUCCESS);
    cs_sync_req back;
    cr_assert_eq(cs_sync_req_decode(&o, &back, &err), CS_OK, "%s", err.msg);
    cr_assert(back.cont && back.chunk == 10 && back.at.base == 9 && back.at.max_machine == 5 &&
              back.at.max_job == 6 && back.at.next.kind == 2 && back.at.next.id == 77);
    msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&b);
}

/* A reply body {"version": 5, "full": full, "form": "compact", "machines": [],
 * "jobs": [], "tasks": []} with the piece's fields `f`. */
static void piece_reply(msgpack_sbuffer *b, bool full, const field *f)
{
    b->size = 0;
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 6 + nfields(f));
    cs_pack_kv_u64(&pk, "version", 5);
    cs_pack_kv_bool(&pk, "full", full);
    cs_pack_kv_str(&pk, "form", "compact");
    pack_fields(&pk, f);
    const char *lists[] = {"machines", "jobs", "tasks"};
    for (int i = 0; i < 3; i++) {
        cs_pack_str(&pk, lists[i]);
        msgpack_pack_array(&pk, 0);
    }
}

Test(syncpieces, malformed_pieces_are_refused_by_name)
{
    static const struct {
        field f[MAX_FIELDS];
        const char *says;
    } cases[] = {
        {{{"base", 'u', 5, 0}, {"ids", 'p', 0, 0}, {"more", 'u', 1, 0}}, "'more' is not a boolean"},
        {{{"base", 'u', 5, 0}, {"ids", 'p', 0, 0}, {"more", 'b', 1, 0}}, "'next' is missing"},
        {{{"ids", 'p', 0, 0}, {"more", 'b', 0, 0}}, "'base' is missing"},
        {{{"base", 'u', 5, 0}, {"ids", '1', 3, 0}, {"more", 'b', 0, 0}},
         "'ids' is not an array of two"},
    };
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    cs_copy *c;
    cs_error err = {0};
    cr_assert_eq(cs_copy_new(&c, &err), CS_OK);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        piece_reply(&b, true, cases[i].f);
        cr_assert_eq(cs_copy_apply_bytes(c, b.data, b.size, &err), CS_EPROTO, "case %zu", i);
        cr_assert(strstr(err.msg, cases[i].says), "case %zu: %s", i, err.msg);
    }
    static const field last[] = {{"base", 'u', 4, 0}, {"ids", 'p', 0, 0}, {"more", 'b', 0, 0},
                                 {NULL, 0, 0, 0}};
    /* A continuation (full false) of pieces the copy is not receiving. */
    piece_reply(&b, false, last);
    cr_assert_eq(cs_copy_apply_bytes(c, b.data, b.size, &err), CS_EPROTO);
    cr_assert(strstr(err.msg, "not receiving"), "%s", err.msg);
    cr_assert_eq(cs_copy_version(c), 0);
    /* The first and only piece: the copy is at its base. */
    piece_reply(&b, true, last);
    cr_assert_eq(cs_copy_apply_bytes(c, b.data, b.size, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_copy_version(c), 4);
    cs_copy_free(c);
    msgpack_sbuffer_destroy(&b);
}

Test(syncpieces, a_continuation_read_before_its_base_is_unavailable)
{
    ts_store st;
    ts_store_create(&st);
    machine_add(st.s, 0);
    cs_snap *snap;
    cs_error err = {0};
    cr_assert_eq(cs_snap_open(st.s, &snap, &err), CS_OK);
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    cs_sync_req req = {.compact = true, .chunk = 10, .cont = true,
                       .at = {.base = cs_snap_version(snap) + 5, .max_machine = 1}};
    cr_assert_eq(cs_sync_reply_encode(snap, &req, &pk, &err), CS_EUNAVAIL);
    cr_assert(strstr(err.msg, "before the pieces' base"), "%s", err.msg);
    cs_snap_close(snap);
    msgpack_sbuffer_destroy(&b);
    ts_store_destroy(&st);
}

/* ---- through cellstated and the scheduler's port ------------------------------------------- */

static ts_daemon d;
static void daemon_down(void) { ts_daemon_teardown(&d); }

/* cs_copy_sync over the nng port, asking for pieces of `chunk`. */
static void port_sync(cs_copy *c, uint32_t chunk)
{
    cs_port_nng *p;
    cs_error err = {0};
    cr_assert_eq(cs_port_nng_over(d.c, &p, &err), CS_OK);
    cs_port_nng_set_chunk(p, chunk);
    cr_assert_eq(cs_copy_sync(c, cs_port_nng_table(p), &err), CS_OK, "%s", err.msg);
    cs_port_nng_free(p);
}

/* One raw sync request; the reply body into `out`. */
static int raw_sync(msgpack_sbuffer *req, msgpack_sbuffer *out, cs_error *err)
{
    const void *body;
    size_t len;
    int rc = cs_client_call_raw(d.c, CS_MSG_SYNC, req->data, req->size, &body, &len, err);
    if (rc == CS_OK) {
        out->size = 0;
        msgpack_sbuffer_write(out, body, len);
    }
    return rc;
}

Test(syncpieces, a_real_cellstated_serves_pieces_to_the_port, .timeout = 90, .fini = daemon_down)
{
    ts_daemon_setup(&d, "--sync-chunk", "50");
    msgpack_sbuffer b, out;
    msgpack_sbuffer_init(&b);
    msgpack_sbuffer_init(&out);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    cs_error err = {0};
    for (int i = 0; i < 6; i++) {
        char name[16];
        snprintf(name, sizeof name, "m%d", i);
        b.size = 0;
        msgpack_pack_map(&pk, 2);
        cs_pack_kv_str(&pk, "name", name);
        cs_res cap = {1 << 30, 1 << 30, 1 << 30};
        cs_pack_kv_res(&pk, "capacity", &cap);
        cs_msg r;
        cr_assert_eq(cs_client_callb(d.c, CS_MSG_MACHINE_REGISTER, &b, &r, &err), CS_OK, "%s",
                     err.msg);
    }
    cs_id web = ts_submit(d.c, "{\"name\": \"web\", \"count\": 400, \"cmd\": \"true\", "
                               "\"resources\": {\"cpu\": 10, \"mem\": 10}}");
    ts_submit(d.c, "{\"name\": \"db\", \"count\": 30, \"cmd\": \"true\", "
                   "\"resources\": {\"cpu\": 10, \"mem\": 10}}");
    /* Place every fifth task of web, so that runs break. */
    cs_txn txn;
    cs_txn_init(&txn, 5, 1, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    cs_res res = {.cpu = 10, .mem = 10};
    for (uint32_t k = 0; k < 400; k += 5)
        cr_assert_eq(cs_txn_add_claim(&txn, cs_task_id(web, k), 1 + k % 6, &res, NULL, 0, 0),
                     CS_OK);
    b.size = 0;
    cr_assert_eq(cs_txn_encode(&txn, &b), CS_OK);
    cs_msg r;
    cr_assert_eq(cs_client_callb(d.c, CS_MSG_COMMIT, &b, &r, &err), CS_OK, "%s", err.msg);
    cs_txn_free(&txn);

    /* A piece asked for 1,000 records carries at most the server's 50. */
    b.size = 0;
    cs_sync_req q = {.compact = true, .chunk = 1000};
    cr_assert_eq(cs_sync_req_encode(&pk, &q), CS_OK);
    cr_assert_eq(raw_sync(&b, &out, &err), CS_OK, "%s", err.msg);
    cs_copy_reply rep;
    cr_assert_eq(cs_copy_read_reply(out.data, out.size, &rep, &err), CS_OK, "%s", err.msg);
    cr_assert(rep.piece && rep.full && rep.at.more, "the first of several pieces");
    cr_assert_leq(reply_records(out.data, out.size), 50);
    cr_assert_eq(rep.at.max_machine, 6);
    cr_assert_eq(rep.at.max_job, 2);

    /* A malformed continuation is refused by name, and the server goes on. */
    b.size = 0;
    static const field noids[] = {{"chunk", 'u', 10, 0}, {"after", 'p', 0, 5},
                                  {"base", 'u', 1, 0}, {NULL, 0, 0, 0}};
    msgpack_pack_map(&pk, nfields(noids));
    pack_fields(&pk, noids);
    cr_assert_eq(raw_sync(&b, &out, &err), CS_EINVAL);
    cr_assert(strstr(err.msg, "'ids' is missing"), "%s", err.msg);

    /* The port's copy in pieces equals the one-reply copy. */
    cs_copy *pieces, *one;
    cr_assert_eq(cs_copy_new(&pieces, &err), CS_OK);
    cr_assert_eq(cs_copy_new(&one, &err), CS_OK);
    port_sync(pieces, 10000);
    port_sync(one, 0);
    tb_assert_same_copy(one, pieces, "through cellstated");
    cr_assert_eq(cs_copy_ntasks(pieces), 430);
    /* And it goes on with deltas from there. */
    ts_submit(d.c, "{\"name\": \"late\", \"count\": 3, \"cmd\": \"true\"}");
    port_sync(pieces, 10000);
    port_sync(one, 0);
    tb_assert_same_copy(one, pieces, "the delta after");
    cr_assert_eq(cs_copy_ntasks(pieces), 433);
    cs_copy_free(pieces);
    cs_copy_free(one);
    msgpack_sbuffer_destroy(&b);
    msgpack_sbuffer_destroy(&out);
}

Test(syncpieces, cellstated_refuses_a_sync_chunk_of_zero)
{
    char bin[256], cmd[512], out[4096];
    ts_bin("cellstated", bin, sizeof bin);
    snprintf(cmd, sizeof cmd, "%s --sync-chunk 0", bin);
    cr_assert_eq(ts_run(cmd, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "bad option --sync-chunk 0"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s --help", bin);
    ts_run(cmd, out, sizeof out);
    cr_assert(strstr(out, "--sync-chunk N"), "the usage names the flag: %s", out);
}
