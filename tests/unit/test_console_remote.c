/* test_console_remote.c - attaching, the pure parts: /admin/state JSON (as the gateway
 * writes it) back into a snapshot, and several instances merged into one board. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../src/gateway/internal.h"
#include "switchboard/console_backend.h"

static struct router_snapshot *snap_two(void)
{
    struct router_snapshot *s = xcalloc(1, sizeof *s);
    s->gen = 7;
    s->wall_ms = 1700000000000;
    s->n_targets = 2;
    struct router_target_snap *a = &s->targets[0], *b = &s->targets[1];
    str_copy(a->name, sizeof a->name, "alpha");
    str_copy(a->kind, sizeof a->kind, "openai");
    str_copy(a->model, sizeof a->model, "gpt-4o-mini");
    a->enabled = true;
    a->weight = 2;
    a->stats.calls = 10;
    a->stats.successes = 8;
    a->stats.failures = 2;
    a->stats.errors[LLM_ERR_RATE_LIMIT] = 2;
    a->stats.in_flight = 1;
    a->stats.spend_usd = 0.25;
    a->stats.latency_1m[1] = 120;
    a->stats.rate_series[59] = 3;
    a->stats.last_errclass = LLM_ERR_RATE_LIMIT;
    str_copy(a->stats.last_error, sizeof a->stats.last_error, "429 slow down");
    a->last_error_age_ms = 500;
    a->stats.now_ms = 100000;
    a->stats.n_recent = 1;
    a->stats.recent[0].done_ms = 98000;
    a->stats.recent[0].errclass = LLM_ERR_TIMEOUT;
    a->stats.recent[0].latency_us = 1234;
    a->stats.recent[0].tokens_in = -1;
    str_copy(a->stats.recent[0].error, sizeof a->stats.recent[0].error, "deadline");
    str_copy(a->stats.recent[0].request_id, sizeof a->stats.recent[0].request_id, "req-42");
    str_copy(b->name, sizeof b->name, "beta");
    b->breaker = BREAKER_OPEN;
    str_copy(b->breaker_reason, sizeof b->breaker_reason, "5 failures in a row");
    b->drained = true;
    b->last_error_age_ms = -1;
    s->n_routes = 1;
    str_copy(s->routes[0].name, sizeof s->routes[0].name, "chat");
    s->routes[0].n_targets = 2;
    s->routes[0].targets[0] = 1;
    s->routes[0].targets[1] = 0;
    s->calls = 10;
    s->successes = 8;
    s->failures = 2;
    s->in_flight = 1;
    s->gateway_calls = 9;
    s->spend_usd = 0.25;
    s->n_budgets = 1;
    str_copy(s->budgets[0].label, sizeof s->budgets[0].label, "global");
    s->budgets[0].daily_cap = 5;
    s->budgets[0].level = BUDGET_LEVEL_SOFT;
    return s;
}

static struct router_snapshot *round_trip(const struct router_snapshot *in)
{
    struct buf json;
    buf_init(&json);
    gw_state_json(in, &json);
    struct router_snapshot *out = xcalloc(1, sizeof *out);
    char msg[128];
    assert_int_equal(console_state_parse(buf_str(&json), json.len, out, msg, sizeof msg), SB_OK);
    buf_cleanup(&json);
    return out;
}

static void test_state_json_reads_back_into_the_same_snapshot(void **state)
{
    (void)state;
    struct router_snapshot *in = snap_two(), *out = round_trip(in);
    assert_int_equal(out->gen, 7);
    assert_int_equal(out->n_targets, 2);
    assert_string_equal(out->targets[0].name, "alpha");
    assert_string_equal(out->targets[0].model, "gpt-4o-mini");
    assert_true(out->targets[0].enabled);
    assert_true(out->targets[0].weight == 2);
    assert_int_equal(out->targets[0].stats.calls, 10);
    assert_int_equal(out->targets[0].stats.errors[LLM_ERR_RATE_LIMIT], 2);
    assert_int_equal(out->targets[0].stats.in_flight, 1);
    assert_true(fabs(out->targets[0].stats.latency_1m[1] - 120) < 1e-9);
    assert_true(out->targets[0].stats.rate_series[59] == 3);
    assert_int_equal(out->targets[0].stats.last_errclass, LLM_ERR_RATE_LIMIT);
    assert_string_equal(out->targets[0].stats.last_error, "429 slow down");
    assert_int_equal(out->targets[0].stats.n_recent, 1); /* recent calls: their age holds */
    assert_int_equal(out->targets[0].stats.now_ms - out->targets[0].stats.recent[0].done_ms, 2000);
    assert_int_equal(out->targets[0].stats.recent[0].errclass, LLM_ERR_TIMEOUT);
    assert_int_equal(out->targets[0].stats.recent[0].latency_us, 1234);
    assert_int_equal(out->targets[0].stats.recent[0].tokens_in, -1);
    assert_string_equal(out->targets[0].stats.recent[0].error, "deadline");
    assert_string_equal(out->targets[0].stats.recent[0].request_id, "req-42");
    assert_int_equal(out->targets[1].breaker, BREAKER_OPEN);
    assert_string_equal(out->targets[1].breaker_reason, "5 failures in a row");
    assert_true(out->targets[1].drained);
    assert_int_equal(out->targets[1].last_error_age_ms, -1);
    assert_int_equal(out->n_routes, 1);
    assert_int_equal(out->routes[0].targets[0], 1);
    assert_int_equal(out->routes[0].targets[1], 0);
    assert_int_equal(out->gateway_calls, 9);
    assert_int_equal(out->n_budgets, 1);
    assert_int_equal(out->budgets[0].scope, BUDGET_GLOBAL);
    assert_int_equal(out->budgets[0].level, BUDGET_LEVEL_SOFT);
    assert_int_equal(out->n_events, 0); /* events come from /admin/events */
    free(in);
    free(out);
}

static void test_state_parse_refuses_what_is_not_a_state(void **state)
{
    (void)state;
    struct router_snapshot *out = xcalloc(1, sizeof *out);
    char msg[128] = "";
    assert_int_equal(console_state_parse("{\"error\":{}}", 12, out, msg, sizeof msg), SB_ERR_PARSE);
    assert_true(strstr(msg, "state") != NULL);
    assert_int_equal(console_state_parse("[1,", 3, out, msg, sizeof msg), SB_ERR_PARSE);
    free(out);
}

static void test_merge_sums_counters_and_shows_the_worst_breaker_with_its_instance(void **state)
{
    (void)state;
    struct router_snapshot *a = snap_two(), *b = snap_two();
    b->targets[1].breaker = BREAKER_CLOSED; /* beta is open on a only */
    b->targets[1].drained = false;
    b->targets[0].stats.latency_1m[1] = 300;
    b->targets[0].last_error_age_ms = 100;
    const struct router_snapshot *in[] = {b, a};
    const char *names[] = {"h2:8080", "h1:8080"};
    struct router_snapshot *out = xcalloc(1, sizeof *out);
    console_merge(in, names, 2, out);
    assert_int_equal(out->n_targets, 2);
    assert_int_equal(out->targets[0].stats.calls, 20);
    assert_int_equal(out->targets[0].stats.in_flight, 2);
    assert_true(fabs(out->targets[0].stats.spend_usd - 0.5) < 1e-9);
    assert_true(fabs(out->targets[0].stats.latency_1m[1] - 300) < 1e-9); /* the worst */
    assert_true(out->targets[0].stats.rate_series[59] == 6);
    assert_int_equal(out->targets[0].last_error_age_ms, 100);
    assert_int_equal(out->targets[1].breaker, BREAKER_OPEN);
    assert_non_null(strstr(out->targets[1].breaker_reason, "on h1:8080"));
    assert_true(out->targets[1].drained);
    assert_int_equal(out->calls, 20);
    assert_int_equal(out->gateway_calls, 18);
    assert_int_equal(out->n_routes, 1);
    free(a);
    free(b);
    free(out);
}

static void test_merge_skips_missing_instances_and_keeps_events(void **state)
{
    (void)state;
    struct router_snapshot *a = snap_two();
    struct router_snapshot *out = xcalloc(1, sizeof *out);
    out->n_events = 1;
    out->events[0].seq = 42;
    out->gen = 99;
    const struct router_snapshot *in[] = {NULL, a};
    const char *names[] = {"down:1", "up:2"};
    console_merge(in, names, 2, out);
    assert_int_equal(out->n_targets, 2);
    assert_int_equal(out->targets[0].stats.calls, 10);
    assert_non_null(strstr(out->targets[1].breaker_reason, "on up:2"));
    assert_int_equal(out->n_events, 1);
    assert_int_equal(out->events[0].seq, 42);
    assert_int_equal(out->gen, 99);
    free(a);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_json_reads_back_into_the_same_snapshot),
        cmocka_unit_test(test_state_parse_refuses_what_is_not_a_state),
        cmocka_unit_test(test_merge_sums_counters_and_shows_the_worst_breaker_with_its_instance),
        cmocka_unit_test(test_merge_skips_missing_instances_and_keeps_events),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
