/*
 * internal.h - private to src/gateway: the connection state shared by libmicrohttpd's
 * threads and the router thread, and the pure pieces (JSON writer, chat encoders, error
 * bodies, snapshot JSON, Prometheus text) that the unit tests drive without a router.
 *
 * Files:
 *   json.c     pure  a tiny JSON writer over struct buf (UTF-8 sanitised strings)
 *   encode.c   pure  llm events -> chat.completion JSON / SSE chunks; error bodies
 *   state.c    pure  snapshot -> /admin/state, /v1/models JSON; readiness
 *   metrics.c  pure  snapshot + gateway counters -> Prometheus text 0.0.4
 *   server.c         dispatch, one request's state, suspend/resume, small endpoints
 *   daemon.c         MHD lifecycle: listeners, start, drain, stop
 *   limits.c         connections, the request-receive deadline, the request-bytes budget
 *   chat.c           POST /v1/chat/completions: parse, submit, sink, respond
 *   admin.c          /admin/ API, admin tokens
 *   admin_events.c   GET /admin/events (SSE event stream, its pump thread)
 *   auth.c           client keys on the request path (401/403/429), their /metrics
 *   admin_keys.c     /admin/keys: add, list, revoke client keys
 *   feedback.c       POST /v1/feedback: a rating of one answer, into the ledger
 *   quality.c        quality per target and route (ledger) for /admin/state and /metrics
 *   users.c          per-user routing: the end user, preferences, /admin/users
 *   offload.c        the offload pool: handlers that may block, the client-key poll
 * Only server.c, chat.c and admin.c call the router or libmicrohttpd.
 */
#ifndef SWITCHBOARD_GATEWAY_INTERNAL_H
#define SWITCHBOARD_GATEWAY_INTERNAL_H

#include <cjson/cJSON.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <microhttpd.h>

#include "switchboard/clients.h"
#include "switchboard/gateway.h"
#include "switchboard/ledger.h"
#include "switchboard/llm.h"
#include "switchboard/router.h"
#include "switchboard/util.h"

/* ---- json.c ------------------------------------------------------------------------------- */

#define GW_JSON_DEPTH 16

/* Writes JSON into out with commas placed automatically. key NULL: an array element (or the
 * top-level value). Caller's storage; no allocation besides out's. Keys are
 * written as they are: pass plain-ASCII literals, never outside text. */
struct gw_json {
    struct buf *out;
    int depth;
    bool comma[GW_JSON_DEPTH];
};
void gw_json_init(struct gw_json *j, struct buf *out);
/* A request body that is exactly one JSON object (whitespace around it allowed, nothing
 * else after it); NULL otherwise. The caller deletes it. */
cJSON *gw_json_parse_object(const char *body, size_t len);
void gw_json_open(struct gw_json *j, const char *key, char bracket); /* '{' or '[' */
void gw_json_close(struct gw_json *j, char bracket);                 /* '}' or ']' */
/* A value that is already JSON text (printed by cJSON from what a provider sent). */
void gw_json_raw(struct gw_json *j, const char *key, const char *json, size_t len);
void gw_json_str(struct gw_json *j, const char *key, const char *s); /* NULL -> null */
void gw_json_strn(struct gw_json *j, const char *key, const char *s, size_t len);
void gw_json_int(struct gw_json *j, const char *key, int64_t v);
void gw_json_uint(struct gw_json *j, const char *key, uint64_t v);
void gw_json_num(struct gw_json *j, const char *key, double v); /* non-finite -> null */
void gw_json_bool(struct gw_json *j, const char *key, bool v);
void gw_json_null(struct gw_json *j, const char *key);
/* A JSON string literal, quotes included; invalid UTF-8 becomes U+FFFD. */
void gw_put_json_string(struct buf *b, const char *s, size_t len);

/* ---- encode.c ----------------------------------------------------------------------------- */

/* One streamed answer's encoder: llm events -> "data: {...}\n\n" chunks as the OpenAI SDKs
 * parse them. Owned by whoever feeds it events (the router thread, through the sink). */
struct gw_sse {
    struct buf prefix; /* data: {"id":..,"object":..,"created":..,"model":..,"choices": */
    bool include_usage;
    bool started; /* role chunk written */
    bool over;    /* [DONE] or an error chunk written: nothing more */
    bool saw_tool;
    struct llm_usage usage;
    size_t choices_at; /* where "choices": starts in prefix */
    /* What a forwarded chunk's id, created and model become (JSON text). */
    struct buf id_json;
    struct buf model_json;
    char created[24];
};
void gw_sse_init(struct gw_sse *s, const char *id, const char *model, int64_t created,
                 bool include_usage);
void gw_sse_cleanup(struct gw_sse *s);
/* The first chunk: delta {"role":"assistant","content":""}. Idempotent. */
void gw_sse_begin(struct gw_sse *s, struct buf *out);
/* TEXT, TOOL_CALL, TOOL_ARGS, USAGE (remembered), FINISH (finish chunk, the usage chunk when
 * asked, [DONE]), ERROR (error chunk). Begins first if needed; ignored once over. A TEXT
 * event that carries its provider's OpenAI chunk (ev->chunk) is forwarded as those bytes,
 * with our id, created and model, finish_reason null and "usage":null dropped unless the
 * client asked for usage: same-format passthrough. */
void gw_sse_event(struct gw_sse *s, const struct llm_event *ev, struct buf *out);
/* The stream broke after output: an error chunk ({"error":{..,"code":"truncated"}}) and no
 * [DONE]. Ignored once over. */
void gw_sse_fail(struct gw_sse *s, const char *message, size_t len, struct buf *out);
bool gw_sse_is_over(const struct gw_sse *s);

/* A whole non-streamed answer as an OpenAI chat.completion object. */
void gw_completion_json(const char *id, const char *model, int64_t created,
                        const struct llm_response *r, struct buf *out);
/* Same-format passthrough of a whole answer: the provider's chat.completion body ch (a
 * FINISH event's chunk, struct llm_chunk) into out as it came, with our id, created and
 * model in place of its own. */
void gw_completion_forward(const char *id, const char *model, int64_t created,
                           const struct llm_chunk *ch, struct buf *out);

/* A client-facing error: status + OpenAI error object. */
struct gw_error {
    int status;
    char type[48];  /* "" -> server_error */
    char code[64];  /* "" -> null */
    char param[96]; /* "" -> null */
    char message[600];
    int64_t retry_after_s; /* > 0: send Retry-After */
};
void gw_error_set(struct gw_error *e, int status, const char *type, const char *code,
                  const char *fmt, ...) SB_PRINTF(5, 6);
/* openai_request_parse failures: 400; param is the field path the message starts with. */
void gw_error_from_parse(struct gw_error *e, enum sb_status st, const char *msg);
/* A failed call, as the router reported it. */
struct gw_call_failure {
    enum llm_errclass cls;
    long upstream_status;              /* the provider's last HTTP status, 0 none */
    const struct llm_error_info *info; /* what it said (type/code/param); may be NULL */
    bool no_target;                    /* nothing could be tried (all down, drained, limited) */
    int64_t retry_after_ms;            /* -1 unknown */
    const char *message;               /* may be NULL or "" */
};
/* The client's status (llm_client_status: the provider's own 4xx/5xx for the errors it
 * decided; 502 transport / unreadable answer; 504 deadline; 503 nothing could be tried,
 * 429 when that was rate limits), the provider's type/code/param where it gave them (else
 * the nearest OpenAI type for the status), and Retry-After for 429 (always: at least 1 s) and
 * for 503 with a known delay. */
void gw_error_from_call(struct gw_error *e, const struct gw_call_failure *f);
/* 404 model_not_found naming the routes there are. */
void gw_error_model_not_found(struct gw_error *e, const char *model,
                              const struct router_snapshot *snap);
/* {"error":{"message","type","param","code"}} */
void gw_error_json(const struct gw_error *e, struct buf *out);

/* A client-supplied X-Request-Id reduced to [A-Za-z0-9._-], at most 64 chars; "" when
 * nothing usable is left. out has room for 65 bytes. */
void gw_request_id_clean(const char *in, char out[65]);

/* ---- state.c ------------------------------------------------------------------------------ */

/* "breaker", "operator", ... as /admin/state and /admin/events write them. */
const char *gw_event_kind_name(enum router_event_kind k);
void gw_target_json(struct gw_json *j, const char *key, const struct router_target_snap *t);
void gw_state_json(const struct router_snapshot *snap, struct buf *out);
/* A snapshot's route names, config order (what /v1/models lists). */
struct gw_route_names {
    size_t n;
    char name[ROUTER_MAX_ROUTES][64];
};
void gw_route_names_from(const struct router_snapshot *snap, struct gw_route_names *out);
/* {"object":"list","data":[one model object per name]}. Pure. */
void gw_models_json(const struct gw_route_names *routes, int64_t created, struct buf *out);
/* true when some route has an enabled, undrained target whose breaker is not open; else
 * false with the reasons in why. */
bool gw_is_ready(const struct router_snapshot *snap, struct buf *why);
bool gw_has_route(const struct router_snapshot *snap, const char *name);

/* ---- models.c: /v1/models and /readyz per snapshot generation ------------------------------ */

struct gw_snapcache;
/* gateway_new / gateway_free. Free NULL-safe. */
struct gw_snapcache *gw_snapcache_new(void);
void gw_snapcache_free(struct gw_snapcache *sc);
/* Appends GET /v1/models' body (created: the models' "created", gw->started_s): every route,
 * or with client (not NULL nor "") the routes its key may use (clients_route_allowed on cl).
 * Any thread. */
void gw_snapcache_models(struct gw_snapcache *sc, struct router *rt, int64_t created,
                         struct clients *cl, const char *client, struct buf *out);
/* GET /readyz's verdict (gw_is_ready): true, or false with the reasons appended to why. Any
 * thread. */
bool gw_snapcache_ready(struct gw_snapcache *sc, struct router *rt, struct buf *why);
/* Whether the router has a target of that name. Any thread. */
bool gw_snapcache_has_target(struct gw_snapcache *sc, struct router *rt, const char *name);

/* ---- metrics.c ---------------------------------------------------------------------------- */

#define GW_STATUS_MAX      600
#define GW_OVERHEAD_BOUNDS 12

/* The gateway's own counters (guarded by the gateway's lock; rendered from a copy). */
struct gw_stats {
    uint64_t by_status[GW_STATUS_MAX];                 /* answers by HTTP status */
    uint64_t overhead_buckets[GW_OVERHEAD_BOUNDS + 1]; /* not cumulative; last is +Inf */
    uint64_t overhead_count;
    uint64_t overhead_sum_us;
    uint64_t streams_truncated; /* error chunk sent after output */
    uint64_t clients_gone;      /* client left before the answer was complete */
    long calls_in_flight;
    /* limits.c */
    uint64_t conn_refused;     /* closed at accept: over max_connections_per_client */
    uint64_t conn_saturated;   /* times a listener had every connection taken */
    uint64_t request_timeouts; /* closed: no whole request within request_timeout_ms */
    uint64_t body_refused;     /* 503: request bytes held at max_body_bytes_total */
    long connections[2];       /* open client connections: [0] listen, [1] admin_listen */
    uint64_t upstream_pauses;  /* a stream's upstream paused for a client that is behind */
    uint64_t clients_stalled;  /* closed by the idle timeout in the middle of an answer */
    uint64_t answer_bytes;     /* copied from gateway.answer_bytes for /metrics */
    uint64_t body_bytes;       /* request bytes held now */
    bool draining;
};
void gw_stats_note_status(struct gw_stats *s, int status);
void gw_stats_note_overhead(struct gw_stats *s, int64_t overhead_us);
/* Appends the Prometheus text exposition (format 0.0.4). */
void gw_metrics_render(const struct router_snapshot *snap, const struct gw_stats *gs,
                       struct buf *out);
/* Appends s escaped as a Prometheus label value (\\, \", \n). */
void gw_prom_label(struct buf *out, const char *s);

/* ---- server.c: the gateway and one request's state -------------------------------------- */

struct gw_endpoint;

enum gw_park {
    GW_RUNNING,      /* MHD is processing the connection */
    GW_SUSPENDING,   /* an MHD thread decided to suspend and is calling MHD_suspend_connection */
    GW_WAKE_PENDING, /* ...and a sink asked to wake it meanwhile: that thread resumes it */
    GW_SUSPENDED,    /* suspended; the next wake resumes it */
};

/* What the router reported at on_done, copied (the router's strings are borrowed). */
struct gw_outcome {
    enum llm_errclass err;
    char message[256];
    char target[64];
    char route[64];
    int attempts;
    bool no_target;
    bool unknown_model; /* the router found no route for the model: 404 */
    int64_t retry_after_ms;
    long upstream_status;
    struct llm_error_info upstream_error;
    bool usage_missing;
    bool cached; /* answered from a response cache */
    double cost_usd;
    int64_t overhead_us;
};

enum gw_chat_phase {
    GW_CHAT_NEW,
    GW_CHAT_WAITING,
    GW_CHAT_ANSWERED,
};

/* One HTTP request. Shared by MHD (until the request-completed callback) and the router
 * (from router_submit until on_done); freed by whichever lets go last. */
struct gw_conn {
    struct gateway *gw;
    struct MHD_Connection *mc; /* fixed for the request */
    pthread_mutex_t lock;

    /* -- under lock ------------------------------------------------------------------ */
    bool mhd_ref;    /* MHD has not reported the request completed */
    bool router_ref; /* the router has not called on_done */
    enum gw_park park;
    struct buf out; /* SSE bytes the sink queued and the reader has not taken */
    size_t out_off;
    bool stream_over; /* nothing more will be queued in out */
    bool committed;
    char commit_headers[1024]; /* the winner's rate-limit headers, "name: value\n" each */
    bool upstream_paused;      /* the sink said ROUTER_SINK_PAUSE; the reader resumes it */
    bool end_held;             /* ...and the upstream has ended (on_held): resume lazily */
    bool one_write;            /* the whole stream went into one response with its length */
    char commit_target[64];
    int commit_attempt;
    bool commit_cached;
    bool done; /* on_done ran: outcome and (non-stream) resp are final */
    struct gw_outcome outcome;
    bool client_gone;
    bool abandoned; /* gateway_stop gave up waiting for the router */

    /* -- MHD threads only (one at a time per connection) ------------------------------ */
    const struct gw_listener *l; /* the listener the request came in on */
    const struct gw_endpoint *ep;
    char *path;
    char *method;
    char request_id[65];
    char admin_name[64];               /* the admin token's name once gw_admin_check_auth passed */
    char *tag;                         /* x-switchboard-tag as sent */
    char client[CLIENTS_NAME_MAX + 1]; /* client key's name; "" when keys are off */
    char *call_tag;                    /* the tag the key gave the call (auth.c) */
    struct buf body;
    bool body_too_big;
    bool body_refused;    /* over max_body_bytes_total: the answer is 503 */
    bool body_declared;   /* Content-Length was reserved in full at the start */
    size_t body_reserved; /* counted in the gateway's body_bytes (released at free) */
    bool received;        /* the whole request is in */
    size_t body_seen;
    bool answered;
    enum gw_chat_phase phase;
    char *model; /* what the client asked for */
    bool stream;
    bool codec_ready; /* sse (stream) or resp (not) is initialised */
    int64_t created;
    char chat_id[80];

    /* -- offload.c: set by the MHD thread before the post; from the post until the resume
     * the pool's thread runs the handler (MHD does not touch a suspended connection); the
     * stash (off_*) is handed over under lock ------------------------------------------- */
    bool offloaded; /* with the pool: gw_queue stashes instead of queuing */
    enum MHD_Result (*off_job)(struct gw_conn *c); /* what the pool runs */
    bool off_then_run; /* off_job prepares: the endpoint's handler runs after it, here */
    bool off_done;     /* the handler returned (under lock) */
    struct MHD_Response *off_resp; /* its answer, queued by conn_run (under lock) */
    unsigned off_status;
    enum MHD_Result off_result;
    struct gw_conn *off_next; /* the pool's queue (under its lock) */

    /* -- chat.c: a body the pool parsed (the offload's job: written there, read here after
     * the resume) -------------------------------------------------------------------- */
    bool parsed;             /* the pool parsed the body (req, or parse_st and parse_msg) */
    struct llm_request *req; /* SB_OK: what it parsed, owned until the submit */
    uint64_t prompt_hash;    /* SB_OK: cache_prompt_hash(req), its user set (gw_users_set_user) */
    enum sb_status parse_st;
    char *parse_msg; /* the parse's message when it failed */

    /* -- under the gateway's lock ------------------------------------------------------ */
    bool registered; /* counted in calls_open */
    uint64_t call_id;
    struct gw_conn *live_prev, *live_next;

    /* -- router thread only, from router_submit until on_done (then MHD reads resp) ---- */
    struct gw_sse sse;
    struct buf scratch;
    struct llm_response resp;
    struct buf pass; /* not streaming: the forwarded answer (passthrough), empty when none */
};

/* The config's client keys and the tags its budgets name (auth.c). */
struct gw_key_list {
    struct clients_key *keys;
    size_t n;
    char **tags;
    size_t n_tags;
};

/* One listening socket and its MHD daemon. Set up by the main thread; read-only after. */
struct gw_listener {
    struct gateway *gw;
    bool ops_only;    /* admin_listen: /healthz, /readyz, /metrics and /admin/ only */
    unsigned threads; /* MHD worker threads; 0: external loop, run by the router thread */
    bool on_loop;     /* threads 0 and its daemon is the router's loop hook (daemon.c) */
    char *spec;       /* HOST:PORT; NULL: not configured */
    struct MHD_Daemon *daemon;
    int fd;
    unsigned port;
    long max_connections;
};

/* One client connection (MHD's socket context), from accept to close. */
struct gw_sock {
    struct gw_listener *l;
    int fd;                /* valid until gw_sock_close (MHD closes it after) */
    int64_t recv_since_ms; /* receiving a request since (mono); 0: not receiving one */
    bool cut;              /* the receive deadline shut it down */
    char addr[48];
    struct gw_sock *prev, *next;
};

struct gateway {
    struct router *rt;
    long max_connections;
    size_t max_body;
    int64_t idle_timeout_ms;
    int64_t request_timeout_ms;
    long per_client;   /* connections per client address; 0 = no cap */
    uint64_t body_cap; /* request bytes held, all connections */
    char *admin_token; /* legacy admin_token_env's token, named "admin"; NULL: none */
    struct gw_admin_token *admin_tokens; /* gateway.admin_tokens with a value */
    size_t n_admin_tokens;
    struct gw_events *events;       /* admin_events.c; created by the first stream */
    struct gw_snapcache *snapcache; /* models.c: gateway_new .. gateway_free */
    struct gw_offload *offload;     /* offload.c: gateway_new .. gateway_free */
    int64_t started_s;              /* wall clock, for model objects */
    struct gw_listener api;         /* gateway.listen */
    struct gw_listener ops;         /* gateway.admin_listen (spec NULL: none) */

    /* client keys (auth.c): the set locks itself; keys_mu guards cfg (swapped by
     * gateway_reload); keys_refresh_mu guards keys_fp (one refresh at a time) */
    struct clients *clients;
    char *ledger_path;
    pthread_mutex_t keys_mu;
    pthread_mutex_t keys_refresh_mu;
    struct gw_key_list cfg;
    uint64_t keys_fp;

    bool started, stopped;

    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t idle;  /* signalled when calls_live or calls_open drops to 0 */
    bool stopping;
    bool draining;
    struct gw_conn *live; /* requests with a call in the router */
    long calls_live;      /* calls whose on_done has not fully returned */
    long calls_open;      /* chat requests from submit until MHD let go of them */
    long requests;        /* struct gw_conn alive */
    struct gw_stats stats;
    struct gw_quality *quality;    /* quality.c: locks itself */
    struct gw_users *users;        /* users.c: locks itself */
    uint64_t id_state;             /* request id generator */
    _Atomic uint64_t answer_bytes; /* stream bytes waiting for clients (no lock) */
    int64_t log_refused_ms, log_timeout_ms, log_body_ms, log_saturated_ms, log_stalled_ms;

    /* limits.c: the connection list and its watchdog thread */
    pthread_mutex_t sock_lock; /* guards socks and watch_stop */
    pthread_cond_t sock_cond;
    struct gw_sock *socks;
    bool watch_stop;
    bool watch_started;
    pthread_t watch;
};

/* Queues r (consumed) with x-request-id and hdrs; counts the status. MHD thread. */
enum MHD_Result gw_queue(struct gw_conn *c, int status, struct MHD_Response *r,
                         const char *const *hdrs);
/* Answers the request: queues status + body (taken) with the common headers (x-request-id)
 * and hdrs (NULL-terminated name/value pairs, may be NULL). MHD thread. */
enum MHD_Result gw_respond(struct gw_conn *c, int status, const char *content_type,
                           struct buf *body, const char *const *hdrs);
enum MHD_Result gw_respond_error(struct gw_conn *c, const struct gw_error *e,
                                 const char *const *hdrs);
enum MHD_Result gw_respond_text(struct gw_conn *c, int status, const char *text);
/* 503 shutting_down with Retry-After. */
enum MHD_Result gw_refuse_shutting_down(struct gw_conn *c);

/* Suspend/resume protocol (see server.c). The caller holds c->lock, found nothing to do and
 * calls gw_park_begin_locked; after unlocking it calls gw_park_end (MHD thread). */
void gw_park_begin_locked(struct gw_conn *c);
void gw_park_end(struct gw_conn *c);
/* A sink has news for c (caller holds c->lock). Returns true when the caller must call
 * MHD_resume_connection(c->mc) after unlocking. */
bool gw_wake_locked(struct gw_conn *c);
/* After gw_wake_locked said true and c->lock is released: resumes mc now, or, inside a
 * router turn on this thread (gw_turn), at the turn's end together with the other
 * connections woken in it. Any thread. */
void gw_resume(struct MHD_Connection *mc);
/* MHD_resume_connection(mc) at once, noted for gw_resumed_take. */
void gw_resume_now(struct MHD_Connection *mc);
/* Whether this thread resumed a connection (gw_resume, a turn's flush) since the last call;
 * clears it. The loop listener's hook (daemon.c) on the router thread. */
bool gw_resumed_take(void);
/* The router's turn hook (router_set_turn_hook; ctx unused): BEGIN starts deferring this
 * thread's gw_resume calls, END resumes what this thread deferred. Any thread that runs the
 * sinks, each for itself. */
void gw_turn(void *ctx, enum router_turn turn);
/* The decode/encode workers' batch-end hook (router_set_batch_end; ctx unused): resumes what
 * this worker thread deferred, and defers its later resumes, each batch ending here. */
void gw_batch_end(void *ctx);

/* The router is about to hold c: false when the gateway is stopping. */
bool gw_call_register(struct gw_conn *c);
/* After router_submit: remembers the id; cancels at once if the gateway began stopping. */
void gw_call_set_id(struct gw_conn *c, uint64_t id);
/* on_done: c leaves the live list (call before releasing router_ref). */
void gw_call_unregister(struct gw_conn *c);
/* on_done, after resuming and maybe freeing c: counts the call out. */
void gw_call_released(struct gateway *gw, const struct gw_outcome *o, bool truncated);
void gw_conn_free(struct gw_conn *c);

/* A fresh snapshot (heap; caller frees). */
struct router_snapshot *gw_snapshot(struct gateway *gw);
/* Client address as text for audit ("<token name>@<addr>"). */
void gw_client_addr(struct gw_conn *c, char *out, size_t outlen);
/* The peer address of mc as text ("unknown" when MHD has none). Any MHD thread. */
void gw_sockaddr_text(struct MHD_Connection *mc, char *out, size_t outlen);

/* ---- daemon.c / limits.c ----------------------------------------------------------------- */

/* MHD's request and completion callbacks (server.c); cls is the struct gw_listener. */
enum MHD_Result gw_on_request(void *cls, struct MHD_Connection *mc, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls);
void gw_on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                     enum MHD_RequestTerminationCode toe);
/* MHD_OPTION_NOTIFY_CONNECTION (cls: the listener): tracks connections. MHD thread. */
void gw_on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                      enum MHD_ConnectionNotificationCode code);
/* MHD reported a connection closed at accept (the per-address cap): counted, and logged at
 * most every few seconds. MHD thread. */
void gw_note_refused(struct gateway *gw);
/* The request on mc is all in (false) or the connection waits for its next one (true): the
 * receive deadline stops or starts. MHD thread. */
void gw_sock_receiving(struct MHD_Connection *mc, bool receiving);
/* Starts / stops the thread that closes connections past request_timeout_ms (main). */
enum sb_status gw_watch_start(struct gateway *gw, char *msg, size_t msglen);
void gw_watch_stop(struct gateway *gw);
/* Holds n more request bytes for c against max_body_bytes_total: false (counted, logged)
 * when that would go over. All released by gw_body_release (gw_conn_free). MHD thread. */
bool gw_body_reserve(struct gw_conn *c, size_t n);
void gw_body_release(struct gw_conn *c);
/* Logs at most once per GW_LOG_EVERY_MS per *last (caller holds gw->lock). */
bool gw_log_due_locked(int64_t *last_ms);

/* ---- chat.c / admin.c --------------------------------------------------------------------- */

struct gw_admin_token {
    char name[64];
    char *token; /* secret: wiped on free */
};
struct gw_events;
/* Copies the admin tokens from cfg (gateway_new). */
void gw_admin_setup(struct gateway *gw, const struct config_gateway *g);
/* Ends every event stream and joins the pump (gateway_stop, after the offload pool's stop,
 * before MHD_stop_daemon). */
void gw_events_stop(struct gateway *gw);
/* Frees the tokens and the event pump (gateway_free, after MHD_stop_daemon). */
void gw_admin_cleanup(struct gateway *gw);
void gw_events_free(struct gateway *gw);
/* GET /admin/events (admin_events.c). */
enum MHD_Result gw_admin_events(struct gw_conn *c);
/* The name of the admin token authorization carries ("Bearer <token>"), NULL when none
 * matches. Constant time in the tokens' lengths. */
const char *gw_admin_token_name(const struct gateway *gw, const char *authorization);
/* The request is an operator's direct target call: X-Switchboard-Target with a valid admin
 * token in X-Switchboard-Admin-Token (it needs no client key). MHD thread. */
bool gw_admin_direct_call(struct gw_conn *c);

enum MHD_Result gw_chat_run(struct gw_conn *c);
/* MHD completed c's request (ok: the whole response was sent). A stream answered in one write
 * (one_write) whose end waits for its client ends now: true when the caller must post
 * router_resume for c->call_id (router_resume_lazy when *lazy) after releasing c->lock.
 * Caller holds c->lock; MHD thread (gw_on_completed). */
bool gw_chat_sent_locked(struct gw_conn *c, bool ok, bool *lazy);
enum MHD_Result gw_admin_run(struct gw_conn *c);
/* An admin command's body: {"weight": N?, "expires_in_s": N?} (len 0 reads as {}), exactly
 * one JSON object (bytes after it fail). Fills cmd->weight (need_weight: required, 0..1e6)
 * and cmd->expires_ms; false with msg set on anything else. Pure; any thread. */
/* POST /admin/keys: exactly one JSON object {"name", "routes" (names in snap), "tag",
 * "self_tag", "daily_usd", "monthly_usd", "rpm", "tpm", "expires" | "expires_in_s"} into k
 * (zeroed by the caller; free its routes/tag with clients_key_cleanup). Pure: no I/O. */
struct clients_key;
bool gw_admin_parse_key(const char *body, size_t len, const struct router_snapshot *snap,
                        int64_t now_ms, struct clients_key *k, char *msg, size_t msglen);
bool gw_admin_parse_cmd(const char *body, size_t len, bool need_weight, struct router_cmd *cmd,
                        char *msg, size_t msglen);
/* 0 when the request may proceed (c->admin_name set), else the status to answer: 404 admin
 * off, 401 bad token. */
int gw_admin_check_auth(struct gw_conn *c, const char *authorization);
/* /admin/keys[/NAME/revoke] (rest is what follows "/admin/keys"). */
enum MHD_Result gw_admin_keys(struct gw_conn *c, const char *rest);
/* GET /admin/requests/{id}: one call from the ledger (admin_requests.c). */
enum MHD_Result gw_admin_requests(struct gw_conn *c, const char *id);
/* GET /admin/quality/{target}: its last hour's quality and negative feedback (admin_quality.c). */
enum MHD_Result gw_admin_quality(struct gw_conn *c, const char *name);

/* ---- feedback.c / quality.c ------------------------------------------------------------- */

enum MHD_Result gw_feedback_run(struct gw_conn *c);

#define GW_FEEDBACK_LABEL_MAX   64
#define GW_FEEDBACK_COMMENT_MAX 2000

/* A POST /v1/feedback body, parsed. comment is heap (NULL when absent): free it. */
struct gw_feedback_body {
    char request_id[65]; /* [A-Za-z0-9._-], 1..64 */
    double score;        /* normalised, -1..1 */
    double raw;          /* as given */
    int scale;           /* 1 or 5 */
    char label[GW_FEEDBACK_LABEL_MAX + 1];
    char *comment;
};
/* One JSON object (nothing after it but blanks): true with *b filled, else false with msg
 * (b->comment NULL). Pure; any thread. */
bool gw_feedback_parse(const char *body, size_t len, struct gw_feedback_body *b, char *msg,
                       size_t msglen);
/* gateway_new / gateway_reload / gateway_free (main thread). */
void gw_quality_init(struct gateway *gw, const struct config *cfg);
void gw_quality_configure(struct gateway *gw, const struct config *cfg);
void gw_quality_cleanup(struct gateway *gw);
/* ledger.feedback_window_ms. Any thread. */
int64_t gw_quality_window_ms(struct gateway *gw);
/* ledger.quality_min_volume (default 20). Any thread. */
uint64_t gw_quality_min_volume(struct gateway *gw);
/* Recomputes the figures (the quality thread: qguard.c): the hour and the day from the ledger
 * writer's minute buckets (no SQL), the baseline window with SQL. */
void gw_quality_refresh(struct gateway *gw);
/* One window's figures by target or route, over whole minutes: from floor(now - window_ms) to
 * the end of now's minute. From l's minute buckets (ledger_quality_recent) when they hold it,
 * else computed in SQL from path. False (logged) when the SQL read failed. Any thread. */
bool gw_quality_window(struct ledger *l, const char *path, enum ledger_quality_by by,
                       int64_t now_ms, int64_t window_ms, uint64_t min_volume,
                       struct ledger_quality *out);
/* Adds "quality":{...} to an /admin/state object (the ledger's figures, as old as one wait of
 * the quality thread: gw_qguard_wait_ms; nothing before the first refresh). MHD threads. */
void gw_quality_state_splice(struct gateway *gw, struct buf *state);
/* Appends the switchboard_quality_* families. MHD threads. */
void gw_quality_metrics(struct gateway *gw, struct buf *out);

/* ---- qguard.c: the quality guard ------------------------------------------------------------ */

#define GW_QGUARD_INTERVAL_MS 5000
/* A round sums the ledger writer's minute buckets (microseconds to a millisecond); what they
 * do not hold (the baseline window, guard windows over a day, a ledger shared with another
 * writer's rows... see gw_quality_window) is still read with SQL, whose cost grows with the
 * traffic. As a safety net for those, the wait after a round is at least GW_QGUARD_DUTY times
 * the round's own duration, so the quality thread takes at most 1 / (GW_QGUARD_DUTY + 1) of a
 * core, up to GW_QGUARD_MAX_WAIT_MS. */
#define GW_QGUARD_DUTY        20
#define GW_QGUARD_MAX_WAIT_MS 300000

struct gw_qguard;
/* Starts the quality thread: it refreshes the quality figures and judges the guarded routes
 * at once, then after each wait (gw_qguard_wait_ms) and after each reload. Main thread. */
struct gw_qguard *gw_qguard_new(struct gateway *gw, const struct config *cfg, int64_t interval_ms);
void gw_qguard_configure(struct gw_qguard *g, const struct config *cfg); /* reload */
void gw_qguard_free(struct gw_qguard *g); /* stops and joins the thread; NULL-safe */
/* The wait before the next round, after a round that took round_ms: interval_ms, or
 * GW_QGUARD_DUTY times round_ms when that is longer (at most GW_QGUARD_MAX_WAIT_MS). Pure. */
int64_t gw_qguard_wait_ms(int64_t interval_ms, int64_t round_ms);
/* Whether t fails g against base (NULL: the fixed floors); why says how. Pure. */
bool gw_qguard_judge(const struct config_quality_guard *g, const struct ledger_quality_row *base,
                     const struct ledger_quality_row *t, char *why, size_t whylen);

/* ---- users.c ------------------------------------------------------------------------------- */

/* gateway_new / gateway_reload / gateway_free (main thread). */
void gw_users_init(struct gateway *gw, const struct config *cfg);
void gw_users_configure(struct gateway *gw, const struct config *cfg);
void gw_users_cleanup(struct gateway *gw);
/* Body parsed: sets req->user from x-switchboard-user where allowed (the client key's
 * self_tag). Wherever the body was parsed: the MHD thread, or the offload pool's while c is
 * parked with it (headers are safe there: offload.c; the client keys have their lock). */
void gw_users_set_user(struct gw_conn *c, struct llm_request *req);
/* After gw_users_set_user: route is the route req->user's preference picks ("" when none
 * applies). MHD thread. */
void gw_users_apply(struct gw_conn *c, const struct llm_request *req, char *route, size_t routelen);
/* /admin/users[/{user}] (rest is what follows "/admin/users"). */
enum MHD_Result gw_admin_users(struct gw_conn *c, const char *rest);

/* ---- offload.c: the offload pool ----------------------------------------------------------- */

/* Starts the pool's threads and the key poll on them (gateway_new, after gw_auth_init). */
void gw_offload_start(struct gateway *gw);
/* Queues c (the whole request is in, c->offloaded set, its park SUSPENDING): false, and c
 * untouched, once the pool is stopped or when none of its threads could start. MHD thread. */
bool gw_offload_post(struct gw_conn *c);
/* Refuses new posts, answers the queued requests 503 and resumes them, and joins the threads
 * (waits for the handlers running, each bounded by its own timeout). Idempotent. Main. */
void gw_offload_stop(struct gateway *gw);
/* Stops and frees the pool (gateway_free, before gw_auth_cleanup). NULL-safe. */
void gw_offload_free(struct gateway *gw);
/* Runs c's offloaded job (server.c; a pool thread, c->offloaded set). */
enum MHD_Result gw_offload_handle(struct gw_conn *c);
/* The request is all in: parks c and posts it to the pool, which runs job(c) (server.c; the
 * MHD thread). then_run: job answers nothing (it prepares) and the endpoint's handler runs
 * after it on the daemon's thread, once the pool resumed c; else job is the handler. Refused
 * by the pool: 503 when the gateway stops, else job (and the handler) run here. */
enum MHD_Result gw_offload_job(struct gw_conn *c, enum MHD_Result (*job)(struct gw_conn *c),
                               bool then_run);

/* ---- auth.c: client keys ------------------------------------------------------------------ */

/* gateway_new / gateway_free (main thread). */
void gw_auth_init(struct gateway *gw, const struct config *cfg);
void gw_auth_cleanup(struct gateway *gw);
/* A deep copy of the config's keys (free with ledger_keys_free). Any thread. */
struct clients_key *gw_auth_config_keys(struct gateway *gw, size_t *n);
/* Re-reads the ledger's keys now (an admin change, SIGHUP): in effect when this returns.
 * Any thread. */
void gw_auth_reload(struct gateway *gw);
/* Re-reads the ledger's keys if their fingerprint changed (the offload pool's poll, every
 * GW_KEYS_POLL_MS). */
#define GW_KEYS_POLL_MS 1000
void gw_auth_poll(struct gateway *gw);
/* Headers in: true when the request was answered (401 on /v1/ without a valid key) with
 * *result; otherwise sets c->client when keys are on. MHD thread. */
bool gw_auth_refused(struct gw_conn *c, enum MHD_Result *result);
/* Body parsed (model known): false with e (403 / 429) when the key may not make this call;
 * true with c->call_tag set when keys are on. MHD thread. */
bool gw_auth_admit(struct gw_conn *c, const char *model, struct gw_error *e);
/* The call ended: counts its tokens and cost against the key. Router thread. */
void gw_auth_note_done(struct gw_conn *c, const struct router_result *r);
/* Appends the per-key families to a /metrics body (nothing when keys are off). */
void gw_auth_metrics(struct gateway *gw, struct buf *out);

#endif
