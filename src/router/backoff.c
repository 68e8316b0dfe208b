/*
 * backoff.c - splitmix64 PRNG and full-jitter exponential backoff.
 *
 * Threads: no state of its own; callers own every struct rng (see backoff.h).
 */
#include "switchboard/backoff.h"

#define SPLITMIX_GAMMA 0x9e3779b97f4a7c15ULL

void rng_seed(struct rng *r, uint64_t seed)
{
    r->state = seed;
}

uint64_t rng_next_u64(struct rng *r)
{
    uint64_t z = (r->state += SPLITMIX_GAMMA);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

double rng_uniform(struct rng *r)
{
    /* The top 53 bits scaled by 2^-53: every value is exact and < 1. */
    return (double)(rng_next_u64(r) >> 11) * 0x1.0p-53;
}

uint64_t rng_below(struct rng *r, uint64_t n)
{
    if (n == 0)
        return 0;
    /* 2^64 mod n: rejecting x below it leaves a multiple of n values, so every residue is
     * equally likely. */
    uint64_t threshold = (0 - n) % n;
    uint64_t x;
    do {
        x = rng_next_u64(r);
    } while (x < threshold);
    return x % n;
}

int64_t backoff_ceiling_ms(long attempt, int64_t base_ms, int64_t cap_ms)
{
    if (base_ms <= 0 || cap_ms <= 0)
        return 0;
    if (attempt < 0)
        attempt = 0;
    /* base * 2^attempt <= cap  <=>  base <= floor(cap / 2^attempt), for integers. */
    if (attempt >= 62 || base_ms > (cap_ms >> attempt))
        return cap_ms;
    return base_ms << attempt;
}

int64_t backoff_delay_ms(long attempt, int64_t base_ms, int64_t cap_ms, struct rng *r)
{
    int64_t ceiling = backoff_ceiling_ms(attempt, base_ms, cap_ms);
    return (int64_t)rng_below(r, (uint64_t)ceiling + 1);
}
