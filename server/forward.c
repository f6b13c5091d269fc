/* forward.c — a follower hands what only the leader may do to the leader.
 *
 * In a replicated cell any replica takes any request (clients need not
 * know the leader, issue 14): reads are answered where they arrive, and a
 * write, a heartbeat (the leader's monitor judges them), a scheduler's
 * report (kept where stats are whole) or a membership change arriving at a
 * follower is sent on, byte for byte, to the leader's listen URL, and the
 * leader's reply is relayed back byte for byte: the envelope's request id
 * is the client's, so the client cannot tell. A reply from the leader
 * still means what it means there (a write's: committed on a majority and
 * applied). No leader known (an election under way): CS_ENOTLEADER, and
 * the client retries, on another replica if it likes.
 *
 * One REQ socket per server, one context per worker (each forwarded
 * request waits for its own reply, as the worker's client waits), dialled
 * to the current leader: redialled when a request finds the leader
 * changed. */
#include <nng/nng.h>
#include <stdatomic.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdio.h>
#include <string.h>

#include "proto/tls.h"
#include "server/internal.h"
#include "server/replica.h"

/* How long a forwarded request may wait for the leader's reply: a long
 * poll is never forwarded, so this bounds a write's commit, with room for
 * an election in the middle. */
#define FORWARD_TIMEOUT_MS 30000

bool srv_leader_only(uint32_t type)
{
    return srv_is_write(type) || type == CS_MSG_HEARTBEAT || type == CS_MSG_SCHED_REPORT ||
           type == CS_MSG_MEMBERS_ADD || type == CS_MSG_MEMBERS_REMOVE ||
           type == CS_MSG_MEMBERS_TRANSFER || type == CS_MSG_OFFER_ACQUIRE ||
           type == CS_MSG_OFFER_RELEASE;
}

static void forward_cb(void *arg);

/* The message the leader gets for w's request: the request's own bytes,
 * except when the leader could not tell its principal from them — one
 * read from this server's client certificate, or an "as" of the HTTP
 * gateway. Then the request is sent again with {"as": w->who} (and this
 * replica's own token, --token-file, when it has one), which the leader
 * honours from a replica only (authz.c). A token of the client's own is
 * sent as it came: the leader reads the same token file. */
static int forwarded(worker *w, nng_msg **out, cs_error *err)
{
    cs_server *s = w->s;
    int rv;
    if (!s->auth.enforce || w->msg.auth.type == MSGPACK_OBJECT_STR) {
        if ((rv = nng_msg_dup(out, w->req)) != 0)
            return cs_errorf(err, CS_ENOMEM, "forwarding: out of memory");
        return CS_OK;
    }
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    int rc = CS_ENOMEM;
    bool tok = s->o.self_token != NULL;
    if (cs_msg_begin_auth(&pk, w->msg.type, w->msg.req) == CS_OK &&
        msgpack_pack_object(&pk, w->msg.body) == 0 && msgpack_pack_map(&pk, 1u + tok) == 0 &&
        cs_pack_kv_str(&pk, "as", w->who) == CS_OK &&
        (!tok || cs_pack_kv_str(&pk, "token", s->o.self_token) == CS_OK) &&
        nng_msg_alloc(out, 0) == 0) {
        if (nng_msg_append(*out, b.data, b.size) == 0)
            rc = CS_OK;
        else
            nng_msg_free(*out);
    }
    if (b.data != NULL)
        explicit_bzero(b.data, b.size);
    msgpack_sbuffer_destroy(&b);
    return rc == CS_OK ? CS_OK : cs_errorf(err, CS_ENOMEM, "forwarding: out of memory");
}

int srv_forward_init(cs_server *s, cs_error *err)
{
    int rv = nng_req0_open(&s->fwd);
    if (rv != 0)
        return cs_errorf(err, CS_EIO, "opening the forwarding socket: %s", nng_strerror(rv));
    s->have_fwd = true;
    /* Never resent on our own: a forwarded commit is resent by its client
     * (answered from its idempotency record), not twice by us. */
    nng_socket_set_ms(s->fwd, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    nng_socket_set_ms(s->fwd, NNG_OPT_RECONNMINT, 20);
    nng_socket_set_ms(s->fwd, NNG_OPT_RECONNMAXT, 500);
    nng_socket_set_size(s->fwd, NNG_OPT_RECVMAXSZ, 0);
    return CS_OK;
}

int srv_forward_worker_init(worker *w, cs_error *err)
{
    int rv = nng_aio_alloc(&w->faio, forward_cb, w);
    if (rv != 0)
        return cs_errorf(err, CS_ENOMEM, "creating a forwarding worker: %s", nng_strerror(rv));
    nng_aio_set_timeout(w->faio, FORWARD_TIMEOUT_MS);
    return CS_OK;
}

void srv_forward_stop(cs_server *s)
{
    for (uint32_t i = 0; i < s->nworkers; i++)
        if (s->workers[i].faio != NULL)
            nng_aio_cancel(s->workers[i].faio);
    for (uint32_t i = 0; i < s->nworkers; i++)
        if (s->workers[i].faio != NULL)
            nng_aio_stop(s->workers[i].faio);
    if (s->have_fwd)
        nng_close(s->fwd);
    for (uint32_t i = 0; i < s->nworkers; i++)
        if (s->workers[i].faio != NULL) {
            nng_aio_free(s->workers[i].faio);
            s->workers[i].faio = NULL;
        }
    s->have_fwd = false;
}

/* Point the forwarding socket at the current leader (fmu held): the
 * leader's listen URL from the replica, dialled without blocking (nng
 * connects, and reconnects, in the background). CS_ENOTLEADER when no
 * leader is known. */
static int aim(cs_server *s, cs_error *err)
{
    pthread_mutex_lock(&s->mu);
    uint64_t leader = s->leader;
    pthread_mutex_unlock(&s->mu);
    if (leader != 0 && leader == s->fwd_leader && s->have_fwd_dialer)
        return CS_OK;
    cs_replica_status st;
    int rc = srv_replica_status(s, &st, err);
    free(st.members);
    if (rc != CS_OK)
        return rc;
    if (st.leader == 0 || st.leader_listen[0] == '\0')
        return cs_errorf(err, CS_ENOTLEADER,
                         "no leader known to replica %llu: an election is under way; retry",
                         (unsigned long long)st.id);
    if (st.leader == st.id)
        return cs_errorf(err, CS_ENOTLEADER,
                         "replica %llu became the leader meanwhile; retry",
                         (unsigned long long)st.id);
    if (s->have_fwd_dialer && strcmp(s->fwd_url, st.leader_listen) == 0) {
        s->fwd_leader = st.leader;
        return CS_OK;
    }
    if (s->have_fwd_dialer) {
        nng_dialer_close(s->fwd_dialer);
        s->have_fwd_dialer = false;
    }
    /* Over TLS when the leader's `listen` is a tls+tcp URL: this replica
     * presents its own certificate, as any client does. */
    rc = cs_tls_dial(s->fwd, st.leader_listen, s->o.tls, NNG_FLAG_NONBLOCK, &s->fwd_dialer,
                         "dialling the leader", err);
    if (rc != CS_OK)
        return cs_error_wrap(err, CS_ENOTLEADER, "replica %llu", (unsigned long long)st.leader);
    s->have_fwd_dialer = true;
    s->fwd_leader = st.leader;
    snprintf(s->fwd_url, sizeof s->fwd_url, "%s", st.leader_listen);
    return CS_OK;
}

void srv_forward(worker *w)
{
    cs_server *s = w->s;
    cs_error err = {0};
    int rv, rc;
    pthread_mutex_lock(&s->fmu);
    rc = aim(s, &err);
    if (rc == CS_OK && !w->fctx_open) {
        if ((rv = nng_ctx_open(&w->fctx, s->fwd)) == 0)
            w->fctx_open = true;
        else
            rc = cs_errorf(&err, CS_EIO, "forwarding: %s", nng_strerror(rv));
    }
    pthread_mutex_unlock(&s->fmu);
    nng_msg *m = NULL;
    if (rc == CS_OK)
        rc = forwarded(w, &m, &err);
    if (rc != CS_OK) {
        srv_send_error(w, rc, err.msg);
        return;
    }
    w->state = W_FORWARD;
    w->fsent = false;
    pthread_mutex_lock(&s->fmu);
    atomic_store(&w->fleader, s->fwd_leader);
    pthread_mutex_unlock(&s->fmu);
    nng_aio_set_msg(w->faio, m);
    nng_ctx_send(w->fctx, w->faio);
}

void srv_forward_leader_changed(cs_server *s, uint64_t leader)
{
    for (uint32_t i = 0; i < s->nworkers; i++) {
        worker *w = &s->workers[i];
        uint64_t to = atomic_load(&w->fleader);
        /* Only a request in flight to another leader; the exchange makes
         * sure no other change cancels it too (forward_cb reads 0). The
         * request may still end before the cancel lands, and the worker
         * begin another: forward_cb answers a cancelled request in any
         * case, so that the late cancel costs that one a retry, never its
         * reply. */
        if (w->faio != NULL && to != 0 && to != leader &&
            atomic_compare_exchange_strong(&w->fleader, &to, 0))
            nng_aio_cancel(w->faio);
    }
}

static void forward_cb(void *arg)
{
    worker *w = arg;
    int rv = nng_aio_result(w->faio);
    if (rv == 0 && !w->fsent) {
        /* Sent: await the reply. fleader stays as it is, so that a change
         * of leader still finds the request in flight; one that came
         * between the send's end and here (its cancel then found nothing
         * to cancel) is acted on once the receive is armed. */
        w->fsent = true;
        nng_ctx_recv(w->fctx, w->faio);
        if (atomic_load(&w->fleader) == 0)
            nng_aio_cancel(w->faio);
        return;
    }
    /* The request ends here, whatever happened: 0 tells a change of
     * leader's cancel (srv_forward_leader_changed) that it is over. */
    uint64_t to = atomic_exchange(&w->fleader, 0);
    if (rv != 0 && !w->fsent)
        nng_msg_free(nng_aio_get_msg(w->faio));
    if (rv == NNG_ECANCELED || rv == NNG_ECLOSED) {
        pthread_mutex_lock(&w->s->mu);
        bool stop = w->s->stopping;
        pthread_mutex_unlock(&w->s->mu);
        if (stop || rv == NNG_ECLOSED)
            return; /* stopping: nobody is answered */
        /* Cancelled by a change of leader (to is 0: the change took the
         * request), or by a change's cancel that came late, after the
         * request it meant had ended and this one begun: answered either
         * way, so that no request is left without a reply. */
        srv_send_error(w, CS_ENOTLEADER,
                       to == 0 ? "the leader changed while the request was forwarded to it: "
                                 "retry (a retried commit is answered from its idempotency record)"
                               : "forwarding to the leader was interrupted: retry (a retried "
                                 "commit is answered from its idempotency record)");
        return;
    }
    if (rv != 0) {
        char m[256];
        pthread_mutex_lock(&w->s->fmu);
        snprintf(m, sizeof m, "forwarding to the leader at %s: %s", w->s->fwd_url,
                 nng_strerror(rv));
        /* Dial afresh next time: the leader may have changed. */
        w->s->fwd_leader = 0;
        pthread_mutex_unlock(&w->s->fmu);
        srv_send_error(w, CS_ENOTLEADER, m);
        return;
    }
    nng_msg *reply = nng_aio_get_msg(w->faio);
    w->outcome = srv_metrics_reply_outcome(nng_msg_body(reply), nng_msg_len(reply));
    srv_send_bytes(w, nng_msg_body(reply), nng_msg_len(reply));
    nng_msg_free(reply);
}
