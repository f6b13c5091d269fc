/* writer.c — the one writer: every write (registrations, submissions,
 * commits, reports, the monitor's verdicts) in arrival order, in groups.
 *
 * A write is prepared, applied, then answered. Its `prep` decodes the
 * request, resolves names to ids and builds its commands of the state
 * machine (txn/command.h), with the instants they need stamped on the wall
 * clock here (the proposer's clock: applying reads none); its `reply`
 * packs the answer from their results. Between the two, a group of writes
 * is applied one of two ways:
 *
 *   one replica     each command is applied here, in one LMDB transaction
 *                   and one fsync for the group (store.h's group commit);
 *   a replicated    the group's commands are proposed to the replica
 *   cell            (server/replica.h), appended to the Raft log in one
 *                   write, and the writer waits for their results: every
 *                   replica applies them as they commit (srv_applied).
 *
 * Either way a reply goes out only once its write is durable (on disk here,
 * or on a majority of the replicas), and after the polls of the machines it
 * changed have been woken. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cellstate/vec.h"
#include "proto/agentmsg.h"
#include "proto/commitmsg.h"
#include "proto/jobmsg.h"
#include "proto/offermsg.h"
#include "server/internal.h"
#include "server/replica.h"
#include "txn/command.h"

/* ---- what the group's commands touched --------------------------------------- */

/* The machines commands changed (cs_server.touched for the writer's group
 * on one replica; the replica thread's own in a replicated cell). */
typedef struct wtouched {
    cs_id *ids;
    size_t n, cap;
    bool lost; /* out of memory noting some: after_write wakes every machine */
} wtouched;

static void note_touched(wtouched *t, const cs_result *r)
{
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

/* ---- prepared writes ---------------------------------------------------------- */

static void prep_init(wprep *p)
{
    memset(p, 0, sizeof *p);
    cs_arena_init(&p->a);
    cs_txn_init(&p->txn, 0, 0, 0, 0, 0);
}

static void cmd_init(wcmd *c)
{
    memset(c, 0, sizeof *c);
    cs_result_init(&c->res);
}

/* Release the prep's commands and their results. */
static void cmds_free(wprep *p)
{
    for (uint32_t i = 0; i < p->n; i++) {
        cs_command_free(&p->cmds[i].c);
        cs_result_free(&p->cmds[i].res);
    }
    if (p->cmds != &p->one)
        free(p->cmds);
    p->cmds = NULL;
    p->n = 0;
}

static void prep_free(wprep *p)
{
    cmds_free(p);
    cs_txn_free(&p->txn);
    cs_arena_free(&p->a);
    memset(p, 0, sizeof *p);
}

/* The write's one command, to build. */
static wcmd *one_cmd(wprep *p)
{
    cmd_init(&p->one);
    p->cmds = &p->one;
    p->n = 1;
    return &p->one;
}

/* The outcome of command `c` as the client hears it: an error that kept it
 * from being applied, or its refusal; CS_OK when taken. */
static int cmd_outcome(const wcmd *c, cs_error *err)
{
    if (c->rc != CS_OK) {
        if (err != NULL)
            *err = c->err;
        return c->rc;
    }
    return cs_result_error(&c->res, err);
}

/* The current cell version: the reply of a write that changed nothing. */
static uint64_t current_version(cs_server *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t v = s->version;
    pthread_mutex_unlock(&s->mu);
    return v;
}

/* The id of the job (`job`) or machine `ref` names (only read; a name in
 * `a`), and its name into p->name (in the prep's arena) for the audit log.
 * Through a write transaction, not a snapshot: on one replica, in a
 * group, a record written by an earlier command of the same group is not
 * in any snapshot yet. The transaction writes nothing and is aborted. */
static int resolve(cs_server *s, const cs_ref *ref, bool job, wprep *p, cs_id *id, cs_error *err)
{
    cs_wtxn *wt;
    CS_TRY(cs_wtxn_begin(s->store, &wt, err));
    cs_arena a;
    cs_arena_init(&a);
    cs_job j;
    cs_machine m;
    int rc = job ? cs_ref_job(cs_wtxn_snap(wt), ref, &a, &j, err)
                 : cs_ref_machine(cs_wtxn_snap(wt), ref, &a, &m, err);
    if (rc == CS_OK) {
        const char *name = job ? j.name : m.name;
        *id = job ? j.id : m.id;
        /* Without memory for it the audit names the record by id alone. */
        p->name = cs_arena_strndup(&p->a, name, strlen(name));
    }
    cs_arena_free(&a);
    cs_wtxn_abort(wt);
    return rc;
}

/* The role checks that read records (authz.c), through a write
 * transaction as resolve() reads, and only for the principals they apply
 * to: a cell without roles, an operator or a replica reads nothing more. */
static int auth_job(cs_server *s, wjob *j, cs_id job, cs_error *err)
{
    if (!srv_auth_sched(j->w) || j->w->principal.kinds == CS_KINDS_ALL)
        return CS_OK;
    cs_wtxn *wt;
    CS_TRY(cs_wtxn_begin(s->store, &wt, err));
    int rc = srv_auth_job(j->w, cs_wtxn_snap(wt), job, err);
    cs_wtxn_abort(wt);
    return rc;
}

static int auth_txn(cs_server *s, wjob *j, cs_error *err)
{
    if (!srv_auth_sched(j->w))
        return CS_OK;
    cs_wtxn *wt;
    CS_TRY(cs_wtxn_begin(s->store, &wt, err));
    int rc = srv_auth_txn(j->w, cs_wtxn_snap(wt), &j->p.txn, err);
    cs_wtxn_abort(wt);
    return rc;
}

/* ---- each write: prep and reply ------------------------------------------------ */

static const msgpack_object *req_body(wjob *j) { return &j->w->msg.body; }

/* {version} (cs_version_reply): most writes. */
static int reply_version(cs_server *s, wjob *j, msgpack_packer *pk, cs_error *err)
{
    (void)s;
    CS_TRY(cmd_outcome(&j->p.cmds[0], err));
    cs_version_reply reply = {j->p.cmds[0].res.version};
    return cs_version_reply_encode(pk, &reply) == CS_OK
               ? CS_OK
               : cs_errorf(err, CS_ENOMEM, "reply: out of memory");
}

/* {id, version} (cs_id_reply): a submission. */
static int reply_id(cs_server *s, wjob *j, msgpack_packer *pk, cs_error *err)
{
    (void)s;
    const wcmd *c = &j->p.cmds[0];
    CS_TRY(cmd_outcome(c, err));
    cs_id_reply reply = {c->res.id, c->res.version};
    return cs_id_reply_encode(pk, &reply) == CS_OK
               ? CS_OK
               : cs_errorf(err, CS_ENOMEM, "reply: out of memory");
}

static int prep_register(cs_server *s, wjob *j, cs_error *err)
{
    (void)s;
    cs_machine spec;
    CS_TRY(cs_register_req_decode(req_body(j), &spec, &j->p.a, err));
    CS_TRY(srv_auth_machine(j->w, spec.name, err));
    wcmd *c = one_cmd(&j->p);
    c->rc = cs_cmd_machine_put(&c->c, &spec, &c->err);
    return CS_OK;
}

/* A registration is a heartbeat too: the machine's clock restarts. */
static int reply_register(cs_server *s, wjob *j, msgpack_packer *pk, cs_error *err)
{
    CS_TRY(reply_id(s, j, pk, err));
    pthread_mutex_lock(&s->mu);
    mslot *sl = srv_slot_of(s, j->p.cmds[0].res.id);
    if (sl != NULL) {
        sl->seen_ms = now_ms();
        sl->down_queued = false;
    }
    pthread_mutex_unlock(&s->mu);
    return CS_OK;
}

/* A job's tasks (its count, or the surge slots it asks for) within
 * --max-job-tasks. Checked here, by the proposer, before the command is
 * built: the bound is this server's option, and a replica replaying the
 * log must apply what the leader accepted whatever its own flags say, so
 * it cannot be a rule of the state machine. */
static int check_job_tasks(const cs_server *s, const char *what, uint64_t n, cs_error *err)
{
    uint32_t max = s->o.max_job_tasks;
    if (max == 0 || n <= max)
        return CS_OK;
    return cs_errorf(err, CS_EINVAL, "%s %llu is above --max-job-tasks %u (the tasks one job may have)",
                     what, (unsigned long long)n, max);
}

static int prep_submit(cs_server *s, wjob *j, cs_error *err)
{
    cs_job spec;
    CS_TRY(cs_job_submit_req_decode(req_body(j), &spec, &j->p.a, err));
    CS_TRY(check_job_tasks(s, "count", spec.count, err));
    /* Stamped here, by the proposer, so that the logged command carries it
     * and a replay of the log reproduces it. */
    spec.submitted = wall_ms();
    wcmd *c = one_cmd(&j->p);
    c->rc = cs_cmd_job_submit(&c->c, &spec, &c->err);
    return CS_OK;
}

/* job.kill and job.end, {job}: the command built by `build`, stamped now
 * (job.end: a batch scheduler says none of the job's tasks will run again;
 * the cell makes it finished or failed). */
static int job_ref_op(cs_server *s, wjob *j, int (*build)(cs_command *, cs_id, uint64_t, cs_error *),
                      cs_error *err)
{
    cs_job_ref_req req;
    cs_id id = 0;
    CS_TRY(cs_job_ref_req_decode(req_body(j), &req, &j->p.a, err));
    CS_TRY(resolve(s, &req.job, true, &j->p, &id, err));
    CS_TRY(auth_job(s, j, id, err));
    wcmd *c = one_cmd(&j->p);
    c->rc = build(&c->c, id, wall_ms(), &c->err);
    return CS_OK;
}

static int prep_kill(cs_server *s, wjob *j, cs_error *err)
{
    return job_ref_op(s, j, cs_cmd_job_kill, err);
}

static int prep_job_end(cs_server *s, wjob *j, cs_error *err)
{
    return job_ref_op(s, j, cs_cmd_job_end, err);
}

/* job.scale and job.surge: {job, <key>: n} decoded by `decode`, the
 * command built by `build`. */
static int job_count_op(cs_server *s, wjob *j, const char *key,
                        int (*decode)(const msgpack_object *, cs_job_count_req *, cs_arena *,
                                      cs_error *),
                        int (*build)(cs_command *, cs_id, uint32_t, cs_error *), cs_error *err)
{
    cs_job_count_req req;
    cs_id id = 0;
    CS_TRY(decode(req_body(j), &req, &j->p.a, err));
    CS_TRY(check_job_tasks(s, key, req.n, err));
    CS_TRY(resolve(s, &req.job, true, &j->p, &id, err));
    CS_TRY(auth_job(s, j, id, err));
    wcmd *c = one_cmd(&j->p);
    c->rc = build(&c->c, id, req.n, &c->err);
    return CS_OK;
}

static int prep_scale(cs_server *s, wjob *j, cs_error *err)
{
    return job_count_op(s, j, "count", cs_job_scale_req_decode, cs_cmd_job_scale, err);
}

static int prep_surge(cs_server *s, wjob *j, cs_error *err)
{
    return job_count_op(s, j, "surge", cs_job_surge_req_decode, cs_cmd_job_surge, err);
}

/* machine.admin: {machine, admin, deadline_ms?}. The deadline comes as a
 * duration and is stamped here, by the proposer, on the wall clock, so
 * that the logged command carries the instant and a replay reproduces it. */
static int prep_machine_admin(cs_server *s, wjob *j, cs_error *err)
{
    cs_machine_admin_req req;
    wprep *p = &j->p;
    CS_TRY(cs_machine_admin_req_decode(req_body(j), &req, &p->a, err));
    CS_TRY(resolve(s, &req.machine, false, p, &p->id, err));
    p->admin = req.admin;
    p->deadline = req.has_deadline ? wall_ms() + req.deadline_ms : 0;
    wcmd *c = one_cmd(p);
    c->rc = cs_cmd_machine_admin(&c->c, p->id, p->admin, p->deadline, &c->err);
    return CS_OK;
}

static int reply_machine_admin(cs_server *s, wjob *j, msgpack_packer *pk, cs_error *err)
{
    (void)s;
    const wprep *p = &j->p;
    CS_TRY(cmd_outcome(&p->cmds[0], err));
    cs_machine_admin_reply reply = {p->id, p->admin, p->deadline, p->cmds[0].res.version};
    return cs_machine_admin_reply_encode(pk, &reply) == CS_OK
               ? CS_OK
               : cs_errorf(err, CS_ENOMEM, "reply: out of memory");
}

/* job.update: {job, spec}. The codec checks the whole request before the
 * job is looked up, so a request naming an unknown job with a bad spec is
 * refused for the spec (docs/protocol.md §5.6). */
static int prep_update(cs_server *s, wjob *j, cs_error *err)
{
    cs_job_update_req req;
    cs_id id = 0;
    CS_TRY(cs_job_update_req_decode(req_body(j), &req, &j->p.a, err));
    CS_TRY(check_job_tasks(s, "count", req.spec.count, err));
    CS_TRY(resolve(s, &req.job, true, &j->p, &id, err));
    wcmd *c = one_cmd(&j->p);
    c->rc = cs_cmd_job_update(&c->c, id, &req.spec, &c->err);
    return CS_OK;
}

static int prep_note(cs_server *s, wjob *j, cs_error *err)
{
    cs_job_note_req req;
    cs_id id = 0;
    CS_TRY(cs_job_note_req_decode(req_body(j), &req, &j->p.a, err));
    CS_TRY(resolve(s, &req.job, true, &j->p, &id, err));
    CS_TRY(auth_job(s, j, id, err));
    wcmd *c = one_cmd(&j->p);
    c->rc = cs_cmd_job_note(&c->c, id, req.note, &c->err);
    return CS_OK;
}

/* commit: the transaction decoded into the prep (its command borrows it);
 * nothing here allocates per claim beyond the transaction itself. */
static int prep_commit(cs_server *s, wjob *j, cs_error *err)
{
    if (s->offers != NULL)
        return cs_errorf(err, CS_ESTATE,
                         "commit outside an offer: this cell runs --concurrency offers; hold "
                         "the offer (offer.acquire) and send offer.commit with its lease (a scheduler: "
                         "--offers)");
    CS_TRY(cs_commit_req_decode(req_body(j), &j->p.txn, NULL, err));
    CS_TRY(auth_txn(s, j, err));
    wcmd *c = one_cmd(&j->p);
    c->rc = cs_cmd_txn(&c->c, &j->p.txn, &c->err);
    return CS_OK;
}

/* The reply borrows the result's outcome arrays. */
static int reply_commit(cs_server *s, wjob *j, msgpack_packer *pk, cs_error *err)
{
    const wcmd *c = &j->p.cmds[0];
    CS_TRY(cmd_outcome(c, err));
    const cs_txn_result *r = &c->res.txn;
    pthread_mutex_lock(&s->mu);
    if (!r->replayed) {
        s->c.commits++;
        s->c.commits_conflicted += r->conflicts > 0;
        s->c.claims += r->nclaims;
        s->c.claims_committed += r->committed;
        srv_metrics_commit(s, j->p.txn.sched, r);
    }
    pthread_mutex_unlock(&s->mu);
    cs_commit_reply reply = cs_commit_reply_of(r);
    reply.index = c->index; /* a replicated cell: read your write with min_index */
    return cs_commit_reply_encode(pk, &reply) == CS_OK
               ? CS_OK
               : cs_errorf(err, CS_ENOMEM, "reply: out of memory");
}

/* offer.commit: checked against the offer on the worker's thread
 * (srv_offer_commit_check); here the lease once more, since it may have
 * expired in the queue. Nothing is applied when it is refused. Its reply
 * is the commit's. */
static int prep_offer_commit(cs_server *s, wjob *j, cs_error *err)
{
    CS_TRY(cs_offer_commit_req_decode(req_body(j), &j->p.lease, &j->p.txn, err));
    CS_TRY(auth_txn(s, j, err));
    CS_TRY(srv_offer_admit(s, j->p.lease, err));
    wcmd *c = one_cmd(&j->p);
    c->rc = cs_cmd_txn(&c->c, &j->p.txn, &c->err);
    return CS_OK;
}

/* An agent's reports: each of a task on its own machine. A report of
 * another machine's task is refused on its own, as the codec refuses a
 * malformed one (its code and message in the request's verdicts), so
 * that the agent's other reports are still taken. */
static int auth_reports(cs_server *s, wjob *j, cs_error *err)
{
    if (!srv_auth_agent(j->w))
        return CS_OK;
    cs_task_status_req *req = &j->p.reports;
    cs_ref me = cs_ref_name(j->w->principal.name);
    cs_id mid = 0;
    int rc = resolve(s, &me, false, &j->p, &mid, err);
    j->p.name = NULL; /* the audit names the reports, not the machine */
    if (rc == CS_ENOTFOUND)
        return srv_auth_denied(j->w, err, "its machine %s is not registered",
                               j->w->principal.name);
    CS_TRY(rc);
    cs_wtxn *wt;
    CS_TRY(cs_wtxn_begin(s->store, &wt, err));
    for (uint32_t i = 0; i < req->n; i++) {
        cs_error e = {0};
        if ((req->codes != NULL && req->codes[i] != CS_OK) ||
            srv_auth_report(j->w, cs_wtxn_snap(wt), mid, &req->reports[i], &e) == CS_OK)
            continue;
        if (!req->batch) {
            *err = e;
            cs_wtxn_abort(wt);
            return CS_EPERM;
        }
        req->codes[i] = CS_EPERM;
        if ((req->errors[i] = cs_arena_strndup(&j->p.a, e.msg, strlen(e.msg))) == NULL) {
            cs_wtxn_abort(wt);
            return cs_errorf(err, CS_ENOMEM, "task.status: out of memory");
        }
    }
    cs_wtxn_abort(wt);
    return CS_OK;
}

/* task.status: one command per report the codec took, each its own
 * version and log entry, in order; one refused report does not stop the
 * others. A group makes the batch one LMDB transaction (or one append to
 * the Raft log). */
static int prep_task_status(cs_server *s, wjob *j, cs_error *err)
{
    wprep *p = &j->p;
    cs_task_status_req *req = &p->reports;
    CS_TRY(cs_task_status_req_decode(req_body(j), req, &p->a, err));
    CS_TRY(auth_reports(s, j, err));
    if (!req->batch) {
        wcmd *c = one_cmd(p);
        c->rc = cs_cmd_task_report(&c->c, &req->reports[0], &c->err);
        return CS_OK;
    }
    if (req->n == 0)
        return CS_OK;
    if ((p->cmds = calloc(req->n, sizeof *p->cmds)) == NULL)
        return cs_errorf(err, CS_ENOMEM, "task.status: out of memory");
    p->n = req->n;
    for (uint32_t i = 0; i < req->n; i++) {
        wcmd *c = &p->cmds[i];
        cmd_init(c);
        if ((c->rc = req->codes[i]) != CS_OK)
            snprintf(c->err.msg, sizeof c->err.msg, "%s", req->errors[i]);
        else
            c->rc = cs_cmd_task_report(&c->c, &req->reports[i], &c->err);
    }
    return CS_OK;
}

/* The batch form's reply: {"version", "results": [{"code", "message"}]},
 * code 0 for a report taken; the messages live in the prep's arena. */
static int reply_task_status(cs_server *s, wjob *j, msgpack_packer *pk, cs_error *err)
{
    wprep *p = &j->p;
    const cs_task_status_req *req = &p->reports;
    if (!req->batch)
        return reply_version(s, j, pk, err);
    cs_task_status_reply reply = {0, cs_arena_alloc(&p->a, (req->n + 1) * sizeof *reply.results),
                                  req->n};
    if (reply.results == NULL)
        return cs_errorf(err, CS_ENOMEM, "task.status: out of memory");
    for (uint32_t i = 0; i < req->n; i++) {
        const wcmd *c = &p->cmds[i];
        cs_error e = {0};
        cs_report_result *o = &reply.results[i];
        *o = (cs_report_result){cmd_outcome(c, &e), ""};
        if (o->code == CS_OK && c->res.version > reply.version)
            reply.version = c->res.version;
        else if (o->code != CS_OK &&
                 (o->message = cs_arena_strndup(&p->a, e.msg, strlen(e.msg))) == NULL)
            return cs_errorf(err, CS_ENOMEM, "task.status: out of memory");
    }
    /* Nothing taken: the current version, as a single refused or unchanged
     * report would give. */
    if (reply.version == 0)
        reply.version = current_version(s);
    return cs_task_status_reply_encode(pk, &reply) == CS_OK
               ? CS_OK
               : cs_errorf(err, CS_ENOMEM, "reply: out of memory");
}

/* How each write is prepared and answered. */
typedef struct wtype {
    int (*prep)(cs_server *s, wjob *j, cs_error *err);
    int (*reply)(cs_server *s, wjob *j, msgpack_packer *pk, cs_error *err);
} wtype;

static const wtype writes[CS_MSG_COUNT] = {
    [CS_MSG_MACHINE_REGISTER] = {prep_register, reply_register},
    [CS_MSG_JOB_SUBMIT] = {prep_submit, reply_id},
    [CS_MSG_JOB_KILL] = {prep_kill, reply_version},
    [CS_MSG_JOB_SCALE] = {prep_scale, reply_version},
    [CS_MSG_JOB_UPDATE] = {prep_update, reply_version},
    [CS_MSG_COMMIT] = {prep_commit, reply_commit},
    [CS_MSG_OFFER_COMMIT] = {prep_offer_commit, reply_commit},
    [CS_MSG_TASK_STATUS] = {prep_task_status, reply_task_status},
    [CS_MSG_JOB_NOTE] = {prep_note, reply_version},
    [CS_MSG_JOB_SURGE] = {prep_surge, reply_version},
    [CS_MSG_JOB_END] = {prep_job_end, reply_version},
    [CS_MSG_MACHINE_ADMIN] = {prep_machine_admin, reply_machine_admin},
};

bool srv_is_write(uint32_t type) { return type < CS_MSG_COUNT && writes[type].prep != NULL; }

/* The monitor's verdicts (j->w == NULL): a collection of ended jobs, a
 * drain deadline that came, a machine silent past the timeout. CS_OK: a
 * builder's failure is the command's own code, as for a request. */
static int prep_verdict(cs_server *s, wjob *j)
{
    if (j->gc == NULL) {
        /* The machine's name, for the audit; none when it cannot be read. */
        cs_ref ref = cs_ref_id(j->down_machine);
        cs_id id;
        resolve(s, &ref, false, &j->p, &id, NULL);
    }
    wcmd *c = one_cmd(&j->p);
    if (j->gc != NULL)
        c->rc = cs_cmd_job_gc(&c->c, j->gc, j->ngc, &c->err);
    else if (j->drain)
        c->rc = cs_cmd_drain_deadline(&c->c, j->down_machine, &c->err);
    else
        c->rc = cs_cmd_machine_state(&c->c, j->down_machine, CS_MACHINE_DOWN, &c->err);
    return CS_OK;
}

/* Prepare write `j`, once: its prep's own error (a request that does not
 * decode, a name that resolves to nothing) becomes the reply, with no
 * command. */
static void prepare(cs_server *s, wjob *j)
{
    wprep *p = &j->p;
    if (p->ready)
        return;
    prep_init(p);
    p->ready = true;
    int rc = j->w == NULL ? prep_verdict(s, j) : writes[j->w->msg.type].prep(s, j, &p->err);
    for (uint32_t i = 0; rc == CS_OK && i < p->n; i++)
        p->cmds[i].built = p->cmds[i].rc == CS_OK;
    if (rc != CS_OK) {
        /* No command is applied: the reply is the error. */
        cmds_free(p);
        p->rc = rc;
        if (p->err.msg[0] == '\0')
            snprintf(p->err.msg, sizeof p->err.msg, "%s", cs_strerror(rc));
    }
}

static int cmp_id(const void *a, const void *b)
{
    cs_id x = *(const cs_id *)a, y = *(const cs_id *)b;
    return x < y ? -1 : x > y;
}

/* After a group (a replicated cell: after each entry applied): note which
 * machines its commands changed (their results said, `t`) and their state (for heartbeats), wake the polls
 * waiting on them, and announce the version. Before the group's replies go
 * out: an agent that registered again after being marked down must not be
 * told "down" by its next heartbeat. `applied`: the group committed (a
 * failed one changed nothing). */
static void after_write(cs_server *s, wtouched *t, bool applied)
{
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
    srv_announce(s, v);
}

void srv_announce(cs_server *s, uint64_t v)
{
    if (!s->have_pub)
        return;
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    cs_version_reply ann = {v};
    if (cs_msg_begin(&pk, CS_MSG_VERSION, 0) == CS_OK && cs_version_reply_encode(&pk, &ann) == CS_OK)
        nng_send(s->pub, b.data, b.size, NNG_FLAG_NONBLOCK);
    msgpack_sbuffer_destroy(&b);
}


/* ---- the audit log ---------------------------------------------------------------- */

/* Whether command `c` was accepted and changed the cell: applied, not
 * refused, and logged (a repeat that changed nothing — an identical note,
 * the same admin word, a commit retried after its first result — is not
 * logged, and not audited either: the trail records changes). */
static bool accepted(const wcmd *c)
{
    return c->built && c->rc == CS_OK && c->res.status == CS_OK && c->res.logged;
}

/* "job 12 web", "machine 3 m1", or without its name when it is unknown;
 * the length written (cut at `size`). */
static size_t record_text(char *t, size_t size, const char *what, cs_id id, const char *name)
{
    int n = name != NULL && name[0] != '\0'
                ? snprintf(t, size, "%s %llu %s", what, (unsigned long long)id, name)
                : snprintf(t, size, "%s %llu", what, (unsigned long long)id);
    return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

/* "1 claim", "3 claims". */
static const char *plural(uint32_t n) { return n == 1 ? "" : "s"; }

/* A task.status report: "task 55 attempt 2 finished". */
static void report_text(char *t, size_t size, const cs_task_report *r)
{
    snprintf(t, size, "task %llu attempt %u %s", (unsigned long long)r->task, r->attempt,
             cs_task_state_name(r->state));
}

/* The words of an admin change as the operator typed them. */
static const char *admin_verb(uint8_t admin)
{
    switch (admin) {
    case CS_ADMIN_ACTIVE:
        return "uncordon";
    case CS_ADMIN_CORDONED:
        return "cordon";
    case CS_ADMIN_DRAINING:
        return "drain";
    default:
        return cs_machine_admin_name(admin);
    }
}

/* What write `j` changed, as its audit entry says it: its action, the
 * target text into t[0..size) and the cell version after it. false when
 * nothing of it was accepted. */
static bool audit_text(const wjob *j, const char **action, char *t, size_t size,
                       uint64_t *version)
{
    const wprep *p = &j->p;
    if (p->n == 0)
        return false;
    const wcmd *c = &p->cmds[0];
    if (j->w == NULL) {
        if (!accepted(c))
            return false;
        *version = c->res.version;
        if (j->gc != NULL) {
            *action = "job.gc";
            snprintf(t, size, "%zu ended job%s", j->ngc, j->ngc == 1 ? "" : "s");
        } else {
            *action = j->drain ? "machine.drain_deadline" : "machine.down";
            record_text(t, size, "machine", j->down_machine, p->name);
        }
        return true;
    }
    uint32_t type = j->w->msg.type;
    *action = cs_msg_name(type);
    if (type == CS_MSG_TASK_STATUS) {
        /* A batch is one entry: the reports taken, or the one taken. */
        uint32_t n = 0;
        const wcmd *one = NULL;
        *version = 0;
        for (uint32_t i = 0; i < p->n; i++)
            if (accepted(&p->cmds[i])) {
                n++;
                one = &p->cmds[i];
                if (one->res.version > *version)
                    *version = one->res.version;
            }
        if (n == 1)
            report_text(t, size, &one->c.args.report);
        else if (n > 1)
            snprintf(t, size, "%u reports", n);
        return n > 0;
    }
    if (!accepted(c))
        return false;
    *version = c->res.version;
    const cs_cmd_args *a = &c->c.args;
    switch (type) {
    case CS_MSG_MACHINE_REGISTER:
        record_text(t, size, "machine", c->res.id, c->c.machine.name);
        break;
    case CS_MSG_JOB_SUBMIT:
        record_text(t, size, "job", c->res.id, c->c.job.name);
        break;
    case CS_MSG_JOB_SCALE:
    case CS_MSG_JOB_SURGE: {
        size_t k = record_text(t, size, "job", a->id, p->name);
        snprintf(t + k, size - k, " %s %llu", type == CS_MSG_JOB_SCALE ? "count" : "surge",
                 (unsigned long long)a->n);
        break;
    }
    case CS_MSG_MACHINE_ADMIN: {
        size_t k = record_text(t, size, "machine", a->id, p->name);
        snprintf(t + k, size - k, " %s", admin_verb(p->admin));
        break;
    }
    case CS_MSG_COMMIT:
    case CS_MSG_OFFER_COMMIT: {
        const cs_txn *x = &p->txn;
        int k = snprintf(t, size, "%u claim%s (%u committed), %u release%s, %u preempt%s",
                         x->nclaims, plural(x->nclaims), c->res.txn.committed, x->nreleases,
                         plural(x->nreleases), x->npreempts, plural(x->npreempts));
        if (type == CS_MSG_OFFER_COMMIT && k > 0 && (size_t)k < size)
            snprintf(t + k, size - (size_t)k, " under lease %llu", (unsigned long long)p->lease);
        break;
    }
    default: /* job.kill, job.end, job.update, job.note */
        record_text(t, size, "job", a->id, p->name);
        break;
    }
    return true;
}

/* Append the accepted writes of jobs[0..n) to the audit log, in one
 * write(2) (audit.h), before they are answered: a client that reads the
 * audit after its reply finds its write there. */
static void audit_group(cs_server *s, wjob **jobs, size_t n)
{
    cs_audit_buf b;
    cs_audit_buf_init(&b);
    uint64_t now = wall_ms();
    for (size_t i = 0; i < n; i++) {
        const char *action = NULL;
        /* Room for any target whole: cs_audit_add cuts it at its bound, at
         * a character's boundary (a name may be 255 bytes of UTF-8). */
        char t[2 * CS_AUDIT_TARGET_MAX];
        uint64_t v = 0;
        if (audit_text(jobs[i], &action, t, sizeof t, &v))
            cs_audit_add(&b, now, jobs[i]->w != NULL ? jobs[i]->w->who : "cellstated", action,
                         t, v);
    }
    cs_audit_flush(s->audit, &b);
    cs_audit_buf_free(&b);
}

/* ---- applying a group ---------------------------------------------------------- */

/* One replica: apply `j`'s commands here, in the writer's group if one is
 * open, noting what they touched. */
static void apply_local(cs_server *s, wjob *j)
{
    wprep *p = &j->p;
    for (uint32_t i = 0; i < p->n; i++) {
        wcmd *c = &p->cmds[i];
        if (!c->built)
            continue;
        c->rc = cs_command_apply_built(s->store, &c->c, &c->res, &c->err);
        if (c->rc == CS_OK)
            note_touched(s->touched, &c->res);
    }
}

/* ---- a replicated cell: groups in flight ---------------------------------------- */

/* A group of writes proposed as one entry (every replica applies its
 * commands in one LMDB transaction), in flight until its results come back
 * on the replica's thread; the writer then answers it. Up to
 * WRITER_INFLIGHT groups are in flight at once: while one is being
 * replicated the writer prepares and proposes the next, which the replica
 * appends as soon as the one before commits (the pipeline). Safe to
 * prepare ahead: no write of a group in flight has been answered, so no
 * request in the next group can depend on one of them. */
typedef struct wgroup {
    struct wgroup *next;
    cs_server *s;
    size_t n, ncmds;
    wjob **jobs;   /* n, in arrival order (inside the allocation) */
    wcmd **cmds;   /* their built commands, in order (inside the allocation) */
    const cs_command **props; /* the same commands, for cs_replica_propose */
    int64_t proposed_ns;      /* when it was proposed (the Raft round's metric) */
} wgroup;

#define WRITER_INFLIGHT 4

/* A proposal's result, on the replica's thread: take each command's result
 * (swapped, not copied) and hand the group back to the writer. */
static void group_proposed(void *arg, int rc, uint64_t index, cs_result *res, size_t n,
                           const char *msg)
{
    wgroup *g = arg;
    cs_server *s = g->s;
    if (rc == CS_OK) {
        int64_t d = now_ns() - g->proposed_ns;
        cs_prom_hist_observe(&s->metrics.raft_ns, d > 0 ? (uint64_t)d : 0);
    }
    if (rc == CS_OK && n != g->ncmds) {
        rc = CS_EUNAVAIL;
        msg = "the entry's results do not match its commands";
    }
    for (size_t k = 0; k < g->ncmds; k++) {
        wcmd *c = g->cmds[k];
        if (rc == CS_OK) {
            cs_result t = c->res;
            c->res = res[k];
            res[k] = t;
            c->rc = CS_OK;
            c->index = index;
        } else {
            c->rc = rc;
            c->err.code = rc;
            snprintf(c->err.msg, sizeof c->err.msg, "%s",
                     msg != NULL && msg[0] ? msg : cs_strerror(rc));
        }
    }
    pthread_mutex_lock(&s->mu);
    if (s->wdone_tail != NULL)
        s->wdone_tail->next = g;
    else
        s->wdone = g;
    s->wdone_tail = g;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void finish(cs_server *s, wjob *j);

/* Answer a group that came back (or never left) and free it. */
static void group_finish(cs_server *s, wgroup *g, bool inflight)
{
    audit_group(s, g->jobs, g->n);
    for (size_t i = 0; i < g->n; i++)
        finish(s, g->jobs[i]);
    if (inflight) {
        pthread_mutex_lock(&s->mu);
        s->winflight--;
        pthread_mutex_unlock(&s->mu);
    }
    free(g);
}

/* Answer writes that cannot be proposed with `rc` (their commands', or
 * the prep's when there are none). */
static void fail_jobs(cs_server *s, wjob **jobs, size_t n, int rc, const char *msg)
{
    for (size_t i = 0; i < n; i++) {
        wprep *p = &jobs[i]->p;
        if (!p->ready) {
            prep_init(p);
            p->ready = true;
        }
        if (p->n == 0 && p->rc == CS_OK)
            p->rc = cs_errorf(&p->err, rc, "%s", msg);
        for (uint32_t k = 0; k < p->n; k++)
            if (p->cmds[k].built) {
                p->cmds[k].rc = rc;
                cs_errorf(&p->cmds[k].err, rc, "%s", msg);
            }
        finish(s, jobs[i]);
    }
}

/* A replicated cell: prepare the group and propose its commands as one
 * entry (under the store's read lock: a snapshot being installed, or the
 * replica stopping, waits). Does not wait: the writer answers the group
 * when it comes back (group_proposed), or here when nothing was proposed. */
static void propose_group(cs_server *s, wjob **jobs, size_t n)
{
    pthread_rwlock_rdlock(&s->store_lk);
    if (s->replica == NULL) {
        /* Stopping: the replica is gone; the clients retry elsewhere. */
        pthread_rwlock_unlock(&s->store_lk);
        fail_jobs(s, jobs, n, CS_EUNAVAIL, "the replica is stopping");
        return;
    }
    size_t ncmds = 0;
    for (size_t i = 0; i < n; i++) {
        prepare(s, jobs[i]);
        for (uint32_t k = 0; k < jobs[i]->p.n; k++)
            ncmds += jobs[i]->p.cmds[k].built;
    }
    wgroup *g = malloc(sizeof *g + n * sizeof *g->jobs + ncmds * (sizeof *g->cmds + sizeof *g->props));
    if (g == NULL) {
        pthread_rwlock_unlock(&s->store_lk);
        fail_jobs(s, jobs, n, CS_ENOMEM, "proposing: out of memory");
        return;
    }
    *g = (wgroup){.s = s, .n = n, .ncmds = ncmds};
    g->jobs = (wjob **)(g + 1);
    g->cmds = (wcmd **)(g->jobs + n);
    g->props = (const cs_command **)(g->cmds + ncmds);
    memcpy(g->jobs, jobs, n * sizeof *jobs);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        for (uint32_t c = 0; c < jobs[i]->p.n; c++)
            if (jobs[i]->p.cmds[c].built) {
                g->cmds[k] = &jobs[i]->p.cmds[c];
                g->props[k++] = &jobs[i]->p.cmds[c].c;
            }
    if (ncmds == 0) {
        /* Every write failed in its prep: nothing to replicate. */
        pthread_rwlock_unlock(&s->store_lk);
        group_finish(s, g, false);
        return;
    }
    pthread_mutex_lock(&s->mu);
    s->winflight++;
    pthread_mutex_unlock(&s->mu);
    cs_error err = {0};
    g->proposed_ns = now_ns();
    int rc = cs_replica_propose(s->replica, g->props, ncmds, group_proposed, g, &err);
    pthread_rwlock_unlock(&s->store_lk);
    if (rc != CS_OK)
        group_proposed(g, rc, 0, NULL, 0, err.msg);
}

void srv_applied(void *ctx, uint64_t index, const cs_result *res, size_t n)
{
    cs_server *s = ctx;
    for (size_t i = 0; i < n; i++)
        note_touched(s->rtouched, &res[i]);
    pthread_mutex_lock(&s->mu);
    s->applied_index = index;
    pthread_cond_broadcast(&s->applied_cv);
    pthread_mutex_unlock(&s->mu);
    after_write(s, s->rtouched, true);
}

int srv_wait_applied(cs_server *s, uint64_t index, uint32_t timeout_ms, cs_error *err)
{
    if (!s->replicated || index == 0)
        return CS_OK;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    while (s->applied_index < index && !s->stopping && rc == 0)
        rc = pthread_cond_timedwait(&s->applied_cv, &s->mu, &until);
    uint64_t have = s->applied_index;
    pthread_mutex_unlock(&s->mu);
    if (have >= index)
        return CS_OK;
    return cs_errorf(err, CS_EUNAVAIL,
                     "this replica has applied index %llu, not yet min_index %llu: retry, or "
                     "ask another replica",
                     (unsigned long long)have, (unsigned long long)index);
}

void srv_touched_free(cs_server *s)
{
    if (s->rtouched != NULL) {
        free(s->rtouched->ids);
        free(s->rtouched);
        s->rtouched = NULL;
    }
}

int srv_touched_new(cs_server *s)
{
    s->rtouched = calloc(1, sizeof *s->rtouched);
    return s->rtouched != NULL ? CS_OK : CS_ENOMEM;
}

/* Answer write `j` from its results (a monitor's verdict: act on it) and
 * release what its prep held. */
static void finish(cs_server *s, wjob *j)
{
    wprep *p = &j->p;
    if (j->w == NULL) {
        cs_error err;
        if (j->gc != NULL) {
            /* A failure (out of memory, a full map, no leader) leaves the
             * jobs for the monitor's next pass. */
            if (cmd_outcome(&p->cmds[0], &err) != CS_OK)
                fprintf(stderr, "cellstated: collecting %zu ended jobs: %s\n", j->ngc, err.msg);
            pthread_mutex_lock(&s->mu);
            s->gc_queued = false;
            pthread_mutex_unlock(&s->mu);
        } else if (j->drain) {
            pthread_mutex_lock(&s->mu);
            mslot *sl = srv_slot_of(s, j->down_machine);
            if (sl != NULL)
                sl->drain_queued = false;
            pthread_mutex_unlock(&s->mu);
        }
        prep_free(p);
        free(j->gc);
        free(j);
        return;
    }
    worker *w = j->w;
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    cs_error err = p->err;
    int rc = p->rc;
    if (rc == CS_OK && (rc = cs_msg_begin(&pk, w->msg.type, w->msg.req)) == CS_OK)
        rc = writes[w->msg.type].reply(s, j, &pk, &err);
    if (rc != CS_OK) {
        b.size = 0;
        w->outcome = rc;
        cs_msg_error(&b, w->msg.req, rc, err.msg[0] ? err.msg : cs_strerror(rc));
        pthread_mutex_lock(&s->mu);
        s->c.errors++;
        pthread_mutex_unlock(&s->mu);
    }
    prep_free(p);
    srv_send_bytes(w, b.data, b.size);
    msgpack_sbuffer_destroy(&b);
}

/* Apply the queued writes `jobs` (n of them, in arrival order) and answer
 * them. One replica: in one group commit (store.h): one LMDB transaction,
 * and one fsync, for the lot; a group abandoned because a command failed
 * after writing (out of memory, I/O) is applied again one write at a time;
 * a group whose commit failed answers every write with that error (none of
 * it was applied; the clients retry). A replicated cell: proposed as one
 * entry (propose_group) and answered when it comes back. The replies go
 * out only once the group is durable. */
static void run_group(cs_server *s, wjob **jobs, size_t n)
{
    if (s->replicated) {
        propose_group(s, jobs, n);
        return;
    }
    cs_error err = {0};
    bool grouped = n > 1 && cs_store_group_begin(s->store, &err) == CS_OK;
    for (size_t i = 0; i < n; i++) {
        prepare(s, jobs[i]);
        apply_local(s, jobs[i]);
    }
    bool applied = true;
    if (grouped) {
        bool abandoned;
        int rc = cs_store_group_end(s->store, &abandoned, NULL, &err);
        if (abandoned) {
            /* Nothing of the group was applied: neither were its results. */
            s->touched->n = 0;
            s->touched->lost = false;
            for (size_t i = 0; i < n; i++)
                apply_local(s, jobs[i]);
        } else if (rc != CS_OK) {
            applied = false;
            for (size_t i = 0; i < n; i++)
                for (uint32_t k = 0; k < jobs[i]->p.n; k++) {
                    wcmd *c = &jobs[i]->p.cmds[k];
                    if (c->built) {
                        c->rc = rc;
                        c->err = err;
                    }
                }
        }
    }
    after_write(s, s->touched, applied);
    audit_group(s, jobs, n);
    for (size_t i = 0; i < n; i++)
        finish(s, jobs[i]);
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
    size_t cap = jobs != NULL ? GROUP_MAX : 1;
    wjob *one[1];
    if (cap == 1)
        jobs = one; /* without memory for a group, one write at a time */
    wtouched touched = {0};
    s->touched = &touched;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        /* Wait for writes to take (while fewer than WRITER_INFLIGHT groups
         * are in flight) or a group to answer. Stopping: queued writes are
         * dropped (their clients time out and retry; a commit's retry is
         * answered from its idempotency record), and the groups in flight
         * are answered (the replica, stopped first, fails them) before the
         * writer leaves. */
        while (s->wdone == NULL && (s->stopping ? s->winflight > 0
                                                : !queued(s) || s->winflight >= WRITER_INFLIGHT))
            pthread_cond_wait(&s->cv, &s->mu);
        wgroup *done = s->wdone;
        s->wdone = s->wdone_tail = NULL;
        if (done == NULL && s->stopping) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        size_t n = 0;
        if (!s->stopping && s->winflight < WRITER_INFLIGHT) {
            n = take(&s->lanes[LANE_CELL], jobs, cap);
            size_t r = n > 0 ? REPORTS_WITH_CELL : REPORTS_MAX;
            n += take(&s->lanes[LANE_REPORTS], jobs + n, n + r < cap ? r : cap - n);
            s->c.writes += n;
            s->c.queued -= n;
        }
        pthread_mutex_unlock(&s->mu);
        if (n > 0)
            cs_prom_hist_observe(&s->metrics.group_writes, n);

        while (done != NULL) {
            wgroup *next = done->next;
            group_finish(s, done, true);
            done = next;
        }
        if (n > 0)
            run_group(s, jobs, n);
    }
    s->touched = NULL;
    free(touched.ids);
    if (cap > 1)
        free(jobs);
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

