/* rafttls.c — Raft's transport over mutual TLS (see rafttls.h).
 *
 * One relay per connection. Its life: the inner transport hands over a TCP
 * stream (accepted, or connected for raft); the relay makes a socketpair,
 * keeps one end (`pipe`) and holds the other (`raft_end`) back; the TLS
 * handshake runs over the TCP stream through memory (bio_send queues a
 * uv_write, bio_recv takes from what uv_read_start delivered); the peer's
 * certificate must name CS_RAFTTLS_PEER_CN; then the dialler sends its
 * hello and hands raft_end to raft at once, while the acceptor hands it
 * over once the hello agrees with the preamble. From then on what raft
 * writes into raft_end comes out of `pipe`, is encrypted and written to
 * TCP, and what TCP delivers is decrypted and written into `pipe` for raft
 * to read. Either side ending (EOF, an error, raft closing its end) ends
 * the relay: every handle it holds is closed, and the relay is freed when
 * the last close callback has run.
 *
 * Memory stays bounded per relay: when the bytes queued towards one side
 * pass QUEUE_HIGH the relay stops reading the other side until they drop
 * below QUEUE_LOW (a snapshot of the whole store goes through here).
 */
#include "server/rafttls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "cellstate/be.h"

/* The hello: magic, the dialler's Raft id and its address's length (each
 * 8 bytes, big-endian), then the address (no NUL). */
static const char HELLO_MAGIC[8] = {'c', 's', 'r', 'a', 'f', 't', '1', '\n'};
#define HELLO_HEAD 24
#define ADDR_MAX 256
#define HELLO_MAX (HELLO_HEAD + ADDR_MAX)

/* One TLS record's plaintext at most: what one ssl_read or pipe read takes. */
#define CHUNK 16384
/* What a TCP read is given room for. */
#define READ_ROOM 65536
#define QUEUE_HIGH (4u << 20)
#define QUEUE_LOW (1u << 20)
/* Accepted connections not yet verified, at most: a cell has 7 members at
 * most, and each relay holds ~120 KB (buffers and a TLS session) until it
 * is verified or dropped, so that a flood of strangers costs a few MB. */
#define UNVERIFIED_MAX 32
/* At most LOG_LINES lines a second about connections refused or lost (the
 * rest are counted): what a stranger makes us write is bounded too. */
#define LOG_WINDOW_MS 1000
#define LOG_LINES 10

typedef enum {
    R_CONNECTING, /* dialler: the inner transport is connecting */
    R_HANDSHAKE,
    R_HELLO, /* acceptor: verified, waiting for the hello */
    R_OPEN   /* raft has its end */
} relay_state;

typedef struct relay relay;
struct relay {
    cs_rafttls *t;
    relay *prev, *next;
    bool dialer; /* we connected: the TLS client */
    relay_state state;
    bool ending;
    bool handed;   /* raft has raft_end (or the connect callback has run) */
    bool counted;  /* in t->unverified */
    int pending;   /* handles whose close callback has not run yet */
    int status;    /* dialler: raft's connect callback gets this when not handed */
    bool ssl_init; /* ssl needs mbedtls_ssl_free */
    mbedtls_ssl_context ssl;
    uv_tcp_t *tcp; /* from the inner transport; ours to close and raft_free */
    uv_pipe_t pipe;
    bool pipe_init;
    uv_pipe_t *raft_end; /* raft_malloc'd; NULL once raft has it */
    uv_timer_t timer;
    bool timer_init;
    bool tcp_paused;  /* not reading TCP: too much queued towards raft */
    bool pipe_paused; /* not reading raft's end: too much queued towards TCP */
    uint8_t *in;      /* ciphertext read from TCP, [in_off, in_len) not yet taken */
    size_t in_off, in_len, in_cap;
    uint8_t hello[HELLO_MAX];
    size_t hello_len;
    raft_id peer_id; /* acceptor: the preamble's; dialler: the member dialled */
    char peer_addr[ADDR_MAX];
    struct raft_uv_connect inner_req; /* dialler: what the inner transport completes */
    struct raft_uv_connect *outer;
    raft_uv_connect_cb cb;
    uint8_t out[CHUNK]; /* what raft wrote, read from `pipe` */
};

struct cs_rafttls {
    struct raft_uv_transport outer; /* what raft_uv uses; its `data` is raft's */
    struct raft_uv_transport *inner;
    uv_loop_t *loop;
    raft_id id;
    char address[ADDR_MAX];
    raft_uv_accept_cb accept_cb;
    raft_uv_transport_close_cb close_cb;
    bool closing, inner_closed, close_fired, quiesced;
    relay *relays;
    unsigned unverified;   /* accepted relays not handed to raft yet */
    uint64_t log_window;    /* uv_now when the current second of log lines began */
    unsigned log_lines;     /* lines in it */
    unsigned long unlogged; /* lines left out in it */
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_x509_crt crt, ca;
    mbedtls_pk_context key;
    mbedtls_ssl_config client, server;
};

/* ---- set up and tear down ------------------------------------------------------ */

static int parse_pems(cs_rafttls *t, const cs_rafttls_pem *pem, cs_error *err)
{
    char why[160];
    int rv;
    if ((rv = mbedtls_x509_crt_parse(&t->crt, (const unsigned char *)pem->cert,
                                     strlen(pem->cert) + 1)) != 0) {
        mbedtls_strerror(rv, why, sizeof why);
        return cs_errorf(err, CS_EINVAL, "raft TLS: the certificate: %s", why);
    }
    if ((rv = mbedtls_x509_crt_parse(&t->ca, (const unsigned char *)pem->ca,
                                     strlen(pem->ca) + 1)) != 0) {
        mbedtls_strerror(rv, why, sizeof why);
        return cs_errorf(err, CS_EINVAL, "raft TLS: the CA: %s", why);
    }
    if ((rv = mbedtls_pk_parse_key(&t->key, (const unsigned char *)pem->key,
                                   strlen(pem->key) + 1, NULL, 0)) != 0) {
        mbedtls_strerror(rv, why, sizeof why);
        return cs_errorf(err, CS_EINVAL, "raft TLS: the key: %s", why);
    }
    return CS_OK;
}

/* Both ends verify the other (VERIFY_REQUIRED), TLS 1.2 at least. */
static int config_init(cs_rafttls *t, mbedtls_ssl_config *c, int endpoint, cs_error *err)
{
    int rv = mbedtls_ssl_config_defaults(c, endpoint, MBEDTLS_SSL_TRANSPORT_STREAM,
                                         MBEDTLS_SSL_PRESET_DEFAULT);
    if (rv == 0)
        rv = mbedtls_ssl_conf_own_cert(c, &t->crt, &t->key);
    if (rv != 0) {
        char why[160];
        mbedtls_strerror(rv, why, sizeof why);
        return cs_errorf(err, CS_EINVAL, "raft TLS: configuration: %s", why);
    }
    mbedtls_ssl_conf_rng(c, mbedtls_ctr_drbg_random, &t->drbg);
    mbedtls_ssl_conf_authmode(c, MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_ca_chain(c, &t->ca, NULL);
    mbedtls_ssl_conf_min_version(c, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
    return CS_OK;
}

static int tls_init(struct raft_uv_transport *o, raft_id id, const char *address);
static int tls_listen(struct raft_uv_transport *o, raft_uv_accept_cb cb);
static int tls_connect(struct raft_uv_transport *o, struct raft_uv_connect *req, raft_id id,
                       const char *address, raft_uv_connect_cb cb);
static void tls_close(struct raft_uv_transport *o, raft_uv_transport_close_cb cb);

int cs_rafttls_new(uv_loop_t *loop, struct raft_uv_transport *inner, const cs_rafttls_pem *pem,
                   cs_rafttls **out, cs_error *err)
{
    cs_rafttls *t = calloc(1, sizeof *t);
    if (t == NULL)
        return cs_errorf(err, CS_ENOMEM, "raft TLS: out of memory");
    t->loop = loop;
    t->inner = inner;
    inner->data = t;
    t->outer = (struct raft_uv_transport){
        .impl = t,
        .init = tls_init,
        .listen = tls_listen,
        .connect = tls_connect,
        .close = tls_close,
    };
    mbedtls_entropy_init(&t->entropy);
    mbedtls_ctr_drbg_init(&t->drbg);
    mbedtls_x509_crt_init(&t->crt);
    mbedtls_x509_crt_init(&t->ca);
    mbedtls_pk_init(&t->key);
    mbedtls_ssl_config_init(&t->client);
    mbedtls_ssl_config_init(&t->server);
    static const unsigned char pers[] = "cellsched raft";
    int rc;
    if (mbedtls_ctr_drbg_seed(&t->drbg, mbedtls_entropy_func, &t->entropy, pers,
                              sizeof pers - 1) != 0) {
        rc = cs_errorf(err, CS_EIO, "raft TLS: cannot seed the random generator");
        goto fail;
    }
    if ((rc = parse_pems(t, pem, err)) != CS_OK ||
        (rc = config_init(t, &t->client, MBEDTLS_SSL_IS_CLIENT, err)) != CS_OK ||
        (rc = config_init(t, &t->server, MBEDTLS_SSL_IS_SERVER, err)) != CS_OK)
        goto fail;
    *out = t;
    return CS_OK;
fail:
    cs_rafttls_free(t);
    return rc;
}

struct raft_uv_transport *cs_rafttls_transport(cs_rafttls *t) { return &t->outer; }

void cs_rafttls_quiesce(cs_rafttls *t) { t->quiesced = true; }

void cs_rafttls_free(cs_rafttls *t)
{
    if (t == NULL)
        return;
    mbedtls_ssl_config_free(&t->server);
    mbedtls_ssl_config_free(&t->client);
    mbedtls_pk_free(&t->key);
    mbedtls_x509_crt_free(&t->ca);
    mbedtls_x509_crt_free(&t->crt);
    mbedtls_ctr_drbg_free(&t->drbg);
    mbedtls_entropy_free(&t->entropy);
    free(t);
}

/* ---- relays: the list, the end ------------------------------------------------- */

static void maybe_fire_close(cs_rafttls *t)
{
    if (t->closing && t->inner_closed && t->relays == NULL && !t->close_fired) {
        t->close_fired = true;
        if (t->close_cb != NULL)
            t->close_cb(&t->outer);
    }
}

static relay *relay_new(cs_rafttls *t, bool dialer)
{
    relay *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->t = t;
    r->dialer = dialer;
    r->next = t->relays;
    if (t->relays != NULL)
        t->relays->prev = r;
    t->relays = r;
    return r;
}

/* The relay no longer counts among the accepted connections being set up. */
static void uncount(relay *r)
{
    if (r->counted)
        r->t->unverified--;
    r->counted = false;
}

/* The last handle is closed: tell raft of a connection it did not get,
 * then free. */
static void relay_free(relay *r)
{
    cs_rafttls *t = r->t;
    uncount(r);
    if (r->dialer && !r->handed && r->cb != NULL)
        r->cb(r->outer, NULL, r->status != 0 ? r->status : RAFT_NOCONNECTION);
    if (r->ssl_init)
        mbedtls_ssl_free(&r->ssl);
    free(r->in);
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        t->relays = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    free(r);
    maybe_fire_close(t);
}

static void on_relay_handle_closed(uv_handle_t *h)
{
    relay *r = h->data;
    if (--r->pending == 0)
        relay_free(r);
}

/* tcp and raft_end came from raft_malloc (raft_uv_tcp's, and raft frees
 * the ends it is given): they go back the same way. */
static void on_raft_handle_closed(uv_handle_t *h)
{
    relay *r = h->data;
    raft_free(h);
    if (--r->pending == 0)
        relay_free(r);
}

static void close_handle(relay *r, uv_handle_t *h, uv_close_cb cb)
{
    h->data = r;
    r->pending++;
    uv_close(h, cb);
}

/* "HOST:PORT" of the TCP peer into out. */
static void peer_name(const relay *r, char *out, size_t size)
{
    struct sockaddr_storage sa;
    int len = sizeof sa;
    char host[64] = "?";
    int port = 0;
    if (r->tcp != NULL && uv_tcp_getpeername(r->tcp, (struct sockaddr *)&sa, &len) == 0) {
        if (sa.ss_family == AF_INET) {
            uv_ip4_name((struct sockaddr_in *)&sa, host, sizeof host);
            port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
        } else if (sa.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&sa, host, sizeof host);
            port = ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
        }
    }
    snprintf(out, size, "%s:%d", host, port);
}

/* Whether a line about a connection may be logged now (LOG_LINES a
 * second); says how many were left out when a new second begins. */
static bool log_line_allowed(cs_rafttls *t)
{
    uint64_t now = uv_now(t->loop);
    if (t->log_lines == 0 || now - t->log_window >= LOG_WINDOW_MS) {
        if (t->unlogged > 0)
            fprintf(stderr,
                    "cellstated: raft: %lu more connection(s) refused or lost from %llu ms ago "
                    "on, not logged one by one\n",
                    t->unlogged, (unsigned long long)(now - t->log_window));
        t->log_window = now;
        t->log_lines = 0;
        t->unlogged = 0;
    }
    if (t->log_lines == LOG_LINES) {
        t->unlogged++;
        return false;
    }
    t->log_lines++;
    return true;
}

/* End the relay: close every handle it holds (raft's end too, while raft
 * does not have it). `why` (may be NULL: an ordinary end) is logged, as a
 * refusal (the peer is not let in) or as a connection lost. */
static void relay_end(relay *r, bool refusal, const char *why)
{
    if (r->ending)
        return;
    r->ending = true;
    if (why != NULL && log_line_allowed(r->t)) {
        char peer[96];
        peer_name(r, peer, sizeof peer);
        if (r->dialer)
            fprintf(stderr,
                    "cellstated: raft: %s the connection to member %" PRIu64 " at %s (%s): %s\n",
                    refusal ? "refused" : "lost", (uint64_t)r->peer_id, r->peer_addr, peer, why);
        else
            fprintf(stderr,
                    "cellstated: raft: %s a connection from %s (which says it is member %" PRIu64
                    " at %s): %s\n",
                    refusal ? "refused" : "lost", peer, (uint64_t)r->peer_id, r->peer_addr, why);
    }
    if (r->timer_init)
        close_handle(r, (uv_handle_t *)&r->timer, on_relay_handle_closed);
    if (r->pipe_init)
        close_handle(r, (uv_handle_t *)&r->pipe, on_relay_handle_closed);
    if (r->raft_end != NULL)
        close_handle(r, (uv_handle_t *)r->raft_end, on_raft_handle_closed);
    r->raft_end = NULL;
    if (r->tcp != NULL)
        close_handle(r, (uv_handle_t *)r->tcp, on_raft_handle_closed);
    if (r->pending == 0)
        relay_free(r);
}

/* End the relay after mbedTLS's error `rv` while doing `what`. */
static void end_tls_error(relay *r, const char *what, int rv)
{
    char m[160], why[224];
    mbedtls_strerror(rv, m, sizeof m);
    snprintf(why, sizeof why, "%s: %s", what, m);
    relay_end(r, false, why);
}

/* ---- writing ------------------------------------------------------------------- */

typedef struct wreq {
    uv_write_t req;
    relay *r;
    uint8_t data[];
} wreq;

static void pump(relay *r);
static void on_pipe_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_pipe_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_tcp_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_tcp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

static size_t queued(uv_stream_t *s) { return uv_stream_get_write_queue_size(s); }

static void on_written(uv_write_t *req, int status)
{
    wreq *w = req->data;
    relay *r = w->r;
    bool to_tcp = req->handle == (uv_stream_t *)r->tcp;
    free(w);
    if (r->ending)
        return;
    if (status < 0) {
        relay_end(r, false, uv_strerror(status));
        return;
    }
    /* Room again on the side written: read the other side again. */
    if (to_tcp && r->pipe_paused && queued((uv_stream_t *)r->tcp) < QUEUE_LOW) {
        r->pipe_paused = false;
        if (r->state == R_OPEN)
            uv_read_start((uv_stream_t *)&r->pipe, on_pipe_alloc, on_pipe_read);
    }
    if (!to_tcp && r->tcp_paused && queued((uv_stream_t *)&r->pipe) < QUEUE_LOW) {
        r->tcp_paused = false;
        if (uv_read_start((uv_stream_t *)r->tcp, on_tcp_alloc, on_tcp_read) != 0) {
            relay_end(r, false, "cannot read the connection");
            return;
        }
        pump(r); /* mbedTLS or `in` may hold more for raft */
    }
}

/* Queue a copy of data[0..len) on `s`; a UV error on failure. */
static int queue_write(relay *r, uv_stream_t *s, const void *data, size_t len)
{
    wreq *w = malloc(sizeof *w + len);
    if (w == NULL)
        return UV_ENOMEM;
    w->r = r;
    w->req.data = w;
    memcpy(w->data, data, len);
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)len);
    int rv = uv_write(&w->req, s, &b, 1, on_written);
    if (rv != 0)
        free(w);
    return rv;
}

/* mbedTLS's output: straight onto the TCP stream's write queue. */
static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    relay *r = ctx;
    if (r->ending || queue_write(r, (uv_stream_t *)r->tcp, buf, len) != 0)
        return MBEDTLS_ERR_NET_SEND_FAILED;
    return (int)len;
}

/* mbedTLS's input: what TCP delivered and it has not taken yet. */
static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    relay *r = ctx;
    size_t n = r->in_len - r->in_off;
    if (n == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    if (n > len)
        n = len;
    memcpy(buf, r->in + r->in_off, n);
    r->in_off += n;
    return (int)n;
}

/* ---- the handshake, the peer, the hello ---------------------------------------- */

/* Why the handshake failed, in words: the certificate's verdict when that
 * was the failure, else mbedTLS's reason. */
static void handshake_why(relay *r, int rv, char *out, size_t size)
{
    uint32_t flags = mbedtls_ssl_get_verify_result(&r->ssl);
    if (rv == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED && flags != 0 && flags != (uint32_t)-1) {
        char info[256];
        mbedtls_x509_crt_verify_info(info, sizeof info, "", flags);
        info[strcspn(info, "\n")] = '\0';
        snprintf(out, size, "TLS handshake: the peer's certificate: %s", info);
        return;
    }
    char why[160];
    mbedtls_strerror(rv, why, sizeof why);
    snprintf(out, size, "TLS handshake: %s", why);
}

/* Whether the verified peer certificate's subject CN is CS_RAFTTLS_PEER_CN
 * (every CN, if it has several, and at least one); else *why says what it
 * named. */
static bool peer_is_replica(relay *r, char *why, size_t size)
{
    const mbedtls_x509_crt *c = mbedtls_ssl_get_peer_cert(&r->ssl);
    if (c == NULL) {
        snprintf(why, size, "the peer presented no certificate");
        return false;
    }
    size_t want = strlen(CS_RAFTTLS_PEER_CN);
    bool found = false, all = true;
    char got[64] = "";
    for (const mbedtls_x509_name *n = &c->subject; n != NULL; n = n->next) {
        if (n->oid.p == NULL || MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) != 0)
            continue;
        bool is = n->val.len == want && memcmp(n->val.p, CS_RAFTTLS_PEER_CN, want) == 0;
        if (!is && all) {
            size_t k = n->val.len < sizeof got - 1 ? n->val.len : sizeof got - 1;
            for (size_t i = 0; i < k; i++) /* from outside: printable only */
                got[i] = n->val.p[i] >= 0x20 && n->val.p[i] < 0x7f ? (char)n->val.p[i] : '?';
            got[k] = '\0';
        }
        found = true;
        all = all && is;
    }
    if (found && all)
        return true;
    if (!found)
        snprintf(why, size, "the peer's certificate has no subject CN (only CN=%s may speak Raft)",
                 CS_RAFTTLS_PEER_CN);
    else
        snprintf(why, size,
                 "the peer's certificate is CN=%s, not CN=%s: only replicas may speak Raft", got,
                 CS_RAFTTLS_PEER_CN);
    return false;
}

/* Raft gets its end: as an accepted connection, or as the outcome of its
 * connect request. What raft writes is read from then on. */
static void hand_to_raft(relay *r)
{
    cs_rafttls *t = r->t;
    uv_timer_stop(&r->timer);
    uncount(r);
    r->state = R_OPEN;
    if (uv_read_start((uv_stream_t *)&r->pipe, on_pipe_alloc, on_pipe_read) != 0) {
        relay_end(r, false, "cannot read raft's end of the relay");
        return;
    }
    if (!r->dialer && (t->quiesced || t->closing)) {
        relay_end(r, false, NULL);
        return;
    }
    uv_pipe_t *end = r->raft_end;
    r->raft_end = NULL;
    r->handed = true;
    end->data = NULL;
    if (r->dialer) {
        raft_uv_connect_cb cb = r->cb;
        r->cb = NULL;
        cb(r->outer, (uv_stream_t *)end, 0);
    } else {
        t->accept_cb(&t->outer, r->peer_id, r->peer_addr, (uv_stream_t *)end);
    }
}

static int send_hello(relay *r)
{
    const cs_rafttls *t = r->t;
    size_t alen = strlen(t->address);
    uint8_t h[HELLO_MAX];
    memcpy(h, HELLO_MAGIC, 8);
    cs_be64_put(h + 8, t->id);
    cs_be64_put(h + 16, alen);
    memcpy(h + HELLO_HEAD, t->address, alen);
    size_t off = 0;
    while (off < HELLO_HEAD + alen) {
        int n = mbedtls_ssl_write(&r->ssl, h + off, HELLO_HEAD + alen - off);
        if (n < 0)
            return n;
        off += (size_t)n;
    }
    return 0;
}

/* Take the hello from the first n plaintext bytes; the count taken.
 * Ends the relay when it disagrees with the preamble. */
static size_t take_hello(relay *r, const uint8_t *p, size_t n)
{
    size_t total = HELLO_HEAD;
    if (r->hello_len >= HELLO_HEAD)
        total += (size_t)cs_be64_get(r->hello + 16);
    size_t took = 0;
    while (took < n && r->hello_len < total) {
        size_t k = total - r->hello_len;
        if (k > n - took)
            k = n - took;
        memcpy(r->hello + r->hello_len, p + took, k);
        r->hello_len += k;
        took += k;
        if (r->hello_len == HELLO_HEAD) {
            uint64_t alen = cs_be64_get(r->hello + 16);
            if (memcmp(r->hello, HELLO_MAGIC, 8) != 0 || alen == 0 || alen >= ADDR_MAX) {
                relay_end(r, true, "its first message is not a Raft hello");
                return took;
            }
            total = HELLO_HEAD + (size_t)alen;
        }
    }
    if (r->hello_len < total)
        return took;
    uint64_t id = cs_be64_get(r->hello + 8);
    size_t alen = total - HELLO_HEAD;
    if (id != r->peer_id || alen != strlen(r->peer_addr) ||
        memcmp(r->hello + HELLO_HEAD, r->peer_addr, alen) != 0) {
        char why[ADDR_MAX + 96];
        snprintf(why, sizeof why,
                 "its hello (member %" PRIu64 " at %.*s) disagrees with its preamble", id,
                 (int)alen, (const char *)r->hello + HELLO_HEAD);
        relay_end(r, true, why);
        return took;
    }
    hand_to_raft(r);
    return took;
}

/* The handshake is done: check the peer, then the dialler says hello and
 * hands over; the acceptor waits for the hello. */
static void handshake_done(relay *r)
{
    char why[192];
    if (!peer_is_replica(r, why, sizeof why)) {
        relay_end(r, true, why);
        return;
    }
    if (!r->dialer) {
        r->state = R_HELLO;
        return;
    }
    int rv = send_hello(r);
    if (rv != 0) {
        end_tls_error(r, "sending the hello", rv);
        return;
    }
    hand_to_raft(r);
}

/* Move what TCP delivered on: through the handshake, then decrypted
 * towards raft, until mbedTLS needs more or raft's side is full. */
static void pump(relay *r)
{
    if (r->ending)
        return;
    if (r->state == R_HANDSHAKE) {
        int rv = mbedtls_ssl_handshake(&r->ssl);
        if (rv == MBEDTLS_ERR_SSL_WANT_READ || rv == MBEDTLS_ERR_SSL_WANT_WRITE)
            return;
        if (rv != 0) {
            char why[320];
            handshake_why(r, rv, why, sizeof why);
            relay_end(r, true, why);
            return;
        }
        handshake_done(r);
    }
    uint8_t buf[CHUNK];
    while (!r->ending && !r->tcp_paused) {
        int n = mbedtls_ssl_read(&r->ssl, buf, sizeof buf);
        if (n == MBEDTLS_ERR_SSL_WANT_READ || n == MBEDTLS_ERR_SSL_WANT_WRITE)
            return;
        if (n == 0 || n == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
            relay_end(r, false, NULL);
            return;
        }
        if (n < 0) {
            end_tls_error(r, "TLS", n);
            return;
        }
        size_t off = r->state == R_HELLO ? take_hello(r, buf, (size_t)n) : 0;
        if (r->ending)
            return;
        if (off < (size_t)n &&
            queue_write(r, (uv_stream_t *)&r->pipe, buf + off, (size_t)n - off) != 0) {
            relay_end(r, false, "cannot write to raft's end of the relay");
            return;
        }
        if (queued((uv_stream_t *)&r->pipe) > QUEUE_HIGH) {
            r->tcp_paused = true;
            uv_read_stop((uv_stream_t *)r->tcp);
        }
    }
}

/* ---- the streams' callbacks ---------------------------------------------------- */

static void on_tcp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    relay *r = h->data;
    (void)suggested;
    if (r->in_off == r->in_len) {
        r->in_off = r->in_len = 0;
    } else if (r->in_off > 0 && r->in_cap - r->in_len < READ_ROOM) {
        memmove(r->in, r->in + r->in_off, r->in_len - r->in_off);
        r->in_len -= r->in_off;
        r->in_off = 0;
    }
    if (r->in_cap - r->in_len < READ_ROOM) {
        uint8_t *p = realloc(r->in, r->in_len + READ_ROOM);
        if (p == NULL) {
            *buf = uv_buf_init(NULL, 0); /* the read fails with UV_ENOBUFS */
            return;
        }
        r->in = p;
        r->in_cap = r->in_len + READ_ROOM;
    }
    *buf = uv_buf_init((char *)r->in + r->in_len, (unsigned)(r->in_cap - r->in_len));
}

static void on_tcp_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    relay *r = s->data;
    (void)buf;
    if (r->ending)
        return;
    if (nread > 0) {
        r->in_len += (size_t)nread;
        pump(r);
    } else if (nread < 0) {
        /* EOF while setting up: the peer went away or refused us. */
        bool setup = r->state != R_OPEN;
        relay_end(r, false,
                  setup ? (nread == UV_EOF ? "the peer closed the connection before it was set up"
                                           : uv_strerror((int)nread))
                        : NULL);
    }
}

static void on_pipe_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    relay *r = h->data;
    (void)suggested;
    *buf = uv_buf_init((char *)r->out, sizeof r->out);
}

/* What raft wrote: encrypted onto TCP. */
static void on_pipe_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    relay *r = s->data;
    if (r->ending)
        return;
    if (nread < 0) {
        relay_end(r, false, NULL); /* raft closed its end */
        return;
    }
    size_t off = 0;
    while (off < (size_t)nread) {
        int n = mbedtls_ssl_write(&r->ssl, (const unsigned char *)buf->base + off,
                                  (size_t)nread - off);
        if (n < 0) {
            end_tls_error(r, "TLS", n);
            return;
        }
        off += (size_t)n;
    }
    if (queued((uv_stream_t *)r->tcp) > QUEUE_HIGH) {
        r->pipe_paused = true;
        uv_read_stop(s);
    }
}

static void on_deadline(uv_timer_t *timer)
{
    relay *r = timer->data;
    char why[96];
    snprintf(why, sizeof why, "not set up within %d ms", CS_RAFTTLS_HANDSHAKE_MS);
    relay_end(r, true, why);
}

/* Wrap the TCP stream the inner transport handed over and start the
 * handshake. On failure the relay ends (raft hears of it as a failed
 * connect, or not at all for an incoming one). */
static void relay_setup(relay *r, uv_stream_t *stream)
{
    cs_rafttls *t = r->t;
    r->tcp = (uv_tcp_t *)stream;
    stream->data = r;
    r->state = R_HANDSHAKE;
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) != 0) {
        relay_end(r, false, strerror(errno));
        return;
    }
    uv_pipe_init(t->loop, &r->pipe, 0);
    r->pipe.data = r;
    r->pipe_init = true;
    if (uv_pipe_open(&r->pipe, fds[1]) != 0) {
        close(fds[0]);
        close(fds[1]);
        relay_end(r, false, "cannot open the relay's socketpair");
        return;
    }
    r->raft_end = raft_malloc(sizeof *r->raft_end);
    if (r->raft_end == NULL) {
        close(fds[0]);
        relay_end(r, false, "out of memory");
        return;
    }
    uv_pipe_init(t->loop, r->raft_end, 0);
    r->raft_end->data = r;
    if (uv_pipe_open(r->raft_end, fds[0]) != 0) {
        close(fds[0]);
        relay_end(r, false, "cannot open the relay's socketpair");
        return;
    }
    uv_timer_init(t->loop, &r->timer);
    r->timer.data = r;
    r->timer_init = true;
    uv_timer_start(&r->timer, on_deadline, CS_RAFTTLS_HANDSHAKE_MS, 0);
    mbedtls_ssl_init(&r->ssl);
    r->ssl_init = true;
    if (mbedtls_ssl_setup(&r->ssl, r->dialer ? &t->client : &t->server) != 0) {
        relay_end(r, false, "out of memory for a TLS session");
        return;
    }
    mbedtls_ssl_set_bio(&r->ssl, r, bio_send, bio_recv, NULL);
    if (uv_read_start(stream, on_tcp_alloc, on_tcp_read) != 0) {
        relay_end(r, false, "cannot read the connection");
        return;
    }
    pump(r); /* the dialler's ClientHello */
}

/* ---- the transport's methods --------------------------------------------------- */

static int tls_init(struct raft_uv_transport *o, raft_id id, const char *address)
{
    cs_rafttls *t = o->impl;
    if (strlen(address) >= ADDR_MAX) {
        snprintf(o->errmsg, sizeof o->errmsg, "raft address longer than %d bytes", ADDR_MAX - 1);
        return RAFT_INVALID;
    }
    t->id = id;
    snprintf(t->address, sizeof t->address, "%s", address);
    int rv = t->inner->init(t->inner, id, address);
    if (rv != 0)
        snprintf(o->errmsg, sizeof o->errmsg, "%s", t->inner->errmsg);
    return rv;
}

static void on_refused_closed(uv_handle_t *h) { raft_free(h); }

static void on_inner_accepted(struct raft_uv_transport *inner, raft_id id, const char *address,
                              uv_stream_t *stream)
{
    cs_rafttls *t = inner->data;
    relay *r = t->closing || t->quiesced ? NULL : relay_new(t, false);
    if (r == NULL) {
        uv_close((uv_handle_t *)stream, on_refused_closed);
        return;
    }
    r->peer_id = id;
    if (strlen(address) >= sizeof r->peer_addr) {
        r->tcp = (uv_tcp_t *)stream;
        relay_end(r, true, "its preamble's address is too long");
        return;
    }
    snprintf(r->peer_addr, sizeof r->peer_addr, "%s", address);
    if (t->unverified >= UNVERIFIED_MAX) {
        r->tcp = (uv_tcp_t *)stream;
        char why[96];
        snprintf(why, sizeof why, "%u connections are being set up already", UNVERIFIED_MAX);
        relay_end(r, true, why);
        return;
    }
    r->counted = true;
    t->unverified++;
    relay_setup(r, stream);
}

static int tls_listen(struct raft_uv_transport *o, raft_uv_accept_cb cb)
{
    cs_rafttls *t = o->impl;
    t->accept_cb = cb;
    int rv = t->inner->listen(t->inner, on_inner_accepted);
    if (rv != 0)
        snprintf(o->errmsg, sizeof o->errmsg, "%s", t->inner->errmsg);
    return rv;
}

static void on_inner_connected(struct raft_uv_connect *req, uv_stream_t *stream, int status)
{
    relay *r = req->data;
    if (status != 0) {
        r->status = status;
        relay_free(r); /* holds no handle yet: tells raft */
        return;
    }
    if (r->t->closing) {
        r->tcp = (uv_tcp_t *)stream;
        r->status = RAFT_CANCELED;
        relay_end(r, false, NULL);
        return;
    }
    relay_setup(r, stream);
}

static int tls_connect(struct raft_uv_transport *o, struct raft_uv_connect *req, raft_id id,
                       const char *address, raft_uv_connect_cb cb)
{
    cs_rafttls *t = o->impl;
    if (strlen(address) >= ADDR_MAX) {
        snprintf(o->errmsg, sizeof o->errmsg, "raft address longer than %d bytes", ADDR_MAX - 1);
        return RAFT_INVALID;
    }
    relay *r = relay_new(t, true);
    if (r == NULL)
        return RAFT_NOMEM;
    r->state = R_CONNECTING;
    r->peer_id = id;
    snprintf(r->peer_addr, sizeof r->peer_addr, "%s", address);
    r->outer = req;
    r->cb = cb;
    req->cb = cb;
    r->inner_req.data = r;
    int rv = t->inner->connect(t->inner, &r->inner_req, id, address, on_inner_connected);
    if (rv != 0) {
        snprintf(o->errmsg, sizeof o->errmsg, "%s", t->inner->errmsg);
        r->cb = NULL; /* the error is the answer: no callback */
        relay_free(r);
    }
    return rv;
}

static void on_inner_closed(struct raft_uv_transport *inner)
{
    cs_rafttls *t = inner->data;
    t->inner_closed = true;
    maybe_fire_close(t);
}

/* Stop accepting, end every relay the inner transport is not still
 * connecting (it cancels those itself), close the inner transport; the
 * callback fires once all of it is closed. */
static void tls_close(struct raft_uv_transport *o, raft_uv_transport_close_cb cb)
{
    cs_rafttls *t = o->impl;
    t->closing = true;
    t->close_cb = cb;
    for (relay *r = t->relays, *next; r != NULL; r = next) {
        next = r->next;
        if (r->state != R_CONNECTING) {
            r->status = RAFT_CANCELED;
            relay_end(r, false, NULL);
        }
    }
    t->inner->close(t->inner, on_inner_closed);
}
