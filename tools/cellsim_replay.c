/* cellsim_replay.c — the 2011 trace as cellsim's cell and workload (see
 * cellsim_replay.h). */
#include "tools/cellsim_replay.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cellstate/arena.h"
#include "cellstate/vec.h"
#include "txn/ops.h"

struct sim_replay {
    cs_trace t;
    cs_trace_scale scale;
    uint64_t start_us; /* trace time of simulated time 0 */
    int64_t run_ns;    /* the run's length: a cut task's duration */
    size_t mev;        /* next machine event */
    sim_replay_job *jobs;
    size_t njobs, capjobs, next;
    cs_res *caps; /* the start machines' capacities */
    size_t ncaps;
    sim_replay_counts counts;
};

static int64_t sim_ns(const sim_replay *r, uint64_t trace_us)
{
    return trace_us <= r->start_us ? 0 : (int64_t)(trace_us - r->start_us) * 1000;
}

/* The pieces of trace job `j`: one per distinct request among its tasks
 * that ran (cellsim_replay.h). */
static int build_job(sim_replay *r, const cs_trace_job *j, cs_error *err)
{
    r->counts.trace_jobs++;
    size_t first = r->njobs;
    for (uint32_t i = 0; i < j->ntasks; i++) {
        const cs_trace_task *t = &j->tasks[i];
        if (t->runs == 0) {
            r->counts.tasks_unrun++;
            continue;
        }
        cs_res res;
        CS_TRY(cs_trace_res(&r->scale, t->cpu, t->mem, &res, err));
        size_t p = first;
        while (p < r->njobs && memcmp(&r->jobs[p].res, &res, sizeof res) != 0)
            p++;
        if (p == r->njobs) {
            sim_replay_job *v = cs_vec_grow(r->jobs, &r->capjobs, r->njobs + 1, sizeof *v, 1024);
            if (v == NULL)
                return cs_errorf(err, CS_ENOMEM, "out of memory");
            r->jobs = v;
            v[p] = (sim_replay_job){.at_ns = sim_ns(r, j->submit_us), .kind = j->kind, .res = res};
            /* At most every task of the job: sized once. */
            v[p].task_ns = malloc(j->ntasks * sizeof *v[p].task_ns);
            v[p].attempt = calloc(j->ntasks, sizeof *v[p].attempt);
            r->njobs++;
            if (v[p].task_ns == NULL || v[p].attempt == NULL)
                return cs_errorf(err, CS_ENOMEM, "out of memory");
        }
        sim_replay_job *x = &r->jobs[p];
        /* A task still running at the window's end runs past the run's
         * end: its trace duration is cut there, not ended. */
        int64_t d = t->flags & CS_TRACE_TASK_CUT ? r->run_ns
                                                 : (int64_t)cs_trace_task_duration_us(t) * 1000;
        x->task_ns[x->count++] = d;
        if (d > x->duration_ns)
            x->duration_ns = d;
        r->counts.tasks++;
    }
    size_t pieces = r->njobs - first;
    for (size_t p = first; p < r->njobs; p++) {
        if (pieces == 1)
            snprintf(r->jobs[p].name, sizeof r->jobs[p].name, "g%" PRIu64, j->id);
        else
            snprintf(r->jobs[p].name, sizeof r->jobs[p].name, "g%" PRIu64 ".%zu", j->id, p - first);
        r->counts.jobs_service += r->jobs[p].kind == CS_JOB_SERVICE;
    }
    r->counts.jobs += pieces;
    r->counts.jobs_unrun += pieces == 0;
    r->counts.jobs_split += pieces > 1;
    return CS_OK;
}

int sim_replay_open(const sim_conf *c, int64_t run_ns, sim_replay **out, cs_error *err)
{
    *out = NULL;
    struct stat st;
    if (stat(c->trace, &st) != 0 || !S_ISDIR(st.st_mode))
        return cs_errorf(err, CS_EINVAL, "--trace %s: %s", c->trace,
                         errno == 0 || S_ISREG(st.st_mode) ? "not a directory" : strerror(errno));
    uint64_t run_s = (uint64_t)(run_ns / 1000000000);
    uint64_t start_s = c->trace_from * 1000000 < CS_TRACE_START_US ? CS_TRACE_START_US / 1000000
                                                                   : c->trace_from;
    if (c->trace_to != 0 && c->trace_to <= c->trace_from)
        return cs_errorf(err, CS_EINVAL, "--trace-to %" PRIu64 " must be after --trace-from %" PRIu64,
                         c->trace_to, c->trace_from);
    if (c->trace_to != 0 && c->trace_to > start_s + run_s)
        return cs_errorf(err, CS_EINVAL,
                         "--trace-to %" PRIu64 " is past the run's end (trace second %" PRIu64
                         ": the window's start plus --days): give more days",
                         c->trace_to, start_s + run_s);
    sim_replay *r = calloc(1, sizeof *r);
    if (r == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    int rc;
    r->scale = (cs_trace_scale){llround(c->trace_cpu * 1000), llround(c->trace_mem * 1024)};
    r->start_us = start_s * 1000000;
    r->run_ns = run_ns;
    cs_trace_opts o;
    cs_trace_opts_default(&o);
    o.from_s = c->trace_from;
    o.to_s = c->trace_to ? c->trace_to : start_s + run_s;
    o.job_limit = c->trace_jobs;
    o.service_min_priority = (uint8_t)c->trace_service_priority;
    o.service_min_class = (uint8_t)c->trace_service_class;
    if ((rc = cs_trace_read(c->trace, &o, &r->t, err)) != CS_OK) {
        cs_error_wrap(err, rc, "--trace %s", c->trace);
        goto fail;
    }
    for (size_t i = 0; i < r->t.njobs; i++)
        if ((rc = build_job(r, &r->t.jobs[i], err)) != CS_OK)
            goto fail;
    /* Events at the start are in the start's machines. */
    while (r->mev < r->t.nmachine_events && r->t.machine_events[r->mev].time_us <= r->start_us)
        r->mev++;
    *out = r;
    return CS_OK;
fail:
    sim_replay_free(r);
    return rc;
}

void sim_replay_free(sim_replay *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->njobs; i++) {
        free(r->jobs[i].task_ns);
        free(r->jobs[i].attempt);
    }
    free(r->jobs);
    free(r->caps);
    cs_trace_free(&r->t);
    free(r);
}

static void machine_name(char *buf, size_t size, uint64_t id)
{
    snprintf(buf, size, "g%" PRIu64, id);
}

static int put_machine(sim_replay *r, cs_store *s, uint64_t id, double cpu, double mem, cs_res *got,
                       cs_error *err)
{
    char name[32];
    machine_name(name, sizeof name, id);
    cs_res cap;
    int rc = cs_trace_res(&r->scale, cpu, mem, &cap, err);
    if (rc != CS_OK)
        return cs_error_wrap(err, rc, "machine %s", name);
    cs_machine m = {.name = name, .capacity = cap, .state = CS_MACHINE_UP};
    rc = cs_op_machine_put(s, &m, NULL, NULL, err);
    if (rc == CS_ESTATE) {
        /* Less than its tasks hold: the state machine refuses it; the
         * machine keeps room for them (counted). */
        cs_snap *snap;
        cs_arena a;
        cs_arena_init(&a);
        cs_machine cur;
        if ((rc = cs_snap_open(s, &snap, err)) != CS_OK)
            return cs_error_wrap(err, rc, "machine %s", name);
        rc = cs_snap_machine_by_name(snap, name, &a, &cur, err);
        cs_snap_close(snap);
        if (rc == CS_OK) {
            m.capacity.cpu = cap.cpu > cur.allocated.cpu ? cap.cpu : cur.allocated.cpu;
            m.capacity.mem = cap.mem > cur.allocated.mem ? cap.mem : cur.allocated.mem;
            m.capacity.disk = cap.disk > cur.allocated.disk ? cap.disk : cur.allocated.disk;
            r->counts.updates_raised++;
            rc = cs_op_machine_put(s, &m, NULL, NULL, err);
        }
        cs_arena_free(&a);
    }
    if (rc != CS_OK)
        return cs_error_wrap(err, rc, "registering machine %s", name);
    if (got != NULL)
        *got = m.capacity;
    return CS_OK;
}

int sim_replay_machines(sim_replay *r, cs_store *s, const cs_res **caps, size_t *n, cs_error *err)
{
    cs_trace_machine *ms;
    size_t nm;
    if (cs_trace_machines_at(&r->t, r->start_us, &ms, &nm) != CS_OK)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    int rc = CS_OK;
    free(r->caps);
    if ((r->caps = calloc(nm ? nm : 1, sizeof *r->caps)) == NULL) {
        rc = cs_errorf(err, CS_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < nm && rc == CS_OK; i++)
        rc = put_machine(r, s, ms[i].id, ms[i].cpu, ms[i].mem, &r->caps[i], err);
    r->ncaps = nm;
    r->counts.machines_start = nm;
    *caps = r->caps;
    *n = nm;
out:
    free(ms);
    return rc;
}

int64_t sim_replay_next_ns(const sim_replay *r)
{
    int64_t t = INT64_MAX;
    if (r->mev < r->t.nmachine_events)
        t = sim_ns(r, r->t.machine_events[r->mev].time_us);
    if (r->next < r->njobs && r->jobs[r->next].at_ns < t)
        t = r->jobs[r->next].at_ns;
    return t;
}

typedef struct lost_ctx {
    cs_id **v;
    size_t *n, *cap;
} lost_ctx;

static int lost_one(void *ctx, const cs_task *t)
{
    lost_ctx *l = ctx;
    cs_id *v = cs_vec_grow(*l->v, l->cap, *l->n + 1, sizeof *v, 256);
    if (v == NULL)
        return CS_ENOMEM;
    *l->v = v;
    v[(*l->n)++] = t->id;
    return 0;
}

/* Machine `id` goes down: its tasks, listed first, are lost. */
static int remove_machine(sim_replay *r, cs_store *s, uint64_t id, cs_id **lost, size_t *nlost,
                          size_t *cap, cs_error *err)
{
    char name[32];
    machine_name(name, sizeof name, id);
    cs_snap *snap;
    cs_arena a;
    cs_arena_init(&a);
    cs_machine m;
    int rc = cs_snap_open(s, &snap, err);
    if (rc != CS_OK)
        goto out;
    size_t before = *nlost;
    rc = cs_snap_machine_by_name(snap, name, &a, &m, err);
    if (rc == CS_OK) {
        lost_ctx l = {lost, nlost, cap};
        rc = cs_snap_each_task_on_machine(snap, m.id, lost_one, &l, err);
        if (rc == CS_ENOMEM)
            cs_errorf(err, CS_ENOMEM, "out of memory");
    }
    cs_snap_close(snap);
    if (rc == CS_OK)
        rc = cs_op_machine_state(s, m.id, CS_MACHINE_DOWN, NULL, err);
    if (rc == CS_OK) {
        r->counts.machine_removes++;
        r->counts.tasks_lost += *nlost - before;
    }
out:
    cs_arena_free(&a);
    return rc == CS_OK ? rc : cs_error_wrap(err, rc, "removing machine %s", name);
}

int sim_replay_machine_events(sim_replay *r, cs_store *s, int64_t now_ns, cs_id **lost,
                              size_t *nlost, size_t *cap, cs_error *err)
{
    while (r->mev < r->t.nmachine_events && sim_ns(r, r->t.machine_events[r->mev].time_us) <= now_ns) {
        const cs_trace_machine_event *e = &r->t.machine_events[r->mev++];
        switch (e->type) {
        case CS_TRACE_MACHINE_REMOVE:
            CS_TRY(remove_machine(r, s, e->machine, lost, nlost, cap, err));
            break;
        case CS_TRACE_MACHINE_ADD:
            CS_TRY(put_machine(r, s, e->machine, e->cpu, e->mem, NULL, err));
            r->counts.machine_adds++;
            break;
        default:
            CS_TRY(put_machine(r, s, e->machine, e->cpu, e->mem, NULL, err));
            r->counts.machine_updates++;
            break;
        }
    }
    return CS_OK;
}

const sim_replay_job *sim_replay_next_job(sim_replay *r, int64_t now_ns)
{
    return r->next < r->njobs && r->jobs[r->next].at_ns <= now_ns ? &r->jobs[r->next++] : NULL;
}

const sim_replay_counts *sim_replay_counts_of(const sim_replay *r) { return &r->counts; }
const cs_trace_counts *sim_replay_trace_counts(const sim_replay *r) { return &r->t.counts; }

void sim_replay_report(const sim_replay_counts *c, const cs_trace_counts *t, FILE *f)
{
#define SIM_REPLAY_PRINT(name, text) fprintf(f, "%12llu  %s\n", (unsigned long long)c->name, text);
    SIM_REPLAY_COUNTS(SIM_REPLAY_PRINT)
#undef SIM_REPLAY_PRINT
    cs_trace tr = {.counts = *t};
    cs_trace_report(&tr, f);
}
