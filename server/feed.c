/* feed.c — what keeps readers current: schedulers' syncs (the reply is
 * built by proto/sync.h) and agents' polls, parked on their machine until
 * a write changes it (the writer wakes them: srv_wake_polls). */
#include <stdlib.h>
#include <string.h>

#include "cellstate/vec.h"
#include "proto/agentmsg.h"
#include "proto/sync.h"
#include "server/internal.h"

/* ---- sync ------------------------------------------------------------------- */

/* The longest a read waits for its min_index (read-your-writes on a
 * replicated cell): a follower is normally a few milliseconds behind; one
 * that is further behind answers CS_EUNAVAIL, and the reader asks again or
 * asks another replica. */
#define MIN_INDEX_WAIT_MS 2000

int srv_sync(worker *w, msgpack_packer *pk, cs_error *err)
{
    cs_sync_req req;
    CS_TRY(cs_sync_req_decode(body(w), &req, err));
    if (req.chunk > w->s->o.sync_chunk)
        req.chunk = w->s->o.sync_chunk; /* a piece's size is the server's to bound */
    CS_TRY(srv_wait_applied(w->s, req.min_index, MIN_INDEX_WAIT_MS, err));
    cs_snap *snap;
    CS_TRY(open_snap(w, &snap, err));
    req.redact = w->redact;
    int rc = cs_sync_reply_encode(snap, &req, pk, err);
    srv_snap_close(w->s, snap);
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
    uint32_t n;
    size_t cap;
    cs_id *job;
    uint32_t njobs;
    size_t jcap;
    bool failed;
} poll_walk;

static int walk_task(void *ctx, const cs_task *t)
{
    poll_walk *pw = ctx;
    poll_ent *e = cs_vec_grow(pw->e, &pw->cap, (size_t)pw->n + 1, sizeof *e, 16);
    if (e == NULL) {
        pw->failed = true;
        return 0;
    }
    pw->e = e;
    bool full = pw->known == 0 || t->version > pw->known;
    pw->e[pw->n++] = (poll_ent){t->id, t->job, t->attempts, full};
    if (!full || (pw->njobs > 0 && pw->job[pw->njobs - 1] == t->job))
        return 0;
    for (uint32_t i = 0; i < pw->njobs; i++)
        if (pw->job[i] == t->job)
            return 0;
    cs_id *job = cs_vec_grow(pw->job, &pw->jcap, (size_t)pw->njobs + 1, sizeof *job, 16);
    if (job == NULL) {
        pw->failed = true;
        return 0;
    }
    pw->job = job;
    pw->job[pw->njobs++] = t->job;
    return 0;
}

/* One entry of a compact reply: short [task id, attempts], or full
 * {"task": task map, "job": job id} with the job in the reply's "jobs". */
static int pack_poll_entry(cs_snap *snap, msgpack_packer *pk, const poll_ent *e, cs_arena *a,
                           cs_error *err)
{
    if (!e->full)
        return cs_poll_entry_short_encode(pk, e->id, e->attempts) != CS_OK
                   ? cs_errorf(err, CS_ENOMEM, "reply: out of memory")
                   : CS_OK;
    cs_task t;
    cs_arena_reset(a);
    int rc = cs_snap_task(snap, e->id, a, &t, err);
    if (rc != CS_OK)
        return cs_error_wrap(err, rc, "poll reply: task %llu", (unsigned long long)e->id);
    if (cs_poll_entry_full_encode(pk, &t) != CS_OK)
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
    if (rc == CS_OK &&
        (pw.failed || cs_poll_reply_begin_once(pk, cs_snap_version(snap), pw.njobs) != CS_OK))
        rc = cs_errorf(err, CS_ENOMEM, "reply: out of memory");
    for (uint32_t i = 0; rc == CS_OK && i < pw.njobs; i++) {
        cs_job j;
        cs_arena_reset(&a);
        if ((rc = cs_snap_job(snap, pw.job[i], &a, &j, err)) != CS_OK)
            rc = cs_error_wrap(err, rc, "poll reply: job %llu", (unsigned long long)pw.job[i]);
        else if (cs_pack_job(pk, &j) != CS_OK)
            rc = cs_errorf(err, CS_ENOMEM, "reply: out of memory");
    }
    if (rc == CS_OK && cs_poll_reply_tasks(pk, pw.n) != CS_OK)
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
int srv_poll_reply(worker *w, msgpack_packer *pk, cs_error *err)
{
    cs_snap *snap;
    CS_TRY(open_snap(w, &snap, err));
    int rc = w->poll_jobs_once ? pack_poll_compact(snap, pk, w->poll_machine,
                                                   w->poll_short ? w->poll_since : 0, err)
                               : srv_pack_machine_tasks(snap, pk, w->poll_machine, err);
    srv_snap_close(w->s, snap);
    return rc;
}

/* Called with mu held. A parked poll's machine has a slot: parking made it. */
void srv_park_remove(cs_server *s, worker *w)
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

void srv_poll(worker *w)
{
    cs_server *s = w->s;
    cs_error err = {0};
    cs_snap *snap;
    cs_arena a;
    cs_arena_init(&a);
    cs_machine m;
    cs_poll_req q;
    int rc = cs_poll_req_decode(body(w), &q, &a, &err);
    if (rc == CS_OK)
        rc = srv_wait_applied(s, q.min_index, MIN_INDEX_WAIT_MS, &err);
    if (rc == CS_OK && (rc = srv_snap_open(s, &snap, &err)) == CS_OK) {
        rc = cs_ref_machine(snap, &q.machine, &a, &m, &err);
        srv_snap_close(s, snap);
        if (rc == CS_OK)
            rc = srv_auth_machine(w, m.name, &err);
    }
    cs_arena_free(&a);
    if (rc != CS_OK) {
        srv_send_error(w, rc, err.msg);
        return;
    }
    uint64_t since = q.since, wait_ms = q.wait_ms;
    if (wait_ms > s->o.poll_max_wait_ms)
        wait_ms = s->o.poll_max_wait_ms;
    w->poll_machine = m.id;
    w->poll_since = since;
    w->poll_jobs_once = q.jobs_once;
    w->poll_short = q.known_short;
    pthread_mutex_lock(&s->mu);
    mslot *sl = srv_slot_of(s, m.id);
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
        cs_sleep_begin(&w->psleep, w->aio, cs_clock_now_ms() + (int64_t)wait_ms);
        pthread_mutex_unlock(&s->mu);
        return;
    }
    pthread_mutex_unlock(&s->mu);
    srv_run_handler(w, srv_poll_reply);
}

/* Wake the polls parked on machine slot `sl`, which changed at the
 * version in sl->changed. Called by the writer with mu held. */
void srv_wake_polls(mslot *sl)
{
    for (worker *w = sl->parked; w; w = w->wnext)
        if (sl->changed > w->poll_since)
            nng_aio_cancel(w->aio); /* completes on nng's thread, not here */
}

