/*
 * test_qguard.c - the quality guard's verdict (gw_qguard_judge): satisfaction compared with
 * the baseline target on a 0..100 scale with a margin in points, abandonment in % of calls,
 * the minimum volume on both sides, the fixed floors for routes without a baseline, and
 * "both" failing on either; the wait between rounds, which keeps the rounds' ledger reads
 * (a scan of a day of calls) to a bounded share of a core however big the ledger grows.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/gateway/internal.h"

static struct config_quality_guard guard(enum quality_metric m)
{
    struct config_quality_guard g = {.enabled = true,
                                     .metric = m,
                                     .margin_pct = 5,
                                     .min_volume = 20,
                                     .window_ms = 3600000,
                                     .min_satisfaction = -2,
                                     .max_abandonment = -1};
    return g;
}

/* n ratings with mean score mean, over calls calls of which abandoned were abandoned. */
static struct ledger_quality_row row(const char *key, uint64_t n, double mean, uint64_t calls,
                                     uint64_t abandoned)
{
    struct ledger_quality_row r;
    memset(&r, 0, sizeof r);
    str_copy(r.key, sizeof r.key, key);
    r.feedback = n;
    r.score_sum = mean * (double)n;
    r.calls = calls;
    r.abandoned = abandoned;
    ledger_quality_derive(&r, 1);
    return r;
}

static void test_qguard_satisfaction_within_the_margin_passes(void **state)
{
    (void)state;
    struct config_quality_guard g = guard(QUALITY_METRIC_SATISFACTION);
    struct ledger_quality_row base = row("base", 40, 0.6, 40, 0); /* 80 on 0..100 */
    struct ledger_quality_row t = row("t", 40, 0.52, 40, 0);      /* 76: 4 points below */
    char why[200];
    assert_false(gw_qguard_judge(&g, &base, &t, why, sizeof why));
    t = row("t", 40, 0.48, 40, 0); /* 74: 6 points below */
    assert_true(gw_qguard_judge(&g, &base, &t, why, sizeof why));
    assert_non_null(strstr(why, "satisfaction 74.0 vs baseline base 80.0"));
}

static void test_qguard_needs_the_minimum_volume_on_both_sides(void **state)
{
    (void)state;
    struct config_quality_guard g = guard(QUALITY_METRIC_SATISFACTION);
    struct ledger_quality_row base = row("base", 40, 1, 40, 0);
    struct ledger_quality_row t = row("t", 19, -1, 40, 0);
    char why[200];
    assert_false(gw_qguard_judge(&g, &base, &t, why, sizeof why)); /* 19 ratings < 20 */
    t = row("t", 20, -1, 40, 0);
    assert_true(gw_qguard_judge(&g, &base, &t, why, sizeof why));
    base = row("base", 5, 1, 40, 0);
    assert_false(gw_qguard_judge(&g, &base, &t, why, sizeof why)); /* baseline too thin */
    assert_false(gw_qguard_judge(&g, &base, NULL, why, sizeof why));
}

static void test_qguard_abandonment_in_points_of_calls(void **state)
{
    (void)state;
    struct config_quality_guard g = guard(QUALITY_METRIC_ABANDONMENT);
    struct ledger_quality_row base = row("base", 0, 0, 100, 2); /* 2 % */
    struct ledger_quality_row t = row("t", 0, 0, 100, 7);       /* 7 %: 5 points, not more */
    char why[200];
    assert_false(gw_qguard_judge(&g, &base, &t, why, sizeof why));
    t = row("t", 0, 0, 100, 8);
    assert_true(gw_qguard_judge(&g, &base, &t, why, sizeof why));
    assert_non_null(strstr(why, "abandonment 8.0% vs baseline base 2.0%"));
}

static void test_qguard_fixed_floors_without_a_baseline(void **state)
{
    (void)state;
    struct config_quality_guard g = guard(QUALITY_METRIC_BOTH);
    struct ledger_quality_row t = row("t", 30, 0.1, 100, 20);
    char why[200];
    assert_false(gw_qguard_judge(&g, NULL, &t, why, sizeof why)); /* no floors set */
    g.min_satisfaction = 0.2;
    assert_true(gw_qguard_judge(&g, NULL, &t, why, sizeof why));
    assert_non_null(strstr(why, "under the floor"));
    g.min_satisfaction = -2;
    g.max_abandonment = 0.1;
    assert_true(gw_qguard_judge(&g, NULL, &t, why, sizeof why));
    assert_non_null(strstr(why, "over the ceiling"));
}

static void test_qguard_both_fails_on_either(void **state)
{
    (void)state;
    struct config_quality_guard g = guard(QUALITY_METRIC_BOTH);
    struct ledger_quality_row base = row("base", 40, 0.5, 100, 1);
    struct ledger_quality_row t = row("t", 40, 0.5, 100, 30); /* satisfied, but abandoned */
    char why[200];
    assert_true(gw_qguard_judge(&g, &base, &t, why, sizeof why));
    g.metric = QUALITY_METRIC_SATISFACTION;
    assert_false(gw_qguard_judge(&g, &base, &t, why, sizeof why));
}

static void test_qguard_rounds_take_a_bounded_share_of_a_core(void **state)
{
    (void)state;
    /* A quick round waits the interval. */
    assert_int_equal(gw_qguard_wait_ms(5000, 0), 5000);
    assert_int_equal(gw_qguard_wait_ms(5000, 40), 5000);
    /* A round of 1.2 s (a day of calls at a few hundred per second) is followed by a wait of
     * GW_QGUARD_DUTY times as long: the thread reads at most 1 / (GW_QGUARD_DUTY + 1) of the
     * time. */
    assert_int_equal(gw_qguard_wait_ms(5000, 1200), 1200 * GW_QGUARD_DUTY);
    int64_t round = 1200, wait = gw_qguard_wait_ms(5000, round);
    assert_true((double)round / (double)(round + wait) <= 1.0 / (GW_QGUARD_DUTY + 1) + 1e-9);
    /* ...but never more than GW_QGUARD_MAX_WAIT_MS: the figures stay fresh enough to read. */
    assert_int_equal(gw_qguard_wait_ms(5000, 3600000), GW_QGUARD_MAX_WAIT_MS);
    /* A negative duration (a clock step) is no round at all. */
    assert_int_equal(gw_qguard_wait_ms(5000, -7), 5000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qguard_satisfaction_within_the_margin_passes),
        cmocka_unit_test(test_qguard_needs_the_minimum_volume_on_both_sides),
        cmocka_unit_test(test_qguard_abandonment_in_points_of_calls),
        cmocka_unit_test(test_qguard_fixed_floors_without_a_baseline),
        cmocka_unit_test(test_qguard_both_fails_on_either),
        cmocka_unit_test(test_qguard_rounds_take_a_bounded_share_of_a_core),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
