/* cellsim_dist.c — workload distributions (see cellsim_dist.h). */
#include "tools/cellsim_dist.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cellstate/rng.h"

/* A finite number >= 0 spanning the whole of text[0..len). */
static int number(const char *text, size_t len, double *out)
{
    char buf[64];
    if (len == 0 || len >= sizeof buf)
        return CS_EINVAL;
    memcpy(buf, text, len);
    buf[len] = '\0';
    char *end;
    errno = 0;
    double x = strtod(buf, &end);
    if (errno || end == buf || *end != '\0' || !isfinite(x) || x < 0)
        return CS_EINVAL;
    *out = x;
    return CS_OK;
}

static int parse_emp(const char *what, const char *text, const char *list, sim_dist *d,
                     cs_error *err)
{
    d->kind = SIM_DIST_EMP;
    d->n = 0;
    const char *s = list;
    while (*s) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        const char *eq = memchr(s, '=', len);
        if (eq == NULL)
            return cs_errorf(err, CS_EINVAL, "%s: '%s': each point is QUANTILE=VALUE", what, text);
        if (d->n == SIM_DIST_POINTS)
            return cs_errorf(err, CS_EINVAL, "%s: '%s': at most %d points", what, text,
                             SIM_DIST_POINTS);
        double p, v;
        if (number(s, (size_t)(eq - s), &p) != CS_OK || p > 1 ||
            number(eq + 1, len - (size_t)(eq + 1 - s), &v) != CS_OK)
            return cs_errorf(err, CS_EINVAL,
                             "%s: '%s': '%.*s' is not a quantile in [0, 1] = a value >= 0", what,
                             text, (int)len, s);
        if (d->n > 0 && (p <= d->p[d->n - 1] || v < d->v[d->n - 1]))
            return cs_errorf(err, CS_EINVAL,
                             "%s: '%s': quantiles must ascend and values must not descend", what,
                             text);
        d->p[d->n] = p;
        d->v[d->n++] = v;
        s += len;
        if (*s == ',')
            s++;
    }
    if (d->n < 2 || d->p[0] != 0 || d->p[d->n - 1] != 1)
        return cs_errorf(err, CS_EINVAL, "%s: '%s': the table must run from quantile 0 to 1", what,
                         text);
    return CS_OK;
}

int sim_dist_parse(const char *what, const char *text, sim_dist *out, cs_error *err)
{
    sim_dist d = {0};
    double x;
    if (strncmp(text, "emp:", 4) == 0) {
        CS_TRY(parse_emp(what, text, text + 4, &d, err));
    } else if (strncmp(text, "exp:", 4) == 0) {
        if (number(text + 4, strlen(text + 4), &x) != CS_OK || x <= 0)
            return cs_errorf(err, CS_EINVAL, "%s: '%s': the mean must be a number > 0", what, text);
        d.kind = SIM_DIST_EXP;
        d.value = x;
    } else {
        const char *v = strncmp(text, "const:", 6) == 0 ? text + 6 : text;
        if (number(v, strlen(v), &x) != CS_OK)
            return cs_errorf(err, CS_EINVAL,
                             "%s: '%s' is not a distribution (a number >= 0, const:V, exp:MEAN or "
                             "emp:Q=V,...,1=V)",
                             what, text);
        d.kind = SIM_DIST_CONST;
        d.value = x;
    }
    *out = d;
    return CS_OK;
}

double sim_dist_draw(const sim_dist *d, uint64_t *rng)
{
    switch (d->kind) {
    case SIM_DIST_EXP:
        /* Inverse transform; 1 - u is in (0, 1], so the log is finite. */
        return -d->value * log(1.0 - cs_rng_unit(rng));
    case SIM_DIST_EMP: {
        double u = cs_rng_unit(rng);
        uint32_t i = 1;
        while (i < d->n - 1 && d->p[i] <= u)
            i++;
        double span = d->p[i] - d->p[i - 1];
        return d->v[i - 1] + (d->v[i] - d->v[i - 1]) * (u - d->p[i - 1]) / span;
    }
    default:
        return d->value;
    }
}

double sim_dist_mean(const sim_dist *d)
{
    if (d->kind != SIM_DIST_EMP)
        return d->value;
    /* Linear between points: each segment contributes its width times the
     * average of its ends. */
    double m = 0;
    for (uint32_t i = 1; i < d->n; i++)
        m += (d->p[i] - d->p[i - 1]) * (d->v[i] + d->v[i - 1]) / 2;
    return m;
}

void sim_dist_format(const sim_dist *d, char *out, size_t size)
{
    if (d->kind == SIM_DIST_CONST) {
        snprintf(out, size, "%g", d->value);
        return;
    }
    if (d->kind == SIM_DIST_EXP) {
        snprintf(out, size, "exp:%g", d->value);
        return;
    }
    size_t len = (size_t)snprintf(out, size, "emp:");
    for (uint32_t i = 0; i < d->n && len < size; i++)
        len += (size_t)snprintf(out + len, size - len, "%s%g=%g", i ? "," : "", d->p[i], d->v[i]);
}
