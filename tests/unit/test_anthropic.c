/*
 * test_anthropic.c - the Anthropic Messages wire format: encode against golden JSON, decode
 * real-shaped bodies and SSE streams (directly through the ops and through the provider_call
 * glue at many splits), classify error responses. Fixtures: tests/fixtures/anthropic/.
 * Run from the repository root (tests/run.sh does).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "support_provider.h"
#include "switchboard/provider.h"

#define FIXTURES "tests/fixtures/anthropic/"
#define KEY      "sk-ant-api03-TESTKEYtestkey0123456789"

static const struct provider_ops *const ops = &provider_anthropic;

/* ---- helpers ------------------------------------------------------------------------------ */

static char *read_fixture(const char *name, size_t *len)
{
    return read_fixture_in(FIXTURES, name, len);
}

/* ---- request builders --------------------------------------------------------------------- */

static char t_name[] = "claude", t_base[] = "https://api.anthropic.com/",
            t_model[] = "claude-sonnet-4-5", t_key[] = KEY, t_version[] = "2023-06-01";

static struct config_target target(void)
{
    struct config_target t;
    memset(&t, 0, sizeof t);
    t.name = t_name;
    t.kind = PROVIDER_ANTHROPIC;
    t.base_url = t_base;
    t.model = t_model;
    t.api_key = t_key;
    t.anthropic_version = t_version;
    t.default_max_tokens = 1024;
    return t;
}

static void add_call(struct llm_message *m, const char *id, const char *name, const char *args)
{
    m->tool_calls = xrealloc(m->tool_calls, (m->n_tool_calls + 1) * sizeof *m->tool_calls);
    struct llm_tool_call *tc = &m->tool_calls[m->n_tool_calls++];
    tc->id = xstrdup(id);
    tc->name = xstrdup(name);
    tc->arguments = xstrdup(args);
}

static void add_result(struct llm_request *req, const char *id, const char *content)
{
    llm_request_add_message(req, LLM_ROLE_TOOL, content)->tool_call_id = xstrdup(id);
}

static void add_stop(struct llm_request *req, const char *s)
{
    req->stop = xrealloc(req->stop, (req->n_stop + 1) * sizeof *req->stop);
    req->stop[req->n_stop++] = xstrdup(s);
}

static void build_basic(struct llm_request *req)
{
    llm_request_add_message(req, LLM_ROLE_SYSTEM, "You are terse.");
    llm_request_add_message(req, LLM_ROLE_USER, "Hello");
    req->max_tokens = 200;
    req->has_temperature = true;
    req->temperature = 0.5;
    req->has_top_p = true;
    req->top_p = 0.9;
    add_stop(req, "END");
    add_stop(req, "STOP");
    req->user = xstrdup("user-42");
}

static void build_default_max_tokens(struct llm_request *req)
{
    llm_request_add_message(req, LLM_ROLE_USER, "Hi");
}

static void build_merge_turns(struct llm_request *req)
{
    llm_request_add_message(req, LLM_ROLE_SYSTEM, "Rule one.");
    llm_request_add_message(req, LLM_ROLE_USER, "one");
    llm_request_add_message(req, LLM_ROLE_USER, "two");
    llm_request_add_message(req, LLM_ROLE_SYSTEM, "Rule two.");
    llm_request_add_message(req, LLM_ROLE_ASSISTANT, "three");
    llm_request_add_message(req, LLM_ROLE_ASSISTANT, NULL); /* empty: dropped */
    llm_request_add_message(req, LLM_ROLE_ASSISTANT, "four");
    llm_request_add_message(req, LLM_ROLE_USER, "five");
}

static const char weather_schema[] =
    "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"},"
    "\"unit\":{\"type\":\"string\",\"enum\":[\"c\",\"f\"]}},\"required\":[\"city\"]}";

static void build_tools(struct llm_request *req)
{
    llm_request_add_tool(req, "get_weather", "Current weather for a city", weather_schema);
    llm_request_add_tool(req, "list_cities", NULL, NULL);
    req->tool_choice = LLM_TOOL_CHOICE_AUTO;
    llm_request_add_message(req, LLM_ROLE_USER, "Weather in Paris and Rome?");
    struct llm_message *a = llm_request_add_message(req, LLM_ROLE_ASSISTANT, "Checking both.");
    add_call(a, "toolu_01", "get_weather", "{\"city\":\"Paris\"}");
    add_call(a, "toolu_02", "get_weather", " {\"city\": \"Rome\", \"unit\": \"c\"} ");
    add_result(req, "toolu_01", "18C and sunny");
    add_result(req, "toolu_02", "{\"temp\":21}");
    llm_request_add_message(req, LLM_ROLE_USER, "Thanks. And Oslo?");
}

static void build_tool_result_first(struct llm_request *req)
{
    llm_request_add_tool(req, "list_cities", "All known cities", "");
    req->tool_choice = LLM_TOOL_CHOICE_REQUIRED;
    llm_request_add_message(req, LLM_ROLE_USER, "List the cities.");
    struct llm_message *a = llm_request_add_message(req, LLM_ROLE_ASSISTANT, "");
    add_call(a, "toolu_09", "list_cities", "");
    llm_request_add_message(req, LLM_ROLE_USER, "Keep it short.");
    add_result(req, "toolu_09", "Paris, Rome");
}

static void build_stream(struct llm_request *req)
{
    llm_request_add_message(req, LLM_ROLE_USER, "Stream please");
    req->max_tokens = 300;
    req->stream = true;
}

/* ---- encode ------------------------------------------------------------------------------- */

static const struct encode_case {
    const char *name;
    void (*build)(struct llm_request *req);
    const char *golden;
} encode_cases[] = {
    {"basic: system hoisted, params, metadata", build_basic, "encode_basic.json"},
    {"max_tokens defaults to the target's", build_default_max_tokens,
     "encode_default_max_tokens.json"},
    {"systems joined, same-role turns merged", build_merge_turns, "encode_merge_turns.json"},
    {"tool use and tool result turns", build_tools, "encode_tools.json"},
    {"tool results go before text in a turn", build_tool_result_first,
     "encode_tool_result_first.json"},
    {"streaming", build_stream, "encode_stream.json"},
};

static void encode_ok(const struct config_target *t, void (*build)(struct llm_request *),
                      struct http_request *out)
{
    struct llm_request req;
    char msg[PROVIDER_MSG_MAX] = "";
    llm_request_init(&req);
    build(&req);
    http_request_init(out);
    enum sb_status st = ops->encode(t, &req, out, msg, sizeof msg);
    if (st != SB_OK)
        print_error("encode: %s\n", msg);
    assert_int_equal(st, SB_OK);
    llm_request_cleanup(&req);
}

static void test_anthropic_encodes_requests_like_the_golden_files(void **state)
{
    (void)state;
    struct config_target t = target();
    for (size_t i = 0; i < SB_ARRAY_LEN(encode_cases); i++) {
        const struct encode_case *ec = &encode_cases[i];
        struct http_request out;
        size_t len;
        char *golden = read_fixture(ec->golden, &len);
        encode_ok(&t, ec->build, &out);
        cJSON *want = cJSON_Parse(golden);
        cJSON *got = cJSON_Parse(out.body);
        assert_non_null(want);
        assert_non_null(got);
        assert_int_equal(out.body_len, strlen(out.body));
        if (!cJSON_Compare(want, got, true))
            print_error("%s: body differs from %s:\n%s\n", ec->name, ec->golden, out.body);
        assert_true(cJSON_Compare(want, got, true));
        cJSON_Delete(want);
        cJSON_Delete(got);
        free(golden);
        http_request_cleanup(&out);
    }
}

/* Results that join a user turn already holding text go before it, every one of them. */
static void build_results_after_text(struct llm_request *req)
{
    llm_request_add_message(req, LLM_ROLE_USER, "Here are the results.");
    add_result(req, "toolu_a", "one");
    add_result(req, "toolu_b", "two");
    add_result(req, "toolu_c", "three");
}

static void test_anthropic_encode_puts_every_tool_result_before_the_text(void **state)
{
    (void)state;
    struct config_target t = target();
    struct http_request out;
    encode_ok(&t, build_results_after_text, &out);
    cJSON *root = cJSON_Parse(out.body);
    assert_non_null(root);
    const cJSON *blocks = cJSON_GetObjectItem(
        cJSON_GetArrayItem(cJSON_GetObjectItem(root, "messages"), 0), "content");
    assert_int_equal(cJSON_GetArraySize(blocks), 4);
    static const char *const want[] = {"toolu_a", "toolu_b", "toolu_c"};
    for (int k = 0; k < 3; k++) {
        const cJSON *b = cJSON_GetArrayItem(blocks, k);
        assert_string_equal(cJSON_GetObjectItem(b, "type")->valuestring, "tool_result");
        assert_string_equal(cJSON_GetObjectItem(b, "tool_use_id")->valuestring, want[k]);
    }
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(blocks, 3), "type")->valuestring,
                        "text");
    cJSON_Delete(root);
    http_request_cleanup(&out);
}

static void test_anthropic_encode_sets_url_method_key_and_version(void **state)
{
    (void)state;
    struct config_target t = target();
    struct http_request out;
    encode_ok(&t, build_basic, &out);
    assert_string_equal(out.method, "POST");
    assert_string_equal(out.url, "https://api.anthropic.com/v1/messages");
    assert_true(has_header(&out, "x-api-key: " KEY));
    assert_true(has_header(&out, "anthropic-version: 2023-06-01"));
    assert_true(has_header(&out, "content-type: application/json"));
    assert_false(has_header_prefix(&out, "accept:"));
    assert_null(strstr(out.url, KEY));
    http_request_cleanup(&out);
}

static void test_anthropic_encode_streaming_asks_for_an_event_stream(void **state)
{
    (void)state;
    struct config_target t = target();
    struct http_request out;
    encode_ok(&t, build_stream, &out);
    assert_string_equal(out.url, "https://api.anthropic.com/v1/messages");
    assert_true(has_header(&out, "accept: text/event-stream"));
    assert_true(has_header(&out, "x-api-key: " KEY));
    http_request_cleanup(&out);
}

static void test_anthropic_encode_without_a_key_sends_no_key_header(void **state)
{
    (void)state;
    struct config_target t = target();
    struct http_request out;
    t.api_key = NULL;
    t.anthropic_version = NULL;
    t.base_url = NULL;
    encode_ok(&t, build_basic, &out);
    assert_string_equal(out.url, "https://api.anthropic.com/v1/messages");
    assert_false(has_header_prefix(&out, "x-api-key:"));
    assert_true(has_header(&out, "anthropic-version: 2023-06-01"));
    http_request_cleanup(&out);
}

static void test_anthropic_encode_clamps_temperature_to_one(void **state)
{
    (void)state;
    struct config_target t = target();
    struct llm_request req;
    struct http_request out;
    char msg[PROVIDER_MSG_MAX];
    llm_request_init(&req);
    http_request_init(&out);
    llm_request_add_message(&req, LLM_ROLE_USER, "hot");
    req.has_temperature = true;
    req.temperature = 1.7;
    assert_int_equal(ops->encode(&t, &req, &out, msg, sizeof msg), SB_OK);
    cJSON *body = cJSON_Parse(out.body);
    const cJSON *temp = cJSON_GetObjectItemCaseSensitive(body, "temperature");
    assert_true(cJSON_IsNumber(temp));
    assert_true(temp->valuedouble == 1.0);
    cJSON_Delete(body);
    http_request_cleanup(&out);
    llm_request_cleanup(&req);
}

static void test_anthropic_encode_maps_every_tool_choice(void **state)
{
    static const struct {
        enum llm_tool_choice choice;
        const char *want; /* NULL: no tool_choice field */
    } cases[] = {
        {LLM_TOOL_CHOICE_UNSET, NULL},
        {LLM_TOOL_CHOICE_AUTO, "{\"type\":\"auto\"}"},
        {LLM_TOOL_CHOICE_NONE, "{\"type\":\"none\"}"},
        {LLM_TOOL_CHOICE_REQUIRED, "{\"type\":\"any\"}"},
        {LLM_TOOL_CHOICE_NAMED, "{\"type\":\"tool\",\"name\":\"get_weather\"}"},
    };
    (void)state;
    struct config_target t = target();
    for (size_t i = 0; i < SB_ARRAY_LEN(cases); i++) {
        struct llm_request req;
        struct http_request out;
        char msg[PROVIDER_MSG_MAX];
        llm_request_init(&req);
        http_request_init(&out);
        llm_request_add_message(&req, LLM_ROLE_USER, "hi");
        llm_request_add_tool(&req, "get_weather", NULL, weather_schema);
        req.tool_choice = cases[i].choice;
        req.tool_choice_name = xstrdup("get_weather");
        assert_int_equal(ops->encode(&t, &req, &out, msg, sizeof msg), SB_OK);
        cJSON *body = cJSON_Parse(out.body);
        const cJSON *got = cJSON_GetObjectItemCaseSensitive(body, "tool_choice");
        if (!cases[i].want) {
            assert_null(got);
        } else {
            cJSON *want = cJSON_Parse(cases[i].want);
            assert_true(cJSON_Compare(want, got, true));
            cJSON_Delete(want);
        }
        cJSON_Delete(body);
        http_request_cleanup(&out);
        llm_request_cleanup(&req);
    }
}

static void bad_args(struct llm_request *req)
{
    llm_request_add_message(req, LLM_ROLE_USER, "x");
    add_call(llm_request_add_message(req, LLM_ROLE_ASSISTANT, NULL), "toolu_1", "f", "{city:");
}

static void args_not_object(struct llm_request *req)
{
    llm_request_add_message(req, LLM_ROLE_USER, "x");
    add_call(llm_request_add_message(req, LLM_ROLE_ASSISTANT, NULL), "toolu_1", "f", "[1,2]");
}

static void bad_schema(struct llm_request *req)
{
    llm_request_add_tool(req, "ok", NULL, NULL);
    llm_request_add_tool(req, "f", NULL, "{\"type\":");
    llm_request_add_message(req, LLM_ROLE_USER, "x");
}

static void named_without_tools(struct llm_request *req)
{
    llm_request_add_message(req, LLM_ROLE_USER, "x");
    req->tool_choice = LLM_TOOL_CHOICE_NAMED;
    req->tool_choice_name = xstrdup("f");
}

static void result_without_id(struct llm_request *req)
{
    llm_request_add_message(req, LLM_ROLE_USER, "x");
    llm_request_add_message(req, LLM_ROLE_TOOL, "42");
}

static void test_anthropic_encode_rejects_what_it_cannot_express(void **state)
{
    static const struct {
        void (*build)(struct llm_request *req);
        const char *msg;
    } cases[] = {
        {bad_args,
         "messages[1].tool_calls[0].function.arguments (tool call \"toolu_1\"): not valid JSON"},
        {args_not_object,
         "messages[1].tool_calls[0].function.arguments (tool call \"toolu_1\"): not a JSON "
         "object"},
        {bad_schema, "tools[1].parameters: invalid JSON"},
        {named_without_tools, "tool_choice: requires tools"},
        {result_without_id, "messages[1].tool_call_id: missing"},
    };
    (void)state;
    struct config_target t = target();
    for (size_t i = 0; i < SB_ARRAY_LEN(cases); i++) {
        struct llm_request req;
        struct http_request out;
        char msg[PROVIDER_MSG_MAX] = "";
        llm_request_init(&req);
        http_request_init(&out);
        cases[i].build(&req);
        assert_int_equal(ops->encode(&t, &req, &out, msg, sizeof msg), SB_ERR_INVALID);
        assert_string_equal(msg, cases[i].msg);
        assert_null(out.url);
        assert_null(out.body);
        assert_int_equal(out.n_headers, 0);
        http_request_cleanup(&out);
        llm_request_cleanup(&req);
    }
}

static void test_anthropic_probe_lists_models_with_key_and_version(void **state)
{
    (void)state;
    struct config_target t = target();
    struct http_request out;
    char msg[PROVIDER_MSG_MAX];
    http_request_init(&out);
    assert_int_equal(ops->encode_probe(&t, &out, msg, sizeof msg), SB_OK);
    assert_string_equal(out.method, "GET");
    assert_string_equal(out.url, "https://api.anthropic.com/v1/models");
    assert_null(out.body);
    assert_true(has_header(&out, "x-api-key: " KEY));
    assert_true(has_header(&out, "anthropic-version: 2023-06-01"));
    http_request_cleanup(&out);
}

/* ---- decode a whole body ------------------------------------------------------------------ */

static const struct decode_case {
    const char *fixture;
    const char *want;
} full_cases[] = {
    {"full_ok.json", "text:Hello! How can I help you today?\nusage:12/11/0\nfinish:stop\n"},
    {"full_tool_use.json", "text:I'll check the weather in Paris.\n"
                           "call:0:toolu_01A09q90qw90lq917835lq9:get_weather\n"
                           "args:0:{\"city\":\"Paris\",\"unit\":\"celsius\"}\n"
                           "usage:384/58/0\nfinish:tool_calls\n"},
    {"full_no_usage.json", "text:No usage here.\nfinish:stop\n"},
    {"full_malformed.json", "error:bad_response:response body is not a JSON object\n"},
    {"full_cache.json", "text:From the cached document: yes.\nusage:2510/40/2000\nfinish:stop\n"},
    {"full_max_tokens.json", "text:Once upon a\nusage:9/3/0\nfinish:length\n"},
    {"full_refusal.json", "usage:20/0/0\nfinish:content_filter\n"},
    {"full_thinking.json", "text:42\ntext: is the answer.\ncall:0:toolu_a:noop\nargs:0:{}\n"
                           "usage:30/70/0\nfinish:stop\n"},
    {"full_unknown_stop.json", "text:ok\nusage:1/1/0\nfinish:stop\n"},
    {"full_error_body.json", "error:overloaded:Overloaded\n"},
    {"full_no_content.json", "error:bad_response:response has no content array\n"},
};

static void test_anthropic_decodes_whole_bodies(void **state)
{
    (void)state;
    for (size_t i = 0; i < SB_ARRAY_LEN(full_cases); i++) {
        size_t len;
        char *body = read_fixture(full_cases[i].fixture, &len);
        struct rec r;
        run_full_direct(ops, body, len, &r);
        expect_log(full_cases[i].fixture, &r, full_cases[i].want);
        buf_cleanup(&r.log);
        /* The glue gives the same events, streamed or not (JSON answer to a stream). */
        run_glue(ops, KEY, false, 200, "application/json", body, len, 0, &r);
        expect_log(full_cases[i].fixture, &r, full_cases[i].want);
        buf_cleanup(&r.log);
        run_glue(ops, KEY, true, 200, "application/json", body, len, 3, &r);
        expect_log(full_cases[i].fixture, &r, full_cases[i].want);
        buf_cleanup(&r.log);
        free(body);
    }
}

static void test_anthropic_decode_stops_when_the_sink_asks(void **state)
{
    (void)state;
    size_t len;
    char *body = read_fixture("full_tool_use.json", &len);
    struct llm_sink sink;
    struct rec r;
    char msg[PROVIDER_MSG_MAX];
    rec_init(&r, &sink);
    r.stop_after = 1;
    assert_int_equal(ops->decode_full(body, len, &sink, msg, sizeof msg), LLM_ERR_CANCELLED);
    assert_string_equal(buf_str(&r.log), "text:I'll check the weather in Paris.\n");
    buf_cleanup(&r.log);
    free(body);
}

/* ---- decode a stream ---------------------------------------------------------------------- */

static const struct decode_case stream_cases[] = {
    {"stream_text.sse", "text:Hello\ntext:, world!\nusage:25/15/0\nfinish:stop\n"},
    {"stream_tool_use.sse", "text:Okay, let's check the weather for San Francisco, CA:\n"
                            "call:0:toolu_01T1x1fJ34qAmk2tNTrN7Up6:get_weather\n"
                            "args:0:{\"location\":\n"
                            "args:0: \"San Francisco, CA\"\n"
                            "args:0:, \"unit\": \"fahrenheit\"}\n"
                            "usage:472/89/0\nfinish:tool_calls\n"},
    {"stream_two_tools.sse", "call:0:toolu_A:list_cities\nargs:0:{}\n"
                             "call:1:toolu_B:get_weather\nargs:1:{\"city\": \"Oslo\"}\n"
                             "usage:100/40/0\nfinish:tool_calls\n"},
    {"stream_ping.sse", "text:pong\nusage:5/1/0\nfinish:length\n"},
    {"stream_error.sse", "text:Partial\nerror:overloaded:Overloaded\n"},
    {"stream_truncated.sse", "text:Once upon\ntext: a time\n"
                             "error:truncated:stream ended without message_stop\n"},
    {"stream_no_usage.sse", "text:quiet\nfinish:stop\n"},
    {"stream_no_stop.sse", "text:Hi\nusage:10/2/0\nfinish:stop\n"},
    {"stream_cache.sse", "text:cached\nusage:2004/7/1800\nfinish:stop\n"},
    {"stream_malformed.sse", "error:bad_response:stream event content_block_delta is not a "
                             "JSON object\n"},
    {"stream_rate_limit.sse", "error:rate_limit:Number of request tokens has exceeded your "
                              "per-minute rate limit\n"},
    {"stream_crlf.sse", "text:crlf\nusage:2/2/0\nfinish:stop\n"},
    {"stream_server_tool.sse", "text:Let me search.\ntext: Found it.\nusage:10682/510/0\n"
                               "finish:stop\n"},
};

static void test_anthropic_decodes_streams_through_stream_event(void **state)
{
    (void)state;
    for (size_t i = 0; i < SB_ARRAY_LEN(stream_cases); i++) {
        size_t len;
        char *body = read_fixture(stream_cases[i].fixture, &len);
        struct rec r;
        run_stream_direct(ops, body, len, &r);
        expect_log(stream_cases[i].fixture, &r, stream_cases[i].want);
        buf_cleanup(&r.log);
        free(body);
    }
}

static void test_anthropic_decodes_streams_through_the_glue_at_any_split(void **state)
{
    static const unsigned splits[] = {0, 1, 2, 7, 1234, 99991};
    (void)state;
    for (size_t i = 0; i < SB_ARRAY_LEN(stream_cases); i++) {
        size_t len;
        char *body = read_fixture(stream_cases[i].fixture, &len);
        for (size_t s = 0; s < SB_ARRAY_LEN(splits); s++) {
            struct rec r;
            run_glue(ops, KEY, true, 200, "text/event-stream; charset=utf-8", body, len, splits[s],
                     &r);
            expect_log(stream_cases[i].fixture, &r, stream_cases[i].want);
            buf_cleanup(&r.log);
        }
        free(body);
    }
}

static void test_anthropic_stream_error_types_map_to_classes(void **state)
{
    static const struct {
        const char *type;
        const char *message;
        enum llm_errclass want;
    } cases[] = {
        {"overloaded_error", "Overloaded", LLM_ERR_OVERLOADED},
        {"rate_limit_error", "slow down", LLM_ERR_RATE_LIMIT},
        {"api_error", "Internal server error", LLM_ERR_SERVER},
        {"authentication_error", "invalid x-api-key", LLM_ERR_AUTH},
        {"permission_error", "no", LLM_ERR_AUTH},
        {"invalid_request_error", "bad", LLM_ERR_BAD_REQUEST},
        {"invalid_request_error", "prompt is too long: 5 tokens > 4 maximum",
         LLM_ERR_CONTEXT_LENGTH},
        {"not_found_error", "model: x", LLM_ERR_BAD_REQUEST},
        {"brand_new_error", "what", LLM_ERR_SERVER},
    };
    (void)state;
    for (size_t i = 0; i < SB_ARRAY_LEN(cases); i++) {
        char data[256], msg[PROVIDER_MSG_MAX] = "";
        struct llm_sink sink;
        struct rec r;
        int n = snprintf(data, sizeof data,
                         "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":\"%s\"}}",
                         cases[i].type, cases[i].message);
        struct sse_event ev = {.event = "error", .data = data, .data_len = (size_t)n};
        void *st = ops->stream_new();
        rec_init(&r, &sink);
        assert_int_equal(ops->stream_event(st, &ev, &sink, msg, sizeof msg), cases[i].want);
        assert_string_equal(msg, cases[i].message);
        assert_int_equal(r.log.len, 0);
        ops->stream_free(st);
        buf_cleanup(&r.log);
    }
}

static void test_anthropic_ignores_everything_after_message_stop(void **state)
{
    static const char *const events[] = {
        "{\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3}}}",
        "{\"type\":\"content_block_delta\",\"index\":0,"
        "\"delta\":{\"type\":\"text_delta\",\"text\":\"a\"}}",
        "{\"type\":\"message_stop\"}",
        "{\"type\":\"content_block_delta\",\"index\":0,"
        "\"delta\":{\"type\":\"text_delta\",\"text\":\"late\"}}",
        "not json at all",
    };
    (void)state;
    char msg[PROVIDER_MSG_MAX];
    struct llm_sink sink;
    struct rec r;
    void *st = ops->stream_new();
    rec_init(&r, &sink);
    for (size_t i = 0; i < SB_ARRAY_LEN(events); i++) {
        struct sse_event ev = {.data = events[i], .data_len = strlen(events[i])};
        assert_int_equal(ops->stream_event(st, &ev, &sink, msg, sizeof msg), LLM_ERR_NONE);
    }
    assert_int_equal(ops->stream_end(st, true, &sink, msg, sizeof msg), LLM_ERR_NONE);
    assert_string_equal(buf_str(&r.log), "text:a\nusage:3/0/0\nfinish:none\n");
    ops->stream_free(st);
    ops->stream_free(NULL);
    buf_cleanup(&r.log);
}

/* ---- classify ----------------------------------------------------------------------------- */

static void test_anthropic_classifies_error_responses(void **state)
{
    static const struct {
        long status;
        const char *fixture; /* NULL: empty body */
        enum llm_errclass want;
        const char *msg;
    } cases[] = {
        {400, "error_prompt_too_long.json", LLM_ERR_CONTEXT_LENGTH,
         "prompt is too long: 208310 tokens > 200000 maximum"},
        {400, "error_context_limit.json", LLM_ERR_CONTEXT_LENGTH, NULL},
        {400, "error_invalid_request.json", LLM_ERR_BAD_REQUEST, NULL},
        {401, "error_auth.json", LLM_ERR_AUTH, "invalid x-api-key"},
        {429, "error_rate_limit.json", LLM_ERR_RATE_LIMIT, NULL},
        {529, "error_overloaded.json", LLM_ERR_OVERLOADED, "Overloaded"},
        {503, "error_overloaded.json", LLM_ERR_OVERLOADED, "Overloaded"},
        {529, NULL, LLM_ERR_OVERLOADED, "HTTP 529"},
        {500, "error_api.json", LLM_ERR_SERVER, "Internal server error"},
        {503, NULL, LLM_ERR_SERVER, "HTTP 503"},
        {502, "error_html.html", LLM_ERR_SERVER, "HTTP 502"},
        {413, "error_request_too_large.json", LLM_ERR_BAD_REQUEST, NULL},
        {404, NULL, LLM_ERR_BAD_REQUEST, "HTTP 404"},
    };
    (void)state;
    for (size_t i = 0; i < SB_ARRAY_LEN(cases); i++) {
        size_t len = 0;
        char *body = cases[i].fixture ? read_fixture(cases[i].fixture, &len) : NULL;
        char msg[PROVIDER_MSG_MAX] = "";
        struct llm_error_info info;
        llm_error_info_init(&info);
        enum llm_errclass got = ops->classify(cases[i].status, body, len, &info, msg, sizeof msg);
        if (got != cases[i].want)
            print_error("case %zu (%ld %s): got %s\n", i, cases[i].status,
                        cases[i].fixture ? cases[i].fixture : "empty", llm_errclass_name(got));
        assert_int_equal(got, cases[i].want);
        if (cases[i].msg)
            assert_string_equal(msg, cases[i].msg);
        else
            assert_true(msg[0] != '\0');
        free(body);
    }
}

static void test_anthropic_error_types_map_to_the_nearest_openai_type(void **state)
{
    static const struct {
        long status;
        const char *fixture;
        const char *type, *code;
    } cases[] = {
        {401, "error_auth.json", "authentication_error", "authentication_error"},
        {429, "error_rate_limit.json", "rate_limit_error", "rate_limit_error"},
        {529, "error_overloaded.json", "server_error", "overloaded_error"},
        {500, "error_api.json", "server_error", "api_error"},
        {400, "error_prompt_too_long.json", "invalid_request_error", "context_length_exceeded"},
        {413, "error_request_too_large.json", "invalid_request_error", "request_too_large"},
        {404, "error_html.html", "not_found_error", ""},
        {529, "error_html.html", "server_error", ""},
    };
    (void)state;
    for (size_t i = 0; i < SB_ARRAY_LEN(cases); i++) {
        size_t len = 0;
        char *body = read_fixture(cases[i].fixture, &len);
        char msg[PROVIDER_MSG_MAX] = "";
        struct llm_error_info info;
        llm_error_info_init(&info);
        ops->classify(cases[i].status, body, len, &info, msg, sizeof msg);
        assert_string_equal(info.type, cases[i].type);
        assert_string_equal(info.code, cases[i].code);
        assert_string_equal(info.param, "");
        free(body);
    }
}

static void test_anthropic_error_status_reaches_the_sink_classified_and_redacted(void **state)
{
    static const char body[] = "{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\","
                               "\"message\":\"invalid x-api-key " KEY "\"}}";
    (void)state;
    struct rec r;
    enum llm_errclass c =
        run_glue(ops, KEY, true, 401, "application/json", body, strlen(body), 1, &r);
    assert_int_equal(c, LLM_ERR_AUTH);
    assert_string_equal(buf_str(&r.log), "error:auth:invalid x-api-key [redacted]\n");
    buf_cleanup(&r.log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_anthropic_encodes_requests_like_the_golden_files),
        cmocka_unit_test(test_anthropic_encode_puts_every_tool_result_before_the_text),
        cmocka_unit_test(test_anthropic_encode_sets_url_method_key_and_version),
        cmocka_unit_test(test_anthropic_encode_streaming_asks_for_an_event_stream),
        cmocka_unit_test(test_anthropic_encode_without_a_key_sends_no_key_header),
        cmocka_unit_test(test_anthropic_encode_clamps_temperature_to_one),
        cmocka_unit_test(test_anthropic_encode_maps_every_tool_choice),
        cmocka_unit_test(test_anthropic_encode_rejects_what_it_cannot_express),
        cmocka_unit_test(test_anthropic_probe_lists_models_with_key_and_version),
        cmocka_unit_test(test_anthropic_decodes_whole_bodies),
        cmocka_unit_test(test_anthropic_decode_stops_when_the_sink_asks),
        cmocka_unit_test(test_anthropic_decodes_streams_through_stream_event),
        cmocka_unit_test(test_anthropic_decodes_streams_through_the_glue_at_any_split),
        cmocka_unit_test(test_anthropic_stream_error_types_map_to_classes),
        cmocka_unit_test(test_anthropic_ignores_everything_after_message_stop),
        cmocka_unit_test(test_anthropic_classifies_error_responses),
        cmocka_unit_test(test_anthropic_error_types_map_to_the_nearest_openai_type),
        cmocka_unit_test(test_anthropic_error_status_reaches_the_sink_classified_and_redacted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
