/* rng.h — the one seeded random generator: splitmix64.
 *
 * Randomness in cellsched only breaks ties and samples (the placer's order
 * of equal machines, the simulated agent's run times) or drives property
 * tests with fixed seeds; none of it is security. What matters is that a
 * seed gives the same sequence on every machine and every run, so that a
 * placement, a simulation or a failing test can be replayed. splitmix64
 * (Steele, Lea and Flood, "Fast splittable pseudorandom number
 * generators", OOPSLA 2014) is eight bytes of state, any seed (0 too) is
 * good, and it passes BigCrush. The state is the caller's: no global
 * generator, so two schedulers or two tests never share a sequence.
 */
#ifndef CS_RNG_H
#define CS_RNG_H

#include <stdint.h>

/* The next 64 random bits; advances *state. */
static inline uint64_t cs_rng_next(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* A number in [0, n) (0 when n is 0), by multiplying the top 32 bits
 * (Lemire's reduction: no division, bias below 2^-32 * n). */
static inline uint32_t cs_rng_below(uint64_t *state, uint32_t n)
{
    return (uint32_t)(((cs_rng_next(state) >> 32) * (uint64_t)n) >> 32);
}

/* A number in [0, 1), with 53 random bits. */
static inline double cs_rng_unit(uint64_t *state)
{
    return (double)(cs_rng_next(state) >> 11) * (1.0 / 9007199254740992.0);
}

#endif
