/*
 * breaker.h - a circuit breaker per target: CLOSED -> OPEN -> HALF_OPEN -> CLOSED.
 *
 * CLOSED: every call goes. It opens on `failures` consecutive counted failures, on
 *   `slow_strikes` consecutive slow strikes (hedge losers that had no first byte when the
 *   hedge won: "slow: no first byte in 500 ms on 3 calls"), or when the counted failures over
 *   the sliding window (window_ms, in BREAKER_WINDOW_SLOTS buckets) reach `error_rate` of the
 *   calls and the window holds at least `min_volume` calls.
 * OPEN: no call goes until the cooldown has elapsed; then breaker_allow moves it to
 *   HALF_OPEN ("cooldown elapsed"). A passing liveness probe (a model list) may end the
 *   cooldown early (-> HALF_OPEN) but never closes it; a failing probe changes nothing (the
 *   cooldown is not restarted). A chat probe (a real 1-token call) that passes after the
 *   cooldown counts as a successful trial.
 * HALF_OPEN: exactly `half_open_trials` calls are let through (breaker_allow reserves a slot).
 *   It closes once that many trials succeeded; any counted failure re-opens it with the
 *   cooldown doubled, up to cooldown_max_ms. Closing restores the base cooldown.
 *
 * breaker_can_take is the one authority on "may this target take a call now": the router's
 * picker, its explainer and the snapshot all ask it, and breaker_allow says yes exactly when
 * it does. A reserved trial slot is always given back: by the call's outcome, or by
 * breaker_release when the call never went out.
 *
 * Which outcomes count: only failures that say the target is unhealthy
 * (breaker_counts_failure: DNS, CONNECT, TLS, TIMEOUT, SERVER, OVERLOADED, BAD_RESPONSE,
 * TRUNCATED) and slow strikes. Other outcomes (client errors, RATE_LIMIT - handled by limits.h
 * cooldowns -, CANCELLED, ...) are neutral: they change no counter, but free a reserved
 * half-open trial slot. Outcomes reported while OPEN (calls that started before it opened)
 * are ignored.
 *
 * Every transition is recorded (b->last, b->n_transitions) and returned through the `tr`
 * out-parameter of the call that caused it, with a reason for the console and the audit log.
 *
 * Threads: owned by the router thread; not thread-safe. Plain data: memcpy is fine.
 */
#ifndef SWITCHBOARD_BREAKER_H
#define SWITCHBOARD_BREAKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "switchboard/llm.h"

enum breaker_state {
    BREAKER_CLOSED,
    BREAKER_OPEN,
    BREAKER_HALF_OPEN,
};

#define BREAKER_WINDOW_SLOTS 10
#define BREAKER_REASON_LEN   128

/* From struct config_router: breaker_failures, breaker_error_rate, breaker_window_ms,
 * breaker_min_volume, breaker_cooldown_ms, breaker_half_open_trials. */
struct breaker_params {
    long failures;           /* consecutive counted failures that open it; <= 0: off */
    double error_rate;       /* failure ratio in (0, 1] over the window; <= 0: off */
    int64_t window_ms;       /* sliding window for the error rate (>= 10 ms) */
    long min_volume;         /* calls in the window before the rate counts (>= 1) */
    int64_t cooldown_ms;     /* OPEN -> HALF_OPEN (>= 1) */
    int64_t cooldown_max_ms; /* cap for the doubling; <= cooldown_ms: no growth */
    long half_open_trials;   /* trial calls in HALF_OPEN (>= 1) */
    long slow_strikes;       /* consecutive slow strikes that open it; <= 0: off */
};

/* A state change. from == to means "no change" (reason is then ""). */
struct breaker_transition {
    enum breaker_state from;
    enum breaker_state to;
    int64_t at_ms;
    char reason[BREAKER_REASON_LEN]; /* "5 consecutive failures (last: timeout)" */
};

struct breaker_slot {
    int64_t epoch; /* now_ms / slot length; -1 = unused */
    uint32_t calls;
    uint32_t failures;
};

struct breaker {
    struct breaker_params params;
    enum breaker_state state;
    long consecutive;      /* counted failures in a row (CLOSED) */
    long slow_consecutive; /* slow strikes in a row (CLOSED) */
    struct breaker_slot window[BREAKER_WINDOW_SLOTS];
    int64_t open_until_ms;          /* OPEN: when a trial may go */
    int64_t cooldown_ms;            /* current cooldown: base doubled `doublings` times, capped */
    int doublings;                  /* re-opens from HALF_OPEN since it was last CLOSED */
    long trials_started;            /* HALF_OPEN: slots reserved and not yet released */
    long trials_succeeded;          /* HALF_OPEN */
    int64_t since_ms;               /* when the current state began */
    uint64_t n_transitions;         /* changes since init */
    struct breaker_transition last; /* the most recent change */
};

/* Defaults matching config.h: 5 failures, 50% over 30 s with 20 calls, 30 s cooldown
 * growing to 5 min, 1 trial. */
void breaker_params_default(struct breaker_params *p);

/* Starts CLOSED at now_ms. Out-of-range params are clamped (see struct breaker_params). */
void breaker_init(struct breaker *b, const struct breaker_params *p, int64_t now_ms);
/* New params on config reload; keeps the state, the counters and the current open period.
 * The next cooldown is computed from the new params. */
void breaker_set_params(struct breaker *b, const struct breaker_params *p);

/* Would breaker_allow say yes now? (No side effects: for pickers and explainers.) */
bool breaker_can_take(const struct breaker *b, int64_t now_ms);
/* Why it cannot ("" when it can): "breaker open (reason; half-open in 12 s)". */
void breaker_why_not(const struct breaker *b, int64_t now_ms, char *why, size_t whylen);

/*
 * May a call go to this target now? CLOSED: yes. OPEN: no, unless the cooldown has elapsed,
 * in which case it first moves to HALF_OPEN. HALF_OPEN: yes while fewer than
 * half_open_trials trials are reserved, and the yes reserves one: the caller must report
 * that call's outcome (note_success / note_failure, CANCELLED if it never went out).
 * tr may be NULL; otherwise it receives the transition (from == to when none).
 */
bool breaker_allow(struct breaker *b, int64_t now_ms, struct breaker_transition *tr);

/* A reserved trial whose call never went out (its launch failed): the slot is free again. */
void breaker_release(struct breaker *b);

/* Outcome of a call. Return true when the state changed; tr (may be NULL) receives the
 * transition (from == to when none). */
bool breaker_note_success(struct breaker *b, int64_t now_ms, struct breaker_transition *tr);
bool breaker_note_failure(struct breaker *b, int64_t now_ms, enum llm_errclass cls,
                          struct breaker_transition *tr);
/* A slow strike: a call that had no first byte after waited_ms when another attempt (a
 * hedge) won. CLOSED: counts toward slow_strikes and the error rate; HALF_OPEN: a failed
 * trial. */
bool breaker_note_slow(struct breaker *b, int64_t now_ms, int64_t waited_ms,
                       struct breaker_transition *tr);
/* A health probe's outcome. Only matters in OPEN and HALF_OPEN (probes never open a closed
 * breaker: real traffic does). can_close: the probe was a real call (chat probe).
 * OPEN: a failure changes nothing; a liveness success ends the cooldown (-> HALF_OPEN); a
 * chat success after the cooldown is a successful trial. HALF_OPEN: a failure re-opens it;
 * a chat success is a successful trial, a liveness success changes nothing. */
bool breaker_note_probe(struct breaker *b, int64_t now_ms, bool ok, bool can_close,
                        struct breaker_transition *tr);
/* Operator reset: -> CLOSED with every counter cleared and the base cooldown ("reset by
 * operator"). Returns true when the state changed (counters are cleared either way). */
bool breaker_reset(struct breaker *b, int64_t now_ms, struct breaker_transition *tr);

/* Is this outcome evidence that the target is unhealthy? */
bool breaker_counts_failure(enum llm_errclass cls);
/* "closed", "open", "half-open". */
const char *breaker_state_name(enum breaker_state s);
/* OPEN: ms until a trial may go (0 once the cooldown has elapsed); other states: 0. */
int64_t breaker_retry_in_ms(const struct breaker *b, int64_t now_ms);
/* Calls and counted failures in the sliding window ending at now_ms (for the console). */
void breaker_window_counts(const struct breaker *b, int64_t now_ms, long *calls, long *failures);

#endif
