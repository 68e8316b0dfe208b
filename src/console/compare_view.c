/*
 * compare_view.c - the prompt pane on screen: system prompt, max tokens, the targets to
 * compare, the multi-line prompt editor, and the answers side by side (one boxed column per
 * target, wrapped by display width, scrolled together) with TTFT, latency, tokens, tokens/s
 * and cost under each. compare_key handles typing in the focused field; commands (send, save,
 * vote, focus, back) come through the key table.
 *
 * Main thread only: draws from copies of the columns (compare_copy).
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define CTRL(c) ((c)&0x1f)

static const char *const focus_names[] = {
    [CMP_FOCUS_PROMPT] = "prompt",     [CMP_FOCUS_SYSTEM] = "system prompt",
    [CMP_FOCUS_MAXTOK] = "max tokens", [CMP_FOCUS_TARGETS] = "targets",
    [CMP_FOCUS_ANSWERS] = "answers",
};

/* ---- fields --------------------------------------------------------------------------------- */

static void draw_label(struct ui *ui, int y, int x, const char *label, bool focused)
{
    draw_text(ui, y, x, (int)strlen(label), label,
              focused ? ui->attr[THEME_STATUS_KEY] : ui->attr[THEME_TITLE]);
}

/* The target chooser: every target of the snapshot, [x] when picked. */
static int draw_targets(struct ui *ui, int y, int x, int w, bool focused)
{
    struct compare *c = &ui->cmp;
    int cx = x;
    size_t n = ui->have_snap ? ui->snap->n_targets : 0;
    if (c->target_cursor >= (int)n)
        c->target_cursor = n ? (int)n - 1 : 0;
    /* Scroll so the cursor's entry shows. */
    size_t first = 0;
    for (;;) {
        int need = 0;
        for (size_t i = first; i <= (size_t)c->target_cursor && i < n; i++)
            need += (int)strlen(ui->snap->targets[i].name) + 5;
        if (need <= w || first >= (size_t)c->target_cursor)
            break;
        first++;
    }
    int cursor_x = x;
    for (size_t i = first; i < n; i++) {
        const struct router_target_snap *t = &ui->snap->targets[i];
        char item[96];
        snprintf(item, sizeof item, "[%s] %s", compare_is_picked(c, t->name) ? "x" : " ", t->name);
        int iw = text_width(item, strlen(item));
        if (cx + iw > x + w)
            break;
        attr_t a = ui->attr[THEME_NORMAL];
        if (focused && (int)i == c->target_cursor)
            a = ui->attr[THEME_ROW_SELECTED];
        else if (!t->enabled || t->drained || t->breaker == BREAKER_OPEN)
            a = ui->attr[THEME_DIM];
        if ((int)i == c->target_cursor)
            cursor_x = cx + 1;
        draw_text(ui, y, cx, iw, item, a);
        cx += iw + 2;
    }
    return cursor_x;
}

/* ---- answers -------------------------------------------------------------------------------- */

/* The figures under an answer, most important first (the cost leads: a narrow column at
 * 80x24 with 4 targets keeps it however few lines fit). */
static void figures(const struct cmp_view *v, char items[10][64], size_t *n)
{
    char a[32], b[32];
    *n = 0;
    if (v->state == CMP_WAITING || v->state == CMP_STREAMING) {
        fmt_us(v->elapsed_us, b, sizeof b);
        snprintf(items[(*n)++], 64, "cost: pending");
        snprintf(items[(*n)++], 64, "%s %s", v->state == CMP_WAITING ? "waiting" : "streaming", b);
        fmt_us(v->ttft_us, a, sizeof a);
        snprintf(items[(*n)++], 64, "ttft %s", a);
        return;
    }
    if (v->usage.present && v->cost_usd >= 0) {
        fmt_usd_exact(v->cost_usd, a, sizeof a);
        snprintf(items[(*n)++], 64, "%s", a);
    } else if (v->usage.present) {
        snprintf(items[(*n)++], 64, "cost n/a (attached)");
    } else {
        snprintf(items[(*n)++], 64, "cost ? (no usage)");
    }
    fmt_us(v->latency_us, b, sizeof b);
    snprintf(items[(*n)++], 64, "total %s", b);
    fmt_us(v->ttft_us, a, sizeof a);
    snprintf(items[(*n)++], 64, "ttft %s", a);
    if (v->usage.present) {
        double gen_s = (double)(v->latency_us - (v->ttft_us > 0 ? v->ttft_us : 0)) / 1e6;
        snprintf(items[(*n)++], 64, "in %ld", v->usage.input_tokens);
        snprintf(items[(*n)++], 64, "out %ld", v->usage.output_tokens);
        snprintf(items[(*n)++], 64, "%.1f tok/s",
                 gen_s > 0 ? (double)v->usage.output_tokens / gen_s : 0.0);
    }
    if (v->capped)
        snprintf(items[(*n)++], 64, "cut at %zuKB", CMP_ANSWER_CAP / 1024);
    snprintf(items[(*n)++], 64, "id %.40s", v->request_id);
}

/* Flows the figures into lines of width w; returns the lines used (at most max_lines). */
static int draw_figures(struct ui *ui, const struct cmp_view *v, int y, int x, int w, int max_lines,
                        bool draw)
{
    char items[10][64];
    size_t n;
    figures(v, items, &n);
    int line = 0, cx = 0;
    for (size_t i = 0; i < n && line < max_lines; i++) {
        int iw = (int)strlen(items[i]);
        if (cx && cx + 2 + iw > w) {
            line++;
            cx = 0;
            if (line >= max_lines)
                break;
        }
        if (cx)
            cx += 2;
        if (draw)
            draw_text(ui, y + line, x + cx, w - cx, items[i], ui->attr[THEME_HEADER_VALUE]);
        cx += iw;
    }
    return line + 1;
}

static void draw_column(struct ui *ui, const struct cmp_view *v, size_t i, int y, int x, int h,
                        int w)
{
    struct compare *c = &ui->cmp;
    /* What matters leads (a title is cut at the column's width): the number, the vote mark,
     * the target's win rate over the prompts voted on, then the target and its model. */
    char title[256], win[24] = "";
    const char *mark = c->vote == (int)i ? (ui->utf8 ? "★" : "*") : "";
    const struct ui_vote *wv = board_vote(ui, v->target);
    if (wv && wv->comparisons)
        snprintf(win, sizeof win, " %.0f%%", 100.0 * wv->wins / wv->comparisons);
    snprintf(title, sizeof title, "%zu%s%s %s%s%s", i + 1, mark, win, v->target,
             v->model[0] ? (ui->utf8 ? " · " : " - ") : "", v->model);
    bool focused = c->focus == CMP_FOCUS_ANSWERS;
    draw_box(ui, y, x, h, w, ui->attr[focused ? THEME_HEADER_VALUE : THEME_BORDER], title);
    int iw = w - 2, ih = h - 2;
    if (iw < 1 || ih < 1)
        return;
    int fig_lines = draw_figures(ui, v, 0, 0, iw, 3, false);
    int err_lines = v->state == CMP_FAILED ? 2 : 0;
    int text_h = ih - fig_lines - err_lines - 1;
    if (text_h < 1) {
        text_h = ih;
        fig_lines = err_lines = 0;
    }
    enum { MAX_LINES = 4096 };
    static struct wrap_line lines[MAX_LINES];
    size_t total = text_wrap(buf_str(&v->text), v->text.len, iw, lines, MAX_LINES);
    if (total > MAX_LINES)
        total = MAX_LINES;
    int scroll = c->scroll;
    if (scroll > (int)total - text_h)
        scroll = (int)total - text_h;
    if (scroll < 0)
        scroll = 0;
    for (int r = 0; r < text_h && (size_t)scroll + (size_t)r < total; r++) {
        const struct wrap_line *l = &lines[scroll + r];
        draw_textn(ui, y + 1 + r, x + 1, iw, buf_str(&v->text) + l->start, l->len,
                   ui->attr[THEME_NORMAL]);
    }
    if (total == 0 && v->state == CMP_WAITING)
        draw_text(ui, y + 1, x + 1, iw, "waiting for the first token...", ui->attr[THEME_DIM]);
    int fy = y + 1 + text_h;
    attrset(ui->attr[THEME_BORDER]);
    mvhline(fy, x + 1, ACS_HLINE, iw);
    if ((int)total > text_h) {
        char more[32];
        snprintf(more, sizeof more, " %d-%d/%zu ", scroll + 1, scroll + text_h, total);
        draw_text_right(ui, fy, x + 1, iw - 1, more, ui->attr[THEME_DIM]);
    }
    if (err_lines) {
        char e[300];
        snprintf(e, sizeof e, "error %s: %s", llm_errclass_name(v->err), v->error);
        struct wrap_line el[2];
        size_t ne = text_wrap(e, strlen(e), iw, el, 2);
        for (size_t k = 0; k < ne && k < 2; k++)
            draw_textn(ui, fy + 1 + (int)k, x + 1, iw, e + el[k].start, el[k].len,
                       ui->attr[THEME_ERROR]);
    }
    draw_figures(ui, v, fy + 1 + err_lines, x + 1, iw, fig_lines, true);
}

static void draw_answers(struct ui *ui, int y, int h, int w)
{
    struct compare *c = &ui->cmp;
    if (c->n_cols == 0) {
        draw_text(ui, y + 1, 2, w - 4,
                  "Type a prompt, pick 2 to 4 targets (Tab to Targets, Space to toggle) and "
                  "press Ctrl-D or F5 to send. Answers stream here side by side.",
                  ui->attr[THEME_DIM]);
        return;
    }
    int64_t now = clock_mono_us();
    int cw = w / (int)c->n_cols;
    for (size_t i = 0; i < c->n_cols; i++) {
        struct cmp_view v;
        compare_copy(c, i, &v, now);
        int x = (int)i * cw;
        int width = i + 1 == c->n_cols ? w - x : cw;
        draw_column(ui, &v, i, y, x, h, width);
        compare_view_cleanup(&v);
    }
}

/* ---- the pane ------------------------------------------------------------------------------- */

void compare_draw(struct ui *ui)
{
    struct compare *c = &ui->cmp;
    int w = COLS, y = 2;
    char title[640];
    snprintf(title, sizeof title, " PROMPT PANE  focus: %s%s%s", focus_names[c->focus],
             c->saved_path[0] ? "  saved: " : "", c->saved_path);
    draw_fill(y, 0, w, ui->attr[THEME_TITLE]);
    draw_text(ui, y, 0, w, title, ui->attr[THEME_TITLE]);
    y++;
    int cursor_y = -1, cursor_x = 0;
    /* System prompt and max tokens share a line when there is room. */
    draw_fill(y, 0, w, ui->attr[THEME_NORMAL]);
    draw_label(ui, y, 0, "System:", c->focus == CMP_FOCUS_SYSTEM);
    int mt_w = 22, sys_w = w - 8 - mt_w - 1;
    int cx = line_edit_draw(ui, &c->system, y, 8, sys_w, ui->attr[THEME_INPUT]);
    if (c->focus == CMP_FOCUS_SYSTEM)
        cursor_y = y, cursor_x = cx;
    draw_label(ui, y, w - mt_w, "Max tokens:", c->focus == CMP_FOCUS_MAXTOK);
    cx = line_edit_draw(ui, &c->max_tokens, y, w - mt_w + 12, mt_w - 12, ui->attr[THEME_INPUT]);
    if (c->focus == CMP_FOCUS_MAXTOK)
        cursor_y = y, cursor_x = cx;
    y++;
    draw_fill(y, 0, w, ui->attr[THEME_NORMAL]);
    draw_label(ui, y, 0, "Targets:", c->focus == CMP_FOCUS_TARGETS);
    int tx = draw_targets(ui, y, 9, w - 9, c->focus == CMP_FOCUS_TARGETS);
    if (c->focus == CMP_FOCUS_TARGETS)
        cursor_y = y, cursor_x = tx;
    y++;
    int bottom = LINES - 2; /* message line and status bar */
    int avail = bottom - y;
    int ph = avail / 4 + 2;
    if (ph < 3)
        ph = 3;
    if (ph > 10)
        ph = 10;
    /* Once sent, the prompt box collapses to one line while the answers have the focus, so
     * they get the room (e or Tab to the prompt opens it again). */
    bool collapsed = c->n_cols > 0 && c->focus != CMP_FOCUS_PROMPT;
    if (collapsed)
        ph = 3;
    draw_box(ui, y, 0, ph, w,
             ui->attr[c->focus == CMP_FOCUS_PROMPT ? THEME_HEADER_VALUE : THEME_BORDER],
             collapsed ? "Prompt (sent; e: edit)"
                       : "Prompt (Enter: new line, Ctrl-D/F5: send, Ctrl-P/N: history)");
    text_edit_draw(ui, &c->prompt, y + 1, 1, ph - 2, w - 2, ui->attr[THEME_NORMAL],
                   c->focus == CMP_FOCUS_PROMPT, &cursor_y, &cursor_x);
    y += ph;
    if (bottom - y >= 4)
        draw_answers(ui, y, bottom - y, w);
    if (ui->modal == MODAL_NONE && cursor_y >= 0) {
        ui->cur_y = cursor_y;
        ui->cur_x = cursor_x;
    }
}

/* ---- typing --------------------------------------------------------------------------------- */

static bool digits_only(struct ui_key k)
{
    return k.fn || k.code < 0x20 || k.code == 0x7F || (k.code >= '0' && k.code <= '9');
}

bool compare_key(struct ui *ui, struct ui_key k)
{
    struct compare *c = &ui->cmp;
    switch (c->focus) {
    case CMP_FOCUS_PROMPT:
        if (!k.fn && (k.code == CTRL('p') || k.code == CTRL('n'))) {
            compare_history(ui, k.code == CTRL('p') ? -1 : 1);
            return true;
        }
        return text_edit_key(&c->prompt, k);
    case CMP_FOCUS_SYSTEM:
        return line_edit_key(&c->system, k);
    case CMP_FOCUS_MAXTOK:
        return digits_only(k) && line_edit_key(&c->max_tokens, k);
    case CMP_FOCUS_TARGETS: {
        size_t n = ui->have_snap ? ui->snap->n_targets : 0;
        if (k.fn && k.code == KEY_LEFT && c->target_cursor > 0) {
            c->target_cursor--;
        } else if (k.fn && k.code == KEY_RIGHT && c->target_cursor + 1 < (int)n) {
            c->target_cursor++;
        } else if (((!k.fn && (k.code == ' ' || k.code == 'x')) || keys_is_enter(k)) &&
                   (size_t)c->target_cursor < n) {
            compare_toggle_target(ui, ui->snap->targets[c->target_cursor].name);
        } else {
            return false;
        }
        return true;
    }
    case CMP_FOCUS_ANSWERS:
        return false;
    }
    return false;
}
