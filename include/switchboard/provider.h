/*
 * provider.h - wire formats. One const struct provider_ops per format (OpenAI Chat
 * Completions, Anthropic Messages, Gemini generateContent; OpenAI-compatible servers reuse
 * the OpenAI codec with optional auth). The router never switches on provider kind: it
 * calls through the ops.
 *
 * Encoding and decoding are pure: no I/O, no clocks (time comes in as arguments), so unit
 * tests drive them with fixtures. struct provider_call is the shared glue that turns one
 * HTTP exchange (status, headers, body bytes) into llm events for a sink, enforcing caps.
 *
 * Threads: ops are stateless and callable from any thread; a provider_call belongs to the
 * thread that drives its transfer (the router thread, or `ask`'s thread).
 * Secrets: http_request headers carry the API key; never log or print them. Error messages
 * from providers are passed through provider_redact() before anyone sees them.
 */
#ifndef SWITCHBOARD_PROVIDER_H
#define SWITCHBOARD_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "switchboard/config.h"
#include "switchboard/llm.h"
#include "switchboard/sse.h"
#include "switchboard/util.h"

/* Caps on everything a provider sends. */
#define PROVIDER_MAX_BODY       (16u * 1024 * 1024) /* non-streaming 2xx body */
#define PROVIDER_MAX_ERROR_BODY (64u * 1024)        /* error bodies: the rest is dropped */
/* One size rule for SSE: a line and an event may each hold this much (the default of a
 * target's sse_max_event_bytes; provider_call_set_sse_limit). */
#define PROVIDER_MAX_SSE_EVENT (4u * 1024 * 1024)
#define PROVIDER_MAX_SSE_LINE  PROVIDER_MAX_SSE_EVENT
#define PROVIDER_MAX_EVENTS    200000u /* SSE events in one stream */

/* An HTTP request ready for the transport. Caller's storage. */
struct http_request {
    char *method; /* "POST" or "GET" */
    char *url;
    char **headers; /* "Name: value" strings (may hold the API key: never log) */
    size_t n_headers;
    size_t cap_headers;
    char *body; /* NULL for GET */
    size_t body_len;
};
void http_request_init(struct http_request *r);
void http_request_cleanup(struct http_request *r);
void http_request_add_header(struct http_request *r, const char *fmt, ...) SB_PRINTF(2, 3);

/* Messages returned by ops go in a caller buffer of this size. */
#define PROVIDER_MSG_MAX 512

struct provider_ops {
    const char *name; /* "openai", "anthropic", "gemini" */

    /* Builds the HTTP request for req on target t (req->stream picks the streaming form;
     * the target's model replaces req->model). SB_ERR_UNSUPPORTED with a message for
     * requests this format cannot express. */
    enum sb_status (*encode)(const struct config_target *t, const struct llm_request *req,
                             struct http_request *out, char *msg, size_t msglen);

    /* A whole 2xx non-streaming body -> events on sink (TEXT, TOOL_CALL/ARGS, USAGE when
     * reported, FINISH). Returns LLM_ERR_NONE, or a class (e.g. BAD_RESPONSE) with msg set;
     * the caller emits the ERROR event. */
    enum llm_errclass (*decode_full)(const char *body, size_t len, const struct llm_sink *sink,
                                     char *msg, size_t msglen);

    /* Streaming decode state, one per call. */
    void *(*stream_new)(void);
    void (*stream_free)(void *state); /* NULL-safe */
    /* One SSE event -> zero or more llm events. Returns LLM_ERR_NONE to go on, or a class
     * (an in-stream error event, unparseable JSON) with msg set. */
    enum llm_errclass (*stream_event)(void *state, const struct sse_event *ev,
                                      const struct llm_sink *sink, char *msg, size_t msglen);
    /* The body ended: clean when it closed normally (chunked end), false after a transport
     * failure. Returns LLM_ERR_NONE and emits USAGE/FINISH if the format's terminal event was
     * seen, or on a clean close after a chunk that carried a finish reason; LLM_ERR_TRUNCATED
     * with msg otherwise. */
    enum llm_errclass (*stream_end)(void *state, bool clean, const struct llm_sink *sink, char *msg,
                                    size_t msglen);

    /* An error response (status >= 400, body possibly empty or not JSON) -> class + message
     * (provider's own text when it has one) + what the client should see of it in info
     * (caller-initialised with llm_error_info_init; fields the body does not give stay "").
     * Detects context-length errors and overload. */
    enum llm_errclass (*classify)(long status, const char *body, size_t len,
                                  struct llm_error_info *info, char *msg, size_t msglen);

    /* The cheapest health check the provider offers (model listing / model get). A 2xx
     * answer means healthy. */
    enum sb_status (*encode_probe)(const struct config_target *t, struct http_request *out,
                                   char *msg, size_t msglen);
};

/* The OpenAI codec scans each stream chunk first (openai_scan.c: no tree; its content's
 * TEXT event carries the chunk for same-format passthrough, struct llm_chunk), and a whole
 * answer's body likewise (its FINISH carries the body), and parses with cJSON only what the
 * scanner refuses. provider_openai_parsed parses every chunk and body and never sets a
 * chunk: the reference the passthrough is compared with (tests, fuzzers). */
extern const struct provider_ops provider_openai;
extern const struct provider_ops provider_openai_parsed;
extern const struct provider_ops provider_anthropic;
extern const struct provider_ops provider_gemini;

/* The ops for a kind (openai-compatible -> provider_openai). Never NULL. */
const struct provider_ops *provider_ops_for(enum provider_kind kind);

/* Steps the encoders have taken on the calling thread (one per message, block, tool call,
 * lookup probe...): a test reads it before and after an encode to assert linear work. */
uint64_t provider_encode_steps(void);

/* Replaces every occurrence of secret (if non-NULL and non-empty) and anything shaped like
 * an API key (sk-..., sk-ant-..., AIza..., "Bearer xyz") in msg with "[redacted]", in place. */
void provider_redact(char *msg, size_t size, const char *secret);

/* ---- One HTTP exchange -> events ---------------------------------------------------------- */

struct provider_call;

/*
 * Creates the decoder for one attempt. stream says whether a streaming answer was asked
 * for. secret (may be NULL) is redacted from any message. The sink receives every event;
 * exactly one FINISH or ERROR ends the sequence.
 */
struct provider_call *provider_call_new(const struct provider_ops *ops, bool stream,
                                        const struct llm_sink *sink, const char *secret);
void provider_call_free(struct provider_call *c); /* NULL-safe */
/* The SSE size limit (per line and per event alike; 0: PROVIDER_MAX_SSE_EVENT). Before the
 * first body byte. */
void provider_call_set_sse_limit(struct provider_call *c, size_t bytes);

/* The final response status (after any 1xx). */
void provider_call_on_status(struct provider_call *c, long status);
/* One response header; reads content-type and rate-limit headers. */
void provider_call_on_header(struct provider_call *c, const char *name, const char *value,
                             int64_t now_wall_ms);
/* Body bytes. Returns 0 to go on; non-zero when the transfer should be aborted (a cap was
 * hit, the stream reported an error, or the sink asked to stop): the call has then already
 * emitted its ERROR (or the sink stopped it) and provider_call_finish only reports. */
int provider_call_on_data(struct provider_call *c, const char *bytes, size_t len);
/*
 * The transfer is over. transport_err is LLM_ERR_NONE when the body ended cleanly, else the
 * transport's class (timeout, connect...) with its message. Emits the final FINISH or ERROR
 * if not yet emitted and returns the call's outcome class (LLM_ERR_NONE on success).
 */
enum llm_errclass provider_call_finish(struct provider_call *c, enum llm_errclass transport_err,
                                       const char *transport_msg);

/* Facts for the router and stats. */
long provider_call_status(const struct provider_call *c);
bool provider_call_has_output(const struct provider_call *c); /* any TEXT/TOOL event sent */
const struct llm_ratelimit *provider_call_ratelimit(const struct provider_call *c);
const struct llm_usage *provider_call_usage(const struct provider_call *c);
enum llm_finish provider_call_finish_reason(const struct provider_call *c);
const char *provider_call_error(const struct provider_call *c); /* "" when none; redacted */
/* An error response's type/code/param for the client (all "" unless an HTTP error body was
 * classified). Borrowed: valid until provider_call_free. */
const struct llm_error_info *provider_call_error_info(const struct provider_call *c);
/* The provider's rate-limit headers as the client should see them (llm_ratelimit_client_header),
 * one "name: value\n" line each; "" when none. Borrowed: valid until provider_call_free. */
const char *provider_call_client_headers(const struct provider_call *c);

/* ---- OpenAI wire format, client side (used by the gateway) -------------------------------- */

/*
 * Parses an inbound OpenAI Chat Completions request body into req (caller-initialised).
 * Accepts string content and arrays of text parts; rejects what we cannot route (image parts,
 * n > 1, unknown roles) with SB_ERR_UNSUPPORTED, malformed input with SB_ERR_PARSE /
 * SB_ERR_INVALID; msg says what to fix, naming the field ("messages[2].role: ...").
 */
enum sb_status openai_request_parse(const char *body, size_t len, struct llm_request *req,
                                    char *msg, size_t msglen);

#endif
