/* test_cellctl.c — integration: the built cellctl binary against a real
 * cellstated on 127.0.0.1 (tests/support.h ts_daemon). Machines are
 * registered and tasks placed through the client, as agents and schedulers
 * would; everything else goes through cellctl's command line, and its JSON
 * output is parsed with jansson and checked value by value. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proto/client.h"
#include "proto/proto.h"
#include "schedulers/backoff.h"
#include "tests/support.h"
#include "txn/txn.h"

/* ---- running cellctl ------------------------------------------------------------- */

typedef struct run {
    int status; /* exit status, or -1 if it did not exit normally */
    char *out, *err;
} run;

/* Run cellctl with --server URL (unless url is NULL) and args[0..n);
 * stdout and stderr are captured in files of the daemon's directory. */
static void cellctl_argv(const ts_daemon *d, const char *url, run *r, const char **args, int n)
{
    char bin[256];
    ts_bin("cellctl", bin, sizeof bin);
    char *argv[40];
    int argc = 0;
    argv[argc++] = bin;
    if (url) {
        argv[argc++] = (char *)"--server";
        argv[argc++] = (char *)url;
    }
    for (int i = 0; i < n && argc < 39; i++)
        argv[argc++] = (char *)args[i];
    argv[argc] = NULL;
    r->status = ts_run_argv(argv, d->dir, &r->out, &r->err);
}

/* The NULL-terminated arguments after `r`, plus `extra` (NULL-terminated)
 * at the end. */
static int collect(va_list ap, const char **args, const char *const *extra)
{
    int n = 0;
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && n < 30)
        args[n++] = a;
    for (; extra && *extra; extra++)
        args[n++] = *extra;
    return n;
}

static void cellctl(const ts_daemon *d, run *r, ...)
{
    const char *args[32];
    va_list ap;
    va_start(ap, r);
    int n = collect(ap, args, NULL);
    va_end(ap);
    cellctl_argv(d, d->url, r, args, n);
}

static void run_free(run *r)
{
    free(r->out);
    free(r->err);
}

/* Run and expect exit status 0. */
static void ok(const ts_daemon *d, run *r, ...)
{
    const char *args[32];
    va_list ap;
    va_start(ap, r);
    int n = collect(ap, args, NULL);
    va_end(ap);
    cellctl_argv(d, d->url, r, args, n);
    cr_assert_eq(r->status, 0, "cellctl failed (%d): %s%s", r->status, r->out, r->err);
}

static json_t *parse_json(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    cr_assert(j != NULL, "not JSON (%s): %s", je.text, text);
    return j;
}

/* Run with -o json, expect success, and parse stdout. */
static json_t *ok_json(const ts_daemon *d, ...)
{
    static const char *const json_out[] = {"-o", "json", NULL};
    const char *args[32];
    va_list ap;
    va_start(ap, d);
    int n = collect(ap, args, json_out);
    va_end(ap);
    run r;
    cellctl_argv(d, d->url, &r, args, n);
    cr_assert_eq(r.status, 0, "cellctl failed (%d): %s%s", r.status, r.out, r.err);
    json_t *j = parse_json(r.out);
    run_free(&r);
    return j;
}

static json_t *find_by(json_t *arr, const char *key, const char *value)
{
    size_t i;
    json_t *e;
    json_array_foreach (arr, i, e) {
        const char *s = json_string_value(json_object_get(e, key));
        if (s && strcmp(s, value) == 0)
            return e;
    }
    return NULL;
}

static double num(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    cr_assert(json_is_number(v), "'%s' is not a number", key);
    return json_number_value(v);
}

/* ---- the cell, as agents and schedulers make it ----------------------------------- */

static void call(ts_daemon *d, uint32_t type, msgpack_sbuffer *b, cs_msg *r)
{
    cs_error err = {0};
    cr_assert_eq(cs_client_callb(d->c, type, b, r, &err), CS_OK, "%s", err.msg);
    msgpack_sbuffer_destroy(b);
}

/* A machine of 4 cores, 4096 MiB, 10000 MiB disk, ports 31000-31099. */
static cs_id add_machine(ts_daemon *d, const char *name)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    ts_pack_machine(&pk, name, 1);
    cs_pack_str(&pk, "attrs");
    msgpack_pack_map(&pk, 1);
    cs_pack_kv_str(&pk, "rack", "r1");
    cs_msg r;
    call(d, CS_MSG_MACHINE_REGISTER, &b, &r);
    return ts_reply_u64(&r.body, "id");
}

/* Commit one transaction: a claim of `task` on `m` (one port when
 * port != 0), or a release of it to `release_to`. */
static void commit(ts_daemon *d, uint64_t req, cs_id task, cs_id m, const cs_res *res,
                   uint16_t port, int release_to)
{
    cs_txn t;
    cs_txn_init(&t, 9, req, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    if (release_to >= 0)
        cs_txn_add_release(&t, task, (uint8_t)release_to, 1);
    else
        cs_txn_add_claim(&t, task, m, res, port ? &port : NULL, port ? 1 : 0, 0);
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    cs_txn_encode(&t, &b);
    cs_msg r;
    call(d, CS_MSG_COMMIT, &b, &r);
    cr_assert_eq(ts_reply_u64(&r.body, "conflicts"), 0);
    cs_txn_free(&t);
}

static void report_failed(ts_daemon *d, cs_id task, const char *reason)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 5);
    cs_pack_kv_u64(&pk, "task", task);
    cs_pack_kv_u64(&pk, "attempt", 1);
    cs_pack_kv_str(&pk, "state", "failed");
    cs_pack_kv_i64(&pk, "exit_code", 1);
    cs_pack_kv_str(&pk, "reason", reason);
    cs_msg r;
    call(d, CS_MSG_TASK_STATUS, &b, &r);
}

/* An agent's running report, with a health when `health` is not NULL. */
static void report_running(ts_daemon *d, cs_id task, const char *health)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, health ? 4 : 3);
    cs_pack_kv_u64(&pk, "task", task);
    cs_pack_kv_u64(&pk, "attempt", 1);
    cs_pack_kv_str(&pk, "state", "running");
    if (health)
        cs_pack_kv_str(&pk, "health", health);
    cs_msg r;
    call(d, CS_MSG_TASK_STATUS, &b, &r);
}


static void write_file(const ts_daemon *d, const char *name, const char *text, char *path,
                       size_t size)
{
    snprintf(path, size, "%s/%s", d->dir, name);
    FILE *f = fopen(path, "w");
    cr_assert(f != NULL);
    fputs(text, f);
    fclose(f);
}

/* `cellctl submit FILE`, then the id of job `name` from `get jobs`. */
static cs_id submit_file(const ts_daemon *d, const char *file, const char *name)
{
    run r;
    ok(d, &r, "submit", file, NULL);
    run_free(&r);
    json_t *jobs = ok_json(d, "get", "jobs", NULL);
    json_t *j = find_by(jobs, "name", name);
    cr_assert(j != NULL, "job %s is not listed", name);
    cs_id id = (cs_id)num(j, "id");
    json_decref(jobs);
    return id;
}

static ts_daemon daemon_;

static void setup(void)
{
    ts_daemon_setup(&daemon_, NULL, NULL);
}

static void teardown(void)
{
    ts_daemon_teardown(&daemon_);
}

TestSuite(cellctl, .init = setup, .fini = teardown, .timeout = 120);

/* ---- tests ---------------------------------------------------------------------------- */

Test(cellctl, submit_get_describe)
{
    ts_daemon *d = &daemon_;
    cs_id m1 = add_machine(d, "m1");
    add_machine(d, "m2");
    run r;
    ok(d, &r, "submit", "examples/web.json", NULL);
    cr_assert(strstr(r.out, "job web submitted") != NULL, "%s", r.out);
    cr_assert_str_eq(r.err, "", "a native example warns about nothing");
    run_free(&r);

    /* A scheduler places task 0 on m1. */
    json_t *jobs = ok_json(d, "get", "jobs", NULL);
    json_t *web = find_by(jobs, "name", "web");
    cr_assert(web != NULL);
    cs_id job = (cs_id)num(web, "id");
    cr_assert_str_eq(json_string_value(json_object_get(web, "kind")), "service");
    cr_assert_eq(num(web, "count"), 3);
    cr_assert_float_eq(num(json_object_get(web, "resources"), "cpu"), 0.25, 1e-9, "cpu in cores");
    cr_assert_eq(num(json_object_get(web, "resources"), "mem"), 64);
    json_t *c0 = json_array_get(json_object_get(web, "constraints"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(c0, "op")), "UNIQUE");
    cr_assert_eq(num(json_object_get(web, "tasks"), "pending"), 3);
    json_decref(jobs);
    cs_res res = {250, 64, 10};
    commit(d, 1, cs_task_id(job, 0), m1, &res, 31000, -1);

    json_t *ms = ok_json(d, "get", "machines", NULL);
    cr_assert_eq(json_array_size(ms), 2);
    json_t *m = find_by(ms, "name", "m1");
    cr_assert(m != NULL);
    cr_assert_str_eq(json_string_value(json_object_get(m, "state")), "up");
    cr_assert_float_eq(num(json_object_get(m, "capacity"), "cpu"), 4.0, 1e-9);
    cr_assert_float_eq(num(json_object_get(m, "allocated"), "cpu"), 0.25, 1e-9);
    cr_assert_eq(num(json_object_get(m, "allocated"), "mem"), 64);
    cr_assert_eq(num(json_object_get(m, "capacity"), "disk"), 10000);
    cr_assert_eq(num(m, "tasks"), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(m, "attrs"), "rack")), "r1");
    json_decref(ms);

    json_t *ts = ok_json(d, "get", "tasks", "--job", "web", NULL);
    cr_assert_eq(json_array_size(ts), 3);
    json_t *t0 = json_array_get(ts, 0);
    cr_assert_str_eq(json_string_value(json_object_get(t0, "job")), "web");
    cr_assert_str_eq(json_string_value(json_object_get(t0, "state")), "assigned");
    cr_assert_str_eq(json_string_value(json_object_get(t0, "machine")), "m1");
    cr_assert_eq(json_integer_value(json_array_get(json_object_get(t0, "ports"), 0)), 31000);
    cr_assert(json_is_null(json_object_get(json_array_get(ts, 1), "machine")),
              "a pending task has no machine");
    json_decref(ts);
    ts = ok_json(d, "get", "tasks", "--state", "pending", NULL);
    cr_assert_eq(json_array_size(ts), 2);
    json_decref(ts);

    ok(d, &r, "get", "machines", NULL);
    cr_assert(strstr(r.out, "NAME") && strstr(r.out, "m1") && strstr(r.out, "0.25/4"), "%s", r.out);
    run_free(&r);
    ok(d, &r, "get", "tasks", NULL);
    cr_assert(strstr(r.out, "assigned") && strstr(r.out, "m1") && strstr(r.out, "31000"), "%s",
              r.out);
    run_free(&r);
    ok(d, &r, "get", "jobs", NULL);
    cr_assert(strstr(r.out, "web") && strstr(r.out, "service"), "%s", r.out);
    run_free(&r);

    ok(d, &r, "describe", "job", "web", NULL);
    const char *want[] = {
        "Name:         web", "hostname UNIQUE", "HTTP GET /health on $PORT0", "GREETING=hello", "m1",
        "Pending:",          "web[1]"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert(strstr(r.out, want[i]) != NULL, "describe lacks '%s':\n%s", want[i], r.out);
    run_free(&r);
    ok(d, &r, "describe", "machine", "m1", NULL);
    cr_assert(strstr(r.out, "rack=r1") && strstr(r.out, "web"), "%s", r.out);
    run_free(&r);
}

/* A machine registered with taints and a job with tolerations: get
 * machines (table and JSON), describe machine and describe job show them. */
Test(cellctl, taints_and_tolerations_are_shown)
{
    ts_daemon *d = &daemon_;
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    cs_pack_kv_str(&pk, "name", "gpu1");
    cs_res cap = {4000, 4096, 10000};
    cs_pack_kv_res(&pk, "capacity", &cap);
    cs_pack_str(&pk, "taints");
    msgpack_pack_array(&pk, 2);
    msgpack_pack_map(&pk, 3);
    cs_pack_kv_str(&pk, "key", "spot");
    cs_pack_kv_str(&pk, "value", "");
    cs_pack_kv_str(&pk, "effect", "PreferNoSchedule");
    msgpack_pack_map(&pk, 2);
    cs_pack_kv_str(&pk, "key", "dedicated");
    cs_pack_kv_str(&pk, "effect", "NoSchedule");
    cs_msg reply;
    call(d, CS_MSG_MACHINE_REGISTER, &b, &reply);
    run r;
    ok(d, &r, "get", "machines", NULL);
    cr_assert(strstr(r.out, "TAINTS") && strstr(r.out, "dedicated:NoSchedule,spot:PreferNoSchedule"),
              "sorted by key: %s", r.out);
    run_free(&r);
    json_t *ms = ok_json(d, "get", "machines", NULL);
    json_t *t0 = json_array_get(json_object_get(find_by(ms, "name", "gpu1"), "taints"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(t0, "key")), "dedicated");
    cr_assert_str_eq(json_string_value(json_object_get(t0, "effect")), "NoSchedule");
    json_decref(ms);
    ok(d, &r, "describe", "machine", "gpu1", NULL);
    cr_assert(strstr(r.out, "Taints:       dedicated:NoSchedule") && strstr(r.out, "spot:Prefer"),
              "%s", r.out);
    run_free(&r);

    char spec[1024];
    snprintf(spec, sizeof spec, "%s/tol.json", d->dir);
    FILE *f = fopen(spec, "w");
    cr_assert(f != NULL);
    fputs("{\"name\": \"tol\", \"cmd\": \"x\", \"tolerations\": ["
          "{\"key\": \"dedicated\", \"value\": \"gpu\", \"effect\": \"NoSchedule\"},"
          "{\"key\": \"maintenance\", \"operator\": \"Exists\", \"effect\": \"NoExecute\","
          " \"tolerationSeconds\": 60}]}",
          f);
    fclose(f);
    ok(d, &r, "submit", spec, NULL);
    run_free(&r);
    ok(d, &r, "describe", "job", "tol", NULL);
    cr_assert(strstr(r.out, "Tolerations:  dedicated Equal gpu, NoSchedule") &&
                  strstr(r.out, "maintenance Exists, NoExecute for 60s"),
              "%s", r.out);
    run_free(&r);
}

Test(cellctl, describe_says_why_a_task_is_pending)
{
    ts_daemon *d = &daemon_;
    cs_id m1 = add_machine(d, "m1");
    run r;
    cs_id job = submit_file(d, "examples/batch.json", "batch-sleep");
    cs_res res = {100, 16, 0};
    commit(d, 1, cs_task_id(job, 3), m1, &res, 0, -1);
    report_failed(d, cs_task_id(job, 3), "exit 1: disk quota exceeded");
    commit(d, 2, cs_task_id(job, 3), 0, NULL, 0, CS_TASK_PENDING); /* a retry */
    ok(d, &r, "describe", "job", "batch-sleep", NULL);
    cr_assert(strstr(r.out, "batch-sleep[3] (task") != NULL, "%s", r.out);
    cr_assert(strstr(r.out, "exit 1: disk quota exceeded (last attempt failed)") != NULL, "%s",
              r.out);
    cr_assert(strstr(r.out, "batch-sleep[0] (task") && strstr(r.out, "no reason reported yet"),
              "%s", r.out);
    run_free(&r);
    json_t *desc = ok_json(d, "describe", "job", "batch-sleep", NULL);
    json_t *t3 = json_array_get(json_object_get(desc, "tasks"), 3);
    cr_assert_str_eq(json_string_value(json_object_get(t3, "reason")),
                     "exit 1: disk quota exceeded");
    cr_assert_str_eq(json_string_value(json_object_get(t3, "last_end")), "failed");
    json_decref(desc);
}

/* A job no machine of the cell could hold is accepted, with a warning for
 * each reason; once a scheduler notes why its tasks wait, describe points
 * at the note instead of saying no reason was reported. */
Test(cellctl, submit_warns_when_no_machine_could_hold_the_job)
{
    ts_daemon *d = &daemon_;
    add_machine(d, "m1");
    char path[1100];
    snprintf(path, sizeof path, "%s/huge.json", d->dir);
    FILE *f = fopen(path, "w");
    cr_assert(f != NULL);
    fputs("{\"name\": \"huge\", \"cmd\": \"x\", \"count\": 2,"
          " \"resources\": {\"cpu\": 64, \"mem\": \"8Gi\"},"
          " \"constraints\": [[\"gpu\", \"==\", \"yes\"], [\"rack\", \"==\", \"r9\"],"
          " [\"rack\", \"!=\", \"r1\"]]}",
          f);
    fclose(f);
    run r;
    ok(d, &r, "submit", path, NULL);
    cr_assert(strstr(r.out, "job huge submitted") != NULL, "accepted: %s", r.out);
    const char *want[] = {
        "warning: job huge waits: resources: cpu 64 cores per task is above every machine's "
        "capacity (the largest has 4 cores)",
        "warning: job huge waits: resources: mem 8192 MiB per task is above every machine's "
        "capacity (the largest has 4096 MiB)",
        "warning: job huge waits: constraints[0] (gpu == yes): no machine has attribute 'gpu'",
        "warning: job huge waits: constraints[1] (rack == r9): no machine has rack = r9"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert(strstr(r.err, want[i]) != NULL, "stderr lacks '%s':\n%s", want[i], r.err);
    cr_assert(strstr(r.err, "constraints[2]") == NULL, "!= accepts a machine: %s", r.err);
    run_free(&r);

    ok(d, &r, "describe", "job", "huge", NULL);
    cr_assert(strstr(r.out, "no reason reported yet") != NULL, "no note yet: %s", r.out);
    run_free(&r);
    ts_note(d->c, "huge", "no machine fits: cpu and memory on 1");
    ok(d, &r, "describe", "job", "huge", NULL);
    cr_assert(strstr(r.out, "Note:         no machine fits: cpu and memory on 1") != NULL, "%s",
              r.out);
    cr_assert(strstr(r.out, "huge[1] (task") != NULL && strstr(r.out, "see the note above"), "%s",
              r.out);
    cr_assert(strstr(r.out, "no reason reported yet") == NULL, "%s", r.out);
    run_free(&r);
}

/* A restart back-off's note holds the time of the next start; describe
 * says how long is left. */
Test(cellctl, describe_shows_the_back_off_as_time_left)
{
    ts_daemon *d = &daemon_;
    add_machine(d, "m1");
    submit_file(d, "examples/web.json", "web");
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t in_90s = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 + 90500;
    char text[256];
    cs_backoff_note(in_90s, 2, 7, text, sizeof text);
    ts_note(d->c, "web", text);
    run r;
    ok(d, &r, "describe", "job", "web", NULL);
    /* 90 or 91 s: a second may pass between the note and the look. */
    cr_assert(strstr(r.out, "Note:         back-off: next start in 9") != NULL &&
                  strstr(r.out, " s (task 2 ended 7 times in a row)") != NULL,
              "%s", r.out);
    run_free(&r);
    /* The JSON keeps the note as it is. */
    json_t *desc = ok_json(d, "describe", "job", "web", NULL);
    cr_assert_str_eq(json_string_value(json_object_get(desc, "note")), text);
    json_decref(desc);
    cs_backoff_note(in_90s - 200000, 2, 8, text, sizeof text);
    ts_note(d->c, "web", text);
    ok(d, &r, "describe", "job", "web", NULL);
    cr_assert(strstr(r.out, "back-off: next start now (task 2 ended 8 times in a row)") != NULL,
              "%s", r.out);
    run_free(&r);
}

Test(cellctl, scale_update_kill)
{
    ts_daemon *d = &daemon_;
    run r;
    ok(d, &r, "submit", "examples/batch.json", NULL);
    run_free(&r);
    ok(d, &r, "scale", "batch-sleep", "5", NULL);
    cr_assert(strstr(r.out, "scaled to 5 tasks") != NULL, "%s", r.out);
    run_free(&r);
    json_t *ts = ok_json(d, "get", "tasks", "--state", "pending", NULL);
    cr_assert_eq(json_array_size(ts), 5);
    json_decref(ts);

    char path[1100];
    write_file(d, "b2.json",
               "{\"name\": \"batch-sleep\", \"count\": 8, \"cmd\": \"sleep 2\","
               " \"resources\": {\"cpu\": \"200m\", \"mem\": 32}}",
               path, sizeof path);
    ok(d, &r, "update", "batch-sleep", path, NULL);
    run_free(&r);
    json_t *jobs = ok_json(d, "get", "jobs", NULL);
    json_t *j = json_array_get(jobs, 0);
    cr_assert_eq(num(j, "count"), 8);
    cr_assert_float_eq(num(json_object_get(j, "resources"), "cpu"), 0.2, 1e-9);
    cr_assert_str_eq(json_string_value(json_object_get(j, "cmd")), "sleep 2");
    json_decref(jobs);

    write_file(d, "other.json", "{\"name\": \"other\", \"cmd\": \"x\"}", path, sizeof path);
    cellctl(d, &r, "update", "batch-sleep", path, NULL);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "name cannot change") != NULL, "%s", r.err);
    run_free(&r);

    ok(d, &r, "kill", "batch-sleep", NULL);
    cr_assert(strstr(r.out, "job batch-sleep killed") != NULL, "%s", r.out);
    run_free(&r);
    jobs = ok_json(d, "get", "jobs", "--state", "killed", NULL);
    cr_assert_eq(json_array_size(jobs), 1);
    /* 200 tasks were made (examples/batch.json): 195 killed by the scale to 5,
     * indexes 5-7 started afresh by the update to 8, then all killed. */
    cr_assert_eq(num(json_object_get(json_array_get(jobs, 0), "tasks"), "killed"), 200);
    cr_assert_eq(num(json_object_get(json_array_get(jobs, 0), "tasks"), "pending"), 0);
    json_decref(jobs);

    cellctl(d, &r, "kill", "nosuchjob", NULL);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "kill nosuchjob") != NULL, "%s", r.err);
    run_free(&r);
    cellctl(d, &r, "scale", "batch-sleep", "lots", NULL);
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "'lots' is not a task count") != NULL, "%s", r.err);
    run_free(&r);
}

/* web has an HTTP health check: only its running tasks whose check passes
 * are endpoints. batch-sleep has none: running is enough. */
Test(cellctl, endpoints_lists_running_healthy_tasks)
{
    ts_daemon *d = &daemon_;
    cs_id m[3] = {add_machine(d, "m1"), add_machine(d, "m2"), add_machine(d, "m3")};
    run r;
    cs_id web = submit_file(d, "examples/web.json", "web");
    cs_id batch = submit_file(d, "examples/batch.json", "batch-sleep");

    ok(d, &r, "endpoints", "web", NULL);
    cr_assert_str_eq(r.out, "", "nothing runs yet: no output");
    run_free(&r);

    cs_res res = {250, 64, 10};
    for (uint32_t i = 0; i < 3; i++)
        commit(d, 1 + i, cs_task_id(web, i), m[i], &res, (uint16_t)(31000 + i), -1);
    report_running(d, cs_task_id(web, 0), NULL);        /* no check has answered */
    report_running(d, cs_task_id(web, 1), "healthy");
    report_running(d, cs_task_id(web, 2), "unhealthy");
    ok(d, &r, "endpoints", "web", NULL);
    cr_assert_str_eq(r.out, "m2:31001\n");
    run_free(&r);
    json_t *e = ok_json(d, "endpoints", "web", NULL);
    cr_assert_eq(json_array_size(e), 1);
    json_t *e0 = json_array_get(e, 0);
    cr_assert_eq(num(e0, "task"), (double)cs_task_id(web, 1));
    cr_assert_str_eq(json_string_value(json_object_get(e0, "host")), "m2");
    cr_assert_eq(json_integer_value(json_array_get(json_object_get(e0, "ports"), 0)), 31001);
    json_decref(e);
    report_running(d, cs_task_id(web, 0), "healthy");
    ok(d, &r, "endpoints", "web", NULL);
    cr_assert_str_eq(r.out, "m1:31000\nm2:31001\n");
    run_free(&r);

    /* Without health checks a running task counts; an assigned one not. */
    cs_res small = {100, 16, 0};
    commit(d, 10, cs_task_id(batch, 0), m[2], &small, 0, -1);
    commit(d, 11, cs_task_id(batch, 1), m[2], &small, 0, -1);
    report_running(d, cs_task_id(batch, 0), NULL);
    ok(d, &r, "endpoints", "batch-sleep", NULL);
    cr_assert_str_eq(r.out, "m3\n", "a task without ports is its host");
    run_free(&r);

    cellctl(d, &r, "endpoints", "nosuchjob", NULL);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "nosuchjob") != NULL, "%s", r.err);
    run_free(&r);
    cellctl(d, &r, "endpoints", NULL);
    cr_assert_eq(r.status, 2);
    run_free(&r);

    /* The HEALTH column and the JSON key: running tasks only have one. */
    ok(d, &r, "get", "tasks", "--job", "web", NULL);
    cr_assert(strstr(r.out, "HEALTH") && strstr(r.out, "unhealthy"), "%s", r.out);
    run_free(&r);
    json_t *ts = ok_json(d, "get", "tasks", "--job", "web", NULL);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(ts, 2), "health")),
                     "unhealthy");
    json_decref(ts);
}

Test(cellctl, describe_shows_submission_time_note_and_health)
{
    ts_daemon *d = &daemon_;
    cs_id m1 = add_machine(d, "m1");
    run r;
    cs_id web = submit_file(d, "examples/web.json", "web");
    ok(d, &r, "describe", "job", "web", NULL);
    cr_assert(strstr(r.out, "Submitted:    20") != NULL, "a local date: %s", r.out);
    cr_assert(strstr(r.out, "Note:") == NULL, "no note yet: %s", r.out);
    run_free(&r);

    ts_note(d->c, "web", "no machine fits: cpu on 9,870, UNIQUE hostname on 130");
    cs_res res = {250, 64, 10};
    commit(d, 1, cs_task_id(web, 0), m1, &res, 31000, -1);
    report_running(d, cs_task_id(web, 0), "healthy");
    ok(d, &r, "describe", "job", "web", NULL);
    cr_assert(strstr(r.out, "Note:         no machine fits: cpu on 9,870, UNIQUE hostname on 130"),
              "%s", r.out);
    cr_assert(strstr(r.out, "HEALTH") && strstr(r.out, "healthy"), "%s", r.out);
    run_free(&r);

    json_t *desc = ok_json(d, "describe", "job", "web", NULL);
    cr_assert_str_eq(json_string_value(json_object_get(desc, "note")),
                     "no machine fits: cpu on 9,870, UNIQUE hostname on 130");
    cr_assert_gt(num(desc, "submitted"), 1.6e12, "milliseconds since the epoch");
    json_t *t0 = json_array_get(json_object_get(desc, "tasks"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(t0, "health")), "healthy");
    /* The job object carries them too, read-only: submit takes it back (below). */
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(desc, "job"), "note")),
                     "no machine fits: cpu on 9,870, UNIQUE hostname on 130");
    json_decref(desc);

    /* `get jobs -o json` shows them too, and its object goes back through
     * `update` as it is: they are read-only, not spec, so nothing changes. */
    json_t *jobs = ok_json(d, "get", "jobs", NULL);
    json_t *j = find_by(jobs, "name", "web");
    cr_assert(j != NULL);
    cr_assert_str_eq(json_string_value(json_object_get(j, "note")),
                     "no machine fits: cpu on 9,870, UNIQUE hostname on 130");
    cr_assert_gt(num(j, "submitted"), 1.6e12, "milliseconds since the epoch");
    uint64_t version = (uint64_t)num(j, "version");
    char *text = json_dumps(j, 0), path[1100];
    cr_assert(text != NULL);
    write_file(d, "web-out.json", text, path, sizeof path);
    free(text);
    json_decref(jobs);
    ok(d, &r, "update", "web", path, NULL);
    run_free(&r);
    jobs = ok_json(d, "get", "jobs", NULL);
    j = find_by(jobs, "name", "web");
    cr_assert_eq((uint64_t)num(j, "version"), version, "an identical spec writes nothing");
    json_decref(jobs);
}

Test(cellctl, stats)
{
    ts_daemon *d = &daemon_;
    add_machine(d, "m1");
    add_machine(d, "m2");
    run r;
    ok(d, &r, "submit", "examples/web.json", NULL);
    run_free(&r);
    json_t *s = ok_json(d, "stats", NULL);
    cr_assert_eq(num(s, "machines"), 2);
    cr_assert_eq(num(s, "jobs"), 1);
    cr_assert_float_eq(num(json_object_get(s, "capacity"), "cpu"), 8.0, 1e-9, "cores");
    cr_assert_eq(num(json_object_get(s, "capacity"), "mem"), 8192);
    cr_assert_eq(num(json_object_get(s, "tasks"), "pending"), 3);
    cr_assert(json_is_object(json_object_get(s, "server")));
    json_decref(s);
    ok(d, &r, "stats", NULL);
    cr_assert(strstr(r.out, "machines     2 (2 up)") && strstr(r.out, "capacity     cpu 8,"), "%s",
              r.out);
    cr_assert(strstr(r.out, "schedulers   none reported") != NULL, "%s", r.out);
    run_free(&r);

    /* Two schedulers report: a table of their metrics follows. */
    msgpack_sbuffer b;
    msgpack_packer pk;
    const char *names[] = {"service-0", "batch-0"};
    for (int i = 0; i < 2; i++) {
        msgpack_sbuffer_init(&b);
        msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 3);
        cs_pack_kv_str(&pk, "name", names[i]);
        cs_pack_kv_str(&pk, "kind", i ? "batch" : "service");
        cs_pack_str(&pk, "metrics");
        msgpack_pack_map(&pk, 2);
        cs_pack_str(&pk, "busyness");
        msgpack_pack_double(&pk, i ? 0.125 : 0.5);
        cs_pack_kv_u64(&pk, "txn_committed", 40 + (uint64_t)i);
        cs_msg rep;
        call(d, CS_MSG_SCHED_REPORT, &b, &rep);
    }
    /* A standing warning (a policy's ignored names) is printed under the table. */
    msgpack_sbuffer_init(&b);
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    cs_pack_kv_str(&pk, "name", "service-1");
    cs_pack_kv_str(&pk, "kind", "service");
    cs_pack_kv_str(&pk, "warning", "policy: ignoring ImageLocalityPriority (container images)");
    cs_pack_str(&pk, "metrics");
    msgpack_pack_map(&pk, 0);
    cs_msg wrep;
    call(d, CS_MSG_SCHED_REPORT, &b, &wrep);
    ok(d, &r, "stats", NULL);
    cr_assert(strstr(r.out, "warning: service-1: policy: ignoring ImageLocalityPriority") != NULL,
              "%s", r.out);
    const char *batch = strstr(r.out, "batch-0"), *service = strstr(r.out, "service-0");
    cr_assert(strstr(r.out, "SCHEDULER") && batch && service && batch < service,
              "schedulers by name: %s", r.out);
    cr_assert(strstr(r.out, "busyness") && strstr(r.out, "0.125") && strstr(r.out, "41"), "%s",
              r.out);
    run_free(&r);
    s = ok_json(d, "stats", NULL);
    json_t *sch = json_object_get(s, "schedulers");
    cr_assert_eq(json_array_size(sch), 3);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(sch, 2), "warning")),
                     "policy: ignoring ImageLocalityPriority (container images)");
    cr_assert_null(json_object_get(json_array_get(sch, 0), "warning"), "none when none");
    json_t *s0 = json_array_get(sch, 0);
    cr_assert_str_eq(json_string_value(json_object_get(s0, "name")), "batch-0");
    cr_assert_str_eq(json_string_value(json_object_get(s0, "kind")), "batch");
    cr_assert_float_eq(num(json_object_get(s0, "metrics"), "busyness"), 0.125, 1e-12);
    cr_assert_eq(num(json_object_get(s0, "metrics"), "txn_committed"), 41);
    cr_assert(json_is_integer(json_object_get(s0, "age_ms")));
    json_decref(s);
}

Test(cellctl, bad_specs_name_the_field)
{
    ts_daemon *d = &daemon_;
    char path[1100];
    run r;
    write_file(d, "bad.json", "{\"name\": \"x\", \"cmd\": \"y\", \"resources\": {\"cpu\": -1}}",
               path, sizeof path);
    cellctl(d, &r, "submit", path, NULL);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "bad.json: resources.cpu: -1 cores is negative") != NULL, "%s", r.err);
    run_free(&r);
    write_file(d, "hc.json",
               "{\"id\": \"/app\", \"cmd\": \"y\", \"healthChecks\": [{\"portIndex\": 2}]}", path,
               sizeof path);
    cellctl(d, &r, "submit", path, NULL);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "healthChecks[0].portIndex: 2 is out of range") != NULL, "%s", r.err);
    run_free(&r);
    write_file(d, "img.json",
               "{\"id\": \"/nginx\", \"container\": {\"docker\": {\"image\": \"n\"}}}", path,
               sizeof path);
    cellctl(d, &r, "submit", path, NULL);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "cmd: the app has neither cmd nor args") != NULL, "%s", r.err);
    run_free(&r);
    cellctl(d, &r, "submit", "/nonexistent/spec.json", NULL);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "/nonexistent/spec.json") != NULL, "%s", r.err);
    run_free(&r);
    json_t *jobs = ok_json(d, "get", "jobs", NULL);
    cr_assert_eq(json_array_size(jobs), 0, "nothing was submitted");
    json_decref(jobs);
}

Test(cellctl, marathon_app_with_warnings_and_dry_run)
{
    ts_daemon *d = &daemon_;
    run r;
    ok(d, &r, "submit", "--dry-run", "examples/marathon-app.json", NULL);
    json_t *spec = parse_json(r.out);
    cr_assert_str_eq(json_string_value(json_object_get(spec, "name")), "examples/hello-marathon");
    cr_assert_str_eq(json_string_value(json_object_get(spec, "kind")), "service");
    cr_assert_float_eq(num(json_object_get(spec, "resources"), "cpu"), 0.2, 1e-9);
    json_decref(spec);
    cr_assert(strstr(r.err, "warning: examples/marathon-app.json: labels: ignored") != NULL, "%s",
              r.err);
    run_free(&r);
    json_t *jobs = ok_json(d, "get", "jobs", NULL);
    cr_assert_eq(json_array_size(jobs), 0, "--dry-run submits nothing");
    json_decref(jobs);
    ok(d, &r, "submit", "examples/marathon-app.json", NULL);
    cr_assert(strstr(r.err, "labels: ignored") != NULL, "%s", r.err);
    run_free(&r);
    /* A Marathon id with its leading slash names the job too. */
    ok(d, &r, "scale", "/examples/hello-marathon", "4", NULL);
    run_free(&r);
    jobs = ok_json(d, "get", "jobs", NULL);
    cr_assert_eq(num(json_array_get(jobs, 0), "count"), 4);
    json_decref(jobs);
}

Test(cellctl, unreachable_server_is_named)
{
    ts_daemon *d = &daemon_;
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", ts_free_port());
    char bin[256];
    ts_bin("cellctl", bin, sizeof bin);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s --server %s --timeout 300ms get machines 2>&1", bin, url);
    FILE *p = popen(cmd, "r");
    cr_assert(p != NULL);
    char buf[1024] = "";
    size_t n = fread(buf, 1, sizeof buf - 1, p);
    buf[n] = '\0';
    int st = pclose(p);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %d: %s", st, buf);
    char want[128];
    snprintf(want, sizeof want, "cannot reach cellstated at %s", url);
    cr_assert(strstr(buf, want) != NULL, "%s", buf);
    /* The same through $CELL_SERVER, the default when --server is absent. */
    snprintf(cmd, sizeof cmd, "CELL_SERVER=%s %s --timeout 300ms stats 2>&1", url, bin);
    p = popen(cmd, "r");
    n = fread(buf, 1, sizeof buf - 1, p);
    buf[n] = '\0';
    st = pclose(p);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    cr_assert(strstr(buf, want) != NULL, "%s", buf);
    (void)d;
}

Test(cellctl, command_line)
{
    ts_daemon *d = &daemon_;
    run r;
    cellctl(d, &r, NULL);
    cr_assert_eq(r.status, 2, "no command is a usage error");
    cr_assert(strstr(r.err, "usage: cellctl") != NULL);
    run_free(&r);
    ok(d, &r, "--help", NULL);
    cr_assert(strstr(r.out, "submit FILE") && strstr(r.out, "watch"), "%s", r.out);
    run_free(&r);
    ok(d, &r, "help", "submit", NULL);
    cr_assert(strstr(r.out, "--dry-run") != NULL, "%s", r.out);
    run_free(&r);
    ok(d, &r, "get", "--help", NULL);
    cr_assert(strstr(r.out, "--machine M") != NULL, "%s", r.out);
    run_free(&r);
    ok(d, &r, "--help", NULL);
    cr_assert(strstr(r.out, "endpoints JOB") != NULL, "%s", r.out);
    run_free(&r);
    ok(d, &r, "help", "endpoints", NULL);
    cr_assert(strstr(r.out, "running and healthy") != NULL, "%s", r.out);
    run_free(&r);
    const char *bad[][4] = {{"get", "pods", NULL},
                            {"frobnicate", NULL},
                            {"kill", "a", "--interval", "1s"},
                            {"get", "tasks", "-o", "yaml"},
                            {"get", "machines", "--state", "sleepy"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cellctl(d, &r, bad[i][0], bad[i][1], bad[i][2], bad[i][3], NULL);
        cr_assert_eq(r.status, 2, "%s %s: status %d", bad[i][0], bad[i][1] ? bad[i][1] : "",
                     r.status);
        cr_assert(strlen(r.err) > 0);
        run_free(&r);
    }
}

Test(cellctl, watch_draws_frames_and_stops_cleanly)
{
    ts_daemon *d = &daemon_;
    add_machine(d, "m1");
    run r;
    ok(d, &r, "submit", "examples/web.json", NULL);
    run_free(&r);
    /* Into a file, a quiet cell is one frame however many looks. */
    ok(d, &r, "watch", "--count", "3", "--interval", "50ms", NULL);
    size_t frames = 0;
    for (const char *p = r.out; (p = strstr(p, "cellctl watch")) != NULL; p++)
        frames++;
    cr_assert_eq(frames, 1, "%s", r.out);
    cr_assert(strstr(r.out, "m1") && strstr(r.out, "pending"), "%s", r.out);
    cr_assert(strstr(r.out, "\033[") == NULL, "no escapes into a file");
    run_free(&r);
    ok(d, &r, "watch", "--count", "2", "--interval", "50ms", "--ansi", NULL);
    cr_assert(strstr(r.out, "\033[H") && strstr(r.out, "\033[K") && strstr(r.out, "\033[?25h"),
              "redrawn in place, cursor restored");
    run_free(&r);

    /* No --count: it runs until SIGTERM, then exits 0. */
    char bin[256], log[1100];
    ts_bin("cellctl", bin, sizeof bin);
    snprintf(log, sizeof log, "%s/watch.log", d->dir);
    char server[] = "--server", watch[] = "watch", interval[] = "--interval", ms[] = "100ms";
    char *argv[] = {bin, server, d->url, watch, interval, ms, NULL};
    int pid = ts_spawn(argv, log);
    for (int i = 0; i < 200; i++) {
        if (access(log, R_OK) != 0) {
            ts_sleep_ms(50);
            continue;
        }
        char *text = ts_slurp(log, NULL);
        bool drawn = strstr(text, "cellctl watch") != NULL;
        free(text);
        if (drawn)
            break;
        ts_sleep_ms(50);
    }
    /* A change is a new frame: a second machine joins. */
    add_machine(d, "m2");
    bool redrawn = false;
    for (int i = 0; i < 200 && !redrawn; i++) {
        char *text = ts_slurp(log, NULL);
        const char *second = strstr(text, "cellctl watch");
        second = second != NULL ? strstr(second + 1, "cellctl watch") : NULL;
        redrawn = second != NULL && strstr(second, "m2") != NULL;
        free(text);
        if (!redrawn)
            ts_sleep_ms(50);
    }
    cr_assert(redrawn, "a second frame once the cell changed");
    int st = ts_stop(pid, SIGTERM, 10000);
    cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "SIGTERM ends watch with status 0 (wait status %d)", st);
}

/* cordon, drain and uncordon through cellctl: what the cell records, what
 * `get machines` shows (the table and -o json), a claim refused on a machine
 * that takes no new task, and the command line's refusals. */
Test(cellctl, cordon_drain_uncordon)
{
    ts_daemon *d = &daemon_;
    cs_id m1 = add_machine(d, "m1"), m2 = add_machine(d, "m2");
    run r;
    ok(d, &r, "cordon", "m1", NULL);
    cr_assert(strstr(r.out, "machine m1 cordoned") != NULL, "%s", r.out);
    run_free(&r);
    ok(d, &r, "get", "machines", NULL);
    cr_assert(strstr(r.out, "up,cordoned") != NULL, "%s", r.out);
    run_free(&r);
    json_t *ms = ok_json(d, "get", "machines", NULL);
    json_t *j1 = find_by(ms, "name", "m1"), *j2 = find_by(ms, "name", "m2");
    cr_assert_str_eq(json_string_value(json_object_get(j1, "admin")), "cordoned");
    cr_assert_str_eq(json_string_value(json_object_get(j1, "state")), "up");
    cr_assert_str_eq(json_string_value(json_object_get(j2, "admin")), "active");
    json_decref(ms);

    /* A claim on the cordoned machine is refused by the cell itself. */
    ok(d, &r, "submit", "examples/batch.json", NULL);
    run_free(&r);
    json_t *jobs = ok_json(d, "get", "jobs", NULL);
    cs_id job = (cs_id)num(json_array_get(jobs, 0), "id");
    json_decref(jobs);
    cs_txn t;
    cs_txn_init(&t, 9, 1, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    cs_res res = {100, 64, 0};
    cs_txn_add_claim(&t, cs_task_id(job, 0), m1, &res, NULL, 0, 0);
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    cs_txn_encode(&t, &b);
    cs_msg reply;
    call(d, CS_MSG_COMMIT, &b, &reply);
    cr_assert_eq(ts_reply_u64(&reply.body, "conflicts"), 1, "a claim on a cordoned machine committed");
    cs_txn_free(&t);

    /* drain: draining while a task is there, drained once none is; the
     * deadline is the server's clock plus the duration. */
    commit(d, 2, cs_task_id(job, 0), m2, &res, 0, -1); /* on m2, which then drains */
    int64_t before = (int64_t)time(NULL) * 1000;
    json_t *o = ok_json(d, "drain", "m2", "--deadline", "10m", NULL);
    int64_t at = (int64_t)num(o, "drain_deadline");
    cr_assert(at >= before + 600000 - 1000 && at <= (int64_t)time(NULL) * 1000 + 600000 + 1000,
              "deadline %lld is not 10 minutes from now", (long long)at);
    cr_assert_str_eq(json_string_value(json_object_get(o, "admin")), "draining");
    json_decref(o);
    ok(d, &r, "get", "machines", NULL);
    cr_assert(strstr(r.out, "up,draining") != NULL, "%s", r.out);
    run_free(&r);
    commit(d, 3, cs_task_id(job, 0), 0, NULL, 0, CS_TASK_FINISHED);
    ok(d, &r, "get", "machines", NULL);
    cr_assert(strstr(r.out, "up,drained") != NULL, "%s", r.out);
    run_free(&r);
    ok(d, &r, "drain", "m1", "--no-deadline", NULL);
    cr_assert(strstr(r.out, "batch tasks run to their end") != NULL, "%s", r.out);
    run_free(&r);
    ms = ok_json(d, "get", "machines", NULL);
    j1 = find_by(ms, "name", "m1");
    j2 = find_by(ms, "name", "m2");
    cr_assert_eq(num(j1, "drain_deadline"), 0);
    cr_assert(json_is_true(json_object_get(j1, "drained")), "m1 holds no task");
    cr_assert(json_is_true(json_object_get(j2, "drained")));
    json_decref(ms);

    /* uncordon: active again, and a claim commits */
    ok(d, &r, "uncordon", "m1", NULL);
    cr_assert(strstr(r.out, "machine m1 uncordoned") != NULL, "%s", r.out);
    run_free(&r);
    commit(d, 4, cs_task_id(job, 1), m1, &res, 0, -1);

    /* refusals, each named */
    cellctl(d, &r, "cordon", "nosuch", NULL);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "nosuch") != NULL, "%s", r.err);
    run_free(&r);
    const char *bad[][5] = {{"drain", "m1", "--deadline", "soon", NULL},
                            {"drain", "m1", "--deadline", "1s", "--no-deadline"},
                            {"cordon", "m1", "--deadline", "1s", NULL},
                            {"cordon", NULL},
                            {"logs", "web", "--tail", "0", NULL},
                            {"logs", "web/9x", NULL},
                            {"logs", "web/99999999", NULL},
                            {"logs", "web", "--deadline", "1s", NULL}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cellctl(d, &r, bad[i][0], bad[i][1], bad[i][2], bad[i][3], bad[i][4], NULL);
        cr_assert_eq(r.status, 2, "%s %s: status %d (%s)", bad[i][0], bad[i][1] ? bad[i][1] : "",
                     r.status, r.err);
        cr_assert(strlen(r.err) > 0);
        run_free(&r);
    }
    ok(d, &r, "help", "drain", NULL);
    cr_assert(strstr(r.out, "--no-deadline") != NULL && strstr(r.out, "minimum healthy"),
              "%s", r.out);
    run_free(&r);
    ok(d, &r, "help", "logs", NULL);
    cr_assert(strstr(r.out, "--tail N") != NULL, "%s", r.out);
    run_free(&r);

    /* logs of a task whose machine advertises no log service: named */
    cellctl(d, &r, "logs", "batch-sleep/1", NULL);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "ran on machine m1, whose agent serves no logs") != NULL, "%s",
              r.err);
    run_free(&r);
    /* ... of a task never placed, and of one the job does not have */
    cellctl(d, &r, "logs", "batch-sleep/5", NULL);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "task batch-sleep/5 is pending") != NULL, "%s", r.err);
    run_free(&r);
    cellctl(d, &r, "logs", "batch-sleep/999", NULL);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "has no task 999") != NULL, "%s", r.err);
    run_free(&r);
}
