/* reads.c — the requests answered from one snapshot of the store, on the
 * worker's thread: get.machines, get.jobs, get.tasks, get.job, stats; and
 * the tasks of a machine as a poll in the "each" form gets them. Also
 * audit, answered from this server's audit log (audit.h), not the store. */
#include <stdlib.h>
#include <string.h>

#include "proto/agentmsg.h"
#include "proto/readmsg.h"
#include "server/internal.h"

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
    bool redact;    /* a reader's: jobs without their environment */
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
    p->failed |= cs_pack_job_as(p->pk, j, p->redact) != CS_OK;
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
    return rc == CS_OK ? cs_poll_entry_each_encode(pk, t, job->data, job->size) : rc;
}

static int put_task(void *ctx, const cs_task *t)
{
    pack_ctx *p = ctx;
    if (task_wanted(p, t))
        p->failed |= (p->with_job ? pack_task_for_agent(p->pk, p->snap, p->memo, t)
                                  : cs_pack_task(p->pk, t)) != CS_OK;
    return 0;
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
    pack_ctx p = {.pk = pk, .redact = w->redact};
    int rc = walk(snap, false, &p, err);
    if (rc == CS_OK && cs_list_reply_begin(pk, cs_snap_version(snap), key, p.n) != CS_OK)
        rc = cs_errorf(err, CS_ENOMEM, "reply: out of memory");
    if (rc == CS_OK)
        rc = walk(snap, true, &p, err);
    srv_snap_close(w->s, snap);
    return rc == CS_OK && p.failed ? cs_errorf(err, CS_ENOMEM, "reply: out of memory") : rc;
}

int srv_get_machines(worker *w, msgpack_packer *pk, cs_error *err)
{
    return h_list(w, pk, "machines", walk_machines, err);
}

int srv_get_jobs(worker *w, msgpack_packer *pk, cs_error *err)
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
    if (cs_list_reply_begin(pk, cs_snap_version(snap), "tasks", p->n) != CS_OK)
        return cs_errorf(err, CS_ENOMEM, "reply: out of memory");
    if (p->job != 0)
        rc = cs_snap_each_task_of_job(snap, p->job, put_task, p, err);
    else if (p->machine != 0 && p->placed_only)
        rc = cs_snap_each_task_on_machine(snap, p->machine, put_task, p, err);
    else
        rc = cs_snap_each_task(snap, put_task, p, err);
    return rc == CS_OK && p->failed ? cs_errorf(err, CS_ENOMEM, "reply: out of memory") : rc;
}

int srv_get_tasks(worker *w, msgpack_packer *pk, cs_error *err)
{
    cs_arena a;
    cs_arena_init(&a);
    cs_get_tasks_req q;
    int rc = cs_get_tasks_req_decode(body(w), &q, &a, err);
    cs_snap *snap = NULL;
    if (rc == CS_OK)
        rc = open_snap(w, &snap, err);
    pack_ctx p = {.state = q.state};
    if (rc == CS_OK && q.has_job) {
        cs_job j;
        if ((rc = cs_ref_job(snap, &q.job, &a, &j, err)) == CS_OK)
            p.job = j.id;
    }
    if (rc == CS_OK && q.has_machine) {
        cs_machine m;
        if ((rc = cs_ref_machine(snap, &q.machine, &a, &m, err)) == CS_OK)
            p.machine = m.id;
    }
    if (rc == CS_OK)
        rc = pack_tasks(snap, pk, &p, err);
    cs_arena_free(&a);
    if (snap != NULL)
        srv_snap_close(w->s, snap);
    return rc;
}

int srv_get_job(worker *w, msgpack_packer *pk, cs_error *err)
{
    cs_arena a;
    cs_arena_init(&a);
    cs_job_ref_req q;
    cs_job j;
    int rc = cs_job_ref_req_decode(body(w), &q, &a, err);
    cs_snap *snap = NULL;
    if (rc == CS_OK && (rc = open_snap(w, &snap, err)) == CS_OK)
        rc = cs_ref_job(snap, &q.job, &a, &j, err);
    if (rc == CS_OK) {
        /* {"job": {...}, "tasks": {"version", "tasks": [...]}}: the second
         * value is the same map get.tasks answers with. */
        if (cs_get_job_reply_begin(pk, &j, w->redact) != CS_OK)
            rc = cs_errorf(err, CS_ENOMEM, "reply: out of memory");
        pack_ctx p = {.state = -1, .job = j.id};
        if (rc == CS_OK)
            rc = pack_tasks(snap, pk, &p, err);
    }
    cs_arena_free(&a);
    if (snap != NULL)
        srv_snap_close(w->s, snap);
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

int srv_stats(worker *w, msgpack_packer *pk, cs_error *err)
{
    cs_snap *snap;
    CS_TRY(open_snap(w, &snap, err));
    stats_ctx c = {0};
    int rc;
    if ((rc = cs_snap_each_machine(snap, stat_machine, &c, err)) != CS_OK ||
        (rc = cs_snap_each_job(snap, stat_job, &c, err)) != CS_OK ||
        (rc = cs_snap_each_task(snap, stat_task, &c, err)) != CS_OK) {
        srv_snap_close(w->s, snap);
        return rc;
    }
    uint64_t version = cs_snap_version(snap);
    srv_snap_close(w->s, snap);
    cs_server *s = w->s;
    pthread_mutex_lock(&s->mu);
    counters k = s->c;
    uint32_t parked = s->nparked;
    pthread_mutex_unlock(&s->mu);
    cs_stats_reply r = {.version = version, .machines = c.machines, .machines_up = c.up,
                        .jobs = c.jobs, .jobs_active = c.active, .capacity = c.cap,
                        .allocated = c.alloc,
                        .server = {k.requests, k.errors, k.writes, k.commits,
                                   k.commits_conflicted, k.claims, k.claims_committed, k.queued,
                                   parked, atomic_load(&s->inflight)},
                        .workers = s->nworkers};
    for (int i = 0; i < CS_TASK_STATE_COUNT; i++)
        r.tasks[i] = c.tasks[i];
    PK(cs_stats_reply_head(pk, &r));
    int64_t now = now_ms();
    pthread_mutex_lock(&s->rmu);
    cs_sched_table_expire(&s->reports, now);
    rc = cs_sched_table_pack(&s->reports, now, pk);
    pthread_mutex_unlock(&s->rmu);
    return rc != CS_OK ? cs_errorf(err, rc, "reply: out of memory") : CS_OK;
}


int srv_pack_machine_tasks(cs_snap *snap, msgpack_packer *pk, cs_id machine, cs_error *err)
{
    job_memo jm = {0};
    pack_ctx p = {.state = -1, .machine = machine, .placed_only = true, .with_job = true,
                  .memo = &jm};
    int rc = pack_tasks(snap, pk, &p, err);
    job_memo_free(&jm);
    return rc;
}

/* ---- the audit log ------------------------------------------------------------ */

/* Each server answers from its own file: in a replicated cell the leader
 * that accepted a write recorded it, so a client asks every replica and
 * merges (cellctl audit). */
int srv_audit(worker *w, msgpack_packer *pk, cs_error *err)
{
    cs_arena a;
    cs_arena_init(&a);
    cs_audit_req q;
    cs_audit_reply r = {0};
    int rc = cs_audit_req_decode(body(w), &q, &a, err);
    if (rc == CS_OK)
        rc = cs_audit_read(w->s->audit, &q, &a, &r.entries, &r.n, &r.more, err);
    if (rc == CS_OK && cs_audit_reply_encode(pk, &r) != CS_OK)
        rc = cs_errorf(err, CS_ENOMEM, "reply: out of memory");
    cs_arena_free(&a);
    return rc;
}
