/*
 * anthropic_encode.c - the Anthropic Messages API wire format, request side: the encode and
 * encode_probe ops of provider_anthropic (encode.h; anthropic.c decodes the answers).
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
 * Threads: stateless; any thread. No locks. Pure: no I/O, no clock.
 */
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "switchboard/provider.h"

#include "encode.h"
#include "wire.h"

#define AN_DEFAULT_BASE        "https://api.anthropic.com"
#define AN_DEFAULT_VERSION     "2023-06-01"
#define AN_FALLBACK_MAX_TOKENS 4096 /* neither the client nor the target gave one */

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

enum sb_status anthropic_encode(const struct config_target *t, const struct llm_request *req,
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

enum sb_status anthropic_encode_probe(const struct config_target *t, struct http_request *out,
                                      char *msg, size_t msglen)
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
