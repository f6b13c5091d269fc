/* internal.h — what cellstated's files share, and nothing else includes.
 *
 * cellstated is split along its seams, each a file of server/:
 *
 *   server.c    transport: the nng workers, one table routing each message
 *               type to its handler (a read, a write, or a poll), start/stop
 *   reads.c     get.machines, get.jobs, get.tasks, get.job, stats: answered
 *               from a snapshot on the worker's thread
 *   feed.c      what keeps readers current: sync, and agents' polls parked
 *               until their machine changes, woken by the writer
 *   writer.c    the one writer thread: every write, in arrival order, in
 *               group commits; after each group, wake-ups and the version
 *   monitor.c   heartbeats, the monitor thread that marks silent machines
 *               down and judges drain deadlines, upkeep (job GC, compaction)
 *   reports.c   schedulers' sched.report, kept in memory for stats
 *
 * Names shared between these files carry the srv_ prefix; everything else
 * is static to its file. Threads and locks are described in server.c.
 */
#ifndef CS_SERVER_INTERNAL_H
#define CS_SERVER_INTERNAL_H

#include <nng/nng.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "cellstate/store.h"
#include "proto/proto.h"
#include "proto/schedreport.h"
#include "server/server.h"

typedef enum wstate { W_INIT, W_RECV, W_WRITE, W_WAIT, W_SEND } wstate;

typedef struct worker worker;

/* An item of the writer's queue: a worker's request, or one of the
 * monitor's (w == NULL): "machine is silent" (down_machine), "its drain
 * deadline came" (down_machine with drain), or "these ended jobs are due
 * for collection" (gc, ngc: owned by the item). */
typedef struct wjob {
    struct wjob *next;
    worker *w;
    cs_id down_machine;
    cs_id *gc;
    size_t ngc;
    bool drain;
} wjob;

/* A FIFO of queued writes. */
typedef struct wlane {
    wjob *head, *tail;
} wlane;
enum { LANE_CELL, LANE_REPORTS, NLANES };

struct worker {
    cs_server *s;
    nng_aio *aio;
    nng_ctx ctx;
    wstate state;
    nng_msg *req; /* the request being served; owned */
    msgpack_zone zone;
    cs_msg msg;
    wjob job;
    int64_t recv_ms; /* when nng handed us the request (monotonic) */
    /* A parked poll, in its machine's list (mslot.parked). */
    cs_id poll_machine;
    uint64_t poll_since;
    bool poll_jobs_once; /* the compact reply: each job once, entries name it */
    bool poll_short;     /* "known": "short": tasks unchanged since poll_since come short */
    bool parked;
    worker *wprev, *wnext;
};

typedef struct mslot {
    int64_t seen_ms;  /* receipt of the last heartbeat or registration (monotonic) */
    uint64_t changed; /* cell version of the machine record's last change */
    /* The record's state as of s->version, kept by the writer (after_write)
     * so that a heartbeat is answered from memory: it never opens a
     * snapshot, which waits while the writer publishes a group. */
    uint8_t state;
    bool known; /* a record with this id exists */
    bool down_queued;
    bool drain_queued; /* the monitor queued its drain deadline's verdict */
    /* The polls parked on this machine: a write wakes only the polls of the
     * machines it changed, instead of walking every parked poll of the cell
     * (10,000 at 10,000 machines) under `mu` at each write. */
    struct worker *parked;
} mslot;

#define STATE_UNREAD 0xff /* after_write: a changed machine whose state it could not read */

typedef struct counters {
    uint64_t requests, errors, writes, commits, commits_conflicted, claims, claims_committed;
    uint64_t queued; /* writes waiting for the writer now */
} counters;

struct cs_server {
    cs_server_opts o;
    char *data_dir, *listen_url, *pub_url;
    cs_store *store;
    nng_socket rep, pub;
    bool have_pub;
    worker *workers;
    uint32_t nworkers;

    pthread_mutex_t mu;
    pthread_cond_t cv;     /* the writer's queue is not empty, or stopping */
    pthread_cond_t mon_cv; /* stopping: wakes the monitor's sleep */
    /* The writer's queue, in two lanes: [LANE_CELL] the schedulers' and
     * operators' writes (commits, jobs, machines, the monitor's verdicts),
     * [LANE_REPORTS] the agents' task reports. See writer_main. */
    wlane lanes[NLANES];
    bool stopping;
    pthread_t writer, monitor;
    bool writer_started, monitor_started;
    /* The monitor's probe (monitor_main): a chain of PROBE_HOPS callbacks
     * through nng's task queue, the queue that reads heartbeats. */
    nng_aio *probe;
    bool probe_busy;
    uint32_t probe_hops;
    int64_t probe_armed_ms;
    int64_t served_ms; /* requests received before this have been read */
    bool gc_queued;    /* a collection of ended jobs waits for the writer */
    nng_listener listener;
    mslot *mach;
    size_t nmach;
    uint32_t nparked;
    uint64_t version;
    counters c;
    /* The machines the writer's current group changed, from its commands'
     * results (writer.c): the polls to wake. Writer thread only. */
    struct wtouched *touched;

    pthread_mutex_t rmu;
    cs_sched_table reports; /* the latest sched.report of each scheduler */
};

static inline int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wall-clock milliseconds since the epoch, for what people read as a date. */
static inline uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}


#define PK(call)                                                       \
    do {                                                               \
        if ((call) != 0)                                               \
            return cs_errorf(err, CS_ENOMEM, "reply: out of memory");  \
    } while (0)

/* The body of the request `w` serves: valid until its reply is sent. */
static inline const msgpack_object *body(worker *w) { return &w->msg.body; }

static inline int open_snap(worker *w, cs_snap **snap, cs_error *err)
{
    return cs_snap_open(w->s->store, snap, err);
}

/* ---- transport (server.c) ---- */

/* A handler packs the body of a successful reply into `pk` (the envelope is
 * already there) or returns an error code with `err` filled. */
typedef int (*handler_fn)(worker *w, msgpack_packer *pk, cs_error *err);

/* How a message type is served: read on the worker's thread, queued for
 * the writer, or (poll) parked until its machine changes. */
typedef enum srv_how { SRV_NONE, SRV_READ, SRV_WRITE, SRV_PARK } srv_how;

/* One row of the dispatch table. */
typedef struct srv_route {
    handler_fn fn; /* SRV_READ, SRV_WRITE */
    srv_how how;
} srv_route;

/* The route of message type `type`; how == SRV_NONE for a type that is not
 * a request. */
const srv_route *srv_route_of(uint32_t type);

/* The slot of machine `id`, growing the table; NULL when out of memory.
 * Called with mu held. */
mslot *srv_slot_of(cs_server *s, cs_id id);

/* Send `data[0..len)` (copied) as w's reply; the request is released. */
void srv_send_bytes(worker *w, const void *data, size_t len);
/* Send an error reply with `code` and `message` (copied). */
void srv_send_error(worker *w, int code, const char *message);
/* The reply to w's request into `b`: fn's, or an error reply. */
void srv_build_reply(worker *w, handler_fn fn, msgpack_sbuffer *b);
/* Build and send the reply of fn. */
void srv_run_handler(worker *w, handler_fn fn);

/* ---- reads (reads.c) ---- */

int srv_get_machines(worker *w, msgpack_packer *pk, cs_error *err);
int srv_get_jobs(worker *w, msgpack_packer *pk, cs_error *err);
int srv_get_tasks(worker *w, msgpack_packer *pk, cs_error *err);
int srv_get_job(worker *w, msgpack_packer *pk, cs_error *err);
int srv_stats(worker *w, msgpack_packer *pk, cs_error *err);
/* {"version", "tasks": [{"task", "job"}, ...]}: the tasks placed on
 * `machine`, each with its job (a poll's reply in the "each" form). */
int srv_pack_machine_tasks(cs_snap *snap, msgpack_packer *pk, cs_id machine, cs_error *err);

/* ---- the feed (feed.c) ---- */

int srv_sync(worker *w, msgpack_packer *pk, cs_error *err);
/* Serve a poll: answer at once, or park w until its machine changes. */
void srv_poll(worker *w);
/* The reply of a poll whose wait ended. */
int srv_poll_reply(worker *w, msgpack_packer *pk, cs_error *err);
/* Take a parked poll off its machine's list (mu held). */
void srv_park_remove(cs_server *s, worker *w);
/* Wake the polls parked on `sl`, which changed at sl->changed (mu held). */
void srv_wake_polls(mslot *sl);

/* ---- the writer (writer.c) ---- */

int srv_register(worker *w, msgpack_packer *pk, cs_error *err);
int srv_submit(worker *w, msgpack_packer *pk, cs_error *err);
int srv_kill(worker *w, msgpack_packer *pk, cs_error *err);
int srv_job_end(worker *w, msgpack_packer *pk, cs_error *err);
int srv_scale(worker *w, msgpack_packer *pk, cs_error *err);
int srv_job_surge(worker *w, msgpack_packer *pk, cs_error *err);
int srv_machine_admin(worker *w, msgpack_packer *pk, cs_error *err);
int srv_update(worker *w, msgpack_packer *pk, cs_error *err);
int srv_job_note(worker *w, msgpack_packer *pk, cs_error *err);
int srv_commit(worker *w, msgpack_packer *pk, cs_error *err);
int srv_task_status(worker *w, msgpack_packer *pk, cs_error *err);
/* Queue `j` for the writer (its lane by kind). */
void srv_enqueue(cs_server *s, wjob *j);
/* The writer thread's body (arg: the cs_server). */
void *srv_writer_main(void *arg);

/* ---- the monitor (monitor.c) ---- */

int srv_heartbeat(worker *w, msgpack_packer *pk, cs_error *err);
/* The monitor thread's body (arg: the cs_server). */
void *srv_monitor_main(void *arg);
/* The callback of the monitor's probe through nng's task queue. */
void srv_probe_cb(void *arg);

/* ---- scheduler reports (reports.c) ---- */

int srv_sched_report(worker *w, msgpack_packer *pk, cs_error *err);

#endif
