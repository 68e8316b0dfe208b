/*
 * help.c - the help overlay (?) and `switchboard console --keys` (Markdown for the README),
 * both generated from the key table (keys.c) and the command table (command.h), so what the
 * console says, what the docs say and what the keys do cannot drift apart.
 *
 * The overlay is a one-screen cheat-sheet (every key and command, grouped, in columns) with
 * search: / types a query that narrows it to the matching entries with their full help; Tab
 * shows the full reference (the text below, scrollable).
 *
 * Text building is pure; the overlay (help_open, help_key, help_draw) is main thread only.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* ---- help and reference --------------------------------------------------------------------- */

static const struct {
    unsigned ctx;
    const char *title;
} sections[] = {
    {CTX_VIEWS, "Everywhere (board, events, detail; most also in the prompt pane's answers)"},
    {CTX_BOARD, "Board"},
    {CTX_EVENTS, "Board, events pane focused (Tab)"},
    {CTX_DETAIL, "Detail view (Enter)"},
    {CTX_COMPARE, "Prompt pane (c), typing"},
    {CTX_ANSWERS, "Prompt pane, answers focused"},
};

/* Bindings that work in every view are listed once, under "Everywhere". */
static bool listed_under(const struct key_binding *b, unsigned ctx)
{
    if (ctx == CTX_VIEWS)
        return (b->ctx & CTX_VIEWS) == CTX_VIEWS;
    return (b->ctx & ctx) && (b->ctx & CTX_VIEWS) != CTX_VIEWS;
}

/* Keys of one context, one line per action: "keys", action, help. */
static void for_each_action(unsigned ctx,
                            void (*emit)(void *arg, const char *keys, const char *action,
                                         const char *help),
                            void *arg)
{
    size_t n_bindings;
    const struct key_binding *bindings = keys_bindings(&n_bindings);
    for (size_t i = 0; i < n_bindings; i++) {
        const struct key_binding *b = &bindings[i];
        if (!listed_under(b, ctx))
            continue;
        bool seen = false;
        for (size_t j = 0; j < i; j++)
            seen |= listed_under(&bindings[j], ctx) && str_eq(bindings[j].action, b->action);
        if (seen)
            continue;
        char keys[64] = "";
        size_t len = 0;
        for (size_t j = i; j < n_bindings; j++) {
            if (listed_under(&bindings[j], ctx) && str_eq(bindings[j].action, b->action) &&
                !strstr(keys, bindings[j].label))
                len += (size_t)snprintf(keys + len, sizeof keys - len, "%s%s", len ? " " : "",
                                        bindings[j].label);
            if (len >= sizeof keys)
                len = sizeof keys - 1;
        }
        emit(arg, keys, b->action, keys_action_help(b->action));
    }
}

static void emit_text(void *arg, const char *keys, const char *action, const char *help)
{
    buf_printf(arg, "  %-14s %-14s %s\n", keys, action, help);
}

static const char *const console_commands[][2] = {
    {"quit", "quit the console"},
    {"help", "this help"},
    {"theme [NAME]", "switch theme (next one without NAME)"},
    {"filter [TEXT]", "filter targets (no TEXT: clear)"},
    {"faults", "toggle faults-only"},
    {"sort [COLUMN]", "sort by a column title (no COLUMN: config order)"},
    {"export", "write the incident timeline to a file"},
    {"compare", "open the prompt pane"},
    {"req REQUEST-ID", "open a call from the ledger by its x-request-id"},
};

void keys_help_text(struct buf *out)
{
    buf_printf(out, "Keys (they apply to the selected target; pin and drain ask y/n first)\n");
    for (size_t s = 0; s < SB_ARRAY_LEN(sections); s++) {
        buf_printf(out, "\n%s\n", sections[s].title);
        for_each_action(sections[s].ctx, emit_text, out);
    }
    buf_printf(out, "\nCommands (the : line applies them at once, without y/n)\n");
    size_t n;
    const struct command_def *t = command_table(&n);
    for (size_t i = 0; i < n; i++)
        buf_printf(out, "  :%-40s %s\n", t[i].usage, t[i].help);
    for (size_t i = 0; i < SB_ARRAY_LEN(console_commands); i++)
        buf_printf(out, "  :%-40s %s\n", console_commands[i][0], console_commands[i][1]);
    buf_printf(out, "\nDurations: 30s, 10m, 2h, 1d, 1h30m. Overrides with an expiry lapse on "
                    "their own; u undoes the last one.\n");
    buf_printf(out, "Themes: t cycles; --theme NAME or console.theme in the config picks one; "
                    "NO_COLOR forces mono.\n");
}

/* ---- the cheat-sheet ------------------------------------------------------------------------ */

#define HELP_MAX_ENTRIES 128

struct help_entry {
    const char *section; /* non-NULL: a section title, not a key */
    char keys[64];
    const char *name; /* action or command usage */
    const char *help;
};

struct help_list {
    struct help_entry e[HELP_MAX_ENTRIES];
    size_t n;
};

static const char *const short_titles[] = {"Everywhere",  "Board",          "Events pane",
                                           "Detail view", "Prompt: typing", "Prompt: answers"};
_Static_assert(SB_ARRAY_LEN(short_titles) == SB_ARRAY_LEN(sections), "a short title each");

static void emit_entry(void *arg, const char *keys, const char *action, const char *help)
{
    struct help_list *l = arg;
    if (l->n == HELP_MAX_ENTRIES)
        return;
    struct help_entry *e = &l->e[l->n++];
    memset(e, 0, sizeof *e);
    str_copy(e->keys, sizeof e->keys, keys);
    e->name = action;
    e->help = help;
}

static void add_section(struct help_list *l, const char *title)
{
    if (l->n < HELP_MAX_ENTRIES)
        l->e[l->n++] = (struct help_entry){.section = title};
}

static void help_entries(struct help_list *l)
{
    l->n = 0;
    for (size_t s = 0; s < SB_ARRAY_LEN(sections); s++) {
        add_section(l, short_titles[s]);
        for_each_action(sections[s].ctx, emit_entry, l);
    }
    add_section(l, "Commands (:)");
    size_t n;
    const struct command_def *t = command_table(&n);
    for (size_t i = 0; i < n && l->n < HELP_MAX_ENTRIES; i++) {
        struct help_entry *e = &l->e[l->n++];
        memset(e, 0, sizeof *e);
        snprintf(e->keys, sizeof e->keys, ":%s", t[i].name);
        e->name = t[i].usage;
        e->help = t[i].help;
    }
    for (size_t i = 0; i < SB_ARRAY_LEN(console_commands) && l->n < HELP_MAX_ENTRIES; i++) {
        struct help_entry *e = &l->e[l->n++];
        memset(e, 0, sizeof *e);
        snprintf(e->keys, sizeof e->keys, ":%s", console_commands[i][0]);
        e->name = console_commands[i][0];
        e->help = console_commands[i][1];
    }
}

static bool contains_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; hay && *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] &&
               tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n)
            return true;
    }
    return n == 0;
}

static bool entry_matches(const struct help_entry *e, const char *q)
{
    return !e->section && (contains_nocase(e->keys, q) || contains_nocase(e->name, q) ||
                           contains_nocase(e->help, q));
}

void help_open(struct ui *ui)
{
    buf_reset(&ui->popup_text);
    keys_help_text(&ui->popup_text);
    str_copy(ui->popup_title, sizeof ui->popup_title,
             " Help: / search, Tab full reference, Esc closes ");
    ui->popup_scroll = 0;
    ui->help_query[0] = '\0';
    ui->help_typing = false;
    ui->help_full = false;
    ui->modal = MODAL_HELP;
}

/* Typing a query: true when the key was used. */
static bool query_key(struct ui *ui, struct ui_key k)
{
    size_t len = strlen(ui->help_query);
    if (keys_is_escape(k)) {
        ui->help_query[0] = '\0';
        ui->help_typing = false;
    } else if (keys_is_enter(k)) {
        ui->help_typing = false;
    } else if ((k.fn && k.code == KEY_BACKSPACE) || (!k.fn && (k.code == 0x7F || k.code == 8))) {
        if (len > 0)
            ui->help_query[len - 1] = '\0';
    } else if (!k.fn && k.code >= 0x20 && k.code < 0x7F && len + 1 < sizeof ui->help_query) {
        ui->help_query[len] = (char)k.code;
        ui->help_query[len + 1] = '\0';
    } else {
        return false;
    }
    return true;
}

/* true: the help stays open. Scrolling keys in the full reference are the caller's. */
bool help_key(struct ui *ui, struct ui_key k)
{
    if (ui->help_typing && query_key(ui, k))
        return true;
    if (keys_is_escape(k) && ui->help_query[0]) {
        ui->help_query[0] = '\0'; /* Esc clears the search first, then closes */
        return true;
    }
    if (!k.fn && k.code == '/') {
        ui->help_full = false;
        ui->help_typing = true;
        return true;
    }
    if (!k.fn && k.code == '\t') {
        ui->help_full = !ui->help_full;
        ui->popup_scroll = 0;
        return true;
    }
    return !(keys_is_escape(k) || keys_is_enter(k) || (!k.fn && (k.code == 'q' || k.code == '?')) ||
             (k.fn && k.code == KEY_F(1)));
}

bool help_is_full(const struct ui *ui)
{
    return ui->help_full;
}

/* ---- the sheet's layout: sections of cells, a section starting on a new row with its
 * title in the first cell. Moving keys fold into one cell, votes 1-4 into one, a key listed
 * in an earlier section is not repeated, and commands that have a key are not listed again
 * under Commands (the search finds everything). */

struct sheet_cell {
    const char *title; /* a section's title cell */
    char keys[24];
    const char *name;
};

static bool sheet_skip(const struct help_list *l, size_t i)
{
    static const char *const folded[] = {"down",   "page-up", "page-down", "top",        "bottom",
                                         "vote-2", "vote-3",  "vote-4",    "weight-down"};
    const struct help_entry *e = &l->e[i];
    for (size_t k = 0; k < SB_ARRAY_LEN(folded); k++) {
        if (str_eq(e->name, folded[k]))
            return true;
    }
    if (str_has_prefix(e->name, "sort-by-") && i > 0 &&
        str_has_prefix(l->e[i - 1].name, "sort-by-"))
        return true; /* the first sort-by-* cell stands for all of them */
    for (size_t j = 0; j < i; j++) {
        const struct help_entry *p = &l->e[j];
        if (!p->section && str_eq(p->keys, e->keys) && str_eq(p->name, e->name))
            return true;
    }
    if (e->keys[0] == ':' && command_find(e->keys + 1)) { /* a command with a key? */
        size_t n;
        const struct key_binding *b = keys_bindings(&n);
        for (size_t k = 0; k < n; k++) {
            if (str_eq(b[k].action, e->keys + 1))
                return true;
        }
    }
    return false;
}

/* The keys of every sort-by-* action, run together ("NAMWRCXLI$"). */
static void sort_keys(char *out, size_t outlen)
{
    size_t n, len = 0;
    const struct key_binding *b = keys_bindings(&n);
    out[0] = '\0';
    for (size_t k = 0; k < n && len + 1 < outlen; k++) {
        if (str_has_prefix(b[k].action, "sort-by-") && !strstr(out, b[k].label))
            len += (size_t)snprintf(out + len, outlen - len, "%s", b[k].label);
    }
}

static void sheet_cell_of(const struct ui *ui, const struct help_entry *e, struct sheet_cell *c)
{
    memset(c, 0, sizeof *c);
    str_copy(c->keys, sizeof c->keys, e->keys);
    c->name = e->name;
    if (str_eq(e->name, "up")) {
        str_copy(c->keys, sizeof c->keys, ui->utf8 ? "↑↓ jk" : "jk");
        c->name = "move";
    } else if (str_eq(e->name, "vote-1")) {
        str_copy(c->keys, sizeof c->keys, "1-4");
        c->name = "vote better";
    } else if (str_eq(e->name, "weight-up")) {
        str_copy(c->keys, sizeof c->keys, "+ -");
        c->name = "weight +/-1";
    } else if (str_has_prefix(e->name, "sort-by-")) {
        sort_keys(c->keys, sizeof c->keys);
        c->name = "sort by";
    } else if (e->keys[0] == ':') {
        c->name = ""; /* the command's name is its key */
    }
}

/* The sheet's cells; a title cell starts each section. Returns the count. */
static size_t sheet_cells(const struct ui *ui, const struct help_list *l, struct sheet_cell *out,
                          size_t max)
{
    size_t n = 0, title_at = 0;
    for (size_t i = 0; i < l->n && n < max; i++) {
        const struct help_entry *e = &l->e[i];
        if (e->section) {
            if (n > 0 && title_at == n - 1) /* the last section had nothing new */
                out[n++] = (struct sheet_cell){.keys = "", .name = "(as above)"};
            if (n < max) {
                title_at = n;
                out[n++] = (struct sheet_cell){.title = e->section};
            }
        } else if (!sheet_skip(l, i)) {
            sheet_cell_of(ui, e, &out[n++]);
        }
    }
    return n;
}

static void draw_cell(struct ui *ui, int y, int x, int w, const struct sheet_cell *c)
{
    if (c->title) {
        draw_text_cut(ui, y, x, w, c->title, ui->attr[THEME_TITLE] | A_BOLD);
        return;
    }
    int kw = c->name[0] ? 6 : w;
    int need = text_width(c->keys, strlen(c->keys));
    if (c->name[0] && need > kw)
        kw = need < w / 2 ? need : w / 2; /* "NAMWRCXLI$": the keys matter more */
    int used = draw_text_cut(ui, y, x, kw, c->keys, ui->attr[THEME_STATUS_KEY]);
    if (c->name[0])
        draw_text_cut(ui, y, x + (used > kw ? used : kw) + 1, w - kw - 1, c->name,
                      ui->attr[THEME_POPUP]);
}

static void draw_sheet(struct ui *ui, const struct help_list *l, int y, int x, int h, int w)
{
    static struct sheet_cell cells[HELP_MAX_ENTRIES * 2];
    size_t n = sheet_cells(ui, l, cells, SB_ARRAY_LEN(cells));
    int per_row = w / 19 > 0 ? w / 19 : 1;
    int colw = w / per_row;
    int row = 0, col = 0;
    bool cut = false;
    for (size_t i = 0; i < n; i++) {
        if ((cells[i].title && col > 0) || col == per_row) {
            row++;
            col = 0;
        }
        if (row >= h) {
            cut = true;
            break;
        }
        draw_cell(ui, y + row, x + col * colw, colw - 1, &cells[i]);
        col++;
    }
    if (cut) /* on the box's bottom border */
        draw_text_right(ui, y + h, x, w, " more: / to search, Tab for all ",
                        ui->attr[THEME_BORDER]);
}

static void draw_matches(struct ui *ui, const struct help_list *l, int y, int x, int h, int w)
{
    int row = 0;
    size_t total = 0;
    for (size_t i = 0; i < l->n; i++) {
        const struct help_entry *e = &l->e[i];
        if (!entry_matches(e, ui->help_query))
            continue;
        total++;
        if (row >= h - 1)
            continue;
        int kw = 14;
        draw_text_cut(ui, y + row, x, kw, e->keys, ui->attr[THEME_STATUS_KEY]);
        int nw = draw_text_cut(ui, y + row, x + kw + 1, w - kw - 1, e->name, ui->attr[THEME_POPUP]);
        int hx = x + kw + 1 + (nw < 14 ? 14 : nw) + 1;
        if (hx < x + w)
            draw_text_cut(ui, y + row, hx, x + w - hx, e->help, ui->attr[THEME_DIM]);
        row++;
    }
    char line[120];
    snprintf(line, sizeof line, "%zu match%s for \"%s\"%s", total, total == 1 ? "" : "es",
             ui->help_query, total == 0 ? " (Esc clears)" : "");
    draw_text_cut(ui, y + h - 1, x, w, line, ui->attr[THEME_DIM]);
}

/* The cheat-sheet (not the full reference: console.c draws that as a popup). */
void help_draw(struct ui *ui)
{
    int y = 1, x = 0, h = LINES - 3, w = COLS;
    if (h < 4 || w < 20)
        return;
    attr_t a = ui->attr[THEME_POPUP];
    for (int r = 0; r < h; r++)
        draw_fill(y + r, x, w, a);
    draw_box(ui, y, x, h, w, ui->attr[THEME_BORDER], ui->popup_title);
    static struct help_list l;
    help_entries(&l);
    int iw = w - 4;
    bool searching = ui->help_typing || ui->help_query[0];
    if (!searching) { /* the sheet has every inner row; the hint sits on the bottom border */
        draw_text_cut(ui, y + h - 1, x + 2, iw - 34, " y/n first: p d f r u; : at once ",
                      ui->attr[THEME_BORDER]);
        draw_sheet(ui, &l, y + 1, x + 2, h - 2, iw);
        return;
    }
    draw_matches(ui, &l, y + 1, x + 2, h - 3, iw); /* the last inner row is the search line */
    char q[96];
    snprintf(q, sizeof q, "/%s", ui->help_query);
    draw_fill(y + h - 2, x + 1, w - 2, a);
    int cx = draw_text_cut(ui, y + h - 2, x + 2, iw, q, ui->attr[THEME_INPUT]);
    if (ui->help_typing) {
        ui->cur_y = y + h - 2;
        ui->cur_x = x + 2 + cx;
    }
}

/* Where a set of contexts is, in words. */
static void where_text(unsigned ctx, char *out, size_t n)
{
    static const struct {
        unsigned ctx;
        const char *name;
    } names[] = {{CTX_BOARD, "board"},
                 {CTX_EVENTS, "events pane"},
                 {CTX_DETAIL, "detail view"},
                 {CTX_COMPARE | CTX_ANSWERS, "prompt pane"},
                 {CTX_ANSWERS, "prompt pane answers"}};
    if (ctx == CTX_ALL) {
        snprintf(out, n, "everywhere");
        return;
    }
    if (ctx == (CTX_VIEWS | CTX_ANSWERS)) {
        snprintf(out, n, "everywhere except while typing");
        return;
    }
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < SB_ARRAY_LEN(names) && len < n; i++) {
        if ((ctx & names[i].ctx) == names[i].ctx) {
            len += (size_t)snprintf(out + len, n - len, "%s%s", len ? ", " : "", names[i].name);
            ctx &= ~names[i].ctx;
        }
    }
}

void console_keys_markdown(struct buf *out)
{
    size_t n_bindings;
    const struct key_binding *bindings = keys_bindings(&n_bindings);
    buf_printf(out, "| Keys | Where | Action | What it does |\n| --- | --- | --- | --- |\n");
    for (size_t i = 0; i < n_bindings; i++) {
        const struct key_binding *b = &bindings[i];
        bool seen = false; /* one row per action and set of places */
        for (size_t j = 0; j < i; j++)
            seen |= str_eq(bindings[j].action, b->action) && bindings[j].ctx == b->ctx;
        if (seen)
            continue;
        char keys[64] = "", where[96];
        size_t len = 0;
        unsigned ctx = b->ctx;
        for (size_t j = i; j < n_bindings; j++) {
            if (!str_eq(bindings[j].action, b->action) || bindings[j].ctx != ctx)
                continue;
            if (!strstr(keys, bindings[j].label) && len < sizeof keys)
                len += (size_t)snprintf(keys + len, sizeof keys - len, "%s%s", len ? "` `" : "",
                                        bindings[j].label);
        }
        where_text(ctx, where, sizeof where);
        buf_printf(out, "| `%s` | %s | `%s` | %s |\n", keys, where, b->action,
                   keys_action_help(b->action));
    }
    buf_printf(out, "\n| Command (`:` line) | What it does |\n| --- | --- |\n");
    size_t n;
    const struct command_def *t = command_table(&n);
    for (size_t i = 0; i < n; i++)
        buf_printf(out, "| `%s` | %s%s |\n", t[i].usage, t[i].help,
                   t[i].confirm ? " (its key asks y/n first)" : "");
    for (size_t i = 0; i < SB_ARRAY_LEN(console_commands); i++)
        buf_printf(out, "| `%s` | %s |\n", console_commands[i][0], console_commands[i][1]);
}
