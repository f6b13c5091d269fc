/* api.h — the /v1/ routes of the HTTP gateway (gateway.h), apart from its
 * transport: a request already read (method, URI, Content-Type, body) in,
 * a status, headers and a JSON body out, through one client of cellstated.
 * The transport (gateway.c) owns sockets, threads and blocking queries;
 * this file owns what each route means (docs/http.md lists them).
 * Only gateway.c includes it.
 */
#ifndef CS_HTTP_API_H
#define CS_HTTP_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cellstate/error.h"
#include "proto/client.h"

/* A query parameter, percent-decoded. */
typedef struct gw_param {
    char *key, *value;
} gw_param;

#define GW_SEGS_MAX 8
#define GW_PARAMS_MAX 16

/* A request as the routes see it. The strings are owned by the request
 * (gw_req_parse; gw_req_free) except method, content_type and body, which
 * are borrowed from nng's request for the duration of the call. */
typedef struct gw_req {
    char *path;               /* as sent, before '?': for messages */
    const char *method;       /* HEAD is served as GET (nng drops the body) */
    char *seg[GW_SEGS_MAX];   /* the path's segments, each percent-decoded */
    size_t nseg;
    gw_param params[GW_PARAMS_MAX];
    size_t nparams;
    const char *content_type; /* NULL when absent */
    const char *body;
    size_t body_len;
} gw_req;

/* A reply. `body` is the reply's (malloc'd, freed by gw_reply_free). */
typedef struct gw_reply {
    uint16_t status;
    char *body;
    size_t len;
    const char *content_type; /* static */
    bool has_index;           /* X-Cell-Index: every successful GET */
    uint64_t index;
    char allow[48];           /* 405: the methods the path takes */
    const char *location;     /* 301: where to (static or borrowed) */
} gw_reply;

/* Split `uri` (path and query as the client sent them, borrowed) into q's
 * segments and parameters. CS_EINVAL naming the problem: a bad %-escape, a
 * NUL in an escape, too many segments or parameters. On error `q` holds
 * nothing to free beyond gw_req_free. */
int gw_req_parse(const char *uri, gw_req *q, cs_error *err);
void gw_req_free(gw_req *q);
/* The value of parameter `key`, NULL when absent (borrowed from q). */
const char *gw_req_param(const gw_req *q, const char *key);

/* Whether q is a blocking query (a GET with ?index): then *index and
 * *wait_ms (?wait, default and cap from gateway.h) are set. CS_EINVAL
 * naming the parameter when index or wait is malformed, or wait comes
 * without index. */
int gw_blocking(const gw_req *q, bool *blocking, uint64_t *index, uint32_t *wait_ms,
                cs_error *err);

/* Serve q under /v1/ with client `c` (the calling thread's), filling *r. */
void gw_api_serve(cs_client *c, const gw_req *q, gw_reply *r);

/* An error reply {"code": status, "error": token, "message": message}. */
void gw_reply_error(gw_reply *r, uint16_t status, const char *message);
/* The HTTP status of a cs error code (400, 404, 409, 413, 503, 500). */
uint16_t gw_status_of(int code);
void gw_reply_free(gw_reply *r);

#endif
