/* client.h — a blocking client of cellstated, for cellctl, the schedulers,
 * cellbench and the tests.
 *
 * It takes the cell's servers as a list (servers.h: one URL, or the
 * comma-separated replicas of a replicated cell) and dials each without
 * blocking, so that a client may start before its servers; nng re-dials a
 * server that restarts. A call goes to one server, first the one that
 * answered the last call, and moves to the next when the request cannot
 * be sent (no connection within 250 ms while other servers remain: a dead
 * server), is not answered (the connection closed, or a timeout: a
 * SIGSTOPped replica keeps its connection open), or is answered
 * CS_ENOTLEADER or CS_EUNAVAIL (a replica without a leader, or stopping;
 * then after a short pause) — at most once round the list. Why one socket
 * per server: client.c.
 *
 * Timeouts are per call: `timeout_ms` bounds the whole call, every attempt
 * included, so that a user's --timeout still bounds the wait. Each server
 * still to ask gets an equal share of what is left (the last all of it):
 * with one server the call waits as long as it always did; with three, a
 * stopped first server costs a third. A request is sent again only to
 * another server, with the same bytes (see client.c for why that is safe
 * for a commit). Not thread-safe: one client per thread.
 */
#ifndef CS_CLIENT_H
#define CS_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "cellstate/error.h"
#include "proto/proto.h"
#include "proto/readmsg.h"
#include "proto/tls.h"

typedef struct cs_client cs_client;

/* Connect to the servers of `urls` (borrowed: one URL or a comma-separated
 * list, checked whole first; cs_servers_parse). A call ends within
 * `timeout_ms`. CS_EINVAL naming the entry that is not a URL or that nng
 * cannot dial. On success *out is the caller's: cs_client_close. */
int cs_client_open(const char *urls, uint32_t timeout_ms, cs_client **out, cs_error *err);
/* The same over mutual TLS: `tls` (borrowed for the call only: each
 * dialer keeps its own configuration; NULL for none) gives the client's
 * certificate and the cell's CA. A tls+tcp:// URL without `tls`, or a
 * tcp:// one with it, is CS_EINVAL naming the URL (proto/tls.h). */
int cs_client_open_tls(const char *urls, const cs_tls *tls, uint32_t timeout_ms, cs_client **out,
                       cs_error *err);
void cs_client_close(cs_client *c);
/* The token every later request carries (docs/security.md "Roles": a
 * cell's --auth-tokens), copied; NULL: none. CS_ENOMEM. */
int cs_client_set_token(cs_client *c, const char *token, cs_error *err);
/* The principal (proto/principal.h text, copied; NULL: none) every later
 * request says it acts for, as {"as": principal}: honoured only from a
 * client the server knows as a replica or its own in-process HTTP
 * gateway; a token set too is not sent. CS_ENOMEM. */
int cs_client_set_as(cs_client *c, const char *principal, cs_error *err);
/* The bound of each later call, all its attempts included. */
void cs_client_set_timeout(cs_client *c, uint32_t timeout_ms);

/* Send a request of `type` whose body is the msgpack object in
 * body[0..len), and wait for the reply. On CS_OK, *reply is the decoded
 * reply, valid until the next call or close. An error reply is returned as
 * its code, with "server: <message>" in `err`; a timeout is CS_EIO. With
 * several servers, a call that none answered (or that each answered
 * CS_ENOTLEADER or CS_EUNAVAIL) returns the last attempt's error, its
 * message starting "tried N of M servers; the last: ". */
int cs_client_call(cs_client *c, uint32_t type, const void *body, size_t len, cs_msg *reply,
                   cs_error *err);

/* The same, for a body packed into `body` (an sbuffer the caller owns). */
int cs_client_callb(cs_client *c, uint32_t type, const msgpack_sbuffer *body, cs_msg *reply,
                    cs_error *err);

/* The same, without decoding the reply into objects (for replies too
 * large to unpack into a tree: sync). On CS_OK, reply_body[0..*reply_len)
 * is the reply's body, the rest of the message after the envelope's
 * header, valid until the next call or close. It is not checked beyond
 * its first byte: read it with a cs_mp_cur, whose readers refuse what is
 * malformed or truncated as they meet it. Errors as cs_client_call; a
 * malformed envelope is CS_EPROTO. */
int cs_client_call_raw(cs_client *c, uint32_t type, const void *body, size_t len,
                       const void **reply_body, size_t *reply_len, cs_error *err);

/* job.surge: set job `job`'s surge, the extra task slots of a rolling
 * update (docs/protocol.md §5.18). On CS_OK *version (may be NULL) is the
 * cell version the reply carries. Errors: those of cs_client_call (the
 * server's CS_EINVAL for a batch job, CS_ESTATE for a killed one). */
int cs_client_job_surge(cs_client *c, cs_id job, uint32_t surge, uint64_t *version,
                        cs_error *err);

/* stats: the empty request (cs_empty_req_encode) and its reply decoded
 * into *out (cs_stats_reply_decode; its lists in `a`, the caller's).
 * Errors: those of cs_client_call, and the decoder's, wrapped as "reply
 * to stats". */
int cs_client_stats(cs_client *c, cs_stats_reply *out, cs_arena *a, cs_error *err);

#endif
