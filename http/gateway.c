/* gateway.c — the HTTP API's transport (see gateway.h): nng's HTTP server,
 * the queue and threads that serve it, and blocking queries parked until
 * the server announces a version past theirs. The routes are api.c's.
 *
 * A request's life: nng calls on_request on one of its threads; the
 * request joins the queue (QUEUED) and nng's thread returns at once. A
 * gateway thread takes it (RUNNING), reads its body, serves it through its
 * own client and finishes nng's aio with the response. A blocking query
 * whose version has not come yet is PARKED instead, with a deadline; the
 * waiter thread puts it back in the queue when an announcement passes its
 * index or the deadline comes, and a thread serves it again.
 *
 * Locks: `mu` guards the queue, the parked list, `latest` and the flags. It
 * is never held while calling into nng, except nng_aio_defer in
 * on_request and nng_aio_finish in on_cancel (nng calls on_cancel
 * without its own locks held, and finishing an aio only queues its
 * callback), so that the order is always mu, then nng's.
 */
#include "http/gateway.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/supplemental/http/http.h>

#include "http/api.h"
#include "proto/client.h"
#include "proto/msg.h"
#include "proto/proto.h"
#include "proto/tls.h"

/* A client that sends its body slower than this is cut off: it holds one
 * of the few threads meanwhile. */
#define BODY_READ_TIMEOUT_MS 10000
#define CALL_TIMEOUT_DEFAULT_MS 10000u
/* An announcement may be lost (PUB drops what a slow subscriber cannot
 * take): a blocking query reads again this many times when the version it
 * was woken for is not there yet, then answers what it read. */
#define REREADS_MAX 3

typedef enum jstate { J_QUEUED, J_RUNNING, J_PARKED, J_CANCELLED } jstate;

typedef struct job {
    struct job *prev, *next; /* in the queue or the parked list */
    jstate state;
    struct cs_http *h;
    nng_aio *aio; /* nng's; finished exactly once */
    nng_http_req *req;
    nng_http_conn *conn;
    bool started;  /* parsed and body read */
    gw_req q;
    char *body;
    size_t body_len;
    bool blocking;
    uint64_t index;
    int64_t deadline_ms; /* CLOCK_MONOTONIC */
} job;

typedef struct jlist {
    job *head, *tail;
} jlist;

typedef struct gw_thread {
    struct cs_http *h;
    pthread_t t;
    bool started;
    cs_client *c;
    nng_aio *raio; /* reads bodies */
} gw_thread;

struct cs_http {
    cs_http_opts o;
    char *listen, *server_url, *pub_url;
    char url[128]; /* http://HOST:PORT, the bound port */
    nng_http_server *srv;
    nng_http_handler *handler;
    bool srv_started;
    nng_socket sub;
    bool sub_open;
    nng_aio *sub_aio;
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* the queue grew, or exiting */
    pthread_cond_t wait_cv; /* parked changed, latest grew, or stopping */
    jlist queue, parked;
    uint64_t latest; /* the newest version announced */
    bool stopping;   /* answer, do not park; new requests get 503 */
    bool exiting;    /* threads leave */
    gw_thread *threads;
    uint32_t nthreads;
    pthread_t waiter;
    bool waiter_started;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- lists (mu held) -------------------------------------------------------- */

static void jl_push(jlist *l, job *j)
{
    j->next = NULL;
    j->prev = l->tail;
    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
}

static void jl_remove(jlist *l, job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        l->head = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        l->tail = j->prev;
    j->prev = j->next = NULL;
}

static void job_free(job *j)
{
    gw_req_free(&j->q);
    free(j->body);
    free(j);
}

/* ---- responses -------------------------------------------------------------- */

/* Finish j with reply r (r's body is copied) and free j. `close`: the
 * connection closes after it (a body was left unread). */
static void respond(job *j, const gw_reply *r, bool close)
{
    nng_http_res *res;
    char ix[24];
    int rv = nng_http_res_alloc(&res);
    if (rv == 0) {
        rv = nng_http_res_set_status(res, r->status);
        if (rv == 0 && r->content_type)
            rv = nng_http_res_set_header(res, "Content-Type", r->content_type);
        if (rv == 0 && r->has_index) {
            snprintf(ix, sizeof ix, "%" PRIu64, r->index);
            rv = nng_http_res_set_header(res, "X-Cell-Index", ix);
        }
        if (rv == 0 && r->allow[0])
            rv = nng_http_res_set_header(res, "Allow", r->allow);
        if (rv == 0 && r->location)
            rv = nng_http_res_set_header(res, "Location", r->location);
        if (rv == 0 && close)
            rv = nng_http_res_set_header(res, "Connection", "close");
        if (rv == 0)
            rv = nng_http_res_copy_data(res, r->body ? r->body : "", r->len);
        if (rv != 0)
            nng_http_res_free(res);
    }
    nng_aio *aio = j->aio;
    job_free(j);
    if (rv != 0) {
        /* No memory for a response: nng closes the connection. */
        nng_aio_finish(aio, rv);
        return;
    }
    nng_aio_set_output(aio, 0, res);
    nng_aio_finish(aio, 0);
}

static void respond_error(job *j, uint16_t status, const char *message, bool close)
{
    gw_reply r = {0};
    gw_reply_error(&r, status, message);
    respond(j, &r, close);
    gw_reply_free(&r);
}

/* ---- nng's side ------------------------------------------------------------- */

/* nng cancels a request whose connection closes (the client left, or the
 * server stops): one still queued or parked is finished here; one a thread
 * is serving is finished by that thread. */
static void on_cancel(nng_aio *aio, void *arg, int rv)
{
    job *j = arg;
    cs_http *h = j->h;
    pthread_mutex_lock(&h->mu);
    bool mine = j->state == J_QUEUED || j->state == J_PARKED;
    if (j->state == J_QUEUED)
        jl_remove(&h->queue, j);
    else if (j->state == J_PARKED)
        jl_remove(&h->parked, j);
    if (mine)
        j->state = J_CANCELLED;
    pthread_mutex_unlock(&h->mu);
    if (mine) {
        job_free(j);
        nng_aio_finish(aio, rv);
    }
}

static void on_request(nng_aio *aio)
{
    nng_http_handler *hd = nng_aio_get_input(aio, 1);
    cs_http *h = nng_http_handler_get_data(hd);
    job *j = calloc(1, sizeof *j);
    if (j == NULL) {
        nng_aio_finish(aio, NNG_ENOMEM);
        return;
    }
    j->h = h;
    j->aio = aio;
    j->req = nng_aio_get_input(aio, 0);
    j->conn = nng_aio_get_input(aio, 2);
    pthread_mutex_lock(&h->mu);
    if (h->stopping) {
        pthread_mutex_unlock(&h->mu);
        respond_error(j, 503, "cellstated is stopping", true);
        return;
    }
    nng_aio_defer(aio, on_cancel, j);
    j->state = J_QUEUED;
    jl_push(&h->queue, j);
    pthread_cond_signal(&h->work_cv);
    pthread_mutex_unlock(&h->mu);
}

/* An announcement: {"version"} (protocol.md §9). */
static void on_announce(void *arg)
{
    cs_http *h = arg;
    int rv = nng_aio_result(h->sub_aio);
    if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
        return; /* the gateway stops */
    if (rv != 0) {
        nng_recv_aio(h->sub, h->sub_aio);
        return;
    }
    nng_msg *m = nng_aio_get_msg(h->sub_aio);
    msgpack_zone z;
    msgpack_zone_init(&z, 256);
    cs_msg env;
    cs_version_reply v;
    cs_error err;
    if (cs_msg_decode(nng_msg_body(m), nng_msg_len(m), &z, &env, &err) == CS_OK &&
        env.type == CS_MSG_VERSION && cs_version_reply_decode(&env.body, &v, NULL, &err) == CS_OK) {
        pthread_mutex_lock(&h->mu);
        if (v.version > h->latest) {
            h->latest = v.version;
            pthread_cond_signal(&h->wait_cv);
        }
        pthread_mutex_unlock(&h->mu);
    }
    msgpack_zone_destroy(&z);
    nng_msg_free(m);
    nng_recv_aio(h->sub, h->sub_aio);
}

/* ---- serving ------------------------------------------------------------------ */

/* Read j's body (Content-Length bytes, at most max_body). false when j was
 * answered here (413, 400) or the connection failed (j finished). */
static bool read_body(gw_thread *t, job *j)
{
    const char *te = nng_http_req_get_header(j->req, "Transfer-Encoding");
    const char *cl = nng_http_req_get_header(j->req, "Content-Length");
    char msg[160];
    if (te != NULL) {
        respond_error(j, 400, "a body needs a Content-Length (Transfer-Encoding is not "
                              "supported)", true);
        return false;
    }
    if (cl == NULL)
        return true;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(cl, &end, 10);
    if (cl[0] < '0' || cl[0] > '9' || *end != '\0' || errno != 0) {
        snprintf(msg, sizeof msg, "Content-Length '%.40s' is not a number of bytes", cl);
        respond_error(j, 400, msg, true);
        return false;
    }
    if (n > t->h->o.max_body) {
        snprintf(msg, sizeof msg, "the body of %llu bytes exceeds the limit of %zu bytes", n,
                 t->h->o.max_body);
        respond_error(j, 413, msg, true);
        return false;
    }
    if (n == 0)
        return true;
    if ((j->body = malloc(n + 1)) == NULL) {
        respond_error(j, 500, "out of memory for the body", true);
        return false;
    }
    nng_iov iov = {j->body, n};
    nng_aio_set_iov(t->raio, 1, &iov);
    nng_aio_set_timeout(t->raio, BODY_READ_TIMEOUT_MS);
    nng_http_conn_read_all(j->conn, t->raio);
    nng_aio_wait(t->raio);
    if (nng_aio_result(t->raio) != 0) {
        /* The client left or stalled: nothing to answer on. */
        nng_aio *aio = j->aio;
        job_free(j);
        nng_aio_finish(aio, nng_aio_result(t->raio));
        return false;
    }
    j->body[n] = '\0';
    j->body_len = n;
    return true;
}

/* The caller's page at q's exact path, if any. */
static const cs_http_page *page_of(const cs_http *h, const gw_req *q)
{
    for (size_t i = 0; i < h->o.npages; i++)
        if (strcmp(h->o.pages[i].path, q->path) == 0)
            return &h->o.pages[i];
    return NULL;
}

/* Page p's reply to a GET or HEAD (serve refuses other methods): its
 * redirect, its file or what its writer prints. */
static void serve_page(const cs_http_page *p, gw_reply *r)
{
    if (p->redirect != NULL) {
        if (asprintf(&r->body, "moved to %s\n", p->redirect) < 0) {
            r->body = NULL;
            gw_reply_error(r, 500, "out of memory");
            return;
        }
        r->status = 301;
        r->len = strlen(r->body);
        r->content_type = "text/plain; charset=utf-8";
        r->location = p->redirect;
        return;
    }
    if (p->file != NULL) {
        /* A copy: a reply's body is its own (gw_reply_free), and the
         * files are a few KiB. */
        if ((r->body = malloc(p->file->len + 1)) == NULL) {
            gw_reply_error(r, 500, "out of memory");
            return;
        }
        memcpy(r->body, p->file->data, p->file->len);
        r->status = 200;
        r->len = p->file->len;
        r->content_type = p->content_type;
        return;
    }
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cs_error err = {0};
    int rc = f ? p->write(p->arg, f, &err) : cs_errorf(&err, CS_ENOMEM, "out of memory");
    if (f != NULL && fclose(f) != 0 && rc == CS_OK)
        rc = cs_errorf(&err, CS_ENOMEM, "out of memory");
    if (rc != CS_OK) {
        free(text);
        gw_reply_error(r, 500, err.msg[0] ? err.msg : cs_strerror(rc));
        return;
    }
    r->status = 200;
    r->body = text;
    r->len = len;
    r->content_type = p->content_type;
}

/* The first time a thread takes j: its URI, its body, whether it blocks.
 * false when j was answered (or finished) here. */
static bool start(gw_thread *t, job *j)
{
    cs_error err = {0};
    uint32_t wait_ms = 0;
    j->started = true;
    j->q.method = nng_http_req_get_method(j->req);
    if (!read_body(t, j))
        return false;
    int rc = gw_req_parse(nng_http_req_get_uri(j->req), &j->q, &err);
    if (rc == CS_OK)
        rc = gw_blocking(&j->q, &j->blocking, &j->index, &wait_ms, &err);
    if (rc != CS_OK) {
        respond_error(j, gw_status_of(rc), err.msg, false);
        return false;
    }
    j->deadline_ms = now_ms() + wait_ms;
    j->q.content_type = nng_http_req_get_header(j->req, "Content-Type");
    j->q.body = j->body;
    j->q.body_len = j->body_len;
    return true;
}

/* Who the thread's client asks for while serving j (docs/http.md
 * "Authorization"): the bearer token of "Authorization: Bearer TOKEN",
 * which cellstated maps to its principal as it would a client's (a cell
 * with --auth-tokens); else, over https, where the handshake took only
 * clients with a certificate of the cell's CA, "reader" — nng's HTTP
 * server does not tell a handler which certificate, so nothing more is
 * granted without a token; else nobody in particular (a cell without
 * roles takes it, one with roles refuses it). The gateway's inproc
 * client is the one cellstated lets say whom it acts for (authz.c).
 * false when j was answered here (a malformed header, no memory). */
static bool credentials(gw_thread *t, job *j, gw_reply *r)
{
    const char *a = nng_http_req_get_header(j->req, "Authorization");
    cs_error err = {0};
    int rc;
    if (a != NULL) {
        if (strncasecmp(a, "Bearer ", 7) != 0 || a[7] == '\0') {
            gw_reply_error(r, 401, "the Authorization header is not \"Bearer TOKEN\"");
            return false;
        }
        rc = cs_client_set_as(t->c, NULL, &err);
        if (rc == CS_OK)
            rc = cs_client_set_token(t->c, a + 7, &err);
    } else {
        rc = cs_client_set_token(t->c, NULL, &err);
        if (rc == CS_OK)
            rc = cs_client_set_as(t->c, t->h->o.tls != NULL ? "reader" : NULL, &err);
    }
    if (rc != CS_OK) {
        gw_reply_error(r, 500, err.msg);
        return false;
    }
    return true;
}

/* Serve j (RUNNING, taken off the queue): answer it, or park it. */
static void serve(gw_thread *t, job *j)
{
    cs_http *h = t->h;
    if (!j->started && !start(t, j))
        return;
    const cs_http_page *p = page_of(h, &j->q);
    gw_reply r = {0};
    for (int reads = 0;; reads++) {
        gw_reply_free(&r);
        r = (gw_reply){0};
        if (p != NULL && strcmp(j->q.method, "GET") != 0 && strcmp(j->q.method, "HEAD") != 0) {
            /* A page is read only. */
            char msg[160];
            snprintf(msg, sizeof msg, "%s %.100s: the page takes GET (or HEAD)", j->q.method,
                     p->path);
            gw_reply_error(&r, 405, msg);
            snprintf(r.allow, sizeof r.allow, "GET, HEAD");
        } else if (p != NULL)
            serve_page(p, &r);
        else if (credentials(t, j, &r))
            gw_api_serve(t->c, &j->q, &r);
        if (!j->blocking || r.status != 200 || !r.has_index || r.index > j->index)
            break;
        pthread_mutex_lock(&h->mu);
        bool announced = h->latest > j->index;
        if (!announced && !h->stopping && now_ms() < j->deadline_ms) {
            /* Park: the waiter puts it back when the version comes. */
            j->state = J_PARKED;
            jl_push(&h->parked, j);
            pthread_cond_signal(&h->wait_cv);
            pthread_mutex_unlock(&h->mu);
            gw_reply_free(&r);
            return;
        }
        pthread_mutex_unlock(&h->mu);
        if (!announced || reads >= REREADS_MAX)
            break; /* the wait ran out: what the cell shows now */
    }
    respond(j, &r, false);
    gw_reply_free(&r);
}

static void *thread_main(void *arg)
{
    gw_thread *t = arg;
    cs_http *h = t->h;
    pthread_mutex_lock(&h->mu);
    for (;;) {
        while (h->queue.head == NULL && !h->exiting)
            pthread_cond_wait(&h->work_cv, &h->mu);
        if (h->queue.head == NULL)
            break;
        job *j = h->queue.head;
        jl_remove(&h->queue, j);
        j->state = J_RUNNING;
        pthread_mutex_unlock(&h->mu);
        serve(t, j);
        pthread_mutex_lock(&h->mu);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

/* The waiter: parked requests whose version came, or whose deadline did,
 * go back to the queue; sleeps until the next deadline or announcement. */
static void *waiter_main(void *arg)
{
    cs_http *h = arg;
    pthread_mutex_lock(&h->mu);
    while (!h->exiting) {
        int64_t now = now_ms(), next = INT64_MAX;
        for (job *j = h->parked.head, *nx; j != NULL; j = nx) {
            nx = j->next;
            if (h->stopping || h->latest > j->index || j->deadline_ms <= now) {
                jl_remove(&h->parked, j);
                j->state = J_QUEUED;
                jl_push(&h->queue, j);
                pthread_cond_signal(&h->work_cv);
            } else if (j->deadline_ms < next) {
                next = j->deadline_ms;
            }
        }
        if (next == INT64_MAX) {
            pthread_cond_wait(&h->wait_cv, &h->mu);
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            int64_t d = next - now;
            ts.tv_sec += d / 1000;
            ts.tv_nsec += (d % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&h->wait_cv, &h->mu, &ts);
        }
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

/* ---- start and stop --------------------------------------------------------- */

static int nng_fail(cs_error *err, int rv, const char *what, const char *where)
{
    return cs_errorf(err, CS_EIO, "%s %s: %s", what, where ? where : "", nng_strerror(rv));
}

/* `listen` after its http:// or https://, if any. */
static const char *host_port(const char *listen)
{
    return strncmp(listen, "http://", 7) == 0    ? listen + 7
           : strncmp(listen, "https://", 8) == 0 ? listen + 8
                                                 : listen;
}

int cs_http_check_listen(const char *listen, cs_error *err)
{
    const char *hp = host_port(listen);
    const char *colon = strrchr(hp, ':');
    bool ok = colon != NULL && colon > hp && colon[1] != '\0' &&
              strspn(colon + 1, "0123456789") == strlen(colon + 1) && strlen(colon + 1) <= 5 &&
              atoi(colon + 1) <= 65535 && strchr(hp, '/') == NULL;
    if (!ok)
        return cs_errorf(err, CS_EINVAL, "--http %s: not HOST:PORT (as 127.0.0.1:7680; port 0 "
                         "for any free port)", listen);
    return CS_OK;
}

/* "HOST:PORT" or "http(s)://HOST:PORT" into h->listen (http://..., or
 * https://... with certificates). */
static int listen_url(cs_http *h, const char *listen, bool tls, cs_error *err)
{
    CS_TRY(cs_http_check_listen(listen, err));
    if (asprintf(&h->listen, "%s://%s", tls ? "https" : "http", host_port(listen)) < 0) {
        h->listen = NULL;
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    }
    return CS_OK;
}

static int start_server(cs_http *h, cs_error *err)
{
    nng_url *u;
    int rv = nng_url_parse(&u, h->listen);
    if (rv != 0)
        return cs_errorf(err, CS_EINVAL, "--http %s: %s", h->o.listen, nng_strerror(rv));
    rv = nng_http_server_hold(&h->srv, u);
    nng_url_free(u);
    if (rv != 0) {
        h->srv = NULL;
        return nng_fail(err, rv, "HTTP server on", h->listen);
    }
    if (h->o.tls != NULL) {
        nng_tls_config *cfg;
        CS_TRY(cs_tls_server_config(h->o.tls, &cfg, err));
        rv = nng_http_server_set_tls(h->srv, cfg);
        nng_tls_config_free(cfg); /* the server holds its own reference */
        if (rv != 0)
            return nng_fail(err, rv, "HTTPS on", h->listen);
    }
    /* One handler for every path and method (the tree under ""): the
     * routes, 404 and 405 are api.c's, in JSON, not nng's HTML pages.
     * Bodies are read by the threads, so that a huge one is refused with
     * 413 before it is read (nng would answer 400). */
    if ((rv = nng_http_handler_alloc(&h->handler, "/", on_request)) != 0)
        return nng_fail(err, rv, "HTTP handler for", h->listen);
    if ((rv = nng_http_handler_set_method(h->handler, NULL)) != 0 ||
        (rv = nng_http_handler_set_tree(h->handler)) != 0 ||
        (rv = nng_http_handler_collect_body(h->handler, false, 0)) != 0 ||
        (rv = nng_http_handler_set_data(h->handler, h, NULL)) != 0 ||
        (rv = nng_http_server_add_handler(h->srv, h->handler)) != 0) {
        nng_http_handler_free(h->handler);
        h->handler = NULL;
        return nng_fail(err, rv, "HTTP handler for", h->listen);
    }
    h->handler = NULL; /* the server's now */
    if ((rv = nng_http_server_start(h->srv)) != 0)
        return nng_fail(err, rv, "HTTP API: listening on", host_port(h->listen));
    h->srv_started = true;
    nng_sockaddr sa;
    char host[64];
    const char *hp = host_port(h->listen);
    snprintf(host, sizeof host, "%.*s", (int)(strrchr(hp, ':') - hp), hp);
    int port = 0;
    if (nng_http_server_get_addr(h->srv, &sa) == 0 &&
        (sa.s_family == NNG_AF_INET || sa.s_family == NNG_AF_INET6))
        port = sa.s_family == NNG_AF_INET ? ntohs(sa.s_in.sa_port) : ntohs(sa.s_in6.sa_port);
    snprintf(h->url, sizeof h->url, "%s://%s:%d", h->o.tls != NULL ? "https" : "http", host,
             port);
    return CS_OK;
}

static int start_sub(cs_http *h, cs_error *err)
{
    int rv;
    if ((rv = nng_sub0_open(&h->sub)) != 0)
        return nng_fail(err, rv, "opening SUB socket for", h->pub_url);
    h->sub_open = true;
    if ((rv = nng_socket_set(h->sub, NNG_OPT_SUB_SUBSCRIBE, "", 0)) != 0 ||
        (rv = nng_aio_alloc(&h->sub_aio, on_announce, h)) != 0 ||
        (rv = nng_dial(h->sub, h->pub_url, NULL, 0)) != 0)
        return nng_fail(err, rv, "subscribing to", h->pub_url);
    nng_recv_aio(h->sub, h->sub_aio);
    return CS_OK;
}

static int start_threads(cs_http *h, cs_error *err)
{
    h->threads = calloc(h->o.threads, sizeof *h->threads);
    if (h->threads == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    h->nthreads = h->o.threads;
    for (uint32_t i = 0; i < h->nthreads; i++) {
        gw_thread *t = &h->threads[i];
        t->h = h;
        CS_TRY(cs_client_open(h->server_url, h->o.timeout_ms, &t->c, err));
        int rv = nng_aio_alloc(&t->raio, NULL, NULL);
        if (rv != 0)
            return nng_fail(err, rv, "HTTP API", "thread");
        if (pthread_create(&t->t, NULL, thread_main, t) != 0)
            return cs_errorf(err, CS_ENOMEM, "HTTP API: cannot start a thread");
        t->started = true;
    }
    if (pthread_create(&h->waiter, NULL, waiter_main, h) != 0)
        return cs_errorf(err, CS_ENOMEM, "HTTP API: cannot start a thread");
    h->waiter_started = true;
    return CS_OK;
}

int cs_http_start(const cs_http_opts *o, cs_http **out, cs_error *err)
{
    if (o->listen == NULL || o->server_url == NULL || o->pub_url == NULL)
        return cs_errorf(err, CS_EINVAL, "HTTP API: a listen address and the server's "
                         "in-process URLs are needed");
    cs_http *h = calloc(1, sizeof *h);
    if (h == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    h->o = *o;
    if (h->o.threads == 0)
        h->o.threads = CS_HTTP_THREADS_DEFAULT;
    if (h->o.max_body == 0)
        h->o.max_body = CS_HTTP_MAX_BODY_DEFAULT;
    if (h->o.timeout_ms == 0)
        h->o.timeout_ms = CALL_TIMEOUT_DEFAULT_MS;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->work_cv, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->wait_cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc = listen_url(h, o->listen, o->tls != NULL, err);
    if (rc == CS_OK && ((h->server_url = strdup(o->server_url)) == NULL ||
                        (h->pub_url = strdup(o->pub_url)) == NULL))
        rc = cs_errorf(err, CS_ENOMEM, "out of memory");
    h->o.listen = h->listen;
    h->o.server_url = h->server_url;
    h->o.pub_url = h->pub_url;
    if (rc == CS_OK)
        rc = start_sub(h, err);
    if (rc == CS_OK)
        rc = start_threads(h, err);
    if (rc == CS_OK)
        rc = start_server(h, err);
    if (rc != CS_OK) {
        cs_http_stop(h);
        return rc;
    }
    *out = h;
    return CS_OK;
}

int cs_http_url(cs_http *h, char *out, size_t size, cs_error *err)
{
    int n = snprintf(out, size, "%s/v1/", h->url);
    if (n < 0 || (size_t)n >= size)
        return cs_errorf(err, CS_EINVAL, "the HTTP API's URL %s is too long", h->url);
    return CS_OK;
}

void cs_http_stop(cs_http *h)
{
    if (h == NULL)
        return;
    /* Waiting requests are answered now; new ones get 503. */
    pthread_mutex_lock(&h->mu);
    h->stopping = true;
    pthread_cond_broadcast(&h->wait_cv);
    pthread_mutex_unlock(&h->mu);
    /* nng closes every connection and waits until each is done: queued
     * requests are cancelled (on_cancel), running ones finish on their
     * threads, which are still there. */
    if (h->srv != NULL) {
        if (h->srv_started)
            nng_http_server_stop(h->srv);
        nng_http_server_release(h->srv);
    }
    pthread_mutex_lock(&h->mu);
    h->exiting = true;
    pthread_cond_broadcast(&h->work_cv);
    pthread_cond_broadcast(&h->wait_cv);
    pthread_mutex_unlock(&h->mu);
    for (uint32_t i = 0; i < h->nthreads; i++) {
        gw_thread *t = &h->threads[i];
        if (t->started)
            pthread_join(t->t, NULL);
        if (t->raio != NULL)
            nng_aio_free(t->raio);
        cs_client_close(t->c);
    }
    if (h->waiter_started)
        pthread_join(h->waiter, NULL);
    if (h->sub_aio != NULL)
        nng_aio_stop(h->sub_aio);
    if (h->sub_open)
        nng_close(h->sub);
    if (h->sub_aio != NULL)
        nng_aio_free(h->sub_aio);
    free(h->threads);
    pthread_cond_destroy(&h->work_cv);
    pthread_cond_destroy(&h->wait_cv);
    pthread_mutex_destroy(&h->mu);
    free(h->listen);
    free(h->server_url);
    free(h->pub_url);
    free(h);
}
