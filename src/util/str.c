/*
 * str.c - small string helpers: comparisons, strict number parsing, UTF-8 checks, hashing.
 * Thread-safe (stateless).
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "switchboard/util.h"

bool str_eq(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

bool str_ieq(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcasecmp(a, b) == 0;
}

bool str_has_prefix(const char *s, const char *prefix)
{
    return s && prefix && strncmp(s, prefix, strlen(prefix)) == 0;
}

bool str_has_ctl(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            return true;
    }
    return false;
}

bool str_is_path_segment(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 256 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    return s[strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")] ==
           '\0';
}

size_t str_copy(char *dst, size_t dst_size, const char *src)
{
    size_t len = strlen(src);
    if (dst_size == 0)
        return len;
    size_t n = len < dst_size - 1 ? len : dst_size - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
    return len;
}

bool str_to_long(const char *s, long *out)
{
    if (!s || !*s || isspace((unsigned char)*s))
        return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

bool str_to_double(const char *s, double *out)
{
    if (!s || !*s || isspace((unsigned char)*s))
        return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

/* Length of the UTF-8 sequence starting at s (1..4), or 0 if invalid/incomplete.
 * *incomplete is set when the bytes so far are a valid prefix cut off by len. */
static size_t utf8_seq(const unsigned char *s, size_t len, bool *incomplete)
{
    *incomplete = false;
    unsigned char c = s[0];
    size_t n;
    unsigned min;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2, min = 0x80, cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3, min = 0x800, cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4, min = 0x10000, cp = c & 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if (i >= len) {
            *incomplete = true;
            return 0;
        }
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
        /* Early rejection of overlongs/surrogates/out-of-range after the 2nd byte. */
        if (i == 1 && n == 3 && ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F)))
            return 0;
        if (i == 1 && n == 4 && ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] > 0x8F)))
            return 0;
    }
    if (cp < min)
        return 0;
    return n;
}

size_t utf8_valid_prefix(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        uint64_t w;
        if (len - i >= 8) { /* ASCII runs a word at a time */
            memcpy(&w, u + i, 8);
            if ((w & 0x8080808080808080ULL) == 0) {
                i += 8;
                continue;
            }
        }
        bool incomplete;
        size_t n = utf8_seq(u + i, len - i, &incomplete);
        if (n == 0)
            break;
        i += n;
    }
    return i;
}

void utf8_sanitize_append(struct buf *b, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, start = 0;
    while (i < len) {
        bool incomplete;
        size_t n = utf8_seq(u + i, len - i, &incomplete);
        if (n) {
            i += n;
            continue;
        }
        buf_append(b, s + start, i - start);
        buf_puts(b, "\xEF\xBF\xBD");
        i++;
        start = i;
    }
    buf_append(b, s + start, i - start);
}

uint64_t hash_fnv1a(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}
