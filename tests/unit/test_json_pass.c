/*
 * test_json_pass.c - same-format passthrough of non-streaming answers: an OpenAI-wire
 * provider's chat.completion body goes to an OpenAI-wire client as it came, with only id,
 * created and model replaced (openai_scan_completion vouches for it, gw_completion_forward
 * splices), byte for byte elsewhere; its usage, finish and texts read as the parser reads
 * them; every shape the scanner must leave to the parser falls back and answers exactly as
 * before; and through the router loop, a call's result (usage, cost, retries) is unchanged.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../src/provider/openai_scan.h"
#include "support_fake.h"
#include "support_json_pass.h"

/* api.openai.com's shape, pretty-printed as it sends it. */
#define OPENAI_BODY                                                                                \
    "{\n  \"id\": \"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT\",\n  \"object\": \"chat.completion\"," \
    "\n  \"created\": 1741569952,\n  \"model\": \"gpt-4.1-2025-04-14\",\n  \"choices\": [\n    "   \
    "{\n"                                                                                          \
    "      \"index\": 0,\n      \"message\": {\n        \"role\": \"assistant\",\n"                \
    "        \"content\": \"Hello! How can I assist you today?\\n\\\"ok\\\" \xC3\xA9\",\n"         \
    "        \"refusal\": null,\n        \"annotations\": []\n      },\n"                          \
    "      \"logprobs\": null,\n      \"finish_reason\": \"stop\"\n    }\n  ],\n"                  \
    "  \"usage\": {\n    \"prompt_tokens\": 19,\n    \"completion_tokens\": 10,\n"                 \
    "    \"total_tokens\": 29,\n    \"prompt_tokens_details\": {\n      \"cached_tokens\": 4,\n"   \
    "      \"audio_tokens\": 0\n    },\n    \"completion_tokens_details\": {\n"                    \
    "      \"reasoning_tokens\": 0\n    }\n  },\n  \"service_tier\": \"default\",\n"               \
    "  \"system_fingerprint\": \"fp_abc\"\n}\n"

static char *answer(const struct provider_ops *ops, const char *body, bool *fwd, struct buf *ev)
{
    struct buf out;
    buf_init(&out);
    jp_answer(ops, body, strlen(body), 0, &out, ev, fwd);
    return buf_take(&out);
}

/* Both paths: the same class, events and client view, whole and in pieces. Returns whether
 * the scanner's path forwarded the body. */
static bool expect_same(const char *body)
{
    bool fwd = false;
    struct buf a, b, ea, eb, va, vb;
    buf_init(&a), buf_init(&b), buf_init(&ea), buf_init(&eb), buf_init(&va), buf_init(&vb);
    for (unsigned split = 0; split < 3; split++) {
        buf_reset(&a), buf_reset(&b), buf_reset(&ea), buf_reset(&eb);
        buf_reset(&va), buf_reset(&vb);
        enum llm_errclass ca =
            jp_answer(&provider_openai, body, strlen(body), split, &a, &ea, split ? NULL : &fwd);
        enum llm_errclass cb =
            jp_answer(&provider_openai_parsed, body, strlen(body), split, &b, &eb, NULL);
        assert_int_equal(ca, cb);
        assert_string_equal(buf_str(&ea), buf_str(&eb));
        if (ca != LLM_ERR_NONE) {
            assert_string_equal(buf_str(&a), buf_str(&b));
            continue;
        }
        jp_client_view(a.data, a.len, &va);
        jp_client_view(b.data, b.len, &vb);
        assert_string_equal(buf_str(&va), buf_str(&vb));
    }
    buf_cleanup(&a), buf_cleanup(&b), buf_cleanup(&ea), buf_cleanup(&eb);
    buf_cleanup(&va), buf_cleanup(&vb);
    return fwd;
}

static void test_an_openai_answer_goes_out_as_it_came_with_our_three_values(void **state)
{
    (void)state;
    bool fwd = false;
    char *out = answer(&provider_openai, OPENAI_BODY, &fwd, NULL);
    assert_true(fwd);
    /* the upstream's bytes with exactly id, created and model replaced */
    struct buf want;
    buf_init(&want);
    const char *s = OPENAI_BODY;
    const char *id = strstr(s, "\"chatcmpl-B9"), *cr = strstr(s, "1741569952");
    const char *mo = strstr(s, "\"gpt-4.1-2025-04-14\"");
    buf_append(&want, s, (size_t)(id - s));
    buf_puts(&want, "\"" JP_ID "\"");
    id = strchr(id + 1, '"') + 1;
    buf_append(&want, id, (size_t)(cr - id));
    buf_puts(&want, "1700000000");
    cr += strlen("1741569952");
    buf_append(&want, cr, (size_t)(mo - cr));
    buf_puts(&want, "\"" JP_MODEL "\"");
    mo += strlen("\"gpt-4.1-2025-04-14\"");
    buf_puts(&want, mo);
    assert_string_equal(out, buf_str(&want));
    buf_cleanup(&want);
    free(out);
    assert_true(expect_same(OPENAI_BODY));
}

static void test_the_scan_reads_what_the_parser_reads(void **state)
{
    (void)state;
    struct buf ev;
    buf_init(&ev);
    bool fwd = false;
    free(answer(&provider_openai, OPENAI_BODY, &fwd, &ev));
    assert_true(fwd);
    assert_string_equal(buf_str(&ev),
                        "text content Hello! How can I assist you today?\n\"ok\" \xC3\xA9\n"
                        "usage 19/10/4\n"
                        "finish stop fp=fp_abc tier=default\n");
    struct oai_full sc;
    assert_true(openai_scan_completion(OPENAI_BODY, strlen(OPENAI_BODY), &sc));
    assert_int_equal(sc.finish, LLM_FINISH_STOP);
    assert_true(sc.usage.present);
    assert_int_equal(sc.usage.input_tokens, 19);
    assert_int_equal(sc.usage.cached_tokens, 4);
    assert_true(sc.content.escaped);
    buf_cleanup(&ev);
}

/* Each value the forwarder owns is replaced wherever it stands, whatever it held. */
static void test_each_rewrite_wherever_the_member_stands(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"{\"model\":\"x\",\"created\":1,\"id\":\"a\\\"b\",\"object\":\"chat.completion\","
         "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"\"},"
         "\"finish_reason\":\"length\"}]}",
         "{\"model\":\"" JP_MODEL "\",\"created\":1700000000,\"id\":\"" JP_ID "\","
         "\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
         "\"assistant\",\"content\":\"\"},\"finish_reason\":\"length\"}]}"},
        {"{ \"id\" : 7 , \"created\" : null , \"model\" : {\"a\":[1]} , \"object\" : "
         "\"chat.completion\" , \"choices\" : [ { \"message\" : { \"content\" : \"hi\" , "
         "\"role\" : \"assistant\" , \"tool_calls\" : [ ] } , \"finish_reason\" : "
         "\"content_filter\" , \"index\" : 0 } ] , \"usage\" : null , \"x_groq\" : "
         "{\"id\":\"req_1\"} }",
         "{ \"id\" : \"" JP_ID "\" , \"created\" : 1700000000 , \"model\" : \"" JP_MODEL
         "\" , \"object\" : \"chat.completion\" , \"choices\" : [ { \"message\" : { "
         "\"content\" : \"hi\" , \"role\" : \"assistant\" , \"tool_calls\" : [ ] } , "
         "\"finish_reason\" : \"content_filter\" , \"index\" : 0 } ] , \"usage\" : null , "
         "\"x_groq\" : {\"id\":\"req_1\"} }"},
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(cases); i++) {
        bool fwd = false;
        char *out = answer(&provider_openai, cases[i].in, &fwd, NULL);
        assert_true(fwd);
        assert_string_equal(out, cases[i].out);
        free(out);
        assert_true(expect_same(cases[i].in));
    }
}

#define HEAD "{\"id\":\"c\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"m\","
#define MSG(m)                                                                                     \
    HEAD "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\"," m                        \
         "},\"finish_reason\":\"stop\"}]}"
#define CHOICE_X                                                                                   \
    HEAD "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"x\"}"
#define CHOICE(c) CHOICE_X c "}]}"
#define USAGE(u)                                                                                   \
    HEAD "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"x\"},"       \
         "\"finish_reason\":\"stop\"}],\"usage\":" u "}"
#define OK_BODY MSG("\"content\":\"x\"")

/* Every shape the scanner must not vouch for: each falls back to the parser and answers
 * exactly as before (the same events, the same bytes or the same error). */
static void test_every_refused_shape_falls_back_to_the_parser(void **state)
{
    (void)state;
    static const char *const refused[] = {
        "",
        "[]",
        "{\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}",
        HEAD "\"error\":null,\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
             "\"content\":\"x\"},\"finish_reason\":\"stop\"}]}",
        HEAD "\"choices\":[]}",
        HEAD "\"choices\":null}",
        "{\"object\":\"chat.completion\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,"
        "\"message\":{\"role\":\"assistant\",\"content\":\"x\"},\"finish_reason\":\"stop\"}]}",
        "{\"id\":\"c\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,"
        "\"message\":{\"role\":\"assistant\",\"content\":\"x\"},\"finish_reason\":\"stop\"}]}",
        "{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\","
        "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"x\"},"
        "\"finish_reason\":\"stop\"}]}",
        HEAD "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"x\"},"
             "\"finish_reason\":\"stop\"},{\"index\":1,\"message\":{\"role\":\"assistant\","
             "\"content\":\"y\"},\"finish_reason\":\"stop\"}]}",
        MSG("\"content\":null"),
        MSG("\"content\":\"x\",\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\","
            "\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]"),
        MSG("\"content\":\"x\",\"refusal\":\"no\""),
        MSG("\"content\":\"x\",\"reasoning_content\":\"think\""),
        MSG("\"content\":\"x\",\"annotations\":[{\"type\":\"url_citation\"}]"),
        MSG("\"content\":\"x\",\"audio\":{\"id\":\"a\"}"),
        MSG("\"content\":\"x\",\"extra\":1"),
        MSG("\"content\":\"x\",\"content\":\"y\""),
        MSG("\"content\":\"\\ud83d\""),
        HEAD "\"x_\\u0041\":\"\\u0041\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
             "\"assistant\",\"content\":\"x\"},\"finish_reason\":\"stop\"}]}",
        MSG("\"content\":\"\\ud83dx\""),
        MSG("\"content\":\"\\ude00\\ud83d\""),
        MSG("\"content\":\"a\\u0000b\""),
        MSG("\"content\":\"\\u00g9\""),
        MSG("\"content\":\"\\u00e\""),
        HEAD "\"mod\\u0065l\":\"x\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
             "\"assistant\",\"content\":\"x\"},\"finish_reason\":\"stop\"}]}",
        HEAD "\"system_fingerprint\":\"fp_\\u0041\",\"choices\":[{\"index\":0,\"message\":"
             "{\"role\":\"assistant\",\"content\":\"x\"},\"finish_reason\":\"stop\"}]}",
        MSG("\"content\":\"bad \xC3\""),
        MSG("\"content\":\"tab\tinside\""),
        HEAD "\"choices\":[{\"index\":0,\"message\":{\"role\":\"user\",\"content\":\"x\"},"
             "\"finish_reason\":\"stop\"}]}",
        CHOICE(",\"finish_reason\":null"),
        CHOICE(",\"finish_reason\":\"tool_calls\""),
        CHOICE(",\"finish_reason\":\"weird\""),
        CHOICE(""),
        CHOICE(",\"finish_reason\":\"stop\",\"logprobs\":{\"content\":[]}"),
        CHOICE(",\"finish_reason\":\"stop\",\"stop_reason\":null"),
        CHOICE(",\"finish_reason\":\"stop\",\"index\":0"),
        HEAD "\"choices\":[{\"index\":1,\"message\":{\"role\":\"assistant\",\"content\":\"x\"},"
             "\"finish_reason\":\"stop\"}]}",
        USAGE("{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":4}"),
        USAGE("{\"prompt_tokens\":1,\"completion_tokens\":2}"),
        USAGE("{\"prompt_tokens\":1.0,\"completion_tokens\":2,\"total_tokens\":3}"),
        USAGE("{\"prompt_tokens\":-1,\"completion_tokens\":2,\"total_tokens\":1}"),
        USAGE("{\"prompt_tokens\":1e2,\"completion_tokens\":2,\"total_tokens\":102}"),
        USAGE("{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3,"
              "\"prompt_tokens\":5}"),
        USAGE("{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3,"
              "\"prompt_tokens_details\":{\"cached_tokens\":0.5}}"),
        USAGE("{\"prompt_tokens\":\"1\",\"completion_tokens\":2,\"total_tokens\":3}"),
        USAGE("[]"),
        HEAD "\"system_fingerprint\":\"\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
             "\"assistant\",\"content\":\"x\"},\"finish_reason\":\"stop\"}]}",
        HEAD "\"system_fingerprint\":5,\"choices\":[{\"index\":0,\"message\":{\"role\":"
             "\"assistant\",\"content\":\"x\"},\"finish_reason\":\"stop\"}]}",
        HEAD "\"service_tier\":\"a\\/b\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
             "\"assistant\",\"content\":\"x\"},\"finish_reason\":\"stop\"}]}",
        HEAD "\"service_tier\":\"0123456789012345678901234567890123\",\"choices\":[{\"index\":"
             "0,\"message\":{\"role\":\"assistant\",\"content\":\"x\"},\"finish_reason\":"
             "\"stop\"}]}",
        HEAD "\"model\":\"again\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
             "\"assistant\",\"content\":\"x\"},\"finish_reason\":\"stop\"}]}",
        OK_BODY "x",
        OK_BODY "}",
        "{\"id\":\"c\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"m\",\"choices\":"
        "[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"x\"},\"finish_",
        "{\"id\":\"c\",\"object\":\"chat.completion\",\"created\":01,\"model\":\"m\",\"choices\":"
        "[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"x\"},"
        "\"finish_reason\":\"stop\"}]}",
        "{\"id\":\"c\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"m\",\"choices\":"
        "[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"x\"},"
        "\"finish_reason\":\"stop\"}],}",
        "\xEF\xBB\xBF" OK_BODY,
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(refused); i++) {
        struct oai_full sc;
        if (openai_scan_completion(refused[i], strlen(refused[i]), &sc))
            fail_msg("scanner accepted case %zu: %s", i, refused[i]);
        if (expect_same(refused[i]))
            fail_msg("forwarded case %zu", i);
    }
}

/* Shapes other servers send that the scanner does vouch for. */
static void test_compatible_servers_shapes_are_forwarded(void **state)
{
    (void)state;
    static const char *const accepted[] = {
        OK_BODY,
        OK_BODY "\r\n",
        MSG("\"content\":\"\"") /* empty content: no TEXT event, still forwarded */,
        MSG("\"content\":\"x\",\"tool_calls\":null,\"function_call\":null,\"refusal\":null,"
            "\"reasoning_content\":null,\"reasoning\":null,\"audio\":null"),
        CHOICE(",\"finish_reason\":\"stop\",\"logprobs\":null"),
        USAGE("{\"prompt_tokens\":0,\"completion_tokens\":0,\"total_tokens\":0}"),
        USAGE("{\"prompt_tokens\":12,\"completion_tokens\":3,\"total_tokens\":15,"
              "\"prompt_tokens_details\":null,\"queue_time\":0.02,\"prompt_time\":1e-3}"),
        USAGE("{\"prompt_tokens\":999999999999999,\"completion_tokens\":0,"
              "\"total_tokens\":999999999999999,\"prompt_tokens_details\":{}}"),
        USAGE("null"),
        MSG("\"content\":\"caf\\u00e9 \\u003cb\\u003e \\u0026 \\u20AC \\ud83d\\ude00 \\u0041\""),
        HEAD "\"system_fingerprint\":null,\"service_tier\":null,\"prompt_logprobs\":null,"
             "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
             "\"a\\/b\\\\c\\b\\f\\r\\t\xF0\x9F\x98\x80\"},\"finish_reason\":\"stop\"}]}",
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(accepted); i++) {
        if (!expect_same(accepted[i]))
            fail_msg("not forwarded: case %zu: %s", i, accepted[i]);
    }
}

/* An answer without usage is forwarded, and reads as usage missing (the header says so). */
static void test_an_answer_without_usage_is_forwarded_with_usage_missing(void **state)
{
    (void)state;
    struct buf ev;
    buf_init(&ev);
    bool fwd = false;
    free(answer(&provider_openai, OK_BODY, &fwd, &ev));
    assert_true(fwd);
    assert_string_equal(buf_str(&ev), "text content x\nfinish stop fp=- tier=-\n");
    buf_cleanup(&ev);
}

/* \u escapes in a whole answer's content (Go servers escape < > &) are read as cJSON reads
 * them and forwarded as they came. */
static void test_u_escapes_in_content_are_read_as_the_parser_reads_them(void **state)
{
    (void)state;
    static const char body[] = MSG("\"content\":\"caf\\u00e9 \\u003cb\\u003e \\u0026 \\u20AC "
                                   "\\ud83d\\ude00 \\u0041\"");
    struct buf ev;
    buf_init(&ev);
    bool fwd = false;
    char *out = answer(&provider_openai, body, &fwd, &ev);
    assert_true(fwd);
    assert_non_null(strstr(out, "caf\\u00e9 \\u003cb\\u003e"));
    assert_string_equal(buf_str(&ev),
                        "text content caf\xC3\xA9 <b> & \xE2\x82\xAC \xF0\x9F\x98\x80 "
                        "A\nfinish stop fp=- tier=-\n");
    free(out);
    buf_cleanup(&ev);
}

/* Size and depth: a long content is forwarded whole (the scan is linear); an unknown member
 * nested deeper than the scanner goes falls back to the parser. */
static void test_a_long_answer_is_forwarded_and_deep_nesting_falls_back(void **state)
{
    (void)state;
    struct buf body;
    buf_init(&body);
    buf_puts(&body, HEAD "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                         "\"content\":\"");
    for (int i = 0; i < 100000; i++)
        buf_puts(&body, i % 7 ? "word " : "\\n\xC3\xA9 ");
    buf_puts(&body, "\"},\"finish_reason\":\"length\"}]}");
    assert_true(expect_same(buf_str(&body)));
    buf_reset(&body);
    buf_puts(&body, HEAD "\"x\":");
    for (int i = 0; i < 40; i++)
        buf_putc(&body, '[');
    for (int i = 0; i < 40; i++)
        buf_putc(&body, ']');
    buf_puts(&body, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                    "\"content\":\"x\"},\"finish_reason\":\"stop\"}]}");
    assert_false(expect_same(buf_str(&body)));
    buf_cleanup(&body);
}

/* ---- through the router loop ------------------------------------------------------------ */

#define ROUTER_BODY                                                                                \
    "{\"id\":\"up\",\"object\":\"chat.completion\",\"created\":3,\"model\":\"m\",\"choices\":"     \
    "[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"from b\"},"                   \
    "\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":1000000,"                         \
    "\"completion_tokens\":500000,\"total_tokens\":1500000,\"prompt_tokens_details\":"             \
    "{\"cached_tokens\":200000}}}"

static void router_plan(void *ctx, const struct http_request *req, struct fake_plan *p)
{
    long *calls = ctx;
    bool b = strstr(req->url, "://b.") != NULL;
    calls[b]++;
    p->status = 200;
    p->body = b ? ROUTER_BODY /* a's answer is an error in a 200 body: retried elsewhere */
                : "{\"error\":{\"message\":\"busy\",\"type\":\"server_error\"}}";
}

struct pass_sink {
    struct fake_call fc;
    struct router_sink inner;
    int chunks;
    struct buf out;
};

static int pass_event(void *ctx, const struct llm_event *ev)
{
    struct pass_sink *s = ctx;
    if (ev->type == LLM_EV_FINISH && ev->chunk) {
        s->chunks++;
        buf_append(&s->out, ev->chunk->json, ev->chunk->len);
    }
    return s->inner.on_event(s->inner.ctx, ev);
}

static void pass_commit(void *ctx, const struct router_commit *cm)
{
    struct pass_sink *s = ctx;
    s->inner.on_commit(s->inner.ctx, cm);
}

static void pass_done(void *ctx, const struct router_result *r)
{
    struct pass_sink *s = ctx;
    s->inner.on_done(s->inner.ctx, r);
}

static bool pass_done_p(void *ctx)
{
    return fake_call_done(&((struct pass_sink *)ctx)->fc);
}

static void test_through_the_router_a_forwarded_answer_keeps_usage_cost_and_retries(void **state)
{
    (void)state;
    static const char cfg[] =
        "{\"providers\":["
        "{\"name\":\"a\",\"kind\":\"openai-compatible\",\"base_url\":\"http://a.fake/v1\","
        "\"model\":\"m\",\"probe\":{\"enabled\":false}},"
        "{\"name\":\"b\",\"kind\":\"openai-compatible\",\"base_url\":\"http://b.fake/v1\","
        "\"model\":\"m\",\"probe\":{\"enabled\":false},\"price\":{\"input_per_mtok\":2,"
        "\"output_per_mtok\":8,\"cached_input_per_mtok\":1}}],"
        "\"routes\":[{\"name\":\"chat\",\"strategy\":\"priority\",\"targets\":[\"a\",\"b\"]}],"
        "\"router\":{\"max_attempts\":3,\"backoff_base_ms\":10,\"hedge_after_ms\":0},"
        "\"ledger\":{\"path\":\":memory:\"},\"guard\":{\"enabled\":false}}";
    struct fake_clock clock;
    struct fake_net *net;
    long calls[2] = {0, 0};
    fake_clock_init(&clock);
    struct router *rt = fake_router_new(cfg, &clock, router_plan, calls, &net);
    struct pass_sink s;
    memset(&s, 0, sizeof s);
    buf_init(&s.out);
    s.inner = fake_call_sink(&s.fc);
    struct router_sink sk = {
        .on_commit = pass_commit, .on_event = pass_event, .on_done = pass_done, .ctx = &s};
    router_submit(rt, fake_request("chat", false), NULL, &sk);
    fake_drive(rt, net, &clock, fake_clock_ms(&clock) + 5000, pass_done_p, &s);
    assert_int_equal(s.fc.dones, 1);
    assert_int_equal(s.fc.result.err, LLM_ERR_NONE);
    assert_string_equal(s.fc.result_target, "b");
    assert_int_equal(s.fc.result.attempts, 2);
    assert_int_equal(calls[0], 1);
    assert_int_equal(calls[1], 1);
    assert_string_equal(s.fc.text, "from b");
    assert_int_equal(s.chunks, 1);
    assert_string_equal(buf_str(&s.out), ROUTER_BODY);
    assert_true(s.fc.result.usage.present);
    assert_int_equal(s.fc.result.usage.input_tokens, 1000000);
    assert_int_equal(s.fc.result.usage.output_tokens, 500000);
    assert_int_equal(s.fc.result.usage.cached_tokens, 200000);
    assert_int_equal(s.fc.result.finish, LLM_FINISH_LENGTH);
    /* 0.8M uncached x 2 + 0.2M cached x 1 + 0.5M x 8 */
    assert_true(s.fc.result.cost_usd > 5.799 && s.fc.result.cost_usd < 5.801);
    buf_cleanup(&s.out);
    router_free(rt);
}

static int setup(void **state)
{
    (void)state;
    fake_watchdog("test_json_pass", 20);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fake_watchdog("test_json_pass", 0);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_an_openai_answer_goes_out_as_it_came_with_our_three_values),
        cmocka_unit_test(test_the_scan_reads_what_the_parser_reads),
        cmocka_unit_test(test_each_rewrite_wherever_the_member_stands),
        cmocka_unit_test(test_every_refused_shape_falls_back_to_the_parser),
        cmocka_unit_test(test_compatible_servers_shapes_are_forwarded),
        cmocka_unit_test(test_an_answer_without_usage_is_forwarded_with_usage_missing),
        cmocka_unit_test(test_u_escapes_in_content_are_read_as_the_parser_reads_them),
        cmocka_unit_test(test_a_long_answer_is_forwarded_and_deep_nesting_falls_back),
        cmocka_unit_test(test_through_the_router_a_forwarded_answer_keeps_usage_cost_and_retries),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
