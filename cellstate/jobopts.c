/* jobopts.c — canonical encoding and strict decoding of a job's options. */
#include "cellstate/jobopts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cellstate/mpcheck.h"

static const char *const proto_names[CS_HEALTH_PROTO_COUNT] = {"COMMAND", "TCP", "HTTP"};
static const char *const tol_ops[CS_TOL_OP_COUNT] = {"Equal", "Exists"};

const char *cs_toleration_op_name(uint8_t op) { return op < CS_TOL_OP_COUNT ? tol_ops[op] : "?"; }

bool cs_toleration_matches(const cs_toleration *t, const char *key, const char *value,
                           uint8_t effect)
{
    if (t->effect != CS_TOL_ANY_EFFECT && t->effect != effect)
        return false;
    if (t->key[0] != '\0' && strcmp(t->key, key) != 0)
        return false;
    return t->op == CS_TOL_EXISTS || strcmp(t->value, value) == 0;
}

void cs_jobopts_init(cs_jobopts *o)
{
    memset(o, 0, sizeof *o);
    o->min_health_pm = CS_PERMILLE;
    o->max_over_pm = CS_PERMILLE;
    o->max_retries = CS_JOBOPTS_DEFAULT_MAX_RETRIES;
    o->kill_grace_ms = CS_JOBOPTS_DEFAULT_KILL_GRACE_MS;
    o->backoff_ms = CS_JOBOPTS_DEFAULT_BACKOFF_MS;
    o->backoff_factor_pm = CS_JOBOPTS_DEFAULT_BACKOFF_FACTOR_PM;
    o->max_delay_ms = CS_JOBOPTS_DEFAULT_MAX_DELAY_MS;
}

void cs_health_init(cs_health *h, uint8_t proto)
{
    memset(h, 0, sizeof *h);
    h->proto = proto;
    h->command = "";
    h->path = proto == CS_HEALTH_HTTP ? "/" : "";
    h->grace_ms = CS_HEALTH_DEFAULT_GRACE_MS;
    h->interval_ms = CS_HEALTH_DEFAULT_INTERVAL_MS;
    h->timeout_ms = CS_HEALTH_DEFAULT_TIMEOUT_MS;
    h->max_failures = CS_HEALTH_DEFAULT_MAX_FAILURES;
}

const char *cs_health_proto_name(uint8_t proto)
{
    return proto < CS_HEALTH_PROTO_COUNT ? proto_names[proto] : "?";
}

int cs_health_proto_parse(const char *name, uint8_t *out)
{
    for (uint8_t i = 0; i < CS_HEALTH_PROTO_COUNT; i++)
        if (strcmp(name, proto_names[i]) == 0) {
            *out = i;
            return CS_OK;
        }
    return CS_EINVAL;
}

/* ---- normalize ------------------------------------------------------------ */

static int cmp_attr(const void *a, const void *b)
{
    return strcmp(((const cs_attr *)a)->key, ((const cs_attr *)b)->key);
}

static int cmp_volume(const void *a, const void *b)
{
    return strcmp(((const cs_volume *)a)->path, ((const cs_volume *)b)->path);
}

static int check_str(const char *s, const char *what, bool nonempty, cs_error *err)
{
    if (s == NULL || (nonempty && s[0] == '\0'))
        return cs_errorf(err, CS_EINVAL, "options: %s is empty", what);
    if (strlen(s) > CS_OPT_STR_MAX)
        return cs_errorf(err, CS_EINVAL, "options: %s is longer than %u bytes", what,
                         CS_OPT_STR_MAX);
    return CS_OK;
}

/* An environment variable name as POSIX shells accept it. */
static bool env_name_ok(const char *s)
{
    if (!((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
        return false;
    for (const char *p = s + 1; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '_'))
            return false;
    return true;
}

static int check_health(const cs_health *h, uint32_t i, cs_error *err)
{
    if (h->proto >= CS_HEALTH_PROTO_COUNT)
        return cs_errorf(err, CS_EINVAL, "options: health[%u].protocol is unknown", i);
    if (h->proto == CS_HEALTH_COMMAND) {
        if (h->command == NULL || h->command[0] == '\0')
            return cs_errorf(err, CS_EINVAL, "options: health[%u]: a COMMAND check needs a command",
                             i);
    } else if (h->command != NULL && h->command[0] != '\0') {
        return cs_errorf(err, CS_EINVAL, "options: health[%u]: only a COMMAND check has a command",
                         i);
    }
    if (h->proto == CS_HEALTH_HTTP && (h->path == NULL || h->path[0] != '/'))
        return cs_errorf(err, CS_EINVAL, "options: health[%u].path must start with '/'", i);
    if (h->proto != CS_HEALTH_HTTP && h->path != NULL && h->path[0] != '\0')
        return cs_errorf(err, CS_EINVAL, "options: health[%u]: only an HTTP check has a path", i);
    if (h->port_index >= CS_PORTS_PER_TASK_MAX)
        return cs_errorf(err, CS_EINVAL, "options: health[%u].port_index %u is out of range", i,
                         h->port_index);
    if (h->interval_ms == 0 || h->timeout_ms == 0)
        return cs_errorf(err, CS_EINVAL, "options: health[%u]: interval and timeout must be > 0",
                         i);
    int rc = check_str(h->command, "health command", false, err);
    if (rc == CS_OK)
        rc = check_str(h->path, "health path", false, err);
    return rc;
}

/* Check ranges and sortedness; CS_EINVAL naming the option. Sorts env and
 * volumes in place first, so that callers may fill them in any order. */
static int jobopts_normalize(cs_jobopts *o, cs_error *err)
{
    if (o->nenv > CS_ENV_MAX)
        return cs_errorf(err, CS_EINVAL, "options: more than %u environment variables", CS_ENV_MAX);
    if (o->nhealth > CS_HEALTH_MAX)
        return cs_errorf(err, CS_EINVAL, "options: more than %u health checks", CS_HEALTH_MAX);
    if (o->nvolumes > CS_VOLUME_MAX)
        return cs_errorf(err, CS_EINVAL, "options: more than %u volumes", CS_VOLUME_MAX);
    if (o->min_health_pm > CS_PERMILLE)
        return cs_errorf(err, CS_EINVAL, "options: min_health must be between 0 and 1");
    if (o->max_over_pm > CS_PERMILLE)
        return cs_errorf(err, CS_EINVAL, "options: max_over must be between 0 and 1");
    /* A factor below 1 would shorten the wait of a task that keeps failing. */
    if (o->backoff_factor_pm < CS_PERMILLE)
        return cs_errorf(err, CS_EINVAL, "options: backoff_factor must be at least 1");
    int rc;
    for (uint32_t i = 0; i < o->nenv; i++) {
        if ((rc = check_str(o->env[i].key, "env name", true, err)) != CS_OK ||
            (rc = check_str(o->env[i].value, "env value", false, err)) != CS_OK)
            return rc;
        if (!env_name_ok(o->env[i].key))
            return cs_errorf(err, CS_EINVAL, "options: env name '%s' is not a valid variable name",
                             o->env[i].key);
    }
    if (o->nenv > 1)
        qsort(o->env, o->nenv, sizeof *o->env, cmp_attr);
    for (uint32_t i = 1; i < o->nenv; i++)
        if (strcmp(o->env[i - 1].key, o->env[i].key) == 0)
            return cs_errorf(err, CS_EINVAL, "options: env '%s' is given twice", o->env[i].key);
    for (uint32_t i = 0; i < o->nhealth; i++)
        if ((rc = check_health(&o->health[i], i, err)) != CS_OK)
            return rc;
    for (uint32_t i = 0; i < o->nvolumes; i++) {
        if ((rc = check_str(o->volumes[i].path, "volume path", true, err)) != CS_OK)
            return rc;
        if (o->volumes[i].path[0] != '/')
            return cs_errorf(err, CS_EINVAL, "options: volume path '%s' is not absolute",
                             o->volumes[i].path);
    }
    if (o->ntolerations > CS_TOLERATION_MAX)
        return cs_errorf(err, CS_EINVAL, "options: more than %u tolerations", CS_TOLERATION_MAX);
    for (uint32_t i = 0; i < o->ntolerations; i++) {
        const cs_toleration *t = &o->tolerations[i];
        if ((rc = check_str(t->key, "toleration key", false, err)) != CS_OK ||
            (rc = check_str(t->value, "toleration value", false, err)) != CS_OK)
            return rc;
        if (t->op >= CS_TOL_OP_COUNT || t->effect > CS_TOL_ANY_EFFECT)
            return cs_errorf(err, CS_EINVAL, "options: toleration %u: bad operator or effect", i);
        /* Kubernetes' validation: an empty key tolerates every key, which
         * only Exists can mean; Exists takes no value. */
        if (t->key[0] == '\0' && t->op != CS_TOL_EXISTS)
            return cs_errorf(err, CS_EINVAL,
                             "options: toleration %u: an empty key needs operator Exists", i);
        if (t->op == CS_TOL_EXISTS && t->value[0] != '\0')
            return cs_errorf(err, CS_EINVAL,
                             "options: toleration %u: operator Exists takes no value", i);
        if (t->has_seconds && t->effect != CS_TAINT_NO_EXECUTE)
            return cs_errorf(err, CS_EINVAL,
                             "options: toleration %u: seconds apply to effect NoExecute only", i);
    }
    if (o->nvolumes > 1)
        qsort(o->volumes, o->nvolumes, sizeof *o->volumes, cmp_volume);
    for (uint32_t i = 1; i < o->nvolumes; i++)
        if (strcmp(o->volumes[i - 1].path, o->volumes[i].path) == 0)
            return cs_errorf(err, CS_EINVAL, "options: volume '%s' is given twice",
                             o->volumes[i].path);
    return CS_OK;
}

/* ---- encode --------------------------------------------------------------- */

#define PK(call)              \
    do {                      \
        if ((call) != 0)      \
            goto nomem;       \
    } while (0)

static int pack_key(msgpack_packer *pk, const char *key)
{
    size_t n = strlen(key);
    if (msgpack_pack_str(pk, n) != 0)
        return -1;
    return msgpack_pack_str_body(pk, key, n);
}

static int pack_u32(msgpack_packer *pk, const char *key, uint32_t v)
{
    if (pack_key(pk, key) != 0)
        return -1;
    return msgpack_pack_uint32(pk, v);
}

static int pack_health(msgpack_packer *pk, const cs_health *h)
{
    if (msgpack_pack_map(pk, 8) != 0 || pack_key(pk, "protocol") != 0 ||
        cs_pack_str(pk, cs_health_proto_name(h->proto)) != CS_OK || pack_key(pk, "command") != 0 ||
        cs_pack_str(pk, h->command) != CS_OK || pack_key(pk, "path") != 0 ||
        cs_pack_str(pk, h->path) != CS_OK || pack_u32(pk, "port_index", h->port_index) != 0 ||
        pack_u32(pk, "grace_ms", h->grace_ms) != 0 ||
        pack_u32(pk, "interval_ms", h->interval_ms) != 0 ||
        pack_u32(pk, "timeout_ms", h->timeout_ms) != 0 ||
        pack_u32(pk, "max_failures", h->max_failures) != 0)
        return -1;
    return 0;
}

/* {key, operator, value, effect[, seconds]}: effect "" for any. */
static int pack_toleration(msgpack_packer *pk, const cs_toleration *t)
{
    const char *effect = t->effect == CS_TOL_ANY_EFFECT ? "" : cs_taint_effect_name(t->effect);
    if (msgpack_pack_map(pk, t->has_seconds ? 5 : 4) != 0 || pack_key(pk, "key") != 0 ||
        cs_pack_str(pk, t->key) != CS_OK || pack_key(pk, "operator") != 0 ||
        cs_pack_str(pk, cs_toleration_op_name(t->op)) != CS_OK || pack_key(pk, "value") != 0 ||
        cs_pack_str(pk, t->value) != CS_OK || pack_key(pk, "effect") != 0 ||
        cs_pack_str(pk, effect) != CS_OK)
        return -1;
    return t->has_seconds ? pack_u32(pk, "seconds", t->seconds) : 0;
}

int cs_jobopts_encode(cs_jobopts *o, msgpack_sbuffer *buf, cs_error *err)
{
    int rc = jobopts_normalize(o, err);
    if (rc != CS_OK)
        return rc;
    bool has[15] = {
        o->nenv > 0,
        o->nhealth > 0,
        o->min_health_pm != CS_PERMILLE,
        o->max_over_pm != CS_PERMILLE,
        o->nvolumes > 0,
        o->gang,
        o->global,
        o->max_retries != CS_JOBOPTS_DEFAULT_MAX_RETRIES,
        o->kill_grace_ms != CS_JOBOPTS_DEFAULT_KILL_GRACE_MS,
        o->duration_ms != 0,
        o->backoff_ms != CS_JOBOPTS_DEFAULT_BACKOFF_MS,
        o->backoff_factor_pm != CS_JOBOPTS_DEFAULT_BACKOFF_FACTOR_PM,
        o->max_delay_ms != CS_JOBOPTS_DEFAULT_MAX_DELAY_MS,
        o->ntolerations > 0,
        o->cpu_hard,
    };
    uint32_t n = 0;
    for (size_t i = 0; i < sizeof has / sizeof has[0]; i++)
        n += has[i];
    if (n == 0)
        return CS_OK;
    msgpack_packer pk;
    msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
    PK(msgpack_pack_map(&pk, n));
    if (has[0]) {
        PK(pack_key(&pk, "env"));
        PK(msgpack_pack_map(&pk, o->nenv));
        for (uint32_t i = 0; i < o->nenv; i++) {
            PK(cs_pack_str(&pk, o->env[i].key));
            PK(cs_pack_str(&pk, o->env[i].value));
        }
    }
    if (has[1]) {
        PK(pack_key(&pk, "health"));
        PK(msgpack_pack_array(&pk, o->nhealth));
        for (uint32_t i = 0; i < o->nhealth; i++)
            PK(pack_health(&pk, &o->health[i]));
    }
    if (has[2])
        PK(pack_u32(&pk, "min_health", o->min_health_pm));
    if (has[3])
        PK(pack_u32(&pk, "max_over", o->max_over_pm));
    if (has[4]) {
        PK(pack_key(&pk, "volumes"));
        PK(msgpack_pack_array(&pk, o->nvolumes));
        for (uint32_t i = 0; i < o->nvolumes; i++) {
            PK(msgpack_pack_map(&pk, 2));
            PK(pack_key(&pk, "path"));
            PK(cs_pack_str(&pk, o->volumes[i].path));
            PK(pack_key(&pk, "mode"));
            PK(cs_pack_str(&pk, o->volumes[i].rw ? "rw" : "ro"));
        }
    }
    if (has[5]) {
        PK(pack_key(&pk, "gang"));
        PK(msgpack_pack_true(&pk));
    }
    if (has[6]) {
        PK(pack_key(&pk, "global"));
        PK(msgpack_pack_true(&pk));
    }
    if (has[7])
        PK(pack_u32(&pk, "max_retries", o->max_retries));
    if (has[8])
        PK(pack_u32(&pk, "kill_grace_ms", o->kill_grace_ms));
    if (has[9])
        PK(pack_u32(&pk, "duration_ms", o->duration_ms));
    if (has[10])
        PK(pack_u32(&pk, "backoff_ms", o->backoff_ms));
    if (has[11])
        PK(pack_u32(&pk, "backoff_factor", o->backoff_factor_pm));
    if (has[12])
        PK(pack_u32(&pk, "max_delay_ms", o->max_delay_ms));
    if (has[13]) {
        PK(pack_key(&pk, "tolerations"));
        PK(msgpack_pack_array(&pk, o->ntolerations));
        for (uint32_t i = 0; i < o->ntolerations; i++)
            PK(pack_toleration(&pk, &o->tolerations[i]));
    }
    if (has[14]) {
        PK(pack_key(&pk, "cpu_hard"));
        PK(msgpack_pack_true(&pk));
    }
    return CS_OK;
nomem:
    return cs_errorf(err, CS_ENOMEM, "options: out of memory");
}

/* ---- decode --------------------------------------------------------------- */

typedef struct dec {
    cs_arena *a;
    cs_error *err;
} dec;

static bool key_is(const msgpack_object *k, const char *s)
{
    size_t n = strlen(s);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
           memcmp(k->via.str.ptr, s, n) == 0;
}

static int get_u32(dec *d, const msgpack_object *v, const char *what, uint32_t max, uint32_t *out)
{
    if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 > max)
        return cs_errorf(d->err, CS_EINVAL, "options: %s is not an integer in [0, %u]", what, max);
    *out = (uint32_t)v->via.u64;
    return CS_OK;
}

static int get_str(dec *d, const msgpack_object *v, const char *what, const char **out)
{
    if (v->type != MSGPACK_OBJECT_STR)
        return cs_errorf(d->err, CS_EINVAL, "options: %s is not a string", what);
    if (v->via.str.size > CS_OPT_STR_MAX)
        return cs_errorf(d->err, CS_EINVAL, "options: %s is longer than %u bytes", what,
                         CS_OPT_STR_MAX);
    if (memchr(v->via.str.ptr, '\0', v->via.str.size) != NULL)
        return cs_errorf(d->err, CS_EINVAL, "options: %s holds a NUL byte", what);
    char *s = cs_arena_strndup(d->a, v->via.str.ptr, v->via.str.size);
    if (s == NULL)
        return cs_errorf(d->err, CS_ENOMEM, "options: out of memory");
    *out = s;
    return CS_OK;
}

static int get_true(dec *d, const msgpack_object *v, const char *what, bool *out)
{
    if (v->type != MSGPACK_OBJECT_BOOLEAN)
        return cs_errorf(d->err, CS_EINVAL, "options: %s is not a boolean", what);
    *out = v->via.boolean;
    return CS_OK;
}

static void *alloc_n(dec *d, uint32_t n, size_t size)
{
    return n == 0 ? NULL : cs_arena_alloc(d->a, (size_t)n * size);
}

static int dec_env(dec *d, const msgpack_object *v, cs_jobopts *o)
{
    if (v->type != MSGPACK_OBJECT_MAP || v->via.map.size > CS_ENV_MAX)
        return cs_errorf(d->err, CS_EINVAL, "options: env is not a map of at most %u strings",
                         CS_ENV_MAX);
    o->nenv = v->via.map.size;
    o->env = alloc_n(d, o->nenv, sizeof *o->env);
    if (o->nenv && o->env == NULL)
        return cs_errorf(d->err, CS_ENOMEM, "options: out of memory");
    for (uint32_t i = 0; i < o->nenv; i++) {
        int rc = get_str(d, &v->via.map.ptr[i].key, "env name", &o->env[i].key);
        if (rc == CS_OK)
            rc = get_str(d, &v->via.map.ptr[i].val, "env value", &o->env[i].value);
        if (rc != CS_OK)
            return rc;
    }
    return CS_OK;
}

static int dec_health(dec *d, const msgpack_object *v, uint32_t idx, cs_health *h)
{
    char what[64];
    if (v->type != MSGPACK_OBJECT_MAP)
        return cs_errorf(d->err, CS_EINVAL, "options: health[%u] is not a map", idx);
    cs_health_init(h, CS_HEALTH_COMMAND);
    bool proto_seen = false;
    for (uint32_t i = 0; i < v->via.map.size; i++) {
        const msgpack_object *k = &v->via.map.ptr[i].key, *x = &v->via.map.ptr[i].val;
        int rc;
        if (key_is(k, "protocol")) {
            const char *name;
            snprintf(what, sizeof what, "health[%u].protocol", idx);
            if ((rc = get_str(d, x, what, &name)) != CS_OK)
                return rc;
            if (cs_health_proto_parse(name, &h->proto) != CS_OK)
                return cs_errorf(d->err, CS_EINVAL,
                                 "options: health[%u].protocol '%s' is not COMMAND, TCP or HTTP",
                                 idx, name);
            proto_seen = true;
            continue;
        }
        struct {
            const char *key;
            uint32_t *u;
            const char **s;
        } fields[] = {
            {"command", NULL, &h->command},         {"path", NULL, &h->path},
            {"port_index", &h->port_index, NULL},   {"grace_ms", &h->grace_ms, NULL},
            {"interval_ms", &h->interval_ms, NULL}, {"timeout_ms", &h->timeout_ms, NULL},
            {"max_failures", &h->max_failures, NULL},
        };
        size_t f = 0;
        while (f < sizeof fields / sizeof fields[0] && !key_is(k, fields[f].key))
            f++;
        if (f == sizeof fields / sizeof fields[0])
            return cs_errorf(d->err, CS_EINVAL, "options: health[%u] has an unknown key", idx);
        snprintf(what, sizeof what, "health[%u].%s", idx, fields[f].key);
        rc = fields[f].u ? get_u32(d, x, what, UINT32_MAX, fields[f].u)
                         : get_str(d, x, what, fields[f].s);
        if (rc != CS_OK)
            return rc;
    }
    if (!proto_seen)
        return cs_errorf(d->err, CS_EINVAL, "options: health[%u] has no protocol", idx);
    return CS_OK;
}

static int dec_volumes(dec *d, const msgpack_object *v, cs_jobopts *o)
{
    if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size > CS_VOLUME_MAX)
        return cs_errorf(d->err, CS_EINVAL, "options: volumes is not an array of at most %u",
                         CS_VOLUME_MAX);
    o->nvolumes = v->via.array.size;
    o->volumes = alloc_n(d, o->nvolumes, sizeof *o->volumes);
    if (o->nvolumes && o->volumes == NULL)
        return cs_errorf(d->err, CS_ENOMEM, "options: out of memory");
    for (uint32_t i = 0; i < o->nvolumes; i++) {
        const msgpack_object *e = &v->via.array.ptr[i];
        if (e->type != MSGPACK_OBJECT_MAP || e->via.map.size != 2 ||
            !key_is(&e->via.map.ptr[0].key, "path") || !key_is(&e->via.map.ptr[1].key, "mode"))
            return cs_errorf(d->err, CS_EINVAL, "options: volumes[%u] is not {path, mode}", i);
        const char *mode;
        int rc = get_str(d, &e->via.map.ptr[0].val, "volume path", &o->volumes[i].path);
        if (rc == CS_OK)
            rc = get_str(d, &e->via.map.ptr[1].val, "volume mode", &mode);
        if (rc != CS_OK)
            return rc;
        if (strcmp(mode, "rw") != 0 && strcmp(mode, "ro") != 0)
            return cs_errorf(d->err, CS_EINVAL, "options: volumes[%u].mode '%s' is not ro or rw",
                             i, mode);
        o->volumes[i].rw = mode[1] == 'w';
    }
    return CS_OK;
}

static int dec_toleration(dec *d, const msgpack_object *v, uint32_t idx, cs_toleration *t)
{
    char what[64];
    if (v->type != MSGPACK_OBJECT_MAP)
        return cs_errorf(d->err, CS_EINVAL, "options: tolerations[%u] is not a map", idx);
    memset(t, 0, sizeof *t);
    t->key = t->value = "";
    t->effect = CS_TOL_ANY_EFFECT;
    for (uint32_t i = 0; i < v->via.map.size; i++) {
        const msgpack_object *k = &v->via.map.ptr[i].key, *x = &v->via.map.ptr[i].val;
        const char *s = NULL;
        int rc;
        if (key_is(k, "seconds")) {
            snprintf(what, sizeof what, "tolerations[%u].seconds", idx);
            t->has_seconds = true;
            rc = get_u32(d, x, what, UINT32_MAX, &t->seconds);
        } else if (key_is(k, "key") || key_is(k, "value") || key_is(k, "operator") ||
                   key_is(k, "effect")) {
            snprintf(what, sizeof what, "tolerations[%u].%.*s", idx, (int)k->via.str.size,
                     k->via.str.ptr);
            rc = get_str(d, x, what, &s);
        } else {
            return cs_errorf(d->err, CS_EINVAL, "options: tolerations[%u] has an unknown key",
                             idx);
        }
        if (rc != CS_OK)
            return rc;
        if (key_is(k, "key"))
            t->key = s;
        else if (key_is(k, "value"))
            t->value = s;
        else if (key_is(k, "operator") && strcmp(s, "Equal") != 0 && strcmp(s, "Exists") != 0)
            return cs_errorf(d->err, CS_EINVAL,
                             "options: tolerations[%u].operator '%s' is not Equal or Exists", idx,
                             s);
        else if (key_is(k, "operator"))
            t->op = s[1] == 'q' ? CS_TOL_EQUAL : CS_TOL_EXISTS;
        else if (key_is(k, "effect") && s[0] != '\0' &&
                 cs_taint_effect_parse(s, &t->effect) != CS_OK)
            return cs_errorf(d->err, CS_EINVAL,
                             "options: tolerations[%u].effect '%s' is not NoSchedule, "
                             "PreferNoSchedule or NoExecute",
                             idx, s);
    }
    return CS_OK;
}

static int dec_map(dec *d, const msgpack_object *m, cs_jobopts *o)
{
    if (m->type != MSGPACK_OBJECT_MAP)
        return cs_errorf(d->err, CS_EINVAL, "options: not a map");
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key, *v = &m->via.map.ptr[i].val;
        int rc;
        if (key_is(k, "env")) {
            rc = dec_env(d, v, o);
        } else if (key_is(k, "health")) {
            if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size > CS_HEALTH_MAX)
                return cs_errorf(d->err, CS_EINVAL,
                                 "options: health is not an array of at most %u checks",
                                 CS_HEALTH_MAX);
            o->nhealth = v->via.array.size;
            o->health = alloc_n(d, o->nhealth, sizeof *o->health);
            if (o->nhealth && o->health == NULL)
                return cs_errorf(d->err, CS_ENOMEM, "options: out of memory");
            rc = CS_OK;
            for (uint32_t h = 0; h < o->nhealth && rc == CS_OK; h++)
                rc = dec_health(d, &v->via.array.ptr[h], h, &o->health[h]);
        } else if (key_is(k, "min_health")) {
            rc = get_u32(d, v, "min_health", CS_PERMILLE, &o->min_health_pm);
        } else if (key_is(k, "max_over")) {
            rc = get_u32(d, v, "max_over", CS_PERMILLE, &o->max_over_pm);
        } else if (key_is(k, "volumes")) {
            rc = dec_volumes(d, v, o);
        } else if (key_is(k, "gang")) {
            rc = get_true(d, v, "gang", &o->gang);
        } else if (key_is(k, "cpu_hard")) {
            rc = get_true(d, v, "cpu_hard", &o->cpu_hard);
        } else if (key_is(k, "global")) {
            rc = get_true(d, v, "global", &o->global);
        } else if (key_is(k, "max_retries")) {
            rc = get_u32(d, v, "max_retries", UINT32_MAX, &o->max_retries);
        } else if (key_is(k, "kill_grace_ms")) {
            rc = get_u32(d, v, "kill_grace_ms", UINT32_MAX, &o->kill_grace_ms);
        } else if (key_is(k, "duration_ms")) {
            rc = get_u32(d, v, "duration_ms", UINT32_MAX, &o->duration_ms);
        } else if (key_is(k, "backoff_ms")) {
            rc = get_u32(d, v, "backoff_ms", UINT32_MAX, &o->backoff_ms);
        } else if (key_is(k, "backoff_factor")) {
            rc = get_u32(d, v, "backoff_factor", UINT32_MAX, &o->backoff_factor_pm);
            if (rc == CS_OK && o->backoff_factor_pm < CS_PERMILLE)
                return cs_errorf(d->err, CS_EINVAL, "options: backoff_factor %u permille is "
                                 "below 1000 (a factor below 1)", o->backoff_factor_pm);
        } else if (key_is(k, "max_delay_ms")) {
            rc = get_u32(d, v, "max_delay_ms", UINT32_MAX, &o->max_delay_ms);
        } else if (key_is(k, "tolerations")) {
            if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size > CS_TOLERATION_MAX)
                return cs_errorf(d->err, CS_EINVAL,
                                 "options: tolerations is not an array of at most %u",
                                 CS_TOLERATION_MAX);
            o->ntolerations = v->via.array.size;
            o->tolerations = alloc_n(d, o->ntolerations, sizeof *o->tolerations);
            if (o->ntolerations && o->tolerations == NULL)
                return cs_errorf(d->err, CS_ENOMEM, "options: out of memory");
            rc = CS_OK;
            for (uint32_t t = 0; t < o->ntolerations && rc == CS_OK; t++)
                rc = dec_toleration(d, &v->via.array.ptr[t], t, &o->tolerations[t]);
        } else if (k->type == MSGPACK_OBJECT_STR) {
            return cs_errorf(d->err, CS_EINVAL, "options: unknown key '%.*s'",
                             (int)(k->via.str.size > 64 ? 64 : k->via.str.size), k->via.str.ptr);
        } else {
            return cs_errorf(d->err, CS_EINVAL, "options: a key is not a string");
        }
        if (rc != CS_OK)
            return rc;
    }
    return CS_OK;
}

int cs_jobopts_decode(const void *data, size_t len, cs_arena *a, cs_jobopts *out, cs_error *err)
{
    cs_jobopts_init(out);
    if (len == 0)
        return CS_OK;
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, 1024))
        return cs_errorf(err, CS_ENOMEM, "options: out of memory");
    msgpack_object obj;
    dec d = {a, err};
    int rc = cs_mp_unpack(data, len, &zone, &obj, CS_EINVAL, "options", err);
    if (rc == CS_OK)
        rc = dec_map(&d, &obj, out);
    msgpack_zone_destroy(&zone);
    if (rc == CS_OK)
        rc = jobopts_normalize(out, err);
    return rc;
}

int cs_job_opts(const cs_job *j, cs_arena *a, cs_jobopts *out, cs_error *err)
{
    return cs_jobopts_decode(j->extra, j->extra_len, a, out, err);
}
