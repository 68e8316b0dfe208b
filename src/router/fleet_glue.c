/*
 * fleet_glue.c - the router's side of fleet mode (fleet.h): what a finished call spent goes
 * to fleet-wide counters, budgets are checked against the fleet's totals, a Retry-After
 * cooldown and an operator command are published to the other instances, and their notices
 * are applied here at each tick (within ROUTER_TICK_MS of arriving).
 *
 * The runaway guard's identical-prompt storms count fleet-wide too: a prompt this instance
 * has seen twice in the current window (fixed windows of guard.identical_window_ms; the count
 * slides over the previous one, weighted by what is left of it) is counted in Redis from then on,
 * so unique prompts never cost a Redis key, and a storm spread by a load balancer over N instances
 * is still one storm. Its rate spikes are judged on the fleet's arrivals of each tag: one Redis
 * counter per tag and wall-clock second (P gspk:<tag hash>:<second>, 30 s TTL), read by the
 * guard through guard_set_fleet's ops.
 *
 * Threads: router thread only, except fleet_glue_open / fleet_glue_close (router_new and
 * after the thread was joined, through spend_open / spend_close). The fleet calls used here
 * never wait on Redis. Everything is a no-op when rt->fleet is NULL (fleet mode off).
 *
 * Wire format of a command notice (and of a stored override, hash field "<kind>:<target>"):
 *   {"type":"pin","target":"a","weight":0,"expires_at":<wall ms, 0 = none>,"user":"..."}
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "switchboard/log.h"

#define DAY_TTL_S   (INT64_C(3) * 86400)
#define MONTH_TTL_S (INT64_C(40) * 86400)

/* ---- the runaway guard's rate spikes, fleet-wide (guard.h's fleet ops) ----------------------- */

#define SPIKE_TTL_S 30 /* a tag's per-second arrival counters, in Redis */

static void spike_key(uint64_t tag_hash, int64_t wall_sec, char *out, size_t outlen)
{
    snprintf(out, outlen, "gspk:%016llx:%lld", (unsigned long long)tag_hash, (long long)wall_sec);
}

static void spike_note(void *ctx, uint64_t tag_hash)
{
    struct router *rt = ctx;
    char key[FLEET_KEY_MAX];
    spike_key(tag_hash, rt_wall_ms(rt) / 1000, key, sizeof key);
    fleet_counter_add(rt->fleet, key, 1, SPIKE_TTL_S);
}

static uint64_t spike_count(void *ctx, uint64_t tag_hash, int64_t ago)
{
    struct router *rt = ctx;
    char key[FLEET_KEY_MAX];
    spike_key(tag_hash, rt_wall_ms(rt) / 1000 - ago, key, sizeof key);
    int64_t v = fleet_counter_get(rt->fleet, key, NULL, NULL);
    return v > 0 ? (uint64_t)v : 0;
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

static void default_name(const struct config *cfg, char *out, size_t outlen)
{
    char host[128] = "localhost";
    gethostname(host, sizeof host - 1);
    const char *listen = cfg->gateway.listen ? cfg->gateway.listen : "";
    const char *colon = strrchr(listen, ':');
    const char *port = colon ? colon + 1 : "0";
    if (str_eq(port, "0")) /* an ephemeral port: the pid keeps two on one host apart */
        snprintf(out, outlen, "%.48s:pid%ld", host, (long)getpid());
    else
        snprintf(out, outlen, "%.48s:%.12s", host, port);
}

/* What a fleet was started with, to tell a reload that changes it (the password hashed). */
static char *fleet_signature(const struct config_fleet *f)
{
    const char *pw = f->password ? f->password : "";
    return xasprintf("%s|%s|%s|%d|%016llx", f->redis ? f->redis : "", f->name ? f->name : "",
                     f->key_prefix ? f->key_prefix : "", (int)f->on_outage,
                     (unsigned long long)hash_fnv1a(pw, strlen(pw)));
}

bool fleet_glue_open(struct router *rt, const struct config *cfg, char *msg, size_t msglen)
{
    rt->fleet_sig = fleet_signature(&cfg->fleet);
    if (!cfg->fleet.redis)
        return true;
    char name[FLEET_NAME_MAX];
    default_name(cfg, name, sizeof name);
    rt->fleet = fleet_new(&cfg->fleet, name, msg, msglen);
    if (!rt->fleet || fleet_start(rt->fleet, msg, msglen) != SB_OK) {
        fleet_free(rt->fleet);
        rt->fleet = NULL;
        return false;
    }
    rt->fleet_instances = 1;
    guard_set_fleet(rt->guard,
                    &(struct guard_fleet_ops){.note = spike_note, .count = spike_count, .ctx = rt});
    for (size_t i = 0; i < cfg->n_targets; i++) { /* a spare slot before the first call */
        const struct config_target *c = &cfg->targets[i];
        char key[FLEET_KEY_MAX];
        snprintf(key, sizeof key, "%.100s:c", c->name);
        if (c->fleet_limits && c->max_concurrency > 0)
            fleet_slot_free(rt->fleet, key, c->max_concurrency, NULL);
    }
    rt->fleet_seen = xcalloc(FLEET_GUARD_SLOTS, sizeof *rt->fleet_seen);
    rt->fleet_share_breakers = cfg->fleet.share_breakers;
    log_info("fleet: instance %s, redis %s", fleet_name(rt->fleet), cfg->fleet.redis);
    return true;
}

void fleet_glue_reload(struct router *rt, const struct config *cfg)
{
    rt->fleet_share_breakers = cfg->fleet.share_breakers;
    char *sig = fleet_signature(&cfg->fleet);
    if (!str_eq(sig, rt->fleet_sig))
        router_event(rt, ROUTER_EV_CONFIG, "",
                     "fleet settings changed: the old ones stay in force until a restart");
    free(sig);
}

void fleet_glue_close(struct router *rt)
{
    fleet_free(rt->fleet);
    rt->fleet = NULL;
    free(rt->fleet_seen);
    rt->fleet_seen = NULL;
    free(rt->fleet_sig);
    rt->fleet_sig = NULL;
}

/* ---- spend and budgets ----------------------------------------------------------------------- */

static void counter_key(enum budget_scope scope, const char *name, bool month, int64_t wall_ms,
                        char *out, size_t outlen)
{
    char date[11];
    ledger_format_date(wall_ms, date);
    snprintf(out, outlen, "spend:%s:%.100s:%c:%.*s", budget_scope_name(scope), name ? name : "",
             month ? 'm' : 'd', month ? 7 : 10, date);
}

static void add_spend(struct fleet *f, enum budget_scope scope, const char *name, int64_t wall,
                      double usd)
{
    int64_t micro = llround(usd * 1e6);
    if (micro <= 0)
        return;
    char key[FLEET_KEY_MAX];
    counter_key(scope, name, false, wall, key, sizeof key);
    fleet_counter_add(f, key, micro, DAY_TTL_S);
    counter_key(scope, name, true, wall, key, sizeof key);
    fleet_counter_add(f, key, micro, MONTH_TTL_S);
}

void fleet_glue_charge(struct router *rt, const struct ledger_call *row, double total_usd,
                       double answer_usd)
{
    if (!rt->fleet)
        return;
    add_spend(rt->fleet, BUDGET_GLOBAL, "", row->wall_ms, total_usd);
    const struct config *cfg = rt->cur->cfg;
    for (size_t i = 0; i < cfg->n_budgets; i++) {
        const struct config_budget *b = &cfg->budgets[i];
        switch (b->scope) {
        case BUDGET_GLOBAL:
            break;
        case BUDGET_TARGET:
            if (str_eq(b->name, row->target))
                add_spend(rt->fleet, b->scope, b->name, row->wall_ms, answer_usd);
            break;
        case BUDGET_ROUTE:
            if (row->route && row->route[0] && str_eq(b->name, row->route))
                add_spend(rt->fleet, b->scope, b->name, row->wall_ms, total_usd);
            break;
        case BUDGET_TAG:
            if (row->tag && str_eq(b->name, row->tag))
                add_spend(rt->fleet, b->scope, b->name, row->wall_ms, total_usd);
            break;
        }
    }
}

/* The fleet's spend on one budget's window in micro-dollars, as this instance estimates it;
 * -1 when unknown and on_outage is closed. */
static int64_t fleet_spent(struct router *rt, const struct config_budget *b, bool month,
                           int64_t wall)
{
    char key[FLEET_KEY_MAX];
    counter_key(b->scope, b->scope == BUDGET_GLOBAL ? "" : b->name, month, wall, key, sizeof key);
    int64_t mine = 0;
    bool stale = false;
    int64_t v = fleet_counter_get(rt->fleet, key, &mine, &stale);
    if (!stale)
        return v;
    switch (fleet_outage_mode(rt->fleet)) {
    case FLEET_OUTAGE_SHARE: /* everyone is assumed to spend as we do since the outage */
        return v - mine + mine * (rt->fleet_instances > 1 ? rt->fleet_instances : 1);
    case FLEET_OUTAGE_OPEN:
        return 0; /* local budgets alone decide */
    case FLEET_OUTAGE_CLOSED:
        return -1;
    }
    return v;
}

static bool over_cap(struct router *rt, const struct config_budget *b, int64_t wall, char *why,
                     size_t whylen, int64_t *retry_after_ms)
{
    for (int m = 0; m < 2; m++) {
        double cap = m ? b->monthly_usd : b->daily_usd;
        if (cap <= 0)
            continue;
        int64_t spent = fleet_spent(rt, b, m, wall);
        char label[BUDGETS_NAME_MAX + 16];
        snprintf(label, sizeof label, "%s%s%.100s", budget_scope_name(b->scope),
                 b->scope == BUDGET_GLOBAL ? "" : ":", b->scope == BUDGET_GLOBAL ? "" : b->name);
        int64_t resets = m ? ledger_next_month_start(wall) : ledger_day_start(wall) + 86400000;
        if (spent < 0) {
            snprintf(why, whylen,
                     "fleet budget '%s' unknown: redis unreachable (fleet.on_outage closed)",
                     label);
            *retry_after_ms = 5000;
            return true;
        }
        if ((double)spent >= cap * 1e6) {
            snprintf(why, whylen,
                     "over budget: fleet budget '%s' %s cap $%.2f reached ($%.4f spent across "
                     "the fleet %s); resets at 00:00 UTC",
                     label, m ? "monthly" : "daily", cap, (double)spent / 1e6,
                     m ? "this month" : "today");
            *retry_after_ms = resets - wall;
            return true;
        }
    }
    return false;
}

bool fleet_glue_call_blocked(struct router *rt, const struct call *c, char *why, size_t whylen,
                             int64_t *retry_after_ms)
{
    if (!rt->fleet)
        return false;
    const struct config *cfg = c->cref->cfg;
    int64_t wall = rt_wall_ms(rt);
    for (size_t i = 0; i < cfg->n_budgets; i++) {
        const struct config_budget *b = &cfg->budgets[i];
        bool applies =
            b->scope == BUDGET_GLOBAL ||
            (b->scope == BUDGET_ROUTE && c->route_name[0] && str_eq(b->name, c->route_name)) ||
            (b->scope == BUDGET_TAG && c->tag && str_eq(b->name, c->tag));
        if (applies && over_cap(rt, b, wall, why, whylen, retry_after_ms))
            return true;
    }
    return false;
}

bool fleet_glue_target_blocked(const struct target_state *t, char *why, size_t whylen)
{
    struct router *rt = t->rt;
    if (!rt->fleet)
        return false;
    const struct config *cfg = rt->cur->cfg;
    int64_t wall = rt_wall_ms(rt), retry;
    char tmp[256];
    for (size_t i = 0; i < cfg->n_budgets; i++) {
        const struct config_budget *b = &cfg->budgets[i];
        if (b->scope == BUDGET_TARGET && str_eq(b->name, t->cfg->name) &&
            over_cap(rt, b, wall, tmp, sizeof tmp, &retry)) {
            if (why)
                str_copy(why, whylen, tmp);
            return true;
        }
    }
    return false;
}

/* ---- fleet-wide rate limits ------------------------------------------------------------------ */

static void rate_key(const struct target_state *t, char kind, char *out, size_t outlen)
{
    snprintf(out, outlen, "%.100s:%c", t->cfg->name, kind);
}

/* While Redis is down: this instance's share of the fleet's rate, over its own window. */
static bool share_blocked(const struct target_state *t, int64_t now_ms, long est_tokens, char *why,
                          size_t whylen)
{
    long n = t->rt->fleet_instances > 1 ? t->rt->fleet_instances : 1;
    const struct config_target *c = t->cfg;
    if (c->rpm > 0 && limits_window_requests(&t->limits, now_ms) >= (c->rpm + n - 1) / n) {
        if (why)
            snprintf(why, whylen,
                     "fleet rpm %ld: this instance's share (1/%ld) reached, redis "
                     "unreachable",
                     c->rpm, n);
        return true;
    }
    if (c->tpm > 0 &&
        limits_window_tokens(&t->limits, now_ms) + est_tokens > (c->tpm + n - 1) / n) {
        if (why)
            snprintf(why, whylen,
                     "fleet tpm %ld: this instance's share (1/%ld) reached, redis "
                     "unreachable",
                     c->tpm, n);
        return true;
    }
    return false;
}

/* max_concurrency from the fleet's pool; while Redis is down, this instance's share of it. */
static bool slots_blocked(const struct target_state *t, char *why, size_t whylen)
{
    const struct config_target *c = t->cfg;
    char key[FLEET_KEY_MAX];
    bool stale = false;
    rate_key(t, 'c', key, sizeof key);
    if (fleet_slot_free(t->rt->fleet, key, c->max_concurrency, &stale))
        return false;
    long n = t->rt->fleet_instances > 1 ? t->rt->fleet_instances : 1;
    long share = (c->max_concurrency + n - 1) / n;
    if (stale && t->stats.in_flight < share)
        return false;
    if (why && stale)
        snprintf(why, whylen,
                 "fleet max_concurrency %ld: this instance's share (%ld of %ld instances) in "
                 "flight, redis unreachable",
                 c->max_concurrency, share, n);
    else if (why)
        snprintf(why, whylen,
                 "fleet max_concurrency %ld reached: every slot of the fleet's pool is in use",
                 c->max_concurrency);
    return true;
}

bool fleet_glue_rate_blocked(const struct target_state *t, int64_t now_ms, long est_tokens,
                             char *why, size_t whylen)
{
    struct fleet *f = t->rt->fleet;
    const struct config_target *c = t->cfg;
    if (!f || !c->fleet_limits || (c->rpm <= 0 && c->tpm <= 0 && c->max_concurrency <= 0))
        return false;
    if (c->max_concurrency > 0 && slots_blocked(t, why, whylen))
        return true;
    char key[FLEET_KEY_MAX];
    bool stale = false;
    if (c->rpm > 0) {
        rate_key(t, 'r', key, sizeof key);
        if (!fleet_lease_has(f, key, 1, c->rpm, &stale) && !stale) {
            if (why)
                snprintf(why, whylen, "fleet rpm %ld reached (no lease left)", c->rpm);
            return true;
        }
    }
    long tokens = est_tokens > 0 ? est_tokens : 1;
    if (!stale && c->tpm > 0) {
        rate_key(t, 't', key, sizeof key);
        if (!fleet_lease_has(f, key, tokens, c->tpm, &stale) && !stale) {
            if (why)
                snprintf(why, whylen, "fleet tpm %ld reached (%ld tokens needed)", c->tpm, tokens);
            return true;
        }
    }
    return stale && share_blocked(t, now_ms, est_tokens, why, whylen);
}

void fleet_glue_rate_sent(const struct target_state *t, long est_tokens)
{
    struct fleet *f = t->rt->fleet;
    const struct config_target *c = t->cfg;
    if (!f || !c->fleet_limits)
        return;
    char key[FLEET_KEY_MAX];
    if (c->rpm > 0) {
        rate_key(t, 'r', key, sizeof key);
        fleet_lease_use(f, key, 1);
    }
    if (c->tpm > 0) {
        rate_key(t, 't', key, sizeof key);
        fleet_lease_use(f, key, est_tokens > 0 ? est_tokens : 1);
    }
    if (c->max_concurrency > 0) {
        rate_key(t, 'c', key, sizeof key);
        fleet_slot_take(f, key);
    }
}

void fleet_glue_rate_done(const struct target_state *t)
{
    struct fleet *f = t->rt->fleet;
    const struct config_target *c = t->cfg;
    if (!f || !c->fleet_limits || c->max_concurrency <= 0)
        return;
    char key[FLEET_KEY_MAX];
    rate_key(t, 'c', key, sizeof key);
    fleet_slot_give(f, key);
}

/* ---- the runaway guard, fleet-wide ----------------------------------------------------------- */

static void storm_decision(struct router *rt, const struct call *c, long n, int64_t window_ms,
                           int64_t retry_ms, bool first, struct guard_decision *d)
{
    const struct config_guard *g = &c->cref->cfg->guard;
    const char *tag = c->tag && c->tag[0] ? c->tag : "(untagged)";
    long secs = (long)((window_ms + 999) / 1000);
    d->reason = GUARD_REASON_STORM;
    d->verdict = g->action == GUARD_ACTION_THROTTLE ? GUARD_THROTTLE
                 : g->action == GUARD_ACTION_CACHE  ? GUARD_CACHE
                                                    : GUARD_ALLOW;
    d->retry_after_ms = retry_ms;
    snprintf(d->why, sizeof d->why,
             "runaway guard (fleet): tag '%.64s' sent this same prompt %ld times across the "
             "fleet in %ld s (limit %ld); retry in %lld s",
             tag, n, secs, g->identical_max, (long long)((retry_ms + 999) / 1000));
    if (first) {
        d->new_event = true;
        snprintf(d->event_text, sizeof d->event_text,
                 "runaway guard (fleet): tag '%.64s' is looping across the fleet: the same "
                 "prompt %ld times in %ld s (limit %ld)",
                 tag, n, secs, g->identical_max);
    }
    (void)rt;
}

void fleet_glue_guard(struct router *rt, const struct call *c, struct guard_decision *d)
{
    const struct config_guard *g = &c->cref->cfg->guard;
    if (!rt->fleet || !g->enabled || d->reason != GUARD_REASON_NONE)
        return;
    const char *tag = c->tag ? c->tag : "";
    uint64_t k = c->prompt_hash ^ hash_fnv1a(tag, strlen(tag));
    int64_t wall = rt_wall_ms(rt), window = g->identical_window_ms;
    int64_t slot = wall / window;
    struct fleet_seen *e = &rt->fleet_seen[k % FLEET_GUARD_SLOTS];
    if (e->key != k || e->slot != slot)
        *e = (struct fleet_seen){.key = k, .slot = slot};
    e->count++;
    if (e->count < 2)
        return; /* seen once here: not worth a Redis key */
    char key[FLEET_KEY_MAX], prev[FLEET_KEY_MAX];
    snprintf(key, sizeof key, "guard:%016llx:%lld", (unsigned long long)k, (long long)slot);
    snprintf(prev, sizeof prev, "guard:%016llx:%lld", (unsigned long long)k, (long long)slot - 1);
    fleet_counter_add(rt->fleet, key, e->shared ? 1 : e->count, window / 1000 * 2 + 2);
    e->shared = true;
    /* a sliding window from two fixed ones: the previous one weighs what is left of it */
    double left = 1.0 - (double)(wall - slot * window) / (double)window;
    int64_t n = fleet_counter_get(rt->fleet, key, NULL, NULL) +
                (int64_t)((double)fleet_counter_get(rt->fleet, prev, NULL, NULL) * left);
    if (n <= g->identical_max)
        return;
    storm_decision(rt, c, (long)n, window, (slot + 1) * window - wall, !e->flagged, d);
    e->flagged = true;
}
