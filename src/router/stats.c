/*
 * stats.c - per-target counters, windowed latency histograms and the per-second ring
 * (see stats.h for what counts where).
 *
 * Threads: no state of its own; each struct stats belongs to the router thread.
 */
#include <string.h>

#include "switchboard/stats.h"

#define SECONDS_SLOTS (STATS_RATE_SECONDS + 1) /* the current second and 60 whole ones */

static const double summary_qs[3] = {0.50, 0.95, 0.99};

void stats_init(struct stats *s)
{
    memset(s, 0, sizeof(*s));
    whist_init(&s->latency_1m, 5000, 12);
    whist_init(&s->latency_5m, 25000, 12);
    whist_init(&s->ttft_1m, 5000, 12);
    whist_init(&s->ttft_5m, 25000, 12);
    hist_init(&s->latency_all);
    hist_init(&s->ttft_all);
    for (size_t i = 0; i < SECONDS_SLOTS; i++)
        s->seconds[i].epoch = -1;
    s->last_errclass = LLM_ERR_NONE;
    s->last_error_ms = -1;
}

/* ---- Per-second ring --------------------------------------------------------------------- */

static int64_t second_of(int64_t now_ms)
{
    int64_t q = now_ms / 1000;
    return (now_ms % 1000 != 0 && now_ms < 0) ? q - 1 : q;
}

static size_t second_index(int64_t epoch)
{
    return (size_t)(((epoch % SECONDS_SLOTS) + SECONDS_SLOTS) % SECONDS_SLOTS);
}

static struct stats_second *second_slot(struct stats *s, int64_t now_ms)
{
    int64_t epoch = second_of(now_ms);
    struct stats_second *sec = &s->seconds[second_index(epoch)];
    if (sec->epoch < epoch)
        *sec = (struct stats_second){.epoch = epoch};
    return sec;
}

/* The slot of second `epoch` if it holds that second, else NULL (nothing happened then). */
static const struct stats_second *second_peek(const struct stats *s, int64_t epoch)
{
    const struct stats_second *sec = &s->seconds[second_index(epoch)];
    return sec->epoch == epoch ? sec : NULL;
}

void stats_rate_series(const struct stats *s, int64_t now_ms, double *out, size_t n)
{
    int64_t cur = second_of(now_ms);
    if (n > STATS_RATE_SECONDS)
        n = STATS_RATE_SECONDS;
    for (size_t i = 0; i < n; i++) {
        const struct stats_second *sec = second_peek(s, cur - (int64_t)(n - i));
        out[i] = sec ? (double)sec->started : 0;
    }
}

double stats_req_per_s(const struct stats *s, int64_t now_ms)
{
    double series[STATS_RATE_SECONDS], sum = 0;
    stats_rate_series(s, now_ms, series, STATS_RATE_SECONDS);
    for (size_t i = 0; i < STATS_RATE_SECONDS; i++)
        sum += series[i];
    return sum / STATS_RATE_SECONDS;
}

double stats_error_pct_over(const struct stats *s, int64_t now_ms, int seconds,
                            uint64_t *finished_out)
{
    int64_t cur = second_of(now_ms);
    uint64_t finished = 0, failed = 0;
    if (seconds < 1)
        seconds = 1;
    if (seconds > STATS_RATE_SECONDS)
        seconds = STATS_RATE_SECONDS;
    for (int64_t e = cur - seconds + 1; e <= cur; e++) {
        const struct stats_second *sec = second_peek(s, e);
        if (sec) {
            finished += sec->finished;
            failed += sec->failed;
        }
    }
    if (finished_out)
        *finished_out = finished;
    return finished ? 100.0 * (double)failed / (double)finished : 0;
}

double stats_error_pct(const struct stats *s, int64_t now_ms)
{
    return stats_error_pct_over(s, now_ms, STATS_RATE_SECONDS, NULL);
}

/* ---- Recording --------------------------------------------------------------------------- */

void stats_note_start(struct stats *s, int64_t now_ms)
{
    s->calls++;
    s->in_flight++;
    second_slot(s, now_ms)->started++;
}

void stats_note_retry(struct stats *s)
{
    s->retries++;
}

void stats_note_hedge(struct stats *s)
{
    s->hedges++;
}

/* Copies text, blanking control characters and cutting on a UTF-8 boundary. */
static void copy_error_text(char *dst, size_t size, const char *text)
{
    if (!text)
        text = "";
    size_t n = strlen(text);
    if (n > size - 1)
        n = size - 1;
    n = utf8_valid_prefix(text, n);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        dst[i] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    dst[n] = '\0';
}

static void note_usage(struct stats *s, const struct llm_usage *u)
{
    if (!u->present) {
        s->usage_missing++;
        return;
    }
    s->tokens_in += u->input_tokens > 0 ? (uint64_t)u->input_tokens : 0;
    s->tokens_out += u->output_tokens > 0 ? (uint64_t)u->output_tokens : 0;
    s->tokens_cached += u->cached_tokens > 0 ? (uint64_t)u->cached_tokens : 0;
}

static void note_error(struct stats *s, int64_t now_ms, const struct stats_result *r)
{
    s->errors[r->errclass]++;
    if (r->errclass == LLM_ERR_TRUNCATED)
        s->truncated++;
    if (r->errclass == LLM_ERR_CANCELLED)
        return; /* not a target problem: keeps the last real error visible */
    s->last_errclass = r->errclass;
    s->last_error_ms = now_ms;
    copy_error_text(s->last_error, sizeof(s->last_error), r->error_text);
}

static void note_recent(struct stats *s, int64_t now_ms, const struct stats_result *r)
{
    struct stats_call *c = &s->recent[s->recent_next];
    s->recent_next = (s->recent_next + 1) % STATS_RECENT;
    if (s->recent_n < STATS_RECENT)
        s->recent_n++;
    c->done_ms = now_ms;
    c->errclass = r->errclass;
    c->latency_us = r->latency_us;
    c->ttft_us = r->ttft_us;
    c->tokens_in = r->usage.present ? r->usage.input_tokens : -1;
    c->tokens_out = r->usage.present ? r->usage.output_tokens : -1;
    c->cost_usd = r->cost_usd;
    str_copy(c->client, sizeof c->client, r->client ? r->client : "");
    str_copy(c->request_id, sizeof c->request_id, r->request_id ? r->request_id : "");
    copy_error_text(c->error, sizeof(c->error), r->errclass == LLM_ERR_NONE ? NULL : r->error_text);
}

void stats_note_finish(struct stats *s, int64_t now_ms, const struct stats_result *r)
{
    note_recent(s, now_ms, r);
    bool ok = r->errclass == LLM_ERR_NONE;
    if (s->in_flight > 0)
        s->in_flight--;
    if (r->errclass != LLM_ERR_CANCELLED) {
        struct stats_second *sec = second_slot(s, now_ms);
        sec->finished++;
        sec->failed += !ok;
    }
    if (ok) {
        s->successes++;
        note_usage(s, &r->usage);
    } else if ((size_t)r->errclass < LLM_ERRCLASS_COUNT) {
        note_error(s, now_ms, r);
    }
    s->spend_usd += r->cost_usd > 0 ? r->cost_usd : 0; /* a failed call may still be billed */
    if (ok && r->latency_us >= 0) {
        whist_record(&s->latency_1m, now_ms, r->latency_us);
        whist_record(&s->latency_5m, now_ms, r->latency_us);
        hist_record(&s->latency_all, r->latency_us);
    }
    if (r->ttft_us >= 0) {
        whist_record(&s->ttft_1m, now_ms, r->ttft_us);
        whist_record(&s->ttft_5m, now_ms, r->ttft_us);
        hist_record(&s->ttft_all, r->ttft_us);
    }
}

/* ---- Summary ----------------------------------------------------------------------------- */

static void window_percentiles_ms(const struct whist *w, int64_t now_ms, double out[3])
{
    whist_quantiles(w, now_ms, summary_qs, out, 3);
    for (size_t i = 0; i < 3; i++)
        out[i] /= 1000.0;
}

static void summarize_histograms(const struct stats *s, int64_t now_ms, struct stats_summary *out)
{
    window_percentiles_ms(&s->latency_1m, now_ms, out->latency_1m);
    window_percentiles_ms(&s->latency_5m, now_ms, out->latency_5m);
    window_percentiles_ms(&s->ttft_1m, now_ms, out->ttft_1m);
    window_percentiles_ms(&s->ttft_5m, now_ms, out->ttft_5m);
    hist_prom_cumulative(&s->latency_all, out->latency_prom);
    out->latency_count = hist_count(&s->latency_all);
    out->latency_sum_us = hist_sum_us(&s->latency_all);
    hist_prom_cumulative(&s->ttft_all, out->ttft_prom);
    out->ttft_count = hist_count(&s->ttft_all);
    out->ttft_sum_us = hist_sum_us(&s->ttft_all);
}

void stats_summarize(const struct stats *s, int64_t now_ms, struct stats_summary *out)
{
    memset(out, 0, sizeof(*out));
    out->calls = s->calls;
    out->successes = s->successes;
    memcpy(out->errors, s->errors, sizeof(out->errors));
    for (size_t i = 0; i < LLM_ERRCLASS_COUNT; i++)
        if (i != LLM_ERR_CANCELLED)
            out->failures += s->errors[i];
    out->retries = s->retries;
    out->hedges = s->hedges;
    out->truncated = s->truncated;
    out->usage_missing = s->usage_missing;
    out->in_flight = s->in_flight;
    out->tokens_in = s->tokens_in;
    out->tokens_out = s->tokens_out;
    out->tokens_cached = s->tokens_cached;
    out->spend_usd = s->spend_usd;
    summarize_histograms(s, now_ms, out);
    out->req_per_s = stats_req_per_s(s, now_ms);
    out->error_pct_1m = stats_error_pct(s, now_ms);
    out->error_pct_10s = stats_error_pct_over(s, now_ms, 10, &out->finished_10s);
    stats_rate_series(s, now_ms, out->rate_series, STATS_RATE_SECONDS);
    memcpy(out->last_error, s->last_error, sizeof(out->last_error));
    out->last_errclass = s->last_errclass;
    out->last_error_ms = s->last_error_ms;
    for (size_t i = 0; i < s->recent_n; i++)
        out->recent[i] = s->recent[(s->recent_next + STATS_RECENT - 1 - i) % STATS_RECENT];
    out->n_recent = s->recent_n;
    out->now_ms = now_ms;
}
