/*
 * fuzz_openai_request.c - libFuzzer target for the gateway's request parser. Properties: no
 * crash or leak; a message on every failure; and an accepted request, encoded for an OpenAI
 * target, parses again (what we send upstream is a request we would accept ourselves).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/provider.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
out:
    http_request_cleanup(&out);
    llm_request_cleanup(&again);
    llm_request_cleanup(&req);
    return 0;
}
