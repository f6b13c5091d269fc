/* test_authz.c — integration: who may do what (issue 17 §2, docs/security.md
 * "Roles"). Each attack the issue lists — tried against an earlier
 * cellstated, which took every one from an anonymous client — is tried
 * here against a real cellstated whose roles come from a token file
 * (--auth-tokens), and must be refused with "permission denied" naming
 * the principal and the action, while the same request from the rightful
 * principal is taken — and again over mutual TLS, where the principal is
 * the client certificate's CN (suite authz_tls). */
#include <criterion/criterion.h>
#include <signal.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/client.h"
#include "proto/agentmsg.h"
#include "proto/jobmsg.h"
#include "proto/principal.h"
#include "proto/readmsg.h"
#include "proto/schedreport.h"
#include "proto/tls.h"
#include "tests/support.h"

/* Criterion's runner (the parent of the forked tests) loses a 48-byte
 * record of its own when suites of different timeouts run side by side,
 * and LeakSanitizer then fails the whole binary; the stack lies wholly in
 * libcriterion. Suppress those, and only those, as test_agent does. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libcriterion.so\n"; }

/* The cell's principals, each with its token (the file's order). */
enum { OPER, READER, AGENT1, AGENT2, BATCH, SERVICE, ANYSCHED, SERVER, NPRINCIPALS };
static const char *const principals[NPRINCIPALS] = {
    "operator",
    "reader",
    "agent:m1",
    "agent:m2",
    "scheduler.batch:batch-1",
    "scheduler.service:service-1",
    "scheduler:mono-1",
    "server",
};

typedef struct authz_cell {
    ts_daemon d;
    cs_client *c[NPRINCIPALS]; /* each principal's client, with its token */
    cs_client *anon;           /* no token */
    char tokens[300];
} authz_cell;

static authz_cell K;

static void token_of(int i, char *out, size_t n)
{
    snprintf(out, n, "tok-%d-0123456789abcdef", i);
}

static void cell_setup(void)
{
    ts_tmp_setup();
    snprintf(K.tokens, sizeof K.tokens, "%s/tokens", ts_tmp);
    FILE *f = fopen(K.tokens, "w");
    cr_assert_not_null(f);
    fprintf(f, "# the cell's tokens\n\n");
    for (int i = 0; i < NPRINCIPALS; i++) {
        char t[64];
        token_of(i, t, sizeof t);
        fprintf(f, "%s %s\n", t, principals[i]);
    }
    fclose(f);
    ts_daemon_setup(&K.d, "--auth-tokens", K.tokens);
    cs_error err = {0};
    for (int i = 0; i < NPRINCIPALS; i++) {
        char t[64];
        token_of(i, t, sizeof t);
        cr_assert_eq(cs_client_open(K.d.url, 5000, &K.c[i], &err), CS_OK, "%s", err.msg);
        cr_assert_eq(cs_client_set_token(K.c[i], t, &err), CS_OK, "%s", err.msg);
    }
    K.anon = K.d.c;
}

static void cell_teardown(void)
{
    for (int i = 0; i < NPRINCIPALS; i++)
        cs_client_close(K.c[i]);
    ts_daemon_teardown(&K.d);
    ts_tmp_teardown();
}

TestSuite(authz, .init = cell_setup, .fini = cell_teardown, .timeout = 60);

/* The same cell over mutual TLS: each principal's client presents the
 * certificate tools/cellsched-certs.sh made for it (CN = the principal),
 * and no token. Nobody without a certificate gets past the handshake
 * (test_tls), so there is no anonymous client here. */
static void tls_setup(void)
{
    ts_tmp_setup();
    char cmd[1024], out[4096];
    int off = snprintf(cmd, sizeof cmd, "tools/cellsched-certs.sh '%s/certs'", ts_tmp);
    for (int i = 0; i < NPRINCIPALS; i++)
        off += snprintf(cmd + off, sizeof cmd - (size_t)off, " %s", principals[i]);
    int st = ts_run(cmd, out, sizeof out);
    cr_assert_eq(st, 0, "%s: %s", cmd, out);
    ts_daemon *d = &K.d;
    snprintf(d->dir, sizeof d->dir, "%s", ts_tmp);
    snprintf(d->log, sizeof d->log, "%s/cellstated.log", ts_tmp);
    snprintf(d->url, sizeof d->url, "tls+tcp://127.0.0.1:%d", ts_free_port());
    char data[400], cert[400], key[400], ca[400];
    snprintf(data, sizeof data, "%s/data", ts_tmp);
    snprintf(cert, sizeof cert, "%s/certs/server.pem", ts_tmp);
    snprintf(key, sizeof key, "%s/certs/server.key", ts_tmp);
    snprintf(ca, sizeof ca, "%s/certs/ca.pem", ts_tmp);
    ts_bin("cellstated", d->bin, sizeof d->bin);
    char *argv[] = {d->bin,       (char *)"--listen",   d->url,          (char *)"--data",
                    data,         (char *)"--nosync",   (char *)"--heartbeat-timeout",
                    (char *)"3600000", (char *)"--tls-cert", cert, (char *)"--tls-key", key,
                    (char *)"--tls-ca", ca, NULL};
    d->pid = ts_spawn(argv, d->log);
    cs_error err = {0};
    for (int i = 0; i < NPRINCIPALS; i++) {
        char base[CS_PRINCIPAL_MAX + 1], pem[600], pkey[600];
        snprintf(base, sizeof base, "%s", principals[i]);
        char *colon = strchr(base, ':');
        if (colon != NULL)
            *colon = '-';
        snprintf(pem, sizeof pem, "%s/certs/%s.pem", ts_tmp, base);
        snprintf(pkey, sizeof pkey, "%s/certs/%s.key", ts_tmp, base);
        cs_tls_files f = {.cert = pem, .key = pkey, .ca = ca};
        cs_tls *t = NULL;
        cr_assert_eq(cs_tls_load(&f, &t, &err), CS_OK, "%s", err.msg);
        cr_assert_eq(cs_client_open_tls(d->url, t, 5000, &K.c[i], &err), CS_OK, "%s", err.msg);
        cs_tls_free(t);
    }
    K.anon = NULL;
    cs_msg r;
    int rc = CS_EIO;
    for (int i = 0; i < 100 && rc != CS_OK; i++)
        if ((rc = cs_client_call(K.c[OPER], CS_MSG_STATS, "\x80", 1, &r, &err)) != CS_OK)
            ts_sleep_ms(100);
    if (rc != CS_OK) {
        /* A failed .init runs no .fini: stop the server here. */
        ts_log_file("cellstated", d->log);
        ts_stop(d->pid, SIGKILL, 5000);
        d->pid = 0;
    }
    cr_assert_eq(rc, CS_OK, "the operator was not served: %s", err.msg);
}

static void tls_teardown(void)
{
    for (int i = 0; i < NPRINCIPALS; i++)
        cs_client_close(K.c[i]);
    if (K.d.pid > 0)
        ts_stop(K.d.pid, SIGTERM, 5000);
    ts_kill_descendants();
    ts_tmp_teardown();
}

TestSuite(authz_tls, .init = tls_setup, .fini = tls_teardown, .timeout = 90);

/* ---- requests ------------------------------------------------------------- */

static int call(cs_client *c, uint32_t type, ts_body *x, cs_msg *r, cs_error *err)
{
    int rc = cs_client_callb(c, type, &x->b, r, err);
    ts_body_free(x);
    return rc;
}

/* A refusal: CS_EPERM naming the principal and the action. */
static void expect_denied(int rc, const cs_error *err, const char *who, uint32_t type)
{
    cr_assert_eq(rc, CS_EPERM, "%s %s: expected permission denied, got %d: %s", who,
                 cs_msg_name(type), rc, err->msg);
    char want[200];
    snprintf(want, sizeof want, "permission denied: %s may not %s", who, cs_msg_name(type));
    cr_assert_not_null(strstr(err->msg, want), "'%s' lacks '%s'", err->msg, want);
}

static int do_register(cs_client *c, const char *name, const char *state, cs_msg *r,
                       cs_error *err)
{
    ts_body x;
    msgpack_packer *pk = ts_body_new(&x);
    ts_pack_machine(pk, name, state ? 1 : 0);
    if (state)
        cs_pack_kv_str(pk, "state", state);
    return call(c, CS_MSG_MACHINE_REGISTER, &x, r, err);
}

static cs_id registered(cs_client *c, const char *name)
{
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(do_register(c, name, NULL, &r, &err), CS_OK, "%s", err.msg);
    return ts_reply_u64(&r.body, "id");
}

static int commit(cs_client *c, uint64_t sched, cs_id task, cs_id machine, bool release,
                  cs_msg *r, cs_error *err)
{
    static uint64_t req = 1;
    cs_txn t;
    cs_txn_init(&t, sched, req++, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    cs_res res = {100, 64, 0};
    if (release)
        cs_txn_add_release(&t, task, CS_TASK_FINISHED, 0);
    else
        cs_txn_add_claim(&t, task, machine, &res, NULL, 0, 0);
    ts_body x;
    ts_body_new(&x);
    cs_txn_encode(&t, &x.b);
    cs_txn_free(&t);
    return call(c, CS_MSG_COMMIT, &x, r, err);
}

static int report(cs_client *c, cs_id task, uint32_t attempt, uint8_t state, bool batch,
                  cs_msg *r, cs_error *err)
{
    cs_task_report rep = {.task = task, .attempt = attempt, .state = state, .reason = ""};
    cs_task_status_req q = {.batch = batch, .reports = &rep, .n = 1};
    ts_body x;
    cs_task_status_req_encode(ts_body_new(&x), &q);
    return call(c, CS_MSG_TASK_STATUS, &x, r, err);
}

static int job_ref(cs_client *c, uint32_t type, cs_id job, cs_msg *r, cs_error *err)
{
    cs_job_ref_req q = {cs_ref_id(job)};
    ts_body x;
    cs_job_ref_req_encode(ts_body_new(&x), &q);
    return call(c, type, &x, r, err);
}

/* The task's record, as the operator reads it. */
static cs_task task_now(cs_id id)
{
    ts_cell cell;
    ts_cell_read(K.c[OPER], &cell);
    for (size_t i = 0; i < cell.ntasks; i++)
        if (cell.tasks[i].id == id) {
            cs_task t = cell.tasks[i];
            t.reason = NULL;
            t.ports = NULL;
            ts_cell_free(&cell);
            return t;
        }
    ts_cell_free(&cell);
    cr_assert_fail("task %llu is not in the cell", (unsigned long long)id);
    return (cs_task){0};
}

static uint8_t machine_state(const char *name)
{
    ts_cell cell;
    ts_cell_read(K.c[OPER], &cell);
    for (size_t i = 0; i < cell.nmachines; i++)
        if (strcmp(cell.machines[i].name, name) == 0) {
            uint8_t st = cell.machines[i].state;
            ts_cell_free(&cell);
            return st;
        }
    ts_cell_free(&cell);
    cr_assert_fail("machine %s is not in the cell", name);
    return 0;
}

/* A job of `kind` (its one task placed on m1 by the scheduler of its
 * kind, when `place`): the task's id. */
static cs_id placed_job(const char *name, const char *kind, cs_id m1, bool place)
{
    char spec[300];
    snprintf(spec, sizeof spec,
             "{\"name\": \"%s\", \"kind\": \"%s\", \"count\": 1, \"cmd\": \"sleep 100\", "
             "\"resources\": {\"cpu\": 0.1, \"mem\": 64}, \"env\": {\"DB_PASSWORD\": "
             "\"hunter2\"}}",
             name, kind);
    cs_id job = ts_submit(K.c[OPER], spec);
    cs_id task = cs_task_id(job, 0);
    if (place) {
        int who = strcmp(kind, "batch") == 0 ? BATCH : SERVICE;
        const char *sname = who == BATCH ? "batch-1" : "service-1";
        cs_msg r;
        cs_error err = {0};
        cr_assert_eq(commit(K.c[who], cs_sched_id_of(sname), task, m1, false, &r, &err), CS_OK,
                     "%s", err.msg);
        if (ts_reply_u64(&r.body, "committed") != 1) {
            msgpack_object_print(stderr, r.body);
            cr_assert_fail("the claim of task %llu on machine %llu was not committed",
                           (unsigned long long)task, (unsigned long long)m1);
        }
    }
    return task;
}

/* ---- a cell without roles ------------------------------------------------- */

/* No certificates and no tokens: a development cell, which takes every
 * request from anyone, as before roles (the regression this guards). */
Test(authz_open, a_cell_without_roles_takes_everything, .timeout = 60)
{
    ts_daemon d;
    ts_daemon_setup(&d, NULL, NULL);
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(do_register(d.c, "m1", NULL, &r, &err), CS_OK, "%s", err.msg);
    cs_id job = ts_submit(d.c, "{\"name\": \"j\", \"count\": 1, \"cmd\": \"true\"}");
    cr_assert_eq(job_ref(d.c, CS_MSG_JOB_KILL, job, &r, &err), CS_OK, "%s", err.msg);
    ts_daemon_teardown(&d);
}

/* ---- who the client is ---------------------------------------------------- */

Test(authz, anonymous_is_refused_even_a_read)
{
    cs_msg r;
    cs_error err = {0};
    expect_denied(cs_client_call(K.anon, CS_MSG_STATS, "\x80", 1, &r, &err), &err, "anonymous",
                  CS_MSG_STATS);
    ts_body x;
    msgpack_packer *pk = ts_body_new(&x);
    msgpack_pack_map(pk, 2);
    cs_pack_kv_str(pk, "name", "j");
    cs_pack_kv_str(pk, "cmd", "true");
    expect_denied(call(K.anon, CS_MSG_JOB_SUBMIT, &x, &r, &err), &err, "anonymous",
                  CS_MSG_JOB_SUBMIT);
    cr_assert_not_null(strstr(err.msg, "only operator, server may"), "%s", err.msg);
}

Test(authz, an_unknown_token_is_refused_not_demoted)
{
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(cs_client_set_token(K.anon, "not-a-token-of-this-cell", &err), CS_OK);
    int rc = cs_client_call(K.anon, CS_MSG_STATS, "\x80", 1, &r, &err);
    cr_assert_eq(rc, CS_EPERM, "%d %s", rc, err.msg);
    cr_assert_not_null(strstr(err.msg, "token is not one of this cell's"), "%s", err.msg);
    /* And the operator's own token reads. */
    cr_assert_eq(cs_client_call(K.c[OPER], CS_MSG_STATS, "\x80", 1, &r, &err), CS_OK, "%s",
                 err.msg);
}

/* Send stats on `s` with the credentials {"token": <who's token>, "as":
 * "operator"}, as a forwarding replica does, built by hand; the reply
 * is decoded into *out, which points into *m (the caller frees it). */
static void stats_as_operator(nng_socket s, int who, uint64_t req, msgpack_zone *z, nng_msg **m,
                              cs_msg *out)
{
    char t[64];
    token_of(who, t, sizeof t);
    ts_body x;
    msgpack_packer *pk = ts_body_new(&x);
    cr_assert_eq(cs_msg_begin_auth(pk, CS_MSG_STATS, req), CS_OK);
    msgpack_pack_map(pk, 0);
    msgpack_pack_map(pk, 2);
    cs_pack_kv_str(pk, "token", t);
    cs_pack_kv_str(pk, "as", "operator");
    cr_assert_eq(nng_send(s, x.b.data, x.b.size, 0), 0);
    ts_body_free(&x);
    cr_assert_eq(nng_recvmsg(s, m, 0), 0);
    cs_error err = {0};
    msgpack_zone_clear(z);
    cr_assert_eq(cs_msg_decode(nng_msg_body(*m), nng_msg_len(*m), z, out, &err), CS_OK, "%s",
                 err.msg);
}

/* Only a replica may say whom it acts for: {"as": "operator"} with an
 * agent's token is refused, with a server's token taken. */
Test(authz, only_a_replica_may_act_for_another)
{
    nng_socket s;
    cr_assert_eq(nng_req0_open(&s), 0);
    cr_assert_eq(nng_dial(s, K.d.url, NULL, 0), 0);
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 5000);
    msgpack_zone z;
    msgpack_zone_init(&z, 1024);
    nng_msg *m;
    cs_msg reply;
    stats_as_operator(s, AGENT1, 9, &z, &m, &reply);
    cr_assert_eq(reply.type, CS_MSG_ERROR);
    cs_error_reply e;
    cs_error err = {0};
    cr_assert_eq(cs_error_reply_decode(&reply.body, &e, NULL, &err), CS_OK);
    cr_assert_eq(e.code, CS_EPERM);
    cr_assert(memmem(e.message, e.message_len, "agent:m1 may not act for another", 32) != NULL,
              "%.*s", (int)e.message_len, e.message);
    nng_msg_free(m);
    stats_as_operator(s, SERVER, 10, &z, &m, &reply);
    cr_assert_eq(reply.type, CS_MSG_STATS);
    nng_msg_free(m);
    msgpack_zone_destroy(&z);
    nng_close(s);
}

/* ---- the attacks of issue 17 ---------------------------------------------- */

/* "machine.register with state: down for someone else's machine (its
 * tasks were lost and moved)". */
static void an_agent_cannot_register_another_machine(void)
{
    registered(K.c[AGENT1], "m1");
    registered(K.c[AGENT2], "m2");
    cs_msg r;
    cs_error err = {0};
    expect_denied(do_register(K.c[AGENT2], "m1", "down", &r, &err), &err, "agent:m2",
                  CS_MSG_MACHINE_REGISTER);
    cr_assert_not_null(strstr(err.msg, "machine m1 is not its own"), "%s", err.msg);
    if (K.anon != NULL)
        expect_denied(do_register(K.anon, "m1", "down", &r, &err), &err, "anonymous",
                      CS_MSG_MACHINE_REGISTER);
    /* Nor may the operator or a scheduler speak for a machine. */
    expect_denied(do_register(K.c[OPER], "m1", "down", &r, &err), &err, "operator",
                  CS_MSG_MACHINE_REGISTER);
    cr_assert_eq(machine_state("m1"), CS_MACHINE_UP);
    /* Its own agent may. */
    cr_assert_eq(do_register(K.c[AGENT1], "m1", "down", &r, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(machine_state("m1"), CS_MACHINE_DOWN);
}

/* "a task.status finished for a task running on another machine (its
 * agent then killed the real process)": refused in the single form, and
 * refused alone in the batch form. */
static void an_agent_cannot_report_another_machines_task(void)
{
    cs_id m1 = registered(K.c[AGENT1], "m1");
    registered(K.c[AGENT2], "m2");
    cs_id task = placed_job("web", "batch", m1, true);
    cs_task t = task_now(task);
    cr_assert_eq(t.machine, m1);
    cs_msg r;
    cs_error err = {0};
    expect_denied(report(K.c[AGENT2], task, t.attempts, CS_TASK_FINISHED, false, &r, &err), &err,
                  "agent:m2", CS_MSG_TASK_STATUS);
    cr_assert_not_null(strstr(err.msg, "is not on machine m2"), "%s", err.msg);
    cr_assert_eq(report(K.c[AGENT2], task, t.attempts, CS_TASK_FINISHED, true, &r, &err), CS_OK,
                 "%s", err.msg);
    cs_task_status_reply rep;
    cs_arena a;
    cs_arena_init(&a);
    cr_assert_eq(cs_task_status_reply_decode(&r.body, &rep, &a, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(rep.n, 1);
    cr_assert_eq(rep.results[0].code, CS_EPERM, "%d", rep.results[0].code);
    cs_arena_free(&a);
    /* The scheduler, the operator and anonymous may not report either. */
    expect_denied(report(K.c[BATCH], task, t.attempts, CS_TASK_FINISHED, false, &r, &err), &err,
                  "scheduler.batch:batch-1", CS_MSG_TASK_STATUS);
    if (K.anon != NULL)
        expect_denied(report(K.anon, task, t.attempts, CS_TASK_FINISHED, false, &r, &err), &err,
                      "anonymous", CS_MSG_TASK_STATUS);
    cr_assert_eq(task_now(task).state, t.state, "the task was not ended");
    /* A report on another attempt is stale, whoever sends it: the state
     * machine's verdict, as before roles (an agent that reports a task
     * moved off it while it kills it gets the answer it always got). */
    int rc = report(K.c[AGENT2], task, t.attempts + 1, CS_TASK_FINISHED, false, &r, &err);
    cr_assert_eq(rc, CS_ESTATE, "%d %s", rc, err.msg);
    cr_assert_eq(task_now(task).state, t.state, "the task was not ended");
    /* m1's agent may. */
    cr_assert_eq(report(K.c[AGENT1], task, t.attempts, CS_TASK_RUNNING, false, &r, &err), CS_OK,
                 "%s", err.msg);
    cr_assert_eq(task_now(task).state, CS_TASK_RUNNING);
}

/* "job.kill of any job": only the operator. */
static void only_the_operator_kills_a_job(void)
{
    cs_id job = cs_task_job(placed_job("web", "service", 0, false));
    cs_msg r;
    cs_error err = {0};
    const int others[] = {READER, AGENT1, BATCH, SERVICE, ANYSCHED};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
        expect_denied(job_ref(K.c[others[i]], CS_MSG_JOB_KILL, job, &r, &err), &err,
                      principals[others[i]], CS_MSG_JOB_KILL);
    if (K.anon != NULL)
        expect_denied(job_ref(K.anon, CS_MSG_JOB_KILL, job, &r, &err), &err, "anonymous",
                      CS_MSG_JOB_KILL);
    cr_assert_eq(job_ref(K.c[OPER], CS_MSG_JOB_KILL, job, &r, &err), CS_OK, "%s", err.msg);
}

/* "a commit from an invented scheduler id that released a running task":
 * a scheduler signs only with its own id, and a batch scheduler acts only
 * on batch jobs (a service task is not its to release or place). */
static void a_scheduler_commits_only_as_itself_and_for_its_kind(void)
{
    cs_id m1 = registered(K.c[AGENT1], "m1");
    cs_id svc = placed_job("db", "service", m1, true);
    cs_id bat = placed_job("etl", "batch", 0, false);
    cs_task before = task_now(svc);
    cs_msg r;
    cs_error err = {0};
    /* An invented id, releasing a running task. */
    expect_denied(commit(K.c[BATCH], 12345, svc, 0, true, &r, &err), &err,
                  "scheduler.batch:batch-1", CS_MSG_COMMIT);
    cr_assert_not_null(strstr(err.msg, "not its own"), "%s", err.msg);
    if (K.anon != NULL)
        expect_denied(commit(K.anon, cs_sched_id_of("service-1"), svc, 0, true, &r, &err), &err,
                      "anonymous", CS_MSG_COMMIT);
    /* Its own id, but a service job's task. */
    expect_denied(commit(K.c[BATCH], cs_sched_id_of("batch-1"), svc, 0, true, &r, &err), &err,
                  "scheduler.batch:batch-1", CS_MSG_COMMIT);
    cr_assert_not_null(strstr(err.msg, "is a service job"), "%s", err.msg);
    expect_denied(commit(K.c[SERVICE], cs_sched_id_of("service-1"), bat, m1, false, &r, &err),
                  &err, "scheduler.service:service-1", CS_MSG_COMMIT);
    cs_task now = task_now(svc);
    cr_assert_eq(now.machine, m1, "the service task stays placed");
    cr_assert_eq(now.state, before.state, "the service task was not released");
    /* A scheduler of every kind (a monolithic one) may place the batch
     * task; the batch scheduler may too. */
    cr_assert_eq(commit(K.c[ANYSCHED], cs_sched_id_of("mono-1"), bat, m1, false, &r, &err), CS_OK,
                 "%s", err.msg);
    cr_assert_eq(ts_reply_u64(&r.body, "committed"), 1);
    /* Notes and the end of a job follow the same kinds. */
    ts_body x;
    cs_job_note_req nq = {cs_ref_id(cs_task_job(svc)), "waiting"};
    cs_job_note_req_encode(ts_body_new(&x), &nq);
    expect_denied(call(K.c[BATCH], CS_MSG_JOB_NOTE, &x, &r, &err), &err,
                  "scheduler.batch:batch-1", CS_MSG_JOB_NOTE);
    expect_denied(job_ref(K.c[BATCH], CS_MSG_JOB_END, cs_task_job(svc), &r, &err), &err,
                  "scheduler.batch:batch-1", CS_MSG_JOB_END);
    cs_job_note_req_encode(ts_body_new(&x), &nq);
    cr_assert_eq(call(K.c[SERVICE], CS_MSG_JOB_NOTE, &x, &r, &err), CS_OK, "%s", err.msg);
}

/* A scheduler reports, and asks for an offer, only under its own name. */
static void a_scheduler_names_only_itself(void)
{
    cs_sched_report rep = {.name = "service-1", .kind = "service"};
    ts_body x;
    cr_assert_eq(cs_sched_report_pack(ts_body_new(&x), &rep), CS_OK);
    cs_msg r;
    cs_error err = {0};
    expect_denied(call(K.c[BATCH], CS_MSG_SCHED_REPORT, &x, &r, &err), &err,
                  "scheduler.batch:batch-1", CS_MSG_SCHED_REPORT);
    cr_assert_not_null(strstr(err.msg, "names the scheduler service-1"), "%s", err.msg);
    cr_assert_eq(cs_sched_report_pack(ts_body_new(&x), &rep), CS_OK);
    cr_assert_eq(call(K.c[SERVICE], CS_MSG_SCHED_REPORT, &x, &r, &err), CS_OK, "%s", err.msg);
}

/* "a rogue machine registered with a large capacity, which then received
 * a service's tasks together with their environment (a database
 * password)": nobody without an agent's credentials registers a machine,
 * an agent registers only its own, and a reader never sees a job's
 * environment. */
static void no_rogue_machine_and_no_environment_for_readers(void)
{
    cs_msg r;
    cs_error err = {0};
    if (K.anon != NULL)
        expect_denied(do_register(K.anon, "rogue", NULL, &r, &err), &err, "anonymous",
                      CS_MSG_MACHINE_REGISTER);
    expect_denied(do_register(K.c[AGENT1], "rogue", NULL, &r, &err), &err, "agent:m1",
                  CS_MSG_MACHINE_REGISTER);
    expect_denied(do_register(K.c[BATCH], "rogue", NULL, &r, &err), &err,
                  "scheduler.batch:batch-1", CS_MSG_MACHINE_REGISTER);
    cs_id m1 = registered(K.c[AGENT1], "m1");
    cs_id task = placed_job("db", "service", m1, true);
    cs_id job = cs_task_job(task);
    /* get.job, get.jobs and sync: the operator sees the password, the
     * reader its key only. */
    const uint32_t reads[] = {CS_MSG_GET_JOB, CS_MSG_GET_JOBS, CS_MSG_SYNC};
    for (size_t i = 0; i < 3; i++)
        for (int who = OPER; who <= READER; who++) {
            ts_body x;
            msgpack_packer *pk = ts_body_new(&x);
            if (reads[i] == CS_MSG_GET_JOB) {
                msgpack_pack_map(pk, 1);
                cs_pack_kv_u64(pk, "job", job);
            } else {
                msgpack_pack_map(pk, 0);
            }
            const void *body;
            size_t len;
            cr_assert_eq(cs_client_call_raw(K.c[who], reads[i], x.b.data, x.b.size, &body,
                                            &len, &err),
                         CS_OK, "%s", err.msg);
            ts_body_free(&x);
            bool secret = memmem(body, len, "hunter2", 7) != NULL;
            bool key = memmem(body, len, "DB_PASSWORD", 11) != NULL;
            bool redacted = memmem(body, len, CS_REDACTED, strlen(CS_REDACTED)) != NULL;
            cr_assert(key, "%s %s: the env key is shown", principals[who],
                      cs_msg_name(reads[i]));
            cr_assert_eq(secret, who == OPER, "%s %s: the password %s", principals[who],
                         cs_msg_name(reads[i]), secret ? "leaked" : "is missing");
            cr_assert_eq(redacted, who == READER, "%s", principals[who]);
        }
    /* And the agent of the machine the task is on still gets it. */
    ts_body x;
    msgpack_packer *pk = ts_body_new(&x);
    msgpack_pack_map(pk, 1);
    cs_pack_kv_u64(pk, "machine", m1);
    const void *body;
    size_t len;
    cr_assert_eq(cs_client_call_raw(K.c[AGENT1], CS_MSG_POLL, x.b.data, x.b.size, &body, &len,
                                    &err),
                 CS_OK, "%s", err.msg);
    ts_body_free(&x);
    cr_assert(memmem(body, len, "hunter2", 7) != NULL, "the agent gets its task's environment");
    /* Another agent cannot poll m1. */
    pk = ts_body_new(&x);
    msgpack_pack_map(pk, 1);
    cs_pack_kv_u64(pk, "machine", m1);
    expect_denied(call(K.c[AGENT2], CS_MSG_POLL, &x, &r, &err), &err, "agent:m2", CS_MSG_POLL);
}

/* Heartbeats, by id or by name, only for the agent's own machine. */
static void an_agent_heartbeats_only_its_machine(void)
{
    cs_id m1 = registered(K.c[AGENT1], "m1");
    cs_msg r;
    cs_error err = {0};
    ts_body x;
    msgpack_packer *pk = ts_body_new(&x);
    msgpack_pack_map(pk, 1);
    cs_pack_kv_u64(pk, "machine", m1);
    expect_denied(call(K.c[AGENT2], CS_MSG_HEARTBEAT, &x, &r, &err), &err, "agent:m2",
                  CS_MSG_HEARTBEAT);
    pk = ts_body_new(&x);
    msgpack_pack_map(pk, 1);
    cs_pack_kv_str(pk, "machine", "m1");
    expect_denied(call(K.c[AGENT2], CS_MSG_HEARTBEAT, &x, &r, &err), &err, "agent:m2",
                  CS_MSG_HEARTBEAT);
    pk = ts_body_new(&x);
    msgpack_pack_map(pk, 1);
    cs_pack_kv_u64(pk, "machine", m1);
    cr_assert_eq(call(K.c[AGENT1], CS_MSG_HEARTBEAT, &x, &r, &err), CS_OK, "%s", err.msg);
}

/* A reader reads, and writes nothing. */
static void a_reader_only_reads(void)
{
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(cs_client_call(K.c[READER], CS_MSG_STATS, "\x80", 1, &r, &err), CS_OK, "%s",
                 err.msg);
    ts_body x;
    msgpack_packer *pk = ts_body_new(&x);
    msgpack_pack_map(pk, 2);
    cs_pack_kv_str(pk, "name", "j");
    cs_pack_kv_str(pk, "cmd", "true");
    expect_denied(call(K.c[READER], CS_MSG_JOB_SUBMIT, &x, &r, &err), &err, "reader",
                  CS_MSG_JOB_SUBMIT);
    cs_id m1 = registered(K.c[AGENT1], "m1");
    pk = ts_body_new(&x);
    msgpack_pack_map(pk, 2);
    cs_pack_kv_u64(pk, "machine", m1);
    cs_pack_kv_str(pk, "admin", "cordoned");
    expect_denied(call(K.c[READER], CS_MSG_MACHINE_ADMIN, &x, &r, &err), &err, "reader",
                  CS_MSG_MACHINE_ADMIN);
}


/* Whether the audit, read by `reader`, has an entry of `who` doing
 * `action`. */
static bool audited(cs_client *reader, const char *who, const char *action)
{
    cs_audit_req q = {.limit = 1000, .who = who, .action = action};
    ts_body x;
    cr_assert_eq(cs_audit_req_encode(ts_body_new(&x), &q), CS_OK);
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(call(reader, CS_MSG_AUDIT, &x, &r, &err), CS_OK, "%s", err.msg);
    cs_arena a;
    cs_arena_init(&a);
    cs_audit_reply rep;
    cr_assert_eq(cs_audit_reply_decode(&r.body, &rep, &a, &err), CS_OK, "%s", err.msg);
    bool found = false;
    for (uint32_t i = 0; i < rep.n; i++)
        found |= strcmp(rep.entries[i].who, who) == 0 && strcmp(rep.entries[i].action, action) == 0;
    cs_arena_free(&a);
    return found;
}

/* The audit names the principal of each accepted write, and only an
 * operator or a reader may read it. */
static void the_audit_names_each_principal(void)
{
    cs_id m1 = registered(K.c[AGENT1], "m1");
    cs_id task = placed_job("etl", "batch", m1, true);
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(report(K.c[AGENT1], task, task_now(task).attempts, CS_TASK_RUNNING, false, &r, &err), CS_OK, "%s",
                 err.msg);
    cr_assert(audited(K.c[READER], "agent:m1", "machine.register"));
    cr_assert(audited(K.c[READER], "agent:m1", "task.status"));
    cr_assert(audited(K.c[OPER], "operator", "job.submit"));
    cr_assert(audited(K.c[OPER], "scheduler.batch:batch-1", "commit"));
    /* A refused write is not there. */
    do_register(K.c[AGENT2], "m1", "down", &r, &err);
    cr_assert(!audited(K.c[OPER], "agent:m2", "machine.register"));
    ts_body x;
    cs_audit_req q = {.limit = 10};
    cs_audit_req_encode(ts_body_new(&x), &q);
    expect_denied(call(K.c[AGENT1], CS_MSG_AUDIT, &x, &r, &err), &err, "agent:m1", CS_MSG_AUDIT);
}

/* ---- the attacks, with roles from tokens and from certificates ---------- */

Test(authz, an_agent_cannot_register_another_machine) { an_agent_cannot_register_another_machine(); }
Test(authz, an_agent_cannot_report_another_machines_task) { an_agent_cannot_report_another_machines_task(); }
Test(authz, only_the_operator_kills_a_job) { only_the_operator_kills_a_job(); }
Test(authz, a_scheduler_commits_only_as_itself_and_for_its_kind) { a_scheduler_commits_only_as_itself_and_for_its_kind(); }
Test(authz, a_scheduler_names_only_itself) { a_scheduler_names_only_itself(); }
Test(authz, no_rogue_machine_and_no_environment_for_readers) { no_rogue_machine_and_no_environment_for_readers(); }
Test(authz, an_agent_heartbeats_only_its_machine) { an_agent_heartbeats_only_its_machine(); }
Test(authz, a_reader_only_reads) { a_reader_only_reads(); }
Test(authz, the_audit_names_each_principal) { the_audit_names_each_principal(); }

Test(authz_tls, an_agent_cannot_register_another_machine) { an_agent_cannot_register_another_machine(); }
Test(authz_tls, an_agent_cannot_report_another_machines_task) { an_agent_cannot_report_another_machines_task(); }
Test(authz_tls, only_the_operator_kills_a_job) { only_the_operator_kills_a_job(); }
Test(authz_tls, a_scheduler_commits_only_as_itself_and_for_its_kind) { a_scheduler_commits_only_as_itself_and_for_its_kind(); }
Test(authz_tls, a_scheduler_names_only_itself) { a_scheduler_names_only_itself(); }
Test(authz_tls, no_rogue_machine_and_no_environment_for_readers) { no_rogue_machine_and_no_environment_for_readers(); }
Test(authz_tls, an_agent_heartbeats_only_its_machine) { an_agent_heartbeats_only_its_machine(); }
Test(authz_tls, a_reader_only_reads) { a_reader_only_reads(); }
Test(authz_tls, the_audit_names_each_principal) { the_audit_names_each_principal(); }

/* ---- a replicated cell -------------------------------------------------- */

/* A 3-member cell whose members all enforce roles (`extra`: the role
 * flags of every member), with each principal's client dialled to member
 * `at` only; the index of the leader, and a follower in *follower. */
static ts_cluster CL;
static cs_client *CLC[NPRINCIPALS];

static int cluster_up(const char *scheme, const char *const *extra, cs_tls **tls, int *follower)
{
    ts_cluster_setup(&CL, 3, scheme);
    for (int i = 0; i < 3; i++)
        ts_cluster_start(&CL, i, extra);
    cs_client *oper[3];
    cs_error err = {0};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(cs_client_open_tls(CL.url[i], tls ? tls[OPER] : NULL, 5000, &oper[i], &err),
                     CS_OK, "%s", err.msg);
        if (tls == NULL) {
            char t[64];
            token_of(OPER, t, sizeof t);
            cr_assert_eq(cs_client_set_token(oper[i], t, &err), CS_OK);
        }
    }
    int leader = ts_cluster_leader(&CL, oper, 30000);
    for (int i = 0; i < 3; i++)
        cs_client_close(oper[i]);
    *follower = (leader + 1) % 3;
    for (int i = 0; i < NPRINCIPALS; i++) {
        cr_assert_eq(cs_client_open_tls(CL.url[*follower], tls ? tls[i] : NULL, 10000, &CLC[i],
                                        &err),
                     CS_OK, "%s", err.msg);
        if (tls == NULL) {
            char t[64];
            token_of(i, t, sizeof t);
            cr_assert_eq(cs_client_set_token(CLC[i], t, &err), CS_OK);
        }
    }
    return leader;
}

static void cluster_down(void)
{
    for (int i = 0; i < NPRINCIPALS; i++) {
        cs_client_close(CLC[i]);
        CLC[i] = NULL;
    }
    ts_cluster_teardown(&CL);
    ts_kill_descendants();
}

/* What a follower forwards to its leader is judged there as its client's
 * request, not the follower's: an agent's registration of another
 * machine is refused, the rightful ones are taken. */
static void forwarded_requests_keep_their_principal(void)
{
    cs_msg r;
    cs_error err = {0};
    expect_denied(do_register(CLC[AGENT2], "m1", "down", &r, &err), &err, "agent:m2",
                  CS_MSG_MACHINE_REGISTER);
    cr_assert_not_null(strstr(err.msg, "machine m1 is not its own"), "%s", err.msg);
    cr_assert_eq(do_register(CLC[AGENT1], "m1", NULL, &r, &err), CS_OK, "%s", err.msg);
    cs_id job = ts_submit(CLC[OPER], "{\"name\": \"j\", \"count\": 1, \"cmd\": \"true\"}");
    expect_denied(job_ref(CLC[READER], CS_MSG_JOB_KILL, job, &r, &err), &err, "reader",
                  CS_MSG_JOB_KILL);
    cr_assert_eq(job_ref(CLC[OPER], CS_MSG_JOB_KILL, job, &r, &err), CS_OK, "%s", err.msg);
}

Test(authz_cluster, tokens_through_a_follower, .timeout = 120, .fini = cluster_down)
{
    ts_tmp_setup();
    char tokens[300];
    snprintf(tokens, sizeof tokens, "%s/tokens", ts_tmp);
    FILE *f = fopen(tokens, "w");
    cr_assert_not_null(f);
    for (int i = 0; i < NPRINCIPALS; i++) {
        char t[64];
        token_of(i, t, sizeof t);
        fprintf(f, "%s %s\n", t, principals[i]);
    }
    fclose(f);
    const char *extra[] = {"--auth-tokens", tokens, NULL};
    int follower;
    cluster_up("tcp", extra, NULL, &follower);
    forwarded_requests_keep_their_principal();
    ts_tmp_teardown();
}

/* Over TLS the leader sees the follower's certificate (server), so the
 * follower says whom it acts for ({"as": ...}, forward.c). */
Test(authz_cluster, certificates_through_a_follower, .timeout = 120, .fini = cluster_down)
{
    ts_tmp_setup();
    char cmd[1024], out[4096];
    int off = snprintf(cmd, sizeof cmd, "tools/cellsched-certs.sh '%s/certs'", ts_tmp);
    for (int i = 0; i < NPRINCIPALS; i++)
        off += snprintf(cmd + off, sizeof cmd - (size_t)off, " %s", principals[i]);
    cr_assert_eq(ts_run(cmd, out, sizeof out), 0, "%s: %s", cmd, out);
    char cert[NPRINCIPALS][700], key[NPRINCIPALS][700], ca[400];
    snprintf(ca, sizeof ca, "%s/certs/ca.pem", ts_tmp);
    cs_tls *tls[NPRINCIPALS];
    cs_error err = {0};
    for (int i = 0; i < NPRINCIPALS; i++) {
        char base[CS_PRINCIPAL_MAX + 1];
        snprintf(base, sizeof base, "%s", principals[i]);
        char *colon = strchr(base, ':');
        if (colon != NULL)
            *colon = '-';
        snprintf(cert[i], sizeof cert[i], "%s/certs/%s.pem", ts_tmp, base);
        snprintf(key[i], sizeof key[i], "%s/certs/%s.key", ts_tmp, base);
        cs_tls_files fl = {.cert = cert[i], .key = key[i], .ca = ca};
        cr_assert_eq(cs_tls_load(&fl, &tls[i], &err), CS_OK, "%s", err.msg);
    }
    const char *extra[] = {"--tls-cert", cert[SERVER], "--tls-key", key[SERVER], "--tls-ca", ca,
                           NULL};
    int follower;
    cluster_up("tls+tcp", extra, tls, &follower);
    for (int i = 0; i < NPRINCIPALS; i++)
        cs_tls_free(tls[i]);
    forwarded_requests_keep_their_principal();
    /* cellctl members asks each member at its own tls+tcp URL, with the
     * operator's certificate: every one answers (none "unreachable"). */
    char ctl[256], cmdline[3000], got[8192];
    ts_bin("cellctl", ctl, sizeof ctl);
    snprintf(cmdline, sizeof cmdline,
             "%s --server %s --tls-cert %s --tls-key %s --tls-ca %s --timeout 5s members 2>&1", ctl,
             CL.url[follower], cert[OPER], key[OPER], ca);
    int st = ts_run(cmdline, got, sizeof got);
    cr_assert_eq(st, 0, "%s", got);
    cr_assert(strstr(got, "unreachable") == NULL, "%s", got);
    cr_assert(strstr(got, "leader") != NULL, "%s", got);
    ts_tmp_teardown();
}

/* ---- the token file ------------------------------------------------------- */

static void bad_tokens(const char *content, const char *want)
{
    char path[300], cmd[1200], out[2048], bin[256];
    snprintf(path, sizeof path, "%s/bad-tokens", ts_tmp);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(content, f);
    fclose(f);
    ts_bin("cellstated", bin, sizeof bin);
    int port = ts_free_port();
    snprintf(cmd, sizeof cmd,
             "%s --listen tcp://127.0.0.1:%d --data %s/bad-data --auth-tokens %s 2>&1", bin,
             port, ts_tmp, path);
    int st = ts_run(cmd, out, sizeof out);
    cr_assert_neq(st, 0, "exit %d: %s", st, out);
    cr_assert_not_null(strstr(out, want), "'%s' lacks '%s'", out, want);
}

Test(authz, a_wrong_token_file_stops_the_start)
{
    bad_tokens("tok-0123456789abcdef operator\nshort agent:m1\n", "line 2: a token has 16");
    bad_tokens("tok-0123456789abcdef agent\n", "the role agent needs a name");
    bad_tokens("tok-0123456789abcdef king\n", "unknown role 'king'");
    bad_tokens("tok-0123456789abcdef operator\ntok-0123456789abcdef reader\n",
               "the same token as an earlier line");
    bad_tokens("tok-0123456789abcdef\n", "expected \"TOKEN PRINCIPAL\"");
    bad_tokens("# nothing\n", "holds no token");
}
