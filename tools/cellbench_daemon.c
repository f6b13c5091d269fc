/* cellbench_daemon.c — a cellstated child process (see cellbench_daemon.h). */
#include "tools/cellbench_daemon.h"
#include "tools/cellbench_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cellstate/client.h"

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

/* A TCP port of 127.0.0.1 that was free a moment ago: bound, read back and
 * released. Another process could take it before cellstated listens; the
 * start then fails and says so. */
static int free_port(int *port, cs_error *err)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return cs_errorf(err, CS_EIO, "socket: %s", strerror(errno));
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int rc = CS_OK;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        rc = cs_errorf(err, CS_EIO, "finding a free port: %s", strerror(errno));
    else
        *port = ntohs(a.sin_port);
    close(fd);
    return rc;
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

int cb_daemon_start(cb_daemon *d, char *const argv[], const char *log, uint32_t ready_ms,
                    cs_error *err)
{
    d->pid = 0;
    snprintf(d->log, sizeof d->log, "%s", log);
    int port = 0, rc;
    if ((rc = free_port(&port, err)) != CS_OK)
        return rc;
    snprintf(d->url, sizeof d->url, "tcp://127.0.0.1:%d", port);

    size_t n = 0;
    while (argv[n] != NULL)
        n++;
    char **args = calloc(n + 3, sizeof *args);
    if (args == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    memcpy(args, argv, n * sizeof *args);
    char listen[] = "--listen";
    args[n] = listen;
    args[n + 1] = d->url;
    rc = cb_spawn(args, log, &d->pid, err);
    free(args);
    if (rc != CS_OK)
        return rc;

    cs_client *c;
    if ((rc = cs_client_open(d->url, 500, &c, err)) != CS_OK) {
        cb_daemon_stop(d, 5000);
        return rc;
    }
    for (uint32_t waited = 0;; waited += 50) {
        cs_msg r;
        if ((rc = cs_client_call(c, CS_MSG_STATS, "\x80", 1, &r, err)) == CS_OK)
            break;
        int status;
        if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
            d->pid = 0;
            rc = cs_errorf(err, CS_EIO, "cellstated exited with status %d (log: %s)", status,
                           log);
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
