/*
 * admin_quality.c - GET /admin/quality/{target}: one target's quality over the last hour
 * (whole minutes: since_ms is floor(now - 1 h) to the minute, until_ms the end of now's minute)
 * and its most recent negative feedback, from this gateway's ledger, for attached consoles (the
 * detail view's quality lines) and scripts. Behind the admin token like every /admin/ path
 * (server.c checks it before gw_admin_run).
 *
 *   200 {"target", "configured", "since_ms", "until_ms", "min_volume",
 *        "quality": {the counts and sums: "calls", "answered", "abandoned", "throttled",
 *                    "complete", "length", "content_filter", "truncated", "errors",
 *                    "feedback", "negative", "console", "answered_negative", "score_sum",
 *                    "spend_usd", "savings_usd"; derived from them (null when undefined):
 *                    "satisfied", "satisfaction", "negative_share", "abandonment",
 *                    "completion", "cost_per_call_usd", "cost_per_satisfied_usd",
 *                    "savings_per_satisfied_usd"},
 *        "negative": [{"wall_ms", "source", "request_id", "score", "label", "comment"}...]}
 *   400 a name no target can have, or the ledger keeps nothing (":memory:")
 *   404 the router has no such target and the ledger has no call of it in the hour
 *
 * The counts and sums let a console merge several instances exactly (sum them, derive again);
 * the derived figures use this gateway's ledger.quality_min_volume. A target the router no
 * longer has (removed by a reload) still answers with its hour ("configured": false): its
 * calls happened. "negative" is the newest GW_QUALITY_NEGATIVE ratings below 0 of any age,
 * newest first; a console vote has "request_id": null. Nothing secret is in it (no rater key).
 *
 * The hour is a sum of the target's minute buckets the ledger writer keeps
 * (ledger_quality_window: no SQL, the other targets not read); SQL over the file only when
 * the buckets cannot answer (a key cap hit...). The negatives walk the target's index in the
 * file.
 *
 * Threads: the offload pool (offload.c); may wait on disk (the negatives, or the SQL
 * fallback, on its own read-only connection).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define GW_QUALITY_NEGATIVE 10
#define HOUR_MS             3600000LL

static void row_json(struct gw_json *j, const struct ledger_quality_row *r)
{
    gw_json_open(j, "quality", '{');
    gw_json_uint(j, "calls", r->calls);
    gw_json_uint(j, "answered", r->answered);
    gw_json_uint(j, "abandoned", r->abandoned);
    gw_json_uint(j, "throttled", r->throttled);
    gw_json_uint(j, "complete", r->complete);
    gw_json_uint(j, "length", r->length);
    gw_json_uint(j, "content_filter", r->content_filter);
    gw_json_uint(j, "truncated", r->truncated);
    gw_json_uint(j, "errors", r->errors);
    gw_json_uint(j, "feedback", r->feedback);
    gw_json_uint(j, "negative", r->negative);
    gw_json_uint(j, "console", r->console);
    gw_json_uint(j, "answered_negative", r->answered_negative);
    gw_json_num(j, "score_sum", r->score_sum);
    gw_json_num(j, "spend_usd", r->spend_usd);
    gw_json_num(j, "savings_usd", r->savings_usd);
    gw_json_uint(j, "satisfied", r->satisfied);
    gw_json_num(j, "satisfaction", r->has_satisfaction ? r->satisfaction : NAN);
    gw_json_num(j, "negative_share", r->has_satisfaction ? r->negative_share : NAN);
    gw_json_num(j, "abandonment", r->calls > 0 ? r->abandonment : NAN);
    gw_json_num(j, "completion", r->completion >= 0 ? r->completion : NAN);
    gw_json_num(j, "cost_per_call_usd", r->cost_per_call >= 0 ? r->cost_per_call : NAN);
    gw_json_num(j, "cost_per_satisfied_usd",
                r->cost_per_satisfied >= 0 ? r->cost_per_satisfied : NAN);
    gw_json_num(j, "savings_per_satisfied_usd",
                r->savings_per_satisfied >= 0 ? r->savings_per_satisfied : NAN);
    gw_json_close(j, '}');
}

static void negative_json(struct gw_json *j, const struct ledger_feedback_item *f, size_t n)
{
    gw_json_open(j, "negative", '[');
    for (size_t i = 0; i < n; i++) {
        gw_json_open(j, NULL, '{');
        gw_json_int(j, "wall_ms", f[i].wall_ms);
        gw_json_str(j, "source", f[i].source);
        gw_json_str(j, "request_id", f[i].request_id[0] ? f[i].request_id : NULL);
        gw_json_num(j, "score", f[i].score);
        gw_json_str(j, "label", f[i].label);
        gw_json_str(j, "comment", f[i].comment);
        gw_json_close(j, '}');
    }
    gw_json_close(j, ']');
}

static enum MHD_Result fail(struct gw_conn *c, int status, const char *msg)
{
    struct gw_error e;
    gw_error_set(&e, status, status >= 500 ? "server_error" : "invalid_request_error", NULL, "%s",
                 msg);
    return gw_respond_error(c, &e, NULL);
}

/* A name a target can have: 1..63 bytes, no '/' and no control character. */
static bool name_ok(const char *name)
{
    size_t len = strlen(name);
    bool ok = len > 0 && len < sizeof(((struct router_target_snap *)0)->name);
    for (size_t i = 0; ok && i < len; i++)
        ok = name[i] != '/' && (unsigned char)name[i] >= 0x20 && name[i] != 0x7f;
    return ok;
}

/* The target's row over the hour of whole minutes ending with now's (*since, *until); false
 * with msg when it cannot be read. */
static bool load_row(struct ledger *l, const char *path, const char *name, uint64_t min_volume,
                     struct ledger_quality_row *row, bool *found, int64_t *since, int64_t *until,
                     char *msg, size_t msglen)
{
    struct ledger_quality q;
    ledger_quality_init(&q);
    bool ok = ledger_quality_window(l, path, LEDGER_QBY_TARGET, name, clock_wall_ms(), HOUR_MS,
                                    min_volume, &q, msg, msglen) == SB_OK;
    *row = q.total; /* the target's row alone */
    str_copy(row->key, sizeof row->key, name);
    *found = q.n > 0;
    *since = q.since_ms;
    *until = q.until_ms;
    ledger_quality_cleanup(&q);
    return ok;
}

enum MHD_Result gw_admin_quality(struct gw_conn *c, const char *name)
{
    struct ledger *l = router_ledger_peek(c->gw->rt);
    const char *path = ledger_file(l);
    if (!name_ok(name))
        return fail(c, 400, "expected /admin/quality/{target} (a target's name)");
    if (!path || str_eq(path, ":memory:"))
        return fail(c, 400, "the ledger keeps nothing (ledger.path is \":memory:\")");
    int64_t since, until;
    uint64_t min_volume = gw_quality_min_volume(c->gw);
    struct ledger_quality_row row;
    bool in_ledger;
    char msg[320];
    if (!load_row(l, path, name, min_volume, &row, &in_ledger, &since, &until, msg, sizeof msg))
        return fail(c, 500, msg);
    bool known = gw_snapcache_has_target(c->gw->snapcache, c->gw->rt, name);
    if (!known && !in_ledger) {
        snprintf(msg, sizeof msg, "no target named \"%.60s\" (nor calls of one in the hour)", name);
        return fail(c, 404, msg);
    }
    struct ledger_feedback_item neg[GW_QUALITY_NEGATIVE];
    size_t n_neg = 0;
    if (ledger_recent_negative(path, name, GW_QUALITY_NEGATIVE, neg, &n_neg, msg, sizeof msg) !=
        SB_OK)
        return fail(c, 500, msg);
    struct buf body;
    struct gw_json j;
    buf_init(&body);
    gw_json_init(&j, &body);
    gw_json_open(&j, NULL, '{');
    gw_json_str(&j, "target", name);
    gw_json_bool(&j, "configured", known);
    gw_json_int(&j, "since_ms", since);
    gw_json_int(&j, "until_ms", until);
    gw_json_uint(&j, "min_volume", min_volume);
    row_json(&j, &row);
    negative_json(&j, neg, n_neg);
    gw_json_close(&j, '}');
    enum MHD_Result r = gw_respond(c, 200, "application/json", &body, NULL);
    buf_cleanup(&body);
    return r;
}
