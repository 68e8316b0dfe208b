/*
 * test_encode_bounds.c - every adapter encodes in work linear in the request. A request of
 * many small messages (a giant user turn of tool results interleaved with text, results
 * that name no function so Gemini must find the call by id) is parsed as the gateway parses
 * it and encoded for every wire format; provider_encode_steps() must grow by a small constant
 * per message. Operation counts, not clocks: a quadratic or cubic encoder fails at the
 * small size already, long before the 4 MiB one would take minutes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "switchboard/provider.h"

/* Steps allowed per message (and per tool call) of the request. */
#define STEPS_PER_ITEM 8

/* A Chat Completions body of about `bytes` bytes: calls c0..cN-1 from the assistant, then
 * one user turn alternating a result for each call (no "name") with a user text. */
static char *worst_body(size_t bytes, size_t *n_items)
{
    struct buf b;
    size_t per = 2 * 110; /* one call (~60 bytes) + one result and one text (~160 bytes) */
    size_t calls = bytes / per + 1;
    buf_init(&b);
    buf_puts(&b, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"go\"}");
    for (size_t k = 0; k < calls; k++)
        buf_printf(
            &b,
            ",{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c%zu\",\"type\":\"function\","
            "\"function\":{\"name\":\"f%zu\",\"arguments\":\"{}\"}}]}",
            k, k % 7);
    for (size_t k = 0; k < calls; k++)
        buf_printf(&b,
                   ",{\"role\":\"tool\",\"tool_call_id\":\"c%zu\",\"content\":\"result %zu\"}"
                   ",{\"role\":\"user\",\"content\":\"some text between the results, %zu\"}",
                   k, k, k);
    buf_puts(&b, "]}");
    *n_items = 1 + 4 * calls; /* messages + tool calls */
    return buf_take(&b);
}

static void encode_under_every_adapter(size_t bytes)
{
    static const struct {
        const struct provider_ops *ops;
        enum provider_kind kind;
        char model[32];
    } adapters[] = {
        {&provider_openai, PROVIDER_OPENAI, "gpt-4o-mini"},
        {&provider_anthropic, PROVIDER_ANTHROPIC, "claude-sonnet-4-5"},
        {&provider_gemini, PROVIDER_GEMINI, "gemini-2.5-flash"},
    };
    char msg[PROVIDER_MSG_MAX] = "";
    size_t items = 0;
    char *body = worst_body(bytes, &items);
    struct llm_request req;
    llm_request_init(&req);
    assert_true(strlen(body) >= bytes);
    assert_int_equal(openai_request_parse(body, strlen(body), &req, msg, sizeof msg), SB_OK);
    for (size_t i = 0; i < SB_ARRAY_LEN(adapters); i++) {
        char name[] = "t", url[] = "http://127.0.0.1:1/v1", version[] = "2023-06-01";
        char model[sizeof adapters[i].model];
        memcpy(model, adapters[i].model, sizeof model);
        struct config_target t = {.name = name,
                                  .kind = adapters[i].kind,
                                  .base_url = url,
                                  .model = model,
                                  .anthropic_version = version};
        struct http_request out;
        http_request_init(&out);
        uint64_t before = provider_encode_steps();
        enum sb_status st = adapters[i].ops->encode(&t, &req, &out, msg, sizeof msg);
        uint64_t steps = provider_encode_steps() - before;
        if (st != SB_OK)
            fail_msg("%s: %s", adapters[i].ops->name, msg);
        if (steps > STEPS_PER_ITEM * items + 64)
            fail_msg("%s: %llu steps for %zu items (%zu bytes)", adapters[i].ops->name,
                     (unsigned long long)steps, items, bytes);
        assert_true(steps >= items / 2); /* the counter counts */
        assert_true(out.body_len >= bytes / 2);
        http_request_cleanup(&out);
    }
    llm_request_cleanup(&req);
    free(body);
}

static void test_every_adapter_encodes_a_small_worst_case_in_linear_steps(void **state)
{
    (void)state;
    encode_under_every_adapter(256 * 1024);
}

static void test_every_adapter_encodes_a_4_mib_request_in_linear_steps(void **state)
{
    (void)state;
    encode_under_every_adapter(4u * 1024 * 1024);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_adapter_encodes_a_small_worst_case_in_linear_steps),
        cmocka_unit_test(test_every_adapter_encodes_a_4_mib_request_in_linear_steps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
