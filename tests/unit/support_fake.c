/*
 * support_fake.c - the fake clock, the scripted fake transport and a recording sink (see
 * support_fake.h). No cmocka here: the fuzzers link it too, so a broken expectation aborts.
 */
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support_fake.h"

static void fake_fail(const char *fmt, ...) SB_PRINTF(1, 2);

static void fake_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "support_fake: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

/* ---- clock ---------------------------------------------------------------------------------- */

void fake_clock_init(struct fake_clock *c)
{
    atomic_init(&c->us, (int64_t)1000000000); /* far from 0: nothing may depend on it */
    c->wall_base_ms = 1780000000000LL;        /* 2026 */
}

static int64_t fake_mono_us(void *ctx)
{
    struct fake_clock *c = ctx;
    return atomic_load(&c->us);
}

static int64_t fake_wall_ms(void *ctx)
{
    struct fake_clock *c = ctx;
    return c->wall_base_ms + atomic_load(&c->us) / 1000;
}

struct router_clock fake_clock_router(struct fake_clock *c)
{
    return (struct router_clock){fake_mono_us, fake_wall_ms, c};
}

/* ---- transport ------------------------------------------------------------------------------ */

enum xfer_phase { PH_HEAD, PH_BODY, PH_STALLED, PH_DONE };

struct xfer {
    struct xfer *next;
    uint64_t id;
    struct fake_plan plan;
    char *body;
    size_t body_len, sent;
    struct transport_timeouts to;
    struct transport_callbacks cb;
    void *ctx;
    int64_t start_us, next_us, first_byte_us;
    enum xfer_phase phase;
    bool cancelled;
    bool paused; /* on_data said TRANSPORT_DATA_PAUSE: the piece waits for fk_resume */
};

struct fake_net {
    struct fake_clock *clock;
    fake_plan_fn plan;
    void *plan_ctx;
    struct xfer *xfers;
    uint64_t next_id;
    struct {
        char url[160];
    } log[4096];
    long n_log, n_started;
    long pauses, resumes;    /* transfers paused by on_data / resumed */
    atomic_long wakeups;     /* transport_wakeup calls (any thread) */
    int watched;             /* transport_watch's fd; -1: none */
    atomic_int last_wait_ms; /* the max_wait_ms of the last run (read from any thread) */
    atomic_long runs;        /* runs so far (read from any thread) */
};

struct fake_net *fake_net_new(struct fake_clock *clock, fake_plan_fn plan, void *ctx)
{
    struct fake_net *n = xcalloc(1, sizeof *n);
    n->clock = clock;
    n->plan = plan;
    n->plan_ctx = ctx;
    n->next_id = 1;
    n->watched = -1;
    atomic_init(&n->last_wait_ms, -1);
    atomic_init(&n->runs, 0);
    return n;
}

static int64_t now_us(const struct fake_net *n)
{
    return atomic_load(&n->clock->us);
}

static int64_t ms_after(const struct xfer *x, int64_t ms)
{
    return x->start_us + ms * 1000;
}

/* The earliest of the transfer's own next step and its timeouts. */
static int64_t xfer_due_us(const struct xfer *x)
{
    if (x->phase == PH_DONE || x->cancelled)
        return x->phase == PH_DONE ? INT64_MAX : 0;
    int64_t due = x->phase == PH_STALLED || x->paused ? INT64_MAX : x->next_us;
    if (x->phase == PH_HEAD && x->to.first_byte_ms > 0)
        due = due < ms_after(x, x->to.first_byte_ms) ? due : ms_after(x, x->to.first_byte_ms);
    if (x->to.total_ms > 0)
        due = due < ms_after(x, x->to.total_ms) ? due : ms_after(x, x->to.total_ms);
    return due;
}

static uint64_t fk_start(void *self, struct http_request *req, const struct transport_timeouts *to,
                         const struct transport_callbacks *cb, void *ctx, char *msg, size_t msglen)
{
    struct fake_net *n = self;
    struct fake_plan p = {.cut_after = -1, .stall_after = -1, .status = 200};
    n->plan(n->plan_ctx, req, &p);
    if (n->n_log < (long)(sizeof n->log / sizeof n->log[0]))
        str_copy(n->log[n->n_log++].url, sizeof n->log[0].url, req->url);
    n->n_started++;
    if (p.refuse) {
        snprintf(msg, msglen, "fake transport refused the transfer");
        return 0;
    }
    free(req->body); /* taken, as transport_start takes it: the caller must not need it */
    req->body = NULL;
    struct xfer *x = xcalloc(1, sizeof *x);
    x->id = n->next_id++;
    x->plan = p;
    x->body = xstrdup(p.body ? p.body : "");
    x->body_len = strlen(x->body);
    x->to = *to;
    x->cb = *cb;
    x->ctx = ctx;
    x->start_us = now_us(n);
    x->first_byte_us = -1;
    x->phase = PH_HEAD;
    if (p.fail != LLM_ERR_NONE)
        x->next_us = ms_after(x, p.fail_after_ms);
    else
        x->next_us = p.first_byte_ms < 0 ? INT64_MAX : ms_after(x, p.first_byte_ms);
    x->next = n->xfers;
    n->xfers = x;
    return x->id;
}

static void fk_cancel(void *self, uint64_t id)
{
    struct fake_net *n = self;
    for (struct xfer *x = n->xfers; x; x = x->next) {
        if (x->id == id && x->phase != PH_DONE)
            x->cancelled = true;
    }
}

static void fk_resume(void *self, uint64_t id)
{
    struct fake_net *n = self;
    for (struct xfer *x = n->xfers; x; x = x->next) {
        if (x->id == id && x->phase != PH_DONE && x->paused) {
            x->paused = false;
            x->next_us = now_us(n); /* the piece it left comes again at the next run */
            n->resumes++;
        }
    }
}

static void finish(struct fake_net *n, struct xfer *x, enum llm_errclass err, long status,
                   const char *text)
{
    struct transport_result r = {.err = err, .status = status};
    str_copy(r.message, sizeof r.message, text);
    r.first_byte_us = x->first_byte_us;
    r.total_us = now_us(n) - x->start_us;
    x->phase = PH_DONE;
    x->cb.on_done(x->ctx, &r);
}

static void deliver_head(struct fake_net *n, struct xfer *x)
{
    x->first_byte_us = now_us(n) - x->start_us;
    if (x->cb.on_status)
        x->cb.on_status(x->ctx, x->plan.status);
    for (size_t i = 0; i < FAKE_HEADERS_MAX && x->plan.headers[i][0]; i++) {
        if (x->cb.on_header && !x->cancelled)
            x->cb.on_header(x->ctx, x->plan.headers[i][0], x->plan.headers[i][1]);
    }
    x->phase = PH_BODY;
    x->next_us = now_us(n);
}

/* Sends the next piece of the body, or ends the transfer. */
static void deliver_body(struct fake_net *n, struct xfer *x)
{
    size_t limit = x->body_len;
    if (x->plan.cut_after >= 0 && (size_t)x->plan.cut_after < limit)
        limit = (size_t)x->plan.cut_after;
    if (x->plan.stall_after >= 0 && (size_t)x->plan.stall_after < limit)
        limit = (size_t)x->plan.stall_after;
    if (x->sent >= limit) {
        if (x->plan.stall_after >= 0 && x->sent >= (size_t)x->plan.stall_after &&
            (size_t)x->plan.stall_after < x->body_len) {
            x->phase = PH_STALLED;
            x->next_us = INT64_MAX;
            return;
        }
        bool cut = x->plan.cut_after >= 0 && (size_t)x->plan.cut_after < x->body_len;
        finish(n, x, cut ? LLM_ERR_TRUNCATED : LLM_ERR_NONE, x->plan.status,
               cut ? "connection closed before the body ended" : "");
        return;
    }
    size_t len = limit - x->sent;
    if (x->plan.chunk > 0 && len > x->plan.chunk)
        len = x->plan.chunk;
    int rc = x->cb.on_data ? x->cb.on_data(x->ctx, x->body + x->sent, len) : 0;
    if (rc == TRANSPORT_DATA_PAUSE && !x->cancelled) {
        x->paused = true; /* the same piece is delivered again after fk_resume */
        n->pauses++;
        return;
    }
    x->sent += len;
    if (x->cancelled)
        return;
    if (rc != 0) {
        finish(n, x, LLM_ERR_BAD_RESPONSE, x->plan.status, "aborted by the receiver");
        return;
    }
    x->next_us = now_us(n) + x->plan.chunk_every_ms * 1000;
}

/* One step of x if it is due; true when it did something. */
static bool xfer_step(struct fake_net *n, struct xfer *x)
{
    int64_t now = now_us(n);
    if (x->phase == PH_DONE)
        return false;
    if (x->cancelled) {
        finish(n, x, LLM_ERR_CANCELLED, x->first_byte_us >= 0 ? x->plan.status : 0, "cancelled");
        return true;
    }
    if (xfer_due_us(x) > now)
        return false;
    if (x->phase == PH_HEAD && x->to.first_byte_ms > 0 && now >= ms_after(x, x->to.first_byte_ms) &&
        x->next_us > now) {
        finish(n, x, LLM_ERR_TIMEOUT, 0, "no response headers in time (first byte timeout)");
        return true;
    }
    if (x->to.total_ms > 0 && now >= ms_after(x, x->to.total_ms) && x->next_us > now) {
        finish(n, x, LLM_ERR_TIMEOUT, x->first_byte_us >= 0 ? x->plan.status : 0, "total timeout");
        return true;
    }
    if (x->phase == PH_STALLED || x->paused)
        return false;
    if (x->phase == PH_HEAD && x->plan.fail != LLM_ERR_NONE) {
        char text[96]; /* "class: detail", the real transport's form */
        snprintf(text, sizeof text, "%s: fake transport failure", llm_errclass_name(x->plan.fail));
        finish(n, x, x->plan.fail, 0, text);
        return true;
    }
    if (x->phase == PH_HEAD)
        deliver_head(n, x);
    else
        deliver_body(n, x);
    return true;
}

static void sweep(struct fake_net *n)
{
    struct xfer **p = &n->xfers;
    while (*p) {
        struct xfer *x = *p;
        if (x->phase == PH_DONE) {
            *p = x->next;
            free(x->body);
            free(x);
        } else {
            p = &x->next;
        }
    }
}

static size_t fk_run(void *self, int max_wait_ms)
{
    struct fake_net *n = self; /* fake time does not pass by waiting: the wait is recorded */
    atomic_store(&n->last_wait_ms, max_wait_ms);
    atomic_fetch_add(&n->runs, 1);
    for (int round = 0; round < 100000; round++) {
        bool any = false;
        for (struct xfer *x = n->xfers; x; x = x->next)
            any |= xfer_step(n, x);
        if (!any) {
            sweep(n);
            return fake_net_active(n);
        }
    }
    fake_fail("fake transport: a transfer makes progress forever without the clock moving");
    return 0;
}

static void fk_wakeup(void *self)
{
    struct fake_net *n = self;
    atomic_fetch_add(&n->wakeups, 1);
}

static bool fk_watch(void *self, int fd, char *msg, size_t msglen)
{
    struct fake_net *n = self;
    if (fd >= 0 && n->watched >= 0) {
        snprintf(msg, msglen, "fake transport: fd %d watched already", n->watched);
        return false; /* the router detaches before it attaches another */
    }
    n->watched = fd < 0 ? -1 : fd;
    return true;
}

int fake_net_watched(const struct fake_net *n)
{
    return n->watched;
}

int fake_net_last_wait_ms(const struct fake_net *n)
{
    return atomic_load(&n->last_wait_ms);
}

long fake_net_runs(const struct fake_net *n)
{
    return atomic_load(&n->runs);
}

long fake_net_wakeups(const struct fake_net *n)
{
    return atomic_load(&n->wakeups);
}

long fake_net_pauses(const struct fake_net *n)
{
    return n->pauses;
}

long fake_net_resumes(const struct fake_net *n)
{
    return n->resumes;
}

size_t fake_net_active(const struct fake_net *n)
{
    size_t k = 0;
    for (const struct xfer *x = n->xfers; x; x = x->next)
        k += x->phase != PH_DONE;
    return k;
}

static size_t fk_active(const void *self)
{
    return fake_net_active(self);
}

static void fk_free(void *self)
{
    struct fake_net *n = self;
    if (!n)
        return;
    for (struct xfer *x = n->xfers; x; x = x->next) {
        if (x->phase != PH_DONE)
            finish(n, x, LLM_ERR_CANCELLED, 0, "transport freed");
    }
    sweep(n);
    free(n);
}

const struct transport_ops fake_transport_ops = {fk_start,  fk_cancel, fk_resume, fk_run,
                                                 fk_wakeup, fk_watch,  fk_active, fk_free};

int64_t fake_net_next_us(const struct fake_net *n)
{
    int64_t next = INT64_MAX;
    for (const struct xfer *x = n->xfers; x; x = x->next) {
        int64_t d = xfer_due_us(x);
        next = d < next ? d : next;
    }
    return next;
}

long fake_net_started(const struct fake_net *n, const char *needle)
{
    if (!needle)
        return n->n_started;
    long k = 0;
    for (long i = 0; i < n->n_log; i++)
        k += strstr(n->log[i].url, needle) != NULL;
    return k;
}

/* ---- router on the fake -----------------------------------------------------------------------
 */

struct router *fake_router_new(const char *cfg_json, struct fake_clock *clock, fake_plan_fn plan,
                               void *ctx, struct fake_net **net_out)
{
    return fake_router_new_workers(cfg_json, clock, plan, ctx, net_out, true);
}

struct router *fake_router_new_workers(const char *cfg_json, struct fake_clock *clock,
                                       fake_plan_fn plan, void *ctx, struct fake_net **net_out,
                                       bool workers_manual)
{
    struct config_diag errs;
    config_diag_init(&errs);
    struct config *cfg = config_parse(cfg_json, strlen(cfg_json), NULL, NULL, NULL, &errs);
    if (!cfg) {
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "config: %s\n", errs.items[i]);
        fake_fail("config rejected");
    }
    config_diag_cleanup(&errs);
    struct fake_net *n = fake_net_new(clock, plan, ctx);
    struct router_env env = {&fake_transport_ops, n, fake_clock_router(clock), workers_manual};
    char msg[256];
    struct router *rt = router_new_env(cfg, &env, msg, sizeof msg);
    if (!rt)
        fake_fail("router_new_env: %s", msg);
    *net_out = n;
    return rt;
}

long fake_drive(struct router *rt, struct fake_net *n, struct fake_clock *clock, int64_t until_ms,
                bool (*done)(void *ctx), void *ctx)
{
    long turns = 0, still = 0;
    for (;;) {
        router_workers_step(rt); /* fake_router_new's workers run here, before each turn */
        router_step(rt);
        turns++;
        if (done && done(ctx))
            return turns;
        int64_t now = atomic_load(&clock->us);
        if (now >= until_ms * 1000)
            return turns;
        int64_t next = router_next_wake_ms(rt) * 1000;
        int64_t fnext = fake_net_next_us(n);
        next = fnext < next ? fnext : next;
        if (next > until_ms * 1000)
            next = until_ms * 1000;
        if (next > now) {
            atomic_store(&clock->us, next);
            still = 0;
        } else if (++still > 10000) {
            fake_fail("router loop makes no progress: %ld turns at the same time", still);
        }
    }
}

/* ---- recording sink ------------------------------------------------------------------------ */

static void fc_commit(void *ctx, const struct router_commit *c)
{
    struct fake_call *fc = ctx;
    fc->commits++;
    str_copy(fc->committed_to, sizeof fc->committed_to, c->target);
}

static int fc_event(void *ctx, const struct llm_event *ev)
{
    struct fake_call *fc = ctx;
    fc->events++;
    switch (ev->type) {
    case LLM_EV_TEXT: {
        size_t have = strlen(fc->text), room = sizeof fc->text - have - 1;
        size_t len = ev->len < room ? ev->len : room;
        memcpy(fc->text + have, ev->text, len);
        fc->text[have + len] = '\0';
        if (fc->stop_reading)
            return 1;
        return fc->pause_reading ? ROUTER_SINK_PAUSE : 0;
    }
    case LLM_EV_ERROR:
        fc->errors++;
        fc->error_class = ev->errclass;
        str_copy(fc->error, sizeof fc->error, ev->text ? ev->text : "");
        return 0;
    case LLM_EV_FINISH:
        fc->finishes++;
        return 0;
    case LLM_EV_TOOL_CALL:
    case LLM_EV_TOOL_ARGS:
    case LLM_EV_USAGE:
        return 0;
    }
    return 0;
}

static void fc_done(void *ctx, const struct router_result *r)
{
    struct fake_call *fc = ctx;
    fc->dones++;
    if (fc->clock)
        fc->done_ms = fake_clock_ms(fc->clock);
    fc->result = *r;
    str_copy(fc->result_target, sizeof fc->result_target, r->target ? r->target : "");
    fc->result.target = fc->result.model = fc->result.route = NULL;
}

struct router_sink fake_call_sink(struct fake_call *fc)
{
    return (struct router_sink){fc_commit, fc_event, fc_done, fc, NULL, false};
}

bool fake_call_done(void *fake_call)
{
    const struct fake_call *fc = fake_call;
    return fc->dones > 0;
}

/* ---- bodies ---------------------------------------------------------------------------------- */

const char *fake_openai_json(const char *text)
{
    static char bufs[4][1024];
    static int k;
    char *b = bufs[k++ % 4];
    snprintf(b, sizeof bufs[0],
             "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"model\":\"m\","
             "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"%s\"},"
             "\"finish_reason\":\"stop\"}],"
             "\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":3,\"total_tokens\":8}}",
             text);
    return b;
}

const char *fake_openai_sse(const char *text)
{
    static char bufs[4][2048];
    static int k;
    char *b = bufs[k++ % 4];
    snprintf(b, sizeof bufs[0],
             "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\","
             "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"%s\"}}]}"
             "\n\n"
             "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\","
             "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" more\"}}]}\n\n"
             "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\","
             "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],"
             "\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":3,\"total_tokens\":8}}\n\n"
             "data: [DONE]\n\n",
             text);
    return b;
}

struct llm_request *fake_request(const char *model, bool stream)
{
    struct llm_request *req = xmalloc(sizeof *req);
    llm_request_init(req);
    req->model = xstrdup(model);
    req->stream = stream;
    llm_request_add_message(req, LLM_ROLE_USER, "hello");
    return req;
}

static const char *watchdog_who = "test";

static void watchdog_fired(int sig)
{
    (void)sig;
    static const char tail[] = ": the router loop spins (watchdog fired)\n";
    if (write(2, watchdog_who, strlen(watchdog_who)) < 0 || write(2, tail, sizeof tail - 1) < 0)
        _exit(3);
    _exit(2);
}

void fake_watchdog(const char *who, unsigned seconds)
{
    watchdog_who = who;
    signal(SIGALRM, watchdog_fired);
    alarm(seconds);
}
