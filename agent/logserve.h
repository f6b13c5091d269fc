/* logserve.h — the agent's side of `cellctl logs`: it serves its tasks'
 * stdout and stderr (task.logs, docs/protocol.md §12) to whoever asks, so
 * that a task's output can be read wherever it runs with no shared
 * filesystem, and it deletes ended tasks' directories after a retention.
 *
 * The files are the ones the supervisor writes (runner.h): WORKDIR/tasks/
 * <task id>-<attempt>/stdout and stderr. A request names a task and an
 * attempt by number and a stream by name, never a path, so it cannot
 * reach outside the task directories; a task this agent does not have (or
 * no longer has) is CS_ENOTFOUND, naming it. A reply carries at most
 * AG_LOGS_MAX bytes: a client reads on from the offset the reply ends at
 * (cellctl logs -f polls so until the task ends).
 *
 * Retention (cell-agent --retain-count, --retain-for): a placement's
 * directory is kept while its task runs and while the cell still needs to
 * hear about it; once it is `done` (runner.h), it is deleted when more
 * than `keep` newer done directories exist, or when it has been done for
 * longer than `max_age_ms`. The newest `keep` therefore stay readable for
 * that long after their task ended. The task's sandbox (isolate.h) goes
 * with its directory.
 *
 * The service is one nng REP socket and one thread that answers requests
 * one at a time and sweeps the directories between them (every second):
 * reading a file is quick, and a reply is bounded.
 */
#ifndef AG_LOGSERVE_H
#define AG_LOGSERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cellstate/error.h"
#include "cellstate/record.h"
#include "proto/agentmsg.h"

#define AG_LOGS_MAX CS_LOGS_MAX         /* bytes in one reply, at most */
#define AG_LOGS_DEFAULT CS_LOGS_DEFAULT /* ... when the request says no "max" */

/* One task.logs request, decoded (proto/agentmsg.h). */
typedef cs_logs_req ag_logs_req;

/* What a read found: data[0..len) starts at `offset` of a file of `size`
 * bytes now. `data` is malloc'd, the caller's (free it), NULL when len 0. */
typedef struct ag_logs_chunk {
    uint64_t offset, size;
    char *data;
    size_t len;
} ag_logs_chunk;

/* Read what `q` asks from the task directories under `workdir` (only
 * read). CS_ENOTFOUND when the placement's directory or stream is absent
 * (a message naming the task and attempt); CS_EIO. An offset at or past
 * the end gives no data. A tail that finds fewer lines than asked within
 * `max` bytes gives the last `max` bytes (possibly from mid-line). */
int ag_logs_read(const char *workdir, const ag_logs_req *q, ag_logs_chunk *out, cs_error *err);

/* Retention of done placements' directories. */
typedef struct ag_retain {
    uint32_t keep;       /* the newest this many done directories stay ... */
    uint64_t max_age_ms; /* ... for at most this long after they were done */
} ag_retain;

/* Delete the done directories under workdir/tasks that `r` no longer
 * keeps, judging age against `now_ms` (wall clock, ms since the epoch:
 * the done file's mtime). *removed counts them (may be NULL). A directory
 * that cannot be removed is left for the next sweep; CS_EIO only when the
 * tasks directory cannot be read; CS_ENOMEM. */
int ag_retain_sweep(const char *workdir, const ag_retain *r, int64_t now_ms, uint32_t *removed,
                    cs_error *err);

typedef struct ag_logsrv ag_logsrv;

/* Listen on `listen_url` (tcp://HOST:PORT; port 0 = a free one) and start
 * the thread that serves task.logs and sweeps with `r`. `workdir` and `r`
 * are copied. The advertised URL (ag_logsrv_url) is the listen URL with
 * the bound port, and with `host` in place of a wildcard address (0.0.0.0,
 * ::, *): what another machine dials. On success *out is the caller's:
 * ag_logsrv_close. CS_EINVAL (naming the URL) for a URL that is not tcp://
 * or cannot be listened on. */
int ag_logsrv_open(const char *workdir, const char *listen_url, const char *host,
                   const ag_retain *r, ag_logsrv **out, cs_error *err);

/* The URL to advertise (machine.register's log_url); valid until close. */
const char *ag_logsrv_url(const ag_logsrv *s);

/* Stop serving and sweeping; waits for the thread. NULL is a no-op. */
void ag_logsrv_close(ag_logsrv *s);

#endif
