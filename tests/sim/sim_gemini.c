/*
 * sim_gemini.c - the Gemini (Generative Language API v1beta) wire format:
 * POST /v1beta/models/{model}:generateContent, :streamGenerateContent (?alt=sse: SSE with
 * "\r\n\r\n" framing; without it a JSON array), :countTokens, GET /v1beta/models[/{model}],
 * errors {"error":{"code","message","status"}}.
 *
 * Checks what generativelanguage.googleapis.com checks: unknown fields (camelCase or
 * snake_case proto names), roles user/model only, non-empty parts with one data field,
 * Struct-typed args/response, function schemas limited to the OpenAPI subset, and thought
 * signatures: every functionCall it answers carries one; one sent back must be one it gave
 * (or "skip_thought_signature_validator"), and a gemini-3* model rejects a model turn whose
 * first function call has none. Stateless.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define MODELS_PREFIX "/v1beta/models/"

struct gm_req {
    struct sim_prompt p;
    const char *forced; /* allowedFunctionNames[0] under mode ANY */
    bool gemini3;       /* the model demands thought signatures on function calls */
    char msg[512];
};

/* The thought signature the sim gives a function call (base64-looking, with '+', '/', '='),
 * and the value Google documents for calls that never had one. */
#define GM_SKIP_SIGNATURE "skip_thought_signature_validator"

static void gm_signature(char *out, size_t n, const char *name)
{
    snprintf(out, n, "CiQsim+%s/sig==", name);
}

static const char *const top_keys[] = {
    "contents",       "systemInstruction", "tools",  "toolConfig", "generationConfig",
    "safetySettings", "cachedContent",     "labels", "model"};
static const char *const part_keys[] = {
    "text",           "inlineData",          "fileData", "functionCall",     "functionResponse",
    "executableCode", "codeExecutionResult", "thought",  "thoughtSignature", "videoMetadata",
    "partMetadata"};
static const char *const part_data[] = {
    "text",           "inlineData",         "fileData", "functionCall", "functionResponse",
    "executableCode", "codeExecutionResult"};
static const char *const decl_keys[] = {
    "name",     "description",        "parameters", "parametersJsonSchema",
    "response", "responseJsonSchema", "behavior"};
static const char *const tool_keys[] = {
    "functionDeclarations", "googleSearch", "googleSearchRetrieval", "codeExecution", "urlContext",
    "computerUse",          "fileSearch"};
static const char *const schema_keys[] = {
    "type",      "format",    "title",      "description", "nullable",      "enum",
    "maxItems",  "minItems",  "properties", "required",    "minProperties", "maxProperties",
    "minLength", "maxLength", "pattern",    "example",     "anyOf",         "propertyOrdering",
    "default",   "items",     "minimum",    "maximum"};
static const char *const gen_keys[] = {"stopSequences",
                                       "responseMimeType",
                                       "responseSchema",
                                       "responseJsonSchema",
                                       "candidateCount",
                                       "maxOutputTokens",
                                       "temperature",
                                       "topP",
                                       "topK",
                                       "seed",
                                       "presencePenalty",
                                       "frequencyPenalty",
                                       "responseLogprobs",
                                       "logprobs",
                                       "thinkingConfig",
                                       "responseModalities",
                                       "speechConfig",
                                       "mediaResolution",
                                       "enableEnhancedCivicAnswers"};

static bool fail(struct gm_req *q, const char *fmt, ...) SB_PRINTF(2, 3);

static bool fail(struct gm_req *q, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q->msg, sizeof q->msg, fmt, ap);
    va_end(ap);
    return false;
}

static const char *gm_status(int status)
{
    switch (status) {
    case 400:
    case 413:
        return "INVALID_ARGUMENT";
    case 401:
        return "UNAUTHENTICATED";
    case 403:
        return "PERMISSION_DENIED";
    case 404:
        return "NOT_FOUND";
    case 429:
        return "RESOURCE_EXHAUSTED";
    case 500:
        return "INTERNAL";
    case 503:
        return "UNAVAILABLE";
    case 504:
        return "DEADLINE_EXCEEDED";
    default:
        return status >= 500 ? "UNKNOWN" : "FAILED_PRECONDITION";
    }
}

static const char *gm_default_message(int status)
{
    switch (status) {
    case 401:
        return "API key not valid. Please pass a valid API key.";
    case 404:
        return "Requested entity was not found.";
    case 429:
        return "Resource has been exhausted (e.g. check quota).";
    case 500:
        return "An internal error has occurred. Please retry or report in "
               "https://developers.generativeai.google/guide/troubleshooting";
    case 503:
        return "The model is overloaded. Please try again later.";
    case 504:
        return "Deadline expired before operation could complete.";
    default:
        return status >= 500 ? "Internal error encountered."
                             : "Request contains an invalid "
                               "argument.";
    }
}

static cJSON *error_doc(int status, const char *msg)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(doc, "error");
    cJSON_AddNumberToObject(e, "code", status);
    cJSON_AddStringToObject(e, "message", msg ? msg : gm_default_message(status));
    cJSON_AddStringToObject(e, "status", gm_status(status));
    return doc;
}

static void gm_error(struct sim_reply *r, int status, const char *code, const char *msg)
{
    (void)code;
    sim_reply_json(r, status, error_doc(status, msg));
}

static bool gm_auth_ok(const struct sim_request *rq)
{
    const char *key = sim_req_header(rq, "x-goog-api-key");
    return sim_key_ok(rq, key ? key : sim_req_query(rq, "key"));
}

static void gm_rate_limited(const struct sim_request *rq, struct sim_reply *r)
{
    cJSON *doc = error_doc(rq->beh.rate_limit_status,
                           "You exceeded your current quota, please check your plan and "
                           "billing details.");
    cJSON *details = cJSON_AddArrayToObject(cJSON_GetObjectItem(doc, "error"), "details");
    cJSON *info = cJSON_CreateObject();
    char delay[32];
    snprintf(delay, sizeof delay, "%gs", rq->beh.rate_limit_retry_after_s);
    cJSON_AddStringToObject(info, "@type", "type.googleapis.com/google.rpc.RetryInfo");
    cJSON_AddStringToObject(info, "retryDelay", delay);
    cJSON_AddItemToArray(details, info);
    sim_reply_json(r, rq->beh.rate_limit_status, doc);
}

/* ---- request parsing -------------------------------------------------------------------- */

/* Whether key is the camelCase name or its snake_case proto form. */
static bool key_is(const char *key, const char *camel)
{
    while (*key && *camel) {
        if (*key == '_' && isupper((unsigned char)*camel)) {
            key++;
            if (*key != tolower((unsigned char)*camel))
                return false;
        } else if (*key != *camel) {
            return false;
        }
        key++;
        camel++;
    }
    return !*key && !*camel;
}

static const cJSON *get(const cJSON *obj, const char *camel)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, obj)
    {
        if (it->string && key_is(it->string, camel))
            return it;
    }
    return NULL;
}

/* Fails on the first member of obj not in keys[]. */
static bool known_keys(struct gm_req *q, const cJSON *obj, const char *const *keys, size_t n,
                       const char *where)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, obj)
    {
        bool ok = false;
        for (size_t k = 0; k < n && !ok; k++)
            ok = it->string && key_is(it->string, keys[k]);
        if (!ok)
            return fail(q,
                        "Invalid JSON payload received. Unknown name \"%s\"%s%s%s: Cannot "
                        "find field.",
                        it->string ? it->string : "", *where ? " at '" : "", where,
                        *where ? "'" : "");
    }
    return true;
}

static bool struct_value(struct gm_req *q, const cJSON *v, const char *where)
{
    if (!v || cJSON_IsObject(v))
        return true;
    char *text = cJSON_PrintUnformatted(v);
    bool ok = fail(q, "Invalid value at '%s' (type.googleapis.com/google.protobuf.Struct), %s",
                   where, text ? text : "");
    cJSON_free(text);
    return ok;
}

static bool part(struct gm_req *q, const cJSON *pt, size_t i, size_t j, struct buf *text)
{
    char where[96];
    size_t data = 0;
    snprintf(where, sizeof where, "contents[%zu].parts[%zu]", i, j);
    if (!cJSON_IsObject(pt))
        return fail(q,
                    "Invalid value at '%s' (type.googleapis.com/google.ai.generativelanguage."
                    "v1beta.Part), %s",
                    where, sim_json_type(pt));
    if (!known_keys(q, pt, part_keys, SB_ARRAY_LEN(part_keys), where))
        return false;
    for (size_t k = 0; k < SB_ARRAY_LEN(part_data); k++)
        data += get(pt, part_data[k]) != NULL;
    if (data != 1)
        return fail(q,
                    "* GenerateContentRequest.%s.data: required oneof field 'data' must have "
                    "one initialized field\n",
                    where);
    const cJSON *t = get(pt, "text");
    const cJSON *fc = get(pt, "functionCall");
    const cJSON *fr = get(pt, "functionResponse");
    if (t) {
        if (!cJSON_IsString(t))
            return fail(q, "Invalid value at '%s.text' (TYPE_STRING), %s", where, sim_json_type(t));
        if (text->len)
            buf_putc(text, '\n');
        buf_puts(text, t->valuestring);
    }
    const cJSON *fn = fc ? fc : fr;
    if (fn) {
        char sub[128];
        const char *name = sim_json_str(fn, "name");
        if (!name || !*name)
            return fail(q, "* GenerateContentRequest.%s.%s.name: Name cannot be empty.\n", where,
                        fc ? "function_call" : "function_response");
        snprintf(sub, sizeof sub, "%s.%s", where,
                 fc ? "function_call.args" : "function_response.response");
        const cJSON *v = get(fn, fc ? "args" : "response");
        if (!struct_value(q, v, sub))
            return false;
        sim_prompt_count_json(&q->p, v);
        if (fr) {
            char *printed = cJSON_PrintUnformatted(v ? v : fr);
            free(q->p.tool_result);
            q->p.tool_result = xstrdup(printed ? printed : "{}");
            cJSON_free(printed);
        }
    }
    return true;
}

/* Thought signatures on a model turn's function calls, as Gemini checks them: one that is
 * there must be one we gave for that function (or the documented skip value), and a Gemini 3
 * model rejects a turn whose first function call has none. */
static bool signatures(struct gm_req *q, const cJSON *parts, size_t i)
{
    const cJSON *pt;
    bool first = true;
    cJSON_ArrayForEach(pt, parts)
    {
        const cJSON *fc = get(pt, "functionCall");
        const char *sig = sim_json_str(pt, "thoughtSignature");
        char want[160];
        if (!fc)
            continue;
        const char *name = sim_json_str(fc, "name") ? sim_json_str(fc, "name") : "";
        gm_signature(want, sizeof want, name);
        if (sig && !str_eq(sig, want) && !str_eq(sig, GM_SKIP_SIGNATURE))
            return fail(q, "Corrupted thought signature.");
        if (!sig && first && q->gemini3)
            return fail(q,
                        "Function call is missing a thought_signature in functionCall parts. "
                        "This is required for tools to work correctly, and missing "
                        "thought_signature may lead to degraded model performance. Additional "
                        "data, function call `default_api:%s` , position %zu. Please refer to "
                        "https://ai.google.dev/gemini-api/docs/thought-signatures for more "
                        "details.",
                        name, i + 1);
        first = false;
    }
    return true;
}

static bool contents(struct gm_req *q, const cJSON *cs)
{
    size_t i = 0;
    const cJSON *c;
    if (!cJSON_IsArray(cs) || cJSON_GetArraySize(cs) == 0)
        return fail(q, "* GenerateContentRequest.contents: contents is not specified\n");
    cJSON_ArrayForEach(c, cs)
    {
        const cJSON *role = get(c, "role");
        const cJSON *parts = get(c, "parts");
        size_t j = 0;
        char where[32];
        snprintf(where, sizeof where, "contents[%zu]", i);
        if (!cJSON_IsObject(c))
            return fail(q, "Invalid value at '%s', %s", where, sim_json_type(c));
        if (!known_keys(q, c, (const char *const[]){"role", "parts"}, 2, where))
            return false;
        if (role && (!cJSON_IsString(role) ||
                     (!str_eq(role->valuestring, "user") && !str_eq(role->valuestring, "model"))))
            return fail(q, "Please use a valid role: user, model.");
        if (!cJSON_IsArray(parts) || cJSON_GetArraySize(parts) == 0)
            return fail(q,
                        "* GenerateContentRequest.contents[%zu].parts: contents.parts must "
                        "not be empty.\n",
                        i);
        struct buf text;
        const cJSON *pt;
        bool ok = true;
        buf_init(&text);
        free(q->p.tool_result);
        q->p.tool_result = NULL;
        cJSON_ArrayForEach(pt, parts)
        {
            if (!(ok = part(q, pt, i, j++, &text)))
                break;
        }
        bool user = !role || str_eq(role->valuestring, "user");
        if (ok && !user)
            ok = signatures(q, parts, i);
        if (ok && user && text.len) {
            free(q->p.last_user);
            q->p.last_user = xstrdup(buf_str(&text));
        }
        sim_prompt_count(&q->p, buf_str(&text));
        buf_cleanup(&text);
        if (!ok)
            return false;
        i++;
    }
    return true;
}

static bool schema(struct gm_req *q, const cJSON *s, const char *where, int depth)
{
    char sub[256];
    const cJSON *it;
    if (!s)
        return true;
    if (!cJSON_IsObject(s) || depth > 16)
        return fail(q,
                    "Invalid value at '%s' (type.googleapis.com/google.ai.generativelanguage."
                    "v1beta.Schema), %s",
                    where, sim_json_type(s));
    if (!known_keys(q, s, schema_keys, SB_ARRAY_LEN(schema_keys), where))
        return false;
    cJSON_ArrayForEach(it, get(s, "properties"))
    {
        snprintf(sub, sizeof sub, "%s.properties[%s].value", where, it->string);
        if (!schema(q, it, sub, depth + 1))
            return false;
    }
    snprintf(sub, sizeof sub, "%s.items", where);
    if (!schema(q, get(s, "items"), sub, depth + 1))
        return false;
    size_t k = 0;
    cJSON_ArrayForEach(it, get(s, "anyOf"))
    {
        snprintf(sub, sizeof sub, "%s.any_of[%zu]", where, k++);
        if (!schema(q, it, sub, depth + 1))
            return false;
    }
    return true;
}

static bool declaration(struct gm_req *q, const cJSON *d, size_t i, size_t j)
{
    char where[96];
    const char *name = sim_json_str(d, "name");
    snprintf(where, sizeof where, "tools[%zu].function_declarations[%zu]", i, j);
    if (!known_keys(q, d, decl_keys, SB_ARRAY_LEN(decl_keys), where))
        return false;
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 64 || !(isalpha((unsigned char)name[0]) || name[0] == '_') ||
        strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-") != n)
        return fail(q,
                    "* GenerateContentRequest.%s.name: Invalid function name. Must start "
                    "with a letter or an underscore. Must be alphameric (a-z, A-Z, 0-9), "
                    "underscores (_), dots (.), colons (:), or dashes (-), with a maximum "
                    "length of 64.\n",
                    where);
    const cJSON *params = get(d, "parameters");
    snprintf(where + strlen(where), sizeof where - strlen(where), ".parameters");
    if (!schema(q, params, where, 0))
        return false;
    sim_prompt_count_json(&q->p, d);
    bool chosen = q->forced ? str_eq(q->forced, name) : !q->p.tool_name;
    if (chosen && !q->p.tool_name) {
        q->p.tool_name = xstrdup(name);
        q->p.tool_has_city = sim_schema_has_city(params ? params : get(d, "parametersJsonSchema"));
    }
    return true;
}

static bool tool_config(struct gm_req *q, const cJSON *tc)
{
    const cJSON *fcc = get(tc, "functionCallingConfig");
    const char *mode = sim_json_str(fcc, "mode");
    if (!fcc)
        return true;
    if (mode && str_eq(mode, "ANY")) {
        q->p.force_tool = true;
        const cJSON *allowed = get(fcc, "allowedFunctionNames");
        const cJSON *first = cJSON_GetArrayItem(allowed, 0);
        q->forced = cJSON_IsString(first) ? first->valuestring : NULL;
    } else if (mode && str_eq(mode, "NONE")) {
        q->p.tools_off = true;
    } else if (mode && !str_eq(mode, "AUTO") && !str_eq(mode, "VALIDATED") &&
               !str_eq(mode, "MODE_UNSPECIFIED")) {
        return fail(q,
                    "Invalid value at 'tool_config.function_calling_config.mode' "
                    "(type.googleapis.com/google.ai.generativelanguage.v1beta."
                    "FunctionCallingConfig.Mode), \"%s\"",
                    mode);
    }
    return true;
}

static bool tools(struct gm_req *q, const cJSON *tl)
{
    size_t i = 0;
    const cJSON *t;
    if (!tl)
        return true;
    if (!cJSON_IsArray(tl))
        return fail(q,
                    "Invalid value at 'tools' (type.googleapis.com/google.ai."
                    "generativelanguage.v1beta.Tool), %s",
                    sim_json_type(tl));
    cJSON_ArrayForEach(t, tl)
    {
        char where[32];
        size_t j = 0;
        const cJSON *d;
        snprintf(where, sizeof where, "tools[%zu]", i);
        if (!known_keys(q, t, tool_keys, SB_ARRAY_LEN(tool_keys), where))
            return false;
        cJSON_ArrayForEach(d, get(t, "functionDeclarations"))
        {
            if (!declaration(q, d, i, j++))
                return false;
        }
        i++;
    }
    if (q->forced && !q->p.tool_name)
        return fail(q,
                    "* GenerateContentRequest.tool_config.function_calling_config."
                    "allowed_function_names: function \"%s\" is not declared\n",
                    q->forced);
    return true;
}

static bool top_level(struct gm_req *q, const cJSON *doc)
{
    if (!known_keys(q, doc, top_keys, SB_ARRAY_LEN(top_keys), ""))
        return false;
    const cJSON *gen = get(doc, "generationConfig");
    if (gen && !known_keys(q, gen, gen_keys, SB_ARRAY_LEN(gen_keys), "generation_config"))
        return false;
    const cJSON *mt = get(gen, "maxOutputTokens");
    if (mt && (!sim_json_is_int(mt) || mt->valuedouble < 1))
        return fail(q, "* GenerateContentRequest.generation_config.max_output_tokens: "
                       "max_output_tokens must be positive.\n");
    q->p.max_tokens = mt ? (long)mt->valuedouble : 0;
    const cJSON *sys = get(doc, "systemInstruction");
    const cJSON *pt;
    cJSON_ArrayForEach(pt, get(sys, "parts"))
    {
        sim_prompt_count(&q->p, sim_json_str(pt, "text"));
    }
    if (!tool_config(q, get(doc, "toolConfig")) || !tools(q, get(doc, "tools")))
        return false;
    return contents(q, get(doc, "contents"));
}

/* ---- answers ---------------------------------------------------------------------------- */

static cJSON *usage_json(const struct sim_answer *a, bool final)
{
    cJSON *u = cJSON_CreateObject();
    long total = a->prompt_tokens + (final ? a->completion_tokens : 0);
    cJSON_AddNumberToObject(u, "promptTokenCount", (double)a->prompt_tokens);
    if (final)
        cJSON_AddNumberToObject(u, "candidatesTokenCount", (double)a->completion_tokens);
    cJSON_AddNumberToObject(u, "totalTokenCount", (double)total);
    if (a->cached_tokens > 0)
        cJSON_AddNumberToObject(u, "cachedContentTokenCount", (double)a->cached_tokens);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "modality", "TEXT");
    cJSON_AddNumberToObject(d, "tokenCount", (double)a->prompt_tokens);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(u, "promptTokensDetails"), d);
    return u;
}

/* One GenerateContentResponse with a single part (taken over). */
static cJSON *response(const struct sim_request *rq, const char *model, const char *id,
                       const struct sim_answer *a, cJSON *pt, const char *finish, bool final)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON *cand = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(doc, "candidates"), cand);
    cJSON *content = cJSON_AddObjectToObject(cand, "content");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(content, "parts"), pt);
    cJSON_AddStringToObject(content, "role", "model");
    if (finish)
        cJSON_AddStringToObject(cand, "finishReason", finish);
    cJSON_AddNumberToObject(cand, "index", 0);
    if (!rq->beh.omit_usage)
        cJSON_AddItemToObject(doc, "usageMetadata", usage_json(a, final));
    cJSON_AddStringToObject(doc, "modelVersion", model);
    cJSON_AddStringToObject(doc, "responseId", id);
    return doc;
}

static cJSON *text_part(const char *text)
{
    cJSON *pt = cJSON_CreateObject();
    cJSON_AddStringToObject(pt, "text", text);
    return pt;
}

static cJSON *call_part(const struct sim_answer *a)
{
    cJSON *pt = cJSON_CreateObject();
    cJSON *fc = cJSON_AddObjectToObject(pt, "functionCall");
    char sig[160];
    cJSON_AddStringToObject(fc, "name", a->tool_name);
    cJSON_AddItemToObject(fc, "args", cJSON_Parse(a->tool_args));
    gm_signature(sig, sizeof sig, a->tool_name);
    cJSON_AddStringToObject(pt, "thoughtSignature", sig);
    return pt;
}

/* Stream chunks: one per piece (or the call), then a final one with finishReason + usage. */
static void chunks(const struct sim_request *rq, const char *model, const struct sim_answer *a,
                   struct sim_reply *r, cJSON *array)
{
    char id[32];
    const char *finish = a->finish == SIM_FINISH_LENGTH ? "MAX_TOKENS" : "STOP";
    sim_make_id(id, sizeof id, "", sim_nonce(), 22);
    size_t n = a->finish == SIM_FINISH_TOOL ? 1 : a->n_pieces;
    for (size_t i = 0; i <= n; i++) {
        bool final = i == n;
        if (final && !array && rq->beh.wire == SIM_WIRE_OVERSIZE_EVENT)
            sim_reply_oversize_event(r);
        cJSON *pt = final ? text_part("")
                          : (a->finish == SIM_FINISH_TOOL ? call_part(a) : text_part(a->pieces[i]));
        cJSON *doc = response(rq, model, id, a, pt, final ? finish : NULL, final);
        if (array)
            cJSON_AddItemToArray(array, doc);
        else
            sim_reply_sse(r, !final, NULL, doc, "\r\n");
    }
}

/* The one response of a blocked answer: wire refusal -> a candidate stopped for SAFETY with no
 * content; prompt_blocked(_silent) -> no candidates, a promptFeedback with (without) a
 * blockReason. NULL for other behaviours. */
static cJSON *blocked_response(const struct sim_request *rq, const char *model,
                               const struct sim_answer *a)
{
    enum sim_wire w = rq->beh.wire;
    if (w != SIM_WIRE_REFUSAL && w != SIM_WIRE_PROMPT_BLOCKED &&
        w != SIM_WIRE_PROMPT_BLOCKED_SILENT)
        return NULL;
    cJSON *doc = cJSON_CreateObject();
    cJSON *rating = cJSON_CreateObject();
    cJSON_AddStringToObject(rating, "category", "HARM_CATEGORY_DANGEROUS_CONTENT");
    cJSON_AddStringToObject(rating, "probability", "HIGH");
    if (w == SIM_WIRE_REFUSAL) {
        cJSON *cand = cJSON_CreateObject();
        cJSON_AddItemToArray(cJSON_AddArrayToObject(doc, "candidates"), cand);
        cJSON_AddStringToObject(cand, "finishReason", "SAFETY");
        cJSON_AddNumberToObject(cand, "index", 0);
        cJSON_AddItemToArray(cJSON_AddArrayToObject(cand, "safetyRatings"), rating);
    } else {
        cJSON *fb = cJSON_AddObjectToObject(doc, "promptFeedback");
        if (w == SIM_WIRE_PROMPT_BLOCKED)
            cJSON_AddStringToObject(fb, "blockReason", "SAFETY");
        cJSON_AddItemToArray(cJSON_AddArrayToObject(fb, "safetyRatings"), rating);
    }
    if (!rq->beh.omit_usage)
        cJSON_AddItemToObject(doc, "usageMetadata", usage_json(a, false));
    cJSON_AddStringToObject(doc, "modelVersion", model);
    return doc;
}

static void generate(const struct sim_request *rq, struct sim_reply *r, const char *model,
                     const char *method)
{
    struct gm_req q;
    struct sim_answer a;
    memset(&q, 0, sizeof q);
    sim_prompt_init(&q.p);
    q.gemini3 = str_has_prefix(model, "gemini-3");
    cJSON *doc = cJSON_ParseWithLength(rq->body, rq->body_len);
    if (!cJSON_IsObject(doc)) {
        gm_error(r, 400, NULL, "Invalid JSON payload received. Unexpected token.");
        goto out;
    }
    const cJSON *inner = get(doc, "generateContentRequest");
    bool ok = str_eq(method, "countTokens") && inner ? top_level(&q, inner) : top_level(&q, doc);
    if (!ok) {
        gm_error(r, 400, NULL, q.msg);
        goto out;
    }
    long tokens = sim_prompt_tokens(&q.p);
    if (rq->beh.context_window > 0 && tokens > rq->beh.context_window) {
        snprintf(q.msg, sizeof q.msg,
                 "The input token count (%ld) exceeds the maximum number of tokens allowed "
                 "(%ld).",
                 tokens, rq->beh.context_window);
        gm_error(r, 400, NULL, q.msg);
        goto out;
    }
    if (str_eq(method, "countTokens")) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddNumberToObject(c, "totalTokens", (double)tokens);
        sim_reply_json(r, 200, c);
        goto out;
    }
    sim_answer_build(&a, &q.p, rq->srv->cfg.name, &rq->beh);
    cJSON *blocked = blocked_response(rq, model, &a);
    bool sse = str_eq(sim_req_query(rq, "alt"), "sse");
    if (blocked && str_eq(method, "generateContent")) {
        sim_reply_json(r, 200, blocked);
    } else if (blocked && sse) {
        sim_reply_stream(r);
        sim_reply_sse(r, false, NULL, blocked, "\r\n");
    } else if (blocked) {
        cJSON *array = cJSON_CreateArray();
        cJSON_AddItemToArray(array, blocked);
        sim_reply_json(r, 200, array);
    } else if (str_eq(method, "generateContent")) {
        char id[32];
        sim_make_id(id, sizeof id, "", sim_nonce(), 22);
        cJSON *pt = a.finish == SIM_FINISH_TOOL ? call_part(&a) : text_part(a.text);
        const char *finish = a.finish == SIM_FINISH_LENGTH ? "MAX_TOKENS" : "STOP";
        sim_reply_json(r, 200, response(rq, model, id, &a, pt, finish, true));
    } else if (sse) {
        sim_reply_stream(r);
        chunks(rq, model, &a, r, NULL);
        if (rq->beh.wire == SIM_WIRE_TRAILING_ERROR)
            sim_reply_trailing_error(r);
    } else {
        cJSON *array = cJSON_CreateArray();
        chunks(rq, model, &a, r, array);
        sim_reply_json(r, 200, array);
    }
    sim_answer_cleanup(&a);
out:
    cJSON_Delete(doc);
    sim_prompt_cleanup(&q.p);
}

static cJSON *model_json(const struct sim_request *rq, const char *name)
{
    char full[256];
    snprintf(full, sizeof full, "models/%s", name);
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "name", full);
    cJSON_AddStringToObject(m, "version", "001");
    cJSON_AddStringToObject(m, "displayName", name);
    cJSON_AddStringToObject(m, "description", "switchboard-sim model");
    long window = rq->beh.context_window > 0 ? rq->beh.context_window : 1048576;
    cJSON_AddNumberToObject(m, "inputTokenLimit", (double)window);
    cJSON_AddNumberToObject(m, "outputTokenLimit", 8192);
    cJSON *methods = cJSON_AddArrayToObject(m, "supportedGenerationMethods");
    cJSON_AddItemToArray(methods, cJSON_CreateString("generateContent"));
    cJSON_AddItemToArray(methods, cJSON_CreateString("countTokens"));
    return m;
}

static void gm_serve(const struct sim_request *rq, struct sim_reply *r)
{
    bool get_m = str_eq(rq->method, "GET"), post = str_eq(rq->method, "POST");
    const char *rest =
        str_has_prefix(rq->path, MODELS_PREFIX) ? rq->path + strlen(MODELS_PREFIX) : NULL;
    const char *colon = rest ? strrchr(rest, ':') : NULL;
    if (str_eq(rq->path, "/v1beta/models") && get_m) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddItemToArray(cJSON_AddArrayToObject(doc, "models"),
                             model_json(rq, rq->srv->cfg.model_default));
        sim_reply_json(r, 200, doc);
    } else if (rest && *rest && !colon && get_m) {
        sim_reply_json(r, 200, model_json(rq, rest));
    } else if (rest && colon && colon > rest && post &&
               (str_eq(colon + 1, "generateContent") ||
                str_eq(colon + 1, "streamGenerateContent") || str_eq(colon + 1, "countTokens"))) {
        char *model = xstrndup(rest, (size_t)(colon - rest));
        generate(rq, r, model, colon + 1);
        free(model);
    } else {
        gm_error(r, 404, NULL, NULL);
    }
}

const struct sim_format sim_gemini = {
    .name = "gemini",
    .auth_ok = gm_auth_ok,
    .error = gm_error,
    .rate_limited = gm_rate_limited,
    .serve = gm_serve,
};
