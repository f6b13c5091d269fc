/* test_cellbench_replicas.c — the replicated cell the benchmarks start
 * (tools/cellbench_replicas.h): three real cellstated members on
 * 127.0.0.1 elect one leader that all name, a write through a follower
 * reaches the leader, a member's death is noticed, everything stops; and
 * the helpers that choose ports and followers. `cellbench place --replicas`
 * and `poll --replicas` are run end to end in test_cellbench.c.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/client.h"
#include "proto/msg.h"
#include "spec/jobspec.h"
#include "tests/support.h"
#include "tools/cellbench_cell.h"
#include "tools/cellbench_replicas.h"

static char dir[256];

static void setup(void) { cr_assert_eq(ts_mkdtemp(dir, sizeof dir), 0); }

static void teardown(void)
{
    ts_kill_descendants();
    ts_rmtree(dir);
}

TestSuite(cellbench_replicas, .init = setup, .fini = teardown, .timeout = 120);

Test(cellbench_replicas, free_ports_are_distinct_and_bindable)
{
    int ports[10];
    cs_error err = {0};
    cr_assert_eq(cb_free_ports(10, ports, &err), CS_OK, "%s", err.msg);
    for (int i = 0; i < 10; i++) {
        cr_assert(ports[i] > 0 && ports[i] < 65536, "port %d", ports[i]);
        for (int j = 0; j < i; j++)
            cr_assert_neq(ports[i], ports[j], "ports %d and %d are both %d", i, j, ports[i]);
    }
    cr_assert_neq(cb_free_ports(11, ports, &err), CS_OK, "more than the cell needs is refused");
}

Test(cellbench_replicas, followers_are_taken_in_turn_and_never_the_leader)
{
    cb_replicas r = {.n = 3, .leader = 1};
    cr_assert_eq(cb_replicas_follower(&r, 0), 0);
    cr_assert_eq(cb_replicas_follower(&r, 1), 2);
    cr_assert_eq(cb_replicas_follower(&r, 2), 0);
    r.leader = 0;
    cr_assert_eq(cb_replicas_follower(&r, 0), 1);
    cr_assert_eq(cb_replicas_follower(&r, 1), 2);
    r = (cb_replicas){.n = 1, .leader = 0};
    cr_assert_eq(cb_replicas_follower(&r, 5), 0, "one member: the leader is all there is");
}

Test(cellbench_replicas, a_seed_store_records_applied_index_one)
{
    char data[300];
    snprintf(data, sizeof data, "%s/seed", dir);
    cr_assert_eq(mkdir(data, 0755), 0);
    cs_store *s;
    cs_store_opts so = {.nosync = true};
    cs_error err = {0};
    cr_assert_eq(cs_store_open(data, &so, &s, &err), CS_OK, "%s", err.msg);
    cb_cell_spec spec = {.machines = 3, .ntasks = 5, .task_res = {.cpu = 10, .mem = 16},
                         .machine_cap = {.cpu = 1000, .mem = 1024, .disk = 1000}};
    cb_cell cell;
    cr_assert_eq(cb_cell_setup(s, &spec, &cell, &err), CS_OK, "%s", err.msg);
    uint64_t applied = 9;
    cr_assert_eq(cs_store_applied(s, &applied, &err), CS_OK);
    cr_assert_eq(applied, 0, "a store written directly was never replicated");
    cr_assert_eq(cb_replicas_mark_seed(s, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_store_applied(s, &applied, &err), CS_OK);
    cr_assert_eq(applied, 1);
    cb_cell_free(&cell);
    cs_store_close(s);
}

Test(cellbench_replicas, url_lists_put_the_chosen_member_first)
{
    cb_replicas r = {.n = 3};
    for (int i = 0; i < 3; i++)
        snprintf(r.d[i].url, sizeof r.d[i].url, "tcp://127.0.0.1:%d", 7600 + i);
    char out[256];
    cs_error err = {0};
    cr_assert_eq(cb_replicas_urls(&r, 0, out, sizeof out, &err), CS_OK);
    cr_assert_str_eq(out, "tcp://127.0.0.1:7600,tcp://127.0.0.1:7601,tcp://127.0.0.1:7602");
    cr_assert_eq(cb_replicas_urls(&r, 1, out, sizeof out, &err), CS_OK);
    cr_assert_str_eq(out, "tcp://127.0.0.1:7601,tcp://127.0.0.1:7600,tcp://127.0.0.1:7602");
    cr_assert_eq(cb_replicas_urls(&r, 2, out, sizeof out, &err), CS_OK);
    cr_assert_str_eq(out, "tcp://127.0.0.1:7602,tcp://127.0.0.1:7600,tcp://127.0.0.1:7601");
    cr_assert_eq(cb_replicas_urls(&r, 0, out, 30, &err), CS_EINVAL, "too small a buffer");
}

Test(cellbench_replicas, three_members_elect_a_leader_all_name_and_stop)
{
    char bin[256];
    ts_bin("cellstated", bin, sizeof bin);
    cb_replicas r;
    cs_error err = {0};
    char f_workers[] = "--workers", workers[] = "64";
    char *extra[] = {f_workers, workers, NULL};
    cr_assert_eq(cb_replicas_start(&r, bin, dir, 3, extra, 30000, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(r.n, 3);
    cr_assert(r.leader < 3);
    for (uint32_t i = 0; i < 3; i++) {
        cr_assert(r.d[i].pid > 0, "member %u runs", i + 1);
        char data[320];
        cr_assert_eq(cb_replicas_data_dir(dir, i, data, sizeof data, &err), CS_OK);
        cr_assert_eq(access(data, F_OK), 0, "member %u has its own data directory", i + 1);
    }
    cr_assert_eq(cb_replicas_check(&r, &err), CS_OK, "%s", err.msg);

    /* A write sent to a follower is forwarded, committed and visible at
     * the leader: the cell the benchmark measures is one cell. */
    uint32_t f = cb_replicas_follower(&r, 0);
    cr_assert_neq(f, r.leader);
    cs_client *c, *lc;
    cr_assert_eq(cs_client_open(r.d[f].url, 5000, &c, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_client_open(r.d[r.leader].url, 5000, &lc, &err), CS_OK, "%s", err.msg);
    cs_arena a;
    cs_arena_init(&a);
    cs_stats_reply before, after;
    cr_assert_eq(cs_client_stats(lc, &before, &a, &err), CS_OK, "%s", err.msg);
    const char json[] = "{\"name\": \"through-a-follower\", \"count\": 1, \"cmd\": \"true\", "
                        "\"resources\": {\"cpu\": 0.01, \"mem\": 1}}";
    cs_jobspec spec;
    cr_assert_eq(cs_jobspec_parse(json, strlen(json), &spec, &err), CS_OK, "%s", err.msg);
    cs_msg m;
    int rc = cs_client_callb(c, CS_MSG_JOB_SUBMIT, &spec.body, &m, &err);
    cs_jobspec_free(&spec);
    cr_assert_eq(rc, CS_OK, "submit through a follower: %s", err.msg);
    cr_assert_eq(cs_client_stats(lc, &after, &a, &err), CS_OK, "%s", err.msg);
    cs_arena_free(&a);
    cs_client_close(c);
    cs_client_close(lc);
    cr_assert_gt(after.version, before.version, "the follower's write reached the leader");

    /* A member that dies is named. */
    kill(r.d[f].pid, SIGKILL);
    int seen = 0;
    for (int i = 0; i < 100 && seen == 0; i++) {
        seen = cb_replicas_check(&r, &err) != CS_OK;
        ts_sleep_ms(20);
    }
    cr_assert(seen, "the killed member was not noticed");
    cr_assert(strstr(err.msg, "member") != NULL, "%s", err.msg);
    cr_assert_eq(r.d[f].pid, 0);
    cr_assert_eq(cb_replicas_stop(&r, 10000), 0, "the others stop on SIGTERM");
    cr_assert_eq(r.n, 0);
}

Test(cellbench_replicas, a_missing_binary_fails_and_leaves_nothing)
{
    cb_replicas r;
    cs_error err = {0};
    cr_assert_neq(cb_replicas_start(&r, "/nonexistent/cellstated", dir, 3, NULL, 2000, &err),
                  CS_OK);
    cr_assert_eq(r.n, 0);
    cr_assert_neq(cb_replicas_start(&r, "/bin/true", dir, 6, NULL, 2000, &err), CS_OK,
                  "six members are refused");
}
