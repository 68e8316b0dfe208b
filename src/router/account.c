/*
 * account.c - what a finished attempt means for its target (router thread only): the outcome
 * as the router sees it (stalls and slow strikes included), then limits and cooldowns, the
 * breaker, the latency score and the statistics.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* What an attempt ended with, from the router's view (slow strikes and stalls included). */
enum llm_errclass attempt_outcome(struct attempt *a, const struct transport_result *res, char *msg,
                                  size_t msglen)
{
    enum llm_errclass out = provider_call_finish(a->pc, res->err, res->message);
    str_copy(msg, msglen, provider_call_error(a->pc));
    if (a->stalled) {
        snprintf(msg, msglen, "stream stalled: no byte from %s for %lld ms", a->t->cfg->name,
                 (long long)a->t->cfg->stream_idle_timeout_ms);
        return LLM_ERR_TRUNCATED;
    }
    if (a->slow_strike && out != LLM_ERR_NONE) {
        snprintf(msg, msglen, "slow: no first byte from %s in %lld ms (a hedge won)",
                 a->t->cfg->name, (long long)(res->total_us / 1000));
        return LLM_ERR_TIMEOUT;
    }
    if (a->cancel_requested && out != LLM_ERR_NONE)
        return LLM_ERR_CANCELLED;
    return out;
}

/* The breaker's view of an attempt's outcome. */
static void account_breaker(struct router *rt, struct attempt *a, enum llm_errclass out,
                            int64_t now)
{
    struct target_state *t = a->t;
    struct breaker_transition tr;
    if (out == LLM_ERR_NONE)
        breaker_note_success(&t->breaker, now, &tr);
    else if (a->slow_strike && out == LLM_ERR_TIMEOUT)
        breaker_note_slow(&t->breaker, now, now - a->sent_ms, &tr);
    else
        breaker_note_failure(&t->breaker, now, out, &tr);
    target_note_transition(rt, t, &tr);
}

/* A 429: the target rests until its Retry-After, or the configured default. */
static void account_rate_limit(struct router *rt, struct attempt *a, int64_t now)
{
    struct target_state *t = a->t;
    if (!limits_is_cooling(&t->limits, now))
        limits_cooldown_until(&t->limits, now + a->call->cref->cfg->router.rate_limit_cooldown_ms,
                              "429");
    char why[128];
    limits_blocked_reason(&t->limits, now, rt_wall_ms(rt), 0, why, sizeof why);
    char who[96] = "";
    if (a->call->request_id && a->call->request_id[0])
        snprintf(who, sizeof who, " (req %s)", a->call->request_id);
    router_churn(rt, ROUTER_EV_RATE_LIMIT, t->cfg->name, "429", NULL, a->call, "429 from %s%s: %s",
                 t->cfg->name, who, why);
    fleet_glue_cooldown(rt, t, now); /* a Retry-After cools the target fleet-wide */
}

/* Target-side accounting for a finished attempt: limits, breaker, latency, stats. */
void attempt_account(struct router *rt, struct attempt *a, const struct transport_result *res,
                     enum llm_errclass out, const char *msg, int64_t now)
{
    struct target_state *t = a->t;
    const struct llm_ratelimit *rl = provider_call_ratelimit(a->pc);
    limits_note_ratelimit(&t->limits, now, rl);
    if (out == LLM_ERR_RATE_LIMIT)
        account_rate_limit(rt, a, now);
    const struct llm_usage *u = provider_call_usage(a->pc);
    if (u->present)
        limits_note_actual_tokens(&t->limits, now, a->sent_ms, a->call->est_tokens,
                                  u->input_tokens + u->output_tokens);
    spend_attempt_cost(a->call, a, u);
    account_breaker(rt, a, out, now);
    bool stream = a->call->req->stream;
    if (out == LLM_ERR_NONE) {
        int64_t lat = stream && res->first_byte_us >= 0 ? res->first_byte_us : res->total_us;
        ewma_observe(&t->ewma, now, (double)lat / 1000.0, ROUTER_EWMA_TAU_MS);
    } else if (breaker_counts_failure(out)) {
        /* A failure is as bad as the slowest answer we'd accept: push the score up. */
        ewma_observe(&t->ewma, now, (double)t->cfg->first_byte_timeout_ms, ROUTER_EWMA_TAU_MS);
    }
    struct stats_result sr = {
        .errclass = out,
        .latency_us = res->total_us,
        .ttft_us = res->first_byte_us,
        .usage = *u,
        .cost_usd = t->cfg->has_price ? llm_cost_usd(&t->cfg->price, u) : 0,
        .error_text = out == LLM_ERR_NONE ? NULL : msg,
        .client = a->call->client,
        .request_id = a->call->request_id,
    };
    stats_note_finish(&t->stats, now, &sr);
    fleet_glue_rate_done(t);
}
