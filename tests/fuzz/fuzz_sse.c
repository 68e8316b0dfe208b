/*
 * fuzz_sse.c - libFuzzer target for the SSE parser. The first byte seeds the chunk splits;
 * the rest is the stream. The property: feeding it whole and feeding it in random pieces
 * dispatch the same events, keep the same non-SSE lines after the last event (sse_trailing,
 * within its cap) and end in the same status (small caps so errors are reached).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/sse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct run {
    struct buf log;
};

static int on_event(void *ctx, const struct sse_event *ev)
{
    struct run *r = ctx;
    if (ev->data[ev->data_len] != '\0')
        __builtin_trap();
    buf_printf(&r->log, "[%s|%s|%zu]", ev->event ? ev->event : "-", ev->id ? ev->id : "-",
               ev->data_len);
    buf_append(&r->log, ev->data, ev->data_len);
    /* Stop on a data payload of exactly "stop", to exercise SSE_STOPPED. */
    return ev->data_len == 4 && memcmp(ev->data, "stop", 4) == 0;
}

static enum sse_status parse(const char *s, size_t n, unsigned seed, struct buf *log)
{
    struct sse_parser p;
    struct run r;
    buf_init(&r.log);
    sse_init(&p, 64, 256);
    enum sse_status st = SSE_OK;
    size_t at = 0;
    while (at < n && st == SSE_OK) {
        size_t piece = n - at;
        if (seed) {
            seed = seed * 1103515245u + 12345u;
            piece = 1 + (seed >> 16) % 17;
            if (piece > n - at)
                piece = n - at;
        }
        st = sse_feed(&p, s + at, piece, on_event, &r);
        at += piece;
    }
    if (st == SSE_OK)
        st = sse_finish(&p, on_event, &r);
    size_t junk_len;
    const char *junk = sse_trailing(&p, &junk_len);
    if (junk_len > 256 || strlen(junk) > junk_len)
        __builtin_trap(); /* capped at max_event */
    if (st == SSE_OK) {   /* what followed the last event is part of what both runs saw */
        buf_printf(&r.log, "{trailing %zu}", junk_len);
        buf_append(&r.log, junk, junk_len);
    }
    sse_cleanup(&p);
    buf_append(log, buf_str(&r.log), r.log.len);
    buf_cleanup(&r.log);
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    struct buf a, b;
    buf_init(&a);
    buf_init(&b);
    enum sse_status whole = parse(s, n, 0, &a);
    enum sse_status split = parse(s, n, data[0] | 0x100u, &b);
    if (whole != split || a.len != b.len || (a.len && memcmp(a.data, b.data, a.len) != 0))
        __builtin_trap();
    buf_cleanup(&a);
    buf_cleanup(&b);
    return 0;
}
