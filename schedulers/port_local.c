/* port_local.c — the scheduler port over a cs_store in the same process,
 * with a virtual clock (see port.h).
 *
 * Each call does what cellstated's handler for the same request does, with
 * the same functions: a commit is cs_commit, job.note/scale/surge/end are
 * the txn/ops.h operations, and a sync is the reply cellstated would send
 * (proto/sync.h packs it from a snapshot), read by the copy exactly as it
 * reads one off the wire. So a copy synced here is the copy a daemon would
 * hold, and the loop cannot tell the two ports apart except by the clock.
 */
#include "schedulers/port.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/sync.h"
#include "schedulers/cellcopy.h"
#include "txn/commit.h"
#include "txn/ops.h"

struct cs_port_local {
    cs_sched_port table;
    cs_store *store;
    int64_t mono_ns, wall_ms; /* now */
    int64_t wall_at;          /* mono_ns when wall_ms was read */
    msgpack_zone zone;        /* a report's objects */
    cs_sched_report *last;    /* NULL before the first report */
    cs_port_local_counts counts;
    /* cs_port_local_offers: the offer, as cellstated --concurrency offers
     * keeps it (server/offers.c), on the virtual clock. */
    bool offers;
    int64_t offer_timeout_ns;
    char holder[256]; /* who holds the offer (a --name: up to 255 bytes); "" nobody */
    int64_t expires;  /* mono_ns when its lease is taken back */
};

/* ---- the cell -------------------------------------------------------------------- */

static int local_sync(void *ctx, cs_copy *c, cs_error *err)
{
    cs_port_local *p = ctx;
    cs_snap *snap;
    int rc = cs_snap_open(p->store, &snap, err);
    if (rc != CS_OK)
        return cs_error_wrap(err, rc, "sync");
    /* The records go straight from the snapshot into the copy: the reply
     * cellstated would send, without its bytes (cs_copy_apply_snap). */
    bool full = false;
    rc = cs_copy_apply_snap(c, snap, &full, err);
    cs_snap_close(snap);
    if (rc != CS_OK)
        return rc;
    p->counts.syncs++;
    p->counts.full_syncs += full;
    return CS_OK;
}

/* Take the offer back from a holder past its lease. */
static void offer_expire(cs_port_local *p)
{
    if (p->holder[0] != '\0' && p->mono_ns >= p->expires)
        p->holder[0] = '\0';
}

static int local_commit(void *ctx, const cs_txn *t, cs_txn_result *r, cs_error *err)
{
    cs_port_local *p = ctx;
    if (p->offers) {
        offer_expire(p);
        if (p->holder[0] == '\0')
            return cs_errorf(err, CS_ESTATE,
                             "commit outside an offer: this cell makes offers and nobody holds "
                             "one (not acquired, or its lease was taken back)");
    }
    cs_txn_result_free(r);
    cs_txn_result_init(r);
    int rc = cs_commit(p->store, t, r, err);
    if (rc != CS_OK)
        return rc;
    p->counts.commits++;
    p->counts.claims += t->nclaims;
    p->counts.committed += r->committed;
    return CS_OK;
}

static int local_note(void *ctx, cs_id job, const char *note, cs_error *err)
{
    cs_port_local *p = ctx;
    p->counts.notes++;
    return cs_op_job_note(p->store, job, note, NULL, err);
}

static int local_scale(void *ctx, cs_id job, uint32_t count, cs_error *err)
{
    cs_port_local *p = ctx;
    p->counts.scales++;
    return cs_op_job_scale(p->store, job, count, NULL, err);
}

static int local_surge(void *ctx, cs_id job, uint32_t surge, cs_error *err)
{
    cs_port_local *p = ctx;
    p->counts.surges++;
    return cs_op_job_surge(p->store, job, surge, NULL, err);
}

static int64_t local_wall(void *ctx);

static int local_job_end(void *ctx, cs_id job, cs_error *err)
{
    cs_port_local *p = ctx;
    p->counts.job_ends++;
    /* Stamped as cellstated's writer stamps it: with the cell's clock. */
    return cs_op_job_end(p->store, job, (uint64_t)local_wall(p), NULL, err);
}

/* Read the report as cellstated does (proto/schedreport.h), so that a
 * report it would refuse is refused here too, and keep it. */
static int local_report(void *ctx, const void *body, size_t len, cs_error *err)
{
    cs_port_local *p = ctx;
    if (p->last == NULL && (p->last = malloc(sizeof *p->last)) == NULL)
        return cs_errorf(err, CS_ENOMEM, "sched.report: out of memory");
    msgpack_zone_clear(&p->zone);
    msgpack_object obj;
    size_t off = 0;
    msgpack_unpack_return ur = msgpack_unpack(body, len, &off, &p->zone, &obj);
    if (ur == MSGPACK_UNPACK_NOMEM_ERROR)
        return cs_errorf(err, CS_ENOMEM, "sched.report: out of memory");
    if (ur != MSGPACK_UNPACK_SUCCESS || off != len)
        return cs_errorf(err, CS_EPROTO, "sched.report: the body is not one msgpack object");
    cs_sched_report r;
    int rc = cs_sched_report_unpack(&obj, &r, err);
    if (rc != CS_OK)
        return rc;
    *p->last = r;
    p->counts.reports++;
    return CS_OK;
}

/* The schedulers of a local port take turns on one thread: the offer is
 * granted when nobody else holds it, at once, or not at all. */
static int local_acquire(void *ctx, const char *sched, const cs_res *held, uint32_t wait_ms,
                         bool *granted, cs_error *err)
{
    cs_port_local *p = ctx;
    (void)held;
    (void)wait_ms;
    *granted = false;
    if (!p->offers)
        return cs_errorf(err, CS_ESTATE,
                         "offer.acquire: this cell makes no offers (cs_port_local_offers)");
    offer_expire(p);
    if (p->holder[0] != '\0' && strcmp(p->holder, sched) != 0) {
        p->counts.refusals++;
        return CS_OK;
    }
    if (p->holder[0] == '\0') {
        snprintf(p->holder, sizeof p->holder, "%s", sched);
        p->expires = p->mono_ns + p->offer_timeout_ns;
        p->counts.grants++;
    }
    *granted = true;
    return CS_OK;
}

static int local_release(void *ctx, cs_error *err)
{
    cs_port_local *p = ctx;
    (void)err;
    p->holder[0] = '\0';
    return CS_OK;
}

void cs_port_local_offers(cs_port_local *p, int64_t timeout_ns)
{
    p->offers = true;
    p->offer_timeout_ns = timeout_ns;
}

/* ---- the virtual clock ------------------------------------------------------------- */

static int64_t local_now(void *ctx) { return ((cs_port_local *)ctx)->mono_ns; }

static int64_t local_wall(void *ctx)
{
    const cs_port_local *p = ctx;
    return p->wall_ms + (p->mono_ns - p->wall_at) / 1000000;
}

/* Sleeping is time passing: at once, and exactly to `until`. */
static void local_sleep(void *ctx, int64_t until)
{
    cs_port_local *p = ctx;
    if (until <= p->mono_ns)
        return;
    p->counts.slept_ns += until - p->mono_ns;
    p->mono_ns = until;
}

void cs_port_local_advance(cs_port_local *p, int64_t ns)
{
    if (ns > 0)
        p->mono_ns += ns;
}

/* ---- setup --------------------------------------------------------------------------- */

int cs_port_local_new(cs_store *store, int64_t mono_ns, int64_t wall_ms, cs_port_local **out,
                      cs_error *err)
{
    cs_port_local *p = calloc(1, sizeof *p);
    if (p == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    if (!msgpack_zone_init(&p->zone, 4096)) {
        free(p);
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    }
    p->store = store;
    p->mono_ns = p->wall_at = mono_ns;
    p->wall_ms = wall_ms;
    p->table = (cs_sched_port){
        .ctx = p,
        .where = "a store in process",
        .sync = local_sync,
        .commit = local_commit,
        .note = local_note,
        .scale = local_scale,
        .surge = local_surge,
        .job_end = local_job_end,
        .report = local_report,
        .now = local_now,
        .wall = local_wall,
        .sleep = local_sleep,
        .acquire = local_acquire,
        .release = local_release,
    };
    *out = p;
    return CS_OK;
}

void cs_port_local_free(cs_port_local *p)
{
    if (p == NULL)
        return;
    msgpack_zone_destroy(&p->zone);
    free(p->last);
    free(p);
}

const cs_sched_port *cs_port_local_table(cs_port_local *p) { return &p->table; }

void cs_port_local_counts_get(const cs_port_local *p, cs_port_local_counts *out)
{
    *out = p->counts;
}

const cs_sched_report *cs_port_local_last_report(const cs_port_local *p) { return p->last; }
