/*
 * target.c - per-target and per-route state on the router thread: availability filters,
 * config (re)loads that keep statistics and breakers by name, operator overrides (with
 * expiry and undo, each an audit event), and health probes.
 *
 * Router thread only (and the main thread before the router thread starts).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "switchboard/command.h"
#include "switchboard/log.h"

/* ---- refcounted pieces ---------------------------------------------------------------------- */

struct cfg_ref *cfg_ref_new(struct config *cfg)
{
    struct cfg_ref *c = xcalloc(1, sizeof *c);
    c->cfg = cfg;
    c->refs = 1;
    return c;
}

void cfg_ref_put(struct cfg_ref *c)
{
    if (c && --c->refs == 0) {
        config_free(c->cfg);
        free(c);
    }
}

void target_put(struct target_state *t)
{
    if (t && --t->refs == 0) {
        timerq_disarm(&t->rt->timers, &t->probe_timer);
        cfg_ref_put(t->cref);
        free(t);
    }
}

void route_put(struct route_state *r)
{
    if (r && --r->refs == 0) {
        cache_free(r->cache);
        target_put(r->pinned);
        free(r->name);
        free(r);
    }
}

struct target_state *router_find_target(struct router *rt, const char *name)
{
    for (size_t i = 0; i < rt->n_targets; i++) {
        if (str_eq(rt->targets[i]->cfg->name, name))
            return rt->targets[i];
    }
    return NULL;
}

struct route_state *router_find_route(struct router *rt, const char *name)
{
    for (size_t i = 0; i < rt->n_routes; i++) {
        if (str_eq(rt->routes[i]->name, name))
            return rt->routes[i];
    }
    return NULL;
}

double target_weight(const struct target_state *t)
{
    return t->ov.weight_set ? t->ov.weight : t->cfg->weight;
}

static void breaker_params_from(struct breaker_params *p, const struct config_router *r)
{
    breaker_params_default(p);
    p->failures = r->breaker_failures;
    p->error_rate = r->breaker_error_rate;
    p->window_ms = r->breaker_window_ms;
    p->min_volume = r->breaker_min_volume;
    p->cooldown_ms = r->breaker_cooldown_ms;
    p->cooldown_max_ms = r->breaker_cooldown_max_ms;
    p->slow_strikes = r->breaker_slow_strikes;
    if (p->cooldown_max_ms < p->cooldown_ms)
        p->cooldown_max_ms = p->cooldown_ms;
    p->half_open_trials = r->breaker_half_open_trials;
}

/* ---- availability -----------------------------------------------------------------------------
 */

bool target_blocked(const struct target_state *t, int64_t now_ms, long est_tokens, long min_context,
                    bool direct, char *why, size_t whylen)
{
    char tmp[160];
    const struct config_target *c = t->cfg;
    if (!why) {
        why = tmp;
        whylen = sizeof tmp;
    }
    why[0] = '\0';
    if (t->removed)
        snprintf(why, whylen, "removed by a config reload");
    else if (!c->enabled)
        snprintf(why, whylen, "no API key: %s", c->disabled_reason);
    else if (direct)
        return false; /* the operator asked for this target: no other filter applies */
    else if (t->ov.drained)
        snprintf(why, whylen, "drained by operator");
    else if (!t->ov.forced_live && !breaker_can_take(&t->breaker, now_ms))
        breaker_why_not(&t->breaker, now_ms, why, whylen); /* the breaker's word is final */
    else if (c->max_concurrency > 0 && t->stats.in_flight >= c->max_concurrency)
        snprintf(why, whylen, "max_concurrency %ld reached", c->max_concurrency);
    else if (c->context_window > 0 && est_tokens > c->context_window)
        snprintf(why, whylen, "prompt ~%ld tokens > context window %ld", est_tokens,
                 c->context_window);
    else if (min_context > 0 && c->context_window <= min_context)
        snprintf(why, whylen, "context window %ld not larger than %ld (context-length fallback)",
                 c->context_window, min_context);
    else if (target_weight(t) <= 0 && !direct)
        snprintf(why, whylen, "weight 0");
    else if (spend_target_blocked(t, why, whylen))
        ; /* over a target budget: why says which */
    else if (!limits_blocked_reason(&t->limits, now_ms, rt_wall_ms(t->rt), est_tokens, why, whylen))
        fleet_glue_rate_blocked(t, now_ms, est_tokens, why, whylen); /* fleet-wide rpm/tpm */
    return why[0] != '\0';
}

/* ---- events for breaker transitions -----------------------------------------------------------
 */

void target_note_transition(struct router *rt, struct target_state *t,
                            const struct breaker_transition *tr)
{
    if (tr->from == tr->to)
        return;
    char next[96] = "";
    if (tr->to == BREAKER_OPEN) { /* the countdown it starts, or extends after a failed trial */
        int64_t in = breaker_retry_in_ms(&t->breaker, rt_now_ms(rt));
        snprintf(next, sizeof next, "; %shalf-open in %llds",
                 tr->from == BREAKER_HALF_OPEN ? "countdown extended: " : "",
                 (long long)((in + 999) / 1000));
    }
    router_event(rt, ROUTER_EV_BREAKER, t->cfg->name, "breaker %s: %s -> %s: %s%s", t->cfg->name,
                 breaker_state_name(tr->from), breaker_state_name(tr->to), tr->reason, next);
    fleet_glue_breaker(rt, t, tr); /* published to the other instances */
}

/* ---- config loads ------------------------------------------------------------------------------
 */

static void schedule_probe(struct router *rt, struct target_state *t, int64_t at)
{
    if (t->cfg->probe.enabled && t->cfg->enabled && !t->removed)
        timerq_arm(&rt->timers, &t->probe_timer, at);
    else
        timerq_disarm(&rt->timers, &t->probe_timer);
}

static struct target_state *target_new(struct router *rt, struct cfg_ref *cref,
                                       const struct config_target *c, int64_t now)
{
    struct target_state *t = xcalloc(1, sizeof *t);
    t->refs = 1;
    t->rt = rt;
    t->cref = cref;
    cref->refs++;
    t->cfg = c;
    t->ops = provider_ops_for(c->kind);
    struct breaker_params bp;
    breaker_params_from(&bp, &cref->cfg->router);
    breaker_init(&t->breaker, &bp, now);
    limits_init(&t->limits, c->rpm, c->tpm);
    ewma_init(&t->ewma);
    stats_init(&t->stats);
    timer_init(&t->probe_timer, TARGET_TIMER_PROBE);
    return t;
}

/* Moves a surviving target onto the new config's entry. */
static void target_rebind(struct target_state *t, struct cfg_ref *cref,
                          const struct config_target *c)
{
    cref->refs++;
    cfg_ref_put(t->cref);
    t->cref = cref;
    t->cfg = c;
    t->ops = provider_ops_for(c->kind);
    struct breaker_params bp;
    breaker_params_from(&bp, &cref->cfg->router);
    breaker_set_params(&t->breaker, &bp);
    limits_set(&t->limits, c->rpm, c->tpm);
}

static void load_targets(struct router *rt, struct cfg_ref *cref, int64_t now)
{
    const struct config *cfg = cref->cfg;
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
    struct target_state **next = xcalloc(cfg->n_targets ? cfg->n_targets : 1, sizeof *next);
    for (size_t i = 0; i < cfg->n_targets; i++) {
        struct target_state *old = router_find_target(rt, cfg->targets[i].name);
        if (old) {
            target_rebind(old, cref, &cfg->targets[i]);
            old->refs++;
            next[i] = old;
        } else {
            next[i] = target_new(rt, cref, &cfg->targets[i], now);
        }
        /* Spread first probes over the interval so they don't all fire at once. */
        int64_t iv = next[i]->cfg->probe.interval_ms;
        if (!timer_is_armed(&next[i]->probe_timer) || !old)
            schedule_probe(rt, next[i], now + 200 + (int64_t)(rng_uniform(&rt->rng) * (double)iv));
        else
            schedule_probe(rt, next[i], next[i]->probe_timer.at);
    }
    for (size_t i = 0; i < rt->n_targets; i++) {
        struct target_state *t = rt->targets[i];
        bool kept = false;
        for (size_t j = 0; j < cfg->n_targets; j++)
            kept |= next[j] == t;
        if (!kept) {
            t->removed = true;
            timerq_disarm(&rt->timers, &t->probe_timer);
        }
        target_put(t);
    }
    free(rt->targets);
    rt->targets = next;
    rt->n_targets = cfg->n_targets;
}

static void load_routes(struct router *rt, const struct config *cfg)
{
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
    struct route_state **next = xcalloc(cfg->n_routes ? cfg->n_routes : 1, sizeof *next);
    for (size_t i = 0; i < cfg->n_routes; i++) {
        struct route_state *r = xcalloc(1, sizeof *r);
        r->refs = 1;
        r->name = xstrdup(cfg->routes[i].name);
        pick_state_init(&r->pick);
        struct route_state *old = router_find_route(rt, r->name);
        spend_route_cache(r, old, &cfg->routes[i]);
        if (old && old->pinned && !old->pinned->removed) {
            r->pinned = old->pinned; /* keep the operator's pin across reloads */
            r->pinned->refs++;
            r->pin_expires = old->pin_expires;
        }
        next[i] = r;
    }
    for (size_t i = 0; i < rt->n_routes; i++) {
        rt->routes[i]->removed = true;
        route_put(rt->routes[i]);
    }
    free(rt->routes);
    rt->routes = next;
    rt->n_routes = cfg->n_routes;
}

void router_load_config(struct router *rt, struct config *cfg)
{
    int64_t now = rt_now_ms(rt);
    struct cfg_ref *cref = cfg_ref_new(cfg);
    bool reload = rt->cur != NULL;
    load_targets(rt, cref, now);
    load_routes(rt, cfg);
    if (rt->cur)
        cfg_ref_put(rt->cur);
    rt->cur = cref;
    rt->config_gen++;
    if (reload)
        spend_reload(rt, cfg);
    if (reload)
        router_event(rt, ROUTER_EV_CONFIG, "", "config reloaded: %zu targets, %zu routes",
                     cfg->n_targets, cfg->n_routes);
}

void router_targets_free(struct router *rt)
{
    for (size_t i = 0; i < rt->n_routes; i++)
        route_put(rt->routes[i]);
    free(rt->routes);
    rt->routes = NULL;
    rt->n_routes = 0;
    for (size_t i = 0; i < rt->n_targets; i++) {
        timerq_disarm(&rt->timers, &rt->targets[i]->probe_timer);
        target_put(rt->targets[i]);
    }
    free(rt->targets);
    rt->targets = NULL;
    rt->n_targets = 0;
    for (size_t i = 0; i < rt->n_undo; i++) {
        for (size_t k = 0; k < rt->undo[i].n_pins; k++) {
            route_put(rt->undo[i].pins[k].r);
            target_put(rt->undo[i].pins[k].pinned);
        }
    }
    rt->n_undo = 0;
    cfg_ref_put(rt->cur);
    rt->cur = NULL;
}

/* ---- operator overrides -----------------------------------------------------------------------
 */

static const char *const cmd_names[] = {
    [ROUTER_CMD_SET_WEIGHT] = "weight", [ROUTER_CMD_FORCE_LIVE] = "force-live",
    [ROUTER_CMD_PIN] = "pin",           [ROUTER_CMD_DRAIN] = "drain",
    [ROUTER_CMD_RESET] = "reset",       [ROUTER_CMD_PROBE_NOW] = "probe",
    [ROUTER_CMD_UNDO] = "undo",         [ROUTER_CMD_CLEAR] = "clear",
};

/* The state an operator sees change: "weight 3", "weight 0 (override), drained, pinned on
 * chat". From explicit overrides and pins (the live ones, or an undo record's). */
static void describe_state(const struct target_state *t, const struct overrides *o,
                           const struct route_state *const *pinned_routes, size_t n_pinned,
                           struct buf *b)
{
    double w = o->weight_set ? o->weight : t->cfg->weight;
    buf_printf(b, "weight %g%s%s%s", w, o->weight_set ? " (override)" : "",
               o->forced_live ? ", forced live" : "", o->drained ? ", drained" : "");
    for (size_t i = 0; i < n_pinned; i++)
        buf_printf(b, ", pinned on %s", pinned_routes[i]->name);
}

/* As describe(), as if route `unpinned` (may be NULL) no longer pinned t. */
static void describe_without(const struct router *rt, const struct target_state *t,
                             const struct route_state *unpinned, struct buf *b)
{
    const struct route_state *pinned[ROUTER_MAX_ROUTES];
    size_t n = 0;
    for (size_t i = 0; i < rt->n_routes && n < ROUTER_MAX_ROUTES; i++) {
        if (rt->routes[i]->pinned == t && rt->routes[i] != unpinned)
            pinned[n++] = rt->routes[i];
    }
    describe_state(t, &t->ov, pinned, n, b);
}

static void describe(const struct router *rt, const struct target_state *t, struct buf *b)
{
    describe_without(rt, t, NULL, b);
}

static bool expired(int64_t at, int64_t now)
{
    return at > 0 && now >= at;
}

/* " for 10m (until 12:13:04Z)", or "" for a change without expiry. */
static void fmt_expiry(int64_t dur_ms, int64_t exp_wall, char *out, size_t outlen)
{
    out[0] = '\0';
    if (dur_ms <= 0 || exp_wall <= 0)
        return;
    char d[24], hms[16];
    command_format_duration(dur_ms, d, sizeof d);
    time_t secs = (time_t)(exp_wall / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(hms, sizeof hms, "%H:%M:%SZ", &tm);
    snprintf(out, outlen, " for %s (until %s)", d, hms);
}

/* One audit row: a timeline event and a ledger row with every field. */
static void audit(struct router *rt, const char *user, const char *target, const char *action,
                  const char *before, const char *after, int64_t exp_wall, const char *text)
{
    struct ledger_audit a = {.user = user,
                             .target = target,
                             .action = action,
                             .before = before,
                             .after = after,
                             .expires_wall_ms = exp_wall,
                             .text = text};
    router_audit(rt, &a);
}

static void undo_release(struct undo *u)
{
    for (size_t k = 0; k < u->n_pins; k++) {
        route_put(u->pins[k].r);
        /* set_pin took its own reference when it was restored; this drops the record's. */
        target_put(u->pins[k].pinned); // NOLINT(clang-analyzer-unix.Malloc)
    }
    u->n_pins = 0;
}

static void push_undo(struct router *rt, const struct target_state *t, const struct router_cmd *cmd,
                      const char *action, const char *user, int64_t now)
{
    if (rt->n_undo == ROUTER_UNDO_MAX) {
        undo_release(&rt->undo[0]);
        memmove(&rt->undo[0], &rt->undo[1], sizeof rt->undo[0] * (ROUTER_UNDO_MAX - 1));
        rt->n_undo--;
    }
    struct undo *u = &rt->undo[rt->n_undo++];
    u->id = ++rt->undo_seq;
    str_copy(u->target, sizeof u->target, t->cfg->name);
    str_copy(u->action, sizeof u->action, action);
    str_copy(u->user, sizeof u->user, user);
    u->at_wall = rt_wall_ms(rt);
    u->expires = cmd->expires_ms > 0 ? now + cmd->expires_ms : 0;
    u->exp_wall = cmd->expires_ms > 0 ? u->at_wall + cmd->expires_ms : 0;
    u->before = t->ov;
    u->n_pins = 0;
    for (size_t i = 0; i < rt->n_routes; i++) {
        struct route_state *r = rt->routes[i];
        r->refs++;
        if (r->pinned)
            r->pinned->refs++;
        u->pins[u->n_pins].r = r;
        u->pins[u->n_pins].pinned = r->pinned;
        u->pins[u->n_pins].expires = r->pin_expires;
        u->n_pins++;
    }
}

/* The record's overrides less those that lapsed since: undo never brings back an override
 * that already expired. */
static struct overrides undo_before(const struct undo *u, int64_t now)
{
    struct overrides o = u->before;
    if (o.weight_set && expired(o.weight_expires, now)) {
        o.weight_set = false;
        o.weight_expires = 0;
    }
    if (o.forced_live && expired(o.force_expires, now)) {
        o.forced_live = false;
        o.force_expires = 0;
    }
    if (o.drained && expired(o.drain_expires, now)) {
        o.drained = false;
        o.drain_expires = 0;
    }
    return o;
}

/* The pin a record gives back for its k-th route (NULL when it lapsed since). */
static struct target_state *undo_pin(const struct undo *u, size_t k, int64_t now)
{
    return expired(u->pins[k].expires, now) ? NULL : u->pins[k].pinned;
}

/* What undoing u restores on its target, as describe() words it. */
static void undo_describe(struct router *rt, const struct undo *u, int64_t now, struct buf *b)
{
    struct target_state *t = router_find_target(rt, u->target);
    if (!t) {
        buf_printf(b, "%s is gone", u->target);
        return;
    }
    struct overrides o = undo_before(u, now);
    const struct route_state *pinned[ROUTER_MAX_ROUTES];
    size_t n = 0;
    for (size_t k = 0; k < u->n_pins; k++) {
        if (!u->pins[k].r->removed && undo_pin(u, k, now) == t)
            pinned[n++] = u->pins[k].r;
    }
    describe_state(t, &o, pinned, n, b);
}

static void fmt_hms(int64_t wall_ms, char *out, size_t outlen)
{
    time_t secs = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(out, outlen, "%H:%M:%SZ", &tm);
}

void router_undo_preview(struct router *rt, int64_t now, struct router_undo_snap *out)
{
    memset(out, 0, sizeof *out);
    out->depth = rt->n_undo;
    if (rt->n_undo == 0)
        return;
    const struct undo *u = &rt->undo[rt->n_undo - 1];
    out->id = u->id;
    str_copy(out->target, sizeof out->target, u->target);
    str_copy(out->action, sizeof out->action, u->action);
    str_copy(out->user, sizeof out->user, u->user);
    out->at_wall_ms = u->at_wall;
    out->lapsed = expired(u->expires, now);
    out->lapsed_wall_ms = out->lapsed ? u->exp_wall : 0;
    struct buf b;
    buf_init(&b);
    undo_describe(rt, u, now, &b);
    str_copy(out->restores, sizeof out->restores, buf_str(&b));
    buf_cleanup(&b);
}

static void set_pin(struct route_state *r, struct target_state *t, int64_t expires)
{
    if (t)
        t->refs++;
    target_put(r->pinned);
    r->pinned = t;
    r->pin_expires = expires;
}

static bool route_has_target(const struct config *cfg, const struct route_state *r,
                             const struct target_state *t)
{
    long ri = config_find_route(cfg, r->name);
    if (ri < 0)
        return false;
    for (size_t k = 0; k < cfg->routes[ri].n_targets; k++) {
        if (str_eq(cfg->targets[cfg->routes[ri].targets[k]].name, t->cfg->name))
            return true;
    }
    return false;
}

/* Puts the newest record's state back (less what lapsed since) and pops it. */
static void undo_restore(struct router *rt, int64_t now)
{
    struct undo *u = &rt->undo[--rt->n_undo];
    struct target_state *t = router_find_target(rt, u->target);
    if (t)
        t->ov = undo_before(u, now);
    for (size_t k = 0; k < u->n_pins; k++) {
        if (!u->pins[k].r->removed) {
            struct target_state *p = undo_pin(u, k, now);
            set_pin(u->pins[k].r, p, p ? u->pins[k].expires : 0);
        }
    }
    undo_release(u);
}

/* Rolls back a command that failed half-way (no audit: nothing changed). */
static void undo_rollback(struct router *rt, int64_t now)
{
    undo_restore(rt, now);
    rt->undo_seq--;
}

/* undo: the newest change, when it is the one previewed (cmd->undo_id) and has not lapsed. */
static enum sb_status apply_undo(struct router *rt, const struct router_cmd *cmd, const char *user,
                                 int64_t now, char *msg, size_t msglen)
{
    if (cmd->undo_id && (rt->n_undo == 0 || cmd->undo_id != rt->undo[rt->n_undo - 1].id)) {
        snprintf(msg, msglen,
                 "that change was already undone (or replaced): nothing done; press u again "
                 "to see what undo would take back now");
        return SB_ERR_STATE;
    }
    if (rt->n_undo == 0) {
        snprintf(msg, msglen, "nothing to undo");
        return SB_ERR_STATE;
    }
    struct undo *u = &rt->undo[rt->n_undo - 1];
    if (expired(u->expires, now)) {
        char hms[16];
        fmt_hms(u->exp_wall, hms, sizeof hms);
        snprintf(msg, msglen, "the %s on %s already expired at %s: nothing to undo, nothing done",
                 u->action, u->target, hms);
        rt->n_undo--;
        undo_release(u);
        return SB_ERR_STATE;
    }
    char target[64], action[16], by[64];
    str_copy(target, sizeof target, u->target);
    str_copy(action, sizeof action, u->action);
    str_copy(by, sizeof by, u->user);
    struct target_state *t = router_find_target(rt, target);
    struct buf before, after;
    buf_init(&before);
    buf_init(&after);
    if (t)
        describe(rt, t, &before);
    undo_restore(rt, now);
    if (t)
        describe(rt, t, &after);
    char act[32];
    snprintf(act, sizeof act, "undo %.20s", action);
    struct buf text;
    buf_init(&text);
    buf_printf(&text, "%s: undo %s's %s %s: %s -> %s", user, by, action, target, buf_str(&before),
               buf_str(&after));
    audit(rt, user, target, act, buf_str(&before), buf_str(&after), 0, buf_str(&text));
    buf_cleanup(&text);
    fleet_glue_command(rt, cmd, target, buf_str(&before), buf_str(&after));
    snprintf(msg, msglen, "undid %s's %s on %s: %s", by, action, target, buf_str(&after));
    buf_cleanup(&before);
    buf_cleanup(&after);
    return SB_OK;
}

static enum sb_status apply(struct router *rt, const struct router_cmd *cmd, struct target_state *t,
                            int64_t now, char *msg, size_t msglen)
{
    int64_t exp = cmd->expires_ms > 0 ? now + cmd->expires_ms : 0;
    struct overrides *o = &t->ov;
    struct breaker_transition tr;
    switch (cmd->type) {
    case ROUTER_CMD_SET_WEIGHT:
        if (!isfinite(cmd->weight) || cmd->weight < 0 || cmd->weight > 1e6) {
            snprintf(msg, msglen, "weight must be a number from 0 to 1000000");
            return SB_ERR_INVALID;
        }
        o->weight_set = true;
        o->weight = cmd->weight;
        o->weight_expires = exp;
        return SB_OK;
    case ROUTER_CMD_FORCE_LIVE:
        o->forced_live = true;
        o->force_expires = exp;
        return SB_OK;
    case ROUTER_CMD_DRAIN:
        o->drained = true;
        o->drain_expires = exp;
        return SB_OK;
    case ROUTER_CMD_PIN: {
        int n = 0;
        for (size_t i = 0; i < rt->n_routes; i++) {
            if (route_has_target(rt->cur->cfg, rt->routes[i], t)) {
                set_pin(rt->routes[i], t, exp);
                n++;
            }
        }
        if (n == 0) {
            snprintf(msg, msglen, "%s is in no route: nothing to pin", t->cfg->name);
            return SB_ERR_INVALID;
        }
        return SB_OK;
    }
    case ROUTER_CMD_CLEAR:
    case ROUTER_CMD_RESET:
        o->forced_live = o->drained = false;
        o->force_expires = o->drain_expires = 0;
        for (size_t i = 0; i < rt->n_routes; i++) {
            if (rt->routes[i]->pinned == t)
                set_pin(rt->routes[i], NULL, 0);
        }
        if (cmd->type == ROUTER_CMD_RESET) {
            o->weight_set = false;
            o->weight_expires = 0;
            breaker_reset(&t->breaker, now, &tr);
            target_note_transition(rt, t, &tr);
            limits_clear_cooldown(&t->limits);
        }
        return SB_OK;
    case ROUTER_CMD_PROBE_NOW:
        if (!t->cfg->enabled) {
            snprintf(msg, msglen, "%s has no API key: %s", t->cfg->name, t->cfg->disabled_reason);
            return SB_ERR_STATE;
        }
        timerq_arm(&rt->timers, &t->probe_timer, now);
        return SB_OK;
    case ROUTER_CMD_UNDO:
        return SB_ERR_INVALID; /* handled by the caller */
    }
    return SB_ERR_INVALID;
}

/* An applied command's audit row: "user: action target for 10m (until ...): before -> after". */
static void audit_command(struct router *rt, const struct router_cmd *cmd, const char *user,
                          const char *name, const struct target_state *t, const char *before,
                          const char *after)
{
    int64_t exp_wall = cmd->expires_ms > 0 ? rt_wall_ms(rt) + cmd->expires_ms : 0;
    char exp[64];
    fmt_expiry(cmd->expires_ms, exp_wall, exp, sizeof exp);
    struct buf text;
    buf_init(&text);
    buf_printf(&text, "%s: %s %s%s: %s -> %s", user, name, t->cfg->name, exp, before, after);
    audit(rt, user, t->cfg->name, name, before, after, exp_wall, buf_str(&text));
    buf_cleanup(&text);
}

enum sb_status router_apply_command(struct router *rt, const struct router_cmd *cmd, char *msg,
                                    size_t msglen)
{
    int64_t now = rt_now_ms(rt);
    const char *name = cmd->type <= ROUTER_CMD_CLEAR ? cmd_names[cmd->type] : "?";
    const char *user = cmd->user[0] ? cmd->user : "operator";
    msg[0] = '\0';
    if (cmd->type == ROUTER_CMD_UNDO)
        return apply_undo(rt, cmd, user, now, msg, msglen);
    struct target_state *t = router_find_target(rt, cmd->target);
    if (!t) {
        snprintf(msg, msglen, "no target named '%s'", cmd->target);
        return SB_ERR_NOT_FOUND;
    }
    struct buf before, after;
    buf_init(&before);
    buf_init(&after);
    describe(rt, t, &before);
    bool undoable = cmd->type != ROUTER_CMD_PROBE_NOW;
    if (undoable)
        push_undo(rt, t, cmd, name, user, now);
    enum sb_status st = apply(rt, cmd, t, now, msg, msglen);
    if (st != SB_OK && undoable)
        undo_rollback(rt, now); /* roll the snapshot back off the stack */
    if (st == SB_OK && cmd->type == ROUTER_CMD_PROBE_NOW) {
        /* Not an override: nothing changes before its result (which the probe reports); the
         * audit row has the same state before and after. */
        char text[160];
        snprintf(text, sizeof text, "%.60s: probe %.64s now", user, t->cfg->name);
        audit(rt, user, t->cfg->name, name, buf_str(&before), buf_str(&before), 0, text);
        snprintf(msg, msglen, "probe %s: started", t->cfg->name);
    } else if (st == SB_OK) {
        describe(rt, t, &after);
        audit_command(rt, cmd, user, name, t, buf_str(&before), buf_str(&after));
        snprintf(msg, msglen, "%s %s: %s", name, t->cfg->name, buf_str(&after));
        fleet_glue_command(rt, cmd, t->cfg->name, buf_str(&before), buf_str(&after));
    }
    buf_cleanup(&before);
    buf_cleanup(&after);
    return st;
}

/* A lapse: an audit row by "expiry", with the state before and after. */
static void audit_lapse(struct router *rt, const struct target_state *t, const char *action,
                        const char *before, const struct route_state *unpinned, const char *what)
{
    struct buf after;
    buf_init(&after);
    describe_without(rt, t, unpinned, &after);
    char act[32];
    snprintf(act, sizeof act, "%.20s expired", action);
    struct buf text;
    buf_init(&text);
    buf_printf(&text, "expiry: %s: %s -> %s", what, before, buf_str(&after));
    audit(rt, "expiry", t->cfg->name, act, before, buf_str(&after), 0, buf_str(&text));
    buf_cleanup(&text);
    buf_cleanup(&after);
}

static void expire_target(struct router *rt, struct target_state *t, int64_t now)
{
    struct overrides *o = &t->ov;
    const char *name = t->cfg->name;
    char what[128];
    struct buf before;
    buf_init(&before);
    describe(rt, t, &before);
    if (o->weight_set && expired(o->weight_expires, now)) {
        o->weight_set = false;
        o->weight_expires = 0;
        snprintf(what, sizeof what, "weight override on %s expired: back to %g", name,
                 t->cfg->weight);
        audit_lapse(rt, t, "weight", buf_str(&before), NULL, what);
    }
    buf_reset(&before);
    describe(rt, t, &before);
    if (o->forced_live && expired(o->force_expires, now)) {
        o->forced_live = false;
        o->force_expires = 0;
        snprintf(what, sizeof what, "force-live on %s expired", name);
        audit_lapse(rt, t, "force-live", buf_str(&before), NULL, what);
    }
    buf_reset(&before);
    describe(rt, t, &before);
    if (o->drained && expired(o->drain_expires, now)) {
        o->drained = false;
        o->drain_expires = 0;
        snprintf(what, sizeof what, "drain on %s expired", name);
        audit_lapse(rt, t, "drain", buf_str(&before), NULL, what);
    }
    buf_cleanup(&before);
}

void router_expire_overrides(struct router *rt, int64_t now)
{
    fleet_glue_tick(rt, now); /* other instances' cooldowns and commands */
    for (size_t i = 0; i < rt->n_targets; i++)
        expire_target(rt, rt->targets[i], now);
    for (size_t i = 0; i < rt->n_routes; i++) {
        struct route_state *r = rt->routes[i];
        if (r->pinned && expired(r->pin_expires, now)) {
            /* audited first (the state after: without this pin), then unpinned: set_pin
             * may drop the last reference to a target a reload removed */
            const struct target_state *t = r->pinned;
            struct buf before;
            buf_init(&before);
            describe(rt, t, &before);
            char what[160];
            snprintf(what, sizeof what, "pin of %s on %s expired", t->cfg->name, r->name);
            audit_lapse(rt, t, "pin", buf_str(&before), r, what);
            buf_cleanup(&before);
            set_pin(r, NULL, 0);
        }
    }
}

/* ---- probes --------------------------------------------------------------------------------- */

static void probe_status(void *ctx, long status)
{
    struct target_state *t = ctx;
    t->probe_status = status;
    if (t->probe_pc)
        provider_call_on_status(t->probe_pc, status);
}

static void probe_header(void *ctx, const char *name, const char *value)
{
    struct target_state *t = ctx;
    llm_ratelimit_feed_header(&t->probe_rl, name, value, rt_wall_ms(t->rt));
    if (t->probe_pc)
        provider_call_on_header(t->probe_pc, name, value, rt_wall_ms(t->rt));
}

static int probe_data(void *ctx, const char *bytes, size_t len)
{
    struct target_state *t = ctx;
    t->probe_body += len;
    if (t->probe_body > ROUTER_PROBE_MAX_BODY)
        return 1; /* a model list or a 1-token answer is small: stop reading */
    return t->probe_pc ? provider_call_on_data(t->probe_pc, bytes, len) : 0;
}

static int probe_ignore_event(void *ctx, const struct llm_event *ev)
{
    (void)ctx;
    (void)ev;
    return 0;
}

/* A chat probe's answer: its usage is probe spend at the target's price. */
static void probe_chat_finish(struct target_state *t, const struct transport_result *res)
{
    if (!t->probe_pc)
        return;
    provider_call_finish(t->probe_pc, res->err, res->message);
    const struct llm_usage *u = provider_call_usage(t->probe_pc);
    if (u->present && t->cfg->has_price)
        t->probe_spend_usd += llm_cost_usd(&t->cfg->price, u);
    provider_call_free(t->probe_pc);
    t->probe_pc = NULL;
}

/* The probe's error as "class: message", without repeating a class the message already
 * starts with ("connect: connect: Failed to connect..." read twice). */
static void probe_error_text(struct target_state *t, const struct transport_result *res)
{
    const char *cls = llm_errclass_name(res->err);
    size_t n = strlen(cls);
    bool named = strncmp(res->message, cls, n) == 0 && res->message[n] == ':';
    snprintf(t->probe_error, sizeof t->probe_error, "%s%s%.100s", named ? "" : cls,
             named ? "" : ": ", res->message);
}

static void probe_record(struct target_state *t, const struct transport_result *res, bool ok,
                         int64_t now)
{
    t->probing = false;
    t->probes++;
    t->probe_ever = true;
    t->probe_ok = ok;
    t->probe_at_ms = now;
    t->probe_latency_us = res->total_us;
    t->probe_last_status = res->status;
    if (ok)
        t->probe_error[0] = '\0';
    else if (res->err != LLM_ERR_NONE)
        probe_error_text(t, res);
    else
        snprintf(t->probe_error, sizeof t->probe_error, "HTTP %ld", res->status);
    if (!ok)
        t->probe_failures++;
}

/* A probe answered 429: not ill health. The target rests until its Retry-After. */
static void probe_rate_limited(struct router *rt, struct target_state *t, int64_t now)
{
    limits_note_ratelimit(&t->limits, now, &t->probe_rl);
    if (!limits_is_cooling(&t->limits, now))
        limits_cooldown_until(&t->limits, now + t->cref->cfg->router.rate_limit_cooldown_ms,
                              "429 on probe");
    router_event(rt, ROUTER_EV_RATE_LIMIT, t->cfg->name, "probe of %s answered 429: resting",
                 t->cfg->name);
}

static void probe_done(void *ctx, const struct transport_result *res)
{
    struct target_state *t = ctx;
    struct router *rt = t->rt;
    int64_t now = rt_now_ms(rt);
    bool limited = res->err == LLM_ERR_NONE && res->status == 429;
    bool ok = (res->err == LLM_ERR_NONE ||
               (res->err == LLM_ERR_BAD_RESPONSE && t->probe_body > ROUTER_PROBE_MAX_BODY)) &&
              res->status >= 200 && res->status < 300;
    bool was_ok = t->probe_ok, ever = t->probe_ever;
    probe_chat_finish(t, res);
    probe_record(t, res, ok || limited, now);
    if (res->err != LLM_ERR_CANCELLED && !t->removed) {
        if (limited) {
            probe_rate_limited(rt, t, now);
        } else {
            struct breaker_transition tr;
            breaker_note_probe(&t->breaker, now, ok, t->cfg->probe.kind == PROBE_CHAT, &tr);
            target_note_transition(rt, t, &tr);
        }
        if (!ok && !limited && (was_ok || !ever))
            router_event(rt, ROUTER_EV_PROBE, t->cfg->name, "probe of %s failed: %s", t->cfg->name,
                         t->probe_error);
        else if (ok && ever && !was_ok)
            router_event(rt, ROUTER_EV_PROBE, t->cfg->name, "probe of %s recovered", t->cfg->name);
        schedule_probe(rt, t, now + t->cfg->probe.interval_ms);
    }
    target_put(t);
}

/* The probe's request: the model list, or a 1-token completion (chat probes). */
static enum sb_status probe_encode(const struct target_state *t, struct http_request *http,
                                   char *msg, size_t msglen)
{
    if (t->cfg->probe.kind == PROBE_LIST)
        return t->ops->encode_probe(t->cfg, http, msg, msglen);
    struct llm_request req;
    llm_request_init(&req);
    req.model = xstrdup(t->cfg->model);
    req.max_tokens = 1;
    llm_request_add_message(&req, LLM_ROLE_USER, "ping");
    enum sb_status st = t->ops->encode(t->cfg, &req, http, msg, msglen);
    llm_request_cleanup(&req);
    return st;
}

void target_probe_fire(struct router *rt, struct target_state *t)
{
    if (t->probing || t->removed || !t->cfg->enabled || !t->cfg->probe.enabled)
        return;
    int64_t now = rt_now_ms(rt);
    if (limits_is_cooling(&t->limits, now)) { /* it asked us to rest: no probe either */
        schedule_probe(rt, t, now + t->cfg->probe.interval_ms);
        return;
    }
    char msg[PROVIDER_MSG_MAX] = "";
    struct http_request http;
    http_request_init(&http);
    if (probe_encode(t, &http, msg, sizeof msg) != SB_OK) {
        snprintf(t->probe_error, sizeof t->probe_error, "cannot build probe: %.100s", msg);
        http_request_cleanup(&http);
        schedule_probe(rt, t, now + t->cfg->probe.interval_ms);
        return;
    }
    struct transport_timeouts to = {t->cfg->connect_timeout_ms, t->cfg->probe.timeout_ms,
                                    t->cfg->probe.timeout_ms};
    static const struct transport_callbacks cb = {probe_status, probe_header, probe_data,
                                                  probe_done};
    t->probe_status = 0;
    t->probe_body = 0;
    llm_ratelimit_init(&t->probe_rl);
    t->refs++;
    t->probing = true;
    t->probe_started_us = rt_now_us(rt);
    if (t->cfg->probe.kind == PROBE_CHAT) {
        struct llm_sink sink = {probe_ignore_event, t};
        t->probe_pc = provider_call_new(t->ops, false, &sink, t->cfg->api_key);
    }
    if (!rt->tops->start(rt->tr, &http, &to, &cb, t, msg, sizeof msg)) {
        provider_call_free(t->probe_pc);
        t->probe_pc = NULL;
        t->probing = false;
        schedule_probe(rt, t, now + t->cfg->probe.interval_ms);
        target_put(t);
    }
    http_request_cleanup(&http);
}
