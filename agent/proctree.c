/* proctree.c — a process's descendants, from /proc (see proctree.h).
 */
#include "agent/proctree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

int ag_proctree_subreaper(cs_error *err)
{
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
        return cs_errorf(err, CS_EIO, "PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
    return CS_OK;
}

typedef struct proc {
    pid_t pid, ppid;
    bool zombie;
    bool mine; /* a descendant of the root */
} proc;

static int by_pid(const void *a, const void *b)
{
    pid_t x = ((const proc *)a)->pid, y = ((const proc *)b)->pid;
    return (x > y) - (x < y);
}

/* The parent and state of process `pid`; false when it is gone (or its
 * stat cannot be read). The command name may hold spaces and parentheses:
 * the fields after it follow its last ')'. */
static bool read_stat(const char *pid, pid_t *ppid, bool *zombie)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%s/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf - 1)) < 0 && errno == EINTR)
        ;
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    char *close_paren = strrchr(buf, ')');
    char state;
    int pp;
    if (close_paren == NULL || sscanf(close_paren + 1, " %c %d", &state, &pp) != 2)
        return false;
    *ppid = pp;
    *zombie = state == 'Z' || state == 'X';
    return true;
}

/* Every process of /proc into *out (malloc'd, *n of them), sorted by pid. */
static int read_procs(proc **out, size_t *n, cs_error *err)
{
    DIR *d = opendir("/proc");
    if (d == NULL)
        return cs_errorf(err, CS_EIO, "/proc: %s", strerror(errno));
    size_t cap = 256, k = 0;
    proc *v = malloc(cap * sizeof *v);
    int rc = CS_OK;
    struct dirent *e;
    while (v != NULL && (e = readdir(d)) != NULL) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9' ||
            strspn(e->d_name, "0123456789") != strlen(e->d_name))
            continue;
        proc p = {(pid_t)atoi(e->d_name), 0, false, false};
        if (!read_stat(e->d_name, &p.ppid, &p.zombie))
            continue;
        if (k == cap) {
            proc *w = realloc(v, cap * 2 * sizeof *v);
            if (w == NULL) {
                free(v);
                v = NULL;
                break;
            }
            v = w;
            cap *= 2;
        }
        v[k++] = p;
    }
    closedir(d);
    if (v == NULL)
        return cs_errorf(err, CS_ENOMEM, "proctree: out of memory");
    qsort(v, k, sizeof *v, by_pid);
    *out = v;
    *n = k;
    return rc;
}

int ag_proctree_signal(pid_t root, int sig, uint32_t *count, cs_error *err)
{
    proc *v = NULL;
    size_t n = 0;
    *count = 0;
    int rc = read_procs(&v, &n, err);
    if (rc != CS_OK)
        return rc;
    /* Mark to a fixed point: each pass marks the children of what is
     * marked, so as many passes as the tree is deep. */
    for (bool changed = true; changed;) {
        changed = false;
        for (size_t i = 0; i < n; i++) {
            if (v[i].mine)
                continue;
            proc key = {v[i].ppid, 0, false, false};
            const proc *parent = v[i].ppid == root ? NULL : bsearch(&key, v, n, sizeof *v, by_pid);
            if (v[i].ppid == root || (parent != NULL && parent->mine)) {
                v[i].mine = true;
                changed = true;
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        if (v[i].mine && !v[i].zombie && v[i].pid != root && kill(v[i].pid, sig) == 0)
            (*count)++;
    free(v);
    return CS_OK;
}
