/*
 * keys.c - the key table (htop Action_setBindings, nnn bindings[]): each key, where it
 * applies, and the name of what it does. A name is either a console action (the table
 * below: move, sort, filter, views...) or an operator command from the command table
 * (command.h: weight, force-live, pin, drain, reset, probe, clear, undo), which the key
 * applies to the selected target. The key bar at the bottom is generated from these tables,
 * and so are the help overlay and `switchboard console --keys` (help.c).
 *
 * Main thread only.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define CTRL(c) ((c)&0x1f)
#define ESC     27

/* Order matters: the key bar shows entries in this order until the line is full. */
static const struct key_binding bindings[] = {
    {KEY_F(1), true, "F1", "help", CTX_ALL, "Help"},
    {'?', false, "?", "help", CTX_VIEWS | CTX_ANSWERS, NULL},
    {'q', false, "q", "quit", CTX_VIEWS | CTX_ANSWERS, "Quit"},
    {KEY_F(10), true, "F10", "quit", CTX_ALL, NULL},
    {':', false, ":", "cmdline", CTX_VIEWS | CTX_ANSWERS, "Cmd"},
    {ESC, false, "Esc", "back", CTX_DETAIL | CTX_COMPARE | CTX_ANSWERS, "Back"},
    {'/', false, "/", "events-search", CTX_EVENTS, "Search"},
    {'K', false, "K", "events-key", CTX_BOARD | CTX_EVENTS, "Key only"},
    {'v', false, "v", "events-kind", CTX_EVENTS, "Kind"},
    {'T', false, "T", "events-target", CTX_EVENTS, "Target"},
    {'\n', false, "Enter", "events-open", CTX_EVENTS, "Open req"},
    {'\r', false, "Enter", "events-open", CTX_EVENTS, NULL},
    {KEY_ENTER, true, "Enter", "events-open", CTX_EVENTS, NULL},
    {ESC, false, "Esc", "clear-filter", CTX_BOARD | CTX_EVENTS, NULL},
    {CTRL('d'), false, "^D", "send", CTX_COMPARE | CTX_ANSWERS, "Send"},
    {KEY_F(5), true, "F5", "send", CTX_COMPARE | CTX_ANSWERS, NULL},
    {'\t', false, "Tab", "next-field", CTX_COMPARE | CTX_ANSWERS, "Next"},
    {KEY_BTAB, true, "S-Tab", "prev-field", CTX_COMPARE | CTX_ANSWERS, NULL},
    {'1', false, "1", "vote-1", CTX_ANSWERS, "Better"},
    {'2', false, "2", "vote-2", CTX_ANSWERS, NULL},
    {'3', false, "3", "vote-3", CTX_ANSWERS, NULL},
    {'4', false, "4", "vote-4", CTX_ANSWERS, NULL},
    {KEY_F(2), true, "F2", "save", CTX_COMPARE | CTX_ANSWERS, "Save"},
    {'s', false, "s", "save", CTX_ANSWERS, NULL},
    {'e', false, "e", "edit-prompt", CTX_ANSWERS, "Edit"},
    {'n', false, "n", "new-prompt", CTX_ANSWERS, "New"},
    {'w', false, "w", "weight-edit", CTX_BOARD | CTX_DETAIL, "Weight"},
    {'+', false, "+", "weight-up", CTX_BOARD | CTX_DETAIL, NULL},
    {'-', false, "-", "weight-down", CTX_BOARD | CTX_DETAIL, NULL},
    {'p', false, "p", "pin", CTX_BOARD | CTX_DETAIL, "Pin"},
    {'d', false, "d", "drain", CTX_BOARD | CTX_DETAIL, "Drain"},
    {'f', false, "f", "force-live", CTX_BOARD | CTX_DETAIL, "Force"},
    {'r', false, "r", "reset", CTX_BOARD | CTX_DETAIL, "Reset"},
    {'u', false, "u", "undo", CTX_VIEWS, "Undo"},
    {'x', false, "x", "clear", CTX_BOARD | CTX_DETAIL, NULL},
    {'P', false, "P", "probe", CTX_BOARD | CTX_DETAIL, "Probe"},
    {'\n', false, "Enter", "detail", CTX_BOARD, "Detail"},
    {'\r', false, "Enter", "detail", CTX_BOARD, NULL},
    {KEY_ENTER, true, "Enter", "detail", CTX_BOARD, NULL},
    {'c', false, "c", "compare", CTX_VIEWS, "Prompt"},
    {KEY_F(5), true, "F5", "compare", CTX_VIEWS, NULL},
    {'/', false, "/", "filter", CTX_BOARD, "Filter"},
    {KEY_F(3), true, "F3", "filter", CTX_BOARD | CTX_EVENTS, NULL},
    {'F', false, "F", "faults", CTX_BOARD | CTX_EVENTS, "Faults"},
    {KEY_F(4), true, "F4", "faults", CTX_BOARD | CTX_EVENTS, NULL},
    {'s', false, "s", "sort", CTX_BOARD | CTX_EVENTS, "Sort"},
    {KEY_F(6), true, "F6", "sort", CTX_BOARD | CTX_EVENTS, NULL},
    {'S', false, "S", "sort-reverse", CTX_BOARD | CTX_EVENTS, NULL},
    {'o', false, "o", "order", CTX_BOARD | CTX_EVENTS, "Order"},
    {'N', false, "N", "sort-by-target", CTX_BOARD | CTX_EVENTS, NULL},
    {'A', false, "A", "sort-by-state", CTX_BOARD | CTX_EVENTS, NULL},
    {'M', false, "M", "sort-by-model", CTX_BOARD | CTX_EVENTS, NULL},
    {'W', false, "W", "sort-by-weight", CTX_BOARD | CTX_EVENTS, NULL},
    {'R', false, "R", "sort-by-rps", CTX_BOARD | CTX_EVENTS, NULL},
    {'C', false, "C", "sort-by-calls", CTX_BOARD | CTX_EVENTS, NULL},
    {'X', false, "X", "sort-by-err", CTX_BOARD | CTX_EVENTS, NULL},
    {'L', false, "L", "sort-by-p95", CTX_BOARD | CTX_EVENTS, NULL},
    {'I', false, "I", "sort-by-inflight", CTX_BOARD | CTX_EVENTS, NULL},
    {'$', false, "$", "sort-by-spend", CTX_BOARD | CTX_EVENTS, NULL},
    {KEY_MOUSE, true, "click", "mouse", CTX_BOARD | CTX_EVENTS, NULL},
    {'\t', false, "Tab", "focus", CTX_BOARD | CTX_EVENTS, "Events"},
    {'E', false, "E", "export-events", CTX_VIEWS, "Export"},
    {'t', false, "t", "theme", CTX_VIEWS | CTX_ANSWERS, "Theme"},
    {KEY_UP, true, "Up", "up", CTX_VIEWS | CTX_ANSWERS, NULL},
    {'k', false, "k", "up", CTX_VIEWS | CTX_ANSWERS, NULL},
    {KEY_DOWN, true, "Down", "down", CTX_VIEWS | CTX_ANSWERS, NULL},
    {'j', false, "j", "down", CTX_VIEWS | CTX_ANSWERS, NULL},
    {KEY_PPAGE, true, "PgUp", "page-up", CTX_VIEWS | CTX_ANSWERS, NULL},
    {KEY_NPAGE, true, "PgDn", "page-down", CTX_VIEWS | CTX_ANSWERS, NULL},
    {KEY_HOME, true, "Home", "top", CTX_VIEWS | CTX_ANSWERS, NULL},
    {KEY_END, true, "End", "bottom", CTX_VIEWS | CTX_ANSWERS, NULL},
};

/* ---- console actions ------------------------------------------------------------------------ */

static int page(const struct ui *ui)
{
    int p =
        ui->view == VIEW_BOARD && ui->focus == FOCUS_TARGETS ? board_table_rows(ui) - 1 : LINES - 8;
    return p > 1 ? p : 1;
}

static void move_by(struct ui *ui, int delta)
{
    switch (ui->view) {
    case VIEW_BOARD:
        if (ui->focus == FOCUS_EVENTS)
            events_scroll(ui, delta);
        else
            board_move(ui, delta);
        break;
    case VIEW_DETAIL:
        ui->detail_scroll += delta;
        if (ui->detail_scroll < 0)
            ui->detail_scroll = 0;
        break;
    case VIEW_COMPARE:
        ui->cmp.scroll += delta;
        if (ui->cmp.scroll < 0)
            ui->cmp.scroll = 0;
        break;
    }
}

static void act_up(struct ui *ui)
{
    move_by(ui, -1);
}

static void act_down(struct ui *ui)
{
    move_by(ui, 1);
}

static void act_page_up(struct ui *ui)
{
    move_by(ui, -page(ui));
}

static void act_page_down(struct ui *ui)
{
    move_by(ui, page(ui));
}

static void act_top(struct ui *ui)
{
    move_by(ui, -1000000);
}

static void act_bottom(struct ui *ui)
{
    move_by(ui, 1000000);
}

/* Attached: q detaches (the gateways keep serving). Embedded: quitting stops the gateway, so
 * a busy one asks first, and a read-only console cannot stop it by a key at all. */
static void act_quit(struct ui *ui)
{
    struct console_quit q;
    static const struct router_cmd none;
    if (!ui->have_snap) {
        ui_quit(ui);
        return;
    }
    ui->be->ops->quit_info(ui->be->self, ui->snap, &q);
    if (q.stops_gateway && ui->opts->readonly) {
        ui_message(ui, THEME_ERROR,
                   "read-only console: quitting would stop the gateway; it stops with SIGTERM");
    } else if (q.stops_gateway && q.ask) {
        confirm_open(ui, &none, q.question);
        ui->confirm_quit = true;
    } else {
        ui_quit(ui); /* attached: detaches; embedded and idle: stops the gateway */
    }
}

static void act_help(struct ui *ui)
{
    help_open(ui);
}

static void act_cmdline(struct ui *ui)
{
    cmdline_open(ui, INPUT_COMMAND, "");
}

static void act_filter(struct ui *ui)
{
    cmdline_open(ui, INPUT_FILTER, ui->filter);
}

/* Esc on the board: a filter kept with Enter (or F's faults-only view) goes. */
static void act_clear_filter(struct ui *ui)
{
    if (ui->focus == FOCUS_EVENTS && ui->events.search[0]) { /* the events pane's own first */
        events_set_search(ui, "");
        ui_message(ui, THEME_OK, "events search cleared");
        return;
    }
    if (!ui->filter[0] && !ui->faults_only)
        return;
    ui->filter[0] = '\0';
    ui->faults_only = false;
    ui_rebuild_visible(ui);
    ui_message(ui, THEME_OK, "filter cleared: showing every target");
}

static void act_faults(struct ui *ui)
{
    ui->faults_only = !ui->faults_only;
    ui_rebuild_visible(ui);
    ui_message(ui, THEME_OK,
               ui->faults_only ? "showing targets with a fault only (F: all)"
                               : "showing every target");
}

/* Cycles through the sortable columns on screen, then back to config order. */
static void act_sort(struct ui *ui)
{
    struct console_place pl[COL_COUNT];
    size_t n = columns_layout(ui, COLS, pl);
    int c = -1;
    bool past = ui->sort_col < 0;
    for (size_t i = 0; i < n && c < 0; i++) {
        int id = (int)pl[i].col;
        if (past && columns_sortable((enum col_id)id))
            c = id;
        if (id == ui->sort_col)
            past = true;
    }
    ui->sort_col = c;
    ui->sort_desc = c != COL_NAME && c != COL_MODEL && c >= 0;
    ui_rebuild_visible(ui);
    sort_announce(ui);
}

static void act_sort_reverse(struct ui *ui)
{
    ui->sort_desc = !ui->sort_desc;
    ui_rebuild_visible(ui);
}

static void act_theme(struct ui *ui)
{
    ui->theme_idx = (ui->theme_idx + 1) % ui->n_themes;
    term_apply_theme(ui);
    ui_message(ui, THEME_OK, "theme: %s", ui->themes[ui->theme_idx].name);
}

static void act_detail(struct ui *ui)
{
    if (!ui_selected_target(ui))
        return;
    ui->view = VIEW_DETAIL;
    ui->detail_scroll = 0;
}

static void act_back(struct ui *ui)
{
    ui->view = VIEW_BOARD;
}

static void act_focus(struct ui *ui)
{
    ui->focus = ui->focus == FOCUS_TARGETS ? FOCUS_EVENTS : FOCUS_TARGETS;
}

static void act_events_search(struct ui *ui)
{
    cmdline_open(ui, INPUT_EVENT_SEARCH, ui->events.search);
}

static void act_events_key(struct ui *ui)
{
    events_key_only(ui);
}

static void act_events_kind(struct ui *ui)
{
    events_cycle_kind(ui);
}

static void act_events_target(struct ui *ui)
{
    events_toggle_target(ui);
}

static void act_events_open(struct ui *ui)
{
    events_open_request(ui);
}

static void act_compare(struct ui *ui)
{
    compare_open(ui);
}

static void act_export(struct ui *ui)
{
    char path[600], err[700];
    if (events_export(ui, path, sizeof path, err, sizeof err) == SB_OK)
        ui_message(ui, THEME_OK, "%zu events written to %s", timeline_count(&ui->events.tl), path);
    else
        ui_message(ui, THEME_ERROR, "%s", err);
}

bool keys_may_change(struct ui *ui, const char *what)
{
    if (!ui->opts->readonly)
        return true;
    ui_message(ui, THEME_ERROR, "read-only console: %s refused (started with --readonly)", what);
    return false;
}

static void act_weight_edit(struct ui *ui)
{
    const struct router_target_snap *t = ui_selected_target(ui);
    if (!t || !keys_may_change(ui, "weight"))
        return;
    cmdline_open(ui, INPUT_WEIGHT, "");
    str_copy(ui->input_target, sizeof ui->input_target, t->name);
    snprintf(ui->input_prompt, sizeof ui->input_prompt,
             "weight for %s (now %g, configured %g), N [for 10m]: ", t->name, t->weight,
             t->configured_weight);
}

static void weight_step(struct ui *ui, double step)
{
    const struct router_target_snap *t = ui_selected_target(ui);
    if (!t || !keys_may_change(ui, "weight"))
        return;
    double w = t->weight + step;
    struct router_cmd cmd = {.type = ROUTER_CMD_SET_WEIGHT, .weight = w < 0 ? 0 : w};
    str_copy(cmd.target, sizeof cmd.target, t->name);
    keys_submit(ui, command_for_type(ROUTER_CMD_SET_WEIGHT), &cmd, false);
}

static void act_weight_up(struct ui *ui)
{
    weight_step(ui, 1);
}

static void act_weight_down(struct ui *ui)
{
    weight_step(ui, -1);
}

static void act_send(struct ui *ui)
{
    compare_send(ui);
}

static void act_save(struct ui *ui)
{
    compare_save(ui);
}

static void focus_step(struct ui *ui, int dir)
{
    int f = (int)ui->cmp.focus + dir;
    int n = CMP_FOCUS_ANSWERS + 1;
    ui->cmp.focus = (enum cmp_focus)((f + n) % n);
}

static void act_next_field(struct ui *ui)
{
    focus_step(ui, 1);
}

static void act_prev_field(struct ui *ui)
{
    focus_step(ui, -1);
}

static void act_edit_prompt(struct ui *ui)
{
    ui->cmp.focus = CMP_FOCUS_PROMPT;
}

static void act_new_prompt(struct ui *ui)
{
    text_edit_set(&ui->cmp.prompt, "");
    ui->cmp.focus = CMP_FOCUS_PROMPT;
}

static void act_vote1(struct ui *ui)
{
    compare_vote(ui, 0);
}

static void act_vote2(struct ui *ui)
{
    compare_vote(ui, 1);
}

static void act_vote3(struct ui *ui)
{
    compare_vote(ui, 2);
}

static void act_vote4(struct ui *ui)
{
    compare_vote(ui, 3);
}

struct ui_action {
    const char *name;
    void (*run)(struct ui *ui);
    const char *help;
};

static const struct ui_action actions[] = {
    {"help", act_help, "this help (generated from the key and command tables)"},
    {"quit", act_quit,
     "quit: attached, detaches; embedded, stops the gateway (asks first when it is busy)"},
    {"cmdline", act_cmdline, "command line with Tab completion (:drain x, :route explain m)"},
    {"back", act_back, "back to the board"},
    {"up", act_up, "move up / scroll"},
    {"down", act_down, "move down / scroll"},
    {"page-up", act_page_up, "a page up"},
    {"page-down", act_page_down, "a page down"},
    {"top", act_top, "to the top"},
    {"bottom", act_bottom, "to the bottom"},
    {"detail", act_detail, "the selected target in depth: recent calls, errors, latency"},
    {"focus", act_focus, "move focus between the targets and the events pane"},
    {"filter", act_filter, "filter targets by name or model (Esc clears)"},
    {"faults", act_faults, "show only targets with a fault (toggle)"},
    {"clear-filter", act_clear_filter,
     "clear a kept / filter (and faults-only); in the events pane, its search first"},
    {"sort", act_sort, "sort by the next column"},
    {"sort-reverse", act_sort_reverse, "reverse the sort order"},
    {"theme", act_theme, "next colour theme"},
    {"export-events", act_export, "write the incident timeline to a file"},
    {"events-search", act_events_search, "events pane: show lines containing a text (Esc clears)"},
    {"events-key", act_events_key,
     "timeline: key events only (breaker, operator, config, budget, guard, probe), toggle"},
    {"events-kind", act_events_kind, "events pane: next kind filter (all, key, breaker, ...)"},
    {"events-target", act_events_target, "events pane: only the selected target's, toggle"},
    {"events-open", act_events_open,
     "events pane: open the call the top line names (its request id) from the ledger"},
    {"compare", act_compare, "prompt pane: one prompt to 2-4 targets, answers side by side"},
    {"weight-edit", act_weight_edit, "set the selected target's weight (input field)"},
    {"weight-up", act_weight_up, "weight + 1"},
    {"weight-down", act_weight_down, "weight - 1 (not below 0)"},
    {"send", act_send, "send the prompt to the picked targets"},
    {"save", act_save, "save the comparison as Markdown"},
    {"next-field", act_next_field, "next field (system, max tokens, targets, answers, prompt)"},
    {"prev-field", act_prev_field, "previous field"},
    {"edit-prompt", act_edit_prompt, "back to the prompt"},
    {"new-prompt", act_new_prompt, "clear the prompt and type a new one"},
    {"vote-1", act_vote1, "mark answer 1 as the better one (win rate on the board)"},
    {"vote-2", act_vote2, "mark answer 2 as the better one"},
    {"vote-3", act_vote3, "mark answer 3 as the better one"},
    {"vote-4", act_vote4, "mark answer 4 as the better one"},
};

static const struct ui_action *action_find(const char *name)
{
    for (size_t i = 0; i < SB_ARRAY_LEN(actions); i++) {
        if (str_eq(actions[i].name, name))
            return &actions[i];
    }
    return NULL;
}

const struct key_binding *keys_bindings(size_t *n)
{
    *n = SB_ARRAY_LEN(bindings);
    return bindings;
}

const char *keys_action_help(const char *name)
{
    const struct ui_action *a = action_find(name);
    if (a)
        return a->help;
    if (sort_action_help(name))
        return sort_action_help(name);
    const struct command_def *d = command_find(name);
    return d ? d->help : "";
}

/* ---- operator commands from keys ------------------------------------------------------------ */

void keys_submit(struct ui *ui, const struct command_def *d, const struct router_cmd *in,
                 bool from_key)
{
    if (d->mutating && !keys_may_change(ui, d->name))
        return;
    if (d->args != COMMAND_ARGS_NONE && !in->target[0]) {
        ui_message(ui, THEME_ERROR, "%s: no target selected", d->name);
        return;
    }
    struct router_cmd cmd = *in; /* the backend names the user */
    if (d->args == COMMAND_ARGS_NONE)
        cmd.target[0] = '\0'; /* undo: whatever the selection, it is not about one target */
    if (from_key && d->confirm) {
        confirm_command(ui, d, &cmd);
        return;
    }
    char label[128], exp[32] = "";
    if (cmd.expires_ms > 0) {
        char d_[24];
        command_format_duration(cmd.expires_ms, d_, sizeof d_);
        snprintf(exp, sizeof exp, " for %s", d_);
    }
    if (cmd.type == ROUTER_CMD_SET_WEIGHT)
        snprintf(label, sizeof label, "weight %s %g%s", cmd.target, cmd.weight, exp);
    else
        snprintf(label, sizeof label, "%s%s%s%s", d->name, cmd.target[0] ? " " : "", cmd.target,
                 exp);
    if (cmd.type == ROUTER_CMD_PROBE_NOW)
        watch_probe_sent(ui, cmd.target);
    ui->be->ops->command(ui->be->self, &cmd, label);
    ui->pending++;
    ui_message(ui, THEME_DIM, "%s: sent", label);
}

void keys_router_command(struct ui *ui, const struct command_def *d, const char *target,
                         bool from_key)
{
    struct router_cmd cmd = {.type = d->type};
    str_copy(cmd.target, sizeof cmd.target, target ? target : "");
    keys_submit(ui, d, &cmd, from_key);
}

void keys_run_action(struct ui *ui, const char *name)
{
    const struct ui_action *a = action_find(name);
    if (a) {
        a->run(ui);
        return;
    }
    if (sort_action(ui, name))
        return;
    const struct command_def *d = command_find(name);
    if (d && d->kind == COMMAND_ROUTER) {
        const struct router_target_snap *t = ui_selected_target(ui);
        keys_router_command(ui, d, t ? t->name : NULL, true);
    }
}

/* ---- dispatch ------------------------------------------------------------------------------- */

bool keys_is_enter(struct ui_key k)
{
    return (k.fn && k.code == KEY_ENTER) || (!k.fn && (k.code == '\n' || k.code == '\r'));
}

bool keys_is_escape(struct ui_key k)
{
    return !k.fn && k.code == ESC;
}

unsigned keys_context(const struct ui *ui)
{
    switch (ui->view) {
    case VIEW_BOARD:
        return ui->focus == FOCUS_EVENTS ? CTX_EVENTS : CTX_BOARD;
    case VIEW_DETAIL:
        return CTX_DETAIL;
    case VIEW_COMPARE:
        return ui->cmp.focus == CMP_FOCUS_ANSWERS ? CTX_ANSWERS : CTX_COMPARE;
    }
    return CTX_BOARD;
}

static const struct key_binding *lookup(struct ui_key k, unsigned ctx)
{
    for (size_t i = 0; i < SB_ARRAY_LEN(bindings); i++) {
        const struct key_binding *b = &bindings[i];
        if (b->fn == k.fn && b->code == k.code && (b->ctx & ctx))
            return b;
    }
    return NULL;
}

static void popup_key(struct ui *ui, struct ui_key k)
{
    if (keys_is_escape(k) || keys_is_enter(k) || (!k.fn && (k.code == 'q' || k.code == '?')) ||
        (k.fn && k.code == KEY_F(1))) {
        ui->modal = MODAL_NONE;
        return;
    }
    int delta = 0;
    if ((k.fn && k.code == KEY_UP) || (!k.fn && k.code == 'k'))
        delta = -1;
    else if ((k.fn && k.code == KEY_DOWN) || (!k.fn && k.code == 'j'))
        delta = 1;
    else if (k.fn && k.code == KEY_PPAGE)
        delta = -(LINES - 6);
    else if ((k.fn && k.code == KEY_NPAGE) || (!k.fn && k.code == ' '))
        delta = LINES - 6;
    else if (k.fn && k.code == KEY_HOME)
        delta = -1000000;
    else if (k.fn && k.code == KEY_END)
        delta = 1000000;
    ui->popup_scroll += delta;
    if (ui->popup_scroll < 0)
        ui->popup_scroll = 0;
}

void keys_dispatch(struct ui *ui, struct ui_key k)
{
    ui->dirty = true;
    switch (ui->modal) {
    case MODAL_HELP:
        if (!help_key(ui, k))
            ui->modal = MODAL_NONE;
        else if (help_is_full(ui))
            popup_key(ui, k);
        return;
    case MODAL_POPUP:
        popup_key(ui, k);
        return;
    case MODAL_CONFIRM:
        confirm_key(ui, k);
        return;
    case MODAL_INPUT:
        cmdline_key(ui, k);
        return;
    case MODAL_NONE:
        break;
    }
    const struct key_binding *b = lookup(k, keys_context(ui));
    if (b)
        keys_run_action(ui, b->action);
    else if (ui->view == VIEW_COMPARE)
        compare_key(ui, k);
}

/* ---- the key bar ---------------------------------------------------------------------------- */

static bool applies(const struct ui *ui, const struct key_binding *b)
{
    if (!ui->opts->readonly)
        return true;
    const struct command_def *d = command_find(b->action);
    if (d && d->mutating)
        return false;
    return !str_has_prefix(b->action, "weight");
}

static int bar_item(struct ui *ui, int y, int x, const char *key, const char *label)
{
    int need = (int)strlen(key) + (int)strlen(label) + 1;
    if (x + need > COLS)
        return -1;
    x += draw_text(ui, y, x, COLS - x, key, ui->attr[THEME_STATUS_KEY]);
    x += draw_text(ui, y, x + 1, COLS - x - 1, label, ui->attr[THEME_STATUS_TEXT]) + 3;
    return x;
}

/* What a modal prompt accepts, as key/label pairs ending with NULL. */
static const char *const *modal_bar(const struct ui *ui)
{
    static const char *const popup[] = {"Esc",       "Close", "Up/Down", "Scroll",
                                        "PgUp/PgDn", "Page",  NULL};
    static const char *const help[] = {"/",   "Search", "Tab", "Full reference",
                                       "Esc", "Close",  NULL};
    static const char *const typing[] = {"Enter", "Keep search", "Esc", "Clear search", NULL};
    static const char *const confirm[] = {"y", "Yes, apply", "n", "No", "Esc", "Cancel", NULL};
    static const char *const command[] = {
        "Enter", "Apply (no y/n here)", "Tab", "Complete", "Esc", "Cancel", NULL};
    static const char *const filter[] = {"Enter", "Keep filter", "Esc", "Clear filter", NULL};
    static const char *const weight[] = {
        "Enter", "Apply", "Esc", "Cancel", "e.g.", "0   2.5   0 for 10m", NULL};
    switch (ui->modal) {
    case MODAL_HELP:
        return ui->help_typing ? typing : ui->help_full ? popup : help;
    case MODAL_POPUP:
        return popup;
    case MODAL_CONFIRM:
        return confirm;
    case MODAL_INPUT:
        return ui->input_kind == INPUT_COMMAND                                          ? command
               : ui->input_kind == INPUT_FILTER || ui->input_kind == INPUT_EVENT_SEARCH ? filter
                                                                                        : weight;
    case MODAL_NONE:
        break;
    }
    return NULL;
}

void keys_draw_status(struct ui *ui, int y)
{
    unsigned ctx = keys_context(ui);
    draw_fill(y, 0, COLS, ui->attr[THEME_STATUS_TEXT]);
    int x = 0;
    const char *const *mb = modal_bar(ui);
    if (mb) {
        for (size_t i = 0; mb[i] && x >= 0; i += 2)
            x = bar_item(ui, y, x, mb[i], mb[i + 1]);
        return;
    }
    for (size_t i = 0; i < SB_ARRAY_LEN(bindings) && x >= 0; i++) {
        const struct key_binding *b = &bindings[i];
        if (!b->bar || !(b->ctx & ctx) || !applies(ui, b))
            continue;
        if (str_eq(b->action, "vote-1"))
            x = bar_item(ui, y, x, "1-4", "Better");
        else
            x = bar_item(ui, y, x, b->label, b->bar);
    }
}
