/*
 * test_provider_call.c - the glue from one HTTP exchange to llm events, driven with
 * provider_openai and the fixtures in tests/fixtures/openai/: body modes, caps, redaction,
 * transport failures, sink stops, UTF-8 repair and the one-terminal-event rule.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support_provider.h"
#include "switchboard/provider.h"

#define FIXTURES "tests/fixtures/openai/"
#define SECRET   "sk-proj-Zx9secretVALUE0123456789"

static char *read_fixture(const char *name, size_t *len)
{
    return read_fixture_in(FIXTURES, name, len);
}

/* Records events as lines; stops the producer after stop_after events when set. */
struct call_rec {
    struct buf log;
    int n;
    int stop_after;
    int terminals;
    bool after_terminal; /* an event arrived after FINISH/ERROR */
};

static int record(void *ctx, const struct llm_event *ev)
{
    struct call_rec *r = ctx;
    const char *fin;
    if (r->terminals)
        r->after_terminal = true;
    switch (ev->type) {
    case LLM_EV_TEXT:
        buf_printf(&r->log, "T:%.*s\n", (int)ev->len, ev->text);
        break;
    case LLM_EV_TOOL_CALL:
        buf_printf(&r->log, "C%d:%s:%s\n", ev->index, ev->id, ev->name);
        break;
    case LLM_EV_TOOL_ARGS:
        buf_printf(&r->log, "A%d:%.*s\n", ev->index, (int)ev->len, ev->text);
        break;
    case LLM_EV_USAGE:
        buf_printf(&r->log, "U:%ld/%ld/%ld\n", ev->usage.input_tokens, ev->usage.output_tokens,
                   ev->usage.cached_tokens);
        break;
    case LLM_EV_FINISH:
        fin = llm_finish_name(ev->finish);
        buf_printf(&r->log, "F:%s\n", fin ? fin : "none");
        r->terminals++;
        break;
    case LLM_EV_ERROR:
        buf_printf(&r->log, "E:%s:%ld:%.*s\n", llm_errclass_name(ev->errclass), ev->status,
                   (int)ev->len, ev->text);
        r->terminals++;
        break;
    }
    r->n++;
    return r->stop_after && r->n >= r->stop_after;
}

struct exchange {
    long status;
    const char *content_type; /* NULL: no header */
    bool stream;
    enum llm_errclass transport_err;
    const char *transport_msg;
};

/* Runs one exchange with the body cut at the given offsets; returns the log and outcome. */
static char *run_cuts(const struct exchange *x, const char *body, size_t len, const size_t *cuts,
                      size_t n_cuts, enum llm_errclass *outcome)
{
    struct call_rec r = {0};
    struct llm_sink sink = {record, &r};
    buf_init(&r.log);
    struct provider_call *c = provider_call_new(&provider_openai, x->stream, &sink, SECRET);
    provider_call_on_status(c, x->status);
    if (x->content_type)
        provider_call_on_header(c, "Content-Type", x->content_type, 0);
    provider_call_on_header(c, "x-request-id", "req_123", 0);
    size_t at = 0;
    for (size_t i = 0; i <= n_cuts; i++) {
        size_t end = i < n_cuts ? cuts[i] : len;
        if (end > at && provider_call_on_data(c, body + at, end - at) != 0)
            break;
        at = end;
    }
    *outcome = provider_call_finish(c, x->transport_err, x->transport_msg);
    assert_int_equal(provider_call_finish(c, LLM_ERR_TIMEOUT, "again"), *outcome);
    assert_int_equal(r.terminals, 1);
    assert_false(r.after_terminal);
    provider_call_free(c);
    return buf_take(&r.log);
}

static char *run_body(const struct exchange *x, const char *body, size_t len,
                      enum llm_errclass *outcome)
{
    return run_cuts(x, body, len, NULL, 0, outcome);
}

/* The same log and outcome whatever the split: every single cut, and byte by byte. */
static void assert_split_invariant(const struct exchange *x, const char *fixture,
                                   const char *want_log, enum llm_errclass want)
{
    size_t len;
    enum llm_errclass outcome;
    char *body = read_fixture(fixture, &len);
    char *whole = run_body(x, body, len, &outcome);
    assert_string_equal(whole, want_log);
    assert_int_equal(outcome, want);
    for (size_t k = 0; k <= len; k++) {
        char *got = run_cuts(x, body, len, &k, 1, &outcome);
        assert_string_equal(got, whole);
        assert_int_equal(outcome, want);
        free(got);
    }
    size_t *cuts = calloc(len + 1, sizeof *cuts);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i;
    char *bytes = run_cuts(x, body, len, cuts, len, &outcome);
    assert_string_equal(bytes, whole);
    free(bytes);
    free(cuts);
    free(whole);
    free(body);
}

static void test_provider_call_decodes_a_stream_split_anywhere(void **state)
{
    (void)state;
    struct exchange x = {200, "text/event-stream; charset=utf-8", true, LLM_ERR_NONE, NULL};
    assert_split_invariant(&x, "stream_ok.sse",
                           "T:Hello\nT:, w\xC3\xB6rld\nT: \xF0\x9F\x98\x80\nU:19/4/3\nF:stop\n",
                           LLM_ERR_NONE);
    assert_split_invariant(&x, "stream_tools.sse",
                           "C0:call_DdmO9pD3xa9XTPNJ32zg2hcA:get_weather\nA0:{\"\nA0:location\n"
                           "A0:\":\"Paris, France\"}\nC1:call_9pD3xa9XTPNJ32zg2hcADdmO:get_time\n"
                           "A1:{}\nU:80/40/0\nF:tool_calls\n",
                           LLM_ERR_NONE);
}

static void test_provider_call_decodes_whole_and_error_bodies_split_anywhere(void **state)
{
    (void)state;
    struct exchange ok = {200, "application/json", false, LLM_ERR_NONE, NULL};
    assert_split_invariant(&ok, "tool_call.json",
                           "C0:call_abc123:get_current_weather\nA0:{\n\"location\": \"Boston, "
                           "MA\"\n}\nC1:call_def456:get_time\nA1:{}\nU:82/17/64\nF:tool_calls\n",
                           LLM_ERR_NONE);
    struct exchange limited = {429, "application/json", true, LLM_ERR_NONE, NULL};
    assert_split_invariant(&limited, "error_429.json",
                           "E:rate_limit:429:Rate limit reached for gpt-4o-mini in organization "
                           "org-XXXX on requests per min (RPM): Limit 500, Used 500, Requested "
                           "1. Please try again in 120ms.\n",
                           LLM_ERR_RATE_LIMIT);
}

static void test_provider_call_reports_facts_for_the_router(void **state)
{
    (void)state;
    size_t len;
    char *body = read_fixture("stream_ok.sse", &len);
    struct call_rec r = {0};
    struct llm_sink sink = {record, &r};
    buf_init(&r.log);
    struct provider_call *c = provider_call_new(&provider_openai, true, &sink, NULL);
    provider_call_on_status(c, 200);
    provider_call_on_header(c, "content-type", "text/event-stream", 0);
    provider_call_on_header(c, "x-ratelimit-remaining-tokens", "1000", 0);
    provider_call_on_header(c, "x-ratelimit-reset-tokens", "1m30s", 0);
    assert_false(provider_call_has_output(c));
    assert_false(provider_call_usage(c)->present);
    size_t cut = (size_t)(strstr(strstr(body, "Hello"), "\n\n") + 2 - body);
    assert_int_equal(provider_call_on_data(c, body, cut - 1), 0);
    assert_false(provider_call_has_output(c)); /* the role chunk carries no text */
    assert_int_equal(provider_call_on_data(c, body + cut - 1, 1), 0);
    assert_true(provider_call_has_output(c));
    assert_int_equal(provider_call_on_data(c, body + cut, len - cut), 0);
    assert_int_equal(provider_call_finish(c, LLM_ERR_NONE, NULL), LLM_ERR_NONE);
    assert_int_equal(provider_call_status(c), 200);
    assert_int_equal(provider_call_ratelimit(c)->remaining_tokens, 1000);
    assert_int_equal(provider_call_ratelimit(c)->reset_tokens_ms, 90000);
    assert_true(provider_call_usage(c)->present);
    assert_int_equal(provider_call_usage(c)->cached_tokens, 3);
    assert_int_equal(provider_call_finish_reason(c), LLM_FINISH_STOP);
    assert_string_equal(provider_call_error(c), "");
    provider_call_free(c);
    provider_call_free(NULL);
    buf_cleanup(&r.log);
    free(body);
}

static void test_provider_call_turns_a_429_into_a_retry_delay_and_error_details(void **state)
{
    (void)state;
    static const char body[] = "{\"error\":{\"message\":\"Rate limit reached\",\"type\":"
                               "\"requests\",\"param\":null,\"code\":\"rate_limit_exceeded\"}}";
    struct call_rec r = {0};
    struct llm_sink sink = {record, &r};
    buf_init(&r.log);
    struct provider_call *c = provider_call_new(&provider_openai, false, &sink, NULL);
    provider_call_on_status(c, 429);
    provider_call_on_header(c, "content-type", "application/json", 0);
    provider_call_on_header(c, "x-ratelimit-limit-requests", "60", 0);
    provider_call_on_header(c, "x-ratelimit-remaining-requests", "0", 0);
    provider_call_on_header(c, "x-ratelimit-reset-requests", "2.5s", 0);
    provider_call_on_header(c, "x-ratelimit-reset-tokens", "1s", 0);
    assert_int_equal(provider_call_on_data(c, body, strlen(body)), 0);
    assert_int_equal(provider_call_finish(c, LLM_ERR_NONE, NULL), LLM_ERR_RATE_LIMIT);
    /* No Retry-After: the exhausted window's reset feeds the cooldown. */
    assert_int_equal(provider_call_ratelimit(c)->retry_after_ms, 2500);
    assert_string_equal(provider_call_error_info(c)->type, "requests");
    assert_string_equal(provider_call_error_info(c)->code, "rate_limit_exceeded");
    assert_string_equal(provider_call_client_headers(c), "x-ratelimit-limit-requests: 60\n"
                                                         "x-ratelimit-remaining-requests: 0\n"
                                                         "x-ratelimit-reset-requests: 2.5s\n"
                                                         "x-ratelimit-reset-tokens: 1s\n");
    provider_call_free(c);

    /* A 200 with reset headers sets no delay: only a rate limit does. */
    c = provider_call_new(&provider_openai, false, &sink, NULL);
    provider_call_on_status(c, 200);
    provider_call_on_header(c, "x-ratelimit-remaining-requests", "0", 0);
    provider_call_on_header(c, "x-ratelimit-reset-requests", "2.5s", 0);
    provider_call_on_header(c, "x-ratelimit-reset-requests", "bad\r\nx: y", 0);
    provider_call_finish(c, LLM_ERR_NONE, NULL);
    assert_int_equal(provider_call_ratelimit(c)->retry_after_ms, -1);
    assert_string_equal(provider_call_client_headers(c),
                        "x-ratelimit-remaining-requests: 0\nx-ratelimit-reset-requests: 2.5s\n");
    provider_call_free(c);
    buf_cleanup(&r.log);
}

static void test_provider_call_redacts_keys_and_the_secret_from_errors(void **state)
{
    (void)state;
    static const char body[] =
        "{\"error\":{\"message\":\"Incorrect API key provided: sk-abc123def456ghi789. Your key "
        "is " SECRET ", sent as Bearer " SECRET ".\",\"type\":\"invalid_request_error\","
        "\"code\":\"invalid_api_key\"}}";
    struct call_rec r = {0};
    struct llm_sink sink = {record, &r};
    buf_init(&r.log);
    struct provider_call *c = provider_call_new(&provider_openai, false, &sink, SECRET);
    provider_call_on_status(c, 401);
    provider_call_on_header(c, "Content-Type", "application/json", 0);
    provider_call_on_header(c, "Retry-After", "3", 0);
    assert_int_equal(provider_call_on_data(c, body, sizeof body - 1), 0);
    assert_int_equal(provider_call_finish(c, LLM_ERR_NONE, NULL), LLM_ERR_AUTH);
    const char *log = buf_str(&r.log);
    assert_null(strstr(log, "sk-abc123def456ghi789"));
    assert_null(strstr(log, SECRET));
    assert_null(strstr(log, "Zx9secret"));
    assert_string_equal(log, "E:auth:401:Incorrect API key provided: [redacted]. Your key is "
                             "[redacted], sent as Bearer [redacted].\n");
    assert_null(strstr(provider_call_error(c), "sk-abc"));
    assert_int_equal(provider_call_ratelimit(c)->retry_after_ms, 3000);
    provider_call_free(c);
    buf_cleanup(&r.log);
}

#define ANT_KEY "sk-ant-api03-Abc123Def456Ghi789Jkl012"
#define GEM_KEY "AIzaSyB-xyz0987654321QwErTyUiOp1234567"
#define LOCAL   "local-Secret-Token-4455667788"

/* Keys echoed partly, masked or case-changed by a provider. */
static const struct {
    const char *in;
    const char *secret;
    const char *out;
} echoes[] = {
    {"key ending Def456Ghi789Jkl012 is invalid", ANT_KEY, "key ending [redacted] is invalid"},
    {"key 3Def456Gh rejected", ANT_KEY, "key [redacted] rejected"},
    {"key sk-ant-api03-Abc1 (truncated)", ANT_KEY, "key [redacted] (truncated)"},
    {"masked: sk-ant-************************Jkl012.", ANT_KEY, "masked: [redacted]."},
    {"masked: ****************Ghi789Jkl012", ANT_KEY, "masked: [redacted]"},
    {"upper: SK-ANT-API03-ABC123DEF456GHI789JKL012!", ANT_KEY, "upper: [redacted]!"},
    {"lower: sk-ant-api03-abc123def456ghi789jkl012", ANT_KEY, "lower: [redacted]"},
    {"gemini: AIzaSyB-xyz0****************1234567 bad", GEM_KEY, "gemini: [redacted] bad"},
    {"gemini: ...QWERTYUIOP1234567", GEM_KEY, "gemini: [redacted]"},
    {"local token-4455667788 and LOCAL-SECRET were refused", LOCAL,
     "local [redacted] and [redacted] were refused"},
    {"local ****-Token-4455*** is masked", LOCAL, "local [redacted] is masked"},
    {"the word Secret alone stays", LOCAL, "the word Secret alone stays"},
    {"sk-proj-****************************************abcd is not valid", NULL,
     "[redacted] is not valid"},
    {"xai-AAAAbbbbCCCCddddEEEEffff and hf_AAAAbbbbCCCCddddEEEEffff", NULL,
     "[redacted] and [redacted]"},
};

static void test_provider_redact_replaces_key_shaped_text(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *secret;
        const char *out;
    } rows[] = {
        {"key sk-abcdefgh1234 bad", NULL, "key [redacted] bad"},
        {"key sk-ant-api03-AAAA_bbbb-cccc ok", NULL, "key [redacted] ok"},
        {"sk-short stays", NULL, "sk-short stays"},
        {"tool task-manager-helper is unknown", NULL, "tool task-manager-helper is unknown"},
        {"key=sk-abcdefgh1234&x \"sk-ijklmnop5678\"", NULL, "key=[redacted]&x \"[redacted]\""},
        {"google AIzaSyA1234567890abcdefghijkl!", NULL, "google [redacted]!"},
        {"AIzaShort is fine", NULL, "AIzaShort is fine"},
        {"cut AIzaSyA12", NULL, "cut [redacted]"},
        {"Authorization: bearer abc.def-ghi", NULL, "Authorization: Bearer [redacted]"},
        {"the secret hunter2hunter2 leaked twice: hunter2hunter2", "hunter2hunter2",
         "the secret [redacted] leaked twice: [redacted]"},
        {"cut off at the end: hunter2hu", "hunter2hunter2", "cut off at the end: [redacted]"},
        {"cut key sk-abcd", NULL, "cut key [redacted]"},
        {"nothing to see", "", "nothing to see"},
        {"Bearer", NULL, "Bearer"},
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(rows); i++) {
        char msg[128];
        str_copy(msg, sizeof msg, rows[i].in);
        provider_redact(msg, sizeof msg, rows[i].secret);
        assert_string_equal(msg, rows[i].out);
    }
    for (size_t i = 0; i < SB_ARRAY_LEN(echoes); i++) {
        char msg[160];
        str_copy(msg, sizeof msg, echoes[i].in);
        provider_redact(msg, sizeof msg, echoes[i].secret);
        if (strcmp(msg, echoes[i].out) != 0)
            fail_msg("echo %zu: \"%s\"", i, msg);
    }
    char small[12] = "x sk-abcdefg"; /* grows past the buffer: truncated, still redacted */
    provider_redact(small, sizeof small, "x");
    assert_string_equal(small, "[redacted] ");
}

static void test_provider_call_rejects_a_body_over_the_cap(void **state)
{
    (void)state;
    size_t chunk = 1024 * 1024;
    char *junk = xmalloc(chunk);
    memset(junk, ' ', chunk);
    struct call_rec r = {0};
    struct llm_sink sink = {record, &r};
    buf_init(&r.log);
    struct provider_call *c = provider_call_new(&provider_openai, false, &sink, NULL);
    provider_call_on_status(c, 200);
    int rc = 0;
    size_t sent = 0;
    while (rc == 0 && sent <= PROVIDER_MAX_BODY) {
        rc = provider_call_on_data(c, junk, chunk);
        sent += chunk;
    }
    assert_int_not_equal(rc, 0);
    assert_int_equal(sent, PROVIDER_MAX_BODY + chunk);
    assert_int_not_equal(provider_call_on_data(c, junk, 1), 0);
    assert_int_equal(provider_call_finish(c, LLM_ERR_BAD_RESPONSE, "aborted"),
                     LLM_ERR_BAD_RESPONSE);
    assert_string_equal(buf_str(&r.log), "E:bad_response:200:response body over 16777216 bytes\n");
    provider_call_free(c);

    /* An error body is cut at its cap and classified at once. */
    buf_reset(&r.log);
    r.terminals = 0;
    c = provider_call_new(&provider_openai, true, &sink, NULL);
    provider_call_on_status(c, 500);
    rc = 0;
    for (sent = 0; rc == 0 && sent <= PROVIDER_MAX_ERROR_BODY; sent += 1000)
        rc = provider_call_on_data(c, junk, 1000);
    assert_int_not_equal(rc, 0);
    assert_int_equal(provider_call_finish(c, LLM_ERR_NONE, NULL), LLM_ERR_SERVER);
    assert_string_equal(buf_str(&r.log), "E:server:500:HTTP 500\n");
    provider_call_free(c);
    buf_cleanup(&r.log);
    free(junk);
}

static void test_provider_call_checks_the_stream_content_type(void **state)
{
    (void)state;
    static const char html[] = "<html><body>Welcome to the captive portal</body></html>";
    enum llm_errclass outcome;
    struct exchange x = {200, "text/html; charset=UTF-8", true, LLM_ERR_NONE, NULL};
    char *log = run_body(&x, html, sizeof html - 1, &outcome);
    assert_int_equal(outcome, LLM_ERR_BAD_RESPONSE);
    assert_string_equal(log, "E:bad_response:200:expected text/event-stream, got text/html\n");
    free(log);

    /* No body at all: the same verdict at finish. */
    log = run_body(&x, "", 0, &outcome);
    assert_string_equal(log, "E:bad_response:200:expected text/event-stream, got text/html\n");
    free(log);

    /* A server that ignored "stream": true and answered with JSON is decoded whole... */
    size_t len;
    char *body = read_fixture("ok.json", &len);
    x.content_type = "application/json";
    log = run_body(&x, body, len, &outcome);
    assert_int_equal(outcome, LLM_ERR_NONE);
    assert_string_equal(log, "T:Hello! How can I assist you today?\nU:19/10/0\nF:stop\n");
    free(log);
    free(body);

    /* ... and a JSON error in a 200 is classified. */
    body = read_fixture("error_in_200.json", &len);
    log = run_body(&x, body, len, &outcome);
    assert_int_equal(outcome, LLM_ERR_SERVER);
    assert_true(str_has_prefix(log, "E:server:200:The server had an error"));
    free(log);
    free(body);

    /* No content-type at all is read as an event stream. */
    body = read_fixture("stream_no_usage.sse", &len);
    x.content_type = NULL;
    log = run_body(&x, body, len, &outcome);
    assert_int_equal(outcome, LLM_ERR_NONE);
    assert_string_equal(log, "T:Bon\nT:jour\nF:stop\n");
    free(log);
    free(body);
}

static void test_provider_call_reports_truncated_and_failed_streams(void **state)
{
    (void)state;
    static const struct {
        const char *fixture;
        long status;
        enum llm_errclass transport;
        const char *tmsg;
        enum llm_errclass outcome;
        const char *log;
    } rows[] = {
        {"stream_truncated.sse", 200, LLM_ERR_NONE, NULL, LLM_ERR_TRUNCATED,
         "T:Hello\nT:, w\xC3\xB6rld\nE:truncated:200:stream ended without a finish_reason or "
         "[DONE]\n"},
        /* A finish_reason and a clean close: complete without [DONE]; reset: truncated. */
        {"stream_no_done.sse", 200, LLM_ERR_NONE, NULL, LLM_ERR_NONE,
         "T:Hi\nT: there\nU:5/2/0\nF:stop\n"},
        {"stream_no_done.sse", 200, LLM_ERR_TRUNCATED, "connection reset", LLM_ERR_TRUNCATED,
         "T:Hi\nT: there\nE:truncated:200:connection reset\n"},
        /* Non-SSE bytes after the last event: an error, even after a finish reason. */
        {"stream_trailing_error.sse", 200, LLM_ERR_NONE, NULL, LLM_ERR_RATE_LIMIT,
         "T:Par\nT:tial\nE:rate_limit:200:Resource exhausted. Please try again later.\n"},
        {"ok.json", 200, LLM_ERR_NONE, NULL, LLM_ERR_BAD_RESPONSE, NULL},
        {"stream_truncated.sse", 200, LLM_ERR_TIMEOUT, "no data for 30000 ms", LLM_ERR_TIMEOUT,
         "T:Hello\nT:, w\xC3\xB6rld\nE:timeout:200:no data for 30000 ms\n"},
        {"stream_ok.sse", 200, LLM_ERR_TIMEOUT, "closed late", LLM_ERR_NONE,
         "T:Hello\nT:, w\xC3\xB6rld\nT: \xF0\x9F\x98\x80\nU:19/4/3\nF:stop\n"},
        {"stream_error.sse", 200, LLM_ERR_NONE, NULL, LLM_ERR_SERVER,
         "T:Once upon\nE:server:200:The server had an error while processing your request. "
         "Sorry about that!\n"},
        {"error_500.json", 500, LLM_ERR_TIMEOUT, "timed out", LLM_ERR_SERVER, NULL},
        {"ok.json", 0, LLM_ERR_CONNECT, "connection refused", LLM_ERR_CONNECT,
         "E:connect:0:connection refused\n"},
        {"ok.json", 200, LLM_ERR_CANCELLED, NULL, LLM_ERR_CANCELLED, NULL},
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(rows); i++) {
        size_t len;
        enum llm_errclass outcome;
        char *body = read_fixture(rows[i].fixture, &len);
        struct exchange x = {rows[i].status, "text/event-stream", true, rows[i].transport,
                             rows[i].tmsg};
        if (rows[i].status == 0)
            len = 0;
        char *log = run_body(&x, body, len, &outcome);
        assert_int_equal(outcome, rows[i].outcome);
        if (rows[i].log)
            assert_string_equal(log, rows[i].log);
        free(log);
        free(body);
    }
}

static void test_provider_call_ends_a_stream_over_the_sse_limit_saying_so(void **state)
{
    (void)state;
    struct call_rec r = {0};
    struct llm_sink sink = {record, &r};
    char line[200];
    buf_init(&r.log);
    struct provider_call *c = provider_call_new(&provider_openai, true, &sink, NULL);
    provider_call_set_sse_limit(c, 100);
    provider_call_on_status(c, 200);
    provider_call_on_header(c, "content-type", "text/event-stream", 0);
    memset(line, 'x', sizeof line);
    assert_int_equal(provider_call_on_data(c, "data: ", 6), 0);
    assert_int_equal(provider_call_on_data(c, line, sizeof line), 1);
    assert_int_equal(provider_call_finish(c, LLM_ERR_NONE, NULL), LLM_ERR_BAD_RESPONSE);
    assert_string_equal(provider_call_error(c), "the provider sent an SSE line over the limit of "
                                                "100 bytes (sse_max_event_bytes)");
    provider_call_free(c);
    /* One rule: lines and events share the limit. */
    c = provider_call_new(&provider_openai, true, &sink, NULL);
    provider_call_set_sse_limit(c, 100);
    provider_call_on_status(c, 200);
    static const char two[] = "data: 0123456789012345678901234567890123456789012345678901\n"
                              "data: 0123456789012345678901234567890123456789012345678901\n\n";
    assert_int_equal(provider_call_on_data(c, two, strlen(two)), 1);
    assert_int_equal(provider_call_finish(c, LLM_ERR_NONE, NULL), LLM_ERR_BAD_RESPONSE);
    assert_non_null(strstr(provider_call_error(c), "SSE event over the limit of 100 bytes"));
    provider_call_free(c);
    buf_cleanup(&r.log);
}

static void test_provider_call_stops_when_the_sink_asks(void **state)
{
    (void)state;
    size_t len;
    char *body = read_fixture("stream_ok.sse", &len);
    struct call_rec r = {.stop_after = 1};
    struct llm_sink sink = {record, &r};
    buf_init(&r.log);
    struct provider_call *c = provider_call_new(&provider_openai, true, &sink, NULL);
    provider_call_on_status(c, 200);
    provider_call_on_header(c, "content-type", "text/event-stream", 0);
    assert_int_not_equal(provider_call_on_data(c, body, len), 0);
    assert_int_not_equal(provider_call_on_data(c, body, len), 0);
    assert_int_equal(provider_call_finish(c, LLM_ERR_CANCELLED, NULL), LLM_ERR_CANCELLED);
    assert_string_equal(buf_str(&r.log), "T:Hello\n"); /* nothing after the stop */
    assert_string_equal(provider_call_error(c), "cancelled by the consumer");
    provider_call_free(c);

    /* A sink that returns non-zero on FINISH itself still got its terminal event. */
    buf_reset(&r.log);
    r = (struct call_rec){.log = r.log, .stop_after = 5};
    c = provider_call_new(&provider_openai, true, &sink, NULL);
    provider_call_on_status(c, 200);
    assert_int_equal(provider_call_on_data(c, body, len), 0);
    assert_int_equal(provider_call_finish(c, LLM_ERR_NONE, NULL), LLM_ERR_NONE);
    assert_int_equal(r.terminals, 1);
    provider_call_free(c);
    buf_cleanup(&r.log);
    free(body);
}

/* Raw bytes inside JSON strings pass through cJSON untouched: the glue repairs them. */
static void test_provider_call_delivers_only_valid_utf8(void **state)
{
    (void)state;
    static const char body[] =
        "data: {\"choices\":[{\"delta\":{\"content\":\"w\xC3\"}}]}\n\n"
        "data: {\"choices\":[{\"delta\":{\"content\":\"\xB6rld \xE2\x82\"}}]}\n\n"
        "data: {\"choices\":[{\"delta\":{\"content\":\"\xAC bad\xFF\xC0!\"}}]}\n\n"
        "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c\",\"function\":"
        "{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":\\\"\xF0\x9F\"}}]}}]}\n\n"
        "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{"
        "\"arguments\":\"\x98\x80\\\"}\"}}]}}]}\n\n"
        "data: {\"choices\":[{\"delta\":{\"content\":\"\xC3\"},\"finish_reason\":\"stop\"}]}\n\n"
        "data: [DONE]\n\n";
    enum llm_errclass outcome;
    struct exchange x = {200, "text/event-stream", true, LLM_ERR_NONE, NULL};
    char *log = run_body(&x, body, sizeof body - 1, &outcome);
    assert_int_equal(outcome, LLM_ERR_NONE);
    assert_string_equal(log, "T:w\n"
                             "T:\xC3\xB6rld \n"
                             "T:\xE2\x82\xAC bad\xEF\xBF\xBD\xEF\xBF\xBD!\n"
                             "C0:c:f\n"
                             "A0:{\"a\":\"\n"
                             "A0:\xF0\x9F\x98\x80\"}\n"
                             "T:\xEF\xBF\xBD\n"
                             "F:stop\n");
    free(log);
}

static void test_provider_call_needs_a_status(void **state)
{
    (void)state;
    enum llm_errclass outcome;
    struct exchange x = {0, NULL, false, LLM_ERR_NONE, NULL};
    char *log = run_body(&x, "{}", 2, &outcome);
    assert_int_equal(outcome, LLM_ERR_BAD_RESPONSE);
    assert_string_equal(log, "E:bad_response:0:no HTTP status in the response\n");
    free(log);

    x.status = 200; /* an empty 200 is not an answer */
    log = run_body(&x, "", 0, &outcome);
    assert_int_equal(outcome, LLM_ERR_BAD_RESPONSE);
    free(log);
}

static void test_http_request_collects_headers(void **state)
{
    (void)state;
    struct http_request r;
    http_request_init(&r);
    for (int i = 0; i < 20; i++)
        http_request_add_header(&r, "X-N%d: %s", i, "v");
    assert_int_equal(r.n_headers, 20);
    assert_string_equal(r.headers[19], "X-N19: v");
    http_request_cleanup(&r);
    assert_int_equal(r.n_headers, 0);
    http_request_cleanup(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_provider_call_decodes_a_stream_split_anywhere),
        cmocka_unit_test(test_provider_call_decodes_whole_and_error_bodies_split_anywhere),
        cmocka_unit_test(test_provider_call_reports_facts_for_the_router),
        cmocka_unit_test(test_provider_call_turns_a_429_into_a_retry_delay_and_error_details),
        cmocka_unit_test(test_provider_call_redacts_keys_and_the_secret_from_errors),
        cmocka_unit_test(test_provider_redact_replaces_key_shaped_text),
        cmocka_unit_test(test_provider_call_rejects_a_body_over_the_cap),
        cmocka_unit_test(test_provider_call_checks_the_stream_content_type),
        cmocka_unit_test(test_provider_call_reports_truncated_and_failed_streams),
        cmocka_unit_test(test_provider_call_ends_a_stream_over_the_sse_limit_saying_so),
        cmocka_unit_test(test_provider_call_stops_when_the_sink_asks),
        cmocka_unit_test(test_provider_call_delivers_only_valid_utf8),
        cmocka_unit_test(test_provider_call_needs_a_status),
        cmocka_unit_test(test_http_request_collects_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
