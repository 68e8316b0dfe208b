/*
 * guard.h - the runaway guard: catches a loop left running before it reaches the bill.
 *
 *  - Identical-prompt storms: the same prompt hash from the same tag more than identical_max
 *    times within identical_window_ms. The window is counted in ten buckets of a tenth of it,
 *    so it slides in steps of window/10. Every arrival counts (refused ones too), so a loop
 *    stays refused until it slows below the limit; then the storm is over.
 *  - Rate spikes: per tag, the request rate over the last 10 s against the tag's own
 *    baseline (a bias-corrected exponential moving average of its per-second rate with time
 *    constant baseline_window_ms, frozen while the tag is spiking). A spike is a 10-second
 *    rate above spike_factor x max(baseline, spike_min_rps); during it the tag keeps that
 *    much and the excess is refused. A tag is judged only after GUARD_WARMUP_MS of history.
 *    Untagged calls are watched for storms only: a spike is a tag's own change, and untagged
 *    traffic is everyone's.
 *
 * Verdicts follow guard.action: throttle (429 with why), cache (the router answers from the
 * route's response cache, or throttles on a miss), observe (allow). Each storm and spike
 * produces one event when it starts.
 *
 * Memory is capped: at most GUARD_MAX_KEYS (tag, prompt) pairs and GUARD_MAX_TAGS tags are
 * tracked; when full, stale ones are swept and new ones beyond the cap go unwatched (counted).
 *
 * Pure (time is an argument: monotonic ms) and not thread-safe: the router thread owns it.
 */
#ifndef SWITCHBOARD_GUARD_H
#define SWITCHBOARD_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "switchboard/config.h"

#define GUARD_MAX_KEYS   8192
#define GUARD_MAX_TAGS   1024
#define GUARD_SPIKE_SECS 10    /* the "current rate" window */
#define GUARD_WARMUP_MS  60000 /* history a tag needs before its rate can be a spike */

enum guard_verdict {
    GUARD_ALLOW,
    GUARD_THROTTLE, /* answer 429 with why and retry_after_ms */
    GUARD_CACHE,    /* answer from the response cache when it has the answer, else throttle */
};

enum guard_reason {
    GUARD_REASON_NONE,
    GUARD_REASON_STORM, /* identical prompts */
    GUARD_REASON_SPIKE, /* request rate */
};

struct guard_decision {
    enum guard_verdict verdict;
    enum guard_reason reason; /* also set in observe mode */
    char why[240];            /* for the client */
    int64_t retry_after_ms;
    bool new_event; /* a storm or spike just started: event_text describes it */
    char event_text[240];
};

struct guard_stats {
    uint64_t storms;    /* storms started */
    uint64_t spikes;    /* spikes started */
    uint64_t flagged;   /* requests found in a storm or spike (any action) */
    uint64_t untracked; /* requests not watched because the tables were full */
    size_t keys, tags;  /* tracked now */
};

struct guard;

struct guard *guard_new(const struct config_guard *params);
/* A reload: new thresholds; what was counted so far stays. */
void guard_set_params(struct guard *g, const struct config_guard *params);
void guard_free(struct guard *g); /* NULL-safe */

/*
 * Fleet mode (fleet_glue.c): spikes judged on the whole fleet's arrivals of a tag. note counts
 * one arrival of this instance in the current second; count gives the fleet's arrivals of the
 * tag (this instance's included, as far as the fleet knows) in the second `ago` whole seconds
 * before the current one. The guard then takes, per second, the larger of its own count and
 * the fleet's, folds the baseline one second later (the fleet's counts of a second arrive
 * within a few hundred ms), and lets this instance admit its share of the tag's allowance
 * (its arrivals over the fleet's). NULL ops (the default): this instance alone. Copied.
 */
struct guard_fleet_ops {
    void (*note)(void *ctx, uint64_t tag_hash);
    uint64_t (*count)(void *ctx, uint64_t tag_hash, int64_t ago);
    void *ctx;
};
void guard_set_fleet(struct guard *g, const struct guard_fleet_ops *ops);

/* Counts one request of tag (NULL: untagged) with this prompt hash and decides. */
void guard_check(struct guard *g, int64_t now_ms, const char *tag, uint64_t prompt_hash,
                 struct guard_decision *out);
void guard_get_stats(const struct guard *g, struct guard_stats *out);

#endif
