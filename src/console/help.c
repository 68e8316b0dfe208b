/*
 * help.c - the help overlay (?) and `switchboard console --keys` (Markdown for the README),
 * both generated from the key table (keys.c) and the command table (command.h), so what the
 * console says, what the docs say and what the keys do cannot drift apart.
 *
 * Pure text building; any thread (only the main thread calls it).
 */
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
