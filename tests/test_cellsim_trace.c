/* test_cellsim_trace.c — the cluster-data 2011 trace reader
 * (tools/cellsim_trace.h) on small traces in the exact schema, written
 * here as gzipped (and plain) shards: every field kept, the rules for
 * durations, kinds, the window and the job limit, the counts of what was
 * skipped, and the message for each kind of bad input. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "cellstate/rng.h"
#include "tests/support.h"
#include "tools/cellsim_trace.h"

#define S(x) (UINT64_C(x) * 1000000) /* trace seconds in microseconds */

/* Write `text` as shard idx of `of` of `table` under ts_tmp, gzipped or
 * plain. */
static void put(const char *table, int idx, int of, bool gz, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", ts_tmp, table);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/part-%05d-of-%05d.csv%s", ts_tmp, table, idx, of, gz ? ".gz" : "");
    if (gz) {
        gzFile g = gzopen(path, "wb");
        cr_assert_not_null(g, "%s", path);
        cr_assert_eq(gzwrite(g, text, (unsigned)strlen(text)), (int)strlen(text));
        cr_assert_eq(gzclose(g), Z_OK);
    } else {
        FILE *f = fopen(path, "w");
        cr_assert_not_null(f, "%s", path);
        cr_assert_eq(fwrite(text, 1, strlen(text), f), strlen(text));
        cr_assert_eq(fclose(f), 0);
    }
}

static void drop(const char *table, int idx, int of, bool gz)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s/part-%05d-of-%05d.csv%s", ts_tmp, table, idx, of, gz ? ".gz" : "");
    cr_assert_eq(unlink(path), 0, "%s", path);
}

/* Machine 1 is removed at 700 s and added again at 800 s without its
 * memory (kept from before); machine 2 is updated; machine 3 comes without
 * capacity; machine 9 is removed without ever being added. */
static const char machines[] = "0,1,0,platA,0.5,0.25\n"
                               "0,2,0,platB,1,1\n"
                               "0,3,0,,,\n"
                               "700000000,1,1,,,\n"
                               "800000000,1,0,platA,0.5,\n"
                               "900000000,2,2,,0.5,\n"
                               "950000000,9,1,,,\n";

/* Job 100 was there before the trace began (time 0), 200 is batch, 300 is
 * production class 2 (service), 500 has no class; 400 is only a KILL. */
static const char jobs0[] = "0,,100,0,userA,3,nameA,lnameA\n"
                            "610000000,,200,0,userB,0,nameB,lnameB\n"
                            "620000000,,300,0,u,2,n,l\n"
                            "620000000,1,400,5,u,,n,l\n";
static const char jobs1[] = "635000000,,500,0,u,,n,l\n"
                            "660000000,,200,4,u,0,n,l\n";

/* Job 200's task 0 is evicted at 615 s, submitted again with more memory,
 * and finishes; its task 1 fails. Job 300's task 0 runs past the end; a
 * FINISH of its never-submitted task 1 and a second SCHEDULE of task 0 are
 * skipped. Job 500's task 3 enters on a SCHEDULE (its SUBMIT missing) and
 * has its CPU updated. Job 999 does not exist. */
static const char tasks0[] = "0,,100,0,,0,u,3,10,0.125,0.0625,0.001,1\n"
                             "0,,100,0,5,1,u,3,10,,,,\n"
                             "610000000,,200,0,,0,u,0,0,0.01,0.02,,0\n"
                             "610000000,,200,1,,0,u,0,0,0.01,0.02,,\n"
                             "611000000,,200,0,7,1,u,0,0,,,,\n"
                             "612000000,,200,1,8,1,u,0,0,,,,\n"
                             "615000000,,200,0,7,2,u,0,0,,,,\n"
                             "616000000,,200,0,,0,u,0,0,0.01,0.03,,\n"
                             "618000000,,200,0,9,1,u,0,0,,,,\n";
static const char tasks1[] = "620000000,,300,0,,0,u,2,9,0.5,0.5,,\n"
                             "621000000,,300,0,3,1,u,2,9,,,,\n"
                             "622000000,,300,1,3,4,u,2,9,,,,\n"
                             "625000000,,200,1,8,3,u,0,0,,,,\n"
                             "630000000,,200,0,9,4,u,0,0,,,,\n"
                             "631000000,,999,0,,0,u,0,0,0.1,0.1,,\n"
                             "640000000,2,500,3,4,1,u,1,2,0.2,0.1,,\n"
                             "641000000,,500,3,,7,u,1,2,0.25,,,\n"
                             "642000000,,300,0,,1,u,2,9,,,,\n";

static void write_trace(bool gz)
{
    put("machine_events", 0, 1, gz, machines);
    put("job_events", 0, 2, gz, jobs0);
    put("job_events", 1, 2, gz, jobs1);
    put("task_events", 0, 2, gz, tasks0);
    put("task_events", 1, 2, gz, tasks1);
}

static void read_ok(const cs_trace_opts *o, cs_trace *t)
{
    cs_error err = {0};
    int rc = cs_trace_read(ts_tmp, o, t, &err);
    cr_assert_eq(rc, CS_OK, "%s", err.msg);
}

static const cs_trace_job *job(const cs_trace *t, cs_id id)
{
    for (size_t i = 0; i < t->njobs; i++)
        if (t->jobs[i].id == id)
            return &t->jobs[i];
    cr_assert_fail("job %llu not read", (unsigned long long)id);
    return NULL;
}

/* Every count as expected, the first that differs named. */
static void check_counts(const cs_trace_counts *got, const cs_trace_counts *want)
{
#define CHECK_COUNT(name, text) \
    cr_assert_eq(got->name, want->name, "%s (%s): %llu, want %llu", #name, text, \
                 (unsigned long long)got->name, (unsigned long long)want->name);
    CS_TRACE_COUNTS(CHECK_COUNT)
#undef CHECK_COUNT
}

/* The whole trace: every field the fixture sets, as the header's rules say. */
static void check_whole(const cs_trace *t)
{
    /* The window's end is the last event read (the UNKNOWN machine's REMOVE
     * at 950 s is still an event of the trace). */
    cr_assert_eq(t->from_us, 0);
    cr_assert_eq(t->to_us, S(950));

    cr_assert_eq(t->nmachine_events, 6);
    const cs_trace_machine_event *m = t->machine_events;
    cr_assert(m[0].time_us == S(600) && m[0].machine == 1 && m[0].type == CS_TRACE_MACHINE_ADD);
    cr_assert(m[0].cpu == 0.5 && m[0].mem == 0.25 && m[0].given == (CS_TRACE_GIVEN_CPU | CS_TRACE_GIVEN_MEM));
    cr_assert(m[2].machine == 3 && m[2].cpu == 0 && m[2].mem == 0 && m[2].given == 0);
    cr_assert(m[3].time_us == S(700) && m[3].machine == 1 && m[3].type == CS_TRACE_MACHINE_REMOVE);
    cr_assert(m[4].time_us == S(800) && m[4].type == CS_TRACE_MACHINE_ADD && m[4].cpu == 0.5 &&
              m[4].mem == 0.25 && m[4].given == CS_TRACE_GIVEN_CPU);
    cr_assert(m[5].machine == 2 && m[5].type == CS_TRACE_MACHINE_UPDATE && m[5].cpu == 0.5 && m[5].mem == 1);

    cr_assert_eq(t->njobs, 4);
    cr_assert(t->jobs[0].id == 100 && t->jobs[1].id == 200 && t->jobs[2].id == 300 && t->jobs[3].id == 500,
              "jobs in submission order");

    const cs_trace_job *j = job(t, 100);
    cr_assert(j->submit_us == S(600) && j->flags == CS_TRACE_JOB_BEFORE_START);
    cr_assert(j->sched_class == 3 && j->priority == 10 && j->kind == CS_JOB_SERVICE);
    cr_assert(j->end_event == CS_TRACE_NO_EVENT && j->end_us == 0);
    cr_assert_eq(j->ntasks, 1);
    const cs_trace_task *x = &j->tasks[0];
    cr_assert(x->index == 0 && x->cpu == 0.125 && x->mem == 0.0625 && x->priority == 10);
    cr_assert_eq(x->flags, CS_TRACE_TASK_BEFORE_START | CS_TRACE_TASK_DIFFERENT_MACHINES | CS_TRACE_TASK_CUT);
    cr_assert(x->state == CS_TRACE_RUNNING && x->runs == 1 && x->submit_us == S(600));
    cr_assert(x->start_us == S(600) && x->stop_us == S(950) && x->run_us == S(350));
    cr_assert(x->fate == CS_TRACE_NO_EVENT && x->last_run_end == CS_TRACE_NO_EVENT && x->end_us == 0);
    cr_assert_eq(cs_trace_task_duration_us(x), S(350));

    j = job(t, 200);
    cr_assert(j->submit_us == S(610) && j->flags == 0 && j->sched_class == 0 && j->priority == 0);
    cr_assert(j->kind == CS_JOB_BATCH && j->end_event == CS_TRACE_FINISH && j->end_us == S(660));
    cr_assert_eq(j->ntasks, 2);
    x = &j->tasks[0]; /* evicted after 4 s, resubmitted, ran 12 s more */
    cr_assert(x->index == 0 && x->cpu == 0.01 && x->mem == 0.03 && x->flags == 0);
    cr_assert(x->state == CS_TRACE_ENDED && x->runs == 2 && x->submit_us == S(610));
    cr_assert(x->start_us == S(618) && x->stop_us == S(630) && x->run_us == S(16));
    cr_assert(x->fate == CS_TRACE_FINISH && x->last_run_end == CS_TRACE_FINISH && x->end_us == S(630));
    cr_assert_eq(cs_trace_task_duration_us(x), S(12));
    x = &j->tasks[1];
    cr_assert(x->index == 1 && x->cpu == 0.01 && x->mem == 0.02 && x->flags == 0 && x->runs == 1);
    cr_assert(x->start_us == S(612) && x->stop_us == S(625) && x->fate == CS_TRACE_FAIL && x->end_us == S(625));
    cr_assert_eq(cs_trace_task_duration_us(x), S(13));

    j = job(t, 300);
    cr_assert(j->sched_class == 2 && j->priority == 9 && j->kind == CS_JOB_SERVICE);
    cr_assert_eq(j->ntasks, 1, "the FINISH of a task never submitted adds no task");
    x = &j->tasks[0];
    cr_assert(x->state == CS_TRACE_RUNNING && x->flags == CS_TRACE_TASK_CUT && x->runs == 1);
    cr_assert(x->start_us == S(621) && x->stop_us == S(950));

    j = job(t, 500);
    cr_assert(j->submit_us == S(635) && j->sched_class == -1 && j->priority == 2 && j->kind == CS_JOB_BATCH);
    cr_assert_eq(j->ntasks, 1, "the slots below index 3 are packed away");
    x = &j->tasks[0];
    cr_assert(x->index == 3 && x->cpu == 0.25 && x->mem == 0.1 && x->submit_us == S(640));
    cr_assert_eq(x->flags, CS_TRACE_TASK_NO_SUBMIT | CS_TRACE_TASK_CUT);
    cr_assert(x->start_us == S(640) && x->runs == 1);

    check_counts(&t->counts, &(cs_trace_counts){
                                 .shards = 5,
                                 .lines = 7 + 6 + 18,
                                 .synthesized = 2,
                                 .job_events_other = 1,
                                 .task_events_other = 1,
                                 .task_events_no_task = 1,
                                 .tasks_no_submit = 1,
                                 .task_events_out_of_order = 1,
                                 .machine_events_unknown = 1,
                                 .machines_no_capacity = 2,
                             });
}

TestSuite(cellsim_trace, .init = ts_tmp_setup, .fini = ts_tmp_teardown);

/* The fixture as gzipped or plain shards, read whole and checked. */
static void read_whole(bool gz)
{
    write_trace(gz);
    cs_trace_opts o;
    cs_trace_opts_default(&o);
    cs_trace t;
    read_ok(&o, &t);
    check_whole(&t);
    cs_trace_free(&t);
    cr_assert(t.jobs == NULL && t.njobs == 0 && t.machine_events == NULL);
}

Test(cellsim_trace, reads_every_field_of_a_gzipped_trace) { read_whole(true); }

Test(cellsim_trace, reads_plain_shards_alike) { read_whole(false); }

Test(cellsim_trace, machines_at_a_time)
{
    write_trace(true);
    cs_trace_opts o;
    cs_trace_opts_default(&o);
    cs_trace t;
    read_ok(&o, &t);
    cs_trace_machine *m;
    size_t n;

    cr_assert_eq(cs_trace_machines_at(&t, S(599), &m, &n), CS_OK);
    cr_assert(n == 0 && m == NULL, "nothing before the trace's start");

    cr_assert_eq(cs_trace_machines_at(&t, S(600), &m, &n), CS_OK);
    cr_assert_eq(n, 3);
    cr_assert(m[0].id == 1 && m[0].cpu == 0.5 && m[0].mem == 0.25);
    cr_assert(m[1].id == 2 && m[1].cpu == 1 && m[1].mem == 1);
    cr_assert(m[2].id == 3 && m[2].cpu == 0 && m[2].mem == 0);
    free(m);

    cr_assert_eq(cs_trace_machines_at(&t, S(750), &m, &n), CS_OK);
    cr_assert(n == 2 && m[0].id == 2 && m[1].id == 3, "machine 1 removed at 700 s");
    free(m);

    cr_assert_eq(cs_trace_machines_at(&t, S(900), &m, &n), CS_OK);
    cr_assert_eq(n, 3);
    cr_assert(m[0].id == 1 && m[0].cpu == 0.5 && m[0].mem == 0.25, "re-added, memory kept");
    cr_assert(m[1].id == 2 && m[1].cpu == 0.5 && m[1].mem == 1, "updated at 900 s");
    free(m);
    cs_trace_free(&t);
}

Test(cellsim_trace, service_is_production_of_class_2_or_3_and_the_rule_is_an_option)
{
    cs_trace_opts o;
    cs_trace_opts_default(&o);
    cr_assert_eq(o.service_min_priority, 9);
    cr_assert_eq(o.service_min_class, 2);
    cr_assert_eq(cs_trace_job_kind(&o, 9, 2), CS_JOB_SERVICE);
    cr_assert_eq(cs_trace_job_kind(&o, 11, 3), CS_JOB_SERVICE);
    cr_assert_eq(cs_trace_job_kind(&o, 8, 3), CS_JOB_BATCH, "not production");
    cr_assert_eq(cs_trace_job_kind(&o, 10, 1), CS_JOB_BATCH, "production but not latency-sensitive");
    cr_assert_eq(cs_trace_job_kind(&o, 10, -1), CS_JOB_BATCH, "unknown class reads as 0");
    cr_assert_eq(cs_trace_job_kind(&o, -1, 3), CS_JOB_BATCH, "no task");
    o.service_min_class = 0; /* priority alone */
    cr_assert_eq(cs_trace_job_kind(&o, 10, -1), CS_JOB_SERVICE);
    cr_assert_eq(cs_trace_job_kind(&o, 8, 3), CS_JOB_BATCH);

    /* Read with "class 3 alone": job 100 (class 3, priority 10) stays
     * service, job 300 (class 2) becomes batch. */
    write_trace(true);
    cs_trace_opts_default(&o);
    o.service_min_priority = 0;
    o.service_min_class = 3;
    cs_trace t;
    read_ok(&o, &t);
    cr_assert_eq(job(&t, 100)->kind, CS_JOB_SERVICE);
    cr_assert_eq(job(&t, 300)->kind, CS_JOB_BATCH);
    cr_assert_eq(job(&t, 200)->kind, CS_JOB_BATCH);
    cs_trace_free(&t);
}

Test(cellsim_trace, a_window_keeps_the_jobs_submitted_in_it_and_cuts_the_running_tasks)
{
    write_trace(true);
    cs_trace_opts o;
    cs_trace_opts_default(&o);
    o.from_s = 615;
    o.to_s = 640;
    cs_trace t;
    read_ok(&o, &t);
    cr_assert(t.from_us == S(615) && t.to_us == S(640));
    cr_assert_eq(t.njobs, 2);
    cr_assert(t.jobs[0].id == 300 && t.jobs[1].id == 500);
    const cs_trace_task *x = &t.jobs[0].tasks[0];
    cr_assert(x->state == CS_TRACE_RUNNING && x->flags == CS_TRACE_TASK_CUT);
    cr_assert(x->start_us == S(621) && x->stop_us == S(640) && x->run_us == S(19));
    cr_assert_eq(t.jobs[1].ntasks, 0, "job 500's first task event is at 640 s, the window's end");
    /* After the window: job 200's FINISH at 660 s, the task events at 640,
     * 641 and 642 s, the machine events at 700 to 950 s. Job 100's and
     * 200's task events are of jobs not kept, as are job 400's KILL and
     * job 999's SUBMIT. */
    check_counts(&t.counts, &(cs_trace_counts){
                                .shards = 5,
                                .lines = 7 + 6 + 18,
                                .after_window = 1 + 3 + 4,
                                .synthesized = 1,
                                .jobs_before_window = 2,
                                .job_events_other = 1,
                                .task_events_other = 9 + 2 + 1,
                                .task_events_no_task = 1,
                                .machines_no_capacity = 1,
                                .jobs_no_tasks = 1,
                            });
    /* The machines before `from` are kept, for the set at the start. */
    cr_assert_eq(t.nmachine_events, 3);
    cs_trace_free(&t);
}

Test(cellsim_trace, no_shard_past_the_window_is_opened)
{
    write_trace(true);
    /* A later shard missing does not matter when the window ends before
     * it: both tables reach 615 s in their first shard. */
    drop("task_events", 1, 2, true);
    drop("job_events", 1, 2, true);
    cs_trace_opts o;
    cs_trace_opts_default(&o);
    o.to_s = 615;
    cs_trace t;
    read_ok(&o, &t);
    cr_assert_eq(t.counts.shards, 3);
    cr_assert_eq(t.njobs, 2);
    cr_assert(t.jobs[0].id == 100 && t.jobs[1].id == 200);
    cs_trace_free(&t);

    cs_trace_opts_default(&o);
    cs_error err = {0};
    cr_assert_eq(cs_trace_read(ts_tmp, &o, &t, &err), CS_EINVAL);
    cr_assert_str_eq(err.msg, "job_events/part-00001-of-00002.csv.gz: missing (shard 1 of 2)");
    cr_assert(t.jobs == NULL && t.njobs == 0, "nothing left after an error");
}

/* An event "after the end of the trace" (2^63-1) is not applied, and it
 * does not end the reading: the shards after it are still read. */
Test(cellsim_trace, an_event_after_the_end_does_not_stop_the_reading)
{
    write_trace(true);
    char text[sizeof tasks0 + 64];
    snprintf(text, sizeof text, "%s9223372036854775807,,200,1,,4,u,0,0,,,,\n", tasks0);
    put("task_events", 0, 2, true, text);
    cs_trace_opts o;
    cs_trace_opts_default(&o);
    o.to_s = 700;
    cs_trace t;
    read_ok(&o, &t);
    cr_assert_eq(t.to_us, S(700));
    cr_assert_eq(t.counts.shards, 5);
    /* The late FINISH, and the machine events at 700 s and after. */
    cr_assert_eq(t.counts.after_window, 1 + 4);
    const cs_trace_task *x = &job(&t, 200)->tasks[1];
    cr_assert(x->fate == CS_TRACE_FAIL && x->end_us == S(625), "the FAIL in shard 1 was read");
    x = &job(&t, 300)->tasks[0];
    cr_assert(x->flags == CS_TRACE_TASK_CUT && x->stop_us == S(700));
    cs_trace_free(&t);
}

Test(cellsim_trace, the_job_limit_keeps_the_first_jobs)
{
    write_trace(true);
    cs_trace_opts o;
    cs_trace_opts_default(&o);
    o.job_limit = 2;
    cs_trace t;
    read_ok(&o, &t);
    cr_assert_eq(t.njobs, 2);
    cr_assert(t.jobs[0].id == 100 && t.jobs[1].id == 200);
    cr_assert_eq(t.jobs[1].ntasks, 2);
    cr_assert_eq(t.counts.jobs_over_limit, 2);
    /* Jobs 300 and 500's task events (4 of 300, 2 of 500) and job 999's. */
    cr_assert_eq(t.counts.task_events_other, 4 + 2 + 1);
    cs_trace_free(&t);
}

/* The error for one bad line in an otherwise good trace. */
static void expect_error(const char *table, const char *text, int rc, const char *msg)
{
    write_trace(true);
    put(table, 0, table[0] == 'm' ? 1 : 2, true, text);
    cs_trace_opts o;
    cs_trace_opts_default(&o);
    cs_trace t;
    cs_error err = {0};
    cr_assert_eq(cs_trace_read(ts_tmp, &o, &t, &err), rc, "%s", err.msg);
    cr_assert_str_eq(err.msg, msg);
    cr_assert(t.jobs == NULL && t.machine_events == NULL);
}

/* One bad line each (in shard 0 of its table, the rest of the trace
 * good): the message names the shard, the line and the column. */
static const struct bad_line {
    const char *table, *text, *msg;
} bad_lines[] = {
    {"task_events", "610000000,,200,0,,0,u,0,0,0.01,0.02,,0\n610000000,,200,1,,0,u,0\n",
     "task_events/part-00000-of-00002.csv.gz: line 2, column 9 (priority): missing (the line has 8 of 13 columns)"},
    {"machine_events", "0,1,0,p,1,1\n\n",
     "machine_events/part-00000-of-00001.csv.gz: line 2, column 2 (machine ID): missing (the line has 1 of 6 "
     "columns)"},
    {"machine_events", "0,1,0,platA,0.5,0.25,7\n",
     "machine_events/part-00000-of-00001.csv.gz: line 1, column 7: one column too many (machine_events has 6)"},
    {"task_events", "610000000,,200,0,,0,u,0,0,abc,0.02,,0\n",
     "task_events/part-00000-of-00002.csv.gz: line 1, column 10 (CPU request): \"abc\" is not a non-negative "
     "number"},
    {"task_events", "610000000,,200,0,,0,u,0,0,nan,0.02,,0\n",
     "task_events/part-00000-of-00002.csv.gz: line 1, column 10 (CPU request): \"nan\" is not a non-negative "
     "number"},
    {"job_events", "0,,100,0,u,3,n,l\n-5,,200,0,u,0,n,l\n",
     "job_events/part-00000-of-00002.csv.gz: line 2, column 1 (time): \"-5\" is not an unsigned integer"},
    {"machine_events", "0,1,0,p,0.5,1e999\n",
     "machine_events/part-00000-of-00001.csv.gz: line 1, column 6 (memory): \"1e999\" is out of range"},
    {"job_events", "0,,100,9,u,3,n,l\n",
     "job_events/part-00000-of-00002.csv.gz: line 1, column 4 (event type): \"9\" is above 8"},
    {"task_events", "610000000,,200,0,,0,u,0,12,0.01,0.02,,0\n",
     "task_events/part-00000-of-00002.csv.gz: line 1, column 9 (priority): \"12\" is above 11"},
    {"task_events", "610000000,3,200,0,,0,u,0,0,0.01,0.02,,0\n",
     "task_events/part-00000-of-00002.csv.gz: line 1, column 2 (missing info): \"3\" is above 2"},
    {"task_events", "610000000,,200,1048576,,0,u,0,0,0.01,0.02,,0\n",
     "task_events/part-00000-of-00002.csv.gz: line 1, column 4 (task index): \"1048576\" is above 1048575"},
    {"job_events", "99999999999999999999,,100,0,u,3,n,l\n",
     "job_events/part-00000-of-00002.csv.gz: line 1, column 1 (time): \"99999999999999999999\" is above "
     "9223372036854775807"},
    {"task_events", "610000000,,200,0,,0,u,0,0,0.01,0.02,,2\n",
     "task_events/part-00000-of-00002.csv.gz: line 1, column 13 (different-machines restriction): \"2\" is "
     "above 1"},
    {"job_events", "0,,,0,u,3,n,l\n",
     "job_events/part-00000-of-00002.csv.gz: line 1, column 3 (job ID): empty, and the schema requires it"},
    {"machine_events", "0,,0,p,1,1\n",
     "machine_events/part-00000-of-00001.csv.gz: line 1, column 2 (machine ID): empty, and the schema requires "
     "it"},
};

Test(cellsim_trace, each_bad_line_is_named_by_shard_line_and_column)
{
    for (size_t i = 0; i < sizeof bad_lines / sizeof bad_lines[0]; i++)
        expect_error(bad_lines[i].table, bad_lines[i].text, CS_EINVAL, bad_lines[i].msg);
}

Test(cellsim_trace, a_line_too_long_is_refused)
{
    char *text = malloc(6000);
    cr_assert_not_null(text);
    memset(text, '1', 5000);
    strcpy(text + 5000, ",1,0,p,1,1\n");
    expect_error("machine_events", text, CS_EINVAL,
                 "machine_events/part-00000-of-00001.csv.gz: line 1: longer than 4096 bytes");
    free(text);
}

Test(cellsim_trace, a_truncated_gzip_shard_is_an_error_naming_it)
{
    write_trace(true);
    /* Half of a gzip stream of many lines: zlib reports the early end. */
    char big[64 * 1024];
    size_t n = 0;
    for (int i = 0; n + 64 < sizeof big; i++)
        n += (size_t)snprintf(big + n, sizeof big - n, "%d,,100,0,,8,u,3,10,0.125,0.0625,,\n", 600000000 + i);
    put("task_events", 1, 2, true, big);
    char path[512];
    snprintf(path, sizeof path, "%s/task_events/part-00001-of-00002.csv.gz", ts_tmp);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(truncate(path, st.st_size / 2), 0);
    cs_trace_opts o;
    cs_trace_opts_default(&o);
    cs_trace t;
    cs_error err = {0};
    cr_assert_eq(cs_trace_read(ts_tmp, &o, &t, &err), CS_EIO, "%s", err.msg);
    cr_assert(strncmp(err.msg, "task_events/part-00001-of-00002.csv.gz: after line ", 51) == 0, "%s", err.msg);
    cr_assert(strstr(err.msg, "unexpected end of file") != NULL, "%s", err.msg);
}

Test(cellsim_trace, folders_and_shard_names_are_checked)
{
    cs_trace_opts o;
    cs_trace_opts_default(&o);
    cs_trace t;
    cs_error err = {0};
    cr_assert_eq(cs_trace_read(ts_tmp, &o, &t, &err), CS_EIO);
    cr_assert_str_eq(err.msg, "machine_events: cannot open the folder: No such file or directory");

    write_trace(true);
    put("job_events", 1, 3, true, jobs1);
    cr_assert_eq(cs_trace_read(ts_tmp, &o, &t, &err), CS_EINVAL);
    cr_assert(strstr(err.msg, "job_events/part-0000") != NULL && strstr(err.msg, "shards, another file says") != NULL,
              "%s", err.msg);
    drop("job_events", 1, 3, true);

    put("job_events", 1, 2, false, jobs1);
    cr_assert_eq(cs_trace_read(ts_tmp, &o, &t, &err), CS_EINVAL);
    cr_assert(strstr(err.msg, "job_events: shard 1 twice: part-00001-of-00002.csv") != NULL, "%s", err.msg);
    drop("job_events", 1, 2, false);

    put("job_events", 2, 2, true, jobs1);
    cr_assert_eq(cs_trace_read(ts_tmp, &o, &t, &err), CS_EINVAL);
    cr_assert_str_eq(err.msg, "job_events/part-00002-of-00002.csv.gz: not a shard name (part-N-of-M, N < M <= 100000)");
    drop("job_events", 2, 2, true);

    drop("task_events", 0, 2, true);
    drop("task_events", 1, 2, true);
    cr_assert_eq(cs_trace_read(ts_tmp, &o, &t, &err), CS_EINVAL);
    cr_assert_str_eq(err.msg, "task_events: no shards (part-N-of-M.csv.gz)");

    o.from_s = 700;
    o.to_s = 700;
    cr_assert_eq(cs_trace_read(ts_tmp, &o, &t, &err), CS_EINVAL);
    cr_assert_str_eq(err.msg, "trace window: `to` (700 s) must be after `from` (700 s)");
}

Test(cellsim_trace, a_job_resubmitted_and_tasks_out_of_order_are_counted)
{
    put("machine_events", 0, 1, true, "0,1,0,p,1,1\n0,1,0,p,0.5,\n");
    put("job_events", 0, 1, true, "610000000,,1,0,u,1,n,l\n611000000,,1,0,u,1,n,l\n");
    /* SUBMIT twice while pending, an end twice, a resubmission after a
     * KILL while pending (no run: the run fields stay empty). */
    put("task_events", 0, 1, true,
        "610000000,,1,0,,0,u,1,4,0.1,0.1,,\n"
        "610500000,,1,0,,0,u,1,4,0.1,0.1,,\n"
        "611000000,,1,0,,5,u,1,4,,,,\n"
        "612000000,,1,0,,5,u,1,4,,,,\n"
        "613000000,,1,0,,0,u,1,4,0.1,,,\n");
    cs_trace_opts o;
    cs_trace_opts_default(&o);
    cs_trace t;
    read_ok(&o, &t);
    cr_assert_eq(t.counts.jobs_resubmitted, 1);
    cr_assert_eq(t.counts.task_events_out_of_order, 2);
    cr_assert_eq(t.counts.machine_events_readded, 1);
    cr_assert_eq(t.counts.machines_no_capacity, 1);
    cr_assert_eq(t.machine_events[1].cpu, 0.5);
    cr_assert_eq(t.machine_events[1].mem, 1, "the re-ADD keeps the memory it lacks");
    const cs_trace_task *x = &t.jobs[0].tasks[0];
    cr_assert(x->state == CS_TRACE_PENDING && x->runs == 0 && x->fate == CS_TRACE_NO_EVENT);
    cr_assert(x->start_us == 0 && x->stop_us == 0 && x->run_us == 0 && cs_trace_task_duration_us(x) == 0);
    cs_trace_free(&t);
}

Test(cellsim_trace, a_task_without_a_full_request_is_flagged)
{
    put("machine_events", 0, 1, true, "0,1,0,p,1,1\n");
    put("job_events", 0, 1, true, "610000000,,1,0,u,1,n,l\n");
    put("task_events", 0, 1, true, "610000000,,1,0,,0,u,1,4,0.1,,,\n610000000,,1,1,,0,u,1,4,,,,\n");
    cs_trace_opts o;
    cs_trace_opts_default(&o);
    cs_trace t;
    read_ok(&o, &t);
    cr_assert_eq(t.jobs[0].ntasks, 2);
    cr_assert(t.jobs[0].tasks[0].flags & CS_TRACE_TASK_NO_REQUEST);
    cr_assert_eq(t.jobs[0].tasks[0].cpu, 0.1);
    cr_assert(t.jobs[0].tasks[1].flags & CS_TRACE_TASK_NO_REQUEST);
    /* Pending at the end: no fate, not cut. */
    cr_assert(!(t.jobs[0].tasks[1].flags & CS_TRACE_TASK_CUT));
    cs_trace_free(&t);
}

Test(cellsim_trace, the_report_prints_every_count)
{
    write_trace(true);
    cs_trace_opts o;
    cs_trace_opts_default(&o);
    o.job_limit = 2;
    cs_trace t;
    read_ok(&o, &t);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    cs_trace_report(&t, f);
    fclose(f);
    cr_assert(strstr(buf, "           2  jobs beyond the job limit (dropped)\n") != NULL, "%s", buf);
    cr_assert(strstr(buf, "           5  shards read\n") != NULL, "%s", buf);
    int lines = 0;
    for (char *p = buf; *p; p++)
        lines += *p == '\n';
    cr_assert_eq(lines, 16);
    free(buf);
    cs_trace_free(&t);
}

Test(cellsim_trace, event_names_follow_the_schema)
{
    static const char *const want[] = {"SUBMIT", "SCHEDULE", "EVICT", "FAIL", "FINISH",
                                       "KILL", "LOST", "UPDATE_PENDING", "UPDATE_RUNNING"};
    for (uint8_t i = 0; i < CS_TRACE_EVENT_COUNT; i++)
        cr_assert_str_eq(cs_trace_event_name(i), want[i]);
    cr_assert_str_eq(cs_trace_event_name(CS_TRACE_NO_EVENT), "NONE");
    cr_assert_str_eq(cs_trace_event_name(9), "?");
    cr_assert_str_eq(cs_trace_machine_event_name(CS_TRACE_MACHINE_ADD), "ADD");
    cr_assert_str_eq(cs_trace_machine_event_name(CS_TRACE_MACHINE_REMOVE), "REMOVE");
    cr_assert_str_eq(cs_trace_machine_event_name(CS_TRACE_MACHINE_UPDATE), "UPDATE");
    cr_assert_str_eq(cs_trace_machine_event_name(3), "?");
}

Test(cellsim_trace, converts_to_cellsched_units)
{
    cs_trace_scale s = {.cpu_millicores = 32000, .mem_mib = 65536};
    cs_res r;
    cs_error err = {0};
    cr_assert_eq(cs_trace_res(&s, 0.5, 0.25, &r, &err), CS_OK);
    cr_assert(r.cpu == 16000 && r.mem == 16384 && r.disk == 0);
    cr_assert_eq(cs_trace_res(&s, 0.03125, 1.0, &r, &err), CS_OK);
    cr_assert(r.cpu == 1000 && r.mem == 65536);
    cr_assert_eq(cs_trace_res(&s, 0.0000001, 0, &r, &err), CS_OK);
    cr_assert(r.cpu == 1 && r.mem == 0, "a tiny request is 1, none is 0");
    cr_assert_eq(cs_trace_res(&s, 0.00004, 0, &r, &err), CS_OK);
    cr_assert_eq(r.cpu, 1, "1.28 millicores rounds to 1");
    cr_assert_eq(cs_trace_res(&s, 0.00005, 0, &r, &err), CS_OK);
    cr_assert_eq(r.cpu, 2, "1.6 millicores rounds to 2");

    cr_assert_eq(cs_trace_res(&s, -0.1, 0, &r, &err), CS_EINVAL);
    cr_assert_str_eq(err.msg, "trace cpu -0.1: not a non-negative number");
    cr_assert_eq(cs_trace_res(&s, 0, NAN, &r, &err), CS_EINVAL);
    cr_assert_str_eq(err.msg, "trace memory nan: not a non-negative number");
    cr_assert_eq(cs_trace_res(&s, 1e12, 0, &r, &err), CS_EINVAL);
    cr_assert_str_eq(err.msg, "trace cpu 1e+12: above cellsched's limit once scaled");
    s.mem_mib = 0;
    cr_assert_eq(cs_trace_res(&s, 0.5, 0.5, &r, &err), CS_EINVAL);
    cr_assert_str_eq(err.msg, "trace scale: 1.0 must be 1..1099511627776 millicores and MiB");
}

/* Damaged task events (bytes replaced by digits, commas, signs, letters or
 * newlines; lines cut short), fixed seed: every read either succeeds or
 * fails with CS_EINVAL naming the shard and a line, and never crashes,
 * leaks or reads out of bounds (the suite runs under ASan and UBSan). */
Test(cellsim_trace, damaged_lines_are_refused_or_read_never_crash)
{
    static const char junk[] = "0123456789,,,-.e\nxZ ";
    uint64_t seed = 15;
    write_trace(true);
    cs_trace_opts o;
    cs_trace_opts_default(&o);
    int refused = 0;
    for (int round = 0; round < 300; round++) {
        char text[sizeof tasks1];
        memcpy(text, tasks1, sizeof tasks1);
        size_t len = sizeof tasks1 - 1;
        for (uint32_t k = 1 + cs_rng_below(&seed, 3); k > 0; k--)
            text[cs_rng_below(&seed, (uint32_t)len)] = junk[cs_rng_below(&seed, sizeof junk - 1)];
        if (cs_rng_below(&seed, 4) == 0)
            text[len = cs_rng_below(&seed, (uint32_t)len)] = '\0';
        put("task_events", 1, 2, true, text);
        cs_trace t;
        cs_error err = {0};
        int rc = cs_trace_read(ts_tmp, &o, &t, &err);
        if (rc == CS_OK) {
            cs_trace_free(&t);
            continue;
        }
        refused++;
        cr_assert_eq(rc, CS_EINVAL, "round %d: %s", round, err.msg);
        cr_assert(strncmp(err.msg, "task_events/part-00001-of-00002.csv.gz: line ", 45) == 0, "round %d: %s", round,
                  err.msg);
    }
    /* Most damage is caught; some (a digit for a digit) is still a valid
     * trace. */
    cr_assert(refused > 150 && refused < 300, "%d of 300 refused", refused);
}
