/* principal.c — principals' text and clients' tokens (principal.h). */
#include "proto/principal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const role_names[CS_AUTH_ROLE_COUNT] = {
    [CS_AUTH_ANONYMOUS] = "anonymous", [CS_AUTH_AGENT] = "agent",
    [CS_AUTH_SCHEDULER] = "scheduler", [CS_AUTH_OPERATOR] = "operator",
    [CS_AUTH_READER] = "reader",       [CS_AUTH_SERVER] = "server",
};

const char *cs_auth_role_name(uint8_t role)
{
    return role < CS_AUTH_ROLE_COUNT ? role_names[role] : "unknown";
}

cs_principal cs_principal_anonymous(void)
{
    return (cs_principal){CS_AUTH_ANONYMOUS, 0, ""};
}

/* The roles a principal's text may name, and whether each takes a name. */
static const struct {
    const char *text;
    uint8_t role;
    uint8_t kinds;
    bool named;
} spellings[] = {
    {"agent", CS_AUTH_AGENT, CS_KINDS_ALL, true},
    {"scheduler", CS_AUTH_SCHEDULER, CS_KINDS_ALL, true},
    {"scheduler.batch", CS_AUTH_SCHEDULER, 1u << CS_JOB_BATCH, true},
    {"scheduler.service", CS_AUTH_SCHEDULER, 1u << CS_JOB_SERVICE, true},
    {"operator", CS_AUTH_OPERATOR, CS_KINDS_ALL, false},
    {"reader", CS_AUTH_READER, CS_KINDS_ALL, false},
    {"server", CS_AUTH_SERVER, CS_KINDS_ALL, false},
};

int cs_principal_parse(const char *s, size_t len, cs_principal *out, cs_error *err)
{
    const char *colon = memchr(s, ':', len);
    size_t rlen = colon != NULL ? (size_t)(colon - s) : len;
    for (size_t i = 0; i < sizeof spellings / sizeof spellings[0]; i++) {
        if (strlen(spellings[i].text) != rlen || memcmp(spellings[i].text, s, rlen) != 0)
            continue;
        size_t nlen = colon != NULL ? len - rlen - 1 : 0;
        if (spellings[i].named && (colon == NULL || nlen == 0))
            return cs_errorf(err, CS_EINVAL, "principal '%.*s': the role %s needs a name (%s:NAME)",
                             (int)(len > 200 ? 200 : len), s, spellings[i].text,
                             spellings[i].text);
        if (!spellings[i].named && colon != NULL)
            return cs_errorf(err, CS_EINVAL, "principal '%.*s': the role %s takes no name",
                             (int)(len > 200 ? 200 : len), s, spellings[i].text);
        if (nlen > CS_NAME_MAX)
            return cs_errorf(err, CS_EINVAL, "principal '%.*s...': its name is longer than %d bytes",
                             (int)rlen, s, CS_NAME_MAX);
        if (colon != NULL && memchr(colon + 1, '\0', nlen) != NULL)
            return cs_errorf(err, CS_EINVAL, "principal of role %s: its name holds a NUL byte",
                             spellings[i].text);
        *out = (cs_principal){spellings[i].role, spellings[i].kinds, ""};
        if (nlen > 0)
            memcpy(out->name, colon + 1, nlen);
        out->name[nlen] = '\0';
        return CS_OK;
    }
    return cs_errorf(err, CS_EINVAL,
                     "principal '%.*s': unknown role '%.*s' (agent:NAME, scheduler[.batch|.service]:NAME, "
                     "operator, reader, server)",
                     (int)(len > 200 ? 200 : len), s, (int)(rlen > 64 ? 64 : rlen), s);
}

const char *cs_principal_text(const cs_principal *p, char *buf, size_t n)
{
    const char *role = cs_auth_role_name(p->role);
    if (p->role == CS_AUTH_SCHEDULER && p->kinds != CS_KINDS_ALL)
        role = p->kinds == 1u << CS_JOB_BATCH     ? "scheduler.batch"
               : p->kinds == 1u << CS_JOB_SERVICE ? "scheduler.service"
                                                  : "scheduler";
    if (p->name[0] != '\0')
        snprintf(buf, n, "%s:%s", role, p->name);
    else
        snprintf(buf, n, "%s", role);
    return buf;
}

bool cs_secret_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    const unsigned char *x = a, *y = b;
    unsigned char diff = alen != blen;
    size_t n = alen < blen ? alen : blen;
    for (size_t i = 0; i < n; i++)
        diff |= x[i] ^ y[i];
    return diff == 0;
}

int cs_token_load(const char *path, char **out, cs_error *err)
{
    *out = NULL;
    if (path == NULL) {
        path = getenv(CS_TOKEN_FILE_ENV);
        if (path == NULL || path[0] == '\0')
            return CS_OK;
    }
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return cs_errorf(err, CS_EINVAL, "token file %s: %s", path, strerror(errno));
    char line[CS_TOKEN_MAX + 64];
    int rc = CS_OK;
    if (fgets(line, sizeof line, f) == NULL) {
        rc = cs_errorf(err, CS_EINVAL, "token file %s is empty", path);
        goto out;
    }
    size_t b = 0, e = strlen(line);
    if (e == sizeof line - 1 && line[e - 1] != '\n') {
        rc = cs_errorf(err, CS_EINVAL, "token file %s: the token is longer than %d bytes", path,
                       CS_TOKEN_MAX);
        goto out;
    }
    while (b < e && (line[b] == ' ' || line[b] == '\t'))
        b++;
    while (e > b && (line[e - 1] == '\n' || line[e - 1] == '\r' || line[e - 1] == ' ' ||
                     line[e - 1] == '\t'))
        e--;
    if (e - b < CS_TOKEN_MIN || e - b > CS_TOKEN_MAX) {
        rc = cs_errorf(err, CS_EINVAL,
                       "token file %s: the token has %zu bytes; a token has %d to %d "
                       "(tools/cellsched-certs.sh --tokens makes them)",
                       path, e - b, CS_TOKEN_MIN, CS_TOKEN_MAX);
        goto out;
    }
    for (size_t i = b; i < e; i++)
        if (line[i] <= ' ' || line[i] > '~') {
            rc = cs_errorf(err, CS_EINVAL,
                           "token file %s: the token holds a byte that is not printable ASCII "
                           "(offset %zu)",
                           path, i - b);
            goto out;
        }
    if ((*out = strndup(line + b, e - b)) == NULL)
        rc = cs_errorf(err, CS_ENOMEM, "token file %s: out of memory", path);
out:
    explicit_bzero(line, sizeof line);
    fclose(f);
    return rc;
}
