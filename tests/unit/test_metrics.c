/*
 * test_metrics.c - /metrics rendering: a filled snapshot plus gateway counters -> Prometheus
 * text 0.0.4. Every sample line is parsed back: its family is declared with # TYPE, label
 * values are escaped, histograms are cumulative and end with +Inf == _count.
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

#define WEIRD         "we\"ird\\name\nx"
#define WEIRD_ESCAPED "we\\\"ird\\\\name\\nx"

static struct router_snapshot *snap_filled(void)
{
    struct router_snapshot *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->uptime_ms = 12500;
    s->n_targets = 2;
    struct router_target_snap *a = &s->targets[0], *b = &s->targets[1];
    str_copy(a->name, sizeof a->name, "oa");
    a->enabled = true;
    a->breaker = BREAKER_HALF_OPEN;
    a->weight = 2.5;
    a->stats.calls = 100;
    a->stats.successes = 90;
    a->stats.errors[LLM_ERR_TIMEOUT] = 7;
    a->stats.errors[LLM_ERR_RATE_LIMIT] = 3;
    a->stats.retries = 4;
    a->stats.hedges = 2;
    a->stats.truncated = 1;
    a->stats.in_flight = 5;
    a->stats.tokens_in = 1000;
    a->stats.tokens_out = 250;
    a->stats.tokens_cached = 100;
    a->stats.spend_usd = 0.125;
    a->stats.latency_1m[0] = 120;
    a->stats.latency_1m[1] = 480.5;
    a->stats.latency_1m[2] = 900;
    for (size_t i = 0; i < HIST_PROM_COUNT; i++)
        a->stats.latency_prom[i] = i < 3 ? 10 * i : 90;
    a->stats.latency_count = 90;
    a->stats.latency_sum_us = 27000000;
    str_copy(b->name, sizeof b->name, WEIRD);
    b->breaker = BREAKER_OPEN;
    return s;
}

static char *render(const struct router_snapshot *snap, const struct gw_stats *gs)
{
    struct buf out;
    buf_init(&out);
    gw_metrics_render(snap, gs, &out);
    return buf_take(&out);
}

/* The exact line "name{labels} value" is present. */
static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++) {
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return true;
    }
    return false;
}

static bool declared(const char *text, const char *family, const char *type)
{
    char want[300];
    snprintf(want, sizeof want, "# TYPE %s %s", family, type);
    return has_line(text, want);
}

/* Strips a histogram / summary suffix when the base is a declared family. */
static void family_of(const char *text, const char *name, char *fam, size_t size)
{
    static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
    str_copy(fam, size, name);
    for (size_t i = 0; i < SB_ARRAY_LEN(suffixes); i++) {
        size_t nl = strlen(name), sl = strlen(suffixes[i]);
        if (nl > sl && strcmp(name + nl - sl, suffixes[i]) == 0) {
            char base[200];
            snprintf(base, sizeof base, "%.*s", (int)(nl - sl), name);
            if (declared(text, base, "histogram") || declared(text, base, "summary")) {
                str_copy(fam, size, base);
                return;
            }
        }
    }
}

/* Parses every sample line: name, optional {k="v",...} with valid escapes, a number. */
static void check_every_line(const char *text)
{
    const char *p = text;
    int samples = 0;
    while (*p) {
        const char *eol = strchr(p, '\n');
        assert_non_null(eol);
        if (*p == '#') {
            assert_true(strncmp(p, "# HELP ", 7) == 0 || strncmp(p, "# TYPE ", 7) == 0);
            p = eol + 1;
            continue;
        }
        char name[200];
        size_t n = strcspn(p, "{ ");
        assert_true(n > 0 && n < sizeof name);
        memcpy(name, p, n);
        name[n] = '\0';
        for (size_t i = 0; i < n; i++)
            assert_true(name[i] == '_' || (name[i] >= 'a' && name[i] <= 'z') ||
                        (name[i] >= '0' && name[i] <= '9'));
        const char *q = p + n;
        if (*q == '{') {
            q++;
            while (*q != '}') {
                while (*q >= 'a' && *q <= 'z')
                    q++;
                assert_true(q[0] == '=' && q[1] == '"');
                q += 2;
                while (*q != '"') {
                    assert_true(*q != '\n');
                    if (*q == '\\') {
                        assert_true(q[1] == '\\' || q[1] == '"' || q[1] == 'n');
                        q++;
                    }
                    q++;
                }
                q++;
                if (*q == ',')
                    q++;
            }
            q++;
        }
        assert_true(*q == ' ');
        char *end;
        const char *num = q + 1;
        if (strncmp(num, "+Inf", 4) != 0 && strncmp(num, "NaN", 3) != 0) {
            strtod(num, &end);
            assert_ptr_equal(end, eol);
        }
        char fam[200];
        family_of(text, name, fam, sizeof fam);
        char want[220];
        snprintf(want, sizeof want, "# TYPE %s ", fam);
        assert_non_null(strstr(text, want));
        samples++;
        p = eol + 1;
    }
    assert_true(samples > 50);
}

static void test_metrics_every_line_parses_and_every_family_is_declared(void **state)
{
    (void)state;
    struct router_snapshot *snap = snap_filled();
    struct gw_stats gs;
    memset(&gs, 0, sizeof gs);
    gw_stats_note_status(&gs, 200);
    char *text = render(snap, &gs);
    check_every_line(text);
    static const struct {
        const char *family, *type;
    } families[] = {
        {"switchboard_requests_total", "counter"},
        {"switchboard_errors_total", "counter"},
        {"switchboard_latency_seconds", "histogram"},
        {"switchboard_ttft_seconds", "histogram"},
        {"switchboard_latency_1m_seconds", "gauge"},
        {"switchboard_tokens_total", "counter"},
        {"switchboard_spend_usd_total", "counter"},
        {"switchboard_breaker_state", "gauge"},
        {"switchboard_weight", "gauge"},
        {"switchboard_in_flight", "gauge"},
        {"switchboard_retries_total", "counter"},
        {"switchboard_hedges_total", "counter"},
        {"switchboard_truncated_streams_total", "counter"},
        {"switchboard_gateway_requests_total", "counter"},
        {"switchboard_gateway_overhead_seconds", "histogram"},
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(families); i++) {
        if (!declared(text, families[i].family, families[i].type))
            fail_msg("missing # TYPE %s %s", families[i].family, families[i].type);
    }
    free(text);
    free(snap);
}

static void test_metrics_per_target_values_and_labels(void **state)
{
    (void)state;
    struct router_snapshot *snap = snap_filled();
    struct gw_stats gs;
    memset(&gs, 0, sizeof gs);
    char *text = render(snap, &gs);
    assert_true(has_line(text, "switchboard_requests_total{target=\"oa\"} 100"));
    assert_true(has_line(text, "switchboard_errors_total{target=\"oa\",class=\"timeout\"} 7"));
    assert_true(has_line(text, "switchboard_errors_total{target=\"oa\",class=\"rate_limit\"} 3"));
    assert_true(has_line(text, "switchboard_errors_total{target=\"oa\",class=\"server\"} 0"));
    assert_true(has_line(text, "switchboard_tokens_total{target=\"oa\",direction=\"input\"} 1000"));
    assert_true(has_line(text, "switchboard_tokens_total{target=\"oa\",direction=\"output\"} 250"));
    assert_true(has_line(text, "switchboard_spend_usd_total{target=\"oa\"} 0.125"));
    assert_true(has_line(text, "switchboard_breaker_state{target=\"oa\"} 1"));
    assert_true(has_line(text, "switchboard_weight{target=\"oa\"} 2.5"));
    assert_true(has_line(text, "switchboard_in_flight{target=\"oa\"} 5"));
    assert_true(has_line(text, "switchboard_retries_total{target=\"oa\"} 4"));
    assert_true(has_line(text, "switchboard_hedges_total{target=\"oa\"} 2"));
    assert_true(has_line(text, "switchboard_truncated_streams_total{target=\"oa\"} 1"));
    assert_true(
        has_line(text, "switchboard_latency_1m_seconds{target=\"oa\",quantile=\"0.95\"} 0.4805"));
    assert_true(has_line(text, "switchboard_uptime_seconds 12.5"));
    free(text);
    free(snap);
}

static void test_metrics_escapes_label_values(void **state)
{
    (void)state;
    struct router_snapshot *snap = snap_filled();
    struct gw_stats gs;
    memset(&gs, 0, sizeof gs);
    char *text = render(snap, &gs);
    assert_true(has_line(text, "switchboard_breaker_state{target=\"" WEIRD_ESCAPED "\"} 2"));
    assert_null(strstr(text, WEIRD));
    struct buf b;
    buf_init(&b);
    gw_prom_label(&b, "a\"b\\c\nd");
    assert_string_equal(buf_str(&b), "a\\\"b\\\\c\\nd");
    buf_cleanup(&b);
    free(text);
    free(snap);
}

static void test_metrics_latency_histogram_is_cumulative_with_sum_and_count(void **state)
{
    (void)state;
    struct router_snapshot *snap = snap_filled();
    struct gw_stats gs;
    memset(&gs, 0, sizeof gs);
    char *text = render(snap, &gs);
    assert_true(has_line(text, "switchboard_latency_seconds_bucket{target=\"oa\",le=\"0.005\"} 0"));
    assert_true(has_line(text, "switchboard_latency_seconds_bucket{target=\"oa\",le=\"0.01\"} 10"));
    assert_true(has_line(text, "switchboard_latency_seconds_bucket{target=\"oa\",le=\"+Inf\"} 90"));
    assert_true(has_line(text, "switchboard_latency_seconds_sum{target=\"oa\"} 27"));
    assert_true(has_line(text, "switchboard_latency_seconds_count{target=\"oa\"} 90"));
    assert_true(has_line(text, "switchboard_ttft_seconds_count{target=\"oa\"} 0"));
    free(text);
    free(snap);
}

static void test_metrics_gateway_counters_and_overhead_buckets(void **state)
{
    (void)state;
    struct router_snapshot *snap = snap_filled();
    struct gw_stats gs;
    memset(&gs, 0, sizeof gs);
    gw_stats_note_status(&gs, 200);
    gw_stats_note_status(&gs, 200);
    gw_stats_note_status(&gs, 404);
    gw_stats_note_status(&gs, 999);       /* out of range: ignored */
    gw_stats_note_overhead(&gs, 50);      /* on the 50 us boundary */
    gw_stats_note_overhead(&gs, 51);      /* -> 100 us */
    gw_stats_note_overhead(&gs, 3000);    /* -> 5 ms */
    gw_stats_note_overhead(&gs, 9000000); /* -> +Inf */
    gw_stats_note_overhead(&gs, -1);      /* ignored */
    gs.calls_in_flight = 3;
    gs.streams_truncated = 2;
    char *text = render(snap, &gs);
    assert_true(has_line(text, "switchboard_gateway_requests_total{code=\"200\"} 2"));
    assert_true(has_line(text, "switchboard_gateway_requests_total{code=\"404\"} 1"));
    assert_null(strstr(text, "code=\"999\""));
    assert_true(has_line(text, "switchboard_gateway_overhead_seconds_bucket{le=\"0.00005\"} 1"));
    assert_true(has_line(text, "switchboard_gateway_overhead_seconds_bucket{le=\"0.0001\"} 2"));
    assert_true(has_line(text, "switchboard_gateway_overhead_seconds_bucket{le=\"0.0025\"} 2"));
    assert_true(has_line(text, "switchboard_gateway_overhead_seconds_bucket{le=\"0.005\"} 3"));
    assert_true(has_line(text, "switchboard_gateway_overhead_seconds_bucket{le=\"0.25\"} 3"));
    assert_true(has_line(text, "switchboard_gateway_overhead_seconds_bucket{le=\"+Inf\"} 4"));
    assert_true(has_line(text, "switchboard_gateway_overhead_seconds_count 4"));
    assert_true(has_line(text, "switchboard_gateway_overhead_seconds_sum 9.003101"));
    assert_true(has_line(text, "switchboard_gateway_in_flight 3"));
    assert_true(has_line(text, "switchboard_gateway_truncated_streams_total 2"));
    free(text);
    free(snap);
}

static void test_metrics_client_limits_and_slow_readers(void **state)
{
    (void)state;
    struct router_snapshot *snap = snap_filled();
    struct gw_stats gs;
    memset(&gs, 0, sizeof gs);
    gs.connections[0] = 40;
    gs.connections[1] = 2;
    gs.conn_saturated = 3;
    gs.conn_refused = 30;
    gs.request_timeouts = 41;
    gs.body_bytes = 60000;
    gs.body_refused = 2;
    gs.answer_bytes = 65648;
    gs.upstream_pauses = 14;
    gs.clients_stalled = 1;
    gs.draining = true;
    char *text = render(snap, &gs);
    assert_true(has_line(text, "switchboard_gateway_connections{listener=\"api\"} 40"));
    assert_true(has_line(text, "switchboard_gateway_connections{listener=\"ops\"} 2"));
    assert_true(has_line(text, "switchboard_gateway_connections_saturated_total 3"));
    assert_true(has_line(text, "switchboard_gateway_connections_refused_total 30"));
    assert_true(has_line(text, "switchboard_gateway_request_timeouts_total 41"));
    assert_true(has_line(text, "switchboard_gateway_request_bytes 60000"));
    assert_true(has_line(text, "switchboard_gateway_request_bytes_refused_total 2"));
    assert_true(has_line(text, "switchboard_gateway_answer_bytes 65648"));
    assert_true(has_line(text, "switchboard_gateway_upstream_pauses_total 14"));
    assert_true(has_line(text, "switchboard_gateway_clients_stalled_total 1"));
    assert_true(has_line(text, "switchboard_gateway_draining 1"));
    free(text);
    free(snap);
}

static void test_metrics_budgets_guard_and_ledger(void **state)
{
    (void)state;
    struct router_snapshot *snap = snap_filled();
    struct gw_stats gs;
    memset(&gs, 0, sizeof gs);
    snap->n_budgets = 2;
    str_copy(snap->budgets[0].label, sizeof snap->budgets[0].label, "global");
    snap->budgets[0].daily_cap = 50;
    snap->budgets[0].day_spent = 12.5;
    snap->budgets[0].level = BUDGET_LEVEL_SOFT;
    str_copy(snap->budgets[1].label, sizeof snap->budgets[1].label, "tag:\"x\"");
    snap->budgets[1].level = BUDGET_LEVEL_HARD;
    snap->budget_refused = 4;
    snap->guard_throttled = 9;
    snap->guard_storms = 1;
    snap->ledger.written = 77;
    snap->ledger.queued = 3;
    char *text = render(snap, &gs);
    check_every_line(text);
    assert_true(
        has_line(text, "switchboard_budget_spent_usd{budget=\"global\",window=\"day\"} 12.5"));
    assert_true(has_line(text, "switchboard_budget_cap_usd{budget=\"global\",window=\"day\"} 50"));
    assert_true(has_line(text, "switchboard_budget_level{budget=\"global\"} 1"));
    assert_true(has_line(text, "switchboard_budget_level{budget=\"tag:\\\"x\\\"\"} 2"));
    assert_true(has_line(text, "switchboard_budget_refused_total 4"));
    assert_true(has_line(text, "switchboard_guard_throttled_total 9"));
    assert_true(has_line(text, "switchboard_guard_storms_total 1"));
    assert_true(has_line(text, "switchboard_ledger_rows_written_total 77"));
    assert_true(has_line(text, "switchboard_ledger_queue 3"));
    free(text);
    free(snap);
}

static void test_metrics_spend_windows_and_savings(void **state)
{
    (void)state;
    struct router_snapshot *snap = snap_filled();
    struct gw_stats gs;
    memset(&gs, 0, sizeof gs);
    snap->spend_today_usd = 1.25;
    snap->spend_month_usd = 40;
    snap->burn_per_hour_usd = 0.5;
    snap->savings_usd = -0.75;
    snap->savings_today_usd = 2;
    snap->targets[0].spend_today_usd = 1;
    char *text = render(snap, &gs);
    check_every_line(text);
    assert_true(declared(text, "switchboard_savings_usd", "gauge"));
    assert_true(has_line(text, "switchboard_spend_window_usd{window=\"day\"} 1.25"));
    assert_true(has_line(text, "switchboard_spend_window_usd{window=\"month\"} 40"));
    assert_true(has_line(text, "switchboard_burn_usd_per_hour 0.5"));
    assert_true(has_line(text, "switchboard_savings_usd{window=\"since_start\"} -0.75"));
    assert_true(has_line(text, "switchboard_savings_usd{window=\"day\"} 2"));
    assert_true(
        has_line(text, "switchboard_target_spend_window_usd{target=\"oa\",window=\"day\"} 1"));
    free(text);
    free(snap);
}

static void test_metrics_with_no_targets_still_declares_the_families(void **state)
{
    (void)state;
    struct router_snapshot *snap = calloc(1, sizeof *snap);
    struct gw_stats gs;
    memset(&gs, 0, sizeof gs);
    char *text = render(snap, &gs);
    assert_true(declared(text, "switchboard_requests_total", "counter"));
    assert_null(strstr(text, "target="));
    free(text);
    free(snap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_every_line_parses_and_every_family_is_declared),
        cmocka_unit_test(test_metrics_per_target_values_and_labels),
        cmocka_unit_test(test_metrics_escapes_label_values),
        cmocka_unit_test(test_metrics_latency_histogram_is_cumulative_with_sum_and_count),
        cmocka_unit_test(test_metrics_gateway_counters_and_overhead_buckets),
        cmocka_unit_test(test_metrics_client_limits_and_slow_readers),
        cmocka_unit_test(test_metrics_budgets_guard_and_ledger),
        cmocka_unit_test(test_metrics_spend_windows_and_savings),
        cmocka_unit_test(test_metrics_with_no_targets_still_declares_the_families),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
