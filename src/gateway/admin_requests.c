/*
 * admin_requests.c - GET /admin/requests/{id}: one call from the ledger by its x-request-id,
 * for attached consoles (`:req ID`) and scripts. Behind the admin token like every /admin/
 * path (server.c checks it before gw_admin_run).
 *
 *   200 {"request_id", "wall_ms", "route", "target", "model", "tag", "status",
 *        "upstream_status", "error", "attempts", "retries", "hedges", "hedged", "cached",
 *        "throttled", "tokens_in", "tokens_out", "cost_usd", "retry_cost_usd",
 *        "hedge_cost_usd", "latency_ms", "ttft_ms", "text"}   (unknown costs and ttft: null)
 *   404 no call with that id; 400 a bad id, or the ledger keeps nothing (":memory:")
 *
 * Threads: the offload pool (offload.c); waits on disk (one indexed lookup, own read-only
 * connection).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static void info_json(struct gw_json *j, const struct ledger_call_info *c, const struct buf *text)
{
    gw_json_open(j, NULL, '{');
    gw_json_str(j, "request_id", c->request_id);
    gw_json_int(j, "wall_ms", c->wall_ms);
    gw_json_str(j, "route", c->route);
    gw_json_str(j, "target", c->target);
    gw_json_str(j, "model", c->model);
    gw_json_str(j, "tag", c->tag[0] ? c->tag : NULL);
    gw_json_int(j, "status", c->status);
    gw_json_int(j, "upstream_status", c->upstream_status);
    gw_json_str(j, "error", c->error[0] ? c->error : NULL);
    gw_json_int(j, "attempts", c->attempts);
    gw_json_int(j, "retries", c->retries);
    gw_json_int(j, "hedges", c->hedges);
    gw_json_bool(j, "hedged", c->hedged);
    gw_json_bool(j, "cached", c->cached);
    gw_json_bool(j, "throttled", c->throttled);
    gw_json_int(j, "tokens_in", c->tokens_in);
    gw_json_int(j, "tokens_out", c->tokens_out);
    gw_json_num(j, "cost_usd", c->cost_usd < 0 ? NAN : c->cost_usd);
    gw_json_num(j, "retry_cost_usd", c->retry_cost_usd < 0 ? NAN : c->retry_cost_usd);
    gw_json_num(j, "hedge_cost_usd", c->hedge_cost_usd < 0 ? NAN : c->hedge_cost_usd);
    gw_json_num(j, "latency_ms", (double)c->latency_us / 1000.0);
    gw_json_num(j, "ttft_ms", c->ttft_us < 0 ? NAN : (double)c->ttft_us / 1000.0);
    gw_json_strn(j, "text", buf_str(text), text->len);
    gw_json_close(j, '}');
}

static enum MHD_Result fail(struct gw_conn *c, int status, const char *msg)
{
    struct gw_error e;
    gw_error_set(&e, status, "invalid_request_error", NULL, "%s", msg);
    return gw_respond_error(c, &e, NULL);
}

enum MHD_Result gw_admin_requests(struct gw_conn *c, const char *id)
{
    char clean[65];
    gw_request_id_clean(id, clean);
    if (!*id || !str_eq(clean, id))
        return fail(c, 400, "expected /admin/requests/{x-request-id} ([A-Za-z0-9._-], 1..64)");
    struct ledger_call_info info;
    char msg[320];
    enum sb_status st =
        ledger_find_request(router_ledger_peek(c->gw->rt), id, &info, msg, sizeof msg);
    if (st != SB_OK)
        return fail(c, st == SB_ERR_NOT_FOUND ? 404 : st == SB_ERR_IO ? 500 : 400, msg);
    struct buf text, body;
    buf_init(&text);
    buf_init(&body);
    ledger_call_info_text(&info, &text);
    struct gw_json j;
    gw_json_init(&j, &body);
    info_json(&j, &info, &text);
    enum MHD_Result r = gw_respond(c, 200, "application/json", &body, NULL);
    buf_cleanup(&text);
    buf_cleanup(&body);
    return r;
}
