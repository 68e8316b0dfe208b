/*
 * fuzz_openai_response.c - libFuzzer target for OpenAI response decoding: decode_full,
 * classify, and the whole provider_call glue (status, content-type, streamed or not, body in
 * random pieces). The first byte picks the scenario and seeds the splits.
 * Properties checked on every event sequence: exactly one terminal event (FINISH or ERROR),
 * last; nothing after it; text (of any kind: content, refusal, reasoning) and tool arguments
 * are valid UTF-8; logprobs are a JSON object; tool indices are sane. The 429 status also
 * derives a retry delay and client headers from rate-limit headers.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/provider.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct check {
    int terminals;
    int events;
    int stop_at; /* 0 = never stop */
    struct llm_response collected;
};

static int check_event(void *ctx, const struct llm_event *ev)
{
    struct check *c = ctx;
    if (c->terminals)
        __builtin_trap(); /* nothing after FINISH/ERROR */
    switch (ev->type) {
    case LLM_EV_TEXT:
        if ((unsigned)ev->kind > LLM_TEXT_REASONING ||
            (ev->logprobs && (ev->logprobs_len == 0 || ev->logprobs[0] != '{')))
            __builtin_trap();
        if (ev->len == 0 || utf8_valid_prefix(ev->text, ev->len) != ev->len)
            __builtin_trap();
        break;
    case LLM_EV_TOOL_ARGS:
        if (ev->len == 0 || utf8_valid_prefix(ev->text, ev->len) != ev->len)
            __builtin_trap();
        break;
    case LLM_EV_TOOL_CALL:
        if (!ev->id || !ev->name || ev->index < 0 || ev->index > 1000)
            __builtin_trap();
        break;
    case LLM_EV_USAGE:
        if (!ev->usage.present || ev->usage.input_tokens < 0 || ev->usage.output_tokens < 0)
            __builtin_trap();
        break;
    case LLM_EV_FINISH:
        if ((ev->system_fingerprint && !memchr(ev->system_fingerprint, '\0', 4096)) ||
            (ev->service_tier && !memchr(ev->service_tier, '\0', 4096)))
            __builtin_trap();
        c->terminals++;
        break;
    case LLM_EV_ERROR:
        c->terminals++;
        break;
    }
    llm_response_collect(&c->collected, ev);
    return c->stop_at && ++c->events >= c->stop_at;
}

/* Direct decoder calls: they must not emit ERROR themselves. */
static int plain_event(void *ctx, const struct llm_event *ev)
{
    (void)ctx;
    if (ev->type == LLM_EV_ERROR)
        __builtin_trap();
    return 0;
}

static void run_call(uint8_t flags, const char *body, size_t len)
{
    static const long statuses[] = {200, 200, 200, 429, 500, 400, 401, 0};
    static const char *const types[] = {"text/event-stream", "application/json", "text/html", NULL};
    struct check c = {.stop_at = (flags & 0x80) ? 3 : 0};
    struct llm_sink sink = {check_event, &c};
    unsigned seed = flags | 0x100u;
    llm_response_init(&c.collected);
    struct provider_call *pc = provider_call_new(&provider_openai, flags & 1, &sink, "sk-fuzz");
    provider_call_on_status(pc, statuses[(flags >> 1) & 7]);
    if (types[(flags >> 4) & 3])
        provider_call_on_header(pc, "content-type", types[(flags >> 4) & 3], 0);
    provider_call_on_header(pc, "retry-after", "1", 0);
    provider_call_on_header(pc, "x-ratelimit-remaining-requests", "0", 0);
    provider_call_on_header(pc, "anthropic-ratelimit-tokens-reset", "2026-12-06T10:00:00Z", 0);
    size_t at = 0;
    while (at < len) {
        seed = seed * 1103515245u + 12345u;
        size_t piece = 1 + (seed >> 16) % 64;
        if (piece > len - at)
            piece = len - at;
        if (provider_call_on_data(pc, body + at, piece) != 0)
            break;
        at += piece;
    }
    enum llm_errclass outcome =
        provider_call_finish(pc, (flags & 0x40) ? LLM_ERR_TIMEOUT : LLM_ERR_NONE, "timed out");
    bool stopped = outcome == LLM_ERR_CANCELLED && c.terminals == 0;
    if (c.terminals != 1 && !stopped)
        __builtin_trap();
    if ((outcome == LLM_ERR_NONE) != (c.terminals == 1 && c.collected.finished))
        __builtin_trap();
    (void)provider_call_error(pc);
    if (!strstr(provider_call_client_headers(pc), "x-ratelimit-remaining-requests: 0\n"))
        __builtin_trap();
    provider_call_free(pc);
    llm_response_cleanup(&c.collected);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    char msg[PROVIDER_MSG_MAX];
    struct llm_sink plain = {plain_event, NULL};

    msg[0] = '\0';
    (void)provider_openai.decode_full(body, len, &plain, msg, sizeof msg);
    msg[0] = '\0';
    struct llm_error_info info;
    llm_error_info_init(&info);
    (void)provider_openai.classify(400 + data[0], body, len, &info, msg, sizeof msg);
    if (!memchr(info.param, '\0', sizeof info.param))
        __builtin_trap();
    if (msg[0] == '\0')
        __builtin_trap();
    run_call(data[0], body, len);
    return 0;
}
