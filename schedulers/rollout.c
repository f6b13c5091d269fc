/* rollout.c — rolling updates of service jobs (see rollout.h). */
#include "schedulers/rollout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cellstate/jobopts.h"

/* ceil(n x pm / 1000) without floating point. */
static uint32_t ceil_pm(uint32_t n, uint32_t pm)
{
    return (uint32_t)(((uint64_t)n * pm + CS_PERMILLE - 1) / CS_PERMILLE);
}

static bool healthy(const cs_rollout_in *in, const cs_rollout_slot *s)
{
    /* Without checks the agent reports no health: running is serving. */
    return s->state == CS_TASK_RUNNING && (!in->checks || s->health == CS_TASK_HEALTH_HEALTHY);
}

int cs_rollout_decide(const cs_rollout_in *in, uint32_t *restart, cs_rollout_step *out,
                      cs_error *err)
{
    if (in->min_health_pm > CS_PERMILLE || in->max_over_pm > CS_PERMILLE)
        return cs_errorf(err, CS_EINVAL,
                         "rollout: minimum health %u and maximum over-capacity %u permille: "
                         "each must be at most %u",
                         in->min_health_pm, in->max_over_pm, CS_PERMILLE);
    uint64_t total = (uint64_t)in->count + in->surge;
    if (total > 0 && (in->slots == NULL || restart == NULL))
        return cs_errorf(err, CS_EINVAL, "rollout: %llu slots but no slots or restart storage",
                         (unsigned long long)total);
    memset(out, 0, sizeof *out);
    out->restart = restart;
    out->surge = in->surge;
    out->min_healthy = ceil_pm(in->count, in->min_health_pm);
    out->max_cap = ceil_pm(in->count, CS_PERMILLE + in->max_over_pm);
    uint32_t max_surge = out->max_cap - in->count;

    uint32_t healthy_low = 0, old_healthy = 0;
    for (uint64_t i = 0; i < total; i++) {
        const cs_rollout_slot *s = &in->slots[i];
        bool h = healthy(in, s);
        out->healthy += h;
        if (i >= in->count)
            continue;
        healthy_low += h;
        out->old += s->old;
        out->updated += cs_task_state_placed(s->state) && !s->old;
        old_healthy += s->old && h;
    }
    out->active = out->old > 0 || in->surge > 0;
    if (!out->active)
        return CS_OK;

    /* Options changed under a rollout (a lower maximum over-capacity):
     * the surge shrinks first, and what its slots held no longer counts. */
    uint32_t left = out->healthy;
    if (out->surge > max_surge) {
        out->surge = max_surge;
        for (uint64_t i = (uint64_t)in->count + max_surge; i < total; i++)
            left -= healthy(in, &in->slots[i]);
    }

    /* 1: old tasks that serve nobody go first: replacing them costs no
     * healthy task. 2: healthy old ones while the minimum holds. */
    for (uint32_t i = 0; i < in->count; i++)
        if (in->slots[i].old && !healthy(in, &in->slots[i]))
            restart[out->nrestart++] = i;
    uint32_t killed_healthy = 0;
    for (uint32_t i = 0; i < in->count && left > out->min_healthy; i++)
        if (in->slots[i].old && healthy(in, &in->slots[i])) {
            restart[out->nrestart++] = i;
            left--;
            killed_healthy++;
        }

    /* 3: healthy old tasks wait for room that only surge tasks can give. */
    if (killed_healthy == 0 && old_healthy > 0) {
        uint32_t want = out->old < max_surge ? out->old : max_surge;
        if (want > out->surge)
            out->surge = want;
        else if (max_surge == 0 && out->min_healthy == in->count && left >= out->min_healthy) {
            /* Marathon's edge: no surge allowed and every task needed.
             * Every task is healthy now (left >= N): replace one anyway. */
            for (uint32_t i = 0; i < in->count; i++)
                if (in->slots[i].old && healthy(in, &in->slots[i])) {
                    restart[out->nrestart++] = i;
                    out->below_min = true;
                    break;
                }
        }
    }

    /* 4: every slot < N runs the new version and enough of them serve. */
    if (out->old == 0 && healthy_low >= out->min_healthy)
        out->surge = 0;
    return CS_OK;
}

#define NOTE_PREFIX "rolling update: "

int cs_rollout_note(const cs_rollout_step *st, char *buf, size_t size)
{
    if (!st->active)
        return snprintf(buf, size, "%s", "");
    return snprintf(buf, size,
                    NOTE_PREFIX "%u/%u updated, %u healthy (min %u), surge %u%s",
                    st->updated, st->updated + st->old, st->healthy, st->min_healthy, st->surge,
                    st->below_min ? ", one task below the minimum (no over-capacity allowed)"
                                  : "");
}

bool cs_rollout_is_note(const char *note)
{
    return note != NULL && strncmp(note, NOTE_PREFIX, strlen(NOTE_PREFIX)) == 0;
}

void cs_rollout_free(cs_rollout *r)
{
    free(r->slots);
    free(r->restart);
    memset(r, 0, sizeof *r);
}

static int reserve(cs_rollout *r, size_t n, cs_error *err)
{
    if (n <= r->cap)
        return CS_OK;
    size_t cap = r->cap ? r->cap : 16;
    while (cap < n)
        cap *= 2;
    cs_rollout_slot *s = realloc(r->slots, cap * sizeof *s);
    if (s == NULL)
        return cs_errorf(err, CS_ENOMEM, "rollout: out of memory");
    r->slots = s;
    uint32_t *x = realloc(r->restart, cap * sizeof *x);
    if (x == NULL)
        return cs_errorf(err, CS_ENOMEM, "rollout: out of memory");
    r->restart = x;
    r->cap = cap;
    return CS_OK;
}

int cs_rollout_job(const cs_copy *c, const cs_cjob *j, cs_rollout *r, cs_error *err)
{
    memset(&r->step, 0, sizeof r->step);
    r->step.restart = r->restart;
    if (j->job.state != CS_JOB_ACTIVE || j->job.kind != CS_JOB_SERVICE || j->bad != NULL)
        return CS_OK;
    size_t total = (size_t)j->job.count + j->job.surge;
    int rc = reserve(r, total, err);
    if (rc != CS_OK)
        return rc;
    for (size_t i = 0; i < total; i++) {
        cs_rollout_slot *s = &r->slots[i];
        uint32_t ts = i < j->ntaskidx ? j->tasks[i] : CS_NONE;
        if (ts == CS_NONE) {
            *s = (cs_rollout_slot){.state = CS_TASK_STATE_COUNT};
            continue;
        }
        const cs_ctask *t = cs_copy_task_at(c, ts);
        s->state = t->state;
        s->health = t->health;
        /* A task on a draining machine must move: it is replaced as an old
         * version is, within the same bounds, so that the job keeps its
         * minimum healthy while it leaves (cellctl drain). */
        s->old = cs_task_state_placed(t->state) &&
                 (t->spec != j->job.spec_hash ||
                  (t->machine != CS_NONE &&
                   cs_copy_machine_at(c, t->machine)->state == CS_CMACHINE_EVACUATING));
    }
    cs_rollout_in in = {
        .count = j->job.count,
        .surge = j->job.surge,
        .min_health_pm = j->opts.min_health_pm,
        /* A global job's slots are pinned one per machine: no surge. */
        .max_over_pm = j->opts.global ? 0 : j->opts.max_over_pm,
        .checks = j->opts.nhealth > 0,
        .slots = r->slots,
    };
    return cs_rollout_decide(&in, r->restart, &r->step, err);
}
