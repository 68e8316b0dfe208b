/*
 * test_openai.c - the OpenAI Chat Completions codec: encode against golden JSON, whole and
 * streamed decoding, error classification and the gateway's request parser. Fixtures live in
 * tests/fixtures/openai/ (run from the repository root, as tests/run.sh does).
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

#define FIXTURES "tests/fixtures/openai/"

static char *read_fixture(const char *name, size_t *len)
{
    return read_fixture_in(FIXTURES, name, len);
}

/* ---- A sink that writes events as lines ----------------------------------------------- */

static int record(void *ctx, const struct llm_event *ev)
{
    struct buf *b = ctx;
    const char *fin;
    switch (ev->type) {
    case LLM_EV_TEXT:
        buf_printf(b, "T:%.*s\n", (int)ev->len, ev->text);
        break;
    case LLM_EV_TOOL_CALL:
        buf_printf(b, "C%d:%s:%s\n", ev->index, ev->id, ev->name);
        break;
    case LLM_EV_TOOL_ARGS:
        buf_printf(b, "A%d:%.*s\n", ev->index, (int)ev->len, ev->text);
        break;
    case LLM_EV_USAGE:
        buf_printf(b, "U:%ld/%ld/%ld\n", ev->usage.input_tokens, ev->usage.output_tokens,
                   ev->usage.cached_tokens);
        break;
    case LLM_EV_FINISH:
        fin = llm_finish_name(ev->finish);
        buf_printf(b, "F:%s\n", fin ? fin : "none");
        break;
    case LLM_EV_ERROR:
        buf_printf(b, "E:%s:%.*s\n", llm_errclass_name(ev->errclass), (int)ev->len, ev->text);
        break;
    }
    return 0;
}

static struct config_target target(const char *api_key)
{
    struct config_target t;
    memset(&t, 0, sizeof t);
    t.name = (char *)(uintptr_t) "openai-main";
    t.kind = PROVIDER_OPENAI;
    t.base_url = (char *)(uintptr_t) "https://api.openai.com/v1/";
    t.model = (char *)(uintptr_t) "gpt-4o-mini";
    t.api_key = (char *)(uintptr_t)api_key;
    return t;
}

/* ---- Encoding --------------------------------------------------------------------------- */

static void build_plain(struct llm_request *req)
{
    llm_request_add_message(req, LLM_ROLE_USER, "Say hello.");
    req->has_temperature = true;
    req->temperature = 0.2;
}

static void build_tools(struct llm_request *req)
{
    llm_request_add_message(req, LLM_ROLE_SYSTEM, "You are a weather bot.");
    llm_request_add_message(req, LLM_ROLE_USER, "Weather in Paris?");
    llm_request_add_tool(req, "get_weather", "Current weather for a city",
                         "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"},"
                         "\"unit\":{\"type\":\"string\",\"enum\":[\"c\",\"f\"]}},"
                         "\"required\":[\"city\"]}");
    llm_request_add_tool(req, "get_time", NULL, NULL);
    req->tool_choice = LLM_TOOL_CHOICE_NAMED;
    req->tool_choice_name = xstrdup("get_weather");
    req->max_tokens = 256;
    req->has_top_p = true;
    req->top_p = 0.9;
    req->stop = xcalloc(2, sizeof *req->stop);
    req->stop[0] = xstrdup("END");
    req->stop[1] = xstrdup("STOP");
    req->n_stop = 2;
    req->user = xstrdup("u-42");
}

static void build_tool_result(struct llm_request *req)
{
    llm_request_add_message(req, LLM_ROLE_USER, "Weather in Paris?");
    struct llm_message *m = llm_request_add_message(req, LLM_ROLE_ASSISTANT, NULL);
    m->tool_calls = xcalloc(1, sizeof *m->tool_calls);
    m->n_tool_calls = 1;
    m->tool_calls[0].id = xstrdup("call_abc123");
    m->tool_calls[0].name = xstrdup("get_weather");
    m->tool_calls[0].arguments = xstrdup("{\"city\":\"Paris\"}");
    m = llm_request_add_message(req, LLM_ROLE_TOOL, "{\"temp_c\":18}");
    m->tool_call_id = xstrdup("call_abc123");
    m->name = xstrdup("get_weather");
    llm_request_add_message(req, LLM_ROLE_ASSISTANT, "It is 18 C in Paris.");
    llm_request_add_message(req, LLM_ROLE_USER, "Thanks");
    llm_request_add_tool(req, "get_weather", NULL, "{\"type\":\"object\"}");
    req->tool_choice = LLM_TOOL_CHOICE_AUTO;
}

static void build_stream(struct llm_request *req)
{
    llm_request_add_message(req, LLM_ROLE_SYSTEM, "Be brief.");
    llm_request_add_message(req, LLM_ROLE_USER, "Say hello.");
    req->max_tokens = 32;
    req->stream = true;
    req->include_usage = false; /* usage is asked for anyway */
}

static void assert_json_equals_fixture(const char *body, const char *fixture)
{
    size_t len;
    char *golden = read_fixture(fixture, &len);
    cJSON *want = cJSON_ParseWithLength(golden, len);
    cJSON *got = cJSON_Parse(body);
    assert_non_null(want);
    assert_non_null(got);
    if (!cJSON_Compare(got, want, true))
        fail_msg("%s differs:\n got %s", fixture, body);
    cJSON_Delete(want);
    cJSON_Delete(got);
    free(golden);
}

static void test_openai_encodes_requests_like_the_golden_files(void **state)
{
    (void)state;
    static const struct {
        void (*build)(struct llm_request *req);
        const char *golden;
    } rows[] = {
        {build_plain, "encode_plain.json"},
        {build_tools, "encode_tools.json"},
        {build_tool_result, "encode_tool_result.json"},
        {build_stream, "encode_stream.json"},
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(rows); i++) {
        struct llm_request req;
        struct http_request out;
        struct config_target t = target("sk-test-0123456789abcdef");
        char msg[PROVIDER_MSG_MAX] = "";
        llm_request_init(&req);
        http_request_init(&out);
        req.model = xstrdup("route-name");
        rows[i].build(&req);
        assert_int_equal(provider_openai.encode(&t, &req, &out, msg, sizeof msg), SB_OK);
        assert_string_equal(out.method, "POST");
        assert_string_equal(out.url, "https://api.openai.com/v1/chat/completions");
        assert_int_equal(out.body_len, strlen(out.body));
        assert_json_equals_fixture(out.body, rows[i].golden);
        assert_true(has_header(&out, "Content-Type: application/json"));
        assert_true(has_header(&out, "Authorization: Bearer sk-test-0123456789abcdef"));
        assert_int_equal(has_header(&out, "Accept: text/event-stream"), req.stream);
        http_request_cleanup(&out);
        llm_request_cleanup(&req);
    }
}

static void test_openai_sends_no_authorization_without_a_key(void **state)
{
    (void)state;
    struct llm_request req;
    struct http_request out;
    struct config_target t = target(NULL);
    char msg[PROVIDER_MSG_MAX];
    t.base_url = (char *)(uintptr_t) "http://127.0.0.1:11434/v1";
    t.kind = PROVIDER_OPENAI_COMPATIBLE;
    llm_request_init(&req);
    http_request_init(&out);
    build_plain(&req);
    assert_int_equal(provider_openai.encode(&t, &req, &out, msg, sizeof msg), SB_OK);
    assert_string_equal(out.url, "http://127.0.0.1:11434/v1/chat/completions");
    assert_false(has_header_prefix(&out, "Authorization"));
    http_request_cleanup(&out);

    http_request_init(&out);
    assert_int_equal(provider_openai.encode_probe(&t, &out, msg, sizeof msg), SB_OK);
    assert_string_equal(out.method, "GET");
    assert_string_equal(out.url, "http://127.0.0.1:11434/v1/models");
    assert_null(out.body);
    assert_false(has_header_prefix(&out, "Authorization"));
    http_request_cleanup(&out);

    t = target("sk-probe-0123456789");
    http_request_init(&out);
    assert_int_equal(provider_openai.encode_probe(&t, &out, msg, sizeof msg), SB_OK);
    assert_string_equal(out.url, "https://api.openai.com/v1/models");
    assert_true(has_header(&out, "Authorization: Bearer sk-probe-0123456789"));
    http_request_cleanup(&out);
    llm_request_cleanup(&req);
}

static void test_openai_refuses_to_encode_invalid_requests(void **state)
{
    (void)state;
    struct config_target t = target(NULL);
    struct llm_request req;
    struct http_request out;
    char msg[PROVIDER_MSG_MAX];

    llm_request_init(&req);
    http_request_init(&out);
    build_plain(&req);
    llm_request_add_tool(&req, "broken", NULL, "{\"type\":");
    assert_int_equal(provider_openai.encode(&t, &req, &out, msg, sizeof msg), SB_ERR_INVALID);
    assert_string_equal(msg, "tools[0].parameters: expected a JSON object");
    assert_null(out.body);
    llm_request_cleanup(&req);

    build_plain(&req);
    llm_request_add_message(&req, LLM_ROLE_TOOL, "42");
    assert_int_equal(provider_openai.encode(&t, &req, &out, msg, sizeof msg), SB_ERR_INVALID);
    assert_string_equal(msg, "messages[1]: a tool result needs tool_call_id");
    llm_request_cleanup(&req);

    build_plain(&req);
    t.base_url = NULL;
    assert_int_equal(provider_openai.encode(&t, &req, &out, msg, sizeof msg), SB_ERR_INVALID);
    assert_string_equal(msg, "target openai-main has no base_url");
    llm_request_cleanup(&req);
    http_request_cleanup(&out);
}

/* ---- Whole responses -------------------------------------------------------------------- */

static void test_openai_decodes_whole_responses(void **state)
{
    (void)state;
    static const struct {
        const char *fixture;
        enum llm_errclass cls;
        const char *log; /* events, or the message when cls is set */
    } rows[] = {
        {"ok.json", LLM_ERR_NONE, "T:Hello! How can I assist you today?\nU:19/10/0\nF:stop\n"},
        {"tool_call.json", LLM_ERR_NONE,
         "C0:call_abc123:get_current_weather\nA0:{\n\"location\": \"Boston, MA\"\n}\n"
         "C1:call_def456:get_time\nA1:{}\nU:82/17/64\nF:tool_calls\n"},
        {"no_usage.json", LLM_ERR_NONE, "T:Paris.\nF:length\n"},
        {"malformed.json", LLM_ERR_BAD_RESPONSE, "response is not a JSON object"},
        {"no_choices.json", LLM_ERR_BAD_RESPONSE, "response has no choices"},
        {"error_in_200.json", LLM_ERR_SERVER,
         "The server had an error while processing your request. Sorry about that!"},
        {"error_502.html", LLM_ERR_BAD_RESPONSE, "response is not a JSON object"},
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(rows); i++) {
        size_t len;
        char *body = read_fixture(rows[i].fixture, &len);
        struct buf log;
        char msg[PROVIDER_MSG_MAX] = "";
        buf_init(&log);
        struct llm_sink sink = {record, &log};
        enum llm_errclass cls = provider_openai.decode_full(body, len, &sink, msg, sizeof msg);
        assert_int_equal(cls, rows[i].cls);
        if (cls == LLM_ERR_NONE) {
            assert_string_equal(buf_str(&log), rows[i].log);
        } else {
            assert_string_equal(msg, rows[i].log);
            assert_string_equal(buf_str(&log), ""); /* the caller emits the ERROR */
        }
        buf_cleanup(&log);
        free(body);
    }
}

/* ---- Streams ---------------------------------------------------------------------------- */

struct stream_run {
    void *state;
    struct llm_sink sink;
    enum llm_errclass cls;
    char msg[PROVIDER_MSG_MAX];
};

static int on_sse(void *ctx, const struct sse_event *ev)
{
    struct stream_run *r = ctx;
    r->cls = provider_openai.stream_event(r->state, ev, &r->sink, r->msg, sizeof r->msg);
    return r->cls != LLM_ERR_NONE;
}

/* Feeds a stream fixture through an SSE parser and the adapter; returns the event log. */
static char *run_stream(const char *fixture, enum llm_errclass *cls, char *msg, size_t msglen)
{
    size_t len;
    char *body = read_fixture(fixture, &len);
    struct buf log;
    struct sse_parser p;
    struct stream_run r = {.state = provider_openai.stream_new(), .cls = LLM_ERR_NONE};
    buf_init(&log);
    r.sink = (struct llm_sink){record, &log};
    sse_init(&p, PROVIDER_MAX_SSE_LINE, PROVIDER_MAX_SSE_EVENT);
    sse_feed(&p, body, len, on_sse, &r);
    if (r.cls == LLM_ERR_NONE)
        sse_finish(&p, on_sse, &r);
    if (r.cls == LLM_ERR_NONE)
        r.cls = provider_openai.stream_end(r.state, true, &r.sink, r.msg, sizeof r.msg);
    *cls = r.cls;
    str_copy(msg, msglen, r.msg);
    sse_cleanup(&p);
    provider_openai.stream_free(r.state);
    free(body);
    return buf_take(&log);
}

static void test_openai_decodes_streams(void **state)
{
    (void)state;
    static const struct {
        const char *fixture;
        enum llm_errclass cls;
        const char *log;
        const char *msg;
    } rows[] = {
        {"stream_ok.sse", LLM_ERR_NONE,
         "T:Hello\nT:, w\xC3\xB6rld\nT: \xF0\x9F\x98\x80\nU:19/4/3\nF:stop\n", ""},
        {"stream_tools.sse", LLM_ERR_NONE,
         "C0:call_DdmO9pD3xa9XTPNJ32zg2hcA:get_weather\nA0:{\"\nA0:location\n"
         "A0:\":\"Paris, France\"}\nC1:call_9pD3xa9XTPNJ32zg2hcADdmO:get_time\nA1:{}\n"
         "U:80/40/0\nF:tool_calls\n",
         ""},
        {"stream_no_usage.sse", LLM_ERR_NONE, "T:Bon\nT:jour\nF:stop\n", ""},
        {"stream_truncated.sse", LLM_ERR_TRUNCATED, "T:Hello\nT:, w\xC3\xB6rld\n",
         "stream ended without a finish_reason or [DONE]"},
        {"stream_no_done.sse", LLM_ERR_NONE, "T:Hi\nT: there\nU:5/2/0\nF:stop\n", ""},
        {"stream_legacy_tools.sse", LLM_ERR_NONE,
         "C0:call_0:get_weather\nA0:{\"city\":\"Paris\"}\nF:tool_calls\n", ""},
        {"stream_error.sse", LLM_ERR_SERVER, "T:Once upon\n",
         "The server had an error while processing your request. Sorry about that!"},
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(rows); i++) {
        enum llm_errclass cls;
        char msg[PROVIDER_MSG_MAX] = "";
        char *log = run_stream(rows[i].fixture, &cls, msg, sizeof msg);
        assert_int_equal(cls, rows[i].cls);
        assert_string_equal(log, rows[i].log);
        assert_string_equal(msg, rows[i].msg);
        free(log);
    }
}

/* Logs what the plain recorder leaves out: text kinds, logprobs, fingerprint and tier. */
static int record_extras(void *ctx, const struct llm_event *ev)
{
    struct buf *b = ctx;
    if (ev->type == LLM_EV_TEXT)
        buf_printf(b, "%s:%.*s\n", llm_text_kind_field(ev->kind), (int)ev->len, ev->text);
    if (ev->type == LLM_EV_TEXT && ev->logprobs)
        buf_printf(b, "logprobs:%.*s\n", (int)ev->logprobs_len, ev->logprobs);
    if (ev->type == LLM_EV_TOOL_CALL)
        buf_printf(b, "call:%s:%s\n", ev->id, ev->name);
    if (ev->type == LLM_EV_TOOL_ARGS)
        buf_printf(b, "args:%.*s\n", (int)ev->len, ev->text);
    if (ev->type == LLM_EV_FINISH)
        buf_printf(b, "finish:%s fp=%s tier=%s\n", llm_finish_name(ev->finish),
                   ev->system_fingerprint ? ev->system_fingerprint : "-",
                   ev->service_tier ? ev->service_tier : "-");
    return 0;
}

static void test_openai_passes_refusal_reasoning_logprobs_and_fingerprint(void **state)
{
    (void)state;
    static const struct {
        const char *fixture;
        bool stream;
        const char *log;
    } rows[] = {
        {"full_refusal.json", false,
         "refusal:I'm sorry, I cannot help with that.\nfinish:stop fp=fp_ref tier=default\n"},
        {"stream_refusal.sse", true,
         "refusal:I'm sorry, \nrefusal:I cannot help with that.\n"
         "finish:stop fp=fp_ref tier=default\n"},
        {"full_reasoning.json", false,
         "reasoning_content:Six times seven.\ncontent:42\n"
         "logprobs:{\"content\":[{\"token\":\"42\",\"logprob\":-0.01,\"bytes\":[52,50],"
         "\"top_logprobs\":[]}]}\nfinish:stop fp=fp_ds tier=flex\n"},
        {"stream_reasoning.sse", true,
         "reasoning_content:Think\ncontent:42\n"
         "logprobs:{\"content\":[{\"token\":\"42\",\"logprob\":-0.01,\"bytes\":[52,50],"
         "\"top_logprobs\":[]}]}\nreasoning:or\nfinish:stop fp=fp_ds tier=-\n"},
        {"full_legacy_tools.json", false,
         "call:call_0:get_weather\nargs:{\"city\":\"Paris\"}\ncall:call_1:get_time\n"
         "args:{\"tz\":\"CET\"}\nfinish:tool_calls fp=- tier=-\n"},
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(rows); i++) {
        size_t len;
        char *body = read_fixture(rows[i].fixture, &len);
        struct buf log;
        buf_init(&log);
        struct llm_sink sink = {record_extras, &log};
        struct provider_call *c = provider_call_new(&provider_openai, rows[i].stream, &sink, NULL);
        provider_call_on_status(c, 200);
        provider_call_on_header(c, "content-type",
                                rows[i].stream ? "text/event-stream" : "application/json", 0);
        provider_call_on_data(c, body, len);
        assert_int_equal(provider_call_finish(c, LLM_ERR_NONE, NULL), LLM_ERR_NONE);
        assert_string_equal(buf_str(&log), rows[i].log);
        provider_call_free(c);
        buf_cleanup(&log);
        free(body);
    }
}

static void test_openai_stream_maps_provider_tool_indices_to_our_order(void **state)
{
    (void)state;
    static const char *const events[] = {
        "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":3,\"id\":\"c3\","
        "\"function\":{\"name\":\"a\",\"arguments\":\"{\"}}]}}]}",
        "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"c1\","
        "\"function\":{\"name\":\"b\"}}]}}]}",
        "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":3,\"function\":{"
        "\"arguments\":\"}\"}}]}}]}",
        /* no index at all (some compatible servers): a new id starts a call */
        "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"id\":\"cx\",\"function\":{\"name\":\"c\","
        "\"arguments\":\"{}\"}}]}}]}",
        "{\"choices\":[{\"index\":1,\"delta\":{\"content\":\"ignored: second choice\"}}]}",
        "[DONE]",
    };
    struct buf log;
    char msg[PROVIDER_MSG_MAX];
    void *st = provider_openai.stream_new();
    buf_init(&log);
    struct llm_sink sink = {record, &log};
    for (size_t i = 0; i < SB_ARRAY_LEN(events); i++) {
        struct sse_event ev = {.data = events[i], .data_len = strlen(events[i])};
        assert_int_equal(provider_openai.stream_event(st, &ev, &sink, msg, sizeof msg),
                         LLM_ERR_NONE);
    }
    assert_int_equal(provider_openai.stream_end(st, true, &sink, msg, sizeof msg), LLM_ERR_NONE);
    assert_string_equal(buf_str(&log), "C0:c3:a\nA0:{\nC1:c1:b\nA0:}\nC2:cx:c\nA2:{}\nF:none\n");
    provider_openai.stream_free(st);
    provider_openai.stream_free(NULL);
    buf_cleanup(&log);
}

static void test_openai_stream_rejects_events_that_are_not_json(void **state)
{
    (void)state;
    char msg[PROVIDER_MSG_MAX];
    void *st = provider_openai.stream_new();
    struct buf log;
    buf_init(&log);
    struct llm_sink sink = {record, &log};
    struct sse_event ev = {.data = "<html>", .data_len = 6};
    assert_int_equal(provider_openai.stream_event(st, &ev, &sink, msg, sizeof msg),
                     LLM_ERR_BAD_RESPONSE);
    assert_string_equal(msg, "stream event is not a JSON object");
    provider_openai.stream_free(st);
    buf_cleanup(&log);
}

/* ---- Error classification --------------------------------------------------------------- */

static void test_openai_classifies_error_responses(void **state)
{
    (void)state;
    static const struct {
        long status;
        const char *fixture; /* NULL: inline body */
        const char *body;
        enum llm_errclass cls;
        const char *msg;
    } rows[] = {
        {400, "error_400_context.json", NULL, LLM_ERR_CONTEXT_LENGTH,
         "This model's maximum context length is 128000 tokens. However, your messages "
         "resulted in 130542 tokens. Please reduce the length of the messages."},
        {400, "error_400_vllm.json", NULL, LLM_ERR_CONTEXT_LENGTH, NULL},
        {400, NULL,
         "{\"error\":{\"message\":\"Invalid 'temperature'\",\"type\":"
         "\"invalid_request_error\",\"code\":null}}",
         LLM_ERR_BAD_REQUEST, "Invalid 'temperature'"},
        {401, "error_401.json", NULL, LLM_ERR_AUTH, NULL},
        {429, "error_429.json", NULL, LLM_ERR_RATE_LIMIT, NULL},
        {429, "error_429_quota.json", NULL, LLM_ERR_RATE_LIMIT,
         "insufficient quota: You exceeded your current quota, please check your plan and "
         "billing details."},
        {500, "error_500.json", NULL, LLM_ERR_SERVER, NULL},
        {503, NULL, "", LLM_ERR_SERVER, "HTTP 503"},
        {502, "error_502.html", NULL, LLM_ERR_SERVER, "HTTP 502"},
        {529, NULL, "{\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}",
         LLM_ERR_OVERLOADED, "Overloaded"},
        {503, NULL, "{\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}",
         LLM_ERR_OVERLOADED, "Overloaded"},
        {404, NULL, "{\"detail\":\"Not Found\"}", LLM_ERR_BAD_REQUEST, "Not Found"},
        {429, NULL, "{\"error\":\"too many tokens per minute\"}", LLM_ERR_RATE_LIMIT, NULL},
        {408, NULL, "{\"error\":{\"message\":\"\",\"type\":\"timeout\"}}", LLM_ERR_SERVER,
         "timeout"},
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(rows); i++) {
        size_t len = rows[i].body ? strlen(rows[i].body) : 0;
        char *body = rows[i].fixture ? read_fixture(rows[i].fixture, &len) : NULL;
        char msg[PROVIDER_MSG_MAX] = "";
        struct llm_error_info info;
        llm_error_info_init(&info);
        enum llm_errclass cls = provider_openai.classify(rows[i].status, body ? body : rows[i].body,
                                                         len, &info, msg, sizeof msg);
        if (cls != rows[i].cls)
            fail_msg("row %zu: got %s", i, llm_errclass_name(cls));
        if (rows[i].msg)
            assert_string_equal(msg, rows[i].msg);
        else
            assert_true(msg[0] != '\0');
        free(body);
    }
}

static void test_openai_error_keeps_the_providers_type_code_and_param(void **state)
{
    static const char ctx[] = "{\"error\":{\"message\":\"This model's maximum context length is "
                              "8192 tokens.\",\"type\":\"invalid_request_error\",\"param\":"
                              "\"messages\",\"code\":\"context_length_exceeded\"}}";
    static const char numeric[] = "{\"error\":{\"message\":\"busy\",\"code\":503}}";
    struct llm_error_info info;
    char msg[PROVIDER_MSG_MAX];
    size_t len = 0;
    char *body = read_fixture("error_401.json", &len);
    (void)state;
    llm_error_info_init(&info);
    assert_int_equal(provider_openai.classify(401, body, len, &info, msg, sizeof msg),
                     LLM_ERR_AUTH);
    assert_string_equal(info.type, "invalid_request_error");
    assert_string_equal(info.code, "invalid_api_key");
    assert_string_equal(info.param, "");
    free(body);
    llm_error_info_init(&info);
    assert_int_equal(provider_openai.classify(400, ctx, strlen(ctx), &info, msg, sizeof msg),
                     LLM_ERR_CONTEXT_LENGTH);
    assert_string_equal(info.type, "invalid_request_error");
    assert_string_equal(info.code, "context_length_exceeded");
    assert_string_equal(info.param, "messages");
    llm_error_info_init(&info);
    provider_openai.classify(503, numeric, strlen(numeric), &info, msg, sizeof msg);
    assert_string_equal(info.type, "server_error"); /* none given: the status's */
    assert_string_equal(info.code, "503");
    llm_error_info_init(&info);
    provider_openai.classify(404, "<html>", 6, &info, msg, sizeof msg);
    assert_string_equal(info.type, "");
}

/* ---- The gateway's request parser --------------------------------------------------------- */

static void test_openai_request_parse_reads_every_supported_field(void **state)
{
    (void)state;
    size_t len;
    char *body = read_fixture("request_full.json", &len);
    struct llm_request req;
    char msg[PROVIDER_MSG_MAX] = "";
    llm_request_init(&req);
    assert_int_equal(openai_request_parse(body, len, &req, msg, sizeof msg), SB_OK);
    assert_string_equal(req.model, "smart");
    assert_int_equal(req.n_messages, 4);
    assert_int_equal(req.messages[0].role, LLM_ROLE_SYSTEM);
    assert_string_equal(req.messages[0].content, "Be brief.");
    assert_int_equal(req.messages[1].role, LLM_ROLE_USER);
    assert_null(req.messages[1].name);
    assert_int_equal(req.messages[2].role, LLM_ROLE_ASSISTANT);
    assert_null(req.messages[2].content);
    assert_int_equal(req.messages[2].n_tool_calls, 1);
    assert_string_equal(req.messages[2].tool_calls[0].id, "call_1");
    assert_string_equal(req.messages[2].tool_calls[0].name, "get_weather");
    assert_string_equal(req.messages[2].tool_calls[0].arguments, "{\"city\":\"Paris\"}");
    assert_int_equal(req.messages[3].role, LLM_ROLE_TOOL);
    assert_string_equal(req.messages[3].tool_call_id, "call_1");
    assert_string_equal(req.messages[3].name, "get_weather");
    assert_string_equal(req.messages[3].content, "18C");
    assert_int_equal(req.n_tools, 1);
    assert_string_equal(req.tools[0].description, "Weather");
    assert_string_equal(req.tools[0].parameters_json,
                        "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}");
    assert_int_equal(req.tool_choice, LLM_TOOL_CHOICE_REQUIRED);
    assert_true(req.stream);
    assert_true(req.include_usage);
    assert_int_equal(req.max_tokens, 200); /* max_completion_tokens wins */
    assert_true(req.has_temperature);
    assert_true(req.temperature == 0.5);
    assert_true(req.has_top_p);
    assert_int_equal(req.n_stop, 1);
    assert_string_equal(req.stop[0], "END");
    assert_string_equal(req.user, "u-7");
    llm_request_cleanup(&req);
    free(body);
}

/* Parsing a golden provider body and encoding it again gives the same JSON. */
static void test_openai_request_parse_round_trips_through_encode(void **state)
{
    (void)state;
    static const char *const goldens[] = {
        "encode_plain.json",
        "encode_tools.json",
        "encode_tool_result.json",
        "encode_stream.json",
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(goldens); i++) {
        size_t len;
        char *body = read_fixture(goldens[i], &len);
        struct llm_request req;
        struct http_request out;
        struct config_target t = target(NULL);
        char msg[PROVIDER_MSG_MAX] = "";
        llm_request_init(&req);
        http_request_init(&out);
        if (openai_request_parse(body, len, &req, msg, sizeof msg) != SB_OK)
            fail_msg("%s: %s", goldens[i], msg);
        assert_int_equal(provider_openai.encode(&t, &req, &out, msg, sizeof msg), SB_OK);
        assert_json_equals_fixture(out.body, goldens[i]);
        http_request_cleanup(&out);
        llm_request_cleanup(&req);
        free(body);
    }
}

/* The messages are written without a cJSON tree: a long history whose texts hold every byte
 * from 1 to 255 (control characters, quotes, backslashes, UTF-8) comes back from the encoded
 * body as it went in, every role in place, a tool result's id and an assistant's tool call
 * included, and the tree-printed members after the messages still parse. */
static void test_openai_encodes_a_long_history_by_value(void **state)
{
    (void)state;
    char text[256];
    for (int b = 1; b < 256; b++)
        text[b - 1] = (char)b;
    text[255] = '\0';
    struct llm_request req;
    llm_request_init(&req);
    req.max_tokens = 7;
    for (size_t i = 0; i < 3000; i++)
        llm_request_add_message(&req, i % 2 ? LLM_ROLE_ASSISTANT : LLM_ROLE_USER, text);
    struct llm_message *tc = llm_request_add_message(&req, LLM_ROLE_ASSISTANT, NULL);
    tc->tool_calls = xcalloc(1, sizeof *tc->tool_calls);
    tc->n_tool_calls = 1;
    tc->tool_calls[0].id = xstrdup("call_9");
    tc->tool_calls[0].name = xstrdup("f");
    tc->tool_calls[0].arguments = xstrdup("{\"q\":\"\\n\"}");
    llm_request_add_message(&req, LLM_ROLE_TOOL, text)->tool_call_id = xstrdup("call_9");
    struct http_request out;
    http_request_init(&out);
    struct config_target t = target(NULL);
    char msg[PROVIDER_MSG_MAX] = "";
    assert_int_equal(provider_openai.encode(&t, &req, &out, msg, sizeof msg), SB_OK);
    assert_int_equal(out.body_len, strlen(out.body));
    cJSON *root = cJSON_Parse(out.body);
    assert_non_null(root);
    const cJSON *msgs = cJSON_GetObjectItem(root, "messages");
    assert_int_equal(cJSON_GetArraySize(msgs), (int)req.n_messages);
    for (size_t i = 0; i < 3000; i++) {
        const cJSON *m = cJSON_GetArrayItem(msgs, (int)i);
        assert_string_equal(cJSON_GetObjectItem(m, "role")->valuestring,
                            i % 2 ? "assistant" : "user");
        assert_string_equal(cJSON_GetObjectItem(m, "content")->valuestring, text);
    }
    const cJSON *a = cJSON_GetArrayItem(msgs, 3000);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(a, "content")));
    const cJSON *fn = cJSON_GetObjectItem(
        cJSON_GetArrayItem(cJSON_GetObjectItem(a, "tool_calls"), 0), "function");
    assert_string_equal(cJSON_GetObjectItem(fn, "arguments")->valuestring, "{\"q\":\"\\n\"}");
    const cJSON *r = cJSON_GetArrayItem(msgs, 3001);
    assert_string_equal(cJSON_GetObjectItem(r, "tool_call_id")->valuestring, "call_9");
    assert_string_equal(cJSON_GetObjectItem(r, "content")->valuestring, text);
    assert_int_equal(cJSON_GetObjectItem(root, "max_tokens")->valueint, 7);
    cJSON_Delete(root);
    http_request_cleanup(&out);
    llm_request_cleanup(&req);
}

static void test_openai_request_parse_rejects_with_the_field_name(void **state)
{
    (void)state;
#define MSGS "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"
#define X16  "xxxxxxxxxxxxxxxx"
#define LONG_MODEL                                                                                 \
    X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 /* 1 + 256 characters */
    static const struct {
        const char *body;
        enum sb_status st;
        const char *msg;
    } rows[] = {
        {"{\"model\":", SB_ERR_PARSE, "request body is not valid JSON"},
        {"[1,2]", SB_ERR_INVALID, "request body: expected a JSON object"},
        {"{" MSGS "}", SB_ERR_INVALID, "model: required"},
        {"{\"model\":7," MSGS "}", SB_ERR_INVALID, "model: expected a non-empty string"},
        {"{\"model\":\"m\"}", SB_ERR_INVALID, "messages: required (a non-empty array)"},
        {"{\"model\":\"m\",\"messages\":[]}", SB_ERR_INVALID,
         "messages: expected a non-empty array"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"},"
         "{\"role\":\"user\",\"content\":5}]}",
         SB_ERR_INVALID, "messages[1].content: expected a string or an array of text parts"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
         "\"image_url\":{\"url\":\"x\"}}]}]}",
         SB_ERR_UNSUPPORTED,
         "messages[0].content[0].type: \"image_url\" is not supported (text "
         "only)"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"x\"}]}]}",
         SB_ERR_INVALID, "messages[0].content: expected a string or an array of text parts"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}",
         SB_ERR_UNSUPPORTED,
         "messages[0].role: \"wizard\" is not supported (system, developer, user, assistant, "
         "tool)"},
        {"{\"model\":\"m\",\"messages\":[{\"content\":\"x\"}]}", SB_ERR_INVALID,
         "messages[0].role: expected a string"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}]}", SB_ERR_INVALID,
         "messages[0].content: required"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}", SB_ERR_INVALID,
         "messages[0].tool_call_id: required for role \"tool\""},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"a\","
         "\"type\":\"function\",\"function\":{}}]}]}",
         SB_ERR_INVALID, "messages[0].tool_calls[0].function.name: expected a non-empty string"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\",\"tool_calls\":[]}]}",
         SB_ERR_INVALID, "messages[0].tool_calls: only assistant messages carry tool calls"},
        {"{\"model\":\"m\"," MSGS ",\"n\":2}", SB_ERR_UNSUPPORTED, "n: only 1 is supported"},
        {"{\"model\":\"m\"," MSGS ",\"temperature\":3}", SB_ERR_INVALID,
         "temperature: expected a number between 0 and 2"},
        {"{\"model\":\"m\"," MSGS ",\"top_p\":\"high\"}", SB_ERR_INVALID,
         "top_p: expected a number between 0 and 1"},
        {"{\"model\":\"m\"," MSGS ",\"max_tokens\":0}", SB_ERR_INVALID,
         "max_tokens: expected an integer >= 1"},
        {"{\"model\":\"m\"," MSGS ",\"max_completion_tokens\":1.5}", SB_ERR_INVALID,
         "max_completion_tokens: expected an integer >= 1"},
        {"{\"model\":\"m\"," MSGS ",\"stream\":\"yes\"}", SB_ERR_INVALID,
         "stream: expected a boolean"},
        {"{\"model\":\"m\"," MSGS ",\"stop\":[1]}", SB_ERR_INVALID,
         "stop: expected a string or an array of strings"},
        {"{\"model\":\"m\"," MSGS ",\"tools\":[{\"type\":\"web_search\"}]}", SB_ERR_UNSUPPORTED,
         "tools[0].type: only \"function\" is supported"},
        {"{\"model\":\"m\"," MSGS ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":"
         "\"f\",\"parameters\":[]}}]}",
         SB_ERR_INVALID, "tools[0].function.parameters: expected a JSON Schema object"},
        {"{\"model\":\"m\"," MSGS ",\"tool_choice\":\"sometimes\"}", SB_ERR_INVALID,
         "tool_choice: expected \"auto\", \"none\", \"required\" or "
         "{\"type\":\"function\",\"function\":{\"name\":...}}"},
        {"{\"model\":\"m\"," MSGS ",\"tool_choice\":{\"type\":\"function\",\"function\":{"
         "\"name\":\"nope\"}}}",
         SB_ERR_INVALID, "tool_choice.function.name: no tool named \"nope\""},
        {"{\"model\":\"m\"," MSGS ",\"response_format\":{\"type\":\"json_object\"}}",
         SB_ERR_UNSUPPORTED, "response_format: only {\"type\":\"text\"} is supported"},
        {"{\"model\":\"m\"," MSGS ",\"logprobs\":true}", SB_ERR_UNSUPPORTED,
         "logprobs: is not supported"},
        {"{\"model\":\"m\"," MSGS ",\"logit_bias\":{\"50256\":-100}}", SB_ERR_UNSUPPORTED,
         "logit_bias: is not supported"},
        {"{\"model\":\"m\"," MSGS ",\"functions\":[{\"name\":\"f\"}]}", SB_ERR_UNSUPPORTED,
         "functions: is not supported"},
        {"{\"model\":\"m\"," MSGS ",\"stop\":\"a\",\"stop\":\"b\"}", SB_ERR_INVALID,
         "stop: given twice"},
        {"{\"model\":\"m\"," MSGS "," MSGS "}", SB_ERR_INVALID, "messages: given twice"},
        {"{\"model\":\"m\"," MSGS ",\"frobnicate\":1}", SB_ERR_UNSUPPORTED,
         "frobnicate: is not supported"},
        {"{\"model\":\"m\"," MSGS "} trailing", SB_ERR_PARSE,
         "request body: unexpected bytes after the JSON object (at offset 58)"},
        {"{\"model\":\"m\"," MSGS "}\n{\"model\":\"n\"," MSGS "}", SB_ERR_PARSE,
         "request body: unexpected bytes after the JSON object (at offset 58)"},
        {"{\"model\":\"gpt\\u0000evil\"," MSGS "}", SB_ERR_INVALID,
         "request body: a string holds \\u0000 (NUL), which is not supported"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\\u0000b\"}]}",
         SB_ERR_INVALID, "request body: a string holds \\u0000 (NUL), which is not supported"},
        {"{\"model\":\"m" LONG_MODEL "\"," MSGS "}", SB_ERR_INVALID,
         "model: expected at most 256 characters"},
    };
#undef MSGS
#undef LONG_MODEL
#undef X16
    for (size_t i = 0; i < SB_ARRAY_LEN(rows); i++) {
        struct llm_request req;
        char msg[PROVIDER_MSG_MAX] = "";
        llm_request_init(&req);
        enum sb_status st =
            openai_request_parse(rows[i].body, strlen(rows[i].body), &req, msg, sizeof msg);
        if (st != rows[i].st || strcmp(msg, rows[i].msg) != 0)
            fail_msg("row %zu: got %s \"%s\"", i, sb_strerror(st), msg);
        llm_request_cleanup(&req);
    }
}

/* An escaped backslash before "u0000" is text, not a NUL: carried intact. */
static void test_openai_request_parse_keeps_an_escaped_backslash_u0000(void **state)
{
    static const char body[] = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
                               "\"content\":\"a\\\\u0000b \\\"\\\\\\\"\"}]}";
    struct llm_request req;
    char msg[PROVIDER_MSG_MAX] = "";
    (void)state;
    llm_request_init(&req);
    assert_int_equal(openai_request_parse(body, strlen(body), &req, msg, sizeof msg), SB_OK);
    assert_string_equal(req.messages[0].content, "a\\u0000b \"\\\"");
    llm_request_cleanup(&req);
}

static void test_openai_request_parse_accepts_harmless_and_null_fields(void **state)
{
    (void)state;
    static const char body[] =
        "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"s\"},"
        "{\"role\":\"assistant\",\"content\":null},{\"role\":\"user\",\"content\":[]}],"
        "\"seed\":1,\"logit_bias\":{},\"modalities\":[\"text\"],\"metadata\":{\"a\":\"b\"},"
        "\"stream\":null,\"temperature\":null,\"stop\":[\"\",\"x\"],\"audio\":null,"
        "\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"f\"}},"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]} \r\n";
    struct llm_request req;
    char msg[PROVIDER_MSG_MAX] = "";
    llm_request_init(&req);
    assert_int_equal(openai_request_parse(body, strlen(body), &req, msg, sizeof msg), SB_OK);
    assert_string_equal(req.messages[1].content, "");
    assert_string_equal(req.messages[2].content, "");
    assert_false(req.stream);
    assert_false(req.has_temperature);
    assert_int_equal(req.n_stop, 1);
    assert_int_equal(req.tool_choice, LLM_TOOL_CHOICE_NAMED);
    assert_string_equal(req.tool_choice_name, "f");
    assert_null(req.tools[0].parameters_json);
    llm_request_cleanup(&req);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openai_encodes_requests_like_the_golden_files),
        cmocka_unit_test(test_openai_sends_no_authorization_without_a_key),
        cmocka_unit_test(test_openai_encodes_a_long_history_by_value),
        cmocka_unit_test(test_openai_refuses_to_encode_invalid_requests),
        cmocka_unit_test(test_openai_decodes_whole_responses),
        cmocka_unit_test(test_openai_decodes_streams),
        cmocka_unit_test(test_openai_passes_refusal_reasoning_logprobs_and_fingerprint),
        cmocka_unit_test(test_openai_stream_maps_provider_tool_indices_to_our_order),
        cmocka_unit_test(test_openai_stream_rejects_events_that_are_not_json),
        cmocka_unit_test(test_openai_classifies_error_responses),
        cmocka_unit_test(test_openai_error_keeps_the_providers_type_code_and_param),
        cmocka_unit_test(test_openai_request_parse_reads_every_supported_field),
        cmocka_unit_test(test_openai_request_parse_round_trips_through_encode),
        cmocka_unit_test(test_openai_request_parse_rejects_with_the_field_name),
        cmocka_unit_test(test_openai_request_parse_accepts_harmless_and_null_fields),
        cmocka_unit_test(test_openai_request_parse_keeps_an_escaped_backslash_u0000),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
