/*
 * limits.c - per-target rpm/tpm sliding windows, cooldowns and provider-reported remaining
 * counts (see limits.h for the rules).
 *
 * Threads: no state of its own; each struct limits belongs to the router thread.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "switchboard/limits.h"

static int64_t epoch_of(int64_t now_ms)
{
    int64_t q = now_ms / LIMITS_SLOT_MS;
    return (now_ms % LIMITS_SLOT_MS != 0 && now_ms < 0) ? q - 1 : q;
}

static size_t slot_index(int64_t epoch)
{
    return (size_t)(((epoch % LIMITS_SLOTS) + LIMITS_SLOTS) % LIMITS_SLOTS);
}

static bool slot_is_live(const struct limits_slot *s, int64_t now_ms)
{
    int64_t cur = epoch_of(now_ms);
    return s->epoch >= 0 && s->epoch <= cur && cur - s->epoch < LIMITS_SLOTS;
}

/* When a slot of this epoch leaves the window. */
static int64_t slot_expiry_ms(int64_t epoch)
{
    return (epoch + LIMITS_SLOTS) * LIMITS_SLOT_MS;
}

void limits_init(struct limits *l, long rpm, long tpm)
{
    memset(l, 0, sizeof(*l));
    for (size_t i = 0; i < LIMITS_SLOTS; i++)
        l->slots[i].epoch = -1;
    limits_set(l, rpm, tpm);
}

void limits_set(struct limits *l, long rpm, long tpm)
{
    l->rpm = rpm > 0 ? rpm : 0;
    l->tpm = tpm > 0 ? tpm : 0;
}

long limits_window_requests(const struct limits *l, int64_t now_ms)
{
    long n = 0;
    for (size_t i = 0; i < LIMITS_SLOTS; i++)
        if (slot_is_live(&l->slots[i], now_ms))
            n += l->slots[i].requests;
    return n;
}

int64_t limits_window_tokens(const struct limits *l, int64_t now_ms)
{
    int64_t n = 0;
    for (size_t i = 0; i < LIMITS_SLOTS; i++)
        if (slot_is_live(&l->slots[i], now_ms))
            n += l->slots[i].tokens;
    return n;
}

/* ---- The four checks --------------------------------------------------------------------- */

bool limits_is_cooling(const struct limits *l, int64_t now_ms)
{
    return now_ms < l->cooldown_until_ms;
}

static bool provider_requests_block(const struct limits *l, int64_t now_ms)
{
    return now_ms < l->requests_reset_at_ms && l->requests_left <= 0;
}

static bool provider_tokens_block(const struct limits *l, int64_t now_ms, long est)
{
    return now_ms < l->tokens_reset_at_ms && l->tokens_left < (est > 0 ? est : 1);
}

static bool rpm_blocks(const struct limits *l, int64_t now_ms)
{
    return l->rpm > 0 && limits_window_requests(l, now_ms) >= l->rpm;
}

static bool tpm_blocks(const struct limits *l, int64_t now_ms, long est)
{
    if (l->tpm <= 0)
        return false;
    int64_t used = limits_window_tokens(l, now_ms);
    return used > 0 && used + (est > 0 ? est : 0) > l->tpm;
}

bool limits_can_send(const struct limits *l, int64_t now_ms, long est_tokens)
{
    return !limits_is_cooling(l, now_ms) && !provider_requests_block(l, now_ms) &&
           !provider_tokens_block(l, now_ms, est_tokens) && !rpm_blocks(l, now_ms) &&
           !tpm_blocks(l, now_ms, est_tokens);
}

/* ---- When does it free up? --------------------------------------------------------------- */

/* The time by which enough of the window has expired that at most `keep` units of
 * requests (tokens == false) or tokens remain. Slots expire oldest first. */
static int64_t window_frees_at(const struct limits *l, int64_t now_ms, bool tokens, int64_t keep)
{
    int64_t cur = epoch_of(now_ms), left = 0;
    for (size_t i = 0; i < LIMITS_SLOTS; i++)
        if (slot_is_live(&l->slots[i], now_ms))
            left += tokens ? l->slots[i].tokens : l->slots[i].requests;
    for (int64_t e = cur - LIMITS_SLOTS + 1; e <= cur && left > keep; e++) {
        const struct limits_slot *s = &l->slots[slot_index(e)];
        if (s->epoch != e)
            continue;
        left -= tokens ? s->tokens : s->requests;
        if (left <= keep)
            return slot_expiry_ms(e);
    }
    return now_ms;
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

int64_t limits_ready_at_ms(const struct limits *l, int64_t now_ms, long est_tokens)
{
    int64_t t = now_ms;
    if (limits_is_cooling(l, now_ms))
        t = max64(t, l->cooldown_until_ms);
    if (provider_requests_block(l, now_ms))
        t = max64(t, l->requests_reset_at_ms);
    if (provider_tokens_block(l, now_ms, est_tokens))
        t = max64(t, l->tokens_reset_at_ms);
    if (rpm_blocks(l, now_ms))
        t = max64(t, window_frees_at(l, now_ms, false, l->rpm - 1));
    if (tpm_blocks(l, now_ms, est_tokens)) {
        int64_t keep = l->tpm - (est_tokens > 0 ? est_tokens : 0);
        t = max64(t, window_frees_at(l, now_ms, true, keep > 0 ? keep : 0));
    }
    return t;
}

/* ---- Recording --------------------------------------------------------------------------- */

void limits_note_sent(struct limits *l, int64_t now_ms, long est_tokens)
{
    int64_t epoch = epoch_of(now_ms);
    struct limits_slot *s = &l->slots[slot_index(epoch)];
    if (s->epoch < epoch)
        *s = (struct limits_slot){.epoch = epoch};
    s->requests++;
    s->tokens += est_tokens > 0 ? est_tokens : 0;
    if (now_ms < l->requests_reset_at_ms && l->requests_left > 0)
        l->requests_left--;
    if (now_ms < l->tokens_reset_at_ms)
        l->tokens_left -= est_tokens > 0 ? est_tokens : 0;
}

void limits_note_actual_tokens(struct limits *l, int64_t now_ms, int64_t sent_at_ms,
                               long est_tokens, long actual_tokens)
{
    int64_t epoch = epoch_of(sent_at_ms);
    struct limits_slot *s = &l->slots[slot_index(epoch)];
    if (s->epoch != epoch || !slot_is_live(s, now_ms))
        return;
    s->tokens += (int64_t)(actual_tokens > 0 ? actual_tokens : 0) -
                 (int64_t)(est_tokens > 0 ? est_tokens : 0);
    if (s->tokens < 0)
        s->tokens = 0;
}

void limits_cooldown_until(struct limits *l, int64_t until_ms, const char *source)
{
    if (until_ms <= l->cooldown_until_ms)
        return;
    l->cooldown_until_ms = until_ms;
    snprintf(l->cooldown_source, sizeof(l->cooldown_source), "%s", source ? source : "429");
}

void limits_clear_cooldown(struct limits *l)
{
    l->cooldown_until_ms = 0;
    l->cooldown_source[0] = '\0';
    l->requests_reset_at_ms = 0;
    l->tokens_reset_at_ms = 0;
}

void limits_note_ratelimit(struct limits *l, int64_t now_ms, const struct llm_ratelimit *rl)
{
    if (rl->remaining_requests >= 0 && rl->reset_requests_ms >= 0) {
        l->requests_left = rl->remaining_requests;
        l->requests_reset_at_ms = now_ms + rl->reset_requests_ms;
    }
    if (rl->remaining_tokens >= 0 && rl->reset_tokens_ms >= 0) {
        l->tokens_left = rl->remaining_tokens;
        l->tokens_reset_at_ms = now_ms + rl->reset_tokens_ms;
    }
    if (rl->retry_after_ms >= 0)
        limits_cooldown_until(l, now_ms + rl->retry_after_ms, "Retry-After");
}

/* ---- Explaining -------------------------------------------------------------------------- */

/* Local wall-clock time of the monotonic instant at_ms, rounded up to the second. */
static void format_clock(char *out, size_t len, int64_t now_ms, int64_t wall_now_ms, int64_t at_ms)
{
    int64_t wall = wall_now_ms + (at_ms - now_ms);
    time_t secs = (time_t)((wall + 999) / 1000);
    struct tm tm;
    if (!localtime_r(&secs, &tm) || strftime(out, len, "%H:%M:%S", &tm) == 0)
        snprintf(out, len, "+%llds", (long long)((at_ms - now_ms + 999) / 1000));
}

bool limits_blocked_reason(const struct limits *l, int64_t now_ms, int64_t wall_now_ms,
                           long est_tokens, char *buf, size_t len)
{
    char when[32];
    if (len > 0)
        buf[0] = '\0';
    if (limits_is_cooling(l, now_ms)) {
        format_clock(when, sizeof(when), now_ms, wall_now_ms, l->cooldown_until_ms);
        snprintf(buf, len, "rate-limited until %s (%s)", when, l->cooldown_source);
    } else if (provider_requests_block(l, now_ms)) {
        format_clock(when, sizeof(when), now_ms, wall_now_ms, l->requests_reset_at_ms);
        snprintf(buf, len, "provider reports %ld requests left until %s", l->requests_left, when);
    } else if (provider_tokens_block(l, now_ms, est_tokens)) {
        format_clock(when, sizeof(when), now_ms, wall_now_ms, l->tokens_reset_at_ms);
        snprintf(buf, len, "provider reports %ld tokens left (%ld needed) until %s",
                 l->tokens_left > 0 ? l->tokens_left : 0, est_tokens, when);
    } else if (rpm_blocks(l, now_ms)) {
        snprintf(buf, len, "rpm %ld reached", l->rpm);
    } else if (tpm_blocks(l, now_ms, est_tokens)) {
        snprintf(buf, len, "tpm %ld: %ld tokens would exceed", l->tpm, est_tokens);
    } else {
        return false;
    }
    return true;
}
