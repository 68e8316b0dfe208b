/*
 * test_limits.c - rpm/tpm sliding windows, Retry-After cooldowns, provider-reported counts,
 * and the texts `route --explain` shows.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <cmocka.h>

#include "switchboard/limits.h"

#define NOON_UTC_MS INT64_C(43200000) /* 1970-01-01 12:00:00 UTC */

static int setup_utc(void **state)
{
    (void)state;
    setenv("TZ", "UTC", 1);
    tzset();
    return 0;
}

static struct llm_ratelimit no_headers(void)
{
    return (struct llm_ratelimit){-1, -1, -1, -1, -1};
}

static void send_n(struct limits *l, int64_t now, int n, long tokens)
{
    for (int i = 0; i < n; i++) {
        assert_true(limits_can_send(l, now, tokens));
        limits_note_sent(l, now, tokens);
    }
}

static void assert_reason(const struct limits *l, int64_t now, long est, const char *want)
{
    char buf[160];
    assert_true(limits_blocked_reason(l, now, NOON_UTC_MS + now, est, buf, sizeof(buf)));
    assert_string_equal(buf, want);
}

static void test_limits_unlimited_by_default(void **state)
{
    (void)state;
    struct limits l;
    char buf[64];
    limits_init(&l, 0, -5);
    send_n(&l, 100, 10000, 100000);
    assert_false(limits_blocked_reason(&l, 100, NOON_UTC_MS, 100000, buf, sizeof(buf)));
    assert_string_equal(buf, "");
    assert_int_equal(limits_ready_at_ms(&l, 100, 1), 100);
}

static void test_limits_block_at_rpm_and_unblock_when_the_window_slides(void **state)
{
    (void)state;
    struct limits l;
    limits_init(&l, 60, 0);
    send_n(&l, 0, 30, 0);
    send_n(&l, 30000, 30, 0);
    assert_false(limits_can_send(&l, 30000, 0));
    assert_reason(&l, 30000, 0, "rpm 60 reached");
    assert_int_equal(limits_window_requests(&l, 30000), 60);
    assert_int_equal(limits_ready_at_ms(&l, 30000, 0), 61000);
    assert_false(limits_can_send(&l, 60999, 0));
    assert_true(limits_can_send(&l, 61000, 0)); /* the first 30 left the window */
    assert_int_equal(limits_window_requests(&l, 61000), 30);
    send_n(&l, 61000, 30, 0);
    assert_false(limits_can_send(&l, 61000, 0));
    assert_int_equal(limits_ready_at_ms(&l, 61000, 0), 91000);
}

static void test_limits_count_a_call_for_60_to_61_seconds(void **state)
{
    (void)state;
    struct limits l;
    limits_init(&l, 1, 0);
    limits_note_sent(&l, 999, 0);
    assert_false(limits_can_send(&l, 60999, 0));
    assert_true(limits_can_send(&l, 61000, 0)); /* 60.001 s later */
    limits_note_sent(&l, 61000, 0);
    assert_false(limits_can_send(&l, 121999, 0));
    assert_true(limits_can_send(&l, 122000, 0)); /* 61 s later */
}

static void test_limits_tpm_blocks_when_the_estimate_would_exceed(void **state)
{
    (void)state;
    struct limits l;
    limits_init(&l, 0, 90000);
    send_n(&l, 1000, 1, 89000);
    assert_false(limits_can_send(&l, 2000, 1200));
    assert_reason(&l, 2000, 1200, "tpm 90000: 1200 tokens would exceed");
    assert_true(limits_can_send(&l, 2000, 1000));
    assert_int_equal(limits_ready_at_ms(&l, 2000, 1200), 62000);
    assert_true(limits_can_send(&l, 62000, 1200));
}

static void test_limits_let_an_oversized_call_go_on_an_empty_window(void **state)
{
    (void)state;
    struct limits l;
    limits_init(&l, 0, 1000);
    assert_true(limits_can_send(&l, 0, 5000)); /* never stuck forever */
    limits_note_sent(&l, 0, 5000);
    assert_false(limits_can_send(&l, 1000, 5000));
    assert_false(limits_can_send(&l, 1000, 1));
    assert_int_equal(limits_ready_at_ms(&l, 1000, 5000), 61000);
    assert_true(limits_can_send(&l, 61000, 5000));
}

static void test_limits_actual_tokens_correct_the_estimate(void **state)
{
    (void)state;
    struct limits l;
    limits_init(&l, 0, 10000);
    limits_note_sent(&l, 100, 8000);
    assert_false(limits_can_send(&l, 200, 3000));
    limits_note_actual_tokens(&l, 200, 100, 8000, 2000);
    assert_int_equal(limits_window_tokens(&l, 200), 2000);
    assert_true(limits_can_send(&l, 200, 3000));
    limits_note_actual_tokens(&l, 300, 100, 2000, 9500); /* larger than estimated */
    assert_int_equal(limits_window_tokens(&l, 300), 9500);
    limits_note_actual_tokens(&l, 300, 100, 50000, 0); /* never below zero */
    assert_int_equal(limits_window_tokens(&l, 300), 0);
    limits_note_sent(&l, 500, 100);
    limits_note_actual_tokens(&l, 70000, 500, 100, 99999); /* gone from the window */
    assert_int_equal(limits_window_tokens(&l, 70000), 0);
    assert_int_equal(limits_window_tokens(&l, 60999), 100);
}

static void test_limits_cooldown_honours_retry_after_to_the_ms(void **state)
{
    (void)state;
    struct limits l;
    struct llm_ratelimit rl = no_headers();
    limits_init(&l, 0, 0);
    rl.retry_after_ms = 2500;
    limits_note_ratelimit(&l, 1000, &rl);
    assert_true(limits_is_cooling(&l, 3499));
    assert_false(limits_can_send(&l, 3499, 0));
    assert_int_equal(limits_ready_at_ms(&l, 1000, 0), 3500);
    assert_reason(&l, 1000, 0, "rate-limited until 12:00:04 (Retry-After)"); /* 12:00:03.5 */
    assert_false(limits_is_cooling(&l, 3500));
    assert_true(limits_can_send(&l, 3500, 0));
}

static void test_limits_cooldown_only_extends(void **state)
{
    (void)state;
    struct limits l;
    limits_init(&l, 0, 0);
    limits_cooldown_until(&l, 5000, "Retry-After");
    limits_cooldown_until(&l, 3000, NULL);
    assert_true(limits_is_cooling(&l, 4999));
    assert_reason(&l, 0, 0, "rate-limited until 12:00:05 (Retry-After)");
    limits_cooldown_until(&l, 8000, NULL);
    assert_reason(&l, 0, 0, "rate-limited until 12:00:08 (429)");
    limits_clear_cooldown(&l); /* operator: force live */
    assert_false(limits_is_cooling(&l, 0));
    assert_true(limits_can_send(&l, 0, 0));
}

static void test_limits_hold_when_provider_reports_no_requests_left(void **state)
{
    (void)state;
    struct limits l;
    struct llm_ratelimit rl = no_headers();
    limits_init(&l, 0, 0);
    rl.remaining_requests = 2;
    rl.reset_requests_ms = 10000;
    limits_note_ratelimit(&l, 0, &rl);
    send_n(&l, 10, 2, 0); /* each call uses one up */
    assert_false(limits_can_send(&l, 20, 0));
    assert_reason(&l, 20, 0, "provider reports 0 requests left until 12:00:10");
    assert_int_equal(limits_ready_at_ms(&l, 20, 0), 10000);
    assert_false(limits_can_send(&l, 9999, 0));
    assert_true(limits_can_send(&l, 10000, 0)); /* the reported window reset */
}

static void test_limits_hold_when_provider_tokens_are_below_the_estimate(void **state)
{
    (void)state;
    struct limits l;
    struct llm_ratelimit rl = no_headers();
    limits_init(&l, 0, 0);
    rl.remaining_tokens = 500;
    rl.reset_tokens_ms = 6000;
    limits_note_ratelimit(&l, 0, &rl);
    assert_false(limits_can_send(&l, 0, 1200));
    assert_reason(&l, 0, 1200, "provider reports 500 tokens left (1200 needed) until 12:00:06");
    assert_true(limits_can_send(&l, 0, 400));
    limits_note_sent(&l, 0, 400);
    assert_false(limits_can_send(&l, 0, 101));
    assert_true(limits_can_send(&l, 6000, 1200));
    /* a fresh report replaces the old one */
    rl.remaining_tokens = 0;
    rl.reset_tokens_ms = 500;
    limits_note_ratelimit(&l, 7000, &rl);
    assert_false(limits_can_send(&l, 7000, 0));
    assert_true(limits_can_send(&l, 7500, 0));
}

static void test_limits_ignore_remaining_counts_without_a_reset_time(void **state)
{
    (void)state;
    struct limits l;
    struct llm_ratelimit rl = no_headers();
    limits_init(&l, 0, 0);
    rl.remaining_requests = 0;
    rl.remaining_tokens = 0;
    limits_note_ratelimit(&l, 0, &rl);
    assert_true(limits_can_send(&l, 0, 100));
    assert_false(limits_is_cooling(&l, 0));
}

static void test_limits_check_cooldown_before_the_windows(void **state)
{
    (void)state;
    struct limits l;
    limits_init(&l, 1, 0);
    send_n(&l, 0, 1, 0);
    limits_cooldown_until(&l, 90000, "Retry-After");
    assert_reason(&l, 0, 0, "rate-limited until 12:01:30 (Retry-After)");
    assert_int_equal(limits_ready_at_ms(&l, 0, 0), 90000); /* the later of the two */
}

static void test_limits_reload_keeps_the_window(void **state)
{
    (void)state;
    struct limits l;
    limits_init(&l, 100, 0);
    send_n(&l, 0, 40, 0);
    limits_set(&l, 30, 0);
    assert_false(limits_can_send(&l, 1, 0));
    assert_int_equal(limits_ready_at_ms(&l, 1, 0), 61000);
    limits_set(&l, 0, 0);
    assert_true(limits_can_send(&l, 1, 0));
}

static void test_limits_forget_everything_after_a_long_idle_gap(void **state)
{
    (void)state;
    struct limits l;
    limits_init(&l, 5, 1000);
    send_n(&l, 0, 5, 200);
    assert_false(limits_can_send(&l, 0, 0));
    int64_t later = INT64_C(86400000);
    assert_int_equal(limits_window_requests(&l, later), 0);
    assert_int_equal(limits_window_tokens(&l, later), 0);
    send_n(&l, later, 5, 200);
    assert_false(limits_can_send(&l, later, 0));
}

static void test_limits_blocked_reason_truncates_safely(void **state)
{
    (void)state;
    struct limits l;
    char small[8];
    limits_init(&l, 1, 0);
    send_n(&l, 0, 1, 0);
    assert_true(limits_blocked_reason(&l, 0, NOON_UTC_MS, 0, small, sizeof(small)));
    assert_string_equal(small, "rpm 1 r");
    assert_true(limits_blocked_reason(&l, 0, NOON_UTC_MS, 0, NULL, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limits_unlimited_by_default),
        cmocka_unit_test(test_limits_block_at_rpm_and_unblock_when_the_window_slides),
        cmocka_unit_test(test_limits_count_a_call_for_60_to_61_seconds),
        cmocka_unit_test(test_limits_tpm_blocks_when_the_estimate_would_exceed),
        cmocka_unit_test(test_limits_let_an_oversized_call_go_on_an_empty_window),
        cmocka_unit_test(test_limits_actual_tokens_correct_the_estimate),
        cmocka_unit_test(test_limits_cooldown_honours_retry_after_to_the_ms),
        cmocka_unit_test(test_limits_cooldown_only_extends),
        cmocka_unit_test(test_limits_hold_when_provider_reports_no_requests_left),
        cmocka_unit_test(test_limits_hold_when_provider_tokens_are_below_the_estimate),
        cmocka_unit_test(test_limits_ignore_remaining_counts_without_a_reset_time),
        cmocka_unit_test(test_limits_check_cooldown_before_the_windows),
        cmocka_unit_test(test_limits_reload_keeps_the_window),
        cmocka_unit_test(test_limits_forget_everything_after_a_long_idle_gap),
        cmocka_unit_test(test_limits_blocked_reason_truncates_safely),
    };
    return cmocka_run_group_tests(tests, setup_utc, NULL);
}
