/*
 * report.c - `switchboard report`'s figures: call rows grouped by target, route, tag or UTC
 * day, with exact nearest-rank latency percentiles (every successful call's latency is kept
 * and sorted), and the table, CSV and JSON renderings. Pure: rows in, text out; the caller
 * reads the rows (ledger_read_calls). Not thread-safe: one report per thread.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/ledger.h"

struct group {
    struct ledger_report_row row;
    double *lat_ms; /* successful calls' latencies */
    size_t n_lat, cap_lat;
    bool sorted;
};

struct ledger_report {
    enum ledger_report_by by;
    struct group *groups;
    size_t n, cap;
    size_t *index; /* open addressing over groups by key; SIZE_MAX = empty */
    size_t index_cap;
    struct group total;
    struct ledger_report_row *out; /* rendered rows (ledger_report_rows) */
};

static const char *const by_names[] = {"target", "route", "tag", "day"};
static const char *const format_names[] = {"table", "csv", "json"};

bool ledger_report_by_parse(const char *s, enum ledger_report_by *out)
{
    for (size_t i = 0; i < SB_ARRAY_LEN(by_names); i++) {
        if (str_eq(s, by_names[i])) {
            *out = (enum ledger_report_by)i;
            return true;
        }
    }
    return false;
}

bool ledger_report_format_parse(const char *s, enum ledger_report_format *out)
{
    for (size_t i = 0; i < SB_ARRAY_LEN(format_names); i++) {
        if (str_eq(s, format_names[i])) {
            *out = (enum ledger_report_format)i;
            return true;
        }
    }
    return false;
}

struct ledger_report *ledger_report_new(enum ledger_report_by by)
{
    struct ledger_report *r = xcalloc(1, sizeof *r);
    r->by = by;
    str_copy(r->total.row.key, sizeof r->total.row.key, "TOTAL");
    return r;
}

void ledger_report_free(struct ledger_report *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        free(r->groups[i].lat_ms);
    free(r->groups);
    free(r->index);
    free(r->total.lat_ms);
    free(r->out);
    free(r);
}

/* ---- grouping ------------------------------------------------------------------------------ */

static void reindex(struct ledger_report *r)
{
    free(r->index);
    r->index_cap = r->index_cap ? r->index_cap * 2 : 64;
    r->index = xmalloc(r->index_cap * sizeof *r->index);
    for (size_t i = 0; i < r->index_cap; i++)
        r->index[i] = SIZE_MAX;
    for (size_t g = 0; g < r->n; g++) {
        const char *k = r->groups[g].row.key;
        size_t h = (size_t)hash_fnv1a(k, strlen(k)) & (r->index_cap - 1);
        while (r->index[h] != SIZE_MAX)
            h = (h + 1) & (r->index_cap - 1);
        r->index[h] = g;
    }
}

static struct group *group_for(struct ledger_report *r, const char *key)
{
    if ((r->n + 1) * 2 > r->index_cap)
        reindex(r);
    size_t h = (size_t)hash_fnv1a(key, strlen(key)) & (r->index_cap - 1);
    while (r->index[h] != SIZE_MAX) {
        struct group *g = &r->groups[r->index[h]];
        if (str_eq(g->row.key, key))
            return g;
        h = (h + 1) & (r->index_cap - 1);
    }
    r->groups = xgrow(r->groups, &r->cap, r->n + 1, sizeof *r->groups);
    struct group *g = &r->groups[r->n];
    memset(g, 0, sizeof *g);
    str_copy(g->row.key, sizeof g->row.key, key);
    r->index[h] = r->n++;
    return g;
}

static void accumulate(struct group *g, const struct ledger_call *c)
{
    struct ledger_report_row *w = &g->row;
    w->calls++;
    w->errors += c->err != LLM_ERR_NONE;
    w->throttled += c->throttled;
    w->cached += c->cached;
    if (c->err == LLM_ERR_NONE) {
        g->lat_ms = xgrow(g->lat_ms, &g->cap_lat, g->n_lat + 1, sizeof *g->lat_ms);
        g->lat_ms[g->n_lat++] = (double)c->latency_us / 1000.0;
        g->sorted = false;
    }
    if (c->usage.present) {
        w->tokens_in += (uint64_t)c->usage.input_tokens;
        w->tokens_out += (uint64_t)c->usage.output_tokens;
        w->tokens_cached += (uint64_t)c->usage.cached_tokens;
    }
    if (c->usage_missing) {
        w->usage_missing++;
        if (c->est_cost_usd > 0)
            w->est_spend_usd += c->est_cost_usd;
    } else {
        w->spend_usd += c->cost_usd;
        if (c->baseline_cost_usd >= 0) {
            w->baseline_usd += c->baseline_cost_usd;
            w->baseline_spend_usd += c->cost_usd;
        }
    }
    w->savings_usd = w->baseline_usd - w->baseline_spend_usd;
    w->retries += (uint64_t)(c->retries > 0 ? c->retries : 0);
    w->hedges += (uint64_t)(c->hedges > 0 ? c->hedges : 0);
    if (c->retry_cost_usd > 0)
        w->retry_hedge_usd += c->retry_cost_usd;
    if (c->hedge_cost_usd > 0)
        w->retry_hedge_usd += c->hedge_cost_usd;
}

int ledger_report_add(void *ctx, const struct ledger_call *c)
{
    struct ledger_report *r = ctx;
    char day[11];
    const char *key = NULL;
    switch (r->by) {
    case LEDGER_BY_TARGET:
        key = c->target;
        break;
    case LEDGER_BY_ROUTE:
        key = c->route;
        break;
    case LEDGER_BY_TAG:
        key = c->tag;
        break;
    case LEDGER_BY_DAY:
        ledger_format_date(c->wall_ms, day);
        key = day;
        break;
    }
    accumulate(group_for(r, key && *key ? key : "(none)"), c);
    accumulate(&r->total, c);
    return 0;
}

/* ---- figures ------------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmp_rows(const void *a, const void *b)
{
    return strcmp(((const struct ledger_report_row *)a)->key,
                  ((const struct ledger_report_row *)b)->key);
}

/* Nearest rank: the value at position ceil(q * n) (1-based) of the sorted list. */
static double percentile(const double *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    size_t rank = (size_t)ceil(q * (double)n);
    if (rank < 1)
        rank = 1;
    return v[(rank > n ? n : rank) - 1];
}

static void finish(struct group *g)
{
    struct ledger_report_row *w = &g->row;
    if (!g->sorted && g->n_lat > 1)
        qsort(g->lat_ms, g->n_lat, sizeof *g->lat_ms, cmp_double);
    g->sorted = true;
    w->p50_ms = percentile(g->lat_ms, g->n_lat, 0.50);
    w->p95_ms = percentile(g->lat_ms, g->n_lat, 0.95);
    w->error_pct = w->calls ? 100.0 * (double)w->errors / (double)w->calls : 0;
}

size_t ledger_report_rows(struct ledger_report *r, const struct ledger_report_row **rows,
                          const struct ledger_report_row **total)
{
    free(r->out);
    r->out = xcalloc(r->n ? r->n : 1, sizeof *r->out);
    for (size_t i = 0; i < r->n; i++) {
        finish(&r->groups[i]);
        r->out[i] = r->groups[i].row;
    }
    qsort(r->out, r->n, sizeof *r->out, cmp_rows); /* ISO dates sort chronologically */
    finish(&r->total);
    *rows = r->out;
    *total = &r->total.row;
    return r->n;
}

/* ---- rendering ----------------------------------------------------------------------------- */

/* A key as a terminal may show it: invalid UTF-8 and control characters replaced. */
static void put_safe(struct buf *out, const char *s, size_t max)
{
    struct buf tmp;
    buf_init(&tmp);
    utf8_sanitize_append(&tmp, s, strnlen(s, max));
    for (size_t i = 0; i < tmp.len; i++) {
        unsigned char c = (unsigned char)tmp.data[i];
        buf_putc(out, c < 0x20 || c == 0x7f ? '?' : (char)c);
    }
    buf_cleanup(&tmp);
}

#define TABLE_HEAD                                                                                 \
    "%-*s %7s %6s %6s %8s %8s %10s %10s %10s %10s %10s %9s %9s %7s %6s %10s %6s %6s\n"

static void table_row(struct buf *out, int w, const struct ledger_report_row *x)
{
    struct buf key;
    buf_init(&key);
    put_safe(&key, x->key, 40);
    buf_printf(out,
               "%-*s %7llu %6llu %6.1f %8.1f %8.1f %10llu %10llu %10.4f %10.4f %10.4f %9llu "
               "%9.4f %7llu %6llu %10.4f %6llu %6llu\n",
               w, buf_str(&key), (unsigned long long)x->calls, (unsigned long long)x->errors,
               x->error_pct, x->p50_ms, x->p95_ms, (unsigned long long)x->tokens_in,
               (unsigned long long)x->tokens_out, x->spend_usd, x->baseline_usd, x->savings_usd,
               (unsigned long long)x->usage_missing, x->est_spend_usd,
               (unsigned long long)x->retries, (unsigned long long)x->hedges, x->retry_hedge_usd,
               (unsigned long long)x->cached, (unsigned long long)x->throttled);
    buf_cleanup(&key);
}

static void render_table(struct ledger_report *r, int64_t since_ms, int64_t until_ms,
                         struct buf *out)
{
    const struct ledger_report_row *rows, *total;
    size_t n = ledger_report_rows(r, &rows, &total);
    char from[21], to[21];
    ledger_format_time(since_ms, from);
    ledger_format_time(until_ms, to);
    buf_printf(out, "calls from %s to %s, by %s (UTC; latency of successful calls; $)\n\n", from,
               to, by_names[r->by]);
    int w = 6;
    for (size_t i = 0; i < n; i++) {
        int len = (int)strnlen(rows[i].key, 40);
        w = len > w ? len : w;
    }
    char head[16];
    snprintf(head, sizeof head, "%s", by_names[r->by]);
    for (char *p = head; *p; p++)
        *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
    buf_printf(out, TABLE_HEAD, w, head, "CALLS", "ERRORS", "ERR%", "P50ms", "P95ms", "TOK_IN",
               "TOK_OUT", "SPEND", "BASELINE", "SAVED", "NO_USAGE", "EST_SPEND", "RETRIES",
               "HEDGES", "RETRY+HEDGE", "CACHED", "THROTL");
    for (size_t i = 0; i < n; i++)
        table_row(out, w, &rows[i]);
    if (n == 0)
        buf_puts(out, "(no calls in this period)\n");
    table_row(out, w, total);
}

/* One field per RFC 4180 (quoted when it holds a comma, a quote, CR or LF, or edge spaces;
 * quotes doubled). A field a spreadsheet would run as a formula (a leading = + - @, tab or
 * CR: tags and names come from clients) gets a leading ' and quotes (OWASP's advice). */
static void csv_field(struct buf *out, const char *s)
{
    bool formula = *s && strchr("=+-@\t\r", s[0]) != NULL;
    bool quote = formula || strpbrk(s, ",\"\r\n") != NULL ||
                 (*s && (s[0] == ' ' || s[strlen(s) - 1] == ' '));
    if (!quote) {
        buf_puts(out, s);
        return;
    }
    buf_putc(out, '"');
    if (formula)
        buf_putc(out, '\'');
    for (; *s; s++) {
        if (*s == '"')
            buf_putc(out, '"');
        buf_putc(out, *s);
    }
    buf_putc(out, '"');
}

static void csv_row(struct buf *out, const struct ledger_report_row *x)
{
    csv_field(out, x->key);
    buf_printf(out,
               ",%llu,%llu,%.2f,%.3f,%.3f,%llu,%llu,%llu,%.6f,%.6f,%.6f,%.6f,%llu,%llu,%llu,%.6f,"
               "%llu,%llu\r\n",
               (unsigned long long)x->calls, (unsigned long long)x->errors, x->error_pct, x->p50_ms,
               x->p95_ms, (unsigned long long)x->tokens_in, (unsigned long long)x->tokens_out,
               (unsigned long long)x->tokens_cached, x->spend_usd, x->est_spend_usd,
               x->baseline_usd, x->savings_usd, (unsigned long long)x->usage_missing,
               (unsigned long long)x->retries, (unsigned long long)x->hedges, x->retry_hedge_usd,
               (unsigned long long)x->cached, (unsigned long long)x->throttled);
}

static void render_csv(struct ledger_report *r, struct buf *out)
{
    const struct ledger_report_row *rows, *total;
    size_t n = ledger_report_rows(r, &rows, &total);
    buf_printf(out,
               "%s,calls,errors,error_pct,p50_ms,p95_ms,tokens_in,tokens_out,tokens_cached,"
               "spend_usd,est_spend_usd,baseline_usd,savings_usd,usage_missing,retries,"
               "hedges,retry_hedge_usd,cached,throttled\r\n",
               by_names[r->by]);
    for (size_t i = 0; i < n; i++)
        csv_row(out, &rows[i]);
    csv_row(out, total);
}

static void json_num(struct buf *out, const char *key, double v, bool comma)
{
    buf_printf(out, "\"%s\":%.10g%s", key, isfinite(v) ? v : 0.0, comma ? "," : "");
}

static void json_row(struct buf *out, const char *by, const struct ledger_report_row *x)
{
    struct buf key;
    buf_init(&key);
    utf8_sanitize_append(&key, x->key, strlen(x->key));
    buf_printf(out, "{\"%s\":", by);
    buf_put_json_string(out, buf_str(&key), key.len);
    buf_cleanup(&key);
    buf_printf(out, ",\"calls\":%llu,\"errors\":%llu,", (unsigned long long)x->calls,
               (unsigned long long)x->errors);
    json_num(out, "error_pct", x->error_pct, true);
    json_num(out, "p50_ms", x->p50_ms, true);
    json_num(out, "p95_ms", x->p95_ms, true);
    buf_printf(out, "\"tokens_in\":%llu,\"tokens_out\":%llu,\"tokens_cached\":%llu,",
               (unsigned long long)x->tokens_in, (unsigned long long)x->tokens_out,
               (unsigned long long)x->tokens_cached);
    json_num(out, "spend_usd", x->spend_usd, true);
    json_num(out, "est_spend_usd", x->est_spend_usd, true);
    json_num(out, "baseline_usd", x->baseline_usd, true);
    json_num(out, "savings_usd", x->savings_usd, true);
    buf_printf(out, "\"usage_missing\":%llu,\"retries\":%llu,\"hedges\":%llu,",
               (unsigned long long)x->usage_missing, (unsigned long long)x->retries,
               (unsigned long long)x->hedges);
    json_num(out, "retry_hedge_usd", x->retry_hedge_usd, true);
    buf_printf(out, "\"cached\":%llu,\"throttled\":%llu}", (unsigned long long)x->cached,
               (unsigned long long)x->throttled);
}

static void render_json(struct ledger_report *r, int64_t since_ms, int64_t until_ms,
                        struct buf *out)
{
    const struct ledger_report_row *rows, *total;
    size_t n = ledger_report_rows(r, &rows, &total);
    char from[21], to[21];
    ledger_format_time(since_ms, from);
    ledger_format_time(until_ms, to);
    buf_printf(out, "{\"by\":\"%s\",\"since\":\"%s\",\"until\":\"%s\",\"groups\":[",
               by_names[r->by], from, to);
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_putc(out, ',');
        json_row(out, by_names[r->by], &rows[i]);
    }
    buf_puts(out, "],\"total\":");
    json_row(out, by_names[r->by], total);
    buf_puts(out, "}\n");
}

void ledger_report_render(struct ledger_report *r, enum ledger_report_format f, int64_t since_ms,
                          int64_t until_ms, struct buf *out)
{
    switch (f) {
    case LEDGER_FORMAT_TABLE:
        render_table(r, since_ms, until_ms, out);
        return;
    case LEDGER_FORMAT_CSV:
        render_csv(r, out);
        return;
    case LEDGER_FORMAT_JSON:
        render_json(r, since_ms, until_ms, out);
        return;
    }
}
