/*
 * test_report.c - `switchboard report`'s aggregation and formats, without a database: rows
 * grouped by target, route, tag and day with exact nearest-rank percentiles, spend, savings
 * and missing usage counted apart, and the table, CSV (quoting) and JSON (parsed back with
 * cJSON) renderings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "switchboard/ledger.h"

#define NOV21 (1795262400000LL - 43200000LL) /* 2026-11-21T00:00:00Z */
#define DAY   86400000LL

static struct ledger_call row(const char *target, const char *route, const char *tag,
                              int64_t latency_ms, double cost)
{
    struct ledger_call c = {
        .wall_ms = NOV21 + 1000,
        .route = route,
        .target = target,
        .tag = tag,
        .status = 200,
        .attempts = 1,
        .usage = {.present = true, .input_tokens = 10, .output_tokens = 20, .cached_tokens = 1},
        .cost_usd = cost,
        .est_cost_usd = -1,
        .baseline_cost_usd = -1,
        .retry_cost_usd = 0,
        .hedge_cost_usd = 0,
        .latency_us = latency_ms * 1000,
        .ttft_us = -1,
    };
    return c;
}

static const struct ledger_report_row *find(const struct ledger_report_row *rows, size_t n,
                                            const char *key)
{
    for (size_t i = 0; i < n; i++) {
        if (str_eq(rows[i].key, key))
            return &rows[i];
    }
    fail_msg("no group %s", key);
    return NULL;
}

static void test_report_groups_and_counts_by_target(void **state)
{
    (void)state;
    struct ledger_report *r = ledger_report_new(LEDGER_BY_TARGET);
    for (int i = 1; i <= 100; i++) { /* latencies 1..100 ms */
        struct ledger_call c = row("a", "chat", "t", i, 0.01);
        c.baseline_cost_usd = 0.03;
        ledger_report_add(r, &c);
    }
    struct ledger_call fail = row("a", "chat", "t", 5000, 0);
    fail.err = LLM_ERR_SERVER;
    fail.status = 502;
    fail.attempts = 3;
    fail.retries = 2;
    fail.retry_cost_usd = -1; /* unknown */
    fail.usage.present = false;
    ledger_report_add(r, &fail);
    struct ledger_call missing = row("b", "chat", NULL, 7, 0);
    missing.usage_missing = true;
    missing.usage.present = false;
    missing.est_cost_usd = 0.2;
    missing.baseline_cost_usd = -1;
    missing.hedges = 1;
    missing.hedge_cost_usd = 0.05;
    ledger_report_add(r, &missing);
    struct ledger_call throttled = row("", "chat", "t", 0, 0);
    throttled.err = LLM_ERR_RATE_LIMIT;
    throttled.throttled = true;
    throttled.status = 429;
    throttled.attempts = 0;
    throttled.usage.present = false;
    ledger_report_add(r, &throttled);

    const struct ledger_report_row *rows, *total;
    size_t n = ledger_report_rows(r, &rows, &total);
    assert_int_equal(n, 3);
    assert_string_equal(rows[0].key, "(none)"); /* sorted by key */
    const struct ledger_report_row *a = find(rows, n, "a");
    assert_int_equal(a->calls, 101);
    assert_int_equal(a->errors, 1);
    assert_true(a->error_pct > 0.99 && a->error_pct < 0.991);
    assert_true(a->p50_ms == 50); /* nearest rank over successes only */
    assert_true(a->p95_ms == 95);
    assert_int_equal(a->tokens_in, 1000);
    assert_int_equal(a->tokens_out, 2000);
    assert_int_equal(a->tokens_cached, 100);
    assert_true(a->spend_usd > 0.99999 && a->spend_usd < 1.00001);
    assert_true(a->baseline_usd > 2.99999 && a->baseline_usd < 3.00001);
    assert_true(a->savings_usd > 1.99999 && a->savings_usd < 2.00001);
    assert_int_equal(a->retries, 2);
    assert_true(a->retry_hedge_usd == 0); /* unknown costs are not guessed */
    const struct ledger_report_row *b = find(rows, n, "b");
    assert_int_equal(b->usage_missing, 1);
    assert_true(b->spend_usd == 0);
    assert_true(b->est_spend_usd == 0.2);
    assert_int_equal(b->hedges, 1);
    assert_true(b->retry_hedge_usd == 0.05);
    assert_true(b->p50_ms == 7 && b->p95_ms == 7);
    const struct ledger_report_row *none = find(rows, n, "(none)");
    assert_int_equal(none->throttled, 1);
    assert_true(none->error_pct == 100);
    assert_true(none->p50_ms == 0);
    assert_int_equal(total->calls, 103);
    assert_int_equal(total->errors, 2);
    assert_int_equal(total->usage_missing, 1);
    assert_string_equal(total->key, "TOTAL");
    ledger_report_free(r);
}

static void test_report_groups_by_tag_route_and_day(void **state)
{
    (void)state;
    struct ledger_report *tags = ledger_report_new(LEDGER_BY_TAG);
    struct ledger_report *days = ledger_report_new(LEDGER_BY_DAY);
    struct ledger_report *routes = ledger_report_new(LEDGER_BY_ROUTE);
    for (int d = 2; d >= 0; d--) {
        struct ledger_call c = row("a", d ? "chat" : "", d == 1 ? NULL : "x", 10, 1);
        c.wall_ms = NOV21 + d * DAY - 1; /* the last millisecond of the day before */
        ledger_report_add(tags, &c);
        ledger_report_add(days, &c);
        ledger_report_add(routes, &c);
    }
    const struct ledger_report_row *rows, *total;
    assert_int_equal(ledger_report_rows(tags, &rows, &total), 2);
    assert_int_equal(find(rows, 2, "x")->calls, 2);
    assert_int_equal(find(rows, 2, "(none)")->calls, 1);
    assert_int_equal(ledger_report_rows(days, &rows, &total), 3);
    assert_string_equal(rows[0].key, "2026-11-20");
    assert_string_equal(rows[1].key, "2026-11-21");
    assert_string_equal(rows[2].key, "2026-11-22");
    assert_int_equal(ledger_report_rows(routes, &rows, &total), 2);
    assert_int_equal(find(rows, 2, "chat")->calls, 2);
    assert_int_equal(find(rows, 2, "(none)")->calls, 1); /* direct calls */
    ledger_report_free(tags);
    ledger_report_free(days);
    ledger_report_free(routes);
}

static void test_report_csv_quotes_what_needs_quoting(void **state)
{
    (void)state;
    struct ledger_report *r = ledger_report_new(LEDGER_BY_TAG);
    struct ledger_call c = row("a", "chat", "team \"x\", batch", 10, 0.5);
    ledger_report_add(r, &c);
    c.tag = "plain";
    ledger_report_add(r, &c);
    struct buf out;
    buf_init(&out);
    ledger_report_render(r, LEDGER_FORMAT_CSV, NOV21, NOV21 + DAY, &out);
    const char *s = buf_str(&out);
    assert_true(str_has_prefix(s, "tag,calls,errors,error_pct,p50_ms,p95_ms,tokens_in,"));
    assert_non_null(strstr(s, "\r\nplain,1,0,0.00,10.000,10.000,10,20,1,0.500000,"));
    assert_non_null(strstr(s, "\r\n\"team \"\"x\"\", batch\",1,0,"));
    assert_non_null(strstr(s, "\r\nTOTAL,2,0,0.00,10.000,10.000,20,40,2,1.000000,"));
    size_t lines = 0;
    for (const char *p = s; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 4);
    buf_cleanup(&out);
    ledger_report_free(r);
}

/* Tags come from clients: none may reach a spreadsheet as a formula. */
static void test_report_csv_neutralises_formulas(void **state)
{
    static const struct {
        const char *tag;
        const char *field;
    } rows[] = {
        {"=HYPERLINK(\"http://x\",\"y\")", "\r\n\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",1,"},
        {"+1+1", "\r\n\"'+1+1\",1,"},
        {"-2+3", "\r\n\"'-2+3\",1,"},
        {"@SUM(A1:A9)", "\r\n\"'@SUM(A1:A9)\",1,"},
        {"\tx", "\r\n\"'\tx\",1,"},
        {"a=b", "\r\na=b,1,"},
    };
    (void)state;
    struct ledger_report *r = ledger_report_new(LEDGER_BY_TAG);
    for (size_t i = 0; i < SB_ARRAY_LEN(rows); i++) {
        struct ledger_call c = row("a", "chat", rows[i].tag, 10, 0.5);
        ledger_report_add(r, &c);
    }
    struct buf out;
    buf_init(&out);
    ledger_report_render(r, LEDGER_FORMAT_CSV, NOV21, NOV21 + DAY, &out);
    for (size_t i = 0; i < SB_ARRAY_LEN(rows); i++) {
        if (!strstr(buf_str(&out), rows[i].field))
            fail_msg("row %zu missing in:\n%s", i, buf_str(&out));
    }
    buf_cleanup(&out);
    ledger_report_free(r);
}

static void test_report_json_has_stable_keys(void **state)
{
    (void)state;
    struct ledger_report *r = ledger_report_new(LEDGER_BY_TARGET);
    struct ledger_call c = row("a\"\n\xff", "chat", NULL, 10, 0.25);
    c.baseline_cost_usd = 1;
    ledger_report_add(r, &c);
    struct buf out;
    buf_init(&out);
    ledger_report_render(r, LEDGER_FORMAT_JSON, NOV21, NOV21 + DAY, &out);
    cJSON *j = cJSON_Parse(buf_str(&out));
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "by")->valuestring, "target");
    assert_string_equal(cJSON_GetObjectItem(j, "since")->valuestring, "2026-11-21T00:00:00Z");
    assert_string_equal(cJSON_GetObjectItem(j, "until")->valuestring, "2026-11-22T00:00:00Z");
    cJSON *g = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "groups"), 0);
    assert_string_equal(cJSON_GetObjectItem(g, "target")->valuestring, "a\"\n\xef\xbf\xbd");
    static const char *const keys[] = {
        "calls",           "errors",      "error_pct",     "p50_ms",    "p95_ms",
        "tokens_in",       "tokens_out",  "tokens_cached", "spend_usd", "est_spend_usd",
        "baseline_usd",    "savings_usd", "usage_missing", "retries",   "hedges",
        "retry_hedge_usd", "cached",      "throttled"};
    for (size_t i = 0; i < SB_ARRAY_LEN(keys); i++)
        assert_non_null(cJSON_GetObjectItem(g, keys[i]));
    assert_true(cJSON_GetObjectItem(g, "savings_usd")->valuedouble == 0.75);
    cJSON *t = cJSON_GetObjectItem(j, "total");
    assert_string_equal(cJSON_GetObjectItem(t, "target")->valuestring, "TOTAL");
    assert_int_equal(cJSON_GetObjectItem(t, "calls")->valueint, 1);
    cJSON_Delete(j);
    buf_cleanup(&out);
    ledger_report_free(r);
}

static void test_report_table_is_readable_and_terminal_safe(void **state)
{
    (void)state;
    struct ledger_report *r = ledger_report_new(LEDGER_BY_TAG);
    struct buf out;
    buf_init(&out);
    ledger_report_render(r, LEDGER_FORMAT_TABLE, NOV21, NOV21 + DAY, &out);
    assert_non_null(strstr(buf_str(&out), "(no calls in this period)"));
    buf_reset(&out);
    struct ledger_call c = row("a", "chat", "evil\x1b[31mred", 10, 0.5);
    ledger_report_add(r, &c);
    ledger_report_render(r, LEDGER_FORMAT_TABLE, NOV21, NOV21 + DAY, &out);
    const char *s = buf_str(&out);
    assert_non_null(strstr(s, "calls from 2026-11-21T00:00:00Z to 2026-11-22T00:00:00Z, by tag"));
    assert_non_null(strstr(s, "TAG"));
    assert_non_null(strstr(s, "SPEND"));
    assert_non_null(strstr(s, "evil?[31mred"));
    assert_null(strchr(s, '\x1b'));
    assert_non_null(strstr(s, "\nTOTAL"));
    buf_cleanup(&out);
    ledger_report_free(r);
}

static void test_report_parses_its_options(void **state)
{
    (void)state;
    enum ledger_report_by by;
    enum ledger_report_format f;
    assert_true(ledger_report_by_parse("day", &by) && by == LEDGER_BY_DAY);
    assert_true(ledger_report_by_parse("tag", &by) && by == LEDGER_BY_TAG);
    assert_false(ledger_report_by_parse("model", &by));
    assert_true(ledger_report_format_parse("csv", &f) && f == LEDGER_FORMAT_CSV);
    assert_false(ledger_report_format_parse("xml", &f));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_report_groups_and_counts_by_target),
        cmocka_unit_test(test_report_groups_by_tag_route_and_day),
        cmocka_unit_test(test_report_csv_quotes_what_needs_quoting),
        cmocka_unit_test(test_report_csv_neutralises_formulas),
        cmocka_unit_test(test_report_json_has_stable_keys),
        cmocka_unit_test(test_report_table_is_readable_and_terminal_safe),
        cmocka_unit_test(test_report_parses_its_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
