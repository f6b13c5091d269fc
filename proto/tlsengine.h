/* tlsengine.h — cellsched's own TLS engine for nng, which tells who the peer is
 * (issue 17 §2).
 *
 * Why our own. Issue 17 §2 reads each request's role from the peer's
 * certificate (CN=ROLE[:NAME], OU=ROLE; tools/cellsched-certs.sh), but
 * Debian's nng 1.5.2 keeps the peer's certificate to itself: it answers
 * only NNG_OPT_TLS_VERIFIED (no NNG_OPT_TLS_PEER_CN). It does export its
 * engine interface (nng/supplemental/tls/engine.h): the TLS library behind
 * every tls+tcp:// socket and nng's https server is a table of functions a
 * program may replace. This module is that table, on the same mbedTLS 2.28
 * nng itself uses, and at the end of each handshake it keeps the peer's
 * identity (cs_tls_peer below) in the connection.
 *
 * Installing. nng registers its own engine when it initialises itself (the
 * first nng call), replacing whatever was registered before, and a TLS
 * configuration keeps the engine it was made with. So
 * cs_tls_engine_install initialises nng first, then registers ours; and
 * proto/tls.c calls it before it makes any configuration (cs_tls_load,
 * every dial, listen and https server): every TLS socket of a cellsched
 * program runs on this engine.
 *
 * Handing the identity out. The engine interface gives an engine one way to
 * answer the application: the `verified` callback, which nng calls when
 * someone reads NNG_OPT_TLS_VERIFIED of a pipe, synchronously, on the
 * reader's own thread, with the connection locked. cs_tls_peer sets a
 * thread-local pointer to the caller's cs_tls_peer, reads that option, and
 * the callback, finding the pointer set, copies the connection's identity
 * there; the pointer is cleared before cs_tls_peer returns. The pointer is
 * the one thread-local of the tree, and it is live only for that one call on
 * that one thread, so two threads asking about two pipes at once each get
 * their own peer.
 *
 * What is kept. The subject's CN and each OU of the peer's certificate, and
 * whether its chain verified against the configured CA (and CRL). A value
 * that does not fit (CS_TLS_PEER_NAME_MAX bytes with its NUL) or holds a NUL
 * byte is dropped rather than cut, and a subject with two CNs gets none: a
 * cut or ambiguous name could read as another role's or another machine's.
 *
 * Versions. The engine speaks TLS 1.2 only: what mbedTLS 2.28 does well
 * (its TLS 1.3 is a preview) and what every cellsched program speaks;
 * TLS 1.0 and 1.1 are deprecated (RFC 8996). A range asked of it is
 * clamped to 1.2, and one without 1.2 is NNG_ENOTSUP, as engine.h asks.
 */
#ifndef CS_TLSENGINE_H
#define CS_TLSENGINE_H

#include <stdbool.h>

#include <nng/nng.h>

#include "cellstate/error.h"

/* The engine's name, as nng_tls_engine_name() reports it once installed. */
#define CS_TLS_ENGINE_NAME "cellsched-mbedtls"

/* The bytes of a kept CN or OU, its NUL included, and how many OUs are kept
 * (the first ones, in the subject's order). */
#define CS_TLS_PEER_NAME_MAX 128
#define CS_TLS_PEER_OU_MAX 4

/* The identity of a TLS connection's peer, as its certificate gives it.
 * Only a struct tag: cs_tls_peer is the function below. */
struct cs_tls_peer {
    bool verified;                               /* the chain verified against the CA (and CRL) */
    char cn[CS_TLS_PEER_NAME_MAX];               /* subject CN, "" when absent */
    char ou[CS_TLS_PEER_OU_MAX][CS_TLS_PEER_NAME_MAX]; /* subject OUs in order */
    unsigned nou;
};

/* Make this engine nng's TLS engine for the rest of the process (and again
 * after nng_fini, which restores nng's). Idempotent and safe from several
 * threads; a configuration made before it keeps nng's engine. CS_EUNAVAIL
 * when nng has no TLS or refuses the engine's interface version. */
int cs_tls_engine_install(cs_error *err);

/* The identity of the peer at the other end of pipe `p` into *out (the
 * caller's; zeroed first):
 *   CS_OK         a TLS pipe of this engine; *out is its peer (all empty
 *                 and not verified when the peer sent no certificate, which
 *                 only a server that does not require one allows);
 *   CS_ENOTFOUND  not a TLS pipe (tcp://, ipc://, inproc://): no peer
 *                 certificate;
 *   CS_EUNAVAIL   the pipe is closed or was never open;
 *   CS_ESTATE     a TLS pipe of another engine (its configuration was made
 *                 before cs_tls_engine_install).
 * Blocks only on the connection's lock; may be called from any thread. */
int cs_tls_peer(nng_pipe p, struct cs_tls_peer *out, cs_error *err);

#endif
