/* cellctl_show.c — get, describe, stats and watch (see cellctl_show.h). */
#include "tools/cellctl_show.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "agent/isolate.h"
#include "cellstate/jobopts.h"
#include "proto/proto.h"
#include "proto/readmsg.h"
#include "schedulers/backoff.h"
#include "tools/cellctl_ops.h"
#include "proto/schedreport.h"
#include "tools/cellctl_members.h"
#include "tools/cellctl_table.h"

/* Reasons can be 1 KiB; a table cell shows the start. */
#define REASON_CELL 80

/* ---- tables ------------------------------------------------------------------------ */

/* A machine's isolation level: the attribute its cell-agent reports it in
 * (agent/isolate.h), shown as its own column rather than among ATTRS; "-"
 * for machines without one (simulated, or agents from before it). */
static const char *isolation_of(const cs_machine *m)
{
    for (uint32_t k = 0; k < m->nattrs; k++)
        if (strcmp(m->attrs[k].key, AG_ISO_ATTR) == 0)
            return m->attrs[k].value;
    return "-";
}

static int machines_table(const ctl_cell *cell, const char *state, FILE *f, size_t width,
                          cs_error *err)
{
    static const char *const h[] = {"NAME",   ">ID",   "STATE",     ">CPU",  ">MEM(MiB)",
                                    ">DISK(MiB)", ">TASKS", "PORTS", "ISOLATION", "ATTRS",
                                    "TAINTS"};
    ctl_table t;
    int rc = ctl_table_init(&t, 11, h, err);
    for (uint32_t i = 0; rc == CS_OK && i < cell->nmachines; i++) {
        const cs_machine *m = &cell->machines[i];
        if (state && strcmp(state, cs_machine_state_name(m->state)) != 0)
            continue;
        char a[32], b[32], attrs[512] = "", taints[512] = "", st[48];
        size_t len = 0, tlen = 0;
        for (uint32_t k = 0; k < m->nattrs && len + 2 < sizeof attrs; k++)
            if (strcmp(m->attrs[k].key, AG_ISO_ATTR) != 0)
                len += (size_t)snprintf(attrs + len, sizeof attrs - len, "%s%s=%s",
                                        len ? "," : "", m->attrs[k].key, m->attrs[k].value);
        for (uint32_t k = 0; k < m->ntaints && tlen + 2 < sizeof taints; k++)
            tlen += (size_t)snprintf(taints + tlen, sizeof taints - tlen, "%s%s%s%s:%s",
                                     k ? "," : "", m->taints[k].key,
                                     m->taints[k].value[0] ? "=" : "", m->taints[k].value,
                                     cs_taint_effect_name(m->taints[k].effect));
        if ((rc = ctl_table_cellf(&t, err, "%s", m->name)) ||
            (rc = ctl_table_cellf(&t, err, "%" PRIu64, m->id)) ||
            (rc = ctl_table_cellf(&t, err, "%s", ctl_machine_status(m, st, sizeof st))) ||
            (rc = ctl_table_cellf(&t, err, "%s/%s", ctl_cores(m->allocated.cpu, a, sizeof a),
                                  ctl_cores(m->capacity.cpu, b, sizeof b))) ||
            (rc = ctl_table_cellf(&t, err, "%" PRId64 "/%" PRId64, m->allocated.mem,
                                  m->capacity.mem)) ||
            (rc = ctl_table_cellf(&t, err, "%" PRId64 "/%" PRId64, m->allocated.disk,
                                  m->capacity.disk)) ||
            (rc = ctl_table_cellf(&t, err, "%u", m->ntasks)) ||
            (rc = m->port_lo ? ctl_table_cellf(&t, err, "%u-%u", m->port_lo, m->port_hi)
                             : ctl_table_cellf(&t, err, "-")) ||
            (rc = ctl_table_cellf(&t, err, "%s", isolation_of(m))) ||
            (rc = ctl_table_cellf(&t, err, "%s", len ? attrs : "-")) ||
            (rc = ctl_table_cellf(&t, err, "%s", tlen ? taints : "-")))
            break;
    }
    if (rc == CS_OK)
        ctl_table_print(&t, f, width);
    ctl_table_free(&t);
    return rc;
}

/* A task's health as a table shows it: only a running task has one. */
static const char *health_cell(const cs_task *k)
{
    return k->state == CS_TASK_RUNNING ? cs_task_health_name(k->health) : "-";
}

/* Tasks of the cell; `active_only` keeps pending and placed ones. */
static int tasks_table(const ctl_cell *cell, bool active_only, FILE *f, size_t width, cs_error *err)
{
    static const char *const h[] = {">ID",     "JOB",   ">INDEX",    "STATE", "HEALTH",
                                    "MACHINE", "PORTS", ">ATTEMPTS", ">EXIT", "REASON"};
    ctl_table t;
    int rc = ctl_table_init(&t, 10, h, err);
    for (uint32_t i = 0; rc == CS_OK && i < cell->ntasks; i++) {
        const cs_task *k = &cell->tasks[i];
        if (active_only && cs_task_state_final(k->state))
            continue;
        char jb[32], mb[32], pb[128];
        if ((rc = ctl_table_cellf(&t, err, "%" PRIu64, k->id)) ||
            (rc = ctl_table_cellf(&t, err, "%s", ctl_job_name(cell, k->job, jb, sizeof jb))) ||
            (rc = ctl_table_cellf(&t, err, "%u", k->index)) ||
            (rc = ctl_table_cellf(&t, err, "%s", cs_task_state_name(k->state))) ||
            (rc = ctl_table_cellf(&t, err, "%s", health_cell(k))) ||
            (rc = ctl_table_cellf(&t, err, "%s",
                                  k->machine ? ctl_machine_name(cell, k->machine, mb, sizeof mb)
                                             : "-")) ||
            (rc = ctl_table_cellf(&t, err, "%s", ctl_ports(k->ports, k->nports, pb, sizeof pb))) ||
            (rc = ctl_table_cellf(&t, err, "%u", k->attempts)) ||
            (rc = ctl_table_cellf(&t, err, "%d", k->exit_code)) ||
            (rc = ctl_table_cellf(&t, err, "%.*s%s", REASON_CELL, k->reason,
                                  strlen(k->reason) > REASON_CELL ? "..." : "")))
            break;
    }
    if (rc == CS_OK)
        ctl_table_print(&t, f, width);
    ctl_table_free(&t);
    return rc;
}

/* Tasks of job `id` per state. */
static void count_tasks(const ctl_cell *cell, cs_id id, uint32_t n[CS_TASK_STATE_COUNT])
{
    memset(n, 0, CS_TASK_STATE_COUNT * sizeof *n);
    for (uint32_t i = 0; i < cell->ntasks; i++)
        if (cell->tasks[i].job == id)
            n[cell->tasks[i].state]++;
}

static int jobs_table(const ctl_cell *cell, const char *state, FILE *f, cs_error *err)
{
    static const char *const h[] = {"NAME",      ">ID",    "KIND",      "STATE",
                                    ">PRIORITY", ">COUNT", ">PENDING",  ">PLACED",
                                    ">ENDED",    ">CPU",   ">MEM(MiB)", ">DISK(MiB)"};
    ctl_table t;
    int rc = ctl_table_init(&t, 12, h, err);
    for (uint32_t i = 0; rc == CS_OK && i < cell->njobs; i++) {
        const cs_job *j = &cell->jobs[i];
        if (state && strcmp(state, cs_job_state_name(j->state)) != 0)
            continue;
        uint32_t n[CS_TASK_STATE_COUNT];
        count_tasks(cell, j->id, n);
        char cb[32];
        if ((rc = ctl_table_cellf(&t, err, "%s", j->name)) ||
            (rc = ctl_table_cellf(&t, err, "%" PRIu64, j->id)) ||
            (rc = ctl_table_cellf(&t, err, "%s", cs_job_kind_name(j->kind))) ||
            (rc = ctl_table_cellf(&t, err, "%s", cs_job_state_name(j->state))) ||
            (rc = ctl_table_cellf(&t, err, "%d", j->priority)) ||
            /* "4+2": a rolling update runs surge tasks beside the count. */
            (rc = j->surge ? ctl_table_cellf(&t, err, "%u+%u", j->count, j->surge)
                           : ctl_table_cellf(&t, err, "%u", j->count)) ||
            (rc = ctl_table_cellf(&t, err, "%u", n[CS_TASK_PENDING])) ||
            (rc = ctl_table_cellf(&t, err, "%u", n[CS_TASK_ASSIGNED] + n[CS_TASK_RUNNING])) ||
            (rc = ctl_table_cellf(&t, err, "%u",
                                  n[CS_TASK_FINISHED] + n[CS_TASK_FAILED] + n[CS_TASK_KILLED] +
                                      n[CS_TASK_LOST] + n[CS_TASK_PREEMPTED])) ||
            (rc = ctl_table_cellf(&t, err, "%s", ctl_cores(j->res.cpu, cb, sizeof cb))) ||
            (rc = ctl_table_cellf(&t, err, "%" PRId64, j->res.mem)) ||
            (rc = ctl_table_cellf(&t, err, "%" PRId64, j->res.disk)))
            break;
    }
    if (rc == CS_OK)
        ctl_table_print(&t, f, 0);
    ctl_table_free(&t);
    return rc;
}

/* ---- get ------------------------------------------------------------------------- */

/* "machines", "machine" or "m"; the same for jobs and tasks. */
static bool is_kind(const char *what, const char *plural)
{
    size_t n = strlen(plural);
    return strcmp(what, plural) == 0 ||
           (strncmp(what, plural, n - 1) == 0 && what[n - 1] == '\0') ||
           (what[0] == plural[0] && what[1] == '\0');
}

/* --state against a record kind's states (spec/celljson.h). */
static int check_state(const char *state, const char *what, const char *(*name)(uint8_t),
                       uint8_t count, cs_error *err)
{
    return cs_cellview_check_state("--state", state, what, name, count, CTL_EUSAGE, err);
}

static int json_array_of_machines(const ctl_cell *cell, const char *state, cs_error *err)
{
    json_t *arr = json_array();
    bool ok = arr != NULL;
    for (uint32_t i = 0; ok && i < cell->nmachines; i++)
        if (state == NULL || strcmp(state, cs_machine_state_name(cell->machines[i].state)) == 0)
            ok = json_array_append_new(arr, ctl_machine_json(&cell->machines[i])) == 0;
    int rc = ok ? ctl_print_json(arr, err) : cs_errorf(err, CS_ENOMEM, "out of memory");
    json_decref(arr);
    return rc;
}

static int json_array_of_jobs(const ctl_cell *cell, const char *state, cs_error *err)
{
    json_t *arr = json_array();
    bool ok = arr != NULL;
    for (uint32_t i = 0; ok && i < cell->njobs; i++)
        if (state == NULL || strcmp(state, cs_job_state_name(cell->jobs[i].state)) == 0)
            ok = json_array_append_new(arr, ctl_job_json(&cell->jobs[i], cell, err)) == 0;
    int rc = ok ? ctl_print_json(arr, err) : cs_errorf(err, CS_ENOMEM, "out of memory");
    json_decref(arr);
    return rc;
}

static int json_array_of_tasks(const ctl_cell *cell, cs_error *err)
{
    json_t *arr = json_array();
    bool ok = arr != NULL;
    for (uint32_t i = 0; ok && i < cell->ntasks; i++)
        ok = json_array_append_new(arr, ctl_task_json(cell, &cell->tasks[i])) == 0;
    int rc = ok ? ctl_print_json(arr, err) : cs_errorf(err, CS_ENOMEM, "out of memory");
    json_decref(arr);
    return rc;
}

static int get(ctl *c, const ctl_args *a, ctl_cell *cell, cs_error *err)
{
    if (a->argc != 1)
        return cs_errorf(err, CTL_EUSAGE, "get: say what to list: machines, jobs or tasks");
    const char *what = a->argv[0];
    bool tasks = is_kind(what, "tasks");
    if (!tasks && (a->job || a->machine))
        return cs_errorf(err, CTL_EUSAGE, "get %s: --job and --machine filter tasks only", what);
    if (is_kind(what, "machines")) {
        CS_TRY(check_state(a->state, "machine", cs_machine_state_name, CS_MACHINE_STATE_COUNT, err));
        CS_TRY(ctl_fetch_machines(c, cell, err));
        return c->output == CTL_OUT_JSON ? json_array_of_machines(cell, a->state, err)
                                         : machines_table(cell, a->state, stdout, 0, err);
    }
    if (is_kind(what, "jobs")) {
        CS_TRY(check_state(a->state, "job", cs_job_state_name, CS_JOB_STATE_COUNT, err));
        CS_TRY(ctl_fetch_jobs(c, cell, err));
        CS_TRY(ctl_fetch_tasks(c, cell, NULL, NULL, NULL, err));
        return c->output == CTL_OUT_JSON ? json_array_of_jobs(cell, a->state, err)
                                         : jobs_table(cell, a->state, stdout, err);
    }
    if (tasks) {
        CS_TRY(check_state(a->state, "task", cs_task_state_name, CS_TASK_STATE_COUNT, err));
        CS_TRY(ctl_fetch_machines(c, cell, err));
        CS_TRY(ctl_fetch_jobs(c, cell, err));
        CS_TRY(ctl_fetch_tasks(c, cell, a->job, a->machine, a->state, err));
        return c->output == CTL_OUT_JSON ? json_array_of_tasks(cell, err)
                                         : tasks_table(cell, false, stdout, 0, err);
    }
    return cs_errorf(err, CTL_EUSAGE, "get: '%s' is not machines, jobs or tasks", what);
}

int ctl_cmd_get(ctl *c, const ctl_args *a, cs_error *err)
{
    ctl_cell cell;
    ctl_cell_init(&cell);
    int rc = get(c, a, &cell, err);
    ctl_cell_free(&cell);
    return rc;
}

/* ---- describe ------------------------------------------------------------------------ */

/* Milliseconds as "1.5s", "30s", "500ms". */
static const char *fmt_ms(uint32_t ms, char *buf, size_t size)
{
    if (ms < 1000 && ms != 0)
        snprintf(buf, size, "%ums", ms);
    else {
        char cores[32]; /* the same three-decimal trim as cores */
        snprintf(buf, size, "%ss", ctl_cores(ms, cores, sizeof cores));
    }
    return buf;
}

static void describe_health(const cs_health *h, bool first)
{
    char g[32], i[32], t[32];
    printf("%-13s %s", first ? "Health:" : "", cs_health_proto_name(h->proto));
    if (h->proto == CS_HEALTH_COMMAND)
        printf(" `%s`", h->command);
    else if (h->proto == CS_HEALTH_HTTP)
        printf(" GET %s on $PORT%u", h->path, h->port_index);
    else
        printf(" connect to $PORT%u", h->port_index);
    printf(", grace %s, every %s, timeout %s, ", fmt_ms(h->grace_ms, g, sizeof g),
           fmt_ms(h->interval_ms, i, sizeof i), fmt_ms(h->timeout_ms, t, sizeof t));
    if (h->max_failures)
        printf("killed after %u failures\n", h->max_failures);
    else
        printf("never killed\n");
}

static void describe_options(const cs_jobopts *o)
{
    char b[32];
    for (uint32_t i = 0; i < o->nhealth; i++)
        describe_health(&o->health[i], i == 0);
    printf("%-13s minimum health capacity %g, maximum over capacity %g\n",
           "Update:", o->min_health_pm / 1000.0, o->max_over_pm / 1000.0);
    for (uint32_t i = 0; i < o->nenv; i++)
        printf("%-13s %s=%s\n", i ? "" : "Env:", o->env[i].key, o->env[i].value);
    for (uint32_t i = 0; i < o->nvolumes; i++)
        printf("%-13s %s (%s)\n", i ? "" : "Volumes:", o->volumes[i].path,
               o->volumes[i].rw ? "rw" : "ro");
    if (o->gang || o->global)
        printf("%-13s %s%s%s\n", "Placement:", o->gang ? "gang (all or nothing)" : "",
               o->gang && o->global ? ", " : "", o->global ? "global (one per machine)" : "");
    for (uint32_t i = 0; i < o->ntolerations; i++) {
        const cs_toleration *t = &o->tolerations[i];
        char secs[32] = "";
        if (t->has_seconds)
            snprintf(secs, sizeof secs, " for %us", t->seconds);
        printf("%-13s %s %s%s%s, %s%s\n", i ? "" : "Tolerations:", t->key[0] ? t->key : "*",
               cs_toleration_op_name(t->op), t->op == CS_TOL_EQUAL ? " " : "",
               t->op == CS_TOL_EQUAL ? t->value : "",
               t->effect == CS_TOL_ANY_EFFECT ? "any effect" : cs_taint_effect_name(t->effect),
               secs);
    }
    printf("%-13s %u\n", "Max retries:", o->max_retries);
    printf("%-13s %s\n", "Kill grace:", fmt_ms(o->kill_grace_ms, b, sizeof b));
    if (o->duration_ms)
        printf("%-13s %s (simulated agents)\n", "Duration:", fmt_ms(o->duration_ms, b, sizeof b));
}

/* Wall-clock milliseconds as local time: "2024-05-01 14:03:07 CEST". */
static const char *fmt_local(uint64_t ms, char *buf, size_t size)
{
    if (ms == 0) {
        snprintf(buf, size, "unknown");
        return buf;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (localtime_r(&t, &tm) == NULL || strftime(buf, size, "%Y-%m-%d %H:%M:%S %Z", &tm) == 0)
        snprintf(buf, size, "%" PRIu64 " ms since the epoch", ms);
    return buf;
}

/* The job's note; a restart back-off's says how long is left rather than
 * when (the note holds the time, so that it need not be rewritten as time
 * passes). */
static void print_note(const char *note)
{
    uint64_t start;
    const char *rest;
    struct timespec ts;
    if (!cs_backoff_note_parse(note, &start, &rest) || clock_gettime(CLOCK_REALTIME, &ts) != 0) {
        printf("%-13s %s\n", "Note:", note);
        return;
    }
    uint64_t now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    uint64_t left = start > now ? (start - now + 999) / 1000 : 0;
    if (left == 0)
        printf("%-13s back-off: next start now%s\n", "Note:", rest);
    else
        printf("%-13s back-off: next start in %" PRIu64 " s%s\n", "Note:", left, rest);
}

static int describe_job(ctl *c, const char *name, ctl_cell *cell, cs_error *err)
{
    CS_TRY(ctl_fetch_machines(c, cell, err));
    CS_TRY(ctl_fetch_job(c, cell, name, err));
    const cs_job *j = &cell->jobs[0];
    if (c->output == CTL_OUT_JSON) {
        /* `submitted` and `note` beside the job, not in it: the job object
         * is a spec that `cellctl submit` takes back, and they are not. */
        json_t *o = json_object(), *tasks = json_array();
        bool ok = o && tasks && json_object_set_new(o, "job", ctl_job_json(j, cell, err)) == 0 &&
                  json_object_set_new(o, "submitted", json_integer((json_int_t)j->submitted)) == 0 &&
                  json_object_set_new(o, "ended", json_integer((json_int_t)j->ended)) == 0 &&
                  json_object_set_new(o, "note", json_string(j->note)) == 0;
        for (uint32_t i = 0; ok && i < cell->ntasks; i++)
            ok = json_array_append_new(tasks, ctl_task_json(cell, &cell->tasks[i])) == 0;
        ok = ok && json_object_set(o, "tasks", tasks) == 0;
        int rc = ok ? ctl_print_json(o, err) : cs_errorf(err, CS_ENOMEM, "out of memory");
        json_decref(tasks);
        json_decref(o);
        return rc;
    }
    cs_jobopts o;
    CS_TRY(cs_job_opts(j, &cell->a, &o, err));
    char b1[32], pb[512];
    printf("%-13s %s\n%-13s %" PRIu64 "\n%-13s %s\n%-13s %s\n%-13s %d\n%-13s %u\n",
           "Name:", j->name, "ID:", j->id, "Kind:", cs_job_kind_name(j->kind),
           "State:", cs_job_state_name(j->state), "Priority:", j->priority, "Count:", j->count);
    if (j->surge)
        printf("%-13s %u (rolling update: tasks beside the count, stopped when it is done)\n",
               "Surge:", j->surge);
    char when[64];
    printf("%-13s %s\n", "Submitted:", fmt_local(j->submitted, when, sizeof when));
    if (j->ended != 0)
        printf("%-13s %s\n", "Ended:", fmt_local(j->ended, when, sizeof when));
    if (j->note[0] != '\0')
        print_note(j->note);
    printf("%-13s %s\n", "Command:", j->cmd);
    printf("%-13s cpu %s, mem %" PRId64 " MiB, disk %" PRId64 " MiB (per task)\n",
           "Resources:", ctl_cores(j->res.cpu, b1, sizeof b1), j->res.mem, j->res.disk);
    size_t len = 0;
    pb[0] = '\0';
    for (uint32_t i = 0; i < j->nports && len + 16 < sizeof pb; i++)
        len +=
            (size_t)(j->ports[i]
                         ? snprintf(pb + len, sizeof pb - len, "%s%u", i ? ", " : "", j->ports[i])
                         : snprintf(pb + len, sizeof pb - len, "%sdynamic", i ? ", " : ""));
    printf("%-13s %s\n", "Ports:", j->nports ? pb : "none");
    for (uint32_t i = 0; i < j->nconstraints; i++) {
        const cs_constraint *k = &j->constraints[i];
        printf("%-13s %s %s%s%s%s\n", i ? "" : "Constraints:", k->field, k->op,
               k->value[0] ? " " : "", k->value, k->soft ? " (soft: a preference)" : "");
    }
    describe_options(&o);
    uint32_t n[CS_TASK_STATE_COUNT];
    count_tasks(cell, j->id, n);
    printf("%-13s %" PRIu64 " (spec hash %016" PRIx64 ")\n", "Version:", j->version, j->spec_hash);
    printf("%-13s %u:", "Tasks:", cell->ntasks);
    for (uint8_t s = 0, first = 1; s < CS_TASK_STATE_COUNT; s++)
        if (n[s]) {
            printf("%s %u %s", first ? "" : ",", n[s], cs_task_state_name(s));
            first = 0;
        }
    printf("\n");
    if (cell->ntasks == 0)
        return CS_OK;
    printf("\n");
    CS_TRY(tasks_table(cell, false, stdout, 0, err));
    if (n[CS_TASK_PENDING] == 0)
        return CS_OK;
    /* Why each pending task waits: the reason the schedulers (or the end of
     * its last attempt) left on it. */
    printf("\nPending:\n");
    for (uint32_t i = 0; i < cell->ntasks; i++) {
        const cs_task *k = &cell->tasks[i];
        if (k->state != CS_TASK_PENDING)
            continue;
        /* Without a reason of its own, a task waits for what the job's note
         * says, when there is one. */
        printf("  %s[%u] (task %" PRIu64 "): %s", j->name, k->index, k->id,
               k->reason[0]    ? k->reason
               : j->note[0]    ? "waiting: see the note above"
                               : "waiting for a scheduler (no reason reported yet)");
        if (k->last_end != CS_TASK_PENDING)
            printf(" (last attempt %s)", cs_task_state_name(k->last_end));
        printf("\n");
    }
    return CS_OK;
}

static int describe_machine(ctl *c, const char *name, ctl_cell *cell, cs_error *err)
{
    CS_TRY(ctl_fetch_machines(c, cell, err));
    CS_TRY(ctl_fetch_jobs(c, cell, err));
    const cs_machine *m = NULL;
    for (uint32_t i = 0; i < cell->nmachines && m == NULL; i++)
        if (strcmp(cell->machines[i].name, name) == 0)
            m = &cell->machines[i];
    if (m == NULL)
        return cs_errorf(err, CS_ENOTFOUND, "describe: no machine is named '%s'", name);
    CS_TRY(ctl_fetch_tasks(c, cell, NULL, name, NULL, err));
    if (c->output == CTL_OUT_JSON) {
        json_t *o = json_object(), *tasks = json_array();
        bool ok = o && tasks && json_object_set_new(o, "machine", ctl_machine_json(m)) == 0;
        for (uint32_t i = 0; ok && i < cell->ntasks; i++)
            ok = json_array_append_new(tasks, ctl_task_json(cell, &cell->tasks[i])) == 0;
        ok = ok && json_object_set(o, "tasks", tasks) == 0;
        int rc = ok ? ctl_print_json(o, err) : cs_errorf(err, CS_ENOMEM, "out of memory");
        json_decref(tasks);
        json_decref(o);
        return rc;
    }
    char a[32], b[32], pb[1024], st[48];
    printf("%-13s %s\n%-13s %" PRIu64 "\n%-13s %s\n", "Name:", m->name, "ID:", m->id,
           "State:", ctl_machine_status(m, st, sizeof st));
    if (m->log_url != NULL && m->log_url[0] != '\0')
        printf("%-13s %s\n", "Logs:", m->log_url);
    for (uint32_t i = 0; i < m->nattrs; i++)
        printf("%-13s %s=%s\n", i ? "" : "Attributes:", m->attrs[i].key, m->attrs[i].value);
    for (uint32_t i = 0; i < m->ntaints; i++)
        printf("%-13s %s%s%s:%s\n", i ? "" : "Taints:", m->taints[i].key,
               m->taints[i].value[0] ? "=" : "", m->taints[i].value,
               cs_taint_effect_name(m->taints[i].effect));
    printf("%-13s cpu %s, mem %" PRId64 " MiB, disk %" PRId64 " MiB\n",
           "Capacity:", ctl_cores(m->capacity.cpu, a, sizeof a), m->capacity.mem, m->capacity.disk);
    printf("%-13s cpu %s, mem %" PRId64 " MiB, disk %" PRId64 " MiB\n",
           "Allocated:", ctl_cores(m->allocated.cpu, b, sizeof b), m->allocated.mem,
           m->allocated.disk);
    if (m->port_lo)
        printf("%-13s %u-%u, in use: %s\n", "Ports:", m->port_lo, m->port_hi,
               ctl_ports(m->ports, m->nports, pb, sizeof pb));
    printf("%-13s %u placed; %u here now or before\n", "Tasks:", m->ntasks, cell->ntasks);
    if (cell->ntasks == 0)
        return CS_OK;
    printf("\n");
    return tasks_table(cell, false, stdout, 0, err);
}

int ctl_cmd_describe(ctl *c, const ctl_args *a, cs_error *err)
{
    if (a->argc != 2)
        return cs_errorf(err, CTL_EUSAGE,
                         "describe: say what: describe job NAME, or describe "
                         "machine NAME");
    ctl_cell cell;
    ctl_cell_init(&cell);
    int rc;
    if (is_kind(a->argv[0], "jobs"))
        rc = describe_job(c, a->argv[1], &cell, err);
    else if (is_kind(a->argv[0], "machines"))
        rc = describe_machine(c, a->argv[1], &cell, err);
    else
        rc = cs_errorf(err, CTL_EUSAGE, "describe: '%s' is not job or machine", a->argv[0]);
    ctl_cell_free(&cell);
    return rc;
}

/* ---- endpoints ------------------------------------------------------------------------ */

/* Whether clients may be sent to task `k`: it runs, and its health checks
 * pass — or, for a job without checks, nothing says otherwise. */
static bool serving(const cs_task *k, bool has_checks)
{
    return k->state == CS_TASK_RUNNING &&
           (k->health == CS_TASK_HEALTH_HEALTHY ||
            (!has_checks && k->health == CS_TASK_HEALTH_UNKNOWN));
}

static int endpoints(ctl *c, const char *job, ctl_cell *cell, cs_error *err)
{
    CS_TRY(ctl_fetch_machines(c, cell, err));
    CS_TRY(ctl_fetch_job(c, cell, job, err));
    cs_jobopts o;
    CS_TRY(cs_job_opts(&cell->jobs[0], &cell->a, &o, err));
    json_t *arr = c->output == CTL_OUT_JSON ? json_array() : NULL;
    bool ok = c->output != CTL_OUT_JSON || arr != NULL;
    for (uint32_t i = 0; ok && i < cell->ntasks; i++) {
        const cs_task *k = &cell->tasks[i];
        if (!serving(k, o.nhealth > 0))
            continue;
        char mb[32];
        const char *host = ctl_machine_name(cell, k->machine, mb, sizeof mb);
        if (arr != NULL) {
            json_t *e = json_object(), *ports = json_array();
            for (uint32_t p = 0; ports && p < k->nports; p++)
                ok &= json_array_append_new(ports, json_integer(k->ports[p])) == 0;
            ok &= e && ports && json_object_set_new(e, "task", json_integer((json_int_t)k->id)) == 0 &&
                  json_object_set_new(e, "host", json_string(host)) == 0 &&
                  json_object_set(e, "ports", ports) == 0 && json_array_append(arr, e) == 0;
            json_decref(ports);
            json_decref(e);
            continue;
        }
        /* host:PORT0, then the other ports as more columns: what a script
         * reads with `read addr rest`. */
        printf("%s", host);
        for (uint32_t p = 0; p < k->nports; p++)
            printf(p ? " %u" : ":%u", k->ports[p]);
        printf("\n");
    }
    int rc = ok ? (arr ? ctl_print_json(arr, err) : CS_OK)
                : cs_errorf(err, CS_ENOMEM, "out of memory");
    json_decref(arr);
    return rc;
}

int ctl_cmd_endpoints(ctl *c, const ctl_args *a, cs_error *err)
{
    if (a->argc != 1)
        return cs_errorf(err, CTL_EUSAGE, "endpoints: name one job");
    ctl_cell cell;
    ctl_cell_init(&cell);
    int rc = endpoints(c, a->argv[0], &cell, err);
    ctl_cell_free(&cell);
    return rc;
}

/* ---- stats -------------------------------------------------------------------------- */

/* A label, then "name value" pairs. */
static void print_pairs(const char *label, const char *const *names, const uint64_t *values,
                        int n)
{
    printf("%-13s", label);
    for (int i = 0; i < n; i++)
        printf("%s%s %" PRIu64, i ? ", " : "", names[i], values[i]);
    printf("\n");
}

/* A metric's value as it came: an integer, or a float with six digits. */
static void metric_cell(const msgpack_object *v, char *buf, size_t size)
{
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        snprintf(buf, size, "%" PRIu64, v->via.u64);
    else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        snprintf(buf, size, "%" PRId64, v->via.i64);
    else if (v->type == MSGPACK_OBJECT_FLOAT32 || v->type == MSGPACK_OBJECT_FLOAT64)
        snprintf(buf, size, "%.6g", v->via.f64);
    else
        snprintf(buf, size, "?");
}

/* The schedulers' latest reports (stats' "schedulers"): one row per
 * metric, the scheduler's name, kind and age on its first row, so that
 * schedulers reporting different metrics share one table. */
static int schedulers_table(const cs_stats_reply *st, cs_error *err)
{
    if (st->nscheds == 0) {
        printf("%-13s%s\n", "schedulers", "none reported");
        return CS_OK;
    }
    printf("\n");
    static const char *const h[] = {"SCHEDULER", "KIND", ">AGE", "METRIC", ">VALUE"};
    ctl_table t;
    int rc = ctl_table_init(&t, 5, h, err);
    for (uint32_t i = 0; rc == CS_OK && i < st->nscheds; i++) {
        const cs_stats_sched *s = &st->scheds[i];
        const msgpack_object *m = s->metrics;
        char ab[32];
        fmt_ms((uint32_t)s->age_ms, ab, sizeof ab);
        for (uint32_t k = 0; rc == CS_OK && k < (m->via.map.size ? m->via.map.size : 1); k++) {
            const msgpack_object *key = m->via.map.size ? &m->via.map.ptr[k].key : NULL;
            char vb[64] = "-";
            if (key != NULL)
                metric_cell(&m->via.map.ptr[k].val, vb, sizeof vb);
            int klen = key && key->type == MSGPACK_OBJECT_STR ? (int)key->via.str.size : 1;
            const char *kp = key && key->type == MSGPACK_OBJECT_STR ? key->via.str.ptr : "-";
            if ((rc = ctl_table_cellf(&t, err, "%s", k ? "" : s->name)) ||
                (rc = ctl_table_cellf(&t, err, "%s", k ? "" : s->kind)) ||
                (rc = ctl_table_cellf(&t, err, "%s", k ? "" : ab)) ||
                (rc = ctl_table_cellf(&t, err, "%.*s", klen, kp)) ||
                (rc = ctl_table_cellf(&t, err, "%s", vb)))
                break;
        }
    }
    if (rc == CS_OK)
        ctl_table_print(&t, stdout, 0);
    /* Standing warnings (a policy that ignores names) after the table. */
    for (uint32_t i = 0; rc == CS_OK && i < st->nscheds; i++)
        if (st->scheds[i].warning[0])
            printf("warning: %s: %s\n", st->scheds[i].name, st->scheds[i].warning);
    ctl_table_free(&t);
    return rc;
}

static double pct(int64_t part, int64_t whole)
{
    return whole > 0 ? 100.0 * (double)part / (double)whole : 0.0;
}

int ctl_cmd_stats(ctl *c, const ctl_args *a, cs_error *err)
{
    if (a->argc != 0)
        return cs_errorf(err, CTL_EUSAGE, "stats takes no arguments");
    cs_msg r;
    CS_TRY(ctl_call(c, CS_MSG_STATS, "\x80", 1, &r, err)); /* body {} */
    cs_arena sa;
    cs_arena_init(&sa);
    cs_stats_reply st;
    int rc = cs_stats_reply_decode(&r.body, &st, &sa, err);
    if (rc != CS_OK) {
        cs_arena_free(&sa);
        return cs_error_wrap(err, rc, "reply to stats");
    }
    cs_res cap = st.capacity, alloc = st.allocated;
    if (c->output == CTL_OUT_JSON) {
        json_t *o = cs_json_stats(&r.body, &st);
        rc = o ? ctl_print_json(o, err) : cs_errorf(err, CS_ENOMEM, "out of memory");
        json_decref(o);
        cs_arena_free(&sa);
        return rc;
    }
    char a1[32], a2[32];
    printf("%-13s%" PRIu64 "\n", "version", st.version);
    printf("%-13s%" PRIu64 " (%" PRIu64 " up)\n", "machines", st.machines, st.machines_up);
    printf("%-13s%" PRIu64 " (%" PRIu64 " active)\n", "jobs", st.jobs, st.jobs_active);
    const char *states[CS_TASK_STATE_COUNT];
    for (int i = 0; i < CS_TASK_STATE_COUNT; i++)
        states[i] = cs_task_state_name((uint8_t)i);
    print_pairs("tasks", states, st.tasks, CS_TASK_STATE_COUNT);
    printf("%-13scpu %s, mem %" PRId64 " MiB, disk %" PRId64 " MiB\n", "capacity",
           ctl_cores(cap.cpu, a1, sizeof a1), cap.mem, cap.disk);
    printf("%-13scpu %s (%.1f%%), mem %" PRId64 " MiB (%.1f%%), disk %" PRId64 " MiB (%.1f%%)\n",
           "allocated", ctl_cores(alloc.cpu, a2, sizeof a2), pct(alloc.cpu, cap.cpu), alloc.mem,
           pct(alloc.mem, cap.mem), alloc.disk, pct(alloc.disk, cap.disk));
    static const char *const counters[] = {"requests", "errors", "writes", "commits",
                                           "commits_conflicted", "claims", "claims_committed",
                                           "queued", "parked_polls", "inflight_bytes"};
    const cs_server_counters *k = &st.server;
    uint64_t kv[] = {k->requests, k->errors,  k->writes, k->commits,     k->commits_conflicted,
                     k->claims,   k->claims_committed, k->queued, k->parked_polls,
                     k->inflight_bytes};
    print_pairs("server", counters, kv, 10);
    printf("%-13s%" PRIu64 "\n", "workers", st.workers);
    rc = schedulers_table(&st, err);
    cs_arena_free(&sa);
    return rc;
}

/* ---- watch -------------------------------------------------------------------------- */

/* One frame: a summary line, the machines, the tasks not yet ended. */
static int frame(ctl *c, const ctl_args *a, FILE *f, size_t width, cs_error *err)
{
    ctl_cell cell;
    ctl_cell_init(&cell);
    int rc = ctl_fetch_machines(c, &cell, err);
    if (rc == CS_OK)
        rc = ctl_fetch_jobs(c, &cell, err);
    if (rc == CS_OK)
        rc = ctl_fetch_tasks(c, &cell, a->job, NULL, NULL, err);
    char clock[16], iv[32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(clock, sizeof clock, "%H:%M:%S", localtime_r(&now, &tm));
    fprintf(f, "cellctl watch   %s   version %" PRIu64 "   every %s   %s\n", c->url, cell.version,
            fmt_ms(a->interval_ms, iv, sizeof iv), clock);
    if (rc != CS_OK) {
        fprintf(f, "\nerror: %s\n", err->msg);
        ctl_cell_free(&cell);
        return rc;
    }
    uint32_t up = 0, n[CS_TASK_STATE_COUNT] = {0};
    cs_res cap = {0, 0, 0}, alloc = {0, 0, 0};
    for (uint32_t i = 0; i < cell.nmachines; i++) {
        up += cell.machines[i].state == CS_MACHINE_UP;
        cs_res_add(&cap, &cell.machines[i].capacity);
        cs_res_add(&alloc, &cell.machines[i].allocated);
    }
    for (uint32_t i = 0; i < cell.ntasks; i++)
        n[cell.tasks[i].state]++;
    char a1[32], a2[32];
    fprintf(f,
            "machines %u (%u up)   cpu %s/%s   mem %" PRId64 "/%" PRId64
            " MiB   tasks: %u pending, %u assigned, %u running, %u ended\n",
            cell.nmachines, up, ctl_cores(alloc.cpu, a1, sizeof a1),
            ctl_cores(cap.cpu, a2, sizeof a2), alloc.mem, cap.mem, n[CS_TASK_PENDING],
            n[CS_TASK_ASSIGNED], n[CS_TASK_RUNNING],
            cell.ntasks - n[CS_TASK_PENDING] - n[CS_TASK_ASSIGNED] - n[CS_TASK_RUNNING]);
    ctl_members_line(c, f);
    fprintf(f, "\n");
    rc = machines_table(&cell, NULL, f, width, err);
    if (rc == CS_OK) {
        fprintf(f, "\n");
        if (n[CS_TASK_PENDING] + n[CS_TASK_ASSIGNED] + n[CS_TASK_RUNNING] == 0)
            fprintf(f, "no pending or running tasks\n");
        else
            rc = tasks_table(&cell, true, f, width, err);
    }
    ctl_cell_free(&cell);
    return rc;
}

/* Draw a frame. With escapes: from the top left, each line cleared to its
 * end, the rest of the screen cleared, so that nothing flickers and no old
 * line survives; lines beyond the screen are left out. Without: the frame
 * and a blank line, for logs and scripts. */
static void draw(const char *text, bool ansi, size_t width, size_t height)
{
    if (!ansi) {
        fputs(text, stdout);
        fputs("\n", stdout);
        fflush(stdout);
        return;
    }
    fputs("\033[H", stdout);
    size_t lines = 0;
    for (const char *p = text; *p; lines++) {
        size_t n = strcspn(p, "\n");
        if (height > 1 && lines + 1 >= height) {
            size_t rest = 0;
            for (const char *q = p; *q; q++)
                rest += *q == '\n';
            printf("... %zu more lines (enlarge the terminal)\033[K", rest);
            break;
        }
        printf("%.*s\033[K\n", (int)(width && n > width ? width : n), p);
        p += n + (p[n] == '\n');
    }
    fputs("\033[J", stdout);
    fflush(stdout);
}

int ctl_cmd_watch(ctl *c, const ctl_args *a, cs_error *err)
{
    if (a->argc != 0)
        return cs_errorf(err, CTL_EUSAGE,
                         "watch takes no arguments (options: --interval, "
                         "--count, --job)");
    bool tty = isatty(STDOUT_FILENO);
    bool ansi = tty || a->ansi;
    /* SIGINT and SIGTERM are taken synchronously by sigtimedwait, which is
     * also the wait between frames: no handler, no global flag, and a
     * signal during a request is seen right after it. */
    sigset_t stop, old;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop, &old);
    if (ansi)
        fputs("\033[?25l\033[H\033[2J", stdout); /* hide the cursor, clear */
    int rc = CS_OK;
    char *last = NULL; /* without escapes: the body of the frame last drawn */
    for (long i = 0; a->count <= 0 || i < a->count; i++) {
        struct winsize ws = {0};
        size_t width = 0, height = 0;
        if (tty && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0) {
            width = ws.ws_col;
            height = ws.ws_row;
        }
        char *text = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&text, &len);
        if (m == NULL) {
            rc = cs_errorf(err, CS_ENOMEM, "watch: out of memory");
            break;
        }
        rc = frame(c, a, m, width, err);
        fclose(m);
        /* Without escapes (a log, a pipe) a frame goes out only when what
         * it shows changed — its first line, with the clock, aside — so
         * that a quiet cell is not a frame per interval in the log. */
        const char *body = strchr(text, '\n');
        body = body != NULL ? body : text;
        if (ansi || last == NULL || strcmp(body, last) != 0) {
            draw(text, ansi, width, height);
            if (!ansi) {
                free(last);
                if ((last = strdup(body)) == NULL) {
                    free(text);
                    rc = cs_errorf(err, CS_ENOMEM, "watch: out of memory");
                    break;
                }
            }
        }
        free(text);
        if (a->count > 0 && i + 1 >= a->count)
            break;
        struct timespec ts = {(time_t)(a->interval_ms / 1000),
                              (long)(a->interval_ms % 1000) * 1000000L};
        if (sigtimedwait(&stop, NULL, &ts) > 0) {
            rc = CS_OK; /* asked to stop: a clean end */
            break;
        }
    }
    if (ansi)
        fputs("\033[?25h", stdout);
    fflush(stdout);
    free(last);
    sigprocmask(SIG_SETMASK, &old, NULL);
    return rc;
}
