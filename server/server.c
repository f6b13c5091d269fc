/* server.c — cellstated (see server.h).
 *
 * Threads: nng's callbacks run the workers (decode, reads, parking polls);
 * one writer thread applies every write in arrival order; one monitor
 * thread watches heartbeats. `mu` guards the write queue, the per-machine
 * table, the parked polls and the counters; `rmu` the schedulers' reports
 * (apart, so that reports and stats never wait behind polls).
 */
#include "server/server.h"

#include <errno.h>
#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/reqrep0/rep.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "proto/proto.h"
#include "proto/schedreport.h"
#include "cellstate/store.h"
#include "txn/command.h"
#include "txn/commit.h"
#include "txn/ops.h"
#include "cellstate/vec.h"

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

    pthread_mutex_t rmu;
    cs_sched_table reports; /* the latest sched.report of each scheduler */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wall-clock milliseconds since the epoch, for what people read as a date. */
static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void cs_server_opts_default(cs_server_opts *o)
{
    memset(o, 0, sizeof *o);
    o->listen_url = CS_DEFAULT_URL;
    o->workers = 1024;
    o->heartbeat_timeout_ms = CS_HEARTBEAT_TIMEOUT_DEFAULT_MS;
    o->poll_max_wait_ms = 30000;
    o->max_msg = CS_DEFAULT_MAX_MSG;
    o->job_gc_ms = 4 * 3600 * 1000;
    o->log_retain_ms = 10 * 60 * 1000;
}

/* The slot of machine `id`, growing the table; NULL when out of memory.
 * Called with mu held. */
static mslot *slot_of(cs_server *s, cs_id id)
{
    if (id >= s->nmach) {
        size_t n = s->nmach ? s->nmach : 64;
        while (n <= id)
            n *= 2;
        mslot *m = realloc(s->mach, n * sizeof *m);
        if (m == NULL)
            return NULL;
        memset(m + s->nmach, 0, (n - s->nmach) * sizeof *m);
        s->mach = m;
        s->nmach = n;
    }
    return &s->mach[id];
}

/* ---- replies ------------------------------------------------------------ */

static void release_req(worker *w)
{
    if (w->req != NULL) {
        nng_msg_free(w->req);
        w->req = NULL;
    }
    msgpack_zone_clear(&w->zone);
}

static void send_bytes(worker *w, const void *data, size_t len)
{
    release_req(w);
    nng_msg *m;
    if (nng_msg_alloc(&m, len) != 0) {
        /* Without memory for a reply the request is dropped; the client's
         * REQ socket times out and retries. */
        w->state = W_RECV;
        nng_ctx_recv(w->ctx, w->aio);
        return;
    }
    memcpy(nng_msg_body(m), data, len);
    w->state = W_SEND;
    nng_aio_set_msg(w->aio, m);
    nng_ctx_send(w->ctx, w->aio);
}

static void send_error(worker *w, int code, const char *message)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    if (code == CS_OK)
        code = CS_EINVAL;
    cs_msg_error(&b, w->msg.req, code, message);
    pthread_mutex_lock(&w->s->mu);
    w->s->c.errors++;
    pthread_mutex_unlock(&w->s->mu);
    send_bytes(w, b.data, b.size);
    msgpack_sbuffer_destroy(&b);
}

/* A handler packs the body of a successful reply into `pk` (the envelope is
 * already there) or returns an error code with `err` filled. */
typedef int (*handler_fn)(worker *w, msgpack_packer *pk, cs_error *err);

/* The reply to w's request: the handler's, or an error reply. */
static void build_reply(worker *w, handler_fn fn, msgpack_sbuffer *b)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, msgpack_sbuffer_write);
    cs_error err = {0};
    int rc = cs_msg_begin(&pk, w->msg.type, w->msg.req);
    if (rc == CS_OK)
        rc = fn(w, &pk, &err);
    if (rc == CS_OK)
        return;
    b->size = 0;
    cs_msg_error(b, w->msg.req, rc, err.msg[0] ? err.msg : cs_strerror(rc));
    pthread_mutex_lock(&w->s->mu);
    w->s->c.errors++;
    pthread_mutex_unlock(&w->s->mu);
}

static void run_handler(worker *w, handler_fn fn)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    build_reply(w, fn, &b);
    send_bytes(w, b.data, b.size);
    msgpack_sbuffer_destroy(&b);
}

#define PK(call)                                                       \
    do {                                                               \
        if ((call) != 0)                                               \
            return cs_errorf(err, CS_ENOMEM, "reply: out of memory");  \
    } while (0)
static const msgpack_object *body(worker *w) { return &w->msg.body; }

/* A record named in field `key` by id (an unsigned integer: *by_id, *id) or
 * by name (a string: name[]). */
static int ref_of(const msgpack_object *o, const char *key, const char *what, bool *by_id,
                  cs_id *id, char name[CS_NAME_MAX + 1], cs_error *err)
{
    const msgpack_object *v = cs_obj_get(o, key);
    if (v == NULL)
        return cs_errorf(err, CS_EPROTO, "field '%s' is missing", key);
    *by_id = v->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
    if (*by_id) {
        *id = v->via.u64;
        return CS_OK;
    }
    if (v->type == MSGPACK_OBJECT_STR && v->via.str.size <= CS_NAME_MAX) {
        memcpy(name, v->via.str.ptr, v->via.str.size);
        name[v->via.str.size] = '\0';
        return CS_OK;
    }
    return cs_errorf(err, CS_EPROTO, "field '%s' is neither a %s id nor a %s name", key, what,
                     what);
}

static int job_ref(cs_snap *snap, const msgpack_object *o, const char *key, cs_arena *a,
                   cs_job *out, cs_error *err)
{
    cs_id id = 0;
    bool by_id;
    char name[CS_NAME_MAX + 1];
    int rc = ref_of(o, key, "job", &by_id, &id, name, err);
    if (rc != CS_OK)
        return rc;
    return by_id ? cs_snap_job(snap, id, a, out, err) : cs_snap_job_by_name(snap, name, a, out, err);
}

static int machine_ref(cs_snap *snap, const msgpack_object *o, const char *key, cs_arena *a,
                       cs_machine *out, cs_error *err)
{
    cs_id id = 0;
    bool by_id;
    char name[CS_NAME_MAX + 1];
    int rc = ref_of(o, key, "machine", &by_id, &id, name, err);
    if (rc != CS_OK)
        return rc;
    return by_id ? cs_snap_machine(snap, id, a, out, err)
              : cs_snap_machine_by_name(snap, name, a, out, err);
}

/* ---- reads ------------------------------------------------------------------ */

/* The jobs of one poll reply, each read and packed once: a machine at C1M
 * scale holds ~100 tasks of a handful of jobs, and the job part (name,
 * command, options) is most of each entry. A small table with round-robin
 * replacement: bytes identical to packing each job again. */
#define JOB_MEMO 8

typedef struct job_memo {
    cs_id id[JOB_MEMO];
    msgpack_sbuffer packed[JOB_MEMO];
    unsigned n, next;
} job_memo;

static void job_memo_free(job_memo *jm)
{
    for (unsigned i = 0; i < jm->n; i++)
        msgpack_sbuffer_destroy(&jm->packed[i]);
}

/* The packed job `id` from the memo, packing it into the memo first when
 * absent. */
static int job_memo_get(job_memo *jm, cs_snap *snap, cs_id id, const msgpack_sbuffer **out)
{
    for (unsigned i = 0; i < jm->n; i++)
        if (jm->id[i] == id) {
            *out = &jm->packed[i];
            return CS_OK;
        }
    unsigned k;
    if (jm->n < JOB_MEMO) {
        k = jm->n++;
        msgpack_sbuffer_init(&jm->packed[k]);
    } else {
        k = jm->next++ % JOB_MEMO;
        jm->packed[k].size = 0;
    }
    jm->id[k] = 0; /* no job has id 0: matches nothing until packed */
    cs_arena a;
    cs_arena_init(&a);
    cs_job j;
    cs_error ignored;
    int rc = cs_snap_job(snap, id, &a, &j, &ignored);
    if (rc == CS_OK) {
        msgpack_packer pk;
        msgpack_packer_init(&pk, &jm->packed[k], msgpack_sbuffer_write);
        rc = cs_pack_job(&pk, &j);
    }
    cs_arena_free(&a);
    if (rc != CS_OK)
        return rc;
    jm->id[k] = id;
    *out = &jm->packed[k];
    return CS_OK;
}

typedef struct pack_ctx {
    msgpack_packer *pk;
    uint32_t n;
    bool failed;
    /* filters for tasks */
    cs_id job, machine;
    int state; /* -1: any */
    bool placed_only;
    cs_snap *snap;
    bool with_job;
    job_memo *memo; /* with_job: the jobs packed so far */
} pack_ctx;

static int count_machine(void *ctx, const cs_machine *m)
{
    (void)m;
    ((pack_ctx *)ctx)->n++;
    return 0;
}
static int put_machine(void *ctx, const cs_machine *m)
{
    pack_ctx *p = ctx;
    p->failed |= cs_pack_machine(p->pk, m) != CS_OK;
    return 0;
}
static int count_job(void *ctx, const cs_job *j)
{
    (void)j;
    ((pack_ctx *)ctx)->n++;
    return 0;
}
static int put_job(void *ctx, const cs_job *j)
{
    pack_ctx *p = ctx;
    p->failed |= cs_pack_job(p->pk, j) != CS_OK;
    return 0;
}

static bool task_wanted(const pack_ctx *p, const cs_task *t)
{
    return (p->job == 0 || t->job == p->job) && (p->machine == 0 || t->machine == p->machine) &&
           (p->state < 0 || t->state == p->state) &&
           (!p->placed_only || cs_task_state_placed(t->state));
}
static int count_task(void *ctx, const cs_task *t)
{
    pack_ctx *p = ctx;
    p->n += task_wanted(p, t);
    return 0;
}

/* A task as agents need it: the record, plus its job's name and command. */
static int pack_task_for_agent(msgpack_packer *pk, cs_snap *snap, job_memo *jm, const cs_task *t)
{
    const msgpack_sbuffer *job;
    int rc = job_memo_get(jm, snap, t->job, &job);
    if (rc == CS_OK && (rc = msgpack_pack_map(pk, 2) ? CS_ENOMEM : CS_OK) == CS_OK &&
        (rc = cs_pack_str(pk, "task")) == CS_OK && (rc = cs_pack_task(pk, t)) == CS_OK &&
        (rc = cs_pack_str(pk, "job")) == CS_OK)
        rc = pk->callback(pk->data, job->data, job->size) ? CS_ENOMEM : CS_OK;
    return rc;
}

static int put_task(void *ctx, const cs_task *t)
{
    pack_ctx *p = ctx;
    if (task_wanted(p, t))
        p->failed |= (p->with_job ? pack_task_for_agent(p->pk, p->snap, p->memo, t)
                                  : cs_pack_task(p->pk, t)) != CS_OK;
    return 0;
}

static int open_snap(worker *w, cs_snap **snap, cs_error *err)
{
    return cs_snap_open(w->s->store, snap, err);
}

/* One kind of record, walked twice: to count (the array's length comes
 * first in msgpack), then to pack. */
typedef int (*walk_fn)(cs_snap *snap, bool put, pack_ctx *p, cs_error *err);

static int walk_machines(cs_snap *snap, bool put, pack_ctx *p, cs_error *err)
{
    return cs_snap_each_machine(snap, put ? put_machine : count_machine, p, err);
}

static int walk_jobs(cs_snap *snap, bool put, pack_ctx *p, cs_error *err)
{
    return cs_snap_each_job(snap, put ? put_job : count_job, p, err);
}

/* {"version", key: [every record walk visits]} from one snapshot. */
static int h_list(worker *w, msgpack_packer *pk, const char *key, walk_fn walk, cs_error *err)
{
    cs_snap *snap;
    CS_TRY(open_snap(w, &snap, err));
    pack_ctx p = {.pk = pk};
    int rc = walk(snap, false, &p, err);
    if (rc == CS_OK && (msgpack_pack_map(pk, 2) || cs_pack_kv_u64(pk, "version", cs_snap_version(snap)) ||
                        cs_pack_str(pk, key) || msgpack_pack_array(pk, p.n)))
        rc = cs_errorf(err, CS_ENOMEM, "reply: out of memory");
    if (rc == CS_OK)
        rc = walk(snap, true, &p, err);
    cs_snap_close(snap);
    return rc == CS_OK && p.failed ? cs_errorf(err, CS_ENOMEM, "reply: out of memory") : rc;
}

static int h_get_machines(worker *w, msgpack_packer *pk, cs_error *err)
{
    return h_list(w, pk, "machines", walk_machines, err);
}

static int h_get_jobs(worker *w, msgpack_packer *pk, cs_error *err)
{
    return h_list(w, pk, "jobs", walk_jobs, err);
}

/* Tasks matching `p`'s filters as {"version", "tasks": [...]}, reading the
 * job's range or the machine's index when a filter allows. */
static int pack_tasks(cs_snap *snap, msgpack_packer *pk, pack_ctx *p, cs_error *err)
{
    p->pk = pk;
    p->snap = snap;
    int rc;
    if (p->job != 0)
        rc = cs_snap_each_task_of_job(snap, p->job, count_task, p, err);
    else if (p->machine != 0 && p->placed_only)
        rc = cs_snap_each_task_on_machine(snap, p->machine, count_task, p, err);
    else
        rc = cs_snap_each_task(snap, count_task, p, err);
    if (rc != CS_OK)
        return rc;
    if (msgpack_pack_map(pk, 2) || cs_pack_kv_u64(pk, "version", cs_snap_version(snap)) ||
        cs_pack_str(pk, "tasks") || msgpack_pack_array(pk, p->n))
        return cs_errorf(err, CS_ENOMEM, "reply: out of memory");
    if (p->job != 0)
        rc = cs_snap_each_task_of_job(snap, p->job, put_task, p, err);
    else if (p->machine != 0 && p->placed_only)
        rc = cs_snap_each_task_on_machine(snap, p->machine, put_task, p, err);
    else
        rc = cs_snap_each_task(snap, put_task, p, err);
    return rc == CS_OK && p->failed ? cs_errorf(err, CS_ENOMEM, "reply: out of memory") : rc;
}

static int h_get_tasks(worker *w, msgpack_packer *pk, cs_error *err)
{
    cs_snap *snap;
    CS_TRY(open_snap(w, &snap, err));
    cs_arena a;
    cs_arena_init(&a);
    pack_ctx p = {.state = -1};
    const char *state = NULL;
    int rc = CS_OK;
    if (cs_obj_get(body(w), "job") != NULL) {
        cs_job j;
        if ((rc = job_ref(snap, body(w), "job", &a, &j, err)) == CS_OK)
            p.job = j.id;
    }
    if (rc == CS_OK && cs_obj_get(body(w), "machine") != NULL) {
        cs_machine m;
        if ((rc = machine_ref(snap, body(w), "machine", &a, &m, err)) == CS_OK)
            p.machine = m.id;
    }
    if (rc == CS_OK && (rc = cs_obj_str(body(w), "state", false, 16, &a, &state, err)) == CS_OK &&
        state != NULL) {
        uint8_t st;
        if (cs_task_state_parse(state, &st) != CS_OK)
            rc = cs_errorf(err, CS_EINVAL, "field 'state': unknown task state '%s'", state);
        else
            p.state = st;
    }
    if (rc == CS_OK)
        rc = pack_tasks(snap, pk, &p, err);
    cs_arena_free(&a);
    cs_snap_close(snap);
    return rc;
}

static int h_get_job(worker *w, msgpack_packer *pk, cs_error *err)
{
    cs_snap *snap;
    CS_TRY(open_snap(w, &snap, err));
    cs_arena a;
    cs_arena_init(&a);
    cs_job j;
    int rc = job_ref(snap, body(w), "job", &a, &j, err);
    if (rc == CS_OK) {
        /* {"job": {...}, "tasks": {"version", "tasks": [...]}}: the second
         * value is the same map get.tasks answers with. */
        if (msgpack_pack_map(pk, 2) || cs_pack_str(pk, "job") || cs_pack_job(pk, &j) ||
            cs_pack_str(pk, "tasks"))
            rc = cs_errorf(err, CS_ENOMEM, "reply: out of memory");
        pack_ctx p = {.state = -1, .job = j.id};
        if (rc == CS_OK)
            rc = pack_tasks(snap, pk, &p, err);
    }
    cs_arena_free(&a);
    cs_snap_close(snap);
    return rc;
}

typedef struct stats_ctx {
    uint32_t machines, up, jobs, active;
    uint32_t tasks[CS_TASK_STATE_COUNT];
    cs_res cap, alloc;
} stats_ctx;

static int stat_machine(void *ctx, const cs_machine *m)
{
    stats_ctx *c = ctx;
    c->machines++;
    if (m->state == CS_MACHINE_UP) {
        c->up++;
        cs_res_add(&c->cap, &m->capacity);
    }
    cs_res_add(&c->alloc, &m->allocated);
    return 0;
}
static int stat_job(void *ctx, const cs_job *j)
{
    stats_ctx *c = ctx;
    c->jobs++;
    c->active += j->state == CS_JOB_ACTIVE;
    return 0;
}
static int stat_task(void *ctx, const cs_task *t)
{
    ((stats_ctx *)ctx)->tasks[t->state]++;
    return 0;
}

static int h_stats(worker *w, msgpack_packer *pk, cs_error *err)
{
    cs_snap *snap;
    CS_TRY(open_snap(w, &snap, err));
    stats_ctx c = {0};
    int rc;
    if ((rc = cs_snap_each_machine(snap, stat_machine, &c, err)) != CS_OK ||
        (rc = cs_snap_each_job(snap, stat_job, &c, err)) != CS_OK ||
        (rc = cs_snap_each_task(snap, stat_task, &c, err)) != CS_OK) {
        cs_snap_close(snap);
        return rc;
    }
    uint64_t version = cs_snap_version(snap);
    cs_snap_close(snap);
    cs_server *s = w->s;
    pthread_mutex_lock(&s->mu);
    counters k = s->c;
    uint32_t parked = s->nparked;
    pthread_mutex_unlock(&s->mu);
    PK(msgpack_pack_map(pk, 11));
    CS_TRY(cs_pack_kv_u64(pk, "version", version));
    CS_TRY(cs_pack_kv_u64(pk, "machines", c.machines));
    CS_TRY(cs_pack_kv_u64(pk, "machines_up", c.up));
    CS_TRY(cs_pack_kv_u64(pk, "jobs", c.jobs));
    CS_TRY(cs_pack_kv_u64(pk, "jobs_active", c.active));
    CS_TRY(cs_pack_str(pk, "tasks"));
    PK(msgpack_pack_map(pk, CS_TASK_STATE_COUNT));
    for (int i = 0; i < CS_TASK_STATE_COUNT; i++)
        CS_TRY(cs_pack_kv_u64(pk, cs_task_state_name((uint8_t)i), c.tasks[i]));
    CS_TRY(cs_pack_kv_res(pk, "capacity", &c.cap));
    CS_TRY(cs_pack_kv_res(pk, "allocated", &c.alloc));
    CS_TRY(cs_pack_str(pk, "server"));
    PK(msgpack_pack_map(pk, 9));
    CS_TRY(cs_pack_kv_u64(pk, "requests", k.requests));
    CS_TRY(cs_pack_kv_u64(pk, "errors", k.errors));
    CS_TRY(cs_pack_kv_u64(pk, "writes", k.writes));
    CS_TRY(cs_pack_kv_u64(pk, "commits", k.commits));
    CS_TRY(cs_pack_kv_u64(pk, "commits_conflicted", k.commits_conflicted));
    CS_TRY(cs_pack_kv_u64(pk, "claims", k.claims));
    CS_TRY(cs_pack_kv_u64(pk, "claims_committed", k.claims_committed));
    CS_TRY(cs_pack_kv_u64(pk, "queued", k.queued));
    CS_TRY(cs_pack_kv_u64(pk, "parked_polls", parked));
    CS_TRY(cs_pack_kv_u64(pk, "workers", s->nworkers));
    CS_TRY(cs_pack_str(pk, "schedulers"));
    int64_t now = now_ms();
    pthread_mutex_lock(&s->rmu);
    cs_sched_table_expire(&s->reports, now);
    rc = cs_sched_table_pack(&s->reports, now, pk);
    pthread_mutex_unlock(&s->rmu);
    return rc != CS_OK ? cs_errorf(err, rc, "reply: out of memory") : CS_OK;
}

/* A scheduler's metrics: kept in memory, like heartbeats, and served by
 * stats; never written to the store. */
static int h_sched_report(worker *w, msgpack_packer *pk, cs_error *err)
{
    cs_sched_report *r = malloc(sizeof *r); /* 5 KiB: not on an nng thread's stack */
    if (r == NULL)
        return cs_errorf(err, CS_ENOMEM, "sched.report: out of memory");
    cs_server *s = w->s;
    int rc = cs_sched_report_unpack(body(w), r, err);
    if (rc == CS_OK) {
        pthread_mutex_lock(&s->rmu);
        rc = cs_sched_table_put(&s->reports, r, now_ms(), err);
        pthread_mutex_unlock(&s->rmu);
    }
    free(r);
    if (rc != CS_OK)
        return rc;
    pthread_mutex_lock(&s->mu);
    uint64_t v = s->version;
    pthread_mutex_unlock(&s->mu);
    PK(msgpack_pack_map(pk, 1));
    return cs_pack_kv_u64(pk, "version", v);
}

typedef struct ids_ctx {
    msgpack_packer *pk;
    cs_snap *snap;
    cs_kind kind;
    bool failed;
} ids_ctx;

/* The tasks of a compact sync reply (protocol §5.7): runs of equal tasks
 * go out as one positional entry. `added` keeps what adding said, so that
 * its errors are told from the walk's own (which carry their message). */
typedef struct runs_ctx {
    cs_task_runs *r;
    int added;
} runs_ctx;

static int add_run(void *ctx, const cs_task *t)
{
    runs_ctx *c = ctx;
    return c->added = cs_task_runs_add(c->r, t);
}

static int pack_task_runs(cs_snap *snap, msgpack_packer *pk, const cs_changes *ch, bool all,
                          cs_error *err)
{
    runs_ctx c = {malloc(sizeof *c.r), CS_OK};
    if (c.r == NULL)
        return cs_errorf(err, CS_ENOMEM, "reply: out of memory");
    cs_task_runs_init(c.r);
    /* A full sync walks the tasks once, in id order, instead of listing
     * their ids and reading each again. */
    int rc = all ? cs_snap_each_task(snap, add_run, &c, err)
                 : cs_snap_each_task_in(snap, ch->ids[CS_KIND_TASK], ch->n[CS_KIND_TASK],
                                        add_run, &c, err);
    if (c.added == CS_EINVAL)
        rc = cs_errorf(err, CS_EIO, "sync: a stored task has more ports or a longer reason "
                                    "than a record may");
    else if (c.added == CS_ENOMEM)
        rc = cs_errorf(err, CS_ENOMEM, "reply: out of memory");
    if (rc == CS_OK && (cs_pack_str(pk, "tasks") || cs_task_runs_finish(c.r, pk) != CS_OK))
        rc = cs_errorf(err, CS_ENOMEM, "reply: out of memory");
    cs_task_runs_free(c.r);
    free(c.r);
    return rc;
}

static int pack_task_map(void *ctx, const cs_task *t) { return cs_pack_task(ctx, t); }

/* Pack the current record of each id (h_sync has made sure that none was
 * removed: a change set naming a collected job is answered in full); with `compact`, the tasks as
 * runs of entries, and with `all_tasks` too every task of the cell rather
 * than those listed. */
static int pack_changed(cs_snap *snap, msgpack_packer *pk, const cs_changes *ch, bool compact,
                        bool all_tasks, cs_error *err)
{
    static const char *const keys[CS_KIND_COUNT] = {"machines", "jobs", "tasks"};
    cs_arena a;
    cs_arena_init(&a);
    int rc = CS_OK;
    for (int k = 0; k < CS_KIND_COUNT && rc == CS_OK; k++) {
        if (k == CS_KIND_TASK && compact) {
            rc = pack_task_runs(snap, pk, ch, all_tasks, err);
            break;
        }
        if (cs_pack_str(pk, keys[k]) || msgpack_pack_array(pk, ch->n[k])) {
            rc = cs_errorf(err, CS_ENOMEM, "reply: out of memory");
            break;
        }
        if (k == CS_KIND_TASK) {
            rc = cs_snap_each_task_in(snap, ch->ids[k], ch->n[k], pack_task_map, pk, err);
            break;
        }
        for (size_t i = 0; i < ch->n[k] && rc == CS_OK; i++) {
            cs_arena_reset(&a);
            cs_id id = ch->ids[k][i];
            if (k == CS_KIND_MACHINE) {
                cs_machine m;
                if ((rc = cs_snap_machine(snap, id, &a, &m, err)) == CS_OK)
                    rc = cs_pack_machine(pk, &m);
            } else {
                cs_job j;
                if ((rc = cs_snap_job(snap, id, &a, &j, err)) == CS_OK)
                    rc = cs_pack_job(pk, &j);
            }
        }
    }
    cs_arena_free(&a);
    return rc;
}

typedef struct all_ids {
    cs_id *v;
    size_t n, cap;
} all_ids;

static int push_id(all_ids *l, cs_id id)
{
    cs_id *v = cs_vec_grow(l->v, &l->cap, l->n + 1, sizeof *v, 256);
    if (v == NULL)
        return CS_ENOMEM;
    l->v = v;
    l->v[l->n++] = id;
    return CS_OK;
}
static int all_machine(void *ctx, const cs_machine *m) { return push_id(ctx, m->id); }
static int all_job(void *ctx, const cs_job *j) { return push_id(ctx, j->id); }
static int all_task(void *ctx, const cs_task *t) { return push_id(ctx, t->id); }

/* Which of `choices` (a NULL-terminated list of one or two words) the
 * string field `key` names: *which is its index, or -1 when the field is
 * absent. Another word is CS_EINVAL naming the field and the words. */
static int str_choice(worker *w, const char *key, const char *const *choices, int *which,
                      cs_error *err)
{
    const msgpack_object *f = cs_obj_get(body(w), key);
    *which = -1;
    if (f == NULL)
        return CS_OK;
    if (f->type != MSGPACK_OBJECT_STR)
        return cs_errorf(err, CS_EPROTO, "field '%s' is not a string", key);
    for (int i = 0; choices[i] != NULL; i++)
        if (f->via.str.size == strlen(choices[i]) &&
            memcmp(f->via.str.ptr, choices[i], f->via.str.size) == 0) {
            *which = i;
            return CS_OK;
        }
    return cs_errorf(err, CS_EINVAL, "field '%s' is '%.*s', not '%s'%s%s%s", key,
                     (int)(f->via.str.size > 32 ? 32 : f->via.str.size), f->via.str.ptr,
                     choices[0], choices[1] ? " or '" : "", choices[1] ? choices[1] : "",
                     choices[1] ? "'" : "");
}

/* The sync request's options (protocol §5.7): the reply's form, "map" (the
 * default) or "compact"; and "omit": "running", to leave out the tasks
 * whose only change was an agent's report that they run. */
static int sync_options(worker *w, bool *compact, bool *omit_running, cs_error *err)
{
    static const char *const forms[] = {"map", "compact", NULL};
    static const char *const omits[] = {"running", NULL};
    int form, omit;
    CS_TRY(str_choice(w, "form", forms, &form, err));
    CS_TRY(str_choice(w, "omit", omits, &omit, err));
    *compact = form == 1;
    *omit_running = omit == 0;
    return CS_OK;
}

/* Whether a job of the change set was removed (collected, §5.7): its id is
 * listed and its record is gone. Garbage collection removes a job with its
 * tasks in one command, so the jobs alone tell. */
static bool removed_since(cs_snap *snap, const cs_changes *ch)
{
    cs_arena a;
    cs_arena_init(&a);
    bool removed = false;
    for (size_t i = 0; i < ch->n[CS_KIND_JOB] && !removed; i++) {
        cs_job j;
        cs_error err;
        cs_arena_reset(&a);
        removed = cs_snap_job(snap, ch->ids[CS_KIND_JOB][i], &a, &j, &err) == CS_ENOTFOUND;
    }
    cs_arena_free(&a);
    return removed;
}

static int h_sync(worker *w, msgpack_packer *pk, cs_error *err)
{
    uint64_t since = 0;
    bool compact, omit_running;
    CS_TRY(cs_obj_u64(body(w), "since", false, UINT64_MAX, &since, err));
    CS_TRY(sync_options(w, &compact, &omit_running, err));
    cs_snap *snap;
    CS_TRY(open_snap(w, &snap, err));
    cs_changes ch;
    bool full = since == 0;
    int rc = CS_OK;
    if (!full) {
        rc = cs_snap_changes_except(snap, since, omit_running ? cs_cmd_only_marks_running : NULL,
                                    NULL, &ch, err);
        if (rc == CS_ECOMPACTED) {
            full = true;
            rc = CS_OK;
        } else if (rc == CS_OK && removed_since(snap, &ch)) {
            /* A delta cannot say "gone": the reader gets the whole cell. */
            cs_changes_free(&ch);
            full = true;
        }
    }
    if (full && rc == CS_OK) {
        /* A full snapshot: every record, listed as if all had changed (the
         * compact form walks the tasks itself). */
        all_ids l[CS_KIND_COUNT] = {{0}};
        memset(&ch, 0, sizeof ch);
        if ((rc = cs_snap_each_machine(snap, all_machine, &l[0], err)) == CS_OK &&
            (rc = cs_snap_each_job(snap, all_job, &l[1], err)) == CS_OK && !compact)
            rc = cs_snap_each_task(snap, all_task, &l[2], err);
        for (int k = 0; k < CS_KIND_COUNT; k++) {
            ch.ids[k] = l[k].v;
            ch.n[k] = l[k].n;
        }
        if (rc == CS_ENOMEM)
            cs_errorf(err, rc, "sync: out of memory");
    }
    if (rc == CS_OK) {
        if (msgpack_pack_map(pk, compact ? 6 : 5) ||
            cs_pack_kv_u64(pk, "version", cs_snap_version(snap)) ||
            cs_pack_kv_bool(pk, "full", full) ||
            (compact && cs_pack_kv_str(pk, "form", "compact")))
            rc = cs_errorf(err, CS_ENOMEM, "reply: out of memory");
        else
            rc = pack_changed(snap, pk, &ch, compact, full, err);
    }
    if (rc == CS_OK || full)
        cs_changes_free(&ch);
    cs_snap_close(snap);
    return rc;
}

static int pack_heartbeat(msgpack_packer *pk, cs_id id, uint8_t state, uint64_t version,
                          cs_error *err)
{
    /* A machine marked down must register again: its tasks were lost. */
    if (msgpack_pack_map(pk, 3) || cs_pack_kv_u64(pk, "machine", id) ||
        cs_pack_kv_str(pk, "state", cs_machine_state_name(state)) ||
        cs_pack_kv_u64(pk, "version", version))
        return cs_errorf(err, CS_ENOMEM, "reply: out of memory");
    return CS_OK;
}

/* Note a heartbeat of machine `sl` received at `at` (mu held). A down
 * machine's heartbeat does not count: it must register again. */
static void heartbeat_seen(mslot *sl, int64_t at)
{
    if (sl->state != CS_MACHINE_DOWN && at > sl->seen_ms)
        sl->seen_ms = at;
}

/* A heartbeat by id is answered from the machine table, under `mu` only:
 * at C1M scale a heartbeat that waited for a snapshot (or for a worker
 * thread busy encoding a sync) came back after the timeout, and machines
 * were marked down for the server's own slowness. By name, or for an id
 * the table does not hold, the store is asked. */
static int h_heartbeat(worker *w, msgpack_packer *pk, cs_error *err)
{
    cs_server *s = w->s;
    const msgpack_object *ref = cs_obj_get(body(w), "machine");
    if (ref != NULL && ref->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        cs_id id = ref->via.u64;
        pthread_mutex_lock(&s->mu);
        mslot *sl = id < s->nmach && s->mach[id].known ? &s->mach[id] : NULL;
        uint8_t state = sl ? sl->state : 0;
        uint64_t version = s->version;
        if (sl != NULL)
            heartbeat_seen(sl, w->recv_ms);
        pthread_mutex_unlock(&s->mu);
        if (sl != NULL)
            return pack_heartbeat(pk, id, state, version, err);
    }
    cs_snap *snap;
    CS_TRY(open_snap(w, &snap, err));
    cs_arena a;
    cs_arena_init(&a);
    cs_machine m;
    int rc = machine_ref(snap, body(w), "machine", &a, &m, err);
    if (rc == CS_OK) {
        pthread_mutex_lock(&s->mu);
        mslot *sl = slot_of(s, m.id);
        if (sl != NULL && m.state != CS_MACHINE_DOWN && w->recv_ms > sl->seen_ms)
            sl->seen_ms = w->recv_ms;
        pthread_mutex_unlock(&s->mu);
        rc = pack_heartbeat(pk, m.id, m.state, cs_snap_version(snap), err);
    }
    cs_arena_free(&a);
    cs_snap_close(snap);
    return rc;
}

/* ---- polls ------------------------------------------------------------------ */

/* One task of a compact poll reply, as the first walk saw it. */
typedef struct poll_ent {
    cs_id id, job;
    uint32_t attempts;
    bool full; /* changed after the request's `since` (or no short form asked) */
} poll_ent;

/* The machine's tasks in one walk, and the distinct jobs of the entries
 * that go out in full, in the order first seen. A machine's tasks come in
 * task id order, so the tasks of one job are adjacent and the last id
 * usually matches. Short entries need nothing else, so only the full ones
 * are read again for packing: at C1M a machine is woken ~100 times while
 * its ~100 tasks arrive, and nearly all of each reply is short. */
typedef struct poll_walk {
    uint64_t known;   /* task versions <= known go short; 0: none */
    poll_ent *e;
    uint32_t n, cap;
    cs_id *job;
    uint32_t njobs, jcap;
    bool failed;
} poll_walk;

static bool grow(void **p, uint32_t *cap, uint32_t need, size_t size)
{
    if (need <= *cap)
        return true;
    uint32_t c = *cap ? 2 * *cap : 16;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, (size_t)c * size);
    if (q == NULL)
        return false;
    *p = q;
    *cap = c;
    return true;
}

static int walk_task(void *ctx, const cs_task *t)
{
    poll_walk *pw = ctx;
    if (!grow((void **)&pw->e, &pw->cap, pw->n + 1, sizeof *pw->e)) {
        pw->failed = true;
        return 0;
    }
    bool full = pw->known == 0 || t->version > pw->known;
    pw->e[pw->n++] = (poll_ent){t->id, t->job, t->attempts, full};
    if (!full || (pw->njobs > 0 && pw->job[pw->njobs - 1] == t->job))
        return 0;
    for (uint32_t i = 0; i < pw->njobs; i++)
        if (pw->job[i] == t->job)
            return 0;
    if (!grow((void **)&pw->job, &pw->jcap, pw->njobs + 1, sizeof *pw->job)) {
        pw->failed = true;
        return 0;
    }
    pw->job[pw->njobs++] = t->job;
    return 0;
}

/* One entry of a compact reply: short [task id, attempts], or full
 * {"task": task map, "job": job id} with the job in the reply's "jobs". */
static int pack_poll_entry(cs_snap *snap, msgpack_packer *pk, const poll_ent *e, cs_arena *a,
                           cs_error *err)
{
    if (!e->full)
        return msgpack_pack_array(pk, 2) || msgpack_pack_uint64(pk, e->id) ||
                       msgpack_pack_uint32(pk, e->attempts)
                   ? cs_errorf(err, CS_ENOMEM, "reply: out of memory")
                   : CS_OK;
    cs_task t;
    cs_arena_reset(a);
    int rc = cs_snap_task(snap, e->id, a, &t, err);
    if (rc != CS_OK)
        return cs_error_wrap(err, rc, "poll reply: task %llu", (unsigned long long)e->id);
    if (msgpack_pack_map(pk, 2) || cs_pack_str(pk, "task") || cs_pack_task(pk, &t) ||
        cs_pack_kv_u64(pk, "job", t.job))
        return cs_errorf(err, CS_ENOMEM, "reply: out of memory");
    return CS_OK;
}

/* {"version", "jobs": [job map, ...], "tasks": [entry, ...]} (protocol.md
 * §5.9): what an agent that asked for "jobs": "once" gets; with `known` >
 * 0 ("known": "short"), the tasks whose record is at or before version
 * `known` come as short entries and their jobs are not carried for them. */
static int pack_poll_compact(cs_snap *snap, msgpack_packer *pk, cs_id machine, uint64_t known,
                             cs_error *err)
{
    poll_walk pw = {.known = known};
    cs_arena a;
    cs_arena_init(&a);
    int rc = cs_snap_each_task_on_machine(snap, machine, walk_task, &pw, err);
    if (rc == CS_OK && (pw.failed || msgpack_pack_map(pk, 3) ||
                        cs_pack_kv_u64(pk, "version", cs_snap_version(snap)) ||
                        cs_pack_str(pk, "jobs") || msgpack_pack_array(pk, pw.njobs)))
        rc = cs_errorf(err, CS_ENOMEM, "reply: out of memory");
    for (uint32_t i = 0; rc == CS_OK && i < pw.njobs; i++) {
        cs_job j;
        cs_arena_reset(&a);
        if ((rc = cs_snap_job(snap, pw.job[i], &a, &j, err)) != CS_OK)
            rc = cs_error_wrap(err, rc, "poll reply: job %llu", (unsigned long long)pw.job[i]);
        else if (cs_pack_job(pk, &j) != CS_OK)
            rc = cs_errorf(err, CS_ENOMEM, "reply: out of memory");
    }
    if (rc == CS_OK && (cs_pack_str(pk, "tasks") || msgpack_pack_array(pk, pw.n)))
        rc = cs_errorf(err, CS_ENOMEM, "reply: out of memory");
    for (uint32_t i = 0; rc == CS_OK && i < pw.n; i++)
        rc = pack_poll_entry(snap, pk, &pw.e[i], &a, err);
    cs_arena_free(&a);
    free(pw.e);
    free(pw.job);
    return rc;
}

/* The assignments of the polled machine: every task placed on it, with its
 * job. Answered at once when the machine changed after `since`. */
static int h_poll_reply(worker *w, msgpack_packer *pk, cs_error *err)
{
    cs_snap *snap;
    CS_TRY(open_snap(w, &snap, err));
    int rc;
    if (w->poll_jobs_once) {
        rc = pack_poll_compact(snap, pk, w->poll_machine, w->poll_short ? w->poll_since : 0, err);
    } else {
        job_memo jm = {0};
        pack_ctx p = {.state = -1, .machine = w->poll_machine, .placed_only = true,
                      .with_job = true, .memo = &jm};
        rc = pack_tasks(snap, pk, &p, err);
        job_memo_free(&jm);
    }
    cs_snap_close(snap);
    return rc;
}

/* Called with mu held. A parked poll's machine has a slot: parking made it. */
static void park_remove(cs_server *s, worker *w)
{
    if (!w->parked)
        return;
    if (w->wprev)
        w->wprev->wnext = w->wnext;
    else
        s->mach[w->poll_machine].parked = w->wnext;
    if (w->wnext)
        w->wnext->wprev = w->wprev;
    w->wprev = w->wnext = NULL;
    w->parked = false;
    s->nparked--;
}

static bool str_is(const msgpack_object *v, const char *s)
{
    size_t n = strlen(s);
    return v->type == MSGPACK_OBJECT_STR && v->via.str.size == n && !memcmp(v->via.str.ptr, s, n);
}

/* A request's optional two-valued string field `key`: absent or `dflt`
 * (*alt false), or `alt` (*alt true); anything else is EPROTO. */
static int poll_choice(const msgpack_object *body, const char *key, const char *dflt,
                       const char *alt, bool *is_alt, cs_error *err)
{
    const msgpack_object *v = cs_obj_get(body, key);
    *is_alt = v != NULL && str_is(v, alt);
    if (v != NULL && !*is_alt && !str_is(v, dflt))
        return cs_errorf(err, CS_EPROTO, "field '%s': must be \"%s\" or \"%s\"", key, dflt, alt);
    return CS_OK;
}

/* The request's optional "jobs": "each" (the default: every entry embeds
 * its job) or "once" (the compact reply), and "known": "full" (the
 * default) or "short" (tasks unchanged since `since` come as short
 * entries), which needs the compact form: a short entry names no job. */
static int poll_forms(const msgpack_object *body, bool *once, bool *shrt, cs_error *err)
{
    int rc = poll_choice(body, "jobs", "each", "once", once, err);
    if (rc == CS_OK)
        rc = poll_choice(body, "known", "full", "short", shrt, err);
    if (rc == CS_OK && *shrt && !*once)
        rc = cs_errorf(err, CS_EPROTO, "field 'known': \"short\" needs \"jobs\": \"once\"");
    return rc;
}

static void h_poll(worker *w)
{
    cs_server *s = w->s;
    cs_error err = {0};
    uint64_t since = 0, wait_ms = 0;
    cs_snap *snap;
    cs_arena a;
    cs_arena_init(&a);
    cs_machine m;
    int rc = cs_obj_u64(body(w), "since", false, UINT64_MAX, &since, &err);
    if (rc == CS_OK)
        rc = cs_obj_u64(body(w), "wait_ms", false, UINT32_MAX, &wait_ms, &err);
    bool once = false, shrt = false;
    if (rc == CS_OK)
        rc = poll_forms(body(w), &once, &shrt, &err);
    if (rc == CS_OK && (rc = cs_snap_open(s->store, &snap, &err)) == CS_OK) {
        rc = machine_ref(snap, body(w), "machine", &a, &m, &err);
        cs_snap_close(snap);
    }
    cs_arena_free(&a);
    if (rc != CS_OK) {
        send_error(w, rc, err.msg);
        return;
    }
    if (wait_ms > s->o.poll_max_wait_ms)
        wait_ms = s->o.poll_max_wait_ms;
    w->poll_machine = m.id;
    w->poll_since = since;
    w->poll_jobs_once = once;
    w->poll_short = shrt;
    pthread_mutex_lock(&s->mu);
    mslot *sl = slot_of(s, m.id);
    bool changed = since == 0 || sl == NULL || sl->changed > since || m.version > since;
    if (!changed && wait_ms > 0 && !s->stopping) {
        /* Park: the writer cancels the sleep when the machine changes. */
        w->parked = true;
        w->wprev = NULL;
        w->wnext = sl->parked;
        if (sl->parked)
            sl->parked->wprev = w;
        sl->parked = w;
        s->nparked++;
        w->state = W_WAIT;
        nng_sleep_aio((nng_duration)wait_ms, w->aio);
        pthread_mutex_unlock(&s->mu);
        return;
    }
    pthread_mutex_unlock(&s->mu);
    run_handler(w, h_poll_reply);
}

/* Wake the polls parked on machine slot `sl`, which changed at the
 * version in sl->changed. Called by the writer with mu held. */
static void wake_polls(mslot *sl)
{
    for (worker *w = sl->parked; w; w = w->wnext)
        if (sl->changed > w->poll_since)
            nng_aio_cancel(w->aio); /* completes on nng's thread, not here */
}

/* ---- writes (the writer thread) ----------------------------------------------- */

static int h_register(worker *w, msgpack_packer *pk, cs_error *err)
{
    cs_arena a;
    cs_arena_init(&a);
    cs_machine spec;
    cs_id id = 0;
    uint64_t v = 0;
    int rc = cs_unpack_machine_spec(body(w), &a, &spec, err);
    if (rc == CS_OK)
        rc = cs_op_machine_put(w->s->store, &spec, &id, &v, err);
    cs_arena_free(&a);
    if (rc != CS_OK)
        return rc;
    pthread_mutex_lock(&w->s->mu);
    mslot *sl = slot_of(w->s, id);
    if (sl != NULL) {
        sl->seen_ms = now_ms();
        sl->down_queued = false;
    }
    pthread_mutex_unlock(&w->s->mu);
    PK(msgpack_pack_map(pk, 2));
    CS_TRY(cs_pack_kv_u64(pk, "id", id));
    return cs_pack_kv_u64(pk, "version", v);
}

static int h_submit(worker *w, msgpack_packer *pk, cs_error *err)
{
    cs_arena a;
    cs_arena_init(&a);
    cs_job spec;
    cs_id id = 0;
    uint64_t v = 0;
    int rc = cs_unpack_job_spec(body(w), &a, &spec, err);
    /* Stamped here, in the writer, so that the logged command carries it
     * and a replay of the log reproduces it. */
    spec.submitted = wall_ms();
    if (rc == CS_OK)
        rc = cs_op_job_submit(w->s->store, &spec, &id, &v, err);
    cs_arena_free(&a);
    if (rc != CS_OK)
        return rc;
    PK(msgpack_pack_map(pk, 2));
    CS_TRY(cs_pack_kv_u64(pk, "id", id));
    return cs_pack_kv_u64(pk, "version", v);
}

/* Resolve the "job" field to an id. Through a write transaction, not a
 * snapshot: in a group (writer_main) a job submitted by an earlier command
 * of the same group is not in any snapshot yet. The transaction writes
 * nothing and is aborted. */
static int resolve_job(worker *w, cs_id *id, cs_error *err)
{
    cs_wtxn *wt;
    CS_TRY(cs_wtxn_begin(w->s->store, &wt, err));
    cs_arena a;
    cs_arena_init(&a);
    cs_job j;
    int rc = job_ref(cs_wtxn_snap(wt), body(w), "job", &a, &j, err);
    if (rc == CS_OK)
        *id = j.id;
    cs_arena_free(&a);
    cs_wtxn_abort(wt);
    return rc;
}

static int reply_version(msgpack_packer *pk, uint64_t v, cs_error *err)
{
    PK(msgpack_pack_map(pk, 1));
    return cs_pack_kv_u64(pk, "version", v);
}

static int h_kill(worker *w, msgpack_packer *pk, cs_error *err)
{
    cs_id id;
    uint64_t v = 0;
    CS_TRY(resolve_job(w, &id, err));
    CS_TRY(cs_op_job_kill(w->s->store, id, wall_ms(), &v, err));
    return reply_version(pk, v, err);
}

/* job.end {job}: a batch scheduler says none of the job's tasks will run
 * again; the cell makes it finished or failed, stamped now. */
static int h_job_end(worker *w, msgpack_packer *pk, cs_error *err)
{
    cs_id id;
    uint64_t v = 0;
    CS_TRY(resolve_job(w, &id, err));
    CS_TRY(cs_op_job_end(w->s->store, id, wall_ms(), &v, err));
    return reply_version(pk, v, err);
}

/* job.scale and job.surge: {job, <key>: n} applied by `op`. */
static int job_count_op(worker *w, msgpack_packer *pk, const char *key,
                        int (*op)(cs_store *, cs_id, uint32_t, uint64_t *, cs_error *),
                        cs_error *err)
{
    cs_id id;
    uint64_t n = 0, v = 0;
    CS_TRY(cs_obj_u64(body(w), key, true, CS_TASK_INDEX_MAX + 1u, &n, err));
    CS_TRY(resolve_job(w, &id, err));
    CS_TRY(op(w->s->store, id, (uint32_t)n, &v, err));
    return reply_version(pk, v, err);
}

static int h_scale(worker *w, msgpack_packer *pk, cs_error *err)
{
    return job_count_op(w, pk, "count", cs_op_job_scale, err);
}

static int h_job_surge(worker *w, msgpack_packer *pk, cs_error *err)
{
    return job_count_op(w, pk, "surge", cs_op_job_surge, err);
}

/* machine.admin: {machine, admin, deadline_ms?}. The deadline comes as a
 * duration and is stamped here, in the writer, on the wall clock, so that
 * the logged command carries the instant and a replay reproduces it. The
 * machine is resolved through a write transaction, as resolve_job does. */
static int h_machine_admin(worker *w, msgpack_packer *pk, cs_error *err)
{
    cs_arena a;
    cs_arena_init(&a);
    const char *name = NULL;
    uint64_t dur = 0;
    uint8_t admin = 0;
    bool has_deadline = cs_obj_get(body(w), "deadline_ms") != NULL;
    int rc = cs_obj_str(body(w), "admin", true, 16, &a, &name, err);
    if (rc == CS_OK && cs_machine_admin_parse(name, &admin) != CS_OK)
        rc = cs_errorf(err, CS_EINVAL, "field 'admin' is '%s', not active, cordoned or draining",
                       name);
    if (rc == CS_OK)
        rc = cs_obj_u64(body(w), "deadline_ms", false, UINT32_MAX, &dur, err);
    if (rc == CS_OK && has_deadline && admin != CS_ADMIN_DRAINING)
        rc = cs_errorf(err, CS_EINVAL, "field 'deadline_ms' goes with admin 'draining' only");
    cs_machine m;
    cs_wtxn *wt = NULL;
    if (rc == CS_OK && (rc = cs_wtxn_begin(w->s->store, &wt, err)) == CS_OK) {
        rc = machine_ref(cs_wtxn_snap(wt), body(w), "machine", &a, &m, err);
        cs_wtxn_abort(wt);
    }
    uint64_t deadline = has_deadline ? wall_ms() + dur : 0, v = 0;
    if (rc == CS_OK)
        rc = cs_op_machine_admin(w->s->store, m.id, admin, deadline, &v, err);
    cs_arena_free(&a);
    if (rc != CS_OK)
        return rc;
    PK(msgpack_pack_map(pk, 4));
    CS_TRY(cs_pack_kv_u64(pk, "id", m.id));
    CS_TRY(cs_pack_kv_str(pk, "admin", cs_machine_admin_name(admin)));
    CS_TRY(cs_pack_kv_u64(pk, "drain_deadline", deadline));
    return cs_pack_kv_u64(pk, "version", v);
}

static int h_update(worker *w, msgpack_packer *pk, cs_error *err)
{
    cs_id id;
    uint64_t v = 0;
    const msgpack_object *spec_obj = cs_obj_get(body(w), "spec");
    if (spec_obj == NULL)
        return cs_errorf(err, CS_EPROTO, "field 'spec' is missing");
    CS_TRY(resolve_job(w, &id, err));
    cs_arena a;
    cs_arena_init(&a);
    cs_job spec;
    int rc = cs_unpack_job_spec(spec_obj, &a, &spec, err);
    if (rc == CS_OK)
        rc = cs_op_job_update(w->s->store, id, &spec, &v, err);
    cs_arena_free(&a);
    return rc != CS_OK ? rc : reply_version(pk, v, err);
}

static int h_job_note(worker *w, msgpack_packer *pk, cs_error *err)
{
    cs_id id;
    uint64_t v = 0;
    cs_arena a;
    cs_arena_init(&a);
    const char *note = NULL;
    int rc = cs_obj_str(body(w), "note", true, CS_NOTE_MAX, &a, &note, err);
    if (rc == CS_OK)
        rc = resolve_job(w, &id, err);
    if (rc == CS_OK)
        rc = cs_op_job_note(w->s->store, id, note, &v, err);
    cs_arena_free(&a);
    return rc != CS_OK ? rc : reply_version(pk, v, err);
}

static int pack_outcomes(msgpack_packer *pk, const char *key, const uint8_t *o, uint32_t n,
                         cs_error *err)
{
    CS_TRY(cs_pack_str(pk, key));
    PK(msgpack_pack_array(pk, n));
    for (uint32_t i = 0; i < n; i++)
        PK(msgpack_pack_uint8(pk, o[i]));
    return CS_OK;
}

static int h_commit(worker *w, msgpack_packer *pk, cs_error *err)
{
    cs_txn t;
    cs_txn_init(&t, 0, 0, 0, 0, 0);
    cs_txn_result r;
    cs_txn_result_init(&r);
    int rc = cs_txn_from_object(body(w), &t, err);
    if (rc == CS_OK)
        rc = cs_commit(w->s->store, &t, &r, err);
    if (rc == CS_OK) {
        pthread_mutex_lock(&w->s->mu);
        if (!r.replayed) {
            w->s->c.commits++;
            w->s->c.commits_conflicted += r.conflicts > 0;
            w->s->c.claims += r.nclaims;
            w->s->c.claims_committed += r.committed;
        }
        pthread_mutex_unlock(&w->s->mu);
        if (msgpack_pack_map(pk, 7) || cs_pack_kv_u64(pk, "version", r.version) ||
            cs_pack_kv_bool(pk, "replayed", r.replayed) ||
            cs_pack_kv_u64(pk, "committed", r.committed) ||
            cs_pack_kv_u64(pk, "conflicts", r.conflicts) ||
            pack_outcomes(pk, "claims", r.claims, r.nclaims, err) ||
            pack_outcomes(pk, "releases", r.releases, r.nreleases, err) ||
            pack_outcomes(pk, "preempts", r.preempts, r.npreempts, err))
            rc = cs_errorf(err, CS_ENOMEM, "reply: out of memory");
    }
    cs_txn_result_free(&r);
    cs_txn_free(&t);
    return rc;
}

/* One report's fields (protocol.md §5.10) from map `o` into *r (strings in
 * `a`). */
static int parse_report(const msgpack_object *o, cs_arena *a, cs_task_report *r, cs_error *err)
{
    uint64_t id = 0, attempt = 0;
    int64_t code = 0;
    const char *state = NULL, *reason = NULL, *health = NULL;
    int rc;
    if ((rc = cs_obj_u64(o, "task", true, UINT64_MAX, &id, err)) != CS_OK ||
        (rc = cs_obj_u64(o, "attempt", true, UINT32_MAX, &attempt, err)) != CS_OK ||
        (rc = cs_obj_str(o, "state", true, 16, a, &state, err)) != CS_OK ||
        (rc = cs_obj_i64(o, "exit_code", false, INT32_MIN, INT32_MAX, &code, err)) != CS_OK ||
        (rc = cs_obj_str(o, "reason", false, CS_REASON_MAX, a, &reason, err)) != CS_OK ||
        (rc = cs_obj_str(o, "health", false, 16, a, &health, err)) != CS_OK)
        return rc;
    *r = (cs_task_report){id, (uint32_t)attempt, 0, (int32_t)code, reason, CS_TASK_HEALTH_UNKNOWN};
    if (cs_task_state_parse(state, &r->state) != CS_OK)
        return cs_errorf(err, CS_EINVAL, "field 'state': unknown task state '%s'", state);
    /* "unknown" is what a new placement starts with, not a report. */
    if (health != NULL &&
        (cs_task_health_parse(health, &r->health) != CS_OK || r->health == CS_TASK_HEALTH_UNKNOWN))
        return cs_errorf(err, CS_EINVAL, "field 'health' is '%s', not healthy or unhealthy",
                         health);
    return CS_OK;
}

/* The batch form: {"reports": [report, ...]}, each applied as its own
 * command (its own version and log entry), in order; one refused report
 * does not stop the others. The writer's group commit makes the batch one
 * LMDB transaction. Reply: {"version", "results": [{"code", "message"}]},
 * code 0 for a report taken. */
static int task_status_batch(worker *w, const msgpack_object *list, msgpack_packer *pk,
                             cs_error *err)
{
    if (list->type != MSGPACK_OBJECT_ARRAY || list->via.array.size > CS_REPORTS_MAX)
        return cs_errorf(err, CS_EPROTO, "field 'reports' is not an array of at most %d reports",
                         CS_REPORTS_MAX);
    uint32_t n = list->via.array.size;
    int *codes = calloc(n ? n : 1, sizeof *codes);
    cs_error *errs = calloc(n ? n : 1, sizeof *errs);
    if (codes == NULL || errs == NULL) {
        free(codes);
        free(errs);
        return cs_errorf(err, CS_ENOMEM, "task.status: out of memory");
    }
    uint64_t v = 0;
    cs_arena a;
    cs_arena_init(&a);
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *o = &list->via.array.ptr[i];
        cs_task_report r;
        uint64_t vi = 0;
        cs_arena_reset(&a);
        if (o->type != MSGPACK_OBJECT_MAP)
            codes[i] = cs_errorf(&errs[i], CS_EPROTO, "reports[%u] is not a map", i);
        else if ((codes[i] = parse_report(o, &a, &r, &errs[i])) == CS_OK &&
                 (codes[i] = cs_op_task_report(w->s->store, &r, &vi, &errs[i])) == CS_OK &&
                 vi > v)
            v = vi;
    }
    cs_arena_free(&a);
    if (v == 0) {
        /* Nothing taken: the current version, as a single refused or
         * unchanged report would give. */
        pthread_mutex_lock(&w->s->mu);
        v = w->s->version;
        pthread_mutex_unlock(&w->s->mu);
    }
    int rc = CS_OK;
    if (msgpack_pack_map(pk, 2) || cs_pack_kv_u64(pk, "version", v) ||
        cs_pack_str(pk, "results") || msgpack_pack_array(pk, n))
        rc = cs_errorf(err, CS_ENOMEM, "reply: out of memory");
    for (uint32_t i = 0; i < n && rc == CS_OK; i++)
        if (msgpack_pack_map(pk, 2) || cs_pack_kv_u64(pk, "code", (uint64_t)codes[i]) ||
            cs_pack_kv_str(pk, "message", codes[i] == CS_OK ? "" : errs[i].msg))
            rc = cs_errorf(err, CS_ENOMEM, "reply: out of memory");
    free(codes);
    free(errs);
    return rc;
}

static int h_task_status(worker *w, msgpack_packer *pk, cs_error *err)
{
    const msgpack_object *list = cs_obj_get(body(w), "reports");
    if (list != NULL)
        return task_status_batch(w, list, pk, err);
    cs_arena a;
    cs_arena_init(&a);
    cs_task_report r;
    uint64_t v = 0;
    int rc = parse_report(body(w), &a, &r, err);
    if (rc == CS_OK)
        rc = cs_op_task_report(w->s->store, &r, &v, err);
    cs_arena_free(&a);
    return rc != CS_OK ? rc : reply_version(pk, v, err);
}

/* After a write: note which machines changed (and their state, for
 * heartbeats), wake the polls waiting on them, and announce the version.
 * Before the write's replies go out: an agent that registered again after
 * being marked down must not be told "down" by its next heartbeat. */
static void after_write(cs_server *s)
{
    cs_snap *snap;
    cs_error err;
    if (cs_snap_open(s->store, &snap, &err) != CS_OK)
        return;
    uint64_t v = cs_snap_version(snap);
    pthread_mutex_lock(&s->mu);
    uint64_t old = s->version;
    pthread_mutex_unlock(&s->mu);
    if (v <= old) {
        cs_snap_close(snap);
        return;
    }
    cs_changes ch;
    if (cs_snap_changes_since(snap, old, &ch, &err) == CS_OK) {
        size_t n = ch.n[CS_KIND_MACHINE];
        /* The states are read before taking `mu`, from the store's copy in
         * memory; STATE_UNREAD sends the machine's heartbeats to the store. */
        uint8_t *st = malloc(n ? n : 1);
        cs_arena a;
        cs_arena_init(&a);
        for (size_t i = 0; st != NULL && i < n; i++) {
            cs_machine m;
            cs_arena_reset(&a);
            st[i] = cs_snap_machine_fit(snap, ch.ids[CS_KIND_MACHINE][i], &a, &m, &err) == CS_OK
                        ? m.state
                        : STATE_UNREAD;
        }
        cs_arena_free(&a);
        pthread_mutex_lock(&s->mu);
        for (size_t i = 0; i < n; i++) {
            mslot *sl = slot_of(s, ch.ids[CS_KIND_MACHINE][i]);
            if (sl != NULL) {
                sl->changed = v;
                sl->known = st != NULL && st[i] != STATE_UNREAD;
                sl->state = sl->known ? st[i] : 0;
                wake_polls(sl);
            }
        }
        s->version = v;
        pthread_mutex_unlock(&s->mu);
        free(st);
        cs_changes_free(&ch);
    }
    cs_snap_close(snap);
    if (s->have_pub) {
        msgpack_sbuffer b;
        msgpack_sbuffer_init(&b);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
        if (cs_msg_begin(&pk, CS_MSG_VERSION, 0) == CS_OK && msgpack_pack_map(&pk, 1) == 0 &&
            cs_pack_kv_u64(&pk, "version", v) == CS_OK)
            nng_send(s->pub, b.data, b.size, NNG_FLAG_NONBLOCK);
        msgpack_sbuffer_destroy(&b);
    }
}

static handler_fn write_handler(uint32_t type)
{
    switch (type) {
    case CS_MSG_MACHINE_REGISTER:
        return h_register;
    case CS_MSG_JOB_SUBMIT:
        return h_submit;
    case CS_MSG_JOB_KILL:
        return h_kill;
    case CS_MSG_JOB_SCALE:
        return h_scale;
    case CS_MSG_JOB_UPDATE:
        return h_update;
    case CS_MSG_COMMIT:
        return h_commit;
    case CS_MSG_TASK_STATUS:
        return h_task_status;
    case CS_MSG_JOB_NOTE:
        return h_job_note;
    case CS_MSG_JOB_SURGE:
        return h_job_surge;
    case CS_MSG_JOB_END:
        return h_job_end;
    case CS_MSG_MACHINE_ADMIN:
        return h_machine_admin;
    default:
        return NULL;
    }
}

/* One queued write, alone or as a command of the writer's group. Its
 * reply goes to `b` (not sent: the caller sends it once the write is
 * durable). */
static void apply_write(cs_server *s, wjob *j, msgpack_sbuffer *b)
{
    if (j->w != NULL) {
        build_reply(j->w, write_handler(j->w->msg.type), b);
        return;
    }
    cs_error err;
    if (j->gc != NULL) {
        /* Jobs the monitor found ended long enough ago. A failure (out of
         * memory, a full map) leaves them for its next pass. */
        if (cs_op_job_gc(s->store, j->gc, j->ngc, NULL, &err) != CS_OK)
            fprintf(stderr, "cellstated: collecting %zu ended jobs: %s\n", j->ngc, err.msg);
        return;
    }
    if (j->drain) {
        /* The monitor's verdict: the drain deadline came. */
        cs_op_machine_drain_deadline(s->store, j->down_machine, NULL, &err);
        pthread_mutex_lock(&s->mu);
        mslot *sl = slot_of(s, j->down_machine);
        if (sl != NULL)
            sl->drain_queued = false;
        pthread_mutex_unlock(&s->mu);
        return;
    }
    /* The monitor's verdict: silent past the timeout. */
    cs_op_machine_state(s->store, j->down_machine, CS_MACHINE_DOWN, NULL, &err);
}

static void finish_write(cs_server *s, wjob *j, msgpack_sbuffer *b)
{
    if (j->w != NULL) {
        send_bytes(j->w, b->data, b->size);
    } else {
        if (j->gc != NULL) {
            pthread_mutex_lock(&s->mu);
            s->gc_queued = false;
            pthread_mutex_unlock(&s->mu);
        }
        free(j->gc);
        free(j);
    }
    msgpack_sbuffer_destroy(b);
}

/* Apply the queued writes `jobs` (n of them, in arrival order) in one group
 * commit (store.h): one LMDB transaction, and one fsync, for the lot. The
 * replies go out only after the group is committed, so that a reply still
 * means the write is durable. A group abandoned because a command failed
 * after writing (out of memory, I/O) is applied again one write at a time;
 * a group whose commit failed answers every write with that error (none of
 * it was applied; the clients retry). */
static void run_group(cs_server *s, wjob **jobs, size_t n, msgpack_sbuffer *replies)
{
    cs_error err = {0};
    bool grouped = n > 1 && cs_store_group_begin(s->store, &err) == CS_OK;
    for (size_t i = 0; i < n; i++) {
        msgpack_sbuffer_init(&replies[i]);
        apply_write(s, jobs[i], &replies[i]);
    }
    if (grouped) {
        bool abandoned;
        int rc = cs_store_group_end(s->store, &abandoned, NULL, &err);
        if (abandoned) {
            for (size_t i = 0; i < n; i++) {
                replies[i].size = 0;
                apply_write(s, jobs[i], &replies[i]);
            }
        } else if (rc != CS_OK) {
            for (size_t i = 0; i < n; i++) {
                if (jobs[i]->w == NULL)
                    continue;
                replies[i].size = 0;
                cs_msg_error(&replies[i], jobs[i]->w->msg.req, rc, err.msg);
            }
        }
    }
    after_write(s);
    for (size_t i = 0; i < n; i++)
        finish_write(s, jobs[i], &replies[i]);
}

/* The most writes one group takes: enough for a burst of agents' reports
 * and schedulers' commits, few enough that the first of them is not kept
 * waiting long for its reply. */
#define GROUP_MAX 1024
/* At most this many report requests (each up to 1024 reports) per group.
 * A scheduler's commit waits for the group under way and no other: the
 * writer takes the schedulers' writes first and bounds the agents' part,
 * so that a flood of reports after a big placement (every task placed
 * reports running) does not stand between the schedulers and the cell.
 * Requests are concurrent: their order was never promised, and each is
 * judged on the cell as it finds it. */
#define REPORTS_MAX 64
/* ... and this many when the group carries schedulers' writes, whose
 * senders wait for the group to end: a single scheduler commits, waits,
 * syncs and places in turn, so its pace is the group's. */
#define REPORTS_WITH_CELL 8

static bool queued(const cs_server *s)
{
    for (int l = 0; l < NLANES; l++)
        if (s->lanes[l].head != NULL)
            return true;
    return false;
}

/* Move up to max writes from the front of lane `q` into out. */
static size_t take(wlane *q, wjob **out, size_t max)
{
    size_t n = 0;
    while (q->head != NULL && n < max) {
        out[n++] = q->head;
        q->head = q->head->next;
    }
    if (q->head == NULL)
        q->tail = NULL;
    return n;
}

static void *writer_main(void *arg)
{
    cs_server *s = arg;
    wjob **jobs = malloc(GROUP_MAX * sizeof *jobs);
    msgpack_sbuffer *replies = malloc(GROUP_MAX * sizeof *replies);
    size_t cap = jobs != NULL && replies != NULL ? GROUP_MAX : 1;
    wjob *one[1];
    msgpack_sbuffer one_reply[1];
    if (cap == 1) {
        /* Without memory for a group, one write at a time. */
        free(jobs);
        free(replies);
        jobs = one;
        replies = one_reply;
    }
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!queued(s) && !s->stopping)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->stopping) {
            /* Queued writes are dropped: their clients time out and retry
             * (a commit's retry is answered from its idempotency record). */
            pthread_mutex_unlock(&s->mu);
            break;
        }
        size_t n = take(&s->lanes[LANE_CELL], jobs, cap);
        size_t r = n > 0 ? REPORTS_WITH_CELL : REPORTS_MAX;
        n += take(&s->lanes[LANE_REPORTS], jobs + n, n + r < cap ? r : cap - n);
        s->c.writes += n;
        s->c.queued -= n;
        pthread_mutex_unlock(&s->mu);

        run_group(s, jobs, n, replies);
    }
    if (cap > 1) {
        free(jobs);
        free(replies);
    }
    return NULL;
}

static void enqueue(cs_server *s, wjob *j)
{
    j->next = NULL;
    wlane *q = &s->lanes[j->w != NULL && j->w->msg.type == CS_MSG_TASK_STATUS ? LANE_REPORTS
                                                                               : LANE_CELL];
    pthread_mutex_lock(&s->mu);
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
    s->c.queued++;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* ---- the monitor ------------------------------------------------------------- */

typedef struct silent_ctx {
    cs_server *s;
    int64_t served; /* s->served_ms when the scan began */
    cs_id *ids;
    size_t n, cap;
    uint64_t wall;  /* the wall clock when the scan began, for drain deadlines */
    cs_id *drains;  /* draining machines whose deadline came */
    size_t ndrains;
} silent_ctx;

/* A draining machine whose deadline has come, not yet queued: its batch
 * tasks are to move (cs_op_machine_drain_deadline). */
static void find_drain_due(silent_ctx *c, const cs_machine *m)
{
    if (m->admin != CS_ADMIN_DRAINING || m->drain_deadline == 0 || m->drain_deadline > c->wall ||
        c->ndrains == c->cap)
        return;
    pthread_mutex_lock(&c->s->mu);
    mslot *sl = slot_of(c->s, m->id);
    bool due = sl != NULL && !sl->drain_queued;
    if (due)
        sl->drain_queued = true;
    pthread_mutex_unlock(&c->s->mu);
    if (due)
        c->drains[c->ndrains++] = m->id;
}

static int find_silent(void *ctx, const cs_machine *m)
{
    silent_ctx *c = ctx;
    find_drain_due(c, m);
    if (m->state == CS_MACHINE_DOWN)
        return 0;
    pthread_mutex_lock(&c->s->mu);
    mslot *sl = slot_of(c->s, m->id);
    bool silent = sl != NULL && !sl->down_queued &&
                  c->served - sl->seen_ms > (int64_t)c->s->o.heartbeat_timeout_ms;
    if (silent)
        sl->down_queued = true;
    pthread_mutex_unlock(&c->s->mu);
    if (silent && c->n < c->cap)
        c->ids[c->n++] = m->id;
    return 0;
}

/* Silence is judged against the server's progress, not the clock: a
 * heartbeat is counted when a worker callback reads it, and when nng's
 * task queue is backed up (every thread encoding a sync reply) heartbeats
 * wait in it, received but not read. The probe is a chain of PROBE_HOPS
 * callbacks through that same queue, about as many as a request takes from
 * the socket to a worker (transport read of header and body, protocol,
 * worker): when the chain armed at time T completes, what arrived before T
 * has been read, so served_ms = T. A machine is silent when its last
 * heartbeat was received more than the timeout before served_ms; a server
 * too busy to read heartbeats marks no one down. */
#define PROBE_HOPS 4

static void probe_cb(void *arg)
{
    cs_server *s = arg;
    int rv = nng_aio_result(s->probe);
    pthread_mutex_lock(&s->mu);
    bool again = rv == 0 && !s->stopping && ++s->probe_hops < PROBE_HOPS;
    if (!again) {
        if (rv == 0 && s->probe_hops >= PROBE_HOPS)
            s->served_ms = s->probe_armed_ms;
        s->probe_busy = false;
    }
    pthread_mutex_unlock(&s->mu);
    if (again)
        nng_sleep_aio(0, s->probe);
}

/* Arm the probe unless it is on its way (mu held by the caller: false is
 * returned when nothing is to be armed). */
static bool probe_arm(cs_server *s)
{
    if (s->probe_busy || s->stopping)
        return false;
    s->probe_busy = true;
    s->probe_hops = 0;
    s->probe_armed_ms = now_ms();
    return true;
}

/* ---- upkeep: collecting ended jobs, compacting the log ------------------- */

/* The most jobs one collection command removes: each removes its tasks
 * too, and the writer holds every other write meanwhile. */
#define GC_BATCH 256

typedef struct gc_ctx {
    uint64_t before; /* wall ms: jobs that ended at or before this are due */
    cs_id *ids;
    size_t n;
} gc_ctx;

static int find_due(void *ctx, const cs_job *j)
{
    gc_ctx *c = ctx;
    if (j->state != CS_JOB_ACTIVE && j->ended <= c->before)
        c->ids[c->n++] = j->id;
    return c->n == GC_BATCH; /* stop when full: the next pass takes the rest */
}

/* Queue the collection of the ended jobs due, in id order (the store's),
 * unless one is still queued. Reads one snapshot of the jobs: at most once
 * per gc interval. */
static void queue_gc(cs_server *s)
{
    pthread_mutex_lock(&s->mu);
    bool busy = s->gc_queued;
    pthread_mutex_unlock(&s->mu);
    uint64_t now = wall_ms();
    if (busy || now < s->o.job_gc_ms)
        return;
    gc_ctx c = {now - s->o.job_gc_ms, malloc(GC_BATCH * sizeof(cs_id)), 0};
    wjob *j = calloc(1, sizeof *j);
    cs_snap *snap;
    cs_error err;
    if (c.ids != NULL && j != NULL && cs_snap_open(s->store, &snap, &err) == CS_OK) {
        cs_snap_each_job(snap, find_due, &c, &err);
        cs_snap_close(snap);
    }
    if (c.n == 0) {
        free(c.ids);
        free(j);
        return;
    }
    j->gc = c.ids;
    j->ngc = c.n;
    pthread_mutex_lock(&s->mu);
    s->gc_queued = true;
    pthread_mutex_unlock(&s->mu);
    enqueue(s, j);
}

/* The monitor's schedule for upkeep (monotonic ms). Compaction drops what
 * the log held `log_retain_ms` ago: `mark` is the cell version at the
 * previous compaction, so an entry lives between one and two retention
 * periods. The mark is a version the writer has finished with (s->version),
 * so that after_write never finds its own starting point compacted away. */
typedef struct upkeep {
    int64_t next_gc, gc_every;
    int64_t next_compact;
    uint64_t mark;
} upkeep;

static void upkeep_init(cs_server *s, upkeep *u, int64_t tick)
{
    int64_t now = now_ms();
    u->gc_every = (int64_t)(s->o.job_gc_ms / 4);
    if (u->gc_every < tick)
        u->gc_every = tick;
    if (u->gc_every > 60000)
        u->gc_every = 60000;
    u->next_gc = now;
    u->next_compact = now + (int64_t)s->o.log_retain_ms;
    pthread_mutex_lock(&s->mu);
    u->mark = s->version;
    pthread_mutex_unlock(&s->mu);
}

static void upkeep_run(cs_server *s, upkeep *u)
{
    int64_t now = now_ms();
    if (s->o.job_gc_ms > 0 && now >= u->next_gc) {
        u->next_gc = now + u->gc_every;
        queue_gc(s);
    }
    if (s->o.log_retain_ms > 0 && now >= u->next_compact) {
        u->next_compact = now + (int64_t)s->o.log_retain_ms;
        cs_error err;
        if (u->mark > 0 && cs_store_compact(s->store, u->mark, &err) != CS_OK)
            fprintf(stderr, "cellstated: compacting the log to %llu: %s\n",
                    (unsigned long long)u->mark, err.msg);
        pthread_mutex_lock(&s->mu);
        u->mark = s->version;
        pthread_mutex_unlock(&s->mu);
    }
}

static void *monitor_main(void *arg)
{
    cs_server *s = arg;
    int64_t tick = s->o.heartbeat_timeout_ms / 4;
    if (tick < 20)
        tick = 20;
    if (tick > 1000)
        tick = 1000;
    cs_id ids[256], drains[256];
    upkeep u;
    upkeep_init(s, &u, tick);
    for (;;) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += (long)(tick % 1000) * 1000000L;
        until.tv_sec += tick / 1000 + until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_mutex_lock(&s->mu);
        while (!s->stopping && pthread_cond_timedwait(&s->mon_cv, &s->mu, &until) != ETIMEDOUT)
            ;
        bool stop = s->stopping;
        bool arm = probe_arm(s);
        int64_t served = s->served_ms;
        pthread_mutex_unlock(&s->mu);
        if (stop)
            return NULL;
        if (arm)
            nng_sleep_aio(0, s->probe);
        cs_snap *snap;
        cs_error err;
        if (cs_snap_open(s->store, &snap, &err) != CS_OK)
            continue;
        silent_ctx c = {s, served, ids, 0, sizeof ids / sizeof ids[0], wall_ms(), drains, 0};
        cs_snap_each_machine(snap, find_silent, &c, &err);
        cs_snap_close(snap);
        for (size_t i = 0; i < c.n + c.ndrains; i++) {
            wjob *j = calloc(1, sizeof *j);
            if (j == NULL) {
                /* Unqueued drain verdicts are judged again at the next tick. */
                pthread_mutex_lock(&s->mu);
                for (size_t k = i < c.n ? 0 : i - c.n; k < c.ndrains; k++) {
                    mslot *sl = slot_of(s, drains[k]);
                    if (sl != NULL)
                        sl->drain_queued = false;
                }
                pthread_mutex_unlock(&s->mu);
                break;
            }
            j->down_machine = i < c.n ? ids[i] : drains[i - c.n];
            j->drain = i >= c.n;
            enqueue(s, j);
        }
        upkeep_run(s, &u);
    }
}

/* ---- the worker state machine ------------------------------------------------ */

static bool is_write(uint32_t type) { return write_handler(type) != NULL; }

static void serve(worker *w)
{
    cs_server *s = w->s;
    cs_error err = {0};
    size_t len = nng_msg_len(w->req);
    pthread_mutex_lock(&s->mu);
    s->c.requests++;
    pthread_mutex_unlock(&s->mu);
    if (len > s->o.max_msg) {
        char m[128];
        snprintf(m, sizeof m, "message of %zu bytes exceeds the limit of %zu bytes", len,
                 s->o.max_msg);
        w->msg.req = 0;
        send_error(w, CS_ETOOBIG, m);
        return;
    }
    int rc = cs_msg_decode(nng_msg_body(w->req), len, &w->zone, &w->msg, &err);
    if (rc != CS_OK) {
        send_error(w, rc, err.msg);
        return;
    }
    if (w->msg.body.type != MSGPACK_OBJECT_MAP && w->msg.type != CS_MSG_COMMIT) {
        send_error(w, CS_EPROTO, "message body is not a map");
        return;
    }
    switch (w->msg.type) {
    case CS_MSG_HEARTBEAT:
        run_handler(w, h_heartbeat);
        return;
    case CS_MSG_SYNC:
        run_handler(w, h_sync);
        return;
    case CS_MSG_POLL:
        h_poll(w);
        return;
    case CS_MSG_GET_MACHINES:
        run_handler(w, h_get_machines);
        return;
    case CS_MSG_GET_JOBS:
        run_handler(w, h_get_jobs);
        return;
    case CS_MSG_GET_TASKS:
        run_handler(w, h_get_tasks);
        return;
    case CS_MSG_GET_JOB:
        run_handler(w, h_get_job);
        return;
    case CS_MSG_STATS:
        run_handler(w, h_stats);
        return;
    case CS_MSG_SCHED_REPORT:
        run_handler(w, h_sched_report);
        return;
    default:
        break;
    }
    if (is_write(w->msg.type)) {
        w->state = W_WRITE;
        w->job.w = w;
        enqueue(s, &w->job);
        return;
    }
    char m[64];
    snprintf(m, sizeof m, "message type %s (%u) is not a request", cs_msg_name(w->msg.type),
             w->msg.type);
    send_error(w, CS_EPROTO, m);
}

static bool stopping(cs_server *s)
{
    pthread_mutex_lock(&s->mu);
    bool stop = s->stopping;
    pthread_mutex_unlock(&s->mu);
    return stop;
}

static void worker_cb(void *arg)
{
    worker *w = arg;
    int rv;
    switch (w->state) {
    case W_INIT:
        w->state = W_RECV;
        nng_ctx_recv(w->ctx, w->aio);
        break;
    case W_RECV:
        if ((rv = nng_aio_result(w->aio)) != 0) {
            if (rv == NNG_ECLOSED || stopping(w->s))
                return;
            nng_ctx_recv(w->ctx, w->aio);
            break;
        }
        w->req = nng_aio_get_msg(w->aio);
        w->recv_ms = now_ms();
        if (stopping(w->s)) {
            /* Stopping: not served (it could be a sync that takes seconds
             * to encode); the client times out and retries elsewhere. */
            release_req(w);
            return;
        }
        serve(w);
        break;
    case W_WAIT: {
        /* The sleep ran out, or the writer cancelled it: answer now. */
        rv = nng_aio_result(w->aio);
        pthread_mutex_lock(&w->s->mu);
        park_remove(w->s, w);
        bool stop = w->s->stopping;
        pthread_mutex_unlock(&w->s->mu);
        if (stop || rv == NNG_ECLOSED) {
            release_req(w);
            return;
        }
        run_handler(w, h_poll_reply);
        break;
    }
    case W_SEND:
        if ((rv = nng_aio_result(w->aio)) != 0) {
            nng_msg_free(nng_aio_get_msg(w->aio));
            if (rv == NNG_ECLOSED)
                return;
        }
        if (stopping(w->s))
            return; /* do not re-arm an aio that cs_server_stop is stopping */
        w->state = W_RECV;
        nng_ctx_recv(w->ctx, w->aio);
        break;
    case W_WRITE:
        break; /* the writer owns the worker until it sends */
    }
}

/* ---- start and stop ------------------------------------------------------------ */

typedef struct init_ctx {
    cs_server *s;
} init_ctx;

static int init_machine(void *ctx, const cs_machine *m)
{
    cs_server *s = ((init_ctx *)ctx)->s;
    mslot *sl = slot_of(s, m->id);
    if (sl == NULL)
        return CS_ENOMEM;
    /* A grace period: every machine gets one timeout to check in after a
     * restart of the server. */
    sl->seen_ms = now_ms();
    sl->changed = m->version;
    sl->known = true;
    sl->state = m->state;
    return 0;
}

static int nng_fail(cs_error *err, int rv, const char *what, const char *url)
{
    return cs_errorf(err, CS_EIO, "%s %s: %s", what, url ? url : "", nng_strerror(rv));
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

int cs_server_start(const cs_server_opts *o, cs_server **out, cs_error *err)
{
    cs_server *s = calloc(1, sizeof *s);
    if (s == NULL)
        return cs_errorf(err, CS_ENOMEM, "server: out of memory");
    s->o = *o;
    s->data_dir = dup_or_null(o->data_dir);
    s->listen_url = dup_or_null(o->listen_url);
    s->pub_url = dup_or_null(o->pub_url);
    s->o.data_dir = s->data_dir;
    s->o.listen_url = s->listen_url;
    s->o.pub_url = s->pub_url;
    if (s->o.workers == 0)
        s->o.workers = 1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->rmu, NULL);
    cs_sched_table_init(&s->reports);
    pthread_cond_init(&s->cv, NULL);
    pthread_cond_init(&s->mon_cv, NULL);
    int rc, rv;
    if (s->data_dir == NULL || s->listen_url == NULL) {
        rc = cs_errorf(err, CS_EINVAL, "server: a data directory and a listen URL are needed");
        goto err_after_alloc;
    }
    if (mkdir(s->data_dir, 0755) != 0 && errno != EEXIST) {
        rc = cs_errorf(err, CS_EIO, "creating data directory %s: %s", s->data_dir,
                       strerror(errno));
        goto err_after_alloc;
    }
    cs_store_opts so = {.nosync = o->nosync};
    if ((rc = cs_store_open(s->data_dir, &so, &s->store, err)) != CS_OK)
        goto err_after_alloc;

    cs_snap *snap;
    if ((rc = cs_snap_open(s->store, &snap, err)) != CS_OK)
        goto err_after_store;
    s->version = cs_snap_version(snap);
    init_ctx ic = {s};
    rc = cs_snap_each_machine(snap, init_machine, &ic, err);
    cs_snap_close(snap);
    if (rc != CS_OK)
        goto err_after_store;

    if ((rv = nng_rep0_open(&s->rep)) != 0) {
        rc = nng_fail(err, rv, "opening REP socket", NULL);
        goto err_after_store;
    }
    /* nng itself drops (and disconnects) messages beyond a hard cap; below
     * it, a request over max_msg gets an error reply that says so. */
    size_t hard = s->o.max_msg > SIZE_MAX / 4 ? SIZE_MAX : s->o.max_msg * 4 + 4096;
    nng_socket_set_size(s->rep, NNG_OPT_RECVMAXSZ, hard);
    s->nworkers = s->o.workers;
    s->workers = calloc(s->nworkers, sizeof *s->workers);
    if (s->workers == NULL) {
        rc = cs_errorf(err, CS_ENOMEM, "server: out of memory");
        goto err_after_rep;
    }
    for (uint32_t i = 0; i < s->nworkers; i++) {
        worker *w = &s->workers[i];
        w->s = s;
        msgpack_zone_init(&w->zone, 4096);
        if ((rv = nng_aio_alloc(&w->aio, worker_cb, w)) != 0 ||
            (rv = nng_ctx_open(&w->ctx, s->rep)) != 0) {
            rc = nng_fail(err, rv, "creating worker", NULL);
            goto err_after_workers;
        }
    }
    if ((rv = nng_aio_alloc(&s->probe, probe_cb, s)) != 0) {
        rc = nng_fail(err, rv, "creating the monitor's probe", NULL);
        goto err_after_workers;
    }
    s->served_ms = now_ms();
    if ((rv = nng_listen(s->rep, s->listen_url, &s->listener, 0)) != 0) {
        rc = nng_fail(err, rv, "listening on", s->listen_url);
        goto err_after_workers;
    }
    if (s->pub_url != NULL) {
        if ((rv = nng_pub0_open(&s->pub)) != 0 ||
            (rv = nng_listen(s->pub, s->pub_url, NULL, 0)) != 0) {
            rc = nng_fail(err, rv, "publishing on", s->pub_url);
            goto err_after_workers;
        }
        s->have_pub = true;
    }
    if (pthread_create(&s->writer, NULL, writer_main, s) != 0) {
        rc = cs_errorf(err, CS_ENOMEM, "starting the writer thread");
        goto err_after_workers;
    }
    s->writer_started = true;
    if (pthread_create(&s->monitor, NULL, monitor_main, s) != 0) {
        rc = cs_errorf(err, CS_ENOMEM, "starting the monitor thread");
        goto err_after_workers;
    }
    s->monitor_started = true;
    for (uint32_t i = 0; i < s->nworkers; i++)
        worker_cb(&s->workers[i]);
    *out = s;
    return CS_OK;

err_after_workers:
    cs_server_stop(s);
    return rc;
err_after_rep:
    nng_close(s->rep);
err_after_store:
    cs_store_close(s->store);
err_after_alloc:
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->mon_cv);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->rmu);
    free(s->data_dir);
    free(s->listen_url);
    free(s->pub_url);
    free(s);
    return rc;
}

int cs_server_bound_url(cs_server *s, char *out, size_t size, cs_error *err)
{
    int port = 0, n;
    const char *url = s->listen_url;
    const char *colon = strrchr(url, ':');
    /* Only TCP listeners have a port; ipc:// and inproc:// are their URL. */
    if (strncmp(url, "tcp", 3) == 0 && colon != NULL &&
        nng_listener_get_int(s->listener, NNG_OPT_TCP_BOUND_PORT, &port) == 0)
        n = snprintf(out, size, "%.*s:%d", (int)(colon - url), url, port);
    else
        n = snprintf(out, size, "%s", url);
    if (n < 0 || (size_t)n >= size)
        return cs_errorf(err, CS_EINVAL, "the listen address %s is too long", url);
    return CS_OK;
}

void cs_server_stop(cs_server *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_broadcast(&s->cv);
    pthread_cond_broadcast(&s->mon_cv);
    pthread_mutex_unlock(&s->mu);
    /* The writer first: it finishes the write in progress and replies on a
     * socket still open, then leaves. Only then are the sockets closed
     * (nng must never be handed a context of a closed socket). */
    if (s->writer_started)
        pthread_join(s->writer, NULL);
    if (s->monitor_started)
        pthread_join(s->monitor, NULL);
    if (s->probe != NULL)
        nng_aio_stop(s->probe);
    /* Then the workers: nng_aio_stop waits for a callback in flight (a
     * read being answered) and ends parked polls; callbacks see `stopping`
     * and do not re-arm. Only then is the socket closed. Every aio is
     * cancelled first, all at once: stopping them one by one waited for
     * each cancellation's callback in turn behind nng's task queue (11,024
     * workers at C1M scale). The listener goes first, so that no new
     * request arrives meanwhile. */
    if (nng_listener_id(s->listener) > 0)
        nng_listener_close(s->listener);
    for (uint32_t i = 0; i < s->nworkers; i++)
        if (s->workers[i].aio != NULL)
            nng_aio_cancel(s->workers[i].aio);
    for (uint32_t i = 0; i < s->nworkers; i++)
        if (s->workers[i].aio != NULL)
            nng_aio_stop(s->workers[i].aio);
    nng_close(s->rep);
    if (s->have_pub)
        nng_close(s->pub);
    for (uint32_t i = 0; i < s->nworkers; i++) {
        worker *w = &s->workers[i];
        if (w->aio != NULL)
            nng_aio_free(w->aio);
        release_req(w);
        msgpack_zone_destroy(&w->zone);
    }
    if (s->probe != NULL)
        nng_aio_free(s->probe);
    /* Writes queued after the writer left, and monitor verdicts: dropped. */
    for (int l = 0; l < NLANES; l++)
        while (s->lanes[l].head != NULL) {
            wjob *j = s->lanes[l].head;
            s->lanes[l].head = j->next;
            if (j->w == NULL) {
                free(j->gc);
                free(j);
            }
        }
    free(s->workers);
    free(s->mach);
    cs_store_close(s->store);
    cs_sched_table_free(&s->reports);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->mon_cv);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->rmu);
    free(s->data_dir);
    free(s->listen_url);
    free(s->pub_url);
    free(s);
}
