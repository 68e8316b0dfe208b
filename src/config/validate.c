/*
 * validate.c - the checks one schema row cannot make: names that refer to targets and
 * routes, duplicates in lists, fallback cycles, per-kind requirements, rule order, budgets,
 * router bounds that depend on each other. Then resolves what comes from outside the file:
 * API keys and the admin token (through the getenv hook) and the ledger path.
 * Works on a possibly half-filled config (after walk errors): every index is range-checked
 * and every name may be NULL. Pure apart from the getenv hook; any thread.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- References ------------------------------------------------------------------------- */

/* Names of all targets or routes (NULLs skipped), for did-you-mean. Caller frees. */
static const char **ref_names(const struct config *cfg, enum schema_ref kind, size_t *n)
{
    size_t count = kind == REF_TARGET ? cfg->n_targets : cfg->n_routes;
    const char **names = xmalloc((count ? count : 1) * sizeof *names);
    *n = 0;
    for (size_t i = 0; i < count; i++) {
        const char *s = kind == REF_TARGET ? cfg->targets[i].name : cfg->routes[i].name;
        if (s)
            names[(*n)++] = s;
    }
    return names;
}

static long ref_find(const struct config *cfg, enum schema_ref kind, const char *name)
{
    return kind == REF_TARGET ? config_find_target(cfg, name) : config_find_route(cfg, name);
}

/* "unknown provider "x"; did you mean "y"?" (or the known names when few). */
static void unknown_name(struct cfg_ctx *ctx, const char *path, enum schema_ref kind,
                         const char *name)
{
    const char *what = kind == REF_TARGET ? "provider" : "route";
    size_t n;
    const char **names = ref_names(ctx->cfg, kind, &n);
    const char *near = cfg_closest(name, names, n);
    struct buf b;
    buf_init(&b);
    buf_printf(&b, "unknown %s ", what);
    cfg_quote(&b, name);
    if (near) {
        buf_printf(&b, "; did you mean \"%s\"?", near);
    } else if (n > 0 && n <= 8) {
        buf_printf(&b, " (known %ss: ", what);
        for (size_t i = 0; i < n; i++)
            buf_printf(&b, "%s%s", i ? ", " : "", names[i]);
        buf_putc(&b, ')');
    }
    cfg_err_at(ctx, path, "%s", buf_str(&b));
    buf_cleanup(&b);
    free(names);
}

static void resolve_refs(struct cfg_ctx *ctx)
{
    for (size_t i = 0; i < ctx->n_refs; i++) {
        struct cfg_ref *r = &ctx->refs[i];
        long idx = ref_find(ctx->cfg, r->kind, r->name);
        if (idx < 0)
            unknown_name(ctx, r->path, r->kind, r->name);
        else if (r->dest_long)
            *(long *)r->dest = idx;
        else
            *(size_t *)r->dest = (size_t)idx;
    }
}

/* ---- Targets ---------------------------------------------------------------------------- */

static void check_target(struct cfg_ctx *ctx, size_t i)
{
    struct config_target *t = &ctx->cfg->targets[i];
    const struct config_kind_info *info = config_kind_info(t->kind);
    const char *kind = provider_kind_name(t->kind);
    if (!t->base_url && !info->base_url)
        cfg_err(ctx,
                "providers[%zu].base_url: missing required key for kind \"%s\" (the server's "
                "API root, e.g. \"http://127.0.0.1:11434/v1\")",
                i, kind);
    else if (!t->base_url)
        t->base_url = xstrdup(info->base_url);
    if (t->price.cached_input_per_mtok < 0) /* not given: cached tokens cost full price */
        t->price.cached_input_per_mtok = t->price.input_per_mtok;
    if (!t->api_key_env && info->key_env)
        cfg_err(ctx,
                "providers[%zu].api_key_env: missing required key for kind \"%s\" (the NAME "
                "of the environment variable holding the key, e.g. \"%s\")",
                i, kind, info->key_env);
    /* Gemini puts the model id in the URL path: one plain segment, nothing to escape. */
    if (t->kind == PROVIDER_GEMINI && t->model) {
        const char *id = str_has_prefix(t->model, "models/") ? t->model + 7 : t->model;
        if (!str_is_path_segment(id))
            cfg_err(ctx,
                    "providers[%zu].model: a Gemini model id goes into the URL path: expected "
                    "letters, digits, '.', '_' and '-' (e.g. \"gemini-2.5-flash\"), not \".\", "
                    "\"..\", '/', '?', '#' or '%%'",
                    i);
    }
}

/* API keys: an unset variable disables the target; the message names the variable only. */
static void resolve_secrets(struct cfg_ctx *ctx)
{
    for (size_t i = 0; i < ctx->cfg->n_targets; i++) {
        struct config_target *t = &ctx->cfg->targets[i];
        t->enabled = true;
        if (!t->api_key_env)
            continue;
        const char *v = ctx->getenv_fn(ctx->env_ctx, t->api_key_env);
        if (v && *v && str_has_ctl(v)) { /* never echo the value */
            cfg_err(ctx,
                    "providers[%zu].api_key_env: the value of %s contains a control character "
                    "(CR, LF, tab...): it would split the request's headers; fix the variable",
                    i, t->api_key_env);
            continue;
        }
        if (v && *v) {
            t->api_key = xstrdup(v);
            continue;
        }
        t->enabled = false;
        snprintf(t->disabled_reason, sizeof t->disabled_reason, "%s is %s", t->api_key_env,
                 v ? "empty" : "not set");
    }
    struct config_gateway *g = &ctx->cfg->gateway;
    if (g->admin_token_env) {
        const char *v = ctx->getenv_fn(ctx->env_ctx, g->admin_token_env);
        if (v && *v && str_has_ctl(v)) /* never echo the value */
            cfg_err(ctx,
                    "gateway.admin_token_env: the value of %s contains a control character "
                    "(CR, LF, tab...); a bearer token cannot carry one: fix the variable",
                    g->admin_token_env);
        else
            g->admin_token = v && *v ? xstrdup(v) : NULL;
    }
    for (size_t i = 0; i < g->n_admin_tokens; i++) {
        struct config_admin_token *t = &g->admin_tokens[i];
        const char *v = ctx->getenv_fn(ctx->env_ctx, t->token_env);
        if (v && *v && str_has_ctl(v)) /* never echo the value */
            cfg_err(ctx,
                    "gateway.admin_tokens[%zu].token_env: the value of %s contains a control "
                    "character (CR, LF, tab...); a bearer token cannot carry one: fix the "
                    "variable",
                    i, t->token_env);
        else
            t->token = v && *v ? xstrdup(v) : NULL;
    }
    struct config_fleet *fl = &ctx->cfg->fleet;
    if (fl->password_env) {
        const char *v = ctx->getenv_fn(ctx->env_ctx, fl->password_env);
        fl->password = v && *v ? xstrdup(v) : NULL;
    }
}

/* ---- Routes ----------------------------------------------------------------------------- */

/* Reports entries of list that appear earlier in it too. stamp has room for `range`
 * indices and is reused across calls: a slot equal to `gen` was seen in this list. */
static void check_list_dups(struct cfg_ctx *ctx, size_t route, const char *key, const size_t *list,
                            size_t n, size_t *stamp, size_t range, size_t gen)
{
    for (size_t j = 0; j < n; j++) {
        if (list[j] >= range)
            continue;
        if (stamp[list[j]] == gen) {
            const char *name = str_eq(key, "targets") ? ctx->cfg->targets[list[j]].name
                                                      : ctx->cfg->routes[list[j]].name;
            cfg_err(ctx, "routes[%zu].%s[%zu]: \"%s\" is listed twice", route, key, j,
                    name ? name : "?");
        }
        stamp[list[j]] = gen;
    }
}

static void check_route_weights(struct cfg_ctx *ctx, size_t i)
{
    const struct config_route *r = &ctx->cfg->routes[i];
    if (r->strategy != STRATEGY_WEIGHTED || r->n_targets == 0)
        return;
    for (size_t j = 0; j < r->n_targets; j++) {
        if (r->targets[j] >= ctx->cfg->n_targets)
            return; /* already reported */
        if (ctx->cfg->targets[r->targets[j]].weight > 0)
            return;
    }
    cfg_err(ctx,
            "routes[%zu].targets: every target of this weighted route has weight 0, so none "
            "would get traffic; give at least one a weight > 0 (providers[%zu].weight)",
            i, r->targets[0]);
}

static void check_route_timing(struct cfg_ctx *ctx, size_t i)
{
    const struct config_route *r = &ctx->cfg->routes[i];
    const struct config_router *rt = &ctx->cfg->router;
    if (r->hedge_after_ms < 0 && r->deadline_ms < 0)
        return; /* both inherited: checked once at router level */
    int64_t hedge = r->hedge_after_ms >= 0 ? r->hedge_after_ms : rt->hedge_after_ms;
    int64_t deadline = r->deadline_ms >= 0 ? r->deadline_ms : rt->deadline_ms;
    if (hedge > 0 && hedge >= deadline)
        cfg_err(ctx,
                "routes[%zu].%s: hedging after %lld ms never happens within the %lld ms "
                "deadline; use a smaller hedge_after_ms, or 0 to turn hedging off",
                i, r->hedge_after_ms >= 0 ? "hedge_after_ms" : "deadline_ms", (long long)hedge,
                (long long)deadline);
}

static void check_routes(struct cfg_ctx *ctx)
{
    struct config *cfg = ctx->cfg;
    size_t range = cfg->n_targets > cfg->n_routes ? cfg->n_targets : cfg->n_routes;
    size_t *stamp = xmalloc((range ? range : 1) * sizeof *stamp);
    for (size_t k = 0; k < range; k++)
        stamp[k] = SIZE_MAX;
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const struct config_route *r = &cfg->routes[i];
        check_list_dups(ctx, i, "targets", r->targets, r->n_targets, stamp, cfg->n_targets, 2 * i);
        check_list_dups(ctx, i, "fallback", r->fallback, r->n_fallback, stamp, cfg->n_routes,
                        2 * i + 1);
        check_route_weights(ctx, i);
        check_route_timing(ctx, i);
    }
    free(stamp);
}

/* Reports the cycle closed by the back edge from the top of stack to `to`. */
static void report_cycle(struct cfg_ctx *ctx, const size_t *stack, size_t depth, size_t to)
{
    const struct config_route *routes = ctx->cfg->routes;
    size_t k = 0;
    while (k < depth && stack[k] != to)
        k++;
    struct buf b;
    buf_init(&b);
    for (size_t j = k; j < depth; j++) {
        if (j - k == 16) {
            buf_puts(&b, "... -> ");
            j = depth - 1;
        }
        buf_printf(&b, "%s -> ", routes[stack[j]].name ? routes[stack[j]].name : "?");
    }
    buf_puts(&b, routes[to].name ? routes[to].name : "?");
    cfg_err(ctx,
            "routes[%zu].fallback: cycle %s; a fallback chain must end, remove one of these "
            "fallbacks",
            to, buf_str(&b));
    buf_cleanup(&b);
}

/* Depth-first search over fallback edges (iterative: the chain may be long). */
static void check_fallback_cycles(struct cfg_ctx *ctx)
{
    enum { WHITE, GRAY, BLACK };
    size_t n = ctx->cfg->n_routes;
    const struct config_route *routes = ctx->cfg->routes;
    unsigned char *color = xcalloc(n ? n : 1, 1);
    size_t *stack = xmalloc((n ? n : 1) * sizeof *stack);
    size_t *edge = xmalloc((n ? n : 1) * sizeof *edge);
    for (size_t root = 0; root < n; root++) {
        if (color[root] != WHITE)
            continue;
        size_t depth = 1;
        stack[0] = root;
        edge[0] = 0;
        color[root] = GRAY;
        while (depth > 0) {
            size_t u = stack[depth - 1];
            if (edge[depth - 1] >= routes[u].n_fallback) {
                color[u] = BLACK;
                depth--;
                continue;
            }
            size_t v = routes[u].fallback[edge[depth - 1]++];
            if (v >= n || color[v] == BLACK)
                continue;
            if (color[v] == GRAY) {
                report_cycle(ctx, stack, depth, v);
                continue;
            }
            color[v] = GRAY;
            stack[depth] = v;
            edge[depth] = 0;
            depth++;
        }
    }
    free(edge);
    free(stack);
    free(color);
}

/* ---- Rules, router, budgets ------------------------------------------------------------- */

static void check_rules(struct cfg_ctx *ctx)
{
    for (size_t i = 0; i < ctx->cfg->n_rules; i++) {
        const struct config_rule *r = &ctx->cfg->rules[i];
        bool empty = !r->match_model && !r->match_tag && r->min_prompt_tokens < 0 &&
                     r->max_prompt_tokens < 0 && !r->match_user && !r->match_users_file;
        if (empty && i + 1 < ctx->cfg->n_rules)
            cfg_err(ctx,
                    "rules[%zu].match: an empty match matches every request, so the rules "
                    "after it (rules[%zu] on) are unreachable; make it the last rule",
                    i, i + 1);
        if (r->min_prompt_tokens >= 0 && r->max_prompt_tokens >= 0 &&
            r->min_prompt_tokens > r->max_prompt_tokens)
            cfg_err(ctx,
                    "rules[%zu].match: min_prompt_tokens %ld > max_prompt_tokens %ld, so the "
                    "rule can never match",
                    i, r->min_prompt_tokens, r->max_prompt_tokens);
    }
}

static void check_router(struct cfg_ctx *ctx)
{
    const struct config_router *r = &ctx->cfg->router;
    if (r->backoff_cap_ms < r->backoff_base_ms)
        cfg_err(ctx,
                "router.backoff_cap_ms: %lld is below router.backoff_base_ms %lld; the cap "
                "must be at least the base",
                (long long)r->backoff_cap_ms, (long long)r->backoff_base_ms);
    if (r->hedge_after_ms > 0 && r->hedge_after_ms >= r->deadline_ms)
        cfg_err(ctx,
                "router.hedge_after_ms: hedging after %lld ms never happens within the %lld "
                "ms router.deadline_ms; use a smaller value, or 0 to turn hedging off",
                (long long)r->hedge_after_ms, (long long)r->deadline_ms);
}

static void check_gateway(struct cfg_ctx *ctx)
{
    const struct config_gateway *g = &ctx->cfg->gateway;
    if (g->max_body_bytes_total < g->max_body_bytes)
        cfg_err(ctx,
                "gateway.max_body_bytes_total: %ld is below gateway.max_body_bytes %ld; a "
                "request of the largest size could never be taken",
                g->max_body_bytes_total, g->max_body_bytes);
    size_t n = g->listen ? strlen(g->listen) : 0;
    bool ephemeral = n >= 2 && str_eq(g->listen + n - 2, ":0");
    if (g->admin_listen && g->listen && str_eq(g->admin_listen, g->listen) && !ephemeral)
        cfg_err(ctx,
                "gateway.admin_listen: \"%s\" is gateway.listen too; give it an address "
                "of its own",
                g->admin_listen);
}

static void check_budget_name(struct cfg_ctx *ctx, size_t i, const struct config_budget *b)
{
    const char *scope = budget_scope_name(b->scope);
    char path[64];
    snprintf(path, sizeof path, "budgets[%zu].name", i);
    switch (b->scope) {
    case BUDGET_GLOBAL:
        if (b->name)
            cfg_err_at(ctx, path,
                       "a global budget takes no name; remove it, or use scope "
                       "\"target\", \"route\" or \"tag\"");
        return;
    case BUDGET_TARGET:
    case BUDGET_ROUTE:
    case BUDGET_TAG:
        break;
    }
    if (!b->name) {
        cfg_err_at(ctx, path, "missing required key for scope \"%s\" (the %s it caps)", scope,
                   b->scope == BUDGET_TARGET ? "provider" : scope);
        return;
    }
    enum schema_ref kind = b->scope == BUDGET_TARGET  ? REF_TARGET
                           : b->scope == BUDGET_ROUTE ? REF_ROUTE
                                                      : REF_NONE;
    if (kind != REF_NONE && ref_find(ctx->cfg, kind, b->name) < 0)
        unknown_name(ctx, path, kind, b->name);
}

static void dup_budget(struct cfg_ctx *ctx, size_t i, size_t j, const struct config_budget *b)
{
    struct buf q;
    buf_init(&q);
    cfg_quote(&q, b->name ? b->name : "");
    cfg_err(ctx, "budgets[%zu]: a second %s budget for %s (budgets[%zu] is one); merge them", i,
            budget_scope_name(b->scope), buf_str(&q), j);
    buf_cleanup(&q);
}

static void check_budgets(struct cfg_ctx *ctx)
{
    const struct config *cfg = ctx->cfg;
    for (size_t i = 0; i < cfg->n_budgets; i++) {
        const struct config_budget *b = &cfg->budgets[i];
        check_budget_name(ctx, i, b);
        if (b->daily_usd <= 0 && b->monthly_usd <= 0)
            cfg_err(ctx,
                    "budgets[%zu]: no cap set; give daily_usd or monthly_usd (or both) a "
                    "value above 0",
                    i);
        for (size_t j = 0; j < i; j++) {
            const struct config_budget *o = &cfg->budgets[j];
            if (o->scope != b->scope || (b->scope != BUDGET_GLOBAL && !str_eq(o->name, b->name)))
                continue;
            if (b->scope == BUDGET_GLOBAL)
                cfg_err(ctx,
                        "budgets[%zu]: a second global budget (budgets[%zu] is one); "
                        "merge them",
                        i, j);
            else
                dup_budget(ctx, i, j, b);
            break;
        }
    }
}

/* A relative ledger path is relative to the config file's directory. */
/* A relative file name in the config is relative to the config file's directory. */
static void resolve_path(char **field, const char *source_path)
{
    char *p = *field;
    if (!p || !source_path || p[0] == '/' || str_eq(p, ":memory:"))
        return;
    const char *slash = strrchr(source_path, '/');
    if (!slash)
        return;
    *field = xasprintf("%.*s/%s", (int)(slash - source_path), source_path, p);
    free(p);
}

static void check_fleet_tls(struct cfg_ctx *ctx, const char *source_path)
{
    struct config_fleet *f = &ctx->cfg->fleet;
    bool any = f->tls_ca_file || f->tls_cert_file || f->tls_key_file || f->tls_server_name ||
               f->tls_insecure_skip_verify;
    if (any && !(f->redis && str_has_prefix(f->redis, "rediss://")))
        cfg_err(ctx, "fleet.tls_*: set, but fleet.redis is not a rediss:// URL");
    if (!f->tls_cert_file != !f->tls_key_file)
        cfg_err(ctx, "fleet.tls_cert_file and fleet.tls_key_file: give both or neither");
    resolve_path(&f->tls_ca_file, source_path);
    resolve_path(&f->tls_cert_file, source_path);
    resolve_path(&f->tls_key_file, source_path);
}

void config_validate(struct cfg_ctx *ctx, const char *source_path)
{
    resolve_refs(ctx);
    for (size_t i = 0; i < ctx->cfg->n_targets; i++)
        check_target(ctx, i);
    check_routes(ctx);
    check_fallback_cycles(ctx);
    check_rules(ctx);
    check_router(ctx);
    check_gateway(ctx);
    check_budgets(ctx);
    config_validate_clients(ctx);
    config_validate_users(ctx, source_path);
    check_fleet_tls(ctx, source_path);
    resolve_secrets(ctx);
    resolve_path(&ctx->cfg->ledger.path, source_path);
}
