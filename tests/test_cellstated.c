/* test_cellstated.c — integration: a real cellstated process on 127.0.0.1,
 * a free port and a temporary data directory, driven through the client. */
#include <criterion/criterion.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "cellstate/client.h"
#include "tests/support.h"


/* ---- building request bodies ----------------------------------------------------- */

typedef struct body {
    msgpack_sbuffer b;
    msgpack_packer pk;
} body;

static msgpack_packer *body_new(body *x)
{
    msgpack_sbuffer_init(&x->b);
    msgpack_packer_init(&x->pk, &x->b, msgpack_sbuffer_write);
    return &x->pk;
}

static uint64_t reply_u64(const cs_msg *r, const char *key)
{
    uint64_t v = 0;
    cs_error err = {0};
    cr_assert_eq(cs_obj_u64(&r->body, key, true, UINT64_MAX, &v, &err), CS_OK, "%s", err.msg);
    return v;
}

static cs_id do_register(ts_daemon *d, const char *name, int64_t cpu)
{
    body x;
    msgpack_packer *pk = body_new(&x);
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
    return reply_u64(&r, "id");
}

static cs_id do_submit(ts_daemon *d, const char *name, uint32_t count)
{
    body x;
    msgpack_packer *pk = body_new(&x);
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
    return reply_u64(&r, "id");
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
    cr_assert_eq(reply_u64(&r, "committed"), n);
    msgpack_sbuffer_destroy(&b);
    cs_txn_free(&t);
    return reply_u64(&r, "version");
}

static uint32_t poll_count(cs_client *c, cs_id m, uint64_t since, uint32_t wait_ms, uint64_t *version)
{
    body x;
    msgpack_packer *pk = body_new(&x);
    msgpack_pack_map(pk, 3);
    cs_pack_kv_u64(pk, "machine", m);
    cs_pack_kv_u64(pk, "since", since);
    cs_pack_kv_u64(pk, "wait_ms", wait_ms);
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(cs_client_callb(c, CS_MSG_POLL, &x.b, &r, &err), CS_OK, "%s", err.msg);
    msgpack_sbuffer_destroy(&x.b);
    if (version)
        *version = reply_u64(&r, "version");
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

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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
    body x;
    msgpack_packer *pk = body_new(&x);
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
    int64_t t0 = mono_ms();
    p->n = poll_count(c, p->m, p->since, p->wait_ms ? p->wait_ms : 8000, NULL);
    p->took = mono_ms() - t0;
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
    int64_t t0 = mono_ms();
    cr_assert_eq(poll_count(d.c, m, v, 400, NULL), 1);
    cr_assert_geq(mono_ms() - t0, 350, "a poll with nothing new waits");

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
        body x;
        msgpack_packer *pk = body_new(&x);
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

    /* Still serving, and nothing was written. */
    uint64_t v1;
    poll_count(d.c, m, 0, 0, &v1);
    cr_assert_eq(v1, v0, "bad input wrote to the store");
    cr_assert_eq(cs_client_call(d.c, CS_MSG_STATS, "\x80", 1, &r, &err), CS_OK, "%s", err.msg);
    ts_daemon_teardown(&d);
}
