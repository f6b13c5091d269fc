/* cellctl_audit.c — audit (see cellctl_audit.h). */
#include "tools/cellctl_audit.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cellstate/units.h"
#include "proto/proto.h"
#include "proto/readmsg.h"
#include "proto/servers.h"
#include "tools/cellctl_table.h"

/* ---- --since ------------------------------------------------------------------------ */

int ctl_audit_since(const char *text, uint64_t now_ms, uint64_t *out, cs_error *err)
{
    uint32_t ms;
    cs_error derr;
    if (cs_duration_parse_ms(text, &ms, &derr) == CS_OK) {
        *out = now_ms > ms ? now_ms - ms : 1;
        return CS_OK;
    }
    static const char *const forms[] = {"%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S",
                                        "%Y-%m-%dT%H:%M",    "%Y-%m-%d %H:%M", "%Y-%m-%d"};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        const char *rest = strptime(text, forms[i], &tm);
        if (rest == NULL || (rest[0] != '\0' && strcmp(rest, "Z") != 0))
            continue;
        time_t t = timegm(&tm);
        if (t < 0)
            break;
        *out = (uint64_t)t * 1000;
        return CS_OK;
    }
    return cs_errorf(err, CTL_EUSAGE,
                     "--since %s: neither a duration back from now (1h, 30m, 90s) nor a UTC "
                     "time (2026-01-31, 2026-01-31T15:04, 2026-01-31T15:04:05Z)",
                     text);
}

/* ---- asking every server ---------------------------------------------------------------- */

/* One server of the list and its answer. */
typedef struct asker {
    const char *url; /* borrowed from the parsed list */
    const ctl *c;    /* --timeout and the certificates */
    const msgpack_sbuffer *req;
    bool answered;
    cs_audit_reply r; /* in `a` */
    cs_arena a;
    char why[CS_ERROR_MSG_SIZE]; /* when not answered */
    pthread_t thread;
    bool started;
} asker;

/* Ask one server on a thread of its own (a client of its own; nothing
 * shared but `p`). */
static void *ask(void *arg)
{
    asker *p = arg;
    ctl one = {.url = p->url, .timeout_ms = p->c->timeout_ms, .tls = p->c->tls};
    cs_msg m;
    cs_error err = {0};
    int rc = ctl_call(&one, CS_MSG_AUDIT, p->req->data, p->req->size, &m, &err);
    /* The reply lives in the client: decoded before it closes. */
    if (rc == CS_OK && (rc = cs_audit_reply_decode(&m.body, &p->r, &p->a, &err)) != CS_OK)
        cs_error_wrap(&err, rc, "reply to audit");
    ctl_close(&one);
    if (rc != CS_OK) {
        /* ctl_call's transport error names the URL; a server's refusal
         * does not. */
        if (strstr(err.msg, p->url) == NULL)
            cs_error_wrap(&err, rc, "%s", p->url);
        memcpy(p->why, err.msg, sizeof p->why);
        return NULL;
    }
    p->answered = true;
    return NULL;
}

/* ---- merging and printing ---------------------------------------------------------------- */

typedef struct merged {
    const cs_audit_entry *e;
    const char *server;
    uint32_t from, at; /* which server, its position there: ties keep their order */
} merged;

static int by_time(const void *x, const void *y)
{
    const merged *a = x, *b = y;
    if (a->e->time_ms != b->e->time_ms)
        return a->e->time_ms < b->e->time_ms ? -1 : 1;
    if (a->from != b->from)
        return a->from < b->from ? -1 : 1;
    return a->at < b->at ? -1 : a->at > b->at;
}

/* "2026-12-07T03:12:58.123Z": UTC, as --since takes it. */
static const char *time_text(uint64_t ms, char *buf, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char day[32];
    if (gmtime_r(&t, &tm) == NULL || strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
        snprintf(buf, size, "%" PRIu64, ms);
    else
        snprintf(buf, size, "%s.%03uZ", day, (unsigned)(ms % 1000));
    return buf;
}

/* A text for the table: control characters (a name may hold a newline)
 * shown as '?', so that one entry stays one line. */
static const char *one_line(const char *s, char *buf, size_t size)
{
    size_t i = 0;
    for (; s[i] != '\0' && i + 1 < size; i++)
        buf[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    buf[i] = '\0';
    return buf;
}

static int print_table(const merged *v, size_t n, cs_error *err)
{
    static const char *const headers[] = {"TIME", "WHO", "ACTION", "TARGET", ">VERSION"};
    ctl_table t;
    int rc = ctl_table_init(&t, 5, headers, err);
    for (size_t i = 0; rc == CS_OK && i < n; i++) {
        const cs_audit_entry *e = v[i].e;
        char tb[40], wb[CS_AUDIT_WHO_MAX + 1], ab[CS_AUDIT_ACTION_MAX + 1],
            gb[CS_AUDIT_TARGET_MAX + 1];
        if ((rc = ctl_table_cellf(&t, err, "%s", time_text(e->time_ms, tb, sizeof tb))) ||
            (rc = ctl_table_cellf(&t, err, "%s", one_line(e->who, wb, sizeof wb))) ||
            (rc = ctl_table_cellf(&t, err, "%s", one_line(e->action, ab, sizeof ab))) ||
            (rc = ctl_table_cellf(&t, err, "%s", one_line(e->target, gb, sizeof gb))))
            break;
        rc = ctl_table_cellf(&t, err, "%" PRIu64, e->version);
    }
    if (rc == CS_OK)
        ctl_table_print(&t, stdout, 0);
    ctl_table_free(&t);
    return rc;
}

/* One JSON object a line, as the servers' files hold them, with the
 * server that answered. */
static int print_json(const merged *v, size_t n, cs_error *err)
{
    for (size_t i = 0; i < n; i++) {
        const cs_audit_entry *e = v[i].e;
        json_t *o = json_pack("{s:I,s:s,s:s,s:s,s:I,s:s}", "time", (json_int_t)e->time_ms, "who",
                              e->who, "action", e->action, "target", e->target, "version",
                              (json_int_t)e->version, "server", v[i].server);
        if (o == NULL)
            return cs_errorf(err, CS_EPROTO,
                             "an entry from %s is not valid UTF-8 or is out of range", v[i].server);
        char *line = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (line == NULL)
            return cs_errorf(err, CS_ENOMEM, "out of memory");
        puts(line);
        free(line);
    }
    return CS_OK;
}

/* ---- the command ------------------------------------------------------------------------ */

static uint64_t wall_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The request from the command line. */
static int build_request(const ctl_args *a, cs_audit_req *q, cs_error *err)
{
    memset(q, 0, sizeof *q);
    if (a->argc > 0)
        return cs_errorf(err, CTL_EUSAGE, "audit takes no argument ('%s')", a->argv[0]);
    q->limit = a->limit != 0 ? a->limit : CS_AUDIT_LIMIT_DEFAULT;
    if (a->since != NULL)
        CS_TRY(ctl_audit_since(a->since, wall_now_ms(), &q->since, err));
    if (a->who != NULL && strlen(a->who) > CS_AUDIT_WHO_MAX)
        return cs_errorf(err, CTL_EUSAGE, "--who: longer than %d bytes", CS_AUDIT_WHO_MAX);
    if (a->action != NULL && strlen(a->action) > CS_AUDIT_ACTION_MAX)
        return cs_errorf(err, CTL_EUSAGE, "--action: longer than %d bytes", CS_AUDIT_ACTION_MAX);
    q->who = a->who;
    q->action = a->action;
    return CS_OK;
}

/* Every answer's entries, merged by time; the newest q->limit printed. */
static int merge_and_print(ctl *c, asker *ps, size_t n, uint32_t limit, cs_error *err)
{
    size_t total = 0;
    bool more = false;
    for (size_t i = 0; i < n; i++)
        if (ps[i].answered) {
            total += ps[i].r.n;
            more |= ps[i].r.more;
        }
    merged *v = calloc(total ? total : 1, sizeof *v);
    if (v == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        for (uint32_t j = 0; ps[i].answered && j < ps[i].r.n; j++)
            v[k++] = (merged){&ps[i].r.entries[j], ps[i].url, (uint32_t)i, j};
    qsort(v, total, sizeof *v, by_time);
    size_t skip = total > limit ? total - limit : 0;
    int rc = c->output == CTL_OUT_JSON ? print_json(v + skip, total - skip, err)
                                       : print_table(v + skip, total - skip, err);
    if (rc == CS_OK && (more || skip > 0) && c->output != CTL_OUT_JSON)
        fprintf(stderr, "cellctl: audit: older entries match too (-n %u shows the newest %u)\n",
                limit, limit);
    free(v);
    return rc;
}

int ctl_cmd_audit(ctl *c, const ctl_args *a, cs_error *err)
{
    cs_audit_req q;
    CS_TRY(build_request(a, &q, err));
    cs_servers servers;
    CS_TRY(cs_servers_parse(c->url, &servers, err));
    msgpack_sbuffer req;
    msgpack_sbuffer_init(&req);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &req, msgpack_sbuffer_write);
    if (cs_audit_req_encode(&pk, &q) != CS_OK) {
        msgpack_sbuffer_destroy(&req);
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    }
    asker ps[CS_SERVERS_MAX];
    size_t n = servers.n;
    for (size_t i = 0; i < n; i++) {
        ps[i] = (asker){.url = servers.url[i], .c = c, .req = &req};
        cs_arena_init(&ps[i].a);
    }
    for (size_t i = 0; i < n; i++)
        ps[i].started = pthread_create(&ps[i].thread, NULL, ask, &ps[i]) == 0;
    for (size_t i = 0; i < n; i++) {
        if (ps[i].started)
            pthread_join(ps[i].thread, NULL);
        else
            ask(&ps[i]); /* no thread to be had: asked in turn */
    }
    uint32_t failed = 0;
    for (size_t i = 0; i < n; i++)
        if (!ps[i].answered) {
            fprintf(stderr, "cellctl: audit: %s\n", ps[i].why);
            failed++;
        }
    int rc = failed < n ? merge_and_print(c, ps, n, q.limit, err) : CS_OK;
    if (rc == CS_OK && failed == n)
        rc = cs_errorf(err, CS_EIO, "audit: no server answered (%zu, named above)", n);
    else if (rc == CS_OK && failed > 0)
        rc = cs_errorf(err, CS_EUNAVAIL,
                       "audit: %u of %zu servers did not answer (named above): the entries "
                       "shown may lack theirs",
                       failed, n);
    for (size_t i = 0; i < n; i++)
        cs_arena_free(&ps[i].a);
    msgpack_sbuffer_destroy(&req);
    return rc;
}
