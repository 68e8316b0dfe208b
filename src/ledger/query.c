/*
 * query.c - the ledger's read side: today's and this month's spend rebuilt with SQL at start,
 * and the call rows a report aggregates. Each function opens its own read-only connection
 * (WAL lets it read while a `serve` process writes) and closes it before returning. Queries
 * are constant SQL with bound parameters. Any thread; no shared state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "switchboard/ledger.h"

#define DAY_MS 86400000LL

/* A call's spend as budgets count it (see ledger_call_spend): the answer's cost, or the
 * estimate when usage is missing, plus known retry and hedge costs. */
#define ANSWER_SQL "IFNULL(cost_usd, IFNULL(est_cost_usd, 0))"
#define TOTAL_SQL  "(" ANSWER_SQL " + IFNULL(retry_cost_usd, 0) + IFNULL(hedge_cost_usd, 0))"
#define SAVED_SQL                                                                                  \
    "(CASE WHEN baseline_cost_usd IS NOT NULL AND cost_usd IS NOT NULL"                            \
    " THEN baseline_cost_usd - cost_usd ELSE 0 END)"
/* ?1..?2 the day, ?3..?4 the month */
#define IN_DAY "ts_ms >= ?1 AND ts_ms < ?2"

static const struct {
    enum budget_scope scope;
    const char *sql;
} spend_queries[] = {
    {BUDGET_TARGET, "SELECT target, SUM(CASE WHEN " IN_DAY " THEN " ANSWER_SQL " ELSE 0 END),"
                    " SUM(" ANSWER_SQL ") FROM calls"
                    " WHERE ts_ms >= ?3 AND ts_ms < ?4 AND target <> '' AND cached = 0"
                    " GROUP BY target"},
    {BUDGET_ROUTE, "SELECT route, SUM(CASE WHEN " IN_DAY " THEN " TOTAL_SQL " ELSE 0 END),"
                   " SUM(" TOTAL_SQL ") FROM calls"
                   " WHERE ts_ms >= ?3 AND ts_ms < ?4 AND route <> '' GROUP BY route"},
    {BUDGET_TAG, "SELECT tag, SUM(CASE WHEN " IN_DAY " THEN " TOTAL_SQL " ELSE 0 END),"
                 " SUM(" TOTAL_SQL ") FROM calls"
                 " WHERE ts_ms >= ?3 AND ts_ms < ?4 AND tag IS NOT NULL GROUP BY tag"},
};

static const char sql_totals[] =
    "SELECT IFNULL(SUM(CASE WHEN " IN_DAY " THEN " TOTAL_SQL " ELSE 0 END), 0),"
    " IFNULL(SUM(" TOTAL_SQL "), 0),"
    " IFNULL(SUM(CASE WHEN " IN_DAY " THEN " SAVED_SQL " ELSE 0 END), 0),"
    " IFNULL(SUM(" SAVED_SQL "), 0)"
    " FROM calls WHERE ts_ms >= ?3 AND ts_ms < ?4";

static const char sql_rows[] =
    "SELECT ts_ms, request_id, route, target, model, tag, status, upstream_status, error,"
    " attempts, retries, hedges, hedged, tokens_in, tokens_out, tokens_cached, cost_usd,"
    " est_cost_usd, usage_missing, baseline_cost_usd, retry_cost_usd, hedge_cost_usd,"
    " latency_us, ttft_us, cached, throttled, prompt_hash"
    " FROM calls WHERE ts_ms >= ?1 AND ts_ms < ?2 ORDER BY ts_ms, id";

/* ---- connections ------------------------------------------------------------------------- */

static enum sb_status open_ro(const char *path, sqlite3 **db, char *msg, size_t msglen)
{
    *db = NULL;
    if (access(path, F_OK) != 0) {
        snprintf(msg, msglen, "no ledger at %s", path);
        return SB_ERR_NOT_FOUND;
    }
    int rc = sqlite3_open_v2(path, db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(*db, 5000);
    if (rc != SQLITE_OK) {
        snprintf(msg, msglen, "cannot open ledger %s: %s", path,
                 *db ? sqlite3_errmsg(*db) : sqlite3_errstr(rc));
        sqlite3_close(*db);
        *db = NULL;
        return SB_ERR_IO;
    }
    return SB_OK;
}

static enum sb_status prepare(sqlite3 *db, const char *path, const char *sql, sqlite3_stmt **st,
                              char *msg, size_t msglen)
{
    if (sqlite3_prepare_v2(db, sql, -1, st, NULL) == SQLITE_OK)
        return SB_OK;
    const char *why = sqlite3_errmsg(db);
    if (strstr(why, "no such table"))
        snprintf(msg, msglen, "%s is not a switchboard ledger (%s)", path, why);
    else
        snprintf(msg, msglen, "cannot read ledger %s: %s", path, why);
    return SB_ERR_IO;
}

static enum sb_status step_error(sqlite3 *db, const char *path, char *msg, size_t msglen)
{
    snprintf(msg, msglen, "cannot read ledger %s: %s", path, sqlite3_errmsg(db));
    return SB_ERR_IO;
}

/* ---- spend ------------------------------------------------------------------------------- */

void ledger_spend_init(struct ledger_spend *s)
{
    memset(s, 0, sizeof *s);
}

void ledger_spend_cleanup(struct ledger_spend *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->items[i].name);
    free(s->items);
    ledger_spend_init(s);
}

static void bind_windows(sqlite3_stmt *st, const struct ledger_spend *out)
{
    sqlite3_bind_int64(st, 1, out->day_start_ms);
    sqlite3_bind_int64(st, 2, out->day_start_ms + DAY_MS);
    sqlite3_bind_int64(st, 3, out->month_start_ms);
    sqlite3_bind_int64(st, 4, ledger_next_month_start(out->month_start_ms));
}

static enum sb_status load_scope(sqlite3 *db, const char *path, size_t q, struct ledger_spend *out,
                                 size_t *cap, char *msg, size_t msglen)
{
    sqlite3_stmt *st = NULL;
    enum sb_status status = prepare(db, path, spend_queries[q].sql, &st, msg, msglen);
    if (status != SB_OK)
        goto out;
    bind_windows(st, out);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        if (!name)
            continue;
        out->items = xgrow(out->items, cap, out->n + 1, sizeof *out->items);
        struct ledger_spend_item *it = &out->items[out->n++];
        it->scope = spend_queries[q].scope;
        it->name = xstrdup(name);
        it->day_usd = sqlite3_column_double(st, 1);
        it->month_usd = sqlite3_column_double(st, 2);
    }
    if (rc != SQLITE_DONE)
        status = step_error(db, path, msg, msglen);
out:
    sqlite3_finalize(st);
    return status;
}

static enum sb_status load_totals(sqlite3 *db, const char *path, struct ledger_spend *out,
                                  char *msg, size_t msglen)
{
    sqlite3_stmt *st = NULL;
    enum sb_status status = prepare(db, path, sql_totals, &st, msg, msglen);
    if (status != SB_OK)
        goto out;
    bind_windows(st, out);
    if (sqlite3_step(st) != SQLITE_ROW) {
        status = step_error(db, path, msg, msglen);
        goto out;
    }
    out->global_day_usd = sqlite3_column_double(st, 0);
    out->global_month_usd = sqlite3_column_double(st, 1);
    out->savings_day_usd = sqlite3_column_double(st, 2);
    out->savings_month_usd = sqlite3_column_double(st, 3);
out:
    sqlite3_finalize(st);
    return status;
}

enum sb_status ledger_load_spend(const char *path, int64_t now_wall_ms, struct ledger_spend *out,
                                 char *msg, size_t msglen)
{
    ledger_spend_cleanup(out);
    out->day_start_ms = ledger_day_start(now_wall_ms);
    out->month_start_ms = ledger_month_start(now_wall_ms);
    if (!path || !*path || str_eq(path, ":memory:"))
        return SB_OK;
    sqlite3 *db = NULL;
    size_t cap = 0;
    enum sb_status status = open_ro(path, &db, msg, msglen);
    if (status == SB_ERR_NOT_FOUND)
        return SB_OK; /* nothing recorded yet */
    for (size_t q = 0; status == SB_OK && q < SB_ARRAY_LEN(spend_queries); q++)
        status = load_scope(db, path, q, out, &cap, msg, msglen);
    if (status == SB_OK)
        status = load_totals(db, path, out, msg, msglen);
    sqlite3_close(db);
    if (status != SB_OK) {
        int64_t day = out->day_start_ms, month = out->month_start_ms;
        ledger_spend_cleanup(out);
        out->day_start_ms = day;
        out->month_start_ms = month;
    }
    return status;
}

/* ---- rows -------------------------------------------------------------------------------- */

static enum llm_errclass errclass_from_name(const char *name)
{
    if (!name)
        return LLM_ERR_NONE;
    for (int i = 1; i < LLM_ERRCLASS_COUNT; i++) {
        if (str_eq(llm_errclass_name((enum llm_errclass)i), name))
            return (enum llm_errclass)i;
    }
    return LLM_ERR_INTERNAL;
}

static double cost_or(sqlite3_stmt *st, int col)
{
    return sqlite3_column_type(st, col) == SQLITE_NULL ? -1 : sqlite3_column_double(st, col);
}

static const char *text(sqlite3_stmt *st, int col)
{
    return (const char *)sqlite3_column_text(st, col);
}

static void row_from(sqlite3_stmt *st, struct ledger_call *c)
{
    memset(c, 0, sizeof *c);
    c->wall_ms = sqlite3_column_int64(st, 0);
    c->request_id = text(st, 1);
    c->route = text(st, 2);
    c->target = text(st, 3);
    c->model = text(st, 4);
    c->tag = text(st, 5);
    c->status = sqlite3_column_int(st, 6);
    c->upstream_status = (long)sqlite3_column_int64(st, 7);
    c->err = errclass_from_name(text(st, 8));
    c->attempts = sqlite3_column_int(st, 9);
    c->retries = sqlite3_column_int(st, 10);
    c->hedges = sqlite3_column_int(st, 11);
    c->hedged = sqlite3_column_int(st, 12) != 0;
    c->usage.present = sqlite3_column_type(st, 13) != SQLITE_NULL;
    c->usage.input_tokens = (long)sqlite3_column_int64(st, 13);
    c->usage.output_tokens = (long)sqlite3_column_int64(st, 14);
    c->usage.cached_tokens = (long)sqlite3_column_int64(st, 15);
    c->cost_usd = sqlite3_column_double(st, 16);
    c->est_cost_usd = cost_or(st, 17);
    c->usage_missing = sqlite3_column_int(st, 18) != 0;
    c->baseline_cost_usd = cost_or(st, 19);
    c->retry_cost_usd = cost_or(st, 20);
    c->hedge_cost_usd = cost_or(st, 21);
    c->latency_us = sqlite3_column_int64(st, 22);
    c->ttft_us = sqlite3_column_type(st, 23) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 23);
    c->cached = sqlite3_column_int(st, 24) != 0;
    c->throttled = sqlite3_column_int(st, 25) != 0;
    c->prompt_hash = (uint64_t)sqlite3_column_int64(st, 26);
}

enum sb_status ledger_read_calls(const char *path, int64_t since_ms, int64_t until_ms,
                                 ledger_row_fn fn, void *ctx, char *msg, size_t msglen)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    enum sb_status status = open_ro(path, &db, msg, msglen);
    if (status != SB_OK)
        goto out;
    status = prepare(db, path, sql_rows, &st, msg, msglen);
    if (status != SB_OK)
        goto out;
    sqlite3_bind_int64(st, 1, since_ms);
    sqlite3_bind_int64(st, 2, until_ms);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct ledger_call c;
        row_from(st, &c);
        if (fn(ctx, &c) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (rc != SQLITE_DONE)
        status = step_error(db, path, msg, msglen);
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return status;
}
