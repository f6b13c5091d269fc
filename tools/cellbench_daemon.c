/* cellbench_daemon.c — a cellstated child process (see cellbench_daemon.h). */
#include "tools/cellbench_daemon.h"
#include "tools/cellbench_util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proto/client.h"

int cb_cellstated_path(const char *flag, char *out, size_t size, cs_error *err)
{
    if (flag != NULL) {
        if (snprintf(out, size, "%s", flag) >= (int)size)
            return cs_errorf(err, CS_EINVAL, "--cellstated: path too long");
    } else {
        char self[4096];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n < 0)
            return cs_errorf(err, CS_EIO, "reading /proc/self/exe: %s", strerror(errno));
        self[n] = '\0';
        if (snprintf(out, size, "%s/cellstated", dirname(self)) >= (int)size)
            return cs_errorf(err, CS_EINVAL, "path of cellstated too long");
    }
    if (access(out, X_OK) != 0)
        return cs_errorf(err, CS_ENOTFOUND, "%s is not an executable (build it with make, or "
                                            "give --cellstated PATH)", out);
    return CS_OK;
}

int cb_spawn(char *const argv[], const char *log, int *pid, cs_error *err)
{
    pid_t parent = getpid();
    pid_t p = fork();
    if (p < 0)
        return cs_errorf(err, CS_EIO, "fork: %s", strerror(errno));
    if (p == 0) {
        /* A benchmark killed by a signal must not leave its server behind. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(127);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    *pid = p;
    return CS_OK;
}

size_t cb_log_tail(const char *path, char *out, size_t size)
{
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    if (fseek(f, 0, SEEK_END) == 0) {
        long end = ftell(f);
        fseek(f, end > (long)size - 1 ? end - (long)size + 1 : 0, SEEK_SET);
    }
    size_t n = fread(out, 1, size - 1, f);
    out[n] = '\0';
    fclose(f);
    return n;
}

void cb_log_last_line(const char *path, char *out, size_t size)
{
    char buf[1024];
    size_t n = cb_log_tail(path, buf, sizeof buf);
    while (n > 0 && buf[n - 1] == '\n')
        buf[--n] = '\0';
    char *line = strrchr(buf, '\n');
    snprintf(out, size, "%s", line ? line + 1 : buf);
}

/* Whether the daemon has exited; if so, reap it and say so in err, with
 * the last line of its log (the log goes with the benchmark's directory). */
static bool exited(cb_daemon *d, const char *log, cs_error *err)
{
    int status;
    if (waitpid(d->pid, &status, WNOHANG) != d->pid)
        return false;
    d->pid = 0;
    char last[256];
    cb_log_last_line(log, last, sizeof last);
    cs_errorf(err, CS_EIO, "cellstated exited with status %d: \"%s\" (log: %s)", status, last,
              log);
    return true;
}

/* Wait up to ready_ms for cellstated's --addr-file and read the address it
 * listens on into d->url. */
static int read_addr(cb_daemon *d, const char *path, const char *log, uint32_t ready_ms,
                     cs_error *err)
{
    for (uint32_t waited = 0;; waited += 20) {
        FILE *f = fopen(path, "r");
        if (f != NULL) {
            bool ok = fgets(d->url, sizeof d->url, f) != NULL;
            fclose(f);
            size_t n = ok ? strcspn(d->url, "\n") : 0;
            if (n == 0)
                return cs_errorf(err, CS_EPROTO, "cellstated's address file %s is empty", path);
            d->url[n] = '\0';
            return CS_OK;
        }
        if (exited(d, log, err))
            return CS_EIO;
        if (waited >= ready_ms)
            return cs_errorf(err, CS_EIO, "cellstated did not listen within %u ms (log: %s)",
                             ready_ms, log);
        cb_sleep_ms(20);
    }
}

int cb_daemon_start(cb_daemon *d, char *const argv[], const char *log, uint32_t ready_ms,
                    cs_error *err)
{
    /* Port 0: the kernel picks a free port as cellstated binds it, and
     * cellstated writes which into the address file. A port probed free
     * beforehand could be taken by anyone before cellstated listens. */
    return cb_daemon_start_at(d, argv, "tcp://127.0.0.1:0", NULL, log, ready_ms, err);
}

int cb_daemon_start_at(cb_daemon *d, char *const argv[], const char *url,
                       const struct cs_tls *tls, const char *log, uint32_t ready_ms,
                       cs_error *err)
{
    d->pid = 0;
    d->tls = tls;
    snprintf(d->log, sizeof d->log, "%s", log);
    int rc;
    char addr[sizeof d->log + 8], listen[] = "--listen", addr_flag[] = "--addr-file";
    char *any = (char *)url; /* execv's argv is not const; it is not written */
    snprintf(addr, sizeof addr, "%s.addr", log);
    unlink(addr);

    size_t n = 0;
    while (argv[n] != NULL)
        n++;
    char **args = calloc(n + 5, sizeof *args);
    if (args == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    memcpy(args, argv, n * sizeof *args);
    args[n] = listen;
    args[n + 1] = any;
    args[n + 2] = addr_flag;
    args[n + 3] = addr;
    rc = cb_spawn(args, log, &d->pid, err);
    free(args);
    if (rc != CS_OK)
        return rc;
    if ((rc = read_addr(d, addr, log, ready_ms, err)) != CS_OK) {
        cb_daemon_stop(d, 5000);
        return rc;
    }

    cs_client *c;
    if ((rc = cs_client_open_tls(d->url, d->tls, 500, &c, err)) != CS_OK) {
        cb_daemon_stop(d, 5000);
        return rc;
    }
    /* Ready once stats is answered. */
    cs_arena a;
    cs_arena_init(&a);
    for (uint32_t waited = 0;; waited += 50) {
        cs_stats_reply st;
        cs_arena_reset(&a);
        if ((rc = cs_client_stats(c, &st, &a, err)) == CS_OK)
            break;
        if (exited(d, log, err)) {
            rc = CS_EIO;
            break;
        }
        if (waited >= ready_ms) {
            cb_daemon_stop(d, 5000);
            rc = cs_errorf(err, CS_EIO, "cellstated did not answer within %u ms (log: %s)",
                           ready_ms, log);
            break;
        }
        cb_sleep_ms(50);
    }
    cs_arena_free(&a);
    cs_client_close(c);
    return rc;
}

int cb_daemon_stop(cb_daemon *d, uint32_t timeout_ms)
{
    if (d->pid <= 0)
        return 0;
    kill(d->pid, SIGTERM);
    int status = -1;
    for (uint32_t waited = 0;; waited += 10) {
        if (waitpid(d->pid, &status, WNOHANG) == d->pid)
            break;
        if (waited >= timeout_ms) {
            /* Said, so that a slow stop does not go unseen (its log says
             * what it was doing). */
            fprintf(stderr, "cellbench: %s (pid %d) did not stop within %u ms of SIGTERM: killed "
                            "(its log: %s)\n",
                    d->url, d->pid, timeout_ms, d->log);
            kill(d->pid, SIGKILL);
            waitpid(d->pid, NULL, 0);
            status = -1;
            break;
        }
        cb_sleep_ms(10);
    }
    d->pid = 0;
    return status;
}

double cb_daemon_cpu_s(const cb_daemon *d)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", d->pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return (double)NAN;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* Fields 14 and 15 (utime, stime) follow the command name, which is in
     * parentheses and may itself hold blanks. */
    const char *p = strrchr(buf, ')');
    unsigned long long ut, st;
    if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
                            &st) != 2)
        return (double)NAN;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}
