/*
 * internal.h - private to src/config: the schema table types, the parse context and the
 * helpers the config files share. Nothing outside src/config includes this.
 *
 * How a config is built (all on the caller's thread, no shared state):
 *   1. config.c parses the JSON text with cJSON and reports malformed JSON with line:column;
 *   2. walk.c fills a zeroed struct config from the schema tables in schema.c: defaults
 *      first, then every key of every object (unknown keys, wrong types and ranges are
 *      reported with their JSON path); names that refer to targets or routes are queued as
 *      pending references;
 *   3. validate.c resolves those references and checks what one table row cannot see
 *      (duplicates, fallback cycles, per-kind requirements, budgets), then resolves
 *      environment variables;
 *   4. report.c turns a valid config into warnings and a summary, and the tables into the
 *      Markdown reference.
 */
#ifndef SWITCHBOARD_CONFIG_INTERNAL_H
#define SWITCHBOARD_CONFIG_INTERNAL_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "switchboard/config.h"

/* ---- Schema tables ---------------------------------------------------------------------- */

enum schema_type {
    ST_STRING,       /* char *, xstrdup'd; names (if set) lists the allowed values */
    ST_LONG,         /* long; integral JSON number */
    ST_MS,           /* int64_t milliseconds; integral JSON number */
    ST_DOUBLE,       /* double */
    ST_BOOL,         /* bool */
    ST_ENUM,         /* int-sized enum; JSON string from names */
    ST_OBJECT,       /* nested struct at off, described by sub */
    ST_OBJECT_ARRAY, /* pointer at off, size_t count at aux_off; elements of elem_size */
    ST_REF,          /* JSON string naming a target/route -> size_t index at off */
    ST_REF_OPT,      /* the same -> long index at off, -1 when absent */
    ST_REF_LIST,     /* JSON array of names -> size_t * at off, size_t count at aux_off */
};

enum schema_ref {
    REF_NONE,
    REF_TARGET, /* a providers[].name */
    REF_ROUTE,  /* a routes[].name */
};

enum schema_flag {
    SF_REQUIRED = 1u << 0, /* the key must be present */
    SF_UNIQUE = 1u << 1,   /* ST_STRING: no two elements of the enclosing array share it */
    SF_HAS = 1u << 2,      /* ST_OBJECT: set the bool at aux_off when the key is present */
    SF_GT_MIN = 1u << 3,   /* numbers: value must be > min rather than >= min */
    SF_INHERIT = 1u << 4,  /* numbers: -1 is also accepted and means "inherit" */
    SF_NO_STORE = 1u << 5, /* checked but not stored (the "version" key) */
};

#define SCHEMA_UNBOUNDED   9007199254740992.0 /* 2^53: no upper bound */
#define SCHEMA_MAX_ENTRIES 64                 /* one bit each in the walker's seen-mask */

struct schema;

/* Extra check on a string value (the walker's own copy): returns NULL when fine, else the
 * problem ("expected ..."). May normalise in place (e.g. strip a trailing '/'). The
 * message never quotes the value: the value may be a secret pasted in the wrong place. */
typedef const char *(*schema_check_fn)(char *value);

struct schema_entry {
    const char *key;
    enum schema_type type;
    unsigned flags;
    size_t off;     /* where the value lives, relative to the object's struct */
    size_t aux_off; /* arrays: the size_t count; SF_HAS: the bool */
    double min;     /* numbers: bounds; arrays: minimum number of elements */
    double max;
    double def;               /* numbers, bools, enums (index into names) */
    const char *def_s;        /* ST_STRING: the default (NULL: none) */
    const char *def_doc;      /* shown in the docs instead of the default ("inherit", ...) */
    const char *unit;         /* "ms", "tokens", "USD per 1M tokens", ... */
    const char *help;         /* one line for the docs and "missing required key" */
    const struct schema *sub; /* ST_OBJECT, ST_OBJECT_ARRAY */
    size_t elem_size;         /* ST_OBJECT_ARRAY */
    const char *const *names; /* ST_ENUM, ST_STRING: NULL-terminated allowed values */
    enum schema_ref ref;      /* ST_REF, ST_REF_OPT, ST_REF_LIST */
    schema_check_fn check;    /* ST_STRING */
};

struct schema {
    const char *title; /* heading in the docs: "providers[]", "router", ... */
    const char *help;  /* a sentence or two under the heading */
    const struct schema_entry *entries;
    size_t n;
};

extern const struct schema config_schema_root;
extern const char *const config_kind_names[];
extern const char *const config_strategy_names[];
extern const char *const config_scope_names[];
extern const char *const config_probe_kind_names[];
extern const char *const config_guard_action_names[];

/* Per provider kind: the default base URL and the usual key variable (NULL: none). */
struct config_kind_info {
    const char *base_url;
    const char *key_env;
};
const struct config_kind_info *config_kind_info(enum provider_kind k);

/* A number as people write it: integers without a fraction, others with %g. */
void schema_put_num(struct buf *out, double v);
const struct schema_entry *schema_find(const struct schema *s, const char *key);
/* The entry's type, bounds and unit in words: "an integer in 1..10 (milliseconds)". */
void schema_describe(const struct schema_entry *e, struct buf *out);
/* The range/unit part alone, for the docs ("1..10 ms"); empty when there is none. */
void schema_describe_range(const struct schema_entry *e, struct buf *out);
/* The default in words, for the docs ("4096", "required", "inherit", ...). */
void schema_describe_default(const struct schema_entry *e, struct buf *out);

/* ---- Parse context ---------------------------------------------------------------------- */

#define CONFIG_MAX_ERRORS 100  /* more are counted, not listed */
#define CONFIG_MAX_ARRAY  1000 /* elements in any one array */

struct cfg_path {
    char s[256];
    size_t len;
};

/* A name in the config that refers to a target or route, resolved after the walk. */
struct cfg_ref {
    char *path; /* "routes[0].targets[1]" */
    char *name;
    enum schema_ref kind;
    void *dest; /* size_t * or long * */
    bool dest_long;
};

struct cfg_ctx {
    struct config *cfg;
    struct config_diag *errs;
    size_t n_errors; /* including those not listed */
    struct cfg_path path;
    struct cfg_ref *refs;
    size_t n_refs;
    size_t cap_refs;
    config_getenv_fn getenv_fn;
    void *env_ctx;
};

/* Path helpers: push returns the length to pop back to. */
size_t cfg_path_key(struct cfg_path *p, const char *key);
size_t cfg_path_index(struct cfg_path *p, size_t i);
void cfg_path_pop(struct cfg_path *p, size_t len);

/* Adds "PATH: message" (just the message at the root). */
void cfg_err(struct cfg_ctx *ctx, const char *fmt, ...) SB_PRINTF(2, 3);
/* The same with an explicit path. */
void cfg_err_at(struct cfg_ctx *ctx, const char *path, const char *fmt, ...) SB_PRINTF(3, 4);
/* Adds the "(N more errors not shown)" line when errors were dropped. */
void cfg_err_finish(struct cfg_ctx *ctx);

/* Appends s for a message: printable ASCII kept, the rest escaped, cut after max bytes.
 * cfg_quote adds double quotes around it (max 64). */
void cfg_printable(struct buf *out, const char *s, size_t max);
void cfg_quote(struct buf *out, const char *s);
/* The candidate closest to word (typo distance), or NULL when none is close. */
const char *cfg_closest(const char *word, const char *const *cands, size_t n);

/* ---- Walk (walk.c) ---------------------------------------------------------------------- */

void config_walk_defaults(const struct schema *s, void *base);
/* Parses obj into base (defaults already applied) under ctx->path. */
void config_walk_object(struct cfg_ctx *ctx, const struct schema *s, const cJSON *obj, void *base);
/* Frees what the walker allocated in base (not base itself). */
void config_walk_release(const struct schema *s, void *base);

/* ---- Client keys (clients.c) ------------------------------------------------------------ */

/* schema_check_fn for clients[] entries. */
const char *config_check_client_name(char *v);
const char *config_check_key_sha256(char *v);
const char *config_check_client_tag(char *v);
const char *config_check_client_expires(char *v);
/* Resolves clients[].expires into expires_ms; called by config_validate. */
void config_validate_clients(struct cfg_ctx *ctx);
/* users.c: reads rules[].match.users_file, resolves users.preferences_file, checks the
 * quality guards; config_release_users frees the users lists (before the schema walk). */
void config_validate_users(struct cfg_ctx *ctx, const char *source_path);
void config_release_users(struct config *cfg);
/* check's warnings about exposure: a non-loopback listen without client keys, credentials
 * embedded in a base_url. */
void config_warn_exposure(const struct config *cfg, struct config_diag *warns);

/* ---- Validation (validate.c) ------------------------------------------------------------ */

/* Resolves references and checks everything that spans entries; fills resolved fields
 * (api keys, base URL defaults, ledger path). */
void config_validate(struct cfg_ctx *ctx, const char *source_path);

#endif
