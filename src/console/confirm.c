/*
 * confirm.c - what a key's y/n question says before a change is applied (incidents are when
 * mistakes happen, so the question shows what the change will do):
 *   force-live / reset   the target's breaker (state, reason, countdown) and its last probe;
 *   pin                  which routes move (their traffic now -> the pinned target) and the
 *                        estimated cost per call and per hour before and after;
 *   undo                 whose change it takes back and the state it restores (the router's
 *                        preview in the snapshot). A change that already expired is not asked
 *                        about: the router says so and does nothing. The y applies the change
 *                        that was previewed and only it (router_cmd.undo_id), so a repeated
 *                        press never reaches further back without a new preview.
 * The first line of the question (ending in "y/n") goes on the message line; the others in a
 * box above it.
 *
 * Main thread only.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "switchboard/breaker.h"

/* ---- force-live, reset: the breaker and the probe ---------------------------------------------
 */

static void breaker_words(const struct router_target_snap *t, struct buf *b)
{
    char in[16];
    buf_printf(b, "breaker %s", breaker_state_name(t->breaker));
    if (t->breaker == BREAKER_OPEN) {
        fmt_age(t->breaker_retry_in_ms + 999, in, sizeof in);
        buf_printf(b, " (half-open in %s)", in);
    }
    if (t->breaker != BREAKER_CLOSED && t->breaker_reason[0])
        buf_printf(b, ": %s", t->breaker_reason);
    if (t->rate_limited && t->rate_limit_reason[0])
        buf_printf(b, "; %s", t->rate_limit_reason);
}

static void probe_words(const struct router_target_snap *t, struct buf *b)
{
    char age[16], lat[24];
    if (!t->probe_enabled) {
        buf_puts(b, "probes off");
        return;
    }
    if (t->probe_age_ms < 0) {
        buf_puts(b, "not probed yet");
        return;
    }
    fmt_age(t->probe_age_ms, age, sizeof age);
    if (t->probe_ok) {
        fmt_us(t->probe_latency_us, lat, sizeof lat);
        buf_printf(b, "last probe ok in %s, %s ago", lat, age);
    } else {
        buf_printf(b, "last probe failed %s ago: %s", age,
                   t->probe_error[0] ? t->probe_error : "no answer");
    }
}

static void ask_breaker(struct ui *ui, const struct router_cmd *cmd,
                        const struct router_target_snap *t, struct buf *q)
{
    if (cmd->type == ROUTER_CMD_FORCE_LIVE)
        buf_printf(q, "force-live %s? y/n\nNow: ", t->name);
    else
        buf_printf(q, "reset %s? y/n\nNow: ", t->name);
    breaker_words(t, q);
    buf_puts(q, "; ");
    probe_words(t, q);
    buf_puts(q, ".\n");
    if (cmd->type == ROUTER_CMD_FORCE_LIVE) {
        buf_printf(q, "Forced live, %s takes traffic whatever its breaker says", t->name);
        if (t->breaker != BREAKER_CLOSED)
            buf_puts(q, " (it is failing now)");
        buf_puts(q, ".");
    } else {
        buf_printf(q,
                   "Reset closes the breaker, ends cooldowns and clears every override "
                   "(now: weight %g%s%s%s).",
                   t->weight, t->weight != t->configured_weight ? " (override)" : "",
                   t->forced_live ? ", forced live" : "", t->drained ? ", drained" : "");
    }
    (void)ui;
}

/* ---- pin: which routes move, and the cost ------------------------------------------------------
 */

/* Average cost of one call to target i so far; < 0 when it has had none. */
static double cost_per_call(const struct router_target_snap *t)
{
    return t->stats.calls > 0 ? t->stats.spend_usd / (double)t->stats.calls : -1;
}

static bool route_has(const struct router_route_snap *r, size_t ti)
{
    for (size_t k = 0; k < r->n_targets; k++) {
        if (r->targets[k] == ti)
            return true;
    }
    return false;
}

/* "chat: alpha 60% beta 40% -> beta; ~$0.00021 -> $0.00034 a call (+$1.22/h at 1.0 req/s)" */
static void pin_route(const struct router_snapshot *s, const struct router_route_snap *r, size_t ti,
                      struct buf *q)
{
    const struct router_target_snap *pin = &s->targets[ti];
    double rps = 0, cost_rps = 0;
    bool costs_known = true;
    for (size_t k = 0; k < r->n_targets; k++)
        rps += s->targets[r->targets[k]].stats.req_per_s;
    buf_printf(q, "%s: ", r->name);
    if (r->pinned[0]) {
        buf_printf(q, "pinned on %s", r->pinned);
    } else if (rps <= 0) {
        buf_puts(q, "no traffic now");
    } else {
        for (size_t k = 0; k < r->n_targets; k++) {
            const struct router_target_snap *t = &s->targets[r->targets[k]];
            if (t->stats.req_per_s <= 0)
                continue;
            buf_printf(q, "%s %.0f%% ", t->name, 100.0 * t->stats.req_per_s / rps);
            double c = cost_per_call(t);
            costs_known &= c >= 0;
            cost_rps += c * t->stats.req_per_s;
        }
    }
    buf_printf(q, " -> %s 100%%", pin->name);
    double after = cost_per_call(pin);
    if (rps <= 0 || !costs_known || after < 0 || r->pinned[0]) {
        buf_puts(q, "; cost change unknown (no calls to estimate from)");
        return;
    }
    double now = cost_rps / rps;
    char a[24], b[24], h[24];
    fmt_usd_exact(now, a, sizeof a);
    fmt_usd_exact(after, b, sizeof b);
    double per_h = (after - now) * rps * 3600;
    fmt_usd(per_h < 0 ? -per_h : per_h, h, sizeof h);
    buf_printf(q, "; ~%s -> %s a call (%s%s/h at %.1f req/s)", a, b, per_h < 0 ? "-" : "+", h, rps);
}

static void ask_pin(struct ui *ui, const struct router_target_snap *t, struct buf *q)
{
    const struct router_snapshot *s = ui->snap;
    size_t ti = (size_t)(t - s->targets);
    size_t n = 0;
    buf_printf(q, "pin %s? y/n\n", t->name);
    for (size_t i = 0; i < s->n_routes; i++) {
        const struct router_route_snap *r = &s->routes[i];
        if (!route_has(r, ti) || str_eq(r->pinned, t->name))
            continue;
        if (n++ == 0)
            buf_printf(q,
                       "Moves every call of these routes to %s (estimated from the last "
                       "minute's traffic and each target's average cost per call):\n",
                       t->name);
        pin_route(s, r, ti, q);
        buf_puts(q, "\n");
    }
    if (n == 0)
        buf_printf(q, "%s is in no route that it does not already hold: nothing moves.", t->name);
}

/* ---- undo: the router's preview -----------------------------------------------------------------
 */

/* true: a question was opened; false: handled here (nothing to undo, or a lapsed change). */
static bool ask_undo(struct ui *ui, struct router_cmd *cmd, struct buf *q)
{
    const struct router_undo_snap *u = &ui->snap->undo;
    char at[24];
    if (u->id == 0) {
        ui_message(ui, THEME_DIM, "nothing to undo");
        return false;
    }
    cmd->undo_id = u->id;
    if (u->lapsed) {
        /* the router says it expired and does nothing (and drops it from the stack) */
        keys_submit(ui, command_find("undo"), cmd, false);
        return false;
    }
    fmt_clock(u->at_wall_ms, at, sizeof at, false);
    buf_printf(q, "undo %s's %s on %s (at %s)? y/n\nRestores %s: %s.", u->user, u->action,
               u->target, at, u->target, u->restores);
    if (u->depth > 1)
        buf_printf(q, "\n%zu older changes stay; each u shows the next before it is undone.",
                   u->depth - 1);
    return true;
}

void confirm_command(struct ui *ui, const struct command_def *d, const struct router_cmd *in)
{
    struct router_cmd cmd = *in;
    struct buf q;
    buf_init(&q);
    const struct router_target_snap *t = ui_selected_target(ui);
    if (t && !str_eq(t->name, cmd.target))
        t = NULL;
    bool ask = true;
    switch (cmd.type) {
    case ROUTER_CMD_FORCE_LIVE:
    case ROUTER_CMD_RESET:
        if (t)
            ask_breaker(ui, &cmd, t, &q);
        break;
    case ROUTER_CMD_PIN:
        if (t)
            ask_pin(ui, t, &q);
        break;
    case ROUTER_CMD_UNDO:
        ask = ui->have_snap && ask_undo(ui, &cmd, &q);
        if (!ui->have_snap)
            ui_message(ui, THEME_DIM, "nothing to undo (no state from the router yet)");
        break;
    case ROUTER_CMD_SET_WEIGHT:
    case ROUTER_CMD_DRAIN:
    case ROUTER_CMD_PROBE_NOW:
    case ROUTER_CMD_CLEAR:
        break;
    }
    if (ask && q.len == 0)
        buf_printf(&q, "%s %s? (%s)  y/n", d->name, cmd.target, d->help);
    if (ask)
        confirm_open(ui, &cmd, buf_str(&q));
    buf_cleanup(&q);
}

/* ---- drawing ------------------------------------------------------------------------------------
 */

void confirm_draw(struct ui *ui, int y)
{
    attr_t a = ui->attr[THEME_FLASH];
    const char *text = ui->confirm_text;
    const char *nl = strchr(text, '\n');
    size_t first = nl ? (size_t)(nl - text) : strlen(text);
    draw_fill(y, 0, COLS, a);
    draw_textn(ui, y, 1, COLS - 1, text, first, a);
    if (!nl)
        return;
    const char *rest = nl + 1;
    struct wrap_line lines[24];
    int w = COLS - 4;
    size_t n = text_wrap(rest, strlen(rest), w, lines, SB_ARRAY_LEN(lines));
    if (n > SB_ARRAY_LEN(lines))
        n = SB_ARRAY_LEN(lines);
    int h = (int)n + 2;
    if (h > y - 1)
        h = y - 1;
    if (h < 3)
        return;
    int top = y - h;
    attr_t box = ui->attr[THEME_NORMAL];
    for (int r = 0; r < h; r++)
        draw_fill(top + r, 0, COLS, box);
    draw_box(ui, top, 0, h, COLS, ui->attr[THEME_BORDER], " What this does ");
    for (int r = 0; r + 2 < h && (size_t)r < n; r++)
        draw_textn(ui, top + 1 + r, 2, w, rest + lines[r].start, lines[r].len, box);
}
