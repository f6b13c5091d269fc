/* port.h — everything the scheduling loop needs from outside itself: the
 * cell and the clock, as one small table.
 *
 * The loop (sched.h) and the copy's sync (cellcopy.h) decide; they never
 * touch a socket or a clock themselves but call through a cs_sched_port.
 * canonical/raft does the same with `struct raft_io` (a libuv one for
 * servers, an in-memory fixture for tests), and cellsched's agent with its
 * backend (agent/runner.c real, agent/sim.c simulated). Two ports:
 *
 *   nng    cellstated over proto/client.h: what cell-batch and cell-service
 *          run. The requests and replies are the wire protocol's
 *          (docs/protocol.md), byte for byte as before the port existed;
 *          the clocks are CLOCK_MONOTONIC and CLOCK_REALTIME, and sleeping
 *          is nanosleep(2), cut short by a signal.
 *   local  a cs_store in the same process (borrowed), through the same
 *          functions cellstated's writer calls (txn/commit.h, txn/ops.h),
 *          with a virtual clock: `now` is the port's time and `sleep`
 *          moves it forward at once. Several schedulers may share one
 *          local port (one thread): they then share its clock. For the
 *          tests, cellbench and the simulator: the real loop, deterministic,
 *          without processes or sleeps.
 *
 * Times. `now` is monotonic nanoseconds, not milliseconds: the loop charges
 * each decision's time to the scheduler's busyness (metrics.h), and a
 * placement of a few tasks takes microseconds. `wall` is milliseconds since
 * the epoch, what the cell stamps (a job's `submitted`), for wait times
 * and notes.
 *
 * Errors. Each call returns CS_OK or an error code with `err` set; a port
 * never exits or asserts on what the cell answers. What the loop does with
 * an error is the loop's business (it logs and retries all but CS_ENOMEM).
 */
#ifndef CS_SCHED_PORT_H
#define CS_SCHED_PORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cellstate/error.h"
#include "cellstate/record.h"
#include "cellstate/store.h"
#include "proto/client.h"
#include "proto/schedreport.h"
#include "txn/txn.h"

struct cs_copy;

typedef struct cs_sched_port {
    void *ctx;         /* the implementation's; passed back as each call's first argument */
    const char *where; /* the cell, in words, for the log: the server's URL, or "in process" */

    /* Omega's sync: bring copy `c` (borrowed) up to the cell's current
     * version, asking for the changes since cs_copy_version(c) in the form
     * cs_copy_apply_bytes reads (and without running-only changes when the
     * copy omits them, cs_copy_omit_running). The copy's tentative changes
     * have been rolled back by the caller (cs_copy_sync). Errors: the
     * port's (CS_EIO on a timeout, the cell's code on a refusal) and
     * cs_copy_apply_bytes'. */
    int (*sync)(void *ctx, struct cs_copy *c, cs_error *err);

    /* Commit transaction `t` (borrowed: only read). `r` is initialised and
     * owned by the caller; on CS_OK it holds one outcome per item of `t`,
     * the committed and conflict counts and the cell's version after it. */
    int (*commit)(void *ctx, const cs_txn *t, cs_txn_result *r, cs_error *err);

    /* job.note, job.scale, job.surge, job.end of job `job`. `note` is
     * borrowed (only read); job.end is stamped with the cell's clock. */
    int (*note)(void *ctx, cs_id job, const char *note, cs_error *err);
    int (*scale)(void *ctx, cs_id job, uint32_t count, cs_error *err);
    int (*surge)(void *ctx, cs_id job, uint32_t surge, cs_error *err);
    int (*job_end)(void *ctx, cs_id job, cs_error *err);

    /* sched.report: `body[0..len)` is the packed report (borrowed: only
     * read during the call), as proto/schedreport.h reads it. */
    int (*report)(void *ctx, const void *body, size_t len, cs_error *err);

    /* Monotonic nanoseconds, and milliseconds since the epoch. */
    int64_t (*now)(void *ctx);
    int64_t (*wall)(void *ctx);

    /* Return when `now` reaches `until` (monotonic ns), or earlier on a
     * wake-up (the nng port: a signal, after which the loop looks at its
     * stop flag). At once when `until` has passed. */
    void (*sleep)(void *ctx, int64_t until);

    /* Mesos-style offers (cellstated --concurrency offers, server/offers.h):
     * ask for the offer as scheduler `sched` (borrowed) whose tasks hold
     * `held` (borrowed: DRF's numerators), waiting at most `wait_ms`;
     * *granted tells whether it holds the offer now. While it does, `commit`
     * commits under its lease (offer.commit) instead of as a plain commit.
     * `release` gives it back (CS_OK when none is held; a lease already
     * taken back is CS_ESTATE naming it, and is forgotten all the same). */
    int (*acquire)(void *ctx, const char *sched, const cs_res *held, uint32_t wait_ms,
                   bool *granted, cs_error *err);
    int (*release)(void *ctx, cs_error *err);
} cs_sched_port;

/* ---- over nng: cellstated ------------------------------------------------ */

typedef struct cs_port_nng cs_port_nng;

/* A port that talks to cellstated at `url` (borrowed: it names the cell in
 * the loop's log for the port's life) through a client of its own
 * (cs_client_open_tls: connects without blocking, over mutual TLS with
 * `tls` — borrowed for the call, NULL for none —, calls time out after
 * `timeout_ms`), whose requests carry `token` (copied; NULL: none; a cell
 * with --auth-tokens, proto/principal.h). On success *out is the
 * caller's: cs_port_nng_free. */
int cs_port_nng_open(const char *url, const cs_tls *tls, const char *token, uint32_t timeout_ms,
                     cs_port_nng **out, cs_error *err);

/* A port over `client` (borrowed: it must outlive the port, which never
 * closes it), for a caller that already holds one. *out is the caller's. */
int cs_port_nng_over(cs_client *client, cs_port_nng **out, cs_error *err);

void cs_port_nng_free(cs_port_nng *p);

/* The table (the port's own: valid until cs_port_nng_free). */
const cs_sched_port *cs_port_nng_table(cs_port_nng *p);

/* Ask for a full sync in pieces of `chunk` records (protocol.md §5.7;
 * the server may lower it to its --sync-chunk); 0, the default: in one
 * reply. The scheduler's --sync-chunk. */
void cs_port_nng_set_chunk(cs_port_nng *p, uint32_t chunk);

/* ---- in-process: a cs_store and a virtual clock ------------------------------- */

typedef struct cs_port_local cs_port_local;

/* A port over `store` (borrowed: it must outlive the port) whose clocks
 * start at `mono_ns` (monotonic) and `wall_ms` (epoch ms) and move only
 * when a scheduler sleeps or cs_port_local_advance says so. On success
 * *out is the caller's: cs_port_local_free. CS_ENOMEM. */
int cs_port_local_new(cs_store *store, int64_t mono_ns, int64_t wall_ms, cs_port_local **out,
                      cs_error *err);
void cs_port_local_free(cs_port_local *p);

/* The table (the port's own: valid until cs_port_local_free). */
const cs_sched_port *cs_port_local_table(cs_port_local *p);

/* Move the virtual clock forward by `ns` (>= 0), as time passing outside
 * the schedulers would. */
void cs_port_local_advance(cs_port_local *p, int64_t ns);

/* Make the port a cell with offers, as cellstated --concurrency offers:
 * a commit is refused (CS_ESTATE) unless a scheduler holds the offer, and
 * `acquire` grants it to one scheduler at a time, taking back a lease
 * held `timeout_ns` of the virtual clock. One thread runs the schedulers of
 * a local port, so an acquire never waits: it is granted, or not. What a
 * lease may claim is left to the commit's own judgement (the server's
 * check that claims fit the offer is the server's: server/offers.h). */
void cs_port_local_offers(cs_port_local *p, int64_t timeout_ns);

/* What went through the port, for tests and benchmarks. */
typedef struct cs_port_local_counts {
    uint64_t syncs, full_syncs;   /* full: the reply carried the whole cell */
    uint64_t commits, claims, committed;
    uint64_t notes, scales, surges, job_ends, reports;
    uint64_t grants, refusals;    /* offers granted; acquires not granted */
    int64_t slept_ns;             /* virtual time the schedulers slept */
} cs_port_local_counts;
void cs_port_local_counts_get(const cs_port_local *p, cs_port_local_counts *out);

/* The latest sched.report the port received (the port's own: valid until
 * the next report or cs_port_local_free), or NULL before the first. */
const cs_sched_report *cs_port_local_last_report(const cs_port_local *p);

#endif
