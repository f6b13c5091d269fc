/* writer.c — the one writer: every write (registrations, submissions,
 * commits, reports, the monitor's verdicts) in arrival order, grouped into
 * one LMDB transaction and one fsync per group (store.h's group commit), so
 * that the store sees one writer as Omega's cell state does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cellstate/vec.h"
#include "proto/agentmsg.h"
#include "proto/commitmsg.h"
#include "proto/jobmsg.h"
#include "server/internal.h"
#include "txn/command.h"

/* ---- writes (the writer thread) ----------------------------------------------- */

/* Every write is a command of the state machine (txn/command.h): a handler
 * decodes its request, resolves names to ids, builds the command with the
 * instants it needs stamped on the wall clock here (the proposer's clock:
 * applying reads none), applies it, and packs its reply from the result.
 * The machines each result names are gathered for after_write. */

/* The machines the group's commands changed (cs_server.touched). */
typedef struct wtouched {
    cs_id *ids;
    size_t n, cap;
    bool lost; /* out of memory noting some: after_write wakes every machine */
} wtouched;

static void note_touched(cs_server *s, const cs_result *r)
{
    wtouched *t = s->touched;
    if (t == NULL || r->nmachines == 0)
        return;
    cs_id *v = cs_vec_grow(t->ids, &t->cap, t->n + r->nmachines, sizeof *v, 64);
    if (v == NULL) {
        t->lost = true;
        return;
    }
    t->ids = v;
    memcpy(v + t->n, r->machines, r->nmachines * sizeof *v);
    t->n += r->nmachines;
}

/* Apply command `c` (`built`: its builder's code), note what it touched,
 * and give a refusal back as the error the client gets. `r` receives the
 * result; `c` is freed. */
static int propose(cs_server *s, cs_command *c, int built, cs_result *r, cs_error *err)
{
    int rc = built == CS_OK ? cs_command_apply_built(s->store, c, r, err) : built;
    cs_command_free(c);
    if (rc != CS_OK)
        return rc;
    note_touched(s, r);
    return cs_result_error(r, err);
}

/* The current cell version: the reply of a write that changed nothing. */
static uint64_t current_version(cs_server *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t v = s->version;
    pthread_mutex_unlock(&s->mu);
    return v;
}

/* propose, replying {version} (cs_version_reply). */
static int propose_reply_version(worker *w, msgpack_packer *pk, cs_command *c, int built,
                                 cs_error *err)
{
    cs_result r;
    cs_result_init(&r);
    int rc = propose(w->s, c, built, &r, err);
    cs_version_reply reply = {r.version};
    if (rc == CS_OK && cs_version_reply_encode(pk, &reply) != CS_OK)
        rc = cs_errorf(err, CS_ENOMEM, "reply: out of memory");
    cs_result_free(&r);
    return rc;
}

/* propose, replying {id, version} (cs_id_reply): a registration or a
 * submission. */
static int propose_reply_id(worker *w, msgpack_packer *pk, cs_command *c, int built,
                            cs_id *id, cs_error *err)
{
    cs_result r;
    cs_result_init(&r);
    int rc = propose(w->s, c, built, &r, err);
    cs_id_reply reply = {r.id, r.version};
    if (rc == CS_OK) {
        *id = r.id;
        if (cs_id_reply_encode(pk, &reply) != CS_OK)
            rc = cs_errorf(err, CS_ENOMEM, "reply: out of memory");
    }
    cs_result_free(&r);
    return rc;
}

int srv_register(worker *w, msgpack_packer *pk, cs_error *err)
{
    cs_arena a;
    cs_arena_init(&a);
    cs_machine spec;
    cs_command c;
    cs_id id = 0;
    int rc = cs_register_req_decode(body(w), &spec, &a, err);
    if (rc == CS_OK)
        rc = propose_reply_id(w, pk, &c, cs_cmd_machine_put(&c, &spec, err), &id, err);
    cs_arena_free(&a);
    if (rc != CS_OK)
        return rc;
    pthread_mutex_lock(&w->s->mu);
    mslot *sl = srv_slot_of(w->s, id);
    if (sl != NULL) {
        sl->seen_ms = now_ms();
        sl->down_queued = false;
    }
    pthread_mutex_unlock(&w->s->mu);
    return CS_OK;
}

int srv_submit(worker *w, msgpack_packer *pk, cs_error *err)
{
    cs_arena a;
    cs_arena_init(&a);
    cs_job spec;
    cs_command c;
    cs_id id = 0;
    int rc = cs_job_submit_req_decode(body(w), &spec, &a, err);
    /* Stamped here, in the writer, so that the logged command carries it
     * and a replay of the log reproduces it. */
    spec.submitted = wall_ms();
    if (rc == CS_OK)
        rc = propose_reply_id(w, pk, &c, cs_cmd_job_submit(&c, &spec, err), &id, err);
    cs_arena_free(&a);
    return rc;
}

/* The id of the job (`job`) or machine `ref` names (only read; a name in
 * `a`). Through a write transaction, not a snapshot: in a group
 * (srv_writer_main) a record written by an earlier command of the same
 * group is not in any snapshot yet. The transaction writes nothing and is
 * aborted. */
static int resolve(worker *w, const cs_ref *ref, bool job, cs_id *id, cs_error *err)
{
    cs_wtxn *wt;
    CS_TRY(cs_wtxn_begin(w->s->store, &wt, err));
    cs_arena a;
    cs_arena_init(&a);
    cs_job j;
    cs_machine m;
    int rc = job ? cs_ref_job(cs_wtxn_snap(wt), ref, &a, &j, err)
                 : cs_ref_machine(cs_wtxn_snap(wt), ref, &a, &m, err);
    if (rc == CS_OK)
        *id = job ? j.id : m.id;
    cs_arena_free(&a);
    cs_wtxn_abort(wt);
    return rc;
}

static int resolve_job(worker *w, const cs_ref *ref, cs_id *id, cs_error *err)
{
    return resolve(w, ref, true, id, err);
}

/* job.kill and job.end, {job}: the command built by `build`, stamped now
 * (job.end: a batch scheduler says none of the job's tasks will run again;
 * the cell makes it finished or failed). */
static int job_ref_op(worker *w, msgpack_packer *pk,
                      int (*build)(cs_command *, cs_id, uint64_t, cs_error *), cs_error *err)
{
    cs_arena a;
    cs_arena_init(&a);
    cs_job_ref_req req;
    cs_id id = 0;
    cs_command c;
    int rc = cs_job_ref_req_decode(body(w), &req, &a, err);
    if (rc == CS_OK)
        rc = resolve_job(w, &req.job, &id, err);
    cs_arena_free(&a);
    if (rc != CS_OK)
        return rc;
    return propose_reply_version(w, pk, &c, build(&c, id, wall_ms(), err), err);
}

int srv_kill(worker *w, msgpack_packer *pk, cs_error *err)
{
    return job_ref_op(w, pk, cs_cmd_job_kill, err);
}

int srv_job_end(worker *w, msgpack_packer *pk, cs_error *err)
{
    return job_ref_op(w, pk, cs_cmd_job_end, err);
}

/* job.scale and job.surge: {job, <key>: n} decoded by `decode`, the
 * command built by `build`. */
static int job_count_op(worker *w, msgpack_packer *pk,
                        int (*decode)(const msgpack_object *, cs_job_count_req *, cs_arena *,
                                      cs_error *),
                        int (*build)(cs_command *, cs_id, uint32_t, cs_error *), cs_error *err)
{
    cs_arena a;
    cs_arena_init(&a);
    cs_job_count_req req;
    cs_id id = 0;
    cs_command c;
    int rc = decode(body(w), &req, &a, err);
    if (rc == CS_OK)
        rc = resolve_job(w, &req.job, &id, err);
    cs_arena_free(&a);
    if (rc != CS_OK)
        return rc;
    return propose_reply_version(w, pk, &c, build(&c, id, req.n, err), err);
}

int srv_scale(worker *w, msgpack_packer *pk, cs_error *err)
{
    return job_count_op(w, pk, cs_job_scale_req_decode, cs_cmd_job_scale, err);
}

int srv_job_surge(worker *w, msgpack_packer *pk, cs_error *err)
{
    return job_count_op(w, pk, cs_job_surge_req_decode, cs_cmd_job_surge, err);
}

/* machine.admin: {machine, admin, deadline_ms?}. The deadline comes as a
 * duration and is stamped here, in the writer, on the wall clock, so that
 * the logged command carries the instant and a replay reproduces it. */
int srv_machine_admin(worker *w, msgpack_packer *pk, cs_error *err)
{
    cs_arena a;
    cs_arena_init(&a);
    cs_machine_admin_req req;
    cs_id id = 0;
    int rc = cs_machine_admin_req_decode(body(w), &req, &a, err);
    if (rc == CS_OK)
        rc = resolve(w, &req.machine, false, &id, err);
    cs_arena_free(&a);
    if (rc != CS_OK)
        return rc;
    uint64_t deadline = req.has_deadline ? wall_ms() + req.deadline_ms : 0;
    cs_command c;
    cs_result r;
    cs_result_init(&r);
    rc = propose(w->s, &c, cs_cmd_machine_admin(&c, id, req.admin, deadline, err), &r, err);
    cs_machine_admin_reply reply = {id, req.admin, deadline, r.version};
    if (rc == CS_OK && cs_machine_admin_reply_encode(pk, &reply) != CS_OK)
        rc = cs_errorf(err, CS_ENOMEM, "reply: out of memory");
    cs_result_free(&r);
    return rc;
}

/* job.update: {job, spec}. The codec checks the whole request before the
 * job is looked up, so a request naming an unknown job with a bad spec is
 * refused for the spec (docs/protocol.md §5.6). */
int srv_update(worker *w, msgpack_packer *pk, cs_error *err)
{
    cs_arena a;
    cs_arena_init(&a);
    cs_job_update_req req;
    cs_id id = 0;
    cs_command c;
    int rc = cs_job_update_req_decode(body(w), &req, &a, err);
    if (rc == CS_OK)
        rc = resolve_job(w, &req.job, &id, err);
    if (rc == CS_OK)
        rc = propose_reply_version(w, pk, &c, cs_cmd_job_update(&c, id, &req.spec, err), err);
    cs_arena_free(&a);
    return rc;
}

int srv_job_note(worker *w, msgpack_packer *pk, cs_error *err)
{
    cs_arena a;
    cs_arena_init(&a);
    cs_job_note_req req;
    cs_id id = 0;
    cs_command c;
    int rc = cs_job_note_req_decode(body(w), &req, &a, err);
    if (rc == CS_OK)
        rc = resolve_job(w, &req.job, &id, err);
    if (rc == CS_OK)
        rc = propose_reply_version(w, pk, &c, cs_cmd_job_note(&c, id, req.note, err), err);
    cs_arena_free(&a);
    return rc;
}

/* commit: per commit on the writer thread, so nothing here allocates per
 * claim beyond the transaction itself; the reply borrows the result's
 * outcome arrays. */
int srv_commit(worker *w, msgpack_packer *pk, cs_error *err)
{
    cs_txn t;
    cs_txn_init(&t, 0, 0, 0, 0, 0);
    cs_command c;
    cs_result res;
    cs_result_init(&res);
    int rc = cs_commit_req_decode(body(w), &t, NULL, err);
    if (rc == CS_OK)
        rc = propose(w->s, &c, cs_cmd_txn(&c, &t, err), &res, err);
    if (rc == CS_OK) {
        const cs_txn_result *r = &res.txn;
        pthread_mutex_lock(&w->s->mu);
        if (!r->replayed) {
            w->s->c.commits++;
            w->s->c.commits_conflicted += r->conflicts > 0;
            w->s->c.claims += r->nclaims;
            w->s->c.claims_committed += r->committed;
        }
        pthread_mutex_unlock(&w->s->mu);
        cs_commit_reply reply = cs_commit_reply_of(r);
        if (cs_commit_reply_encode(pk, &reply) != CS_OK)
            rc = cs_errorf(err, CS_ENOMEM, "reply: out of memory");
    }
    cs_result_free(&res);
    cs_txn_free(&t);
    return rc;
}

/* The batch form of task.status, decoded as `req`: each report the codec
 * took is applied as its own command (its own version and log entry), in
 * order; one refused report does not stop the others. The writer's group
 * commit makes the batch one LMDB transaction. Reply: {"version",
 * "results": [{"code", "message"}]}, code 0 for a report taken; the
 * messages live in `a`. */
static int task_status_batch(worker *w, const cs_task_status_req *req, cs_arena *a,
                             msgpack_packer *pk, cs_error *err)
{
    cs_task_status_reply reply = {0, cs_arena_alloc(a, (req->n + 1) * sizeof *reply.results),
                                  req->n};
    if (reply.results == NULL)
        return cs_errorf(err, CS_ENOMEM, "task.status: out of memory");
    cs_result res;
    cs_result_init(&res);
    int rc = CS_OK;
    for (uint32_t i = 0; i < req->n && rc == CS_OK; i++) {
        cs_report_result *o = &reply.results[i];
        cs_error e = {0};
        cs_command c;
        *o = (cs_report_result){req->codes[i], req->errors[i]};
        if (o->code != CS_OK)
            continue;
        o->code = propose(w->s, &c, cs_cmd_task_report(&c, &req->reports[i], &e), &res, &e);
        if (o->code == CS_OK && res.version > reply.version)
            reply.version = res.version;
        else if (o->code != CS_OK &&
                 (o->message = cs_arena_strndup(a, e.msg, strlen(e.msg))) == NULL)
            rc = cs_errorf(err, CS_ENOMEM, "task.status: out of memory");
    }
    cs_result_free(&res);
    /* Nothing taken: the current version, as a single refused or unchanged
     * report would give. */
    if (reply.version == 0)
        reply.version = current_version(w->s);
    if (rc == CS_OK && cs_task_status_reply_encode(pk, &reply) != CS_OK)
        rc = cs_errorf(err, CS_ENOMEM, "reply: out of memory");
    return rc;
}

int srv_task_status(worker *w, msgpack_packer *pk, cs_error *err)
{
    cs_arena a;
    cs_arena_init(&a);
    cs_task_status_req req;
    cs_command c;
    int rc = cs_task_status_req_decode(body(w), &req, &a, err);
    if (rc == CS_OK && req.batch)
        rc = task_status_batch(w, &req, &a, pk, err);
    else if (rc == CS_OK)
        rc = propose_reply_version(w, pk, &c, cs_cmd_task_report(&c, &req.reports[0], err), err);
    cs_arena_free(&a);
    return rc;
}

static int cmp_id(const void *a, const void *b)
{
    cs_id x = *(const cs_id *)a, y = *(const cs_id *)b;
    return x < y ? -1 : x > y;
}

/* After a group: note which machines its commands changed (their results
 * said, s->touched) and their state (for heartbeats), wake the polls
 * waiting on them, and announce the version. Before the group's replies go
 * out: an agent that registered again after being marked down must not be
 * told "down" by its next heartbeat. `applied`: the group committed (a
 * failed one changed nothing). */
static void after_write(cs_server *s, bool applied)
{
    wtouched *t = s->touched;
    cs_snap *snap;
    cs_error err;
    if (!applied || cs_snap_open(s->store, &snap, &err) != CS_OK) {
        t->n = 0;
        t->lost = false;
        return;
    }
    uint64_t v = cs_snap_version(snap);
    pthread_mutex_lock(&s->mu);
    uint64_t old = s->version;
    if (t->lost) {
        /* Which machines changed is unknown: every one may have. */
        size_t n = 0;
        cs_id *v2 = cs_vec_grow(t->ids, &t->cap, s->nmach, sizeof *v2, 64);
        if (v2 != NULL) {
            t->ids = v2;
            for (size_t i = 0; i < s->nmach; i++)
                t->ids[n++] = i;
            t->n = n;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (v <= old) {
        cs_snap_close(snap);
        t->n = 0;
        t->lost = false;
        return;
    }
    if (t->n > 1)
        qsort(t->ids, t->n, sizeof *t->ids, cmp_id);
    size_t n = 0;
    for (size_t i = 0; i < t->n; i++)
        if (n == 0 || t->ids[n - 1] != t->ids[i])
            t->ids[n++] = t->ids[i];
    /* The states are read before taking `mu`, from the store's copy in
     * memory; STATE_UNREAD sends the machine's heartbeats to the store. */
    uint8_t *st = malloc(n ? n : 1);
    cs_arena a;
    cs_arena_init(&a);
    for (size_t i = 0; st != NULL && i < n; i++) {
        cs_machine m;
        cs_arena_reset(&a);
        st[i] = cs_snap_machine_fit(snap, t->ids[i], &a, &m, &err) == CS_OK ? m.state
                                                                            : STATE_UNREAD;
    }
    cs_arena_free(&a);
    cs_snap_close(snap);
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < n; i++) {
        mslot *sl = srv_slot_of(s, t->ids[i]);
        if (sl != NULL) {
            sl->changed = v;
            sl->known = st != NULL && st[i] != STATE_UNREAD;
            sl->state = sl->known ? st[i] : 0;
            srv_wake_polls(sl);
        }
    }
    s->version = v;
    pthread_mutex_unlock(&s->mu);
    free(st);
    t->n = 0;
    t->lost = false;
    if (s->have_pub) {
        msgpack_sbuffer b;
        msgpack_sbuffer_init(&b);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
        cs_version_reply ann = {v};
        if (cs_msg_begin(&pk, CS_MSG_VERSION, 0) == CS_OK &&
            cs_version_reply_encode(&pk, &ann) == CS_OK)
            nng_send(s->pub, b.data, b.size, NNG_FLAG_NONBLOCK);
        msgpack_sbuffer_destroy(&b);
    }
}

/* One queued write, alone or as a command of the writer's group. Its
 * reply goes to `b` (not sent: the caller sends it once the write is
 * durable). */
static void apply_write(cs_server *s, wjob *j, msgpack_sbuffer *b)
{
    if (j->w != NULL) {
        srv_build_reply(j->w, srv_route_of(j->w->msg.type)->fn, b);
        return;
    }
    cs_error err;
    cs_command c;
    cs_result r;
    cs_result_init(&r);
    if (j->gc != NULL) {
        /* Jobs the monitor found ended long enough ago. A failure (out of
         * memory, a full map) leaves them for its next pass. */
        if (propose(s, &c, cs_cmd_job_gc(&c, j->gc, j->ngc, &err), &r, &err) != CS_OK)
            fprintf(stderr, "cellstated: collecting %zu ended jobs: %s\n", j->ngc, err.msg);
    } else if (j->drain) {
        /* The monitor's verdict: the drain deadline came. */
        propose(s, &c, cs_cmd_drain_deadline(&c, j->down_machine, &err), &r, &err);
        pthread_mutex_lock(&s->mu);
        mslot *sl = srv_slot_of(s, j->down_machine);
        if (sl != NULL)
            sl->drain_queued = false;
        pthread_mutex_unlock(&s->mu);
    } else {
        /* The monitor's verdict: silent past the timeout. */
        propose(s, &c, cs_cmd_machine_state(&c, j->down_machine, CS_MACHINE_DOWN, &err), &r,
                &err);
    }
    cs_result_free(&r);
}

static void finish_write(cs_server *s, wjob *j, msgpack_sbuffer *b)
{
    if (j->w != NULL) {
        srv_send_bytes(j->w, b->data, b->size);
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
    bool applied = true;
    if (grouped) {
        bool abandoned;
        int rc = cs_store_group_end(s->store, &abandoned, NULL, &err);
        if (abandoned) {
            /* Nothing of the group was applied: neither were its results. */
            s->touched->n = 0;
            s->touched->lost = false;
            for (size_t i = 0; i < n; i++) {
                replies[i].size = 0;
                apply_write(s, jobs[i], &replies[i]);
            }
        } else if (rc != CS_OK) {
            applied = false;
            for (size_t i = 0; i < n; i++) {
                if (jobs[i]->w == NULL)
                    continue;
                replies[i].size = 0;
                cs_msg_error(&replies[i], jobs[i]->w->msg.req, rc, err.msg);
            }
        }
    }
    after_write(s, applied);
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

void *srv_writer_main(void *arg)
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
    wtouched touched = {0};
    s->touched = &touched;
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
    s->touched = NULL;
    free(touched.ids);
    if (cap > 1) {
        free(jobs);
        free(replies);
    }
    return NULL;
}

void srv_enqueue(cs_server *s, wjob *j)
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

