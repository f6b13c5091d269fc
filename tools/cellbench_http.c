/* cellbench_http.c — a keep-alive HTTP/1.1 client for 127.0.0.1 (see
 * cellbench_http.h). */
#include "tools/cellbench_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* A reply's head beyond this is not etcd's: refuse it. */
#define HEAD_MAX 16384

int cb_http_open(cb_http *h, int port, cs_error *err)
{
    *h = (cb_http){.fd = -1, .port = port};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return cs_errorf(err, CS_EIO, "socket: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        int e = errno;
        close(fd);
        return cs_errorf(err, CS_EIO, "connecting to 127.0.0.1:%d: %s", port, strerror(e));
    }
    /* Each request is one write: Nagle would hold it for the last ACK. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    h->fd = fd;
    return CS_OK;
}

void cb_http_close(cb_http *h)
{
    if (h->fd >= 0)
        close(h->fd);
    free(h->buf);
    *h = (cb_http){.fd = -1};
}

static int write_all(int fd, const char *p, size_t n, cs_error *err)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return cs_errorf(err, CS_EIO, "sending: %s", w < 0 ? strerror(errno) : "closed");
        p += w;
        n -= (size_t)w;
    }
    return CS_OK;
}

/* Read more into h->buf (at h->len), growing it. */
static int fill(cb_http *h, cs_error *err)
{
    if (h->cap - h->len < 4096) {
        size_t cap = h->cap ? h->cap * 2 : 65536;
        char *b = realloc(h->buf, cap);
        if (b == NULL)
            return cs_errorf(err, CS_ENOMEM, "out of memory");
        h->buf = b;
        h->cap = cap;
    }
    for (;;) {
        ssize_t r = read(h->fd, h->buf + h->len, h->cap - h->len - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return cs_errorf(err, CS_EIO, "reading the reply from 127.0.0.1:%d: %s", h->port,
                             r < 0 ? strerror(errno) : "connection closed");
        h->len += (size_t)r;
        h->buf[h->len] = '\0';
        return CS_OK;
    }
}

/* The value of header `name` in the head [head, end), or NULL. */
static const char *header(const char *head, const char *end, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p != NULL && p < end; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (line + n + 1 < end && strncasecmp(line, name, n) == 0 && line[n] == ':') {
            line += n + 1;
            while (*line == ' ')
                line++;
            return line;
        }
    }
    return NULL;
}

/* Decode a chunked body that starts at h->buf + at, in place, reading
 * until the last chunk; its length into *out_len. The body then starts at
 * h->buf + at. */
static int read_chunked(cb_http *h, size_t at, size_t *out_len, cs_error *err)
{
    size_t w = at, r = at;
    for (;;) {
        char *eol;
        while ((eol = strstr(h->buf + r, "\r\n")) == NULL) {
            int rc = fill(h, err);
            if (rc != CS_OK)
                return rc;
        }
        char *end;
        unsigned long size = strtoul(h->buf + r, &end, 16);
        if (end == h->buf + r)
            return cs_errorf(err, CS_EPROTO, "a chunk without a size");
        size_t data = (size_t)(eol - h->buf) + 2;
        while (h->len < data + size + 2) {
            int rc = fill(h, err);
            if (rc != CS_OK)
                return rc;
        }
        if (size == 0) {
            /* No trailers from etcd: the last chunk's CRLF ends the body. */
            *out_len = w - at;
            h->len = w; /* nothing after: one request at a time */
            h->buf[w] = '\0';
            return CS_OK;
        }
        memmove(h->buf + w, h->buf + data, size);
        w += size;
        r = data + size + 2;
    }
}

static int request(cb_http *h, const char *method, const char *path, const char *body, size_t len,
                   int *status, const char **out, size_t *out_len, cs_error *err)
{
    char head[512];
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     method, path, h->port, len);
    if (n < 0 || (size_t)n >= sizeof head)
        return cs_errorf(err, CS_EINVAL, "path too long");
    int rc = write_all(h->fd, head, (size_t)n, err);
    if (rc == CS_OK && len > 0)
        rc = write_all(h->fd, body, len, err);
    if (rc != CS_OK)
        return rc;

    h->len = 0;
    if (h->buf != NULL)
        h->buf[0] = '\0'; /* the last reply is not this one's head */
    char *end = NULL;
    while (h->buf == NULL || (end = strstr(h->buf, "\r\n\r\n")) == NULL) {
        if (h->len > HEAD_MAX)
            return cs_errorf(err, CS_EPROTO, "a reply head of more than %d bytes", HEAD_MAX);
        if ((rc = fill(h, err)) != CS_OK)
            return rc;
    }
    if (sscanf(h->buf, "HTTP/1.%*d %d", status) != 1)
        return cs_errorf(err, CS_EPROTO, "not an HTTP reply: %.40s", h->buf);
    size_t at = (size_t)(end - h->buf) + 4;
    const char *cl = header(h->buf, end, "Content-Length");
    const char *te = header(h->buf, end, "Transfer-Encoding");
    if (te != NULL && strncasecmp(te, "chunked", 7) == 0) {
        if ((rc = read_chunked(h, at, out_len, err)) != CS_OK)
            return rc;
    } else if (cl != NULL) {
        size_t want = strtoul(cl, NULL, 10);
        while (h->len < at + want)
            if ((rc = fill(h, err)) != CS_OK)
                return rc;
        *out_len = want;
        h->buf[at + want] = '\0';
    } else
        return cs_errorf(err, CS_EPROTO, "a reply with neither Content-Length nor chunks");
    *out = h->buf + at;
    return CS_OK;
}

int cb_http_post(cb_http *h, const char *path, const char *body, size_t len, int *status,
                 const char **out, size_t *out_len, cs_error *err)
{
    return request(h, "POST", path, body, len, status, out, out_len, err);
}

int cb_http_get(cb_http *h, const char *path, int *status, const char **out, size_t *out_len,
                cs_error *err)
{
    return request(h, "GET", path, NULL, 0, status, out, out_len, err);
}

size_t cb_base64(const void *in, size_t n, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = in;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        out[o++] = abc[v >> 18 & 63];
        out[o++] = abc[v >> 12 & 63];
        out[o++] = i + 1 < n ? abc[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? abc[v & 63] : '=';
    }
    out[o] = '\0';
    return o;
}
