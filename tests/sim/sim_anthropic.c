/*
 * sim_anthropic.c - the Anthropic Messages wire format: POST /v1/messages (JSON and the SSE
 * event sequence), POST /v1/messages/count_tokens, GET /v1/models[/{id}], errors
 * {"type":"error","error":{"type","message"},"request_id"}.
 *
 * Checks what api.anthropic.com checks: x-api-key and anthropic-version headers, max_tokens,
 * top-level system only, user-first alternating roles, content block shapes, tool_use /
 * tool_result pairing, and no extra top-level fields. Stateless; request thread.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim.h"

#define MAX_TOOL_USES 64
#define TOOL_PREAMBLE "I'll look that up."

static const char *const allowed_keys[] = {
    "model",    "messages",     "max_tokens", "system",      "metadata", "stop_sequences",
    "stream",   "temperature",  "top_k",      "top_p",       "tools",    "tool_choice",
    "thinking", "service_tier", "container",  "mcp_servers",
};

struct an_req {
    struct sim_prompt p;
    bool stream;
    const char *tool_ids[MAX_TOOL_USES]; /* tool_use ids of the previous assistant message */
    size_t n_tool_ids;
    size_t tool_msg; /* index of that message */
    char msg[512];
};

static bool fail(struct an_req *q, const char *fmt, ...) SB_PRINTF(2, 3);

static bool fail(struct an_req *q, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q->msg, sizeof q->msg, fmt, ap);
    va_end(ap);
    return false;
}

static const char *an_type(int status)
{
    switch (status) {
    case 400:
        return "invalid_request_error";
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 413:
        return "request_too_large";
    case 429:
        return "rate_limit_error";
    case 503:
    case 529:
        return "overloaded_error";
    default:
        return status >= 500 ? "api_error" : "invalid_request_error";
    }
}

static const char *an_default_message(int status)
{
    switch (status) {
    case 401:
        return "invalid x-api-key";
    case 404:
        return "Not found";
    case 429:
        return "Number of requests has exceeded your rate limit. Please try again later.";
    case 503:
    case 529:
        return "Overloaded";
    default:
        return status >= 500 ? "Internal server error" : "Invalid request";
    }
}

static void an_error(struct sim_reply *r, int status, const char *code, const char *msg)
{
    char rid[40];
    (void)code;
    sim_make_id(rid, sizeof rid, "req_011", sim_nonce(), 21);
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "type", "error");
    cJSON *e = cJSON_AddObjectToObject(doc, "error");
    cJSON_AddStringToObject(e, "type", an_type(status));
    cJSON_AddStringToObject(e, "message", msg ? msg : an_default_message(status));
    cJSON_AddStringToObject(doc, "request_id", rid);
    sim_reply_json(r, status, doc);
    sim_reply_header(r, "request-id", "%s", rid);
}

static bool an_auth_ok(const struct sim_request *rq)
{
    return sim_key_ok(rq, sim_req_header(rq, "x-api-key"));
}

static void an_rate_limited(const struct sim_request *rq, struct sim_reply *r)
{
    double s = rq->beh.rate_limit_retry_after_s;
    char when[40];
    time_t reset = time(NULL) + (time_t)(s + 0.999);
    struct tm tm;
    gmtime_r(&reset, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    an_error(r, rq->beh.rate_limit_status, NULL,
             "This request would exceed the rate limit for your organization of 50 requests "
             "per minute. Please try again later.");
    sim_reply_header(r, "anthropic-ratelimit-requests-limit", "50");
    sim_reply_header(r, "anthropic-ratelimit-requests-remaining", "0");
    sim_reply_header(r, "anthropic-ratelimit-requests-reset", "%s", when);
}

/* ---- request parsing -------------------------------------------------------------------- */

static bool tool_result_text(struct an_req *q, const cJSON *block, struct buf *out)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(block, "content");
    if (cJSON_IsString(c)) {
        buf_puts(out, c->valuestring);
    } else if (cJSON_IsArray(c)) {
        const cJSON *it;
        cJSON_ArrayForEach(it, c)
        {
            const char *t = sim_json_str(it, "text");
            if (t)
                buf_puts(out, t);
        }
    } else if (c) {
        return fail(q, "tool_result.content: Input should be a valid string or list");
    }
    sim_prompt_count(&q->p, buf_str(out));
    return true;
}

static bool seen_tool_use(struct an_req *q, const char *id)
{
    for (size_t k = 0; id && k < q->n_tool_ids; k++) {
        if (q->tool_ids[k] && str_eq(q->tool_ids[k], id)) {
            q->tool_ids[k] = NULL; /* answered */
            return true;
        }
    }
    return false;
}

static bool block(struct an_req *q, const cJSON *b, size_t i, size_t j, bool user, struct buf *text,
                  const char **new_ids, size_t *n_new)
{
    const char *type = sim_json_str(b, "type");
    if (!cJSON_IsObject(b) || !type)
        return fail(q, "messages.%zu.content.%zu.type: Field required", i, j);
    if (str_eq(type, "text")) {
        const char *t = sim_json_str(b, "text");
        if (!t)
            return fail(q, "messages.%zu.content.%zu.text: Field required", i, j);
        if (!*t)
            return fail(q, "messages: text content blocks must be non-empty");
        if (text->len)
            buf_putc(text, '\n');
        buf_puts(text, t);
    } else if (str_eq(type, "tool_use")) {
        const cJSON *input = cJSON_GetObjectItemCaseSensitive(b, "input");
        if (user)
            return fail(q,
                        "messages.%zu.content.%zu: tool_use blocks are only allowed in "
                        "assistant messages",
                        i, j);
        if (!sim_json_str(b, "id") || !sim_json_str(b, "name"))
            return fail(q, "messages.%zu.content.%zu.tool_use.id: Field required", i, j);
        if (!cJSON_IsObject(input))
            return fail(q,
                        "messages.%zu.content.%zu.tool_use.input: Input should be a valid "
                        "dictionary",
                        i, j);
        if (*n_new >= MAX_TOOL_USES)
            return fail(q, "messages.%zu: too many tool_use blocks", i);
        new_ids[(*n_new)++] = sim_json_str(b, "id");
        sim_prompt_count_json(&q->p, input);
    } else if (str_eq(type, "tool_result")) {
        const char *id = sim_json_str(b, "tool_use_id");
        if (!user)
            return fail(q,
                        "messages.%zu.content.%zu: tool_result blocks are only allowed in "
                        "user messages",
                        i, j);
        if (!id)
            return fail(q, "messages.%zu.content.%zu.tool_result.tool_use_id: Field required", i,
                        j);
        if (!seen_tool_use(q, id))
            return fail(q,
                        "messages.%zu.content.%zu: unexpected `tool_use_id` found in "
                        "`tool_result` blocks: %s. Each `tool_result` block must have a "
                        "corresponding `tool_use` block in the previous message.",
                        i, j, id);
        struct buf t;
        buf_init(&t);
        bool ok = tool_result_text(q, b, &t);
        free(q->p.tool_result);
        q->p.tool_result = buf_take(&t);
        return ok;
    } else if (!str_eq(type, "image") && !str_eq(type, "document") && !str_eq(type, "thinking") &&
               !str_eq(type, "redacted_thinking")) {
        return fail(q,
                    "messages.%zu.content.%zu: Input tag '%s' found using 'type' does not "
                    "match any of the expected tags: 'text', 'image', 'document', "
                    "'tool_use', 'tool_result', 'thinking', 'redacted_thinking'",
                    i, j, type);
    }
    return true;
}

static bool unanswered(struct an_req *q)
{
    for (size_t k = 0; k < q->n_tool_ids; k++) {
        if (q->tool_ids[k])
            return fail(q,
                        "messages.%zu: `tool_use` ids were found without `tool_result` "
                        "blocks immediately after: %s. Each `tool_use` block must have a "
                        "corresponding `tool_result` block in the next message.",
                        q->tool_msg, q->tool_ids[k]);
    }
    return true;
}

static bool content(struct an_req *q, const cJSON *m, size_t i, bool user, bool last)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
    const char *new_ids[MAX_TOOL_USES];
    size_t n_new = 0, j = 0;
    struct buf text;
    bool ok = true;
    if (!c)
        return fail(q, "messages.%zu.content: Field required", i);
    buf_init(&text);
    free(q->p.tool_result);
    q->p.tool_result = NULL;
    if (cJSON_IsString(c)) {
        buf_puts(&text, c->valuestring);
    } else if (cJSON_IsArray(c)) {
        const cJSON *b;
        cJSON_ArrayForEach(b, c)
        {
            if (!(ok = block(q, b, i, j++, user, &text, new_ids, &n_new)))
                break;
        }
    } else {
        ok = fail(q, "messages.%zu.content: Input should be a valid list", i);
    }
    if (ok && (j == 0 && text.len == 0) && !(last && !user))
        ok = fail(q,
                  "messages.%zu: all messages must have non-empty content except for the "
                  "optional final assistant message",
                  i);
    ok = ok && unanswered(q);
    if (ok) {
        sim_prompt_count(&q->p, buf_str(&text));
        if (user && text.len) {
            free(q->p.last_user);
            q->p.last_user = buf_take(&text);
        }
        memcpy(q->tool_ids, new_ids, n_new * sizeof *new_ids);
        q->n_tool_ids = n_new;
        q->tool_msg = i;
    }
    buf_cleanup(&text);
    return ok;
}

static bool messages(struct an_req *q, const cJSON *msgs)
{
    const char *prev = NULL;
    size_t i = 0, n = (size_t)cJSON_GetArraySize(msgs);
    const cJSON *m;
    if (!msgs)
        return fail(q, "messages: Field required");
    if (!cJSON_IsArray(msgs))
        return fail(q, "messages: Input should be a valid list");
    if (n == 0)
        return fail(q, "messages: at least one message is required");
    cJSON_ArrayForEach(m, msgs)
    {
        const char *role = sim_json_str(m, "role");
        if (!cJSON_IsObject(m))
            return fail(q, "messages.%zu: Input should be a valid dictionary", i);
        if (!role)
            return fail(q, "messages.%zu.role: Field required", i);
        if (str_eq(role, "system"))
            return fail(q,
                        "messages.%zu.role: Unexpected role \"system\". The Messages API "
                        "accepts a top-level `system` parameter, not \"system\" as an input "
                        "message role.",
                        i);
        if (!str_eq(role, "user") && !str_eq(role, "assistant"))
            return fail(q, "messages.%zu.role: Input should be 'user' or 'assistant'", i);
        if (i == 0 && !str_eq(role, "user"))
            return fail(q, "messages: first message must use the \"user\" role");
        if (prev && str_eq(prev, role))
            return fail(q,
                        "messages: roles must alternate between \"user\" and \"assistant\", "
                        "but found multiple \"%s\" roles in a row",
                        role);
        if (!content(q, m, i, str_eq(role, "user"), i + 1 == n))
            return false;
        prev = role;
        i++;
    }
    return true;
}

static bool system_prompt(struct an_req *q, const cJSON *sys)
{
    if (!sys || cJSON_IsNull(sys))
        return true;
    if (cJSON_IsString(sys)) {
        sim_prompt_count(&q->p, sys->valuestring);
        return true;
    }
    if (!cJSON_IsArray(sys))
        return fail(q, "system: Input should be a valid list");
    size_t j = 0;
    const cJSON *b;
    cJSON_ArrayForEach(b, sys)
    {
        if (!str_eq(sim_json_str(b, "type"), "text") || !sim_json_str(b, "text"))
            return fail(q, "system.%zu: Input should be a valid text block", j);
        sim_prompt_count(&q->p, sim_json_str(b, "text"));
        j++;
    }
    return true;
}

static bool tools(struct an_req *q, const cJSON *tl, const cJSON *choice)
{
    size_t j = 0;
    const cJSON *t, *first = NULL;
    if (!cJSON_IsArray(tl))
        return fail(q, "tools: Input should be a valid list");
    cJSON_ArrayForEach(t, tl)
    {
        const char *name = sim_json_str(t, "name");
        const char *type = sim_json_str(t, "type");
        const cJSON *schema = cJSON_GetObjectItemCaseSensitive(t, "input_schema");
        if (!cJSON_IsObject(t) || !name)
            return fail(q, "tools.%zu.name: Field required", j);
        if (type && !str_eq(type, "custom")) { /* server tools (web_search_..., ...) */
            sim_prompt_count_json(&q->p, t);
            j++;
            continue;
        }
        if (strlen(name) > 128 || strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV"
                                               "WXYZ0123456789_-") != strlen(name))
            return fail(q,
                        "tools.%zu.custom.name: String should match pattern "
                        "'^[a-zA-Z0-9_-]{1,128}$'",
                        j);
        if (!schema)
            return fail(q, "tools.%zu.custom.input_schema: Field required", j);
        if (!cJSON_IsObject(schema))
            return fail(q, "tools.%zu.custom.input_schema: Input should be a valid dictionary", j);
        if (!first)
            first = t;
        sim_prompt_count_json(&q->p, t);
        j++;
    }
    if (choice) {
        const char *type = sim_json_str(choice, "type");
        if (str_eq(type, "any")) {
            q->p.force_tool = true;
        } else if (str_eq(type, "none")) {
            q->p.tools_off = true;
        } else if (str_eq(type, "tool")) {
            const char *want = sim_json_str(choice, "name");
            first = NULL;
            cJSON_ArrayForEach(t, tl)
            {
                if (want && str_eq(sim_json_str(t, "name"), want))
                    first = t;
            }
            if (!first)
                return fail(q, "tool_choice.tool.name: Tool '%s' not found in provided tools",
                            want ? want : "");
            q->p.force_tool = true;
        } else if (!str_eq(type, "auto")) {
            return fail(q,
                        "tool_choice: Input tag '%s' found using 'type' does not match any of "
                        "the expected tags: 'auto', 'any', 'tool', 'none'",
                        type ? type : "");
        }
    }
    if (first) {
        q->p.tool_name = xstrdup(sim_json_str(first, "name"));
        q->p.tool_has_city =
            sim_schema_has_city(cJSON_GetObjectItemCaseSensitive(first, "input_schema"));
    }
    return true;
}

static bool top_level(struct an_req *q, const cJSON *doc, bool need_max_tokens)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, doc)
    {
        bool known = false;
        for (size_t k = 0; k < SB_ARRAY_LEN(allowed_keys); k++)
            known = known || str_eq(it->string, allowed_keys[k]);
        if (!known)
            return fail(q, "%s: Extra inputs are not permitted", it->string);
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(doc, "model");
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(doc, "max_tokens");
    const cJSON *stream = cJSON_GetObjectItemCaseSensitive(doc, "stream");
    if (!model)
        return fail(q, "model: Field required");
    if (!cJSON_IsString(model))
        return fail(q, "model: Input should be a valid string");
    q->p.model = xstrdup(model->valuestring);
    if (!mt && need_max_tokens)
        return fail(q, "max_tokens: Field required");
    if (mt && !sim_json_is_int(mt))
        return fail(q, "max_tokens: Input should be a valid integer");
    if (mt && mt->valuedouble < 1)
        return fail(q, "max_tokens: Input should be greater than or equal to 1");
    q->p.max_tokens = mt ? (long)mt->valuedouble : 0;
    if (stream && !cJSON_IsBool(stream))
        return fail(q, "stream: Input should be a valid boolean");
    q->stream = cJSON_IsTrue(stream);
    if (!system_prompt(q, cJSON_GetObjectItemCaseSensitive(doc, "system")))
        return false;
    if (!messages(q, cJSON_GetObjectItemCaseSensitive(doc, "messages")))
        return false;
    const cJSON *tl = cJSON_GetObjectItemCaseSensitive(doc, "tools");
    const cJSON *choice = cJSON_GetObjectItemCaseSensitive(doc, "tool_choice");
    if (tl)
        return tools(q, tl, choice);
    if (choice)
        return fail(q, "tool_choice: tool_choice may only be specified while providing tools");
    return true;
}

/* ---- answers ---------------------------------------------------------------------------- */

static const char *stop_reason(enum sim_finish f)
{
    switch (f) {
    case SIM_FINISH_STOP:
        return "end_turn";
    case SIM_FINISH_LENGTH:
        return "max_tokens";
    case SIM_FINISH_TOOL:
        return "tool_use";
    }
    return "end_turn";
}

static cJSON *usage_json(const struct sim_answer *a, long output_tokens)
{
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "input_tokens", (double)(a->prompt_tokens - a->cached_tokens));
    cJSON_AddNumberToObject(u, "cache_creation_input_tokens", 0);
    cJSON_AddNumberToObject(u, "cache_read_input_tokens", (double)a->cached_tokens);
    cJSON_AddNumberToObject(u, "output_tokens", (double)output_tokens);
    cJSON_AddStringToObject(u, "service_tier", "standard");
    return u;
}

static cJSON *message_json(const char *id, const struct an_req *q)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", id);
    cJSON_AddStringToObject(m, "type", "message");
    cJSON_AddStringToObject(m, "role", "assistant");
    cJSON_AddStringToObject(m, "model", q->p.model);
    cJSON_AddArrayToObject(m, "content");
    return m;
}

/* stop_reason, "refusal" with wire refusal (the partial text stays, as Claude's does). */
static const char *stop_of(const struct sim_request *rq, const struct sim_answer *a)
{
    if (rq->beh.wire == SIM_WIRE_REFUSAL && a->finish != SIM_FINISH_TOOL)
        return "refusal";
    return stop_reason(a->finish);
}

static void render_json(const struct sim_request *rq, const struct an_req *q,
                        const struct sim_answer *a, long out_tokens, struct sim_reply *r)
{
    char id[40], tid[40];
    sim_make_id(id, sizeof id, "msg_01", sim_nonce(), 22);
    sim_make_id(tid, sizeof tid, "toolu_01", sim_nonce(), 22);
    cJSON *doc = message_json(id, q);
    cJSON *content = cJSON_GetObjectItemCaseSensitive(doc, "content");
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "type", "text");
    cJSON_AddStringToObject(b, "text", a->finish == SIM_FINISH_TOOL ? TOOL_PREAMBLE : a->text);
    cJSON_AddItemToArray(content, b);
    if (a->finish == SIM_FINISH_TOOL) {
        b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "type", "tool_use");
        cJSON_AddStringToObject(b, "id", tid);
        cJSON_AddStringToObject(b, "name", a->tool_name);
        cJSON_AddItemToObject(b, "input", cJSON_Parse(a->tool_args));
        cJSON_AddItemToArray(content, b);
    }
    cJSON_AddStringToObject(doc, "stop_reason", stop_of(rq, a));
    cJSON_AddNullToObject(doc, "stop_sequence");
    if (!rq->beh.omit_usage)
        cJSON_AddItemToObject(doc, "usage", usage_json(a, out_tokens));
    sim_reply_json(r, 200, doc);
}

static cJSON *event(const char *type, int index)
{
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "type", type);
    if (index >= 0)
        cJSON_AddNumberToObject(e, "index", index);
    return e;
}

static void delta(struct sim_reply *r, int index, const char *type, const char *key,
                  const char *value, bool paced)
{
    cJSON *e = event("content_block_delta", index);
    cJSON *d = cJSON_AddObjectToObject(e, "delta");
    cJSON_AddStringToObject(d, "type", type);
    cJSON_AddStringToObject(d, key, value);
    sim_reply_sse(r, paced, "content_block_delta", e, "\n");
}

static void text_block(struct sim_reply *r, int index, char **pieces, size_t n, bool ping)
{
    cJSON *e = event("content_block_start", index);
    cJSON *b = cJSON_AddObjectToObject(e, "content_block");
    cJSON_AddStringToObject(b, "type", "text");
    cJSON_AddStringToObject(b, "text", "");
    sim_reply_sse(r, false, "content_block_start", e, "\n");
    if (ping)
        sim_reply_sse(r, false, "ping", event("ping", -1), "\n");
    for (size_t i = 0; i < n; i++)
        delta(r, index, "text_delta", "text", pieces[i], true);
    sim_reply_sse(r, false, "content_block_stop", event("content_block_stop", index), "\n");
}

static void render_stream(const struct sim_request *rq, const struct an_req *q,
                          const struct sim_answer *a, long out_tokens, struct sim_reply *r)
{
    char id[40], tid[40];
    sim_make_id(id, sizeof id, "msg_01", sim_nonce(), 22);
    sim_make_id(tid, sizeof tid, "toolu_01", sim_nonce(), 22);
    sim_reply_stream(r);
    cJSON *e = event("message_start", -1);
    cJSON *m = message_json(id, q);
    cJSON_AddNullToObject(m, "stop_reason");
    cJSON_AddNullToObject(m, "stop_sequence");
    if (!rq->beh.omit_usage)
        cJSON_AddItemToObject(m, "usage", usage_json(a, 1));
    cJSON_AddItemToObject(e, "message", m);
    sim_reply_sse(r, false, "message_start", e, "\n");
    if (a->finish == SIM_FINISH_TOOL) {
        char **pre;
        size_t n_pre;
        sim_split_words(TOOL_PREAMBLE, &pre, &n_pre);
        text_block(r, 0, pre, n_pre, true);
        sim_free_pieces(pre, n_pre);
        e = event("content_block_start", 1);
        cJSON *b = cJSON_AddObjectToObject(e, "content_block");
        cJSON_AddStringToObject(b, "type", "tool_use");
        cJSON_AddStringToObject(b, "id", tid);
        cJSON_AddStringToObject(b, "name", a->tool_name);
        cJSON_AddObjectToObject(b, "input");
        sim_reply_sse(r, false, "content_block_start", e, "\n");
        delta(r, 1, "input_json_delta", "partial_json", "", false);
        for (size_t i = 0; i < a->n_arg_pieces; i++)
            delta(r, 1, "input_json_delta", "partial_json", a->arg_pieces[i], true);
        sim_reply_sse(r, false, "content_block_stop", event("content_block_stop", 1), "\n");
    } else {
        text_block(r, 0, a->pieces, a->n_pieces, true);
    }
    e = event("message_delta", -1);
    cJSON *d = cJSON_AddObjectToObject(e, "delta");
    cJSON_AddStringToObject(d, "stop_reason", stop_of(rq, a));
    cJSON_AddNullToObject(d, "stop_sequence");
    if (!rq->beh.omit_usage)
        cJSON_AddNumberToObject(cJSON_AddObjectToObject(e, "usage"), "output_tokens",
                                (double)out_tokens);
    sim_reply_sse(r, false, "message_delta", e, "\n");
    if (rq->beh.wire != SIM_WIRE_NO_DONE)
        sim_reply_sse(r, false, "message_stop", event("message_stop", -1), "\n");
}

static bool check_version(const struct sim_request *rq, struct sim_reply *r)
{
    const char *v = sim_req_header(rq, "anthropic-version");
    if (!v) {
        an_error(r, 400, NULL, "anthropic-version: header is required");
        return false;
    }
    if (!str_eq(v, "2023-06-01") && !str_eq(v, "2023-01-01")) {
        an_error(r, 400, NULL, "anthropic-version: invalid version");
        return false;
    }
    return true;
}

static void messages_post(const struct sim_request *rq, struct sim_reply *r, bool count_only)
{
    struct an_req q;
    struct sim_answer a;
    memset(&q, 0, sizeof q);
    sim_prompt_init(&q.p);
    cJSON *doc = cJSON_ParseWithLength(rq->body, rq->body_len);
    if (!cJSON_IsObject(doc)) {
        an_error(r, 400, NULL, "There was an error parsing the body of your request as JSON.");
        goto out;
    }
    if (!top_level(&q, doc, !count_only)) {
        an_error(r, 400, NULL, q.msg);
        goto out;
    }
    long tokens = sim_prompt_tokens(&q.p);
    if (rq->beh.context_window > 0 && tokens > rq->beh.context_window) {
        snprintf(q.msg, sizeof q.msg, "prompt is too long: %ld tokens > %ld maximum", tokens,
                 rq->beh.context_window);
        an_error(r, 400, NULL, q.msg);
        goto out;
    }
    if (count_only) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddNumberToObject(c, "input_tokens", (double)tokens);
        sim_reply_json(r, 200, c);
        goto out;
    }
    sim_answer_build(&a, &q.p, rq->srv->cfg.name, &rq->beh);
    long out_tokens = a.completion_tokens;
    if (a.finish == SIM_FINISH_TOOL) { /* the preamble's words count too */
        char **pre;
        size_t n_pre;
        sim_split_words(TOOL_PREAMBLE, &pre, &n_pre);
        sim_free_pieces(pre, n_pre);
        out_tokens += (long)n_pre;
    }
    if (q.stream)
        render_stream(rq, &q, &a, out_tokens, r);
    else
        render_json(rq, &q, &a, out_tokens, r);
    sim_answer_cleanup(&a);
    char rid[40], reset[40];
    sim_make_id(rid, sizeof rid, "req_011", sim_nonce(), 21);
    sim_reply_header(r, "request-id", "%s", rid);
    time_t at = time(NULL) + 60;
    struct tm tm;
    gmtime_r(&at, &tm);
    strftime(reset, sizeof reset, "%Y-%m-%dT%H:%M:%SZ", &tm);
    sim_reply_header(r, "anthropic-ratelimit-requests-limit", "4000");
    sim_reply_header(r, "anthropic-ratelimit-requests-remaining", "3999");
    sim_reply_header(r, "anthropic-ratelimit-requests-reset", "%s", reset);
    sim_reply_header(r, "anthropic-ratelimit-input-tokens-limit", "400000");
    sim_reply_header(r, "anthropic-ratelimit-input-tokens-remaining", "%ld", 400000 - tokens);
    sim_reply_header(r, "anthropic-ratelimit-input-tokens-reset", "%s", reset);
out:
    cJSON_Delete(doc);
    sim_prompt_cleanup(&q.p);
}

static cJSON *model_json(const char *id)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "type", "model");
    cJSON_AddStringToObject(m, "id", id);
    cJSON_AddStringToObject(m, "display_name", id);
    cJSON_AddStringToObject(m, "created_at", "2025-01-01T00:00:00Z");
    return m;
}

static void an_serve(const struct sim_request *rq, struct sim_reply *r)
{
    bool get = str_eq(rq->method, "GET"), post = str_eq(rq->method, "POST");
    if (!check_version(rq, r))
        return;
    if (str_eq(rq->path, "/v1/messages") && post) {
        messages_post(rq, r, false);
    } else if (str_eq(rq->path, "/v1/messages/count_tokens") && post) {
        messages_post(rq, r, true);
    } else if (str_eq(rq->path, "/v1/models") && get) {
        const char *id = rq->srv->cfg.model_default;
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddItemToArray(cJSON_AddArrayToObject(doc, "data"), model_json(id));
        cJSON_AddBoolToObject(doc, "has_more", false);
        cJSON_AddStringToObject(doc, "first_id", id);
        cJSON_AddStringToObject(doc, "last_id", id);
        sim_reply_json(r, 200, doc);
    } else if (str_has_prefix(rq->path, "/v1/models/") && rq->path[11] && get) {
        sim_reply_json(r, 200, model_json(rq->path + 11));
    } else {
        an_error(r, str_eq(rq->path, "/v1/messages") ? 405 : 404, NULL, NULL);
    }
}

const struct sim_format sim_anthropic = {
    .name = "anthropic",
    .auth_ok = an_auth_ok,
    .error = an_error,
    .rate_limited = an_rate_limited,
    .serve = an_serve,
};
