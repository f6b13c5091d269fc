/* test_cellchaos.c — the chaos tool (issue 14) on a small cell: a short run
 * with kills reports nothing lost, overcommitted or placed twice and leaves
 * nothing behind; SIGINT stops it and every process it started; bad
 * command lines are refused before anything starts.
 *
 * The run is short (20 s of chaos, a kill every 4 s, 100 simulated
 * machines) so that CI stays well under a minute for this suite; a long
 * run is docs/benchmarks.md's. Which processes die is the seed's choice:
 * the assertions hold whatever was killed. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/support.h"

static void setup(void)
{
    /* Whatever cellchaos leaves behind becomes ours, and is killed at the
     * end (ts_kill_descendants). */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    ts_tmp_setup();
}

static void teardown(void)
{
    ts_kill_descendants();
    ts_tmp_teardown();
}

TestSuite(cellchaos, .init = setup, .fini = teardown, .timeout = 180);

/* Run `cellchaos ARGS` with $TMPDIR = ts_tmp; its exit status, and its
 * report (the line of standard output that starts with '{', among the
 * progress lines of standard error) parsed into *report, NULL if none. */
static int run_chaos(const char *args, json_t **report)
{
    char bin[256], cmd[1024];
    static char out[1 << 16];
    ts_bin("cellchaos", bin, sizeof bin);
    snprintf(cmd, sizeof cmd, "TMPDIR='%s' '%s' %s", ts_tmp, bin, args);
    int status = ts_run(cmd, out, sizeof out);
    cr_log_info("%s", out);
    *report = NULL;
    for (char *line = strtok(out, "\n"); line != NULL; line = strtok(NULL, "\n"))
        if (line[0] == '{') {
            json_error_t je;
            *report = json_loads(line, 0, &je);
        }
    return status;
}

static json_int_t field(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    cr_assert(json_is_integer(v), "report: no integer '%s'", key);
    return json_integer_value(v);
}

/* Entries of ts_tmp besides . and .. */
static int entries(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert(d != NULL);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

/* Live processes writing their output into directory `dir` (a run's:
 * cellchaos points every process's standard output at its log there). */
static int processes_logging_in(const char *dir)
{
    DIR *d = opendir("/proc");
    cr_assert(d != NULL);
    size_t len = strlen(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        char path[300], target[4096];
        snprintf(path, sizeof path, "/proc/%s/fd/1", e->d_name);
        ssize_t t = readlink(path, target, sizeof target - 1);
        if (t <= 0)
            continue;
        target[t] = '\0';
        n += strncmp(target, dir, len) == 0 && target[len] == '/';
    }
    closedir(d);
    return n;
}

Test(cellchaos, short_run_loses_nothing)
{
    json_t *r;
    int rc = run_chaos("--duration 20s --kill-every 4s --machines 100 --seed 1", &r);
    cr_assert(r != NULL, "no report (exit %d)", rc);
    cr_expect_eq(field(r, "lost"), 0);
    cr_expect_eq(field(r, "overcommits"), 0);
    cr_expect_eq(field(r, "double_placements"), 0);
    cr_expect_eq(field(r, "unread"), 0, "every replica answered at the end");
    cr_expect_eq(rc, 0, "cellchaos exited %d", rc);
    /* Something happened: writes acknowledged, versions checked on every
     * replica, kills made, and every replica applied entries. */
    cr_expect_gt(field(r, "acknowledged"), 20);
    cr_expect_gt(field(r, "versions_checked"), 10);
    json_t *kills = json_object_get(r, "kills");
    cr_assert(json_is_object(kills));
    cr_expect_geq(field(kills, "total"), 3, "a kill every 4 s for 20 s");
    cr_expect_eq(field(kills, "total"),
                 field(kills, "replica") + field(kills, "scheduler") + field(kills, "agent"));
    json_t *applied = json_object_get(r, "applied_index");
    cr_assert(json_is_array(applied) && json_array_size(applied) == 3);
    for (size_t i = 0; i < 3; i++)
        cr_expect_gt(json_integer_value(json_array_get(applied, i)), 0, "replica %zu", i + 1);
    json_t *rec = json_object_get(r, "service_recovery_s");
    cr_assert(json_is_object(rec) && json_is_integer(json_object_get(rec, "losses")));
    json_decref(r);
    /* A run that passed removes its directory, and leaves no process. */
    cr_expect_eq(entries(ts_tmp), 0, "cellchaos left files in $TMPDIR");
    cr_expect_eq(processes_logging_in(ts_tmp), 0, "a process of the run is still alive");
}

Test(cellchaos, sigint_stops_every_process)
{
    char bin[256], out[300], err[300], dir[300];
    ts_bin("cellchaos", bin, sizeof bin);
    snprintf(out, sizeof out, "%s/out", ts_tmp);
    snprintf(err, sizeof err, "%s/err", ts_tmp);
    snprintf(dir, sizeof dir, "%s/run", ts_tmp);
    int pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644),
            fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fo, 1);
        dup2(fe, 2);
        execl(bin, bin, "--duration", "10m", "--machines", "40", "--dir", dir, (char *)NULL);
        _exit(127);
    }
    /* Wait until the chaos has begun: every process is up. */
    bool begun = false;
    for (int64_t until = ts_now_ms() + 60000; !begun && ts_now_ms() < until;) {
        ts_sleep_ms(200);
        char buf[8192] = "";
        FILE *f = fopen(err, "r");
        if (f != NULL) {
            buf[fread(buf, 1, sizeof buf - 1, f)] = '\0';
            fclose(f);
        }
        begun = strstr(buf, "chaos for") != NULL;
    }
    if (!begun)
        ts_log_file("cellchaos", err);
    cr_assert(begun, "cellchaos did not start its cell within 60 s");
    /* 3 replicas, 4 cell-batch, 1 cell-service, 4 agent simulators, each
     * once it has opened its log; no kill yet (the first comes 5 s into
     * the chaos). */
    int running = 0;
    for (int64_t until = ts_now_ms() + 3000; running != 12 && ts_now_ms() < until;) {
        running = processes_logging_in(dir);
        ts_sleep_ms(50);
    }
    cr_assert_eq(running, 12, "the replicas, schedulers and agents run");
    kill(pid, SIGINT);
    int status = ts_stop(pid, 0, 60000);
    cr_assert(status != -1, "cellchaos did not exit within 60 s of SIGINT");
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 1,
              "an interrupted run exits 1, got status %d", status);
    cr_expect_eq(processes_logging_in(dir), 0, "a process of the run outlived it");
    char last[8192] = "";
    FILE *f = fopen(out, "r");
    cr_assert(f != NULL);
    char line[8192];
    while (fgets(line, sizeof line, f) != NULL)
        snprintf(last, sizeof last, "%s", line);
    fclose(f);
    json_error_t je;
    json_t *r = json_loads(last, 0, &je);
    cr_assert(r != NULL, "no report after SIGINT: %s", last);
    cr_expect(json_is_true(json_object_get(r, "interrupted")));
    json_decref(r);
}

/* A bad command line: exit 2, a message naming it, nothing started. */
static void refused(const char *args, const char *says)
{
    char bin[256], cmd[1024], out[4096];
    ts_bin("cellchaos", bin, sizeof bin);
    snprintf(cmd, sizeof cmd, "TMPDIR='%s' '%s' %s", ts_tmp, bin, args);
    int status = ts_run(cmd, out, sizeof out);
    cr_expect_eq(status, 2, "%s: exit %d: %s", args, status, out);
    cr_expect(strstr(out, says) != NULL, "%s: says '%s', not '%s'", args, out, says);
    cr_expect_eq(entries(ts_tmp), 0, "%s: something was made in $TMPDIR", args);
}

Test(cellchaos, bad_arguments)
{
    refused("--replicas 0", "--replicas");
    refused("--replicas 9", "--replicas");
    refused("--duration soon", "--duration");
    refused("--duration 10ms", "--duration");
    refused("--kill-every 100ms", "--kill-every");
    refused("--machines 2 --agents 4", "--agents");
    refused("--batch-schedulers 0", "--batch-schedulers");
    refused("--seed -1", "--seed");
    refused("--frobnicate 3", "unknown option '--frobnicate'");
    refused("--duration", "--duration needs a value");
    refused("stray", "unexpected argument 'stray'");
}

Test(cellchaos, missing_binaries)
{
    /* $CELLSCHED_BIN names where the cell's binaries are: an empty
     * directory has none, which is said before anything starts. */
    char bin[256], cmd[1024], out[4096];
    ts_bin("cellchaos", bin, sizeof bin);
    snprintf(cmd, sizeof cmd, "CELLSCHED_BIN='%s' TMPDIR='%s' '%s' --duration 5s", ts_tmp,
             ts_tmp, bin);
    int status = ts_run(cmd, out, sizeof out);
    cr_expect_eq(status, 1, "exit %d: %s", status, out);
    cr_expect(strstr(out, "cellstated") != NULL, "%s", out);
    cr_expect_eq(entries(ts_tmp), 0);
}

Test(cellchaos, help)
{
    char bin[256], cmd[512], out[4096];
    ts_bin("cellchaos", bin, sizeof bin);
    snprintf(cmd, sizeof cmd, "'%s' --help", bin);
    cr_expect_eq(ts_run(cmd, out, sizeof out), 0);
    cr_expect(strstr(out, "--kill-every") != NULL && strstr(out, "--batch-schedulers") != NULL,
              "%s", out);
}
