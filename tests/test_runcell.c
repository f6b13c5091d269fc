/* test_runcell.c — integration: the README's local cell (tools/run-cell.sh,
 * which `./run.sh` and `make run` start) comes up with the examples, stops
 * after --for, exits 0 and leaves no task process behind. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/support.h"

/* Each test has its own timeout, and with one libcriterion's runner leaks
 * a 48-byte record now and then, which LeakSanitizer blames on the whole
 * binary: suppress leaks whose stack lies in libcriterion, and only those. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libcriterion.so\n"; }

/* Processes whose working directory lies under `dir` (the tasks run in
 * their task directories); each is named in the test's log and killed. */
static int processes_under(const char *dir)
{
    DIR *p = opendir("/proc");
    cr_assert(p != NULL);
    struct dirent *e;
    int n = 0;
    size_t len = strlen(dir);
    while ((e = readdir(p)) != NULL) {
        int pid = atoi(e->d_name);
        if (pid <= 0)
            continue;
        char link[64], cwd[PATH_MAX];
        snprintf(link, sizeof link, "/proc/%d/cwd", pid);
        ssize_t k = readlink(link, cwd, sizeof cwd - 1);
        if (k <= 0)
            continue;
        cwd[k] = '\0';
        if (strncmp(cwd, dir, len) == 0) {
            cr_log_error("pid %d still runs in %s", pid, cwd);
            kill(pid, SIGKILL);
            n++;
        }
    }
    closedir(p);
    return n;
}

/* Ended means ended: no task is left running in the agents' directories
 * under `dir`. */
static void no_process_left(const char *dir)
{
    char real[PATH_MAX];
    cr_assert(realpath(dir, real) != NULL);
    cr_assert_eq(processes_under(real), 0);
}

/* Run tools/run-cell.sh with `args` in `dir` until it ends; everything it
 * printed (the live view redraws for --for seconds) into *all (the
 * caller's: free), its end into out. Fails the test unless it exits 0. */
static void run_cell(const char *dir, const char *args, char **all, char *out, size_t size)
{
    const char *bin = getenv("CELLSCHED_BIN");
    char cmd[2048], line[1024];
    snprintf(cmd, sizeof cmd, "CELLSCHED_BIN='%s' tools/run-cell.sh --dir '%s' %s 2>&1",
             bin && bin[0] ? bin : "bin", dir, args);
    FILE *p = popen(cmd, "r");
    cr_assert(p != NULL);
    size_t cap = 1 << 20, used = 0;
    char *a = malloc(cap);
    cr_assert(a != NULL);
    while (fgets(line, sizeof line, p) != NULL) {
        size_t n = strlen(line);
        if (used + n < cap) {
            memcpy(a + used, line, n + 1);
            used += n;
        }
    }
    a[used] = '\0';
    snprintf(out, size, "%s", used > size - 1 ? a + used - (size - 1) : a);
    int st = pclose(p);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "run-cell.sh ended with %d:\n%s", st, out);
    *all = a;
}

/* Whether the file at `path` has `needle` on one of its lines. */
static bool log_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    bool found = false;
    while (f != NULL && !found && fgets(line, sizeof line, f) != NULL)
        found = strstr(line, needle) != NULL;
    if (f != NULL)
        fclose(f);
    return found;
}

Test(runcell, the_local_cell_runs_the_examples_and_stops_clean, .init = ts_tmp_setup, .fini = ts_tmp_teardown,
     .timeout = 240)
{
    char dir[400], out[8192], *all;
    snprintf(dir, sizeof dir, "%s/run", ts_tmp);
    run_cell(dir, "--for 5", &all, out, sizeof out);
    cr_assert(strstr(all, "cellsched is running"), "%s", out);
    /* Three replicas by default, one of them the leader, in the summary. */
    cr_assert(strstr(all, "the cell state is replicated (3 members"), "%s", out);
    cr_assert(strstr(all, " leader "), "no leader among the members:\n%s", out);
    /* The examples' web service was healthy and listed by URL. */
    cr_assert(strstr(all, "web:  http://127.0.0.1:"), "%s", out);
    /* The first replica serves the HTTP API, and the summary says where. */
    cr_assert(strstr(all, "HTTP API: http://127.0.0.1:"), "%s", out);
    /* ... and the dashboard, on the same port. */
    const char *api = strstr(all, "HTTP API: http://127.0.0.1:");
    const char *ui = strstr(all, "Dashboard: http://127.0.0.1:");
    cr_assert(ui != NULL, "no dashboard URL in the summary:\n%s", out);
    cr_assert_eq(atoi(ui + strlen("Dashboard: http://127.0.0.1:")),
                 atoi(api + strlen("HTTP API: http://127.0.0.1:")), "%s", out);
    cr_assert(strstr(all, "run-cell: stopped"), "%s", out);
    free(all);
    /* Plain TCP: each replica said so at start. */
    char log[500];
    snprintf(log, sizeof log, "%s/logs/cellstated-1.log", dir);
    cr_assert(log_has(log, "WARNING: unauthenticated"), "no warning in %s", log);
    char summary[500];
    snprintf(summary, sizeof summary, "%s/summary.txt", dir);
    cr_assert_eq(access(summary, R_OK), 0, "no %s", summary);
    no_process_left(dir);
}

/* make run TLS=1: the same cell over mutual TLS, one replica. */
Test(runcell, the_local_cell_runs_over_tls, .init = ts_tmp_setup, .fini = ts_tmp_teardown,
     .timeout = 240)
{
    char dir[400], out[8192], *all;
    snprintf(dir, sizeof dir, "%s/run", ts_tmp);
    run_cell(dir, "--tls --replicas 1 --for 5", &all, out, sizeof out);
    cr_assert(strstr(all, "cellsched is running: cellstated on tls+tcp://127.0.0.1:"), "%s", out);
    cr_assert(strstr(all, "web:  http://127.0.0.1:"), "the examples ran:\n%s", out);
    cr_assert(strstr(all, "HTTP API: https://127.0.0.1:"), "%s", out);
    cr_assert(strstr(all, "CELLSCHED_TLS_CERT="), "%s", out);
    free(all);
    char log[500];
    snprintf(log, sizeof log, "%s/logs/cellstated.log", dir);
    cr_assert(!log_has(log, "unauthenticated"), "a TLS cell warned it is unauthenticated");
    cr_assert(!log_has(log, "at the TLS handshake"), "a process of the cell was refused at the handshake");
    no_process_left(dir);
}

Test(runcell, a_replica_count_other_than_1_3_5_is_refused, .init = ts_tmp_setup,
     .fini = ts_tmp_teardown)
{
    char cmd[1024], out[2048];
    snprintf(cmd, sizeof cmd, "tools/run-cell.sh --dir '%s/run' --replicas 2 2>&1", ts_tmp);
    int st = ts_run(cmd, out, sizeof out);
    cr_assert_eq(st, 2, "exit %d: %s", st, out);
    cr_assert(strstr(out, "'2' is not 1, 3 or 5"), "%s", out);
}
