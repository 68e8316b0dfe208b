/*
 * sort.c - the board's order and its mouse: problems first by default (open, half-open,
 * cooling, drained, then other faults), config order on `o`, one key per column (k9s's
 * Shift+letter: the same key again reverses), and clicks (a row selects it, a column title
 * sorts by it).
 *
 * Main thread only.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

int sort_compare(const struct ui *ui, const struct router_target_snap *a,
                 const struct router_target_snap *b)
{
    if (ui->sort_col >= 0) {
        int c = columns_compare(ui, (enum col_id)ui->sort_col, a, b);
        return ui->sort_desc ? -c : c;
    }
    if (!ui->config_order)
        return board_problem_rank(b) - board_problem_rank(a);
    return 0;
}

void sort_label(const struct ui *ui, char *out, size_t n)
{
    if (ui->sort_col >= 0)
        snprintf(out, n, "sort %s %s", columns_title((enum col_id)ui->sort_col),
                 ui->sort_desc ? (ui->utf8 ? "▼" : "v") : (ui->utf8 ? "▲" : "^"));
    else
        snprintf(out, n, "%s", ui->config_order ? "config order" : "problems first");
}

void sort_announce(struct ui *ui)
{
    char what[64];
    sort_label(ui, what, sizeof what);
    ui_message(ui, THEME_OK, "%s (o: %s)", what,
               ui->sort_col < 0 && !ui->config_order ? "config order" : "problems first");
}

/* Sorts by column c; again on the same column reverses. Names sort A-Z first, figures
 * largest first. */
void sort_by_column(struct ui *ui, enum col_id c)
{
    if (ui->sort_col == (int)c) {
        ui->sort_desc = !ui->sort_desc;
    } else {
        ui->sort_col = (int)c;
        ui->sort_desc = c != COL_NAME && c != COL_MODEL;
    }
    ui_rebuild_visible(ui);
    sort_announce(ui);
}

void sort_toggle_problems(struct ui *ui)
{
    if (ui->sort_col >= 0) {
        ui->sort_col = -1;
        ui->config_order = false;
    } else {
        ui->config_order = !ui->config_order;
    }
    ui_rebuild_visible(ui);
    sort_announce(ui);
}

/* ---- mouse ---------------------------------------------------------------------------------- */

static void click_title(struct ui *ui, int x)
{
    struct console_place pl[COL_COUNT];
    size_t n = columns_layout(ui, COLS, pl);
    for (size_t i = 0; i < n; i++) {
        enum col_id id = columns_id(pl[i].col);
        if (x >= pl[i].x && x < pl[i].x + pl[i].width + 1 && columns_sortable(id)) {
            sort_by_column(ui, id);
            return;
        }
    }
}

static void sort_mouse(struct ui *ui)
{
    if (ui->view != VIEW_BOARD || !ui->have_snap || ui->modal != MODAL_NONE)
        return;
    int title_y = 2, rows = board_table_rows(ui), y = ui->mouse_y;
    if (y == title_y) {
        click_title(ui, ui->mouse_x);
    } else if (y > title_y && y <= title_y + rows) {
        int i = ui->top + y - title_y - 1;
        if (i < (int)ui->n_visible) {
            ui->focus = FOCUS_TARGETS;
            board_move(ui, i - ui->sel);
        }
    }
}

/* The next key, waiting at most ~20 ms for it (a report arrives in one write, so this only
 * waits when a lone ESC was pressed). */
static bool next_char(wint_t *wc)
{
    for (int tries = 0; tries < 20; tries++) {
        int r = get_wch(wc);
        if (r == OK)
            return true;
        if (r != ERR)
            return false; /* a function key: not part of a report */
        napms(1);
    }
    return false;
}

/* After an ESC: "[<b;x;yM" (press) or "...m" (release). Anything else is handed back to
 * ncurses (unget_wch, last first) so the keys arrive as they would have. */
bool sort_mouse_report(struct ui *ui)
{
    wint_t got[32];
    size_t n = 0;
    long v[3] = {0, 0, 0};
    int field = 0;
    bool done = false, press = false;
    while (n < SB_ARRAY_LEN(got) && !done && next_char(&got[n])) {
        wint_t c = got[n++];
        if ((n == 1 && c == '[') || (n == 2 && c == '<'))
            continue;
        if (n > 2 && c >= '0' && c <= '9' && v[field] < 100000)
            v[field] = v[field] * 10 + (long)(c - '0');
        else if (n > 2 && c == ';' && field < 2)
            field++;
        else if (n > 2 && field == 2 && (c == 'M' || c == 'm')) {
            press = c == 'M';
            done = true;
        } else
            break;
    }
    if (!done) {
        while (n > 0)
            unget_wch((wchar_t)got[--n]);
        return false;
    }
    if (press && v[0] == 0) { /* button 1 pressed, no modifier: a click */
        ui->mouse_x = (int)v[1] - 1;
        ui->mouse_y = (int)v[2] - 1;
        ui->dirty = true;
        keys_dispatch(ui, (struct ui_key){true, KEY_MOUSE});
    }
    return true;
}

/* ---- actions -------------------------------------------------------------------------------- */

#define SORT_ORDER (-1)
#define SORT_MOUSE (-2)

static const struct {
    const char *name;
    int col; /* enum col_id, or SORT_ORDER / SORT_MOUSE */
    const char *help;
} sort_actions[] = {
    {"order", SORT_ORDER,
     "problems first (open, half-open, cooling, drained on top) / config order"},
    {"sort-by-target", COL_NAME, "sort by TARGET (the same key again reverses)"},
    {"sort-by-state", COL_STATE, "sort by STATE, worst first"},
    {"sort-by-model", COL_MODEL, "sort by FORMAT/MODEL"},
    {"sort-by-weight", COL_WEIGHT, "sort by W (weight)"},
    {"sort-by-rps", COL_RPS, "sort by REQ/S (last minute)"},
    {"sort-by-calls", COL_CALLS, "sort by CALLS"},
    {"sort-by-err", COL_ERRPCT, "sort by ERR% (last minute)"},
    {"sort-by-p95", COL_P95, "sort by P95 latency"},
    {"sort-by-inflight", COL_INFL, "sort by INFL (calls in flight)"},
    {"sort-by-spend", COL_SPEND, "sort by SPEND"},
    {"mouse", SORT_MOUSE, "click a row to select it, a column title to sort by it"},
};

bool sort_action(struct ui *ui, const char *name)
{
    for (size_t i = 0; i < SB_ARRAY_LEN(sort_actions); i++) {
        if (!str_eq(sort_actions[i].name, name))
            continue;
        if (sort_actions[i].col == SORT_ORDER)
            sort_toggle_problems(ui);
        else if (sort_actions[i].col == SORT_MOUSE)
            sort_mouse(ui);
        else
            sort_by_column(ui, (enum col_id)sort_actions[i].col);
        return true;
    }
    return false;
}

const char *sort_action_help(const char *name)
{
    for (size_t i = 0; i < SB_ARRAY_LEN(sort_actions); i++) {
        if (str_eq(sort_actions[i].name, name))
            return sort_actions[i].help;
    }
    return NULL;
}
