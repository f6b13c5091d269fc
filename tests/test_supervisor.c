/* test_supervisor.c — the pieces a task's supervisor stands on, with real
 * processes: finding and signalling every descendant of a process, those
 * that called setsid included (agent/proctree.h), and the agent's
 * heartbeat file and its reading (agent/alive.h). The supervisor itself,
 * with a real agent and cellstated, is tested in test_agent.c.
 *
 * Every wait polls a condition under a deadline. Every process a test
 * starts is its descendant (the test makes itself a subreaper), and the
 * test's .fini kills and reaps all of them, failed or not.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/alive.h"
#include "proto/clock.h"
#include "agent/proctree.h"
#include "tests/support.h"

#define DEADLINE_MS 20000

static void be_subreaper(void)
{
    cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0, "prctl: %s", strerror(errno));
}

/* The state letter and parent of `pid` from /proc; '\0' when it is gone. */
static char proc_state(pid_t pid, pid_t *ppid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return '\0';
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'), st = '\0';
    int pp = 0;
    if (p == NULL || sscanf(p + 1, " %c %d", &st, &pp) != 2)
        return '\0';
    if (ppid)
        *ppid = pp;
    return st;
}

/* Dead: gone, or a zombie waiting for its parent. */
static bool dead(pid_t pid)
{
    char st = proc_state(pid, NULL);
    return st == '\0' || st == 'Z' || st == 'X';
}

static bool wait_dead(pid_t pid)
{
    int64_t end = cs_clock_now_ms() + DEADLINE_MS;
    while (cs_clock_now_ms() < end) {
        if (dead(pid))
            return true;
        ts_sleep_ms(10);
    }
    return false;
}

static void read_pid(int fd, pid_t *out)
{
    ssize_t got;
    while ((got = read(fd, out, sizeof *out)) < 0 && errno == EINTR)
        ;
    cr_assert_eq(got, (ssize_t)sizeof *out, "a pid through the pipe");
}

static void write_pid(int fd)
{
    pid_t me = getpid();
    if (write(fd, &me, sizeof me) != (ssize_t)sizeof me)
        _exit(1);
}

/* ---- proctree ------------------------------------------------------------------- */

/* root (a subreaper) has a child g1 that called setsid, and a grandchild g3
 * that called setsid and whose parent g2 exited, so that g3 was re-parented
 * to root. A sibling of root, outside its tree, must not be touched. */
Test(proctree, signals_every_descendant_even_after_setsid, .timeout = 60,
     .fini = ts_kill_descendants)
{
    be_subreaper();
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t sibling = fork();
    cr_assert(sibling >= 0);
    if (sibling == 0) {
        for (;;)
            pause();
    }
    pid_t root = fork();
    cr_assert(root >= 0);
    if (root == 0) {
        if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
            _exit(1);
        if (fork() == 0) { /* g1 */
            setsid();
            write_pid(p[1]);
            for (;;)
                pause();
        }
        if (fork() == 0) {     /* g2 */
            if (fork() == 0) { /* g3 */
                setsid();
                write_pid(p[1]);
                for (;;)
                    pause();
            }
            _exit(0);
        }
        for (;;)
            pause(); /* never reaps: g2 stays a zombie, which is skipped */
    }
    pid_t g[2];
    read_pid(p[0], &g[0]);
    read_pid(p[0], &g[1]);
    /* Wait until the orphan has come to root. */
    int64_t end = cs_clock_now_ms() + DEADLINE_MS;
    for (;;) {
        pid_t pp0 = 0, pp1 = 0;
        proc_state(g[0], &pp0);
        proc_state(g[1], &pp1);
        if (pp0 == root && pp1 == root)
            break;
        cr_assert(cs_clock_now_ms() < end, "both setsid processes are root's children");
        ts_sleep_ms(10);
    }

    uint32_t n = 0;
    cs_error err = {0};
    cr_assert_eq(ag_proctree_signal(root, SIGKILL, &n, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(n, 2, "the two live descendants are signalled, the zombie is not (%u)", n);
    cr_assert(wait_dead(g[0]) && wait_dead(g[1]), "both are dead");
    cr_assert(!dead(root), "root itself is not signalled");
    cr_assert(!dead(sibling), "nor anything outside its tree");
    cr_assert_eq(ag_proctree_signal(root, SIGKILL, &n, &err), CS_OK);
    cr_assert_eq(n, 0, "a second walk finds nothing alive");
    close(p[0]);
    close(p[1]);
}

/* ---- alive ---------------------------------------------------------------------- */

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert(f != NULL, "%s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
}

/* The reader's verdicts on a clock the test moves: no file is silence
 * from the start; each change is contact; a record's grace replaces the
 * one the watch began with, and garbage is contact without a grace. */
Test(alive, the_reader_counts_silence_from_the_last_change, .timeout = 30)
{
    char dir[256], path[300];
    cr_assert_eq(ts_mkdtemp(dir, sizeof dir), 0);
    snprintf(path, sizeof path, "%s/%s", dir, AG_ALIVE_FILE);
    ag_alive_watch w;
    ag_alive_watch_init(&w, 1000, 5000);
    cr_assert(!ag_alive_orphaned(&w, path, 6000), "a whole grace from the start");
    cr_assert(ag_alive_orphaned(&w, path, 6001), "no file: silence");

    write_text(path, "      1234  1000000000000000000       3000\n");
    cr_assert(!ag_alive_orphaned(&w, path, 7000), "a new record is contact");
    cr_assert_eq(w.grace_ms, 3000, "the record's grace is taken");
    cr_assert(!ag_alive_orphaned(&w, path, 10000));
    cr_assert(ag_alive_orphaned(&w, path, 10001), "unchanged for the grace: orphaned");

    write_text(path, "      1234  1000000000000000001       3000\n");
    cr_assert(!ag_alive_orphaned(&w, path, 20000), "the agent is back: contact again");
    write_text(path, "torn garbage\n");
    cr_assert(!ag_alive_orphaned(&w, path, 22000), "any change is contact");
    cr_assert_eq(w.grace_ms, 3000, "but garbage brings no grace");
    cr_assert(ag_alive_orphaned(&w, path, 25001));
    ts_rmtree(dir);
}

/* The writer: a record at once, with its pid and grace, then a new one
 * every period. */
Test(alive, the_agent_writes_at_once_and_every_period, .timeout = 30)
{
    char dir[256], path[300];
    cr_assert_eq(ts_mkdtemp(dir, sizeof dir), 0);
    snprintf(path, sizeof path, "%s/%s", dir, AG_ALIVE_FILE);
    cr_assert_eq(ag_alive_period_ms(1000), 125);
    cr_assert_eq(ag_alive_period_ms(15000), 1000, "at most a second");
    cr_assert_eq(ag_alive_period_ms(AG_ORPHAN_GRACE_MIN_MS), 12);
    cr_assert_eq(AG_ORPHAN_GRACE_DEFAULT_MS, CS_HEARTBEAT_TIMEOUT_DEFAULT_MS + 5000);

    ag_alive *a;
    cs_error err = {0};
    cr_assert_eq(ag_alive_start(dir, 200, &a, &err), CS_OK, "%s", err.msg);
    ag_alive_watch w;
    ag_alive_watch_init(&w, 60000, cs_clock_now_ms());
    ag_alive_orphaned(&w, path, cs_clock_now_ms());
    int pid;
    unsigned long long seq0;
    unsigned grace;
    cr_assert_eq(sscanf(w.last, "%d %llu %u", &pid, &seq0, &grace), 3, "record '%s'", w.last);
    cr_assert_eq(pid, getpid());
    cr_assert_eq(grace, 200);
    cr_assert_eq(w.grace_ms, 200, "the reader takes the writer's grace");
    cr_assert_eq(strlen(w.last), 43, "fixed width");
    /* Three more records come, each with a higher sequence. */
    unsigned long long last = seq0;
    for (int k = 0; k < 3; k++) {
        int64_t end = cs_clock_now_ms() + DEADLINE_MS;
        unsigned long long seq = last;
        while (seq == last && cs_clock_now_ms() < end) {
            ts_sleep_ms(5);
            ag_alive_orphaned(&w, path, cs_clock_now_ms());
            sscanf(w.last, "%d %llu", &pid, &seq);
        }
        cr_assert_gt(seq, last, "record %d is new", k + 1);
        last = seq;
    }
    ag_alive_stop(a);
    ts_rmtree(dir);
}
