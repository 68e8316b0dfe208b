/*
 * remote_state.c - the pure pieces of attaching: GET /admin/state JSON (as
 * src/gateway/state.c writes it) back into a struct router_snapshot, and several instances'
 * snapshots merged into the one the board draws (sums, worst state, which instance).
 *
 * Pure: no I/O, no globals; any thread. A cJSON tree never leaves the function that parsed it.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "switchboard/console_backend.h"
#include "switchboard/hist.h"

/* ---- reading fields ---------------------------------------------------------------------- */

static const cJSON *get(const cJSON *o, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(o, key);
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = get(o, key);
    return cJSON_IsNumber(v) && isfinite(v->valuedouble) ? v->valuedouble : 0.0;
}

static int64_t i64(const cJSON *o, const char *key)
{
    return (int64_t)num(o, key);
}

static uint64_t u64(const cJSON *o, const char *key)
{
    double d = num(o, key);
    return d > 0 ? (uint64_t)d : 0;
}

static bool flag(const cJSON *o, const char *key)
{
    return cJSON_IsTrue(get(o, key));
}

static void str(const cJSON *o, const char *key, char *out, size_t outlen)
{
    const cJSON *v = get(o, key);
    str_copy(out, outlen, cJSON_IsString(v) ? v->valuestring : "");
}

static void ms3(const cJSON *o, const char *key, double out[3])
{
    const cJSON *v = get(o, key);
    out[0] = num(v, "p50");
    out[1] = num(v, "p95");
    out[2] = num(v, "p99");
}

static void prom(const cJSON *o, const char *key, uint64_t out[HIST_PROM_COUNT], uint64_t *count,
                 uint64_t *sum_us)
{
    const cJSON *v = get(o, key);
    *count = u64(v, "count");
    *sum_us = u64(v, "sum_us");
    const cJSON *b = get(v, "buckets");
    for (size_t i = 0; i < HIST_PROM_COUNT; i++)
        out[i] = u64(b, hist_prom_le_label(i));
}

static enum breaker_state breaker_from(const char *s)
{
    if (str_eq(s, breaker_state_name(BREAKER_OPEN)))
        return BREAKER_OPEN;
    if (str_eq(s, breaker_state_name(BREAKER_HALF_OPEN)))
        return BREAKER_HALF_OPEN;
    return BREAKER_CLOSED;
}

static enum llm_errclass errclass_from(const char *s)
{
    for (int c = 0; c < LLM_ERRCLASS_COUNT; c++) {
        if (str_eq(s, llm_errclass_name((enum llm_errclass)c)))
            return (enum llm_errclass)c;
    }
    return LLM_ERR_NONE;
}

static enum budget_level level_from(const char *s)
{
    return str_eq(s, "hard")   ? BUDGET_LEVEL_HARD
           : str_eq(s, "soft") ? BUDGET_LEVEL_SOFT
                               : BUDGET_LEVEL_OK;
}

/* ---- the snapshot ------------------------------------------------------------------------- */

/* "recent": ages become done_ms before a now_ms of 0, so now_ms - done_ms is the age. */
static void parse_recent(const cJSON *o, struct stats_summary *s)
{
    const cJSON *it;
    s->now_ms = 0;
    s->n_recent = 0;
    cJSON_ArrayForEach(it, get(o, "recent"))
    {
        if (s->n_recent == STATS_RECENT || !cJSON_IsObject(it))
            break;
        struct stats_call *c = &s->recent[s->n_recent++];
        char cls[48];
        c->done_ms = -i64(it, "age_ms");
        str(it, "errclass", cls, sizeof cls);
        c->errclass = errclass_from(cls);
        c->latency_us = i64(it, "latency_us");
        c->ttft_us = i64(it, "ttft_us");
        c->tokens_in = (long)i64(it, "tokens_in");
        c->tokens_out = (long)i64(it, "tokens_out");
        c->cost_usd = num(it, "cost_usd");
        str(it, "error", c->error, sizeof c->error);
        str(it, "request_id", c->request_id, sizeof c->request_id);
    }
}

static void parse_stats(const cJSON *o, struct stats_summary *s)
{
    s->calls = u64(o, "calls");
    s->successes = u64(o, "successes");
    s->failures = u64(o, "failures");
    const cJSON *errs = get(o, "errors");
    for (int c = 0; c < LLM_ERRCLASS_COUNT; c++) {
        if (c != LLM_ERR_NONE)
            s->errors[c] = u64(errs, llm_errclass_name((enum llm_errclass)c));
    }
    s->retries = u64(o, "retries");
    s->hedges = u64(o, "hedges");
    s->truncated = u64(o, "truncated");
    s->usage_missing = u64(o, "usage_missing");
    s->in_flight = (long)i64(o, "in_flight");
    s->tokens_in = u64(o, "tokens_in");
    s->tokens_out = u64(o, "tokens_out");
    s->tokens_cached = u64(o, "tokens_cached");
    s->spend_usd = num(o, "spend_usd");
    ms3(o, "latency_1m_ms", s->latency_1m);
    ms3(o, "latency_5m_ms", s->latency_5m);
    ms3(o, "ttft_1m_ms", s->ttft_1m);
    ms3(o, "ttft_5m_ms", s->ttft_5m);
    s->req_per_s = num(o, "req_per_s");
    s->error_pct_1m = num(o, "error_pct_1m");
    s->error_pct_10s = num(o, "error_pct_10s");
    s->finished_10s = u64(o, "finished_10s");
    const cJSON *rs = get(o, "rate_series");
    for (size_t i = 0; i < STATS_RATE_SECONDS; i++) {
        const cJSON *v = cJSON_GetArrayItem(rs, (int)i);
        s->rate_series[i] = cJSON_IsNumber(v) ? v->valuedouble : 0.0;
    }
    prom(o, "latency", s->latency_prom, &s->latency_count, &s->latency_sum_us);
    prom(o, "ttft", s->ttft_prom, &s->ttft_count, &s->ttft_sum_us);
    str(o, "last_error", s->last_error, sizeof s->last_error);
    char cls[48];
    str(o, "last_errclass", cls, sizeof cls);
    s->last_errclass = errclass_from(cls);
    parse_recent(o, s);
}

static void parse_target(const cJSON *o, struct router_target_snap *t)
{
    char b[32];
    str(o, "name", t->name, sizeof t->name);
    str(o, "kind", t->kind, sizeof t->kind);
    str(o, "model", t->model, sizeof t->model);
    t->enabled = flag(o, "enabled");
    str(o, "disabled_reason", t->disabled_reason, sizeof t->disabled_reason);
    str(o, "breaker", b, sizeof b);
    t->breaker = breaker_from(b);
    str(o, "breaker_reason", t->breaker_reason, sizeof t->breaker_reason);
    t->breaker_retry_in_ms = i64(o, "breaker_retry_in_ms");
    t->breaker_cooldown_ms = i64(o, "breaker_cooldown_ms");
    t->probe_spend_usd = num(o, "probe_spend_usd");
    t->forced_live = flag(o, "forced_live");
    t->drained = flag(o, "drained");
    t->pinned = flag(o, "pinned");
    t->override_expires_in_ms = i64(o, "override_expires_in_ms");
    t->rate_limited = flag(o, "rate_limited");
    str(o, "rate_limit_reason", t->rate_limit_reason, sizeof t->rate_limit_reason);
    t->weight = num(o, "weight");
    t->configured_weight = num(o, "configured_weight");
    t->traffic_share = num(o, "traffic_share");
    t->last_error_age_ms = i64(o, "last_error_age_ms");
    t->spend_today_usd = num(o, "spend_today_usd");
    t->spend_month_usd = num(o, "spend_month_usd");
    t->over_budget = flag(o, "over_budget");
    str(o, "budget_reason", t->budget_reason, sizeof t->budget_reason);
    parse_stats(get(o, "stats"), &t->stats);
    const cJSON *p = get(o, "probe");
    t->probe_enabled = flag(p, "enabled");
    t->probe_ok = flag(p, "ok");
    t->probe_age_ms = i64(p, "age_ms");
    t->probe_latency_us = i64(p, "latency_us");
    t->probe_status = (long)i64(p, "status");
    str(p, "error", t->probe_error, sizeof t->probe_error);
    t->next_probe_in_ms = i64(p, "next_in_ms");
    t->probes = u64(p, "probes");
    t->probe_failures = u64(p, "failures");
}

static void parse_budget(const cJSON *o, struct budget_status *b)
{
    char lv[16];
    str(o, "label", b->label, sizeof b->label);
    str(o, "name", b->name, sizeof b->name);
    b->scope = str_eq(b->label, "global")            ? BUDGET_GLOBAL
               : str_has_prefix(b->label, "target:") ? BUDGET_TARGET
               : str_has_prefix(b->label, "route:")  ? BUDGET_ROUTE
                                                     : BUDGET_TAG;
    b->daily_cap = num(o, "daily_cap");
    b->monthly_cap = num(o, "monthly_cap");
    b->soft_pct = num(o, "soft_pct");
    b->day_spent = num(o, "day_spent");
    b->month_spent = num(o, "month_spent");
    str(o, "day_level", lv, sizeof lv);
    b->day_level = level_from(lv);
    str(o, "month_level", lv, sizeof lv);
    b->month_level = level_from(lv);
    str(o, "level", lv, sizeof lv);
    b->level = level_from(lv);
    b->burn_per_hour = num(o, "burn_per_hour");
    b->day_exhausted_in_ms = i64(o, "day_exhausted_in_ms");
    b->month_exhausted_in_ms = i64(o, "month_exhausted_in_ms");
    b->day_resets_in_ms = i64(o, "day_resets_in_ms");
    b->month_resets_in_ms = i64(o, "month_resets_in_ms");
}

static void parse_totals(const cJSON *root, struct router_snapshot *s)
{
    s->gen = u64(root, "gen");
    s->wall_ms = i64(root, "wall_ms");
    s->uptime_ms = i64(root, "uptime_ms");
    s->config_gen = u64(root, "config_gen");
    s->calls = u64(root, "calls");
    s->successes = u64(root, "successes");
    s->failures = u64(root, "failures");
    s->in_flight = u64(root, "in_flight");
    s->gateway_calls = u64(root, "gateway_calls");
    s->req_per_s = num(root, "req_per_s");
    s->error_pct_1m = num(root, "error_pct_1m");
    s->error_pct_10s = num(root, "error_pct_10s");
    s->spend_usd = num(root, "spend_usd");
    s->spend_today_usd = num(root, "spend_today_usd");
    s->spend_month_usd = num(root, "spend_month_usd");
    s->burn_per_hour_usd = num(root, "burn_per_hour_usd");
    s->savings_usd = num(root, "savings_usd");
    s->savings_today_usd = num(root, "savings_today_usd");
    s->savings_month_usd = num(root, "savings_month_usd");
    s->budget_refused = u64(root, "budget_refused");
    const cJSON *g = get(root, "guard");
    s->guard_throttled = u64(g, "throttled");
    s->guard_cached = u64(g, "cached");
    s->guard_storms = u64(g, "storms");
    s->guard_spikes = u64(g, "spikes");
    const cJSON *c = get(root, "cache");
    s->cache_entries = (size_t)u64(c, "entries");
    s->cache_bytes = (size_t)u64(c, "bytes");
    const cJSON *l = get(root, "ledger");
    s->ledger.written = u64(l, "written");
    s->ledger.queued = u64(l, "queued");
    s->ledger.dropped = u64(l, "dropped");
    s->ledger.write_errors = u64(l, "write_errors");
    str(l, "last_error", s->ledger.last_error, sizeof s->ledger.last_error);
    const cJSON *u = get(root, "undo");
    s->undo.id = u64(u, "id");
    str(u, "target", s->undo.target, sizeof s->undo.target);
    str(u, "action", s->undo.action, sizeof s->undo.action);
    str(u, "user", s->undo.user, sizeof s->undo.user);
    s->undo.at_wall_ms = i64(u, "at_ms");
    s->undo.lapsed = cJSON_IsTrue(get(u, "lapsed"));
    s->undo.lapsed_wall_ms = i64(u, "lapsed_ms");
    str(u, "restores", s->undo.restores, sizeof s->undo.restores);
    s->undo.depth = (size_t)u64(u, "depth");
}

static void parse_route(const cJSON *o, struct router_snapshot *s, struct router_route_snap *r)
{
    str(o, "name", r->name, sizeof r->name);
    str(o, "strategy", r->strategy, sizeof r->strategy);
    str(o, "pinned", r->pinned, sizeof r->pinned);
    const cJSON *it;
    cJSON_ArrayForEach(it, get(o, "targets"))
    {
        for (size_t i = 0; cJSON_IsString(it) && i < s->n_targets; i++) {
            if (str_eq(s->targets[i].name, it->valuestring) && r->n_targets < ROUTER_MAX_TARGETS)
                r->targets[r->n_targets++] = i;
        }
    }
}

enum sb_status console_state_parse(const char *json, size_t len, struct router_snapshot *out,
                                   char *msg, size_t msglen)
{
    enum sb_status st = SB_ERR_PARSE;
    cJSON *root = cJSON_ParseWithLength(json, len);
    const cJSON *targets = get(root, "targets");
    if (!cJSON_IsObject(root) || !cJSON_IsArray(targets)) {
        snprintf(msg, msglen, "/admin/state: not a state object");
        goto out;
    }
    memset(out, 0, sizeof *out);
    parse_totals(root, out);
    const cJSON *it;
    cJSON_ArrayForEach(it, targets)
    {
        if (out->n_targets < ROUTER_MAX_TARGETS && cJSON_IsObject(it))
            parse_target(it, &out->targets[out->n_targets++]);
    }
    cJSON_ArrayForEach(it, get(root, "routes"))
    {
        if (out->n_routes < ROUTER_MAX_ROUTES && cJSON_IsObject(it))
            parse_route(it, out, &out->routes[out->n_routes++]);
    }
    cJSON_ArrayForEach(it, get(root, "budgets"))
    {
        if (out->n_budgets < ROUTER_MAX_BUDGETS && cJSON_IsObject(it))
            parse_budget(it, &out->budgets[out->n_budgets++]);
    }
    st = SB_OK;
out:
    cJSON_Delete(root);
    return st;
}

/* ---- merging instances --------------------------------------------------------------------- */

static int breaker_rank(enum breaker_state b)
{
    switch (b) {
    case BREAKER_CLOSED:
        return 0;
    case BREAKER_HALF_OPEN:
        return 1;
    case BREAKER_OPEN:
        return 2;
    }
    return 0;
}

static void max3(double a[3], const double b[3])
{
    for (int i = 0; i < 3; i++)
        a[i] = b[i] > a[i] ? b[i] : a[i];
}

static void add_stats(struct stats_summary *a, const struct stats_summary *b)
{
    a->calls += b->calls;
    a->successes += b->successes;
    a->failures += b->failures;
    for (int c = 0; c < LLM_ERRCLASS_COUNT; c++)
        a->errors[c] += b->errors[c];
    a->retries += b->retries;
    a->hedges += b->hedges;
    a->truncated += b->truncated;
    a->usage_missing += b->usage_missing;
    a->in_flight += b->in_flight;
    a->tokens_in += b->tokens_in;
    a->tokens_out += b->tokens_out;
    a->tokens_cached += b->tokens_cached;
    a->spend_usd += b->spend_usd;
    max3(a->latency_1m, b->latency_1m);
    max3(a->latency_5m, b->latency_5m);
    max3(a->ttft_1m, b->ttft_1m);
    max3(a->ttft_5m, b->ttft_5m);
    a->req_per_s += b->req_per_s;
    for (size_t i = 0; i < STATS_RATE_SECONDS; i++)
        a->rate_series[i] += b->rate_series[i];
    for (size_t i = 0; i < HIST_PROM_COUNT; i++) {
        a->latency_prom[i] += b->latency_prom[i];
        a->ttft_prom[i] += b->ttft_prom[i];
    }
    a->latency_count += b->latency_count;
    a->latency_sum_us += b->latency_sum_us;
    a->ttft_count += b->ttft_count;
    a->ttft_sum_us += b->ttft_sum_us;
    if (b->last_error[0] && !a->last_error[0]) {
        memcpy(a->last_error, b->last_error, sizeof a->last_error);
        a->last_errclass = b->last_errclass;
    }
}

/* Adds instance target b (from instance `name`) into a, which already holds others. */
static void merge_target(struct router_target_snap *a, const struct router_target_snap *b,
                         const char *name)
{
    uint64_t fin_a = a->stats.successes + a->stats.failures;
    uint64_t fin_b = b->stats.successes + b->stats.failures;
    double err_a = a->stats.error_pct_1m, err_b = b->stats.error_pct_1m;
    uint64_t f10a = a->stats.finished_10s, f10b = b->stats.finished_10s;
    double e10a = a->stats.error_pct_10s, e10b = b->stats.error_pct_10s;
    add_stats(&a->stats, &b->stats);
    a->stats.finished_10s = f10a + f10b;
    a->stats.error_pct_10s =
        f10a + f10b ? (e10a * (double)f10a + e10b * (double)f10b) / (double)(f10a + f10b) : 0;
    a->stats.error_pct_1m =
        fin_a + fin_b ? (err_a * (double)fin_a + err_b * (double)fin_b) / (double)(fin_a + fin_b)
                      : (err_a > err_b ? err_a : err_b);
    if (breaker_rank(b->breaker) > breaker_rank(a->breaker)) {
        a->breaker = b->breaker;
        a->breaker_retry_in_ms = b->breaker_retry_in_ms;
        a->breaker_cooldown_ms = b->breaker_cooldown_ms;
        snprintf(a->breaker_reason, sizeof a->breaker_reason, "on %.40s: %s", name,
                 b->breaker_reason);
    }
    a->enabled = a->enabled || b->enabled;
    a->forced_live |= b->forced_live;
    a->drained |= b->drained;
    a->pinned |= b->pinned;
    a->rate_limited |= b->rate_limited;
    a->over_budget |= b->over_budget;
    a->spend_today_usd += b->spend_today_usd;
    a->spend_month_usd += b->spend_month_usd;
    a->probe_spend_usd += b->probe_spend_usd;
    a->probes += b->probes;
    a->probe_failures += b->probe_failures;
    a->probe_ok = a->probe_ok && b->probe_ok;
    if (b->last_error_age_ms >= 0 &&
        (a->last_error_age_ms < 0 || b->last_error_age_ms < a->last_error_age_ms))
        a->last_error_age_ms = b->last_error_age_ms;
}

static void tag_reason(struct router_target_snap *t, const char *name)
{
    if (t->breaker == BREAKER_CLOSED)
        return;
    char r[sizeof t->breaker_reason];
    snprintf(r, sizeof r, "on %.40s: %s", name, t->breaker_reason);
    memcpy(t->breaker_reason, r, sizeof r);
}

static void merge_totals(struct router_snapshot *o, const struct router_snapshot *s)
{
    o->calls += s->calls;
    o->successes += s->successes;
    o->failures += s->failures;
    o->in_flight += s->in_flight;
    o->req_per_s += s->req_per_s;
    o->spend_usd += s->spend_usd;
    o->gateway_calls += s->gateway_calls;
    o->spend_today_usd += s->spend_today_usd;
    o->spend_month_usd += s->spend_month_usd;
    o->burn_per_hour_usd += s->burn_per_hour_usd;
    o->savings_usd += s->savings_usd;
    o->savings_today_usd += s->savings_today_usd;
    o->savings_month_usd += s->savings_month_usd;
    o->budget_refused += s->budget_refused;
    o->guard_throttled += s->guard_throttled;
    o->guard_cached += s->guard_cached;
    o->guard_storms += s->guard_storms;
    o->guard_spikes += s->guard_spikes;
    o->cache_entries += s->cache_entries;
    o->cache_bytes += s->cache_bytes;
    o->ledger.written += s->ledger.written;
    o->ledger.queued += s->ledger.queued;
    o->ledger.dropped += s->ledger.dropped;
    o->ledger.write_errors += s->ledger.write_errors;
    if (s->uptime_ms > o->uptime_ms)
        o->uptime_ms = s->uptime_ms;
    if (s->wall_ms > o->wall_ms)
        o->wall_ms = s->wall_ms;
}

static size_t find_target(const struct router_snapshot *s, const char *name)
{
    for (size_t i = 0; i < s->n_targets; i++) {
        if (str_eq(s->targets[i].name, name))
            return i;
    }
    return SIZE_MAX;
}

void console_merge(const struct router_snapshot *const *in, const char *const *names, size_t n,
                   struct router_snapshot *out)
{
    /* Everything but gen and the events. */
    size_t from = offsetof(struct router_snapshot, wall_ms);
    memset((char *)out + from, 0, offsetof(struct router_snapshot, n_events) - from);
    from = offsetof(struct router_snapshot, config_gen);
    memset((char *)out + from, 0, sizeof *out - from);
    uint64_t fin = 0;
    double err_sum = 0;
    bool first = true;
    for (size_t k = 0; k < n; k++) {
        const struct router_snapshot *s = in[k];
        if (!s)
            continue;
        /* The first instance's routes, budgets and target order lead: its targets come
         * first in out, in its order, so its routes' target indices hold. */
        if (first) {
            out->n_routes = s->n_routes;
            memcpy(out->routes, s->routes, sizeof out->routes);
            out->n_budgets = s->n_budgets;
            memcpy(out->budgets, s->budgets, sizeof out->budgets);
            out->config_gen = s->config_gen;
            out->undo = s->undo; /* the first instance's (each has its own undo stack) */
        }
        merge_totals(out, s);
        uint64_t f = s->successes + s->failures;
        fin += f;
        err_sum += s->error_pct_1m * (double)f;
        for (size_t i = 0; i < s->n_targets && i < ROUTER_MAX_TARGETS; i++) {
            size_t at = find_target(out, s->targets[i].name);
            if (at != SIZE_MAX) {
                merge_target(&out->targets[at], &s->targets[i], names[k]);
            } else if (out->n_targets < ROUTER_MAX_TARGETS) {
                out->targets[out->n_targets] = s->targets[i];
                if (n > 1)
                    tag_reason(&out->targets[out->n_targets], names[k]);
                out->n_targets++;
            }
        }
        first = false;
    }
    out->error_pct_1m = fin ? err_sum / (double)fin : 0;
    double f10 = 0, e10 = 0;
    for (size_t i = 0; i < out->n_targets; i++) {
        f10 += (double)out->targets[i].stats.finished_10s;
        e10 += (double)out->targets[i].stats.finished_10s * out->targets[i].stats.error_pct_10s;
    }
    out->error_pct_10s = f10 > 0 ? e10 / f10 : 0;
}
