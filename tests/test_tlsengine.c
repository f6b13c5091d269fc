/* test_tlsengine.c — cellsched's TLS engine (proto/tlsengine.h, issue 17 §2's
 * foundation): over tls+tcp:// with certificates made by
 * tools/cellsched-certs.sh, cs_tls_peer gives each side the other's CN and
 * OU, per pipe and per call (two clients at once, two threads at once); a
 * plain pipe has no peer certificate; a client of another CA, a revoked
 * client (--tls-crl) and a server under the wrong name are refused at the
 * handshake; a closed or unknown pipe is an error, not a crash. */
#include <criterion/criterion.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/tls.h"
#include "proto/tlsengine.h"
#include "tests/support.h"

static void setup(void) { ts_tmp_setup(); }
static void teardown(void) { ts_tmp_teardown(); }

TestSuite(tlsengine, .init = setup, .fini = teardown, .timeout = 120);

/* tools/cellsched-certs.sh ARGS, with ts_tmp/DIR as its directory. */
static void certs(const char *opts, const char *dir, const char *roles)
{
    char cmd[1024], out[4096];
    snprintf(cmd, sizeof cmd, "tools/cellsched-certs.sh %s '%s/%s' %s", opts, ts_tmp, dir, roles);
    int st = ts_run(cmd, out, sizeof out);
    cr_assert_eq(st, 0, "%s: %s", cmd, out);
}

typedef struct files {
    char cert[400], key[400], ca[400], crl[400];
    cs_tls_files f;
} files;

/* The files of certificate `who` (e.g. "agent-m1") in ts_tmp/DIR, with
 * DIR's CA, and DIR's crl.pem when `crl`. */
static void files_of(files *x, const char *dir, const char *who, bool crl)
{
    snprintf(x->cert, sizeof x->cert, "%s/%s/%s.pem", ts_tmp, dir, who);
    snprintf(x->key, sizeof x->key, "%s/%s/%s.key", ts_tmp, dir, who);
    snprintf(x->ca, sizeof x->ca, "%s/%s/ca.pem", ts_tmp, dir);
    snprintf(x->crl, sizeof x->crl, "%s/%s/crl.pem", ts_tmp, dir);
    x->f = (cs_tls_files){x->cert, x->key, x->ca, crl ? x->crl : NULL};
}

static cs_tls *load(const char *dir, const char *who, bool crl)
{
    files x;
    files_of(&x, dir, who, crl);
    cs_tls *t = NULL;
    cs_error err = {0};
    cr_assert_eq(cs_tls_load(&x.f, &t, &err), CS_OK, "%s: %s", who, err.msg);
    return t;
}

static void tls_url(char *out, size_t size)
{
    snprintf(out, size, "tls+tcp://127.0.0.1:%d", ts_free_port());
}

/* A REP socket at `url` (t: NULL for plain) whose receives give up after
 * `recv_ms` (a bound on waiting for what must not come, not a timing
 * assertion). */
static nng_socket rep_at(const char *url, const cs_tls *t, int recv_ms, nng_listener *l)
{
    nng_socket s;
    cs_error err = {0};
    cr_assert_eq(nng_rep0_open(&s), 0);
    cr_assert_eq(cs_tls_listen(s, url, t, l, "test", &err), CS_OK, "%s", err.msg);
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, recv_ms);
    return s;
}

static nng_socket req_to(const char *url, const cs_tls *t)
{
    nng_socket s;
    cs_error err = {0};
    cr_assert_eq(nng_req0_open(&s), 0);
    cr_assert_eq(cs_tls_dial(s, url, t, NNG_FLAG_NONBLOCK, NULL, "test", &err), CS_OK, "%s",
                 err.msg);
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 20000);
    return s;
}

/* Send `text` on `s`: nng's result (REQ waits for a connection, up to
 * the socket's NNG_OPT_SENDTIMEO). */
static int try_send(nng_socket s, const char *text)
{
    nng_msg *m;
    cr_assert_eq(nng_msg_alloc(&m, 0), 0);
    cr_assert_eq(nng_msg_append(m, text, strlen(text) + 1), 0);
    int rv = nng_sendmsg(s, m, 0);
    if (rv != 0)
        nng_msg_free(m);
    return rv;
}

static void send_text(nng_socket s, const char *text)
{
    int rv = try_send(s, text);
    cr_assert_eq(rv, 0, "send: %s", nng_strerror(rv));
}

/* A client that must be refused: its request waits for a connection that
 * never comes (the bound is only how long the test waits). */
static void send_refused(nng_socket s, const char *text)
{
    nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 1000);
    int rv = try_send(s, text);
    cr_assert_eq(rv, NNG_ETIMEDOUT, "a refused client had a connection: %s", nng_strerror(rv));
}

/* The next message of `s`, or NULL with *rv set when none came. */
static nng_msg *recv_msg(nng_socket s, int *rv)
{
    nng_msg *m = NULL;
    *rv = nng_recvmsg(s, &m, 0);
    return *rv == 0 ? m : NULL;
}

static nng_msg *recv_ok(nng_socket s)
{
    int rv;
    nng_msg *m = recv_msg(s, &rv);
    cr_assert_not_null(m, "nothing received: %s", nng_strerror(rv));
    return m;
}

static void assert_peer(nng_pipe p, const char *cn, const char *ou)
{
    struct cs_tls_peer peer;
    cs_error err = {0};
    cr_assert_eq(cs_tls_peer(p, &peer, &err), CS_OK, "%s", err.msg);
    cr_assert(peer.verified, "the peer %s is not verified", peer.cn);
    cr_assert_str_eq(peer.cn, cn);
    cr_assert_eq(peer.nou, 1u);
    cr_assert_str_eq(peer.ou[0], ou);
}

/* ---- who the peer is ------------------------------------------------------------------- */

Test(tlsengine, each_side_learns_the_other_from_its_certificate)
{
    certs("", "ca", "server agent:m1");
    cs_tls *ts = load("ca", "server", false), *tc = load("ca", "agent-m1", false);
    cr_assert_str_eq(nng_tls_engine_name(), CS_TLS_ENGINE_NAME);
    char url[64];
    tls_url(url, sizeof url);
    nng_socket srv = rep_at(url, ts, 20000, NULL), cl = req_to(url, tc);

    send_text(cl, "hello");
    nng_msg *req = recv_ok(srv);
    cr_assert_str_eq(nng_msg_body(req), "hello");
    assert_peer(nng_msg_get_pipe(req), "agent:m1", "agent");
    /* Asked again: the same answer (the identity is kept, not consumed). */
    assert_peer(nng_msg_get_pipe(req), "agent:m1", "agent");

    cr_assert_eq(nng_sendmsg(srv, req, 0), 0);
    nng_msg *rep = recv_ok(cl);
    assert_peer(nng_msg_get_pipe(rep), "server", "server");
    nng_msg_free(rep);

    nng_close(cl);
    nng_close(srv);
    cs_tls_free(tc);
    cs_tls_free(ts);
}

typedef struct asker {
    nng_pipe pipe;
    const char *cn;
    int mismatches;
    int errors;
} asker;

static void *ask_often(void *arg)
{
    asker *a = arg;
    for (int i = 0; i < 2000; i++) {
        struct cs_tls_peer peer;
        cs_error err = {0};
        if (cs_tls_peer(a->pipe, &peer, &err) != CS_OK)
            a->errors++;
        else if (strcmp(peer.cn, a->cn) != 0)
            a->mismatches++;
    }
    return NULL;
}

Test(tlsengine, two_clients_at_once_each_request_is_its_own_peers)
{
    certs("", "ca", "server agent:m1 agent:m2");
    cs_tls *ts = load("ca", "server", false);
    cs_tls *t1 = load("ca", "agent-m1", false), *t2 = load("ca", "agent-m2", false);
    char url[64];
    tls_url(url, sizeof url);
    nng_socket srv = rep_at(url, ts, 20000, NULL);
    nng_socket c1 = req_to(url, t1), c2 = req_to(url, t2);

    /* Both requests in flight; each names its sender in its body (REP
     * lets a request go unanswered when the next is read). */
    send_text(c1, "agent:m1");
    send_text(c2, "agent:m2");
    nng_msg *m[2];
    for (int i = 0; i < 2; i++) {
        m[i] = recv_ok(srv);
        assert_peer(nng_msg_get_pipe(m[i]), nng_msg_body(m[i]), "agent");
    }
    cr_assert_neq(nng_pipe_id(nng_msg_get_pipe(m[0])), nng_pipe_id(nng_msg_get_pipe(m[1])));

    /* Two threads asking about the two pipes at the same time: the
     * thread-local is per call, so neither sees the other's peer. */
    asker a[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        a[i] = (asker){nng_msg_get_pipe(m[i]), nng_msg_body(m[i]), 0, 0};
        cr_assert_eq(pthread_create(&th[i], NULL, ask_often, &a[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(a[i].errors, 0, "%s: %d errors", a[i].cn, a[i].errors);
        cr_assert_eq(a[i].mismatches, 0, "%s: %d answers of the other peer", a[i].cn,
                     a[i].mismatches);
    }
    nng_msg_free(m[0]);
    nng_msg_free(m[1]);
    nng_close(c1);
    nng_close(c2);
    nng_close(srv);
    cs_tls_free(t1);
    cs_tls_free(t2);
    cs_tls_free(ts);
}

Test(tlsengine, a_plain_pipe_has_no_peer_certificate)
{
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", ts_free_port());
    nng_socket srv = rep_at(url, NULL, 20000, NULL), cl = req_to(url, NULL);
    send_text(cl, "plain");
    nng_msg *req = recv_ok(srv);
    struct cs_tls_peer peer;
    memset(&peer, 0x5a, sizeof peer);
    cs_error err = {0};
    cr_assert_eq(cs_tls_peer(nng_msg_get_pipe(req), &peer, &err), CS_ENOTFOUND);
    cr_assert(strstr(err.msg, "no peer certificate") != NULL, "%s", err.msg);
    cr_assert(!peer.verified && peer.cn[0] == '\0' && peer.nou == 0, "not cleared");
    nng_msg_free(req);
    nng_close(cl);
    nng_close(srv);
}

Test(tlsengine, a_closed_or_unknown_pipe_is_an_error)
{
    certs("", "ca", "server agent:m1");
    cs_tls *ts = load("ca", "server", false), *tc = load("ca", "agent-m1", false);
    struct cs_tls_peer peer;
    cs_error err = {0};
    nng_pipe none = NNG_PIPE_INITIALIZER;
    cr_assert_eq(cs_tls_peer(none, &peer, &err), CS_EUNAVAIL, "%s", err.msg);

    char url[64];
    tls_url(url, sizeof url);
    nng_socket srv = rep_at(url, ts, 20000, NULL), cl = req_to(url, tc);
    send_text(cl, "bye");
    nng_msg *req = recv_ok(srv);
    nng_pipe p = nng_msg_get_pipe(req);
    assert_peer(p, "agent:m1", "agent");
    /* Closing the client closes the pipe at the server too (soon): either
     * way it is gone. */
    nng_close(cl);
    nng_pipe_close(p);
    /* The pipe's id is gone once nng has reaped it; until then a closed
     * pipe still answers. The wait is bounded by the suite's timeout. */
    int rc;
    while ((rc = cs_tls_peer(p, &peer, &err)) == CS_OK)
        ts_sleep_ms(10);
    cr_assert_eq(rc, CS_EUNAVAIL, "%s", err.msg);
    nng_msg_free(req);
    nng_close(srv);
    cs_tls_free(tc);
    cs_tls_free(ts);
}

/* A REQ socket dialling `url` with `cfg` (the test's; the dialer takes its
 * own hold), started with nng's `flags`: nng_dialer_start's result in *rv. */
static nng_socket req_with(const char *url, nng_tls_config *cfg, int flags, int *rv)
{
    nng_socket cl;
    nng_dialer d;
    cr_assert_eq(nng_req0_open(&cl), 0);
    cr_assert_eq(nng_dialer_create(&d, cl, url), 0);
    cr_assert_eq(nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg), 0);
    *rv = nng_dialer_start(d, flags);
    return cl;
}

/* A configuration of `mode`, made with whatever engine nng has now,
 * trusting ts_tmp/CADIR/ca.pem and presenting WHO of ts_tmp/DIR; a client
 * checks the server's name `name`. */
static nng_tls_config *raw_config(nng_tls_mode mode, const char *cadir, const char *dir,
                                  const char *who, const char *name)
{
    files x, c;
    files_of(&x, dir, who, false);
    files_of(&c, cadir, who, false);
    char *cert = ts_slurp(x.cert, NULL), *key = ts_slurp(x.key, NULL), *ca = ts_slurp(c.ca, NULL);
    nng_tls_config *cfg;
    cr_assert_eq(nng_tls_config_alloc(&cfg, mode), 0);
    cr_assert_eq(nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED), 0);
    cr_assert_eq(nng_tls_config_ca_chain(cfg, ca, NULL), 0);
    cr_assert_eq(nng_tls_config_own_cert(cfg, cert, key, NULL), 0);
    if (mode == NNG_TLS_MODE_CLIENT)
        cr_assert_eq(nng_tls_config_server_name(cfg, name), 0);
    free(cert);
    free(key);
    free(ca);
    return cfg;
}

Test(tlsengine, a_pipe_of_nngs_own_engine_is_named_not_read)
{
    /* Configurations made before the install keep nng's engine: their
     * pipes cannot tell the peer, and cs_tls_peer says why. */
    certs("", "ca", "server agent:m1");
    cr_assert_str_neq(nng_tls_engine_name(), CS_TLS_ENGINE_NAME);
    nng_tls_config *sc = raw_config(NNG_TLS_MODE_SERVER, "ca", "ca", "server", NULL);
    nng_tls_config *cc = raw_config(NNG_TLS_MODE_CLIENT, "ca", "ca", "agent-m1", "127.0.0.1");
    cs_error err = {0};
    cr_assert_eq(cs_tls_engine_install(&err), CS_OK, "%s", err.msg);

    char url[64];
    tls_url(url, sizeof url);
    nng_socket srv;
    nng_listener l;
    cr_assert_eq(nng_rep0_open(&srv), 0);
    cr_assert_eq(nng_listener_create(&l, srv, url), 0);
    cr_assert_eq(nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, sc), 0);
    cr_assert_eq(nng_listener_start(l, 0), 0);
    nng_socket_set_ms(srv, NNG_OPT_RECVTIMEO, 20000);
    int rv;
    nng_socket cl = req_with(url, cc, NNG_FLAG_NONBLOCK, &rv);
    cr_assert_eq(rv, 0, "%s", nng_strerror(rv));
    send_text(cl, "old");
    nng_msg *m = recv_ok(srv);
    struct cs_tls_peer peer;
    cr_assert_eq(cs_tls_peer(nng_msg_get_pipe(m), &peer, &err), CS_ESTATE, "%s", err.msg);
    cr_assert(strstr(err.msg, "not " CS_TLS_ENGINE_NAME) != NULL, "%s", err.msg);
    cr_assert_str_eq(peer.cn, "");
    nng_msg_free(m);
    nng_close(cl);
    nng_close(srv);
    nng_tls_config_free(cc);
    nng_tls_config_free(sc);
}

/* ---- who is refused -------------------------------------------------------------------- */

/* The listener's count of handshakes it refused (cs_tls_refused). */
static uint64_t refused(nng_listener l)
{
    uint64_t n = 0;
    cs_error err = {0};
    cr_assert_eq(cs_tls_refused(l, &n, &err), CS_OK, "%s", err.msg);
    return n;
}

/* A client of `cfg` (the test's; this takes its own hold) sends to `url`:
 * the server `srv`, listening with `l`, must refuse it at the handshake
 * and receive nothing. */
static void assert_refused(const char *url, nng_tls_config *cfg, nng_socket srv,
                           nng_listener l)
{
    uint64_t before = refused(l);
    int rv;
    nng_socket cl = req_with(url, cfg, NNG_FLAG_NONBLOCK, &rv);
    cr_assert_eq(rv, 0, "%s", nng_strerror(rv));
    send_refused(cl, "let me in");
    while (refused(l) == before)
        ts_sleep_ms(20);
    nng_msg *m = recv_msg(srv, &rv);
    cr_assert_null(m, "a refused client's message arrived: %s", m ? (char *)nng_msg_body(m) : "");
    cr_assert_eq(rv, NNG_ETIMEDOUT, "%s", nng_strerror(rv));
    nng_close(cl);
}

/* A client configuration of cellsched's engine: raw_config's. */
static nng_tls_config *client_config(const char *cadir, const char *dir, const char *who,
                                     const char *name)
{
    cs_error err = {0};
    cr_assert_eq(cs_tls_engine_install(&err), CS_OK, "%s", err.msg);
    return raw_config(NNG_TLS_MODE_CLIENT, cadir, dir, who, name);
}

Test(tlsengine, a_client_of_another_ca_is_refused_at_the_handshake)
{
    certs("", "ca", "server agent:m1");
    certs("", "other", "agent:m1");
    cs_tls *ts = load("ca", "server", false);
    char url[64];
    tls_url(url, sizeof url);
    nng_listener l;
    nng_socket srv = rep_at(url, ts, 1000, &l);

    /* It trusts the cell's CA, so that only the server's check refuses. */
    nng_tls_config *cfg = client_config("ca", "other", "agent-m1", "127.0.0.1");
    assert_refused(url, cfg, srv, l);
    nng_tls_config_free(cfg);

    /* The same client with the cell's certificate is served. */
    cfg = client_config("ca", "ca", "agent-m1", "127.0.0.1");
    int rv;
    nng_socket cl = req_with(url, cfg, NNG_FLAG_NONBLOCK, &rv);
    cr_assert_eq(rv, 0, "%s", nng_strerror(rv));
    nng_tls_config_free(cfg);
    send_text(cl, "me");
    nng_socket_set_ms(srv, NNG_OPT_RECVTIMEO, 20000);
    nng_msg *m = recv_ok(srv);
    assert_peer(nng_msg_get_pipe(m), "agent:m1", "agent");
    nng_msg_free(m);
    nng_close(cl);
    nng_close(srv);
    cs_tls_free(ts);
}

Test(tlsengine, a_revoked_client_is_refused_once_the_crl_is_given)
{
    certs("", "ca", "server agent:m1 agent:m2");
    certs("--revoke agent:m2", "ca", "");
    char url[64];
    nng_listener l;

    /* Without the CRL, agent:m2 is still served. */
    cs_tls *ts = load("ca", "server", false), *t2 = load("ca", "agent-m2", false);
    tls_url(url, sizeof url);
    nng_socket srv = rep_at(url, ts, 20000, &l), cl = req_to(url, t2);
    send_text(cl, "before");
    nng_msg *m = recv_ok(srv);
    assert_peer(nng_msg_get_pipe(m), "agent:m2", "agent");
    nng_msg_free(m);
    nng_close(cl);
    nng_close(srv);
    cs_tls_free(ts);

    /* With it, refused at the handshake; agent:m1 still served. */
    ts = load("ca", "server", true);
    tls_url(url, sizeof url);
    srv = rep_at(url, ts, 1000, &l);
    nng_tls_config *cfg = client_config("ca", "ca", "agent-m2", "127.0.0.1");
    assert_refused(url, cfg, srv, l);
    nng_tls_config_free(cfg);
    cs_tls *t1 = load("ca", "agent-m1", true);
    nng_socket_set_ms(srv, NNG_OPT_RECVTIMEO, 20000);
    cl = req_to(url, t1);
    send_text(cl, "after");
    m = recv_ok(srv);
    assert_peer(nng_msg_get_pipe(m), "agent:m1", "agent");
    nng_msg_free(m);
    nng_close(cl);
    nng_close(srv);

    /* The revoked certificate's own program will not even start. */
    files x;
    files_of(&x, "ca", "agent-m2", true);
    cs_tls *t = NULL;
    cs_error err = {0};
    cr_assert_eq(cs_tls_load(&x.f, &t, &err), CS_EINVAL);
    cr_assert(strstr(err.msg, "revoked by --tls-crl") != NULL, "%s", err.msg);
    cs_tls_free(t1);
    cs_tls_free(t2);
    cs_tls_free(ts);
}

Test(tlsengine, a_server_under_another_name_is_refused_by_the_client)
{
    certs("", "ca", "server agent:m1");
    cs_tls *ts = load("ca", "server", false);
    char url[64];
    tls_url(url, sizeof url);
    nng_listener l;
    nng_socket srv = rep_at(url, ts, 1000, &l);

    nng_tls_config *cfg = client_config("ca", "ca", "agent-m1", "cell.example.org");
    /* A blocking start reports the first attempt: refused by the client
     * at the handshake. */
    int rv;
    nng_socket cl = req_with(url, cfg, 0, &rv);
    cr_assert_eq(rv, NNG_EPEERAUTH, "%s", nng_strerror(rv));
    nng_tls_config_free(cfg);
    send_refused(cl, "hello?");
    nng_msg *m = recv_msg(srv, &rv);
    cr_assert_null(m, "the request reached a server the client should have refused");
    cr_assert_eq(rv, NNG_ETIMEDOUT, "%s", nng_strerror(rv));
    nng_close(cl);
    nng_close(srv);
    cs_tls_free(ts);
}

/* ---- the CRL at load, and the engine's versions -------------------------------------------- */

Test(tlsengine, load_checks_the_crl_and_names_it)
{
    certs("", "ca", "server");
    certs("--crl", "ca", "");
    certs("", "other", "server");
    certs("--crl", "other", "");
    cs_tls *t = NULL;
    cs_error err = {0};
    files x;

    files_of(&x, "ca", "server", true);
    cr_assert_eq(cs_tls_load(&x.f, &t, &err), CS_OK, "an empty CRL: %s", err.msg);
    cs_tls_free(t);
    t = NULL;

    /* A certificate given as the CRL. */
    x.f.crl = x.cert;
    cr_assert_eq(cs_tls_load(&x.f, &t, &err), CS_EINVAL);
    cr_assert(strstr(err.msg, "--tls-crl") != NULL && strstr(err.msg, x.cert) != NULL &&
                  strstr(err.msg, "X509 CRL") != NULL,
              "%s", err.msg);

    /* A CRL of another CA would revoke nothing. */
    char other[400];
    snprintf(other, sizeof other, "%s/other/crl.pem", ts_tmp);
    x.f.crl = other;
    cr_assert_eq(cs_tls_load(&x.f, &t, &err), CS_EINVAL);
    cr_assert(strstr(err.msg, "not signed by the CA of --tls-ca") != NULL, "%s", err.msg);

    /* A CRL block mbedTLS cannot parse. */
    char junk[400], cmd[600], out[256];
    snprintf(junk, sizeof junk, "%s/junk-crl.pem", ts_tmp);
    snprintf(cmd, sizeof cmd,
             "printf '%%s\\n' '-----BEGIN X509 CRL-----' bm90IGEgY3Js '-----END X509 CRL-----' "
             "> '%s'",
             junk);
    cr_assert_eq(ts_run(cmd, out, sizeof out), 0, "%s", out);
    x.f.crl = junk;
    cr_assert_eq(cs_tls_load(&x.f, &t, &err), CS_EINVAL);
    cr_assert(strstr(err.msg, "not a valid CRL") != NULL, "%s", err.msg);

    /* A CRL past its next update (made with openssl ca on the script's
     * database): mbedTLS would refuse every peer. */
    char old[400], conf[400], oc[3000];
    snprintf(old, sizeof old, "%s/old-crl.pem", ts_tmp);
    snprintf(conf, sizeof conf, "%s/old.cnf", ts_tmp);
    snprintf(oc, sizeof oc,
             "printf '[ca]\\ndefault_ca=c\\n[c]\\ndatabase=%s/ca/ca.index\\n"
             "certificate=%s/ca/ca.pem\\nprivate_key=%s/ca/ca.key\\ndefault_md=sha256\\n' > '%s' "
             "&& openssl ca -config '%s' -gencrl -crl_lastupdate 20200101000000Z "
             "-crl_nextupdate 20200102000000Z -out '%s' 2>&1",
             ts_tmp, ts_tmp, ts_tmp, conf, conf, old);
    cr_assert_eq(ts_run(oc, out, sizeof out), 0, "%s: %s", oc, out);
    x.f.crl = old;
    cr_assert_eq(cs_tls_load(&x.f, &t, &err), CS_EINVAL);
    cr_assert(strstr(err.msg, "expired on 2020-01-02") != NULL, "%s", err.msg);

    /* A CRL alone. */
    cs_tls_files alone = {NULL, NULL, NULL, x.crl};
    cr_assert_eq(cs_tls_load(&alone, &t, &err), CS_EINVAL);
    cr_assert(strstr(err.msg, "a CRL without --tls-cert") != NULL, "%s", err.msg);
    cr_assert_null(t);

    /* The flag and the environment. */
    cs_tls_files f = {0};
    cr_assert(cs_tls_flag("--tls-crl", "a.pem", &f));
    cr_assert_str_eq(f.crl, "a.pem");
    cs_tls_files e = {0};
    setenv(CS_TLS_CRL_ENV, "b.pem", 1);
    cs_tls_files_env(&e);
    cr_assert_str_eq(e.crl, "b.pem");
}

Test(tlsengine, the_engine_speaks_tls_1_2)
{
    cs_error err = {0};
    cr_assert_eq(cs_tls_engine_install(&err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_tls_engine_install(&err), CS_OK, "twice");
    cr_assert_str_eq(nng_tls_engine_name(), CS_TLS_ENGINE_NAME);
    nng_tls_config *cfg;
    cr_assert_eq(nng_tls_config_alloc(&cfg, NNG_TLS_MODE_CLIENT), 0);
    cr_assert_eq(nng_tls_config_version(cfg, NNG_TLS_1_0, NNG_TLS_1_3), 0, "clamped to 1.2");
    cr_assert_eq(nng_tls_config_version(cfg, NNG_TLS_1_2, NNG_TLS_1_2), 0);
    cr_assert_eq(nng_tls_config_version(cfg, NNG_TLS_1_3, NNG_TLS_1_3), NNG_ENOTSUP);
    cr_assert_eq(nng_tls_config_version(cfg, NNG_TLS_1_0, NNG_TLS_1_1), NNG_ENOTSUP);
    cr_assert_eq(nng_tls_config_ca_chain(cfg, "not a certificate", NULL), NNG_EINVAL);
    cr_assert_eq(nng_tls_config_own_cert(cfg, "no", "no", NULL), NNG_EINVAL);
    nng_tls_config_free(cfg);
}
