/* test_offers.c — cellstated --concurrency offers (server/offers.h): the
 * offer's codecs, and real cellstated processes on 127.0.0.1 driven
 * through the client: one lease at a time, commits refused outside it,
 * expiry, DRF order, malformed requests. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/client.h"
#include "proto/agentmsg.h"
#include "proto/commitmsg.h"
#include "proto/offermsg.h"
#include "tests/support.h"

/* The suite's timeout, not each test's own: with their own, libcriterion's
 * runner was seen to leak 48 bytes of its own (test_replica's note). */
TestSuite(offers, .timeout = 90);

/* ---- the codecs ------------------------------------------------------------------------- */

/* Unpack buf[0..len) into *o (its zone the caller's). */
static void unpack(const msgpack_sbuffer *b, msgpack_zone *z, msgpack_object *o)
{
    msgpack_zone_init(z, 2048);
    size_t off = 0;
    cr_assert_eq(msgpack_unpack(b->data, b->size, &off, z, o), MSGPACK_UNPACK_SUCCESS);
}

Test(offers, codecs_round_trip)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    msgpack_zone z;
    msgpack_object o;
    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};

    cs_offer_acquire_req q = {"batch-0", {1500, 2048, 0}, 250}, q2;
    cr_assert_eq(cs_offer_acquire_req_encode(&pk, &q), CS_OK);
    unpack(&b, &z, &o);
    cr_assert_eq(cs_offer_acquire_req_decode(&o, &q2, &a, &err), CS_OK, "%s", err.msg);
    cr_assert_str_eq(q2.sched, "batch-0");
    cr_assert_eq(q2.held.cpu, 1500);
    cr_assert_eq(q2.held.mem, 2048);
    cr_assert_eq(q2.wait_ms, 250);
    msgpack_zone_destroy(&z);

    b.size = 0;
    cs_offer_reply r = {true, 42, 900, 17, {3000, 8192, 100}, 3, "service", 2}, r2;
    cr_assert_eq(cs_offer_reply_encode(&pk, &r), CS_OK);
    unpack(&b, &z, &o);
    cr_assert_eq(cs_offer_reply_decode(&o, &r2, &a, &err), CS_OK, "%s", err.msg);
    cr_assert(r2.granted);
    cr_assert_eq(r2.lease, 42);
    cr_assert_eq(r2.expires_ms, 900);
    cr_assert_eq(r2.version, 17);
    cr_assert_eq(r2.free.cpu, 3000);
    cr_assert_eq(r2.machines, 3);
    cr_assert_str_eq(r2.holder, "service");
    cr_assert_eq(r2.waiting, 2);
    msgpack_zone_destroy(&z);

    b.size = 0;
    cs_txn t, t2;
    cs_txn_init(&t, 9, 4, 11, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    cs_res res = {500, 256, 0};
    cs_txn_add_claim(&t, cs_task_id(3, 1), 2, &res, NULL, 0, 0);
    cr_assert_eq(cs_offer_commit_req_encode(&b, 42, &t), CS_OK);
    unpack(&b, &z, &o);
    uint64_t lease = 0;
    cs_txn_init(&t2, 0, 0, 0, 0, 0);
    cr_assert_eq(cs_offer_commit_req_decode(&o, &lease, &t2, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(lease, 42);
    cr_assert_eq(t2.nclaims, 1);
    cr_assert_eq(t2.claims[0].machine, 2);
    cr_assert_eq(t2.claims[0].res.cpu, 500);
    cr_assert_eq(t2.snap_version, 11);
    msgpack_zone_destroy(&z);
    cs_txn_free(&t);
    cs_txn_free(&t2);

    b.size = 0;
    cs_offer_release_req rel = {42}, rel2;
    cr_assert_eq(cs_offer_release_req_encode(&pk, &rel), CS_OK);
    unpack(&b, &z, &o);
    cr_assert_eq(cs_offer_release_req_decode(&o, &rel2, NULL, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(rel2.lease, 42);
    msgpack_zone_destroy(&z);

    cs_arena_free(&a);
    msgpack_sbuffer_destroy(&b);
}

/* Decode the JSON-ish test body `pack` packs, with `decode`, and expect
 * `code` and `needle` in the message. */
Test(offers, codecs_name_the_bad_field)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    msgpack_zone z;
    msgpack_object o;
    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};
    cs_offer_acquire_req q;

    msgpack_pack_map(&pk, 1);
    cs_pack_kv_u64(&pk, "sched", 5);
    unpack(&b, &z, &o);
    cr_assert_eq(cs_offer_acquire_req_decode(&o, &q, &a, &err), CS_EPROTO);
    cr_assert(strstr(err.msg, "'sched'") != NULL, "%s", err.msg);
    msgpack_zone_destroy(&z);

    b.size = 0;
    msgpack_pack_map(&pk, 1);
    cs_pack_kv_str(&pk, "sched", "");
    unpack(&b, &z, &o);
    cr_assert_eq(cs_offer_acquire_req_decode(&o, &q, &a, &err), CS_EINVAL);
    cr_assert(strstr(err.msg, "'sched' is empty") != NULL, "%s", err.msg);
    msgpack_zone_destroy(&z);

    b.size = 0;
    msgpack_pack_map(&pk, 2);
    cs_pack_kv_u64(&pk, "lease", 3);
    cs_pack_kv_str(&pk, "txn", "not a transaction");
    unpack(&b, &z, &o);
    cs_txn t;
    cs_txn_init(&t, 0, 0, 0, 0, 0);
    uint64_t lease;
    cr_assert_eq(cs_offer_commit_req_decode(&o, &lease, &t, &err), CS_EPROTO);
    cr_assert(strstr(err.msg, "field 'txn'") != NULL, "%s", err.msg);
    cs_txn_free(&t);
    msgpack_zone_destroy(&z);

    b.size = 0;
    msgpack_pack_map(&pk, 1);
    cs_pack_kv_u64(&pk, "lease", 0);
    unpack(&b, &z, &o);
    cs_offer_release_req rel;
    cr_assert_eq(cs_offer_release_req_decode(&o, &rel, NULL, &err), CS_EINVAL);
    cr_assert(strstr(err.msg, "'lease' is 0") != NULL, "%s", err.msg);
    msgpack_zone_destroy(&z);

    cs_arena_free(&a);
    msgpack_sbuffer_destroy(&b);
}

/* ---- a cell that makes offers ---------------------------------------------------------- */

/* A cellstated with --concurrency offers and --offer-timeout `timeout`. */
static void offers_setup(ts_daemon *d, const char *timeout)
{
    const char *extra[] = {"--concurrency", "offers", "--offer-timeout", timeout, NULL};
    ts_daemon_setupv(d, extra);
    /* Long enough for a parked acquire's wait. */
    cs_client_set_timeout(d->c, 20000);
}

static cs_id add_machine(cs_client *c, const char *name, int64_t cpu)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    cs_pack_kv_str(&pk, "name", name);
    cs_res cap = {cpu, 4096, 10000};
    cs_pack_kv_res(&pk, "capacity", &cap);
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(cs_client_callb(c, CS_MSG_MACHINE_REGISTER, &b, &r, &err), CS_OK, "%s", err.msg);
    uint64_t id = 0;
    cr_assert_eq(cs_obj_u64(&r.body, "id", true, UINT64_MAX, &id, &err), CS_OK);
    msgpack_sbuffer_destroy(&b);
    return id;
}

/* offer.acquire as `sched` holding `held` cpu, waiting up to wait_ms:
 * CS_OK and *out, or the error (its message in err). */
static int acquire(cs_client *c, const char *sched, int64_t held, uint32_t wait_ms,
                   cs_offer_reply *out, cs_arena *a, cs_error *err)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    cs_offer_acquire_req q = {sched, {held, 0, 0}, wait_ms};
    cr_assert_eq(cs_offer_acquire_req_encode(&pk, &q), CS_OK);
    cs_msg r;
    int rc = cs_client_callb(c, CS_MSG_OFFER_ACQUIRE, &b, &r, err);
    msgpack_sbuffer_destroy(&b);
    if (rc == CS_OK)
        cr_assert_eq(cs_offer_reply_decode(&r.body, out, a, err), CS_OK, "%s", err->msg);
    return rc;
}

static uint64_t acquire_granted(cs_client *c, const char *sched, int64_t held, uint32_t wait_ms)
{
    cs_offer_reply r;
    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};
    cr_assert_eq(acquire(c, sched, held, wait_ms, &r, &a, &err), CS_OK, "%s", err.msg);
    cr_assert(r.granted, "%s was not granted the offer (held by '%s')", sched, r.holder);
    cr_assert_str_eq(r.holder, sched);
    cr_assert_gt(r.lease, 0);
    cs_arena_free(&a);
    return r.lease;
}

static int release(cs_client *c, uint64_t lease, cs_error *err)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    cs_offer_release_req q = {lease};
    cs_offer_release_req_encode(&pk, &q);
    cs_msg r;
    int rc = cs_client_callb(c, CS_MSG_OFFER_RELEASE, &b, &r, err);
    msgpack_sbuffer_destroy(&b);
    return rc;
}

/* offer.commit (lease != 0) or commit (lease == 0) of one claim of `cpu`
 * for task `index` of job `job` on machine m: the error code, and on CS_OK
 * the claims committed in *committed. */
static int commit_one(cs_client *c, uint64_t lease, cs_id m, cs_id job, uint32_t index,
                      int64_t cpu, uint64_t req, uint64_t *committed, cs_error *err)
{
    cs_txn t;
    cs_txn_init(&t, 77, req, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    cs_res res = {cpu, 64, 0};
    cs_txn_add_claim(&t, cs_task_id(job, index), m, &res, NULL, 0, 0);
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    if (lease != 0)
        cs_offer_commit_req_encode(&b, lease, &t);
    else
        cs_commit_req_encode(&b, &t);
    cs_msg r;
    int rc = cs_client_callb(c, lease != 0 ? CS_MSG_OFFER_COMMIT : CS_MSG_COMMIT, &b, &r, err);
    if (rc == CS_OK && committed != NULL)
        cr_assert_eq(cs_obj_u64(&r.body, "committed", true, UINT64_MAX, committed, err), CS_OK);
    msgpack_sbuffer_destroy(&b);
    cs_txn_free(&t);
    return rc;
}

static cs_id submit(cs_client *c, const char *name, uint32_t count, int64_t cpu)
{
    char json[256];
    snprintf(json, sizeof json,
             "{\"name\": \"%s\", \"kind\": \"batch\", \"count\": %u, \"cmd\": \"true\", "
             "\"resources\": {\"cpu\": %.3f, \"mem\": 64}}",
             name, count, (double)cpu / 1000);
    return ts_submit(c, json);
}

Test(offers, one_holder_at_a_time)
{
    ts_daemon d;
    offers_setup(&d, "30s");
    add_machine(d.c, "m1", 4000);
    uint64_t a = acquire_granted(d.c, "batch-0", 0, 0);
    /* Asked again (a resent request): the same lease. */
    cr_assert_eq(acquire_granted(d.c, "batch-0", 0, 0), a);

    cs_offer_reply r;
    cs_arena ar;
    cs_arena_init(&ar);
    cs_error err = {0};
    cr_assert_eq(acquire(d.c, "service", 0, 0, &r, &ar, &err), CS_OK, "%s", err.msg);
    cr_assert_not(r.granted, "a second scheduler was granted the offer batch-0 holds");
    cr_assert_str_eq(r.holder, "batch-0");
    cr_assert_eq(r.lease, 0);
    /* It waits briefly, and is still not granted. */
    cr_assert_eq(acquire(d.c, "service", 0, 200, &r, &ar, &err), CS_OK, "%s", err.msg);
    cr_assert_not(r.granted);

    cr_assert_eq(release(d.c, a, &err), CS_OK, "%s", err.msg);
    uint64_t b = acquire_granted(d.c, "service", 0, 0);
    cr_assert_neq(a, b, "a new grant is a new lease");
    /* The old lease cannot be released again. */
    cr_assert_eq(release(d.c, a, &err), CS_ESTATE);
    cr_assert(strstr(err.msg, "is not the offer's") != NULL, "%s", err.msg);
    cs_arena_free(&ar);
    ts_daemon_teardown(&d);
}

Test(offers, commits_need_the_current_lease)
{
    ts_daemon d;
    offers_setup(&d, "30s");
    cs_id m = add_machine(d.c, "m1", 4000);
    cs_id job = submit(d.c, "work", 8, 500);
    cs_error err = {0};
    uint64_t n = 0;

    /* No lease at all: a plain commit. */
    cr_assert_eq(commit_one(d.c, 0, m, job, 0, 500, 1, &n, &err), CS_ESTATE);
    cr_assert(strstr(err.msg, "commit outside an offer") != NULL, "%s", err.msg);

    uint64_t a = acquire_granted(d.c, "batch-0", 0, 0);
    cr_assert_eq(commit_one(d.c, a, m, job, 0, 500, 2, &n, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(n, 1);

    /* A lease that was never granted. */
    char want[96];
    cr_assert_eq(commit_one(d.c, a + 1000, m, job, 1, 500, 3, &n, &err), CS_ESTATE);
    snprintf(want, sizeof want, "lease %llu is not the offer's", (unsigned long long)(a + 1000));
    cr_assert(strstr(err.msg, want) != NULL, "%s", err.msg);

    /* A stale one: released, then nobody holds the offer. */
    cr_assert_eq(release(d.c, a, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(commit_one(d.c, a, m, job, 1, 500, 4, &n, &err), CS_ESTATE);
    snprintf(want, sizeof want, "lease %llu is not held", (unsigned long long)a);
    cr_assert(strstr(err.msg, want) != NULL, "%s", err.msg);

    /* Someone else's now holds it: the refusal names both. */
    uint64_t b = acquire_granted(d.c, "service", 0, 0);
    cr_assert_eq(commit_one(d.c, a, m, job, 1, 500, 5, &n, &err), CS_ESTATE);
    snprintf(want, sizeof want, "lease %llu of service is", (unsigned long long)b);
    cr_assert(strstr(err.msg, want) != NULL, "%s", err.msg);
    ts_daemon_teardown(&d);
}

Test(offers, claims_fit_what_was_offered)
{
    ts_daemon d;
    offers_setup(&d, "30s");
    cs_id m = add_machine(d.c, "m1", 1000);
    cs_id job = submit(d.c, "work", 4, 500);
    cs_error err = {0};
    uint64_t n = 0;
    uint64_t a = acquire_granted(d.c, "batch-0", 0, 0);
    /* More than the machine had free. */
    cr_assert_eq(commit_one(d.c, a, m, job, 0, 1500, 1, &n, &err), CS_ESTATE);
    cr_assert(strstr(err.msg, "does not fit lease") != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "cpu 1500 asked, 1000 left in the offer") != NULL, "%s", err.msg);
    /* Two halves fit; a third finds what the lease committed gone. */
    cr_assert_eq(commit_one(d.c, a, m, job, 0, 500, 2, &n, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(commit_one(d.c, a, m, job, 1, 500, 3, &n, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(commit_one(d.c, a, m, job, 2, 500, 4, &n, &err), CS_ESTATE);
    cr_assert(strstr(err.msg, "cpu 500 asked, 0 left in the offer") != NULL, "%s", err.msg);
    /* A machine the offer did not have. */
    cr_assert_eq(commit_one(d.c, a, m + 7, job, 2, 1, 5, &n, &err), CS_ESTATE);
    cr_assert(strstr(err.msg, "did not offer") != NULL, "%s", err.msg);
    /* A task of the lease ends: what it frees is the holder's to claim (the
     * offer is of all free resources, and nobody else can be offered it). */
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    cs_task_report rep = {cs_task_id(job, 0), 1, CS_TASK_FINISHED, 0, "", CS_TASK_HEALTH_UNKNOWN};
    cs_report_encode(&pk, &rep);
    cs_msg r;
    cr_assert_eq(cs_client_callb(d.c, CS_MSG_TASK_STATUS, &b, &r, &err), CS_OK, "%s", err.msg);
    msgpack_sbuffer_destroy(&b);
    cr_assert_eq(commit_one(d.c, a, m, job, 2, 500, 6, &n, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(n, 1);
    ts_daemon_teardown(&d);
}

Test(offers, an_expired_lease_is_taken_back)
{
    ts_daemon d;
    offers_setup(&d, "300ms");
    cs_id m = add_machine(d.c, "m1", 4000);
    cs_id job = submit(d.c, "work", 2, 500);
    uint64_t a = acquire_granted(d.c, "dead", 0, 0);
    /* "dead" never releases: the waiting scheduler is granted the offer
     * once the lease expires, by the server's timer. */
    uint64_t b = acquire_granted(d.c, "alive", 0, 10000);
    cr_assert_neq(a, b);
    cs_error err = {0};
    uint64_t n;
    cr_assert_eq(commit_one(d.c, a, m, job, 0, 500, 1, &n, &err), CS_ESTATE);
    cr_assert(strstr(err.msg, "expired") != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "of dead") != NULL, "%s", err.msg);
    cr_assert_eq(commit_one(d.c, b, m, job, 0, 500, 2, &n, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(release(d.c, b, &err), CS_OK, "%s", err.msg);
    ts_daemon_teardown(&d);
}

/* A scheduler waiting for the offer on a thread and client of its own. */
typedef struct waiter {
    const char *url, *sched;
    int64_t held;
    uint64_t lease;
    int64_t granted_ms;
    char err[256];
} waiter;

static void *wait_for_offer(void *arg)
{
    waiter *w = arg;
    cs_client *c;
    cs_error err = {0};
    if (cs_client_open(w->url, 30000, &c, &err) != CS_OK) {
        snprintf(w->err, sizeof w->err, "%s", err.msg);
        return NULL;
    }
    cs_offer_reply r;
    cs_arena a;
    cs_arena_init(&a);
    if (acquire(c, w->sched, w->held, 20000, &r, &a, &err) != CS_OK)
        snprintf(w->err, sizeof w->err, "%s", err.msg);
    else if (!r.granted)
        snprintf(w->err, sizeof w->err, "%s: not granted", w->sched);
    else {
        w->lease = r.lease;
        w->granted_ms = ts_now_ms();
    }
    cs_arena_free(&a);
    cs_client_close(c);
    return NULL;
}

/* How many schedulers wait for the offer, as a probe that asks and does
 * not wait sees it. */
static uint32_t waiting(cs_client *c)
{
    cs_offer_reply r;
    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};
    cr_assert_eq(acquire(c, "probe", 0, 0, &r, &a, &err), CS_OK, "%s", err.msg);
    cr_assert_not(r.granted);
    cs_arena_free(&a);
    return r.waiting;
}

Test(offers, drf_order_among_waiters)
{
    ts_daemon d;
    offers_setup(&d, "30s");
    add_machine(d.c, "m1", 4000);
    add_machine(d.c, "m2", 4000);
    uint64_t a = acquire_granted(d.c, "holder", 0, 0);
    /* "big" asks first but its tasks hold half the cell's cpu; "small"
     * holds an eighth: DRF serves "small" first. */
    waiter big = {d.url, "big", 4000, 0, 0, ""}, small = {d.url, "small", 1000, 0, 0, ""};
    pthread_t tb, ts;
    pthread_create(&tb, NULL, wait_for_offer, &big);
    for (int i = 0; i < 200 && waiting(d.c) < 1; i++)
        ts_sleep_ms(10);
    pthread_create(&ts, NULL, wait_for_offer, &small);
    for (int i = 0; i < 200 && waiting(d.c) < 2; i++)
        ts_sleep_ms(10);
    cr_assert_eq(waiting(d.c), 2, "both schedulers wait for the offer");
    cs_error err = {0};
    cr_assert_eq(release(d.c, a, &err), CS_OK, "%s", err.msg);
    pthread_join(ts, NULL);
    cr_assert_str_eq(small.err, "");
    cr_assert_gt(small.lease, 0);
    /* "big" still waits behind "small"'s lease, and gets it once released. */
    cr_assert_eq(waiting(d.c), 1);
    cr_assert_eq(big.lease, 0);
    cr_assert_eq(release(d.c, small.lease, &err), CS_OK, "%s", err.msg);
    pthread_join(tb, NULL);
    cr_assert_str_eq(big.err, "");
    cr_assert_gt(big.lease, 0);
    cr_assert_geq(big.granted_ms, small.granted_ms);
    ts_daemon_teardown(&d);
}

Test(offers, a_malformed_offer_message_is_refused_and_serving_goes_on)
{
    ts_daemon d;
    offers_setup(&d, "30s");
    cs_error err = {0};
    cs_msg r;
    /* {"sched": 5} */
    cr_assert_eq(cs_client_call(d.c, CS_MSG_OFFER_ACQUIRE, "\x81\xa5sched\x05", 8, &r, &err),
                 CS_EPROTO);
    cr_assert(strstr(err.msg, "'sched'") != NULL, "%s", err.msg);
    /* offer.commit whose txn is a string; offer.release without a lease. */
    cr_assert_eq(cs_client_call(d.c, CS_MSG_OFFER_COMMIT, "\x82\xa5lease\x01\xa3txn\xa1x", 14,
                                &r, &err),
                 CS_EPROTO);
    cr_assert(strstr(err.msg, "field 'txn'") != NULL, "%s", err.msg);
    cr_assert_eq(cs_client_call(d.c, CS_MSG_OFFER_RELEASE, "\x80", 1, &r, &err), CS_EPROTO);
    cr_assert(strstr(err.msg, "'lease'") != NULL, "%s", err.msg);
    /* Not a map at all. */
    cr_assert_eq(cs_client_call(d.c, CS_MSG_OFFER_ACQUIRE, "\x91\x01", 2, &r, &err), CS_EPROTO);
    /* Still serving, offers included. */
    add_machine(d.c, "m1", 1000);
    uint64_t a = acquire_granted(d.c, "batch-0", 0, 0);
    cr_assert_eq(release(d.c, a, &err), CS_OK, "%s", err.msg);
    ts_daemon_teardown(&d);
}

Test(offers, an_optimistic_cell_makes_no_offers)
{
    ts_daemon d;
    ts_daemon_setup(&d, NULL, NULL);
    cs_offer_reply r;
    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};
    cr_assert_eq(acquire(d.c, "batch-0", 0, 0, &r, &a, &err), CS_ESTATE);
    cr_assert(strstr(err.msg, "--concurrency optimistic") != NULL, "%s", err.msg);
    cs_id m = add_machine(d.c, "m1", 1000);
    cs_id job = submit(d.c, "work", 1, 500);
    uint64_t n = 0;
    cr_assert_eq(commit_one(d.c, 5, m, job, 0, 500, 1, &n, &err), CS_ESTATE);
    cr_assert(strstr(err.msg, "send commit") != NULL, "%s", err.msg);
    cr_assert_eq(commit_one(d.c, 0, m, job, 0, 500, 2, &n, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(n, 1);
    cs_arena_free(&a);
    ts_daemon_teardown(&d);
}

/* ---- property: a seeded run against a model -------------------------------------------- */

/* A tiny deterministic generator (splitmix64), so that a failure replays. */
static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* offer.commit of claims[0..n) (task, machine, cpu): the error code, and
 * on CS_OK the claims committed. */
static int commit_claims(cs_client *c, uint64_t lease, const cs_id *task, const cs_id *mach,
                         const int64_t *cpu, uint32_t n, uint64_t req, uint64_t *committed,
                         cs_error *err)
{
    cs_txn t;
    cs_txn_init(&t, 78, req, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    for (uint32_t i = 0; i < n; i++) {
        cs_res r = {cpu[i], 64, 0};
        cs_txn_add_claim(&t, task[i], mach[i], &r, NULL, 0, 0);
    }
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    cs_offer_commit_req_encode(&b, lease, &t);
    cs_msg r;
    int rc = cs_client_callb(c, CS_MSG_OFFER_COMMIT, &b, &r, err);
    if (rc == CS_OK)
        cr_assert_eq(cs_obj_u64(&r.body, "committed", true, UINT64_MAX, committed, err), CS_OK);
    msgpack_sbuffer_destroy(&b);
    cs_txn_free(&t);
    return rc;
}

/* Three schedulers ask, commit and release in a seeded order, sometimes
 * with a stale lease or claims beyond the offer. The model: the offer is
 * held by at most one of them; an acquire is granted exactly when nobody
 * else holds it (the same lease to a holder that asks again); a commit is
 * taken exactly when its lease is the current one and each machine's
 * claims fit what was free there at the grant less what the lease took
 * since; and then every claim commits (nobody else commits meanwhile). */
Test(offers, property_one_lease_and_commits_within_it)
{
    ts_daemon d;
    offers_setup(&d, "10m");
    enum { NM = 4, NJ = 3, NS = 3 };
    const int64_t cap = 2000, jcpu[NJ] = {100, 300, 700};
    cs_id mid[NM], jid[NJ];
    int64_t freecpu[NM];
    uint32_t next[NJ] = {0};
    for (int m = 0; m < NM; m++) {
        char name[16];
        snprintf(name, sizeof name, "m%d", m);
        mid[m] = add_machine(d.c, name, cap);
        freecpu[m] = cap;
    }
    for (int j = 0; j < NJ; j++) {
        char name[16];
        snprintf(name, sizeof name, "j%d", j);
        jid[j] = submit(d.c, name, 400, jcpu[j]);
    }
    static const char *const names[NS] = {"s0", "s1", "s2"};
    int holder = -1;            /* the model's: who holds the offer */
    uint64_t lease = 0, old = 0; /* the current lease; one released or passed over */
    int64_t offered[NM], used[NM];
    uint64_t seed = 20261206, req = 1;
    uint32_t grants = 0, refused = 0, taken = 0;
    cs_arena a;
    cs_arena_init(&a);
    for (int step = 0; step < 300; step++) {
        int who = (int)(mix(&seed) % NS);
        uint64_t op = mix(&seed) % 10;
        cs_error err = {0};
        if (op < 3) { /* acquire */
            cs_offer_reply r;
            cr_assert_eq(acquire(d.c, names[who], 0, 0, &r, &a, &err), CS_OK, "%s", err.msg);
            cr_assert_eq(r.granted, holder == -1 || holder == who, "step %d: %s granted %d, holder %d",
                         step, names[who], r.granted, holder);
            if (holder == who)
                cr_assert_eq(r.lease, lease, "step %d: a holder asking again keeps its lease", step);
            else if (r.granted) {
                holder = who;
                lease = r.lease;
                grants++;
                for (int m = 0; m < NM; m++) {
                    offered[m] = freecpu[m];
                    used[m] = 0;
                }
                int64_t sum = 0;
                for (int m = 0; m < NM; m++)
                    sum += freecpu[m];
                cr_assert_eq(r.free.cpu, sum, "step %d: the offer is every free core", step);
            } else
                cr_assert_str_eq(r.holder, names[holder]);
        } else if (op < 5) { /* release, sometimes a stale lease */
            uint64_t l = op == 4 && old != 0 ? old : lease;
            if (l == 0)
                continue;
            int rc = release(d.c, l, &err);
            cr_assert_eq(rc, holder != -1 && l == lease ? CS_OK : CS_ESTATE, "step %d: %s", step,
                         err.msg);
            if (rc == CS_OK) {
                holder = -1;
                old = lease;
                lease = 0;
            }
        } else { /* a commit of 1-3 claims, sometimes under a stale lease */
            uint32_t n = 1 + (uint32_t)(mix(&seed) % 3);
            cs_id task[3], mach[3];
            int64_t cpu[3], want[NM] = {0};
            for (uint32_t i = 0; i < n; i++) {
                int j = (int)(mix(&seed) % NJ), m = (int)(mix(&seed) % NM);
                task[i] = cs_task_id(jid[j], next[j]++);
                mach[i] = mid[m];
                cpu[i] = jcpu[j];
                want[m] += jcpu[j];
            }
            uint64_t l = op == 9 && old != 0 ? old : lease;
            if (l == 0)
                continue;
            bool current = holder != -1 && l == lease, fit = true;
            for (int m = 0; current && m < NM; m++)
                fit = fit && used[m] + want[m] <= offered[m];
            uint64_t committed = 0;
            int rc = commit_claims(d.c, l, task, mach, cpu, n, req++, &committed, &err);
            if (!current || !fit) {
                cr_assert_eq(rc, CS_ESTATE, "step %d: a commit outside the lease or the offer "
                                            "was taken (%s)", step, err.msg);
                char want_lease[48];
                snprintf(want_lease, sizeof want_lease, "lease %llu", (unsigned long long)l);
                cr_assert(strstr(err.msg, want_lease) != NULL, "step %d: %s", step, err.msg);
                refused++;
                continue;
            }
            cr_assert_eq(rc, CS_OK, "step %d: %s", step, err.msg);
            cr_assert_eq(committed, n, "step %d: every claim within the offer commits", step);
            taken++;
            for (int m = 0; m < NM; m++) {
                used[m] += want[m];
                freecpu[m] -= want[m];
            }
        }
        cs_arena_reset(&a);
    }
    cs_arena_free(&a);
    /* The run exercised every branch. */
    cr_assert_gt(grants, 3);
    cr_assert_gt(taken, 5);
    cr_assert_gt(refused, 5);
    /* The cell agrees with the model: no machine over its capacity. */
    ts_cell cell;
    ts_cell_read(d.c, &cell);
    for (size_t i = 0; i < cell.nmachines; i++)
        for (int m = 0; m < NM; m++)
            if (cell.machines[i].id == mid[m]) {
                cr_assert_eq(cell.machines[i].allocated.cpu, cap - freecpu[m]);
                cr_assert_leq(cell.machines[i].allocated.cpu, cap);
            }
    ts_cell_free(&cell);
    ts_daemon_teardown(&d);
}

Test(offers, cellstated_names_a_bad_concurrency_flag)
{
    char bin[256], cmd[512], out[1024];
    ts_bin("cellstated", bin, sizeof bin);
    static const struct {
        const char *args, *says;
    } bad[] = {
        {"--concurrency pessimistic", "--concurrency: 'pessimistic' is not optimistic or offers"},
        {"--concurrency offers --offer-timeout 0", "--offer-timeout: must be above 0"},
        {"--offer-timeout soon", "--offer-timeout: 'soon'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(cmd, sizeof cmd, "%s %s", bin, bad[i].args);
        cr_assert_eq(ts_run(cmd, out, sizeof out), 2, "%s: %s", bad[i].args, out);
        cr_assert(strstr(out, bad[i].says) != NULL, "%s: %s", bad[i].args, out);
    }
}
