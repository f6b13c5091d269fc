/* peers.c — connections per peer (--max-conns-per-peer).
 *
 * Each connection to the REP socket costs the server a pipe and, while a
 * message arrives on it, nng's buffer of that message (up to 4 × --max-msg,
 * which the bytes-in-flight bound cannot see: it counts a request only once
 * a worker has it). One host opening thousands of connections would take
 * that memory many times over. nng tells the socket of each pipe before it
 * is added (NNG_PIPE_EV_ADD_PRE), when a callback may still close it; the
 * pipes are counted there by the peer's IP address, and the one beyond the
 * bound is closed before it carries a message. In-process and IPC pipes
 * have no IP address and are not counted (the HTTP gateway's is one).
 *
 * The table is a flat array of the counted pipes, scanned on each
 * connection and each close: a cell has a few connections per machine
 * (10,000 machines: ~20,000 pipes, a scan of microseconds), and pipes come
 * and go at the rate agents start, not at the rate of requests.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/internal.h"

typedef struct peer_pipe {
    uint32_t pipe;    /* nng_pipe_id */
    uint8_t addr[17]; /* family byte, then the IPv4 (4) or IPv6 (16) address */
} peer_pipe;

struct srv_peers {
    pthread_mutex_t mu;
    uint32_t max;
    peer_pipe *pipes;
    size_t n, cap;
    uint64_t refused; /* pipes closed for the bound, since start */
};

/* The peer's address of pipe `p` as a key, or false when it has none that
 * is an IP address (inproc, ipc) or nng cannot say. */
static bool pipe_key(nng_pipe p, uint8_t key[17])
{
    nng_sockaddr sa;
    if (nng_pipe_get_addr(p, NNG_OPT_REMADDR, &sa) != 0)
        return false;
    memset(key, 0, 17);
    switch (sa.s_family) {
    case NNG_AF_INET:
        key[0] = 4;
        memcpy(key + 1, &sa.s_in.sa_addr, 4);
        return true;
    case NNG_AF_INET6:
        key[0] = 6;
        memcpy(key + 1, sa.s_in6.sa_addr, 16);
        return true;
    default:
        return false;
    }
}

/* A pipe is about to be added: counted, or closed when its peer already
 * has `max`. A pipe that cannot be counted for want of memory is closed
 * too: a bound that gives way under memory pressure bounds nothing. */
static void on_add(srv_peers *t, nng_pipe p)
{
    uint8_t key[17];
    if (!pipe_key(p, key))
        return;
    pthread_mutex_lock(&t->mu);
    size_t same = 0;
    for (size_t i = 0; i < t->n; i++)
        same += memcmp(t->pipes[i].addr, key, sizeof key) == 0;
    bool ok = same < t->max;
    if (ok && t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        peer_pipe *np = realloc(t->pipes, cap * sizeof *np);
        if (np == NULL) {
            ok = false;
        } else {
            t->pipes = np;
            t->cap = cap;
        }
    }
    if (ok) {
        t->pipes[t->n].pipe = (uint32_t)nng_pipe_id(p);
        memcpy(t->pipes[t->n].addr, key, sizeof key);
        t->n++;
    } else {
        t->refused++;
    }
    pthread_mutex_unlock(&t->mu);
    if (!ok)
        nng_pipe_close(p);
}

/* A pipe is gone: uncounted (a pipe closed in on_add was never counted). */
static void on_remove(srv_peers *t, nng_pipe p)
{
    uint32_t id = (uint32_t)nng_pipe_id(p);
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < t->n; i++)
        if (t->pipes[i].pipe == id) {
            t->pipes[i] = t->pipes[--t->n];
            break;
        }
    pthread_mutex_unlock(&t->mu);
}

static void pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    if (ev == NNG_PIPE_EV_ADD_PRE)
        on_add(arg, p);
    else if (ev == NNG_PIPE_EV_REM_POST)
        on_remove(arg, p);
}

int srv_peers_new(nng_socket sock, uint32_t max, srv_peers **out, cs_error *err)
{
    *out = NULL;
    if (max == 0)
        return CS_OK;
    srv_peers *t = calloc(1, sizeof *t);
    if (t == NULL)
        return cs_errorf(err, CS_ENOMEM, "server: out of memory");
    pthread_mutex_init(&t->mu, NULL);
    t->max = max;
    int rv;
    if ((rv = nng_pipe_notify(sock, NNG_PIPE_EV_ADD_PRE, pipe_cb, t)) != 0 ||
        (rv = nng_pipe_notify(sock, NNG_PIPE_EV_REM_POST, pipe_cb, t)) != 0) {
        nng_pipe_notify(sock, NNG_PIPE_EV_ADD_PRE, NULL, NULL);
        pthread_mutex_destroy(&t->mu);
        free(t);
        return cs_errorf(err, CS_EIO, "watching the connections: %s", nng_strerror(rv));
    }
    *out = t;
    return CS_OK;
}

uint64_t srv_peers_refused(srv_peers *t)
{
    if (t == NULL)
        return 0;
    pthread_mutex_lock(&t->mu);
    uint64_t n = t->refused;
    pthread_mutex_unlock(&t->mu);
    return n;
}

void srv_peers_free(srv_peers *t)
{
    if (t == NULL)
        return;
    free(t->pipes);
    pthread_mutex_destroy(&t->mu);
    free(t);
}
