/* test_replica.c — the replica's state machine (server/replica.h) under
 * Raft, on libraft's in-memory cluster (raft/fixture.h): simulated time,
 * network and disks, deterministic for a seed.
 *
 * Each node is the real state machine over its own LMDB store in a
 * temporary directory; the commands are the cell's (txn/command.h builders:
 * machines, jobs, transactions that claim tasks, kills, reports, and
 * refusals: names taken, unknown ids, stale reports), proposed on whoever
 * leads, while the test partitions, drops and delays messages, and kills
 * and revives nodes. Then, everything healed:
 *   - every store is byte-identical (records, names, the commit log and
 *     meta: the applied index and the members' record included);
 *   - no node applied an index twice, and every node got, for each index,
 *     the result the first node to apply it got;
 *   - a node left far behind caught up by installing a snapshot.
 *
 * Also the cluster file parser (cs_members_load) and the entry codecs.
 */
#include <criterion/criterion.h>

#include <raft.h>
#include <raft/fixture.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cellstate/paths.h"
#include "cellstate/rng.h"
#include "server/replica.h"
#include "tests/support.h"
#include "txn/command.h"
#include "txn/txn.h"

/* ---- the nodes -------------------------------------------------------------------- */

#define NODES_MAX 4
#define INDEX_MAX 4096
/* The most commands the tests put in one entry. */
#define GROUP_MAX 4

/* What one index gave, as the first node to apply it saw it. */
typedef struct seen {
    bool set;
    int status;
    uint64_t version;
    bool logged;
    cs_id id;
} seen;

typedef struct node {
    unsigned i;
    cs_replica_fsm *fsm;
    uint8_t *applied;     /* applied[index]: how many times */
    uint64_t last;        /* the last index its hook saw */
    unsigned restores;
    seen *results;        /* shared by all nodes */
} node;

static void on_applied(void *ctx, uint64_t index, const cs_result *res, size_t nres)
{
    node *n = ctx;
    cr_assert_lt(index, INDEX_MAX);
    cr_assert_eq(n->applied[index], 0, "node %u applied index %llu twice", n->i,
                 (unsigned long long)index);
    cr_assert_gt(index, n->last, "node %u applied %llu after %llu", n->i,
                 (unsigned long long)index, (unsigned long long)n->last);
    n->applied[index]++;
    n->last = index;
    cr_assert(nres >= 1 && nres <= GROUP_MAX, "node %u: index %llu gave %zu results", n->i,
              (unsigned long long)index, nres);
    for (size_t k = 0; k < nres; k++) {
        const cs_result *r = &res[k];
        seen *s = &n->results[index * GROUP_MAX + k];
        if (!s->set) {
            *s = (seen){true, r->status, r->version, r->logged, r->id};
            continue;
        }
        cr_assert(s->status == r->status && s->version == r->version &&
                      s->logged == r->logged && s->id == r->id,
                  "node %u: index %llu command %zu gave status %d version %llu, another node "
                  "%d version %llu",
                  n->i, (unsigned long long)index, k, r->status, (unsigned long long)r->version,
                  s->status, (unsigned long long)s->version);
    }
}

static void on_restored(void *ctx, cs_store *store, uint64_t index)
{
    node *n = ctx;
    (void)store;
    n->restores++;
    /* Entries up to the copy's applied index are in the store now. */
    if (index > n->last)
        n->last = index;
}

typedef struct cluster {
    struct raft_fixture f;
    node nodes[NODES_MAX];
    unsigned n;
    seen *results;
    uint64_t rng;
    uint64_t clock;
    uint64_t req;
    cs_arena a;
    unsigned proposed, answered, commands, refused_here;
    raft_term barrier_term[NODES_MAX];
} cluster;

static void node_add(cluster *c, unsigned threshold, unsigned trailing)
{
    unsigned i = c->n;
    node *n = &c->nodes[i];
    n->i = i;
    n->results = c->results;
    n->applied = calloc(INDEX_MAX, 1);
    cr_assert_not_null(n->applied);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/node%u", ts_tmp, i);
    cs_store_opts o = {.map_size = (size_t)64 << 20};
    cs_replica_hooks h = {.ctx = n, .applied = on_applied, .restored = on_restored};
    cs_error err = {0};
    cr_assert_eq(cs_replica_fsm_new(dir, &o, &h, &n->fsm, &err), CS_OK, "%s", err.msg);
    /* 0.15's fixture has async_work (run in place, at a step) but leaves
     * its raft_io's version unset, and raft_init refuses an fsm with
     * snapshot_async on an io below version 2: declare it. */
    c->f.servers[i].io.version = 2;
    cr_assert_eq(raft_fixture_grow(&c->f, cs_replica_fsm_raft(n->fsm)), 0);
    struct raft *r = raft_fixture_get(&c->f, i);
    cs_replica_fsm_bind(n->fsm, r);
    raft_set_snapshot_threshold(r, threshold);
    raft_set_snapshot_trailing(r, trailing);
    c->n++;
}

static void cluster_start(cluster *c, unsigned n, uint64_t seed, unsigned threshold,
                          unsigned trailing)
{
    memset(c, 0, sizeof *c);
    c->results = calloc(INDEX_MAX * GROUP_MAX, sizeof *c->results);
    cr_assert_not_null(c->results);
    c->rng = seed;
    c->clock = TS_SUBMITTED_MS;
    cs_arena_init(&c->a);
    cr_assert_eq(raft_fixture_initialize(&c->f), 0);
    for (unsigned i = 0; i < n; i++)
        node_add(c, threshold, trailing);
    struct raft_configuration conf;
    cr_assert_eq(raft_fixture_configuration(&c->f, n, &conf), 0);
    cr_assert_eq(raft_fixture_bootstrap(&c->f, &conf), 0);
    raft_configuration_close(&conf);
    cr_assert_eq(raft_fixture_start(&c->f), 0);
}

static void cluster_free(cluster *c)
{
    raft_fixture_close(&c->f);
    for (unsigned i = 0; i < c->n; i++) {
        cs_replica_fsm_free(c->nodes[i].fsm);
        free(c->nodes[i].applied);
    }
    free(c->results);
    cs_arena_free(&c->a);
}

/* ---- commands --------------------------------------------------------------------- */

static uint32_t below(cluster *c, uint32_t n) { return cs_rng_below(&c->rng, n); }

static int count_machine(void *ctx, const cs_machine *m)
{
    (void)m;
    (*(uint32_t *)ctx)++;
    return 0;
}

static int max_job(void *ctx, const cs_job *j)
{
    uint32_t *n = ctx;
    *n = j->id > *n ? (uint32_t)j->id : *n;
    return 0;
}

/* A command as a proposer would build it from what store `s` shows: many
 * of them the cell must refuse. */
static void build(cluster *c, cs_store *s, cs_command *cmd, cs_txn *t)
{
    static const char *const mnames[] = {"m1", "m2", "m3"};
    static const char *const jnames[] = {"a", "b", "c", "d", "e"};
    cs_snap *snap;
    cs_error err = {0};
    cr_assert_eq(cs_snap_open(s, &snap, &err), CS_OK, "%s", err.msg);
    uint32_t nm = 0, nj = 0;
    cr_assert_eq(cs_snap_each_machine(snap, count_machine, &nm, &err), CS_OK);
    cr_assert_eq(cs_snap_each_job(snap, max_job, &nj, &err), CS_OK);
    cs_snap_close(snap);
    c->clock += 1000;
    cs_arena_reset(&c->a);
    int rc;
    switch (nm == 0 ? 0 : nj == 0 ? 1 : below(c, 9)) {
    case 0: {
        cs_machine m = {0};
        m.name = mnames[below(c, 3)];
        m.capacity = (cs_res){1000 + 500 * below(c, 3), 4096, 1000};
        m.state = CS_MACHINE_UP;
        rc = cs_cmd_machine_put(cmd, &m, &err);
        break;
    }
    case 1:
    case 2: {
        cs_job j = {0};
        j.name = jnames[below(c, 5)]; /* a name taken is refused */
        j.kind = CS_JOB_BATCH;
        j.count = 1 + below(c, 3);
        j.res = (cs_res){300, 100, 0};
        j.cmd = "true";
        j.submitted = c->clock;
        rc = cs_cmd_job_submit(cmd, &j, &err);
        break;
    }
    case 3:
    case 4:
    case 5: {
        /* Now and then a retry of an earlier request: answered from its
         * idempotency record while the log holds it. */
        uint64_t req = c->req > 1 && below(c, 6) == 0 ? 1 + below(c, (uint32_t)c->req) : ++c->req;
        cs_txn_init(t, 1, req, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
        uint32_t nclaims = 1 + below(c, 2);
        for (uint32_t k = 0; k < nclaims; k++) {
            cs_id task = cs_task_id(1 + below(c, nj + 1), below(c, 3) + k * 3);
            cs_res res = {300, 100, 0};
            cr_assert_eq(cs_txn_add_claim(t, task, 1 + below(c, nm + 1), &res, NULL, 0, 0),
                         CS_OK);
        }
        rc = cs_cmd_txn(cmd, t, &err);
        break;
    }
    case 6:
        rc = cs_cmd_job_kill(cmd, 1 + below(c, nj + 2), c->clock, &err);
        break;
    case 7: {
        cs_task_report r = {cs_task_id(1 + below(c, nj), below(c, 3)), 1, CS_TASK_RUNNING, 0, "",
                            CS_TASK_HEALTH_UNKNOWN};
        rc = cs_cmd_task_report(cmd, &r, &err);
        break;
    }
    default:
        rc = cs_cmd_machine_state(cmd, 1 + below(c, nm + 1), CS_MACHINE_UP, &err);
        break;
    }
    cr_assert_eq(rc, CS_OK, "%s", err.msg);
}

static void barrier_done(struct raft_barrier *req, int status)
{
    (void)status;
    free(req);
}

/* As the runtime does: a new leader appends an entry of its term first. */
static void barrier_if_elected(cluster *c)
{
    for (unsigned i = 0; i < c->n; i++) {
        struct raft *r = raft_fixture_get(&c->f, i);
        if (raft_state(r) != RAFT_LEADER || r->current_term == c->barrier_term[i])
            continue;
        c->barrier_term[i] = r->current_term;
        struct raft_barrier *b = calloc(1, sizeof *b);
        cr_assert_not_null(b);
        b->data = c;
        if (raft_barrier(r, b, barrier_done) != 0)
            free(b);
    }
}

/* Step the cluster `n` events, one at a time, the way the runtime watches
 * its loop. */
static void steps(cluster *c, unsigned n)
{
    for (unsigned k = 0; k < n; k++) {
        raft_fixture_step(&c->f);
        barrier_if_elected(c);
    }
}

typedef struct proposal {
    struct raft_apply req;
    cluster *c;
    size_t commands; /* how many commands the entry holds (0: none, no result) */
} proposal;

static void proposal_done(struct raft_apply *req, int status, void *result)
{
    proposal *p = req->data;
    if (status == 0 && p->commands > 0) {
        /* The proposer's results are its own entry's, one per command: the
         * ones the first node to apply that index recorded. */
        const cs_replica_results *out = result;
        cr_assert_not_null(out);
        cr_assert_eq(out->n, p->commands, "proposal at %llu: %zu results for %zu commands",
                     (unsigned long long)req->index, out->n, p->commands);
        for (size_t k = 0; k < out->n; k++) {
            const seen *s = &p->c->results[req->index * GROUP_MAX + k];
            cr_assert(s->set && s->status == out->res[k].status &&
                          s->version == out->res[k].version,
                      "proposal at %llu got another entry's result",
                      (unsigned long long)req->index);
        }
        p->c->answered++;
        p->c->commands += out->n;
    }
    free(p);
}

/* Append an entry on the leader, if there is one and it may append now
 * (the runtime's discipline: cs_replica_may_append); false otherwise. */
static bool propose_entry(cluster *c, void *base, size_t len, size_t commands)
{
    unsigned l = raft_fixture_leader_index(&c->f);
    if (l >= c->n || !cs_replica_may_append(raft_fixture_get(&c->f, l))) {
        raft_free(base);
        return false;
    }
    proposal *p = calloc(1, sizeof *p);
    cr_assert_not_null(p);
    p->c = c;
    p->commands = commands;
    p->req.data = p;
    struct raft_buffer buf = {base, len};
    if (raft_apply(raft_fixture_get(&c->f, l), &p->req, &buf, 1, proposal_done) != 0) {
        raft_free(base);
        free(p);
        c->refused_here++;
        return false;
    }
    c->proposed++;
    return true;
}

/* Step until the leader may append, then append; false if it never may. */
static bool propose_entry_soon(cluster *c, void *base, size_t len)
{
    for (int k = 0; k < 2000; k++) {
        unsigned l = raft_fixture_leader_index(&c->f);
        if (l < c->n && cs_replica_may_append(raft_fixture_get(&c->f, l)))
            return propose_entry(c, base, len, 0);
        steps(c, 1);
    }
    raft_free(base);
    return false;
}

static bool propose(cluster *c)
{
    unsigned l = raft_fixture_leader_index(&c->f);
    if (l >= c->n || !cs_replica_may_append(raft_fixture_get(&c->f, l)))
        return false;
    /* A group of 1 to GROUP_MAX commands in one entry, as the writer
     * proposes them, or now and then one command in the entry of builds
     * before groups (still applied). Commands of a group are built on the
     * same snapshot: a later one may be refused for what an earlier one
     * did, the same way on every node. */
    bool single = below(c, 4) == 0;
    size_t n = single ? 1 : 1 + below(c, GROUP_MAX);
    cs_command cmds[GROUP_MAX];
    const cs_command *props[GROUP_MAX];
    cs_txn t[GROUP_MAX];
    memset(t, 0, sizeof t);
    for (size_t k = 0; k < n; k++) {
        build(c, cs_replica_fsm_store(c->nodes[l].fsm), &cmds[k], &t[k]);
        props[k] = &cmds[k];
    }
    void *base;
    size_t len;
    cs_error err = {0};
    int rc = single ? cs_replica_entry_command(&cmds[0], &base, &len, &err)
                    : cs_replica_entry_commands(props, n, &base, &len, &err);
    cr_assert_eq(rc, CS_OK, "%s", err.msg);
    for (size_t k = 0; k < n; k++) {
        cs_command_free(&cmds[k]);
        cs_txn_free(&t[k]);
    }
    return propose_entry(c, base, len, n);
}

static void propose_compact(cluster *c)
{
    unsigned l = raft_fixture_leader_index(&c->f);
    if (l >= c->n)
        return;
    uint64_t v = ts_version(cs_replica_fsm_store(c->nodes[l].fsm));
    void *base;
    size_t len;
    cs_error err = {0};
    cr_assert_eq(cs_replica_entry_compact(v > 5 ? v - 5 : 0, &base, &len, &err), CS_OK);
    propose_entry(c, base, len, 0);
}

/* ---- the checks ------------------------------------------------------------------- */

/* Heal everything, then append one more command and step until every node
 * has applied it. */
static void settle(cluster *c)
{
    for (unsigned i = 0; i < c->n; i++) {
        if (!raft_fixture_alive(&c->f, i))
            raft_fixture_revive(&c->f, i);
        raft_fixture_set_network_latency(&c->f, i, 15);
        for (unsigned j = 0; j < c->n; j++) {
            if (i == j)
                continue;
            raft_fixture_reconnect(&c->f, i, j);
            raft_fixture_desaturate(&c->f, i, j);
        }
    }
    bool ok = false;
    for (int tries = 0; tries < 200 && !ok; tries++) {
        cr_assert(raft_fixture_step_until_has_leader(&c->f, 60000), "no leader after healing");
        barrier_if_elected(c);
        if (!propose(c)) {
            steps(c, 20);
            continue;
        }
        unsigned l = raft_fixture_leader_index(&c->f);
        raft_index last = raft_last_index(raft_fixture_get(&c->f, l));
        ok = raft_fixture_step_until_applied(&c->f, c->n, last, 60000);
    }
    cr_assert(ok, "the nodes did not all apply the last entry");
}

static const cs_db all_dbs[] = {CS_DB_META, CS_DB_MACHINES, CS_DB_MACHINE_NAMES, CS_DB_JOBS,
                                CS_DB_JOB_NAMES, CS_DB_TASKS, CS_DB_LOG};

static void same_stores(cluster *c)
{
    uint8_t *first;
    size_t nfirst;
    ts_dump_dbs(cs_replica_fsm_store(c->nodes[0].fsm), all_dbs, 7, &first, &nfirst);
    for (unsigned i = 1; i < c->n; i++) {
        uint8_t *d;
        size_t n;
        ts_dump_dbs(cs_replica_fsm_store(c->nodes[i].fsm), all_dbs, 7, &d, &n);
        cr_assert_eq(n, nfirst, "node %u's store is %zu bytes, node 0's %zu", i, n, nfirst);
        cr_assert_arr_eq(d, first, n, "node %u's store differs from node 0's", i);
        free(d);
    }
    free(first);
    char why[256];
    for (unsigned i = 0; i < c->n; i++)
        cr_assert(ts_check_invariants(cs_replica_fsm_store(c->nodes[i].fsm), why, sizeof why),
                  "node %u: %s", i, why);
}

/* ---- the scenarios ---------------------------------------------------------------- */

/* One randomized run: a seed decides every fault and every command. */
static void chaos(uint64_t seed)
{
    cluster c;
    cluster_start(&c, 3, seed, 64, 16);
    cr_assert(raft_fixture_step_until_has_leader(&c.f, 10000));
    for (int round = 0; round < 3000; round++) {
        unsigned a = below(&c, 3), b = below(&c, 3);
        switch (below(&c, 24)) {
        case 0:
            if (a != b)
                raft_fixture_disconnect(&c.f, a, b);
            break;
        case 1:
            if (a != b)
                raft_fixture_reconnect(&c.f, a, b);
            break;
        case 2:
            if (a != b)
                raft_fixture_saturate(&c.f, a, b); /* messages dropped */
            break;
        case 3:
            if (a != b)
                raft_fixture_desaturate(&c.f, a, b);
            break;
        case 4: {
            /* At most one node down at a time, so that a majority stays. */
            bool any_dead = false;
            for (unsigned i = 0; i < 3; i++)
                any_dead |= !raft_fixture_alive(&c.f, i);
            if (!any_dead)
                raft_fixture_kill(&c.f, a);
            break;
        }
        case 5:
            for (unsigned i = 0; i < 3; i++)
                if (!raft_fixture_alive(&c.f, i))
                    raft_fixture_revive(&c.f, i);
            break;
        case 6:
            raft_fixture_set_network_latency(&c.f, a, 5 + below(&c, 200)); /* delayed */
            break;
        case 7:
            propose_compact(&c);
            break;
        default:
            propose(&c);
            break;
        }
        steps(&c, 1 + below(&c, 30));
    }
    settle(&c);
    same_stores(&c);
    cr_log_info("seed %llx: %u entries proposed, %u answered holding %u commands",
                (unsigned long long)seed, c.proposed, c.answered, c.commands);
    cr_assert_gt(c.commands, 200, "only %u commands were answered (in %u entries)", c.commands,
                 c.answered);
    cluster_free(&c);
}

TestSuite(replica, .init = ts_tmp_setup, .fini = ts_tmp_teardown, .timeout = 300);

/* Seeds are fixed; any change to what a run draws gives each seed other
 * faults. One that was dropped (0xbeef, once proposals became groups)
 * tripped a bug of libraft 0.15's in-memory fixture, not of the replica:
 * after a snapshot install empties a node's fixture log, ioMethodTruncate
 * still counts the log from index 1 and copies past its end (fixture.c;
 * raft_uv, which cellstated runs on, keeps its own first index). ASan
 * reports it as a heap-buffer-overflow inside raft_fixture_step. */
Test(replica, chaos_seed_1) { chaos(0x1); }
Test(replica, chaos_seed_2) { chaos(0xbeef1); }
Test(replica, chaos_seed_3) { chaos(0x5eed5eed); }
Test(replica, chaos_seed_4) { chaos(0x31415926); }

/* A node cut off while the others append far past the snapshot threshold
 * and trailing: the leader's log no longer has what it lacks, so it must
 * install a snapshot (a compacting LMDB copy), then go on from the log. */
Test(replica, a_lagging_node_catches_up_by_installing_a_snapshot)
{
    cluster c;
    cluster_start(&c, 3, 0xabc, 16, 4);
    cr_assert(raft_fixture_step_until_has_leader(&c.f, 10000));
    for (int i = 0; i < 10; i++) {
        propose(&c);
        steps(&c, 10);
    }
    unsigned l = raft_fixture_leader_index(&c.f);
    unsigned lag = (l + 1) % 3;
    raft_fixture_kill(&c.f, lag);
    for (int i = 0; i < 120; i++) {
        if (!propose(&c))
            cr_assert(raft_fixture_step_until_has_leader(&c.f, 10000));
        steps(&c, 8);
    }
    struct raft *lr = raft_fixture_get(&c.f, raft_fixture_leader_index(&c.f));
    cr_assert_gt(lr->log.snapshot.last_index, c.nodes[lag].last,
                 "the leader's snapshot (%llu, %u proposed, %u answered) should be past what "
                 "the lagging node has (%llu)",
                 (unsigned long long)lr->log.snapshot.last_index, c.proposed, c.answered,
                 (unsigned long long)c.nodes[lag].last);
    settle(&c);
    cr_assert_geq(c.nodes[lag].restores, 1, "node %u caught up without a snapshot", lag);
    same_stores(&c);
    cluster_free(&c);
}

/* A member entry: recorded in every store, carried by snapshots. */
Test(replica, member_entries_are_replicated_into_every_store)
{
    cluster c;
    cluster_start(&c, 3, 0x77, 16, 4);
    cr_assert(raft_fixture_step_until_has_leader(&c.f, 10000));
    cs_member m = {.id = 9, .listen = "tcp://127.0.0.1:7609", .raft = "127.0.0.1:7619"};
    cs_member k = {.id = 4, .listen = "tcp://127.0.0.1:7604", .raft = "127.0.0.1:7614"};
    void *base;
    size_t len;
    cs_error err = {0};
    cr_assert_eq(cs_replica_entry_member_put(&m, &base, &len, &err), CS_OK);
    cr_assert(propose_entry_soon(&c, base, len));
    cr_assert_eq(cs_replica_entry_member_put(&k, &base, &len, &err), CS_OK);
    cr_assert(propose_entry_soon(&c, base, len));
    cr_assert_eq(cs_replica_entry_member_remove(9, &base, &len, &err), CS_OK);
    cr_assert(propose_entry_soon(&c, base, len));
    settle(&c);
    for (unsigned i = 0; i < 3; i++) {
        size_t n;
        const cs_member *v = cs_replica_fsm_members(c.nodes[i].fsm, &n);
        cr_assert_eq(n, 1, "node %u holds %zu members", i, n);
        cr_assert_eq(v[0].id, 4);
        cr_assert_str_eq(v[0].listen, k.listen);
        cr_assert_str_eq(v[0].raft, k.raft);
    }
    same_stores(&c);
    cluster_free(&c);
}

/* ---- the cluster file --------------------------------------------------------------- */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static int load(const char *text, cs_member **v, size_t *n, cs_error *err)
{
    char path[512];
    snprintf(path, sizeof path, "%s/cluster.json", ts_tmp);
    write_file(path, text);
    return cs_members_load(path, v, n, err);
}

Test(replica, the_cluster_file_is_read_and_its_mistakes_named)
{
    cs_member *v;
    size_t n;
    cs_error err = {0};
    cr_assert_eq(load(" [ {\"raft\": \"127.0.0.1:7610\", \"id\": 1,\n"
                      "    \"listen\":\"tcp://127.0.0.1:7600\"},\n"
                      "  {\"id\":2,\"listen\":\"tcp://127.0.0.1:7601\",\"raft\":\"h\\/x:7611\"} ]\n",
                      &v, &n, &err),
                 CS_OK, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_assert_eq(v[0].id, 1);
    cr_assert_str_eq(v[0].listen, "tcp://127.0.0.1:7600");
    cr_assert_str_eq(v[0].raft, "127.0.0.1:7610");
    cr_assert_str_eq(v[1].raft, "h/x:7611");
    free(v);

    static const struct {
        const char *text, *says;
    } bad[] = {
        {"[]", "no members"},
        {"[{\"id\":1,\"listen\":\"a\"}]", "member 1"},
        {"[{\"id\":0,\"listen\":\"a\",\"raft\":\"h:1\"}]", "above 0"},
        {"[{\"id\":1,\"listen\":\"a\",\"raft\":\"h:1\"},{\"id\":1,\"listen\":\"b\",\"raft\":\"h:2\"}]",
         "member 2: its id"},
        {"[{\"id\":1,\"listen\":\"a\",\"raft\":\"h:1\"},{\"id\":2,\"listen\":\"b\",\"raft\":\"h:1\"}]",
         "\"raft\" is another"},
        {"[{\"id\":1,\"listen\":\"a\",\"raft\":\"nocolon\"}]", "host:port"},
        {"[{\"id\":1,\"listen\":\"a\",\"raft\":\"h:1\",\"rafts\":\"x\"}]", "unknown"},
        {"[{\"id\":1,\"listen\":\"a\",\"raft\":\"h:1\"}] x", "after the array"},
        {"[{\"id\":1,\"listen\":\"a\",\"raft\":\"h:1\"}", "expected ',' or ']'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cs_error e = {0};
        cr_assert_eq(load(bad[i].text, &v, &n, &e), CS_EINVAL, "case %zu accepted", i);
        cr_assert_not_null(strstr(e.msg, bad[i].says), "case %zu: '%s' lacks '%s'", i, e.msg,
                           bad[i].says);
        cr_assert_not_null(strstr(e.msg, "cluster.json"), "the message names the file");
    }
    char longer[512];
    snprintf(longer, sizeof longer, "[{\"id\":1,\"listen\":\"a\",\"raft\":\"%0100d:1\"}]", 0);
    cr_assert_eq(load(longer, &v, &n, &err), CS_EINVAL);
    cr_assert_not_null(strstr(err.msg, "longer than"), "%s", err.msg);
    cr_assert_eq(cs_members_load("/nonexistent/cluster.json", &v, &n, &err), CS_EIO);
    cr_assert_not_null(strstr(err.msg, "/nonexistent/cluster.json"));
}

/* ---- the runtime on raft_uv: three replicas in this process -------------------------- */

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>

#define LIVE_MAX 4

/* One member: its replica (NULL while stopped), its directories, and what
 * its hooks saw over all its lives (the replica's thread writes, the test
 * reads after a wait: the counters are atomic). */
typedef struct live {
    cs_member m;
    char raft_dir[512], store_dir[512];
    cs_replica *r;
    _Atomic uint8_t *seen;
    atomic_bool twice;
    atomic_uint restores;
    unsigned election_ms, heartbeat_ms; /* 0: 500 and 50 */
} live;

static void live_applied(void *ctx, uint64_t index, const cs_result *res, size_t n)
{
    (void)res;
    (void)n;
    live *l = ctx;
    if (index >= INDEX_MAX || atomic_fetch_add(&l->seen[index], 1) != 0)
        atomic_store(&l->twice, true);
}

static void live_restored(void *ctx, cs_store *store, uint64_t index)
{
    (void)store;
    (void)index;
    live *l = ctx;
    atomic_fetch_add(&l->restores, 1);
}

static void live_init(live *l, uint64_t id)
{
    memset(l, 0, sizeof *l);
    l->m.id = id;
    snprintf(l->m.listen, sizeof l->m.listen, "tcp://127.0.0.1:%d", ts_free_port());
    snprintf(l->m.raft, sizeof l->m.raft, "127.0.0.1:%d", ts_free_port());
    snprintf(l->raft_dir, sizeof l->raft_dir, "%s/m%llu/raft", ts_tmp, (unsigned long long)id);
    snprintf(l->store_dir, sizeof l->store_dir, "%s/m%llu/cell", ts_tmp,
             (unsigned long long)id);
    l->seen = calloc(INDEX_MAX, 1);
    cr_assert_not_null(l->seen);
}

/* Start member l of the cell `members` (l itself may be outside them: a
 * member that joins). */
static void live_start(live *l, const cs_member *members, size_t n)
{
    cs_replica_opts o = {
        .id = l->m.id,
        .members = members,
        .nmembers = n,
        .raft_addr = l->m.raft,
        .raft_dir = l->raft_dir,
        .store_dir = l->store_dir,
        .store_opts = {.map_size = (size_t)64 << 20},
        .election_timeout_ms = l->election_ms ? l->election_ms : 500,
        .heartbeat_timeout_ms = l->heartbeat_ms ? l->heartbeat_ms : 50,
        .snapshot_threshold = 32,
        .snapshot_trailing = 8,
        .install_snapshot_timeout_ms = 2000,
    };
    cs_replica_hooks h = {.ctx = l, .applied = live_applied, .restored = live_restored};
    cs_error err = {0};
    cr_assert_eq(cs_replica_start(&o, &h, &l->r, &err), CS_OK, "member %llu: %s",
                 (unsigned long long)l->m.id, err.msg);
}

static void live_stop(live *l)
{
    cs_replica_stop(l->r);
    l->r = NULL;
}

static cs_replica_status live_status(live *l)
{
    cs_replica_status st;
    cs_error err = {0};
    cr_assert_eq(cs_replica_status_get(l->r, &st, &err), CS_OK, "%s", err.msg);
    return st;
}

/* The running member that leads (and is known as leader by itself), within
 * a generous bound. */
static live *await_leader(live *v, size_t n)
{
    for (int64_t end = ts_now_ms() + 30000; ts_now_ms() < end; ts_sleep_ms(20)) {
        for (size_t i = 0; i < n; i++) {
            if (v[i].r == NULL)
                continue;
            cs_replica_status st = live_status(&v[i]);
            free(st.members);
            if (st.role == CS_ROLE_LEADER)
                return &v[i];
        }
    }
    cr_assert_fail("no leader within 30 s");
    return NULL;
}

/* The proposals of one round, and what their callbacks said. */
typedef struct batch {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned pending, failed;
    uint64_t max_index;
    char msg[CS_ERROR_MSG_SIZE];
} batch;

typedef struct proposed {
    batch *b;
    bool done, retry;
} proposed;

static void batch_done(void *arg, int rc, uint64_t index, cs_result *res, size_t n,
                       const char *msg)
{
    proposed *p = arg;
    batch *b = p->b;
    pthread_mutex_lock(&b->mu);
    if (rc == CS_ENOTLEADER) {
        /* Leadership moved before the entry committed (elections happen
         * on a loaded machine): it may or may not commit; a put of the
         * same machine again is harmless, so it is proposed again. */
        p->retry = true;
    } else if (rc != CS_OK || res == NULL || n != 1 || res->status != CS_OK || index == 0) {
        b->failed++;
        snprintf(b->msg, sizeof b->msg, "rc %d status %d: %.100s %.100s", rc,
                 res ? res->status : -1, msg, res ? res->message : "");
    } else {
        p->done = true;
        if (index > b->max_index)
            b->max_index = index;
    }
    b->pending--;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

/* Register machines first .. first+count-1 through whoever leads; every one
 * must be taken (proposed again when leadership moved under it). Returns
 * the highest index. */
static uint64_t put_machines(live *v, size_t n, unsigned first, unsigned count)
{
    batch b = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    proposed *ps = calloc(count, sizeof *ps);
    cr_assert_not_null(ps);
    for (unsigned k = 0; k < count; k++)
        ps[k] = (proposed){&b, false, true};
    for (int round = 0; round < 50; round++) {
        bool any = false;
        for (unsigned k = 0; k < count; k++) {
            if (!ps[k].retry)
                continue;
            any = true;
            ps[k].retry = false;
            char name[32];
            snprintf(name, sizeof name, "m%u", first + k);
            cs_machine m = {0};
            m.name = name;
            m.capacity = (cs_res){1000, 1024, 100};
            m.state = CS_MACHINE_UP;
            cs_command c;
            cs_error err = {0};
            cr_assert_eq(cs_cmd_machine_put(&c, &m, &err), CS_OK);
            pthread_mutex_lock(&b.mu);
            b.pending++;
            pthread_mutex_unlock(&b.mu);
            live *l = await_leader(v, n);
            const cs_command *one = &c;
            int rc = cs_replica_propose(l->r, &one, 1, batch_done, &ps[k], &err);
            cs_command_free(&c);
            if (rc != CS_OK) {
                /* Not queued: its role may trail its status by a turn. */
                cr_assert_eq(rc, CS_ENOTLEADER, "proposing on member %llu: %s",
                             (unsigned long long)l->m.id, err.msg);
                pthread_mutex_lock(&b.mu);
                b.pending--;
                ps[k].retry = true;
                pthread_mutex_unlock(&b.mu);
                ts_sleep_ms(20);
            }
        }
        pthread_mutex_lock(&b.mu);
        while (b.pending > 0)
            pthread_cond_wait(&b.cv, &b.mu);
        pthread_mutex_unlock(&b.mu);
        if (!any)
            break;
    }
    for (unsigned k = 0; k < count; k++)
        cr_assert(ps[k].done, "machine m%u was never taken", first + k);
    free(ps);
    cr_assert_eq(b.failed, 0, "%u proposals failed: %s", b.failed, b.msg);
    return b.max_index;
}

static void await_applied(live *l, uint64_t index)
{
    cs_error err = {0};
    cr_assert_eq(cs_replica_wait_applied(l->r, index, 30000, &err), CS_OK, "member %llu: %s",
                 (unsigned long long)l->m.id, err.msg);
}

/* Every running member's store, byte for byte, once all have applied
 * `index` (the last entry proposed: the cell is quiet). */
static void same_live_stores(live *v, size_t n, uint64_t index)
{
    uint8_t *first = NULL;
    size_t nfirst = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i].r == NULL)
            continue;
        await_applied(&v[i], index);
        uint8_t *d;
        size_t len;
        ts_dump_dbs(cs_replica_store(v[i].r), all_dbs, 7, &d, &len);
        if (first == NULL) {
            first = d;
            nfirst = len;
            continue;
        }
        cr_assert_eq(len, nfirst, "member %llu's store differs in size",
                     (unsigned long long)v[i].m.id);
        cr_assert_arr_eq(d, first, len, "member %llu's store differs",
                         (unsigned long long)v[i].m.id);
        free(d);
    }
    free(first);
}

/* cellstated ignores SIGPIPE (a peer that went away must not kill it):
 * raft_uv writes to the sockets of members the test stops. */
static void uv_setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    ts_tmp_setup();
}

TestSuite(replica_uv, .init = uv_setup, .fini = ts_tmp_teardown, .timeout = 300);

Test(replica_uv, three_replicas_fail_over_change_members_and_rebuild_from_snapshots)
{
    live v[LIVE_MAX];
    for (unsigned i = 0; i < LIVE_MAX; i++)
        live_init(&v[i], i + 1);
    cs_member members[3] = {v[0].m, v[1].m, v[2].m};
    for (unsigned i = 0; i < 3; i++)
        live_start(&v[i], members, 3);

    /* A leader emerges; proposals return results with their indexes;
     * followers reach them (wait_applied). */
    uint64_t last = put_machines(v, 3, 0, 20);
    cr_assert_gt(last, 0);
    for (unsigned i = 0; i < 3; i++)
        await_applied(&v[i], last);

    /* Stop the leader: another is elected and proposals resume. */
    live *old = await_leader(v, 3);
    live_stop(old);
    live *next = await_leader(v, 3);
    cr_assert_neq(next, old);
    last = put_machines(v, 3, 20, 20);

    /* Restart it from its data directory: it catches up and applies no
     * index twice over its two lives. */
    live_start(old, members, 3);
    await_applied(old, last);

    /* A fourth member joins (it is not in the cluster file), becomes a
     * voter, and is removed again. */
    live_start(&v[3], members, 3);
    cs_error err = {0};
    live *l = await_leader(v, 4);
    cr_assert_eq(cs_replica_add(l->r, &v[3].m, 30000, &err), CS_OK, "%s", err.msg);
    last = put_machines(v, 4, 40, 5);
    await_applied(&v[3], last);
    cs_replica_status st = live_status(&v[3]);
    cr_assert_eq(st.nmembers, 4, "the new member sees %zu members", st.nmembers);
    bool voter = false;
    for (size_t i = 0; i < st.nmembers; i++) {
        if (st.members[i].m.id == 4) {
            voter = st.members[i].voter;
            cr_assert_str_eq(st.members[i].m.listen, v[3].m.listen);
        }
        if (st.members[i].m.id == 1)
            cr_assert_str_eq(st.members[i].m.listen, v[0].m.listen,
                             "the initial members' addresses reach a member added later");
    }
    cr_assert(voter, "member 4 did not become a voter");
    free(st.members);
    l = await_leader(v, 4);
    if (l == &v[3]) {
        cr_assert_eq(cs_replica_transfer(l->r, 0, 30000, &err), CS_OK, "%s", err.msg);
        l = await_leader(v, 3);
    }
    cr_assert_eq(cs_replica_remove(l->r, 4, 30000, &err), CS_OK, "%s", err.msg);
    live_stop(&v[3]);

    /* Hand leadership to a chosen follower. */
    l = await_leader(v, 3);
    live *target = &v[(l - v + 1) % 3];
    cr_assert_eq(cs_replica_transfer(l->r, target->m.id, 30000, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(await_leader(v, 3), target, "leadership did not move to member %llu",
                 (unsigned long long)target->m.id);

    /* Far past the snapshot threshold, then a follower with an empty data
     * directory: it is rebuilt from a snapshot. */
    last = put_machines(v, 3, 45, 80);
    live *wiped = &v[(target - v + 1) % 3];
    live_stop(wiped);
    char dir[600];
    snprintf(dir, sizeof dir, "%s/m%llu", ts_tmp, (unsigned long long)wiped->m.id);
    ts_rmtree(dir);
    memset((void *)wiped->seen, 0, INDEX_MAX);
    unsigned restores = atomic_load(&wiped->restores);
    live_start(wiped, members, 3);
    last = put_machines(v, 3, 125, 5);
    await_applied(wiped, last);
    cr_assert_gt(atomic_load(&wiped->restores), restores, "the wiped member was not restored "
                                                          "from a snapshot");
    same_live_stores(v, 3, last);

    for (unsigned i = 0; i < LIVE_MAX; i++) {
        if (v[i].r != NULL)
            live_stop(&v[i]);
        cr_assert(!atomic_load(&v[i].twice), "member %u applied an index twice", i + 1);
        free((void *)v[i].seen);
    }
}

/* A store written by a single cellstated (commands, no applied index) is
 * refused: the other members do not have its cell. */
Test(replica_uv, a_store_written_outside_the_log_is_refused)
{
    live l;
    live_init(&l, 1);
    cs_error err = {0};
    cr_assert_eq(cs_mkdir_p(l.store_dir, &err), CS_OK);
    cs_store *s;
    cs_store_opts so = {.map_size = (size_t)64 << 20, .nosync = true};
    cr_assert_eq(cs_store_open(l.store_dir, &so, &s, &err), CS_OK, "%s", err.msg);
    ts_machine(s, "m1", 1000, 1024, 100, 0, 0, NULL, 0);
    cs_store_close(s);
    cs_replica_opts o = {.id = 1,
                         .members = &l.m,
                         .nmembers = 1,
                         .raft_dir = l.raft_dir,
                         .store_dir = l.store_dir,
                         .store_opts = so};
    cs_replica *r = NULL;
    cr_assert_eq(cs_replica_start(&o, NULL, &r, &err), CS_ESTATE);
    cr_assert_not_null(strstr(err.msg, "empty directory"), "%s", err.msg);
    free((void *)l.seen);
}

/* A cell of one: it elects itself, and its proposals commit on its own
 * disk write alone. */
/* A cell of three members v[0..3) (timeouts in ms, 0: live_start's), a
 * leader elected and `nmachines` machines registered and applied on all:
 * the last index. */
static uint64_t live_cell3(live *v, unsigned election_ms, unsigned heartbeat_ms,
                           unsigned nmachines)
{
    for (unsigned i = 0; i < 3; i++) {
        live_init(&v[i], i + 1);
        v[i].election_ms = election_ms;
        v[i].heartbeat_ms = heartbeat_ms;
    }
    cs_member members[3] = {v[0].m, v[1].m, v[2].m};
    for (unsigned i = 0; i < 3; i++)
        live_start(&v[i], members, 3);
    uint64_t last = put_machines(v, 3, 0, nmachines);
    for (unsigned i = 0; i < 3; i++)
        await_applied(&v[i], last);
    return last;
}

/* Stop live_cell3's members; none applied an index twice. */
static void live_stop3(live *v)
{
    for (unsigned i = 0; i < 3; i++) {
        live_stop(&v[i]);
        cr_assert(!atomic_load(&v[i].twice));
        free((void *)v[i].seen);
    }
}

/* Whether TCP port `port` is one of the members' Raft ports. */
static bool is_raft_port(const live *v, size_t n, unsigned port)
{
    for (size_t i = 0; i < n; i++) {
        const char *colon = strrchr(v[i].m.raft, ':');
        if (colon != NULL && (unsigned)atoi(colon + 1) == port)
            return true;
    }
    return false;
}

/* Every Raft connection of the members (all in this process: its sockets
 * whose own or peer port is a member's Raft port) has Nagle's algorithm
 * off: with it on, a follower's run of small replies waited for delayed
 * acknowledgements, up to 40 ms a round (replica.c, the transport). */
Test(replica_uv, raft_connections_have_nagle_off)
{
    live v[3];
    live_cell3(v, 0, 0, 5);
    unsigned raft_socks = 0, nagle_on = 0;
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int fd = atoi(e->d_name);
        struct stat st;
        if (e->d_name[0] == '.' || fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode))
            continue;
        struct sockaddr_in self, peer;
        socklen_t ls = sizeof self, lp = sizeof peer;
        if (getsockname(fd, (struct sockaddr *)&self, &ls) != 0 || self.sin_family != AF_INET ||
            getpeername(fd, (struct sockaddr *)&peer, &lp) != 0)
            continue; /* not TCP over IPv4, or a listener */
        if (!is_raft_port(v, 3, ntohs(self.sin_port)) && !is_raft_port(v, 3, ntohs(peer.sin_port)))
            continue;
        int on = 0;
        socklen_t lo = sizeof on;
        cr_assert_eq(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &lo), 0);
        raft_socks++;
        nagle_on += on == 0;
    }
    closedir(d);
    cr_assert_geq(raft_socks, 4, "only %u Raft connections found", raft_socks);
    cr_assert_eq(nagle_on, 0, "%u of %u Raft connections have Nagle's algorithm on", nagle_on,
                 raft_socks);
    live_stop3(v);
}

/* A follower learns the commit index from the leader's next message. With
 * heartbeats 3 s apart, every proposal must still be applied on both
 * followers within 1 s of its commit: the leader announces each commit at
 * once (announce_commit). Without it, five proposals in a row would each
 * have to fall within 1 s before a heartbeat: about 1 chance in 250. */
Test(replica_uv, followers_apply_a_commit_without_waiting_for_a_heartbeat)
{
    live v[3];
    uint64_t last = live_cell3(v, 5000, 3000, 1);
    for (unsigned k = 1; k <= 5; k++) {
        last = put_machines(v, 3, k, 1);
        for (unsigned i = 0; i < 3; i++) {
            cs_error err = {0};
            cr_assert_eq(cs_replica_wait_applied(v[i].r, last, 1000, &err), CS_OK,
                         "proposal %u: member %u did not apply index %llu within 1 s: %s", k,
                         i + 1, (unsigned long long)last, err.msg);
        }
    }
    live_stop3(v);
}

Test(replica_uv, a_cell_of_one_member_takes_proposals)
{
    live l;
    live_init(&l, 1);
    live_start(&l, &l.m, 1);
    uint64_t last = put_machines(&l, 1, 0, 10);
    await_applied(&l, last);
    cs_replica_status st = live_status(&l);
    cr_assert_eq(st.role, CS_ROLE_LEADER);
    cr_assert_eq(st.leader, 1);
    cr_assert_str_eq(st.leader_listen, l.m.listen);
    cr_assert_geq(st.applied_index, last);
    free(st.members);
    live_stop(&l);
    cr_assert(!atomic_load(&l.twice));
    free((void *)l.seen);
}
