/*
 * breaker.c - per-target circuit breaker (see breaker.h for the state machine).
 *
 * The error-rate window is BREAKER_WINDOW_SLOTS buckets of window_ms / 10, recycled by their
 * interval number (like hist.c's whist), so it covers the last 90..100% of window_ms.
 *
 * Threads: no state of its own; each struct breaker belongs to the router thread.
 */
#include <stdio.h>
#include <string.h>

#include "switchboard/breaker.h"

bool breaker_counts_failure(enum llm_errclass cls)
{
    switch (cls) {
    case LLM_ERR_DNS:
    case LLM_ERR_CONNECT:
    case LLM_ERR_TLS:
    case LLM_ERR_TIMEOUT:
    case LLM_ERR_SERVER:
    case LLM_ERR_OVERLOADED:
    case LLM_ERR_BAD_RESPONSE:
    case LLM_ERR_TRUNCATED:
        return true;
    case LLM_ERR_NONE:
    case LLM_ERR_RATE_LIMIT:
    case LLM_ERR_AUTH:
    case LLM_ERR_BAD_REQUEST:
    case LLM_ERR_CONTEXT_LENGTH:
    case LLM_ERR_CANCELLED:
    case LLM_ERR_NO_KEY:
    case LLM_ERR_INTERNAL:
        return false;
    }
    return false;
}

const char *breaker_state_name(enum breaker_state s)
{
    switch (s) {
    case BREAKER_CLOSED:
        return "closed";
    case BREAKER_OPEN:
        return "open";
    case BREAKER_HALF_OPEN:
        return "half-open";
    }
    return "unknown";
}

void breaker_params_default(struct breaker_params *p)
{
    p->failures = 5;
    p->error_rate = 0.5;
    p->window_ms = 30000;
    p->min_volume = 20;
    p->cooldown_ms = 30000;
    p->cooldown_max_ms = 300000;
    p->half_open_trials = 1;
    p->slow_strikes = 3;
}

static void params_clamp(struct breaker_params *p)
{
    if (p->error_rate > 1)
        p->error_rate = 1;
    if (p->window_ms < BREAKER_WINDOW_SLOTS)
        p->window_ms = BREAKER_WINDOW_SLOTS;
    if (p->min_volume < 1)
        p->min_volume = 1;
    if (p->cooldown_ms < 1)
        p->cooldown_ms = 1;
    if (p->half_open_trials < 1)
        p->half_open_trials = 1;
}

/* ---- Sliding window ---------------------------------------------------------------------- */

static int64_t slot_len(const struct breaker *b)
{
    return b->params.window_ms / BREAKER_WINDOW_SLOTS;
}

static int64_t epoch_of(const struct breaker *b, int64_t now_ms)
{
    int64_t len = slot_len(b), q = now_ms / len;
    return (now_ms % len != 0 && now_ms < 0) ? q - 1 : q;
}

static void window_clear(struct breaker *b)
{
    for (size_t i = 0; i < BREAKER_WINDOW_SLOTS; i++)
        b->window[i] = (struct breaker_slot){.epoch = -1};
}

static void window_add(struct breaker *b, int64_t now_ms, bool failure)
{
    int64_t epoch = epoch_of(b, now_ms);
    struct breaker_slot *s = &b->window[(
        size_t)(((epoch % BREAKER_WINDOW_SLOTS) + BREAKER_WINDOW_SLOTS) % BREAKER_WINDOW_SLOTS)];
    if (s->epoch < epoch)
        *s = (struct breaker_slot){.epoch = epoch};
    s->calls++;
    if (failure)
        s->failures++;
}

void breaker_window_counts(const struct breaker *b, int64_t now_ms, long *calls, long *failures)
{
    int64_t cur = epoch_of(b, now_ms);
    long c = 0, f = 0;
    for (size_t i = 0; i < BREAKER_WINDOW_SLOTS; i++) {
        const struct breaker_slot *s = &b->window[i];
        if (s->epoch >= 0 && s->epoch <= cur && cur - s->epoch < BREAKER_WINDOW_SLOTS) {
            c += (long)s->calls;
            f += (long)s->failures;
        }
    }
    *calls = c;
    *failures = f;
}

/* ---- Transitions ------------------------------------------------------------------------- */

static void counters_clear(struct breaker *b)
{
    b->consecutive = 0;
    b->slow_consecutive = 0;
    b->trials_started = 0;
    b->trials_succeeded = 0;
    window_clear(b);
}

static void no_change(const struct breaker *b, int64_t now_ms, struct breaker_transition *tr)
{
    if (!tr)
        return;
    tr->from = tr->to = b->state;
    tr->at_ms = now_ms;
    tr->reason[0] = '\0';
}

/* Records and reports a transition; reason is copied (truncated to fit). */
static bool move_to(struct breaker *b, int64_t now_ms, enum breaker_state to,
                    struct breaker_transition *tr, const char *reason)
{
    struct breaker_transition t = {.from = b->state, .to = to, .at_ms = now_ms};
    snprintf(t.reason, sizeof(t.reason), "%s", reason);

    counters_clear(b);
    if (to == BREAKER_CLOSED) {
        b->doublings = 0;
        b->cooldown_ms = b->params.cooldown_ms;
    }
    if (to == BREAKER_OPEN)
        b->open_until_ms = now_ms + b->cooldown_ms;
    b->state = to;
    b->since_ms = now_ms;
    b->n_transitions++;
    b->last = t;
    if (tr)
        *tr = t;
    return true;
}

/* base * 2^doublings, capped at cooldown_max_ms (no growth when the cap is <= base). */
static int64_t cooldown_for(const struct breaker_params *p, int doublings)
{
    int64_t c = p->cooldown_ms;
    for (int i = 0; i < doublings && c < p->cooldown_max_ms; i++)
        c = c > p->cooldown_max_ms / 2 ? p->cooldown_max_ms : c * 2;
    return c;
}

/* A re-open from HALF_OPEN: the next cooldown is twice as long, up to the cap. */
static void cooldown_grow(struct breaker *b)
{
    if (b->cooldown_ms < b->params.cooldown_max_ms)
        b->doublings++;
    b->cooldown_ms = cooldown_for(&b->params, b->doublings);
}

/* "30s", "1.5s", "800ms". */
static void format_duration(char *out, size_t len, int64_t ms)
{
    if (ms >= 1000 && ms % 1000 == 0)
        snprintf(out, len, "%llds", (long long)(ms / 1000));
    else if (ms >= 1000)
        snprintf(out, len, "%.1fs", (double)ms / 1000.0);
    else
        snprintf(out, len, "%lldms", (long long)ms);
}

/* ---- Lifecycle --------------------------------------------------------------------------- */

void breaker_init(struct breaker *b, const struct breaker_params *p, int64_t now_ms)
{
    memset(b, 0, sizeof(*b));
    b->params = *p;
    params_clamp(&b->params);
    b->state = BREAKER_CLOSED;
    b->cooldown_ms = b->params.cooldown_ms;
    b->since_ms = now_ms;
    b->last = (struct breaker_transition){.from = BREAKER_CLOSED, .to = BREAKER_CLOSED};
    counters_clear(b);
}

void breaker_set_params(struct breaker *b, const struct breaker_params *p)
{
    int64_t old_window = b->params.window_ms;
    b->params = *p;
    params_clamp(&b->params);
    b->cooldown_ms = cooldown_for(&b->params, b->doublings);
    if (old_window != b->params.window_ms)
        window_clear(b); /* slot numbers changed meaning */
}

/* ---- Decisions --------------------------------------------------------------------------- */

bool breaker_can_take(const struct breaker *b, int64_t now_ms)
{
    switch (b->state) {
    case BREAKER_CLOSED:
        return true;
    case BREAKER_OPEN:
        /* after the cooldown it turns HALF_OPEN with every trial slot free */
        return now_ms >= b->open_until_ms;
    case BREAKER_HALF_OPEN:
        return b->trials_started + b->trials_succeeded < b->params.half_open_trials;
    }
    return false;
}

void breaker_why_not(const struct breaker *b, int64_t now_ms, char *why, size_t whylen)
{
    why[0] = '\0';
    if (breaker_can_take(b, now_ms))
        return;
    if (b->state == BREAKER_OPEN) {
        char left[32];
        format_duration(left, sizeof left, breaker_retry_in_ms(b, now_ms));
        snprintf(why, whylen, "breaker open (%s; half-open in %s)", b->last.reason, left);
    } else {
        snprintf(why, whylen, "breaker half-open, %ld trial call%s in flight", b->trials_started,
                 b->trials_started == 1 ? "" : "s");
    }
}

bool breaker_allow(struct breaker *b, int64_t now_ms, struct breaker_transition *tr)
{
    no_change(b, now_ms, tr);
    if (!breaker_can_take(b, now_ms))
        return false;
    switch (b->state) {
    case BREAKER_CLOSED:
        return true;
    case BREAKER_OPEN:
        move_to(b, now_ms, BREAKER_HALF_OPEN, tr, "cooldown elapsed");
        b->trials_started++;
        return true;
    case BREAKER_HALF_OPEN:
        b->trials_started++;
        return true;
    }
    return false;
}

static void release_trial(struct breaker *b)
{
    if (b->trials_started > 0)
        b->trials_started--;
}

void breaker_release(struct breaker *b)
{
    if (b->state == BREAKER_HALF_OPEN)
        release_trial(b);
}

/* A successful trial (call or probe) in HALF_OPEN. */
static bool half_open_success(struct breaker *b, int64_t now_ms, struct breaker_transition *tr,
                              const char *what)
{
    b->trials_succeeded++;
    if (b->trials_succeeded < b->params.half_open_trials)
        return false;
    char why[BREAKER_REASON_LEN];
    if (b->params.half_open_trials == 1)
        snprintf(why, sizeof(why), "%s succeeded", what);
    else
        snprintf(why, sizeof(why), "%ld trials succeeded", b->params.half_open_trials);
    return move_to(b, now_ms, BREAKER_CLOSED, tr, why);
}

bool breaker_note_success(struct breaker *b, int64_t now_ms, struct breaker_transition *tr)
{
    no_change(b, now_ms, tr);
    switch (b->state) {
    case BREAKER_CLOSED:
        b->consecutive = 0;
        b->slow_consecutive = 0;
        window_add(b, now_ms, false);
        return false;
    case BREAKER_OPEN:
        return false; /* a call from before it opened */
    case BREAKER_HALF_OPEN:
        release_trial(b);
        return half_open_success(b, now_ms, tr, "trial call");
    }
    return false;
}

/* CLOSED: after a counted failure, should it open? */
static bool closed_check_open(struct breaker *b, int64_t now_ms, enum llm_errclass cls,
                              struct breaker_transition *tr)
{
    const struct breaker_params *p = &b->params;
    char why[BREAKER_REASON_LEN], span[32];
    if (p->failures > 0 && b->consecutive >= p->failures) {
        snprintf(why, sizeof(why), "%ld consecutive failures (last: %s)", b->consecutive,
                 llm_errclass_name(cls));
        return move_to(b, now_ms, BREAKER_OPEN, tr, why);
    }
    long calls, fails;
    breaker_window_counts(b, now_ms, &calls, &fails);
    if (p->error_rate <= 0 || calls < p->min_volume ||
        (double)fails < p->error_rate * (double)calls)
        return false;
    format_duration(span, sizeof(span), p->window_ms);
    snprintf(why, sizeof(why), "error rate %.0f%% over %s (%ld/%ld)",
             100.0 * (double)fails / (double)calls, span, fails, calls);
    return move_to(b, now_ms, BREAKER_OPEN, tr, why);
}

/* A counted failure of a trial call: back to OPEN with a longer cooldown. */
static bool half_open_failure(struct breaker *b, int64_t now_ms, enum llm_errclass cls,
                              struct breaker_transition *tr)
{
    char why[BREAKER_REASON_LEN];
    cooldown_grow(b);
    snprintf(why, sizeof(why), "trial call failed: %s", llm_errclass_name(cls));
    return move_to(b, now_ms, BREAKER_OPEN, tr, why);
}

bool breaker_note_failure(struct breaker *b, int64_t now_ms, enum llm_errclass cls,
                          struct breaker_transition *tr)
{
    no_change(b, now_ms, tr);
    bool counts = breaker_counts_failure(cls);
    switch (b->state) {
    case BREAKER_CLOSED:
        if (!counts)
            return false;
        b->consecutive++;
        window_add(b, now_ms, true);
        return closed_check_open(b, now_ms, cls, tr);
    case BREAKER_OPEN:
        return false;
    case BREAKER_HALF_OPEN:
        release_trial(b);
        return counts && half_open_failure(b, now_ms, cls, tr);
    }
    return false;
}

/* A slow strike while CLOSED: opens it after slow_strikes in a row. */
static bool closed_slow(struct breaker *b, int64_t now_ms, int64_t waited_ms,
                        struct breaker_transition *tr)
{
    b->slow_consecutive++;
    window_add(b, now_ms, true);
    if (b->params.slow_strikes > 0 && b->slow_consecutive >= b->params.slow_strikes) {
        char why[BREAKER_REASON_LEN], span[32];
        format_duration(span, sizeof span, waited_ms);
        snprintf(why, sizeof why, "slow: no first byte in %s on %ld calls", span,
                 b->slow_consecutive);
        return move_to(b, now_ms, BREAKER_OPEN, tr, why);
    }
    return closed_check_open(b, now_ms, LLM_ERR_TIMEOUT, tr);
}

bool breaker_note_slow(struct breaker *b, int64_t now_ms, int64_t waited_ms,
                       struct breaker_transition *tr)
{
    no_change(b, now_ms, tr);
    switch (b->state) {
    case BREAKER_CLOSED:
        return closed_slow(b, now_ms, waited_ms, tr);
    case BREAKER_OPEN:
        return false;
    case BREAKER_HALF_OPEN: {
        char why[BREAKER_REASON_LEN], span[32];
        release_trial(b);
        cooldown_grow(b);
        format_duration(span, sizeof span, waited_ms);
        snprintf(why, sizeof why, "trial call failed: slow (no first byte in %s)", span);
        return move_to(b, now_ms, BREAKER_OPEN, tr, why);
    }
    }
    return false;
}

static bool open_probe(struct breaker *b, int64_t now_ms, bool ok, bool can_close,
                       struct breaker_transition *tr)
{
    if (!ok)
        return false; /* the cooldown runs on: recovery is not pushed back */
    if (!can_close)
        return move_to(b, now_ms, BREAKER_HALF_OPEN, tr, "probe succeeded: cooldown ended early");
    if (now_ms < b->open_until_ms)
        return false;
    if (b->params.half_open_trials == 1)
        return move_to(b, now_ms, BREAKER_CLOSED, tr, "chat probe succeeded");
    char why[BREAKER_REASON_LEN];
    snprintf(why, sizeof(why), "chat probe succeeded (1/%ld trials)", b->params.half_open_trials);
    move_to(b, now_ms, BREAKER_HALF_OPEN, tr, why);
    b->trials_succeeded = 1;
    return true;
}

bool breaker_note_probe(struct breaker *b, int64_t now_ms, bool ok, bool can_close,
                        struct breaker_transition *tr)
{
    no_change(b, now_ms, tr);
    switch (b->state) {
    case BREAKER_CLOSED:
        return false;
    case BREAKER_OPEN:
        return open_probe(b, now_ms, ok, can_close, tr);
    case BREAKER_HALF_OPEN:
        if (ok)
            return can_close && half_open_success(b, now_ms, tr, "chat probe");
        cooldown_grow(b);
        return move_to(b, now_ms, BREAKER_OPEN, tr, "probe failed");
    }
    return false;
}

bool breaker_reset(struct breaker *b, int64_t now_ms, struct breaker_transition *tr)
{
    no_change(b, now_ms, tr);
    if (b->state != BREAKER_CLOSED)
        return move_to(b, now_ms, BREAKER_CLOSED, tr, "reset by operator");
    counters_clear(b);
    b->doublings = 0;
    b->cooldown_ms = b->params.cooldown_ms;
    return false;
}

int64_t breaker_retry_in_ms(const struct breaker *b, int64_t now_ms)
{
    if (b->state != BREAKER_OPEN || now_ms >= b->open_until_ms)
        return 0;
    return b->open_until_ms - now_ms;
}
