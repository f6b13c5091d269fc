/* cellbench_replicas.c — a replicated cell for a benchmark (see
 * cellbench_replicas.h). */
#include "tools/cellbench_replicas.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto/client.h"
#include "proto/membermsg.h"
#include "proto/msg.h"
#include "tools/cellbench_util.h"

int cb_free_ports(uint32_t n, int *ports, cs_error *err)
{
    int fds[2 * CB_REPLICAS_MAX];
    if (n > sizeof fds / sizeof *fds)
        return cs_errorf(err, CS_EINVAL, "%u ports asked, at most %zu", n,
                         sizeof fds / sizeof *fds);
    uint32_t open_fds = 0;
    int rc = CS_OK;
    for (; open_fds < n; open_fds++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) {
            rc = cs_errorf(err, CS_EIO, "socket: %s", strerror(errno));
            break;
        }
        fds[open_fds] = fd;
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
            getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
            rc = cs_errorf(err, CS_EIO, "binding a port of 127.0.0.1: %s", strerror(errno));
            close(fd);
            break;
        }
        ports[open_fds] = ntohs(a.sin_port);
    }
    /* Held until here, so that the kernel gave n different ports. */
    for (uint32_t i = 0; i < open_fds; i++)
        close(fds[i]);
    return rc;
}

int cb_replicas_data_dir(const char *dir, uint32_t i, char *out, size_t size, cs_error *err)
{
    if (snprintf(out, size, "%s/member-%u", dir, i + 1) >= (int)size)
        return cs_errorf(err, CS_EINVAL, "path of member %u's data too long", i + 1);
    return CS_OK;
}

/* Copy the file `from` to `to` (created or truncated). */
static int copy_file(const char *from, const char *to, cs_error *err)
{
    int rc = CS_OK;
    FILE *in = fopen(from, "rb"), *out = NULL;
    if (in == NULL)
        return cs_errorf(err, CS_EIO, "%s: %s", from, strerror(errno));
    if ((out = fopen(to, "wb")) == NULL) {
        rc = cs_errorf(err, CS_EIO, "%s: %s", to, strerror(errno));
        goto close_in;
    }
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) {
            rc = cs_errorf(err, CS_EIO, "writing %s: %s", to, strerror(errno));
            break;
        }
    if (rc == CS_OK && ferror(in))
        rc = cs_errorf(err, CS_EIO, "reading %s", from);
    if (fclose(out) != 0 && rc == CS_OK)
        rc = cs_errorf(err, CS_EIO, "writing %s: %s", to, strerror(errno));
close_in:
    fclose(in);
    return rc;
}

int cb_replicas_mark_seed(cs_store *s, cs_error *err)
{
    int rc = cs_store_group_begin(s, err);
    if (rc != CS_OK)
        return rc;
    bool abandoned = false;
    rc = cs_store_group_set_applied(s, 1, err);
    /* The group ends either way: it holds the writer lock. */
    int end = cs_store_group_end(s, &abandoned, NULL, rc == CS_OK ? err : NULL);
    if (rc == CS_OK && end != CS_OK)
        rc = end;
    if (rc == CS_OK && abandoned)
        rc = cs_errorf(err, CS_EIO, "marking the seed store: the group was abandoned");
    return rc;
}

int cb_replicas_copy_store(const char *dir, uint32_t n, cs_error *err)
{
    char first[320], from[340];
    int rc = cb_replicas_data_dir(dir, 0, first, sizeof first, err);
    if (rc != CS_OK)
        return rc;
    snprintf(from, sizeof from, "%s/data.mdb", first);
    for (uint32_t i = 1; i < n && rc == CS_OK; i++) {
        char data[320], to[340];
        if ((rc = cb_replicas_data_dir(dir, i, data, sizeof data, err)) != CS_OK)
            break;
        if (mkdir(data, 0755) != 0 && errno != EEXIST)
            return cs_errorf(err, CS_EIO, "%s: %s", data, strerror(errno));
        snprintf(to, sizeof to, "%s/data.mdb", data);
        rc = copy_file(from, to, err);
    }
    return rc;
}

/* Write DIR/cluster.json naming every member's listen and raft address. */
static int write_cluster(cb_replicas *r, const char *path, cs_error *err)
{
    int ports[2 * CB_REPLICAS_MAX];
    int rc = cb_free_ports(2 * r->n, ports, err);
    if (rc != CS_OK)
        return rc;
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return cs_errorf(err, CS_EIO, "%s: %s", path, strerror(errno));
    fputc('[', f);
    for (uint32_t i = 0; i < r->n; i++) {
        snprintf(r->d[i].url, sizeof r->d[i].url, "%s://127.0.0.1:%d",
                 r->tls != NULL ? "tls+tcp" : "tcp", ports[2 * i]);
        snprintf(r->raft[i], sizeof r->raft[i], "127.0.0.1:%d", ports[2 * i + 1]);
        fprintf(f, "%s{\"id\": %u, \"listen\": \"%s\", \"raft\": \"%s\"}", i ? ", " : "", i + 1,
                r->d[i].url, r->raft[i]);
    }
    fputs("]\n", f);
    if (fclose(f) != 0)
        return cs_errorf(err, CS_EIO, "%s: %s", path, strerror(errno));
    return CS_OK;
}

/* Member i's own view of the cell: its role and the leader it knows. */
static int ask_members(const cb_replicas *r, uint32_t i, cs_members_reply *out, cs_arena *a,
                       cs_error *err)
{
    cs_client *c;
    int rc = cs_client_open_tls(r->d[i].url, r->tls, 1000, &c, err);
    if (rc != CS_OK)
        return rc;
    cs_msg m;
    /* The members request has no fields: an empty map. */
    if ((rc = cs_client_call(c, CS_MSG_MEMBERS, "\x80", 1, &m, err)) == CS_OK)
        rc = cs_members_reply_decode(&m.body, out, a, err);
    cs_client_close(c);
    return rc;
}

/* Whether one member leads and every member names it: then a follower can
 * forward a write, and a write sent anywhere is not refused for want of a
 * leader. */
static bool agreed(cb_replicas *r)
{
    uint64_t leader = 0;
    uint32_t leading = 0, naming = 0;
    for (uint32_t i = 0; i < r->n; i++) {
        cs_arena a;
        cs_arena_init(&a);
        cs_members_reply m;
        cs_error err = {0};
        if (ask_members(r, i, &m, &a, &err) == CS_OK) {
            if (m.role == CS_MEMBER_LEADER) {
                leading++;
                r->leader = i;
            }
            if (m.leader != 0 && (leader == 0 || leader == m.leader)) {
                leader = m.leader;
                naming++;
            }
        }
        cs_arena_free(&a);
    }
    return leading == 1 && naming == r->n && leader == (uint64_t)r->leader + 1;
}

int cb_replicas_start(cb_replicas *r, const char *bin, const char *dir, uint32_t n,
                      char *const extra[], uint32_t ready_ms, cs_error *err)
{
    return cb_replicas_start_tls(r, bin, dir, n, extra, NULL, NULL, ready_ms, err);
}

int cb_replicas_start_tls(cb_replicas *r, const char *bin, const char *dir, uint32_t n,
                          char *const extra[], const char *tls_dir, const struct cs_tls *tls,
                          uint32_t ready_ms, cs_error *err)
{
    memset(r, 0, sizeof *r);
    if (n < 1 || n > CB_REPLICAS_MAX)
        return cs_errorf(err, CS_EINVAL, "%u replicas: 1 to %d", n, CB_REPLICAS_MAX);
    if ((tls_dir == NULL) != (tls == NULL))
        return cs_errorf(err, CS_EINVAL, "a TLS cell needs both the certificates' directory "
                                         "and the loaded certificates");
    r->tls_dir = tls_dir;
    r->tls = tls;
    snprintf(r->dir, sizeof r->dir, "%s", dir);
    r->n = n;
    char cluster[400], data[CB_REPLICAS_MAX][320], id[CB_REPLICAS_MAX][16];
    snprintf(cluster, sizeof cluster, "%s/cluster.json", dir);
    int rc = write_cluster(r, cluster, err);
    size_t nextra = 0;
    while (extra != NULL && extra[nextra] != NULL)
        nextra++;
    char f_cluster[] = "--cluster", f_id[] = "--id", f_data[] = "--data";
    char *argv[7 + 32 + 6];
    if (nextra > 32)
        rc = cs_errorf(err, CS_EINVAL, "more than 32 extra arguments for cellstated");
    char f_cert[] = "--tls-cert", f_key[] = "--tls-key", f_ca[] = "--tls-ca", cert[400], key[400],
         ca[400];
    snprintf(cert, sizeof cert, "%s/server.pem", tls_dir != NULL ? tls_dir : "");
    snprintf(key, sizeof key, "%s/server.key", tls_dir != NULL ? tls_dir : "");
    snprintf(ca, sizeof ca, "%s/ca.pem", tls_dir != NULL ? tls_dir : "");
    char *tls_args[] = {f_cert, cert, f_key, key, f_ca, ca};
    uint32_t started = 0;
    /* Every member is spawned before any is waited for: a member that
     * starts alone cannot elect a leader, and each waits for a quorum. */
    for (; rc == CS_OK && started < n; started++) {
        uint32_t i = started;
        char log[400];
        snprintf(log, sizeof log, "%s/cellstated-%u.log", dir, i + 1);
        snprintf(id[i], sizeof id[i], "%u", i + 1);
        if ((rc = cb_replicas_data_dir(dir, i, data[i], sizeof data[i], err)) != CS_OK)
            break;
        if (mkdir(data[i], 0755) != 0 && errno != EEXIST) {
            rc = cs_errorf(err, CS_EIO, "%s: %s", data[i], strerror(errno));
            break;
        }
        char *a[] = {(char *)bin, f_cluster, cluster, f_id, id[i], f_data, data[i]};
        memcpy(argv, a, sizeof a);
        if (nextra > 0)
            memcpy(argv + 7, extra, nextra * sizeof *argv);
        size_t nargs = 7 + nextra;
        if (tls_dir != NULL) {
            memcpy(argv + nargs, tls_args, sizeof tls_args);
            nargs += 6;
        }
        argv[nargs] = NULL;
        /* cb_daemon_start_at waits until the member answers stats, which
         * a member serves before any leader is elected. */
        if ((rc = cb_daemon_start_at(&r->d[i], argv, r->d[i].url, r->tls, log, ready_ms, err)) !=
            CS_OK)
            rc = cs_error_wrap(err, rc, "member %u", i + 1);
    }
    if (rc == CS_OK) {
        for (uint32_t waited = 0; !agreed(r); waited += 50) {
            if ((rc = cb_replicas_check(r, err)) != CS_OK)
                break;
            if (waited >= ready_ms) {
                rc = cs_errorf(err, CS_EIO, "no leader that all %u members name within %u ms "
                                            "(logs: %s/cellstated-*.log)",
                               n, ready_ms, dir);
                break;
            }
            cb_sleep_ms(50);
        }
    }
    if (rc != CS_OK)
        cb_replicas_stop(r, 5000);
    return rc;
}

int cb_replicas_check(cb_replicas *r, cs_error *err)
{
    for (uint32_t i = 0; i < r->n; i++) {
        int status;
        if (r->d[i].pid <= 0 || waitpid(r->d[i].pid, &status, WNOHANG) != r->d[i].pid)
            continue;
        r->d[i].pid = 0;
        char last[256];
        cb_log_last_line(r->d[i].log, last, sizeof last);
        return cs_errorf(err, CS_EIO, "cellstated member %u exited with status %d: \"%s\" (log: %s)",
                         i + 1, status, last, r->d[i].log);
    }
    return CS_OK;
}

uint32_t cb_replicas_stop(cb_replicas *r, uint32_t timeout_ms)
{
    uint32_t killed = 0;
    /* SIGTERM to all first: a member stopping alone would wait on a
     * quorum that is stopping too. */
    for (uint32_t i = 0; i < r->n; i++)
        if (r->d[i].pid > 0)
            kill(r->d[i].pid, SIGTERM);
    for (uint32_t i = 0; i < r->n; i++)
        killed += cb_daemon_stop(&r->d[i], timeout_ms) == -1;
    r->n = 0;
    return killed;
}

double cb_replicas_cpu_s(const cb_replicas *r)
{
    double s = 0;
    for (uint32_t i = 0; i < r->n; i++)
        s += cb_daemon_cpu_s(&r->d[i]);
    return r->n ? s : (double)NAN;
}

int cb_replicas_urls(const cb_replicas *r, uint32_t first, char *out, size_t size,
                     cs_error *err)
{
    size_t used = 0;
    for (uint32_t k = 0; k < r->n; k++) {
        /* first, then 0, 1, ... without it */
        uint32_t i = k == 0 ? first : k - 1 + (k - 1 >= first);
        int n = snprintf(out + used, size - used, "%s%s", k ? "," : "", r->d[i].url);
        if (n < 0 || (size_t)n >= size - used)
            return cs_errorf(err, CS_EINVAL, "the members' URLs do not fit in %zu bytes", size);
        used += (size_t)n;
    }
    return CS_OK;
}

uint32_t cb_replicas_follower(const cb_replicas *r, uint32_t k)
{
    if (r->n <= 1)
        return r->leader;
    uint32_t i = k % (r->n - 1);
    return i < r->leader ? i : i + 1;
}
