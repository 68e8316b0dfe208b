/*
 * schema.c - the config's schema tables: one table per JSON object, each row a key with its
 * type, where it lives in the struct, bounds, default, unit and help. The walker (walk.c),
 * the error messages, the `check` summary and the README reference all read these tables;
 * adding a key is adding a row. Immutable data; any thread.
 */
#include <stddef.h>
#include <string.h>

#include "internal.h"

#define OFF(st, f) offsetof(struct st, f)
#define U          SCHEMA_UNBOUNDED
#define DAY_MS     86400000.0

_Static_assert(sizeof(enum provider_kind) == sizeof(int), "enums are stored as int");
_Static_assert(sizeof(enum route_strategy) == sizeof(int), "enums are stored as int");
_Static_assert(sizeof(enum budget_scope) == sizeof(int), "enums are stored as int");
_Static_assert(sizeof(enum guard_action) == sizeof(int), "enums are stored as int");
_Static_assert(sizeof(enum fleet_outage) == sizeof(int), "enums are stored as int");

const char *const config_kind_names[] = {"openai", "anthropic", "gemini", "openai-compatible",
                                         NULL};
const char *const config_strategy_names[] = {"weighted",   "priority", "cheapest", "fastest",
                                             "least-busy", "p2c",      NULL};
const char *const config_probe_kind_names[] = {"list", "chat", NULL};
const char *const config_scope_names[] = {"global", "target", "route", "tag", NULL};
const char *const config_guard_action_names[] = {"throttle", "cache", "observe", NULL};
static const char *const fleet_outage_names[] = {"share", "open", "closed", NULL};
static const char *const log_level_names[] = {"debug", "info", "warn", "error", NULL};

static const struct config_kind_info kind_info[PROVIDER_KIND_COUNT] = {
    [PROVIDER_OPENAI] = {"https://api.openai.com/v1", "OPENAI_API_KEY"},
    [PROVIDER_ANTHROPIC] = {"https://api.anthropic.com", "ANTHROPIC_API_KEY"},
    [PROVIDER_GEMINI] = {"https://generativelanguage.googleapis.com/v1beta", "GEMINI_API_KEY"},
    [PROVIDER_OPENAI_COMPATIBLE] = {NULL, NULL},
};

_Static_assert(SB_ARRAY_LEN(config_kind_names) == PROVIDER_KIND_COUNT + 1, "kind names");
_Static_assert(SB_ARRAY_LEN(config_strategy_names) == STRATEGY_P2C + 2, "strategy names");
_Static_assert(SB_ARRAY_LEN(config_scope_names) == BUDGET_TAG + 2, "scope names");
_Static_assert(SB_ARRAY_LEN(config_guard_action_names) == GUARD_ACTION_OBSERVE + 2,
               "guard action names");

const struct config_kind_info *config_kind_info(enum provider_kind k)
{
    return &kind_info[(unsigned)k < PROVIDER_KIND_COUNT ? k : PROVIDER_OPENAI_COMPATIBLE];
}

const char *provider_kind_name(enum provider_kind k)
{
    return (unsigned)k < PROVIDER_KIND_COUNT ? config_kind_names[k] : "?";
}

const char *route_strategy_name(enum route_strategy s)
{
    return (unsigned)s <= STRATEGY_P2C ? config_strategy_names[s] : "?";
}

const char *budget_scope_name(enum budget_scope s)
{
    return (unsigned)s <= BUDGET_TAG ? config_scope_names[s] : "?";
}

const char *guard_action_name(enum guard_action a)
{
    return (unsigned)a <= GUARD_ACTION_OBSERVE ? config_guard_action_names[a] : "?";
}

/* ---- String checks ---------------------------------------------------------------------- */

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

static const char *check_target_name(char *v)
{
    if (strlen(v) > 64)
        return "expected a name of at most 64 characters";
    for (const char *p = v; *p; p++) {
        if (!is_name_char(*p))
            return "expected a name made of letters, digits, '.', '_' and '-'";
    }
    return NULL;
}

/* Route names are the model names clients send: allow "/" and ":" as in "llama3:8b". */
static const char *check_route_name(char *v)
{
    if (strlen(v) > 128)
        return "expected a model name of at most 128 characters";
    for (const char *p = v; *p; p++) {
        if (!is_name_char(*p) && *p != '/' && *p != ':')
            return "expected a model name made of letters, digits and . _ - / :";
    }
    return NULL;
}

/* A rule's model pattern: exact, or a prefix when it ends in '*'. */
static const char *check_model_pattern(char *v)
{
    char *star = strchr(v, '*');
    if (star && star[1] != '\0')
        return "expected a model name, or a prefix ending in '*' (\"gpt-4*\"); '*' may only "
               "come last";
    return NULL;
}

static bool looks_like_key(const char *v)
{
    static const char *const prefixes[] = {"sk-", "sk_",   "AIza", "gsk_",   "xai-",
                                           "hf_", "pplx-", "r8_",  "Bearer "};
    for (size_t i = 0; i < SB_ARRAY_LEN(prefixes); i++) {
        if (str_has_prefix(v, prefixes[i]))
            return true;
    }
    return false;
}

static const char *check_utc_day(char *v)
{
    static const char shape[] = "dddd-dd-dd";
    bool ok = strlen(v) == sizeof shape - 1;
    for (size_t i = 0; ok && shape[i]; i++)
        ok = shape[i] == 'd' ? v[i] >= '0' && v[i] <= '9' : v[i] == shape[i];
    return ok ? NULL : "expected a UTC day as YYYY-MM-DD, e.g. \"2026-11-01\"";
}

static const char *check_env_name(char *v)
{
    if (looks_like_key(v))
        return "this looks like an API key itself: never put a key in the config; put the "
               "NAME of the environment variable that holds it here (e.g. \"OPENAI_API_KEY\")";
    if (strlen(v) > 100)
        return "expected an environment variable name of at most 100 characters";
    for (const char *p = v; *p; p++) {
        bool ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || *p == '_' ||
                  (p != v && *p >= '0' && *p <= '9');
        if (!ok)
            return "expected the NAME of an environment variable (letters, digits and '_', "
                   "e.g. \"OPENAI_API_KEY\"), not its value";
    }
    return NULL;
}

/* A value sent as an HTTP header value as is. */
static const char *check_header_value(char *v)
{
    if (str_has_ctl(v))
        return "expected a header value without control characters (CR, LF, tab...): it "
               "would split the request's headers";
    return NULL;
}

static const char *check_url(char *v)
{
    const char *host;
    if (str_has_prefix(v, "https://"))
        host = v + 8;
    else if (str_has_prefix(v, "http://"))
        host = v + 7;
    else
        return "expected a URL starting with http:// or https://";
    for (const char *p = v; *p; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return "expected a URL without spaces or control characters";
    }
    if (*host == '\0' || *host == '/')
        return "expected a URL with a host, e.g. \"http://127.0.0.1:11434/v1\"";
    size_t n = strlen(v);
    while (n > 0 && v[n - 1] == '/' && v + n - 1 > host)
        v[--n] = '\0';
    return NULL;
}

static const char *check_listen(char *v)
{
    static const char *const bad = "expected HOST:PORT with a port in 0..65535, e.g. "
                                   "\"127.0.0.1:8080\" or \"[::1]:8080\"";
    char *colon = strrchr(v, ':');
    if (!colon || colon == v || colon[1] == '\0' || strlen(colon + 1) > 5)
        return bad;
    long port = 0;
    for (const char *p = colon + 1; *p; p++) {
        if (*p < '0' || *p > '9')
            return bad;
        port = port * 10 + (*p - '0');
    }
    if (port > 65535)
        return bad;
    if (v[0] == '[' && colon[-1] != ']')
        return bad;
    if (v[0] != '[' && memchr(v, ':', (size_t)(colon - v)))
        return "expected HOST:PORT; write an IPv6 host in brackets, e.g. \"[::1]:8080\"";
    for (const char *p = v; p < colon; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return bad;
    }
    return NULL;
}

/* ---- Tables ----------------------------------------------------------------------------- */

#define ENTRIES(tbl) tbl, SB_ARRAY_LEN(tbl)

/* Tables are laid out by hand: a few lines per key read better than one line per field. */
/* clang-format off */
static const struct schema_entry price_entries[] = {
    {.key = "input_per_mtok", .type = ST_DOUBLE, .flags = SF_REQUIRED,
     .off = OFF(llm_price, input_per_mtok), .max = U, .unit = "USD per 1M tokens",
     .help = "Price of prompt tokens."},
    {.key = "output_per_mtok", .type = ST_DOUBLE, .flags = SF_REQUIRED,
     .off = OFF(llm_price, output_per_mtok), .max = U, .unit = "USD per 1M tokens",
     .help = "Price of generated tokens."},
    {.key = "cached_input_per_mtok", .type = ST_DOUBLE,
     .off = OFF(llm_price, cached_input_per_mtok), .max = U, .def = -1,
     .def_doc = "= input_per_mtok", .unit = "USD per 1M tokens",
     .help = "Price of prompt tokens served from the provider's cache."},
};
static const struct schema price_schema = {
    "providers[].price",
    "What the target charges, in USD per million tokens. Without it the cost is unknown.",
    ENTRIES(price_entries)};

static const struct schema_entry probe_entries[] = {
    {.key = "enabled", .type = ST_BOOL, .off = OFF(config_probe, enabled), .def = 1,
     .help = "Send a small health-check request in the background."},
    {.key = "kind", .type = ST_ENUM, .off = OFF(config_probe, kind),
     .names = config_probe_kind_names, .def = PROBE_LIST,
     .help = "list: GET the model list (liveness only: may end a breaker's cooldown early, never "
             "closes it); chat: a 1-token completion, counted as probe spend, that may close it."},
    {.key = "interval_ms", .type = ST_MS, .off = OFF(config_probe, interval_ms), .min = 1000,
     .max = DAY_MS, .def = 15000, .unit = "ms", .help = "Time between probes."},
    {.key = "timeout_ms", .type = ST_MS, .off = OFF(config_probe, timeout_ms), .min = 1,
     .max = 600000, .def = 5000, .unit = "ms", .help = "A probe slower than this fails."},
};
static const struct schema probe_schema = {"providers[].probe", "Background health checks.",
                                           ENTRIES(probe_entries)};

static const struct schema_entry target_entries[] = {
    {.key = "name", .type = ST_STRING, .flags = SF_REQUIRED | SF_UNIQUE,
     .off = OFF(config_target, name), .check = check_target_name,
     .help = "Unique name of this target (letters, digits, '.', '_', '-')."},
    {.key = "kind", .type = ST_ENUM, .flags = SF_REQUIRED, .off = OFF(config_target, kind),
     .names = config_kind_names, .help = "Wire format the provider speaks."},
    {.key = "base_url", .type = ST_STRING, .off = OFF(config_target, base_url),
     .def_doc = "per kind", .check = check_url,
     .help = "API root (http:// or https://). Required for openai-compatible."},
    {.key = "api_key_env", .type = ST_STRING, .off = OFF(config_target, api_key_env),
     .check = check_env_name,
     .help = "NAME of the environment variable holding the key (never the key). Unset "
             "variable: the target is disabled. Optional only for openai-compatible."},
    {.key = "model", .type = ST_STRING, .flags = SF_REQUIRED, .off = OFF(config_target, model),
     .help = "The provider's model id, e.g. \"gpt-4o-mini\"."},
    {.key = "price", .type = ST_OBJECT, .flags = SF_HAS, .off = OFF(config_target, price),
     .aux_off = OFF(config_target, has_price), .sub = &price_schema,
     .help = "Token prices (see providers[].price)."},
    {.key = "context_window", .type = ST_LONG, .off = OFF(config_target, context_window), .max = U,
     .unit = "tokens", .help = "Largest prompt + answer the model accepts; 0 = unknown."},
    {.key = "default_max_tokens", .type = ST_LONG, .off = OFF(config_target, default_max_tokens),
     .min = 1, .max = 1000000, .def = 4096, .unit = "tokens",
     .help = "Sent when the client gave no max_tokens and the wire format needs one."},
    {.key = "anthropic_version", .type = ST_STRING, .off = OFF(config_target, anthropic_version),
     .def_s = "2023-06-01", .check = check_header_value, .help = "anthropic-version header (kind anthropic)."},
    {.key = "connect_timeout_ms", .type = ST_MS, .off = OFF(config_target, connect_timeout_ms),
     .min = 1, .max = 600000, .def = 5000, .unit = "ms", .help = "TCP + TLS connect timeout."},
    {.key = "first_byte_timeout_ms", .type = ST_MS,
     .off = OFF(config_target, first_byte_timeout_ms), .min = 1, .max = DAY_MS, .def = 30000,
     .unit = "ms", .help = "No response byte by then: the attempt fails (and may be retried)."},
    {.key = "total_timeout_ms", .type = ST_MS, .off = OFF(config_target, total_timeout_ms),
     .min = 1, .max = DAY_MS, .def = 300000, .unit = "ms",
     .help = "Whole attempt, streaming included."},
    {.key = "sse_max_event_bytes", .type = ST_LONG,
     .off = OFF(config_target, sse_max_event_bytes), .min = 65536, .max = 268435456,
     .def = 4194304, .unit = "bytes",
     .help = "Largest SSE line or event accepted from this provider (one limit for both); "
             "over it the stream ends with an error chunk that says so."},
    {.key = "stream_idle_timeout_ms", .type = ST_MS,
     .off = OFF(config_target, stream_idle_timeout_ms), .max = DAY_MS, .def = 60000, .unit = "ms",
     .help = "After the first byte, no byte for this long ends the stream with an error chunk "
             "(counted truncated, a breaker strike); 0 = off."},
    {.key = "max_concurrency", .type = ST_LONG, .off = OFF(config_target, max_concurrency),
     .max = 1000000, .unit = "calls", .help = "Calls in flight at once; 0 = unlimited."},
    {.key = "rpm", .type = ST_LONG, .off = OFF(config_target, rpm), .max = U,
     .unit = "requests/min", .help = "Request rate limit; 0 = unlimited."},
    {.key = "tpm", .type = ST_LONG, .off = OFF(config_target, tpm), .max = U, .unit = "tokens/min",
     .help = "Token rate limit; 0 = unlimited."},
    {.key = "fleet_limits", .type = ST_BOOL, .off = OFF(config_target, fleet_limits),
     .help = "Fleet mode: rpm, tpm and max_concurrency hold across all instances together "
             "instead of per instance (rate tokens leased from a bucket in Redis a few at a "
             "time; max_concurrency is one pool of slots granted to the instances through "
             "Redis, with expiring grants; while Redis is down each instance keeps to its "
             "share: max / instances, rounded up)."},
    {.key = "weight", .type = ST_DOUBLE, .off = OFF(config_target, weight), .max = 1000000,
     .def = 1, .help = "Relative share of traffic in weighted routes; 0 = none."},
    {.key = "probe", .type = ST_OBJECT, .off = OFF(config_target, probe), .sub = &probe_schema,
     .help = "Health checks (see providers[].probe)."},
};
static const struct schema target_schema = {
    "providers[]", "Each provider entry is one routing target: an endpoint plus a model.",
    ENTRIES(target_entries)};

static const struct schema_entry cache_entries[] = {
    {.key = "enabled", .type = ST_BOOL, .off = OFF(config_cache, enabled), .def = 0,
     .help = "Store this route's successful, complete answers."},
    {.key = "ttl_ms", .type = ST_MS, .off = OFF(config_cache, ttl_ms), .min = 1000,
     .max = 7 * DAY_MS, .def = 300000, .unit = "ms", .help = "A stored answer expires after this."},
    {.key = "max_entries", .type = ST_LONG, .off = OFF(config_cache, max_entries), .min = 1,
     .max = 1000000, .def = 1000, .help = "Answers kept; the least recently used go first."},
    {.key = "max_bytes", .type = ST_LONG, .off = OFF(config_cache, max_bytes), .min = 65536,
     .max = 4294967296.0, .def = 67108864, .unit = "bytes",
     .help = "Memory for requests and answers together (64 MiB default)."},
};
static const struct schema cache_schema = {
    "routes[].cache",
    "Exact-match response cache, keyed by route, tag and the whole request (model, messages, "
    "tools, parameters). Stored answers are served only to requests the runaway guard flags "
    "when guard.action is \"cache\"; a call served from the cache costs nothing and is "
    "recorded with target \"cache\".",
    ENTRIES(cache_entries)};

static const char *const quality_metric_names[] = {"both", "satisfaction", "abandonment", NULL};

const char *quality_metric_name(enum quality_metric m)
{
    return quality_metric_names[m];
}

static const struct schema_entry quality_guard_entries[] = {
    {.key = "enabled", .type = ST_BOOL, .off = OFF(config_quality_guard, enabled), .def = 0,
     .help = "Watch this route's targets' satisfaction and abandonment."},
    {.key = "metric", .type = ST_ENUM, .off = OFF(config_quality_guard, metric),
     .names = quality_metric_names, .def = QUALITY_METRIC_BOTH,
     .help = "What is compared: satisfaction, abandonment or both."},
    {.key = "margin_pct", .type = ST_DOUBLE, .off = OFF(config_quality_guard, margin_pct),
     .min = 0, .max = 100, .def = 5, .unit = "percentage points",
     .help = "How much worse than the baseline target (satisfaction on a 0..100 scale, "
             "abandonment in % of calls) a target may be."},
    {.key = "min_volume", .type = ST_LONG, .off = OFF(config_quality_guard, min_volume),
     .min = 1, .max = 1000000, .def = 20,
     .help = "Ratings (calls, for abandonment) each side needs before it is judged."},
    {.key = "window_ms", .type = ST_MS, .off = OFF(config_quality_guard, window_ms),
     .min = 60000, .max = 7 * DAY_MS, .def = 3600000, .unit = "ms",
     .help = "How far back the figures look."},
    {.key = "min_satisfaction", .type = ST_DOUBLE,
     .off = OFF(config_quality_guard, min_satisfaction), .min = -2, .max = 1, .def = -2,
     .def_doc = "none", .help = "Fixed floor (-1..1) for routes without a baseline target."},
    {.key = "max_abandonment", .type = ST_DOUBLE,
     .off = OFF(config_quality_guard, max_abandonment), .min = -1, .max = 1, .def = -1,
     .def_doc = "none", .help = "Fixed ceiling (0..1) for routes without a baseline target."},
    {.key = "shift", .type = ST_BOOL, .off = OFF(config_quality_guard, shift), .def = 0,
     .help = "Also override a failing target's weight (audited, undoable, expires)."},
    {.key = "shift_weight", .type = ST_DOUBLE, .off = OFF(config_quality_guard, shift_weight),
     .min = 0, .max = 1000, .def = 0, .help = "The weight a failing target gets."},
    {.key = "shift_ms", .type = ST_MS, .off = OFF(config_quality_guard, shift_ms), .min = 1000,
     .max = DAY_MS, .def = 600000, .unit = "ms", .help = "The override expires after this."},
};
static const struct schema quality_guard_schema = {
    "routes[].quality_guard",
    "Raises an event (and, with shift, moves weight away) when a target of the route answers "
    "worse than the route's baseline target, or a fixed floor, by more than the margin.",
    ENTRIES(quality_guard_entries)};

static const struct schema_entry route_entries[] = {
    {.key = "name", .type = ST_STRING, .flags = SF_REQUIRED | SF_UNIQUE,
     .off = OFF(config_route, name), .check = check_route_name,
     .help = "The public model name clients send."},
    {.key = "targets", .type = ST_REF_LIST, .flags = SF_REQUIRED, .ref = REF_TARGET,
     .off = OFF(config_route, targets), .aux_off = OFF(config_route, n_targets), .min = 1,
     .help = "Provider names, in priority order; no duplicates."},
    {.key = "strategy", .type = ST_ENUM, .off = OFF(config_route, strategy),
     .names = config_strategy_names, .def = STRATEGY_WEIGHTED,
     .help = "How a target is picked among the healthy ones."},
    {.key = "fallback", .type = ST_REF_LIST, .ref = REF_ROUTE, .off = OFF(config_route, fallback),
     .aux_off = OFF(config_route, n_fallback),
     .help = "Routes tried in order once this route's own targets have failed."},
    {.key = "baseline", .type = ST_REF_OPT, .ref = REF_TARGET, .off = OFF(config_route, baseline),
     .def = -1, .def_doc = "none", .help = "Target whose price is the baseline for savings."},
    {.key = "max_attempts", .type = ST_LONG, .flags = SF_INHERIT,
     .off = OFF(config_route, max_attempts), .min = 1, .max = 10, .def = -1, .def_doc = "inherit",
     .help = "Overrides router.max_attempts."},
    {.key = "deadline_ms", .type = ST_MS, .flags = SF_INHERIT,
     .off = OFF(config_route, deadline_ms), .min = 1, .max = DAY_MS, .def = -1,
     .def_doc = "inherit", .unit = "ms", .help = "Overrides router.deadline_ms."},
    {.key = "hedge_after_ms", .type = ST_MS, .flags = SF_INHERIT,
     .off = OFF(config_route, hedge_after_ms), .max = DAY_MS, .def = -1, .def_doc = "inherit",
     .unit = "ms", .help = "Overrides router.hedge_after_ms (0 = off)."},
    {.key = "queue_ms", .type = ST_MS, .off = OFF(config_route, queue_ms), .max = 600000,
     .def = 0, .unit = "ms",
     .help = "When every target is rate limited and one is free within this, the call waits "
             "for it instead of getting 429; 0 = never wait."},
    {.key = "cache", .type = ST_OBJECT, .off = OFF(config_route, cache), .sub = &cache_schema,
     .help = "Response cache (see routes[].cache)."},
    {.key = "quality_guard", .type = ST_OBJECT, .off = OFF(config_route, quality_guard),
     .sub = &quality_guard_schema, .help = "Quality guard (see routes[].quality_guard)."},
};
static const struct schema route_schema = {
    "routes[]", "A route maps a public model name to targets and a strategy.",
    ENTRIES(route_entries)};

static const struct schema_entry match_entries[] = {
    {.key = "model", .type = ST_STRING, .off = OFF(config_rule, match_model),
     .check = check_model_pattern,
     .help = "Requested model: exact, or a prefix when it ends in '*'."},
    {.key = "tag", .type = ST_STRING, .off = OFF(config_rule, match_tag),
     .help = "Value of the x-switchboard-tag request header."},
    {.key = "min_prompt_tokens", .type = ST_LONG, .off = OFF(config_rule, min_prompt_tokens),
     .max = U, .def = -1, .def_doc = "none", .unit = "tokens",
     .help = "Estimated prompt size at least this."},
    {.key = "max_prompt_tokens", .type = ST_LONG, .off = OFF(config_rule, max_prompt_tokens),
     .max = U, .def = -1, .def_doc = "none", .unit = "tokens",
     .help = "Estimated prompt size at most this."},
    {.key = "user", .type = ST_STRING, .off = OFF(config_rule, match_user),
     .check = check_model_pattern,
     .help = "End user (the OpenAI `user` field, or x-switchboard-user where allowed): exact, "
             "or a prefix when it ends in '*'."},
    {.key = "users_file", .type = ST_STRING, .off = OFF(config_rule, match_users_file),
     .help = "A file of end users, one a line (relative to the config file; '#' comments)."},
};
static const struct schema match_schema = {
    "rules[].match", "All given conditions must hold; an empty match matches every request.",
    ENTRIES(match_entries)};

static const struct schema_entry rule_entries[] = {
    {.key = "match", .type = ST_OBJECT, .flags = SF_REQUIRED, .off = 0, .sub = &match_schema,
     .help = "Conditions (see rules[].match)."},
    {.key = "route", .type = ST_REF, .flags = SF_REQUIRED, .ref = REF_ROUTE,
     .off = OFF(config_rule, route), .help = "Route that serves matching requests."},
};
static const struct schema rule_schema = {
    "rules[]",
    "Rules pick a route from request facts; the first match wins. Without a match, the "
    "requested model name is the route name.",
    ENTRIES(rule_entries)};

static const struct schema_entry router_entries[] = {
    {.key = "max_attempts", .type = ST_LONG, .off = OFF(config_router, max_attempts), .min = 1,
     .max = 10, .def = 3, .help = "Attempts per call over all targets and fallbacks."},
    {.key = "backoff_base_ms", .type = ST_MS, .off = OFF(config_router, backoff_base_ms),
     .max = 60000, .def = 100, .unit = "ms", .help = "First retry delay; doubles each retry."},
    {.key = "backoff_cap_ms", .type = ST_MS, .off = OFF(config_router, backoff_cap_ms),
     .max = 600000, .def = 2000, .unit = "ms",
     .help = "Longest retry delay; at least backoff_base_ms."},
    {.key = "deadline_ms", .type = ST_MS, .off = OFF(config_router, deadline_ms), .min = 1,
     .max = DAY_MS, .def = 60000, .unit = "ms", .help = "Per call, covering every attempt."},
    {.key = "hedge_after_ms", .type = ST_MS, .off = OFF(config_router, hedge_after_ms),
     .max = DAY_MS, .unit = "ms",
     .help = "No first byte by then: start a second attempt in parallel; 0 = off. Below "
             "deadline_ms."},
    {.key = "breaker_failures", .type = ST_LONG, .off = OFF(config_router, breaker_failures),
     .min = 1, .max = 1000, .def = 5, .help = "Consecutive failures that open a breaker."},
    {.key = "breaker_error_rate", .type = ST_DOUBLE, .flags = SF_GT_MIN,
     .off = OFF(config_router, breaker_error_rate), .max = 1, .def = 0.5,
     .help = "Error ratio over the window that opens a breaker."},
    {.key = "breaker_window_ms", .type = ST_MS, .off = OFF(config_router, breaker_window_ms),
     .min = 1000, .max = 3600000, .def = 30000, .unit = "ms",
     .help = "Window for breaker_error_rate."},
    {.key = "breaker_min_volume", .type = ST_LONG, .off = OFF(config_router, breaker_min_volume),
     .min = 1, .max = 1000000, .def = 20, .unit = "calls",
     .help = "Calls in the window before the error rate counts."},
    {.key = "breaker_cooldown_ms", .type = ST_MS, .off = OFF(config_router, breaker_cooldown_ms),
     .min = 100, .max = DAY_MS, .def = 30000, .unit = "ms",
     .help = "Open breaker waits this long before half-open trials."},
    {.key = "breaker_half_open_trials", .type = ST_LONG,
     .off = OFF(config_router, breaker_half_open_trials), .min = 1, .max = 100, .def = 1,
     .unit = "calls", .help = "Trial calls let through when half-open."},
    {.key = "breaker_cooldown_max_ms", .type = ST_MS,
     .off = OFF(config_router, breaker_cooldown_max_ms), .min = 100, .max = DAY_MS,
     .def = 300000, .unit = "ms",
     .help = "Each failed trial doubles the cooldown, up to this."},
    {.key = "breaker_slow_strikes", .type = ST_LONG,
     .off = OFF(config_router, breaker_slow_strikes), .min = 1, .max = 1000, .def = 3,
     .unit = "calls",
     .help = "Hedge losers in a row with no first byte when the hedge won that open a breaker."},
    {.key = "rate_limit_cooldown_ms", .type = ST_MS,
     .off = OFF(config_router, rate_limit_cooldown_ms), .min = 1, .max = DAY_MS, .def = 1000,
     .unit = "ms", .help = "A target answered 429 without Retry-After rests this long."},
    {.key = "workers", .type = ST_LONG, .off = OFF(config_router, workers), .max = 16, .def = -1,
     .def_doc = "online cores (0 on 2 or fewer)", .unit = "threads",
     .help = "Threads that decode a gateway stream's bytes and encode them for the client once "
             "it has committed (issue 16); 0 = all of it on the router thread. Read at start."},
};
static const struct schema router_schema = {"router", "Retries, deadlines, hedging, breakers.",
                                            ENTRIES(router_entries)};

static const struct schema_entry admin_token_entries[] = {
    {.key = "name", .type = ST_STRING, .flags = SF_REQUIRED | SF_UNIQUE,
     .off = OFF(config_admin_token, name), .check = check_target_name,
     .help = "Who holds this token; the audit names it (with the operator's login)."},
    {.key = "token_env", .type = ST_STRING, .flags = SF_REQUIRED,
     .off = OFF(config_admin_token, token_env), .check = check_env_name,
     .help = "NAME of the variable holding the token (never the token). Unset: this token is "
             "off."},
};
static const struct schema admin_token_schema = {
    "gateway.admin_tokens[]",
    "Admin API tokens, each with a name: the audit's \"who\" is the token's name plus the "
    "operator login the console sends. Any of them (or admin_token_env's, named \"admin\") "
    "opens the admin API.",
    ENTRIES(admin_token_entries)};

static const struct schema_entry gateway_entries[] = {
    {.key = "listen", .type = ST_STRING, .off = OFF(config_gateway, listen),
     .def_s = "127.0.0.1:8080", .check = check_listen, .help = "HOST:PORT to listen on."},
    {.key = "threads", .type = ST_LONG, .off = OFF(config_gateway, threads), .max = 64,
     .def = -1, .def_doc = "0 on 2 or fewer online cores, else 2", .unit = "threads",
     .help = "Threads of the gateway.listen server: N HTTP worker threads that hand each "
             "request to the router thread; 0 = none of its own: requests are parsed, routed, "
             "relayed and answered on the router thread's event loop, with no hand-off between "
             "threads (less CPU per request, but one core for all of it; bodies over 64 KiB are "
             "parsed on the offload pool). Read at start."},
    {.key = "max_connections", .type = ST_LONG, .off = OFF(config_gateway, max_connections),
     .min = 1, .max = 1000000, .def = 1024, .help = "Client connections at once."},
    {.key = "max_body_bytes", .type = ST_LONG, .off = OFF(config_gateway, max_body_bytes),
     .min = 1024, .max = 67108864, .def = 4194304, .unit = "bytes",
     .help = "Largest request body accepted (4 MiB default)."},
    {.key = "idle_timeout_ms", .type = ST_MS, .off = OFF(config_gateway, idle_timeout_ms),
     .min = 1000, .max = 3600000, .def = 30000, .unit = "ms",
     .help = "Idle client connections are closed after this."},
    {.key = "request_timeout_ms", .type = ST_MS, .off = OFF(config_gateway, request_timeout_ms),
     .min = 1000, .max = 3600000, .def = 30000, .unit = "ms",
     .help = "A client must send each whole request, headers and body, within this time of "
             "connecting or of its previous answer; slower connections are closed and counted "
             "(slowloris)."},
    {.key = "max_connections_per_client", .type = ST_LONG,
     .off = OFF(config_gateway, max_connections_per_client), .min = 0, .max = 1000000,
     .def = 256, .help = "Connections at once from one client address; more are closed at "
                         "accept and counted. 0 = no cap (behind a proxy every client shares "
                         "its address)."},
    {.key = "max_body_bytes_total", .type = ST_LONG,
     .off = OFF(config_gateway, max_body_bytes_total), .min = 1024, .max = 17179869184.0,
     .def = 67108864, .unit = "bytes",
     .help = "Request bytes held across all connections at once, from a request's arrival to "
             "its end (64 MiB default); a request that would go over gets 503 with "
             "Retry-After."},
    {.key = "drain_timeout_ms", .type = ST_MS, .off = OFF(config_gateway, drain_timeout_ms),
     .min = 0, .max = 3600000, .def = 30000, .unit = "ms",
     .help = "On SIGTERM, calls in flight may finish for this long; then they end with a "
             "\"shutting down\" error. A second signal stops at once."},
    {.key = "admin_listen", .type = ST_STRING, .off = OFF(config_gateway, admin_listen),
     .check = check_listen,
     .help = "HOST:PORT of a second listener for /healthz, /readyz, /metrics and /admin/ only, "
             "with connections of its own: they stay reachable while /v1/ is saturated. When "
             "set, /admin/ answers only there."},
    {.key = "admin_token_env", .type = ST_STRING, .off = OFF(config_gateway, admin_token_env),
     .check = check_env_name,
     .help = "NAME of the variable holding the admin API bearer token; admin API off when "
             "absent or unset."},
    {.key = "admin_tokens", .type = ST_OBJECT_ARRAY, .off = OFF(config_gateway, admin_tokens),
     .aux_off = OFF(config_gateway, n_admin_tokens),
     .elem_size = sizeof(struct config_admin_token), .sub = &admin_token_schema,
     .help = "Named admin tokens (see gateway.admin_tokens[])."},
};
static const struct schema gateway_schema = {
    "gateway", "The OpenAI-compatible HTTP endpoint and the admin API.", ENTRIES(gateway_entries)};

static const struct schema_entry ledger_entries[] = {
    {.key = "path", .type = ST_STRING, .off = OFF(config_ledger, path), .def_s = "switchboard.db",
     .help = "SQLite file; a relative path is relative to the config file's directory."},
    {.key = "batch_ms", .type = ST_MS, .off = OFF(config_ledger, batch_ms), .min = 10, .max = 5000,
     .def = 250, .unit = "ms",
     .help = "Longest a finished call waits to be written (batches are committed twice as "
             "often): a crash loses at most this window."},
    {.key = "hash_users", .type = ST_BOOL, .off = OFF(config_ledger, hash_users), .def = 0,
     .help = "Store each call's end user (the OpenAI `user` field) as \"u-\" and 16 hex "
             "digits of its SHA-256 instead of as sent."},
    {.key = "feedback_window_ms", .type = ST_MS, .off = OFF(config_ledger, feedback_window_ms),
     .min = 1000, .max = 2592000000.0, .def = 86400000, .unit = "ms",
     .help = "POST /v1/feedback rates a call only this long after it finished (410 after)."},
    {.key = "quality_min_volume", .type = ST_LONG, .off = OFF(config_ledger, quality_min_volume),
     .min = 1, .max = 1000000, .def = 20, .unit = "ratings",
     .help = "Ratings a target, route, tag or user needs before its satisfaction is shown."},
    {.key = "quality_baseline", .type = ST_STRING, .off = OFF(config_ledger, quality_baseline),
     .check = check_utc_day,
     .help = "A UTC day (\"2026-11-01\"): quality figures are also shown since then."},
};
static const struct schema ledger_schema = {
    "ledger",
    "Where every call, operator action and vote is recorded (SQLite, WAL mode; \":memory:\" "
    "keeps nothing). Today's and this month's spend are rebuilt from it at start, so budgets "
    "hold across restarts.",
    ENTRIES(ledger_entries)};

static const struct schema_entry budget_entries[] = {
    {.key = "scope", .type = ST_ENUM, .flags = SF_REQUIRED, .off = OFF(config_budget, scope),
     .names = config_scope_names, .help = "What the cap applies to."},
    {.key = "name", .type = ST_STRING, .off = OFF(config_budget, name),
     .help = "Target, route or tag name; required unless scope is global."},
    {.key = "daily_usd", .type = ST_DOUBLE, .off = OFF(config_budget, daily_usd), .max = U,
     .unit = "USD", .help = "Cap per UTC day; 0 = none."},
    {.key = "monthly_usd", .type = ST_DOUBLE, .off = OFF(config_budget, monthly_usd), .max = U,
     .unit = "USD", .help = "Cap per calendar month; 0 = none. Set at least one cap."},
    {.key = "soft_pct", .type = ST_DOUBLE, .off = OFF(config_budget, soft_pct), .min = 1,
     .max = 100, .def = 80, .unit = "%", .help = "Warn at this share of a cap."},
};
static const struct schema budget_schema = {
    "budgets[]",
    "Spend caps per UTC day and calendar month (UTC). At soft_pct of a cap a warning event; at "
    "a cap a target budget takes the target out of routing, and a global, route or tag "
    "budget answers 429 naming the budget until the window resets. At most one global "
    "budget; no two with the same scope and name.",
    ENTRIES(budget_entries)};

static const struct schema_entry guard_entries[] = {
    {.key = "enabled", .type = ST_BOOL, .off = OFF(config_guard, enabled), .def = 1,
     .help = "Watch every tag for identical-prompt storms and rate spikes."},
    {.key = "identical_max", .type = ST_LONG, .off = OFF(config_guard, identical_max), .min = 1,
     .max = 1000000, .def = 20, .unit = "requests",
     .help = "The same prompt from one tag more often than this within identical_window_ms "
             "is a storm."},
    {.key = "identical_window_ms", .type = ST_MS, .off = OFF(config_guard, identical_window_ms),
     .min = 1000, .max = DAY_MS, .def = 60000, .unit = "ms",
     .help = "Window for identical_max (counted in tenths of it)."},
    {.key = "spike_factor", .type = ST_DOUBLE, .flags = SF_GT_MIN,
     .off = OFF(config_guard, spike_factor), .min = 1, .max = 1000, .def = 5,
     .help = "A tag's 10-second request rate above this times its own baseline is a spike."},
    {.key = "spike_min_rps", .type = ST_DOUBLE, .flags = SF_GT_MIN,
     .off = OFF(config_guard, spike_min_rps), .max = 1000000, .def = 2, .unit = "req/s",
     .help = "The baseline never counts as lower than this, so a quiet or new tag is not a "
             "spike below spike_factor x spike_min_rps."},
    {.key = "baseline_window_ms", .type = ST_MS, .off = OFF(config_guard, baseline_window_ms),
     .min = 30000, .max = DAY_MS, .def = 300000, .unit = "ms",
     .help = "Time constant of each tag's baseline rate (an exponential moving average)."},
    {.key = "action", .type = ST_ENUM, .off = OFF(config_guard, action),
     .names = config_guard_action_names, .def = GUARD_ACTION_THROTTLE,
     .help = "throttle: 429 saying why; cache: answer from the route's cache, 429 on a miss; "
             "observe: the event only."},
};
static const struct schema guard_schema = {
    "guard",
    "The runaway guard. A storm's requests beyond identical_max are refused (or answered "
    "from the cache); during a spike the tag is held to spike_factor x its baseline. Every "
    "storm and spike is an event on the console and in the ledger.",
    ENTRIES(guard_entries)};

static const struct schema_entry console_entries[] = {
    {.key = "theme", .type = ST_STRING, .off = OFF(config_console, theme), .def_s = "default",
     .help = "Colour theme name (themes/NAME.json)."},
    {.key = "refresh_ms", .type = ST_MS, .off = OFF(config_console, refresh_ms), .min = 50,
     .max = 5000, .def = 250, .unit = "ms", .help = "Screen refresh interval."},
};
static const struct schema console_schema = {"console", "The ncurses console.",
                                             ENTRIES(console_entries)};

static const struct schema_entry client_entries[] = {
    {.key = "name", .type = ST_STRING, .flags = SF_REQUIRED | SF_UNIQUE,
     .off = OFF(config_client, name), .check = config_check_client_name,
     .help = "Unique name of the key (letters, digits, '.', '_', '-'); shown in the ledger, "
             "the metrics and the console."},
    {.key = "key_sha256", .type = ST_STRING, .flags = SF_REQUIRED | SF_UNIQUE,
     .off = OFF(config_client, key_sha256), .check = config_check_key_sha256,
     .help = "SHA-256 of the key in hex (`switchboard keys hash`); never the key itself."},
    {.key = "routes", .type = ST_REF_LIST, .off = OFF(config_client, routes),
     .aux_off = OFF(config_client, n_routes), .ref = REF_ROUTE, .def_doc = "every route",
     .help = "Model names (routes) the key may ask for; others get 403."},
    {.key = "tag", .type = ST_STRING, .off = OFF(config_client, tag),
     .check = config_check_client_tag, .def_doc = "the key's name",
     .help = "Tag every call with this key carries (budgets, guard, rules, ledger)."},
    {.key = "self_tag", .type = ST_BOOL, .off = OFF(config_client, self_tag),
     .help = "Honour the client's x-switchboard-tag, except a tag another key carries or a "
             "tag budget names (other than the key's own tag)."},
    {.key = "daily_usd", .type = ST_DOUBLE, .off = OFF(config_client, daily_usd), .max = U,
     .unit = "USD", .help = "Spend cap of the key per UTC day (429 when reached); 0 = none."},
    {.key = "monthly_usd", .type = ST_DOUBLE, .off = OFF(config_client, monthly_usd), .max = U,
     .unit = "USD", .help = "Spend cap of the key per calendar month (UTC); 0 = none."},
    {.key = "rpm", .type = ST_LONG, .off = OFF(config_client, rpm), .max = U,
     .unit = "requests/min", .help = "Requests per minute of the key (429 over it); 0 = unlimited."},
    {.key = "tpm", .type = ST_LONG, .off = OFF(config_client, tpm), .max = U,
     .unit = "tokens/min", .help = "Tokens per minute of the key; 0 = unlimited."},
    {.key = "expires", .type = ST_STRING, .off = OFF(config_client, expires),
     .check = config_check_client_expires, .def_doc = "never",
     .help = "From then on the key gets 401: \"2027-01-01\" (00:00 UTC) or "
             "\"2027-01-01T12:00:00Z\"."},
};
static const struct schema client_schema = {
    "clients[]",
    "Client keys. With any key configured (here or in the ledger: `switchboard keys add`), "
    "every /v1/ request needs \"Authorization: Bearer KEY\" with a valid key (else 401), "
    "and the key decides the routes, the tag, the budgets and the rate limits of its calls.",
    ENTRIES(client_entries)};
static const char *check_redis_url(char *v)
{
    if (!str_has_prefix(v, "redis://") && !str_has_prefix(v, "rediss://") &&
        !str_has_prefix(v, "unix:///"))
        return "expected redis://host:port/db, rediss://host:port/db (TLS) or unix:///path";
    if (strchr(v, '@'))
        return "no user or password in the URL: name the variable holding the password in "
               "fleet.password_env";
    return NULL;
}

static const struct schema_entry fleet_entries[] = {
    {.key = "redis", .type = ST_STRING, .off = OFF(config_fleet, redis), .check = check_redis_url,
     .help = "Where the fleet's Redis (or Valkey) listens: redis://host:port/db, "
             "rediss://host:port/db (TLS, the server's certificate verified; see tls_*) or "
             "unix:///path. Fleet mode is off without it."},
    {.key = "name", .type = ST_STRING, .off = OFF(config_fleet, name),
     .def_doc = "hostname:port (hostname:pidN on port 0)",
     .help = "This instance's name in the fleet (heartbeats, audit); unique per instance."},
    {.key = "key_prefix", .type = ST_STRING, .off = OFF(config_fleet, key_prefix),
     .def_s = "switchboard:", .help = "Prefix of every Redis key and channel the fleet uses."},
    {.key = "password_env", .type = ST_STRING, .off = OFF(config_fleet, password_env),
     .check = check_env_name,
     .help = "NAME of the variable holding Redis's password (AUTH); none when absent."},
    {.key = "on_outage", .type = ST_ENUM, .off = OFF(config_fleet, on_outage),
     .names = fleet_outage_names, .def = FLEET_OUTAGE_SHARE,
     .help = "Budgets while Redis is unreachable: share: the last known fleet total plus this "
             "instance's spend since then times the number of instances; open: this "
             "instance's own spend only; closed: calls under a capped budget get 429."},
    {.key = "share_breakers", .type = ST_BOOL, .off = OFF(config_fleet, share_breakers),
     .help = "Breakers stay per instance (each sees its own network path) and their "
             "transitions are published to the others' timelines; true: an instance that "
             "opens a target's breaker also takes the target out of routing on every instance "
             "for that breaker's cooldown."},
    {.key = "tls_ca_file", .type = ST_STRING, .off = OFF(config_fleet, tls_ca_file),
     .def_doc = "the system's CA certificates",
     .help = "rediss://: PEM file of the CA(s) that signed Redis's certificate."},
    {.key = "tls_cert_file", .type = ST_STRING, .off = OFF(config_fleet, tls_cert_file),
     .help = "rediss://: PEM client certificate, for a Redis with tls-auth-clients; with "
             "tls_key_file."},
    {.key = "tls_key_file", .type = ST_STRING, .off = OFF(config_fleet, tls_key_file),
     .help = "rediss://: PEM private key of tls_cert_file."},
    {.key = "tls_server_name", .type = ST_STRING, .off = OFF(config_fleet, tls_server_name),
     .def_doc = "the URL's host",
     .help = "rediss://: the name (or IP address) Redis's certificate must carry; also sent "
             "as SNI."},
    {.key = "tls_insecure_skip_verify", .type = ST_BOOL,
     .off = OFF(config_fleet, tls_insecure_skip_verify),
     .help = "rediss://: do not verify Redis's certificate (anyone on the path can read the "
             "fleet's traffic and password). Logged as a warning at start; for tests only."},
};
static const struct schema fleet_schema = {
    "fleet",
    "Fleet mode: several serve instances share spend and budgets, Retry-After cooldowns and "
    "operator overrides through Redis, and heartbeat a summary of themselves. Routing never "
    "waits on Redis; see README \"Running a fleet\".",
    ENTRIES(fleet_entries)};

static const struct schema_entry users_entries[] = {
    {.key = "preferences_file", .type = ST_STRING, .off = OFF(config_users, preferences_file),
     .help = "Lines \"USER PREFERENCE\" (concise, detailed or a route name), relative to the "
             "config file; re-read on SIGHUP. The admin API changes them at run time."},
    {.key = "concise_route", .type = ST_REF_OPT, .ref = REF_ROUTE,
     .off = OFF(config_users, concise_route), .def = -1, .def_doc = "none",
     .help = "The route a user preferring \"concise\" gets."},
    {.key = "detailed_route", .type = ST_REF_OPT, .ref = REF_ROUTE,
     .off = OFF(config_users, detailed_route), .def = -1, .def_doc = "none",
     .help = "The route a user preferring \"detailed\" gets."},
};
static const struct schema users_schema = {
    "users",
    "Per-user routing: a user's preference picks the route (before rules and the model name) "
    "when the route exists and the caller's client key may use it.",
    ENTRIES(users_entries)};

static const struct schema_entry root_entries[] = {
    {.key = "version", .type = ST_LONG, .flags = SF_NO_STORE, .min = 1, .max = 1, .def = 1,
     .help = "Config format version."},
    {.key = "providers", .type = ST_OBJECT_ARRAY, .flags = SF_REQUIRED, .off = OFF(config, targets),
     .aux_off = OFF(config, n_targets), .min = 1, .elem_size = sizeof(struct config_target),
     .sub = &target_schema, .help = "Routing targets (see providers[])."},
    {.key = "routes", .type = ST_OBJECT_ARRAY, .flags = SF_REQUIRED, .off = OFF(config, routes),
     .aux_off = OFF(config, n_routes), .min = 1, .elem_size = sizeof(struct config_route),
     .sub = &route_schema, .help = "Public model names (see routes[])."},
    {.key = "rules", .type = ST_OBJECT_ARRAY, .off = OFF(config, rules),
     .aux_off = OFF(config, n_rules), .elem_size = sizeof(struct config_rule), .sub = &rule_schema,
     .help = "Request -> route rules (see rules[])."},
    {.key = "router", .type = ST_OBJECT, .off = OFF(config, router), .sub = &router_schema,
     .help = "See router."},
    {.key = "gateway", .type = ST_OBJECT, .off = OFF(config, gateway), .sub = &gateway_schema,
     .help = "See gateway."},
    {.key = "ledger", .type = ST_OBJECT, .off = OFF(config, ledger), .sub = &ledger_schema,
     .help = "See ledger."},
    {.key = "budgets", .type = ST_OBJECT_ARRAY, .off = OFF(config, budgets),
     .aux_off = OFF(config, n_budgets), .elem_size = sizeof(struct config_budget),
     .sub = &budget_schema, .help = "Spend caps (see budgets[])."},
    {.key = "guard", .type = ST_OBJECT, .off = OFF(config, guard), .sub = &guard_schema,
     .help = "See guard."},
    {.key = "console", .type = ST_OBJECT, .off = OFF(config, console), .sub = &console_schema,
     .help = "See console."},
    {.key = "clients", .type = ST_OBJECT_ARRAY, .off = OFF(config, clients),
     .aux_off = OFF(config, n_clients), .elem_size = sizeof(struct config_client),
     .sub = &client_schema, .help = "Client keys (see clients[])."},
    {.key = "users", .type = ST_OBJECT, .off = OFF(config, users), .sub = &users_schema,
     .help = "See users."},
    {.key = "fleet", .type = ST_OBJECT, .off = OFF(config, fleet), .sub = &fleet_schema,
     .help = "See fleet."},
    {.key = "log_level", .type = ST_STRING, .off = OFF(config, log_level), .def_s = "info",
     .names = log_level_names, .help = "Least severe log level written."},
};
const struct schema config_schema_root = {
    "Top level", "console.json is one JSON object (no comments).", ENTRIES(root_entries)};

/* clang-format on */

/* ---- Lookups and descriptions ----------------------------------------------------------- */

const struct schema_entry *schema_find(const struct schema *s, const char *key)
{
    for (size_t i = 0; i < s->n; i++) {
        if (str_eq(s->entries[i].key, key))
            return &s->entries[i];
    }
    return NULL;
}

void schema_put_num(struct buf *out, double v)
{
    if (v > -1e15 && v < 1e15 && (double)(long long)v == v)
        buf_printf(out, "%lld", (long long)v);
    else
        buf_printf(out, "%g", v);
}

static bool is_number(enum schema_type t)
{
    return t == ST_LONG || t == ST_MS || t == ST_DOUBLE;
}

static void put_names(struct buf *out, const char *const *names, const char *quote)
{
    for (size_t i = 0; names[i]; i++)
        buf_printf(out, "%s%s%s%s", i ? ", " : "", quote, names[i], quote);
}

void schema_describe_range(const struct schema_entry *e, struct buf *out)
{
    if (!is_number(e->type))
        return;
    if (e->min == e->max) {
        schema_put_num(out, e->min);
    } else if (e->max >= SCHEMA_UNBOUNDED) {
        buf_puts(out, e->flags & SF_GT_MIN ? "> " : ">= ");
        schema_put_num(out, e->min);
    } else {
        buf_puts(out, e->flags & SF_GT_MIN ? "> " : "");
        schema_put_num(out, e->min);
        buf_puts(out, e->flags & SF_GT_MIN ? " and <= " : "..");
        schema_put_num(out, e->max);
    }
    if (e->unit)
        buf_printf(out, " %s", e->unit);
}

void schema_describe(const struct schema_entry *e, struct buf *out)
{
    static const char *const ref_words[] = {"a name", "a provider name", "a route name"};
    switch (e->type) {
    case ST_STRING:
        if (e->names) {
            buf_puts(out, "one of ");
            put_names(out, e->names, "\"");
        } else {
            buf_puts(out, "a non-empty string");
        }
        return;
    case ST_BOOL:
        buf_puts(out, "true or false");
        return;
    case ST_ENUM:
        buf_puts(out, "one of ");
        put_names(out, e->names, "\"");
        return;
    case ST_OBJECT:
        buf_puts(out, "an object");
        return;
    case ST_OBJECT_ARRAY:
        buf_puts(out, e->min >= 1 ? "a non-empty array of objects" : "an array of objects");
        return;
    case ST_REF:
    case ST_REF_OPT:
        buf_puts(out, ref_words[e->ref]);
        return;
    case ST_REF_LIST:
        buf_printf(out, "%s array of %s names", e->min >= 1 ? "a non-empty" : "an",
                   e->ref == REF_ROUTE ? "route" : "provider");
        return;
    case ST_LONG:
    case ST_MS:
    case ST_DOUBLE:
        break;
    }
    buf_puts(out, e->type == ST_DOUBLE ? "a number " : "an integer ");
    if (e->min == e->max)
        buf_puts(out, "equal to ");
    else if (e->max < SCHEMA_UNBOUNDED && !(e->flags & SF_GT_MIN))
        buf_puts(out, "in ");
    struct buf range;
    buf_init(&range);
    schema_describe_range(e, &range);
    buf_puts(out, buf_str(&range));
    buf_cleanup(&range);
    if (e->flags & SF_INHERIT)
        buf_puts(out, ", or -1 to inherit");
}

void schema_describe_default(const struct schema_entry *e, struct buf *out)
{
    if (e->flags & SF_REQUIRED) {
        buf_puts(out, "required");
        return;
    }
    if (e->def_doc) {
        buf_puts(out, e->def_doc);
        return;
    }
    switch (e->type) {
    case ST_STRING:
        if (e->def_s)
            buf_printf(out, "\"%s\"", e->def_s);
        else
            buf_puts(out, "none");
        return;
    case ST_LONG:
    case ST_MS:
    case ST_DOUBLE:
        schema_put_num(out, e->def);
        return;
    case ST_BOOL:
        buf_puts(out, e->def != 0 ? "true" : "false");
        return;
    case ST_ENUM:
        buf_printf(out, "\"%s\"", e->names[(size_t)e->def]);
        return;
    case ST_OBJECT:
        buf_puts(out, "defaults");
        return;
    case ST_OBJECT_ARRAY:
    case ST_REF_LIST:
        buf_puts(out, "[]");
        return;
    case ST_REF:
    case ST_REF_OPT:
        buf_puts(out, "none");
        return;
    }
}
