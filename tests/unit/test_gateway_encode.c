/*
 * test_gateway_encode.c - the gateway's pure encoders: event sequences -> exact SSE chunks,
 * whole answers -> chat.completion JSON, failures -> OpenAI error bodies and statuses, and
 * snapshots -> /admin/state, /v1/models and the readiness verdict. No router, no sockets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "../../src/gateway/internal.h"

#define P                                                                                          \
    "data: "                                                                                       \
    "{\"id\":\"chatcmpl-r1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"         \
    "\"model\":\"gpt-x\",\"choices\":"
#define ROLE                                                                                       \
    P "[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]" \
      "}\n\n"
#define DONE "data: [DONE]\n\n"

/* ---- helpers ------------------------------------------------------------------------------ */

static struct llm_event ev_text(const char *s)
{
    struct llm_event ev = {.type = LLM_EV_TEXT, .text = s, .len = strlen(s)};
    return ev;
}

static struct llm_event ev_tool(int index, const char *id, const char *name)
{
    struct llm_event ev = {.type = LLM_EV_TOOL_CALL, .index = index, .id = id, .name = name};
    return ev;
}

static struct llm_event ev_args(int index, const char *s)
{
    struct llm_event ev = {.type = LLM_EV_TOOL_ARGS, .index = index, .text = s, .len = strlen(s)};
    return ev;
}

static struct llm_event ev_usage(long in, long out, long cached)
{
    struct llm_event ev = {.type = LLM_EV_USAGE};
    ev.usage.present = true;
    ev.usage.input_tokens = in;
    ev.usage.output_tokens = out;
    ev.usage.cached_tokens = cached;
    return ev;
}

static struct llm_event ev_finish(enum llm_finish f)
{
    struct llm_event ev = {.type = LLM_EV_FINISH, .finish = f};
    return ev;
}

static struct llm_event ev_error(const char *msg)
{
    struct llm_event ev = {
        .type = LLM_EV_ERROR, .text = msg, .len = strlen(msg), .errclass = LLM_ERR_TRUNCATED};
    return ev;
}

/* Feeds events to a fresh encoder (begun, as on_commit does) and returns the text. */
static char *sse_run(bool include_usage, const struct llm_event *evs, size_t n)
{
    struct gw_sse s;
    struct buf out;
    buf_init(&out);
    gw_sse_init(&s, "chatcmpl-r1", "gpt-x", 1700000000, include_usage);
    gw_sse_begin(&s, &out);
    for (size_t i = 0; i < n; i++)
        gw_sse_event(&s, &evs[i], &out);
    gw_sse_cleanup(&s);
    return buf_take(&out);
}

/* Parses the JSON after "data: " of the n-th (0-based) event in an SSE text. */
static cJSON *sse_chunk(const char *text, int n)
{
    const char *p = text;
    for (int i = 0; i < n; i++) {
        p = strstr(p, "\n\n");
        assert_non_null(p);
        p += 2;
    }
    assert_true(strncmp(p, "data: ", 6) == 0);
    p += 6;
    const char *end = strstr(p, "\n\n");
    assert_non_null(end);
    cJSON *j = cJSON_ParseWithLength(p, (size_t)(end - p));
    assert_non_null(j);
    return j;
}

static const char *jstr(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

static double jnum(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

static cJSON *parse_buf(struct buf *b)
{
    cJSON *j = cJSON_ParseWithLength(buf_str(b), b->len);
    assert_non_null(j);
    return j;
}

/* ---- streaming ---------------------------------------------------------------------------- */

static void test_sse_carries_refusal_reasoning_logprobs_and_fingerprint(void **state)
{
    (void)state;
    static const char lp[] = "{\"content\":[{\"token\":\"no\",\"logprob\":-0.5}]}";
    struct llm_event evs[] = {ev_text("hmm"), ev_text("No."), ev_text("sorry"), ev_usage(1, 2, 0),
                              ev_finish(LLM_FINISH_STOP)};
    evs[0].kind = LLM_TEXT_REASONING_CONTENT;
    evs[1].logprobs = lp;
    evs[1].logprobs_len = strlen(lp);
    evs[2].kind = LLM_TEXT_REFUSAL;
    evs[4].system_fingerprint = "fp_1";
    evs[4].service_tier = "default";
    char *text = sse_run(true, evs, SB_ARRAY_LEN(evs));
    cJSON *c1 = sse_chunk(text, 1), *c2 = sse_chunk(text, 2), *c3 = sse_chunk(text, 3);
    cJSON *c4 = sse_chunk(text, 4), *c5 = sse_chunk(text, 5);
    const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(c1, "choices"), 0);
    assert_string_equal(jstr(cJSON_GetObjectItem(ch, "delta"), "reasoning_content"), "hmm");
    ch = cJSON_GetArrayItem(cJSON_GetObjectItem(c2, "choices"), 0);
    assert_string_equal(jstr(cJSON_GetObjectItem(ch, "delta"), "content"), "No.");
    assert_true(jnum(cJSON_GetArrayItem(
                         cJSON_GetObjectItem(cJSON_GetObjectItem(ch, "logprobs"), "content"), 0),
                     "logprob") == -0.5);
    ch = cJSON_GetArrayItem(cJSON_GetObjectItem(c3, "choices"), 0);
    assert_string_equal(jstr(cJSON_GetObjectItem(ch, "delta"), "refusal"), "sorry");
    assert_string_equal(jstr(c4, "system_fingerprint"), "fp_1");
    assert_string_equal(jstr(c4, "service_tier"), "default");
    assert_string_equal(jstr(c4, "id"), "chatcmpl-r1");
    assert_string_equal(jstr(c5, "system_fingerprint"), "fp_1"); /* the usage chunk */
    assert_non_null(strstr(text, DONE));
    cJSON_Delete(c1);
    cJSON_Delete(c2);
    cJSON_Delete(c3);
    cJSON_Delete(c4);
    cJSON_Delete(c5);
    free(text);
}

static void test_completion_carries_refusal_reasoning_logprobs_and_fingerprint(void **state)
{
    (void)state;
    static const char lp[] = "{\"content\":[]}";
    struct llm_response r;
    struct buf out;
    llm_response_init(&r);
    buf_init(&out);
    struct llm_event evs[] = {ev_text("think"), ev_text("I can't."), ev_finish(LLM_FINISH_STOP)};
    evs[0].kind = LLM_TEXT_REASONING;
    evs[1].kind = LLM_TEXT_REFUSAL;
    evs[1].logprobs = lp;
    evs[1].logprobs_len = strlen(lp);
    evs[2].system_fingerprint = "fp_2";
    for (size_t i = 0; i < SB_ARRAY_LEN(evs); i++)
        llm_response_collect(&r, &evs[i]);
    gw_completion_json("chatcmpl-r1", "gpt-x", 1700000000, &r, &out);
    cJSON *j = parse_buf(&out);
    const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    const cJSON *m = cJSON_GetObjectItem(ch, "message");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(m, "content")));
    assert_string_equal(jstr(m, "refusal"), "I can't.");
    assert_string_equal(jstr(m, "reasoning"), "think");
    assert_true(cJSON_IsArray(cJSON_GetObjectItem(cJSON_GetObjectItem(ch, "logprobs"), "content")));
    assert_string_equal(jstr(j, "system_fingerprint"), "fp_2");
    assert_null(cJSON_GetObjectItem(j, "service_tier"));
    cJSON_Delete(j);
    buf_cleanup(&out);
    llm_response_cleanup(&r);
}

static void test_sse_text_stream_is_role_deltas_finish_then_done(void **state)
{
    (void)state;
    struct llm_event evs[] = {ev_text("Hel"), ev_text("lo"), ev_usage(5, 2, 0),
                              ev_finish(LLM_FINISH_STOP)};
    char *got = sse_run(false, evs, SB_ARRAY_LEN(evs));
    assert_string_equal(
        got, ROLE P "[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n" P
                    "[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":null}]}\n\n" P
                    "[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n" DONE);
    free(got);
}

static void test_sse_tool_call_then_argument_deltas(void **state)
{
    (void)state;
    struct llm_event evs[] = {
        ev_tool(0, "call_1", "get_weather"), ev_args(0, "{\"city\""), ev_args(0, ":\"Paris\"}"),
        ev_tool(1, "call_2", "get_time"),    ev_args(1, "{}"),        ev_finish(LLM_FINISH_NONE)};
    char *got = sse_run(false, evs, SB_ARRAY_LEN(evs));
    assert_string_equal(
        got, ROLE P "[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\","
                    "\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":"
                    "\"\"}}]},\"finish_reason\":null}]}\n\n" P
                    "[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{"
                    "\"arguments\":\"{\\\"city\\\"\"}}]},\"finish_reason\":null}]}\n\n" P
                    "[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{"
                    "\"arguments\":\":\\\"Paris\\\"}\"}}]},\"finish_reason\":null}]}\n\n" P
                    "[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_2\","
                    "\"type\":\"function\",\"function\":{\"name\":\"get_time\",\"arguments\":"
                    "\"\"}}]},\"finish_reason\":null}]}\n\n" P
                    "[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":{"
                    "\"arguments\":\"{}\"}}]},\"finish_reason\":null}]}\n\n" P
                    "[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n" DONE);
    free(got);
}

static void test_sse_usage_chunk_only_when_the_client_asked(void **state)
{
    (void)state;
    struct llm_event evs[] = {ev_text("hi"), ev_usage(11, 3, 4), ev_finish(LLM_FINISH_STOP)};
    char *without = sse_run(false, evs, SB_ARRAY_LEN(evs));
    assert_null(strstr(without, "usage"));
    assert_null(strstr(without, "\"choices\":[]"));
    free(without);

    char *with = sse_run(true, evs, SB_ARRAY_LEN(evs));
    assert_string_equal(
        with, P "[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
                "\"finish_reason\":null}],\"usage\":null}\n\n" P
                "[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}],"
                "\"usage\":null}\n\n" P
                "[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n" P
                "[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":3,\"total_tokens\":14,"
                "\"prompt_tokens_details\":{\"cached_tokens\":4}}}\n\n" DONE);
    free(with);
}

static void test_sse_usage_chunk_is_null_when_the_provider_gave_none(void **state)
{
    (void)state;
    struct llm_event evs[] = {ev_text("hi"), ev_finish(LLM_FINISH_STOP)};
    char *got = sse_run(true, evs, SB_ARRAY_LEN(evs));
    cJSON *last = sse_chunk(got, 3);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(last, "choices")), 0);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(last, "usage")));
    cJSON_Delete(last);
    free(got);
}

static void test_sse_error_after_output_sends_an_error_chunk_and_no_done(void **state)
{
    (void)state;
    struct llm_event evs[] = {ev_text("par"), ev_error("upstream connection reset"),
                              ev_text("ignored"), ev_finish(LLM_FINISH_STOP)};
    char *got = sse_run(false, evs, SB_ARRAY_LEN(evs));
    assert_string_equal(
        got, ROLE P "[{\"index\":0,\"delta\":{\"content\":\"par\"},\"finish_reason\":null}]}\n\n"
                    "data: {\"error\":{\"message\":\"upstream connection reset\",\"type\":"
                    "\"upstream_error\",\"param\":null,\"code\":\"truncated\"}}\n\n");
    assert_null(strstr(got, "[DONE]"));
    free(got);
}

static void test_sse_fail_writes_one_error_chunk_then_nothing(void **state)
{
    (void)state;
    struct gw_sse s;
    struct buf out;
    buf_init(&out);
    gw_sse_init(&s, "chatcmpl-r1", "gpt-x", 1700000000, false);
    gw_sse_fail(&s, NULL, 0, &out);
    assert_true(gw_sse_is_over(&s));
    size_t len = out.len;
    gw_sse_fail(&s, "again", 5, &out);
    struct llm_event fin = ev_finish(LLM_FINISH_STOP);
    gw_sse_event(&s, &fin, &out);
    assert_int_equal(out.len, len);
    cJSON *j = sse_chunk(buf_str(&out), 0);
    const cJSON *err = cJSON_GetObjectItem(j, "error");
    assert_string_equal(jstr(err, "code"), "truncated");
    assert_string_equal(jstr(err, "message"), "the upstream stream ended early");
    cJSON_Delete(j);
    gw_sse_cleanup(&s);
    buf_cleanup(&out);
}

static void test_sse_finish_reasons_use_openai_names(void **state)
{
    (void)state;
    static const struct {
        enum llm_finish f;
        const char *name;
    } cases[] = {{LLM_FINISH_STOP, "stop"},
                 {LLM_FINISH_LENGTH, "length"},
                 {LLM_FINISH_TOOL_CALLS, "tool_calls"},
                 {LLM_FINISH_CONTENT_FILTER, "content_filter"},
                 {LLM_FINISH_NONE, "stop"}};
    for (size_t i = 0; i < SB_ARRAY_LEN(cases); i++) {
        struct llm_event evs[] = {ev_text("x"), ev_finish(cases[i].f)};
        char *got = sse_run(false, evs, SB_ARRAY_LEN(evs));
        cJSON *fin = sse_chunk(got, 2);
        const cJSON *choice = cJSON_GetArrayItem(cJSON_GetObjectItem(fin, "choices"), 0);
        assert_string_equal(jstr(choice, "finish_reason"), cases[i].name);
        cJSON_Delete(fin);
        free(got);
    }
}

static void test_sse_text_is_escaped_and_invalid_utf8_replaced(void **state)
{
    (void)state;
    struct llm_event evs[] = {ev_text("a \"q\"\n\\ caf\xc3\xa9 \xff end\x01"),
                              ev_finish(LLM_FINISH_STOP)};
    char *got = sse_run(false, evs, SB_ARRAY_LEN(evs));
    cJSON *j = sse_chunk(got, 1);
    const cJSON *choice = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    assert_string_equal(jstr(cJSON_GetObjectItem(choice, "delta"), "content"),
                        "a \"q\"\n\\ caf\xc3\xa9 \xef\xbf\xbd end\x01");
    cJSON_Delete(j);
    free(got);
}

static void test_sse_every_chunk_parses_and_names_the_call(void **state)
{
    (void)state;
    struct llm_event evs[] = {ev_text("one"), ev_tool(0, NULL, "f"), ev_args(0, "{}"),
                              ev_usage(1, 1, 0), ev_finish(LLM_FINISH_TOOL_CALLS)};
    char *got = sse_run(true, evs, SB_ARRAY_LEN(evs));
    int chunks = 0;
    for (const char *p = got; *p; chunks++) {
        const char *end = strstr(p, "\n\n");
        assert_non_null(end);
        if (strncmp(p, DONE, strlen(DONE)) == 0) {
            assert_string_equal(p, DONE);
            break;
        }
        cJSON *j = sse_chunk(p, 0);
        assert_string_equal(jstr(j, "id"), "chatcmpl-r1");
        assert_string_equal(jstr(j, "object"), "chat.completion.chunk");
        assert_string_equal(jstr(j, "model"), "gpt-x");
        assert_int_equal((long)jnum(j, "created"), 1700000000);
        assert_non_null(cJSON_GetObjectItem(j, "usage"));
        cJSON_Delete(j);
        p = end + 2;
    }
    assert_int_equal(chunks, 6); /* role, text, tool, args, finish, usage (+ [DONE]) */
    /* A tool call without an id gets a synthesised one. */
    assert_non_null(strstr(got, "\"id\":\"call_0\""));
    free(got);
}

/* ---- whole answers ------------------------------------------------------------------------ */

static void collect(struct llm_response *r, const struct llm_event *evs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        llm_response_collect(r, &evs[i]);
}

static void test_completion_json_has_the_openai_shape(void **state)
{
    (void)state;
    struct llm_response r;
    struct buf out;
    llm_response_init(&r);
    buf_init(&out);
    struct llm_event evs[] = {ev_text("Hello"), ev_text(", world"), ev_usage(12, 5, 2),
                              ev_finish(LLM_FINISH_LENGTH)};
    collect(&r, evs, SB_ARRAY_LEN(evs));
    gw_completion_json("chatcmpl-r1", "gpt-x", 1700000000, &r, &out);
    cJSON *j = parse_buf(&out);
    assert_string_equal(jstr(j, "id"), "chatcmpl-r1");
    assert_string_equal(jstr(j, "object"), "chat.completion");
    assert_int_equal((long)jnum(j, "created"), 1700000000);
    assert_string_equal(jstr(j, "model"), "gpt-x");
    const cJSON *choices = cJSON_GetObjectItem(j, "choices");
    assert_int_equal(cJSON_GetArraySize(choices), 1);
    const cJSON *c0 = cJSON_GetArrayItem(choices, 0);
    assert_int_equal((long)jnum(c0, "index"), 0);
    assert_string_equal(jstr(c0, "finish_reason"), "length");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(c0, "logprobs")));
    const cJSON *msg = cJSON_GetObjectItem(c0, "message");
    assert_string_equal(jstr(msg, "role"), "assistant");
    assert_string_equal(jstr(msg, "content"), "Hello, world");
    assert_null(cJSON_GetObjectItem(msg, "tool_calls"));
    const cJSON *u = cJSON_GetObjectItem(j, "usage");
    assert_int_equal((long)jnum(u, "prompt_tokens"), 12);
    assert_int_equal((long)jnum(u, "completion_tokens"), 5);
    assert_int_equal((long)jnum(u, "total_tokens"), 17);
    assert_int_equal((long)jnum(cJSON_GetObjectItem(u, "prompt_tokens_details"), "cached_tokens"),
                     2);
    cJSON_Delete(j);
    buf_cleanup(&out);
    llm_response_cleanup(&r);
}

static void test_completion_json_with_only_tool_calls_has_null_content(void **state)
{
    (void)state;
    struct llm_response r;
    struct buf out;
    llm_response_init(&r);
    buf_init(&out);
    struct llm_event evs[] = {ev_tool(0, "call_9", "lookup"), ev_args(0, "{\"q\":"),
                              ev_args(0, "1}"), ev_finish(LLM_FINISH_NONE)};
    collect(&r, evs, SB_ARRAY_LEN(evs));
    gw_completion_json("chatcmpl-r1", "gpt-x", 1, &r, &out);
    cJSON *j = parse_buf(&out);
    const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    const cJSON *msg = cJSON_GetObjectItem(c0, "message");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(msg, "content")));
    assert_string_equal(jstr(c0, "finish_reason"), "tool_calls");
    const cJSON *tcs = cJSON_GetObjectItem(msg, "tool_calls");
    assert_int_equal(cJSON_GetArraySize(tcs), 1);
    const cJSON *tc = cJSON_GetArrayItem(tcs, 0);
    assert_string_equal(jstr(tc, "id"), "call_9");
    assert_string_equal(jstr(tc, "type"), "function");
    const cJSON *fn = cJSON_GetObjectItem(tc, "function");
    assert_string_equal(jstr(fn, "name"), "lookup");
    assert_string_equal(jstr(fn, "arguments"), "{\"q\":1}");
    cJSON_Delete(j);
    buf_cleanup(&out);
    llm_response_cleanup(&r);
}

static void test_completion_json_omits_usage_only_when_the_provider_gave_none(void **state)
{
    (void)state;
    struct llm_response r;
    struct buf out;
    llm_response_init(&r);
    buf_init(&out);
    struct llm_event evs[] = {ev_text(""), ev_finish(LLM_FINISH_STOP)};
    collect(&r, evs, SB_ARRAY_LEN(evs));
    gw_completion_json("chatcmpl-r1", "gpt-x", 1, &r, &out);
    cJSON *j = parse_buf(&out);
    assert_null(cJSON_GetObjectItem(j, "usage"));
    const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    assert_string_equal(jstr(cJSON_GetObjectItem(c0, "message"), "content"), "");
    cJSON_Delete(j);
    buf_cleanup(&out);
    llm_response_cleanup(&r);
}

/* ---- errors ------------------------------------------------------------------------------- */

static void test_error_json_has_message_type_param_code(void **state)
{
    (void)state;
    struct gw_error e;
    struct buf out;
    buf_init(&out);
    gw_error_set(&e, 404, "invalid_request_error", "not_found", "Unknown path %s", "/x\"y");
    gw_error_json(&e, &out);
    assert_string_equal(buf_str(&out),
                        "{\"error\":{\"message\":\"Unknown path /x\\\"y\",\"type\":"
                        "\"invalid_request_error\",\"param\":null,\"code\":\"not_found\"}}");
    buf_cleanup(&out);
}

static void test_parse_errors_answer_400_naming_the_parameter(void **state)
{
    (void)state;
    struct gw_error e;
    gw_error_from_parse(&e, SB_ERR_UNSUPPORTED, "logprobs: is not supported");
    assert_int_equal(e.status, 400);
    assert_string_equal(e.type, "invalid_request_error");
    assert_string_equal(e.code, "unsupported_parameter");
    assert_string_equal(e.param, "logprobs");
    assert_string_equal(e.message, "logprobs: is not supported");

    gw_error_from_parse(&e, SB_ERR_INVALID, "messages[2].role: unknown role \"x\"");
    assert_int_equal(e.status, 400);
    assert_string_equal(e.param, "messages[2].role");

    gw_error_from_parse(&e, SB_ERR_PARSE, "request body is not valid JSON");
    assert_int_equal(e.status, 400);
    assert_string_equal(e.type, "invalid_request_error");
    assert_string_equal(e.param, "");
    assert_string_equal(e.code, "");

    gw_error_from_parse(&e, SB_ERR_INVALID, "request body: expected a JSON object");
    assert_string_equal(e.param, "");
}

static void fail_with(struct gw_error *e, enum llm_errclass cls, long upstream, bool no_target,
                      int64_t retry_after_ms, const struct llm_error_info *info, const char *msg)
{
    struct gw_call_failure f = {
        .cls = cls,
        .upstream_status = upstream,
        .info = info,
        .no_target = no_target,
        .retry_after_ms = retry_after_ms,
        .message = msg,
    };
    gw_error_from_call(e, &f);
}

static void test_call_errors_map_to_the_right_status(void **state)
{
    (void)state;
    static const struct {
        enum llm_errclass cls;
        long upstream;
        bool no_target;
        int status;
        const char *type;
        const char *code;
    } cases[] = {
        {LLM_ERR_RATE_LIMIT, 429, false, 429, "rate_limit_error", "rate_limit_exceeded"},
        {LLM_ERR_RATE_LIMIT, 0, true, 429, "rate_limit_error", "rate_limit_exceeded"},
        {LLM_ERR_TIMEOUT, 0, false, 504, "upstream_error", "timeout"},
        {LLM_ERR_TIMEOUT, 503, false, 504, "upstream_error", "timeout"},
        {LLM_ERR_CONNECT, 0, false, 502, "upstream_error", "connect"},
        {LLM_ERR_BAD_RESPONSE, 200, false, 502, "upstream_error", "bad_response"},
        {LLM_ERR_SERVER, 500, false, 500, "server_error", "server"},
        {LLM_ERR_SERVER, 503, false, 503, "server_error", "server"},
        {LLM_ERR_SERVER, 0, false, 500, "server_error", "server"},
        {LLM_ERR_SERVER, 500, true, 503, "upstream_error", "no_target_available"},
        {LLM_ERR_OVERLOADED, 529, false, 503, "server_error", "overloaded"},
        {LLM_ERR_AUTH, 401, false, 401, "authentication_error", "upstream_auth"},
        {LLM_ERR_AUTH, 403, false, 403, "permission_error", "upstream_auth"},
        {LLM_ERR_BAD_REQUEST, 400, false, 400, "invalid_request_error", "bad_request"},
        {LLM_ERR_BAD_REQUEST, 404, false, 404, "not_found_error", "bad_request"},
        {LLM_ERR_BAD_REQUEST, 422, false, 422, "invalid_request_error", "bad_request"},
        {LLM_ERR_BAD_REQUEST, 0, false, 400, "invalid_request_error", "bad_request"},
        {LLM_ERR_CONTEXT_LENGTH, 400, false, 400, "invalid_request_error",
         "context_length_exceeded"},
        {LLM_ERR_CANCELLED, 0, false, 503, "server_error", "cancelled"},
        {LLM_ERR_NO_KEY, 0, false, 503, "upstream_error", "no_key"},
        {LLM_ERR_INTERNAL, 0, false, 500, "server_error", "internal"},
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(cases); i++) {
        struct gw_error e;
        fail_with(&e, cases[i].cls, cases[i].upstream, cases[i].no_target, -1, NULL, "boom");
        if (e.status != cases[i].status)
            fail_msg("case %zu: status %d", i, e.status);
        assert_string_equal(e.type, cases[i].type);
        assert_string_equal(e.code, cases[i].code);
        assert_string_equal(e.message, "boom");
        assert_int_equal(e.retry_after_s, cases[i].status == 429 ? 1 : 0);
    }
}

static void test_call_errors_keep_the_providers_type_code_and_param(void **state)
{
    (void)state;
    struct gw_error e;
    struct buf out;
    struct llm_error_info info;
    llm_error_info_init(&info);
    str_copy(info.type, sizeof info.type, "invalid_request_error");
    str_copy(info.code, sizeof info.code, "model_not_found");
    str_copy(info.param, sizeof info.param, "model");
    fail_with(&e, LLM_ERR_BAD_REQUEST, 404, false, -1, &info, "The model `x` does not exist");
    assert_int_equal(e.status, 404);
    buf_init(&out);
    gw_error_json(&e, &out);
    assert_string_equal(buf_str(&out),
                        "{\"error\":{\"message\":\"The model `x` does not exist\",\"type\":"
                        "\"invalid_request_error\",\"param\":\"model\",\"code\":"
                        "\"model_not_found\"}}");
    buf_cleanup(&out);
    /* Not what the provider decided: its details do not apply. */
    fail_with(&e, LLM_ERR_TIMEOUT, 404, false, -1, &info, "slow");
    assert_string_equal(e.code, "timeout");
    assert_string_equal(e.param, "");
    fail_with(&e, LLM_ERR_BAD_REQUEST, 404, true, -1, &info, "none");
    assert_string_equal(e.code, "no_target_available");
}

static void test_rate_limit_carries_retry_after_in_whole_seconds(void **state)
{
    (void)state;
    struct gw_error e;
    fail_with(&e, LLM_ERR_RATE_LIMIT, 429, false, 1500, NULL, "");
    assert_int_equal(e.status, 429);
    assert_int_equal(e.retry_after_s, 2);
    assert_string_equal(e.message, "upstream error: rate_limit");
    fail_with(&e, LLM_ERR_RATE_LIMIT, 429, false, -1, NULL, "");
    assert_int_equal(e.retry_after_s, 1); /* a 429 always says when */
    fail_with(&e, LLM_ERR_SERVER, 0, true, 30000, NULL, "all open");
    assert_int_equal(e.status, 503);
    assert_int_equal(e.retry_after_s, 30);
    fail_with(&e, LLM_ERR_TIMEOUT, 0, false, 1500, NULL, "slow");
    assert_int_equal(e.retry_after_s, 0); /* only for 429 / 503 */
}

static struct router_snapshot *snap_new(void)
{
    struct router_snapshot *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->gen = 7;
    s->n_targets = 2;
    str_copy(s->targets[0].name, sizeof s->targets[0].name, "oa");
    str_copy(s->targets[0].kind, sizeof s->targets[0].kind, "openai");
    s->targets[0].enabled = true;
    s->targets[0].breaker = BREAKER_OPEN;
    str_copy(s->targets[1].name, sizeof s->targets[1].name, "an");
    s->targets[1].enabled = false;
    str_copy(s->targets[1].disabled_reason, sizeof s->targets[1].disabled_reason,
             "ANTHROPIC_API_KEY is not set");
    s->n_routes = 2;
    str_copy(s->routes[0].name, sizeof s->routes[0].name, "chat");
    s->routes[0].n_targets = 2;
    s->routes[0].targets[0] = 0;
    s->routes[0].targets[1] = 1;
    str_copy(s->routes[1].name, sizeof s->routes[1].name, "cheap");
    s->routes[1].n_targets = 1;
    s->routes[1].targets[0] = 1;
    return s;
}

static void test_unknown_model_is_404_listing_the_routes(void **state)
{
    (void)state;
    struct router_snapshot *snap = snap_new();
    struct gw_error e;
    gw_error_model_not_found(&e, "gpt-9", snap);
    assert_int_equal(e.status, 404);
    assert_string_equal(e.code, "model_not_found");
    assert_string_equal(e.param, "model");
    assert_string_equal(e.message,
                        "The model 'gpt-9' does not exist. Available models: chat, cheap");
    assert_true(gw_has_route(snap, "cheap"));
    assert_false(gw_has_route(snap, "gpt-9"));
    free(snap);
}

static void test_request_id_keeps_only_safe_characters(void **state)
{
    (void)state;
    char out[65];
    gw_request_id_clean("abc-DEF_1.2", out);
    assert_string_equal(out, "abc-DEF_1.2");
    gw_request_id_clean("a b\r\nc<script>", out);
    assert_string_equal(out, "abcscript");
    gw_request_id_clean(NULL, out);
    assert_string_equal(out, "");
    char longer[200];
    memset(longer, 'x', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    gw_request_id_clean(longer, out);
    assert_int_equal(strlen(out), 64);
}

/* ---- snapshots ---------------------------------------------------------------------------- */

static void test_readiness_needs_a_usable_target_in_some_route(void **state)
{
    (void)state;
    struct router_snapshot *snap = snap_new();
    struct buf why;
    buf_init(&why);
    assert_false(gw_is_ready(snap, &why));
    assert_non_null(strstr(buf_str(&why), "oa (breaker open)"));
    assert_non_null(strstr(buf_str(&why), "an (ANTHROPIC_API_KEY is not set)"));
    buf_reset(&why);
    snap->targets[0].breaker = BREAKER_HALF_OPEN;
    assert_true(gw_is_ready(snap, &why));
    snap->targets[0].drained = true;
    assert_false(gw_is_ready(snap, &why));
    snap->n_routes = 0;
    buf_reset(&why);
    assert_false(gw_is_ready(snap, &why));
    assert_string_equal(buf_str(&why), "no routes configured");
    buf_cleanup(&why);
    free(snap);
}

static void test_models_json_lists_each_route_as_a_model(void **state)
{
    (void)state;
    struct router_snapshot *snap = snap_new();
    struct buf out;
    buf_init(&out);
    struct gw_route_names names;
    gw_route_names_from(snap, &names);
    gw_models_json(&names, 1700000000, &out);
    assert_string_equal(buf_str(&out),
                        "{\"object\":\"list\",\"data\":[{\"id\":\"chat\",\"object\":\"model\","
                        "\"created\":1700000000,\"owned_by\":\"switchboard\"},{\"id\":\"cheap\","
                        "\"object\":\"model\",\"created\":1700000000,\"owned_by\":"
                        "\"switchboard\"}]}");
    buf_cleanup(&out);
    free(snap);
}

static void test_state_json_carries_targets_routes_and_events(void **state)
{
    (void)state;
    struct router_snapshot *snap = snap_new();
    snap->targets[0].stats.calls = 42;
    snap->targets[0].stats.errors[LLM_ERR_TIMEOUT] = 3;
    snap->targets[0].stats.latency_1m[1] = 812.5;
    snap->targets[0].stats.latency_prom[HIST_PROM_COUNT - 1] = 40;
    snap->targets[0].weight = 0.5;
    snap->n_events = 1;
    snap->events[0].seq = 9;
    snap->events[0].kind = ROUTER_EV_OPERATOR;
    str_copy(snap->events[0].target, sizeof snap->events[0].target, "oa");
    str_copy(snap->events[0].text, sizeof snap->events[0].text, "admin:127.0.0.1 drain \"oa\"");
    snap->n_budgets = 1;
    str_copy(snap->budgets[0].label, sizeof snap->budgets[0].label, "global");
    snap->budgets[0].level = BUDGET_LEVEL_HARD;
    snap->guard_throttled = 5;
    snap->targets[0].over_budget = true;
    struct buf out;
    buf_init(&out);
    gw_state_json(snap, &out);
    cJSON *j = parse_buf(&out);
    assert_int_equal((long)jnum(j, "gen"), 7);
    const cJSON *b0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "budgets"), 0);
    assert_string_equal(jstr(b0, "label"), "global");
    assert_string_equal(jstr(b0, "level"), "hard");
    assert_int_equal((long)jnum(cJSON_GetObjectItem(j, "guard"), "throttled"), 5);
    assert_non_null(cJSON_GetObjectItem(j, "ledger"));
    const cJSON *t0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "targets"), 0);
    assert_string_equal(jstr(t0, "name"), "oa");
    assert_string_equal(jstr(t0, "breaker"), "open");
    assert_true(jnum(t0, "weight") == 0.5);
    const cJSON *st = cJSON_GetObjectItem(t0, "stats");
    assert_int_equal((long)jnum(st, "calls"), 42);
    assert_int_equal((long)jnum(cJSON_GetObjectItem(st, "errors"), "timeout"), 3);
    assert_true(jnum(cJSON_GetObjectItem(st, "latency_1m_ms"), "p95") == 812.5);
    assert_int_equal(
        (long)jnum(cJSON_GetObjectItem(cJSON_GetObjectItem(st, "latency"), "buckets"), "+Inf"), 40);
    assert_non_null(cJSON_GetObjectItem(t0, "probe"));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(t0, "over_budget")));
    const cJSON *t1 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "targets"), 1);
    assert_string_equal(jstr(t1, "disabled_reason"), "ANTHROPIC_API_KEY is not set");
    const cJSON *r0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "routes"), 0);
    assert_string_equal(jstr(r0, "name"), "chat");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(r0, "pinned")));
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(r0, "targets"), 1)->valuestring,
                        "an");
    const cJSON *e0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "events"), 0);
    assert_string_equal(jstr(e0, "kind"), "operator");
    assert_string_equal(jstr(e0, "text"), "admin:127.0.0.1 drain \"oa\"");
    cJSON_Delete(j);
    buf_cleanup(&out);
    free(snap);
}

static void test_json_writer_nests_and_writes_nonfinite_as_null(void **state)
{
    (void)state;
    struct buf out;
    struct gw_json j;
    buf_init(&out);
    gw_json_init(&j, &out);
    gw_json_open(&j, NULL, '{');
    gw_json_open(&j, "a", '[');
    gw_json_int(&j, NULL, -1);
    gw_json_num(&j, NULL, INFINITY);
    gw_json_num(&j, NULL, 0.25);
    gw_json_open(&j, NULL, '{');
    gw_json_close(&j, '}');
    gw_json_close(&j, ']');
    gw_json_bool(&j, "b", true);
    gw_json_str(&j, "c", NULL);
    gw_json_uint(&j, "d", UINT64_MAX);
    gw_json_close(&j, '}');
    assert_string_equal(
        buf_str(&out),
        "{\"a\":[-1,null,0.25,{}],\"b\":true,\"c\":null,\"d\":18446744073709551615}");
    buf_cleanup(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sse_text_stream_is_role_deltas_finish_then_done),
        cmocka_unit_test(test_sse_tool_call_then_argument_deltas),
        cmocka_unit_test(test_sse_usage_chunk_only_when_the_client_asked),
        cmocka_unit_test(test_sse_usage_chunk_is_null_when_the_provider_gave_none),
        cmocka_unit_test(test_sse_error_after_output_sends_an_error_chunk_and_no_done),
        cmocka_unit_test(test_sse_fail_writes_one_error_chunk_then_nothing),
        cmocka_unit_test(test_sse_finish_reasons_use_openai_names),
        cmocka_unit_test(test_sse_text_is_escaped_and_invalid_utf8_replaced),
        cmocka_unit_test(test_sse_every_chunk_parses_and_names_the_call),
        cmocka_unit_test(test_completion_json_has_the_openai_shape),
        cmocka_unit_test(test_completion_json_with_only_tool_calls_has_null_content),
        cmocka_unit_test(test_completion_json_omits_usage_only_when_the_provider_gave_none),
        cmocka_unit_test(test_error_json_has_message_type_param_code),
        cmocka_unit_test(test_parse_errors_answer_400_naming_the_parameter),
        cmocka_unit_test(test_call_errors_map_to_the_right_status),
        cmocka_unit_test(test_sse_carries_refusal_reasoning_logprobs_and_fingerprint),
        cmocka_unit_test(test_completion_carries_refusal_reasoning_logprobs_and_fingerprint),
        cmocka_unit_test(test_call_errors_keep_the_providers_type_code_and_param),
        cmocka_unit_test(test_rate_limit_carries_retry_after_in_whole_seconds),
        cmocka_unit_test(test_unknown_model_is_404_listing_the_routes),
        cmocka_unit_test(test_request_id_keeps_only_safe_characters),
        cmocka_unit_test(test_readiness_needs_a_usable_target_in_some_route),
        cmocka_unit_test(test_models_json_lists_each_route_as_a_model),
        cmocka_unit_test(test_state_json_carries_targets_routes_and_events),
        cmocka_unit_test(test_json_writer_nests_and_writes_nonfinite_as_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
