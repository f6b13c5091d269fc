/* cellsim_coro.h — a scheduler's loop as a coroutine on the kernel's thread.
 *
 * Why. cellsim runs the real scheduler loop, which is written as a thread
 * that blocks in its port (sched.h): it sleeps through the port for its
 * decision time and the kernel wakes it at its next event. Only one party
 * ever runs at a time, so the loop needs a stack of its own, not a thread
 * of its own. With a thread each, every hand-over of the baton was a
 * futex wake on one core and a sleep on the other: about 100,000 a
 * simulated day, 15% of a run's time in the kernel's scheduler and in
 * the wait for the other core to wake (docs/benchmarks.md, "cellsim's
 * speed"). A coroutine switch is a swapcontext on the same core.
 *
 * The order of everything is the kernel's, as it was with the baton: the
 * kernel resumes a coroutine, which runs until it yields (or returns),
 * and the kernel goes on. Nothing here decides anything.
 *
 * Sanitizers. AddressSanitizer and ThreadSanitizer are told of each
 * switch (their fiber interfaces), so that `make test` checks the loop on
 * its coroutine stack as it did on a thread.
 *
 * Threads: a coroutine is resumed only from the thread that created it;
 * the runs of `cellsim sweep` each have their own kernel thread and their
 * own coroutines.
 */
#ifndef CELLSIM_CORO_H
#define CELLSIM_CORO_H

#include <stdbool.h>
#include <stddef.h>

#include "cellstate/error.h"

typedef struct sim_coro sim_coro;

/* A coroutine that will run fn(arg) on a stack of its own (`stack` bytes,
 * reserved lazily, with a guard page below it) when first resumed. On
 * success *out is the caller's: sim_coro_free. CS_ENOMEM. `arg` is
 * borrowed for the coroutine's life. */
int sim_coro_new(void (*fn)(sim_coro *co, void *arg), void *arg, size_t stack, sim_coro **out,
                 cs_error *err);

/* Kernel side: run `co` until it yields or its function returns. Not
 * after it returned (sim_coro_done). */
void sim_coro_resume(sim_coro *co);

/* Coroutine side (inside fn): hand control back to the resumer; returns
 * when the coroutine is next resumed. */
void sim_coro_yield(sim_coro *co);

/* Whether fn has returned. */
bool sim_coro_done(const sim_coro *co);

/* Free `co` (NULL is fine): its function must have returned, or never
 * have started. */
void sim_coro_free(sim_coro *co);

#endif
