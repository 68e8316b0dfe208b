/*
 * gemini.c - the Gemini generateContent wire format (provider kind "gemini").
 *
 * encode: our OpenAI-shaped llm_request -> POST {base_url}/models/{model}:generateContent
 * (streaming: :streamGenerateContent?alt=sse). The key goes in the x-goog-api-key header,
 * never in the URL (URLs get logged). System messages become systemInstruction (one text
 * part, joined with a blank line); assistant -> role "model"; assistant tool calls ->
 * functionCall parts; tool results -> functionResponse parts of a user turn, named by
 * message.name or, failing that, by the earlier assistant tool call with that id; a result
 * that is a JSON object is the response, anything else is wrapped as {"content": text}.
 * Consecutive same-role turns merge. A tool whose parameters are absent or an object schema
 * without properties is declared without "parameters" (the API rejects an OBJECT schema with
 * no properties). An assistant message with neither text nor tool calls is dropped. There is
 * no wire field for the end-user id: req->user is not sent. Tool call ids are not sent (our
 * synthesised ids mean nothing to Gemini). Thought signatures are: a functionCall part's
 * thoughtSignature rides in the tool call id the client echoes back (wire.h, WIRE_SIG_SEP)
 * and goes back on that part; for Gemini 3 models, which reject a model turn whose first
 * function call has none, a call without one gets Google's documented
 * "skip_thought_signature_validator". contents and systemInstruction are written straight
 * into the body (wire.h, wire_put_*), parts as they come; tools, toolConfig and
 * generationConfig go through a small cJSON tree spliced in after them, so the body is byte
 * for byte what one tree printed (test_encode_same). Through a tree, 4.4 MiB of history took
 * 27 ms on the router thread.
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

#include "wire.h"

#define GM_DEFAULT_BASE   "https://generativelanguage.googleapis.com/v1beta"
#define GM_MAX_TOOL_CALLS 1024 /* per answer; more is a bad response */

/* ---- encode ------------------------------------------------------------------------------- */

/* Google's documented thoughtSignature for function calls that never had one. */
#define GM_SKIP_SIGNATURE "skip_thought_signature_validator"

struct gm_enc {
    const struct llm_request *req;
    const char *model; /* the target's model id, "models/" prefix dropped */
    struct buf *b;
    const char *last_role;   /* role of the turn being written, NULL before the first */
    size_t parts;            /* parts written so far in that turn */
    struct wire_names calls; /* tool call id -> name, of the calls encoded so far */
    size_t repaired;         /* tool results sent as text: their call is not in the history */
    char *msg;
    size_t msglen;
};

/* Opens the next part of a turn of role ("{" after its comma), merging with the previous
 * turn when it has the same role. */
static struct buf *gm_part(struct gm_enc *e, const char *role)
{
    struct buf *b = e->b;
    if (!e->last_role || !str_eq(e->last_role, role)) {
        if (e->last_role)
            buf_puts(b, "]},");
        buf_puts(b, "{\"role\":");
        wire_put_str(b, role);
        buf_puts(b, ",\"parts\":[");
        e->last_role = role;
        e->parts = 0;
    }
    buf_puts(b, e->parts++ ? ",{" : "{");
    return b;
}

static void gm_put_text(struct gm_enc *e, const char *role, const char *text)
{
    buf_puts(gm_part(e, role), "\"text\":");
    wire_put_str(e->b, text);
    buf_putc(e->b, '}');
}

/* The thoughtSignature for the j-th function call of an assistant message: the one Gemini
 * gave (carried in the id), else, for Gemini 3 models, which reject a model turn's first
 * function call without one (history from another provider, or ids a client rewrote), the
 * validator-skipping value Google documents for that case; else none. */
static const char *gm_signature(const struct gm_enc *e, const struct llm_tool_call *tc, size_t j)
{
    const char *sig = tc->id ? wire_call_sig(tc->id) : NULL;
    if (sig)
        return sig;
    if (j == 0 && e->model && str_has_prefix(e->model, "gemini-3"))
        return GM_SKIP_SIGNATURE;
    return NULL;
}

static enum sb_status gm_put_call(struct gm_enc *e, const struct llm_tool_call *tc, size_t i,
                                  size_t j)
{
    cJSON *args = NULL;
    WIRE_STEP();
    if (!tc->name) {
        wire_msg(e->msg, e->msglen, "messages[%zu].tool_calls[%zu].name: missing", i, j);
        return SB_ERR_INVALID;
    }
    enum sb_status st = wire_parse_object(tc->arguments, &args);
    if (st != SB_OK) {
        wire_msg_bad_args(e->msg, e->msglen, i, j, tc->id, st);
        return SB_ERR_INVALID;
    }
    wire_names_put(&e->calls, tc->id, tc->name);
    buf_puts(gm_part(e, "model"), "\"functionCall\":{\"name\":");
    wire_put_str(e->b, tc->name);
    buf_puts(e->b, ",\"args\":");
    wire_put_json(e->b, args);
    buf_putc(e->b, '}');
    const char *sig = gm_signature(e, tc, j);
    if (sig) {
        buf_puts(e->b, ",\"thoughtSignature\":");
        wire_put_str(e->b, sig);
    }
    buf_putc(e->b, '}');
    return SB_OK;
}

static enum sb_status gm_enc_assistant(struct gm_enc *e, const struct llm_message *m, size_t i)
{
    enum sb_status st = SB_OK;
    if (wire_has_text(m->content))
        gm_put_text(e, "model", m->content);
    for (size_t j = 0; j < m->n_tool_calls && st == SB_OK; j++)
        st = gm_put_call(e, &m->tool_calls[j], i, j);
    return st;
}

/* A tool result whose call is not in the history (a client trimmed it): Gemini can only take
 * a functionResponse that names the function, so the result goes as a text part of the user
 * turn, saying which call it answers. Nothing is lost and nothing is invented. */
static void gm_enc_orphan_result(struct gm_enc *e, const struct llm_message *m)
{
    struct buf head;
    buf_init(&head);
    buf_printf(&head, "Result of tool call %.*s (the call is no longer in this conversation): ",
               (int)wire_call_id_len(m->tool_call_id), m->tool_call_id);
    buf_puts(gm_part(e, "user"), "\"text\":\"");
    buf_put_json_chars(e->b, head.data, head.len);
    if (m->content)
        buf_put_json_chars(e->b, m->content, strlen(m->content));
    buf_puts(e->b, "\"}");
    buf_cleanup(&head);
    e->repaired++;
}

/* A tool result: a functionResponse named by the message's name, else by the earlier call
 * with its id; a result without either goes as text (gm_enc_orphan_result). A result that is
 * a JSON object is the response; anything else is {"content": text}. */
static enum sb_status gm_enc_tool_result(struct gm_enc *e, const struct llm_message *m, size_t i)
{
    const char *name = m->name ? m->name : wire_names_get(&e->calls, m->tool_call_id);
    if (!name && !m->tool_call_id) {
        wire_msg(e->msg, e->msglen, "messages[%zu]: tool result has neither name nor tool_call_id",
                 i);
        return SB_ERR_INVALID;
    }
    if (!name) {
        gm_enc_orphan_result(e, m);
        return SB_OK;
    }
    cJSON *response = NULL;
    if (wire_parse_object(m->content, &response) != SB_OK)
        response = NULL;
    buf_puts(gm_part(e, "user"), "\"functionResponse\":{\"name\":");
    wire_put_str(e->b, name);
    buf_puts(e->b, ",\"response\":");
    if (response) {
        wire_put_json(e->b, response);
    } else {
        buf_puts(e->b, "{\"content\":");
        wire_put_str(e->b, m->content);
        buf_putc(e->b, '}');
    }
    buf_puts(e->b, "}}");
    return SB_OK;
}

/* "contents": the turns, parts written as they come. */
static enum sb_status gm_enc_messages(struct gm_enc *e)
{
    enum sb_status st = SB_OK;
    size_t n_calls = 0;
    for (size_t i = 0; i < e->req->n_messages; i++)
        n_calls += e->req->messages[i].n_tool_calls;
    wire_names_init(&e->calls, n_calls);
    buf_puts(e->b, "{\"contents\":[");
    for (size_t i = 0; i < e->req->n_messages && st == SB_OK; i++) {
        const struct llm_message *m = &e->req->messages[i];
        WIRE_STEP();
        switch (m->role) {
        case LLM_ROLE_SYSTEM:
            break;
        case LLM_ROLE_USER:
            gm_put_text(e, "user", m->content);
            break;
        case LLM_ROLE_ASSISTANT:
            st = gm_enc_assistant(e, m, i);
            break;
        case LLM_ROLE_TOOL:
            st = gm_enc_tool_result(e, m, i);
            break;
        }
    }
    buf_puts(e->b, e->last_role ? "]}]" : "]");
    wire_names_cleanup(&e->calls);
    return st;
}

/* True for a schema Gemini rejects as parameters: an object type without properties. */
static bool gm_schema_is_empty(const cJSON *schema)
{
    const cJSON *props = wire_get(schema, "properties");
    return str_eq(wire_str(schema, "type"), "object") && (!props || !props->child);
}

static enum sb_status gm_enc_tool_choice(struct gm_enc *e, cJSON *root)
{
    const struct llm_request *req = e->req;
    const char *mode = NULL;
    switch (req->tool_choice) {
    case LLM_TOOL_CHOICE_UNSET:
        return SB_OK;
    case LLM_TOOL_CHOICE_AUTO:
        mode = "AUTO";
        break;
    case LLM_TOOL_CHOICE_NONE:
        mode = "NONE";
        break;
    case LLM_TOOL_CHOICE_REQUIRED:
        mode = "ANY";
        break;
    case LLM_TOOL_CHOICE_NAMED:
        mode = "ANY";
        if (!req->tool_choice_name) {
            wire_msg(e->msg, e->msglen, "tool_choice: a named choice needs a function name");
            return SB_ERR_INVALID;
        }
        break;
    }
    if (req->n_tools == 0) {
        if (req->tool_choice == LLM_TOOL_CHOICE_AUTO || req->tool_choice == LLM_TOOL_CHOICE_NONE)
            return SB_OK; /* meaningless without tools */
        wire_msg(e->msg, e->msglen, "tool_choice: requires tools");
        return SB_ERR_INVALID;
    }
    cJSON *cfg = cJSON_AddObjectToObject(cJSON_AddObjectToObject(root, "toolConfig"),
                                         "functionCallingConfig");
    cJSON_AddStringToObject(cfg, "mode", mode);
    if (req->tool_choice == LLM_TOOL_CHOICE_NAMED) {
        cJSON *names = cJSON_AddArrayToObject(cfg, "allowedFunctionNames");
        cJSON_AddItemToArray(names, cJSON_CreateString(req->tool_choice_name));
    }
    return SB_OK;
}

static enum sb_status gm_enc_tools(struct gm_enc *e, cJSON *root)
{
    const struct llm_request *req = e->req;
    if (req->n_tools > 0) {
        cJSON *decls = cJSON_CreateArray();
        cJSON *group = cJSON_CreateObject();
        cJSON_AddItemToObject(group, "functionDeclarations", decls);
        cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "tools"), group);
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
            cJSON *d = cJSON_CreateObject();
            cJSON_AddStringToObject(d, "name", tl->name);
            if (tl->description)
                cJSON_AddStringToObject(d, "description", tl->description);
            if (schema && !gm_schema_is_empty(schema))
                cJSON_AddItemToObject(d, "parameters", schema);
            else
                cJSON_Delete(schema);
            cJSON_AddItemToArray(decls, d);
        }
    }
    return gm_enc_tool_choice(e, root);
}

static void gm_enc_params(const struct llm_request *req, cJSON *root)
{
    cJSON *gc = cJSON_CreateObject();
    if (req->max_tokens > 0)
        cJSON_AddNumberToObject(gc, "maxOutputTokens", (double)req->max_tokens);
    if (req->has_temperature)
        cJSON_AddNumberToObject(gc, "temperature", req->temperature);
    if (req->has_top_p)
        cJSON_AddNumberToObject(gc, "topP", req->top_p);
    if (req->n_stop > 0) {
        cJSON *stop = cJSON_AddArrayToObject(gc, "stopSequences");
        for (size_t i = 0; i < req->n_stop; i++)
            if (req->stop[i])
                cJSON_AddItemToArray(stop, cJSON_CreateString(req->stop[i]));
    }
    if (gc->child)
        cJSON_AddItemToObject(root, "generationConfig", gc);
    else
        cJSON_Delete(gc);
}

/* The model id without the "models/" prefix the API also accepts. */
static const char *gm_model_id(const char *model)
{
    return str_has_prefix(model, "models/") ? model + strlen("models/") : model;
}

/* "{base}/models/{model}" with the trailing slashes of base and a "models/" prefix of the
 * model dropped; NULL (msg set) when the model id holds characters a URL path would need
 * escaped. */
static char *gm_model_url(const struct config_target *t, const char *model, char *msg,
                          size_t msglen)
{
    const char *b = wire_has_text(t->base_url) ? t->base_url : GM_DEFAULT_BASE;
    model = gm_model_id(model);
    if (!str_is_path_segment(model)) {
        wire_msg(msg, msglen,
                 "model \"%.80s\": expected letters, digits, '.', '_' or '-' (a URL path "
                 "segment, not \".\" or \"..\")",
                 model);
        return NULL;
    }
    return xasprintf("%.*s/models/%s", (int)wire_base_len(b), b, model);
}

static enum sb_status gm_headers(const struct config_target *t, struct http_request *out, char *msg,
                                 size_t msglen)
{
    if (str_has_ctl(t->api_key)) {
        wire_msg(msg, msglen, "target %s: API key contains a control character",
                 t->name ? t->name : "?");
        return SB_ERR_INVALID;
    }
    if (t->api_key)
        http_request_add_header(out, "x-goog-api-key: %s", t->api_key);
    return SB_OK;
}

/* The body: contents and systemInstruction written into b, then the rest from a small tree. */
static enum sb_status gm_put_body(struct gm_enc *e)
{
    enum sb_status st = gm_enc_messages(e);
    if (st != SB_OK)
        return st;
    wire_put_system(e->b, e->req, ",\"systemInstruction\":{\"parts\":[{\"text\":\"", "\"}]}");
    cJSON *root = cJSON_CreateObject();
    if ((st = gm_enc_tools(e, root)) == SB_OK)
        gm_enc_params(e->req, root);
    return wire_put_members(e->b, root, st);
}

static enum sb_status gemini_encode(const struct config_target *t, const struct llm_request *req,
                                    struct http_request *out, char *msg, size_t msglen)
{
    struct buf body;
    struct gm_enc e = {.req = req, .b = &body, .msg = msg, .msglen = msglen};
    enum sb_status st = SB_OK;
    char *url = NULL;
    const char *model = t->model ? t->model : req->model;

    buf_init(&body);
    e.model = model ? gm_model_id(model) : NULL;
    if (!model || !(url = gm_model_url(t, model, msg, msglen))) {
        if (!model)
            wire_msg(msg, msglen, "model: missing");
        st = SB_ERR_INVALID;
        goto out;
    }
    if ((st = gm_put_body(&e)) != SB_OK || (st = gm_headers(t, out, msg, msglen)) != SB_OK)
        goto out;
    http_request_add_header(out, "content-type: application/json");
    if (req->stream)
        http_request_add_header(out, "accept: text/event-stream");
    free(out->method);
    free(out->url);
    free(out->body);
    out->method = xstrdup("POST");
    out->url =
        xasprintf("%s:%s", url, req->stream ? "streamGenerateContent?alt=sse" : "generateContent");
    out->body_len = body.len;
    out->body = buf_take(&body);
out:
    free(url);
    buf_cleanup(&body);
    return st;
}

static enum sb_status gemini_encode_probe(const struct config_target *t, struct http_request *out,
                                          char *msg, size_t msglen)
{
    char *url = gm_model_url(t, t->model ? t->model : "", msg, msglen);
    enum sb_status st = url ? gm_headers(t, out, msg, msglen) : SB_ERR_INVALID;
    if (st == SB_OK) {
        free(out->method);
        free(out->url);
        out->method = xstrdup("GET");
        out->url = url;
        url = NULL;
    }
    free(url);
    return st;
}

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
