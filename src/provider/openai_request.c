/*
 * openai_request.c - the OpenAI Chat Completions wire format, client side: parses what an
 * application's SDK sends to the gateway into a struct llm_request.
 *
 * Policy on fields (one table, top_fields[] below):
 * - What we route is parsed and validated; errors name the field ("messages[1].content: ...").
 * - Sampling hints that only nudge the answer (penalties, seed, parallel_tool_calls, store,
 *   metadata, service_tier, prompt_cache_key, safety_identifier) are accepted and ignored:
 *   our request model has no place for them and dropping them keeps the answer's shape.
 * - Fields asking for something we would silently not deliver (response_format other than
 *   text, logprobs, logit_bias, audio, modalities beyond text, legacy functions, n > 1, ...)
 *   and any field we do not know are rejected with SB_ERR_UNSUPPORTED naming the field.
 * - A field whose value is null counts as absent, whatever its name (clients send nulls).
 * - Inside a message, unknown keys are ignored: SDKs echo whole assistant messages back
 *   (refusal, annotations, audio: null); non-null audio/function_call are rejected.
 *
 * Pure; any thread. On failure req may be partly filled: the caller cleans it up.
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "switchboard/provider.h"

#define MAX_STOP 16
/* The model name is echoed in every SSE chunk: a name longer than any real model id only
 * multiplies the answer's size. */
#define MAX_MODEL 256

struct parse {
    struct llm_request *req;
    char *msg;
    size_t msglen;
    bool have_model, have_messages, have_max_completion;
    uint64_t seen; /* bit k: top_fields[k] was present */
};

/* Writes the message and returns st. */
static enum sb_status SB_PRINTF(3, 4) fail(struct parse *p, enum sb_status st, const char *fmt, ...)
{
    struct buf b;
    va_list ap;
    buf_init(&b);
    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    str_copy(p->msg, p->msglen, buf_str(&b));
    buf_cleanup(&b);
    return st;
}

static const cJSON *jget(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    return cJSON_IsNull(v) ? NULL : v;
}

static char *print_json(const cJSON *v)
{
    char *s = cJSON_PrintUnformatted(v);
    char *copy = xstrdup(s ? s : "{}");
    cJSON_free(s);
    return copy;
}

/* ---- Messages ---------------------------------------------------------------------------- */

static const char TEXT_PARTS[] = "expected a string or an array of text parts";

/* content: a string, or an array of {"type":"text","text":...} parts (joined as is). */
static enum sb_status parse_content(struct parse *p, const cJSON *v, size_t i, char **out)
{
    if (cJSON_IsString(v)) {
        *out = xstrdup(v->valuestring);
        return SB_OK;
    }
    if (!cJSON_IsArray(v))
        return fail(p, SB_ERR_INVALID, "messages[%zu].content: %s", i, TEXT_PARTS);
    struct buf b;
    const cJSON *part;
    size_t j = 0;
    buf_init(&b);
    cJSON_ArrayForEach(part, v)
    {
        const cJSON *type = jget(part, "type"), *text = jget(part, "text");
        if (cJSON_IsString(type) && strcmp(type->valuestring, "text") != 0) {
            buf_cleanup(&b);
            return fail(p, SB_ERR_UNSUPPORTED,
                        "messages[%zu].content[%zu].type: \"%.40s\" is not supported (text "
                        "only)",
                        i, j, type->valuestring);
        }
        if (!cJSON_IsString(type) || !cJSON_IsString(text)) {
            buf_cleanup(&b);
            return fail(p, SB_ERR_INVALID, "messages[%zu].content: %s", i, TEXT_PARTS);
        }
        buf_puts(&b, text->valuestring);
        j++;
    }
    *out = buf_take(&b);
    return SB_OK;
}

static enum sb_status parse_tool_call(struct parse *p, const cJSON *v, size_t i, size_t j,
                                      struct llm_tool_call *tc)
{
    const cJSON *id = jget(v, "id"), *type = jget(v, "type"), *fn = jget(v, "function");
    const cJSON *name = jget(fn, "name"), *args = jget(fn, "arguments");
    if (!cJSON_IsObject(v))
        return fail(p, SB_ERR_INVALID, "messages[%zu].tool_calls[%zu]: expected an object", i, j);
    if (type && (!cJSON_IsString(type) || strcmp(type->valuestring, "function") != 0))
        return fail(p, SB_ERR_UNSUPPORTED,
                    "messages[%zu].tool_calls[%zu].type: only \"function\" is supported", i, j);
    if (!cJSON_IsString(id) || !*id->valuestring)
        return fail(p, SB_ERR_INVALID,
                    "messages[%zu].tool_calls[%zu].id: expected a non-empty string", i, j);
    if (!cJSON_IsString(name) || !*name->valuestring)
        return fail(p, SB_ERR_INVALID,
                    "messages[%zu].tool_calls[%zu].function.name: expected a non-empty string", i,
                    j);
    if (args && !cJSON_IsString(args) && !cJSON_IsObject(args))
        return fail(p, SB_ERR_INVALID,
                    "messages[%zu].tool_calls[%zu].function.arguments: expected a JSON string", i,
                    j);
    tc->id = xstrdup(id->valuestring);
    tc->name = xstrdup(name->valuestring);
    if (args && cJSON_IsString(args))
        tc->arguments = xstrdup(args->valuestring);
    else
        tc->arguments = args ? print_json(args) : xstrdup("{}");
    return SB_OK;
}

static enum sb_status parse_tool_calls(struct parse *p, const cJSON *v, size_t i,
                                       struct llm_message *m)
{
    if (!cJSON_IsArray(v))
        return fail(p, SB_ERR_INVALID, "messages[%zu].tool_calls: expected an array", i);
    if (m->role != LLM_ROLE_ASSISTANT)
        return fail(p, SB_ERR_INVALID,
                    "messages[%zu].tool_calls: only assistant messages carry tool calls", i);
    size_t n = (size_t)cJSON_GetArraySize(v), j = 0;
    const cJSON *tc;
    m->tool_calls = xcalloc(n ? n : 1, sizeof *m->tool_calls);
    cJSON_ArrayForEach(tc, v)
    {
        enum sb_status st = parse_tool_call(p, tc, i, j, &m->tool_calls[j]);
        m->n_tool_calls = ++j; /* counted even on failure: cleanup frees what was set */
        if (st != SB_OK)
            return st;
    }
    return SB_OK;
}

static enum sb_status parse_role(struct parse *p, const cJSON *v, size_t i, enum llm_role *out)
{
    static const struct {
        const char *name;
        enum llm_role role;
    } roles[] = {
        {"system", LLM_ROLE_SYSTEM},       {"developer", LLM_ROLE_SYSTEM}, {"user", LLM_ROLE_USER},
        {"assistant", LLM_ROLE_ASSISTANT}, {"tool", LLM_ROLE_TOOL},
    };
    if (!cJSON_IsString(v))
        return fail(p, SB_ERR_INVALID, "messages[%zu].role: expected a string", i);
    for (size_t k = 0; k < SB_ARRAY_LEN(roles); k++) {
        if (strcmp(v->valuestring, roles[k].name) == 0) {
            *out = roles[k].role;
            return SB_OK;
        }
    }
    return fail(p, SB_ERR_UNSUPPORTED,
                "messages[%zu].role: \"%.40s\" is not supported (system, developer, user, "
                "assistant, tool)",
                i, v->valuestring);
}

static enum sb_status parse_message(struct parse *p, const cJSON *v, size_t i)
{
    enum llm_role role = LLM_ROLE_USER;
    if (!cJSON_IsObject(v))
        return fail(p, SB_ERR_INVALID, "messages[%zu]: expected an object", i);
    enum sb_status st = parse_role(p, jget(v, "role"), i, &role);
    if (st != SB_OK)
        return st;
    if (jget(v, "audio") || jget(v, "function_call"))
        return fail(p, SB_ERR_UNSUPPORTED, "messages[%zu].%s: is not supported", i,
                    jget(v, "audio") ? "audio" : "function_call");
    struct llm_message *m = llm_request_add_message(p->req, role, NULL);
    const cJSON *content = jget(v, "content"), *calls = jget(v, "tool_calls");
    if (calls && (st = parse_tool_calls(p, calls, i, m)) != SB_OK)
        return st;
    if (content && (st = parse_content(p, content, i, &m->content)) != SB_OK)
        return st;
    if (!content && role != LLM_ROLE_ASSISTANT)
        return fail(p, SB_ERR_INVALID, "messages[%zu].content: required", i);
    if (!content && m->n_tool_calls == 0)
        m->content = xstrdup(""); /* an empty assistant turn */
    if (role == LLM_ROLE_TOOL) {
        const cJSON *id = jget(v, "tool_call_id"), *name = jget(v, "name");
        if (!cJSON_IsString(id) || !*id->valuestring)
            return fail(p, SB_ERR_INVALID, "messages[%zu].tool_call_id: required for role \"tool\"",
                        i);
        m->tool_call_id = xstrdup(id->valuestring);
        if (cJSON_IsString(name))
            m->name = xstrdup(name->valuestring);
    }
    return SB_OK;
}

static enum sb_status f_messages(struct parse *p, const cJSON *v)
{
    const cJSON *m;
    size_t i = 0;
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0)
        return fail(p, SB_ERR_INVALID, "messages: expected a non-empty array");
    cJSON_ArrayForEach(m, v)
    {
        enum sb_status st = parse_message(p, m, i++);
        if (st != SB_OK)
            return st;
    }
    p->have_messages = true;
    return SB_OK;
}

/* ---- Tools -------------------------------------------------------------------------------- */

static enum sb_status parse_tool(struct parse *p, const cJSON *v, size_t i)
{
    const cJSON *type = jget(v, "type"), *fn = jget(v, "function");
    const cJSON *name = jget(fn, "name"), *desc = jget(fn, "description");
    const cJSON *params = jget(fn, "parameters");
    if (!cJSON_IsObject(v))
        return fail(p, SB_ERR_INVALID, "tools[%zu]: expected an object", i);
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "function") != 0)
        return fail(p, SB_ERR_UNSUPPORTED, "tools[%zu].type: only \"function\" is supported", i);
    if (!cJSON_IsObject(fn))
        return fail(p, SB_ERR_INVALID, "tools[%zu].function: expected an object", i);
    if (!cJSON_IsString(name) || !*name->valuestring)
        return fail(p, SB_ERR_INVALID, "tools[%zu].function.name: expected a non-empty string", i);
    if (desc && !cJSON_IsString(desc))
        return fail(p, SB_ERR_INVALID, "tools[%zu].function.description: expected a string", i);
    if (params && !cJSON_IsObject(params))
        return fail(p, SB_ERR_INVALID,
                    "tools[%zu].function.parameters: expected a JSON Schema object", i);
    char *schema = params ? print_json(params) : NULL;
    llm_request_add_tool(p->req, name->valuestring, desc ? desc->valuestring : NULL, schema);
    free(schema);
    return SB_OK;
}

static enum sb_status f_tools(struct parse *p, const cJSON *v)
{
    const cJSON *t;
    size_t i = 0;
    if (!cJSON_IsArray(v))
        return fail(p, SB_ERR_INVALID, "tools: expected an array");
    cJSON_ArrayForEach(t, v)
    {
        enum sb_status st = parse_tool(p, t, i++);
        if (st != SB_OK)
            return st;
    }
    return SB_OK;
}

static enum sb_status f_tool_choice(struct parse *p, const cJSON *v)
{
    static const struct {
        const char *name;
        enum llm_tool_choice choice;
    } modes[] = {
        {"auto", LLM_TOOL_CHOICE_AUTO},
        {"none", LLM_TOOL_CHOICE_NONE},
        {"required", LLM_TOOL_CHOICE_REQUIRED},
    };
    const cJSON *type = jget(v, "type"), *name = jget(jget(v, "function"), "name");
    for (size_t k = 0; cJSON_IsString(v) && k < SB_ARRAY_LEN(modes); k++) {
        if (strcmp(v->valuestring, modes[k].name) == 0) {
            p->req->tool_choice = modes[k].choice;
            return SB_OK;
        }
    }
    if (cJSON_IsString(type) && strcmp(type->valuestring, "function") == 0 &&
        cJSON_IsString(name) && *name->valuestring) {
        p->req->tool_choice = LLM_TOOL_CHOICE_NAMED;
        free(p->req->tool_choice_name);
        p->req->tool_choice_name = xstrdup(name->valuestring);
        return SB_OK;
    }
    if (cJSON_IsString(type) && strcmp(type->valuestring, "function") != 0)
        return fail(p, SB_ERR_UNSUPPORTED, "tool_choice.type: only \"function\" is supported");
    return fail(p, SB_ERR_INVALID,
                "tool_choice: expected \"auto\", \"none\", \"required\" or "
                "{\"type\":\"function\",\"function\":{\"name\":...}}");
}

/* ---- Scalars ------------------------------------------------------------------------------ */

static enum sb_status f_model(struct parse *p, const cJSON *v)
{
    if (!cJSON_IsString(v) || !*v->valuestring)
        return fail(p, SB_ERR_INVALID, "model: expected a non-empty string");
    if (strlen(v->valuestring) > MAX_MODEL)
        return fail(p, SB_ERR_INVALID, "model: expected at most %d characters", MAX_MODEL);
    free(p->req->model);
    p->req->model = xstrdup(v->valuestring);
    p->have_model = true;
    return SB_OK;
}

static enum sb_status f_stream(struct parse *p, const cJSON *v)
{
    if (!cJSON_IsBool(v))
        return fail(p, SB_ERR_INVALID, "stream: expected a boolean");
    p->req->stream = cJSON_IsTrue(v);
    return SB_OK;
}

static enum sb_status f_stream_options(struct parse *p, const cJSON *v)
{
    const cJSON *inc = jget(v, "include_usage");
    if (!cJSON_IsObject(v))
        return fail(p, SB_ERR_INVALID, "stream_options: expected an object");
    if (inc && !cJSON_IsBool(inc))
        return fail(p, SB_ERR_INVALID, "stream_options.include_usage: expected a boolean");
    p->req->include_usage = cJSON_IsTrue(inc);
    return SB_OK;
}

static enum sb_status max_tokens(struct parse *p, const cJSON *v, const char *field, bool set)
{
    double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
    if (!(d >= 1 && d <= 1e9 && floor(d) == d))
        return fail(p, SB_ERR_INVALID, "%s: expected an integer >= 1", field);
    if (set)
        p->req->max_tokens = (long)d;
    return SB_OK;
}

/* max_completion_tokens (the newer name) wins over max_tokens whatever the key order. */
static enum sb_status f_max_tokens(struct parse *p, const cJSON *v)
{
    return max_tokens(p, v, "max_tokens", !p->have_max_completion);
}

static enum sb_status f_max_completion_tokens(struct parse *p, const cJSON *v)
{
    return max_tokens(p, v, "max_completion_tokens", true);
}

static enum sb_status f_temperature(struct parse *p, const cJSON *v)
{
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= 2))
        return fail(p, SB_ERR_INVALID, "temperature: expected a number between 0 and 2");
    p->req->has_temperature = true;
    p->req->temperature = v->valuedouble;
    return SB_OK;
}

static enum sb_status f_top_p(struct parse *p, const cJSON *v)
{
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= 1))
        return fail(p, SB_ERR_INVALID, "top_p: expected a number between 0 and 1");
    p->req->has_top_p = true;
    p->req->top_p = v->valuedouble;
    return SB_OK;
}

static void add_stop(struct llm_request *req, const char *s)
{
    if (!*s)
        return; /* an empty stop sequence means nothing */
    req->stop = xrealloc(req->stop, (req->n_stop + 1) * sizeof *req->stop);
    req->stop[req->n_stop++] = xstrdup(s);
}

static enum sb_status f_stop(struct parse *p, const cJSON *v)
{
    const cJSON *s;
    if (cJSON_IsString(v)) {
        add_stop(p->req, v->valuestring);
        return SB_OK;
    }
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > MAX_STOP)
        return fail(p, SB_ERR_INVALID, "stop: expected a string or an array of up to %d strings",
                    MAX_STOP);
    cJSON_ArrayForEach(s, v)
    {
        if (!cJSON_IsString(s))
            return fail(p, SB_ERR_INVALID, "stop: expected a string or an array of strings");
        add_stop(p->req, s->valuestring);
    }
    return SB_OK;
}

static enum sb_status f_user(struct parse *p, const cJSON *v)
{
    if (!cJSON_IsString(v))
        return fail(p, SB_ERR_INVALID, "user: expected a string");
    free(p->req->user);
    p->req->user = xstrdup(v->valuestring);
    return SB_OK;
}

static enum sb_status f_n(struct parse *p, const cJSON *v)
{
    if (!cJSON_IsNumber(v))
        return fail(p, SB_ERR_INVALID, "n: expected an integer");
    if (v->valuedouble != 1)
        return fail(p, SB_ERR_UNSUPPORTED, "n: only 1 is supported");
    return SB_OK;
}

/* Accepted when they ask for nothing beyond the default. */
static enum sb_status f_logprobs(struct parse *p, const cJSON *v)
{
    return cJSON_IsFalse(v) ? SB_OK : fail(p, SB_ERR_UNSUPPORTED, "logprobs: is not supported");
}

static enum sb_status f_logit_bias(struct parse *p, const cJSON *v)
{
    if (cJSON_IsObject(v) && !v->child)
        return SB_OK;
    return fail(p, SB_ERR_UNSUPPORTED, "logit_bias: is not supported");
}

static enum sb_status f_response_format(struct parse *p, const cJSON *v)
{
    const cJSON *type = jget(v, "type");
    if (cJSON_IsString(type) && strcmp(type->valuestring, "text") == 0)
        return SB_OK;
    return fail(p, SB_ERR_UNSUPPORTED, "response_format: only {\"type\":\"text\"} is supported");
}

static enum sb_status f_modalities(struct parse *p, const cJSON *v)
{
    bool ok = cJSON_IsArray(v);
    for (const cJSON *m = ok ? v->child : NULL; m; m = m->next)
        ok = ok && cJSON_IsString(m) && strcmp(m->valuestring, "text") == 0;
    return ok ? SB_OK : fail(p, SB_ERR_UNSUPPORTED, "modalities: only [\"text\"] is supported");
}

/* ---- The field table ---------------------------------------------------------------------- */

typedef enum sb_status (*field_fn)(struct parse *p, const cJSON *v);

/* NULL parse: accepted and ignored (see the policy at the top). */
static const struct {
    const char *name;
    field_fn parse;
} top_fields[] = {
    {"model", f_model},
    {"messages", f_messages},
    {"tools", f_tools},
    {"tool_choice", f_tool_choice},
    {"stream", f_stream},
    {"stream_options", f_stream_options},
    {"max_tokens", f_max_tokens},
    {"max_completion_tokens", f_max_completion_tokens},
    {"temperature", f_temperature},
    {"top_p", f_top_p},
    {"stop", f_stop},
    {"user", f_user},
    {"n", f_n},
    {"logprobs", f_logprobs},
    {"logit_bias", f_logit_bias},
    {"response_format", f_response_format},
    {"modalities", f_modalities},
    {"presence_penalty", NULL},
    {"frequency_penalty", NULL},
    {"seed", NULL},
    {"parallel_tool_calls", NULL},
    {"store", NULL},
    {"metadata", NULL},
    {"service_tier", NULL},
    {"prompt_cache_key", NULL},
    {"safety_identifier", NULL},
};

_Static_assert(SB_ARRAY_LEN(top_fields) <= 64, "struct parse.seen is a 64-bit set");

/* A field given twice is refused: parsers disagree on which copy wins, and the gateway must
 * not route a different request from the one a proxy in front of it inspected. */
static enum sb_status parse_field(struct parse *p, const cJSON *item)
{
    for (size_t k = 0; k < SB_ARRAY_LEN(top_fields); k++) {
        if (strcmp(item->string, top_fields[k].name) != 0)
            continue;
        if (p->seen & (UINT64_C(1) << k))
            return fail(p, SB_ERR_INVALID, "%s: given twice", top_fields[k].name);
        p->seen |= UINT64_C(1) << k;
        if (cJSON_IsNull(item) || !top_fields[k].parse)
            return SB_OK;
        return top_fields[k].parse(p, item);
    }
    if (cJSON_IsNull(item))
        return SB_OK;
    return fail(p, SB_ERR_UNSUPPORTED, "%.60s: is not supported", item->string);
}

static enum sb_status check_tool_choice(struct parse *p)
{
    const struct llm_request *req = p->req;
    if (req->tool_choice != LLM_TOOL_CHOICE_NAMED)
        return SB_OK;
    for (size_t i = 0; i < req->n_tools; i++) {
        if (str_eq(req->tools[i].name, req->tool_choice_name))
            return SB_OK;
    }
    return fail(p, SB_ERR_INVALID, "tool_choice.function.name: no tool named \"%.60s\"",
                req->tool_choice_name);
}

/* Does a JSON string in body[0..len) (valid JSON) hold the escape \u0000? cJSON would
 * decode it into a NUL that silently cuts the string short. */
static bool has_nul_escape(const char *body, size_t len)
{
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        if (body[i] == '"') {
            in_string = !in_string;
        } else if (in_string && body[i] == '\\') {
            if (i + 5 < len && body[i + 1] == 'u' && memcmp(body + i + 2, "0000", 4) == 0)
                return true;
            i++; /* the escaped character, whatever it is */
        }
    }
    return false;
}

/* Parses the body as exactly one JSON value: bytes after it other than whitespace fail. */
static enum sb_status parse_body(struct parse *p, const char *body, size_t len, cJSON **root)
{
    const char *end = NULL;
    *root = cJSON_ParseWithLengthOpts(body, len, &end, false);
    if (!*root)
        return fail(p, SB_ERR_PARSE, "request body is not valid JSON");
    while (end && end < body + len && strchr(" \t\r\n", *end) && *end)
        end++;
    if (!end || end != body + len)
        return fail(p, SB_ERR_PARSE,
                    "request body: unexpected bytes after the JSON object (at offset %zu)",
                    end ? (size_t)(end - body) : len);
    if (has_nul_escape(body, len))
        return fail(p, SB_ERR_INVALID,
                    "request body: a string holds \\u0000 (NUL), which is not supported");
    return SB_OK;
}

enum sb_status openai_request_parse(const char *body, size_t len, struct llm_request *req,
                                    char *msg, size_t msglen)
{
    struct parse p = {.req = req, .msg = msg, .msglen = msglen};
    const cJSON *item;
    cJSON *root = NULL;
    enum sb_status st = parse_body(&p, body, len, &root);
    if (st != SB_OK)
        goto out;
    if (!cJSON_IsObject(root)) {
        st = fail(&p, SB_ERR_INVALID, "request body: expected a JSON object");
        goto out;
    }
    p.have_max_completion = jget(root, "max_completion_tokens") != NULL;
    cJSON_ArrayForEach(item, root)
    {
        st = parse_field(&p, item);
        if (st != SB_OK)
            goto out;
    }
    if (!p.have_model)
        st = fail(&p, SB_ERR_INVALID, "model: required");
    else if (!p.have_messages)
        st = fail(&p, SB_ERR_INVALID, "messages: required (a non-empty array)");
    else
        st = check_tool_choice(&p);
out:
    cJSON_Delete(root);
    return st;
}
