/*
 * metrics.c - GET /metrics: a router snapshot plus the gateway's own counters as Prometheus
 * text exposition format 0.0.4.
 *
 * Latency and TTFT are real HISTOGRAMS: the snapshot carries each target's cumulative
 * Prometheus buckets since start (hist.h's standard boundaries, 5 ms .. 60 s), with _sum and
 * _count. The router's 1-minute percentiles are exported as well, as GAUGES with a quantile
 * label (switchboard_latency_1m_seconds, switchboard_ttft_1m_seconds): they are windowed
 * values for dashboards, not a summary's series. The gateway's own overhead is a histogram
 * whose exact buckets are kept here (gw_stats_note_overhead): sub-millisecond boundaries.
 *
 * Pure: renders from copies; the caller copies gw_stats under the gateway's lock.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "switchboard/breaker.h"
#include "switchboard/budgets.h"
#include "switchboard/hist.h"

/* Overhead histogram bounds: 50 us .. 250 ms. */
static const int64_t overhead_le_us[GW_OVERHEAD_BOUNDS] = {
    50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000,
};
static const char *const overhead_le_label[GW_OVERHEAD_BOUNDS] = {
    "0.00005", "0.0001", "0.00025", "0.0005", "0.001", "0.0025",
    "0.005",   "0.01",   "0.025",   "0.05",   "0.1",   "0.25",
};

void gw_stats_note_status(struct gw_stats *s, int status)
{
    if (status >= 0 && status < GW_STATUS_MAX)
        s->by_status[status]++;
}

void gw_stats_note_overhead(struct gw_stats *s, int64_t overhead_us)
{
    if (overhead_us < 0)
        return;
    size_t i = 0;
    while (i < GW_OVERHEAD_BOUNDS && overhead_us > overhead_le_us[i])
        i++;
    s->overhead_buckets[i]++;
    s->overhead_count++;
    s->overhead_sum_us += (uint64_t)overhead_us;
}

void gw_prom_label(struct buf *out, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '\\':
            buf_puts(out, "\\\\");
            break;
        case '"':
            buf_puts(out, "\\\"");
            break;
        case '\n':
            buf_puts(out, "\\n");
            break;
        default:
            buf_putc(out, *s);
        }
    }
}

static size_t n_targets(const struct router_snapshot *snap)
{
    return snap->n_targets < ROUTER_MAX_TARGETS ? snap->n_targets : ROUTER_MAX_TARGETS;
}

static void family(struct buf *out, const char *name, const char *type, const char *help)
{
    buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void put_double(struct buf *out, double v)
{
    if (isnan(v))
        buf_puts(out, "NaN");
    else if (isinf(v))
        buf_puts(out, v > 0 ? "+Inf" : "-Inf");
    else
        buf_printf(out, "%.10g", v);
}

/* name{target="t"[,extra]} value */
static void target_line(struct buf *out, const char *name, const char *target,
                        const char *extra_key, const char *extra_val, double v)
{
    buf_printf(out, "%s{target=\"", name);
    gw_prom_label(out, target);
    buf_putc(out, '"');
    if (extra_key) {
        buf_printf(out, ",%s=\"", extra_key);
        gw_prom_label(out, extra_val);
        buf_putc(out, '"');
    }
    buf_puts(out, "} ");
    put_double(out, v);
    buf_putc(out, '\n');
}

/* One per-target family taking one number from each target. */
struct per_target {
    const char *name;
    const char *type;
    const char *help;
    double (*get)(const struct router_target_snap *t);
};

static double t_calls(const struct router_target_snap *t)
{
    return (double)t->stats.calls;
}
static double t_successes(const struct router_target_snap *t)
{
    return (double)t->stats.successes;
}
static double t_spend(const struct router_target_snap *t)
{
    return t->stats.spend_usd;
}
static double t_weight(const struct router_target_snap *t)
{
    return t->weight;
}
static double t_probe_spend(const struct router_target_snap *t)
{
    return t->probe_spend_usd;
}
static double t_cooldown(const struct router_target_snap *t)
{
    return (double)t->breaker_cooldown_ms / 1000.0;
}
static double t_in_flight(const struct router_target_snap *t)
{
    return (double)t->stats.in_flight;
}
static double t_retries(const struct router_target_snap *t)
{
    return (double)t->stats.retries;
}
static double t_hedges(const struct router_target_snap *t)
{
    return (double)t->stats.hedges;
}
static double t_truncated(const struct router_target_snap *t)
{
    return (double)t->stats.truncated;
}
static double t_usage_missing(const struct router_target_snap *t)
{
    return (double)t->stats.usage_missing;
}
static double t_enabled(const struct router_target_snap *t)
{
    return t->enabled ? 1 : 0;
}
/* 0 closed, 1 half-open, 2 open (breaker.h numbers them differently). */
static double t_breaker(const struct router_target_snap *t)
{
    switch (t->breaker) {
    case BREAKER_CLOSED:
        return 0;
    case BREAKER_HALF_OPEN:
        return 1;
    case BREAKER_OPEN:
        return 2;
    }
    return 2;
}

static const struct per_target per_target_families[] = {
    {"switchboard_requests_total", "counter", "Calls routed to the target.", t_calls},
    {"switchboard_successes_total", "counter", "Calls the target answered.", t_successes},
    {"switchboard_spend_usd_total", "counter", "Spend in USD at configured prices.", t_spend},
    {"switchboard_breaker_state", "gauge", "Circuit breaker: 0 closed, 1 half-open, 2 open.",
     t_breaker},
    {"switchboard_breaker_cooldown_seconds", "gauge",
     "Current breaker cooldown (doubles with each failed trial, up to the cap).", t_cooldown},
    {"switchboard_probe_spend_usd_total", "counter",
     "Spend of chat probes (probe.kind chat) at configured prices.", t_probe_spend},
    {"switchboard_weight", "gauge", "Effective routing weight.", t_weight},
    {"switchboard_in_flight", "gauge", "Calls in flight.", t_in_flight},
    {"switchboard_retries_total", "counter", "Retried attempts.", t_retries},
    {"switchboard_hedges_total", "counter", "Hedge attempts started.", t_hedges},
    {"switchboard_truncated_streams_total", "counter", "Streams cut after output.", t_truncated},
    {"switchboard_usage_missing_total", "counter", "Answers without usage.", t_usage_missing},
    {"switchboard_target_enabled", "gauge", "1 when the target has its API key.", t_enabled},
};

static void render_per_target(const struct router_snapshot *snap, struct buf *out)
{
    for (size_t f = 0; f < SB_ARRAY_LEN(per_target_families); f++) {
        const struct per_target *pt = &per_target_families[f];
        family(out, pt->name, pt->type, pt->help);
        for (size_t i = 0; i < n_targets(snap); i++)
            target_line(out, pt->name, snap->targets[i].name, NULL, NULL,
                        pt->get(&snap->targets[i]));
    }
}

static void render_errors_tokens(const struct router_snapshot *snap, struct buf *out)
{
    family(out, "switchboard_errors_total", "counter", "Failed attempts by error class.");
    for (size_t i = 0; i < n_targets(snap); i++) {
        const struct router_target_snap *t = &snap->targets[i];
        for (int c = 1; c < LLM_ERRCLASS_COUNT; c++)
            target_line(out, "switchboard_errors_total", t->name, "class",
                        llm_errclass_name((enum llm_errclass)c), (double)t->stats.errors[c]);
    }
    family(out, "switchboard_tokens_total", "counter", "Tokens by direction.");
    for (size_t i = 0; i < n_targets(snap); i++) {
        const struct router_target_snap *t = &snap->targets[i];
        target_line(out, "switchboard_tokens_total", t->name, "direction", "input",
                    (double)t->stats.tokens_in);
        target_line(out, "switchboard_tokens_total", t->name, "direction", "output",
                    (double)t->stats.tokens_out);
        target_line(out, "switchboard_tokens_total", t->name, "direction", "cached_input",
                    (double)t->stats.tokens_cached);
    }
}

/* A histogram family line set for one target: cumulative buckets, _sum, _count. */
static void histogram(struct buf *out, const char *name, const char *target,
                      const uint64_t prom[HIST_PROM_COUNT], uint64_t count, uint64_t sum_us)
{
    for (size_t i = 0; i < HIST_PROM_COUNT; i++) {
        buf_printf(out, "%s_bucket{target=\"", name);
        gw_prom_label(out, target);
        buf_printf(out, "\",le=\"%s\"} %" PRIu64 "\n", hist_prom_le_label(i), prom[i]);
    }
    buf_printf(out, "%s_sum{target=\"", name);
    gw_prom_label(out, target);
    buf_puts(out, "\"} ");
    put_double(out, (double)sum_us / 1e6);
    buf_printf(out, "\n%s_count{target=\"", name);
    gw_prom_label(out, target);
    buf_printf(out, "\"} %" PRIu64 "\n", count);
}

static void quantile_gauges(struct buf *out, const char *name, const char *target,
                            const double ms[3])
{
    static const char *const q[3] = {"0.5", "0.95", "0.99"};
    for (size_t k = 0; k < 3; k++)
        target_line(out, name, target, "quantile", q[k], ms[k] / 1000.0);
}

static void render_latency(const struct router_snapshot *snap, struct buf *out)
{
    family(out, "switchboard_latency_seconds", "histogram",
           "Latency of successful calls, since start.");
    for (size_t i = 0; i < n_targets(snap); i++) {
        const struct stats_summary *s = &snap->targets[i].stats;
        histogram(out, "switchboard_latency_seconds", snap->targets[i].name, s->latency_prom,
                  s->latency_count, s->latency_sum_us);
    }
    family(out, "switchboard_ttft_seconds", "histogram", "Time to first byte, since start.");
    for (size_t i = 0; i < n_targets(snap); i++) {
        const struct stats_summary *s = &snap->targets[i].stats;
        histogram(out, "switchboard_ttft_seconds", snap->targets[i].name, s->ttft_prom,
                  s->ttft_count, s->ttft_sum_us);
    }
    family(out, "switchboard_latency_1m_seconds", "gauge",
           "Latency percentiles over the last minute (router window).");
    for (size_t i = 0; i < n_targets(snap); i++)
        quantile_gauges(out, "switchboard_latency_1m_seconds", snap->targets[i].name,
                        snap->targets[i].stats.latency_1m);
    family(out, "switchboard_ttft_1m_seconds", "gauge",
           "Time-to-first-byte percentiles over the last minute (router window).");
    for (size_t i = 0; i < n_targets(snap); i++)
        quantile_gauges(out, "switchboard_ttft_1m_seconds", snap->targets[i].name,
                        snap->targets[i].stats.ttft_1m);
}

/* limits.c's counters: what was refused or cut, and what is held now. */
static void render_limits(const struct gw_stats *gs, struct buf *out)
{
    family(out, "switchboard_gateway_connections", "gauge",
           "Open client connections by listener (api: gateway.listen, ops: admin_listen).");
    buf_printf(out, "switchboard_gateway_connections{listener=\"api\"} %ld\n", gs->connections[0]);
    buf_printf(out, "switchboard_gateway_connections{listener=\"ops\"} %ld\n", gs->connections[1]);
    family(out, "switchboard_gateway_connections_saturated_total", "counter",
           "Times a listener had every connection taken (new ones wait in the backlog).");
    buf_printf(out, "switchboard_gateway_connections_saturated_total %" PRIu64 "\n",
               gs->conn_saturated);
    family(out, "switchboard_gateway_connections_refused_total", "counter",
           "Connections closed at accept: over gateway.max_connections_per_client.");
    buf_printf(out, "switchboard_gateway_connections_refused_total %" PRIu64 "\n",
               gs->conn_refused);
    family(out, "switchboard_gateway_request_timeouts_total", "counter",
           "Connections closed for not sending a whole request within "
           "gateway.request_timeout_ms.");
    buf_printf(out, "switchboard_gateway_request_timeouts_total %" PRIu64 "\n",
               gs->request_timeouts);
    family(out, "switchboard_gateway_request_bytes", "gauge",
           "Request bytes held now, all connections (cap: gateway.max_body_bytes_total).");
    buf_printf(out, "switchboard_gateway_request_bytes %" PRIu64 "\n", gs->body_bytes);
    family(out, "switchboard_gateway_request_bytes_refused_total", "counter",
           "Requests answered 503 because gateway.max_body_bytes_total was reached.");
    buf_printf(out, "switchboard_gateway_request_bytes_refused_total %" PRIu64 "\n",
               gs->body_refused);
    family(out, "switchboard_gateway_answer_bytes", "gauge",
           "Stream bytes waiting for slow clients, all connections.");
    buf_printf(out, "switchboard_gateway_answer_bytes %" PRIu64 "\n", gs->answer_bytes);
    family(out, "switchboard_gateway_upstream_pauses_total", "counter",
           "Times a stream's upstream was paused because its client was behind.");
    buf_printf(out, "switchboard_gateway_upstream_pauses_total %" PRIu64 "\n", gs->upstream_pauses);
    family(out, "switchboard_gateway_clients_stalled_total", "counter",
           "Clients closed by the idle timeout in the middle of an answer (ledger: 499).");
    buf_printf(out, "switchboard_gateway_clients_stalled_total %" PRIu64 "\n", gs->clients_stalled);
    family(out, "switchboard_gateway_draining", "gauge",
           "1 while the gateway drains for a shutdown (no new calls).");
    buf_printf(out, "switchboard_gateway_draining %d\n", gs->draining ? 1 : 0);
}

static void render_gateway(const struct gw_stats *gs, struct buf *out)
{
    family(out, "switchboard_gateway_requests_total", "counter", "Gateway answers by status.");
    for (int code = 100; code < GW_STATUS_MAX; code++) {
        if (gs->by_status[code])
            buf_printf(out, "switchboard_gateway_requests_total{code=\"%d\"} %" PRIu64 "\n", code,
                       gs->by_status[code]);
    }
    family(out, "switchboard_gateway_overhead_seconds", "histogram",
           "Time spent in switchboard itself per call (router_result.overhead_us).");
    uint64_t cum = 0;
    for (size_t i = 0; i < GW_OVERHEAD_BOUNDS; i++) {
        cum += gs->overhead_buckets[i];
        buf_printf(out, "switchboard_gateway_overhead_seconds_bucket{le=\"%s\"} %" PRIu64 "\n",
                   overhead_le_label[i], cum);
    }
    cum += gs->overhead_buckets[GW_OVERHEAD_BOUNDS];
    buf_printf(out, "switchboard_gateway_overhead_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", cum);
    buf_puts(out, "switchboard_gateway_overhead_seconds_sum ");
    put_double(out, (double)gs->overhead_sum_us / 1e6);
    buf_printf(out, "\nswitchboard_gateway_overhead_seconds_count %" PRIu64 "\n",
               gs->overhead_count);
    family(out, "switchboard_gateway_in_flight", "gauge", "Chat calls the gateway is serving.");
    buf_printf(out, "switchboard_gateway_in_flight %ld\n", gs->calls_in_flight);
    family(out, "switchboard_gateway_truncated_streams_total", "counter",
           "Streams the gateway ended with an error chunk.");
    buf_printf(out, "switchboard_gateway_truncated_streams_total %" PRIu64 "\n",
               gs->streams_truncated);
    family(out, "switchboard_gateway_clients_gone_total", "counter",
           "Clients that left before their answer was complete.");
    buf_printf(out, "switchboard_gateway_clients_gone_total %" PRIu64 "\n", gs->clients_gone);
    render_limits(gs, out);
}

static double level_value(enum budget_level l)
{
    switch (l) {
    case BUDGET_LEVEL_OK:
        return 0;
    case BUDGET_LEVEL_SOFT:
        return 1;
    case BUDGET_LEVEL_HARD:
        return 2;
    }
    return 2;
}

static void budget_line(struct buf *out, const char *name, const char *budget, const char *window,
                        double v)
{
    buf_printf(out, "%s{budget=\"", name);
    gw_prom_label(out, budget);
    if (window)
        buf_printf(out, "\",window=\"%s", window);
    buf_puts(out, "\"} ");
    put_double(out, v);
    buf_putc(out, '\n');
}

static void counter(struct buf *out, const char *name, const char *help, uint64_t v)
{
    family(out, name, "counter", help);
    buf_printf(out, "%s %" PRIu64 "\n", name, v);
}

static void window_line(struct buf *out, const char *name, const char *window, double v)
{
    buf_printf(out, "%s{window=\"%s\"} ", name, window);
    put_double(out, v);
    buf_putc(out, '\n');
}

/* Spend in the UTC day and month (all of it, budget or not), the last hour's burn, and what
 * routing saved against the routes' baselines (a gauge: a loss makes it go down). */
static void render_savings(const struct router_snapshot *snap, struct buf *out)
{
    family(out, "switchboard_spend_window_usd", "gauge",
           "Spend in the current UTC day and month (rebuilt from the ledger at start).");
    window_line(out, "switchboard_spend_window_usd", "day", snap->spend_today_usd);
    window_line(out, "switchboard_spend_window_usd", "month", snap->spend_month_usd);
    family(out, "switchboard_target_spend_window_usd", "gauge",
           "Spend per target in the current UTC day and month.");
    for (size_t i = 0; i < n_targets(snap); i++) {
        const struct router_target_snap *t = &snap->targets[i];
        target_line(out, "switchboard_target_spend_window_usd", t->name, "window", "day",
                    t->spend_today_usd);
        target_line(out, "switchboard_target_spend_window_usd", t->name, "window", "month",
                    t->spend_month_usd);
    }
    family(out, "switchboard_burn_usd_per_hour", "gauge", "Spend over the last hour.");
    buf_puts(out, "switchboard_burn_usd_per_hour ");
    put_double(out, snap->burn_per_hour_usd);
    buf_putc(out, '\n');
    family(out, "switchboard_savings_usd", "gauge",
           "Baseline cost minus actual cost (negative: a loss), since start and in the current "
           "UTC day and month.");
    window_line(out, "switchboard_savings_usd", "since_start", snap->savings_usd);
    window_line(out, "switchboard_savings_usd", "day", snap->savings_today_usd);
    window_line(out, "switchboard_savings_usd", "month", snap->savings_month_usd);
}

/* Fleet mode: Redis reachable, instances, the fleet's spend; the status line as a comment
 * ("# fleet: redis unreachable since 12:03:05") for whoever reads the page by eye. */
static void render_fleet(const struct router_snapshot *snap, struct buf *out)
{
    const struct fleet_status *f = &snap->fleet;
    if (!f->enabled)
        return;
    buf_printf(out, "# %s\n", f->text);
    family(out, "switchboard_fleet_up", "gauge",
           "1 while this instance reaches the fleet's Redis.");
    buf_printf(out, "switchboard_fleet_up %d\n", f->connected ? 1 : 0);
    family(out, "switchboard_fleet_down_since_seconds", "gauge",
           "Unix time Redis became unreachable (0 while up).");
    buf_printf(out, "switchboard_fleet_down_since_seconds %lld\n",
               (long long)(f->down_since_ms / 1000));
    family(out, "switchboard_fleet_instances", "gauge", "Instances heartbeating in the fleet.");
    buf_printf(out, "switchboard_fleet_instances %ld\n", f->instances);
    family(out, "switchboard_fleet_pending_usd", "gauge", "Spend not yet added to Redis.");
    buf_puts(out, "switchboard_fleet_pending_usd ");
    put_double(out, (double)f->pending_micro_usd / 1e6);
    buf_putc(out, '\n');
    counter(out, "switchboard_fleet_reconnects_total", "Reconnections to Redis.", f->reconnects);
    family(out, "switchboard_fleet_spend_usd", "gauge",
           "The whole fleet's spend in the current UTC day and month (from Redis).");
    window_line(out, "switchboard_fleet_spend_usd", "day", snap->fleet_spend_today_usd);
    window_line(out, "switchboard_fleet_spend_usd", "month", snap->fleet_spend_month_usd);
}

/* Budgets, the runaway guard, response caches, the ledger. */
static void render_spend(const struct router_snapshot *snap, struct buf *out)
{
    size_t n = snap->n_budgets < ROUTER_MAX_BUDGETS ? snap->n_budgets : ROUTER_MAX_BUDGETS;
    family(out, "switchboard_budget_spent_usd", "gauge", "Spend in the budget's UTC window.");
    for (size_t i = 0; i < n; i++) {
        const struct budget_status *b = &snap->budgets[i];
        budget_line(out, "switchboard_budget_spent_usd", b->label, "day", b->day_spent);
        budget_line(out, "switchboard_budget_spent_usd", b->label, "month", b->month_spent);
    }
    family(out, "switchboard_budget_cap_usd", "gauge", "Budget caps (0: none).");
    for (size_t i = 0; i < n; i++) {
        const struct budget_status *b = &snap->budgets[i];
        budget_line(out, "switchboard_budget_cap_usd", b->label, "day", b->daily_cap);
        budget_line(out, "switchboard_budget_cap_usd", b->label, "month", b->monthly_cap);
    }
    family(out, "switchboard_budget_level", "gauge", "Budget level: 0 ok, 1 soft, 2 hard.");
    for (size_t i = 0; i < n; i++)
        budget_line(out, "switchboard_budget_level", snap->budgets[i].label, NULL,
                    level_value(snap->budgets[i].level));
    counter(out, "switchboard_budget_refused_total", "Calls refused at a budget cap.",
            snap->budget_refused);
    counter(out, "switchboard_guard_throttled_total", "Calls refused by the runaway guard.",
            snap->guard_throttled);
    counter(out, "switchboard_guard_cached_total",
            "Calls the runaway guard answered from a response cache.", snap->guard_cached);
    counter(out, "switchboard_guard_storms_total", "Identical-prompt storms detected.",
            snap->guard_storms);
    counter(out, "switchboard_guard_spikes_total", "Rate spikes detected.", snap->guard_spikes);
    family(out, "switchboard_cache_entries", "gauge", "Entries in the response caches.");
    buf_printf(out, "switchboard_cache_entries %zu\n", snap->cache_entries);
    counter(out, "switchboard_ledger_rows_written_total", "Ledger rows committed.",
            snap->ledger.written);
    counter(out, "switchboard_ledger_rows_dropped_total", "Ledger rows lost.",
            snap->ledger.dropped);
    family(out, "switchboard_ledger_queue", "gauge", "Ledger rows waiting to be written.");
    buf_printf(out, "switchboard_ledger_queue %" PRIu64 "\n", snap->ledger.queued);
    counter(out, "switchboard_ledger_write_errors_total", "Failed ledger writes (retried).",
            snap->ledger.write_errors);
    render_savings(snap, out);
    render_fleet(snap, out);
}

void gw_metrics_render(const struct router_snapshot *snap, const struct gw_stats *gs,
                       struct buf *out)
{
    family(out, "switchboard_uptime_seconds", "gauge", "Seconds since the router started.");
    buf_puts(out, "switchboard_uptime_seconds ");
    put_double(out, (double)snap->uptime_ms / 1000.0);
    buf_putc(out, '\n');
    render_per_target(snap, out);
    render_errors_tokens(snap, out);
    render_latency(snap, out);
    render_spend(snap, out);
    render_gateway(gs, out);
}
