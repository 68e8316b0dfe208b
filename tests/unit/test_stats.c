/*
 * test_stats.c - per-target counters, windowed percentiles, req/s series, error %, summary.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "switchboard/stats.h"

static struct stats st; /* ~180 KB: keep it off the stack */

static int setup(void **state)
{
    (void)state;
    stats_init(&st);
    return 0;
}

static struct stats_result ok_result(int64_t latency_us, long in, long out)
{
    struct stats_result r = {.errclass = LLM_ERR_NONE, .latency_us = latency_us, .ttft_us = -1};
    r.usage = (struct llm_usage){.present = true, .input_tokens = in, .output_tokens = out};
    return r;
}

static struct stats_result err_result(enum llm_errclass c, const char *text)
{
    return (struct stats_result){
        .errclass = c, .latency_us = 5000, .ttft_us = -1, .error_text = text};
}

static void call(int64_t start, int64_t end, const struct stats_result *r)
{
    stats_note_start(&st, start);
    stats_note_finish(&st, end, r);
}

static void test_stats_count_calls_outcomes_and_in_flight(void **state)
{
    (void)state;
    struct stats_result ok = ok_result(1000, 10, 20);
    struct stats_result bad = err_result(LLM_ERR_SERVER, "boom");
    stats_note_start(&st, 0);
    stats_note_start(&st, 0);
    stats_note_start(&st, 0);
    assert_int_equal(st.in_flight, 3);
    assert_int_equal(st.calls, 3);
    stats_note_finish(&st, 10, &ok);
    stats_note_finish(&st, 10, &bad);
    assert_int_equal(st.in_flight, 1);
    assert_int_equal(st.successes, 1);
    assert_int_equal(st.errors[LLM_ERR_SERVER], 1);
    assert_int_equal(st.errors[LLM_ERR_NONE], 0);
    stats_note_finish(&st, 10, &ok);
    stats_note_finish(&st, 10, &ok); /* unmatched finish: never below zero */
    assert_int_equal(st.in_flight, 0);
    stats_note_retry(&st);
    stats_note_hedge(&st);
    stats_note_hedge(&st);
    assert_int_equal(st.retries, 1);
    assert_int_equal(st.hedges, 2);
}

static void test_stats_record_latency_for_successes_and_ttft_for_any_first_byte(void **state)
{
    (void)state;
    struct stats_result ok = ok_result(200000, 1, 1);
    struct stats_result bad = err_result(LLM_ERR_TRUNCATED, "cut");
    ok.ttft_us = 50000;
    bad.ttft_us = 40000;
    bad.latency_us = 900000;
    call(0, 100, &ok);
    call(0, 100, &bad);
    assert_int_equal(hist_count(&st.latency_all), 1);
    assert_int_equal(hist_max_us(&st.latency_all), 200000);
    assert_int_equal(hist_count(&st.ttft_all), 2);
    assert_int_equal(whist_count(&st.latency_1m, 100), 1);
    assert_int_equal(whist_count(&st.ttft_5m, 100), 2);
    assert_int_equal(st.truncated, 1);
    assert_int_equal(st.errors[LLM_ERR_TRUNCATED], 1);
}

static void test_stats_percentiles_cover_one_and_five_minutes(void **state)
{
    (void)state;
    struct stats_summary sum;
    for (int i = 1; i <= 100; i++) {
        struct stats_result r = ok_result(i * 10000, 1, 1); /* 10 .. 1000 ms */
        call(1000, 2000, &r);
    }
    stats_summarize(&st, 3000, &sum);
    assert_true(fabs(sum.latency_1m[0] - 500) <= 15); /* p50 */
    assert_true(fabs(sum.latency_1m[1] - 950) <= 30); /* p95 */
    assert_true(fabs(sum.latency_1m[2] - 990) <= 30); /* p99 */
    assert_true(sum.latency_5m[0] == sum.latency_1m[0]);
    stats_summarize(&st, 62000, &sum); /* one minute later: gone from the 1m window */
    assert_true(sum.latency_1m[0] == 0);
    assert_true(fabs(sum.latency_5m[0] - 500) <= 15);
    stats_summarize(&st, 302000, &sum);
    assert_true(sum.latency_5m[2] == 0);
    assert_int_equal(sum.latency_count, 100); /* the since-start histogram keeps them */
}

static void test_stats_rate_series_counts_whole_seconds(void **state)
{
    (void)state;
    double series[STATS_RATE_SECONDS];
    for (int i = 0; i < 3; i++)
        stats_note_start(&st, 10000 + i);
    for (int i = 0; i < 5; i++)
        stats_note_start(&st, 11999);
    for (int i = 0; i < 7; i++)
        stats_note_start(&st, 12000); /* the current second: left out */
    stats_rate_series(&st, 12500, series, STATS_RATE_SECONDS);
    assert_true(series[58] == 3);
    assert_true(series[59] == 5);
    for (int i = 0; i < 58; i++)
        assert_true(series[i] == 0);
    assert_true(fabs(stats_req_per_s(&st, 12500) - 8.0 / 60) < 1e-9);
    assert_true(fabs(stats_req_per_s(&st, 13000) - 15.0 / 60) < 1e-9);
    double last2[2];
    stats_rate_series(&st, 13000, last2, 2);
    assert_true(last2[0] == 5 && last2[1] == 7);
    assert_true(fabs(stats_req_per_s(&st, 71000) - 12.0 / 60) < 1e-9); /* second 10 gone */
    assert_true(stats_req_per_s(&st, 73000) == 0);
}

static void test_stats_rate_series_clamps_its_length(void **state)
{
    (void)state;
    double out[STATS_RATE_SECONDS + 2];
    out[STATS_RATE_SECONDS] = -1;
    out[STATS_RATE_SECONDS + 1] = -1;
    stats_note_start(&st, 5000);
    stats_rate_series(&st, 6000, out, STATS_RATE_SECONDS + 2);
    assert_true(out[STATS_RATE_SECONDS - 1] == 1);
    assert_true(out[STATS_RATE_SECONDS] == -1); /* untouched */
}

static void test_stats_error_pct_covers_the_last_minute_without_cancelled(void **state)
{
    (void)state;
    struct stats_result ok = ok_result(1000, 1, 1);
    struct stats_result bad = err_result(LLM_ERR_TIMEOUT, "timed out");
    struct stats_result gone = err_result(LLM_ERR_CANCELLED, "hedge lost");
    assert_true(stats_error_pct(&st, 0) == 0);
    for (int i = 0; i < 3; i++)
        call(100, 500, &ok);
    call(100, 500, &bad);
    call(100, 500, &gone);
    call(100, 500, &gone);
    assert_true(fabs(stats_error_pct(&st, 500) - 25.0) < 1e-9);
    assert_true(fabs(stats_error_pct(&st, 59999) - 25.0) < 1e-9);
    assert_true(stats_error_pct(&st, 60000) == 0);
    assert_int_equal(st.errors[LLM_ERR_CANCELLED], 2);
}

/* Issue 15: a 10-second error rate beside the 1-minute one, so a surge shows at once. */
static void test_stats_error_pct_over_ten_seconds(void **state)
{
    (void)state;
    struct stats_result ok = ok_result(1000, 1, 1);
    struct stats_result bad = err_result(LLM_ERR_CONNECT, "refused");
    for (int i = 0; i < 9; i++)
        call(1000, 1500, &ok); /* 40 s before the outage */
    for (int i = 0; i < 3; i++)
        call(41000, 41500, &bad);
    uint64_t fin = 0;
    assert_true(fabs(stats_error_pct(&st, 45000) - 25.0) < 1e-9);
    assert_true(fabs(stats_error_pct_over(&st, 45000, 10, &fin) - 100.0) < 1e-9);
    assert_int_equal(fin, 3);
    struct stats_summary sum;
    stats_summarize(&st, 45000, &sum);
    assert_true(fabs(sum.error_pct_10s - 100.0) < 1e-9);
    assert_int_equal(sum.finished_10s, 3);
    assert_true(stats_error_pct_over(&st, 52000, 10, &fin) == 0); /* quiet since */
    assert_int_equal(fin, 0);
}

static void test_stats_keep_the_last_real_error_sanitised(void **state)
{
    (void)state;
    struct stats_result bad = err_result(LLM_ERR_SERVER, "upstream\n said \x1b[31mno");
    struct stats_result gone = err_result(LLM_ERR_CANCELLED, "client went away");
    assert_int_equal(st.last_error_ms, -1);
    assert_string_equal(st.last_error, "");
    call(0, 4200, &bad);
    assert_string_equal(st.last_error, "upstream  said  [31mno");
    assert_int_equal(st.last_error_ms, 4200);
    assert_int_equal(st.last_errclass, LLM_ERR_SERVER);
    call(0, 5000, &gone); /* a cancel is not the target's fault */
    assert_int_equal(st.last_error_ms, 4200);
    struct stats_result silent = err_result(LLM_ERR_DNS, NULL);
    call(0, 6000, &silent);
    assert_string_equal(st.last_error, "");
    assert_int_equal(st.last_errclass, LLM_ERR_DNS);
}

static void test_stats_cut_a_long_error_on_a_utf8_boundary(void **state)
{
    (void)state;
    char text[STATS_ERROR_LEN + 10];
    memset(text, 'x', sizeof(text));
    /* a 2-byte character straddling the cut: bytes STATS_ERROR_LEN-2 and -1 */
    text[STATS_ERROR_LEN - 2] = (char)0xc3;
    text[STATS_ERROR_LEN - 1] = (char)0xa9;
    text[sizeof(text) - 1] = '\0';
    struct stats_result bad = err_result(LLM_ERR_BAD_RESPONSE, text);
    call(0, 1, &bad);
    assert_int_equal(strlen(st.last_error), STATS_ERROR_LEN - 2);
}

static void test_stats_add_up_tokens_and_spend(void **state)
{
    (void)state;
    struct stats_result a = ok_result(1000, 100, 50);
    struct stats_result b = ok_result(1000, 0, 0);
    struct stats_result c = err_result(LLM_ERR_SERVER, "x");
    a.usage.cached_tokens = 40;
    a.cost_usd = 0.25;
    b.usage.present = false;
    c.cost_usd = 0.125; /* billed despite failing */
    call(0, 1, &a);
    call(0, 1, &b);
    call(0, 1, &c);
    assert_int_equal(st.tokens_in, 100);
    assert_int_equal(st.tokens_out, 50);
    assert_int_equal(st.tokens_cached, 40);
    assert_int_equal(st.usage_missing, 1);
    assert_true(st.spend_usd == 0.375);
}

static void test_stats_summary_carries_everything_for_the_snapshot(void **state)
{
    (void)state;
    struct stats_summary sum;
    struct stats_result ok = ok_result(7000, 3, 4);
    struct stats_result bad = err_result(LLM_ERR_OVERLOADED, "overloaded");
    struct stats_result gone = err_result(LLM_ERR_CANCELLED, NULL);
    ok.ttft_us = 3000;
    for (int i = 0; i < 4; i++)
        call(1000, 1200, &ok);
    call(1000, 1500, &bad);
    call(1000, 1500, &gone);
    stats_note_start(&st, 1600);
    stats_summarize(&st, 2500, &sum);
    assert_int_equal(sum.calls, 7);
    assert_int_equal(sum.successes, 4);
    assert_int_equal(sum.failures, 1);
    assert_int_equal(sum.errors[LLM_ERR_OVERLOADED], 1);
    assert_int_equal(sum.in_flight, 1);
    assert_int_equal(sum.tokens_in, 12);
    assert_int_equal(sum.tokens_out, 16);
    assert_true(fabs(sum.error_pct_1m - 20.0) < 1e-9);
    assert_true(sum.rate_series[STATS_RATE_SECONDS - 1] == 7); /* second 1 */
    assert_true(sum.latency_1m[0] == 7.0);
    assert_true(sum.ttft_1m[2] == 3.0);
    assert_int_equal(sum.latency_prom[0], 0);  /* 7 ms > 5 ms */
    assert_int_equal(sum.latency_prom[1], 4);  /* <= 10 ms */
    assert_int_equal(sum.latency_prom[13], 4); /* +Inf */
    assert_int_equal(sum.ttft_prom[0], 4);
    assert_int_equal(sum.latency_sum_us, 28000);
    assert_int_equal(sum.ttft_count, 4);
    assert_string_equal(sum.last_error, "overloaded");
    assert_int_equal(sum.last_errclass, LLM_ERR_OVERLOADED);
    assert_int_equal(sum.last_error_ms, 1500);
}

static void test_stats_forget_rates_after_an_idle_hour(void **state)
{
    (void)state;
    struct stats_result bad = err_result(LLM_ERR_CONNECT, "refused");
    for (int i = 0; i < 50; i++)
        call(i * 100, i * 100, &bad);
    int64_t later = INT64_C(3600000);
    assert_true(stats_error_pct(&st, later) == 0);
    assert_true(stats_req_per_s(&st, later) == 0);
    struct stats_result ok = ok_result(1000, 1, 1);
    call(later, later, &ok);
    assert_true(stats_error_pct(&st, later) == 0);
    assert_int_equal(st.errors[LLM_ERR_CONNECT], 50); /* lifetime counters stay */
}

static void test_stats_keep_the_recent_calls_newest_first(void **state)
{
    (void)state;
    struct stats_result ok = ok_result(2000, 5, 7);
    ok.ttft_us = 500;
    ok.cost_usd = 0.25;
    struct stats_result bad = err_result(LLM_ERR_SERVER, "upstream 503 Service Unavailable");
    call(100, 200, &ok);
    call(300, 400, &bad);
    struct stats_summary sum;
    stats_summarize(&st, 1000, &sum);
    assert_int_equal(sum.n_recent, 2);
    assert_int_equal(sum.now_ms, 1000);
    assert_int_equal(sum.recent[0].errclass, LLM_ERR_SERVER);
    assert_int_equal(sum.recent[0].done_ms, 400);
    assert_string_equal(sum.recent[0].error, "upstream 503 Service Unavailable");
    assert_int_equal(sum.recent[0].tokens_in, -1); /* no usage on a failure */
    assert_int_equal(sum.recent[1].errclass, LLM_ERR_NONE);
    assert_int_equal(sum.recent[1].latency_us, 2000);
    assert_int_equal(sum.recent[1].ttft_us, 500);
    assert_int_equal(sum.recent[1].tokens_out, 7);
    assert_true(sum.recent[1].cost_usd == 0.25);
    assert_string_equal(sum.recent[1].error, "");
    for (int i = 0; i < 3 * STATS_RECENT; i++)
        call(1000 + i, 1000 + i, &ok);
    stats_summarize(&st, 5000, &sum);
    assert_int_equal(sum.n_recent, STATS_RECENT); /* a ring: the oldest fall off */
    assert_int_equal(sum.recent[0].done_ms, 1000 + 3 * STATS_RECENT - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_stats_count_calls_outcomes_and_in_flight, setup),
        cmocka_unit_test_setup(test_stats_record_latency_for_successes_and_ttft_for_any_first_byte,
                               setup),
        cmocka_unit_test_setup(test_stats_percentiles_cover_one_and_five_minutes, setup),
        cmocka_unit_test_setup(test_stats_rate_series_counts_whole_seconds, setup),
        cmocka_unit_test_setup(test_stats_rate_series_clamps_its_length, setup),
        cmocka_unit_test_setup(test_stats_error_pct_covers_the_last_minute_without_cancelled,
                               setup),
        cmocka_unit_test_setup(test_stats_error_pct_over_ten_seconds, setup),
        cmocka_unit_test_setup(test_stats_keep_the_last_real_error_sanitised, setup),
        cmocka_unit_test_setup(test_stats_cut_a_long_error_on_a_utf8_boundary, setup),
        cmocka_unit_test_setup(test_stats_add_up_tokens_and_spend, setup),
        cmocka_unit_test_setup(test_stats_summary_carries_everything_for_the_snapshot, setup),
        cmocka_unit_test_setup(test_stats_forget_rates_after_an_idle_hour, setup),
        cmocka_unit_test_setup(test_stats_keep_the_recent_calls_newest_first, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
