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
 * AND its last attempt's transfer has reported done.
 */
#ifndef SWITCHBOARD_ROUTER_INTERNAL_H
#define SWITCHBOARD_ROUTER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "switchboard/backoff.h"
#include "switchboard/breaker.h"
#include "switchboard/config.h"
#include "switchboard/limits.h"
#include "switchboard/pick.h"
#include "switchboard/provider.h"
#include "switchboard/router.h"
#include "switchboard/stats.h"
#include "switchboard/timerq.h"
#include "switchboard/transport.h"

#define ROUTER_TICK_MS               100 /* expiries and snapshot cadence */
#define ROUTER_UNDO_MAX              32
#define ROUTER_EWMA_TAU_MS           10000
#define ROUTER_RATE_LIMIT_DEFAULT_MS 1000 /* cooldown after a 429 without Retry-After */
#define ROUTER_PROBE_MAX_BODY        (256u * 1024)

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
    int64_t probe_started_us;
    long probe_status;
    size_t probe_body;
    char probe_error[128];
    uint64_t probes, probe_failures;
};

struct route_state {
    int refs;
    bool removed;
    char *name;
    struct pick_state pick;
    struct target_state *pinned; /* holds a ref; NULL when not pinned */
    int64_t pin_expires;
};

/* One candidate of a call: a target in one group (the route, then each fallback route). */
struct cand {
    struct target_state *t; /* holds a ref */
    struct route_state *r;  /* the group's route (ref); NULL for a direct call */
    enum route_strategy strategy;
    int group;
    bool tried;
};

struct attempt;

struct call {
    struct call *prev, *next;
    struct router *rt;
    uint64_t id;
    struct llm_request *req;
    struct cfg_ref *cref;
    struct router_sink sink;
    char *tag;
    char *request_id;
    char *direct; /* direct target name, NULL when routed */
    char route_name[64];
    struct cand *cands;
    size_t n_cands;
    int n_groups;
    long est_tokens;
    long min_context; /* after a context-length error: need a larger window than this */
    int max_attempts;
    int64_t deadline_ms; /* absolute, monotonic */
    int64_t deadline_len_ms;
    int64_t hedge_after_ms;
    int attempts, hedges, retries_same;
    struct attempt *live;
    struct attempt *winner;
    bool committed, done, error_sent;
    bool no_target; /* finished because nothing could be tried */
    int busy; /* > 0 while attempt_done works on the call: it must not be freed */
    struct timer t_retry, t_hedge, t_deadline;
    enum llm_errclass last_err;
    long last_status;
    char last_msg[256];
    struct target_state *last_target; /* ref */
    int64_t retry_after_ms;
    int64_t submit_us, begin_us, first_output_us;
    int64_t overhead_us;
    enum llm_finish finish;
    struct llm_usage usage;
};

enum call_timer_kind {
    CALL_TIMER_RETRY,
    CALL_TIMER_HEDGE,
    CALL_TIMER_DEADLINE,
    TARGET_TIMER_PROBE
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
    bool is_hedge;
    bool cancel_requested;
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
};

enum msg_type { MSG_SUBMIT, MSG_CANCEL, MSG_COMMAND, MSG_RELOAD, MSG_EXPLAIN, MSG_NOTE };

struct msg {
    struct msg *next;
    enum msg_type type;
    struct call *call;     /* SUBMIT */
    uint64_t call_id;      /* CANCEL */
    struct router_cmd cmd; /* COMMAND */
    struct config *cfg;    /* RELOAD */
    char *model, *tag;     /* EXPLAIN; NOTE: model = text, tag = target */
    enum router_event_kind note_kind;
    long prompt_tokens;
    struct reply *reply; /* COMMAND, EXPLAIN */
};

struct undo {
    char target[64];
    struct overrides before;
    size_t n_pins;
    struct {
        struct route_state *r;       /* ref */
        struct target_state *pinned; /* ref, may be NULL */
        int64_t expires;
    } pins[ROUTER_MAX_ROUTES];
};

struct router {
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
    struct transport *tr;
    struct timerq timers;
    struct cfg_ref *cur;
    struct target_state **targets;
    size_t n_targets;
    struct route_state **routes;
    size_t n_routes;
    struct call *calls;
    size_t n_calls;
    struct rng rng;
    struct router_snapshot *building;
    struct router_event events[ROUTER_MAX_EVENTS];
    size_t ev_next; /* ring position of the next event */
    uint64_t ev_seq;
    struct undo undo[ROUTER_UNDO_MAX];
    size_t n_undo;
    int64_t started_ms;
    int64_t next_tick_ms;
    uint64_t gateway_calls;
    uint64_t config_gen;
    uint64_t snap_gen;
    bool publish_now;
};

/* router.c */
void router_reply_finish(struct reply *r, enum sb_status st, const char *fmt, ...) SB_PRINTF(3, 4);
void router_reply_release(struct reply *r);

/* call.c */
struct call *call_new(struct router *rt, struct llm_request *req,
                      const struct router_call_opts *opts, const struct router_sink *sink);
void call_free_unstarted(struct call *c); /* a call that never reached the router thread */
void call_begin(struct router *rt, struct call *c);
void call_cancel(struct router *rt, uint64_t id);
void call_timer_fired(struct router *rt, struct timer *t);
void call_abort_all(struct router *rt); /* shutdown */

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
void router_apply_command(struct router *rt, const struct router_cmd *cmd, struct reply *reply);
void target_probe_fire(struct router *rt, struct target_state *t);
void router_targets_free(struct router *rt);
void target_note_transition(struct router *rt, struct target_state *t,
                            const struct breaker_transition *tr);

/* snapshot.c */
void router_event(struct router *rt, enum router_event_kind kind, const char *target,
                  const char *fmt, ...) SB_PRINTF(4, 5);
void router_publish(struct router *rt, int64_t now_ms);
void router_explain_run(struct router *rt, const char *model, const char *tag, long tokens,
                        struct buf *out);
/* Which route serves a request (rules first, then the model name); -1 when none. */
long router_resolve_route(const struct config *cfg, const char *model, const char *tag, long tokens,
                          long *rule_index);

#endif
