/*
 * gemini.c - the Gemini generateContent wire format (provider kind "gemini"): provider_gemini.
 * Its requests are encoded in gemini_encode.c; this file decodes the answers and classifies
 * the errors.
 *
 * decode: a whole body (one GenerateContentResponse, or the JSON array of them that
 * streamGenerateContent sends without alt=sse) or an SSE stream of chunks -> TEXT*,
 * (TOOL_CALL TOOL_ARGS)*, USAGE?, FINISH. Only candidates[0] is read; parts marked
 * "thought" are not text. Within one body or chunk, text parts go before function calls.
 * A functionCall arrives whole: TOOL_CALL with its "id" or a synthesised "call_<index>"
 * (plus WIRE_SIG_SEP and the part's thoughtSignature when it has one), then one TOOL_ARGS with the
 * printed args ("{}" when absent). usage: input = promptTokenCount (cached tokens included), cached
 * = cachedContentTokenCount, output = candidatesTokenCount + thoughtsTokenCount; a stream keeps the
 * last usageMetadata. The terminal condition of a stream is a chunk with a finishReason (or a
 * prompt block); USAGE and FINISH are emitted when the body ends.
 *
 * Mapping decisions:
 *   finishReason STOP -> STOP (TOOL_CALLS when the answer held function calls);
 *     MAX_TOKENS -> LENGTH; SAFETY, RECITATION, BLOCKLIST, PROHIBITED_CONTENT, SPII,
 *     IMAGE_SAFETY, IMAGE_PROHIBITED_CONTENT, IMAGE_RECITATION -> CONTENT_FILTER;
 *     MALFORMED_FUNCTION_CALL, UNEXPECTED_TOOL_CALL, TOO_MANY_TOOL_CALLS, LANGUAGE, OTHER,
 *     IMAGE_OTHER, NO_IMAGE, FINISH_REASON_UNSPECIFIED -> ERROR (a FINISH, not an error
 *     event: the provider said the generation failed); absent -> NONE; any other value ->
 *     STOP (forward compatibility). No candidates with a promptFeedback (blockReason or
 *     not; in a whole body, just usageMetadata too): the prompt was blocked -> FINISH
 *     CONTENT_FILTER, promptFeedback.blockReasonMessage (Vertex) as refusal text.
 *   error.status RESOURCE_EXHAUSTED -> RATE_LIMIT; UNAVAILABLE, INTERNAL, DEADLINE_EXCEEDED
 *     -> SERVER ("overloaded" in the message -> OVERLOADED); UNAUTHENTICATED,
 *     PERMISSION_DENIED -> AUTH; INVALID_ARGUMENT, FAILED_PRECONDITION, NOT_FOUND ->
 *     BAD_REQUEST; "API key not valid" / API_KEY_INVALID -> AUTH (Gemini says 400);
 *     "exceeds the maximum number of tokens" / "input token count" -> CONTEXT_LENGTH;
 *     otherwise the HTTP status (or error.code in a stream) decides.
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

#define GM_MAX_TOOL_CALLS 1024 /* per answer; more is a bad response */

/* ---- decode ------------------------------------------------------------------------------- */

static enum llm_finish gm_finish(const char *reason)
{
    static const struct {
        const char *name;
        enum llm_finish finish;
    } map[] = {
        {"STOP", LLM_FINISH_STOP},
        {"MAX_TOKENS", LLM_FINISH_LENGTH},
        {"SAFETY", LLM_FINISH_CONTENT_FILTER},
        {"RECITATION", LLM_FINISH_CONTENT_FILTER},
        {"BLOCKLIST", LLM_FINISH_CONTENT_FILTER},
        {"PROHIBITED_CONTENT", LLM_FINISH_CONTENT_FILTER},
        {"SPII", LLM_FINISH_CONTENT_FILTER},
        {"IMAGE_SAFETY", LLM_FINISH_CONTENT_FILTER},
        {"IMAGE_PROHIBITED_CONTENT", LLM_FINISH_CONTENT_FILTER},
        {"IMAGE_RECITATION", LLM_FINISH_CONTENT_FILTER},
        {"MALFORMED_FUNCTION_CALL", LLM_FINISH_ERROR},
        {"UNEXPECTED_TOOL_CALL", LLM_FINISH_ERROR},
        {"TOO_MANY_TOOL_CALLS", LLM_FINISH_ERROR},
        {"LANGUAGE", LLM_FINISH_ERROR},
        {"OTHER", LLM_FINISH_ERROR},
        {"IMAGE_OTHER", LLM_FINISH_ERROR},
        {"NO_IMAGE", LLM_FINISH_ERROR},
        {"FINISH_REASON_UNSPECIFIED", LLM_FINISH_ERROR},
    };
    if (!reason)
        return LLM_FINISH_NONE;
    for (size_t i = 0; i < SB_ARRAY_LEN(map); i++)
        if (strcmp(reason, map[i].name) == 0)
            return map[i].finish;
    return LLM_FINISH_STOP;
}

/* {"error":{"code","message","status"}}; status is the HTTP status, 0 inside a stream. */
static enum llm_errclass gm_error_class(const cJSON *err, long status, char *msg, size_t msglen)
{
    static const struct {
        const char *status;
        enum llm_errclass c;
    } map[] = {
        {"RESOURCE_EXHAUSTED", LLM_ERR_RATE_LIMIT},
        {"UNAVAILABLE", LLM_ERR_SERVER},
        {"INTERNAL", LLM_ERR_SERVER},
        {"DEADLINE_EXCEEDED", LLM_ERR_SERVER},
        {"UNAUTHENTICATED", LLM_ERR_AUTH},
        {"PERMISSION_DENIED", LLM_ERR_AUTH},
        {"INVALID_ARGUMENT", LLM_ERR_BAD_REQUEST},
        {"FAILED_PRECONDITION", LLM_ERR_BAD_REQUEST},
        {"NOT_FOUND", LLM_ERR_BAD_REQUEST},
    };
    static const char *const overload[] = {"overloaded"};
    static const char *const bad_key[] = {"API key not valid", "API_KEY_INVALID"};
    static const char *const context[] = {"exceeds the maximum number of tokens",
                                          "input token count"};
    long code = status;
    const char *gstatus = wire_str(err, "status");
    const char *text = wire_str(err, "message");
    if (code < 400 && (!wire_count(err, "code", &code) || code < 400))
        code = 500; /* an in-stream error without a usable code: the server's fault */
    enum llm_errclass c = llm_errclass_from_status(code);
    for (size_t i = 0; gstatus && i < SB_ARRAY_LEN(map); i++)
        if (strcmp(gstatus, map[i].status) == 0)
            c = map[i].c;
    if (c == LLM_ERR_SERVER && wire_contains_any(text, overload, SB_ARRAY_LEN(overload)))
        c = LLM_ERR_OVERLOADED;
    if (wire_contains_any(text, bad_key, SB_ARRAY_LEN(bad_key)))
        c = LLM_ERR_AUTH;
    if (wire_contains_any(text, context, SB_ARRAY_LEN(context)))
        c = LLM_ERR_CONTEXT_LENGTH;
    if (wire_has_text(text))
        wire_msg(msg, msglen, "%s", text);
    else if (wire_has_text(gstatus))
        wire_msg(msg, msglen, "%s", gstatus);
    else
        wire_msg(msg, msglen, "HTTP %ld", code);
    return c;
}

/* Decoding state shared by a whole body and a stream (a body is a one-chunk stream). */
struct gm_state {
    bool whole; /* a whole body, not a stream */
    int n_tools;
    bool finished; /* a finishReason or a prompt block was seen */
    enum llm_finish finish;
    struct llm_usage usage; /* the last usageMetadata; present = seen */
};

static void *gemini_stream_new(void)
{
    struct gm_state *st = xcalloc(1, sizeof *st);
    st->finish = LLM_FINISH_NONE;
    return st;
}

static void gemini_stream_free(void *state)
{
    free(state);
}

static void gm_read_usage(struct gm_state *st, const cJSON *um)
{
    long prompt = 0, out = 0, thoughts = 0, cached = 0;
    bool any = false;
    any |= wire_count(um, "promptTokenCount", &prompt);
    any |= wire_count(um, "candidatesTokenCount", &out);
    any |= wire_count(um, "thoughtsTokenCount", &thoughts);
    any |= wire_count(um, "cachedContentTokenCount", &cached);
    if (!any)
        return;
    st->usage.present = true;
    st->usage.input_tokens = prompt;
    st->usage.output_tokens = out + thoughts;
    st->usage.cached_tokens = cached < prompt ? cached : prompt; /* a subset of the prompt */
}

/* Checks a chunk's parts before anything is emitted, so a bad chunk emits nothing. *tools
 * counts the function calls of the answer so far. */
static enum llm_errclass gm_check_parts(int *tools, const cJSON *parts, char *msg, size_t msglen)
{
    const cJSON *p;
    cJSON_ArrayForEach(p, parts)
    {
        const cJSON *fc = wire_get(p, "functionCall");
        if (!fc)
            continue;
        if (!wire_str(fc, "name")) {
            wire_msg(msg, msglen, "functionCall without a name");
            return LLM_ERR_BAD_RESPONSE;
        }
        if (++*tools > GM_MAX_TOOL_CALLS) {
            wire_msg(msg, msglen, "more than %d tool calls", GM_MAX_TOOL_CALLS);
            return LLM_ERR_BAD_RESPONSE;
        }
    }
    return LLM_ERR_NONE;
}

static const cJSON *gm_parts(const cJSON *chunk)
{
    const cJSON *cand = cJSON_GetArrayItem(wire_get(chunk, "candidates"), 0);
    const cJSON *parts = wire_get(wire_get(cand, "content"), "parts");
    return cJSON_IsArray(parts) ? parts : NULL;
}

static enum llm_errclass gm_emit_call(struct gm_state *st, const cJSON *p,
                                      const struct llm_sink *sink, char *msg, size_t msglen)
{
    const cJSON *fc = wire_get(p, "functionCall");
    const char *id = wire_str(fc, "id") ? wire_str(fc, "id") : wire_str(p, "id");
    int index = st->n_tools++;
    enum llm_errclass c = wire_emit_call(sink, index, id, wire_str(p, "thoughtSignature"),
                                         wire_str(fc, "name"), msg, msglen);
    return c != LLM_ERR_NONE ? c : wire_emit_args(sink, index, wire_get(fc, "args"), msg, msglen);
}

/* A response without candidates whose prompt was blocked: it has promptFeedback, with or
 * without a blockReason; a whole body that says nothing else but its usage counts too. */
static bool gm_is_blocked(const struct gm_state *st, const cJSON *root)
{
    return cJSON_IsObject(wire_get(root, "promptFeedback")) ||
           (st->whole && cJSON_IsObject(wire_get(root, "usageMetadata")));
}

/* One GenerateContentResponse (a whole body or a stream chunk) -> events. */
static enum llm_errclass gm_chunk(struct gm_state *st, const cJSON *root,
                                  const struct llm_sink *sink, char *msg, size_t msglen)
{
    const cJSON *cand = cJSON_GetArrayItem(wire_get(root, "candidates"), 0);
    const cJSON *parts = gm_parts(root);
    const cJSON *p;
    int tools = st->n_tools;
    enum llm_errclass c;

    if (cJSON_IsObject(wire_get(root, "error")))
        return gm_error_class(wire_get(root, "error"), 0, msg, msglen);
    if ((c = gm_check_parts(&tools, parts, msg, msglen)) != LLM_ERR_NONE)
        return c;
    gm_read_usage(st, wire_get(root, "usageMetadata"));
    cJSON_ArrayForEach(p, parts)
    {
        if (cJSON_IsTrue(wire_get(p, "thought")))
            continue; /* a thought summary, not the answer */
        c = wire_emit_text(sink, LLM_EV_TEXT, 0, wire_str(p, "text"), msg, msglen);
        if (c != LLM_ERR_NONE)
            return c;
    }
    cJSON_ArrayForEach(p, parts)
    {
        if (!wire_get(p, "functionCall"))
            continue;
        if ((c = gm_emit_call(st, p, sink, msg, msglen)) != LLM_ERR_NONE)
            return c;
    }
    if (wire_str(cand, "finishReason")) {
        st->finished = true;
        st->finish = gm_finish(wire_str(cand, "finishReason"));
    } else if (!cand && gm_is_blocked(st, root)) {
        st->finished = true;
        st->finish = LLM_FINISH_CONTENT_FILTER;
        return wire_emit_text_kind(sink, LLM_TEXT_REFUSAL,
                                   wire_str(wire_get(root, "promptFeedback"), "blockReasonMessage"),
                                   msg, msglen);
    }
    return LLM_ERR_NONE;
}

static enum llm_errclass gm_end(const struct gm_state *st, const struct llm_sink *sink, char *msg,
                                size_t msglen)
{
    enum llm_finish finish = st->finish;
    if (finish == LLM_FINISH_STOP && st->n_tools > 0)
        finish = LLM_FINISH_TOOL_CALLS;
    return wire_emit_end(sink, &st->usage, finish, msg, msglen);
}

/* A whole body is one GenerateContentResponse, or the JSON array of chunks that
 * streamGenerateContent sends without alt=sse. Checked before anything is emitted. */
static enum llm_errclass gm_check_body(const cJSON *root, char *msg, size_t msglen)
{
    bool array = cJSON_IsArray(root), answer = false;
    int tools = 0;
    enum llm_errclass c;
    if (!array && !cJSON_IsObject(root)) {
        wire_msg(msg, msglen, "response body is not a JSON object");
        return LLM_ERR_BAD_RESPONSE;
    }
    for (const cJSON *it = array ? root->child : root; it; it = array ? it->next : NULL) {
        if (!cJSON_IsObject(it)) {
            wire_msg(msg, msglen, "response array holds a non-object");
            return LLM_ERR_BAD_RESPONSE;
        }
        if ((c = gm_check_parts(&tools, gm_parts(it), msg, msglen)) != LLM_ERR_NONE)
            return c;
        answer = answer || cJSON_GetArrayItem(wire_get(it, "candidates"), 0) ||
                 cJSON_IsObject(wire_get(it, "promptFeedback")) ||
                 cJSON_IsObject(wire_get(it, "usageMetadata")) ||
                 cJSON_IsObject(wire_get(it, "error"));
    }
    if (!answer) {
        wire_msg(msg, msglen, "response has no candidates");
        return LLM_ERR_BAD_RESPONSE;
    }
    return LLM_ERR_NONE;
}

static enum llm_errclass gemini_decode_full(const char *body, size_t len,
                                            const struct llm_sink *sink, char *msg, size_t msglen)
{
    struct gm_state st = {.whole = true, .finish = LLM_FINISH_NONE};
    cJSON *root = wire_parse_scratch(body, len);
    bool array = cJSON_IsArray(root);
    enum llm_errclass c = gm_check_body(root, msg, msglen);

    for (const cJSON *it = array ? root->child : root; it && c == LLM_ERR_NONE;
         it = array ? it->next : NULL)
        c = gm_chunk(&st, it, sink, msg, msglen);
    if (c == LLM_ERR_NONE)
        c = gm_end(&st, sink, msg, msglen);
    cJSON_Delete(root);
    return c;
}

static enum llm_errclass gemini_stream_event(void *state, const struct sse_event *ev,
                                             const struct llm_sink *sink, char *msg, size_t msglen)
{
    enum llm_errclass c;
    cJSON *root = wire_parse_scratch(ev->data, ev->data_len);
    if (cJSON_IsObject(root)) {
        c = gm_chunk(state, root, sink, msg, msglen);
    } else {
        wire_msg(msg, msglen, "stream chunk is not a JSON object");
        c = LLM_ERR_BAD_RESPONSE;
    }
    cJSON_Delete(root);
    return c;
}

/* Complete once a chunk carried a finishReason (or a prompt block), clean close or not: that
 * chunk is Gemini's last and carries the final usage. */
static enum llm_errclass gemini_stream_end(void *state, bool clean, const struct llm_sink *sink,
                                           char *msg, size_t msglen)
{
    const struct gm_state *st = state;
    (void)clean;
    if (st->finished)
        return gm_end(st, sink, msg, msglen);
    wire_msg(msg, msglen, "stream ended without a finishReason");
    return LLM_ERR_TRUNCATED;
}

/* google.rpc status -> the nearest OpenAI error type; NULL for one not known here. */
static const char *gm_openai_type(const char *gstatus)
{
    static const struct {
        const char *status, *openai;
    } map[] = {
        {"INVALID_ARGUMENT", "invalid_request_error"},
        {"FAILED_PRECONDITION", "invalid_request_error"},
        {"OUT_OF_RANGE", "invalid_request_error"},
        {"UNAUTHENTICATED", "authentication_error"},
        {"PERMISSION_DENIED", "permission_error"},
        {"NOT_FOUND", "not_found_error"},
        {"RESOURCE_EXHAUSTED", "rate_limit_error"},
        {"INTERNAL", "server_error"},
        {"UNAVAILABLE", "server_error"},
        {"DEADLINE_EXCEEDED", "server_error"},
    };
    for (size_t i = 0; gstatus && i < SB_ARRAY_LEN(map); i++)
        if (strcmp(gstatus, map[i].status) == 0)
            return map[i].openai;
    return NULL;
}

/* error.details[] {"@type": ".../google.rpc.RetryInfo", "retryDelay": "30s"} -> ms, or -1. */
static int64_t gm_retry_delay(const cJSON *err)
{
    const cJSON *d;
    int64_t ms = -1;
    cJSON_ArrayForEach(d, wire_get(err, "details"))
    {
        const char *type = wire_str(d, "@type");
        const char *delay = wire_str(d, "retryDelay");
        if (type && strstr(type, "google.rpc.RetryInfo") && delay &&
            !llm_parse_go_duration_ms(delay, &ms))
            ms = -1;
    }
    return ms;
}

static void gm_error_info(long status, const cJSON *err, enum llm_errclass c,
                          struct llm_error_info *info)
{
    const char *gstatus = wire_str(err, "status");
    const char *otype = gm_openai_type(gstatus);
    if (c == LLM_ERR_AUTH && status == 400)
        otype = "authentication_error"; /* "API key not valid" comes as a 400 */
    if (!otype)
        otype = llm_error_type_for_status(status);
    str_copy(info->type, sizeof info->type, otype ? otype : "");
    if (c == LLM_ERR_CONTEXT_LENGTH)
        str_copy(info->code, sizeof info->code, "context_length_exceeded");
    else
        str_copy(info->code, sizeof info->code, gstatus ? gstatus : "");
    info->retry_after_ms = gm_retry_delay(err);
}

static enum llm_errclass gemini_classify(long status, const char *body, size_t len,
                                         struct llm_error_info *info, char *msg, size_t msglen)
{
    cJSON *root = len ? wire_parse(body, len) : NULL;
    const cJSON *top = cJSON_IsArray(root) ? cJSON_GetArrayItem(root, 0) : root;
    const cJSON *err = wire_get(top, "error");
    enum llm_errclass c;
    if (cJSON_IsObject(err) && status >= 400) {
        c = gm_error_class(err, status, msg, msglen);
        gm_error_info(status, err, c, info);
    } else {
        c = llm_errclass_from_status(status);
        wire_msg(msg, msglen, "HTTP %ld", status);
    }
    cJSON_Delete(root);
    return c;
}

const struct provider_ops provider_gemini = {
    .name = "gemini",
    .encode = gemini_encode,
    .decode_full = gemini_decode_full,
    .stream_new = gemini_stream_new,
    .stream_free = gemini_stream_free,
    .stream_event = gemini_stream_event,
    .stream_end = gemini_stream_end,
    .classify = gemini_classify,
    .encode_probe = gemini_encode_probe,
};
