/*
 * test_budgets.c - spend caps with a fake clock: one soft warning and one cap event per
 * window, target budgets take the target out, global/route/tag budgets refuse calls with a
 * message naming the budget and the time to the reset, UTC day and month rollover, spend
 * seeded from the ledger (caps hold after a restart), burn rate and time to exhaustion,
 * reloads, untracked tags and savings.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "switchboard/budgets.h"

#define MIN  60000LL
#define HOUR 3600000LL
#define DAY  86400000LL
/* 2026-11-21T00:00:00Z; the month began 2026-11-01 and ends 2026-12-01 */
#define NOV21 (1795262400000LL - 12 * HOUR)
#define DEC01 (NOV21 + 10 * DAY)

static struct config_target targets[] = {{.name = (char[]){"a"}}, {.name = (char[]){"b"}}};
static struct config_route routes[] = {{.name = (char[]){"chat"}}, {.name = (char[]){"bulk"}}};

/* A config with just what budgets read: names and budgets. */
static struct config make_cfg(struct config_budget *b, size_t n)
{
    struct config c;
    memset(&c, 0, sizeof c);
    c.targets = targets;
    c.n_targets = 2;
    c.routes = routes;
    c.n_routes = 2;
    c.budgets = b;
    c.n_budgets = n;
    return c;
}

static size_t spend(struct budgets *b, int64_t at, const char *target, const char *route,
                    const char *tag, double usd, struct budget_alert *alerts)
{
    struct budget_alert scratch[8];
    struct budget_charge ch = {target, route, tag, usd, usd, false, 0};
    return budgets_note_spend(b, at, &ch, alerts ? alerts : scratch, 8);
}

static void test_budgets_warn_once_at_the_soft_limit_then_once_at_the_cap(void **state)
{
    (void)state;
    struct config_budget cb[] = {{BUDGET_GLOBAL, NULL, 10, 0, 80}};
    struct config cfg = make_cfg(cb, 1);
    struct budgets *b = budgets_new(&cfg, NULL, NOV21);
    struct budget_alert al[8];
    assert_int_equal(spend(b, NOV21 + HOUR, "a", "chat", NULL, 7.9, al), 0);
    assert_int_equal(spend(b, NOV21 + HOUR, "a", "chat", NULL, 0.2, al), 1);
    assert_int_equal(al[0].level, BUDGET_LEVEL_SOFT);
    assert_non_null(
        strstr(al[0].text, "budget 'global' at 81% of its daily cap ($8.10 of $10.00)"));
    assert_int_equal(spend(b, NOV21 + HOUR, "a", "chat", NULL, 1.0, al), 0); /* once */
    assert_int_equal(spend(b, NOV21 + HOUR, "a", "chat", NULL, 1.0, al), 1);
    assert_int_equal(al[0].level, BUDGET_LEVEL_HARD);
    assert_non_null(strstr(al[0].text, "daily cap $10.00 reached ($10.10 spent today)"));
    assert_non_null(strstr(al[0].text, "calls refused (429)"));
    assert_int_equal(spend(b, NOV21 + HOUR, "a", "chat", NULL, 1.0, al), 0);
    /* The next day warns again. */
    assert_int_equal(spend(b, NOV21 + DAY + HOUR, "a", "chat", NULL, 9.0, al), 1);
    assert_int_equal(al[0].level, BUDGET_LEVEL_SOFT);
    budgets_free(b);
}

static void test_budgets_target_budget_takes_the_target_out(void **state)
{
    (void)state;
    struct config_budget cb[] = {{BUDGET_TARGET, (char[]){"a"}, 1, 0, 80}};
    struct config cfg = make_cfg(cb, 1);
    struct budgets *b = budgets_new(&cfg, NULL, NOV21);
    char why[256];
    struct budget_alert al[8];
    assert_false(budgets_target_blocked(b, NOV21 + HOUR, "a", why, sizeof why));
    spend(b, NOV21 + HOUR, "a", "chat", NULL, 0.5, NULL);
    assert_int_equal(spend(b, NOV21 + HOUR, "a", "chat", NULL, 0.52, al), 1);
    assert_string_equal(al[0].target, "a");
    assert_non_null(strstr(al[0].text, "target skipped"));
    assert_true(budgets_target_blocked(b, NOV21 + HOUR, "a", why, sizeof why));
    assert_string_equal(why, "over budget: budget 'target:a' daily cap $1.00 reached ($1.02 spent "
                             "today); resets at 00:00 UTC");
    assert_false(budgets_target_blocked(b, NOV21 + HOUR, "b", why, sizeof why));
    int64_t retry;
    assert_false(budgets_call_blocked(b, NOV21 + HOUR, "chat", NULL, why, sizeof why, &retry));
    assert_false(budgets_target_blocked(b, NOV21 + DAY, "a", why, sizeof why)); /* midnight */
    budgets_free(b);
}

static void test_budgets_global_route_and_tag_caps_refuse_calls(void **state)
{
    (void)state;
    struct config_budget cb[] = {
        {BUDGET_GLOBAL, NULL, 100, 0, 80},
        {BUDGET_ROUTE, (char[]){"bulk"}, 2, 0, 80},
        {BUDGET_TAG, (char[]){"batch-jobs"}, 5, 0, 80},
    };
    struct config cfg = make_cfg(cb, 3);
    struct budgets *b = budgets_new(&cfg, NULL, NOV21);
    char why[256];
    int64_t retry = 0, now = NOV21 + 18 * HOUR;
    spend(b, now, "a", "chat", "batch-jobs", 5.02, NULL);
    assert_true(budgets_call_blocked(b, now, "chat", "batch-jobs", why, sizeof why, &retry));
    assert_string_equal(why, "budget 'tag:batch-jobs' daily cap $5.00 reached ($5.02 spent "
                             "today); resets at 00:00 UTC");
    assert_true(retry == 6 * HOUR);
    assert_false(budgets_call_blocked(b, now, "chat", "other", why, sizeof why, &retry));
    assert_false(budgets_call_blocked(b, now, "chat", NULL, why, sizeof why, &retry));
    spend(b, now, "b", "bulk", NULL, 2, NULL);
    assert_true(budgets_call_blocked(b, now, "bulk", NULL, why, sizeof why, &retry));
    assert_non_null(strstr(why, "budget 'route:bulk' daily cap $2.00"));
    spend(b, now, "b", "chat", NULL, 93, NULL);
    assert_true(budgets_call_blocked(b, now, "chat", "other", why, sizeof why, &retry));
    assert_non_null(strstr(why, "budget 'global' daily cap $100.00 reached ($100.02 spent today)"));
    budgets_free(b);
}

static void test_budgets_monthly_cap_holds_across_days_until_the_month_ends(void **state)
{
    (void)state;
    struct config_budget cb[] = {{BUDGET_GLOBAL, NULL, 0, 50, 80}};
    struct config cfg = make_cfg(cb, 1);
    struct budgets *b = budgets_new(&cfg, NULL, NOV21);
    char why[256];
    int64_t retry;
    for (int d = 0; d < 5; d++)
        spend(b, NOV21 + d * DAY + HOUR, "a", "chat", NULL, 10, NULL);
    assert_true(budgets_call_blocked(b, NOV21 + 5 * DAY, "chat", NULL, why, sizeof why, &retry));
    assert_string_equal(why, "budget 'global' monthly cap $50.00 reached ($50.00 spent this "
                             "month); resets on 2026-12-01 00:00 UTC");
    assert_true(retry == DEC01 - (NOV21 + 5 * DAY));
    double day, month;
    budgets_spend(b, NOV21 + 5 * DAY, BUDGET_GLOBAL, NULL, &day, &month);
    assert_true(day == 0 && month == 50);
    assert_false(budgets_call_blocked(b, DEC01, "chat", NULL, why, sizeof why, &retry));
    budgets_spend(b, DEC01, BUDGET_GLOBAL, NULL, &day, &month);
    assert_true(month == 0);
    budgets_free(b);
}

static void test_budgets_seeded_from_the_ledger_are_enforced_at_once(void **state)
{
    (void)state;
    struct config_budget cb[] = {{BUDGET_TARGET, (char[]){"a"}, 3, 0, 80},
                                 {BUDGET_GLOBAL, NULL, 0, 20, 80}};
    struct config cfg = make_cfg(cb, 2);
    struct ledger_spend_item items[] = {{BUDGET_TARGET, (char[]){"a"}, 3.5, 4},
                                        {BUDGET_TAG, (char[]){"t"}, 1, 2}};
    struct ledger_spend seed = {.day_start_ms = NOV21,
                                .month_start_ms = NOV21 - 20 * DAY,
                                .global_day_usd = 5,
                                .global_month_usd = 21,
                                .savings_day_usd = 1.5,
                                .savings_month_usd = 2.5,
                                .items = items,
                                .n = 2};
    struct budgets *b = budgets_new(&cfg, &seed, NOV21 + HOUR);
    char why[256];
    int64_t retry;
    assert_true(budgets_target_blocked(b, NOV21 + HOUR, "a", why, sizeof why));
    assert_true(budgets_call_blocked(b, NOV21 + HOUR, "chat", NULL, why, sizeof why, &retry));
    double day, month;
    budgets_spend(b, NOV21 + HOUR, BUDGET_TAG, "t", &day, &month);
    assert_true(day == 1 && month == 2);
    budgets_savings(b, NOV21 + HOUR, &day, &month);
    assert_true(day == 1.5 && month == 2.5);
    struct budget_status st[4];
    assert_int_equal(budgets_status(b, NOV21 + HOUR, st, 4), 2);
    assert_string_equal(st[0].label, "target:a");
    assert_int_equal(st[0].day_level, BUDGET_LEVEL_HARD);
    assert_int_equal(st[0].day_exhausted_in_ms, 0);
    assert_int_equal(st[1].month_level, BUDGET_LEVEL_HARD);
    budgets_free(b);
}

static void test_budgets_burn_rate_and_time_to_exhaustion(void **state)
{
    (void)state;
    struct config_budget cb[] = {{BUDGET_ROUTE, (char[]){"chat"}, 100, 100000, 80}};
    struct config cfg = make_cfg(cb, 1);
    struct budgets *b = budgets_new(&cfg, NULL, NOV21);
    int64_t t0 = NOV21 + HOUR;
    for (int m = 0; m < 10; m++) /* $1 a minute for 10 minutes */
        spend(b, t0 + m * MIN, "a", "chat", NULL, 1, NULL);
    struct budget_status st;
    int64_t now = t0 + 9 * MIN + 1000;
    assert_int_equal(budgets_status(b, now, &st, 1), 1);
    assert_true(st.burn_per_hour == 10);
    assert_true(st.day_spent == 10);
    assert_int_equal(st.day_level, BUDGET_LEVEL_OK);
    assert_true(st.day_exhausted_in_ms == 9 * HOUR); /* $90 left at $10/h */
    assert_true(st.month_exhausted_in_ms == -1);     /* not before the month ends */
    assert_true(st.day_resets_in_ms == NOV21 + DAY - now);
    /* An hour later the old minutes have left the window. */
    assert_int_equal(budgets_status(b, t0 + 2 * HOUR, &st, 1), 1);
    assert_true(st.burn_per_hour == 0);
    assert_true(st.day_exhausted_in_ms == -1);
    budgets_free(b);
}

/* Issue 15: in the first hour the burn rate is spend over the real elapsed time, not "the
 * last 60 minutes" (which then equals total spend). */
static void test_budgets_burn_rate_in_the_first_hour_uses_elapsed_time(void **state)
{
    (void)state;
    struct config_budget cb[] = {{BUDGET_ROUTE, (char[]){"chat"}, 100, 100000, 80}};
    struct config cfg = make_cfg(cb, 1);
    struct budgets *b = budgets_new(&cfg, NULL, NOV21 + HOUR);
    spend(b, NOV21 + HOUR + 5 * MIN, "a", "chat", NULL, 1, NULL); /* $1 in the first 10 min */
    struct budget_status st;
    assert_int_equal(budgets_status(b, NOV21 + HOUR + 10 * MIN, &st, 1), 1);
    assert_true(fabs(st.burn_per_hour - 6.0) < 1e-9); /* $1 per 10 minutes */
    budgets_free(b);
}

static void test_budgets_reload_keeps_spend_and_applies_new_caps(void **state)
{
    (void)state;
    struct config_budget cb[] = {{BUDGET_TAG, (char[]){"x"}, 10, 0, 50}};
    struct config cfg = make_cfg(cb, 1);
    struct budgets *b = budgets_new(&cfg, NULL, NOV21);
    struct budget_alert al[8];
    assert_int_equal(spend(b, NOV21 + HOUR, "a", "chat", "x", 6, al), 1); /* soft at 50% */
    struct config_budget cb2[] = {{BUDGET_GLOBAL, NULL, 1000, 0, 80},
                                  {BUDGET_TAG, (char[]){"x"}, 6, 0, 50}};
    struct config cfg2 = make_cfg(cb2, 2);
    budgets_reconfigure(b, &cfg2);
    char why[256];
    int64_t retry;
    assert_true(budgets_call_blocked(b, NOV21 + HOUR, "chat", "x", why, sizeof why, &retry));
    double day, month;
    budgets_spend(b, NOV21 + HOUR, BUDGET_GLOBAL, NULL, &day, &month);
    assert_true(day == 6);
    /* the soft warning already given is not repeated; the cap event comes once */
    assert_int_equal(spend(b, NOV21 + HOUR, "a", "chat", "x", 0.5, al), 1);
    assert_int_equal(al[0].level, BUDGET_LEVEL_HARD);
    budgets_free(b);
}

static void test_budgets_target_counts_the_answer_others_count_everything(void **state)
{
    (void)state;
    struct config cfg = make_cfg(NULL, 0);
    struct budgets *b = budgets_new(&cfg, NULL, NOV21);
    struct budget_alert al[8];
    struct budget_charge ch = {"a", "chat", "t", 1.0, 1.5, true, 3.0};
    budgets_note_spend(b, NOV21 + HOUR, &ch, al, 8);
    struct budget_charge cached = {"cache", "chat", "t", 0, 0, true, 2.0};
    budgets_note_spend(b, NOV21 + HOUR, &cached, al, 8);
    double day, month;
    budgets_spend(b, NOV21 + HOUR, BUDGET_TARGET, "a", &day, &month);
    assert_true(day == 1.0 && month == 1.0);
    budgets_spend(b, NOV21 + HOUR, BUDGET_ROUTE, "chat", &day, &month);
    assert_true(day == 1.5);
    budgets_spend(b, NOV21 + HOUR, BUDGET_TAG, "t", &day, &month);
    assert_true(day == 1.5);
    budgets_spend(b, NOV21 + HOUR, BUDGET_TARGET, "cache", &day, &month);
    assert_true(day == 0);
    budgets_savings(b, NOV21 + HOUR, &day, &month);
    assert_true(day == 5.0 && month == 5.0);
    budgets_savings(b, NOV21 + DAY, &day, &month);
    assert_true(day == 0 && month == 5.0);
    budgets_free(b);
}

static void test_budgets_track_a_bounded_number_of_tags(void **state)
{
    (void)state;
    struct config_budget cb[] = {{BUDGET_TAG, (char[]){"late"}, 1, 0, 80}};
    struct config cfg = make_cfg(cb, 1);
    struct budgets *b = budgets_new(&cfg, NULL, NOV21);
    char tag[32];
    for (int i = 0; i < BUDGETS_MAX_TAGS + 500; i++) {
        snprintf(tag, sizeof tag, "tag-%d", i);
        spend(b, NOV21 + HOUR, "a", "chat", tag, 0.01, NULL);
    }
    double day, month;
    budgets_spend(b, NOV21 + HOUR, BUDGET_GLOBAL, NULL, &day, &month);
    assert_true(day > (BUDGETS_MAX_TAGS + 499) * 0.01 && day < (BUDGETS_MAX_TAGS + 501) * 0.01);
    budgets_spend(b, NOV21 + HOUR, BUDGET_TAG, "tag-5", &day, &month);
    assert_true(day > 0.0099);
    budgets_spend(b, NOV21 + HOUR, BUDGET_TAG, "tag-1300", &day, &month);
    assert_true(day == 0);                                /* beyond the cap: not tracked */
    spend(b, NOV21 + HOUR, "a", "chat", "late", 2, NULL); /* a budgeted tag always is */
    char why[256];
    int64_t retry;
    assert_true(budgets_call_blocked(b, NOV21 + HOUR, "chat", "late", why, sizeof why, &retry));
    budgets_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_budgets_warn_once_at_the_soft_limit_then_once_at_the_cap),
        cmocka_unit_test(test_budgets_target_budget_takes_the_target_out),
        cmocka_unit_test(test_budgets_global_route_and_tag_caps_refuse_calls),
        cmocka_unit_test(test_budgets_monthly_cap_holds_across_days_until_the_month_ends),
        cmocka_unit_test(test_budgets_seeded_from_the_ledger_are_enforced_at_once),
        cmocka_unit_test(test_budgets_burn_rate_and_time_to_exhaustion),
        cmocka_unit_test(test_budgets_burn_rate_in_the_first_hour_uses_elapsed_time),
        cmocka_unit_test(test_budgets_reload_keeps_spend_and_applies_new_caps),
        cmocka_unit_test(test_budgets_target_counts_the_answer_others_count_everything),
        cmocka_unit_test(test_budgets_track_a_bounded_number_of_tags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
