/* servers.c — the list of cellstated servers (see servers.h). */
#include "proto/servers.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"
#include "proto/tls.h"

/* Whether `scheme` (n bytes) is one that carries a host:port, whose port a
 * client must name (nng has no default port for these). */
static bool needs_port(const char *scheme, size_t n)
{
    static const char *const tcp[] = {"tcp", "tcp4", "tcp6", "tls+tcp", "tls+tcp4", "tls+tcp6"};
    for (size_t i = 0; i < sizeof tcp / sizeof tcp[0]; i++)
        if (strlen(tcp[i]) == n && memcmp(scheme, tcp[i], n) == 0)
            return true;
    return false;
}

/* Whether url[0..n) ends its address in ":PORT", PORT a number 1-65535. */
static bool has_port(const char *addr, size_t n)
{
    size_t colon = n;
    while (colon > 0 && addr[colon - 1] != ':')
        colon--;
    if (colon == 0 || colon == n || n - colon > 5)
        return false;
    unsigned long port = 0;
    for (size_t i = colon; i < n; i++) {
        if (addr[i] < '0' || addr[i] > '9')
            return false;
        port = port * 10 + (unsigned long)(addr[i] - '0');
    }
    return port >= 1 && port <= 65535;
}

/* Check one entry: scheme://address, a port where the scheme needs one. */
static int check_url(const char *url, size_t k, cs_error *err)
{
    const char *sep = strstr(url, "://");
    size_t slen = sep ? (size_t)(sep - url) : 0;
    for (size_t i = 0; i < slen; i++)
        if (!((url[i] >= 'a' && url[i] <= 'z') || (url[i] >= '0' && url[i] <= '9') ||
              url[i] == '+'))
            slen = 0;
    if (sep == NULL || slen == 0 || sep[3] == '\0')
        return cs_errorf(err, CS_EINVAL,
                         "server %zu '%s' is not a URL (scheme://address, as tcp://host:port)",
                         k, url);
    const char *addr = sep + 3;
    if (needs_port(url, slen) && !has_port(addr, strcspn(addr, "/")))
        return cs_errorf(err, CS_EINVAL, "server %zu '%s' has no port (as tcp://host:7600)", k,
                         url);
    return CS_OK;
}

int cs_servers_parse(const char *list, cs_servers *out, cs_error *err)
{
    memset(out, 0, sizeof *out);
    const char *p = list;
    for (size_t k = 1;; k++) {
        size_t len = strcspn(p, ",");
        const char *next = p[len] == ',' ? p + len + 1 : NULL;
        while (len > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len == 0)
            return cs_errorf(err, CS_EINVAL, "server list '%s': server %zu is empty", list, k);
        if (len >= CS_SERVER_URL_MAX)
            return cs_errorf(err, CS_EINVAL, "server %zu '%.*s...' is longer than %d bytes", k,
                             40, p, CS_SERVER_URL_MAX - 1);
        if (out->n == CS_SERVERS_MAX)
            return cs_errorf(err, CS_EINVAL,
                             "server list '%s': more than %d servers (a cell has at most %d)",
                             list, CS_SERVERS_MAX, CS_SERVERS_MAX);
        char *url = out->url[out->n];
        memcpy(url, p, len);
        url[len] = '\0';
        CS_TRY(check_url(url, k, err));
        for (size_t i = 0; i < out->n; i++)
            if (strcmp(out->url[i], url) == 0)
                return cs_errorf(err, CS_EINVAL, "server %zu '%s' is listed twice (also %zu)",
                                 k, url, i + 1);
        out->n++;
        if (next == NULL)
            return CS_OK;
        p = next;
    }
}

int cs_servers_from(const char *flag, cs_servers *out, const char **urls, cs_error *err)
{
    const char *list = cs_server_url(flag);
    if (urls != NULL)
        *urls = list;
    int rc = cs_servers_parse(list, out, err);
    if (rc != CS_OK)
        return cs_error_wrap(err, rc, "%s",
                             flag != NULL && flag[0] != '\0' ? "--server" : "$" CS_URL_ENV);
    return CS_OK;
}

int cs_listen_url(const char *flag, const char **out, cs_error *err)
{
    const char *url = cs_server_url(flag);
    *out = url;
    if (flag != NULL && flag[0] != '\0')
        return CS_OK;
    cs_servers s;
    if (cs_servers_parse(url, &s, err) == CS_OK && s.n > 1)
        return cs_errorf(err, CS_EINVAL,
                         "$" CS_URL_ENV " lists %zu servers (%s), a replicated cell's for its "
                         "clients; give this replica's own address with --listen, or --cluster "
                         "FILE --id N",
                         s.n, url);
    /* One entry, even one the list rules refuse: nng's listen says what is
     * wrong with it, as it always did. */
    return CS_OK;
}

int cs_servers_check_tls(const cs_servers *s, const cs_tls *tls, cs_error *err)
{
    for (size_t i = 0; i < s->n; i++)
        CS_TRY(cs_tls_check_url(tls, s->url[i], "--server", err));
    return CS_OK;
}

int cs_servers_dial(nng_socket sock, const cs_servers *s, const cs_tls *tls, cs_error *err)
{
    for (size_t i = 0; i < s->n; i++) {
        int rc = cs_tls_dial(sock, s->url[i], tls, NNG_FLAG_NONBLOCK, NULL, "--server", err);
        if (rc != CS_OK)
            return rc;
    }
    return CS_OK;
}
