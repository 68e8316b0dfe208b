/*
 * console.c - the console's lifecycle and main loop. Each turn: take the newest router
 * snapshot (a copy; the router holds its lock only for the memcpy), take the worker's
 * verdicts, read every pending key, redraw when something changed or refresh_ms passed (at
 * most 250 ms: at least four frames a second), then sleep in poll() on the terminal and a
 * signalfd. Nothing here waits on the network or on the router.
 *
 * Threads: main only. Signals SIGINT/SIGTERM/SIGHUP are blocked in every thread by the
 * caller and read here from a signalfd; SIGWINCH is left to curses (KEY_RESIZE) and is
 * unblocked in this thread alone, after the worker thread has started.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <langinfo.h>

#include "internal.h"
#include "switchboard/log.h"

/* ---- shared helpers ------------------------------------------------------------------------- */

void ui_message(struct ui *ui, enum theme_elem e, const char *fmt, ...)
{
    char text[sizeof ui->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    memcpy(ui->message, text, sizeof text);
    ui->message_elem = e;
    ui->message_until = clock_mono_ms() + UI_MESSAGE_MS;
    ui->dirty = true;
}

void ui_quit(struct ui *ui)
{
    ui->quit = true;
}

const struct router_target_snap *ui_selected_target(const struct ui *ui)
{
    if (!ui->have_snap || ui->n_visible == 0 || ui->sel < 0 || ui->sel >= (int)ui->n_visible)
        return NULL;
    return &ui->snap->targets[ui->visible[ui->sel]];
}

static bool passes(const struct ui *ui, const struct router_target_snap *t)
{
    if (ui->faults_only && !board_is_fault(t))
        return false;
    if (!ui->filter[0])
        return true;
    return strcasestr(t->name, ui->filter) || strcasestr(t->model, ui->filter) ||
           strcasestr(t->kind, ui->filter);
}

void ui_rebuild_visible(struct ui *ui)
{
    ui->n_visible = 0;
    if (!ui->have_snap)
        return;
    const struct router_snapshot *s = ui->snap;
    for (size_t i = 0; i < s->n_targets; i++) {
        if (!passes(ui, &s->targets[i]))
            continue;
        /* Insertion sort: stable, and n is at most ROUTER_MAX_TARGETS. */
        size_t k = ui->n_visible++;
        while (k > 0 && sort_compare(ui, &s->targets[ui->visible[k - 1]], &s->targets[i]) > 0) {
            ui->visible[k] = ui->visible[k - 1];
            k--;
        }
        ui->visible[k] = i;
    }
    /* Keep the selection on the same target. */
    for (size_t k = 0; k < ui->n_visible; k++) {
        if (str_eq(s->targets[ui->visible[k]].name, ui->selected)) {
            ui->sel = (int)k;
            return;
        }
    }
    if (ui->sel >= (int)ui->n_visible)
        ui->sel = ui->n_visible ? (int)ui->n_visible - 1 : 0;
    if (ui->n_visible)
        str_copy(ui->selected, sizeof ui->selected, s->targets[ui->visible[ui->sel]].name);
}

/* ---- intake --------------------------------------------------------------------------------- */

/* htop's change highlighting: a row whose state text changed flashes for UI_FLASH_MS. */
static void note_changes(struct ui *ui)
{
    for (size_t i = 0; i < ui->snap->n_targets; i++) {
        const struct router_target_snap *t = &ui->snap->targets[i];
        char st[32];
        enum theme_elem e;
        board_state_text(t, st, sizeof st, &e);
        char *sp = strchr(st, ' '); /* "OPEN 12s": the countdown is not a change */
        if (sp)
            *sp = '\0';
        struct ui_row_mem *m = NULL;
        for (size_t k = 0; k < ui->n_mem && !m; k++) {
            if (str_eq(ui->mem[k].name, t->name))
                m = &ui->mem[k];
        }
        if (!m) {
            if (ui->n_mem == SB_ARRAY_LEN(ui->mem))
                continue;
            m = &ui->mem[ui->n_mem++];
            str_copy(m->name, sizeof m->name, t->name);
            str_copy(m->state, sizeof m->state, st);
            continue;
        }
        if (!str_eq(m->state, st)) {
            str_copy(m->state, sizeof m->state, st);
            m->flash_until = ui->now_ms + UI_FLASH_MS;
        }
    }
}

static void intake(struct ui *ui)
{
    ui->n_inst = ui->be->ops->instances(ui->be->self, ui->inst, CONSOLE_MAX_INSTANCES);
    if (ui->n_inst > CONSOLE_MAX_INSTANCES)
        ui->n_inst = CONSOLE_MAX_INSTANCES;
    if (ui->be->ops->snapshot(ui->be->self, ui->snap, ui->stale,
                              ui->have_snap ? ui->snap->gen : 0)) {
        bool first = !ui->have_snap;
        ui->have_snap = true;
        events_intake(ui, ui->snap);
        note_changes(ui);
        ui_rebuild_visible(ui);
        if (first && ui->n_visible)
            board_move(ui, 0);
        ui->dirty = true;
    }
    if (ui->have_snap)
        board_note_spend(ui);
    watch_intake(ui);
}

static void take_verdicts(struct ui *ui)
{
    struct console_reply *list = ui->be->ops->take(ui->be->self);
    for (struct console_reply *r = list; r; r = r->next) {
        if (ui->pending)
            ui->pending--;
        if (r->type != CONSOLE_JOB_COMMAND && r->status == SB_OK) {
            buf_reset(&ui->popup_text);
            buf_puts(&ui->popup_text, r->text ? r->text : "");
            str_copy(ui->popup_title, sizeof ui->popup_title, r->label);
            ui->popup_scroll = 0;
            if (ui->modal == MODAL_NONE)
                ui->modal = MODAL_POPUP;
            ui_message(ui, THEME_OK, "%s: done", r->label);
        } else if (r->status == SB_OK && str_has_prefix(r->label, "probe ")) {
            watch_probe_begin(ui, r->label + 6); /* its result, when it comes, says more */
        } else if (r->status == SB_OK) {
            ui_message(ui, THEME_OK, "ok: %s", r->msg[0] ? r->msg : r->label);
        } else {
            ui_message(ui, THEME_ERROR, "%s: %s", r->label, r->msg);
        }
    }
    console_reply_free(list);
}

/* ---- drawing -------------------------------------------------------------------------------- */

static void draw_popup(struct ui *ui)
{
    int w = COLS - 4 < 110 ? COLS - 4 : 110, h = LINES - 4;
    int x = (COLS - w) / 2, y = 2;
    if (w < 20 || h < 4)
        return;
    attr_t a = ui->attr[THEME_POPUP];
    for (int r = 0; r < h; r++)
        draw_fill(y + r, x, w, a);
    draw_box(ui, y, x, h, w, ui->attr[THEME_BORDER], ui->popup_title);
    enum { MAX_LINES = 2048 };
    static struct wrap_line lines[MAX_LINES];
    const char *text = buf_str(&ui->popup_text);
    size_t total = text_wrap(text, ui->popup_text.len, w - 4, lines, MAX_LINES);
    if (total > MAX_LINES)
        total = MAX_LINES;
    int inner = h - 2;
    if (ui->popup_scroll > (int)total - inner)
        ui->popup_scroll = (int)total - inner > 0 ? (int)total - inner : 0;
    if (ui->popup_scroll < 0)
        ui->popup_scroll = 0;
    for (int r = 0; r < inner && (size_t)ui->popup_scroll + (size_t)r < total; r++) {
        const struct wrap_line *l = &lines[ui->popup_scroll + r];
        draw_textn(ui, y + 1 + r, x + 2, w - 4, text + l->start, l->len, a);
    }
    if ((int)total > inner) {
        char more[48];
        snprintf(more, sizeof more, " %d-%d of %zu ", ui->popup_scroll + 1,
                 ui->popup_scroll + inner, total);
        draw_text_right(ui, y + h - 1, x + 2, w - 6, more, ui->attr[THEME_BORDER]);
    }
}

static void draw_message(struct ui *ui, int y)
{
    switch (ui->modal) {
    case MODAL_INPUT:
        cmdline_draw(ui, y);
        return;
    case MODAL_CONFIRM:
        confirm_draw(ui, y);
        return;
    case MODAL_NONE:
    case MODAL_HELP:
    case MODAL_POPUP:
        break;
    }
    draw_fill(y, 0, COLS, ui->attr[THEME_NORMAL]);
    if (ui->message[0] && ui->now_ms < ui->message_until)
        draw_text(ui, y, 1, COLS - 1, ui->message, ui->attr[ui->message_elem]);
    else if (ui->pending)
        draw_text(ui, y, 1, COLS - 1, "waiting for the router's verdict...", ui->attr[THEME_DIM]);
}

static void draw(struct ui *ui)
{
    ui->cur_y = -1;
    erase();
    if (COLS < 40 || LINES < 10) {
        draw_text(ui, 0, 0, COLS, "switchboard: terminal too small (40x10 at least)",
                  ui->attr[THEME_ERROR]);
        curs_set(0);
        refresh();
        return;
    }
    board_header(ui, 0);
    if (ui->view != VIEW_DETAIL) {
        struct console_quality none;
        ui->be->ops->quality(ui->be->self, NULL, &none); /* no target watched: reading stops */
    }
    if (ui->have_snap) {
        switch (ui->view) {
        case VIEW_BOARD:
            board_draw(ui);
            break;
        case VIEW_DETAIL:
            detail_draw(ui);
            break;
        case VIEW_COMPARE:
            compare_draw(ui);
            break;
        }
    }
    draw_message(ui, LINES - 2);
    keys_draw_status(ui, LINES - 1);
    if (ui->modal == MODAL_HELP && !help_is_full(ui)) {
        ui->cur_y = -1;
        help_draw(ui); /* sets the cursor while the search is typed */
    } else if (ui->modal == MODAL_HELP || ui->modal == MODAL_POPUP) {
        draw_popup(ui);
        ui->cur_y = -1;
    }
    if (ui->cur_y >= 0) {
        curs_set(1);
        move(ui->cur_y, ui->cur_x);
    } else {
        curs_set(0);
    }
    refresh();
}

/* ---- input and signals ---------------------------------------------------------------------- */

static void read_keys(struct ui *ui)
{
    wint_t wc;
    int r;
    int budget = 256; /* a paste of a long prompt arrives in one go */
    while (budget-- > 0 && (r = get_wch(&wc)) != ERR) {
        if (r == KEY_CODE_YES && wc == KEY_RESIZE) {
            ui->dirty = true;
            continue;
        }
        if (r != KEY_CODE_YES && wc == 27 && sort_mouse_report(ui))
            continue; /* a click: handled */
        keys_dispatch(ui, (struct ui_key){r == KEY_CODE_YES, wc});
        if (ui->quit)
            return;
    }
}

static void read_signals(struct ui *ui, int sfd)
{
    struct signalfd_siginfo si;
    while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGHUP) {
            if (ui->opts->reload && ui->opts->reload(ui->opts->reload_ctx))
                ui_message(ui, THEME_OK, "SIGHUP: config reloaded (see the events pane)");
            else if (ui->opts->reload)
                ui_message(ui, THEME_ERROR,
                           "SIGHUP: config reload REJECTED, the running config stays (the "
                           "events pane says why)");
        } else {
            ui_quit(ui);
        }
    }
}

static long refresh_interval(const struct console_opts *o)
{
    long r = o->refresh_ms > 0 ? o->refresh_ms : 250;
    return r < 50 ? 50 : r > 250 ? 250 : r;
}

static void loop(struct ui *ui, int sfd)
{
    long refresh = refresh_interval(ui->opts);
    int64_t last_draw = 0;
    while (!ui->quit) {
        ui->now_ms = clock_mono_ms();
        intake(ui);
        take_verdicts(ui);
        read_keys(ui);
        if (sfd >= 0)
            read_signals(ui, sfd);
        if (ui->quit)
            break;
        ui->now_ms = clock_mono_ms();
        bool streaming = ui->view == VIEW_COMPARE && compare_busy(&ui->cmp);
        long every = streaming ? 50 : refresh;
        if (ui->dirty || ui->now_ms - last_draw >= every) {
            draw(ui);
            ui->dirty = false;
            last_draw = ui->now_ms;
        }
        long wait = every - (long)(clock_mono_ms() - last_draw);
        struct pollfd pfd[2] = {{STDIN_FILENO, POLLIN, 0}, {sfd, POLLIN, 0}};
        if (poll(pfd, sfd >= 0 ? 2 : 1, wait < 5 ? 5 : (int)wait) < 0 && errno == EINTR)
            ui->dirty = true; /* SIGWINCH: curses has a KEY_RESIZE for us */
        if (pfd[0].revents & (POLLHUP | POLLERR | POLLNVAL)) {
            log_warn("console: the terminal went away; stopping");
            ui_quit(ui); /* the terminal hung up: SIGHUP alone means reload */
        }
    }
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

static void ui_init(struct ui *ui, struct console_backend *be, const struct console_opts *opts)
{
    memset(ui, 0, sizeof *ui);
    ui->be = be;
    ui->attached = !str_eq(be->mode, "embedded");
    ui->opts = opts;
    ui->snap = xcalloc(1, sizeof *ui->snap);
    ui->sort_col = -1;
    ui->cur_y = -1;
    events_init(&ui->events);
    buf_init(&ui->popup_text);
    compare_init(&ui->cmp);
    const char *cs = nl_langinfo(CODESET);
    ui->utf8 = cs && (!strcasecmp(cs, "UTF-8") || !strcasecmp(cs, "utf8"));
    if (opts->readonly)
        ui_message(ui, THEME_ERROR,
                   "read-only console: you can look, compare and explain; "
                   "every change is refused");
    term_load_themes(ui, opts->theme, opts->theme_explicit);
}

static void ui_cleanup(struct ui *ui)
{
    compare_cleanup(ui, &ui->cmp);
    events_cleanup(&ui->events);
    buf_cleanup(&ui->popup_text);
    free(ui->snap);
}

int console_run(struct console_backend *be, const struct console_opts *opts, char *msg,
                size_t msglen)
{
    struct ui *ui = xcalloc(1, sizeof *ui);
    ui_init(ui, be, opts);
    int rc = 1, sfd = -1;
    if (opts->signals) {
        sfd = signalfd(-1, opts->signals, SFD_NONBLOCK | SFD_CLOEXEC);
        if (sfd < 0) {
            snprintf(msg, msglen, "signalfd: %s", strerror(errno));
            goto out;
        }
    }
    sigset_t winch;
    sigemptyset(&winch);
    sigaddset(&winch, SIGWINCH);
    pthread_sigmask(SIG_UNBLOCK, &winch, NULL);
    if (term_start(msg, msglen) != SB_OK)
        goto out;
    term_apply_theme(ui);
    loop(ui, sfd);
    rc = 0;
out:
    term_stop();
    if (sfd >= 0)
        close(sfd);
    ui_cleanup(ui);
    free(ui);
    return rc;
}
