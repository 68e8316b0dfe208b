/*
 * term.c - the terminal: curses start and stop, putting the terminal back on every way out
 * (normal return, exit() through atexit, fatal signals through a handler that calls endwin
 * and then lets the previous handler - the default, or a sanitizer's - do its job), and
 * themes turned into curses attributes (256 -> 16 -> 8 colours -> attributes only).
 *
 * Main thread only, except the fatal-signal handler, which runs on whichever thread faulted.
 * endwin() is not async-signal-safe; after a fatal signal the process is dying anyway and
 * a usable terminal is worth the risk (every TUI that restores on SIGSEGV does this).
 */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

static volatile sig_atomic_t term_active;
static SCREEN *screen;
static bool default_colors;
static bool handlers_installed;

static const int fatal_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGQUIT};
static struct sigaction previous[SB_ARRAY_LEN(fatal_signals)];

/* Mouse clicks as SGR reports (xterm 1000 + 1006: "ESC [ < b ; x ; y M"), read by the
 * console itself (sort.c) with a bounded wait: ncurses' own X10 decoding blocks on a short
 * report, and a frozen console is the one thing an incident tool must not be. */
static const char mouse_on[] = "\033[?1000h\033[?1006h";
static const char mouse_off[] = "\033[?1006l\033[?1000l";

static void restore_terminal(void)
{
    if (!term_active)
        return;
    term_active = 0;
    ssize_t w = write(STDOUT_FILENO, mouse_off, sizeof mouse_off - 1); /* signal-safe */
    (void)w;
    endwin();
}

static void on_fatal(int sig)
{
    restore_terminal();
    for (size_t i = 0; i < SB_ARRAY_LEN(fatal_signals); i++) {
        if (fatal_signals[i] == sig)
            sigaction(sig, &previous[i], NULL);
    }
    /* Pending until this handler returns; a fault re-executes and faults again anyway. */
    raise(sig);
}

static void install_handlers(void)
{
    if (handlers_installed)
        return;
    handlers_installed = true;
    atexit(restore_terminal);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < SB_ARRAY_LEN(fatal_signals); i++)
        sigaction(fatal_signals[i], &sa, &previous[i]);
}

enum sb_status term_start(char *msg, size_t msglen)
{
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        snprintf(msg, msglen, "the console needs a terminal (use `switchboard serve` headless)");
        return SB_ERR_STATE;
    }
    const char *term = getenv("TERM");
    if (!term || !*term) {
        snprintf(msg, msglen, "TERM is not set: cannot drive this terminal");
        return SB_ERR_STATE;
    }
    install_handlers();
    screen = newterm(NULL, stdout, stdin);
    if (!screen) {
        snprintf(msg, msglen, "cannot use terminal type '%s'", term);
        return SB_ERR_STATE;
    }
    set_term(screen);
    term_active = 1;
    cbreak();
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    fflush(stdout);
    ssize_t w = write(STDOUT_FILENO, mouse_on, sizeof mouse_on - 1);
    (void)w;
    nodelay(stdscr, TRUE);
    set_escdelay(25);
    curs_set(0);
    if (has_colors()) {
        start_color();
        default_colors = use_default_colors() == OK;
    }
    return SB_OK;
}

void term_stop(void)
{
    if (!screen)
        return;
    restore_terminal();
    delscreen(screen);
    screen = NULL;
}

/* ---- themes --------------------------------------------------------------------------------- */

static attr_t attrs_of(unsigned a)
{
    attr_t r = A_NORMAL;
    if (a & THEME_ATTR_BOLD)
        r |= A_BOLD;
    if (a & THEME_ATTR_DIM)
        r |= A_DIM;
    if (a & THEME_ATTR_REVERSE)
        r |= A_REVERSE;
    if (a & THEME_ATTR_UNDERLINE)
        r |= A_UNDERLINE;
    if (a & THEME_ATTR_STANDOUT)
        r |= A_STANDOUT;
#ifdef A_ITALIC
    if (a & THEME_ATTR_ITALIC)
        r |= A_ITALIC;
#endif
    return r;
}

void term_apply_theme(struct ui *ui)
{
    const struct theme *t = &ui->themes[ui->theme_idx];
    bool color = has_colors() && COLORS >= 8 && !str_eq(t->name, "mono");
    struct theme mono;
    if (!color) { /* no colour here: the mono theme's attributes carry the meaning */
        theme_mono(&mono);
        t = &mono;
    }
    for (size_t e = 0; e < THEME_ELEM_COUNT; e++) {
        const struct theme_style *st = &t->el[e];
        attr_t a = attrs_of(st->attrs);
        int fg = theme_color_for(st->fg, COLORS), bg = theme_color_for(st->bg, COLORS);
        if (color && e + 1 < (size_t)COLOR_PAIRS && (fg >= 0 || bg >= 0)) {
            if (!default_colors) {
                fg = fg < 0 ? COLOR_WHITE : fg;
                bg = bg < 0 ? COLOR_BLACK : bg;
            }
            init_pair((short)(e + 1), (short)fg, (short)bg);
            a |= COLOR_PAIR((int)(e + 1));
        }
        ui->attr[e] = a;
    }
    bkgdset(ui->attr[THEME_NORMAL] | ' ');
}

static int name_order(const char *name)
{
    static const char *const order[] = {"default", "dark", "light", "high-contrast", "mono"};
    for (size_t i = 0; i < SB_ARRAY_LEN(order); i++) {
        if (str_eq(order[i], name))
            return (int)i;
    }
    return (int)SB_ARRAY_LEN(order);
}

static int by_name(const void *a, const void *b)
{
    const struct theme *x = a, *y = b;
    int ox = name_order(x->name), oy = name_order(y->name);
    return ox != oy ? ox - oy : strcmp(x->name, y->name);
}

static bool have(const struct ui *ui, const char *name)
{
    for (size_t i = 0; i < ui->n_themes; i++) {
        if (str_eq(ui->themes[i].name, name))
            return true;
    }
    return false;
}

static void load_dir(struct ui *ui, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) && ui->n_themes < UI_MAX_THEMES) {
        size_t len = strlen(de->d_name);
        if (len < 6 || !str_eq(de->d_name + len - 5, ".json"))
            continue;
        char *path = xasprintf("%s/%s", dir, de->d_name);
        struct theme t;
        char err[300];
        if (theme_load_file(path, &t, err, sizeof err) == SB_OK) {
            if (!have(ui, t.name))
                ui->themes[ui->n_themes++] = t;
        } else {
            ui_message(ui, THEME_ERROR, "theme skipped: %s", err);
        }
        free(path);
    }
    closedir(d);
}

void term_load_themes(struct ui *ui, const char *wanted, bool explicit)
{
    ui->n_themes = 0;
    const char *no_color = getenv("NO_COLOR");
    if (no_color && *no_color && !(explicit && wanted && *wanted)) {
        theme_mono(&ui->themes[ui->n_themes++]);
        ui->theme_idx = 0;
        return;
    }
    char dir[1024];
    if (theme_find_dir(dir, sizeof dir))
        load_dir(ui, dir);
    if (!have(ui, "default") && ui->n_themes < UI_MAX_THEMES)
        theme_default(&ui->themes[ui->n_themes++]);
    if (!have(ui, "mono") && ui->n_themes < UI_MAX_THEMES)
        theme_mono(&ui->themes[ui->n_themes++]);
    qsort(ui->themes, ui->n_themes, sizeof ui->themes[0], by_name);
    ui->theme_idx = 0;
    if (!wanted || !*wanted)
        return;
    for (size_t i = 0; i < ui->n_themes; i++) {
        if (str_eq(ui->themes[i].name, wanted)) {
            ui->theme_idx = i;
            return;
        }
    }
    if (ui->message[0]) /* it failed to load: say why */
        ui_message(ui, THEME_ERROR, "%.200s; using the default theme", ui->message);
    else
        ui_message(ui, THEME_ERROR, "no theme named '%s': using the default theme", wanted);
}
