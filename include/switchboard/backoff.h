/*
 * backoff.h - retry delays (exponential backoff with full jitter) and the project's small
 * deterministic PRNG.
 *
 * Every piece of router logic that needs randomness (backoff jitter, p2c picks, exploration)
 * takes a caller-provided struct rng, so tests seed it and get the same sequence every run.
 * The generator is splitmix64 (Steele, Lea, Flood 2014): 64-bit state, any seed (0 too) is
 * fine, passes BigCrush, not cryptographic.
 *
 * Threads: pure functions over caller-owned state. A struct rng belongs to one thread (the
 * router owns its own); never share one between threads.
 */
#ifndef SWITCHBOARD_BACKOFF_H
#define SWITCHBOARD_BACKOFF_H

#include <stdint.h>

struct rng {
    uint64_t state;
};

/* Seeds r. Equal seeds give equal sequences. */
void rng_seed(struct rng *r, uint64_t seed);
/* Next 64 uniformly distributed bits. */
uint64_t rng_next_u64(struct rng *r);
/* Uniform double in [0, 1), 53 bits of precision. */
double rng_uniform(struct rng *r);
/* Uniform integer in [0, n), without modulo bias. n == 0 returns 0. */
uint64_t rng_below(struct rng *r, uint64_t n);

/*
 * The un-jittered ceiling for retry number `attempt` (0 = first retry):
 * min(cap_ms, base_ms * 2^attempt), computed without overflow. A negative attempt counts as 0;
 * base_ms or cap_ms <= 0 gives 0.
 */
int64_t backoff_ceiling_ms(long attempt, int64_t base_ms, int64_t cap_ms);

/*
 * AWS "full jitter": a uniformly random delay in [0, backoff_ceiling_ms(attempt, base, cap)]
 * (both ends included). r must not be NULL.
 */
int64_t backoff_delay_ms(long attempt, int64_t base_ms, int64_t cap_ms, struct rng *r);

#endif
