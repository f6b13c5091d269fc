/* backoff.c — restart back-off of service tasks (see backoff.h). */
#include "schedulers/backoff.h"
#include "cellstate/vec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t cs_backoff_delay_ms(const cs_jobopts *o, uint32_t n)
{
    /* In floating point: factor^(n-1) overflows any integer long before n
     * runs out, and the cap makes the rounding irrelevant. */
    double d = (double)o->backoff_ms * pow(o->backoff_factor_pm / (double)CS_PERMILLE,
                                           n > 0 ? (double)(n - 1) : 0.0);
    if (!(d < (double)o->max_delay_ms))
        return o->max_delay_ms;
    return (uint64_t)llround(d);
}

void cs_backoff_init(cs_backoff *b) { memset(b, 0, sizeof *b); }

void cs_backoff_free(cs_backoff *b)
{
    free(b->v);
    memset(b, 0, sizeof *b);
}

/* The index of `task`, or where it would go. */
static size_t lower(const cs_backoff *b, cs_id task)
{
    size_t lo = 0, hi = b->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (b->v[mid].task < task)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const cs_backoff_entry *cs_backoff_find(const cs_backoff *b, cs_id task)
{
    size_t i = lower(b, task);
    return i < b->n && b->v[i].task == task ? &b->v[i] : NULL;
}

static void drop(cs_backoff *b, size_t i)
{
    memmove(&b->v[i], &b->v[i + 1], (b->n - i - 1) * sizeof *b->v);
    b->n--;
}

int cs_backoff_ended(cs_backoff *b, cs_id task, uint32_t attempt, const cs_jobopts *o, int64_t now,
                     int64_t *not_before, uint32_t *ends)
{
    size_t i = lower(b, task);
    if (i == b->n || b->v[i].task != task) {
        cs_backoff_entry *v = cs_vec_grow(b->v, &b->cap, b->n + 1, sizeof *b->v, 16);
        if (v == NULL)
            return CS_ENOMEM;
        b->v = v;
        memmove(&b->v[i + 1], &b->v[i], (b->n - i) * sizeof *b->v);
        b->n++;
        b->v[i] = (cs_backoff_entry){task, 0, 0, 0, -1};
    }
    cs_backoff_entry *e = &b->v[i];
    if (e->ends == 0 || e->attempt != attempt) {
        /* A placement that stayed up long enough before it ended starts
         * the count again (cs_backoff_running drops those it sees). */
        if (e->running_since >= 0 && now - e->running_since >= CS_BACKOFF_RESET_MS)
            e->ends = 0;
        e->ends++;
        e->attempt = attempt;
        e->running_since = -1;
        e->not_before = now + (int64_t)cs_backoff_delay_ms(o, e->ends);
    }
    *not_before = e->not_before;
    *ends = e->ends;
    return CS_OK;
}

void cs_backoff_running(cs_backoff *b, cs_id task, uint32_t attempt, int64_t now)
{
    size_t i = lower(b, task);
    if (i == b->n || b->v[i].task != task)
        return;
    cs_backoff_entry *e = &b->v[i];
    if (attempt == e->attempt)
        return; /* the placement whose end is counted: a stale view */
    if (e->running_since < 0)
        e->running_since = now;
    else if (now - e->running_since >= CS_BACKOFF_RESET_MS)
        drop(b, i);
}

void cs_backoff_forget_job(cs_backoff *b, cs_id job)
{
    size_t i = lower(b, cs_task_id(job, 0)), j = i;
    while (j < b->n && cs_task_job(b->v[j].task) == job)
        j++;
    memmove(&b->v[i], &b->v[j], (b->n - j) * sizeof *b->v);
    b->n -= j - i;
}

#define NOTE_HEAD "back-off: next start at "

void cs_backoff_note(uint64_t start_wall_ms, uint32_t index, uint32_t ends, char *buf,
                     size_t size)
{
    time_t t = (time_t)(start_wall_ms / 1000);
    struct tm tm;
    char when[32] = "1970-01-01T00:00:00";
    if (gmtime_r(&t, &tm) != NULL)
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, size, NOTE_HEAD "%s.%03uZ (task %u ended %u time%s in a row)", when,
             (unsigned)(start_wall_ms % 1000), index, ends, ends == 1 ? "" : "s");
}

bool cs_backoff_note_parse(const char *note, uint64_t *start_wall_ms, const char **rest)
{
    size_t head = strlen(NOTE_HEAD);
    if (strncmp(note, NOTE_HEAD, head) != 0)
        return false;
    struct tm tm = {0};
    unsigned ms;
    int used = 0;
    if (sscanf(note + head, "%4d-%2d-%2dT%2d:%2d:%2d.%3uZ%n", &tm.tm_year, &tm.tm_mon,
               &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms, &used) != 7 ||
        used == 0 || ms > 999)
        return false;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    if (t < 0)
        return false;
    *start_wall_ms = (uint64_t)t * 1000 + ms;
    *rest = note + head + used;
    return true;
}
