/* cellbench_http.h — the smallest HTTP/1.1 client `cellbench etcd` needs to
 * drive etcd's v3 JSON gateway: POST over one keep-alive TCP connection to
 * 127.0.0.1, a reply read whole (Content-Length or chunked), and base64 for
 * the gateway's byte fields. Why not libcurl or gRPC: neither is a
 * dependency of cellsched (Debian has no gRPC for C), and a client this
 * small costs little CPU, which the benchmark reports to show that the
 * client is not what it measures.
 */
#ifndef CB_HTTP_H
#define CB_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "cellstate/error.h"

typedef struct cb_http {
    int fd;    /* -1 when closed */
    int port;  /* on 127.0.0.1 */
    char *buf; /* what was read and not yet consumed, then the reply's body */
    size_t cap, len;
} cb_http;

/* Connect to 127.0.0.1:port (no other host: the benchmark never leaves the
 * machine). On success `h` is the caller's: cb_http_close. */
int cb_http_open(cb_http *h, int port, cs_error *err);
void cb_http_close(cb_http *h);

/* POST `body` (len bytes, Content-Type application/json) to `path` and read
 * the whole reply: its status into *status, its body into *out (len
 * *out_len, NUL-terminated; borrowed from h until the next call). CS_EIO
 * when the connection fails or closes, CS_EPROTO for a reply it cannot
 * read. */
int cb_http_post(cb_http *h, const char *path, const char *body, size_t len, int *status,
                 const char **out, size_t *out_len, cs_error *err);

/* The same with GET and no body. */
int cb_http_get(cb_http *h, const char *path, int *status, const char **out, size_t *out_len,
                cs_error *err);

/* Base64 (RFC 4648, with padding) of n bytes into out, which must hold
 * 4 * ((n + 2) / 3) + 1 bytes; returns the length written (without the
 * NUL). */
size_t cb_base64(const void *in, size_t n, char *out);

#endif
