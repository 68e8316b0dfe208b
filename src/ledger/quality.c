/*
 * quality.c - what the answers were worth, per target, route, tag, user or client key: the
 * share of calls the client abandoned, how the answers ended, the feedback on them, and
 * spend per call and per satisfied answer. Counted in SQL over the calls and feedback tables
 * (two GROUP BY queries, bound parameters, constant SQL per grouping), merged and derived
 * here; the derivation and the rendering are pure.
 *
 * Threads: any; each load opens its own read-only connection and closes it before returning.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "switchboard/ledger.h"
#include "internal.h"

#define NONE_KEY "(none)"

/* What budgets count (query.c's TOTAL_SQL) and the savings against the baseline. */
#define SPEND_SQL                                                                                  \
    "(IFNULL(cost_usd, IFNULL(est_cost_usd, 0)) + IFNULL(retry_cost_usd, 0) +"                     \
    " IFNULL(hedge_cost_usd, 0))"
#define SAVED_SQL                                                                                  \
    "(CASE WHEN baseline_cost_usd IS NOT NULL AND cost_usd IS NOT NULL"                            \
    " THEN baseline_cost_usd - cost_usd ELSE 0 END)"
#define CALLS_SQL(g)                                                                               \
    "SELECT " g ", COUNT(*), SUM(status = 200), SUM(status = 499), SUM(throttled),"                \
    " SUM(status = 200 AND (finish IS NULL OR finish IN ('stop', 'tool_calls'))),"                 \
    " SUM(status = 200 AND finish = 'length'), SUM(finish = 'content_filter'),"                    \
    " SUM(error = 'truncated'),"                                                                   \
    " SUM(status <> 200 AND status <> 499 AND throttled = 0 AND IFNULL(error, '') <> "             \
    "'truncated'),"                                                                                \
    " SUM(" SPEND_SQL "), SUM(" SAVED_SQL ")"                                                      \
    " FROM calls WHERE ts_ms >= ?1 AND ts_ms < ?2 GROUP BY 1 ORDER BY 1"
#define FEEDBACK_SQL(g)                                                                            \
    "SELECT " g ", COUNT(*), SUM(score < 0), SUM(source = 'console'), SUM(score),"                 \
    " SUM(score < 0 AND request_id IS NOT NULL AND call_status = 200)"                             \
    " FROM feedback WHERE call_ts_ms >= ?1 AND call_ts_ms < ?2 GROUP BY 1 ORDER BY 1"

static const struct {
    const char *name;
    const char *calls_sql;
    const char *feedback_sql;
} groupings[] = {
    [LEDGER_QBY_TARGET] = {"target", CALLS_SQL("target"), FEEDBACK_SQL("target")},
    [LEDGER_QBY_ROUTE] = {"route", CALLS_SQL("route"), FEEDBACK_SQL("route")},
    [LEDGER_QBY_TAG] = {"tag", CALLS_SQL("IFNULL(tag, '')"), FEEDBACK_SQL("IFNULL(tag, '')")},
    [LEDGER_QBY_USER] = {"user", CALLS_SQL("IFNULL(user, '')"), FEEDBACK_SQL("IFNULL(user, '')")},
    [LEDGER_QBY_CLIENT] = {"client", CALLS_SQL("IFNULL(client, '')"),
                           FEEDBACK_SQL("IFNULL(client, '')")},
    [LEDGER_QBY_ROUTE_TARGET] = {"route_target", CALLS_SQL("route || '/' || target"),
                                 FEEDBACK_SQL("route || '/' || target")},
};

bool ledger_quality_by_parse(const char *s, enum ledger_quality_by *out)
{
    for (size_t i = 0; i < SB_ARRAY_LEN(groupings); i++) {
        if (str_eq(s, groupings[i].name)) {
            *out = (enum ledger_quality_by)i;
            return true;
        }
    }
    return false;
}

const char *ledger_quality_by_name(enum ledger_quality_by by)
{
    return groupings[by].name;
}

/* ---- derived figures (pure) ------------------------------------------------------------------ */

static double ratio(double num, double den, double none)
{
    return den > 0 ? num / den : none;
}

void ledger_quality_derive(struct ledger_quality_row *r, uint64_t min_volume)
{
    r->has_satisfaction = r->feedback > 0 && r->feedback >= min_volume;
    r->satisfaction = r->has_satisfaction ? r->score_sum / (double)r->feedback : 0;
    r->negative_share = r->has_satisfaction ? (double)r->negative / (double)r->feedback : 0;
    r->abandonment = ratio((double)r->abandoned, (double)r->calls, 0);
    uint64_t finished = r->calls - r->abandoned - r->throttled;
    r->completion = r->calls >= r->abandoned + r->throttled
                        ? ratio((double)r->complete, (double)finished, -1)
                        : -1;
    r->satisfied = r->answered > r->answered_negative ? r->answered - r->answered_negative : 0;
    r->cost_per_call = ratio(r->spend_usd, (double)r->calls, -1);
    r->cost_per_satisfied = ratio(r->spend_usd, (double)r->satisfied, -1);
    r->savings_per_satisfied = ratio(r->savings_usd, (double)r->satisfied, -1);
}

/* ---- loading -----------------------------------------------------------------------------------
 */

void ledger_quality_init(struct ledger_quality *q)
{
    memset(q, 0, sizeof *q);
    str_copy(q->total.key, sizeof q->total.key, "TOTAL");
}

void ledger_quality_cleanup(struct ledger_quality *q)
{
    if (!q)
        return;
    free(q->rows);
    ledger_quality_init(q);
}

void quality_begin(struct ledger_quality *out, enum ledger_quality_by by, int64_t since_ms,
                   int64_t until_ms, uint64_t min_volume)
{
    ledger_quality_cleanup(out);
    out->by = by;
    out->since_ms = since_ms;
    out->until_ms = until_ms;
    out->min_volume = min_volume;
}

static int row_cmp(const void *a, const void *b)
{
    return strcmp(((const struct ledger_quality_row *)a)->key,
                  ((const struct ledger_quality_row *)b)->key);
}

static int key_cmp(const void *key, const void *row)
{
    return strcmp(key, ((const struct ledger_quality_row *)row)->key);
}

/* The group's row (added, zeroed, when new; rows are kept sorted by the caller). */
static struct ledger_quality_row *row_for(struct ledger_quality *q, size_t *cap, const char *key,
                                          size_t sorted)
{
    char k[sizeof q->rows[0].key]; /* keys are kept cut to this: look them up the same way */
    str_copy(k, sizeof k, key);
    struct ledger_quality_row *r =
        sorted ? bsearch(k, q->rows, sorted, sizeof *q->rows, key_cmp) : NULL;
    if (r)
        return r;
    q->rows = xgrow(q->rows, cap, q->n + 1, sizeof *q->rows);
    r = &q->rows[q->n++];
    memset(r, 0, sizeof *r);
    str_copy(r->key, sizeof r->key, k);
    return r;
}

static uint64_t col_u(sqlite3_stmt *st, int i)
{
    sqlite3_int64 v = sqlite3_column_int64(st, i);
    return v > 0 ? (uint64_t)v : 0;
}

static void add_calls(struct ledger_quality_row *r, sqlite3_stmt *st)
{
    r->calls += col_u(st, 1);
    r->answered += col_u(st, 2);
    r->abandoned += col_u(st, 3);
    r->throttled += col_u(st, 4);
    r->complete += col_u(st, 5);
    r->length += col_u(st, 6);
    r->content_filter += col_u(st, 7);
    r->truncated += col_u(st, 8);
    r->errors += col_u(st, 9);
    r->spend_usd += sqlite3_column_double(st, 10);
    r->savings_usd += sqlite3_column_double(st, 11);
}

static void add_feedback(struct ledger_quality_row *r, sqlite3_stmt *st)
{
    r->feedback += col_u(st, 1);
    r->negative += col_u(st, 2);
    r->console += col_u(st, 3);
    r->score_sum += sqlite3_column_double(st, 4);
    r->answered_negative += col_u(st, 5);
}

/* Runs one grouping query and adds its rows. SQLITE_OK, or the failing code. */
static int run(sqlite3 *db, const char *sql, struct ledger_quality *q, size_t *cap, bool calls)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        goto out;
    sqlite3_bind_int64(st, 1, q->since_ms);
    sqlite3_bind_int64(st, 2, q->until_ms);
    size_t sorted = q->n;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *k = sqlite3_column_text(st, 0);
        const char *key = k && *k ? (const char *)k : NONE_KEY;
        struct ledger_quality_row *r = row_for(q, cap, key, sorted);
        if (calls) {
            add_calls(r, st);
            add_calls(&q->total, st);
        } else {
            add_feedback(r, st);
            add_feedback(&q->total, st);
        }
    }
    rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    if (q->n > 1)
        qsort(q->rows, q->n, sizeof *q->rows, row_cmp);
out:
    sqlite3_finalize(st);
    return rc;
}

static _Atomic uint64_t loads;

uint64_t ledger_quality_loads(void)
{
    return loads;
}

static bool has_quality_schema(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    bool yes = sqlite3_prepare_v2(db, "SELECT 1 FROM feedback LIMIT 0", -1, &st, NULL) == SQLITE_OK;
    sqlite3_finalize(st);
    return yes;
}

enum sb_status ledger_quality_load(const char *path, enum ledger_quality_by by, int64_t since_ms,
                                   int64_t until_ms, uint64_t min_volume,
                                   struct ledger_quality *out, char *msg, size_t msglen)
{
    sqlite3 *db = NULL;
    enum sb_status status = SB_OK;
    size_t cap = 0;
    quality_begin(out, by, since_ms, until_ms, min_volume);
    if (str_eq(path, ":memory:") || access(path, F_OK) != 0)
        goto out;
    loads++;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(db, 5000);
    if (rc == SQLITE_OK && !has_quality_schema(db))
        goto out; /* a ledger from before quality */
    if (rc == SQLITE_OK)
        rc = run(db, groupings[by].calls_sql, out, &cap, true);
    if (rc == SQLITE_OK)
        rc = run(db, groupings[by].feedback_sql, out, &cap, false);
    if (rc != SQLITE_OK) {
        snprintf(msg, msglen, "cannot read ledger %s: %s", path,
                 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        status = SB_ERR_IO;
    }
out:
    sqlite3_close(db);
    for (size_t i = 0; i < out->n; i++)
        ledger_quality_derive(&out->rows[i], min_volume);
    ledger_quality_derive(&out->total, min_volume);
    return status;
}

/* ---- rendering (pure) ------------------------------------------------------------------------ */

/* "  n/a" for figures not shown (too little feedback, nothing to divide by). */
static void cell_pct(struct buf *out, bool shown, double v)
{
    if (shown)
        buf_printf(out, " %8.1f%%", v * 100);
    else
        buf_printf(out, " %9s", "n/a");
}

static void cell_usd(struct buf *out, double v)
{
    if (v >= 0)
        buf_printf(out, " %11.6f", v);
    else
        buf_printf(out, " %11s", "n/a");
}

static void table_row(struct buf *out, int w, const struct ledger_quality_row *r)
{
    buf_printf(out, "%-*.*s %7llu %6llu", w, w, r->key, (unsigned long long)r->calls,
               (unsigned long long)r->feedback);
    if (r->has_satisfaction)
        buf_printf(out, " %6.2f", r->satisfaction);
    else
        buf_printf(out, " %6s", "n/a");
    cell_pct(out, r->has_satisfaction, r->negative_share);
    cell_pct(out, r->calls > 0, r->abandonment);
    cell_pct(out, r->completion >= 0, r->completion);
    buf_printf(out, " %7llu", (unsigned long long)r->satisfied);
    cell_usd(out, r->cost_per_call);
    cell_usd(out, r->cost_per_satisfied);
    cell_usd(out, r->savings_per_satisfied);
    buf_putc(out, '\n');
}

static void render_table(const struct ledger_quality *q, struct buf *out)
{
    char from[21], to[21];
    ledger_format_time(q->since_ms, from);
    ledger_format_time(q->until_ms, to);
    buf_printf(out,
               "quality from %s to %s, by %s (UTC; satisfaction shown from %llu ratings; "
               "score -1..1; $)\n\n",
               from, to, groupings[q->by].name, (unsigned long long)q->min_volume);
    int w = 8;
    for (size_t i = 0; i < q->n; i++) {
        int len = (int)strlen(q->rows[i].key);
        w = len > w ? (len < 40 ? len : 40) : w;
    }
    buf_printf(out, "%-*s %7s %6s %6s %9s %9s %9s %7s %11s %11s %11s\n", w, groupings[q->by].name,
               "CALLS", "RATED", "SCORE", "NEG%", "ABANDON%", "COMPLETE%", "SATISF", "$/CALL",
               "$/SATISF", "SAVED/SAT");
    for (size_t i = 0; i < q->n; i++)
        table_row(out, w, &q->rows[i]);
    if (q->n == 0)
        buf_puts(out, "(no calls in this period)\n");
    table_row(out, w, &q->total);
}

static void csv_key(struct buf *out, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        buf_puts(out, s);
        return;
    }
    buf_putc(out, '"');
    for (; *s; s++) {
        if (*s == '"')
            buf_putc(out, '"');
        buf_putc(out, *s);
    }
    buf_putc(out, '"');
}

/* An optional figure: empty in CSV, null in JSON. */
static void opt_num(struct buf *out, bool shown, double v, const char *none)
{
    if (shown && isfinite(v))
        buf_printf(out, "%.10g", v);
    else
        buf_puts(out, none);
}

static void csv_row(struct buf *out, const struct ledger_quality_row *r)
{
    csv_key(out, r->key);
    buf_printf(out, ",%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,",
               (unsigned long long)r->calls, (unsigned long long)r->answered,
               (unsigned long long)r->abandoned, (unsigned long long)r->throttled,
               (unsigned long long)r->complete, (unsigned long long)r->length,
               (unsigned long long)r->content_filter, (unsigned long long)r->truncated,
               (unsigned long long)r->errors, (unsigned long long)r->feedback,
               (unsigned long long)r->negative);
    opt_num(out, r->has_satisfaction, r->satisfaction, "");
    buf_putc(out, ',');
    opt_num(out, r->has_satisfaction, r->negative_share, "");
    buf_printf(out, ",%.10g,", r->abandonment);
    opt_num(out, r->completion >= 0, r->completion, "");
    buf_printf(out, ",%llu,%.10g,", (unsigned long long)r->satisfied, r->spend_usd);
    opt_num(out, r->cost_per_call >= 0, r->cost_per_call, "");
    buf_putc(out, ',');
    opt_num(out, r->cost_per_satisfied >= 0, r->cost_per_satisfied, "");
    buf_printf(out, ",%.10g,", r->savings_usd);
    opt_num(out, r->savings_per_satisfied >= 0, r->savings_per_satisfied, "");
    buf_puts(out, "\r\n");
}

static void render_csv(const struct ledger_quality *q, struct buf *out)
{
    buf_printf(out,
               "%s,calls,answered,abandoned,throttled,complete,length,content_filter,truncated,"
               "errors,feedback,negative,satisfaction,negative_share,abandonment,completion,"
               "satisfied,spend_usd,cost_per_call_usd,cost_per_satisfied_usd,savings_usd,"
               "savings_per_satisfied_usd\r\n",
               groupings[q->by].name);
    for (size_t i = 0; i < q->n; i++)
        csv_row(out, &q->rows[i]);
    csv_row(out, &q->total);
}

static void json_opt(struct buf *out, const char *key, bool shown, double v)
{
    buf_printf(out, ",\"%s\":", key);
    opt_num(out, shown, v, "null");
}

void ledger_quality_row_json(const struct ledger_quality_row *r, const char *key_name,
                             struct buf *out)
{
    struct buf key;
    buf_init(&key);
    utf8_sanitize_append(&key, r->key, strlen(r->key));
    buf_printf(out, "{\"%s\":", key_name);
    buf_put_json_string(out, buf_str(&key), key.len);
    buf_cleanup(&key);
    buf_printf(out,
               ",\"calls\":%llu,\"answered\":%llu,\"abandoned\":%llu,\"throttled\":%llu,"
               "\"complete\":%llu,\"length\":%llu,\"content_filter\":%llu,\"truncated\":%llu,"
               "\"errors\":%llu,\"feedback\":%llu,\"negative\":%llu,\"console\":%llu",
               (unsigned long long)r->calls, (unsigned long long)r->answered,
               (unsigned long long)r->abandoned, (unsigned long long)r->throttled,
               (unsigned long long)r->complete, (unsigned long long)r->length,
               (unsigned long long)r->content_filter, (unsigned long long)r->truncated,
               (unsigned long long)r->errors, (unsigned long long)r->feedback,
               (unsigned long long)r->negative, (unsigned long long)r->console);
    json_opt(out, "satisfaction", r->has_satisfaction, r->satisfaction);
    json_opt(out, "negative_share", r->has_satisfaction, r->negative_share);
    json_opt(out, "abandonment", r->calls > 0, r->abandonment);
    json_opt(out, "completion", r->completion >= 0, r->completion);
    buf_printf(out, ",\"satisfied\":%llu", (unsigned long long)r->satisfied);
    json_opt(out, "spend_usd", true, r->spend_usd);
    json_opt(out, "cost_per_call_usd", r->cost_per_call >= 0, r->cost_per_call);
    json_opt(out, "cost_per_satisfied_usd", r->cost_per_satisfied >= 0, r->cost_per_satisfied);
    json_opt(out, "savings_usd", true, r->savings_usd);
    json_opt(out, "savings_per_satisfied_usd", r->savings_per_satisfied >= 0,
             r->savings_per_satisfied);
    buf_putc(out, '}');
}

static void render_json(const struct ledger_quality *q, struct buf *out)
{
    char from[21], to[21];
    ledger_format_time(q->since_ms, from);
    ledger_format_time(q->until_ms, to);
    const char *by = groupings[q->by].name;
    buf_printf(out,
               "{\"by\":\"%s\",\"since\":\"%s\",\"until\":\"%s\",\"min_volume\":%llu,"
               "\"groups\":[",
               by, from, to, (unsigned long long)q->min_volume);
    for (size_t i = 0; i < q->n; i++) {
        if (i)
            buf_putc(out, ',');
        ledger_quality_row_json(&q->rows[i], by, out);
    }
    buf_puts(out, "],\"total\":");
    ledger_quality_row_json(&q->total, by, out);
    buf_puts(out, "}\n");
}

void ledger_quality_render(const struct ledger_quality *q, enum ledger_report_format f,
                           struct buf *out)
{
    switch (f) {
    case LEDGER_FORMAT_TABLE:
        render_table(q, out);
        return;
    case LEDGER_FORMAT_CSV:
        render_csv(q, out);
        return;
    case LEDGER_FORMAT_JSON:
        render_json(q, out);
        return;
    }
}
