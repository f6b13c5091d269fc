/* gateway.h — cellstated's HTTP API: JSON over HTTP under /v1/ (docs/http.md).
 *
 * The gateway is a CLIENT of cellstated's own protocol, not a second path
 * into the store: every request becomes the same msgpack requests cellctl
 * sends (proto/), over an in-process nng connection to the server's REP
 * socket (an extra inproc:// listener, server.h local_url), and every reply
 * is rendered by the JSON layer cellctl prints with (spec/celljson.h). Why:
 *   - one path in: what the API may do is exactly what the protocol allows,
 *     checked by the same code (when issue 17's roles land, they apply here
 *     unchanged);
 *   - a follower's API works too: its writes go to the leader through the
 *     server's own forwarding (server/forward.c), reads are the follower's;
 *   - this module depends on proto/ and spec/ only, never on server
 *     internals, so that it can be tested, and could be run, apart.
 *
 * Blocking queries (Nomad's): a GET with ?index=N answers once the cell
 * version passes N, or after ?wait (default CS_HTTP_WAIT_DEFAULT_MS, at
 * most CS_HTTP_WAIT_MAX_MS). The gateway learns each new version from the
 * server's announcements (a SUB socket on the server's in-process PUB
 * listener, server.h local_pub_url): a waiting request holds no thread and
 * nothing polls. Every GET reply carries the version it shows in
 * X-Cell-Index, so that a client chains them.
 *
 * Threads: nng's HTTP server hands each request to the gateway's queue; a
 * few threads of the gateway's own (each with its own client: cs_client is
 * one per thread) serve the queue with blocking calls, so that no call to
 * the server ever blocks one of nng's own threads, on which the server
 * itself runs. One more thread moves waiting requests back to the queue
 * when their version came or their wait ran out.
 */
#ifndef CS_HTTP_GATEWAY_H
#define CS_HTTP_GATEWAY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cellstate/error.h"

/* A blocking query without ?wait waits this long; a longer ?wait is cut to
 * the maximum (a proxy between client and server may close an idle
 * request sooner: ask with a shorter wait). */
#define CS_HTTP_WAIT_DEFAULT_MS 60000u
#define CS_HTTP_WAIT_MAX_MS 300000u
/* Request bodies above this are refused with 413 before they are read:
 * a job spec is a few KiB (cs_jobspec_parse's own bound is 4 MiB). */
#define CS_HTTP_MAX_BODY_DEFAULT (1u << 20)
#define CS_HTTP_THREADS_DEFAULT 8u

/* Bytes fixed for the life of the process: a file embedded in the binary
 * at build time (http/ui.h). */
typedef struct cs_http_file {
    const unsigned char *data;
    size_t len;
} cs_http_file;

/* A page outside /v1/ served from the caller's code (the lead's /metrics,
 * the dashboard's files): GET or HEAD of `path` (exact; any other method is
 * a 405) answers one of
 *   - `redirect` set: 301 Moved Permanently to that path ("/ui" -> "/ui/",
 *     so that the page's relative URLs resolve under /ui/);
 *   - `file` set: its bytes, as `content_type`;
 *   - else what `write` printed into `out`, as `content_type`, or 500 with
 *     err's message when it returns an error. Runs on a gateway thread, any
 *     number at once: `write` must be thread-safe.
 * Fill it with designated initialisers (.path = ...): the fields unused
 * stay NULL. */
typedef struct cs_http_page {
    const char *path;         /* "/metrics" */
    const char *content_type; /* "text/plain; version=0.0.4" */
    int (*write)(void *arg, FILE *out, cs_error *err);
    void *arg;
    const cs_http_file *file; /* borrowed: must outlive the gateway */
    const char *redirect;     /* "/ui/" */
} cs_http_page;

typedef struct cs_http_opts {
    /* Where to listen: "HOST:PORT" or "http://HOST:PORT" (port 0: any). */
    const char *listen;
    const char *server_url; /* cellstated's in-process REP (server.h local_url) */
    const char *pub_url;    /* its in-process announcements (server.h local_pub_url) */
    uint32_t threads;       /* 0: CS_HTTP_THREADS_DEFAULT */
    size_t max_body;        /* 0: CS_HTTP_MAX_BODY_DEFAULT */
    uint32_t timeout_ms;    /* per call to the server; 0: 10 s */
    const cs_http_page *pages; /* borrowed: must outlive the gateway */
    size_t npages;
    /* Serve https, requiring each client's certificate signed by the
     * cell's CA (proto/tls.h), or NULL for http. Borrowed by
     * cs_http_start only: the server keeps its own configuration. */
    const struct cs_tls *tls;
} cs_http_opts;

typedef struct cs_http cs_http;

/* CS_OK when `listen` is "HOST:PORT", "http://HOST:PORT" or
 * "https://HOST:PORT" (port 0..65535; the scheme is the gateway's to
 * choose: https with `tls`, else http);
 * else CS_EINVAL naming it, so that a command line can be refused before
 * anything starts. Borrowed. */
int cs_http_check_listen(const char *listen, cs_error *err);

/* Start serving. `o` is copied (its strings too; `pages` is borrowed). On
 * success *out is the caller's: cs_http_stop. CS_EINVAL for a listen
 * address that is not HOST:PORT, CS_EIO naming the address when it cannot
 * listen (in use). */
int cs_http_start(const cs_http_opts *o, cs_http **out, cs_error *err);

/* The API's base URL, "http://HOST:PORT/v1/" (https:// with `tls`) with
 * the bound port, into
 * out[0..size); CS_EINVAL when it does not fit. */
int cs_http_url(cs_http *h, char *out, size_t size, cs_error *err);

/* Stop: requests in progress and waiting ones are answered (waiting ones
 * at once, with what the cell shows), then the listener and connections
 * close and the threads are joined. Call before stopping the server the
 * gateway is a client of. Frees `h`; NULL is a no-op. */
void cs_http_stop(cs_http *h);

#endif
