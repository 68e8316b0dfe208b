/*
 * provider.c - HTTP request helpers and the provider_call glue that turns
 * one HTTP exchange (status, headers, body bytes) into llm events for a sink (redaction of
 * secrets in error text lives in redact.c).
 *
 * The glue picks a body mode once the first body byte (or the end) arrives:
 *   status outside 2xx          -> ERROR_BODY: keep up to PROVIDER_MAX_ERROR_BODY, classify
 *                                  at the end (or as soon as the cap is hit, then abort)
 *   2xx, not streaming          -> FULL: keep up to PROVIDER_MAX_BODY, decode_full at the end
 *   2xx, streaming, event-stream -> SSE: sse_parser -> ops->stream_event; stream_end at the end
 *     (a missing content-type is read as an event stream). One size rule: a line and an event
 *     may each hold sse_limit bytes (the target's sse_max_event_bytes); over it the call ends
 *     with an ERROR that says so. Non-SSE bytes after the last event (a bare JSON error object
 *     appended by Vertex AI) end it with an ERROR too, even after a finish reason: a JSON
 *     error is classified as an error body, anything else is BAD_RESPONSE.
 *   2xx, streaming, JSON         -> FULL: a server that ignored "stream": true answered with
 *                                  one JSON body; decode_full yields the same events, and an
 *                                  {"error":...} body is classified there
 *   2xx, streaming, other type  -> ERROR BAD_RESPONSE "expected text/event-stream, got ..."
 *
 * Adapters emit into an inner sink owned by the call. It delivers text and tool-argument
 * deltas only as valid UTF-8 (an incomplete trailing sequence waits for the next delta,
 * invalid bytes become U+FFFD), records the facts (output, usage, finish) and enforces the
 * event grammar: exactly one FINISH or ERROR reaches the caller's sink, nothing after it,
 * and nothing at all once the sink has asked to stop (the outcome is then CANCELLED).
 *
 * Threads: a call belongs to the thread that drives its transfer; no globals, no locks.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "switchboard/provider.h"
#include "wire.h"

/* ---- HTTP requests ------------------------------------------------------------------- */

void http_request_init(struct http_request *r)
{
    memset(r, 0, sizeof *r);
}

void http_request_cleanup(struct http_request *r)
{
    free(r->method);
    free(r->url);
    for (size_t i = 0; i < r->n_headers; i++)
        free(r->headers[i]);
    free(r->headers);
    free(r->body);
    http_request_init(r);
}

void http_request_add_header(struct http_request *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *line = xvasprintf(fmt, ap);
    va_end(ap);
    r->headers = xgrow(r->headers, &r->cap_headers, r->n_headers + 1, sizeof *r->headers);
    r->headers[r->n_headers++] = line;
}

/* ---- One HTTP exchange -> events -------------------------------------------------------- */

enum call_mode {
    MODE_UNDECIDED,
    MODE_ERROR_BODY,
    MODE_FULL,
    MODE_SSE,
    MODE_REJECTED, /* wrong content-type: the ERROR went out */
};

struct provider_call {
    const struct provider_ops *ops;
    bool stream;
    struct llm_sink sink;  /* the caller's */
    struct llm_sink inner; /* what adapters emit into */
    char *secret;

    long status;
    char content_type[128];
    struct llm_ratelimit rl;
    struct buf client_headers; /* "name: value\n" rate-limit headers for the client */
    struct llm_error_info info;

    enum call_mode mode;
    struct buf body;
    struct sse_parser sse;
    size_t sse_limit; /* per line and per event */
    void *stream_state;
    size_t n_events;

    struct buf hold_text; /* incomplete UTF-8 tail of the text (of kind hold_kind) */
    enum llm_text_kind hold_kind;
    struct buf hold_args; /* ... of tool call hold_index's arguments */
    int hold_index;
    struct buf scratch;
    struct buf clean;
    bool repaired; /* a text needed UTF-8 repair: no chunk may reach the sink after it */

    bool has_output;
    struct llm_usage usage;
    enum llm_finish finish;
    bool terminated; /* FINISH or ERROR delivered */
    bool stopped;    /* the sink asked to stop */
    enum llm_errclass outcome;
    char error[PROVIDER_MSG_MAX];
};

static int deliver(struct provider_call *c, const struct llm_event *ev)
{
    if (c->sink.on_event(c->sink.ctx, ev) == 0)
        return 0;
    if (!c->terminated) {
        c->stopped = true;
        str_copy(c->error, sizeof c->error, "cancelled by the consumer");
    }
    return 1;
}

static void emit_error(struct provider_call *c, enum llm_errclass cls, const char *msg)
{
    if (c->terminated || c->stopped)
        return;
    if (cls == LLM_ERR_NONE)
        cls = LLM_ERR_INTERNAL;
    str_copy(c->error, sizeof c->error, msg && *msg ? msg : llm_errclass_name(cls));
    provider_redact(c->error, sizeof c->error, c->secret);
    c->terminated = true;
    c->outcome = cls;
    struct llm_event ev = {
        .type = LLM_EV_ERROR,
        .text = c->error,
        .len = strlen(c->error),
        .errclass = cls,
        .status = c->status,
    };
    deliver(c, &ev);
}

/* Is s[0..n) (n < 4) the start of a valid multi-byte sequence that needs more bytes? */
static bool utf8_is_partial(const unsigned char *s, size_t n)
{
    size_t need;
    if (n == 0 || n > 3)
        return false;
    if (s[0] >= 0xC2 && s[0] <= 0xDF)
        need = 2;
    else if (s[0] >= 0xE0 && s[0] <= 0xEF)
        need = 3;
    else if (s[0] >= 0xF0 && s[0] <= 0xF4)
        need = 4;
    else
        return false;
    if (n >= need)
        return false;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return false;
    }
    if (n >= 2 && ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] > 0x9F) ||
                   (s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] > 0x8F)))
        return false;
    return true;
}

/* hold + text -> c->clean (valid UTF-8, U+FFFD for bad bytes); an incomplete tail stays in
 * hold. */
static void utf8_fix(struct provider_call *c, struct buf *hold, const char *text, size_t len)
{
    buf_reset(&c->scratch);
    buf_append(&c->scratch, hold->data ? hold->data : "", hold->len);
    buf_append(&c->scratch, text, len);
    buf_reset(hold);
    buf_reset(&c->clean);
    const char *s = buf_str(&c->scratch);
    size_t n = c->scratch.len, pos = 0;
    while (pos < n) {
        size_t k = utf8_valid_prefix(s + pos, n - pos);
        buf_append(&c->clean, s + pos, k);
        pos += k;
        if (pos == n)
            break;
        if (utf8_is_partial((const unsigned char *)s + pos, n - pos)) {
            buf_append(hold, s + pos, n - pos);
            break;
        }
        buf_puts(&c->clean, "\xEF\xBF\xBD");
        pos++;
    }
}

/* Text or tool-argument delta, as valid UTF-8. */
static int deliver_text(struct provider_call *c, struct buf *hold, const struct llm_event *ev)
{
    struct llm_event out = *ev;
    if (hold->len != 0 || utf8_valid_prefix(ev->text, ev->len) != ev->len) {
        utf8_fix(c, hold, ev->text, ev->len);
        out.text = buf_str(&c->clean);
        out.len = c->clean.len;
        out.chunk = NULL; /* the chunk's bytes are not what the client must see */
        c->repaired = true;
    }
    if (out.len == 0)
        return 0;
    c->has_output = true;
    return deliver(c, &out);
}

/* A held incomplete sequence at the end of its text becomes one U+FFFD. */
static int flush_hold(struct provider_call *c, struct buf *hold, enum llm_event_type type,
                      int index)
{
    if (hold->len == 0)
        return 0;
    buf_reset(hold);
    struct llm_event ev = {.type = type, .text = "\xEF\xBF\xBD", .len = 3, .index = index};
    if (type == LLM_EV_TEXT)
        ev.kind = c->hold_kind;
    c->has_output = true;
    return deliver(c, &ev);
}

/* from: the adapter's FINISH (its fingerprint and tier go along), NULL when synthesised. */
static int emit_finish(struct provider_call *c, enum llm_finish finish,
                       const struct llm_event *from)
{
    c->repaired = c->repaired || c->hold_text.len || c->hold_args.len;
    if (flush_hold(c, &c->hold_text, LLM_EV_TEXT, 0) ||
        flush_hold(c, &c->hold_args, LLM_EV_TOOL_ARGS, c->hold_index))
        return 1;
    c->finish = finish;
    c->terminated = true;
    c->outcome = LLM_ERR_NONE;
    struct llm_event ev = {.type = LLM_EV_FINISH, .finish = finish};
    if (from) {
        ev.system_fingerprint = from->system_fingerprint;
        ev.service_tier = from->service_tier;
        ev.chunk = c->repaired ? NULL : from->chunk; /* a whole answer's body (llm.h) */
    }
    return deliver(c, &ev);
}

/* The inner sink: adapters' events pass through here. */
static int call_on_event(void *ctx, const struct llm_event *ev)
{
    struct provider_call *c = ctx;
    if (c->terminated || c->stopped)
        return 1;
    switch (ev->type) {
    case LLM_EV_TEXT:
        if (ev->kind != c->hold_kind && flush_hold(c, &c->hold_text, LLM_EV_TEXT, 0))
            return 1;
        c->hold_kind = ev->kind;
        return deliver_text(c, &c->hold_text, ev);
    case LLM_EV_TOOL_ARGS:
        if (ev->index != c->hold_index &&
            flush_hold(c, &c->hold_args, LLM_EV_TOOL_ARGS, c->hold_index))
            return 1;
        c->hold_index = ev->index;
        return deliver_text(c, &c->hold_args, ev);
    case LLM_EV_TOOL_CALL:
        if (flush_hold(c, &c->hold_args, LLM_EV_TOOL_ARGS, c->hold_index))
            return 1;
        c->has_output = true;
        return deliver(c, ev);
    case LLM_EV_USAGE:
        c->usage = ev->usage;
        c->usage.present = true;
        return deliver(c, ev);
    case LLM_EV_FINISH:
        return emit_finish(c, ev->finish, ev);
    case LLM_EV_ERROR:
        buf_reset(&c->scratch);
        buf_append(&c->scratch, ev->text ? ev->text : "", ev->text ? ev->len : 0);
        emit_error(c, ev->errclass, buf_str(&c->scratch));
        return 1;
    }
    return 1;
}

struct provider_call *provider_call_new(const struct provider_ops *ops, bool stream,
                                        const struct llm_sink *sink, const char *secret)
{
    struct provider_call *c = xcalloc(1, sizeof *c);
    c->ops = ops;
    c->stream = stream;
    c->sink = *sink;
    c->inner.on_event = call_on_event;
    c->inner.ctx = c;
    c->secret = xstrdup(secret);
    llm_ratelimit_init(&c->rl);
    llm_error_info_init(&c->info);
    buf_init(&c->client_headers);
    buf_init(&c->body);
    buf_init(&c->hold_text);
    buf_init(&c->hold_args);
    buf_init(&c->scratch);
    buf_init(&c->clean);
    c->sse_limit = (size_t)PROVIDER_MAX_SSE_EVENT;
    sse_init(&c->sse, c->sse_limit, c->sse_limit);
    c->mode = MODE_UNDECIDED;
    c->finish = LLM_FINISH_NONE;
    c->outcome = LLM_ERR_NONE;
    return c;
}

void provider_call_free(struct provider_call *c)
{
    if (!c)
        return;
    if (c->stream_state)
        c->ops->stream_free(c->stream_state);
    sse_cleanup(&c->sse);
    buf_cleanup(&c->client_headers);
    buf_cleanup(&c->body);
    buf_cleanup(&c->hold_text);
    buf_cleanup(&c->hold_args);
    buf_cleanup(&c->scratch);
    buf_cleanup(&c->clean);
    if (c->secret) {
        volatile char *p = c->secret;
        while (*p)
            *p++ = '\0';
        free(c->secret);
    }
    free(c);
}

void provider_call_set_sse_limit(struct provider_call *c, size_t bytes)
{
    if (c->mode != MODE_UNDECIDED)
        return;
    c->sse_limit = bytes ? bytes : (size_t)PROVIDER_MAX_SSE_EVENT;
    sse_cleanup(&c->sse);
    sse_init(&c->sse, c->sse_limit, c->sse_limit);
}

void provider_call_on_status(struct provider_call *c, long status)
{
    c->status = status;
}

void provider_call_on_header(struct provider_call *c, const char *name, const char *value,
                             int64_t now_wall_ms)
{
    if (!name || !value)
        return;
    char cname[64], cvalue[128];
    if (str_ieq(name, "content-type"))
        str_copy(c->content_type, sizeof c->content_type, value);
    llm_ratelimit_feed_header(&c->rl, name, value, now_wall_ms);
    if (c->client_headers.len < 2048 &&
        llm_ratelimit_client_header(name, value, now_wall_ms, cname, sizeof cname, cvalue,
                                    sizeof cvalue) &&
        !str_has_ctl(cvalue))
        buf_printf(&c->client_headers, "%s: %s\n", cname, cvalue);
}

/* The media type of content-type, lower-cased, parameters dropped. */
static void media_type(const char *ct, char *out, size_t size)
{
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t n = 0;
    for (; ct[n] && ct[n] != ';' && n + 1 < size; n++)
        out[n] = (char)tolower((unsigned char)ct[n]);
    while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '\t'))
        n--;
    out[n] = '\0';
}

static bool is_json_type(const char *mt)
{
    size_t n = strlen(mt);
    return strcmp(mt, "application/json") == 0 || (n > 5 && strcmp(mt + n - 5, "+json") == 0);
}

static void choose_mode(struct provider_call *c)
{
    char mt[128], msg[PROVIDER_MSG_MAX];
    if (c->status < 200 || c->status >= 300) {
        c->mode = MODE_ERROR_BODY;
        return;
    }
    if (!c->stream) {
        c->mode = MODE_FULL;
        return;
    }
    media_type(c->content_type, mt, sizeof mt);
    if (mt[0] == '\0' || strcmp(mt, "text/event-stream") == 0) {
        c->mode = MODE_SSE;
        c->stream_state = c->ops->stream_new();
    } else if (is_json_type(mt)) {
        c->mode = MODE_FULL;
    } else {
        c->mode = MODE_REJECTED;
        snprintf(msg, sizeof msg, "expected text/event-stream, got %s", mt);
        emit_error(c, LLM_ERR_BAD_RESPONSE, msg);
    }
}

static void classify_body(struct provider_call *c)
{
    char msg[PROVIDER_MSG_MAX] = "";
    if (c->status == 0) {
        emit_error(c, LLM_ERR_BAD_RESPONSE, "no HTTP status in the response");
        return;
    }
    enum llm_errclass cls =
        c->ops->classify(c->status, buf_str(&c->body), c->body.len, &c->info, msg, sizeof msg);
    if (cls == LLM_ERR_NONE)
        cls = llm_errclass_from_status(c->status);
    if (cls == LLM_ERR_NONE)
        cls = LLM_ERR_BAD_RESPONSE;
    /* A delay the body asks for, or the reset of the exhausted window, feeds the cooldown. */
    if (cls == LLM_ERR_RATE_LIMIT)
        c->rl.retry_after_ms = llm_ratelimit_retry_delay_ms(&c->rl, c->info.retry_after_ms);
    emit_error(c, cls, msg);
}

static int on_sse_event(void *ctx, const struct sse_event *ev)
{
    struct provider_call *c = ctx;
    char msg[PROVIDER_MSG_MAX] = "";
    if (c->terminated)
        return c->outcome == LLM_ERR_NONE && !c->stopped ? 0 : 1; /* after FINISH: ignore */
    if (c->stopped)
        return 1;
    if (++c->n_events > PROVIDER_MAX_EVENTS) {
        snprintf(msg, sizeof msg, "stream over %u events", PROVIDER_MAX_EVENTS);
        emit_error(c, LLM_ERR_BAD_RESPONSE, msg);
        return 1;
    }
    enum llm_errclass cls = c->ops->stream_event(c->stream_state, ev, &c->inner, msg, sizeof msg);
    if (cls != LLM_ERR_NONE) {
        emit_error(c, cls, msg);
        return 1;
    }
    return c->stopped || (c->terminated && c->outcome != LLM_ERR_NONE) ? 1 : 0;
}

/* Turns a parser failure into the call's ERROR. Returns non-zero when the call is over. */
static int sse_result(struct provider_call *c, enum sse_status st)
{
    char msg[PROVIDER_MSG_MAX];
    switch (st) {
    case SSE_OK:
        return 0;
    case SSE_STOPPED:
        return c->stopped || c->outcome != LLM_ERR_NONE ? 1 : 0;
    case SSE_ERR_LINE_TOO_LONG:
    case SSE_ERR_EVENT_TOO_BIG:
        snprintf(msg, sizeof msg,
                 "the provider sent an SSE %s over the limit of %zu bytes (sse_max_event_bytes)",
                 st == SSE_ERR_LINE_TOO_LONG ? "line" : "event", c->sse_limit);
        emit_error(c, LLM_ERR_BAD_RESPONSE, msg);
        return 1;
    }
    return 1;
}

int provider_call_on_data(struct provider_call *c, const char *bytes, size_t len)
{
    char msg[PROVIDER_MSG_MAX];
    if (c->mode == MODE_UNDECIDED && !c->terminated && !c->stopped)
        choose_mode(c);
    if (c->stopped || c->terminated)
        return c->stopped || c->outcome != LLM_ERR_NONE ? 1 : 0;
    switch (c->mode) {
    case MODE_ERROR_BODY:
        if (c->body.len + len > (size_t)PROVIDER_MAX_ERROR_BODY) {
            buf_append(&c->body, bytes, (size_t)PROVIDER_MAX_ERROR_BODY - c->body.len);
            classify_body(c); /* enough to classify; the rest is dropped */
            return 1;
        }
        buf_append(&c->body, bytes, len);
        return 0;
    case MODE_FULL:
        if (c->body.len + len > (size_t)PROVIDER_MAX_BODY) {
            snprintf(msg, sizeof msg, "response body over %u bytes", PROVIDER_MAX_BODY);
            emit_error(c, LLM_ERR_BAD_RESPONSE, msg);
            return 1;
        }
        buf_append(&c->body, bytes, len);
        return 0;
    case MODE_SSE:
        return sse_result(c, sse_feed(&c->sse, bytes, len, on_sse_event, c));
    case MODE_UNDECIDED:
    case MODE_REJECTED:
        return 1;
    }
    return 1;
}

static enum llm_errclass outcome(const struct provider_call *c)
{
    if (c->terminated)
        return c->outcome;
    return c->stopped ? LLM_ERR_CANCELLED : LLM_ERR_NONE;
}

/* A JSON error object (bare, or first in an array) in text: its text printed alone (caller
 * cJSON_frees) and the status it asks for (its numeric code when an HTTP error status, else
 * 500); NULL when text is no such thing. */
static char *junk_error(const char *text, size_t len, long *status)
{
    char *printed = NULL;
    cJSON *root = cJSON_ParseWithLength(text, len);
    const cJSON *top = cJSON_IsArray(root) ? cJSON_GetArrayItem(root, 0) : root;
    const cJSON *err = cJSON_IsObject(top) ? cJSON_GetObjectItemCaseSensitive(top, "error") : NULL;
    const cJSON *num = cJSON_IsObject(err) ? cJSON_GetObjectItemCaseSensitive(err, "code") : NULL;
    *status = 500;
    if (cJSON_IsNumber(num) && num->valuedouble >= 400 && num->valuedouble < 600)
        *status = (long)num->valuedouble;
    if (err)
        printed = cJSON_PrintUnformatted(top);
    cJSON_Delete(root);
    return printed;
}

/*
 * Bytes after the last event that are not SSE (Vertex AI appends a bare JSON error object to
 * a stream): an error, even after a finish reason. A JSON error object is classified as the
 * provider's error body; anything else is BAD_RESPONSE. Returns whether there were any.
 */
static bool trailing_error(struct provider_call *c)
{
    size_t len;
    const char *junk = sse_trailing(&c->sse, &len);
    char msg[PROVIDER_MSG_MAX] = "";
    long status;
    if (len == 0 || c->terminated || c->stopped)
        return false;
    char *err = junk_error(junk, len, &status);
    if (!err) {
        char shown[81];
        str_copy(shown, sizeof shown, junk);
        snprintf(msg, sizeof msg, "the stream ended with %zu bytes that are not SSE: %s", len,
                 shown);
        emit_error(c, LLM_ERR_BAD_RESPONSE, msg);
        return true;
    }
    llm_error_info_init(&c->info);
    enum llm_errclass cls = c->ops->classify(status, err, strlen(err), &c->info, msg, sizeof msg);
    cJSON_free(err);
    emit_error(c, cls == LLM_ERR_NONE ? LLM_ERR_SERVER : cls, msg);
    return true;
}

static void finish_body(struct provider_call *c)
{
    char msg[PROVIDER_MSG_MAX] = "";
    enum llm_errclass cls = LLM_ERR_NONE;
    switch (c->mode) {
    case MODE_ERROR_BODY:
        classify_body(c);
        return;
    case MODE_FULL:
        cls = c->ops->decode_full(buf_str(&c->body), c->body.len, &c->inner, msg, sizeof msg);
        break;
    case MODE_SSE:
        if (sse_result(c, sse_finish(&c->sse, on_sse_event, c)) || trailing_error(c) ||
            c->terminated)
            return;
        cls = c->ops->stream_end(c->stream_state, true, &c->inner, msg, sizeof msg);
        break;
    case MODE_UNDECIDED:
    case MODE_REJECTED:
        return;
    }
    if (cls != LLM_ERR_NONE)
        emit_error(c, cls, msg);
    else if (!c->terminated && !c->stopped)
        emit_finish(c, c->finish, NULL); /* the adapter said done without a FINISH */
}

enum llm_errclass provider_call_finish(struct provider_call *c, enum llm_errclass transport_err,
                                       const char *transport_msg)
{
    if (c->terminated || c->stopped)
        return outcome(c);
    if (c->mode == MODE_UNDECIDED)
        choose_mode(c);
    if (c->terminated)
        return outcome(c);
    if (transport_err == LLM_ERR_NONE || transport_err == LLM_ERR_CANCELLED) {
        if (transport_err == LLM_ERR_NONE)
            finish_body(c);
        else
            emit_error(c, transport_err, transport_msg);
        return outcome(c);
    }
    /* An error status is more telling than a transport failure while its body arrived. */
    if (c->mode == MODE_ERROR_BODY && c->status > 0) {
        classify_body(c);
        return outcome(c);
    }
    /* A stream whose terminal event came before the failure (a connection that dropped after
     * [DONE]) is complete; else the transport's class stands, not TRUNCATED. The partial line
     * in the parser is not dispatched. */
    if (c->mode == MODE_SSE && !trailing_error(c)) {
        char msg[PROVIDER_MSG_MAX] = "";
        if (c->ops->stream_end(c->stream_state, false, &c->inner, msg, sizeof msg) ==
                LLM_ERR_NONE &&
            !c->terminated && !c->stopped)
            emit_finish(c, c->finish, NULL);
    }
    emit_error(c, transport_err, transport_msg); /* a no-op once terminated */
    return outcome(c);
}

long provider_call_status(const struct provider_call *c)
{
    return c->status;
}

bool provider_call_has_output(const struct provider_call *c)
{
    return c->has_output;
}

const struct llm_ratelimit *provider_call_ratelimit(const struct provider_call *c)
{
    return &c->rl;
}

const struct llm_usage *provider_call_usage(const struct provider_call *c)
{
    return &c->usage;
}

enum llm_finish provider_call_finish_reason(const struct provider_call *c)
{
    return c->finish;
}

const char *provider_call_error(const struct provider_call *c)
{
    return c->error;
}

const struct llm_error_info *provider_call_error_info(const struct provider_call *c)
{
    return &c->info;
}

const char *provider_call_client_headers(const struct provider_call *c)
{
    return buf_str(&c->client_headers);
}
