/*
 * editor.c - text editing for the console: a one-line field (the ':' line, the filter, the
 * weight field, the prompt pane's system prompt and max tokens) and a multi-line editor (the
 * prompt). Text is UTF-8; the cursor always sits on a character boundary; characters arrive
 * as wide characters from get_wch and are stored encoded.
 *
 * Main thread only.
 */
#include <string.h>

#include "internal.h"

#define CTRL(c) ((c)&0x1f)

static size_t prev_char(const char *s, size_t cur)
{
    if (cur == 0)
        return 0;
    cur--;
    while (cur > 0 && ((unsigned char)s[cur] & 0xC0) == 0x80)
        cur--;
    return cur;
}

static size_t next_char(const char *s, size_t len, size_t cur)
{
    if (cur >= len)
        return len;
    cur++;
    while (cur < len && ((unsigned char)s[cur] & 0xC0) == 0x80)
        cur++;
    return cur;
}

/* Encodes a typed character; 0 when it is not text. */
static size_t encode(wint_t wc, char out[8])
{
    if (wc < 0x20 || wc == 0x7F || wc > 0x10FFFF || (wc >= 0xD800 && wc <= 0xDFFF))
        return 0;
    if (wc < 0x80) {
        out[0] = (char)wc;
        return 1;
    }
    if (wc < 0x800) {
        out[0] = (char)(0xC0 | (wc >> 6));
        out[1] = (char)(0x80 | (wc & 0x3F));
        return 2;
    }
    if (wc < 0x10000) {
        out[0] = (char)(0xE0 | (wc >> 12));
        out[1] = (char)(0x80 | ((wc >> 6) & 0x3F));
        out[2] = (char)(0x80 | (wc & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (wc >> 18));
    out[1] = (char)(0x80 | ((wc >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((wc >> 6) & 0x3F));
    out[3] = (char)(0x80 | (wc & 0x3F));
    return 4;
}

static bool is_backspace(struct ui_key k)
{
    return (k.fn && k.code == KEY_BACKSPACE) || (!k.fn && (k.code == 0x7F || k.code == 8));
}

/* ---- one line ------------------------------------------------------------------------------- */

void line_edit_set(struct line_edit *e, const char *s)
{
    e->len = str_copy(e->text, sizeof e->text, s ? s : "");
    if (e->len >= sizeof e->text)
        e->len = utf8_valid_prefix(e->text, sizeof e->text - 1);
    e->text[e->len] = '\0';
    e->cur = e->len;
}

bool line_edit_key(struct line_edit *e, struct ui_key k)
{
    char enc[8];
    size_t n;
    if (is_backspace(k)) {
        size_t p = prev_char(e->text, e->cur);
        memmove(e->text + p, e->text + e->cur, e->len - e->cur + 1);
        e->len -= e->cur - p;
        e->cur = p;
    } else if ((k.fn && k.code == KEY_DC) || (!k.fn && k.code == CTRL('d') && e->cur < e->len)) {
        size_t q = next_char(e->text, e->len, e->cur);
        memmove(e->text + e->cur, e->text + q, e->len - q + 1);
        e->len -= q - e->cur;
    } else if (k.fn && k.code == KEY_LEFT) {
        e->cur = prev_char(e->text, e->cur);
    } else if (k.fn && k.code == KEY_RIGHT) {
        e->cur = next_char(e->text, e->len, e->cur);
    } else if ((k.fn && k.code == KEY_HOME) || (!k.fn && k.code == CTRL('a'))) {
        e->cur = 0;
    } else if ((k.fn && k.code == KEY_END) || (!k.fn && k.code == CTRL('e'))) {
        e->cur = e->len;
    } else if (!k.fn && k.code == CTRL('u')) {
        memmove(e->text, e->text + e->cur, e->len - e->cur + 1);
        e->len -= e->cur;
        e->cur = 0;
    } else if (!k.fn && k.code == CTRL('k')) {
        e->len = e->cur;
        e->text[e->len] = '\0';
    } else if (!k.fn && (n = encode(k.code, enc)) > 0) {
        if (e->len + n >= sizeof e->text)
            return true; /* full: swallow */
        memmove(e->text + e->cur + n, e->text + e->cur, e->len - e->cur + 1);
        memcpy(e->text + e->cur, enc, n);
        e->len += n;
        e->cur += n;
    } else {
        return false;
    }
    return true;
}

/* Draws the field, scrolled so the cursor shows; returns the cursor's screen column. */
int line_edit_draw(struct ui *ui, const struct line_edit *e, int y, int x, int w, attr_t a)
{
    draw_fill(y, x, w, a);
    if (w <= 1)
        return x;
    size_t start = 0;
    while (text_width(e->text + start, e->cur - start) > w - 1)
        start = next_char(e->text, e->len, start);
    draw_text(ui, y, x, w, e->text + start, a);
    return x + text_width(e->text + start, e->cur - start);
}

/* ---- many lines ----------------------------------------------------------------------------- */

void text_edit_init(struct text_edit *e)
{
    buf_init(&e->text);
    buf_puts(&e->text, "");
    e->cur = 0;
    e->top = 0;
}

void text_edit_cleanup(struct text_edit *e)
{
    buf_cleanup(&e->text);
}

void text_edit_set(struct text_edit *e, const char *s)
{
    buf_reset(&e->text);
    buf_puts(&e->text, s ? s : "");
    e->cur = e->text.len;
    e->top = 0;
}

static size_t line_start(const char *s, size_t cur)
{
    while (cur > 0 && s[cur - 1] != '\n')
        cur--;
    return cur;
}

static size_t line_end(const char *s, size_t len, size_t cur)
{
    while (cur < len && s[cur] != '\n')
        cur++;
    return cur;
}

/* Moves to the previous/next line, keeping the column (in cells) where possible. */
static void vertical(struct text_edit *e, int dir)
{
    const char *s = buf_str(&e->text);
    size_t len = e->text.len;
    size_t ls = line_start(s, e->cur);
    int col = text_width(s + ls, e->cur - ls);
    size_t target;
    if (dir < 0) {
        if (ls == 0)
            return;
        target = line_start(s, ls - 1);
    } else {
        size_t le = line_end(s, len, e->cur);
        if (le >= len)
            return;
        target = le + 1;
    }
    size_t te = line_end(s, len, target);
    e->cur = target + text_fit(s + target, te - target, col, NULL);
}

static void insert(struct text_edit *e, const char *bytes, size_t n)
{
    if (e->text.len + n > CMP_ANSWER_CAP)
        return;
    buf_append(&e->text, bytes, n); /* grow, then shift into place */
    char *s = e->text.data;
    memmove(s + e->cur + n, s + e->cur, e->text.len - n - e->cur);
    memcpy(s + e->cur, bytes, n);
    e->cur += n;
}

static void erase_range(struct text_edit *e, size_t from, size_t to)
{
    char *s = e->text.data;
    if (!s || to <= from)
        return;
    memmove(s + from, s + to, e->text.len - to + 1);
    e->text.len -= to - from;
    e->cur = from;
}

bool text_edit_key(struct text_edit *e, struct ui_key k)
{
    const char *s = buf_str(&e->text);
    size_t len = e->text.len;
    char enc[8];
    size_t n;
    if (keys_is_enter(k)) {
        insert(e, "\n", 1);
    } else if (is_backspace(k)) {
        erase_range(e, prev_char(s, e->cur), e->cur);
    } else if (k.fn && k.code == KEY_DC) {
        erase_range(e, e->cur, next_char(s, len, e->cur));
    } else if (k.fn && k.code == KEY_LEFT) {
        e->cur = prev_char(s, e->cur);
    } else if (k.fn && k.code == KEY_RIGHT) {
        e->cur = next_char(s, len, e->cur);
    } else if (k.fn && k.code == KEY_UP) {
        vertical(e, -1);
    } else if (k.fn && k.code == KEY_DOWN) {
        vertical(e, 1);
    } else if ((k.fn && k.code == KEY_HOME) || (!k.fn && k.code == CTRL('a'))) {
        e->cur = line_start(s, e->cur);
    } else if ((k.fn && k.code == KEY_END) || (!k.fn && k.code == CTRL('e'))) {
        e->cur = line_end(s, len, e->cur);
    } else if (!k.fn && k.code == CTRL('u')) {
        erase_range(e, line_start(s, e->cur), e->cur);
    } else if (!k.fn && k.code == CTRL('k')) {
        size_t le = line_end(s, len, e->cur);
        erase_range(e, e->cur, le == e->cur && le < len ? le + 1 : le);
    } else if (!k.fn && k.code == '\t') { // NOLINT(bugprone-branch-clone): distinct keys
        return false;                     /* Tab moves focus */
    } else if (!k.fn && (n = encode(k.code, enc)) > 0) {
        insert(e, enc, n);
    } else {
        return false;
    }
    return true;
}

void text_edit_draw(struct ui *ui, struct text_edit *e, int y, int x, int h, int w, attr_t a,
                    bool focused, int *cy, int *cx)
{
    for (int r = 0; r < h; r++)
        draw_fill(y + r, x, w, a);
    if (h <= 0 || w <= 1)
        return;
    const char *s = buf_str(&e->text);
    size_t len = e->text.len;
    enum { MAX_LINES = 2048 };
    static struct wrap_line lines[MAX_LINES];
    size_t total = text_wrap(s, len, w - 1, lines, MAX_LINES);
    if (total > MAX_LINES)
        total = MAX_LINES;
    if (total == 0) {
        lines[0] = (struct wrap_line){0, 0};
        total = 1;
    }
    /* Which wrapped line holds the cursor? */
    size_t cl = 0;
    for (size_t i = 0; i < total; i++) {
        if (lines[i].start <= e->cur)
            cl = i;
    }
    if ((int)cl < e->top)
        e->top = (int)cl;
    if ((int)cl >= e->top + h)
        e->top = (int)cl - h + 1;
    for (int r = 0; r < h && (size_t)e->top + (size_t)r < total; r++) {
        const struct wrap_line *l = &lines[e->top + r];
        draw_textn(ui, y + r, x, w, s + l->start, l->len, a);
    }
    if (focused) {
        size_t from = lines[cl].start;
        size_t upto = e->cur < from ? from : e->cur;
        int col = x + text_width(s + from, upto - from);
        *cy = y + (int)cl - e->top;
        *cx = col < x + w ? col : x + w - 1;
    }
}
