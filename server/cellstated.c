/* cellstated — the cell state server.
 *
 *   cellstated [--listen URL] [--pub URL] [--data DIR] [--workers N]
 *              [--heartbeat-timeout MS] [--poll-max-wait MS] [--max-msg BYTES]
 *              [--max-inflight-bytes BYTES] [--max-conns-per-peer N] [--max-job-tasks N]
 *              [--sync-chunk N]
 *              [--addr-file FILE] [--job-gc DURATION] [--log-retain DURATION] [--nosync]
 *              [--cluster FILE --id N] [--election-timeout MS]
 *              [--snapshot-threshold N] [--snapshot-trailing N]
 *              [--install-snapshot-timeout MS]
 *              [--concurrency optimistic|offers] [--offer-timeout DURATION]
 *              [--metrics-per-machine] [--audit-max-bytes BYTES]
 *              [--http HOST:PORT]
 *              [--auth-tokens FILE] [--token-file FILE]
 *
 * --audit-max-bytes (default 64 MiB; 0: no bound): the audit log of
 * accepted writes, DATA/audit.log (server/audit.h), becomes
 * DATA/audit.log.1 past this size and a new one begins.
 *
 * --http HOST:PORT (off by default): also serve the HTTP API, JSON under
 * http://HOST:PORT/v1/ (http/gateway.h, docs/http.md), and the web
 * dashboard at http://HOST:PORT/ui/ (http/ui.h). The gateway is a
 * client of this server's own protocol over an in-process connection
 * (INPROC_URL, and INPROC_PUB_URL for its blocking queries), so a follower
 * serves it too. Port 0 takes any free port; the log line says which.
 *
 * --concurrency (default optimistic): how schedulers' commits are taken.
 * optimistic is Omega's shared state: any scheduler commits at any time and
 * the store judges each claim. offers makes the server a Mesos-style
 * resource manager (server/offers.h): a scheduler commits only under the
 * offer, a lease on every free resource held by one scheduler at a time
 * and granted in DRF order; a lease not released within --offer-timeout
 * (default 30s) is taken back.
 *
 * --metrics-per-machine: the Prometheus metrics (server.h's
 * cs_server_metrics_text, docs/metrics.md) also carry each machine's
 * capacity, allocation and tasks; off by default, so that a cell of 10,000
 * machines does not emit 70,000 series a scrape.
 *
 * --cluster FILE --id N: this process is member N of a replicated cell
 * (server/replica.h): FILE lists every member as
 * [{"id": 1, "listen": "tcp://127.0.0.1:7600", "raft": "127.0.0.1:7610"}, ...]
 * (1, 3 or 5 of them); the member's `listen` is where it serves clients
 * (--listen, if given too, must be the same), its `raft` where it talks
 * Raft. A member added at run time (`cellctl members add`) is not in FILE:
 * it is started with --listen URL --raft HOST:PORT and waits, empty, to be
 * added. Without --cluster, one replica, as ever. --data then defaults to
 * .../cellsched/cell-N, so that replicas on one machine never share one.
 *
 * --job-gc (default 4h): ended jobs and their tasks leave the cell this long
 * after they ended; --log-retain (default 10m): the commit log keeps an
 * entry at least this long (and the idempotency record in it), at most
 * twice as long. Durations as in job specs ("30m", "10s", "1h30m"); 0 keeps
 * everything.
 *
 * --listen defaults to $CELL_SERVER (when it names one server: a list, the
 * clients' view of a replicated cell, is refused), else
 * tcp://127.0.0.1:7600; port 0 takes
 * any free port, and --addr-file FILE then tells which: the address clients
 * reach the server at, written once it listens (whole: written beside and
 * renamed), so that whoever started it never has to guess a free port in
 * advance. --data defaults to $XDG_STATE_HOME/cellsched/cell, else
 * /var/lib/cellsched/cell for root, else ~/.local/state/cellsched/cell:
 * never the current directory. Stops cleanly on SIGTERM or SIGINT; a restart
 * on the same --data resumes where it was.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cellstate/units.h"
#include "http/gateway.h"
#include "http/ui.h"
#include "cellstate/paths.h"
#include "proto/principal.h"
#include "proto/proto.h"
#include "proto/servers.h"
#include "proto/tls.h"
#include "server/replica.h"
#include "server/server.h"

/* The server's in-process endpoints for the HTTP gateway: one server per
 * process, so fixed names are unique. */
#define INPROC_URL "inproc://cellstated"
#define INPROC_PUB_URL "inproc://cellstated-pub"

static void usage(FILE *f)
{
    fprintf(f, "usage: cellstated [--listen URL] [--pub URL] [--data DIR] [--workers N]\n"
               "                  [--heartbeat-timeout MS] [--poll-max-wait MS]\n"
               "                  [--max-msg BYTES] [--max-inflight-bytes BYTES]\n"
               "                  [--max-conns-per-peer N] [--max-job-tasks N] [--sync-chunk N]\n"
               "                  [--addr-file FILE] [--job-gc DURATION]\n"
               "                  [--log-retain DURATION] [--nosync]\n"
               "                  [--cluster FILE --id N [--raft HOST:PORT]] [--election-timeout MS]\n"
               "                  [--snapshot-threshold N] [--snapshot-trailing N]\n"
               "                  [--install-snapshot-timeout MS]\n"
               "                  [--concurrency optimistic|offers] [--offer-timeout DURATION]\n"
               "                  [--metrics-per-machine] [--audit-max-bytes BYTES]\n"
               "                  [--http HOST:PORT]\n"
               "                  [--tls-cert FILE --tls-key FILE --tls-ca FILE [--tls-crl FILE]]\n"
               "                  [--auth-tokens FILE] [--token-file FILE]\n"
               "--listen: $CELL_SERVER (one URL; a list is refused), else %s (port 0: any\n"
               "free port, see --addr-file)\n"
               "--data: $XDG_STATE_HOME/cellsched/cell, else /var/lib/cellsched/cell as root,\n"
               "        else ~/.local/state/cellsched/cell (cell-N for member N of a cluster)\n"
               "--cluster FILE --id N: member N of the replicated cell FILE lists as\n"
               "        [{\"id\":1,\"listen\":\"tcp://127.0.0.1:7600\",\"raft\":\"127.0.0.1:7610\"},...];\n"
               "        a member not listed (to be added with cellctl members add) gives --listen\n"
               "        and --raft\n"
               "--concurrency: optimistic (default: Omega's shared state) or offers (Mesos-style:\n"
               "        commits only under the one offer, granted in DRF order; a lease not\n"
               "        released within --offer-timeout, default 30s, is taken back)\n"
               "--tls-cert/--tls-key/--tls-ca: this server's certificate and key and the\n"
               "        cell's CA (PEM); --listen and --pub are then tls+tcp:// URLs and every\n"
               "        client must present a certificate the CA signed (docs/security.md);\n"
               "        --http then serves https, with client certificates too\n"
               "--auth-tokens FILE: lines \"TOKEN PRINCIPAL\" (agent:NAME, scheduler:NAME,\n"
               "        scheduler.batch:NAME, scheduler.service:NAME, operator, reader, server):\n"
               "        a request carrying a token acts as its principal. With certificates or\n"
               "        tokens the cell enforces roles (docs/security.md \"Roles\"); with\n"
               "        neither, anyone who reaches it is every role\n"
               "--token-file FILE: this replica's own token (a server principal), which a\n"
               "        follower's forwarded requests carry in a cell with tokens\n"
               "--tls-crl FILE: the CA's revocation list (PEM, tools/cellsched-certs.sh\n"
               "        --revoke): a peer whose certificate it lists is refused\n"
               "--http HOST:PORT: also serve the HTTP API (JSON under http://HOST:PORT/v1/,\n"
               "        docs/http.md) and the web dashboard (http://HOST:PORT/ui/), off by\n"
               "        default; port 0: any free port\n"
               "--max-inflight-bytes: the requests held at once, across all connections (default\n"
               "        256 MiB; 0: no bound; at least --max-msg): one that would pass it is\n"
               "        refused at once (busy)\n"
               "--max-conns-per-peer N: connections one IP address may hold open (default 256;\n"
               "        0: no bound): the one beyond is closed as it is made\n"
               "--max-job-tasks N: the tasks one job may have (default 100000; 0: the protocol's\n"
               "        1048576): a submission, update, scale or surge above it is refused\n"
               "--sync-chunk N: the most records one piece of a full sync may carry when a\n"
               "        reader asks for pieces (default 10000; at least 1)\n"
               "--metrics-per-machine: the metrics also carry each machine's resources and\n"
               "        tasks (default: cell totals only)\n"
               "--audit-max-bytes: the audit log of accepted writes (DATA/audit.log) becomes\n"
               "        audit.log.1 past this size, in bytes (default 64 MiB; 0: no bound)\n",
            CS_DEFAULT_URL);
}

static int num(const char *flag, const char *v, unsigned long long max, unsigned long long *out)
{
    char *end;
    unsigned long long x = strtoull(v, &end, 10);
    if (*v == '\0' || *end != '\0' || x > max || v[0] == '-') {
        fprintf(stderr, "cellstated: %s: '%s' is not a number up to %llu\n", flag, v, max);
        return -1;
    }
    *out = x;
    return 0;
}

/* Write `url` and a newline to `path` whole: into path.tmp, then renamed,
 * so that a reader polling for the file never sees half of it. */
static int write_addr_file(const char *path, const char *url, cs_error *err)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return cs_errorf(err, CS_EINVAL, "--addr-file %s: path too long", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return cs_errorf(err, CS_EIO, "--addr-file %s: %s", tmp, strerror(errno));
    bool ok = fprintf(f, "%s\n", url) > 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return cs_errorf(err, CS_EIO, "--addr-file %s: %s", path, strerror(e));
    }
    return CS_OK;
}

static int duration(const char *flag, const char *v, uint64_t *out)
{
    uint32_t ms;
    cs_error err;
    if (cs_duration_parse_ms(v, &ms, &err) != CS_OK) {
        fprintf(stderr, "cellstated: %s: '%s': %s\n", flag, v, err.msg);
        return -1;
    }
    *out = ms;
    return 0;
}

/* The Prometheus metrics (docs/metrics.md), served at /metrics beside the
 * HTTP API: the gateway's page hook, on its threads (cs_server_metrics_text
 * may be called from any thread while the server runs). */
typedef struct metrics_page {
    cs_server *s;
    bool per_machine;
} metrics_page;

static int write_metrics(void *arg, FILE *out, cs_error *err)
{
    const metrics_page *p = arg;
    char *text = NULL;
    size_t len = 0;
    int rc = cs_server_metrics_text(p->s, p->per_machine, &text, &len, err);
    if (rc == CS_OK && fwrite(text, 1, len, out) != len)
        rc = cs_errorf(err, CS_ENOMEM, "metrics: out of memory");
    free(text);
    return rc;
}

int main(int argc, char **argv)
{
    cs_server_opts o;
    cs_server_opts_default(&o);
    o.data_dir = NULL;
    /* A member back with an empty directory waits this long for the leader
     * to send it a snapshot again (libraft 0.15, design.md §12): 10 s
     * rather than libraft's 30, with room for a large store's transfer. */
    o.install_snapshot_timeout_ms = 10000;
    const char *listen = NULL, *addr_file = NULL, *cluster = NULL, *raft = NULL, *http = NULL;
    const char *token_file = NULL;
    unsigned long long member_id = 0;
    uint64_t offer_timeout = 0;
    cs_tls_files tls_files = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        unsigned long long x;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--nosync") == 0) {
            o.nosync = true;
            continue;
        } else if (strcmp(a, "--metrics-per-machine") == 0) {
            o.metrics_per_machine = true;
            continue;
        }
        if (v == NULL) {
            fprintf(stderr, "cellstated: %s needs a value\n", a);
            usage(stderr);
            return 2;
        }
        i++;
        if (cs_tls_flag(a, v, &tls_files))
            continue;
        if (strcmp(a, "--listen") == 0)
            listen = v;
        else if (strcmp(a, "--pub") == 0)
            o.pub_url = v;
        else if (strcmp(a, "--data") == 0)
            o.data_dir = v;
        else if (strcmp(a, "--addr-file") == 0)
            addr_file = v;
        else if (strcmp(a, "--workers") == 0 && num(a, v, 1000000, &x) == 0 && x > 0)
            o.workers = (uint32_t)x;
        else if (strcmp(a, "--heartbeat-timeout") == 0 && num(a, v, 86400000, &x) == 0 && x > 0)
            o.heartbeat_timeout_ms = (uint32_t)x;
        else if (strcmp(a, "--poll-max-wait") == 0 && num(a, v, 3600000, &x) == 0)
            o.poll_max_wait_ms = (uint32_t)x;
        else if (strcmp(a, "--job-gc") == 0 && duration(a, v, &o.job_gc_ms) == 0)
            ;
        else if (strcmp(a, "--log-retain") == 0 && duration(a, v, &o.log_retain_ms) == 0)
            ;
        else if (strcmp(a, "--max-msg") == 0 && num(a, v, 1ULL << 30, &x) == 0 && x >= 64)
            o.max_msg = (size_t)x;
        else if (strcmp(a, "--max-inflight-bytes") == 0 && num(a, v, 1ULL << 40, &x) == 0)
            o.max_inflight_bytes = (size_t)x;
        else if (strcmp(a, "--max-conns-per-peer") == 0 && num(a, v, UINT32_MAX, &x) == 0)
            o.max_conns_per_peer = (uint32_t)x;
        else if (strcmp(a, "--max-job-tasks") == 0 && num(a, v, 1048576, &x) == 0)
            o.max_job_tasks = (uint32_t)x;
        else if (strcmp(a, "--auth-tokens") == 0)
            o.auth_tokens = v;
        else if (strcmp(a, "--token-file") == 0)
            token_file = v;
        else if (strcmp(a, "--audit-max-bytes") == 0 && num(a, v, 1ULL << 50, &x) == 0)
            o.audit_max_bytes = x;
        else if (strcmp(a, "--sync-chunk") == 0 && num(a, v, UINT32_MAX, &x) == 0 && x >= 1)
            o.sync_chunk = (uint32_t)x;
        else if (strcmp(a, "--concurrency") == 0) {
            if (strcmp(v, "optimistic") != 0 && strcmp(v, "offers") != 0) {
                fprintf(stderr, "cellstated: --concurrency: '%s' is not optimistic or offers\n",
                        v);
                return 2;
            }
            o.concurrency = strcmp(v, "offers") == 0 ? CS_CONCURRENCY_OFFERS
                                                     : CS_CONCURRENCY_OPTIMISTIC;
        } else if (strcmp(a, "--offer-timeout") == 0) {
            if (duration(a, v, &offer_timeout) != 0)
                return 2;
            if (offer_timeout == 0) {
                fprintf(stderr, "cellstated: --offer-timeout: must be above 0 (a lease that "
                                "is never taken back lets a dead scheduler lock the cell)\n");
                return 2;
            }
            o.offer_timeout_ms = (uint32_t)offer_timeout;
        }
        else if (strcmp(a, "--cluster") == 0)
            cluster = v;
        else if (strcmp(a, "--http") == 0)
            http = v;
        else if (strcmp(a, "--raft") == 0)
            raft = v;
        else if (strcmp(a, "--id") == 0 && num(a, v, UINT32_MAX, &member_id) == 0 && member_id > 0)
            ;
        else if (strcmp(a, "--election-timeout") == 0 && num(a, v, 60000, &x) == 0 && x >= 10)
            o.election_timeout_ms = (unsigned)x;
        else if (strcmp(a, "--snapshot-threshold") == 0 && num(a, v, UINT32_MAX, &x) == 0 && x > 0)
            o.snapshot_threshold = (unsigned)x;
        else if (strcmp(a, "--snapshot-trailing") == 0 && num(a, v, UINT32_MAX, &x) == 0 && x > 0)
            o.snapshot_trailing = (unsigned)x;
        else if (strcmp(a, "--install-snapshot-timeout") == 0 && num(a, v, 3600000, &x) == 0 &&
                 x >= 100)
            o.install_snapshot_timeout_ms = (unsigned)x;
        else {
            fprintf(stderr, "cellstated: bad option %s %s\n", a, v);
            usage(stderr);
            return 2;
        }
    }
    cs_error err = {0};
    cs_member *members = NULL;
    char data[4096], cell_name[32] = "cell";
    if (o.max_inflight_bytes != 0 && o.max_inflight_bytes < o.max_msg) {
        /* Else a request the size --max-msg allows could never be served. */
        fprintf(stderr, "cellstated: --max-inflight-bytes %zu is below --max-msg %zu\n",
                o.max_inflight_bytes, o.max_msg);
        return 2;
    }
    if ((cluster != NULL) != (member_id != 0)) {
        fprintf(stderr, "cellstated: --cluster and --id go together (a member of a replicated "
                        "cell needs both)\n");
        return 2;
    }
    if (cluster != NULL) {
        size_t n = 0;
        if (cs_members_load(cluster, &members, &n, &err) != CS_OK) {
            fprintf(stderr, "cellstated: %s\n", err.msg);
            return 1;
        }
        const cs_member *me = NULL;
        for (size_t i = 0; i < n; i++)
            if (members[i].id == member_id)
                me = &members[i];
        if (me == NULL && (listen == NULL || raft == NULL)) {
            fprintf(stderr,
                    "cellstated: --id %llu is not a member listed in %s: a member added at run "
                    "time (cellctl members add) needs --listen URL and --raft HOST:PORT\n",
                    member_id, cluster);
            free(members);
            return 1;
        }
        if (me != NULL && listen != NULL && strcmp(listen, me->listen) != 0) {
            fprintf(stderr, "cellstated: --listen %s differs from member %llu's listen %s in %s\n",
                    listen, member_id, me->listen, cluster);
            free(members);
            return 1;
        }
        if (me != NULL && raft != NULL && strcmp(raft, me->raft) != 0) {
            fprintf(stderr, "cellstated: --raft %s differs from member %llu's raft %s in %s\n",
                    raft, member_id, me->raft, cluster);
            free(members);
            return 1;
        }
        if (me == NULL)
            o.raft_addr = raft;
        if (me != NULL)
            listen = me->listen;
        o.members = members;
        o.nmembers = n;
        o.member_id = member_id;
        snprintf(cell_name, sizeof cell_name, "cell-%llu", member_id);
    }
    /* $CELL_SERVER may list a replicated cell's servers: not an address to
     * listen at (proto/servers.h cs_listen_url). */
    if (cs_listen_url(listen, &o.listen_url, &err) != CS_OK) {
        fprintf(stderr, "cellstated: %s\n", err.msg);
        free(members);
        return 2;
    }
    if (o.data_dir == NULL) {
        if (cs_default_state_path_env(cell_name, "--data", data, sizeof data, &err) != CS_OK) {
            fprintf(stderr, "cellstated: %s\n", err.msg);
            return 1;
        }
        /* The store makes its own directory; the default's parents may not
         * exist yet. */
        char *slash = strrchr(data, '/');
        *slash = '\0';
        int rc = cs_mkdir_p(data, &err);
        *slash = '/';
        if (rc != CS_OK) {
            fprintf(stderr, "cellstated: %s\n", err.msg);
            return 1;
        }
        o.data_dir = data;
    }

    /* Block the signals before any thread starts, so that all threads
     * inherit the mask and only sigwait below receives them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* The certificates, checked before anything listens; the URLs must
     * agree with them (proto/tls.h: tls+tcp:// with, tcp:// without). */
    cs_tls *tls = NULL;
    if (cs_tls_load(&tls_files, &tls, &err) != CS_OK ||
        cs_tls_check_url(tls, o.listen_url, "--listen", &err) != CS_OK ||
        (o.pub_url != NULL && cs_tls_check_url(tls, o.pub_url, "--pub", &err) != CS_OK)) {
        fprintf(stderr, "cellstated: %s\n", err.msg);
        cs_tls_free(tls);
        free(members);
        return 2;
    }
    o.tls = tls;
    /* Its own token, for what a follower forwards (server.h self_token). */
    char *self_token = NULL;
    if (token_file != NULL && cs_token_load(token_file, &self_token, &err) != CS_OK) {
        fprintf(stderr, "cellstated: --token-file: %s\n", err.msg);
        cs_tls_free(tls);
        free(self_token);
        free(members);
        return 2;
    }
    o.self_token = self_token;
    if (http != NULL && cs_http_check_listen(http, &err) != CS_OK) {
        fprintf(stderr, "cellstated: %s\n", err.msg);
        cs_tls_free(tls);
        free(self_token);
        free(members);
        return 2;
    }
    if (http != NULL) {
        o.local_url = INPROC_URL;
        o.local_pub_url = INPROC_PUB_URL;
    }
    cs_server *s;
    int started = cs_server_start(&o, &s, &err);
    free(members); /* copied by the server */
    if (started != CS_OK) {
        fprintf(stderr, "cellstated: %s\n", err.msg);
        cs_tls_free(tls);
        free(self_token);
        return 1;
    }
    char bound[512];
    if (cs_server_bound_url(s, bound, sizeof bound, &err) != CS_OK ||
        (addr_file != NULL && write_addr_file(addr_file, bound, &err) != CS_OK)) {
        fprintf(stderr, "cellstated: %s\n", err.msg);
        cs_server_stop(s);
        cs_tls_free(tls);
        free(self_token);
        return 1;
    }
    if (member_id != 0)
        fprintf(stderr, "cellstated: member %llu of the cell in %s, serving %s on %s%s%s\n",
                member_id, cluster, o.data_dir, bound, o.pub_url ? ", announcing on " : "",
                o.pub_url ? o.pub_url : "");
    else
        fprintf(stderr, "cellstated: serving %s on %s%s%s%s\n", o.data_dir, bound,
                o.pub_url ? ", announcing on " : "", o.pub_url ? o.pub_url : "",
                o.concurrency == CS_CONCURRENCY_OFFERS ? ", making offers" : "");
    /* Loudly, because nothing else will say it: without certificates or
     * tokens any process that reaches the port is every role at once;
     * with tokens alone, they cross the network in the clear. */
    bool local = strncmp(bound, "ipc://", 6) == 0 || strncmp(bound, "inproc://", 9) == 0;
    if (tls == NULL && !cs_tls_url(bound) && !local && o.auth_tokens == NULL)
        fprintf(stderr,
                "cellstated: WARNING: unauthenticated: anyone who reaches %s may act as any "
                "role; use --tls-cert, --tls-key and --tls-ca, or --auth-tokens "
                "(docs/security.md)\n",
                bound);
    else if (tls == NULL && !cs_tls_url(bound) && !local)
        fprintf(stderr,
                "cellstated: WARNING: roles from --auth-tokens over plain TCP: the tokens and "
                "every request cross the network unencrypted; use --tls-cert, --tls-key and "
                "--tls-ca beyond a development cell (docs/security.md)\n");
    if (tls != NULL || o.auth_tokens != NULL)
        fprintf(stderr, "cellstated: roles enforced (%s%s%s)\n",
                tls != NULL ? "certificates" : "", tls != NULL && o.auth_tokens ? " and " : "",
                o.auth_tokens != NULL ? "tokens" : "");
    /* Raft follows the certificates, not a URL: say which it is. */
    if (member_id != 0 && tls != NULL)
        fprintf(stderr, "cellstated: Raft between replicas is mutual TLS: a peer needs a "
                        "certificate of --tls-ca with CN=server\n");
    else if (member_id != 0)
        fprintf(stderr,
                "cellstated: WARNING: Raft between replicas is plain TCP: anyone who reaches "
                "this member's raft address may append to the log; use --tls-cert, --tls-key "
                "and --tls-ca (docs/security.md)\n");
    /* The HTTP API once the server serves: its threads' clients dial the
     * in-process listener at once. Beside /v1/, the pages of this one
     * table: the Prometheus metrics, and the dashboard's files embedded at
     * build time (http/ui.h); another page is one more line. It outlives
     * the gateway (stopped before main returns). */
    cs_http *gw = NULL;
    char api_url[160];
    metrics_page mp = {s, o.metrics_per_machine};
    const cs_http_page pages[] = {
        {.path = "/metrics", .content_type = "text/plain; version=0.0.4; charset=utf-8",
         .write = write_metrics, .arg = &mp},
        {.path = "/ui", .redirect = "/ui/"},
        {.path = "/ui/", .content_type = "text/html; charset=utf-8", .file = &cs_ui_index_html},
        {.path = "/ui/app.js", .content_type = "text/javascript; charset=utf-8",
         .file = &cs_ui_app_js},
        {.path = "/ui/style.css", .content_type = "text/css; charset=utf-8",
         .file = &cs_ui_style_css},
    };
    if (http != NULL) {
        /* With certificates the HTTP API is https, and mutual as well. */
        cs_http_opts ho = {.listen = http, .server_url = INPROC_URL, .pub_url = INPROC_PUB_URL,
                           .pages = pages, .npages = sizeof pages / sizeof pages[0], .tls = tls};
        if (cs_http_start(&ho, &gw, &err) != CS_OK ||
            cs_http_url(gw, api_url, sizeof api_url, &err) != CS_OK) {
            fprintf(stderr, "cellstated: %s\n", err.msg);
            cs_http_stop(gw);
            cs_server_stop(s);
            cs_tls_free(tls);
        free(self_token);
            return 1;
        }
        fprintf(stderr, "cellstated: HTTP API on %s\n", api_url);
        /* api_url ends in "v1/" (cs_http_url). */
        fprintf(stderr, "cellstated: dashboard on %.*sui/\n", (int)strlen(api_url) - 3, api_url);
    }
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "cellstated: %s, stopping\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    /* The gateway first: it answers what it holds through the server. */
    cs_http_stop(gw);
    cs_server_stop(s);
    cs_tls_free(tls);
    free(self_token);
    return 0;
}
