/*
 * fleet_heartbeat.c - what each instance tells the fleet about itself every second: its
 * snapshot's summary in the shape of GET /admin/state (src/gateway/state.c), a subset of it
 * (totals, budgets with the fleet's spend, targets with their counters and latencies,
 * routes; no events, no histograms), so a reader of P inst:<name> (the fleet console) parses it
 * like an attached gateway's state.
 *
 * Threads: router thread (at snapshot time, once a second).
 */
#include <string.h>

#include "internal.h"

static void key(struct buf *b, const char *k)
{
    buf_putc(b, '"');
    buf_puts(b, k);
    buf_puts(b, "\":");
}

static void str(struct buf *b, const char *k, const char *v)
{
    key(b, k);
    buf_put_json_string(b, v, strlen(v));
    buf_putc(b, ',');
}

static void num(struct buf *b, const char *k, double v)
{
    buf_printf(b, "\"%s\":%.6g,", k, v);
}

static void ms3(struct buf *b, const char *k, const double v[3])
{
    buf_printf(b, "\"%s\":{\"p50\":%.3f,\"p95\":%.3f,\"p99\":%.3f},", k, v[0], v[1], v[2]);
}

static void trim(struct buf *b) /* the last comma before a closing bracket */
{
    if (b->len && b->data[b->len - 1] == ',')
        b->len--;
}

static void target(struct buf *b, const struct router_target_snap *t)
{
    const struct stats_summary *st = &t->stats;
    buf_putc(b, '{');
    str(b, "name", t->name);
    str(b, "kind", t->kind);
    str(b, "model", t->model);
    buf_printf(b, "\"enabled\":%s,", t->enabled ? "true" : "false");
    str(b, "breaker", breaker_state_name(t->breaker));
    str(b, "breaker_reason", t->breaker_reason);
    buf_printf(b, "\"forced_live\":%s,\"drained\":%s,\"pinned\":%s,\"rate_limited\":%s,",
               t->forced_live ? "true" : "false", t->drained ? "true" : "false",
               t->pinned ? "true" : "false", t->rate_limited ? "true" : "false");
    str(b, "rate_limit_reason", t->rate_limit_reason);
    num(b, "override_expires_in_ms", (double)t->override_expires_in_ms);
    num(b, "weight", t->weight);
    num(b, "configured_weight", t->configured_weight);
    num(b, "traffic_share", t->traffic_share);
    num(b, "spend_today_usd", t->spend_today_usd);
    num(b, "spend_month_usd", t->spend_month_usd);
    buf_printf(b, "\"over_budget\":%s,", t->over_budget ? "true" : "false");
    key(b, "stats");
    buf_putc(b, '{');
    num(b, "calls", (double)st->calls);
    num(b, "successes", (double)st->successes);
    num(b, "failures", (double)st->failures);
    num(b, "in_flight", (double)st->in_flight);
    num(b, "tokens_in", (double)st->tokens_in);
    num(b, "tokens_out", (double)st->tokens_out);
    num(b, "spend_usd", st->spend_usd);
    num(b, "req_per_s", st->req_per_s);
    num(b, "error_pct_1m", st->error_pct_1m);
    ms3(b, "latency_1m_ms", st->latency_1m);
    ms3(b, "ttft_1m_ms", st->ttft_1m);
    str(b, "last_error", st->last_error);
    trim(b);
    buf_puts(b, "}},");
}

/* A budget as state.c writes it; its spend is the fleet's (fleet_glue_snapshot). */
static void budget(struct buf *b, const struct budget_status *bs)
{
    buf_putc(b, '{');
    str(b, "label", bs->label);
    str(b, "name", bs->name);
    num(b, "daily_cap", bs->daily_cap);
    num(b, "monthly_cap", bs->monthly_cap);
    num(b, "soft_pct", bs->soft_pct);
    num(b, "day_spent", bs->day_spent);
    num(b, "month_spent", bs->month_spent);
    str(b, "day_level", budget_level_name(bs->day_level));
    str(b, "month_level", budget_level_name(bs->month_level));
    str(b, "level", budget_level_name(bs->level));
    num(b, "burn_per_hour", bs->burn_per_hour);
    num(b, "day_exhausted_in_ms", (double)bs->day_exhausted_in_ms);
    num(b, "month_exhausted_in_ms", (double)bs->month_exhausted_in_ms);
    num(b, "day_resets_in_ms", (double)bs->day_resets_in_ms);
    num(b, "month_resets_in_ms", (double)bs->month_resets_in_ms);
    trim(b);
    buf_puts(b, "},");
}

static void route(struct buf *b, const struct router_snapshot *s, const struct router_route_snap *r)
{
    buf_putc(b, '{');
    str(b, "name", r->name);
    str(b, "strategy", r->strategy);
    if (r->pinned[0])
        str(b, "pinned", r->pinned);
    key(b, "targets");
    buf_putc(b, '[');
    for (size_t k = 0; k < r->n_targets && k < ROUTER_MAX_TARGETS; k++) {
        if (r->targets[k] < s->n_targets) {
            const char *n = s->targets[r->targets[k]].name;
            buf_put_json_string(b, n, strlen(n));
            buf_putc(b, ',');
        }
    }
    trim(b);
    buf_puts(b, "]},");
}

void fleet_heartbeat_json(struct router *rt, const struct router_snapshot *s)
{
    struct buf b;
    buf_init(&b);
    buf_putc(&b, '{');
    str(&b, "name", fleet_name(rt->fleet));
    num(&b, "wall_ms", (double)s->wall_ms);
    num(&b, "uptime_ms", (double)s->uptime_ms);
    num(&b, "calls", (double)s->calls);
    num(&b, "successes", (double)s->successes);
    num(&b, "failures", (double)s->failures);
    num(&b, "in_flight", (double)s->in_flight);
    num(&b, "gateway_calls", (double)s->gateway_calls);
    num(&b, "req_per_s", s->req_per_s);
    num(&b, "error_pct_1m", s->error_pct_1m);
    num(&b, "spend_usd", s->spend_usd);
    num(&b, "spend_today_usd", s->spend_today_usd);
    num(&b, "spend_month_usd", s->spend_month_usd);
    num(&b, "burn_per_hour_usd", s->burn_per_hour_usd);
    num(&b, "budget_refused", (double)s->budget_refused);
    key(&b, "budgets");
    buf_putc(&b, '[');
    for (size_t i = 0; i < s->n_budgets && i < ROUTER_MAX_BUDGETS; i++)
        budget(&b, &s->budgets[i]);
    trim(&b);
    buf_puts(&b, "],");
    key(&b, "targets");
    buf_putc(&b, '[');
    for (size_t i = 0; i < s->n_targets && i < ROUTER_MAX_TARGETS; i++)
        target(&b, &s->targets[i]);
    trim(&b);
    buf_puts(&b, "],");
    key(&b, "routes");
    buf_putc(&b, '[');
    for (size_t i = 0; i < s->n_routes && i < ROUTER_MAX_ROUTES; i++)
        route(&b, s, &s->routes[i]);
    trim(&b);
    buf_puts(&b, "]}");
    fleet_set_heartbeat(rt->fleet, buf_str(&b));
    buf_cleanup(&b);
}
