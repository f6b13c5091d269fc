/* cellctl_cell.c — cellctl's connection and its decoded view of the cell
 * (see cellctl_cell.h). */
#include "tools/cellctl_cell.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

/* ---- the connection ------------------------------------------------------------ */

void ctl_close(ctl *c)
{
    cs_client_close(c->client);
    c->client = NULL;
}

int ctl_call(ctl *c, uint32_t type, const void *body, size_t len, cs_msg *reply, cs_error *err)
{
    if (c->client == NULL) {
        int rc = cs_client_open_tls(c->url, c->tls, c->timeout_ms, &c->client, err);
        if (rc != CS_OK)
            return cs_errorf(err, rc, "cannot connect to %s: %s", c->url, err->msg);
        if ((rc = cs_client_set_token(c->client, c->token, err)) != CS_OK) {
            ctl_close(c);
            return rc;
        }
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

/* ---- the view: spec/celljson.h, reached through ctl_call ------------------------- */

int ctl_call_fn(void *ctx, uint32_t type, const void *body, size_t len, cs_msg *reply,
                cs_error *err)
{
    return ctl_call(ctx, type, body, len, reply, err);
}

void ctl_cell_init(ctl_cell *cell) { cs_cellview_init(cell); }

void ctl_cell_free(ctl_cell *cell) { cs_cellview_free(cell); }

int ctl_fetch_machines(ctl *c, ctl_cell *cell, cs_error *err)
{
    return cs_cellview_fetch_machines(ctl_call_fn, c, cell, err);
}

int ctl_fetch_jobs(ctl *c, ctl_cell *cell, cs_error *err)
{
    return cs_cellview_fetch_jobs(ctl_call_fn, c, cell, err);
}

int ctl_fetch_tasks(ctl *c, ctl_cell *cell, const char *job, const char *machine, const char *state,
                    cs_error *err)
{
    return cs_cellview_fetch_tasks(ctl_call_fn, c, cell, job ? ctl_job_ref(job) : NULL, machine, state,
                                   err);
}

int ctl_fetch_job(ctl *c, ctl_cell *cell, const char *job, cs_error *err)
{
    return cs_cellview_fetch_job(ctl_call_fn, c, cell, ctl_job_ref(job), err);
}

/* ---- lookups and formatting ------------------------------------------------------- */

const cs_machine *ctl_machine_by_id(const ctl_cell *cell, cs_id id)
{
    return cs_cellview_machine(cell, id);
}

const cs_job *ctl_job_by_id(const ctl_cell *cell, cs_id id) { return cs_cellview_job(cell, id); }

const char *ctl_machine_name(const ctl_cell *cell, cs_id id, char *buf, size_t size)
{
    return cs_cellview_machine_name(cell, id, buf, size);
}

const char *ctl_job_name(const ctl_cell *cell, cs_id id, char *buf, size_t size)
{
    return cs_cellview_job_name(cell, id, buf, size);
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

json_t *ctl_res_json(const cs_res *r) { return cs_json_res(r); }

json_t *ctl_machine_json(const cs_machine *m) { return cs_json_machine(m); }

json_t *ctl_task_json(const ctl_cell *cell, const cs_task *t) { return cs_json_task(cell, t); }

json_t *ctl_job_json(const cs_job *j, const ctl_cell *tasks, cs_error *err)
{
    return cs_json_job(j, tasks, err);
}

int ctl_print_json(json_t *v, cs_error *err)
{
    if (v == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory building JSON");
    if (json_dumpf(v, stdout, CS_JSON_FLAGS) != 0 ||
        fputc('\n', stdout) == EOF)
        return cs_errorf(err, CS_EIO, "cannot write to standard output");
    return CS_OK;
}
