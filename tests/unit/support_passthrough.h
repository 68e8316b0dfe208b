/*
 * support_passthrough.h - the OpenAI stream relay as the gateway runs it, without sockets,
 * for test_passthrough and fuzz_passthrough: an upstream SSE body goes through provider_call
 * (with the scanner, provider_openai, or without it, provider_openai_parsed) into the
 * gateway's SSE writer, as chat.c's sink would write it; and what a client then reads from
 * those bytes, one line per event. support_json_pass.c reads its answers with the same
 * reader. No cmocka here: the fuzzers link it too.
 */
#ifndef SWITCHBOARD_TESTS_SUPPORT_PASSTHROUGH_H
#define SWITCHBOARD_TESTS_SUPPORT_PASSTHROUGH_H

#include <stdbool.h>
#include <stddef.h>

#include "switchboard/provider.h"

#define PT_ID      "chatcmpl-req1"
#define PT_MODEL   "route-a"
#define PT_CREATED 1700000000

/*
 * body[0..len) as a 200 text/event-stream answer through ops, fed in pieces (split 0: whole,
 * else a seed for pseudo-random pieces of 1..97 bytes), written to out the way the gateway
 * writes a stream (PT_ID, PT_MODEL, PT_CREATED; role chunk at the first output, an error
 * chunk when the call fails after output). A failure before any output, which the gateway
 * answers as a JSON error instead, is written as one line "early <class>: <message>".
 * *forwarded (may be NULL) counts the chunks that went out as passthrough. Returns the
 * call's outcome class.
 */
enum llm_errclass pt_relay(const struct provider_ops *ops, const char *body, size_t len,
                           bool include_usage, unsigned split, struct buf *out, int *forwarded);

/* body[0..len) into pc's on_data (split 0: whole, else a seed for pseudo-random pieces of
 * 1..97 bytes), until it is all in or on_data refuses. */
void support_feed(struct provider_call *pc, const char *body, size_t len, unsigned split);

/* One line for ev into log: its type and fields as the router sees them (pt_client_view's
 * and jp_client_view's lines, jp_answer's event log). */
void support_log_event(struct buf *log, const struct llm_event *ev);

/* What an OpenAI client reads from a 200 answer body[0..len) (an SSE stream, else a JSON
 * answer): one line per event provider_openai_parsed decodes (support_log_event), then
 * "end <class>". */
void support_client_read(const char *body, size_t len, bool stream, struct buf *log);

/* What an OpenAI client reads from gateway bytes: one line per event (decoded with
 * provider_openai_parsed), then "end <class>". */
void pt_client_view(const char *sse, size_t len, struct buf *log);

#endif
