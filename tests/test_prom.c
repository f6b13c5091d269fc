/* test_prom.c — cellstated's Prometheus metrics (server.h's
 * cs_server_metrics_text) against a real server started in this process on
 * 127.0.0.1, driven through the client: registrations, a submission, a
 * commit that places and one that conflicts, a sched.report, requests that
 * fail (an unknown job, a type that is not a request, bytes that are not
 * msgpack). The counters move by exactly what was done, the families and
 * labels are there, the per-machine series only when asked for, the offer's
 * and the replica's families in those modes, and promtool accepts the text
 * when it is installed (Debian's prometheus). */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/client.h"
#include "proto/jobmsg.h"
#include "proto/offermsg.h"
#include "proto/schedreport.h"
#include "server/internal.h"
#include "server/replica.h"
#include "server/server.h"
#include "tests/promcheck.h"
#include "tests/support.h"

/* Criterion's runner (the parent of the forked tests) now and then loses a
 * 48-byte record of its own when two tests run side by side (--jobs=2; one
 * run in three here), and LeakSanitizer then fails the whole binary; the
 * stack lies wholly in libcriterion. Suppress those, and only those, as
 * test_agent does. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libcriterion.so\n"; }

/* ---- a server in this process ------------------------------------------------------ */

typedef struct cell {
    char dir[256], url[64], raft[32];
    cs_member member;
    cs_server *s;
    cs_client *c;
} cell;

/* mode: 0 one replica, 1 --concurrency offers, 2 a replicated cell of one. */
static void cell_start(cell *x, int mode)
{
    memset(x, 0, sizeof *x);
    cr_assert_eq(ts_mkdtemp(x->dir, sizeof x->dir), 0);
    snprintf(x->url, sizeof x->url, "tcp://127.0.0.1:%d", ts_free_port());
    cs_server_opts o;
    cs_server_opts_default(&o);
    o.data_dir = x->dir;
    o.listen_url = x->url;
    o.workers = 16;
    o.nosync = mode != 0; /* one replica times its real fsyncs */
    o.heartbeat_timeout_ms = 3600 * 1000; /* no machine goes down during a test */
    if (mode == 1)
        o.concurrency = CS_CONCURRENCY_OFFERS;
    if (mode == 2) {
        x->member.id = 1;
        snprintf(x->member.listen, sizeof x->member.listen, "%s", x->url);
        snprintf(x->member.raft, sizeof x->member.raft, "127.0.0.1:%d", ts_free_port());
        o.members = &x->member;
        o.nmembers = 1;
        o.member_id = 1;
        o.election_timeout_ms = 100;
    }
    cs_error err = {0};
    cr_assert_eq(cs_server_start(&o, &x->s, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_client_open(x->url, 10000, &x->c, &err), CS_OK, "%s", err.msg);
}

static void cell_stop(cell *x)
{
    cs_client_close(x->c);
    cs_server_stop(x->s);
    ts_rmtree(x->dir);
}

static char *scrape(cell *x, bool per_machine)
{
    char *text = NULL;
    size_t len = 0;
    cs_error err = {0};
    cr_assert_eq(cs_server_metrics_text(x->s, per_machine, &text, &len, &err), CS_OK, "%s",
                 err.msg);
    cr_assert_eq(strlen(text), len);
    return text;
}

/* The value of the sample whose series (name and labels, exactly as
 * written) is `series`; fails the test when absent. */
static double value(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *l = text; *l != '\0';) {
        if (strncmp(l, series, n) == 0 && l[n] == ' ')
            return strtod(l + n + 1, NULL);
        const char *nl = strchr(l, '\n');
        if (nl == NULL)
            break;
        l = nl + 1;
    }
    cr_assert_fail("no sample %s in:\n%s", series, text);
    return NAN;
}

/* Whether some line starts with `prefix`. */
static bool has_line(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *l = text; *l != '\0';) {
        if (strncmp(l, prefix, n) == 0)
            return true;
        const char *nl = strchr(l, '\n');
        if (nl == NULL)
            break;
        l = nl + 1;
    }
    return false;
}

/* How much `series` grew from text a to text b (absent in a: from 0). */
static double moved(const char *a, const char *b, const char *series)
{
    char probe[512];
    snprintf(probe, sizeof probe, "%s ", series);
    return value(b, series) - (has_line(a, probe) ? value(a, series) : 0);
}

/* ---- requests ------------------------------------------------------------------------------ */

/* A request body being packed. */
static int call(cell *x, uint32_t type, msgpack_sbuffer *b, cs_msg *r, cs_error *err)
{
    int rc = cs_client_callb(x->c, type, b, r, err);
    msgpack_sbuffer_destroy(b);
    return rc;
}

/* Machine `name`: 2 cores, 4 GiB, 10000 MiB of disk. */
static cs_id do_register(cell *x, const char *name)
{
    ts_body q;
    msgpack_packer *pk = ts_body_new(&q);
    msgpack_pack_map(pk, 4);
    cs_pack_kv_str(pk, "name", name);
    cs_res cap = {2000, 4096, 10000};
    cs_pack_kv_res(pk, "capacity", &cap);
    cs_pack_kv_u64(pk, "port_lo", 31000);
    cs_pack_kv_u64(pk, "port_hi", 31099);
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(call(x, CS_MSG_MACHINE_REGISTER, &q.b, &r, &err), CS_OK, "%s", err.msg);
    return ts_reply_u64(&r.body, "id");
}

/* Job `name` of `count` tasks of one core and 1 GiB each. */
static cs_id do_submit(cell *x, const char *name, uint32_t count)
{
    ts_body q;
    msgpack_packer *pk = ts_body_new(&q);
    msgpack_pack_map(pk, 4);
    cs_pack_kv_str(pk, "name", name);
    cs_pack_kv_u64(pk, "count", count);
    cs_res res = {1000, 1024, 0};
    cs_pack_kv_res(pk, "resources", &res);
    cs_pack_kv_str(pk, "cmd", "true");
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(call(x, CS_MSG_JOB_SUBMIT, &q.b, &r, &err), CS_OK, "%s", err.msg);
    return ts_reply_u64(&r.body, "id");
}

/* Scheduler `sched`'s commit of tasks [from, from + n) of `job` on machine
 * m (fine-grained); the claims committed. */
static uint64_t do_commit(cell *x, const char *sched, uint64_t req, cs_id m, cs_id job,
                          uint32_t from, uint32_t n)
{
    cs_txn t;
    cs_txn_init(&t, cs_sched_id_of(sched), req, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    cs_res res = {1000, 1024, 0};
    for (uint32_t i = from; i < from + n; i++)
        cs_txn_add_claim(&t, cs_task_id(job, i), m, &res, NULL, 0, 0);
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    cs_txn_encode(&t, &b);
    cs_txn_free(&t);
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(call(x, CS_MSG_COMMIT, &b, &r, &err), CS_OK, "%s", err.msg);
    return ts_reply_u64(&r.body, "committed");
}

static void do_report(cell *x, const char *name, const char *kind)
{
    cs_sched_report *rep = calloc(1, sizeof *rep);
    cr_assert_not_null(rep);
    snprintf(rep->name, sizeof rep->name, "%s", name);
    snprintf(rep->kind, sizeof rep->kind, "%s", kind);
    cs_error err = {0};
    cr_assert_eq(cs_sched_report_add_float(rep, "busyness", 0.25, &err), CS_OK);
    cr_assert_eq(cs_sched_report_add_float(rep, "busyness_wasted", 0.125, &err), CS_OK);
    cr_assert_eq(cs_sched_report_add_float(rep, "conflict_fraction", 0.5, &err), CS_OK);
    cr_assert_eq(cs_sched_report_add_uint(rep, "pending_tasks", 7, &err), CS_OK);
    cr_assert_eq(cs_sched_report_add_uint(rep, "wait_first_p50_ms", 1500, &err), CS_OK);
    cr_assert_eq(cs_sched_report_add_uint(rep, "wait_placed_p99_ms", 42, &err), CS_OK);
    ts_body q;
    msgpack_packer *pk = ts_body_new(&q);
    cr_assert_eq(cs_sched_report_pack(pk, rep), CS_OK);
    free(rep);
    cs_msg r;
    cr_assert_eq(call(x, CS_MSG_SCHED_REPORT, &q.b, &r, &err), CS_OK, "%s", err.msg);
}

/* job.kill of a job that does not exist: ENOTFOUND. */
static void do_kill_unknown(cell *x)
{
    ts_body q;
    msgpack_packer *pk = ts_body_new(&q);
    cs_ref ref = cs_ref_name("no-such-job");
    cs_ref_req_encode(pk, "job", &ref);
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(call(x, CS_MSG_JOB_KILL, &q.b, &r, &err), CS_ENOTFOUND, "%s", err.msg);
}

/* A message type that is not a request (a version announcement): EPROTO. */
static void do_not_a_request(cell *x)
{
    ts_body q;
    msgpack_packer *pk = ts_body_new(&q);
    msgpack_pack_map(pk, 0);
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(call(x, CS_MSG_VERSION, &q.b, &r, &err), CS_EPROTO, "%s", err.msg);
}

/* Bytes that are not msgpack, as a hostile or broken client sends them:
 * answered EPROTO, of no type. */
static void do_garbage(cell *x)
{
    nng_socket sock;
    cr_assert_eq(nng_req0_open(&sock), 0);
    nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 10000);
    cr_assert_eq(nng_dial(sock, x->url, NULL, 0), 0);
    static const char junk[] = "\xc1 not msgpack";
    cr_assert_eq(nng_send(sock, (void *)junk, sizeof junk - 1, 0), 0);
    nng_msg *m;
    cr_assert_eq(nng_recvmsg(sock, &m, 0), 0, "no reply to bad input");
    nng_msg_free(m);
    nng_close(sock);
}

/* ---- tests ------------------------------------------------------------------------------- */

Test(prom, counters_move_by_exactly_what_was_done, .timeout = 60)
{
    cell x;
    cell_start(&x, 0);
    char *t0 = scrape(&x, false);
    /* Every request type is there with outcome ok from the start. */
    cr_assert_eq(value(t0, "cellsched_server_requests_total{type=\"commit\",outcome=\"ok\"}"), 0);
    cr_assert_eq(value(t0, "cellsched_machines{state=\"up\"}"), 0);

    cs_id m1 = do_register(&x, "m1");
    do_register(&x, "m2");
    cs_id job = do_submit(&x, "web", 3);
    cr_assert_eq(do_commit(&x, "batch-a", 1, m1, job, 0, 2), 2);
    /* m1's two cores are taken: this claim conflicts. */
    cr_assert_eq(do_commit(&x, "batch-a", 2, m1, job, 2, 1), 0);
    do_report(&x, "batch-a", "batch");
    do_kill_unknown(&x);
    do_not_a_request(&x);
    do_garbage(&x);
    char *t1 = scrape(&x, false);

    static const struct {
        const char *series;
        double by;
    } want[] = {
        {"cellsched_server_requests_total{type=\"machine.register\",outcome=\"ok\"}", 2},
        {"cellsched_server_requests_total{type=\"job.submit\",outcome=\"ok\"}", 1},
        {"cellsched_server_requests_total{type=\"commit\",outcome=\"ok\"}", 2},
        {"cellsched_server_requests_total{type=\"sched.report\",outcome=\"ok\"}", 1},
        {"cellsched_server_requests_total{type=\"job.kill\",outcome=\"ENOTFOUND\"}", 1},
        {"cellsched_server_requests_total{type=\"job.kill\",outcome=\"ok\"}", 0},
        {"cellsched_server_requests_total{type=\"version\",outcome=\"EPROTO\"}", 1},
        {"cellsched_server_requests_total{type=\"unknown\",outcome=\"EPROTO\"}", 1},
        /* Two registrations, the submission, two commits, the kill: six
         * writes, each a group of one (one client, one request at a time). */
        {"cellsched_server_writes_total", 6},
        {"cellsched_server_write_group_size_count", 6},
        {"cellsched_server_write_group_size_bucket{le=\"1\"}", 6},
        {"cellsched_server_commit_duration_seconds_count", 2},
        {"cellsched_server_commit_duration_seconds_bucket{le=\"+Inf\"}", 2},
        /* The kill named no job: nothing to commit; the conflicting commit
         * changed nothing but is logged, so committed. */
        {"cellsched_store_commit_duration_seconds_count", 5},
        {"cellsched_log_entries", 5},
        {"cellsched_scheduler_commits_total{scheduler=\"batch-a\"}", 2},
        {"cellsched_scheduler_commits_conflicted_total{scheduler=\"batch-a\"}", 1},
        {"cellsched_scheduler_claims_conflicted_total{scheduler=\"batch-a\"}", 1},
        {"cellsched_scheduler_placements_total{scheduler=\"batch-a\"}", 2},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        cr_expect_eq(moved(t0, t1, want[i].series), want[i].by, "%s moved by %g, not %g",
                     want[i].series, moved(t0, t1, want[i].series), want[i].by);

    /* Gauges of the cell. */
    cr_expect_eq(value(t1, "cellsched_machines{state=\"up\"}"), 2);
    cr_expect_eq(value(t1, "cellsched_machines{state=\"down\"}"), 0);
    cr_expect_eq(value(t1, "cellsched_machines_admin{admin=\"active\"}"), 2);
    cr_expect_eq(value(t1, "cellsched_cell_cpu_capacity_cores"), 4);
    cr_expect_eq(value(t1, "cellsched_cell_cpu_allocated_cores"), 2);
    cr_expect_eq(value(t1, "cellsched_cell_memory_capacity_bytes"), 2 * 4096.0 * 1048576);
    cr_expect_eq(value(t1, "cellsched_cell_memory_allocated_bytes"), 2 * 1024.0 * 1048576);
    cr_expect_eq(value(t1, "cellsched_cell_disk_capacity_bytes"), 2 * 10000.0 * 1048576);
    cr_expect_eq(value(t1, "cellsched_cell_tasks_placed"), 2);
    cr_expect_eq(value(t1, "cellsched_server_write_queue_depth"), 0);
    cr_expect_eq(value(t1, "cellsched_log_floor_version"), 0);
    cs_stats_reply st;
    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};
    cr_assert_eq(cs_client_stats(x.c, &st, &a, &err), CS_OK, "%s", err.msg);
    cr_expect_eq(value(t1, "cellsched_cell_version"), (double)st.version);
    cs_arena_free(&a);
    cr_expect_gt(value(t1, "cellsched_log_size_bytes"), 0);

    /* The report's gauges, under its name. */
    cr_expect_eq(value(t1, "cellsched_scheduler_info{scheduler=\"batch-a\",kind=\"batch\"}"), 1);
    cr_expect_eq(value(t1, "cellsched_scheduler_busyness_ratio{scheduler=\"batch-a\"}"), 0.25);
    cr_expect_eq(value(t1, "cellsched_scheduler_busyness_wasted_ratio{scheduler=\"batch-a\"}"),
                 0.125);
    cr_expect_eq(value(t1, "cellsched_scheduler_conflict_fraction{scheduler=\"batch-a\"}"), 0.5);
    cr_expect_eq(value(t1, "cellsched_scheduler_pending_tasks{scheduler=\"batch-a\"}"), 7);
    cr_expect_eq(value(t1, "cellsched_scheduler_job_wait_seconds{scheduler=\"batch-a\","
                           "wait=\"first\",percentile=\"50\"}"),
                 1.5);
    cr_expect_eq(value(t1, "cellsched_scheduler_job_wait_seconds{scheduler=\"batch-a\","
                           "wait=\"placed\",percentile=\"99\"}"),
                 0.042);
    cr_expect(!has_line(t1, "cellsched_scheduler_job_wait_seconds{scheduler=\"batch-a\","
                            "wait=\"first\",percentile=\"90\"}"),
              "a percentile the report did not carry has no series");
    cr_expect_geq(value(t1, "cellsched_scheduler_report_age_seconds{scheduler=\"batch-a\"}"), 0);

    /* Not replicated, not offers: neither family. */
    cr_expect(!has_line(t1, "cellsched_replica_"), "no replica families on one replica");
    cr_expect(!has_line(t1, "cellsched_offer_"), "no offer families without offers");
    cr_expect(!has_line(t1, "# HELP cellsched_raft_"), "the Raft latency only when replicated");
    ts_promtool_check(t1);
    free(t0);
    free(t1);
    cell_stop(&x);
}

Test(prom, per_machine_series_only_when_asked, .timeout = 60)
{
    cell x;
    cell_start(&x, 0);
    cs_id m1 = do_register(&x, "m1");
    do_register(&x, "m2");
    cs_id job = do_submit(&x, "web", 1);
    cr_assert_eq(do_commit(&x, "batch-a", 1, m1, job, 0, 1), 1);
    char *total = scrape(&x, false);
    cr_expect(!has_line(total, "cellsched_machine_"), "no per-machine series by default:\n%s",
              total);
    cr_expect(!has_line(total, "# HELP cellsched_machine_"), "nor their families");
    char *each = scrape(&x, true);
    cr_expect_eq(value(each, "cellsched_machine_cpu_capacity_cores{machine=\"m1\"}"), 2);
    cr_expect_eq(value(each, "cellsched_machine_cpu_allocated_cores{machine=\"m1\"}"), 1);
    cr_expect_eq(value(each, "cellsched_machine_cpu_allocated_cores{machine=\"m2\"}"), 0);
    cr_expect_eq(value(each, "cellsched_machine_memory_allocated_bytes{machine=\"m1\"}"),
                 1024.0 * 1048576);
    cr_expect_eq(value(each, "cellsched_machine_disk_capacity_bytes{machine=\"m2\"}"),
                 10000.0 * 1048576);
    cr_expect_eq(value(each, "cellsched_machine_tasks{machine=\"m1\"}"), 1);
    cr_expect_eq(value(each, "cellsched_machine_tasks{machine=\"m2\"}"), 0);
    /* The commit's scheduler never reported: its counts carry its id. */
    char series[128];
    snprintf(series, sizeof series,
             "cellsched_scheduler_placements_total{scheduler=\"id-%016llx\"}",
             (unsigned long long)cs_sched_id_of("batch-a"));
    cr_expect_eq(value(each, series), 1);
    ts_promtool_check(each);
    free(total);
    free(each);
    cell_stop(&x);
}

Test(prom, the_offer_is_measured_under_offers, .timeout = 60)
{
    cell x;
    cell_start(&x, 1);
    do_register(&x, "m1");
    char *t0 = scrape(&x, false);
    cr_expect_eq(value(t0, "cellsched_offer_held"), 0);
    cr_expect_eq(value(t0, "cellsched_offer_grants_total"), 0);
    cr_expect(!has_line(t0, "cellsched_offer_holder{"), "no holder while none holds it");

    ts_body q;
    msgpack_packer *pk = ts_body_new(&q);
    cs_offer_acquire_req req = {.sched = "svc", .wait_ms = 0};
    cr_assert_eq(cs_offer_acquire_req_encode(pk, &req), CS_OK);
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(call(&x, CS_MSG_OFFER_ACQUIRE, &q.b, &r, &err), CS_OK, "%s", err.msg);
    char *t1 = scrape(&x, false);
    cr_expect_eq(value(t1, "cellsched_offer_held"), 1);
    cr_expect_eq(value(t1, "cellsched_offer_holder{scheduler=\"svc\"}"), 1);
    cr_expect_eq(value(t1, "cellsched_offer_grants_total"), 1);
    cr_expect_eq(value(t1, "cellsched_offer_cpu_cores"), 2);
    cr_expect_eq(value(t1, "cellsched_offer_memory_bytes"), 4096.0 * 1048576);
    cr_expect_eq(value(t1, "cellsched_offer_machines"), 1);
    cr_expect_eq(value(t1, "cellsched_offer_waiting_schedulers"), 0);
    cr_expect_eq(moved(t0, t1, "cellsched_server_requests_total{type=\"offer.acquire\","
                               "outcome=\"ok\"}"),
                 1);
    ts_promtool_check(t1);
    free(t0);
    free(t1);
    cell_stop(&x);
}

Test(prom, a_replicated_cell_shows_its_replica_and_raft_latency, .timeout = 60)
{
    cell x;
    cell_start(&x, 2);
    /* The member of a cell of one elects itself; a registration waits for
     * the leader (the client retries ENOTLEADER). */
    do_register(&x, "m1");
    char *t = scrape(&x, false);
    cr_expect_eq(value(t, "cellsched_replica_role{role=\"leader\"}"), 1);
    cr_expect_eq(value(t, "cellsched_replica_role{role=\"follower\"}"), 0);
    cr_expect_eq(value(t, "cellsched_replica_id"), 1);
    cr_expect_eq(value(t, "cellsched_replica_leader_id"), 1);
    cr_expect_eq(value(t, "cellsched_replica_members"), 1);
    cr_expect_geq(value(t, "cellsched_replica_term"), 1);
    cr_expect_geq(value(t, "cellsched_replica_commit_index"), 1);
    cr_expect_geq(value(t, "cellsched_raft_commit_duration_seconds_count"), 1);
    cr_expect(!has_line(t, "# HELP cellsched_store_commit_duration_seconds"),
              "a replicated cell's store does not fsync: its commits are not the measure");
    cr_expect_eq(value(t, "cellsched_machines{state=\"up\"}"), 1);
    ts_promtool_check(t);
    free(t);
    cell_stop(&x);
}

/* Registrations from another thread, through a client of its own. */
typedef struct loader {
    cell *x;
    int n;
    _Atomic bool done;
} loader;

static void *load(void *arg)
{
    loader *ld = arg;
    cell mine = *ld->x; /* the same server, another client (a client is one thread's) */
    cs_error err = {0};
    cr_assert_eq(cs_client_open(mine.url, 10000, &mine.c, &err), CS_OK, "%s", err.msg);
    for (int i = 0; i < ld->n; i++) {
        char name[32];
        snprintf(name, sizeof name, "load-%d", i);
        do_register(&mine, name);
    }
    cs_client_close(mine.c);
    ld->done = true;
    return NULL;
}

/* Scrapes while the server serves: every scrape reads, and the counters only
 * grow; a histogram's _count is its +Inf bucket in every one; at the end
 * the count is exact. (Run under TSan too: make SANITIZER=thread.) */
Test(prom, scrapes_while_serving_see_counters_only_grow, .timeout = 120)
{
    cell x;
    cell_start(&x, 0);
    loader ld = {.x = &x, .n = 60};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, load, &ld), 0);
    static const char reg[] =
        "cellsched_server_requests_total{type=\"machine.register\",outcome=\"ok\"}";
    double last = 0;
    int scrapes = 0;
    while (!ld.done || scrapes == 0) {
        char *t = scrape(&x, true);
        double now = value(t, reg);
        cr_assert_geq(now, last, "the counter went back from %g to %g", last, now);
        last = now;
        cr_assert_eq(value(t, "cellsched_server_write_group_size_count"),
                     value(t, "cellsched_server_write_group_size_bucket{le=\"+Inf\"}"));
        cr_assert_eq(value(t, "cellsched_store_commit_duration_seconds_count"),
                     value(t, "cellsched_store_commit_duration_seconds_bucket{le=\"+Inf\"}"));
        free(t);
        scrapes++;
    }
    pthread_join(th, NULL);
    char *t = scrape(&x, false);
    cr_expect_eq(value(t, reg), 60);
    cr_expect_eq(value(t, "cellsched_machines{state=\"up\"}"), 60);
    free(t);
    cell_stop(&x);
}

/* A follower relays the leader's reply byte for byte and counts it with the
 * leader's outcome, read from the reply itself. */
Test(prom, a_relayed_reply_is_counted_with_its_own_outcome)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    cr_assert_eq(cs_msg_error(&b, 7, CS_ENOTFOUND, "job 'x' not found"), CS_OK);
    cr_expect_eq(srv_metrics_reply_outcome(b.data, b.size), CS_ENOTFOUND);
    b.size = 0;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    cr_assert_eq(cs_msg_begin(&pk, CS_MSG_JOB_KILL, 7), CS_OK);
    cs_version_reply v = {42};
    cr_assert_eq(cs_version_reply_encode(&pk, &v), CS_OK);
    cr_expect_eq(srv_metrics_reply_outcome(b.data, b.size), CS_OK);
    cr_expect_eq(srv_metrics_reply_outcome("\xc1", 1), CS_EPROTO, "a reply that does not decode");
    msgpack_sbuffer_destroy(&b);
}
