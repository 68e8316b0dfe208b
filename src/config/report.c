/*
 * report.c - what `switchboard check` shows about a valid config: warnings about risky but
 * legal settings, a human summary of targets and routes, and the Markdown configuration
 * reference generated from the schema tables. Never prints an API key or admin token (only
 * the names of the variables holding them). Pure; any thread.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- Warnings --------------------------------------------------------------------------- */

/* Adds the message unless the same text is already there (a target in several routes). */
static void warn_once(struct config_diag *w, const char *fmt, ...) SB_PRINTF(2, 3);

static void warn_once(struct config_diag *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *text = xvasprintf(fmt, ap);
    va_end(ap);
    bool seen = false;
    for (size_t i = 0; i < w->n && !seen; i++)
        seen = str_eq(w->items[i], text);
    if (!seen)
        config_diag_add(w, "%s", text);
    free(text);
}

/* The router settings a route runs with, and where each comes from. */
struct timing {
    long attempts;
    int64_t deadline;
    int64_t hedge;
    char attempts_from[48];
    char deadline_from[48];
    char hedge_from[48];
};

/* "routes[1].deadline_ms" when the route sets it, else "router.deadline_ms". */
static void origin(char *dst, size_t n, bool own, size_t i, const char *key)
{
    if (own)
        snprintf(dst, n, "routes[%zu].%s", i, key);
    else
        snprintf(dst, n, "router.%s", key);
}

static void route_timing(const struct config *cfg, size_t i, struct timing *tm)
{
    const struct config_route *r = &cfg->routes[i];
    const struct config_router *rt = &cfg->router;
    tm->attempts = r->max_attempts >= 0 ? r->max_attempts : rt->max_attempts;
    tm->deadline = r->deadline_ms >= 0 ? r->deadline_ms : rt->deadline_ms;
    tm->hedge = r->hedge_after_ms >= 0 ? r->hedge_after_ms : rt->hedge_after_ms;
    origin(tm->attempts_from, sizeof tm->attempts_from, r->max_attempts >= 0, i, "max_attempts");
    origin(tm->deadline_from, sizeof tm->deadline_from, r->deadline_ms >= 0, i, "deadline_ms");
    origin(tm->hedge_from, sizeof tm->hedge_from, r->hedge_after_ms >= 0, i, "hedge_after_ms");
}

/* Timeouts of one target under one route's settings. */
static void warn_target_timing(struct config_diag *w, const struct config *cfg, size_t t,
                               const struct timing *tm)
{
    const struct config_target *x = &cfg->targets[t];
    int64_t fb = x->first_byte_timeout_ms;
    if ((int64_t)tm->attempts * fb > tm->deadline) {
        int64_t fit = tm->deadline / fb;
        char fits[96];
        if (fit == 0)
            snprintf(fits, sizeof fits, "even the first attempt's timeout outlasts the deadline");
        else
            snprintf(fits, sizeof fits, "only %lld of %ld attempts fit before the deadline",
                     (long long)fit, tm->attempts);
        warn_once(w,
                  "%s %ld x providers[%zu].first_byte_timeout_ms %lld > %s %lld: if \"%s\" "
                  "stalls, %s; lower first_byte_timeout_ms or raise deadline_ms",
                  tm->attempts_from, tm->attempts, t, (long long)fb, tm->deadline_from,
                  (long long)tm->deadline, x->name, fits);
    }
    if (tm->hedge > 0 && tm->hedge >= fb)
        warn_once(w,
                  "%s %lld >= providers[%zu].first_byte_timeout_ms %lld: an attempt on \"%s\" "
                  "times out before the hedge would start, so hedging never helps it",
                  tm->hedge_from, (long long)tm->hedge, t, (long long)fb, x->name);
}

static void warn_route(struct config_diag *w, const struct config *cfg, size_t i)
{
    const struct config_route *r = &cfg->routes[i];
    size_t enabled = 0;
    struct timing tm;
    route_timing(cfg, i, &tm);
    for (size_t j = 0; j < r->n_targets; j++) {
        const struct config_target *x = &cfg->targets[r->targets[j]];
        enabled += x->enabled;
        if (r->strategy == STRATEGY_CHEAPEST && !x->has_price)
            warn_once(w,
                      "routes[%zu] (\"%s\"): strategy \"cheapest\" but providers[%zu] (\"%s\") "
                      "has no price, so its cost cannot be compared; set its price (0 for a "
                      "free local model)",
                      i, r->name, r->targets[j], x->name);
        warn_target_timing(w, cfg, r->targets[j], &tm);
    }
    if (r->n_targets == 1 && r->n_fallback == 0)
        warn_once(w,
                  "routes[%zu] (\"%s\"): a single target and no fallback, so calls fail "
                  "whenever \"%s\" does; add a target or a fallback route",
                  i, r->name, cfg->targets[r->targets[0]].name);
    if (enabled == 0)
        warn_once(w, "routes[%zu] (\"%s\"): every target is disabled, so %s", i, r->name,
                  r->n_fallback ? "calls go straight to the fallback routes"
                                : "every call fails until a key is set");
}

void config_warnings(const struct config *cfg, struct config_diag *warns)
{
    for (size_t i = 0; i < cfg->n_targets; i++) {
        const struct config_target *t = &cfg->targets[i];
        if (!t->enabled)
            warn_once(warns,
                      "providers[%zu] (\"%s\"): disabled because %s; set the variable to use "
                      "this target",
                      i, t->name, t->disabled_reason);
    }
    for (size_t i = 0; i < cfg->n_routes; i++)
        warn_route(warns, cfg, i);
    bool any_cache = false;
    for (size_t i = 0; i < cfg->n_routes; i++)
        any_cache |= cfg->routes[i].cache.enabled;
    if (cfg->guard.enabled && cfg->guard.action == GUARD_ACTION_CACHE && !any_cache)
        warn_once(warns, "guard.action is \"cache\" but no route has cache.enabled, so every "
                         "storm is throttled; enable routes[].cache where answers may be reused");
    config_warn_exposure(cfg, warns);
}

/* ---- Summary ---------------------------------------------------------------------------- */

static int width(const char *s, int w)
{
    int n = (int)strlen(s ? s : "");
    return n > w ? n : w;
}

static void put_price(struct buf *b, const struct config_target *t)
{
    if (!t->has_price) {
        buf_puts(b, "no price");
        return;
    }
    buf_printf(b, "%g/%g", t->price.input_per_mtok, t->price.output_per_mtok);
    if (t->price.cached_input_per_mtok != t->price.input_per_mtok)
        buf_printf(b, " (cached %g)", t->price.cached_input_per_mtok);
}

static void summary_targets(const struct config *cfg, struct buf *out)
{
    int wn = 4, wk = 4, wm = 5, wp = 17;
    struct buf *prices = xcalloc(cfg->n_targets ? cfg->n_targets : 1, sizeof *prices);
    for (size_t i = 0; i < cfg->n_targets; i++) {
        const struct config_target *t = &cfg->targets[i];
        wn = width(t->name, wn);
        wk = width(provider_kind_name(t->kind), wk);
        wm = width(t->model, wm);
        buf_init(&prices[i]);
        put_price(&prices[i], t);
        wp = width(buf_str(&prices[i]), wp);
    }
    buf_printf(out, "targets (%zu):\n  %-*s  %-*s  %-*s  %6s  %-*s  %s\n", cfg->n_targets, wn,
               "NAME", wk, "KIND", wm, "MODEL", "WEIGHT", wp, "PRICE in/out $/1M", "BASE URL");
    for (size_t i = 0; i < cfg->n_targets; i++) {
        const struct config_target *t = &cfg->targets[i];
        buf_printf(out, "  %-*s  %-*s  %-*s  %6g  %-*s  ", wn, t->name, wk,
                   provider_kind_name(t->kind), wm, t->model, t->weight, wp, buf_str(&prices[i]));
        config_url_redacted(t->base_url, out);
        buf_putc(out, '\n');
        if (t->enabled)
            buf_printf(out, "  %-*s  enabled%s%s\n", wn, "", t->api_key_env ? ", key from " : "",
                       t->api_key_env ? t->api_key_env : ", no key");
        else
            buf_printf(out, "  %-*s  DISABLED: %s\n", wn, "", t->disabled_reason);
        buf_cleanup(&prices[i]);
    }
    free(prices);
}

static void put_names(struct buf *b, const size_t *idx, size_t n, const struct config *cfg,
                      bool routes)
{
    for (size_t j = 0; j < n; j++)
        buf_printf(b, "%s%s", j ? ", " : "",
                   routes ? cfg->routes[idx[j]].name : cfg->targets[idx[j]].name);
    if (n == 0)
        buf_puts(b, "-");
}

static void summary_routes(const struct config *cfg, struct buf *out)
{
    int wn = 4;
    for (size_t i = 0; i < cfg->n_routes; i++)
        wn = width(cfg->routes[i].name, wn);
    buf_printf(out, "routes (%zu):\n  %-*s  %-10s  %s\n", cfg->n_routes, wn, "NAME", "STRATEGY",
               "TARGETS -> FALLBACK ROUTES");
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const struct config_route *r = &cfg->routes[i];
        buf_printf(out, "  %-*s  %-10s  ", wn, r->name, route_strategy_name(r->strategy));
        put_names(out, r->targets, r->n_targets, cfg, false);
        if (r->n_fallback) {
            buf_puts(out, " -> ");
            put_names(out, r->fallback, r->n_fallback, cfg, true);
        }
        if (r->baseline >= 0)
            buf_printf(out, "  (baseline %s)", cfg->targets[r->baseline].name);
        if (r->cache.enabled)
            buf_printf(out, "  (cache %ld entries, %lld s)", r->cache.max_entries,
                       (long long)(r->cache.ttl_ms / 1000));
        if (r->quality_guard.enabled)
            buf_printf(out, "  (quality guard: %s within %g points, %s)",
                       quality_metric_name(r->quality_guard.metric), r->quality_guard.margin_pct,
                       r->quality_guard.shift ? "shifts weight" : "events only");
        buf_putc(out, '\n');
    }
}

static void summary_rules(const struct config *cfg, struct buf *out)
{
    if (cfg->n_rules == 0)
        return;
    buf_printf(out, "rules (%zu, first match wins):\n", cfg->n_rules);
    for (size_t i = 0; i < cfg->n_rules; i++) {
        const struct config_rule *r = &cfg->rules[i];
        buf_printf(out, "  %zu. ", i + 1);
        size_t mark = out->len;
        if (r->match_model) {
            buf_puts(out, "model ");
            cfg_quote(out, r->match_model);
        }
        if (r->match_tag) {
            buf_puts(out, out->len > mark ? ", tag " : "tag ");
            cfg_quote(out, r->match_tag);
        }
        if (r->min_prompt_tokens >= 0)
            buf_printf(out, "%sprompt >= %ld tokens", out->len > mark ? ", " : "",
                       r->min_prompt_tokens);
        if (r->max_prompt_tokens >= 0)
            buf_printf(out, "%sprompt <= %ld tokens", out->len > mark ? ", " : "",
                       r->max_prompt_tokens);
        if (r->match_user) {
            buf_puts(out, out->len > mark ? ", user " : "user ");
            cfg_quote(out, r->match_user);
        }
        if (r->match_users_file)
            buf_printf(out, "%suser in %s (%zu users)", out->len > mark ? ", " : "",
                       r->match_users_file, r->n_users);
        if (out->len == mark)
            buf_puts(out, "any request");
        buf_printf(out, " -> %s\n", cfg->routes[r->route].name);
    }
    buf_putc(out, '\n');
}

static void summary_budgets(const struct config *cfg, struct buf *out)
{
    if (cfg->n_budgets == 0)
        return;
    buf_printf(out, "budgets (%zu):\n", cfg->n_budgets);
    for (size_t i = 0; i < cfg->n_budgets; i++) {
        const struct config_budget *b = &cfg->budgets[i];
        buf_printf(out, "  %s", budget_scope_name(b->scope));
        if (b->name) {
            buf_putc(out, ' ');
            cfg_quote(out, b->name);
        }
        if (b->daily_usd > 0)
            buf_printf(out, "  daily $%g", b->daily_usd);
        if (b->monthly_usd > 0)
            buf_printf(out, "  monthly $%g", b->monthly_usd);
        buf_printf(out, "  (warn at %g%%)\n", b->soft_pct);
    }
    buf_putc(out, '\n');
}

static void summary_settings(const struct config *cfg, struct buf *out)
{
    const struct config_router *r = &cfg->router;
    const struct config_gateway *g = &cfg->gateway;
    buf_printf(out, "router: %ld attempts, deadline %lld ms, backoff %lld..%lld ms, hedge ",
               r->max_attempts, (long long)r->deadline_ms, (long long)r->backoff_base_ms,
               (long long)r->backoff_cap_ms);
    if (r->hedge_after_ms > 0)
        buf_printf(out, "after %lld ms", (long long)r->hedge_after_ms);
    else
        buf_puts(out, "off");
    buf_printf(out, ", breaker %ld failures or %g%% errors over %lld ms\n", r->breaker_failures,
               r->breaker_error_rate * 100, (long long)r->breaker_window_ms);
    buf_printf(out, "gateway: listen %s", g->listen);
    if (g->admin_listen)
        buf_printf(out, " (ops endpoints on %s)", g->admin_listen);
    buf_puts(out, ", admin API ");
    if (!g->admin_token_env && g->n_admin_tokens)
        buf_puts(out, "by named tokens\n");
    else if (!g->admin_token_env)
        buf_puts(out, "off\n");
    else if (g->admin_token)
        buf_printf(out, "on (token from %s)\n", g->admin_token_env);
    else
        buf_printf(out, "off (%s is not set)\n", g->admin_token_env);
    for (size_t i = 0; i < g->n_admin_tokens; i++)
        buf_printf(out, "gateway: admin token \"%s\" %s (%s%s)\n", g->admin_tokens[i].name,
                   g->admin_tokens[i].token ? "on" : "off", g->admin_tokens[i].token_env,
                   g->admin_tokens[i].token ? "" : " is not set");
    const struct config_fleet *fl = &cfg->fleet;
    if (fl->redis)
        buf_printf(out, "fleet: redis %s as %s, keys %s*, budgets on outage: %s%s%s\n", fl->redis,
                   fl->name ? fl->name : "hostname:port", fl->key_prefix,
                   fl->on_outage == FLEET_OUTAGE_SHARE  ? "share"
                   : fl->on_outage == FLEET_OUTAGE_OPEN ? "open"
                                                        : "closed",
                   fl->share_breakers ? ", breakers shared" : "",
                   fl->password_env && !fl->password ? " (password variable not set)" : "");
    const struct config_guard *gd = &cfg->guard;
    if (gd->enabled)
        buf_printf(out,
                   "guard: %s; storm = same prompt > %ld times in %lld ms; spike = %gx "
                   "baseline (at least %g req/s)\n",
                   guard_action_name(gd->action), gd->identical_max,
                   (long long)gd->identical_window_ms, gd->spike_factor,
                   gd->spike_factor * gd->spike_min_rps);
    else
        buf_puts(out, "guard: off\n");
    buf_printf(out, "ledger: %s (batches of %lld ms)\nlog level: %s\n", cfg->ledger.path,
               (long long)cfg->ledger.batch_ms, cfg->log_level);
}

void config_summary(const struct config *cfg, struct buf *out)
{
    summary_targets(cfg, out);
    buf_putc(out, '\n');
    summary_routes(cfg, out);
    buf_putc(out, '\n');
    summary_rules(cfg, out);
    summary_budgets(cfg, out);
    summary_settings(cfg, out);
}

/* ---- Markdown reference ----------------------------------------------------------------- */

static const char *type_word(const struct schema_entry *e)
{
    switch (e->type) {
    case ST_STRING:
        return e->names ? "enum" : "string";
    case ST_LONG:
    case ST_MS:
        return "integer";
    case ST_DOUBLE:
        return "number";
    case ST_BOOL:
        return "boolean";
    case ST_ENUM:
        return "enum";
    case ST_OBJECT:
        return "object";
    case ST_OBJECT_ARRAY:
        return "array of objects";
    case ST_REF:
    case ST_REF_OPT:
        return e->ref == REF_ROUTE ? "route name" : "provider name";
    case ST_REF_LIST:
        return e->ref == REF_ROUTE ? "array of route names" : "array of provider names";
    }
    return "?";
}

static void md_cell(struct buf *out, const char *s)
{
    buf_puts(out, " ");
    for (; *s; s++) {
        if (*s == '|')
            buf_puts(out, "\\|");
        else
            buf_putc(out, *s);
    }
    buf_puts(out, " |");
}

static void md_table(const struct schema *s, struct buf *out)
{
    if (s == &config_schema_root)
        buf_printf(out, "### %s\n\n%s\n\n", s->title, s->help);
    else
        buf_printf(out, "### `%s`\n\n%s\n\n", s->title, s->help);
    buf_puts(out, "| key | type | default | range / unit | description |\n"
                  "| --- | --- | --- | --- | --- |\n");
    struct buf cell;
    buf_init(&cell);
    for (size_t i = 0; i < s->n; i++) {
        const struct schema_entry *e = &s->entries[i];
        buf_printf(out, "| `%s` |", e->key);
        md_cell(out, type_word(e));
        buf_reset(&cell);
        schema_describe_default(e, &cell);
        md_cell(out, buf_str(&cell));
        buf_reset(&cell);
        schema_describe_range(e, &cell);
        for (size_t k = 0; e->names && e->names[k]; k++)
            buf_printf(&cell, "%s`%s`", k ? ", " : "", e->names[k]);
        if (e->flags & SF_INHERIT)
            buf_puts(&cell, "; -1 = inherit");
        md_cell(out, buf_str(&cell));
        md_cell(out, e->help);
        buf_putc(out, '\n');
    }
    buf_cleanup(&cell);
    buf_putc(out, '\n');
    for (size_t i = 0; i < s->n; i++) {
        if (s->entries[i].sub)
            md_table(s->entries[i].sub, out);
    }
}

void config_schema_markdown(struct buf *out)
{
    md_table(&config_schema_root, out);
}
