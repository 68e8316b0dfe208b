/*
 * alloc.c - allocation wrappers that abort on exhaustion, and the status strings.
 * Thread-safe (stateless).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/util.h"

static void oom(size_t n)
{
    fprintf(stderr, "switchboard: out of memory (%zu bytes)\n", n);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        oom(count * size);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

void *xgrow(void *p, size_t *cap, size_t need, size_t elem_size)
{
    if (need <= *cap)
        return p;
    size_t ncap = *cap ? *cap : 4;
    while (ncap < need) {
        if (ncap > ((size_t)-1) / 2 / elem_size)
            oom(need * elem_size);
        ncap *= 2;
    }
    p = xrealloc(p, ncap * elem_size);
    *cap = ncap;
    return p;
}

char *xstrdup(const char *s)
{
    return s ? xstrndup(s, strlen(s)) : NULL;
}

char *xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *xvasprintf(const char *fmt, va_list ap)
{
    struct buf b;
    buf_init(&b);
    buf_vprintf(&b, fmt, ap);
    return buf_take(&b);
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = xvasprintf(fmt, ap);
    va_end(ap);
    return s;
}

const char *sb_strerror(enum sb_status s)
{
    switch (s) {
    case SB_OK:
        return "ok";
    case SB_ERR_INVALID:
        return "invalid input";
    case SB_ERR_PARSE:
        return "parse error";
    case SB_ERR_UNSUPPORTED:
        return "not supported";
    case SB_ERR_LIMIT:
        return "over a limit";
    case SB_ERR_NOT_FOUND:
        return "not found";
    case SB_ERR_IO:
        return "I/O error";
    case SB_ERR_STATE:
        return "not allowed now";
    }
    return "unknown error";
}
