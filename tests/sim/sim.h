/*
 * sim.h - private header of switchboard-sim, the provider simulator.
 *
 * The simulator speaks the OpenAI, Anthropic and Gemini wire formats on loopback and injects
 * faults on demand. It is written independently from the project's adapters (no provider.h):
 * requests are parsed with cJSON and checked the way the real APIs check them, so adapter bugs
 * show up as the same 400s the real providers would send.
 *
 * Threads and state:
 *  - main thread (sim_main.c): flags, start-up, signals, and the supervisor that starts and
 *    stops the main daemon for "refuse" outages. Sole owner of the MHD daemon pointers.
 *  - libmicrohttpd connection threads (one per connection): serve requests. Each request copies
 *    the behaviour under the server lock at its start and works on that snapshot.
 *  - struct sim_server.lock guards behaviour, the PRNG, stats and the supervisor hand-shake
 *    fields. It is never held while calling MHD, cJSON, the logger or sleeping.
 */
#ifndef SWITCHBOARD_SIM_H
#define SWITCHBOARD_SIM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "switchboard/util.h"

#define SIM_BODY_MAX      (8u << 20) /* request bodies over this get 413 */
#define SIM_MAX_STATUSES  16
#define SIM_MAX_HEADERS   12
#define SIM_MAX_STAT_KEYS 256 /* distinct paths/statuses kept in stats */

/* ---- behaviour (sim_behavior.c) -------------------------------------------------------- */

enum sim_outage {
    SIM_OUTAGE_NONE,
    SIM_OUTAGE_REFUSE,     /* main port closed: connections refused */
    SIM_OUTAGE_503,        /* every provider request answers 503 */
    SIM_OUTAGE_OVERLOADED, /* 503, or 529 overloaded_error for Anthropic */
};

/* Named provider behaviours seen on the real wire (key "wire"); each format applies those
 * that exist for it and ignores the rest. */
enum sim_wire {
    SIM_WIRE_NONE,
    SIM_WIRE_NO_DONE,        /* stream ends cleanly without [DONE] / message_stop */
    SIM_WIRE_TRAILING_ERROR, /* a bare JSON error object after the last event (Vertex) */
    SIM_WIRE_OVERSIZE_EVENT, /* one SSE line of 5 MiB */
    SIM_WIRE_REFUSAL,        /* OpenAI refusal; Anthropic stop_reason refusal; Gemini SAFETY */
    SIM_WIRE_PROMPT_BLOCKED, /* Gemini: promptFeedback.blockReason, no candidates */
    SIM_WIRE_PROMPT_BLOCKED_SILENT, /* Gemini: promptFeedback without a blockReason */
    SIM_WIRE_REASONING,             /* OpenAI-compatible reasoning_content + logprobs */
    SIM_WIRE_LEGACY_TOOLS,          /* flat tool calls: no function wrapper, no id, "tool" */
    SIM_WIRE_RATELIMIT_RESETS,      /* a 429 with reset headers only: no retry-after */
};
#define SIM_WIRE_COUNT (SIM_WIRE_RATELIMIT_RESETS + 1)
extern const char *const sim_wire_names[SIM_WIRE_COUNT];

/* How the answers read (key "persona"): the demo's quality drop. */
enum sim_persona {
    SIM_PERSONA_NORMAL,
    SIM_PERSONA_TERSE,     /* the first few words only, finish "stop" */
    SIM_PERSONA_TRUNCATED, /* cut half-way, finish "length" */
};
#define SIM_PERSONA_COUNT (SIM_PERSONA_TRUNCATED + 1)
extern const char *const sim_persona_names[SIM_PERSONA_COUNT];
#define SIM_TERSE_WORDS 4

struct sim_behavior {
    enum sim_wire wire;
    enum sim_persona persona;
    double error_rate; /* 0..1: share of requests answered with an error status */
    int error_statuses[SIM_MAX_STATUSES];
    size_t n_error_statuses;
    bool rate_limit; /* every request gets rate_limit_status while set */
    int rate_limit_status;
    double rate_limit_retry_after_s;
    enum sim_outage outage;
    bool hang;
    long first_byte_delay_ms;
    long cut_after_tokens;   /* < 0: off */
    long stall_after_tokens; /* < 0: off; else stop sending after N pieces, connection open */
    bool spare_models;       /* faults spare GET model lists (chat fails, /models healthy) */
    bool models_only;        /* faults hit only GET model lists (the probes) */
    bool malformed;
    bool wrong_content_type;
    long token_rate;     /* stream pieces per second; 0 = as fast as possible */
    long context_window; /* 0 = unlimited */
    bool omit_usage;
    bool has_seed;
    long seed;
    long cached_tokens;
};

void sim_behavior_defaults(struct sim_behavior *b);
/* The behaviour one request meets: b itself, or b without its faults when the request is
 * outside their scope (spare_models, models_only). */
void sim_behavior_for_request(struct sim_behavior *b, bool is_model_list);
/* Applies a behaviour patch: keys present replace, absent keys keep their value;
 * {"reset":true} first restores *reset_to (may be NULL: built-in defaults). On error returns
 * false, leaves *b unchanged and writes a message naming the key to err. *seed_changed says
 * whether the PRNG must be reseeded (seed or reset given). */
bool sim_behavior_patch(struct sim_behavior *b, const struct sim_behavior *reset_to,
                        const cJSON *patch, bool *seed_changed, char *err, size_t err_size);
/* The full behaviour as a JSON object; caller frees with cJSON_free. */
char *sim_behavior_json(const struct sim_behavior *b);
/* Adds the value of a command-line fault flag to patch under key, converted to the key's JSON
 * type (arg may be NULL for boolean flags). False with a message on a bad value. */
bool sim_behavior_flag(cJSON *patch, const char *key, const char *arg, char *err, size_t err_size);
/* Appends one help line per behaviour key (generated from the key table). */
void sim_behavior_help(struct buf *out);

/* ---- server (sim_main.c owns it; sim_http.c serves it) ---------------------------------- */

struct sim_config {
    char *name;
    char *key;
    char *model_default;
    char *host;
    bool no_auth;
    bool quiet;
    uint16_t port;         /* fixed once the main daemon first listened; written under lock */
    uint16_t control_port; /* likewise for the control daemon */
};

struct sim_count {
    char *key;
    long count;
};

struct sim_stats {
    long requests;
    struct sim_count *paths;
    size_t n_paths, cap_paths;
    struct sim_count *statuses;
    size_t n_statuses, cap_statuses;
    char *last_request; /* JSON text, or NULL */
};

struct sim_server {
    struct sim_config cfg;       /* read-only once the daemons run */
    struct sim_behavior initial; /* start-up behaviour, target of {"reset":true}; read-only */

    pthread_mutex_t lock; /* guards the fields down to the next comment */
    pthread_cond_t cond;
    struct sim_behavior behavior;
    uint64_t rng;
    struct sim_stats stats;
    uint64_t behavior_gen; /* bumped by every behaviour change */
    uint64_t applied_gen;  /* last generation whose listening state the supervisor applied */
    bool main_listening;
    long main_in_flight; /* requests on the main daemon not yet completed */

    atomic_bool stopping;   /* process shutdown: waits and streams give up */
    atomic_uint main_epoch; /* bumped when the main daemon is taken down */
    int wake_fd[2];         /* control handlers poke the supervisor through this pipe */

    /* main thread only */
    struct MHD_Daemon *main_d;
    struct MHD_Daemon *ctl_d;
};

/* sim_http.c: daemons. Main thread only. */
bool sim_http_start_main(struct sim_server *s, char *err, size_t err_size);
bool sim_http_start_control(struct sim_server *s, char *err, size_t err_size);
/* Stops listening at once (port refuses), publishes main_listening=false with applied_gen =
 * gen, lets in-flight requests finish (bounded), then stops the daemon. */
void sim_http_stop_main(struct sim_server *s, uint64_t gen);
void sim_http_stop_control(struct sim_server *s);
/* Wakes the supervisor; any thread. */
void sim_server_wake(struct sim_server *s);
/* A fresh nonce for ids; any thread. */
uint64_t sim_nonce(void);
/* PRNG for error_rate draws. _locked: caller holds s->lock. */
void sim_server_reseed_locked(struct sim_server *s);
double sim_server_draw(struct sim_server *s);

/* ---- requests and replies (sim_http.c) ------------------------------------------------- */

struct sim_request {
    struct sim_server *srv;
    struct MHD_Connection *conn;
    const char *method;
    const char *path; /* without the query string */
    const char *body; /* NUL-terminated; "" when none */
    size_t body_len;
    struct sim_behavior beh; /* snapshot taken when the request arrived */
    bool is_main;
    unsigned epoch;
};

const char *sim_req_header(const struct sim_request *rq, const char *name);
const char *sim_req_query(const struct sim_request *rq, const char *name);
/* Whether presented (may be NULL) is the expected key, or --no-auth is set. */
bool sim_key_ok(const struct sim_request *rq, const char *presented);
/* Sleeps ms (< 0: until interrupted); false if interrupted by shutdown, the main daemon being
 * taken down or the client going away. */
bool sim_req_wait(const struct sim_request *rq, long ms);

struct sim_event {
    char *data;
    size_t len;
    bool paced; /* a content piece: counted, paced at token_rate, cut by cut_after_tokens */
};

struct sim_reply {
    int status; /* 0: nothing queued yet */
    const char *content_type;
    struct buf body;
    bool is_stream;
    struct sim_event *events;
    size_t n_events, cap_events;
    char *hdr_names[SIM_MAX_HEADERS];
    char *hdr_values[SIM_MAX_HEADERS];
    size_t n_headers;
};

void sim_reply_init(struct sim_reply *r);
void sim_reply_cleanup(struct sim_reply *r);
void sim_reply_header(struct sim_reply *r, const char *name, const char *fmt, ...) SB_PRINTF(3, 4);
/* Prints doc as the whole body (application/json) and deletes doc. */
void sim_reply_json(struct sim_reply *r, int status, cJSON *doc);
/* Starts a 200 text/event-stream reply. */
void sim_reply_stream(struct sim_reply *r);
/* Appends one SSE event: "event: NAME\n" (when name) + "data: JSON" + eol + eol; deletes doc. */
void sim_reply_sse(struct sim_reply *r, bool paced, const char *name, cJSON *doc, const char *eol);
void sim_reply_raw_event(struct sim_reply *r, bool paced, const char *text);
/* wire trailing_error: a bare JSON error object (Vertex AI's shape) after the last event. */
void sim_reply_trailing_error(struct sim_reply *r);
/* wire oversize_event: one "data:" line of 5 MiB (not valid JSON past its size). */
void sim_reply_oversize_event(struct sim_reply *r);
/* Hands the reply to MHD (applying the 200-only faults of rq->beh when faults is set);
 * the reply's contents are consumed. */
enum MHD_Result sim_reply_queue(const struct sim_request *rq, struct sim_reply *r, bool faults);

/* ---- provider formats (sim_openai.c, sim_anthropic.c, sim_gemini.c) --------------------- */

struct sim_format {
    const char *name;
    /* Whether the request carries the expected key in this provider's header. */
    bool (*auth_ok)(const struct sim_request *rq);
    /* An error body in the provider's shape. code: OpenAI-style code or NULL. */
    void (*error)(struct sim_reply *r, int status, const char *code, const char *msg);
    /* Provider-specific headers and body details for a rate-limit answer. */
    void (*rate_limited)(const struct sim_request *rq, struct sim_reply *r);
    /* Serves a request that passed the fault checks (parses, validates, answers). */
    void (*serve)(const struct sim_request *rq, struct sim_reply *r);
};

extern const struct sim_format sim_openai;
extern const struct sim_format sim_anthropic;
extern const struct sim_format sim_gemini;

/* ---- answers (sim_answer.c) ------------------------------------------------------------ */

/* What the format parsers extract from a request: everything the answer depends on. */
struct sim_prompt {
    char *model;
    char *last_user;   /* text of the last user message; NULL if none */
    char *tool_result; /* set when the last message is a tool result */
    char *tool_name;   /* first declared tool; NULL without tools */
    bool tool_has_city;
    bool force_tool; /* tool_choice requires a tool call */
    bool tools_off;  /* tool_choice none */
    size_t prompt_bytes;
    long max_tokens; /* 0: no limit */
};

enum sim_finish {
    SIM_FINISH_STOP,
    SIM_FINISH_LENGTH,
    SIM_FINISH_TOOL,
};

struct sim_answer {
    enum sim_finish finish;
    char **pieces; /* text, one word (with its leading space) each; joined = text */
    size_t n_pieces;
    char *text;
    char *tool_name; /* set when finish == SIM_FINISH_TOOL */
    char *tool_args; /* JSON text of the arguments */
    char **arg_pieces;
    size_t n_arg_pieces;
    long prompt_tokens;
    long completion_tokens;
    long cached_tokens;
};

void sim_prompt_init(struct sim_prompt *p);
void sim_prompt_cleanup(struct sim_prompt *p);
/* Adds text to the prompt size. */
void sim_prompt_count(struct sim_prompt *p, const char *text);
/* Adds the printed size of a JSON value (tool schemas, arguments). */
void sim_prompt_count_json(struct sim_prompt *p, const cJSON *v);
long sim_prompt_tokens(const struct sim_prompt *p);
/* Looks for a "city" property in a JSON schema. */
bool sim_schema_has_city(const cJSON *schema);

void sim_answer_build(struct sim_answer *a, const struct sim_prompt *p, const char *persona,
                      const struct sim_behavior *b);
void sim_answer_cleanup(struct sim_answer *a);
/* Splits text into pieces of one word each (whitespace kept with the following word). */
void sim_split_words(const char *text, char ***pieces, size_t *n);
void sim_free_pieces(char **pieces, size_t n);
/* Writes prefix + n base62 characters derived from seed into out (size >= strlen+n+1). */
void sim_make_id(char *out, size_t size, const char *prefix, uint64_t seed, size_t n);

/* Small cJSON helpers. */
const char *sim_json_str(const cJSON *obj, const char *key); /* NULL unless a string */
bool sim_json_is_int(const cJSON *v);
/* Returns "object", "string", ... for error messages. */
const char *sim_json_type(const cJSON *v);

/* ---- control endpoint and stats (sim_control.c) ---------------------------------------- */

/* Serves /_sim/... requests. */
void sim_control_serve(const struct sim_request *rq, struct sim_reply *r);
/* Records an arriving provider request; auth_ok < 0: not applicable. */
void sim_stats_note_request(struct sim_server *s, const struct sim_request *rq, int auth_ok);
void sim_stats_note_status(struct sim_server *s, int status);
void sim_stats_cleanup(struct sim_stats *st);

#endif
