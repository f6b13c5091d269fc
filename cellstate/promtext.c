/* promtext.c — the text exposition format and atomic histograms (see
 * promtext.h). */
#include "cellstate/promtext.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cellstate/vec.h"

void cs_prom_init(cs_prom *p) { memset(p, 0, sizeof *p); }

void cs_prom_free(cs_prom *p)
{
    free(p->buf);
    cs_prom_init(p);
}

/* Room for `more` bytes and a NUL; false (and `failed`) when out of memory. */
static bool reserve(cs_prom *p, size_t more)
{
    if (p->failed)
        return false;
    char *b = cs_vec_grow(p->buf, &p->cap, p->len + more + 1, 1, 4096);
    if (b == NULL) {
        p->failed = true;
        return false;
    }
    p->buf = b;
    return true;
}

static void put(cs_prom *p, const char *s, size_t n)
{
    if (!reserve(p, n))
        return;
    memcpy(p->buf + p->len, s, n);
    p->len += n;
    p->buf[p->len] = '\0';
}

static void put_str(cs_prom *p, const char *s) { put(p, s, strlen(s)); }

static void putf(cs_prom *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(cs_prom *p, const char *fmt, ...)
{
    char b[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b, sizeof b, fmt, ap);
    va_end(ap);
    if (n > 0 && (size_t)n < sizeof b) /* numbers only: always fits */
        put(p, b, (size_t)n);
}

/* The length of the well-formed UTF-8 sequence at `s` (1 to 4), or 0 when
 * the bytes there are not one (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF). */
static size_t utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned lo = 0x80, hi = 0xBF; /* the range of the second byte */
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return n;
}

/* `s` with the escapes of the format: backslash and newline always, the
 * double quote inside a label value. A byte that is not part of valid
 * UTF-8 is written as U+FFFD: Prometheus refuses a whole scrape whose text
 * is not UTF-8, and a label value may come from a client (a machine's or a
 * scheduler's name). */
static void put_escaped(cs_prom *p, const char *s, bool quote)
{
    const char *run = s;
    for (;;) {
        const char *esc = *s == '\\' ? "\\\\" : *s == '\n' ? "\\n"
                          : quote && *s == '"' ? "\\\""
                                               : NULL;
        size_t n = esc == NULL && *s != '\0' ? utf8_len((const unsigned char *)s) : 0;
        if (n > 0) { /* a character written as it is */
            s += n;
            continue;
        }
        put(p, run, (size_t)(s - run));
        if (*s == '\0')
            return;
        put_str(p, esc != NULL ? esc : "\xEF\xBF\xBD");
        run = ++s;
    }
}

void cs_prom_family(cs_prom *p, const char *name, cs_prom_type type, const char *help)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    put_str(p, "# HELP ");
    put_str(p, name);
    put_str(p, " ");
    put_escaped(p, help, false);
    put_str(p, "\n# TYPE ");
    put_str(p, name);
    put_str(p, " ");
    put_str(p, types[type]);
    put_str(p, "\n");
}

/* `name{a="x",b="y"` plus `le="bound"` when `le` is not NULL, and the
 * closing brace; nothing but the name without labels. */
static void put_series(cs_prom *p, const char *name, const char *suffix,
                       const cs_prom_label *labels, size_t n, const char *le)
{
    put_str(p, name);
    put_str(p, suffix);
    if (n == 0 && le == NULL)
        return;
    put_str(p, "{");
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            put_str(p, ",");
        put_str(p, labels[i].name);
        put_str(p, "=\"");
        put_escaped(p, labels[i].value, true);
        put_str(p, "\"");
    }
    if (le != NULL) {
        put_str(p, n > 0 ? ",le=\"" : "le=\"");
        put_str(p, le);
        put_str(p, "\"");
    }
    put_str(p, "}");
}

/* The shortest of %.15g .. %.17g that reads back as `v` (0.1 stays "0.1",
 * not 0.10000000000000001); the format's names for the infinities and NaN. */
static void format_f64(char *b, size_t size, double v)
{
    if (isnan(v)) {
        snprintf(b, size, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(b, size, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(b, size, "%.*g", prec, v);
        if (strtod(b, NULL) == v)
            return;
    }
}

void cs_prom_u64(cs_prom *p, const char *name, const cs_prom_label *labels, size_t n, uint64_t v)
{
    put_series(p, name, "", labels, n, NULL);
    putf(p, " %" PRIu64 "\n", v);
}

void cs_prom_f64(cs_prom *p, const char *name, const cs_prom_label *labels, size_t n, double v)
{
    char b[40];
    format_f64(b, sizeof b, v);
    put_series(p, name, "", labels, n, NULL);
    put_str(p, " ");
    put_str(p, b);
    put_str(p, "\n");
}

/* ---- histograms ---------------------------------------------------------------- */

int cs_prom_hist_init(cs_prom_hist *h, const uint64_t *bounds, size_t nb, double divisor,
                      cs_error *err)
{
    if (nb == 0 || nb > CS_PROM_BUCKETS_MAX)
        return cs_errorf(err, CS_EINVAL, "histogram: %zu buckets (1 to %d)", nb,
                         CS_PROM_BUCKETS_MAX);
    if (!(divisor > 0))
        return cs_errorf(err, CS_EINVAL, "histogram: the divisor must be above 0");
    for (size_t i = 1; i < nb; i++)
        if (bounds[i] <= bounds[i - 1])
            return cs_errorf(err, CS_EINVAL, "histogram: bound %zu is not above bound %zu", i,
                             i - 1);
    memset(h, 0, sizeof *h);
    h->bounds = bounds;
    h->nb = nb;
    h->divisor = divisor;
    return CS_OK;
}

void cs_prom_hist_observe(cs_prom_hist *h, uint64_t v)
{
    /* A linear search: at most CS_PROM_BUCKETS_MAX compares, and the small
     * values that are most of the observations stop early. */
    size_t i = 0;
    while (i < h->nb && v > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum, v, memory_order_relaxed);
}

void cs_prom_hist_write(cs_prom *p, const char *name, const cs_prom_label *labels, size_t n,
                        const cs_prom_hist *h)
{
    uint64_t cum = 0;
    char le[40];
    for (size_t i = 0; i <= h->nb; i++) {
        cum += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        if (i < h->nb)
            format_f64(le, sizeof le, (double)h->bounds[i] / h->divisor);
        else
            snprintf(le, sizeof le, "+Inf");
        put_series(p, name, "_bucket", labels, n, le);
        putf(p, " %" PRIu64 "\n", cum);
    }
    char sum[40];
    format_f64(sum, sizeof sum,
               (double)atomic_load_explicit(&h->sum, memory_order_relaxed) / h->divisor);
    put_series(p, name, "_sum", labels, n, NULL);
    put_str(p, " ");
    put_str(p, sum);
    put_str(p, "\n");
    put_series(p, name, "_count", labels, n, NULL);
    putf(p, " %" PRIu64 "\n", cum);
}

int cs_prom_finish(cs_prom *p, char **out, size_t *len, cs_error *err)
{
    if (p->failed || !reserve(p, 0)) {
        cs_prom_free(p);
        return cs_errorf(err, CS_ENOMEM, "metrics: out of memory");
    }
    p->buf[p->len] = '\0'; /* an empty text has had no put() to end it */
    *out = p->buf;
    *len = p->len;
    cs_prom_init(p);
    return CS_OK;
}
