/* clock.h — one timer thread for many sleeping nng aios: an agent
 * process's machines (their control and poll loops), and cellstated's
 * parked polls.
 *
 * Why not nng_sleep_aio: nng 1.5 keeps every pending aio that has a
 * deadline (a sleep, or a send or receive with a timeout) in one list per
 * process and walks the whole list each time one of them falls due. A
 * simulator drives thousands of machines, each sleeping on its control
 * aio between looks at its tasks: sleeps fell due thousands of times a
 * second, each time walking ~5,000 aios, and that walk was 11% of all the
 * CPU of a C1M run (docs/benchmarks.md). cellstated parks each machine's
 * poll the same way (5,000 per replica in a replicated C1M run, 17% of a
 * follower's samples). Here a sleep is an entry of a binary heap
 * (O(log n) to arm, move or remove) fired by one thread, and its aio
 * carries no deadline that nng would track.
 *
 * Thread safety: every function may be called from any thread. Timer
 * callbacks run on the clock's thread without its lock held.
 */
#ifndef CS_CLOCK_H
#define CS_CLOCK_H

#include <stdbool.h>
#include <stdint.h>

#include <nng/nng.h>

#include "cellstate/error.h"

typedef struct cs_clock cs_clock;

/* A callback at a time (cs_clock_now_ms's clock). Embedded in its owner; the
 * fields are the clock's. */
typedef struct cs_timer {
    void (*fire)(struct cs_timer *t); /* on the clock's thread */
    int64_t due;
    uint32_t slot; /* heap position + 1; 0: not armed */
} cs_timer;

/* A clock and its thread. *out is the caller's: cs_clock_free, once no
 * timer is armed. */
int cs_clock_new(cs_clock **out, cs_error *err);
void cs_clock_free(cs_clock *c);

/* Room for k more timers armed at once (each user reserves what it may
 * arm, when it is made, so that arming never allocates nor fails). */
int cs_clock_reserve(cs_clock *c, uint32_t k, cs_error *err);
void cs_clock_unreserve(cs_clock *c, uint32_t k);

/* Arm `t` to fire at `due`, or move it there if it is armed. Its owner
 * reserved room for it. */
void cs_clock_arm(cs_clock *c, cs_timer *t, int64_t due);

/* Disarm `t`: true if it was armed (it will not fire). False if it was
 * not, or has just been taken to fire; then, with `wait`, returns only once
 * that firing has ended (never call it so from a timer callback, nor while
 * holding a lock the callback takes). */
bool cs_clock_disarm(cs_clock *c, cs_timer *t, bool wait);

/* An aio's sleep on a clock: the aio completes with 0 when the sleep ends,
 * or with nng's error when the aio is stopped or cancelled first. One
 * sleep per aio at a time. */
typedef struct cs_sleep {
    cs_timer timer;
    cs_clock *clock;
    nng_aio *aio;
} cs_sleep;

/* Monotonic milliseconds: the clock's time, which the loop and the
 * backends use too. */
int64_t cs_clock_now_ms(void);

/* Ready `s` to sleep on `c` (borrowed: it must outlive the sleeps). */
void cs_sleep_init(cs_sleep *s, cs_clock *c);

/* Begin sleeping `aio` until `due` (at once when due has passed). `aio`
 * must be idle. On an aio already stopped (nng_aio_stop) nothing happens
 * and its callback is not called, as with nng_sleep_aio in nng 1.5. */
void cs_sleep_begin(cs_sleep *s, nng_aio *aio, int64_t due);

/* Bring the sleep forward to `due` if it is still armed and due later.
 * Harmless when the aio is not sleeping (nothing is armed then): another
 * thread may call it at any time, unlike nng_aio_cancel, which would end
 * whatever operation the aio had moved on to. */
void cs_sleep_hasten(cs_sleep *s, int64_t due);

#endif
