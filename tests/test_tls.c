/* test_tls.c — mutual TLS (proto/tls.h, issue 17 §1): the files are checked
 * at load with errors that name them; a TLS cellstated, with certificates
 * made by tools/cellsched-certs.sh into the test's directory, serves a
 * client whose certificate its CA signed and refuses, at the handshake, a
 * client with no certificate, one signed by another CA and a plain tcp://
 * client — and goes on serving. */
#include <criterion/criterion.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/client.h"
#include "proto/proto.h"
#include "proto/tls.h"
#include "tests/support.h"

static void setup(void) { ts_tmp_setup(); }
static void teardown(void)
{
    ts_kill_descendants();
    ts_tmp_teardown();
}

TestSuite(tls, .init = setup, .fini = teardown, .timeout = 120);

/* The certificates of `roles` (space-separated, the script's arguments)
 * into ts_tmp/DIR by the script. */
static void certs(const char *dir, const char *roles)
{
    char cmd[1024], out[4096];
    snprintf(cmd, sizeof cmd, "tools/cellsched-certs.sh '%s/%s' %s", ts_tmp, dir, roles);
    int st = ts_run(cmd, out, sizeof out);
    cr_assert_eq(st, 0, "%s: %s", cmd, out);
}

/* ts_tmp/DIR/NAME into out. */
static void path(char *out, size_t size, const char *dir, const char *name)
{
    snprintf(out, size, "%s/%s/%s", ts_tmp, dir, name);
}

typedef struct files {
    char cert[400], key[400], ca[400];
    cs_tls_files f;
} files;

/* The files of certificate `who` (e.g. "operator", "agent-m1") in DIR,
 * with the CA of CADIR. */
static void files_of(files *x, const char *dir, const char *who, const char *cadir)
{
    char leaf[128];
    snprintf(leaf, sizeof leaf, "%s.pem", who);
    path(x->cert, sizeof x->cert, dir, leaf);
    snprintf(leaf, sizeof leaf, "%s.key", who);
    path(x->key, sizeof x->key, dir, leaf);
    path(x->ca, sizeof x->ca, cadir, "ca.pem");
    x->f = (cs_tls_files){x->cert, x->key, x->ca, NULL};
}

static void write_file(const char *p, const char *text)
{
    FILE *f = fopen(p, "w");
    cr_assert(f != NULL, "%s", p);
    fputs(text, f);
    fclose(f);
}

/* ---- loading the files --------------------------------------------------------------- */

Test(tls, load_checks_each_file_and_names_it)
{
    certs("a", "operator reader");
    certs("b", "operator");
    files x;
    cs_tls *t = NULL;
    cs_error err = {0};

    files_of(&x, "a", "operator", "a");
    cr_assert_eq(cs_tls_load(&x.f, &t, &err), CS_OK, "%s", err.msg);
    cr_assert(t != NULL);
    cs_tls_free(t);

    cs_tls_files none = {0};
    cr_assert_eq(cs_tls_load(&none, &t, &err), CS_OK);
    cr_assert_null(t, "no files: a plain client");

    cs_tls_files part = {x.cert, NULL, x.ca, NULL};
    cr_assert_eq(cs_tls_load(&part, &t, &err), CS_EINVAL);
    cr_assert(strstr(err.msg, "missing: --tls-key") != NULL, "%s", err.msg);

    char missing[400];
    path(missing, sizeof missing, "a", "nope.pem");
    cs_tls_files m = {missing, x.key, x.ca, NULL};
    cr_assert_eq(cs_tls_load(&m, &t, &err), CS_EINVAL);
    cr_assert(strstr(err.msg, "--tls-cert") != NULL && strstr(err.msg, missing) != NULL &&
                  strstr(err.msg, "No such file") != NULL,
              "%s", err.msg);

    char junk[400];
    path(junk, sizeof junk, "a", "junk.pem");
    write_file(junk, "not a certificate\n");
    cs_tls_files j = {x.cert, x.key, junk, NULL};
    cr_assert_eq(cs_tls_load(&j, &t, &err), CS_EINVAL);
    cr_assert(strstr(err.msg, "--tls-ca") != NULL && strstr(err.msg, "not a PEM CERTIFICATE"),
              "%s", err.msg);

    /* A certificate given as the key: no PRIVATE KEY block. */
    cs_tls_files ck = {x.cert, x.cert, x.ca, NULL};
    cr_assert_eq(cs_tls_load(&ck, &t, &err), CS_EINVAL);
    cr_assert(strstr(err.msg, "--tls-key") != NULL && strstr(err.msg, "PRIVATE KEY"), "%s",
              err.msg);

    /* reader's key with operator's certificate. */
    files r;
    files_of(&r, "a", "reader", "a");
    cs_tls_files mismatch = {x.cert, r.key, x.ca, NULL};
    cr_assert_eq(cs_tls_load(&mismatch, &t, &err), CS_EINVAL);
    cr_assert(strstr(err.msg, "not the key of --tls-cert") != NULL, "%s", err.msg);

    /* A certificate of another CA. */
    files other;
    files_of(&other, "b", "operator", "a");
    cr_assert_eq(cs_tls_load(&other.f, &t, &err), CS_EINVAL);
    cr_assert(strstr(err.msg, "not accepted by --tls-ca") != NULL, "%s", err.msg);
}

Test(tls, urls_must_agree_with_the_files)
{
    certs("a", "operator");
    files x;
    files_of(&x, "a", "operator", "a");
    cs_tls *t = NULL;
    cs_error err = {0};
    cr_assert_eq(cs_tls_load(&x.f, &t, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_tls_check_url(t, "tcp://127.0.0.1:7600", "--server", &err), CS_EINVAL);
    cr_assert(strstr(err.msg, "use tls+tcp://127.0.0.1:7600") != NULL, "%s", err.msg);
    cr_assert_eq(cs_tls_check_url(t, "tls+tcp://127.0.0.1:7600", "--server", &err), CS_OK);
    cr_assert_eq(cs_tls_check_url(t, "inproc://x", "--server", &err), CS_OK);
    cr_assert_eq(cs_tls_check_url(NULL, "tls+tcp://127.0.0.1:7600", "--server", &err), CS_EINVAL);
    cr_assert(strstr(err.msg, "needs --tls-cert") != NULL, "%s", err.msg);
    cr_assert_eq(cs_tls_check_url(NULL, "tcp://127.0.0.1:7600", "--server", &err), CS_OK);
    cs_client *c = NULL;
    cr_assert_eq(cs_client_open("tls+tcp://127.0.0.1:7600", 100, &c, &err), CS_EINVAL);
    cr_assert_null(c);
    cs_tls_free(t);
}

/* ---- a TLS cellstated ----------------------------------------------------------------- */

typedef struct tls_cell {
    char url[64], plain_url[64], log[400], data[400], http[32];
    char crl[400]; /* --tls-crl when set */
    int pid;
    files server;
} tls_cell;

/* Start cellstated over TLS with the `server` certificate of "ca" (and
 * its HTTP API on c->http, its CRL c->crl, when they are set). */
static void cell_start(tls_cell *c)
{
    certs("ca", "server operator agent:m1 scheduler:cell-batch scheduler:cell-service");
    int port = ts_free_port();
    snprintf(c->url, sizeof c->url, "tls+tcp://127.0.0.1:%d", port);
    snprintf(c->plain_url, sizeof c->plain_url, "tcp://127.0.0.1:%d", port);
    snprintf(c->log, sizeof c->log, "%s/cellstated.log", ts_tmp);
    snprintf(c->data, sizeof c->data, "%s/data", ts_tmp);
    files_of(&c->server, "ca", "server", "ca");
    char bin[256];
    ts_bin("cellstated", bin, sizeof bin);
    char *argv[20] = {bin,
                      (char *)"--listen",
                      c->url,
                      (char *)"--data",
                      c->data,
                      (char *)"--nosync",
                      (char *)"--tls-cert",
                      c->server.cert,
                      (char *)"--tls-key",
                      c->server.key,
                      (char *)"--tls-ca",
                      c->server.ca};
    int n = 12;
    if (c->crl[0] != '\0') {
        argv[n++] = (char *)"--tls-crl";
        argv[n++] = c->crl;
    }
    if (c->http[0] != '\0') {
        argv[n++] = (char *)"--http";
        argv[n++] = c->http;
    }
    argv[n] = NULL;
    c->pid = ts_spawn(argv, c->log);
}

/* One stats call with a client of `tls` (NULL: none); its result. */
static int stats_call(const char *url, const cs_tls *tls, uint32_t timeout_ms, cs_error *err)
{
    cs_client *cl = NULL;
    int rc = cs_client_open_tls(url, tls, timeout_ms, &cl, err);
    if (rc != CS_OK)
        return rc;
    cs_msg r;
    rc = cs_client_call(cl, CS_MSG_STATS, "\x80", 1, &r, err);
    cs_client_close(cl);
    return rc;
}

/* The client of certificate `who` of "ca" answered, within ~10 s: its
 * stats read, or, for a role that may not read the cell (an agent), a
 * "permission denied" that names it — an answer that only a client past
 * the handshake gets, and the proof that the server read its role. */
static void wait_served(const tls_cell *c, const char *who)
{
    files x;
    files_of(&x, "ca", who, "ca");
    cs_tls *t = NULL;
    cs_error err = {0};
    cr_assert_eq(cs_tls_load(&x.f, &t, &err), CS_OK, "%s", err.msg);
    int rc = CS_EIO;
    for (int i = 0; i < 100 && rc != CS_OK && rc != CS_EPERM; i++) {
        rc = stats_call(c->url, t, 2000, &err);
        if (rc != CS_OK && rc != CS_EPERM)
            ts_sleep_ms(100);
    }
    cs_tls_free(t);
    if (rc != CS_OK && rc != CS_EPERM)
        ts_log_file("cellstated", c->log);
    if (rc == CS_EPERM) {
        char principal[64];
        snprintf(principal, sizeof principal, "%s may not stats", who);
        char *dash = strchr(principal, '-');
        if (dash != NULL)
            *dash = ':'; /* the file agent-m1 holds the principal agent:m1 */
        cr_assert(strstr(err.msg, principal) != NULL, "%s", err.msg);
        return;
    }
    cr_assert_eq(rc, CS_OK, "%s's client was not served: %s", who, err.msg);
}

static bool log_has(const char *log, const char *text)
{
    FILE *f = fopen(log, "r");
    if (f == NULL)
        return false;
    char line[1024];
    bool found = false;
    while (!found && fgets(line, sizeof line, f) != NULL)
        found = strstr(line, text) != NULL;
    fclose(f);
    return found;
}

Test(tls, a_client_signed_by_the_ca_is_served)
{
    tls_cell c = {0};
    cell_start(&c);
    wait_served(&c, "operator");
    wait_served(&c, "agent-m1");
    cr_assert(!log_has(c.log, "unauthenticated"), "a TLS server is not unauthenticated");
}

/* One request from a raw REQ socket dialling `url` with `cfg` (the
 * test's; its reference stays with the caller): 0 when answered (any
 * reply, even an error one), else nng's error. */
static int raw_call(const char *url, nng_tls_config *cfg)
{
    nng_socket s;
    nng_dialer d;
    cr_assert_eq(nng_req0_open(&s), 0);
    cr_assert_eq(nng_dialer_create(&d, s, url), 0);
    cr_assert_eq(nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg), 0);
    cr_assert_eq(nng_dialer_start(d, NNG_FLAG_NONBLOCK), 0);
    nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 1500);
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 1500);
    char req[] = "\x93\x01\x0f\x80";
    int rv = nng_send(s, req, 4, 0);
    if (rv == 0) {
        char *buf;
        size_t len;
        rv = nng_recv(s, &buf, &len, NNG_FLAG_ALLOC);
        if (rv == 0)
            nng_free(buf, len);
    }
    nng_close(s);
    return rv;
}

/* ts_tmp/DIR/WHO.pair: certificate `who` of DIR and its key in one file
 * (nng takes a client's from one file); its path into out. */
static void pair_file(const char *dir, const char *who, char *out, size_t size)
{
    files x;
    files_of(&x, dir, who, dir);
    char cmd[1400], res[256];
    snprintf(out, size, "%s/%s/%s.pair", ts_tmp, dir, who);
    snprintf(cmd, sizeof cmd, "cat '%s' '%s' > '%s'", x.cert, x.key, out);
    cr_assert_eq(ts_run(cmd, res, sizeof res), 0, "%s", res);
}

/* A client configuration that trusts `ca` and presents `pair` (a file
 * with a certificate and its key: nng takes a client's from one file), or
 * nothing when `pair` is NULL. */
static nng_tls_config *client_config(const char *ca, const char *pair)
{
    nng_tls_config *cfg;
    cr_assert_eq(nng_tls_config_alloc(&cfg, NNG_TLS_MODE_CLIENT), 0);
    cr_assert_eq(nng_tls_config_ca_file(cfg, ca), 0);
    cr_assert_eq(nng_tls_config_server_name(cfg, "127.0.0.1"), 0);
    if (pair != NULL)
        cr_assert_eq(nng_tls_config_cert_key_file(cfg, pair, NULL), 0);
    return cfg;
}

Test(tls, strangers_are_refused_at_the_handshake_and_the_server_goes_on)
{
    tls_cell c = {0};
    cell_start(&c);
    wait_served(&c, "operator");
    cs_error err = {0};

    /* No certificate at all. */
    nng_tls_config *cfg = client_config(c.server.ca, NULL);
    cr_assert_neq(raw_call(c.url, cfg), 0, "a client without a certificate was served");
    nng_tls_config_free(cfg);

    /* A certificate of another CA; the client trusts the cell's CA, so
     * that only the server's check can refuse it. */
    certs("other", "operator");
    char pair[1200];
    pair_file("other", "operator", pair, sizeof pair);
    cfg = client_config(c.server.ca, pair);
    cr_assert_neq(raw_call(c.url, cfg), 0, "a client of another CA was served");
    nng_tls_config_free(cfg);

    /* The same call with a certificate of the cell's CA is answered: the
     * refusals above are the certificates', not the raw client's. */
    pair_file("ca", "operator", pair, sizeof pair);
    cfg = client_config(c.server.ca, pair);
    cr_assert_eq(raw_call(c.url, cfg), 0, "a client of the cell's CA was refused");
    nng_tls_config_free(cfg);

    /* Plain TCP at the TLS port. */
    cr_assert_neq(stats_call(c.plain_url, NULL, 1500, &err), CS_OK,
                  "a plain tcp:// client was served by a TLS server");

    /* Still serving, and it said why it refused (the monitor logs at its
     * next tick: wait for the line, the test's timeout bounds the wait). */
    wait_served(&c, "operator");
    cr_assert_eq(kill(c.pid, 0), 0, "cellstated died");
    while (!log_has(c.log, "at the TLS handshake on tls+tcp://127.0.0.1:"))
        ts_sleep_ms(100);
}

Test(tls, a_tls_server_refuses_plain_urls_and_a_plain_one_warns)
{
    certs("ca", "server");
    files x;
    files_of(&x, "ca", "server", "ca");
    char bin[256], cmd[2048], out[4096];
    ts_bin("cellstated", bin, sizeof bin);
    snprintf(cmd, sizeof cmd,
             "'%s' --listen tcp://127.0.0.1:%d --data '%s/d' --tls-cert '%s' --tls-key '%s' "
             "--tls-ca '%s'",
             bin, ts_free_port(), ts_tmp, x.cert, x.key, x.ca);
    cr_assert_eq(ts_run(cmd, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "--listen tcp://127.0.0.1:") != NULL && strstr(out, "use tls+tcp://"),
              "%s", out);
    snprintf(cmd, sizeof cmd, "'%s' --listen tls+tcp://127.0.0.1:%d --data '%s/d'", bin,
             ts_free_port(), ts_tmp);
    cr_assert_eq(ts_run(cmd, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "needs --tls-cert") != NULL, "%s", out);

    /* Plain: served, with the warning. */
    char url[64], log[400], data[400];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", ts_free_port());
    snprintf(log, sizeof log, "%s/plain.log", ts_tmp);
    snprintf(data, sizeof data, "%s/plain", ts_tmp);
    char *argv[] = {bin, (char *)"--listen", url, (char *)"--data", data, (char *)"--nosync", NULL};
    ts_spawn(argv, log);
    cs_error err = {0};
    int rc = CS_EIO;
    for (int i = 0; i < 100 && rc != CS_OK; i++)
        if ((rc = stats_call(url, NULL, 2000, &err)) != CS_OK)
            ts_sleep_ms(100);
    cr_assert_eq(rc, CS_OK, "%s", err.msg);
    cr_assert(log_has(log, "WARNING: unauthenticated: anyone who reaches tcp://127.0.0.1:"),
              "no warning in %s", log);
}

Test(tls, a_revoked_certificate_is_refused_with_the_crl)
{
    /* agent:m2 revoked (tools/cellsched-certs.sh --revoke) before the
     * cell starts with the CRL. */
    certs("ca", "agent:m2");
    char cmd[2400], out[4096];
    snprintf(cmd, sizeof cmd, "tools/cellsched-certs.sh --revoke agent:m2 '%s/ca'", ts_tmp);
    cr_assert_eq(ts_run(cmd, out, sizeof out), 0, "%s: %s", cmd, out);
    tls_cell c = {0};
    path(c.crl, sizeof c.crl, "ca", "crl.pem");
    cell_start(&c);
    wait_served(&c, "operator");

    /* The revoked client, loaded without the CRL (with it, it would not
     * start: below), is refused at the handshake. */
    files x;
    files_of(&x, "ca", "agent-m2", "ca");
    cs_tls *t = NULL;
    cs_error err = {0};
    cr_assert_eq(cs_tls_load(&x.f, &t, &err), CS_OK, "%s", err.msg);
    cr_assert_neq(stats_call(c.url, t, 1500, &err), CS_OK, "a revoked client was served");
    cs_tls_free(t);
    wait_served(&c, "agent-m1");
    while (!log_has(c.log, "at the TLS handshake on tls+tcp://127.0.0.1:"))
        ts_sleep_ms(100);

    /* cellctl takes --tls-crl, and refuses to run with its own revoked
     * certificate. */
    char bin[256];
    ts_bin("cellctl", bin, sizeof bin);
    snprintf(cmd, sizeof cmd,
             "'%s' --server %s --tls-cert '%s' --tls-key '%s' --tls-ca '%s' --tls-crl '%s' stats",
             bin, c.url, x.cert, x.key, x.ca, c.crl);
    cr_assert_eq(ts_run(cmd, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "revoked by --tls-crl") != NULL, "%s", out);
}

/* ---- a whole cell over TLS ------------------------------------------------------------- */

/* cellctl with `env` (a prefix of VAR=VALUE words, may be "") and `args`
 * against the cell: its exit status, its output in out. */
static int cellctl(const char *env, const char *args, char *out, size_t size)
{
    char bin[256], cmd[3000];
    ts_bin("cellctl", bin, sizeof bin);
    snprintf(cmd, sizeof cmd, "%s '%s' %s", env, bin, args);
    return ts_run(cmd, out, size);
}

Test(tls, a_job_is_placed_run_and_finished_over_tls)
{
    tls_cell c = {0};
    cell_start(&c);
    wait_served(&c, "operator");
    files ag, sc, op;
    files_of(&ag, "ca", "agent-m1", "ca");
    files_of(&sc, "ca", "scheduler-cell-batch", "ca");
    files_of(&op, "ca", "operator", "ca");

    char bin[256], work[400], alog[400], blog[400];
    ts_bin("cell-agent", bin, sizeof bin);
    snprintf(work, sizeof work, "%s/agent", ts_tmp);
    snprintf(alog, sizeof alog, "%s/agent.log", ts_tmp);
    const char *agent[] = {bin,        "--server",     c.url,  "--name",     "m1",
                           "--workdir", work,          "--cpu", "2",         "--mem",
                           "2048",     "--disk",       "10000", "--heartbeat-ms", "200",
                           "--poll-wait-ms", "1000",   "--tls-cert", ag.cert, "--tls-key",
                           ag.key,     "--tls-ca",     ag.ca,  "--log-listen",
                           "tls+tcp://127.0.0.1:0", NULL};
    ts_spawn((char *const *)agent, alog);
    ts_bin("cell-batch", bin, sizeof bin);
    snprintf(blog, sizeof blog, "%s/batch.log", ts_tmp);
    const char *sched[] = {bin,        "--server",  c.url,     "--name",    "cell-batch",
                           "--idle-ms", "10",       "--tls-cert", sc.cert,  "--tls-key",
                           sc.key,     "--tls-ca",  sc.ca,     NULL};
    ts_spawn((char *const *)sched, blog);

    /* Submitted with cellctl's flags. */
    char job[400], args[3000], out[8192];
    snprintf(job, sizeof job, "%s/job.json", ts_tmp);
    write_file(job, "{\"name\": \"hello\", \"count\": 2, \"cmd\": \"echo said-over-tls\","
                    " \"resources\": {\"cpu\": 0.1, \"mem\": 16}}\n");
    snprintf(args, sizeof args,
             "--server %s --tls-cert '%s' --tls-key '%s' --tls-ca '%s' submit '%s'", c.url,
             op.cert, op.key, op.ca, job);
    int st = cellctl("", args, out, sizeof out);
    cr_assert_eq(st, 0, "cellctl submit over TLS: %s", out);

    /* Watched with cellctl's environment fallback, until finished. */
    char env[1500];
    snprintf(env, sizeof env, "CELLSCHED_TLS_CERT='%s' CELLSCHED_TLS_KEY='%s' CELLSCHED_TLS_CA='%s'",
             op.cert, op.key, op.ca);
    snprintf(args, sizeof args, "--server %s get jobs --state finished", c.url);
    /* A bound for the logs' sake, far beyond what the job takes. */
    int64_t end = ts_now_ms() + 90000;
    for (;;) {
        st = cellctl(env, args, out, sizeof out);
        cr_assert_eq(st, 0, "cellctl get jobs over TLS: %s", out);
        if (strstr(out, "hello") != NULL)
            break;
        if (kill(c.pid, 0) != 0 || ts_now_ms() > end) {
            ts_log_file("cellstated", c.log);
            ts_log_file("cell-agent", alog);
            ts_log_file("cell-batch", blog);
            cr_assert_fail("the job did not finish (or cellstated died)");
        }
        ts_sleep_ms(200);
    }

    /* A task's output through the agent's log service, TLS too. */
    snprintf(args, sizeof args, "--server %s logs hello/0", c.url);
    st = cellctl(env, args, out, sizeof out);
    cr_assert_eq(st, 0, "cellctl logs over TLS: %s", out);
    cr_assert(strstr(out, "said-over-tls") != NULL, "%s", out);

    /* The audit, over TLS too: the agent's, the scheduler's and the
     * operator's writes. */
    char aargs[600];
    snprintf(aargs, sizeof aargs, "--server %s audit -n 10000", c.url);
    st = cellctl(env, aargs, out, sizeof out);
    cr_assert_eq(st, 0, "cellctl audit over TLS: %s", out);
    static const char *const actions[] = {"machine.register", "job.submit", "commit",
                                          "task.status"};
    for (size_t i = 0; i < sizeof actions / sizeof *actions; i++)
        cr_assert(strstr(out, actions[i]) != NULL, "no %s in the audit: %s", actions[i], out);

    /* The same cellctl without certificates is told what is missing. */
    st = cellctl("", args, out, sizeof out);
    cr_assert_eq(st, 2, "%s", out);
    cr_assert(strstr(out, "needs --tls-cert") != NULL, "%s", out);
}

/* ---- the HTTP API: https, with client certificates ------------------------------------- */

Test(tls, the_http_api_is_https_and_wants_a_certificate)
{
    /* Before anything starts: a skipped test runs no cleanup. */
    if (system("command -v curl >/dev/null 2>&1") != 0)
        cr_skip_test("curl is absent: install Debian's curl (tools/deps.sh install tests)");
    tls_cell c = {0};
    int port = ts_free_port();
    snprintf(c.http, sizeof c.http, "127.0.0.1:%d", port);
    cell_start(&c);
    wait_served(&c, "operator");
    files op;
    files_of(&op, "ca", "operator", "ca");
    char cmd[2000], out[8192];
    /* The gateway starts after the server answers: wait for its line. */
    while (!log_has(c.log, "HTTP API on https://127.0.0.1:"))
        ts_sleep_ms(100);
    snprintf(cmd, sizeof cmd,
             "curl -sS --fail --cert '%s' --key '%s' --cacert '%s' https://127.0.0.1:%d/v1/jobs",
             op.cert, op.key, op.ca, port);
    cr_assert_eq(ts_run(cmd, out, sizeof out), 0, "%s: %s", cmd, out);
    cr_assert(strchr(out, '[') != NULL || strchr(out, '{') != NULL, "JSON: %s", out);

    /* No client certificate: refused at the handshake. */
    snprintf(cmd, sizeof cmd, "curl -sS --fail --cacert '%s' https://127.0.0.1:%d/v1/jobs", op.ca,
             port);
    cr_assert_neq(ts_run(cmd, out, sizeof out), 0, "served without a certificate: %s", out);
    /* Plain http at the https port. */
    snprintf(cmd, sizeof cmd, "curl -sS --fail --max-time 5 http://127.0.0.1:%d/v1/jobs", port);
    cr_assert_neq(ts_run(cmd, out, sizeof out), 0, "served over plain http: %s", out);
    /* And it goes on serving. */
    snprintf(cmd, sizeof cmd,
             "curl -sS --fail --cert '%s' --key '%s' --cacert '%s' https://127.0.0.1:%d/v1/jobs",
             op.cert, op.key, op.ca, port);
    cr_assert_eq(ts_run(cmd, out, sizeof out), 0, "%s: %s", cmd, out);
}
