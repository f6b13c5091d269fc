/* client.c — a blocking REQ client of cellstated (see client.h). */
#include "proto/client.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdlib.h>
#include <string.h>

#include "proto/jobmsg.h"
#include "proto/msg.h"
#include "proto/readmsg.h"

struct cs_client {
    nng_socket sock;
    uint64_t next_req;
    nng_msg *reply; /* the last reply: the decoded one points into it */
    msgpack_zone zone;
    msgpack_sbuffer out;
};

int cs_client_open(const char *url, uint32_t timeout_ms, cs_client **out, cs_error *err)
{
    cs_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return cs_errorf(err, CS_ENOMEM, "client: out of memory");
    int rv;
    if ((rv = nng_req0_open(&c->sock)) != 0) {
        free(c);
        return cs_errorf(err, CS_EIO, "client: %s", nng_strerror(rv));
    }
    /* Resend only after the call's own timeout: a commit must not be sent
     * twice while the first is being applied (a resend would be answered
     * from the idempotency record anyway). */
    nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    nng_socket_set_ms(c->sock, NNG_OPT_RECONNMINT, 20);
    nng_socket_set_ms(c->sock, NNG_OPT_RECONNMAXT, 500);
    nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, 0);
    if ((rv = nng_dial(c->sock, url, NULL, NNG_FLAG_NONBLOCK)) != 0) {
        nng_close(c->sock);
        free(c);
        return cs_errorf(err, CS_EINVAL, "client: cannot dial %s: %s", url, nng_strerror(rv));
    }
    cs_client_set_timeout(c, timeout_ms);
    msgpack_zone_init(&c->zone, 4096);
    msgpack_sbuffer_init(&c->out);
    /* Request ids start from the address of the client and the time would
     * be nicer, but any start works: REQ matches replies itself. */
    c->next_req = 1;
    *out = c;
    return CS_OK;
}

void cs_client_set_timeout(cs_client *c, uint32_t timeout_ms)
{
    nng_socket_set_ms(c->sock, NNG_OPT_SENDTIMEO, (nng_duration)timeout_ms);
    nng_socket_set_ms(c->sock, NNG_OPT_RECVTIMEO, (nng_duration)timeout_ms);
}

void cs_client_close(cs_client *c)
{
    if (c == NULL)
        return;
    if (c->reply)
        nng_msg_free(c->reply);
    nng_close(c->sock);
    msgpack_zone_destroy(&c->zone);
    msgpack_sbuffer_destroy(&c->out);
    free(c);
}

/* Send one request and wait for its reply, kept in c->reply. Returns the
 * request id through *req. */
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
    if (cs_msg_begin(&pk, type, *req) != CS_OK ||
        msgpack_sbuffer_write(&c->out, body, len) != 0)
        return cs_errorf(err, CS_ENOMEM, "client: out of memory");
    int rv = nng_send(c->sock, c->out.data, c->out.size, 0);
    if (rv == 0)
        rv = nng_recvmsg(c->sock, &c->reply, 0);
    if (rv != 0)
        return cs_errorf(err, CS_EIO, "%s: %s", cs_msg_name(type),
                         rv == NNG_ETIMEDOUT ? "no answer from cellstated (timed out)"
                                             : nng_strerror(rv));
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
