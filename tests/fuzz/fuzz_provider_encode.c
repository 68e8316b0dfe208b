/*
 * fuzz_provider_encode.c - libFuzzer target for the Anthropic and Gemini request encoders,
 * which write the messages straight into the body. Input: a Chat Completions body; one the
 * gateway's parser accepts is encoded for Anthropic (with and without a default max_tokens,
 * the model from the target or the request) and Gemini (2.5, 3 with its skip signature, a
 * "models/" prefix, the model from the request). Properties: the body is byte for byte the
 * one the cJSON tree encoders printed (support_tree_encode.c), or the refusal has the same
 * status and message; an accepted body parses as a JSON object. Seeds:
 * tests/fuzz/corpus/provider_encode/ (tests/fixtures/encode/ and the request parser's seeds).
 */
/* fuzz-extra: tests/unit/support_tree_encode.c */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../unit/support_tree_encode.h"
#include "switchboard/provider.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char t_name[] = "fuzz", t_url[] = "http://127.0.0.1:1/v1", t_version[] = "2023-06-01";
static char m_claude[] = "claude-sonnet-4-5", m_g25[] = "gemini-2.5-flash",
            m_g3[] = "gemini-3-pro-preview", m_g3p[] = "models/gemini-3-flash";

static const struct {
    const struct provider_ops *ops;
    enum provider_kind kind;
    char *model;
    long default_max_tokens;
} targets[] = {
    {&provider_anthropic, PROVIDER_ANTHROPIC, m_claude, 1024},
    {&provider_anthropic, PROVIDER_ANTHROPIC, NULL, 0},
    {&provider_gemini, PROVIDER_GEMINI, m_g25, 0},
    {&provider_gemini, PROVIDER_GEMINI, m_g3, 0},
    {&provider_gemini, PROVIDER_GEMINI, m_g3p, 0},
    {&provider_gemini, PROVIDER_GEMINI, NULL, 0},
};

/* An accepted body is one JSON object. */
static void check_body(const struct provider_ops *ops, const struct config_target *t,
                       const struct llm_request *req)
{
    char msg[PROVIDER_MSG_MAX] = "";
    struct http_request out;
    http_request_init(&out);
    if (ops->encode(t, req, &out, msg, sizeof msg) == SB_OK) {
        cJSON *root = cJSON_ParseWithLength(out.body, out.body_len);
        if (!cJSON_IsObject(root))
            __builtin_trap();
        cJSON_Delete(root);
    }
    http_request_cleanup(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct llm_request req;
    char msg[PROVIDER_MSG_MAX] = "", why[1200];
    llm_request_init(&req);
    if (openai_request_parse((const char *)data, size, &req, msg, sizeof msg) != SB_OK)
        goto out;
    for (size_t k = 0; k < sizeof targets / sizeof targets[0]; k++) {
        struct config_target t = {.name = t_name,
                                  .kind = targets[k].kind,
                                  .base_url = t_url,
                                  .model = targets[k].model,
                                  .anthropic_version = t_version,
                                  .default_max_tokens = targets[k].default_max_tokens};
        if (!ref_encode_matches(targets[k].ops, &t, &req, why, sizeof why)) {
            fprintf(stderr, "target %zu: %s\n", k, why);
            __builtin_trap();
        }
        check_body(targets[k].ops, &t, &req);
    }
out:
    llm_request_cleanup(&req);
    return 0;
}
