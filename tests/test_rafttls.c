/* test_rafttls.c — Raft between replicas over mutual TLS (server/rafttls.h,
 * issue 17 §1): a 3-replica cell of real cellstated processes with
 * certificates from tools/cellsched-certs.sh elects a leader and replicates
 * a write; a plain TCP client at a raft port (a well-formed raft_uv_tcp
 * preamble, then a message) is refused and nothing it sent is applied; a
 * TLS client whose certificate the cell's CA signed but whose CN is not
 * `server` (an operator's), and one with CN=server from another CA, are
 * refused and logged, while a `server` certificate gets through the
 * handshake (so the refusals are about who, not about TLS); a replica
 * stopped cleanly, or killed, and restarted rejoins over TLS; a replica
 * without certificates warns that Raft is plain; and, in this process, two
 * transports carry a bulk transfer whole through full relay queues. No
 * timing is asserted: waits are bounded only so that a broken cell fails
 * instead of hanging. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "proto/client.h"
#include "proto/membermsg.h"
#include "proto/msg.h"
#include "proto/tls.h"
#include "server/rafttls.h"
#include "spec/jobspec.h"
#include "tests/support.h"

typedef struct replica {
    int id, pid, raft_port;
    char url[80], raft[64], data[300], log[300];
    cs_client *c;
} replica;

typedef struct tcell {
    char dir[256], cluster[300], bin[256], certs[300];
    cs_tls *tls; /* the operator's, for the test's clients */
    replica r[3];
} tcell;

static tcell C;

static void setup(void)
{
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    /* A replica that refuses us closes the socket the TLS client writes. */
    signal(SIGPIPE, SIG_IGN);
    memset(&C, 0, sizeof C);
    cr_assert_eq(ts_mkdtemp(C.dir, sizeof C.dir), 0);
    ts_bin("cellstated", C.bin, sizeof C.bin);
}

static void teardown(void)
{
    for (int i = 0; i < 3; i++) {
        if (C.r[i].c != NULL)
            cs_client_close(C.r[i].c);
        if (C.r[i].pid > 0)
            ts_stop(C.r[i].pid, SIGKILL, 5000);
    }
    cs_tls_free(C.tls);
    ts_kill_descendants();
    ts_rmtree(C.dir);
}

TestSuite(rafttls, .init = setup, .fini = teardown, .timeout = 240);

/* C.certs/NAME into out. */
static void cert_path(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", C.certs, name);
}

static void show_logs(void)
{
    for (int i = 0; i < 3; i++) {
        char what[32];
        snprintf(what, sizeof what, "cellstated-%d", C.r[i].id);
        ts_log_file(what, C.r[i].log);
    }
}

static void start(replica *r)
{
    char id[16], cert[400], key[400], ca[400];
    snprintf(id, sizeof id, "%d", r->id);
    cert_path(cert, sizeof cert, "server.pem");
    cert_path(key, sizeof key, "server.key");
    cert_path(ca, sizeof ca, "ca.pem");
    char *argv[] = {C.bin, (char *)"--cluster", C.cluster, (char *)"--id", id,
                    (char *)"--data", r->data, (char *)"--election-timeout", (char *)"400",
                    (char *)"--tls-cert", cert, (char *)"--tls-key", key, (char *)"--tls-ca", ca,
                    NULL};
    r->pid = ts_spawn(argv, r->log);
    if (r->c == NULL) {
        cs_error err = {0};
        cr_assert_eq(cs_client_open_tls(r->url, C.tls, 2000, &r->c, &err), CS_OK, "%s", err.msg);
    }
}

/* Certificates for the cell (server, operator) and, apart, another CA's
 * `server`; the cluster file; every replica started. */
static void cell_start(void)
{
    char dir[sizeof C.dir];
    memcpy(dir, C.dir, sizeof dir); /* apart from C, which the paths are written into */
    snprintf(C.certs, sizeof C.certs, "%s/certs", dir);
    char cmd[1024], out[4096];
    snprintf(cmd, sizeof cmd,
             "tools/cellsched-certs.sh '%s/certs' server operator && "
             "tools/cellsched-certs.sh '%s/other' server",
             dir, dir);
    cr_assert_eq(ts_run(cmd, out, sizeof out), 0, "%s: %s", cmd, out);
    char cert[400], key[400], ca[400];
    cert_path(cert, sizeof cert, "operator.pem");
    cert_path(key, sizeof key, "operator.key");
    cert_path(ca, sizeof ca, "ca.pem");
    cs_tls_files f = {.cert = cert, .key = key, .ca = ca};
    cs_error err = {0};
    cr_assert_eq(cs_tls_load(&f, &C.tls, &err), CS_OK, "%s", err.msg);

    snprintf(C.cluster, sizeof C.cluster, "%s/cluster.json", dir);
    FILE *fp = fopen(C.cluster, "w");
    cr_assert_not_null(fp);
    fprintf(fp, "[");
    for (int i = 0; i < 3; i++) {
        replica *r = &C.r[i];
        r->id = i + 1;
        r->raft_port = ts_free_port();
        snprintf(r->url, sizeof r->url, "tls+tcp://127.0.0.1:%d", ts_free_port());
        snprintf(r->raft, sizeof r->raft, "127.0.0.1:%d", r->raft_port);
        snprintf(r->data, sizeof r->data, "%s/cell-%d", dir, r->id);
        snprintf(r->log, sizeof r->log, "%s/cellstated-%d.log", dir, r->id);
        fprintf(fp, "%s{\"id\": %d, \"listen\": \"%s\", \"raft\": \"%s\"}", i ? ", " : "",
                r->id, r->url, r->raft);
    }
    fprintf(fp, "]\n");
    fclose(fp);
    for (int i = 0; i < 3; i++)
        start(&C.r[i]);
}

/* The index of the replica that says it leads; -1 after the wait. */
static int leader(int wait_ms)
{
    int64_t until = ts_now_ms() + wait_ms;
    do {
        for (int i = 0; i < 3; i++) {
            if (C.r[i].pid <= 0)
                continue;
            cs_arena a;
            cs_arena_init(&a);
            cs_msg m;
            cs_members_reply mr;
            cs_error err = {0};
            cs_client_set_timeout(C.r[i].c, 1000);
            bool leads =
                cs_client_call(C.r[i].c, CS_MSG_MEMBERS, "\x80", 1, &m, &err) == CS_OK &&
                cs_members_reply_decode(&m.body, &mr, &a, &err) == CS_OK &&
                mr.role == CS_MEMBER_LEADER;
            cs_arena_free(&a);
            if (leads)
                return i;
        }
        ts_sleep_ms(50);
    } while (ts_now_ms() < until);
    show_logs();
    return -1;
}

/* Submit job `name` through replica r, retried while an election runs
 * (a retry of a write that did commit finds the name taken). */
static void submit(replica *r, const char *name)
{
    char json[256];
    snprintf(json, sizeof json,
             "{\"name\": \"%s\", \"count\": 1, \"cmd\": \"true\", "
             "\"resources\": {\"cpu\": 0.01, \"mem\": 1}}",
             name);
    cs_error err = {0};
    int rc;
    int64_t until = ts_now_ms() + 30000;
    bool first = true;
    do {
        if (!first)
            ts_sleep_ms(50);
        cs_jobspec spec;
        cr_assert_eq(cs_jobspec_parse(json, strlen(json), &spec, &err), CS_OK, "%s", err.msg);
        cs_msg m;
        cs_client_set_timeout(r->c, 3000);
        rc = cs_client_callb(r->c, CS_MSG_JOB_SUBMIT, &spec.body, &m, &err);
        cs_jobspec_free(&spec);
        if (rc == CS_EEXIST && !first)
            rc = CS_OK;
        first = false;
    } while ((rc == CS_ENOTLEADER || rc == CS_EUNAVAIL) && ts_now_ms() < until);
    if (rc != CS_OK)
        show_logs();
    cr_assert_eq(rc, CS_OK, "submit %s through replica %d: %s", name, r->id, err.msg);
}

/* Whether replica r serves job `name` (a read of its own store). */
static bool has_job(replica *r, const char *name) { return ts_has_job(r->c, name); }

/* Wait until every running replica serves job `name`. */
static void wait_everywhere(const char *name)
{
    int64_t until = ts_now_ms() + 30000;
    bool all;
    do {
        all = true;
        for (int i = 0; i < 3; i++)
            all = all && (C.r[i].pid <= 0 || has_job(&C.r[i], name));
        if (!all)
            ts_sleep_ms(50);
    } while (!all && ts_now_ms() < until);
    if (!all)
        show_logs();
    cr_assert(all, "job %s did not reach every replica", name);
}

/* The cell version replica r serves (0: no answer). */
static uint64_t version_of(replica *r) { return ts_version_of(r->c); }

static bool log_has(const char *log, const char *a, const char *b)
{
    if (access(log, R_OK) != 0) /* not yet made by the child */
        return false;
    size_t len;
    char *text = ts_slurp(log, &len);
    if (text == NULL)
        return false;
    bool found = false;
    for (char *line = strtok(text, "\n"); line != NULL && !found; line = strtok(NULL, "\n"))
        found = strstr(line, a) != NULL && (b == NULL || strstr(line, b) != NULL);
    free(text);
    return found;
}

/* Wait until replica r's log has a line with both texts. */
static bool wait_log(const replica *r, const char *a, const char *b)
{
    for (int64_t until = ts_now_ms() + 20000; ts_now_ms() < until; ts_sleep_ms(50))
        if (log_has(r->log, a, b))
            return true;
    return false;
}

/* ---- a client at a raft port ---------------------------------------------------- */

/* A TCP connection to 127.0.0.1:port that gives up reading after 20 s. */
static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0, "connect: %s", strerror(errno));
    struct timeval tv = {.tv_sec = 20};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void put64le(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* raft_uv_tcp's preamble, as a replica's dial sends it in the clear:
 * protocol 1, the Raft id, the address's padded length, the address. */
static size_t preamble(uint8_t *out, uint64_t id, const char *addr)
{
    size_t alen = (strlen(addr) + 1 + 7) / 8 * 8;
    memset(out, 0, 24 + alen);
    put64le(out, 1);
    put64le(out + 8, id);
    put64le(out + 16, alen);
    memcpy(out + 24, addr, strlen(addr));
    return 24 + alen;
}

static void send_all(int fd, const void *p, size_t n)
{
    cr_assert_eq(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n, "send: %s", strerror(errno));
}

/* Whether the server closed fd (EOF or a reset) rather than the read
 * timing out; whatever it sent first is skipped. */
static bool closed_by_server(int fd)
{
    char b[4096];
    for (;;) {
        ssize_t n = recv(fd, b, sizeof b, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return true;
        if (n < 0)
            return false;
    }
}

typedef struct tls_client {
    mbedtls_net_context net;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_x509_crt crt, ca;
    mbedtls_pk_context key;
    mbedtls_ssl_config conf;
    mbedtls_ssl_context ssl;
} tls_client;

/* A TLS client over fd with certificate DIR/WHO.pem and CA DIR/ca.pem. */
static void tls_client_init(tls_client *c, int fd, const char *dir, const char *who)
{
    char cert[400], key[400], ca[400];
    snprintf(cert, sizeof cert, "%s/%s.pem", dir, who);
    snprintf(key, sizeof key, "%s/%s.key", dir, who);
    snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    mbedtls_net_init(&c->net);
    c->net.fd = fd;
    mbedtls_entropy_init(&c->entropy);
    mbedtls_ctr_drbg_init(&c->drbg);
    mbedtls_x509_crt_init(&c->crt);
    mbedtls_x509_crt_init(&c->ca);
    mbedtls_pk_init(&c->key);
    mbedtls_ssl_config_init(&c->conf);
    mbedtls_ssl_init(&c->ssl);
    cr_assert_eq(mbedtls_ctr_drbg_seed(&c->drbg, mbedtls_entropy_func, &c->entropy, NULL, 0), 0);
    cr_assert_eq(mbedtls_x509_crt_parse_file(&c->crt, cert), 0, "%s", cert);
    cr_assert_eq(mbedtls_x509_crt_parse_file(&c->ca, ca), 0, "%s", ca);
    cr_assert_eq(mbedtls_pk_parse_keyfile(&c->key, key, NULL), 0, "%s", key);
    cr_assert_eq(mbedtls_ssl_config_defaults(&c->conf, MBEDTLS_SSL_IS_CLIENT,
                                             MBEDTLS_SSL_TRANSPORT_STREAM,
                                             MBEDTLS_SSL_PRESET_DEFAULT),
                 0);
    mbedtls_ssl_conf_rng(&c->conf, mbedtls_ctr_drbg_random, &c->drbg);
    /* The test checks what the replica does with us, not the replica. */
    mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_NONE);
    cr_assert_eq(mbedtls_ssl_conf_own_cert(&c->conf, &c->crt, &c->key), 0);
    cr_assert_eq(mbedtls_ssl_setup(&c->ssl, &c->conf), 0);
    mbedtls_ssl_set_bio(&c->ssl, &c->net, mbedtls_net_send, mbedtls_net_recv, NULL);
}

static void tls_client_free(tls_client *c)
{
    mbedtls_ssl_free(&c->ssl);
    mbedtls_ssl_config_free(&c->conf);
    mbedtls_pk_free(&c->key);
    mbedtls_x509_crt_free(&c->ca);
    mbedtls_x509_crt_free(&c->crt);
    mbedtls_ctr_drbg_free(&c->drbg);
    mbedtls_entropy_free(&c->entropy);
    mbedtls_net_free(&c->net); /* closes the fd */
}

static int tls_handshake(tls_client *c)
{
    int rv;
    do
        rv = mbedtls_ssl_handshake(&c->ssl);
    while (rv == MBEDTLS_ERR_SSL_WANT_READ || rv == MBEDTLS_ERR_SSL_WANT_WRITE);
    return rv;
}

/* After a completed handshake: whether the server ends the session (close
 * notify, EOF, reset) rather than the read timing out. */
static bool tls_closed_by_server(tls_client *c)
{
    unsigned char b[512];
    for (;;) {
        int n = mbedtls_ssl_read(&c->ssl, b, sizeof b);
        if (n > 0 || n == MBEDTLS_ERR_SSL_WANT_READ)
            continue;
        return n != MBEDTLS_ERR_SSL_TIMEOUT && !(n == MBEDTLS_ERR_NET_RECV_FAILED &&
                                                  (errno == EAGAIN || errno == EWOULDBLOCK));
    }
}

/* A client at replica f's raft port with a replica's preamble (the
 * leader's... any other member's) and certificate DIR/WHO: the replica
 * ends the session, at the handshake or just after, and logs a refusal
 * that names `logged`. */
static void expect_refused(replica *f, const char *dir, const char *who, const char *logged)
{
    const replica *other = &C.r[(f - C.r + 1) % 3];
    int fd = dial(f->raft_port);
    uint8_t pre[128];
    send_all(fd, pre, preamble(pre, (uint64_t)other->id, other->raft));
    tls_client c;
    tls_client_init(&c, fd, dir, who);
    int rv = tls_handshake(&c);
    cr_expect(rv != 0 || tls_closed_by_server(&c), "%s/%s: the session stayed open", dir, who);
    tls_client_free(&c);
    cr_expect(wait_log(f, "raft: refused a connection from", logged),
              "replica %d did not log the refusal of %s/%s (\"%s\")", f->id, dir, who, logged);
}

/* ---- the tests ------------------------------------------------------------------ */

Test(rafttls, a_tls_cell_elects_a_leader_and_replicates_a_write)
{
    cell_start();
    int l = leader(30000);
    cr_assert_geq(l, 0, "no leader elected over TLS");
    /* Through a follower, which forwards to the leader. */
    submit(&C.r[(l + 1) % 3], "through-a-follower");
    wait_everywhere("through-a-follower");
    for (int i = 0; i < 3; i++)
        cr_expect(log_has(C.r[i].log, "Raft between replicas is mutual TLS", NULL),
                  "replica %d does not say that Raft is TLS", C.r[i].id);
}

Test(rafttls, plain_tcp_at_a_raft_port_is_refused_and_nothing_is_applied)
{
    cell_start();
    int l = leader(30000);
    cr_assert_geq(l, 0, "no leader elected over TLS");
    submit(&C.r[l], "before");
    wait_everywhere("before");
    uint64_t before = version_of(&C.r[l]);
    /* What the leader would send a follower, from a stranger: the
     * leader's own preamble, then a Raft message (an AppendEntries
     * preamble: type 1, then a header of 8 words). Each follower gets it. */
    for (int k = 1; k <= 2; k++) {
        replica *f = &C.r[(l + k) % 3];
        int fd = dial(f->raft_port);
        uint8_t msg[512];
        size_t n = preamble(msg, (uint64_t)C.r[l].id, C.r[l].raft);
        put64le(msg + n, 1);
        put64le(msg + n + 8, 64);
        memset(msg + n + 16, 0x41, 64);
        send_all(fd, msg, n + 16 + 64);
        cr_expect(closed_by_server(fd), "replica %d kept a plain connection open", f->id);
        close(fd);
        cr_expect(wait_log(f, "raft: refused a connection from", "TLS handshake"),
                  "replica %d did not log the refusal", f->id);
    }
    replica *f = &C.r[(l + 1) % 3];
    /* The cell goes on, and holds only what it was asked through the
     * front door: the next write is the one change. */
    submit(f, "after");
    wait_everywhere("after");
    for (int i = 0; i < 3; i++)
        cr_expect(version_of(&C.r[i]) > before, "replica %d did not move on", C.r[i].id);
    l = leader(30000);
    cr_assert_geq(l, 0);
    uint64_t v = version_of(&C.r[l]);
    for (int i = 0; i < 3; i++) {
        uint64_t vi = 0;
        for (int64_t until = ts_now_ms() + 20000; ts_now_ms() < until && vi != v; ts_sleep_ms(50))
            vi = version_of(&C.r[i]);
        cr_expect_eq(vi, v, "replica %d serves version %llu, the leader %llu", C.r[i].id,
                     (unsigned long long)vi, (unsigned long long)v);
    }
}

Test(rafttls, only_a_server_certificate_of_the_cells_ca_may_speak_raft)
{
    cell_start();
    int l = leader(30000);
    cr_assert_geq(l, 0, "no leader elected over TLS");
    replica *f = &C.r[(l + 1) % 3];
    char other[400];
    snprintf(other, sizeof other, "%s/other", C.dir);

    /* The cell's CA, CN=operator: the handshake completes (the
     * certificate is good), then the replica refuses the role. */
    expect_refused(f, C.certs, "operator", "CN=operator, not CN=server");
    /* CN=server, but another CA signed it: refused at the handshake. */
    expect_refused(f, other, "server", "not correctly signed by the trusted CA");

    /* The cell's own server certificate gets through the handshake: the
     * refusals above are about who, not a port that speaks no TLS. */
    int fd = dial(f->raft_port);
    uint8_t pre[128];
    send_all(fd, pre, preamble(pre, (uint64_t)C.r[(l + 2) % 3].id, C.r[(l + 2) % 3].raft));
    tls_client ok;
    tls_client_init(&ok, fd, C.certs, "server");
    cr_expect_eq(tls_handshake(&ok), 0, "a replica's certificate was refused");
    tls_client_free(&ok);

    submit(f, "still-working");
    wait_everywhere("still-working");
}

Test(rafttls, a_restarted_replica_rejoins_over_tls)
{
    cell_start();
    int l = leader(30000);
    cr_assert_geq(l, 0, "no leader elected over TLS");
    submit(&C.r[l], "first");
    wait_everywhere("first");
    /* A clean stop first (SIGTERM: raft closes its TLS transport with
     * live connections; under ASan a slip there fails the exit status),
     * then a kill -9 of the same member once it is back. */
    replica *f = &C.r[(l + 1) % 3];
    int st = ts_stop(f->pid, SIGTERM, 20000);
    f->pid = 0;
    if (st != 0)
        ts_log_file("the stopped replica", f->log);
    cr_expect_eq(st, 0, "replica %d did not stop cleanly (wait status %d)", f->id, st);
    /* Written while it is away: it must catch up from the others. */
    int l2 = leader(30000);
    cr_assert_geq(l2, 0, "no leader after a follower died");
    submit(&C.r[l2], "while-away");
    start(f);
    wait_everywhere("while-away");
    submit(f, "through-the-returned");
    wait_everywhere("through-the-returned");
    ts_stop(f->pid, SIGKILL, 5000);
    f->pid = 0;
    l2 = leader(30000);
    cr_assert_geq(l2, 0, "no leader after a kill -9");
    submit(&C.r[l2], "after-the-kill");
    start(f);
    wait_everywhere("after-the-kill");
}

Test(rafttls, a_replica_without_certificates_warns_that_raft_is_plain)
{
    /* One member, no certificates: it says so at start, by name. */
    char dir[sizeof C.dir];
    memcpy(dir, C.dir, sizeof dir);
    replica *r = &C.r[0];
    r->id = 1;
    snprintf(r->url, sizeof r->url, "tcp://127.0.0.1:%d", ts_free_port());
    snprintf(r->raft, sizeof r->raft, "127.0.0.1:%d", ts_free_port());
    snprintf(r->data, sizeof r->data, "%s/cell-1", dir);
    snprintf(r->log, sizeof r->log, "%s/cellstated-1.log", dir);
    snprintf(C.cluster, sizeof C.cluster, "%s/cluster.json", dir);
    FILE *fp = fopen(C.cluster, "w");
    cr_assert_not_null(fp);
    fprintf(fp, "[{\"id\": 1, \"listen\": \"%s\", \"raft\": \"%s\"}]\n", r->url, r->raft);
    fclose(fp);
    char *argv[] = {C.bin, (char *)"--cluster", C.cluster, (char *)"--id", (char *)"1",
                    (char *)"--data", r->data, NULL};
    r->pid = ts_spawn(argv, r->log);
    cr_expect(wait_log(r, "WARNING: Raft between replicas is plain TCP", NULL),
              "no warning that Raft is plain");
    cr_expect(!log_has(r->log, "Raft between replicas is mutual TLS", NULL));
}

/* ---- the transport alone, in this process --------------------------------------- */

/* Two TLS transports on one loop, A dialling B, raft's part played here:
 * A writes BULK bytes of a pattern on the stream its connect gives it, B
 * reads them from the stream its accept gives it, starting only after a
 * while so that both relays' queues fill and stop reading (a snapshot's
 * path), and everything must arrive, in order. Then everything is closed
 * and the loop must end with nothing left (ASan finds a leak). */
#define BULK (24u << 20)
#define PIECE (1u << 20)

typedef struct duo {
    uv_loop_t loop;
    struct raft_uv_transport tcp[2];
    cs_rafttls *tls[2];
    char addr[2][32];
    struct raft_uv_connect req;
    uv_stream_t *out, *in; /* A's connected stream, B's accepted one */
    uv_timer_t later;
    uint64_t sent, got, accepted_id;
    bool bad_byte, closed[2], closing;
    int connect_status;
    uint8_t piece[PIECE];
    uint8_t rbuf[65536];
} duo;

static uint8_t pattern_at(uint64_t i) { return (uint8_t)(i * 31 + (i >> 13)); }

static void on_stream_closed(uv_handle_t *h) { raft_free(h); }

static void duo_close_all(duo *d);

static void on_bulk_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    duo *d = s->data;
    for (ssize_t i = 0; i < n; i++)
        d->bad_byte = d->bad_byte || (uint8_t)buf->base[i] != pattern_at(d->got + (uint64_t)i);
    if (n > 0)
        d->got += (uint64_t)n;
    if (n < 0 || d->got == BULK || d->bad_byte)
        duo_close_all(d);
}

static void on_bulk_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    duo *d = h->data;
    (void)suggested;
    *buf = uv_buf_init((char *)d->rbuf, sizeof d->rbuf);
}

static void on_later(uv_timer_t *t)
{
    duo *d = t->data;
    if (d->in != NULL)
        uv_read_start(d->in, on_bulk_alloc, on_bulk_read);
}

static void write_piece(duo *d);

static void on_piece_written(uv_write_t *w, int status)
{
    duo *d = w->data;
    free(w);
    if (status == 0 && d->sent < BULK)
        write_piece(d);
}

static void write_piece(duo *d)
{
    uv_write_t *w = malloc(sizeof *w);
    cr_assert_not_null(w);
    w->data = d;
    for (uint32_t i = 0; i < PIECE; i++)
        d->piece[i] = pattern_at(d->sent + i);
    d->sent += PIECE;
    uv_buf_t b = uv_buf_init((char *)d->piece, PIECE);
    cr_assert_eq(uv_write(w, d->out, &b, 1, on_piece_written), 0);
}

static void on_connected(struct raft_uv_connect *req, uv_stream_t *stream, int status)
{
    duo *d = req->data;
    d->connect_status = status;
    if (status != 0)
        return;
    d->out = stream;
    stream->data = d;
    write_piece(d); /* one uv_write at a time: the piece buffer is reused */
}

static void on_accepted(struct raft_uv_transport *t, raft_id id, const char *address,
                        uv_stream_t *stream)
{
    duo *d = t->data;
    (void)address;
    d->accepted_id = id;
    d->in = stream;
    stream->data = d;
}

static void on_transport_closed(struct raft_uv_transport *t)
{
    duo *d = t->data;
    d->closed[t == cs_rafttls_transport(d->tls[0]) ? 0 : 1] = true;
}

static void duo_close_all(duo *d)
{
    uv_timer_stop(&d->later);
    if (d->out != NULL && !uv_is_closing((uv_handle_t *)d->out))
        uv_close((uv_handle_t *)d->out, on_stream_closed);
    if (d->in != NULL && !uv_is_closing((uv_handle_t *)d->in))
        uv_close((uv_handle_t *)d->in, on_stream_closed);
    for (int i = 0; i < 2 && !d->closing; i++) {
        struct raft_uv_transport *t = cs_rafttls_transport(d->tls[i]);
        t->close(t, on_transport_closed);
    }
    d->closing = true;
}

Test(rafttls, the_relay_carries_a_bulk_transfer_whole_through_full_queues)
{
    char dir[sizeof C.dir];
    memcpy(dir, C.dir, sizeof dir);
    char cmd[600], out[4096];
    snprintf(cmd, sizeof cmd, "tools/cellsched-certs.sh '%s/certs' server", dir);
    cr_assert_eq(ts_run(cmd, out, sizeof out), 0, "%s: %s", cmd, out);
    cs_tls_files f;
    char cert[400], key[400], ca[400];
    snprintf(cert, sizeof cert, "%s/certs/server.pem", dir);
    snprintf(key, sizeof key, "%s/certs/server.key", dir);
    snprintf(ca, sizeof ca, "%s/certs/ca.pem", dir);
    f = (cs_tls_files){.cert = cert, .key = key, .ca = ca};
    cs_error err = {0};
    cr_assert_eq(cs_tls_load(&f, &C.tls, &err), CS_OK, "%s", err.msg);
    cs_rafttls_pem pem;
    cs_tls_pem(C.tls, &pem.cert, &pem.key, &pem.ca);

    duo *d = calloc(1, sizeof *d);
    cr_assert_not_null(d);
    cr_assert_eq(uv_loop_init(&d->loop), 0);
    uv_timer_init(&d->loop, &d->later);
    d->later.data = d;
    for (int i = 0; i < 2; i++) {
        snprintf(d->addr[i], sizeof d->addr[i], "127.0.0.1:%d", ts_free_port());
        cr_assert_eq(raft_uv_tcp_init(&d->tcp[i], &d->loop), 0);
        cr_assert_eq(cs_rafttls_new(&d->loop, &d->tcp[i], &pem, &d->tls[i], &err), CS_OK, "%s",
                     err.msg);
        struct raft_uv_transport *t = cs_rafttls_transport(d->tls[i]);
        t->data = d;
        cr_assert_eq(t->init(t, (raft_id)(i + 1), d->addr[i]), 0, "%s", t->errmsg);
    }
    struct raft_uv_transport *a = cs_rafttls_transport(d->tls[0]);
    struct raft_uv_transport *b = cs_rafttls_transport(d->tls[1]);
    cr_assert_eq(b->listen(b, on_accepted), 0, "%s", b->errmsg);
    d->req.data = d;
    cr_assert_eq(a->connect(a, &d->req, 2, d->addr[1], on_connected), 0, "%s", a->errmsg);
    /* B reads only after two seconds: by then A's writes have filled the
     * pipes, the relays' queues and the socket buffers, and both relays
     * have stopped reading one side. */
    uv_timer_start(&d->later, on_later, 2000, 0);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    cr_expect_eq(d->connect_status, 0);
    cr_expect_eq(d->accepted_id, 1, "B was handed the connection of member %llu",
                 (unsigned long long)d->accepted_id);
    cr_expect(!d->bad_byte, "a byte arrived changed or out of order (at about %llu)",
              (unsigned long long)d->got);
    cr_expect_eq(d->got, (uint64_t)BULK, "%llu of %u bytes arrived", (unsigned long long)d->got,
                 BULK);
    cr_expect(d->closed[0] && d->closed[1], "a transport's close callback did not fire");
    uv_close((uv_handle_t *)&d->later, NULL);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    cr_expect_eq(uv_loop_close(&d->loop), 0, "the loop still has handles");
    for (int i = 0; i < 2; i++) {
        cs_rafttls_free(d->tls[i]);
        raft_uv_tcp_close(&d->tcp[i]);
    }
    free(d);
}
