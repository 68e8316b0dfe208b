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
 * The model, messages and system are written straight into the body (wire.h, wire_put_*):
 * a turn is written when the next one begins, its tool results in a first pass over its
 * messages and the rest in a second; tools, tool_choice and the options go through a small
 * cJSON tree spliced in after them, so the body is byte for byte what one tree printed
 * (test_encode_same). Through a tree, 4.4 MiB of history took 46 ms on the router thread.
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
    const struct llm_request *req;
    struct buf *b;
    size_t turns;  /* turns written so far */
    size_t blocks; /* blocks written so far in the current turn */
    char *msg;
    size_t msglen;
};

/* A run of messages [from, to) that makes one turn: consecutive messages of the same role
 * (system messages and dropped assistant messages in between do not break it). */
struct an_turn {
    const char *role;
    size_t from, to;
    size_t blocks; /* content blocks it holds */
    bool text;     /* its last block-bearing message is a user or text-only assistant one */
};

/* The role of the turn message m belongs to; NULL when it adds no block (a system message,
 * or an assistant message with neither text nor tool calls: the API rejects empty text). */
static const char *an_role(const struct llm_message *m)
{
    switch (m->role) {
    case LLM_ROLE_SYSTEM:
        return NULL;
    case LLM_ROLE_USER:
    case LLM_ROLE_TOOL:
        return "user";
    case LLM_ROLE_ASSISTANT:
        return wire_has_text(m->content) || m->n_tool_calls ? "assistant" : NULL;
    }
    return NULL;
}

/* The comma and opening of the next block of the current turn. */
static struct buf *an_block(struct an_enc *e, const char *type)
{
    buf_puts(e->b, e->blocks++ ? ",{\"type\":" : "{\"type\":");
    wire_put_str(e->b, type);
    return e->b;
}

static void an_put_text(struct an_enc *e, const char *text)
{
    buf_puts(an_block(e, "text"), ",\"text\":");
    wire_put_str(e->b, text);
    buf_putc(e->b, '}');
}

static enum sb_status an_put_tool_use(struct an_enc *e, const struct llm_tool_call *tc, size_t i,
                                      size_t j)
{
    cJSON *input = NULL;
    WIRE_STEP();
    if (!tc->id || !tc->name) {
        wire_msg(e->msg, e->msglen, "messages[%zu].tool_calls[%zu].%s: missing", i, j,
                 tc->id ? "name" : "id");
        return SB_ERR_INVALID;
    }
    enum sb_status st = wire_parse_object(tc->arguments, &input);
    if (st != SB_OK) {
        wire_msg_bad_args(e->msg, e->msglen, i, j, tc->id, st);
        return SB_ERR_INVALID;
    }
    buf_puts(an_block(e, "tool_use"), ",\"id\":");
    wire_put_call_id(e->b, tc->id);
    buf_puts(e->b, ",\"name\":");
    wire_put_str(e->b, tc->name);
    buf_puts(e->b, ",\"input\":");
    wire_put_json(e->b, input);
    buf_putc(e->b, '}');
    return SB_OK;
}

static enum sb_status an_put_assistant(struct an_enc *e, const struct llm_message *m, size_t i)
{
    enum sb_status st = SB_OK;
    if (wire_has_text(m->content))
        an_put_text(e, m->content);
    for (size_t j = 0; j < m->n_tool_calls && st == SB_OK; j++)
        st = an_put_tool_use(e, &m->tool_calls[j], i, j);
    return st;
}

static enum sb_status an_put_tool_result(struct an_enc *e, const struct llm_message *m, size_t i)
{
    if (!m->tool_call_id) {
        wire_msg(e->msg, e->msglen, "messages[%zu].tool_call_id: missing", i);
        return SB_ERR_INVALID;
    }
    buf_puts(an_block(e, "tool_result"), ",\"tool_use_id\":");
    wire_put_call_id(e->b, m->tool_call_id);
    buf_puts(e->b, ",\"content\":");
    wire_put_str(e->b, m->content);
    buf_putc(e->b, '}');
    return SB_OK;
}

/* The turn's blocks: its tool results first (the API wants them before anything else of the
 * turn), then the rest in order; two passes over the turn's messages. */
static enum sb_status an_put_blocks(struct an_enc *e, const struct an_turn *turn)
{
    const struct llm_message *msgs = e->req->messages;
    enum sb_status st = SB_OK;
    for (size_t i = turn->from; i < turn->to && st == SB_OK; i++) {
        WIRE_STEP();
        if (msgs[i].role == LLM_ROLE_TOOL)
            st = an_put_tool_result(e, &msgs[i], i);
    }
    for (size_t i = turn->from; i < turn->to && st == SB_OK; i++) {
        WIRE_STEP();
        if (msgs[i].role == LLM_ROLE_USER)
            an_put_text(e, msgs[i].content);
        else if (msgs[i].role == LLM_ROLE_ASSISTANT)
            st = an_put_assistant(e, &msgs[i], i);
    }
    return st;
}

/* One turn; a turn that is a single text block goes as a plain string. */
static enum sb_status an_put_turn(struct an_enc *e, const struct an_turn *turn)
{
    struct buf *b = e->b;
    enum sb_status st = SB_OK;
    buf_puts(b, e->turns++ ? ",{\"role\":" : "{\"role\":");
    wire_put_str(b, turn->role);
    buf_puts(b, ",\"content\":");
    if (turn->blocks == 1 && turn->text) {
        for (size_t i = turn->from; i < turn->to; i++) {
            WIRE_STEP();
            if (an_role(&e->req->messages[i]))
                wire_put_str(b, e->req->messages[i].content);
        }
    } else {
        buf_putc(b, '[');
        e->blocks = 0;
        st = an_put_blocks(e, turn);
        buf_putc(b, ']');
    }
    buf_putc(b, '}');
    return st;
}

/* "messages": the turns, each written when the next one begins. */
static enum sb_status an_put_messages(struct an_enc *e)
{
    const struct llm_request *req = e->req;
    struct an_turn turn = {0};
    enum sb_status st = SB_OK;
    buf_puts(e->b, ",\"messages\":[");
    for (size_t i = 0; i < req->n_messages && st == SB_OK; i++) {
        const struct llm_message *m = &req->messages[i];
        const char *role = an_role(m);
        WIRE_STEP();
        if (!role)
            continue;
        if (!turn.role || !str_eq(turn.role, role)) {
            if (turn.role) {
                turn.to = i;
                st = an_put_turn(e, &turn);
            }
            turn = (struct an_turn){.role = role, .from = i};
        }
        turn.blocks +=
            m->role == LLM_ROLE_ASSISTANT ? (size_t)wire_has_text(m->content) + m->n_tool_calls : 1;
        turn.text =
            m->role == LLM_ROLE_USER || (m->role == LLM_ROLE_ASSISTANT && m->n_tool_calls == 0);
    }
    if (turn.role && st == SB_OK) {
        turn.to = req->n_messages;
        st = an_put_turn(e, &turn);
    }
    buf_putc(e->b, ']');
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

/* The body: model, messages and system written into b, then the rest from a small tree. */
static enum sb_status an_put_body(struct an_enc *e, const struct config_target *t)
{
    const struct llm_request *req = e->req;
    const char *model = t->model ? t->model : req->model;
    if (!model) {
        wire_msg(e->msg, e->msglen, "model: missing");
        return SB_ERR_INVALID;
    }
    buf_puts(e->b, "{\"model\":");
    wire_put_str(e->b, model);
    enum sb_status st = an_put_messages(e);
    if (st != SB_OK)
        return st;
    wire_put_system(e->b, req, ",\"system\":\"", "\"");
    cJSON *root = cJSON_CreateObject();
    if ((st = an_enc_tools(e, req, root)) == SB_OK)
        an_enc_params(t, req, root);
    return wire_put_members(e->b, root, st);
}

static enum sb_status anthropic_encode(const struct config_target *t, const struct llm_request *req,
                                       struct http_request *out, char *msg, size_t msglen)
{
    struct buf body;
    struct an_enc e = {.req = req, .b = &body, .msg = msg, .msglen = msglen};
    buf_init(&body);
    enum sb_status st = an_put_body(&e, t);
    if (st == SB_OK)
        st = an_auth_headers(t, out, msg, msglen);
    if (st != SB_OK)
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
    out->body_len = body.len;
    out->body = buf_take(&body);
    free(base);
out:
    buf_cleanup(&body);
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
