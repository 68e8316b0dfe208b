/*
 * anthropic.c - the Anthropic Messages API wire format (provider kind "anthropic").
 *
 * encode: our OpenAI-shaped llm_request -> POST {base_url}/v1/messages. System messages are
 * hoisted into the top-level "system" (joined with a blank line); consecutive same-role turns
 * merge into one message with several content blocks (the API insists on alternation);
 * assistant tool calls become tool_use blocks, role-tool results become tool_result blocks of
 * a user turn, placed before any text of that turn (the API requires tool results first). A
 * turn that ends up as one text block is sent as a plain string. An assistant message with
 * neither text nor tool calls is dropped (the API rejects empty text blocks). temperature is
 * clamped to Anthropic's 0..1 (OpenAI allows up to 2): a router should not fail a request
 * another target would take. max_tokens: the client's, else the target's default, else 4096.
 *
 * decode: a whole body or an SSE stream -> TEXT*, (TOOL_CALL TOOL_ARGS*)*, USAGE?, FINISH.
 * A whole body's text blocks are emitted before its tool calls; a stream is passed on in
 * arrival order. usage.input_tokens = input_tokens + cache_read_input_tokens +
 * cache_creation_input_tokens (Anthropic's input_tokens excludes both); cached_tokens =
 * cache_read_input_tokens. A tool_use block whose input stays empty gets TOOL_ARGS "{}".
 *
 * Mapping decisions:
 *   stop_reason  end_turn, stop_sequence -> STOP; max_tokens, model_context_window_exceeded
 *                -> LENGTH; tool_use -> TOOL_CALLS; refusal -> CONTENT_FILTER; pause_turn ->
 *                STOP (a server-tool loop paused: the answer so far is complete for our
 *                callers); absent -> NONE; any other value -> STOP (forward compatibility: a
 *                new reason ended a turn that produced output).
 *   error.type   overloaded_error -> OVERLOADED; rate_limit_error -> RATE_LIMIT; api_error,
 *                timeout_error -> SERVER; authentication_error, permission_error,
 *                billing_error -> AUTH; invalid_request_error, not_found_error,
 *                request_too_large -> BAD_REQUEST; "prompt is too long" and other
 *                context-window texts -> CONTEXT_LENGTH. classify() starts from the HTTP
 *                status and refines with overload (type or 529) and context length; an
 *                in-stream error event has no status, so its type decides (unknown -> SERVER).
 *
 * Threads: the ops are stateless; a stream state belongs to its provider_call's thread.
 * No locks. Pure: no I/O, no clock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "switchboard/provider.h"

#include "wire.h"

#define AN_DEFAULT_BASE        "https://api.anthropic.com"
#define AN_DEFAULT_VERSION     "2023-06-01"
#define AN_FALLBACK_MAX_TOKENS 4096 /* neither the client nor the target gave one */
#define AN_MAX_TOOL_CALLS      1024 /* per answer; more is a bad response */

/* ---- encode ------------------------------------------------------------------------------- */

struct an_enc {
    cJSON *messages;
    cJSON *last_turn;      /* last message object in messages, NULL when none */
    const char *last_role; /* its role */
    cJSON *last_result;    /* last tool_result block of last_turn, NULL when none */
    struct buf system;
    char *msg;
    size_t msglen;
};

/* The content array to add blocks to for a turn of role, merging with the previous turn. */
static cJSON *an_turn(struct an_enc *e, const char *role)
{
    if (!e->last_turn || !str_eq(e->last_role, role)) {
        e->last_turn = cJSON_CreateObject();
        cJSON_AddStringToObject(e->last_turn, "role", role);
        cJSON_AddArrayToObject(e->last_turn, "content");
        cJSON_AddItemToArray(e->messages, e->last_turn);
        e->last_role = role;
        e->last_result = NULL;
    }
    return cJSON_GetObjectItemCaseSensitive(e->last_turn, "content");
}

static void an_add_text(cJSON *blocks, const char *text)
{
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "type", "text");
    cJSON_AddStringToObject(b, "text", text ? text : "");
    cJSON_AddItemToArray(blocks, b);
}

static enum sb_status an_enc_assistant(struct an_enc *e, const struct llm_message *m, size_t i)
{
    bool text = wire_has_text(m->content);
    char what[96];
    if (!text && m->n_tool_calls == 0)
        return SB_OK;
    cJSON *blocks = an_turn(e, "assistant");
    if (text)
        an_add_text(blocks, m->content);
    for (size_t j = 0; j < m->n_tool_calls; j++) {
        const struct llm_tool_call *tc = &m->tool_calls[j];
        WIRE_STEP();
        snprintf(what, sizeof what, "messages[%zu].tool_calls[%zu]", i, j);
        if (!tc->id || !tc->name) {
            wire_msg(e->msg, e->msglen, "%s.%s: missing", what, tc->id ? "name" : "id");
            return SB_ERR_INVALID;
        }
        cJSON *input = NULL;
        enum sb_status st = wire_parse_object(tc->arguments, &input);
        if (st != SB_OK) {
            wire_msg_bad_args(e->msg, e->msglen, i, j, tc->id, st);
            return SB_ERR_INVALID;
        }
        cJSON *b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "type", "tool_use");
        wire_add_call_id(b, "id", tc->id);
        cJSON_AddStringToObject(b, "name", tc->name);
        cJSON_AddItemToObject(b, "input", input ? input : cJSON_CreateObject());
        cJSON_AddItemToArray(blocks, b);
    }
    return SB_OK;
}

/* Links b into blocks right after `after` (at the head when NULL), in O(1). cJSON keeps an
 * array's last element in child->prev; cJSON_InsertItemInArray walks the array (and 1.7.15
 * loses the item on a second insert into the middle), so the links are set here. */
static void an_link_after(cJSON *blocks, cJSON *after, cJSON *b)
{
    cJSON *head = blocks->child;
    if (!head) {
        b->prev = b;
        b->next = NULL;
        blocks->child = b;
    } else if (!after) {
        b->prev = head->prev;
        b->next = head;
        head->prev = b;
        blocks->child = b;
    } else {
        b->prev = after;
        b->next = after->next;
        if (after->next)
            after->next->prev = b;
        else
            head->prev = b;
        after->next = b;
    }
}

/* Adds a tool_result block after the turn's earlier results and before any of its other
 * blocks (Anthropic wants the results first): O(1) per result. */
static void an_put_result(struct an_enc *e, cJSON *blocks, cJSON *b)
{
    WIRE_STEP();
    an_link_after(blocks, e->last_result, b);
    e->last_result = b;
}

static enum sb_status an_enc_tool_result(struct an_enc *e, const struct llm_message *m, size_t i)
{
    if (!m->tool_call_id) {
        wire_msg(e->msg, e->msglen, "messages[%zu].tool_call_id: missing", i);
        return SB_ERR_INVALID;
    }
    cJSON *blocks = an_turn(e, "user");
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "type", "tool_result");
    wire_add_call_id(b, "tool_use_id", m->tool_call_id);
    cJSON_AddStringToObject(b, "content", m->content ? m->content : "");
    an_put_result(e, blocks, b);
    return SB_OK;
}

static enum sb_status an_enc_messages(struct an_enc *e, const struct llm_request *req)
{
    enum sb_status st = SB_OK;
    for (size_t i = 0; i < req->n_messages && st == SB_OK; i++) {
        const struct llm_message *m = &req->messages[i];
        WIRE_STEP();
        switch (m->role) {
        case LLM_ROLE_SYSTEM:
            if (!wire_has_text(m->content))
                break;
            if (e->system.len)
                buf_puts(&e->system, "\n\n");
            buf_puts(&e->system, m->content);
            break;
        case LLM_ROLE_USER:
            an_add_text(an_turn(e, "user"), m->content);
            break;
        case LLM_ROLE_ASSISTANT:
            st = an_enc_assistant(e, m, i);
            break;
        case LLM_ROLE_TOOL:
            st = an_enc_tool_result(e, m, i);
            break;
        }
    }
    /* A turn that is a single text block goes as a plain string. */
    cJSON *turn;
    cJSON_ArrayForEach(turn, e->messages)
    {
        cJSON *blocks = cJSON_GetObjectItemCaseSensitive(turn, "content");
        cJSON *only = blocks ? blocks->child : NULL;
        WIRE_STEP();
        if (!only || only->next || !str_eq(wire_str(only, "type"), "text"))
            continue;
        cJSON *s = cJSON_CreateString(wire_str(only, "text"));
        cJSON_ReplaceItemInObjectCaseSensitive(turn, "content", s);
    }
    return st;
}

static enum sb_status an_enc_tools(struct an_enc *e, const struct llm_request *req, cJSON *root)
{
    if (req->n_tools > 0) {
        cJSON *tools = cJSON_AddArrayToObject(root, "tools");
        for (size_t i = 0; i < req->n_tools; i++) {
            const struct llm_tool *tl = &req->tools[i];
            if (!tl->name) {
                wire_msg(e->msg, e->msglen, "tools[%zu].name: missing", i);
                return SB_ERR_INVALID;
            }
            cJSON *schema = NULL;
            enum sb_status st = wire_parse_object(tl->parameters_json, &schema);
            if (st != SB_OK) {
                wire_msg(e->msg, e->msglen, "tools[%zu].parameters: %s", i, wire_object_error(st));
                return SB_ERR_INVALID;
            }
            if (!schema) {
                schema = cJSON_CreateObject();
                cJSON_AddStringToObject(schema, "type", "object");
            }
            cJSON *t = cJSON_CreateObject();
            cJSON_AddStringToObject(t, "name", tl->name);
            if (tl->description)
                cJSON_AddStringToObject(t, "description", tl->description);
            cJSON_AddItemToObject(t, "input_schema", schema);
            cJSON_AddItemToArray(tools, t);
        }
    }
    const char *type = NULL;
    switch (req->tool_choice) {
    case LLM_TOOL_CHOICE_UNSET:
        return SB_OK;
    case LLM_TOOL_CHOICE_AUTO:
        type = "auto";
        break;
    case LLM_TOOL_CHOICE_NONE:
        type = "none";
        break;
    case LLM_TOOL_CHOICE_REQUIRED:
        type = "any";
        break;
    case LLM_TOOL_CHOICE_NAMED:
        type = "tool";
        if (!req->tool_choice_name) {
            wire_msg(e->msg, e->msglen, "tool_choice: a named choice needs a function name");
            return SB_ERR_INVALID;
        }
        break;
    }
    if (req->n_tools == 0) {
        if (str_eq(type, "auto") || str_eq(type, "none"))
            return SB_OK; /* meaningless without tools; the API would reject it */
        wire_msg(e->msg, e->msglen, "tool_choice: requires tools");
        return SB_ERR_INVALID;
    }
    cJSON *tc = cJSON_AddObjectToObject(root, "tool_choice");
    cJSON_AddStringToObject(tc, "type", type);
    if (req->tool_choice == LLM_TOOL_CHOICE_NAMED)
        cJSON_AddStringToObject(tc, "name", req->tool_choice_name);
    return SB_OK;
}

static void an_enc_params(const struct config_target *t, const struct llm_request *req, cJSON *root)
{
    long max_tokens = req->max_tokens > 0 ? req->max_tokens : t->default_max_tokens;
    cJSON_AddNumberToObject(root, "max_tokens",
                            (double)(max_tokens > 0 ? max_tokens : AN_FALLBACK_MAX_TOKENS));
    if (req->has_temperature) /* OpenAI allows 0..2, Anthropic 0..1: clamp, don't fail */
        cJSON_AddNumberToObject(root, "temperature", req->temperature > 1 ? 1 : req->temperature);
    if (req->has_top_p)
        cJSON_AddNumberToObject(root, "top_p", req->top_p);
    if (req->n_stop > 0) {
        cJSON *stop = cJSON_AddArrayToObject(root, "stop_sequences");
        for (size_t i = 0; i < req->n_stop; i++)
            if (req->stop[i])
                cJSON_AddItemToArray(stop, cJSON_CreateString(req->stop[i]));
    }
    if (req->user) {
        cJSON *meta = cJSON_AddObjectToObject(root, "metadata");
        cJSON_AddStringToObject(meta, "user_id", req->user);
    }
    if (req->stream)
        cJSON_AddBoolToObject(root, "stream", true);
}

static char *an_base_url(const struct config_target *t)
{
    const char *b = wire_has_text(t->base_url) ? t->base_url : AN_DEFAULT_BASE;
    return xstrndup(b, wire_base_len(b));
}

/* Headers common to every request; refuses a key or version with a control character (it
 * could split the header: config loading rejects those already, this is the second line). */
static enum sb_status an_auth_headers(const struct config_target *t, struct http_request *out,
                                      char *msg, size_t msglen)
{
    const char *version =
        wire_has_text(t->anthropic_version) ? t->anthropic_version : AN_DEFAULT_VERSION;
    if (str_has_ctl(t->api_key) || str_has_ctl(version)) {
        wire_msg(msg, msglen,
                 "target %s: API key or anthropic_version contains a control character",
                 t->name ? t->name : "?");
        return SB_ERR_INVALID;
    }
    if (t->api_key)
        http_request_add_header(out, "x-api-key: %s", t->api_key);
    http_request_add_header(out, "anthropic-version: %s", version);
    return SB_OK;
}

static enum sb_status anthropic_encode(const struct config_target *t, const struct llm_request *req,
                                       struct http_request *out, char *msg, size_t msglen)
{
    struct an_enc e = {.msg = msg, .msglen = msglen};
    enum sb_status st = SB_OK;
    char *printed = NULL;
    cJSON *root = cJSON_CreateObject();
    const char *model = t->model ? t->model : req->model;

    buf_init(&e.system);
    if (!model) {
        wire_msg(msg, msglen, "model: missing");
        st = SB_ERR_INVALID;
        goto out;
    }
    cJSON_AddStringToObject(root, "model", model);
    e.messages = cJSON_AddArrayToObject(root, "messages");
    if ((st = an_enc_messages(&e, req)) != SB_OK)
        goto out;
    if (e.system.len)
        cJSON_AddStringToObject(root, "system", buf_str(&e.system));
    if ((st = an_enc_tools(&e, req, root)) != SB_OK)
        goto out;
    an_enc_params(t, req, root);
    printed = cJSON_PrintUnformatted(root);
    if (!printed) {
        wire_msg(msg, msglen, "cannot serialise the request");
        st = SB_ERR_INVALID;
        goto out;
    }
    if ((st = an_auth_headers(t, out, msg, msglen)) != SB_OK)
        goto out;
    http_request_add_header(out, "content-type: application/json");
    if (req->stream)
        http_request_add_header(out, "accept: text/event-stream");
    char *base = an_base_url(t);
    free(out->method);
    free(out->url);
    free(out->body);
    out->method = xstrdup("POST");
    out->url = xasprintf("%s/v1/messages", base);
    out->body = xstrdup(printed);
    out->body_len = strlen(out->body);
    free(base);
out:
    cJSON_free(printed);
    cJSON_Delete(root);
    buf_cleanup(&e.system);
    return st;
}

static enum sb_status anthropic_encode_probe(const struct config_target *t,
                                             struct http_request *out, char *msg, size_t msglen)
{
    enum sb_status st = an_auth_headers(t, out, msg, msglen);
    if (st != SB_OK)
        return st;
    char *base = an_base_url(t);
    free(out->method);
    free(out->url);
    out->method = xstrdup("GET");
    out->url = xasprintf("%s/v1/models", base);
    free(base);
    return SB_OK;
}

/* ---- decode: shared pieces ---------------------------------------------------------------- */

static enum llm_finish an_finish(const char *stop_reason)
{
    static const struct {
        const char *name;
        enum llm_finish finish;
    } map[] = {
        {"end_turn", LLM_FINISH_STOP},
        {"stop_sequence", LLM_FINISH_STOP},
        {"pause_turn", LLM_FINISH_STOP},
        {"max_tokens", LLM_FINISH_LENGTH},
        {"model_context_window_exceeded", LLM_FINISH_LENGTH},
        {"tool_use", LLM_FINISH_TOOL_CALLS},
        {"refusal", LLM_FINISH_CONTENT_FILTER},
    };
    if (!stop_reason)
        return LLM_FINISH_NONE;
    for (size_t i = 0; i < SB_ARRAY_LEN(map); i++)
        if (strcmp(stop_reason, map[i].name) == 0)
            return map[i].finish;
    return LLM_FINISH_STOP;
}

static bool an_is_context_message(const char *text)
{
    static const char *const needles[] = {
        "prompt is too long", "exceed context limit", "context window",
        "context length",     "maximum context",
    };
    return wire_contains_any(text, needles, SB_ARRAY_LEN(needles));
}

/* The class an error object's type names, for in-stream errors (no HTTP status). */
static enum llm_errclass an_error_type_class(const char *type)
{
    static const struct {
        const char *type;
        enum llm_errclass c;
    } map[] = {
        {"overloaded_error", LLM_ERR_OVERLOADED},
        {"rate_limit_error", LLM_ERR_RATE_LIMIT},
        {"api_error", LLM_ERR_SERVER},
        {"timeout_error", LLM_ERR_SERVER},
        {"authentication_error", LLM_ERR_AUTH},
        {"permission_error", LLM_ERR_AUTH},
        {"billing_error", LLM_ERR_AUTH},
        {"invalid_request_error", LLM_ERR_BAD_REQUEST},
        {"not_found_error", LLM_ERR_BAD_REQUEST},
        {"request_too_large", LLM_ERR_BAD_REQUEST},
    };
    for (size_t i = 0; type && i < SB_ARRAY_LEN(map); i++)
        if (strcmp(type, map[i].type) == 0)
            return map[i].c;
    return LLM_ERR_SERVER;
}

/* {"type":"error","error":{"type","message"}} carried in a body or a stream event. */
static enum llm_errclass an_error_event(const cJSON *root, char *msg, size_t msglen)
{
    const cJSON *err = wire_get(root, "error");
    const char *type = wire_str(err, "type");
    const char *text = wire_str(err, "message");
    enum llm_errclass c = an_error_type_class(type);
    if (an_is_context_message(text))
        c = LLM_ERR_CONTEXT_LENGTH;
    if (wire_has_text(text))
        wire_msg(msg, msglen, "%s", text);
    else
        wire_msg(msg, msglen, "%s", wire_has_text(type) ? type : "error event without a message");
    return c;
}

/* TOOL_CALL for a tool_use block, then its input as one TOOL_ARGS unless skip_empty and the
 * input is {} (a streamed block's input arrives in deltas). *had_args says whether args went. */
static enum llm_errclass an_emit_tool(const struct llm_sink *sink, int index, const cJSON *block,
                                      bool skip_empty, bool *had_args, char *msg, size_t msglen)
{
    const cJSON *input = wire_get(block, "input");
    enum llm_errclass c = wire_emit_call(sink, index, wire_str(block, "id"), NULL,
                                         wire_str(block, "name"), msg, msglen);
    *had_args = false;
    if (c != LLM_ERR_NONE || (skip_empty && (!cJSON_IsObject(input) || !input->child)))
        return c;
    *had_args = true;
    return wire_emit_args(sink, index, input, msg, msglen);
}

/* Anthropic's counts: input_tokens excludes both kinds of cached input. */
struct an_usage {
    bool present;
    long input, cache_read, cache_write, output;
};

static void an_usage_read(struct an_usage *u, const cJSON *usage)
{
    bool any = false;
    any |= wire_count(usage, "input_tokens", &u->input);
    any |= wire_count(usage, "cache_read_input_tokens", &u->cache_read);
    any |= wire_count(usage, "cache_creation_input_tokens", &u->cache_write);
    any |= wire_count(usage, "output_tokens", &u->output);
    u->present |= any;
}

static enum llm_errclass an_emit_end(const struct llm_sink *sink, const struct an_usage *u,
                                     enum llm_finish finish, char *msg, size_t msglen)
{
    struct llm_usage usage = {
        .present = u->present,
        .input_tokens = u->input + u->cache_read + u->cache_write,
        .output_tokens = u->output,
        .cached_tokens = u->cache_read,
    };
    return wire_emit_end(sink, &usage, finish, msg, msglen);
}

/* ---- decode: whole body ------------------------------------------------------------------- */

/* Checks a message's content before anything is emitted, so a bad body emits nothing. */
static enum llm_errclass an_check_content(const cJSON *content, char *msg, size_t msglen)
{
    const cJSON *b;
    int tools = 0;
    if (!cJSON_IsArray(content)) {
        wire_msg(msg, msglen, "response has no content array");
        return LLM_ERR_BAD_RESPONSE;
    }
    cJSON_ArrayForEach(b, content)
    {
        if (!str_eq(wire_str(b, "type"), "tool_use"))
            continue;
        if (!wire_str(b, "name")) {
            wire_msg(msg, msglen, "tool_use block without a name");
            return LLM_ERR_BAD_RESPONSE;
        }
        if (++tools > AN_MAX_TOOL_CALLS) {
            wire_msg(msg, msglen, "more than %d tool calls", AN_MAX_TOOL_CALLS);
            return LLM_ERR_BAD_RESPONSE;
        }
    }
    return LLM_ERR_NONE;
}

static enum llm_errclass anthropic_decode_full(const char *body, size_t len,
                                               const struct llm_sink *sink, char *msg,
                                               size_t msglen)
{
    enum llm_errclass c;
    struct an_usage u = {0};
    const cJSON *b;
    int tools = 0;
    bool had_args;
    cJSON *root = wire_parse_scratch(body, len);

    if (!cJSON_IsObject(root)) {
        wire_msg(msg, msglen, "response body is not a JSON object");
        c = LLM_ERR_BAD_RESPONSE;
        goto out;
    }
    if (str_eq(wire_str(root, "type"), "error")) {
        c = an_error_event(root, msg, msglen);
        goto out;
    }
    const cJSON *content = wire_get(root, "content");
    if ((c = an_check_content(content, msg, msglen)) != LLM_ERR_NONE)
        goto out;
    cJSON_ArrayForEach(b, content)
    {
        if (!str_eq(wire_str(b, "type"), "text"))
            continue;
        c = wire_emit_text(sink, LLM_EV_TEXT, 0, wire_str(b, "text"), msg, msglen);
        if (c != LLM_ERR_NONE)
            goto out;
    }
    cJSON_ArrayForEach(b, content)
    {
        if (!str_eq(wire_str(b, "type"), "tool_use"))
            continue;
        c = an_emit_tool(sink, tools++, b, false, &had_args, msg, msglen);
        if (c != LLM_ERR_NONE)
            goto out;
    }
    an_usage_read(&u, wire_get(root, "usage"));
    c = an_emit_end(sink, &u, an_finish(wire_str(root, "stop_reason")), msg, msglen);
out:
    cJSON_Delete(root);
    return c;
}

/* ---- decode: stream ----------------------------------------------------------------------- */

struct an_block {
    long block;    /* Anthropic's content block index */
    int tool;      /* our 0-based tool call index */
    bool has_args; /* any TOOL_ARGS emitted for it */
};

struct an_stream {
    bool done; /* message_stop seen: USAGE/FINISH emitted */
    struct an_usage usage;
    enum llm_finish finish;
    struct an_block *tools; /* tool_use blocks in order of appearance */
    size_t n_tools;
    size_t cap_tools;
};

static void *anthropic_stream_new(void)
{
    struct an_stream *st = xcalloc(1, sizeof *st);
    st->finish = LLM_FINISH_NONE;
    return st;
}

static void anthropic_stream_free(void *state)
{
    struct an_stream *st = state;
    if (!st)
        return;
    free(st->tools);
    free(st);
}

static struct an_block *an_find_tool(struct an_stream *st, long block)
{
    for (size_t i = st->n_tools; i > 0; i--)
        if (st->tools[i - 1].block == block)
            return &st->tools[i - 1];
    return NULL;
}

/* The latest tool call got no arguments before something else began: it gets "{}". */
static enum llm_errclass an_flush_args(struct an_stream *st, const struct llm_sink *sink, char *msg,
                                       size_t msglen)
{
    struct an_block *last = st->n_tools ? &st->tools[st->n_tools - 1] : NULL;
    if (!last || last->has_args)
        return LLM_ERR_NONE;
    last->has_args = true;
    return wire_emit_text(sink, LLM_EV_TOOL_ARGS, last->tool, "{}", msg, msglen);
}

static long an_block_index(const cJSON *root)
{
    long index = -1;
    wire_count(root, "index", &index);
    return index;
}

static enum llm_errclass an_block_start(struct an_stream *st, const cJSON *root,
                                        const struct llm_sink *sink, char *msg, size_t msglen)
{
    const cJSON *block = wire_get(root, "content_block");
    const char *type = wire_str(block, "type");
    enum llm_errclass c = an_flush_args(st, sink, msg, msglen);
    if (c != LLM_ERR_NONE)
        return c;
    if (str_eq(type, "text"))
        return wire_emit_text(sink, LLM_EV_TEXT, 0, wire_str(block, "text"), msg, msglen);
    if (!str_eq(type, "tool_use"))
        return LLM_ERR_NONE; /* thinking, server tools: not ours */
    if (!wire_str(block, "name")) {
        wire_msg(msg, msglen, "tool_use block without a name");
        return LLM_ERR_BAD_RESPONSE;
    }
    if (st->n_tools >= AN_MAX_TOOL_CALLS) {
        wire_msg(msg, msglen, "more than %d tool calls", AN_MAX_TOOL_CALLS);
        return LLM_ERR_BAD_RESPONSE;
    }
    st->tools = xgrow(st->tools, &st->cap_tools, st->n_tools + 1, sizeof *st->tools);
    struct an_block *tb = &st->tools[st->n_tools];
    tb->block = an_block_index(root);
    tb->tool = (int)st->n_tools++;
    return an_emit_tool(sink, tb->tool, block, true, &tb->has_args, msg, msglen);
}

static enum llm_errclass an_block_delta(struct an_stream *st, const cJSON *root,
                                        const struct llm_sink *sink, char *msg, size_t msglen)
{
    const cJSON *delta = wire_get(root, "delta");
    const char *type = wire_str(delta, "type");
    if (str_eq(type, "text_delta"))
        return wire_emit_text(sink, LLM_EV_TEXT, 0, wire_str(delta, "text"), msg, msglen);
    if (!str_eq(type, "input_json_delta"))
        return LLM_ERR_NONE; /* thinking_delta, signature_delta, citations_delta, ... */
    struct an_block *tb = an_find_tool(st, an_block_index(root));
    const char *part = wire_str(delta, "partial_json");
    if (!tb || !part || !*part)
        return LLM_ERR_NONE; /* a server tool's input, or nothing to say */
    tb->has_args = true;
    return wire_emit_text(sink, LLM_EV_TOOL_ARGS, tb->tool, part, msg, msglen);
}

static enum llm_errclass an_dispatch(struct an_stream *st, const char *type, const cJSON *root,
                                     const struct llm_sink *sink, char *msg, size_t msglen)
{
    if (str_eq(type, "content_block_delta"))
        return an_block_delta(st, root, sink, msg, msglen);
    if (str_eq(type, "content_block_start"))
        return an_block_start(st, root, sink, msg, msglen);
    if (str_eq(type, "content_block_stop")) {
        struct an_block *tb = an_find_tool(st, an_block_index(root));
        if (tb && tb == &st->tools[st->n_tools - 1])
            return an_flush_args(st, sink, msg, msglen);
        return LLM_ERR_NONE;
    }
    if (str_eq(type, "message_start")) {
        const cJSON *m = wire_get(root, "message");
        an_usage_read(&st->usage, wire_get(m, "usage"));
        return LLM_ERR_NONE;
    }
    if (str_eq(type, "message_delta")) {
        const cJSON *delta = wire_get(root, "delta");
        if (wire_str(delta, "stop_reason"))
            st->finish = an_finish(wire_str(delta, "stop_reason"));
        an_usage_read(&st->usage, wire_get(root, "usage"));
        return LLM_ERR_NONE;
    }
    if (str_eq(type, "message_stop")) {
        enum llm_errclass c = an_flush_args(st, sink, msg, msglen);
        st->done = true;
        return c != LLM_ERR_NONE ? c : an_emit_end(sink, &st->usage, st->finish, msg, msglen);
    }
    if (str_eq(type, "error"))
        return an_error_event(root, msg, msglen);
    return LLM_ERR_NONE; /* ping and event types added after this was written */
}

static enum llm_errclass anthropic_stream_event(void *state, const struct sse_event *ev,
                                                const struct llm_sink *sink, char *msg,
                                                size_t msglen)
{
    struct an_stream *st = state;
    enum llm_errclass c = LLM_ERR_NONE;
    if (st->done)
        return LLM_ERR_NONE; /* nothing follows message_stop */
    cJSON *root = wire_parse_scratch(ev->data, ev->data_len);
    if (!cJSON_IsObject(root)) {
        wire_msg(msg, msglen, "stream event %s is not a JSON object", ev->event ? ev->event : "");
        c = LLM_ERR_BAD_RESPONSE;
        goto out;
    }
    const char *type = wire_str(root, "type");
    c = an_dispatch(st, type ? type : ev->event, root, sink, msg, msglen);
out:
    cJSON_Delete(root);
    return c;
}

/* Complete with message_stop; or with a clean close after message_delta gave a stop_reason
 * (the rule for every format: a finish reason and a clean close end the answer). */
static enum llm_errclass anthropic_stream_end(void *state, bool clean, const struct llm_sink *sink,
                                              char *msg, size_t msglen)
{
    struct an_stream *st = state;
    enum llm_errclass c;
    if (st->done)
        return LLM_ERR_NONE;
    if (!clean || st->finish == LLM_FINISH_NONE) {
        wire_msg(msg, msglen, "stream ended without message_stop");
        return LLM_ERR_TRUNCATED;
    }
    st->done = true;
    c = an_flush_args(st, sink, msg, msglen);
    return c != LLM_ERR_NONE ? c : an_emit_end(sink, &st->usage, st->finish, msg, msglen);
}

/* ---- classify ----------------------------------------------------------------------------- */

/* Anthropic's error type -> the nearest OpenAI type; NULL for a type not known here. */
static const char *an_openai_type(const char *type)
{
    static const struct {
        const char *anthropic, *openai;
    } map[] = {
        {"invalid_request_error", "invalid_request_error"},
        {"request_too_large", "invalid_request_error"},
        {"authentication_error", "authentication_error"},
        {"permission_error", "permission_error"},
        {"billing_error", "permission_error"},
        {"not_found_error", "not_found_error"},
        {"rate_limit_error", "rate_limit_error"},
        {"api_error", "server_error"},
        {"overloaded_error", "server_error"},
        {"timeout_error", "server_error"},
    };
    for (size_t i = 0; type && i < SB_ARRAY_LEN(map); i++)
        if (strcmp(type, map[i].anthropic) == 0)
            return map[i].openai;
    return NULL;
}

static void an_error_info(long status, const char *type, enum llm_errclass c,
                          struct llm_error_info *info)
{
    const char *otype = an_openai_type(type);
    if (!otype)
        otype = llm_error_type_for_status(status == 529 ? 503 : status);
    str_copy(info->type, sizeof info->type, otype ? otype : "");
    if (c == LLM_ERR_CONTEXT_LENGTH)
        str_copy(info->code, sizeof info->code, "context_length_exceeded");
    else
        str_copy(info->code, sizeof info->code, type ? type : "");
}

static enum llm_errclass anthropic_classify(long status, const char *body, size_t len,
                                            struct llm_error_info *info, char *msg, size_t msglen)
{
    enum llm_errclass c = llm_errclass_from_status(status);
    cJSON *root = len ? wire_parse(body, len) : NULL;
    const cJSON *err = wire_get(root, "error");
    const char *type = wire_str(err, "type");
    const char *text = wire_str(err, "message");

    if (status == 529 || str_eq(type, "overloaded_error"))
        c = LLM_ERR_OVERLOADED;
    else if (status < 500 && an_is_context_message(text))
        c = LLM_ERR_CONTEXT_LENGTH;
    if (text && *text)
        wire_msg(msg, msglen, "%s", text);
    else
        wire_msg(msg, msglen, "HTTP %ld", status);
    an_error_info(status, type, c, info);
    cJSON_Delete(root);
    return c;
}

const struct provider_ops provider_anthropic = {
    .name = "anthropic",
    .encode = anthropic_encode,
    .decode_full = anthropic_decode_full,
    .stream_new = anthropic_stream_new,
    .stream_free = anthropic_stream_free,
    .stream_event = anthropic_stream_event,
    .stream_end = anthropic_stream_end,
    .classify = anthropic_classify,
    .encode_probe = anthropic_encode_probe,
};
