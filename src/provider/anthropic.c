/*
 * anthropic.c - the Anthropic Messages API wire format (provider kind "anthropic"):
 * provider_anthropic. Its requests are encoded in anthropic_encode.c; this file decodes
 * the answers and classifies the errors.
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
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "switchboard/provider.h"

#include "encode.h"
#include "wire.h"

#define AN_MAX_TOOL_CALLS 1024 /* per answer; more is a bad response */

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
