/* schedreport.h — what schedulers say about themselves: the body of
 * `sched.report`, and the server's table of the latest report of each.
 *
 * Omega judges schedulers by their busyness, conflict fraction and job wait
 * times (§5 of the paper). Those are measured inside each scheduler, so each
 * reports them under its name; cellstated keeps the latest report per name
 * in memory — like heartbeats, not in the store: metrics are a view of now,
 * not cell state, and must not grow the log — and serves them in `stats`.
 * The server does not interpret metric names.
 *
 * The table is not locked: its owner (cellstated) serialises access.
 */
#ifndef CS_SCHEDREPORT_H
#define CS_SCHEDREPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "cellstate/error.h"
#include "cellstate/record.h"

#define CS_SCHED_KIND_MAX 32        /* bytes of a scheduler's kind ("batch", "service") */
#define CS_SCHED_METRICS_MAX 64     /* metrics per report */
#define CS_SCHED_METRIC_KEY_MAX 64  /* bytes of a metric's name */
#define CS_SCHED_TABLE_MAX 1024     /* schedulers remembered at once */
#define CS_SCHED_WARNING_MAX 512    /* bytes of a scheduler's standing warning */
/* A scheduler not heard from for this long is forgotten. */
#define CS_SCHED_REPORT_TTL_MS (10 * 60 * 1000)

/* A metric keeps the msgpack kind it arrived as, so that a counter sent as
 * an integer is served as one. */
typedef enum cs_metric_type {
    CS_METRIC_UINT = 0,
    CS_METRIC_INT = 1, /* negative */
    CS_METRIC_FLOAT = 2,
} cs_metric_type;

typedef struct cs_sched_metric {
    char key[CS_SCHED_METRIC_KEY_MAX + 1];
    uint8_t type; /* cs_metric_type */
    union {
        uint64_t u;
        int64_t i;
        double f;
    } v;
} cs_sched_metric;

/* One report, self-contained (no pointers): copied by assignment. */
typedef struct cs_sched_report {
    char name[CS_NAME_MAX + 1]; /* non-empty */
    char kind[CS_SCHED_KIND_MAX + 1];
    /* What the scheduler wants its operator to know for as long as it runs
     * ("policy: ignoring ImageLocalityPriority ..."); "" = nothing. */
    char warning[CS_SCHED_WARNING_MAX + 1];
    uint32_t nmetrics;
    cs_sched_metric metrics[CS_SCHED_METRICS_MAX]; /* keys unique */
} cs_sched_report;

/* The id a scheduler named `name` (borrowed) signs its transactions with
 * (cs_txn.sched): a hash of the name, odd so that it is never 0. Both
 * ends compute it: a scheduler for its commits, cellstated to file a
 * commit's counts under the name its reports give (server/metrics.c). */
uint64_t cs_sched_id_of(const char *name);

/* Read a sched.report body {"name", "kind", "metrics": {key: number}} with
 * an optional "warning" string (absent = "").
 * A missing field, a wrong type, too many metrics or a non-number value is
 * CS_EPROTO; an empty or too long name, kind or key, a NUL byte, a repeated
 * key or a value that is not finite is CS_EINVAL — each naming the field.
 * `body` is only read. */
int cs_sched_report_unpack(const msgpack_object *body, cs_sched_report *out, cs_error *err);

/* Pack `r` as a sched.report body (what a scheduler sends). CS_ENOMEM. */
int cs_sched_report_pack(msgpack_packer *pk, const cs_sched_report *r);

/* Append a metric to `r` (a scheduler building its report). CS_EINVAL when
 * the key is empty, too long or already there, or the report is full. */
int cs_sched_report_add_uint(cs_sched_report *r, const char *key, uint64_t v, cs_error *err);
int cs_sched_report_add_float(cs_sched_report *r, const char *key, double v, cs_error *err);

/* The latest report of each scheduler, by name. */
typedef struct cs_sched_entry {
    cs_sched_report r;
    int64_t seen_ms; /* when it arrived, on the owner's monotonic clock */
} cs_sched_entry;

typedef struct cs_sched_table {
    cs_sched_entry *v; /* sorted by name; owned */
    size_t n, cap;
} cs_sched_table;

void cs_sched_table_init(cs_sched_table *t);
void cs_sched_table_free(cs_sched_table *t);

/* Forget the schedulers not heard from within CS_SCHED_REPORT_TTL_MS. */
void cs_sched_table_expire(cs_sched_table *t, int64_t now_ms);

/* Keep `r` (copied) as the latest report of its scheduler, seen at now_ms.
 * Expires old entries first. CS_EFULL when CS_SCHED_TABLE_MAX other
 * schedulers are remembered; CS_ENOMEM. */
int cs_sched_table_put(cs_sched_table *t, const cs_sched_report *r, int64_t now_ms,
                       cs_error *err);

/* Pack the table as an array, sorted by name, of
 * {"name", "kind", "age_ms", "metrics": {...}} plus "warning" when the
 * report had one, ages as of now_ms.
 * CS_ENOMEM. */
int cs_sched_table_pack(const cs_sched_table *t, int64_t now_ms, msgpack_packer *pk);

#endif
