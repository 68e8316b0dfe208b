/*
 * pick.c - target selection strategies and peak-EWMA (see pick.h for each rule).
 *
 * Threads: no state of its own; each struct pick_state belongs to the router thread.
 */
#include <math.h>
#include <string.h>

#include "switchboard/pick.h"

void pick_state_init(struct pick_state *st)
{
    memset(st, 0, sizeof(*st));
    st->explore = PICK_EXPLORE_DEFAULT;
}

static size_t count_eligible(const struct pick_candidate *c, size_t n)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        m += c[i].eligible;
    return m;
}

/* Position of the k-th (0-based) eligible candidate. */
static size_t nth_eligible(const struct pick_candidate *c, size_t n, size_t k)
{
    for (size_t i = 0; i < n; i++)
        if (c[i].eligible && k-- == 0)
            return i;
    return 0; /* not reached: k < count_eligible */
}

/* nginx ngx_http_upstream_get_peer: every eligible peer gains its weight, the largest
 * current wins and gives back the total. */
static bool pick_weighted(struct pick_state *st, const struct pick_candidate *c, size_t n,
                          size_t *chosen)
{
    double total = 0;
    size_t best = n;
    for (size_t i = 0; i < n; i++) {
        if (!c[i].eligible || !(c[i].weight > 0))
            continue;
        st->current[i] += c[i].weight;
        total += c[i].weight;
        if (best == n || st->current[i] > st->current[best])
            best = i;
    }
    if (best == n)
        return false;
    st->current[best] -= total;
    *chosen = best;
    return true;
}

static bool pick_priority(const struct pick_candidate *c, size_t n, size_t *chosen)
{
    for (size_t i = 0; i < n; i++) {
        if (c[i].eligible) {
            *chosen = i;
            return true;
        }
    }
    return false;
}

/* Lowest key wins; ties keep the earlier candidate. key(c) may return INFINITY. */
static bool pick_lowest(const struct pick_candidate *c, size_t n,
                        double (*key)(const struct pick_candidate *), size_t *chosen)
{
    size_t best = n;
    double best_key = 0;
    for (size_t i = 0; i < n; i++) {
        if (!c[i].eligible)
            continue;
        double k = key(&c[i]);
        if (best == n || k < best_key) {
            best = i;
            best_key = k;
        }
    }
    if (best == n)
        return false;
    *chosen = best;
    return true;
}

static double cost_key(const struct pick_candidate *c)
{
    return c->est_cost_usd < 0 ? INFINITY : c->est_cost_usd;
}

static double latency_key(const struct pick_candidate *c)
{
    if (c->latency_score_ms > 0)
        return c->latency_score_ms;
    return c->in_flight > 0 ? INFINITY : 0;
}

static bool pick_fastest(const struct pick_state *st, const struct pick_candidate *c, size_t n,
                         struct rng *rng, size_t *chosen)
{
    size_t m = count_eligible(c, n);
    if (m == 0)
        return false;
    if (rng && st->explore > 0 && rng_uniform(rng) < st->explore) {
        *chosen = nth_eligible(c, n, (size_t)rng_below(rng, m));
        return true;
    }
    return pick_lowest(c, n, latency_key, chosen);
}

static bool pick_least_busy(const struct pick_candidate *c, size_t n, size_t *chosen)
{
    size_t best = n;
    for (size_t i = 0; i < n; i++) {
        if (!c[i].eligible)
            continue;
        if (best == n || c[i].in_flight < c[best].in_flight ||
            (c[i].in_flight == c[best].in_flight && c[i].weight > c[best].weight))
            best = i;
    }
    if (best == n)
        return false;
    *chosen = best;
    return true;
}

/* The ewma that stands in for unknown ones: the lowest known among the eligible. */
static double p2c_default_ewma(const struct pick_candidate *c, size_t n)
{
    double lowest = INFINITY;
    for (size_t i = 0; i < n; i++)
        if (c[i].eligible && c[i].ewma_ms > 0 && c[i].ewma_ms < lowest)
            lowest = c[i].ewma_ms;
    return isinf(lowest) ? 1.0 : lowest;
}

static double p2c_score(const struct pick_candidate *c, double fallback)
{
    double ewma = c->ewma_ms > 0 ? c->ewma_ms : fallback;
    long busy = c->in_flight > 0 ? c->in_flight : 0;
    return ewma * (double)(busy + 1);
}

static bool pick_p2c(const struct pick_candidate *c, size_t n, struct rng *rng, size_t *chosen)
{
    size_t m = count_eligible(c, n);
    if (m == 0)
        return false;
    double fallback = p2c_default_ewma(c, n);
    if (m == 1 || !rng) {
        size_t best = n;
        for (size_t i = 0; i < n; i++)
            if (c[i].eligible &&
                (best == n || p2c_score(&c[i], fallback) < p2c_score(&c[best], fallback)))
                best = i;
        *chosen = best;
        return true;
    }
    size_t a = (size_t)rng_below(rng, m);
    size_t b = (size_t)rng_below(rng, m - 1);
    if (b >= a)
        b++;
    a = nth_eligible(c, n, a);
    b = nth_eligible(c, n, b);
    *chosen = p2c_score(&c[b], fallback) < p2c_score(&c[a], fallback) ? b : a;
    return true;
}

bool pick_next(struct pick_state *st, enum route_strategy strategy, const struct pick_candidate *c,
               size_t n, struct rng *rng, size_t *chosen)
{
    if (n > PICK_MAX_CANDIDATES)
        n = PICK_MAX_CANDIDATES;
    if (n == 0)
        return false;
    switch (strategy) {
    case STRATEGY_WEIGHTED:
        return pick_weighted(st, c, n, chosen);
    case STRATEGY_PRIORITY:
        return pick_priority(c, n, chosen);
    case STRATEGY_CHEAPEST:
        return pick_lowest(c, n, cost_key, chosen);
    case STRATEGY_FASTEST:
        return pick_fastest(st, c, n, rng, chosen);
    case STRATEGY_LEAST_BUSY:
        return pick_least_busy(c, n, chosen);
    case STRATEGY_P2C:
        return pick_p2c(c, n, rng, chosen);
    }
    return false;
}

/* ---- Peak EWMA --------------------------------------------------------------------------- */

void ewma_init(struct peak_ewma *e)
{
    memset(e, 0, sizeof(*e));
}

void ewma_observe(struct peak_ewma *e, int64_t now_ms, double latency_ms, int64_t tau_ms)
{
    if (latency_ms < 0)
        latency_ms = 0;
    if (!e->seeded || latency_ms > e->value_ms || tau_ms <= 0) {
        e->value_ms = latency_ms;
    } else {
        int64_t dt = now_ms > e->stamp_ms ? now_ms - e->stamp_ms : 0;
        double w = exp(-(double)dt / (double)tau_ms);
        e->value_ms = e->value_ms * w + latency_ms * (1.0 - w);
    }
    e->seeded = true;
    e->stamp_ms = now_ms;
}

double ewma_value(const struct peak_ewma *e)
{
    return e->seeded ? e->value_ms : 0;
}
