/* servers.h — the cellstated servers a client is given: one URL, or the
 * comma-separated list of a replicated cell's members.
 *
 * Why a list: a replicated cell has 1, 3 or 5 replicas (at most 7) and any
 * of them answers any request — a follower serves reads itself and forwards
 * writes to the leader — so a client is told where the cell is, not which
 * replica leads, and moves to another replica when one dies or has no
 * leader (client.h). `--server` and $CELL_SERVER take the list everywhere:
 *
 *     tcp://10.0.0.1:7600,tcp://10.0.0.2:7600,tcp://10.0.0.3:7600
 *
 * A single URL is a list of one and behaves as it always did. The whole
 * list is checked before anything is dialled, so that a typo in the third
 * entry is named at start, not on the day the first two are down. An
 * entry cannot hold a comma (an ipc:// path with one cannot be listed).
 */
#ifndef CS_SERVERS_H
#define CS_SERVERS_H

#include <stddef.h>

#include <nng/nng.h>

#include "cellstate/error.h"
#include "proto/tls.h"

/* A cell has at most 7 members (server/replica.h), each with a URL of at
 * most 127 bytes (its `listen`, CS_MEMBER_LISTEN_MAX). */
#define CS_SERVERS_MAX 7
#define CS_SERVER_URL_MAX 128

typedef struct cs_servers {
    size_t n; /* 1 .. CS_SERVERS_MAX */
    char url[CS_SERVERS_MAX][CS_SERVER_URL_MAX];
} cs_servers;

/* Split `list` (borrowed) at its commas into *out (copied; spaces around an
 * entry are dropped). CS_EINVAL naming the entry (its position and text)
 * for: an empty entry, one longer than CS_SERVER_URL_MAX - 1, one that is
 * not scheme://address, a tcp, ws or tls address without a numeric port,
 * the same URL twice, more than CS_SERVERS_MAX entries. What only nng can
 * judge (a scheme it has no transport for, a host it cannot resolve) is
 * named by cs_servers_dial and cs_client_open. */
int cs_servers_parse(const char *list, cs_servers *out, cs_error *err);

/* The servers a program is given: `flag` (its --server; borrowed, may be
 * NULL) if set, else $CELL_SERVER, else CS_DEFAULT_URL (cs_server_url),
 * checked by cs_servers_parse into *out. *urls (may be NULL) is that
 * string, borrowed from the flag or the environment. CS_EINVAL names
 * where the list came from ("--server" or "$CELL_SERVER") and the entry. */
int cs_servers_from(const char *flag, cs_servers *out, const char **urls, cs_error *err);

/* Where cellstated listens when --listen is not given: `flag` (borrowed,
 * may be NULL) if set, as ever; else $CELL_SERVER when it names one
 * server; else CS_DEFAULT_URL. *out is borrowed from the flag or the
 * environment. A list in $CELL_SERVER is refused (CS_EINVAL, saying to give
 * --listen or --cluster): it names the clients' view of a replicated cell,
 * and taking its first entry would have every replica on a host that
 * shares the environment try to listen at the same address. */
int cs_listen_url(const char *flag, const char **out, cs_error *err);

/* Whether every server of `s` (borrowed) agrees with the certificates
 * `tls` (borrowed, NULL for none): cs_tls_check_url for each, naming
 * --server. For a program's start, so that a TLS URL without certificates
 * is a bad command line rather than a client that cannot connect. */
int cs_servers_check_tls(const cs_servers *s, const cs_tls *tls, cs_error *err);

/* Dial every server of `s` (borrowed) on `sock` without blocking: nng
 * connects and reconnects each in the background, and a REQ socket sends
 * each request on one connected pipe (see agent/loop.h for who uses it).
 * Over mutual TLS with `tls` (borrowed; NULL for none; proto/tls.h).
 * CS_EINVAL naming the entry nng or cs_tls_check_url refuses; the dialers
 * started before it stay with the socket (closed with it). */
int cs_servers_dial(nng_socket sock, const cs_servers *s, const cs_tls *tls, cs_error *err);

#endif
