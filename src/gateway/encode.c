/*
 * encode.c - what the gateway writes back, exactly as the official OpenAI SDKs parse it:
 * llm events -> "data: {chat.completion.chunk}\n\n" SSE chunks, a collected answer -> one
 * chat.completion object, and failures -> {"error":{"message","type","param","code"}} with
 * the HTTP status to answer with.
 *
 * A streamed answer: a role chunk ({"role":"assistant","content":""}), one chunk per text or
 * tool-call delta, a chunk with an empty delta and the finish_reason, the usage chunk
 * ("choices":[]) only when the client asked stream_options.include_usage (and then every
 * other chunk carries "usage":null, as OpenAI does), then "data: [DONE]". A stream that
 * breaks after output ends with an error chunk and no [DONE]: the SDKs raise APIError on it.
 *
 * Pure: no locks, no I/O, no clocks (created times come in as arguments).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* ---- streaming ---------------------------------------------------------------------------- */

void gw_sse_init(struct gw_sse *s, const char *id, const char *model, int64_t created,
                 bool include_usage)
{
    memset(s, 0, sizeof *s);
    buf_init(&s->prefix);
    buf_puts(&s->prefix, "data: {\"id\":");
    gw_put_json_string(&s->prefix, id, strlen(id));
    buf_printf(&s->prefix, ",\"object\":\"chat.completion.chunk\",\"created\":%" PRId64 ",",
               created);
    buf_puts(&s->prefix, "\"model\":");
    gw_put_json_string(&s->prefix, model, strlen(model));
    buf_putc(&s->prefix, ',');
    s->choices_at = s->prefix.len;
    buf_puts(&s->prefix, "\"choices\":");
    s->include_usage = include_usage;
    buf_init(&s->id_json);
    gw_put_json_string(&s->id_json, id, strlen(id));
    buf_init(&s->model_json);
    gw_put_json_string(&s->model_json, model, strlen(model));
    snprintf(s->created, sizeof s->created, "%" PRId64, created);
}

void gw_sse_cleanup(struct gw_sse *s)
{
    buf_cleanup(&s->prefix);
    buf_cleanup(&s->id_json);
    buf_cleanup(&s->model_json);
}

bool gw_sse_is_over(const struct gw_sse *s)
{
    return s->over;
}

static void chunk_open(const struct gw_sse *s, struct buf *out)
{
    buf_append(out, s->prefix.data, s->prefix.len);
    buf_puts(out, "[{\"index\":0,\"delta\":");
}

/* The chunk prefix with the provider's system_fingerprint / service_tier (either may be
 * NULL) put before "choices". */
static void prefix_with(const struct gw_sse *s, const char *fingerprint, const char *tier,
                        struct buf *out)
{
    buf_append(out, s->prefix.data, s->choices_at);
    if (fingerprint) {
        buf_puts(out, "\"system_fingerprint\":");
        gw_put_json_string(out, fingerprint, strlen(fingerprint));
        buf_putc(out, ',');
    }
    if (tier) {
        buf_puts(out, "\"service_tier\":");
        gw_put_json_string(out, tier, strlen(tier));
        buf_putc(out, ',');
    }
    buf_append(out, s->prefix.data + s->choices_at, s->prefix.len - s->choices_at);
}

/* Closes a chunk opened by chunk_open with the choice's logprobs (JSON text; NULL: null). */
static void chunk_close_lp(const struct gw_sse *s, const char *finish, const char *logprobs,
                           size_t lp_len, struct buf *out)
{
    if (logprobs && lp_len) {
        buf_puts(out, ",\"logprobs\":");
        buf_append(out, logprobs, lp_len);
    }
    buf_puts(out, ",\"finish_reason\":");
    if (finish)
        gw_put_json_string(out, finish, strlen(finish));
    else
        buf_puts(out, "null");
    buf_puts(out, "}]");
    if (s->include_usage)
        buf_puts(out, ",\"usage\":null");
    buf_puts(out, "}\n\n");
}

/* Closes a chunk opened by chunk_open; finish NULL -> null. */
static void chunk_close(const struct gw_sse *s, const char *finish, struct buf *out)
{
    chunk_close_lp(s, finish, NULL, 0, out);
}

static void usage_json(struct buf *out, const struct llm_usage *u)
{
    buf_printf(out,
               "{\"prompt_tokens\":%ld,\"completion_tokens\":%ld,\"total_tokens\":%ld,"
               "\"prompt_tokens_details\":{\"cached_tokens\":%ld}}",
               u->input_tokens, u->output_tokens, u->input_tokens + u->output_tokens,
               u->cached_tokens);
}

void gw_sse_begin(struct gw_sse *s, struct buf *out)
{
    if (s->started || s->over)
        return;
    s->started = true;
    chunk_open(s, out);
    buf_puts(out, "{\"role\":\"assistant\",\"content\":\"\"}");
    chunk_close(s, NULL, out);
}

static const char *finish_reason(enum llm_finish f, bool saw_tool)
{
    const char *name = llm_finish_name(f);
    if (name)
        return name;
    return saw_tool ? "tool_calls" : "stop";
}

static void sse_tool_call(struct gw_sse *s, const struct llm_event *ev, struct buf *out)
{
    char synth[32];
    const char *id = ev->id;
    if (!id || !*id) {
        snprintf(synth, sizeof synth, "call_%d", ev->index);
        id = synth;
    }
    const char *name = ev->name ? ev->name : "";
    s->saw_tool = true;
    chunk_open(s, out);
    buf_printf(out, "{\"tool_calls\":[{\"index\":%d,\"id\":", ev->index);
    gw_put_json_string(out, id, strlen(id));
    buf_puts(out, ",\"type\":\"function\",\"function\":{\"name\":");
    gw_put_json_string(out, name, strlen(name));
    buf_puts(out, ",\"arguments\":\"\"}}]}");
    chunk_close(s, NULL, out);
}

static void sse_finish(struct gw_sse *s, const struct llm_event *ev, struct buf *out)
{
    prefix_with(s, ev->system_fingerprint, ev->service_tier, out);
    buf_puts(out, "[{\"index\":0,\"delta\":{}");
    chunk_close(s, finish_reason(ev->finish, s->saw_tool), out);
    if (s->include_usage) {
        prefix_with(s, ev->system_fingerprint, ev->service_tier, out);
        buf_puts(out, "[],\"usage\":");
        if (s->usage.present)
            usage_json(out, &s->usage);
        else
            buf_puts(out, "null");
        buf_puts(out, "}\n\n");
    }
    buf_puts(out, "data: [DONE]\n\n");
    s->over = true;
}

/* What replaces span f of a forwarded chunk; *len its length. */
static const char *forward_value(const struct gw_sse *s, enum llm_chunk_field f,
                                 const struct llm_chunk *ch, size_t *len)
{
    const char *v = NULL;
    switch (f) {
    case LLM_CHUNK_ID:
        v = buf_str(&s->id_json);
        break;
    case LLM_CHUNK_CREATED:
        v = s->created;
        break;
    case LLM_CHUNK_MODEL:
        v = buf_str(&s->model_json);
        break;
    case LLM_CHUNK_FINISH:
        v = "null";
        break;
    case LLM_CHUNK_USAGE:
        *len = s->include_usage ? ch->span[f].len : 0;
        return ch->json + ch->span[f].at;
    }
    *len = strlen(v);
    return v;
}

/* The provider's chunk as it came, with the spans it names replaced (passthrough). */
static void sse_forward(const struct gw_sse *s, const struct llm_chunk *ch, struct buf *out)
{
    int order[LLM_CHUNK_FIELDS] = {0}, n = 0;
    for (int f = 0; f < LLM_CHUNK_FIELDS; f++) { /* present spans by offset: at most 5 */
        if (ch->span[f].len == 0)
            continue;
        int i = n++;
        for (; i > 0 && ch->span[order[i - 1]].at > ch->span[f].at; i--)
            order[i] = order[i - 1];
        order[i] = f;
    }
    size_t at = 0, len;
    buf_puts(out, "data: ");
    for (int i = 0; i < n; i++) {
        const struct llm_chunk_span *sp = &ch->span[order[i]];
        buf_append(out, ch->json + at, sp->at - at);
        const char *v = forward_value(s, (enum llm_chunk_field)order[i], ch, &len);
        buf_append(out, v, len);
        at = sp->at + sp->len;
    }
    buf_append(out, ch->json + at, ch->len - at);
    buf_puts(out, "\n\n");
}

void gw_sse_event(struct gw_sse *s, const struct llm_event *ev, struct buf *out)
{
    if (s->over)
        return;
    if (ev->type != LLM_EV_ERROR && ev->type != LLM_EV_USAGE)
        gw_sse_begin(s, out);
    switch (ev->type) {
    case LLM_EV_TEXT:
        if (ev->len == 0)
            break;
        if (ev->chunk) {
            sse_forward(s, ev->chunk, out);
            break;
        }
        chunk_open(s, out);
        buf_printf(out, "{\"%s\":", llm_text_kind_field(ev->kind));
        gw_put_json_string(out, ev->text, ev->len);
        buf_putc(out, '}');
        chunk_close_lp(s, NULL, ev->logprobs, ev->logprobs_len, out);
        break;
    case LLM_EV_TOOL_CALL:
        sse_tool_call(s, ev, out);
        break;
    case LLM_EV_TOOL_ARGS:
        if (ev->len == 0)
            break;
        chunk_open(s, out);
        buf_printf(out, "{\"tool_calls\":[{\"index\":%d,\"function\":{\"arguments\":", ev->index);
        gw_put_json_string(out, ev->text, ev->len);
        buf_puts(out, "}}]}");
        chunk_close(s, NULL, out);
        break;
    case LLM_EV_USAGE:
        s->usage = ev->usage;
        break;
    case LLM_EV_FINISH:
        sse_finish(s, ev, out);
        break;
    case LLM_EV_ERROR:
        gw_sse_fail(s, ev->text, ev->text ? ev->len : 0, out);
        break;
    }
}

void gw_sse_fail(struct gw_sse *s, const char *message, size_t len, struct buf *out)
{
    if (s->over)
        return;
    if (!message || len == 0) {
        message = "the upstream stream ended early";
        len = strlen(message);
    }
    buf_puts(out, "data: {\"error\":{\"message\":");
    gw_put_json_string(out, message, len);
    buf_puts(out, ",\"type\":\"upstream_error\",\"param\":null,\"code\":\"truncated\"}}\n\n");
    s->over = true;
}

/* ---- one whole answer --------------------------------------------------------------------- */

void gw_completion_json(const char *id, const char *model, int64_t created,
                        const struct llm_response *r, struct buf *out)
{
    struct gw_json j;
    gw_json_init(&j, out);
    gw_json_open(&j, NULL, '{');
    gw_json_str(&j, "id", id);
    gw_json_str(&j, "object", "chat.completion");
    gw_json_int(&j, "created", created);
    gw_json_str(&j, "model", model);
    gw_json_open(&j, "choices", '[');
    gw_json_open(&j, NULL, '{');
    gw_json_int(&j, "index", 0);
    gw_json_open(&j, "message", '{');
    gw_json_str(&j, "role", "assistant");
    if (r->text.len > 0 || (r->n_tool_calls == 0 && r->refusal.len == 0))
        gw_json_strn(&j, "content", buf_str(&r->text), r->text.len);
    else
        gw_json_null(&j, "content");
    if (r->refusal.len > 0)
        gw_json_strn(&j, "refusal", buf_str(&r->refusal), r->refusal.len);
    else
        gw_json_null(&j, "refusal");
    if (r->reasoning.len > 0)
        gw_json_strn(&j, llm_text_kind_field(r->reasoning_kind), buf_str(&r->reasoning),
                     r->reasoning.len);
    if (r->n_tool_calls > 0) {
        gw_json_open(&j, "tool_calls", '[');
        for (size_t i = 0; i < r->n_tool_calls; i++) {
            const struct llm_tool_call *tc = &r->tool_calls[i];
            gw_json_open(&j, NULL, '{');
            gw_json_str(&j, "id", tc->id ? tc->id : "");
            gw_json_str(&j, "type", "function");
            gw_json_open(&j, "function", '{');
            gw_json_str(&j, "name", tc->name ? tc->name : "");
            gw_json_str(&j, "arguments", tc->arguments ? tc->arguments : "{}");
            gw_json_close(&j, '}');
            gw_json_close(&j, '}');
        }
        gw_json_close(&j, ']');
    }
    gw_json_close(&j, '}');
    gw_json_str(&j, "finish_reason", finish_reason(r->finish, r->n_tool_calls > 0));
    if (r->logprobs.len > 0)
        gw_json_raw(&j, "logprobs", buf_str(&r->logprobs), r->logprobs.len);
    else
        gw_json_null(&j, "logprobs");
    gw_json_close(&j, '}');
    gw_json_close(&j, ']');
    if (r->system_fingerprint[0])
        gw_json_str(&j, "system_fingerprint", r->system_fingerprint);
    if (r->service_tier[0])
        gw_json_str(&j, "service_tier", r->service_tier);
    if (r->usage.present) {
        gw_json_open(&j, "usage", '{');
        gw_json_int(&j, "prompt_tokens", r->usage.input_tokens);
        gw_json_int(&j, "completion_tokens", r->usage.output_tokens);
        gw_json_int(&j, "total_tokens", r->usage.input_tokens + r->usage.output_tokens);
        gw_json_open(&j, "prompt_tokens_details", '{');
        gw_json_int(&j, "cached_tokens", r->usage.cached_tokens);
        gw_json_close(&j, '}');
        gw_json_close(&j, '}');
    }
    gw_json_close(&j, '}');
}

void gw_completion_forward(const char *id, const char *model, int64_t created,
                           const struct llm_chunk *ch, struct buf *out)
{
    static const enum llm_chunk_field fields[] = {LLM_CHUNK_ID, LLM_CHUNK_CREATED, LLM_CHUNK_MODEL};
    enum llm_chunk_field order[3] = {LLM_CHUNK_ID, LLM_CHUNK_ID, LLM_CHUNK_ID};
    int n = 0;
    for (size_t f = 0; f < SB_ARRAY_LEN(fields); f++) { /* by offset: three at most */
        int i = n++;
        for (; i > 0 && ch->span[order[i - 1]].at > ch->span[fields[f]].at; i--)
            order[i] = order[i - 1];
        order[i] = fields[f];
    }
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        const struct llm_chunk_span *sp = &ch->span[order[i]];
        buf_append(out, ch->json + at, sp->at - at);
        if (order[i] == LLM_CHUNK_ID)
            gw_put_json_string(out, id, strlen(id));
        else if (order[i] == LLM_CHUNK_MODEL)
            gw_put_json_string(out, model, strlen(model));
        else
            buf_printf(out, "%" PRId64, created);
        at = sp->at + sp->len;
    }
    buf_append(out, ch->json + at, ch->len - at);
}

/* ---- errors ------------------------------------------------------------------------------- */

void gw_error_set(struct gw_error *e, int status, const char *type, const char *code,
                  const char *fmt, ...)
{
    va_list ap;
    memset(e, 0, sizeof *e);
    va_start(ap, fmt);
    /* clang-tidy 14 reports ap as uninitialized when this file is analysed after another
     * one in the same run (checker state leaking between files): a false positive. */
    // NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized)
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    e->status = status;
    str_copy(e->type, sizeof e->type, type ? type : "");
    str_copy(e->code, sizeof e->code, code ? code : "");
}

/* "messages[2].role: ..." -> "messages[2].role"; nothing when the text before ':' is not a
 * field path (contains a space) or there is no ':'. */
static void param_from_message(const char *msg, char *param, size_t size)
{
    const char *colon = strchr(msg, ':');
    param[0] = '\0';
    if (!colon || colon == msg)
        return;
    size_t n = (size_t)(colon - msg);
    if (memchr(msg, ' ', n) || n >= size)
        return;
    memcpy(param, msg, n);
    param[n] = '\0';
}

void gw_error_from_parse(struct gw_error *e, enum sb_status st, const char *msg)
{
    const char *code = NULL;
    switch (st) {
    case SB_ERR_UNSUPPORTED:
        code = "unsupported_parameter";
        break;
    case SB_ERR_INVALID:
    case SB_ERR_NOT_FOUND:
        code = "invalid_value";
        break;
    case SB_ERR_LIMIT:
        code = "limit_exceeded";
        break;
    case SB_OK:
    case SB_ERR_PARSE:
    case SB_ERR_IO:
    case SB_ERR_STATE:
        break;
    }
    gw_error_set(e, 400, "invalid_request_error", code, "%s", msg && *msg ? msg : "bad request");
    if (st != SB_ERR_PARSE)
        param_from_message(e->message, e->param, sizeof e->param);
}

/* The type and code a class gets when the provider named none. */
static void class_type_code(enum llm_errclass cls, int status, const char **type, const char **code)
{
    *type = "upstream_error";
    *code = llm_errclass_name(cls);
    switch (cls) {
    case LLM_ERR_RATE_LIMIT:
        *code = "rate_limit_exceeded";
        break;
    case LLM_ERR_CONTEXT_LENGTH:
        *code = "context_length_exceeded";
        break;
    case LLM_ERR_AUTH:
        *code = "upstream_auth";
        break;
    case LLM_ERR_CANCELLED:
        *type = "server_error";
        break;
    case LLM_ERR_NONE:
    case LLM_ERR_INTERNAL:
        *type = "server_error";
        *code = "internal";
        break;
    case LLM_ERR_OVERLOADED:
    case LLM_ERR_SERVER:
    case LLM_ERR_BAD_REQUEST:
    case LLM_ERR_DNS:
    case LLM_ERR_CONNECT:
    case LLM_ERR_TLS:
    case LLM_ERR_TIMEOUT:
    case LLM_ERR_BAD_RESPONSE:
    case LLM_ERR_TRUNCATED:
    case LLM_ERR_NO_KEY:
        break;
    }
    if (llm_errclass_is_upstream(cls))
        *type = llm_error_type_for_status(status);
}

/*
 * Gateway rules on top of llm_client_status: CANCELLED answers 503 (a client that is still
 * there to read it was cut off by a shutdown, and SDKs retry 503). When the router could try
 * no target at all (breakers open, drained, disabled, limited) the answer is 503, not what
 * an upstream failure would give; rate limits stay 429.
 */
void gw_error_from_call(struct gw_error *e, const struct gw_call_failure *f)
{
    int status = llm_client_status(f->cls, f->upstream_status);
    const char *type, *code;
    class_type_code(f->cls, status, &type, &code);
    if (f->cls == LLM_ERR_CANCELLED)
        status = 503;
    bool none = f->no_target && f->cls != LLM_ERR_RATE_LIMIT;
    if (none) {
        status = 503;
        type = "upstream_error";
        code = "no_target_available";
    }
    if (f->message && *f->message)
        gw_error_set(e, status, type, code, "%s", f->message);
    else
        gw_error_set(e, status, type, code, "upstream error: %s", llm_errclass_name(f->cls));
    if (f->info && !none && llm_errclass_is_upstream(f->cls)) {
        if (f->info->type[0])
            str_copy(e->type, sizeof e->type, f->info->type);
        if (f->info->code[0])
            str_copy(e->code, sizeof e->code, f->info->code);
        str_copy(e->param, sizeof e->param, f->info->param);
    }
    if (status == 429)
        e->retry_after_s = f->retry_after_ms > 0 ? (f->retry_after_ms + 999) / 1000 : 1;
    else if (status == 503 && f->retry_after_ms > 0)
        e->retry_after_s = (f->retry_after_ms + 999) / 1000;
}

void gw_error_model_not_found(struct gw_error *e, const char *model,
                              const struct router_snapshot *snap)
{
    struct buf names;
    buf_init(&names);
    for (size_t i = 0; i < snap->n_routes && names.len < 400; i++)
        buf_printf(&names, "%s%s", i ? ", " : "", snap->routes[i].name);
    gw_error_set(e, 404, "invalid_request_error", "model_not_found",
                 "The model '%.100s' does not exist. Available models: %s", model ? model : "",
                 names.len ? buf_str(&names) : "(none)");
    str_copy(e->param, sizeof e->param, "model");
    buf_cleanup(&names);
}

void gw_error_json(const struct gw_error *e, struct buf *out)
{
    struct gw_json j;
    gw_json_init(&j, out);
    gw_json_open(&j, NULL, '{');
    gw_json_open(&j, "error", '{');
    gw_json_str(&j, "message", e->message);
    gw_json_str(&j, "type", e->type[0] ? e->type : "server_error");
    gw_json_str(&j, "param", e->param[0] ? e->param : NULL);
    gw_json_str(&j, "code", e->code[0] ? e->code : NULL);
    gw_json_close(&j, '}');
    gw_json_close(&j, '}');
}

void gw_request_id_clean(const char *in, char out[65])
{
    size_t n = 0;
    for (; in && *in && n < 64; in++) {
        char ch = *in;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '.' || ch == '_' || ch == '-')
            out[n++] = ch;
    }
    out[n] = '\0';
}
