/*
 * support_json_pass.c - see support_json_pass.h.
 */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../../src/gateway/internal.h"
#include "support_json_pass.h"
#include "support_passthrough.h"

struct answer {
    struct llm_response resp;
    struct buf pass;
    struct buf *events;
};

/* chat.c's chat_on_event for a non-streaming call. */
static int answer_event(void *ctx, const struct llm_event *ev)
{
    struct answer *a = ctx;
    if (a->events)
        support_log_event(a->events, ev);
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
    support_feed(pc, body, len, split);
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
    support_client_read(json, len, false, log);
}
