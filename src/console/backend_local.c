/*
 * backend_local.c - the console backend over the router in this process (the embedded
 * console). Snapshots are router_snapshot_read copies; commands and explains go to one worker
 * thread that waits for the router's verdict (router_command / router_explain block up to
 * LOCAL_TIMEOUT_MS) and queues the reply; chat calls are router_submit direct target calls.
 * The main thread posts and polls and so never waits on the router, however slow it is.
 *
 * Threads: the main thread posts and takes; the worker thread runs jobs. Both queues are
 * guarded by w->mu; no lock is held while calling the router.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quality.h"
#include "switchboard/console_backend.h"

#define LOCAL_TIMEOUT_MS 5000

struct job {
    struct job *next;
    enum console_job_type type;
    struct router_cmd cmd;
    char model[64], tag[64]; /* REQUEST: model holds the request id */
    long tokens;
    char label[128];
};

struct local {
    struct router *rt;
    char addr[96];
    char user[48];
    console_conns_fn conns;
    void *conns_ctx;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;                    /* under mu */
    struct job *jobs, *jobs_tail; /* under mu */
    struct console_reply *done;   /* under mu; newest first */
    /* main thread: the quality reader (started when a target is first watched) */
    struct console_qreader *qr; /* NULL: not started, or the ledger keeps nothing */
    bool qr_started;
    /* main thread: when a gateway call was last seen, for the quit question */
    uint64_t last_calls;
    int64_t last_call_ms; /* monotonic; 0 none */
};

/* The call with this request id in the router's ledger, as text (heap), or NULL with msg. */
static char *local_find_request(struct local *w, const char *id, enum sb_status *st, char *msg,
                                size_t msglen)
{
    struct ledger_call_info c;
    *st = ledger_find_request(router_ledger_peek(w->rt), id, &c, msg, msglen);
    if (*st != SB_OK)
        return NULL;
    struct buf out;
    buf_init(&out);
    ledger_call_info_text(&c, &out);
    return buf_take(&out);
}

static struct console_reply *run(struct local *w, const struct job *j)
{
    struct console_reply *r = xcalloc(1, sizeof *r);
    r->type = j->type;
    str_copy(r->label, sizeof r->label, j->label);
    switch (j->type) {
    case CONSOLE_JOB_COMMAND:
        r->status = router_command(w->rt, &j->cmd, r->msg, sizeof r->msg, LOCAL_TIMEOUT_MS);
        break;
    case CONSOLE_JOB_EXPLAIN: {
        struct buf out;
        buf_init(&out);
        r->status = router_explain(w->rt, j->model, j->tag[0] ? j->tag : NULL, j->tokens, &out,
                                   LOCAL_TIMEOUT_MS);
        if (r->status != SB_OK)
            str_copy(r->msg, sizeof r->msg, out.len ? buf_str(&out) : sb_strerror(r->status));
        r->text = buf_take(&out);
        break;
    }
    case CONSOLE_JOB_REQUEST:
        r->text = local_find_request(w, j->model, &r->status, r->msg, sizeof r->msg);
        break;
    }
    return r;
}

static void *worker_main(void *arg)
{
    struct local *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->stop && !w->jobs)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->stop)
            break;
        struct job *j = w->jobs;
        w->jobs = j->next;
        if (!w->jobs)
            w->jobs_tail = NULL;
        pthread_mutex_unlock(&w->mu);
        struct console_reply *r = run(w, j);
        free(j);
        pthread_mutex_lock(&w->mu);
        r->next = w->done;
        w->done = r;
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void local_free(void *self)
{
    struct local *w = self;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    console_qreader_stop(w->qr);
    while (w->jobs) {
        struct job *j = w->jobs;
        w->jobs = j->next;
        free(j);
    }
    console_reply_free(w->done);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}

static void post(struct local *w, struct job *j)
{
    pthread_mutex_lock(&w->mu);
    if (w->jobs_tail)
        w->jobs_tail->next = j;
    else
        w->jobs = j;
    w->jobs_tail = j;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void local_command(void *self, const struct router_cmd *cmd, const char *label)
{
    struct local *w = self;
    struct job *j = xcalloc(1, sizeof *j);
    j->type = CONSOLE_JOB_COMMAND;
    j->cmd = *cmd;
    snprintf(j->cmd.user, sizeof j->cmd.user, "console:%s", w->user);
    str_copy(j->label, sizeof j->label, label);
    post(w, j);
}

static void local_explain(void *self, const char *model, const char *tag, long tokens,
                          const char *label)
{
    struct job *j = xcalloc(1, sizeof *j);
    j->type = CONSOLE_JOB_EXPLAIN;
    str_copy(j->model, sizeof j->model, model);
    str_copy(j->tag, sizeof j->tag, tag ? tag : "");
    j->tokens = tokens;
    str_copy(j->label, sizeof j->label, label);
    post(self, j);
}

static void local_request(void *self, const char *request_id, const char *label)
{
    struct job *j = xcalloc(1, sizeof *j);
    j->type = CONSOLE_JOB_REQUEST;
    str_copy(j->model, sizeof j->model, request_id);
    str_copy(j->label, sizeof j->label, label);
    post(self, j);
}

static struct console_reply *local_take(void *self)
{
    struct local *w = self;
    pthread_mutex_lock(&w->mu);
    struct console_reply *r = w->done;
    w->done = NULL;
    pthread_mutex_unlock(&w->mu);
    struct console_reply *rev = NULL; /* oldest first */
    while (r) {
        struct console_reply *next = r->next;
        r->next = rev;
        rev = r;
        r = next;
    }
    return rev;
}

static bool local_snapshot(void *self, struct router_snapshot *out, bool *stale, uint64_t have)
{
    struct local *w = self;
    if (!router_snapshot_read(w->rt, out, have))
        return false;
    if (stale)
        memset(stale, 0, sizeof(bool) * ROUTER_MAX_TARGETS);
    return true;
}

static size_t local_instances(void *self, struct console_instance *out, size_t max)
{
    struct local *w = self;
    if (max > 0) {
        memset(out, 0, sizeof *out);
        str_copy(out->name, sizeof out->name, w->addr);
        out->up = out->ever_up = true;
    }
    return 1;
}

static size_t local_breakdown(void *self, const char *name, struct console_part *out, size_t max)
{
    (void)self, (void)name, (void)out, (void)max;
    return 0; /* one instance: the detail view has it all */
}

static uint64_t local_chat(void *self, const char *target, const char *request_id,
                           struct llm_request *req, const struct router_sink *sink)
{
    struct local *w = self;
    struct router_call_opts opts = {.target = target, .request_id = request_id};
    return router_submit(w->rt, req, &opts, sink);
}

static void local_cancel(void *self, uint64_t id)
{
    struct local *w = self;
    router_cancel(w->rt, id);
}

static void local_vote(void *self, const char *winner, const char *const *losers, size_t n,
                       const char *prompt)
{
    struct local *w = self;
    char who[96];
    snprintf(who, sizeof who, "console:%s", w->user);
    router_record_vote(w->rt, winner, losers, n, prompt, who);
}

/* Calls started over the last minute: the per-second series of every target. */
static uint64_t calls_last_minute(const struct router_snapshot *s)
{
    double sum = 0;
    for (size_t i = 0; i < s->n_targets && i < ROUTER_MAX_TARGETS; i++) {
        for (size_t k = 0; k < STATS_RATE_SECONDS; k++)
            sum += s->targets[i].stats.rate_series[k];
    }
    return (uint64_t)(sum + 0.5);
}

static void local_quit_info(void *self, const struct router_snapshot *snap,
                            struct console_quit *out)
{
    struct local *w = self;
    int64_t now = clock_mono_ms();
    memset(out, 0, sizeof *out);
    out->stops_gateway = true;
    if (snap->gateway_calls != w->last_calls) { /* also the first look at a busy gateway */
        w->last_calls = snap->gateway_calls;
        w->last_call_ms = now;
    }
    long conns = w->conns ? w->conns(w->conns_ctx) : 0;
    bool recent = w->last_call_ms && now - w->last_call_ms < (int64_t)5 * 60 * 1000;
    out->ask = conns > 0 || recent;
    snprintf(out->question, sizeof out->question,
             "Quit stops the gateway on %s (%ld connections, %" PRIu64
             " calls in the last minute). Quit? y/N",
             w->addr, conns, calls_last_minute(snap));
}

/* This process's ledger file, read by the quality reader's thread (quality.c). */
static bool local_quality(void *self, const char *target, struct console_quality *out)
{
    struct local *w = self;
    if (!w->qr_started && target && *target) {
        w->qr = console_qreader_start(w->rt);
        w->qr_started = true;
    }
    return w->qr_started && console_qreader_get(w->qr, target, out);
}

static const struct console_backend_ops local_ops = {
    .snapshot = local_snapshot,
    .instances = local_instances,
    .breakdown = local_breakdown,
    .command = local_command,
    .explain = local_explain,
    .request = local_request,
    .take = local_take,
    .quality = local_quality,
    .chat = local_chat,
    .cancel = local_cancel,
    .vote = local_vote,
    .quit_info = local_quit_info,
    .free = local_free,
};

struct console_backend *console_backend_local_new(struct router *rt,
                                                  const struct console_local_opts *o)
{
    struct local *w = xcalloc(1, sizeof *w);
    w->rt = rt;
    str_copy(w->addr, sizeof w->addr, o && o->gateway_addr ? o->gateway_addr : "");
    str_copy(w->user, sizeof w->user, o && o->user ? o->user : console_login());
    w->conns = o ? o->conns : NULL;
    w->conns_ctx = o ? o->conns_ctx : NULL;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        free(w);
        return NULL;
    }
    struct console_backend *b = xcalloc(1, sizeof *b);
    b->ops = &local_ops;
    b->self = w;
    b->mode = "embedded";
    b->rt = rt;
    return b;
}

/* ---- shared ----------------------------------------------------------------------------- */

void console_backend_free(struct console_backend *b)
{
    if (!b)
        return;
    b->ops->free(b->self);
    free(b);
}

void console_reply_free(struct console_reply *r)
{
    while (r) {
        struct console_reply *next = r->next;
        free(r->text);
        free(r);
        r = next;
    }
}

const char *console_login(void)
{
    const char *names[] = {"SWITCHBOARD_USER", "USER", "LOGNAME"};
    for (size_t i = 0; i < SB_ARRAY_LEN(names); i++) {
        const char *v = getenv(names[i]);
        if (v && *v)
            return v;
    }
    return "unknown";
}
