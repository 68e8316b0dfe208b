/*
 * fuzz_ratelimit.c - libFuzzer target for the rate-limit and date header parsing in
 * llm_ratelimit_feed_header and llm_parse_go_duration_ms. Input: a byte choosing the header,
 * 5 bytes added to "now" (2023-11-14 plus up to ~35 years), the value.
 * Properties: no crash or UB; every field is -1 (not given) or a delay in [0, a century];
 * remaining counts are -1 or >= 0; and a time the input picks, printed as an IMF-fixdate and
 * as RFC 3339, parses back to exactly its distance from now (clamped at 0).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "switchboard/llm.h"

#define CENTURY_MS ((int64_t)1000 * 86400 * 365 * 100)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const names[] = {
    "Retry-After",
    "retry-after-ms",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-tokens-remaining",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-reset",
    "RETRY-AFTER",
    "x-unknown",
};

static void check_delay(int64_t v)
{
    if (v != -1 && (v < 0 || v > CENTURY_MS))
        __builtin_trap();
}

static void check(const struct llm_ratelimit *rl)
{
    check_delay(rl->retry_after_ms);
    check_delay(rl->reset_requests_ms);
    check_delay(rl->reset_tokens_ms);
    if (rl->remaining_requests < -1 || rl->remaining_tokens < -1)
        __builtin_trap();
}

/* A time the input picks, as both date formats, must read back exactly. */
static void round_trip(int64_t now_ms, uint32_t ahead_s)
{
    int64_t at_s = now_ms / 1000 + ahead_s;
    time_t t = (time_t)at_s;
    struct tm tm;
    char http[64], rfc[64];
    if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 > 9999)
        return;
    strftime(http, sizeof http, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    strftime(rfc, sizeof rfc, "%Y-%m-%dT%H:%M:%SZ", &tm);
    int64_t want = at_s * 1000 - now_ms;
    want = want < 0 ? 0 : want > CENTURY_MS ? CENTURY_MS : want;
    struct llm_ratelimit rl;
    llm_ratelimit_init(&rl);
    llm_ratelimit_feed_header(&rl, "Retry-After", http, now_ms);
    llm_ratelimit_feed_header(&rl, "anthropic-ratelimit-tokens-reset", rfc, now_ms);
    if (rl.retry_after_ms != want || rl.reset_tokens_ms != want)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 6)
        return 0;
    const char *name = names[data[0] % (sizeof names / sizeof names[0])];
    int64_t now = 0;
    for (int i = 1; i <= 5; i++)
        now = now * 256 + data[i]; /* up to 2^40 ms: about 35 years */
    now += (int64_t)1700000000 * 1000;
    char *value = malloc(size - 6 + 1);
    memcpy(value, data + 6, size - 6);
    value[size - 6] = '\0';

    struct llm_ratelimit rl;
    llm_ratelimit_init(&rl);
    llm_ratelimit_feed_header(&rl, name, value, now);
    check(&rl);
    int64_t ms = -2;
    if (llm_parse_go_duration_ms(value, &ms) && (ms < 0 || ms > CENTURY_MS))
        __builtin_trap();
    round_trip(now, (uint32_t)data[1] << 24 | (uint32_t)data[2] << 16 | (uint32_t)data[3] << 8 |
                        data[4]);
    free(value);
    return 0;
}
