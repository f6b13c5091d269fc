/* client.c — a blocking REQ client of cellstated that fails over between
 * the servers of its list (see client.h). */
#include "proto/client.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/jobmsg.h"
#include "proto/msg.h"
#include "proto/readmsg.h"
#include "proto/servers.h"
#include "proto/tls.h"

/* One socket per server, not one REQ socket dialling every URL.
 *
 * nng's req0 (1.5, src/sp/protocol/reqrep0/req.c) sends each request on the
 * first ready pipe of its socket and puts that pipe last, so one socket
 * over N servers spreads requests round-robin: the client cannot stick to
 * the server that answered (a follower that served a sync may be behind
 * the one that took the commit before it), nor choose "the next one" after
 * an answer of CS_ENOTLEADER — a resend may land on the same replica. Its
 * own failover only resends when a pipe closes or the resend timer fires,
 * and the timer cannot tell a SIGSTOPped replica (its TCP connection stays
 * open) from a slow commit: it would resend every slow commit. With one
 * socket per server the client decides: it sends to the server it sticks
 * to and moves to the next on a closed connection, a timeout, or an
 * answer of CS_ENOTLEADER or CS_EUNAVAIL.
 *
 * Each socket keeps resends off (NNG_OPT_REQ_RESENDTIME infinite): nng
 * never sends a request twice on its own, and with resends off req0 fails
 * the outstanding receive with NNG_ECONNRESET when its pipe closes (a
 * killed server), so the client moves on at once instead of waiting out
 * its timeout. A request is sent twice only by the failover below, with
 * the same bytes: a commit's retry carries the same scheduler id and
 * request id (txn.h). That makes the resend safe even when the first copy
 * is still in flight (on a stopped replica, or in a deposed leader's log):
 * the idempotency check is part of applying a commit (txn/apply.h
 * cs_commit_apply), in log order on every replica, so whichever copy is
 * applied second is answered from the first one's record and changes
 * nothing.
 *
 * The cell agent's machines are the exception (agent/loop.h): thousands of
 * asynchronous contexts share one socket, which dials every server. */

/* After a server answered that it has no leader or is stopping, wait this
 * long before asking the next: an election takes about one election
 * timeout, and a round at full speed would only collect the same answer. */
#define CS_CLIENT_BACKOFF_MS 50
/* With other servers still to ask, a request waits at most this long for
 * a connection to the server it is for (nng's send blocks until a pipe is
 * ready): on loopback or a LAN a live server is connected within a few ms
 * and a dead one never is, so a dead entry costs this, not a share of the
 * timeout. The last server of a round waits as long as the call may. */
#define CS_CLIENT_CONNECT_MS 250

struct cs_client {
    cs_servers list;
    nng_socket sock[CS_SERVERS_MAX];
    bool open[CS_SERVERS_MAX];
    size_t cur;          /* the server that answered last: the next call starts there */
    uint32_t timeout_ms; /* per call, all attempts included */
    uint64_t next_req;
    nng_msg *reply; /* the last reply: the decoded one points into it */
    msgpack_zone zone;
    msgpack_sbuffer out;
    /* The credentials each request carries as its envelope's fifth element
     * (cs_client_set_token / cs_client_set_as); NULL: none. Owned. */
    char *token;
    char *as;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Open server i's socket and dial it without blocking. */
static int server_open(cs_client *c, size_t i, const cs_tls *tls, cs_error *err)
{
    nng_socket *sock = &c->sock[i];
    const char *url = c->list.url[i];
    int rv;
    if ((rv = nng_req0_open(sock)) != 0)
        return cs_errorf(err, CS_EIO, "client: %s", nng_strerror(rv));
    c->open[i] = true;
    /* Resends off: see the top of this file. */
    nng_socket_set_ms(*sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    nng_socket_set_ms(*sock, NNG_OPT_RECONNMINT, 20);
    nng_socket_set_ms(*sock, NNG_OPT_RECONNMAXT, 500);
    nng_socket_set_size(*sock, NNG_OPT_RECVMAXSZ, 0);
    return cs_tls_dial(*sock, url, tls, NNG_FLAG_NONBLOCK, NULL, "client", err);
}

int cs_client_open(const char *urls, uint32_t timeout_ms, cs_client **out, cs_error *err)
{
    return cs_client_open_tls(urls, NULL, timeout_ms, out, err);
}

int cs_client_open_tls(const char *urls, const cs_tls *tls, uint32_t timeout_ms, cs_client **out,
                       cs_error *err)
{
    cs_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return cs_errorf(err, CS_ENOMEM, "client: out of memory");
    int rc = cs_servers_parse(urls, &c->list, err);
    if (rc != CS_OK) {
        free(c);
        return cs_error_wrap(err, rc, "client");
    }
    msgpack_zone_init(&c->zone, 4096);
    msgpack_sbuffer_init(&c->out);
    for (size_t i = 0; i < c->list.n; i++)
        if ((rc = server_open(c, i, tls, err)) != CS_OK) {
            cs_client_close(c);
            return rc;
        }
    c->timeout_ms = timeout_ms;
    /* Request ids start from the address of the client and the time would
     * be nicer, but any start works: REQ matches replies itself. */
    c->next_req = 1;
    *out = c;
    return CS_OK;
}

void cs_client_set_timeout(cs_client *c, uint32_t timeout_ms) { c->timeout_ms = timeout_ms; }

void cs_client_close(cs_client *c)
{
    if (c == NULL)
        return;
    if (c->reply)
        nng_msg_free(c->reply);
    /* Known limit of nng 1.5.2 (Debian 12's): closing a socket while the
     * replies to its timed-out requests arrive (a stopped server that was
     * resumed) can leave nng_close waiting forever in its pipe reaper
     * (req0_pipe_stop on the pipe's receive); test_client's stopped-server
     * test saw it about once in ten runs and closes before resuming. */
    for (size_t i = 0; i < c->list.n; i++)
        if (c->open[i])
            nng_close(c->sock[i]);
    msgpack_zone_destroy(&c->zone);
    msgpack_sbuffer_destroy(&c->out);
    if (c->token != NULL)
        explicit_bzero(c->token, strlen(c->token));
    free(c->token);
    free(c->as);
    free(c);
}

int cs_client_set_token(cs_client *c, const char *token, cs_error *err)
{
    char *t = NULL;
    if (token != NULL && (t = strdup(token)) == NULL)
        return cs_errorf(err, CS_ENOMEM, "client: out of memory");
    if (c->token != NULL)
        explicit_bzero(c->token, strlen(c->token));
    free(c->token);
    c->token = t;
    return CS_OK;
}

int cs_client_set_as(cs_client *c, const char *principal, cs_error *err)
{
    char *p = NULL;
    if (principal != NULL && (p = strdup(principal)) == NULL)
        return cs_errorf(err, CS_ENOMEM, "client: out of memory");
    free(c->as);
    c->as = p;
    return CS_OK;
}

/* Decode c->reply, the answer to request `req` of `type`, into objects. */
static int decode_reply(cs_client *c, uint32_t type, uint64_t req, cs_msg *reply, cs_error *err)
{
    int rc = cs_msg_decode(nng_msg_body(c->reply), nng_msg_len(c->reply), &c->zone, reply, err);
    if (rc != CS_OK)
        return cs_error_wrap(err, rc, "reply to %s", cs_msg_name(type));
    if (reply->type == CS_MSG_ERROR) {
        cs_error_reply e;
        cs_error_reply_decode(&reply->body, &e, NULL, err);
        return cs_errorf(err, e.code, "server: %.*s", (int)e.message_len, e.message);
    }
    if (reply->type != type || reply->req != req)
        return cs_errorf(err, CS_EPROTO, "reply to %s is of type %s", cs_msg_name(type),
                         cs_msg_name(reply->type));
    return CS_OK;
}

/* The code of c->reply when it is an error reply, else CS_OK. Only the
 * envelope is read here; decode_reply reads the whole reply. */
static int reply_error_code(cs_client *c)
{
    cs_mp_cur cur;
    cs_mp_cur_init(&cur, nng_msg_body(c->reply), nng_msg_len(c->reply));
    uint32_t n;
    uint64_t version, rtype, req;
    if (cs_mp_read_array(&cur, &n) != CS_OK || n != 4 || cs_mp_read_uint(&cur, &version) != CS_OK ||
        cs_mp_read_uint(&cur, &rtype) != CS_OK || rtype != CS_MSG_ERROR ||
        cs_mp_read_uint(&cur, &req) != CS_OK)
        return CS_OK;
    cs_msg m;
    cs_error_reply e;
    cs_error ignored;
    msgpack_zone_clear(&c->zone);
    if (cs_msg_decode(nng_msg_body(c->reply), nng_msg_len(c->reply), &c->zone, &m, &ignored) !=
            CS_OK ||
        cs_error_reply_decode(&m.body, &e, NULL, &ignored) != CS_OK)
        return CS_OK;
    return e.code;
}

/* Send c->out to server i and wait for its reply, kept in c->reply; both
 * within `ms`, the wait for a connection within `connect_ms` (<= ms).
 * CS_EIO when it could not be sent or was not answered. */
static int attempt(cs_client *c, size_t i, uint32_t type, int64_t ms, int64_t connect_ms,
                   cs_error *err)
{
    nng_socket sock = c->sock[i];
    int64_t start = mono_ms();
    nng_socket_set_ms(sock, NNG_OPT_SENDTIMEO, (nng_duration)connect_ms);
    int rv = nng_send(sock, c->out.data, c->out.size, 0);
    if (rv == 0) {
        int64_t left = ms - (mono_ms() - start);
        nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, (nng_duration)(left > 0 ? left : 0));
        rv = nng_recvmsg(sock, &c->reply, 0);
    }
    if (rv == 0)
        return CS_OK;
    const char *why = rv == NNG_ETIMEDOUT ? "no answer from cellstated (timed out)"
                                          : nng_strerror(rv);
    if (c->list.n == 1)
        return cs_errorf(err, CS_EIO, "%s: %s", cs_msg_name(type), why);
    return cs_errorf(err, CS_EIO, "%s: %s: %s", cs_msg_name(type), c->list.url[i], why);
}

/* Send one request and wait for its reply, kept in c->reply, failing over
 * as client.h says. Returns the request id through *req. */
static int exchange(cs_client *c, uint32_t type, const void *body, size_t len, uint64_t *req,
                    cs_error *err)
{
    if (c->reply) {
        nng_msg_free(c->reply);
        c->reply = NULL;
    }
    msgpack_zone_clear(&c->zone);
    c->out.size = 0;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &c->out, msgpack_sbuffer_write);
    *req = c->next_req++;
    bool auth = c->token != NULL || c->as != NULL;
    if ((auth ? cs_msg_begin_auth(&pk, type, *req) : cs_msg_begin(&pk, type, *req)) != CS_OK ||
        msgpack_sbuffer_write(&c->out, body, len) != 0)
        return cs_errorf(err, CS_ENOMEM, "client: out of memory");
    if (c->as != NULL) {
        if (msgpack_pack_map(&pk, 1) != 0 || cs_pack_kv_str(&pk, "as", c->as) != CS_OK)
            return cs_errorf(err, CS_ENOMEM, "client: out of memory");
    } else if (c->token != NULL && cs_pack_str(&pk, c->token) != CS_OK) {
        return cs_errorf(err, CS_ENOMEM, "client: out of memory");
    }
    size_t n = c->list.n;
    int64_t deadline = mono_ms() + c->timeout_ms;
    int rc = CS_EIO;
    size_t tried = 0;
    for (size_t k = 0; k < n; k++) {
        size_t i = (c->cur + k) % n;
        int64_t left = deadline - mono_ms();
        if (k > 0 && left <= 0)
            break; /* the error of the last attempt stands */
        /* Each server still to ask gets an equal share of what is left, so
         * that a stopped server costs a share and the call still ends by
         * the deadline; the last one gets all of it. */
        int64_t share = k + 1 == n ? left : left / (int64_t)(n - k);
        if (share < 0)
            share = 0;
        int64_t connect = k + 1 < n && share > CS_CLIENT_CONNECT_MS ? CS_CLIENT_CONNECT_MS : share;
        tried++;
        if ((rc = attempt(c, i, type, share, connect, err)) == CS_OK) {
            int code = reply_error_code(c);
            if (code != CS_ENOTLEADER && code != CS_EUNAVAIL) {
                c->cur = i;
                return CS_OK; /* an answer, maybe an error reply: decode_reply says */
            }
            /* Keep the server's words in case nobody does better. */
            cs_msg m;
            rc = decode_reply(c, type, *req, &m, err);
            nng_msg_free(c->reply);
            c->reply = NULL;
            if (k + 1 < n) {
                int64_t pause = deadline - mono_ms();
                if (pause > CS_CLIENT_BACKOFF_MS)
                    pause = CS_CLIENT_BACKOFF_MS;
                struct timespec ts = {0, (long)(pause > 0 ? pause : 0) * 1000000};
                nanosleep(&ts, NULL);
            }
        }
    }
    if (n > 1 && rc != CS_ENOMEM)
        cs_error_wrap(err, rc, "tried %zu of %zu servers; the last", tried, n);
    return rc;
}

int cs_client_call(cs_client *c, uint32_t type, const void *body, size_t len, cs_msg *reply,
                   cs_error *err)
{
    uint64_t req;
    int rc = exchange(c, type, body, len, &req, err);
    return rc != CS_OK ? rc : decode_reply(c, type, req, reply, err);
}

int cs_client_call_raw(cs_client *c, uint32_t type, const void *body, size_t len,
                       const void **reply_body, size_t *reply_len, cs_error *err)
{
    uint64_t req;
    int rc = exchange(c, type, body, len, &req, err);
    if (rc != CS_OK)
        return rc;
    /* The envelope, read in place; anything unexpected (an error reply, a
     * malformed envelope) goes the general way, which says what it is. */
    cs_mp_cur cur;
    cs_mp_cur_init(&cur, nng_msg_body(c->reply), nng_msg_len(c->reply));
    uint32_t n;
    uint64_t version, rtype, rreq;
    /* The body is the envelope's last element: the rest of the message,
     * left for the caller's cursor to check as it reads (a sync reply is
     * megabytes; scanning it here first was a pass for nothing). */
    if (cs_mp_read_array(&cur, &n) == CS_OK && n == 4 &&
        cs_mp_read_uint(&cur, &version) == CS_OK && version == CS_PROTO_VERSION &&
        cs_mp_read_uint(&cur, &rtype) == CS_OK && rtype == type &&
        cs_mp_read_uint(&cur, &rreq) == CS_OK && rreq == req && cs_mp_cur_left(&cur) > 0) {
        *reply_body = cur.p;
        *reply_len = cs_mp_cur_left(&cur);
        return CS_OK;
    }
    cs_msg m;
    rc = decode_reply(c, type, req, &m, err);
    return rc != CS_OK ? rc : cs_errorf(err, CS_EPROTO, "reply to %s: malformed envelope",
                                        cs_msg_name(type));
}

int cs_client_callb(cs_client *c, uint32_t type, const msgpack_sbuffer *body, cs_msg *reply,
                    cs_error *err)
{
    return cs_client_call(c, type, body->data, body->size, reply, err);
}

int cs_client_job_surge(cs_client *c, cs_id job, uint32_t surge, uint64_t *version,
                        cs_error *err)
{
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    cs_msg r;
    int rc;
    cs_job_count_req q = {cs_ref_id(job), surge};
    cs_version_reply v;
    if (cs_job_surge_req_encode(&pk, &q) != CS_OK)
        rc = cs_errorf(err, CS_ENOMEM, "job.surge: out of memory");
    else if ((rc = cs_client_callb(c, CS_MSG_JOB_SURGE, &body, &r, err)) == CS_OK &&
             (rc = cs_version_reply_decode(&r.body, &v, NULL, err)) != CS_OK)
        cs_error_wrap(err, rc, "reply to job.surge");
    if (rc == CS_OK && version != NULL)
        *version = v.version;
    msgpack_sbuffer_destroy(&body);
    return rc;
}

int cs_client_stats(cs_client *c, cs_stats_reply *out, cs_arena *a, cs_error *err)
{
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    cs_msg r;
    int rc;
    if (cs_empty_req_encode(&pk) != CS_OK)
        rc = cs_errorf(err, CS_ENOMEM, "stats: out of memory");
    else if ((rc = cs_client_callb(c, CS_MSG_STATS, &body, &r, err)) == CS_OK &&
             (rc = cs_stats_reply_decode(&r.body, out, a, err)) != CS_OK)
        cs_error_wrap(err, rc, "reply to stats");
    msgpack_sbuffer_destroy(&body);
    return rc;
}
