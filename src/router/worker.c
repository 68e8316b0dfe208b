/*
 * worker.c - decode/encode workers (router.workers, issue 16): once a streaming call whose
 * sink is any_thread has committed, its winning attempt's decoder (provider_call) and its
 * sink's on_event run on worker call_id % n, so the per-event work of many streams spreads
 * over the cores while the router thread stays the only writer of routing state and the
 * only libcurl caller (DESIGN.md).
 *
 * Hand-off. call.c hands the attempt over after the provider_call_on_data call that
 * committed it (wk_handoff). From then on the router thread only queues the transfer's
 * bytes (wk_push; past WK_QUEUE_CAP waiting it pauses the transfer instead) and, at the
 * end, the transport's result (wk_push_end). One worker per stream keeps its order.
 *
 * Worker. A batch takes every stream queued on it; for each, the bytes waiting and the end
 * if queued: provider_call_on_data (SSE parse, scan, the sink's encode and push through
 * wk_on_event), then provider_call_finish after the last bytes. What that did goes into
 * the stream's summary (struct wk_summary), merged under the worker's mutex and posted on
 * the pool's ready list; the router applies it (call_wk_apply: spend, pause, cancel, the
 * attempt's end). The router is woken only for a summary it must act on soon (a pause, a
 * stop, an abort, the end, a stream paused at the cap); the rest waits for its next turn.
 * After the batch the pool's batch_end hook runs (a sink's per-thread flush).
 *
 * Ownership. struct wk_stream: the fields under "hand-off" are set by the router before the
 * first wk_push and read-only after; "under w->mu" are shared; "worker only" are touched by
 * the worker running the stream's batch (one at a time: a stream has one worker). pc and
 * the sink's on_event are the worker's from the hand-off until the final summary has been
 * merged; the router frees the stream (wk_release) after applying that summary, and the
 * worker never touches a stream after merging its final summary. Lock order: a worker's
 * mu, then the pool's ready_mu; nothing else is held while calling out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "switchboard/log.h"

struct worker;

struct wk_stream {
    /* hand-off: set by the router before the first wk_push, then read-only */
    struct worker *w;
    struct attempt *a; /* the router's: only passed back to call_wk_apply */
    struct provider_call *pc;
    struct router_sink sink;
    /* under w->mu */
    struct wk_stream *next_job;
    struct wk_stream *next_ready;
    struct buf in;               /* bytes waiting for the worker */
    struct transport_result res; /* the transfer's end, copied by wk_push_end */
    struct wk_summary sum;       /* merged, not yet applied by the router */
    /* worker only, during the stream's batch */
    struct wk_summary local;
    /* set by the router: deliver nothing more */
    atomic_bool cancel;
    /* under w->mu */
    bool queued;    /* in w's job list */
    bool end;       /* the transfer's end is queued (no bytes after it) */
    bool end_taken; /* ...and a batch took it */
    bool capped;    /* wk_push refused bytes: the router waits for a drain */
    bool ready;     /* in the pool's ready list (changed under ready_mu too) */
    /* worker only */
    bool stopped; /* the decoder aborted or the sink stopped: later bytes are dropped */
};

struct worker {
    struct wk_pool *p;
    pthread_t thread;
    bool started; /* router thread */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct wk_stream *head, *tail; /* jobs, under mu */
    bool stop;                     /* under mu */
    bool idle;                     /* waiting on cv, under mu */
    bool kick;                     /* router thread: signal cv at wk_pool_kick */
    struct buf batch;              /* the worker's: the bytes of the stream it runs */
};

struct wk_pool {
    struct router *rt;
    int n;
    bool manual;
    void (*batch_end)(void *ctx); /* set before the first stream */
    void *batch_end_ctx;
    size_t live; /* router thread: streams whose final summary has not been applied */
    pthread_mutex_t ready_mu;
    struct wk_stream *ready_head, *ready_tail; /* under ready_mu */
    bool woken;                                /* under ready_mu: a wake-up is on its way */
    struct worker w[WK_MAX];
};

/* ---- the pool (router thread) ----------------------------------------------------------------
 */

struct wk_pool *wk_pool_new(struct router *rt, int n, bool manual)
{
    struct wk_pool *p = xcalloc(1, sizeof *p);
    p->rt = rt;
    p->n = n < 1 ? 1 : n > WK_MAX ? WK_MAX : n;
    p->manual = manual;
    pthread_mutex_init(&p->ready_mu, NULL);
    for (int i = 0; i < p->n; i++) {
        struct worker *w = &p->w[i];
        w->p = p;
        pthread_mutex_init(&w->mu, NULL);
        pthread_cond_init(&w->cv, NULL);
        buf_init(&w->batch);
    }
    return p;
}

void wk_pool_set_batch_end(struct wk_pool *p, void (*fn)(void *ctx), void *ctx)
{
    p->batch_end = fn;
    p->batch_end_ctx = ctx;
}

void wk_pool_stop(struct wk_pool *p)
{
    for (int i = 0; p && i < p->n; i++) {
        struct worker *w = &p->w[i];
        if (!w->started)
            continue;
        pthread_mutex_lock(&w->mu);
        w->stop = true;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thread, NULL);
        w->started = false;
    }
}

void wk_pool_free(struct wk_pool *p)
{
    if (!p)
        return;
    wk_pool_stop(p);
    for (int i = 0; i < p->n; i++) {
        pthread_mutex_destroy(&p->w[i].mu);
        pthread_cond_destroy(&p->w[i].cv);
        buf_cleanup(&p->w[i].batch);
    }
    pthread_mutex_destroy(&p->ready_mu);
    free(p);
}

bool wk_pool_busy(const struct wk_pool *p)
{
    return p && p->live > 0;
}

/* ---- a worker's batch (worker thread, or the stepping thread in manual mode) ------------------
 */

static void summary_merge(struct wk_summary *into, const struct wk_summary *m)
{
    into->out_bytes += m->out_bytes;
    if (m->has_usage) {
        into->has_usage = true;
        into->usage = m->usage;
    }
    if (m->has_finish) {
        into->has_finish = true;
        into->finish = m->finish;
    }
    into->error_sent = into->error_sent || m->error_sent;
    into->pauses += m->pauses;
    into->stop = into->stop || m->stop;
    into->aborted = into->aborted || m->aborted;
    into->final = into->final || m->final;
}

/* Does the router have to act on it soon (else it waits for the router's next turn)? */
static bool summary_urgent(const struct wk_summary *m)
{
    return m->pauses > 0 || m->stop || m->aborted || m->final || m->error_sent || m->has_finish;
}

/* Puts s on the ready list (caller holds s's worker mu). True: wake the router. */
static bool ready_push_locked(struct wk_pool *p, struct wk_stream *s, bool urgent)
{
    pthread_mutex_lock(&p->ready_mu);
    if (!s->ready) {
        s->ready = true;
        s->next_ready = NULL;
        if (p->ready_tail)
            p->ready_tail->next_ready = s;
        else
            p->ready_head = s;
        p->ready_tail = s;
    }
    bool wake = urgent && !p->woken;
    p->woken = p->woken || wake;
    pthread_mutex_unlock(&p->ready_mu);
    return wake;
}

int wk_on_event(struct wk_stream *s, const struct llm_event *ev)
{
    if (s->stopped || atomic_load(&s->cancel))
        return 1;
    struct wk_summary *m = &s->local;
    if (ev->type == LLM_EV_TEXT || ev->type == LLM_EV_TOOL_ARGS)
        m->out_bytes += ev->len; /* spend_on_output: no cache recorder on a handed-off call */
    if (ev->type == LLM_EV_ERROR) {
        m->error_sent = true;
        s->sink.on_event(s->sink.ctx, ev);
        return 0; /* as attempt_on_event: the ERROR's verdict does not matter */
    }
    if (ev->type == LLM_EV_USAGE) {
        m->has_usage = true;
        m->usage = ev->usage;
    }
    if (ev->type == LLM_EV_FINISH) {
        m->has_finish = true;
        m->finish = ev->finish;
    }
    int verdict = s->sink.on_event(s->sink.ctx, ev);
    if (verdict == ROUTER_SINK_PAUSE) {
        m->pauses++;
        return 0;
    }
    if (verdict != 0) {
        m->stop = true;
        s->stopped = true;
        return 1;
    }
    return 0;
}

/* One stream's share of a batch. *next: the job after it. True: wake the router. */
static bool run_stream(struct worker *w, struct wk_stream *s, struct wk_stream **next)
{
    pthread_mutex_lock(&w->mu);
    *next = s->next_job;
    s->next_job = NULL;
    s->queued = false;
    struct buf taken = s->in; /* swap: the stream keeps the worker's empty buffer */
    s->in = w->batch;
    w->batch = taken;
    bool end = s->end && !s->end_taken;
    s->end_taken = s->end_taken || end;
    pthread_mutex_unlock(&w->mu);

    if (w->batch.len > 0 && !s->stopped && !atomic_load(&s->cancel) &&
        provider_call_on_data(s->pc, w->batch.data, w->batch.len) != 0) {
        s->local.aborted = !s->stopped; /* the decoder's own abort, not the sink's stop */
        s->stopped = true;
    }
    buf_reset(&w->batch);
    if (end) {
        /* the last events (and a missing FINISH or ERROR) come out here, on this thread */
        provider_call_finish(s->pc, s->res.err, s->res.message);
        s->local.final = true;
    }

    pthread_mutex_lock(&w->mu);
    summary_merge(&s->sum, &s->local);
    bool urgent = summary_urgent(&s->local) || s->capped;
    memset(&s->local, 0, sizeof s->local);
    bool wake = ready_push_locked(w->p, s, urgent);
    pthread_mutex_unlock(&w->mu); /* a final stream is the router's from here */
    return wake;
}

/* Runs every stream queued on w once. Returns how many. */
static size_t run_batch(struct worker *w)
{
    pthread_mutex_lock(&w->mu);
    struct wk_stream *s = w->head;
    w->head = w->tail = NULL;
    pthread_mutex_unlock(&w->mu);
    size_t n = 0;
    bool wake = false;
    while (s) {
        struct wk_stream *next;
        wake = run_stream(w, s, &next) || wake;
        s = next;
        n++;
    }
    struct wk_pool *p = w->p;
    /* The batch's sink events are all out: the hook set with router_set_batch_end (the
     * gateway's "flush the wake-ups this thread deferred", registered where serve wires the
     * gateway to the router) runs here, once per batch, before the router hears of it. */
    if (n > 0 && p->batch_end)
        p->batch_end(p->batch_end_ctx);
    if (wake)
        p->rt->tops->wakeup(p->rt->tr); /* the one transport call allowed off the router */
    return n;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char name[16];
    snprintf(name, sizeof name, "sb-worker-%d", (int)(w - w->p->w));
    pthread_setname_np(pthread_self(), name); /* ps -L, perf, /proc/PID/task/N/comm */
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->head && !w->stop) {
            w->idle = true;
            pthread_cond_wait(&w->cv, &w->mu);
            w->idle = false;
        }
        if (!w->head)
            break;
        pthread_mutex_unlock(&w->mu);
        run_batch(w);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

size_t wk_pool_step(struct wk_pool *p)
{
    size_t n = 0;
    for (int i = 0; p && p->manual && i < p->n; i++)
        n += run_batch(&p->w[i]);
    return n;
}

/* ---- streams (router thread) ------------------------------------------------------------------
 */

static bool worker_ensure_started(struct worker *w)
{
    if (w->started || w->p->manual)
        return true;
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc != 0) {
        log_warn("router: cannot start a decode/encode worker (%s); decoding stays on the "
                 "router thread",
                 strerror(rc));
        return false;
    }
    w->started = true;
    return true;
}

bool wk_handoff(struct wk_pool *p, struct attempt *a)
{
    struct worker *w = &p->w[a->call->id % (uint64_t)p->n];
    if (!worker_ensure_started(w))
        return false;
    struct wk_stream *s = xcalloc(1, sizeof *s);
    s->w = w;
    s->a = a;
    s->pc = a->pc;
    s->sink = a->call->sink;
    atomic_init(&s->cancel, false);
    buf_init(&s->in);
    a->wk = s;
    p->live++;
    return true;
}

/* Queues s on its worker (caller holds w->mu). True: the worker sleeps, signal it (the
 * router does at its loop turn's end, wk_pool_kick: one signal for all it queued there). */
static bool job_queue_locked(struct worker *w, struct wk_stream *s)
{
    if (s->queued)
        return false;
    s->queued = true;
    s->next_job = NULL;
    if (w->tail)
        w->tail->next_job = s;
    else
        w->head = s;
    w->tail = s;
    return w->idle;
}

int wk_push(struct wk_stream *s, const char *bytes, size_t len)
{
    struct worker *w = s->w;
    pthread_mutex_lock(&w->mu);
    if (s->in.len >= WK_QUEUE_CAP) {
        s->capped = true;
        pthread_mutex_unlock(&w->mu);
        return TRANSPORT_DATA_PAUSE;
    }
    buf_append(&s->in, bytes, len);
    w->kick = job_queue_locked(w, s) || w->kick;
    pthread_mutex_unlock(&w->mu);
    return 0;
}

void wk_push_end(struct wk_stream *s, const struct transport_result *res)
{
    struct worker *w = s->w;
    pthread_mutex_lock(&w->mu);
    s->res = *res;
    s->end = true;
    w->kick = job_queue_locked(w, s) || w->kick;
    pthread_mutex_unlock(&w->mu);
}

void wk_pool_kick(struct wk_pool *p)
{
    for (int i = 0; p && i < p->n; i++) {
        struct worker *w = &p->w[i];
        if (w->kick) {
            w->kick = false;
            pthread_cond_signal(&w->cv); /* it sleeps with a job queued: see job_queue_locked */
        }
    }
}

void wk_cancel(struct wk_stream *s)
{
    atomic_store(&s->cancel, true);
}

bool wk_below_cap(struct wk_stream *s)
{
    pthread_mutex_lock(&s->w->mu);
    bool below = s->in.len < WK_QUEUE_CAP;
    s->capped = s->capped && !below;
    pthread_mutex_unlock(&s->w->mu);
    return below;
}

const struct transport_result *wk_end_result(const struct wk_stream *s)
{
    return &s->res; /* written before the end was queued; read after the final summary */
}

void wk_release(struct wk_stream *s)
{
    s->w->p->live--;
    buf_cleanup(&s->in);
    free(s);
}

void wk_pool_drain(struct wk_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->ready_mu);
    struct wk_stream *s = p->ready_head;
    p->ready_head = p->ready_tail = NULL;
    p->woken = false;
    pthread_mutex_unlock(&p->ready_mu);
    while (s) {
        struct worker *w = s->w;
        pthread_mutex_lock(&w->mu); /* the worker merges and re-posts under it */
        struct wk_stream *next = s->next_ready;
        struct wk_summary m = s->sum;
        memset(&s->sum, 0, sizeof s->sum);
        pthread_mutex_lock(&p->ready_mu);
        s->ready = false;
        pthread_mutex_unlock(&p->ready_mu);
        pthread_mutex_unlock(&w->mu);
        call_wk_apply(p->rt, s->a, &m); /* may free s (the final summary) */
        s = next;
    }
}
