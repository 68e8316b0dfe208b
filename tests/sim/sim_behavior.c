/*
 * sim_behavior.c - the simulator's fault behaviour: one table of keys drives JSON patches
 * (scenario files and POST /_sim/behavior), command-line flags, the JSON dump and --help.
 *
 * Pure functions on caller-owned structs; no locking here (sim_control.c holds the server lock
 * around a patch).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

enum sim_key_type {
    SIM_KEY_RATE,     /* double 0..1 */
    SIM_KEY_STATUSES, /* array of HTTP statuses */
    SIM_KEY_RATELIM,  /* {"status":429,"retry_after_s":5} or null/false */
    SIM_KEY_OUTAGE,   /* "none" | "refuse" | "503" | "overloaded" */
    SIM_KEY_BOOL,
    SIM_KEY_LONG,         /* integer >= 0 */
    SIM_KEY_LONG_OR_NULL, /* integer >= 0, or null for off (stored as -1) */
    SIM_KEY_SEED,         /* integer, or null for a time-based seed */
    SIM_KEY_WIRE,         /* one of sim_wire_names */
    SIM_KEY_PERSONA,      /* one of sim_persona_names */
};

struct sim_key {
    const char *name;
    enum sim_key_type type;
    size_t offset;
    long max;
    const char *help;
};

#define OFF(field) offsetof(struct sim_behavior, field)

static const struct sim_key sim_keys[] = {
    {"error_rate", SIM_KEY_RATE, OFF(error_rate), 1,
     "share of requests (0..1) answered with an error"},
    {"error_statuses", SIM_KEY_STATUSES, OFF(error_statuses), 599,
     "statuses picked for error_rate, e.g. [500,503]"},
    {"rate_limit", SIM_KEY_RATELIM, OFF(rate_limit), 0,
     "{\"status\":429,\"retry_after_s\":5}: every request is rate limited; null clears"},
    {"outage", SIM_KEY_OUTAGE, OFF(outage), 0,
     "none | refuse (port closed) | 503 | overloaded (Anthropic 529)"},
    {"hang", SIM_KEY_BOOL, OFF(hang), 0, "read the request, never answer"},
    {"first_byte_delay_ms", SIM_KEY_LONG, OFF(first_byte_delay_ms), 3600000,
     "delay before any answer"},
    {"cut_after_tokens", SIM_KEY_LONG_OR_NULL, OFF(cut_after_tokens), 1000000,
     "drop the connection after N streamed pieces (non-stream: truncated body); null = off"},
    {"stall_after_tokens", SIM_KEY_LONG_OR_NULL, OFF(stall_after_tokens), 1000000,
     "stop sending after N streamed pieces but keep the connection open; null = off"},
    {"spare_models", SIM_KEY_BOOL, OFF(spare_models), 0,
     "faults spare GET model lists: chat calls fail while probes of /models pass"},
    {"models_only", SIM_KEY_BOOL, OFF(models_only), 0,
     "faults hit only GET model lists (the health probes); chat calls are served"},
    {"malformed", SIM_KEY_BOOL, OFF(malformed), 0, "200 with broken JSON / broken SSE JSON"},
    {"wrong_content_type", SIM_KEY_BOOL, OFF(wrong_content_type), 0,
     "200 text/html instead of the real answer"},
    {"token_rate", SIM_KEY_LONG, OFF(token_rate), 1000000,
     "streamed pieces per second (0 = unpaced)"},
    {"context_window", SIM_KEY_LONG, OFF(context_window), 100000000,
     "prompt tokens over this get the context-length error (0 = unlimited)"},
    {"omit_usage", SIM_KEY_BOOL, OFF(omit_usage), 0, "leave usage out of answers"},
    {"seed", SIM_KEY_SEED, OFF(seed), 0, "seed for error_rate draws (null = time based)"},
    {"cached_tokens", SIM_KEY_LONG, OFF(cached_tokens), 100000000,
     "prompt tokens reported as cached"},
    {"wire", SIM_KEY_WIRE, OFF(wire), 0,
     "a provider behaviour: none | no_done | trailing_error | oversize_event | refusal | "
     "prompt_blocked | prompt_blocked_silent | reasoning | legacy_tools | ratelimit_resets"},
    {"persona", SIM_KEY_PERSONA, OFF(persona), 0,
     "how answers read: normal | terse (a few words) | truncated (cut half-way, finish "
     "length)"},
};

#undef OFF

static const char *const outage_names[] = {"none", "refuse", "503", "overloaded"};

const char *const sim_persona_names[SIM_PERSONA_COUNT] = {
    [SIM_PERSONA_NORMAL] = "normal",
    [SIM_PERSONA_TERSE] = "terse",
    [SIM_PERSONA_TRUNCATED] = "truncated",
};

const char *const sim_wire_names[SIM_WIRE_COUNT] = {
    [SIM_WIRE_NONE] = "none",
    [SIM_WIRE_NO_DONE] = "no_done",
    [SIM_WIRE_TRAILING_ERROR] = "trailing_error",
    [SIM_WIRE_OVERSIZE_EVENT] = "oversize_event",
    [SIM_WIRE_REFUSAL] = "refusal",
    [SIM_WIRE_PROMPT_BLOCKED] = "prompt_blocked",
    [SIM_WIRE_PROMPT_BLOCKED_SILENT] = "prompt_blocked_silent",
    [SIM_WIRE_REASONING] = "reasoning",
    [SIM_WIRE_LEGACY_TOOLS] = "legacy_tools",
    [SIM_WIRE_RATELIMIT_RESETS] = "ratelimit_resets",
};

void sim_behavior_defaults(struct sim_behavior *b)
{
    memset(b, 0, sizeof *b);
    b->error_statuses[0] = 500;
    b->error_statuses[1] = 503;
    b->n_error_statuses = 2;
    b->rate_limit_status = 429;
    b->rate_limit_retry_after_s = 1;
    b->outage = SIM_OUTAGE_NONE;
    b->wire = SIM_WIRE_NONE;
    b->cut_after_tokens = -1;
    b->stall_after_tokens = -1;
    b->token_rate = 200;
}

void sim_behavior_for_request(struct sim_behavior *b, bool is_model_list)
{
    bool in_scope = is_model_list ? !b->spare_models : !b->models_only;
    if (in_scope)
        return;
    b->error_rate = 0;
    b->rate_limit = false;
    if (b->outage != SIM_OUTAGE_REFUSE)
        b->outage = SIM_OUTAGE_NONE;
    b->hang = false;
    b->first_byte_delay_ms = 0;
    b->cut_after_tokens = -1;
    b->stall_after_tokens = -1;
    b->malformed = false;
    b->wrong_content_type = false;
}

static const struct sim_key *key_find(const char *name)
{
    for (size_t i = 0; i < SB_ARRAY_LEN(sim_keys); i++) {
        if (str_eq(sim_keys[i].name, name))
            return &sim_keys[i];
    }
    return NULL;
}

static bool set_statuses(struct sim_behavior *b, const cJSON *v, char *err, size_t n)
{
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0 ||
        cJSON_GetArraySize(v) > SIM_MAX_STATUSES) {
        snprintf(err, n, "error_statuses: expected an array of 1..%d HTTP statuses",
                 SIM_MAX_STATUSES);
        return false;
    }
    size_t count = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, v)
    {
        if (!sim_json_is_int(it) || it->valuedouble < 400 || it->valuedouble > 599) {
            snprintf(err, n, "error_statuses[%zu]: expected an HTTP status 400..599", count);
            return false;
        }
        b->error_statuses[count++] = (int)it->valuedouble;
    }
    b->n_error_statuses = count;
    return true;
}

static bool set_rate_limit(struct sim_behavior *b, const cJSON *v, char *err, size_t n)
{
    if (cJSON_IsNull(v) || cJSON_IsFalse(v)) {
        b->rate_limit = false;
        return true;
    }
    if (cJSON_IsTrue(v)) {
        b->rate_limit = true;
        return true;
    }
    if (!cJSON_IsObject(v)) {
        snprintf(err, n, "rate_limit: expected an object, true, false or null");
        return false;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, v)
    {
        if (str_eq(it->string, "status")) {
            if (!sim_json_is_int(it) || it->valuedouble < 400 || it->valuedouble > 599) {
                snprintf(err, n, "rate_limit.status: expected an HTTP status 400..599");
                return false;
            }
            b->rate_limit_status = (int)it->valuedouble;
        } else if (str_eq(it->string, "retry_after_s")) {
            if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble > 86400) {
                snprintf(err, n, "rate_limit.retry_after_s: expected a number 0..86400");
                return false;
            }
            b->rate_limit_retry_after_s = it->valuedouble;
        } else {
            snprintf(err, n, "rate_limit.%s: unknown key (status, retry_after_s)", it->string);
            return false;
        }
    }
    b->rate_limit = true;
    return true;
}

static bool set_long(const struct sim_key *k, struct sim_behavior *b, const cJSON *v, char *err,
                     size_t n)
{
    long *dst = (long *)((char *)b + k->offset);
    if (k->type == SIM_KEY_LONG_OR_NULL && cJSON_IsNull(v)) {
        *dst = -1;
        return true;
    }
    if (k->type == SIM_KEY_SEED) {
        if (cJSON_IsNull(v)) {
            b->has_seed = false;
            return true;
        }
        if (!sim_json_is_int(v) || fabs(v->valuedouble) > 9.0e15) {
            snprintf(err, n, "seed: expected an integer or null");
            return false;
        }
        b->has_seed = true;
        *dst = (long)v->valuedouble;
        return true;
    }
    if (!sim_json_is_int(v) || v->valuedouble < 0 || v->valuedouble > (double)k->max) {
        snprintf(err, n, "%s: expected an integer 0..%ld%s", k->name, k->max,
                 k->type == SIM_KEY_LONG_OR_NULL ? " or null" : "");
        return false;
    }
    *dst = (long)v->valuedouble;
    return true;
}

static bool set_key(const struct sim_key *k, struct sim_behavior *b, const cJSON *v, char *err,
                    size_t n)
{
    char *field = (char *)b + k->offset;
    switch (k->type) {
    case SIM_KEY_RATE:
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1) {
            snprintf(err, n, "%s: expected a number between 0 and 1", k->name);
            return false;
        }
        *(double *)(void *)field = v->valuedouble;
        return true;
    case SIM_KEY_STATUSES:
        return set_statuses(b, v, err, n);
    case SIM_KEY_RATELIM:
        return set_rate_limit(b, v, err, n);
    case SIM_KEY_OUTAGE:
        for (size_t i = 0; cJSON_IsString(v) && i < SB_ARRAY_LEN(outage_names); i++) {
            if (str_eq(v->valuestring, outage_names[i])) {
                b->outage = (enum sim_outage)i;
                return true;
            }
        }
        snprintf(err, n, "outage: expected \"none\", \"refuse\", \"503\" or \"overloaded\"");
        return false;
    case SIM_KEY_WIRE:
        for (size_t i = 0; cJSON_IsString(v) && i < SIM_WIRE_COUNT; i++) {
            if (str_eq(v->valuestring, sim_wire_names[i])) {
                b->wire = (enum sim_wire)i;
                return true;
            }
        }
        snprintf(err, n,
                 "wire: expected one of none, no_done, trailing_error, oversize_event, "
                 "refusal, prompt_blocked, prompt_blocked_silent, reasoning, "
                 "legacy_tools, ratelimit_resets");
        return false;
    case SIM_KEY_PERSONA:
        for (size_t i = 0; cJSON_IsString(v) && i < SIM_PERSONA_COUNT; i++) {
            if (str_eq(v->valuestring, sim_persona_names[i])) {
                b->persona = (enum sim_persona)i;
                return true;
            }
        }
        snprintf(err, n, "persona: expected normal, terse or truncated");
        return false;
    case SIM_KEY_BOOL:
        if (!cJSON_IsBool(v)) {
            snprintf(err, n, "%s: expected true or false", k->name);
            return false;
        }
        *(bool *)(void *)field = cJSON_IsTrue(v);
        return true;
    case SIM_KEY_LONG:
    case SIM_KEY_LONG_OR_NULL:
    case SIM_KEY_SEED:
        return set_long(k, b, v, err, n);
    }
    return false;
}

bool sim_behavior_patch(struct sim_behavior *b, const struct sim_behavior *reset_to,
                        const cJSON *patch, bool *seed_changed, char *err, size_t err_size)
{
    struct sim_behavior next = *b;
    *seed_changed = false;
    if (!cJSON_IsObject(patch)) {
        snprintf(err, err_size, "behavior: expected a JSON object");
        return false;
    }
    const cJSON *reset = cJSON_GetObjectItemCaseSensitive(patch, "reset");
    if (reset && !cJSON_IsBool(reset)) {
        snprintf(err, err_size, "reset: expected true or false");
        return false;
    }
    if (cJSON_IsTrue(reset)) {
        if (reset_to)
            next = *reset_to;
        else
            sim_behavior_defaults(&next);
        *seed_changed = true;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, patch)
    {
        if (str_eq(it->string, "reset"))
            continue;
        const struct sim_key *k = key_find(it->string);
        if (!k) {
            snprintf(err, err_size, "%s: unknown behavior key", it->string ? it->string : "?");
            return false;
        }
        if (!set_key(k, &next, it, err, err_size))
            return false;
        if (k->type == SIM_KEY_SEED)
            *seed_changed = true;
    }
    *b = next;
    return true;
}

char *sim_behavior_json(const struct sim_behavior *b)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "error_rate", b->error_rate);
    cJSON *st = cJSON_AddArrayToObject(o, "error_statuses");
    for (size_t i = 0; i < b->n_error_statuses; i++)
        cJSON_AddItemToArray(st, cJSON_CreateNumber(b->error_statuses[i]));
    if (b->rate_limit) {
        cJSON *rl = cJSON_AddObjectToObject(o, "rate_limit");
        cJSON_AddNumberToObject(rl, "status", b->rate_limit_status);
        cJSON_AddNumberToObject(rl, "retry_after_s", b->rate_limit_retry_after_s);
    } else {
        cJSON_AddNullToObject(o, "rate_limit");
    }
    cJSON_AddStringToObject(o, "outage", outage_names[b->outage]);
    cJSON_AddBoolToObject(o, "hang", b->hang);
    cJSON_AddNumberToObject(o, "first_byte_delay_ms", (double)b->first_byte_delay_ms);
    if (b->cut_after_tokens >= 0)
        cJSON_AddNumberToObject(o, "cut_after_tokens", (double)b->cut_after_tokens);
    else
        cJSON_AddNullToObject(o, "cut_after_tokens");
    if (b->stall_after_tokens >= 0)
        cJSON_AddNumberToObject(o, "stall_after_tokens", (double)b->stall_after_tokens);
    else
        cJSON_AddNullToObject(o, "stall_after_tokens");
    cJSON_AddBoolToObject(o, "spare_models", b->spare_models);
    cJSON_AddBoolToObject(o, "models_only", b->models_only);
    cJSON_AddBoolToObject(o, "malformed", b->malformed);
    cJSON_AddBoolToObject(o, "wrong_content_type", b->wrong_content_type);
    cJSON_AddNumberToObject(o, "token_rate", (double)b->token_rate);
    cJSON_AddNumberToObject(o, "context_window", (double)b->context_window);
    cJSON_AddBoolToObject(o, "omit_usage", b->omit_usage);
    if (b->has_seed)
        cJSON_AddNumberToObject(o, "seed", (double)b->seed);
    else
        cJSON_AddNullToObject(o, "seed");
    cJSON_AddNumberToObject(o, "cached_tokens", (double)b->cached_tokens);
    cJSON_AddStringToObject(o, "wire", sim_wire_names[b->wire]);
    cJSON_AddStringToObject(o, "persona", sim_persona_names[b->persona]);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

static cJSON *flag_statuses(const char *arg)
{
    cJSON *arr = cJSON_CreateArray();
    const char *p = arg;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || (*end && *end != ',')) {
            cJSON_Delete(arr);
            return NULL;
        }
        cJSON_AddItemToArray(arr, cJSON_CreateNumber((double)v));
        p = *end ? end + 1 : end;
    }
    return arr;
}

bool sim_behavior_flag(cJSON *patch, const char *key, const char *arg, char *err, size_t err_size)
{
    const struct sim_key *k = key_find(key);
    cJSON *v = NULL;
    double d;
    if (!k) {
        snprintf(err, err_size, "%s: unknown behavior key", key);
        return false;
    }
    switch (k->type) {
    case SIM_KEY_BOOL:
        v = cJSON_CreateBool(!arg || str_eq(arg, "true") || str_eq(arg, "1"));
        break;
    case SIM_KEY_OUTAGE:
    case SIM_KEY_WIRE:
    case SIM_KEY_PERSONA:
        v = cJSON_CreateString(arg ? arg : "");
        break;
    case SIM_KEY_STATUSES:
        v = arg ? flag_statuses(arg) : NULL;
        break;
    case SIM_KEY_RATELIM:
        if (arg && str_to_double(arg, &d)) {
            v = cJSON_CreateObject();
            cJSON_AddNumberToObject(v, "retry_after_s", d);
        }
        break;
    case SIM_KEY_RATE:
    case SIM_KEY_LONG:
    case SIM_KEY_LONG_OR_NULL:
    case SIM_KEY_SEED:
        if (arg && str_to_double(arg, &d))
            v = cJSON_CreateNumber(d);
        break;
    }
    if (!v) {
        snprintf(err, err_size, "%s: bad value '%s'", key, arg ? arg : "");
        return false;
    }
    /* Validate now so the flag is named in the message, not the scenario. */
    struct sim_behavior scratch;
    sim_behavior_defaults(&scratch);
    if (!set_key(k, &scratch, v, err, err_size)) {
        cJSON_Delete(v);
        return false;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(patch, key);
    cJSON_AddItemToObject(patch, key, v);
    return true;
}

void sim_behavior_help(struct buf *out)
{
    for (size_t i = 0; i < SB_ARRAY_LEN(sim_keys); i++)
        buf_printf(out, "  %-20s %s\n", sim_keys[i].name, sim_keys[i].help);
}
