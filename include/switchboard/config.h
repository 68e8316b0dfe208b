/*
 * config.h - console.json -> an immutable, validated struct config.
 *
 * Parsing is driven by one schema table per JSON object (name, type, bounds, default, unit,
 * help) in src/config/schema.c; the same table produces the error messages, the
 * `switchboard check` summary and the configuration reference in the README
 * (config_schema_markdown). Every error names its JSON path and the fix, e.g.
 *   providers[2].price.input_per_mtok: expected a number >= 0
 * All errors are collected, not just the first.
 *
 * Threads: a struct config is immutable after config_parse returns; any thread may read it.
 * A reload builds a new one and swaps it (the router's job); the old one is freed by its
 * owner once no call refers to it.
 */
#ifndef SWITCHBOARD_CONFIG_H
#define SWITCHBOARD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "switchboard/llm.h"
#include "switchboard/util.h"

enum provider_kind {
    PROVIDER_OPENAI,
    PROVIDER_ANTHROPIC,
    PROVIDER_GEMINI,
    PROVIDER_OPENAI_COMPATIBLE,
};
#define PROVIDER_KIND_COUNT (PROVIDER_OPENAI_COMPATIBLE + 1)
const char *provider_kind_name(enum provider_kind k); /* "openai", ..., "openai-compatible" */

enum route_strategy {
    STRATEGY_WEIGHTED,   /* smooth weighted round robin */
    STRATEGY_PRIORITY,   /* first healthy in list order */
    STRATEGY_CHEAPEST,   /* lowest estimated cost for this prompt */
    STRATEGY_FASTEST,    /* lowest recent TTFT (streams) / latency per output token */
    STRATEGY_LEAST_BUSY, /* fewest in-flight */
    STRATEGY_P2C,        /* power of two choices over peak-EWMA latency */
};
const char *route_strategy_name(enum route_strategy s); /* "weighted", ..., "least-busy" */

enum probe_kind {
    PROBE_LIST, /* GET the model list: proves liveness only (may end a breaker's cooldown) */
    PROBE_CHAT, /* a 1-token completion: a real call, may close a breaker */
};

struct config_probe {
    bool enabled;         /* default true */
    enum probe_kind kind; /* default list */
    int64_t interval_ms;  /* default 15000 */
    int64_t timeout_ms;   /* default 5000 */
};

/* One provider endpoint + model: a routing target. */
struct config_target {
    char *name;
    enum provider_kind kind;
    char *base_url;    /* defaulted per kind; required for openai-compatible */
    char *api_key_env; /* name of the env var holding the key; NULL: no auth (local servers) */
    char *model;       /* the provider's model id */
    bool has_price;    /* false when "price" is absent */
    struct llm_price price;
    long context_window;            /* tokens; 0 = unknown (never filtered on) */
    long default_max_tokens;        /* sent when the client gave none and the format needs one */
    char *anthropic_version;        /* default "2023-06-01" */
    int64_t connect_timeout_ms;     /* default 5000 */
    int64_t first_byte_timeout_ms;  /* default 30000 */
    int64_t total_timeout_ms;       /* default 300000 */
    int64_t stream_idle_timeout_ms; /* after the first byte, no byte for this long: cut; 0 off */
    long sse_max_event_bytes;       /* largest SSE line or event accepted; default 4 MiB */
    long max_concurrency;           /* 0 = unlimited */
    long rpm;                       /* requests per minute; 0 = unlimited */
    long tpm;                       /* tokens per minute; 0 = unlimited */
    bool fleet_limits; /* fleet mode: rpm, tpm and max_concurrency hold across the fleet */
    double weight;     /* default 1 */
    struct config_probe probe;

    /* Resolved at load time, never printed anywhere: */
    char *api_key;             /* value of $api_key_env; NULL when unset or no env named */
    bool enabled;              /* false when the key variable is named but unset */
    char disabled_reason[128]; /* e.g. "OPENAI_API_KEY is not set" (names the var only) */
};

/* Exact-match response cache of one route (see cache.h). Answers are stored only when
 * enabled; they are served only to requests the runaway guard flags with action "cache". */
struct config_cache {
    bool enabled;     /* default false */
    int64_t ttl_ms;   /* default 300000 */
    long max_entries; /* default 1000 */
    long max_bytes;   /* memory cap over keys and answers; default 64 MiB */
};

/* The quality guard of one route (ledger.h "quality"; src/gateway/guard_quality.c): a target
 * whose satisfaction or abandonment is worse than the route's baseline target (or a fixed
 * floor) by more than margin_pct percentage points, over at least min_volume ratings (calls,
 * for abandonment), raises an event and, with shift, has its weight overridden. */
enum quality_metric {
    QUALITY_METRIC_BOTH,
    QUALITY_METRIC_SATISFACTION,
    QUALITY_METRIC_ABANDONMENT,
};
struct config_quality_guard {
    bool enabled; /* default false */
    enum quality_metric metric;
    double margin_pct;       /* percentage points; default 5 */
    long min_volume;         /* ratings (calls for abandonment) per side; default 20 */
    int64_t window_ms;       /* how far back the figures look; default 1 h */
    double min_satisfaction; /* floor (-1..1) when the route has no baseline; -2 = none */
    double max_abandonment;  /* ceiling (0..1) when the route has no baseline; -1 = none */
    bool shift;              /* also override the target's weight */
    double shift_weight;     /* the weight it gets; default 0 */
    int64_t shift_ms;        /* the override's expiry; default 10 min */
};

/* A public model name (what clients send) -> targets. */
struct config_route {
    char *name;
    enum route_strategy strategy; /* default weighted */
    size_t *targets;              /* indices into config.targets, in listed order */
    size_t n_targets;
    size_t *fallback; /* indices into config.routes, tried in order */
    size_t n_fallback;
    long baseline; /* target index used as the cost baseline; -1 = none */
    /* Per-route overrides of the router defaults; -1 = inherit. */
    long max_attempts;
    int64_t deadline_ms;
    int64_t hedge_after_ms;
    int64_t queue_ms; /* every target rate limited, free within this: wait; 0 = answer 429 */
    struct config_cache cache;
    struct config_quality_guard quality_guard;
};

/* Picks a route from request facts; first matching rule wins, else model name = route. */
struct config_rule {
    char *match_model;      /* exact, or prefix when it ends in '*'; NULL = any */
    char *match_tag;        /* x-switchboard-tag value; NULL = any */
    long min_prompt_tokens; /* -1 = no bound */
    long max_prompt_tokens; /* -1 = no bound */
    char *match_user;       /* end user (OpenAI `user`): exact, or prefix ending in '*' */
    char *match_users_file; /* a file of user ids, one a line (relative to the config) */
    char **users;           /* its lines, sorted (loaded at config load); NULL without */
    size_t n_users;
    size_t route; /* index into config.routes */
};

/* Per-user routing: preferences (user -> "concise", "detailed" or a route name) come from
 * the file and the admin API (src/gateway/users.c); these two name the routes behind the
 * words. */
struct config_users {
    char *preferences_file; /* "user preference" per line; NULL: none */
    long concise_route;     /* routes index; -1 = none */
    long detailed_route;
};

struct config_router {
    long max_attempts;               /* per call, all targets together; default 3 */
    int64_t backoff_base_ms;         /* default 100 */
    int64_t backoff_cap_ms;          /* default 2000 */
    int64_t deadline_ms;             /* per call, covers every attempt; default 60000 */
    int64_t hedge_after_ms;          /* no first byte by then -> second attempt; 0 = off */
    long breaker_failures;           /* consecutive failures that open the breaker; default 5 */
    double breaker_error_rate;       /* error ratio over the window that opens it; default 0.5 */
    int64_t breaker_window_ms;       /* default 30000 */
    long breaker_min_volume;         /* calls in window before the rate counts; default 20 */
    int64_t breaker_cooldown_ms;     /* open -> half-open; default 30000 */
    long breaker_half_open_trials;   /* default 1 */
    int64_t breaker_cooldown_max_ms; /* re-opens double the cooldown up to this; default 300000 */
    long breaker_slow_strikes;       /* hung hedge losers in a row that open it; default 3 */
    int64_t rate_limit_cooldown_ms;  /* cooldown after a 429 without Retry-After; default 1000 */
    long workers; /* decode/encode worker threads, 0..16; -1 (absent) = online cores (capped) */
};

/* A named admin API token: the audit names who acted by this name. */
struct config_admin_token {
    char *name;      /* "oncall" */
    char *token_env; /* NAME of the variable holding the token */
    char *token;     /* resolved value; NULL when unset (this token is off) */
};

struct config_gateway {
    char *listen;         /* "127.0.0.1:8080" */
    long max_connections; /* default 1024 */
    long threads; /* gateway.listen's MHD threads; 0: on the router's loop; -1 (absent): by cores */
    long max_body_bytes;             /* default 4 MiB */
    int64_t idle_timeout_ms;         /* default 30000 */
    char *admin_token_env;           /* NULL = admin API off */
    char *admin_listen;              /* NULL = ops endpoints on listen only */
    int64_t drain_timeout_ms;        /* SIGTERM: in-flight calls may finish; default 30000 */
    int64_t request_timeout_ms;      /* whole request (headers + body) received; default 30000 */
    long max_connections_per_client; /* per client address; 0 = no cap; default 256 */
    long max_body_bytes_total;       /* request bytes held, all connections; 64 MiB */
    char *admin_token;               /* resolved value; NULL when unset */
    struct config_admin_token *admin_tokens; /* more tokens, each with a name */
    size_t n_admin_tokens;
};

struct config_ledger {
    char *path;                 /* default "switchboard.db" (relative to the config file) */
    int64_t batch_ms;           /* default 250 */
    bool hash_users;            /* store "u-" + 16 hex of SHA-256 instead of the OpenAI `user` */
    int64_t feedback_window_ms; /* POST /v1/feedback accepted this long after a call */
    long quality_min_volume;    /* ratings needed before a satisfaction figure is shown */
    char *quality_baseline;     /* "2026-11-01": quality is also shown since this UTC day */
};

enum budget_scope {
    BUDGET_GLOBAL,
    BUDGET_TARGET,
    BUDGET_ROUTE,
    BUDGET_TAG,
};
const char *budget_scope_name(enum budget_scope s);

struct config_budget {
    enum budget_scope scope;
    char *name;         /* target/route/tag name; NULL for global */
    double daily_usd;   /* 0 = no daily cap */
    double monthly_usd; /* 0 = no monthly cap */
    double soft_pct;    /* warning at this % of a cap; default 80 */
};

/* What the runaway guard does about an identical-prompt storm or a rate spike. */
enum guard_action {
    GUARD_ACTION_THROTTLE, /* 429 with a message saying why */
    GUARD_ACTION_CACHE,    /* answer from the route's response cache; throttle on a miss */
    GUARD_ACTION_OBSERVE,  /* only the event */
};
const char *guard_action_name(enum guard_action a); /* "throttle", "cache", "observe" */

struct config_guard {
    bool enabled;                /* default true */
    long identical_max;          /* same prompt from one tag more than this ... default 20 */
    int64_t identical_window_ms; /* ... within this window is a storm; default 60000 */
    double spike_factor;         /* 10 s rate above this x the tag's baseline is a spike; 5 */
    double spike_min_rps;        /* the baseline never counts as lower than this; default 2 */
    int64_t baseline_window_ms;  /* time constant of the per-tag baseline rate; 300000 */
    enum guard_action action;    /* default throttle */
};

/* A client key (see clients.h): who may call /v1/, as whom. Never holds the key itself. */
struct config_client {
    char *name;       /* in the ledger, metrics and console; unique */
    char *key_sha256; /* 64 hex digits (lower-cased at load) */
    size_t *routes;   /* indices into config.routes; n_routes == 0: every route */
    size_t n_routes;
    char *tag;        /* the tag its calls carry; NULL: its name */
    bool self_tag;    /* the client may send its own x-switchboard-tag */
    double daily_usd; /* 0 = no cap */
    double monthly_usd;
    long rpm, tpm;      /* 0 = unlimited */
    char *expires;      /* "2027-01-01" or "2027-01-01T12:00:00Z"; NULL: never */
    int64_t expires_ms; /* resolved from expires; 0 = never */
};

struct config_console {
    char *theme;        /* default "default" */
    int64_t refresh_ms; /* default 250 */
};

/* Fleet mode (fleet.h): several serve instances share state through Redis. */
enum fleet_outage {
    FLEET_OUTAGE_SHARE,  /* budgets: the last fleet total plus this instance's spend x instances */
    FLEET_OUTAGE_OPEN,   /* budgets: this instance's own spend only */
    FLEET_OUTAGE_CLOSED, /* budgets with a cap refuse calls until Redis is back */
};

struct config_fleet {
    char *redis;                 /* "redis://host:port/db", "unix:///path"; NULL = fleet mode off */
    char *name;                  /* this instance; NULL = hostname:port of gateway.listen */
    char *key_prefix;            /* default "switchboard:" */
    char *password_env;          /* NULL = no AUTH */
    char *password;              /* resolved value; NULL when unset */
    enum fleet_outage on_outage; /* default share */
    bool share_breakers;         /* an instance opening a breaker takes the target out on all */
    char *tls_ca_file;           /* rediss://: CA bundle to verify Redis; NULL = system's */
    char *tls_cert_file;         /* rediss://: client certificate; NULL = none */
    char *tls_key_file;          /* rediss://: its key */
    char *tls_server_name;       /* rediss://: name to verify; NULL = the URL's host */
    bool tls_insecure_skip_verify; /* rediss://: no certificate check (logged as a warning) */
};

struct config {
    char *source_path; /* file it came from, or NULL */
    struct config_target *targets;
    size_t n_targets;
    struct config_route *routes;
    size_t n_routes;
    struct config_rule *rules;
    size_t n_rules;
    struct config_budget *budgets;
    size_t n_budgets;
    struct config_router router;
    struct config_gateway gateway;
    struct config_ledger ledger;
    struct config_guard guard;
    struct config_console console;
    struct config_client *clients;
    size_t n_clients;
    struct config_users users;
    struct config_fleet fleet;
    char *log_level; /* "debug" | "info" | "warn" | "error"; default "info" */
};

const char *quality_metric_name(enum quality_metric m);
/* Whether user is in rule->users (binary search). */
bool config_rule_has_user(const struct config_rule *r, const char *user);

/* A list of messages ("path: problem"). Caller's storage. */
struct config_diag {
    char **items;
    size_t n;
    size_t cap;
};
void config_diag_init(struct config_diag *d);
void config_diag_cleanup(struct config_diag *d);
void config_diag_add(struct config_diag *d, const char *fmt, ...) SB_PRINTF(2, 3);

/* Looks up an environment variable; NULL when unset. Tests pass their own. */
typedef const char *(*config_getenv_fn)(void *ctx, const char *name);

/*
 * Parses and validates JSON text. On success returns a new config (free with config_free)
 * and leaves errs empty; on failure returns NULL with every problem in errs. getenv_fn may
 * be NULL (uses getenv). source_path may be NULL; relative ledger paths resolve against it.
 */
struct config *config_parse(const char *json, size_t len, const char *source_path,
                            config_getenv_fn getenv_fn, void *env_ctx, struct config_diag *errs);
/* Reads the file then config_parse. I/O errors go into errs ("FILE: No such file..."). */
struct config *config_load(const char *path, struct config_diag *errs);
void config_free(struct config *cfg); /* NULL-safe */

/* Risky-but-valid settings, for `switchboard check`: a cost strategy over a target without
 * a price; attempts x timeouts beyond the deadline; a single-target route without fallback;
 * disabled targets. */
void config_warnings(const struct config *cfg, struct config_diag *warns);

/* Appends url with any user:password@ part and query string replaced by "***" (base URLs
 * may embed credentials; they are never printed). */
void config_url_redacted(const char *url, struct buf *out);
/* Whether url embeds credentials: a user:password@ part or a key/token query parameter. */
bool config_url_has_credentials(const char *url);

/* Human summary of targets and routes for `switchboard check` (no secrets). */
void config_summary(const struct config *cfg, struct buf *out);

/* The configuration reference, in Markdown, generated from the schema tables. */
void config_schema_markdown(struct buf *out);

/* Lookups; -1 when absent. */
long config_find_target(const struct config *cfg, const char *name);
long config_find_route(const struct config *cfg, const char *name);

#endif
