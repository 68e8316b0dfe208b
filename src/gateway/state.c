/*
 * state.c - router snapshots as the gateway shows them: /admin/state (every snapshot field),
 * the admin API's per-target answers, /v1/models, and the /readyz verdict.
 *
 * Pure: takes a snapshot copy (router_snapshot_read's output), never the router.
 */
#include <string.h>

#include "internal.h"
#include "switchboard/breaker.h"
#include "switchboard/budgets.h"
#include "switchboard/hist.h"
#include "switchboard/stats.h"

/* router_event_kind_name lives in the router proper; this file stays free of router code so
 * the unit tests link without it. */
const char *gw_event_kind_name(enum router_event_kind k)
{
    switch (k) {
    case ROUTER_EV_BREAKER:
        return "breaker";
    case ROUTER_EV_RATE_LIMIT:
        return "rate_limit";
    case ROUTER_EV_FALLBACK:
        return "fallback";
    case ROUTER_EV_HEDGE:
        return "hedge";
    case ROUTER_EV_TRUNCATED:
        return "truncated";
    case ROUTER_EV_PROBE:
        return "probe";
    case ROUTER_EV_OPERATOR:
        return "operator";
    case ROUTER_EV_CONFIG:
        return "config";
    case ROUTER_EV_ERROR:
        return "error";
    }
    return "unknown";
}

static void put_ms3(struct gw_json *j, const char *key, const double v[3])
{
    gw_json_open(j, key, '{');
    gw_json_num(j, "p50", v[0]);
    gw_json_num(j, "p95", v[1]);
    gw_json_num(j, "p99", v[2]);
    gw_json_close(j, '}');
}

static void put_prom(struct gw_json *j, const char *key, const uint64_t prom[HIST_PROM_COUNT],
                     uint64_t count, uint64_t sum_us)
{
    gw_json_open(j, key, '{');
    gw_json_uint(j, "count", count);
    gw_json_uint(j, "sum_us", sum_us);
    gw_json_open(j, "buckets", '{');
    for (size_t i = 0; i < HIST_PROM_COUNT; i++)
        gw_json_uint(j, hist_prom_le_label(i), prom[i]);
    gw_json_close(j, '}');
    gw_json_close(j, '}');
}

/* The target's last finished calls, newest first; age_ms instead of the router's clock. */
static void recent_json(struct gw_json *j, const struct stats_summary *s)
{
    gw_json_open(j, "recent", '[');
    for (size_t i = 0; i < s->n_recent && i < STATS_RECENT; i++) {
        const struct stats_call *c = &s->recent[i];
        gw_json_open(j, NULL, '{');
        gw_json_int(j, "age_ms", s->now_ms - c->done_ms);
        gw_json_str(j, "errclass", llm_errclass_name(c->errclass));
        gw_json_int(j, "latency_us", c->latency_us);
        gw_json_int(j, "ttft_us", c->ttft_us);
        gw_json_int(j, "tokens_in", c->tokens_in);
        gw_json_int(j, "tokens_out", c->tokens_out);
        gw_json_num(j, "cost_usd", c->cost_usd);
        gw_json_str(j, "error", c->error);
        gw_json_str(j, "request_id", c->request_id);
        gw_json_close(j, '}');
    }
    gw_json_close(j, ']');
}

/* struct stats_summary, every field. Percentiles are in ms, as the router reports them. */
static void stats_json(struct gw_json *j, const struct stats_summary *s)
{
    gw_json_open(j, "stats", '{');
    gw_json_uint(j, "calls", s->calls);
    gw_json_uint(j, "successes", s->successes);
    gw_json_uint(j, "failures", s->failures);
    gw_json_open(j, "errors", '{');
    for (int c = 0; c < LLM_ERRCLASS_COUNT; c++) {
        if (c != LLM_ERR_NONE)
            gw_json_uint(j, llm_errclass_name((enum llm_errclass)c), s->errors[c]);
    }
    gw_json_close(j, '}');
    gw_json_uint(j, "retries", s->retries);
    gw_json_uint(j, "hedges", s->hedges);
    gw_json_uint(j, "truncated", s->truncated);
    gw_json_uint(j, "usage_missing", s->usage_missing);
    gw_json_int(j, "in_flight", s->in_flight);
    gw_json_uint(j, "tokens_in", s->tokens_in);
    gw_json_uint(j, "tokens_out", s->tokens_out);
    gw_json_uint(j, "tokens_cached", s->tokens_cached);
    gw_json_num(j, "spend_usd", s->spend_usd);
    put_ms3(j, "latency_1m_ms", s->latency_1m);
    put_ms3(j, "latency_5m_ms", s->latency_5m);
    put_ms3(j, "ttft_1m_ms", s->ttft_1m);
    put_ms3(j, "ttft_5m_ms", s->ttft_5m);
    gw_json_num(j, "req_per_s", s->req_per_s);
    gw_json_num(j, "error_pct_1m", s->error_pct_1m);
    gw_json_num(j, "error_pct_10s", s->error_pct_10s);
    gw_json_uint(j, "finished_10s", s->finished_10s);
    gw_json_open(j, "rate_series", '[');
    for (size_t i = 0; i < STATS_RATE_SECONDS; i++)
        gw_json_num(j, NULL, s->rate_series[i]);
    gw_json_close(j, ']');
    put_prom(j, "latency", s->latency_prom, s->latency_count, s->latency_sum_us);
    put_prom(j, "ttft", s->ttft_prom, s->ttft_count, s->ttft_sum_us);
    gw_json_str(j, "last_error", s->last_error);
    gw_json_str(j, "last_errclass", llm_errclass_name(s->last_errclass));
    recent_json(j, s);
    gw_json_close(j, '}');
}

static void probe_json(struct gw_json *j, const struct router_target_snap *t)
{
    gw_json_open(j, "probe", '{');
    gw_json_bool(j, "enabled", t->probe_enabled);
    gw_json_bool(j, "ok", t->probe_ok);
    gw_json_int(j, "age_ms", t->probe_age_ms);
    gw_json_int(j, "latency_us", t->probe_latency_us);
    gw_json_int(j, "status", t->probe_status);
    gw_json_str(j, "error", t->probe_error);
    gw_json_int(j, "next_in_ms", t->next_probe_in_ms);
    gw_json_uint(j, "probes", t->probes);
    gw_json_uint(j, "failures", t->probe_failures);
    gw_json_close(j, '}');
}

void gw_target_json(struct gw_json *j, const char *key, const struct router_target_snap *t)
{
    gw_json_open(j, key, '{');
    gw_json_str(j, "name", t->name);
    gw_json_str(j, "kind", t->kind);
    gw_json_str(j, "model", t->model);
    gw_json_bool(j, "enabled", t->enabled);
    gw_json_str(j, "disabled_reason", t->disabled_reason);
    gw_json_str(j, "breaker", breaker_state_name(t->breaker));
    gw_json_str(j, "breaker_reason", t->breaker_reason);
    gw_json_int(j, "breaker_retry_in_ms", t->breaker_retry_in_ms);
    gw_json_int(j, "breaker_cooldown_ms", t->breaker_cooldown_ms);
    gw_json_num(j, "probe_spend_usd", t->probe_spend_usd);
    gw_json_bool(j, "forced_live", t->forced_live);
    gw_json_bool(j, "drained", t->drained);
    gw_json_bool(j, "pinned", t->pinned);
    gw_json_int(j, "override_expires_in_ms", t->override_expires_in_ms);
    gw_json_bool(j, "rate_limited", t->rate_limited);
    gw_json_str(j, "rate_limit_reason", t->rate_limit_reason);
    gw_json_num(j, "weight", t->weight);
    gw_json_num(j, "configured_weight", t->configured_weight);
    gw_json_num(j, "traffic_share", t->traffic_share);
    gw_json_int(j, "last_error_age_ms", t->last_error_age_ms);
    gw_json_num(j, "spend_today_usd", t->spend_today_usd);
    gw_json_num(j, "spend_month_usd", t->spend_month_usd);
    gw_json_bool(j, "over_budget", t->over_budget);
    gw_json_str(j, "budget_reason", t->budget_reason);
    stats_json(j, &t->stats);
    probe_json(j, t);
    gw_json_close(j, '}');
}

/* budget_level_name lives with the router's budgets; kept local for the same reason. */
static const char *level_name(enum budget_level l)
{
    switch (l) {
    case BUDGET_LEVEL_OK:
        return "ok";
    case BUDGET_LEVEL_SOFT:
        return "soft";
    case BUDGET_LEVEL_HARD:
        return "hard";
    }
    return "unknown";
}

static void budget_json(struct gw_json *j, const struct budget_status *b)
{
    gw_json_open(j, NULL, '{');
    gw_json_str(j, "label", b->label);
    gw_json_str(j, "name", b->name);
    gw_json_num(j, "daily_cap", b->daily_cap);
    gw_json_num(j, "monthly_cap", b->monthly_cap);
    gw_json_num(j, "soft_pct", b->soft_pct);
    gw_json_num(j, "day_spent", b->day_spent);
    gw_json_num(j, "month_spent", b->month_spent);
    gw_json_str(j, "day_level", level_name(b->day_level));
    gw_json_str(j, "month_level", level_name(b->month_level));
    gw_json_str(j, "level", level_name(b->level));
    gw_json_num(j, "burn_per_hour", b->burn_per_hour);
    gw_json_int(j, "day_exhausted_in_ms", b->day_exhausted_in_ms);
    gw_json_int(j, "month_exhausted_in_ms", b->month_exhausted_in_ms);
    gw_json_int(j, "day_resets_in_ms", b->day_resets_in_ms);
    gw_json_int(j, "month_resets_in_ms", b->month_resets_in_ms);
    gw_json_close(j, '}');
}

/* Fleet mode ("fleet": null when off). */
static void fleet_json(struct gw_json *j, const struct router_snapshot *snap)
{
    const struct fleet_status *f = &snap->fleet;
    if (!f->enabled) {
        gw_json_null(j, "fleet");
        return;
    }
    gw_json_open(j, "fleet", '{');
    gw_json_str(j, "name", f->name);
    gw_json_bool(j, "connected", f->connected);
    gw_json_str(j, "status", f->text);
    gw_json_int(j, "down_since_ms", f->down_since_ms);
    gw_json_int(j, "instances", f->instances);
    gw_json_str(j, "last_error", f->last_error);
    gw_json_num(j, "pending_usd", (double)f->pending_micro_usd / 1e6);
    gw_json_num(j, "spend_today_usd", snap->fleet_spend_today_usd);
    gw_json_num(j, "spend_month_usd", snap->fleet_spend_month_usd);
    gw_json_uint(j, "reconnects", f->reconnects);
    gw_json_uint(j, "notices_sent", f->notices_sent);
    gw_json_uint(j, "notices_received", f->notices_received);
    gw_json_close(j, '}');
}

/* Spend, budgets, the runaway guard, response caches and the ledger. */
static void totals_json(struct gw_json *j, const struct router_snapshot *snap)
{
    gw_json_num(j, "spend_today_usd", snap->spend_today_usd);
    gw_json_num(j, "spend_month_usd", snap->spend_month_usd);
    gw_json_num(j, "burn_per_hour_usd", snap->burn_per_hour_usd);
    gw_json_num(j, "savings_usd", snap->savings_usd);
    gw_json_num(j, "savings_today_usd", snap->savings_today_usd);
    gw_json_num(j, "savings_month_usd", snap->savings_month_usd);
    gw_json_open(j, "budgets", '[');
    for (size_t i = 0; i < snap->n_budgets && i < ROUTER_MAX_BUDGETS; i++)
        budget_json(j, &snap->budgets[i]);
    gw_json_close(j, ']');
    gw_json_uint(j, "budget_refused", snap->budget_refused);
    gw_json_open(j, "guard", '{');
    gw_json_uint(j, "throttled", snap->guard_throttled);
    gw_json_uint(j, "cached", snap->guard_cached);
    gw_json_uint(j, "storms", snap->guard_storms);
    gw_json_uint(j, "spikes", snap->guard_spikes);
    gw_json_close(j, '}');
    gw_json_open(j, "cache", '{');
    gw_json_uint(j, "entries", snap->cache_entries);
    gw_json_uint(j, "bytes", snap->cache_bytes);
    gw_json_close(j, '}');
    gw_json_open(j, "ledger", '{');
    gw_json_uint(j, "written", snap->ledger.written);
    gw_json_uint(j, "queued", snap->ledger.queued);
    gw_json_uint(j, "dropped", snap->ledger.dropped);
    gw_json_uint(j, "write_errors", snap->ledger.write_errors);
    gw_json_str(j, "last_error", snap->ledger.last_error);
    gw_json_close(j, '}');
    gw_json_open(j, "undo", '{'); /* what POST /admin/undo would take back */
    gw_json_uint(j, "id", snap->undo.id);
    gw_json_str(j, "target", snap->undo.target);
    gw_json_str(j, "action", snap->undo.action);
    gw_json_str(j, "user", snap->undo.user);
    gw_json_int(j, "at_ms", snap->undo.at_wall_ms);
    gw_json_bool(j, "lapsed", snap->undo.lapsed);
    gw_json_int(j, "lapsed_ms", snap->undo.lapsed_wall_ms);
    gw_json_str(j, "restores", snap->undo.restores);
    gw_json_uint(j, "depth", snap->undo.depth);
    gw_json_close(j, '}');
    fleet_json(j, snap);
}

static void route_json(struct gw_json *j, const struct router_snapshot *snap,
                       const struct router_route_snap *r)
{
    gw_json_open(j, NULL, '{');
    gw_json_str(j, "name", r->name);
    gw_json_str(j, "strategy", r->strategy);
    gw_json_str(j, "pinned", r->pinned[0] ? r->pinned : NULL);
    gw_json_open(j, "targets", '[');
    for (size_t k = 0; k < r->n_targets && k < ROUTER_MAX_TARGETS; k++) {
        if (r->targets[k] < snap->n_targets)
            gw_json_str(j, NULL, snap->targets[r->targets[k]].name);
    }
    gw_json_close(j, ']');
    gw_json_close(j, '}');
}

void gw_state_json(const struct router_snapshot *snap, struct buf *out)
{
    struct gw_json j;
    gw_json_init(&j, out);
    gw_json_open(&j, NULL, '{');
    gw_json_uint(&j, "gen", snap->gen);
    gw_json_int(&j, "wall_ms", snap->wall_ms);
    gw_json_int(&j, "uptime_ms", snap->uptime_ms);
    gw_json_uint(&j, "config_gen", snap->config_gen);
    gw_json_uint(&j, "calls", snap->calls);
    gw_json_uint(&j, "successes", snap->successes);
    gw_json_uint(&j, "failures", snap->failures);
    gw_json_uint(&j, "in_flight", snap->in_flight);
    gw_json_uint(&j, "gateway_calls", snap->gateway_calls);
    gw_json_num(&j, "req_per_s", snap->req_per_s);
    gw_json_num(&j, "error_pct_1m", snap->error_pct_1m);
    gw_json_num(&j, "error_pct_10s", snap->error_pct_10s);
    gw_json_num(&j, "spend_usd", snap->spend_usd);
    totals_json(&j, snap);
    gw_json_open(&j, "targets", '[');
    for (size_t i = 0; i < snap->n_targets && i < ROUTER_MAX_TARGETS; i++)
        gw_target_json(&j, NULL, &snap->targets[i]);
    gw_json_close(&j, ']');
    gw_json_open(&j, "routes", '[');
    for (size_t i = 0; i < snap->n_routes && i < ROUTER_MAX_ROUTES; i++)
        route_json(&j, snap, &snap->routes[i]);
    gw_json_close(&j, ']');
    gw_json_open(&j, "events", '[');
    for (size_t i = 0; i < snap->n_events && i < ROUTER_MAX_EVENTS; i++) {
        const struct router_event *ev = &snap->events[i];
        gw_json_open(&j, NULL, '{');
        gw_json_uint(&j, "seq", ev->seq);
        gw_json_int(&j, "wall_ms", ev->wall_ms);
        gw_json_str(&j, "kind", gw_event_kind_name(ev->kind));
        gw_json_str(&j, "target", ev->target);
        gw_json_str(&j, "text", ev->text);
        gw_json_close(&j, '}');
    }
    gw_json_close(&j, ']');
    gw_json_close(&j, '}');
}

void gw_models_json(const struct gw_route_names *routes, int64_t created, struct buf *out)
{
    struct gw_json j;
    gw_json_init(&j, out);
    gw_json_open(&j, NULL, '{');
    gw_json_str(&j, "object", "list");
    gw_json_open(&j, "data", '[');
    for (size_t i = 0; i < routes->n && i < ROUTER_MAX_ROUTES; i++) {
        gw_json_open(&j, NULL, '{');
        gw_json_str(&j, "id", routes->name[i]);
        gw_json_str(&j, "object", "model");
        gw_json_int(&j, "created", created);
        gw_json_str(&j, "owned_by", "switchboard");
        gw_json_close(&j, '}');
    }
    gw_json_close(&j, ']');
    gw_json_close(&j, '}');
}

/* Why target t cannot take a new call now; NULL when it can. */
static const char *target_unusable(const struct router_target_snap *t)
{
    if (!t->enabled)
        return t->disabled_reason[0] ? t->disabled_reason : "disabled";
    if (t->drained)
        return "drained";
    if (t->breaker == BREAKER_OPEN && !t->forced_live)
        return "breaker open";
    return NULL;
}

bool gw_is_ready(const struct router_snapshot *snap, struct buf *why)
{
    if (snap->n_routes == 0) {
        buf_puts(why, "no routes configured");
        return false;
    }
    for (size_t i = 0; i < snap->n_routes && i < ROUTER_MAX_ROUTES; i++) {
        const struct router_route_snap *r = &snap->routes[i];
        for (size_t k = 0; k < r->n_targets && k < ROUTER_MAX_TARGETS; k++) {
            if (r->targets[k] < snap->n_targets && !target_unusable(&snap->targets[r->targets[k]]))
                return true;
        }
    }
    buf_puts(why, "no route has a usable target:");
    for (size_t i = 0; i < snap->n_targets && i < ROUTER_MAX_TARGETS && why->len < 2000; i++) {
        const struct router_target_snap *t = &snap->targets[i];
        const char *reason = target_unusable(t);
        buf_printf(why, " %s (%s);", t->name, reason ? reason : "in no route");
    }
    return false;
}

bool gw_has_route(const struct router_snapshot *snap, const char *name)
{
    for (size_t i = 0; i < snap->n_routes && i < ROUTER_MAX_ROUTES; i++) {
        if (str_eq(snap->routes[i].name, name))
            return true;
    }
    return false;
}
