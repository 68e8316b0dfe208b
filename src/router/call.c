/*
 * call.c - one client call on the router thread: its attempts over the transport and the
 * decisions between them. Its candidates and picks are in candidates.c; what a finished
 * attempt means for its target (limits, breaker, statistics) is in account.c.
 *
 * An attempt's events pass through attempt_on_event. The first output event (text, tool
 * call, usage or finish) commits the call to that attempt: every other attempt is cancelled
 * and from then on only the winner's events reach the call's sink. Before the commit,
 * failures are retried (same target after backoff with full jitter), fallen back (another
 * target at once), or returned; a hedge starts a second attempt when the first has produced
 * nothing after hedge_after_ms. The deadline covers every attempt. After the commit an
 * error ends the stream (never a splice of two providers' output).
 *
 * Runs on the router thread only, except call_new / call_free_unstarted which the
 * submitting thread uses before the call is handed over, and attempt_on_event, which runs
 * on a decode/encode worker (worker.c) for an attempt handed over to it.
 *
 * Workers (router.workers > 0). After the provider_call_on_data call that committed a
 * streaming call whose sink is any_thread (and that no cache recorder reads), the winner is
 * handed to a worker (attempt_data): its bytes and its transfer's end are queued there, and
 * the worker's summaries come back through call_wk_apply, which does what attempt_on_event
 * does inline (spend, pause, cancel) and, after the final one, what attempt_done does. While
 * an attempt is with a worker (c->wk_live), call_end holds the ERROR and on_done back
 * (end_deferred) until the final summary: they still come after the last event. A resume that
 * overtakes the summary of its pause is kept as a credit (the sink pauses and resumes in
 * turn), so the pause it answers is not applied late.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "switchboard/log.h"

static void call_finish(struct router *rt, struct call *c, enum llm_errclass err, const char *fmt,
                        ...) SB_PRINTF(4, 5);
static bool start_attempt(struct router *rt, struct call *c, bool is_hedge);
static void attempt_free(struct router *rt, struct attempt *a);

/* ---- creation (submitting thread) -------------------------------------------------------------
 */

struct call *call_new(struct router *rt, struct llm_request *req,
                      const struct router_call_opts *opts, const struct router_sink *sink)
{
    struct call *c = xcalloc(1, sizeof *c);
    c->rt = rt;
    c->req = req;
    c->sink = *sink;
    if (opts) {
        c->tag = xstrdup(opts->tag);
        c->request_id = xstrdup(opts->request_id);
        c->client = xstrdup(opts->client);
        c->direct = xstrdup(opts->target);
        c->pref_route = xstrdup(opts->route);
        c->given_hash = opts->prompt_hash;
    }
    c->submit_us = rt_now_us(rt);
    c->first_output_us = -1;
    c->retry_after_ms = -1;
    timer_init(&c->t_retry, CALL_TIMER_RETRY);
    timer_init(&c->t_hedge, CALL_TIMER_HEDGE);
    timer_init(&c->t_deadline, CALL_TIMER_DEADLINE);
    return c;
}

/* "req <x-request-id>", or "call <id>" for a call without one (the console's prompt pane). */
static const char *call_label(const struct call *c, char *out, size_t n)
{
    if (c->request_id && c->request_id[0])
        snprintf(out, n, "req %s", c->request_id);
    else
        snprintf(out, n, "call %llu", (unsigned long long)c->id);
    return out;
}

/* A request of at least this many messages and tools is freed on the ledger's writer thread
 * (ledger_post_free) instead of the router's: its free is a free() per string, 0.35-0.5 ms for
 * 1 MiB of 220-byte turns and 1.6-1.9 ms for 4 MiB, during which every stream the router relays
 * waits. What counts is the allocations, not the bytes: a 4 MiB prompt in one turn is one
 * string, freed in about 2 us. The hop (a node, a lock, a wake-up) costs the router thread
 * 5-10 us, what the free of ~60 turns costs; below 256 a plain free stays (at most ~30 us).
 * docs/bench.md, "What is left on the router thread, by prompt size". */
#define CALL_FREE_AWAY_ITEMS 256

static void request_free(void *arg)
{
    struct llm_request *req = arg;
    llm_request_cleanup(req);
    free(req);
}

/* Frees c's request, or hands a big one to the ledger's writer. Only a call that began (on the
 * router thread) hands it over: one that never did is freed where it is. */
static void call_free_request(struct call *c)
{
    bool big = c->cref && c->req->n_messages + c->req->n_tools >= CALL_FREE_AWAY_ITEMS;
    if (!big || !ledger_post_free(c->rt->ledger, request_free, c->req))
        request_free(c->req);
    c->req = NULL;
}

static void call_release(struct call *c)
{
    for (size_t i = 0; i < c->n_cands; i++) {
        target_put(c->cands[i].t);
        route_put(c->cands[i].r);
    }
    free(c->cands);
    if (c->last_target)
        target_put(c->last_target);
    if (c->cref)
        cfg_ref_put(c->cref);
    call_free_request(c);
    free(c->tag);
    free(c->request_id);
    free(c->client);
    free(c->pref_route);
    free(c->direct);
    spend_call_free(c);
    free(c);
}

static void fill_result(const struct call *c, struct router_result *r, enum llm_errclass err,
                        const char *msg)
{
    memset(r, 0, sizeof *r);
    r->call_id = c->id;
    r->err = err;
    r->upstream_status = c->last_status;
    r->upstream_error = c->last_info;
    str_copy(r->message, sizeof r->message, msg ? msg : "");
    const struct target_state *t = c->winner ? c->winner->t : c->last_target;
    r->target = t ? t->cfg->name : "";
    r->model = t ? t->cfg->model : "";
    r->route = c->route_name;
    r->attempts = c->attempts;
    r->hedges = c->hedges;
    r->committed = c->committed;
    r->no_target = c->no_target;
    r->unknown_model = c->unknown_model;
    r->retry_after_ms = c->retry_after_ms;
    r->usage = c->usage;
    r->finish = c->finish;
    r->cached = c->cached;
    r->throttled = c->throttled;
    spend_fill_costs(c, t, r); /* cost, baseline, usage_missing; target "cache" */
    int64_t now = rt_now_us(c->rt);
    r->latency_us = now - c->submit_us;
    r->ttft_us = c->first_output_us < 0 ? -1 : c->first_output_us - c->submit_us;
    r->overhead_us = c->overhead_us;
}

void call_free_unstarted(struct call *c)
{
    struct router_result r;
    fill_result(c, &r, LLM_ERR_CANCELLED, "switchboard is shutting down");
    struct llm_event ev = {.type = LLM_EV_ERROR,
                           .errclass = LLM_ERR_CANCELLED,
                           .text = r.message,
                           .len = strlen(r.message)};
    c->sink.on_event(c->sink.ctx, &ev);
    c->sink.on_done(c->sink.ctx, &r);
    call_release(c);
}

/* ---- bookkeeping ------------------------------------------------------------------------------
 */

/* The id index: ids are handed out in sequence, so id & (cap - 1) spreads them evenly. It
 * doubles once it holds as many calls as buckets: a lookup stays O(1) at any concurrency
 * (resumes and cancels come per event and per client at 1,000 streams). */
#define CALLS_BY_ID_MIN 64

static struct call **by_id_bucket(struct router *rt, uint64_t id)
{
    return &rt->by_id[id & (rt->by_id_cap - 1)];
}

static void by_id_grow(struct router *rt)
{
    size_t cap = rt->by_id_cap ? rt->by_id_cap * 2 : CALLS_BY_ID_MIN;
    struct call **old = rt->by_id;
    size_t old_cap = rt->by_id_cap;
    rt->by_id = xcalloc(cap, sizeof *rt->by_id);
    rt->by_id_cap = cap;
    for (size_t i = 0; i < old_cap; i++) {
        for (struct call *c = old[i], *next; c; c = next) {
            next = c->id_next;
            struct call **b = by_id_bucket(rt, c->id);
            c->id_next = *b;
            *b = c;
        }
    }
    free(old);
}

static struct call *call_by_id(struct router *rt, uint64_t id)
{
    struct call *c = rt->by_id_cap ? *by_id_bucket(rt, id) : NULL;
    while (c && c->id != id)
        c = c->id_next;
    return c;
}

static void call_link(struct router *rt, struct call *c)
{
    c->next = rt->calls;
    if (rt->calls)
        rt->calls->prev = c;
    rt->calls = c;
    rt->n_calls++;
    if (rt->n_calls > rt->by_id_cap)
        by_id_grow(rt);
    struct call **b = by_id_bucket(rt, c->id);
    c->id_next = *b;
    *b = c;
}

static void call_unlink_and_free(struct router *rt, struct call *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        rt->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    rt->n_calls--;
    for (struct call **p = by_id_bucket(rt, c->id); *p; p = &(*p)->id_next) {
        if (*p == c) {
            *p = c->id_next;
            break;
        }
    }
    spend_call_release(rt, c);
    call_release(c);
}

static void set_last_error(struct call *c, struct target_state *t, enum llm_errclass err,
                           long status, const char *msg)
{
    c->last_err = err;
    c->last_status = status;
    llm_error_info_init(&c->last_info);
    str_copy(c->last_msg, sizeof c->last_msg, msg ? msg : "");
    if (t) {
        t->refs++;
        if (c->last_target)
            target_put(c->last_target);
        c->last_target = t;
    }
}

static void cancel_attempts(struct router *rt, struct call *c, const struct attempt *keep)
{
    for (struct attempt *a = c->live; a; a = a->next) {
        if (a != keep && a->wk)
            wk_cancel(a->wk); /* its worker delivers nothing more */
        if (a != keep && !a->cancel_requested && !a->xfer_ended) {
            a->cancel_requested = true;
            rt->tops->cancel(rt->tr, a->xfer);
        }
    }
}

/* call_end's ERROR event and on_done (the sink is the router thread's again). The caller
 * frees c when nothing holds it any more. */
static void call_deliver_end(struct router *rt, struct call *c, enum llm_errclass err,
                             const char *msg)
{
    if (err != LLM_ERR_NONE && !c->error_sent && !c->finish_sent) {
        struct llm_event ev = {.type = LLM_EV_ERROR,
                               .errclass = err,
                               .status = c->last_status,
                               .text = msg,
                               .len = strlen(msg)};
        c->error_sent = true;
        c->sink.on_event(c->sink.ctx, &ev);
    }
    struct router_result r;
    fill_result(c, &r, err, msg);
    spend_call_finished(rt, c, &r);
    c->sink.on_done(c->sink.ctx, &r);
    router_answer_now(rt);
}

/* Ends the call once: ERROR event (unless err is NONE, or one or FINISH was sent), then on_done;
 * its ledger row goes out when it is freed. The struct stays until its last attempt reports done.
 * With an attempt on a worker the ERROR and on_done wait for its final summary. msg may be
 * NULL. */
void call_end(struct router *rt, struct call *c, enum llm_errclass err, const char *msg)
{
    if (c->done)
        return;
    c->done = true;
    msg = msg ? msg : "";
    timerq_disarm(&rt->timers, &c->t_retry);
    timerq_disarm(&rt->timers, &c->t_hedge);
    timerq_disarm(&rt->timers, &c->t_deadline);
    cancel_attempts(rt, c, NULL);
    if (c->wk_live > 0) {
        c->end_deferred = true;
        c->end_err = err;
        str_copy(c->end_msg, sizeof c->end_msg, msg);
        return;
    }
    call_deliver_end(rt, c, err, msg);
    if (!c->live && !c->busy)
        call_unlink_and_free(rt, c);
}

static void call_finish(struct router *rt, struct call *c, enum llm_errclass err, const char *fmt,
                        ...)
{
    char msg[256] = "";
    va_list ap;
    va_start(ap, fmt);
    if (fmt)
        vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    call_end(rt, c, err, msg);
}

/* ---- attempts ---------------------------------------------------------------------------------
 */

/* Losers that had waited at least hedge_after_ms with no first byte when another attempt
 * won are slow strikes against their targets: a hang behind a hedge must not stay hidden. */
static void mark_slow_losers(struct router *rt, struct call *c, const struct attempt *winner)
{
    int64_t now = rt_now_ms(rt);
    for (struct attempt *a = c->live; a; a = a->next) {
        if (a != winner && !a->cancel_requested && a->last_byte_ms < 0 && c->hedge_after_ms > 0 &&
            now - a->sent_ms >= c->hedge_after_ms)
            a->slow_strike = true;
    }
}

static void commit(struct router *rt, struct call *c, struct attempt *a)
{
    c->committed = true;
    c->winner = a;
    c->winner_hedge = a->is_hedge;
    c->first_output_us = rt_now_us(rt);
    a->commit_turn = rt->turn;
    timerq_disarm(&rt->timers, &c->t_hedge);
    timerq_disarm(&rt->timers, &c->t_retry);
    mark_slow_losers(rt, c, a);
    cancel_attempts(rt, c, a);
    if (c->sink.on_commit) {
        struct router_commit cm = {.call_id = c->id,
                                   .target = a->t->cfg->name,
                                   .model = a->t->cfg->model,
                                   .route = c->route_name,
                                   .attempt = c->attempts,
                                   .hedged = a->is_hedge,
                                   .upstream_headers = provider_call_client_headers(a->pc)};
        c->sink.on_commit(c->sink.ctx, &cm);
    }
    if (a->is_hedge) {
        char who[96];
        router_churn(rt, ROUTER_EV_HEDGE, a->t->cfg->name, "won", NULL, c, "hedge on %s won %s",
                     a->t->cfg->name, call_label(c, who, sizeof who));
    }
}

static int attempt_on_event(void *ctx, const struct llm_event *ev)
{
    struct attempt *a = ctx;
    if (a->wk)
        return wk_on_event(a->wk, ev); /* on its worker: a->wk is all it may read here */
    struct call *c = a->call;
    struct router *rt = c->rt;
    if (c->done || a->cancel_requested)
        return 1;
    if (ev->type == LLM_EV_ERROR) {
        if (c->committed && c->winner == a) {
            c->error_sent = true;
            spend_on_output(c, ev);
            c->sink.on_event(c->sink.ctx, ev);
        }
        return 0; /* before the commit: attempt_done decides */
    }
    if (!c->committed)
        commit(rt, c, a);
    if (ev->type == LLM_EV_USAGE)
        c->usage = ev->usage;
    if (ev->type == LLM_EV_FINISH) {
        c->finish = ev->finish;
        c->finish_sent = true; /* its terminal event: no ERROR may follow it */
    }
    spend_on_output(c, ev);
    int verdict = c->sink.on_event(c->sink.ctx, ev);
    if (verdict == ROUTER_SINK_PAUSE) {
        c->paused = true; /* attempt_data leaves the next bytes to the transport */
        return 0;
    }
    if (verdict != 0) {
        call_finish(rt, c, LLM_ERR_CANCELLED, "the client stopped reading");
        return 1;
    }
    return 0;
}

static void attempt_status(void *ctx, long status)
{
    struct attempt *a = ctx;
    struct router *rt = a->call->rt;
    a->last_byte_ms = rt_now_ms(rt);
    int64_t idle = a->t->cfg->stream_idle_timeout_ms;
    if (a->call->req->stream && idle > 0)
        timerq_arm(&rt->timers, &a->t_idle, a->last_byte_ms + idle);
    provider_call_on_status(a->pc, status);
}

static void attempt_header(void *ctx, const char *name, const char *value)
{
    struct attempt *a = ctx;
    if (a->wk)
        return; /* a trailer after the hand-off: pc is the worker's */
    provider_call_on_header(a->pc, name, value, rt_wall_ms(a->call->rt));
}

/* May the committed winner a go to a decode/encode worker now? Only from the first loop
 * turn after the commit's, and not once its answer is complete (FINISH or ERROR sent): an
 * answer that comes in one receive (libcurl hands it over chunk by chunk, in one turn) stays
 * inline, since two hand-offs would cost more than its decoding. */
static bool may_hand_off(const struct router *rt, const struct call *c, const struct attempt *a)
{
    return rt->workers && c->committed && c->winner == a && !c->done && !a->cancel_requested &&
           rt->turn != a->commit_turn && !c->finish_sent && !c->error_sent && c->sink.any_thread &&
           !c->rec && c->req->stream;
}

static int attempt_data(void *ctx, const char *bytes, size_t len)
{
    struct attempt *a = ctx;
    struct call *c = a->call;
    struct router *rt = c->rt;
    a->last_byte_ms = rt_now_ms(rt); /* the idle timer re-arms itself from this */
    if (c->paused && c->winner == a && !c->done) {
        a->xfer_paused = true; /* the transport keeps these bytes until call_resume */
        return TRANSPORT_DATA_PAUSE;
    }
    if (a->wk) {
        int rc = wk_push(a->wk, bytes, len);
        a->xfer_paused = a->xfer_paused || rc == TRANSPORT_DATA_PAUSE;
        a->wk_cap_paused = a->wk_cap_paused || rc == TRANSPORT_DATA_PAUSE;
        return rc;
    }
    int rc = provider_call_on_data(a->pc, bytes, len) != 0 ? 1 : 0;
    if (rc == 0 && may_hand_off(rt, c, a) && wk_handoff(rt->workers, a))
        c->wk_live++;
    return rc;
}

/* The stream idle timer: no byte since last_byte_ms for stream_idle_timeout_ms? */
static void attempt_idle_fired(struct router *rt, struct attempt *a)
{
    int64_t idle = a->t->cfg->stream_idle_timeout_ms, now = rt_now_ms(rt);
    if (a->cancel_requested)
        return;
    if (a->xfer_paused)
        a->last_byte_ms = now; /* the client is behind, not the upstream */
    if (a->last_byte_ms + idle > now) {
        timerq_arm(&rt->timers, &a->t_idle, a->last_byte_ms + idle);
        return;
    }
    a->stalled = true;
    a->cancel_requested = true;
    if (a->wk)
        wk_cancel(a->wk); /* as inline: the cancel's own ERROR does not reach the sink */
    rt->tops->cancel(rt->tr, a->xfer);
}

static void unlink_attempt(struct call *c, struct attempt *a)
{
    for (struct attempt **p = &c->live; *p; p = &(*p)->next) {
        if (*p == a) {
            *p = a->next;
            return;
        }
    }
}

/* After a failed, uncommitted attempt with nothing else running: what next? */
static void decide_next(struct router *rt, struct call *c, enum llm_errclass err, int64_t now)
{
    struct target_state *failed = c->last_target;
    switch (err) {
    case LLM_ERR_BAD_REQUEST:
    case LLM_ERR_CANCELLED:
    case LLM_ERR_NONE:
    case LLM_ERR_INTERNAL:
        call_finish(rt, c, err == LLM_ERR_NONE ? LLM_ERR_INTERNAL : err, "%s", c->last_msg);
        return;
    case LLM_ERR_CONTEXT_LENGTH:
        if (failed && failed->cfg->context_window > c->min_context)
            c->min_context = failed->cfg->context_window;
        if (c->min_context == 0)
            c->min_context = c->est_tokens;
        break;
    case LLM_ERR_AUTH:
    case LLM_ERR_NO_KEY:
    case LLM_ERR_DNS:
    case LLM_ERR_CONNECT:
    case LLM_ERR_TLS:
    case LLM_ERR_TIMEOUT:
    case LLM_ERR_RATE_LIMIT:
    case LLM_ERR_OVERLOADED:
    case LLM_ERR_SERVER:
    case LLM_ERR_BAD_RESPONSE:
    case LLM_ERR_TRUNCATED:
        break;
    }
    if (c->direct || c->attempts >= c->max_attempts || now >= c->deadline_ms) {
        call_finish(rt, c, err, "%s", c->last_msg);
        return;
    }
    /* Another target that can take it now: fall back at once. */
    for (int g = 0; g < c->n_groups; g++) {
        for (size_t i = 0; i < c->n_cands; i++) {
            if (c->cands[i].group == g && cands_usable(c, &c->cands[i], now, false)) {
                start_attempt(rt, c, false);
                return;
            }
        }
    }
    if (err == LLM_ERR_CONTEXT_LENGTH || err == LLM_ERR_AUTH) {
        call_finish(rt, c, err, "%s", c->last_msg); /* the same target would fail again */
        return;
    }
    int64_t delay = backoff_delay_ms(c->retries_same++, rt->cur->cfg->router.backoff_base_ms,
                                     rt->cur->cfg->router.backoff_cap_ms, &rt->rng);
    if (now + delay >= c->deadline_ms) {
        call_finish(rt, c, err, "%s", c->last_msg);
        return;
    }
    timerq_arm(&rt->timers, &c->t_retry, now + delay);
}

/* The winner a finished while its sink was paused. The call stays open (a client that
 * leaves now gets the call cancelled, recorded as such) until call_resume ends it; a is
 * about to be freed, so its target moves to last_target. */
static void hold_end(struct call *c, struct attempt *a)
{
    c->end_held = true;
    c->winner = NULL;
    set_last_error(c, a->t, LLM_ERR_NONE, provider_call_status(a->pc), NULL);
    if (c->sink.on_held)
        c->sink.on_held(c->sink.ctx);
}

static void attempt_done_now(struct attempt *a, const struct transport_result *res)
{
    struct call *c = a->call;
    struct router *rt = c->rt;
    int64_t t0 = rt_now_us(rt);
    char msg[256];
    enum llm_errclass out = attempt_outcome(a, res, msg, sizeof msg);
    int64_t now = rt_now_ms(rt);
    attempt_account(rt, a, res, out, msg, now);
    unlink_attempt(c, a);
    c->busy++; /* call_finish must not free c while we are here */
    if (c->done) {
        /* Already answered (deadline, client gone, another attempt won). */
    } else if (c->committed && c->winner == a) {
        if (out == LLM_ERR_TRUNCATED) {
            char who[96];
            router_churn(rt, ROUTER_EV_TRUNCATED, a->t->cfg->name, "truncated", NULL, c,
                         "stream from %s cut after output (%s): %s", a->t->cfg->name,
                         call_label(c, who, sizeof who), msg);
        }
        c->overhead_us += rt_now_us(rt) - t0;
        if (out == LLM_ERR_NONE && c->paused)
            hold_end(c, a); /* the client has not taken it all: call_resume ends the call */
        else if (out == LLM_ERR_NONE)
            call_finish(rt, c, LLM_ERR_NONE, NULL);
        else
            call_finish(rt, c, out, "%s", msg);
    } else if (!c->committed) {
        set_last_error(c, a->t, out, provider_call_status(a->pc), msg);
        c->last_info = *provider_call_error_info(a->pc);
        if (out == LLM_ERR_RATE_LIMIT) {
            const struct llm_ratelimit *rl = provider_call_ratelimit(a->pc);
            c->retry_after_ms = rl->retry_after_ms;
        }
        if (!c->live)
            decide_next(rt, c, out, now);
    }
    attempt_free(rt, a);
    c->busy--;
    if (c->done && !c->live)
        call_unlink_and_free(rt, c);
}

static void attempt_done(void *ctx, const struct transport_result *res)
{
    struct attempt *a = ctx;
    if (!a->wk) {
        attempt_done_now(a, res);
        return;
    }
    /* On a worker: the end goes after the queued bytes; call_wk_apply finishes it. */
    struct transport_result r = *res;
    if (a->wk_aborted && r.err == LLM_ERR_CANCELLED && !a->cancel_requested)
        r.err = LLM_ERR_BAD_RESPONSE; /* as the transport says for an abort by on_data */
    a->xfer_ended = true;
    wk_push_end(a->wk, &r);
}

/* The worker's final summary is in: the attempt is the router's again. */
static void wk_attempt_final(struct router *rt, struct attempt *a)
{
    struct call *c = a->call;
    struct transport_result res = *wk_end_result(a->wk);
    wk_release(a->wk);
    a->wk = NULL;
    c->wk_live--;
    if (c->end_deferred && c->wk_live == 0) {
        c->end_deferred = false;
        call_deliver_end(rt, c, c->end_err, c->end_msg); /* attempt_done_now frees c */
    }
    attempt_done_now(a, &res); /* provider_call_finish ran on the worker: it only reports */
}

void call_wk_apply(struct router *rt, struct attempt *a, const struct wk_summary *m)
{
    struct call *c = a->call;
    c->out_bytes += m->out_bytes;
    if (m->has_usage)
        c->usage = m->usage;
    if (m->has_finish) {
        c->finish = m->finish;
        c->finish_sent = true;
    }
    c->error_sent = c->error_sent || m->error_sent;
    for (int i = 0; i < m->pauses; i++) {
        if (c->wk_resume_credit > 0)
            c->wk_resume_credit--; /* its resume came first */
        else
            c->paused = true; /* attempt_data leaves the next bytes to the transport */
    }
    if (m->aborted && !a->wk_aborted && !a->xfer_ended) {
        a->wk_aborted = true;
        rt->tops->cancel(rt->tr, a->xfer);
    }
    if (m->stop)
        call_finish(rt, c, LLM_ERR_CANCELLED, "the client stopped reading"); /* deferred */
    if (m->final) {
        wk_attempt_final(rt, a); /* may free a and c */
        return;
    }
    if (a->wk_cap_paused && wk_below_cap(a->wk)) {
        a->wk_cap_paused = false;
        if (!c->paused && !a->cancel_requested && !a->xfer_ended) {
            a->xfer_paused = false;
            rt->tops->resume(rt->tr, a->xfer); /* may queue more bytes at once */
        }
    }
}

/* What launch() did with a candidate. */
enum launch_result {
    LAUNCH_STARTED,
    LAUNCH_REFUSED,     /* its adapter cannot encode the request (the client's fault) */
    LAUNCH_NOT_ALLOWED, /* its breaker said no */
    LAUNCH_FAILED,      /* the transport could not start it */
};

/* Reserves the breaker (a half-open trial) unless the operator forced it live or called it
 * directly. */
static bool reserve_breaker(struct router *rt, struct call *c, struct target_state *t, int64_t now,
                            bool *trial)
{
    *trial = false;
    if (t->ov.forced_live || c->direct)
        return true;
    struct breaker_transition tr;
    bool was_closed = t->breaker.state == BREAKER_CLOSED;
    bool ok = breaker_allow(&t->breaker, now, &tr);
    target_note_transition(rt, t, &tr);
    *trial = ok && !was_closed;
    return ok;
}

static struct attempt *attempt_new(struct router *rt, struct call *c, struct cand *k, bool is_hedge,
                                   int64_t now)
{
    struct attempt *a = xcalloc(1, sizeof *a);
    a->call = c;
    a->cand = k;
    a->t = k->t;
    k->t->refs++;
    a->is_hedge = is_hedge;
    a->start_us = rt_now_us(rt);
    a->sent_ms = now;
    a->last_byte_ms = -1;
    timer_init(&a->t_idle, ATTEMPT_TIMER_IDLE);
    struct llm_sink sink = {attempt_on_event, a};
    a->pc = provider_call_new(k->t->ops, c->req->stream, &sink, k->t->cfg->api_key);
    provider_call_set_sse_limit(a->pc, (size_t)k->t->cfg->sse_max_event_bytes);
    return a;
}

static void attempt_free(struct router *rt, struct attempt *a)
{
    timerq_disarm(&rt->timers, &a->t_idle);
    provider_call_free(a->pc);
    target_put(a->t);
    free(a);
}

static void note_launched(struct call *c, struct attempt *a, int64_t now)
{
    struct target_state *t = a->t;
    a->next = c->live;
    c->live = a;
    a->cand->tried = true;
    c->attempts++;
    stats_note_start(&t->stats, now);
    limits_note_sent(&t->limits, now, c->est_tokens);
    fleet_glue_rate_sent(t, c->est_tokens);
    if (a->is_hedge) {
        c->hedges++;
        stats_note_hedge(&t->stats);
    } else if (c->attempts > 1) {
        stats_note_retry(&t->stats);
    }
}

static enum launch_result launch(struct router *rt, struct call *c, struct cand *k, bool is_hedge,
                                 int64_t now)
{
    struct target_state *t = k->t;
    char msg[PROVIDER_MSG_MAX] = "";
    struct http_request http;
    http_request_init(&http);
    if (t->ops->encode(t->cfg, c->req, &http, msg, sizeof msg) != SB_OK) {
        http_request_cleanup(&http);
        k->refused = true;
        if (!c->refusal[0])
            str_copy(c->refusal, sizeof c->refusal, msg);
        return LAUNCH_REFUSED; /* before the breaker: no trial reserved, no strike */
    }
    bool trial;
    if (!reserve_breaker(rt, c, t, now, &trial)) {
        http_request_cleanup(&http);
        k->tried = true;
        return LAUNCH_NOT_ALLOWED;
    }
    struct attempt *a = attempt_new(rt, c, k, is_hedge, now);
    a->trial = trial;
    int64_t left = c->deadline_ms - now;
    struct transport_timeouts to = {
        .connect_ms = t->cfg->connect_timeout_ms,
        .first_byte_ms =
            t->cfg->first_byte_timeout_ms < left ? t->cfg->first_byte_timeout_ms : left,
        .total_ms = t->cfg->total_timeout_ms < left ? t->cfg->total_timeout_ms : left,
    };
    static const struct transport_callbacks cb = {attempt_status, attempt_header, attempt_data,
                                                  attempt_done};
    if (!c->committed && c->attempts == 0)
        c->overhead_us += rt_now_us(rt) - c->submit_us; /* queueing, routing, encoding */
    a->xfer = rt->tops->start(rt->tr, &http, &to, &cb, a, msg, sizeof msg);
    http_request_cleanup(&http);
    if (!a->xfer) {
        if (trial)
            breaker_release(&t->breaker); /* a reserved trial is always given back */
        attempt_free(rt, a);
        k->tried = true;
        set_last_error(c, t, LLM_ERR_INTERNAL, 0, msg);
        return LAUNCH_FAILED;
    }
    note_launched(c, a, now);
    return LAUNCH_STARTED;
}

/*
 * Nothing can be picked now for a call whose attempts (if any) ended in a 429 or left no
 * error. When every candidate is only held back for a while the client learns when to
 * come back: 429 with Retry-After when all are rate limited (or the call waits, when one
 * frees up within the route's queue_ms), else 503 with Retry-After = the earliest
 * half-open. Otherwise 503 naming why each target is out (or the attempts' 429).
 */
static void answer_nothing_can_serve(struct router *rt, struct call *c, int64_t now)
{
    bool all_limited;
    int64_t soonest = cands_soonest_free(c, now, &all_limited);
    int64_t wait = soonest < 0 ? -1 : soonest > now ? soonest - now : 1;
    if (wait > 0 && all_limited && wait <= c->queue_ms && now + wait < c->deadline_ms &&
        c->attempts < c->max_attempts) {
        c->picks_left++; /* waiting is not a spent try */
        timerq_arm(&rt->timers, &c->t_retry, now + wait);
        return;
    }
    char why[200];
    cands_explain_none(c, now, why, sizeof why);
    const char *name = c->direct ? c->direct : c->route_name;
    if (c->attempts == 0) {
        c->no_target = true;
        c->last_status = 0;
    }
    if (wait > 0)
        c->retry_after_ms = wait;
    if (c->last_err == LLM_ERR_RATE_LIMIT)
        call_finish(rt, c, LLM_ERR_RATE_LIMIT, "%s", c->last_msg);
    else if (wait > 0 && all_limited)
        call_finish(rt, c, LLM_ERR_RATE_LIMIT, "every target of %s is rate limited: %s", name, why);
    else
        call_finish(rt, c, LLM_ERR_SERVER, "no target available for %s: %s", name, why);
}

/* No candidate left to start now (the call may be finished). */
static void nothing_to_pick(struct router *rt, struct call *c, int64_t now)
{
    if (c->attempts == 0 && cands_all_refused(c)) {
        c->last_status = 0;
        call_finish(rt, c, LLM_ERR_BAD_REQUEST, "%s", c->refusal);
    } else if (c->last_err == LLM_ERR_NONE || c->last_err == LLM_ERR_RATE_LIMIT) {
        answer_nothing_can_serve(rt, c, now);
    } else {
        call_finish(rt, c, c->last_err, "%s", c->last_msg);
    }
}

static void note_fallback(struct router *rt, struct call *c, const struct target_state *prev,
                          const struct target_state *to)
{
    char who[96];
    if (prev && prev != to) /* filed under the target that failed */
        router_churn(rt, ROUTER_EV_FALLBACK, prev->cfg->name, llm_errclass_name(c->last_err),
                     to->cfg->name, c, "%s: %s failed (%s) -> fallback to %s",
                     call_label(c, who, sizeof who), prev->cfg->name,
                     llm_errclass_name(c->last_err), to->cfg->name);
}

/* Starts the next attempt. Returns false when none could start (the call may be finished).
 * Bounded: each turn spends one of the call's picks. */
static bool start_attempt(struct router *rt, struct call *c, bool is_hedge)
{
    int64_t now = rt_now_ms(rt);
    struct cand *k = NULL;
    while (c->attempts < c->max_attempts && (k = cands_pick(rt, c, now)) != NULL) {
        const struct target_state *prev = c->last_target;
        enum launch_result lr = launch(rt, c, k, is_hedge, now);
        if (lr == LAUNCH_STARTED) {
            if (!is_hedge)
                note_fallback(rt, c, prev, k->t);
            if (!is_hedge && c->hedge_after_ms > 0 && c->hedges == 0 && !c->direct)
                timerq_arm(&rt->timers, &c->t_hedge, now + c->hedge_after_ms);
            return true;
        }
        if (c->attempts >= c->max_attempts)
            break;
    }
    if (!is_hedge && !c->live && !c->done)
        nothing_to_pick(rt, c, now);
    return false;
}

/* ---- entry points from the loop ----------------------------------------------------------- */

static bool resolve(struct router *rt, struct call *c)
{
    const struct config *cfg = c->cref->cfg;
    if (c->direct) {
        struct target_state *t = router_find_target(rt, c->direct);
        if (!t) {
            set_last_error(c, NULL, LLM_ERR_BAD_REQUEST, 0, "");
            call_finish(rt, c, LLM_ERR_BAD_REQUEST, "no target named '%s'", c->direct);
            return false;
        }
        size_t cap = 0;
        cands_add(c, &cap, t, NULL, STRATEGY_PRIORITY, 0);
        c->n_groups = 1;
        c->max_attempts = 1;
        c->picks_left = 2;
        return true;
    }
    long rule = -1;
    long r = c->pref_route ? config_find_route(cfg, c->pref_route) : -1;
    if (r < 0)
        r = router_resolve_route(cfg, c->req->model, c->tag, c->req->user, c->est_tokens, &rule);
    if (r < 0) {
        struct buf names;
        buf_init(&names);
        for (size_t i = 0; i < cfg->n_routes; i++)
            buf_printf(&names, "%s%s", i ? ", " : "", cfg->routes[i].name);
        c->unknown_model = true;
        call_finish(rt, c, LLM_ERR_BAD_REQUEST, "model '%s' is not served here; available: %s",
                    c->req->model ? c->req->model : "", buf_str(&names));
        buf_cleanup(&names);
        return false;
    }
    const struct config_route *route = &cfg->routes[r];
    str_copy(c->route_name, sizeof c->route_name, route->name);
    c->max_attempts =
        (int)(route->max_attempts > 0 ? route->max_attempts : cfg->router.max_attempts);
    if (route->deadline_ms > 0)
        c->deadline_len_ms = route->deadline_ms;
    c->hedge_after_ms =
        route->hedge_after_ms >= 0 ? route->hedge_after_ms : cfg->router.hedge_after_ms;
    c->queue_ms = route->queue_ms;
    cands_build_route(rt, c, r);
    c->picks_left = c->max_attempts + (int)c->n_cands;
    return true;
}

void call_begin(struct router *rt, struct call *c)
{
    c->begin_us = rt_now_us(rt);
    c->cref = rt->cur;
    rt->cur->refs++;
    rt->gateway_calls++;
    call_link(rt, c);
    const struct config *cfg = c->cref->cfg;
    c->est_tokens = llm_request_estimate_tokens(c->req);
    c->deadline_len_ms = cfg->router.deadline_ms;
    c->max_attempts = (int)cfg->router.max_attempts;
    if (!resolve(rt, c))
        return;
    if (spend_admit(rt, c))
        return; /* refused by a budget or the guard, or answered from the cache */
    int64_t now = rt_now_ms(rt);
    c->deadline_ms = now + c->deadline_len_ms;
    timerq_arm(&rt->timers, &c->t_deadline, c->deadline_ms);
    start_attempt(rt, c, false);
}

void call_cancel(struct router *rt, uint64_t id, bool shutdown)
{
    struct call *c = call_by_id(rt, id);
    if (c && !c->done) {
        c->shutdown = shutdown;
        call_finish(rt, c, LLM_ERR_CANCELLED,
                    shutdown ? "switchboard is shutting down" : "cancelled: the client went away");
    }
}

void call_resume(struct router *rt, uint64_t id)
{
    struct call *c = call_by_id(rt, id);
    if (c && !c->done && !c->paused && c->wk_live > 0)
        c->wk_resume_credit++; /* it overtook its pause's summary */
    if (!c || c->done || !c->paused)
        return;
    c->paused = false;
    c->busy++; /* the resume may deliver events that end the call */
    for (struct attempt *a = c->live; a; a = a->next) {
        if (a->xfer_paused && !a->cancel_requested) {
            a->xfer_paused = false;
            a->wk_cap_paused = false;
            a->last_byte_ms = rt_now_ms(rt);
            rt->tops->resume(rt->tr, a->xfer);
        }
    }
    c->busy--;
    if (c->end_held && !c->done)
        call_finish(rt, c, LLM_ERR_NONE, NULL);
    else if (c->done && !c->live)
        call_unlink_and_free(rt, c);
}

void call_timer_fired(struct router *rt, struct timer *t)
{
    struct call *c;
    char who[96];
    switch ((enum call_timer_kind)t->kind) {
    case CALL_TIMER_RETRY:
        c = SB_CONTAINER_OF(t, struct call, t_retry);
        if (!c->done && !c->committed)
            start_attempt(rt, c, false);
        break;
    case CALL_TIMER_HEDGE:
        c = SB_CONTAINER_OF(t, struct call, t_hedge);
        if (!c->done && !c->committed && c->attempts < c->max_attempts &&
            start_attempt(rt, c, true))
            router_churn(rt, ROUTER_EV_HEDGE, "", "started", NULL, c,
                         "%s: no first byte after %lld ms, hedging", call_label(c, who, sizeof who),
                         (long long)c->hedge_after_ms);
        break;
    case CALL_TIMER_DEADLINE:
        c = SB_CONTAINER_OF(t, struct call, t_deadline);
        if (!c->done) {
            c->last_status = 0;
            call_finish(rt, c, LLM_ERR_TIMEOUT,
                        "deadline of %lld ms exceeded after %d attempt%s%s%s",
                        (long long)c->deadline_len_ms, c->attempts, c->attempts == 1 ? "" : "s",
                        c->last_msg[0] ? "; last error: " : "", c->last_msg);
        }
        break;
    case ATTEMPT_TIMER_IDLE:
        attempt_idle_fired(rt, SB_CONTAINER_OF(t, struct attempt, t_idle));
        break;
    case TARGET_TIMER_PROBE:
        break;
    }
}

void call_abort_all(struct router *rt)
{
    struct call *c = rt->calls;
    while (c) {
        struct call *next = c->next;
        if (!c->done) {
            c->shutdown = true;
            call_finish(rt, c, LLM_ERR_CANCELLED, "switchboard is shutting down");
        }
        c = next;
    }
}
