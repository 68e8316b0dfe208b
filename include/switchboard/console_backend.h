/*
 * console_backend.h - what the console talks to. The board, the detail view, the events
 * timeline, every operator action, route explain, the prompt pane and votes go through one
 * small interface with several implementations:
 *
 *   local   the router in this process (the embedded console: `console -c FILE`)
 *   remote  one or more `switchboard serve` instances over their admin API (libcurl):
 *           `console --attach URL [--attach URL ...]`
 *   fleet   the instances of a fleet found through Redis (fleet mode): `console --fleet URL`
 *           (backend_fleet.c, reusing the remote backend's console_state_parse and
 *           console_merge on the instances' heartbeats).
 *
 * An implementation owns whatever threads and connections it needs. The console's main
 * (curses) thread calls every op below and none of them may block on the network or on the
 * router: they copy from a mailbox or post a job and return. Results come back through
 * `take` (replies to commands and explains), through the sink of a chat call, and through
 * `snapshot` (the state). So a key never waits on a slow or dead instance.
 *
 * Aggregation over several instances: the snapshot shows each target once with counters,
 * in-flight, spend and rates summed, percentiles the worst (highest) instance's, the breaker
 * the worst state (open > half-open > closed) with which instance in breaker_reason,
 * operator flags OR-ed; console_backend_instances tells which instance is unreachable since
 * when, and console_backend_breakdown gives one target per instance for the detail view.
 * Commands go to every instance; the reply lists each instance's result.
 *
 * Writing another backend (e.g. `console --fleet`, instances found through Redis):
 *  - every op is called on the console's main thread and must return at once: do the work on
 *    the backend's own thread(s) and hand results over under a mutex (backend_remote.c is
 *    the model: a worker owns libcurl, a mailbox holds the merged snapshot and the replies);
 *  - snapshot: out->gen must change whenever anything the board shows changed (a counter the
 *    backend bumps per publish is enough); out->events are the newest n_events, oldest
 *    first, each with a seq that only grows within this backend (the console appends events
 *    with a seq above the last it saw), so renumber instances' events as they arrive;
 *  - stale[i] greys row i ("unreachable since ..." from instances()); keep the last figures;
 *  - chat: call the sink exactly as router_submit's contract says (on_commit at most once,
 *    events, on_done exactly once, also when cancelled or when the backend is freed);
 *  - command: fill nothing in cmd->user yourself for remote instances: the gateway names the
 *    admin token and the X-Switchboard-User login (console_login());
 *  - quit_info: stops_gateway false unless quitting really stops something.
 * console_state_parse and console_merge (below) turn /admin/state bodies into one merged
 * snapshot; GET /admin/events (SSE, Last-Event-ID) carries the timeline.
 */
#ifndef SWITCHBOARD_CONSOLE_BACKEND_H
#define SWITCHBOARD_CONSOLE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "switchboard/ledger.h"
#include "switchboard/router.h"
#include "switchboard/util.h"

#define CONSOLE_MAX_INSTANCES 16

enum console_job_type {
    CONSOLE_JOB_COMMAND,
    CONSOLE_JOB_EXPLAIN,
    CONSOLE_JOB_REQUEST, /* a call found by its x-request-id: text has it */
};

/* A finished command or explain. Lists are singly linked, oldest first; free with
 * console_reply_free. */
struct console_reply {
    struct console_reply *next;
    enum console_job_type type;
    char label[128];       /* what was asked, as the UI posted it */
    enum sb_status status; /* SB_OK only when every instance said yes */
    char msg[512];         /* verdict; with several instances "a: ok; b: ..." */
    char *text; /* EXPLAIN: the explanation; REQUEST: the call (owned; per instance with several) */
};
void console_reply_free(struct console_reply *r); /* the whole list; NULL-safe */

/* One instance the console is attached to (the local backend has one, named by its
 * gateway address, always up). */
struct console_instance {
    char name[96];         /* "127.0.0.1:8080" (the URL without scheme and path) */
    bool up;               /* the last state poll answered */
    bool ever_up;          /* some poll has answered since the console started */
    int64_t down_since_ms; /* wall clock of the first failed poll of this outage; 0 when up */
    char error[160];       /* why it is down ("connection refused", "timeout", "401 ...") */
    uint64_t calls;        /* gateway calls it has taken (snapshot gateway_calls) */
};

/* One target on one instance, for the detail view. */
struct console_part {
    char instance[96];
    bool up;
    bool has_target; /* this instance has a target of that name */
    enum breaker_state breaker;
    bool forced_live, drained, pinned;
    double weight;
    uint64_t calls, failures;
    long in_flight;
    double spend_usd;
    double p95_ms;
    double req_per_s;
};

/* One target's quality over the last hour, for the detail view: the ledger's counts and sums
 * (summed over the instances that answered, the rates derived again from the sums) and its
 * most recent negative feedback, newest first. */
#define CONSOLE_QUALITY_NEGATIVE 3
struct console_quality {
    char target[64];
    bool loaded;                   /* figures below: the ledger (some instance) answered */
    struct ledger_quality_row row; /* counts, sums, derived (ledger_quality_derive) */
    uint64_t min_volume;           /* ratings before a mean (the instances' largest); 0: not said */
    struct ledger_feedback_item negative[CONSOLE_QUALITY_NEGATIVE]; /* newest first */
    size_t n_negative;
    size_t asked, answered; /* instances asked / that answered (404: answered, none there) */
    char missing[320];      /* "" all answered; else "127.0.0.1:8081: connection refused; ...",
                               or why nothing can be read ("no ledger") */
};

/* Whether quitting this console stops anything; the question to ask when it does. */
struct console_quit {
    bool stops_gateway; /* embedded: quitting stops the gateway */
    bool ask;           /* it has open connections or served a call recently */
    char question[200]; /* "Quit stops the gateway on ADDR (N connections, ...). Quit? y/N" */
};

struct console_backend_ops {
    /* Copies the newest state into out when its generation differs from have_gen; returns
     * whether it did. stale (may be NULL) gets, per target index, whether every instance
     * that has it is unreachable (its figures are the last ones seen). Main thread. */
    bool (*snapshot)(void *self, struct router_snapshot *out, bool *stale, uint64_t have_gen);
    /* Up to max instances into out; returns how many there are. Main thread. */
    size_t (*instances)(void *self, struct console_instance *out, size_t max);
    /* Target `name` on each instance; returns how many parts. Main thread. */
    size_t (*breakdown)(void *self, const char *name, struct console_part *out, size_t max);
    /* Posts a command (every instance) / an explain; the reply comes through take. cmd->user
     * is filled by the backend (local: "console:<login>"; remote: the gateway names the
     * token and the login the backend sends). label is copied. */
    void (*command)(void *self, const struct router_cmd *cmd, const char *label);
    void (*explain)(void *self, const char *model, const char *tag, long tokens, const char *label);
    /* Looks a call up by its x-request-id in the ledger (local: this process's; remote: GET
     * /admin/requests/ID on every instance, found when one has it); the reply (REQUEST) comes
     * through take with the call as text. label is copied. */
    void (*request)(void *self, const char *request_id, const char *label);
    struct console_reply *(*take)(void *self); /* finished jobs, oldest first; caller frees */
    /* The detail view watches target (NULL or "": none, reading stops) and copies its latest
     * quality into out; false while nothing has been read for it yet. The reading happens on
     * the backend's thread (local: this process's ledger file; remote: GET
     * /admin/quality/TARGET on every instance, every few seconds while watched). Main
     * thread. */
    bool (*quality)(void *self, const char *target, struct console_quality *out);
    /* A direct call to one target (the prompt pane): no route, no fallback; marked as a
     * compare call in the ledger. Takes req (heap). The sink's callbacks run on the backend's
     * thread (local: the router thread), exactly as router_submit's do. request_id is the
     * call's own x-request-id (copied; the ledger row and the pane show it). Returns an id
     * for cancel (> 0). */
    uint64_t (*chat)(void *self, const char *target, const char *request_id,
                     struct llm_request *req, const struct router_sink *sink);
    void (*cancel)(void *self, uint64_t id);
    /* A prompt-pane vote: winner beat losers on prompt (may be NULL). Fire and forget. */
    void (*vote)(void *self, const char *winner, const char *const *losers, size_t n,
                 const char *prompt);
    /* What quitting means now (main thread; snap is the console's latest copy). */
    void (*quit_info)(void *self, const struct router_snapshot *snap, struct console_quit *out);
    /* Stops the backend's threads and frees it (the console is done). */
    void (*free)(void *self);
};

struct console_backend {
    const struct console_backend_ops *ops;
    void *self;
    const char *mode;  /* "embedded", "attached", ... for the header */
    struct router *rt; /* the in-process router (local backend), else NULL */
};

/* NULL-safe: frees through ops->free, then b. */
void console_backend_free(struct console_backend *b);

/* ---- local: the router in this process ------------------------------------------------ */

/* Open client connections and whether the gateway is serving, for the quit question. Any
 * thread. */
typedef long (*console_conns_fn)(void *ctx);

struct console_local_opts {
    const char *gateway_addr; /* for the quit question */
    console_conns_fn conns;   /* may be NULL: no connections known */
    void *conns_ctx;
    const char *user; /* operator login for the audit; NULL: $USER */
};
/* rt is borrowed (it must outlive the backend and be running). NULL when the worker
 * thread cannot start. */
struct console_backend *console_backend_local_new(struct router *rt,
                                                  const struct console_local_opts *o);

/* ---- remote: `switchboard serve` instances over HTTP ---------------------------------- */

struct console_remote_opts {
    const char *const *urls; /* "http://127.0.0.1:8080" (a trailing / or /admin is ignored) */
    size_t n_urls;           /* 1..CONSOLE_MAX_INSTANCES */
    const char *token;       /* admin bearer token (copied; never logged) */
    const char *cacert;      /* CA bundle for https:// (may be NULL: the system's) */
    const char *user;        /* operator login sent as X-Switchboard-User; NULL: $USER */
    long poll_ms;            /* state poll interval; 0: 500 */
    long timeout_ms;         /* a state poll that takes longer fails; 0: 1000 */
};
/* Starts the worker thread (it owns libcurl). NULL with msg on a bad URL or option. */
struct console_backend *console_backend_remote_new(const struct console_remote_opts *o, char *msg,
                                                   size_t msglen);

/* ---- fleet: the instances of a fleet found through Redis (fleet mode) ------------------- */

struct console_fleet_opts {
    const char *url;      /* redis://, rediss:// (TLS) host:port/db or unix:///path */
    const char *cacert;   /* rediss://: CA bundle (NULL: the system's) */
    const char *tls_cert; /* rediss://: client certificate and key files (NULL: none) */
    const char *tls_key;
    const char *prefix;   /* fleet.key_prefix; NULL: "switchboard:" */
    const char *password; /* Redis AUTH (copied; never logged); NULL: none */
    const char *user;     /* operator login for the audit; NULL: console_login() */
};
/* Starts the worker thread (it owns the Redis connection; backend_fleet.c): the instances
 * that heartbeat, merged as console_merge does; commands published to every instance through
 * Redis. Explain, the prompt pane and votes need --attach. NULL with msg on a bad URL. */
struct console_backend *console_backend_fleet_new(const struct console_fleet_opts *o, char *msg,
                                                  size_t msglen);

/* ---- pieces shared by implementations (pure) ------------------------------------------ */

/* Parses GET /admin/state JSON into out (every field the gateway writes; events are left
 * out: the remote backend takes them from /admin/events). SB_ERR_PARSE with msg. */
enum sb_status console_state_parse(const char *json, size_t len, struct router_snapshot *out,
                                   char *msg, size_t msglen);
/* Merges n instance snapshots (NULL entries are skipped) into out, target by target as
 * described above; names[] label the instances in breaker_reason. out's events are left
 * as they are. */
void console_merge(const struct router_snapshot *const *in, const char *const *names, size_t n,
                   struct router_snapshot *out);
/* Parses GET /admin/quality/TARGET JSON into out (target, loaded, row with its counts and sums
 * derived with min_volume, min_volume, the newest CONSOLE_QUALITY_NEGATIVE negatives); asked
 * and answered are 1, missing "". SB_ERR_PARSE with msg. */
enum sb_status console_quality_parse(const char *json, size_t len, struct console_quality *out,
                                     char *msg, size_t msglen);
/* Merges n instances' quality (NULL and not loaded entries are skipped) into out: counts and
 * sums added, min_volume the largest, the rates derived again, the negatives newest first
 * across instances (capped). out->target is kept; asked, answered and missing are left for
 * the caller. loaded when any entry was. */
void console_quality_merge(const struct console_quality *const *in, size_t n,
                           struct console_quality *out);
/* The login for audits: $SWITCHBOARD_USER, $USER, $LOGNAME, else "unknown". */
const char *console_login(void);

#endif
