/*
 * cmdline.c - the input line at the bottom: the ':' command line (Tab completes command,
 * target, route and theme names; Enter applies at once: the fast path, no y/n), the '/'
 * filter (applied as you type), the 'w' weight field, and the y/n confirmation that pin and
 * drain ask for when they come from a key.
 *
 * Main thread only.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

#define MAX_MATCHES 64

static const char *const console_words[] = {"quit", "help",   "theme",   "filter", "faults",
                                            "sort", "export", "compare", "req"};

void cmdline_open(struct ui *ui, enum ui_input kind, const char *initial)
{
    ui->modal = MODAL_INPUT;
    ui->input_kind = kind;
    line_edit_set(&ui->input, initial);
    ui->hint[0] = '\0';
    ui->input_target[0] = '\0';
    str_copy(ui->input_prompt, sizeof ui->input_prompt,
             kind == INPUT_COMMAND        ? ":"
             : kind == INPUT_FILTER       ? "filter: "
             : kind == INPUT_EVENT_SEARCH ? "search events: "
                                          : "");
}

static void close_input(struct ui *ui)
{
    ui->modal = MODAL_NONE;
    ui->hint[0] = '\0';
}

/* ---- completion ----------------------------------------------------------------------------- */

static void complete(struct ui *ui)
{
    const char *targets[ROUTER_MAX_TARGETS], *routes[ROUTER_MAX_ROUTES], *themes[UI_MAX_THEMES];
    size_t nt = 0, nr = 0;
    for (size_t i = 0; ui->have_snap && i < ui->snap->n_targets; i++)
        targets[nt++] = ui->snap->targets[i].name;
    for (size_t i = 0; ui->have_snap && i < ui->snap->n_routes; i++)
        routes[nr++] = ui->snap->routes[i].name;
    for (size_t i = 0; i < ui->n_themes; i++)
        themes[i] = ui->themes[i].name;
    const char *m[MAX_MATCHES];
    size_t start;
    size_t n = command_complete(ui->input.text, targets, nt, routes, nr, m, MAX_MATCHES, &start);
    const char *word = ui->input.text + start;
    /* Console words first word; theme names after "theme". */
    const char *p = ui->input.text;
    while (*p == ' ' || *p == ':')
        p++;
    bool first = p >= word;
    for (size_t i = 0; first && i < SB_ARRAY_LEN(console_words) && n < MAX_MATCHES; i++) {
        if (str_has_prefix(console_words[i], word))
            m[n++] = console_words[i];
    }
    if (!first && str_has_prefix(p, "theme ")) {
        for (size_t i = 0; i < ui->n_themes && n < MAX_MATCHES; i++) {
            if (str_has_prefix(themes[i], word))
                m[n++] = themes[i];
        }
    }
    if (n == 0) {
        snprintf(ui->hint, sizeof ui->hint, "no completion");
        return;
    }
    size_t common = command_common_prefix(m, n);
    char line[sizeof ui->input.text];
    snprintf(line, sizeof line, "%.*s%.*s%s", (int)start, ui->input.text, (int)common, m[0],
             n == 1 ? " " : "");
    line_edit_set(&ui->input, line);
    ui->hint[0] = '\0';
    if (n > 1) {
        size_t len = 0;
        for (size_t i = 0; i < n && len < sizeof ui->hint - 1; i++)
            len += (size_t)snprintf(ui->hint + len, sizeof ui->hint - len, "%s%s", i ? "  " : "",
                                    m[i]);
    }
}

/* ---- running a line ------------------------------------------------------------------------- */

/* `:req ID`: the call with that x-request-id from the ledger, in a popup. */
static void lookup_request(struct ui *ui, const char *id)
{
    if (!*id || strlen(id) > 64 || strchr(id, ' ')) {
        ui_message(ui, THEME_ERROR,
                   "usage: :req REQUEST-ID (an x-request-id, as shown in "
                   "recent calls and events)");
        return;
    }
    char label[128];
    snprintf(label, sizeof label, "request %.64s", id);
    ui->be->ops->request(ui->be->self, id, label);
    ui->pending++;
    ui_message(ui, THEME_DIM, "%s: looking it up in the ledger", label);
}

static bool console_command(struct ui *ui, const char *word, const char *rest)
{
    if (str_eq(word, "quit") || str_eq(word, "q")) {
        ui_quit(ui);
    } else if (str_eq(word, "help")) {
        keys_run_action(ui, "help");
    } else if (str_eq(word, "faults")) {
        keys_run_action(ui, "faults");
    } else if (str_eq(word, "export")) {
        keys_run_action(ui, "export-events");
    } else if (str_eq(word, "compare")) {
        keys_run_action(ui, "compare");
    } else if (str_eq(word, "req") || str_eq(word, "request")) {
        lookup_request(ui, rest);
    } else if (str_eq(word, "filter")) {
        str_copy(ui->filter, sizeof ui->filter, rest);
        ui_rebuild_visible(ui);
    } else if (str_eq(word, "theme")) {
        if (!*rest) {
            keys_run_action(ui, "theme");
            return true;
        }
        for (size_t i = 0; i < ui->n_themes; i++) {
            if (str_eq(ui->themes[i].name, rest)) {
                ui->theme_idx = i;
                term_apply_theme(ui);
                ui_message(ui, THEME_OK, "theme: %s", rest);
                return true;
            }
        }
        ui_message(ui, THEME_ERROR, "no theme named '%s' (Tab lists them)", rest);
    } else if (str_eq(word, "sort")) {
        ui->sort_col = -1;
        for (int c = 0; *rest && c < COL_COUNT; c++) {
            if (columns_sortable((enum col_id)c) &&
                !strcasecmp(columns_title((enum col_id)c), rest))
                ui->sort_col = c;
        }
        if (*rest && ui->sort_col < 0)
            ui_message(ui, THEME_ERROR, "no sortable column '%s'", rest);
        ui->config_order = !*rest; /* `:sort` alone: config order (o: problems first) */
        ui->sort_desc = ui->sort_col > COL_MODEL;
        ui_rebuild_visible(ui);
    } else {
        return false;
    }
    return true;
}

void cmdline_run(struct ui *ui, const char *line)
{
    char word[32] = "";
    const char *p = line;
    while (*p == ' ' || *p == ':')
        p++;
    if (!*p)
        return;
    size_t n = 0;
    while (p[n] && p[n] != ' ' && n < sizeof word - 1) {
        word[n] = p[n];
        n++;
    }
    word[n] = '\0';
    const char *rest = p + n;
    while (*rest == ' ')
        rest++;
    char restbuf[256];
    str_copy(restbuf, sizeof restbuf, rest);
    for (size_t k = strlen(restbuf); k > 0 && isspace((unsigned char)restbuf[k - 1]); k--)
        restbuf[k - 1] = '\0';
    if (console_command(ui, word, restbuf))
        return;
    struct command_parsed cp;
    char err[256];
    if (command_parse_line(line, &cp, err, sizeof err) != SB_OK) {
        ui_message(ui, THEME_ERROR, "%s", err);
        return;
    }
    switch (cp.def->kind) {
    case COMMAND_ROUTER:
        keys_submit(ui, cp.def, &cp.cmd, false);
        break;
    case COMMAND_EXPLAIN: {
        char label[128];
        snprintf(label, sizeof label, "route explain %s", cp.model);
        ui->be->ops->explain(ui->be->self, cp.model, cp.tag, cp.tokens, label);
        ui->pending++;
        ui_message(ui, THEME_DIM, "%s: asking the router", label);
        break;
    }
    }
}

static void run_weight(struct ui *ui)
{
    char line[700];
    snprintf(line, sizeof line, "weight %s %s", ui->input_target, ui->input.text);
    struct command_parsed cp;
    char err[256];
    if (command_parse_line(line, &cp, err, sizeof err) != SB_OK) {
        ui_message(ui, THEME_ERROR, "%s", err);
        return;
    }
    keys_submit(ui, cp.def, &cp.cmd, false);
}

void cmdline_key(struct ui *ui, struct ui_key k)
{
    if (keys_is_escape(k)) {
        if (ui->input_kind == INPUT_FILTER) {
            ui->filter[0] = '\0';
            ui_rebuild_visible(ui);
        }
        if (ui->input_kind == INPUT_EVENT_SEARCH)
            events_set_search(ui, "");
        close_input(ui);
        return;
    }
    if (keys_is_enter(k)) {
        char line[sizeof ui->input.text];
        str_copy(line, sizeof line, ui->input.text);
        enum ui_input kind = ui->input_kind;
        close_input(ui);
        switch (kind) {
        case INPUT_COMMAND:
            cmdline_run(ui, line);
            break;
        case INPUT_FILTER:
        case INPUT_EVENT_SEARCH:
            break; /* already applied */
        case INPUT_WEIGHT:
            run_weight(ui);
            break;
        }
        return;
    }
    if (!k.fn && k.code == '\t') {
        if (ui->input_kind == INPUT_COMMAND)
            complete(ui);
        return;
    }
    if (line_edit_key(&ui->input, k) && ui->input_kind == INPUT_FILTER) {
        str_copy(ui->filter, sizeof ui->filter, ui->input.text);
        ui_rebuild_visible(ui);
    } else if (ui->input_kind == INPUT_EVENT_SEARCH) {
        events_set_search(ui, ui->input.text);
    }
}

void cmdline_draw(struct ui *ui, int y)
{
    if (ui->hint[0] && y > 0) {
        draw_fill(y - 1, 0, COLS, ui->attr[THEME_POPUP]);
        draw_text(ui, y - 1, 1, COLS - 1, ui->hint, ui->attr[THEME_POPUP]);
    }
    draw_fill(y, 0, COLS, ui->attr[THEME_NORMAL]);
    int px = draw_text(ui, y, 0, COLS, ui->input_prompt, ui->attr[THEME_STATUS_KEY]);
    int cx = line_edit_draw(ui, &ui->input, y, px, COLS - px, ui->attr[THEME_INPUT]);
    ui->cur_y = y;
    ui->cur_x = cx < COLS ? cx : COLS - 1;
}

/* ---- y/n ------------------------------------------------------------------------------------ */

void confirm_open(struct ui *ui, const struct router_cmd *cmd, const char *question)
{
    ui->confirm_cmd = *cmd;
    ui->confirm_quit = false;
    str_copy(ui->confirm_text, sizeof ui->confirm_text, question);
    ui->modal = MODAL_CONFIRM;
}

void confirm_key(struct ui *ui, struct ui_key k)
{
    if (!k.fn && (k.code == 'y' || k.code == 'Y') && ui->confirm_quit) {
        ui->modal = MODAL_NONE;
        ui_quit(ui);
    } else if (!k.fn && (k.code == 'y' || k.code == 'Y')) {
        ui->modal = MODAL_NONE;
        keys_submit(ui, command_for_type(ui->confirm_cmd.type), &ui->confirm_cmd, false);
    } else if (keys_is_escape(k) || (!k.fn && (k.code == 'n' || k.code == 'N' || k.code == 'q'))) {
        ui->modal = MODAL_NONE;
        ui_message(ui, THEME_DIM,
                   ui->confirm_quit ? "not quitting: the gateway keeps serving"
                                    : "cancelled: nothing changed");
    }
}
