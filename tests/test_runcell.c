/* test_runcell.c — integration: the README's local cell (tools/run-cell.sh,
 * which `./run.sh` and `make run` start) comes up with the examples, stops
 * after --for, exits 0 and leaves no task process behind. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/support.h"

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

Test(runcell, the_local_cell_runs_the_examples_and_stops_clean, .init = ts_tmp_setup, .fini = ts_tmp_teardown,
     .timeout = 240)
{
    const char *bin = getenv("CELLSCHED_BIN");
    char dir[400], cmd[2048], out[8192], line[1024];
    snprintf(dir, sizeof dir, "%s/run", ts_tmp);
    snprintf(cmd, sizeof cmd, "CELLSCHED_BIN='%s' tools/run-cell.sh --dir '%s' --for 5 2>&1",
             bin && bin[0] ? bin : "bin", dir);
    FILE *p = popen(cmd, "r");
    cr_assert(p != NULL);
    /* Everything it printed (the live view redraws for --for seconds),
     * then the end of it for the messages. */
    size_t cap = 1 << 20, used = 0;
    char *all = malloc(cap);
    cr_assert(all != NULL);
    while (fgets(line, sizeof line, p) != NULL) {
        size_t n = strlen(line);
        if (used + n < cap) {
            memcpy(all + used, line, n + 1);
            used += n;
        }
    }
    all[used] = '\0';
    snprintf(out, sizeof out, "%s", used > sizeof out - 1 ? all + used - (sizeof out - 1) : all);
    int st = pclose(p);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "run-cell.sh ended with %d:\n%s", st, out);
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
    char summary[500];
    snprintf(summary, sizeof summary, "%s/summary.txt", dir);
    cr_assert_eq(access(summary, R_OK), 0, "no %s", summary);
    /* Ended means ended: no task is left running in the agents' directories. */
    char real[PATH_MAX];
    cr_assert(realpath(dir, real) != NULL);
    cr_assert_eq(processes_under(real), 0);
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
