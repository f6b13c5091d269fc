/* fitcheck.c — submit-time warnings (see fitcheck.h). */
#include "spec/fitcheck.h"
#include "cellstate/jobopts.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static void __attribute__((format(printf, 2, 3))) warn(cs_fit_warnings *w, const char *fmt, ...)
{
    if (w->n == CS_FIT_WARN_MAX) {
        w->more++;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->msg[w->n++], CS_FIT_WARN_LEN, fmt, ap);
    va_end(ap);
}

/* Whether a machine takes tasks: the checks look at these only. */
/* Up, and not cordoned or draining: a machine that may take a new task. */
static bool usable(const cs_machine *m)
{
    return m->state == CS_MACHINE_UP && m->admin == CS_ADMIN_ACTIVE;
}

/* ---- resources ------------------------------------------------------------ */

static int64_t res_at(const cs_res *r, int i) { return i == 0 ? r->cpu : i == 1 ? r->mem : r->disk; }

/* "cpu 2.5 cores", "mem 512 MiB"; without the resource's name when
 * `named` is false ("2.5 cores"). */
static void res_text(int i, int64_t v, bool named, char *buf, size_t size)
{
    static const char *const names[3] = {"cpu ", "mem ", "disk "};
    const char *name = named ? names[i] : "";
    if (i == 0)
        snprintf(buf, size, "%s%lld.%03lld %s", name, (long long)(v / 1000), (long long)(v % 1000),
                 v == 1000 ? "core" : "cores");
    else
        snprintf(buf, size, "%s%lld MiB", name, (long long)v);
    /* Trailing zeros of the cores say nothing: "2.500" -> "2.5", "2.000" -> "2". */
    if (i == 0) {
        char *dot = strchr(buf, '.'), *end = strstr(buf, " core");
        char *z = end;
        while (z > dot + 1 && z[-1] == '0')
            z--;
        if (z == dot + 1)
            z = dot;
        memmove(z, end, strlen(end) + 1);
    }
}

/* Each resource above every machine's capacity is named with the largest
 * there is; when each fits somewhere but no machine has them all, that is
 * said instead. */
static void check_resources(const cs_job *j, const cs_machine *ms, size_t n, cs_fit_warnings *w)
{
    int64_t largest[3] = {0, 0, 0};
    bool whole = false;
    for (size_t m = 0; m < n; m++) {
        if (!usable(&ms[m]))
            continue;
        bool all = true;
        for (int i = 0; i < 3; i++) {
            int64_t cap = res_at(&ms[m].capacity, i);
            if (cap > largest[i])
                largest[i] = cap;
            all &= cap >= res_at(&j->res, i);
        }
        whole |= all;
    }
    if (whole)
        return;
    bool named = false;
    for (int i = 0; i < 3; i++) {
        if (res_at(&j->res, i) <= largest[i])
            continue;
        char want[48], have[48];
        res_text(i, res_at(&j->res, i), true, want, sizeof want);
        res_text(i, largest[i], false, have, sizeof have);
        warn(w, "resources: %s per task is above every machine's capacity (the largest has %s)",
             want, have);
        named = true;
    }
    if (!named) {
        char a[48], b[48], c[48];
        res_text(0, j->res.cpu, true, a, sizeof a);
        res_text(1, j->res.mem, true, b, sizeof b);
        res_text(2, j->res.disk, true, c, sizeof c);
        warn(w, "resources: no machine has %s, %s and %s together", a, b, c);
    }
}

/* ---- constraints ------------------------------------------------------------ */

static const char *attr_of(const cs_machine *m, const char *key)
{
    for (uint32_t i = 0; i < m->nattrs; i++)
        if (strcmp(m->attrs[i].key, key) == 0)
            return m->attrs[i].value;
    return NULL;
}

/* Operators a machine without the attribute fails (Marathon's rule; `!=`
 * and UNLIKE accept it). */
static bool needs_attr(const char *op)
{
    return strcmp(op, "!=") != 0 && strcmp(op, "UNLIKE") != 0;
}

static bool is_equality(const char *op) { return strcmp(op, "==") == 0 || strcmp(op, "IS") == 0; }

/* A hard constraint on an attribute no machine has, an equality no
 * machine meets, a hostname no machine has. Job affinities name other jobs,
 * which come and go: not checked. */
static void check_constraints(const cs_job *j, const cs_machine *ms, size_t n, cs_fit_warnings *w)
{
    for (uint32_t c = 0; c < j->nconstraints; c++) {
        const cs_constraint *k = &j->constraints[c];
        if (k->soft || strcmp(k->field, "job") == 0 || !needs_attr(k->op))
            continue;
        bool hostname = strcmp(k->field, "hostname") == 0;
        if (hostname && !is_equality(k->op))
            continue; /* every machine has a name */
        bool has_key = hostname, meets = false;
        for (size_t m = 0; m < n && !meets; m++) {
            if (!usable(&ms[m]))
                continue;
            const char *v = hostname ? ms[m].name : attr_of(&ms[m], k->field);
            has_key |= v != NULL;
            meets = v != NULL && (!is_equality(k->op) || strcmp(v, k->value) == 0);
        }
        if (meets)
            continue;
        if (!has_key)
            warn(w, "constraints[%u] (%s %s%s%s): no machine has attribute '%s'", c, k->field,
                 k->op, k->value[0] ? " " : "", k->value, k->field);
        else if (hostname)
            warn(w, "constraints[%u] (%s %s %s): no machine is named '%s'", c, k->field, k->op,
                 k->value, k->value);
        else
            warn(w, "constraints[%u] (%s %s %s): no machine has %s = %s", c, k->field, k->op,
                 k->value, k->field, k->value);
    }
}

/* The first NoSchedule or NoExecute taint of `m` that none of `o`'s
 * tolerations tolerates for a new placement (the placer's rule: a NoExecute
 * toleration with tolerationSeconds lets no new task on), or NULL. */
static const cs_taint *untolerated(const cs_machine *m, const cs_jobopts *o)
{
    for (uint32_t t = 0; t < m->ntaints; t++) {
        const cs_taint *k = &m->taints[t];
        if (k->effect == CS_TAINT_PREFER_NO_SCHEDULE)
            continue;
        bool ok = false;
        for (uint32_t i = 0; i < o->ntolerations && !ok; i++)
            ok = cs_toleration_matches(&o->tolerations[i], k->key, k->value, k->effect) &&
                 !(k->effect == CS_TAINT_NO_EXECUTE && o->tolerations[i].has_seconds);
        if (!ok)
            return k;
    }
    return NULL;
}

/* Every usable machine carries a taint the job does not tolerate. Options
 * that cannot be read are the submit's own error to report, not this
 * check's: it says nothing then. */
static void check_taints(const cs_job *j, const cs_machine *ms, size_t n, cs_fit_warnings *w)
{
    cs_arena a;
    cs_arena_init(&a);
    cs_jobopts o;
    if (cs_job_opts(j, &a, &o, NULL) != CS_OK)
        goto out;
    const cs_machine *first = NULL;
    const cs_taint *bar = NULL;
    for (size_t m = 0; m < n; m++) {
        if (!usable(&ms[m]))
            continue;
        const cs_taint *t = untolerated(&ms[m], &o);
        if (t == NULL)
            goto out; /* this one could take it */
        if (first == NULL) {
            first = &ms[m];
            bar = t;
        }
    }
    if (first != NULL)
        warn(w, "tolerations: every machine up has a taint the job does not tolerate (%s: %s%s%s:%s)",
             first->name, bar->key, bar->value[0] ? "=" : "", bar->value,
             cs_taint_effect_name(bar->effect));
out:
    cs_arena_free(&a);
}

/* ---- the checks ---------------------------------------------------------------- */

/* One function per kind of obstacle, each over the machines that are up and
 * take placements (usable). */
typedef void (*fit_fn)(const cs_job *j, const cs_machine *ms, size_t n, cs_fit_warnings *w);
static const fit_fn checks[] = {check_resources, check_constraints, check_taints};

void cs_fit_check(const cs_job *j, const cs_machine *ms, size_t n, cs_fit_warnings *out)
{
    memset(out, 0, sizeof *out);
    size_t up = 0;
    for (size_t i = 0; i < n; i++)
        up += usable(&ms[i]);
    if (n == 0) {
        warn(out, "machines: the cell has no machine yet");
        return;
    }
    if (up == 0) {
        warn(out, "machines: none of the %zu machines takes new tasks (up, not cordoned)", n);
        return;
    }
    for (size_t c = 0; c < sizeof checks / sizeof checks[0]; c++)
        checks[c](j, ms, n, out);
}
