/* promtext.h — Prometheus' text exposition format (version 0.0.4), and
 * fixed-bucket histograms that many threads may observe at once.
 *
 * Why here, below everything: the format and the histogram know nothing of
 * the cell. cellstated writes its /metrics with them (server/metrics.c);
 * an agent or a scheduler that serves its own metrics later uses the same
 * writer, so that escaping and number formatting are written once.
 *
 * The format (prometheus.io/docs/instrumenting/exposition_formats): one
 * `# HELP name text` and `# TYPE name counter|gauge|histogram|summary` per
 * family, then its samples `name{label="value",...} number`, each on a
 * line. In label values a backslash, a double quote and a newline are
 * written `\\`, `\"` and `\n`; in HELP text a backslash and a newline.
 * The text must be UTF-8 (Prometheus refuses a whole scrape that is not). A
 * histogram is cumulative `name_bucket{le="..."}` samples ending with
 * le="+Inf", then `name_sum` and `name_count` (which equals the +Inf
 * bucket).
 *
 * Errors: a writer that runs out of memory remembers it and ignores what
 * follows; cs_prom_finish reports CS_ENOMEM once, so that the code writing
 * forty families is not forty checks.
 */
#ifndef CS_PROMTEXT_H
#define CS_PROMTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cellstate/error.h"

/* A growing text: the exposition being written. Zero-initialised (or
 * cs_prom_init) it is empty. */
typedef struct cs_prom {
    char *buf;
    size_t len, cap;
    bool failed; /* out of memory at some point: the text is incomplete */
} cs_prom;

/* One label: name (a Prometheus label name, written as given) and value
 * (any bytes but NUL, escaped when written; bytes that are not UTF-8
 * written as U+FFFD). Both borrowed. */
typedef struct cs_prom_label {
    const char *name;
    const char *value;
} cs_prom_label;

typedef enum cs_prom_type {
    CS_PROM_COUNTER,
    CS_PROM_GAUGE,
    CS_PROM_HISTOGRAM,
} cs_prom_type;

void cs_prom_init(cs_prom *p);
/* Release the text (after a failure, or instead of cs_prom_finish). */
void cs_prom_free(cs_prom *p);

/* `# HELP name help` and `# TYPE name type`: once per family, before its
 * samples. `name` and `help` are borrowed (help escaped as the format
 * asks). */
void cs_prom_family(cs_prom *p, const char *name, cs_prom_type type, const char *help);

/* One sample `name{labels} value`: labels[0..n) (borrowed; n may be 0).
 * cs_prom_u64 writes the integer exactly (a counter of requests past
 * 2^53 keeps every digit); cs_prom_f64 writes the shortest decimal that
 * reads back as `v`, and +Inf, -Inf or NaN as the format spells them. */
void cs_prom_u64(cs_prom *p, const char *name, const cs_prom_label *labels, size_t n, uint64_t v);
void cs_prom_f64(cs_prom *p, const char *name, const cs_prom_label *labels, size_t n, double v);

/* ---- histograms ---------------------------------------------------------------- */

/* The most finite buckets a histogram has (its +Inf bucket besides). */
#define CS_PROM_BUCKETS_MAX 24

/* A histogram of integer observations in a raw unit (nanoseconds, writes)
 * with fixed upper bounds: observed from any thread without a lock (each
 * count and the sum an atomic), written out in the base unit: every bound
 * and the sum divided by `divisor` (1e9 from nanoseconds to seconds;
 * divided, not multiplied by 1e-9, so that 2051500000 ns is written
 * 2.0515 and not 2.0515000000000003).
 * Set up with cs_prom_hist_init; nothing to free. */
typedef struct cs_prom_hist {
    const uint64_t *bounds; /* nb ascending upper bounds (inclusive), raw unit; borrowed */
    size_t nb;
    double divisor;
    _Atomic uint64_t counts[CS_PROM_BUCKETS_MAX + 1]; /* per bucket, not cumulative; [nb]: above all */
    _Atomic uint64_t sum;                             /* raw unit, wraps past 2^64 */
} cs_prom_hist;

/* `bounds` (borrowed: it must outlive h; a static table) holds nb
 * ascending values, 1 <= nb <= CS_PROM_BUCKETS_MAX, and divisor > 0:
 * CS_EINVAL otherwise. */
int cs_prom_hist_init(cs_prom_hist *h, const uint64_t *bounds, size_t nb, double divisor,
                      cs_error *err);

/* Count one observation `v` (raw unit): two relaxed atomic additions. */
void cs_prom_hist_observe(cs_prom_hist *h, uint64_t v);

/* The samples of histogram `h` (its family already written): one
 * name_bucket per bound and +Inf, cumulative, then name_sum and
 * name_count, each with labels[0..n) (borrowed) before `le`. The counts
 * are read one by one while others may observe: _count is the sum of the
 * buckets read, so that it always equals the +Inf bucket. */
void cs_prom_hist_write(cs_prom *p, const char *name, const cs_prom_label *labels, size_t n,
                        const cs_prom_hist *h);

/* The text written: on CS_OK *out (NUL-terminated; *len bytes without the
 * NUL) is transferred to the caller (free()) and `p` is empty again.
 * CS_ENOMEM when any write failed (the text is freed). */
int cs_prom_finish(cs_prom *p, char **out, size_t *len, cs_error *err);

#endif
