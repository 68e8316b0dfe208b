/*
 * router.c - the router thread's lifecycle, its inbox and its loop, and the thread-safe
 * entry points of router.h.
 *
 * Inbox: a mutex-guarded singly linked list. Producers append and call transport_wakeup()
 * (the transport's eventfd; router_resume_lazy alone appends without it, for a message that
 * can wait for the loop's next turn, at most ROUTER_TICK_MS); the loop swaps the
 * whole list out under the lock and handles it unlocked. Posting hands the message over.
 * Replies (commands, explain) are refcounted between the waiter and the router, so a waiter
 * that times out simply drops its reference.
 *
 * Loop: drain inbox -> apply the decode/encode workers' summaries -> fire due timers -> tick
 * (expiries, snapshot) -> transport_run until the next timer or tick, woken early by posts
 * (and by a worker with a summary to act on: worker.c). Both halves are turns for the
 * optional turn hook (router_set_turn_hook): ROUTER_TURN_BEGIN before, ROUTER_TURN_END after,
 * so a sink that deferred work (the gateway's connection wake-ups) has it flushed before the
 * thread sleeps in epoll_wait again.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "switchboard/log.h"

/* ---- replies -------------------------------------------------------------------------------- */

/* The router whose loop this thread runs: its thread (router_main), or the caller of
 * router_step during the step; NULL on every other thread. */
static _Thread_local struct router *this_router;

/* A wait for the router's answer on its own thread could never end: refused at once (the
 * gateway's listener runs on this thread with gateway.threads 0). */
static bool refuse_on_router_thread(struct router *rt, char *msg, size_t msglen)
{
    if (this_router != rt)
        return false;
    str_copy(msg, msglen, "cannot wait for the router on its own thread");
    return true;
}

static struct reply *reply_new(void)
{
    struct reply *r = xcalloc(1, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->refs = 2;
    buf_init(&r->text);
    return r;
}

void router_reply_release(struct reply *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    int left = --r->refs;
    pthread_mutex_unlock(&r->mu);
    if (left > 0)
        return;
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    buf_cleanup(&r->text);
    free(r);
}

void router_reply_finish(struct reply *r, enum sb_status st, const char *fmt, ...)
{
    if (!r)
        return;
    char msg[256] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_lock(&r->mu);
    r->status = st;
    str_copy(r->msg, sizeof r->msg, msg);
    r->done = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    router_reply_release(r);
}

/* Waits for the router's verdict; SB_ERR_IO on timeout (the router is busy or stuck: the
 * admin API answers 503, not a state conflict). Releases the waiter's ref. */
static enum sb_status reply_wait(struct reply *r, int timeout_ms, char *msg, size_t msglen,
                                 struct buf *text)
{
    struct timespec until;
    clock_deadline_in(&until, timeout_ms);
    pthread_mutex_lock(&r->mu);
    while (!r->done) {
        if (pthread_cond_timedwait(&r->cv, &r->mu, &until) == ETIMEDOUT)
            break;
    }
    enum sb_status st = r->done ? r->status : SB_ERR_IO;
    if (msg && msglen)
        str_copy(msg, msglen, r->done ? r->msg : "the router did not answer in time");
    if (text && r->done)
        buf_append(text, r->text.data ? r->text.data : "", r->text.len);
    pthread_mutex_unlock(&r->mu);
    router_reply_release(r);
    return st;
}

/* LOOP_CALL's wait: up to timeout_ms for the router to begin fn; once it has begun, until fn
 * has returned (the waiter then knows it ran, whatever the time). A waiter that gives up
 * first marks the reply abandoned, and the router skips fn. Releases the waiter's ref. */
static enum sb_status loop_call_wait(struct reply *r, int timeout_ms, char *msg, size_t msglen)
{
    struct timespec until;
    clock_deadline_in(&until, timeout_ms);
    pthread_mutex_lock(&r->mu);
    while (!r->done && !r->running) {
        if (pthread_cond_timedwait(&r->cv, &r->mu, &until) == ETIMEDOUT)
            break;
    }
    if (!r->done && !r->running)
        r->abandoned = true;
    while (!r->done && r->running)
        pthread_cond_wait(&r->cv, &r->mu);
    enum sb_status st = r->done ? r->status : SB_ERR_IO;
    str_copy(msg, msglen, r->done ? r->msg : "the router did not answer in time");
    pthread_mutex_unlock(&r->mu);
    router_reply_release(r);
    return st;
}

static void loop_call_run(struct msg *m)
{
    struct reply *r = m->reply;
    pthread_mutex_lock(&r->mu);
    bool go = !r->abandoned;
    r->running = go;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (go)
        m->fn(m->fn_ctx);
    router_reply_finish(r, go ? SB_OK : SB_ERR_IO, go ? NULL : "given up by its caller");
    m->reply = NULL;
}

/* ---- inbox ---------------------------------------------------------------------------------- */

/* Hands m to the router; false (m untouched) when the router no longer accepts messages.
 * wake: false leaves m for the router's next turn (it wakes at least every ROUTER_TICK_MS).
 * Posted by the loop's owner itself (the listener on the loop, a sink): taken before the
 * loop's next wait (loop_once), with no wake-up. */
static bool post_wake(struct router *rt, struct msg *m, bool wake)
{
    pthread_mutex_lock(&rt->inbox_mu);
    bool ok = rt->accepting;
    if (ok) {
        m->next = NULL;
        if (rt->inbox_tail)
            rt->inbox_tail->next = m;
        else
            rt->inbox_head = m;
        rt->inbox_tail = m;
    }
    pthread_mutex_unlock(&rt->inbox_mu);
    if (ok && this_router == rt)
        rt->posted_here = true; /* the loop takes it before it waits: no wake-up */
    else if (ok && wake)
        rt->tops->wakeup(rt->tr);
    return ok;
}

static bool post(struct router *rt, struct msg *m)
{
    return post_wake(rt, m, true);
}

static void msg_free(struct msg *m)
{
    if (m->call)
        call_free_unstarted(m->call);
    config_free(m->cfg);
    free(m->model);
    free(m->tag);
    free(m->user);
    if (m->reply)
        router_reply_finish(m->reply, SB_ERR_IO, "the router is stopping");
    free(m);
}

static void handle(struct router *rt, struct msg *m)
{
    switch (m->type) {
    case MSG_SUBMIT:
        call_begin(rt, m->call);
        m->call = NULL;
        break;
    case MSG_CANCEL:
        call_cancel(rt, m->call_id, m->shutdown);
        break;
    case MSG_RESUME:
        call_resume(rt, m->call_id);
        break;
    case MSG_COMMAND: {
        /* Published before the verdict: whoever waits for it reads a snapshot that
         * already shows the command's effect. */
        char msg[256];
        enum sb_status st = router_apply_command(rt, &m->cmd, msg, sizeof msg);
        router_publish(rt, rt_now_ms(rt));
        rt->publish_now = false;
        router_reply_finish(m->reply, st, "%s", msg);
        m->reply = NULL;
        break;
    }
    case MSG_RELOAD:
        router_load_config(rt, m->cfg);
        m->cfg = NULL;
        rt->publish_now = true;
        break;
    case MSG_NOTE:
        router_event(rt, m->note_kind, m->tag, "%s", m->model);
        break;
    case MSG_VOTE:
        spend_record_vote(rt, m->model, m->tag, m->hash, m->user);
        break;
    case MSG_LOOP_CALL:
        loop_call_run(m);
        break;
    case MSG_EXPLAIN: {
        struct buf text;
        buf_init(&text);
        router_explain_run(rt, m->model, m->tag, m->prompt_tokens, &text);
        pthread_mutex_lock(&m->reply->mu);
        buf_append(&m->reply->text, buf_str(&text), text.len);
        pthread_mutex_unlock(&m->reply->mu);
        buf_cleanup(&text);
        router_reply_finish(m->reply, SB_OK, NULL);
        m->reply = NULL;
        break;
    }
    }
    msg_free(m);
}

static void drain_inbox(struct router *rt)
{
    pthread_mutex_lock(&rt->inbox_mu);
    struct msg *m = rt->inbox_head;
    rt->inbox_head = rt->inbox_tail = NULL;
    pthread_mutex_unlock(&rt->inbox_mu);
    while (m) {
        struct msg *next = m->next;
        handle(rt, m);
        m = next;
    }
}

/* ---- the loop ------------------------------------------------------------------------------- */

static void fire_timers(struct router *rt, int64_t now)
{
    struct timer *t;
    while ((t = timerq_pop_due(&rt->timers, now))) {
        if (t->kind == TARGET_TIMER_PROBE)
            target_probe_fire(rt, SB_CONTAINER_OF(t, struct target_state, probe_timer));
        else
            call_timer_fired(rt, t);
    }
}

static void tick(struct router *rt, int64_t now)
{
    if (now < rt->next_tick_ms && !rt->publish_now)
        return;
    router_expire_overrides(rt, now);
    timeline_agg_flush(&rt->timeline, &rt->churn, now, false);
    router_publish(rt, now);
    rt->publish_now = false;
    rt->next_tick_ms = now + ROUTER_TICK_MS;
}

/* The turn hook's BEGIN or END; after an END the loop hook's run, told (waited) whether the
 * turn ran the transport. */
static void hook_turn_of(struct router *rt, enum router_turn t, bool waited)
{
    rt->in_turn = t == ROUTER_TURN_BEGIN;
    if (t == ROUTER_TURN_END)
        rt->answered_early = false;
    if (rt->turn_hook)
        rt->turn_hook(rt->turn_ctx, t);
    if (t == ROUTER_TURN_END && rt->has_loop_hook) {
        rt->hook_waited = waited;
        rt->loop_hook.run(rt->loop_hook.ctx); /* after the END: the sinks' wake-ups are out */
        rt->hook_waited = true;
    }
}

bool router_loop_hook_waited(const struct router *rt)
{
    return rt->hook_waited;
}

static void hook_turn(struct router *rt, enum router_turn t)
{
    hook_turn_of(rt, t, true);
}

/* Once per turn: at c=1 every answer is the turn's first; under load the others wait for
 * the turn's end as before, so a burst of answers costs one extra flush, not one each. */
void router_answer_now(struct router *rt)
{
    if (!rt->in_turn || rt->answered_early)
        return;
    hook_turn(rt, ROUTER_TURN_END);
    hook_turn(rt, ROUTER_TURN_BEGIN);
    rt->answered_early = true;
}

/* The wait before the next turn, capped by the loop hook's. */
static int wait_ms(struct router *rt, int64_t left)
{
    if (rt->has_loop_hook && rt->loop_hook.wait_cap_ms) {
        int64_t cap = rt->loop_hook.wait_cap_ms(rt->loop_hook.ctx);
        if (cap >= 0 && cap < left)
            left = cap;
    }
    return left < 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

/* The transport's run (its callbacks run the sinks) as one turn for the hook: what the sinks
 * deferred is flushed before the next wait. The workers are signalled for what was queued
 * for them before the transport may block, and for what its callbacks queued after. */
static void run_turn(struct router *rt, int wait_ms)
{
    rt->turn++;
    wk_pool_kick(rt->workers);
    hook_turn(rt, ROUTER_TURN_BEGIN);
    rt->tops->run(rt->tr, wait_ms);
    hook_turn(rt, ROUTER_TURN_END);
    wk_pool_kick(rt->workers);
}

/* One turn of the loop; waits up to max_wait_ms in the transport (0: not at all). The inbox
 * and the timers (they run sinks too: cancels, deadlines) are flushed before the wait, and
 * again while the loop hook's run posts more (a request the gateway's listener submitted on
 * this thread starts before the wait, not after another round of it). The thread that runs
 * it is the loop's owner meanwhile (this_router): its own posts need no wake-up. */
static void loop_once(struct router *rt, bool wait)
{
    struct router *owner = this_router;
    this_router = rt;
    do {
        rt->posted_here = false;
        hook_turn(rt, ROUTER_TURN_BEGIN);
        drain_inbox(rt);
        wk_pool_drain(rt->workers);
        int64_t now = rt_now_ms(rt);
        fire_timers(rt, now);
        tick(rt, now);
        hook_turn_of(rt, ROUTER_TURN_END, false);
    } while (rt->posted_here);
    int64_t left = router_next_wake_ms(rt) - rt_now_ms(rt);
    run_turn(rt, wait ? wait_ms(rt, left) : 0);
    this_router = owner;
}

void router_set_turn_hook(struct router *rt, void (*hook)(void *ctx, enum router_turn turn),
                          void *ctx)
{
    rt->turn_hook = hook;
    rt->turn_ctx = ctx;
}

int64_t router_next_wake_ms(struct router *rt)
{
    int64_t next = timerq_next_at(&rt->timers);
    return next > rt->next_tick_ms ? rt->next_tick_ms : next;
}

void router_step(struct router *rt)
{
    if (!rt->started && !rt->stopped)
        loop_once(rt, false);
}

/* Shutdown: refuse new messages, answer what is queued, end every call. */
static void shutdown_calls(struct router *rt)
{
    pthread_mutex_lock(&rt->inbox_mu);
    rt->accepting = false;
    pthread_mutex_unlock(&rt->inbox_mu);
    hook_turn(rt, ROUTER_TURN_BEGIN);
    drain_inbox(rt);
    call_abort_all(rt);
    hook_turn(rt, ROUTER_TURN_END);
    /* ...and a call whose attempt is with a worker ends once its final summary is in */
    while (rt->n_calls > 0 && (rt->tops->active(rt->tr) > 0 || wk_pool_busy(rt->workers))) {
        run_turn(rt, 10);
        hook_turn(rt, ROUTER_TURN_BEGIN);
        wk_pool_step(rt->workers); /* manual workers (tests): run them here */
        wk_pool_drain(rt->workers);
        hook_turn(rt, ROUTER_TURN_END);
    }
    router_publish(rt, rt_now_ms(rt));
}

static void *router_main(void *arg)
{
    struct router *rt = arg;
    this_router = rt;
    while (!atomic_load(&rt->stopping))
        loop_once(rt, true);
    shutdown_calls(rt);
    return NULL;
}

/* ---- the loop's owner ------------------------------------------------------------------------ */

enum sb_status router_loop_call(struct router *rt, void (*fn)(void *ctx), void *ctx, int timeout_ms,
                                char *msg, size_t msglen)
{
    if (refuse_on_router_thread(rt, msg, msglen))
        return SB_ERR_STATE;
    if (!rt->started || rt->stopped) {
        fn(ctx); /* no router thread: the caller owns the loop */
        return SB_OK;
    }
    struct msg *m = xcalloc(1, sizeof *m);
    m->type = MSG_LOOP_CALL;
    m->fn = fn;
    m->fn_ctx = ctx;
    struct reply *r = reply_new();
    m->reply = r;
    if (!post(rt, m))
        msg_free(m); /* finishes r with "stopping": fn does not run */
    return loop_call_wait(r, timeout_ms, msg, msglen);
}

struct hook_set {
    struct router *rt;
    const struct router_loop_hook *hook; /* NULL: detach */
    bool ok;
    char msg[256];
};

static void hook_set_run(void *ctx)
{
    struct hook_set *hs = ctx;
    struct router *rt = hs->rt;
    int fd = hs->hook ? hs->hook->fd : -1;
    hs->ok = rt->tops->watch(rt->tr, fd, hs->msg, sizeof hs->msg);
    rt->has_loop_hook = hs->ok && hs->hook;
    if (rt->has_loop_hook)
        rt->loop_hook = *hs->hook;
    else
        memset(&rt->loop_hook, 0, sizeof rt->loop_hook);
}

enum sb_status router_set_loop_hook(struct router *rt, const struct router_loop_hook *hook,
                                    int timeout_ms, char *msg, size_t msglen)
{
    struct hook_set hs = {rt, hook, false, ""};
    if (rt->has_loop_hook && hook) {
        /* one at a time; read here, on the owner of the calls that write it */
        snprintf(msg, msglen, "the router's loop has a hook already");
        return SB_ERR_STATE;
    }
    enum sb_status st = router_loop_call(rt, hook_set_run, &hs, timeout_ms, msg, msglen);
    if (st == SB_OK && !hs.ok) {
        str_copy(msg, msglen, hs.msg);
        st = SB_ERR_IO;
    }
    return st;
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

static int64_t sys_mono_us(void *ctx)
{
    (void)ctx;
    return clock_mono_us();
}

static int64_t sys_wall_ms(void *ctx)
{
    (void)ctx;
    return clock_wall_ms();
}

struct router *router_new(struct config *cfg, char *msg, size_t msglen)
{
    struct transport *tr = transport_new(msg, msglen);
    if (!tr) {
        config_free(cfg);
        return NULL;
    }
    struct router_env env = {&transport_curl_ops, tr, {sys_mono_us, sys_wall_ms, NULL}, false};
    return router_new_env(cfg, &env, msg, msglen);
}

int router_workers_resolve(long configured, long online)
{
    long n = configured;
    if (n < 0)
        n = online > WK_AUTO_MIN_CORES ? online : 0;
    return (int)(n > WK_MAX ? WK_MAX : n);
}

static int workers_for(const struct config *cfg)
{
    return router_workers_resolve(cfg->router.workers, sysconf(_SC_NPROCESSORS_ONLN));
}

struct router *router_new_env(struct config *cfg, const struct router_env *env, char *msg,
                              size_t msglen)
{
    struct router *rt = xcalloc(1, sizeof *rt);
    rt->clock = env->clock;
    rt->tops = env->transport;
    rt->tr = env->transport_self;
    if (!spend_open(rt, cfg, msg, msglen)) {
        rt->tops->free(rt->tr);
        config_free(cfg);
        free(rt);
        return NULL;
    }
    atomic_init(&rt->stopping, false);
    atomic_init(&rt->next_call_id, 1);
    pthread_mutex_init(&rt->inbox_mu, NULL);
    pthread_mutex_init(&rt->snap_mu, NULL);
    rt->accepting = true;
    rt->hook_waited = true;
    rt->published = xcalloc(1, sizeof *rt->published);
    rt->building = xcalloc(1, sizeof *rt->building);
    timerq_init(&rt->timers);
    timeline_init(&rt->timeline, ROUTER_KEY_EVENTS, ROUTER_CHURN_EVENTS);
    timeline_agg_init(&rt->churn);
    /* from the clock alone: under a fake clock a run repeats exactly */
    rng_seed(&rt->rng, (uint64_t)rt_wall_ms(rt) ^ (uint64_t)rt_now_us(rt) << 16);
    rt->started_ms = rt_now_ms(rt);
    int workers = workers_for(cfg); /* fixed for the router's life; a reload keeps it */
    if (workers > 0)
        rt->workers = wk_pool_new(rt, workers, env->workers_manual);
    router_load_config(rt, cfg);
    router_publish(rt, rt->started_ms);
    return rt;
}

enum sb_status router_start(struct router *rt, char *msg, size_t msglen)
{
    if (rt->started) {
        snprintf(msg, msglen, "router already started");
        return SB_ERR_STATE;
    }
    int rc = pthread_create(&rt->thread, NULL, router_main, rt);
    if (rc != 0) {
        snprintf(msg, msglen, "cannot start the router thread: %s", strerror(rc));
        return SB_ERR_IO;
    }
    rt->started = true;
    return SB_OK;
}

void router_stop(struct router *rt)
{
    if (!rt || rt->stopped)
        return;
    rt->stopped = true;
    if (rt->started) {
        atomic_store(&rt->stopping, true);
        rt->tops->wakeup(rt->tr);
        pthread_join(rt->thread, NULL);
    } else {
        shutdown_calls(rt); /* never started, or driven by router_step */
    }
    wk_pool_stop(rt->workers); /* every stream has had its final summary */
}

size_t router_workers_step(struct router *rt)
{
    return wk_pool_step(rt->workers);
}

void router_set_batch_end(struct router *rt, void (*fn)(void *ctx), void *ctx)
{
    if (rt->workers)
        wk_pool_set_batch_end(rt->workers, fn, ctx);
}

void router_free(struct router *rt)
{
    if (!rt)
        return;
    router_stop(rt);
    rt->tops->free(rt->tr);
    router_targets_free(rt);
    wk_pool_free(rt->workers);
    free(rt->by_id); /* every call has been freed by router_stop */
    spend_close(rt); /* every queued ledger row is written before this returns */
    timerq_cleanup(&rt->timers);
    timeline_cleanup(&rt->timeline);
    pthread_mutex_destroy(&rt->inbox_mu);
    pthread_mutex_destroy(&rt->snap_mu);
    free(rt->published);
    free(rt->building);
    free(rt);
}

void router_reload(struct router *rt, struct config *cfg)
{
    struct msg *m = xcalloc(1, sizeof *m);
    m->type = MSG_RELOAD;
    m->cfg = cfg;
    if (!post(rt, m))
        msg_free(m);
}

/* ---- calls ---------------------------------------------------------------------------------- */

uint64_t router_submit(struct router *rt, struct llm_request *req,
                       const struct router_call_opts *opts, const struct router_sink *sink)
{
    struct call *c = call_new(rt, req, opts, sink);
    c->id = atomic_fetch_add(&rt->next_call_id, 1);
    uint64_t id = c->id;
    struct msg *m = xcalloc(1, sizeof *m);
    m->type = MSG_SUBMIT;
    m->call = c;
    if (!post(rt, m))
        msg_free(m); /* call_free_unstarted tells the sink the router is stopped */
    return id;
}

static void post_cancel(struct router *rt, uint64_t call_id, bool shutdown)
{
    struct msg *m = xcalloc(1, sizeof *m);
    m->type = MSG_CANCEL;
    m->call_id = call_id;
    m->shutdown = shutdown;
    if (!post(rt, m))
        msg_free(m);
}

void router_cancel(struct router *rt, uint64_t call_id)
{
    post_cancel(rt, call_id, false);
}

void router_cancel_shutdown(struct router *rt, uint64_t call_id)
{
    post_cancel(rt, call_id, true);
}

static void post_resume(struct router *rt, uint64_t call_id, bool wake)
{
    struct msg *m = xcalloc(1, sizeof *m);
    m->type = MSG_RESUME;
    m->call_id = call_id;
    if (!post_wake(rt, m, wake))
        msg_free(m);
}

void router_resume(struct router *rt, uint64_t call_id)
{
    post_resume(rt, call_id, true);
}

void router_resume_lazy(struct router *rt, uint64_t call_id)
{
    post_resume(rt, call_id, false);
}

enum sb_status router_command(struct router *rt, const struct router_cmd *cmd, char *msg,
                              size_t msglen, int timeout_ms)
{
    if (refuse_on_router_thread(rt, msg, msglen))
        return SB_ERR_IO;
    struct msg *m = xcalloc(1, sizeof *m);
    m->type = MSG_COMMAND;
    m->cmd = *cmd;
    m->cmd.target[sizeof m->cmd.target - 1] = '\0';
    m->cmd.user[sizeof m->cmd.user - 1] = '\0';
    struct reply *r = reply_new();
    m->reply = r;
    if (!post(rt, m)) {
        msg_free(m); /* finishes r with "stopping", dropping the router's ref */
    }
    return reply_wait(r, timeout_ms, msg, msglen, NULL);
}

enum sb_status router_explain(struct router *rt, const char *model, const char *tag,
                              long prompt_tokens, struct buf *out, int timeout_ms)
{
    char why[128];
    if (refuse_on_router_thread(rt, why, sizeof why)) {
        buf_puts(out, why);
        return SB_ERR_IO;
    }
    struct msg *m = xcalloc(1, sizeof *m);
    m->type = MSG_EXPLAIN;
    m->model = xstrdup(model ? model : "");
    m->tag = xstrdup(tag);
    m->prompt_tokens = prompt_tokens;
    struct reply *r = reply_new();
    m->reply = r;
    if (!post(rt, m))
        msg_free(m);
    char msg[256];
    enum sb_status st = reply_wait(r, timeout_ms, msg, sizeof msg, out);
    if (st != SB_OK)
        buf_puts(out, msg);
    return st;
}

void router_record_vote(struct router *rt, const char *winner, const char *const *losers,
                        size_t n_losers, const char *prompt, const char *user)
{
    struct buf names;
    buf_init(&names);
    for (size_t i = 0; i < n_losers; i++)
        buf_printf(&names, "%s%s", i ? "," : "", losers[i] ? losers[i] : "");
    struct msg *m = xcalloc(1, sizeof *m);
    m->type = MSG_VOTE;
    m->model = xstrdup(winner ? winner : "");
    m->tag = buf_take(&names);
    m->user = xstrdup(user ? user : "operator");
    m->hash = prompt ? hash_fnv1a(prompt, strlen(prompt)) : 0;
    if (!post(rt, m))
        msg_free(m);
}

void router_note(struct router *rt, enum router_event_kind kind, const char *target,
                 const char *text)
{
    struct msg *m = xcalloc(1, sizeof *m);
    m->type = MSG_NOTE;
    m->note_kind = kind;
    m->tag = xstrdup(target ? target : "");
    m->model = xstrdup(text ? text : "");
    if (!post(rt, m))
        msg_free(m);
}

/* ---- snapshots ------------------------------------------------------------------------------ */

struct fleet *router_fleet(struct router *rt)
{
    return rt->fleet;
}

bool router_snapshot_read(struct router *rt, struct router_snapshot *out, uint64_t have_gen)
{
    pthread_mutex_lock(&rt->snap_mu);
    bool changed = rt->published->gen != have_gen;
    if (changed)
        memcpy(out, rt->published, sizeof *out);
    pthread_mutex_unlock(&rt->snap_mu);
    return changed;
}
