/*
 * fuzz_gemini_response.c - libFuzzer target for the Gemini response decoders.
 *
 * Input: byte 0 seeds the chunk splits (and whether the sink stops early); the rest is a
 * provider answer. It is decoded three ways: whole (decode_full), as an SSE stream through
 * provider_call split at pseudo-random points, and as an error body (classify). A checking
 * sink aborts on any break of the event grammar in llm.h: tool indices in order, ids and
 * names present, nothing after FINISH/ERROR, exactly one of them per call, nothing after the
 * sink asked to stop, and valid UTF-8 out of the glue.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/provider.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct provider_ops *const ops = &provider_gemini;

struct check {
    int tools;      /* TOOL_CALLs seen */
    bool ended;     /* FINISH or ERROR seen */
    bool utf8;      /* text must be valid UTF-8 (the glue guarantees it) */
    int stop_after; /* > 0: ask to stop after this many events */
    int n;
    bool stopped;
};

static int check_event(void *ctx, const struct llm_event *ev)
{
    struct check *c = ctx;
    if (c->ended || c->stopped)
        abort();
    switch (ev->type) {
    case LLM_EV_TEXT:
    case LLM_EV_TOOL_ARGS:
        if (!ev->text || ev->len == 0 || memchr(ev->text, '\0', ev->len))
            abort();
        if (c->utf8 && utf8_valid_prefix(ev->text, ev->len) != ev->len)
            abort();
        if (ev->type == LLM_EV_TOOL_ARGS && (ev->index < 0 || ev->index >= c->tools))
            abort();
        break;
    case LLM_EV_TOOL_CALL:
        if (ev->index != c->tools || !ev->id || !ev->name)
            abort();
        c->tools++;
        break;
    case LLM_EV_USAGE:
        if (!ev->usage.present || ev->usage.input_tokens < 0 || ev->usage.output_tokens < 0 ||
            ev->usage.cached_tokens < 0 || ev->usage.cached_tokens > ev->usage.input_tokens)
            abort();
        break;
    case LLM_EV_FINISH:
    case LLM_EV_ERROR:
        c->ended = true;
        break;
    }
    if (c->stop_after > 0 && ++c->n >= c->stop_after) {
        c->stopped = true;
        return 1;
    }
    return 0;
}

static void run_full(const char *body, size_t len)
{
    struct check c = {0};
    struct llm_sink sink = {check_event, &c};
    char msg[PROVIDER_MSG_MAX] = "";
    enum llm_errclass cls = ops->decode_full(body, len, &sink, msg, sizeof msg);
    if ((cls == LLM_ERR_NONE) != c.ended || (cls != LLM_ERR_NONE && msg[0] == '\0'))
        abort();
}

static void run_stream(const char *body, size_t len, unsigned seed, int stop_after)
{
    struct check c = {.utf8 = true, .stop_after = stop_after};
    struct llm_sink sink = {check_event, &c};
    struct provider_call *call =
        provider_call_new(ops, true, &sink, "AIzaFUZZsecret0123456789abcdef");
    provider_call_on_status(call, 200);
    provider_call_on_header(call, "content-type", "text/event-stream", 0);
    for (size_t off = 0; off < len;) {
        seed = seed * 1103515245u + 12345u;
        size_t n = 1 + (seed >> 16) % 64;
        if (n > len - off)
            n = len - off;
        if (provider_call_on_data(call, body + off, n))
            break;
        off += n;
    }
    enum llm_errclass cls = provider_call_finish(call, LLM_ERR_NONE, NULL);
    if (!c.stopped && !c.ended)
        abort(); /* exactly one FINISH or ERROR */
    if (c.stopped && !c.ended && cls != LLM_ERR_CANCELLED)
        abort();
    provider_call_free(call);
}

static void run_classify(const char *body, size_t len, unsigned seed)
{
    char msg[PROVIDER_MSG_MAX] = "";
    long status = 400 + (long)(seed % 200);
    struct llm_error_info info;
    llm_error_info_init(&info);
    if (ops->classify(status, body, len, &info, msg, sizeof msg) == LLM_ERR_NONE || msg[0] == '\0')
        abort();
    if (!memchr(info.type, '\0', sizeof info.type) || !memchr(info.code, '\0', sizeof info.code))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned seed = data[0];
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    run_full(body, len);
    run_stream(body, len, seed, 0);
    if (seed & 1)
        run_stream(body, len, seed, 1 + (int)(seed % 7));
    run_classify(body, len, seed);
    return 0;
}
