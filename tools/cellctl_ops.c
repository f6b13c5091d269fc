/* cellctl_ops.c — cordon, uncordon, drain and logs (see cellctl_ops.h). */
#include "tools/cellctl_ops.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/agentmsg.h"
#include "proto/jobmsg.h"
#include "proto/proto.h"

const char *ctl_machine_status(const cs_machine *m, char *buf, size_t size)
{
    const char *word = m->admin == CS_ADMIN_CORDONED ? "cordoned"
                       : m->admin != CS_ADMIN_DRAINING ? NULL
                       : m->ntasks == 0                ? "drained"
                                                       : "draining";
    if (word == NULL)
        snprintf(buf, size, "%s", cs_machine_state_name(m->state));
    else
        snprintf(buf, size, "%s,%s", cs_machine_state_name(m->state), word);
    return buf;
}

/* ---- cordon, uncordon, drain ----------------------------------------------- */

/* machine.admin {machine, admin, deadline_ms?}; deadline < 0: none. */
static int admin_request(ctl *c, const char *verb, const char *machine, uint8_t admin,
                         int64_t deadline, cs_error *err)
{
    cs_machine_admin_reply reply;
    int rc = cs_cell_machine_admin(ctl_call_fn, c, machine, admin, deadline, &reply, err);
    if (rc != CS_OK)
        return cs_error_wrap(err, rc, "%s %s", verb, machine);
    uint64_t v = reply.version, at = reply.drain_deadline;
    if (c->output == CTL_OUT_JSON) {
        json_t *o = cs_json_machine_admin(machine, admin, at, v);
        rc = o ? ctl_print_json(o, err) : cs_errorf(err, CS_ENOMEM, "out of memory");
        json_decref(o);
        return rc;
    }
    if (admin != CS_ADMIN_DRAINING) {
        printf("machine %s %s (version %" PRIu64 ")\n", machine,
               admin == CS_ADMIN_ACTIVE ? "uncordoned" : "cordoned", v);
    } else if (at == 0) {
        printf("machine %s draining, batch tasks run to their end (version %" PRIu64 ")\n",
               machine, v);
    } else {
        char when[64] = "";
        time_t t = (time_t)(at / 1000);
        struct tm tm;
        if (gmtime_r(&t, &tm) != NULL)
            strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        printf("machine %s draining, batch tasks still there at %s are killed and placed "
               "again (version %" PRIu64 ")\n", machine, when, v);
    }
    return CS_OK;
}

static int one_machine(const ctl_args *a, const char *verb, cs_error *err)
{
    if (a->argc != 1)
        return cs_errorf(err, CTL_EUSAGE, "%s: give one machine name", verb);
    return CS_OK;
}

int ctl_cmd_cordon(ctl *c, const ctl_args *a, cs_error *err)
{
    CS_TRY(one_machine(a, "cordon", err));
    return admin_request(c, "cordon", a->argv[0], CS_ADMIN_CORDONED, -1, err);
}

int ctl_cmd_uncordon(ctl *c, const ctl_args *a, cs_error *err)
{
    CS_TRY(one_machine(a, "uncordon", err));
    return admin_request(c, "uncordon", a->argv[0], CS_ADMIN_ACTIVE, -1, err);
}

int ctl_cmd_drain(ctl *c, const ctl_args *a, cs_error *err)
{
    CS_TRY(one_machine(a, "drain", err));
    if (a->no_deadline && a->has_deadline)
        return cs_errorf(err, CTL_EUSAGE, "drain: --deadline and --no-deadline exclude each other");
    int64_t deadline = a->no_deadline    ? -1
                       : a->has_deadline ? (int64_t)a->deadline_ms
                                         : (int64_t)CTL_DRAIN_DEADLINE_MS;
    return admin_request(c, "drain", a->argv[0], CS_ADMIN_DRAINING, deadline, err);
}

/* ---- logs --------------------------------------------------------------------- */

/* JOB[/INDEX] into job (in buf) and index (0 when absent). What follows the
 * last "/" is an index only when it is a number: a Marathon app's id may
 * hold slashes ("group/app"), and its leading "/" is dropped as
 * ctl_job_ref drops it. */
static int parse_target(const char *arg, char *buf, size_t size, uint32_t *index, cs_error *err)
{
    const char *ref = ctl_job_ref(arg), *slash = strrchr(ref, '/');
    size_t n = strlen(ref);
    *index = 0;
    if (slash != NULL && slash > ref && slash[1] >= '0' && slash[1] <= '9') {
        char *end;
        errno = 0;
        unsigned long long i = strtoull(slash + 1, &end, 10);
        if (*end != '\0' || errno != 0 || i > CS_TASK_INDEX_MAX)
            return cs_errorf(err, CTL_EUSAGE, "logs: '%s' is not JOB or JOB/INDEX (an index is "
                             "at most %u)", arg, CS_TASK_INDEX_MAX);
        *index = (uint32_t)i;
        n = (size_t)(slash - ref);
    }
    if (n == 0 || n >= size)
        return cs_errorf(err, CTL_EUSAGE, "logs: '%s' is not JOB or JOB/INDEX", arg);
    snprintf(buf, size, "%.*s", (int)n, ref);
    return CS_OK;
}

/* Where task JOB/INDEX is (or last was): its record and its machine's
 * log service. `job` is the user's reference. */
typedef struct where {
    cs_id task;
    uint32_t attempt;
    uint8_t state;
    char machine[CS_NAME_MAX + 1];
    char url[CS_URL_MAX + 1];
} where;

static int locate(ctl *c, const char *job, uint32_t index, where *w, cs_error *err)
{
    ctl_cell cell;
    ctl_cell_init(&cell);
    int rc = ctl_fetch_job(c, &cell, job, err);
    const cs_task *t = NULL;
    for (uint32_t i = 0; rc == CS_OK && i < cell.ntasks; i++)
        if (cell.tasks[i].index == index)
            t = &cell.tasks[i];
    if (rc == CS_OK && t == NULL)
        rc = cs_errorf(err, CS_ENOTFOUND, "job %s has no task %u", job, index);
    if (rc == CS_OK && t->machine == 0)
        rc = cs_errorf(err, CS_ENOTFOUND, "task %s/%u is %s and has no placement to read "
                       "output from", job, index, cs_task_state_name(t->state));
    if (rc == CS_OK) {
        w->task = t->id;
        w->attempt = t->attempts;
        w->state = t->state;
        cs_id mid = t->machine;
        if ((rc = ctl_fetch_machines(c, &cell, err)) == CS_OK) {
            const cs_machine *m = ctl_machine_by_id(&cell, mid);
            if (m == NULL)
                rc = cs_errorf(err, CS_ENOTFOUND, "task %s/%u: its machine %" PRIu64
                               " is not in the cell", job, index, mid);
            else if (m->log_url == NULL || m->log_url[0] == '\0')
                rc = cs_errorf(err, CS_ENOTFOUND, "task %s/%u ran on machine %s, whose agent "
                               "serves no logs (it advertised no log_url)", job, index,
                               m->name);
            else {
                snprintf(w->machine, sizeof w->machine, "%s", m->name);
                snprintf(w->url, sizeof w->url, "%s", m->log_url);
            }
        }
    }
    ctl_cell_free(&cell);
    return rc;
}

/* Whether attempt w->attempt of the task is over: it ended, or was placed
 * again (a later attempt). */
static int ended(ctl *c, const char *job, uint32_t index, const where *w, bool *out,
                 cs_error *err)
{
    ctl_cell cell;
    ctl_cell_init(&cell);
    int rc = ctl_fetch_job(c, &cell, job, err);
    *out = true;
    for (uint32_t i = 0; rc == CS_OK && i < cell.ntasks; i++)
        if (cell.tasks[i].index == index)
            *out = cell.tasks[i].attempts != w->attempt ||
                   !cs_task_state_placed(cell.tasks[i].state);
    ctl_cell_free(&cell);
    return rc;
}

/* One task.logs request; the data goes to stdout. */
static int read_chunk(cs_client *agent, const where *w, const ctl_args *a, uint64_t offset,
                      bool tail, uint64_t *next, size_t *len, cs_error *err)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    cs_logs_req q = {w->task, w->attempt, a->err_stream, tail ? 0 : offset,
                     tail ? (uint32_t)a->tail : 0, CTL_LOGS_CHUNK};
    int rc = cs_logs_req_encode(&pk, &q) == CS_OK ? CS_OK
                                                  : cs_errorf(err, CS_ENOMEM, "out of memory");
    cs_msg r;
    if (rc == CS_OK)
        rc = cs_client_call(agent, CS_MSG_TASK_LOGS, b.data, b.size, &r, err);
    msgpack_sbuffer_destroy(&b);
    if (rc != CS_OK)
        return rc;
    cs_logs_reply d;
    cs_error why;
    if (cs_logs_reply_decode(&r.body, &d, NULL, &why) != CS_OK)
        return cs_errorf(err, CS_EPROTO, "the agent's task.logs reply is malformed: %s", why.msg);
    *next = d.next;
    *len = d.len;
    if (*len > 0 && fwrite(d.data, 1, *len, stdout) != *len)
        return cs_errorf(err, CS_EIO, "writing standard output: %s", strerror(errno));
    fflush(stdout);
    return CS_OK;
}

int ctl_cmd_logs(ctl *c, const ctl_args *a, cs_error *err)
{
    if (a->argc != 1)
        return cs_errorf(err, CTL_EUSAGE, "logs: give one task: JOB or JOB/INDEX");
    char job[CS_NAME_MAX + 2];
    uint32_t index;
    where w;
    CS_TRY(parse_target(a->argv[0], job, sizeof job, &index, err));
    CS_TRY(locate(c, job, index, &w, err));
    cs_client *agent = NULL;
    /* An agent's log service is TLS when its advertised URL says so
     * (cell-agent --log-listen tls+tcp://...), plain otherwise. */
    int rc = cs_client_open_tls(w.url, cs_tls_url(w.url) ? c->tls : NULL, c->timeout_ms, &agent,
                                err);
    if (rc != CS_OK)
        return cs_error_wrap(err, rc, "logs %s: machine %s's agent at %s", a->argv[0], w.machine,
                             w.url);
    uint64_t offset = 0;
    bool tail = a->tail > 0, over = false;
    for (;;) {
        size_t len = 0;
        if ((rc = read_chunk(agent, &w, a, offset, tail, &offset, &len, err)) != CS_OK) {
            cs_error_wrap(err, rc, "logs %s: machine %s's agent at %s", a->argv[0], w.machine,
                          w.url);
            break;
        }
        tail = false;
        if (len == CTL_LOGS_CHUNK)
            continue; /* more is there already */
        if (!a->follow || over)
            break;
        /* Following: once the attempt is over, one more read drains what
         * it wrote last, then stop. */
        if ((rc = ended(c, job, index, &w, &over, err)) != CS_OK)
            break;
        if (!over) {
            struct timespec ts = {0, CTL_FOLLOW_POLL_MS * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    cs_client_close(agent);
    return rc;
}
