/*
 * pick.h - choosing one target among a route's candidates, per strategy; peak-EWMA latency.
 *
 * The caller (router) describes each candidate in a struct pick_candidate, in the route's
 * target order, and marks as ineligible every one that must not be chosen now: breaker open,
 * rate-limited, drained, over budget, no key, or already tried by this call (that is how a
 * retry asks for "the next target after a failure"). Strategies (enum route_strategy):
 *
 *  WEIGHTED    nginx's smooth weighted round robin: deterministic, interleaved, and exact
 *              (weights 3:1 give 3:1 in every 4 picks). Weight <= 0 is never picked.
 *  PRIORITY    the first eligible in order.
 *  CHEAPEST    lowest est_cost_usd; unknown cost (< 0) ranks after every known one; ties go
 *              to the earlier candidate.
 *  FASTEST     lowest latency_score_ms. A candidate with no latency yet (<= 0) scores 0 while
 *              it has nothing in flight (so a new target gets tried at once) and ranks last
 *              while its first call is running (so a burst does not all land on it). With
 *              probability `explore` (default 0.05, needs an rng) the pick is uniform among the
 *              eligible instead, so a target that was slow once gets measured again. Ties go to
 *              the earlier candidate.
 *  LEAST_BUSY  fewest in_flight; ties to the higher weight, then the earlier candidate.
 *  P2C         power of two random choices (Mitzenmacher; Finagle/Linkerd's balancer): two
 *              distinct eligible candidates drawn at random, the lower ewma_ms * (in_flight + 1)
 *              wins; a tie goes to the first drawn. Unknown ewma (<= 0) counts as the lowest
 *              known ewma among the eligible (1 ms when none is known). Without an rng it takes
 *              the lowest score of all.
 *
 * Only the first PICK_MAX_CANDIDATES candidates are considered.
 *
 * Threads: owned by the router thread; not thread-safe. Every struct is plain data.
 */
#ifndef SWITCHBOARD_PICK_H
#define SWITCHBOARD_PICK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "switchboard/backoff.h"
#include "switchboard/config.h"

#define PICK_MAX_CANDIDATES  64
#define PICK_EXPLORE_DEFAULT 0.05

struct pick_candidate {
    size_t id;               /* the caller's target index; not used by pick */
    double weight;           /* WEIGHTED share; LEAST_BUSY tie-break */
    double est_cost_usd;     /* CHEAPEST: cost of this call here; < 0 = unknown */
    double latency_score_ms; /* FASTEST: recent TTFT (streams) or ms per output token;
                                <= 0 = unknown */
    long in_flight;          /* calls running on this target now */
    double ewma_ms;          /* P2C: peak-EWMA latency (ewma_value); <= 0 = unknown */
    bool eligible;           /* false: never chosen */
};

/* Per-route strategy state. Indexed by candidate position: call pick_state_init again when
 * the route's target list changes (config reload). */
struct pick_state {
    double current[PICK_MAX_CANDIDATES]; /* smooth WRR current weights */
    double explore;                      /* FASTEST exploration probability, [0, 1] */
};

void pick_state_init(struct pick_state *st);

/*
 * Chooses a candidate by `strategy`: returns true and sets *chosen to its position in c[],
 * or returns false (leaving *chosen alone) when none is eligible. rng may be NULL (P2C then
 * picks the global best and FASTEST never explores). c may be NULL when n == 0.
 * WEIGHTED updates st even when the caller then does not use the pick.
 */
bool pick_next(struct pick_state *st, enum route_strategy strategy, const struct pick_candidate *c,
               size_t n, struct rng *rng, size_t *chosen);

/* ---- Peak EWMA --------------------------------------------------------------------------- */

/*
 * Latency estimate that reacts to trouble at once and forgets it slowly (Finagle's and
 * Linkerd's peak EWMA): an observation above the estimate replaces it; one below pulls it
 * down with weight 1 - exp(-dt / tau), dt being the time since the previous observation.
 */
struct peak_ewma {
    double value_ms; /* 0 until the first observation */
    int64_t stamp_ms;
    bool seeded;
};

void ewma_init(struct peak_ewma *e);
/* tau_ms <= 0: no memory (the estimate is the last observation). */
void ewma_observe(struct peak_ewma *e, int64_t now_ms, double latency_ms, int64_t tau_ms);
/* The estimate in ms; 0 when nothing was observed (pick treats that as unknown). */
double ewma_value(const struct peak_ewma *e);

#endif
