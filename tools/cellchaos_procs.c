/* cellchaos_procs.c — the processes of a chaos run (see cellchaos_procs.h). */
#include "tools/cellchaos_procs.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cellstate/rng.h"
#include "tools/cellbench_daemon.h"

static const char *const binaries[] = {"cellstated", "cell-batch", "cell-service", "cell-agent"};

const char *cc_kind_name(cc_kind k)
{
    static const char *const names[CC_KIND_COUNT] = {"replica", "scheduler", "agent"};
    return k < CC_KIND_COUNT ? names[k] : "unknown";
}

int cc_bindir(char *out, size_t size, cs_error *err)
{
    /* cellbench's rule for cellstated (beside the executable), with
     * $CELLSCHED_BIN first, as the tests set it to the sanitized build. */
    const char *env = getenv("CELLSCHED_BIN");
    char given[4096];
    if (env != NULL && env[0] != '\0' &&
        snprintf(given, sizeof given, "%s/cellstated", env) >= (int)sizeof given)
        return cs_errorf(err, CS_EINVAL, "$CELLSCHED_BIN is too long");
    CS_TRY(cb_cellstated_path(env != NULL && env[0] != '\0' ? given : NULL, out, size, err));
    *strrchr(out, '/') = '\0';
    for (size_t i = 1; i < sizeof binaries / sizeof *binaries; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", out, binaries[i]);
        if (access(path, X_OK) != 0)
            return cs_errorf(err, CS_ENOTFOUND,
                             "%s is not an executable (build it with make, or set "
                             "$CELLSCHED_BIN to the directory of the cell's binaries)",
                             path);
    }
    return CS_OK;
}

/* ---- ports ------------------------------------------------------------------- */

/* The kernel's ephemeral range; Linux's default when it cannot be read. */
static void ephemeral_range(int *lo, int *hi)
{
    *lo = 32768;
    *hi = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f == NULL)
        return;
    int a, b;
    if (fscanf(f, "%d %d", &a, &b) == 2 && a > 0 && b >= a && b <= 65535) {
        *lo = a;
        *hi = b;
    }
    fclose(f);
}

/* Whether `port` can be bound on 127.0.0.1 now (no listener, no socket
 * in the way). */
static bool port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

/* n distinct free ports. Above the ephemeral range when there is room for
 * a few hundred there (Linux's default leaves 61000-65535), else between
 * tests/support.h's reserved range (below 32752) and the ephemeral one. A
 * random pick, so that two runs at once rarely try the same ports. */
static int choose_ports(uint32_t n, uint64_t *rng, int *out, cs_error *err)
{
    int elo, ehi, lo, hi;
    ephemeral_range(&elo, &ehi);
    if (65535 - ehi >= 256) {
        lo = ehi + 1;
        hi = 65535;
    } else {
        lo = 32752;
        hi = elo - 1;
    }
    if (hi - lo < 64)
        return cs_errorf(err, CS_EIO, "no port range outside the ephemeral one (%d-%d)", elo,
                         ehi);
    for (uint32_t i = 0; i < n; i++) {
        int tries = 0;
        for (;;) {
            int p = lo + (int)cs_rng_below(rng, (uint32_t)(hi - lo + 1));
            bool dup = false;
            for (uint32_t j = 0; j < i; j++)
                dup = dup || out[j] == p;
            if (!dup && port_free(p)) {
                out[i] = p;
                break;
            }
            if (++tries > 1000)
                return cs_errorf(err, CS_EIO, "no free port in %d-%d after 1000 tries", lo, hi);
        }
    }
    return CS_OK;
}

/* ---- command lines ------------------------------------------------------------- */

/* Append one argument, printf-style. CS_EINVAL when there are too many or
 * one is too long (a bug of this file, or a --dir too long). */
static int arg(cc_proc *p, size_t *n, cs_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int arg(cc_proc *p, size_t *n, cs_error *err, const char *fmt, ...)
{
    if (*n >= CC_ARGS_MAX)
        return cs_errorf(err, CS_EINVAL, "%s: too many arguments", p->name);
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(p->args[*n], CC_PATH_MAX, fmt, ap);
    va_end(ap);
    if (len < 0 || len >= CC_PATH_MAX)
        return cs_errorf(err, CS_EINVAL, "%s: argument %zu is too long", p->name, *n);
    p->argv[*n] = p->args[*n];
    (*n)++;
    p->argv[*n] = NULL;
    return CS_OK;
}

static int proc_init(cc_proc *p, cc_kind kind, const char *name, const cc_layout *l,
                     const char *binary, size_t *n, cs_error *err)
{
    memset(p, 0, sizeof *p);
    p->kind = kind;
    snprintf(p->name, sizeof p->name, "%s", name);
    if (snprintf(p->log, sizeof p->log, "%s/%s.log", l->dir, name) >= (int)sizeof p->log)
        return cs_errorf(err, CS_EINVAL, "--dir %s is too long", l->dir);
    *n = 0;
    return arg(p, n, err, "%s/%s", l->bindir, binary);
}

static int write_cluster(cc_cell *c, const char *dir, cs_error *err)
{
    if (snprintf(c->cluster, sizeof c->cluster, "%s/cluster.json", dir) >= (int)sizeof c->cluster)
        return cs_errorf(err, CS_EINVAL, "--dir %s is too long", dir);
    FILE *f = fopen(c->cluster, "w");
    if (f == NULL)
        return cs_errorf(err, CS_EIO, "%s: %s", c->cluster, strerror(errno));
    fprintf(f, "[");
    for (uint32_t i = 0; i < c->nreplicas; i++)
        fprintf(f, "%s{\"id\": %u, \"listen\": \"%s\", \"raft\": \"%s\"}", i ? ", " : "", i + 1,
                c->url[i], c->raft[i]);
    fprintf(f, "]\n");
    if (fclose(f) != 0)
        return cs_errorf(err, CS_EIO, "%s: %s", c->cluster, strerror(errno));
    return CS_OK;
}

/* Replica i: a member of the cell in the cluster file, its data in
 * DIR/replica-N. Elections in 500-1000 ms (half of the default) so that
 * a killed leader is replaced well within an agent's heartbeat timeout;
 * --job-gc 0 keeps every ended job, so that an acknowledged job that is
 * absent at the end is lost, never collected; a worker for every machine's
 * parked poll and some to spare. */
static int replica_args(cc_proc *p, const cc_cell *c, const cc_layout *l, uint32_t i,
                        cs_error *err)
{
    char name[32];
    snprintf(name, sizeof name, "replica-%u", i + 1);
    size_t n;
    CS_TRY(proc_init(p, CC_REPLICA, name, l, "cellstated", &n, err));
    CS_TRY(arg(p, &n, err, "--cluster"));
    CS_TRY(arg(p, &n, err, "%s", c->cluster));
    CS_TRY(arg(p, &n, err, "--id"));
    CS_TRY(arg(p, &n, err, "%u", i + 1));
    CS_TRY(arg(p, &n, err, "--data"));
    CS_TRY(arg(p, &n, err, "%s/%s", l->dir, name));
    CS_TRY(arg(p, &n, err, "--election-timeout"));
    CS_TRY(arg(p, &n, err, "500"));
    CS_TRY(arg(p, &n, err, "--heartbeat-timeout"));
    CS_TRY(arg(p, &n, err, "%u", l->heartbeat_timeout_ms));
    CS_TRY(arg(p, &n, err, "--job-gc"));
    CS_TRY(arg(p, &n, err, "0"));
    CS_TRY(arg(p, &n, err, "--workers"));
    return arg(p, &n, err, "%u", l->machines + 64);
}

/* Schedulers and agents are given every replica (--server a,b,c) and move
 * to another when theirs dies, as a deployment's clients do; the list
 * starts at a different replica for each, so that the load spreads. */
static int server_arg(cc_proc *p, size_t *n, const cc_cell *c, uint32_t first, cs_error *err)
{
    char list[sizeof c->servers];
    size_t len = 0;
    for (uint32_t j = 0; j < c->nreplicas; j++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", j ? "," : "",
                                c->url[(first + j) % c->nreplicas]);
    CS_TRY(arg(p, n, err, "--server"));
    return arg(p, n, err, "%s", list);
}

static int batch_args(cc_proc *p, const cc_cell *c, const cc_layout *l, uint32_t i,
                      cs_error *err)
{
    char name[32];
    snprintf(name, sizeof name, "batch-%u", i);
    size_t n;
    CS_TRY(proc_init(p, CC_SCHEDULER, name, l, "cell-batch", &n, err));
    CS_TRY(server_arg(p, &n, c, i, err));
    CS_TRY(arg(p, &n, err, "--name"));
    CS_TRY(arg(p, &n, err, "%s", name));
    CS_TRY(arg(p, &n, err, "--instance"));
    CS_TRY(arg(p, &n, err, "%u", i));
    CS_TRY(arg(p, &n, err, "--instances"));
    return arg(p, &n, err, "%u", l->batch);
}

static int service_args(cc_proc *p, const cc_cell *c, const cc_layout *l, cs_error *err)
{
    size_t n;
    CS_TRY(proc_init(p, CC_SCHEDULER, "service", l, "cell-service", &n, err));
    CS_TRY(server_arg(p, &n, c, l->batch, err));
    CS_TRY(arg(p, &n, err, "--name"));
    return arg(p, &n, err, "service");
}

/* Agent simulator i: machines a<i>-00000.. of 4 cores, 4 GiB and 10 GiB of
 * disk, whose batch tasks run 1-4 s; heartbeats at a fifth of the
 * timeout, so that one late heartbeat never marks a machine down. */
static int agent_args(cc_proc *p, const cc_cell *c, const cc_layout *l, uint32_t i,
                      uint32_t machines, cs_error *err)
{
    char name[32];
    snprintf(name, sizeof name, "agent-%u", i);
    size_t n;
    CS_TRY(proc_init(p, CC_AGENT, name, l, "cell-agent", &n, err));
    CS_TRY(server_arg(p, &n, c, i, err));
    CS_TRY(arg(p, &n, err, "--simulate"));
    CS_TRY(arg(p, &n, err, "%u", machines));
    CS_TRY(arg(p, &n, err, "--sim-prefix"));
    CS_TRY(arg(p, &n, err, "a%u-", i));
    CS_TRY(arg(p, &n, err, "--sim-duration"));
    CS_TRY(arg(p, &n, err, "1000-4000"));
    CS_TRY(arg(p, &n, err, "--seed"));
    CS_TRY(arg(p, &n, err, "%llu", (unsigned long long)(l->seed + i)));
    CS_TRY(arg(p, &n, err, "--cpu"));
    CS_TRY(arg(p, &n, err, "4"));
    CS_TRY(arg(p, &n, err, "--mem"));
    CS_TRY(arg(p, &n, err, "4096"));
    CS_TRY(arg(p, &n, err, "--disk"));
    CS_TRY(arg(p, &n, err, "10240"));
    CS_TRY(arg(p, &n, err, "--heartbeat-ms"));
    return arg(p, &n, err, "%u", l->heartbeat_timeout_ms / 5 ? l->heartbeat_timeout_ms / 5 : 10);
}

int cc_cell_init(cc_cell *c, const cc_layout *l, cs_error *err)
{
    memset(c, 0, sizeof *c);
    if (l->replicas < 1 || l->replicas > CC_REPLICAS_MAX || l->agents < 1 || l->batch < 1 ||
        l->machines < l->agents)
        return cs_errorf(err, CS_EINVAL, "cell layout out of range");
    c->nreplicas = l->replicas;
    int ports[2 * CC_REPLICAS_MAX];
    uint64_t rng = l->seed ^ (uint64_t)getpid();
    CS_TRY(choose_ports(2 * l->replicas, &rng, ports, err));
    size_t len = 0;
    for (uint32_t i = 0; i < l->replicas; i++) {
        snprintf(c->url[i], sizeof c->url[i], "tcp://127.0.0.1:%d", ports[2 * i]);
        snprintf(c->raft[i], sizeof c->raft[i], "127.0.0.1:%d", ports[2 * i + 1]);
        len += (size_t)snprintf(c->servers + len, sizeof c->servers - len, "%s%s", i ? "," : "",
                                c->url[i]);
    }
    CS_TRY(write_cluster(c, l->dir, err));

    c->nprocs = l->replicas + l->batch + 1 + l->agents;
    c->procs = calloc(c->nprocs, sizeof *c->procs);
    if (c->procs == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    cc_proc *p = c->procs;
    for (uint32_t i = 0; i < l->replicas; i++)
        CS_TRY(replica_args(p++, c, l, i, err));
    for (uint32_t i = 0; i < l->batch; i++)
        CS_TRY(batch_args(p++, c, l, i, err));
    CS_TRY(service_args(p++, c, l, err));
    for (uint32_t i = 0; i < l->agents; i++) {
        uint32_t m = l->machines / l->agents + (i < l->machines % l->agents);
        CS_TRY(agent_args(p++, c, l, i, m, err));
    }
    return CS_OK;
}

void cc_cell_free(cc_cell *c)
{
    free(c->procs);
    c->procs = NULL;
    c->nprocs = 0;
}

/* ---- lifetimes ------------------------------------------------------------------- */

int cc_proc_start(cc_proc *p, cs_error *err)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return cs_errorf(err, CS_EIO, "%s: fork: %s", p->name, strerror(errno));
    if (pid == 0) {
        /* cellchaos blocks SIGINT and SIGTERM to wait for them; the child
         * must get its own signals back, or a SIGTERM at the end would
         * never reach its handler. */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        /* A chaos run that dies must not leave its cell behind. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(p->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execv(p->argv[0], p->argv);
        _exit(127);
    }
    p->pid = pid;
    p->restart_ns = 0;
    return CS_OK;
}

void cc_proc_kill(cc_proc *p)
{
    if (p->pid <= 0)
        return;
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    p->pid = 0;
    p->kills++;
}

bool cc_proc_reap(cc_proc *p)
{
    if (p->pid <= 0 || waitpid(p->pid, NULL, WNOHANG) != p->pid)
        return false;
    p->pid = 0;
    p->exits++;
    return true;
}

void cc_cell_stop(cc_cell *c, uint32_t timeout_ms)
{
    for (size_t i = 0; i < c->nprocs; i++)
        if (c->procs[i].pid > 0)
            kill(c->procs[i].pid, SIGTERM);
    struct timespec tick = {0, 10 * 1000 * 1000};
    for (uint32_t waited = 0;; waited += 10) {
        bool left = false;
        for (size_t i = 0; i < c->nprocs; i++) {
            cc_proc *p = &c->procs[i];
            if (p->pid > 0 && waitpid(p->pid, NULL, WNOHANG) == p->pid)
                p->pid = 0;
            left = left || p->pid > 0;
        }
        if (!left)
            return;
        if (waited >= timeout_ms)
            break;
        nanosleep(&tick, NULL);
    }
    for (size_t i = 0; i < c->nprocs; i++) {
        cc_proc *p = &c->procs[i];
        if (p->pid > 0) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, NULL, 0);
            p->pid = 0;
        }
    }
}
