/* cellsim_trace.c — the cluster-data 2011 trace reader (see cellsim_trace.h). */
#include "tools/cellsim_trace.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "cellstate/idindex.h"
#include "cellstate/units.h"
#include "cellstate/vec.h"

/* Longer lines than any the schema can produce (the longest real ones are
 * about 200 bytes) are an error, not a truncation. */
#define LINE_MAX_BYTES 4096
/* The real trace has 500 shards per table; a count far beyond it is a
 * misnamed file, not a trace. */
#define SHARDS_MAX 100000
#define COLS_MAX 13

static const char *const event_names[CS_TRACE_EVENT_COUNT] = {
    "SUBMIT", "SCHEDULE", "EVICT", "FAIL", "FINISH", "KILL", "LOST", "UPDATE_PENDING", "UPDATE_RUNNING",
};
static const char *const machine_event_names[CS_TRACE_MACHINE_EVENT_COUNT] = {"ADD", "REMOVE", "UPDATE"};

const char *cs_trace_event_name(uint8_t type)
{
    if (type == CS_TRACE_NO_EVENT)
        return "NONE";
    return type < CS_TRACE_EVENT_COUNT ? event_names[type] : "?";
}

const char *cs_trace_machine_event_name(uint8_t type)
{
    return type < CS_TRACE_MACHINE_EVENT_COUNT ? machine_event_names[type] : "?";
}

void cs_trace_opts_default(cs_trace_opts *o)
{
    memset(o, 0, sizeof *o);
    o->service_min_priority = 9;
    o->service_min_class = 2;
}

uint8_t cs_trace_job_kind(const cs_trace_opts *o, int priority, int sched_class)
{
    if (priority < 0)
        return CS_JOB_BATCH;
    if (sched_class < 0)
        sched_class = 0; /* unknown: the least latency-sensitive */
    return priority >= o->service_min_priority && sched_class >= (int)o->service_min_class
               ? CS_JOB_SERVICE
               : CS_JOB_BATCH;
}

/* ---- one table's schema ---------------------------------------------------- */

typedef struct table {
    const char *name;
    int ncols;
    const char *const *cols; /* column names, 1-based in messages */
} table;

static const char *const machine_cols[] = {"time", "machine ID", "event type", "platform ID", "CPUs",
                                           "memory"};
static const char *const job_cols[] = {"time",     "missing info",     "job ID",          "event type",
                                       "user",     "scheduling class", "job name",        "logical job name"};
static const char *const task_cols[] = {
    "time",     "missing info", "job ID",      "task index",     "machine ID",
    "event type", "user",       "scheduling class", "priority",  "CPU request",
    "memory request", "disk request", "different-machines restriction"};

static const table machine_table = {"machine_events", 6, machine_cols};
static const table job_table = {"job_events", 8, job_cols};
static const table task_table = {"task_events", 13, task_cols};

/* Where a line came from, for every message about it. */
typedef struct line_at {
    const table *t;
    const char *shard; /* "task_events/part-00000-of-00500.csv.gz" */
    uint64_t line;
    char **f; /* the fields, NUL-terminated in the line buffer */
    cs_error *err;
} line_at;

static int bad(const line_at *l, int col, const char *what)
{
    return cs_errorf(l->err, CS_EINVAL, "%s: line %llu, column %d (%s): %s", l->shard,
                     (unsigned long long)l->line, col, l->t->cols[col - 1], what);
}

static int bad_value(const line_at *l, int col, const char *what)
{
    char m[160];
    snprintf(m, sizeof m, "\"%.40s\" %s", l->f[col - 1], what);
    return bad(l, col, m);
}

/* An unsigned integer in column `col` (1-based) no larger than `max`;
 * *given false for an empty field, which is an error when `required`. */
static int field_u64(const line_at *l, int col, bool required, uint64_t max, uint64_t *out,
                     bool *given)
{
    const char *s = l->f[col - 1];
    *out = 0;
    if (given)
        *given = false;
    if (*s == '\0')
        return required ? bad(l, col, "empty, and the schema requires it") : CS_OK;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return bad_value(l, col, "is not an unsigned integer");
        unsigned d = (unsigned)(*p - '0');
        if (v > (max - d) / 10)
            goto range;
        v = v * 10 + d;
    }
    if (v > max)
        goto range;
    *out = v;
    if (given)
        *given = true;
    return CS_OK;
range: {
    char m[64];
    snprintf(m, sizeof m, "is above %llu", (unsigned long long)max);
    return bad_value(l, col, m);
}
}

/* A non-negative decimal in column `col`; empty: *given false. */
static int field_f64(const line_at *l, int col, double *out, bool *given)
{
    const char *s = l->f[col - 1];
    *out = 0;
    *given = false;
    if (*s == '\0')
        return CS_OK;
    size_t n = cs_scan_decimal(s, false);
    if (n == 0 || s[n] != '\0')
        return bad_value(l, col, "is not a non-negative number");
    double v = strtod(s, NULL);
    if (!isfinite(v))
        return bad_value(l, col, "is out of range");
    *out = v;
    *given = true;
    return CS_OK;
}

/* The time column (1), with 0 read as the trace's start (*before set). */
static int field_time(const line_at *l, uint64_t *out, bool *before)
{
    CS_TRY(field_u64(l, 1, true, CS_TRACE_NEVER_US, out, NULL));
    *before = *out == 0;
    if (*before)
        *out = CS_TRACE_START_US;
    return CS_OK;
}

/* ---- the reader's state ------------------------------------------------------ */

/* A machine's capacity while machine_events is read. */
typedef struct mstate {
    uint64_t id; /* first: idindex */
    double cpu, mem;
    bool present;
} mstate;

typedef struct reader {
    const char *dir;
    cs_trace_opts o;
    uint64_t from_us, to_us; /* to_us: CS_TRACE_NEVER_US when open-ended */
    uint64_t last_us;        /* the latest event time read (not "never") */
    bool stop;               /* an event reached `to`: open no more shards */
    cs_trace *t;
    size_t jobs_cap, mev_cap;
    cs_idindex jobs;
    mstate *ms;
    size_t nms, ms_cap;
    cs_idindex msx;
    cs_error *err;
} reader;

static cs_trace_job *job_find(reader *r, cs_id id)
{
    uint32_t pos = cs_idindex_find(&r->jobs, r->t->jobs, sizeof *r->t->jobs, id);
    return pos == CS_IDINDEX_NONE ? NULL : &r->t->jobs[pos];
}

/* Whether the event at `time` is applied: before the window's end. The
 * first one at or after it stops the reading after its shard (the trace is
 * sorted by time); "after the end" marks do not, since they sort last
 * anyway and say nothing about where the window ends. */
static bool in_window(reader *r, uint64_t time)
{
    if (time >= r->to_us) {
        r->t->counts.after_window++;
        if (time != CS_TRACE_NEVER_US)
            r->stop = true;
        return false;
    }
    if (time > r->last_us)
        r->last_us = time;
    return true;
}

/* ---- machine_events ---------------------------------------------------------- */

static int machine_line(reader *r, const line_at *l)
{
    uint64_t time, id, type;
    bool before, gc, gm;
    double cpu, mem;
    CS_TRY(field_time(l, &time, &before));
    CS_TRY(field_u64(l, 2, true, UINT64_MAX, &id, NULL));
    CS_TRY(field_u64(l, 3, true, CS_TRACE_MACHINE_EVENT_COUNT - 1, &type, NULL));
    CS_TRY(field_f64(l, 5, &cpu, &gc));
    CS_TRY(field_f64(l, 6, &mem, &gm));
    if (!in_window(r, time))
        return CS_OK;

    uint32_t pos = cs_idindex_find(&r->msx, r->ms, sizeof *r->ms, id);
    mstate *m = pos == CS_IDINDEX_NONE ? NULL : &r->ms[pos];
    if (type == CS_TRACE_MACHINE_ADD) {
        if (m == NULL) {
            mstate *nv = cs_vec_grow(r->ms, &r->ms_cap, r->nms + 1, sizeof *nv, 1024);
            if (nv == NULL)
                return cs_errorf(r->err, CS_ENOMEM, "machine_events: out of memory");
            r->ms = nv;
            m = &r->ms[r->nms];
            *m = (mstate){.id = id};
            if (cs_idindex_add(&r->msx, r->ms, sizeof *r->ms, (uint32_t)r->nms) != CS_OK)
                return cs_errorf(r->err, CS_ENOMEM, "machine_events: out of memory");
            r->nms++;
        } else if (m->present) {
            r->t->counts.machine_events_readded++;
        }
        if (!gc || !gm)
            r->t->counts.machines_no_capacity++;
        m->present = true;
    } else if (m == NULL || !m->present) {
        r->t->counts.machine_events_unknown++;
        return CS_OK;
    }
    if (type != CS_TRACE_MACHINE_REMOVE) {
        if (gc)
            m->cpu = cpu;
        if (gm)
            m->mem = mem;
    } else {
        m->present = false;
    }
    cs_trace_machine_event *nv = cs_vec_grow(r->t->machine_events, &r->mev_cap,
                                             r->t->nmachine_events + 1, sizeof *nv, 1024);
    if (nv == NULL)
        return cs_errorf(r->err, CS_ENOMEM, "machine_events: out of memory");
    r->t->machine_events = nv;
    nv[r->t->nmachine_events++] = (cs_trace_machine_event){
        .time_us = time,
        .machine = id,
        .cpu = m->cpu,
        .mem = m->mem,
        .type = (uint8_t)type,
        .given = (uint8_t)((gc ? CS_TRACE_GIVEN_CPU : 0) | (gm ? CS_TRACE_GIVEN_MEM : 0)),
    };
    return CS_OK;
}

/* ---- job_events -------------------------------------------------------------- */

static bool is_end_event(uint64_t type)
{
    return type >= CS_TRACE_EVICT && type <= CS_TRACE_LOST;
}

/* The columns job and task events share: 1 time, 2 missing info (*synth:
 * given), 3 job ID. */
static int event_head(const line_at *l, uint64_t *time, bool *before, bool *synth, uint64_t *job)
{
    uint64_t missing;
    CS_TRY(field_time(l, time, before));
    CS_TRY(field_u64(l, 2, false, 2, &missing, synth));
    return field_u64(l, 3, true, CS_JOB_ID_MAX, job, NULL);
}

/* Whether a job or task event, every column checked, is applied: in the
 * window. One the trace synthesised is counted. */
static bool event_applies(reader *r, uint64_t time, bool synth)
{
    if (!in_window(r, time))
        return false;
    if (synth)
        r->t->counts.synthesized++;
    return true;
}

static int job_line(reader *r, const line_at *l)
{
    uint64_t time, id, type, cls;
    bool before, synth, gcls;
    CS_TRY(event_head(l, &time, &before, &synth, &id));
    CS_TRY(field_u64(l, 4, true, CS_TRACE_EVENT_COUNT - 1, &type, NULL));
    CS_TRY(field_u64(l, 6, false, 3, &cls, &gcls));
    if (!event_applies(r, time, synth))
        return CS_OK;

    cs_trace_job *j = job_find(r, id);
    if (j == NULL) {
        if (type != CS_TRACE_SUBMIT) {
            r->t->counts.job_events_other++;
            return CS_OK;
        }
        if (time < r->from_us) {
            r->t->counts.jobs_before_window++;
            return CS_OK;
        }
        if (r->o.job_limit != 0 && r->t->njobs >= r->o.job_limit) {
            r->t->counts.jobs_over_limit++;
            return CS_OK;
        }
        cs_trace_job *nv = cs_vec_grow(r->t->jobs, &r->jobs_cap, r->t->njobs + 1, sizeof *nv, 1024);
        if (nv == NULL)
            return cs_errorf(r->err, CS_ENOMEM, "job_events: out of memory");
        r->t->jobs = nv;
        j = &nv[r->t->njobs];
        *j = (cs_trace_job){
            .id = id,
            .submit_us = time,
            .sched_class = -1,
            .priority = -1,
            .end_event = CS_TRACE_NO_EVENT,
            .flags = before ? CS_TRACE_JOB_BEFORE_START : 0,
        };
        if (cs_idindex_add(&r->jobs, r->t->jobs, sizeof *r->t->jobs, (uint32_t)r->t->njobs) != CS_OK)
            return cs_errorf(r->err, CS_ENOMEM, "job_events: out of memory");
        r->t->njobs++;
    } else if (type == CS_TRACE_SUBMIT) {
        r->t->counts.jobs_resubmitted++;
    }
    if (gcls)
        j->sched_class = (int8_t)cls;
    if (is_end_event(type)) {
        j->end_event = (uint8_t)type;
        j->end_us = time;
    }
    return CS_OK;
}

/* ---- task_events ------------------------------------------------------------- */

/* The slot of task `index` in j->tasks[] (grown, new slots zeroed). While
 * reading, tasks[] is indexed by task index and ntasks is the number of
 * slots in use; a slot with submit_us 0 holds no task yet (every real time
 * is at least CS_TRACE_START_US). */
static cs_trace_task *task_slot(reader *r, cs_trace_job *j, uint32_t index)
{
    if (index >= j->cap) {
        size_t cap = j->cap;
        cs_trace_task *nv = cs_vec_grow(j->tasks, &cap, (size_t)index + 1, sizeof *nv, 4);
        if (nv == NULL)
            return NULL;
        memset(nv + j->cap, 0, (cap - j->cap) * sizeof *nv);
        j->tasks = nv;
        j->cap = (uint32_t)cap;
    }
    if (index >= j->ntasks)
        j->ntasks = index + 1;
    return &j->tasks[index];
}

static int task_line(reader *r, const line_at *l)
{
    uint64_t time, id, index, machine, type, cls, prio, diff;
    bool before, synth, g, gcpu, gmem, gdiff;
    double cpu, mem, disk;
    CS_TRY(event_head(l, &time, &before, &synth, &id));
    CS_TRY(field_u64(l, 4, true, CS_TASK_INDEX_MAX, &index, NULL));
    CS_TRY(field_u64(l, 5, false, UINT64_MAX, &machine, &g));
    CS_TRY(field_u64(l, 6, true, CS_TRACE_EVENT_COUNT - 1, &type, NULL));
    CS_TRY(field_u64(l, 8, false, 3, &cls, &g));
    CS_TRY(field_u64(l, 9, true, 11, &prio, NULL));
    CS_TRY(field_f64(l, 10, &cpu, &gcpu));
    CS_TRY(field_f64(l, 11, &mem, &gmem));
    CS_TRY(field_f64(l, 12, &disk, &g));
    CS_TRY(field_u64(l, 13, false, 1, &diff, &gdiff));
    if (!event_applies(r, time, synth))
        return CS_OK;

    cs_trace_job *j = job_find(r, id);
    if (j == NULL) {
        r->t->counts.task_events_other++;
        return CS_OK;
    }
    cs_trace_task *t = task_slot(r, j, (uint32_t)index);
    if (t == NULL)
        return cs_errorf(r->err, CS_ENOMEM, "task_events: out of memory");
    bool fresh = t->submit_us == 0;
    if (fresh) {
        if (type != CS_TRACE_SUBMIT && type != CS_TRACE_SCHEDULE) {
            r->t->counts.task_events_no_task++;
            return CS_OK;
        }
        *t = (cs_trace_task){
            .index = (uint32_t)index,
            .submit_us = time,
            .state = CS_TRACE_PENDING,
            .fate = CS_TRACE_NO_EVENT,
            .last_run_end = CS_TRACE_NO_EVENT,
            .flags = CS_TRACE_TASK_NO_REQUEST,
        };
        if (type == CS_TRACE_SCHEDULE) {
            t->flags |= CS_TRACE_TASK_NO_SUBMIT;
            r->t->counts.tasks_no_submit++;
        }
    }
    if (before)
        t->flags |= CS_TRACE_TASK_BEFORE_START;
    t->priority = (uint8_t)prio;
    if (gdiff)
        t->flags = (uint16_t)(diff ? t->flags | CS_TRACE_TASK_DIFFERENT_MACHINES
                                   : t->flags & ~CS_TRACE_TASK_DIFFERENT_MACHINES);
    /* Requests come with a SUBMIT or an UPDATE, and with the SCHEDULE a
     * task entered on (its SUBMIT, which would have carried them, is
     * missing). */
    if (type == CS_TRACE_SUBMIT || type == CS_TRACE_UPDATE_PENDING || type == CS_TRACE_UPDATE_RUNNING ||
        (fresh && type == CS_TRACE_SCHEDULE)) {
        if (gcpu)
            t->cpu = cpu;
        if (gmem)
            t->mem = mem;
        if (gcpu && gmem)
            t->flags &= (uint16_t)~CS_TRACE_TASK_NO_REQUEST;
    }

    switch (type) {
    case CS_TRACE_SUBMIT:
        if (fresh)
            break;
        if (t->state != CS_TRACE_ENDED)
            goto out_of_order;
        t->state = CS_TRACE_PENDING; /* resubmitted after an end */
        break;
    case CS_TRACE_SCHEDULE:
        if (t->state != CS_TRACE_PENDING)
            goto out_of_order;
        t->state = CS_TRACE_RUNNING;
        t->start_us = time;
        t->stop_us = time;
        t->runs++;
        break;
    case CS_TRACE_UPDATE_PENDING:
    case CS_TRACE_UPDATE_RUNNING:
        break;
    default: /* EVICT .. LOST */
        if (t->state == CS_TRACE_ENDED)
            goto out_of_order;
        if (t->state == CS_TRACE_RUNNING) {
            t->stop_us = time;
            t->run_us += time - t->start_us;
            t->last_run_end = (uint8_t)type;
        }
        t->state = CS_TRACE_ENDED;
        t->fate = (uint8_t)type;
        t->end_us = time;
        break;
    }
    return CS_OK;
out_of_order:
    r->t->counts.task_events_out_of_order++;
    return CS_OK;
}

/* ---- shards ------------------------------------------------------------------ */

/* "part-N-of-M.csv" or ".csv.gz": its N and M. */
static bool shard_name(const char *s, unsigned long *n, unsigned long *m)
{
    char *e;
    if (strncmp(s, "part-", 5) != 0 || s[5] < '0' || s[5] > '9')
        return false;
    *n = strtoul(s + 5, &e, 10);
    if (strncmp(e, "-of-", 4) != 0 || e[4] < '0' || e[4] > '9')
        return false;
    *m = strtoul(e + 4, &e, 10);
    return strcmp(e, ".csv") == 0 || strcmp(e, ".csv.gz") == 0;
}

static void free_names(char **names, unsigned long n)
{
    if (names == NULL)
        return;
    for (unsigned long i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* The table's shards by number: *names[i] is shard i's file name, NULL when
 * it is missing; *count is M, the shards the names say there are. */
static int list_shards(reader *r, const table *tb, char ***names, unsigned long *count)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", r->dir, tb->name);
    *names = NULL;
    *count = 0;
    DIR *d = opendir(path);
    if (d == NULL)
        return cs_errorf(r->err, CS_EIO, "%s: cannot open the folder: %s", tb->name, strerror(errno));
    int rc = CS_OK;
    char **v = NULL;
    unsigned long m = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        unsigned long n, of;
        if (!shard_name(e->d_name, &n, &of))
            continue;
        if (of == 0 || of > SHARDS_MAX || n >= of) {
            rc = cs_errorf(r->err, CS_EINVAL, "%s/%s: not a shard name (part-N-of-M, N < M <= %d)",
                           tb->name, e->d_name, SHARDS_MAX);
            goto out;
        }
        if (v == NULL) {
            m = of;
            v = calloc(m, sizeof *v);
            if (v == NULL) {
                rc = cs_errorf(r->err, CS_ENOMEM, "%s: out of memory", tb->name);
                goto out;
            }
        } else if (of != m) {
            rc = cs_errorf(r->err, CS_EINVAL, "%s/%s: says %lu shards, another file says %lu", tb->name,
                           e->d_name, of, m);
            goto out;
        }
        if (v[n] != NULL) {
            rc = cs_errorf(r->err, CS_EINVAL, "%s: shard %lu twice: %s and %s", tb->name, n, v[n],
                           e->d_name);
            goto out;
        }
        v[n] = strdup(e->d_name);
        if (v[n] == NULL) {
            rc = cs_errorf(r->err, CS_ENOMEM, "%s: out of memory", tb->name);
            goto out;
        }
    }
    if (v == NULL)
        rc = cs_errorf(r->err, CS_EINVAL, "%s: no shards (part-N-of-M.csv.gz)", tb->name);
out:
    closedir(d);
    if (rc != CS_OK) {
        free_names(v, m);
        return rc;
    }
    *names = v;
    *count = m;
    return CS_OK;
}

/* Split `s` (NUL-terminated, without its newline) at commas in place into
 * f[0..ncols); a line with another number of fields is an error naming the
 * first column missing or the first one too many. */
static int split(line_at *l, char *s, char **f)
{
    int n = 0;
    for (;;) {
        if (n == l->t->ncols)
            return cs_errorf(l->err, CS_EINVAL, "%s: line %llu, column %d: one column too many (%s has %d)",
                             l->shard, (unsigned long long)l->line, n + 1, l->t->name, l->t->ncols);
        f[n++] = s;
        char *c = strchr(s, ',');
        if (c == NULL)
            break;
        *c = '\0';
        s = c + 1;
    }
    if (n < l->t->ncols)
        return cs_errorf(l->err, CS_EINVAL, "%s: line %llu, column %d (%s): missing (the line has %d of %d columns)",
                         l->shard, (unsigned long long)l->line, n + 1, l->t->cols[n], n, l->t->ncols);
    return CS_OK;
}

typedef int (*line_fn)(reader *r, const line_at *l);

/* CS_EIO naming the shard when zlib met an error (a truncated or corrupt
 * stream, a read error) after `lines` complete lines. */
static int gz_failed(reader *r, gzFile g, const char *shard, uint64_t lines)
{
    int zerr;
    const char *zmsg = gzerror(g, &zerr);
    if (zerr == Z_OK || zerr == Z_STREAM_END)
        return CS_OK;
    return cs_errorf(r->err, CS_EIO, "%s: after line %llu: %s", shard, (unsigned long long)lines,
                     zerr == Z_ERRNO ? strerror(errno) : zmsg);
}

static int read_shard(reader *r, const table *tb, const char *shard, line_fn fn)
{
    char path[4096], buf[LINE_MAX_BYTES + 2];
    char *f[COLS_MAX];
    snprintf(path, sizeof path, "%s/%s", r->dir, shard);
    gzFile g = gzopen(path, "rb");
    if (g == NULL)
        return cs_errorf(r->err, CS_EIO, "%s: cannot open: %s", shard,
                         errno ? strerror(errno) : "out of memory");
    line_at l = {.t = tb, .shard = shard, .f = f, .err = r->err};
    int rc = CS_OK;
    while (gzgets(g, buf, sizeof buf) != NULL) {
        size_t n = strlen(buf);
        if (n > 0 && buf[n - 1] == '\n') {
            buf[--n] = '\0';
        } else {
            /* A line without its newline is the file's last, the part of a
             * line a damaged stream gave before its error, or too long. */
            if ((rc = gz_failed(r, g, shard, l.line)) != CS_OK)
                goto out;
            if (!gzeof(g)) {
                rc = cs_errorf(r->err, CS_EINVAL, "%s: line %llu: longer than %d bytes", shard,
                               (unsigned long long)l.line + 1, LINE_MAX_BYTES);
                goto out;
            }
        }
        l.line++;
        r->t->counts.lines++;
        if (n > 0 && buf[n - 1] == '\r')
            buf[--n] = '\0';
        if ((rc = split(&l, buf, f)) != CS_OK || (rc = fn(r, &l)) != CS_OK)
            goto out;
    }
    rc = gz_failed(r, g, shard, l.line);
out:
    gzclose(g);
    return rc;
}

/* Every shard of table `tb` in order, until one reaches the window's end. */
static int read_table(reader *r, const table *tb, line_fn fn)
{
    char **names;
    unsigned long m;
    CS_TRY(list_shards(r, tb, &names, &m));
    int rc = CS_OK;
    r->stop = false;
    for (unsigned long i = 0; i < m && !r->stop; i++) {
        char shard[512];
        if (names[i] == NULL) {
            int w = snprintf(NULL, 0, "%lu", m) < 5 ? 5 : snprintf(NULL, 0, "%lu", m);
            rc = cs_errorf(r->err, CS_EINVAL, "%s/part-%0*lu-of-%0*lu.csv.gz: missing (shard %lu of %lu)",
                           tb->name, w, i, w, m, i, m);
            break;
        }
        snprintf(shard, sizeof shard, "%s/%s", tb->name, names[i]);
        r->t->counts.shards++;
        if ((rc = read_shard(r, tb, shard, fn)) != CS_OK)
            break;
    }
    free_names(names, m);
    return rc;
}

/* ---- after the last line ------------------------------------------------------ */

/* Close what the window's end leaves open, pack each job's tasks (drop the
 * empty slots), give each job its priority and kind, and order jobs by
 * submission. */
static int by_submit(const void *a, const void *b)
{
    const cs_trace_job *x = a, *y = b;
    if (x->submit_us != y->submit_us)
        return x->submit_us < y->submit_us ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static void finish(reader *r)
{
    cs_trace *t = r->t;
    t->to_us = r->to_us != CS_TRACE_NEVER_US ? r->to_us : (r->last_us > r->from_us ? r->last_us : r->from_us);
    for (size_t i = 0; i < t->njobs; i++) {
        cs_trace_job *j = &t->jobs[i];
        uint32_t n = 0;
        for (uint32_t k = 0; k < j->ntasks; k++) {
            cs_trace_task *x = &j->tasks[k];
            if (x->submit_us == 0)
                continue;
            if (x->state == CS_TRACE_RUNNING) {
                x->stop_us = t->to_us;
                x->run_us += t->to_us - x->start_us;
                x->last_run_end = CS_TRACE_NO_EVENT;
                x->flags |= CS_TRACE_TASK_CUT;
            }
            if (x->state != CS_TRACE_ENDED) {
                x->fate = CS_TRACE_NO_EVENT;
                x->end_us = 0;
            }
            if ((int)x->priority > j->priority)
                j->priority = (int8_t)x->priority;
            j->tasks[n++] = *x;
        }
        j->ntasks = n;
        if (n == 0) {
            t->counts.jobs_no_tasks++;
            free(j->tasks);
            j->tasks = NULL;
            j->cap = 0;
        } else if (n < j->cap) {
            /* The doubling's slack and the empty slots go back: a replay
             * holds the trace for the whole run. */
            cs_trace_task *v = realloc(j->tasks, n * sizeof *v);
            if (v != NULL) {
                j->tasks = v;
                j->cap = n;
            }
        }
        j->kind = cs_trace_job_kind(&r->o, j->priority, j->sched_class);
    }
    /* Positions change: the index has done its work. */
    cs_idindex_free(&r->jobs);
    if (t->njobs > 1)
        qsort(t->jobs, t->njobs, sizeof *t->jobs, by_submit);
}

int cs_trace_read(const char *dir, const cs_trace_opts *o, cs_trace *out, cs_error *err)
{
    memset(out, 0, sizeof *out);
    if (o->to_s != 0 && o->to_s <= o->from_s)
        return cs_errorf(err, CS_EINVAL, "trace window: `to` (%llu s) must be after `from` (%llu s)",
                         (unsigned long long)o->to_s, (unsigned long long)o->from_s);
    if (o->from_s > CS_TRACE_NEVER_US / 1000000 || o->to_s > CS_TRACE_NEVER_US / 1000000)
        return cs_errorf(err, CS_EINVAL, "trace window: beyond the trace's clock (%llu s)",
                         (unsigned long long)(CS_TRACE_NEVER_US / 1000000));
    reader r = {
        .dir = dir,
        .o = *o,
        .from_us = o->from_s * 1000000,
        .to_us = o->to_s ? o->to_s * 1000000 : CS_TRACE_NEVER_US,
        .t = out,
        .err = err,
    };
    cs_idindex_init(&r.jobs);
    cs_idindex_init(&r.msx);
    out->from_us = r.from_us;
    int rc = read_table(&r, &machine_table, machine_line);
    if (rc == CS_OK)
        rc = read_table(&r, &job_table, job_line);
    if (rc == CS_OK)
        rc = read_table(&r, &task_table, task_line);
    if (rc == CS_OK)
        finish(&r);
    cs_idindex_free(&r.jobs);
    cs_idindex_free(&r.msx);
    free(r.ms);
    if (rc != CS_OK)
        cs_trace_free(out);
    return rc;
}

void cs_trace_free(cs_trace *t)
{
    for (size_t i = 0; i < t->njobs; i++)
        free(t->jobs[i].tasks);
    free(t->jobs);
    free(t->machine_events);
    memset(t, 0, sizeof *t);
}

static int by_id(const void *a, const void *b)
{
    const cs_trace_machine *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

int cs_trace_machines_at(const cs_trace *t, uint64_t time_us, cs_trace_machine **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    /* One slot per machine ever seen, `present` kept in a side array. */
    cs_trace_machine *v = NULL;
    bool *present = NULL;
    size_t nv = 0, cap = 0, pcap = 0;
    cs_idindex x;
    cs_idindex_init(&x);
    int rc = CS_ENOMEM;
    for (size_t i = 0; i < t->nmachine_events && t->machine_events[i].time_us <= time_us; i++) {
        const cs_trace_machine_event *e = &t->machine_events[i];
        uint32_t pos = cs_idindex_find(&x, v, sizeof *v, e->machine);
        if (pos == CS_IDINDEX_NONE) {
            cs_trace_machine *g = cs_vec_grow(v, &cap, nv + 1, sizeof *v, 1024);
            if (g == NULL)
                goto out;
            v = g;
            bool *p = cs_vec_grow(present, &pcap, nv + 1, sizeof *present, 1024);
            if (p == NULL)
                goto out;
            present = p;
            v[nv] = (cs_trace_machine){.id = e->machine};
            present[nv] = false;
            if (cs_idindex_add(&x, v, sizeof *v, (uint32_t)nv) != CS_OK)
                goto out;
            pos = (uint32_t)nv++;
        }
        v[pos].cpu = e->cpu;
        v[pos].mem = e->mem;
        present[pos] = e->type != CS_TRACE_MACHINE_REMOVE;
    }
    size_t k = 0;
    for (size_t i = 0; i < nv; i++)
        if (present[i])
            v[k++] = v[i];
    if (k == 0) {
        free(v);
        v = NULL;
    } else {
        qsort(v, k, sizeof *v, by_id);
    }
    *out = v;
    *n = k;
    v = NULL;
    rc = CS_OK;
out:
    free(v);
    free(present);
    cs_idindex_free(&x);
    return rc;
}

void cs_trace_report(const cs_trace *t, FILE *f)
{
#define CS_TRACE_COUNT_PRINT(name, text) \
    fprintf(f, "%12llu  %s\n", (unsigned long long)t->counts.name, text);
    CS_TRACE_COUNTS(CS_TRACE_COUNT_PRINT)
#undef CS_TRACE_COUNT_PRINT
}

/* One amount: value × per, to the nearest unit, at least 1 when non-zero. */
static int scale_one(const char *what, double value, int64_t per, int64_t *out, cs_error *err)
{
    if (!isfinite(value) || value < 0)
        return cs_errorf(err, CS_EINVAL, "trace %s %g: not a non-negative number", what, value);
    double x = nearbyint(value * (double)per);
    if (x > (double)CS_RES_MAX)
        return cs_errorf(err, CS_EINVAL, "trace %s %g: above cellsched's limit once scaled", what, value);
    *out = (int64_t)x;
    if (*out == 0 && value > 0)
        *out = 1;
    return CS_OK;
}

int cs_trace_res(const cs_trace_scale *s, double cpu, double mem, cs_res *out, cs_error *err)
{
    if (s->cpu_millicores < 1 || s->cpu_millicores > CS_RES_MAX || s->mem_mib < 1 || s->mem_mib > CS_RES_MAX)
        return cs_errorf(err, CS_EINVAL, "trace scale: 1.0 must be 1..%lld millicores and MiB",
                         (long long)CS_RES_MAX);
    cs_res r = {0};
    CS_TRY(scale_one("cpu", cpu, s->cpu_millicores, &r.cpu, err));
    CS_TRY(scale_one("memory", mem, s->mem_mib, &r.mem, err));
    *out = r;
    return CS_OK;
}
