/* rafttls.h — Raft's transport between replicas over mutual TLS (issue 17
 * §1: "and Raft's transport").
 *
 * Why a transport of our own: libraft's libuv I/O (raft_uv) reads and
 * writes each peer connection itself, on a uv_stream_t that a
 * `struct raft_uv_transport` hands it, and libuv cannot wrap a stream in
 * TLS. Without this, whoever reached a replica's `raft` address could
 * append to the log. So this transport wraps another one (raft_uv_tcp,
 * through replica.c's nodelay wrapper) and, for each TCP stream the inner
 * transport hands over, gives raft one end of a socketpair as a uv_pipe_t
 * and relays, on the same loop, between the other end and the TCP stream
 * through an mbedTLS session. raft_uv never sees TCP or TLS.
 *
 * Who may speak Raft: both sides present the replica's certificate (the
 * same --tls-cert/--tls-key/--tls-ca as its nng sockets) and require the
 * peer's, signed by the cell's CA, with the subject CN `server` — the
 * replicas' role (tools/cellsched-certs.sh). An agent's, a scheduler's or
 * an operator's certificate, though signed by the same CA, is refused:
 * only replicas may append to the log. The host of a raft address is not
 * checked against the certificate's names: every replica holds a
 * CN=server certificate, so a name check would refuse no one that CN and
 * CA admit, and what a connection claims to be is checked instead (next).
 *
 * raft_uv_tcp's own preamble (protocol, the dialler's Raft id and address)
 * goes out in the clear before the handshake, and raft attributes every
 * message of the connection to the id it names. So the dialler repeats
 * them inside the session, first thing (the "hello"), and the acceptor
 * hands the connection to raft only when both agree: an attacker on the
 * path cannot re-label a replica's connection as another replica's.
 *
 * A connection that has not finished its handshake and hello within
 * CS_RAFTTLS_HANDSHAKE_MS is dropped, so that a client that connects and
 * says nothing holds nothing for long, and no more than 32 accepted
 * connections are set up at a time (more are refused at once). Every
 * refusal is logged on stderr (`cellstated: raft: refused ...`) with the
 * peer's address and reason, up to 10 lines a second (the rest counted).
 *
 * Threads: everything runs on the loop given at creation (libraft's).
 */
#ifndef CS_RAFTTLS_H
#define CS_RAFTTLS_H

#include <stdbool.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "cellstate/error.h"

/* The role a peer's certificate must name (subject CN) to speak Raft. */
#define CS_RAFTTLS_PEER_CN "server"

/* How long a connection may take from TCP to a verified peer. */
#define CS_RAFTTLS_HANDSHAKE_MS 10000

typedef struct cs_rafttls cs_rafttls;

/* The PEMs of this replica (borrowed; copied by cs_rafttls_new): its
 * certificate, its key and the cell's CA, NUL-terminated. */
typedef struct cs_rafttls_pem {
    const char *cert;
    const char *key;
    const char *ca;
} cs_rafttls_pem;

/* A TLS transport on `loop` over `inner` (borrowed: it must outlive the
 * transport, and its `data` field becomes this module's; the caller still
 * releases it, e.g. raft_uv_tcp_close, after the transport's close
 * callback). CS_EINVAL naming the PEM mbedTLS cannot parse, CS_ENOMEM,
 * CS_EIO when the random generator cannot be seeded. On success *out is
 * the caller's: cs_rafttls_free once the loop has run to its end. */
int cs_rafttls_new(uv_loop_t *loop, struct raft_uv_transport *inner, const cs_rafttls_pem *pem,
                   cs_rafttls **out, cs_error *err);

/* The transport to give raft_uv_init (borrowed: lives as long as `t`). */
struct raft_uv_transport *cs_rafttls_transport(cs_rafttls *t);

/* Hand no more incoming connections to raft: call on the loop just before
 * raft_close, because raft_uv asserts that no connection is accepted while
 * it closes, and a handshake may finish in that window. Connections being
 * set up are dropped when they complete. */
void cs_rafttls_quiesce(cs_rafttls *t);

/* Free `t` (NULL: nothing). Only after the transport's close callback has
 * fired and the loop has no more of its handles (uv_run returned). */
void cs_rafttls_free(cs_rafttls *t);

#endif
