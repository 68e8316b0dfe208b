/*
 * fuzz_openai_request.c - libFuzzer target for the gateway's request parser. Properties: no
 * crash or leak; a message on every failure; an accepted request, encoded for an OpenAI
 * target, parses again into the same messages (role, text, tool calls, tool call id: what we
 * send upstream is the request we accepted, byte for byte in every string but the thought
 * signatures kept in tool call ids); and
 * the Anthropic and Gemini encoders (tool call ids, thought signatures, tool results) either
 * refuse it with a message or produce a body.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/provider/wire.h"
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

/* NULL and "" are the same text (an assistant turn with no text and no tool calls). */
static int same_text(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

/* A tool call id as sent upstream: without the Gemini thought signature switchboard keeps in
 * the ids it gives clients (wire.h, wire_add_call_id). */
static int same_id(const char *given, const char *sent)
{
    size_t n = given ? wire_call_id_len(given) : 0;
    return strlen(sent ? sent : "") == n && (n == 0 || memcmp(given, sent, n) == 0);
}

/* The messages of req and of again (req encoded and parsed back) say the same. */
static int same_messages(const struct llm_request *req, const struct llm_request *again)
{
    int same = again->n_messages == req->n_messages;
    for (size_t i = 0; same && i < req->n_messages; i++) {
        const struct llm_message *a = &req->messages[i], *b = &again->messages[i];
        same = a->role == b->role && same_text(a->content, b->content) &&
               same_id(a->tool_call_id, b->tool_call_id) && a->n_tool_calls == b->n_tool_calls;
        for (size_t k = 0; same && k < a->n_tool_calls; k++)
            same = same_id(a->tool_calls[k].id, b->tool_calls[k].id) &&
                   same_text(a->tool_calls[k].name, b->tool_calls[k].name) &&
                   same_text(a->tool_calls[k].arguments, b->tool_calls[k].arguments);
    }
    return same;
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
    if (st != SB_OK || !same_messages(&req, &again) || again.n_tools != req.n_tools)
        __builtin_trap();
    encode_other(&provider_anthropic, PROVIDER_ANTHROPIC, &req);
    encode_other(&provider_gemini, PROVIDER_GEMINI, &req);
out:
    http_request_cleanup(&out);
    llm_request_cleanup(&again);
    llm_request_cleanup(&req);
    return 0;
}
