/* client.h — a blocking client of cellstated, for cell-agent, cellctl, the
 * schedulers and the tests.
 *
 * One REQ socket (nng), dialled without blocking so that a client may start
 * before the server; nng re-dials and re-sends on its own when the server
 * restarts. Not thread-safe: one client per thread.
 */
#ifndef CS_CLIENT_H
#define CS_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "cellstate/error.h"
#include "proto/proto.h"
#include "proto/readmsg.h"

typedef struct cs_client cs_client;

/* Connect to `url`. Calls time out after `timeout_ms`. On success *out is
 * the caller's: cs_client_close. */
int cs_client_open(const char *url, uint32_t timeout_ms, cs_client **out, cs_error *err);
void cs_client_close(cs_client *c);
void cs_client_set_timeout(cs_client *c, uint32_t timeout_ms);

/* Send a request of `type` whose body is the msgpack object in
 * body[0..len), and wait for the reply. On CS_OK, *reply is the decoded
 * reply, valid until the next call or close. An error reply is returned as
 * its code, with "server: <message>" in `err`; a timeout is CS_EIO. */
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
