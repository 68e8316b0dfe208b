/*
 * events.c - the incident timeline: breaker transitions with reasons, 429 bursts with their
 * Retry-After, fallbacks, hedges, truncated streams, probe failures, operator actions and
 * config reloads. The router's snapshot carries its newest ROUTER_MAX_EVENTS; the console
 * appends what is new (by sequence number) to a timeline of its own (timeline.h): a key ring
 * of UI_EVENTS_KEY_KEEP for breaker, operator, config, budget, guard and probe events and a
 * churn ring of UI_EVENTS_CHURN_KEEP for per-call churn, which arrives already aggregated per
 * (target, kind, class) and is updated in place. So the timeline reaches back further than
 * the snapshot, churn never evicts a key event, and it can be exported whole.
 *
 * The pane filters by kind (or key events only), by target and by a search text; scroll
 * counts matching lines up from the newest, 0 is following. While scrolled back, new matching
 * lines keep the operator's place and the title says how many are newer.
 *
 * Main thread only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

void events_init(struct ui_events *ev)
{
    memset(ev, 0, sizeof *ev);
    timeline_init(&ev->tl, UI_EVENTS_KEY_KEEP, UI_EVENTS_CHURN_KEEP);
    ev->kind = EVENTS_ALL;
}

void events_cleanup(struct ui_events *ev)
{
    timeline_cleanup(&ev->tl);
}

static bool contains(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        if (!strncasecmp(hay, needle, n))
            return true;
    }
    return n == 0;
}

/* Whether the pane shows e (only_target: the detail view's target, NULL on the board). */
bool events_match(const struct ui_events *ev, const struct router_event *e, const char *only_target)
{
    if (only_target && !str_eq(e->target, only_target))
        return false;
    if (!only_target && ev->target[0] && !str_eq(e->target, ev->target))
        return false;
    if (ev->kind == EVENTS_KEY && e->churn)
        return false;
    if (ev->kind >= 0 && (int)e->kind != ev->kind)
        return false;
    return !ev->search[0] || contains(e->text, ev->search) || contains(e->target, ev->search) ||
           contains(router_event_kind_name(e->kind), ev->search);
}

void events_intake(struct ui *ui, const struct router_snapshot *s)
{
    struct ui_events *ev = &ui->events;
    for (size_t i = 0; i < s->n_events; i++) {
        const struct router_event *e = &s->events[i];
        if (e->seq <= ev->last_seq)
            continue;
        bool added = timeline_put(&ev->tl, e);
        if (added && ev->scroll > 0 && events_match(ev, e, NULL))
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

static size_t count_matching(const struct ui_events *ev, const char *only_target)
{
    struct timeline_iter it;
    timeline_iter_init(&it);
    const struct timeline_entry *t;
    size_t n = 0;
    while ((t = timeline_iter_next(&ev->tl, &it)))
        n += events_match(ev, &t->ev, only_target);
    return n;
}

void events_scroll(struct ui *ui, int delta)
{
    struct ui_events *ev = &ui->events;
    int n = (int)count_matching(ev, NULL);
    ev->scroll += delta;
    if (ev->scroll > n - 1)
        ev->scroll = n - 1;
    if (ev->scroll < 0)
        ev->scroll = 0;
}

void events_follow(struct ui *ui)
{
    ui->events.scroll = 0;
}

/* all -> key events only -> each kind in turn -> all */
void events_cycle_kind(struct ui *ui)
{
    struct ui_events *ev = &ui->events;
    ev->kind = ev->kind == EVENTS_ALL        ? EVENTS_KEY
               : ev->kind == EVENTS_KEY      ? ROUTER_EV_BREAKER
               : ev->kind >= ROUTER_EV_ERROR ? EVENTS_ALL
                                             : ev->kind + 1;
    ev->scroll = 0;
}

void events_key_only(struct ui *ui)
{
    struct ui_events *ev = &ui->events;
    ev->kind = ev->kind == EVENTS_KEY ? EVENTS_ALL : EVENTS_KEY;
    ev->scroll = 0;
}

void events_toggle_target(struct ui *ui)
{
    struct ui_events *ev = &ui->events;
    const struct router_target_snap *t = ui_selected_target(ui);
    if (ev->target[0] || !t)
        ev->target[0] = '\0';
    else
        str_copy(ev->target, sizeof ev->target, t->name);
    ev->scroll = 0;
}

void events_set_search(struct ui *ui, const char *text)
{
    str_copy(ui->events.search, sizeof ui->events.search, text ? text : "");
    ui->events.scroll = 0;
}

static void title_filters(const struct ui_events *ev, const char *only_target, char *out, size_t n)
{
    char kind[40] = "", target[90] = "", search[90] = "";
    if (ev->kind == EVENTS_KEY)
        snprintf(kind, sizeof kind, " [key events]");
    else if (ev->kind >= 0)
        snprintf(kind, sizeof kind, " [kind %s]",
                 router_event_kind_name((enum router_event_kind)ev->kind));
    if (only_target)
        snprintf(target, sizeof target, " for %s", only_target);
    else if (ev->target[0])
        snprintf(target, sizeof target, " [target %s]", ev->target);
    if (ev->search[0])
        snprintf(search, sizeof search, " [/%s]", ev->search);
    snprintf(out, n, "%s%s%s", target, kind, search);
}

/* sel: the focused pane's top line (what Enter opens) */
/* A line's kind colour: a rejected reload is a config event drawn as the error it is. */
static enum theme_elem line_elem(const struct router_event *e)
{
    if (e->kind == ROUTER_EV_CONFIG && str_has_prefix(e->text, "config reload rejected"))
        return THEME_EVENT_BREAKER;
    return events_elem(e->kind);
}

static void draw_line(struct ui *ui, int yy, int name_w, const struct router_event *e, bool sel)
{
    char t[16];
    attr_t base = ui->attr[sel ? THEME_ROW_SELECTED : THEME_NORMAL];
    fmt_clock(e->wall_ms, t, sizeof t, false);
    draw_fill(yy, 0, COLS, base);
    int x = 1;
    x += draw_text(ui, yy, x, COLS - x, t, ui->attr[THEME_EVENT_TIME]) + 1;
    if (x >= COLS)
        return;
    draw_text(ui, yy, x, 10, router_event_kind_name(e->kind), ui->attr[line_elem(e)]);
    x += 11;
    if (x >= COLS)
        return;
    draw_text(ui, yy, x, name_w, e->target, base);
    x += name_w + 1;
    if (x < COLS)
        draw_text_cut(ui, yy, x, COLS - x, e->text, base);
}

static int name_width(const struct ui *ui)
{
    int name_w = 8;
    for (size_t i = 0; ui->have_snap && i < ui->snap->n_targets; i++) {
        int n = (int)strlen(ui->snap->targets[i].name);
        name_w = n > name_w ? n : name_w;
    }
    return name_w > 20 ? 20 : name_w;
}

static void draw_title(struct ui *ui, int y, const char *only_target, size_t count, int newer)
{
    struct ui_events *ev = &ui->events;
    bool focused = ui->focus == FOCUS_EVENTS && ui->view == VIEW_BOARD;
    char filters[240], title[400], more[64] = "";
    title_filters(ev, only_target, filters, sizeof filters);
    if (newer > 0)
        snprintf(more, sizeof more, "  %d newer (Home: follow)", newer);
    snprintf(title, sizeof title, " EVENTS%s  %zu%s  newest first%s%s", filters, count,
             count == 1 ? " event" : " events", more,
             focused ? "  [Up/Down, Enter opens the top line's request, / K v T filter]"
                     : "  (Tab to scroll, E to export)");
    attr_t ta = ui->attr[focused ? THEME_ROW_SELECTED : THEME_TITLE];
    draw_fill(y, 0, COLS, ta);
    draw_text(ui, y, 0, COLS, title, ta);
}

/* A title line, then the newest matching events first (from the scroll position). */
void events_draw(struct ui *ui, int y, int h, const char *only_target)
{
    struct ui_events *ev = &ui->events;
    size_t count = count_matching(ev, only_target);
    int skip = only_target ? 0 : ev->scroll;
    draw_title(ui, y, only_target, count, skip);
    bool focused = !only_target && ui->focus == FOCUS_EVENTS && ui->view == VIEW_BOARD;
    int name_w = name_width(ui), row = 0;
    struct timeline_iter it;
    timeline_iter_init(&it);
    const struct timeline_entry *t;
    while (row < h - 1 && (t = timeline_iter_next(&ev->tl, &it))) {
        if (!events_match(ev, &t->ev, only_target))
            continue;
        if (skip > 0) {
            skip--;
            continue;
        }
        draw_line(ui, y + 1 + row, name_w, &t->ev, focused && row == 0);
        row++;
    }
    for (; row < h - 1; row++)
        draw_fill(y + 1 + row, 0, COLS, ui->attr[THEME_NORMAL]);
    if (count == 0 && timeline_count(&ev->tl) > 0)
        draw_text(ui, y + 1, 1, COLS - 2, "no event matches the filter (K, v, T, / change it)",
                  ui->attr[THEME_DIM]);
    else if (count == 0)
        draw_text(ui, y + 1, 1, COLS - 2,
                  "no events yet: breaker changes, 429s, fallbacks, "
                  "operator actions and reloads show up here",
                  ui->attr[THEME_DIM]);
}

/* The top line of the board's pane (after the scroll), or NULL. */
static const struct router_event *top_line(const struct ui_events *ev)
{
    struct timeline_iter it;
    timeline_iter_init(&it);
    const struct timeline_entry *t;
    int skip = ev->scroll;
    while ((t = timeline_iter_next(&ev->tl, &it))) {
        if (!events_match(ev, &t->ev, NULL))
            continue;
        if (skip-- == 0)
            return &t->ev;
    }
    return NULL;
}

/* The request id a line names ("req ID", as the router writes it), into out. */
static bool line_request_id(const char *text, char *out, size_t n)
{
    static const char id_chars[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-";
    bool found = false;
    for (const char *p = text; !found && (p = strstr(p, "req ")) != NULL;) {
        bool word = p == text || p[-1] == ' ' || p[-1] == '(';
        p += 4;
        size_t len = strspn(p, id_chars);
        if (word && len > 0 && len < n) {
            memcpy(out, p, len);
            out[len] = '\0';
            found = true;
        }
    }
    return found;
}

void events_open_request(struct ui *ui)
{
    const struct router_event *e = top_line(&ui->events);
    char id[65], line[80];
    if (e && line_request_id(e->text, id, sizeof id)) {
        snprintf(line, sizeof line, "req %s", id);
        cmdline_run(ui, line);
    } else {
        ui_message(ui, THEME_ERROR,
                   "the top line names no request id (Up/Down bring another to the top)");
    }
}

static void write_all(FILE *f, const struct ui_events *ev)
{
    size_t n = timeline_count(&ev->tl), i = n;
    const struct timeline_entry **all =
        xcalloc(n ? n : 1, sizeof(const struct timeline_entry *)); /* pointers, oldest first */
    struct timeline_iter it;
    timeline_iter_init(&it);
    while (i > 0 && (all[i - 1] = timeline_iter_next(&ev->tl, &it)))
        i--;
    for (i = 0; i < n; i++) { /* oldest first */
        const struct router_event *e = &all[i]->ev;
        char t[32];
        fmt_clock(e->wall_ms, t, sizeof t, true);
        fprintf(f, "%s.%03lld %-10s %-20s %s\n", t, (long long)(e->wall_ms % 1000),
                router_event_kind_name(e->kind), e->target[0] ? e->target : "-", e->text);
    }
    free(all);
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
    fprintf(f, "# switchboard incident timeline (%zu events), exported ", timeline_count(&ev->tl));
    char when[32];
    fmt_clock(clock_wall_ms(), when, sizeof when, true);
    fprintf(f, "%s\n", when);
    write_all(f, ev);
    if (fclose(f) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return SB_ERR_IO;
    }
    return SB_OK;
}
