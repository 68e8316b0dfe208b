/*
 * lookup.c - one call by its x-request-id, for the console's `:req ID` and GET
 * /admin/requests/ID: the rows not committed yet first (ledger.c, under the lock), then the
 * file through an own read-only connection.
 *
 * Any thread.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

static const char sql_find[] =
    "SELECT ts_ms, IFNULL(request_id, ''), IFNULL(route, ''), IFNULL(target, ''),"
    " IFNULL(model, ''), IFNULL(tag, ''), status, IFNULL(upstream_status, 0), IFNULL(error, ''),"
    " attempts, retries, hedges, hedged, IFNULL(tokens_in, -1), IFNULL(tokens_out, -1),"
    " IFNULL(cost_usd, -1), IFNULL(retry_cost_usd, -1), IFNULL(hedge_cost_usd, -1), latency_us,"
    " IFNULL(ttft_us, -1), cached, throttled, usage_missing"
    " FROM calls WHERE request_id = ?1 ORDER BY ts_ms DESC, id DESC LIMIT 1";

void ledger_call_info_from(const struct ledger_call *c, struct ledger_call_info *out)
{
    memset(out, 0, sizeof *out);
    out->wall_ms = c->wall_ms;
    str_copy(out->request_id, sizeof out->request_id, c->request_id ? c->request_id : "");
    str_copy(out->route, sizeof out->route, c->route ? c->route : "");
    str_copy(out->target, sizeof out->target, c->target ? c->target : "");
    str_copy(out->model, sizeof out->model, c->model ? c->model : "");
    str_copy(out->tag, sizeof out->tag, c->tag ? c->tag : "");
    str_copy(out->error, sizeof out->error,
             c->err == LLM_ERR_NONE ? "" : llm_errclass_name(c->err));
    out->status = c->status;
    out->upstream_status = c->upstream_status;
    out->attempts = c->attempts;
    out->retries = c->retries;
    out->hedges = c->hedges;
    out->hedged = c->hedged;
    out->cached = c->cached;
    out->throttled = c->throttled;
    out->usage_missing = c->usage_missing;
    out->tokens_in = c->usage.present ? c->usage.input_tokens : -1;
    out->tokens_out = c->usage.present ? c->usage.output_tokens : -1;
    out->cost_usd = c->usage_missing ? -1 : c->cost_usd;
    out->retry_cost_usd = c->retry_cost_usd;
    out->hedge_cost_usd = c->hedge_cost_usd;
    out->latency_us = c->latency_us;
    out->ttft_us = c->ttft_us;
}

static void col(sqlite3_stmt *st, int i, char *out, size_t n)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    str_copy(out, n, s ? (const char *)s : "");
}

static void from_row(sqlite3_stmt *st, struct ledger_call_info *out)
{
    memset(out, 0, sizeof *out);
    out->wall_ms = sqlite3_column_int64(st, 0);
    col(st, 1, out->request_id, sizeof out->request_id);
    col(st, 2, out->route, sizeof out->route);
    col(st, 3, out->target, sizeof out->target);
    col(st, 4, out->model, sizeof out->model);
    col(st, 5, out->tag, sizeof out->tag);
    out->status = sqlite3_column_int(st, 6);
    out->upstream_status = (long)sqlite3_column_int64(st, 7);
    col(st, 8, out->error, sizeof out->error);
    out->attempts = sqlite3_column_int(st, 9);
    out->retries = sqlite3_column_int(st, 10);
    out->hedges = sqlite3_column_int(st, 11);
    out->hedged = sqlite3_column_int(st, 12) != 0;
    out->tokens_in = (long)sqlite3_column_int64(st, 13);
    out->tokens_out = (long)sqlite3_column_int64(st, 14);
    out->cost_usd = sqlite3_column_double(st, 15);
    out->retry_cost_usd = sqlite3_column_double(st, 16);
    out->hedge_cost_usd = sqlite3_column_double(st, 17);
    out->latency_us = sqlite3_column_int64(st, 18);
    out->ttft_us = sqlite3_column_int64(st, 19);
    out->cached = sqlite3_column_int(st, 20) != 0;
    out->throttled = sqlite3_column_int(st, 21) != 0;
    out->usage_missing = sqlite3_column_int(st, 22) != 0;
}

static enum sb_status find_in_file(const char *path, const char *request_id,
                                   struct ledger_call_info *out, char *msg, size_t msglen)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    enum sb_status rc = SB_ERR_IO;
    if (access(path, F_OK) != 0) {
        snprintf(msg, msglen, "no call with request id %s (no ledger file yet)", request_id);
        rc = SB_ERR_NOT_FOUND;
        goto out;
    }
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK ||
        sqlite3_busy_timeout(db, 5000) != SQLITE_OK ||
        sqlite3_prepare_v2(db, sql_find, -1, &st, NULL) != SQLITE_OK) {
        snprintf(msg, msglen, "cannot read the ledger %s: %s", path,
                 db ? sqlite3_errmsg(db) : "out of memory");
        goto out;
    }
    sqlite3_bind_text(st, 1, request_id, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        from_row(st, out);
        rc = SB_OK;
    } else if (step == SQLITE_DONE) {
        snprintf(msg, msglen, "no call with request id %s in the ledger", request_id);
        rc = SB_ERR_NOT_FOUND;
    } else {
        snprintf(msg, msglen, "cannot read the ledger %s: %s", path, sqlite3_errmsg(db));
    }
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

enum sb_status ledger_find_request(struct ledger *l, const char *request_id,
                                   struct ledger_call_info *out, char *msg, size_t msglen)
{
    if (!l || !request_id || !*request_id) {
        snprintf(msg, msglen, "no ledger, or no request id");
        return SB_ERR_INVALID;
    }
    if (ledger_mem_find_info(l, request_id, out))
        return SB_OK;
    const char *path = ledger_path_peek(l);
    if (str_eq(path, ":memory:")) {
        snprintf(msg, msglen,
                 "no call with request id %s among the rows not written yet; the ledger is "
                 ":memory: (it keeps nothing): set ledger.path to look calls up later",
                 request_id);
        return SB_ERR_UNSUPPORTED;
    }
    return find_in_file(path, request_id, out, msg, msglen);
}

static void usd(double v, char *out, size_t n)
{
    if (v < 0)
        snprintf(out, n, "unknown");
    else
        snprintf(out, n, "$%.6f", v);
}

void ledger_call_info_text(const struct ledger_call_info *c, struct buf *out)
{
    char when[21], cost[32], retry[32], hedge[32];
    ledger_format_time(c->wall_ms, when);
    usd(c->cost_usd, cost, sizeof cost);
    usd(c->retry_cost_usd, retry, sizeof retry);
    usd(c->hedge_cost_usd, hedge, sizeof hedge);
    buf_printf(out, "request id  %s\n", c->request_id);
    buf_printf(out, "finished    %s\n", when);
    buf_printf(out, "route       %s\n", c->route[0] ? c->route : "- (direct call)");
    buf_printf(out, "target      %s%s%s\n", c->target[0] ? c->target : "-",
               c->model[0] ? "  model " : "", c->model);
    if (c->tag[0])
        buf_printf(out, "tag         %s\n", c->tag);
    buf_printf(out, "status      %d to the client", c->status);
    if (c->upstream_status > 0)
        buf_printf(out, ", last upstream %ld", c->upstream_status);
    buf_printf(out, "%s%s\n", c->error[0] ? ", error " : "", c->error);
    buf_printf(out, "attempts    %d (retries/fallbacks %d, hedges %d%s)\n", c->attempts, c->retries,
               c->hedges, c->hedged ? ", a hedge answered" : "");
    buf_printf(out, "latency     %.1f ms", (double)c->latency_us / 1000.0);
    if (c->ttft_us >= 0)
        buf_printf(out, ", first byte %.1f ms", (double)c->ttft_us / 1000.0);
    buf_puts(out, "\n");
    if (c->tokens_in >= 0)
        buf_printf(out, "tokens      %ld in, %ld out\n", c->tokens_in, c->tokens_out);
    buf_printf(out, "cost        %s%s (failed attempts %s, hedge losers %s)\n", cost,
               c->cached          ? " (from the cache)"
               : c->usage_missing ? " (usage not reported)"
                                  : "",
               retry, hedge);
    if (c->throttled)
        buf_puts(out, "refused     by a budget or the runaway guard\n");
}
