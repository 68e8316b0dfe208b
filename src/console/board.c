/*
 * board.c - the main view: a two-line header (gateway, uptime, req/s, error %, spend and
 * burn, overrides, clock), one row per target (columns.c), an info line about the selected
 * target, the incident timeline (events.c), the message line and the key bar.
 *
 * Main thread only.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "internal.h"

/* ---- facts about a target ------------------------------------------------------------------- */

static bool probe_failing(const struct router_target_snap *t)
{
    return t->probe_enabled && t->probe_age_ms >= 0 && !t->probe_ok;
}

/* The router says "rate-limited until 21:03:04 (Retry-After)": how long from now, -1 unknown. */
static int64_t limited_for_ms(const char *reason)
{
    const char *u = strstr(reason, "until ");
    int h, m, sec;
    if (!u || sscanf(u + 6, "%2d:%2d:%2d", &h, &m, &sec) != 3)
        return -1;
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    long d = (long)(h * 3600 + m * 60 + sec) - (tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec);
    if (d < -43200)
        d += 86400; /* past midnight */
    return d > 0 ? (int64_t)d * 1000 : 0;
}

/* To the second, up to an hour ("1m05s"): a countdown that a failed trial extends must
 * visibly move. */
static void countdown(int64_t ms, char *out, size_t n)
{
    int64_t s = ms > 0 ? (ms + 999) / 1000 : 0;
    if (s < 3600) {
        int m = (int)(s / 60), sec = (int)(s % 60);
        if (m)
            snprintf(out, n, "%dm%02ds", m % 60, sec % 60);
        else
            snprintf(out, n, "%ds", sec % 60);
    } else {
        fmt_age(ms, out, n);
    }
}

const char *board_state_text(const struct router_target_snap *t, char *out, size_t outlen,
                             enum theme_elem *elem)
{
    char in[16];
    if (!t->enabled) {
        snprintf(out, outlen, "no key");
        *elem = THEME_NO_KEY;
    } else if (t->drained) {
        snprintf(out, outlen, "drained");
        *elem = THEME_DRAINED;
    } else if (t->forced_live) {
        snprintf(out, outlen, t->breaker == BREAKER_CLOSED ? "forced" : "forced!");
        *elem = THEME_FORCED;
    } else if (t->breaker == BREAKER_OPEN) {
        countdown(t->breaker_retry_in_ms, in, sizeof in);
        snprintf(out, outlen, "OPEN %s", in);
        *elem = THEME_BREAKER_OPEN;
    } else if (t->breaker == BREAKER_HALF_OPEN) {
        snprintf(out, outlen, "half-open");
        *elem = THEME_BREAKER_HALF_OPEN;
    } else if (t->rate_limited) {
        int64_t left = limited_for_ms(t->rate_limit_reason);
        if (left > 0) {
            fmt_age(left, in, sizeof in);
            snprintf(out, outlen, "limited %s", in);
        } else {
            snprintf(out, outlen, "limited");
        }
        *elem = THEME_RATE_LIMITED;
    } else if (t->pinned) {
        snprintf(out, outlen, "pinned");
        *elem = THEME_PINNED;
    } else if (t->stats.error_pct_1m >= 5 || probe_failing(t)) {
        snprintf(out, outlen, "degraded");
        *elem = THEME_DEGRADED;
    } else {
        snprintf(out, outlen, "healthy");
        *elem = THEME_HEALTHY;
    }
    return out;
}

bool board_is_fault(const struct router_target_snap *t)
{
    return !t->enabled || t->breaker != BREAKER_CLOSED || t->rate_limited || t->drained ||
           t->forced_live || t->stats.error_pct_1m > 0 || probe_failing(t);
}

bool board_no_traffic(const struct router_target_snap *t)
{
    if (t->stats.in_flight > 0)
        return false;
    for (size_t i = 0; i < STATS_RATE_SECONDS; i++) {
        if (t->stats.rate_series[i] > 0)
            return false;
    }
    return true;
}

double board_rate_10s(const double *series)
{
    double sum = 0;
    for (size_t i = STATS_RATE_SECONDS - 10; i < STATS_RATE_SECONDS; i++)
        sum += series[i];
    return sum / 10;
}

/* Problems first: open, half-open, cooling (rate-limited), drained; the rest (healthy,
 * degraded, forced, no key) keep config order, so a row does not jump on one error. */
int board_problem_rank(const struct router_target_snap *t)
{
    if (!t->enabled)
        return 0;
    if (t->breaker == BREAKER_OPEN)
        return 4;
    if (t->breaker == BREAKER_HALF_OPEN)
        return 3;
    if (t->rate_limited)
        return 2;
    return t->drained ? 1 : 0;
}

const struct ui_vote *board_vote(const struct ui *ui, const char *name)
{
    for (size_t i = 0; i < ui->n_votes; i++) {
        if (str_eq(ui->votes[i].name, name))
            return &ui->votes[i];
    }
    return NULL;
}

/* ---- spend ---------------------------------------------------------------------------------- */

/* The hook for the ledger (issue 5): today's spend and budget. Until then: the router's
 * spend since start, said so, and no budget (never a made-up one). */
void board_spend(struct ui *ui, struct console_spend *out)
{
    memset(out, 0, sizeof *out);
    out->burn_per_hour = -1;
    out->exhausted_in_ms = -1;
    if (ui->opts->spend) {
        ui->opts->spend(ui->opts->spend_ctx, ui->snap, out);
        return;
    }
    out->spend_usd = ui->snap->spend_usd;
    str_copy(out->label, sizeof out->label, "since start");
}

void board_note_spend(struct ui *ui)
{
    if (ui->spend_n && ui->now_ms - ui->spend_last_ms < 1000)
        return;
    struct console_spend sp;
    board_spend(ui, &sp);
    ui->spend[ui->spend_next].ms = ui->now_ms;
    ui->spend[ui->spend_next].usd = sp.spend_usd;
    ui->spend_next = (ui->spend_next + 1) % UI_SPEND_SAMPLES;
    if (ui->spend_n < UI_SPEND_SAMPLES)
        ui->spend_n++;
    ui->spend_last_ms = ui->now_ms;
}

/* USD per hour over the last five minutes (or what we have, if at least 10 s); -1 unknown. */
double board_burn_per_hour(const struct ui *ui)
{
    if (ui->spend_n < 2)
        return -1;
    size_t newest = (ui->spend_next + UI_SPEND_SAMPLES - 1) % UI_SPEND_SAMPLES;
    size_t oldest = (ui->spend_next + UI_SPEND_SAMPLES - ui->spend_n) % UI_SPEND_SAMPLES;
    for (size_t k = 0; k < ui->spend_n; k++) {
        size_t i = (oldest + k) % UI_SPEND_SAMPLES;
        if (ui->spend[newest].ms - ui->spend[i].ms <= 300000) {
            oldest = i;
            break;
        }
    }
    double dt = (double)(ui->spend[newest].ms - ui->spend[oldest].ms) / 3.6e6;
    if (dt < 10.0 / 3600)
        return -1;
    double d = ui->spend[newest].usd - ui->spend[oldest].usd;
    return d > 0 ? d / dt : 0;
}

/* ---- header --------------------------------------------------------------------------------- */

struct seg {
    char text[96];
    char brief[32]; /* shown instead when the line is short of room ("" keeps text) */
    int priority;
    enum theme_elem elem;
};

static int seg_width(const struct seg *g, bool brief)
{
    const char *t = brief && g->brief[0] ? g->brief : g->text;
    return text_width(t, strlen(t));
}

/* Priority-0 segments always show: when they do not fit in full, every segment with a brief
 * form uses it (at 60 columns "sb  READ-ONLY  7012/s  err 40%  ovr 2" rather than a line cut
 * before READ-ONLY). */
static void draw_segments(struct ui *ui, int y, int width, struct seg *segs, size_t n)
{
    struct console_col spec[16];
    struct console_place pl[16];
    int need = 0;
    for (size_t i = 0; i < n; i++)
        need += segs[i].priority == 0 ? seg_width(&segs[i], false) + 2 : 0;
    bool brief = need > width - 1;
    for (size_t i = 0; i < n; i++)
        spec[i] = (struct console_col){seg_width(&segs[i], brief), segs[i].priority, false};
    size_t k = console_layout(width - 1, spec, n, 2, pl);
    for (size_t i = 0; i < k; i++) {
        const struct seg *g = &segs[pl[i].col];
        draw_text(ui, y, pl[i].x + 1, pl[i].width, brief && g->brief[0] ? g->brief : g->text,
                  ui->attr[g->elem]);
    }
}

static size_t count_overrides(const struct router_snapshot *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n_targets; i++) {
        const struct router_target_snap *t = &s->targets[i];
        n += t->forced_live + t->drained + t->pinned + (t->weight != t->configured_weight);
    }
    return n;
}

SB_PRINTF(5, 6)
static void add(struct seg *segs, size_t *n, int priority, enum theme_elem e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(segs[*n].text, sizeof segs[*n].text, fmt, ap);
    va_end(ap);
    segs[*n].brief[0] = '\0';
    segs[*n].priority = priority;
    segs[*n].elem = e;
    (*n)++;
}

SB_PRINTF(3, 4)
static void brief(struct seg *segs, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(segs[n - 1].brief, sizeof segs[n - 1].brief, fmt, ap);
    va_end(ap);
}

/* Attached: how many instances answer, and since when the others do not. */
static void header_instances(struct ui *ui, struct seg *segs, size_t *n)
{
    if (!ui->attached)
        return;
    size_t up = 0;
    for (size_t k = 0; k < ui->n_inst; k++)
        up += ui->inst[k].up;
    char text[96];
    if (ui->n_inst > 1)
        add(segs, n, 0, up == ui->n_inst ? THEME_HEADER_VALUE : THEME_ERROR, "%zu/%zu up", up,
            ui->n_inst);
    if (board_unreachable_text(ui, text, sizeof text))
        add(segs, n, 0, THEME_ERROR, "%s", text);
}

/* "req/s 7012 (1m 1694)": the last 10 s lead (a surge shows at once), the minute beside. */
static void header_rates(struct ui *ui, struct seg *segs, size_t *n)
{
    const struct router_snapshot *s = ui->snap;
    double r10 = 0;
    for (size_t i = 0; i < s->n_targets; i++)
        r10 += board_rate_10s(s->targets[i].stats.rate_series);
    char a[16], b[16];
    fmt_rate(r10, 6, a, sizeof a);
    fmt_rate(s->req_per_s, 6, b, sizeof b);
    add(segs, n, 0, THEME_HEADER_VALUE, "req/s %s (1m %s)", a, b);
    brief(segs, *n, "%s/s", a);
    double e10 = s->error_pct_10s, e1 = s->error_pct_1m;
    add(segs, n, 0, e10 >= 5 || e1 >= 5 ? THEME_ERROR : THEME_HEADER_VALUE,
        "err %.1f%% (1m %.1f%%)", e10, e1);
    brief(segs, *n, "err %.1f%%", e10);
}

static void header_line1(struct ui *ui, int y, int w)
{
    const struct router_snapshot *s = ui->snap;
    struct seg segs[13];
    size_t n = 0;
    char up[24], clock[16];
    command_format_duration(s->uptime_ms, up, sizeof up);
    add(segs, &n, 0, THEME_HEADER_VALUE, "switchboard");
    brief(segs, n, "sb");
    if (ui->opts->readonly)
        add(segs, &n, 0, THEME_ERROR, "READ-ONLY");
    add(segs, &n, 2, THEME_HEADER, "%s", ui->opts->gateway_addr);
    header_instances(ui, segs, &n);
    header_rates(ui, segs, &n);
    size_t ov = count_overrides(s);
    add(segs, &n, 0, ov ? THEME_FLASH : THEME_HEADER, "overrides %zu", ov);
    brief(segs, n, "ovr %zu", ov);
    add(segs, &n, 3, THEME_HEADER, "up %s", up);
    add(segs, &n, 4, THEME_HEADER, "in flight %llu", (unsigned long long)s->in_flight);
    if (s->fleet.enabled) /* "fleet: 3 instances" / "fleet: redis unreachable since ..." */
        add(segs, &n, 0, s->fleet.connected ? THEME_HEADER : THEME_ERROR, "%s", s->fleet.text);
    fmt_clock(s->wall_ms, clock, sizeof clock, false);
    int cw = (int)strlen(clock);
    draw_segments(ui, y, w - cw - 2, segs, n);
    draw_text(ui, y, w - cw - 1, cw, clock, ui->attr[THEME_HEADER_VALUE]);
}

static void header_line2(struct ui *ui, int y, int w)
{
    struct seg segs[10];
    size_t n = 0;
    struct console_spend sp;
    board_spend(ui, &sp);
    char usd[24], b[24];
    fmt_usd(sp.spend_usd, usd, sizeof usd);
    add(segs, &n, 0, THEME_HEADER_VALUE, "spend %s %s", usd, sp.label);
    double burn = sp.burn_per_hour >= 0 ? sp.burn_per_hour : board_burn_per_hour(ui);
    fmt_usd(burn, b, sizeof b);
    add(segs, &n, 1, THEME_HEADER, "burn %s/h", burn >= 0 ? b : "-");
    if (sp.has_budget) {
        fmt_usd(sp.budget_usd, b, sizeof b);
        add(segs, &n, 0, THEME_HEADER_VALUE, "budget %s (%.0f%%)", b,
            sp.budget_usd > 0 ? 100 * sp.spend_usd / sp.budget_usd : 0);
        char left[24] = "-";
        if (sp.spend_usd >= sp.budget_usd)
            snprintf(left, sizeof left, "now");
        else if (sp.exhausted_in_ms >= 0)
            command_format_duration(sp.exhausted_in_ms, left, sizeof left);
        else if (burn > 0)
            command_format_duration((int64_t)((sp.budget_usd - sp.spend_usd) / burn * 3.6e6), left,
                                    sizeof left);
        add(segs, &n, 1, THEME_HEADER, "runs out in %s", left);
    } else {
        add(segs, &n, 1, THEME_HEADER, "no budget");
    }
    if (ui->filter[0])
        add(segs, &n, 0, THEME_FLASH, "filter: %s", ui->filter);
    if (ui->faults_only)
        add(segs, &n, 0, THEME_FLASH, "faults only");
    char order[48];
    sort_label(ui, order, sizeof order);
    add(segs, &n, 2, ui->sort_col >= 0 || ui->config_order ? THEME_FLASH : THEME_HEADER, "%s",
        order);
    add(segs, &n, 4, THEME_HEADER, "theme %s", ui->themes[ui->theme_idx].name);
    add(segs, &n, 3, THEME_HEADER, "calls %llu", (unsigned long long)ui->snap->gateway_calls);
    draw_segments(ui, y, w, segs, n);
}

void board_header(struct ui *ui, int y)
{
    draw_fill(y, 0, COLS, ui->attr[THEME_HEADER]);
    draw_fill(y + 1, 0, COLS, ui->attr[THEME_HEADER]);
    if (!ui->have_snap) {
        draw_text(ui, y, 1, COLS - 1, "switchboard: waiting for the router...",
                  ui->attr[THEME_HEADER]);
        return;
    }
    header_line1(ui, y, COLS);
    header_line2(ui, y + 1, COLS);
}

/* ---- the table ------------------------------------------------------------------------------ */

static int events_min(int avail)
{
    int m = avail / 3;
    return m < 3 ? 3 : m;
}

int board_table_rows(const struct ui *ui)
{
    int avail = LINES - 7;
    int rows = avail - events_min(avail);
    if (rows < 1)
        rows = 1;
    return (int)ui->n_visible < rows ? ((int)ui->n_visible > 0 ? (int)ui->n_visible : 1) : rows;
}

void board_move(struct ui *ui, int delta)
{
    if (ui->n_visible == 0)
        return;
    int sel = ui->sel + delta;
    if (sel < 0)
        sel = 0;
    if (sel >= (int)ui->n_visible)
        sel = (int)ui->n_visible - 1;
    ui->sel = sel;
    str_copy(ui->selected, sizeof ui->selected, ui->snap->targets[ui->visible[sel]].name);
}

static bool flashing(const struct ui *ui, const char *name)
{
    for (size_t i = 0; i < ui->n_mem; i++) {
        if (str_eq(ui->mem[i].name, name))
            return ui->mem[i].flash_until > ui->now_ms;
    }
    return false;
}

/* The selected target's story, reason first (at 80 columns the reason is what fits):
 * "5 consecutive failures (last: connect), half-open in 14s; weight 0 (configured 3); ".
 * The operator's changes (weight, override expiry) come before the last probe's error,
 * whose transport text can be longer than the line and would cut them off. */
static void info_reason(const struct router_target_snap *t, struct buf *b)
{
    char d[24];
    if (!t->enabled)
        buf_printf(b, "%s; ", t->disabled_reason);
    if (t->breaker != BREAKER_CLOSED && t->breaker_reason[0])
        buf_printf(b, "%s", t->breaker_reason);
    else if (t->breaker != BREAKER_CLOSED)
        buf_printf(b, "breaker %s", breaker_state_name(t->breaker));
    if (t->breaker == BREAKER_OPEN) {
        command_format_duration(t->breaker_retry_in_ms, d, sizeof d);
        buf_printf(b, ", half-open in %s", d);
    }
    if (t->breaker != BREAKER_CLOSED)
        buf_printf(b, "; ");
    if (board_no_traffic(t))
        buf_printf(b, "no traffic in the last minute; ");
    if (t->rate_limited)
        buf_printf(b, "%s; ", t->rate_limit_reason);
    if (t->weight != t->configured_weight)
        buf_printf(b, "weight %g (configured %g); ", t->weight, t->configured_weight);
    if (t->override_expires_in_ms > 0) {
        command_format_duration(t->override_expires_in_ms, d, sizeof d);
        buf_printf(b, "override expires in %s; ", d);
    }
    if (t->probe_enabled && t->probe_age_ms >= 0 && !t->probe_ok)
        buf_printf(b, "probe failed: %s; ", t->probe_error);
}

static void draw_info(struct ui *ui, int y)
{
    draw_fill(y, 0, COLS, ui->attr[THEME_NORMAL]);
    const struct router_target_snap *t = ui_selected_target(ui);
    if (!t) {
        draw_text(ui, y, 1, COLS - 1,
                  ui->n_visible ? "" : "no target matches (/ to change the filter, F to show all)",
                  ui->attr[THEME_DIM]);
        return;
    }
    struct buf b;
    buf_init(&b);
    char st[32];
    enum theme_elem e;
    board_state_text(t, st, sizeof st, &e);
    buf_printf(&b, "%s %s: ", t->name, st);
    info_reason(t, &b);
    buf_printf(&b, "%s/%s", t->kind, t->model);
    draw_text_cut(ui, y, 1, COLS - 1, buf_str(&b), ui->attr[e == THEME_HEALTHY ? THEME_NORMAL : e]);
    buf_cleanup(&b);
}

/* "unreachable since HH:MM:SS, retrying" for the instances that are down (the earliest
 * outage); false when every instance answers. */
bool board_unreachable_text(const struct ui *ui, char *out, size_t outlen)
{
    int64_t since = 0;
    size_t down = 0;
    for (size_t k = 0; k < ui->n_inst; k++) {
        if (ui->inst[k].up)
            continue;
        down++;
        if (ui->inst[k].down_since_ms && (!since || ui->inst[k].down_since_ms < since))
            since = ui->inst[k].down_since_ms;
    }
    if (!down)
        return false;
    char clock[16] = "?";
    if (since)
        fmt_clock(since, clock, sizeof clock, false);
    snprintf(out, outlen, "unreachable since %s, retrying", clock);
    return true;
}

/* A stale row (every instance with it is unreachable) says so in its NOTE cell, or over the
 * row's last columns when NOTE does not fit. */
static void draw_stale_note(struct ui *ui, int y, const struct console_place *pl, size_t n,
                            attr_t a)
{
    char text[96];
    if (!board_unreachable_text(ui, text, sizeof text))
        return;
    int x = COLS - text_width(text, strlen(text)) - 1;
    for (size_t i = 0; i < n; i++) {
        if (columns_id(pl[i].col) == COL_NOTE && pl[i].x < x)
            x = pl[i].x;
    }
    if (x < 20)
        x = 20;
    draw_fill(y, x - 1, COLS - x + 1, a);
    draw_text_cut(ui, y, x, COLS - x - 1, text, a);
}

/* Rows above or below the table's window: "+3 above" / "+2 below" on the title line's right. */
static void draw_hidden_marker(struct ui *ui, int y, int rows)
{
    int above = ui->top, below = (int)ui->n_visible - ui->top - rows;
    if (above <= 0 && below <= 0)
        return;
    char text[48];
    if (above > 0 && below > 0)
        snprintf(text, sizeof text, " %d above, %d below ", above, below);
    else if (above > 0)
        snprintf(text, sizeof text, " %s%d more above ", ui->utf8 ? "↑" : "^", above);
    else
        snprintf(text, sizeof text, " %s%d more below ", ui->utf8 ? "↓" : "v", below);
    int w = text_width(text, strlen(text));
    draw_text(ui, y, COLS - w, w, text, ui->attr[THEME_FLASH]);
}

static void draw_table(struct ui *ui, int y, int rows)
{
    struct console_place pl[COL_COUNT];
    size_t n = columns_layout(ui, COLS, pl);
    columns_draw_titles(ui, y, pl, n);
    if (ui->sel >= (int)ui->n_visible)
        ui->sel = ui->n_visible ? (int)ui->n_visible - 1 : 0;
    if (ui->sel < ui->top)
        ui->top = ui->sel;
    if (ui->sel >= ui->top + rows)
        ui->top = ui->sel - rows + 1;
    if (ui->top > 0 && ui->top + rows > (int)ui->n_visible)
        ui->top = (int)ui->n_visible > rows ? (int)ui->n_visible - rows : 0;
    for (int r = 0; r < rows; r++) {
        int i = ui->top + r;
        if (i >= (int)ui->n_visible) {
            draw_fill(y + 1 + r, 0, COLS, ui->attr[THEME_ROW]);
            continue;
        }
        const struct router_target_snap *t = &ui->snap->targets[ui->visible[i]];
        bool sel = i == ui->sel && ui->focus == FOCUS_TARGETS;
        attr_t base = ui->attr[THEME_ROW] | (i == ui->sel ? A_BOLD : 0);
        attr_t name = sel                     ? ui->attr[THEME_ROW_SELECTED]
                      : flashing(ui, t->name) ? ui->attr[THEME_FLASH]
                                              : base;
        bool stale = ui->stale[ui->visible[i]];
        if (stale) {
            base = ui->attr[THEME_DIM];
            name = sel ? name : base;
        }
        columns_draw_row(ui, y + 1 + r, t, pl, n, base, name, stale);
        if (stale)
            draw_stale_note(ui, y + 1 + r, pl, n, base);
    }
    draw_hidden_marker(ui, y, rows);
}

void board_draw(struct ui *ui)
{
    if (!ui->have_snap)
        return;
    int rows = board_table_rows(ui);
    int y = 2;
    draw_table(ui, y, rows);
    y += 1 + rows;
    draw_info(ui, y++);
    int ev_h = LINES - 2 - y;
    if (ev_h >= 2)
        events_draw(ui, y, ev_h, NULL);
}
