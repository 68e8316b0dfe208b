/*
 * detail.c - one target in depth (Enter on the board): state and overrides with reasons,
 * traffic and latency over 1 and 5 minutes, tokens and spend, probes, its error breakdown by
 * class, a latency histogram (since start, at the Prometheus boundaries), its recent calls
 * (with the client key that made each), its quality over the last hour with its latest
 * negative feedback (read off the main thread by the backend: this process's ledger, or GET
 * /admin/quality/TARGET of every attached gateway, merged) and its own slice of
 * the incident timeline. Commands (f, p, d, r, P, w...) still apply.
 *
 * Main thread only.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

struct dline {
    char text[256];
    enum theme_elem elem;
};

struct dlines {
    struct dline l[64];
    size_t n;
};

SB_PRINTF(3, 4)
static void add(struct dlines *d, enum theme_elem e, const char *fmt, ...)
{
    if (d->n == SB_ARRAY_LEN(d->l))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->l[d->n].text, sizeof d->l[d->n].text, fmt, ap);
    va_end(ap);
    d->l[d->n++].elem = e;
}

static void bar(char *out, size_t n, double frac, int width, bool utf8)
{
    int cells = (int)(frac * width + 0.5);
    if (frac > 0 && cells == 0)
        cells = 1;
    size_t k = 0;
    for (int i = 0; i < cells && k + 4 < n; i++) {
        if (utf8) {
            memcpy(out + k, "█", 3);
            k += 3;
        } else {
            out[k++] = '#';
        }
    }
    out[k] = '\0';
}

/* Rates over 10 s beside the minute's; "no traffic" rather than what is left of a window. */
static void traffic(const struct router_target_snap *t, struct dlines *d)
{
    const struct stats_summary *s = &t->stats;
    char r10[16], r1[16], e10[24] = "-";
    fmt_rate(board_rate_10s(s->rate_series), 8, r10, sizeof r10);
    fmt_rate(s->req_per_s, 8, r1, sizeof r1);
    if (s->finished_10s)
        snprintf(e10, sizeof e10, "%.1f%%", s->error_pct_10s);
    if (board_no_traffic(t))
        add(d, THEME_DIM,
            "traffic    no traffic in the last minute; %llu calls, %llu ok, %llu failed",
            (unsigned long long)s->calls, (unsigned long long)s->successes,
            (unsigned long long)s->failures);
    else
        add(d, s->error_pct_10s >= 5 || s->error_pct_1m >= 5 ? THEME_DEGRADED : THEME_NORMAL,
            "traffic    req/s %s 10s, %s 1m; errors %s 10s, %.1f%% 1m; %llu calls, %llu ok, "
            "%llu failed",
            r10, r1, e10, s->error_pct_1m, (unsigned long long)s->calls,
            (unsigned long long)s->successes, (unsigned long long)s->failures);
}

/* Error rate and p95 over the last minutes (watch.c samples them every 5 s). */
static void trends(const struct ui *ui, const struct router_target_snap *t, struct dlines *d)
{
    double series[UI_TREND_N];
    char spark[UI_TREND_N * 3 + 1];
    size_t cells = COLS > 60 ? (size_t)(COLS - 40) / 2 : 10;
    cells = cells > 60 ? 60 : cells;
    char span[24];
    command_format_duration((int64_t)cells * UI_TREND_STEP_MS, span, sizeof span);
    watch_trend(ui, t->name, false, series);
    watch_spark_text(ui, series, UI_TREND_N, cells, spark, sizeof spark);
    add(d, THEME_SPARK, "trend      err%% [%s] the last %s", spark, span);
    watch_trend(ui, t->name, true, series);
    watch_spark_text(ui, series, UI_TREND_N, cells, spark, sizeof spark);
    add(d, THEME_SPARK, "           p95  [%s] (one cell: %ds)", spark, UI_TREND_STEP_MS / 1000);
}

static void summary(const struct ui *ui, const struct router_target_snap *t, struct dlines *d)
{
    const struct stats_summary *s = &t->stats;
    char a[24], b[24], c[24], x[24], y[24], z[24];
    enum theme_elem e;
    char st[32];
    board_state_text(t, st, sizeof st, &e);
    add(d, e, "state      %s (breaker %s)", st, breaker_state_name(t->breaker));
    if (t->breaker_reason[0])
        add(d, t->breaker == BREAKER_CLOSED ? THEME_DIM : THEME_BREAKER_OPEN,
            "           last transition: %s", t->breaker_reason);
    if (t->breaker == BREAKER_OPEN) {
        command_format_duration(t->breaker_retry_in_ms, a, sizeof a);
        command_format_duration(t->breaker_cooldown_ms, b, sizeof b);
        add(d, THEME_BREAKER_OPEN,
            "           half-open in %s (cooldown %s, doubles per failed trial)", a, b);
    }
    if (!t->enabled)
        add(d, THEME_NO_KEY, "           %s", t->disabled_reason);
    if (t->rate_limited)
        add(d, THEME_RATE_LIMITED, "           %s", t->rate_limit_reason);
    a[0] = '\0';
    if (t->override_expires_in_ms > 0)
        command_format_duration(t->override_expires_in_ms, a, sizeof a);
    add(d, THEME_NORMAL, "weight     %g (configured %g), share %.0f%%%s%s%s%s%s%s", t->weight,
        t->configured_weight, t->traffic_share * 100, t->forced_live ? ", forced live" : "",
        t->pinned ? ", pinned" : "", t->drained ? ", drained" : "", a[0] ? " (expires in " : "", a,
        a[0] ? ")" : "");
    traffic(t, d);
    add(d, THEME_NORMAL, "           %ld in flight, %llu retries, %llu hedges, %llu truncated",
        s->in_flight, (unsigned long long)s->retries, (unsigned long long)s->hedges,
        (unsigned long long)s->truncated);
    trends(ui, t, d);
    fmt_ms(s->latency_1m[0], a, sizeof a);
    fmt_ms(s->latency_1m[1], b, sizeof b);
    fmt_ms(s->latency_1m[2], c, sizeof c);
    fmt_ms(s->latency_5m[0], x, sizeof x);
    fmt_ms(s->latency_5m[1], y, sizeof y);
    fmt_ms(s->latency_5m[2], z, sizeof z);
    add(d, THEME_NORMAL, "latency    1m p50 %s p95 %s p99 %s | 5m %s %s %s", a, b, c, x, y, z);
    fmt_ms(s->ttft_1m[0], a, sizeof a);
    fmt_ms(s->ttft_1m[1], b, sizeof b);
    fmt_ms(s->ttft_1m[2], c, sizeof c);
    fmt_ms(s->ttft_5m[1], y, sizeof y);
    add(d, THEME_NORMAL, "ttft       1m p50 %s p95 %s p99 %s | 5m p95 %s", a, b, c, y);
    fmt_count(s->tokens_in, a, sizeof a);
    fmt_count(s->tokens_out, b, sizeof b);
    fmt_count(s->tokens_cached, c, sizeof c);
    fmt_usd(s->spend_usd, x, sizeof x);
    add(d, THEME_NORMAL, "tokens     in %s (cached %s), out %s, spend %s%s", a, c, b, x,
        s->usage_missing ? " (some calls reported no usage)" : "");
    if (!t->probe_enabled) {
        add(d, THEME_DIM, "probe      off");
    } else if (t->probe_age_ms < 0) {
        add(d, THEME_DIM, "probe      not run yet");
    } else {
        fmt_age(t->probe_age_ms, a, sizeof a);
        fmt_us(t->probe_latency_us, b, sizeof b);
        fmt_age(t->next_probe_in_ms, c, sizeof c);
        add(d, t->probe_ok ? THEME_HEALTHY : THEME_BREAKER_OPEN,
            "probe      %s %s, %s ago, next in %s (%llu probes, %llu failed)%s%s",
            t->probe_ok ? "ok" : "FAILED", b, a, t->next_probe_in_ms >= 0 ? c : "-",
            (unsigned long long)t->probes, (unsigned long long)t->probe_failures,
            t->probe_ok ? "" : ": ", t->probe_ok ? "" : t->probe_error);
    }
    if (s->last_error[0] && t->last_error_age_ms >= 0) {
        fmt_age(t->last_error_age_ms, a, sizeof a);
        add(d, THEME_EVENT_WARN, "last error %s ago, %s: %s", a,
            llm_errclass_name(s->last_errclass), s->last_error);
    }
    const struct ui_vote *v = board_vote(ui, t->name);
    if (v && v->comparisons)
        add(d, THEME_WIN, "compare    better answer %u of %u times (%.0f%%)", v->wins,
            v->comparisons, 100.0 * v->wins / v->comparisons);
}

static void errors(const struct ui *ui, const struct router_target_snap *t, struct dlines *d)
{
    const struct stats_summary *s = &t->stats;
    add(d, THEME_TITLE, "Errors by class (since start)");
    uint64_t max = 0;
    for (size_t i = 1; i < LLM_ERRCLASS_COUNT; i++)
        max = s->errors[i] > max ? s->errors[i] : max;
    if (max == 0) {
        add(d, THEME_DIM, "  none");
        return;
    }
    for (size_t i = 1; i < LLM_ERRCLASS_COUNT; i++) {
        if (!s->errors[i])
            continue;
        char b[128];
        bar(b, sizeof b, (double)s->errors[i] / (double)max, 20, ui->utf8);
        add(d, i == LLM_ERR_CANCELLED ? THEME_DIM : THEME_EVENT_WARN, "  %-14s %7llu %s",
            llm_errclass_name((enum llm_errclass)i), (unsigned long long)s->errors[i], b);
    }
}

static void histogram(const struct ui *ui, const struct router_target_snap *t, struct dlines *d)
{
    const struct stats_summary *s = &t->stats;
    add(d, THEME_TITLE, "Latency of successful calls (since start)");
    if (s->latency_count == 0) {
        add(d, THEME_DIM, "  no successful call yet");
        return;
    }
    uint64_t per[HIST_PROM_COUNT], max = 0, prev = 0;
    for (size_t i = 0; i < HIST_PROM_COUNT; i++) {
        per[i] = s->latency_prom[i] - prev;
        prev = s->latency_prom[i];
        max = per[i] > max ? per[i] : max;
    }
    for (size_t i = 0; i < HIST_PROM_COUNT; i++) {
        char label[24], b[128];
        int64_t le = hist_prom_le_us(i);
        if (le == INT64_MAX)
            snprintf(label, sizeof label, "> 60s");
        else if (le < 1000000)
            snprintf(label, sizeof label, "<= %lldms", (long long)(le / 1000));
        else
            snprintf(label, sizeof label, "<= %gs", (double)le / 1e6);
        bar(b, sizeof b, max ? (double)per[i] / (double)max : 0, 24, ui->utf8);
        add(d, THEME_SPARK, "  %-9s %7llu %s", label, (unsigned long long)per[i], b);
    }
}

static void recent(const struct router_target_snap *t, struct dlines *d)
{
    const struct stats_summary *s = &t->stats;
    add(d, THEME_TITLE, "Recent calls (newest first)");
    if (s->n_recent == 0) {
        add(d, THEME_DIM, "  none yet");
        return;
    }
    add(d, THEME_DIM, "  %-6s %-13s %8s %8s %7s %7s %9s  %-12s  %-16s  %s", "age", "result",
        "latency", "ttft", "in", "out", "cost", "client", "request id", "error");
    for (size_t i = 0; i < s->n_recent; i++) {
        const struct stats_call *c = &s->recent[i];
        char age[16], lat[16], ttft[16], cost[16], in[24] = "-", out[24] = "-";
        fmt_age(s->now_ms - c->done_ms, age, sizeof age);
        fmt_us(c->latency_us, lat, sizeof lat);
        fmt_us(c->ttft_us, ttft, sizeof ttft);
        fmt_usd_exact(c->cost_usd, cost, sizeof cost);
        if (c->tokens_in >= 0)
            snprintf(in, sizeof in, "%ld", c->tokens_in);
        if (c->tokens_out >= 0)
            snprintf(out, sizeof out, "%ld", c->tokens_out);
        bool ok = c->errclass == LLM_ERR_NONE;
        add(d,
            ok                                 ? THEME_NORMAL
            : c->errclass == LLM_ERR_CANCELLED ? THEME_DIM
                                               : THEME_EVENT_WARN,
            "  %-6s %-13s %8s %8s %7s %7s %9s  %-12s  %-16s  %s", age,
            ok ? "ok" : llm_errclass_name(c->errclass), lat, ttft, in, out, cost,
            c->client[0] ? c->client : "-", c->request_id[0] ? c->request_id : "-", c->error);
    }
}

static void pct(char *out, size_t n, bool shown, double v)
{
    if (shown)
        snprintf(out, n, "%.1f%%", v * 100);
    else
        snprintf(out, n, "n/a");
}

/* The merged quality line; "n/a" wherever a figure is undefined. */
static void quality_line(struct ui *ui, const struct console_quality *q, struct dlines *d)
{
    const struct ledger_quality_row *r = &q->row;
    char ab[16], co[16], neg[16], cps[24], sat[40];
    pct(ab, sizeof ab, r->calls > 0, r->abandonment);
    pct(co, sizeof co, r->completion >= 0, r->completion);
    /* ledger.quality_min_volume: this console's config, else what the gateways said */
    long need = ui->opts->quality_min_volume > 0 ? ui->opts->quality_min_volume
                : q->min_volume > 0              ? (long)q->min_volume
                                                 : 1;
    bool enough = r->feedback > 0 && r->feedback >= (uint64_t)need;
    pct(neg, sizeof neg, enough, r->feedback ? (double)r->negative / r->feedback : 0);
    if (enough)
        snprintf(sat, sizeof sat, "%+.2f", r->score_sum / (double)r->feedback);
    else if (r->feedback > 0)
        snprintf(sat, sizeof sat, "n/a (need %ld)", need);
    else
        snprintf(sat, sizeof sat, "n/a");
    if (r->cost_per_satisfied >= 0)
        fmt_usd(r->cost_per_satisfied, cps, sizeof cps);
    else
        snprintf(cps, sizeof cps, "n/a");
    add(d, r->negative > 0 || r->abandoned > 0 ? THEME_EVENT_WARN : THEME_NORMAL,
        "quality 1h %llu calls, abandoned %s, complete %s, score %s (%llu rated, %s negative), "
        "$/satisfied %s",
        (unsigned long long)r->calls, ab, co, sat, (unsigned long long)r->feedback, neg, cps);
}

/* Quality over the last hour and the latest negative feedback, with request ids (the
 * backend reads them: this process's ledger, or every attached gateway's). */
static void quality(struct ui *ui, const struct router_target_snap *t, struct dlines *d)
{
    struct console_quality q;
    if (!ui->be->ops->quality(ui->be->self, t->name, &q)) {
        add(d, THEME_DIM, "quality    %s",
            ui->attached ? "asking the gateways..." : "reading the ledger...");
        return;
    }
    if (!q.loaded) {
        add(d, THEME_DIM, "quality    not available (%s)", q.missing[0] ? q.missing : "no answer");
        return;
    }
    quality_line(ui, &q, d);
    if (q.missing[0])
        add(d, THEME_EVENT_WARN, "  quality counts %zu/%zu instances; %s", q.answered, q.asked,
            q.missing);
    for (size_t i = 0; i < q.n_negative; i++) {
        const struct ledger_feedback_item *f = &q.negative[i];
        char when[21];
        ledger_format_time(f->wall_ms, when);
        add(d, THEME_EVENT_WARN, "  negative %s %-7s %+.2f %s %s%s%s", when, f->source, f->score,
            f->request_id[0] ? f->request_id : "(vote)", f->label, f->comment[0] ? ": " : "",
            f->comment);
    }
}

/* Attached: the target on each instance (the board shows their sum and worst state). */
static void instances(struct ui *ui, const struct router_target_snap *t, struct dlines *d)
{
    struct console_part parts[CONSOLE_MAX_INSTANCES];
    size_t n = ui->be->ops->breakdown(ui->be->self, t->name, parts, SB_ARRAY_LEN(parts));
    if (n < 2)
        return; /* one instance: the board is its own figures */
    add(d, THEME_TITLE, "Per instance");
    add(d, THEME_DIM, "  %-24s %-11s %-5s %6s %8s %6s %5s %8s %9s", "instance", "state", "ovr", "w",
        "calls", "errs", "infl", "p95", "spend");
    for (size_t i = 0; i < n && i < SB_ARRAY_LEN(parts); i++) {
        const struct console_part *p = &parts[i];
        if (!p->has_target) {
            add(d, THEME_DIM, "  %-24.24s %s", p->instance,
                p->up ? "no such target" : "unreachable");
            continue;
        }
        char p95[16], usd[24], ovr[8];
        fmt_ms(p->p95_ms, p95, sizeof p95);
        fmt_usd(p->spend_usd, usd, sizeof usd);
        snprintf(ovr, sizeof ovr, "%s%s%s", p->forced_live ? "F" : "", p->pinned ? "P" : "",
                 p->drained ? "D" : "");
        enum theme_elem e = !p->up                       ? THEME_DIM
                            : p->breaker == BREAKER_OPEN ? THEME_BREAKER_OPEN
                                                         : THEME_NORMAL;
        add(d, e, "  %-24.24s %-11s %-5s %6g %8llu %6llu %5ld %8s %9s%s", p->instance,
            breaker_state_name(p->breaker), ovr, p->weight, (unsigned long long)p->calls,
            (unsigned long long)p->failures, p->in_flight, p95, usd,
            p->up ? "" : "  (unreachable: last figures)");
    }
    add(d, THEME_NORMAL, " ");
}

static void draw_lines(struct ui *ui, const struct dlines *d, int y, int x, int h, int w,
                       int scroll)
{
    for (int r = 0; r < h; r++) {
        int i = scroll + r;
        if (i >= (int)d->n)
            break;
        draw_text(ui, y + r, x, w, d->l[i].text, ui->attr[d->l[i].elem]);
    }
}

void detail_draw(struct ui *ui)
{
    const struct router_target_snap *t = ui_selected_target(ui);
    int y = 2, bottom = LINES - 2;
    char title[320];
    snprintf(title, sizeof title, " DETAIL  %s  %s/%s   (Esc back, Up/Down scroll, keys act here)",
             t ? t->name : "-", t ? t->kind : "", t ? t->model : "");
    draw_fill(y, 0, COLS, ui->attr[THEME_TITLE]);
    draw_text(ui, y++, 0, COLS, title, ui->attr[THEME_TITLE]);
    if (!t) {
        draw_text(ui, y + 1, 2, COLS - 4, "no target selected (filter hides it?)",
                  ui->attr[THEME_DIM]);
        return;
    }
    static struct dlines top, left, right, calls;
    top.n = left.n = right.n = calls.n = 0;
    summary(ui, t, &top);
    quality(ui, t, &top);
    add(&top, THEME_NORMAL, " ");
    instances(ui, t, &top);
    errors(ui, t, &left);
    histogram(ui, t, &right);
    recent(t, &calls);
    /* One scrolling column of sections; errors and histogram side by side when wide. */
    static struct dlines all;
    all.n = 0;
    for (size_t i = 0; i < top.n; i++)
        all.l[all.n++] = top.l[i];
    bool side = COLS >= 100;
    size_t body = side ? (left.n > right.n ? left.n : right.n) : left.n + 1 + right.n;
    int body_start = (int)all.n;
    for (size_t i = 0; i < body && all.n < SB_ARRAY_LEN(all.l); i++)
        add(&all, THEME_NORMAL, " ");
    add(&all, THEME_NORMAL, " ");
    for (size_t i = 0; i < calls.n && all.n < SB_ARRAY_LEN(all.l); i++)
        all.l[all.n++] = calls.l[i];
    int h = bottom - y;
    int max_scroll = (int)all.n - h / 2;
    if (ui->detail_scroll > max_scroll)
        ui->detail_scroll = max_scroll > 0 ? max_scroll : 0;
    int scroll = ui->detail_scroll;
    draw_lines(ui, &all, y, 1, h, COLS - 2, scroll);
    /* The body sections over their blank placeholder lines. */
    int by = y + body_start - scroll;
    for (size_t i = 0; i < body; i++) {
        int yy = by + (int)i;
        if (yy < y || yy >= bottom)
            continue;
        if (side) {
            if (i < left.n)
                draw_text(ui, yy, 1, COLS / 2 - 2, left.l[i].text, ui->attr[left.l[i].elem]);
            if (i < right.n)
                draw_text(ui, yy, COLS / 2, COLS / 2 - 1, right.l[i].text,
                          ui->attr[right.l[i].elem]);
        } else if (i < left.n) {
            draw_text(ui, yy, 1, COLS - 2, left.l[i].text, ui->attr[left.l[i].elem]);
        } else if (i > left.n) {
            const struct dline *l = &right.l[i - left.n - 1];
            draw_text(ui, yy, 1, COLS - 2, l->text, ui->attr[l->elem]);
        }
    }
    int ev_y = y + (int)all.n - scroll + 1;
    if (bottom - ev_y >= 3)
        events_draw(ui, ev_y, bottom - ev_y, t->name);
}
