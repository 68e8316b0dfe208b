/*
 * support_json_pass.c - see support_json_pass.h.
 */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../../src/gateway/internal.h"
#include "support_json_pass.h"

struct answer {
    struct llm_response resp;
    struct buf pass;
    struct buf *events;
};

static void log_event(struct buf *log, const struct llm_event *ev)
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

/* chat.c's chat_on_event for a non-streaming call. */
static int answer_event(void *ctx, const struct llm_event *ev)
{
    struct answer *a = ctx;
    if (a->events)
        log_event(a->events, ev);
    if (ev->type == LLM_EV_FINISH && ev->chunk)
        gw_completion_forward(JP_ID, JP_MODEL, JP_CREATED, ev->chunk, &a->pass);
    return llm_response_collect(&a->resp, ev);
}

enum llm_errclass jp_answer(const struct provider_ops *ops, const char *body, size_t len,
                            unsigned split, struct buf *out, struct buf *events, bool *forwarded)
{
    struct answer a = {.events = events};
    struct llm_sink sink = {answer_event, &a};
    llm_response_init(&a.resp);
    buf_init(&a.pass);
    struct provider_call *pc = provider_call_new(ops, false, &sink, NULL);
    provider_call_on_status(pc, 200);
    provider_call_on_header(pc, "Content-Type", "application/json", 0);
    size_t at = 0;
    while (at < len) {
        size_t piece = len - at;
        if (split) {
            split = split * 1103515245u + 12345u;
            piece = 1 + (split >> 16) % 97;
            piece = piece < len - at ? piece : len - at;
        }
        if (provider_call_on_data(pc, body + at, piece) != 0)
            break;
        at += piece;
    }
    enum llm_errclass cls = provider_call_finish(pc, LLM_ERR_NONE, NULL);
    if (cls != LLM_ERR_NONE)
        buf_printf(out, "error %s: %s\n", llm_errclass_name(cls), provider_call_error(pc));
    else if (a.pass.len > 0)
        buf_append(out, a.pass.data, a.pass.len);
    else
        gw_completion_json(JP_ID, JP_MODEL, JP_CREATED, &a.resp, out);
    if (forwarded)
        *forwarded = cls == LLM_ERR_NONE && a.pass.len > 0;
    provider_call_free(pc);
    llm_response_cleanup(&a.resp);
    buf_cleanup(&a.pass);
    return cls;
}

static int view_event(void *ctx, const struct llm_event *ev)
{
    log_event(ctx, ev);
    return 0;
}

/* A member as the client reads it: its printed value, "-" when absent. */
static void view_member(struct buf *log, const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    char *p = v ? cJSON_PrintUnformatted(v) : NULL;
    buf_printf(log, "%s %s\n", key, p ? p : "-");
    cJSON_free(p);
}

void jp_client_view(const char *json, size_t len, struct buf *log)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    view_member(log, root, "id");
    view_member(log, root, "object");
    view_member(log, root, "created");
    view_member(log, root, "model");
    view_member(log, cJSON_GetObjectItemCaseSensitive(root, "usage"), "total_tokens");
    cJSON_Delete(root);
    struct llm_sink sink = {view_event, log};
    struct provider_call *pc = provider_call_new(&provider_openai_parsed, false, &sink, NULL);
    provider_call_on_status(pc, 200);
    provider_call_on_header(pc, "Content-Type", "application/json", 0);
    if (len)
        provider_call_on_data(pc, json, len);
    enum llm_errclass cls = provider_call_finish(pc, LLM_ERR_NONE, NULL);
    buf_printf(log, "end %s\n", llm_errclass_name(cls));
    provider_call_free(pc);
}
