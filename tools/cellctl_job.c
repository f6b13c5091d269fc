/* cellctl_job.c — submit, update, kill and scale (see cellctl_job.h). */
#include "tools/cellctl_job.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spec/jobspec.h"
#include "proto/proto.h"

/* Read a spec file and say on stderr what in it was ignored. */
static int load(const char *file, cs_jobspec *s, cs_error *err)
{
    int rc = cs_jobspec_load(file, s, err);
    if (rc != CS_OK)
        return rc;
    for (uint32_t i = 0; i < s->nwarnings; i++)
        fprintf(stderr, "cellctl: warning: %s: %s\n", file, s->warnings[i]);
    return CS_OK;
}

/* What a write command prints: a sentence, or {"job", "id"?, "version"}. */
static int report(ctl *c, const char *job, uint64_t id, uint64_t version, const char *what,
                  cs_error *err)
{
    if (c->output == CTL_OUT_TABLE) {
        printf("job %s %s (version %" PRIu64 ")\n", job, what, version);
        return CS_OK;
    }
    json_t *o = cs_json_job_written(job, id, version);
    int rc = o ? ctl_print_json(o, err) : cs_errorf(err, CS_ENOMEM, "out of memory");
    json_decref(o);
    return rc;
}

/* One line of cs_cell_unfit, on stderr. */
static void warn(void *ctx, const char *text)
{
    fprintf(stderr, "cellctl: warning: %s\n", text);
}

int ctl_cmd_submit(ctl *c, const ctl_args *a, cs_error *err)
{
    if (a->argc != 1)
        return cs_errorf(err, CTL_EUSAGE, "submit: give one spec file (or - for stdin)");
    cs_jobspec s;
    int rc = load(a->argv[0], &s, err);
    if (rc == CS_OK && a->dry_run) {
        /* What would be submitted, in the native format: also how to see
         * what a Marathon app became. */
        json_t *j = NULL;
        rc = cs_jobspec_to_json(&s.job, &s.opts, &j, err);
        if (rc == CS_OK)
            rc = ctl_print_json(j, err);
        json_decref(j);
    } else if (rc == CS_OK) {
        cs_id_reply id;
        if ((rc = cs_cell_submit(ctl_call_fn, c, &s.job, &id, err)) == CS_OK) {
            char what[64];
            snprintf(what, sizeof what, "submitted: id %" PRIu64 ", %u task%s", id.id,
                     s.job.count, s.job.count == 1 ? "" : "s");
            rc = report(c, s.job.name, id.id, id.version, what, err);
            cs_cell_unfit(ctl_call_fn, c, &s.job, warn, NULL);
        } else if (rc != CS_ENOMEM) {
            cs_error_wrap(err, rc, "submit %s", s.job.name);
        }
    }
    cs_jobspec_free(&s);
    return rc;
}

int ctl_cmd_update(ctl *c, const ctl_args *a, cs_error *err)
{
    if (a->argc != 2)
        return cs_errorf(err, CTL_EUSAGE, "update: give the job and a spec file: update JOB FILE");
    const char *job = ctl_job_ref(a->argv[0]);
    cs_jobspec s;
    int rc = load(a->argv[1], &s, err);
    if (rc != CS_OK)
        return rc;
    if (strcmp(s.job.name, job) != 0) {
        rc = cs_errorf(err, CS_EINVAL,
                       "update %s: %s is the spec of job '%s' (a job's name cannot change)", job,
                       a->argv[1], s.job.name);
        cs_jobspec_free(&s);
        return rc;
    }
    uint64_t v;
    if ((rc = cs_cell_update(ctl_call_fn, c, job, &s.job, &v, err)) == CS_OK)
        rc = report(c, job, 0, v, "updated", err);
    else if (rc != CS_ENOMEM)
        cs_error_wrap(err, rc, "update %s", job);
    cs_jobspec_free(&s);
    return rc;
}

/* job.kill (count < 0) or job.scale; errors name the command. */
static int job_request(ctl *c, const char *job, int64_t count, uint64_t *version, cs_error *err)
{
    int rc = cs_cell_job_request(ctl_call_fn, c, job, count, version, err);
    if (rc != CS_OK)
        cs_error_wrap(err, rc, "%s %s", count < 0 ? "kill" : "scale", job);
    return rc;
}

int ctl_cmd_kill(ctl *c, const ctl_args *a, cs_error *err)
{
    if (a->argc != 1)
        return cs_errorf(err, CTL_EUSAGE, "kill: give one job name");
    const char *job = ctl_job_ref(a->argv[0]);
    uint64_t v;
    int rc = job_request(c, job, -1, &v, err);
    return rc == CS_OK ? report(c, job, 0, v, "killed", err) : rc;
}

int ctl_cmd_scale(ctl *c, const ctl_args *a, cs_error *err)
{
    if (a->argc != 2)
        return cs_errorf(err, CTL_EUSAGE, "scale: give a job and a count: scale JOB N");
    const char *job = ctl_job_ref(a->argv[0]), *n = a->argv[1];
    char *end;
    errno = 0;
    unsigned long long count = strtoull(n, &end, 10);
    if (n[0] < '0' || n[0] > '9' || *end != '\0' || errno != 0 || count > CS_TASK_INDEX_MAX + 1u)
        return cs_errorf(err, CTL_EUSAGE, "scale: '%s' is not a task count in [0, %u]", n,
                         CS_TASK_INDEX_MAX + 1u);
    uint64_t v;
    int rc = job_request(c, job, (int64_t)count, &v, err);
    if (rc != CS_OK)
        return rc;
    char what[48];
    snprintf(what, sizeof what, "scaled to %llu task%s", count, count == 1 ? "" : "s");
    return report(c, job, 0, v, what, err);
}
