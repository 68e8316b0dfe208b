/*
 * stats.h - per-target call statistics for the console, /metrics and `route --explain`.
 *
 * Counters since start (calls, outcomes by error class, tokens, spend), latency and TTFT
 * histograms over the last 1 and 5 minutes (hist.h's whist: 12 x 5 s and 12 x 25 s) and since
 * start (for Prometheus), and a ring of per-second counters for req/s, the sparkline and the
 * 1-minute error %.
 *
 * What counts where:
 *  - latency is recorded for successful calls only (a fast connect error is not a fast
 *    answer); TTFT whenever a first byte arrived (ttft_us >= 0), success or not;
 *  - error % = failed / finished over the last 60 s, where CANCELLED calls (hedge losers,
 *    clients that left) count as neither;
 *  - req/s and the series count call starts per whole second: the current, partial second
 *    is left out so the last bar does not always dip.
 *
 * struct stats is plain data (~180 KB, mostly histogram slots): it can be memcpy'd, but the
 * snapshot should carry a struct stats_summary (~1.5 KB) built by stats_summarize.
 *
 * Threads: owned by the router thread; not thread-safe.
 */
#ifndef SWITCHBOARD_STATS_H
#define SWITCHBOARD_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "switchboard/hist.h"
#include "switchboard/llm.h"

#define STATS_RATE_SECONDS 60
#define STATS_ERROR_LEN    200
#define STATS_RECENT       8 /* finished calls kept for the console's detail view */

/* One call's outcome, as the router saw it. */
struct stats_result {
    enum llm_errclass errclass; /* LLM_ERR_NONE: success */
    int64_t latency_us;         /* start to last byte; < 0 = not measured */
    int64_t ttft_us;            /* start to first byte; < 0 = no byte arrived */
    struct llm_usage usage;     /* present == false counts in usage_missing */
    double cost_usd;
    const char *error_text; /* sanitised provider/transport message; copied; may be NULL */
    const char *client;     /* client key's name; copied (cut to fit); may be NULL */
    const char *request_id; /* the call's x-request-id; copied; may be NULL */
};

struct stats_second {
    int64_t epoch; /* now_ms / 1000; -1 = unused */
    uint32_t started;
    uint32_t finished; /* CANCELLED excluded */
    uint32_t failed;   /* CANCELLED excluded */
};

/* One finished call (attempt) on this target, for the console's detail view. */
struct stats_call {
    int64_t done_ms; /* monotonic, when it finished */
    enum llm_errclass errclass;
    int64_t latency_us;         /* < 0 not measured */
    int64_t ttft_us;            /* < 0 no byte arrived */
    long tokens_in, tokens_out; /* -1 when the provider reported no usage */
    double cost_usd;
    char error[48];      /* start of the sanitised error text; "" on success */
    char client[24];     /* client key's name (cut), "" without keys */
    char request_id[65]; /* the call's x-request-id, "" for calls without one */
};

struct stats {
    uint64_t calls; /* started */
    uint64_t successes;
    uint64_t errors[LLM_ERRCLASS_COUNT]; /* finished calls by class; [LLM_ERR_NONE] stays 0 */
    uint64_t retries;                    /* attempts that were retries or fallbacks */
    uint64_t hedges;                     /* hedged attempts sent here */
    uint64_t truncated;                  /* streams cut before their end (TRUNCATED) */
    long in_flight;
    uint64_t tokens_in;
    uint64_t tokens_out;
    uint64_t tokens_cached;
    uint64_t usage_missing; /* successes whose provider reported no usage */
    double spend_usd;
    struct whist latency_1m, latency_5m;
    struct whist ttft_1m, ttft_5m;
    struct hist latency_all, ttft_all; /* since start, for /metrics */
    struct stats_second seconds[STATS_RATE_SECONDS + 1];
    char last_error[STATS_ERROR_LEN]; /* "" when none */
    enum llm_errclass last_errclass;
    int64_t last_error_ms;                  /* monotonic; -1 when none */
    struct stats_call recent[STATS_RECENT]; /* ring */
    size_t recent_next, recent_n;
};

/* Small copy for the snapshot. Percentiles in ms, 0 when there is no data. */
struct stats_summary {
    uint64_t calls, successes, failures; /* failures: finished non-successes, CANCELLED out */
    uint64_t errors[LLM_ERRCLASS_COUNT];
    uint64_t retries, hedges, truncated, usage_missing;
    long in_flight;
    uint64_t tokens_in, tokens_out, tokens_cached;
    double spend_usd;
    double latency_1m[3], latency_5m[3]; /* p50, p95, p99 */
    double ttft_1m[3], ttft_5m[3];
    double req_per_s;                       /* over the last 60 whole seconds */
    double error_pct_1m;                    /* 0..100 */
    double error_pct_10s;                   /* 0..100, over the last 10 s (current second in) */
    uint64_t finished_10s;                  /* finished calls behind error_pct_10s */
    double rate_series[STATS_RATE_SECONDS]; /* req/s, oldest first; [59] = last whole second */
    uint64_t latency_prom[HIST_PROM_COUNT]; /* cumulative, since start */
    uint64_t latency_count;
    uint64_t latency_sum_us;
    uint64_t ttft_prom[HIST_PROM_COUNT];
    uint64_t ttft_count;
    uint64_t ttft_sum_us;
    char last_error[STATS_ERROR_LEN];
    enum llm_errclass last_errclass;
    int64_t last_error_ms;
    struct stats_call recent[STATS_RECENT]; /* newest first */
    size_t n_recent;
    int64_t now_ms; /* the now_ms it was built at: a recent call's age is now_ms - done_ms */
};

void stats_init(struct stats *s);

/* A call (or retry / hedge attempt) started on this target. */
void stats_note_start(struct stats *s, int64_t now_ms);
/* It finished; r must not be NULL. Every start must be matched by one finish. */
void stats_note_finish(struct stats *s, int64_t now_ms, const struct stats_result *r);
void stats_note_retry(struct stats *s);
void stats_note_hedge(struct stats *s);

/* Calls started per second for the n whole seconds before now_ms, oldest first
 * (n is clamped to STATS_RATE_SECONDS; the rest of out is left alone). */
void stats_rate_series(const struct stats *s, int64_t now_ms, double *out, size_t n);
/* Mean req/s over the last STATS_RATE_SECONDS whole seconds. */
double stats_req_per_s(const struct stats *s, int64_t now_ms);
/* Failed / finished over the last 60 s (the current second included), in percent; 0 with
 * no finished call. */
double stats_error_pct(const struct stats *s, int64_t now_ms);
/* The same over the last `seconds` (1..STATS_RATE_SECONDS); *finished (may be NULL) gets the
 * number of finished calls it is over. */
double stats_error_pct_over(const struct stats *s, int64_t now_ms, int seconds, uint64_t *finished);

/* Fills out (caller's storage) with everything the console and /metrics need. */
void stats_summarize(const struct stats *s, int64_t now_ms, struct stats_summary *out);

#endif
