/* writer.c — the one writer: every write (registrations, submissions,
 * commits, reports, the monitor's verdicts) in arrival order, grouped into
 * one LMDB transaction and one fsync per group (store.h's group commit), so
 * that the store sees one writer as Omega's cell state does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cellstate/vec.h"
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

static int reply_version(msgpack_packer *pk, uint64_t v, cs_error *err)
{
    PK(msgpack_pack_map(pk, 1));
    return cs_pack_kv_u64(pk, "version", v);
}

/* propose, replying {version}. */
static int propose_reply_version(worker *w, msgpack_packer *pk, cs_command *c, int built,
                                 cs_error *err)
{
    cs_result r;
    cs_result_init(&r);
    int rc = propose(w->s, c, built, &r, err);
    if (rc == CS_OK)
        rc = reply_version(pk, r.version, err);
    cs_result_free(&r);
    return rc;
}

/* propose, replying {id, version}: a registration or a submission. */
static int propose_reply_id(worker *w, msgpack_packer *pk, cs_command *c, int built,
                            cs_id *id, cs_error *err)
{
    cs_result r;
    cs_result_init(&r);
    int rc = propose(w->s, c, built, &r, err);
    if (rc == CS_OK) {
        *id = r.id;
        if (msgpack_pack_map(pk, 2) || cs_pack_kv_u64(pk, "id", r.id) ||
            cs_pack_kv_u64(pk, "version", r.version))
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
    int rc = cs_unpack_machine_spec(body(w), &a, &spec, err);
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
    int rc = cs_unpack_job_spec(body(w), &a, &spec, err);
    /* Stamped here, in the writer, so that the logged command carries it
     * and a replay of the log reproduces it. */
    spec.submitted = wall_ms();
    if (rc == CS_OK)
        rc = propose_reply_id(w, pk, &c, cs_cmd_job_submit(&c, &spec, err), &id, err);
    cs_arena_free(&a);
    return rc;
}

/* Resolve the "job" field to an id. Through a write transaction, not a
 * snapshot: in a group (srv_writer_main) a job submitted by an earlier command
 * of the same group is not in any snapshot yet. The transaction writes
 * nothing and is aborted. */
static int resolve_job(worker *w, cs_id *id, cs_error *err)
{
    cs_wtxn *wt;
    CS_TRY(cs_wtxn_begin(w->s->store, &wt, err));
    cs_arena a;
    cs_arena_init(&a);
    cs_job j;
    int rc = srv_job_ref(cs_wtxn_snap(wt), body(w), "job", &a, &j, err);
    if (rc == CS_OK)
        *id = j.id;
    cs_arena_free(&a);
    cs_wtxn_abort(wt);
    return rc;
}

int srv_kill(worker *w, msgpack_packer *pk, cs_error *err)
{
    cs_id id;
    cs_command c;
    CS_TRY(resolve_job(w, &id, err));
    return propose_reply_version(w, pk, &c, cs_cmd_job_kill(&c, id, wall_ms(), err), err);
}

/* job.end {job}: a batch scheduler says none of the job's tasks will run
 * again; the cell makes it finished or failed, stamped now. */
int srv_job_end(worker *w, msgpack_packer *pk, cs_error *err)
{
    cs_id id;
    cs_command c;
    CS_TRY(resolve_job(w, &id, err));
    return propose_reply_version(w, pk, &c, cs_cmd_job_end(&c, id, wall_ms(), err), err);
}

/* job.scale and job.surge: {job, <key>: n}, the command built by `build`. */
static int job_count_op(worker *w, msgpack_packer *pk, const char *key,
                        int (*build)(cs_command *, cs_id, uint32_t, cs_error *), cs_error *err)
{
    cs_id id;
    uint64_t n = 0;
    cs_command c;
    CS_TRY(cs_obj_u64(body(w), key, true, CS_TASK_INDEX_MAX + 1u, &n, err));
    CS_TRY(resolve_job(w, &id, err));
    return propose_reply_version(w, pk, &c, build(&c, id, (uint32_t)n, err), err);
}

int srv_scale(worker *w, msgpack_packer *pk, cs_error *err)
{
    return job_count_op(w, pk, "count", cs_cmd_job_scale, err);
}

int srv_job_surge(worker *w, msgpack_packer *pk, cs_error *err)
{
    return job_count_op(w, pk, "surge", cs_cmd_job_surge, err);
}

/* machine.admin: {machine, admin, deadline_ms?}. The deadline comes as a
 * duration and is stamped here, in the writer, on the wall clock, so that
 * the logged command carries the instant and a replay reproduces it. The
 * machine is resolved through a write transaction, as resolve_job does. */
int srv_machine_admin(worker *w, msgpack_packer *pk, cs_error *err)
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
        rc = srv_machine_ref(cs_wtxn_snap(wt), body(w), "machine", &a, &m, err);
        cs_wtxn_abort(wt);
    }
    uint64_t deadline = has_deadline ? wall_ms() + dur : 0;
    cs_command c;
    cs_result r;
    cs_result_init(&r);
    if (rc == CS_OK)
        rc = propose(w->s, &c, cs_cmd_machine_admin(&c, m.id, admin, deadline, err), &r, err);
    cs_arena_free(&a);
    if (rc == CS_OK &&
        (msgpack_pack_map(pk, 4) || cs_pack_kv_u64(pk, "id", m.id) ||
         cs_pack_kv_str(pk, "admin", cs_machine_admin_name(admin)) ||
         cs_pack_kv_u64(pk, "drain_deadline", deadline) ||
         cs_pack_kv_u64(pk, "version", r.version)))
        rc = cs_errorf(err, CS_ENOMEM, "reply: out of memory");
    cs_result_free(&r);
    return rc;
}

int srv_update(worker *w, msgpack_packer *pk, cs_error *err)
{
    cs_id id;
    const msgpack_object *spec_obj = cs_obj_get(body(w), "spec");
    if (spec_obj == NULL)
        return cs_errorf(err, CS_EPROTO, "field 'spec' is missing");
    CS_TRY(resolve_job(w, &id, err));
    cs_arena a;
    cs_arena_init(&a);
    cs_job spec;
    cs_command c;
    int rc = cs_unpack_job_spec(spec_obj, &a, &spec, err);
    if (rc == CS_OK)
        rc = propose_reply_version(w, pk, &c, cs_cmd_job_update(&c, id, &spec, err), err);
    cs_arena_free(&a);
    return rc;
}

int srv_job_note(worker *w, msgpack_packer *pk, cs_error *err)
{
    cs_id id;
    cs_arena a;
    cs_arena_init(&a);
    const char *note = NULL;
    cs_command c;
    int rc = cs_obj_str(body(w), "note", true, CS_NOTE_MAX, &a, &note, err);
    if (rc == CS_OK)
        rc = resolve_job(w, &id, err);
    if (rc == CS_OK)
        rc = propose_reply_version(w, pk, &c, cs_cmd_job_note(&c, id, note, err), err);
    cs_arena_free(&a);
    return rc;
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

int srv_commit(worker *w, msgpack_packer *pk, cs_error *err)
{
    cs_txn t;
    cs_txn_init(&t, 0, 0, 0, 0, 0);
    cs_command c;
    cs_result res;
    cs_result_init(&res);
    int rc = cs_txn_from_object(body(w), &t, err);
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
        if (msgpack_pack_map(pk, 7) || cs_pack_kv_u64(pk, "version", r->version) ||
            cs_pack_kv_bool(pk, "replayed", r->replayed) ||
            cs_pack_kv_u64(pk, "committed", r->committed) ||
            cs_pack_kv_u64(pk, "conflicts", r->conflicts) ||
            pack_outcomes(pk, "claims", r->claims, r->nclaims, err) ||
            pack_outcomes(pk, "releases", r->releases, r->nreleases, err) ||
            pack_outcomes(pk, "preempts", r->preempts, r->npreempts, err))
            rc = cs_errorf(err, CS_ENOMEM, "reply: out of memory");
    }
    cs_result_free(&res);
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
    cs_result res;
    cs_result_init(&res);
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *o = &list->via.array.ptr[i];
        cs_task_report r;
        cs_command c;
        cs_arena_reset(&a);
        if (o->type != MSGPACK_OBJECT_MAP)
            codes[i] = cs_errorf(&errs[i], CS_EPROTO, "reports[%u] is not a map", i);
        else if ((codes[i] = parse_report(o, &a, &r, &errs[i])) == CS_OK &&
                 (codes[i] = propose(w->s, &c, cs_cmd_task_report(&c, &r, &errs[i]), &res,
                                     &errs[i])) == CS_OK &&
                 res.version > v)
            v = res.version;
    }
    cs_result_free(&res);
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

int srv_task_status(worker *w, msgpack_packer *pk, cs_error *err)
{
    const msgpack_object *list = cs_obj_get(body(w), "reports");
    if (list != NULL)
        return task_status_batch(w, list, pk, err);
    cs_arena a;
    cs_arena_init(&a);
    cs_task_report r;
    cs_command c;
    int rc = parse_report(body(w), &a, &r, err);
    if (rc == CS_OK)
        rc = propose_reply_version(w, pk, &c, cs_cmd_task_report(&c, &r, err), err);
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
        if (cs_msg_begin(&pk, CS_MSG_VERSION, 0) == CS_OK && msgpack_pack_map(&pk, 1) == 0 &&
            cs_pack_kv_u64(&pk, "version", v) == CS_OK)
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

