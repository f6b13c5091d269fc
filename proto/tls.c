/* tls.c — mutual TLS for the cell's nng sockets (see tls.h).
 *
 * The files are checked with mbedTLS itself (the library Debian's libnng is
 * built on), at load: nng's nng_tls_config_own_cert parses the certificate
 * and the key but never checks that they belong together, so a mismatch
 * would only show as every handshake failing, far from its cause. */
#include "proto/tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/error.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crl.h>
#include <mbedtls/x509_crt.h>

#include "proto/tlsengine.h"

/* A certificate, a key or a CA bundle is a few KiB; a bound keeps a path
 * to something else (a log, /dev/zero) from being read whole. */
#define TLS_FILE_MAX (1u << 20)

struct cs_tls {
    char *cert; /* PEM, NUL-terminated (mbedTLS counts the NUL in a PEM's length) */
    char *key;
    char *ca;
    char *crl; /* NULL: no --tls-crl */
};

bool cs_tls_flag(const char *a, const char *v, cs_tls_files *f)
{
    if (strcmp(a, "--tls-cert") == 0)
        f->cert = v;
    else if (strcmp(a, "--tls-key") == 0)
        f->key = v;
    else if (strcmp(a, "--tls-ca") == 0)
        f->ca = v;
    else if (strcmp(a, "--tls-crl") == 0)
        f->crl = v;
    else
        return false;
    return true;
}

static void env_default(const char **p, const char *name)
{
    const char *v = getenv(name);
    if (*p == NULL && v != NULL && v[0] != '\0')
        *p = v;
}

void cs_tls_files_env(cs_tls_files *f)
{
    env_default(&f->cert, CS_TLS_CERT_ENV);
    env_default(&f->key, CS_TLS_KEY_ENV);
    env_default(&f->ca, CS_TLS_CA_ENV);
    env_default(&f->crl, CS_TLS_CRL_ENV);
}

/* Read `path` whole into a NUL-terminated *out (the caller's: free), and
 * check that it holds a PEM block whose BEGIN line contains `kind`. */
static int read_pem(const char *flag, const char *path, const char *kind, char **out,
                    cs_error *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return cs_errorf(err, CS_EINVAL, "%s %s: %s", flag, path, strerror(errno));
    char *buf = malloc(TLS_FILE_MAX + 1);
    if (buf == NULL) {
        fclose(f);
        return cs_errorf(err, CS_ENOMEM, "%s %s: out of memory", flag, path);
    }
    size_t n = fread(buf, 1, TLS_FILE_MAX + 1, f);
    int rc = CS_OK;
    if (ferror(f))
        rc = cs_errorf(err, CS_EINVAL, "%s %s: cannot read it: %s", flag, path, strerror(errno));
    else if (n > TLS_FILE_MAX)
        rc = cs_errorf(err, CS_EINVAL, "%s %s: larger than %u bytes: not a PEM file", flag, path,
                       TLS_FILE_MAX);
    fclose(f);
    if (rc != CS_OK)
        goto fail;
    buf[n] = '\0';
    /* A PEM block's first line is "-----BEGIN <kind>-----"; a key is
     * "PRIVATE KEY", "RSA PRIVATE KEY" or "EC PRIVATE KEY". */
    bool found = false;
    for (const char *b = strstr(buf, "-----BEGIN "); b != NULL && !found;
         b = strstr(b + 1, "-----BEGIN ")) {
        const char *eol = strchr(b, '\n');
        const char *k = strstr(b, kind);
        found = k != NULL && (eol == NULL || k < eol);
    }
    if (!found) {
        rc = cs_errorf(err, CS_EINVAL, "%s %s: not a PEM %s (no \"-----BEGIN %s-----\" block)",
                       flag, path, kind, kind);
        goto fail;
    }
    *out = buf;
    return CS_OK;
fail:
    free(buf);
    return rc;
}

static void mbed_reason(int rv, char *buf, size_t size)
{
    mbedtls_strerror(rv, buf, size);
}

/* Check the CRL of `t` against the parsed CA chain `ca`: it parses, one of
 * the CAs issued it (mbedTLS ignores a CRL of another issuer, so a wrong
 * file would revoke nothing, unseen), and it is not past its next update
 * (mbedTLS then refuses every certificate of that CA). */
static int check_crl(const cs_tls *t, const cs_tls_files *f, const mbedtls_x509_crt *ca,
                     mbedtls_x509_crl *crl, cs_error *err)
{
    char why[160];
    int rv = mbedtls_x509_crl_parse(crl, (const unsigned char *)t->crl, strlen(t->crl) + 1);
    if (rv != 0) {
        mbed_reason(rv, why, sizeof why);
        return cs_errorf(err, CS_EINVAL, "--tls-crl %s: not a valid CRL: %s", f->crl, why);
    }
    for (const mbedtls_x509_crl *c = crl; c != NULL && c->version != 0; c = c->next) {
        bool ours = false;
        for (const mbedtls_x509_crt *a = ca; a != NULL && !ours; a = a->next)
            ours = a->subject_raw.len == c->issuer_raw.len &&
                   memcmp(a->subject_raw.p, c->issuer_raw.p, c->issuer_raw.len) == 0;
        if (!ours)
            return cs_errorf(err, CS_EINVAL, "--tls-crl %s: not issued by a CA of --tls-ca %s",
                             f->crl, f->ca);
        if (mbedtls_x509_time_is_past(&c->next_update))
            return cs_errorf(err, CS_EINVAL,
                             "--tls-crl %s: expired on %04d-%02d-%02d (its next update): "
                             "every peer would be refused; make it anew "
                             "(tools/cellsched-certs.sh --crl)",
                             f->crl, c->next_update.year, c->next_update.mon,
                             c->next_update.day);
    }
    return CS_OK;
}

/* Parse the PEMs of `t` and check that the key is the certificate's and
 * that the CA signed the certificate (and the CRL, if any, checks out and
 * does not revoke it). */
static int check_pair(const cs_tls *t, const cs_tls_files *f, cs_error *err)
{
    mbedtls_x509_crt crt, ca;
    mbedtls_x509_crl crl;
    mbedtls_pk_context key;
    mbedtls_x509_crt_init(&crt);
    mbedtls_x509_crt_init(&ca);
    mbedtls_x509_crl_init(&crl);
    mbedtls_pk_init(&key);
    char why[160];
    int rc = CS_OK, rv;
    uint32_t flags = 0;
    if ((rv = mbedtls_x509_crt_parse(&crt, (const unsigned char *)t->cert, strlen(t->cert) + 1)) !=
        0) {
        mbed_reason(rv, why, sizeof why);
        rc = cs_errorf(err, CS_EINVAL, "--tls-cert %s: not a valid certificate: %s", f->cert, why);
    } else if ((rv = mbedtls_x509_crt_parse(&ca, (const unsigned char *)t->ca,
                                            strlen(t->ca) + 1)) != 0) {
        mbed_reason(rv, why, sizeof why);
        rc = cs_errorf(err, CS_EINVAL, "--tls-ca %s: not a valid certificate: %s", f->ca, why);
    } else if ((rv = mbedtls_pk_parse_key(&key, (const unsigned char *)t->key, strlen(t->key) + 1,
                                          NULL, 0)) != 0) {
        mbed_reason(rv, why, sizeof why);
        rc = cs_errorf(err, CS_EINVAL, "--tls-key %s: not a valid unencrypted private key: %s",
                       f->key, why);
    } else if (mbedtls_pk_check_pair(&crt.pk, &key) != 0) {
        rc = cs_errorf(err, CS_EINVAL, "--tls-key %s: not the key of --tls-cert %s", f->key,
                       f->cert);
    } else if (t->crl != NULL && (rc = check_crl(t, f, &ca, &crl, err)) != CS_OK) {
        /* named by check_crl */
    } else if (mbedtls_x509_crt_verify(&crt, &ca, t->crl != NULL ? &crl : NULL, NULL, &flags,
                                       NULL, NULL) != 0) {
        mbedtls_x509_crt_verify_info(why, sizeof why, "", flags);
        why[strcspn(why, "\n")] = '\0';
        /* Every cellsched CA is named alike (tools/cellsched-certs.sh),
         * so a CRL of another cell's CA passes check_crl's name test and
         * fails here; mbedTLS would then refuse every peer. */
        if (flags & MBEDTLS_X509_BADCRL_NOT_TRUSTED)
            rc = cs_errorf(err, CS_EINVAL, "--tls-crl %s: not signed by the CA of --tls-ca %s",
                           f->crl, f->ca);
        else if (flags & MBEDTLS_X509_BADCERT_REVOKED)
            rc = cs_errorf(err, CS_EINVAL, "--tls-cert %s: revoked by --tls-crl %s", f->cert,
                           f->crl);
        else
            rc = cs_errorf(err, CS_EINVAL, "--tls-cert %s: not accepted by --tls-ca %s: %s",
                           f->cert, f->ca, why);
    }
    mbedtls_pk_free(&key);
    mbedtls_x509_crl_free(&crl);
    mbedtls_x509_crt_free(&ca);
    mbedtls_x509_crt_free(&crt);
    return rc;
}

int cs_tls_load(const cs_tls_files *f, cs_tls **out, cs_error *err)
{
    *out = NULL;
    int given = (f->cert != NULL) + (f->key != NULL) + (f->ca != NULL);
    if (given == 0 && f->crl != NULL)
        return cs_errorf(err, CS_EINVAL,
                         "--tls-crl %s: a CRL without --tls-cert, --tls-key and --tls-ca",
                         f->crl);
    if (given == 0)
        return CS_OK;
    if (given != 3)
        return cs_errorf(err, CS_EINVAL,
                         "--tls-cert, --tls-key and --tls-ca go together (missing:%s%s%s)",
                         f->cert == NULL ? " --tls-cert" : "", f->key == NULL ? " --tls-key" : "",
                         f->ca == NULL ? " --tls-ca" : "");
    cs_tls *t = calloc(1, sizeof *t);
    if (t == NULL)
        return cs_errorf(err, CS_ENOMEM, "tls: out of memory");
    int rc;
    if ((rc = read_pem("--tls-cert", f->cert, "CERTIFICATE", &t->cert, err)) != CS_OK ||
        (rc = read_pem("--tls-key", f->key, "PRIVATE KEY", &t->key, err)) != CS_OK ||
        (rc = read_pem("--tls-ca", f->ca, "CERTIFICATE", &t->ca, err)) != CS_OK ||
        (f->crl != NULL &&
         (rc = read_pem("--tls-crl", f->crl, "X509 CRL", &t->crl, err)) != CS_OK) ||
        (rc = check_pair(t, f, err)) != CS_OK || (rc = cs_tls_engine_install(err)) != CS_OK) {
        cs_tls_free(t);
        return rc;
    }
    *out = t;
    return CS_OK;
}

void cs_tls_free(cs_tls *t)
{
    if (t == NULL)
        return;
    free(t->cert);
    free(t->key);
    free(t->ca);
    free(t->crl);
    free(t);
}

static bool scheme_is(const char *url, const char *const *schemes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(schemes[i]);
        if (strncmp(url, schemes[i], len) == 0 && strncmp(url + len, "://", 3) == 0)
            return true;
    }
    return false;
}

bool cs_tls_url(const char *url)
{
    static const char *const tls[] = {"tls+tcp", "tls+tcp4", "tls+tcp6"};
    return scheme_is(url, tls, sizeof tls / sizeof tls[0]);
}

/* Schemes that cross the network in the clear. */
static bool plain_net_url(const char *url)
{
    static const char *const plain[] = {"tcp", "tcp4", "tcp6", "ws", "ws4", "ws6"};
    return scheme_is(url, plain, sizeof plain / sizeof plain[0]);
}

int cs_tls_check_url(const cs_tls *t, const char *url, const char *what, cs_error *err)
{
    if (t == NULL && cs_tls_url(url))
        return cs_errorf(err, CS_EINVAL,
                         "%s %s: a TLS URL needs --tls-cert, --tls-key and --tls-ca (or $%s, $%s, "
                         "$%s)",
                         what, url, CS_TLS_CERT_ENV, CS_TLS_KEY_ENV, CS_TLS_CA_ENV);
    if (t != NULL && plain_net_url(url))
        return cs_errorf(err, CS_EINVAL,
                         "%s %s: plain TCP, but TLS certificates were given: use tls+tcp://%s",
                         what, url, strstr(url, "://") + 3);
    return CS_OK;
}

/* A configuration of `mode` from `t`, verifying the peer; a client's
 * checks the server certificate's name against `server_name` (may be
 * NULL for a server). */
static int config_new(const cs_tls *t, nng_tls_mode mode, const char *server_name,
                      nng_tls_config **out, cs_error *err)
{
    nng_tls_config *cfg;
    /* A configuration keeps the engine it was made with: ours, always. */
    int rv = cs_tls_engine_install(err);
    if (rv != CS_OK)
        return rv;
    if ((rv = nng_tls_config_alloc(&cfg, mode)) != 0)
        return cs_errorf(err, rv == NNG_ENOMEM ? CS_ENOMEM : CS_EINVAL, "tls: %s",
                         nng_strerror(rv));
    if ((rv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED)) != 0 ||
        (rv = nng_tls_config_ca_chain(cfg, t->ca, t->crl)) != 0 ||
        (rv = nng_tls_config_own_cert(cfg, t->cert, t->key, NULL)) != 0 ||
        (server_name != NULL && (rv = nng_tls_config_server_name(cfg, server_name)) != 0)) {
        nng_tls_config_free(cfg);
        return cs_errorf(err, CS_EINVAL, "tls: %s", nng_strerror(rv));
    }
    *out = cfg;
    return CS_OK;
}

int cs_tls_server_config(const cs_tls *t, nng_tls_config **out, cs_error *err)
{
    return config_new(t, NNG_TLS_MODE_SERVER, NULL, out, err);
}

/* The host of a tls+tcp URL (scheme://HOST:PORT or scheme://[V6]:PORT)
 * into out[0..size). */
static void url_host(const char *url, char *out, size_t size)
{
    const char *h = strstr(url, "://") + 3;
    const char *end;
    if (h[0] == '[') {
        h++;
        end = strchr(h, ']');
    } else {
        end = strrchr(h, ':');
    }
    size_t n = end != NULL ? (size_t)(end - h) : strlen(h);
    if (n >= size)
        n = size - 1;
    memcpy(out, h, n);
    out[n] = '\0';
}

int cs_tls_dial(nng_socket sock, const char *url, const cs_tls *t, int flags, nng_dialer *d,
                const char *what, cs_error *err)
{
    int rc = cs_tls_check_url(t, url, what, err);
    if (rc != CS_OK)
        return rc;
    nng_dialer dl;
    int rv;
    if (!cs_tls_url(url)) {
        if ((rv = nng_dial(sock, url, &dl, flags)) != 0)
            return cs_errorf(err, CS_EINVAL, "%s: cannot dial %s: %s", what, url,
                             nng_strerror(rv));
    } else {
        char host[256];
        url_host(url, host, sizeof host);
        nng_tls_config *cfg;
        if ((rc = config_new(t, NNG_TLS_MODE_CLIENT, host, &cfg, err)) != CS_OK)
            return cs_error_wrap(err, rc, "%s %s", what, url);
        if ((rv = nng_dialer_create(&dl, sock, url)) != 0) {
            nng_tls_config_free(cfg);
            return cs_errorf(err, CS_EINVAL, "%s: cannot dial %s: %s", what, url,
                             nng_strerror(rv));
        }
        /* The dialer takes its own hold on the configuration. */
        rv = nng_dialer_set_ptr(dl, NNG_OPT_TLS_CONFIG, cfg);
        nng_tls_config_free(cfg);
        if (rv == 0)
            rv = nng_dialer_start(dl, flags);
        if (rv != 0) {
            nng_dialer_close(dl);
            return cs_errorf(err, CS_EINVAL, "%s: cannot dial %s: %s", what, url,
                             nng_strerror(rv));
        }
    }
    if (d != NULL)
        *d = dl;
    return CS_OK;
}

int cs_tls_listen(nng_socket sock, const char *url, const cs_tls *t, nng_listener *l,
                  const char *what, cs_error *err)
{
    int rc = cs_tls_check_url(t, url, what, err);
    if (rc != CS_OK)
        return rc;
    nng_listener ln;
    int rv;
    if (!cs_tls_url(url)) {
        if ((rv = nng_listen(sock, url, &ln, 0)) != 0)
            return cs_errorf(err, CS_EINVAL, "%s: cannot listen at %s: %s", what, url,
                             nng_strerror(rv));
    } else {
        nng_tls_config *cfg;
        if ((rc = cs_tls_server_config(t, &cfg, err)) != CS_OK)
            return cs_error_wrap(err, rc, "%s %s", what, url);
        if ((rv = nng_listener_create(&ln, sock, url)) != 0) {
            nng_tls_config_free(cfg);
            return cs_errorf(err, CS_EINVAL, "%s: cannot listen at %s: %s", what, url,
                             nng_strerror(rv));
        }
        rv = nng_listener_set_ptr(ln, NNG_OPT_TLS_CONFIG, cfg);
        nng_tls_config_free(cfg);
        if (rv == 0)
            rv = nng_listener_start(ln, 0);
        if (rv != 0) {
            nng_listener_close(ln);
            return cs_errorf(err, CS_EINVAL, "%s: cannot listen at %s: %s", what, url,
                             nng_strerror(rv));
        }
    }
    if (l != NULL)
        *l = ln;
    return CS_OK;
}

int cs_tls_refused(nng_listener l, uint64_t *out, cs_error *err)
{
    nng_stat *all;
    int rv = nng_stats_get(&all);
    if (rv != 0)
        return cs_errorf(err, rv == NNG_ENOMEM ? CS_ENOMEM : CS_ENOTFOUND, "tls: statistics: %s",
                         nng_strerror(rv));
    nng_stat *ls = nng_stat_find_listener(all, l);
    nng_stat *auth = ls != NULL ? nng_stat_find(ls, "auth") : NULL;
    if (auth != NULL)
        *out = nng_stat_value(auth);
    nng_stats_free(all);
    return auth != NULL ? CS_OK
                        : cs_errorf(err, CS_ENOTFOUND, "tls: nng keeps no handshake statistics");
}

void cs_tls_pem(const cs_tls *t, const char **cert, const char **key, const char **ca)
{
    *cert = t->cert;
    *key = t->key;
    *ca = t->ca;
}
