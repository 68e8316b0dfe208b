/*
 * sse.h - incremental Server-Sent Events parser (WHATWG "event stream" rules).
 *
 * Feed it bytes as they arrive, split anywhere; it calls back once per complete event.
 * Lines end with LF, CRLF or CR (a CR at the end of one chunk followed by LF at the start
 * of the next is one line end). Comment lines (":...") are skipped, "data:" lines of one
 * event are joined with "\n", a single space after the colon is dropped, the "event" field
 * names the event ("message" is not substituted: event is NULL when absent), "id" and
 * "retry" are kept/ignored respectively. Events with no data lines are not dispatched.
 * At end of input (sse_finish) a final unterminated line is taken as a line and a pending
 * event is dispatched: lenient, so a server that omits the last blank line loses nothing.
 *
 * Caps: a line longer than max_line or an event's data longer than max_event is an error
 * (SSE_ERR_LINE_TOO_LONG / SSE_ERR_EVENT_TOO_BIG); the parser then refuses further input.
 * Callers use one size for both (a line cannot hold more than an event).
 *
 * Lines that are not SSE (no known field name: data, event, id, retry; not a comment) are
 * ignored as the rules say, but kept since the last dispatched event (up to max_event
 * bytes): sse_trailing says what a stream ended with that was not an event, such as a bare
 * JSON error object a provider appended.
 *
 * Threads: a parser belongs to one thread at a time. Caller's storage: sse_init/cleanup.
 */
#ifndef SWITCHBOARD_SSE_H
#define SWITCHBOARD_SSE_H

#include <stddef.h>

#include "switchboard/util.h"

#define SSE_DEFAULT_MAX_LINE  (4 * 1024 * 1024)
#define SSE_DEFAULT_MAX_EVENT (4 * 1024 * 1024)

enum sse_status {
    SSE_OK,
    SSE_STOPPED, /* the callback asked to stop */
    SSE_ERR_LINE_TOO_LONG,
    SSE_ERR_EVENT_TOO_BIG,
};

struct sse_event {
    const char *event; /* NUL-terminated, NULL when no "event:" field */
    const char *data;  /* NUL-terminated (data_len bytes before the NUL) */
    size_t data_len;
    const char *id; /* last event id seen, NULL when none */
};

/* Return 0 to continue, non-zero to stop (sse_feed then returns SSE_STOPPED). Pointers in
 * ev are valid only during the call. */
typedef int (*sse_event_fn)(void *ctx, const struct sse_event *ev);

struct sse_parser {
    size_t max_line;
    size_t max_event;
    struct buf line;  /* partial line carried between feeds */
    struct buf data;  /* data of the event being built */
    struct buf event; /* event name of the event being built */
    struct buf id;
    struct buf junk; /* non-SSE lines since the last dispatched event, "\n"-joined */
    bool has_data;
    bool has_event;
    bool has_id;
    bool last_was_cr; /* previous chunk ended with CR */
    enum sse_status failed;
    size_t events; /* events dispatched so far */
};

void sse_init(struct sse_parser *p, size_t max_line, size_t max_event);
void sse_cleanup(struct sse_parser *p);
enum sse_status sse_feed(struct sse_parser *p, const char *bytes, size_t len, sse_event_fn cb,
                         void *ctx);
enum sse_status sse_finish(struct sse_parser *p, sse_event_fn cb, void *ctx);
const char *sse_status_str(enum sse_status s);
/* The non-SSE lines seen since the last dispatched event ("\n"-joined; at most max_event
 * bytes kept) and their length in *len; "" and 0 when none. Borrowed until the next feed. */
const char *sse_trailing(const struct sse_parser *p, size_t *len);

#endif
