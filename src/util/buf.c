/*
 * buf.c - growable, NUL-terminated byte buffers. A buf belongs to its holder; no locking.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/util.h"

void buf_init(struct buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void buf_cleanup(struct buf *b)
{
    free(b->data);
    buf_init(b);
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

static void buf_reserve(struct buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
}

void buf_append(struct buf *b, const void *data, size_t len)
{
    buf_reserve(b, len);
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void buf_puts(struct buf *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

void buf_putc(struct buf *b, char c)
{
    buf_append(b, &c, 1);
}

void buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
    char small[256];
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(small, sizeof small, fmt, ap2);
    va_end(ap2);
    if (n <= 0)
        return;
    if ((size_t)n < sizeof small) {
        buf_append(b, small, (size_t)n);
        return;
    }
    buf_reserve(b, (size_t)n);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(b, fmt, ap);
    va_end(ap);
}

/* The escape for byte c, or NULL when c goes out as itself: what cJSON prints, so a body
 * written here is byte for byte the one a cJSON tree would print. */
static const char *json_escape(unsigned char c, char esc[7])
{
    static const char hex[] = "0123456789abcdef";
    switch (c) {
    case '"':
        return "\\\"";
    case '\\':
        return "\\\\";
    case '\n':
        return "\\n";
    case '\r':
        return "\\r";
    case '\t':
        return "\\t";
    case '\b':
        return "\\b";
    case '\f':
        return "\\f";
    default:
        if (c >= 0x20)
            return NULL;
        memcpy(esc, "\\u00", 4);
        esc[4] = hex[c >> 4];
        esc[5] = hex[c & 15];
        esc[6] = '\0';
        return esc;
    }
}

#define WORD_ONES  0x0101010101010101ull
#define WORD_HIGHS 0x8080808080808080ull

/* Nonzero when a byte of the 8 at s needs an escape (a control, '"' or '\\'). Each test is
 * exact for the lowest such byte (a borrow only runs upwards from it), so a word of plain
 * bytes, UTF-8 included, is always zero. */
static inline uint64_t word_needs_escape(const char *s)
{
    uint64_t w;
    memcpy(&w, s, sizeof w);
    uint64_t quote = w ^ (WORD_ONES * '"'), slash = w ^ (WORD_ONES * '\\');
    uint64_t ctl = (w - WORD_ONES * 0x20) & ~w;
    uint64_t q = (quote - WORD_ONES) & ~quote, bs = (slash - WORD_ONES) & ~slash;
    return (ctl | q | bs) & WORD_HIGHS;
}

void buf_put_json_chars(struct buf *b, const char *s, size_t len)
{
    /* Worst case is 6 bytes per input byte; reserving for the common case (a few escapes)
     * keeps this to one growth check per run of plain bytes. Plain text is skipped a word at a
     * time (a prompt is megabytes of it, encoded on the router thread at every attempt); a
     * word with something to escape, and the tail, go byte by byte. */
    buf_reserve(b, len);
    size_t run = 0; /* start of the current run of bytes that need no escape */
    size_t i = 0;
    while (i < len) {
        while (len - i >= 8 && !word_needs_escape(s + i))
            i += 8;
        size_t stop = len - i > 8 ? i + 8 : len;
        for (; i < stop; i++) {
            char tmp[7];
            const char *esc = json_escape((unsigned char)s[i], tmp);
            if (!esc)
                continue;
            buf_append(b, s + run, i - run);
            buf_puts(b, esc);
            run = i + 1;
        }
    }
    buf_append(b, s + run, len - run);
}

void buf_put_json_string(struct buf *b, const char *s, size_t len)
{
    buf_reserve(b, len + 2);
    buf_putc(b, '"');
    buf_put_json_chars(b, s, len);
    buf_putc(b, '"');
}

void buf_consume(struct buf *b, size_t n)
{
    if (n >= b->len) {
        buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

char *buf_take(struct buf *b)
{
    char *p = b->data ? b->data : xstrdup("");
    buf_init(b);
    return p;
}

const char *buf_str(const struct buf *b)
{
    return b->data ? b->data : "";
}
