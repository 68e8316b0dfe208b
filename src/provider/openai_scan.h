/*
 * openai_scan.h - private to src/provider: the same-format passthrough scanner for OpenAI
 * stream chunks (openai_scan.c). It reads one event's data without building a tree and
 * says where the few values that matter are; it accepts only the common shape of a content
 * chunk and answers false for anything else, which then goes to the cJSON parser.
 *
 * Threads: stateless; any thread. Pure: no I/O, no allocation.
 */
#ifndef SWITCHBOARD_PROVIDER_OPENAI_SCAN_H
#define SWITCHBOARD_PROVIDER_OPENAI_SCAN_H

#include <stdbool.h>
#include <stddef.h>

#include "switchboard/llm.h"

/* A string value: its bytes between the quotes (escapes still in), NULL when absent. */
struct oai_span {
    const char *s;
    size_t len;
    bool escaped; /* holds a backslash escape */
    bool uesc;    /* ... a \u one (a whole answer's values only; chunks refuse them) */
};

struct oai_scan {
    struct llm_chunk chunk; /* json/len and the spans a forwarder replaces */
    bool has_envelope;      /* id, created and model all present: the chunk can be forwarded */
    struct oai_span content;
    struct oai_span finish;      /* finish_reason string; NULL s for null or absent */
    struct oai_span fingerprint; /* system_fingerprint string, never escaped */
    struct oai_span tier;        /* service_tier string, never escaped */
};

/*
 * Scans data[0..len) (an SSE event's data, not [DONE]). True when it is a well-formed JSON
 * object of the simple shape: no "error" member, "usage" null or absent, "choices" absent or
 * an array of at most one choice with index 0 (or none), whose members are index, delta,
 * finish_reason (string or null) and logprobs (null), and whose delta holds only role,
 * content (string or null) and null refusal/reasoning fields; every string valid UTF-8
 * without \u escapes, no known key twice, no line break anywhere. Then *out says what the
 * chunk holds and the parser would read the same. False: use the parser.
 */
bool openai_scan_chunk(const char *data, size_t len, struct oai_scan *out);

/* What openai_scan_completion read from a whole chat.completion. */
struct oai_full {
    struct llm_chunk body;       /* json/len and the id, created and model value spans */
    struct oai_span content;     /* message.content (a string, maybe empty) */
    struct oai_span fingerprint; /* system_fingerprint; NULL s for null or absent */
    struct oai_span tier;        /* service_tier; NULL s for null or absent */
    enum llm_finish finish;      /* stop, length or content_filter */
    struct llm_usage usage;      /* present when a usage object came */
    long total_tokens;           /* usage.total_tokens (their sum) */
};

/*
 * Scans data[0..len) (a non-streaming answer's body). True when it is one well-formed JSON
 * object (the chunk scanner's strictness, line breaks allowed between tokens) of the simple
 * shape whose forwarded bytes, with id, created and model replaced, read as the gateway's
 * re-encoded answer would: id, created, model, "object":"chat.completion" and choices
 * present; no "error" member; exactly one choice, index 0, finish_reason "stop", "length" or
 * "content_filter", logprobs null or absent; its message role "assistant" and a string
 * content, with refusal, reasoning_content, reasoning, function_call and audio null,
 * tool_calls null or [] and annotations [] when present, nothing else; system_fingerprint
 * and service_tier null or a short non-empty string without escapes; usage null, absent, or
 * an object with integer prompt_tokens, completion_tokens and total_tokens (their sum) and
 * prompt_tokens_details null or an object whose cached_tokens, if any, is an integer. Other
 * top-level and usage members pass as they are. False: use the parser.
 */
bool openai_scan_completion(const char *data, size_t len, struct oai_full *out);

/* The unescaped text of a span (its escapes \" \\ \/ \b \f \n \r \t, and \u as the scanner
 * let it through: never U+0000, surrogates only in pairs) into out as UTF-8 (NUL-terminated,
 * len + 1 bytes at most: an escape never grows). Returns the length written. */
size_t openai_scan_unescape(const struct oai_span *sp, char *out);

#endif
