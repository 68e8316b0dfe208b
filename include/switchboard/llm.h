/*
 * llm.h - the one request type, the one event stream and the one sink that every caller
 * (gateway, console compare pane, `switchboard ask`) and every provider adapter share.
 *
 * A provider's answer, streamed or not, is decoded into the same sequence of events:
 *   TEXT* , (TOOL_CALL TOOL_ARGS*)* , USAGE? , FINISH      on success
 *   ... , ERROR                                            on failure (nothing after ERROR)
 * A non-streaming answer produces the same events, each text in one piece.
 *
 * Threads: plain data, no locking. A struct llm_request is immutable once handed to the
 * router; adapters only read it. Event payload pointers are borrowed: valid only during the
 * sink callback that receives them.
 */
#ifndef SWITCHBOARD_LLM_H
#define SWITCHBOARD_LLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "switchboard/util.h"

/* ---- Requests --------------------------------------------------------------------------- */

enum llm_role {
    LLM_ROLE_SYSTEM,
    LLM_ROLE_USER,
    LLM_ROLE_ASSISTANT,
    LLM_ROLE_TOOL,
};

struct llm_tool_call {
    char *id;        /* provider's or synthesised id; never NULL once decoded */
    char *name;      /* function name */
    char *arguments; /* JSON text of the arguments object ("{}" when none) */
};

struct llm_message {
    enum llm_role role;
    char *content; /* text; NULL when an assistant message carries only tool calls */
    struct llm_tool_call *tool_calls; /* assistant only */
    size_t n_tool_calls;
    char *tool_call_id; /* role TOOL: which call this answers */
    char *name;         /* role TOOL: the function's name (Gemini needs it), may be NULL */
};

struct llm_tool {
    char *name;
    char *description;     /* may be NULL */
    char *parameters_json; /* JSON Schema object as text; NULL means {"type":"object"} */
};

enum llm_tool_choice {
    LLM_TOOL_CHOICE_UNSET, /* provider default (auto when tools are given) */
    LLM_TOOL_CHOICE_AUTO,
    LLM_TOOL_CHOICE_NONE,
    LLM_TOOL_CHOICE_REQUIRED,
    LLM_TOOL_CHOICE_NAMED, /* tool_choice_name must be called */
};

struct llm_request {
    char *model; /* the public model name the client asked for (a route name) */
    struct llm_message *messages;
    size_t n_messages;
    size_t cap_messages; /* allocated slots (grows geometrically) */
    struct llm_tool *tools;
    size_t n_tools;
    size_t cap_tools;
    enum llm_tool_choice tool_choice;
    char *tool_choice_name;
    bool stream;
    bool include_usage; /* OpenAI stream_options.include_usage, as the client asked */
    long max_tokens;    /* 0 = not given */
    bool has_temperature;
    double temperature;
    bool has_top_p;
    double top_p;
    char **stop; /* stop sequences */
    size_t n_stop;
    char *user; /* end-user id, passed through where the wire format has one */
};

void llm_request_init(struct llm_request *req);
void llm_request_cleanup(struct llm_request *req); /* frees every member; NULL-safe */
/* Convenience for tests and `ask`: appends a message (copies the strings). */
struct llm_message *llm_request_add_message(struct llm_request *req, enum llm_role role,
                                            const char *content);
void llm_request_add_tool(struct llm_request *req, const char *name, const char *description,
                          const char *parameters_json);
/* Rough prompt size for routing and rate limits: ~4 bytes per token over all text. */
long llm_request_estimate_tokens(const struct llm_request *req);
const char *llm_role_name(enum llm_role role); /* "system", "user", ... */

/* ---- Results ---------------------------------------------------------------------------- */

enum llm_finish {
    LLM_FINISH_NONE, /* not reported */
    LLM_FINISH_STOP,
    LLM_FINISH_LENGTH,
    LLM_FINISH_TOOL_CALLS,
    LLM_FINISH_CONTENT_FILTER,
    LLM_FINISH_ERROR, /* provider reported an error finish (e.g. Gemini OTHER/MALFORMED...) */
};
/* OpenAI's spelling: "stop", "length", "tool_calls", "content_filter"; ERROR -> "error";
 * NONE -> NULL (not reported: JSON null; callers pick their own default). */
const char *llm_finish_name(enum llm_finish f);

struct llm_usage {
    bool present;      /* false: the provider reported no usage (flag it, never treat as 0) */
    long input_tokens; /* all prompt tokens, cached ones included */
    long output_tokens;
    long cached_tokens; /* subset of input_tokens served from the provider's cache */
};

/*
 * Error classes. Retryable: DNS, CONNECT, TLS, TIMEOUT, RATE_LIMIT, OVERLOADED, SERVER,
 * TRUNCATED (before first byte only; the router decides). CONTEXT_LENGTH has its own
 * fallback rule. The rest go back to the client.
 */
enum llm_errclass {
    LLM_ERR_NONE,
    LLM_ERR_DNS,
    LLM_ERR_CONNECT,
    LLM_ERR_TLS,
    LLM_ERR_TIMEOUT,
    LLM_ERR_RATE_LIMIT,     /* 429 */
    LLM_ERR_OVERLOADED,     /* 529, "overloaded_error" */
    LLM_ERR_SERVER,         /* 408, 500, 502, 503, 504 and other 5xx */
    LLM_ERR_AUTH,           /* 401, 403 */
    LLM_ERR_BAD_REQUEST,    /* 400, 404, 422 and other 4xx */
    LLM_ERR_CONTEXT_LENGTH, /* prompt too long for the model */
    LLM_ERR_BAD_RESPONSE,   /* unparseable body, wrong content-type, over a size cap */
    LLM_ERR_TRUNCATED,      /* stream ended without its terminal event */
    LLM_ERR_CANCELLED,      /* we cancelled it (hedge lost, client went away) */
    LLM_ERR_NO_KEY,         /* target's API key variable is unset */
    LLM_ERR_INTERNAL,
};
#define LLM_ERRCLASS_COUNT (LLM_ERR_INTERNAL + 1)

const char *llm_errclass_name(enum llm_errclass c); /* stable snake_case: "rate_limit" */
bool llm_errclass_is_retryable(enum llm_errclass c);
/* The HTTP status the gateway answers with for this class when no upstream status says
 * better (e.g. 429, 502, 504; an error reported inside a 200 body or stream). */
int llm_errclass_http_status(enum llm_errclass c);
/* Whether the class comes from what a provider answered (an HTTP error status or an error
 * object in its body): RATE_LIMIT, OVERLOADED, SERVER, AUTH, BAD_REQUEST, CONTEXT_LENGTH. */
bool llm_errclass_is_upstream(enum llm_errclass c);
/*
 * The status a client gets for a call that failed with class c, the provider having last
 * answered upstream_status (0 when none). A provider's own 4xx/5xx is kept for the classes it
 * decided (Anthropic's 529 becomes 503); transport failures and unreadable answers are 502,
 * the deadline 504; otherwise llm_errclass_http_status.
 */
int llm_client_status(enum llm_errclass c, long upstream_status);
/* Maps an HTTP status (>= 400) to a class; body-based refinements are the adapters' job. */
enum llm_errclass llm_errclass_from_status(long status);

/* What a provider said about an error, in OpenAI's terms, for the client: an OpenAI-wire
 * provider's own type/code/param; Anthropic's and Gemini's types mapped to the nearest
 * OpenAI type, their own type or status as the code. "" when unknown. Caller's storage. */
struct llm_error_info {
    char type[48];          /* invalid_request_error, authentication_error, rate_limit_error, ... */
    char code[64];          /* provider's code ("model_not_found", "overloaded_error", ...) */
    char param[96];         /* OpenAI's param */
    int64_t retry_after_ms; /* a delay the error body asks for (Gemini RetryInfo); -1 none */
};
void llm_error_info_init(struct llm_error_info *e);
/* The nearest OpenAI error type for an HTTP status: 401 authentication_error, 403
 * permission_error, 404 not_found_error, 429 rate_limit_error, 5xx server_error, other 4xx
 * invalid_request_error; NULL for anything else. */
const char *llm_error_type_for_status(long status);

/* Rate-limit facts read from a response's headers (any status). -1 means not given. */
struct llm_ratelimit {
    int64_t retry_after_ms; /* Retry-After (seconds or HTTP date) or retry-after-ms */
    long remaining_requests;
    long remaining_tokens;
    int64_t reset_requests_ms; /* time until the request window resets */
    int64_t reset_tokens_ms;
};
void llm_ratelimit_init(struct llm_ratelimit *rl);
/* Feeds one response header (name case-insensitive). now_wall_ms resolves HTTP dates.
 * Understands Retry-After, retry-after-ms, x-ratelimit-{remaining,reset}-{requests,tokens}
 * (OpenAI: "1s", "6m0s", "20ms"), anthropic-ratelimit-{requests,tokens}-{remaining,reset}
 * (RFC 3339 times). Unknown headers are ignored. */
void llm_ratelimit_feed_header(struct llm_ratelimit *rl, const char *name, const char *value,
                               int64_t now_wall_ms);
/* How long a rate-limited client should wait: Retry-After / retry-after-ms when given, else
 * body_delay_ms (a delay in the error body, -1 none), else the reset time of the exhausted
 * window (remaining 0), else the soonest reset given; -1 when nothing says. */
int64_t llm_ratelimit_retry_delay_ms(const struct llm_ratelimit *rl, int64_t body_delay_ms);
/* A provider rate-limit header as the client should see it: x-ratelimit-{limit,remaining,
 * reset}-{requests,tokens,input-tokens,output-tokens} as they are (name lower-cased), and
 * Anthropic's anthropic-ratelimit-<what>-<field> translated to that spelling, its RFC 3339
 * reset time becoming a delay ("1.5s", "20ms"). False for any other header or one that does
 * not fit the buffers. */
bool llm_ratelimit_client_header(const char *name, const char *value, int64_t now_wall_ms,
                                 char *out_name, size_t name_size, char *out_value,
                                 size_t value_size);
/* Parses "1s", "6m0s", "1h2m3.5s", "20ms" into milliseconds. */
bool llm_parse_go_duration_ms(const char *s, int64_t *out_ms);

/* ---- Events and sinks ------------------------------------------------------------------- */

/* What a TEXT event's text is. Only CONTENT is the answer; sinks that show just the answer
 * skip the rest. */
enum llm_text_kind {
    LLM_TEXT_CONTENT,
    LLM_TEXT_REFUSAL,           /* OpenAI message.refusal / delta.refusal */
    LLM_TEXT_REASONING_CONTENT, /* OpenAI-compatible servers' reasoning_content (DeepSeek, vLLM) */
    LLM_TEXT_REASONING,         /* ... or their "reasoning" (OpenRouter, Ollama, Groq) */
};
/* The OpenAI field name of a text kind: "content", "refusal", "reasoning_content", ... */
const char *llm_text_kind_field(enum llm_text_kind k);

enum llm_event_type {
    LLM_EV_TEXT,      /* text delta: text/len, kind (+ logprobs) */
    LLM_EV_TOOL_CALL, /* a tool call starts: index, id, name */
    LLM_EV_TOOL_ARGS, /* arguments delta for tool call `index`: text/len */
    LLM_EV_USAGE,     /* usage */
    LLM_EV_FINISH,    /* finish; the answer is complete */
    LLM_EV_ERROR,     /* errclass, status, text = sanitised message (no secrets) */
};

/*
 * An OpenAI-wire chunk ("chat.completion.chunk" JSON, one SSE event's data) that a TEXT event
 * came from whole, for a client of the same wire format: the gateway forwards these bytes
 * instead of encoding the event again, replacing only the values a forwarder must own. Each
 * span is a byte range of json (len 0: not in the chunk): the id, created and model values,
 * a non-null finish_reason value (the finish goes out once, at the end), and the member
 * "usage":null with one adjoining comma (dropped when the client did not ask for usage).
 * Only set when the chunk has nothing else to say (no tool call, reasoning, refusal,
 * logprobs, error, line break or \u escape) and the text needed no UTF-8 repair.
 *
 * A non-streaming answer's FINISH may carry its whole chat.completion body the same way
 * (openai_scan_completion's shape: one choice, content only, no \u escape): spans for id,
 * created and model only; the gateway then answers these bytes with its own three values
 * in place of re-encoding the collected answer (same-format passthrough of JSON answers).
 */
enum llm_chunk_field {
    LLM_CHUNK_ID,
    LLM_CHUNK_CREATED,
    LLM_CHUNK_MODEL,
    LLM_CHUNK_FINISH,
    LLM_CHUNK_USAGE,
};
#define LLM_CHUNK_FIELDS (LLM_CHUNK_USAGE + 1)

struct llm_chunk_span {
    size_t at;
    size_t len;
};

struct llm_chunk {
    const char *json; /* borrowed like the event's text */
    size_t len;
    struct llm_chunk_span span[LLM_CHUNK_FIELDS];
};

struct llm_event {
    enum llm_event_type type;
    const char *text; /* borrowed; not NUL-terminated in general: use len */
    size_t len;
    int index;        /* tool call index, 0-based in order of appearance */
    const char *id;   /* TOOL_CALL */
    const char *name; /* TOOL_CALL */
    struct llm_usage usage;
    enum llm_finish finish;
    enum llm_errclass errclass;
    long status;             /* ERROR: upstream HTTP status, 0 when none */
    enum llm_text_kind kind; /* TEXT */
    /* TEXT: the choice's "logprobs" object as an OpenAI-wire provider sent it (JSON text),
     * NULL when none; borrowed like text. */
    const char *logprobs;
    size_t logprobs_len;
    /* FINISH: the OpenAI-wire provider's system_fingerprint and service_tier, NULL when
     * not given. */
    const char *system_fingerprint;
    const char *service_tier;
    /* TEXT: the OpenAI-wire chunk it came from whole; FINISH: the whole non-streaming answer
     * (see struct llm_chunk); NULL when none. */
    const struct llm_chunk *chunk;
};

/* A sink receives events. Return 0 to continue, non-zero to ask the producer to stop
 * (the call is then cancelled). */
typedef int (*llm_event_fn)(void *ctx, const struct llm_event *ev);

struct llm_sink {
    llm_event_fn on_event;
    void *ctx;
};

/* Accumulates an event stream into a whole answer (non-streaming gateway replies, tests,
 * `ask --no-stream`). Caller's storage. */
struct llm_response {
    struct buf text;
    struct buf refusal;   /* LLM_TEXT_REFUSAL text; empty when none came */
    struct buf reasoning; /* reasoning text (either kind); empty when none came */
    enum llm_text_kind reasoning_kind;
    struct buf logprobs; /* the last TEXT event's logprobs JSON; empty when none came */
    char system_fingerprint[96];
    char service_tier[32];
    struct llm_tool_call *tool_calls; /* .arguments points into tool_args[i]: do not free */
    size_t n_tool_calls;
    size_t cap_tool_calls;
    struct buf *tool_args; /* private: argument text per call, grown in amortised time */
    struct llm_usage usage;
    enum llm_finish finish;
    bool finished;
    enum llm_errclass errclass; /* LLM_ERR_NONE unless an ERROR event came */
    long status;
    char error[512];
};
void llm_response_init(struct llm_response *r);
void llm_response_cleanup(struct llm_response *r);
/* An llm_event_fn: ctx is a struct llm_response *. Always returns 0. */
int llm_response_collect(void *ctx, const struct llm_event *ev);

/* ---- Cost ------------------------------------------------------------------------------- */

/* Prices in USD per million tokens. */
struct llm_price {
    double input_per_mtok;
    double output_per_mtok;
    double cached_input_per_mtok; /* applied to usage.cached_tokens */
};
/* Cost in USD: (input - cached) * input + cached * cached_input + output * output, all per
 * million. Returns 0 when usage is absent (callers flag missing usage separately). */
double llm_cost_usd(const struct llm_price *price, const struct llm_usage *usage);

#endif
