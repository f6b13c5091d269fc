/* test_clock.c — the agent's clock (proto/clock.h): its heap fires timers
 * in order of due time and never fires a disarmed one; sleeps end, are
 * cancelled by nng_aio_stop, and refuse a stopped aio; disarm can wait for
 * a firing to end.
 *
 * The heap is checked without depending on the machine's speed: a first
 * timer's callback holds the clock's thread while the test arms, moves and
 * disarms the rest, all due in the past; once released, the thread takes
 * them from the heap one by one, so they must fire sorted by due time.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cellstate/rng.h"
#include "proto/clock.h"

typedef struct latch {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool open;
} latch;

static void latch_init(latch *l)
{
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    l->open = false;
}

static void latch_wait(latch *l)
{
    pthread_mutex_lock(&l->mu);
    while (!l->open)
        pthread_cond_wait(&l->cv, &l->mu);
    pthread_mutex_unlock(&l->mu);
}

static void latch_open(latch *l)
{
    pthread_mutex_lock(&l->mu);
    l->open = true;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

/* A timer that notes when it fired, in the order of all firings. */
typedef struct rec_timer {
    cs_timer t; /* first: the callback gets &t */
    struct heap_run *run;
    int64_t due;
    bool armed; /* the test's model: armed and not disarmed since */
    int fired;
} rec_timer;

typedef struct heap_run {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    rec_timer **order;
    uint32_t nfired;
    latch hold;       /* the blocker's callback waits on it */
    latch blocking;   /* opened by the blocker once it holds the thread */
} heap_run;

static void rec_fire(cs_timer *t)
{
    rec_timer *r = (rec_timer *)t;
    heap_run *h = r->run;
    pthread_mutex_lock(&h->mu);
    r->fired++;
    h->order[h->nfired++] = r;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

/* Holds the clock's thread until the test opens `hold`. */
typedef struct blocker {
    cs_timer t;
    heap_run *run;
} blocker;

static void blocker_fire(cs_timer *t)
{
    heap_run *h = ((blocker *)t)->run;
    latch_open(&h->blocking);
    latch_wait(&h->hold);
}

#define NT 400

Test(clock, heap_fires_in_due_order_and_never_a_disarmed_timer)
{
    for (uint64_t seed = 1; seed <= 8; seed++) {
        cs_clock *c;
        cs_error err = {0};
        cr_assert_eq(cs_clock_new(&c, &err), CS_OK, "%s", err.msg);
        cr_assert_eq(cs_clock_reserve(c, NT + 1, &err), CS_OK, "%s", err.msg);
        heap_run h = {0};
        pthread_mutex_init(&h.mu, NULL);
        pthread_cond_init(&h.cv, NULL);
        latch_init(&h.hold);
        latch_init(&h.blocking);
        h.order = calloc(NT, sizeof *h.order);
        rec_timer *ts = calloc(NT, sizeof *ts);
        cr_assert(h.order && ts);
        blocker b = {.t = {.fire = blocker_fire}, .run = &h};
        cs_clock_arm(c, &b.t, 0);
        latch_wait(&h.blocking);

        /* Every due is in the past, whatever the clock reads (a machine
         * booted a second ago reads about 1000: dues may be negative), and
         * the test never waits for a time. Arm, move and disarm at random,
         * keeping the final state in `armed` and `due`. Nothing is asserted
         * while the blocker holds the clock's thread: a failed assertion
         * would leave this frame with the thread still waiting on `hold`,
         * so the first mismatch is kept and reported once it is released. */
        int64_t base = cs_clock_now_ms() - 5001;
        uint64_t s = seed * 0x9E3779B97F4A7C15ull;
        for (uint32_t i = 0; i < NT; i++) {
            ts[i].t.fire = rec_fire;
            ts[i].run = &h;
            ts[i].armed = false;
        }
        int bad_disarm = -1; /* the step at which disarm first disagreed */
        bool bad_said = false;
        for (uint32_t k = 0; k < 6 * NT; k++) {
            rec_timer *r = &ts[cs_rng_next(&s) % NT];
            if (cs_rng_next(&s) % 4 == 0) {
                bool armed = cs_clock_disarm(c, &r->t, false);
                if (armed != r->armed && bad_disarm < 0) {
                    bad_disarm = (int)k;
                    bad_said = armed;
                }
                r->armed = false;
            } else {
                r->due = base + (int64_t)(cs_rng_next(&s) % 5000); /* ties happen */
                r->armed = true;
                cs_clock_arm(c, &r->t, r->due);
            }
        }
        uint32_t expect = 0;
        for (uint32_t i = 0; i < NT; i++)
            expect += ts[i].armed;
        latch_open(&h.hold);
        pthread_mutex_lock(&h.mu);
        while (h.nfired < expect)
            pthread_cond_wait(&h.cv, &h.mu);
        pthread_mutex_unlock(&h.mu);
        /* Nothing more may fire: disarmed timers stay quiet. Freeing the
         * clock joins its thread, so a late firing would be counted. */
        cs_clock_free(c);
        cr_assert_lt(bad_disarm, 0, "seed %llu: disarm at step %d said %d", (unsigned long long)seed,
                     bad_disarm, bad_said);
        cr_assert_eq(h.nfired, expect, "seed %llu: %u fired, %u armed", (unsigned long long)seed,
                     h.nfired, expect);
        for (uint32_t i = 0; i < NT; i++)
            cr_assert_eq(ts[i].fired, ts[i].armed ? 1 : 0, "seed %llu: timer %u fired %d times",
                         (unsigned long long)seed, i, ts[i].fired);
        for (uint32_t i = 1; i < h.nfired; i++)
            cr_assert_leq(h.order[i - 1]->due, h.order[i]->due,
                          "seed %llu: firing %u (due %lld) after one due %lld",
                          (unsigned long long)seed, i, (long long)h.order[i]->due,
                          (long long)h.order[i - 1]->due);
        free(ts);
        free(h.order);
    }
}

/* ---- sleeps --------------------------------------------------------------------- */

typedef struct sleeper {
    atomic_int calls;
    atomic_int result;
    nng_aio *aio;
} sleeper;

static void sleeper_cb(void *arg)
{
    sleeper *s = arg;
    atomic_store(&s->result, nng_aio_result(s->aio));
    atomic_fetch_add(&s->calls, 1);
}

/* A clock with room for one sleep, and an aio to sleep on. */
static cs_clock *sleeper_new(sleeper *sl, cs_sleep *s)
{
    cs_clock *c;
    cs_error err = {0};
    cr_assert_eq(cs_clock_new(&c, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_clock_reserve(c, 1, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(nng_aio_alloc(&sl->aio, sleeper_cb, sl), 0);
    cs_sleep_init(s, c);
    return c;
}

Test(clock, sleep_ends_with_success)
{
    sleeper sl = {0};
    cs_sleep s;
    cs_clock *c = sleeper_new(&sl, &s);
    for (int round = 0; round < 3; round++) {
        int64_t due = cs_clock_now_ms() + 20;
        cs_sleep_begin(&s, sl.aio, due);
        nng_aio_wait(sl.aio);
        cr_assert_eq(atomic_load(&sl.calls), round + 1);
        cr_assert_eq(atomic_load(&sl.result), 0);
        cr_assert_geq(cs_clock_now_ms(), due, "the sleep ended before it was due");
    }
    nng_aio_free(sl.aio);
    cs_clock_free(c);
}

Test(clock, stopping_the_aio_cancels_a_long_sleep_and_refuses_new_ones)
{
    sleeper sl = {0};
    cs_sleep s;
    cs_clock *c = sleeper_new(&sl, &s);
    /* An hour: only the cancellation can end it within the test's time. */
    cs_sleep_begin(&s, sl.aio, cs_clock_now_ms() + 3600 * 1000);
    nng_aio_stop(sl.aio);
    cr_assert_eq(atomic_load(&sl.calls), 1);
    cr_assert_eq(atomic_load(&sl.result), NNG_ECANCELED);
    cr_assert_not(cs_clock_disarm(c, &s.timer, true), "the cancelled sleep is still armed");
    /* A stopped aio does not begin a sleep (nor call back, as nng's own
     * sleep): nothing is left armed that would finish a stopped aio. */
    cs_sleep_begin(&s, sl.aio, cs_clock_now_ms() + 3600 * 1000);
    cr_assert_not(cs_clock_disarm(c, &s.timer, false), "a stopped aio's sleep was armed");
    nng_aio_wait(sl.aio);
    cr_assert_eq(atomic_load(&sl.calls), 1);
    nng_aio_free(sl.aio);
    cs_clock_free(c);
}

Test(clock, hasten_brings_a_sleep_forward_and_leaves_an_idle_aio_alone)
{
    sleeper sl = {0};
    cs_sleep s;
    cs_clock *c = sleeper_new(&sl, &s);
    /* Hastening an aio that does not sleep arms nothing. */
    cs_sleep_hasten(&s, cs_clock_now_ms());
    cr_assert_not(cs_clock_disarm(c, &s.timer, false), "hasten armed an idle sleep");
    /* An hour's sleep brought forward to now ends with success. */
    cs_sleep_begin(&s, sl.aio, cs_clock_now_ms() + 3600 * 1000);
    cs_sleep_hasten(&s, cs_clock_now_ms() + 7200 * 1000); /* later: no change */
    cr_assert_lt(s.timer.due, cs_clock_now_ms() + 3601 * 1000, "hasten put the sleep off");
    cs_sleep_hasten(&s, cs_clock_now_ms());
    nng_aio_wait(sl.aio);
    cr_assert_eq(atomic_load(&sl.calls), 1);
    cr_assert_eq(atomic_load(&sl.result), 0);
    nng_aio_free(sl.aio);
    cs_clock_free(c);
}

/* ---- disarm's wait --------------------------------------------------------------- */

typedef struct slow_timer {
    cs_timer t;
    latch started, release;
    atomic_int done;
} slow_timer;

static void slow_fire(cs_timer *t)
{
    slow_timer *s = (slow_timer *)t;
    latch_open(&s->started);
    latch_wait(&s->release);
    atomic_store(&s->done, 1);
}

typedef struct disarmer {
    cs_clock *c;
    slow_timer *s;
    atomic_int returned, done_seen;
} disarmer;

static void *disarm_main(void *arg)
{
    disarmer *d = arg;
    bool armed = cs_clock_disarm(d->c, &d->s->t, true);
    atomic_store(&d->done_seen, atomic_load(&d->s->done));
    atomic_store(&d->returned, armed ? 2 : 1);
    return NULL;
}

Test(clock, disarm_waits_for_a_firing_to_end)
{
    cs_clock *c;
    cs_error err = {0};
    cr_assert_eq(cs_clock_new(&c, &err), CS_OK);
    cr_assert_eq(cs_clock_reserve(c, 1, &err), CS_OK);
    slow_timer s = {.t = {.fire = slow_fire}};
    latch_init(&s.started);
    latch_init(&s.release);
    cs_clock_arm(c, &s.t, 0);
    latch_wait(&s.started);
    disarmer d = {.c = c, .s = &s};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, disarm_main, &d), 0);
    /* While the firing is held, the disarm must not return: give a
     * disarm that does not wait every chance to show it (200 ms). */
    int64_t until = cs_clock_now_ms() + 200;
    while (atomic_load(&d.returned) == 0 && cs_clock_now_ms() < until) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    cr_assert_eq(atomic_load(&d.returned), 0, "disarm returned while the timer was firing");
    latch_open(&s.release);
    pthread_join(th, NULL);
    cr_assert_eq(atomic_load(&d.returned), 1, "disarm said the firing timer was armed");
    cr_assert_eq(atomic_load(&d.done_seen), 1, "disarm returned before the firing ended");
    cs_clock_free(c);
}

Test(clock, reserving_too_many_timers_is_an_error)
{
    cs_clock *c;
    cs_error err = {0};
    cr_assert_eq(cs_clock_new(&c, &err), CS_OK);
    cr_assert_eq(cs_clock_reserve(c, 10, &err), CS_OK);
    cr_assert_neq(cs_clock_reserve(c, UINT32_MAX, &err), CS_OK);
    cr_assert(strstr(err.msg, "timers") != NULL, "message: %s", err.msg);
    cs_clock_unreserve(c, 10);
    cs_clock_free(c);
}
