/*
 * support_tree_encode.c - the Anthropic and Gemini request bodies as the encoders built them
 * through a cJSON tree until session 10 (anthropic.c and gemini.c at 7d51989, encode part,
 * unchanged but for the entry points below). The encoders now write the messages straight
 * into the body; test_encode_same and fuzz_provider_encode hold them to this reference, byte
 * for byte, and to its status and message on refusals. Test-only: nothing in src uses it.
 * Pure; any thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../../src/provider/wire.h"
#include "support_tree_encode.h"

#define AN_FALLBACK_MAX_TOKENS 4096
#define GM_DEFAULT_BASE        "https://generativelanguage.googleapis.com/v1beta"

/* ---- Anthropic ---------------------------------------------------------------------------- */

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
/* ---- Gemini ------------------------------------------------------------------------------- */

/* Google's documented thoughtSignature for function calls that never had one. */
#define GM_SKIP_SIGNATURE "skip_thought_signature_validator"

struct gm_enc {
    const struct llm_request *req;
    const char *model; /* the target's model id, "models/" prefix dropped */
    cJSON *contents;
    cJSON *last_turn;        /* last element of contents, NULL when none */
    const char *last_role;   /* its role */
    struct wire_names calls; /* tool call id -> name, of the calls encoded so far */
    size_t repaired;         /* tool results sent as text: their call is not in the history */
    struct buf system;
    char *msg;
    size_t msglen;
};

/* The parts array to add to for a turn of role, merging with the previous turn. */
static cJSON *gm_turn(struct gm_enc *e, const char *role)
{
    if (!e->last_turn || !str_eq(e->last_role, role)) {
        e->last_turn = cJSON_CreateObject();
        cJSON_AddStringToObject(e->last_turn, "role", role);
        cJSON_AddArrayToObject(e->last_turn, "parts");
        cJSON_AddItemToArray(e->contents, e->last_turn);
        e->last_role = role;
    }
    return cJSON_GetObjectItemCaseSensitive(e->last_turn, "parts");
}

static void gm_add_text(cJSON *parts, const char *text)
{
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "text", text ? text : "");
    cJSON_AddItemToArray(parts, p);
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

static enum sb_status gm_enc_assistant(struct gm_enc *e, const struct llm_message *m, size_t i)
{
    bool text = wire_has_text(m->content);
    if (!text && m->n_tool_calls == 0)
        return SB_OK;
    cJSON *parts = gm_turn(e, "model");
    if (text)
        gm_add_text(parts, m->content);
    for (size_t j = 0; j < m->n_tool_calls; j++) {
        const struct llm_tool_call *tc = &m->tool_calls[j];
        WIRE_STEP();
        if (!tc->name) {
            wire_msg(e->msg, e->msglen, "messages[%zu].tool_calls[%zu].name: missing", i, j);
            return SB_ERR_INVALID;
        }
        cJSON *args = NULL;
        enum sb_status st = wire_parse_object(tc->arguments, &args);
        if (st != SB_OK) {
            wire_msg_bad_args(e->msg, e->msglen, i, j, tc->id, st);
            return SB_ERR_INVALID;
        }
        wire_names_put(&e->calls, tc->id, tc->name);
        cJSON *p = cJSON_CreateObject();
        cJSON *fc = cJSON_AddObjectToObject(p, "functionCall");
        cJSON_AddStringToObject(fc, "name", tc->name);
        cJSON_AddItemToObject(fc, "args", args ? args : cJSON_CreateObject());
        const char *sig = gm_signature(e, tc, j);
        if (sig)
            cJSON_AddStringToObject(p, "thoughtSignature", sig);
        cJSON_AddItemToArray(parts, p);
    }
    return SB_OK;
}

/* A tool result whose call is not in the history (a client trimmed it): Gemini can only take
 * a functionResponse that names the function, so the result goes as a text part of the user
 * turn, saying which call it answers. Nothing is lost and nothing is invented. */
static void gm_enc_orphan_result(struct gm_enc *e, const struct llm_message *m)
{
    struct buf text;
    buf_init(&text);
    buf_printf(&text, "Result of tool call %.*s (the call is no longer in this conversation): ",
               (int)wire_call_id_len(m->tool_call_id), m->tool_call_id);
    buf_puts(&text, m->content ? m->content : "");
    gm_add_text(gm_turn(e, "user"), buf_str(&text));
    buf_cleanup(&text);
    e->repaired++;
}

/* A tool result: a functionResponse named by the message's name, else by the earlier call
 * with its id; a result without either goes as text (gm_enc_orphan_result). */
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
    if (wire_parse_object(m->content, &response) != SB_OK || !response) {
        response = cJSON_CreateObject();
        cJSON_AddStringToObject(response, "content", m->content ? m->content : "");
    }
    cJSON *p = cJSON_CreateObject();
    cJSON *fr = cJSON_AddObjectToObject(p, "functionResponse");
    cJSON_AddStringToObject(fr, "name", name);
    cJSON_AddItemToObject(fr, "response", response);
    cJSON_AddItemToArray(gm_turn(e, "user"), p);
    return SB_OK;
}

static enum sb_status gm_enc_messages(struct gm_enc *e)
{
    enum sb_status st = SB_OK;
    size_t n_calls = 0;
    for (size_t i = 0; i < e->req->n_messages; i++)
        n_calls += e->req->messages[i].n_tool_calls;
    wire_names_init(&e->calls, n_calls);
    for (size_t i = 0; i < e->req->n_messages && st == SB_OK; i++) {
        const struct llm_message *m = &e->req->messages[i];
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
            gm_add_text(gm_turn(e, "user"), m->content);
            break;
        case LLM_ROLE_ASSISTANT:
            st = gm_enc_assistant(e, m, i);
            break;
        case LLM_ROLE_TOOL:
            st = gm_enc_tool_result(e, m, i);
            break;
        }
    }
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

/* ---- Entry points ------------------------------------------------------------------------- */

/* The printed root into *body (caller frees), or a refusal. */
static enum sb_status ref_print(cJSON *root, char **body, char *msg, size_t msglen)
{
    char *printed = cJSON_PrintUnformatted(root);
    if (!printed) {
        wire_msg(msg, msglen, "cannot serialise the request");
        return SB_ERR_INVALID;
    }
    *body = xstrdup(printed);
    cJSON_free(printed);
    return SB_OK;
}

enum sb_status ref_anthropic_body(const struct config_target *t, const struct llm_request *req,
                                  char **body, char *msg, size_t msglen)
{
    struct an_enc e = {.msg = msg, .msglen = msglen};
    enum sb_status st = SB_OK;
    cJSON *root = cJSON_CreateObject();
    const char *model = t->model ? t->model : req->model;

    *body = NULL;
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
    st = ref_print(root, body, msg, msglen);
out:
    cJSON_Delete(root);
    buf_cleanup(&e.system);
    return st;
}

enum sb_status ref_gemini_body(const struct config_target *t, const struct llm_request *req,
                               char **body, char *msg, size_t msglen)
{
    struct gm_enc e = {.req = req, .msg = msg, .msglen = msglen};
    enum sb_status st = SB_OK;
    char *url = NULL;
    cJSON *root = cJSON_CreateObject();
    const char *model = t->model ? t->model : req->model;

    *body = NULL;
    buf_init(&e.system);
    e.model = model ? gm_model_id(model) : NULL;
    if (!model || !(url = gm_model_url(t, model, msg, msglen))) {
        if (!model)
            wire_msg(msg, msglen, "model: missing");
        st = SB_ERR_INVALID;
        goto out;
    }
    e.contents = cJSON_AddArrayToObject(root, "contents");
    if ((st = gm_enc_messages(&e)) != SB_OK)
        goto out;
    if (e.system.len) {
        cJSON *parts =
            cJSON_AddArrayToObject(cJSON_AddObjectToObject(root, "systemInstruction"), "parts");
        gm_add_text(parts, buf_str(&e.system));
    }
    if ((st = gm_enc_tools(&e, root)) != SB_OK)
        goto out;
    gm_enc_params(req, root);
    st = ref_print(root, body, msg, msglen);
out:
    free(url);
    cJSON_Delete(root);
    buf_cleanup(&e.system);
    return st;
}

bool ref_encode_matches(const struct provider_ops *ops, const struct config_target *t,
                        const struct llm_request *req, char *why, size_t whylen)
{
    char msg[PROVIDER_MSG_MAX] = "", ref_msg[PROVIDER_MSG_MAX] = "";
    char *ref = NULL;
    struct http_request out;
    bool same;
    enum sb_status ref_st = ops == &provider_anthropic
                                ? ref_anthropic_body(t, req, &ref, ref_msg, sizeof ref_msg)
                                : ref_gemini_body(t, req, &ref, ref_msg, sizeof ref_msg);
    http_request_init(&out);
    enum sb_status st = ops->encode(t, req, &out, msg, sizeof msg);
    if (ref_st != SB_OK)
        same = st == ref_st && strcmp(msg, ref_msg) == 0;
    else
        same = st == SB_OK && out.body && out.body_len == strlen(ref) &&
               memcmp(out.body, ref, out.body_len) == 0;
    if (!same)
        snprintf(why, whylen, "%s: status %d \"%s\" body %.300s\nreference: %d \"%s\" %.300s",
                 ops->name, (int)st, msg, out.body ? out.body : "-", (int)ref_st, ref_msg,
                 ref ? ref : "-");
    http_request_cleanup(&out);
    free(ref);
    return same;
}
