/* cellchaos_procs.h — the processes of a chaos run: the replicas of a
 * replicated cell, the schedulers and the agent simulators, each started,
 * killed with SIGKILL and started again by cellchaos, and every one of them
 * stopped at the end.
 *
 * Why the tool starts everything itself: a chaos test must be able to kill
 * any process at any moment and bring it back with the same arguments and
 * the same data, which only the parent that started it can do (it holds the
 * pid, the command line and the log). Every process runs on 127.0.0.1: the
 * replicas on ports chosen here (the cluster file lists them, so they must
 * be known before any replica starts, and a restarted replica must get the
 * same ones back), the rest dialling out.
 */
#ifndef CC_PROCS_H
#define CC_PROCS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cellstate/error.h"

/* The kinds of victim, as the report counts its kills. */
typedef enum cc_kind { CC_REPLICA = 0, CC_SCHEDULER = 1, CC_AGENT = 2, CC_KIND_COUNT } cc_kind;

/* "replica", "scheduler", "agent". */
const char *cc_kind_name(cc_kind k);

#define CC_REPLICAS_MAX 7
#define CC_ARGS_MAX 40
#define CC_PATH_MAX 512

/* One process: its command line (the same at every start) and its state. */
typedef struct cc_proc {
    cc_kind kind;
    char name[32];            /* "replica-1", "batch-0", "service", "agent-2" */
    char log[CC_PATH_MAX];    /* stdout and stderr, appended across restarts */
    char *argv[CC_ARGS_MAX + 1];
    char args[CC_ARGS_MAX][CC_PATH_MAX]; /* argv's strings */
    int pid;                  /* 0 when not running */
    int64_t restart_ns;       /* CLOCK_MONOTONIC time to start it again; 0: none due */
    uint32_t kills;           /* SIGKILLs sent by the chaos */
    uint32_t exits;           /* exits nobody asked for (a crash, or a refusal to start) */
} cc_proc;

/* What to start. */
typedef struct cc_layout {
    const char *dir;      /* where the data, the logs and the cluster file go (exists) */
    const char *bindir;   /* where cellstated, cell-batch, cell-service, cell-agent are */
    uint32_t replicas;    /* 1 .. CC_REPLICAS_MAX */
    uint32_t batch;       /* cell-batch processes, 1 .. 64 */
    uint32_t machines;    /* simulated machines, spread over `agents` processes */
    uint32_t agents;      /* cell-agent --simulate processes, 1 .. 64 */
    uint32_t heartbeat_timeout_ms; /* cellstated's; agents heartbeat at a fifth of it */
    uint64_t seed;        /* the ports' choice and the simulators' seeds */
} cc_layout;

typedef struct cc_cell {
    uint32_t nreplicas;
    char url[CC_REPLICAS_MAX][64];  /* each replica's listen URL */
    char raft[CC_REPLICAS_MAX][64]; /* each replica's Raft host:port */
    char cluster[CC_PATH_MAX];      /* the cluster file */
    char servers[CC_REPLICAS_MAX * 64]; /* every listen URL, comma-separated (--server) */
    cc_proc *procs;                 /* replicas first, then schedulers, then agents */
    size_t nprocs;
} cc_cell;

/* The directory of the cell's binaries: $CELLSCHED_BIN when set, else the
 * directory of this executable, as cellbench finds cellstated. CS_ENOTFOUND
 * naming the first of the four binaries that is not an executable there. */
int cc_bindir(char *out, size_t size, cs_error *err);

/* Choose the ports, write the cluster file and fill every process's command
 * line (nothing is started). Ports lie above the kernel's ephemeral range
 * (ip_local_port_range), so that no outgoing connection of any process can
 * hold a replica's port while that replica is down, and outside the tests'
 * reserved range (tests/support.h); each is checked free when chosen. On
 * success `c` owns memory: cc_cell_free. */
int cc_cell_init(cc_cell *c, const cc_layout *l, cs_error *err);
void cc_cell_free(cc_cell *c);

/* Start `p` (not running): its output appended to its log, its signal mask
 * cleared, and SIGKILL sent to it if cellchaos itself dies. */
int cc_proc_start(cc_proc *p, cs_error *err);

/* SIGKILL `p` and reap it; counts a kill. Nothing when not running. */
void cc_proc_kill(cc_proc *p);

/* Whether `p` exited on its own (a crash, or a refusal to start) since it
 * was started: if so it is reaped and counted as an exit. */
bool cc_proc_reap(cc_proc *p);

/* SIGTERM every running process, wait up to `timeout_ms` for all of them,
 * then SIGKILL what is left; reaps all. */
void cc_cell_stop(cc_cell *c, uint32_t timeout_ms);

#endif
