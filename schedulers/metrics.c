/* metrics.c — a scheduler's own measurements (see metrics.h). */
#include "schedulers/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cellstate/error.h"

void cs_metrics_init(cs_metrics *m, int64_t now_ns)
{
    memset(m, 0, sizeof *m);
    m->start_ns = now_ns;
    m->last_ns = now_ns;
}

void cs_metrics_free(cs_metrics *m)
{
    free(m->wait_first.v);
    free(m->wait_placed.v);
    m->wait_first = (cs_samples){0};
    m->wait_placed = (cs_samples){0};
}

void cs_metrics_decided(cs_metrics *m, int64_t ns)
{
    if (ns > 0)
        m->decide_ns += ns;
}

void cs_metrics_wasted(cs_metrics *m, int64_t ns)
{
    if (ns > 0)
        m->wasted_ns += ns;
}

void cs_metrics_attempt(cs_metrics *m) { m->attempts++; }

void cs_metrics_abandoned(cs_metrics *m) { m->abandoned++; }

void cs_metrics_txn(cs_metrics *m, uint32_t committed, uint32_t conflicted, bool aborted)
{
    m->claims_committed += committed;
    m->claims_conflicted += conflicted;
    /* Omega counts conflicts per successful transaction: a transaction that
     * conflicted anywhere is one conflict, whatever part of it committed. */
    if (conflicted > 0 || aborted)
        m->txn_conflicted++;
    else
        m->txn_successful++;
}

static int push(cs_samples *s, uint64_t ms)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        uint32_t *v = realloc(s->v, cap * sizeof *v);
        if (v == NULL)
            return CS_ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
    return CS_OK;
}

int cs_metrics_wait_first(cs_metrics *m, uint64_t ms)
{
    int rc = push(&m->wait_first, ms);
    if (rc == CS_OK)
        m->wait_first_sum_ms += m->wait_first.v[m->wait_first.n - 1];
    return rc;
}
int cs_metrics_wait_placed(cs_metrics *m, uint64_t ms) { return push(&m->wait_placed, ms); }

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

uint32_t cs_percentile(const uint32_t *sorted, size_t n, double p)
{
    if (n == 0)
        return 0;
    /* Nearest rank: the smallest value with at least p% of the samples at
     * or below it. */
    double rank = p / 100.0 * (double)n;
    size_t k = (size_t)rank;
    if ((double)k < rank)
        k++;
    if (k == 0)
        k = 1;
    if (k > n)
        k = n;
    return sorted[k - 1];
}

/* Put the samples in order. Those since the last call are sorted alone and
 * merged into the rest, from the back, through a copy of their own: a
 * report every minute over a simulated week sorted all of a scheduler's
 * samples each time, which made the run quadratic (a fifth of its time by
 * day 7). Without memory for the copy, everything is sorted again. */
static void sort_samples(cs_samples *s)
{
    size_t old = s->sorted, t = s->n - old;
    s->sorted = s->n;
    if (t == 0)
        return;
    qsort(s->v + old, t, sizeof *s->v, cmp_u32);
    if (old == 0 || s->v[old - 1] <= s->v[old])
        return;
    uint32_t *tail = malloc(t * sizeof *tail);
    if (tail == NULL) {
        qsort(s->v, s->n, sizeof *s->v, cmp_u32);
        return;
    }
    memcpy(tail, s->v + old, t * sizeof *tail);
    size_t i = old, j = t, w = s->n;
    while (j > 0) /* the largest of the two runs' ends goes last */
        s->v[--w] = i > 0 && s->v[i - 1] > tail[j - 1] ? s->v[--i] : tail[--j];
    free(tail);
}

static void percentiles(cs_samples *s, uint32_t out[3])
{
    sort_samples(s);
    out[0] = cs_percentile(s->v, s->n, 50);
    out[1] = cs_percentile(s->v, s->n, 90);
    out[2] = cs_percentile(s->v, s->n, 99);
}

void cs_metrics_view_at(cs_metrics *m, int64_t now_ns, cs_metrics_view *out)
{
    memset(out, 0, sizeof *out);
    int64_t up = now_ns - m->start_ns;
    out->busyness = up > 0 ? (double)m->decide_ns / (double)up : 0;
    if (out->busyness > 1)
        out->busyness = 1;
    /* Wasted is part of the decision time: the split shares the (capped)
     * busyness out in their proportion, so that the parts add up to it. */
    out->busyness_wasted =
        m->decide_ns > 0 ? out->busyness * (double)m->wasted_ns / (double)m->decide_ns : 0;
    if (out->busyness_wasted > out->busyness)
        out->busyness_wasted = out->busyness;
    out->busyness_useful = out->busyness - out->busyness_wasted;
    out->conflict_fraction =
        m->txn_successful ? (double)m->txn_conflicted / (double)m->txn_successful : 0;
    int64_t dt = now_ns - m->last_ns;
    out->placements_per_s =
        dt > 0 ? (double)(m->claims_committed - m->last_claims) * 1e9 / (double)dt : 0;
    m->last_ns = now_ns;
    m->last_claims = m->claims_committed;
    out->txn_successful = m->txn_successful;
    out->txn_conflicted = m->txn_conflicted;
    out->claims_committed = m->claims_committed;
    out->claims_conflicted = m->claims_conflicted;
    out->attempts = m->attempts;
    out->jobs_abandoned = m->abandoned;
    out->jobs_first = m->wait_first.n;
    out->jobs_placed = m->wait_placed.n;
    out->wait_first_mean_ms =
        m->wait_first.n ? (double)m->wait_first_sum_ms / (double)m->wait_first.n : 0;
    out->wait_mean_ms = out->wait_first_mean_ms;
    percentiles(&m->wait_first, out->wait_first_ms);
    percentiles(&m->wait_placed, out->wait_placed_ms);
}

void cs_metrics_view_waiting(cs_metrics_view *v, uint64_t n, uint64_t sum_ms)
{
    v->jobs_waiting = n;
    uint64_t all = v->jobs_first + n;
    v->wait_mean_ms =
        all ? (v->wait_first_mean_ms * (double)v->jobs_first + (double)sum_ms) / (double)all : 0;
}

static int kv_f64(msgpack_packer *pk, const char *key, double v)
{
    size_t n = strlen(key);
    if (msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, key, n) || msgpack_pack_double(pk, v))
        return CS_ENOMEM;
    return CS_OK;
}

static int kv_u64(msgpack_packer *pk, const char *key, uint64_t v)
{
    size_t n = strlen(key);
    if (msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, key, n) || msgpack_pack_uint64(pk, v))
        return CS_ENOMEM;
    return CS_OK;
}

int cs_metrics_pack(const cs_metrics_view *v, uint64_t pending_tasks, msgpack_packer *pk)
{
    static const char *const pct[3] = {"p50", "p90", "p99"};
    char key[32];
    if (msgpack_pack_map(pk, 23))
        return CS_ENOMEM;
    int rc = kv_f64(pk, "busyness", v->busyness);
    rc = rc ? rc : kv_f64(pk, "busyness_useful", v->busyness_useful);
    rc = rc ? rc : kv_f64(pk, "busyness_wasted", v->busyness_wasted);
    rc = rc ? rc : kv_f64(pk, "conflict_fraction", v->conflict_fraction);
    rc = rc ? rc : kv_f64(pk, "placements_per_s", v->placements_per_s);
    rc = rc ? rc : kv_u64(pk, "txn_committed", v->txn_successful);
    rc = rc ? rc : kv_u64(pk, "txn_conflicted", v->txn_conflicted);
    rc = rc ? rc : kv_u64(pk, "claims_committed", v->claims_committed);
    rc = rc ? rc : kv_u64(pk, "claims_conflicted", v->claims_conflicted);
    rc = rc ? rc : kv_u64(pk, "attempts", v->attempts);
    rc = rc ? rc : kv_u64(pk, "pending_tasks", pending_tasks);
    rc = rc ? rc : kv_u64(pk, "jobs_waited", v->jobs_first);
    rc = rc ? rc : kv_u64(pk, "jobs_placed", v->jobs_placed);
    rc = rc ? rc : kv_u64(pk, "jobs_abandoned", v->jobs_abandoned);
    rc = rc ? rc : kv_u64(pk, "jobs_waiting", v->jobs_waiting);
    rc = rc ? rc : kv_f64(pk, "wait_first_mean_ms", v->wait_first_mean_ms);
    rc = rc ? rc : kv_f64(pk, "wait_mean_ms", v->wait_mean_ms);
    for (int i = 0; i < 3 && rc == CS_OK; i++) {
        snprintf(key, sizeof key, "wait_first_%s_ms", pct[i]);
        rc = kv_u64(pk, key, v->wait_first_ms[i]);
    }
    for (int i = 0; i < 3 && rc == CS_OK; i++) {
        snprintf(key, sizeof key, "wait_placed_%s_ms", pct[i]);
        rc = kv_u64(pk, key, v->wait_placed_ms[i]);
    }
    return rc;
}
