/*
 * internal.h - the router thread's private state, shared by router.c (lifecycle, inbox,
 * loop), call.c (calls and attempts), target.c (targets, routes, probes, overrides, reload)
 * and snapshot.c (snapshots, events, explain).
 *
 * Ownership: everything below "router thread only" is touched by the router thread alone,
 * so it needs no locks. The inbox and the published snapshot have their own mutexes; no
 * other lock exists and none is held while calling out of this module.
 *
 * Lifetimes: configs, targets and routes are refcounted (router thread only, plain ints) so
 * a reload never frees what an in-flight call still uses. A call lives until it has finished
 * AND its last attempt's transfer has reported done; its ledger row is posted then (spend.c),
 * so the cost a losing hedge reports after the answer is still on it.
 *
 * spend.c joins the spend side in: the ledger (its own writer thread; posting never blocks),
 * budgets, the runaway guard and the routes' response caches, all router-thread-owned.
 *
 * worker.c (router.workers > 0): once a streaming call whose sink is any_thread has committed,
 * its winning attempt's provider_call and its sink's on_event move to a decode/encode worker
 * (struct wk_stream). From that hand-off until the worker's final summary the router thread
 * does not touch a->pc nor call c->sink.on_event: it only queues bytes and the transfer's end,
 * and applies the worker's summaries (call.c: call_wk_apply), which stay its only way to
 * change the call. Every other field stays the router thread's.
 */
#ifndef SWITCHBOARD_ROUTER_INTERNAL_H
#define SWITCHBOARD_ROUTER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "switchboard/backoff.h"
#include "switchboard/breaker.h"
#include "switchboard/budgets.h"
#include "switchboard/cache.h"
#include "switchboard/guard.h"
#include "switchboard/ledger.h"
#include "switchboard/config.h"
#include "switchboard/fleet.h"
#include "switchboard/limits.h"
#include "switchboard/pick.h"
#include "switchboard/provider.h"
#include "switchboard/router.h"
#include "switchboard/stats.h"
#include "switchboard/timeline.h"
#include "switchboard/timerq.h"
#include "switchboard/transport.h"

#define ROUTER_TICK_MS        100                     /* expiries and snapshot cadence */
#define ROUTER_KEY_EVENTS     (ROUTER_MAX_EVENTS / 2) /* the router's key ring (timeline.h) */
#define ROUTER_CHURN_EVENTS   (ROUTER_MAX_EVENTS / 2) /* its churn ring; both fit a snapshot */
#define ROUTER_UNDO_MAX       32
#define ROUTER_EWMA_TAU_MS    10000
#define ROUTER_PROBE_MAX_BODY ((size_t)256 * 1024)

struct cfg_ref {
    struct config *cfg;
    int refs;
};

/* Operator overrides on one target. expires_* are monotonic ms, 0 = until changed. */
struct overrides {
    bool weight_set;
    double weight;
    int64_t weight_expires;
    bool forced_live;
    int64_t force_expires;
    bool drained;
    int64_t drain_expires;
};

struct target_state {
    int refs;
    bool removed; /* no longer in the current config */
    struct router *rt;
    struct cfg_ref *cref;
    const struct config_target *cfg;
    const struct provider_ops *ops;
    struct breaker breaker;
    struct limits limits;
    struct peak_ewma ewma;
    struct overrides ov;
    struct stats stats; /* large: target_state is heap-allocated */
    /* probes */
    struct timer probe_timer;
    bool probing;
    bool probe_ok;
    bool probe_ever;
    int64_t probe_at_ms;
    int64_t probe_latency_us;
    long probe_last_status; /* the last finished probe's HTTP status, 0 none */
    int64_t probe_started_us;
    long probe_status;
    struct llm_ratelimit probe_rl; /* Retry-After of a 429 answer */
    size_t probe_body;
    char probe_error[128];
    uint64_t probes, probe_failures;
    struct provider_call *probe_pc; /* chat probes: reads the answer's usage */
    double probe_spend_usd;
};

struct route_state {
    int refs;
    bool removed;
    char *name;
    struct pick_state pick;
    struct target_state *pinned; /* holds a ref; NULL when not pinned */
    int64_t pin_expires;
    struct cache *cache; /* routes[].cache enabled; moves to the new state on a reload */
};

/* One candidate of a call: a target in one group (the route, then each fallback route). */
struct cand {
    struct target_state *t; /* holds a ref */
    struct route_state *r;  /* the group's route (ref); NULL for a direct call */
    enum route_strategy strategy;
    int group;
    bool tried;
    bool refused; /* its adapter cannot encode this request: never picked again */
};

struct attempt;

/* What a call ended with (call_finish), kept for its ledger row until it is freed. */
struct call_fin {
    enum llm_errclass err;
    long upstream_status;
    bool no_target, unknown_model;
    int attempts, hedges;
    struct llm_usage usage;
    bool usage_missing;
    double cost_usd, baseline_cost_usd, est_cost_usd;
    int64_t latency_us, ttft_us;
    int64_t wall_ms;
    char *target, *model;
};

struct call {
    struct call *prev, *next;
    struct call *id_next; /* the chain of its bucket in rt->by_id */
    struct router *rt;
    uint64_t id;
    struct llm_request *req;
    struct cfg_ref *cref;
    struct router_sink sink;
    char *tag;
    char *request_id;
    char *client;     /* client key's name, NULL without keys */
    char *pref_route; /* router_call_opts.route: a user's preferred route, or NULL */
    char *direct;     /* direct target name, NULL when routed */
    char route_name[64];
    struct cand *cands;
    size_t n_cands;
    int n_groups;
    long est_tokens;
    long min_context; /* after a context-length error: need a larger window than this */
    int max_attempts;
    int picks_left;      /* every pick spends one: the loop over candidates always ends */
    int64_t queue_ms;    /* route's queue_ms: wait this long for a rate-limited target */
    char refusal[256];   /* the first encoder refusal, for a 400 when every target refuses */
    int64_t deadline_ms; /* absolute, monotonic */
    int64_t deadline_len_ms;
    int64_t hedge_after_ms;
    int attempts, hedges, retries_same;
    struct attempt *live;
    struct attempt *winner;
    bool committed, done, error_sent;
    bool no_target;   /* finished because nothing could be tried */
    bool shutdown;    /* ended because the server is stopping: the ledger says 503, not 499 */
    bool paused;      /* the sink said ROUTER_SINK_PAUSE: no more upstream bytes until resumed */
    bool end_held;    /* the winner finished while paused: the call ends at the resume */
    bool finish_sent; /* the sink got FINISH: no ERROR after it (a held end, then cancelled) */
    int busy;         /* > 0 while attempt_done works on the call: it must not be freed */

    bool unknown_model; /* refused: no route or rule for the requested model (404) */
    struct timer t_retry, t_hedge, t_deadline;
    enum llm_errclass last_err;
    long last_status;
    struct llm_error_info last_info; /* the provider's error type/code/param */
    char last_msg[256];
    struct target_state *last_target; /* ref */
    int64_t retry_after_ms;
    int64_t submit_us, begin_us, first_output_us;
    int64_t overhead_us;
    enum llm_finish finish;
    struct llm_usage usage;
    /* spend side (spend.c) */
    uint64_t given_hash;        /* router_call_opts.prompt_hash: 0 when the caller gave none */
    uint64_t prompt_hash;       /* given_hash, or computed by spend_admit; 0 for a direct call */
    bool cached;                /* answered from the route's response cache */
    bool throttled;             /* refused by a budget or the runaway guard */
    bool winner_hedge;          /* the committed attempt was a hedge */
    char *cached_model;         /* cached: the model that gave the stored answer */
    struct cache_recorder *rec; /* recording the answer for the route's cache */
    char *cache_key;
    size_t cache_keylen;
    size_t out_bytes; /* answer text and arguments, for a cost estimate without usage */
    double retry_cost_usd, hedge_cost_usd; /* reported by attempts that did not answer */
    bool retry_cost_known, hedge_cost_known;
    struct call_fin *fin;
    /* decode/encode workers (worker.c), router thread only */
    int wk_live;          /* attempts handed to a worker whose final summary has not come */
    int wk_resume_credit; /* resumes that overtook their pause's summary (call_resume) */
    bool end_deferred;    /* call_end came while wk_live > 0: ERROR + on_done wait for it */
    enum llm_errclass end_err;
    char end_msg[256];
};

enum call_timer_kind {
    CALL_TIMER_RETRY,
    CALL_TIMER_HEDGE,
    CALL_TIMER_DEADLINE,
    TARGET_TIMER_PROBE,
    ATTEMPT_TIMER_IDLE
};

struct attempt {
    struct attempt *next;
    struct call *call;
    struct cand *cand;
    struct target_state *t; /* = cand->t */
    struct provider_call *pc;
    uint64_t xfer;
    int64_t start_us;
    int64_t sent_ms;
    int64_t last_byte_ms; /* -1 until the first byte */
    bool is_hedge;
    bool cancel_requested;
    bool slow_strike; /* lost to a hedge with no first byte: a strike, not a cancel */
    bool stalled;     /* cut by the stream idle timeout */
    bool trial;       /* holds a half-open trial slot of its target's breaker */
    bool xfer_paused; /* its transfer is paused (on_data said TRANSPORT_DATA_PAUSE) */
    struct timer t_idle;
    /* Set by the router at the hand-off to a worker, cleared (and freed) when the worker's
     * final summary has been applied; while set, pc and the sink's on_event are the
     * worker's (see the top of this file). */
    struct wk_stream *wk;
    bool wk_cap_paused;   /* paused because its worker queue holds WK_QUEUE_CAP bytes */
    bool wk_aborted;      /* the worker's decode asked to abort the transfer */
    bool xfer_ended;      /* its transfer reported done; waiting for the final summary */
    uint64_t commit_turn; /* rt->turn when it committed: bytes of that turn stay inline */
};

/* ---- inbox ---------------------------------------------------------------------------------- */

struct reply {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs; /* the waiter and the router */
    bool done;
    enum sb_status status;
    char msg[256];
    struct buf text;
    bool running;   /* LOOP_CALL: the router thread has begun fn */
    bool abandoned; /* LOOP_CALL: the waiter gave up before that; fn must not run */
};

enum msg_type {
    MSG_SUBMIT,
    MSG_CANCEL,
    MSG_RESUME,
    MSG_COMMAND,
    MSG_RELOAD,
    MSG_EXPLAIN,
    MSG_NOTE,
    MSG_VOTE,
    MSG_LOOP_CALL
};

struct msg {
    struct msg *next;
    enum msg_type type;
    struct call *call;     /* SUBMIT */
    uint64_t call_id;      /* CANCEL, RESUME */
    bool shutdown;         /* CANCEL: the server is stopping, not the client leaving */
    struct router_cmd cmd; /* COMMAND */
    struct config *cfg;    /* RELOAD */
    char *model, *tag;     /* EXPLAIN; NOTE: model = text, tag = target; VOTE: winner, losers */
    char *user;            /* VOTE */
    uint64_t hash;         /* VOTE: the prompt's */
    enum router_event_kind note_kind;
    long prompt_tokens;
    struct reply *reply;   /* COMMAND, EXPLAIN, LOOP_CALL */
    void (*fn)(void *ctx); /* LOOP_CALL */
    void *fn_ctx;
};

/* One change undo can take back: the target's overrides and every route's pin before it,
 * who made it, and when the change lapses by itself. */
struct undo {
    uint64_t id; /* rt->undo_seq at push: what a previewed undo names (router_cmd.undo_id) */
    char target[64];
    char action[16];  /* the command undone: "weight", "pin", ... */
    char user[64];    /* who made it */
    int64_t at_wall;  /* when (Unix ms) */
    int64_t expires;  /* monotonic ms at which the change lapses by itself; 0: until changed */
    int64_t exp_wall; /* the same, Unix ms (0: until changed) */
    struct overrides before;
    size_t n_pins;
    struct {
        struct route_state *r;       /* ref */
        struct target_state *pinned; /* ref, may be NULL */
        int64_t expires;
    } pins[ROUTER_MAX_ROUTES];
};

/* fleet_glue.c: prompts this instance saw in the current guard window (a direct-mapped table;
 * a collision only restarts a count). */
#define FLEET_GUARD_SLOTS 4096
struct fleet_seen {
    uint64_t key; /* prompt hash ^ tag hash */
    int64_t slot; /* wall ms / identical_window_ms */
    long count;
    bool shared, flagged;
};

struct router {
    /* set at creation, never changed: the clock and the transport (any thread may read
     * the clock; only the router thread uses the transport, except ops->wakeup) */
    struct router_clock clock;
    const struct transport_ops *tops;
    void *tr;
    /* router_set_turn_hook: set before the thread starts, then read-only */
    void (*turn_hook)(void *ctx, enum router_turn turn);
    void *turn_ctx;
    /* router_set_loop_hook: written only by the loop's owner (router_loop_call) */
    bool has_loop_hook;
    struct router_loop_hook loop_hook;
    /* the loop's owner only: inside hook_turn's BEGIN..END (router_answer_now may flush), and
     * a message its own thread posted during the turn (taken before the next wait) */
    bool in_turn;
    bool answered_early; /* router_answer_now flushed in this turn already */
    bool hook_waited;    /* router_loop_hook_waited; true outside the loop hook's run */
    bool posted_here;

    pthread_t thread;
    bool started, stopped;
    atomic_bool stopping;
    atomic_uint_fast64_t next_call_id;

    pthread_mutex_t inbox_mu;
    struct msg *inbox_head, *inbox_tail;
    bool accepting; /* under inbox_mu */

    pthread_mutex_t snap_mu;
    struct router_snapshot *published; /* under snap_mu */

    /* ---- router thread only (and main before start / after join) ---- */
    struct timerq timers;
    struct cfg_ref *cur;
    struct target_state **targets;
    size_t n_targets;
    struct route_state **routes;
    size_t n_routes;
    struct call *calls;
    size_t n_calls;
    struct call **by_id; /* live calls by id (call.c): by_id_cap buckets, a power of two */
    size_t by_id_cap;
    struct rng rng;
    struct router_snapshot *building;
    struct timeline timeline;  /* ROUTER_KEY_EVENTS key + ROUTER_CHURN_EVENTS churn (timeline.h) */
    struct timeline_agg churn; /* per-call churn folded per (target, kind, class); owns seq */
    struct undo undo[ROUTER_UNDO_MAX];
    size_t n_undo;
    uint64_t undo_seq;
    int64_t started_ms;
    int64_t next_tick_ms;
    uint64_t gateway_calls;
    uint64_t config_gen;
    uint64_t snap_gen;
    bool publish_now;
    /* spend side (spend.c); ledger is set before the thread starts and never changes, so
     * any thread may post to it (router_record_vote) */
    struct ledger *ledger;
    char *ledger_path;
    struct budgets *budgets;
    struct guard *guard;
    double savings_since_start;
    uint64_t guard_throttled, guard_cached, budget_refused;
    double burn_usd[60]; /* spend per wall-clock minute over the last hour */
    int64_t burn_minute[60];
    /* fleet mode (fleet_glue.c): NULL when off; made in spend_open, freed in spend_close */
    struct fleet *fleet;
    bool fleet_applying;  /* applying another instance's command: do not publish it again */
    int64_t fleet_hb_ms;  /* next heartbeat summary, wall ms */
    long fleet_instances; /* last known instance count (on_outage share) */
    bool fleet_share_breakers;
    struct fleet_seen *fleet_seen; /* FLEET_GUARD_SLOTS */
    char *fleet_sig;               /* the fleet settings it started with (reloads) */
    /* decode/encode workers (worker.c): NULL when router.workers is 0. Made in
     * router_new_env, its threads start on their first stream, joined in router_stop. */
    struct wk_pool *workers;
    uint64_t turn; /* router thread: loop turns, for the hand-off (call.c may_hand_off) */
};

/* The router's clock: every router-thread time comes from here (tests pass a fake one). */
static inline int64_t rt_now_us(const struct router *rt)
{
    return rt->clock.mono_us(rt->clock.ctx);
}

static inline int64_t rt_now_ms(const struct router *rt)
{
    return rt_now_us(rt) / 1000;
}

static inline int64_t rt_wall_ms(const struct router *rt)
{
    return rt->clock.wall_ms(rt->clock.ctx);
}

/* router.c */
void router_reply_finish(struct reply *r, enum sb_status st, const char *fmt, ...) SB_PRINTF(3, 4);
void router_reply_release(struct reply *r);

/* call.c */
/* Ends the call: ERROR event (unless err is NONE), on_done, ledger row once it is freed. */
void call_end(struct router *rt, struct call *c, enum llm_errclass err, const char *msg);
/* router.c, the loop's owner: a call's sink has its on_done. Inside a turn, the first time
 * in it, what the sinks deferred goes out now (the turn hook's END, the loop hook's run, a
 * new BEGIN), so the answer is written before the rest of the turn's work (the call's
 * ledger row, the attempt's accounting, the transport's own end of the transfer); later
 * answers of the same turn wait for its END. Outside a turn: nothing. */
void router_answer_now(struct router *rt);
struct call *call_new(struct router *rt, struct llm_request *req,
                      const struct router_call_opts *opts, const struct router_sink *sink);
void call_free_unstarted(struct call *c); /* a call that never reached the router thread */
void call_begin(struct router *rt, struct call *c);
void call_cancel(struct router *rt, uint64_t id, bool shutdown);
void call_resume(struct router *rt, uint64_t id); /* the sink has room again */
void call_timer_fired(struct router *rt, struct timer *t);
void call_abort_all(struct router *rt); /* shutdown */

/* worker.c: decode/encode workers. Router thread unless said otherwise. */
#define WK_QUEUE_CAP ((size_t)64 * 1024) /* bytes waiting for a worker: pause the transfer */
#define WK_MAX       16
/* router.workers absent: one worker per online core, but none at this many cores or fewer,
 * where a worker costs 13-15 us of CPU per event and gains nothing (docs/bench.md). */
#define WK_AUTO_MIN_CORES 2

/* What a worker's batches did to a stream, merged until the router applies it. */
struct wk_summary {
    size_t out_bytes; /* TEXT and TOOL_ARGS bytes (spend_on_output) */
    bool has_usage, has_finish, error_sent;
    struct llm_usage usage;
    enum llm_finish finish;
    int pauses;   /* the sink answered ROUTER_SINK_PAUSE this many times */
    bool stop;    /* the sink asked to stop (client gone) */
    bool aborted; /* provider_call_on_data asked to abort the transfer */
    bool final;   /* the transfer's end ran (provider_call_finish): the last summary */
};

struct wk_pool;
/* n workers (0 < n <= WK_MAX); manual: no threads, router_workers_step runs them. */
struct wk_pool *wk_pool_new(struct router *rt, int n, bool manual);
void wk_pool_stop(struct wk_pool *p); /* joins the threads; streams must all be final */
void wk_pool_free(struct wk_pool *p); /* NULL-safe */
size_t wk_pool_step(struct wk_pool *p);
void wk_pool_set_batch_end(struct wk_pool *p, void (*fn)(void *ctx), void *ctx);
/* Hands a committed attempt's decoder and sink to worker call_id % n (sets a->wk). False
 * (nothing changed) when that worker's thread cannot start. */
bool wk_handoff(struct wk_pool *p, struct attempt *a);
/* Queues body bytes: 0, or TRANSPORT_DATA_PAUSE (nothing taken) when WK_QUEUE_CAP are
 * already waiting. */
int wk_push(struct wk_stream *s, const char *bytes, size_t len);
/* Queues the transfer's end (res copied): the worker runs provider_call_finish after the
 * last bytes and posts the final summary. */
void wk_push_end(struct wk_stream *s, const struct transport_result *res);
void wk_cancel(struct wk_stream *s); /* the worker delivers nothing more (any thread) */
/* Wakes the workers that wk_push / wk_push_end queued work for while they slept: once per
 * router loop turn, before the transport may block and after it ran (NULL-safe). */
void wk_pool_kick(struct wk_pool *p);
bool wk_below_cap(struct wk_stream *s); /* fewer than WK_QUEUE_CAP bytes waiting */
const struct transport_result *wk_end_result(const struct wk_stream *s); /* after final */
void wk_release(struct wk_stream *s); /* after the final summary: frees it */
/* The worker side of attempt_on_event (worker thread): the sink's verdict as the decoder
 * needs it, the facts into the stream's summary. */
int wk_on_event(struct wk_stream *s, const struct llm_event *ev);
/* Applies every summary the workers posted (call_wk_apply each). NULL-safe. */
void wk_pool_drain(struct wk_pool *p);
bool wk_pool_busy(const struct wk_pool *p); /* streams without their final summary yet */

/* call.c: one stream's summary, applied on the router thread (may free the attempt). */
void call_wk_apply(struct router *rt, struct attempt *a, const struct wk_summary *m);

/* candidates.c */
/* Adds t (once per call) as a candidate of group `group`; *cap is the array's capacity. */
void cands_add(struct call *c, size_t *cap, struct target_state *t, struct route_state *r,
               enum route_strategy s, int group);
void cands_build_route(struct router *rt, struct call *c, long route); /* and its fallbacks */
bool cands_usable(const struct call *c, const struct cand *k, int64_t now, bool allow_tried);
/* The next candidate to try, or NULL; spends one of c->picks_left either way. */
struct cand *cands_pick(struct router *rt, struct call *c, int64_t now);
/* "a: breaker open (...); b: drained" for an answer when nothing can be tried. */
void cands_explain_none(const struct call *c, int64_t now, char *out, size_t outlen);
bool cands_all_refused(const struct call *c); /* every adapter refused the request */
/* Every candidate only held back for a while (rate limited, breaker open): when the first
 * is free again; -1 otherwise. *all_limited: all of them are rate limited. */
int64_t cands_soonest_free(const struct call *c, int64_t now, bool *all_limited);

/* account.c */
/* The attempt's outcome as the router sees it (stalls, slow strikes, cancels); msg gets its
 * text. */
enum llm_errclass attempt_outcome(struct attempt *a, const struct transport_result *res, char *msg,
                                  size_t msglen);
/* Target-side accounting of a finished attempt: limits, cooldowns, breaker, EWMA, stats. */
void attempt_account(struct router *rt, struct attempt *a, const struct transport_result *res,
                     enum llm_errclass out, const char *msg, int64_t now);

/* target.c */
struct cfg_ref *cfg_ref_new(struct config *cfg);
void cfg_ref_put(struct cfg_ref *c);
void target_put(struct target_state *t);
void route_put(struct route_state *r);
struct target_state *router_find_target(struct router *rt, const char *name);
struct route_state *router_find_route(struct router *rt, const char *name);
double target_weight(const struct target_state *t);
/* Why t cannot take a call with these facts now ("" and false when it can). */
bool target_blocked(const struct target_state *t, int64_t now_ms, long est_tokens, long min_context,
                    bool direct, char *why, size_t whylen);
void router_load_config(struct router *rt, struct config *cfg); /* first load and reloads */
void router_expire_overrides(struct router *rt, int64_t now_ms);
/* What the next undo would do, for the snapshot (target.c). */
void router_undo_preview(struct router *rt, int64_t now_ms, struct router_undo_snap *out);
/* Applies an operator command; the verdict's text goes to msg. The caller publishes, then
 * replies. */
enum sb_status router_apply_command(struct router *rt, const struct router_cmd *cmd, char *msg,
                                    size_t msglen);
void target_probe_fire(struct router *rt, struct target_state *t);
void router_targets_free(struct router *rt);
void target_note_transition(struct router *rt, struct target_state *t,
                            const struct breaker_transition *tr);

/* spend.c */
/* Opens the ledger, rebuilds spend from it, builds budgets and the guard (router_new). */
bool spend_open(struct router *rt, const struct config *cfg, char *msg, size_t msglen);
void spend_reload(struct router *rt, const struct config *cfg);
void spend_close(struct router *rt); /* after the thread stopped: writes every queued row */
/* Budgets and the guard at the call's start; true when the call was finished here (refused,
 * or answered from the cache). Sets up recording for the route's cache otherwise. */
bool spend_admit(struct router *rt, struct call *c);
/* An output event of the committed attempt (and its ERROR after the commit). */
void spend_on_output(struct call *c, const struct llm_event *ev);
/* A non-answering attempt reported usage: its cost goes on the call. */
void spend_attempt_cost(struct call *c, const struct attempt *a, const struct llm_usage *u);
/* The result's cost, baseline cost and usage_missing (a cached answer: target "cache"). */
void spend_fill_costs(const struct call *c, const struct target_state *t, struct router_result *r);
/* Keeps what the ledger row needs from r, and fills r->spend_usd. */
void spend_call_finished(struct router *rt, struct call *c, struct router_result *r);
void spend_call_release(struct router *rt, struct call *c); /* posts the row, charges budgets */
void spend_call_free(struct call *c);                       /* frees the call's spend fields */
void spend_record_vote(struct router *rt, const char *winner, const char *losers,
                       uint64_t prompt_hash, const char *user);
void spend_snapshot(struct router *rt, struct router_snapshot *s, int64_t now_ms);
void spend_target_snapshot(struct router *rt, const struct target_state *t,
                           struct router_target_snap *s);
/* Over a target budget ("over budget: ..."); false for a direct call. */
bool spend_target_blocked(const struct target_state *t, char *why, size_t whylen);
void spend_route_cache(struct route_state *r, struct route_state *old,
                       const struct config_route *cfg);
/* Router events that are history (operator, config, breaker, probe) go to the ledger too. */
void spend_event_to_ledger(struct router *rt, const struct router_event *e);

/* fleet_glue.c: the router's side of fleet mode (fleet.h). All no-ops when rt->fleet is NULL;
 * router thread only except fleet_glue_open/close (with spend_open/close). */
bool fleet_glue_open(struct router *rt, const struct config *cfg, char *msg, size_t msglen);
void fleet_glue_close(struct router *rt);
/* A reload: share_breakers applies at once; other fleet settings need a restart (an event). */
void fleet_glue_reload(struct router *rt, const struct config *cfg);
void fleet_glue_charge(struct router *rt, const struct ledger_call *row, double total_usd,
                       double answer_usd);
/* A global/route/tag budget over its cap across the fleet (or unknown, on_outage closed). */
bool fleet_glue_call_blocked(struct router *rt, const struct call *c, char *why, size_t whylen,
                             int64_t *retry_after_ms);
bool fleet_glue_target_blocked(const struct target_state *t, char *why, size_t whylen);
/* fleet_limits targets: no lease left for a call of est_tokens (why may be NULL); while Redis
 * is down, this instance's share of the fleet's rate is used up. */
bool fleet_glue_rate_blocked(const struct target_state *t, int64_t now_ms, long est_tokens,
                             char *why, size_t whylen);
void fleet_glue_rate_sent(const struct target_state *t, long est_tokens); /* a call went out */
void fleet_glue_rate_done(const struct target_state *t); /* an attempt ended (its slot back) */
void fleet_glue_snapshot(struct router *rt, struct router_snapshot *s);
/* After the local guard allowed a call: the same prompt from the same tag counted across the
 * fleet; over identical_max it becomes a storm decision per guard.action. */
void fleet_glue_guard(struct router *rt, const struct call *c, struct guard_decision *d);
void fleet_glue_tick(struct router *rt, int64_t now_ms); /* applies other instances' notices */
void fleet_glue_cooldown(struct router *rt, const struct target_state *t, int64_t now_ms);
/* before / after: the target's state around the change (the audit stream keeps them). */
void fleet_glue_command(struct router *rt, const struct router_cmd *cmd, const char *target,
                        const char *before, const char *after);
/* fleet_cache.c: an answer the route's cache just stored goes to the fleet; one from another
 * instance goes into this instance's cache of that route (o: the notice's parsed body). */
void fleet_glue_cache_share(struct router *rt, const struct route_state *r, const char *key,
                            size_t keylen);
struct cJSON;
void fleet_glue_cache_apply(struct router *rt, const struct cJSON *o);
/* fleet_heartbeat.c: the snapshot's summary, in /admin/state's shape, to the fleet. */
void fleet_heartbeat_json(struct router *rt, const struct router_snapshot *s);
void fleet_glue_breaker(struct router *rt, const struct target_state *t,
                        const struct breaker_transition *tr);

/* snapshot.c */
/* An OPERATOR event on the timeline whose ledger row is an audit row (a->wall_ms is set
 * here). Router thread. */
void router_audit(struct router *rt, const struct ledger_audit *a);
void router_event(struct router *rt, enum router_event_kind kind, const char *target,
                  const char *fmt, ...) SB_PRINTF(4, 5);
/* Per-call churn (fallbacks, 429s, hedges, truncated streams): folded into one aggregate line
 * per (target, kind, cls) over TIMELINE_AGG_WINDOW_MS. target: the one it happened on (for a
 * failure, the one that failed); to: FALLBACK's new target, else NULL; c may be NULL. */
void router_churn(struct router *rt, enum router_event_kind kind, const char *target,
                  const char *cls, const char *to, const struct call *c, const char *fmt, ...)
    SB_PRINTF(7, 8);
void router_publish(struct router *rt, int64_t now_ms);
void router_explain_run(struct router *rt, const char *model, const char *tag, long tokens,
                        struct buf *out);
/* Which route serves a request (rules first, then the model name); -1 when none. user: the
 * end user rules[].match.user / users_file look at (NULL: none). */
long router_resolve_route(const struct config *cfg, const char *model, const char *tag,
                          const char *user, long tokens, long *rule_index);

#endif
