/*
 * timeline.h - the incident timeline's store: two bounded rings and the churn aggregator.
 *
 * Rings. A timeline keeps notable events (breaker transitions, operator actions, config
 * reloads, budget and guard events, probes: everything whose churn flag is false) in a key
 * ring, and per-call churn (fallbacks, 429s, hedges, truncated streams: churn true) in a churn
 * ring of its own, so no amount of per-call churn can evict a key event. Both rings are
 * bounded by the capacities given to timeline_init; the oldest entry of a ring goes when it is
 * full. Every stored entry gets an order number (ord) when it first enters, and readers walk
 * both rings merged by it, newest first.
 *
 * Aggregation. Per-call churn is not stored one line per call: timeline_churn folds every
 * occurrence of the same (target, kind, error class) within TIMELINE_AGG_WINDOW_MS into one
 * aggregate event ("a: 37 failures (server) -> fallback to b, last 10 s"), which is updated
 * in place: each update carries the aggregate's id (router_event.agg) and a new seq, and
 * timeline_put overwrites the ring entry with that id (keeping its ord, so the line stays
 * where it first appeared) instead of adding one. Updates are rate-limited to one per
 * TIMELINE_AGG_EMIT_MS per aggregate; timeline_agg_flush writes the pending ones.
 *
 * Pure data structure: no locks; the owner serialises (router thread, console main thread).
 */
#ifndef SWITCHBOARD_TIMELINE_H
#define SWITCHBOARD_TIMELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "switchboard/router.h"

#define TIMELINE_AGG_WINDOW_MS 10000 /* one aggregate covers at most this span */
#define TIMELINE_AGG_EMIT_MS   1000  /* an aggregate is re-published at most this often */
#define TIMELINE_AGG_SLOTS     32    /* open aggregates; the oldest closes when all are used */

struct timeline_entry {
    struct router_event ev;
    uint64_t ord; /* when it first entered: merged order */
};

struct timeline_ring {
    struct timeline_entry *e; /* cap entries (owned) */
    size_t cap, n, next;      /* oldest at (next - n) */
};

struct timeline {
    struct timeline_ring key, churn;
    uint64_t ord;
};

/* Allocates both rings (caps >= 1). */
void timeline_init(struct timeline *tl, size_t key_cap, size_t churn_cap);
void timeline_cleanup(struct timeline *tl); /* frees the rings; NULL-safe on a zeroed one */
size_t timeline_count(const struct timeline *tl);

/* Stores a copy of e: into the churn ring when e->churn, else into the key ring; an event
 * whose agg matches a churn entry overwrites that entry (its ord kept). Returns true when a
 * line was added, false when one was updated in place. */
bool timeline_put(struct timeline *tl, const struct router_event *e);

/* Walks both rings merged, newest first. Pointers stay valid until the next put. */
struct timeline_iter {
    size_t ki, ci; /* how many of each ring were returned */
};
void timeline_iter_init(struct timeline_iter *it);
const struct timeline_entry *timeline_iter_next(const struct timeline *tl,
                                                struct timeline_iter *it);

/* ---- churn aggregation ---------------------------------------------------------------------- */

struct timeline_agg_slot {
    bool used;
    uint64_t agg;
    enum router_event_kind kind;
    char target[64];
    char cls[24];
    char to[64];  /* FALLBACK: the target that took over last */
    bool many_to; /* more than one took over */
    uint32_t count;
    int64_t first_ms, last_ms, emitted_ms; /* monotonic */
    int64_t first_wall_ms;                 /* the line's time: when its window began */
    bool pending;                          /* counted since the last emit */
    char request_id[65];                   /* the latest call's */
    char detail[192];                      /* the latest occurrence's own text */
};

struct timeline_agg {
    struct timeline_agg_slot slot[TIMELINE_AGG_SLOTS];
    uint64_t next_agg;
    uint64_t seq; /* the owner's event sequence: every event written gets ++seq */
};

/* One per-call occurrence. Strings are borrowed for the call. */
struct timeline_churn_in {
    enum router_event_kind kind;
    const char *target;     /* the target the call failed on (or the one it concerns) */
    const char *cls;        /* error class or reason: "server", "429", ... */
    const char *to;         /* FALLBACK: the target that took over; else NULL */
    const char *request_id; /* x-request-id; NULL or "" for none */
    const char *detail;     /* one line describing this occurrence alone */
};

void timeline_agg_init(struct timeline_agg *ag);
/* Counts one occurrence at monotonic now_ms (wall_ms: its wall clock; an aggregate's line
 * carries the time its window began, so lines kept in place stay in time order) and writes the
 * aggregate into tl when it is new or TIMELINE_AGG_EMIT_MS passed since its last write.
 * Returns true when it wrote. */
bool timeline_churn(struct timeline *tl, struct timeline_agg *ag, int64_t now_ms, int64_t wall_ms,
                    const struct timeline_churn_in *in);
/* Writes the aggregates with uncounted occurrences whose last write is TIMELINE_AGG_EMIT_MS
 * old (or, with all, every one) and closes those past their window. Returns true when it
 * wrote. */
bool timeline_agg_flush(struct timeline *tl, struct timeline_agg *ag, int64_t now_ms, bool all);
/* The aggregate's line for slot s at now_ms (pure; exposed for tests). */
void timeline_agg_text(const struct timeline_agg_slot *s, int64_t now_ms, char *out, size_t n);

#endif
