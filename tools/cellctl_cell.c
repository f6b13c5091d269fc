/* cellctl_cell.c — cellctl's connection and its decoded view of the cell
 * (see cellctl_cell.h). */
#include "tools/cellctl_cell.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cellstate/jobopts.h"
#include "spec/jobspec.h"
#include "proto/proto.h"
#include "proto/readmsg.h"

/* ---- the connection ------------------------------------------------------------ */

void ctl_close(ctl *c)
{
    cs_client_close(c->client);
    c->client = NULL;
}

int ctl_call(ctl *c, uint32_t type, const void *body, size_t len, cs_msg *reply, cs_error *err)
{
    if (c->client == NULL) {
        int rc = cs_client_open(c->url, c->timeout_ms, &c->client, err);
        if (rc != CS_OK)
            return cs_errorf(err, rc, "cannot connect to %s: %s", c->url, err->msg);
    }
    int rc = cs_client_call(c->client, type, body, len, reply, err);
    /* The client reports a server's error reply as "server: ..."; anything
     * else of CS_EIO is the transport: nobody answered at that URL. */
    if (rc == CS_EIO && strncmp(err->msg, "server: ", 8) != 0)
        return cs_errorf(err, rc,
                         "cannot reach cellstated at %s: no answer within %" PRIu32
                         " ms (is it running? set --server or $CELL_SERVER)",
                         c->url, c->timeout_ms);
    return rc;
}

/* ---- decoding ------------------------------------------------------------------- */

/* Keep the newest version a reply showed. */
static void saw_version(ctl_cell *cell, uint64_t version)
{
    if (version > cell->version)
        cell->version = version;
}

static int cmp_machine(const void *a, const void *b)
{
    cs_id x = ((const cs_machine *)a)->id, y = ((const cs_machine *)b)->id;
    return (x > y) - (x < y);
}

static int cmp_job(const void *a, const void *b)
{
    cs_id x = ((const cs_job *)a)->id, y = ((const cs_job *)b)->id;
    return (x > y) - (x < y);
}

void ctl_cell_init(ctl_cell *cell)
{
    memset(cell, 0, sizeof *cell);
    cs_arena_init(&cell->a);
}

void ctl_cell_free(ctl_cell *cell)
{
    cs_arena_free(&cell->a);
    memset(cell, 0, sizeof *cell);
}

static const uint8_t empty_map[] = {0x80}; /* cs_empty_req_encode's bytes: {} */

int ctl_fetch_machines(ctl *c, ctl_cell *cell, cs_error *err)
{
    cs_msg r;
    cs_machines_reply d;
    CS_TRY(ctl_call(c, CS_MSG_GET_MACHINES, empty_map, sizeof empty_map, &r, err));
    CS_TRY(cs_machines_reply_decode(&r.body, &d, &cell->a, err));
    cell->machines = d.machines;
    cell->nmachines = d.n;
    saw_version(cell, d.version);
    qsort(cell->machines, cell->nmachines, sizeof *cell->machines, cmp_machine);
    return CS_OK;
}

int ctl_fetch_jobs(ctl *c, ctl_cell *cell, cs_error *err)
{
    cs_msg r;
    cs_jobs_reply d;
    CS_TRY(ctl_call(c, CS_MSG_GET_JOBS, empty_map, sizeof empty_map, &r, err));
    CS_TRY(cs_jobs_reply_decode(&r.body, &d, &cell->a, err));
    cell->jobs = d.jobs;
    cell->njobs = d.n;
    saw_version(cell, d.version);
    qsort(cell->jobs, cell->njobs, sizeof *cell->jobs, cmp_job);
    return CS_OK;
}

static void take_tasks(ctl_cell *cell, const cs_tasks_reply *d)
{
    cell->tasks = d->tasks;
    cell->ntasks = d->n;
    saw_version(cell, d->version);
}

int ctl_fetch_tasks(ctl *c, ctl_cell *cell, const char *job, const char *machine, const char *state,
                    cs_error *err)
{
    cs_get_tasks_req q = {job != NULL, machine != NULL, cs_ref_name(job ? ctl_job_ref(job) : ""),
                          cs_ref_name(machine), -1};
    uint8_t st;
    if (state != NULL) {
        if (cs_task_state_parse(state, &st) != CS_OK)
            return cs_errorf(err, CS_EINVAL, "unknown task state '%s'", state);
        q.state = st;
    }
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    int rc = cs_get_tasks_req_encode(&pk, &q) == CS_OK
                 ? CS_OK
                 : cs_errorf(err, CS_ENOMEM, "out of memory");
    cs_msg r;
    cs_tasks_reply d;
    if (rc == CS_OK)
        rc = ctl_call(c, CS_MSG_GET_TASKS, b.data, b.size, &r, err);
    msgpack_sbuffer_destroy(&b);
    if (rc == CS_OK && (rc = cs_tasks_reply_decode(&r.body, &d, &cell->a, err)) == CS_OK)
        take_tasks(cell, &d);
    return rc;
}

int ctl_fetch_job(ctl *c, ctl_cell *cell, const char *job, cs_error *err)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    cs_job_ref_req q = {cs_ref_name(ctl_job_ref(job))};
    int rc = cs_job_ref_req_encode(&pk, &q) == CS_OK
                 ? CS_OK
                 : cs_errorf(err, CS_ENOMEM, "out of memory");
    cs_msg r;
    if (rc == CS_OK)
        rc = ctl_call(c, CS_MSG_GET_JOB, b.data, b.size, &r, err);
    msgpack_sbuffer_destroy(&b);
    if (rc != CS_OK)
        return rc;
    cs_get_job_reply d;
    cell->jobs = cs_arena_alloc(&cell->a, sizeof *cell->jobs);
    if (cell->jobs == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    CS_TRY(cs_get_job_reply_decode(&r.body, &d, &cell->a, err));
    cell->jobs[0] = d.job;
    cell->njobs = 1;
    take_tasks(cell, &d.tasks);
    return CS_OK;
}

/* ---- lookups and formatting ------------------------------------------------------- */

const cs_machine *ctl_machine_by_id(const ctl_cell *cell, cs_id id)
{
    cs_machine key = {.id = id};
    return cell->nmachines ? bsearch(&key, cell->machines, cell->nmachines, sizeof key, cmp_machine)
                           : NULL;
}

const cs_job *ctl_job_by_id(const ctl_cell *cell, cs_id id)
{
    cs_job key = {.id = id};
    return cell->njobs ? bsearch(&key, cell->jobs, cell->njobs, sizeof key, cmp_job) : NULL;
}

const char *ctl_machine_name(const ctl_cell *cell, cs_id id, char *buf, size_t size)
{
    if (id == 0)
        return "";
    const cs_machine *m = ctl_machine_by_id(cell, id);
    if (m != NULL)
        return m->name;
    snprintf(buf, size, "#%" PRIu64, id);
    return buf;
}

const char *ctl_job_name(const ctl_cell *cell, cs_id id, char *buf, size_t size)
{
    const cs_job *j = ctl_job_by_id(cell, id);
    if (j != NULL)
        return j->name;
    snprintf(buf, size, "#%" PRIu64, id);
    return buf;
}

const char *ctl_cores(int64_t millicores, char *buf, size_t size)
{
    if (millicores % 1000 == 0) {
        snprintf(buf, size, "%" PRId64, millicores / 1000);
        return buf;
    }
    snprintf(buf, size, "%" PRId64 ".%03" PRId64, millicores / 1000, millicores % 1000);
    size_t n = strlen(buf);
    while (buf[n - 1] == '0')
        buf[--n] = '\0';
    return buf;
}

const char *ctl_ports(const uint16_t *ports, uint32_t n, char *buf, size_t size)
{
    if (n == 0) {
        snprintf(buf, size, "-");
        return buf;
    }
    size_t len = 0;
    buf[0] = '\0';
    for (uint32_t i = 0; i < n && len + 8 < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s%u", i ? "," : "", ports[i]);
    return buf;
}

const char *ctl_job_ref(const char *name)
{
    return name[0] == '/' && name[1] != '\0' ? name + 1 : name;
}

/* ---- JSON ------------------------------------------------------------------------ */

/* Attach v to o; false when either is NULL or the set fails (v released). */
static bool put(json_t *o, const char *key, json_t *v)
{
    if (o == NULL) {
        json_decref(v);
        return false;
    }
    return v != NULL && json_object_set_new(o, key, v) == 0;
}

static json_t *ports_json(const uint16_t *ports, uint32_t n)
{
    json_t *a = json_array();
    for (uint32_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_integer(ports[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

json_t *ctl_res_json(const cs_res *r)
{
    json_t *o = json_object();
    bool ok = put(o, "cpu", json_real((double)r->cpu / 1000.0));
    ok &= put(o, "mem", json_integer(r->mem));
    ok &= put(o, "disk", json_integer(r->disk));
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *ctl_machine_json(const cs_machine *m)
{
    json_t *o = json_object(), *attrs = json_object();
    bool ok = put(o, "id", json_integer((json_int_t)m->id));
    ok &= put(o, "name", json_string(m->name));
    ok &= put(o, "state", json_string(cs_machine_state_name(m->state)));
    ok &= put(o, "admin", json_string(cs_machine_admin_name(m->admin)));
    ok &= put(o, "drained", json_boolean(m->admin == CS_ADMIN_DRAINING && m->ntasks == 0));
    ok &= put(o, "drain_deadline", json_integer((json_int_t)m->drain_deadline));
    ok &= put(o, "log_url", json_string(m->log_url ? m->log_url : ""));
    for (uint32_t i = 0; attrs && i < m->nattrs; i++)
        ok &= put(attrs, m->attrs[i].key, json_string(m->attrs[i].value));
    ok &= put(o, "attrs", attrs);
    json_t *taints = json_array();
    for (uint32_t i = 0; taints && i < m->ntaints; i++) {
        json_t *t = json_object();
        bool tok = put(t, "key", json_string(m->taints[i].key));
        tok &= put(t, "value", json_string(m->taints[i].value));
        tok &= put(t, "effect", json_string(cs_taint_effect_name(m->taints[i].effect)));
        if (tok)
            tok = json_array_append_new(taints, t) == 0; /* takes t, also on failure */
        else
            json_decref(t);
        ok &= tok;
    }
    ok &= put(o, "taints", taints);
    ok &= put(o, "capacity", ctl_res_json(&m->capacity));
    ok &= put(o, "allocated", ctl_res_json(&m->allocated));
    ok &= put(o, "port_lo", json_integer(m->port_lo));
    ok &= put(o, "port_hi", json_integer(m->port_hi));
    ok &= put(o, "ports_in_use", ports_json(m->ports, m->nports));
    ok &= put(o, "tasks", json_integer(m->ntasks));
    ok &= put(o, "version", json_integer((json_int_t)m->version));
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *ctl_task_json(const ctl_cell *cell, const cs_task *t)
{
    char buf[32];
    json_t *o = json_object();
    const cs_machine *m = t->machine ? ctl_machine_by_id(cell, t->machine) : NULL;
    bool ok = put(o, "id", json_integer((json_int_t)t->id));
    ok &= put(o, "job", json_string(ctl_job_name(cell, t->job, buf, sizeof buf)));
    ok &= put(o, "job_id", json_integer((json_int_t)t->job));
    ok &= put(o, "index", json_integer(t->index));
    ok &= put(o, "state", json_string(cs_task_state_name(t->state)));
    ok &= put(o, "last_end", json_string(cs_task_state_name(t->last_end)));
    ok &= put(o, "machine", m ? json_string(m->name) : json_null());
    ok &= put(o, "machine_id", json_integer((json_int_t)t->machine));
    ok &= put(o, "resources", ctl_res_json(&t->res));
    ok &= put(o, "ports", ports_json(t->ports, t->nports));
    ok &= put(o, "attempts", json_integer(t->attempts));
    ok &= put(o, "exit_code", json_integer(t->exit_code));
    ok &= put(o, "reason", json_string(t->reason));
    ok &= put(o, "health", json_string(cs_task_health_name(t->health)));
    ok &= put(o, "version", json_integer((json_int_t)t->version));
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *ctl_job_json(const cs_job *j, const ctl_cell *tasks, cs_error *err)
{
    cs_arena a;
    cs_arena_init(&a);
    cs_jobopts opts;
    json_t *o = NULL;
    int rc = cs_job_opts(j, &a, &opts, err);
    if (rc == CS_OK)
        rc = cs_jobspec_to_json(j, &opts, &o, err);
    cs_arena_free(&a);
    if (rc != CS_OK)
        return NULL;
    bool ok = put(o, "id", json_integer((json_int_t)j->id));
    ok &= put(o, "state", json_string(cs_job_state_name(j->state)));
    ok &= put(o, "version", json_integer((json_int_t)j->version));
    /* A uint64 hash does not fit JSON's integers everywhere: hex text. */
    char hash[24];
    snprintf(hash, sizeof hash, "%016" PRIx64, j->spec_hash);
    ok &= put(o, "spec_hash", json_string(hash));
    /* Milliseconds since the epoch, as the store keeps it (not part of the
     * spec: a resubmitted `-o json` output is accepted and these ignored). */
    ok &= put(o, "submitted", json_integer((json_int_t)j->submitted));
    ok &= put(o, "note", json_string(j->note != NULL ? j->note : ""));
    ok &= put(o, "surge", json_integer((json_int_t)j->surge));
    ok &= put(o, "ended", json_integer((json_int_t)j->ended));
    if (tasks != NULL) {
        json_int_t n[CS_TASK_STATE_COUNT] = {0};
        for (uint32_t i = 0; i < tasks->ntasks; i++)
            if (tasks->tasks[i].job == j->id)
                n[tasks->tasks[i].state]++;
        json_t *counts = json_object();
        for (uint8_t s = 0; s < CS_TASK_STATE_COUNT; s++)
            ok &= put(counts, cs_task_state_name(s), json_integer(n[s]));
        ok &= put(o, "tasks", counts);
    }
    if (!ok) {
        json_decref(o);
        cs_errorf(err, CS_ENOMEM, "out of memory");
        return NULL;
    }
    return o;
}

int ctl_print_json(json_t *v, cs_error *err)
{
    if (v == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory building JSON");
    if (json_dumpf(v, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(15)) != 0 ||
        fputc('\n', stdout) == EOF)
        return cs_errorf(err, CS_EIO, "cannot write to standard output");
    return CS_OK;
}
