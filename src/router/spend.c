/*
 * spend.c - the router's spend side: the ledger (every finished call is a row, posted when
 * the call is freed so a losing hedge's late cost is on it), budgets (charged per call,
 * checked at a call's start and in the target filter), the runaway guard and the routes'
 * response caches (record the answer, replay it when the guard says so), plus what the
 * snapshot shows about all of it.
 *
 * Threads: router thread only, except spend_open (router_new, before the thread starts) and
 * spend_close (after it was joined). The ledger's posting functions never wait on disk.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "switchboard/log.h"

#define BUDGET_ALERTS_MAX 8

/* ---- lifecycle ---------------------------------------------------------------------------- */

bool spend_open(struct router *rt, const struct config *cfg, char *msg, size_t msglen)
{
    struct ledger_spend seed;
    ledger_spend_init(&seed);
    int64_t now = rt_wall_ms(rt);
    rt->ledger = ledger_open(cfg->ledger.path, cfg->ledger.batch_ms, msg, msglen);
    if (!rt->ledger)
        return false;
    if (ledger_load_spend(cfg->ledger.path, now, &seed, msg, msglen) != SB_OK) {
        ledger_close(rt->ledger);
        rt->ledger = NULL;
        return false;
    }
    rt->ledger_path = xstrdup(cfg->ledger.path);
    rt->budgets = budgets_new(cfg, &seed, now);
    rt->guard = guard_new(&cfg->guard);
    if (!fleet_glue_open(rt, cfg, msg, msglen)) {
        ledger_spend_cleanup(&seed);
        spend_close(rt);
        return false;
    }
    log_info("ledger %s: $%.4f spent today, $%.4f this month (UTC)", cfg->ledger.path,
             seed.global_day_usd, seed.global_month_usd);
    ledger_spend_cleanup(&seed);
    return true;
}

void spend_reload(struct router *rt, const struct config *cfg)
{
    budgets_reconfigure(rt->budgets, cfg);
    fleet_glue_reload(rt, cfg);
    guard_set_params(rt->guard, &cfg->guard);
    if (!str_eq(cfg->ledger.path, rt->ledger_path))
        router_event(rt, ROUTER_EV_CONFIG, "",
                     "ledger.path changed to %.100s: still writing %.60s until a restart",
                     cfg->ledger.path, rt->ledger_path);
}

void spend_close(struct router *rt)
{
    fleet_glue_close(rt);
    ledger_close(rt->ledger);
    rt->ledger = NULL;
    budgets_free(rt->budgets);
    rt->budgets = NULL;
    guard_free(rt->guard);
    rt->guard = NULL;
    free(rt->ledger_path);
    rt->ledger_path = NULL;
}

void spend_call_free(struct call *c)
{
    if (c->rec) {
        cache_recorder_cleanup(c->rec);
        free(c->rec);
    }
    if (c->fin) {
        free(c->fin->target);
        free(c->fin->model);
        free(c->fin);
    }
    free(c->cached_model);
    free(c->cache_key);
}

/* ---- events ------------------------------------------------------------------------------ */

void spend_event_to_ledger(struct router *rt, const struct router_event *e)
{
    switch (e->kind) {
    case ROUTER_EV_OPERATOR:
    case ROUTER_EV_CONFIG:
    case ROUTER_EV_BREAKER:
    case ROUTER_EV_PROBE:
        ledger_post_event(rt->ledger, e->wall_ms, router_event_kind_name(e->kind), e->target,
                          e->text);
        return;
    case ROUTER_EV_RATE_LIMIT:
    case ROUTER_EV_FALLBACK:
    case ROUTER_EV_HEDGE:
    case ROUTER_EV_TRUNCATED:
    case ROUTER_EV_ERROR:
        return; /* per-call detail: the call rows carry it */
    }
}

struct ledger *router_ledger_peek(struct router *rt)
{
    return rt->ledger;
}

/* An event on the timeline and, with its own kind ("budget", "guard"), in the ledger. */
static void spend_event(struct router *rt, enum router_event_kind kind, const char *ledger_kind,
                        const char *target, const char *text)
{
    router_event(rt, kind, target, "%s", text);
    ledger_post_event(rt->ledger, rt_wall_ms(rt), ledger_kind, target, text);
}

/* A vote as feedback (source "console"): +1 for the winner, -1 for each loser, so the
 * prompt pane's win rates read like production ratings. */
static void vote_row(struct router *rt, int64_t now, const char *target, double score,
                     uint64_t prompt_hash)
{
    const struct config *cfg = rt->cur ? rt->cur->cfg : NULL;
    long t = cfg ? config_find_target(cfg, target) : -1;
    struct ledger_feedback fb = {.wall_ms = now,
                                 .source = "console",
                                 .score = score,
                                 .raw_score = score,
                                 .scale = 1,
                                 .label = score > 0 ? "vote_won" : "vote_lost",
                                 .call_ms = now,
                                 .target = target,
                                 .route = "",
                                 .model = t >= 0 ? cfg->targets[t].model : NULL,
                                 .prompt_hash = prompt_hash};
    ledger_post_feedback(rt->ledger, &fb);
}

static void spend_vote_feedback(struct router *rt, int64_t now, const char *winner,
                                const char *losers, uint64_t prompt_hash)
{
    if (winner && *winner)
        vote_row(rt, now, winner, 1, prompt_hash);
    for (const char *p = losers; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char name[64];
        if (len > 0 && len < sizeof name) {
            memcpy(name, p, len);
            name[len] = '\0';
            vote_row(rt, now, name, -1, prompt_hash);
        }
        p = comma ? comma + 1 : p + len;
    }
}

void spend_record_vote(struct router *rt, const char *winner, const char *losers,
                       uint64_t prompt_hash, const char *user)
{
    int64_t now = rt_wall_ms(rt);
    ledger_post_vote(rt->ledger, now, prompt_hash, winner, losers, user);
    spend_vote_feedback(rt, now, winner, losers, prompt_hash);
    router_event(rt, ROUTER_EV_OPERATOR, winner, "%s: vote: %s preferred over %s (prompt %016llx)",
                 user && *user ? user : "operator", winner, losers && *losers ? losers : "-",
                 (unsigned long long)prompt_hash);
}

/* ---- admission ---------------------------------------------------------------------------- */

static void refuse(struct router *rt, struct call *c, const char *why, int64_t retry_after_ms)
{
    c->throttled = true;
    c->retry_after_ms = retry_after_ms > 0 ? retry_after_ms : 1000;
    c->last_status = 0;
    call_end(rt, c, LLM_ERR_RATE_LIMIT, why);
}

/* A replay cannot pause (it is bounded by the cache's entry size): a pause goes on. */
static int replay_event(void *ctx, const struct llm_event *ev)
{
    struct call *c = ctx;
    int v = c->sink.on_event(c->sink.ctx, ev);
    return v == ROUTER_SINK_PAUSE ? 0 : v;
}

static void replay(struct router *rt, struct call *c, const struct cache_entry *e)
{
    c->cached = true;
    c->committed = true;
    c->first_output_us = rt_now_us(rt);
    c->usage = cache_entry_usage(e);
    c->finish = cache_entry_finish(e);
    c->cached_model = xstrdup(cache_entry_model(e));
    if (c->sink.on_commit) {
        struct router_commit cm = {.call_id = c->id,
                                   .target = "cache",
                                   .model = c->cached_model,
                                   .route = c->route_name,
                                   .attempt = 0,
                                   .cached = true};
        c->sink.on_commit(c->sink.ctx, &cm);
    }
    if (cache_replay(e, replay_event, c) != 0)
        call_end(rt, c, LLM_ERR_CANCELLED, "the client stopped reading");
    else
        call_end(rt, c, LLM_ERR_NONE, NULL);
}

static struct cache *route_cache(struct router *rt, const struct call *c)
{
    const struct route_state *rs = router_find_route(rt, c->route_name);
    return rs && !rs->removed ? rs->cache : NULL;
}

bool spend_admit(struct router *rt, struct call *c)
{
    char why[256];
    int64_t retry = -1;
    if (budgets_call_blocked(rt->budgets, rt_wall_ms(rt), c->route_name, c->tag, why, sizeof why,
                             &retry) ||
        fleet_glue_call_blocked(rt, c, why, sizeof why, &retry)) {
        rt->budget_refused++;
        refuse(rt, c, why, retry);
        return true;
    }
    if (c->direct)
        return false; /* the operator asked for this target: no guard, no cache */
    /* per byte of prompt: the gateway hashed it where it parsed the body */
    c->prompt_hash = c->given_hash ? c->given_hash : cache_prompt_hash(c->req);
    struct cache *cache = route_cache(rt, c);
    if (cache) {
        struct buf key;
        buf_init(&key);
        cache_key(c->route_name, c->tag, c->req, &key);
        c->cache_keylen = key.len;
        c->cache_key = buf_take(&key);
    }
    struct guard_decision d;
    guard_check(rt->guard, rt_now_ms(rt), c->tag, c->prompt_hash, &d);
    fleet_glue_guard(rt, c, &d); /* the same prompt counted across the fleet */
    if (d.new_event)
        spend_event(rt, ROUTER_EV_RATE_LIMIT, "guard", "", d.event_text);
    if (d.verdict == GUARD_CACHE && cache) {
        const struct cache_entry *e =
            cache_get(cache, c->cache_key, c->cache_keylen, rt_now_ms(rt));
        if (e) {
            rt->guard_cached++;
            replay(rt, c, e);
            return true;
        }
    }
    if (d.verdict != GUARD_ALLOW) {
        rt->guard_throttled++;
        refuse(rt, c, d.why, d.retry_after_ms);
        return true;
    }
    if (cache) {
        long r = config_find_route(c->cref->cfg, c->route_name);
        long max = r >= 0 ? c->cref->cfg->routes[r].cache.max_bytes : 0;
        c->rec = xmalloc(sizeof *c->rec);
        cache_recorder_init(c->rec, (size_t)max / 8);
    }
    return false;
}

/* ---- during and after the call ------------------------------------------------------------ */

void spend_fill_costs(const struct call *c, const struct target_state *t, struct router_result *r)
{
    r->baseline_cost_usd = -1;
    if (c->cached) { /* a stored answer replayed: costs nothing */
        r->target = "cache";
        r->model = c->cached_model ? c->cached_model : "";
    }
    if (!c->committed || (!t && !c->cached))
        return;
    r->usage_missing = !c->usage.present;
    if (t && !c->cached && t->cfg->has_price)
        r->cost_usd = llm_cost_usd(&t->cfg->price, &c->usage);
    const struct config *cfg = c->cref ? c->cref->cfg : NULL;
    long route = cfg && c->route_name[0] ? config_find_route(cfg, c->route_name) : -1;
    long base = route >= 0 ? cfg->routes[route].baseline : -1;
    if (base >= 0 && c->usage.present && cfg->targets[base].has_price)
        r->baseline_cost_usd = llm_cost_usd(&cfg->targets[base].price, &c->usage);
}

void spend_on_output(struct call *c, const struct llm_event *ev)
{
    if (ev->type == LLM_EV_TEXT || ev->type == LLM_EV_TOOL_ARGS)
        c->out_bytes += ev->len;
    if (c->rec)
        cache_recorder_feed(c->rec, ev);
}

void spend_attempt_cost(struct call *c, const struct attempt *a, const struct llm_usage *u)
{
    if (!u->present || !a->t->cfg->has_price || (c->committed && c->winner == a))
        return;
    double cost = llm_cost_usd(&a->t->cfg->price, u);
    if (a->is_hedge || c->committed) { /* the losing side of a hedge race */
        c->hedge_cost_usd += cost;
        c->hedge_cost_known = true;
    } else {
        c->retry_cost_usd += cost;
        c->retry_cost_known = true;
    }
}

void spend_call_finished(struct router *rt, struct call *c, struct router_result *r)
{
    (void)rt;
    struct call_fin *f = xcalloc(1, sizeof *f);
    f->err = r->err;
    f->upstream_status = r->upstream_status;
    f->no_target = r->no_target;
    f->unknown_model = r->unknown_model;
    f->attempts = r->attempts;
    f->hedges = r->hedges;
    f->usage = r->usage;
    f->usage_missing = r->usage_missing;
    f->cost_usd = r->cost_usd;
    f->baseline_cost_usd = r->baseline_cost_usd;
    f->est_cost_usd = -1;
    f->latency_us = r->latency_us;
    f->ttft_us = r->ttft_us;
    f->wall_ms = rt_wall_ms(rt);
    f->target = xstrdup(r->target);
    f->model = xstrdup(r->model);
    /* A call whose end was held for a slow client keeps its winner's target in last_target. */
    const struct target_state *t = !c->committed ? NULL
                                   : c->winner   ? c->winner->t
                                   : c->end_held ? c->last_target
                                                 : NULL;
    if (r->usage_missing && t && t->cfg->has_price) {
        struct llm_usage est = {.present = true,
                                .input_tokens = c->est_tokens,
                                .output_tokens = (long)((c->out_bytes + 3) / 4)};
        f->est_cost_usd = llm_cost_usd(&t->cfg->price, &est);
    }
    double answer = r->usage_missing ? f->est_cost_usd : r->cost_usd;
    r->spend_usd = (answer > 0 ? answer : 0) + (c->retry_cost_known ? c->retry_cost_usd : 0) +
                   (c->hedge_cost_known ? c->hedge_cost_usd : 0);
    c->fin = f;
}

/* What the client saw: the gateway's mapping (gw_error_from_call, and 404 for a model no
 * route serves), 499 for a client that left, 503 for a call the server ended because it was
 * stopping. */
static int client_status(const struct call *c, const struct call_fin *f)
{
    switch (f->err) {
    case LLM_ERR_NONE:
        return 200;
    case LLM_ERR_CANCELLED:
        return c->shutdown ? 503 : 499;
    case LLM_ERR_RATE_LIMIT:
        return 429;
    case LLM_ERR_INTERNAL:
        return 500;
    case LLM_ERR_DNS:
    case LLM_ERR_CONNECT:
    case LLM_ERR_TLS:
    case LLM_ERR_TIMEOUT:
    case LLM_ERR_OVERLOADED:
    case LLM_ERR_SERVER:
    case LLM_ERR_AUTH:
    case LLM_ERR_BAD_REQUEST:
    case LLM_ERR_CONTEXT_LENGTH:
    case LLM_ERR_BAD_RESPONSE:
    case LLM_ERR_TRUNCATED:
    case LLM_ERR_NO_KEY:
        break;
    }
    if (f->unknown_model)
        return 404;
    if (f->no_target || (f->attempts == 0 && llm_errclass_is_retryable(f->err) && !c->throttled))
        return 503;
    return llm_client_status(f->err, f->upstream_status); /* the provider's own status */
}

static void fill_row(const struct call *c, const struct call_fin *f, struct ledger_call *row)
{
    memset(row, 0, sizeof *row);
    int hedges = f->hedges;
    row->wall_ms = f->wall_ms;
    row->request_id = c->request_id;
    row->route = c->route_name;
    row->target = f->target;
    row->model = f->model;
    row->tag = c->tag;
    row->client = c->client;
    row->status = client_status(c, f);
    row->upstream_status = f->upstream_status;
    row->err = f->err;
    row->attempts = f->attempts;
    row->hedges = hedges;
    row->retries = f->attempts - 1 - hedges > 0 ? f->attempts - 1 - hedges : 0;
    row->hedged = c->winner_hedge;
    row->usage = f->usage;
    row->usage_missing = f->usage_missing;
    row->cost_usd = f->cost_usd;
    row->est_cost_usd = f->est_cost_usd;
    row->baseline_cost_usd = f->baseline_cost_usd;
    row->retry_cost_usd = c->retry_cost_known ? c->retry_cost_usd : row->retries > 0 ? -1 : 0;
    row->hedge_cost_usd = c->hedge_cost_known ? c->hedge_cost_usd : hedges > 0 ? -1 : 0;
    row->latency_us = f->latency_us;
    row->ttft_us = f->ttft_us;
    row->cached = c->cached;
    row->throttled = c->throttled;
    row->prompt_hash = c->prompt_hash;
    row->finish = c->finish;
}

/* The end user as the ledger keeps it: as sent, or hashed (ledger.hash_users) into hashed. */
static const char *row_user(const struct call *c, char hashed[LEDGER_USER_HASH_LEN + 1])
{
    const char *user = c->req && c->req->user && *c->req->user ? c->req->user : NULL;
    if (!user || !c->cref || !c->cref->cfg->ledger.hash_users)
        return user;
    ledger_user_hash(user, hashed);
    return hashed;
}

static void burn_add(struct router *rt, int64_t wall_ms, double usd)
{
    int64_t minute = wall_ms / 60000;
    size_t i = (size_t)(minute % 60);
    if (rt->burn_minute[i] != minute) {
        rt->burn_minute[i] = minute;
        rt->burn_usd[i] = 0;
    }
    rt->burn_usd[i] += usd;
}

static void charge(struct router *rt, const struct ledger_call *row)
{
    double answer;
    double total = ledger_call_spend(row, &answer);
    struct budget_charge ch = {
        .target = row->target,
        .route = row->route,
        .tag = row->tag,
        .answer_usd = answer,
        .total_usd = total,
        .has_savings = row->baseline_cost_usd >= 0 && !row->usage_missing,
        .savings_usd = row->baseline_cost_usd - row->cost_usd,
    };
    if (ch.has_savings)
        rt->savings_since_start += ch.savings_usd;
    if (total > 0)
        burn_add(rt, row->wall_ms, total);
    fleet_glue_charge(rt, row, total, answer);
    struct budget_alert alerts[BUDGET_ALERTS_MAX];
    size_t n = budgets_note_spend(rt->budgets, row->wall_ms, &ch, alerts, BUDGET_ALERTS_MAX);
    for (size_t i = 0; i < n; i++)
        spend_event(rt,
                    alerts[i].level == BUDGET_LEVEL_HARD ? ROUTER_EV_ERROR : ROUTER_EV_RATE_LIMIT,
                    "budget", alerts[i].target, alerts[i].text);
}

void spend_call_release(struct router *rt, struct call *c)
{
    const struct call_fin *f = c->fin;
    if (!f)
        return;
    struct ledger_call row;
    char hashed[LEDGER_USER_HASH_LEN + 1];
    fill_row(c, f, &row);
    row.user = row_user(c, hashed);
    ledger_post_call(rt->ledger, &row);
    charge(rt, &row);
    if (c->rec && f->err == LLM_ERR_NONE && !c->cached) {
        struct cache *cache = route_cache(rt, c);
        if (cache && cache_put(cache, c->cache_key, c->cache_keylen, c->rec, f->target, f->model,
                               rt_now_ms(rt)))
            fleet_glue_cache_share(rt, router_find_route(rt, c->route_name), c->cache_key,
                                   c->cache_keylen); /* the fleet's caches too */
    }
}

/* ---- filters and snapshots ---------------------------------------------------------------- */

bool spend_target_blocked(const struct target_state *t, char *why, size_t whylen)
{
    struct budgets *b = t->rt->budgets;
    return (b && budgets_target_blocked(b, rt_wall_ms(t->rt), t->cfg->name, why, whylen)) ||
           fleet_glue_target_blocked(t, why, whylen);
}

void spend_route_cache(struct route_state *r, struct route_state *old,
                       const struct config_route *cfg)
{
    struct cache *moved = old ? old->cache : NULL;
    if (old)
        old->cache = NULL;
    if (!cfg->cache.enabled) {
        cache_free(moved);
        return;
    }
    struct cache_params p = {cfg->cache.ttl_ms, (size_t)cfg->cache.max_entries,
                             (size_t)cfg->cache.max_bytes};
    if (moved)
        cache_set_params(moved, &p);
    r->cache = moved ? moved : cache_new(&p);
}

void spend_target_snapshot(struct router *rt, const struct target_state *t,
                           struct router_target_snap *s)
{
    int64_t wall = rt_wall_ms(rt);
    budgets_spend(rt->budgets, wall, BUDGET_TARGET, t->cfg->name, &s->spend_today_usd,
                  &s->spend_month_usd);
    s->over_budget = budgets_target_blocked(rt->budgets, wall, t->cfg->name, s->budget_reason,
                                            sizeof s->budget_reason);
}

/* Spend over the last hour per hour of time it covers: the real elapsed time while the router
 * is younger than an hour (at least 10 s), so the first hour does not read as total spend. */
static double burn_per_hour(const struct router *rt, int64_t wall, int64_t uptime_ms)
{
    double usd = 0;
    int64_t minute = wall / 60000;
    for (size_t i = 0; i < 60; i++) {
        if (rt->burn_minute[i] > minute - 60 && rt->burn_minute[i] <= minute)
            usd += rt->burn_usd[i];
    }
    int64_t span = uptime_ms < 3600000 ? uptime_ms : 3600000;
    if (span < 10000)
        span = 10000;
    return usd * 3600000.0 / (double)span;
}

void spend_snapshot(struct router *rt, struct router_snapshot *s, int64_t now_ms)
{
    int64_t wall = rt_wall_ms(rt);
    budgets_spend(rt->budgets, wall, BUDGET_GLOBAL, "", &s->spend_today_usd, &s->spend_month_usd);
    budgets_savings(rt->budgets, wall, &s->savings_today_usd, &s->savings_month_usd);
    s->savings_usd = rt->savings_since_start;
    s->burn_per_hour_usd = burn_per_hour(rt, wall, now_ms - rt->started_ms);
    s->n_budgets = budgets_status(rt->budgets, wall, s->budgets, ROUTER_MAX_BUDGETS);
    s->budget_refused = rt->budget_refused;
    s->guard_throttled = rt->guard_throttled;
    s->guard_cached = rt->guard_cached;
    struct guard_stats gs;
    guard_get_stats(rt->guard, &gs);
    s->guard_storms = gs.storms;
    s->guard_spikes = gs.spikes;
    s->cache_entries = s->cache_bytes = 0;
    for (size_t i = 0; i < rt->n_routes; i++) {
        if (!rt->routes[i]->cache)
            continue;
        struct cache_stats cs;
        cache_get_stats(rt->routes[i]->cache, &cs);
        s->cache_entries += cs.entries;
        s->cache_bytes += cs.bytes;
    }
    ledger_get_stats(rt->ledger, &s->ledger);
    fleet_glue_snapshot(rt, s);
}
