/* offers.c — the offer: one lease on the cell's free resources at a time,
 * granted in DRF order (see offers.h). */
#include "server/offers.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cellstate/vec.h"
#include "proto/proto.h"
#include "server/internal.h"

/* A machine of the offer, with what was free there when it was made. */
typedef struct omach {
    cs_id id;
    cs_res free;
    cs_res want; /* srv_offer_commit_check's scratch: the transaction's claims here */
} omach;

struct srv_offers {
    cs_server *s;
    uint32_t timeout_ms;
    pthread_mutex_t mu;
    uint64_t next_lease;
    /* The current lease (lease == 0: nobody holds the offer). */
    uint64_t lease;
    char holder[CS_OFFER_SCHED_MAX + 1];
    int64_t expires; /* cs_clock_now_ms's clock */
    uint64_t version;
    cs_res free;       /* offered, summed */
    uint32_t nfree;    /* machines with something free */
    omach *mach;       /* sorted by id: every machine offered */
    size_t nmach, capmach;
    cs_res capacity;   /* the cell's, at the last offer: DRF's denominators */
    /* The lease taken back last, so that its holder is told why. */
    uint64_t expired;
    char expired_holder[CS_OFFER_SCHED_MAX + 1];
    cs_timer expiry;   /* armed while a lease is held */
    worker *waiters;   /* parked acquires, in arrival order */
    uint32_t nwaiting;
    uint64_t seq;
    uint64_t grants, expiries; /* since the server started (srv_offers_view) */
};

static srv_offers *of(cs_server *s) { return s->offers; }

/* ---- the offer's contents --------------------------------------------------------------- */

typedef struct collect {
    srv_offers *o;
    bool failed;
} collect;

static int collect_machine(void *ctx, const cs_machine *m)
{
    collect *c = ctx;
    srv_offers *o = c->o;
    if (m->state != CS_MACHINE_UP)
        return 0;
    o->capacity.cpu += m->capacity.cpu;
    o->capacity.mem += m->capacity.mem;
    o->capacity.disk += m->capacity.disk;
    if (m->admin != CS_ADMIN_ACTIVE)
        return 0; /* cordoned or draining: it takes no new tasks, so it is not offered */
    omach *v = cs_vec_grow(o->mach, &o->capmach, o->nmach + 1, sizeof *v, 64);
    if (v == NULL) {
        c->failed = true;
        return 1;
    }
    o->mach = v;
    cs_res f = {m->capacity.cpu - m->allocated.cpu, m->capacity.mem - m->allocated.mem,
                m->capacity.disk - m->allocated.disk};
    f.cpu = f.cpu > 0 ? f.cpu : 0;
    f.mem = f.mem > 0 ? f.mem : 0;
    f.disk = f.disk > 0 ? f.disk : 0;
    o->mach[o->nmach++] = (omach){.id = m->id, .free = f};
    if (f.cpu > 0 || f.mem > 0 || f.disk > 0) {
        o->free.cpu += f.cpu;
        o->free.mem += f.mem;
        o->free.disk += f.disk;
        o->nfree++;
    }
    return 0;
}

/* Read what is free now into the offer (mu held). */
static int offer_read(srv_offers *o, cs_error *err)
{
    o->nmach = 0;
    o->nfree = 0;
    o->free = o->capacity = (cs_res){0, 0, 0};
    cs_snap *snap;
    CS_TRY(srv_snap_open(o->s, &snap, err));
    collect c = {o, false};
    int rc = cs_snap_each_machine(snap, collect_machine, &c, err);
    o->version = cs_snap_version(snap);
    srv_snap_close(o->s, snap);
    if (c.failed)
        return cs_errorf(err, CS_ENOMEM, "making the offer: out of memory");
    return rc;
}

/* DRF: the largest fraction of the cell's capacity that `held` is. */
static double dominant_share(const srv_offers *o, const cs_res *held)
{
    double share = 0;
    const int64_t h[3] = {held->cpu, held->mem, held->disk};
    const int64_t c[3] = {o->capacity.cpu, o->capacity.mem, o->capacity.disk};
    for (int i = 0; i < 3; i++)
        if (c[i] > 0 && (double)h[i] / (double)c[i] > share)
            share = (double)h[i] / (double)c[i];
    return share;
}

/* ---- the queue -------------------------------------------------------------------------- */

static void queue_remove(srv_offers *o, worker *w)
{
    if (!w->ow.waiting)
        return;
    for (worker **p = &o->waiters; *p != NULL; p = &(*p)->ow.next)
        if (*p == w) {
            *p = w->ow.next;
            break;
        }
    w->ow.next = NULL;
    w->ow.waiting = false;
    o->nwaiting--;
}

static void queue_add(srv_offers *o, worker *w)
{
    worker **p = &o->waiters;
    while (*p != NULL)
        p = &(*p)->ow.next;
    *p = w;
    w->ow.next = NULL;
    w->ow.waiting = true;
    w->ow.seq = ++o->seq;
    o->nwaiting++;
}

/* Give the offer to the waiting scheduler of lowest dominant share (ties:
 * the one that asked first), if nobody holds it (mu held). The grant is
 * made here; a parked waiter is woken to be told. `self`, a worker that is
 * about to park or answer on its own thread, is not woken. */
static void grant_next(srv_offers *o, worker *self)
{
    if (o->lease != 0 || o->waiters == NULL)
        return;
    cs_error err = {0};
    if (offer_read(o, &err) != CS_OK) {
        /* The waiters stay queued; the next release, acquire or expiry
         * tries again. */
        fprintf(stderr, "cellstated: making an offer: %s\n", err.msg);
        return;
    }
    worker *pick = NULL;
    double best = 0;
    for (worker *w = o->waiters; w != NULL; w = w->ow.next) {
        double sh = dominant_share(o, &w->ow.held);
        if (pick == NULL || sh < best) { /* in arrival order: the first of equals stays */
            pick = w;
            best = sh;
        }
    }
    if (pick == NULL)
        return; /* not reached: the queue is not empty */
    queue_remove(o, pick);
    o->lease = o->next_lease++;
    o->grants++;
    snprintf(o->holder, sizeof o->holder, "%s", pick->ow.sched);
    o->expires = cs_clock_now_ms() + o->timeout_ms;
    cs_clock_arm(o->s->clock, &o->expiry, o->expires);
    pick->ow.lease = o->lease;
    if (pick != self)
        cs_sleep_hasten(&pick->psleep, 0);
}

/* Take the lease back if it outlived --offer-timeout (mu held). */
static void expire(srv_offers *o, int64_t now)
{
    if (o->lease == 0 || now < o->expires)
        return;
    fprintf(stderr, "cellstated: offer lease %" PRIu64 " of %s not released within %" PRIu32
                    " ms: taken back\n",
            o->lease, o->holder, o->timeout_ms);
    o->expired = o->lease;
    o->expiries++;
    memcpy(o->expired_holder, o->holder, sizeof o->holder);
    o->lease = 0;
    o->holder[0] = '\0';
}

static void on_expiry(cs_timer *t)
{
    srv_offers *o = (srv_offers *)((char *)t - offsetof(srv_offers, expiry));
    pthread_mutex_lock(&o->mu);
    int64_t now = cs_clock_now_ms();
    expire(o, now);
    if (o->lease != 0)
        cs_clock_arm(o->s->clock, &o->expiry, o->expires); /* a later lease's */
    else
        grant_next(o, NULL);
    pthread_mutex_unlock(&o->mu);
}

/* Why `lease` is not the offer's (mu held), into err: CS_ESTATE. */
static int not_current(const srv_offers *o, const char *what, uint64_t lease, cs_error *err)
{
    if (lease == o->expired)
        return cs_errorf(err, CS_ESTATE,
                         "%s: lease %" PRIu64 " of %s expired (not released within "
                         "--offer-timeout %" PRIu32 " ms) and was taken back",
                         what, lease, o->expired_holder, o->timeout_ms);
    if (o->lease == 0)
        return cs_errorf(err, CS_ESTATE,
                         "%s: lease %" PRIu64 " is not held: nobody holds the offer", what, lease);
    return cs_errorf(err, CS_ESTATE,
                     "%s: lease %" PRIu64 " is not the offer's: lease %" PRIu64 " of %s is", what,
                     lease, o->lease, o->holder);
}

/* ---- setup ------------------------------------------------------------------------------ */

int srv_offers_new(cs_server *s, uint32_t timeout_ms, srv_offers **out, cs_error *err)
{
    srv_offers *o = calloc(1, sizeof *o);
    if (o == NULL)
        return cs_errorf(err, CS_ENOMEM, "offers: out of memory");
    int rc = cs_clock_reserve(s->clock, 1, err);
    if (rc != CS_OK) {
        free(o);
        return rc;
    }
    o->s = s;
    o->timeout_ms = timeout_ms;
    pthread_mutex_init(&o->mu, NULL);
    /* Lease ids start at the wall clock's microseconds, so that a lease
     * from before a restart is never mistaken for one granted after it. */
    o->next_lease = wall_ms() * 1000;
    o->expiry.fire = on_expiry;
    *out = o;
    return CS_OK;
}

void srv_offers_free(srv_offers *o)
{
    if (o == NULL)
        return;
    cs_clock_disarm(o->s->clock, &o->expiry, true);
    cs_clock_unreserve(o->s->clock, 1);
    pthread_mutex_destroy(&o->mu);
    free(o->mach);
    free(o);
}

/* ---- offer.acquire ---------------------------------------------------------------------- */

/* The reply to w's acquire: granted when w->ow.lease is still the offer's. */
static int acquire_reply(worker *w, msgpack_packer *pk, cs_error *err)
{
    srv_offers *o = of(w->s);
    pthread_mutex_lock(&o->mu);
    cs_offer_reply r = {.holder = o->holder, .waiting = o->nwaiting};
    if (w->ow.lease != 0 && w->ow.lease == o->lease) {
        int64_t left = o->expires - cs_clock_now_ms();
        r.granted = true;
        r.lease = o->lease;
        r.expires_ms = left > 0 ? (uint64_t)left : 0;
        r.version = o->version;
        r.free = o->free;
        r.machines = o->nfree;
    }
    int rc = cs_offer_reply_encode(pk, &r);
    pthread_mutex_unlock(&o->mu);
    return rc == CS_OK ? CS_OK : cs_errorf(err, CS_ENOMEM, "reply: out of memory");
}

void srv_offer_acquire(worker *w)
{
    cs_server *s = w->s;
    srv_offers *o = of(s);
    if (o == NULL) {
        srv_send_error(w, CS_ESTATE,
                       "offer.acquire: this cell runs --concurrency optimistic and makes no "
                       "offers: send commit");
        return;
    }
    cs_error err = {0};
    cs_arena a;
    cs_arena_init(&a);
    cs_offer_acquire_req q;
    int rc = cs_offer_acquire_req_decode(body(w), &q, &a, &err);
    if (rc == CS_OK)
        rc = srv_auth_sched_name(w, q.sched, &err);
    if (rc != CS_OK) {
        cs_arena_free(&a);
        srv_send_error(w, rc, err.msg);
        return;
    }
    snprintf(w->ow.sched, sizeof w->ow.sched, "%s", q.sched);
    cs_arena_free(&a);
    w->ow.held = q.held;
    w->ow.lease = 0;
    uint32_t wait_ms = q.wait_ms < s->o.poll_max_wait_ms ? q.wait_ms : s->o.poll_max_wait_ms;

    pthread_mutex_lock(&o->mu);
    expire(o, cs_clock_now_ms());
    if (o->lease != 0 && strcmp(o->holder, w->ow.sched) == 0) {
        /* It holds the offer already (its client sent the request again):
         * the same lease. */
        w->ow.lease = o->lease;
    } else {
        queue_add(o, w);
        grant_next(o, w);
    }
    if (w->ow.lease == 0 && wait_ms > 0 && !srv_stopping(s)) {
        w->state = W_OFFER;
        cs_sleep_begin(&w->psleep, w->aio, cs_clock_now_ms() + wait_ms);
        pthread_mutex_unlock(&o->mu);
        return;
    }
    queue_remove(o, w);
    pthread_mutex_unlock(&o->mu);
    srv_run_handler(w, acquire_reply);
}

void srv_offer_woken(worker *w, bool stop)
{
    srv_offers *o = of(w->s);
    pthread_mutex_lock(&o->mu);
    queue_remove(o, w);
    if (stop && w->ow.lease != 0 && w->ow.lease == o->lease) {
        /* Granted as the server stops: nobody will be told. */
        o->lease = 0;
        o->holder[0] = '\0';
    }
    pthread_mutex_unlock(&o->mu);
    if (stop) {
        srv_release_req(w);
        return;
    }
    srv_run_handler(w, acquire_reply);
}

/* ---- offer.release ---------------------------------------------------------------------- */

int srv_offer_release(worker *w, msgpack_packer *pk, cs_error *err)
{
    cs_server *s = w->s;
    srv_offers *o = of(s);
    if (o == NULL)
        return cs_errorf(err, CS_ESTATE,
                         "offer.release: this cell runs --concurrency optimistic and makes no "
                         "offers");
    cs_offer_release_req q;
    CS_TRY(cs_offer_release_req_decode(body(w), &q, NULL, err));
    pthread_mutex_lock(&o->mu);
    expire(o, cs_clock_now_ms());
    if (q.lease != o->lease) {
        int rc = not_current(o, "offer.release", q.lease, err);
        pthread_mutex_unlock(&o->mu);
        return rc;
    }
    o->lease = 0;
    o->holder[0] = '\0';
    cs_clock_disarm(s->clock, &o->expiry, false);
    grant_next(o, NULL);
    pthread_mutex_unlock(&o->mu);
    pthread_mutex_lock(&s->mu);
    cs_version_reply r = {s->version};
    pthread_mutex_unlock(&s->mu);
    return cs_version_reply_encode(pk, &r) == CS_OK
               ? CS_OK
               : cs_errorf(err, CS_ENOMEM, "reply: out of memory");
}

/* ---- offer.commit ----------------------------------------------------------------------- */

static omach *find_mach(srv_offers *o, cs_id id)
{
    size_t lo = 0, hi = o->nmach;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (o->mach[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < o->nmach && o->mach[lo].id == id ? &o->mach[lo] : NULL;
}

/* The first resource of m->want beyond `left`, or NULL. */
static const char *over(const omach *m, const cs_res *left, int64_t *want, int64_t *have)
{
    const char *names[3] = {"cpu", "mem", "disk"};
    const int64_t w[3] = {m->want.cpu, m->want.mem, m->want.disk};
    const int64_t l[3] = {left->cpu, left->mem, left->disk};
    for (int i = 0; i < 3; i++)
        if (w[i] > l[i]) {
            *want = w[i];
            *have = l[i] > 0 ? l[i] : 0;
            return names[i];
        }
    return NULL;
}

/* Each claim's machine must be in the offer, and the claims on it must
 * fit what the offer holds there now, read from `snap`: what was free at
 * the grant, less what the lease committed, plus what was freed since
 * (mu held). */
static int fits(srv_offers *o, cs_snap *snap, uint64_t lease, const cs_txn *t, cs_error *err)
{
    for (uint32_t i = 0; i < t->nclaims; i++) {
        omach *m = find_mach(o, t->claims[i].machine);
        if (m != NULL)
            m->want = (cs_res){0, 0, 0};
    }
    cs_arena a;
    cs_arena_init(&a);
    int rc = CS_OK;
    for (uint32_t i = 0; rc == CS_OK && i < t->nclaims; i++) {
        const cs_claim *c = &t->claims[i];
        omach *m = find_mach(o, c->machine);
        if (m == NULL) {
            rc = cs_errorf(err, CS_ESTATE,
                           "offer.commit: claim %" PRIu32 " (task %" PRIu64
                           ") is on machine %" PRIu64 ", which lease %" PRIu64
                           " did not offer (not up and active when it was made)",
                           i, c->task, c->machine, lease);
            break;
        }
        m->want.cpu += c->res.cpu;
        m->want.mem += c->res.mem;
        m->want.disk += c->res.disk;
        cs_machine now;
        cs_arena_reset(&a);
        if ((rc = cs_snap_machine_fit(snap, c->machine, &a, &now, err)) != CS_OK)
            break;
        cs_res left = {now.capacity.cpu - now.allocated.cpu, now.capacity.mem - now.allocated.mem,
                       now.capacity.disk - now.allocated.disk};
        int64_t want, have;
        const char *r = over(m, &left, &want, &have);
        if (r != NULL)
            rc = cs_errorf(err, CS_ESTATE,
                           "offer.commit: claim %" PRIu32 " (task %" PRIu64
                           ") does not fit lease %" PRIu64 "'s offer on machine %" PRIu64
                           ": %s %" PRId64 " asked, %" PRId64 " left in the offer",
                           i, c->task, lease, c->machine, r, want, have);
    }
    cs_arena_free(&a);
    return rc;
}

bool srv_offer_commit_check(worker *w)
{
    cs_server *s = w->s;
    srv_offers *o = of(s);
    if (o == NULL)
        return true; /* the writer refuses it, naming the mode */
    cs_error err = {0};
    uint64_t lease = 0;
    cs_txn t;
    cs_txn_init(&t, 0, 0, 0, 0, 0);
    int rc = cs_offer_commit_req_decode(body(w), &lease, &t, &err);
    if (rc == CS_OK) {
        pthread_mutex_lock(&o->mu);
        expire(o, cs_clock_now_ms());
        if (lease != o->lease)
            rc = not_current(o, "offer.commit", lease, &err);
        else {
            cs_snap *snap;
            if ((rc = srv_snap_open(s, &snap, &err)) == CS_OK) {
                rc = fits(o, snap, lease, &t, &err);
                srv_snap_close(s, snap);
            }
        }
        pthread_mutex_unlock(&o->mu);
    }
    cs_txn_free(&t);
    if (rc == CS_OK)
        return true;
    srv_send_error(w, rc, err.msg);
    return false;
}

int srv_offer_admit(cs_server *s, uint64_t lease, cs_error *err)
{
    srv_offers *o = of(s);
    if (o == NULL)
        return cs_errorf(err, CS_ESTATE,
                         "offer.commit: this cell runs --concurrency optimistic and makes no "
                         "offers: send commit");
    pthread_mutex_lock(&o->mu);
    expire(o, cs_clock_now_ms());
    int rc = lease != o->lease ? not_current(o, "offer.commit", lease, err) : CS_OK;
    pthread_mutex_unlock(&o->mu);
    return rc;
}

void srv_offers_view(srv_offers *o, srv_offer_view *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&o->mu);
    out->held = o->lease != 0;
    if (out->held) {
        memcpy(out->holder, o->holder, sizeof o->holder);
        out->offered = o->free;
        out->nmachines = o->nfree;
    }
    out->waiting = o->nwaiting;
    out->grants = o->grants;
    out->expiries = o->expiries;
    pthread_mutex_unlock(&o->mu);
}
