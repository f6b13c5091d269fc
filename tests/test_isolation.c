/* test_isolation.c — integration: tasks held to what they asked for
 * (agent/isolate.h). A real cellstated, a real cell-agent and cell-batch on
 * 127.0.0.1; jobs are submitted as JSON specs and placed by the scheduler.
 *
 * What a task did is read from its sandbox (--task-root, by default the
 * agent's work directory followed by -tasks) and from its cgroups (the
 * supervisor lists them in the task directory's `cgroup` file), never from
 * timing: the CPU cap is proven by the kernel's throttling counter. Tests
 * that need root and a cgroup memory controller skip, saying so, when
 * they are not there. Every process and every cgroup a test makes is gone
 * when it ends.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/isolate.h"
#include "tests/support.h"

#define DEADLINE_MS 30000

/* The same suppression as test_agent.c: Criterion's runner loses a
 * record of its own in some interleavings of parallel tests. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libcriterion.so\n"; }

static ts_daemon D;
static int agent_pid, batch_pid;
static char work[300], troot[320], alog[320];

static void cleanup(void)
{
    if (agent_pid > 0)
        ts_stop(agent_pid, SIGTERM, 10000);
    if (batch_pid > 0)
        ts_stop(batch_pid, SIGTERM, 10000);
    agent_pid = batch_pid = 0;
    ts_daemon_teardown(&D);
    ts_kill_descendants();
}

/* Root and a memory controller (v2 unified or v1), else skip naming why. */
static void need_cgroups(void)
{
    if (geteuid() != 0)
        cr_skip_test("needs root (cgroups and a task user)");
    char buf[512] = "";
    FILE *f = fopen("/sys/fs/cgroup/cgroup.controllers", "r");
    if (f != NULL) {
        if (fgets(buf, sizeof buf, f) == NULL)
            buf[0] = '\0';
        fclose(f);
    }
    if (strstr(buf, "memory") == NULL && access("/sys/fs/cgroup/memory/cgroup.procs", F_OK) != 0)
        cr_skip_test("needs a cgroup memory controller (v2 at /sys/fs/cgroup or v1 at "
                     "/sys/fs/cgroup/memory)");
}

/* cellstated, cell-agent m1 with --isolation `iso` and --task-pids-max
 * `pids` (NULL: the default), and cell-batch. */
static void start_pids(const char *iso, const char *pids)
{
    cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    ts_daemon_setup(&D, NULL, NULL);
    /* The test's directory is the daemon's (0700 from mkdtemp): opened so
     * that what keeps a task out of the agent's state is the agent. */
    cr_assert_eq(chmod(D.dir, 0711), 0);
    char bin[256], blog[320];
    snprintf(work, sizeof work, "%s/agent", D.dir);
    snprintf(troot, sizeof troot, "%s-tasks", work);
    snprintf(alog, sizeof alog, "%s/agent.log", D.dir);
    ts_bin("cell-agent", bin, sizeof bin);
    const char *av[] = {bin,      "--server", D.url,     "--name",         "m1",
                        "--workdir", work,    "--cpu",   "2",              "--mem",
                        "2048",   "--disk",   "1000",    "--heartbeat-ms", "200",
                        "--poll-wait-ms", "1000", "--kill-grace-ms", "500", "--isolation",
                        iso,      pids ? "--task-pids-max" : NULL, pids, NULL};
    agent_pid = ts_spawn((char *const *)av, alog);
    ts_bin("cell-batch", bin, sizeof bin);
    snprintf(blog, sizeof blog, "%s/batch.log", D.dir);
    const char *bv[] = {bin, "--server", D.url, "--name", "batch", "--idle-ms", "10", NULL};
    batch_pid = ts_spawn((char *const *)bv, blog);
}

static void start(const char *iso) { start_pids(iso, NULL); }

/* Task 0 of job `job` as the cell has it now (strings copied out). */
typedef struct task_view {
    cs_id id;
    uint32_t attempts;
    uint8_t state;
    int32_t exit_code;
    char reason[256];
} task_view;

static bool task_now(cs_id job, task_view *out)
{
    ts_cell c;
    ts_cell_read(D.c, &c);
    bool found = false;
    for (size_t i = 0; i < c.ntasks && !found; i++)
        if (c.tasks[i].job == job && c.tasks[i].index == 0) {
            found = true;
            out->id = c.tasks[i].id;
            out->attempts = c.tasks[i].attempts;
            out->state = c.tasks[i].state;
            out->exit_code = c.tasks[i].exit_code;
            snprintf(out->reason, sizeof out->reason, "%s", c.tasks[i].reason);
        }
    ts_cell_free(&c);
    return found;
}

static void wait_task(cs_id job, uint8_t state, task_view *out)
{
    int64_t end = ts_now_ms() + DEADLINE_MS;
    while (!(task_now(job, out) && out->state == state)) {
        if (ts_now_ms() > end)
            ts_log_file("cell-agent", alog);
        cr_assert(ts_now_ms() <= end, "task 0 of job %llu is %s (it is %s)",
                  (unsigned long long)job, cs_task_state_name(state),
                  cs_task_state_name(out->state));
        ts_sleep_ms(50);
    }
}

/* A file of the task's sandbox (`in_sandbox`) or of its directory in the
 * agent's state. */
static void task_file(const task_view *t, bool in_sandbox, const char *file, char *out,
                      size_t size)
{
    snprintf(out, size, "%s/%s%llu-%u/%s", in_sandbox ? troot : work,
             in_sandbox ? "" : "tasks/", (unsigned long long)t->id, t->attempts, file);
}

/* The file's contents once it has a whole line (caller frees). */
static char *wait_line(const char *path)
{
    int64_t end = ts_now_ms() + DEADLINE_MS;
    for (;;) {
        FILE *f = fopen(path, "r");
        char buf[4096];
        size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f)
            fclose(f);
        buf[n] = '\0';
        if (strchr(buf, '\n'))
            return strdup(buf);
        if (ts_now_ms() > end)
            ts_log_file("cell-agent", alog);
        cr_assert(ts_now_ms() <= end, "%s never had a line", path);
        ts_sleep_ms(50);
    }
}

static bool alive(int pid) { return kill(pid, 0) == 0 || errno == EPERM; }

static bool wait_gone(const char *path, bool is_pid, int pid)
{
    int64_t end = ts_now_ms() + DEADLINE_MS;
    while (ts_now_ms() < end) {
        if (is_pid ? !alive(pid) : access(path, F_OK) != 0)
            return true;
        ts_sleep_ms(50);
    }
    return false;
}

/* The task's cgroups (the supervisor's `cgroup` file), up to 4. */
static uint32_t task_cgroups(const task_view *t, char cg[4][512])
{
    char path[700];
    task_file(t, false, "cgroup", path, sizeof path);
    char *s = wait_line(path);
    uint32_t n = 0;
    for (char *save, *l = strtok_r(s, "\n", &save); l && n < 4; l = strtok_r(NULL, "\n", &save))
        snprintf(cg[n++], 512, "%s", l);
    free(s);
    return n;
}

/* The task's cgroup that has `file` (a controller's), or fail. */
static const char *cgroup_with(char cg[4][512], uint32_t n, const char *file)
{
    char path[700];
    for (uint32_t i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", cg[i], file);
        if (access(path, F_OK) == 0)
            return cg[i];
    }
    cr_assert_fail("no cgroup of the task has %s", file);
    return NULL;
}

static long long read_num(const char *dir, const char *file, const char *key)
{
    char path[700], line[256];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "r");
    cr_assert(f != NULL, "%s: %s", path, strerror(errno));
    long long v = -2;
    size_t klen = key ? strlen(key) : 0;
    while (fgets(line, sizeof line, f))
        if (key == NULL || (strncmp(line, key, klen) == 0 && line[klen] == ' ')) {
            v = atoll(line + (key ? klen + 1 : 0));
            break;
        }
    fclose(f);
    return v;
}

static void kill_job(const char *name)
{
    char bin[256], cmd[700], out[2048];
    ts_bin("cellctl", bin, sizeof bin);
    snprintf(cmd, sizeof cmd, "%s --server %s kill %s", bin, D.url, name);
    cr_assert_eq(ts_run(cmd, out, sizeof out), 0, "%s: %s", cmd, out);
}

/* Every cgroup of the task gone (the supervisor removes them before it
 * writes the task's exit). */
static void assert_cgroups_removed(char cg[4][512], uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        cr_assert(wait_gone(cg[i], false, 0), "cgroup %s is removed", cg[i]);
}

/* `cellctl get machines` shows m1 with isolation `level`. */
static void assert_shown(const char *level)
{
    char bin[256], cmd[700], out[4096];
    ts_bin("cellctl", bin, sizeof bin);
    snprintf(cmd, sizeof cmd, "%s --server %s get machines", bin, D.url);
    int64_t end = ts_now_ms() + DEADLINE_MS;
    while (ts_run(cmd, out, sizeof out) != 0 || strstr(out, "\nm1 ") == NULL) {
        cr_assert(ts_now_ms() <= end, "m1 never registered: %s", out);
        ts_sleep_ms(50);
    }
    cr_assert(strstr(out, "ISOLATION") != NULL, "%s", out);
    char *row = strstr(out, "\nm1");
    cr_assert(row && strstr(row, level) != NULL, "m1's isolation is %s:\n%s", level, out);
    cr_assert(strstr(out, "cellsched.io/isolation=") == NULL,
              "shown as its column, not among ATTRS:\n%s", out);
}

/* ---- memory ------------------------------------------------------------------------- */

/* tail buffers its one endless line: it grows until something stops it. */
#define HOG "head -c 400M /dev/zero | tail"

Test(isolation, task_over_its_memory_is_killed_and_fails_with_the_reason, .timeout = 120,
     .fini = cleanup)
{
    need_cgroups();
    start("cgroup");
    cs_id j = ts_submit(D.c, "{\"name\": \"hog\", \"count\": 1, \"cmd\": \"" HOG "\","
                             " \"resources\": {\"cpu\": 0.1, \"mem\": 32}, \"max_retries\": 0}");
    task_view t;
    wait_task(j, CS_TASK_FAILED, &t);
    cr_assert_str_eq(t.reason, "memory limit (32 MiB)");
    char cg[4][512];
    uint32_t n = task_cgroups(&t, cg);
    cr_assert(n >= 1);
    assert_cgroups_removed(cg, n);
    assert_shown(access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0 ? "cgroup-v2"
                                                                          : "cgroup-v1");
    /* Within its memory it runs and finishes. */
    cs_id ok = ts_submit(D.c, "{\"name\": \"small\", \"count\": 1, \"cmd\": \"head -c 4M "
                              "/dev/zero | tail\", \"resources\": {\"cpu\": 0.1, \"mem\": 64}}");
    wait_task(ok, CS_TASK_FINISHED, &t);
}

Test(isolation, rlimit_fallback_also_stops_a_task_over_its_memory, .timeout = 120,
     .fini = cleanup)
{
    start("rlimit");
    cs_id j = ts_submit(D.c, "{\"name\": \"hog\", \"count\": 1, \"cmd\": \"" HOG "\","
                             " \"resources\": {\"cpu\": 0.1, \"mem\": 32}, \"max_retries\": 0}");
    task_view t;
    wait_task(j, CS_TASK_FAILED, &t);
    cr_assert_neq(t.exit_code, 0);
    char path[700];
    task_file(&t, false, "stderr", path, sizeof path);
    char *err = wait_line(path);
    cr_assert(strstr(err, "memory exhausted") != NULL, "tail ran out of memory: %s", err);
    free(err);
    task_file(&t, false, "cgroup", path, sizeof path);
    cr_assert(access(path, F_OK) != 0, "no cgroup on the rlimit path");
    assert_shown("rlimit");
}

/* ---- killing the whole task --------------------------------------------------------- */

Test(isolation, killed_task_leaves_no_process_after_setsid_and_a_double_fork, .timeout = 120,
     .fini = cleanup)
{
    need_cgroups();
    start("cgroup");
    /* One child leaves the session (setsid), another is orphaned by its
     * parent (a double fork) and leaves the session too. */
    cs_id j = ts_submit(
        D.c, "{\"name\": \"escaper\", \"count\": 1, \"resources\": {\"cpu\": 0.1, \"mem\": 64},"
             " \"cmd\": \"setsid sh -c 'echo $$ > esc1; exec sleep 300' & sh -c 'setsid sh -c "
             "\\\"echo \\\\$\\\\$ > esc2; exec sleep 300\\\" &'; echo $$ > pid.txt; "
             "exec sleep 300\"}");
    task_view t;
    wait_task(j, CS_TASK_RUNNING, &t);
    char path[700];
    int pids[3];
    const char *files[] = {"pid.txt", "esc1", "esc2"};
    for (int i = 0; i < 3; i++) {
        task_file(&t, true, files[i], path, sizeof path);
        char *s = wait_line(path);
        pids[i] = atoi(s);
        free(s);
        cr_assert(pids[i] > 1 && alive(pids[i]), "%s: pid %d lives", files[i], pids[i]);
    }
    /* All three are in the task's cgroup, whatever their session. */
    char cg[4][512];
    uint32_t n = task_cgroups(&t, cg);
    snprintf(path, sizeof path, "%s/cgroup.procs", cgroup_with(cg, n, "cgroup.procs"));
    char *procs = wait_line(path);
    for (int i = 0; i < 3; i++) {
        char needle[32];
        snprintf(needle, sizeof needle, "%d\n", pids[i]);
        cr_assert(strstr(procs, needle) != NULL, "%s (%d) is in %s", files[i], pids[i], path);
    }
    free(procs);

    kill_job("escaper");
    for (int i = 0; i < 3; i++)
        cr_assert(wait_gone(NULL, true, pids[i]), "%s (%d) is gone after the kill", files[i],
                  pids[i]);
    assert_cgroups_removed(cg, n);
}

/* ---- the task user ------------------------------------------------------------------ */

Test(isolation, task_runs_unprivileged_in_its_sandbox_and_cannot_touch_the_agent_state,
     .timeout = 120, .fini = cleanup)
{
    if (geteuid() != 0)
        cr_skip_test("needs root (to run tasks as another user)");
    start("auto");
    char json[2048];
    snprintf(json, sizeof json,
             "{\"name\": \"who\", \"count\": 1, \"resources\": {\"cpu\": 0.1, \"mem\": 64},"
             " \"cmd\": \"id -u > uid; pwd > where; echo $HOME > home; touch %s/evil 2> /dev/null;"
             " echo $? > touched; cat %s/tasks/*/env > /dev/null 2>&1; echo $? > read\"}",
             work, work);
    cs_id j = ts_submit(D.c, json);
    task_view t;
    wait_task(j, CS_TASK_FINISHED, &t);
    char path[700], sandbox[700];
    task_file(&t, true, "", sandbox, sizeof sandbox);
    sandbox[strlen(sandbox) - 1] = '\0';
    const char *files[] = {"uid", "where", "home", "touched", "read"};
    char *v[5];
    for (int i = 0; i < 5; i++) {
        task_file(&t, true, files[i], path, sizeof path);
        v[i] = wait_line(path);
        v[i][strcspn(v[i], "\n")] = '\0';
    }
    struct stat st, ws;
    cr_assert_eq(stat(sandbox, &st), 0);
    cr_assert_neq(atoi(v[0]), 0, "the task's uid is not root's");
    cr_assert_eq((uid_t)atoi(v[0]), st.st_uid, "it owns its sandbox");
    cr_assert_eq(st.st_mode & 0777, 0700, "which is private (mode %o)", st.st_mode & 0777);
    cr_assert_str_eq(v[1], sandbox, "it works in its sandbox");
    cr_assert_str_eq(v[2], sandbox, "HOME is the sandbox");
    cr_assert(strncmp(sandbox, work, strlen(work)) != 0 || sandbox[strlen(work)] != '/',
              "the sandbox %s is outside the agent's state %s", sandbox, work);
    cr_assert_neq(atoi(v[3]), 0, "touch in the agent's state failed");
    snprintf(path, sizeof path, "%s/evil", work);
    cr_assert(access(path, F_OK) != 0, "nothing was written there");
    cr_assert_neq(atoi(v[4]), 0, "the task cannot read other tasks' env either");
    cr_assert_eq(stat(work, &ws), 0);
    cr_assert_eq(ws.st_mode & 077, 0, "the agent's state is private (mode %o)",
                 ws.st_mode & 0777);
    for (int i = 0; i < 5; i++)
        free(v[i]);
}

/* A COMMAND health check is the task's code: as its user, in its sandbox
 * and its cgroups. */
Test(isolation, command_health_checks_run_as_the_task_in_its_cgroups, .timeout = 120,
     .fini = cleanup)
{
    need_cgroups();
    start("cgroup");
    cs_id j = ts_submit(D.c, "{\"name\": \"checked\", \"count\": 1, \"resources\": {\"cpu\": 0.1,"
                             " \"mem\": 64}, \"cmd\": \"id -u > task.uid; exec sleep 300\","
                             " \"health_checks\": [{\"protocol\": \"COMMAND\", \"command\": \"id -u >"
                             " check.uid; cat /proc/self/cgroup > check.cg\", \"grace_period\": \"0s\","
                             " \"interval\": \"1s\", \"timeout\": \"5s\", \"max_failures\": 0}]}");
    task_view t;
    wait_task(j, CS_TASK_RUNNING, &t);
    char path[700], cg[4][512];
    task_file(&t, true, "task.uid", path, sizeof path);
    char *tuid = wait_line(path);
    task_file(&t, true, "check.uid", path, sizeof path);
    char *cuid = wait_line(path);
    cr_assert_str_eq(cuid, tuid, "the check runs as the task's user");
    cr_assert_neq(atoi(cuid), 0);
    uint32_t n = task_cgroups(&t, cg);
    task_file(&t, true, "check.cg", path, sizeof path);
    char *in = wait_line(path);
    const char *leaf = strrchr(cg[0], '/');
    char want[64];
    snprintf(want, sizeof want, "/cellsched%s\n", leaf);
    cr_assert(strstr(in, want) != NULL, "the check is in the task's cgroup %s:\n%s", cg[0], in);
    free(tuid);
    free(cuid);
    free(in);
    kill_job("checked");
    assert_cgroups_removed(cg, n);
}

/* A fork bomb stops at --task-pids-max: the kernel refuses the forks
 * beyond it, and the shell, which cannot fork, gives up. */
Test(isolation, forks_beyond_the_task_pids_max_are_refused, .timeout = 120, .fini = cleanup)
{
    need_cgroups();
    start_pids("cgroup", "10");
    cs_id j = ts_submit(D.c, "{\"name\": \"forky\", \"count\": 1, \"max_retries\": 0,"
                             " \"resources\": {\"cpu\": 0.1, \"mem\": 64}, \"cmd\": \"for i in 1 2 3 4"
                             " 5 6 7 8 9 10 11 12 13 14 15; do sleep 300 & done; exec sleep 300\"}");
    task_view t;
    wait_task(j, CS_TASK_FAILED, &t);
    char path[700];
    task_file(&t, false, "stderr", path, sizeof path);
    char *err = wait_line(path);
    cr_assert(strstr(err, "fork") != NULL, "the shell could not fork: %s", err);
    free(err);
    task_file(&t, false, "isolation", path, sizeof path);
    char *iso = wait_line(path);
    cr_assert(strstr(iso, "pids 10\n") != NULL, "%s", iso);
    free(iso);
}

/* ---- CPU ---------------------------------------------------------------------------- */

Test(isolation, hard_cpu_cap_throttles_and_a_share_only_weighs, .timeout = 120, .fini = cleanup)
{
    need_cgroups();
    start("cgroup");
    cs_id hard = ts_submit(D.c, "{\"name\": \"spin\", \"count\": 1, \"cpu_limit\": \"hard\","
                                " \"resources\": {\"cpu\": 0.1, \"mem\": 64}, \"cmd\": \"while :;"
                                " do :; done & while :; do :; done\"}");
    cs_id share = ts_submit(D.c, "{\"name\": \"share\", \"count\": 1,"
                                 " \"resources\": {\"cpu\": 0.5, \"mem\": 64}, \"cmd\": \"exec "
                                 "sleep 300\"}");
    task_view th, ts;
    wait_task(hard, CS_TASK_RUNNING, &th);
    wait_task(share, CS_TASK_RUNNING, &ts);
    char hc[4][512], sc[4][512];
    uint32_t hn = task_cgroups(&th, hc), sn = task_cgroups(&ts, sc);
    bool v2 = access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0;
    const char *hcpu = cgroup_with(hc, hn, v2 ? "cpu.max" : "cpu.cfs_quota_us");
    const char *scpu = cgroup_with(sc, sn, v2 ? "cpu.weight" : "cpu.shares");
    if (v2) {
        cr_assert_eq(read_num(hcpu, "cpu.max", NULL), 10000, "0.1 core: 10 ms per 100 ms");
        cr_assert_eq(read_num(scpu, "cpu.weight", NULL), 20, "0.5 core: weight 20");
    } else {
        cr_assert_eq(read_num(hcpu, "cpu.cfs_quota_us", NULL), 10000);
        cr_assert_eq(read_num(hcpu, "cpu.cfs_period_us", NULL), 100000);
        cr_assert_eq(read_num(scpu, "cpu.shares", NULL), 512, "0.5 core: 512 shares");
        cr_assert_eq(read_num(scpu, "cpu.cfs_quota_us", NULL), -1, "a share has no cap");
    }
    /* Memory and processes, as requested and as --task-pids-max (default). */
    const char *smem = cgroup_with(sc, sn, v2 ? "memory.max" : "memory.limit_in_bytes");
    cr_assert_eq(read_num(smem, v2 ? "memory.max" : "memory.limit_in_bytes", NULL),
                 64LL << 20, "64 MiB");
    cr_assert_eq(read_num(cgroup_with(sc, sn, "pids.max"), "pids.max", NULL), 4096);
    /* The kernel throttles the two loops: its counter says so. */
    int64_t end = ts_now_ms() + DEADLINE_MS;
    while (read_num(hcpu, "cpu.stat", "nr_throttled") <= 0) {
        cr_assert(ts_now_ms() <= end, "the capped loops were never throttled");
        ts_sleep_ms(100);
    }
    kill_job("spin");
    kill_job("share");
    assert_cgroups_removed(hc, hn);
    assert_cgroups_removed(sc, sn);
}

/* ---- flags -------------------------------------------------------------------------- */

Test(isolation, bad_isolation_flags_are_refused_with_a_message, .timeout = 60)
{
    char bin[256], dir[256], cmd[900], out[4096];
    ts_bin("cell-agent", bin, sizeof bin);
    cr_assert_eq(ts_mkdtemp(dir, sizeof dir), 0);
    snprintf(cmd, sizeof cmd, "%s --isolation strict 2>&1", bin);
    cr_assert_eq(ts_run(cmd, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "--isolation: 'strict' is not auto, cgroup, rlimit or none"), "%s",
              out);
    snprintf(cmd, sizeof cmd,
             "%s --server tcp://127.0.0.1:1 --name m --workdir %s/w --task-user "
             "no-such-user-here 2>&1",
             bin, dir);
    cr_assert_eq(ts_run(cmd, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "--task-user: no user 'no-such-user-here'"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s --task-pids-max 0 2>&1", bin);
    cr_assert_eq(ts_run(cmd, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "--task-pids-max"), "%s", out);
    ts_rmtree(dir);
}

/* ---- the isolation file and the sandbox, without a cell -------------------------------- */

/* What the agent writes for a task is what the supervisor reads. */
Test(isolation_file, written_by_the_agent_read_by_the_supervisor)
{
    char dir[256], root[300], name[64], text[16384];
    cr_assert_eq(ts_mkdtemp(dir, sizeof dir), 0);
    snprintf(root, sizeof root, "%s/tasks", dir);
    struct passwd *pw = getpwuid(geteuid());
    cr_assert(pw != NULL);
    snprintf(name, sizeof name, "%s", pw->pw_name);
    ag_iso_opts o = {AG_ISO_NONE, name, root, 77};
    ag_iso *iso;
    char note[1024];
    cs_error err = {0};
    cr_assert_eq(ag_iso_open(&o, &iso, note, sizeof note, &err), CS_OK, "%s", err.msg);
    cr_assert(strstr(note, "isolation none") != NULL, "%s", note);
    cr_assert(strstr(note, "at most 77 processes") != NULL, "%s", note);
    struct stat st;
    cr_assert_eq(stat(root, &st), 0, "the task root is made");
    cr_assert_eq(st.st_mode & 0777, 0711);
    ag_iso_task t = {250, 96, true};
    cr_assert_eq(ag_iso_task_file(iso, "12-3", &t, text, sizeof text, &err), CS_OK, "%s", err.msg);
    ag_jail j;
    cr_assert_eq(ag_jail_parse(text, &j, &err), CS_OK, "%s\n%s", err.msg, text);
    cr_assert_eq(j.level, AG_ISO_NONE);
    cr_assert_eq(j.uid, geteuid());
    cr_assert(!j.switch_user, "the agent's own user: no switch");
    cr_assert_eq(j.mem_mib, 96);
    cr_assert_eq(j.cpu_millis, 250);
    cr_assert(j.cpu_hard);
    cr_assert_eq(j.pids_max, 77u);
    char want[400];
    snprintf(want, sizeof want, "%s/12-3", root);
    cr_assert_str_eq(j.sandbox, want);
    cr_assert_eq(j.nparents, 0u, "no cgroups at level none");
    cr_assert_neq(ag_jail_parse("level cgroup-v3\n", &j, &err), CS_OK);
    cr_assert(strstr(err.msg, "cgroup-v3") != NULL, "%s", err.msg);
    cr_assert_neq(ag_jail_parse("mem 5\nsomething else\n", &j, &err), CS_OK);
    ag_iso_close(iso);
    ts_rmtree(dir);
}

/* Retention removes a sandbox as its owner: a link the task planted in it
 * is removed, never what it points to. */
Test(isolation_file, a_sandbox_is_removed_as_its_user_and_links_are_not_followed)
{
    if (geteuid() != 0)
        cr_skip_test("needs root (to own a sandbox as another user)");
    struct passwd *pw = getpwnam("nobody");
    if (pw == NULL)
        cr_skip_test("needs a user 'nobody'");
    char dir[256], path[512], sb[300], keep[300], text[1024];
    cr_assert_eq(ts_mkdtemp(dir, sizeof dir), 0);
    cr_assert_eq(chmod(dir, 0711), 0); /* as a task root */
    snprintf(sb, sizeof sb, "%s/sandbox", dir);
    snprintf(keep, sizeof keep, "%s/precious", dir);
    cr_assert_eq(mkdir(sb, 0700), 0);
    cr_assert_eq(chown(sb, pw->pw_uid, pw->pw_gid), 0);
    FILE *f = fopen(keep, "w");
    cr_assert(f != NULL);
    fputs("root's\n", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/link", sb);
    cr_assert_eq(symlink(keep, path), 0);
    snprintf(path, sizeof path, "%s/sub", sb);
    cr_assert_eq(mkdir(path, 0700), 0);
    cr_assert_eq(chown(path, pw->pw_uid, pw->pw_gid), 0);
    snprintf(text, sizeof text, "level none\nuser %d %d\nsandbox %s\n", (int)pw->pw_uid,
             (int)pw->pw_gid, sb);
    snprintf(path, sizeof path, "%s/isolation", dir);
    f = fopen(path, "w");
    cr_assert(f != NULL);
    fputs(text, f);
    fclose(f);
    ag_jail_remove_sandbox(dir);
    cr_assert_neq(access(sb, F_OK), 0, "the sandbox is gone");
    cr_assert_eq(access(keep, F_OK), 0, "what its link pointed to is not");
    ts_rmtree(dir);
}

/* Where no cgroup can be made (here: an agent that is not root), auto
 * says so in one line at start and takes rlimits; `cgroup` refuses. */
Test(isolation, without_cgroups_auto_falls_back_to_rlimits_and_says_so, .timeout = 60,
     .fini = cleanup)
{
    if (geteuid() != 0 || access("/usr/bin/setpriv", X_OK) != 0)
        cr_skip_test("needs root and setpriv (util-linux) to start an agent as nobody");
    struct passwd *pw = getpwnam("nobody");
    if (pw == NULL)
        cr_skip_test("needs a user 'nobody'");
    cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    char bin[256], dir[256], log[320], cmd[1200], out[4096];
    ts_bin("cell-agent", bin, sizeof bin);
    cr_assert_eq(ts_mkdtemp(dir, sizeof dir), 0);
    cr_assert_eq(chown(dir, pw->pw_uid, pw->pw_gid), 0);
    snprintf(work, sizeof work, "%s/w", dir);
    snprintf(log, sizeof log, "%s/agent.log", dir);
    snprintf(cmd, sizeof cmd,
             "setpriv --reuid=%d --regid=%d --clear-groups %s --server tcp://127.0.0.1:1 "
             "--name m --workdir %s --isolation cgroup 2>&1",
             (int)pw->pw_uid, (int)pw->pw_gid, bin, work);
    cr_assert_eq(ts_run(cmd, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "--isolation cgroup: cgroups cannot be used") != NULL, "%s", out);
    char uid[16], gid[16];
    snprintf(uid, sizeof uid, "--reuid=%d", (int)pw->pw_uid);
    snprintf(gid, sizeof gid, "--regid=%d", (int)pw->pw_gid);
    const char *av[] = {"/usr/bin/setpriv", uid, gid, "--clear-groups", bin, "--server",
                        "tcp://127.0.0.1:1", "--name", "m", "--workdir", work, NULL};
    agent_pid = ts_spawn((char *const *)av, log);
    int64_t end = ts_now_ms() + DEADLINE_MS;
    for (;;) {
        FILE *f = fopen(log, "r");
        size_t n = f ? fread(out, 1, sizeof out - 1, f) : 0;
        if (f)
            fclose(f);
        out[n] = '\0';
        if (strstr(out, "cell-agent: machine m"))
            break;
        cr_assert(ts_now_ms() <= end, "the agent never started: %s", out);
        ts_sleep_ms(50);
    }
    cr_assert(strstr(out, "cgroups cannot be used (not root and no delegated cgroup), falling "
                          "back to rlimits; isolation rlimit") != NULL,
              "%s", out);
    cr_assert(strstr(out, "tasks run as nobody") != NULL, "%s", out);
    ts_stop(agent_pid, SIGTERM, 10000);
    agent_pid = 0;
    ts_rmtree(dir);
}

/* A cgroup left by a supervisor killed with SIGKILL, whose pid comes round
 * again: what still runs there is killed, and the task gets it afresh with
 * its own limits; released, it is gone. */
Test(isolation_file, a_leftover_task_cgroup_is_emptied_and_made_afresh, .timeout = 60)
{
    need_cgroups();
    char dir[256], root[300], text[16384], note[4096];
    cr_assert_eq(ts_mkdtemp(dir, sizeof dir), 0);
    snprintf(root, sizeof root, "%s/tasks", dir);
    ag_iso_opts o = {AG_ISO_CGROUP_V1, "root", root, 0};
    ag_iso *iso;
    cs_error err = {0};
    cr_assert_eq(ag_iso_open(&o, &iso, note, sizeof note, &err), CS_OK, "%s", err.msg);
    ag_iso_task t = {100, 48, false};
    cr_assert_eq(ag_iso_task_file(iso, "1-1", &t, text, sizeof text, &err), CS_OK, "%s", err.msg);
    ag_jail j;
    cr_assert_eq(ag_jail_parse(text, &j, &err), CS_OK, "%s", err.msg);
    cr_assert_gt(j.nparents, 0u, "%s", text);
    /* Above any pid the kernel hands out: no live supervisor has it. */
    const int tag = 1 << 23;
    char stale[4][700];
    for (uint32_t i = 0; i < j.nparents; i++) {
        snprintf(stale[i], sizeof stale[i], "%s/task-%d", j.parent[i], tag);
        cr_assert_eq(mkdir(stale[i], 0755), 0, "%s: %s", stale[i], strerror(errno));
    }
    pid_t sleeper = fork();
    if (sleeper == 0) {
        char path[760];
        snprintf(path, sizeof path, "%s/cgroup.procs", stale[0]);
        FILE *f = fopen(path, "w");
        if (f == NULL || fputs("0", f) < 0 || fclose(f) != 0)
            _exit(3);
        execl("/bin/sleep", "sleep", "300", (char *)NULL);
        _exit(4);
    }
    char procs[760];
    snprintf(procs, sizeof procs, "%s/cgroup.procs", stale[0]);
    char *in = NULL;
    for (int64_t end = ts_now_ms() + DEADLINE_MS; in == NULL || in[0] == '\0';) {
        free(in);
        FILE *f = fopen(procs, "r");
        char buf[256] = "";
        size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f)
            fclose(f);
        buf[n] = '\0';
        in = strdup(buf);
        cr_assert(ts_now_ms() <= end, "the sleeper never joined %s", stale[0]);
        if (in[0] == '\0')
            ts_sleep_ms(20);
    }
    free(in);

    cr_assert_eq(ag_jail_make(&j, tag, &err), CS_OK, "%s", err.msg);
    int st;
    cr_assert_eq(waitpid(sleeper, &st, 0), sleeper);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "what ran there was killed");
    cr_assert_eq(j.ncg, j.nparents);
    bool v2 = access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0;
    const char *file = v2 ? "memory.max" : "memory.limit_in_bytes", *mem = NULL;
    for (uint32_t i = 0; i < j.ncg && mem == NULL; i++) {
        char path[3300];
        snprintf(path, sizeof path, "%s/%s", j.cg[i], file);
        if (access(path, F_OK) == 0)
            mem = j.cg[i];
    }
    cr_assert(mem != NULL, "the task has a memory cgroup");
    cr_assert_eq(read_num(mem, file, NULL), 48LL << 20);
    ag_jail_release(&j);
    for (uint32_t i = 0; i < j.nparents; i++)
        cr_assert_neq(access(stale[i], F_OK), 0, "%s is removed", stale[i]);
    ag_iso_close(iso);
    ts_rmtree(dir);
}
