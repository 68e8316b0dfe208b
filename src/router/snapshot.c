/*
 * snapshot.c - what the router shows the world: the incident event ring, the published
 * snapshot (built privately, then one memcpy under snap_mu), route resolution by rules, and
 * the `route --explain` dry run.
 *
 * Router thread only, except that router_publish takes snap_mu for the copy and
 * router_snapshot_visit (any thread) reads the published snapshot in place under it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "switchboard/log.h"

const char *router_event_kind_name(enum router_event_kind k)
{
    switch (k) {
    case ROUTER_EV_BREAKER:
        return "breaker";
    case ROUTER_EV_RATE_LIMIT:
        return "rate-limit";
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
    return "?";
}

static void event_init(struct router *rt, struct router_event *e, enum router_event_kind kind,
                       const char *target)
{
    memset(e, 0, sizeof *e);
    e->seq = ++rt->churn.seq;
    e->wall_ms = rt_wall_ms(rt);
    e->kind = kind;
    str_copy(e->target, sizeof e->target, target ? target : "");
    rt->publish_now = true;
}

void router_event(struct router *rt, enum router_event_kind kind, const char *target,
                  const char *fmt, ...)
{
    struct router_event ev;
    struct router_event *e = &ev;
    event_init(rt, e, kind, target);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->text, sizeof e->text, fmt, ap);
    va_end(ap);
    timeline_put(&rt->timeline, e);
    log_info("%s: %s", router_event_kind_name(kind), e->text);
    spend_event_to_ledger(rt, e);
}

void router_audit(struct router *rt, const struct ledger_audit *a)
{
    struct router_event e;
    event_init(rt, &e, ROUTER_EV_OPERATOR, a->target);
    str_copy(e.text, sizeof e.text, a->text);
    timeline_put(&rt->timeline, &e);
    log_info("%s: %s", router_event_kind_name(ROUTER_EV_OPERATOR), e.text);
    struct ledger_audit row = *a;
    row.wall_ms = e.wall_ms;
    ledger_post_audit(rt->ledger, &row);
}

void router_churn(struct router *rt, enum router_event_kind kind, const char *target,
                  const char *cls, const char *to, const struct call *c, const char *fmt, ...)
{
    char detail[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    log_debug("%s: %s", router_event_kind_name(kind), detail);
    struct timeline_churn_in in = {.kind = kind,
                                   .target = target,
                                   .cls = cls,
                                   .to = to,
                                   .request_id = c ? c->request_id : NULL,
                                   .detail = detail};
    if (timeline_churn(&rt->timeline, &rt->churn, rt_now_ms(rt), rt_wall_ms(rt), &in))
        rt->publish_now = true;
}

/* ---- snapshot ------------------------------------------------------------------------------- */

static int64_t soonest(int64_t a, int64_t b)
{
    if (a <= 0)
        return b;
    if (b <= 0)
        return a;
    return a < b ? a : b;
}

static void snap_target(struct router *rt, const struct target_state *t, int64_t now,
                        struct router_target_snap *s)
{
    const struct config_target *c = t->cfg;
    memset(s, 0, sizeof *s);
    str_copy(s->name, sizeof s->name, c->name);
    str_copy(s->kind, sizeof s->kind, provider_kind_name(c->kind));
    str_copy(s->model, sizeof s->model, c->model);
    s->enabled = c->enabled;
    str_copy(s->disabled_reason, sizeof s->disabled_reason, c->disabled_reason);
    s->breaker = t->breaker.state;
    str_copy(s->breaker_reason, sizeof s->breaker_reason, t->breaker.last.reason);
    s->breaker_retry_in_ms = breaker_retry_in_ms(&t->breaker, now);
    s->breaker_cooldown_ms = t->breaker.cooldown_ms;
    s->forced_live = t->ov.forced_live;
    s->drained = t->ov.drained;
    int64_t exp = soonest(soonest(t->ov.weight_set ? t->ov.weight_expires : 0,
                                  t->ov.forced_live ? t->ov.force_expires : 0),
                          t->ov.drained ? t->ov.drain_expires : 0);
    for (size_t i = 0; i < rt->n_routes; i++) {
        if (rt->routes[i]->pinned == t) {
            s->pinned = true;
            exp = soonest(exp, rt->routes[i]->pin_expires);
        }
    }
    s->override_expires_in_ms = exp > 0 ? exp - now : 0;
    s->rate_limited = limits_blocked_reason(&t->limits, now, rt_wall_ms(rt), 0,
                                            s->rate_limit_reason, sizeof s->rate_limit_reason);
    s->weight = target_weight(t);
    s->configured_weight = c->weight;
    stats_summarize(&t->stats, now, &s->stats);
    s->last_error_age_ms = t->stats.last_error_ms < 0 ? -1 : now - t->stats.last_error_ms;
    s->probe_enabled = c->probe.enabled && c->enabled;
    s->probe_ok = t->probe_ok;
    s->probe_age_ms = t->probe_ever ? now - t->probe_at_ms : -1;
    s->probe_latency_us = t->probe_latency_us;
    s->probe_status = t->probe_last_status;
    str_copy(s->probe_error, sizeof s->probe_error, t->probe_error);
    s->next_probe_in_ms = timer_is_armed(&t->probe_timer) ? t->probe_timer.at - now : -1;
    s->probes = t->probes;
    s->probe_failures = t->probe_failures;
    s->probe_spend_usd = t->probe_spend_usd;
    spend_target_snapshot(rt, t, s);
}

static void snap_routes(struct router *rt, struct router_snapshot *s)
{
    const struct config *cfg = rt->cur->cfg;
    s->n_routes = cfg->n_routes < ROUTER_MAX_ROUTES ? cfg->n_routes : ROUTER_MAX_ROUTES;
    for (size_t i = 0; i < s->n_routes; i++) {
        const struct config_route *cr = &cfg->routes[i];
        struct router_route_snap *r = &s->routes[i];
        memset(r, 0, sizeof *r);
        str_copy(r->name, sizeof r->name, cr->name);
        str_copy(r->strategy, sizeof r->strategy, route_strategy_name(cr->strategy));
        const struct route_state *rs = router_find_route(rt, cr->name);
        if (rs && rs->pinned)
            str_copy(r->pinned, sizeof r->pinned, rs->pinned->cfg->name);
        r->n_targets = cr->n_targets < ROUTER_MAX_TARGETS ? cr->n_targets : ROUTER_MAX_TARGETS;
        for (size_t k = 0; k < r->n_targets; k++)
            r->targets[k] = cr->targets[k];
    }
}

static int by_seq(const void *a, const void *b)
{
    uint64_t x = ((const struct router_event *)a)->seq, y = ((const struct router_event *)b)->seq;
    return x < y ? -1 : x > y;
}

/* Both rings (ROUTER_KEY_EVENTS + ROUTER_CHURN_EVENTS fit ROUTER_MAX_EVENTS), in seq order:
 * an aggregate updated in place carries its newest seq, so readers see it again. */
static void snap_events(struct router *rt, struct router_snapshot *s)
{
    struct timeline_iter it;
    timeline_iter_init(&it);
    const struct timeline_entry *e;
    size_t n = 0;
    while (n < ROUTER_MAX_EVENTS && (e = timeline_iter_next(&rt->timeline, &it)))
        s->events[n++] = e->ev;
    qsort(s->events, n, sizeof s->events[0], by_seq);
    s->n_events = n;
}

void router_publish(struct router *rt, int64_t now)
{
    struct router_snapshot *s = rt->building;
    s->wall_ms = rt_wall_ms(rt);
    s->uptime_ms = now - rt->started_ms;
    s->n_targets = rt->n_targets < ROUTER_MAX_TARGETS ? rt->n_targets : ROUTER_MAX_TARGETS;
    s->calls = s->successes = s->failures = s->in_flight = 0;
    s->req_per_s = s->spend_usd = 0;
    double finished = 0, failed = 0, fin10 = 0, failed10 = 0;
    for (size_t i = 0; i < s->n_targets; i++) {
        struct router_target_snap *ts = &s->targets[i];
        snap_target(rt, rt->targets[i], now, ts);
        s->calls += ts->stats.calls;
        s->successes += ts->stats.successes;
        s->failures += ts->stats.failures;
        s->in_flight += (uint64_t)ts->stats.in_flight;
        s->req_per_s += ts->stats.req_per_s;
        s->spend_usd += ts->stats.spend_usd;
        double fin = 0;
        for (size_t k = 0; k < STATS_RATE_SECONDS; k++)
            fin += ts->stats.rate_series[k];
        finished += fin;
        failed += fin * ts->stats.error_pct_1m / 100.0;
        fin10 += (double)ts->stats.finished_10s;
        failed10 += (double)ts->stats.finished_10s * ts->stats.error_pct_10s / 100.0;
    }
    for (size_t i = 0; i < s->n_targets; i++) {
        struct router_target_snap *ts = &s->targets[i];
        ts->traffic_share = s->req_per_s > 0 ? ts->stats.req_per_s / s->req_per_s : 0;
    }
    s->error_pct_1m = finished > 0 ? 100.0 * failed / finished : 0;
    s->error_pct_10s = fin10 > 0 ? 100.0 * failed10 / fin10 : 0;
    s->gateway_calls = rt->gateway_calls;
    s->config_gen = rt->config_gen;
    snap_routes(rt, s);
    snap_events(rt, s);
    spend_snapshot(rt, s, now);
    router_undo_preview(rt, now, &s->undo);
    s->gen = ++rt->snap_gen;
    pthread_mutex_lock(&rt->snap_mu);
    memcpy(rt->published, s, sizeof *s);
    pthread_mutex_unlock(&rt->snap_mu);
}

bool router_snapshot_visit(struct router *rt, uint64_t have_gen, router_snapshot_fn *fn, void *ctx)
{
    pthread_mutex_lock(&rt->snap_mu);
    bool changed = rt->published->gen != have_gen;
    if (changed)
        fn(rt->published, ctx);
    pthread_mutex_unlock(&rt->snap_mu);
    return changed;
}

/* ---- routing by rules ----------------------------------------------------------------------- */

/* pattern: exact, or a prefix when it ends in '*'. */
static bool name_matches(const char *pattern, const char *s)
{
    size_t n = strlen(pattern);
    bool prefix = n > 0 && pattern[n - 1] == '*';
    return s && (prefix ? strncmp(s, pattern, n - 1) == 0 : str_eq(s, pattern));
}

static bool rule_matches(const struct config_rule *r, const char *model, const char *tag,
                         const char *user, long tokens)
{
    if (r->match_model && !name_matches(r->match_model, model))
        return false;
    if (r->match_user && !name_matches(r->match_user, user))
        return false;
    if (r->match_users_file && !config_rule_has_user(r, user))
        return false;
    if (r->match_tag && !str_eq(tag, r->match_tag))
        return false;
    if (r->min_prompt_tokens >= 0 && tokens < r->min_prompt_tokens)
        return false;
    if (r->max_prompt_tokens >= 0 && tokens > r->max_prompt_tokens)
        return false;
    return true;
}

long router_resolve_route(const struct config *cfg, const char *model, const char *tag,
                          const char *user, long tokens, long *rule_index)
{
    *rule_index = -1;
    for (size_t i = 0; i < cfg->n_rules; i++) {
        if (rule_matches(&cfg->rules[i], model, tag, user, tokens)) {
            *rule_index = (long)i;
            return (long)cfg->rules[i].route;
        }
    }
    return model ? config_find_route(cfg, model) : -1;
}

/* ---- explain -------------------------------------------------------------------------------- */

void router_explain_run(struct router *rt, const char *model, const char *tag, long tokens,
                        struct buf *out)
{
    const struct config *cfg = rt->cur->cfg;
    int64_t now = rt_now_ms(rt);
    long rule;
    long r = router_resolve_route(cfg, model, tag, NULL, tokens, &rule);
    buf_printf(out, "request: model=%s tag=%s prompt_tokens=%ld\n", model && *model ? model : "-",
               tag && *tag ? tag : "-", tokens);
    if (r < 0) {
        buf_printf(out, "route: none (no rule matches and no route is named '%s')\n",
                   model ? model : "");
        return;
    }
    const struct config_route *cr = &cfg->routes[r];
    if (rule >= 0)
        buf_printf(out, "route: %s (rules[%ld] matched)\n", cr->name, rule);
    else
        buf_printf(out, "route: %s (by model name)\n", cr->name);
    buf_printf(out, "strategy: %s\n", route_strategy_name(cr->strategy));
    char refused[256];
    int64_t retry;
    if (budgets_call_blocked(rt->budgets, rt_wall_ms(rt), cr->name, tag, refused, sizeof refused,
                             &retry))
        buf_printf(out, "refused: %s (429)\n", refused);
    const struct route_state *rs = router_find_route(rt, cr->name);
    if (rs && rs->pinned)
        buf_printf(out, "pinned to: %s\n", rs->pinned->cfg->name);
    struct pick_candidate pc[PICK_MAX_CANDIDATES];
    size_t n = 0;
    for (size_t k = 0; k < cr->n_targets && n < PICK_MAX_CANDIDATES; k++) {
        struct target_state *t = router_find_target(rt, cfg->targets[cr->targets[k]].name);
        char why[160];
        bool blocked = target_blocked(t, now, tokens, 0, false, why, sizeof why);
        buf_printf(out, "  %-20s %s\n", t->cfg->name, blocked ? why : "eligible");
        struct llm_usage est = {.present = true, .input_tokens = tokens, .output_tokens = 256};
        pc[n++] = (struct pick_candidate){
            .id = k,
            .weight = target_weight(t),
            .est_cost_usd = t->cfg->has_price ? llm_cost_usd(&t->cfg->price, &est) : -1,
            .latency_score_ms = ewma_value(&t->ewma),
            .in_flight = t->stats.in_flight,
            .ewma_ms = ewma_value(&t->ewma),
            .eligible = !blocked,
        };
    }
    struct pick_state scratch = rs ? rs->pick : (struct pick_state){{0}, 0};
    struct rng rng = rt->rng;
    size_t chosen;
    if (pick_next(&scratch, cr->strategy, pc, n, &rng, &chosen))
        buf_printf(out, "pick: %s\n", cfg->targets[cr->targets[pc[chosen].id]].name);
    else if (cr->n_fallback)
        buf_printf(out, "pick: none here; fallback to %s\n", cfg->routes[cr->fallback[0]].name);
    else
        buf_printf(out, "pick: none (the call would fail with 503)\n");
}
