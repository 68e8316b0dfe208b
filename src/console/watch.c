/*
 * watch.c - what the console follows over time on its own:
 *  - trends: every UI_TREND_STEP_MS, each target's error rate (last 10 s) and p95 latency
 *    (last minute) go into a bounded ring (UI_TREND_N samples, 10 minutes), drawn as
 *    sparklines in the detail view. Kept here rather than in the router's snapshot so that an
 *    attached console (which polls the gateways) has them too; at most ROUTER_MAX_TARGETS
 *    rings, ~2 KB each.
 *  - an operator's probe (P): the command only starts it, so the console waits for the
 *    target's probe count to move and then says what the probe found ("probe groq-fast: 200
 *    in 84 ms, breaker open -> half-open").
 *
 * Main thread only.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define PROBE_WAIT_MS 60000

static struct ui_trend *trend_find(struct ui *ui, const char *name, bool add)
{
    for (size_t i = 0; i < ui->n_trends; i++) {
        if (str_eq(ui->trends[i].name, name))
            return &ui->trends[i];
    }
    if (!add || ui->n_trends == ROUTER_MAX_TARGETS)
        return NULL;
    struct ui_trend *t = &ui->trends[ui->n_trends++];
    memset(t, 0, sizeof *t);
    str_copy(t->name, sizeof t->name, name);
    return t;
}

static void trend_sample(struct ui *ui)
{
    for (size_t i = 0; i < ui->snap->n_targets; i++) {
        const struct router_target_snap *s = &ui->snap->targets[i];
        struct ui_trend *t = trend_find(ui, s->name, true);
        if (!t)
            continue;
        bool idle = board_no_traffic(s);
        t->err[t->next] = s->stats.finished_10s ? s->stats.error_pct_10s : 0;
        t->p95[t->next] = idle ? 0 : s->stats.latency_1m[1];
        t->next = (t->next + 1) % UI_TREND_N;
        if (t->n < UI_TREND_N)
            t->n++;
    }
}

/* The ring oldest first into out[UI_TREND_N], zero-padded in front: sparkline order. */
void watch_trend(const struct ui *ui, const char *name, bool p95, double *out)
{
    memset(out, 0, sizeof(double) * UI_TREND_N);
    for (size_t i = 0; i < ui->n_trends; i++) {
        const struct ui_trend *t = &ui->trends[i];
        if (!str_eq(t->name, name))
            continue;
        for (size_t k = 0; k < t->n; k++) {
            size_t at = (t->next + UI_TREND_N - t->n + k) % UI_TREND_N;
            out[UI_TREND_N - t->n + k] = p95 ? t->p95[at] : t->err[at];
        }
    }
}

/* Blocks for a sparkline of the last `cells` samples, in text (the detail view's lines are
 * text). Scaled to the largest sample; zero is a space. */
void watch_spark_text(const struct ui *ui, const double *series, size_t n, size_t cells, char *out,
                      size_t outlen)
{
    static const char *const blocks[] = {" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
    static const char ascii[] = " .:-=+*#@";
    size_t from = n > cells ? n - cells : 0, len = 0;
    double max = 0;
    for (size_t i = from; i < n; i++)
        max = series[i] > max ? series[i] : max;
    out[0] = '\0';
    for (size_t i = from; i < n; i++) {
        int level = series[i] > 0 && max > 0 ? 1 + (int)floor(7.0 * series[i] / max + 1e-9) : 0;
        level = level > 8 ? 8 : level;
        const char *b = ui->utf8 ? blocks[level] : (char[]){ascii[level], '\0'};
        size_t bl = strlen(b);
        if (len + bl + 1 > outlen)
            break;
        memcpy(out + len, b, bl + 1);
        len += bl;
    }
}

/* ---- the operator's probe ------------------------------------------------------------------- */

static const struct router_target_snap *find(const struct ui *ui, const char *name)
{
    for (size_t i = 0; i < ui->snap->n_targets; i++) {
        if (str_eq(ui->snap->targets[i].name, name))
            return &ui->snap->targets[i];
    }
    return NULL;
}

static void probe_check(struct ui *ui);

/* The baseline is taken when the command is sent: by the time its verdict comes back the
 * probe may have finished and the snapshot may already show it. */
void watch_probe_sent(struct ui *ui, const char *target)
{
    const struct router_target_snap *t = ui->have_snap ? find(ui, target) : NULL;
    struct ui_probe_watch *w = &ui->probe_watch;
    w->active = false;
    w->sent = t != NULL;
    if (!t)
        return;
    str_copy(w->target, sizeof w->target, target);
    w->probes = t->probes;
    w->breaker = t->breaker;
}

void watch_probe_begin(struct ui *ui, const char *target)
{
    struct ui_probe_watch *w = &ui->probe_watch;
    if (!w->sent || !str_eq(w->target, target))
        return;
    w->sent = false;
    w->until_ms = ui->now_ms + PROBE_WAIT_MS;
    w->active = true;
    ui_message(ui, THEME_DIM, "probe %s: sent, waiting for its answer...", target);
    probe_check(ui);
}

static void probe_said(struct ui *ui, const struct router_target_snap *t)
{
    struct ui_probe_watch *w = &ui->probe_watch;
    char lat[24], brk[96], status[24];
    fmt_us(t->probe_latency_us, lat, sizeof lat);
    if (t->probe_ok)
        snprintf(status, sizeof status, "%ld", t->probe_status ? t->probe_status : 200L);
    else
        snprintf(status, sizeof status, "FAILED");
    if (t->breaker != w->breaker) {
        snprintf(brk, sizeof brk, "breaker -> %s", breaker_state_name(t->breaker));
    } else if (t->breaker == BREAKER_OPEN) {
        char in[24];
        command_format_duration(t->breaker_retry_in_ms, in, sizeof in);
        snprintf(brk, sizeof brk, "breaker stays open, half-open in %s", in);
    } else {
        snprintf(brk, sizeof brk, "breaker %s", breaker_state_name(t->breaker));
    }
    ui_message(ui, t->probe_ok ? THEME_OK : THEME_ERROR, "probe %s: %s in %s, %s%s%s", t->name,
               status, lat, brk, t->probe_ok ? "" : ": ", t->probe_ok ? "" : t->probe_error);
}

static void probe_check(struct ui *ui)
{
    struct ui_probe_watch *w = &ui->probe_watch;
    if (!w->active)
        return;
    const struct router_target_snap *t = find(ui, w->target);
    if (t && t->probes > w->probes) {
        w->active = false;
        probe_said(ui, t);
    } else if (!t || ui->now_ms > w->until_ms) {
        w->active = false;
        ui_message(ui, THEME_ERROR, "probe %s: no answer within %ds", w->target,
                   PROBE_WAIT_MS / 1000);
    }
}

void watch_intake(struct ui *ui)
{
    if (!ui->have_snap)
        return;
    probe_check(ui);
    if (ui->trend_last_ms && ui->now_ms - ui->trend_last_ms < UI_TREND_STEP_MS)
        return;
    ui->trend_last_ms = ui->now_ms;
    trend_sample(ui);
}
