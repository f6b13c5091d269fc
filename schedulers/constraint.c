/* constraint.c — compiling and matching placement constraints (see
 * constraint.h). */
#include "schedulers/constraint.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>


static const struct {
    const char *name;
    uint8_t op;
} op_names[] = {
    {"==", CS_OP_EQ},         {"=", CS_OP_EQ},           {"IS", CS_OP_EQ},
    {"!=", CS_OP_NE},         {"LIKE", CS_OP_LIKE},      {"UNLIKE", CS_OP_UNLIKE},
    {"CLUSTER", CS_OP_CLUSTER}, {"UNIQUE", CS_OP_UNIQUE}, {"MAX_PER", CS_OP_MAX_PER},
    {"GROUP_BY", CS_OP_GROUP_BY}, {"AFFINITY", CS_OP_AFFINITY},
    {"ANTI_AFFINITY", CS_OP_ANTI_AFFINITY},
};

static const char *const op_text[CS_OP_COUNT] = {
    [CS_OP_EQ] = "==",           [CS_OP_NE] = "!=",           [CS_OP_LIKE] = "LIKE",
    [CS_OP_UNLIKE] = "UNLIKE",   [CS_OP_CLUSTER] = "CLUSTER", [CS_OP_UNIQUE] = "UNIQUE",
    [CS_OP_MAX_PER] = "MAX_PER", [CS_OP_GROUP_BY] = "GROUP_BY", [CS_OP_AFFINITY] = "AFFINITY",
    [CS_OP_ANTI_AFFINITY] = "ANTI_AFFINITY",
};

static int parse_op(const char *s, uint8_t *out)
{
    for (size_t i = 0; i < sizeof op_names / sizeof op_names[0]; i++)
        if (strcasecmp(s, op_names[i].name) == 0) {
            *out = op_names[i].op;
            return CS_OK;
        }
    return CS_EINVAL;
}

/* A decimal >= 1 that fits in 32 bits, with nothing around it. */
static bool parse_count(const char *s, uint32_t *out)
{
    if (!isdigit((unsigned char)s[0]))
        return false;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return false;
        v = v * 10 + (uint64_t)(*p - '0');
        if (v > UINT32_MAX)
            return false;
    }
    if (v == 0)
        return false;
    *out = (uint32_t)v;
    return true;
}

void cs_constraint_label(const cs_constraint *src, char *buf, size_t size)
{
    uint8_t op;
    const char *value = src->value ? src->value : "";
    if (parse_op(src->op, &op) != CS_OK) {
        snprintf(buf, size, "%s %s %s", src->field, src->op, value);
        return;
    }
    switch (op) {
    case CS_OP_EQ:
    case CS_OP_NE:
    case CS_OP_LIKE:
    case CS_OP_UNLIKE:
        snprintf(buf, size, "%s %s %s", src->field, op_text[op], value);
        break;
    default:
        snprintf(buf, size, "%s %s%s%s", op_text[op], src->field, value[0] ? " " : "", value);
    }
}

static int fail(cs_error *err, const cs_constraint *src, const char *why)
{
    char label[3 * CS_ATTR_LEN_MAX + 8];
    cs_constraint_label(src, label, sizeof label);
    return cs_errorf(err, CS_EINVAL, "constraint '%s': %s", label, why);
}

int cs_ccons_compile(const cs_constraint *src, cs_strtab *strs, cs_ccons *out, cs_error *err)
{
    memset(out, 0, sizeof *out);
    out->field = CS_NONE;
    out->value = CS_NONE;
    cs_u32map_init(&out->cache);
    const char *field = src->field ? src->field : "";
    const char *value = src->value ? src->value : "";
    if (parse_op(src->op ? src->op : "", &out->op) != CS_OK)
        return fail(err, src, "unknown operator (==, !=, IS, LIKE, UNLIKE, CLUSTER, UNIQUE, "
                              "MAX_PER, GROUP_BY, AFFINITY, ANTI_AFFINITY)");
    out->soft = src->soft;
    bool affinity = out->op == CS_OP_AFFINITY || out->op == CS_OP_ANTI_AFFINITY;
    if (field[0] == '\0')
        return fail(err, src, "the field is empty");
    if (affinity != (strcmp(field, "job") == 0))
        return fail(err, src, affinity ? "AFFINITY and ANTI_AFFINITY take field 'job'"
                                       : "field 'job' takes only AFFINITY or ANTI_AFFINITY");
    bool needs_value = out->op == CS_OP_EQ || out->op == CS_OP_NE || out->op == CS_OP_LIKE ||
                       out->op == CS_OP_UNLIKE || out->op == CS_OP_MAX_PER || affinity;
    if (needs_value && value[0] == '\0')
        return fail(err, src, "the operator needs a value");
    if (out->op == CS_OP_MAX_PER && !parse_count(value, &out->num))
        return fail(err, src, "MAX_PER's value is not a number >= 1");
    if (out->op == CS_OP_GROUP_BY && value[0] != '\0' && !parse_count(value, &out->num))
        return fail(err, src, "GROUP_BY's value is not a number >= 1");
    out->hostname = strcmp(field, "hostname") == 0;
    if (!out->hostname && !affinity &&
        cs_strtab_intern(strs, field, strlen(field), &out->field) != CS_OK)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    bool keeps_value = out->op == CS_OP_EQ || out->op == CS_OP_NE || out->op == CS_OP_CLUSTER ||
                       affinity;
    if (keeps_value && value[0] != '\0' &&
        cs_strtab_intern(strs, value, strlen(value), &out->value) != CS_OK)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    if (out->op == CS_OP_LIKE || out->op == CS_OP_UNLIKE) {
        /* Anchored to the whole value, as Marathon's String.matches. */
        size_t n = strlen(value) + 5;
        char *pat = malloc(n);
        out->re = malloc(sizeof *out->re);
        if (pat == NULL || out->re == NULL) {
            free(pat);
            free(out->re);
            out->re = NULL;
            return cs_errorf(err, CS_ENOMEM, "out of memory");
        }
        /* The value must compile on its own first: then its groups are
         * balanced and wrapping it cannot change what it means. */
        int rc = regcomp(out->re, value, REG_EXTENDED | REG_NOSUB);
        if (rc == 0) {
            regfree(out->re);
            snprintf(pat, n, "^(%s)$", value);
            rc = regcomp(out->re, pat, REG_EXTENDED | REG_NOSUB);
        }
        free(pat);
        if (rc != 0) {
            char why[128], msg[192];
            regerror(rc, out->re, why, sizeof why);
            free(out->re);
            out->re = NULL;
            snprintf(msg, sizeof msg, "not a POSIX extended regular expression: %s", why);
            return fail(err, src, msg);
        }
    }
    return CS_OK;
}

void cs_ccons_free(cs_ccons *c)
{
    if (c->re != NULL) {
        regfree(c->re);
        free(c->re);
        c->re = NULL;
    }
    cs_u32map_free(&c->cache);
}

bool cs_ccons_match(cs_ccons *c, const cs_strtab *strs, uint32_t v)
{
    switch (c->op) {
    case CS_OP_EQ:
    case CS_OP_CLUSTER:
        return v != CS_NONE && v == c->value;
    case CS_OP_NE:
        return v == CS_NONE || v != c->value;
    case CS_OP_LIKE:
    case CS_OP_UNLIKE: {
        if (v == CS_NONE)
            return c->op == CS_OP_UNLIKE;
        uint32_t hit;
        if (!cs_u32map_get(&c->cache, v, &hit)) {
            hit = regexec(c->re, cs_strtab_str(strs, v), 0, NULL, 0) == 0;
            (void)cs_u32map_put(&c->cache, v, hit);
        }
        return (c->op == CS_OP_LIKE) == (hit != 0);
    }
    default:
        return false;
    }
}

bool cs_ccons_counts(const cs_ccons *c)
{
    return c->op == CS_OP_UNIQUE || c->op == CS_OP_MAX_PER || c->op == CS_OP_GROUP_BY ||
           (c->op == CS_OP_CLUSTER && c->value == CS_NONE);
}
