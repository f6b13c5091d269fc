/* test_cellsim_replay.c — cellsim replaying the 2011 trace
 * (tools/cellsim_replay.h): a small trace in the exact schema, written
 * here as plain shards (the reader takes .csv as it takes .csv.gz), with
 * heterogeneous machines (one added, one resized and one removed under a
 * running task, one added to take it), a dozen jobs of both kinds whose
 * tasks differ in request and duration, and a task that never ran.
 *
 * The module is checked on a store of the test's own (machines, their
 * capacities and events, each job's time and tasks' durations), the whole
 * run through sim_run (arrivals at trace times, the service/batch split,
 * the lost task placed again, the same bytes twice), and the errors. */
#include <criterion/criterion.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cellstate/arena.h"
#include "cellstate/store.h"
#include "tests/simconf.h"
#include "tests/support.h"
#include "tools/cellsim_conf.h"
#include "tools/cellsim_kernel.h"
#include "tools/cellsim_replay.h"
#include "tools/cellsim_report.h"
#include "txn/commit.h"
#include "txn/ops.h"

#define S(x) ((uint64_t)(x) * 1000000) /* trace seconds in microseconds */
#define NS(x) ((int64_t)(x) * 1000000000) /* simulated seconds in ns */
#define NJOBS 12 /* besides job 2 */

/* One event line and its time: a table is written sorted by time, as the
 * trace is. */
typedef struct line {
    uint64_t t;
    int seq;
    char text[128];
} line;

typedef struct table {
    line v[256];
    int n;
} table;

static void add(table *tb, uint64_t t, const char *fmt, ...)
{
    cr_assert_lt(tb->n, 256);
    line *l = &tb->v[tb->n];
    l->t = t;
    l->seq = tb->n++;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->text, sizeof l->text, fmt, ap);
    va_end(ap);
}

static int by_time(const void *a, const void *b)
{
    const line *x = a, *y = b;
    return x->t != y->t ? (x->t < y->t ? -1 : 1) : x->seq - y->seq;
}

static void put(const char *name, table *tb)
{
    char path[512];
    snprintf(path, sizeof path, "%s/trace/%s", ts_tmp, name);
    cr_assert_eq(mkdir(path, 0755), 0, "%s", path);
    snprintf(path, sizeof path, "%s/trace/%s/part-00000-of-00001.csv", ts_tmp, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    qsort(tb->v, (size_t)tb->n, sizeof *tb->v, by_time);
    for (int i = 0; i < tb->n; i++)
        fprintf(f, "%s\n", tb->v[i].text);
    cr_assert_eq(fclose(f), 0);
}

/* Job i of the dozen: submitted at 630 + 10 i s; service when i % 3 == 0
 * (priority 9, class 3), production class 1 (batch) when i % 3 == 1,
 * priority 0 otherwise; three tasks of 0.01 cpu, task 2 asking 0.02 in
 * even jobs (which are then split); task t lasting 20 + 5 t + i s; task 1
 * of job 4 killed while pending. */
static uint64_t job_submit_s(int i) { return 630 + 10 * (uint64_t)i; }
static bool job_service(int i) { return i % 3 == 0; }
static uint64_t task_s(int i, int t) { return 20 + 5 * (uint64_t)t + (uint64_t)i; }
static bool task_unrun(int i, int t) { return i == 4 && t == 1; }

/* The trace under ts_tmp/trace. Machines (cpu, mem of the largest): 1
 * (0.5, 0.5), 2 (1, 1), 3 (0.25, 0.25) from the start; 4 (0.5, 0.25)
 * added at 700 s; 1 resized to 0.75 cpu at 800 s, 3 down to 0.125 at
 * 850 s; 2 removed at 900 s; 5
 * (1, 1) added at 950 s. Job 2 (service) has one task of 0.8 cpu that
 * only machine 2 can hold until 5 comes, running from 621 s to the end. */
static void write_trace(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/trace", ts_tmp);
    cr_assert_eq(mkdir(path, 0755), 0);
    static table m, j, t;
    memset(&m, 0, sizeof m);
    memset(&j, 0, sizeof j);
    memset(&t, 0, sizeof t);
    add(&m, 0, "0,1,0,pA,0.5,0.5");
    add(&m, 0, "0,2,0,pB,1,1");
    add(&m, 0, "0,3,0,pC,0.25,0.25");
    add(&m, S(700), "%llu,4,0,pA,0.5,0.25", (unsigned long long)S(700));
    add(&m, S(800), "%llu,1,2,,0.75,", (unsigned long long)S(800));
    add(&m, S(850), "%llu,3,2,,0.125,0.125", (unsigned long long)S(850));
    add(&m, S(900), "%llu,2,1,,,", (unsigned long long)S(900));
    add(&m, S(950), "%llu,5,0,pB,1,1", (unsigned long long)S(950));
    add(&j, S(620), "%llu,,2,0,u,3,n,l", (unsigned long long)S(620));
    add(&t, S(620), "%llu,,2,0,,0,u,3,11,0.8,0.1,0,0", (unsigned long long)S(620));
    add(&t, S(621), "%llu,,2,0,2,1,u,3,11,,,,", (unsigned long long)S(621));
    for (int i = 0; i < NJOBS; i++) {
        unsigned long long id = 10 + (unsigned)i, at = S(job_submit_s(i));
        int cls = job_service(i) ? 3 : i % 3 == 1 ? 1 : 0, prio = job_service(i) ? 9 : i % 3 == 1 ? 10 : 0;
        add(&j, at, "%llu,,%llu,0,u,%d,n,l", at, id, cls);
        for (int k = 0; k < 3; k++) {
            double cpu = k == 2 && i % 2 == 0 ? 0.02 : 0.01;
            add(&t, at, "%llu,,%llu,%d,,0,u,%d,%d,%g,0.01,0,0", at, id, k, cls, prio, cpu);
            if (task_unrun(i, k)) {
                add(&t, at + S(2), "%llu,,%llu,%d,,5,u,%d,%d,,,,", at + S(2), id, k, cls, prio);
                continue;
            }
            unsigned long long on = at + S(1), off = on + S(task_s(i, k));
            add(&t, on, "%llu,,%llu,%d,%d,1,u,%d,%d,,,,", on, id, k, 1 + k, cls, prio);
            add(&t, off, "%llu,,%llu,%d,%d,4,u,%d,%d,,,,", off, id, k, 1 + k, cls, prio);
        }
    }
    put("machine_events", &m);
    put("job_events", &j);
    put("task_events", &t);
}

/* The small preset replaying the trace: no prefill, 0.02 days (1,728 s:
 * the window [600 s, 2,328 s)), 1.0 = 4 cores and 8 GiB. */
static sim_conf conf(const char *first, ...)
{
    sim_conf c;
    cs_error err = {0};
    cr_assert_eq(sim_conf_preset("small", &c, &err), CS_OK, "%s", err.msg);
    char trace[512];
    snprintf(trace, sizeof trace, "%s/trace", ts_tmp);
    const char *base[][2] = {{"trace", trace}, {"prefill", "0"}, {"days", "0.02"},
                             {"trace_cpu", "4"}, {"trace_mem", "8"}};
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
        cr_assert_eq(sim_conf_set(&c, base[i][0], base[i][1], &err), CS_OK, "%s", err.msg);
    va_list ap;
    va_start(ap, first);
    ts_sim_conf_set(&c, first, ap);
    va_end(ap);
    return c;
}

TestSuite(cellsim_replay, .init = ts_tmp_setup, .fini = ts_tmp_teardown);

/* Machine `name` in store s: its capacity and state. */
static cs_machine machine(cs_store *s, const char *name, cs_arena *a)
{
    cs_snap *snap;
    cs_error err = {0};
    cr_assert_eq(cs_snap_open(s, &snap, &err), CS_OK, "%s", err.msg);
    cs_machine m;
    cr_assert_eq(cs_snap_machine_by_name(snap, name, a, &m, &err), CS_OK, "%s: %s", name, err.msg);
    cs_snap_close(snap);
    return m;
}

static void cap_is(cs_store *s, const char *name, int64_t cpu, int64_t mem, uint8_t state)
{
    cs_arena a;
    cs_arena_init(&a);
    cs_machine m = machine(s, name, &a);
    cr_assert(m.capacity.cpu == cpu && m.capacity.mem == mem && m.state == state,
              "%s: %lld mc, %lld MiB, state %d; want %lld, %lld, %d", name,
              (long long)m.capacity.cpu, (long long)m.capacity.mem, m.state, (long long)cpu,
              (long long)mem, state);
    cs_arena_free(&a);
}

Test(cellsim_replay, machines_and_their_events_are_the_traces)
{
    write_trace();
    sim_conf c = conf(NULL);
    cs_error err = {0};
    sim_replay *r;
    cr_assert_eq(sim_replay_open(&c, NS(1728), &r, &err), CS_OK, "%s", err.msg);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/store", ts_tmp);
    cr_assert_eq(mkdir(dir, 0755), 0);
    cs_store *s;
    cs_store_opts so = {.nosync = true};
    cr_assert_eq(cs_store_open(dir, &so, &s, &err), CS_OK, "%s", err.msg);
    const cs_res *caps;
    size_t n;
    cr_assert_eq(sim_replay_machines(r, s, &caps, &n, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(n, 3);
    cr_assert(caps[0].cpu == 2000 && caps[0].mem == 4096);
    cr_assert(caps[1].cpu == 4000 && caps[1].mem == 8192);
    cr_assert(caps[2].cpu == 1000 && caps[2].mem == 2048);
    cap_is(s, "g1", 2000, 4096, CS_MACHINE_UP);
    cap_is(s, "g2", 4000, 8192, CS_MACHINE_UP);
    cap_is(s, "g3", 1000, 2048, CS_MACHINE_UP);

    /* The first event is job 2's arrival at 20 s; the machine events come
     * at 100, 200, 250, 300 and 350 s of simulated time. */
    cr_assert_eq(sim_replay_next_ns(r), NS(20));
    cs_id *lost = NULL;
    size_t nlost = 0, cap = 0;
    cr_assert_eq(sim_replay_machine_events(r, s, NS(99), &lost, &nlost, &cap, &err), CS_OK);
    cr_assert_eq(sim_replay_counts_of(r)->machine_adds, 0);
    cr_assert_eq(sim_replay_machine_events(r, s, NS(100), &lost, &nlost, &cap, &err), CS_OK, "%s", err.msg);
    cap_is(s, "g4", 2000, 2048, CS_MACHINE_UP);
    cr_assert_eq(sim_replay_machine_events(r, s, NS(200), &lost, &nlost, &cap, &err), CS_OK, "%s", err.msg);
    cap_is(s, "g1", 3000, 4096, CS_MACHINE_UP);
    /* A task of 800 millicores and 100 MiB on g3 (id 3) and one on g2
     * (id 2): g3 shrinks to 500 millicores and 1 GiB, but keeps room for
     * its task; g2's is lost. */
    cs_job spec = {.name = "held", .kind = CS_JOB_BATCH, .count = 2, .res = {800, 100, 0}, .cmd = "x"};
    cs_id job;
    cr_assert_eq(cs_op_job_submit(s, &spec, &job, NULL, &err), CS_OK, "%s", err.msg);
    cs_txn txn;
    cs_txn_init(&txn, 1, 0, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    cs_txn_result tr;
    cs_txn_result_init(&tr);
    cr_assert_eq(cs_txn_add_claim(&txn, cs_task_id(job, 0), 3, &spec.res, NULL, 0, 0), CS_OK);
    cr_assert_eq(cs_txn_add_claim(&txn, cs_task_id(job, 1), 2, &spec.res, NULL, 0, 0), CS_OK);
    cr_assert_eq(cs_commit(s, &txn, &tr, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(tr.committed, 2);
    cs_txn_free(&txn);
    cs_txn_result_free(&tr);
    cr_assert_eq(sim_replay_machine_events(r, s, NS(250), &lost, &nlost, &cap, &err), CS_OK, "%s", err.msg);
    cap_is(s, "g3", 800, 1024, CS_MACHINE_UP);
    cr_assert_eq(sim_replay_counts_of(r)->updates_raised, 1);
    cr_assert_eq(sim_replay_machine_events(r, s, NS(349), &lost, &nlost, &cap, &err), CS_OK, "%s", err.msg);
    cap_is(s, "g2", 4000, 8192, CS_MACHINE_DOWN);
    cr_assert_eq(nlost, 1);
    cr_assert_eq(lost[0], cs_task_id(job, 1));
    cr_assert_eq(sim_replay_counts_of(r)->tasks_lost, 1);
    cr_assert_eq(sim_replay_machine_events(r, s, NS(350), &lost, &nlost, &cap, &err), CS_OK, "%s", err.msg);
    cap_is(s, "g5", 4000, 8192, CS_MACHINE_UP);
    const sim_replay_counts *k = sim_replay_counts_of(r);
    cr_assert(k->machines_start == 3 && k->machine_adds == 2 && k->machine_updates == 2 &&
              k->machine_removes == 1 && k->updates_raised == 1);
    free(lost);
    cs_store_close(s);
    sim_replay_free(r);
}

Test(cellsim_replay, jobs_arrive_at_their_times_with_their_tasks_durations)
{
    write_trace();
    sim_conf c = conf(NULL);
    cs_error err = {0};
    sim_replay *r;
    cr_assert_eq(sim_replay_open(&c, NS(1728), &r, &err), CS_OK, "%s", err.msg);
    const sim_replay_job *j = sim_replay_next_job(r, NS(20) - 1);
    cr_assert_null(j, "job 2 arrives at 20 s, not before");
    j = sim_replay_next_job(r, NS(20));
    cr_assert_not_null(j);
    cr_assert(strcmp(j->name, "g2") == 0 && j->kind == CS_JOB_SERVICE && j->count == 1);
    cr_assert(j->res.cpu == 3200 && j->res.mem == 819);
    /* Running at the window's end: past the run's. */
    cr_assert_eq(j->task_ns[0], NS(1728));
    for (int i = 0; i < NJOBS; i++) {
        int64_t at = NS(job_submit_s(i) - 600);
        bool split = i % 2 == 0;
        for (int p = 0; p < (split ? 2 : 1); p++) {
            j = sim_replay_next_job(r, at);
            cr_assert_not_null(j, "job %d piece %d", i, p);
            char want[48];
            if (split)
                snprintf(want, sizeof want, "g%d.%d", 10 + i, p);
            else
                snprintf(want, sizeof want, "g%d", 10 + i);
            cr_assert_str_eq(j->name, want);
            cr_assert_eq(j->at_ns, at);
            cr_assert_eq(j->kind, job_service(i) ? CS_JOB_SERVICE : CS_JOB_BATCH, "job %d", i);
            cr_assert_eq(j->res.cpu, p == 1 ? 80 : 40, "%s", want);
            /* Its tasks, in index order, without the one that never ran. */
            uint32_t n = 0;
            int64_t longest = 0;
            for (int t = 0; t < 3; t++) {
                if (task_unrun(i, t) || (split && (t == 2) != (p == 1)))
                    continue;
                cr_assert_lt(n, j->count);
                cr_assert_eq(j->task_ns[n], NS(task_s(i, t)), "%s task %d", want, t);
                longest = NS(task_s(i, t)) > longest ? NS(task_s(i, t)) : longest;
                n++;
            }
            cr_assert_eq(j->count, n, "%s", want);
            cr_assert_eq(j->duration_ns, longest);
        }
    }
    cr_assert_null(sim_replay_next_job(r, INT64_MAX - 1));
    const sim_replay_counts *k = sim_replay_counts_of(r);
    cr_assert(k->trace_jobs == 13 && k->jobs_split == 6 && k->jobs == 19 && k->jobs_service == 7 &&
                  k->tasks == 36 && k->tasks_unrun == 1 && k->jobs_unrun == 0,
              "%llu %llu %llu %llu %llu %llu", (unsigned long long)k->trace_jobs,
              (unsigned long long)k->jobs_split, (unsigned long long)k->jobs,
              (unsigned long long)k->jobs_service, (unsigned long long)k->tasks,
              (unsigned long long)k->tasks_unrun);
    sim_replay_free(r);
}

/* The whole run: every job submitted at its trace time and of its kind;
 * job 2's task lost with machine 2 and placed again on machine 5; every
 * job placed in full. */
Test(cellsim_replay, a_run_replays_the_trace)
{
    write_trace();
    sim_conf c = conf(NULL);
    sim_result res;
    cs_error err = {0};
    cr_assert_eq(sim_run(&c, &res, &err), CS_OK, "%s", err.msg);
    cr_assert(res.replayed);
    cr_assert_eq(res.njobs, 19);
    cr_assert_eq(res.jobs[0].submitted_ns, NS(20));
    cr_assert_eq(res.jobs[0].owner, 0, "job 2 is service");
    size_t x = 1;
    for (int i = 0; i < NJOBS; i++)
        for (int p = 0; p < (i % 2 == 0 ? 2 : 1); p++, x++) {
            cr_assert_eq(res.jobs[x].submitted_ns, NS(job_submit_s(i) - 600), "job %d", i);
            cr_assert_eq(res.jobs[x].owner == 0, job_service(i), "job %d", i);
        }
    for (size_t i = 0; i < res.njobs; i++)
        cr_assert_eq(res.jobs[i].outcome, SIM_JOB_SCHEDULED, "job %zu: %u of %u placed", i,
                     res.jobs[i].placed, res.jobs[i].count);
    cr_assert_geq(res.replay.tasks_lost, 1, "job 2's task was on machine 2");
    cr_assert_eq(res.replay.machine_removes, 1);
    cr_assert_eq(res.trace.jobs_no_tasks, 0);
    sim_result_free(&res);
}

/* The rule's thresholds are settings: with service from priority 10 and
 * class 1, only the production class-1 jobs (priority 10) are service. */
Test(cellsim_replay, the_service_rule_is_a_setting)
{
    write_trace();
    sim_conf c = conf("trace_service_priority=10", "trace_service_class=1", NULL);
    sim_result res;
    cs_error err = {0};
    cr_assert_eq(sim_run(&c, &res, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(res.jobs[0].owner, 0, "job 2 (priority 11, class 3) is still service");
    size_t x = 1;
    for (int i = 0; i < NJOBS; i++)
        for (int p = 0; p < (i % 2 == 0 ? 2 : 1); p++, x++)
            cr_assert_eq(res.jobs[x].owner == 0, i % 3 == 1, "job %d", i);
    cr_assert_eq(res.replay.jobs_service, 1 + 6); /* jobs 1, 7; 4 and 10 split in two */
    sim_result_free(&res);
}

static char *output(const sim_conf *c)
{
    sim_result r;
    cs_error err = {0};
    cr_assert_eq(sim_run(c, &r, &err), CS_OK, "%s", err.msg);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_eq(sim_report_text(c, &r, f, &err), CS_OK, "%s", err.msg);
    sim_replay_report(&r.replay, &r.trace, f);
    cr_assert_eq(sim_report_json(c, &r, f, &err), CS_OK, "%s", err.msg);
    fclose(f);
    sim_result_free(&r);
    return buf;
}

Test(cellsim_replay, the_same_trace_and_settings_give_the_same_bytes)
{
    write_trace();
    sim_conf c = conf("prefill=0.3", NULL);
    char *a = output(&c), *b = output(&c);
    cr_assert_str_eq(a, b);
    cr_assert_not_null(strstr(a, "tasks lost with a removed machine"));
    free(a);
    free(b);
}

static void fails(const sim_conf *c, const char *what)
{
    sim_result res;
    cs_error err = {0};
    cr_assert_eq(sim_run(c, &res, &err), CS_EINVAL, "want an error naming %s", what);
    cr_assert_not_null(strstr(err.msg, what), "%s: want '%s'", err.msg, what);
}

Test(cellsim_replay, a_missing_trace_or_a_bad_window_is_a_clear_error)
{
    write_trace();
    char missing[512];
    snprintf(missing, sizeof missing, "trace=%s/nothing", ts_tmp);
    sim_conf c = conf(missing, NULL);
    fails(&c, "nothing: No such file or directory");
    c = conf("trace_from=900", "trace_to=800", NULL);
    fails(&c, "--trace-to 800 must be after --trace-from 900");
    c = conf("trace_to=5000", NULL);
    fails(&c, "--trace-to 5000 is past the run's end (trace second 2328");
    /* A table missing from the directory: the reader names it. */
    char path[512];
    snprintf(path, sizeof path, "%s/trace/job_events/part-00000-of-00001.csv", ts_tmp);
    cr_assert_eq(remove(path), 0);
    c = conf(NULL);
    fails(&c, "job_events");
}

/* One machine that holds one task at a time; job 1's task runs 100 s in
 * the trace; job 2's (submitted 10 s later, run at once in the trace on a
 * machine the replay leaves out) must wait for it to end. */
static void write_queue(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/trace", ts_tmp);
    cr_assert_eq(mkdir(path, 0755), 0);
    static table m, j, t;
    memset(&m, 0, sizeof m);
    memset(&j, 0, sizeof j);
    memset(&t, 0, sizeof t);
    add(&m, 0, "0,1,0,pA,1,1");
    add(&j, S(600), "600000000,,1,0,u,0,n,l");
    add(&t, S(600), "600000000,,1,0,,0,u,0,0,1,0.5,0,0");
    add(&t, S(601), "601000000,,1,0,1,1,u,0,0,,,,");
    add(&t, S(701), "701000000,,1,0,1,4,u,0,0,,,,");
    add(&j, S(610), "610000000,,2,0,u,0,n,l");
    add(&t, S(610), "610000000,,2,0,,0,u,0,0,1,0.5,0,0");
    add(&t, S(611), "611000000,,2,0,2,1,u,0,0,,,,");
    add(&t, S(621), "621000000,,2,0,2,4,u,0,0,,,,");
    put("machine_events", &m);
    put("job_events", &j);
    put("task_events", &t);
}

/* Job 2's outcome in a run of `secs` simulated seconds. */
static uint8_t second_job(double secs)
{
    char days[64];
    snprintf(days, sizeof days, "days=%.12f", secs / 86400);
    sim_conf c = conf(days, NULL);
    sim_result res;
    cs_error err = {0};
    cr_assert_eq(sim_run(&c, &res, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(res.njobs, 2);
    cr_assert_eq(res.jobs[0].outcome, SIM_JOB_SCHEDULED);
    uint8_t o = res.jobs[1].outcome;
    sim_result_free(&res);
    return o;
}

/* A task holds its machine for its trace duration: job 2 waits until job
 * 1's task has run its 100 s (placed within a decision and an idle second
 * of that), not less. */
Test(cellsim_replay, a_task_holds_its_machine_for_its_trace_duration)
{
    write_queue();
    cr_assert_eq(second_job(99.5), SIM_JOB_WAITING);
    cr_assert_eq(second_job(102), SIM_JOB_SCHEDULED);
}
