/* test_replicated.c — a replicated cell of real cellstated processes on
 * 127.0.0.1 (issue 14): writes through any replica, failover when the
 * leader is killed, a partitioned (SIGSTOPped) follower catching up, a
 * member rebuilt from a snapshot after losing its data, and quiesced
 * replicas holding byte-identical cells; and the audit log, kept by the
 * replica that led when a write was accepted.
 *
 * The replica module's own tests (elections, partitions, crashes on
 * libraft's fixture) are in test_replica.c; this suite checks the daemon
 * around it: forwarding, the members message, the replies' meaning. No
 * timing is asserted: waits are bounded only so that a broken cell fails
 * instead of hanging, and the failover time is written to the log. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include "cellstate/store.h"
#include "proto/client.h"
#include "proto/jobmsg.h"
#include "proto/membermsg.h"
#include "proto/msg.h"
#include "proto/readmsg.h"
#include "proto/sync.h"
#include "spec/jobspec.h"
#include "tests/support.h"

#define MAXR 5

typedef struct replica {
    int id, pid;
    char url[64], raft[64], data[300], log[300];
    cs_client *c;
} replica;

typedef struct rcell {
    char dir[256], cluster[300], bin[256];
    int n;
    replica r[MAXR];
} rcell;

static rcell C;

static void setup(void)
{
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    memset(&C, 0, sizeof C);
    cr_assert_eq(ts_mkdtemp(C.dir, sizeof C.dir), 0);
    ts_bin("cellstated", C.bin, sizeof C.bin);
}

static void teardown(void)
{
    for (int i = 0; i < C.n; i++) {
        if (C.r[i].c != NULL)
            cs_client_close(C.r[i].c);
        if (C.r[i].pid > 0) {
            kill(C.r[i].pid, SIGCONT);
            ts_stop(C.r[i].pid, SIGKILL, 5000);
        }
    }
    ts_kill_descendants();
    ts_rmtree(C.dir);
}

TestSuite(replicated, .init = setup, .fini = teardown, .timeout = 240);

static void start(replica *r)
{
    char id[16], cl[] = "--cluster", idf[] = "--id", data[] = "--data", et[] = "--election-timeout",
                 etv[] = "400", st[] = "--snapshot-threshold", stv[] = "64",
                 tr[] = "--snapshot-trailing", trv[] = "16", wk[] = "--workers", wkv[] = "64";
    snprintf(id, sizeof id, "%d", r->id);
    char *argv[] = {C.bin, cl, C.cluster, idf, id, data, r->data, et, etv, st, stv, tr, trv,
                    wk, wkv, NULL};
    r->pid = ts_spawn(argv, r->log);
    if (r->c == NULL) {
        cs_error err = {0};
        cr_assert_eq(cs_client_open(r->url, 2000, &r->c, &err), CS_OK, "%s", err.msg);
    }
}

/* A cell of n members, each started. */
static void cell_start(int n)
{
    C.n = n;
    char dir[sizeof C.dir];
    memcpy(dir, C.dir, sizeof dir); /* apart from C, which the paths are written into */
    snprintf(C.cluster, sizeof C.cluster, "%s/cluster.json", dir);
    FILE *f = fopen(C.cluster, "w");
    cr_assert_not_null(f);
    fprintf(f, "[");
    for (int i = 0; i < n; i++) {
        replica *r = &C.r[i];
        r->id = i + 1;
        snprintf(r->url, sizeof r->url, "tcp://127.0.0.1:%d", ts_free_port());
        snprintf(r->raft, sizeof r->raft, "127.0.0.1:%d", ts_free_port());
        snprintf(r->data, sizeof r->data, "%s/cell-%d", dir, r->id);
        snprintf(r->log, sizeof r->log, "%s/cellstated-%d.log", dir, r->id);
        fprintf(f, "%s{\"id\": %d, \"listen\": \"%s\", \"raft\": \"%s\"}", i ? ", " : "", r->id,
                r->url, r->raft);
    }
    fprintf(f, "]\n");
    fclose(f);
    for (int i = 0; i < n; i++)
        start(&C.r[i]);
}

static void show_logs(void)
{
    for (int i = 0; i < C.n; i++) {
        char what[32];
        snprintf(what, sizeof what, "cellstated-%d", C.r[i].id);
        ts_log_file(what, C.r[i].log);
    }
}

/* Replica r's own view (the members message): CS_OK and *out, or an
 * error (it is down, stopped, or starting). */
static int members(replica *r, cs_members_reply *out, cs_arena *a)
{
    cs_msg m;
    cs_error err = {0};
    cs_client_set_timeout(r->c, 1000);
    int rc = cs_client_call(r->c, CS_MSG_MEMBERS, "\x80", 1, &m, &err);
    if (rc == CS_OK)
        rc = cs_members_reply_decode(&m.body, out, a, &err);
    return rc;
}

/* The index (into C.r) of the replica that says it leads, among those
 * `alive`; -1 after the wait. */
static int leader(const bool *alive, int wait_ms)
{
    int64_t until = ts_now_ms() + wait_ms;
    do {
        for (int i = 0; i < C.n; i++) {
            if (alive != NULL && !alive[i])
                continue;
            cs_arena a;
            cs_arena_init(&a);
            cs_members_reply m;
            bool leads = members(&C.r[i], &m, &a) == CS_OK && m.role == CS_MEMBER_LEADER;
            cs_arena_free(&a);
            if (leads)
                return i;
        }
        ts_sleep_ms(50);
    } while (ts_now_ms() < until);
    return -1;
}

/* Submit a small batch job named `name` through replica r; CS_OK once
 * acknowledged (an error: not acknowledged). */
static int submit(replica *r, const char *name, cs_error *err)
{
    char json[256];
    snprintf(json, sizeof json,
             "{\"name\": \"%s\", \"count\": 1, \"cmd\": \"true\", "
             "\"resources\": {\"cpu\": 0.01, \"mem\": 1}}",
             name);
    cs_jobspec spec;
    CS_TRY(cs_jobspec_parse(json, strlen(json), &spec, err));
    cs_msg m;
    cs_client_set_timeout(r->c, 3000);
    int rc = cs_client_callb(r->c, CS_MSG_JOB_SUBMIT, &spec.body, &m, err);
    cs_jobspec_free(&spec);
    return rc;
}

/* The cell version replica r serves (0: no answer). */
static uint64_t version_of(replica *r) { return ts_version_of(r->c); }

/* Wait until every replica in `alive` serves the same version, at least
 * `min`; that version, or 0 after the wait. */
static uint64_t converge(const bool *alive, uint64_t min, int wait_ms)
{
    int64_t until = ts_now_ms() + wait_ms;
    do {
        uint64_t v = 0;
        bool same = true;
        for (int i = 0; i < C.n; i++) {
            if (alive != NULL && !alive[i])
                continue;
            uint64_t x = version_of(&C.r[i]); /* 0: no answer */
            if (v == 0)
                v = x;
            same = same && x != 0 && x == v && x >= min;
        }
        if (same && v > 0)
            return v;
        ts_sleep_ms(50);
    } while (ts_now_ms() < until);
    /* Not converged: what each replica serves, and its log, say why. */
    for (int i = 0; i < C.n; i++)
        if (alive == NULL || alive[i])
            cr_log_error("replica %d serves version %llu", C.r[i].id,
                         (unsigned long long)version_of(&C.r[i]));
    show_logs();
    return 0;
}

/* Whether replica r serves job `name` (a read of its own store). */
static bool has_job(replica *r, const char *name) { return ts_has_job(r->c, name); }

/* Stop every replica cleanly and compare the cells their stores hold. */
static void quiesce_and_compare(const bool *alive)
{
    uint8_t *first = NULL;
    size_t first_len = 0;
    int first_id = 0;
    for (int i = 0; i < C.n; i++) {
        if (alive != NULL && !alive[i])
            continue;
        cr_log_info("replica %d serves version %llu before it stops", C.r[i].id,
                    (unsigned long long)version_of(&C.r[i]));
        cs_client_close(C.r[i].c);
        C.r[i].c = NULL;
        cr_assert_eq(ts_stop(C.r[i].pid, SIGTERM, 20000), 0, "replica %d did not stop cleanly",
                     C.r[i].id);
        C.r[i].pid = 0;
        cs_store *st;
        cs_error err = {0};
        cr_assert_eq(cs_store_open(C.r[i].data, NULL, &st, &err), CS_OK, "replica %d: %s",
                     C.r[i].id, err.msg);
        uint8_t *d;
        size_t len;
        ts_dump_cell(st, &d, &len);
        cs_store_close(st);
        if (first == NULL) {
            first = d;
            first_len = len;
            first_id = C.r[i].id;
            continue;
        }
        cr_expect(len == first_len && memcmp(d, first, len) == 0,
                  "replica %d's cell (%zu bytes) differs from replica %d's (%zu bytes)", C.r[i].id,
                  len, first_id, first_len);
        free(d);
    }
    free(first);
}

Test(replicated, writes_through_every_replica_reach_all)
{
    cell_start(3);
    int l = leader(NULL, 30000);
    if (l < 0)
        show_logs();
    cr_assert_geq(l, 0, "no leader elected");
    /* Through each replica in turn: a follower forwards to the leader. */
    char name[32];
    for (int k = 0; k < 30; k++) {
        cs_error err = {0};
        snprintf(name, sizeof name, "job-%d", k);
        /* An election on a loaded machine (400 ms timeouts) answers
         * CS_ENOTLEADER: retried, as a client does; a retry of a write
         * that did commit finds the name taken. */
        int rc = submit(&C.r[k % 3], name, &err);
        for (int64_t until = ts_now_ms() + 30000;
             (rc == CS_ENOTLEADER || rc == CS_EUNAVAIL) && ts_now_ms() < until;) {
            ts_sleep_ms(50);
            if ((rc = submit(&C.r[k % 3], name, &err)) == CS_EEXIST)
                rc = CS_OK;
        }
        if (rc != CS_OK)
            show_logs();
        cr_assert_eq(rc, CS_OK, "submit %s through replica %d: %s", name, k % 3 + 1, err.msg);
    }
    uint64_t v = converge(NULL, 30, 30000);
    cr_assert_gt(v, 0, "the replicas did not converge");
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 30; k += 7) {
            snprintf(name, sizeof name, "job-%d", k);
            cr_expect(has_job(&C.r[i], name), "replica %d lacks %s", i + 1, name);
        }
    /* Every replica knows the members and the same leader (the one now:
     * an election may have moved it). */
    l = leader(NULL, 30000);
    cr_assert_geq(l, 0, "no leader after the writes");
    for (int i = 0; i < 3; i++) {
        cs_arena a;
        cs_arena_init(&a);
        cs_members_reply m;
        cr_assert_eq(members(&C.r[i], &m, &a), CS_OK);
        cr_expect_eq(m.n, 3);
        cr_expect_eq(m.leader, (uint64_t)C.r[l].id, "replica %d names leader %llu", i + 1,
                     (unsigned long long)m.leader);
        cr_expect_geq(m.applied_index, 30);
        cs_arena_free(&a);
    }
    /* cellctl's live view names the replicas and the leader. */
    char ctl[256], cmd[1024], out[8192], want[64];
    ts_bin("cellctl", ctl, sizeof ctl);
    snprintf(cmd, sizeof cmd, "%s --server %s watch --count 1 2>&1", ctl, C.r[(l + 1) % 3].url);
    cr_assert_eq(ts_run(cmd, out, sizeof out), 0, "%s", out);
    snprintf(want, sizeof want, "cell state: 3 replicas, leader %d ", C.r[l].id);
    cr_expect(strstr(out, want) != NULL, "no '%s' in:\n%s", want, out);
    quiesce_and_compare(NULL);
}

Test(replicated, leader_killed_writes_resume_nothing_acknowledged_is_lost)
{
    cell_start(3);
    int l = leader(NULL, 30000);
    cr_assert_geq(l, 0, "no leader elected");
    int via = (l + 1) % 3; /* a follower that survives */
    char name[32];
    int acked[200], nacked = 0;
    int64_t killed_at = 0, resumed_at = 0;
    bool alive[MAXR] = {true, true, true};
    for (int k = 0; k < 120; k++) {
        if (k == 40) {
            /* kill -9 the leader in the middle of the load. */
            cr_log_info("kill -9 of the leader, replica %d", C.r[l].id);
            kill(C.r[l].pid, SIGKILL);
            ts_stop(C.r[l].pid, SIGKILL, 5000);
            C.r[l].pid = 0;
            alive[l] = false;
            killed_at = ts_now_ms();
        }
        snprintf(name, sizeof name, "load-%d", k);
        cs_error err = {0};
        int64_t until = ts_now_ms() + 30000;
        int rc;
        /* A write that is not acknowledged is retried until it is (an
         * election in the middle answers CS_ENOTLEADER or times out). A
         * retried submit whose first try committed is refused as a name
         * taken: acknowledged, then. */
        while ((rc = submit(&C.r[via], name, &err)) != CS_OK && rc != CS_EEXIST &&
               ts_now_ms() < until)
            ts_sleep_ms(50);
        if (rc != CS_OK && rc != CS_EEXIST)
            show_logs();
        cr_assert(rc == CS_OK || rc == CS_EEXIST, "%s never acknowledged: %s", name, err.msg);
        if (killed_at != 0 && resumed_at == 0)
            resumed_at = ts_now_ms();
        acked[nacked++] = k;
    }
    cr_log_info("writes resumed %lld ms after the leader was killed",
                (long long)(resumed_at - killed_at));
    int l2 = leader(alive, 30000);
    cr_assert_geq(l2, 0, "no new leader");
    cr_assert_neq(l2, l);
    cr_assert_gt(converge(alive, 0, 30000), 0);
    for (int i = 0; i < 3; i++) {
        if (!alive[i])
            continue;
        for (int k = 0; k < nacked; k++) {
            snprintf(name, sizeof name, "load-%d", acked[k]);
            cr_expect(has_job(&C.r[i], name), "replica %d lost acknowledged %s", i + 1, name);
        }
    }
    /* The killed member comes back and catches up. */
    start(&C.r[l]);
    alive[l] = true;
    cr_assert_gt(converge(NULL, 0, 90000), 0, "the restarted member did not catch up");
    quiesce_and_compare(NULL);
}

Test(replicated, stopped_follower_catches_up_and_empty_member_is_rebuilt)
{
    cell_start(3);
    int l = leader(NULL, 30000);
    cr_assert_geq(l, 0, "no leader elected");
    int f = (l + 1) % 3, other = (l + 2) % 3;
    /* SIGSTOP a follower: a partition as the others see it. */
    kill(C.r[f].pid, SIGSTOP);
    char name[32];
    for (int k = 0; k < 150; k++) {
        cs_error err = {0};
        snprintf(name, sizeof name, "while-stopped-%d", k);
        cr_assert_eq(submit(&C.r[l], name, &err), CS_OK, "%s: %s", name, err.msg);
    }
    kill(C.r[f].pid, SIGCONT);
    /* 150 entries past a snapshot threshold of 64 with 16 trailing: it
     * catches up by the log or by a snapshot, whichever the leader has. */
    cr_assert_gt(converge(NULL, 150, 60000), 0, "the stopped follower did not catch up");
    cr_expect(has_job(&C.r[f], "while-stopped-149"));

    /* A member that lost its data directory is rebuilt from the others. */
    cs_client_close(C.r[other].c);
    C.r[other].c = NULL;
    cr_assert_eq(ts_stop(C.r[other].pid, SIGTERM, 20000), 0);
    C.r[other].pid = 0;
    ts_rmtree(C.r[other].data);
    for (int k = 0; k < 40; k++) {
        cs_error err = {0};
        snprintf(name, sizeof name, "while-gone-%d", k);
        int rc;
        int64_t until = ts_now_ms() + 30000;
        while ((rc = submit(&C.r[f], name, &err)) != CS_OK && rc != CS_EEXIST &&
               ts_now_ms() < until)
            ts_sleep_ms(50);
        cr_assert(rc == CS_OK || rc == CS_EEXIST, "%s: %s", name, err.msg);
    }
    start(&C.r[other]);
    cr_assert_gt(converge(NULL, 190, 90000), 0, "the emptied member was not rebuilt");
    cr_expect(has_job(&C.r[other], "while-stopped-0"));
    cr_expect(has_job(&C.r[other], "while-gone-39"));
    quiesce_and_compare(NULL);
}

/* Counts of job `name`'s tasks by state, as replica r serves them; false
 * when it does not answer. */
static bool job_counts(replica *r, cs_id id, uint32_t *finished, uint32_t *total)
{
    ts_cell view;
    ts_cell_read(r->c, &view);
    *finished = *total = 0;
    for (size_t i = 0; i < view.ntasks; i++)
        if (view.tasks[i].job == id) {
            (*total)++;
            *finished += view.tasks[i].state == CS_TASK_FINISHED;
        }
    ts_cell_free(&view);
    return true;
}

static int spawn_args(const char *const *argv, const char *log)
{
    return ts_spawn((char *const *)argv, log);
}

/* The daemons that use the cell, pointed at followers only: simulated
 * machines poll and heartbeat through one follower, the batch scheduler
 * syncs and commits through the other (its sync asks for its last
 * commit's index, min_index, so it reads its own writes). Every task of a
 * batch job runs and finishes. */
Test(replicated, scheduler_and_agents_through_followers)
{
    cell_start(3);
    int l = leader(NULL, 30000);
    cr_assert_geq(l, 0, "no leader elected");
    replica *f1 = &C.r[(l + 1) % 3], *f2 = &C.r[(l + 2) % 3];
    char agent[256], batch[256], alog[300], blog[300];
    ts_bin("cell-agent", agent, sizeof agent);
    ts_bin("cell-batch", batch, sizeof batch);
    snprintf(alog, sizeof alog, "%s/agent.log", C.dir);
    snprintf(blog, sizeof blog, "%s/batch.log", C.dir);
    const char *av[] = {agent, "--server", f1->url, "--simulate", "4", "--sim-prefix", "m",
                        "--sim-duration", "20-80", "--cpu", "4", "--mem", "4096",
                        "--heartbeat-ms", "300", "--poll-wait-ms", "2000", NULL};
    spawn_args(av, alog);
    const char *bv[] = {batch, "--server", f2->url, "--name", "batch", "--idle-ms", "10",
                        "--report-ms", "200", "--park-ms", "100", "--seed", "3", NULL};
    spawn_args(bv, blog);
    cs_id job = ts_submit(f1->c, "{\"name\": \"crunch\", \"count\": 40, \"cmd\": \"crunch\","
                                 " \"resources\": {\"cpu\": 0.5, \"mem\": 64}}");
    uint32_t fin = 0, total = 0;
    int64_t end = ts_now_ms() + 60000;
    while (ts_now_ms() < end) {
        job_counts(f2, job, &fin, &total);
        if (total == 40 && fin == 40)
            break;
        ts_sleep_ms(100);
    }
    if (fin != 40) {
        ts_log_file("cell-agent", alog);
        ts_log_file("cell-batch", blog);
        show_logs();
    }
    cr_assert_eq(fin, 40, "%u of %u tasks finished", fin, total);
    /* The machines are up on every replica: the leader's monitor hears
     * their heartbeats, forwarded by the follower they talk to. */
    for (int i = 0; i < 3; i++) {
        ts_cell view;
        ts_cell_read(C.r[i].c, &view);
        size_t up = 0;
        for (size_t k = 0; k < view.nmachines; k++)
            up += view.machines[k].state == CS_MACHINE_UP;
        ts_cell_free(&view);
        cr_expect_eq(up, 4, "replica %d: %zu machines up", i + 1, up);
    }
}

/* members.add, members.transfer and members.remove at run time, through
 * a follower: a fourth member joins empty and catches up, takes the
 * leadership, and is removed again; the cell goes on taking writes. */
Test(replicated, members_added_transferred_and_removed)
{
    cell_start(3);
    int l = leader(NULL, 30000);
    cr_assert_geq(l, 0, "no leader elected");
    char name[32];
    for (int k = 0; k < 20; k++) {
        cs_error err = {0};
        snprintf(name, sizeof name, "before-%d", k);
        cr_assert_eq(submit(&C.r[l], name, &err), CS_OK, "%s", err.msg);
    }
    /* The fourth member: started first (it waits, unbootstrapped, to be
     * contacted), then added through a follower with cellctl. */
    replica *r4 = &C.r[3];
    r4->id = 4;
    snprintf(r4->url, sizeof r4->url, "tcp://127.0.0.1:%d", ts_free_port());
    snprintf(r4->raft, sizeof r4->raft, "127.0.0.1:%d", ts_free_port());
    snprintf(r4->data, sizeof r4->data, "%s/cell-4", C.dir);
    snprintf(r4->log, sizeof r4->log, "%s/cellstated-4.log", C.dir);
    char ctl[256], cmd[1024], out[4096];
    ts_bin("cellctl", ctl, sizeof ctl);
    char id[16], cl[] = "--cluster", idf[] = "--id", data[] = "--data", rf[] = "--raft",
                 lf[] = "--listen";
    snprintf(id, sizeof id, "%d", r4->id);
    char *argv[] = {C.bin, cl, C.cluster, idf, id, data, r4->data, lf, r4->url, rf, r4->raft, NULL};
    r4->pid = ts_spawn(argv, r4->log);
    cs_error err = {0};
    cr_assert_eq(cs_client_open(r4->url, 2000, &r4->c, &err), CS_OK, "%s", err.msg);
    C.n = 4;
    replica *f = &C.r[(l + 1) % 3];
    snprintf(cmd, sizeof cmd, "%s --server %s members add 4 %s %s 2>&1", ctl, f->url, r4->url,
             r4->raft);
    int rc = ts_run(cmd, out, sizeof out);
    if (rc != 0)
        show_logs();
    cr_assert_eq(rc, 0, "members add: %s", out);
    cr_assert_gt(converge(NULL, 20, 60000), 0, "the added member did not catch up");
    cr_expect(has_job(r4, "before-19"));

    /* Leadership to the new member, through a follower. */
    snprintf(cmd, sizeof cmd, "%s --server %s members transfer 4 2>&1", ctl, f->url);
    rc = ts_run(cmd, out, sizeof out);
    cr_assert_eq(rc, 0, "members transfer: %s", out);
    int l2 = leader(NULL, 30000);
    cr_assert_eq(l2, 3, "leader is member %d after the transfer", l2 >= 0 ? C.r[l2].id : -1);
    cr_assert_eq(submit(f, "after-transfer", &err), CS_OK, "%s", err.msg);

    /* And out again: the old members elect one of themselves. */
    snprintf(cmd, sizeof cmd, "%s --server %s members remove 4 2>&1", ctl, f->url);
    rc = ts_run(cmd, out, sizeof out);
    cr_assert_eq(rc, 0, "members remove: %s", out);
    bool alive[MAXR] = {true, true, true, false};
    int l3 = leader(alive, 30000);
    cr_assert_geq(l3, 0, "no leader among the three after the removal");
    int64_t until = ts_now_ms() + 30000;
    while ((rc = submit(f, "after-remove", &err)) != CS_OK && rc != CS_EEXIST &&
           ts_now_ms() < until)
        ts_sleep_ms(100);
    cr_assert(rc == CS_OK || rc == CS_EEXIST, "after the removal: %s", err.msg);
    cs_arena a;
    cs_arena_init(&a);
    cs_members_reply m;
    cr_assert_eq(members(&C.r[l3], &m, &a), CS_OK);
    cr_expect_eq(m.n, 3, "%u members after the removal", m.n);
    cs_arena_free(&a);
}

/* A sync to a follower asking for min_index: an index the cell has reached
 * is answered (with the write in it), one far ahead is refused with
 * CS_EUNAVAIL after the server's bounded wait, naming both indexes. */
static int sync_min_index(replica *r, uint64_t min_index, uint64_t *version, cs_error *err)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    cs_sync_req req = {.since = 0, .min_index = min_index};
    cr_assert_eq(cs_sync_req_encode(&pk, &req), CS_OK);
    const void *body;
    size_t len;
    cs_client_set_timeout(r->c, 10000);
    int rc = cs_client_call_raw(r->c, CS_MSG_SYNC, b.data, b.size, &body, &len, err);
    msgpack_sbuffer_destroy(&b);
    if (rc == CS_OK)
        *version = version_of(r);
    return rc;
}

Test(replicated, follower_reads_wait_for_min_index)
{
    cell_start(3);
    int l = leader(NULL, 30000);
    cr_assert_geq(l, 0, "no leader elected");
    replica *f = &C.r[(l + 1) % 3];
    cs_error err = {0};
    cr_assert_eq(submit(&C.r[l], "mine", &err), CS_OK, "%s", err.msg);
    cs_arena a;
    cs_arena_init(&a);
    cs_members_reply m;
    cr_assert_eq(members(&C.r[l], &m, &a), CS_OK);
    uint64_t at = m.applied_index, v = 0;
    cs_arena_free(&a);
    /* The leader's applied index includes the submission: a follower asked
     * for it answers only once it has applied it. */
    cr_assert_eq(sync_min_index(f, at, &v, &err), CS_OK, "%s", err.msg);
    cr_expect(has_job(f, "mine"), "the follower answered min_index %llu without the write",
              (unsigned long long)at);
    cr_assert_eq(sync_min_index(f, at + 1000000, &v, &err), CS_EUNAVAIL, "%s", err.msg);
    cr_expect(strstr(err.msg, "min_index") != NULL, "%s", err.msg);
}

/* A write forwarded by a follower to a leader that stops answering (here
 * SIGSTOPped: a hang, a partition) is answered once a new leader is
 * elected and the forwarding grace (FORWARD_GRACE_MS, 2 s) has passed:
 * CS_ENOTLEADER, or taken if the client's retry reached the new leader —
 * not held until the 30 s forwarding timeout, which also held the
 * follower's worker (cellchaos saw a follower with every worker so held
 * stop answering reads). The client waits 20 s: a timeout fails the test. */
Test(replicated, a_write_forwarded_to_a_stopped_leader_is_answered_after_the_election)
{
    cell_start(3);
    int l = leader(NULL, 30000);
    cr_assert_geq(l, 0, "no leader elected");
    int f = (l + 1) % 3;
    cs_error err = {0};
    cr_assert_eq(submit(&C.r[f], "before", &err), CS_OK, "%s", err.msg);
    kill(C.r[l].pid, SIGSTOP);
    char json[] = "{\"name\": \"during\", \"count\": 1, \"cmd\": \"true\", "
                  "\"resources\": {\"cpu\": 0.01, \"mem\": 1}}";
    cs_jobspec spec;
    cr_assert_eq(cs_jobspec_parse(json, strlen(json), &spec, &err), CS_OK, "%s", err.msg);
    cs_msg m;
    cs_client_set_timeout(C.r[f].c, 20000);
    int rc = cs_client_callb(C.r[f].c, CS_MSG_JOB_SUBMIT, &spec.body, &m, &err);
    cs_jobspec_free(&spec);
    cr_assert(rc == CS_OK || rc == CS_ENOTLEADER,
              "the forwarded write got %d (%s), not an answer within 20 s", rc, err.msg);
    /* The follower still answers reads. */
    cr_assert_gt(version_of(&C.r[f]), 0, "the follower stopped answering reads");
    kill(C.r[l].pid, SIGCONT);
}

/* The audit entries of `action` in replica r's own log (the audit request
 * is not forwarded); their strings in `a`. */
static void audit_of(replica *r, const char *action, cs_audit_reply *out, cs_arena *a)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    cs_audit_req q = {.action = action};
    cr_assert_eq(cs_audit_req_encode(&pk, &q), CS_OK);
    cs_msg m;
    cs_error err = {0};
    cs_client_set_timeout(r->c, 3000);
    cr_assert_eq(cs_client_callb(r->c, CS_MSG_AUDIT, &b, &m, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_audit_reply_decode(&m.body, out, a, &err), CS_OK, "%s", err.msg);
    msgpack_sbuffer_destroy(&b);
}

/* A write through a follower is in the leader's audit log, not the
 * follower's; a leadership transfer is in the log of the leader that made
 * it, and the next write in the new leader's; cellctl audit, given every
 * replica, shows them all in order. */
Test(replicated, the_audit_is_kept_by_the_leader_and_merged_by_cellctl)
{
    cell_start(3);
    int l = leader(NULL, 30000);
    cr_assert_geq(l, 0, "no leader elected");
    int f = (l + 1) % 3, g = (l + 2) % 3;
    cs_error err = {0};
    cr_assert_eq(submit(&C.r[f], "through-follower", &err), CS_OK, "%s", err.msg);
    cs_arena a;
    cs_arena_init(&a);
    cs_audit_reply r;
    audit_of(&C.r[l], "job.submit", &r, &a);
    cr_assert_eq(r.n, 1, "the leader logged the forwarded write");
    cr_assert(strstr(r.entries[0].target, "through-follower") != NULL, "%s", r.entries[0].target);
    audit_of(&C.r[f], "job.submit", &r, &a);
    cr_assert_eq(r.n, 0, "the follower only forwarded it");

    /* Leadership to g, asked through f. */
    char ctl[256], cmd[1024], out[4096];
    ts_bin("cellctl", ctl, sizeof ctl);
    snprintf(cmd, sizeof cmd, "%s --server %s members transfer %d 2>&1", ctl, C.r[f].url,
             C.r[g].id);
    int rc = ts_run(cmd, out, sizeof out);
    cr_assert_eq(rc, 0, "members transfer: %s", out);
    cr_assert_eq(leader(NULL, 30000), g, "g leads after the transfer");
    audit_of(&C.r[l], "members.transfer", &r, &a);
    cr_assert_eq(r.n, 1, "the old leader logged the transfer it made");
    char want[32];
    snprintf(want, sizeof want, "to member %d", C.r[g].id);
    cr_assert_str_eq(r.entries[0].target, want);
    int64_t until = ts_now_ms() + 30000;
    while ((rc = submit(&C.r[f], "after-transfer", &err)) != CS_OK && rc != CS_EEXIST &&
           ts_now_ms() < until)
        ts_sleep_ms(100);
    cr_assert(rc == CS_OK || rc == CS_EEXIST, "after the transfer: %s", err.msg);
    audit_of(&C.r[g], "job.submit", &r, &a);
    cr_assert_eq(r.n, 1, "the new leader logged the next write");
    cr_assert(strstr(r.entries[0].target, "after-transfer") != NULL, "%s", r.entries[0].target);
    cs_arena_free(&a);

    /* Every replica's log, merged by time. */
    snprintf(cmd, sizeof cmd, "%s --server %s,%s,%s audit 2>&1", ctl, C.r[0].url, C.r[1].url,
             C.r[2].url);
    rc = ts_run(cmd, out, sizeof out);
    cr_assert_eq(rc, 0, "cellctl audit: %s", out);
    char *s1 = strstr(out, "through-follower"), *t = strstr(out, "members.transfer"),
         *s2 = strstr(out, "after-transfer");
    cr_assert(s1 != NULL && t != NULL && s2 != NULL && s1 < t && t < s2, "in order: %s", out);
}
