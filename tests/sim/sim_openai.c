/*
 * sim_openai.c - the OpenAI Chat Completions wire format: POST /v1/chat/completions (JSON and
 * SSE), GET /v1/models[/{id}], errors {"error":{"message","type","param","code"}}.
 *
 * Requests are checked the way api.openai.com checks them (unknown arguments, roles, content
 * shapes, tool_calls/tool pairing, stream_options without stream, ...), so adapter bugs get
 * the real 400s. Stateless; runs in the request's connection thread.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "sim.h"

#define MAX_TOOL_CALLS 64

static const char *const allowed_keys[] = {
    "model",
    "messages",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "presence_penalty",
    "response_format",
    "seed",
    "service_tier",
    "stop",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "user",
    "metadata",
    "store",
    "reasoning_effort",
    "modalities",
    "audio",
    "prediction",
    "web_search_options",
    "functions",
    "function_call",
    "prompt_cache_key",
    "safety_identifier",
    "verbosity",
};

static const char *const roles[] = {"system", "developer", "user", "assistant", "tool", "function"};

/* Parse state; the error fields are filled by fail(). */
struct oa_req {
    struct sim_prompt p;
    bool stream;
    bool include_usage;
    const char *pending[MAX_TOOL_CALLS]; /* tool_call ids awaiting a tool message */
    size_t n_pending;
    char msg[512];
    char param[96];
    const char *code;
};

static bool fail(struct oa_req *q, const char *code, const char *fmt, ...) SB_PRINTF(3, 4);

static bool fail(struct oa_req *q, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q->msg, sizeof q->msg, fmt, ap);
    va_end(ap);
    q->code = code;
    return false;
}

static const char *oa_type(int status)
{
    if (status == 429)
        return "requests";
    return status >= 500 ? "server_error" : "invalid_request_error";
}

static const char *oa_default_message(int status)
{
    switch (status) {
    case 401:
        return "Incorrect API key provided. You can find your API key at "
               "https://platform.openai.com/account/api-keys.";
    case 404:
        return "The model does not exist or you do not have access to it.";
    case 429:
        return "Rate limit reached for requests. Please try again later.";
    case 500:
        return "The server had an error while processing your request. Sorry about that!";
    case 502:
        return "Bad gateway.";
    case 503:
        return "The server is overloaded or not ready yet.";
    case 504:
        return "Gateway timeout.";
    default:
        return status >= 500 ? "The server had an error processing your request."
                             : "Invalid request.";
    }
}

static void oa_error_param(struct sim_reply *r, int status, const char *param, const char *code,
                           const char *msg)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(doc, "error");
    cJSON_AddStringToObject(e, "message", msg ? msg : oa_default_message(status));
    cJSON_AddStringToObject(e, "type", oa_type(status));
    if (param && *param)
        cJSON_AddStringToObject(e, "param", param);
    else
        cJSON_AddNullToObject(e, "param");
    if (!code) /* OpenAI's codes for these statuses */
        code = status == 401   ? "invalid_api_key"
               : status == 404 ? "model_not_found"
               : status == 429 ? "rate_limit_exceeded"
                               : NULL;
    if (code)
        cJSON_AddStringToObject(e, "code", code);
    else
        cJSON_AddNullToObject(e, "code");
    sim_reply_json(r, status, doc);
}

static void oa_error(struct sim_reply *r, int status, const char *code, const char *msg)
{
    oa_error_param(r, status, NULL, code, msg);
}

static bool oa_auth_ok(const struct sim_request *rq)
{
    const char *h = sim_req_header(rq, "Authorization");
    const char *key = (h && strncasecmp(h, "Bearer ", 7) == 0) ? h + 7 : NULL;
    return sim_key_ok(rq, key);
}

static void oa_rate_limited(const struct sim_request *rq, struct sim_reply *r)
{
    double s = rq->beh.rate_limit_retry_after_s;
    char msg[200];
    snprintf(msg, sizeof msg,
             "Rate limit reached for requests per min (RPM): Limit 60, Used 60, Requested 1. "
             "Please try again in %gs.",
             s);
    oa_error(r, rq->beh.rate_limit_status, "rate_limit_exceeded", msg);
    if (rq->beh.wire != SIM_WIRE_RATELIMIT_RESETS)
        sim_reply_header(r, "retry-after-ms", "%ld", (long)(s * 1000));
    sim_reply_header(r, "x-ratelimit-limit-requests", "60");
    sim_reply_header(r, "x-ratelimit-remaining-requests", "0");
    sim_reply_header(r, "x-ratelimit-reset-requests", "%gs", s);
}

/* ---- request parsing -------------------------------------------------------------------- */

static bool content_text(struct oa_req *q, const cJSON *c, size_t i, struct buf *out)
{
    snprintf(q->param, sizeof q->param, "messages.[%zu].content", i);
    if (cJSON_IsString(c)) {
        buf_puts(out, c->valuestring);
        return true;
    }
    if (!cJSON_IsArray(c))
        return fail(q, "invalid_type",
                    "Invalid type for 'messages[%zu].content': expected one of a string or "
                    "array of objects, but got %s instead.",
                    i, sim_json_type(c));
    size_t j = 0;
    const cJSON *part;
    cJSON_ArrayForEach(part, c)
    {
        const char *type = sim_json_str(part, "type");
        if (!cJSON_IsObject(part) || !type)
            return fail(q, "missing_required_parameter",
                        "Missing required parameter: 'messages[%zu].content[%zu].type'.", i, j);
        if (str_eq(type, "text") || str_eq(type, "refusal")) {
            const char *t = sim_json_str(part, str_eq(type, "text") ? "text" : "refusal");
            if (!t)
                return fail(q, "missing_required_parameter",
                            "Missing required parameter: 'messages[%zu].content[%zu].%s'.", i, j,
                            type);
            if (out->len)
                buf_putc(out, '\n');
            buf_puts(out, t);
        } else if (!str_eq(type, "image_url") && !str_eq(type, "input_audio") &&
                   !str_eq(type, "file")) {
            return fail(q, "invalid_value",
                        "Invalid value: '%s'. Supported values are: 'text', 'image_url', "
                        "'input_audio', 'refusal', and 'file'.",
                        type);
        }
        j++;
    }
    return true;
}

static bool tool_calls(struct oa_req *q, const cJSON *calls, size_t i)
{
    size_t j = 0;
    const cJSON *tc;
    snprintf(q->param, sizeof q->param, "messages.[%zu].tool_calls", i);
    if (!cJSON_IsArray(calls))
        return fail(q, "invalid_type",
                    "Invalid type for 'messages[%zu].tool_calls': expected an array, but got %s "
                    "instead.",
                    i, sim_json_type(calls));
    q->n_pending = 0;
    cJSON_ArrayForEach(tc, calls)
    {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
        const char *id = sim_json_str(tc, "id");
        if (!id)
            return fail(q, "missing_required_parameter",
                        "Missing required parameter: 'messages[%zu].tool_calls[%zu].id'.", i, j);
        if (!str_eq(sim_json_str(tc, "type"), "function"))
            return fail(q, "missing_required_parameter",
                        "Missing required parameter: 'messages[%zu].tool_calls[%zu].type'.", i, j);
        if (!cJSON_IsObject(fn) || !sim_json_str(fn, "name"))
            return fail(q, "missing_required_parameter",
                        "Missing required parameter: 'messages[%zu].tool_calls[%zu].function'.", i,
                        j);
        if (!cJSON_IsString(args))
            return fail(q, "invalid_type",
                        "Invalid type for 'messages[%zu].tool_calls[%zu].function.arguments': "
                        "expected a string, but got %s instead.",
                        i, j, sim_json_type(args));
        if (q->n_pending >= MAX_TOOL_CALLS)
            return fail(q, "array_above_max_length", "Too many tool calls in one message.");
        q->pending[q->n_pending++] = id;
        sim_prompt_count(&q->p, args->valuestring);
        j++;
    }
    return true;
}

static bool take_pending(struct oa_req *q, const char *id)
{
    for (size_t k = 0; id && k < q->n_pending; k++) {
        if (str_eq(q->pending[k], id)) {
            q->pending[k] = q->pending[--q->n_pending];
            return true;
        }
    }
    return false;
}

static bool unanswered_calls(struct oa_req *q, size_t i)
{
    snprintf(q->param, sizeof q->param, "messages.[%zu].role", i);
    return fail(q, NULL,
                "An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                "response messages: %s",
                q->pending[0]);
}

static bool one_message(struct oa_req *q, const cJSON *m, size_t i)
{
    const char *role = sim_json_str(m, "role");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
    struct buf text;
    bool ok = true, known = false;
    snprintf(q->param, sizeof q->param, "messages.[%zu].role", i);
    if (!cJSON_IsObject(m))
        return fail(q, "invalid_type",
                    "Invalid type for 'messages[%zu]': expected an object, but got %s instead.", i,
                    sim_json_type(m));
    if (!role)
        return fail(q, "missing_required_parameter",
                    "Missing required parameter: 'messages[%zu].role'.", i);
    for (size_t k = 0; k < SB_ARRAY_LEN(roles); k++)
        known = known || str_eq(role, roles[k]);
    if (!known)
        return fail(q, "invalid_value",
                    "Invalid value: '%s'. Supported values are: 'system', 'assistant', 'user', "
                    "'function', 'tool', and 'developer'.",
                    role);
    if (q->n_pending > 0 && !str_eq(role, "tool"))
        return unanswered_calls(q, i);

    buf_init(&text);
    free(q->p.tool_result);
    q->p.tool_result = NULL;
    if (str_eq(role, "assistant")) {
        const cJSON *calls = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
        if (calls && !cJSON_IsNull(calls))
            ok = tool_calls(q, calls, i);
        else if (!content || cJSON_IsNull(content))
            ok = fail(q, "missing_required_parameter",
                      "Missing required parameter: 'messages[%zu].content'.", i);
        if (ok && content && !cJSON_IsNull(content))
            ok = content_text(q, content, i, &text);
    } else if (!content || cJSON_IsNull(content)) {
        snprintf(q->param, sizeof q->param, "messages.[%zu].content", i);
        ok = fail(q, "missing_required_parameter",
                  "Missing required parameter: 'messages[%zu].content'.", i);
    } else if (str_eq(role, "tool")) {
        const char *id = sim_json_str(m, "tool_call_id");
        if (!id)
            ok = fail(q, "missing_required_parameter",
                      "Missing required parameter: 'messages[%zu].tool_call_id'.", i);
        else if (!take_pending(q, id))
            ok = fail(q, NULL,
                      "Invalid parameter: messages with role 'tool' must be a response to a "
                      "preceeding message with 'tool_calls'.");
        ok = ok && content_text(q, content, i, &text);
        if (ok)
            q->p.tool_result = xstrdup(buf_str(&text));
    } else {
        ok = content_text(q, content, i, &text);
        if (ok && str_eq(role, "user")) {
            free(q->p.last_user);
            q->p.last_user = xstrdup(buf_str(&text));
        }
    }
    sim_prompt_count(&q->p, buf_str(&text));
    buf_cleanup(&text);
    return ok;
}

static bool messages(struct oa_req *q, const cJSON *msgs)
{
    str_copy(q->param, sizeof q->param, "messages");
    if (!msgs)
        return fail(q, "missing_required_parameter", "Missing required parameter: 'messages'.");
    if (!cJSON_IsArray(msgs))
        return fail(q, "invalid_type",
                    "Invalid type for 'messages': expected an array, but got %s instead.",
                    sim_json_type(msgs));
    if (cJSON_GetArraySize(msgs) == 0)
        return fail(q, "empty_array",
                    "Invalid 'messages': empty array. Expected an array with minimum length 1, "
                    "but got an empty array instead.");
    size_t i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs)
    {
        if (!one_message(q, m, i++))
            return false;
    }
    return q->n_pending == 0 || unanswered_calls(q, i - 1);
}

static bool valid_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 64)
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n;
}

static const cJSON *find_tool(const cJSON *tools, const char *name)
{
    const cJSON *t;
    cJSON_ArrayForEach(t, tools)
    {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(t, "function");
        if (str_eq(sim_json_str(fn, "name"), name))
            return fn;
    }
    return NULL;
}

static bool tools(struct oa_req *q, const cJSON *tools, const cJSON *choice)
{
    size_t j = 0;
    const cJSON *t;
    str_copy(q->param, sizeof q->param, "tools");
    if (!cJSON_IsArray(tools))
        return fail(q, "invalid_type",
                    "Invalid type for 'tools': expected an array, but got %s instead.",
                    sim_json_type(tools));
    if (cJSON_GetArraySize(tools) == 0)
        return fail(q, "empty_array",
                    "Invalid 'tools': empty array. Expected an array with minimum length 1, but "
                    "got an empty array instead.");
    cJSON_ArrayForEach(t, tools)
    {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(t, "function");
        snprintf(q->param, sizeof q->param, "tools[%zu].function", j);
        if (!str_eq(sim_json_str(t, "type"), "function"))
            return fail(q, "missing_required_parameter",
                        "Missing required parameter: 'tools[%zu].type'.", j);
        if (!cJSON_IsObject(fn))
            return fail(q, "missing_required_parameter",
                        "Missing required parameter: 'tools[%zu].function'.", j);
        if (!valid_name(sim_json_str(fn, "name")))
            return fail(q, "invalid_value",
                        "Invalid 'tools[%zu].function.name': string does not match pattern. "
                        "Expected a string that matches the pattern '^[a-zA-Z0-9_-]{1,64}$'.",
                        j);
        const cJSON *params = cJSON_GetObjectItemCaseSensitive(fn, "parameters");
        if (params && !cJSON_IsObject(params))
            return fail(q, "invalid_type",
                        "Invalid type for 'tools[%zu].function.parameters': expected an object, "
                        "but got %s instead.",
                        j, sim_json_type(params));
        sim_prompt_count_json(&q->p, t);
        j++;
    }
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(tools, 0), "function");
    str_copy(q->param, sizeof q->param, "tool_choice");
    if (choice && cJSON_IsString(choice)) {
        if (str_eq(choice->valuestring, "none"))
            q->p.tools_off = true;
        else if (str_eq(choice->valuestring, "required"))
            q->p.force_tool = true;
        else if (!str_eq(choice->valuestring, "auto"))
            return fail(q, "invalid_value",
                        "Invalid value: '%s'. Supported values are: 'none', 'auto', and "
                        "'required'.",
                        choice->valuestring);
    } else if (choice) {
        const char *name =
            sim_json_str(cJSON_GetObjectItemCaseSensitive(choice, "function"), "name");
        if (!str_eq(sim_json_str(choice, "type"), "function") || !name)
            return fail(q, "missing_required_parameter",
                        "Missing required parameter: 'tool_choice.function.name'.");
        fn = find_tool(tools, name);
        if (!fn)
            return fail(q, "invalid_value",
                        "Invalid 'tool_choice': function '%s' is not declared in 'tools'.", name);
        q->p.force_tool = true;
    }
    q->p.tool_name = xstrdup(sim_json_str(fn, "name"));
    q->p.tool_has_city = sim_schema_has_city(cJSON_GetObjectItemCaseSensitive(fn, "parameters"));
    return true;
}

static bool top_level(struct oa_req *q, const cJSON *doc)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, doc)
    {
        bool known = false;
        for (size_t k = 0; k < SB_ARRAY_LEN(allowed_keys); k++)
            known = known || str_eq(it->string, allowed_keys[k]);
        if (!known)
            return fail(q, NULL, "Unrecognized request argument supplied: %s", it->string);
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(doc, "model");
    const cJSON *stream = cJSON_GetObjectItemCaseSensitive(doc, "stream");
    const cJSON *opts = cJSON_GetObjectItemCaseSensitive(doc, "stream_options");
    str_copy(q->param, sizeof q->param, "model");
    if (!model)
        return fail(q, NULL, "you must provide a model parameter");
    if (!cJSON_IsString(model))
        return fail(q, "invalid_type",
                    "Invalid type for 'model': expected a string, but got %s instead.",
                    sim_json_type(model));
    q->p.model = xstrdup(model->valuestring);
    str_copy(q->param, sizeof q->param, "stream");
    if (stream && !cJSON_IsBool(stream) && !cJSON_IsNull(stream))
        return fail(q, "invalid_type",
                    "Invalid type for 'stream': expected a boolean, but got %s instead.",
                    sim_json_type(stream));
    q->stream = cJSON_IsTrue(stream);
    str_copy(q->param, sizeof q->param, "stream_options");
    if (opts && !cJSON_IsNull(opts) && !q->stream)
        return fail(q, NULL,
                    "The 'stream_options' parameter is only allowed when 'stream' is enabled.");
    q->include_usage = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(opts, "include_usage"));
    static const char *const limits[] = {"max_tokens", "max_completion_tokens"};
    for (size_t k = 0; k < SB_ARRAY_LEN(limits); k++) {
        const cJSON *mt = cJSON_GetObjectItemCaseSensitive(doc, limits[k]);
        str_copy(q->param, sizeof q->param, limits[k]);
        if (mt && !cJSON_IsNull(mt) && (!sim_json_is_int(mt) || mt->valuedouble < 1))
            return fail(q, "invalid_value",
                        "Invalid '%s': expected an integer greater than or equal to 1.", limits[k]);
        if (mt && sim_json_is_int(mt))
            q->p.max_tokens = (long)mt->valuedouble;
    }
    if (!messages(q, cJSON_GetObjectItemCaseSensitive(doc, "messages")))
        return false;
    const cJSON *tl = cJSON_GetObjectItemCaseSensitive(doc, "tools");
    const cJSON *choice = cJSON_GetObjectItemCaseSensitive(doc, "tool_choice");
    if (choice && cJSON_IsNull(choice))
        choice = NULL;
    if (tl && !cJSON_IsNull(tl))
        return tools(q, tl, choice);
    str_copy(q->param, sizeof q->param, "tool_choice");
    if (choice)
        return fail(q, NULL,
                    "Invalid value for 'tool_choice': 'tool_choice' is only allowed when "
                    "'tools' are specified.");
    return true;
}

/* ---- answers ---------------------------------------------------------------------------- */

static const char *finish_name(enum sim_finish f)
{
    switch (f) {
    case SIM_FINISH_STOP:
        return "stop";
    case SIM_FINISH_LENGTH:
        return "length";
    case SIM_FINISH_TOOL:
        return "tool_calls";
    }
    return "stop";
}

static cJSON *usage_json(const struct sim_answer *a)
{
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", (double)a->prompt_tokens);
    cJSON_AddNumberToObject(u, "completion_tokens", (double)a->completion_tokens);
    cJSON_AddNumberToObject(u, "total_tokens", (double)(a->prompt_tokens + a->completion_tokens));
    cJSON *pd = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    cJSON_AddNumberToObject(pd, "cached_tokens", (double)a->cached_tokens);
    cJSON_AddNumberToObject(pd, "audio_tokens", 0);
    cJSON *cd = cJSON_AddObjectToObject(u, "completion_tokens_details");
    cJSON_AddNumberToObject(cd, "reasoning_tokens", 0);
    cJSON_AddNumberToObject(cd, "audio_tokens", 0);
    return u;
}

static cJSON *tool_call_json(const struct sim_answer *a, const char *call_id, bool stream)
{
    cJSON *tc = cJSON_CreateObject();
    if (stream)
        cJSON_AddNumberToObject(tc, "index", 0);
    cJSON_AddStringToObject(tc, "id", call_id);
    cJSON_AddStringToObject(tc, "type", "function");
    cJSON *fn = cJSON_AddObjectToObject(tc, "function");
    cJSON_AddStringToObject(fn, "name", a->tool_name);
    cJSON_AddStringToObject(fn, "arguments", stream ? "" : a->tool_args);
    return tc;
}

#define REFUSAL_TEXT   "I'm sorry, but I can't help with that."
#define REASONING_TEXT "The user wants an answer; keep it short."

/* The older flat tool call some OpenAI-compatible servers emit: no wrapper, no id, the
 * arguments as an object. */
static cJSON *legacy_call_json(const struct sim_answer *a)
{
    cJSON *tc = cJSON_CreateObject();
    cJSON_AddStringToObject(tc, "name", a->tool_name);
    cJSON_AddItemToObject(tc, "arguments", cJSON_Parse(a->tool_args));
    return tc;
}

/* {"content":[{"token","logprob","bytes","top_logprobs"}],"refusal":null} for one piece. */
static cJSON *logprobs_json(const char *piece)
{
    cJSON *lp = cJSON_CreateObject();
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "token", piece);
    cJSON_AddNumberToObject(t, "logprob", -0.25);
    cJSON *bytes = cJSON_AddArrayToObject(t, "bytes");
    for (const unsigned char *p = (const unsigned char *)piece; *p; p++)
        cJSON_AddItemToArray(bytes, cJSON_CreateNumber(*p));
    cJSON_AddArrayToObject(t, "top_logprobs");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(lp, "content"), t);
    cJSON_AddNullToObject(lp, "refusal");
    return lp;
}

static void render_json(const struct sim_request *rq, const struct oa_req *q,
                        const struct sim_answer *a, struct sim_reply *r)
{
    char id[48], call_id[40];
    sim_make_id(id, sizeof id, "chatcmpl-", sim_nonce(), 29);
    sim_make_id(call_id, sizeof call_id, "call_", sim_nonce(), 24);
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "id", id);
    cJSON_AddStringToObject(doc, "object", "chat.completion");
    cJSON_AddNumberToObject(doc, "created", (double)time(NULL));
    cJSON_AddStringToObject(doc, "model", q->p.model);
    cJSON *choice = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(doc, "choices"), choice);
    cJSON_AddNumberToObject(choice, "index", 0);
    cJSON *msg = cJSON_AddObjectToObject(choice, "message");
    enum sim_wire w = rq->beh.wire;
    bool tool = a->finish == SIM_FINISH_TOOL, refuse = w == SIM_WIRE_REFUSAL && !tool;
    cJSON_AddStringToObject(msg, "role", "assistant");
    if (tool) {
        cJSON_AddNullToObject(msg, "content");
        cJSON *calls = cJSON_AddArrayToObject(msg, "tool_calls");
        cJSON_AddItemToArray(calls, w == SIM_WIRE_LEGACY_TOOLS ? legacy_call_json(a)
                                                               : tool_call_json(a, call_id, false));
    } else if (refuse) {
        cJSON_AddNullToObject(msg, "content");
    } else {
        cJSON_AddStringToObject(msg, "content", a->text);
    }
    if (refuse)
        cJSON_AddStringToObject(msg, "refusal", REFUSAL_TEXT);
    else
        cJSON_AddNullToObject(msg, "refusal");
    if (w == SIM_WIRE_REASONING)
        cJSON_AddStringToObject(msg, "reasoning_content", REASONING_TEXT);
    cJSON_AddArrayToObject(msg, "annotations");
    if (w == SIM_WIRE_REASONING && !tool)
        cJSON_AddItemToObject(choice, "logprobs", logprobs_json(a->n_pieces ? a->pieces[0] : ""));
    else
        cJSON_AddNullToObject(choice, "logprobs");
    cJSON_AddStringToObject(choice, "finish_reason",
                            tool && w == SIM_WIRE_LEGACY_TOOLS ? "tool" : finish_name(a->finish));
    if (!rq->beh.omit_usage)
        cJSON_AddItemToObject(doc, "usage", usage_json(a));
    cJSON_AddStringToObject(doc, "service_tier", "default");
    cJSON_AddStringToObject(doc, "system_fingerprint", "fp_sim");
    sim_reply_json(r, 200, doc);
}

/* One chat.completion.chunk; delta (may be NULL: no choices) is taken over. */
static cJSON *chunk(const char *id, const struct oa_req *q, cJSON *delta, const char *finish)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "id", id);
    cJSON_AddStringToObject(doc, "object", "chat.completion.chunk");
    cJSON_AddNumberToObject(doc, "created", (double)time(NULL));
    cJSON_AddStringToObject(doc, "model", q->p.model);
    cJSON_AddStringToObject(doc, "service_tier", "default");
    cJSON_AddStringToObject(doc, "system_fingerprint", "fp_sim");
    cJSON *choices = cJSON_AddArrayToObject(doc, "choices");
    if (delta) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddNumberToObject(c, "index", 0);
        cJSON_AddItemToObject(c, "delta", delta);
        cJSON_AddNullToObject(c, "logprobs");
        if (finish)
            cJSON_AddStringToObject(c, "finish_reason", finish);
        else
            cJSON_AddNullToObject(c, "finish_reason");
        cJSON_AddItemToArray(choices, c);
    }
    if (q->include_usage)
        cJSON_AddNullToObject(doc, "usage");
    return doc;
}

/* A content delta; with wire reasoning it carries logprobs for its piece. */
static void content_chunk(const struct sim_request *rq, const char *id, const struct oa_req *q,
                          const char *key, const char *piece, struct sim_reply *r)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, key, piece);
    cJSON *doc = chunk(id, q, d, NULL);
    if (rq->beh.wire == SIM_WIRE_REASONING) {
        cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "choices"), 0);
        cJSON_ReplaceItemInObjectCaseSensitive(c, "logprobs", logprobs_json(piece));
    }
    sim_reply_sse(r, true, NULL, doc, "\n");
}

/* What ends a stream: [DONE], or per the wire behaviour nothing / a bare JSON error. */
static void stream_end(const struct sim_request *rq, struct sim_reply *r)
{
    switch (rq->beh.wire) {
    case SIM_WIRE_NO_DONE:
        return;
    case SIM_WIRE_TRAILING_ERROR:
        sim_reply_trailing_error(r);
        return;
    case SIM_WIRE_NONE:
    case SIM_WIRE_OVERSIZE_EVENT:
    case SIM_WIRE_REFUSAL:
    case SIM_WIRE_PROMPT_BLOCKED:
    case SIM_WIRE_PROMPT_BLOCKED_SILENT:
    case SIM_WIRE_REASONING:
    case SIM_WIRE_LEGACY_TOOLS:
    case SIM_WIRE_RATELIMIT_RESETS:
        break;
    }
    sim_reply_raw_event(r, false, "data: [DONE]\n\n");
}

static void render_stream(const struct sim_request *rq, const struct oa_req *q,
                          const struct sim_answer *a, struct sim_reply *r)
{
    enum sim_wire w = rq->beh.wire;
    bool tool = a->finish == SIM_FINISH_TOOL, refuse = w == SIM_WIRE_REFUSAL && !tool;
    bool legacy = tool && w == SIM_WIRE_LEGACY_TOOLS;
    char id[48], call_id[40];
    sim_make_id(id, sizeof id, "chatcmpl-", sim_nonce(), 29);
    sim_make_id(call_id, sizeof call_id, "call_", sim_nonce(), 24);
    sim_reply_stream(r);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "role", "assistant");
    if (tool) {
        cJSON_AddNullToObject(d, "content");
        cJSON_AddItemToArray(cJSON_AddArrayToObject(d, "tool_calls"),
                             legacy ? legacy_call_json(a) : tool_call_json(a, call_id, true));
    } else {
        cJSON_AddStringToObject(d, "content", "");
    }
    cJSON_AddNullToObject(d, "refusal");
    sim_reply_sse(r, false, NULL, chunk(id, q, d, NULL), "\n");
    if (w == SIM_WIRE_REASONING)
        content_chunk(rq, id, q, "reasoning_content", REASONING_TEXT, r);
    if (refuse)
        content_chunk(rq, id, q, "refusal", REFUSAL_TEXT, r);
    for (size_t i = 0; i < a->n_pieces && !refuse; i++) {
        content_chunk(rq, id, q, "content", a->pieces[i], r);
        if (i == 0 && w == SIM_WIRE_OVERSIZE_EVENT)
            sim_reply_oversize_event(r); /* after output: the client sees it end the stream */
    }
    for (size_t i = 0; i < a->n_arg_pieces && !legacy; i++) {
        d = cJSON_CreateObject();
        cJSON *tc = cJSON_CreateObject();
        cJSON_AddNumberToObject(tc, "index", 0);
        cJSON_AddStringToObject(cJSON_AddObjectToObject(tc, "function"), "arguments",
                                a->arg_pieces[i]);
        cJSON_AddItemToArray(cJSON_AddArrayToObject(d, "tool_calls"), tc);
        sim_reply_sse(r, true, NULL, chunk(id, q, d, NULL), "\n");
    }
    sim_reply_sse(r, false, NULL,
                  chunk(id, q, cJSON_CreateObject(), legacy ? "tool" : finish_name(a->finish)),
                  "\n");
    if (q->include_usage && !rq->beh.omit_usage) {
        cJSON *u = chunk(id, q, NULL, NULL);
        cJSON_ReplaceItemInObjectCaseSensitive(u, "usage", usage_json(a));
        sim_reply_sse(r, false, NULL, u, "\n");
    }
    stream_end(rq, r);
}

static void chat(const struct sim_request *rq, struct sim_reply *r)
{
    struct oa_req q;
    struct sim_answer a;
    memset(&q, 0, sizeof q);
    sim_prompt_init(&q.p);
    cJSON *doc = cJSON_ParseWithLength(rq->body, rq->body_len);
    if (!cJSON_IsObject(doc)) {
        oa_error(r, 400, NULL,
                 "We could not parse the JSON body of your request. (HINT: This likely means "
                 "you aren't using your HTTP library correctly. The OpenAI API expects a JSON "
                 "payload, but what was sent was not valid JSON.)");
        goto out;
    }
    if (!top_level(&q, doc)) {
        oa_error_param(r, 400, q.param, q.code, q.msg);
        goto out;
    }
    long tokens = sim_prompt_tokens(&q.p);
    if (rq->beh.context_window > 0 && tokens > rq->beh.context_window) {
        snprintf(q.msg, sizeof q.msg,
                 "This model's maximum context length is %ld tokens. However, your messages "
                 "resulted in %ld tokens. Please reduce the length of the messages.",
                 rq->beh.context_window, tokens);
        oa_error_param(r, 400, "messages", "context_length_exceeded", q.msg);
        goto out;
    }
    sim_answer_build(&a, &q.p, rq->srv->cfg.name, &rq->beh);
    if (q.stream)
        render_stream(rq, &q, &a, r);
    else
        render_json(rq, &q, &a, r);
    sim_answer_cleanup(&a);
    char rid[40];
    sim_make_id(rid, sizeof rid, "req_", sim_nonce(), 24);
    sim_reply_header(r, "x-request-id", "%s", rid);
    sim_reply_header(r, "x-ratelimit-limit-requests", "10000");
    sim_reply_header(r, "x-ratelimit-remaining-requests", "9999");
    sim_reply_header(r, "x-ratelimit-reset-requests", "6ms");
    sim_reply_header(r, "x-ratelimit-limit-tokens", "2000000");
    sim_reply_header(r, "x-ratelimit-remaining-tokens", "%ld", 2000000 - tokens);
    sim_reply_header(r, "x-ratelimit-reset-tokens", "1ms");
out:
    cJSON_Delete(doc);
    sim_prompt_cleanup(&q.p);
}

static cJSON *model_json(const char *id)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", id);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", 1700000000);
    cJSON_AddStringToObject(m, "owned_by", "switchboard-sim");
    return m;
}

static void oa_serve(const struct sim_request *rq, struct sim_reply *r)
{
    bool get = str_eq(rq->method, "GET");
    char msg[300];
    if (str_eq(rq->path, "/v1/chat/completions") && str_eq(rq->method, "POST")) {
        chat(rq, r);
    } else if (str_eq(rq->path, "/v1/models") && get) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "object", "list");
        cJSON_AddItemToArray(cJSON_AddArrayToObject(doc, "data"),
                             model_json(rq->srv->cfg.model_default));
        sim_reply_json(r, 200, doc);
    } else if (str_has_prefix(rq->path, "/v1/models/") && rq->path[11] && get) {
        sim_reply_json(r, 200, model_json(rq->path + 11));
    } else {
        snprintf(msg, sizeof msg, "Invalid URL (%s %s)", rq->method, rq->path);
        oa_error(r, str_eq(rq->path, "/v1/chat/completions") ? 405 : 404, "unknown_url", msg);
    }
}

const struct sim_format sim_openai = {
    .name = "openai",
    .auth_ok = oa_auth_ok,
    .error = oa_error,
    .rate_limited = oa_rate_limited,
    .serve = oa_serve,
};
