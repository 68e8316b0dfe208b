/*
 * router.h - the router thread: picks a target for every call, runs its attempts over the
 * transport, survives failures (retries with backoff and jitter, fallbacks, breakers,
 * rate-limit cooldowns, hedges, deadlines), probes targets, keeps statistics and publishes
 * snapshots. See DESIGN.md "Threads and who owns what".
 *
 * Threads: one router thread owns everything behind struct router (transport, targets,
 * calls, timers). Other threads talk to it only through the functions below, which are all
 * thread-safe: router_submit / router_cancel / router_command post messages to its inbox;
 * router_snapshot_read copies the last published snapshot. Sink callbacks run on the router
 * thread: they must not block and must not call back into the router except router_cancel.
 * A sink that sets any_thread may get its events on a decode/encode worker instead, once
 * its call has committed (router.workers; see struct router_sink).
 *
 * Call rule for streams: failures before the first output byte reaches the sink are retried
 * or fallen back transparently; after it, the call ends with an ERROR event (a truncated
 * stream). Two targets' output is never spliced into one answer.
 */
#ifndef SWITCHBOARD_ROUTER_H
#define SWITCHBOARD_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "switchboard/breaker.h"
#include "switchboard/budgets.h"
#include "switchboard/config.h"
#include "switchboard/fleet.h"
#include "switchboard/ledger.h"
#include "switchboard/llm.h"
#include "switchboard/stats.h"

struct router;
struct transport_ops;

/* ---- lifecycle (main thread) -------------------------------------------------------------- */

/* Where the router reads time. Both functions may be called from any thread. */
struct router_clock {
    int64_t (*mono_us)(void *ctx); /* monotonic microseconds */
    int64_t (*wall_ms)(void *ctx); /* Unix epoch milliseconds */
    void *ctx;
};

/* What a router runs on: a transport (ops table + instance; the router frees it with
 * ops->free) and a clock. router_new uses libcurl and the system clock. */
struct router_env {
    const struct transport_ops *transport;
    void *transport_self;
    struct router_clock clock;
    /* Tests: the decode/encode workers (router.workers) run no threads of their own; the
     * caller runs their queued work with router_workers_step. */
    bool workers_manual;
};

/* Takes ownership of cfg. Opens the ledger at cfg->ledger.path (":memory:" allowed) and
 * rebuilds today's and this month's spend from it, so budgets hold across restarts. Returns
 * NULL with msg on failure (e.g. the ledger cannot be opened). Does not start the thread. */
struct router *router_new(struct config *cfg, char *msg, size_t msglen);
/* router_new on a given transport and clock (tests, fuzzers). Takes ownership of cfg and of
 * env->transport_self (freed even on failure). */
struct router *router_new_env(struct config *cfg, const struct router_env *env, char *msg,
                              size_t msglen);
/* Drives a router that was not started from the calling thread: one loop iteration (inbox,
 * due timers, tick, one non-blocking transport run). For tests and fuzzers. */
void router_step(struct router *rt);
/* When router_step next has work of its own (the earliest timer or tick), router clock ms. */
int64_t router_next_wake_ms(struct router *rt);
/* Runs every queued batch of the decode/encode workers on the calling thread (a router made
 * with workers_manual; tests). Returns the number of stream batches run (0: nothing queued,
 * or no workers). Call it from the thread that steps the router. */
size_t router_workers_step(struct router *rt);
/* The decode/encode worker count for router.workers = configured (-1: absent) on `online`
 * cores: absent is one per core above 2 cores and none at 2 or fewer, at most 16. */
int router_workers_resolve(long configured, long online);
/* Optional, before the first call: fn(ctx) runs on a worker thread at the end of each of
 * its batches (after the batch's sink events, before the router hears of them), so a sink
 * that defers its wake-ups per thread can flush what this thread deferred. */
void router_set_batch_end(struct router *rt, void (*fn)(void *ctx), void *ctx);
/* Turns of the router loop, for a sink that batches work (the gateway defers its connection
 * wake-ups). The hook gets ROUTER_TURN_BEGIN before a stretch of sink calls and
 * ROUTER_TURN_END after it, on the thread that makes those calls, before that thread may
 * block: whatever a sink deferred between the two must be done by the END, on the same
 * thread ("flush what this thread deferred"). Sink calls outside BEGIN..END (on_done from
 * router_submit on a stopped router, on the caller's thread) must not be deferred. The
 * decode/encode workers do not call it: they end each batch with router_set_batch_end's fn. */
enum router_turn { ROUTER_TURN_BEGIN, ROUTER_TURN_END };
/* Main thread, before router_start (or between router_steps); NULL hook: none. */
void router_set_turn_hook(struct router *rt, void (*hook)(void *ctx, enum router_turn turn),
                          void *ctx);
/*
 * An event source that shares the router thread's loop: the gateway's HTTP server in
 * external-loop mode (gateway.threads 0), so a request is parsed, routed, relayed and
 * answered on this one thread. fd joins the transport's wait (transport_watch): its
 * readiness ends the wait, the router never reads it. run(ctx) is called on the router
 * thread at the end of every turn, after the turn hook's ROUTER_TURN_END (so what the sinks
 * deferred is flushed first), outside BEGIN..END: sink calls it causes must not be deferred.
 * wait_cap_ms(ctx), when set, caps the wait before the next turn (< 0: no cap).
 * run may ask router_loop_hook_waited whether fd was waited on since the last run.
 */
struct router_loop_hook {
    int fd;
    void (*run)(void *ctx);
    int64_t (*wait_cap_ms)(void *ctx);
    void *ctx;
};
/* In the loop hook's run: false when the turn that just ended was one of the inbox, timers
 * and ticks alone (fd was not waited on, so its readiness cannot be what calls for the run;
 * the gateway then skips MHD_run unless it resumed a connection); true after the transport's
 * run (or a flush inside it). The loop's owner only. */
bool router_loop_hook_waited(const struct router *rt);
/* Runs fn(ctx) once on the thread that owns the router's loop: the router thread, in its
 * next turn, while it runs (this then waits for it), else the caller's (before router_start,
 * between router_steps, after router_stop). Called from the thread that calls router_start
 * and router_stop; SB_ERR_STATE on the router thread. SB_ERR_IO with msg when the router thread
 * did not take fn within timeout_ms (then fn never runs) or no longer takes messages. */
enum sb_status router_loop_call(struct router *rt, void (*fn)(void *ctx), void *ctx, int timeout_ms,
                                char *msg, size_t msglen);
/* Attaches hook (copied; one at a time) or, with NULL, detaches it, on the loop's owner as
 * router_loop_call does. Once a detach returned SB_OK, run and wait_cap_ms are never called
 * again and the fd is out of the transport's set. SB_ERR_IO with msg: the transport refused
 * the fd (nothing attached), or the router did not answer in time (nothing changed). */
enum sb_status router_set_loop_hook(struct router *rt, const struct router_loop_hook *hook,
                                    int timeout_ms, char *msg, size_t msglen);
/* Starts the router thread (and its probes). */
enum sb_status router_start(struct router *rt, char *msg, size_t msglen);
/* Stops taking calls, cancels what is in flight (their sinks get ERROR CANCELLED + on_done),
 * joins the thread. Idempotent. */
void router_stop(struct router *rt);
/* Stops first if needed, then closes the ledger: every row still queued is written before it
 * returns (a clean stop loses nothing). NULL-safe. */
void router_free(struct router *rt);

/* Swaps in a new config (takes ownership) without dropping in-flight calls: they finish on
 * the config they started with. Targets keep their statistics and breakers by name. */
void router_reload(struct router *rt, struct config *cfg);

/* ---- calls ------------------------------------------------------------------------------ */

/* What the sink learns when the call commits to one attempt (its first output is about to
 * be delivered) and at the end. Strings are borrowed for the duration of the callback. */
struct router_commit {
    uint64_t call_id;
    const char *target; /* target name */
    const char *model;  /* provider model id */
    const char *route;  /* route name, "" for a direct target call */
    int attempt;        /* 1-based number of the attempt that won; 0 for a cached answer */
    bool hedged;        /* a hedge attempt won */
    bool cached;        /* answered from the route's response cache: target is "cache" */
    const char *upstream_headers; /* the winner's rate-limit headers for the client, one
                                     "name: value\n" each ("" none); valid during on_commit */
};

struct router_result {
    uint64_t call_id;
    enum llm_errclass err;                /* LLM_ERR_NONE on success */
    long upstream_status;                 /* last upstream HTTP status, 0 when none */
    struct llm_error_info upstream_error; /* what the last failed attempt's provider said
                                             (type/code/param), "" when none */
    char message[256];                    /* sanitised, for the client */
    const char *target; /* answering (or last tried) target; "" when none was tried */
    const char *model;
    const char *route;
    int attempts;           /* attempts started, hedges included */
    int hedges;             /* hedge attempts started */
    bool committed;         /* output reached the sink */
    bool no_target;         /* nothing could be tried (all down, drained, limited): answer 503 */
    bool unknown_model;     /* BAD_REQUEST: the model names no route and no rule maps it (404) */
    int64_t retry_after_ms; /* RATE_LIMIT: when the client may retry; -1 unknown */
    struct llm_usage usage;
    bool usage_missing; /* answered, but the provider reported no usage */
    double cost_usd;    /* < 0: unknown (a console attached over HTTP sees no cost in a stream) */
    double spend_usd;   /* as budgets count it, so far: cost_usd (an estimate from the sizes when
                           usage is missing) plus known retry and hedge costs */
    double baseline_cost_usd; /* what the route's baseline target would have cost; -1 none */
    enum llm_finish finish;
    int64_t latency_us;  /* submit to done */
    int64_t ttft_us;     /* submit to first output; -1 when none */
    int64_t overhead_us; /* time spent in switchboard itself (queueing, encode, decode) */
    bool cached;         /* answered from the response cache: target "cache", cost 0 */
    bool throttled;      /* refused by a budget or the runaway guard: err RATE_LIMIT (429), message
                            saying why, retry_after_ms until the budget resets / the guard lets go */
};

#define ROUTER_SINK_PAUSE 2 /* on_event: taken, but the client is behind: hold the rest */

struct router_sink {
    /* Optional. Once, before the first event of the winning attempt. */
    void (*on_commit)(void *ctx, const struct router_commit *c);
    /* Events of the winning attempt (see llm.h); ends with FINISH or ERROR. An ERROR may come
     * without on_commit (the call failed before any output). Return 0 to go on,
     * ROUTER_SINK_PAUSE to take the event but hold the rest (the upstream reads no more,
     * and the call does not end, until router_resume), anything else to cancel. */
    int (*on_event)(void *ctx, const struct llm_event *ev);
    /* Exactly once, last. After it returns the router forgets ctx. */
    void (*on_done)(void *ctx, const struct router_result *r);
    void *ctx;
    /* Optional. The call was paused (ROUTER_SINK_PAUSE) and its upstream has ended since:
     * nothing is left to read, only the call's end waits for router_resume, which may then
     * be router_resume_lazy. Router thread, before on_done. */
    void (*on_held)(void *ctx);
    /* The sink may run on any thread (never two at once for one call): once the call has
     * committed to a streaming attempt, on_event may then run on a decode/encode worker
     * (router.workers) instead of the router thread; on_commit, on_held and on_done stay on
     * the router thread, and on_done still comes after the last on_event returned. Leave it
     * false for a sink that touches router-thread state (the console's compare pane, `ask`). */
    bool any_thread;
};

struct router_call_opts {
    const char *tag;        /* x-switchboard-tag, may be NULL */
    const char *target;     /* call this target directly (compare pane, `ask -t`): no route,
                               no fallback; operator state (drain, breaker) is ignored. NULL:
                               route by rules / model name. */
    const char *request_id; /* for logs and the ledger; copied */
    const char *client;     /* client key's name (clients.h), for the ledger and the console's
                               recent calls; NULL without client keys; copied */
    const char *route;      /* a user's preferred route (src/gateway/users.c): used instead of
                               rules and the model name when it exists; NULL: resolve; copied */
    uint64_t prompt_hash;   /* cache_prompt_hash(req) (cache.h) when the caller has it: the
                               gateway computes it where it parsed the body, off the router
                               thread (4 MiB of prompt cost 6 ms to hash there). The guard, the
                               fleet and the ledger use it as given; 0: the router computes it
                               itself (the console's prompt pane, `ask`) */
};

/*
 * Submits a call. Takes ownership of req (heap-allocated with xmalloc, initialised with
 * llm_request_init) in every case. Returns the call id (> 0). When the router is stopped
 * the sink gets ERROR + on_done from the calling thread before router_submit returns.
 * Unknown model / no route: ERROR BAD_REQUEST via the sink (on the router thread).
 */
uint64_t router_submit(struct router *rt, struct llm_request *req,
                       const struct router_call_opts *opts, const struct router_sink *sink);
/* Cancels a call (client went away). Its sink still gets on_done (err CANCELLED) unless the
 * call had already finished. Safe from sink callbacks. */
void router_cancel(struct router *rt, uint64_t call_id);
/* Cancels a call because the server is stopping: the sink gets ERROR CANCELLED "switchboard
 * is shutting down" and the ledger row has status 503 (a client that left is 499). */
void router_cancel_shutdown(struct router *rt, uint64_t call_id);
/* Any thread: the sink that returned ROUTER_SINK_PAUSE has room again. The call's upstream
 * reads on, and a call whose upstream ended meanwhile ends now. Unknown or finished ids are
 * ignored. */
void router_resume(struct router *rt, uint64_t call_id);
/* router_resume without waking the router thread: it is handled at the router's next turn,
 * within ROUTER_TICK_MS. Only for a call whose sink got on_held (no transfer waits on it, so
 * the delay only moves the call's end: its ledger row and on_done). Any thread. */
void router_resume_lazy(struct router *rt, uint64_t call_id);

/* ---- operator commands ----------------------------------------------------------------- */

enum router_cmd_type {
    ROUTER_CMD_SET_WEIGHT,
    ROUTER_CMD_FORCE_LIVE, /* ignore the breaker for this target */
    ROUTER_CMD_PIN,        /* all of its routes' traffic to this target */
    ROUTER_CMD_DRAIN,      /* no new calls; in-flight finish */
    ROUTER_CMD_RESET,      /* clear overrides, close the breaker, end cooldowns */
    ROUTER_CMD_PROBE_NOW,
    ROUTER_CMD_UNDO,  /* undo the last override (target ignored) */
    ROUTER_CMD_CLEAR, /* remove force/pin/drain from a target */
};

struct router_cmd {
    enum router_cmd_type type;
    char target[64];
    double weight;      /* SET_WEIGHT */
    int64_t expires_ms; /* duration; 0 = until changed */
    char user[64];      /* who: "console", "admin:<addr>", ... */
    uint64_t undo_id;   /* UNDO: the change the operator previewed (router_undo_snap.id); the
                         * router does nothing when it is no longer the newest. 0: the newest */
};

/* Applies a command on the router thread and waits (up to timeout_ms) for its verdict.
 * SB_OK, or SB_ERR_NOT_FOUND / SB_ERR_INVALID / SB_ERR_STATE with msg; SB_ERR_IO when the
 * router did not answer in time or is stopping (unavailable, not a conflict), and at once when
 * called on the router thread itself (it could never answer). Each applied command is an audit
 * event (time, user, before -> after). */
enum sb_status router_command(struct router *rt, const struct router_cmd *cmd, char *msg,
                              size_t msglen, int timeout_ms);

/* ---- snapshots ---------------------------------------------------------------------------- */

#define ROUTER_MAX_TARGETS 64
#define ROUTER_MAX_ROUTES  64
#define ROUTER_MAX_EVENTS  256
#define ROUTER_MAX_BUDGETS 32

enum router_event_kind {
    ROUTER_EV_BREAKER, /* breaker transition with reason */
    ROUTER_EV_RATE_LIMIT,
    ROUTER_EV_FALLBACK,
    ROUTER_EV_HEDGE,
    ROUTER_EV_TRUNCATED,
    ROUTER_EV_PROBE,    /* probe failure / recovery */
    ROUTER_EV_OPERATOR, /* audit: who, what, before -> after */
    ROUTER_EV_CONFIG,   /* reload accepted / rejected */
    ROUTER_EV_ERROR,    /* other notable failures */
};
const char *router_event_kind_name(enum router_event_kind k);

struct router_event {
    uint64_t seq; /* increasing; lets readers append only what is new */
    int64_t wall_ms;
    enum router_event_kind kind;
    char target[64]; /* the target it concerns: for a failure, the one that failed */
    char text[192];
    bool churn;   /* per-call churn (timeline.h: the churn ring), else a key event */
    uint64_t agg; /* churn: the aggregate this updates (same id across its updates); 0 none */
};

struct router_target_snap {
    char name[64];
    char kind[24]; /* provider_kind_name */
    char model[96];
    bool enabled; /* has its key */
    char disabled_reason[128];
    enum breaker_state breaker;
    char breaker_reason[128];    /* reason of the last transition */
    int64_t breaker_retry_in_ms; /* OPEN: time until half-open */
    int64_t breaker_cooldown_ms; /* the current cooldown (grows with each failed trial) */
    bool forced_live, drained, pinned;
    int64_t override_expires_in_ms; /* soonest expiry of this target's overrides; 0 none */
    bool rate_limited;
    char rate_limit_reason[128]; /* limits_blocked_reason text, "" when free */
    double weight;               /* effective (operator override or config) */
    double configured_weight;
    double traffic_share;       /* this target's share of all calls started over the last minute */
    struct stats_summary stats; /* counters, percentiles, req/s series, Prometheus buckets */
    int64_t last_error_age_ms;  /* -1 none */
    /* probes */
    bool probe_enabled;
    bool probe_ok;
    int64_t probe_age_ms; /* -1 never */
    int64_t probe_latency_us;
    long probe_status; /* the last probe's HTTP status; 0 when it got none */
    char probe_error[128];
    int64_t next_probe_in_ms; /* -1 when probes are off */
    uint64_t probes, probe_failures;
    double probe_spend_usd; /* chat probes at the target's price, since start */
    /* spend (UTC day and month; rebuilt from the ledger at start) */
    double spend_today_usd, spend_month_usd;
    bool over_budget;        /* a target budget's cap is reached: the router skips it */
    char budget_reason[160]; /* "over budget: budget 'target:x' daily cap ..." */
};

struct router_route_snap {
    char name[64];
    char strategy[16];
    char pinned[64]; /* "" when not pinned */
    size_t n_targets;
    size_t targets[ROUTER_MAX_TARGETS]; /* indices into targets[] */
};

/* What the next undo would take back (the newest undoable change), for a preview. */
struct router_undo_snap {
    uint64_t id; /* 0: nothing to undo */
    char target[64];
    char action[16]; /* "force-live", "pin", ... */
    char user[64];   /* who made the change */
    int64_t at_wall_ms;
    bool lapsed; /* the change already expired: undo would only say so */
    int64_t lapsed_wall_ms;
    char restores[160]; /* the state undo puts back ("weight 3", "weight 1, pinned on chat") */
    size_t depth;       /* changes on the undo stack */
};

struct router_snapshot {
    uint64_t gen;
    int64_t wall_ms;
    int64_t uptime_ms;
    size_t n_targets;
    struct router_target_snap targets[ROUTER_MAX_TARGETS];
    size_t n_routes;
    struct router_route_snap routes[ROUTER_MAX_ROUTES];
    /* totals over all targets */
    uint64_t calls, successes, failures, in_flight;
    double req_per_s;
    double error_pct_1m;
    double error_pct_10s; /* over all targets' calls finished in the last 10 s */
    double spend_usd;
    uint64_t gateway_calls; /* calls submitted (each counted once, however many attempts) */
    size_t n_events;        /* the newest n_events of events[], oldest first */
    struct router_event events[ROUTER_MAX_EVENTS];
    uint64_t config_gen; /* bumps on every accepted reload */
    /* spend: today / this month are UTC windows, rebuilt from the ledger at start */
    double spend_today_usd, spend_month_usd;
    double burn_per_hour_usd; /* all spend over the last hour */
    double savings_usd;       /* baseline - actual since start (negative: a loss) */
    double savings_today_usd, savings_month_usd;
    size_t n_budgets; /* config order */
    struct budget_status budgets[ROUTER_MAX_BUDGETS];
    uint64_t budget_refused;             /* calls refused with 429 at a global/route/tag cap */
    uint64_t guard_throttled;            /* calls refused by the runaway guard */
    uint64_t guard_cached;               /* calls the guard had answered from a response cache */
    uint64_t guard_storms, guard_spikes; /* storms and spikes detected */
    size_t cache_entries;                /* over all routes' response caches */
    size_t cache_bytes;
    struct ledger_stats ledger; /* rows written / queued / dropped, last write error */
    /* fleet mode: fleet.enabled false when off; spend across the fleet (UTC windows) */
    struct fleet_status fleet;
    double fleet_spend_today_usd, fleet_spend_month_usd;
    struct router_undo_snap undo; /* what u would undo (previewed before it is applied) */
};

/* Records a prompt-pane vote from any thread (dropped once the router is stopping): winner beat
 * the n_losers others on prompt (only its hash is kept). A ledger row (votes table) and an
 * OPERATOR event on the timeline. */
void router_record_vote(struct router *rt, const char *winner, const char *const *losers,
                        size_t n_losers, const char *prompt, const char *user);

/* The ledger the router writes (for POST /v1/feedback: ledger_feedback_submit). Borrowed: valid
 * until router_free; never NULL after router_new. Any thread. */
struct ledger *router_ledger_peek(struct router *rt);

/* Adds an event to the timeline from any thread (e.g. "config reload rejected: ..."). */
void router_note(struct router *rt, enum router_event_kind kind, const char *target,
                 const char *text);

/* Copies the latest snapshot into out when its generation differs from have_gen; returns
 * whether it did. Any thread. */
bool router_snapshot_read(struct router *rt, struct router_snapshot *out, uint64_t have_gen);
/* Calls fn(snap, ctx) on the latest published snapshot in place, under its lock, unless its
 * generation is have_gen; returns whether it did. Nothing is copied: fn reads what it needs
 * (snap only during the call), must be short (the router thread waits for that lock to
 * publish, every ROUTER_TICK_MS) and must not call into the router. Any thread. */
typedef void router_snapshot_fn(const struct router_snapshot *snap, void *ctx);
bool router_snapshot_visit(struct router *rt, uint64_t have_gen, router_snapshot_fn *fn, void *ctx);
/* The router's fleet (fleet.h), NULL when fleet mode is off. Its functions are thread-safe and
 * never wait on Redis; it lives as long as the router. Any thread. */
struct fleet *router_fleet(struct router *rt);

/* ---- dry run ------------------------------------------------------------------------------ */

/* Explains how a request with these facts would be routed now: the route chosen (and the
 * rule that chose it), each target with why it was filtered out, and the strategy's pick.
 * Human text into out. Any thread but the router's (asks the router thread; waits up to
 * timeout_ms; on the router thread itself SB_ERR_IO at once). */
enum sb_status router_explain(struct router *rt, const char *model, const char *tag,
                              long prompt_tokens, struct buf *out, int timeout_ms);

#endif
