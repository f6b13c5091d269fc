/* test_cellbench.c — smoke checks of the benchmarks: they run, print the
 * figures they promise, and clean up. Never an assertion on speed: the
 * figures themselves belong in docs/benchmarks.md, not in a test. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "tests/support.h"

/* Criterion's runner (the parent of the forked tests) loses a 48-byte
 * record of its own when place_on_three_replicas and place_watcher run side
 * by side (--jobs=2), and LeakSanitizer then fails the whole binary; the
 * stack lies wholly in libcriterion. Suppress those, and only those, as
 * test_agent does. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libcriterion.so\n"; }

/* Run `cellbench ARGS` with $TMPDIR set to a fresh directory; return its
 * exit status and the last line of its standard output in `last`. The
 * directory must be empty again afterwards: the benchmark removes what it
 * made. */
static int run_cellbench(const char *args, char *last, size_t size)
{
    char bin[256], tmp[256], cmd[1024];
    ts_bin("cellbench", bin, sizeof bin);
    cr_assert_eq(ts_mkdtemp(tmp, sizeof tmp), 0);
    snprintf(cmd, sizeof cmd, "TMPDIR='%s' '%s' %s", tmp, bin, args);
    FILE *p = popen(cmd, "r");
    cr_assert(p != NULL, "popen %s", cmd);
    char line[8192];
    last[0] = '\0';
    while (fgets(line, sizeof line, p) != NULL) {
        cr_log_info("%s", line);
        snprintf(last, size, "%s", line);
    }
    int status = pclose(p);

    DIR *d = opendir(tmp);
    cr_assert(d != NULL);
    struct dirent *e;
    int left = 0;
    while ((e = readdir(d)) != NULL)
        left += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    ts_rmtree(tmp);
    cr_assert_eq(left, 0, "cellbench left %d entries in its temporary directory", left);
    return status;
}

/* Run `cellbench ARGS`, which must succeed and end with a line of JSON:
 * that object (the caller's: json_decref). */
static json_t *run_cellbench_json(const char *args)
{
    char last[16384];
    int status = run_cellbench(args, last, sizeof last);
    cr_assert_eq(status, 0, "cellbench %s exited with status %d", args, status);
    json_error_t jerr;
    json_t *o = json_loads(last, 0, &jerr);
    cr_assert(o != NULL && json_is_object(o), "last line is not a JSON object: %s", last);
    return o;
}

Test(cellbench, poll_runs_and_reports_every_key, .timeout = 120)
{
    json_t *o = run_cellbench_json("poll --machines 50 --commits 5 --json");
    static const char *const keys[] = {"machines",       "requests_per_s", "latency_p50_ms",
                                       "latency_p99_ms", "assignments",    "missing"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        cr_assert(json_object_get(o, keys[i]) != NULL, "key %s is missing", keys[i]);
    cr_assert_eq(json_integer_value(json_object_get(o, "machines")), 50);
    cr_assert_eq(json_integer_value(json_object_get(o, "assignments")), 50,
                 "5 commits of 10 claims");
    cr_assert_eq(json_integer_value(json_object_get(o, "missing")), 0,
                 "every assignment reached its machine");
    cr_assert(json_is_number(json_object_get(o, "latency_p99_ms")));
    json_decref(o);
}

/* --replicas 3: the machines poll the followers, the commits go to the
 * leader; every assignment must reach its machine through a follower. */
Test(cellbench, poll_on_three_replicas_reaches_every_machine_through_followers, .timeout = 120)
{
    json_t *o = run_cellbench_json("poll --machines 40 --commits 6 --replicas 3 --json");
    cr_assert_eq(json_integer_value(json_object_get(o, "replicas")), 3);
    cr_assert_eq(json_integer_value(json_object_get(o, "assignments")), 60,
                 "6 commits of 10 claims");
    cr_assert_eq(json_integer_value(json_object_get(o, "seen")), 60);
    cr_assert_eq(json_integer_value(json_object_get(o, "missing")), 0);
    cr_assert_eq(json_integer_value(json_object_get(o, "poll_errors")), 0);
    cr_assert(json_is_number(json_object_get(o, "latency_p99_ms")));
    json_decref(o);
}

Test(cellbench, poll_refuses_a_bad_option)
{
    char last[8192];
    int status = run_cellbench("poll --machines 0 2>/dev/null", last, sizeof last);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2, "status %d", status);
}

Test(cellbench, place_places_every_task_and_reports_every_key, .timeout = 120)
{
    json_t *o = run_cellbench_json("place --machines 50 --jobs 20 --tasks 20 --schedulers 1,2 "
                                   "--constrained 50 --json");
    cr_assert_eq(json_integer_value(json_object_get(o, "machines")), 50);
    cr_assert(json_is_true(json_object_get(o, "all_placed")));
    json_t *runs = json_object_get(o, "runs");
    cr_assert(json_is_array(runs) && json_array_size(runs) == 2, "one run per scheduler count");
    static const char *const keys[] = {"placements_per_s", "conflict_fraction", "wait_p50_ms",
                                       "wait_p99_ms",      "elapsed_s",         "txn_conflicted",
                                       "cellstated_cpu_s"};
    for (size_t i = 0; i < 2; i++) {
        json_t *r = json_array_get(runs, i);
        for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
            cr_assert(json_object_get(r, keys[k]) != NULL, "run %zu: key %s is missing", i,
                      keys[k]);
        cr_assert_eq(json_integer_value(json_object_get(r, "schedulers")), (json_int_t)i + 1);
        cr_assert_eq(json_integer_value(json_object_get(r, "tasks")), 400);
        cr_assert_eq(json_integer_value(json_object_get(r, "placed")), 400,
                     "run %zu: every task placed", i);
        cr_assert(json_is_false(json_object_get(r, "timed_out")));
        /* Every scheduler's last report was read, and between them they
         * committed each task exactly once. */
        cr_assert_eq(json_integer_value(json_object_get(r, "reports")), (json_int_t)i + 1);
        cr_assert_eq(json_integer_value(json_object_get(r, "claims_committed")), 400);
        cr_assert(json_is_number(json_object_get(r, "wait_p99_ms")),
                  "run %zu: wait measured", i);
        /* The server's counters over the run: at least the 50 machines'
         * registrations and the 20 jobs' submissions were requests and
         * writes, and the commits were writes too. */
        json_int_t req = json_integer_value(json_object_get(r, "server_requests"));
        json_int_t wr = json_integer_value(json_object_get(r, "server_writes"));
        json_int_t commits = json_integer_value(json_object_get(r, "server_commits"));
        cr_assert(wr >= 50 + 20 + commits && req >= wr, "run %zu: %lld requests, %lld writes, "
                  "%lld commits", i, (long long)req, (long long)wr, (long long)commits);
    }
    json_decref(o);
}

/* On one machine each job's tasks are placed by one commit onto the same
 * machine, so the watcher's compact sync replies carry them as runs of
 * placed tasks as well as single entries (running, as the agent reports
 * them): every task must be counted, once, with a wait. A misread state
 * leaves tasks unplaced until --timeout. */
Test(cellbench, place_watcher_counts_every_task_from_compact_replies, .timeout = 120)
{
    json_t *o = run_cellbench_json("place --machines 1 --simulators 1 --jobs 10 --tasks 50 "
                                   "--schedulers 1 --timeout 60 --json");
    cr_assert(json_is_true(json_object_get(o, "all_placed")));
    json_t *r = json_array_get(json_object_get(o, "runs"), 0);
    cr_assert(r != NULL);
    cr_assert(json_is_false(json_object_get(r, "timed_out")));
    cr_assert_eq(json_integer_value(json_object_get(r, "tasks")), 500);
    cr_assert_eq(json_integer_value(json_object_get(r, "placed")), 500);
    cr_assert_eq(json_integer_value(json_object_get(r, "requeued")), 0,
                 "no machine failed: no task came back");
    double p50 = json_number_value(json_object_get(r, "wait_p50_ms")),
           p99 = json_number_value(json_object_get(r, "wait_p99_ms")),
           max = json_number_value(json_object_get(r, "wait_max_ms")),
           elapsed = json_number_value(json_object_get(r, "elapsed_s"));
    cr_assert(p50 > 0 && p50 <= p99 && p99 <= max, "waits %g %g %g", p50, p99, max);
    /* The last task first seen placed was seen by the reply that ended the run. */
    cr_assert(max <= elapsed * 1000 + 1e-6, "wait max %g ms, elapsed %g s", max, elapsed);
    json_decref(o);
}

/* --replicas 3: the same workload on a replicated cell, the agents at the
 * followers. Every task placed once means the forwarded reports and the
 * followers' polls worked; the replicas' CPU is the three members'. */
Test(cellbench, place_on_three_replicas_places_every_task, .timeout = 180)
{
    /* A low snapshot threshold: snapshots are taken while it places. */
    json_t *o = run_cellbench_json("place --machines 30 --jobs 10 --tasks 20 --schedulers 2 "
                                   "--replicas 3 --snapshot-threshold 64 --json");
    cr_assert_eq(json_integer_value(json_object_get(o, "replicas")), 3);
    cr_assert_eq(json_integer_value(json_object_get(o, "snapshot_threshold")), 64);
    cr_assert_str_eq(json_string_value(json_object_get(o, "agents_at")), "followers");
    cr_assert(json_is_true(json_object_get(o, "all_placed")));
    json_t *r = json_array_get(json_object_get(o, "runs"), 0);
    cr_assert(r != NULL);
    cr_assert_eq(json_integer_value(json_object_get(r, "placed")), 200);
    cr_assert_eq(json_integer_value(json_object_get(r, "claims_committed")), 200,
                 "each task committed exactly once");
    cr_assert_eq(json_integer_value(json_object_get(r, "reports")), 2);
    cr_assert(json_number_value(json_object_get(r, "cellstated_cpu_s")) >= 0);
    json_decref(o);
}

Test(cellbench, place_refuses_bad_replicas)
{
    char last[8192];
    static const char *const bad[] = {"place --replicas 0 2>/dev/null",
                                      "poll --replicas 9 2>/dev/null",
                                      "place --replicas 6 2>/dev/null",
                                      "place --replicas 3 --agents-at anywhere 2>/dev/null"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int status = run_cellbench(bad[i], last, sizeof last);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2, "%s: status %d", bad[i],
                  status);
    }
}

/* cellbench etcd, tiny: one member each side, K 1 and 3. Every
 * transaction commits on both sides (no conflicts by construction), each
 * summary row has both sides' rates and CPU. Skipped where etcd is not
 * installed (tools/deps.sh install bench). */
Test(cellbench, etcd_commits_every_transaction_on_both_sides, .timeout = 180)
{
    json_t *o = run_cellbench_json("etcd --members 1 --k 1,3 --clients 2 --txns 5 --rounds 2 "
                                   "--machines 30 --json");
    if (json_is_true(json_object_get(o, "skipped"))) {
        json_decref(o);
        cr_skip_test("etcd is not installed");
    }
    json_t *runs = json_object_get(o, "runs");
    cr_assert_eq(json_array_size(runs), 8, "2 rounds x 2 K x 2 sides");
    size_t i;
    json_t *r;
    json_array_foreach(runs, i, r)
    {
        cr_assert_eq(json_integer_value(json_object_get(r, "txns")), 10);
        cr_assert_eq(json_integer_value(json_object_get(r, "committed")), 10, "run %zu: %s", i,
                     json_string_value(json_object_get(r, "side")));
        cr_assert(json_number_value(json_object_get(r, "window_s")) > 0);
        cr_assert(json_number_value(json_object_get(r, "client_cpu_s")) >= 0);
    }
    /* The sides alternate who goes first from round to round. */
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(runs, 0), "side")),
                     "cellsched");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(runs, 4), "side")), "etcd");
    json_t *sum = json_object_get(o, "summary");
    cr_assert_eq(json_array_size(sum), 2);
    json_array_foreach(sum, i, r)
    {
        double cs = json_number_value(json_object_get(r, "cellsched_txn_per_s")),
               et = json_number_value(json_object_get(r, "etcd_txn_per_s")),
               ratio = json_number_value(json_object_get(r, "ratio"));
        cr_assert(cs > 0 && et > 0, "rates %g %g", cs, et);
        cr_assert_float_eq(ratio, cs / et, 1e-4 * ratio); /* JSON keeps 6 digits */
        json_int_t k = json_integer_value(json_object_get(r, "k"));
        cr_assert_float_eq(json_number_value(json_object_get(r, "etcd_placements_per_s")), et * k,
                           1e-4 * et * k);
        cr_assert_eq(json_integer_value(json_object_get(r, "etcd_failed")), 0);
    }
    json_decref(o);
}

Test(cellbench, etcd_without_etcd_says_it_skipped)
{
    json_t *o = run_cellbench_json("etcd --etcd /nonexistent/etcd --json");
    cr_assert(json_is_true(json_object_get(o, "skipped")));
    cr_assert(json_is_string(json_object_get(o, "reason")));
    json_decref(o);
    char last[8192];
    int status = run_cellbench("etcd --k 129 2>/dev/null", last, sizeof last);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2, "K above etcd's 128 ops: %d",
              status);
}

Test(cellbench, place_refuses_a_bad_scheduler_list)
{
    char last[8192];
    int status = run_cellbench("place --schedulers 1,,4 2>/dev/null", last, sizeof last);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2, "status %d", status);
    status = run_cellbench("place --schedulers 0 2>/dev/null", last, sizeof last);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2, "status %d", status);
}

/* The schedulers' knobs go to every scheduler started, and the JSON says
 * which were used; --service-scheduler adds a cell-service, whose service
 * jobs (30% of 10) are placed with the batch ones. */
Test(cellbench, place_passes_the_schedulers_knobs_and_runs_a_service_scheduler, .timeout = 120)
{
    json_t *o = run_cellbench_json("place --machines 20 --jobs 10 --tasks 10 --schedulers 1 "
                                   "--conflict coarse --commit gang --t-job 5ms --t-task 1ms "
                                   "--txn-per-job --retry tail --strategy firstfit "
                                   "--service-scheduler --service-pct 30 --timeout 60 --json");
    cr_assert_str_eq(json_string_value(json_object_get(o, "conflict")), "coarse");
    cr_assert_str_eq(json_string_value(json_object_get(o, "commit")), "gang");
    cr_assert_float_eq(json_number_value(json_object_get(o, "t_job_s")), 0.005, 1e-12);
    cr_assert_float_eq(json_number_value(json_object_get(o, "t_task_s")), 0.001, 1e-12);
    cr_assert(json_is_true(json_object_get(o, "txn_per_job")));
    cr_assert_str_eq(json_string_value(json_object_get(o, "retry")), "tail");
    cr_assert_eq(json_integer_value(json_object_get(o, "max_attempts")), 1000);
    cr_assert_str_eq(json_string_value(json_object_get(o, "strategy")), "firstfit");
    cr_assert(json_is_true(json_object_get(o, "service_scheduler")));
    cr_assert_eq(json_integer_value(json_object_get(o, "service_pct")), 30);
    cr_assert(json_is_true(json_object_get(o, "all_placed")), "the service jobs were placed too");
    json_t *r = json_array_get(json_object_get(o, "runs"), 0);
    cr_assert_eq(json_integer_value(json_object_get(r, "reports")), 2, "cell-batch and cell-service");
    cr_assert_eq(json_integer_value(json_object_get(r, "claims_committed")), 100);
    cr_assert_eq(json_integer_value(json_object_get(r, "jobs_abandoned")), 0);
    /* One job per transaction: at least one per job, whatever conflicted. */
    cr_assert_geq(json_integer_value(json_object_get(r, "txn_successful")), 10);
    json_decref(o);
}

Test(cellbench, place_refuses_a_bad_knob_as_the_schedulers_would)
{
    static const char *const bad[] = {"place --conflict medium 2>/dev/null",
                                      "place --commit some 2>/dev/null",
                                      "place --t-job soon 2>/dev/null",
                                      "place --retry sideways 2>/dev/null",
                                      "place --strategy worst 2>/dev/null",
                                      "place --service-pct 20 2>/dev/null"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char last[8192];
        int status = run_cellbench(bad[i], last, sizeof last);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2, "%s: status %d", bad[i], status);
    }
}

/* issue 15 §7: each architecture starts its cell with real processes and
 * places every task: omega's cell-batch, one monolithic or multipath
 * cell-batch for both kinds, or cell-batch and cell-service under the
 * offers of cellstated --concurrency offers. The JSON names the
 * architecture and counts one report per scheduler started. */
Test(cellbench, place_runs_each_architecture, .timeout = 240)
{
    static const struct {
        const char *arch, *extra;
        int reports;
    } runs[] = {
        {"omega", "", 1},
        {"monolithic", "--t-job-service 2ms ", 1},
        {"multipath", "--t-job-service 2ms ", 1},
        {"mesos", "--schedulers 2 --t-job-service 2ms ", 3},
    };
    for (size_t i = 0; i < sizeof runs / sizeof *runs; i++) {
        char args[512];
        snprintf(args, sizeof args,
                 "place --architecture %s %s--machines 20 --simulators 2 --jobs 10 --tasks 10 "
                 "%s--timeout 60 --nosync --json",
                 runs[i].arch, runs[i].extra, strstr(runs[i].extra, "--schedulers") ? "" : "--schedulers 1 ");
        json_t *o = run_cellbench_json(args);
        cr_assert_str_eq(json_string_value(json_object_get(o, "architecture")), runs[i].arch);
        cr_assert(json_is_true(json_object_get(o, "all_placed")), "%s: every task placed",
                  runs[i].arch);
        json_t *r = json_array_get(json_object_get(o, "runs"), 0);
        cr_assert_eq(json_integer_value(json_object_get(r, "claims_committed")), 100, "%s",
                     runs[i].arch);
        cr_assert_eq(json_integer_value(json_object_get(r, "reports")), runs[i].reports,
                     "%s: one report per scheduler", runs[i].arch);
        /* Each scheduler's own figures: the jobs they placed are every job. */
        json_t *sc = json_object_get(r, "scheds");
        cr_assert_eq(json_array_size(sc), (size_t)runs[i].reports, "%s", runs[i].arch);
        json_int_t jobs = 0;
        for (size_t k = 0; k < json_array_size(sc); k++)
            jobs += json_integer_value(json_object_get(json_array_get(sc, k), "jobs_placed"));
        cr_assert_eq(jobs, 10, "%s: every job placed by one of the schedulers", runs[i].arch);
        if (strcmp(runs[i].arch, "omega") != 0)
            cr_assert(json_is_true(json_object_get(o, "service_scheduler")),
                      "%s: service jobs in the mix", runs[i].arch);
        if (strstr(runs[i].extra, "--t-job-service") != NULL)
            cr_assert_float_eq(json_number_value(json_object_get(o, "t_job_service_s")), 0.002,
                               1e-12, "%s", runs[i].arch);
        json_decref(o);
    }
}

Test(cellbench, place_refuses_a_bad_architecture)
{
    static const char *const bad[] = {
        "place --architecture lottery 2>/dev/null",
        "place --architecture monolithic --schedulers 2 2>/dev/null",
        "place --t-job-service 1 2>/dev/null",
        "place --architecture multipath --t-job-service soon 2>/dev/null",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char last[8192];
        int status = run_cellbench(bad[i], last, sizeof last);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2, "%s: status %d", bad[i], status);
    }
}
