/* cellchaos_load.h — the writes of a chaos run: the service job whose
 * recovery is measured, then batch jobs submitted without pause and some of
 * them killed, each through whichever replica answers, every acknowledged
 * one recorded with the checker (cellchaos_check.h).
 *
 * Why through any replica: a replicated cell accepts a write at any member
 * and forwards it to the leader (issue 14), and a write is acknowledged
 * only once committed; so the load uses a client given every replica,
 * which moves to the next when one does not answer (proto/client.h), and a
 * write whose reply never came is simply not acknowledged (it may or may
 * not be in the cell; the checker asks nothing of it).
 */
#ifndef CC_LOAD_H
#define CC_LOAD_H

#include <stdint.h>

#include "cellstate/error.h"
#include "cellstate/record.h"
#include "tools/cellchaos_check.h"

typedef struct cc_load cc_load;

/* What to submit: batch jobs of `batch_tasks` tasks of 1 core and 512 MiB,
 * one every `every_ms`, a kill of an earlier one after every `kill_each`
 * submits (0: none). */
typedef struct cc_load_opts {
    uint32_t batch_tasks;
    uint32_t every_ms;
    uint32_t kill_each;
    uint64_t seed;
} cc_load_opts;

/* A load on the replicas whose URLs `servers` lists, comma-separated
 * (copied), recording into `k` (borrowed: it must outlive the load). On
 * success *out is the caller's: cc_load_free. */
int cc_load_new(const char *servers, cc_check *k, const cc_load_opts *o, cc_load **out,
                cs_error *err);
void cc_load_free(cc_load *l);

/* Submit the service job "chaos-service" of `count` tasks (half a core and
 * 256 MiB each, priority 100, simulated to run for ever), retrying through
 * every replica for up to `wait_ms`; its id into *job. */
int cc_load_service(cc_load *l, uint32_t count, uint32_t wait_ms, cs_id *job, cs_error *err);

/* Start the batch load on a thread of its own; cc_load_stop ends it. */
int cc_load_start(cc_load *l, cs_error *err);
void cc_load_stop(cc_load *l);

/* Writes tried and acknowledged so far. */
void cc_load_counts(cc_load *l, uint64_t *tried, uint64_t *acked);

#endif
