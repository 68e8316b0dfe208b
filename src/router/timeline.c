/*
 * timeline.c - the incident timeline's two rings and the churn aggregator (timeline.h).
 *
 * Pure: the owner's thread only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/timeline.h"
#include "switchboard/util.h"

/* ---- rings ---------------------------------------------------------------------------------- */

static void ring_init(struct timeline_ring *r, size_t cap)
{
    r->cap = cap ? cap : 1;
    r->e = xcalloc(r->cap, sizeof *r->e);
    r->n = r->next = 0;
}

/* i-th newest (0 = newest). */
static struct timeline_entry *ring_newest(const struct timeline_ring *r, size_t i)
{
    return &r->e[(r->next + r->cap - 1 - i) % r->cap];
}

void timeline_init(struct timeline *tl, size_t key_cap, size_t churn_cap)
{
    memset(tl, 0, sizeof *tl);
    ring_init(&tl->key, key_cap);
    ring_init(&tl->churn, churn_cap);
}

void timeline_cleanup(struct timeline *tl)
{
    free(tl->key.e);
    free(tl->churn.e);
    tl->key.e = tl->churn.e = NULL;
    tl->key.n = tl->churn.n = 0;
}

size_t timeline_count(const struct timeline *tl)
{
    return tl->key.n + tl->churn.n;
}

static struct timeline_entry *find_agg(const struct timeline_ring *r, uint64_t agg)
{
    for (size_t i = 0; i < r->n; i++) {
        struct timeline_entry *e = ring_newest(r, i);
        if (e->ev.agg == agg)
            return e;
    }
    return NULL;
}

bool timeline_put(struct timeline *tl, const struct router_event *e)
{
    struct timeline_ring *r = e->churn ? &tl->churn : &tl->key;
    struct timeline_entry *old = e->churn && e->agg ? find_agg(r, e->agg) : NULL;
    if (old) {
        old->ev = *e;
        return false;
    }
    struct timeline_entry *slot = &r->e[r->next];
    slot->ev = *e;
    slot->ord = ++tl->ord;
    r->next = (r->next + 1) % r->cap;
    if (r->n < r->cap)
        r->n++;
    return true;
}

void timeline_iter_init(struct timeline_iter *it)
{
    it->ki = it->ci = 0;
}

const struct timeline_entry *timeline_iter_next(const struct timeline *tl, struct timeline_iter *it)
{
    const struct timeline_entry *k = it->ki < tl->key.n ? ring_newest(&tl->key, it->ki) : NULL;
    const struct timeline_entry *c = it->ci < tl->churn.n ? ring_newest(&tl->churn, it->ci) : NULL;
    if (k && (!c || k->ord > c->ord)) {
        it->ki++;
        return k;
    }
    if (c)
        it->ci++;
    return c;
}

/* ---- aggregation ---------------------------------------------------------------------------- */

void timeline_agg_init(struct timeline_agg *ag)
{
    memset(ag, 0, sizeof *ag);
}

static const char *what(const struct timeline_agg_slot *s, char *buf, size_t n)
{
    switch (s->kind) {
    case ROUTER_EV_FALLBACK:
    case ROUTER_EV_ERROR:
        snprintf(buf, n, "failures (%s)", s->cls);
        return buf;
    case ROUTER_EV_RATE_LIMIT:
        return "429s";
    case ROUTER_EV_HEDGE:
        return "hedges";
    case ROUTER_EV_TRUNCATED:
        return "truncated streams";
    case ROUTER_EV_BREAKER:
    case ROUTER_EV_PROBE:
    case ROUTER_EV_OPERATOR:
    case ROUTER_EV_CONFIG:
        snprintf(buf, n, "%s events", router_event_kind_name(s->kind));
        return buf;
    }
    return "events";
}

void timeline_agg_text(const struct timeline_agg_slot *s, int64_t now_ms, char *out, size_t n)
{
    if (s->count <= 1) {
        str_copy(out, n, s->detail);
        return;
    }
    char wbuf[48], to[96] = "", req[80] = "";
    if (s->to[0])
        snprintf(to, sizeof to, " -> fallback to %s%s", s->to, s->many_to ? " and others" : "");
    if (s->request_id[0])
        snprintf(req, sizeof req, " (latest req %s)", s->request_id);
    int64_t span = now_ms - s->first_ms;
    if (span > TIMELINE_AGG_WINDOW_MS)
        span = TIMELINE_AGG_WINDOW_MS;
    snprintf(out, n, "%s%s%u %s%s, last %lld s%s", s->target, s->target[0] ? ": " : "",
             (unsigned)s->count, what(s, wbuf, sizeof wbuf), to, (long long)((span + 999) / 1000),
             req);
}

static void emit(struct timeline *tl, struct timeline_agg *ag, struct timeline_agg_slot *s,
                 int64_t now_ms)
{
    struct router_event e;
    memset(&e, 0, sizeof e);
    e.seq = ++ag->seq;
    e.wall_ms = s->first_wall_ms;
    e.kind = s->kind;
    e.churn = true;
    e.agg = s->agg;
    str_copy(e.target, sizeof e.target, s->target);
    timeline_agg_text(s, now_ms, e.text, sizeof e.text);
    timeline_put(tl, &e);
    s->emitted_ms = now_ms;
    s->pending = false;
}

static bool same(const struct timeline_agg_slot *s, const struct timeline_churn_in *in)
{
    return s->used && s->kind == in->kind && str_eq(s->target, in->target ? in->target : "") &&
           str_eq(s->cls, in->cls ? in->cls : "");
}

/* The open aggregate for in, or a fresh slot (the free one, else the oldest). */
static struct timeline_agg_slot *
slot_for(struct timeline_agg *ag, const struct timeline_churn_in *in, int64_t now_ms, bool *fresh)
{
    struct timeline_agg_slot *oldest = &ag->slot[0];
    for (size_t i = 0; i < TIMELINE_AGG_SLOTS; i++) {
        struct timeline_agg_slot *s = &ag->slot[i];
        if (same(s, in) && now_ms - s->first_ms < TIMELINE_AGG_WINDOW_MS) {
            *fresh = false;
            return s;
        }
        if (!s->used || (oldest->used && s->first_ms < oldest->first_ms))
            oldest = s;
    }
    *fresh = true;
    return oldest;
}

bool timeline_churn(struct timeline *tl, struct timeline_agg *ag, int64_t now_ms, int64_t wall_ms,
                    const struct timeline_churn_in *in)
{
    bool fresh = false;
    struct timeline_agg_slot *s = slot_for(ag, in, now_ms, &fresh);
    if (fresh) {
        if (s->used && s->pending) /* the slot's previous aggregate gets its last count */
            emit(tl, ag, s, now_ms);
        memset(s, 0, sizeof *s);
        s->used = true;
        s->agg = ++ag->next_agg;
        s->kind = in->kind;
        str_copy(s->target, sizeof s->target, in->target ? in->target : "");
        str_copy(s->cls, sizeof s->cls, in->cls ? in->cls : "");
        s->first_ms = now_ms;
        s->first_wall_ms = wall_ms;
    }
    if (in->to && in->to[0]) {
        s->many_to = s->many_to || (s->to[0] && !str_eq(s->to, in->to));
        str_copy(s->to, sizeof s->to, in->to);
    }
    s->count++;
    s->last_ms = now_ms;
    str_copy(s->request_id, sizeof s->request_id, in->request_id ? in->request_id : "");
    str_copy(s->detail, sizeof s->detail, in->detail ? in->detail : "");
    s->pending = true;
    if (!fresh && now_ms - s->emitted_ms < TIMELINE_AGG_EMIT_MS)
        return false;
    emit(tl, ag, s, now_ms);
    return true;
}

bool timeline_agg_flush(struct timeline *tl, struct timeline_agg *ag, int64_t now_ms, bool all)
{
    bool wrote = false;
    for (size_t i = 0; i < TIMELINE_AGG_SLOTS; i++) {
        struct timeline_agg_slot *s = &ag->slot[i];
        if (!s->used)
            continue;
        if (s->pending && (all || now_ms - s->emitted_ms >= TIMELINE_AGG_EMIT_MS)) {
            emit(tl, ag, s, now_ms);
            wrote = true;
        }
        if (!s->pending && now_ms - s->first_ms >= TIMELINE_AGG_WINDOW_MS)
            s->used = false; /* its line stays as it is; the next occurrence opens another */
    }
    return wrote;
}
