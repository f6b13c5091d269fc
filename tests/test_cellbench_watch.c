/* test_cellbench_watch.c — `cellbench place`'s watcher (tools/cellbench_watch.h)
 * on hand-built compact `sync` replies: which tasks are placed after
 * entries and runs of entries in every state, first-seen times, requeues,
 * tasks outside the run, and the errors for replies it cannot read.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "proto/proto.h"
#include "tools/cellbench_watch.h"

/* Two jobs of 8 tasks, ids 5 and 6. */
#define JOB0 5
#define T 8

static cs_id tid(cs_id job, uint32_t index) { return job << 20 | index; }

/* A reply under construction: the tasks array's length is given up front. */
typedef struct reply {
    msgpack_sbuffer b;
    msgpack_packer pk;
} reply;

/* Start reply `version`: every field but tasks, whose array of n follows. */
static void reply_start(reply *r, uint64_t version, bool compact, uint32_t n)
{
    msgpack_sbuffer_init(&r->b);
    msgpack_packer_init(&r->pk, &r->b, msgpack_sbuffer_write);
    msgpack_pack_map(&r->pk, compact ? 6 : 5);
    cs_pack_kv_u64(&r->pk, "version", version);
    cs_pack_kv_bool(&r->pk, "full", false);
    if (compact)
        cs_pack_kv_str(&r->pk, "form", "compact");
    msgpack_pack_str_with_body(&r->pk, "machines", 8);
    msgpack_pack_array(&r->pk, 0);
    msgpack_pack_str_with_body(&r->pk, "jobs", 4);
    msgpack_pack_array(&r->pk, 0);
    msgpack_pack_str_with_body(&r->pk, "tasks", 5);
    msgpack_pack_array(&r->pk, n);
}

/* One entry: tasks id .. id + n - 1 in `state`, on `machine`. */
static void entry(reply *r, cs_id id, uint32_t n, uint8_t state, uint64_t machine)
{
    msgpack_packer *pk = &r->pk;
    msgpack_pack_array(pk, CS_TASK_ENTRY_FIELDS);
    msgpack_pack_uint64(pk, id);
    msgpack_pack_uint32(pk, n);
    msgpack_pack_uint8(pk, state);
    msgpack_pack_uint8(pk, CS_TASK_PENDING); /* last_end */
    msgpack_pack_uint64(pk, machine);
    msgpack_pack_int64(pk, 10); /* cpu */
    msgpack_pack_int64(pk, 1);  /* mem */
    msgpack_pack_int64(pk, 0);  /* disk */
    msgpack_pack_array(pk, 0);  /* ports */
    msgpack_pack_uint32(pk, state == CS_TASK_PENDING ? 0 : 1); /* attempts */
    msgpack_pack_int32(pk, 0);                                 /* exit_code */
    msgpack_pack_str_with_body(pk, "", 0);                     /* reason */
    msgpack_pack_uint8(pk, 0);                                 /* health */
    msgpack_pack_uint64(pk, 0);                                /* spec */
    msgpack_pack_uint64(pk, 9);                                /* version */
}

static int apply(cb_watch *w, reply *r, int64_t now, cs_error *err)
{
    int rc = cb_watch_apply(w, r->b.data, r->b.size, now, err);
    msgpack_sbuffer_destroy(&r->b);
    return rc;
}

static void watch_new(cb_watch *w)
{
    cs_error err = {0};
    cr_assert_eq(cb_watch_init(w, 2, T, &err), CS_OK, "%s", err.msg);
    w->job0 = JOB0;
    w->since = 3;
}

/* g = job number x T + index */
static uint32_t g(uint32_t job_number, uint32_t index) { return job_number * T + index; }

Test(cellbench_watch, placed_running_finished_count_and_pending_runs_do_not)
{
    cb_watch w;
    watch_new(&w);
    cs_error err = {0};
    reply r;
    reply_start(&r, 10, true, 8);
    entry(&r, tid(4, 0), 3, CS_TASK_ASSIGNED, 1);  /* another job: not the run's */
    entry(&r, tid(5, 0), 4, CS_TASK_PENDING, 0);   /* a run of 4 pending */
    entry(&r, tid(5, 4), 1, CS_TASK_ASSIGNED, 2);
    entry(&r, tid(5, 5), 1, CS_TASK_RUNNING, 2);
    entry(&r, tid(5, 6), 1, CS_TASK_FINISHED, 2);
    entry(&r, tid(5, 7), 1, CS_TASK_FAILED, 2);
    entry(&r, tid(6, 2), 20, CS_TASK_ASSIGNED, 3); /* a placed run past T: indexes 2..7 */
    entry(&r, tid(7, 0), 8, CS_TASK_RUNNING, 3);   /* another job */
    cr_assert_eq(apply(&w, &r, 1000, &err), CS_OK, "%s", err.msg);

    cr_assert_eq(w.since, 10, "since follows the reply's version");
    cr_assert_eq(w.placed, 3 + 6, "assigned, running, finished of job 5 and the run of job 6");
    cr_assert_eq(w.requeued, 0);
    for (uint32_t i = 0; i < T; i++) {
        bool placed5 = i >= 4 && i <= 6, placed6 = i >= 2;
        cr_assert_eq(w.held[g(0, i)], placed5, "job 5 task %u", i);
        cr_assert_eq(w.placed_ns[g(0, i)], placed5 ? 1000 : 0, "job 5 task %u", i);
        cr_assert_eq(w.held[g(1, i)], placed6, "job 6 task %u", i);
        cr_assert_eq(w.placed_ns[g(1, i)], placed6 ? 1000 : 0, "job 6 task %u", i);
    }
    cb_watch_free(&w);
}

Test(cellbench_watch, a_task_back_out_is_requeued_and_keeps_its_first_time)
{
    cb_watch w;
    watch_new(&w);
    cs_error err = {0};
    reply r;
    reply_start(&r, 10, true, 2);
    entry(&r, tid(5, 0), 8, CS_TASK_ASSIGNED, 1);
    entry(&r, tid(6, 0), 8, CS_TASK_PENDING, 0);
    cr_assert_eq(apply(&w, &r, 1000, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(w.placed, 8);

    /* Tasks 1 and 2 lost with their machine, 3 back in pending; the rest
     * run, which changes nothing. */
    reply_start(&r, 11, true, 4);
    entry(&r, tid(5, 0), 1, CS_TASK_RUNNING, 1);
    entry(&r, tid(5, 1), 2, CS_TASK_LOST, 1);
    entry(&r, tid(5, 3), 1, CS_TASK_PENDING, 0);
    entry(&r, tid(5, 4), 4, CS_TASK_RUNNING, 1);
    cr_assert_eq(apply(&w, &r, 2000, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(w.placed, 5);
    cr_assert_eq(w.requeued, 3);
    cr_assert_eq(w.since, 11);

    /* Placed again elsewhere: held again, first seen still at 1000. */
    reply_start(&r, 12, true, 2);
    entry(&r, tid(5, 1), 3, CS_TASK_ASSIGNED, 2);
    entry(&r, tid(6, 0), 2, CS_TASK_ASSIGNED, 2);
    cr_assert_eq(apply(&w, &r, 3000, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(w.placed, 10);
    cr_assert_eq(w.requeued, 3);
    for (uint32_t i = 0; i < T; i++)
        cr_assert_eq(w.placed_ns[g(0, i)], 1000, "job 5 task %u keeps its first time", i);
    cr_assert_eq(w.placed_ns[g(1, 0)], 3000);
    cr_assert_eq(w.placed_ns[g(1, 1)], 3000);
    cr_assert_eq(w.placed_ns[g(1, 2)], 0);
    cb_watch_free(&w);
}

/* Field i of a well-formed entry for task 1 of job 5, running on machine 2. */
static void entry_field(msgpack_packer *pk, int i)
{
    if (i == 0)
        msgpack_pack_uint64(pk, tid(5, 1));
    else if (i == 1 || i == 4)
        msgpack_pack_uint8(pk, i == 1 ? 1 : 2);
    else if (i == 2)
        msgpack_pack_uint8(pk, CS_TASK_RUNNING);
    else if (i == 8)
        msgpack_pack_array(pk, 0);
    else if (i == 11)
        msgpack_pack_str_with_body(pk, "", 0);
    else
        msgpack_pack_uint8(pk, 0);
}

/* A reply whose tasks[1] is that entry but for field f, which is the
 * msgpack raw[0..len) (f = -1: the whole entry is), gives CS_EPROTO with
 * `msg`, and since is left as it was. */
static void expect_bad_entry(int f, const char *raw, size_t len, const char *msg)
{
    cb_watch w;
    watch_new(&w);
    cs_error err = {0};
    reply r;
    reply_start(&r, 10, true, 2);
    entry(&r, tid(5, 0), 1, CS_TASK_ASSIGNED, 1);
    if (f >= 0)
        msgpack_pack_array(&r.pk, CS_TASK_ENTRY_FIELDS);
    for (int i = 0; i < (f >= 0 ? CS_TASK_ENTRY_FIELDS : 1); i++) {
        if (i == f || f < 0)
            msgpack_sbuffer_write(&r.b, raw, len);
        else
            entry_field(&r.pk, i);
    }
    cr_assert_eq(apply(&w, &r, 1000, &err), CS_EPROTO, "%s", msg);
    cr_assert_str_eq(err.msg, msg);
    cr_assert_eq(w.since, 3);
    cb_watch_free(&w);
}

#define BAD(f, raw, msg) expect_bad_entry(f, raw, sizeof raw - 1, msg)

Test(cellbench_watch, a_malformed_entry_is_named)
{
    BAD(-1, "\x9e\0\0\0\0\0\0\0\0\0\0\0\0\0\0", "sync: tasks[1]: not an array of 15 fields");
    BAD(4, "\xa2m1", "sync: tasks[1]: field 'machine' (4) is not an unsigned integer");
    BAD(1, "\x00", "sync: tasks[1]: field 'n' (1) is 0: a run has at least one task");
    BAD(2, "\x08", "sync: tasks[1]: field 'state' (2) is 8, above 7");
    BAD(8, "\x91\xa1x", "sync: tasks[1]: field 'ports' (8): entry 0 is not a port number");
}

Test(cellbench_watch, a_reply_it_cannot_read_is_named)
{
    cb_watch w;
    watch_new(&w);
    cs_error err = {0};

    reply r;
    reply_start(&r, 10, false, 0); /* no "form": a server older than the compact form */
    cr_assert_eq(apply(&w, &r, 1000, &err), CS_EPROTO);
    cr_assert(strstr(err.msg, "map form") != NULL, "%s", err.msg);

    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 5);
    cs_pack_kv_u64(&pk, "version", 10);
    cs_pack_kv_bool(&pk, "full", false);
    cs_pack_kv_str(&pk, "form", "compact");
    cs_pack_kv_u64(&pk, "machines", 0);
    cs_pack_kv_u64(&pk, "jobs", 0);
    cr_assert_eq(cb_watch_apply(&w, b.data, b.size, 1000, &err), CS_EPROTO);
    cr_assert_str_eq(err.msg, "sync: field 'tasks' is missing");
    cs_pack_kv_u64(&pk, "tasks", 0);
    b.data[0] = (char)0x86; /* now six pairs */
    cr_assert_eq(cb_watch_apply(&w, b.data, b.size, 1000, &err), CS_EPROTO);
    cr_assert_str_eq(err.msg, "sync: field 'tasks' is not an array");
    msgpack_sbuffer_destroy(&b);

    cr_assert_eq(w.since, 3);
    cr_assert_eq(w.placed, 0);
    cb_watch_free(&w);
}
