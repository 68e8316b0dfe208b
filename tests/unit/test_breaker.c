/*
 * test_breaker.c - circuit breaker transitions at exact times, with exact reasons.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "switchboard/breaker.h"

static struct breaker_params params(long failures, double rate, long min_volume, long trials)
{
    struct breaker_params p;
    breaker_params_default(&p);
    p.failures = failures;
    p.error_rate = rate;
    p.window_ms = 30000;
    p.min_volume = min_volume;
    p.cooldown_ms = 30000;
    p.cooldown_max_ms = 100000;
    p.half_open_trials = trials;
    return p;
}

static void fail_n(struct breaker *b, int64_t now, int n, enum llm_errclass cls)
{
    for (int i = 0; i < n; i++)
        assert_false(breaker_note_failure(b, now, cls, NULL));
}

static void assert_transition(const struct breaker_transition *tr, enum breaker_state from,
                              enum breaker_state to, int64_t at, const char *reason)
{
    assert_int_equal(tr->from, from);
    assert_int_equal(tr->to, to);
    assert_int_equal(tr->at_ms, at);
    assert_string_equal(tr->reason, reason);
}

/* Opens b at `at` through 5 consecutive timeouts (params(5, ...)). */
static void open_it(struct breaker *b, int64_t at)
{
    struct breaker_transition tr;
    fail_n(b, at, 4, LLM_ERR_TIMEOUT);
    assert_true(breaker_note_failure(b, at, LLM_ERR_TIMEOUT, &tr));
    assert_int_equal(b->state, BREAKER_OPEN);
}

static void test_breaker_starts_closed_and_lets_calls_through(void **state)
{
    (void)state;
    struct breaker b;
    struct breaker_params p = params(5, 0.5, 20, 1);
    struct breaker_transition tr;
    breaker_init(&b, &p, 0);
    assert_int_equal(b.state, BREAKER_CLOSED);
    for (int i = 0; i < 100; i++)
        assert_true(breaker_allow(&b, i, &tr));
    assert_int_equal(tr.from, tr.to);
    assert_string_equal(tr.reason, "");
    assert_int_equal(breaker_retry_in_ms(&b, 0), 0);
}

static void test_breaker_opens_after_consecutive_failures(void **state)
{
    (void)state;
    struct breaker b;
    struct breaker_params p = params(5, 0, 20, 1);
    struct breaker_transition tr;
    breaker_init(&b, &p, 0);
    fail_n(&b, 1000, 4, LLM_ERR_SERVER);
    assert_int_equal(b.state, BREAKER_CLOSED);
    assert_true(breaker_note_failure(&b, 1500, LLM_ERR_TIMEOUT, &tr));
    assert_transition(&tr, BREAKER_CLOSED, BREAKER_OPEN, 1500,
                      "5 consecutive failures (last: timeout)");
    assert_false(breaker_allow(&b, 1500, NULL));
    assert_int_equal(breaker_retry_in_ms(&b, 1500), 30000);
    assert_int_equal(breaker_retry_in_ms(&b, 21500), 10000);
}

static void test_breaker_success_resets_the_consecutive_count(void **state)
{
    (void)state;
    struct breaker b;
    struct breaker_params p = params(5, 0, 20, 1);
    breaker_init(&b, &p, 0);
    for (int round = 0; round < 10; round++) {
        fail_n(&b, round, 4, LLM_ERR_CONNECT);
        assert_false(breaker_note_success(&b, round, NULL));
    }
    assert_int_equal(b.state, BREAKER_CLOSED);
}

static void test_breaker_ignores_outcomes_that_do_not_count(void **state)
{
    (void)state;
    static const enum llm_errclass neutral[] = {
        LLM_ERR_RATE_LIMIT, LLM_ERR_BAD_REQUEST, LLM_ERR_CONTEXT_LENGTH, LLM_ERR_CANCELLED,
        LLM_ERR_AUTH,       LLM_ERR_NO_KEY,      LLM_ERR_NONE,           LLM_ERR_INTERNAL,
    };
    struct breaker b;
    struct breaker_params p = params(5, 0.5, 1, 1);
    struct breaker_transition tr;
    breaker_init(&b, &p, 0);
    for (size_t i = 0; i < sizeof(neutral) / sizeof(neutral[0]); i++)
        fail_n(&b, 10, 20, neutral[i]);
    assert_int_equal(b.state, BREAKER_CLOSED);
    /* neutral outcomes neither count nor break a run of counted failures */
    b.params.error_rate = 0;
    fail_n(&b, 20, 4, LLM_ERR_OVERLOADED);
    fail_n(&b, 20, 1, LLM_ERR_RATE_LIMIT);
    assert_true(breaker_note_failure(&b, 20, LLM_ERR_BAD_RESPONSE, &tr));
    assert_string_equal(tr.reason, "5 consecutive failures (last: bad_response)");
}

static void test_breaker_counts_only_server_side_failures(void **state)
{
    (void)state;
    assert_true(breaker_counts_failure(LLM_ERR_DNS));
    assert_true(breaker_counts_failure(LLM_ERR_CONNECT));
    assert_true(breaker_counts_failure(LLM_ERR_TLS));
    assert_true(breaker_counts_failure(LLM_ERR_TIMEOUT));
    assert_true(breaker_counts_failure(LLM_ERR_SERVER));
    assert_true(breaker_counts_failure(LLM_ERR_OVERLOADED));
    assert_true(breaker_counts_failure(LLM_ERR_BAD_RESPONSE));
    assert_true(breaker_counts_failure(LLM_ERR_TRUNCATED));
    assert_false(breaker_counts_failure(LLM_ERR_NONE));
    assert_false(breaker_counts_failure(LLM_ERR_RATE_LIMIT));
    assert_false(breaker_counts_failure(LLM_ERR_AUTH));
    assert_false(breaker_counts_failure(LLM_ERR_BAD_REQUEST));
    assert_false(breaker_counts_failure(LLM_ERR_CONTEXT_LENGTH));
    assert_false(breaker_counts_failure(LLM_ERR_CANCELLED));
    assert_false(breaker_counts_failure(LLM_ERR_NO_KEY));
    assert_false(breaker_counts_failure(LLM_ERR_INTERNAL));
}

static void test_breaker_opens_on_error_rate_over_the_window(void **state)
{
    (void)state;
    struct breaker b;
    struct breaker_params p = params(0, 0.5, 21, 1); /* consecutive rule off */
    struct breaker_transition tr;
    breaker_init(&b, &p, 0);
    /* 20 calls: 8 ok, 12 failed, never 5 in a row and below the minimum volume */
    for (int i = 0; i < 4; i++) {
        breaker_note_success(&b, 100 * i, NULL);
        breaker_note_success(&b, 100 * i, NULL);
        fail_n(&b, 100 * i, 3, LLM_ERR_SERVER);
    }
    assert_int_equal(b.state, BREAKER_CLOSED);
    assert_true(breaker_note_failure(&b, 5000, LLM_ERR_SERVER, &tr));
    assert_transition(&tr, BREAKER_CLOSED, BREAKER_OPEN, 5000, "error rate 62% over 30s (13/21)");
}

static void test_breaker_error_rate_requires_minimum_volume(void **state)
{
    (void)state;
    struct breaker b;
    struct breaker_params p = params(0, 0.5, 20, 1);
    struct breaker_transition tr;
    breaker_init(&b, &p, 0);
    fail_n(&b, 100, 19, LLM_ERR_SERVER); /* 100% errors but only 19 calls */
    assert_int_equal(b.state, BREAKER_CLOSED);
    assert_true(breaker_note_failure(&b, 100, LLM_ERR_SERVER, &tr));
    assert_string_equal(tr.reason, "error rate 100% over 30s (20/20)");
}

static void test_breaker_error_rate_below_threshold_stays_closed(void **state)
{
    (void)state;
    struct breaker b;
    struct breaker_params p = params(0, 0.5, 20, 1);
    breaker_init(&b, &p, 0);
    /* ok, ok, then fail/ok alternately: at each failure the rate is f/(2f+1), under 50% */
    breaker_note_success(&b, 10, NULL);
    breaker_note_success(&b, 10, NULL);
    for (int i = 0; i < 100; i++) {
        fail_n(&b, 10, 1, LLM_ERR_SERVER);
        breaker_note_success(&b, 10, NULL);
    }
    assert_int_equal(b.state, BREAKER_CLOSED);
    fail_n(&b, 10, 1, LLM_ERR_SERVER);                               /* 101/203 */
    assert_true(breaker_note_failure(&b, 10, LLM_ERR_SERVER, NULL)); /* 102/204: 50% */
}

static void test_breaker_window_forgets_old_calls(void **state)
{
    (void)state;
    struct breaker b;
    struct breaker_params p = params(0, 0.5, 20, 1);
    long calls, fails;
    breaker_init(&b, &p, 0);
    fail_n(&b, 0, 15, LLM_ERR_TIMEOUT);
    breaker_window_counts(&b, 29999, &calls, &fails);
    assert_int_equal(calls, 15);
    assert_int_equal(fails, 15);
    breaker_window_counts(&b, 30000, &calls, &fails);
    assert_int_equal(calls, 0);
    fail_n(&b, 30000, 10, LLM_ERR_TIMEOUT); /* 10 in the window, not 25 */
    assert_int_equal(b.state, BREAKER_CLOSED);
}

static void test_breaker_half_opens_exactly_when_the_cooldown_elapses(void **state)
{
    (void)state;
    struct breaker b;
    struct breaker_params p = params(5, 0, 20, 1);
    struct breaker_transition tr;
    breaker_init(&b, &p, 0);
    open_it(&b, 1000);
    assert_false(breaker_allow(&b, 30999, &tr));
    assert_int_equal(tr.from, tr.to);
    assert_int_equal(breaker_retry_in_ms(&b, 30999), 1);
    assert_int_equal(breaker_retry_in_ms(&b, 31000), 0);
    assert_true(breaker_allow(&b, 31000, &tr));
    assert_transition(&tr, BREAKER_OPEN, BREAKER_HALF_OPEN, 31000, "cooldown elapsed");
    assert_int_equal(b.state, BREAKER_HALF_OPEN);
}

static void test_breaker_half_open_allows_exactly_n_trials(void **state)
{
    (void)state;
    struct breaker b;
    struct breaker_params p = params(5, 0, 20, 3);
    struct breaker_transition tr;
    breaker_init(&b, &p, 0);
    open_it(&b, 0);
    for (int i = 0; i < 3; i++)
        assert_true(breaker_allow(&b, 30000, NULL));
    assert_false(breaker_allow(&b, 30000, NULL));
    assert_false(breaker_note_success(&b, 30100, NULL));
    assert_false(breaker_allow(&b, 30100, NULL)); /* still 3 used: 2 running, 1 done */
    assert_false(breaker_note_success(&b, 30200, NULL));
    assert_true(breaker_note_success(&b, 30300, &tr));
    assert_transition(&tr, BREAKER_HALF_OPEN, BREAKER_CLOSED, 30300, "3 trials succeeded");
    assert_true(breaker_allow(&b, 30300, NULL));
}

static void test_breaker_closes_after_a_successful_trial_call(void **state)
{
    (void)state;
    struct breaker b;
    struct breaker_params p = params(5, 0, 20, 1);
    struct breaker_transition tr;
    breaker_init(&b, &p, 0);
    open_it(&b, 0);
    assert_true(breaker_allow(&b, 30000, NULL));
    assert_false(breaker_allow(&b, 30001, NULL));
    assert_true(breaker_note_success(&b, 31000, &tr));
    assert_transition(&tr, BREAKER_HALF_OPEN, BREAKER_CLOSED, 31000, "trial call succeeded");
    /* counters start fresh: 4 more failures do not re-open it */
    fail_n(&b, 31000, 4, LLM_ERR_TIMEOUT);
    assert_int_equal(b.state, BREAKER_CLOSED);
}

static void test_breaker_failed_trial_reopens_with_doubled_cooldown(void **state)
{
    (void)state;
    struct breaker b;
    struct breaker_params p = params(5, 0, 20, 1); /* 30 s, capped at 100 s */
    struct breaker_transition tr;
    breaker_init(&b, &p, 0);
    open_it(&b, 0);
    assert_true(breaker_allow(&b, 30000, NULL));
    assert_true(breaker_note_failure(&b, 30500, LLM_ERR_SERVER, &tr));
    assert_transition(&tr, BREAKER_HALF_OPEN, BREAKER_OPEN, 30500, "trial call failed: server");
    assert_int_equal(breaker_retry_in_ms(&b, 30500), 60000);
    assert_false(breaker_allow(&b, 90499, NULL));
    assert_true(breaker_allow(&b, 90500, NULL));
    assert_true(breaker_note_failure(&b, 90500, LLM_ERR_TIMEOUT, &tr));
    assert_string_equal(tr.reason, "trial call failed: timeout");
    assert_int_equal(breaker_retry_in_ms(&b, 90500), 100000); /* 120 s capped at 100 s */
    assert_true(breaker_allow(&b, 190500, NULL));
    assert_true(breaker_note_failure(&b, 190500, LLM_ERR_TIMEOUT, NULL));
    assert_int_equal(breaker_retry_in_ms(&b, 190500), 100000);
    /* closing restores the base cooldown */
    assert_true(breaker_allow(&b, 290500, NULL));
    assert_true(breaker_note_success(&b, 290500, NULL));
    open_it(&b, 300000);
    assert_int_equal(breaker_retry_in_ms(&b, 300000), 30000);
}

static void test_breaker_cooldown_stays_fixed_without_a_cap(void **state)
{
    (void)state;
    struct breaker b;
    struct breaker_params p = params(5, 0, 20, 1);
    p.cooldown_max_ms = 0;
    breaker_init(&b, &p, 0);
    open_it(&b, 0);
    for (int64_t t = 30000; t < 200000; t += 30000) {
        assert_true(breaker_allow(&b, t, NULL));
        assert_true(breaker_note_failure(&b, t, LLM_ERR_CONNECT, NULL));
        assert_int_equal(breaker_retry_in_ms(&b, t), 30000);
    }
}

static void test_breaker_neutral_trial_outcome_frees_the_slot(void **state)
{
    (void)state;
    struct breaker b;
    struct breaker_params p = params(5, 0, 20, 1);
    breaker_init(&b, &p, 0);
    open_it(&b, 0);
    assert_true(breaker_allow(&b, 30000, NULL));
    assert_false(breaker_allow(&b, 30000, NULL));
    assert_false(breaker_note_failure(&b, 30100, LLM_ERR_CANCELLED, NULL));
    assert_int_equal(b.state, BREAKER_HALF_OPEN);
    assert_true(breaker_allow(&b, 30200, NULL));
    assert_false(breaker_note_failure(&b, 30300, LLM_ERR_RATE_LIMIT, NULL));
    assert_int_equal(b.state, BREAKER_HALF_OPEN);
    assert_true(breaker_allow(&b, 30400, NULL));
}

static void test_breaker_failed_probe_while_open_keeps_the_cooldown(void **state)
{
    (void)state;
    struct breaker b;
    struct breaker_params p = params(5, 0, 20, 1);
    struct breaker_transition tr;
    breaker_init(&b, &p, 0);
    open_it(&b, 0);
    assert_false(breaker_note_probe(&b, 20000, false, false, &tr));
    assert_int_equal(tr.from, BREAKER_OPEN);
    assert_int_equal(tr.to, BREAKER_OPEN);
    assert_int_equal(breaker_retry_in_ms(&b, 20000), 10000); /* not pushed back */
    assert_false(breaker_allow(&b, 29999, NULL));
    assert_true(breaker_allow(&b, 30000, NULL));
}

static void test_breaker_liveness_probe_ends_the_cooldown_but_never_closes(void **state)
{
    (void)state;
    struct breaker b;
    struct breaker_params p = params(5, 0, 20, 1);
    struct breaker_transition tr;
    breaker_init(&b, &p, 0);
    open_it(&b, 0);
    assert_true(breaker_note_probe(&b, 5000, true, false, &tr));
    assert_transition(&tr, BREAKER_OPEN, BREAKER_HALF_OPEN, 5000,
                      "probe succeeded: cooldown ended early");
    for (int i = 0; i < 5; i++) /* more passing list probes: still only trials can close it */
        assert_false(breaker_note_probe(&b, 6000 + i, true, false, &tr));
    assert_int_equal(b.state, BREAKER_HALF_OPEN);
    assert_true(breaker_allow(&b, 7000, NULL));
    assert_true(breaker_note_success(&b, 7100, &tr));
    assert_transition(&tr, BREAKER_HALF_OPEN, BREAKER_CLOSED, 7100, "trial call succeeded");
}

static void test_breaker_chat_probe_success_after_cooldown_closes_it(void **state)
{
    (void)state;
    struct breaker b;
    struct breaker_params p = params(5, 0, 20, 1);
    struct breaker_transition tr;
    breaker_init(&b, &p, 0);
    open_it(&b, 0);
    assert_false(breaker_note_probe(&b, 29999, true, true, &tr)); /* too early: ignored */
    assert_int_equal(b.state, BREAKER_OPEN);
    assert_true(breaker_note_probe(&b, 30000, true, true, &tr));
    assert_transition(&tr, BREAKER_OPEN, BREAKER_CLOSED, 30000, "chat probe succeeded");
}

static void test_breaker_chat_probe_success_counts_as_one_of_several_trials(void **state)
{
    (void)state;
    struct breaker b;
    struct breaker_params p = params(5, 0, 20, 2);
    struct breaker_transition tr;
    breaker_init(&b, &p, 0);
    open_it(&b, 0);
    assert_true(breaker_note_probe(&b, 30000, true, true, &tr));
    assert_transition(&tr, BREAKER_OPEN, BREAKER_HALF_OPEN, 30000,
                      "chat probe succeeded (1/2 trials)");
    assert_true(breaker_allow(&b, 30001, NULL));
    assert_false(breaker_allow(&b, 30001, NULL));
    assert_true(breaker_note_success(&b, 30500, &tr));
    assert_transition(&tr, BREAKER_HALF_OPEN, BREAKER_CLOSED, 30500, "2 trials succeeded");
}

static void test_breaker_can_take_agrees_with_allow(void **state)
{
    (void)state;
    for (long trials = 1; trials <= 3; trials++) {
        struct breaker b;
        struct breaker_params p = params(5, 0, 20, trials);
        breaker_init(&b, &p, 0);
        open_it(&b, 0);
        for (int64_t now = 29000; now < 31000; now += 50) {
            bool can = breaker_can_take(&b, now);
            assert_int_equal(can, breaker_allow(&b, now, NULL));
            if (can && now % 200 == 0)
                breaker_note_success(&b, now, NULL);
        }
    }
}

static void test_breaker_release_frees_a_reserved_trial(void **state)
{
    (void)state;
    struct breaker b;
    struct breaker_params p = params(5, 0, 20, 1);
    breaker_init(&b, &p, 0);
    open_it(&b, 0);
    assert_true(breaker_allow(&b, 30000, NULL));
    assert_false(breaker_can_take(&b, 30000));
    breaker_release(&b);
    assert_int_equal(b.state, BREAKER_HALF_OPEN);
    assert_true(breaker_can_take(&b, 30000));
}

static void test_breaker_slow_strikes_open_it_with_the_reason(void **state)
{
    (void)state;
    struct breaker b;
    struct breaker_params p = params(5, 0, 20, 1);
    p.slow_strikes = 3;
    struct breaker_transition tr;
    breaker_init(&b, &p, 0);
    assert_false(breaker_note_slow(&b, 100, 500, &tr));
    assert_false(breaker_note_slow(&b, 200, 500, &tr));
    assert_true(breaker_note_slow(&b, 300, 500, &tr));
    assert_transition(&tr, BREAKER_CLOSED, BREAKER_OPEN, 300,
                      "slow: no first byte in 500ms on 3 calls");
}

static void test_breaker_a_success_clears_slow_strikes(void **state)
{
    (void)state;
    struct breaker b;
    struct breaker_params p = params(5, 0, 20, 1);
    p.slow_strikes = 2;
    breaker_init(&b, &p, 0);
    assert_false(breaker_note_slow(&b, 100, 500, NULL));
    assert_false(breaker_note_success(&b, 150, NULL));
    assert_false(breaker_note_slow(&b, 200, 500, NULL));
    assert_int_equal(b.state, BREAKER_CLOSED);
}

static void test_breaker_probe_failure_in_half_open_reopens_it(void **state)
{
    (void)state;
    struct breaker b;
    struct breaker_params p = params(5, 0, 20, 1);
    struct breaker_transition tr;
    breaker_init(&b, &p, 0);
    open_it(&b, 0);
    assert_true(breaker_allow(&b, 30000, NULL));
    assert_true(breaker_note_probe(&b, 30100, false, false, &tr));
    assert_transition(&tr, BREAKER_HALF_OPEN, BREAKER_OPEN, 30100, "probe failed");
    assert_int_equal(breaker_retry_in_ms(&b, 30100), 60000);
}

static void test_breaker_probes_leave_a_closed_breaker_alone(void **state)
{
    (void)state;
    struct breaker b;
    struct breaker_params p = params(5, 0, 20, 1);
    breaker_init(&b, &p, 0);
    fail_n(&b, 0, 4, LLM_ERR_TIMEOUT);
    for (int i = 0; i < 10; i++) {
        assert_false(breaker_note_probe(&b, 10, false, false, NULL));
        assert_false(breaker_note_probe(&b, 10, true, true, NULL));
    }
    assert_int_equal(b.state, BREAKER_CLOSED);
    assert_true(breaker_note_failure(&b, 20, LLM_ERR_TIMEOUT, NULL)); /* still 5th in a row */
}

static void test_breaker_ignores_outcomes_reported_while_open(void **state)
{
    (void)state;
    struct breaker b;
    struct breaker_params p = params(5, 0, 20, 1);
    breaker_init(&b, &p, 0);
    open_it(&b, 0);
    assert_false(breaker_note_success(&b, 100, NULL));
    assert_false(breaker_note_failure(&b, 200, LLM_ERR_SERVER, NULL));
    assert_int_equal(b.state, BREAKER_OPEN);
    assert_int_equal(breaker_retry_in_ms(&b, 200), 29800); /* cooldown not extended */
}

static void test_breaker_reset_by_operator_closes_and_clears(void **state)
{
    (void)state;
    struct breaker b;
    struct breaker_params p = params(5, 0, 20, 1);
    struct breaker_transition tr;
    breaker_init(&b, &p, 0);
    open_it(&b, 0);
    assert_true(breaker_reset(&b, 5000, &tr));
    assert_transition(&tr, BREAKER_OPEN, BREAKER_CLOSED, 5000, "reset by operator");
    assert_true(breaker_allow(&b, 5000, NULL));
    fail_n(&b, 5000, 4, LLM_ERR_TIMEOUT);
    assert_false(breaker_reset(&b, 6000, &tr)); /* already closed: no transition... */
    assert_int_equal(tr.from, tr.to);
    fail_n(&b, 6000, 4, LLM_ERR_TIMEOUT); /* ...but the run of failures is forgotten */
    assert_int_equal(b.state, BREAKER_CLOSED);
}

static void test_breaker_records_every_transition(void **state)
{
    (void)state;
    struct breaker b;
    struct breaker_params p = params(5, 0, 20, 1);
    breaker_init(&b, &p, 0);
    assert_int_equal(b.n_transitions, 0);
    open_it(&b, 100);
    assert_true(breaker_allow(&b, 30100, NULL));
    assert_true(breaker_note_success(&b, 30200, NULL));
    assert_int_equal(b.n_transitions, 3);
    assert_transition(&b.last, BREAKER_HALF_OPEN, BREAKER_CLOSED, 30200, "trial call succeeded");
    assert_int_equal(b.since_ms, 30200);
}

static void test_breaker_state_names_are_stable(void **state)
{
    (void)state;
    assert_string_equal(breaker_state_name(BREAKER_CLOSED), "closed");
    assert_string_equal(breaker_state_name(BREAKER_OPEN), "open");
    assert_string_equal(breaker_state_name(BREAKER_HALF_OPEN), "half-open");
}

static void test_breaker_clamps_params_and_reloads_them(void **state)
{
    (void)state;
    struct breaker b;
    struct breaker_params p = params(5, 2.0, 0, 0);
    p.window_ms = 1;
    p.cooldown_ms = 0;
    breaker_init(&b, &p, 0);
    assert_int_equal(b.params.half_open_trials, 1);
    assert_int_equal(b.params.min_volume, 1);
    assert_int_equal(b.params.cooldown_ms, 1);
    assert_int_equal(b.params.window_ms, BREAKER_WINDOW_SLOTS);
    assert_true(b.params.error_rate == 1.0);

    p = params(5, 0, 20, 1);
    breaker_init(&b, &p, 0);
    open_it(&b, 0);
    p.cooldown_ms = 5000;
    breaker_set_params(&b, &p);
    assert_int_equal(b.state, BREAKER_OPEN); /* state kept */
    assert_true(breaker_allow(&b, 30000, NULL));
    assert_true(breaker_note_failure(&b, 30000, LLM_ERR_SERVER, NULL));
    assert_int_equal(breaker_retry_in_ms(&b, 30000), 10000); /* new base 5 s, doubled */
}

static void test_breaker_reason_names_a_fractional_window(void **state)
{
    (void)state;
    struct breaker b;
    struct breaker_params p = params(0, 0.5, 2, 1);
    struct breaker_transition tr;
    p.window_ms = 1500;
    breaker_init(&b, &p, 0);
    breaker_note_success(&b, 0, NULL);
    assert_true(breaker_note_failure(&b, 0, LLM_ERR_TLS, &tr));
    assert_string_equal(tr.reason, "error rate 50% over 1.5s (1/2)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_breaker_starts_closed_and_lets_calls_through),
        cmocka_unit_test(test_breaker_opens_after_consecutive_failures),
        cmocka_unit_test(test_breaker_success_resets_the_consecutive_count),
        cmocka_unit_test(test_breaker_ignores_outcomes_that_do_not_count),
        cmocka_unit_test(test_breaker_counts_only_server_side_failures),
        cmocka_unit_test(test_breaker_opens_on_error_rate_over_the_window),
        cmocka_unit_test(test_breaker_error_rate_requires_minimum_volume),
        cmocka_unit_test(test_breaker_error_rate_below_threshold_stays_closed),
        cmocka_unit_test(test_breaker_window_forgets_old_calls),
        cmocka_unit_test(test_breaker_half_opens_exactly_when_the_cooldown_elapses),
        cmocka_unit_test(test_breaker_half_open_allows_exactly_n_trials),
        cmocka_unit_test(test_breaker_closes_after_a_successful_trial_call),
        cmocka_unit_test(test_breaker_failed_trial_reopens_with_doubled_cooldown),
        cmocka_unit_test(test_breaker_cooldown_stays_fixed_without_a_cap),
        cmocka_unit_test(test_breaker_neutral_trial_outcome_frees_the_slot),
        cmocka_unit_test(test_breaker_failed_probe_while_open_keeps_the_cooldown),
        cmocka_unit_test(test_breaker_liveness_probe_ends_the_cooldown_but_never_closes),
        cmocka_unit_test(test_breaker_chat_probe_success_after_cooldown_closes_it),
        cmocka_unit_test(test_breaker_chat_probe_success_counts_as_one_of_several_trials),
        cmocka_unit_test(test_breaker_can_take_agrees_with_allow),
        cmocka_unit_test(test_breaker_release_frees_a_reserved_trial),
        cmocka_unit_test(test_breaker_slow_strikes_open_it_with_the_reason),
        cmocka_unit_test(test_breaker_a_success_clears_slow_strikes),
        cmocka_unit_test(test_breaker_probe_failure_in_half_open_reopens_it),
        cmocka_unit_test(test_breaker_probes_leave_a_closed_breaker_alone),
        cmocka_unit_test(test_breaker_ignores_outcomes_reported_while_open),
        cmocka_unit_test(test_breaker_reset_by_operator_closes_and_clears),
        cmocka_unit_test(test_breaker_records_every_transition),
        cmocka_unit_test(test_breaker_state_names_are_stable),
        cmocka_unit_test(test_breaker_clamps_params_and_reloads_them),
        cmocka_unit_test(test_breaker_reason_names_a_fractional_window),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
