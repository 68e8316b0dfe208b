/*
 * test_passthrough.c - same-format passthrough: OpenAI stream chunks a client of the same
 * wire format gets as the provider sent them (openai_scan.c finds what must change, the
 * gateway's SSE writer replaces it), byte for byte where nothing must change; every rewrite
 * (id, created, model, finish_reason, usage:null); and every shape the scanner must leave to
 * the parser, each of which must read exactly as provider_openai_parsed reads it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "support_passthrough.h"

#define ENV_IN                                                                                     \
    "\"id\":\"chatcmpl-up\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"gpt-"   \
    "4o-2024\""
#define ENV_OUT                                                                                    \
    "\"id\":\"" PT_ID "\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"            \
    "\"model\":\"" PT_MODEL "\""
#define ROLE_OUT                                                                                   \
    "data: {" ENV_OUT ",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","              \
    "\"content\":\"\"},\"finish_reason\":null}]}\n\n"
#define DONE "data: [DONE]\n\n"

static char *relay(const struct provider_ops *ops, const char *body, bool usage, int *fwd)
{
    struct buf out;
    buf_init(&out);
    pt_relay(ops, body, strlen(body), usage, 0, &out, fwd);
    return buf_take(&out);
}

/* The same stream relayed with and without the scanner reads the same to a client, fed whole
 * and in pieces; returns how many chunks went out as passthrough. */
static int expect_same_view(const char *body, bool usage)
{
    int fwd = 0;
    struct buf a, b, va, vb;
    buf_init(&a);
    buf_init(&b);
    buf_init(&va);
    buf_init(&vb);
    for (unsigned split = 0; split < 3; split++) {
        buf_reset(&a);
        buf_reset(&b);
        buf_reset(&va);
        buf_reset(&vb);
        enum llm_errclass ca =
            pt_relay(&provider_openai, body, strlen(body), usage, split, &a, split ? NULL : &fwd);
        enum llm_errclass cb =
            pt_relay(&provider_openai_parsed, body, strlen(body), usage, split, &b, NULL);
        assert_int_equal(ca, cb);
        pt_client_view(a.data, a.len, &va);
        pt_client_view(b.data, b.len, &vb);
        assert_string_equal(buf_str(&va), buf_str(&vb));
    }
    buf_cleanup(&a);
    buf_cleanup(&b);
    buf_cleanup(&va);
    buf_cleanup(&vb);
    return fwd;
}

static void test_content_chunks_are_forwarded_as_they_came(void **state)
{
    (void)state;
    const char *body =
        "data: {" ENV_IN ",\"system_fingerprint\":\"fp_1\",\"choices\":[{\"index\":0,\"delta\":"
        "{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n"
        "data: {" ENV_IN ",\"system_fingerprint\":\"fp_1\",\"choices\":[{\"index\":0,\"delta\":"
        "{\"content\":\"Hel\"},\"logprobs\":null,\"finish_reason\":null}],\"x_extra\":{\"a\":[1,2]}"
        "}\n\n"
        "data: {" ENV_IN ",\"choices\":[{\"index\":0, \"delta\":{\"content\":\"lo \\\"w\\\"\\n\"},"
        "\"finish_reason\":null}]}\n\n"
        "data: {" ENV_IN ",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
        "data: [DONE]\n\n";
    int fwd;
    char *out = relay(&provider_openai, body, false, &fwd);
    const char *want =
        ROLE_OUT "data: {" ENV_OUT ",\"system_fingerprint\":\"fp_1\",\"choices\":[{\"index\":0,"
                 "\"delta\":{\"content\":\"Hel\"},\"logprobs\":null,\"finish_reason\":null}],"
                 "\"x_extra\":{\"a\":[1,2]}}\n\n"
                 "data: {" ENV_OUT ",\"choices\":[{\"index\":0, \"delta\":{\"content\":\"lo "
                 "\\\"w\\\"\\n\"},\"finish_reason\":null}]}\n\n"
                 "data: {" ENV_OUT ",\"system_fingerprint\":\"fp_1\",\"choices\":[{\"index\":0,"
                 "\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n" DONE;
    assert_string_equal(out, want);
    assert_int_equal(fwd, 2);
    free(out);
    assert_int_equal(expect_same_view(body, false), 2);
    assert_int_equal(expect_same_view(body, true), 2);
}

static void test_a_content_chunk_with_a_finish_reason_forwards_it_as_null(void **state)
{
    (void)state;
    const char *body = "data: {" ENV_IN ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},"
                       "\"finish_reason\":\"length\"}]}\n\n"
                       "data: [DONE]\n\n";
    char *out = relay(&provider_openai, body, false, NULL);
    assert_non_null(strstr(out, "data: {" ENV_OUT ",\"choices\":[{\"index\":0,\"delta\":{"
                                "\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n"));
    assert_non_null(strstr(out, "\"finish_reason\":\"length\"}]}\n\n" DONE));
    free(out);
    assert_int_equal(expect_same_view(body, false), 1);
}

static void test_usage_null_is_dropped_unless_the_client_asked_for_usage(void **state)
{
    (void)state;
    const char *body =
        "data: {" ENV_IN ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"A\"}}],"
        "\"usage\":null}\n\n"
        "data: {\"usage\":null," ENV_IN
        ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"B\"}}]}\n\n"
        "data: {" ENV_IN ",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],"
        "\"usage\":null}\n\n"
        "data: {" ENV_IN ",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,"
        "\"total_tokens\":5}}\n\n"
        "data: [DONE]\n\n";
    char *out = relay(&provider_openai, body, false, NULL);
    assert_non_null(strstr(out, "data: {" ENV_OUT ",\"choices\":[{\"index\":0,\"delta\":{"
                                "\"content\":\"A\"}}]}\n\n"));
    assert_non_null(strstr(out, "data: {" ENV_OUT ",\"choices\":[{\"index\":0,\"delta\":{"
                                "\"content\":\"B\"}}]}\n\n"));
    assert_null(strstr(out, "usage"));
    free(out);
    out = relay(&provider_openai, body, true, NULL);
    assert_non_null(strstr(out, "data: {" ENV_OUT ",\"choices\":[{\"index\":0,\"delta\":{"
                                "\"content\":\"A\"}}],\"usage\":null}\n\n"));
    assert_non_null(strstr(out, "data: {\"usage\":null," ENV_OUT ",\"choices\":[{\"index\":0,"
                                "\"delta\":{\"content\":\"B\"}}]}\n\n"));
    assert_non_null(strstr(out, "\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,"
                                "\"total_tokens\":5,"));
    free(out);
    assert_int_equal(expect_same_view(body, false), 2);
    assert_int_equal(expect_same_view(body, true), 2);
}

/* Each of these content chunks must go through the parser (nothing forwarded), and read the
 * same as without the scanner. */
static void test_what_the_scanner_is_not_sure_of_goes_to_the_parser(void **state)
{
    (void)state;
    static const char *const chunks[] = {
        "{" ENV_IN ",\"error\":{\"message\":\"boom\",\"type\":\"server_error\"},\"choices\":[{"
        "\"index\":0,\"delta\":{\"content\":\"x\"}}]}",
        "{" ENV_IN ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\",\"tool_calls\":[{"
        "\"index\":0,\"id\":\"c1\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}}]}",
        "{" ENV_IN ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"caf\\u00e9\"}}]}",
        "{" ENV_IN ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"bad \xC3\x28\"}}]}",
        "{" ENV_IN ",\n\"choices\":[{\"index\":0,\"delta\":{\"content\":\"nl\"}}]}",
        "{" ENV_IN
        ",\"model\":\"twice\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"d\"}}]}",
        "{" ENV_IN ",\"choices\":[{\"index\":1,\"delta\":{\"content\":\"second\"}}]}",
        "{" ENV_IN ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}},{\"index\":0,"
        "\"delta\":{\"content\":\"b\"}}]}",
        "{" ENV_IN ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lp\"},\"logprobs\":{"
        "\"content\":[]}}]}",
        "{" ENV_IN
        ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"r\",\"reasoning\":\"hm\"}}]}",
        "{" ENV_IN
        ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"rf\",\"refusal\":\"no\"}}]}",
        "{" ENV_IN ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"u\"}}],\"usage\":{"
        "\"prompt_tokens\":1}}",
        "{" ENV_IN ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tail\"}}]} junk",
        "{" ENV_IN ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"num\"}}],\"n\":01}",
        "{" ENV_IN ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"t\\x\"}}]}",
        "{" ENV_IN ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"fr\"},\"finish_reason\":"
        "\"st\\/op\"}]}",
        "{" ENV_IN ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"open\"}}]",
        "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"no envelope\"}}]}",
    };
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        char body[1024];
        snprintf(body, sizeof body,
                 "data: {" ENV_IN ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"}}]}"
                 "\n\ndata: %s\n\n"
                 "data: {" ENV_IN ",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":"
                 "\"stop\"}]}\n\ndata: [DONE]\n\n",
                 chunks[i]);
        print_message("chunk %zu\n", i);
        assert_int_equal(expect_same_view(body, false), 1); /* only the first */
    }
}

static void test_an_event_named_error_goes_to_the_parser(void **state)
{
    (void)state;
    const char *body =
        "data: {" ENV_IN ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"}}]}\n\n"
        "event: error\ndata: {" ENV_IN ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}"
        "\n\n";
    char *out = relay(&provider_openai, body, false, NULL);
    assert_non_null(strstr(out, "\"error\":{"));
    assert_null(strstr(out, "\"content\":\"x\""));
    free(out);
    assert_int_equal(expect_same_view(body, false), 1);
}

static void test_a_split_utf8_sequence_is_repaired_not_forwarded(void **state)
{
    (void)state;
    /* The parser's path left half of a character waiting (invalid bytes in one chunk make
     * the scanner refuse it); the next valid chunk must not be forwarded past the repair. */
    const char *body =
        "data: {" ENV_IN ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\xC3\"}}]}\n\n"
        "data: {" ENV_IN ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"}}]}\n\n"
        "data: {" ENV_IN ",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}"
        "\n\ndata: [DONE]\n\n";
    assert_int_equal(expect_same_view(body, false), 0);
}

static void test_cut_streams_and_error_events_end_the_same(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "data: {" ENV_IN ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"cut\"}}]}\n\n",
        "data: {" ENV_IN ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},"
        "\"finish_reason\":\"stop\"}]}\n\n",
        "data: {" ENV_IN ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n"
        "data: {\"error\":{\"message\":\"rate limited\",\"type\":\"rate_limit_error\"}}\n\n",
        "data: {\"error\":{\"message\":\"overloaded\",\"type\":\"overloaded\"}}\n\n",
        "data: {" ENV_IN ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n"
        "{\"error\":{\"code\":503,\"message\":\"vertex\"}}\n",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
        expect_same_view(bodies[i], i % 2 == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_chunks_are_forwarded_as_they_came),
        cmocka_unit_test(test_a_content_chunk_with_a_finish_reason_forwards_it_as_null),
        cmocka_unit_test(test_usage_null_is_dropped_unless_the_client_asked_for_usage),
        cmocka_unit_test(test_what_the_scanner_is_not_sure_of_goes_to_the_parser),
        cmocka_unit_test(test_an_event_named_error_goes_to_the_parser),
        cmocka_unit_test(test_a_split_utf8_sequence_is_repaired_not_forwarded),
        cmocka_unit_test(test_cut_streams_and_error_events_end_the_same),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
