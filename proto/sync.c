/* sync.c — see sync.h. */
#include "proto/sync.h"

#include <stdlib.h>
#include <string.h>

#include "cellstate/vec.h"
#include "txn/command.h"

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
    out->since = since;
    out->min_index = min_index;
    out->compact = form == 1;
    out->omit_running = omit == 0;
    return CS_OK;
}

int cs_sync_req_encode(msgpack_packer *pk, const cs_sync_req *r)
{
    /* The map form is the default and goes unsaid, as the scheduler has
     * always sent it: the bytes stay what they were. */
    bool wait = r->min_index != 0;
    if (msgpack_pack_map(pk, 1 + (uint32_t)r->compact + (uint32_t)r->omit_running +
                                 (uint32_t)wait) != 0 ||
        cs_pack_kv_u64(pk, "since", r->since) != CS_OK ||
        (r->compact && cs_pack_kv_str(pk, "form", "compact") != CS_OK) ||
        (r->omit_running && cs_pack_kv_str(pk, "omit", "running") != CS_OK) ||
        (wait && cs_pack_kv_u64(pk, "min_index", r->min_index) != CS_OK))
        return CS_ENOMEM;
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

int cs_sync_reply_encode(cs_snap *snap, const cs_sync_req *req, msgpack_packer *pk,
                         cs_error *err)
{
    uint64_t since = req->since;
    bool compact = req->compact, omit_running = req->omit_running;
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
    return rc;
}

