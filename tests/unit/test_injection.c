/*
 * test_injection.c - nothing a config value or a model id holds reaches the wire as
 * structure: every adapter refuses an API key (and Anthropic a version) with a control
 * character, for requests and probes alike, and Gemini refuses a model id that is not one
 * plain URL path segment. Config loading rejects these first (test_config); these are the
 * second line.
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

static const struct {
    const struct provider_ops *ops;
    enum provider_kind kind;
} adapters[] = {
    {&provider_openai, PROVIDER_OPENAI},
    {&provider_anthropic, PROVIDER_ANTHROPIC},
    {&provider_gemini, PROVIDER_GEMINI},
};

static char t_name[] = "t", t_url[] = "http://127.0.0.1:1/v1", t_model[] = "m-1",
            t_version[] = "2023-06-01";

static struct config_target target(enum provider_kind kind, char *key)
{
    struct config_target t = {.name = t_name,
                              .kind = kind,
                              .base_url = t_url,
                              .model = t_model,
                              .anthropic_version = t_version,
                              .api_key = key};
    return t;
}

/* Both the request and the probe are refused with a message naming the problem, and
 * nothing is built. */
static void expect_refused(const struct provider_ops *ops, const struct config_target *t,
                           const char *needle)
{
    struct llm_request req;
    struct http_request out;
    char msg[PROVIDER_MSG_MAX] = "";
    llm_request_init(&req);
    http_request_init(&out);
    llm_request_add_message(&req, LLM_ROLE_USER, "hi");
    if (ops->encode(t, &req, &out, msg, sizeof msg) != SB_ERR_INVALID || !strstr(msg, needle))
        fail_msg("%s encode: \"%s\"", ops->name, msg);
    assert_int_equal(out.n_headers, 0);
    assert_null(out.url);
    msg[0] = '\0';
    if (ops->encode_probe(t, &out, msg, sizeof msg) != SB_ERR_INVALID || !strstr(msg, needle))
        fail_msg("%s probe: \"%s\"", ops->name, msg);
    assert_int_equal(out.n_headers, 0);
    assert_null(out.url);
    assert_null(strstr(msg, "Injected"));
    http_request_cleanup(&out);
    llm_request_cleanup(&req);
}

static void test_every_adapter_refuses_a_key_with_control_characters(void **state)
{
    static const char *const keys[] = {"sk-a\r\nX-Injected: 1", "sk-a\nX-Injected: 1",
                                       "sk-a\rX-Injected", "sk-a\tb", "sk-\x1b[2J"};
    (void)state;
    for (size_t i = 0; i < SB_ARRAY_LEN(adapters); i++) {
        for (size_t k = 0; k < SB_ARRAY_LEN(keys); k++) {
            char key[64];
            str_copy(key, sizeof key, keys[k]);
            struct config_target t = target(adapters[i].kind, key);
            expect_refused(adapters[i].ops, &t, "API key");
        }
    }
}

static void test_anthropic_refuses_a_version_with_control_characters(void **state)
{
    char version[] = "2023-06-01\r\nX-Injected: 1";
    (void)state;
    struct config_target t = target(PROVIDER_ANTHROPIC, NULL);
    t.anthropic_version = version;
    expect_refused(&provider_anthropic, &t, "anthropic_version");
}

static void test_gemini_refuses_model_ids_that_are_not_one_path_segment(void **state)
{
    static const char *const models[] = {"..",  "models/..", ".",     "gemini/../../x?key=y",
                                         "a#b", "a%2fb",     "a\r\nb"};
    (void)state;
    for (size_t i = 0; i < SB_ARRAY_LEN(models); i++) {
        char model[64];
        str_copy(model, sizeof model, models[i]);
        struct config_target t = target(PROVIDER_GEMINI, NULL);
        t.model = model;
        expect_refused(&provider_gemini, &t, "URL path segment");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_adapter_refuses_a_key_with_control_characters),
        cmocka_unit_test(test_anthropic_refuses_a_version_with_control_characters),
        cmocka_unit_test(test_gemini_refuses_model_ids_that_are_not_one_path_segment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
