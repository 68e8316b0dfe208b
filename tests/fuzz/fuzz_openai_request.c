/*
 * fuzz_openai_request.c - libFuzzer target for the gateway's request parser. Properties: no
 * crash or leak; a message on every failure; an accepted request, encoded for an OpenAI
 * target, parses again (what we send upstream is a request we would accept ourselves); and
 * the Anthropic and Gemini encoders (tool call ids, thought signatures, tool results) either
 * refuse it with a message or produce a body.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/provider.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void encode_other(const struct provider_ops *ops, enum provider_kind kind,
                         const struct llm_request *req)
{
    char model[] = "gemini-3-pro-preview", url[] = "http://127.0.0.1:1/v1", name[] = "fuzz",
         version[] = "2023-06-01";
    struct config_target t = {.name = name,
                              .kind = kind,
                              .base_url = url,
                              .model = model,
                              .anthropic_version = version,
                              .default_max_tokens = 256};
    struct http_request out;
    char msg[PROVIDER_MSG_MAX] = "";
    http_request_init(&out);
    enum sb_status st = ops->encode(&t, req, &out, msg, sizeof msg);
    if ((st == SB_OK && !out.body) || (st != SB_OK && msg[0] == '\0'))
        __builtin_trap();
    http_request_cleanup(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct llm_request req, again;
    struct http_request out;
    char msg[PROVIDER_MSG_MAX] = "";
    char model[] = "gpt-4o-mini", url[] = "http://127.0.0.1:1/v1", name[] = "fuzz";
    struct config_target t = {.name = name, .base_url = url, .model = model};

    llm_request_init(&req);
    llm_request_init(&again);
    http_request_init(&out);
    enum sb_status st = openai_request_parse((const char *)data, size, &req, msg, sizeof msg);
    if (st != SB_OK) {
        if (msg[0] == '\0')
            __builtin_trap();
        goto out;
    }
    (void)llm_request_estimate_tokens(&req);
    st = provider_openai.encode(&t, &req, &out, msg, sizeof msg);
    if (st != SB_OK)
        __builtin_trap();
    st = openai_request_parse(out.body, out.body_len, &again, msg, sizeof msg);
    if (st != SB_OK || again.n_messages != req.n_messages || again.n_tools != req.n_tools)
        __builtin_trap();
    encode_other(&provider_anthropic, PROVIDER_ANTHROPIC, &req);
    encode_other(&provider_gemini, PROVIDER_GEMINI, &req);
out:
    http_request_cleanup(&out);
    llm_request_cleanup(&again);
    llm_request_cleanup(&req);
    return 0;
}
