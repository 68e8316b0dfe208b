/*
 * console.h - the ncurses console: the board (one row per target, header, sparklines,
 * incident timeline), the detail view, operator controls (keys and the `:` line, through the
 * command table), the prompt pane (one prompt to 2-4 targets, answers side by side), themes.
 *
 * Threads: console_run runs on the main thread and owns curses and every piece of view
 * state. It reads and changes the router only through a console backend
 * (console_backend.h): the router in this process, or running gateways over HTTP. Every
 * backend call returns at once (a copy, or a posted job) so a slow answer never freezes a key. The
 * prompt pane's sinks run on the router thread and only append to mutex-guarded per-column buffers;
 * the main thread draws from copies.
 *
 * Terminal: console_run restores the terminal on every way out: return, the signals it is
 * given (SIGINT/SIGTERM quit, SIGHUP calls opts->reload), exit(), and fatal signals
 * (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGQUIT: endwin, then the previous handler
 * runs). When the terminal itself goes away (hangup) the console stops.
 */
#ifndef SWITCHBOARD_CONSOLE_H
#define SWITCHBOARD_CONSOLE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "switchboard/router.h"
#include "switchboard/util.h"

/* What the header shows as today's spend. Until the ledger (issue 5) exists, the default
 * is the router's spend since start, labelled as such, and no budget. */
struct console_spend {
    double spend_usd;
    bool has_budget;
    double budget_usd;
    char label[32];          /* "today", "since start" */
    double burn_per_hour;    /* USD/h; < 0: the console works it out from spend_usd over time */
    int64_t exhausted_in_ms; /* time until the budget runs out; < 0: the console works it out */
};
typedef void (*console_spend_fn)(void *ctx, const struct router_snapshot *snap,
                                 struct console_spend *out);

struct console_opts {
    const char *config_path;  /* shown in the header; may be NULL */
    const char *gateway_addr; /* "127.0.0.1:8080" as bound */
    const char *theme;        /* NULL: "default" */
    bool theme_explicit;      /* --theme was given: it wins over NO_COLOR (which otherwise
                               * leaves the mono theme only) */
    long refresh_ms;          /* redraw interval; clamped to 50..250 */
    bool readonly;            /* refuse every change, visibly */
    long quality_min_volume;  /* ratings before the detail view shows a mean; <= 0: 1 */
    /* Signals to take (blocked in every thread before any thread started; the console
     * reads them with a signalfd): SIGINT and SIGTERM quit, SIGHUP calls reload. */
    const sigset_t *signals;
    bool (*reload)(void *ctx); /* SIGHUP; false when the file was rejected; may be NULL */
    void *reload_ctx;
    /* Hooks for the ledger (issue 5); NULL: built-in behaviour. */
    console_spend_fn spend;
    void *spend_ctx;
};

struct console_backend;

/* Runs the console until the operator quits or SIGINT/SIGTERM arrives. be (the in-process
 * router or attached gateways, console_backend.h) is borrowed. Returns 0, or 1 with msg when
 * the terminal cannot be used. */
int console_run(struct console_backend *be, const struct console_opts *opts, char *msg,
                size_t msglen);

/* The key and command reference as Markdown (generated from the key and command tables). */
void console_keys_markdown(struct buf *out);

/* ---- column layout (pure; unit-tested) -------------------------------------------------- */

struct console_col {
    int width;    /* wanted width in cells (> 0) */
    int priority; /* 0: always shown; higher numbers drop first when space is short */
    bool flex;    /* takes the cells left over (at most one should) */
};

struct console_place {
    size_t col; /* index into the cols given */
    int x;      /* first cell */
    int width;
};

/*
 * Lays n columns out in `width` cells with `gap` blank cells between neighbours, in their
 * given order. Columns join by priority (lowest number first, ties in order) while they fit;
 * priority-0 columns always join, the last of them cut to fit when even they do not. Cells
 * left over widen the flex column. Never overlaps and never passes `width`. Returns how many
 * were placed (at most n) into out, in display order.
 */
size_t console_layout(int width, const struct console_col *cols, size_t n, int gap,
                      struct console_place *out);

#endif
