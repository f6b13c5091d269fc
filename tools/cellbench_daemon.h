/* cellbench_daemon.h — a cellstated child process for a benchmark: found
 * beside cellbench, started on 127.0.0.1 on a port the kernel picks, stopped with
 * SIGTERM like a real deployment stops it.
 */
#ifndef CB_DAEMON_H
#define CB_DAEMON_H

#include <stddef.h>
#include <stdint.h>

#include "cellstate/error.h"

typedef struct cb_daemon {
    int pid; /* 0 when not running */
    char url[64];
    char log[512]; /* its stdout and stderr */
    /* The certificates it is dialled with (borrowed; NULL: plain). */
    const struct cs_tls *tls;
} cb_daemon;

/* The cellstated binary: `flag` when given, else "cellstated" in the
 * directory of this executable (/proc/self/exe). CS_ENOTFOUND when it is not
 * an executable file. */
int cb_cellstated_path(const char *flag, char *out, size_t size, cs_error *err);

/* Start `argv[0]` with `argv` (NULL-terminated, borrowed), its standard
 * output and error appended to `log`; it gets SIGTERM if this process dies.
 * Its pid into *pid: the caller reaps it (cb_daemon_stop on a cb_daemon
 * holding it does). */
int cb_spawn(char *const argv[], const char *log, int *pid, cs_error *err);

/* Start `argv[0]` with `argv` (NULL-terminated) plus "--listen
 * tcp://127.0.0.1:0 --addr-file LOG.addr" (any free port, which cellstated
 * writes into that file: d->url), output appended to `log`, and wait up to
 * `ready_ms` until it answers `stats`. The child gets SIGTERM if this
 * process dies. On failure nothing is left running (d->pid is 0). */
int cb_daemon_start(cb_daemon *d, char *const argv[], const char *log, uint32_t ready_ms,
                    cs_error *err);

/* The same on the listen URL `url` (borrowed): a member of a replicated
 * cell must listen where the cluster file says; a tls+tcp:// one is
 * dialled with `tls` (borrowed, kept in d->tls; NULL for a plain URL). */
int cb_daemon_start_at(cb_daemon *d, char *const argv[], const char *url,
                       const struct cs_tls *tls, const char *log, uint32_t ready_ms,
                       cs_error *err);

/* SIGTERM, and wait up to `timeout_ms` for it to exit (SIGKILL after).
 * Returns its wait status, -1 when it had to be killed, 0 when not running. */
int cb_daemon_stop(cb_daemon *d, uint32_t timeout_ms);

/* The end of the log at `path`, up to size - 1 bytes, NUL-terminated,
 * into `out`; returns its length (0, "", when there is no log). And its
 * last line alone. Errors show them because the benchmarks remove their
 * directories, logs included, as they exit. */
size_t cb_log_tail(const char *path, char *out, size_t size);
void cb_log_last_line(const char *path, char *out, size_t size);

/* User plus system CPU time the daemon has used so far, in seconds
 * (/proc/PID/stat); NaN when unknown. */
double cb_daemon_cpu_s(const cb_daemon *d);

#endif
