/*
 * columns.c - the board's column table: title, width, priority (which drop first on a narrow
 * terminal), alignment and sort order, and how each cell renders. console_layout decides
 * what fits; this file only describes and draws.
 *
 * Main thread only.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

struct col_def {
    const char *title;
    enum col_id id;
    int width;
    int priority;
    bool right;
    bool flex;
    bool sortable;
};

/* Display order. Priority 0 always shows; 1 is what an incident needs; 8 is nice to have. */
static const struct col_def cols[COL_COUNT] = {
    {"TARGET", COL_NAME, 0, 0, false, false, true},
    {"STATE", COL_STATE, 11, 0, false, false, true},
    {"OVR", COL_OVR, 4, 2, false, false, false},
    {"FORMAT/MODEL", COL_MODEL, 17, 5, false, false, true},
    {"W", COL_WEIGHT, 5, 2, true, false, true},
    {"SHARE", COL_SHARE, 5, 2, true, false, true},
    {"REQ/S", COL_RPS, 5, 1, true, false, true},
    {"NOW", COL_RPS10, 5, 1, true, false, true},
    {"CALLS", COL_CALLS, 5, 3, true, false, true},
    {"ERRS", COL_ERRS, 5, 5, true, false, true},
    {"ERR%", COL_ERRPCT, 5, 1, true, false, true},
    {"P50", COL_P50, 5, 5, true, false, true},
    {"P95", COL_P95, 5, 1, true, false, true},
    {"P99", COL_P99, 5, 4, true, false, true},
    {"TTFT", COL_TTFT, 5, 4, true, false, true},
    {"INFL", COL_INFL, 4, 5, true, false, true},
    {"TOK IN/OUT", COL_TOKENS, 11, 6, true, false, true},
    {"SPEND", COL_SPEND, 8, 2, true, false, true},
    {"TR/HG", COL_TRHG, 7, 7, true, false, true},
    {"PROBE", COL_PROBE, 8, 5, false, false, true},
    {"WIN", COL_WIN, 4, 6, true, false, true},
    {"REQ/S 60s", COL_SPARK, 10, 3, false, false, false},
    {"NOTE", COL_NOTE, 12, 8, false, true, false},
};

const char *columns_title(enum col_id c)
{
    return cols[c].title;
}

bool columns_sortable(enum col_id c)
{
    return cols[c].sortable;
}

static int name_width(const struct ui *ui)
{
    int w = 6;
    for (size_t i = 0; ui->have_snap && i < ui->snap->n_targets; i++) {
        int n = text_width(ui->snap->targets[i].name, strlen(ui->snap->targets[i].name));
        w = n > w ? n : w;
    }
    return w > 20 ? 20 : w;
}

size_t columns_layout(const struct ui *ui, int width, struct console_place *out)
{
    struct console_col spec[COL_COUNT];
    for (size_t i = 0; i < COL_COUNT; i++) {
        spec[i] = (struct console_col){cols[i].width, cols[i].priority, cols[i].flex};
        if (cols[i].id == COL_NAME)
            spec[i].width = name_width(ui);
        if (cols[i].id == COL_WIN && ui->n_votes > 0)
            spec[i].priority = 1; /* once there are votes, the win rate shows at 80 columns */
    }
    return console_layout(width, spec, COL_COUNT, 1, out);
}

void columns_draw_titles(struct ui *ui, int y, const struct console_place *pl, size_t n)
{
    attr_t a = ui->attr[THEME_TITLE];
    draw_fill(y, 0, COLS, a);
    for (size_t i = 0; i < n; i++) {
        const struct col_def *d = &cols[pl[i].col];
        char t[48];
        const char *arrow = "";
        if (ui->sort_col == (int)d->id)
            arrow = ui->utf8 ? (ui->sort_desc ? "▼" : "▲") : (ui->sort_desc ? "v" : "^");
        if (d->right)
            snprintf(t, sizeof t, "%s%s", arrow, d->title);
        else
            snprintf(t, sizeof t, "%s%s", d->title, arrow);
        if (d->right)
            draw_text_right(ui, y, pl[i].x, pl[i].width, t, a);
        else
            draw_text(ui, y, pl[i].x, pl[i].width, t, a);
    }
}

/* ---- cells ---------------------------------------------------------------------------------- */

static double win_rate(const struct ui *ui, const char *name, bool *have)
{
    const struct ui_vote *v = board_vote(ui, name);
    *have = v && v->comparisons > 0;
    return *have ? (double)v->wins / (double)v->comparisons : 0;
}

static void note_text(const struct router_target_snap *t, char *out, size_t n)
{
    char age[16];
    if (!t->enabled)
        snprintf(out, n, "%s", t->disabled_reason);
    else if (t->breaker != BREAKER_CLOSED)
        snprintf(out, n, "%s", t->breaker_reason);
    else if (t->rate_limited)
        snprintf(out, n, "%s", t->rate_limit_reason);
    else if (t->probe_enabled && t->probe_age_ms >= 0 && !t->probe_ok)
        snprintf(out, n, "probe failed: %s", t->probe_error);
    else if (t->stats.last_error[0] && t->last_error_age_ms >= 0 && t->last_error_age_ms < 60000) {
        fmt_age(t->last_error_age_ms, age, sizeof age);
        snprintf(out, n, "%s ago: %s", age, t->stats.last_error);
    } else
        out[0] = '\0';
}

static void ovr_text(const struct router_target_snap *t, char *out, size_t n)
{
    snprintf(out, n, "%s%s%s%s", t->weight != t->configured_weight ? "W" : "",
             t->forced_live ? "F" : "", t->pinned ? "P" : "", t->drained ? "D" : "");
}

static void probe_text(const struct router_target_snap *t, char *out, size_t n, enum theme_elem *e)
{
    char age[16];
    if (!t->probe_enabled) {
        snprintf(out, n, "off");
        *e = THEME_DIM;
        return;
    }
    if (t->probe_age_ms < 0) {
        snprintf(out, n, "-");
        return;
    }
    fmt_age(t->probe_age_ms, age, sizeof age);
    snprintf(out, n, "%s %s", t->probe_ok ? "ok" : "FAIL", age);
    *e = t->probe_ok ? THEME_HEALTHY : THEME_BREAKER_OPEN;
}

/* "528.9k/1.2M", or shorter forms of both when that does not fit w cells. */
static void pair_text(uint64_t a, uint64_t b, int w, char *out, size_t n)
{
    char x[24], y[24];
    fmt_count(a, x, sizeof x);
    fmt_count(b, y, sizeof y);
    if ((int)(strlen(x) + strlen(y)) + 1 > w) {
        int half = (w - 1) / 2 > 4 ? (w - 1) / 2 : 4;
        fmt_count_fit(a, half, x, sizeof x);
        fmt_count_fit(b, half, y, sizeof y);
    }
    snprintf(out, n, "%s/%s", x, y);
}

static void errpct_text(double pct, bool idle, char *out, size_t n, enum theme_elem *e)
{
    if (idle) {
        snprintf(out, n, "-");
        *e = THEME_DIM;
        return;
    }
    snprintf(out, n, pct >= 10 || pct == 0 ? "%.0f%%" : "%.1f%%", pct);
    if (pct >= 5)
        *e = THEME_BREAKER_OPEN;
    else if (pct > 0)
        *e = THEME_DEGRADED;
}

static void weight_text(double w, char *out, size_t n)
{
    if (w == floor(w) && w < 1e6)
        snprintf(out, n, "%.0f", w);
    else
        snprintf(out, n, "%.2g", w);
}

/* A cell w cells wide. A target without traffic over the last minute shows a dash for its
 * rates and percentiles rather than what is left of an old window. */
static void cell(const struct ui *ui, enum col_id c, const struct router_target_snap *t, int w,
                 char *out, size_t n, enum theme_elem *e)
{
    const struct stats_summary *s = &t->stats;
    bool have, idle = board_no_traffic(t);
    *e = THEME_ROW;
    out[0] = '\0';
    switch (c) {
    case COL_NAME:
        snprintf(out, n, "%s", t->name);
        break;
    case COL_STATE:
        board_state_text(t, out, n, e);
        break;
    case COL_OVR:
        ovr_text(t, out, n);
        *e = THEME_FORCED;
        break;
    case COL_MODEL:
        snprintf(out, n, "%s/%s", str_eq(t->kind, "openai-compatible") ? "compat" : t->kind,
                 t->model);
        break;
    case COL_WEIGHT:
        weight_text(t->weight, out, n);
        if (t->weight != t->configured_weight)
            *e = THEME_FORCED;
        break;
    case COL_SHARE:
        snprintf(out, n, "%.0f%%", t->traffic_share * 100);
        break;
    case COL_RPS:
        fmt_rate(s->req_per_s, w, out, n);
        break;
    case COL_RPS10:
        fmt_rate(board_rate_10s(s->rate_series), w, out, n);
        break;
    case COL_CALLS:
        fmt_count_fit(s->calls, w, out, n);
        break;
    case COL_ERRS:
        fmt_count_fit(s->failures, w, out, n);
        break;
    case COL_ERRPCT:
        errpct_text(s->error_pct_1m, idle, out, n, e);
        break;
    case COL_P50:
    case COL_P95:
    case COL_P99:
        fmt_ms(idle ? 0 : s->latency_1m[c - COL_P50], out, n);
        break;
    case COL_TTFT:
        fmt_ms(idle ? 0 : s->ttft_1m[1], out, n);
        break;
    case COL_INFL:
        snprintf(out, n, "%ld", s->in_flight);
        break;
    case COL_TOKENS:
        pair_text(s->tokens_in, s->tokens_out, w, out, n);
        break;
    case COL_SPEND:
        fmt_usd(s->spend_usd, out, n);
        break;
    case COL_TRHG:
        pair_text(s->truncated, s->hedges, w, out, n);
        break;
    case COL_PROBE:
        probe_text(t, out, n, e);
        break;
    case COL_WIN: {
        double r = win_rate(ui, t->name, &have);
        snprintf(out, n, have ? "%.0f%%" : "-", r * 100);
        if (have)
            *e = THEME_WIN;
        break;
    }
    case COL_SPARK:
        break;
    case COL_NOTE:
        note_text(t, out, n);
        *e = t->breaker != BREAKER_CLOSED || !t->enabled ? THEME_BREAKER_OPEN : THEME_DIM;
        break;
    }
}

enum col_id columns_id(size_t place_col)
{
    return cols[place_col].id;
}

/* The selected and the flashing row keep every cell's own colour (a red STATE stays red):
 * only the name cell is reversed (selected) or flashes. Stale rows are dimmed whole. */
void columns_draw_row(struct ui *ui, int y, const struct router_target_snap *t,
                      const struct console_place *pl, size_t n, attr_t base, attr_t name_attr,
                      bool dim)
{
    draw_fill(y, 0, COLS, base);
    for (size_t i = 0; i < n; i++) {
        const struct col_def *d = &cols[pl[i].col];
        if (d->id == COL_SPARK) {
            draw_spark(ui, y, pl[i].x, pl[i].width, t->stats.rate_series, STATS_RATE_SECONDS,
                       dim ? base : ui->attr[THEME_SPARK]);
            continue;
        }
        char text[256];
        enum theme_elem e;
        cell(ui, d->id, t, pl[i].width, text, sizeof text, &e);
        attr_t a = dim || e == THEME_ROW ? base : ui->attr[e] | (base & A_BOLD);
        if (d->id == COL_NAME) {
            a = name_attr;
            draw_fill(y, pl[i].x, pl[i].width, a);
        }
        if (d->right)
            draw_text_right(ui, y, pl[i].x, pl[i].width, text, a);
        else
            draw_text_cut(ui, y, pl[i].x, pl[i].width, text, a);
    }
}

/* ---- sorting -------------------------------------------------------------------------------- */

static int state_rank(const struct router_target_snap *t)
{
    if (!t->enabled)
        return 6;
    if (t->breaker == BREAKER_OPEN)
        return 5;
    if (t->breaker == BREAKER_HALF_OPEN)
        return 4;
    if (t->rate_limited)
        return 3;
    if (t->drained)
        return 2;
    return board_is_fault(t) ? 1 : 0;
}

static double sort_value(const struct ui *ui, enum col_id c, const struct router_target_snap *t)
{
    const struct stats_summary *s = &t->stats;
    bool have;
    switch (c) {
    case COL_STATE:
        return state_rank(t);
    case COL_WEIGHT:
        return t->weight;
    case COL_SHARE:
        return t->traffic_share;
    case COL_RPS:
        return s->req_per_s;
    case COL_RPS10:
        return board_rate_10s(s->rate_series);
    case COL_CALLS:
        return (double)s->calls;
    case COL_ERRS:
        return (double)s->failures;
    case COL_ERRPCT:
        return board_no_traffic(t) ? -1 : s->error_pct_1m;
    case COL_P50:
    case COL_P95:
    case COL_P99:
        return s->latency_1m[c - COL_P50];
    case COL_TTFT:
        return s->ttft_1m[1];
    case COL_INFL:
        return (double)s->in_flight;
    case COL_TOKENS:
        return (double)(s->tokens_in + s->tokens_out);
    case COL_SPEND:
        return s->spend_usd;
    case COL_TRHG:
        return (double)(s->truncated + s->hedges);
    case COL_PROBE:
        return !t->probe_enabled ? -1 : (t->probe_ok ? 0 : 1);
    case COL_WIN:
        return win_rate(ui, t->name, &have);
    case COL_NAME:
    case COL_MODEL:
    case COL_OVR:
    case COL_SPARK:
    case COL_NOTE:
        return 0;
    }
    return 0;
}

int columns_compare(const struct ui *ui, enum col_id c, const struct router_target_snap *a,
                    const struct router_target_snap *b)
{
    if (c == COL_NAME)
        return strcmp(a->name, b->name);
    if (c == COL_MODEL) {
        int k = strcmp(a->kind, b->kind);
        return k ? k : strcmp(a->model, b->model);
    }
    double va = sort_value(ui, c, a), vb = sort_value(ui, c, b);
    return va < vb ? -1 : va > vb ? 1 : 0;
}
