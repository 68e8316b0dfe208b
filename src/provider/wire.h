/*
 * wire.h - private to src/provider: the JSON and event helpers that the Anthropic and
 * Gemini adapters share (the body writers and call ids, OpenAI's too). Nothing outside
 * src/provider includes this.
 *
 * JSON from a provider is parsed from exactly len bytes and read through typed accessors
 * that tolerate any shape (a missing or mistyped field reads as absent). Events go to a sink
 * through wire_emit*, which turn "the sink asked to stop" into LLM_ERR_CANCELLED with a
 * message, so adapters can return at once.
 *
 * Threads: stateless; any thread. Pure: no I/O, no clock.
 */
#ifndef SWITCHBOARD_PROVIDER_WIRE_H
#define SWITCHBOARD_PROVIDER_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "switchboard/llm.h"
#include "switchboard/util.h"

/*
 * The encoders' work counter (provider_encode_steps in provider.h): every loop step an
 * encoder takes over messages, blocks, tool calls and lookups adds one, so tests can assert
 * that encoding is linear in the request without timing it. Thread-local.
 */
extern _Thread_local uint64_t wire_steps;
#define WIRE_STEP() (wire_steps++)

/* snprintf into a caller's message buffer; NULL or 0-sized msg is ignored. */
void wire_msg(char *msg, size_t msglen, const char *fmt, ...) SB_PRINTF(3, 4);

/* Parses exactly len bytes (need not be NUL-terminated; s may be NULL when len is 0).
 * Trailing garbage fails. NULL on failure; otherwise the caller cJSON_Deletes the tree. */
cJSON *wire_parse(const char *s, size_t len);
/* wire_parse for a tree that this function deletes before it returns (one stream event, one
 * response body): its nodes come from the thread's scratch arena (util.h), which saves a
 * malloc/free pair per node. Never for a tree that is kept or handed to another thread. */
cJSON *wire_parse_scratch(const char *s, size_t len);

/* Typed reads, NULL-safe on obj: absent or mistyped -> NULL / false. */
const cJSON *wire_get(const cJSON *obj, const char *key);
const char *wire_str(const cJSON *obj, const char *key);
/* A token count: a JSON number clamped to [0, 1e15] into *out. */
bool wire_count(const cJSON *obj, const char *key, long *out);

bool wire_has_text(const char *s); /* non-NULL and non-empty */
/* Case-insensitive: does text (may be NULL) contain any of the n needles? */
bool wire_contains_any(const char *text, const char *const *needles, size_t n);
/* Length of base without its trailing slashes. */
size_t wire_base_len(const char *base);

/*
 * A JSON object given as text by our client (tool arguments, a schema). NULL or blank text
 * gives *out = NULL and SB_OK; otherwise SB_ERR_PARSE (not JSON) or SB_ERR_INVALID (not an
 * object), or SB_OK with a tree the caller owns.
 */
enum sb_status wire_parse_object(const char *text, cJSON **out);
const char *wire_object_error(enum sb_status st); /* "invalid JSON" / "expected a JSON object" */

/*
 * Tool call id -> function name, for adapters whose tool results must name the function
 * (Gemini). Open addressing sized once for n calls: put and get are O(1) (plus the id's
 * length). Keys and values are borrowed from the request and must outlive the table; a
 * later put of the same id wins (the latest earlier call answers a result).
 */
struct wire_names {
    const char **ids;
    const char **names;
    size_t cap; /* a power of two, at least twice the calls */
    size_t n;   /* ids held (never above cap / 2: a put beyond is dropped) */
};
void wire_names_init(struct wire_names *m, size_t n_calls);
void wire_names_cleanup(struct wire_names *m);
void wire_names_put(struct wire_names *m, const char *id, const char *name);
const char *wire_names_get(const struct wire_names *m, const char *id); /* NULL: none */

/* "messages[i].tool_calls[j].function.arguments (tool call "id"): not valid JSON" or "...: not
 * a JSON object", for st from wire_parse_object. */
void wire_msg_bad_args(char *msg, size_t msglen, size_t i, size_t j, const char *id,
                       enum sb_status st);

/* Emit one event. LLM_ERR_NONE, or LLM_ERR_CANCELLED (msg set) when the sink says stop. */
enum llm_errclass wire_emit(const struct llm_sink *sink, const struct llm_event *ev, char *msg,
                            size_t msglen);
/* TEXT of a kind (refusal, reasoning...) with a NUL-terminated text; nothing for NULL or "". */
enum llm_errclass wire_emit_text_kind(const struct llm_sink *sink, enum llm_text_kind kind,
                                      const char *text, char *msg, size_t msglen);
/* TEXT or TOOL_ARGS with a NUL-terminated text; nothing for NULL or "". */
enum llm_errclass wire_emit_text(const struct llm_sink *sink, enum llm_event_type type, int index,
                                 const char *text, char *msg, size_t msglen);
/*
 * Gemini thought signatures ride in the tool call ids clients echo back: "<id>" WIRE_SIG_SEP
 * "<signature>". Only the Gemini adapter reads the signature; the others send the id without
 * it (wire_call_id_len), so every provider sees ids of its own size and alphabet. An id is
 * signed only with something before the separator and something after it; any other id,
 * separator or not, passes through whole.
 */
#define WIRE_SIG_SEP "__thought_sig__"
size_t wire_call_id_len(const char *id);   /* the part before WIRE_SIG_SEP */
const char *wire_call_sig(const char *id); /* the signature, or NULL when none */
/* obj[key] = id without its signature ("" for NULL). */
void wire_add_call_id(cJSON *obj, const char *key, const char *id);

/*
 * A request body written straight into a buffer: the messages, which may be most of a 4 MiB
 * prompt that a cJSON tree would copy twice and print a byte at a time on the router thread
 * (docs/bench.md). Strings are escaped as cJSON prints them (buf_put_json_string), so a body
 * is byte for byte what one tree would print; the small rest (tools, options) is still a
 * tree, its members spliced in after the messages (wire_put_members).
 */
void wire_put_str(struct buf *b, const char *s);      /* a JSON string; NULL as "" */
void wire_put_call_id(struct buf *b, const char *id); /* id without its signature; NULL as "" */
void wire_put_json(struct buf *b, cJSON *v);          /* v printed by cJSON, {} for NULL; takes v */
/* When st is SB_OK, root's members (after a comma when it has any) and the closing brace;
 * takes root either way and returns st. */
enum sb_status wire_put_members(struct buf *b, cJSON *root, enum sb_status st);
/* The texts of req's system messages joined with a blank line, as one JSON string's inside
 * between open and close; nothing at all when no system message has text. */
void wire_put_system(struct buf *b, const struct llm_request *req, const char *open,
                     const char *close);

/* TOOL_CALL; a NULL id becomes "call_<index>"; a signature (Gemini's; NULL for none) is
 * appended after WIRE_SIG_SEP. */
enum llm_errclass wire_emit_call(const struct llm_sink *sink, int index, const char *id,
                                 const char *sig, const char *name, char *msg, size_t msglen);
/* One TOOL_ARGS with args printed as JSON; anything but an object prints as "{}". */
enum llm_errclass wire_emit_args(const struct llm_sink *sink, int index, const cJSON *args,
                                 char *msg, size_t msglen);
/* USAGE when usage->present, then FINISH. */
enum llm_errclass wire_emit_end(const struct llm_sink *sink, const struct llm_usage *usage,
                                enum llm_finish finish, char *msg, size_t msglen);

#endif
