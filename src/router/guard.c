/*
 * guard.c - the runaway guard (guard.h). Two open-addressing tables of fixed capacity:
 * storm keys (tag hash, prompt hash) with a ring of ten window buckets, and tags with a ring
 * of GUARD_SPIKE_SECS one-second arrival and admission counters plus the baseline EWMA.
 * Full tables are swept of entries idle for longer than their windows; what still does not
 * fit is not watched. Pure; the router thread owns it.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/guard.h"

#define STORM_BUCKETS 10
#define KEY_SLOTS     ((size_t)GUARD_MAX_KEYS * 2)
#define TAG_SLOTS     ((size_t)GUARD_MAX_TAGS * 2)

struct storm {
    bool used;
    bool flagged;
    uint64_t tag_hash, prompt_hash;
    int64_t head;                  /* newest bucket number (now / bucket width) */
    uint32_t count[STORM_BUCKETS]; /* arrivals per bucket, by bucket number % 10 */
    int64_t last_ms;
};

struct tagrate {
    bool used;
    bool spiking;
    uint64_t hash;
    char name[65];
    int64_t head;                       /* newest second recorded */
    uint32_t arrived[GUARD_SPIKE_SECS]; /* by second % GUARD_SPIKE_SECS */
    uint32_t admitted[GUARD_SPIKE_SECS];
    double baseline; /* EWMA of req/s, not bias-corrected */
    double weight;   /* 1 - (1-alpha)^seconds folded: the correction */
    int64_t folded;  /* last whole second folded into the baseline */
    int64_t first_ms, last_ms;
};

struct guard {
    struct config_guard p;
    struct storm *keys;
    size_t n_keys;
    int64_t keys_swept;
    struct tagrate *tags;
    size_t n_tags;
    int64_t tags_swept;
    struct guard_stats stats;
    struct guard_fleet_ops fleet; /* .count NULL: this instance alone */
};

/* b mod n for any b (bucket numbers may be negative in tests that start at time 0). */
static size_t ring(int64_t b, int64_t n)
{
    return (size_t)(((b % n) + n) % n);
}

static const char *shown(const char *tag)
{
    return tag ? tag : "(none)";
}

struct guard *guard_new(const struct config_guard *params)
{
    struct guard *g = xcalloc(1, sizeof *g);
    g->p = *params;
    g->keys = xcalloc(KEY_SLOTS, sizeof *g->keys);
    g->tags = xcalloc(TAG_SLOTS, sizeof *g->tags);
    g->keys_swept = g->tags_swept = 0;
    return g;
}

void guard_set_params(struct guard *g, const struct config_guard *params)
{
    g->p = *params;
}

void guard_free(struct guard *g)
{
    if (!g)
        return;
    free(g->keys);
    free(g->tags);
    free(g);
}

void guard_get_stats(const struct guard *g, struct guard_stats *out)
{
    *out = g->stats;
    out->keys = g->n_keys;
    out->tags = g->n_tags;
}

/* ---- tables ------------------------------------------------------------------------------ */

static uint64_t mix(uint64_t a, uint64_t b)
{
    uint64_t h = a ^ (b + 0x9e3779b97f4a7c15ull + (a << 6) + (a >> 2));
    return h ^ (h >> 31);
}

/* Rebuilds the storm table without entries idle for a whole window. */
static void sweep_keys(struct guard *g, int64_t now)
{
    struct storm *old = g->keys;
    g->keys = xcalloc(KEY_SLOTS, sizeof *g->keys);
    g->n_keys = 0;
    for (size_t i = 0; i < KEY_SLOTS; i++) {
        if (!old[i].used || now - old[i].last_ms > g->p.identical_window_ms)
            continue;
        size_t k = (size_t)mix(old[i].tag_hash, old[i].prompt_hash) & (KEY_SLOTS - 1);
        while (g->keys[k].used)
            k = (k + 1) & (KEY_SLOTS - 1);
        g->keys[k] = old[i];
        g->n_keys++;
    }
    free(old);
    g->keys_swept = now;
}

static struct storm *storm_get(struct guard *g, int64_t now, uint64_t tag_hash, uint64_t prompt)
{
    size_t k = (size_t)mix(tag_hash, prompt) & (KEY_SLOTS - 1);
    for (;; k = (k + 1) & (KEY_SLOTS - 1)) {
        struct storm *s = &g->keys[k];
        if (!s->used)
            break;
        if (s->tag_hash == tag_hash && s->prompt_hash == prompt)
            return s;
    }
    if (g->n_keys >= GUARD_MAX_KEYS) {
        if (now - g->keys_swept < g->p.identical_window_ms / STORM_BUCKETS)
            return NULL;
        sweep_keys(g, now);
        if (g->n_keys >= GUARD_MAX_KEYS)
            return NULL;
        return storm_get(g, now, tag_hash, prompt);
    }
    struct storm *s = &g->keys[k];
    memset(s, 0, sizeof *s);
    s->used = true;
    s->tag_hash = tag_hash;
    s->prompt_hash = prompt;
    s->head = INT64_MIN;
    g->n_keys++;
    return s;
}

static void sweep_tags(struct guard *g, int64_t now)
{
    struct tagrate *old = g->tags;
    g->tags = xcalloc(TAG_SLOTS, sizeof *g->tags);
    g->n_tags = 0;
    for (size_t i = 0; i < TAG_SLOTS; i++) {
        if (!old[i].used || now - old[i].last_ms > g->p.baseline_window_ms)
            continue;
        size_t k = (size_t)old[i].hash & (TAG_SLOTS - 1);
        while (g->tags[k].used)
            k = (k + 1) & (TAG_SLOTS - 1);
        g->tags[k] = old[i];
        g->n_tags++;
    }
    free(old);
    g->tags_swept = now;
}

static struct tagrate *tag_get(struct guard *g, int64_t now, uint64_t hash, const char *name)
{
    size_t k = (size_t)hash & (TAG_SLOTS - 1);
    for (;; k = (k + 1) & (TAG_SLOTS - 1)) {
        struct tagrate *t = &g->tags[k];
        if (!t->used)
            break;
        if (t->hash == hash)
            return t;
    }
    if (g->n_tags >= GUARD_MAX_TAGS) {
        if (now - g->tags_swept < 1000)
            return NULL;
        sweep_tags(g, now);
        if (g->n_tags >= GUARD_MAX_TAGS)
            return NULL;
        return tag_get(g, now, hash, name);
    }
    struct tagrate *t = &g->tags[k];
    memset(t, 0, sizeof *t);
    t->used = true;
    t->hash = hash;
    str_copy(t->name, sizeof t->name, name);
    t->head = now / 1000;
    t->folded = now / 1000 - 1;
    t->first_ms = now;
    g->n_tags++;
    return t;
}

/* ---- storms ------------------------------------------------------------------------------ */

static void storm_advance(struct storm *s, int64_t bucket)
{
    if (s->head == INT64_MIN || bucket - s->head >= STORM_BUCKETS) {
        memset(s->count, 0, sizeof s->count);
    } else {
        for (int64_t b = s->head + 1; b <= bucket; b++)
            s->count[ring(b, STORM_BUCKETS)] = 0;
    }
    if (bucket > s->head)
        s->head = bucket;
}

/* When the count (this request included) drops to identical_max: the oldest buckets leave. */
static int64_t storm_retry_ms(const struct storm *s, int64_t width, int64_t now, uint64_t max)
{
    uint64_t left = 0;
    for (int k = 0; k < STORM_BUCKETS; k++)
        left += s->count[ring(s->head - k, STORM_BUCKETS)];
    for (int k = 1; k <= STORM_BUCKETS; k++) {
        left -= s->count[ring(s->head - STORM_BUCKETS + k, STORM_BUCKETS)];
        if (left + 1 <= max)
            return (s->head + k) * width - now;
    }
    return STORM_BUCKETS * width;
}

/* Returns true (and fills out) when this request is beyond a storm's limit. */
static bool storm_check(struct guard *g, int64_t now, uint64_t tag_hash, const char *tag,
                        uint64_t prompt, struct guard_decision *out)
{
    struct storm *s = storm_get(g, now, tag_hash, prompt);
    if (!s) {
        g->stats.untracked++;
        return false;
    }
    int64_t width = g->p.identical_window_ms / STORM_BUCKETS;
    storm_advance(s, now / width);
    s->count[ring(s->head, STORM_BUCKETS)]++;
    s->last_ms = now;
    uint64_t n = 0;
    for (int k = 0; k < STORM_BUCKETS; k++)
        n += s->count[k];
    uint64_t max = (uint64_t)g->p.identical_max;
    if (n <= max) {
        s->flagged = false;
        return false;
    }
    long secs = (long)((g->p.identical_window_ms + 999) / 1000);
    out->reason = GUARD_REASON_STORM;
    out->retry_after_ms = storm_retry_ms(s, width, now, max);
    snprintf(out->why, sizeof out->why,
             "runaway guard: tag '%.64s' sent this same prompt %llu times in %ld s (limit %llu); "
             "retry in %lld s",
             shown(tag), (unsigned long long)n, secs, (unsigned long long)max,
             (long long)((out->retry_after_ms + 999) / 1000));
    if (!s->flagged) {
        s->flagged = true;
        g->stats.storms++;
        out->new_event = true;
        snprintf(out->event_text, sizeof out->event_text,
                 "runaway guard: tag '%.64s' is looping: the same prompt %llu times in %ld s "
                 "(limit %llu): %s",
                 shown(tag), (unsigned long long)n, secs, (unsigned long long)max,
                 g->p.action == GUARD_ACTION_THROTTLE ? "throttling"
                 : g->p.action == GUARD_ACTION_CACHE  ? "answering from the cache"
                                                      : "observing only");
    }
    return true;
}

/* ---- spikes ------------------------------------------------------------------------------ */

static uint32_t ring_at(const uint32_t *counts, int64_t head, int64_t sec)
{
    return sec <= head && sec > head - GUARD_SPIKE_SECS ? counts[ring(sec, GUARD_SPIKE_SECS)] : 0;
}

/* The tag's arrivals in second s (now being second cur): this instance's, or in fleet mode
 * the larger of that and the fleet's count. */
static double arrivals_at(const struct guard *g, const struct tagrate *t, int64_t s, int64_t cur)
{
    uint64_t mine = ring_at(t->arrived, t->head, s);
    if (!g->fleet.count)
        return (double)mine;
    uint64_t all = g->fleet.count(g->fleet.ctx, t->hash, cur - s);
    return (double)(all > mine ? all : mine);
}

void guard_set_fleet(struct guard *g, const struct guard_fleet_ops *ops)
{
    g->fleet = ops ? *ops : (struct guard_fleet_ops){0};
}

/* Folds the whole seconds before now into the baseline (not while spiking), then moves the
 * rings to the current second. */
static void tag_advance(struct guard *g, struct tagrate *t, int64_t sec)
{
    double alpha = 1.0 - exp(-1000.0 / (double)g->p.baseline_window_ms);
    int64_t upto = g->fleet.count ? sec - 2 : sec - 1; /* the fleet's counts come late */
    if (!t->spiking && upto > t->folded) {
        int64_t last_seen = t->head < upto ? t->head : upto;
        int64_t s = t->folded + 1;
        for (; s <= last_seen; s++) {
            t->baseline += alpha * (arrivals_at(g, t, s, sec) - t->baseline);
            t->weight += alpha * (1.0 - t->weight);
        }
        if (upto >= s) { /* seconds without arrivals */
            double decay = pow(1.0 - alpha, (double)(upto - s + 1));
            t->baseline *= decay;
            t->weight = 1.0 - (1.0 - t->weight) * decay;
        }
    }
    if (upto > t->folded)
        t->folded = upto;
    if (sec - t->head >= GUARD_SPIKE_SECS) {
        memset(t->arrived, 0, sizeof t->arrived);
        memset(t->admitted, 0, sizeof t->admitted);
    } else {
        for (int64_t s = t->head + 1; s <= sec; s++) {
            t->arrived[ring(s, GUARD_SPIKE_SECS)] = 0;
            t->admitted[ring(s, GUARD_SPIKE_SECS)] = 0;
        }
    }
    if (sec > t->head)
        t->head = sec;
}

/* admit: whether an allowed request counts as admitted (not when a storm refuses it). */
static bool spike_check(struct guard *g, int64_t now, uint64_t tag_hash, const char *tag,
                        bool admit, struct guard_decision *out)
{
    struct tagrate *t = tag_get(g, now, tag_hash, shown(tag));
    if (!t) {
        g->stats.untracked++;
        return false;
    }
    int64_t sec = now / 1000;
    tag_advance(g, t, sec);
    t->arrived[ring(sec, GUARD_SPIKE_SECS)]++;
    if (g->fleet.note)
        g->fleet.note(g->fleet.ctx, t->hash);
    t->last_ms = now;
    uint64_t mine = 0, admitted = 0;
    double arrived = 0;
    for (int k = 0; k < GUARD_SPIKE_SECS; k++) {
        mine += t->arrived[k];
        admitted += t->admitted[k];
        arrived += arrivals_at(g, t, sec - k, sec);
    }
    double share = arrived > 0 ? (double)mine / arrived : 1; /* of the tag's allowance */
    double rate = arrived / GUARD_SPIKE_SECS;
    double baseline = t->weight > 0 ? t->baseline / t->weight : 0;
    double base = baseline > g->p.spike_min_rps ? baseline : g->p.spike_min_rps;
    double allowed = g->p.spike_factor * base;
    if (rate <= allowed || now - t->first_ms < GUARD_WARMUP_MS) {
        t->spiking = false;
        t->admitted[ring(sec, GUARD_SPIKE_SECS)] += admit;
        return false;
    }
    if (!t->spiking) {
        t->spiking = true;
        g->stats.spikes++;
        out->new_event = true;
        snprintf(out->event_text, sizeof out->event_text,
                 "runaway guard: tag '%.64s' spiked to %.1f req/s over %d s, more than %gx its "
                 "baseline of %.2f req/s: %s",
                 t->name, rate, GUARD_SPIKE_SECS, g->p.spike_factor, baseline,
                 g->p.action == GUARD_ACTION_OBSERVE ? "observing only"
                                                     : "refusing what exceeds the limit");
    }
    out->reason = GUARD_REASON_SPIKE;
    if ((double)(admitted + 1) <= allowed * GUARD_SPIKE_SECS * share) {
        t->admitted[ring(sec, GUARD_SPIKE_SECS)] += admit;
        return false; /* within the tag's allowance: the excess is what is refused */
    }
    out->retry_after_ms = 1000 - now % 1000;
    snprintf(out->why, sizeof out->why,
             "runaway guard: tag '%.64s' at %.1f req/s over the last %d s is more than %gx its "
             "baseline (%.1f req/s allowed); retry in 1 s",
             t->name, rate, GUARD_SPIKE_SECS, g->p.spike_factor, allowed);
    return true;
}

/* ---- decisions --------------------------------------------------------------------------- */

void guard_check(struct guard *g, int64_t now_ms, const char *tag, uint64_t prompt_hash,
                 struct guard_decision *out)
{
    memset(out, 0, sizeof *out);
    out->verdict = GUARD_ALLOW;
    if (!g || !g->p.enabled)
        return;
    uint64_t tag_hash = tag ? hash_fnv1a(tag, strlen(tag)) : 0x5bd1e9955bd1e995ull;
    struct guard_decision spike = {0};
    bool storm = storm_check(g, now_ms, tag_hash, tag, prompt_hash, out);
    bool spiking = tag && spike_check(g, now_ms, tag_hash, tag,
                                      !storm || g->p.action == GUARD_ACTION_OBSERVE, &spike);
    if (!storm) {
        bool ev = out->new_event;
        *out = spike; /* keep a storm event even when the spike decides */
        out->new_event |= ev;
    } else if (spike.new_event && !out->new_event) {
        out->new_event = true;
        str_copy(out->event_text, sizeof out->event_text, spike.event_text);
    }
    if (out->reason != GUARD_REASON_NONE)
        g->stats.flagged++;
    if (!storm && !spiking) {
        out->verdict = GUARD_ALLOW;
        return;
    }
    switch (g->p.action) {
    case GUARD_ACTION_THROTTLE:
        out->verdict = GUARD_THROTTLE;
        break;
    case GUARD_ACTION_CACHE:
        out->verdict = GUARD_CACHE;
        break;
    case GUARD_ACTION_OBSERVE:
        out->verdict = GUARD_ALLOW;
        break;
    }
}
