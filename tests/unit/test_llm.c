/*
 * test_llm.c - error classes, rate-limit headers, Go durations, cost, the response collector,
 * request helpers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "switchboard/llm.h"

/* cmocka 1.1.5 has no float assertion. */
#define assert_near(a, b, eps) assert_true(fabs((a) - (b)) <= (eps))

/* 1994-11-06T08:49:37Z, the RFC 7231 example date. */
#define NOV_1994_MS ((int64_t)784111777 * 1000)

static void test_llm_errclass_table_says_what_is_retryable(void **state)
{
    (void)state;
    static const struct {
        enum llm_errclass c;
        const char *name;
        bool retryable;
        int status;
    } rows[] = {
        {LLM_ERR_NONE, "none", false, 200},
        {LLM_ERR_DNS, "dns", true, 502},
        {LLM_ERR_CONNECT, "connect", true, 502},
        {LLM_ERR_TLS, "tls", true, 502},
        {LLM_ERR_TIMEOUT, "timeout", true, 504},
        {LLM_ERR_RATE_LIMIT, "rate_limit", true, 429},
        {LLM_ERR_OVERLOADED, "overloaded", true, 503},
        {LLM_ERR_SERVER, "server", true, 500},
        {LLM_ERR_AUTH, "auth", false, 401},
        {LLM_ERR_BAD_REQUEST, "bad_request", false, 400},
        {LLM_ERR_CONTEXT_LENGTH, "context_length", false, 400},
        {LLM_ERR_BAD_RESPONSE, "bad_response", false, 502},
        {LLM_ERR_TRUNCATED, "truncated", true, 502},
        {LLM_ERR_CANCELLED, "cancelled", false, 499},
        {LLM_ERR_NO_KEY, "no_key", false, 503},
        {LLM_ERR_INTERNAL, "internal", false, 500},
    };
    assert_int_equal(SB_ARRAY_LEN(rows), LLM_ERRCLASS_COUNT);
    for (size_t i = 0; i < SB_ARRAY_LEN(rows); i++) {
        assert_string_equal(llm_errclass_name(rows[i].c), rows[i].name);
        assert_int_equal(llm_errclass_is_retryable(rows[i].c), rows[i].retryable);
        assert_int_equal(llm_errclass_http_status(rows[i].c), rows[i].status);
    }
}

static void test_llm_errclass_from_status_maps_http_codes(void **state)
{
    (void)state;
    static const struct {
        long status;
        enum llm_errclass c;
    } rows[] = {
        {200, LLM_ERR_NONE},         {400, LLM_ERR_BAD_REQUEST}, {401, LLM_ERR_AUTH},
        {403, LLM_ERR_AUTH},         {404, LLM_ERR_BAD_REQUEST}, {408, LLM_ERR_SERVER},
        {413, LLM_ERR_BAD_REQUEST},  {422, LLM_ERR_BAD_REQUEST}, {429, LLM_ERR_RATE_LIMIT},
        {500, LLM_ERR_SERVER},       {502, LLM_ERR_SERVER},      {503, LLM_ERR_SERVER},
        {504, LLM_ERR_SERVER},       {529, LLM_ERR_OVERLOADED},  {599, LLM_ERR_SERVER},
        {302, LLM_ERR_BAD_RESPONSE}, {0, LLM_ERR_BAD_RESPONSE},
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(rows); i++)
        assert_int_equal(llm_errclass_from_status(rows[i].status), rows[i].c);
}

static void test_llm_names_roles_and_finish_reasons(void **state)
{
    (void)state;
    assert_string_equal(llm_role_name(LLM_ROLE_SYSTEM), "system");
    assert_string_equal(llm_role_name(LLM_ROLE_TOOL), "tool");
    assert_null(llm_finish_name(LLM_FINISH_NONE));
    assert_string_equal(llm_finish_name(LLM_FINISH_STOP), "stop");
    assert_string_equal(llm_finish_name(LLM_FINISH_LENGTH), "length");
    assert_string_equal(llm_finish_name(LLM_FINISH_TOOL_CALLS), "tool_calls");
    assert_string_equal(llm_finish_name(LLM_FINISH_CONTENT_FILTER), "content_filter");
    assert_string_equal(llm_finish_name(LLM_FINISH_ERROR), "error");
}

static void test_llm_parses_go_durations(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        bool ok;
        int64_t ms;
    } rows[] = {
        {"1s", true, 1000},    {"6m0s", true, 360000},
        {"20ms", true, 20},    {"1h2m3.5s", true, 3723500},
        {"0", true, 0},        {"0s", true, 0},
        {"1.5m", true, 90000}, {"500us", true, 1},
        {"250ns", true, 1},    {"2h", true, 7200000},
        {"", false, 0},        {"s", false, 0},
        {"1", false, 0},       {"-1s", false, 0},
        {"1x", false, 0},      {"1s ", false, 0},
        {"1..2s", false, 0},
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(rows); i++) {
        int64_t ms = -7;
        bool ok = llm_parse_go_duration_ms(rows[i].s, &ms);
        assert_int_equal(ok, rows[i].ok);
        if (ok)
            assert_int_equal(ms, rows[i].ms);
    }
}

static void test_llm_ratelimit_reads_retry_after_seconds(void **state)
{
    (void)state;
    struct llm_ratelimit rl;
    llm_ratelimit_init(&rl);
    assert_int_equal(rl.retry_after_ms, -1);
    assert_int_equal(rl.remaining_requests, -1);
    llm_ratelimit_feed_header(&rl, "Retry-After", " 30 ", 0);
    assert_int_equal(rl.retry_after_ms, 30000);

    llm_ratelimit_init(&rl);
    llm_ratelimit_feed_header(&rl, "retry-after", "soon", 0);
    assert_int_equal(rl.retry_after_ms, -1);
}

static void test_llm_ratelimit_resolves_retry_after_http_dates_against_now(void **state)
{
    (void)state;
    struct llm_ratelimit rl;
    llm_ratelimit_init(&rl);
    llm_ratelimit_feed_header(&rl, "Retry-After", "Sun, 06 Nov 1994 08:49:37 GMT",
                              NOV_1994_MS - 12500);
    assert_int_equal(rl.retry_after_ms, 12500);

    llm_ratelimit_init(&rl); /* a date in the past means now */
    llm_ratelimit_feed_header(&rl, "Retry-After", "Sun, 06 Nov 1994 08:49:37 GMT",
                              NOV_1994_MS + 5000);
    assert_int_equal(rl.retry_after_ms, 0);

    llm_ratelimit_init(&rl); /* leap day, other month */
    llm_ratelimit_feed_header(&rl, "Retry-After", "Thu, 29 Feb 2024 23:59:59 GMT",
                              (int64_t)1709251199 * 1000 - 1000);
    assert_int_equal(rl.retry_after_ms, 1000);

    llm_ratelimit_init(&rl);
    llm_ratelimit_feed_header(&rl, "Retry-After", "Sun, 06 Foo 1994 08:49:37 GMT", 0);
    llm_ratelimit_feed_header(&rl, "Retry-After", "Sun, 06 Nov 1994 08:49:37 CET", 0);
    llm_ratelimit_feed_header(&rl, "Retry-After", "Sun, 06 Nov 1994 25:49:37 GMT", 0);
    assert_int_equal(rl.retry_after_ms, -1);
}

static void test_llm_ratelimit_prefers_retry_after_ms_in_any_order(void **state)
{
    (void)state;
    struct llm_ratelimit rl;
    llm_ratelimit_init(&rl);
    llm_ratelimit_feed_header(&rl, "retry-after-ms", "1500", 0);
    llm_ratelimit_feed_header(&rl, "retry-after", "2", 0);
    assert_int_equal(rl.retry_after_ms, 1500);

    llm_ratelimit_init(&rl);
    llm_ratelimit_feed_header(&rl, "retry-after", "2", 0);
    llm_ratelimit_feed_header(&rl, "Retry-After-Ms", "20.2", 0);
    assert_int_equal(rl.retry_after_ms, 21);
}

static void test_llm_ratelimit_reads_openai_headers(void **state)
{
    (void)state;
    struct llm_ratelimit rl;
    llm_ratelimit_init(&rl);
    llm_ratelimit_feed_header(&rl, "x-ratelimit-limit-requests", "500", 0);
    llm_ratelimit_feed_header(&rl, "x-ratelimit-remaining-requests", "499", 0);
    llm_ratelimit_feed_header(&rl, "X-RateLimit-Remaining-Tokens", "149984", 0);
    llm_ratelimit_feed_header(&rl, "x-ratelimit-reset-requests", "120ms", 0);
    llm_ratelimit_feed_header(&rl, "x-ratelimit-reset-tokens", "6m0s", 0);
    assert_int_equal(rl.remaining_requests, 499);
    assert_int_equal(rl.remaining_tokens, 149984);
    assert_int_equal(rl.reset_requests_ms, 120);
    assert_int_equal(rl.reset_tokens_ms, 360000);
    assert_int_equal(rl.retry_after_ms, -1);

    llm_ratelimit_feed_header(&rl, "x-ratelimit-remaining-requests", "lots", 0);
    llm_ratelimit_feed_header(&rl, "x-ratelimit-reset-tokens", "soon", 0);
    assert_int_equal(rl.remaining_requests, 499);
    assert_int_equal(rl.reset_tokens_ms, 360000);
}

static void test_llm_client_status_keeps_the_providers_status(void **state)
{
    (void)state;
    static const struct {
        enum llm_errclass c;
        long upstream;
        int want;
    } rows[] = {
        {LLM_ERR_AUTH, 401, 401},
        {LLM_ERR_AUTH, 403, 403},
        {LLM_ERR_BAD_REQUEST, 404, 404},
        {LLM_ERR_BAD_REQUEST, 409, 409},
        {LLM_ERR_BAD_REQUEST, 413, 413},
        {LLM_ERR_BAD_REQUEST, 422, 422},
        {LLM_ERR_RATE_LIMIT, 429, 429},
        {LLM_ERR_SERVER, 500, 500},
        {LLM_ERR_SERVER, 503, 503},
        {LLM_ERR_OVERLOADED, 529, 503},
        {LLM_ERR_CONTEXT_LENGTH, 400, 400},
        {LLM_ERR_AUTH, 400, 400},
        {LLM_ERR_SERVER, 0, 500},
        {LLM_ERR_RATE_LIMIT, 200, 429},
        {LLM_ERR_AUTH, 0, 401},
        {LLM_ERR_OVERLOADED, 0, 503},
        {LLM_ERR_TIMEOUT, 503, 504},
        {LLM_ERR_CONNECT, 500, 502},
        {LLM_ERR_BAD_RESPONSE, 200, 502},
        {LLM_ERR_TRUNCATED, 200, 502},
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(rows); i++) {
        if (llm_client_status(rows[i].c, rows[i].upstream) != rows[i].want)
            fail_msg("row %zu: got %d", i, llm_client_status(rows[i].c, rows[i].upstream));
    }
    assert_string_equal(llm_error_type_for_status(401), "authentication_error");
    assert_string_equal(llm_error_type_for_status(403), "permission_error");
    assert_string_equal(llm_error_type_for_status(404), "not_found_error");
    assert_string_equal(llm_error_type_for_status(422), "invalid_request_error");
    assert_string_equal(llm_error_type_for_status(429), "rate_limit_error");
    assert_string_equal(llm_error_type_for_status(529), "server_error");
    assert_null(llm_error_type_for_status(200));
}

static void test_llm_ratelimit_retry_delay_prefers_headers_then_body_then_resets(void **state)
{
    (void)state;
    struct llm_ratelimit rl;
    llm_ratelimit_init(&rl);
    assert_int_equal(llm_ratelimit_retry_delay_ms(&rl, -1), -1);
    assert_int_equal(llm_ratelimit_retry_delay_ms(&rl, 27000), 27000);
    llm_ratelimit_feed_header(&rl, "x-ratelimit-remaining-requests", "10", 0);
    llm_ratelimit_feed_header(&rl, "x-ratelimit-reset-requests", "2s", 0);
    llm_ratelimit_feed_header(&rl, "x-ratelimit-remaining-tokens", "0", 0);
    llm_ratelimit_feed_header(&rl, "x-ratelimit-reset-tokens", "6m0s", 0);
    assert_int_equal(llm_ratelimit_retry_delay_ms(&rl, -1), 360000); /* the exhausted one */
    llm_ratelimit_feed_header(&rl, "x-ratelimit-remaining-tokens", "5", 0);
    assert_int_equal(llm_ratelimit_retry_delay_ms(&rl, -1), 2000); /* else the soonest */
    llm_ratelimit_feed_header(&rl, "retry-after", "7", 0);
    assert_int_equal(llm_ratelimit_retry_delay_ms(&rl, 27000), 7000);
}

static void test_llm_ratelimit_client_headers_use_openai_names(void **state)
{
    (void)state;
    char name[64], value[64];
    int64_t now = NOV_1994_MS;
    assert_true(llm_ratelimit_client_header("X-RateLimit-Remaining-Tokens", "149984", now, name,
                                            sizeof name, value, sizeof value));
    assert_string_equal(name, "x-ratelimit-remaining-tokens");
    assert_string_equal(value, "149984");
    assert_true(llm_ratelimit_client_header("anthropic-ratelimit-requests-limit", "50", now, name,
                                            sizeof name, value, sizeof value));
    assert_string_equal(name, "x-ratelimit-limit-requests");
    assert_string_equal(value, "50");
    assert_true(llm_ratelimit_client_header("anthropic-ratelimit-input-tokens-reset",
                                            "1994-11-06T08:49:38.5Z", now, name, sizeof name, value,
                                            sizeof value));
    assert_string_equal(name, "x-ratelimit-reset-input-tokens");
    assert_string_equal(value, "1.500s");
    assert_true(llm_ratelimit_client_header("anthropic-ratelimit-tokens-reset",
                                            "1994-11-06T08:49:37Z", now, name, sizeof name, value,
                                            sizeof value));
    assert_string_equal(value, "0ms");
    assert_false(llm_ratelimit_client_header("anthropic-ratelimit-tokens-reset", "soon", now, name,
                                             sizeof name, value, sizeof value));
    assert_false(llm_ratelimit_client_header("retry-after", "1", now, name, sizeof name, value,
                                             sizeof value));
    assert_false(llm_ratelimit_client_header("x-ratelimit-whatever", "1", now, name, sizeof name,
                                             value, sizeof value));
}

static void test_llm_ratelimit_reads_anthropic_headers_against_now(void **state)
{
    (void)state;
    struct llm_ratelimit rl;
    int64_t now = NOV_1994_MS;
    llm_ratelimit_init(&rl);
    llm_ratelimit_feed_header(&rl, "anthropic-ratelimit-requests-remaining", "49", now);
    llm_ratelimit_feed_header(&rl, "anthropic-ratelimit-tokens-remaining", "39000", now);
    llm_ratelimit_feed_header(&rl, "anthropic-ratelimit-requests-reset", "1994-11-06T08:49:39Z",
                              now);
    llm_ratelimit_feed_header(&rl, "anthropic-ratelimit-tokens-reset",
                              "1994-11-06T10:49:37.250+02:00", now);
    assert_int_equal(rl.remaining_requests, 49);
    assert_int_equal(rl.remaining_tokens, 39000);
    assert_int_equal(rl.reset_requests_ms, 2000);
    assert_int_equal(rl.reset_tokens_ms, 250);

    llm_ratelimit_feed_header(&rl, "anthropic-ratelimit-requests-reset", "1994-11-06", now);
    assert_int_equal(rl.reset_requests_ms, 2000);
    llm_ratelimit_feed_header(&rl, "anthropic-ratelimit-requests-reset", "1990-01-01T00:00:00Z",
                              now);
    assert_int_equal(rl.reset_requests_ms, 0);
}

static void test_llm_ratelimit_ignores_unknown_and_silly_headers(void **state)
{
    (void)state;
    struct llm_ratelimit rl;
    char huge[300];
    memset(huge, '9', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    llm_ratelimit_init(&rl);
    llm_ratelimit_feed_header(&rl, "content-type", "application/json", 0);
    llm_ratelimit_feed_header(&rl, "retry-after", huge, 0);
    llm_ratelimit_feed_header(&rl, "x-ratelimit-remaining-requests", "-3", 0);
    llm_ratelimit_feed_header(&rl, NULL, "1", 0);
    llm_ratelimit_feed_header(&rl, "retry-after", NULL, 0);
    assert_int_equal(rl.retry_after_ms, -1);
    assert_int_equal(rl.remaining_requests, -1);

    llm_ratelimit_feed_header(&rl, "retry-after", "99999999999999999", 0);
    assert_true(rl.retry_after_ms > 0); /* clamped, not overflowed */
}

static void test_llm_cost_counts_cached_tokens_at_their_price(void **state)
{
    (void)state;
    struct llm_price price = {
        .input_per_mtok = 2.5, .output_per_mtok = 10.0, .cached_input_per_mtok = 1.25};
    struct llm_usage u = {
        .present = true, .input_tokens = 1000000, .output_tokens = 500000, .cached_tokens = 0};
    assert_near(llm_cost_usd(&price, &u), 2.5 + 5.0, 1e-9);
    u.cached_tokens = 400000;
    assert_near(llm_cost_usd(&price, &u), 0.6 * 2.5 + 0.4 * 1.25 + 5.0, 1e-9);
    u.cached_tokens = 2000000; /* more cached than input: clamped */
    assert_near(llm_cost_usd(&price, &u), 1.25 + 5.0, 1e-9);
    u = (struct llm_usage){.present = true, .input_tokens = 1234, .output_tokens = 56};
    assert_near(llm_cost_usd(&price, &u), (1234 * 2.5 + 56 * 10.0) / 1e6, 1e-12);
}

static void test_llm_cost_is_zero_without_usage(void **state)
{
    (void)state;
    struct llm_price price = {.input_per_mtok = 3, .output_per_mtok = 15};
    struct llm_usage u = {.present = false, .input_tokens = 100, .output_tokens = 100};
    assert_near(llm_cost_usd(&price, &u), 0.0, 0.0);
    assert_near(llm_cost_usd(NULL, &u), 0.0, 0.0);
    assert_near(llm_cost_usd(&price, NULL), 0.0, 0.0);
}

static void test_llm_response_collects_text_tools_usage_and_finish(void **state)
{
    (void)state;
    struct llm_response r;
    llm_response_init(&r);
    const struct llm_event evs[] = {
        {.type = LLM_EV_TEXT, .text = "Hel", .len = 3},
        {.type = LLM_EV_TEXT, .text = "lo!", .len = 2},
        {.type = LLM_EV_TOOL_CALL, .index = 0, .id = "call_a", .name = "get_weather"},
        {.type = LLM_EV_TOOL_ARGS, .index = 0, .text = "{\"city\":", .len = 8},
        {.type = LLM_EV_TOOL_CALL, .index = 1, .id = "call_b", .name = "get_time"},
        {.type = LLM_EV_TOOL_ARGS, .index = 0, .text = "\"Oslo\"}", .len = 7},
        {.type = LLM_EV_TOOL_ARGS, .index = 99999, .text = "x", .len = 1},
        {.type = LLM_EV_USAGE, .usage = {.present = true, .input_tokens = 9, .output_tokens = 4}},
        {.type = LLM_EV_FINISH, .finish = LLM_FINISH_TOOL_CALLS},
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(evs); i++)
        assert_int_equal(llm_response_collect(&r, &evs[i]), 0);
    assert_string_equal(buf_str(&r.text), "Hello");
    assert_int_equal(r.n_tool_calls, 2);
    assert_string_equal(r.tool_calls[0].id, "call_a");
    assert_string_equal(r.tool_calls[0].name, "get_weather");
    assert_string_equal(r.tool_calls[0].arguments, "{\"city\":\"Oslo\"}");
    assert_string_equal(r.tool_calls[1].arguments, "{}");
    assert_true(r.usage.present);
    assert_int_equal(r.usage.input_tokens, 9);
    assert_true(r.finished);
    assert_int_equal(r.finish, LLM_FINISH_TOOL_CALLS);
    assert_int_equal(r.errclass, LLM_ERR_NONE);
    llm_response_cleanup(&r);
    llm_response_cleanup(&r); /* twice is harmless */
}

static void test_llm_response_keeps_the_error(void **state)
{
    (void)state;
    struct llm_response r;
    char long_text[1000];
    memset(long_text, 'e', sizeof long_text);
    llm_response_init(&r);
    struct llm_event ev = {.type = LLM_EV_TEXT, .text = "partial", .len = 7};
    llm_response_collect(&r, &ev);
    ev = (struct llm_event){.type = LLM_EV_ERROR,
                            .text = long_text,
                            .len = sizeof long_text,
                            .errclass = LLM_ERR_RATE_LIMIT,
                            .status = 429};
    llm_response_collect(&r, &ev);
    assert_false(r.finished);
    assert_int_equal(r.errclass, LLM_ERR_RATE_LIMIT);
    assert_int_equal(r.status, 429);
    assert_int_equal(strlen(r.error), sizeof r.error - 1);
    assert_string_equal(buf_str(&r.text), "partial");
    llm_response_cleanup(&r);
}

static void test_llm_request_helpers_build_and_free_a_request(void **state)
{
    (void)state;
    struct llm_request req;
    llm_request_init(&req);
    assert_int_equal(req.tool_choice, LLM_TOOL_CHOICE_UNSET);
    llm_request_add_message(&req, LLM_ROLE_SYSTEM, "Be brief."); /* 9 bytes */
    struct llm_message *m = llm_request_add_message(&req, LLM_ROLE_USER, "What is 2+2?");
    assert_string_equal(m->content, "What is 2+2?"); /* 12 bytes */
    llm_request_add_message(&req, LLM_ROLE_ASSISTANT, NULL);
    llm_request_add_tool(&req, "calc", "adds", "{\"type\":\"object\"}"); /* 4+4+17 */
    assert_int_equal(req.n_messages, 3);
    assert_null(req.messages[2].content);
    assert_int_equal(req.n_tools, 1);
    assert_int_equal(llm_request_estimate_tokens(&req), (9 + 12 + 4 + 4 + 17 + 3) / 4);
    llm_request_cleanup(&req);
    assert_int_equal(req.n_messages, 0);
    assert_int_equal(llm_request_estimate_tokens(&req), 0);
    llm_request_cleanup(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llm_errclass_table_says_what_is_retryable),
        cmocka_unit_test(test_llm_errclass_from_status_maps_http_codes),
        cmocka_unit_test(test_llm_names_roles_and_finish_reasons),
        cmocka_unit_test(test_llm_parses_go_durations),
        cmocka_unit_test(test_llm_ratelimit_reads_retry_after_seconds),
        cmocka_unit_test(test_llm_ratelimit_resolves_retry_after_http_dates_against_now),
        cmocka_unit_test(test_llm_ratelimit_prefers_retry_after_ms_in_any_order),
        cmocka_unit_test(test_llm_ratelimit_reads_openai_headers),
        cmocka_unit_test(test_llm_ratelimit_reads_anthropic_headers_against_now),
        cmocka_unit_test(test_llm_client_status_keeps_the_providers_status),
        cmocka_unit_test(test_llm_ratelimit_retry_delay_prefers_headers_then_body_then_resets),
        cmocka_unit_test(test_llm_ratelimit_client_headers_use_openai_names),
        cmocka_unit_test(test_llm_ratelimit_ignores_unknown_and_silly_headers),
        cmocka_unit_test(test_llm_cost_counts_cached_tokens_at_their_price),
        cmocka_unit_test(test_llm_cost_is_zero_without_usage),
        cmocka_unit_test(test_llm_response_collects_text_tools_usage_and_finish),
        cmocka_unit_test(test_llm_response_keeps_the_error),
        cmocka_unit_test(test_llm_request_helpers_build_and_free_a_request),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
