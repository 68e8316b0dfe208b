/*
 * limits.h - proactive rate limits per target: stay under the provider's limits instead of
 * collecting 429s.
 *
 * Four things can hold a target back, checked in this order:
 *  1. a cooldown (after a 429, from Retry-After to the ms, or a router default);
 *  2. the provider's own count, from x-ratelimit-remaining-* / anthropic-ratelimit-* headers:
 *     while the reported window has not reset, no call goes when 0 requests are left, or when
 *     fewer tokens are left than the call's estimate. Each call sent afterwards uses one up;
 *  3. rpm: calls sent in the sliding window;
 *  4. tpm: estimated tokens sent in the sliding window (corrected once usage is known).
 *     A single call larger than tpm goes once the window is empty, so it is never stuck.
 *
 * The sliding window is LIMITS_SLOTS one-second slots: a call sent at t counts until the
 * start of second floor(t / 1000) + 61, i.e. for 60 to 61 s. Rounding up means the provider's
 * 60 s window never sees more than rpm calls from this process.
 *
 * Times are monotonic ms (now_ms); only limits_blocked_reason also takes a wall clock, to
 * print "until 12:03:05" in local time.
 *
 * Threads: owned by the router thread; not thread-safe. Plain data: memcpy is fine.
 */
#ifndef SWITCHBOARD_LIMITS_H
#define SWITCHBOARD_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "switchboard/llm.h"

#define LIMITS_SLOTS   61 /* 60 s window rounded up to whole seconds */
#define LIMITS_SLOT_MS 1000

struct limits_slot {
    int64_t epoch; /* now_ms / 1000; -1 = unused */
    long requests;
    int64_t tokens;
};

struct limits {
    long rpm; /* 0 = unlimited */
    long tpm; /* 0 = unlimited */
    struct limits_slot slots[LIMITS_SLOTS];
    int64_t cooldown_until_ms; /* no call before this; 0 = none */
    char cooldown_source[32];  /* "Retry-After", "429", ... */
    /* Provider-reported, valid while now < *_reset_at_ms (0 = nothing reported). */
    long requests_left;
    int64_t requests_reset_at_ms;
    long tokens_left;
    int64_t tokens_reset_at_ms;
};

/* rpm, tpm: 0 = unlimited (negative counts as 0). */
void limits_init(struct limits *l, long rpm, long tpm);
/* New limits on config reload; keeps the window, cooldown and provider counts. */
void limits_set(struct limits *l, long rpm, long tpm);

/* May a call of est_tokens (prompt + expected output; <= 0 = unknown) go now? */
bool limits_can_send(const struct limits *l, int64_t now_ms, long est_tokens);
/* Earliest time limits_can_send would say yes, if nothing else is sent: now_ms when it
 * already would. For the router's timers ("wake me when the target frees up"). */
int64_t limits_ready_at_ms(const struct limits *l, int64_t now_ms, long est_tokens);
/* A call went out now. */
void limits_note_sent(struct limits *l, int64_t now_ms, long est_tokens);
/* The call sent at sent_at_ms with est_tokens really used actual_tokens: fixes its slot (if
 * still in the window; never below 0). */
void limits_note_actual_tokens(struct limits *l, int64_t now_ms, int64_t sent_at_ms,
                               long est_tokens, long actual_tokens);

/* No call before until_ms. Only ever extends the current cooldown. source (may be NULL:
 * "429") names the cause for limits_blocked_reason; copied. */
void limits_cooldown_until(struct limits *l, int64_t until_ms, const char *source);
/* Operator "force live": drops the cooldown and the provider-reported counts. */
void limits_clear_cooldown(struct limits *l);
bool limits_is_cooling(const struct limits *l, int64_t now_ms);

/* Facts from a response's headers, received at now_ms. remaining_* is used only together
 * with its reset_* time; retry_after_ms >= 0 starts a cooldown ("Retry-After"). rl may come
 * from any status. */
void limits_note_ratelimit(struct limits *l, int64_t now_ms, const struct llm_ratelimit *rl);

/* Calls and estimated tokens in the window ending at now_ms (for the console). */
long limits_window_requests(const struct limits *l, int64_t now_ms);
int64_t limits_window_tokens(const struct limits *l, int64_t now_ms);

/*
 * Why a call of est_tokens cannot go now, for `route --explain` and the console. Returns
 * false (and buf = "") when it can. Texts: "rate-limited until 12:03:05 (Retry-After)",
 * "provider reports 0 requests left until 12:03:05", "provider reports 500 tokens left
 * (1200 needed) until 12:03:05", "rpm 60 reached", "tpm 90000: 1200 tokens would exceed".
 * wall_now_ms is the wall clock matching now_ms (clock_wall_ms()); times print in local
 * time (localtime_r), rounded up to the second. buf may be NULL when len is 0.
 */
bool limits_blocked_reason(const struct limits *l, int64_t now_ms, int64_t wall_now_ms,
                           long est_tokens, char *buf, size_t len);

#endif
