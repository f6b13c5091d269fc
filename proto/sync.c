/* sync.c — see sync.h. */
#include "proto/sync.h"

#include <stdlib.h>
#include <string.h>

#include "cellstate/vec.h"
#include "txn/command.h"

/* ---- the packing reader: the reply's bytes ---------------------------------------- */

/* Packs what cs_sync_reply_visit walks. The tasks of a compact reply
 * (protocol §5.7) go out as runs of equal tasks, one positional entry
 * each, once the walk has seen them all: `runs` collects them, and
 * `added` keeps what adding said, so that its errors are told from the
 * walk's own (which carry their message). */
typedef struct packer {
    msgpack_packer *pk;
    bool compact;
    bool redact; /* cs_sync_req.redact */
    cs_task_runs *runs;
    int added;
} packer;

static int oom(cs_error *err) { return cs_errorf(err, CS_ENOMEM, "reply: out of memory"); }

/* [a, b]: a continuation key or the ids. */
static int pack_pair(msgpack_packer *pk, const char *key, uint64_t a, uint64_t b)
{
    return cs_pack_str(pk, key) || msgpack_pack_array(pk, 2) || msgpack_pack_uint64(pk, a) ||
                   msgpack_pack_uint64(pk, b)
               ? CS_ENOMEM
               : CS_OK;
}

static int pack_head(void *ctx, uint64_t version, bool full, size_t ngone,
                     const cs_sync_piece *piece, cs_error *err)
{
    packer *p = ctx;
    uint32_t npiece = piece == NULL ? 0 : 3 + (uint32_t)piece->more;
    if (msgpack_pack_map(p->pk, 5 + (uint32_t)p->compact + (ngone > 0) + npiece) ||
        cs_pack_kv_u64(p->pk, "version", version) || cs_pack_kv_bool(p->pk, "full", full) ||
        (p->compact && cs_pack_kv_str(p->pk, "form", "compact")))
        return oom(err);
    if (piece != NULL &&
        (cs_pack_kv_u64(p->pk, "base", piece->base) ||
         pack_pair(p->pk, "ids", piece->max_machine, piece->max_job) ||
         cs_pack_kv_bool(p->pk, "more", piece->more) ||
         (piece->more && pack_pair(p->pk, "next", piece->next.kind, piece->next.id))))
        return oom(err);
    return CS_OK;
}

static int pack_gone(void *ctx, const cs_id *jobs, size_t n, cs_error *err)
{
    packer *p = ctx;
    if (cs_pack_str(p->pk, "gone") || msgpack_pack_array(p->pk, (uint32_t)n))
        return oom(err);
    for (size_t i = 0; i < n; i++)
        if (msgpack_pack_uint64(p->pk, jobs[i]))
            return oom(err);
    return CS_OK;
}

static int pack_list(void *ctx, int kind, size_t n, cs_error *err)
{
    static const char *const keys[CS_KIND_COUNT] = {"machines", "jobs", "tasks"};
    packer *p = ctx;
    if (kind == CS_KIND_TASK && p->compact) {
        /* The key goes out with the runs, once they are known. */
        if ((p->runs = malloc(sizeof *p->runs)) == NULL)
            return oom(err);
        cs_task_runs_init(p->runs);
        return CS_OK;
    }
    if (cs_pack_str(p->pk, keys[kind]) || msgpack_pack_array(p->pk, (uint32_t)n))
        return oom(err);
    return CS_OK;
}

static int pack_machine(void *ctx, const cs_machine *m, cs_error *err)
{
    return cs_pack_machine(((packer *)ctx)->pk, m) == CS_OK ? CS_OK : oom(err);
}

static int pack_job(void *ctx, const cs_job *j, cs_error *err)
{
    packer *p = ctx;
    return cs_pack_job_as(p->pk, j, p->redact) == CS_OK ? CS_OK : oom(err);
}

static int pack_task(void *ctx, const cs_task *t, cs_error *err)
{
    packer *p = ctx;
    if (!p->compact)
        return cs_pack_task(p->pk, t) == CS_OK ? CS_OK : oom(err);
    if ((p->added = cs_task_runs_add(p->runs, t)) == CS_EINVAL)
        return cs_errorf(err, CS_EIO, "sync: a stored task has more ports or a longer reason "
                                      "than a record may");
    return p->added == CS_OK ? CS_OK : oom(err);
}

static int pack_end(void *ctx, cs_error *err)
{
    packer *p = ctx;
    if (p->compact && (cs_pack_str(p->pk, "tasks") || cs_task_runs_finish(p->runs, p->pk) != CS_OK))
        return oom(err);
    return CS_OK;
}

/* ---- the walk ---------------------------------------------------------------------- */

/* cs_snap_each_task's callbacks carry no error: the visitor's goes here. */
typedef struct task_walk {
    const cs_sync_visitor *v;
    cs_error *err;
} task_walk;

static int walk_task(void *ctx, const cs_task *t)
{
    task_walk *w = ctx;
    return w->v->task(w->v->ctx, t, w->err);
}

/* Hand the visitor the current record of each id (the caller has made
 * sure that none was removed: a change set naming a collected job is
 * answered in full); with `all_tasks`, every task of the cell rather than
 * those listed (a compact full reply walks them once, in id order, instead
 * of listing their ids and reading each again). */
static int visit_changed(cs_snap *snap, const cs_sync_visitor *v, const cs_changes *ch,
                         uint64_t since, bool all_tasks, cs_error *err)
{
    cs_arena a;
    cs_arena_init(&a);
    int rc = v->list(v->ctx, CS_KIND_MACHINE, ch->n[CS_KIND_MACHINE], err);
    for (size_t i = 0; i < ch->n[CS_KIND_MACHINE] && rc == CS_OK; i++) {
        cs_machine m;
        cs_id id = ch->ids[CS_KIND_MACHINE][i];
        cs_arena_reset(&a);
        if (!v->keeps_records || since == 0) {
            rc = cs_snap_machine(snap, id, &a, &m, err);
        } else if ((rc = cs_snap_machine_fit(snap, id, &a, &m, err)) == CS_OK && m.name == NULL &&
                   (m.record_version == 0 || m.record_version > since)) {
            /* The allocation table's part alone, and the record changed
             * after the reader's version: read it. (fit reads it itself for
             * a machine that the table does not know.) */
            cs_arena_reset(&a);
            rc = cs_snap_machine(snap, id, &a, &m, err);
        }
        if (rc == CS_OK)
            rc = v->machine(v->ctx, &m, err);
    }
    if (rc == CS_OK)
        rc = v->list(v->ctx, CS_KIND_JOB, ch->n[CS_KIND_JOB], err);
    for (size_t i = 0; i < ch->n[CS_KIND_JOB] && rc == CS_OK; i++) {
        cs_job j;
        cs_arena_reset(&a);
        if ((rc = cs_snap_job(snap, ch->ids[CS_KIND_JOB][i], &a, &j, err)) == CS_OK)
            rc = v->job(v->ctx, &j, err);
    }
    cs_arena_free(&a);
    if (rc == CS_OK)
        rc = v->list(v->ctx, CS_KIND_TASK, all_tasks ? CS_SYNC_UNCOUNTED : ch->n[CS_KIND_TASK], err);
    task_walk w = {v, err};
    if (rc == CS_OK)
        rc = all_tasks ? cs_snap_each_task(snap, walk_task, &w, err)
                       : cs_snap_each_task_in(snap, ch->ids[CS_KIND_TASK], ch->n[CS_KIND_TASK],
                                              walk_task, &w, err);
    return rc == CS_OK ? v->end(v->ctx, err) : rc;
}

/* ---- a full sync in pieces ----------------------------------------------------------- */

/* The records one piece reads, walked in the order of a full reply from
 * the request's key. A piece reads at most `left` records; reading one
 * more finds out that another follows (`more`). A continuation is read at
 * a version after its base, so it leaves out every record made after base
 * — ids above base's (the walk stops there) and tasks placed on a machine
 * above them (skipped; they still count as read, so that what a piece
 * reads stays bounded) — lest the reader meet a task whose job or machine
 * it never got: each comes in the catch-up delta since base anyway. */
typedef struct piece_walk {
    cs_ids ids[CS_KIND_COUNT]; /* what the piece sends */
    size_t left;
    bool cont;
    cs_sync_piece *p;
} piece_walk;

/* Callback values that stop a walk (above every error code). */
enum { WALK_KIND_DONE = 100, WALK_PIECE_FULL };

static int piece_read(piece_walk *w, uint8_t kind, cs_id id, bool send)
{
    if (w->left == 0) {
        w->p->more = true;
        return WALK_PIECE_FULL;
    }
    w->left--;
    w->p->next = (cs_sync_key){kind, id};
    return send ? cs_ids_push(&w->ids[kind], id) : CS_OK;
}

static int piece_machine(void *ctx, const cs_machine *m)
{
    piece_walk *w = ctx;
    return m->id > w->p->max_machine ? WALK_KIND_DONE : piece_read(w, CS_KIND_MACHINE, m->id, true);
}

static int piece_job(void *ctx, const cs_job *j)
{
    piece_walk *w = ctx;
    return j->id > w->p->max_job ? WALK_KIND_DONE : piece_read(w, CS_KIND_JOB, j->id, true);
}

static int piece_task(void *ctx, const cs_task *t)
{
    piece_walk *w = ctx;
    if (t->job > w->p->max_job)
        return WALK_KIND_DONE;
    return piece_read(w, CS_KIND_TASK, t->id, !(w->cont && t->machine > w->p->max_machine));
}

/* Fill w->ids from the record after `from` (the start: kind machine, id
 * 0 and `first`) on, and w->p's more and next. */
static int walk_piece(cs_snap *snap, piece_walk *w, cs_sync_key from, bool first, cs_error *err)
{
    for (int k = from.kind; k < CS_KIND_COUNT; k++) {
        cs_id start = 0;
        if (k == from.kind && !first) {
            if (from.id == UINT64_MAX)
                continue;
            start = from.id + 1;
        }
        size_t limit = w->left + 1;
        int rc;
        if (k == CS_KIND_MACHINE)
            rc = cs_snap_each_machine_from(snap, start, limit, piece_machine, w, err);
        else if (k == CS_KIND_JOB)
            rc = cs_snap_each_job_from(snap, start, limit, piece_job, w, err);
        else
            rc = cs_snap_each_task_from(snap, start, limit, piece_task, w, err);
        if (rc == WALK_PIECE_FULL)
            return CS_OK;
        if (rc == CS_ENOMEM)
            return cs_errorf(err, rc, "sync: out of memory");
        if (rc != CS_OK && rc != WALK_KIND_DONE)
            return rc;
    }
    return CS_OK;
}

/* The piece `req` asks for, handed to `v`: the first (full, its own base
 * and ids) or the one after req->at. */
static int visit_piece(cs_snap *snap, const cs_sync_req *req, const cs_sync_visitor *v,
                       cs_error *err)
{
    uint64_t version = cs_snap_version(snap);
    cs_sync_piece p = {.base = version};
    if (req->cont) {
        p = req->at;
        p.more = false;
        /* A replica behind base (a follower a few entries behind the one
         * that served the first piece) would send records older than
         * base, which the catch-up delta since base does not send again. */
        if (p.base > version)
            return cs_errorf(err, CS_EUNAVAIL, "sync: this replica is at version %llu, before "
                             "the pieces' base %llu: ask again",
                             (unsigned long long)version, (unsigned long long)p.base);
    } else {
        CS_TRY(cs_snap_last_id(snap, CS_KIND_MACHINE, &p.max_machine, err));
        CS_TRY(cs_snap_last_id(snap, CS_KIND_JOB, &p.max_job, err));
    }
    piece_walk w = {.left = req->chunk, .cont = req->cont, .p = &p};
    cs_sync_key from = req->cont ? req->at.next : (cs_sync_key){CS_KIND_MACHINE, 0};
    int rc = walk_piece(snap, &w, from, !req->cont, err);
    cs_changes ch = {0};
    for (int k = 0; k < CS_KIND_COUNT; k++) {
        ch.ids[k] = w.ids[k].v;
        ch.n[k] = w.ids[k].n;
    }
    if (rc == CS_OK && (rc = v->head(v->ctx, version, !req->cont, 0, &p, err)) == CS_OK)
        rc = visit_changed(snap, v, &ch, 0, false, err);
    cs_changes_free(&ch);
    return rc;
}

static int all_machine(void *ctx, const cs_machine *m) { return cs_ids_push(ctx, m->id); }
static int all_job(void *ctx, const cs_job *j) { return cs_ids_push(ctx, j->id); }
static int all_task(void *ctx, const cs_task *t) { return cs_ids_push(ctx, t->id); }

/* Which of `choices` (a NULL-terminated list of one or two words) the
 * string field `key` names: *which is its index, or -1 when the field is
 * absent. Another word is CS_EINVAL naming the field and the words. */
static int str_choice(const msgpack_object *body, const char *key, const char *const *choices, int *which,
                      cs_error *err)
{
    const msgpack_object *f = cs_obj_get(body, key);
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

/* The pair under `key` ([a, b], two unsigned integers; b at most bmax),
 * *present telling whether the key is there. */
static int uint_pair(const msgpack_object *body, const char *key, uint64_t bmax, bool *present,
                     uint64_t *a, uint64_t *b, cs_error *err)
{
    const msgpack_object *f = cs_obj_get(body, key);
    *present = f != NULL;
    if (f == NULL)
        return CS_OK;
    if (f->type != MSGPACK_OBJECT_ARRAY || f->via.array.size != 2 ||
        f->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        f->via.array.ptr[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return cs_errorf(err, CS_EPROTO, "field '%s' is not an array of two unsigned integers",
                         key);
    *a = f->via.array.ptr[0].via.u64;
    *b = f->via.array.ptr[1].via.u64;
    if (*b > bmax)
        return cs_errorf(err, CS_EINVAL, "field '%s': %llu is above %llu", key,
                         (unsigned long long)*b, (unsigned long long)bmax);
    return CS_OK;
}

/* The continuation keys of a request for the next piece: "after",
 * "base" and "ids", all three or none, and only with "chunk" and since
 * 0 (a piece is part of a full reply). */
static int decode_cont(const msgpack_object *body, cs_sync_req *out, cs_error *err)
{
    bool has_after, has_ids;
    uint64_t kind = 0, id = 0, m = 0, j = 0, base = 0;
    CS_TRY(uint_pair(body, "after", UINT64_MAX, &has_after, &kind, &id, err));
    CS_TRY(uint_pair(body, "ids", CS_JOB_ID_MAX, &has_ids, &m, &j, err));
    bool has_base = cs_obj_get(body, "base") != NULL;
    CS_TRY(cs_obj_u64(body, "base", false, UINT64_MAX, &base, err));
    out->cont = has_after;
    if (!has_after && !has_ids && !has_base)
        return CS_OK;
    if (!has_after || !has_ids || !has_base)
        return cs_errorf(err, CS_EINVAL, "field '%s' is missing: 'after', 'base' and 'ids' "
                         "continue a sync in pieces together",
                         !has_after ? "after" : !has_ids ? "ids" : "base");
    if (kind >= CS_KIND_COUNT)
        return cs_errorf(err, CS_EINVAL, "field 'after': kind %llu is not 0 (machine), 1 (job) "
                         "or 2 (task)", (unsigned long long)kind);
    if (out->chunk == 0)
        return cs_errorf(err, CS_EINVAL, "field 'after' needs 'chunk' (records per piece)");
    if (out->since != 0)
        return cs_errorf(err, CS_EINVAL, "field 'after' needs 'since' 0: a piece is part of a "
                         "full reply");
    out->at = (cs_sync_piece){.base = base, .max_machine = m, .max_job = j,
                              .next = {(uint8_t)kind, id}};
    return CS_OK;
}

int cs_sync_req_decode(const msgpack_object *body, cs_sync_req *out, cs_error *err)
{
    static const char *const forms[] = {"map", "compact", NULL};
    static const char *const omits[] = {"running", NULL};
    int form, omit;
    uint64_t since = 0;
    CS_TRY(cs_obj_u64(body, "since", false, UINT64_MAX, &since, err));
    CS_TRY(str_choice(body, "form", forms, &form, err));
    CS_TRY(str_choice(body, "omit", omits, &omit, err));
    uint64_t min_index = 0;
    CS_TRY(cs_obj_u64(body, "min_index", false, UINT64_MAX, &min_index, err));
    bool gone = false;
    CS_TRY(cs_obj_bool(body, "gone", false, &gone, err));
    out->gone = gone;
    out->since = since;
    out->min_index = min_index;
    out->compact = form == 1;
    out->omit_running = omit == 0;
    uint64_t chunk = 0;
    CS_TRY(cs_obj_u64(body, "chunk", false, UINT32_MAX, &chunk, err));
    out->chunk = (uint32_t)chunk;
    return decode_cont(body, out, err);
}

int cs_sync_req_encode(msgpack_packer *pk, const cs_sync_req *r)
{
    /* The map form is the default and goes unsaid, as the scheduler has
     * always sent it: the bytes stay what they were. */
    bool wait = r->min_index != 0, cont = r->cont && r->chunk != 0;
    if (msgpack_pack_map(pk, 1 + (uint32_t)r->compact + (uint32_t)r->omit_running +
                                 (uint32_t)wait + (uint32_t)r->gone + (r->chunk != 0) +
                                 3 * (uint32_t)cont) != 0 ||
        cs_pack_kv_u64(pk, "since", r->since) != CS_OK ||
        (r->compact && cs_pack_kv_str(pk, "form", "compact") != CS_OK) ||
        (r->omit_running && cs_pack_kv_str(pk, "omit", "running") != CS_OK) ||
        (wait && cs_pack_kv_u64(pk, "min_index", r->min_index) != CS_OK) ||
        (r->gone && cs_pack_kv_bool(pk, "gone", true) != CS_OK) ||
        (r->chunk != 0 && cs_pack_kv_u64(pk, "chunk", r->chunk) != CS_OK) ||
        (cont && (pack_pair(pk, "after", r->at.next.kind, r->at.next.id) != CS_OK ||
                  cs_pack_kv_u64(pk, "base", r->at.base) != CS_OK ||
                  pack_pair(pk, "ids", r->at.max_machine, r->at.max_job) != CS_OK)))
        return CS_ENOMEM;
    return CS_OK;
}

/* The jobs of the change set that were removed (collected, §5.7): listed,
 * and their record gone. Garbage collection removes a job with its tasks
 * in one command, so the jobs alone tell. They move from ch's jobs to
 * *gone (ascending, as listed; the caller frees it), and their tasks leave
 * ch's tasks. CS_ENOMEM. */
static int removed_since(cs_snap *snap, cs_changes *ch, cs_ids *gone)
{
    cs_arena a;
    cs_arena_init(&a);
    size_t w = 0;
    int rc = CS_OK;
    for (size_t i = 0; i < ch->n[CS_KIND_JOB] && rc == CS_OK; i++) {
        cs_id id = ch->ids[CS_KIND_JOB][i];
        cs_job j;
        cs_error err;
        cs_arena_reset(&a);
        if (cs_snap_job(snap, id, &a, &j, &err) == CS_ENOTFOUND)
            rc = cs_ids_push(gone, id);
        else
            ch->ids[CS_KIND_JOB][w++] = id;
    }
    cs_arena_free(&a);
    if (rc != CS_OK || gone->n == 0)
        return rc;
    ch->n[CS_KIND_JOB] = w;
    /* Task ids are ascending and a job's tasks share its id's high bits:
     * one pass against the sorted gone list. */
    size_t g = 0;
    w = 0;
    for (size_t i = 0; i < ch->n[CS_KIND_TASK]; i++) {
        cs_id t = ch->ids[CS_KIND_TASK][i], job = cs_task_job(t);
        while (g < gone->n && gone->v[g] < job)
            g++;
        if (g == gone->n || gone->v[g] != job)
            ch->ids[CS_KIND_TASK][w++] = t;
    }
    ch->n[CS_KIND_TASK] = w;
    return CS_OK;
}

int cs_sync_reply_visit(cs_snap *snap, const cs_sync_req *req, const cs_sync_visitor *v,
                        cs_error *err)
{
    uint64_t since = req->since;
    bool compact = req->compact, omit_running = req->omit_running;
    cs_changes ch;
    cs_ids gone = {0};
    bool full = since == 0;
    int rc = CS_OK;
    if (!full) {
        rc = cs_snap_changes_except(snap, since, omit_running ? cs_cmd_only_marks_running : NULL,
                                    NULL, &ch, err);
        if (rc == CS_ECOMPACTED) {
            full = true;
            rc = CS_OK;
        } else if (rc == CS_OK && (rc = removed_since(snap, &ch, &gone)) != CS_OK) {
            cs_changes_free(&ch);
            free(gone.v);
            return cs_errorf(err, rc, "sync: out of memory");
        } else if (rc == CS_OK && gone.n > 0 && !req->gone) {
            /* A reader that does not read "gone" gets the whole cell. */
            cs_changes_free(&ch);
            gone.n = 0;
            full = true;
        }
    }
    if (full && rc == CS_OK && req->chunk > 0) {
        free(gone.v);
        return visit_piece(snap, req, v, err);
    }
    if (full && rc == CS_OK) {
        /* A full snapshot: every record, listed as if all had changed (the
         * compact form walks the tasks itself). */
        cs_ids l[CS_KIND_COUNT] = {{0}};
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
    if (rc == CS_OK &&
        (rc = v->head(v->ctx, cs_snap_version(snap), full, gone.n, NULL, err)) == CS_OK &&
        (gone.n == 0 || (rc = v->gone(v->ctx, gone.v, gone.n, err)) == CS_OK))
        rc = visit_changed(snap, v, &ch, full ? 0 : since, compact && full, err);
    if (rc == CS_OK || full)
        cs_changes_free(&ch);
    free(gone.v);
    return rc;
}

int cs_sync_reply_encode(cs_snap *snap, const cs_sync_req *req, msgpack_packer *pk,
                         cs_error *err)
{
    packer p = {.pk = pk, .compact = req->compact, .redact = req->redact, .added = CS_OK};
    cs_sync_visitor v = {&p,       pack_head, pack_gone, pack_list, pack_machine,
                         pack_job, pack_task, pack_end,  false};
    int rc = cs_sync_reply_visit(snap, req, &v, err);
    if (p.runs != NULL)
        cs_task_runs_free(p.runs);
    free(p.runs);
    return rc;
}
