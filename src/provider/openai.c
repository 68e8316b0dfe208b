/*
 * openai.c - the OpenAI Chat Completions wire format, provider side: provider_openai.
 * Used for api.openai.com and for every OpenAI-compatible server (Ollama /v1, vLLM,
 * llama.cpp, Groq, Together, Mistral, DeepSeek): those just have no API key (no
 * Authorization header) or their own base_url.
 *
 * Choices made here:
 * - The output cap goes out as "max_tokens" for every server: all compatible servers know it,
 *   and OpenAI still honours it for chat models ("max_completion_tokens" is OpenAI-only).
 * - A streaming request always asks for stream_options.include_usage: usage is needed for
 *   billing whatever the client asked; the gateway decides what the client sees.
 * - tool_choice is only sent along with tools (servers reject it alone).
 * - A stream is complete with "data: [DONE]", or with a clean close (chunked end, not a
 *   reset) after a chunk that carried a finish_reason, as several compatible servers end;
 *   USAGE and FINISH are emitted at the end of the body (stream_end), so a stream reset after
 *   its last chunk, or closed before any finish_reason, is still TRUNCATED.
 * - What OpenAI-wire servers add passes through: message/delta "refusal", "reasoning_content"
 *   and "reasoning" (TEXT events of their kind), the choice's logprobs (with the content),
 *   system_fingerprint and service_tier (on FINISH).
 * - Tool calls in the older flat shape ({"name","arguments"} with no "function" wrapper, no
 *   id, finish_reason "tool") are read as the current shape, ids synthesised ("call_<n>").
 * - Errors found inside a 200 body or a stream ({"error":{...}}) are classified from their
 *   type/code; unknown ones count as SERVER (retryable).
 * - Stream chunks are scanned before they are parsed (openai_scan.c): a content chunk of the
 *   common shape is read without a tree and its TEXT event carries the chunk, so an OpenAI-
 *   wire client can be sent its bytes (same-format passthrough, struct llm_chunk). What the
 *   scanner refuses is parsed as before; provider_openai_parsed never scans.
 *
 * - A request's model and messages are written straight into the body (wire_put_str),
 *   the rest (tools, tool_choice, options) through a cJSON tree spliced in after them: a 4 MiB
 *   history of 18,000 turns took 14.6 ms to encode through a tree, on the router thread at
 *   every attempt, and takes 5.5 ms so (docs/bench.md, session 9).
 *
 * Pure: no I/O, no clocks; ops are stateless, streaming state is per call. A cJSON tree never
 * outlives the function that parsed it.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "openai_scan.h"
#include "switchboard/provider.h"
#include "wire.h"

#define OPENAI_MAX_TOOL_CALLS 128

/* ---- Small JSON helpers --------------------------------------------------------------- */

static const cJSON *jget(const cJSON *obj, const char *key)
{
    return cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
}

/* The string value of v, NULL unless v is a string. */
static const char *sval(const cJSON *v)
{
    return v && cJSON_IsString(v) ? v->valuestring : NULL;
}

static const char *jstr(const cJSON *obj, const char *key)
{
    return sval(jget(obj, key));
}

/* A token count: non-negative, finite, clamped. */
static long jcount(const cJSON *v)
{
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0))
        return 0;
    if (v->valuedouble > 1e15)
        return (long)1e15;
    return (long)v->valuedouble;
}

static int emit(const struct llm_sink *sink, const struct llm_event *ev)
{
    return sink->on_event(sink->ctx, ev);
}

static int emit_text(const struct llm_sink *sink, enum llm_event_type type, int index,
                     const char *text)
{
    if (!text || !*text)
        return 0;
    struct llm_event ev = {.type = type, .text = text, .len = strlen(text), .index = index};
    return emit(sink, &ev);
}

/* A tool call's name/arguments holder: its "function" object, or the call itself in the
 * older flat shape ({"name","arguments"} with no wrapper) some compatible servers send. */
static const cJSON *call_function(const cJSON *tc)
{
    const cJSON *fn = jget(tc, "function");
    return cJSON_IsObject(fn) ? fn : tc;
}

/*
 * The texts of a message or a delta, each as its kind: reasoning (reasoning_content or
 * reasoning), content, refusal. logprobs (the choice's, may be NULL or null) goes along with
 * the content, or with the refusal when there is no content. Returns the sink's answer.
 */
static int emit_texts(const cJSON *m, const cJSON *logprobs, const struct llm_sink *sink)
{
    static const enum llm_text_kind kinds[] = {LLM_TEXT_REASONING_CONTENT, LLM_TEXT_REASONING,
                                               LLM_TEXT_CONTENT, LLM_TEXT_REFUSAL};
    char *lp = cJSON_IsObject(logprobs) ? cJSON_PrintUnformatted(logprobs) : NULL;
    int stop = 0;
    for (size_t i = 0; i < SB_ARRAY_LEN(kinds) && !stop; i++) {
        const char *text = jstr(m, llm_text_kind_field(kinds[i]));
        if (!text || !*text)
            continue;
        struct llm_event ev = {
            .type = LLM_EV_TEXT, .text = text, .len = strlen(text), .kind = kinds[i]};
        if (lp && (kinds[i] == LLM_TEXT_CONTENT || kinds[i] == LLM_TEXT_REFUSAL)) {
            ev.logprobs = lp;
            ev.logprobs_len = strlen(lp);
        }
        stop = emit(sink, &ev);
        if (ev.logprobs) {
            cJSON_free(lp);
            lp = NULL;
        }
    }
    cJSON_free(lp);
    return stop;
}

static enum llm_finish finish_from(const char *s)
{
    if (!s)
        return LLM_FINISH_NONE;
    if (strcmp(s, "stop") == 0)
        return LLM_FINISH_STOP;
    if (strcmp(s, "length") == 0)
        return LLM_FINISH_LENGTH;
    if (strcmp(s, "tool_calls") == 0 || strcmp(s, "function_call") == 0 || strcmp(s, "tool") == 0)
        return LLM_FINISH_TOOL_CALLS;
    if (strcmp(s, "content_filter") == 0)
        return LLM_FINISH_CONTENT_FILTER;
    if (strcmp(s, "error") == 0)
        return LLM_FINISH_ERROR;
    return LLM_FINISH_NONE;
}

static bool usage_from(const cJSON *u, struct llm_usage *out)
{
    const cJSON *in = jget(u, "prompt_tokens"), *outp = jget(u, "completion_tokens");
    if (!cJSON_IsNumber(in) && !cJSON_IsNumber(outp))
        return false;
    out->present = true;
    out->input_tokens = jcount(in);
    out->output_tokens = jcount(outp);
    out->cached_tokens = jcount(jget(jget(u, "prompt_tokens_details"), "cached_tokens"));
    return true;
}

/* ---- Errors ----------------------------------------------------------------------------- */

static bool contains_ci(const char *hay, const char *needle)
{
    return hay && strcasestr(hay, needle) != NULL;
}

static bool is_context_length(const char *code, const char *message)
{
    static const char *const phrases[] = {
        "maximum context length", "context length", "context_length_exceeded",
        "too many tokens",        "context size",
    };
    if (code && strcmp(code, "context_length_exceeded") == 0)
        return true;
    for (size_t i = 0; i < SB_ARRAY_LEN(phrases); i++) {
        if (contains_ci(message, phrases[i]))
            return true;
    }
    return false;
}

/* An error reported inside a 2xx body or a stream: the type/code say what it was. */
static enum llm_errclass in_body_class(const char *type, const cJSON *code)
{
    const char *scode = sval(code);
    if (code && cJSON_IsNumber(code) && code->valuedouble >= 400 && code->valuedouble < 600)
        return llm_errclass_from_status((long)code->valuedouble);
    if (contains_ci(type, "rate_limit") || contains_ci(scode, "rate_limit") ||
        str_eq(scode, "insufficient_quota"))
        return LLM_ERR_RATE_LIMIT;
    if (contains_ci(type, "overloaded"))
        return LLM_ERR_OVERLOADED;
    if (contains_ci(type, "authentication") || contains_ci(type, "permission") ||
        str_eq(scode, "invalid_api_key"))
        return LLM_ERR_AUTH;
    if (str_eq(type, "invalid_request_error"))
        return LLM_ERR_BAD_REQUEST;
    return LLM_ERR_SERVER;
}

/*
 * {"error":{"message","type","code"}}, {"error":"text"}, {"message":...} or {"detail":...}
 * -> class + message. status is the HTTP status, or 0 for an error inside a 2xx body/stream.
 */
static enum llm_errclass classify_json(long status, const cJSON *root, char *msg, size_t msglen)
{
    const cJSON *err = jget(root, "error");
    const char *message = NULL, *type = NULL;
    const cJSON *code = NULL;
    if (cJSON_IsObject(err)) {
        message = jstr(err, "message");
        type = jstr(err, "type");
        code = jget(err, "code");
    } else if (cJSON_IsString(err)) {
        message = err->valuestring;
    } else {
        message = jstr(root, "message") ? jstr(root, "message") : jstr(root, "detail");
        type = jstr(root, "type");
    }
    const char *scode = sval(code);
    bool in_body = status == 0 || (status >= 200 && status < 300);
    enum llm_errclass cls = in_body ? in_body_class(type, code) : llm_errclass_from_status(status);
    if (!in_body && cls == LLM_ERR_SERVER && str_eq(type, "overloaded_error"))
        cls = LLM_ERR_OVERLOADED;
    if ((cls == LLM_ERR_BAD_REQUEST || in_body) && is_context_length(scode, message))
        cls = LLM_ERR_CONTEXT_LENGTH;

    if (!message || !*message)
        message = type && *type ? type : scode;
    if (cls == LLM_ERR_RATE_LIMIT && str_eq(scode, "insufficient_quota"))
        snprintf(msg, msglen, "insufficient quota: %s", message ? message : "no credit left");
    else if (message && *message)
        str_copy(msg, msglen, message);
    else if (in_body)
        str_copy(msg, msglen, "provider reported an error");
    else
        snprintf(msg, msglen, "HTTP %ld", status);
    return cls;
}

/* The error object's own type, code and param, as the client should see them. */
static void error_info(long status, const cJSON *root, struct llm_error_info *info)
{
    const cJSON *err = jget(root, "error");
    const cJSON *code = jget(err, "code");
    const char *type = jstr(err, "type");
    if (!cJSON_IsObject(err))
        type = jstr(root, "type");
    if (!type || !*type)
        type = llm_error_type_for_status(status);
    str_copy(info->type, sizeof info->type, type ? type : "");
    if (sval(code))
        str_copy(info->code, sizeof info->code, sval(code));
    else if (cJSON_IsNumber(code) && fabs(code->valuedouble) < 1e9)
        snprintf(info->code, sizeof info->code, "%ld", (long)code->valuedouble);
    str_copy(info->param, sizeof info->param, jstr(err, "param") ? jstr(err, "param") : "");
}

static enum llm_errclass openai_classify(long status, const char *body, size_t len,
                                         struct llm_error_info *info, char *msg, size_t msglen)
{
    cJSON *root = len ? cJSON_ParseWithLength(body, len) : NULL;
    enum llm_errclass cls;
    if (cJSON_IsObject(root)) {
        cls = classify_json(status, root, msg, msglen);
        error_info(status, root, info);
    } else {
        cls = llm_errclass_from_status(status);
        snprintf(msg, msglen, "HTTP %ld", status);
    }
    cJSON_Delete(root);
    return cls;
}

static bool has_error(const cJSON *root)
{
    const cJSON *err = jget(root, "error");
    return err && !cJSON_IsNull(err);
}

/* ---- Encoding --------------------------------------------------------------------------- */

static enum sb_status set_url(const struct config_target *t, const char *path,
                              struct http_request *out, char *msg, size_t msglen)
{
    if (!t->base_url || !*t->base_url) {
        snprintf(msg, msglen, "target %s has no base_url", t->name ? t->name : "?");
        return SB_ERR_INVALID;
    }
    size_t n = strlen(t->base_url);
    while (n > 0 && t->base_url[n - 1] == '/')
        n--;
    out->url = xasprintf("%.*s%s", (int)n, t->base_url, path);
    return SB_OK;
}

/* Refuses a key with a control character: it could split the Authorization header (config
 * loading rejects those already; this is the second line). */
static enum sb_status check_key(const struct config_target *t, char *msg, size_t msglen)
{
    if (!str_has_ctl(t->api_key))
        return SB_OK;
    snprintf(msg, msglen, "target %s: API key contains a control character",
             t->name ? t->name : "?");
    return SB_ERR_INVALID;
}

static void add_auth(const struct config_target *t, struct http_request *out)
{
    if (t->api_key && *t->api_key)
        http_request_add_header(out, "Authorization: Bearer %s", t->api_key);
}

static cJSON *encode_tool_calls(const struct llm_message *m)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t j = 0; j < m->n_tool_calls; j++) {
        const struct llm_tool_call *tc = &m->tool_calls[j];
        cJSON *o = cJSON_CreateObject();
        wire_add_call_id(o, "id", tc->id);
        cJSON_AddStringToObject(o, "type", "function");
        cJSON *fn = cJSON_AddObjectToObject(o, "function");
        cJSON_AddStringToObject(fn, "name", tc->name ? tc->name : "");
        cJSON_AddStringToObject(fn, "arguments", tc->arguments ? tc->arguments : "{}");
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

/* One message, written straight into b: its content may be most of a 4 MiB prompt, which a
 * cJSON tree would copy twice and print a byte at a time on the router thread (docs/bench.md,
 * session 9). */
static enum sb_status encode_message(const struct llm_message *m, size_t i, struct buf *b,
                                     char *msg, size_t msglen)
{
    WIRE_STEP();
    if (m->role == LLM_ROLE_TOOL && !m->tool_call_id) {
        snprintf(msg, msglen, "messages[%zu]: a tool result needs tool_call_id", i);
        return SB_ERR_INVALID;
    }
    buf_puts(b, i ? ",{\"role\":" : "{\"role\":");
    wire_put_str(b, llm_role_name(m->role));
    if (m->role == LLM_ROLE_TOOL) {
        buf_puts(b, ",\"tool_call_id\":");
        wire_put_call_id(b, m->tool_call_id);
    }
    buf_puts(b, ",\"content\":");
    if (m->role == LLM_ROLE_ASSISTANT && !m->content && m->n_tool_calls)
        buf_puts(b, "null");
    else
        wire_put_str(b, m->content);
    if (m->role == LLM_ROLE_ASSISTANT && m->n_tool_calls) {
        buf_puts(b, ",\"tool_calls\":");
        wire_put_json(b, encode_tool_calls(m));
    }
    buf_putc(b, '}');
    return SB_OK;
}

static enum sb_status encode_tool(const struct llm_tool *t, size_t i, cJSON *arr, char *msg,
                                  size_t msglen)
{
    cJSON *params =
        t->parameters_json ? cJSON_Parse(t->parameters_json) : cJSON_Parse("{\"type\":\"object\"}");
    if (!t->name || !*t->name) {
        snprintf(msg, msglen, "tools[%zu].name: required", i);
        cJSON_Delete(params);
        return SB_ERR_INVALID;
    }
    if (!cJSON_IsObject(params)) {
        snprintf(msg, msglen, "tools[%zu].parameters: expected a JSON object", i);
        cJSON_Delete(params);
        return SB_ERR_INVALID;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "function");
    cJSON *fn = cJSON_AddObjectToObject(o, "function");
    cJSON_AddStringToObject(fn, "name", t->name);
    if (t->description)
        cJSON_AddStringToObject(fn, "description", t->description);
    cJSON_AddItemToObject(fn, "parameters", params);
    cJSON_AddItemToArray(arr, o);
    return SB_OK;
}

static enum sb_status encode_tool_choice(const struct llm_request *req, cJSON *root, char *msg,
                                         size_t msglen)
{
    cJSON *o;
    switch (req->tool_choice) {
    case LLM_TOOL_CHOICE_UNSET:
        break;
    case LLM_TOOL_CHOICE_AUTO:
        cJSON_AddStringToObject(root, "tool_choice", "auto");
        break;
    case LLM_TOOL_CHOICE_NONE:
        cJSON_AddStringToObject(root, "tool_choice", "none");
        break;
    case LLM_TOOL_CHOICE_REQUIRED:
        cJSON_AddStringToObject(root, "tool_choice", "required");
        break;
    case LLM_TOOL_CHOICE_NAMED:
        if (!req->tool_choice_name) {
            str_copy(msg, msglen, "tool_choice: a named tool choice needs a name");
            return SB_ERR_INVALID;
        }
        o = cJSON_AddObjectToObject(root, "tool_choice");
        cJSON_AddStringToObject(o, "type", "function");
        cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "function"), "name",
                                req->tool_choice_name);
        break;
    }
    return SB_OK;
}

/* The sampling and shaping options. */
static void encode_options(const struct llm_request *req, cJSON *root)
{
    if (req->max_tokens > 0)
        cJSON_AddNumberToObject(root, "max_tokens", (double)req->max_tokens);
    if (req->has_temperature)
        cJSON_AddNumberToObject(root, "temperature", req->temperature);
    if (req->has_top_p)
        cJSON_AddNumberToObject(root, "top_p", req->top_p);
    if (req->n_stop) {
        cJSON *stop = cJSON_AddArrayToObject(root, "stop");
        for (size_t i = 0; i < req->n_stop; i++)
            cJSON_AddItemToArray(stop, cJSON_CreateString(req->stop[i] ? req->stop[i] : ""));
    }
    if (req->user)
        cJSON_AddStringToObject(root, "user", req->user);
    if (req->stream) {
        cJSON_AddTrueToObject(root, "stream");
        cJSON_AddTrueToObject(cJSON_AddObjectToObject(root, "stream_options"), "include_usage");
    }
}

/* The body's model and messages, written into b ("{" up to the messages array's "]"). */
static enum sb_status encode_head(const struct config_target *t, const struct llm_request *req,
                                  struct buf *b, char *msg, size_t msglen)
{
    enum sb_status st = SB_OK;
    const char *model = t->model ? t->model : req->model;
    buf_puts(b, "{\"model\":");
    wire_put_str(b, model);
    buf_puts(b, ",\"messages\":[");
    for (size_t i = 0; i < req->n_messages && st == SB_OK; i++)
        st = encode_message(&req->messages[i], i, b, msg, msglen);
    buf_putc(b, ']');
    return st;
}

/* The rest of the body (tools, tool_choice, the options) as a cJSON tree: small. */
static enum sb_status encode_tail(const struct llm_request *req, cJSON *root, char *msg,
                                  size_t msglen)
{
    enum sb_status st = SB_OK;
    if (req->n_tools) {
        cJSON *tools = cJSON_AddArrayToObject(root, "tools");
        for (size_t i = 0; i < req->n_tools && st == SB_OK; i++)
            st = encode_tool(&req->tools[i], i, tools, msg, msglen);
        if (st == SB_OK)
            st = encode_tool_choice(req, root, msg, msglen);
    }
    if (st == SB_OK)
        encode_options(req, root);
    return st;
}

/* The body: the head written directly, then the tail's members after it (wire_put_members).
 * The keys come in the order a single tree would print them. */
static enum sb_status encode_body(const struct config_target *t, const struct llm_request *req,
                                  struct buf *body, char *msg, size_t msglen)
{
    cJSON *root = cJSON_CreateObject();
    enum sb_status st = encode_head(t, req, body, msg, msglen);
    if (st == SB_OK)
        st = encode_tail(req, root, msg, msglen);
    return wire_put_members(body, root, st);
}

static enum sb_status openai_encode(const struct config_target *t, const struct llm_request *req,
                                    struct http_request *out, char *msg, size_t msglen)
{
    struct buf body;
    buf_init(&body);
    enum sb_status st = encode_body(t, req, &body, msg, msglen);
    if (st == SB_OK)
        st = check_key(t, msg, msglen);
    if (st != SB_OK)
        goto out;
    st = set_url(t, "/chat/completions", out, msg, msglen);
    if (st != SB_OK)
        goto out;
    out->method = xstrdup("POST");
    out->body_len = body.len;
    out->body = buf_take(&body);
    http_request_add_header(out, "Content-Type: application/json");
    add_auth(t, out);
    if (req->stream)
        http_request_add_header(out, "Accept: text/event-stream");
out:
    buf_cleanup(&body);
    return st;
}

static enum sb_status openai_encode_probe(const struct config_target *t, struct http_request *out,
                                          char *msg, size_t msglen)
{
    enum sb_status st = check_key(t, msg, msglen);
    if (st == SB_OK)
        st = set_url(t, "/models", out, msg, msglen);
    if (st != SB_OK)
        return st;
    out->method = xstrdup("GET");
    add_auth(t, out);
    return SB_OK;
}

/* ---- Whole responses -------------------------------------------------------------------- */

/* One complete tool call from a chat.completion message. Returns the sink's answer. */
static int full_tool_call(const cJSON *tc, int i, const struct llm_sink *sink)
{
    char idbuf[32];
    const cJSON *fn = call_function(tc);
    const char *id = jstr(tc, "id");
    const cJSON *args = jget(fn, "arguments");
    char *printed = NULL;
    if (!id || !*id) {
        snprintf(idbuf, sizeof idbuf, "call_%d", i);
        id = idbuf;
    }
    const char *name = jstr(fn, "name");
    struct llm_event ev = {.type = LLM_EV_TOOL_CALL, .index = i, .id = id, .name = name};
    int stop = emit(sink, &ev);
    if (!stop && cJSON_IsString(args))
        stop = emit_text(sink, LLM_EV_TOOL_ARGS, i, args->valuestring);
    else if (!stop && cJSON_IsObject(args)) {
        printed = cJSON_PrintUnformatted(args);
        stop = emit_text(sink, LLM_EV_TOOL_ARGS, i, printed);
    }
    cJSON_free(printed);
    return stop;
}

static enum llm_errclass decode_message(const cJSON *choice, const struct llm_sink *sink, char *msg,
                                        size_t msglen)
{
    const cJSON *message = jget(choice, "message");
    if (!cJSON_IsObject(message)) {
        str_copy(msg, msglen, "choices[0].message: missing");
        return LLM_ERR_BAD_RESPONSE;
    }
    const cJSON *calls = jget(message, "tool_calls");
    int n = cJSON_IsArray(calls) ? cJSON_GetArraySize(calls) : 0;
    for (int i = 0; i < n; i++) {
        const char *name = jstr(call_function(cJSON_GetArrayItem(calls, i)), "name");
        if (!name || !*name || i >= OPENAI_MAX_TOOL_CALLS) {
            snprintf(msg, msglen, "choices[0].message.tool_calls[%d]: no function name", i);
            return LLM_ERR_BAD_RESPONSE;
        }
    }
    if (emit_texts(message, jget(choice, "logprobs"), sink))
        return LLM_ERR_NONE;
    for (int i = 0; i < n; i++) {
        if (full_tool_call(cJSON_GetArrayItem(calls, i), i, sink))
            return LLM_ERR_NONE;
    }
    return LLM_ERR_NONE;
}

static void span_copy(char *dst, size_t size, const struct oai_span *sp);
static enum llm_errclass openai_decode_parsed(const char *body, size_t len,
                                              const struct llm_sink *sink, char *msg,
                                              size_t msglen);

/* A parse whose tree is deleted before the caller returns: nodes from the scratch arena. */
static cJSON *parse_scratch(const char *s, size_t len)
{
    bool arena = scratch_begin();
    cJSON *root = cJSON_ParseWithLength(s, len);
    if (arena)
        scratch_end();
    return root;
}

/* A body the scanner read whole: the events decode_parsed would emit for it, the FINISH
 * carrying the body for a same-format client (struct llm_chunk). */
static void decode_scanned(const struct oai_full *sc, const struct llm_sink *sink)
{
    char fp[96], tier[32];
    struct llm_event ev = {.type = LLM_EV_TEXT, .kind = LLM_TEXT_CONTENT};
    char *text = NULL;
    if (sc->content.len > 0) {
        ev.text = sc->content.s;
        ev.len = sc->content.len;
        if (sc->content.escaped) {
            text = xmalloc(sc->content.len + 1);
            ev.len = openai_scan_unescape(&sc->content, text);
            ev.text = text;
        }
        if (ev.len > 0 && emit(sink, &ev))
            goto out;
    }
    ev = (struct llm_event){.type = LLM_EV_USAGE, .usage = sc->usage};
    if (sc->usage.present && emit(sink, &ev))
        goto out;
    ev = (struct llm_event){.type = LLM_EV_FINISH, .finish = sc->finish, .chunk = &sc->body};
    if (sc->fingerprint.s) {
        span_copy(fp, sizeof fp, &sc->fingerprint);
        ev.system_fingerprint = fp;
    }
    if (sc->tier.s) {
        span_copy(tier, sizeof tier, &sc->tier);
        ev.service_tier = tier;
    }
    emit(sink, &ev);
out:
    free(text);
}

static enum llm_errclass openai_decode_full(const char *body, size_t len,
                                            const struct llm_sink *sink, char *msg, size_t msglen)
{
    struct oai_full sc;
    if (openai_scan_completion(body, len, &sc)) {
        decode_scanned(&sc, sink);
        return LLM_ERR_NONE;
    }
    return openai_decode_parsed(body, len, sink, msg, msglen);
}

static enum llm_errclass openai_decode_parsed(const char *body, size_t len,
                                              const struct llm_sink *sink, char *msg, size_t msglen)
{
    enum llm_errclass cls = LLM_ERR_NONE;
    cJSON *root = parse_scratch(body, len);
    const cJSON *choices = jget(root, "choices");
    struct llm_event ev = {.type = LLM_EV_USAGE};
    if (!cJSON_IsObject(root)) {
        str_copy(msg, msglen, "response is not a JSON object");
        cls = LLM_ERR_BAD_RESPONSE;
        goto out;
    }
    if (has_error(root)) {
        cls = classify_json(0, root, msg, msglen);
        goto out;
    }
    if (!cJSON_IsArray(choices) || cJSON_GetArraySize(choices) == 0) {
        str_copy(msg, msglen, "response has no choices");
        cls = LLM_ERR_BAD_RESPONSE;
        goto out;
    }
    const cJSON *choice = cJSON_GetArrayItem(choices, 0);
    cls = decode_message(choice, sink, msg, msglen);
    if (cls != LLM_ERR_NONE)
        goto out;
    if (usage_from(jget(root, "usage"), &ev.usage) && emit(sink, &ev))
        goto out;
    ev = (struct llm_event){
        .type = LLM_EV_FINISH,
        .finish = finish_from(jstr(choice, "finish_reason")),
        .system_fingerprint = jstr(root, "system_fingerprint"),
        .service_tier = jstr(root, "service_tier"),
    };
    emit(sink, &ev);
out:
    cJSON_Delete(root);
    return cls;
}

/* ---- Streams ---------------------------------------------------------------------------- */

struct openai_stream {
    bool done;       /* "data: [DONE]" seen */
    bool has_finish; /* a chunk carried a finish_reason */
    enum llm_finish finish;
    char fingerprint[96]; /* the last system_fingerprint / service_tier seen */
    char tier[32];
    struct llm_usage usage;
    long pindex[OPENAI_MAX_TOOL_CALLS]; /* provider's index of each of our calls */
    char *ids[OPENAI_MAX_TOOL_CALLS];
    int n_tools;
    bool scan;       /* try the passthrough scanner before the parser */
    struct buf text; /* a scanned content with escapes, unescaped */
};

static void *openai_stream_new(void)
{
    struct openai_stream *st = xcalloc(1, sizeof *st);
    st->scan = true;
    buf_init(&st->text);
    return st;
}

static void *openai_stream_new_parsed(void)
{
    struct openai_stream *st = openai_stream_new();
    st->scan = false;
    return st;
}

static void openai_stream_free(void *state)
{
    struct openai_stream *st = state;
    if (!st)
        return;
    for (int i = 0; i < st->n_tools; i++)
        free(st->ids[i]);
    buf_cleanup(&st->text);
    free(st);
}

/* Our 0-based slot for a tool-call fragment; -1 when over the cap. *is_new on first sight.
 * Servers that omit "index" are matched by id, else the fragment continues the last call. */
static int tool_slot(struct openai_stream *st, const cJSON *tc, bool *is_new)
{
    const cJSON *idx = jget(tc, "index");
    const char *id = jstr(tc, "id");
    long p;
    *is_new = false;
    if (cJSON_IsNumber(idx)) {
        p = idx->valuedouble >= 0 && idx->valuedouble < 1e6 ? (long)idx->valuedouble : -1;
        for (int i = 0; i < st->n_tools; i++) {
            if (st->pindex[i] == p)
                return i;
        }
    } else {
        p = -2 - st->n_tools; /* synthetic, never matches a real index */
        for (int i = 0; id && i < st->n_tools; i++) {
            if (str_eq(st->ids[i], id))
                return i;
        }
        if (!id && st->n_tools > 0)
            return st->n_tools - 1;
    }
    if (st->n_tools >= OPENAI_MAX_TOOL_CALLS)
        return -1;
    st->pindex[st->n_tools] = p;
    st->ids[st->n_tools] = id && *id ? xstrdup(id) : xasprintf("call_%d", st->n_tools);
    *is_new = true;
    return st->n_tools++;
}

static enum llm_errclass stream_tool_calls(struct openai_stream *st, const cJSON *calls,
                                           const struct llm_sink *sink, char *msg, size_t msglen)
{
    const cJSON *tc;
    cJSON_ArrayForEach(tc, calls)
    {
        bool is_new;
        int slot = tool_slot(st, tc, &is_new);
        if (slot < 0) {
            snprintf(msg, msglen, "more than %d tool calls", OPENAI_MAX_TOOL_CALLS);
            return LLM_ERR_BAD_RESPONSE;
        }
        const cJSON *fn = call_function(tc);
        const char *name = jstr(fn, "name");
        if (is_new) {
            struct llm_event ev = {
                .type = LLM_EV_TOOL_CALL,
                .index = slot,
                .id = st->ids[slot],
                .name = name ? name : "",
            };
            if (emit(sink, &ev))
                return LLM_ERR_NONE;
        }
        const cJSON *args = jget(fn, "arguments");
        char *printed = cJSON_IsObject(args) ? cJSON_PrintUnformatted(args) : NULL;
        int stop = emit_text(sink, LLM_EV_TOOL_ARGS, slot, printed ? printed : sval(args));
        cJSON_free(printed);
        if (stop)
            return LLM_ERR_NONE;
    }
    return LLM_ERR_NONE;
}

/* One chat.completion.chunk. */
static enum llm_errclass stream_chunk(struct openai_stream *st, const cJSON *root,
                                      const struct llm_sink *sink, char *msg, size_t msglen)
{
    const cJSON *usage = jget(root, "usage"), *choices = jget(root, "choices"), *choice;
    if (cJSON_IsObject(usage))
        usage_from(usage, &st->usage);
    if (jstr(root, "system_fingerprint"))
        str_copy(st->fingerprint, sizeof st->fingerprint, jstr(root, "system_fingerprint"));
    if (jstr(root, "service_tier"))
        str_copy(st->tier, sizeof st->tier, jstr(root, "service_tier"));
    if (!cJSON_IsArray(choices))
        return LLM_ERR_NONE;
    cJSON_ArrayForEach(choice, choices)
    {
        const cJSON *index = jget(choice, "index");
        if (cJSON_IsNumber(index) && index->valuedouble != 0)
            continue; /* we only ever ask for one choice */
        const cJSON *delta = jget(choice, "delta");
        if (emit_texts(delta, jget(choice, "logprobs"), sink))
            return LLM_ERR_NONE;
        const cJSON *calls = jget(delta, "tool_calls");
        if (cJSON_IsArray(calls)) {
            enum llm_errclass cls = stream_tool_calls(st, calls, sink, msg, msglen);
            if (cls != LLM_ERR_NONE)
                return cls;
        }
        const char *finish = jstr(choice, "finish_reason");
        if (finish) {
            st->finish = finish_from(finish);
            st->has_finish = true;
        }
    }
    return LLM_ERR_NONE;
}

static bool is_done(const char *data, size_t len)
{
    while (len > 0 && (*data == ' ' || *data == '\t')) {
        data++;
        len--;
    }
    while (len > 0 && (data[len - 1] == ' ' || data[len - 1] == '\t' || data[len - 1] == '\n'))
        len--;
    return len == 6 && memcmp(data, "[DONE]", 6) == 0;
}

/* A span the scanner found (never escaped) as a NUL-terminated copy into dst, as str_copy
 * would copy the parsed string. */
static void span_copy(char *dst, size_t size, const struct oai_span *sp)
{
    size_t n = sp->len < size - 1 ? sp->len : size - 1;
    memcpy(dst, sp->s, n);
    dst[n] = '\0';
}

static bool span_is(const struct oai_span *sp, const char *s)
{
    return sp->len == strlen(s) && memcmp(sp->s, s, sp->len) == 0;
}

static enum llm_finish finish_from_span(const struct oai_span *sp)
{
    static const char *const names[] = {"stop", "length",         "tool_calls", "function_call",
                                        "tool", "content_filter", "error"};
    for (size_t i = 0; i < SB_ARRAY_LEN(names); i++) {
        if (span_is(sp, names[i]))
            return finish_from(names[i]);
    }
    return LLM_FINISH_NONE;
}

/* A chunk the scanner read whole: what stream_chunk would do with its tree, the content's
 * TEXT event carrying the chunk for a same-format client. */
static enum llm_errclass stream_scanned(struct openai_stream *st, const struct oai_scan *sc,
                                        const struct llm_sink *sink)
{
    if (sc->fingerprint.s)
        span_copy(st->fingerprint, sizeof st->fingerprint, &sc->fingerprint);
    if (sc->tier.s)
        span_copy(st->tier, sizeof st->tier, &sc->tier);
    if (sc->content.len > 0) {
        struct llm_event ev = {.type = LLM_EV_TEXT, .kind = LLM_TEXT_CONTENT};
        ev.text = sc->content.s;
        ev.len = sc->content.len;
        if (sc->content.escaped) {
            buf_reset(&st->text);
            buf_append(&st->text, sc->content.s, sc->content.len); /* room for the copy */
            ev.len = openai_scan_unescape(&sc->content, st->text.data);
            ev.text = st->text.data;
        }
        ev.chunk = sc->has_envelope ? &sc->chunk : NULL;
        if (ev.len > 0 && emit(sink, &ev))
            return LLM_ERR_NONE;
    }
    if (sc->finish.s) {
        st->finish = finish_from_span(&sc->finish);
        st->has_finish = true;
    }
    return LLM_ERR_NONE;
}

static enum llm_errclass openai_stream_event(void *state, const struct sse_event *ev,
                                             const struct llm_sink *sink, char *msg, size_t msglen)
{
    struct openai_stream *st = state;
    enum llm_errclass cls = LLM_ERR_NONE;
    cJSON *root = NULL;
    struct oai_scan sc;
    if (st->done)
        return LLM_ERR_NONE; /* nothing counts after [DONE] */
    if (is_done(ev->data, ev->data_len)) {
        st->done = true;
        return LLM_ERR_NONE;
    }
    if (st->scan && !str_eq(ev->event, "error") && openai_scan_chunk(ev->data, ev->data_len, &sc))
        return stream_scanned(st, &sc, sink);
    root = parse_scratch(ev->data, ev->data_len);
    if (!cJSON_IsObject(root)) {
        str_copy(msg, msglen, "stream event is not a JSON object");
        cls = LLM_ERR_BAD_RESPONSE;
    } else if (has_error(root) || str_eq(ev->event, "error")) {
        cls = classify_json(0, root, msg, msglen);
    } else {
        cls = stream_chunk(st, root, sink, msg, msglen);
    }
    cJSON_Delete(root);
    return cls;
}

/* Complete with [DONE]; or, as several compatible servers end, with a clean close after a
 * chunk that carried a finish_reason. */
static enum llm_errclass openai_stream_end(void *state, bool clean, const struct llm_sink *sink,
                                           char *msg, size_t msglen)
{
    struct openai_stream *st = state;
    if (!st->done && !(clean && st->has_finish)) {
        str_copy(msg, msglen,
                 st->has_finish ? "stream cut after its finish_reason, before [DONE]"
                                : "stream ended without a finish_reason or [DONE]");
        return LLM_ERR_TRUNCATED;
    }
    struct llm_event ev = {.type = LLM_EV_USAGE, .usage = st->usage};
    if (st->usage.present && emit(sink, &ev))
        return LLM_ERR_NONE;
    ev = (struct llm_event){
        .type = LLM_EV_FINISH,
        .finish = st->finish,
        .system_fingerprint = st->fingerprint[0] ? st->fingerprint : NULL,
        .service_tier = st->tier[0] ? st->tier : NULL,
    };
    emit(sink, &ev);
    return LLM_ERR_NONE;
}

const struct provider_ops provider_openai = {
    .name = "openai",
    .encode = openai_encode,
    .decode_full = openai_decode_full,
    .stream_new = openai_stream_new,
    .stream_free = openai_stream_free,
    .stream_event = openai_stream_event,
    .stream_end = openai_stream_end,
    .classify = openai_classify,
    .encode_probe = openai_encode_probe,
};

const struct provider_ops provider_openai_parsed = {
    .name = "openai",
    .encode = openai_encode,
    .decode_full = openai_decode_parsed,
    .stream_new = openai_stream_new_parsed,
    .stream_free = openai_stream_free,
    .stream_event = openai_stream_event,
    .stream_end = openai_stream_end,
    .classify = openai_classify,
    .encode_probe = openai_encode_probe,
};
