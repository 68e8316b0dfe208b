/*
 * events.c - the incident timeline: breaker transitions with reasons, 429 bursts with their
 * Retry-After, fallbacks, hedges, truncated streams, probe failures, operator actions and
 * config reloads. The router's snapshot carries its newest ROUTER_MAX_EVENTS; the console
 * appends what is new (by sequence number) to a longer ring of its own, so the timeline
 * reaches back further than the snapshot and can be exported whole.
 *
 * Main thread only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

void events_init(struct ui_events *ev)
{
    memset(ev, 0, sizeof *ev);
    ev->ring = xcalloc(UI_EVENTS_KEEP, sizeof *ev->ring);
}

void events_cleanup(struct ui_events *ev)
{
    free(ev->ring);
    ev->ring = NULL;
}

/* i-th newest (0 = newest). */
static const struct router_event *nth_newest(const struct ui_events *ev, size_t i)
{
    return &ev->ring[(ev->next + UI_EVENTS_KEEP - 1 - i) % UI_EVENTS_KEEP];
}

void events_intake(struct ui *ui, const struct router_snapshot *s)
{
    struct ui_events *ev = &ui->events;
    for (size_t i = 0; i < s->n_events; i++) {
        const struct router_event *e = &s->events[i];
        if (e->seq <= ev->last_seq)
            continue;
        ev->ring[ev->next] = *e;
        ev->next = (ev->next + 1) % UI_EVENTS_KEEP;
        if (ev->n < UI_EVENTS_KEEP)
            ev->n++;
        if (ev->scroll > 0 && ev->scroll < (int)ev->n - 1)
            ev->scroll++; /* keep the operator's place while they read */
        ev->last_seq = e->seq;
    }
}

enum theme_elem events_elem(enum router_event_kind k)
{
    switch (k) {
    case ROUTER_EV_BREAKER:
    case ROUTER_EV_ERROR:
        return THEME_EVENT_BREAKER;
    case ROUTER_EV_RATE_LIMIT:
    case ROUTER_EV_FALLBACK:
    case ROUTER_EV_HEDGE:
    case ROUTER_EV_TRUNCATED:
    case ROUTER_EV_PROBE:
        return THEME_EVENT_WARN;
    case ROUTER_EV_OPERATOR:
        return THEME_EVENT_OPERATOR;
    case ROUTER_EV_CONFIG:
        return THEME_EVENT_INFO;
    }
    return THEME_NORMAL;
}

static bool matches(const struct router_event *e, const char *only_target)
{
    return !only_target || str_eq(e->target, only_target);
}

void events_scroll(struct ui *ui, int delta)
{
    struct ui_events *ev = &ui->events;
    ev->scroll += delta;
    if (ev->scroll > (int)ev->n - 1)
        ev->scroll = (int)ev->n - 1;
    if (ev->scroll < 0)
        ev->scroll = 0;
}

/* A title line, then the newest events first (from the scroll position). */
void events_draw(struct ui *ui, int y, int h, const char *only_target)
{
    struct ui_events *ev = &ui->events;
    bool focused = ui->focus == FOCUS_EVENTS && ui->view == VIEW_BOARD;
    size_t count = 0;
    for (size_t i = 0; i < ev->n; i++)
        count += matches(nth_newest(ev, i), only_target);
    char title[200];
    snprintf(title, sizeof title, " EVENTS%s%s  %zu%s  newest first%s", only_target ? " for " : "",
             only_target ? only_target : "", count, count == 1 ? " event" : " events",
             focused ? "  [focused: Up/Down scroll, Tab back]" : "  (Tab to scroll, E to export)");
    attr_t ta = ui->attr[focused ? THEME_ROW_SELECTED : THEME_TITLE];
    draw_fill(y, 0, COLS, ta);
    draw_text(ui, y, 0, COLS, title, ta);
    int name_w = 8;
    for (size_t i = 0; ui->have_snap && i < ui->snap->n_targets; i++) {
        int n = (int)strlen(ui->snap->targets[i].name);
        name_w = n > name_w ? n : name_w;
    }
    if (name_w > 20)
        name_w = 20;
    int row = 0, skip = only_target ? 0 : ev->scroll;
    for (size_t i = 0; i < ev->n && row < h - 1; i++) {
        const struct router_event *e = nth_newest(ev, i);
        if (!matches(e, only_target))
            continue;
        if (skip > 0) {
            skip--;
            continue;
        }
        int yy = y + 1 + row++;
        char t[16];
        fmt_clock(e->wall_ms, t, sizeof t, false);
        draw_fill(yy, 0, COLS, ui->attr[THEME_NORMAL]);
        int x = 1;
        x += draw_text(ui, yy, x, COLS - x, t, ui->attr[THEME_EVENT_TIME]) + 1;
        if (x >= COLS)
            continue;
        draw_text(ui, yy, x, 10, router_event_kind_name(e->kind), ui->attr[events_elem(e->kind)]);
        x += 11;
        if (x >= COLS)
            continue;
        draw_text(ui, yy, x, name_w, e->target, ui->attr[THEME_NORMAL]);
        x += name_w + 1;
        if (x < COLS)
            draw_text_cut(ui, yy, x, COLS - x, e->text, ui->attr[THEME_NORMAL]);
    }
    for (; row < h - 1; row++)
        draw_fill(y + 1 + row, 0, COLS, ui->attr[THEME_NORMAL]);
    if (count == 0)
        draw_text(ui, y + 1, 1, COLS - 2,
                  "no events yet: breaker changes, 429s, fallbacks, "
                  "operator actions and reloads show up here",
                  ui->attr[THEME_DIM]);
}

/* Writes every kept event, oldest first, to ./switchboard-events-YYYYmmdd-HHMMSS.log. */
enum sb_status events_export(struct ui *ui, char *path, size_t pathlen, char *err, size_t errlen)
{
    struct ui_events *ev = &ui->events;
    char name[64];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(name, sizeof name, "switchboard-events-%Y%m%d-%H%M%S.log", &tm);
    char cwd[512];
    if (!getcwd(cwd, sizeof cwd))
        str_copy(cwd, sizeof cwd, ".");
    snprintf(path, pathlen, "%s/%s", cwd, name);
    FILE *f = fopen(name, "w");
    if (!f) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return SB_ERR_IO;
    }
    fprintf(f, "# switchboard incident timeline (%zu events), exported ", ev->n);
    char when[32];
    fmt_clock(clock_wall_ms(), when, sizeof when, true);
    fprintf(f, "%s\n", when);
    for (size_t i = ev->n; i-- > 0;) {
        const struct router_event *e = nth_newest(ev, i);
        char t[32];
        fmt_clock(e->wall_ms, t, sizeof t, true);
        fprintf(f, "%s.%03lld %-10s %-20s %s\n", t, (long long)(e->wall_ms % 1000),
                router_event_kind_name(e->kind), e->target[0] ? e->target : "-", e->text);
    }
    if (fclose(f) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return SB_ERR_IO;
    }
    return SB_OK;
}
