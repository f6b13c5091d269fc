/* cell_agent.c — cell-agent: one machine of the cell (or many simulated
 * ones): main and its flags.
 *
 *   cell-agent [--server URL[,URL...]] [--name NAME] [--workdir DIR]
 *              [--cpu CORES] [--mem MiB] [--disk MiB] [--ports LO-HI]
 *              [--attr KEY=VALUE]... [--taint KEY[=VALUE]:EFFECT]...
 *              [--heartbeat-ms MS] [--poll-wait-ms MS] [--kill-grace-ms MS]
 *              [--orphan-grace MS] [--log-listen URL] [--retain-count N] [--retain-ms MS]
 *              [--isolation auto|cgroup|rlimit|none] [--task-user USER]
 *              [--task-root DIR] [--task-pids-max N]
 *   cell-agent --simulate N [--sim-prefix P] [--sim-duration MS|LO-HI]
 *              [--seed N] [the flags above]
 *
 * SIGTERM or SIGINT stops the agent cleanly and leaves its tasks running:
 * they belong to the cell, not to this process, and the next agent on the
 * same work directory adopts them. Stop a machine's work through the cell
 * (job.kill, draining) instead. An agent that does not come back within
 * --orphan-grace has its tasks stopped by their supervisors (alive.h).
 */
#include <errno.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/alive.h"
#include "agent/host.h"
#include "agent/isolate.h"
#include "agent/logserve.h"
#include "agent/loop.h"
#include "agent/runner.h"
#include "agent/sim.h"
#include "cellstate/paths.h"
#include "proto/principal.h"
#include "proto/proto.h"
#include "proto/servers.h"
#include "proto/tls.h"

#define AG_LOG_LISTEN_DEFAULT "tcp://0.0.0.0:0"
#define AG_LOG_LISTEN_TLS_DEFAULT "tls+tcp://0.0.0.0:0"
#define AG_RETAIN_COUNT_DEFAULT 10u
#define AG_RETAIN_MS_DEFAULT 3600000u

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cell-agent [--server URL[,URL...]] [--name NAME] [--workdir DIR]\n"
            "                  [--cpu CORES] [--mem MiB] [--disk MiB] [--ports LO-HI]\n"
            "                  [--attr KEY=VALUE]... [--taint KEY[=VALUE]:EFFECT]...\n"
            "                  [--heartbeat-ms MS] [--poll-wait-ms MS] [--kill-grace-ms MS]\n"
            "                  [--orphan-grace MS] [--log-listen URL]\n"
            "                  [--retain-count N] [--retain-ms MS]\n"
            "                  [--isolation auto|cgroup|rlimit|none] [--task-user USER]\n"
            "                  [--task-root DIR] [--task-pids-max N]\n"
            "                  [--tls-cert FILE --tls-key FILE --tls-ca FILE [--tls-crl FILE]]\n"
            "                  [--token-file FILE]\n"
            "       cell-agent --simulate N [--sim-prefix P] [--sim-duration MS|LO-HI]\n"
            "                  [--seed N] [the flags above]\n"
            "--server (one URL, or the comma-separated replicas of a replicated cell)\n"
            "defaults to $CELL_SERVER, else %s; capacity is detected\n"
            "from the host unless given (simulated machines: 8 cores, 16384 MiB, 100000 MiB).\n"
            "--tls-cert, --tls-key, --tls-ca: this agent's certificate, its key and the\n"
            "cell's CA (PEM; else $CELLSCHED_TLS_CERT, _KEY, _CA): needed for, and only for,\n"
            "tls+tcp:// servers; with them the log service is TLS too (--log-listen default\n"
            "tls+tcp://0.0.0.0:0).\n"
            "--token-file FILE (else $CELLSCHED_TOKEN_FILE): the token of agent:NAME in a cell\n"
            "with roles from tokens (cellstated --auth-tokens, docs/security.md).\n"
            "--tls-crl: the CA's revocation list (PEM; else $CELLSCHED_TLS_CRL): a peer\n"
            "whose certificate it lists is refused.\n"
            "--orphan-grace (default %d): a task whose agent has been gone this long is\n"
            "stopped by its supervisor.\n"
            "--taint EFFECT is NoSchedule, PreferNoSchedule or NoExecute: tasks that do not\n"
            "tolerate the taint (the job's tolerations) are not placed here, placed here last,\n"
            "or neither placed nor kept here.\n"
            "Tasks' output is served (cellctl logs) on --log-listen, default %s (a free\n"
            "port; advertised with this host's name); an ended task's directory is deleted\n"
            "once %u newer ones ended (--retain-count) or %u ms after it ended (--retain-ms).\n"
            "Each task runs in its own cgroup (--isolation auto: v2 or v1, whichever is\n"
            "mounted; else rlimits, said at start; cgroup: cgroups or refuse to start;\n"
            "rlimit; none), with its memory request as its memory limit, its cpu as a share\n"
            "(or a cap: the job's cpu_limit) and at most --task-pids-max (default %u)\n"
            "processes; as --task-user (default: %s, made when root, else nobody; not\n"
            "root: the agent's own user) in its own directory under --task-root (default:\n"
            "the work directory's path followed by -tasks).\n",
            CS_DEFAULT_URL, AG_ORPHAN_GRACE_DEFAULT_MS, AG_LOG_LISTEN_DEFAULT,
            AG_RETAIN_COUNT_DEFAULT, AG_RETAIN_MS_DEFAULT, AG_ISO_PIDS_DEFAULT,
            AG_ISO_DEFAULT_USER);
}

typedef struct flags {
    const char *server, *name, *workdir, *prefix, *log_listen;
    ag_retain retain;
    bool have_cpu, have_mem, have_disk; /* false: detect */
    cs_res res;
    uint16_t port_lo, port_hi;
    cs_attr attrs[CS_ATTR_MAX];
    uint32_t nattrs;
    cs_taint taints[CS_TAINT_MAX];
    uint32_t ntaints;
    cs_arena arena; /* the taints' strings */
    ag_config cfg;
    uint32_t simulate, dur_lo, dur_hi;
    uint32_t orphan_grace_ms;
    uint64_t seed;
    ag_iso_opts iso; /* task_root: NULL until run_machine picks the default */
    cs_tls_files tls_files;
    cs_tls *tls; /* loaded in main from tls_files: the cellstated client's certificates */
    const char *token_file; /* --token-file, else $CELLSCHED_TOKEN_FILE */
} flags;

static int num(const char *flag, const char *v, unsigned long long min, unsigned long long max,
               unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (*v == '\0' || *end != '\0' || errno != 0 || v[0] == '-' || x < min || x > max) {
        fprintf(stderr, "cell-agent: %s: '%s' is not a number in %llu..%llu\n", flag, v, min,
                max);
        return -1;
    }
    *out = x;
    return 0;
}

static int parse_ports(const char *v, flags *f)
{
    unsigned lo, hi;
    int used = 0;
    if (sscanf(v, "%u-%u%n", &lo, &hi, &used) != 2 || v[used] != '\0' || lo > hi ||
        hi > 65535 || (lo == 0 && hi != 0)) {
        fprintf(stderr, "cell-agent: --ports: '%s' is not LO-HI with 1 <= LO <= HI <= 65535 "
                        "(or 0-0 for none)\n", v);
        return -1;
    }
    f->port_lo = (uint16_t)lo;
    f->port_hi = (uint16_t)hi;
    return 0;
}

static int parse_attr(char *v, flags *f)
{
    char *eq = strchr(v, '=');
    if (eq == NULL || eq == v || strlen(eq + 1) > CS_ATTR_LEN_MAX ||
        (size_t)(eq - v) > CS_ATTR_LEN_MAX) {
        fprintf(stderr, "cell-agent: --attr: '%s' is not KEY=VALUE (non-empty key, each at "
                        "most %d bytes)\n", v, CS_ATTR_LEN_MAX);
        return -1;
    }
    if (f->nattrs == CS_ATTR_MAX) {
        fprintf(stderr, "cell-agent: --attr: at most %d attributes\n", CS_ATTR_MAX);
        return -1;
    }
    *eq = '\0';
    for (uint32_t i = 0; i < f->nattrs; i++)
        if (strcmp(f->attrs[i].key, v) == 0) {
            fprintf(stderr, "cell-agent: --attr: key '%s' given twice\n", v);
            return -1;
        }
    f->attrs[f->nattrs].key = v;
    f->attrs[f->nattrs].value = eq + 1;
    f->nattrs++;
    return 0;
}

static int parse_taint(const char *v, flags *f)
{
    cs_error err = {0};
    cs_taint t;
    if (f->ntaints == CS_TAINT_MAX) {
        fprintf(stderr, "cell-agent: --taint: at most %d taints\n", CS_TAINT_MAX);
        return -1;
    }
    if (cs_taint_parse(v, &f->arena, &t, &err) != CS_OK) {
        fprintf(stderr, "cell-agent: --taint: %s\n", err.msg);
        return -1;
    }
    for (uint32_t i = 0; i < f->ntaints; i++)
        if (strcmp(f->taints[i].key, t.key) == 0 && f->taints[i].effect == t.effect) {
            fprintf(stderr, "cell-agent: --taint: %s:%s given twice\n", t.key,
                    cs_taint_effect_name(t.effect));
            return -1;
        }
    f->taints[f->ntaints++] = t;
    cs_taints_sort(f->taints, f->ntaints);
    return 0;
}

/* Returns 0 to run, 1 for --help, -1 for a bad command line. */
static int parse_flags(int argc, char **argv, flags *f)
{
    ag_config_default(&f->cfg);
    f->port_lo = 31000;
    f->port_hi = 32000;
    f->prefix = "sim-";
    f->dur_lo = 1000;
    f->dur_hi = 1000;
    f->seed = 1;
    f->orphan_grace_ms = AG_ORPHAN_GRACE_DEFAULT_MS;
    f->log_listen = AG_LOG_LISTEN_DEFAULT;
    f->retain = (ag_retain){AG_RETAIN_COUNT_DEFAULT, AG_RETAIN_MS_DEFAULT};
    f->iso = (ag_iso_opts){AG_ISO_AUTO, NULL, NULL, AG_ISO_PIDS_DEFAULT};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return 1;
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "cell-agent: unexpected argument '%s'\n", a);
            return -1;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "cell-agent: %s needs a value\n", a);
            return -1;
        }
        char *v = argv[++i];
        unsigned long long x = 0;
        cs_error err = {0};
        int rc = 0;
        if (cs_tls_flag(a, v, &f->tls_files))
            continue;
        if (strcmp(a, "--server") == 0)
            f->server = v;
        else if (strcmp(a, "--token-file") == 0)
            f->token_file = v;
        else if (strcmp(a, "--name") == 0)
            f->name = v;
        else if (strcmp(a, "--workdir") == 0)
            f->workdir = v;
        else if (strcmp(a, "--log-listen") == 0)
            f->log_listen = v;
        else if (strcmp(a, "--task-user") == 0)
            f->iso.task_user = v;
        else if (strcmp(a, "--task-root") == 0)
            f->iso.task_root = v;
        else if (strcmp(a, "--task-pids-max") == 0 && (rc = num(a, v, 1, 4194304, &x)) == 0)
            f->iso.pids_max = (uint32_t)x;
        else if (strcmp(a, "--isolation") == 0) {
            if (ag_iso_parse(v, &f->iso.want, &err) != CS_OK) {
                fprintf(stderr, "cell-agent: --isolation: %s\n", err.msg);
                rc = -1;
            }
        }
        else if (strcmp(a, "--retain-count") == 0 && (rc = num(a, v, 0, 1000000, &x)) == 0)
            f->retain.keep = (uint32_t)x;
        else if (strcmp(a, "--retain-ms") == 0 && (rc = num(a, v, 0, UINT32_MAX, &x)) == 0)
            f->retain.max_age_ms = x;
        else if (strcmp(a, "--cpu") == 0) {
            f->have_cpu = true;
            if (ag_host_parse_cores(v, &f->res.cpu, &err) != CS_OK) {
                fprintf(stderr, "cell-agent: --cpu: %s\n", err.msg);
                rc = -1;
            }
        } else if (strcmp(a, "--mem") == 0 &&
                   (rc = num(a, v, 0, (unsigned long long)CS_RES_MAX, &x)) == 0) {
            f->have_mem = true;
            f->res.mem = (int64_t)x;
        } else if (strcmp(a, "--disk") == 0 &&
                   (rc = num(a, v, 0, (unsigned long long)CS_RES_MAX, &x)) == 0) {
            f->have_disk = true;
            f->res.disk = (int64_t)x;
        }
        else if (strcmp(a, "--ports") == 0)
            rc = parse_ports(v, f);
        else if (strcmp(a, "--attr") == 0)
            rc = parse_attr(v, f);
        else if (strcmp(a, "--taint") == 0)
            rc = parse_taint(v, f);
        else if (strcmp(a, "--heartbeat-ms") == 0 && (rc = num(a, v, 10, 3600000, &x)) == 0)
            f->cfg.heartbeat_ms = (uint32_t)x;
        else if (strcmp(a, "--poll-wait-ms") == 0 && (rc = num(a, v, 0, 3600000, &x)) == 0)
            f->cfg.poll_wait_ms = (uint32_t)x;
        else if (strcmp(a, "--kill-grace-ms") == 0 && (rc = num(a, v, 1, 3600000, &x)) == 0)
            f->cfg.kill_grace_ms = (uint32_t)x;
        else if (strcmp(a, "--orphan-grace") == 0 &&
                 (rc = num(a, v, AG_ORPHAN_GRACE_MIN_MS, 86400000, &x)) == 0)
            f->orphan_grace_ms = (uint32_t)x;
        else if (strcmp(a, "--simulate") == 0 && (rc = num(a, v, 1, 1000000, &x)) == 0)
            f->simulate = (uint32_t)x;
        else if (strcmp(a, "--sim-prefix") == 0)
            f->prefix = v;
        else if (strcmp(a, "--seed") == 0 && (rc = num(a, v, 0, UINT64_MAX, &x)) == 0)
            f->seed = x;
        else if (strcmp(a, "--sim-duration") == 0) {
            if (ag_sim_parse_duration(v, &f->dur_lo, &f->dur_hi, &err) != CS_OK) {
                fprintf(stderr, "cell-agent: --sim-duration: %s\n", err.msg);
                rc = -1;
            }
        } else if (strcmp(a, "--heartbeat-ms") != 0 && strcmp(a, "--poll-wait-ms") != 0 &&
                   strcmp(a, "--kill-grace-ms") != 0 && strcmp(a, "--simulate") != 0 &&
                   strcmp(a, "--orphan-grace") != 0 &&
                   strcmp(a, "--seed") != 0 && strcmp(a, "--mem") != 0 &&
                   strcmp(a, "--disk") != 0 && strcmp(a, "--retain-count") != 0 &&
                   strcmp(a, "--retain-ms") != 0 && strcmp(a, "--task-pids-max") != 0) {
            fprintf(stderr, "cell-agent: unknown flag %s\n", a);
            rc = -1;
        }
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* Capacity from the flags, each amount the operator did not give from
 * `detected` (NULL: the simulator's defaults). */
static void capacity(const flags *f, const cs_res *detected, cs_res *out)
{
    *out = detected ? *detected : (cs_res){8000, 16384, 100000};
    if (f->have_cpu)
        out->cpu = f->res.cpu;
    if (f->have_mem)
        out->mem = f->res.mem;
    if (f->have_disk)
        out->disk = f->res.disk;
}

/* Wait for SIGTERM or SIGINT (blocked in every thread since main began);
 * every 10 s, print what the simulator is doing. */
static void wait_for_stop(const sigset_t *set, ag_sim *sim, uint32_t n)
{
    struct timespec every = {10, 0};
    for (;;) {
        int sig = sigtimedwait(set, NULL, &every);
        if (sig == SIGTERM || sig == SIGINT) {
            fprintf(stderr, "cell-agent: %s, stopping (tasks keep running)\n",
                    sig == SIGTERM ? "SIGTERM" : "SIGINT");
            return;
        }
        if (sim != NULL) {
            uint32_t reg;
            ag_counts c;
            ag_sim_counts(sim, &reg, &c);
            fprintf(stderr, "cell-agent: %u/%u machines registered, %u tasks running, %llu "
                            "started, %llu reported\n", reg, n, c.running,
                    (unsigned long long)c.started, (unsigned long long)c.reported);
        }
    }
}

static int adopt_one(void *arg, const ag_task *t)
{
    ag_machine *m = arg;
    cs_error err = {0};
    fprintf(stderr, "cell-agent: adopting task %llu attempt %u (%s): %s\n",
            (unsigned long long)t->id, t->attempt, t->job,
            t->phase == AG_ENDED ? "ended, to report" : "running");
    if (ag_machine_adopt(m, t, &err) != CS_OK) {
        fprintf(stderr, "cell-agent: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int run_simulator(const flags *f, const char *url, const sigset_t *set)
{
    ag_sim_opts o = {f->simulate, f->prefix, f->seed, f->dur_lo, f->dur_hi, f->cfg, f->tls};
    capacity(f, NULL, &o.machine.capacity);
    /* Every simulated machine offers the same ports and attributes. */
    o.machine.port_lo = f->port_lo;
    o.machine.port_hi = f->port_hi;
    o.machine.attrs = f->attrs;
    o.machine.nattrs = f->nattrs;
    o.machine.taints = f->taints;
    o.machine.ntaints = f->ntaints;
    ag_sim *sim;
    cs_error err = {0};
    if (ag_sim_open(url, &o, &sim, &err) != CS_OK) {
        fprintf(stderr, "cell-agent: %s\n", err.msg);
        return err.code == CS_EINVAL ? 2 : 1;
    }
    fprintf(stderr, "cell-agent: simulating %u machines (%s%05u..) against %s\n", f->simulate,
            f->prefix, 0u, url);
    ag_sim_start(sim);
    wait_for_stop(set, sim, f->simulate);
    ag_sim_close(sim);
    return 0;
}

/* `url` is the list as given (for the log), `servers` the same parsed. */
static int run_machine(const flags *f, const char *url, const cs_servers *servers,
                       const sigset_t *set)
{
    char host[CS_NAME_MAX + 1], workdir[4096], self[4096];
    cs_error err = {0};
    const char *name = f->name;
    if (name == NULL) {
        if (ag_host_name(host, sizeof host, &err) != CS_OK) {
            fprintf(stderr, "cell-agent: %s; give --name\n", err.msg);
            return 1;
        }
        name = host;
    }
    if (f->workdir != NULL)
        snprintf(workdir, sizeof workdir, "%s", f->workdir);
    else {
        char leaf[CS_NAME_MAX + 8];
        snprintf(leaf, sizeof leaf, "agent-%s", name);
        if (cs_default_state_path_env(leaf, "--workdir", workdir, sizeof workdir, &err) != CS_OK) {
            fprintf(stderr, "cell-agent: %s\n", err.msg);
            return 1;
        }
    }
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        fprintf(stderr, "cell-agent: cannot find its own binary (/proc/self/exe): %s\n",
                strerror(errno));
        return 1;
    }
    self[n] = '\0';
    int rc = 1, rv;
    ag_iso *iso = NULL;
    ag_runner *runner = NULL;
    ag_alive *alive = NULL;
    ag_logsrv *logs = NULL;
    cs_clock *clock = NULL;
    ag_machine *m = NULL;
    nng_socket sock;
    bool sock_open = false;
    /* Before any thread: on cgroup v2 the agent may move itself into a
     * leaf cgroup (isolate.h). */
    char task_root[4200], note[4096 + CS_ERROR_MSG_SIZE];
    ag_iso_opts io = f->iso;
    if (io.task_root == NULL) {
        snprintf(task_root, sizeof task_root, "%s-tasks", workdir);
        io.task_root = task_root;
    }
    if (ag_iso_open(&io, &iso, note, sizeof note, &err) != CS_OK) {
        fprintf(stderr, "cell-agent: %s\n", err.msg);
        rc = 2;
        goto cleanup;
    }
    fprintf(stderr, "cell-agent: %s\n", note);
    if (ag_runner_open(workdir, self, f->cfg.tick_ms, iso, &runner, &err) != CS_OK ||
        ag_alive_start(workdir, f->orphan_grace_ms, &alive, &err) != CS_OK) {
        fprintf(stderr, "cell-agent: %s\n", err.msg);
        goto cleanup;
    }
    char me[CS_NAME_MAX + 1];
    if (ag_host_name(me, sizeof me, &err) != CS_OK)
        snprintf(me, sizeof me, "%s", name);
    if (ag_logsrv_open(workdir, f->log_listen, me, f->tls, &f->retain, &logs, &err) != CS_OK) {
        fprintf(stderr, "cell-agent: %s\n", err.msg);
        rc = err.code == CS_EINVAL ? 2 : 1;
        goto cleanup;
    }
    cs_res detected = {0, 0, 0};
    if (!(f->have_cpu && f->have_mem && f->have_disk) &&
        ag_host_capacity(workdir, &detected, &err) != CS_OK) {
        fprintf(stderr, "cell-agent: %s; give --cpu, --mem and --disk\n", err.msg);
        goto cleanup;
    }
    ag_config cfg = f->cfg;
    cfg.name = name;
    cfg.port_lo = f->port_lo;
    cfg.port_hi = f->port_hi;
    /* The machine's isolation level as an attribute, unless the operator
     * set that key himself: `cellctl get machines` shows it. */
    cs_attr attrs[CS_ATTR_MAX];
    uint32_t nattrs = f->nattrs;
    bool given = false;
    memcpy(attrs, f->attrs, nattrs * sizeof attrs[0]);
    for (uint32_t i = 0; i < nattrs; i++)
        given |= strcmp(attrs[i].key, AG_ISO_ATTR) == 0;
    if (!given && nattrs < CS_ATTR_MAX)
        attrs[nattrs++] = (cs_attr){AG_ISO_ATTR, ag_iso_level_name(ag_iso_level_of(iso))};
    cfg.attrs = attrs;
    cfg.nattrs = nattrs;
    cfg.log_url = ag_logsrv_url(logs);
    cfg.taints = f->taints;
    cfg.ntaints = f->ntaints;
    capacity(f, &detected, &cfg.capacity);
    if ((rv = nng_req0_open(&sock)) != 0) {
        fprintf(stderr, "cell-agent: socket: %s\n", nng_strerror(rv));
        goto cleanup;
    }
    sock_open = true;
    nng_socket_set_ms(sock, NNG_OPT_RECONNMINT, 20);
    nng_socket_set_ms(sock, NNG_OPT_RECONNMAXT, 1000);
    nng_socket_set_size(sock, NNG_OPT_RECVMAXSZ, 0);
    if (cs_servers_dial(sock, servers, f->tls, &err) != CS_OK) {
        fprintf(stderr, "cell-agent: %s\n", err.msg);
        rc = 2;
        goto cleanup;
    }
    ag_backend be;
    ag_runner_backend(runner, &be);
    if (cs_clock_new(&clock, &err) != CS_OK ||
        ag_machine_new(sock, clock, &cfg, &be, &m, &err) != CS_OK) {
        fprintf(stderr, "cell-agent: %s\n", err.msg);
        goto cleanup;
    }
    if (ag_runner_scan(runner, adopt_one, m, &err) != 0)
        goto cleanup;
    fprintf(stderr, "cell-agent: machine %s (cpu %lld millicores, mem %lld MiB, disk %lld MiB, "
                    "ports %u-%u) in %s, server %s, orphan grace %u ms, logs at %s\n", name,
            (long long)cfg.capacity.cpu, (long long)cfg.capacity.mem,
            (long long)cfg.capacity.disk, cfg.port_lo, cfg.port_hi, workdir, url,
            f->orphan_grace_ms, cfg.log_url);
    ag_machine_start(m);
    wait_for_stop(set, NULL, 0);
    ag_machine_stop(m);
    rc = 0;
cleanup:
    ag_machine_free(m);
    cs_clock_free(clock);
    if (sock_open)
        nng_close(sock);
    ag_alive_stop(alive);
    ag_logsrv_close(logs);
    ag_runner_close(runner);
    ag_iso_close(iso);
    return rc;
}

int main(int argc, char **argv)
{
    /* The supervisor of one task: see runner.h. */
    if (argc == 3 && strcmp(argv[1], "--supervise") == 0)
        return ag_supervise(argv[2]);
    flags f;
    memset(&f, 0, sizeof f);
    cs_arena_init(&f.arena);
    int p = parse_flags(argc, argv, &f);
    if (p != 0) {
        cs_arena_free(&f.arena);
        usage(p > 0 ? stdout : stderr);
        return p > 0 ? 0 : 2;
    }
    /* The whole list is checked before anything starts: a bad entry is a
     * bad command line, named. */
    const char *url;
    cs_servers servers;
    cs_error perr = {0};
    if (cs_servers_from(f.server, &servers, &url, &perr) != CS_OK) {
        fprintf(stderr, "cell-agent: %s\n", perr.msg);
        cs_arena_free(&f.arena);
        return 2;
    }
    /* The certificates too, before anything starts (proto/tls.h). */
    cs_tls_files_env(&f.tls_files);
    if (cs_tls_load(&f.tls_files, &f.tls, &perr) != CS_OK) {
        fprintf(stderr, "cell-agent: %s\n", perr.msg);
        cs_arena_free(&f.arena);
        return 2;
    }
    /* The token, for a cell whose roles come from tokens. It lives as
     * long as the process: every machine's loop borrows it. */
    char *token = NULL;
    if (cs_token_load(f.token_file, &token, &perr) != CS_OK) {
        fprintf(stderr, "cell-agent: %s\n", perr.msg);
        cs_tls_free(f.tls);
        cs_arena_free(&f.arena);
        return 2;
    }
    f.cfg.token = token;
    /* With certificates the log service is TLS too, unless told where. */
    if (f.tls != NULL && strcmp(f.log_listen, AG_LOG_LISTEN_DEFAULT) == 0)
        f.log_listen = AG_LOG_LISTEN_TLS_DEFAULT;
    if (cs_servers_check_tls(&servers, f.tls, &perr) != CS_OK ||
        cs_tls_check_url(f.tls, f.log_listen, "--log-listen", &perr) != CS_OK) {
        fprintf(stderr, "cell-agent: %s\n", perr.msg);
        cs_tls_free(f.tls);
        free(token);
        cs_arena_free(&f.arena);
        return 2;
    }

    /* Block the stop signals before nng starts its threads, so that only
     * wait_for_stop receives them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = f.simulate > 0 ? run_simulator(&f, url, &set) : run_machine(&f, url, &servers, &set);
    cs_tls_free(f.tls);
    free(token);
    cs_arena_free(&f.arena);
    return rc;
}
