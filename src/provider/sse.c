/*
 * sse.c - incremental Server-Sent Events parser (WHATWG "event stream interpretation").
 *
 * Bytes arrive split anywhere. A line that lies wholly inside one chunk is interpreted in
 * place; only a line cut by a chunk boundary is carried in p->line. A CR that ends a chunk
 * sets last_was_cr so that an LF opening the next chunk is not taken as a second line end.
 * Caps are checked before anything is copied: a line over max_line or an event's data over
 * max_event fails the parser for good (later feeds return the same status).
 *
 * Threads: a parser belongs to its caller's thread; no globals, no locks.
 */
#include <string.h>

#include "switchboard/sse.h"

void sse_init(struct sse_parser *p, size_t max_line, size_t max_event)
{
    memset(p, 0, sizeof *p);
    p->max_line = max_line ? max_line : (size_t)SSE_DEFAULT_MAX_LINE;
    p->max_event = max_event ? max_event : (size_t)SSE_DEFAULT_MAX_EVENT;
    buf_init(&p->line);
    buf_init(&p->data);
    buf_init(&p->event);
    buf_init(&p->id);
    buf_init(&p->junk);
    p->failed = SSE_OK;
}

void sse_cleanup(struct sse_parser *p)
{
    buf_cleanup(&p->line);
    buf_cleanup(&p->data);
    buf_cleanup(&p->event);
    buf_cleanup(&p->id);
    buf_cleanup(&p->junk);
}

const char *sse_trailing(const struct sse_parser *p, size_t *len)
{
    *len = p->junk.len;
    return buf_str(&p->junk);
}

/* Keeps a line that is not SSE (up to max_event bytes in all). */
static void keep_junk(struct sse_parser *p, const char *s, size_t n)
{
    size_t room = p->max_event > p->junk.len ? p->max_event - p->junk.len : 0;
    if (room == 0)
        return;
    if (p->junk.len) {
        buf_putc(&p->junk, '\n');
        room--;
    }
    buf_append(&p->junk, s, n < room ? n : room);
}

const char *sse_status_str(enum sse_status s)
{
    switch (s) {
    case SSE_OK:
        return "ok";
    case SSE_STOPPED:
        return "stopped by the consumer";
    case SSE_ERR_LINE_TOO_LONG:
        return "SSE line too long";
    case SSE_ERR_EVENT_TOO_BIG:
        return "SSE event too big";
    }
    return "unknown SSE status";
}

static void reset_event(struct sse_parser *p)
{
    buf_reset(&p->data);
    buf_reset(&p->event);
    p->has_data = false;
    p->has_event = false;
}

static bool field_is(const char *name, size_t len, const char *want)
{
    return strlen(want) == len && memcmp(name, want, len) == 0;
}

/* Interprets one complete line (terminator excluded). A blank line dispatches the event
 * being built, if it has data; the last event id persists across events (WHATWG). */
static enum sse_status process_line(struct sse_parser *p, const char *s, size_t n, sse_event_fn cb,
                                    void *ctx)
{
    if (n == 0) {
        enum sse_status st = SSE_OK;
        if (p->has_data) {
            struct sse_event ev = {
                .event = p->has_event && p->event.len ? buf_str(&p->event) : NULL,
                .data = buf_str(&p->data),
                .data_len = p->data.len,
                .id = p->has_id ? buf_str(&p->id) : NULL,
            };
            p->events++;
            buf_reset(&p->junk);
            if (cb(ctx, &ev) != 0)
                st = SSE_STOPPED;
        }
        reset_event(p);
        return st;
    }
    if (s[0] == ':')
        return SSE_OK; /* comment */

    const char *colon = memchr(s, ':', n);
    size_t name_len = colon ? (size_t)(colon - s) : n;
    const char *value = colon ? colon + 1 : s + n;
    size_t value_len = (size_t)(s + n - value);
    if (value_len > 0 && value[0] == ' ') {
        value++;
        value_len--;
    }

    if (field_is(s, name_len, "data")) {
        size_t extra = value_len + (p->has_data ? 1 : 0);
        if (p->data.len + extra > p->max_event)
            return SSE_ERR_EVENT_TOO_BIG;
        if (p->has_data)
            buf_putc(&p->data, '\n');
        buf_append(&p->data, value, value_len);
        p->has_data = true;
    } else if (field_is(s, name_len, "event")) {
        buf_reset(&p->event);
        buf_append(&p->event, value, value_len);
        p->has_event = true;
    } else if (field_is(s, name_len, "id")) {
        if (!memchr(value, '\0', value_len)) {
            buf_reset(&p->id);
            buf_append(&p->id, value, value_len);
            p->has_id = true;
        }
    } else if (!field_is(s, name_len, "retry")) {
        keep_junk(p, s, n); /* not SSE: ignored, but kept for sse_trailing */
    }
    return SSE_OK;
}

/* Index of the first CR or LF in s[0..n), or n (memchr: lines are long, CRs rare). */
static size_t find_eol(const char *s, size_t n)
{
    const char *lf = memchr(s, '\n', n);
    size_t end = lf ? (size_t)(lf - s) : n;
    const char *cr = memchr(s, '\r', end);
    return cr ? (size_t)(cr - s) : end;
}

enum sse_status sse_feed(struct sse_parser *p, const char *bytes, size_t len, sse_event_fn cb,
                         void *ctx)
{
    size_t i = 0;
    if (p->failed != SSE_OK)
        return p->failed;
    while (i < len) {
        if (p->last_was_cr) {
            p->last_was_cr = false;
            if (bytes[i] == '\n') {
                i++;
                continue;
            }
        }
        size_t seg = find_eol(bytes + i, len - i);
        if (p->line.len + seg > p->max_line) {
            p->failed = SSE_ERR_LINE_TOO_LONG;
            break;
        }
        if (i + seg == len) { /* no line end in this chunk: carry the rest */
            buf_append(&p->line, bytes + i, seg);
            break;
        }
        enum sse_status st;
        if (p->line.len == 0) {
            st = process_line(p, bytes + i, seg, cb, ctx);
        } else {
            buf_append(&p->line, bytes + i, seg);
            st = process_line(p, p->line.data, p->line.len, cb, ctx);
            buf_reset(&p->line);
        }
        p->last_was_cr = bytes[i + seg] == '\r';
        i += seg + 1;
        if (st != SSE_OK) {
            p->failed = st;
            break;
        }
    }
    return p->failed;
}

enum sse_status sse_finish(struct sse_parser *p, sse_event_fn cb, void *ctx)
{
    enum sse_status st = SSE_OK;
    if (p->failed != SSE_OK)
        return p->failed;
    if (p->line.len > 0) {
        st = process_line(p, p->line.data, p->line.len, cb, ctx);
        buf_reset(&p->line);
    }
    if (st == SSE_OK)
        st = process_line(p, "", 0, cb, ctx); /* dispatches a pending event */
    p->last_was_cr = false;
    p->failed = st;
    return st;
}
