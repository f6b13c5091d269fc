/* test_rollout.c — rolling updates of service jobs (schedulers/rollout.h).
 *
 * Three tiers:
 *   - the decision as a pure function, driven through random histories of
 *     placements, health changes and failures with fixed seeds: the placed
 *     tasks never exceed ceil(N x (1 + maximumOverCapacity)), a kill the
 *     decision makes never leaves fewer than ceil(N x minimumHealthCapacity)
 *     healthy (but for Marathon's one-below edge), and every rollout ends
 *     with N tasks of the new version and no surge;
 *   - the local copy's restart in place (cs_copy_requeue) and its undo;
 *   - end to end: cellstated, simulated agents and cell-service roll a job
 *     to a new command under both strategies, watched through `sync`; and a
 *     real agent whose task is restarted on its own machine stops the old
 *     process and starts the new attempt.
 */
#include <criterion/criterion.h>

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cellstate/rng.h"
#include "schedulers/rollout.h"
#include "tests/cellbuild.h"
#include "tests/support.h"

/* ======================================================================= */
/* the decision                                                             */

static bool chance(uint64_t *x, unsigned percent) { return cs_rng_next(x) % 100 < percent; }

enum { SLOTS_MAX = 64 };

/* A simulated job: its slots as the cell holds them. */
typedef struct sim {
    cs_rollout_in in;
    cs_rollout_slot slot[SLOTS_MAX];
    uint32_t restart[SLOTS_MAX];
    uint32_t max_cap, min_healthy;
} sim;

static bool sim_healthy(const sim *s, uint32_t i)
{
    const cs_rollout_slot *t = &s->slot[i];
    return t->state == CS_TASK_RUNNING && (!s->in.checks || t->health == CS_TASK_HEALTH_HEALTHY);
}

static uint32_t sim_count(const sim *s, bool (*what)(const sim *, uint32_t))
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->in.count + s->in.surge; i++)
        n += what(s, i);
    return n;
}

static bool sim_placed(const sim *s, uint32_t i) { return cs_task_state_placed(s->slot[i].state); }

/* N tasks of the old version, all running and healthy. */
static void sim_init(sim *s, uint32_t n, uint32_t mh, uint32_t mo, bool checks)
{
    memset(s, 0, sizeof *s);
    s->in = (cs_rollout_in){.count = n, .min_health_pm = mh, .max_over_pm = mo,
                            .checks = checks, .slots = s->slot};
    s->min_healthy = (n * mh + 999) / 1000;
    s->max_cap = (n * (1000 + mo) + 999) / 1000;
    cr_assert_leq(s->max_cap, SLOTS_MAX);
    for (uint32_t i = 0; i < n; i++)
        s->slot[i] = (cs_rollout_slot){CS_TASK_RUNNING, CS_TASK_HEALTH_HEALTHY, true};
}

/* The world moves on: pending tasks are placed (with the new version),
 * placed ones start, health comes and goes, tasks fail and the service
 * scheduler's upkeep runs them again. `calm`: only forward, no failures. */
static void sim_world(sim *s, uint64_t *rng, bool calm)
{
    for (uint32_t i = 0; i < s->in.count + s->in.surge; i++) {
        cs_rollout_slot *t = &s->slot[i];
        unsigned go = calm ? 100 : 50;
        switch (t->state) {
        case CS_TASK_PENDING:
            if (chance(rng, go))
                *t = (cs_rollout_slot){CS_TASK_ASSIGNED, CS_TASK_HEALTH_UNKNOWN, false};
            break;
        case CS_TASK_ASSIGNED:
            if (chance(rng, go))
                t->state = CS_TASK_RUNNING;
            break;
        case CS_TASK_RUNNING:
            if (!calm && chance(rng, 4)) {
                t->state = CS_TASK_FAILED; /* the upkeep restarts it next */
            } else if (t->health != CS_TASK_HEALTH_HEALTHY && chance(rng, go)) {
                t->health = CS_TASK_HEALTH_HEALTHY;
            } else if (!calm && chance(rng, 5)) {
                t->health = CS_TASK_HEALTH_UNHEALTHY;
            }
            break;
        case CS_TASK_FAILED:
            *t = (cs_rollout_slot){CS_TASK_PENDING, CS_TASK_HEALTH_UNKNOWN, false};
            break;
        default:
            break;
        }
    }
}

/* Decide one step, check it against the bounds, apply it. Returns whether
 * the step was active. */
static bool sim_step(sim *s, const char *what, int step)
{
    cs_rollout_step st;
    cs_error err = {0};
    cr_assert_eq(cs_rollout_decide(&s->in, s->restart, &st, &err), CS_OK, "%s", err.msg);
    uint32_t healthy = sim_count(s, sim_healthy);
    cr_assert_eq(st.healthy, healthy);
    cr_assert_eq(st.min_healthy, s->min_healthy);
    cr_assert_eq(st.max_cap, s->max_cap);
    cr_assert_leq(s->in.count + st.surge, s->max_cap, "%s step %d: surge %u above the maximum",
                  what, step, st.surge);
    /* Apply: restarts first, then the surge. */
    uint32_t healthy_killed = 0;
    for (uint32_t k = 0; k < st.nrestart; k++) {
        uint32_t i = st.restart[k];
        cr_assert_lt(i, s->in.count, "%s step %d: restart of surge slot %u", what, step, i);
        cr_assert(s->slot[i].old, "%s step %d: slot %u restarted but not old", what, step, i);
        for (uint32_t q = 0; q < k; q++)
            cr_assert_neq(s->restart[q], i, "%s step %d: slot %u restarted twice", what, step, i);
        healthy_killed += sim_healthy(s, i);
        s->slot[i] = (cs_rollout_slot){CS_TASK_PENDING, CS_TASK_HEALTH_UNKNOWN, false};
    }
    for (uint32_t i = s->in.count + st.surge; i < s->in.count + s->in.surge; i++) {
        healthy_killed += sim_healthy(s, i);
        s->slot[i] = (cs_rollout_slot){CS_TASK_STATE_COUNT, 0, false};
    }
    for (uint32_t i = s->in.count + s->in.surge; i < s->in.count + st.surge; i++)
        s->slot[i] = (cs_rollout_slot){CS_TASK_PENDING, CS_TASK_HEALTH_UNKNOWN, false};
    s->in.surge = st.surge;
    uint32_t after = sim_count(s, sim_healthy);
    if (healthy_killed > 0) {
        uint32_t floor = st.below_min ? s->min_healthy - 1 : s->min_healthy;
        cr_assert_geq(after, floor,
                      "%s step %d: killed %u healthy, %u left, minimum %u%s", what, step,
                      healthy_killed, after, s->min_healthy, st.below_min ? " (edge)" : "");
    }
    if (st.below_min)
        cr_assert(s->max_cap == s->in.count && s->min_healthy == s->in.count &&
                      healthy_killed == 1 && healthy == s->in.count,
                  "%s step %d: below the minimum outside Marathon's edge", what, step);
    cr_assert_leq(sim_count(s, sim_placed), s->max_cap, "%s step %d: too many placed", what,
                  step);
    return st.active;
}

static void run_history(uint32_t n, uint32_t mh, uint32_t mo, bool checks, uint64_t seed)
{
    char what[96];
    snprintf(what, sizeof what, "N=%u min %u max over %u checks %d seed %llu", n, mh, mo, checks,
             (unsigned long long)seed);
    sim s;
    sim_init(&s, n, mh, mo, checks);
    uint64_t rng = seed;
    int step = 0;
    /* A troubled time: random progress, failures, flapping health. */
    for (; step < 60; step++) {
        sim_step(&s, what, step);
        sim_world(&s, &rng, false);
    }
    /* Then calm: the rollout must come to its end in bounded time, and the
     * new tasks be placed. */
    int limit = step + 8 * (int)(n + 2) + 20;
    bool active = true, placed = false;
    for (; step < limit && (active || !placed); step++) {
        active = sim_step(&s, what, step);
        sim_world(&s, &rng, true);
        placed = sim_count(&s, sim_placed) == n;
    }
    cr_assert(!active, "%s: still rolling after %d steps", what, step);
    cr_assert_eq(s.in.surge, 0, "%s: surge %u left", what, s.in.surge);
    for (uint32_t i = 0; i < n; i++)
        cr_assert(!s.slot[i].old && cs_task_state_placed(s.slot[i].state),
                  "%s: slot %u is not the new version", what, i);
}

Test(rollout, random_histories_keep_the_bounds_and_end)
{
    static const uint32_t cases[][3] = {
        {4, 500, 500}, {4, 1000, 1000}, {5, 1000, 0}, {3, 0, 0},     {1, 1000, 0},
        {1, 1000, 1000}, {7, 800, 200}, {10, 900, 100}, {6, 0, 1000}, {0, 1000, 1000},
        {9, 1000, 340}, {2, 500, 0},
    };
    uint64_t seed = 20240501;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int k = 0; k < 40; k++)
            run_history(cases[c][0], cases[c][1], cases[c][2], k % 2 == 0, seed++);
}

/* The first steps of the strategies the end-to-end tests run, and the
 * edge, exactly. */
Test(rollout, first_steps)
{
    sim s;
    cs_rollout_step st;
    cs_error err = {0};
    /* 0.5 / 0.5 over 4 healthy: two restart at once, no surge yet. */
    sim_init(&s, 4, 500, 500, true);
    cr_assert_eq(cs_rollout_decide(&s.in, s.restart, &st, &err), CS_OK, "%s", err.msg);
    cr_assert(st.active);
    cr_assert_eq(st.nrestart, 2);
    cr_assert_eq(st.surge, 0);
    cr_assert_eq(st.min_healthy, 2);
    cr_assert_eq(st.max_cap, 6);
    /* Marathon's defaults: nothing may go; four surge tasks come first. */
    sim_init(&s, 4, 1000, 1000, true);
    cr_assert_eq(cs_rollout_decide(&s.in, s.restart, &st, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(st.nrestart, 0);
    cr_assert_eq(st.surge, 4);
    char note[256];
    cs_rollout_note(&st, note, sizeof note);
    cr_assert_str_eq(note, "rolling update: 0/4 updated, 4 healthy (min 4), surge 4");
    cr_assert(cs_rollout_is_note(note));
    cr_assert(!cs_rollout_is_note("no machine fits: cpu on 3"));
    /* 1 / 0: one goes below the minimum, and only when all are healthy. */
    sim_init(&s, 3, 1000, 0, false);
    cr_assert_eq(cs_rollout_decide(&s.in, s.restart, &st, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(st.nrestart, 1);
    cr_assert(st.below_min);
    cr_assert_eq(st.surge, 0);
    cs_rollout_note(&st, note, sizeof note);
    cr_assert(strstr(note, "below the minimum") != NULL, "%s", note);
    s.slot[2] = (cs_rollout_slot){CS_TASK_ASSIGNED, 0, false}; /* the new one starts: wait */
    cr_assert_eq(cs_rollout_decide(&s.in, s.restart, &st, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(st.nrestart, 0);
    cr_assert(!st.below_min);
    /* An unhealthy old task is replaced whatever the minimum. */
    sim_init(&s, 3, 1000, 0, true);
    s.slot[1].health = CS_TASK_HEALTH_UNHEALTHY;
    cr_assert_eq(cs_rollout_decide(&s.in, s.restart, &st, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(st.nrestart, 1);
    cr_assert_eq(st.restart[0], 1);
    cr_assert(!st.below_min);
    /* Nothing old and no surge: nothing to do, no note. */
    for (uint32_t i = 0; i < 3; i++)
        s.slot[i].old = false;
    cr_assert_eq(cs_rollout_decide(&s.in, s.restart, &st, &err), CS_OK, "%s", err.msg);
    cr_assert(!st.active);
    cs_rollout_note(&st, note, sizeof note);
    cr_assert_str_eq(note, "");
}

Test(rollout, bad_input_is_refused)
{
    sim s;
    cs_rollout_step st;
    cs_error err = {0};
    sim_init(&s, 2, 1001, 0, false);
    cr_assert_eq(cs_rollout_decide(&s.in, s.restart, &st, &err), CS_EINVAL);
    cr_assert(strstr(err.msg, "1001") != NULL, "%s", err.msg);
    sim_init(&s, 2, 1000, 2000, false);
    cr_assert_eq(cs_rollout_decide(&s.in, s.restart, &st, &err), CS_EINVAL);
    sim_init(&s, 2, 1000, 0, false);
    s.in.slots = NULL;
    cr_assert_eq(cs_rollout_decide(&s.in, s.restart, &st, &err), CS_EINVAL);
    cr_assert(strstr(err.msg, "slots") != NULL, "%s", err.msg);
}

/* ======================================================================= */
/* the copy: restart in place                                               */

typedef struct copy_shot {
    cs_res alloc[2];
    uint32_t ntasks[2], nports[2];
    cs_ctask t[4];
    uint32_t npending, nplaced;
} copy_shot;

static void copy_take(const cs_copy *c, cs_id job, copy_shot *s)
{
    memset(s, 0, sizeof *s);
    for (uint32_t i = 0; i < 2; i++) {
        const cs_cmachine *m = cs_copy_machine_at(c, i);
        s->alloc[i] = m->allocated;
        s->ntasks[i] = m->ntasks;
        s->nports[i] = m->nports;
    }
    for (uint32_t i = 0; i < 4; i++) {
        s->t[i] = *cs_copy_task_at(c, i);
        s->t[i].ports = NULL;
    }
    s->npending = cs_copy_job(c, job)->npending;
    s->nplaced = cs_copy_job(c, job)->nplaced;
}

Test(rollout, copy_requeue_then_claim_rolls_back_exactly)
{
    tb_cell b;
    tb_init(&b);
    cs_id m1 = tb_machine_add(&b, "m1", 4000, 8192, 100, 31000, 31009, NULL);
    tb_machine_add(&b, "m2", 4000, 8192, 100, 31000, 31009, NULL);
    cs_id j = tb_job_add(&b, "svc", CS_JOB_SERVICE, 50, 4, 1000, 512, 0);
    tb_job_ports(&b, j, (const uint16_t[]){0}, 1);
    for (uint32_t i = 0; i < 3; i++)
        tb_place(&b, j, i, m1);
    tb_task_state(&b, cs_task_id(j, 0), CS_TASK_RUNNING);
    cs_copy *c;
    cs_error err = {0};
    cr_assert_eq(cs_copy_new(&c, &err), CS_OK);
    tb_sync(&b, c, true);

    /* The builder places tasks with spec 0: all three run an old version,
     * N = 4 with the defaults: no kill, four surge tasks. */
    cs_rollout r = {0};
    cr_assert_eq(cs_rollout_job(c, cs_copy_job(c, j), &r, &err), CS_OK, "%s", err.msg);
    cr_assert(r.step.active);
    cr_assert_eq(r.step.old, 3);
    cr_assert_eq(r.step.healthy, 1, "only the running one counts, the job has no checks");
    cr_assert_eq(r.step.nrestart, 2, "the two not yet running go first");
    cr_assert_eq(r.step.restart[0], 1);
    cr_assert_eq(r.step.restart[1], 2);

    copy_shot before, after;
    copy_take(c, j, &before);
    cs_id t0 = cs_task_id(j, 0);
    cr_assert_eq(cs_copy_requeue(c, t0, &err), CS_OK, "%s", err.msg);
    const cs_ctask *t = cs_copy_task(c, t0);
    cr_assert_eq(t->state, CS_TASK_PENDING);
    cr_assert_eq(t->last_end, CS_TASK_KILLED);
    cr_assert_eq(t->nports, 0);
    cr_assert_eq(cs_copy_job(c, j)->npending, before.npending + 1);
    cr_assert_eq(cs_copy_machine(c, m1)->allocated.cpu, 2000, "its room is given back");
    cr_assert_eq(cs_copy_machine(c, m1)->nports, 2, "and its port");
    cr_assert_eq(cs_copy_requeue(c, t0, &err), CS_ESTATE, "a pending task cannot be requeued");
    cr_assert_eq(cs_copy_requeue(c, cs_task_id(j, 3), &err), CS_ESTATE);
    cr_assert_eq(cs_copy_requeue(c, 999, &err), CS_ENOTFOUND);
    /* Claimed again on the same machine, on the port it held. */
    uint16_t port = 31000;
    cs_res res = {1000, 512, 0};
    cr_assert_eq(cs_copy_claim(c, t0, m1, &res, &port, 1, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_copy_machine(c, m1)->allocated.cpu, 3000);
    cs_copy_rollback(c);
    copy_take(c, j, &after);
    cr_assert(memcmp(&before, &after, sizeof before) == 0, "the rollback left the copy changed");
    cr_assert_eq(cs_copy_task(c, t0)->ports[0], 31000);
    cs_rollout_free(&r);
    cs_copy_free(c);
    tb_free(&b);
}

/* A drain reuses the rollout: a task on a draining machine counts as old
 * (it must move), within the same bounds; a cordoned machine's tasks stay. */
Test(rollout, tasks_on_a_draining_machine_are_replaced)
{
    tb_cell b;
    tb_init(&b);
    cs_id m1 = tb_machine_add(&b, "m1", 4000, 8192, 100, 0, 0, NULL);
    cs_id m2 = tb_machine_add(&b, "m2", 4000, 8192, 100, 0, 0, NULL);
    tb_machine_add(&b, "m3", 4000, 8192, 100, 0, 0, NULL);
    cs_id j = tb_job_add(&b, "svc", CS_JOB_SERVICE, 50, 3, 1000, 512, 0);
    cs_id where[3] = {m1, m2, m2};
    for (uint32_t i = 0; i < 3; i++) {
        tb_place(&b, j, i, where[i]);
        tb_task_state(&b, cs_task_id(j, i), CS_TASK_RUNNING);
        tb_task_current(&b, cs_task_id(j, i));
    }
    cs_copy *c;
    cs_error err = {0};
    cr_assert_eq(cs_copy_new(&c, &err), CS_OK);
    tb_sync(&b, c, true);
    cs_rollout r = {0};
    cr_assert_eq(cs_rollout_job(c, cs_copy_job(c, j), &r, &err), CS_OK, "%s", err.msg);
    cr_assert(!r.step.active, "every task runs the current spec on an active machine");

    tb_machine_admin(&b, m2, CS_ADMIN_CORDONED);
    tb_sync(&b, c, true);
    cr_assert_eq(cs_rollout_job(c, cs_copy_job(c, j), &r, &err), CS_OK, "%s", err.msg);
    cr_assert(!r.step.active, "a cordon moves nothing");

    tb_machine_admin(&b, m2, CS_ADMIN_DRAINING);
    tb_sync(&b, c, true);
    cr_assert_eq(cs_rollout_job(c, cs_copy_job(c, j), &r, &err), CS_OK, "%s", err.msg);
    cr_assert(r.step.active);
    cr_assert_eq(r.step.old, 2, "the two tasks on m2 must move");
    cr_assert_eq(r.step.healthy, 3);
    cr_assert_eq(r.step.min_healthy, 3, "Marathon's default keeps all three healthy");
    cr_assert_eq(r.step.nrestart, 0, "none stops before its replacement runs");
    cr_assert_eq(r.step.surge, 2, "two replacements start beside them");
    cs_rollout_free(&r);
    cs_copy_free(c);
    tb_free(&b);
}

/* ======================================================================= */
/* end to end                                                               */

#define DEADLINE_MS 60000

static ts_daemon D;
static int pids[4];
static int npids;
static char logs[4][320];

static void cleanup(void)
{
    for (int i = npids - 1; i >= 0; i--)
        if (pids[i] > 0)
            ts_stop(pids[i], SIGTERM, 10000);
    npids = 0;
    ts_daemon_teardown(&D);
}

static void dump_logs(void)
{
    for (int i = 0; i < npids; i++)
        ts_log_file(logs[i], logs[i]);
}

static void spawn(const char *const *argv)
{
    cr_assert_lt(npids, 4);
    snprintf(logs[npids], sizeof logs[npids], "%s/proc%d.log", D.dir, npids);
    pids[npids] = ts_spawn((char *const *)argv, logs[npids]);
    npids++;
}

/* What one observation of the job shows. */
typedef struct seen {
    uint32_t placed, healthy, updated, surge;
    const char *note;
    bool done;
} seen;

static seen observe(cs_id job, ts_cell *cell)
{
    ts_cell_read(D.c, cell);
    const cs_job *j = ts_cell_job(cell, job);
    seen s = {.surge = j->surge, .note = j->note};
    for (size_t i = 0; i < cell->ntasks; i++) {
        const cs_task *t = &cell->tasks[i];
        if (t->job != job)
            continue;
        s.placed += cs_task_state_placed(t->state);
        s.healthy += t->state == CS_TASK_RUNNING && t->health == CS_TASK_HEALTH_HEALTHY;
        s.updated += t->index < j->count && t->state == CS_TASK_RUNNING &&
                     t->health == CS_TASK_HEALTH_HEALTHY && t->spec == j->spec_hash;
    }
    s.done = s.updated == j->count && s.surge == 0 && s.placed == j->count && s.note[0] == '\0';
    return s;
}

static const char JOB[] =
    "{\"name\": \"web\", \"kind\": \"service\", \"count\": 4, \"cmd\": \"%s\","
    " \"resources\": {\"cpu\": 0.5, \"mem\": 64}, \"ports\": [0],"
    " \"health_checks\": [{\"protocol\": \"TCP\", \"port_index\": 0, \"interval\": \"1s\"}]"
    "%s}";

/* A cell of 3 simulated machines (4 cores each: room for 24 tasks) and
 * cell-service; job "web" of 4 tasks with a health check and `strategy`;
 * once all 4 are healthy, a new command; every 20-50 ms until the rollout
 * is done: healthy >= min_healthy, placed <= max_cap. Returns the largest
 * surge seen. */
static uint32_t roll_web(const char *strategy, uint32_t min_healthy, uint32_t max_cap)
{
    ts_daemon_setup(&D, NULL, NULL);
    char agent[256], service[256];
    ts_bin("cell-agent", agent, sizeof agent);
    ts_bin("cell-service", service, sizeof service);
    const char *a[] = {agent,         "--server",       D.url, "--simulate", "3",
                       "--sim-prefix", "m",             "--sim-duration", "100000000",
                       "--cpu",        "4",             "--mem", "4096", "--ports",
                       "31000-31999",  "--heartbeat-ms", "500", "--poll-wait-ms", "2000", NULL};
    spawn(a);
    const char *sv[] = {service, "--server", D.url, "--name", "service", "--idle-ms", "10",
                        "--report-ms", "200", "--park-ms", "100", "--seed", "3", "--verbose", NULL};
    spawn(sv);
    char json[1024];
    snprintf(json, sizeof json, JOB, "serve v1", strategy);
    cs_id job = ts_submit(D.c, json);

    int64_t end = ts_now_ms() + DEADLINE_MS;
    ts_cell cell;
    seen s;
    for (;;) {
        s = observe(job, &cell);
        ts_cell_free(&cell);
        if (s.healthy == 4)
            break;
        if (ts_now_ms() > end) {
            dump_logs();
            cr_assert_fail("web: %u healthy of 4 before the update", s.healthy);
        }
        ts_sleep_ms(50);
    }

    snprintf(json, sizeof json, JOB, "serve v2", strategy);
    ts_update(D.c, job, json);
    uint32_t max_surge = 0, observations = 0;
    end = ts_now_ms() + DEADLINE_MS;
    for (;;) {
        s = observe(job, &cell);
        observations++;
        if (s.healthy < min_healthy || s.placed > max_cap)
            dump_logs();
        cr_assert_geq(s.healthy, min_healthy, "observation %u: %u healthy, minimum %u (note '%s')",
                      observations, s.healthy, min_healthy, s.note);
        cr_assert_leq(s.placed, max_cap, "observation %u: %u placed, maximum %u (note '%s')",
                      observations, s.placed, max_cap, s.note);
        if (s.surge > max_surge)
            max_surge = s.surge;
        ts_cell_free(&cell);
        if (s.done)
            break;
        if (ts_now_ms() > end) {
            dump_logs();
            cr_assert_fail("web: rollout not done: %u of 4 updated, surge %u, note '%s'",
                           s.updated, s.surge, s.note);
        }
        ts_sleep_ms(20 + (int)(observations % 4) * 10);
    }
    cr_log_info("rollout (%s): %u observations, largest surge %u", strategy, observations,
                max_surge);
    return max_surge;
}

Test(rollout, half_health_half_over_end_to_end, .timeout = 150, .fini = cleanup)
{
    roll_web(", \"update_strategy\": {\"minimum_health_capacity\": 0.5,"
             " \"maximum_over_capacity\": 0.5}",
             2, 6);
}

Test(rollout, marathon_defaults_end_to_end, .timeout = 150, .fini = cleanup)
{
    uint32_t surge = roll_web("", 4, 8);
    cr_assert_gt(surge, 0, "the defaults need surge tasks: none was seen");
}

/* ---- a real agent: the old process goes, the new attempt starts ------------------ */

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Commit `t` through the client; every claim must commit. */
static void commit(cs_txn *t)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    cr_assert_eq(cs_txn_encode(t, &b), CS_OK);
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(cs_client_callb(D.c, CS_MSG_COMMIT, &b, &r, &err), CS_OK, "commit: %s", err.msg);
    uint64_t committed = 0;
    cr_assert_eq(cs_obj_u64(&r.body, "committed", true, UINT64_MAX, &committed, &err), CS_OK);
    cr_assert_eq(committed, t->nclaims, "%llu of %u claims committed",
                 (unsigned long long)committed, t->nclaims);
    msgpack_sbuffer_destroy(&b);
}

/* Wait until task `id` is running at attempt `attempt`. */
static void wait_running(cs_id job, cs_id id, uint32_t attempt)
{
    int64_t end = ts_now_ms() + DEADLINE_MS;
    for (;;) {
        ts_cell cell;
        ts_cell_read(D.c, &cell);
        bool ok = false;
        (void)ts_cell_job(&cell, job);
        for (size_t i = 0; i < cell.ntasks; i++)
            ok |= cell.tasks[i].id == id && cell.tasks[i].state == CS_TASK_RUNNING &&
                  cell.tasks[i].attempts == attempt;
        ts_cell_free(&cell);
        if (ok)
            return;
        if (ts_now_ms() > end) {
            dump_logs();
            cr_assert_fail("task %llu never ran attempt %u", (unsigned long long)id, attempt);
        }
        ts_sleep_ms(50);
    }
}

static void wait_file(const char *path)
{
    int64_t end = ts_now_ms() + DEADLINE_MS;
    while (!file_exists(path)) {
        if (ts_now_ms() > end) {
            dump_logs();
            cr_assert_fail("%s never appeared", path);
        }
        ts_sleep_ms(50);
    }
}

Test(rollout, agent_restarts_a_task_in_place, .timeout = 150, .fini = cleanup)
{
    ts_daemon_setup(&D, NULL, NULL);
    char agent[256], work[300];
    ts_bin("cell-agent", agent, sizeof agent);
    snprintf(work, sizeof work, "%s/agent", D.dir);
    const char *a[] = {agent, "--server", D.url, "--name", "m1", "--workdir", work,
                       "--cpu", "1", "--mem", "256", "--disk", "100", "--ports", "31000-31009",
                       "--heartbeat-ms", "500", "--poll-wait-ms", "2000", NULL};
    spawn(a);
    cs_id job = ts_submit(D.c, "{\"name\": \"svc\", \"kind\": \"service\", \"count\": 1,"
                               " \"cmd\": \"exec sleep 600\", \"kill_grace\": \"1s\","
                               " \"resources\": {\"cpu\": 1, \"mem\": 64}, \"ports\": [0]}");
    cs_id id = cs_task_id(job, 0);
    /* The machine registers; the task is placed on it by hand (no scheduler). */
    cs_id m = 0;
    int64_t end = ts_now_ms() + DEADLINE_MS;
    while (m == 0) {
        ts_cell cell;
        ts_cell_read(D.c, &cell);
        if (cell.nmachines == 1)
            m = cell.machines[0].id;
        ts_cell_free(&cell);
        cr_assert(m != 0 || ts_now_ms() < end, "the agent never registered");
        ts_sleep_ms(50);
    }
    cs_txn t;
    cs_res res = {1000, 64, 0};
    uint16_t port = 31003;
    cs_txn_init(&t, 77, 1, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    cr_assert_eq(cs_txn_add_claim(&t, id, m, &res, &port, 1, 0), CS_OK);
    commit(&t);
    cs_txn_free(&t);
    wait_running(job, id, 1);
    char dir1[400], dir2[400], path[480];
    snprintf(dir1, sizeof dir1, "%s/tasks/%llu-1", work, (unsigned long long)id);
    snprintf(dir2, sizeof dir2, "%s/tasks/%llu-2", work, (unsigned long long)id);
    snprintf(path, sizeof path, "%s/pid", dir1);
    wait_file(path);

    /* Restart in place: the same machine, the same port, in one commit. */
    cs_txn_init(&t, 77, 2, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    cr_assert_eq(cs_txn_add_release(&t, id, CS_TASK_PENDING, 0), CS_OK);
    cr_assert_eq(cs_txn_add_claim(&t, id, m, &res, &port, 1, 0), CS_OK);
    commit(&t);
    cs_txn_free(&t);
    wait_running(job, id, 2);
    snprintf(path, sizeof path, "%s/exit", dir1);
    wait_file(path); /* the first process ended ... */
    snprintf(path, sizeof path, "%s/pid", dir2);
    cr_assert(file_exists(path), "... and the second one runs");
    snprintf(path, sizeof path, "%s/exit", dir2);
    cr_assert(!file_exists(path), "the new attempt ended");

    /* Kill the job so that the agent leaves no process behind. */
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    cr_assert(msgpack_pack_map(&pk, 1) == 0 && cs_pack_kv_u64(&pk, "job", job) == CS_OK);
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(cs_client_callb(D.c, CS_MSG_JOB_KILL, &b, &r, &err), CS_OK, "%s", err.msg);
    msgpack_sbuffer_destroy(&b);
    wait_file(path);
}

/* ---- cordon and drain end to end ------------------------------------------------ */

/* machine.admin through the client; deadline_ms < 0: none given. */
static void machine_admin(const char *machine, const char *admin, int64_t deadline_ms)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, deadline_ms >= 0 ? 3 : 2);
    cs_pack_kv_str(&pk, "machine", machine);
    cs_pack_kv_str(&pk, "admin", admin);
    if (deadline_ms >= 0)
        cs_pack_kv_u64(&pk, "deadline_ms", (uint64_t)deadline_ms);
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(cs_client_callb(D.c, CS_MSG_MACHINE_ADMIN, &b, &r, &err), CS_OK,
                 "%s %s: %s", admin, machine, err.msg);
    msgpack_sbuffer_destroy(&b);
}

/* One look at the two jobs: where their tasks are. */
typedef struct drain_seen {
    uint32_t web_running, web_placed, web_on_m0, batch_running, batch_on_m0, batch_moved;
    uint32_t off_m0; /* tasks of either job placed elsewhere than on m0 */
    uint32_t m0_tasks, web_surge;
} drain_seen;

static drain_seen drain_look(cs_id web, cs_id batch, cs_id m0)
{
    ts_cell cell;
    ts_cell_read(D.c, &cell);
    drain_seen s = {0};
    s.web_surge = ts_cell_job(&cell, web)->surge;
    for (size_t i = 0; i < cell.ntasks; i++) {
        const cs_task *t = &cell.tasks[i];
        bool placed = cs_task_state_placed(t->state), running = t->state == CS_TASK_RUNNING;
        s.off_m0 += (t->job == web || t->job == batch) && placed && t->machine != m0;
        if (t->job == web) {
            s.web_running += running;
            s.web_placed += placed;
            s.web_on_m0 += placed && t->machine == m0;
        } else if (t->job == batch) {
            s.batch_running += running;
            s.batch_on_m0 += placed && t->machine == m0;
            s.batch_moved += running && t->machine != m0 && t->attempts == 2 &&
                             t->last_end == CS_TASK_KILLED;
        }
    }
    for (size_t i = 0; i < cell.nmachines; i++)
        if (cell.machines[i].id == m0)
            s.m0_tasks = cell.machines[i].ntasks;
    ts_cell_free(&cell);
    return s;
}

/* Three simulated machines, cell-service and cell-batch. With two machines
 * cordoned, a service job of 2 and a batch job of 2 all land on the third,
 * m00000: a cordon places nothing. The other two are uncordoned and m00000
 * drained without a deadline: the service tasks move off with at least 2
 * running at every look (Marathon's defaults: minimum healthy 1.0, so the
 * replacements run before the old tasks stop), and the batch tasks stay.
 * Then a deadline of 0: the batch tasks are killed and placed again
 * elsewhere, and m00000 holds nothing. */
Test(rollout, cordon_then_drain_end_to_end, .timeout = 150, .fini = cleanup)
{
    ts_daemon_setup(&D, NULL, NULL);
    char agent[256], service[256], batch[256];
    ts_bin("cell-agent", agent, sizeof agent);
    ts_bin("cell-service", service, sizeof service);
    ts_bin("cell-batch", batch, sizeof batch);
    const char *a[] = {agent,          "--server",       D.url, "--simulate",   "3",
                       "--sim-prefix", "m",              "--sim-duration", "100000000",
                       "--cpu",        "4",              "--mem", "4096", "--heartbeat-ms",
                       "500",          "--poll-wait-ms", "2000", NULL};
    spawn(a);
    const char *sv[] = {service, "--server", D.url, "--name", "service", "--idle-ms", "10",
                        "--report-ms", "200", "--park-ms", "100", "--seed", "3", NULL};
    spawn(sv);
    const char *bv[] = {batch, "--server", D.url, "--name", "batch", "--idle-ms", "10",
                        "--report-ms", "200", "--park-ms", "100", "--seed", "3", NULL};
    spawn(bv);

    /* Wait for the three machines, then cordon two. */
    int64_t end = ts_now_ms() + DEADLINE_MS;
    cs_id m0 = 0;
    for (;;) {
        ts_cell cell;
        ts_cell_read(D.c, &cell);
        size_t n = cell.nmachines;
        for (size_t i = 0; i < n; i++)
            if (strcmp(cell.machines[i].name, "m00000") == 0)
                m0 = cell.machines[i].id;
        ts_cell_free(&cell);
        if (n == 3 && m0 != 0)
            break;
        cr_assert_lt(ts_now_ms(), end, "%zu machines registered", n);
        ts_sleep_ms(50);
    }
    machine_admin("m00001", "cordoned", -1);
    machine_admin("m00002", "cordoned", -1);
    cs_id web = ts_submit(D.c, "{\"name\": \"web\", \"kind\": \"service\", \"count\": 2,"
                               " \"cmd\": \"serve\", \"resources\": {\"cpu\": 0.5, \"mem\": 64}}");
    cs_id crunch = ts_submit(D.c, "{\"name\": \"crunch\", \"kind\": \"batch\", \"count\": 2,"
                                  " \"cmd\": \"crunch\", \"resources\": {\"cpu\": 0.5, \"mem\": 64}}");
    drain_seen s;
    end = ts_now_ms() + DEADLINE_MS;
    for (;;) {
        s = drain_look(web, crunch, m0);
        cr_assert_eq(s.off_m0, 0, "a task was placed on a cordoned machine");
        if (s.web_running == 2 && s.batch_running == 2)
            break;
        if (ts_now_ms() > end) {
            dump_logs();
            cr_assert_fail("web %u and crunch %u running of 2 each", s.web_running,
                           s.batch_running);
        }
        ts_sleep_ms(50);
    }
    cr_assert_eq(s.web_on_m0 + s.batch_on_m0, 4, "all four run on the one active machine");

    machine_admin("m00001", "active", -1);
    machine_admin("m00002", "active", -1);
    machine_admin("m00000", "draining", -1);
    uint32_t looks = 0, max_surge = 0;
    end = ts_now_ms() + DEADLINE_MS;
    for (;;) {
        s = drain_look(web, crunch, m0);
        looks++;
        cr_assert_geq(s.web_running, 2, "look %u: %u of web's tasks run, minimum 2", looks,
                      s.web_running);
        cr_assert_leq(s.web_placed, 4, "look %u: %u placed, maximum 4", looks, s.web_placed);
        cr_assert_eq(s.batch_on_m0, 2, "look %u: a batch task left before any deadline", looks);
        if (s.web_surge > max_surge)
            max_surge = s.web_surge;
        if (s.web_on_m0 == 0 && s.web_running == 2 && s.web_surge == 0)
            break;
        if (ts_now_ms() > end) {
            dump_logs();
            cr_assert_fail("web still has %u tasks on the draining machine", s.web_on_m0);
        }
        ts_sleep_ms(20 + (int)(looks % 4) * 10);
    }
    cr_assert_gt(max_surge, 0, "the replacements ran beside the old tasks (surge)");

    machine_admin("m00000", "draining", 0);
    end = ts_now_ms() + DEADLINE_MS;
    for (;;) {
        s = drain_look(web, crunch, m0);
        if (s.batch_moved == 2 && s.m0_tasks == 0)
            break;
        if (ts_now_ms() > end) {
            dump_logs();
            cr_assert_fail("after the deadline: %u of 2 batch tasks moved, %u tasks on m00000",
                           s.batch_moved, s.m0_tasks);
        }
        ts_sleep_ms(50);
    }
    cr_assert_eq(s.web_running, 2);
}
