/*
 * candidates.c - a call's candidates and the picks among them (router thread only): the
 * route and its fallback chain as groups, each target once; a pick per the route's strategy
 * (an operator pin wins); the pick budget every pick spends; and the explanations and
 * "free again at" times used when nothing can be picked.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

void cands_add(struct call *c, size_t *cap, struct target_state *t, struct route_state *r,
               enum route_strategy s, int group)
{
    for (size_t i = 0; i < c->n_cands; i++) {
        if (c->cands[i].t == t)
            return; /* a target reached through two routes is tried once */
    }
    c->cands = xgrow(c->cands, cap, c->n_cands + 1, sizeof *c->cands);
    struct cand *k = &c->cands[c->n_cands++];
    memset(k, 0, sizeof *k);
    k->t = t;
    t->refs++;
    k->r = r;
    if (r)
        r->refs++;
    k->strategy = s;
    k->group = group;
}

/* The route and its fallback chain, breadth first, each route once. */
void cands_build_route(struct router *rt, struct call *c, long route)
{
    const struct config *cfg = c->cref->cfg;
    size_t cap = 0;
    long order[ROUTER_MAX_ROUTES];
    size_t n = 0, head = 0;
    order[n++] = route;
    while (head < n) {
        const struct config_route *cr = &cfg->routes[order[head]];
        struct route_state *rs = router_find_route(rt, cr->name);
        for (size_t k = 0; k < cr->n_targets; k++) {
            struct target_state *t = router_find_target(rt, cfg->targets[cr->targets[k]].name);
            if (t)
                cands_add(c, &cap, t, rs, cr->strategy, (int)head);
        }
        for (size_t f = 0; f < cr->n_fallback && n < ROUTER_MAX_ROUTES; f++) {
            bool seen = false;
            for (size_t j = 0; j < n; j++)
                seen |= order[j] == (long)cr->fallback[f];
            if (!seen)
                order[n++] = (long)cr->fallback[f];
        }
        head++;
    }
    c->n_groups = (int)n;
}

bool cands_usable(const struct call *c, const struct cand *k, int64_t now, bool allow_tried)
{
    if (k->refused || (k->tried && !allow_tried))
        return false;
    return !target_blocked(k->t, now, c->est_tokens, c->min_context, c->direct != NULL, NULL, 0);
}

/* Picks within one group; returns the candidate or NULL. */
static struct cand *pick_in_group(struct router *rt, struct call *c, int group, int64_t now,
                                  bool allow_tried)
{
    struct pick_candidate pc[PICK_MAX_CANDIDATES];
    struct cand *map[PICK_MAX_CANDIDATES];
    size_t n = 0;
    struct route_state *rs = NULL;
    enum route_strategy strategy = STRATEGY_PRIORITY;
    for (size_t i = 0; i < c->n_cands && n < PICK_MAX_CANDIDATES; i++) {
        struct cand *k = &c->cands[i];
        if (k->group != group)
            continue;
        rs = k->r;
        strategy = k->strategy;
        const struct config_target *tc = k->t->cfg;
        struct llm_usage est = {.present = true,
                                .input_tokens = c->est_tokens,
                                .output_tokens = c->req->max_tokens > 0 ? c->req->max_tokens : 256};
        pc[n] = (struct pick_candidate){
            .id = i,
            .weight = target_weight(k->t),
            .est_cost_usd = tc->has_price ? llm_cost_usd(&tc->price, &est) : -1,
            .latency_score_ms = ewma_value(&k->t->ewma),
            .in_flight = k->t->stats.in_flight,
            .ewma_ms = ewma_value(&k->t->ewma),
            .eligible = cands_usable(c, k, now, allow_tried),
        };
        map[n++] = k;
    }
    if (n == 0)
        return NULL;
    /* An operator pin on this route wins when the pinned target can take the call. */
    if (rs && rs->pinned && !rs->removed) {
        for (size_t i = 0; i < n; i++) {
            if (map[i]->t == rs->pinned)
                return pc[i].eligible ? map[i] : NULL;
        }
    }
    size_t chosen;
    struct pick_state scratch;
    pick_state_init(&scratch);
    struct pick_state *st = rs ? &rs->pick : &scratch;
    if (!pick_next(st, strategy, pc, n, &rt->rng, &chosen))
        return NULL;
    return map[chosen];
}

/* Every pick spends one of the call's picks (nginx's peer.tries): whatever a launch does
 * with the candidate, the loop over candidates ends. */
struct cand *cands_pick(struct router *rt, struct call *c, int64_t now)
{
    if (c->picks_left <= 0)
        return NULL;
    c->picks_left--;
    for (int pass = 0; pass < 2; pass++) {
        for (int g = 0; g < c->n_groups; g++) {
            struct cand *k = pick_in_group(rt, c, g, now, pass == 1);
            if (k)
                return k;
        }
    }
    return NULL;
}

/* "a: breaker open (retry in 12 s); b: drained" for a 503 when nothing can be tried. */
void cands_explain_none(const struct call *c, int64_t now, char *out, size_t outlen)
{
    struct buf b;
    buf_init(&b);
    for (size_t i = 0; i < c->n_cands && b.len < outlen; i++) {
        char why[160];
        target_blocked(c->cands[i].t, now, c->est_tokens, c->min_context, c->direct != NULL, why,
                       sizeof why);
        buf_printf(&b, "%s%s: %s", i ? "; " : "", c->cands[i].t->cfg->name, why[0] ? why : "tried");
    }
    str_copy(out, outlen, buf_str(&b));
    buf_cleanup(&b);
}

bool cands_all_refused(const struct call *c)
{
    for (size_t i = 0; i < c->n_cands; i++) {
        if (!c->cands[i].refused)
            return false;
    }
    return c->n_cands > 0;
}

/* When every candidate is held back only for a while - rate limited (a 429 cooldown, rpm,
 * tpm) or behind an open breaker - the earliest time one frees up; -1 otherwise. */
int64_t cands_soonest_free(const struct call *c, int64_t now, bool *all_limited)
{
    int64_t soonest = -1;
    *all_limited = true;
    for (size_t i = 0; i < c->n_cands; i++) {
        const struct cand *k = &c->cands[i];
        const struct target_state *t = k->t;
        if (k->refused)
            continue;
        int64_t at = -1;
        if (!t->ov.forced_live && !c->direct && t->breaker.state == BREAKER_OPEN &&
            !breaker_can_take(&t->breaker, now)) {
            at = now + breaker_retry_in_ms(&t->breaker, now);
            *all_limited = false;
        } else if (!limits_can_send(&t->limits, now, c->est_tokens)) {
            at = limits_ready_at_ms(&t->limits, now, c->est_tokens);
        } else if (fleet_glue_rate_blocked(t, now, c->est_tokens, NULL, 0)) {
            at = now + FLEET_LEASE_MS / 5; /* the fleet thread is fetching a lease */
        }
        if (at < 0)
            return -1;
        soonest = soonest < 0 || at < soonest ? at : soonest;
    }
    return soonest;
}
