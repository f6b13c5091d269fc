/* api.c — the /v1/ routes (see api.h and docs/http.md).
 *
 * Each route is the request cellctl sends for the same command, rendered by
 * the same JSON layer (spec/celljson.h), so that `GET /v1/jobs` and `cellctl
 * get jobs -o json` print the same bytes. Submissions go through the same
 * parser, request and fit warnings as cellctl submit (spec/jobspec.h,
 * spec/celljson.h): the same specs are accepted, with the same messages.
 * What cellctl prints on stderr (a spec's ignored fields, why a job waits)
 * is the reply's "warnings" here.
 */
#include "http/api.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "cellstate/units.h"
#include "http/gateway.h"
#include "proto/proto.h"
#include "proto/readmsg.h"
#include "spec/celljson.h"
#include "spec/jobspec.h"

/* ---- requests ----------------------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* s[0..n) percent-decoded into a new string ('+' is a space in a query:
 * `plus`). CS_EINVAL for a bad escape or an escaped NUL. */
static int decode(const char *s, size_t n, bool plus, char **out, cs_error *err)
{
    char *d = malloc(n + 1);
    if (d == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi = i + 1 < n ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                free(d);
                return cs_errorf(err, CS_EINVAL, "'%.*s' has a bad %%-escape at byte %zu", (int)n,
                                 s, i);
            }
            d[k++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            d[k++] = plus && s[i] == '+' ? ' ' : s[i];
        }
    }
    d[k] = '\0';
    *out = d;
    return CS_OK;
}

void gw_req_free(gw_req *q)
{
    for (size_t i = 0; i < q->nseg; i++)
        free(q->seg[i]);
    free(q->path);
    q->path = NULL;
    for (size_t i = 0; i < q->nparams; i++) {
        free(q->params[i].key);
        free(q->params[i].value);
    }
    q->nseg = q->nparams = 0;
}

/* The path's segments: split before decoding, so that a name holding a
 * "/" (a Marathon app "prod/web") is one segment when sent as %2F. */
static int parse_path(const char *p, size_t n, gw_req *q, cs_error *err)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && p[i] == '/')
            i++;
        if (i == n)
            break;
        size_t len = strcspn(p + i, "/");
        if (len > n - i)
            len = n - i;
        if (q->nseg == GW_SEGS_MAX)
            return cs_errorf(err, CS_EINVAL, "the path has more than %d segments", GW_SEGS_MAX);
        CS_TRY(decode(p + i, len, false, &q->seg[q->nseg], err));
        q->nseg++;
        i += len;
    }
    return CS_OK;
}

static int parse_query(const char *s, gw_req *q, cs_error *err)
{
    while (*s != '\0') {
        size_t len = strcspn(s, "&");
        if (len > 0) {
            if (q->nparams == GW_PARAMS_MAX)
                return cs_errorf(err, CS_EINVAL, "more than %d query parameters",
                                 GW_PARAMS_MAX);
            const char *eq = memchr(s, '=', len);
            size_t klen = eq ? (size_t)(eq - s) : len;
            gw_param *p = &q->params[q->nparams];
            CS_TRY(decode(s, klen, true, &p->key, err));
            int rc = decode(eq ? eq + 1 : "", eq ? len - klen - 1 : 0, true, &p->value, err);
            if (rc != CS_OK) {
                free(p->key);
                return rc;
            }
            q->nparams++;
        }
        s += len;
        if (*s == '&')
            s++;
    }
    return CS_OK;
}

int gw_req_parse(const char *uri, gw_req *q, cs_error *err)
{
    q->nseg = q->nparams = 0;
    size_t plen = strcspn(uri, "?#");
    if ((q->path = strndup(uri, plen)) == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    CS_TRY(parse_path(uri, plen, q, err));
    if (uri[plen] == '?') {
        char *query = strndup(uri + plen + 1, strcspn(uri + plen + 1, "#"));
        if (query == NULL)
            return cs_errorf(err, CS_ENOMEM, "out of memory");
        int rc = parse_query(query, q, err);
        free(query);
        return rc;
    }
    return CS_OK;
}

const char *gw_req_param(const gw_req *q, const char *key)
{
    for (size_t i = 0; i < q->nparams; i++)
        if (strcmp(q->params[i].key, key) == 0)
            return q->params[i].value;
    return NULL;
}

int gw_blocking(const gw_req *q, bool *blocking, uint64_t *index, uint32_t *wait_ms,
                cs_error *err)
{
    const char *ix = gw_req_param(q, "index"), *wait = gw_req_param(q, "wait");
    *blocking = false;
    if (strcmp(q->method, "GET") != 0 && strcmp(q->method, "HEAD") != 0)
        return CS_OK;
    if (ix == NULL) {
        if (wait != NULL)
            return cs_errorf(err, CS_EINVAL, "wait=%s without index: a blocking query waits "
                             "for the version after ?index=N", wait);
        return CS_OK;
    }
    char *end;
    errno = 0;
    unsigned long long n = strtoull(ix, &end, 10);
    if (!isdigit((unsigned char)ix[0]) || *end != '\0' || errno != 0)
        return cs_errorf(err, CS_EINVAL, "index=%s is not a cell version (an unsigned integer, "
                         "as X-Cell-Index gives)", ix);
    uint32_t ms = CS_HTTP_WAIT_DEFAULT_MS;
    if (wait != NULL && cs_duration_parse_ms(wait, &ms, err) != CS_OK)
        return cs_error_wrap(err, CS_EINVAL, "wait=%s", wait);
    *blocking = true;
    *index = n;
    *wait_ms = ms > CS_HTTP_WAIT_MAX_MS ? CS_HTTP_WAIT_MAX_MS : ms;
    return CS_OK;
}

/* ---- replies ---------------------------------------------------------------------- */

void gw_reply_free(gw_reply *r)
{
    free(r->body);
    r->body = NULL;
    r->len = 0;
}

uint16_t gw_status_of(int code)
{
    switch (code) {
    case CS_EINVAL:
    case CS_EPROTO: return 400;
    case CS_ENOTFOUND: return 404;
    case CS_EEXIST:
    case CS_ESTATE: return 409;
    case CS_ETOOBIG: return 413;
    case CS_EPERM: return 403;
    case CS_ENOTLEADER:
    case CS_EUNAVAIL: return 503;
    default: return 500;
    }
}

static const char *status_token(uint16_t status)
{
    switch (status) {
    case 400: return "bad_request";
    case 401: return "unauthorized";
    case 403: return "forbidden";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 409: return "conflict";
    case 413: return "too_large";
    case 415: return "unsupported_media_type";
    case 503: return "unavailable";
    default: return "internal";
    }
}

/* The body: v written as cellctl writes it (CS_JSON_FLAGS and a newline),
 * v released. false when out of memory (v NULL included). */
static bool set_json(gw_reply *r, uint16_t status, json_t *v)
{
    char *text = v ? json_dumps(v, CS_JSON_FLAGS) : NULL;
    json_decref(v);
    if (text == NULL)
        return false;
    size_t n = strlen(text);
    char *body = realloc(text, n + 2);
    if (body == NULL) {
        free(text);
        return false;
    }
    body[n] = '\n';
    body[n + 1] = '\0';
    free(r->body);
    r->body = body;
    r->len = n + 1;
    r->status = status;
    r->content_type = "application/json";
    return true;
}

void gw_reply_error(gw_reply *r, uint16_t status, const char *message)
{
    json_t *o = json_pack("{s:i, s:s, s:s}", "code", (int)status, "error", status_token(status),
                          "message", message);
    r->has_index = false;
    if (!set_json(r, status, o)) {
        /* Out of memory for the error itself: the status says enough. */
        free(r->body);
        r->body = NULL;
        r->len = 0;
        r->status = status;
        r->content_type = "application/json";
    }
}

/* ---- the routes ------------------------------------------------------------------- */

/* What a route's function has: the client, the request, and the name the
 * path's "*" segment matched (NULL when none). */
typedef struct api {
    cs_client *c;
    const gw_req *q;
    const char *name;
} api;

/* cs_client_call as a cs_call_fn: the server's own errors keep their code
 * without the client's "server: " prefix; an unanswered call is
 * CS_EUNAVAIL (503), not a storage error. */
static int call(void *ctx, uint32_t type, const void *body, size_t len, cs_msg *reply,
                cs_error *err)
{
    int rc = cs_client_call(ctx, type, body, len, reply, err);
    if (rc == CS_OK)
        return CS_OK;
    if (strncmp(err->msg, "server: ", 8) == 0)
        memmove(err->msg, err->msg + 8, strlen(err->msg + 8) + 1);
    else if (rc == CS_EIO)
        return cs_error_wrap(err, CS_EUNAVAIL, "cellstated did not answer");
    return rc;
}

/* A route's JSON reply, with the version it shows. */
static int ok_json(gw_reply *r, uint16_t status, json_t *v, uint64_t version, cs_error *err)
{
    if (!set_json(r, status, v))
        return cs_errorf(err, CS_ENOMEM, "out of memory building the reply");
    r->has_index = true;
    r->index = version;
    return CS_OK;
}

/* ?state= against a record kind's states, as cellctl's --state. */
static int check_state(const char *state, const char *what, const char *(*name)(uint8_t),
                       uint8_t count, cs_error *err)
{
    return cs_cellview_check_state("state", state, what, name, count, CS_EINVAL, err);
}

/* The new reference `v` appended to array `arr`; false on failure. */
static bool append(json_t *arr, json_t *v)
{
    return v != NULL && json_array_append_new(arr, v) == 0;
}

/* An array reply; `arr` released. !ok: building it failed (out of memory,
 * or the message a record's rendering left in err). */
static int array_reply(json_t *arr, bool ok, uint64_t version, gw_reply *r, cs_error *err)
{
    if (!ok || arr == NULL) {
        json_decref(arr);
        return err->msg[0] ? CS_ENOMEM : cs_errorf(err, CS_ENOMEM, "out of memory");
    }
    return ok_json(r, 200, arr, version, err);
}

static int r_machines(api *a, gw_reply *r, cs_error *err)
{
    const char *state = gw_req_param(a->q, "state");
    CS_TRY(check_state(state, "machine", cs_machine_state_name, CS_MACHINE_STATE_COUNT, err));
    cs_cellview v;
    cs_cellview_init(&v);
    int rc = cs_cellview_fetch_machines(call, a->c, &v, err);
    if (rc == CS_OK) {
        json_t *arr = json_array();
        bool ok = arr != NULL;
        for (uint32_t i = 0; ok && i < v.nmachines; i++)
            if (state == NULL || strcmp(state, cs_machine_state_name(v.machines[i].state)) == 0)
                ok = append(arr, cs_json_machine(&v.machines[i]));
        rc = array_reply(arr, ok, v.version, r, err);
    }
    cs_cellview_free(&v);
    return rc;
}

static int r_jobs(api *a, gw_reply *r, cs_error *err)
{
    const char *state = gw_req_param(a->q, "state");
    CS_TRY(check_state(state, "job", cs_job_state_name, CS_JOB_STATE_COUNT, err));
    cs_cellview v;
    cs_cellview_init(&v);
    int rc = cs_cellview_fetch_jobs(call, a->c, &v, err);
    if (rc == CS_OK)
        rc = cs_cellview_fetch_tasks(call, a->c, &v, NULL, NULL, NULL, err);
    if (rc == CS_OK) {
        json_t *arr = json_array();
        bool ok = arr != NULL;
        for (uint32_t i = 0; ok && i < v.njobs; i++)
            if (state == NULL || strcmp(state, cs_job_state_name(v.jobs[i].state)) == 0)
                ok = append(arr, cs_json_job(&v.jobs[i], &v, err));
        rc = array_reply(arr, ok, v.version, r, err);
    }
    cs_cellview_free(&v);
    return rc;
}

/* The tasks of the view as an array, named from its machines and jobs. */
static int tasks_reply(const cs_cellview *v, gw_reply *r, cs_error *err)
{
    json_t *arr = json_array();
    bool ok = arr != NULL;
    for (uint32_t i = 0; ok && i < v->ntasks; i++)
        ok = append(arr, cs_json_task(v, &v->tasks[i]));
    return array_reply(arr, ok, v->version, r, err);
}

static int r_tasks(api *a, gw_reply *r, cs_error *err)
{
    const char *state = gw_req_param(a->q, "state"), *job = gw_req_param(a->q, "job"),
               *machine = gw_req_param(a->q, "machine");
    CS_TRY(check_state(state, "task", cs_task_state_name, CS_TASK_STATE_COUNT, err));
    if (job != NULL && job[0] == '/' && job[1] != '\0')
        job++; /* a Marathon id's leading "/", as cellctl drops it */
    cs_cellview v;
    cs_cellview_init(&v);
    int rc = cs_cellview_fetch_machines(call, a->c, &v, err);
    if (rc == CS_OK)
        rc = cs_cellview_fetch_jobs(call, a->c, &v, err);
    if (rc == CS_OK)
        rc = cs_cellview_fetch_tasks(call, a->c, &v, job, machine, state, err);
    if (rc == CS_OK)
        rc = tasks_reply(&v, r, err);
    cs_cellview_free(&v);
    return rc;
}

static int r_job(api *a, gw_reply *r, cs_error *err)
{
    cs_cellview v;
    cs_cellview_init(&v);
    int rc = cs_cellview_fetch_job(call, a->c, &v, a->name, err);
    if (rc == CS_OK) {
        json_t *o = cs_json_job(&v.jobs[0], &v, err);
        rc = o ? ok_json(r, 200, o, v.version, err) : CS_ENOMEM;
    }
    cs_cellview_free(&v);
    return rc == CS_OK ? rc : cs_error_wrap(err, rc, "job %s", a->name);
}

static int r_job_tasks(api *a, gw_reply *r, cs_error *err)
{
    cs_cellview v;
    cs_cellview_init(&v);
    /* The job first: an unknown job is a 404, not an empty list. The
     * machines after it, for the tasks' machine names; its own record
     * names the tasks' job. */
    int rc = cs_cellview_fetch_job(call, a->c, &v, a->name, err);
    if (rc == CS_OK)
        rc = cs_cellview_fetch_machines(call, a->c, &v, err);
    if (rc == CS_OK)
        rc = tasks_reply(&v, r, err);
    cs_cellview_free(&v);
    return rc == CS_OK ? rc : cs_error_wrap(err, rc, "job %s", a->name);
}

/* stats: its reply, whole (cs_json_stats) or only its "schedulers". */
static int stats(api *a, gw_reply *r, bool schedulers_only, cs_error *err)
{
    cs_msg m;
    CS_TRY(call(a->c, CS_MSG_STATS, "\x80", 1, &m, err)); /* body {} */
    cs_arena sa;
    cs_arena_init(&sa);
    cs_stats_reply st;
    int rc = cs_stats_reply_decode(&m.body, &st, &sa, err);
    if (rc != CS_OK) {
        cs_arena_free(&sa);
        return cs_error_wrap(err, rc, "reply to stats");
    }
    json_t *o = cs_json_stats(&m.body, &st);
    if (o != NULL && schedulers_only) {
        json_t *s = json_incref(json_object_get(o, "schedulers"));
        json_decref(o);
        o = s != NULL ? s : json_array();
    }
    rc = o ? ok_json(r, 200, o, st.version, err) : cs_errorf(err, CS_ENOMEM, "out of memory");
    cs_arena_free(&sa);
    return rc;
}

static int r_stats(api *a, gw_reply *r, cs_error *err) { return stats(a, r, false, err); }

static int r_schedulers(api *a, gw_reply *r, cs_error *err) { return stats(a, r, true, err); }

/* The members reply as it comes (roles are words on the wire already).
 * It carries Raft's indexes, not the cell version: X-Cell-Index comes from
 * a stats read (counters only: cheap), so that blocking queries chain. */
static int r_members(api *a, gw_reply *r, cs_error *err)
{
    cs_msg m;
    CS_TRY(call(a->c, CS_MSG_MEMBERS, "\x80", 1, &m, err));
    json_t *o = cs_json_of_msgpack(&m.body);
    if (o == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    uint64_t version = 0;
    int rc = call(a->c, CS_MSG_STATS, "\x80", 1, &m, err);
    if (rc == CS_OK)
        rc = cs_obj_u64(&m.body, "version", true, UINT64_MAX, &version, err);
    if (rc == CS_OK)
        return ok_json(r, 200, o, version, err);
    json_decref(o);
    return rc;
}

/* ---- writes -------------------------------------------------------------------- */

/* A body that is not JSON: 415, outside the cs_error codes. */
#define GW_EMEDIA 1000

/* The body must be JSON when there is one (`required`: there must be one). */
static int check_body(api *a, bool required, cs_error *err)
{
    const gw_req *q = a->q;
    if (q->body_len == 0)
        return required ? cs_errorf(err, CS_EINVAL, "%s needs a JSON body", q->method) : CS_OK;
    const char *ct = q->content_type;
    size_t n = ct ? strcspn(ct, ";") : 0;
    while (n > 0 && ct[n - 1] == ' ')
        n--;
    if (ct == NULL || n != strlen("application/json") ||
        strncasecmp(ct, "application/json", n) != 0)
        return cs_errorf(err, GW_EMEDIA, "the body's Content-Type is %s%s%s; send application/json",
                         ct ? "'" : "", ct ? ct : "missing", ct ? "'" : "");
    return CS_OK;
}

/* The body as a JSON object; "body: line L column C: text" when it is
 * not JSON, "body: ... is not an object" otherwise. */
static int body_object(api *a, json_t **out, cs_error *err)
{
    json_error_t je;
    json_t *v = json_loadb(a->q->body, a->q->body_len, JSON_REJECT_DUPLICATES, &je);
    if (v == NULL)
        return cs_errorf(err, CS_EINVAL, "body: line %d column %d: %s", je.line, je.column,
                         je.text);
    if (!json_is_object(v)) {
        json_decref(v);
        return cs_errorf(err, CS_EINVAL, "body: not a JSON object");
    }
    *out = v;
    return CS_OK;
}

/* One line of cs_cell_unfit, appended to the array `ctx`. */
static void warn(void *ctx, const char *text)
{
    append(ctx, json_string(text));
}

/* The spec's warnings, then why no machine could hold the job (cellctl
 * prints both on stderr; here they are part of the reply). */
static json_t *submit_warnings(api *a, const cs_jobspec *s, bool fit)
{
    json_t *w = json_array();
    for (uint32_t i = 0; w && i < s->nwarnings; i++)
        append(w, json_string(s->warnings[i]));
    if (fit && w != NULL)
        cs_cell_unfit(call, a->c, &s->job, warn, w);
    return w;
}

/* A write's reply `o` with its "warnings" `w` (both released). */
static int with_warnings(gw_reply *r, uint16_t status, json_t *o, json_t *w, uint64_t version,
                         cs_error *err)
{
    if (o == NULL || w == NULL || json_object_set_new(o, "warnings", w) != 0) {
        json_decref(o);
        if (o == NULL)
            json_decref(w);
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    }
    return ok_json(r, status, o, version, err);
}

static int r_submit(api *a, gw_reply *r, cs_error *err)
{
    CS_TRY(check_body(a, true, err));
    const char *dry = gw_req_param(a->q, "dry_run");
    bool dry_run = dry != NULL && (strcmp(dry, "1") == 0 || strcmp(dry, "true") == 0);
    if (dry != NULL && !dry_run && strcmp(dry, "0") != 0 && strcmp(dry, "false") != 0)
        return cs_errorf(err, CS_EINVAL, "dry_run=%s is not 1, true, 0 or false", dry);
    cs_jobspec s;
    CS_TRY(cs_jobspec_parse(a->q->body, a->q->body_len, &s, err));
    int rc;
    if (dry_run) {
        /* What would be submitted, in the native format. */
        json_t *j = NULL;
        rc = cs_jobspec_to_json(&s.job, &s.opts, &j, err);
        if (rc == CS_OK)
            rc = ok_json(r, 200, j, 0, err);
        cs_jobspec_free(&s);
        return rc;
    }
    cs_id_reply id;
    if ((rc = cs_cell_submit(call, a->c, &s.job, &id, err)) == CS_OK) {
        json_t *o = cs_json_job_written(s.job.name, id.id, id.version);
        rc = with_warnings(r, 201, o, submit_warnings(a, &s, true), id.version, err);
    } else if (rc != CS_ENOMEM) {
        cs_error_wrap(err, rc, "submit %s", s.job.name);
    }
    cs_jobspec_free(&s);
    return rc;
}

static int r_update(api *a, gw_reply *r, cs_error *err)
{
    CS_TRY(check_body(a, true, err));
    cs_jobspec s;
    CS_TRY(cs_jobspec_parse(a->q->body, a->q->body_len, &s, err));
    if (strcmp(s.job.name, a->name) != 0) {
        int rc = cs_errorf(err, CS_EINVAL, "update %s: the body is the spec of job '%s' (a "
                           "job's name cannot change)", a->name, s.job.name);
        cs_jobspec_free(&s);
        return rc;
    }
    uint64_t v;
    int rc = cs_cell_update(call, a->c, a->name, &s.job, &v, err);
    if (rc == CS_OK)
        rc = with_warnings(r, 200, cs_json_job_written(a->name, 0, v),
                           submit_warnings(a, &s, false), v, err);
    else if (rc != CS_ENOMEM)
        cs_error_wrap(err, rc, "update %s", a->name);
    cs_jobspec_free(&s);
    return rc;
}

/* job.kill (count < 0) or job.scale. */
static int job_request(api *a, int64_t count, gw_reply *r, cs_error *err)
{
    uint64_t v;
    int rc = cs_cell_job_request(call, a->c, a->name, count, &v, err);
    if (rc != CS_OK)
        return cs_error_wrap(err, rc, "%s %s", count < 0 ? "kill" : "scale", a->name);
    return ok_json(r, 200, cs_json_job_written(a->name, 0, v), v, err);
}

static int r_kill(api *a, gw_reply *r, cs_error *err)
{
    return job_request(a, -1, r, err);
}

static int r_scale(api *a, gw_reply *r, cs_error *err)
{
    CS_TRY(check_body(a, true, err));
    json_t *o;
    CS_TRY(body_object(a, &o, err));
    json_t *n = json_object_get(o, "count");
    json_int_t count = json_is_integer(n) ? json_integer_value(n) : -1;
    json_decref(o);
    if (count < 0 || count > (json_int_t)CS_TASK_INDEX_MAX + 1)
        return cs_errorf(err, CS_EINVAL, "scale %s: \"count\" must be a task count in [0, %u]",
                         a->name, CS_TASK_INDEX_MAX + 1u);
    return job_request(a, (int64_t)count, r, err);
}

/* machine.admin; deadline < 0: none. */
static int admin(api *a, const char *verb, uint8_t state, int64_t deadline, gw_reply *r,
                 cs_error *err)
{
    cs_machine_admin_reply reply;
    int rc = cs_cell_machine_admin(call, a->c, a->name, state, deadline, &reply, err);
    if (rc != CS_OK)
        return cs_error_wrap(err, rc, "%s %s", verb, a->name);
    return ok_json(r, 200,
                   cs_json_machine_admin(a->name, state, reply.drain_deadline, reply.version),
                   reply.version, err);
}

static int r_cordon(api *a, gw_reply *r, cs_error *err)
{
    return admin(a, "cordon", CS_ADMIN_CORDONED, -1, r, err);
}

static int r_uncordon(api *a, gw_reply *r, cs_error *err)
{
    return admin(a, "uncordon", CS_ADMIN_ACTIVE, -1, r, err);
}

/* Drain's deadline as cellctl's: none given is 1 h (cellctl drain's
 * default), "deadline": "30s" a duration, "deadline": null none at all
 * (cellctl drain --no-deadline). */
#define DRAIN_DEADLINE_DEFAULT_MS 3600000

static int r_drain(api *a, gw_reply *r, cs_error *err)
{
    CS_TRY(check_body(a, false, err));
    int64_t deadline = DRAIN_DEADLINE_DEFAULT_MS;
    if (a->q->body_len > 0) {
        json_t *o;
        CS_TRY(body_object(a, &o, err));
        json_t *d = json_object_get(o, "deadline");
        int rc = CS_OK;
        uint32_t ms = 0;
        if (json_is_null(d))
            deadline = -1;
        else if (json_is_string(d) && (rc = cs_duration_parse_ms(json_string_value(d), &ms,
                                                                 err)) == CS_OK)
            deadline = ms;
        else if (d != NULL && rc == CS_OK)
            rc = cs_errorf(err, CS_EINVAL, "\"deadline\" is a duration (\"30s\", \"10m\", \"0\") "
                           "or null (batch tasks run to their end)");
        else if (rc != CS_OK)
            rc = cs_error_wrap(err, rc, "\"deadline\"");
        json_decref(o);
        if (rc != CS_OK)
            return cs_error_wrap(err, rc, "drain %s", a->name);
    }
    return admin(a, "drain", CS_ADMIN_DRAINING, deadline, r, err);
}

/* ---- dispatch --------------------------------------------------------------------- */

/* A route: method, the path's segments after "v1" ("*" matches a name),
 * what it does, and the query parameters it takes besides index and wait. */
typedef struct route {
    const char *method;
    const char *path[3];
    int (*fn)(api *a, gw_reply *r, cs_error *err);
    const char *params[4];
} route;

static const route routes[] = {
    {"GET", {"machines"}, r_machines, {"state"}},
    {"GET", {"jobs"}, r_jobs, {"state"}},
    {"POST", {"jobs"}, r_submit, {"dry_run"}},
    {"GET", {"jobs", "*"}, r_job, {NULL}},
    {"PUT", {"jobs", "*"}, r_update, {NULL}},
    {"DELETE", {"jobs", "*"}, r_kill, {NULL}},
    {"GET", {"jobs", "*", "tasks"}, r_job_tasks, {NULL}},
    {"POST", {"jobs", "*", "scale"}, r_scale, {NULL}},
    {"GET", {"tasks"}, r_tasks, {"state", "job", "machine"}},
    {"GET", {"stats"}, r_stats, {NULL}},
    {"GET", {"schedulers"}, r_schedulers, {NULL}},
    {"GET", {"members"}, r_members, {NULL}},
    {"POST", {"machines", "*", "cordon"}, r_cordon, {NULL}},
    {"POST", {"machines", "*", "uncordon"}, r_uncordon, {NULL}},
    {"POST", {"machines", "*", "drain"}, r_drain, {NULL}},
};
#define NROUTES (sizeof routes / sizeof routes[0])

/* Whether the path after "v1" matches the route's; *name gets the "*". */
static bool path_matches(const route *rt, const gw_req *q, const char **name)
{
    size_t n = 0;
    while (n < 3 && rt->path[n] != NULL)
        n++;
    if (q->nseg != n + 1)
        return false;
    *name = NULL;
    for (size_t i = 0; i < n; i++) {
        const char *seg = q->seg[i + 1];
        if (strcmp(rt->path[i], "*") == 0)
            *name = seg[0] == '/' && seg[1] != '\0' ? seg + 1 : seg;
        else if (strcmp(rt->path[i], seg) != 0)
            return false;
    }
    return true;
}

static int check_params(const route *rt, const gw_req *q, cs_error *err)
{
    bool get = strcmp(rt->method, "GET") == 0;
    for (size_t i = 0; i < q->nparams; i++) {
        const char *k = q->params[i].key;
        bool known = get && (strcmp(k, "index") == 0 || strcmp(k, "wait") == 0);
        for (size_t j = 0; !known && j < 4 && rt->params[j] != NULL; j++)
            known = strcmp(k, rt->params[j]) == 0;
        if (!known) {
            char list[96] = "";
            size_t len = 0;
            for (size_t j = 0; j < 4 && rt->params[j] != NULL; j++)
                len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", len ? ", " : "",
                                        rt->params[j]);
            if (get)
                snprintf(list + len, sizeof list - len, "%sindex, wait", len ? ", " : "");
            return cs_errorf(err, CS_EINVAL, "unknown query parameter '%s' (%s %s takes %s)", k,
                             rt->method, q->seg[1], list[0] ? list : "none");
        }
    }
    return CS_OK;
}

void gw_api_serve(cs_client *c, const gw_req *q, gw_reply *r)
{
    const char *method = strcmp(q->method, "HEAD") == 0 ? "GET" : q->method;
    const route *found = NULL;
    const char *name = NULL;
    r->allow[0] = '\0';
    size_t alen = 0;
    for (size_t i = 0; q->nseg >= 2 && strcmp(q->seg[0], "v1") == 0 && i < NROUTES; i++) {
        const char *nm;
        if (!path_matches(&routes[i], q, &nm))
            continue;
        if (strcmp(routes[i].method, method) == 0) {
            found = &routes[i];
            name = nm;
        }
        alen += (size_t)snprintf(r->allow + alen, sizeof r->allow - alen, "%s%s",
                                 alen ? ", " : "", routes[i].method);
    }
    char msg[CS_ERROR_MSG_SIZE + 64];
    if (found == NULL && alen == 0) {
        snprintf(msg, sizeof msg, "no route %s %.200s (the API's routes are under /v1/: "
                 "docs/http.md)", q->method, q->path ? q->path : "/");
        gw_reply_error(r, 404, msg);
        return;
    }
    if (found == NULL) {
        snprintf(msg, sizeof msg, "%s is not allowed here: this path takes %s", q->method,
                 r->allow);
        gw_reply_error(r, 405, msg);
        return;
    }
    r->allow[0] = '\0';
    cs_error err = {0};
    api a = {c, q, name};
    int rc = check_params(found, q, &err);
    if (rc == CS_OK && name != NULL && name[0] == '\0')
        rc = cs_errorf(&err, CS_EINVAL, "an empty name in the path");
    if (rc == CS_OK)
        rc = found->fn(&a, r, &err);
    if (rc != CS_OK)
        gw_reply_error(r, rc == GW_EMEDIA ? 415 : gw_status_of(rc),
                       err.msg[0] ? err.msg : cs_strerror(rc));
}
