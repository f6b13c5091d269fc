/* sim.c — simulated machines whose tasks are timers (see sim.h). */
#include "agent/sim.h"

#include "agent/health.h"
#include "cellstate/rng.h"
#include "proto/servers.h"

#include <errno.h>
#include <nng/protocol/reqrep0/req.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One simulated machine's backend: the random stream that draws run
 * times. The loop calls the backend under the machine's lock, so the
 * stream needs no lock of its own. */
typedef struct sim_be {
    uint64_t rng;
    uint32_t lo, hi;
} sim_be;

struct ag_sim {
    nng_socket sock;
    bool sock_open;
    cs_clock *clock; /* every machine's pauses: one thread, not one nng deadline each */
    uint32_t n;
    sim_be *be;
    ag_machine **m;
};

/* Simulated health checks: healthy from the start, so that schedulers
 * doing rolling updates see healthy tasks; or, with CELL_SIM_UNHEALTHY=1 in
 * the job's env, unhealthy from the start and condemned when the first of
 * its checks that kills would have failed max_failures times in a row
 * (max_failures x interval), with the reason a real check would give. */
static void sim_health(ag_task *t, const ag_assign *a, int64_t now)
{
    bool sick = false;
    for (uint32_t i = 0; i < a->opts.nenv; i++)
        sick = sick || (strcmp(a->opts.env[i].key, "CELL_SIM_UNHEALTHY") == 0 &&
                        strcmp(a->opts.env[i].value, "1") == 0);
    t->health = sick ? AG_HEALTH_UNHEALTHY : AG_HEALTH_HEALTHY;
    if (!sick)
        return;
    int64_t after = 0;
    uint32_t which = 0;
    for (uint32_t i = 0; i < a->opts.nhealth; i++) {
        const cs_health *c = &a->opts.health[i];
        int64_t d = (int64_t)c->max_failures * c->interval_ms;
        if (c->max_failures > 0 && (after == 0 || d < after)) {
            after = d;
            which = i;
        }
    }
    if (after == 0)
        return; /* no check kills (max_failures 0): unhealthy for ever */
    const cs_health *c = &a->opts.health[which];
    char desc[AG_REASON_MAX];
    ag_health_describe(c, which + 1, a->ports, a->nports, desc, sizeof desc);
    ag_health_kill_reason(desc, c->max_failures, "simulated failure (CELL_SIM_UNHEALTHY=1)",
                          t->health_reason, sizeof t->health_reason);
    t->sick_at = now + after;
}

static void sim_start(void *ctx, ag_task *t, const ag_assign *a, int64_t now)
{
    sim_be *b = ctx;
    if (a->bad != NULL) {
        t->phase = AG_ENDED;
        t->exit_code = -1;
        snprintf(t->reason, sizeof t->reason, "cannot start: %s", a->bad);
        return;
    }
    uint64_t d = a->opts.duration_ms;
    if (d == 0)
        d = b->lo + cs_rng_next(&b->rng) % ((uint64_t)b->hi - b->lo + 1);
    t->started = true;
    t->phase = AG_RUNNING;
    t->end_at = now + (int64_t)d;
    t->wake_at = t->end_at;
    if (a->opts.nhealth > 0)
        sim_health(t, a, now);
    if (t->sick_at != 0 && t->sick_at < t->wake_at)
        t->wake_at = t->sick_at;
}

static void sim_refresh(void *ctx, ag_task *t, int64_t now)
{
    if (t->sick_at != 0 && now >= t->sick_at && t->sick_at <= t->end_at) {
        t->health_kill = true; /* the loop kills it, and sim_signal ends it */
        return;
    }
    if (now < t->end_at)
        return;
    t->phase = AG_ENDED;
    t->ok = true;
    t->exit_code = 0;
    t->wake_at = 0;
}

static bool sim_signal(void *ctx, ag_task *t, int sig)
{
    /* A simulated process dies at once, whatever the signal. */
    t->phase = AG_ENDED;
    t->ok = false;
    t->exit_code = 128 + sig;
    snprintf(t->reason, sizeof t->reason, "killed by signal %d", sig);
    return true;
}

static void sim_forget(void *ctx, ag_task *t) {}

int ag_sim_parse_duration(const char *text, uint32_t *lo, uint32_t *hi, cs_error *err)
{
    char *end;
    errno = 0;
    unsigned long a = strtoul(text, &end, 10), b = a;
    if (end != text && *end == '-' && end[1] >= '0' && end[1] <= '9')
        b = strtoul(end + 1, &end, 10);
    if (end == text || *end != '\0' || errno != 0 || text[0] == '-' || a > b ||
        b > UINT32_MAX / 2)
        return cs_errorf(err, CS_EINVAL, "duration '%s' is not MS or LO-HI (milliseconds)", text);
    *lo = (uint32_t)a;
    *hi = (uint32_t)b;
    return CS_OK;
}

int ag_sim_open(const char *url, const ag_sim_opts *o, ag_sim **out, cs_error *err)
{
    if (o->machines == 0 || o->machines > 1000000)
        return cs_errorf(err, CS_EINVAL, "--simulate wants 1 to 1000000 machines");
    if (strlen(o->prefix) + 7 > CS_NAME_MAX)
        return cs_errorf(err, CS_EINVAL, "--sim-prefix is too long");
    ag_sim *s = calloc(1, sizeof *s);
    if (s == NULL)
        return cs_errorf(err, CS_ENOMEM, "simulator: out of memory");
    int rc, rv;
    s->be = calloc(o->machines, sizeof *s->be);
    s->m = calloc(o->machines, sizeof *s->m);
    if (s->be == NULL || s->m == NULL) {
        rc = cs_errorf(err, CS_ENOMEM, "simulator: out of memory");
        goto fail;
    }
    if ((rv = nng_req0_open(&s->sock)) != 0) {
        rc = cs_errorf(err, CS_EIO, "socket: %s", nng_strerror(rv));
        goto fail;
    }
    s->sock_open = true;
    if ((rc = cs_clock_new(&s->clock, err)) != CS_OK)
        goto fail;
    nng_socket_set_ms(s->sock, NNG_OPT_RECONNMINT, 20);
    nng_socket_set_ms(s->sock, NNG_OPT_RECONNMAXT, 1000);
    nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, 0);
    cs_servers servers;
    if ((rc = cs_servers_parse(url, &servers, err)) != CS_OK ||
        (rc = cs_servers_dial(s->sock, &servers, o->tls, err)) != CS_OK)
        goto fail;
    for (uint32_t i = 0; i < o->machines; i++) {
        char name[CS_NAME_MAX + 1];
        snprintf(name, sizeof name, "%s%05u", o->prefix, i);
        ag_config c = o->machine;
        c.name = name;
        /* One machine tells its story as a sample; the rest keep quiet. */
        c.quiet = i != 0;
        s->be[i] = (sim_be){o->seed ^ (0x9E3779B97F4A7C15ull * (i + 1)), o->dur_lo_ms,
                            o->dur_hi_ms};
        ag_backend be = {&s->be[i], sim_start, sim_refresh, sim_signal, sim_forget};
        if ((rc = ag_machine_new(s->sock, s->clock, &c, &be, &s->m[i], err)) != CS_OK)
            goto fail;
        s->n = i + 1;
    }
    *out = s;
    return CS_OK;
fail:
    ag_sim_close(s);
    return rc;
}

void ag_sim_start(ag_sim *s)
{
    for (uint32_t i = 0; i < s->n; i++)
        ag_machine_start(s->m[i]);
}

void ag_sim_close(ag_sim *s)
{
    if (s == NULL)
        return;
    for (uint32_t i = 0; i < s->n; i++)
        ag_machine_stop(s->m[i]);
    for (uint32_t i = 0; i < s->n; i++)
        ag_machine_free(s->m[i]);
    cs_clock_free(s->clock);
    if (s->sock_open)
        nng_close(s->sock);
    free(s->m);
    free(s->be);
    free(s);
}

void ag_sim_counts(ag_sim *s, uint32_t *registered, ag_counts *total)
{
    memset(total, 0, sizeof *total);
    *registered = 0;
    for (uint32_t i = 0; i < s->n; i++) {
        ag_counts c;
        ag_machine_counts(s->m[i], &c);
        *registered += c.registered;
        total->running += c.running;
        total->started += c.started;
        total->reported += c.reported;
    }
}
