/*
 * qguard.c - the quality thread: at its start, every GW_QGUARD_INTERVAL_MS (longer when a round
 * is slow: gw_qguard_wait_ms keeps its ledger reads to 1 / (GW_QGUARD_DUTY + 1) of a core) and
 * at once after a reload it refreshes the gateway's quality text (quality.c: gw_quality_refresh)
 * and runs the quality guard (routes[].quality_guard), which reads each guarded route's targets'
 * quality from the ledger over the guard's window and compares it with the route's baseline target
 * (or the fixed floors):
 *
 *   satisfaction  on a 0..100 scale ((score + 1) * 50): failing when more than margin_pct
 *                 points below the baseline's; both sides need min_volume ratings;
 *   abandonment   in % of calls: failing when more than margin_pct points above the
 *                 baseline's; both sides need min_volume calls.
 *
 * A target's figures are its calls on this route; the baseline's are all its calls. A target
 * that starts failing raises an event on the timeline; with shift, its weight is overridden
 * (router command "weight", user "quality-guard", expiring after shift_ms: audited like an
 * operator's, undoable with undo) and set again once that has expired if it still fails. A
 * target that recovers raises an event too.
 *
 * Threads: its own thread (the refresh, the judging, the ledger reads (the writer's minute
 * buckets under their own lock; SQL for what they do not hold), router_note and
 * router_command) and the main thread (start with gw_quality_init, settings swapped on reload,
 * stop at cleanup). g->mu guards the settings, the kick and the stop flags; it is never held
 * across a ledger read or a router call. The per-target state belongs to the thread.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "switchboard/ledger.h"
#include "switchboard/log.h"

#define GW_QGUARD_STATES 256
#define QG_EPS           1e-9 /* 7 % of calls is 7.000000000000001 points in doubles */

struct qg_route {
    char name[64];
    char baseline[64]; /* "" none */
    char targets[8][64];
    size_t n_targets;
    struct config_quality_guard g;
};

struct qg_state {
    char key[136]; /* route/target */
    bool failing;
    int64_t shifted_ms; /* monotonic time of the last override; 0 none */
};

struct gw_qguard {
    struct gateway *gw;
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    bool kicked; /* a reload: run a round now */
    int64_t interval_ms;
    char *ledger_path;
    struct qg_route *routes;
    size_t n_routes;
    /* guard thread only */
    struct qg_state states[GW_QGUARD_STATES];
    size_t n_states;
};

/* ---- judging (pure) ---------------------------------------------------------------------- */

static double sat100(const struct ledger_quality_row *r)
{
    return (r->score_sum / (double)r->feedback + 1) * 50;
}

/* Satisfaction verdict: true when failing (why filled). */
static bool judge_satisfaction(const struct config_quality_guard *g,
                               const struct ledger_quality_row *base,
                               const struct ledger_quality_row *t, char *why, size_t whylen)
{
    uint64_t need = (uint64_t)g->min_volume;
    if (!t || t->feedback < need)
        return false;
    double mine = sat100(t);
    if (base) {
        if (base->feedback < need)
            return false;
        double theirs = sat100(base);
        if (mine >= theirs - g->margin_pct - QG_EPS)
            return false;
        snprintf(why, whylen, "satisfaction %.1f vs baseline %s %.1f (%llu ratings, margin %g)",
                 mine, base->key, theirs, (unsigned long long)t->feedback, g->margin_pct);
        return true;
    }
    if (g->min_satisfaction < -1 || mine >= (g->min_satisfaction + 1) * 50 - QG_EPS)
        return false;
    snprintf(why, whylen, "satisfaction %.1f under the floor %.1f (%llu ratings)", mine,
             (g->min_satisfaction + 1) * 50, (unsigned long long)t->feedback);
    return true;
}

static bool judge_abandonment(const struct config_quality_guard *g,
                              const struct ledger_quality_row *base,
                              const struct ledger_quality_row *t, char *why, size_t whylen)
{
    uint64_t need = (uint64_t)g->min_volume;
    if (!t || t->calls < need)
        return false;
    double mine = t->abandonment * 100;
    if (base) {
        if (base->calls < need)
            return false;
        double theirs = base->abandonment * 100;
        if (mine <= theirs + g->margin_pct + QG_EPS)
            return false;
        snprintf(why, whylen, "abandonment %.1f%% vs baseline %s %.1f%% (%llu calls, margin %g)",
                 mine, base->key, theirs, (unsigned long long)t->calls, g->margin_pct);
        return true;
    }
    if (g->max_abandonment < 0 || mine <= g->max_abandonment * 100 + QG_EPS)
        return false;
    snprintf(why, whylen, "abandonment %.1f%% over the ceiling %.1f%% (%llu calls)", mine,
             g->max_abandonment * 100, (unsigned long long)t->calls);
    return true;
}

bool gw_qguard_judge(const struct config_quality_guard *g, const struct ledger_quality_row *base,
                     const struct ledger_quality_row *t, char *why, size_t whylen)
{
    why[0] = '\0';
    switch (g->metric) {
    case QUALITY_METRIC_SATISFACTION:
        return judge_satisfaction(g, base, t, why, whylen);
    case QUALITY_METRIC_ABANDONMENT:
        return judge_abandonment(g, base, t, why, whylen);
    case QUALITY_METRIC_BOTH:
        return judge_satisfaction(g, base, t, why, whylen) ||
               judge_abandonment(g, base, t, why, whylen);
    }
    return false;
}

/* ---- the thread -------------------------------------------------------------------------- */

static const struct ledger_quality_row *find_row(const struct ledger_quality *q, const char *key)
{
    for (size_t i = 0; i < q->n; i++)
        if (str_eq(q->rows[i].key, key))
            return &q->rows[i];
    return NULL;
}

static struct qg_state *state_for(struct gw_qguard *g, const char *key)
{
    for (size_t i = 0; i < g->n_states; i++)
        if (str_eq(g->states[i].key, key))
            return &g->states[i];
    if (g->n_states >= GW_QGUARD_STATES)
        return NULL;
    struct qg_state *s = &g->states[g->n_states++];
    memset(s, 0, sizeof *s);
    str_copy(s->key, sizeof s->key, key);
    return s;
}

static void shift(struct gw_qguard *g, const struct qg_route *r, const char *target,
                  struct qg_state *s)
{
    int64_t now = clock_mono_ms();
    if (s->shifted_ms && now - s->shifted_ms < r->g.shift_ms)
        return; /* the last override has not expired (or an operator undid it: respect that) */
    struct router_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = ROUTER_CMD_SET_WEIGHT;
    str_copy(cmd.target, sizeof cmd.target, target);
    cmd.weight = r->g.shift_weight;
    cmd.expires_ms = r->g.shift_ms;
    str_copy(cmd.user, sizeof cmd.user, "quality-guard");
    char msg[256];
    if (router_command(g->gw->rt, &cmd, msg, sizeof msg, 2000) == SB_OK)
        s->shifted_ms = now;
    else
        log_warn("quality guard: cannot shift weight away from %s: %s", target, msg);
}

static void judge_target(struct gw_qguard *g, const struct qg_route *r, const char *target,
                         const struct ledger_quality *by_rt, const struct ledger_quality *by_t)
{
    char key[136], why[200], text[320];
    snprintf(key, sizeof key, "%s/%s", r->name, target);
    struct qg_state *s = state_for(g, key);
    if (!s || str_eq(target, r->baseline))
        return;
    const struct ledger_quality_row *base = r->baseline[0] ? find_row(by_t, r->baseline) : NULL;
    if (r->baseline[0] && !base)
        return; /* no figures for the baseline yet */
    bool failing = gw_qguard_judge(&r->g, base, find_row(by_rt, key), why, sizeof why);
    if (failing && !s->failing) {
        snprintf(text, sizeof text, "quality guard: route %s: %s: %s%s", r->name, target, why,
                 r->g.shift ? "; weight shifted away" : "");
        log_warn("%s", text);
        router_note(g->gw->rt, ROUTER_EV_ERROR, target, text);
        ledger_post_event(router_ledger_peek(g->gw->rt), clock_wall_ms(), "quality", target, text);
    } else if (!failing && s->failing) {
        snprintf(text, sizeof text, "quality guard: route %s: %s is within the margin again",
                 r->name, target);
        log_info("%s", text);
        router_note(g->gw->rt, ROUTER_EV_ERROR, target, text);
    }
    s->failing = failing;
    if (failing && r->g.shift)
        shift(g, r, target, s);
}

/* One round over copies of the settings (taken under mu). A guard's window (whole minutes,
 * see gw_quality_window) comes from the ledger writer's minute buckets when it is at most a
 * day, else from SQL. */
static void tick(struct gw_qguard *g, const char *path, const struct qg_route *routes, size_t n)
{
    int64_t now = clock_wall_ms();
    struct ledger *l = router_ledger_peek(g->gw->rt);
    struct ledger_quality by_rt, by_t;
    ledger_quality_init(&by_rt);
    ledger_quality_init(&by_t);
    for (size_t i = 0; i < n; i++) {
        const struct qg_route *r = &routes[i];
        if (!gw_quality_window(l, path, LEDGER_QBY_ROUTE_TARGET, now, r->g.window_ms, 1, &by_rt) ||
            !gw_quality_window(l, path, LEDGER_QBY_TARGET, now, r->g.window_ms, 1, &by_t))
            break; /* logged; judged again next round */
        for (size_t t = 0; t < r->n_targets; t++)
            judge_target(g, r, r->targets[t], &by_rt, &by_t);
    }
    ledger_quality_cleanup(&by_rt);
    ledger_quality_cleanup(&by_t);
}

int64_t gw_qguard_wait_ms(int64_t interval_ms, int64_t round_ms)
{
    int64_t wait = round_ms > 0 ? round_ms * GW_QGUARD_DUTY : 0;
    if (wait > GW_QGUARD_MAX_WAIT_MS)
        wait = GW_QGUARD_MAX_WAIT_MS;
    return wait > interval_ms ? wait : interval_ms;
}

/* Waits (g->mu held) until the next round is due, a reload kicks or the guard stops. */
static void wait_round(struct gw_qguard *g, int64_t round_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t at = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 +
                 gw_qguard_wait_ms(g->interval_ms, round_ms);
    ts.tv_sec = (time_t)(at / 1000);
    ts.tv_nsec = (long)(at % 1000) * 1000000L;
    while (!g->stop && !g->kicked) {
        if (pthread_cond_timedwait(&g->cv, &g->mu, &ts) != 0)
            break; /* timed out: the round is due */
    }
    g->kicked = false;
}

static void *guard_main(void *arg)
{
    struct gw_qguard *g = arg;
    int64_t round_ms = 0;
    pthread_mutex_lock(&g->mu);
    for (bool first = true; !g->stop; first = false) {
        if (!first)
            wait_round(g, round_ms);
        if (g->stop)
            break;
        pthread_mutex_unlock(&g->mu);
        int64_t t0 = clock_mono_ms();
        gw_quality_refresh(g->gw);
        pthread_mutex_lock(&g->mu);
        size_t n = g->n_routes;
        struct qg_route *routes = n ? xmalloc(n * sizeof *routes) : NULL;
        if (n)
            memcpy(routes, g->routes, n * sizeof *routes);
        char *path = xstrdup(g->ledger_path);
        pthread_mutex_unlock(&g->mu);
        tick(g, path, routes, n);
        round_ms = clock_mono_ms() - t0;
        free(routes);
        free(path);
        pthread_mutex_lock(&g->mu);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

/* ---- settings (main thread) ------------------------------------------------------------- */

static void settings_locked(struct gw_qguard *g, const struct config *cfg)
{
    free(g->routes);
    free(g->ledger_path);
    g->routes = NULL;
    g->n_routes = 0;
    g->ledger_path = xstrdup(cfg->ledger.path ? cfg->ledger.path : ":memory:");
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const struct config_route *cr = &cfg->routes[i];
        if (!cr->quality_guard.enabled)
            continue;
        g->routes = xrealloc(g->routes, (g->n_routes + 1) * sizeof *g->routes);
        struct qg_route *r = &g->routes[g->n_routes++];
        memset(r, 0, sizeof *r);
        str_copy(r->name, sizeof r->name, cr->name);
        if (cr->baseline >= 0)
            str_copy(r->baseline, sizeof r->baseline, cfg->targets[cr->baseline].name);
        for (size_t t = 0; t < cr->n_targets && r->n_targets < SB_ARRAY_LEN(r->targets); t++)
            str_copy(r->targets[r->n_targets++], sizeof r->targets[0],
                     cfg->targets[cr->targets[t]].name);
        r->g = cr->quality_guard;
    }
}

struct gw_qguard *gw_qguard_new(struct gateway *gw, const struct config *cfg, int64_t interval_ms)
{
    struct gw_qguard *g = xcalloc(1, sizeof *g);
    g->gw = gw;
    g->interval_ms = interval_ms;
    pthread_mutex_init(&g->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->cv, &ca);
    pthread_condattr_destroy(&ca);
    settings_locked(g, cfg);
    int rc = pthread_create(&g->thread, NULL, guard_main, g);
    g->started = rc == 0;
    if (rc != 0)
        log_error("quality guard: cannot start its thread: %s", strerror(rc));
    return g;
}

void gw_qguard_configure(struct gw_qguard *g, const struct config *cfg)
{
    pthread_mutex_lock(&g->mu);
    settings_locked(g, cfg);
    g->kicked = true;
    pthread_mutex_unlock(&g->mu);
    pthread_cond_signal(&g->cv);
}

void gw_qguard_free(struct gw_qguard *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&g->mu);
    g->stop = true;
    pthread_mutex_unlock(&g->mu);
    pthread_cond_broadcast(&g->cv);
    if (g->started)
        pthread_join(g->thread, NULL);
    free(g->routes);
    free(g->ledger_path);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g);
}
