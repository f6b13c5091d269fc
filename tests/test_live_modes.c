/* test_live_modes.c — issue 15 §7: the schedulers in the modes Omega
 * compares, on a live cell.
 *
 * live_local: the loop under offers on the local port (port.h's in-process
 * twin of cellstated --concurrency offers): the port's lease, and the loop
 * bracketing its rounds by it. Options: --monolithic, --multipath,
 * --offers as the command line gives them.
 *
 * live: real cell-batch and cell-service processes against a real
 * cellstated on 127.0.0.1 (tests/support.h), machines registered through
 * the client and never running anything: both kinds placed under the
 * offer, a scheduler without --offers refused by a cell that makes them,
 * and one monolithic process placing both kinds.
 */
#include <criterion/criterion.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "proto/client.h"
#include "schedulers/kinds.h"
#include "schedulers/port.h"
#include "schedulers/sched.h"
#include "tests/support.h"

/* ---- options -------------------------------------------------------------------------- */

static int parse(cs_sched_kind kind, cs_sched_opts *o, cs_error *err, ...)
{
    const char *argv[16] = {"sched"};
    int n = 1;
    va_list ap;
    va_start(ap, err);
    const char *a;
    while (n < 15 && (a = va_arg(ap, const char *)) != NULL)
        argv[n++] = a;
    va_end(ap);
    bool help;
    return cs_sched_opts_parse(kind, n, (char **)argv, o, &help, err);
}

Test(live_local, the_modes_on_the_command_line)
{
    cs_sched_opts o;
    cs_error err = {0};
    cr_assert_eq(parse(CS_SCHED_BATCH, &o, &err, "--monolithic", "--t-job", "2", NULL), CS_OK,
                 "%s", err.msg);
    cr_assert(o.monolithic);
    cr_assert_not(o.per_kind_times, "single-path: one decision time for every job");
    cr_assert_str_eq(o.name, "monolithic");
    cr_assert_not(o.offers);

    cr_assert_eq(parse(CS_SCHED_BATCH, &o, &err, "--multipath", "--t-job", "0.01",
                       "--t-job-service", "5", "--t-task-service", "1ms", "--offers", NULL),
                 CS_OK, "%s", err.msg);
    cr_assert(o.monolithic && o.per_kind_times);
    cr_assert_float_eq(o.t_job_s, 0.01, 1e-9);
    cr_assert_float_eq(o.t_job_service_s, 5, 1e-9);
    cr_assert_float_eq(o.t_task_service_s, 0.001, 1e-9);
    cr_assert(o.offers);

    cr_assert_eq(parse(CS_SCHED_BATCH, &o, &err, "--t-job-service", "5", NULL), CS_EINVAL);
    cr_assert(strstr(err.msg, "only with --multipath") != NULL, "%s", err.msg);
    cr_assert_eq(parse(CS_SCHED_SERVICE, &o, &err, "--monolithic", NULL), CS_EINVAL);
    cr_assert(strstr(err.msg, "cell-batch --monolithic") != NULL, "%s", err.msg);
}

/* ---- the local port's offer ------------------------------------------------------------- */

#define VSTART_NS INT64_C(1000000000)
#define VWALL_MS ((int64_t)TS_SUBMITTED_MS + 1000)

Test(live_local, the_local_port_grants_one_lease_at_a_time)
{
    ts_store st;
    ts_store_create(&st);
    cs_port_local *lp;
    cs_error err = {0};
    cr_assert_eq(cs_port_local_new(st.s, VSTART_NS, VWALL_MS, &lp, &err), CS_OK, "%s", err.msg);
    const cs_sched_port *p = cs_port_local_table(lp);
    cs_res none = {0, 0, 0};
    bool granted = true;
    /* Without offers, an acquire is refused, naming why. */
    cr_assert_eq(p->acquire(p->ctx, "a", &none, 0, &granted, &err), CS_ESTATE);
    cr_assert_not(granted);
    cs_port_local_offers(lp, INT64_C(5000000000));

    cs_id m = ts_machine(st.s, "m0", 2000, 4096, 1000, 0, 0, NULL, 0);
    cs_id job = ts_job(st.s, "j", CS_JOB_BATCH, 0, 2, 500, 64, 0, NULL, 0);
    cs_txn t;
    cs_txn_init(&t, 1, 1, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    cs_res r = {500, 64, 0};
    cs_txn_add_claim(&t, cs_task_id(job, 0), m, &r, NULL, 0, 0);
    cs_txn_result res;
    cs_txn_result_init(&res);
    cr_assert_eq(p->commit(p->ctx, &t, &res, &err), CS_ESTATE, "a commit outside the offer");
    cr_assert(strstr(err.msg, "commit outside an offer") != NULL, "%s", err.msg);

    cr_assert_eq(p->acquire(p->ctx, "a", &none, 0, &granted, &err), CS_OK, "%s", err.msg);
    cr_assert(granted);
    cr_assert_eq(p->acquire(p->ctx, "b", &none, 0, &granted, &err), CS_OK, "%s", err.msg);
    cr_assert_not(granted, "b was granted the offer a holds");
    cr_assert_eq(p->commit(p->ctx, &t, &res, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(res.committed, 1);

    /* a never gives it back: 5 s of the virtual clock later, b gets it. */
    cs_port_local_advance(lp, INT64_C(5000000000));
    cr_assert_eq(p->acquire(p->ctx, "b", &none, 0, &granted, &err), CS_OK, "%s", err.msg);
    cr_assert(granted, "the expired lease was not taken back");
    cr_assert_eq(p->release(p->ctx, &err), CS_OK, "%s", err.msg);
    cs_port_local_counts k;
    cs_port_local_counts_get(lp, &k);
    cr_assert_eq(k.grants, 2);
    cr_assert_eq(k.refusals, 1);

    cs_txn_result_free(&res);
    cs_txn_free(&t);
    cs_port_local_free(lp);
    ts_store_destroy(&st);
}

/* The loop with --offers brackets each round by the offer: on a port that
 * makes offers it places everything, each commit under a lease. */
Test(live_local, the_loop_runs_its_rounds_under_the_offer)
{
    ts_store st;
    ts_store_create(&st);
    cs_port_local *lp;
    cs_error err = {0};
    cr_assert_eq(cs_port_local_new(st.s, VSTART_NS, VWALL_MS, &lp, &err), CS_OK, "%s", err.msg);
    cs_port_local_offers(lp, INT64_C(30000000000));
    ts_machine(st.s, "m0", 4000, 4096, 1000, 0, 0, NULL, 0);
    cs_id web = ts_job(st.s, "web", CS_JOB_SERVICE, 0, 2, 1000, 64, 0, NULL, 0);
    cs_id crunch = ts_job(st.s, "crunch", CS_JOB_BATCH, 0, 2, 500, 64, 0, NULL, 0);
    cs_sched_opts o;
    cr_assert_eq(parse(CS_SCHED_BATCH, &o, &err, "--monolithic", "--offers", "--once", "--seed",
                       "7", "--idle-ms", "10", NULL),
                 CS_OK, "%s", err.msg);
    cs_sched *s;
    cr_assert_eq(cs_sched_new(&o, &cs_sched_all_hooks, cs_port_local_table(lp), &s, &err), CS_OK,
                 "%s", err.msg);
    volatile sig_atomic_t stop = 0;
    cr_assert_eq(cs_sched_run(s, &stop, &err), CS_OK, "%s", err.msg);
    cs_port_local_counts k;
    cs_port_local_counts_get(lp, &k);
    cr_assert_eq(k.committed, 4, "both kinds placed from one scheduler: %llu",
                 (unsigned long long)k.committed);
    cr_assert_geq(k.grants, 1);
    cr_assert_eq(k.refusals, 0);
    cs_arena a;
    cs_arena_init(&a);
    for (uint32_t i = 0; i < 2; i++) {
        cs_task t;
        ts_get_task(st.s, cs_task_id(web, i), &a, &t);
        cr_assert_eq(t.state, CS_TASK_ASSIGNED);
        ts_get_task(st.s, cs_task_id(crunch, i), &a, &t);
        cr_assert_eq(t.state, CS_TASK_ASSIGNED);
    }
    cs_arena_free(&a);
    cs_sched_free(s);
    cs_port_local_free(lp);
    ts_store_destroy(&st);
}

/* ---- live: real processes ------------------------------------------------------------- */

TestSuite(live, .timeout = 120);

typedef struct live {
    ts_daemon d;
    int pids[4];
    char logs[4][320];
    int n;
} live;

/* Start `prog` named `name` against the cell with quick intervals and the
 * extra arguments (NULL-terminated). Its log: l->logs[i]. */
static int start(live *l, const char *prog, const char *name, ...)
{
    cr_assert_lt(l->n, 4);
    int i = l->n++;
    char dir[sizeof l->d.dir];
    memcpy(dir, l->d.dir, sizeof dir);
    snprintf(l->logs[i], sizeof l->logs[i], "%s/%s.log", dir, name);
    char bin[256];
    ts_bin(prog, bin, sizeof bin);
    const char *argv[32] = {bin,         "--server",     l->d.url, "--name",   name,
                            "--idle-ms", "10",           "--report-ms", "100", "--timeout-ms",
                            "5000",      "--seed",       "7"};
    int n = 13;
    va_list ap;
    va_start(ap, name);
    const char *a;
    while (n < 31 && (a = va_arg(ap, const char *)) != NULL)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    l->pids[i] = ts_spawn((char *const *)argv, l->logs[i]);
    return i;
}

static void live_stop(live *l)
{
    for (int i = 0; i < l->n; i++)
        if (l->pids[i] > 0 && ts_stop(l->pids[i], SIGTERM, 10000) != 0)
            ts_log_file("scheduler", l->logs[i]);
    ts_daemon_teardown(&l->d);
}

static void register_machines(cs_client *c, int n)
{
    for (int i = 0; i < n; i++) {
        msgpack_sbuffer b;
        msgpack_sbuffer_init(&b);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
        char name[16];
        snprintf(name, sizeof name, "m%d", i);
        msgpack_pack_map(&pk, 2);
        cs_pack_kv_str(&pk, "name", name);
        cs_res cap = {4000, 4096, 10000};
        cs_pack_kv_res(&pk, "capacity", &cap);
        cs_msg r;
        cs_error err = {0};
        cr_assert_eq(cs_client_callb(c, CS_MSG_MACHINE_REGISTER, &b, &r, &err), CS_OK, "%s",
                     err.msg);
        msgpack_sbuffer_destroy(&b);
    }
}

/* Tasks of job `id` placed (assigned or running) now. */
static uint32_t placed(cs_client *c, cs_id id)
{
    ts_cell cell;
    ts_cell_read(c, &cell);
    uint32_t n = 0;
    for (size_t i = 0; i < cell.ntasks; i++)
        n += cs_task_job(cell.tasks[i].id) == id && cs_task_state_placed(cell.tasks[i].state);
    ts_cell_free(&cell);
    return n;
}

/* Wait (up to a minute) until job `id` has `want` tasks placed. */
static bool wait_placed(cs_client *c, cs_id id, uint32_t want)
{
    for (int i = 0; i < 600; i++) {
        if (placed(c, id) == want)
            return true;
        ts_sleep_ms(100);
    }
    return false;
}

/* Wait (up to 30 s) until the file at `path` holds `needle`. */
static bool wait_log(const char *path, const char *needle)
{
    for (int i = 0; i < 300; i++) {
        FILE *f = fopen(path, "r");
        if (f != NULL) {
            char line[2048];
            bool found = false;
            while (!found && fgets(line, sizeof line, f) != NULL)
                found = strstr(line, needle) != NULL;
            fclose(f);
            if (found)
                return true;
        }
        ts_sleep_ms(100);
    }
    return false;
}

static const char batch_json[] = "{\"name\": \"crunch\", \"kind\": \"batch\", \"count\": 12,"
                                 " \"cmd\": \"true\", \"resources\": {\"cpu\": 0.5, \"mem\": 64}}";
static const char service_json[] = "{\"name\": \"web\", \"kind\": \"service\", \"count\": 3,"
                                   " \"cmd\": \"true\", \"resources\": {\"cpu\": 1, \"mem\": 64}}";

/* A cell that makes offers: cell-batch and cell-service with --offers place
 * both kinds. Only commits under a lease are taken there (test_offers.c),
 * so every placement went through the offer. */
Test(live, schedulers_place_both_kinds_under_the_offer)
{
    live l = {0};
    const char *extra[] = {"--concurrency", "offers", NULL};
    ts_daemon_setupv(&l.d, extra);
    register_machines(l.d.c, 3);
    cs_id crunch = ts_submit(l.d.c, batch_json);
    cs_id web = ts_submit(l.d.c, service_json);
    start(&l, "cell-batch", "batch-0", "--offers", NULL);
    start(&l, "cell-service", "service", "--offers", NULL);
    cr_assert(wait_placed(l.d.c, crunch, 12), "batch placed under the offer: %u",
              placed(l.d.c, crunch));
    cr_assert(wait_placed(l.d.c, web, 3), "service placed under the offer: %u",
              placed(l.d.c, web));
    live_stop(&l);
}

/* A scheduler that does not ask for the offer commits nothing there, and
 * its log names why. */
Test(live, a_scheduler_without_offers_is_refused_by_a_cell_that_makes_them)
{
    live l = {0};
    const char *extra[] = {"--concurrency", "offers", NULL};
    ts_daemon_setupv(&l.d, extra);
    register_machines(l.d.c, 1);
    cs_id crunch = ts_submit(l.d.c, batch_json);
    int i = start(&l, "cell-batch", "batch-0", NULL);
    cr_assert(wait_log(l.logs[i], "commit outside an offer"), "the refusal is logged");
    cr_assert_eq(placed(l.d.c, crunch), 0);
    live_stop(&l);
}

/* Omega's monolithic scheduler: one cell-batch --monolithic places both
 * kinds; no cell-service runs. */
Test(live, one_monolithic_process_places_both_kinds)
{
    live l = {0};
    ts_daemon_setupv(&l.d, NULL);
    register_machines(l.d.c, 3);
    cs_id crunch = ts_submit(l.d.c, batch_json);
    cs_id web = ts_submit(l.d.c, service_json);
    start(&l, "cell-batch", "mono", "--multipath", "--t-job-service", "0.05", NULL);
    cr_assert(wait_placed(l.d.c, crunch, 12), "batch placed: %u", placed(l.d.c, crunch));
    cr_assert(wait_placed(l.d.c, web, 3), "service placed: %u", placed(l.d.c, web));
    live_stop(&l);
}

/* --offers against a cell that makes no offers is a mistake of the command
 * line: the scheduler exits 1 naming it instead of waiting for ever. */
Test(live, offers_against_an_optimistic_cell_exits_naming_it)
{
    live l = {0};
    ts_daemon_setupv(&l.d, NULL);
    int i = start(&l, "cell-batch", "batch-0", "--offers", NULL);
    int status = ts_stop(l.pids[i], 0, 30000);
    l.pids[i] = 0;
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1, "status %d", status);
    cr_assert(wait_log(l.logs[i], "--offers: "), "the log names the flag");
    cr_assert(wait_log(l.logs[i], "this cell runs --concurrency optimistic"),
              "the log names the mode");
    live_stop(&l);
}
