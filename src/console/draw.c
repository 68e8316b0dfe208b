/*
 * draw.c - drawing helpers: UTF-8 text to curses wide characters clipped to a number of
 * cells (wcwidth decides: CJK is two cells, combining marks none), word wrapping, boxes,
 * sparklines and the number formats every view shares.
 *
 * Main thread only (curses).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define WBUF 1024

/* Decodes one UTF-8 character; invalid bytes become U+FFFD, one byte at a time. */
static size_t utf8_decode(const char *s, size_t len, uint32_t *cp)
{
    const unsigned char *u = (const unsigned char *)s;
    if (u[0] < 0x80) {
        *cp = u[0];
        return 1;
    }
    size_t n = (u[0] & 0xE0) == 0xC0   ? 2
               : (u[0] & 0xF0) == 0xE0 ? 3
               : (u[0] & 0xF8) == 0xF0 ? 4
                                       : 0;
    if (n == 0 || n > len) {
        *cp = 0xFFFD;
        return 1;
    }
    uint32_t v = u[0] & (0x7F >> n);
    for (size_t i = 1; i < n; i++) {
        if ((u[i] & 0xC0) != 0x80) {
            *cp = 0xFFFD;
            return 1;
        }
        v = (v << 6) | (u[i] & 0x3F);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min[n] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
        *cp = 0xFFFD;
        return 1;
    }
    *cp = v;
    return n;
}

/* What to show for cp, and its width in cells. Control characters are shown as '?'. */
static wchar_t shown(const struct ui *ui, uint32_t cp, int *w)
{
    if (cp == '\t') {
        *w = 1;
        return L' ';
    }
    if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0)) {
        *w = 1;
        return L'?';
    }
    if (cp >= 0x80 && (!ui || !ui->utf8)) {
        *w = 1;
        return L'?';
    }
    int cw = wcwidth((wchar_t)cp);
    if (cw < 0) {
        *w = 1;
        return L'?';
    }
    *w = cw;
    return (wchar_t)cp;
}

int draw_textn(const struct ui *ui, int y, int x, int maxw, const char *s, size_t len, attr_t a)
{
    if (maxw <= 0 || !s)
        return 0;
    wchar_t wbuf[WBUF];
    size_t k = 0, i = 0;
    int cells = 0;
    while (i < len && s[i] && k < WBUF - 1) {
        uint32_t cp;
        i += utf8_decode(s + i, len - i, &cp);
        int w;
        wchar_t wc = shown(ui, cp, &w);
        if (cells + w > maxw)
            break;
        if (w == 0 && k == 0)
            continue; /* a combining mark with nothing to combine with */
        wbuf[k++] = wc;
        cells += w;
    }
    wbuf[k] = L'\0';
    attrset(a);
    if (k)
        mvaddnwstr(y, x, wbuf, (int)k);
    return cells;
}

/* Like draw_text, but a text cut short ends in an ellipsis. */
int draw_text_cut(const struct ui *ui, int y, int x, int maxw, const char *s, attr_t a)
{
    size_t len = strlen(s);
    if (maxw <= 1 || text_width(s, len) <= maxw)
        return draw_text(ui, y, x, maxw, s, a);
    int w = draw_textn(ui, y, x, maxw - 1, s, text_fit(s, len, maxw - 1, NULL), a);
    return w + draw_text(ui, y, x + w, 1, ui->utf8 ? "…" : "~", a);
}

int draw_text(const struct ui *ui, int y, int x, int maxw, const char *s, attr_t a)
{
    return draw_textn(ui, y, x, maxw, s, s ? strlen(s) : 0, a);
}

int draw_text_right(const struct ui *ui, int y, int x, int w, const char *s, attr_t a)
{
    int tw = text_width(s, strlen(s));
    if (tw > w)
        return draw_text(ui, y, x, w, s, a);
    return draw_text(ui, y, x + w - tw, tw, s, a);
}

void draw_fill(int y, int x, int w, attr_t a)
{
    if (w <= 0)
        return;
    attrset(a);
    mvhline(y, x, ' ', w);
}

void draw_box(const struct ui *ui, int y, int x, int h, int w, attr_t a, const char *title)
{
    if (h < 2 || w < 2)
        return;
    attrset(a);
    mvhline(y, x + 1, ACS_HLINE, w - 2);
    mvhline(y + h - 1, x + 1, ACS_HLINE, w - 2);
    mvvline(y + 1, x, ACS_VLINE, h - 2);
    mvvline(y + 1, x + w - 1, ACS_VLINE, h - 2);
    mvaddch(y, x, ACS_ULCORNER);
    mvaddch(y, x + w - 1, ACS_URCORNER);
    mvaddch(y + h - 1, x, ACS_LLCORNER);
    mvaddch(y + h - 1, x + w - 1, ACS_LRCORNER);
    if (title && *title && w > 6) {
        char t[160];
        snprintf(t, sizeof t, " %s ", title);
        draw_text(ui, y, x + 2, w - 4, t, a | A_BOLD);
    }
}

int text_width(const char *s, size_t len)
{
    int cells = 0;
    size_t i = 0;
    while (i < len && s[i]) {
        uint32_t cp;
        i += utf8_decode(s + i, len - i, &cp);
        int w;
        shown(NULL, cp, &w);
        if (cp >= 0x80) { /* width as a UTF-8 terminal shows it */
            int cw = wcwidth((wchar_t)cp);
            w = cw < 0 ? 1 : cw;
        }
        cells += w;
    }
    return cells;
}

size_t text_fit(const char *s, size_t len, int maxw, int *width)
{
    int cells = 0;
    size_t i = 0;
    while (i < len && s[i]) {
        uint32_t cp;
        size_t n = utf8_decode(s + i, len - i, &cp);
        int w = cp < 0x80 ? 1 : wcwidth((wchar_t)cp);
        if (w < 0)
            w = 1;
        if (cells + w > maxw)
            break;
        cells += w;
        i += n;
    }
    if (width)
        *width = cells;
    return i;
}

/* Lines of at most `width` cells: breaks at '\n', else after the last space that fits, else
 * mid-word. Returns the total number of lines; fills out[] up to max. */
size_t text_wrap(const char *s, size_t len, int width, struct wrap_line *out, size_t max)
{
    size_t n = 0, i = 0;
    if (width < 1)
        width = 1;
    while (i < len) {
        size_t start = i, last_space = 0;
        bool have_space = false;
        int cells = 0;
        while (i < len && s[i] != '\n') {
            uint32_t cp;
            size_t k = utf8_decode(s + i, len - i, &cp);
            int w = cp < 0x80 ? 1 : wcwidth((wchar_t)cp);
            if (w < 0)
                w = 1;
            if (cells + w > width)
                break;
            if (cp == ' ') {
                last_space = i;
                have_space = true;
            }
            cells += w;
            i += k;
        }
        if (i == start && i < len && s[i] != '\n') { /* wider than the line: take it anyway */
            uint32_t cp;
            i += utf8_decode(s + i, len - i, &cp);
        }
        size_t end = i;
        if (i < len && s[i] != '\n' && have_space && last_space > start) {
            end = last_space;
            i = last_space + 1;
        } else if (i < len && s[i] == '\n') {
            i++;
        }
        if (n < max)
            out[n] = (struct wrap_line){start, end - start};
        n++;
        if (i == len && len > 0 && s[len - 1] == '\n') {
            if (n < max)
                out[n] = (struct wrap_line){len, 0};
            n++;
        }
    }
    return n;
}

/* ---- numbers -------------------------------------------------------------------------------- */

void fmt_ms(double ms, char *out, size_t n)
{
    if (!(ms > 0))
        snprintf(out, n, "-");
    else if (ms < 1)
        snprintf(out, n, "<1ms");
    else if (ms < 1000)
        snprintf(out, n, "%.0fms", ms);
    else if (ms < 10000)
        snprintf(out, n, "%.2fs", ms / 1000);
    else if (ms < 100000)
        snprintf(out, n, "%.1fs", ms / 1000);
    else
        snprintf(out, n, "%.0fs", ms / 1000);
}

void fmt_us(int64_t us, char *out, size_t n)
{
    if (us < 0)
        snprintf(out, n, "-");
    else
        fmt_ms((double)us / 1000.0, out, n);
}

void fmt_count(uint64_t v, char *out, size_t n)
{
    if (v < 10000)
        snprintf(out, n, "%llu", (unsigned long long)v);
    else if (v < 1000000)
        snprintf(out, n, "%.1fk", (double)v / 1e3);
    else if (v < 1000000000)
        snprintf(out, n, "%.1fM", (double)v / 1e6);
    else
        snprintf(out, n, "%.1fG", (double)v / 1e9);
}

void fmt_count_fit(uint64_t v, int maxw, char *out, size_t n)
{
    static const struct {
        double div;
        char unit;
    } units[] = {{1e3, 'k'}, {1e6, 'M'}, {1e9, 'G'}};
    fmt_count(v, out, n);
    if (v < 10000 || (int)strlen(out) <= maxw)
        return;
    for (size_t i = 0; i < SB_ARRAY_LEN(units); i++) {
        double x = (double)v / units[i].div;
        if (x >= 999.5 && i + 1 < SB_ARRAY_LEN(units))
            continue; /* "1000k": one unit up reads better */
        snprintf(out, n, "%.1f%c", x, units[i].unit);
        if (x < 999.95 && (int)strlen(out) <= maxw)
            return;
        snprintf(out, n, "%.0f%c", x, units[i].unit);
        return;
    }
}

void fmt_rate(double per_s, int maxw, char *out, size_t n)
{
    if (!(per_s > 0))
        snprintf(out, n, "0");
    else if (per_s < 9.95)
        snprintf(out, n, "%.1f", per_s);
    else if (per_s < 9999.5)
        snprintf(out, n, "%.0f", per_s);
    else
        fmt_count_fit((uint64_t)llround(per_s), maxw, out, n);
}

/* Short, for table cells (at most 8 characters below $100000). */
void fmt_usd(double usd, char *out, size_t n)
{
    if (!(usd > 0))
        snprintf(out, n, "$0");
    else if (usd < 0.01)
        snprintf(out, n, "$%.5f", usd);
    else if (usd < 1)
        snprintf(out, n, "$%.4f", usd);
    else if (usd < 1000)
        snprintf(out, n, "$%.2f", usd);
    else
        snprintf(out, n, "$%.0f", usd);
}

/* Exact enough for one call's cost. */
void fmt_usd_exact(double usd, char *out, size_t n)
{
    if (usd > 0 && usd < 0.01)
        snprintf(out, n, "$%.6f", usd);
    else
        fmt_usd(usd, out, n);
}

void fmt_age(int64_t ms, char *out, size_t n)
{
    int64_t s = ms < 0 ? 0 : ms / 1000;
    if (s < 60)
        snprintf(out, n, "%llds", (long long)s);
    else if (s < 3600)
        snprintf(out, n, "%lldm", (long long)(s / 60));
    else if (s < 86400)
        snprintf(out, n, "%lldh", (long long)(s / 3600));
    else
        snprintf(out, n, "%lldd", (long long)(s / 86400));
}

void fmt_clock(int64_t wall_ms, char *out, size_t n, bool with_date)
{
    time_t t = (time_t)(wall_ms / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(out, n, with_date ? "%Y-%m-%d %H:%M:%S" : "%H:%M:%S", &tm);
}

/* ---- sparkline ------------------------------------------------------------------------------ */

void draw_spark(const struct ui *ui, int y, int x, int w, const double *series, size_t n, attr_t a)
{
    static const char *const blocks[] = {" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
    static const char ascii[] = " .:-=+*#@";
    if (w <= 0 || n == 0)
        return;
    size_t per = (n + (size_t)w - 1) / (size_t)w; /* seconds per cell */
    size_t cells = n / per;
    if (cells > (size_t)w)
        cells = (size_t)w;
    double vals[256], max = 0;
    if (cells > SB_ARRAY_LEN(vals))
        cells = SB_ARRAY_LEN(vals);
    for (size_t c = 0; c < cells; c++) {
        double sum = 0;
        size_t from = n - (cells - c) * per;
        for (size_t k = 0; k < per; k++)
            sum += series[from + k];
        vals[c] = sum / (double)per;
        max = vals[c] > max ? vals[c] : max;
    }
    char line[1024];
    size_t len = 0;
    for (size_t c = 0; c < (size_t)w - cells && len < sizeof line - 1; c++)
        line[len++] = ' ';
    for (size_t c = 0; c < cells; c++) {
        int level = 0;
        if (vals[c] > 0 && max > 0)
            level = 1 + (int)floor(7.0 * vals[c] / max + 1e-9);
        if (level > 8)
            level = 8;
        if (ui->utf8) {
            size_t bl = strlen(blocks[level]);
            if (len + bl >= sizeof line)
                break;
            memcpy(line + len, blocks[level], bl);
            len += bl;
        } else if (len < sizeof line - 1) {
            line[len++] = ascii[level];
        }
    }
    line[len] = '\0';
    draw_text(ui, y, x, w, line, a);
}
