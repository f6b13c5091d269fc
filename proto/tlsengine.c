/* tlsengine.c — cellsched's TLS engine for nng on mbedTLS 2.28 (see tlsengine.h).
 *
 * nng's framework (its tls_common.c) owns the TCP stream, the buffers and
 * the locking: it allocates our configuration and connection objects,
 * calls each operation below with the connection's lock held, and moves
 * ciphertext through nng_tls_engine_send/recv, which answer NNG_EAGAIN
 * when its 16 KiB buffers are full or empty; it calls us again when the
 * stream has moved bytes. mbedTLS is non-blocking the same way (WANT_READ,
 * WANT_WRITE), so the two meet in bio_send/bio_recv. */
#include "proto/tlsengine.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/version.h>
#include <mbedtls/x509_crl.h>
#include <mbedtls/x509_crt.h>
#include <nng/supplemental/tls/engine.h>
#include <nng/supplemental/tls/tls.h>

/* Without it mbedTLS drops the peer's certificate after the handshake, and
 * every peer would read as anonymous. */
#ifndef MBEDTLS_SSL_KEEP_PEER_CERTIFICATE
#error "cellsched's TLS engine needs mbedTLS built with MBEDTLS_SSL_KEEP_PEER_CERTIFICATE"
#endif

/* ---- configurations ------------------------------------------------------------------ */

/* One certificate chain and its key (own_cert may be called more than once:
 * a server with an RSA and an EC identity). mbedTLS's configuration points
 * at them, so they live as long as it does. */
typedef struct own_cert {
    mbedtls_x509_crt crt;
    mbedtls_pk_context key;
    struct own_cert *next;
} own_cert;

struct nng_tls_engine_config {
    nng_tls_mode mode;
    mbedtls_ssl_config ssl;
    /* One generator per configuration, seeded from the system's entropy.
     * The connections of one configuration (every client of a listener)
     * handshake on nng's worker threads at once, so it is locked: our own
     * lock, not mbedTLS's, whose presence depends on how it was built. */
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    pthread_mutex_t drbg_lock;
    /* The trusted CAs and the optional CRL, on the heap so that a new
     * chain is parsed whole before it replaces the old one. */
    mbedtls_x509_crt *ca;
    mbedtls_x509_crl *crl;
    own_cert *own;
    char *server_name; /* a client's SNI and the name it checks; NULL: none */
    bool ready;        /* init completed: fini has something to free */
};

static int rng(void *arg, unsigned char *buf, size_t len)
{
    nng_tls_engine_config *cfg = arg;
    pthread_mutex_lock(&cfg->drbg_lock);
    int rv = mbedtls_ctr_drbg_random(&cfg->drbg, buf, len);
    pthread_mutex_unlock(&cfg->drbg_lock);
    return rv;
}

static void ca_free(nng_tls_engine_config *cfg)
{
    if (cfg->ca != NULL) {
        mbedtls_x509_crt_free(cfg->ca);
        free(cfg->ca);
        cfg->ca = NULL;
    }
    if (cfg->crl != NULL) {
        mbedtls_x509_crl_free(cfg->crl);
        free(cfg->crl);
        cfg->crl = NULL;
    }
}

/* Free what config_init made, in reverse; the ssl configuration first,
 * since it points at the certificates and the generator. */
static void config_free(nng_tls_engine_config *cfg)
{
    mbedtls_ssl_config_free(&cfg->ssl);
    while (cfg->own != NULL) {
        own_cert *o = cfg->own;
        cfg->own = o->next;
        mbedtls_pk_free(&o->key);
        mbedtls_x509_crt_free(&o->crt);
        free(o);
    }
    ca_free(cfg);
    free(cfg->server_name);
    cfg->server_name = NULL;
    mbedtls_ctr_drbg_free(&cfg->drbg);
    mbedtls_entropy_free(&cfg->entropy);
    pthread_mutex_destroy(&cfg->drbg_lock);
}

static int config_init(nng_tls_engine_config *cfg, nng_tls_mode mode)
{
    static const unsigned char personal[] = "cellsched tls engine";
    cfg->mode = mode;
    mbedtls_ssl_config_init(&cfg->ssl);
    mbedtls_entropy_init(&cfg->entropy);
    mbedtls_ctr_drbg_init(&cfg->drbg);
    pthread_mutex_init(&cfg->drbg_lock, NULL);
    int endpoint = mode == NNG_TLS_MODE_SERVER ? MBEDTLS_SSL_IS_SERVER : MBEDTLS_SSL_IS_CLIENT;
    int rv;
    if (mbedtls_ctr_drbg_seed(&cfg->drbg, mbedtls_entropy_func, &cfg->entropy, personal,
                              sizeof personal - 1) != 0) {
        rv = NNG_ECRYPTO;
        goto fail;
    }
    if (mbedtls_ssl_config_defaults(&cfg->ssl, endpoint, MBEDTLS_SSL_TRANSPORT_STREAM,
                                    MBEDTLS_SSL_PRESET_DEFAULT) != 0) {
        rv = NNG_ENOMEM;
        goto fail;
    }
    mbedtls_ssl_conf_rng(&cfg->ssl, rng, cfg);
    mbedtls_ssl_conf_min_version(&cfg->ssl, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_max_version(&cfg->ssl, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    /* nng's defaults: a client checks the server, a server asks nothing
     * unless told (cellsched's listeners are told: proto/tls.c). */
    mbedtls_ssl_conf_authmode(&cfg->ssl, mode == NNG_TLS_MODE_SERVER ? MBEDTLS_SSL_VERIFY_NONE
                                                                     : MBEDTLS_SSL_VERIFY_REQUIRED);
    cfg->ready = true;
    return 0;
fail:
    config_free(cfg);
    return rv;
}

static void config_fini(nng_tls_engine_config *cfg)
{
    if (cfg->ready)
        config_free(cfg);
    cfg->ready = false;
}

static int config_server(nng_tls_engine_config *cfg, const char *name)
{
    char *copy = strdup(name);
    if (copy == NULL)
        return NNG_ENOMEM;
    free(cfg->server_name);
    cfg->server_name = copy;
    return 0;
}

static int config_auth(nng_tls_engine_config *cfg, nng_tls_auth_mode mode)
{
    switch (mode) {
    case NNG_TLS_AUTH_MODE_NONE:
        mbedtls_ssl_conf_authmode(&cfg->ssl, MBEDTLS_SSL_VERIFY_NONE);
        return 0;
    case NNG_TLS_AUTH_MODE_OPTIONAL:
        mbedtls_ssl_conf_authmode(&cfg->ssl, MBEDTLS_SSL_VERIFY_OPTIONAL);
        return 0;
    case NNG_TLS_AUTH_MODE_REQUIRED:
        mbedtls_ssl_conf_authmode(&cfg->ssl, MBEDTLS_SSL_VERIFY_REQUIRED);
        return 0;
    }
    return NNG_EINVAL;
}

/* mbedTLS counts a PEM's terminating NUL in its length. A chain of which
 * any certificate does not parse is refused whole (x509_crt_parse's
 * positive result): a CA left out silently would refuse peers far from
 * the cause. */
static int config_ca_chain(nng_tls_engine_config *cfg, const char *certs, const char *crl)
{
    if (certs == NULL)
        return NNG_EINVAL;
    mbedtls_x509_crt *ca = malloc(sizeof *ca);
    mbedtls_x509_crl *cl = crl != NULL ? malloc(sizeof *cl) : NULL;
    if (ca == NULL || (crl != NULL && cl == NULL)) {
        free(ca);
        free(cl);
        return NNG_ENOMEM;
    }
    mbedtls_x509_crt_init(ca);
    if (cl != NULL)
        mbedtls_x509_crl_init(cl);
    int rv = 0;
    if (mbedtls_x509_crt_parse(ca, (const unsigned char *)certs, strlen(certs) + 1) != 0)
        rv = NNG_EINVAL;
    else if (cl != NULL &&
             mbedtls_x509_crl_parse(cl, (const unsigned char *)crl, strlen(crl) + 1) != 0)
        rv = NNG_EINVAL;
    if (rv != 0) {
        mbedtls_x509_crt_free(ca);
        free(ca);
        if (cl != NULL) {
            mbedtls_x509_crl_free(cl);
            free(cl);
        }
        return rv;
    }
    mbedtls_ssl_conf_ca_chain(&cfg->ssl, ca, cl);
    ca_free(cfg);
    cfg->ca = ca;
    cfg->crl = cl;
    return 0;
}

static int config_own_cert(nng_tls_engine_config *cfg, const char *cert, const char *key,
                           const char *pass)
{
    own_cert *o = calloc(1, sizeof *o);
    if (o == NULL)
        return NNG_ENOMEM;
    mbedtls_x509_crt_init(&o->crt);
    mbedtls_pk_init(&o->key);
    int rv = 0;
    if (mbedtls_x509_crt_parse(&o->crt, (const unsigned char *)cert, strlen(cert) + 1) != 0 ||
        mbedtls_pk_parse_key(&o->key, (const unsigned char *)key, strlen(key) + 1,
                             (const unsigned char *)pass, pass != NULL ? strlen(pass) : 0) != 0 ||
        mbedtls_pk_check_pair(&o->crt.pk, &o->key) != 0)
        rv = NNG_EINVAL;
    else if (mbedtls_ssl_conf_own_cert(&cfg->ssl, &o->crt, &o->key) != 0)
        rv = NNG_ENOMEM;
    if (rv != 0) {
        mbedtls_pk_free(&o->key);
        mbedtls_x509_crt_free(&o->crt);
        free(o);
        return rv;
    }
    o->next = cfg->own;
    cfg->own = o;
    return 0;
}

/* TLS 1.2 only (see the header): a range holding it is clamped to it. */
static int config_version(nng_tls_engine_config *cfg, nng_tls_version min, nng_tls_version max)
{
    (void)cfg;
    if (min > max || min > NNG_TLS_1_2 || max < NNG_TLS_1_2)
        return NNG_ENOTSUP;
    return 0;
}

/* ---- connections --------------------------------------------------------------------- */

struct nng_tls_engine_conn {
    void *tls; /* the framework's handle for nng_tls_engine_send/recv */
    nng_tls_engine_config *cfg;
    mbedtls_ssl_context ssl;
    bool ready;  /* init completed (nng may fini a connection it never started) */
    int io_err;  /* the lower layer's last error other than NNG_EAGAIN, 0: none */
    bool peer_read;
    struct cs_tls_peer peer;
};

static int bio_send(void *arg, const unsigned char *buf, size_t len)
{
    nng_tls_engine_conn *c = arg;
    size_t n = len < INT_MAX ? len : INT_MAX;
    int rv = nng_tls_engine_send(c->tls, buf, &n);
    if (rv == NNG_EAGAIN)
        return MBEDTLS_ERR_SSL_WANT_WRITE;
    if (rv != 0) {
        c->io_err = rv;
        return MBEDTLS_ERR_NET_SEND_FAILED;
    }
    return (int)n;
}

static int bio_recv(void *arg, unsigned char *buf, size_t len)
{
    nng_tls_engine_conn *c = arg;
    size_t n = len < INT_MAX ? len : INT_MAX;
    int rv = nng_tls_engine_recv(c->tls, buf, &n);
    if (rv == NNG_EAGAIN)
        return MBEDTLS_ERR_SSL_WANT_READ;
    if (rv != 0) {
        c->io_err = rv;
        return MBEDTLS_ERR_NET_RECV_FAILED;
    }
    return (int)n;
}

static bool handshake_over(const nng_tls_engine_conn *c)
{
    return c->ssl.state == MBEDTLS_SSL_HANDSHAKE_OVER;
}

/* `val` into out[CS_TLS_PEER_NAME_MAX] when it fits whole and holds no NUL;
 * false (out untouched) otherwise. */
static bool name_copy(char *out, const mbedtls_x509_buf *val)
{
    if (val->p == NULL || val->len >= CS_TLS_PEER_NAME_MAX || memchr(val->p, 0, val->len) != NULL)
        return false;
    memcpy(out, val->p, val->len);
    out[val->len] = '\0';
    return true;
}

/* The CN and the OUs of `subject` into *p (zeroed); see the header for
 * what is dropped and why. */
static void subject_read(const mbedtls_x509_name *subject, struct cs_tls_peer *p)
{
    unsigned ncn = 0;
    for (const mbedtls_x509_name *n = subject; n != NULL; n = n->next) {
        if (n->oid.p == NULL)
            continue;
        if (MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) == 0) {
            if (++ncn == 1)
                name_copy(p->cn, &n->val);
        } else if (MBEDTLS_OID_CMP(MBEDTLS_OID_AT_ORG_UNIT, &n->oid) == 0 &&
                   p->nou < CS_TLS_PEER_OU_MAX) {
            if (name_copy(p->ou[p->nou], &n->val))
                p->nou++;
        }
    }
    if (ncn > 1)
        p->cn[0] = '\0';
}

/* Keep the peer's identity once the handshake is over: read once, so the
 * `verified` callback, run under the connection's lock, only copies. */
static void peer_keep(nng_tls_engine_conn *c)
{
    if (c->peer_read || !handshake_over(c))
        return;
    c->peer_read = true;
    const mbedtls_x509_crt *crt = mbedtls_ssl_get_peer_cert(&c->ssl);
    if (crt == NULL)
        return;
    c->peer.verified = mbedtls_ssl_get_verify_result(&c->ssl) == 0;
    subject_read(&crt->subject, &c->peer);
}

/* An mbedTLS result as nng's. A failure before the handshake is over is the
 * peer's (a certificate refused, a plain-TCP client, a wrong name):
 * NNG_EPEERAUTH, which nng's listener counts as "auth" (cs_tls_refused) and
 * answers by accepting the next client at once; NNG_ECRYPTO would make it
 * pause 100 ms, which a hostile client could repeat. */
static int nng_result(const nng_tls_engine_conn *c, int rv)
{
    if (rv == MBEDTLS_ERR_SSL_WANT_READ || rv == MBEDTLS_ERR_SSL_WANT_WRITE)
        return NNG_EAGAIN;
    if (c->io_err != 0)
        return c->io_err;
    if (rv == MBEDTLS_ERR_SSL_ALLOC_FAILED)
        return NNG_ENOMEM;
    if (rv == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
        return NNG_ECLOSED;
    return handshake_over(c) ? NNG_ECRYPTO : NNG_EPEERAUTH;
}

static int conn_init(nng_tls_engine_conn *c, void *tls, nng_tls_engine_config *cfg)
{
    c->tls = tls;
    c->cfg = cfg;
    mbedtls_ssl_init(&c->ssl);
    int rv = 0;
    if (mbedtls_ssl_setup(&c->ssl, &cfg->ssl) != 0)
        rv = NNG_ENOMEM;
    else if (cfg->mode == NNG_TLS_MODE_CLIENT && cfg->server_name != NULL &&
             mbedtls_ssl_set_hostname(&c->ssl, cfg->server_name) != 0)
        rv = NNG_EINVAL;
    if (rv != 0) {
        mbedtls_ssl_free(&c->ssl);
        return rv;
    }
    mbedtls_ssl_set_bio(&c->ssl, c, bio_send, bio_recv, NULL);
    c->ready = true;
    return 0;
}

static void conn_fini(nng_tls_engine_conn *c)
{
    if (c->ready)
        mbedtls_ssl_free(&c->ssl);
    c->ready = false;
}

/* The framework closes the TCP stream right after: the close-notify goes
 * out only if it fits its buffer now, which is all TLS asks. */
static void conn_close(nng_tls_engine_conn *c)
{
    if (c->ready)
        (void)mbedtls_ssl_close_notify(&c->ssl);
}

static int conn_handshake(nng_tls_engine_conn *c)
{
    int rv = mbedtls_ssl_handshake(&c->ssl);
    peer_keep(c);
    return rv == 0 ? 0 : nng_result(c, rv);
}

/* mbedtls_ssl_read and _write run the handshake themselves when it is not
 * over (the framework may send before its handshake call finishes it). */
static int conn_recv(nng_tls_engine_conn *c, uint8_t *buf, size_t *szp)
{
    int rv = mbedtls_ssl_read(&c->ssl, buf, *szp);
    peer_keep(c);
    if (rv == 0)
        return NNG_ECLOSED; /* the peer closed the connection */
    if (rv < 0)
        return nng_result(c, rv);
    *szp = (size_t)rv;
    return 0;
}

static int conn_send(nng_tls_engine_conn *c, const uint8_t *buf, size_t *szp)
{
    int rv = mbedtls_ssl_write(&c->ssl, buf, *szp);
    peer_keep(c);
    if (rv < 0)
        return nng_result(c, rv);
    *szp = (size_t)rv;
    return 0;
}

/* ---- the identity's way out ---------------------------------------------------------- */

/* What cs_tls_peer asks of the `verified` callback on its thread. */
typedef struct peer_request {
    struct cs_tls_peer *out;
    bool answered;
} peer_request;

/* Set only inside cs_tls_peer, around its one nng_pipe_get_bool (see the
 * header): the tree's one thread-local. */
static _Thread_local peer_request *peer_asked;

static bool conn_verified(nng_tls_engine_conn *c)
{
    peer_keep(c);
    if (peer_asked != NULL) {
        *peer_asked->out = c->peer;
        peer_asked->answered = true;
    }
    return c->peer.verified;
}

int cs_tls_peer(nng_pipe p, struct cs_tls_peer *out, cs_error *err)
{
    memset(out, 0, sizeof *out);
    peer_request req = {out, false};
    bool verified = false;
    peer_asked = &req;
    int rv = nng_pipe_get_bool(p, NNG_OPT_TLS_VERIFIED, &verified);
    peer_asked = NULL;
    if (rv == NNG_ENOTSUP)
        return cs_errorf(err, CS_ENOTFOUND, "pipe %d: not TLS: no peer certificate",
                         nng_pipe_id(p));
    if (rv != 0)
        return cs_errorf(err, CS_EUNAVAIL, "pipe %d: %s", nng_pipe_id(p), nng_strerror(rv));
    if (!req.answered)
        return cs_errorf(err, CS_ESTATE,
                         "pipe %d: its TLS connection runs on engine %s, not %s (configured "
                         "before cs_tls_engine_install)",
                         nng_pipe_id(p), nng_tls_engine_name(), CS_TLS_ENGINE_NAME);
    return CS_OK;
}

/* ---- the engine ---------------------------------------------------------------------- */

static const nng_tls_engine_config_ops config_ops = {
    .size = sizeof(nng_tls_engine_config),
    .init = config_init,
    .fini = config_fini,
    .server = config_server,
    .auth = config_auth,
    .ca_chain = config_ca_chain,
    .own_cert = config_own_cert,
    .version = config_version,
};

static const nng_tls_engine_conn_ops conn_ops = {
    .size = sizeof(nng_tls_engine_conn),
    .init = conn_init,
    .fini = conn_fini,
    .close = conn_close,
    .handshake = conn_handshake,
    .recv = conn_recv,
    .send = conn_send,
    .verified = conn_verified,
};

/* engine.h's table takes non-const pointers, but nng only copies the
 * operations (into each configuration and connection): the casts below
 * keep them read-only. */
static const nng_tls_engine engine = {
    .version = NNG_TLS_ENGINE_VERSION,
    .config_ops = (nng_tls_engine_config_ops *)&config_ops,
    .conn_ops = (nng_tls_engine_conn_ops *)&conn_ops,
    .name = CS_TLS_ENGINE_NAME,
    .description = "cellsched's engine (peer identity) on mbed TLS " MBEDTLS_VERSION_STRING,
    .fips_mode = false,
};

int cs_tls_engine_install(cs_error *err)
{
    /* nng_tls_engine_name initialises nng, which registers nng's own
     * engine: ours goes after it. Registering twice stores the same
     * pointer, so racing threads need no lock of their own. */
    if (strcmp(nng_tls_engine_name(), CS_TLS_ENGINE_NAME) == 0)
        return CS_OK;
    int rv = nng_tls_engine_register(&engine);
    if (rv != 0)
        return cs_errorf(err, CS_EUNAVAIL, "tls: nng refuses cellsched's TLS engine: %s",
                         nng_strerror(rv));
    return CS_OK;
}
