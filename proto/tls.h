/* tls.h — mutual TLS for every nng socket of the cell (issue 17 §1).
 *
 * Every program takes the same three files: --tls-cert FILE (its own
 * certificate, PEM), --tls-key FILE (that certificate's private key, PEM,
 * unencrypted) and --tls-ca FILE (the cell's CA, PEM: a peer is accepted
 * only with a certificate it signed). Both sides verify: a listener
 * requires the client's certificate (NNG_TLS_AUTH_MODE_REQUIRED), a dialer
 * the server's, so a client without a certificate signed by the cell's CA
 * is refused at the handshake, before any request is read.
 *
 * The URL says whether a socket uses TLS, never the files: tls+tcp://
 * (tls+tcp4, tls+tcp6) needs the files, and tcp:// (tcp4, tcp6, ws) with
 * the files is refused rather than silently left plain or upgraded — an
 * operator who gave certificates believes the cell is protected, and one
 * URL in a list of three left plain would make that untrue unseen. ipc://
 * and inproc:// stay local and take no certificates (the HTTP gateway's
 * inproc client, tests). The files are read and checked once, at start,
 * so that a wrong path or a key that does not match is named before the
 * process serves; the loaded PEM is kept (cs_tls) and each dial or listen
 * gets its own nng configuration from it, with the server name of the URL
 * it dials (mbedTLS then checks it against the server certificate's SAN).
 *
 * Revocation: --tls-crl FILE (optional; PEM, an X509 CRL the CA signed,
 * tools/cellsched-certs.sh --revoke) goes with the CA into every
 * configuration, so that a peer whose certificate it lists is refused at
 * the handshake, on either side.
 *
 * Every configuration is made on cellsched's own TLS engine
 * (proto/tlsengine.h), which keeps each connection's peer identity for
 * cs_tls_peer: this module installs it before it makes the first one.
 */
#ifndef CS_TLS_H
#define CS_TLS_H

#include <stdbool.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "cellstate/error.h"

/* The environment's fallback for each flag (cellctl and every client read
 * them when the flags are not given, as kubectl reads its kubeconfig). */
#define CS_TLS_CERT_ENV "CELLSCHED_TLS_CERT"
#define CS_TLS_KEY_ENV "CELLSCHED_TLS_KEY"
#define CS_TLS_CA_ENV "CELLSCHED_TLS_CA"
#define CS_TLS_CRL_ENV "CELLSCHED_TLS_CRL"

/* The paths of a program's --tls-cert, --tls-key, --tls-ca and --tls-crl
 * (borrowed from argv or the environment; NULL when not given). */
typedef struct cs_tls_files {
    const char *cert;
    const char *key;
    const char *ca;
    const char *crl; /* optional */
} cs_tls_files;

/* The loaded, checked certificates of one program. */
typedef struct cs_tls cs_tls;

/* If `a` is --tls-cert, --tls-key, --tls-ca or --tls-crl, store `v`
 * (borrowed) in *f and return true; else false, *f untouched. For the
 * programs' option loops. */
bool cs_tls_flag(const char *a, const char *v, cs_tls_files *f);

/* Fill each path of *f that is NULL from $CELLSCHED_TLS_CERT, _KEY, _CA and
 * _CRL (borrowed from the environment; an empty variable counts as unset). */
void cs_tls_files_env(cs_tls_files *f);

/* Read and check the files of `f` (borrowed). When none is given, *out is
 * NULL and CS_OK: a plain cell. Otherwise all three of cert, key and CA are
 * needed (the CRL is optional, and never alone), and CS_EINVAL names the
 * flag and file for: one given without the others; a file missing or
 * unreadable (with the system's reason); one holding no PEM block of the
 * kind its flag needs (a CERTIFICATE for --tls-cert and --tls-ca, a PRIVATE
 * KEY for --tls-key, an X509 CRL for --tls-crl); one that mbedTLS cannot
 * parse; a key that is not the certificate's; a certificate the CA did not
 * sign or the CRL revokes; a CRL another CA issued or past its next update
 * (mbedTLS would then refuse every peer). Installs cellsched's TLS engine
 * (CS_EUNAVAIL when nng refuses it). On success *out is the caller's:
 * cs_tls_free. */
int cs_tls_load(const cs_tls_files *f, cs_tls **out, cs_error *err);
void cs_tls_free(cs_tls *t);

/* Whether `url` (borrowed) is a TLS URL (tls+tcp, tls+tcp4, tls+tcp6). */
bool cs_tls_url(const char *url);

/* Whether `url` may be used with `t` (NULL: no certificates): CS_EINVAL
 * naming `what` (e.g. "--listen") and the URL for tls+tcp:// without
 * certificates, and for tcp:// or ws:// with them (see the top). */
int cs_tls_check_url(const cs_tls *t, const char *url, const char *what, cs_error *err);

/* Dial `url` (borrowed) on `sock` with nng's `flags` (NNG_FLAG_NONBLOCK),
 * over TLS when it is a tls+tcp URL — `t` (borrowed; nng holds its own
 * reference to the configuration made from it) then gives the client
 * certificate and the CA the server must be signed by. *d (may be NULL)
 * is the dialer, owned by the socket. CS_EINVAL for what
 * cs_tls_check_url refuses, naming `what`, and for a URL nng refuses. */
int cs_tls_dial(nng_socket sock, const char *url, const cs_tls *t, int flags, nng_dialer *d,
                const char *what, cs_error *err);

/* Listen at `url` on `sock`, over TLS when it is a tls+tcp URL, requiring
 * each client's certificate signed by `t`'s CA. *l (may be NULL) is the
 * listener, owned by the socket. Errors as cs_tls_dial. */
int cs_tls_listen(nng_socket sock, const char *url, const cs_tls *t, nng_listener *l,
                  const char *what, cs_error *err);

/* How many connections listener `l` has refused at the TLS handshake
 * since it started, into *out: nng's listener statistic "auth", which
 * counts a client without a certificate, one whose certificate the CA did
 * not sign, and one that does not speak TLS at all (a tcp:// client at a
 * tls+tcp:// port) alike. nng tells the application nothing else about
 * them: a server that wants to log refusals reads this. CS_ENOTFOUND when
 * nng keeps no statistics for it (not built with them, or not a
 * listener), CS_ENOMEM. */
int cs_tls_refused(nng_listener l, uint64_t *out, cs_error *err);

/* The server-mode nng configuration of `t` (for nng's HTTP server: https),
 * requiring client certificates. On success *out holds one reference, the
 * caller's: nng_tls_config_free. CS_ENOMEM, or CS_EINVAL with nng's
 * reason. */
int cs_tls_server_config(const cs_tls *t, nng_tls_config **out, cs_error *err);

/* The PEM text of `t`'s certificate, key and CA, NUL-terminated
 * (borrowed: valid as long as `t`), for a TLS stack of the caller's own:
 * Raft's transport between replicas (server/rafttls.h), which is no nng
 * socket. */
void cs_tls_pem(const cs_tls *t, const char **cert, const char **key, const char **ca);

#endif
