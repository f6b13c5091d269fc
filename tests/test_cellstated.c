/* test_cellstated.c — integration: a real cellstated process on 127.0.0.1,
 * a free port and a temporary data directory, driven through the client. */
#include <criterion/criterion.h>
#include <lmdb.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "proto/client.h"
#include "proto/schedreport.h"
#include "tests/support.h"


/* ---- building request bodies ----------------------------------------------------- */

static cs_id do_register(ts_daemon *d, const char *name, int64_t cpu)
{
    ts_body x;
    msgpack_packer *pk = ts_body_new(&x);
    msgpack_pack_map(pk, 4);
    cs_pack_kv_str(pk, "name", name);
    cs_res cap = {cpu, 4096, 10000};
    cs_pack_kv_res(pk, "capacity", &cap);
    cs_pack_kv_u64(pk, "port_lo", 31000);
    cs_pack_kv_u64(pk, "port_hi", 31099);
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(cs_client_callb(d->c, CS_MSG_MACHINE_REGISTER, &x.b, &r, &err), CS_OK, "%s",
                 err.msg);
    msgpack_sbuffer_destroy(&x.b);
    return ts_reply_u64(&r.body, "id");
}

static cs_id do_submit(ts_daemon *d, const char *name, uint32_t count)
{
    ts_body x;
    msgpack_packer *pk = ts_body_new(&x);
    msgpack_pack_map(pk, 4);
    cs_pack_kv_str(pk, "name", name);
    cs_pack_kv_u64(pk, "count", count);
    cs_res res = {500, 256, 0};
    cs_pack_kv_res(pk, "resources", &res);
    cs_pack_kv_str(pk, "cmd", "echo hello");
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(cs_client_callb(d->c, CS_MSG_JOB_SUBMIT, &x.b, &r, &err), CS_OK, "%s", err.msg);
    msgpack_sbuffer_destroy(&x.b);
    return ts_reply_u64(&r.body, "id");
}

/* Commit one claim per task, all on machine m (seq unknown: fine-grained). */
static uint64_t do_claim(ts_daemon *d, cs_id m, cs_id job, uint32_t from, uint32_t n, uint64_t req)
{
    cs_txn t;
    cs_txn_init(&t, 77, req, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    cs_res res = {500, 256, 0};
    for (uint32_t i = from; i < from + n; i++)
        cs_txn_add_claim(&t, cs_task_id(job, i), m, &res, NULL, 0, 0);
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    cs_txn_encode(&t, &b);
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(cs_client_callb(d->c, CS_MSG_COMMIT, &b, &r, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(ts_reply_u64(&r.body, "committed"), n);
    msgpack_sbuffer_destroy(&b);
    cs_txn_free(&t);
    return ts_reply_u64(&r.body, "version");
}

static uint32_t poll_count(cs_client *c, cs_id m, uint64_t since, uint32_t wait_ms, uint64_t *version)
{
    ts_body x;
    msgpack_packer *pk = ts_body_new(&x);
    msgpack_pack_map(pk, 3);
    cs_pack_kv_u64(pk, "machine", m);
    cs_pack_kv_u64(pk, "since", since);
    cs_pack_kv_u64(pk, "wait_ms", wait_ms);
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(cs_client_callb(c, CS_MSG_POLL, &x.b, &r, &err), CS_OK, "%s", err.msg);
    msgpack_sbuffer_destroy(&x.b);
    if (version)
        *version = ts_reply_u64(&r.body, "version");
    const msgpack_object *tasks = cs_obj_get(&r.body, "tasks");
    cr_assert(tasks && tasks->type == MSGPACK_OBJECT_ARRAY);
    for (uint32_t i = 0; i < tasks->via.array.size; i++) {
        const msgpack_object *job = cs_obj_get(&tasks->via.array.ptr[i], "job");
        cr_assert(job != NULL, "a polled assignment carries its job");
        cs_arena a;
        cs_arena_init(&a);
        const char *cmd = NULL;
        cr_assert_eq(cs_obj_str(job, "cmd", true, 4096, &a, &cmd, &err), CS_OK);
        cr_assert_str_eq(cmd, "echo hello");
        cs_arena_free(&a);
    }
    return tasks->via.array.size;
}

/* ---- tests ------------------------------------------------------------------------ */

Test(cellstated, register_submit_commit_poll_report, .timeout = 60)
{
    ts_daemon d;
    ts_daemon_setup(&d, NULL, NULL);
    cs_id m = do_register(&d, "m1", 4000);
    cr_assert_eq(do_register(&d, "m1", 4000), m, "registering again keeps the id");
    cs_id j = do_submit(&d, "web", 3);
    do_claim(&d, m, j, 0, 2, 1);
    uint64_t v;
    cr_assert_eq(poll_count(d.c, m, 0, 0, &v), 2);

    /* The agent reports: running, then finished, which frees the machine. */
    ts_body x;
    msgpack_packer *pk = ts_body_new(&x);
    msgpack_pack_map(pk, 3);
    cs_pack_kv_u64(pk, "task", cs_task_id(j, 0));
    cs_pack_kv_u64(pk, "attempt", 1);
    cs_pack_kv_str(pk, "state", "running");
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(cs_client_callb(d.c, CS_MSG_TASK_STATUS, &x.b, &r, &err), CS_OK, "%s", err.msg);
    x.b.size = 0;
    msgpack_pack_map(pk, 4);
    cs_pack_kv_u64(pk, "task", cs_task_id(j, 0));
    cs_pack_kv_u64(pk, "attempt", 1);
    cs_pack_kv_str(pk, "state", "finished");
    cs_pack_kv_i64(pk, "exit_code", 0);
    cr_assert_eq(cs_client_callb(d.c, CS_MSG_TASK_STATUS, &x.b, &r, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(poll_count(d.c, m, 0, 0, NULL), 1);

    /* get.job shows the three tasks and their states. */
    x.b.size = 0;
    msgpack_pack_map(pk, 1);
    cs_pack_kv_str(pk, "job", "web");
    cr_assert_eq(cs_client_callb(d.c, CS_MSG_GET_JOB, &x.b, &r, &err), CS_OK, "%s", err.msg);
    const msgpack_object *tasks = cs_obj_get(cs_obj_get(&r.body, "tasks"), "tasks");
    cr_assert(tasks && tasks->via.array.size == 3);
    cs_arena a;
    cs_arena_init(&a);
    const char *st;
    cs_obj_str(&tasks->via.array.ptr[0], "state", true, 16, &a, &st, &err);
    cr_assert_str_eq(st, "finished");
    cs_obj_str(&tasks->via.array.ptr[2], "state", true, 16, &a, &st, &err);
    cr_assert_str_eq(st, "pending");
    cs_arena_free(&a);
    msgpack_sbuffer_destroy(&x.b);
    cr_assert_eq(ts_daemon_stop(&d), 0, "cellstated exits 0 on SIGTERM");
    ts_daemon_teardown(&d);
}

/* A poll of machine m at once, on client c, asking for the form `jobs`
 * ("each", "once" or NULL for none); the reply stays valid until c's next
 * call. */
static int poll_form(cs_client *c, cs_id m, const char *jobs, cs_msg *r, cs_error *err)
{
    ts_body x;
    msgpack_packer *pk = ts_body_new(&x);
    msgpack_pack_map(pk, jobs ? 3 : 2);
    cs_pack_kv_u64(pk, "machine", m);
    cs_pack_kv_u64(pk, "since", 0);
    if (jobs)
        cs_pack_kv_str(pk, "jobs", jobs);
    int rc = cs_client_callb(c, CS_MSG_POLL, &x.b, r, err);
    msgpack_sbuffer_destroy(&x.b);
    return rc;
}

static const msgpack_object *job_with_id(const msgpack_object *jobs, uint64_t id)
{
    cs_error err = {0};
    for (uint32_t i = 0; i < jobs->via.array.size; i++) {
        uint64_t v = 0;
        cs_obj_u64(&jobs->via.array.ptr[i], "id", true, UINT64_MAX, &v, &err);
        if (v == id)
            return &jobs->via.array.ptr[i];
    }
    return NULL;
}

/* "jobs": "once" (protocol.md §5.9): each job of the machine's tasks once,
 * equal to its get.jobs record, and entries naming it by id; the tasks are
 * the default form's. "each" is the default form; anything else is refused. */
Test(cellstated, compact_poll_reply_carries_each_job_once, .timeout = 60)
{
    ts_daemon d;
    ts_daemon_setup(&d, NULL, NULL);
    cs_id m1 = do_register(&d, "m1", 8000), m2 = do_register(&d, "m2", 8000);
    cs_id web = do_submit(&d, "web", 3), db = do_submit(&d, "db", 2);
    do_claim(&d, m1, web, 0, 2, 1);
    do_claim(&d, m1, db, 0, 1, 2);
    do_claim(&d, m2, web, 2, 1, 3);
    cs_client *c2, *c3;
    cs_error err = {0};
    cr_assert_eq(cs_client_open(d.url, 10000, &c2, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_client_open(d.url, 10000, &c3, &err), CS_OK, "%s", err.msg);
    cs_msg def, once, all;
    cr_assert_eq(poll_form(d.c, m1, NULL, &def, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(poll_form(c2, m1, "once", &once, &err), CS_OK, "%s", err.msg);
    ts_body none;
    msgpack_pack_map(ts_body_new(&none), 0);
    cr_assert_eq(cs_client_callb(c3, CS_MSG_GET_JOBS, &none.b, &all, &err), CS_OK, "%s", err.msg);
    msgpack_sbuffer_destroy(&none.b);
    cr_assert_null(cs_obj_get(&def.body, "jobs"), "the default reply has no 'jobs'");
    cr_assert_eq(ts_reply_u64(&once.body, "version"), ts_reply_u64(&def.body, "version"));

    const msgpack_object *jobs = cs_obj_get(&once.body, "jobs");
    const msgpack_object *all_jobs = cs_obj_get(&all.body, "jobs");
    cr_assert(jobs && jobs->type == MSGPACK_OBJECT_ARRAY && all_jobs);
    cr_assert_eq(jobs->via.array.size, 2, "web and db, once each");
    for (uint32_t i = 0; i < 2; i++) {
        uint64_t id = 0;
        cr_assert_eq(cs_obj_u64(&jobs->via.array.ptr[i], "id", true, UINT64_MAX, &id, &err), CS_OK);
        cr_assert(id == web || id == db);
        const msgpack_object *rec = job_with_id(all_jobs, id);
        cr_assert(rec && msgpack_object_equal(*rec, jobs->via.array.ptr[i]),
                  "job %llu is its get.jobs record", (unsigned long long)id);
    }

    const msgpack_object *dt = cs_obj_get(&def.body, "tasks"), *ot = cs_obj_get(&once.body, "tasks");
    cr_assert(dt && ot && dt->via.array.size == 3 && ot->via.array.size == 3);
    for (uint32_t i = 0; i < 3; i++) {
        const msgpack_object *de = &dt->via.array.ptr[i], *oe = &ot->via.array.ptr[i];
        cr_assert_eq(oe->via.map.size, 2, "an entry is {task, job}");
        cr_assert(msgpack_object_equal(*cs_obj_get(de, "task"), *cs_obj_get(oe, "task")),
                  "entry %u: the same task record in both forms", i);
        uint64_t task_job = 0, named = 0;
        cr_assert_eq(cs_obj_u64(cs_obj_get(oe, "task"), "job", true, UINT64_MAX, &task_job, &err),
                     CS_OK);
        cr_assert_eq(cs_obj_u64(oe, "job", true, UINT64_MAX, &named, &err), CS_OK,
                     "a compact entry names its job by id: %s", err.msg);
        cr_assert_eq(named, task_job);
        cr_assert(msgpack_object_equal(*cs_obj_get(de, "job"), *job_with_id(jobs, named)),
                  "entry %u: the default form embeds the same job", i);
    }

    /* m2 holds one task of web: only web. */
    cr_assert_eq(poll_form(c2, m2, "once", &once, &err), CS_OK, "%s", err.msg);
    jobs = cs_obj_get(&once.body, "jobs");
    cr_assert(jobs && jobs->via.array.size == 1 && job_with_id(jobs, web));

    cr_assert_eq(poll_form(c2, m1, "each", &once, &err), CS_OK, "%s", err.msg);
    cr_assert_null(cs_obj_get(&once.body, "jobs"), "\"each\" is the default form");
    cr_assert_eq(poll_form(c2, m1, "twice", &once, &err), CS_EPROTO);
    cr_assert(strstr(err.msg, "'jobs'") != NULL, "the error names the field: %s", err.msg);

    cs_client_close(c2);
    cs_client_close(c3);
    ts_daemon_teardown(&d);
}

typedef struct poller {
    const char *url;
    cs_id m;
    uint64_t since;
    uint32_t n;
    int64_t took;
    uint32_t wait_ms; /* 0: 8000 */
} poller;

static void *poll_thread(void *arg)
{
    poller *p = arg;
    cs_client *c;
    cs_error err = {0};
    cr_assert_eq(cs_client_open(p->url, 10000, &c, &err), CS_OK);
    int64_t t0 = ts_now_ms();
    p->n = poll_count(c, p->m, p->since, p->wait_ms ? p->wait_ms : 8000, NULL);
    p->took = ts_now_ms() - t0;
    cs_client_close(c);
    return NULL;
}

Test(cellstated, long_poll_waits_and_wakes_on_commit, .timeout = 60)
{
    ts_daemon d;
    ts_daemon_setup(&d, NULL, NULL);
    cs_id m = do_register(&d, "m1", 4000);
    cs_id j = do_submit(&d, "batch", 4);
    uint64_t v = do_claim(&d, m, j, 0, 1, 1);

    /* Nothing changes: the poll waits its wait out and answers the same. */
    int64_t t0 = ts_now_ms();
    cr_assert_eq(poll_count(d.c, m, v, 400, NULL), 1);
    cr_assert_geq(ts_now_ms() - t0, 350, "a poll with nothing new waits");

    /* A commit on its machine wakes it long before its wait ends. */
    poller p = {d.url, m, v, 0, 0, 0};
    pthread_t th;
    pthread_create(&th, NULL, poll_thread, &p);
    ts_sleep_ms(300);
    do_claim(&d, m, j, 1, 2, 2);
    pthread_join(th, NULL);
    cr_assert_eq(p.n, 3);
    cr_assert_lt(p.took, 6000, "the poll was woken (took %lld ms)", (long long)p.took);
    ts_daemon_teardown(&d);
}

/* The server's "parked_polls" counter. */
static uint64_t parked_polls(ts_daemon *d)
{
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(cs_client_call(d->c, CS_MSG_STATS, "\x80", 1, &r, &err), CS_OK, "%s", err.msg);
    uint64_t n = 0;
    cr_assert_eq(cs_obj_u64(cs_obj_get(&r.body, "server"), "parked_polls", true, UINT64_MAX, &n,
                            &err),
                 CS_OK, "%s", err.msg);
    return n;
}

static void wait_parked(ts_daemon *d, uint64_t n)
{
    for (int i = 0; i < 200 && parked_polls(d) != n; i++)
        ts_sleep_ms(20);
    cr_assert_eq(parked_polls(d), n, "%llu polls parked", (unsigned long long)n);
}

/* Parked polls are kept per machine: a commit wakes the polls of the
 * machines it changed, every one of them, and no other; a poll that times
 * out leaves its machine's list intact for the next wake-up. */
Test(cellstated, commit_wakes_only_the_polls_of_its_machines, .timeout = 60)
{
    ts_daemon d;
    ts_daemon_setup(&d, NULL, NULL);
    cs_id m1 = do_register(&d, "m1", 4000), m2 = do_register(&d, "m2", 4000);
    cs_id j = do_submit(&d, "batch", 4);
    uint64_t v;
    poll_count(d.c, m1, 0, 0, &v);

    /* m2: a short poll, parked first (the tail of m2's list), then a long
     * one (its head). m1: two long polls. */
    poller p[4] = {{d.url, m2, v, 0, 0, 2000}, {d.url, m2, v, 0, 0, 8000},
                   {d.url, m1, v, 0, 0, 8000}, {d.url, m1, v, 0, 0, 8000}};
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        pthread_create(&th[i], NULL, poll_thread, &p[i]);
        wait_parked(&d, (uint64_t)i + 1);
    }

    do_claim(&d, m1, j, 0, 1, 1);
    pthread_join(th[2], NULL);
    pthread_join(th[3], NULL);
    for (int i = 2; i < 4; i++) {
        cr_assert_eq(p[i].n, 1);
        cr_assert_lt(p[i].took, 6000, "m1's poll was woken (took %lld ms)", (long long)p[i].took);
    }

    /* The commit on m1 did not answer m2's short poll: it waited its wait. */
    pthread_join(th[0], NULL);
    cr_assert_eq(p[0].n, 0);
    cr_assert_geq(p[0].took, 1900, "m2's poll waited (took %lld ms)", (long long)p[0].took);
    wait_parked(&d, 1);

    do_claim(&d, m2, j, 1, 1, 2);
    pthread_join(th[1], NULL);
    cr_assert_eq(p[1].n, 1);
    cr_assert_lt(p[1].took, 6000, "m2's long poll was woken (took %lld ms)", (long long)p[1].took);
    wait_parked(&d, 0);
    ts_daemon_teardown(&d);
}

Test(cellstated, silent_machine_goes_down_and_its_tasks_are_lost, .timeout = 60)
{
    ts_daemon d;
    ts_daemon_setup(&d, "--heartbeat-timeout", "300");
    cs_id m = do_register(&d, "m1", 4000);
    cs_id j = do_submit(&d, "batch", 2);
    do_claim(&d, m, j, 0, 2, 1);
    cs_msg r;
    cs_error err = {0};
    bool lost = false;
    for (int i = 0; i < 100 && !lost; i++) {
        ts_sleep_ms(50);
        ts_body x;
        msgpack_packer *pk = ts_body_new(&x);
        msgpack_pack_map(pk, 2);
        cs_pack_kv_u64(pk, "job", j);
        cs_pack_kv_str(pk, "state", "lost");
        cr_assert_eq(cs_client_callb(d.c, CS_MSG_GET_TASKS, &x.b, &r, &err), CS_OK, "%s", err.msg);
        lost = cs_obj_get(&r.body, "tasks")->via.array.size == 2;
        msgpack_sbuffer_destroy(&x.b);
    }
    cr_assert(lost, "tasks of a silent machine become lost");
    cr_assert_eq(poll_count(d.c, m, 0, 0, NULL), 0, "nothing is placed there any more");
    ts_daemon_teardown(&d);
}

Test(cellstated, restart_resumes_where_it_was, .timeout = 60)
{
    ts_daemon d;
    ts_daemon_setup(&d, NULL, NULL);
    cs_id m = do_register(&d, "m1", 4000);
    cs_id j = do_submit(&d, "svc", 2);
    do_claim(&d, m, j, 0, 2, 1);
    cr_assert_eq(ts_daemon_stop(&d), 0);
    ts_daemon_start(&d, NULL, NULL);
    cr_assert_eq(poll_count(d.c, m, 0, 0, NULL), 2, "assignments survive a restart");
    cr_assert_eq(do_register(&d, "m1", 4000), m);
    ts_daemon_teardown(&d);
}

/* Send raw bytes with a bare REQ socket; return the decoded reply. */
static void raw_call(const char *url, const void *data, size_t len, msgpack_zone *zone,
                     cs_msg *out, nng_msg **hold)
{
    nng_socket s;
    cr_assert_eq(nng_req0_open(&s), 0);
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 5000);
    cr_assert_eq(nng_dial(s, url, NULL, 0), 0);
    cr_assert_eq(nng_send(s, (void *)data, len, 0), 0);
    cr_assert_eq(nng_recvmsg(s, hold, 0), 0, "no reply to bad input");
    cs_error err = {0};
    cr_assert_eq(cs_msg_decode(nng_msg_body(*hold), nng_msg_len(*hold), zone, out, &err), CS_OK,
                 "%s", err.msg);
    nng_close(s);
}

static void expect_error_reply(const char *url, const void *data, size_t len, const char *needle)
{
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    cs_msg r;
    nng_msg *m;
    raw_call(url, data, len, &zone, &r, &m);
    cr_assert_eq(r.type, CS_MSG_ERROR, "bad input (%s) got a non-error reply", needle);
    cs_arena a;
    cs_arena_init(&a);
    const char *text = "";
    cs_error err = {0};
    cs_obj_str(&r.body, "message", true, 4096, &a, &text, &err);
    cr_assert(strstr(text, needle) != NULL, "error '%s' does not name '%s'", text, needle);
    cs_arena_free(&a);
    nng_msg_free(m);
    msgpack_zone_destroy(&zone);
}

Test(cellstated, bad_input_gets_an_error_and_the_server_keeps_serving, .timeout = 60)
{
    ts_daemon d;
    ts_daemon_setup(&d, "--max-msg", "4096");
    cs_id m = do_register(&d, "m1", 4000);
    cs_msg r;
    cs_error err = {0};
    uint64_t v0;
    poll_count(d.c, m, 0, 0, &v0);

    expect_error_reply(d.url, "\xc1\x01\x02", 3, "not valid msgpack");
    expect_error_reply(d.url, "\x94\x01\x02", 3, "truncated");
    expect_error_reply(d.url, "\x94\x09\x0b\x01\x80", 5, "protocol version");
    expect_error_reply(d.url, "\x94\x01\x63\x01\x80", 5, "unknown message type 99");
    expect_error_reply(d.url, "\x93\x01\x0b\x01", 4, "[version, type, request id, body]");
    expect_error_reply(d.url, "\x94\x01\x00\x01\x80", 5, "not a request");
    /* Oversized: a 5000-byte string body. */
    static char big[5100];
    memcpy(big, "\x94\x01\x0b\x01\xda\x13\x88", 7);
    memset(big + 7, 'x', 5000);
    expect_error_reply(d.url, big, 5007, "exceeds the limit of 4096 bytes");
    /* A field of the wrong type, a missing field, unknown machine and job. */
    expect_error_reply(d.url, "\x94\x01\x09\x01\x81\xa7machine\xa3one", 17, "unknown machine 'one'");
    expect_error_reply(d.url, "\x94\x01\x02\x01\x80", 5, "field 'machine' is missing");
    expect_error_reply(d.url, "\x94\x01\x04\x01\x81\xa3job\x2a", 10, "unknown job 42");
    expect_error_reply(d.url, "\x94\x01\x01\x01\x81\xa4name\x05", 11, "field 'name' is not a string");
    expect_error_reply(d.url, "\x94\x01\x08\x01\x90", 5, "transaction");
    expect_error_reply(d.url, "\x94\x01\x03\x01\x82\xa4name\xa1j\xa5" "count\xd0\xff", 20,
                       "field 'count' is not an unsigned integer");
    /* job.update is checked whole before the job is looked up (protocol.md
     * §5.6): spec present, job a ref, the spec, then the job. */
    expect_error_reply(d.url, "\x94\x01\x06\x01\x81\xa3job\x2a", 10, "field 'spec' is missing");
    expect_error_reply(d.url, "\x94\x01\x06\x01\x81\xa4spec\x80", 11, "field 'job' is missing");
    expect_error_reply(d.url, "\x94\x01\x06\x01\x82\xa3job\x2a\xa4spec\x80", 16,
                       "field 'name' is missing");
    /* job.scale: the count before the job. */
    expect_error_reply(d.url, "\x94\x01\x05\x01\x81\xa3job\x2a", 10, "field 'count' is missing");

    /* Still serving, and nothing was written. */
    uint64_t v1;
    poll_count(d.c, m, 0, 0, &v1);
    cr_assert_eq(v1, v0, "bad input wrote to the store");
    cr_assert_eq(cs_client_call(d.c, CS_MSG_STATS, "\x80", 1, &r, &err), CS_OK, "%s", err.msg);
    ts_daemon_teardown(&d);
}

/* ---- job.note, task health, sched.report ---------------------------------------- */

/* Call and expect an error reply of `code` whose message names `needle`. */
static void expect_refused(ts_daemon *d, uint32_t type, ts_body *x, int code, const char *needle)
{
    cs_msg r;
    cs_error err = {0};
    int rc = cs_client_callb(d->c, type, &x->b, &r, &err);
    cr_assert_eq(rc, code, "%s: rc %d (%s), expected %d", needle, rc, err.msg, code);
    cr_assert(strstr(err.msg, needle) != NULL, "error '%s' does not name '%s'", err.msg, needle);
    x->b.size = 0;
}

static uint64_t call_ok(ts_daemon *d, uint32_t type, ts_body *x, cs_msg *r)
{
    cs_error err = {0};
    cr_assert_eq(cs_client_callb(d->c, type, &x->b, r, &err), CS_OK, "%s", err.msg);
    x->b.size = 0;
    return ts_reply_u64(&r->body, "version");
}

static uint64_t send_note(ts_daemon *d, const char *job, const char *note)
{
    ts_body x;
    msgpack_packer *pk = ts_body_new(&x);
    msgpack_pack_map(pk, 2);
    cs_pack_kv_str(pk, "job", job);
    cs_pack_kv_str(pk, "note", note);
    cs_msg r;
    uint64_t v = call_ok(d, CS_MSG_JOB_NOTE, &x, &r);
    msgpack_sbuffer_destroy(&x.b);
    return v;
}

/* get.job's job map, decoded (strings in `a`). */
static cs_job fetch_job(ts_daemon *d, const char *name, cs_arena *a)
{
    ts_body x;
    msgpack_packer *pk = ts_body_new(&x);
    msgpack_pack_map(pk, 1);
    cs_pack_kv_str(pk, "job", name);
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(cs_client_callb(d->c, CS_MSG_GET_JOB, &x.b, &r, &err), CS_OK, "%s", err.msg);
    cs_job j;
    cr_assert_eq(cs_unpack_job(cs_obj_get(&r.body, "job"), a, &j, &err), CS_OK, "%s", err.msg);
    msgpack_sbuffer_destroy(&x.b);
    return j;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

Test(cellstated, job_note_and_submission_time, .timeout = 60)
{
    ts_daemon d;
    ts_daemon_setup(&d, NULL, NULL);
    uint64_t t0 = wall_ms();
    do_submit(&d, "web", 2);
    uint64_t t1 = wall_ms();
    cs_arena a;
    cs_arena_init(&a);
    cs_job j = fetch_job(&d, "web", &a);
    cr_assert(j.submitted >= t0 && j.submitted <= t1, "submitted %llu not in [%llu, %llu]",
              (unsigned long long)j.submitted, (unsigned long long)t0, (unsigned long long)t1);
    cr_assert_str_eq(j.note, "");

    const char *note = "no machine fits: cpu on 9,870, UNIQUE hostname on 130";
    uint64_t v = send_note(&d, "web", note);
    cr_assert_eq(v, j.version + 1);
    cs_job k = fetch_job(&d, "web", &a);
    cr_assert_str_eq(k.note, note);
    cr_assert_eq(k.spec_hash, j.spec_hash);
    cr_assert_eq(k.submitted, j.submitted);
    cr_assert_eq(send_note(&d, "web", note), v, "an identical note writes nothing");

    ts_body x;
    msgpack_packer *pk = ts_body_new(&x);
    msgpack_pack_map(pk, 1);
    cs_pack_kv_str(pk, "job", "web");
    expect_refused(&d, CS_MSG_JOB_NOTE, &x, CS_EPROTO, "field 'note' is missing");
    static char long_note[CS_NOTE_MAX + 2];
    memset(long_note, 'n', CS_NOTE_MAX + 1);
    msgpack_pack_map(pk, 2);
    cs_pack_kv_str(pk, "job", "web");
    cs_pack_kv_str(pk, "note", long_note);
    expect_refused(&d, CS_MSG_JOB_NOTE, &x, CS_EINVAL, "field 'note' is longer than 1024 bytes");
    msgpack_pack_map(pk, 2);
    cs_pack_kv_str(pk, "job", "nope");
    cs_pack_kv_str(pk, "note", "x");
    expect_refused(&d, CS_MSG_JOB_NOTE, &x, CS_ENOTFOUND, "nope");
    msgpack_pack_map(pk, 2);
    cs_pack_kv_u64(pk, "job", j.id);
    cs_pack_kv_i64(pk, "note", 5);
    expect_refused(&d, CS_MSG_JOB_NOTE, &x, CS_EPROTO, "field 'note' is not a string");
    msgpack_sbuffer_destroy(&x.b);

    /* The note and the time survive a restart: they are in the store. */
    cr_assert_eq(ts_daemon_stop(&d), 0);
    ts_daemon_start(&d, NULL, NULL);
    k = fetch_job(&d, "web", &a);
    cr_assert_str_eq(k.note, note);
    cr_assert_eq(k.submitted, j.submitted);
    cs_arena_free(&a);
    ts_daemon_teardown(&d);
}

/* Task `task` as get.tasks lists it (strings in `a`). */
static cs_task task_of(ts_daemon *d, cs_id task, cs_arena *a)
{
    ts_body x;
    msgpack_packer *pk = ts_body_new(&x);
    msgpack_pack_map(pk, 1);
    cs_pack_kv_u64(pk, "job", cs_task_job(task));
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(cs_client_callb(d->c, CS_MSG_GET_TASKS, &x.b, &r, &err), CS_OK, "%s", err.msg);
    msgpack_sbuffer_destroy(&x.b);
    const msgpack_object *tasks = cs_obj_get(&r.body, "tasks");
    cs_task t = {0};
    for (uint32_t i = 0; i < tasks->via.array.size; i++) {
        cr_assert_eq(cs_unpack_task(&tasks->via.array.ptr[i], a, &t, &err), CS_OK, "%s", err.msg);
        if (t.id == task)
            return t;
    }
    cr_assert_fail("task %llu not listed", (unsigned long long)task);
    return t;
}

static const char *task_health(ts_daemon *d, cs_id task, cs_arena *a)
{
    return cs_task_health_name(task_of(d, task, a).health);
}

static const char *task_state_of(ts_daemon *d, cs_id task, cs_arena *a)
{
    return cs_task_state_name(task_of(d, task, a).state);
}

static void pack_status(msgpack_packer *pk, cs_id task, const char *state, const char *health)
{
    msgpack_pack_map(pk, health ? 4 : 3);
    cs_pack_kv_u64(pk, "task", task);
    cs_pack_kv_u64(pk, "attempt", 1);
    cs_pack_kv_str(pk, "state", state);
    if (health)
        cs_pack_kv_str(pk, "health", health);
}

Test(cellstated, task_status_with_health, .timeout = 60)
{
    ts_daemon d;
    ts_daemon_setup(&d, NULL, NULL);
    cs_id m = do_register(&d, "m1", 4000);
    cs_id j = do_submit(&d, "svc", 1);
    do_claim(&d, m, j, 0, 1, 1);
    cs_id id = cs_task_id(j, 0);
    cs_arena a;
    cs_arena_init(&a);
    cr_assert_str_eq(task_health(&d, id, &a), "unknown");

    ts_body x;
    msgpack_packer *pk = ts_body_new(&x);
    cs_msg r;
    pack_status(pk, id, "running", NULL);
    uint64_t v = call_ok(&d, CS_MSG_TASK_STATUS, &x, &r);
    pack_status(pk, id, "running", "healthy");
    cr_assert_eq(call_ok(&d, CS_MSG_TASK_STATUS, &x, &r), v + 1);
    cr_assert_str_eq(task_health(&d, id, &a), "healthy");
    pack_status(pk, id, "running", "healthy");
    cr_assert_eq(call_ok(&d, CS_MSG_TASK_STATUS, &x, &r), v + 1, "an identical report writes");
    pack_status(pk, id, "running", "unhealthy");
    cr_assert_eq(call_ok(&d, CS_MSG_TASK_STATUS, &x, &r), v + 2);
    cr_assert_str_eq(task_health(&d, id, &a), "unhealthy");

    pack_status(pk, id, "running", "unknown");
    expect_refused(&d, CS_MSG_TASK_STATUS, &x, CS_EINVAL, "field 'health' is 'unknown'");
    pack_status(pk, id, "running", "sick");
    expect_refused(&d, CS_MSG_TASK_STATUS, &x, CS_EINVAL, "field 'health' is 'sick'");
    pack_status(pk, id, "failed", "unhealthy");
    expect_refused(&d, CS_MSG_TASK_STATUS, &x, CS_EINVAL, "health is reported with state running");
    msgpack_pack_map(pk, 4);
    cs_pack_kv_u64(pk, "task", id);
    cs_pack_kv_u64(pk, "attempt", 1);
    cs_pack_kv_str(pk, "state", "running");
    cs_pack_kv_u64(pk, "health", 1);
    expect_refused(&d, CS_MSG_TASK_STATUS, &x, CS_EPROTO, "field 'health' is not a string");
    cr_assert_str_eq(task_health(&d, id, &a), "unhealthy", "refused reports changed the task");
    msgpack_sbuffer_destroy(&x.b);
    cs_arena_free(&a);
    ts_daemon_teardown(&d);
}

/* The code of results[i] of a batch reply, and its message in *msg. */
static uint64_t result_at(const cs_msg *r, uint32_t i, const char **msg, uint32_t *len)
{
    const msgpack_object *res = cs_obj_get(&r->body, "results");
    cr_assert(res && res->type == MSGPACK_OBJECT_ARRAY && i < res->via.array.size,
              "no results[%u]", i);
    const msgpack_object *e = &res->via.array.ptr[i];
    const msgpack_object *code = cs_obj_get(e, "code"), *m = cs_obj_get(e, "message");
    cr_assert(code && code->type == MSGPACK_OBJECT_POSITIVE_INTEGER && m &&
              m->type == MSGPACK_OBJECT_STR);
    *msg = m->via.str.ptr;
    *len = m->via.str.size;
    return code->via.u64;
}

Test(cellstated, task_status_batch_applies_each_report_on_its_own, .timeout = 60)
{
    ts_daemon d;
    ts_daemon_setup(&d, NULL, NULL);
    cs_id m = do_register(&d, "m1", 4000);
    cs_id j = do_submit(&d, "b", 3);
    do_claim(&d, m, j, 0, 2, 1); /* tasks 0 and 1 placed, 2 pending */
    cs_arena a;
    cs_arena_init(&a);
    ts_body x;
    msgpack_packer *pk = ts_body_new(&x);
    msgpack_pack_map(pk, 1);
    cs_pack_str(pk, "reports");
    msgpack_pack_array(pk, 5);
    pack_status(pk, cs_task_id(j, 0), "running", NULL);
    pack_status(pk, cs_task_id(j, 2), "running", NULL); /* not placed: stale */
    pack_status(pk, cs_task_id(j, 1), "finished", NULL);
    pack_status(pk, cs_task_id(j, 0), "running", "sick");
    msgpack_pack_uint8(pk, 3); /* not a map */
    cs_msg r;
    uint64_t v = call_ok(&d, CS_MSG_TASK_STATUS, &x, &r);
    const char *msg;
    uint32_t len;
    cr_assert_eq(result_at(&r, 0, &msg, &len), CS_OK);
    cr_assert_eq(len, 0);
    cr_assert_eq(result_at(&r, 1, &msg, &len), CS_ESTATE);
    cr_assert(len > 0 && memmem(msg, len, "attempt", 7) != NULL, "%.*s", (int)len, msg);
    cr_assert_eq(result_at(&r, 2, &msg, &len), CS_OK);
    cr_assert_eq(result_at(&r, 3, &msg, &len), CS_EINVAL);
    cr_assert(memmem(msg, len, "sick", 4) != NULL, "%.*s", (int)len, msg);
    cr_assert_eq(result_at(&r, 4, &msg, &len), CS_EPROTO);
    cr_assert(memmem(msg, len, "reports[4]", 10) != NULL, "%.*s", (int)len, msg);
    cr_assert_str_eq(task_state_of(&d, cs_task_id(j, 0), &a), "running");
    cr_assert_str_eq(task_state_of(&d, cs_task_id(j, 1), &a), "finished");
    cr_assert_str_eq(task_state_of(&d, cs_task_id(j, 2), &a), "pending");
    /* Two reports taken: two versions, the reply carries the last. */
    cs_error err = {0};
    cs_msg s;
    cr_assert_eq(cs_client_call(d.c, CS_MSG_STATS, "\x80", 1, &s, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(ts_reply_u64(&s.body, "version"), v);

    /* The batch's shape is checked as a whole. */
    msgpack_pack_map(pk, 1);
    cs_pack_kv_u64(pk, "reports", 1);
    expect_refused(&d, CS_MSG_TASK_STATUS, &x, CS_EPROTO, "field 'reports' is not an array");
    msgpack_sbuffer_destroy(&x.b);
    cs_arena_free(&a);
    ts_daemon_teardown(&d);
}

static void send_report(ts_daemon *d, const cs_sched_report *rep)
{
    ts_body x;
    msgpack_packer *pk = ts_body_new(&x);
    cr_assert_eq(cs_sched_report_pack(pk, rep), CS_OK);
    cs_msg r;
    call_ok(d, CS_MSG_SCHED_REPORT, &x, &r);
    msgpack_sbuffer_destroy(&x.b);
}

static const msgpack_object *stats_schedulers(ts_daemon *d, cs_msg *r)
{
    cs_error err = {0};
    cr_assert_eq(cs_client_call(d->c, CS_MSG_STATS, "\x80", 1, r, &err), CS_OK, "%s", err.msg);
    const msgpack_object *s = cs_obj_get(&r->body, "schedulers");
    cr_assert(s != NULL && s->type == MSGPACK_OBJECT_ARRAY, "stats lacks 'schedulers'");
    return s;
}

static void expect_str(const msgpack_object *o, const char *key, const char *want)
{
    const msgpack_object *v = cs_obj_get(o, key);
    cr_assert(v && v->type == MSGPACK_OBJECT_STR, "'%s' is not a string", key);
    cr_assert(v->via.str.size == strlen(want) && memcmp(v->via.str.ptr, want, v->via.str.size) == 0,
              "'%s' is '%.*s', not '%s'", key, (int)v->via.str.size, v->via.str.ptr, want);
}

Test(cellstated, sched_report_shows_in_stats, .timeout = 60)
{
    ts_daemon d;
    ts_daemon_setup(&d, NULL, NULL);
    cs_msg r;
    cr_assert_eq(stats_schedulers(&d, &r)->via.array.size, 0, "no scheduler has reported");

    cs_error err = {0};
    cs_sched_report *b = calloc(1, sizeof *b), *a = calloc(1, sizeof *a);
    strcpy(b->name, "service-0");
    strcpy(b->kind, "service");
    cr_assert_eq(cs_sched_report_add_float(b, "busyness", 0.25, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_sched_report_add_uint(b, "txn_committed", 120, &err), CS_OK, "%s", err.msg);
    strcpy(a->name, "batch-0");
    strcpy(a->kind, "batch");
    cr_assert_eq(cs_sched_report_add_float(a, "conflict_fraction", 0.5, &err), CS_OK, "%s", err.msg);
    send_report(&d, b);
    send_report(&d, a);
    /* A newer report from batch-0 replaces its metrics. */
    a->nmetrics = 0;
    cr_assert_eq(cs_sched_report_add_uint(a, "pending_tasks", 7, &err), CS_OK, "%s", err.msg);
    send_report(&d, a);

    const msgpack_object *s = stats_schedulers(&d, &r);
    cr_assert_eq(s->via.array.size, 2);
    const msgpack_object *s0 = &s->via.array.ptr[0], *s1 = &s->via.array.ptr[1];
    expect_str(s0, "name", "batch-0"); /* sorted by name */
    expect_str(s0, "kind", "batch");
    expect_str(s1, "name", "service-0");
    uint64_t age = UINT64_MAX;
    cr_assert_eq(cs_obj_u64(s0, "age_ms", true, UINT64_MAX, &age, &err), CS_OK, "%s", err.msg);
    cr_assert_lt(age, 60000);
    const msgpack_object *m0 = cs_obj_get(s0, "metrics"), *m1 = cs_obj_get(s1, "metrics");
    cr_assert(m0 && m0->type == MSGPACK_OBJECT_MAP && m0->via.map.size == 1);
    uint64_t pending = 0;
    cr_assert_eq(cs_obj_u64(m0, "pending_tasks", true, UINT64_MAX, &pending, &err), CS_OK);
    cr_assert_eq(pending, 7);
    const msgpack_object *busy = cs_obj_get(m1, "busyness");
    cr_assert(busy && busy->type == MSGPACK_OBJECT_FLOAT64 && busy->via.f64 == 0.25,
              "a float metric is served as a float");
    uint64_t committed = 0;
    cr_assert_eq(cs_obj_u64(m1, "txn_committed", true, UINT64_MAX, &committed, &err), CS_OK);
    cr_assert_eq(committed, 120, "an integer metric is served as an integer");

    /* Reports are not cell state: the version did not move. */
    cr_assert_eq(ts_reply_u64(&r.body, "version"), 0);
    free(a);
    free(b);
    ts_daemon_teardown(&d);
}

/* A map body of `n` pairs whose last pair the caller packs. */
static msgpack_packer *report_body(ts_body *x, const char *name, uint32_t metrics_size)
{
    msgpack_packer *pk = &x->pk;
    msgpack_pack_map(pk, 3);
    cs_pack_kv_str(pk, "name", name);
    cs_pack_kv_str(pk, "kind", "batch");
    cs_pack_str(pk, "metrics");
    msgpack_pack_map(pk, metrics_size);
    return pk;
}

Test(cellstated, bad_sched_reports_are_refused_by_field, .timeout = 60)
{
    ts_daemon d;
    ts_daemon_setup(&d, NULL, NULL);
    ts_body x;
    msgpack_packer *pk = ts_body_new(&x);

    msgpack_pack_map(pk, 2);
    cs_pack_kv_str(pk, "kind", "batch");
    cs_pack_str(pk, "metrics");
    msgpack_pack_map(pk, 0);
    expect_refused(&d, CS_MSG_SCHED_REPORT, &x, CS_EPROTO, "field 'name' is missing");
    report_body(&x, "", 0);
    expect_refused(&d, CS_MSG_SCHED_REPORT, &x, CS_EINVAL, "field 'name' is empty");
    char longname[300];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    report_body(&x, longname, 0);
    expect_refused(&d, CS_MSG_SCHED_REPORT, &x, CS_EINVAL, "field 'name' is longer than 255");
    msgpack_pack_map(pk, 3);
    cs_pack_kv_str(pk, "name", "s");
    cs_pack_kv_u64(pk, "kind", 1);
    cs_pack_str(pk, "metrics");
    msgpack_pack_map(pk, 0);
    expect_refused(&d, CS_MSG_SCHED_REPORT, &x, CS_EPROTO, "field 'kind' is not a string");
    msgpack_pack_map(pk, 3);
    cs_pack_kv_str(pk, "name", "s");
    cs_pack_kv_str(pk, "kind", "this kind is longer than thirty-two bytes");
    cs_pack_str(pk, "metrics");
    msgpack_pack_map(pk, 0);
    expect_refused(&d, CS_MSG_SCHED_REPORT, &x, CS_EINVAL, "field 'kind' is longer than 32");
    msgpack_pack_map(pk, 3);
    cs_pack_kv_str(pk, "name", "s");
    cs_pack_kv_str(pk, "kind", "batch");
    cs_pack_kv_str(pk, "metrics", "busy");
    expect_refused(&d, CS_MSG_SCHED_REPORT, &x, CS_EPROTO, "field 'metrics' is not a map");
    report_body(&x, "s", 65);
    for (int i = 0; i < 65; i++) {
        char k[16];
        snprintf(k, sizeof k, "m%d", i);
        cs_pack_kv_u64(pk, k, (uint64_t)i);
    }
    expect_refused(&d, CS_MSG_SCHED_REPORT, &x, CS_EPROTO, "at most 64");
    report_body(&x, "s", 1);
    cs_pack_kv_str(pk, "busyness", "high");
    expect_refused(&d, CS_MSG_SCHED_REPORT, &x, CS_EPROTO, "'busyness' is not a number");
    report_body(&x, "s", 1);
    cs_pack_str(pk, "busyness");
    msgpack_pack_double(pk, NAN);
    expect_refused(&d, CS_MSG_SCHED_REPORT, &x, CS_EINVAL, "'busyness' is not a finite number");
    report_body(&x, "s", 2);
    cs_pack_kv_u64(pk, "txn_committed", 1);
    cs_pack_kv_u64(pk, "txn_committed", 2);
    expect_refused(&d, CS_MSG_SCHED_REPORT, &x, CS_EINVAL, "'txn_committed' is repeated");
    report_body(&x, "s", 1);
    char longkey[80];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    cs_pack_kv_u64(pk, longkey, 1);
    expect_refused(&d, CS_MSG_SCHED_REPORT, &x, CS_EINVAL, "longer than 64 bytes");
    report_body(&x, "s", 1);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_uint8(pk, 1);
    expect_refused(&d, CS_MSG_SCHED_REPORT, &x, CS_EPROTO, "a key is not a string");

    /* Still serving; none of them was kept. A negative integer is fine. */
    cs_msg r;
    cr_assert_eq(stats_schedulers(&d, &r)->via.array.size, 0, "a refused report was kept");
    report_body(&x, "s", 1);
    cs_pack_kv_i64(pk, "skew", -3);
    call_ok(&d, CS_MSG_SCHED_REPORT, &x, &r);
    const msgpack_object *s = stats_schedulers(&d, &r);
    cr_assert_eq(s->via.array.size, 1);
    int64_t skew = 0;
    cs_error err = {0};
    cr_assert_eq(cs_obj_i64(cs_obj_get(&s->via.array.ptr[0], "metrics"), "skew", true, INT64_MIN,
                            INT64_MAX, &skew, &err),
                 CS_OK, "%s", err.msg);
    cr_assert_eq(skew, -3);
    msgpack_sbuffer_destroy(&x.b);
    ts_daemon_teardown(&d);
}

/* The table itself, on a clock the test sets: a scheduler silent for ten
 * minutes is forgotten; one that reports again is kept with its new age. */
Test(cellstated, sched_table_forgets_silent_schedulers)
{
    cs_sched_table t;
    cs_sched_table_init(&t);
    cs_sched_report *r = calloc(1, sizeof *r);
    cs_error err = {0};
    const char *names[] = {"c", "a", "b"};
    for (int i = 0; i < 3; i++) {
        strcpy(r->name, names[i]);
        cr_assert_eq(cs_sched_table_put(&t, r, 1000 * i, &err), CS_OK, "%s", err.msg);
    }
    cr_assert_eq(t.n, 3);
    cr_assert_str_eq(t.v[0].r.name, "a");
    cr_assert_str_eq(t.v[2].r.name, "c");
    /* "c" reported at 0: at exactly the TTL it is kept, one ms later not. */
    cs_sched_table_expire(&t, CS_SCHED_REPORT_TTL_MS);
    cr_assert_eq(t.n, 3);
    cs_sched_table_expire(&t, CS_SCHED_REPORT_TTL_MS + 1);
    cr_assert_eq(t.n, 2);
    cr_assert_str_eq(t.v[1].r.name, "b");
    strcpy(r->name, "a");
    cr_assert_eq(cs_sched_table_put(&t, r, CS_SCHED_REPORT_TTL_MS + 1500, &err), CS_OK);
    cs_sched_table_expire(&t, CS_SCHED_REPORT_TTL_MS + 2001);
    cr_assert_eq(t.n, 1, "b went silent, a reported again");
    cr_assert_str_eq(t.v[0].r.name, "a");
    cr_assert_eq(t.v[0].seen_ms, CS_SCHED_REPORT_TTL_MS + 1500);

    /* A full table refuses a new name and keeps taking the known ones. */
    for (int i = 1; i < CS_SCHED_TABLE_MAX; i++) {
        snprintf(r->name, sizeof r->name, "s%05d", i);
        cr_assert_eq(cs_sched_table_put(&t, r, CS_SCHED_REPORT_TTL_MS + 3000, &err), CS_OK);
    }
    strcpy(r->name, "one-too-many");
    cr_assert_eq(cs_sched_table_put(&t, r, CS_SCHED_REPORT_TTL_MS + 3000, &err), CS_EFULL);
    cr_assert(strstr(err.msg, "one-too-many") != NULL, "%s", err.msg);
    strcpy(r->name, "a");
    cr_assert_eq(cs_sched_table_put(&t, r, CS_SCHED_REPORT_TTL_MS + 3000, &err), CS_OK);
    free(r);
    cs_sched_table_free(&t);
}

/* ---- heartbeats, poll replies and stopping at scale (C1M) -------------------------- */

/* One of the server's counters (stats' "server" map). */
static uint64_t server_counter(ts_daemon *d, const char *name)
{
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(cs_client_call(d->c, CS_MSG_STATS, "\x80", 1, &r, &err), CS_OK, "%s", err.msg);
    uint64_t n = 0;
    cr_assert_eq(cs_obj_u64(cs_obj_get(&r.body, "server"), name, true, UINT64_MAX, &n, &err),
                 CS_OK, "%s", err.msg);
    return n;
}

/* Writer queue items taken so far. */
static uint64_t writes_taken(ts_daemon *d) { return server_counter(d, "writes"); }

static void wait_queued(ts_daemon *d, uint64_t n)
{
    for (int i = 0; i < 500 && server_counter(d, "queued") != n; i++)
        ts_sleep_ms(10);
    cr_assert_eq(server_counter(d, "queued"), n, "%llu writes queued", (unsigned long long)n);
}

/* Hold LMDB's write lock on the daemon's store from this process, so that
 * its writer blocks at its next write for as long as the test wants. */
typedef struct held_store {
    MDB_env *env;
    MDB_txn *txn;
} held_store;

static void hold_writer(ts_daemon *d, held_store *h)
{
    char data[300];
    snprintf(data, sizeof data, "%s/data", d->dir);
    cr_assert_eq(mdb_env_create(&h->env), 0);
    mdb_env_set_maxdbs(h->env, 32);
    cr_assert_eq(mdb_env_open(h->env, data, MDB_NOTLS, 0644), 0);
    cr_assert_eq(mdb_txn_begin(h->env, NULL, 0, &h->txn), 0);
}

static void release_writer(held_store *h)
{
    mdb_txn_abort(h->txn);
    mdb_env_close(h->env);
}

/* Send a request on its own REQ socket and leave it in flight: the reply,
 * if any, is never read. The caller closes *s. */
static void send_only(const char *url, uint32_t type, uint64_t req, const msgpack_sbuffer *b,
                      nng_socket *s)
{
    msgpack_sbuffer m;
    msgpack_sbuffer_init(&m);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &m, msgpack_sbuffer_write);
    cr_assert_eq(cs_msg_begin(&pk, type, req), CS_OK);
    msgpack_sbuffer_write(&m, b->data, b->size);
    cr_assert_eq(nng_req0_open(s), 0);
    cr_assert_eq(nng_dial(*s, url, NULL, 0), 0);
    cr_assert_eq(nng_send(*s, m.data, m.size, 0), 0);
    msgpack_sbuffer_destroy(&m);
}

static void register_body(ts_body *x, const char *name)
{
    msgpack_packer *pk = ts_body_new(x);
    msgpack_pack_map(pk, 2);
    cs_pack_kv_str(pk, "name", name);
    cs_res cap = {4000, 4096, 10000};
    cs_pack_kv_res(pk, "capacity", &cap);
}

/* A register left in flight in the writer, which blocks on the held lock:
 * returns once the writer has taken it. */
static void write_in_flight(ts_daemon *d, const char *name, nng_socket *s)
{
    uint64_t before = writes_taken(d);
    ts_body x;
    register_body(&x, name);
    send_only(d->url, CS_MSG_MACHINE_REGISTER, 1, &x.b, s);
    msgpack_sbuffer_destroy(&x.b);
    for (int i = 0; i < 500 && writes_taken(d) == before; i++)
        ts_sleep_ms(10);
    cr_assert_eq(writes_taken(d), before + 1, "the writer took the register");
}

static cs_msg heartbeat(ts_daemon *d, const msgpack_sbuffer *b, int want)
{
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(cs_client_callb(d->c, CS_MSG_HEARTBEAT, b, &r, &err), want, "%s", err.msg);
    return r;
}

static void expect_heartbeat(ts_daemon *d, cs_id m, const char *state, uint64_t version)
{
    ts_body x;
    msgpack_packer *pk = ts_body_new(&x);
    msgpack_pack_map(pk, 1);
    cs_pack_kv_u64(pk, "machine", m);
    cs_msg r = heartbeat(d, &x.b, CS_OK);
    msgpack_sbuffer_destroy(&x.b);
    cr_assert_eq(ts_reply_u64(&r.body, "machine"), m);
    expect_str(&r.body, "state", state);
    if (version != 0)
        cr_assert_eq(ts_reply_u64(&r.body, "version"), version);
}

/* Heartbeats never wait for the writer: one is answered, from memory, while
 * a write is stuck in the writer, with the version before that write. */
Test(cellstated, heartbeat_is_answered_while_the_writer_is_held, .timeout = 60)
{
    ts_daemon d;
    ts_daemon_setup(&d, NULL, NULL);
    cs_id m = do_register(&d, "m1", 4000);
    cs_id j = do_submit(&d, "batch", 2);
    uint64_t v = do_claim(&d, m, j, 0, 2, 1);

    held_store h;
    hold_writer(&d, &h);
    nng_socket s;
    write_in_flight(&d, "m2", &s);
    /* The write has not happened: the heartbeat says the version before it. */
    expect_heartbeat(&d, m, "up", v);
    release_writer(&h);
    nng_msg *reply;
    cr_assert_eq(nng_recvmsg(s, &reply, 0), 0, "the held write completes");
    nng_msg_free(reply);
    nng_close(s);

    /* By name (through the store) and for an id the cell does not know. */
    ts_body x;
    msgpack_packer *pk = ts_body_new(&x);
    msgpack_pack_map(pk, 1);
    cs_pack_kv_str(pk, "machine", "m1");
    cs_msg r = heartbeat(&d, &x.b, CS_OK);
    cr_assert_eq(ts_reply_u64(&r.body, "machine"), m);
    msgpack_sbuffer_destroy(&x.b);
    pk = ts_body_new(&x);
    msgpack_pack_map(pk, 1);
    cs_pack_kv_u64(pk, "machine", 999);
    heartbeat(&d, &x.b, CS_ENOTFOUND);
    msgpack_sbuffer_destroy(&x.b);
    ts_daemon_teardown(&d);
}

/* The writer takes the schedulers' writes before the agents' reports that
 * were queued earlier: a commit sent after three reports, all waiting
 * behind a held write, is applied first (a lower version than theirs). */
Test(cellstated, commits_go_before_queued_reports, .timeout = 60)
{
    ts_daemon d;
    ts_daemon_setup(&d, NULL, NULL);
    cs_id m = do_register(&d, "m1", 4000);
    cs_id j = do_submit(&d, "batch", 4);
    do_claim(&d, m, j, 0, 3, 1);

    held_store h;
    hold_writer(&d, &h);
    nng_socket held, reports[3], commit;
    write_in_flight(&d, "m2", &held);
    for (uint32_t i = 0; i < 3; i++) {
        ts_body x;
        msgpack_packer *pk = ts_body_new(&x);
        msgpack_pack_map(pk, 3);
        cs_pack_kv_u64(pk, "task", cs_task_id(j, i));
        cs_pack_kv_u64(pk, "attempt", 1);
        cs_pack_kv_str(pk, "state", "running");
        send_only(d.url, CS_MSG_TASK_STATUS, 1, &x.b, &reports[i]);
        msgpack_sbuffer_destroy(&x.b);
    }
    wait_queued(&d, 3);
    cs_txn t;
    cs_txn_init(&t, 77, 2, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    cs_res res = {500, 256, 0};
    cs_txn_add_claim(&t, cs_task_id(j, 3), m, &res, NULL, 0, 0);
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    cs_txn_encode(&t, &b);
    send_only(d.url, CS_MSG_COMMIT, 1, &b, &commit);
    msgpack_sbuffer_destroy(&b);
    cs_txn_free(&t);
    wait_queued(&d, 4);
    release_writer(&h);

    nng_msg *reply;
    cr_assert_eq(nng_recvmsg(held, &reply, 0), 0);
    nng_msg_free(reply);
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(nng_recvmsg(commit, &reply, 0), 0);
    cr_assert_eq(cs_msg_decode(nng_msg_body(reply), nng_msg_len(reply), &zone, &r, &err), CS_OK,
                 "%s", err.msg);
    cr_assert_eq(ts_reply_u64(&r.body, "committed"), 1);
    uint64_t vc = ts_reply_u64(&r.body, "version");
    nng_msg_free(reply);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(nng_recvmsg(reports[i], &reply, 0), 0);
        cr_assert_eq(cs_msg_decode(nng_msg_body(reply), nng_msg_len(reply), &zone, &r, &err),
                     CS_OK, "%s", err.msg);
        uint64_t vr = ts_reply_u64(&r.body, "version");
        cr_assert_gt(vr, vc, "report %d (version %llu) was applied after the commit (%llu)", i,
                     (unsigned long long)vr, (unsigned long long)vc);
        nng_msg_free(reply);
        nng_close(reports[i]);
    }
    msgpack_zone_destroy(&zone);
    nng_close(held);
    nng_close(commit);
    cr_assert_eq(server_counter(&d, "queued"), 0);
    ts_daemon_teardown(&d);
}

Test(cellstated, heartbeat_state_follows_down_and_register_again, .timeout = 60)
{
    ts_daemon d;
    ts_daemon_setup(&d, "--heartbeat-timeout", "200");
    cs_id m = do_register(&d, "m1", 4000);
    /* Silent (asking get.machines, not heartbeating): marked down by the
     * monitor, and then the heartbeat says so. */
    bool down = false;
    for (int i = 0; i < 500 && !down; i++) {
        ts_sleep_ms(20);
        cs_msg r;
        cs_error err = {0};
        cr_assert_eq(cs_client_call(d.c, CS_MSG_GET_MACHINES, "\x80", 1, &r, &err), CS_OK,
                     "%s", err.msg);
        const msgpack_object *ms = cs_obj_get(&r.body, "machines");
        cr_assert(ms && ms->via.array.size == 1);
        const msgpack_object *st = cs_obj_get(&ms->via.array.ptr[0], "state");
        down = st && st->via.str.size == 4 && memcmp(st->via.str.ptr, "down", 4) == 0;
    }
    cr_assert(down, "a silent machine is marked down");
    expect_heartbeat(&d, m, "down", 0);
    /* The reply to a register is sent after the machine table has the
     * new state: the very next heartbeat says up. */
    cr_assert_eq(do_register(&d, "m1", 4000), m);
    expect_heartbeat(&d, m, "up", 0);
    ts_daemon_teardown(&d);
}

/* SIGTERM with polls parked, a write stuck in the writer and requests
 * queued behind it: the daemon exits with status 0 (under the sanitizers,
 * a leak would make it non-zero). */
Test(cellstated, stop_with_parked_polls_and_writes_in_flight_exits_cleanly, .timeout = 60)
{
    ts_daemon d;
    ts_daemon_setup(&d, NULL, NULL);
    enum { NM = 6 };
    cs_id m[NM];
    nng_socket polls[NM], writes[3];
    for (int i = 0; i < NM; i++) {
        char name[16];
        snprintf(name, sizeof name, "m%d", i);
        m[i] = do_register(&d, name, 4000);
    }
    uint64_t v;
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(cs_client_call(d.c, CS_MSG_STATS, "\x80", 1, &r, &err), CS_OK, "%s", err.msg);
    v = ts_reply_u64(&r.body, "version");
    for (int i = 0; i < NM; i++) {
        ts_body x;
        msgpack_packer *pk = ts_body_new(&x);
        msgpack_pack_map(pk, 3);
        cs_pack_kv_u64(pk, "machine", m[i]);
        cs_pack_kv_u64(pk, "since", v);
        cs_pack_kv_u64(pk, "wait_ms", 30000);
        send_only(d.url, CS_MSG_POLL, 1, &x.b, &polls[i]);
        msgpack_sbuffer_destroy(&x.b);
    }
    wait_parked(&d, NM);
    held_store h;
    hold_writer(&d, &h);
    write_in_flight(&d, "w0", &writes[0]);
    for (int i = 1; i < 3; i++) {
        ts_body x;
        register_body(&x, i == 1 ? "w1" : "w2");
        send_only(d.url, CS_MSG_MACHINE_REGISTER, 1, &x.b, &writes[i]);
        msgpack_sbuffer_destroy(&x.b);
    }
    cr_assert_eq(kill(d.pid, SIGTERM), 0);
    /* The writer finishes the write in progress before the daemon goes. */
    release_writer(&h);
    cr_assert_eq(ts_daemon_stop(&d), 0, "cellstated exits cleanly");
    for (int i = 0; i < NM; i++)
        nng_close(polls[i]);
    for (int i = 0; i < 3; i++)
        nng_close(writes[i]);
    ts_daemon_teardown(&d);
}

/* A poll reply packs each job once and copies it into every entry of that
 * job: each entry's job must be, byte for byte, what get.jobs says of it,
 * with more jobs on the machine than the reply's table of packed jobs. */
Test(cellstated, poll_reply_jobs_are_the_jobs_records, .timeout = 60)
{
    ts_daemon d;
    ts_daemon_setup(&d, NULL, NULL);
    cs_id m = do_register(&d, "m1", 64000);
    enum { NJ = 10 };
    cs_id j[NJ];
    for (int i = 0; i < NJ; i++) {
        char name[16];
        snprintf(name, sizeof name, "job%d", i);
        j[i] = do_submit(&d, name, 3);
    }
    /* One task of every job, a second of half of them (the machine's
     * memory: 4096 MiB, 256 a task). */
    for (uint32_t k = 0; k < 2; k++)
        for (int i = 0; i < NJ; i++)
            if (k == 0 || i % 2 == 0)
                do_claim(&d, m, j[i], k, 1, 100 + k * NJ + (uint64_t)i);

    cs_msg jobs;
    cs_error err = {0};
    cr_assert_eq(cs_client_call(d.c, CS_MSG_GET_JOBS, "\x80", 1, &jobs, &err), CS_OK, "%s",
                 err.msg);
    const msgpack_object *jl = cs_obj_get(&jobs.body, "jobs");
    cr_assert(jl && jl->via.array.size == NJ);
    /* The reply to get.jobs lives in the client's buffers until its next
     * call: keep each job's bytes. */
    msgpack_sbuffer want[NJ];
    cs_id want_id[NJ];
    for (uint32_t i = 0; i < NJ; i++) {
        msgpack_sbuffer_init(&want[i]);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &want[i], msgpack_sbuffer_write);
        msgpack_pack_object(&pk, jl->via.array.ptr[i]);
        uint64_t id = 0;
        cr_assert_eq(cs_obj_u64(&jl->via.array.ptr[i], "id", true, UINT64_MAX, &id, &err), CS_OK);
        want_id[i] = id;
    }
    ts_body x;
    msgpack_packer *pk = ts_body_new(&x);
    msgpack_pack_map(pk, 1);
    cs_pack_kv_u64(pk, "machine", m);
    cs_msg r;
    cr_assert_eq(cs_client_callb(d.c, CS_MSG_POLL, &x.b, &r, &err), CS_OK, "%s", err.msg);
    msgpack_sbuffer_destroy(&x.b);
    const msgpack_object *tasks = cs_obj_get(&r.body, "tasks");
    cr_assert_eq(tasks->via.array.size, NJ + NJ / 2);
    for (uint32_t i = 0; i < tasks->via.array.size; i++) {
        const msgpack_object *e = &tasks->via.array.ptr[i];
        uint64_t job = 0;
        cr_assert_eq(cs_obj_u64(cs_obj_get(e, "task"), "job", true, UINT64_MAX, &job, &err),
                     CS_OK, "%s", err.msg);
        msgpack_sbuffer got;
        msgpack_sbuffer_init(&got);
        msgpack_packer gp;
        msgpack_packer_init(&gp, &got, msgpack_sbuffer_write);
        msgpack_pack_object(&gp, *cs_obj_get(e, "job"));
        int k = -1;
        for (int n = 0; n < NJ; n++)
            if (want_id[n] == job)
                k = n;
        cr_assert_geq(k, 0, "entry %u: job %llu is a job of the cell", i,
                      (unsigned long long)job);
        cr_assert(got.size == want[k].size && memcmp(got.data, want[k].data, got.size) == 0,
                  "entry %u: job %llu as get.jobs packs it", i, (unsigned long long)job);
        msgpack_sbuffer_destroy(&got);
    }
    for (int i = 0; i < NJ; i++)
        msgpack_sbuffer_destroy(&want[i]);
    ts_daemon_teardown(&d);
}

/* ---- short poll entries ("known": "short", protocol.md §5.9) ----------------- */

/* A poll of machine m at once in the compact form, with "known": `known`
 * (NULL: absent) and `since`; the reply stays valid until c's next call. */
static int poll_known(cs_client *c, cs_id m, uint64_t since, const char *jobs, const char *known,
                      cs_msg *r, cs_error *err)
{
    ts_body x;
    msgpack_packer *pk = ts_body_new(&x);
    msgpack_pack_map(pk, 2 + (jobs != NULL) + (known != NULL));
    cs_pack_kv_u64(pk, "machine", m);
    cs_pack_kv_u64(pk, "since", since);
    if (jobs)
        cs_pack_kv_str(pk, "jobs", jobs);
    if (known)
        cs_pack_kv_str(pk, "known", known);
    int rc = cs_client_callb(c, CS_MSG_POLL, &x.b, r, err);
    msgpack_sbuffer_destroy(&x.b);
    return rc;
}

/* The entries of a compact reply: for each, whether it is short, and its
 * task id; the job ids in "jobs". Checks each entry's shape. */
static uint32_t entries_of(const cs_msg *r, cs_id *id, bool *shrt, uint32_t max, cs_id *jobs,
                           uint32_t *njobs)
{
    const msgpack_object *t = cs_obj_get(&r->body, "tasks"), *j = cs_obj_get(&r->body, "jobs");
    cr_assert(t && t->type == MSGPACK_OBJECT_ARRAY && j && j->type == MSGPACK_OBJECT_ARRAY);
    cr_assert_leq(t->via.array.size, max);
    cs_error err = {0};
    for (uint32_t i = 0; i < t->via.array.size; i++) {
        const msgpack_object *e = &t->via.array.ptr[i];
        shrt[i] = e->type == MSGPACK_OBJECT_ARRAY;
        if (shrt[i]) {
            cr_assert_eq(e->via.array.size, 2, "a short entry is [id, attempts]");
            cr_assert_eq(e->via.array.ptr[1].via.u64, 1, "attempt 1");
            id[i] = e->via.array.ptr[0].via.u64;
        } else {
            cr_assert_eq(cs_obj_u64(cs_obj_get(e, "task"), "id", true, UINT64_MAX, &id[i], &err),
                         CS_OK, "%s", err.msg);
        }
    }
    *njobs = j->via.array.size;
    for (uint32_t i = 0; i < *njobs && i < max; i++)
        cr_assert_eq(cs_obj_u64(&j->via.array.ptr[i], "id", true, UINT64_MAX, &jobs[i], &err),
                     CS_OK, "%s", err.msg);
    return t->via.array.size;
}

/* With "known": "short" and since = a reply's version, the tasks unchanged
 * since come short and carry no job; a task placed or reported after it
 * comes in full with its job; since 0 (or no "known") gives all in full. */
Test(cellstated, short_poll_entries_for_tasks_unchanged_since, .timeout = 60)
{
    ts_daemon d;
    ts_daemon_setup(&d, NULL, NULL);
    cs_id m = do_register(&d, "m1", 8000);
    cs_id web = do_submit(&d, "web", 3), db = do_submit(&d, "db", 1);
    do_claim(&d, m, web, 0, 2, 1);
    cs_msg r;
    cs_error err = {0};
    cs_id id[8], jobs[8];
    bool shrt[8];
    uint32_t nj;
    cr_assert_eq(poll_known(d.c, m, 0, "once", "short", &r, &err), CS_OK, "%s", err.msg);
    uint64_t v1 = ts_reply_u64(&r.body, "version");
    cr_assert_eq(entries_of(&r, id, shrt, 8, jobs, &nj), 2);
    cr_assert(!shrt[0] && !shrt[1] && nj == 1 && jobs[0] == web, "since 0: all in full");

    /* Nothing changed since v1: all short, no job. */
    cr_assert_eq(poll_known(d.c, m, v1, "once", "short", &r, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(entries_of(&r, id, shrt, 8, jobs, &nj), 2);
    cr_assert(shrt[0] && shrt[1] && nj == 0, "unchanged: short, no jobs");
    cr_assert(id[0] == cs_task_id(web, 0) && id[1] == cs_task_id(web, 1));

    /* web/2 and db/0 placed, web/0 reported running: those three in full
     * with their jobs, web/1 short. */
    do_claim(&d, m, web, 2, 1, 2);
    do_claim(&d, m, db, 0, 1, 3);
    ts_body x;
    pack_status(ts_body_new(&x), cs_task_id(web, 0), "running", NULL);
    call_ok(&d, CS_MSG_TASK_STATUS, &x, &r);
    msgpack_sbuffer_destroy(&x.b);
    cr_assert_eq(poll_known(d.c, m, v1, "once", "short", &r, &err), CS_OK, "%s", err.msg);
    uint64_t v2 = ts_reply_u64(&r.body, "version");
    cr_assert_gt(v2, v1);
    uint32_t n = entries_of(&r, id, shrt, 8, jobs, &nj);
    cr_assert_eq(n, 4, "every placed task is listed");
    uint32_t nshort = 0;
    for (uint32_t i = 0; i < n; i++) {
        cr_assert_eq(shrt[i], id[i] == cs_task_id(web, 1), "task %llu: short iff unchanged",
                     (unsigned long long)id[i]);
        nshort += shrt[i];
    }
    cr_assert_eq(nshort, 1);
    cr_assert(nj == 2 && job_with_id(cs_obj_get(&r.body, "jobs"), web) &&
                  job_with_id(cs_obj_get(&r.body, "jobs"), db),
              "the jobs of the full entries, once each");

    /* since 0, or "known": "full", or no "known": all in full. */
    const char *full[] = {"short", "full", NULL};
    for (int k = 0; k < 3; k++) {
        uint64_t since = k == 0 ? 0 : v1;
        cr_assert_eq(poll_known(d.c, m, since, "once", full[k], &r, &err), CS_OK, "%s", err.msg);
        n = entries_of(&r, id, shrt, 8, jobs, &nj);
        cr_assert_eq(n, 4);
        for (uint32_t i = 0; i < n; i++)
            cr_assert(!shrt[i], "case %d: entry %u in full", k, i);
    }

    /* "short" needs the compact form; other values are refused. */
    cr_assert_eq(poll_known(d.c, m, v2, NULL, "short", &r, &err), CS_EPROTO);
    cr_assert(strstr(err.msg, "'known'") && strstr(err.msg, "once"), "%s", err.msg);
    cr_assert_eq(poll_known(d.c, m, v2, "once", "brief", &r, &err), CS_EPROTO);
    cr_assert(strstr(err.msg, "'known'") != NULL, "the error names the field: %s", err.msg);
    ts_daemon_teardown(&d);
}
