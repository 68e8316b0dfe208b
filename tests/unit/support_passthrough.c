/*
 * support_passthrough.c - see support_passthrough.h.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../../src/gateway/internal.h"
#include "support_passthrough.h"

struct relay {
    struct gw_sse sse;
    struct buf *out;
    struct buf scratch;
    int forwarded;
};

/* chat.c's chat_on_commit + chat_on_event, with the commit at the first non-error event. */
static int relay_event(void *ctx, const struct llm_event *ev)
{
    struct relay *r = ctx;
    if (ev->type == LLM_EV_ERROR && !r->sse.started)
        return 0;
    gw_sse_begin(&r->sse, r->out);
    if (ev->type == LLM_EV_TEXT && ev->chunk && !gw_sse_is_over(&r->sse))
        r->forwarded++;
    gw_sse_event(&r->sse, ev, r->out);
    return 0;
}

void support_feed(struct provider_call *pc, const char *body, size_t len, unsigned split)
{
    size_t at = 0;
    while (at < len) {
        size_t piece = len - at;
        if (split) {
            split = split * 1103515245u + 12345u;
            piece = 1 + (split >> 16) % 97;
            if (piece > len - at)
                piece = len - at;
        }
        if (provider_call_on_data(pc, body + at, piece) != 0)
            return;
        at += piece;
    }
}

enum llm_errclass pt_relay(const struct provider_ops *ops, const char *body, size_t len,
                           bool include_usage, unsigned split, struct buf *out, int *forwarded)
{
    struct relay r = {.out = out};
    struct llm_sink sink = {relay_event, &r};
    gw_sse_init(&r.sse, PT_ID, PT_MODEL, PT_CREATED, include_usage);
    struct provider_call *pc = provider_call_new(ops, true, &sink, NULL);
    provider_call_on_status(pc, 200);
    provider_call_on_header(pc, "Content-Type", "text/event-stream", 0);
    support_feed(pc, body, len, split);
    enum llm_errclass cls = provider_call_finish(pc, LLM_ERR_NONE, NULL);
    const char *msg = provider_call_error(pc);
    /* chat_on_done: a started stream that did not end gets an error chunk. */
    if ((r.sse.started || cls == LLM_ERR_NONE) && !gw_sse_is_over(&r.sse)) {
        const char *m = cls != LLM_ERR_NONE && msg[0] ? msg : "the answer ended without a finish";
        gw_sse_begin(&r.sse, out);
        gw_sse_fail(&r.sse, m, strlen(m), out);
    } else if (!r.sse.started) {
        buf_printf(out, "early %s: %s\n", llm_errclass_name(cls), msg);
    }
    provider_call_free(pc);
    gw_sse_cleanup(&r.sse);
    if (forwarded)
        *forwarded = r.forwarded;
    return cls;
}

void support_log_event(struct buf *log, const struct llm_event *ev)
{
    switch (ev->type) {
    case LLM_EV_TEXT:
        buf_printf(log, "text %s ", llm_text_kind_field(ev->kind));
        buf_append(log, ev->text, ev->len);
        if (ev->logprobs)
            buf_printf(log, " logprobs %.*s", (int)ev->logprobs_len, ev->logprobs);
        break;
    case LLM_EV_TOOL_CALL:
        buf_printf(log, "call %d %s %s", ev->index, ev->id ? ev->id : "-",
                   ev->name ? ev->name : "-");
        break;
    case LLM_EV_TOOL_ARGS:
        buf_printf(log, "args %d ", ev->index);
        buf_append(log, ev->text, ev->len);
        break;
    case LLM_EV_USAGE:
        buf_printf(log, "usage %ld/%ld/%ld", ev->usage.input_tokens, ev->usage.output_tokens,
                   ev->usage.cached_tokens);
        break;
    case LLM_EV_FINISH:
        buf_printf(log, "finish %s fp=%s tier=%s",
                   llm_finish_name(ev->finish) ? llm_finish_name(ev->finish) : "-",
                   ev->system_fingerprint ? ev->system_fingerprint : "-",
                   ev->service_tier ? ev->service_tier : "-");
        break;
    case LLM_EV_ERROR:
        buf_printf(log, "error %s %.*s", llm_errclass_name(ev->errclass), (int)ev->len, ev->text);
        break;
    }
    buf_putc(log, '\n');
}

static int view_event(void *ctx, const struct llm_event *ev)
{
    support_log_event(ctx, ev);
    return 0;
}

void support_client_read(const char *body, size_t len, bool stream, struct buf *log)
{
    struct llm_sink sink = {view_event, log};
    struct provider_call *pc = provider_call_new(&provider_openai_parsed, stream, &sink, NULL);
    provider_call_on_status(pc, 200);
    provider_call_on_header(pc, "Content-Type", stream ? "text/event-stream" : "application/json",
                            0);
    if (len)
        provider_call_on_data(pc, body, len);
    enum llm_errclass cls = provider_call_finish(pc, LLM_ERR_NONE, NULL);
    buf_printf(log, "end %s\n", llm_errclass_name(cls));
    provider_call_free(pc);
}

void pt_client_view(const char *sse, size_t len, struct buf *log)
{
    support_client_read(sse, len, true, log);
}
