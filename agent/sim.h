/* sim.h — many simulated machines in one process, for scale tests of the
 * cell: each registers, heartbeats, long-polls and reports like a real
 * agent (the same loop.h state machine), but its tasks run no process: a
 * task "runs" for its job's duration_ms option, or when that is 0 for a
 * time drawn from the simulator's distribution, then reports finished.
 *
 * All machines share one REQ socket (two contexts each) and nng's own
 * threads: no thread per machine, so that 10,000 of them fit in one
 * process. Nothing is durable: a restarted simulator starts afresh.
 */
#ifndef AG_SIM_H
#define AG_SIM_H

#include <stdint.h>

#include "agent/loop.h"
#include "proto/tls.h"

typedef struct ag_sim_opts {
    uint32_t machines;     /* how many */
    const char *prefix;    /* names are prefix + 5-digit index: sim-00042 */
    uint64_t seed;         /* run times are drawn from a generator seeded with this */
    uint32_t dur_lo_ms;    /* run time when the job gives none: uniform in [lo, hi] */
    uint32_t dur_hi_ms;
    ag_config machine;     /* capacity, ports, attrs, timings; name ignored */
    const cs_tls *tls;     /* certificates for tls+tcp:// servers (proto/tls.h), or NULL;
                            * borrowed by ag_sim_open only (each dialer keeps its own) */
} ag_sim_opts;

typedef struct ag_sim ag_sim;

/* Dial the servers of `url` (one URL or a list, proto/servers.h: every
 * one on the machines' one socket, loop.h) and make the machines (not started). `o` is copied, its
 * strings and attrs borrowed until ag_sim_close. *out is the caller's. */
int ag_sim_open(const char *url, const ag_sim_opts *o, ag_sim **out, cs_error *err);
void ag_sim_start(ag_sim *s);
/* Stop every machine (tasks are simply dropped), then free everything. */
void ag_sim_close(ag_sim *s);

/* Sums over the machines. */
void ag_sim_counts(ag_sim *s, uint32_t *registered, ag_counts *total);

/* "MS" or "LO-HI" (milliseconds, lo <= hi) into lo and hi. */
int ag_sim_parse_duration(const char *text, uint32_t *lo, uint32_t *hi, cs_error *err);

#endif
