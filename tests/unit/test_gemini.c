/*
 * test_gemini.c - the Gemini generateContent wire format: encode against golden JSON, decode
 * real-shaped bodies and SSE streams (directly through the ops and through the provider_call
 * glue at many splits), classify error responses. Fixtures: tests/fixtures/gemini/.
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

#define FIXTURES "tests/fixtures/gemini/"
#define KEY      "AIzaSyTESTKEY0123456789abcdefghijklmn"

static const struct provider_ops *const ops = &provider_gemini;

/* ---- helpers ------------------------------------------------------------------------------ */

static char *read_fixture(const char *name, size_t *len)
{
    return read_fixture_in(FIXTURES, name, len);
}

/* ---- request builders --------------------------------------------------------------------- */

static char t_name[] = "gemini", t_base[] = "https://generativelanguage.googleapis.com/v1beta/",
            t_model[] = "gemini-2.5-flash", t_key[] = KEY;

static struct config_target target(void)
{
    struct config_target t;
    memset(&t, 0, sizeof t);
    t.name = t_name;
    t.kind = PROVIDER_GEMINI;
    t.base_url = t_base;
    t.model = t_model;
    t.api_key = t_key;
    t.default_max_tokens = 1024; /* Gemini needs none: never sent */
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

static struct llm_message *add_result(struct llm_request *req, const char *id, const char *content)
{
    struct llm_message *m = llm_request_add_message(req, LLM_ROLE_TOOL, content);
    m->tool_call_id = xstrdup(id);
    return m;
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
    req->user = xstrdup("user-42"); /* no Gemini field: not sent */
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
    llm_request_add_tool(req, "ping", "No arguments", "{\"type\":\"object\",\"properties\":{}}");
    req->tool_choice = LLM_TOOL_CHOICE_AUTO;
    req->max_tokens = 512;
    llm_request_add_message(req, LLM_ROLE_USER, "Weather in Paris and Rome?");
    struct llm_message *a = llm_request_add_message(req, LLM_ROLE_ASSISTANT, "Checking both.");
    add_call(a, "call_a", "get_weather", "{\"city\":\"Paris\"}");
    add_call(a, "call_b", "get_weather", "{\"city\": \"Rome\", \"unit\": \"c\"}");
    add_result(req, "call_a", "18C and sunny")->name = xstrdup("get_weather");
    add_result(req, "call_b", " {\"temp\": 21} "); /* name found through the call id */
    llm_request_add_message(req, LLM_ROLE_USER, "Thanks. And Oslo?");
    add_call(llm_request_add_message(req, LLM_ROLE_ASSISTANT, NULL), "call_c", "list_cities", NULL);
    add_result(req, "call_c", "[\"Oslo\"]"); /* not an object: wrapped */
}

static void build_stream(struct llm_request *req)
{
    llm_request_add_message(req, LLM_ROLE_USER, "Stream please");
    req->max_tokens = 300;
    req->stream = true;
}

/* ---- encode ------------------------------------------------------------------------------- */

#define URL_BASE "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash"

static const struct encode_case {
    const char *name;
    void (*build)(struct llm_request *req);
    const char *golden;
    const char *url;
} encode_cases[] = {
    {"basic: systemInstruction, generationConfig", build_basic, "encode_basic.json",
     URL_BASE ":generateContent"},
    {"systems joined, same-role turns merged", build_merge_turns, "encode_merge_turns.json",
     URL_BASE ":generateContent"},
    {"function calls and responses", build_tools, "encode_tools.json", URL_BASE ":generateContent"},
    {"streaming", build_stream, "encode_stream.json", URL_BASE ":streamGenerateContent?alt=sse"},
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

static void test_gemini_encodes_requests_like_the_golden_files(void **state)
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
        if (!cJSON_Compare(want, got, true))
            print_error("%s: body differs from %s:\n%s\n", ec->name, ec->golden, out.body);
        assert_true(cJSON_Compare(want, got, true));
        assert_string_equal(out.method, "POST");
        assert_string_equal(out.url, ec->url);
        assert_int_equal(out.body_len, strlen(out.body));
        cJSON_Delete(want);
        cJSON_Delete(got);
        free(golden);
        http_request_cleanup(&out);
    }
}

static void test_gemini_encode_sends_the_key_in_a_header_never_the_url(void **state)
{
    (void)state;
    struct config_target t = target();
    struct http_request out;
    encode_ok(&t, build_basic, &out);
    assert_true(has_header(&out, "x-goog-api-key: " KEY));
    assert_true(has_header(&out, "content-type: application/json"));
    assert_false(has_header_prefix(&out, "accept:"));
    assert_null(strstr(out.url, KEY));
    assert_null(strstr(out.url, "key="));
    http_request_cleanup(&out);
}

static void test_gemini_encode_streaming_uses_sse_and_the_same_key_header(void **state)
{
    (void)state;
    struct config_target t = target();
    struct http_request out;
    encode_ok(&t, build_stream, &out);
    assert_string_equal(out.url, URL_BASE ":streamGenerateContent?alt=sse");
    assert_true(has_header(&out, "x-goog-api-key: " KEY));
    assert_true(has_header(&out, "accept: text/event-stream"));
    assert_null(strstr(out.url, KEY));
    http_request_cleanup(&out);
}

static void test_gemini_encode_accepts_a_models_prefix_and_no_key(void **state)
{
    static char prefixed[] = "models/gemini-2.5-flash";
    (void)state;
    struct config_target t = target();
    struct http_request out;
    t.model = prefixed;
    t.api_key = NULL;
    t.base_url = NULL;
    encode_ok(&t, build_basic, &out);
    assert_string_equal(out.url, URL_BASE ":generateContent");
    assert_false(has_header_prefix(&out, "x-goog-api-key:"));
    http_request_cleanup(&out);
}

static void test_gemini_encode_maps_every_tool_choice(void **state)
{
    static const struct {
        enum llm_tool_choice choice;
        const char *want; /* NULL: no toolConfig */
    } cases[] = {
        {LLM_TOOL_CHOICE_UNSET, NULL},
        {LLM_TOOL_CHOICE_AUTO, "{\"functionCallingConfig\":{\"mode\":\"AUTO\"}}"},
        {LLM_TOOL_CHOICE_NONE, "{\"functionCallingConfig\":{\"mode\":\"NONE\"}}"},
        {LLM_TOOL_CHOICE_REQUIRED, "{\"functionCallingConfig\":{\"mode\":\"ANY\"}}"},
        {LLM_TOOL_CHOICE_NAMED, "{\"functionCallingConfig\":{\"mode\":\"ANY\","
                                "\"allowedFunctionNames\":[\"get_weather\"]}}"},
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
        const cJSON *got = cJSON_GetObjectItemCaseSensitive(body, "toolConfig");
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
    add_call(llm_request_add_message(req, LLM_ROLE_ASSISTANT, NULL), "c1", "f", "{city:");
}

static void bad_schema(struct llm_request *req)
{
    llm_request_add_tool(req, "f", NULL, "[]");
    llm_request_add_message(req, LLM_ROLE_USER, "x");
}

static void args_not_object(struct llm_request *req)
{
    llm_request_add_message(req, LLM_ROLE_USER, "x");
    add_call(llm_request_add_message(req, LLM_ROLE_ASSISTANT, NULL), "c1", "f", "{}");
    add_call(&req->messages[1], "c2", "f", "\"Paris\"");
}

static void required_without_tools(struct llm_request *req)
{
    llm_request_add_message(req, LLM_ROLE_USER, "x");
    req->tool_choice = LLM_TOOL_CHOICE_REQUIRED;
}

static void test_gemini_encode_rejects_what_it_cannot_express(void **state)
{
    static const struct {
        void (*build)(struct llm_request *req);
        const char *msg;
    } cases[] = {
        {bad_args,
         "messages[1].tool_calls[0].function.arguments (tool call \"c1\"): not valid JSON"},
        {args_not_object,
         "messages[1].tool_calls[1].function.arguments (tool call \"c2\"): not a JSON object"},
        {bad_schema, "tools[0].parameters: expected a JSON object"},
        {required_without_tools, "tool_choice: requires tools"},
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
        assert_int_equal(out.n_headers, 0);
        http_request_cleanup(&out);
        llm_request_cleanup(&req);
    }
}

/* A client trimmed the call from its history: the result still reaches the model, as text
 * naming the call, and the functionResponse/functionCall pairs that remain stay intact. */
static void test_gemini_encode_sends_a_result_whose_call_was_trimmed_as_text(void **state)
{
    (void)state;
    struct config_target t = target();
    struct llm_request req;
    struct http_request out;
    char msg[PROVIDER_MSG_MAX] = "";
    llm_request_init(&req);
    http_request_init(&out);
    llm_request_add_message(&req, LLM_ROLE_USER, "x");
    add_result(&req, "c0__thought_sig__abc", "41"); /* its call was trimmed */
    add_call(llm_request_add_message(&req, LLM_ROLE_ASSISTANT, NULL), "c1", "f", "{}");
    add_result(&req, "c1", "42");
    assert_int_equal(ops->encode(&t, &req, &out, msg, sizeof msg), SB_OK);
    cJSON *body = cJSON_Parse(out.body);
    cJSON *want = cJSON_Parse(
        "[{\"role\":\"user\",\"parts\":[{\"text\":\"x\"},{\"text\":\"Result of tool call c0 (the "
        "call is no longer in this conversation): 41\"}]},{\"role\":\"model\",\"parts\":[{"
        "\"functionCall\":{\"name\":\"f\",\"args\":{}}}]},{\"role\":\"user\",\"parts\":[{"
        "\"functionResponse\":{\"name\":\"f\",\"response\":{\"content\":\"42\"}}}]}]");
    assert_true(cJSON_Compare(want, cJSON_GetObjectItem(body, "contents"), true));
    cJSON_Delete(want);
    cJSON_Delete(body);
    http_request_cleanup(&out);
    llm_request_cleanup(&req);
}

static void test_gemini_encode_refuses_a_model_id_that_would_bend_the_url(void **state)
{
    static char odd[] = "gemini-2.5-flash:generateContent?key=x#";
    (void)state;
    struct config_target t = target();
    struct llm_request req;
    struct http_request out;
    char msg[PROVIDER_MSG_MAX] = "";
    t.model = odd;
    llm_request_init(&req);
    http_request_init(&out);
    build_basic(&req);
    assert_int_equal(ops->encode(&t, &req, &out, msg, sizeof msg), SB_ERR_INVALID);
    assert_non_null(strstr(msg, "expected letters, digits"));
    assert_int_equal(ops->encode_probe(&t, &out, msg, sizeof msg), SB_ERR_INVALID);
    assert_null(out.url);
    http_request_cleanup(&out);
    llm_request_cleanup(&req);
}

/* ---- thought signatures ------------------------------------------------------------------- */

#define SIG "CiQB0e2Kb2dWl8Dh+/x="
/* How a signed tool call id looks to clients (src/provider/wire.h). */
#define WIRE_SIG_SEP "__thought_sig__"

/* History as a client sends it back after a Gemini answer with two parallel calls, the first
 * signed (its id carries the signature), then a turn whose call came from another provider. */
static void build_signed_history(struct llm_request *req)
{
    llm_request_add_tool(req, "get_weather", NULL, weather_schema);
    llm_request_add_message(req, LLM_ROLE_USER, "Weather in Paris and Rome?");
    struct llm_message *a = llm_request_add_message(req, LLM_ROLE_ASSISTANT, NULL);
    add_call(a, "call_0" WIRE_SIG_SEP SIG, "get_weather", "{\"city\":\"Paris\"}");
    add_call(a, "call_1", "get_weather", "{\"city\":\"Rome\"}");
    add_result(req, "call_0" WIRE_SIG_SEP SIG, "{\"temp\":18}");
    add_result(req, "call_1", "{\"temp\":21}");
    llm_request_add_message(req, LLM_ROLE_USER, "And Oslo?");
    add_call(llm_request_add_message(req, LLM_ROLE_ASSISTANT, NULL), "toolu_9", "get_weather",
             "{\"city\":\"Oslo\"}");
    add_result(req, "toolu_9", "{\"temp\":4}");
}

/* The signatures of the model turns' function call parts, in order ("-" for none). */
static void signatures_of(const char *body, struct buf *out)
{
    cJSON *root = cJSON_Parse(body);
    assert_non_null(root);
    const cJSON *turn, *part;
    cJSON_ArrayForEach(turn, cJSON_GetObjectItem(root, "contents"))
    {
        cJSON_ArrayForEach(part, cJSON_GetObjectItem(turn, "parts"))
        {
            if (!cJSON_GetObjectItem(part, "functionCall"))
                continue;
            const cJSON *sig = cJSON_GetObjectItem(part, "thoughtSignature");
            buf_printf(out, "%s;", cJSON_IsString(sig) ? sig->valuestring : "-");
        }
    }
    cJSON_Delete(root);
}

static void test_gemini_sends_thought_signatures_back(void **state)
{
    static char gemini3[] = "models/gemini-3-pro-preview";
    (void)state;
    struct config_target t = target();
    struct http_request out;
    struct buf sigs;
    buf_init(&sigs);
    /* Gemini 2.5: the signature Gemini gave goes back on its part; no id is sent. */
    encode_ok(&t, build_signed_history, &out);
    signatures_of(out.body, &sigs);
    assert_string_equal(buf_str(&sigs), SIG ";-;-;");
    assert_null(strstr(out.body, WIRE_SIG_SEP));
    assert_null(strstr(out.body, "call_0"));
    http_request_cleanup(&out);
    /* Gemini 3 rejects a turn whose first call has none: Google's skip value fills in. */
    t.model = gemini3;
    encode_ok(&t, build_signed_history, &out);
    buf_cleanup(&sigs);
    buf_init(&sigs);
    signatures_of(out.body, &sigs);
    assert_string_equal(buf_str(&sigs), SIG ";-;skip_thought_signature_validator;");
    http_request_cleanup(&out);
    buf_cleanup(&sigs);
}

/* Encodes build's request for an OpenAI or Anthropic target; asserts it is accepted. */
static void encode_other(enum provider_kind kind, void (*build)(struct llm_request *),
                         struct http_request *out)
{
    static char name[] = "other", base[] = "https://api.example.com/v1", model[] = "m",
                version[] = "2023-06-01";
    struct config_target t;
    memset(&t, 0, sizeof t);
    t.name = name;
    t.kind = kind;
    t.base_url = base;
    t.model = model;
    t.anthropic_version = version;
    t.default_max_tokens = 256;
    struct llm_request req;
    char msg[PROVIDER_MSG_MAX] = "";
    llm_request_init(&req);
    build(&req);
    http_request_init(out);
    assert_int_equal(provider_ops_for(kind)->encode(&t, &req, out, msg, sizeof msg), SB_OK);
    llm_request_cleanup(&req);
}

/* The other adapters send the ids without the signature, calls and results alike. */
static void test_gemini_signatures_stay_out_of_other_providers_requests(void **state)
{
    (void)state;
    const enum provider_kind others[] = {PROVIDER_OPENAI, PROVIDER_ANTHROPIC};
    for (size_t i = 0; i < SB_ARRAY_LEN(others); i++) {
        struct http_request out;
        encode_other(others[i], build_signed_history, &out);
        assert_null(strstr(out.body, WIRE_SIG_SEP));
        assert_null(strstr(out.body, "CiQB0e2Kb2dWl8Dh"));
        const char *first = strstr(out.body, "\"call_0\"");
        assert_non_null(first);                           /* the call... */
        assert_non_null(strstr(first + 1, "\"call_0\"")); /* ...and its result */
        http_request_cleanup(&out);
    }
}

/* Ids that merely contain the separator, with nothing before or after it, are plain ids:
 * every adapter sends them whole (found by fuzz_openai_request: an id stripped to ""). */
static void build_lookalike_ids(struct llm_request *req)
{
    llm_request_add_tool(req, "get_weather", NULL, weather_schema);
    llm_request_add_message(req, LLM_ROLE_USER, "Weather?");
    struct llm_message *a = llm_request_add_message(req, LLM_ROLE_ASSISTANT, NULL);
    add_call(a, WIRE_SIG_SEP "lead", "get_weather", "{\"city\":\"Paris\"}");
    add_call(a, "tail" WIRE_SIG_SEP, "get_weather", "{\"city\":\"Rome\"}");
    add_result(req, WIRE_SIG_SEP "lead", "{\"temp\":18}");
    add_result(req, "tail" WIRE_SIG_SEP, "{\"temp\":21}");
}

static void test_gemini_ids_that_only_look_signed_pass_through(void **state)
{
    (void)state;
    struct config_target t = target();
    struct http_request out;
    struct buf sigs;
    buf_init(&sigs);
    encode_ok(&t, build_lookalike_ids, &out);
    signatures_of(out.body, &sigs);
    assert_string_equal(buf_str(&sigs), "-;-;");
    http_request_cleanup(&out);
    buf_cleanup(&sigs);
    encode_other(PROVIDER_OPENAI, build_lookalike_ids, &out);
    assert_non_null(strstr(out.body, "\"tool_call_id\":\"" WIRE_SIG_SEP "lead\""));
    assert_non_null(strstr(out.body, "\"tool_call_id\":\"tail" WIRE_SIG_SEP "\""));
    http_request_cleanup(&out);
}

static void test_gemini_probe_gets_the_model_with_the_key_header(void **state)
{
    (void)state;
    struct config_target t = target();
    struct http_request out;
    char msg[PROVIDER_MSG_MAX];
    http_request_init(&out);
    assert_int_equal(ops->encode_probe(&t, &out, msg, sizeof msg), SB_OK);
    assert_string_equal(out.method, "GET");
    assert_string_equal(out.url, URL_BASE);
    assert_null(out.body);
    assert_true(has_header(&out, "x-goog-api-key: " KEY));
    http_request_cleanup(&out);
}

/* ---- decode a whole body ------------------------------------------------------------------ */

static const struct decode_case {
    const char *fixture;
    const char *want;
} full_cases[] = {
    {"full_ok.json", "text:Hello! How can I help you today?\nusage:8/10/0\nfinish:stop\n"},
    {"full_tool_call.json", "text:Let me check.\n"
                            "call:0:call_0__thought_sig__CiQB0e2Kb2dWl8Dh:get_weather\n"
                            "args:0:{\"city\":\"Paris\",\"unit\":\"c\"}\n"
                            "call:1:fc_7:get_time\nargs:1:{}\n"
                            "usage:120/25/0\nfinish:tool_calls\n"},
    {"full_no_usage.json", "text:No usage here.\nfinish:stop\n"},
    {"full_malformed.json", "error:bad_response:response body is not a JSON object\n"},
    {"full_cache.json", "text:Per the cached file, yes.\nusage:2100/150/2000\nfinish:stop\n"},
    {"full_safety_block.json", "usage:12/0/0\nfinish:content_filter\n"},
    {"full_safety_finish.json", "usage:9/0/0\nfinish:content_filter\n"},
    {"full_max_tokens.json", "text:Once upon a\nusage:5/3/0\nfinish:length\n"},
    {"full_malformed_function_call.json", "usage:50/0/0\nfinish:error\n"},
    {"full_thought.json", "text:The answer is 4.\nusage:7/50/0\nfinish:stop\n"},
    {"full_unknown_finish.json", "text:ok\nfinish:stop\n"},
    {"full_no_candidates.json", "usage:3/0/0\nfinish:content_filter\n"},
    {"full_blocked_no_reason.json", "usage:12/0/0\nfinish:content_filter\n"},
    {"full_blocked_vertex.json", "refusal:Prompt blocked due to prohibited content.\n"
                                 "usage:7/0/0\nfinish:content_filter\n"},
    {"full_empty_object.json", "error:bad_response:response has no candidates\n"},
    {"full_bad_cache.json", "text:x\nusage:10/0/10\nfinish:stop\n"},
    {"full_array.json", "text:Hel\ntext:lo\ncall:0:call_0:wave\nargs:0:{\"times\":2}\n"
                        "usage:4/6/0\nfinish:tool_calls\n"},
    {"full_error_body.json", "error:overloaded:The model is overloaded. Please try again later.\n"},
};

static void test_gemini_decodes_whole_bodies(void **state)
{
    (void)state;
    for (size_t i = 0; i < SB_ARRAY_LEN(full_cases); i++) {
        size_t len;
        char *body = read_fixture(full_cases[i].fixture, &len);
        struct rec r;
        run_full_direct(ops, body, len, &r);
        expect_log(full_cases[i].fixture, &r, full_cases[i].want);
        buf_cleanup(&r.log);
        run_glue(ops, KEY, false, 200, "application/json; charset=UTF-8", body, len, 0, &r);
        expect_log(full_cases[i].fixture, &r, full_cases[i].want);
        buf_cleanup(&r.log);
        run_glue(ops, KEY, true, 200, "application/json", body, len, 5, &r);
        expect_log(full_cases[i].fixture, &r, full_cases[i].want);
        buf_cleanup(&r.log);
        free(body);
    }
}

static void test_gemini_decode_stops_when_the_sink_asks(void **state)
{
    (void)state;
    size_t len;
    char *body = read_fixture("full_tool_call.json", &len);
    struct llm_sink sink;
    struct rec r;
    char msg[PROVIDER_MSG_MAX];
    rec_init(&r, &sink);
    r.stop_after = 2;
    assert_int_equal(ops->decode_full(body, len, &sink, msg, sizeof msg), LLM_ERR_CANCELLED);
    assert_string_equal(
        buf_str(&r.log),
        "text:Let me check.\ncall:0:call_0__thought_sig__CiQB0e2Kb2dWl8Dh:get_weather\n");
    buf_cleanup(&r.log);
    free(body);
}

/* ---- decode a stream ---------------------------------------------------------------------- */

static const struct decode_case stream_cases[] = {
    {"stream_text.sse", "text:Hello\ntext:, world\ntext:!\nusage:6/4/0\nfinish:stop\n"},
    {"stream_tool_call.sse",
     "text:Checking.\n"
     "call:0:call_0__thought_sig__CiQB0e2Kb2dWl8Dh:get_weather\nargs:0:{\"city\":\"Paris\"}\n"
     "call:1:call_1:get_time\nargs:1:{\"tz\":\"Europe/Paris\"}\n"
     "usage:80/43/0\nfinish:tool_calls\n"},
    {"stream_truncated.sse", "text:Once upon\ntext: a time\n"
                             "error:truncated:stream ended without a finishReason\n"},
    {"stream_no_usage.sse", "text:quiet\ntext:ly\nfinish:stop\n"},
    {"stream_error.sse", "text:Partial\nerror:server:An internal error has occurred. Please "
                         "retry or report in "
                         "https://developers.generativeai.google/guide/troubleshooting\n"},
    {"stream_blocked.sse", "usage:15/0/0\nfinish:content_filter\n"},
    {"stream_blocked_no_reason.sse", "usage:15/0/0\nfinish:content_filter\n"},
    {"stream_malformed.sse", "text:ok\nerror:bad_response:stream chunk is not a JSON object\n"},
    {"stream_usage_after_finish.sse", "text:Done.\nusage:11/2/0\nfinish:length\n"},
    {"stream_thoughts.sse", "text:Answer.\nusage:9/32/0\nfinish:stop\n"},
};

static void test_gemini_decodes_streams_through_stream_event(void **state)
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

static void test_gemini_decodes_streams_through_the_glue_at_any_split(void **state)
{
    static const unsigned splits[] = {0, 1, 2, 7, 1234, 99991};
    (void)state;
    for (size_t i = 0; i < SB_ARRAY_LEN(stream_cases); i++) {
        size_t len;
        char *body = read_fixture(stream_cases[i].fixture, &len);
        for (size_t s = 0; s < SB_ARRAY_LEN(splits); s++) {
            struct rec r;
            run_glue(ops, KEY, true, 200, "text/event-stream", body, len, splits[s], &r);
            expect_log(stream_cases[i].fixture, &r, stream_cases[i].want);
            buf_cleanup(&r.log);
        }
        free(body);
    }
}

static void test_gemini_stream_error_chunks_map_to_classes(void **state)
{
    static const struct {
        const char *data;
        enum llm_errclass want;
    } cases[] = {
        {"{\"error\":{\"code\":429,\"message\":\"m\",\"status\":\"RESOURCE_EXHAUSTED\"}}",
         LLM_ERR_RATE_LIMIT},
        {"{\"error\":{\"code\":503,\"message\":\"m\",\"status\":\"UNAVAILABLE\"}}", LLM_ERR_SERVER},
        {"{\"error\":{\"code\":500,\"message\":\"m\"}}", LLM_ERR_SERVER},
        {"{\"error\":{\"message\":\"m\"}}", LLM_ERR_SERVER},
        {"{\"error\":{\"code\":400,\"message\":\"m\",\"status\":\"INVALID_ARGUMENT\"}}",
         LLM_ERR_BAD_REQUEST},
        {"{\"error\":{\"code\":403,\"message\":\"m\",\"status\":\"PERMISSION_DENIED\"}}",
         LLM_ERR_AUTH},
    };
    (void)state;
    for (size_t i = 0; i < SB_ARRAY_LEN(cases); i++) {
        char msg[PROVIDER_MSG_MAX] = "";
        struct llm_sink sink;
        struct rec r;
        struct sse_event ev = {.data = cases[i].data, .data_len = strlen(cases[i].data)};
        void *st = ops->stream_new();
        rec_init(&r, &sink);
        assert_int_equal(ops->stream_event(st, &ev, &sink, msg, sizeof msg), cases[i].want);
        assert_string_equal(msg, "m");
        assert_int_equal(r.log.len, 0);
        ops->stream_free(st);
        buf_cleanup(&r.log);
    }
}

/* ---- classify ----------------------------------------------------------------------------- */

static void test_gemini_classifies_error_responses(void **state)
{
    static const struct {
        long status;
        const char *fixture; /* NULL: empty body */
        enum llm_errclass want;
        const char *msg; /* NULL: any non-empty message */
    } cases[] = {
        {400, "error_context_length.json", LLM_ERR_CONTEXT_LENGTH,
         "The input token count (1205311) exceeds the maximum number of tokens allowed "
         "(1048576)."},
        {400, "error_bad_key.json", LLM_ERR_AUTH,
         "API key not valid. Please pass a valid API key."},
        {400, "error_invalid_argument.json", LLM_ERR_BAD_REQUEST, NULL},
        {401, NULL, LLM_ERR_AUTH, "HTTP 401"},
        {403, "error_permission.json", LLM_ERR_AUTH, NULL},
        {404, "error_not_found.json", LLM_ERR_BAD_REQUEST, NULL},
        {429, "error_rate_limit.json", LLM_ERR_RATE_LIMIT,
         "You exceeded your current quota, please check your plan and billing details."},
        {429, "error_stream_array.json", LLM_ERR_RATE_LIMIT,
         "Resource has been exhausted (e.g. check quota)."},
        {500, "error_internal.json", LLM_ERR_SERVER, NULL},
        {503, "error_overloaded.json", LLM_ERR_OVERLOADED,
         "The model is overloaded. Please try again later."},
        {504, "error_deadline.json", LLM_ERR_SERVER, NULL},
        {503, NULL, LLM_ERR_SERVER, "HTTP 503"},
        {502, "error_html.html", LLM_ERR_SERVER, "HTTP 502"},
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

static void test_gemini_error_statuses_map_to_the_nearest_openai_type(void **state)
{
    static const struct {
        long status;
        const char *fixture;
        const char *type, *code;
        int64_t retry_ms;
    } cases[] = {
        {429, "error_rate_limit.json", "rate_limit_error", "RESOURCE_EXHAUSTED", 27000},
        {404, "error_not_found.json", "not_found_error", "NOT_FOUND", -1},
        {403, "error_permission.json", "permission_error", "PERMISSION_DENIED", -1},
        {400, "error_bad_key.json", "authentication_error", "INVALID_ARGUMENT", -1},
        {400, "error_invalid_argument.json", "invalid_request_error", "INVALID_ARGUMENT", -1},
        {400, "error_context_length.json", "invalid_request_error", "context_length_exceeded", -1},
        {503, "error_overloaded.json", "server_error", "UNAVAILABLE", -1},
        {502, "error_html.html", "", "", -1},
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
        assert_int_equal(info.retry_after_ms, cases[i].retry_ms);
        free(body);
    }
}

static int ignore_event(void *ctx, const struct llm_event *ev)
{
    (void)ctx;
    (void)ev;
    return 0;
}

static void test_gemini_error_appended_to_a_stream_ends_it_with_an_error(void **state)
{
    static const unsigned splits[] = {0, 1, 7};
    size_t len = 0;
    char *body = read_fixture("stream_trailing_error.sse", &len);
    (void)state;
    for (size_t s = 0; s < SB_ARRAY_LEN(splits); s++) {
        struct rec r;
        struct llm_sink sink;
        rec_init(&r, &sink);
        assert_int_equal(
            run_glue(ops, KEY, true, 200, "text/event-stream", body, len, splits[s], &r),
            LLM_ERR_SERVER);
        expect_log("stream_trailing_error.sse", &r,
                   "text:Partial\nerror:server:The service is currently unavailable.\n");
        buf_cleanup(&r.log);
    }
    free(body);
}

static void test_gemini_retry_info_feeds_the_retry_delay(void **state)
{
    size_t len = 0;
    char *body = read_fixture("error_rate_limit.json", &len);
    struct llm_sink sink = {ignore_event, NULL};
    (void)state;
    struct provider_call *c = provider_call_new(ops, false, &sink, NULL);
    provider_call_on_status(c, 429);
    provider_call_on_header(c, "content-type", "application/json", 0);
    provider_call_on_data(c, body, len);
    assert_int_equal(provider_call_finish(c, LLM_ERR_NONE, NULL), LLM_ERR_RATE_LIMIT);
    assert_int_equal(provider_call_ratelimit(c)->retry_after_ms, 27000);
    assert_string_equal(provider_call_error_info(c)->type, "rate_limit_error");
    provider_call_free(c);
    free(body);
}

static void test_gemini_error_status_reaches_the_sink_classified_and_redacted(void **state)
{
    static const char body[] = "{\"error\":{\"code\":400,\"message\":\"API key not valid: " KEY
                               "\",\"status\":\"INVALID_ARGUMENT\"}}";
    (void)state;
    struct rec r;
    enum llm_errclass c =
        run_glue(ops, KEY, false, 400, "application/json", body, strlen(body), 2, &r);
    assert_int_equal(c, LLM_ERR_AUTH);
    assert_string_equal(buf_str(&r.log), "error:auth:API key not valid: [redacted]\n");
    buf_cleanup(&r.log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemini_encodes_requests_like_the_golden_files),
        cmocka_unit_test(test_gemini_sends_thought_signatures_back),
        cmocka_unit_test(test_gemini_signatures_stay_out_of_other_providers_requests),
        cmocka_unit_test(test_gemini_ids_that_only_look_signed_pass_through),
        cmocka_unit_test(test_gemini_encode_sends_the_key_in_a_header_never_the_url),
        cmocka_unit_test(test_gemini_encode_streaming_uses_sse_and_the_same_key_header),
        cmocka_unit_test(test_gemini_encode_accepts_a_models_prefix_and_no_key),
        cmocka_unit_test(test_gemini_encode_maps_every_tool_choice),
        cmocka_unit_test(test_gemini_encode_rejects_what_it_cannot_express),
        cmocka_unit_test(test_gemini_encode_sends_a_result_whose_call_was_trimmed_as_text),
        cmocka_unit_test(test_gemini_encode_refuses_a_model_id_that_would_bend_the_url),
        cmocka_unit_test(test_gemini_probe_gets_the_model_with_the_key_header),
        cmocka_unit_test(test_gemini_decodes_whole_bodies),
        cmocka_unit_test(test_gemini_decode_stops_when_the_sink_asks),
        cmocka_unit_test(test_gemini_decodes_streams_through_stream_event),
        cmocka_unit_test(test_gemini_decodes_streams_through_the_glue_at_any_split),
        cmocka_unit_test(test_gemini_stream_error_chunks_map_to_classes),
        cmocka_unit_test(test_gemini_classifies_error_responses),
        cmocka_unit_test(test_gemini_error_statuses_map_to_the_nearest_openai_type),
        cmocka_unit_test(test_gemini_retry_info_feeds_the_retry_delay),
        cmocka_unit_test(test_gemini_error_appended_to_a_stream_ends_it_with_an_error),
        cmocka_unit_test(test_gemini_error_status_reaches_the_sink_classified_and_redacted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
