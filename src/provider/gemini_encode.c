/*
 * gemini_encode.c - the Gemini generateContent wire format, request side: the encode and
 * encode_probe ops of provider_gemini (encode.h; gemini.c decodes the answers).
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
 * Threads: stateless; any thread. No locks. Pure: no I/O, no clock.
 */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "switchboard/provider.h"

#include "encode.h"
#include "wire.h"

#define GM_DEFAULT_BASE "https://generativelanguage.googleapis.com/v1beta"

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

enum sb_status gemini_encode(const struct config_target *t, const struct llm_request *req,
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

enum sb_status gemini_encode_probe(const struct config_target *t, struct http_request *out,
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
