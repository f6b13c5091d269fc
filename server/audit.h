/* audit.h — cellstated's audit log: every accepted write, who sent it, what
 * it changed, when (issue 17: "every accepted write is in an audit log
 * (who, what, when) that `cellctl audit` reads").
 *
 * Why a log of its own, beside the store's commit log: the commit log holds
 * commands (what the state machine applies), compacted after --log-retain,
 * and says nothing of who sent them; a principal is not part of the cell's
 * state and must not be (a replica replaying the log would have to agree on
 * it). The audit is a trail for people: one JSON object per line in
 * DIR/audit.log, appended by the server that accepted the write,
 *
 *   {"time":1765000000123,"who":"operator","action":"job.kill",
 *    "target":"job 12 web","version":418}
 *
 * readable with grep and jq as well as with `cellctl audit` (the `audit`
 * request, docs/protocol.md §5.28).
 *
 * Writing: the writer thread adds a group's accepted writes to a
 * cs_audit_buf and appends them with one write(2) (a commit group can hold
 * a thousand writes: one system call, not a thousand). No fsync of its
 * own: the store's commit (or the Raft majority) is the durable record of
 * the change; the audit is a trail, and an fsync per group would double
 * the cost of every write for it. A crash may lose the last entries, or
 * leave half a line, which the reader skips.
 *
 * Size: past `max_bytes` (--audit-max-bytes) the file is renamed
 * audit.log.1 (replacing the one before) and a new audit.log begun, so the
 * trail takes at most twice max_bytes; 0 keeps one file without bound.
 *
 * Failures: an I/O error writing the audit does not stop the write it
 * records, which is already committed — refusing the cell's writes
 * because its trail cannot grow (a full disk that LMDB, with its
 * preallocated map, still writes into) would turn a lost trail into a
 * stopped cell. It is counted (cs_audit_errors: the metric
 * cellsched_audit_errors_total) and logged to stderr at most once a
 * minute.
 *
 * Threads: flushes come from the writer thread and from the workers that
 * change the membership; reads from any worker. One mutex orders the
 * appends and the rotation; a read opens both files under it, then reads
 * without it.
 */
#ifndef CS_SERVER_AUDIT_H
#define CS_SERVER_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cellstate/arena.h"
#include "cellstate/error.h"
#include "proto/readmsg.h"

typedef struct cs_audit cs_audit;

/* The default of --audit-max-bytes: 64 MiB, about half a million entries. */
#define CS_AUDIT_MAX_BYTES_DEFAULT (64u << 20)

/* Open (creating, 0600) DIR/audit.log for appending. `dir` is copied.
 * On CS_OK *out is the caller's: cs_audit_close. CS_EIO naming the file,
 * CS_EINVAL for a path too long, CS_ENOMEM. */
int cs_audit_open(const char *dir, uint64_t max_bytes, cs_audit **out, cs_error *err);
void cs_audit_close(cs_audit *a);

/* Entries built up for one append. */
typedef struct cs_audit_buf {
    char *data;
    size_t len, cap;
    uint32_t n;
    bool lost; /* out of memory: some entries were dropped (counted as an error) */
} cs_audit_buf;

void cs_audit_buf_init(cs_audit_buf *b);
void cs_audit_buf_free(cs_audit_buf *b);

/* Add one entry, its strings (only read) JSON-escaped and cut to
 * CS_AUDIT_WHO_MAX, CS_AUDIT_ACTION_MAX and CS_AUDIT_TARGET_MAX bytes (at
 * a UTF-8 character's boundary). */
void cs_audit_add(cs_audit_buf *b, uint64_t time_ms, const char *who, const char *action,
                  const char *target, uint64_t version);

/* Append b's entries to the log in one write(2), rotating first when they
 * would take it past max_bytes, and empty `b`. An error is counted and
 * logged (see above), never returned. */
void cs_audit_flush(cs_audit *a, cs_audit_buf *b);

/* The errors so far: failed appends (their entries lost), failed
 * rotations (the file grows on past its bound), groups whose entries did
 * not fit in memory. */
uint64_t cs_audit_errors(cs_audit *a);

/* The newest q->limit entries matching `q` (only read), oldest first, into
 * *out (an array of *n, its strings in `ar`, the caller's), and *more when
 * older ones matched too. Reads audit.log from its end, then audit.log.1,
 * and stops at the first entry older than q->since (the files are in the
 * order the writes were accepted) or at q->limit + 1 matches; memory is
 * bounded by the limit, the time by the two files' size. A line that is
 * not an entry (half a line after a crash) is skipped. CS_EIO naming the
 * file, CS_ENOMEM. */
int cs_audit_read(cs_audit *a, const cs_audit_req *q, cs_arena *ar, cs_audit_entry **out,
                  uint32_t *n, bool *more, cs_error *err);

#endif
