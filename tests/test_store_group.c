/* test_store_group.c — group commit (cellstate/store.h): the commands of a
 * group keep their own versions, log entries and idempotency records; one
 * refused before writing leaves the others; nothing of the group is seen
 * before it ends; a replay of the log reproduces the store; a command that
 * fails after writing abandons the whole group.
 *
 * Unit tier: a store in a temporary directory, no process.
 */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/support.h"
#include "txn/command.h"
#include "txn/commit.h"
#include "txn/ops.h"

/* One claim of `task` on `machine` (fine, incremental) as (sched, req). */
static int claim(cs_store *s, uint64_t req, cs_id task, cs_id machine, cs_txn_result *r,
                 cs_error *err)
{
    cs_txn tx;
    cs_txn_init(&tx, 7, req, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    cs_res res = {100, 100, 0};
    cr_assert_eq(cs_txn_add_claim(&tx, task, machine, &res, NULL, 0, 0), CS_OK);
    cs_txn_result_init(r);
    int rc = cs_commit(s, &tx, r, err);
    cs_txn_free(&tx);
    return rc;
}

typedef struct logged {
    uint8_t kind[64];
    uint64_t version[64];
    uint8_t *cmd[64];
    size_t len[64];
    size_t n;
} logged;

static int log_cb(void *ctx, uint64_t version, uint32_t n, uint8_t kind, const void *cmd,
                  size_t len)
{
    logged *l = ctx;
    cr_assert_lt(l->n, 64);
    l->kind[l->n] = kind;
    l->version[l->n] = version;
    l->cmd[l->n] = malloc(len ? len : 1);
    memcpy(l->cmd[l->n], cmd, len);
    l->len[l->n++] = len;
    return 0;
}

static void read_log(cs_store *s, logged *l)
{
    memset(l, 0, sizeof *l);
    cs_snap *snap;
    cs_error err = {0};
    cr_assert_eq(cs_snap_open(s, &snap, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_snap_each_log(snap, 0, log_cb, l, &err), CS_OK, "%s", err.msg);
    cs_snap_close(snap);
}

static void logged_free(logged *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->cmd[i]);
}

Test(store_group, commands_keep_their_versions_and_a_refused_one_leaves_the_others)
{
    ts_store t;
    ts_store_create(&t);
    cs_id m1 = ts_machine(t.s, "m1", 4000, 4000, 0, 0, 0, NULL, 0);
    cs_id j1 = ts_job(t.s, "a", CS_JOB_BATCH, 0, 3, 100, 100, 0, NULL, 0);
    uint64_t v0 = ts_version(t.s);
    cr_assert_eq(v0, 2);
    cs_error err = {0};

    cr_assert_eq(cs_store_group_begin(t.s, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_store_group_begin(t.s, &err), CS_EINVAL, "a second group on one thread");
    cs_txn_result r1, r2, r3;
    cr_assert_eq(claim(t.s, 1, cs_task_id(j1, 0), m1, &r1, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(r1.version, v0 + 1);
    /* A report on a task that is not placed: refused before writing, and
     * logged (command.h) at the current version. */
    uint64_t v = 0;
    cs_error refused = {0};
    cr_assert_eq(cs_op_task_status(t.s, cs_task_id(j1, 1), 1, CS_TASK_RUNNING, 0, NULL, &v,
                                   &refused),
                 CS_ESTATE);
    /* The second command sees the first: its task is assigned now. */
    cr_assert_eq(cs_op_task_status(t.s, cs_task_id(j1, 0), 1, CS_TASK_RUNNING, 0, NULL, &v, &err),
                 CS_OK, "%s", err.msg);
    cr_assert_eq(v, v0 + 2);
    /* A retry of request 1 in the same group is its first result. */
    cr_assert_eq(claim(t.s, 1, cs_task_id(j1, 0), m1, &r2, &err), CS_OK, "%s", err.msg);
    cr_assert(r2.replayed);
    cr_assert_eq(r2.version, v0 + 1);
    cr_assert_eq(claim(t.s, 2, cs_task_id(j1, 2), m1, &r3, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(r3.version, v0 + 3);
    /* Nothing of the group is visible yet. */
    cr_assert_eq(ts_version(t.s), v0);
    bool abandoned = true;
    uint64_t after = 0;
    cr_assert_eq(cs_store_group_end(t.s, &abandoned, &after, &err), CS_OK, "%s", err.msg);
    cr_assert_not(abandoned);
    cr_assert_eq(after, v0 + 3);
    cr_assert_eq(ts_version(t.s), v0 + 3);
    cr_assert_eq(cs_store_group_end(t.s, &abandoned, NULL, &err), CS_EINVAL, "no group is open");

    cs_arena a;
    cs_arena_init(&a);
    cs_task tk;
    ts_get_task(t.s, cs_task_id(j1, 0), &a, &tk);
    cr_assert_eq(tk.state, CS_TASK_RUNNING);
    cr_assert_eq(tk.version, v0 + 2);
    ts_get_task(t.s, cs_task_id(j1, 1), &a, &tk);
    cr_assert_eq(tk.state, CS_TASK_PENDING);
    ts_get_task(t.s, cs_task_id(j1, 2), &a, &tk);
    cr_assert_eq(tk.state, CS_TASK_ASSIGNED);
    cs_machine m;
    ts_get_machine(t.s, m1, &a, &m);
    cr_assert_eq(m.ntasks, 2);
    cr_assert_eq(m.allocated.cpu, 200);
    cr_assert_eq(m.seq, v0 + 3, "seq is the version of the machine's last change");

    /* One log entry per command, at its own version (the refusal at the
     * version it found); the replayed retry adds none. After a reopen
     * request 1 is still answered. */
    logged l;
    read_log(t.s, &l);
    cr_assert_eq(l.n, 6);
    cr_assert_eq(l.version[2], v0 + 1);
    cr_assert_eq(l.kind[3], CS_CMD_TASK_STATUS);
    cr_assert_eq(l.version[3], v0 + 1);
    cr_assert_eq(l.kind[4], CS_CMD_TASK_STATUS);
    cr_assert_eq(l.version[4], v0 + 2);
    cr_assert_eq(l.version[5], v0 + 3);
    logged_free(&l);
    ts_store_reopen(&t);
    cs_txn_result r4;
    cr_assert_eq(claim(t.s, 1, cs_task_id(j1, 1), m1, &r4, &err), CS_OK, "%s", err.msg);
    cr_assert(r4.replayed);
    cr_assert_eq(r4.version, v0 + 1);
    char why[256];
    cr_assert(ts_check_invariants(t.s, why, sizeof why), "%s", why);

    cs_txn_result_free(&r1);
    cs_txn_result_free(&r2);
    cs_txn_result_free(&r3);
    cs_txn_result_free(&r4);
    cs_arena_free(&a);
    ts_store_destroy(&t);
}

Test(store_group, replaying_the_log_of_groups_reproduces_the_store)
{
    ts_store t, u;
    ts_store_create(&t);
    ts_store_create(&u);
    cs_id m1 = ts_machine(t.s, "m1", 4000, 4000, 0, 0, 0, NULL, 0);
    cs_id m2 = ts_machine(t.s, "m2", 4000, 4000, 0, 0, 0, NULL, 0);
    cs_id j1 = ts_job(t.s, "a", CS_JOB_BATCH, 0, 4, 100, 100, 0, NULL, 0);
    cs_error err = {0};
    bool abandoned;
    for (uint32_t g = 0; g < 2; g++) {
        cr_assert_eq(cs_store_group_begin(t.s, &err), CS_OK, "%s", err.msg);
        cs_txn_result r;
        cr_assert_eq(claim(t.s, 10 + g, cs_task_id(j1, 2 * g), m1, &r, &err), CS_OK);
        cs_txn_result_free(&r);
        cr_assert_eq(claim(t.s, 20 + g, cs_task_id(j1, 2 * g + 1), m2, &r, &err), CS_OK);
        cs_txn_result_free(&r);
        cr_assert_eq(cs_op_task_status(t.s, cs_task_id(j1, 2 * g), 1, CS_TASK_FINISHED, 0, NULL,
                                       NULL, &err),
                     CS_OK, "%s", err.msg);
        cr_assert_eq(cs_store_group_end(t.s, &abandoned, NULL, &err), CS_OK, "%s", err.msg);
    }
    logged l;
    read_log(t.s, &l);
    for (size_t i = 0; i < l.n; i++)
        cr_assert_eq(cs_command_apply(u.s, l.kind[i], l.cmd[i], l.len[i], NULL, &err), CS_OK,
                     "command %zu: %s", i, err.msg);
    logged_free(&l);
    uint8_t *x, *y;
    size_t nx, ny;
    ts_dump(t.s, &x, &nx);
    ts_dump(u.s, &y, &ny);
    cr_assert_eq(nx, ny);
    cr_assert_arr_eq(x, y, nx, "a replay of the log differs from the store it came from");
    free(x);
    free(y);
    ts_store_destroy(&t);
    ts_store_destroy(&u);
}

Test(store_group, a_command_failing_after_writing_abandons_the_group)
{
    char dir[256];
    cr_assert_eq(ts_mkdtemp(dir, sizeof dir), 0);
    /* A map too small for the second job's tasks: its submission fails
     * with the map full, after writing some of them. */
    cs_store_opts o = {.map_size = (size_t)1 << 20, .nosync = true};
    cs_store *s = NULL;
    cs_error err = {0};
    cr_assert_eq(cs_store_open(dir, &o, &s, &err), CS_OK, "%s", err.msg);
    cs_id m1 = ts_machine(s, "m1", 4000, 4000, 0, 0, 0, NULL, 0);
    uint64_t v0 = ts_version(s);

    cr_assert_eq(cs_store_group_begin(s, &err), CS_OK, "%s", err.msg);
    cs_job small = {.name = "small", .kind = CS_JOB_BATCH, .count = 2, .cmd = "", .note = ""};
    cs_job big = {.name = "big", .kind = CS_JOB_BATCH, .count = 200000, .cmd = "", .note = ""};
    cs_id id;
    cr_assert_eq(cs_op_job_submit(s, &small, &id, NULL, &err), CS_OK, "%s", err.msg);
    int rc = cs_op_job_submit(s, &big, &id, NULL, &err);
    cr_assert_neq(rc, CS_OK, "200,000 tasks fit in a 1 MiB map");
    /* The group is poisoned: nothing more is taken into it. */
    cr_assert_eq(cs_op_machine_state(s, m1, CS_MACHINE_DRAINING, NULL, &err), CS_EIO);
    cr_assert(strstr(err.msg, "abandoned") != NULL, "%s", err.msg);
    bool abandoned = false;
    cr_assert_eq(cs_store_group_end(s, &abandoned, NULL, &err), CS_OK, "%s", err.msg);
    cr_assert(abandoned);
    /* Nothing of it was applied, the job that went in first included. */
    cr_assert_eq(ts_version(s), v0);
    cs_snap *snap;
    cr_assert_eq(cs_snap_open(s, &snap, &err), CS_OK, "%s", err.msg);
    cs_arena a;
    cs_arena_init(&a);
    cs_job j;
    cr_assert_eq(cs_snap_job_by_name(snap, "small", &a, &j, &err), CS_ENOTFOUND);
    cs_snap_close(snap);
    /* The writer runs it again alone, and the store takes it. */
    cr_assert_eq(cs_op_job_submit(s, &small, &id, NULL, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(ts_version(s), v0 + 1);
    char why[256];
    cr_assert(ts_check_invariants(s, why, sizeof why), "%s", why);
    cs_arena_free(&a);
    cs_store_close(s);
    ts_rmtree(dir);
}

/* Replication (store.h): the applied index commits with the group's
 * commands, also when none of them wrote anything (a refusal), survives a
 * reopen, and is read back; a replicated compaction records its index even
 * with nothing to drop; the replica record round-trips. */
Test(store_group, the_applied_index_commits_with_the_group_even_when_nothing_was_written)
{
    ts_store t;
    ts_store_create(&t);
    cs_error err = {0};
    uint64_t applied = 99;
    cr_assert_eq(cs_store_applied(t.s, &applied, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(applied, 0, "a new store has applied nothing");
    cr_assert_eq(cs_store_group_set_applied(t.s, 1, &err), CS_EINVAL, "no group is open");

    /* A group whose only command is refused (a kill of an unknown job). */
    cr_assert_eq(cs_store_group_begin(t.s, &err), CS_OK, "%s", err.msg);
    cs_command c;
    cr_assert_eq(cs_cmd_job_kill(&c, 42, TS_SUBMITTED_MS, &err), CS_OK, "%s", err.msg);
    cs_result r;
    cs_result_init(&r);
    cr_assert_eq(cs_command_apply_built(t.s, &c, &r, &err), CS_OK, "%s", err.msg);
    cr_assert_neq(r.status, CS_OK, "killing an unknown job is refused");
    cs_command_free(&c);
    cr_assert_eq(cs_store_group_set_applied(t.s, 7, &err), CS_OK, "%s", err.msg);
    bool abandoned;
    cr_assert_eq(cs_store_group_end(t.s, &abandoned, NULL, &err), CS_OK, "%s", err.msg);
    cr_assert(!abandoned);
    cr_assert_eq(cs_store_applied(t.s, &applied, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(applied, 7);

    /* A group with no command at all still commits the meta write. */
    cr_assert_eq(cs_store_group_begin(t.s, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_store_group_set_applied(t.s, 8, &err), CS_OK, "%s", err.msg);
    static const char blob[] = "members";
    cr_assert_eq(cs_store_group_put_replica(t.s, blob, sizeof blob, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_store_group_end(t.s, &abandoned, NULL, &err), CS_OK, "%s", err.msg);

    ts_store_reopen(&t);
    cr_assert_eq(cs_store_applied(t.s, &applied, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(applied, 8, "the applied index survives a reopen");
    void *data;
    size_t len;
    cr_assert_eq(cs_store_replica(t.s, &data, &len, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(len, sizeof blob);
    cr_assert_arr_eq(data, blob, len);
    free(data);

    /* Nothing to drop (floor 0): the index is recorded all the same. */
    cr_assert_eq(cs_store_compact_applied(t.s, 0, 9, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_store_applied(t.s, &applied, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(applied, 9);
    cs_result_free(&r);
    ts_store_destroy(&t);
}

/* cs_store_copy: the compacting copy, named data.mdb in a directory of its
 * own, opens as the same store (records, log, meta and its applied index),
 * which is what a replica installs from a snapshot. */
Test(store_group, a_compacting_copy_opens_as_the_same_store)
{
    ts_store t;
    ts_store_create(&t);
    cs_id m = ts_machine(t.s, "m1", 2000, 2048, 100, 0, 0, NULL, 0);
    cs_id j = ts_job(t.s, "web", CS_JOB_SERVICE, 0, 3, 100, 100, 0, NULL, 0);
    cs_txn_result r;
    cs_error err = {0};
    cr_assert_eq(claim(t.s, 1, cs_task_id(j, 0), m, &r, &err), CS_OK, "%s", err.msg);
    cs_txn_result_free(&r);
    cr_assert_eq(cs_store_compact_applied(t.s, 1, 42, &err), CS_OK, "%s", err.msg);

    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s-copy", t.dir);
    cr_assert_eq(mkdir(dir, 0755), 0);
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(cs_store_copy(t.s, fd, &err), CS_OK, "%s", err.msg);
    close(fd);

    cs_store *c;
    cs_store_opts o = {.map_size = (size_t)64 << 20, .nosync = true};
    cr_assert_eq(cs_store_open(dir, &o, &c, &err), CS_OK, "%s", err.msg);
    uint64_t applied = 0;
    cr_assert_eq(cs_store_applied(c, &applied, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(applied, 42);
    uint8_t *a, *b;
    size_t na, nb;
    ts_dump(t.s, &a, &na);
    ts_dump(c, &b, &nb);
    cr_assert_eq(na, nb);
    cr_assert_arr_eq(a, b, na, "the copy differs from its store");
    free(a);
    free(b);
    cs_store_close(c);
    ts_rmtree(dir);
    ts_store_destroy(&t);
}
