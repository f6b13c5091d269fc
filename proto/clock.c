/* clock.c — a binary heap of timers and the thread that fires them (see
 * clock.h). */
#include "proto/clock.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct cs_clock {
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* the earliest due time changed, or stop */
    pthread_cond_t fired;   /* a firing ended (cs_clock_disarm's wait) */
    pthread_t thread;
    /* guarded by mu */
    cs_timer **heap;        /* min-heap on due */
    uint32_t n, cap;
    uint32_t reserved;      /* timers that may be armed at once: cap >= reserved */
    cs_timer *firing;       /* taken from the heap, its callback running */
    bool stop;
};

int64_t cs_clock_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the heap (lock held) -------------------------------------------------- */

static void heap_set(cs_clock *c, uint32_t i, cs_timer *t)
{
    c->heap[i] = t;
    t->slot = i + 1;
}

static void sift_up(cs_clock *c, uint32_t i)
{
    cs_timer *t = c->heap[i];
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (c->heap[p]->due <= t->due)
            break;
        heap_set(c, i, c->heap[p]);
        i = p;
    }
    heap_set(c, i, t);
}

static void sift_down(cs_clock *c, uint32_t i)
{
    cs_timer *t = c->heap[i];
    for (;;) {
        uint32_t l = 2 * i + 1, m = l;
        if (l >= c->n)
            break;
        if (l + 1 < c->n && c->heap[l + 1]->due < c->heap[l]->due)
            m = l + 1;
        if (t->due <= c->heap[m]->due)
            break;
        heap_set(c, i, c->heap[m]);
        i = m;
    }
    heap_set(c, i, t);
}

static void heap_remove(cs_clock *c, cs_timer *t)
{
    uint32_t i = t->slot - 1;
    cs_timer *last = c->heap[--c->n];
    t->slot = 0;
    if (i == c->n)
        return;
    heap_set(c, i, last);
    if (i > 0 && c->heap[(i - 1) / 2]->due > last->due)
        sift_up(c, i);
    else
        sift_down(c, i);
}

/* Arm or move t (lock held); true if it is now the earliest. Room was
 * reserved (cs_clock_reserve), so this never allocates. */
static bool arm_locked(cs_clock *c, cs_timer *t, int64_t due)
{
    if (t->slot != 0) {
        int64_t was = t->due;
        t->due = due;
        if (due < was)
            sift_up(c, t->slot - 1);
        else
            sift_down(c, t->slot - 1);
    } else {
        if (c->n >= c->reserved)
            abort(); /* armed more timers than were reserved: a bug */
        t->due = due;
        c->n++;
        heap_set(c, c->n - 1, t);
        sift_up(c, c->n - 1);
    }
    return c->heap[0] == t;
}

/* ---- the thread ------------------------------------------------------------------ */

static void *clock_main(void *arg)
{
    cs_clock *c = arg;
    pthread_mutex_lock(&c->mu);
    while (!c->stop) {
        if (c->n == 0) {
            pthread_cond_wait(&c->cv, &c->mu);
            continue;
        }
        int64_t now = cs_clock_now_ms();
        cs_timer *t = c->heap[0];
        if (t->due > now) {
            struct timespec ts;
            ts.tv_sec = (time_t)(t->due / 1000);
            ts.tv_nsec = (long)(t->due % 1000) * 1000000;
            pthread_cond_timedwait(&c->cv, &c->mu, &ts);
            continue;
        }
        heap_remove(c, t);
        c->firing = t;
        void (*fire)(cs_timer *) = t->fire;
        pthread_mutex_unlock(&c->mu);
        fire(t);
        pthread_mutex_lock(&c->mu);
        c->firing = NULL;
        pthread_cond_broadcast(&c->fired);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

int cs_clock_new(cs_clock **out, cs_error *err)
{
    cs_clock *c = calloc(1, sizeof *c);
    if (c == NULL)
        return cs_errorf(err, CS_ENOMEM, "clock: out of memory");
    int rc = CS_ENOMEM;
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        goto err_attr;
    /* The heap's times are CLOCK_MONOTONIC (cs_clock_now_ms): a change of the
     * wall clock must not stretch or cut a sleep. */
    if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&c->cv, &ca) != 0)
        goto err_cv;
    if (pthread_cond_init(&c->fired, NULL) != 0)
        goto err_fired;
    if (pthread_mutex_init(&c->mu, NULL) != 0)
        goto err_mu;
    int e = pthread_create(&c->thread, NULL, clock_main, c);
    if (e != 0) {
        rc = cs_errorf(err, CS_EIO, "clock: cannot start its thread: %s", strerror(e));
        goto err_thread;
    }
    pthread_condattr_destroy(&ca);
    *out = c;
    return CS_OK;
err_thread:
    pthread_mutex_destroy(&c->mu);
err_mu:
    pthread_cond_destroy(&c->fired);
err_fired:
    pthread_cond_destroy(&c->cv);
err_cv:
    pthread_condattr_destroy(&ca);
err_attr:
    free(c);
    if (rc == CS_ENOMEM)
        rc = cs_errorf(err, CS_ENOMEM, "clock: out of resources");
    return rc;
}

void cs_clock_free(cs_clock *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    c->stop = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    pthread_cond_destroy(&c->fired);
    free(c->heap);
    free(c);
}

int cs_clock_reserve(cs_clock *c, uint32_t k, cs_error *err)
{
    pthread_mutex_lock(&c->mu);
    int rc = CS_OK;
    uint32_t need = c->reserved + k;
    if (need < c->reserved) {
        rc = cs_errorf(err, CS_ENOMEM, "clock: too many timers");
    } else if (need > c->cap) {
        uint32_t cap = c->cap ? c->cap : 64;
        while (cap < need)
            cap = cap > UINT32_MAX / 2 ? need : 2 * cap;
        cs_timer **h = realloc(c->heap, (size_t)cap * sizeof *h);
        if (h == NULL)
            rc = cs_errorf(err, CS_ENOMEM, "clock: out of memory for %u timers", need);
        else {
            c->heap = h;
            c->cap = cap;
        }
    }
    if (rc == CS_OK)
        c->reserved = need;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void cs_clock_unreserve(cs_clock *c, uint32_t k)
{
    pthread_mutex_lock(&c->mu);
    c->reserved -= k < c->reserved ? k : c->reserved;
    pthread_mutex_unlock(&c->mu);
}

void cs_clock_arm(cs_clock *c, cs_timer *t, int64_t due)
{
    pthread_mutex_lock(&c->mu);
    if (arm_locked(c, t, due))
        pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

bool cs_clock_disarm(cs_clock *c, cs_timer *t, bool wait)
{
    pthread_mutex_lock(&c->mu);
    bool armed = t->slot != 0;
    if (armed)
        heap_remove(c, t);
    while (!armed && wait && c->firing == t)
        pthread_cond_wait(&c->fired, &c->mu);
    pthread_mutex_unlock(&c->mu);
    return armed;
}

/* ---- sleeps --------------------------------------------------------------------- */

static void sleep_fire(cs_timer *t)
{
    cs_sleep *s = (cs_sleep *)t; /* the timer is the sleep's first member */
    nng_aio_finish(s->aio, 0);
}

/* nng's cancellation (the aio stopped or cancelled): whoever takes the
 * timer off the heap, this or the clock's thread, finishes the aio, so it
 * is finished exactly once. */
static void sleep_cancel(nng_aio *aio, void *arg, int rv)
{
    cs_sleep *s = arg;
    if (cs_clock_disarm(s->clock, &s->timer, false))
        nng_aio_finish(aio, rv);
}

void cs_sleep_init(cs_sleep *s, cs_clock *c)
{
    memset(s, 0, sizeof *s);
    s->timer.fire = sleep_fire;
    s->clock = c;
}

void cs_sleep_begin(cs_sleep *s, nng_aio *aio, int64_t due)
{
    if (!nng_aio_begin(aio))
        return; /* stopped: nng 1.5 neither begins it nor calls back */
    s->aio = aio;
    cs_clock *c = s->clock;
    pthread_mutex_lock(&c->mu);
    /* The cancel routine goes in before the timer can fire, and under the
     * clock's lock, so that a cancellation between the two finds the timer
     * armed. nng calls no cancel routine from inside nng_aio_defer. */
    nng_aio_defer(aio, sleep_cancel, s);
    if (arm_locked(c, &s->timer, due))
        pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

void cs_sleep_hasten(cs_sleep *s, int64_t due)
{
    cs_clock *c = s->clock;
    pthread_mutex_lock(&c->mu);
    if (s->timer.slot != 0 && s->timer.due > due && arm_locked(c, &s->timer, due))
        pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}
