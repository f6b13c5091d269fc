/* alive.c — the agent's heartbeat file and its reading by supervisors (see
 * alive.h).
 */
#include "agent/alive.h"

#include "proto/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Fixed width (43 bytes: a pid, a 64-bit sequence and a grace never need
 * more), so that each write covers the whole of the previous one. */
#define RECORD_FMT "%10d %20llu %10u\n"

struct ag_alive {
    int fd;
    uint32_t grace_ms, period_ms;
    unsigned long long seq;
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled by stop; on CLOCK_MONOTONIC */
    bool stopping;     /* guarded by mu */
};

uint32_t ag_alive_period_ms(uint32_t grace_ms)
{
    uint32_t p = grace_ms / 8;
    return p < 10 ? 10 : p > 1000 ? 1000 : p;
}

/* One record, in place. A failed write is said on stderr and tried again
 * next period: the supervisors tolerate a grace of silence. */
static void alive_write(ag_alive *a)
{
    char rec[64];
    int n = snprintf(rec, sizeof rec, RECORD_FMT, (int)getpid(), a->seq++, a->grace_ms);
    ssize_t w;
    while ((w = pwrite(a->fd, rec, (size_t)n, 0)) < 0 && errno == EINTR)
        ;
    if (w != n)
        fprintf(stderr, "cell-agent: writing %s: %s\n", AG_ALIVE_FILE,
                w < 0 ? strerror(errno) : "short write");
}

static void *alive_main(void *arg)
{
    ag_alive *a = arg;
    pthread_mutex_lock(&a->mu);
    while (!a->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += (long)(a->period_ms % 1000) * 1000000L;
        until.tv_sec += a->period_ms / 1000 + until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        while (!a->stopping && pthread_cond_timedwait(&a->cv, &a->mu, &until) != ETIMEDOUT)
            ;
        if (a->stopping)
            break;
        pthread_mutex_unlock(&a->mu);
        alive_write(a);
        pthread_mutex_lock(&a->mu);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

int ag_alive_start(const char *dir, uint32_t grace_ms, ag_alive **out, cs_error *err)
{
    char path[4200];
    int n = snprintf(path, sizeof path, "%s/%s", dir, AG_ALIVE_FILE);
    if (n <= 0 || (size_t)n >= sizeof path)
        return cs_errorf(err, CS_EINVAL, "work directory path is too long");
    ag_alive *a = calloc(1, sizeof *a);
    if (a == NULL)
        return cs_errorf(err, CS_ENOMEM, "alive: out of memory");
    int rc = CS_OK;
    a->fd = -1;
    a->grace_ms = grace_ms;
    a->period_ms = ag_alive_period_ms(grace_ms);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    a->seq = (unsigned long long)ts.tv_sec * 1000000000ULL + (unsigned long long)ts.tv_nsec;
    pthread_mutex_init(&a->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a->cv, &ca);
    pthread_condattr_destroy(&ca);
    a->fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (a->fd < 0) {
        rc = cs_errorf(err, CS_EIO, "%s: %s", path, strerror(errno));
        goto fail;
    }
    /* The first record before anything is adopted or started: a restarted
     * agent is in touch with its tasks' supervisors at once. */
    alive_write(a);
    int rv = pthread_create(&a->thread, NULL, alive_main, a);
    if (rv != 0) {
        rc = cs_errorf(err, CS_EIO, "alive: thread: %s", strerror(rv));
        goto fail;
    }
    a->thread_started = true;
    *out = a;
    return CS_OK;
fail:
    ag_alive_stop(a);
    return rc;
}

void ag_alive_stop(ag_alive *a)
{
    if (a == NULL)
        return;
    if (a->thread_started) {
        pthread_mutex_lock(&a->mu);
        a->stopping = true;
        pthread_cond_signal(&a->cv);
        pthread_mutex_unlock(&a->mu);
        pthread_join(a->thread, NULL);
    }
    if (a->fd >= 0)
        close(a->fd);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

void ag_alive_watch_init(ag_alive_watch *w, uint32_t grace_ms, int64_t now)
{
    memset(w, 0, sizeof *w);
    w->heard_ms = now;
    w->grace_ms = grace_ms;
}

bool ag_alive_orphaned(ag_alive_watch *w, const char *path, int64_t now)
{
    char rec[sizeof w->last];
    ssize_t got = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        while ((got = pread(fd, rec, sizeof rec - 1, 0)) < 0 && errno == EINTR)
            ;
        close(fd);
    }
    if (got > 0) {
        rec[got] = '\0';
        if (strcmp(rec, w->last) != 0) {
            memcpy(w->last, rec, (size_t)got + 1);
            w->heard_ms = now;
            int pid;
            unsigned long long seq;
            unsigned grace;
            char nl;
            if (sscanf(rec, "%d %llu %u%c", &pid, &seq, &grace, &nl) == 4 && nl == '\n' &&
                grace >= AG_ORPHAN_GRACE_MIN_MS)
                w->grace_ms = grace;
        }
    }
    return now - w->heard_ms > (int64_t)w->grace_ms;
}
