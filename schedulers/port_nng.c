/* port_nng.c — the scheduler port over cellstated (see port.h): each call
 * one request of docs/protocol.md through proto/client.h, packed and read
 * by the message codecs of proto/; the host's clocks. */
#include "schedulers/port.h"

#include <inttypes.h>
#include <stdlib.h>
#include <time.h>

#include "proto/commitmsg.h"
#include "proto/jobmsg.h"
#include "proto/offermsg.h"
#include "proto/proto.h"
#include "proto/sync.h"
#include "schedulers/cellcopy.h"

struct cs_port_nng {
    cs_sched_port table;
    cs_client *client;
    bool owns_client;
    msgpack_sbuffer buf; /* the request being sent */
    /* The Raft index of this scheduler's last commit (0 on a cell of one
     * replica): the next sync asks for it as min_index, so that the
     * replica it reads from — a follower may be a heartbeat behind — shows
     * the scheduler its own commit (Nomad's RefreshIndex). */
    uint64_t last_index;
    uint64_t lease; /* the offer's lease while this scheduler holds it (0: none) */
    uint32_t chunk; /* a full sync comes in pieces of this many records; 0: in one reply */
};

/* ---- the cell ---------------------------------------------------------------- */

/* One `sync` request (a cs_copy_sync_call); *body (len bytes) is the
 * reply's body, the client's until its next call. */
static int sync_call(void *ctx, const cs_sync_req *req, const void **body, size_t *len,
                     cs_error *err)
{
    cs_port_nng *p = ctx;
    p->buf.size = 0;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &p->buf, msgpack_sbuffer_write);
    if (cs_sync_req_encode(&pk, req) != CS_OK)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    int rc = cs_client_call_raw(p->client, CS_MSG_SYNC, p->buf.data, p->buf.size, body, len, err);
    return rc == CS_OK ? CS_OK : cs_error_wrap(err, rc, "sync");
}

/* Omega's sync: one request, or with p->chunk a full reply in pieces
 * (cs_copy_sync_with). */
static int nng_sync(void *ctx, cs_copy *c, cs_error *err)
{
    cs_port_nng *p = ctx;
    return cs_copy_sync_with(c, sync_call, p, p->chunk, p->last_index, err);
}

static int nng_commit(void *ctx, const cs_txn *t, cs_txn_result *r, cs_error *err)
{
    cs_port_nng *p = ctx;
    p->buf.size = 0;
    /* Under the offer, the commit names its lease (offer.commit). */
    if ((p->lease != 0 ? cs_offer_commit_req_encode(&p->buf, p->lease, t)
                       : cs_commit_req_encode(&p->buf, t)) != CS_OK)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    cs_msg m;
    int rc = cs_client_callb(p->client, p->lease != 0 ? CS_MSG_OFFER_COMMIT : CS_MSG_COMMIT,
                             &p->buf, &m, err);
    if (rc != CS_OK)
        return rc;
    cs_commit_reply reply;
    cs_arena a;
    cs_arena_init(&a);
    cs_txn_result_free(r);
    cs_txn_result_init(r);
    if ((rc = cs_commit_reply_decode(&m.body, &reply, &a, err)) == CS_OK)
        rc = cs_commit_reply_result(&reply, t, r, err);
    if (rc == CS_OK && reply.index > p->last_index)
        p->last_index = reply.index;
    cs_arena_free(&a);
    return rc;
}

/* Pack a request with `encode` into the port's buffer and send it as
 * `type`; the reply ({version}) is not read. */
#define SEND(p, type, encode, req, err)                                         \
    do {                                                                        \
        (p)->buf.size = 0;                                                      \
        msgpack_packer pk_;                                                     \
        msgpack_packer_init(&pk_, &(p)->buf, msgpack_sbuffer_write);            \
        if (encode(&pk_, req) != CS_OK)                                         \
            return cs_errorf(err, CS_ENOMEM, "out of memory");                  \
        cs_msg m_;                                                              \
        return cs_client_callb((p)->client, type, &(p)->buf, &m_, err);         \
    } while (0)

static int nng_note(void *ctx, cs_id job, const char *note, cs_error *err)
{
    cs_job_note_req req = {cs_ref_id(job), note};
    SEND((cs_port_nng *)ctx, CS_MSG_JOB_NOTE, cs_job_note_req_encode, &req, err);
}

static int nng_scale(void *ctx, cs_id job, uint32_t count, cs_error *err)
{
    cs_job_count_req req = {cs_ref_id(job), count};
    SEND((cs_port_nng *)ctx, CS_MSG_JOB_SCALE, cs_job_scale_req_encode, &req, err);
}

static int nng_surge(void *ctx, cs_id job, uint32_t surge, cs_error *err)
{
    cs_port_nng *p = ctx;
    return cs_client_job_surge(p->client, job, surge, NULL, err);
}

static int nng_job_end(void *ctx, cs_id job, cs_error *err)
{
    cs_job_ref_req req = {cs_ref_id(job)};
    SEND((cs_port_nng *)ctx, CS_MSG_JOB_END, cs_job_ref_req_encode, &req, err);
}

static int nng_report(void *ctx, const void *body, size_t len, cs_error *err)
{
    cs_port_nng *p = ctx;
    cs_msg m;
    return cs_client_call(p->client, CS_MSG_SCHED_REPORT, body, len, &m, err);
}

static int nng_acquire(void *ctx, const char *sched, const cs_res *held, uint32_t wait_ms,
                       bool *granted, cs_error *err)
{
    cs_port_nng *p = ctx;
    *granted = false;
    p->buf.size = 0;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &p->buf, msgpack_sbuffer_write);
    cs_offer_acquire_req req = {sched, *held, wait_ms};
    if (cs_offer_acquire_req_encode(&pk, &req) != CS_OK)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    cs_msg m;
    int rc = cs_client_callb(p->client, CS_MSG_OFFER_ACQUIRE, &p->buf, &m, err);
    if (rc != CS_OK)
        return cs_error_wrap(err, rc, "offer.acquire");
    cs_offer_reply reply;
    cs_arena a;
    cs_arena_init(&a);
    rc = cs_offer_reply_decode(&m.body, &reply, &a, err);
    cs_arena_free(&a);
    if (rc != CS_OK)
        return rc;
    p->lease = reply.granted ? reply.lease : 0;
    *granted = reply.granted;
    return CS_OK;
}

static int nng_release(void *ctx, cs_error *err)
{
    cs_port_nng *p = ctx;
    if (p->lease == 0)
        return CS_OK;
    cs_offer_release_req req = {p->lease};
    p->lease = 0; /* released, or refused because it was taken back: gone either way */
    SEND(p, CS_MSG_OFFER_RELEASE, cs_offer_release_req_encode, &req, err);
}

/* ---- the host's clocks --------------------------------------------------------- */

static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t nng_now(void *ctx)
{
    (void)ctx;
    return clock_ns(CLOCK_MONOTONIC);
}

static int64_t nng_wall(void *ctx)
{
    (void)ctx;
    return clock_ns(CLOCK_REALTIME) / 1000000;
}

static void nng_sleep(void *ctx, int64_t until)
{
    int64_t ns = until - nng_now(ctx);
    if (ns <= 0)
        return;
    struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
    nanosleep(&ts, NULL); /* a signal ends it early: the loop looks at its stop flag */
}

/* ---- setup ------------------------------------------------------------------------ */

static int port_new(cs_client *client, const char *url, bool owns, cs_port_nng **out,
                    cs_error *err)
{
    cs_port_nng *p = calloc(1, sizeof *p);
    if (p == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    p->client = client;
    p->owns_client = owns;
    msgpack_sbuffer_init(&p->buf);
    p->table = (cs_sched_port){
        .ctx = p,
        .where = url,
        .sync = nng_sync,
        .commit = nng_commit,
        .note = nng_note,
        .scale = nng_scale,
        .surge = nng_surge,
        .job_end = nng_job_end,
        .report = nng_report,
        .now = nng_now,
        .wall = nng_wall,
        .sleep = nng_sleep,
        .acquire = nng_acquire,
        .release = nng_release,
    };
    *out = p;
    return CS_OK;
}

int cs_port_nng_open(const char *url, const cs_tls *tls, const char *token, uint32_t timeout_ms,
                     cs_port_nng **out, cs_error *err)
{
    cs_client *client;
    int rc = cs_client_open_tls(url, tls, timeout_ms, &client, err);
    if (rc != CS_OK)
        return rc;
    if ((rc = cs_client_set_token(client, token, err)) != CS_OK ||
        (rc = port_new(client, url, true, out, err)) != CS_OK)
        cs_client_close(client);
    return rc;
}

int cs_port_nng_over(cs_client *client, cs_port_nng **out, cs_error *err)
{
    return port_new(client, "cellstated", false, out, err);
}

void cs_port_nng_free(cs_port_nng *p)
{
    if (p == NULL)
        return;
    if (p->owns_client)
        cs_client_close(p->client);
    msgpack_sbuffer_destroy(&p->buf);
    free(p);
}

const cs_sched_port *cs_port_nng_table(cs_port_nng *p) { return &p->table; }

void cs_port_nng_set_chunk(cs_port_nng *p, uint32_t chunk) { p->chunk = chunk; }
