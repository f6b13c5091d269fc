/* jobspec.c — native and Marathon JSON job specs to job.submit bodies (see
 * jobspec.h; docs/design.md "Job specs" lists the fields and the mapping). */
#include "spec/jobspec.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cellstate/units.h"
#include "proto/jobmsg.h"
#include "proto/proto.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* A JSON path ("healthChecks[0].portIndex") long enough for any field of a
 * spec; longer keys (env names may be 4 KiB) are cut, which only shortens
 * the message. */
#define PATH_LEN 320

/* The conversion's state: where in the JSON it is, for messages. */
typedef struct ctx {
    cs_jobspec *s;
    cs_error *err;
    bool marathon;
    char path[PATH_LEN];
    size_t plen;
} ctx;

/* ---- paths, errors and warnings ------------------------------------------ */

static size_t push_key(ctx *c, const char *key)
{
    size_t old = c->plen;
    int n = snprintf(c->path + old, sizeof c->path - old, "%s%s", old ? "." : "", key);
    if (n > 0)
        c->plen = old + (size_t)n < sizeof c->path ? old + (size_t)n : sizeof c->path - 1;
    return old;
}

static size_t push_index(ctx *c, size_t i)
{
    size_t old = c->plen;
    int n = snprintf(c->path + old, sizeof c->path - old, "[%zu]", i);
    if (n > 0)
        c->plen = old + (size_t)n < sizeof c->path ? old + (size_t)n : sizeof c->path - 1;
    return old;
}

static void pop(ctx *c, size_t old)
{
    c->plen = old;
    c->path[old] = '\0';
}

/* Set the path to one field from the top, for checks made after reading. */
static void set_path(ctx *c, const char *key, size_t index, const char *sub)
{
    pop(c, 0);
    push_key(c, key);
    push_index(c, index);
    push_key(c, sub);
}

static int vfail(ctx *c, const char *fmt, va_list ap)
{
    char what[CS_ERROR_MSG_SIZE];
    vsnprintf(what, sizeof what, fmt, ap);
    if (c->plen == 0)
        return cs_errorf(c->err, CS_EINVAL, "%s", what);
    return cs_errorf(c->err, CS_EINVAL, "%.200s: %s", c->path, what);
}

/* CS_EINVAL: "<path>: <what is wrong>". */
__attribute__((format(printf, 2, 3))) static int fail(ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vfail(c, fmt, ap);
    va_end(ap);
    return rc;
}

/* The same for a member `key` of the current object. The path is left
 * there: after an error the conversion stops. */
__attribute__((format(printf, 3, 4))) static int fail_at(ctx *c, const char *key, const char *fmt,
                                                         ...)
{
    push_key(c, key);
    va_list ap;
    va_start(ap, fmt);
    int rc = vfail(c, fmt, ap);
    va_end(ap);
    return rc;
}

static int oom(ctx *c)
{
    return cs_errorf(c->err, CS_ENOMEM, "job spec: out of memory");
}

/* Record "<path>: <what was ignored and why>". */
__attribute__((format(printf, 2, 3))) static int warn(ctx *c, const char *fmt, ...)
{
    cs_jobspec *s = c->s;
    char what[512], line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    int n = c->plen ? snprintf(line, sizeof line, "%s: %s", c->path, what)
                    : snprintf(line, sizeof line, "%s", what);
    if (n < 0)
        return oom(c);
    if (s->nwarnings == s->warnings_cap) {
        uint32_t cap = s->warnings_cap ? 2 * s->warnings_cap : 8;
        const char **w = cs_arena_alloc(&s->arena, cap * sizeof *w);
        if (w == NULL)
            return oom(c);
        if (s->nwarnings)
            memcpy(w, s->warnings, s->nwarnings * sizeof *w);
        s->warnings = w;
        s->warnings_cap = cap;
    }
    const char *copy = cs_arena_strndup(&s->arena, line, strlen(line));
    if (copy == NULL)
        return oom(c);
    s->warnings[s->nwarnings++] = copy;
    return CS_OK;
}

static const char *type_name(const json_t *v)
{
    if (v == NULL)
        return "missing";
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE: return "true";
    case JSON_FALSE: return "false";
    default: return "null";
    }
}

/* A value that asks for nothing: null, false, 0, "", [] or {}. Marathon
 * files carry such defaults everywhere ("executor": ""), and warning about
 * them would bury the warnings that matter. */
static bool asks_nothing(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_NULL:
    case JSON_FALSE: return true;
    case JSON_INTEGER: return json_integer_value(v) == 0;
    case JSON_REAL: return json_real_value(v) == 0.0;
    case JSON_STRING: return json_string_length(v) == 0;
    case JSON_ARRAY: return json_array_size(v) == 0;
    case JSON_OBJECT: return json_object_size(v) == 0;
    default: return false;
    }
}

/* ---- scalars ---------------------------------------------------------------- */


/* A JSON number, or a string holding one ("0.5"): Marathon files often
 * quote numbers, and Marathon itself accepts them. */
static int get_number(ctx *c, const json_t *v, double *out)
{
    if (json_is_integer(v)) {
        *out = (double)json_integer_value(v);
        return CS_OK;
    }
    if (json_is_real(v)) {
        *out = json_real_value(v);
        return CS_OK;
    }
    if (!json_is_string(v))
        return fail(c, "is %s, not a number", type_name(v));
    const char *t = json_string_value(v);
    size_t n = cs_scan_decimal(t, true);
    if (n == 0 || t[n] != '\0' || n != json_string_length(v))
        return fail(c, "\"%.64s\" is not a number", t);
    double d = strtod(t, NULL);
    if (!isfinite(d))
        return fail(c, "\"%.64s\" is out of range", t);
    *out = d;
    return CS_OK;
}

static int get_int(ctx *c, const json_t *v, int64_t min, int64_t max, int64_t *out)
{
    int64_t x;
    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else {
        double d;
        CS_TRY(get_number(c, v, &d));
        if (d != floor(d))
            return fail(c, "%g is not a whole number", d);
        /* Beyond 2^53 a double no longer holds every integer. */
        if (fabs(d) > 9007199254740992.0)
            return fail(c, "%g is out of range [%lld, %lld]", d, (long long)min, (long long)max);
        x = (int64_t)d;
    }
    if (x < min || x > max)
        return fail(c, "%lld is out of range [%lld, %lld]", (long long)x, (long long)min,
                    (long long)max);
    *out = x;
    return CS_OK;
}

static int get_u32(ctx *c, const json_t *v, uint32_t max, uint32_t *out)
{
    int64_t x;
    CS_TRY(get_int(c, v, 0, max, &x));
    *out = (uint32_t)x;
    return CS_OK;
}

/* A string copied into the spec's arena. */
static int get_str(ctx *c, const json_t *v, size_t max, bool nonempty, const char **out)
{
    if (!json_is_string(v))
        return fail(c, "is %s, not a string", type_name(v));
    const char *t = json_string_value(v);
    size_t n = json_string_length(v);
    if (memchr(t, '\0', n) != NULL)
        return fail(c, "holds a NUL character");
    if (n > max)
        return fail(c, "is longer than %zu bytes", max);
    if (nonempty && n == 0)
        return fail(c, "is empty");
    char *d = cs_arena_strndup(&c->s->arena, t, n);
    if (d == NULL)
        return oom(c);
    *out = d;
    return CS_OK;
}

/* "cpu_limit": "share" (the default: the cpu request is a weight under
 * contention, as Kubernetes' requests) or "hard" (a cap, as its limits). */
static int get_cpu_limit(ctx *c, const json_t *v, bool *hard)
{
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    if (s != NULL && (strcmp(s, "hard") == 0 || strcmp(s, "share") == 0)) {
        *hard = s[0] == 'h';
        return CS_OK;
    }
    return fail(c, "is %s, not \"hard\" or \"share\"", s ? "another string" : type_name(v));
}

static int get_bool(ctx *c, const json_t *v, bool *out)
{
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return CS_OK;
    }
    if (json_is_string(v) &&
        (strcmp(json_string_value(v), "true") == 0 || strcmp(json_string_value(v), "false") == 0)) {
        *out = json_string_value(v)[0] == 't';
        return CS_OK;
    }
    return fail(c, "is %s, not true or false", type_name(v));
}

static int seconds_to_ms(ctx *c, double sec, uint32_t *out)
{
    if (!(sec >= 0))
        return fail(c, "%g is negative", sec);
    double ms = round(sec * 1000.0);
    if (ms > (double)UINT32_MAX)
        return fail(c, "%g seconds is longer than %u ms (about 49 days)", sec, UINT32_MAX);
    *out = (uint32_t)ms;
    return CS_OK;
}

/* Seconds as a number, or a duration string ("30s", "1m30s", "500ms"). */
static int get_duration(ctx *c, const json_t *v, uint32_t *out)
{
    if (json_is_string(v)) {
        cs_error e;
        if (cs_duration_parse_ms(json_string_value(v), out, &e) != CS_OK)
            return fail(c, "%s", e.msg);
        return CS_OK;
    }
    double sec;
    CS_TRY(get_number(c, v, &sec));
    return seconds_to_ms(c, sec, out);
}

/* A fraction in [0, 1] as permille, the unit of cs_jobopts. */
static int get_fraction(ctx *c, const json_t *v, uint32_t *out)
{
    double f;
    CS_TRY(get_number(c, v, &f));
    if (!(f >= 0 && f <= 1))
        return fail(c, "%g is not between 0 and 1", f);
    *out = (uint32_t)lround(f * CS_PERMILLE);
    return CS_OK;
}

/* A factor of at least 1 (a restart back-off's growth), to permille. */
static int get_factor(ctx *c, const json_t *v, uint32_t *out)
{
    double f;
    CS_TRY(get_number(c, v, &f));
    if (!(f >= 1 && f <= 1000))
        return fail(c, "%g is not between 1 and 1000", f);
    *out = (uint32_t)lround(f * CS_PERMILLE);
    return CS_OK;
}

/* cpu in cores (a number, "0.5", or Kubernetes' "500m") to millicores,
 * rounded to the nearest. */
static int get_cpu(ctx *c, const json_t *v, int64_t *out)
{
    double cores;
    const char *t = json_is_string(v) ? json_string_value(v) : NULL;
    size_t n = t ? cs_scan_decimal(t, true) : 0;
    if (t && n > 0 && t[n] == 'm' && t[n + 1] == '\0' && n + 1 == json_string_length(v))
        cores = strtod(t, NULL) / 1000.0;
    else
        CS_TRY(get_number(c, v, &cores));
    if (!(cores >= 0))
        return fail(c, "%g cores is negative", cores);
    if (cores > (double)CS_RES_MAX / 1000.0)
        return fail(c, "%g cores is more than the limit of %.0f", cores,
                    (double)CS_RES_MAX / 1000.0);
    *out = llround(cores * 1000.0);
    return CS_OK;
}

/* Memory or disk in MiB (a number, or with a binary unit: "512Mi", "2Gi"),
 * rounded up: a task never gets less than it asked for. */
static int get_mib(ctx *c, const json_t *v, int64_t *out)
{
    static const struct {
        const char *unit;
        double mib;
    } units[] = {{"Ki", 1.0 / 1024},  {"KiB", 1.0 / 1024}, {"Mi", 1},
                 {"MiB", 1},          {"Gi", 1024},        {"GiB", 1024},
                 {"Ti", 1024 * 1024}, {"TiB", 1024 * 1024}};
    double mib = 0;
    const char *t = json_is_string(v) ? json_string_value(v) : NULL;
    size_t n = t ? cs_scan_decimal(t, true) : 0;
    if (t && n > 0 && t[n] != '\0') {
        size_t u = 0;
        while (u < NELEM(units) && strcmp(t + n, units[u].unit) != 0)
            u++;
        if (u < NELEM(units))
            mib = strtod(t, NULL) * units[u].mib;
        else
            return fail(c, "\"%.64s\" is not a size in MiB (a number, or with a unit: 512Mi, 2Gi)",
                        t);
    } else {
        CS_TRY(get_number(c, v, &mib));
    }
    if (!(mib >= 0))
        return fail(c, "%g MiB is negative", mib);
    if (mib > (double)CS_RES_MAX)
        return fail(c, "%g MiB is more than the limit of %lld", mib, (long long)CS_RES_MAX);
    *out = (int64_t)ceil(mib);
    return CS_OK;
}


/* ---- names and commands ------------------------------------------------------ */

static bool has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

int cs_jobspec_marathon_name(const char *id, char *out, size_t size, cs_error *err)
{
    const char *p = id[0] == '/' ? id + 1 : id;
    size_t n = strlen(p);
    if (n == 0)
        return cs_errorf(err, CS_EINVAL, "'%s' names no app", id);
    if (n > CS_NAME_MAX)
        return cs_errorf(err, CS_EINVAL, "'%.64s...' is longer than %d bytes without its leading /",
                         id, CS_NAME_MAX);
    if (has_control(p))
        return cs_errorf(err, CS_EINVAL, "'%.64s' holds a control character", id);
    for (const char *seg = p;;) {
        size_t len = strcspn(seg, "/");
        if (len == 0 || (len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
            return cs_errorf(err, CS_EINVAL, "'%.64s' has an empty, '.' or '..' path segment", id);
        if (seg[len] == '\0')
            break;
        seg += len + 1;
    }
    if (n + 1 > size)
        return cs_errorf(err, CS_EINVAL, "'%.64s' does not fit", id);
    memcpy(out, p, n + 1);
    return CS_OK;
}

static bool shell_safe(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && strchr("@%+=:,./-_", *s) == NULL)
            return false;
    return true;
}

/* Append the arguments, quoted for a POSIX shell and separated by spaces,
 * to a NUL-terminated string in `a`: the `cmd` that runs `argv` exactly
 * (no expansion of $, *, ...). NULL when out of memory. */
static char *shell_join(const char *const *argv, size_t argc, cs_arena *a)
{
    /* Worst case: every byte a quote ('\'' is 4 bytes), 2 quotes, a space. */
    size_t size = 1;
    for (size_t i = 0; i < argc; i++)
        size += 4 * strlen(argv[i]) + 3;
    char *out = cs_arena_alloc(a, size), *p = out;
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < argc; i++) {
        if (i > 0)
            *p++ = ' ';
        if (shell_safe(argv[i])) {
            size_t n = strlen(argv[i]);
            memcpy(p, argv[i], n);
            p += n;
            continue;
        }
        *p++ = '\'';
        for (const char *q = argv[i]; *q; q++) {
            if (*q == '\'') {
                memcpy(p, "'\\''", 4);
                p += 4;
            } else {
                *p++ = *q;
            }
        }
        *p++ = '\'';
    }
    *p = '\0';
    return out;
}

static int set_name(ctx *c, const json_t *v)
{
    const char *name;
    CS_TRY(get_str(c, v, c->marathon ? 4096 : CS_NAME_MAX, true, &name));
    if (!c->marathon) {
        if (has_control(name))
            return fail(c, "holds a control character");
        c->s->job.name = name;
        return CS_OK;
    }
    char buf[CS_NAME_MAX + 1];
    cs_error e;
    if (cs_jobspec_marathon_name(name, buf, sizeof buf, &e) != CS_OK)
        return fail(c, "%s", e.msg);
    c->s->job.name = cs_arena_strndup(&c->s->arena, buf, strlen(buf));
    return c->s->job.name ? CS_OK : oom(c);
}

static int set_args(ctx *c, const json_t *v)
{
    if (!json_is_array(v))
        return fail(c, "is %s, not an array of strings", type_name(v));
    size_t n = json_array_size(v);
    if (n == 0)
        return fail(c, "is empty");
    const char **argv = cs_arena_alloc(&c->s->arena, n * sizeof *argv);
    if (argv == NULL)
        return oom(c);
    for (size_t i = 0; i < n; i++) {
        size_t old = push_index(c, i);
        CS_TRY(get_str(c, json_array_get(v, i), CS_CMD_MAX, false, &argv[i]));
        pop(c, old);
    }
    char *cmd = shell_join(argv, n, &c->s->arena);
    if (cmd == NULL)
        return oom(c);
    if (strlen(cmd) > CS_CMD_MAX)
        return fail(c, "quoted for the shell, is longer than %d bytes", CS_CMD_MAX);
    c->s->job.cmd = cmd;
    return CS_OK;
}

/* ---- ports ---------------------------------------------------------------------- */

/* Append one port (the current path names it); a fixed port may not repeat. */
static int add_port(ctx *c, int64_t port)
{
    cs_job *j = &c->s->job;
    if (j->nports == CS_PORTS_PER_TASK_MAX)
        return fail(c, "more than %d ports per task", CS_PORTS_PER_TASK_MAX);
    for (uint32_t k = 0; port != 0 && k < j->nports; k++)
        if (j->ports[k] == port)
            return fail(c, "port %lld is asked for twice", (long long)port);
    j->ports[j->nports++] = (uint16_t)port;
    return CS_OK;
}

static int alloc_ports(ctx *c)
{
    c->s->job.ports = cs_arena_alloc(&c->s->arena, CS_PORTS_PER_TASK_MAX * sizeof(uint16_t));
    return c->s->job.ports ? CS_OK : oom(c);
}

static int check_array(ctx *c, const json_t *v, size_t max)
{
    if (!json_is_array(v))
        return fail(c, "is %s, not an array", type_name(v));
    if (json_array_size(v) > max)
        return fail(c, "has %zu entries, more than the limit of %zu", json_array_size(v), max);
    return CS_OK;
}

typedef int (*item_fn)(ctx *c, const json_t *item, size_t i, void *arg);

/* Check that v is an array of at most `max` and call fn on each item, with
 * the path at the item ("constraints[2]"). */
static int each_item(ctx *c, const json_t *v, size_t max, item_fn fn, void *arg)
{
    CS_TRY(check_array(c, v, max));
    for (size_t i = 0; i < json_array_size(v); i++) {
        size_t old = push_index(c, i);
        CS_TRY(fn(c, json_array_get(v, i), i, arg));
        pop(c, old);
    }
    return CS_OK;
}

typedef int (*member_fn)(ctx *c, const char *key, const json_t *x, void *arg);

/* Check that v is an object (`shape` says which, for the message) and call
 * fn on each member, with the path at the member ("resources.cpu"). */
static int each_member(ctx *c, const json_t *v, const char *shape, member_fn fn, void *arg)
{
    if (!json_is_object(v))
        return fail(c, "is %s, not %s", type_name(v), shape);
    const char *key;
    const json_t *x;
    json_object_foreach ((json_t *)v, key, x) {
        size_t old = push_key(c, key);
        CS_TRY(fn(c, key, x, arg));
        pop(c, old);
    }
    return CS_OK;
}

static int port_item(ctx *c, const json_t *item, size_t i, void *arg)
{
    int64_t port;
    CS_TRY(get_int(c, item, 0, 65535, &port));
    return add_port(c, port);
}

static int set_ports(ctx *c, const json_t *v)
{
    return each_item(c, v, CS_PORTS_PER_TASK_MAX, port_item, NULL);
}

/* ---- constraints ---------------------------------------------------------------- */

static const char *const constraint_ops[] = {"==",       "!=",       "LIKE",         "UNLIKE",
                                             "CLUSTER",  "IS",       "UNIQUE",       "MAX_PER",
                                             "GROUP_BY", "AFFINITY", "ANTI_AFFINITY"};
#define OPS_LIST                                                                                   \
    "==, !=, LIKE, UNLIKE, CLUSTER, IS, UNIQUE, MAX_PER, GROUP_BY, AFFINITY, ANTI_AFFINITY"

/* A constraint value: a string, or a number written as one. */
static int get_value(ctx *c, const json_t *v, const char **out)
{
    if (json_is_string(v))
        return get_str(c, v, CS_ATTR_LEN_MAX, false, out);
    if (!json_is_number(v))
        return fail(c, "is %s, not a string", type_name(v));
    char buf[64];
    if (json_is_integer(v))
        snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
    else
        snprintf(buf, sizeof buf, "%.15g", json_real_value(v));
    *out = cs_arena_strndup(&c->s->arena, buf, strlen(buf));
    return *out ? CS_OK : oom(c);
}

static int get_op(ctx *c, const json_t *v, const char **out)
{
    const char *raw;
    CS_TRY(get_str(c, v, CS_ATTR_LEN_MAX, true, &raw));
    char *op = (char *)raw; /* our own copy in the arena */
    for (char *p = op; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    if (strcmp(op, "=") == 0) { /* Nomad's spelling */
        *out = "==";
        return CS_OK;
    }
    for (size_t i = 0; i < NELEM(constraint_ops); i++)
        if (strcmp(op, constraint_ops[i]) == 0) {
            *out = constraint_ops[i];
            return CS_OK;
        }
    return fail(c, "'%.64s' is not an operator (one of " OPS_LIST ")", raw);
}

static bool positive_int(const char *s)
{
    if (!isdigit((unsigned char)*s))
        return false;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    return *end == '\0' && errno == 0 && x >= 1 && x <= UINT32_MAX;
}

/* What each operator needs of its field and value (the current path names
 * the constraint). */
static int check_constraint(ctx *c, const cs_constraint *k)
{
    const char *op = k->op, *val = k->value;
    bool job_op = strcmp(op, "AFFINITY") == 0 || strcmp(op, "ANTI_AFFINITY") == 0;
    if (job_op != (strcmp(k->field, "job") == 0))
        return job_op ? fail(c, "%s applies to field \"job\" (the value names the other job)", op)
                      : fail(c, "field \"job\" takes AFFINITY or ANTI_AFFINITY, not %s", op);
    if (strcmp(op, "UNIQUE") == 0)
        return val[0] ? fail(c, "UNIQUE takes no value") : CS_OK;
    if (strcmp(op, "CLUSTER") == 0)
        return CS_OK;
    if (strcmp(op, "GROUP_BY") == 0)
        return val[0] == '\0' || positive_int(val)
                   ? CS_OK
                   : fail(c, "GROUP_BY takes a number of groups >= 1, not '%s'", val);
    if (strcmp(op, "MAX_PER") == 0)
        return positive_int(val) ? CS_OK
                                 : fail(c, "MAX_PER takes a number of tasks >= 1, not '%s'", val);
    if (val[0] == '\0')
        return fail(c, "%s needs a value", op);
    if (strcmp(op, "LIKE") == 0 || strcmp(op, "UNLIKE") == 0) {
        /* The schedulers match with POSIX extended regular expressions: a
         * pattern they cannot compile is refused now rather than never
         * matching later. */
        regex_t re;
        int rc = regcomp(&re, val, REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char why[128];
            regerror(rc, &re, why, sizeof why);
            return fail(c, "'%s' is not a regular expression: %s", val, why);
        }
        regfree(&re);
    }
    return CS_OK;
}

static int read_constraint(ctx *c, const json_t *v, cs_constraint *k)
{
    k->value = "";
    k->soft = false;
    const json_t *jf = NULL, *jop = NULL, *jval = NULL, *jsoft = NULL;
    if (json_is_array(v)) {
        size_t n = json_array_size(v);
        if (n < 2 || n > 3)
            return fail(c, "is an array of %zu, not [field, operator] or [field, operator, value]",
                        n);
        jf = json_array_get(v, 0);
        jop = json_array_get(v, 1);
        jval = n == 3 ? json_array_get(v, 2) : NULL;
    } else if (json_is_object(v)) {
        const char *key;
        const json_t *x;
        json_object_foreach ((json_t *)v, key, x) {
            if (strcmp(key, "field") == 0)
                jf = x;
            else if (strcmp(key, "op") == 0 || strcmp(key, "operator") == 0)
                jop = x;
            else if (strcmp(key, "value") == 0)
                jval = x;
            else if (strcmp(key, "soft") == 0)
                jsoft = x;
            else {
                return fail_at(c, key, "unknown field (a constraint has field, op, value, soft)");
            }
        }
        if (jf == NULL || jop == NULL)
            return fail(c, "needs a field and an op");
    } else {
        return fail(c, "is %s, not [field, operator, value] or {field, op, value, soft}",
                    type_name(v));
    }
    bool arr = json_is_array(v);
    size_t old = arr ? push_index(c, 0) : push_key(c, "field");
    CS_TRY(get_str(c, jf, CS_ATTR_LEN_MAX, true, &k->field));
    /* Marathon 1.6 spells machine fields with an @ ("@hostname", "@zone"). */
    if (k->field[0] == '@' && k->field[1] != '\0')
        k->field++;
    pop(c, old);
    old = arr ? push_index(c, 1) : push_key(c, "op");
    CS_TRY(get_op(c, jop, &k->op));
    pop(c, old);
    if (jval) {
        old = arr ? push_index(c, 2) : push_key(c, "value");
        CS_TRY(get_value(c, jval, &k->value));
        pop(c, old);
    }
    if (jsoft) {
        old = push_key(c, "soft");
        CS_TRY(get_bool(c, jsoft, &k->soft));
        pop(c, old);
    }
    return check_constraint(c, k);
}

static int constraint_item(ctx *c, const json_t *item, size_t i, void *arg)
{
    cs_job *j = &c->s->job;
    CS_TRY(read_constraint(c, item, &j->constraints[i]));
    j->nconstraints++;
    return CS_OK;
}

static int set_constraints(ctx *c, const json_t *v)
{
    cs_job *j = &c->s->job;
    j->constraints = cs_arena_alloc(&c->s->arena, CS_CONSTRAINT_MAX * sizeof *j->constraints);
    if (j->constraints == NULL)
        return oom(c);
    return each_item(c, v, CS_CONSTRAINT_MAX, constraint_item, NULL);
}

/* ---- health checks ---------------------------------------------------------------- */

/* The key names of a health check in each format. */
typedef struct health_keys {
    const char *list, *command, *path, *port_index, *grace, *interval, *timeout, *max_failures;
} health_keys;

static const health_keys native_hk = {"health_checks", "command",  "path",    "port_index",
                                      "grace_period",  "interval", "timeout", "max_failures"};
static const health_keys marathon_hk = {
    "healthChecks",       "command",         "path",           "portIndex",
    "gracePeriodSeconds", "intervalSeconds", "timeoutSeconds", "maxConsecutiveFailures"};

static int get_protocol(ctx *c, const json_t *v, uint8_t *out)
{
    const char *name;
    CS_TRY(get_str(c, v, 32, true, &name));
    char up[33];
    size_t i = 0;
    for (; name[i]; i++)
        up[i] = (char)toupper((unsigned char)name[i]);
    up[i] = '\0';
    if (cs_health_proto_parse(up, out) == CS_OK)
        return CS_OK;
    if (strcmp(up, "MESOS_HTTP") == 0 || strcmp(up, "MESOS_TCP") == 0) {
        /* The same check, run by the agent beside the task: here every check
         * is, so only the name differs. */
        *out = up[6] == 'H' ? CS_HEALTH_HTTP : CS_HEALTH_TCP;
        return warn(c, "%s is run as %s by the agent", up, up + 6);
    }
    if (strcmp(up, "HTTPS") == 0 || strcmp(up, "MESOS_HTTPS") == 0)
        return fail(c,
                    "%s is not supported: the agents' checker speaks plain HTTP (use HTTP, TCP "
                    "or COMMAND)",
                    up);
    return fail(c, "'%.32s' is not COMMAND, TCP or HTTP", name);
}

/* Marathon keys of a health check that do not apply here. */
static int marathon_health_extra(ctx *c, const char *key, const json_t *x)
{
    if (strcmp(key, "ignoreHttp1xx") == 0)
        return json_is_true(x) ? warn(c, "ignored: a 1xx answer counts as a failure") : CS_OK;
    if (strcmp(key, "ipProtocol") == 0)
        return json_is_string(x) && strcmp(json_string_value(x), "IPv4") != 0
                   ? warn(c, "ignored: checks connect over IPv4")
                   : CS_OK;
    if (strcmp(key, "delaySeconds") == 0)
        return asks_nothing(x) ? CS_OK : warn(c, "ignored: checks start after the grace period");
    return asks_nothing(x) ? CS_OK : warn(c, "is not a health check field known here: ignored");
}

static int read_health(ctx *c, const json_t *v, cs_health *h, int64_t *fixed_port)
{
    const health_keys *hk = c->marathon ? &marathon_hk : &native_hk;
    if (!json_is_object(v))
        return fail(c, "is %s, not an object", type_name(v));
    uint8_t proto = CS_HEALTH_HTTP; /* Marathon's default */
    const json_t *jp = json_object_get(v, "protocol");
    if (jp) {
        size_t old = push_key(c, "protocol");
        CS_TRY(get_protocol(c, jp, &proto));
        pop(c, old);
    }
    cs_health_init(h, proto);
    *fixed_port = -1;
    const char *key;
    const json_t *x;
    json_object_foreach ((json_t *)v, key, x) {
        if (strcmp(key, "protocol") == 0)
            continue;
        size_t old = push_key(c, key);
        if (strcmp(key, hk->command) == 0) {
            if (proto != CS_HEALTH_COMMAND)
                return fail(c, "only a COMMAND check has a command");
            /* Marathon: {"value": "..."}; native: the string. */
            const json_t *cmd = c->marathon && json_is_object(x) ? json_object_get(x, "value") : x;
            if (cmd == NULL)
                return fail(c, "has no value");
            CS_TRY(get_str(c, cmd, CS_OPT_STR_MAX, true, &h->command));
        } else if (strcmp(key, hk->path) == 0) {
            if (proto != CS_HEALTH_HTTP) {
                if (!c->marathon)
                    return fail(c, "only an HTTP check has a path");
                CS_TRY(warn(c, "ignored: only an HTTP check has a path"));
            } else {
                CS_TRY(get_str(c, x, CS_OPT_STR_MAX, true, &h->path));
                if (h->path[0] != '/')
                    return fail(c, "'%.64s' does not start with /", h->path);
            }
        } else if (strcmp(key, hk->port_index) == 0) {
            CS_TRY(get_u32(c, x, CS_PORTS_PER_TASK_MAX - 1, &h->port_index));
        } else if (c->marathon && strcmp(key, "port") == 0) {
            CS_TRY(get_int(c, x, 1, 65535, fixed_port));
        } else if (strcmp(key, hk->grace) == 0 || strcmp(key, hk->interval) == 0 ||
                   strcmp(key, hk->timeout) == 0) {
            uint32_t *dst = strcmp(key, hk->grace) == 0      ? &h->grace_ms
                            : strcmp(key, hk->interval) == 0 ? &h->interval_ms
                                                             : &h->timeout_ms;
            if (c->marathon) {
                double sec;
                CS_TRY(get_number(c, x, &sec));
                CS_TRY(seconds_to_ms(c, sec, dst));
            } else {
                CS_TRY(get_duration(c, x, dst));
            }
            if (*dst == 0 && dst != &h->grace_ms)
                return fail(c, "must be more than 0");
        } else if (strcmp(key, hk->max_failures) == 0) {
            CS_TRY(get_u32(c, x, UINT32_MAX, &h->max_failures));
        } else if (c->marathon) {
            CS_TRY(marathon_health_extra(c, key, x));
        } else {
            return fail(c, "unknown field (a health check has protocol, command, path, port_index, "
                           "grace_period, interval, timeout, max_failures)");
        }
        pop(c, old);
    }
    if (proto == CS_HEALTH_COMMAND && h->command[0] == '\0')
        return fail(c, "a COMMAND check needs a command");
    return CS_OK;
}

/* The fixed port each health check named ("port" in Marathon), or -1. */
typedef struct health_ports {
    int64_t port[CS_HEALTH_MAX];
} health_ports;

static int health_item(ctx *c, const json_t *item, size_t i, void *arg)
{
    health_ports *hp = arg;
    cs_jobopts *o = &c->s->opts;
    CS_TRY(read_health(c, item, &o->health[i], &hp->port[i]));
    o->nhealth++;
    return CS_OK;
}

static int set_health(ctx *c, const json_t *v, health_ports *hp)
{
    cs_jobopts *o = &c->s->opts;
    o->health = cs_arena_alloc(&c->s->arena, CS_HEALTH_MAX * sizeof *o->health);
    if (o->health == NULL)
        return oom(c);
    return each_item(c, v, CS_HEALTH_MAX, health_item, hp);
}

/* After the ports are known: each TCP or HTTP check must name one of them. */
static int check_health_ports(ctx *c, const health_ports *hp)
{
    const health_keys *hk = c->marathon ? &marathon_hk : &native_hk;
    const cs_job *j = &c->s->job;
    for (uint32_t i = 0; i < c->s->opts.nhealth; i++) {
        cs_health *h = &c->s->opts.health[i];
        if (h->proto == CS_HEALTH_COMMAND)
            continue;
        if (hp->port[i] >= 0) {
            set_path(c, hk->list, i, "port");
            uint32_t k = 0;
            while (k < j->nports && j->ports[k] != hp->port[i])
                k++;
            if (k == j->nports)
                return fail(c, "%lld is not one of the app's fixed ports", (long long)hp->port[i]);
            h->port_index = k;
            continue;
        }
        if (h->port_index >= j->nports) {
            set_path(c, hk->list, i, hk->port_index);
            return fail(c, "%u is out of range: the %s has %u port%s", h->port_index,
                        c->marathon ? "app" : "job", j->nports, j->nports == 1 ? "" : "s");
        }
    }
    pop(c, 0);
    return CS_OK;
}

/* ---- env, volumes, update strategy ------------------------------------------------- */

static bool env_name_ok(const char *s)
{
    if (!(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return false;
    for (s++; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_'))
            return false;
    return true;
}

static int env_member(ctx *c, const char *key, const json_t *x, void *arg)
{
    if (c->marathon && json_is_object(x) && json_object_get(x, "secret"))
        return warn(c, "a secret reference: ignored (there is no secret store)");
    if (!env_name_ok(key))
        return fail(c, "'%.64s' is not a valid variable name", key);
    if (strlen(key) > CS_OPT_STR_MAX)
        return fail(c, "the name is longer than %u bytes", CS_OPT_STR_MAX);
    cs_jobopts *o = &c->s->opts;
    cs_attr *e = &o->env[o->nenv];
    CS_TRY(get_str(c, x, CS_OPT_STR_MAX, false, &e->value));
    e->key = cs_arena_strndup(&c->s->arena, key, strlen(key));
    if (e->key == NULL)
        return oom(c);
    o->nenv++;
    return CS_OK;
}

static int set_env(ctx *c, const json_t *v)
{
    if (!json_is_object(v))
        return fail(c, "is %s, not an object of strings", type_name(v));
    if (json_object_size(v) > CS_ENV_MAX)
        return fail(c, "has %zu variables, more than the limit of %u", json_object_size(v),
                    CS_ENV_MAX);
    cs_jobopts *o = &c->s->opts;
    o->env = cs_arena_alloc(&c->s->arena, (json_object_size(v) + 1) * sizeof *o->env);
    if (o->env == NULL)
        return oom(c);
    return each_member(c, v, "an object of strings", env_member, NULL);
}

/* Append a host volume (the current path names it). */
static int add_volume(ctx *c, const char *path, bool rw)
{
    cs_jobopts *o = &c->s->opts;
    if (path[0] != '/')
        return fail(c, "'%.64s' is not an absolute path", path);
    if (o->nvolumes == CS_VOLUME_MAX)
        return fail(c, "more than %u volumes", CS_VOLUME_MAX);
    for (uint32_t k = 0; k < o->nvolumes; k++)
        if (strcmp(o->volumes[k].path, path) == 0)
            return fail(c, "'%.64s' is given twice", path);
    o->volumes[o->nvolumes].path = path;
    o->volumes[o->nvolumes].rw = rw;
    o->nvolumes++;
    return CS_OK;
}

static int get_mode(ctx *c, const json_t *v, bool *rw)
{
    const char *m;
    CS_TRY(get_str(c, v, 8, true, &m));
    if (strcasecmp(m, "rw") != 0 && strcasecmp(m, "ro") != 0)
        return fail(c, "'%s' is not ro or rw", m);
    *rw = tolower((unsigned char)m[1]) == 'w';
    return CS_OK;
}

/* Native: "/path", "/path:ro", or {"path": "/path", "mode": "ro"}; rw by
 * default, as in Kubernetes (readOnly: false). */
static int native_volume_item(ctx *c, const json_t *v, size_t i, void *arg)
{
    const char *path;
    bool rw = true;
    if (json_is_string(v)) {
        CS_TRY(get_str(c, v, CS_OPT_STR_MAX, true, &path));
        char *colon = strrchr(path, ':');
        if (colon && (strcasecmp(colon, ":ro") == 0 || strcasecmp(colon, ":rw") == 0)) {
            rw = tolower((unsigned char)colon[2]) == 'w';
            *colon = '\0';
        }
        return add_volume(c, path, rw);
    }
    if (!json_is_object(v))
        return fail(c, "is %s, not \"/path[:ro|:rw]\" or {path, mode}", type_name(v));
    const json_t *jp = json_object_get(v, "path");
    if (jp == NULL)
        return fail(c, "has no path");
    const char *key;
    const json_t *x;
    json_object_foreach ((json_t *)v, key, x) {
        size_t old = push_key(c, key);
        if (strcmp(key, "path") == 0)
            CS_TRY(get_str(c, x, CS_OPT_STR_MAX, true, &path));
        else if (strcmp(key, "mode") == 0)
            CS_TRY(get_mode(c, x, &rw));
        else
            return fail(c, "unknown field (a volume has path and mode)");
        pop(c, old);
    }
    return add_volume(c, path, rw);
}

static int alloc_volumes(ctx *c)
{
    c->s->opts.volumes = cs_arena_alloc(&c->s->arena, CS_VOLUME_MAX * sizeof(cs_volume));
    return c->s->opts.volumes ? CS_OK : oom(c);
}

static int set_native_volumes(ctx *c, const json_t *v)
{
    CS_TRY(alloc_volumes(c));
    return each_item(c, v, CS_VOLUME_MAX, native_volume_item, NULL);
}

/* Kubernetes' toleration: {"key", "operator": "Equal"|"Exists", "value",
 * "effect": "NoSchedule"|"PreferNoSchedule"|"NoExecute" (absent or "" =
 * any), "tolerationSeconds"}; the rules (an empty key needs Exists, Exists
 * takes no value, seconds need NoExecute) are checked here, where the path
 * names the entry. */
static int toleration_item(ctx *c, const json_t *v, size_t i, void *arg)
{
    if (!json_is_object(v))
        return fail(c, "is %s, not an object {key, operator, value, effect}", type_name(v));
    cs_toleration *t = &c->s->opts.tolerations[c->s->opts.ntolerations];
    memset(t, 0, sizeof *t);
    t->key = t->value = "";
    t->effect = CS_TOL_ANY_EFFECT;
    const char *op = NULL;
    const char *key;
    const json_t *x;
    json_object_foreach ((json_t *)v, key, x) {
        size_t old = push_key(c, key);
        const char *str;
        if (strcmp(key, "key") == 0) {
            CS_TRY(get_str(c, x, CS_ATTR_LEN_MAX, false, &t->key));
        } else if (strcmp(key, "value") == 0) {
            CS_TRY(get_str(c, x, CS_ATTR_LEN_MAX, false, &t->value));
        } else if (strcmp(key, "operator") == 0) {
            CS_TRY(get_str(c, x, 16, true, &op));
            if (strcmp(op, "Equal") != 0 && strcmp(op, "Exists") != 0)
                return fail(c, "'%s' is not Equal or Exists", op);
            t->op = op[1] == 'q' ? CS_TOL_EQUAL : CS_TOL_EXISTS;
        } else if (strcmp(key, "effect") == 0) {
            CS_TRY(get_str(c, x, 32, false, &str));
            if (str[0] != '\0' && cs_taint_effect_parse(str, &t->effect) != CS_OK)
                return fail(c, "'%s' is not NoSchedule, PreferNoSchedule or NoExecute", str);
        } else if (strcmp(key, "tolerationSeconds") == 0) {
            CS_TRY(get_u32(c, x, UINT32_MAX, &t->seconds));
            t->has_seconds = true;
        } else {
            return fail(c, "unknown field (a toleration has key, operator, value, effect, "
                           "tolerationSeconds)");
        }
        pop(c, old);
    }
    if (t->key[0] == '\0' && t->op != CS_TOL_EXISTS)
        return fail(c, "an empty key tolerates every taint only with operator Exists");
    if (t->op == CS_TOL_EXISTS && t->value[0] != '\0')
        return fail(c, "operator Exists takes no value");
    if (t->has_seconds && t->effect != CS_TAINT_NO_EXECUTE)
        return fail(c, "tolerationSeconds applies to effect NoExecute only");
    c->s->opts.ntolerations++;
    return CS_OK;
}

static int set_tolerations(ctx *c, const json_t *v)
{
    c->s->opts.tolerations =
        cs_arena_alloc(&c->s->arena, CS_TOLERATION_MAX * sizeof(cs_toleration));
    if (c->s->opts.tolerations == NULL)
        return oom(c);
    return each_item(c, v, CS_TOLERATION_MAX, toleration_item, NULL);
}

/* arg: the format's two key names, {minimum health, maximum over}. */
static int update_member(ctx *c, const char *key, const json_t *x, void *arg)
{
    const char *const *keys = arg;
    if (strcmp(key, keys[0]) == 0)
        return get_fraction(c, x, &c->s->opts.min_health_pm);
    if (strcmp(key, keys[1]) == 0)
        return get_fraction(c, x, &c->s->opts.max_over_pm);
    if (c->marathon)
        return warn(c, "is not an upgrade strategy field known here: ignored");
    return fail(c, "unknown field (an update strategy has %s and %s)", keys[0], keys[1]);
}

static int set_update(ctx *c, const json_t *v, const char *min_key, const char *max_key)
{
    const char *keys[2] = {min_key, max_key};
    return each_member(c, v, "an object", update_member, keys);
}

static int resource_member(ctx *c, const char *key, const json_t *x, void *arg)
{
    cs_res *r = &c->s->job.res;
    if (strcmp(key, "cpu") == 0)
        return get_cpu(c, x, &r->cpu);
    if (strcmp(key, "mem") == 0)
        return get_mib(c, x, &r->mem);
    if (strcmp(key, "disk") == 0)
        return get_mib(c, x, &r->disk);
    return fail(c, "unknown resource (cpu in cores, mem and disk in MiB)");
}

static int set_resources(ctx *c, const json_t *v)
{
    return each_member(c, v, "an object {cpu, mem, disk}", resource_member, NULL);
}

/* ---- the native format ------------------------------------------------------------ */

enum {
    N_NAME,
    N_KIND,
    N_PRIORITY,
    N_COUNT,
    N_CMD,
    N_ARGS,
    N_RESOURCES,
    N_PORTS,
    N_CONSTRAINTS,
    N_HEALTH,
    N_UPDATE,
    N_ENV,
    N_VOLUMES,
    N_GANG,
    N_GLOBAL,
    N_MAX_RETRIES,
    N_KILL_GRACE,
    N_DURATION,
    N_BACKOFF,
    N_BACKOFF_FACTOR,
    N_MAX_DELAY,
    N_TOLERATIONS,
    N_CPU_LIMIT,
    N_FIELDS
};
static const char *const native_fields[N_FIELDS] = {
    "name",   "kind",        "priority",      "count",           "cmd", "args",    "resources",
    "ports",  "constraints", "health_checks", "update_strategy", "env", "volumes", "gang",
    "global", "max_retries", "kill_grace",    "duration", "backoff", "backoff_factor",
    "max_launch_delay", "tolerations", "cpu_limit"};
/* What `cellctl get jobs -o json` adds to a spec: accepted back, ignored. */
static const char *const native_readonly[] = {"id",   "state", "version", "spec_hash", "submitted",
                                              "note", "surge", "ended",   "tasks"};

/* Look up every top-level key in `fields`; a key not found is handled by
 * `other` (an error or a warning). */
static int collect(ctx *c, const json_t *root, const char *const *fields, size_t nfields,
                   const json_t **found, int (*other)(ctx *, const char *, const json_t *))
{
    const char *key;
    const json_t *x;
    json_object_foreach ((json_t *)root, key, x) {
        size_t f = 0;
        while (f < nfields && strcmp(key, fields[f]) != 0)
            f++;
        if (f < nfields) {
            /* Marathon's API writes null for what is not set ("cmd": null
             * beside args). */
            if (!(c->marathon && json_is_null(x)))
                found[f] = x;
            continue;
        }
        size_t old = push_key(c, key);
        CS_TRY(other(c, key, x));
        pop(c, old);
    }
    return CS_OK;
}

static int native_other(ctx *c, const char *key, const json_t *x)
{
    for (size_t i = 0; i < NELEM(native_readonly); i++)
        if (strcmp(key, native_readonly[i]) == 0)
            return warn(c, "a read-only field of a job: ignored");
    return fail(c, "unknown field");
}

/* Call fn on field f when present, with the path set to its name. */
#define FIELD(names, f, call)                                                                      \
    do {                                                                                           \
        if (found[f] != NULL) {                                                                    \
            size_t old_ = push_key(c, names[f]);                                                   \
            const json_t *v = found[f];                                                            \
            CS_TRY(call);                                                                             \
            pop(c, old_);                                                                          \
        }                                                                                          \
    } while (0)

static int native(ctx *c, const json_t *root, health_ports *hp)
{
    const json_t *found[N_FIELDS] = {0};
    CS_TRY(collect(c, root, native_fields, N_FIELDS, found, native_other));
    cs_job *j = &c->s->job;
    cs_jobopts *o = &c->s->opts;
    int64_t x;
    const char *kind = "batch";
    FIELD(native_fields, N_NAME, set_name(c, v));
    FIELD(native_fields, N_KIND, get_str(c, v, 16, true, &kind));
    if (cs_job_kind_parse(kind, &j->kind) != CS_OK) {
        return fail_at(c, "kind", "'%s' is not batch or service", kind);
    }
    FIELD(native_fields, N_PRIORITY, get_int(c, v, INT32_MIN, INT32_MAX, &x));
    if (found[N_PRIORITY])
        j->priority = (int32_t)x;
    FIELD(native_fields, N_COUNT, get_u32(c, v, CS_TASK_INDEX_MAX + 1u, &j->count));
    if (found[N_CMD] && found[N_ARGS]) {
        return fail_at(c, "args", "cmd is given too: give one of them");
    }
    FIELD(native_fields, N_CMD, get_str(c, v, CS_CMD_MAX, true, &j->cmd));
    FIELD(native_fields, N_ARGS, set_args(c, v));
    if (found[N_CMD] == NULL && found[N_ARGS] == NULL) {
        return fail_at(c, "cmd",
                       "missing: give cmd (a shell command) or args (an argument vector)");
    }
    FIELD(native_fields, N_RESOURCES, set_resources(c, v));
    FIELD(native_fields, N_PORTS, set_ports(c, v));
    FIELD(native_fields, N_CONSTRAINTS, set_constraints(c, v));
    FIELD(native_fields, N_HEALTH, set_health(c, v, hp));
    FIELD(native_fields, N_UPDATE,
          set_update(c, v, "minimum_health_capacity", "maximum_over_capacity"));
    FIELD(native_fields, N_ENV, set_env(c, v));
    FIELD(native_fields, N_VOLUMES, set_native_volumes(c, v));
    FIELD(native_fields, N_GANG, get_bool(c, v, &o->gang));
    FIELD(native_fields, N_GLOBAL, get_bool(c, v, &o->global));
    FIELD(native_fields, N_MAX_RETRIES, get_u32(c, v, UINT32_MAX, &o->max_retries));
    FIELD(native_fields, N_KILL_GRACE, get_duration(c, v, &o->kill_grace_ms));
    FIELD(native_fields, N_DURATION, get_duration(c, v, &o->duration_ms));
    FIELD(native_fields, N_BACKOFF, get_duration(c, v, &o->backoff_ms));
    FIELD(native_fields, N_BACKOFF_FACTOR, get_factor(c, v, &o->backoff_factor_pm));
    FIELD(native_fields, N_MAX_DELAY, get_duration(c, v, &o->max_delay_ms));
    FIELD(native_fields, N_TOLERATIONS, set_tolerations(c, v));
    FIELD(native_fields, N_CPU_LIMIT, get_cpu_limit(c, v, &o->cpu_hard));
    return CS_OK;
}

/* ---- Marathon app definitions ------------------------------------------------------ */

enum {
    M_ID,
    M_CMD,
    M_ARGS,
    M_CPUS,
    M_MEM,
    M_DISK,
    M_INSTANCES,
    M_PORTS,
    M_PORT_DEFS,
    M_REQUIRE_PORTS,
    M_CONTAINER,
    M_CONSTRAINTS,
    M_HEALTH,
    M_UPGRADE,
    M_ENV,
    M_KILL_GRACE,
    M_BACKOFF,
    M_BACKOFF_FACTOR,
    M_MAX_DELAY,
    M_APPS,
    M_FIELDS
};
static const char *const marathon_fields[M_FIELDS] = {"id",
                                                      "cmd",
                                                      "args",
                                                      "cpus",
                                                      "mem",
                                                      "disk",
                                                      "instances",
                                                      "ports",
                                                      "portDefinitions",
                                                      "requirePorts",
                                                      "container",
                                                      "constraints",
                                                      "healthChecks",
                                                      "upgradeStrategy",
                                                      "env",
                                                      "taskKillGracePeriodSeconds",
                                                      "backoffSeconds",
                                                      "backoffFactor",
                                                      "maxLaunchDelaySeconds",
                                                      "apps"};

/* Marathon fields that cannot apply to processes placed by cellsched, and
 * why; each present (and not empty) gets a warning that names it. */
static const struct {
    const char *key, *why;
} marathon_ignored[] = {
    {"acceptedResourceRoles", "there are no Mesos resource roles"},
    {"role", "there are no Mesos resource roles"},
    {"dependencies", "apps are not deployed in dependency order"},
    {"executor", "tasks are run by cell-agent"},
    {"fetch", "nothing is downloaded before a task starts"},
    {"uris", "nothing is downloaded before a task starts"},
    {"storeUrls", "nothing is downloaded before a task starts"},
    {"labels", "labels are not used"},
    {"user", "tasks run as the agent's user"},
    {"readinessChecks", "there are no readiness checks (health checks are supported)"},
    {"ipAddress", "tasks use the host's network"},
    {"networks", "tasks use the host's network"},
    {"residency", "there are no persistent volumes"},
    {"secrets", "there is no secret store"},
    {"unreachableStrategy", "lost tasks are placed again by the scheduler"},
    {"killSelection", "scaling down kills the highest task indexes"},
    {"gpus", "machines offer no GPUs"},
    {"check", "Mesos checks are not supported (health checks are)"},
    {"tty", "tasks have no terminal"},
    {"resourceLimits", "only requests are used, not limits"},
    {"executorResources", "tasks are run by cell-agent"},
    {"version", "a status field of Marathon's API"},
    {"versionInfo", "a status field of Marathon's API"},
    {"tasksStaged", "a status field of Marathon's API"},
    {"tasksRunning", "a status field of Marathon's API"},
    {"tasksHealthy", "a status field of Marathon's API"},
    {"tasksUnhealthy", "a status field of Marathon's API"},
    {"deployments", "a status field of Marathon's API"},
    {"tasks", "a status field of Marathon's API"},
    {"lastTaskFailure", "a status field of Marathon's API"},
};

static int marathon_other(ctx *c, const char *key, const json_t *x)
{
    if (asks_nothing(x))
        return CS_OK;
    for (size_t i = 0; i < NELEM(marathon_ignored); i++)
        if (strcmp(key, marathon_ignored[i].key) == 0)
            return warn(c, "ignored: %s", marathon_ignored[i].why);
    return warn(c, "is not a Marathon field known here: ignored");
}

/* Marathon's portDefinitions ([{port, protocol, name, labels}]) or ports
 * ([int]). With requirePorts false (Marathon's default) a non-zero port is
 * a service port for load balancers, and the task gets a dynamic host port:
 * so it is here. */
typedef struct port_list {
    bool defs, require;
    uint16_t port[CS_PORTS_PER_TASK_MAX];
    uint32_t n;
} port_list;

static int port_list_item(ctx *c, const json_t *e, size_t i, void *arg)
{
    port_list *pl = arg;
    const json_t *jp = e;
    if (pl->defs) {
        if (!json_is_object(e))
            return fail(c, "is %s, not an object", type_name(e));
        jp = json_object_get(e, "port");
        const char *key;
        const json_t *x;
        json_object_foreach ((json_t *)e, key, x) {
            size_t o2 = push_key(c, key);
            if (strcmp(key, "name") == 0 && !asks_nothing(x))
                CS_TRY(warn(c, "ignored: named port variables are not set; use $PORT%zu", i));
            else if (strcmp(key, "labels") == 0 && !asks_nothing(x))
                CS_TRY(warn(c, "ignored: labels are not used"));
            else if (strcmp(key, "port") != 0 && strcmp(key, "protocol") != 0 &&
                     strcmp(key, "name") != 0 && strcmp(key, "labels") != 0 && !asks_nothing(x))
                CS_TRY(warn(c, "is not a port definition field known here: ignored"));
            pop(c, o2);
        }
        push_key(c, "port");
    }
    int64_t port = 0;
    if (jp != NULL)
        CS_TRY(get_int(c, jp, 0, 65535, &port));
    if (port != 0 && !pl->require) {
        CS_TRY(warn(c,
                 "%lld is a service port (requirePorts is false): the task gets a dynamic "
                 "host port in $PORT%zu",
                 (long long)port, i));
        port = 0;
    }
    pl->port[pl->n++] = (uint16_t)port;
    return CS_OK;
}

/* container.portMappings or container.docker.portMappings: hostPort is the
 * task's port (0 or absent = dynamic); the rest is container networking. */
static int port_mapping_item(ctx *c, const json_t *e, size_t i, void *arg)
{
    if (!json_is_object(e))
        return fail(c, "is %s, not an object", type_name(e));
    int64_t port = 0;
    const char *key;
    const json_t *x;
    json_object_foreach ((json_t *)e, key, x) {
        size_t old = push_key(c, key);
        if (strcmp(key, "hostPort") == 0)
            CS_TRY(get_int(c, x, 0, 65535, &port));
        else if (strcmp(key, "containerPort") == 0 && !asks_nothing(x))
            CS_TRY(warn(c, "ignored: tasks are processes and listen on their host port ($PORT%zu)",
                     i));
        else if (strcmp(key, "servicePort") == 0 && !asks_nothing(x))
            CS_TRY(warn(c, "ignored: there are no service ports"));
        else if (strcmp(key, "name") == 0 && !asks_nothing(x))
            CS_TRY(warn(c, "ignored: named port variables are not set; use $PORT%zu", i));
        else if (strcmp(key, "protocol") != 0 && !asks_nothing(x))
            CS_TRY(warn(c, "ignored: not used for process tasks"));
        pop(c, old);
    }
    return add_port(c, port);
}

/* container.volumes: host volumes ({hostPath, mode}) become volumes;
 * persistent and external volumes are not supported. */
static int marathon_volume_item(ctx *c, const json_t *e, size_t i, void *arg)
{
    if (!json_is_object(e))
        return fail(c, "is %s, not an object", type_name(e));
    const json_t *host = json_object_get(e, "hostPath"), *cp = json_object_get(e, "containerPath");
    const json_t *mode = json_object_get(e, "mode");
    if (host == NULL)
        return warn(c, "ignored: only host volumes (hostPath) are supported, not persistent or "
                       "external ones");
    const char *path;
    bool rw = true;
    size_t o2 = push_key(c, "hostPath");
    CS_TRY(get_str(c, host, CS_OPT_STR_MAX, true, &path));
    pop(c, o2);
    if (mode) {
        o2 = push_key(c, "mode");
        CS_TRY(get_mode(c, mode, &rw));
        pop(c, o2);
    }
    if (cp && json_is_string(cp) && strcmp(json_string_value(cp), path) != 0) {
        o2 = push_key(c, "containerPath");
        CS_TRY(warn(c, "ignored: tasks are processes and use hostPath '%.64s' itself", path));
        pop(c, o2);
    }
    return add_volume(c, path, rw);
}

/* container.docker: everything but portMappings is about the image. */
static int docker_member(ctx *c, const char *key, const json_t *x, void *arg)
{
    const json_t **mappings = arg;
    if (strcmp(key, "portMappings") == 0)
        *mappings = x;
    else if (strcmp(key, "image") == 0 && json_is_string(x))
        return warn(c, "'%.64s' ignored: tasks run as processes on the host, not in containers",
                    json_string_value(x));
    else if (strcmp(key, "network") == 0 && json_is_string(x) &&
             strcmp(json_string_value(x), "HOST") != 0)
        return warn(c, "%.16s ignored: tasks use the host's network", json_string_value(x));
    else if (strcmp(key, "network") != 0 && !asks_nothing(x))
        return warn(c, "ignored: tasks run as processes on the host, not in containers");
    return CS_OK;
}

/* The container object; portMappings found in it are returned in
 * *mappings (with their path in `mpath`) for the port decision. */
static int marathon_container(ctx *c, const json_t *v, const json_t **mappings, char *mpath,
                              size_t mpath_size, bool *image)
{
    if (!json_is_object(v))
        return fail(c, "is %s, not an object", type_name(v));
    const char *key;
    const json_t *x;
    json_object_foreach ((json_t *)v, key, x) {
        size_t old = push_key(c, key);
        if (strcmp(key, "portMappings") == 0) {
            *mappings = x;
            snprintf(mpath, mpath_size, "%.300s", c->path);
        } else if (strcmp(key, "volumes") == 0) {
            CS_TRY(alloc_volumes(c));
            CS_TRY(each_item(c, x, CS_VOLUME_MAX, marathon_volume_item, NULL));
        } else if (strcmp(key, "docker") == 0) {
            const json_t *dm = NULL;
            CS_TRY(each_member(c, x, "an object", docker_member, (void *)&dm));
            *image = json_is_object(x) && json_object_get(x, "image") != NULL;
            if (dm && *mappings == NULL) {
                *mappings = dm;
                snprintf(mpath, mpath_size, "%.300s.portMappings", c->path);
            }
        } else if (strcmp(key, "type") == 0) {
            if (json_is_string(x) && strcmp(json_string_value(x), "MESOS") != 0)
                CS_TRY(warn(c, "%.16s ignored: tasks run as processes on the host",
                         json_string_value(x)));
        } else if (!asks_nothing(x)) {
            CS_TRY(warn(c, "ignored: tasks run as processes on the host, not in containers"));
        }
        pop(c, old);
    }
    return CS_OK;
}

/* Which of Marathon's three ways of asking for ports applies: container
 * portMappings (as Marathon does for BRIDGE and USER networking), else
 * portDefinitions or ports (they must agree when both are given), else
 * Marathon's default of one dynamic port, so that $PORT0 always exists. */
static int marathon_ports(ctx *c, const json_t *const *found, const json_t *mappings,
                          const char *mpath)
{
    CS_TRY(alloc_ports(c));
    bool require = false;
    FIELD(marathon_fields, M_REQUIRE_PORTS, get_bool(c, v, &require));
    const json_t *defs = found[M_PORT_DEFS], *plain = found[M_PORTS];
    if (mappings != NULL && json_array_size(mappings) > 0) {
        for (int f = M_PORTS; f <= M_PORT_DEFS; f++)
            if (found[f] && !asks_nothing(found[f])) {
                size_t old = push_key(c, marathon_fields[f]);
                CS_TRY(warn(c, "ignored: container portMappings define the ports"));
                pop(c, old);
            }
        snprintf(c->path, sizeof c->path, "%.300s", mpath);
        c->plen = strlen(c->path);
        CS_TRY(each_item(c, mappings, CS_PORTS_PER_TASK_MAX, port_mapping_item, NULL));
        pop(c, 0);
        return CS_OK;
    }
    port_list a = {.defs = true, .require = require}, b = {.require = require};
    FIELD(marathon_fields, M_PORT_DEFS, each_item(c, v, CS_PORTS_PER_TASK_MAX, port_list_item, &a));
    FIELD(marathon_fields, M_PORTS, each_item(c, v, CS_PORTS_PER_TASK_MAX, port_list_item, &b));
    if (defs && plain && (a.n != b.n || memcmp(a.port, b.port, a.n * sizeof *a.port) != 0)) {
        return fail_at(c, "ports", "disagrees with portDefinitions: give one of them");
    }
    const char *src = defs ? "portDefinitions" : "ports";
    if (!defs && !plain)
        a.n = 1; /* a.port[0] is 0 */
    else if (!defs)
        a = b;
    for (uint32_t i = 0; i < a.n; i++) {
        size_t old = push_key(c, src);
        push_index(c, i);
        CS_TRY(add_port(c, a.port[i]));
        pop(c, old);
    }
    return CS_OK;
}

/* Marathon's durations are numbers of seconds. */
static int marathon_seconds(ctx *c, const json_t *v, uint32_t *out)
{
    double sec;
    CS_TRY(get_number(c, v, &sec));
    return seconds_to_ms(c, sec, out);
}

static int marathon(ctx *c, const json_t *root, health_ports *hp)
{
    const json_t *found[M_FIELDS] = {0};
    CS_TRY(collect(c, root, marathon_fields, M_FIELDS, found, marathon_other));
    cs_job *j = &c->s->job;
    if (found[M_APPS]) {
        return fail_at(c, "apps", "a Marathon group is not supported: submit each app on its own");
    }
    j->kind = CS_JOB_SERVICE;
    /* Marathon's defaults: 1 instance of 1 cpu, 128 MiB, no disk. */
    j->count = 1;
    j->res.cpu = 1000;
    j->res.mem = 128;
    FIELD(marathon_fields, M_ID, set_name(c, v));
    const json_t *mappings = NULL;
    char mpath[PATH_LEN] = "";
    bool image = false;
    FIELD(marathon_fields, M_CONTAINER,
          marathon_container(c, v, &mappings, mpath, sizeof mpath, &image));
    FIELD(marathon_fields, M_CMD, get_str(c, v, CS_CMD_MAX, true, &j->cmd));
    if (found[M_CMD] && found[M_ARGS]) {
        size_t old = push_key(c, "args");
        CS_TRY(warn(c, "ignored: cmd is given too (Marathon refuses both)"));
        pop(c, old);
    } else {
        FIELD(marathon_fields, M_ARGS, set_args(c, v));
    }
    if (found[M_CMD] == NULL && found[M_ARGS] == NULL) {
        return fail_at(c, "cmd", "the app has neither cmd nor args%s",
                       image ? " (its container image cannot run: tasks are processes on the host)"
                             : "");
    }
    FIELD(marathon_fields, M_CPUS, get_cpu(c, v, &j->res.cpu));
    FIELD(marathon_fields, M_MEM, get_mib(c, v, &j->res.mem));
    FIELD(marathon_fields, M_DISK, get_mib(c, v, &j->res.disk));
    FIELD(marathon_fields, M_INSTANCES, get_u32(c, v, CS_TASK_INDEX_MAX + 1u, &j->count));
    CS_TRY(marathon_ports(c, found, mappings, mpath));
    FIELD(marathon_fields, M_CONSTRAINTS, set_constraints(c, v));
    FIELD(marathon_fields, M_HEALTH, set_health(c, v, hp));
    FIELD(marathon_fields, M_UPGRADE,
          set_update(c, v, "minimumHealthCapacity", "maximumOverCapacity"));
    FIELD(marathon_fields, M_ENV, set_env(c, v));
    cs_jobopts *o = &c->s->opts;
    FIELD(marathon_fields, M_KILL_GRACE, marathon_seconds(c, v, &o->kill_grace_ms));
    FIELD(marathon_fields, M_BACKOFF, marathon_seconds(c, v, &o->backoff_ms));
    FIELD(marathon_fields, M_BACKOFF_FACTOR, get_factor(c, v, &o->backoff_factor_pm));
    FIELD(marathon_fields, M_MAX_DELAY, marathon_seconds(c, v, &o->max_delay_ms));
    return CS_OK;
}

/* ---- the body ------------------------------------------------------------------ */

/* The job.submit body (§5.3), through its codec: the spec fields only,
 * options when any. */
static int pack_body(ctx *c)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, &c->s->body, msgpack_sbuffer_write);
    if (cs_job_submit_req_encode(&pk, &c->s->job) != CS_OK)
        return oom(c);
    return CS_OK;
}

/* Encode the options, check the whole spec as the server will, pack. */
static int finish(ctx *c, const health_ports *hp)
{
    CS_TRY(check_health_ports(c, hp));
    cs_job *j = &c->s->job;
    msgpack_sbuffer opts;
    msgpack_sbuffer_init(&opts);
    int rc = cs_jobopts_encode(&c->s->opts, &opts, c->err);
    if (rc == CS_OK && opts.size > CS_EXTRA_MAX)
        rc = cs_errorf(c->err, CS_EINVAL, "the options encode to %zu bytes, more than %d",
                       opts.size, CS_EXTRA_MAX);
    if (rc == CS_OK && opts.size > 0) {
        uint8_t *e = cs_arena_alloc(&c->s->arena, opts.size);
        if (e == NULL)
            rc = oom(c);
        else {
            memcpy(e, opts.data, opts.size);
            j->extra = e;
            j->extra_len = (uint32_t)opts.size;
        }
    }
    msgpack_sbuffer_destroy(&opts);
    CS_TRY(rc);
    CS_TRY(cs_job_validate(j, c->err));
    return pack_body(c);
}

/* ---- entry points ---------------------------------------------------------------- */

/* Prepare `s` for one of the parse functions (which call it themselves);
 * cs_jobspec_free is then always safe. */
static void jobspec_init(cs_jobspec *s)
{
    memset(s, 0, sizeof *s);
    cs_arena_init(&s->arena);
    msgpack_sbuffer_init(&s->body);
}

void cs_jobspec_free(cs_jobspec *s)
{
    cs_arena_free(&s->arena);
    msgpack_sbuffer_destroy(&s->body);
    jobspec_init(s);
}

int cs_jobspec_from_json(const json_t *root, cs_jobspec *s, cs_error *err)
{
    jobspec_init(s);
    ctx c = {.s = s, .err = err};
    if (!json_is_object(root))
        return cs_errorf(err, CS_EINVAL, "the spec is %s, not a JSON object", type_name(root));
    bool has_name = json_object_get(root, "name") != NULL;
    if (!has_name && json_object_get(root, "id") == NULL)
        return cs_errorf(err, CS_EINVAL,
                         "neither 'name' (a native job spec) nor 'id' (a "
                         "Marathon app) is present");
    c.marathon = !has_name;
    s->format = c.marathon ? CS_JOBSPEC_MARATHON : CS_JOBSPEC_NATIVE;
    s->job.priority = 50;
    s->job.count = 1;
    s->job.cmd = "";
    cs_jobopts_init(&s->opts);
    health_ports hp;
    int rc = alloc_ports(&c);
    if (rc == CS_OK)
        rc = c.marathon ? marathon(&c, root, &hp) : native(&c, root, &hp);
    if (rc == CS_OK)
        rc = finish(&c, &hp);
    if (rc != CS_OK)
        cs_jobspec_free(s);
    return rc;
}

int cs_jobspec_parse(const char *text, size_t len, cs_jobspec *s, cs_error *err)
{
    jobspec_init(s);
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL)
        return cs_errorf(err, CS_EINVAL, "line %d column %d: %s", je.line, je.column, je.text);
    int rc = cs_jobspec_from_json(root, s, err);
    json_decref(root);
    return rc;
}

int cs_jobspec_load(const char *path, cs_jobspec *s, cs_error *err)
{
    jobspec_init(s);
    bool in = strcmp(path, "-") == 0;
    const char *name = in ? "<stdin>" : path;
    FILE *f = in ? stdin : fopen(path, "rb");
    if (f == NULL)
        return cs_errorf(err, CS_EINVAL, "%s: %s", name, strerror(errno));
    size_t cap = 64 * 1024, len = 0;
    char *buf = malloc(cap);
    int rc = buf ? CS_OK : cs_errorf(err, CS_ENOMEM, "%s: out of memory", name);
    while (rc == CS_OK) {
        if (len == cap) {
            char *nb = cap >= CS_JOBSPEC_FILE_MAX ? NULL : realloc(buf, cap * 2);
            if (nb == NULL) {
                rc = cap >= CS_JOBSPEC_FILE_MAX
                         ? cs_errorf(err, CS_EINVAL, "%s: larger than %u bytes", name,
                                     CS_JOBSPEC_FILE_MAX)
                         : cs_errorf(err, CS_ENOMEM, "%s: out of memory", name);
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            if (ferror(f))
                rc = cs_errorf(err, CS_EINVAL, "%s: %s", name, strerror(errno));
            break;
        }
    }
    if (!in)
        fclose(f);
    if (rc == CS_OK) {
        rc = cs_jobspec_parse(buf, len, s, err);
        if (rc != CS_OK)
            cs_error_wrap(err, rc, "%s", name);
    }
    free(buf);
    return rc;
}

/* ---- back to JSON ---------------------------------------------------------------- */

/* Attach v to o under key; false (and v released) on failure, so that
 * building an object is a list of calls and one check. */
static json_t *put(json_t *o, const char *key, json_t *v, bool *ok)
{
    if (o == NULL || v == NULL || json_object_set_new(o, key, v) != 0) {
        if (o == NULL)
            json_decref(v);
        *ok = false;
        return NULL;
    }
    return v;
}

static json_t *add(json_t *array, json_t *v, bool *ok)
{
    if (array == NULL || v == NULL || json_array_append_new(array, v) != 0) {
        if (array == NULL)
            json_decref(v);
        *ok = false;
        return NULL;
    }
    return v;
}

static void health_json(json_t *o, const cs_health *h, bool *ok)
{
    put(o, "protocol", json_string(cs_health_proto_name(h->proto)), ok);
    if (h->proto == CS_HEALTH_COMMAND)
        put(o, "command", json_string(h->command), ok);
    if (h->proto == CS_HEALTH_HTTP)
        put(o, "path", json_string(h->path), ok);
    if (h->proto != CS_HEALTH_COMMAND)
        put(o, "port_index", json_integer(h->port_index), ok);
    put(o, "grace_period", json_real(h->grace_ms / 1000.0), ok);
    put(o, "interval", json_real(h->interval_ms / 1000.0), ok);
    put(o, "timeout", json_real(h->timeout_ms / 1000.0), ok);
    put(o, "max_failures", json_integer(h->max_failures), ok);
}

int cs_jobspec_to_json(const cs_job *j, const cs_jobopts *o, json_t **out, cs_error *err)
{
    bool ok = true;
    json_t *r = json_object();
    put(r, "name", json_string(j->name), &ok);
    put(r, "kind", json_string(cs_job_kind_name(j->kind)), &ok);
    put(r, "priority", json_integer(j->priority), &ok);
    put(r, "count", json_integer(j->count), &ok);
    put(r, "cmd", json_string(j->cmd ? j->cmd : ""), &ok);
    json_t *res = put(r, "resources", json_object(), &ok);
    put(res, "cpu", json_real((double)j->res.cpu / 1000.0), &ok);
    put(res, "mem", json_integer(j->res.mem), &ok);
    put(res, "disk", json_integer(j->res.disk), &ok);
    json_t *ports = put(r, "ports", json_array(), &ok);
    for (uint32_t i = 0; i < j->nports; i++)
        add(ports, json_integer(j->ports[i]), &ok);
    json_t *cons = put(r, "constraints", json_array(), &ok);
    for (uint32_t i = 0; i < j->nconstraints; i++) {
        json_t *k = add(cons, json_object(), &ok);
        put(k, "field", json_string(j->constraints[i].field), &ok);
        put(k, "op", json_string(j->constraints[i].op), &ok);
        put(k, "value", json_string(j->constraints[i].value), &ok);
        put(k, "soft", json_boolean(j->constraints[i].soft), &ok);
    }
    json_t *hcs = put(r, "health_checks", json_array(), &ok);
    for (uint32_t i = 0; i < o->nhealth; i++)
        health_json(add(hcs, json_object(), &ok), &o->health[i], &ok);
    json_t *upd = put(r, "update_strategy", json_object(), &ok);
    put(upd, "minimum_health_capacity", json_real(o->min_health_pm / (double)CS_PERMILLE), &ok);
    put(upd, "maximum_over_capacity", json_real(o->max_over_pm / (double)CS_PERMILLE), &ok);
    json_t *env = put(r, "env", json_object(), &ok);
    for (uint32_t i = 0; i < o->nenv; i++)
        put(env, o->env[i].key, json_string(o->env[i].value), &ok);
    json_t *vols = put(r, "volumes", json_array(), &ok);
    for (uint32_t i = 0; i < o->nvolumes; i++) {
        json_t *v = add(vols, json_object(), &ok);
        put(v, "path", json_string(o->volumes[i].path), &ok);
        put(v, "mode", json_string(o->volumes[i].rw ? "rw" : "ro"), &ok);
    }
    put(r, "gang", json_boolean(o->gang), &ok);
    put(r, "global", json_boolean(o->global), &ok);
    put(r, "max_retries", json_integer(o->max_retries), &ok);
    put(r, "kill_grace", json_real(o->kill_grace_ms / 1000.0), &ok);
    put(r, "duration", json_real(o->duration_ms / 1000.0), &ok);
    put(r, "backoff", json_real(o->backoff_ms / 1000.0), &ok);
    put(r, "backoff_factor", json_real(o->backoff_factor_pm / (double)CS_PERMILLE), &ok);
    put(r, "max_launch_delay", json_real(o->max_delay_ms / 1000.0), &ok);
    if (o->cpu_hard) /* only when not the default: earlier outputs stay as they were */
        put(r, "cpu_limit", json_string("hard"), &ok);
    json_t *tols = put(r, "tolerations", json_array(), &ok);
    for (uint32_t i = 0; i < o->ntolerations; i++) {
        const cs_toleration *t = &o->tolerations[i];
        json_t *k = add(tols, json_object(), &ok);
        put(k, "key", json_string(t->key), &ok);
        put(k, "operator", json_string(cs_toleration_op_name(t->op)), &ok);
        if (t->op == CS_TOL_EQUAL)
            put(k, "value", json_string(t->value), &ok);
        put(k, "effect",
            json_string(t->effect == CS_TOL_ANY_EFFECT ? "" : cs_taint_effect_name(t->effect)),
            &ok);
        if (t->has_seconds)
            put(k, "tolerationSeconds", json_integer(t->seconds), &ok);
    }
    if (!ok) {
        json_decref(r);
        return cs_errorf(err, CS_ENOMEM, "job %s: out of memory building JSON", j->name);
    }
    *out = r;
    return CS_OK;
}
