/*
 * chat.c - POST /v1/chat/completions: parse the client's body, submit the call to the
 * router, and answer with what the call's sink receives.
 *
 * The body is parsed where the handler runs, except on the router's loop (gateway.threads 0)
 * when it is over GW_LOOP_PARSE_MAX: then the offload pool parses it (chat_parse_job) and the
 * handler, called again once the pool resumed the connection, goes on with the result as it
 * would after its own parse (the same admission, errors, headers and ledger row). Where the
 * body is parsed its prompt is hashed too (cache_prompt_hash, after the x-switchboard-user
 * override) and handed to the router (router_call_opts.prompt_hash), which would otherwise
 * hash it on its thread: 6 ms at 4 MiB (docs/bench.md, session 9).
 *
 * Non-streaming: submit, park (suspend), and on on_done answer the whole chat.completion
 * (or the OpenAI-style error) with x-switchboard-target/-attempts/-cost-usd/-overhead-us.
 * An OpenAI-wire provider's body that its scanner vouched for comes with the FINISH event
 * (ev->chunk) and goes out as it came, our id, created and model spliced in (c->pass);
 * otherwise the collected answer is encoded.
 * Streaming: submit, park; on on_commit (target known) the handler queues a text/event-stream
 * response whose content reader hands out what the sink encoded; a failure before any
 * output still gets a JSON error with its status, since no header has been sent yet. A
 * stream already over (and small) when its response is created goes out as one response
 * with its length instead (stream_take_whole); its held end waits for MHD's report that the
 * response was sent (gw_chat_sent_locked, from gw_on_completed).
 *
 * Threads: the handler and content reader run on an MHD thread, the sink (chat_on_*) on the
 * router thread, except that a committed stream's chat_on_event may run on a decode/encode
 * worker (the sink is any_thread: router.h), one thread at a time. The sink encodes into c->scratch
 * (the sink's thread only) with no lock held, then appends to c->out under c->lock and wakes the
 * connection (server.c explains the suspend/resume protocol; the wake-ups of commits and bytes are
 * batched per router turn and per worker batch, gw_resume). Non-streaming events are collected
 * into c->resp by the router thread alone; MHD reads it only after seeing c->done under the lock.
 *
 * Slow readers. A stream's bytes wait in c->out until the client takes them. Once a
 * connection holds GW_OUT_PAUSE bytes, or all connections together GW_OUT_TOTAL, the sink
 * answers ROUTER_SINK_PAUSE: the router stops reading that call's upstream (libcurl's pause)
 * instead of buffering more, and so does it at the stream's end while bytes are still
 * waiting, so the call is not over (nor a 200 in the ledger) before the client has its
 * answer. The content reader posts router_resume once the client drained the connection
 * (to GW_OUT_RESUME, or to nothing); router_resume_lazy when the upstream has ended meanwhile
 * (on_held: only the call's end waits, so the router thread is not woken for it); for a stream
 * sent in one write, gw_on_completed does the same once MHD sent it. A client that
 * stops reading is closed by libmicrohttpd's idle timeout; its call is then cancelled (499 in the
 * ledger) and counted as stalled.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "switchboard/cache.h"
#include "switchboard/log.h"
#include "switchboard/provider.h"

/* Bytes encoded for a client and not yet taken by it. Pausing keeps a connection near
 * GW_OUT_PAUSE; only what cannot pause (a cached answer replayed at once) comes near this
 * hard cap, past which the stream ends with an error chunk and the call is cancelled. */
#define GW_MAX_PENDING ((size_t)8 * 1024 * 1024)
#define GW_OUT_PAUSE   ((size_t)64 * 1024)          /* one connection: pause the upstream */
#define GW_OUT_RESUME  ((size_t)16 * 1024)          /* ...and resume at or below this */
#define GW_OUT_TOTAL   ((uint64_t)32 * 1024 * 1024) /* all connections together */
/* Compact c->out once this much of its front has been sent. */
#define GW_COMPACT_AT ((size_t)64 * 1024)
/* The stream response's own block, which libmicrohttpd 0.9.75 callocs (so it is resident) with
 * the response. A chunked (HTTP/1.1) answer never uses it: the reader writes into the
 * connection's pool. Only an HTTP/1.0 client's answer goes through it, at most this much per
 * read; SSE events are small. 4 KB cost 4 MB at 1,000 streams (docs/bench.md, session 8). */
#define GW_STREAM_BLOCK ((size_t)512)
/* A stream that is over before its response is created (the whole answer came in one piece,
 * as at c=1 with a fast upstream) goes out as one response with its length: headers and body
 * in one write, one client wake-up, no content reader. Only up to this size: what it takes
 * out of the GW_OUT_* counts at once stays near what the chunked reader takes per call. */
#define GW_ONE_WRITE_MAX GW_OUT_RESUME
/* On the router's loop (gateway.threads 0), a body over this is parsed on the offload pool,
 * not on the loop, where its parse would hold every stream of the process. openai_request_parse
 * of a chat history costs about 4 us per KiB on the 2-core development machine (measured
 * 2026-12-07, load 5.7: 16 KiB 62 us, 64 KiB 0.29 ms, 256 KiB 1.4 ms, 1 MiB 8.3 ms, 4 MiB
 * 42 ms). The pool's round trip (a post, a resume, one more pass of the handler) costs tens of
 * us: worth it from here, where the parse is ten times that and still under the loop's turn
 * jitter; below, the hop would cost about what it saves. */
#define GW_LOOP_PARSE_MAX ((size_t)64 * 1024)

/* ---- the sink (router thread) ------------------------------------------------------------- */

/* Appends c->scratch to c->out, counted in the gateway's answer bytes (caller holds c->lock). */
static void out_append_locked(struct gw_conn *c)
{
    buf_append(&c->out, c->scratch.data, c->scratch.len);
    atomic_fetch_add(&c->gw->answer_bytes, (uint64_t)c->scratch.len);
}

/* Should the upstream pause after this push? (caller holds c->lock) */
static bool out_full_locked(struct gw_conn *c)
{
    size_t pending = c->out.len - c->out_off;
    if (pending >= GW_OUT_PAUSE || atomic_load(&c->gw->answer_bytes) >= GW_OUT_TOTAL)
        return true;
    return pending > 0 && gw_sse_is_over(&c->sse); /* the end waits for the client */
}

static void note_pause(struct gateway *gw)
{
    pthread_mutex_lock(&gw->lock);
    gw->stats.upstream_pauses++;
    pthread_mutex_unlock(&gw->lock);
}

/* Appends c->scratch to c->out and wakes the connection. Returns 0, ROUTER_SINK_PAUSE when
 * the client is behind, or 1 when the call should stop: the client is gone or too far
 * behind. */
static int chat_push(struct gw_conn *c)
{
    pthread_mutex_lock(&c->lock);
    bool gone = c->client_gone || !c->mhd_ref;
    bool fits = c->out.len - c->out_off + c->scratch.len <= GW_MAX_PENDING;
    bool resume = false, pause = false;
    if (!gone && fits) {
        out_append_locked(c);
        if (gw_sse_is_over(&c->sse))
            c->stream_over = true;
        pause = !c->upstream_paused && out_full_locked(c);
        c->upstream_paused = c->upstream_paused || pause;
        resume = gw_wake_locked(c);
    }
    pthread_mutex_unlock(&c->lock);
    if (resume)
        gw_resume(c->mc);
    if (pause)
        note_pause(c->gw);
    if (gone)
        return 1;
    if (fits)
        return pause ? ROUTER_SINK_PAUSE : 0;
    static const char slow[] = "the client is not reading the stream fast enough";
    buf_reset(&c->scratch);
    gw_sse_fail(&c->sse, slow, sizeof slow - 1, &c->scratch);
    pthread_mutex_lock(&c->lock);
    out_append_locked(c);
    c->stream_over = true;
    resume = gw_wake_locked(c);
    pthread_mutex_unlock(&c->lock);
    if (resume)
        gw_resume(c->mc);
    return 1;
}

static void chat_on_commit(void *ctx, const struct router_commit *cm)
{
    struct gw_conn *c = ctx;
    if (c->stream) {
        buf_reset(&c->scratch);
        gw_sse_begin(&c->sse, &c->scratch);
    }
    pthread_mutex_lock(&c->lock);
    str_copy(c->commit_target, sizeof c->commit_target, cm->target ? cm->target : "");
    str_copy(c->commit_headers, sizeof c->commit_headers,
             cm->upstream_headers ? cm->upstream_headers : "");
    c->commit_attempt = cm->attempt;
    c->commit_cached = cm->cached;
    c->committed = true;
    bool resume = false;
    if (c->stream) {
        out_append_locked(c);
        resume = gw_wake_locked(c);
    }
    pthread_mutex_unlock(&c->lock);
    if (resume)
        gw_resume(c->mc);
}

static int chat_on_event(void *ctx, const struct llm_event *ev)
{
    struct gw_conn *c = ctx;
    if (!c->stream) {
        if (ev->type == LLM_EV_FINISH && ev->chunk) /* same-format passthrough */
            gw_completion_forward(c->chat_id, c->model, c->created, ev->chunk, &c->pass);
        return llm_response_collect(&c->resp, ev);
    }
    /* A failure before any output is answered with a JSON error once on_done comes. */
    if (ev->type == LLM_EV_ERROR && !c->sse.started)
        return 0;
    buf_reset(&c->scratch);
    gw_sse_event(&c->sse, ev, &c->scratch);
    if (c->scratch.len == 0)
        return 0;
    return chat_push(c);
}

static void outcome_copy(struct gw_outcome *o, const struct router_result *r)
{
    memset(o, 0, sizeof *o);
    o->err = r->err;
    str_copy(o->message, sizeof o->message, r->message);
    str_copy(o->target, sizeof o->target, r->target ? r->target : "");
    str_copy(o->route, sizeof o->route, r->route ? r->route : "");
    o->attempts = r->attempts;
    o->no_target = r->no_target;
    o->unknown_model = r->unknown_model;
    o->retry_after_ms = r->retry_after_ms;
    o->upstream_status = r->upstream_status;
    o->upstream_error = r->upstream_error;
    o->usage_missing = r->usage_missing;
    o->cached = r->cached;
    o->cost_usd = r->cost_usd;
    o->overhead_us = r->overhead_us;
}

/* The upstream ended while the client was behind: the call now only waits for the client,
 * and the reader's resume need not wake the router thread (router_resume_lazy). */
static void chat_on_held(void *ctx)
{
    struct gw_conn *c = ctx;
    pthread_mutex_lock(&c->lock);
    c->end_held = true;
    pthread_mutex_unlock(&c->lock);
}

static void chat_on_done(void *ctx, const struct router_result *r)
{
    struct gw_conn *c = ctx;
    struct gateway *gw = c->gw;
    struct gw_outcome o;
    outcome_copy(&o, r);
    gw_auth_note_done(c, r);
    if (o.err == LLM_ERR_CANCELLED) {
        pthread_mutex_lock(&gw->lock);
        bool stopping = gw->stopping;
        pthread_mutex_unlock(&gw->lock);
        if (stopping)
            str_copy(o.message, sizeof o.message, "switchboard is shutting down");
    }
    bool truncated = false;
    buf_reset(&c->scratch);
    if (c->stream && (c->sse.started || r->err == LLM_ERR_NONE) && !gw_sse_is_over(&c->sse)) {
        const char *m =
            o.err != LLM_ERR_NONE && o.message[0] ? o.message : "the answer ended without a finish";
        gw_sse_begin(&c->sse, &c->scratch);
        gw_sse_fail(&c->sse, m, strlen(m), &c->scratch);
        truncated = true;
    }
    if (c->stream && c->sse.started && r->err != LLM_ERR_NONE)
        truncated = true;

    gw_call_unregister(c);
    pthread_mutex_lock(&c->lock);
    out_append_locked(c);
    c->stream_over = true;
    c->outcome = o;
    c->done = true;
    c->router_ref = false;
    truncated = truncated && !c->client_gone; /* nobody read that error chunk */
    bool resume = gw_wake_locked(c);
    bool free_it = !c->mhd_ref;
    pthread_mutex_unlock(&c->lock);
    if (resume) /* at once, not batched: see server.c on gateway_stop */
        gw_resume_now(c->mc);
    if (free_it)
        gw_conn_free(c);
    gw_call_released(gw, &o, truncated);
}

/* ---- the stream's content reader (MHD thread) --------------------------------------------- */

/* The client took bytes: has the paused upstream room again? (caller holds c->lock) */
static bool out_drained_locked(struct gw_conn *c)
{
    size_t pending = c->out.len - c->out_off;
    if (!c->upstream_paused || c->done)
        return false;
    return pending == 0 ||
           (pending <= GW_OUT_RESUME && atomic_load(&c->gw->answer_bytes) < GW_OUT_TOTAL);
}

static ssize_t chat_read(void *cls, uint64_t pos, char *dst, size_t max)
{
    struct gw_conn *c = cls;
    (void)pos;
    pthread_mutex_lock(&c->lock);
    size_t avail = c->out.len - c->out_off;
    if (avail > 0) {
        size_t n = avail < max ? avail : max;
        memcpy(dst, c->out.data + c->out_off, n);
        c->out_off += n;
        atomic_fetch_sub(&c->gw->answer_bytes, (uint64_t)n);
        if (c->out_off == c->out.len) {
            buf_reset(&c->out);
            c->out_off = 0;
        } else if (c->out_off >= GW_COMPACT_AT && c->out_off * 2 >= c->out.len) {
            buf_consume(&c->out, c->out_off);
            c->out_off = 0;
        }
        bool drained = out_drained_locked(c);
        bool lazy = c->end_held; /* only the call's end waits: no need to wake the router */
        c->upstream_paused = c->upstream_paused && !drained;
        pthread_mutex_unlock(&c->lock);
        if (drained && lazy) /* call_id is final: the stream answer is queued after submit */
            router_resume_lazy(c->gw->rt, c->call_id);
        else if (drained)
            router_resume(c->gw->rt, c->call_id);
        return (ssize_t)n;
    }
    if (c->stream_over) {
        pthread_mutex_unlock(&c->lock);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    if (c->abandoned) {
        pthread_mutex_unlock(&c->lock);
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    /* Nothing yet: suspend from inside the reader and return 0; the sink resumes us. */
    gw_park_begin_locked(c);
    pthread_mutex_unlock(&c->lock);
    gw_park_end(c);
    return 0;
}

/* The whole stream, taken out of c->out, when it is over (c->out is final then) and at most
 * GW_ONE_WRITE_MAX; NULL (nothing taken) otherwise. The caller owns the result. */
static char *stream_take_whole(struct gw_conn *c, size_t *len)
{
    char *data = NULL;
    pthread_mutex_lock(&c->lock);
    size_t n = c->out.len - c->out_off;
    if (c->stream_over && n <= GW_ONE_WRITE_MAX) {
        if (c->out_off > 0)
            buf_consume(&c->out, c->out_off);
        c->out_off = 0;
        data = buf_take(&c->out);
        atomic_fetch_sub(&c->gw->answer_bytes, (uint64_t)n);
        c->one_write = true;
        *len = n;
    }
    pthread_mutex_unlock(&c->lock);
    return data;
}

/* A finished stream's end waited for the client: it ends once MHD sent the whole response
 * (not when the bytes were taken: a client gone before then is cancelled, 499, as when the
 * chunked headers' write fails). Caller holds c->lock. */
bool gw_chat_sent_locked(struct gw_conn *c, bool ok, bool *lazy)
{
    bool resume = ok && c->one_write && out_drained_locked(c);
    *lazy = c->end_held;
    c->upstream_paused = c->upstream_paused && !resume;
    return resume;
}

/* ---- answers (MHD thread) ----------------------------------------------------------------- */

/* The provider's rate-limit headers ("name: value\n" lines, as the router handed them at
 * commit) as name/value pairs into v from *n; text is split in place. At most max pairs. */
static void passthrough_hdrs(char *text, const char **v, size_t *n, size_t max)
{
    size_t pairs = 0;
    char *line = text;
    while (line && *line && pairs < max) {
        char *end = strchr(line, '\n');
        char *colon = strchr(line, ':');
        if (end)
            *end = '\0';
        if (colon && colon[1] == ' ') {
            *colon = '\0';
            v[(*n)++] = line;
            v[(*n)++] = colon + 2;
            pairs++;
        }
        line = end ? end + 1 : NULL;
    }
}

#define GW_MAX_PASSTHROUGH 12

/* Headers every finished chat answer carries: target, attempts, cost, overhead (+ usage
 * missing, cache hit, Retry-After, the provider's status on a failure, its rate-limit
 * headers when one target served the call). */
struct call_hdrs {
    char attempts[16];
    char cost[32];
    char overhead[32];
    char retry_after[24];
    char upstream[24];
    char passthrough[sizeof((struct gw_conn *)0)->commit_headers];
    const char *v[21 + 2 * GW_MAX_PASSTHROUGH];
};

/* retry_after_s > 0 adds Retry-After; upstream (may be NULL) the provider's headers. */
static const char *const *call_hdrs(struct call_hdrs *h, const struct gw_outcome *o,
                                    bool usage_missing, int64_t retry_after_s, const char *upstream)
{
    size_t n = 0;
    memset(h, 0, sizeof *h);
    snprintf(h->attempts, sizeof h->attempts, "%d", o->attempts);
    snprintf(h->cost, sizeof h->cost, "%.6f", o->cost_usd);
    snprintf(h->overhead, sizeof h->overhead, "%lld", (long long)o->overhead_us);
    h->v[n++] = "x-switchboard-target";
    h->v[n++] = o->target[0] ? o->target : "none";
    h->v[n++] = "x-switchboard-attempts";
    h->v[n++] = h->attempts;
    h->v[n++] = "x-switchboard-cost-usd";
    h->v[n++] = h->cost;
    h->v[n++] = "x-switchboard-overhead-us";
    h->v[n++] = h->overhead;
    if (usage_missing) {
        h->v[n++] = "x-switchboard-usage";
        h->v[n++] = "missing";
    }
    if (o->cached) {
        h->v[n++] = "x-switchboard-cache";
        h->v[n++] = "hit";
    }
    if (retry_after_s > 0) {
        snprintf(h->retry_after, sizeof h->retry_after, "%lld", (long long)retry_after_s);
        h->v[n++] = "Retry-After";
        h->v[n++] = h->retry_after;
    }
    if (o->err != LLM_ERR_NONE && o->upstream_status > 0) {
        snprintf(h->upstream, sizeof h->upstream, "%ld", o->upstream_status);
        h->v[n++] = "x-switchboard-upstream-status";
        h->v[n++] = h->upstream;
    }
    if (upstream && *upstream && !o->cached) {
        str_copy(h->passthrough, sizeof h->passthrough, upstream);
        passthrough_hdrs(h->passthrough, h->v, &n, GW_MAX_PASSTHROUGH);
    }
    h->v[n] = NULL;
    return h->v;
}

static enum MHD_Result answer_stream(struct gw_conn *c, const char *target, int attempt,
                                     bool cached)
{
    size_t len = 0;
    char *whole = stream_take_whole(c, &len);
    struct MHD_Response *r =
        whole ? MHD_create_response_from_buffer(len, whole, MHD_RESPMEM_MUST_FREE)
              : MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, GW_STREAM_BLOCK, chat_read, c,
                                                  NULL);
    if (!r) {
        free(whole); /* a stream taken whole is lost: MHD closes, the call is cancelled */
        return MHD_NO;
    }
    char attempts[16], upstream[sizeof c->commit_headers];
    snprintf(attempts, sizeof attempts, "%d", attempt);
    const char *hdrs[13 + 2 * GW_MAX_PASSTHROUGH] = {
        MHD_HTTP_HEADER_CONTENT_TYPE,  "text/event-stream",
        MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache",
        "X-Accel-Buffering",           "no",
        "x-switchboard-target",        target[0] ? target : "none",
        "x-switchboard-attempts",      attempts};
    size_t n = 10;
    if (cached) {
        hdrs[n++] = "x-switchboard-cache";
        hdrs[n++] = "hit";
    } else {
        /* commit_headers was written under the lock before committed, never after. */
        str_copy(upstream, sizeof upstream, c->commit_headers);
        passthrough_hdrs(upstream, hdrs, &n, GW_MAX_PASSTHROUGH);
    }
    hdrs[n] = NULL;
    log_debug("gateway: %s stream model=%s target=%s attempt=%d", c->request_id, c->model, target,
              attempt);
    return gw_queue(c, 200, r, hdrs);
}

static enum MHD_Result answer_full(struct gw_conn *c)
{
    struct buf body, *out = &c->pass; /* the provider's bytes (passthrough), or ours */
    struct call_hdrs h;
    buf_init(&body);
    if (c->pass.len == 0) {
        gw_completion_json(c->chat_id, c->model, c->created, &c->resp, &body);
        buf_putc(&body, '\n');
        out = &body;
    }
    log_debug("gateway: %s model=%s target=%s attempts=%d cost=%.6f", c->request_id, c->model,
              c->outcome.target, c->outcome.attempts, c->outcome.cost_usd);
    return gw_respond(c, 200, "application/json", out,
                      call_hdrs(&h, &c->outcome, !c->resp.usage.present, 0, c->commit_headers));
}

static enum MHD_Result answer_failure(struct gw_conn *c)
{
    const struct gw_outcome *o = &c->outcome;
    struct gw_error e;
    struct call_hdrs h;
    /* No attempt made with a class the router would have retried elsewhere also means no
     * target could be tried (kept alongside no_target for routers that do not set it). */
    bool no_target = o->no_target || (o->attempts == 0 && llm_errclass_is_retryable(o->err));
    char message[sizeof o->message + 160];
    str_copy(message, sizeof message, o->message);
    if (o->err == LLM_ERR_AUTH && o->target[0] && !no_target)
        snprintf(message, sizeof message,
                 "target %s refused the API key configured in switchboard: %s", o->target,
                 o->message);
    struct gw_call_failure f = {
        .cls = o->err,
        .upstream_status = o->upstream_status,
        .info = &o->upstream_error,
        .no_target = no_target,
        .retry_after_ms = o->retry_after_ms,
        .message = message,
    };
    gw_error_from_call(&e, &f);
    if (o->unknown_model) { /* no route or rule serves the model: OpenAI's 404 */
        struct router_snapshot *snap = gw_snapshot(c->gw);
        gw_error_model_not_found(&e, c->model, snap);
        free(snap);
    }
    return gw_respond_error(c, &e, call_hdrs(&h, o, false, e.retry_after_s, NULL));
}

static enum MHD_Result answer_early_error(struct gw_conn *c, const struct gw_error *e)
{
    char retry[24];
    snprintf(retry, sizeof retry, "%lld", (long long)e->retry_after_s);
    const char *hdrs[] = {"x-switchboard-target",
                          "none",
                          "x-switchboard-attempts",
                          "0",
                          e->retry_after_s > 0 ? "Retry-After" : NULL,
                          retry,
                          NULL};
    c->phase = GW_CHAT_ANSWERED;
    return gw_respond_error(c, e, hdrs);
}

static enum MHD_Result chat_wait(struct gw_conn *c)
{
    pthread_mutex_lock(&c->lock);
    bool sse = c->stream && (c->committed || (c->done && c->outcome.err == LLM_ERR_NONE));
    bool done = c->done, abandoned = c->abandoned;
    if (!sse && !done && !abandoned) {
        gw_park_begin_locked(c);
        pthread_mutex_unlock(&c->lock);
        gw_park_end(c);
        return MHD_YES;
    }
    char target[64];
    str_copy(target, sizeof target, c->commit_target);
    int attempt = c->commit_attempt;
    bool cached = c->commit_cached;
    pthread_mutex_unlock(&c->lock);

    c->phase = GW_CHAT_ANSWERED;
    if (sse)
        return answer_stream(c, target, attempt, cached);
    if (!done) {
        struct gw_error e;
        gw_error_set(&e, 503, "server_error", "shutting_down", "switchboard is shutting down");
        return gw_respond_error(c, &e, NULL);
    }
    /* done was seen under the lock: outcome and resp are final. */
    if (c->outcome.err != LLM_ERR_NONE)
        return answer_failure(c);
    return answer_full(c);
}

/* X-Switchboard-Target: NAME calls that target directly (no route, no fallback, drain and
 * breaker ignored: what an attached console's prompt pane does). Only with a valid admin
 * token in X-Switchboard-Admin-Token. Returns true with e filled when the request must be
 * refused; else direct is the target or "". */
static bool direct_target(struct gw_conn *c, char *direct, size_t len, struct gw_error *e)
{
    direct[0] = '\0';
    const char *t = MHD_lookup_connection_value(c->mc, MHD_HEADER_KIND, "X-Switchboard-Target");
    if (!t || !*t)
        return false;
    bool ok = gw_admin_direct_call(c);
    if (!ok) {
        gw_error_set(e, 403, "permission_error", "admin_token_required",
                     "X-Switchboard-Target needs a valid admin token in "
                     "X-Switchboard-Admin-Token");
        return true;
    }
    if (strlen(t) >= len) {
        gw_error_set(e, 404, "invalid_request_error", "target_not_found",
                     "no target named \"%.60s...\"", t);
        return true;
    }
    str_copy(direct, len, t);
    return false;
}

/* Parses c's body into a new request (the caller's), sets its user (x-switchboard-user) and
 * hashes its prompt into *hash (cache_prompt_hash: per byte of prompt, done here so the router
 * thread is not), and frees the body; NULL, with *st and msg, when the body is not a valid
 * request. Any thread that holds c (the MHD thread, or the pool's while c is parked with it). */
static struct llm_request *body_parse(struct gw_conn *c, enum sb_status *st, char *msg,
                                      size_t msglen, uint64_t *hash)
{
    struct llm_request *req = xmalloc(sizeof *req);
    llm_request_init(req);
    *st = openai_request_parse(buf_str(&c->body), c->body.len, req, msg, msglen);
    buf_cleanup(&c->body);
    if (*st != SB_OK) {
        llm_request_cleanup(req);
        free(req);
        return NULL;
    }
    gw_users_set_user(c, req);
    *hash = cache_prompt_hash(req);
    return req;
}

/* The offload pool's job for a big body (gw_chat_run): the parse, the user and the prompt
 * hash; chat_submit goes on with the result on the daemon's thread. */
static enum MHD_Result chat_parse_job(struct gw_conn *c)
{
    char msg[512] = "";
    c->req = body_parse(c, &c->parse_st, msg, sizeof msg, &c->prompt_hash);
    c->parse_msg = c->req ? NULL : xstrdup(msg);
    c->parsed = true;
    return MHD_YES;
}

/* The body's request and its prompt hash: the pool's parse (taken), or parsed here. NULL: e
 * is the answer. */
static struct llm_request *chat_request(struct gw_conn *c, struct gw_error *e, uint64_t *hash)
{
    char msg[512] = "";
    enum sb_status st = c->parse_st;
    *hash = c->prompt_hash;
    struct llm_request *req = c->parsed ? c->req : body_parse(c, &st, msg, sizeof msg, hash);
    c->req = NULL;
    if (!req)
        gw_error_from_parse(e, st, c->parse_msg ? c->parse_msg : msg);
    return req;
}

static enum MHD_Result chat_submit(struct gw_conn *c)
{
    struct gateway *gw = c->gw;
    struct gw_error e;
    uint64_t prompt_hash = 0;
    struct llm_request *req = chat_request(c, &e, &prompt_hash);
    if (!req)
        return answer_early_error(c, &e);
    char pref_route[64], direct[64];
    gw_users_apply(c, req, pref_route, sizeof pref_route);
    if (direct_target(c, direct, sizeof direct, &e) ||
        !gw_auth_admit(c, pref_route[0] ? pref_route : req->model, &e)) {
        llm_request_cleanup(req);
        free(req);
        return answer_early_error(c, &e);
    }
    c->model = xstrdup(req->model ? req->model : "");
    c->stream = req->stream;
    c->created = clock_wall_ms() / 1000;
    snprintf(c->chat_id, sizeof c->chat_id, "chatcmpl-%s", c->request_id);
    if (c->stream)
        gw_sse_init(&c->sse, c->chat_id, c->model, c->created, req->include_usage);
    else
        llm_response_init(&c->resp);
    buf_init(&c->pass);
    c->codec_ready = true;
    c->phase = GW_CHAT_WAITING;
    if (!gw_call_register(c)) {
        llm_request_cleanup(req);
        free(req);
        gw_error_set(&e, 503, "server_error", "shutting_down", "switchboard is shutting down");
        return answer_early_error(c, &e);
    }
    struct router_call_opts opts = {.tag = c->client[0] ? c->call_tag : c->tag,
                                    .target = direct[0] ? direct : NULL,
                                    .request_id = c->request_id,
                                    .client = c->client[0] ? c->client : NULL,
                                    .route = pref_route[0] ? pref_route : NULL,
                                    .prompt_hash = prompt_hash};
    struct router_sink sink = {.on_commit = chat_on_commit,
                               .on_event = chat_on_event,
                               .on_done = chat_on_done,
                               .ctx = c,
                               .on_held = chat_on_held,
                               .any_thread = true}; /* see "Threads" above */
    uint64_t id = router_submit(gw->rt, req, &opts, &sink);
    gw_call_set_id(c, id);
    return chat_wait(c);
}

enum MHD_Result gw_chat_run(struct gw_conn *c)
{
    switch (c->phase) {
    case GW_CHAT_NEW:
        if (!c->parsed && c->l->threads == 0 && c->body.len > GW_LOOP_PARSE_MAX)
            return gw_offload_job(c, chat_parse_job, true);
        return chat_submit(c);
    case GW_CHAT_WAITING:
        return chat_wait(c);
    case GW_CHAT_ANSWERED:
        return MHD_YES;
    }
    return MHD_NO;
}
