/*
 * backend_fleet.c - the console backend over a fleet found through Redis
 * (`switchboard console --fleet redis://...`). One worker thread owns a hiredis connection
 * and, every POLL_MS:
 *
 *   - lists the instances that heartbeat (P instances, scored by their last heartbeat, the
 *     last FLEET_HEARTBEAT_TTL_MS) and reads their summaries (P inst:<name>, /admin/state's
 *     shape): an instance that joins appears, one that stops heartbeating disappears;
 *   - parses each (console_state_parse) and merges them (console_merge) into the board's
 *     snapshot; the operator audit stream (P audit) becomes the events timeline;
 *   - publishes the operator's commands on the fleet's notice channel (and the audit stream),
 *     as an instance would: every instance applies them within its next tick and stores the
 *     resulting override state.
 *
 * Explain, the prompt pane and the detail view's quality lines need a gateway's HTTP API: they
 * answer that they need --attach. While Redis is unreachable the last state stays, every instance
 * is shown down
 * ("redis unreachable"), and the worker retries with backoff.
 *
 * Threads: the main (curses) thread calls the ops, which copy under f->mu or post a job and
 * return; the worker alone talks to Redis. No lock is held during Redis I/O.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>

#include "switchboard/command.h"
#include "switchboard/console_backend.h"
#include "switchboard/fleet_tls.h"
#include "switchboard/fleet.h"
#include "switchboard/log.h"

#define POLL_MS      500
#define MAX_PARTS    ((size_t)CONSOLE_MAX_INSTANCES * ROUTER_MAX_TARGETS)
#define IO_TIMEOUT   1000
#define AUDIT_EVENTS 64

enum fjob_kind { FJOB_COMMAND, FJOB_EXPLAIN, FJOB_REQUEST, FJOB_CHAT };

struct fjob {
    struct fjob *next;
    enum fjob_kind kind;
    struct router_cmd cmd;
    char label[128];
    uint64_t id;
    struct llm_request *req; /* CHAT: owned */
    struct router_sink sink;
};

struct fpart { /* one target on one instance, for breakdown */
    char instance[96];
    struct console_part p;
    char target[64];
};

struct fleet_console {
    /* set at creation */
    char host[256];
    int port, db;
    bool is_unix;
    bool is_tls;                 /* rediss:// */
    struct fleet_tls *tls;       /* its TLS context (fleet_tls.h); NULL otherwise */
    struct fleet_tls_pump *pump; /* worker thread: the TLS bridge of c */
    char *password;
    char prefix[64];
    char user[64];
    pthread_t thread;
    atomic_bool stopping;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* under mu: what the worker published, and the jobs for it */
    struct router_snapshot *pub;
    struct console_instance inst[CONSOLE_MAX_INSTANCES];
    size_t n_inst;
    struct fpart *parts; /* MAX_PARTS */
    size_t n_parts;
    bool down;
    struct fjob *jobs, *jobs_tail;
    struct console_reply *replies, *replies_tail;
    uint64_t next_id;

    /* worker only */
    redisContext *c;
    int64_t retry_at_ms, backoff_ms;
    struct router_snapshot *work, *tmp[CONSOLE_MAX_INSTANCES];
    char names[CONSOLE_MAX_INSTANCES][96];
    uint64_t gen;
};

/* ---- replies ----------------------------------------------------------------------------------
 */

static void reply(struct fleet_console *f, enum console_job_type type, const char *label,
                  enum sb_status st, const char *msg)
{
    struct console_reply *r = xcalloc(1, sizeof *r);
    r->type = type;
    str_copy(r->label, sizeof r->label, label);
    r->status = st;
    str_copy(r->msg, sizeof r->msg, msg);
    pthread_mutex_lock(&f->mu);
    if (f->replies_tail)
        f->replies_tail->next = r;
    else
        f->replies = r;
    f->replies_tail = r;
    pthread_mutex_unlock(&f->mu);
}

/* ---- Redis ------------------------------------------------------------------------------------
 */

static void disconnect(struct fleet_console *f)
{
    if (f->c)
        redisFree(f->c);
    f->c = NULL;
    fleet_tls_pump_close(f->pump); /* after redisFree: the pump sees its socket close */
    f->pump = NULL;
}

static redisReply *cmd(struct fleet_console *f, int argc, const char **argv)
{
    redisReply *r = redisCommandArgv(f->c, argc, argv, NULL);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        if (r)
            freeReplyObject(r);
        disconnect(f);
        return NULL;
    }
    return r;
}

static bool connect_redis(struct fleet_console *f, char *err, size_t errlen)
{
    struct timeval tv = {.tv_sec = IO_TIMEOUT / 1000,
                         .tv_usec = (suseconds_t)(IO_TIMEOUT % 1000) * 1000};
    if (f->is_tls) {
        f->c = fleet_tls_connect(f->tls, f->host, f->port, IO_TIMEOUT, &f->pump, err, errlen);
        if (!f->c)
            return false; /* err says why */
    } else
        f->c = f->is_unix ? redisConnectUnixWithTimeout(f->host, tv)
                          : redisConnectWithTimeout(f->host, f->port, tv);
    if (!f->c || f->c->err) {
        snprintf(err, errlen, "%s", f->c ? f->c->errstr : "out of memory");
        disconnect(f);
        return false;
    }
    redisSetTimeout(f->c, tv);
    if (f->password) {
        redisReply *r = cmd(f, 2, (const char *[]){"AUTH", f->password});
        if (!r) {
            snprintf(err, errlen, "redis refused AUTH");
            return false;
        }
        freeReplyObject(r);
    }
    if (f->db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", f->db);
        redisReply *r = cmd(f, 2, (const char *[]){"SELECT", db});
        if (!r) {
            snprintf(err, errlen, "redis refused SELECT %s", db);
            return false;
        }
        freeReplyObject(r);
    }
    return true;
}

/* ---- jobs -------------------------------------------------------------------------------------
 */

static char *command_json(const struct fleet_console *f, const struct router_cmd *c)
{
    const struct command_def *def = command_for_type(c->type);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", def ? def->name : "?");
    cJSON_AddStringToObject(o, "target", c->target);
    cJSON_AddNumberToObject(o, "weight", c->weight);
    cJSON_AddNumberToObject(o, "expires_at",
                            c->expires_ms > 0 ? (double)(clock_wall_ms() + c->expires_ms) : 0);
    cJSON_AddStringToObject(o, "user", f->user);
    cJSON_AddBoolToObject(o, "store", true); /* every instance stores its new state */
    char *text = cJSON_PrintUnformatted(o);
    char *copy = xstrdup(text);
    cJSON_free(text);
    cJSON_Delete(o);
    return copy;
}

static void run_command(struct fleet_console *f, const struct fjob *j)
{
    char *body = command_json(f, &j->cmd);
    char origin[96], chan[128], audit[128], max[24], msg[256];
    snprintf(origin, sizeof origin, "console:%.60s", f->user);
    snprintf(chan, sizeof chan, "%snotices", f->prefix);
    snprintf(audit, sizeof audit, "%saudit", f->prefix);
    snprintf(max, sizeof max, "%d", FLEET_AUDIT_MAX);
    char *payload = xasprintf("%s\tcommand\t%s", origin, body);
    redisReply *r = f->c ? cmd(f, 3, (const char *[]){"PUBLISH", chan, payload}) : NULL;
    long long n = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r)
        freeReplyObject(r);
    r = f->c ? cmd(f, 10,
                   (const char *[]){"XADD", audit, "MAXLEN", "~", max, "*", "instance", origin,
                                    "command", body})
             : NULL;
    if (r)
        freeReplyObject(r);
    if (n < 0)
        snprintf(msg, sizeof msg, "not sent: redis unreachable");
    else
        snprintf(msg, sizeof msg, "%s: sent through redis to %lld instance%s", j->label, n,
                 n == 1 ? "" : "s");
    reply(f, CONSOLE_JOB_COMMAND, j->label, n < 0 ? SB_ERR_IO : SB_OK, msg);
    free(payload);
    free(body);
}

static void run_chat(struct fjob *j)
{
    static const char text[] = "the prompt pane needs a gateway: console --attach URL";
    struct llm_event ev = {.type = LLM_EV_ERROR,
                           .text = text,
                           .len = sizeof text - 1,
                           .errclass = LLM_ERR_BAD_REQUEST};
    j->sink.on_event(j->sink.ctx, &ev);
    struct router_result res = {.call_id = j->id,
                                .err = LLM_ERR_BAD_REQUEST,
                                .target = j->cmd.target,
                                .model = "",
                                .route = "",
                                .baseline_cost_usd = -1,
                                .ttft_us = -1};
    str_copy(res.message, sizeof res.message, text);
    j->sink.on_done(j->sink.ctx, &res);
}

static void run_jobs(struct fleet_console *f)
{
    pthread_mutex_lock(&f->mu);
    struct fjob *j = f->jobs;
    f->jobs = f->jobs_tail = NULL;
    pthread_mutex_unlock(&f->mu);
    while (j) {
        struct fjob *next = j->next;
        switch (j->kind) {
        case FJOB_COMMAND:
            run_command(f, j);
            break;
        case FJOB_EXPLAIN:
            reply(f, CONSOLE_JOB_EXPLAIN, j->label, SB_ERR_STATE,
                  "explain needs a gateway's admin API: console --attach URL");
            break;
        case FJOB_REQUEST:
            reply(f, CONSOLE_JOB_REQUEST, j->label, SB_ERR_STATE,
                  "request lookup needs a gateway's admin API: console --attach URL");
            break;
        case FJOB_CHAT:
            run_chat(j);
            break;
        }
        if (j->req) {
            llm_request_cleanup(j->req);
            free(j->req);
        }
        free(j);
        j = next;
    }
}

/* ---- the state ------------------------------------------------------------------------------ */

/* The instances heartbeating now; returns how many (at most CONSOLE_MAX_INSTANCES). */
static size_t list_instances(struct fleet_console *f)
{
    char key[128], since[32];
    snprintf(key, sizeof key, "%sinstances", f->prefix);
    snprintf(since, sizeof since, "%lld", (long long)(clock_wall_ms() - FLEET_HEARTBEAT_TTL_MS));
    redisReply *r = cmd(f, 4, (const char *[]){"ZRANGEBYSCORE", key, since, "+inf"});
    size_t n = 0;
    if (r && r->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < r->elements && n < CONSOLE_MAX_INSTANCES; i++) {
            if (r->element[i]->type == REDIS_REPLY_STRING)
                str_copy(f->names[n++], sizeof f->names[0], r->element[i]->str);
        }
    }
    if (r)
        freeReplyObject(r);
    return n;
}

static void note_parts(struct fleet_console *f, const struct router_snapshot *s, const char *inst,
                       struct fpart *out, size_t *n)
{
    for (size_t i = 0; i < s->n_targets && *n < MAX_PARTS; i++) {
        const struct router_target_snap *t = &s->targets[i];
        struct fpart *p = &out[(*n)++];
        memset(p, 0, sizeof *p);
        str_copy(p->target, sizeof p->target, t->name);
        str_copy(p->p.instance, sizeof p->p.instance, inst);
        p->p.up = p->p.has_target = true;
        p->p.breaker = t->breaker;
        p->p.forced_live = t->forced_live;
        p->p.drained = t->drained;
        p->p.pinned = t->pinned;
        p->p.weight = t->weight;
        p->p.calls = t->stats.calls;
        p->p.failures = t->stats.failures;
        p->p.in_flight = t->stats.in_flight;
        p->p.spend_usd = t->spend_today_usd;
        p->p.p95_ms = t->stats.latency_1m[1];
        p->p.req_per_s = t->stats.req_per_s;
    }
    (void)f;
}

/* " until 12:13:04Z: weight 1 -> weight 1, drained" from an audit entry's expires_at and the
 * issuing instance's before / after (absent on a command a fleet console sent: it has no
 * state of its own; each instance's ledger has the full audit row). */
static void audit_tail(const cJSON *o, char *text, size_t len, size_t cap)
{
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(o, "expires_at");
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "before");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "after");
    if (len >= cap)
        return;
    if (cJSON_IsNumber(exp) && exp->valuedouble > 0) {
        char hms[16];
        time_t secs = (time_t)(exp->valuedouble / 1000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        strftime(hms, sizeof hms, "%H:%M:%SZ", &tm);
        int n = snprintf(text + len, cap - len, " until %s", hms);
        len += n > 0 ? (size_t)n : 0;
    }
    if (len < cap && cJSON_IsString(b) && cJSON_IsString(a))
        snprintf(text + len, cap - len, ": %s -> %s", b->valuestring, a->valuestring);
}

/* The audit stream, newest last, as OPERATOR events. */
static void read_audit(struct fleet_console *f, struct router_snapshot *s)
{
    char key[128], count[16];
    snprintf(key, sizeof key, "%saudit", f->prefix);
    snprintf(count, sizeof count, "%d", AUDIT_EVENTS);
    redisReply *r = cmd(f, 6, (const char *[]){"XREVRANGE", key, "+", "-", "COUNT", count});
    s->n_events = 0;
    if (r && r->type == REDIS_REPLY_ARRAY) {
        for (size_t i = r->elements; i-- > 0 && s->n_events < ROUTER_MAX_EVENTS;) {
            const redisReply *e = r->element[i];
            if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[1]->elements < 4)
                continue;
            const redisReply *fv = e->element[1];
            struct router_event *ev = &s->events[s->n_events++];
            memset(ev, 0, sizeof *ev);
            /* the stream id "<ms>-<n>" only grows: so does seq */
            char *dash = NULL;
            long long ms = strtoll(e->element[0]->str, &dash, 10);
            long long nth = dash && *dash == '-' ? strtoll(dash + 1, NULL, 10) : 0;
            ev->seq = (uint64_t)ms * 1024 + (uint64_t)(nth & 1023);
            ev->wall_ms = ms;
            ev->kind = ROUTER_EV_OPERATOR;
            cJSON *o = cJSON_Parse(fv->element[3]->str);
            const cJSON *ty = cJSON_GetObjectItemCaseSensitive(o, "type");
            const cJSON *tg = cJSON_GetObjectItemCaseSensitive(o, "target");
            const cJSON *us = cJSON_GetObjectItemCaseSensitive(o, "user");
            str_copy(ev->target, sizeof ev->target, cJSON_IsString(tg) ? tg->valuestring : "");
            int len = snprintf(ev->text, sizeof ev->text, "%.60s on %.40s: %.20s %.60s",
                               cJSON_IsString(us) ? us->valuestring : "?", fv->element[1]->str,
                               cJSON_IsString(ty) ? ty->valuestring : "?",
                               cJSON_IsString(tg) ? tg->valuestring : "");
            audit_tail(o, ev->text, len > 0 ? (size_t)len : 0, sizeof ev->text);
            cJSON_Delete(o);
        }
    }
    if (r)
        freeReplyObject(r);
}

/* Reads and merges every instance's heartbeat; publishes it. False when Redis failed. */
static bool poll_state(struct fleet_console *f)
{
    size_t n = list_instances(f);
    if (!f->c)
        return false;
    const char *argv[CONSOLE_MAX_INSTANCES + 1];
    char keys[CONSOLE_MAX_INSTANCES][160];
    argv[0] = "MGET";
    for (size_t i = 0; i < n; i++) {
        snprintf(keys[i], sizeof keys[i], "%sinst:%s", f->prefix, f->names[i]);
        argv[i + 1] = keys[i];
    }
    redisReply *r = n ? cmd(f, (int)n + 1, argv) : NULL;
    if (n && !r)
        return false;
    const struct router_snapshot *in[CONSOLE_MAX_INSTANCES];
    const char *names[CONSOLE_MAX_INSTANCES];
    struct console_instance inst[CONSOLE_MAX_INSTANCES];
    struct fpart *parts = xcalloc(MAX_PARTS, sizeof *parts);
    size_t m = 0, n_parts = 0;
    for (size_t i = 0; r && i < r->elements && i < n; i++) {
        const redisReply *v = r->element[i];
        char msg[128];
        if (v->type != REDIS_REPLY_STRING ||
            console_state_parse(v->str, v->len, f->tmp[m], msg, sizeof msg) != SB_OK)
            continue; /* gone between the two reads, or not a heartbeat we understand */
        memset(&inst[m], 0, sizeof inst[m]);
        str_copy(inst[m].name, sizeof inst[m].name, f->names[i]);
        inst[m].up = inst[m].ever_up = true;
        inst[m].calls = f->tmp[m]->gateway_calls;
        note_parts(f, f->tmp[m], f->names[i], parts, &n_parts);
        in[m] = f->tmp[m];
        names[m] = f->names[i];
        m++;
    }
    if (r)
        freeReplyObject(r);
    memset(f->work, 0, sizeof *f->work);
    console_merge(in, names, m, f->work);
    read_audit(f, f->work);
    f->work->fleet.enabled = f->work->fleet.connected = true;
    f->work->fleet.instances = (long)m;
    snprintf(f->work->fleet.text, sizeof f->work->fleet.text, "fleet: %zu instance%s", m,
             m == 1 ? "" : "s");
    f->work->gen = ++f->gen;
    f->work->wall_ms = clock_wall_ms();
    pthread_mutex_lock(&f->mu);
    memcpy(f->pub, f->work, sizeof *f->pub);
    memcpy(f->inst, inst, m * sizeof inst[0]);
    f->n_inst = m;
    struct fpart *old = f->parts;
    f->parts = parts;
    f->n_parts = n_parts;
    f->down = false;
    pthread_mutex_unlock(&f->mu);
    free(old);
    return f->c != NULL;
}

static void mark_down(struct fleet_console *f, const char *why)
{
    int64_t now = clock_wall_ms();
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < f->n_inst; i++) {
        if (f->inst[i].up) {
            f->inst[i].up = false;
            f->inst[i].down_since_ms = now;
        }
        snprintf(f->inst[i].error, sizeof f->inst[i].error, "redis unreachable: %.120s", why);
    }
    if (!f->down) { /* the header says so: "fleet: redis unreachable since HH:MM:SS" */
        time_t secs = (time_t)(now / 1000);
        struct tm tm;
        localtime_r(&secs, &tm);
        char hms[16];
        strftime(hms, sizeof hms, "%H:%M:%S", &tm);
        f->pub->fleet.connected = false;
        f->pub->fleet.down_since_ms = now;
        snprintf(f->pub->fleet.text, sizeof f->pub->fleet.text, "fleet: redis unreachable since %s",
                 hms);
        f->pub->gen = ++f->gen;
    }
    f->down = true;
    pthread_mutex_unlock(&f->mu);
}

static void wait_ms(struct fleet_console *f, int64_t ms)
{
    struct timespec ts;
    clock_deadline_in(&ts, ms);
    pthread_mutex_lock(&f->mu);
    if (!atomic_load(&f->stopping) && !f->jobs)
        pthread_cond_timedwait(&f->cv, &f->mu, &ts);
    pthread_mutex_unlock(&f->mu);
}

static void *worker(void *arg)
{
    struct fleet_console *f = arg;
    int64_t next_poll = 0;
    while (!atomic_load(&f->stopping)) {
        int64_t now = clock_wall_ms();
        char err[128] = "";
        if (!f->c && now >= f->retry_at_ms && !connect_redis(f, err, sizeof err)) {
            mark_down(f, err);
            f->retry_at_ms = now + f->backoff_ms;
            f->backoff_ms =
                f->backoff_ms * 2 > FLEET_BACKOFF_MAX_MS ? FLEET_BACKOFF_MAX_MS : f->backoff_ms * 2;
        } else if (f->c) {
            f->backoff_ms = FLEET_BACKOFF_MIN_MS;
        }
        run_jobs(f); /* commands fail with "redis unreachable" while it is */
        if (f->c && now >= next_poll) {
            if (!poll_state(f))
                mark_down(f, "connection lost");
            next_poll = now + POLL_MS;
        }
        wait_ms(f, f->c ? 50 : 100);
    }
    disconnect(f);
    return NULL;
}

/* ---- the ops (main thread) ---------------------------------------------------------------------
 */

static void post(struct fleet_console *f, struct fjob *j)
{
    pthread_mutex_lock(&f->mu);
    if (f->jobs_tail)
        f->jobs_tail->next = j;
    else
        f->jobs = j;
    f->jobs_tail = j;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static bool fleet_snapshot(void *self, struct router_snapshot *out, bool *stale, uint64_t have_gen)
{
    struct fleet_console *f = self;
    pthread_mutex_lock(&f->mu);
    bool changed = f->pub->gen != have_gen;
    if (changed)
        memcpy(out, f->pub, sizeof *out);
    if (stale) {
        for (size_t i = 0; i < ROUTER_MAX_TARGETS; i++)
            stale[i] = f->down;
    }
    pthread_mutex_unlock(&f->mu);
    return changed;
}

static size_t fleet_instances(void *self, struct console_instance *out, size_t max)
{
    struct fleet_console *f = self;
    pthread_mutex_lock(&f->mu);
    size_t n = f->n_inst;
    memcpy(out, f->inst, (n < max ? n : max) * sizeof *out);
    pthread_mutex_unlock(&f->mu);
    return n;
}

static size_t fleet_breakdown(void *self, const char *name, struct console_part *out, size_t max)
{
    struct fleet_console *f = self;
    size_t n = 0;
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < f->n_parts; i++) {
        if (str_eq(f->parts[i].target, name)) {
            if (n < max) {
                out[n] = f->parts[i].p;
                out[n].up = !f->down;
            }
            n++;
        }
    }
    pthread_mutex_unlock(&f->mu);
    return n;
}

static void fleet_command(void *self, const struct router_cmd *c, const char *label)
{
    struct fjob *j = xcalloc(1, sizeof *j);
    j->kind = FJOB_COMMAND;
    j->cmd = *c;
    str_copy(j->label, sizeof j->label, label);
    post(self, j);
}

static void fleet_explain(void *self, const char *model, const char *tag, long tokens,
                          const char *label)
{
    (void)model;
    (void)tag;
    (void)tokens;
    struct fjob *j = xcalloc(1, sizeof *j);
    j->kind = FJOB_EXPLAIN;
    str_copy(j->label, sizeof j->label, label);
    post(self, j);
}

static void fleet_request(void *self, const char *request_id, const char *label)
{
    (void)request_id;
    struct fjob *j = xcalloc(1, sizeof *j);
    j->kind = FJOB_REQUEST;
    str_copy(j->label, sizeof j->label, label);
    post(self, j);
}

/* Quality is read from a gateway's ledger through its admin API (GET /admin/quality/TARGET):
 * a heartbeat carries no admin URL and this console has no admin token, so say so. */
static bool fleet_quality(void *self, const char *target, struct console_quality *out)
{
    (void)self;
    memset(out, 0, sizeof *out);
    str_copy(out->target, sizeof out->target, target ? target : "");
    str_copy(out->missing, sizeof out->missing,
             "it needs a gateway's admin API: console --attach URL");
    return true;
}

static struct console_reply *fleet_take(void *self)
{
    struct fleet_console *f = self;
    pthread_mutex_lock(&f->mu);
    struct console_reply *r = f->replies;
    f->replies = f->replies_tail = NULL;
    pthread_mutex_unlock(&f->mu);
    return r;
}

static uint64_t fleet_chat(void *self, const char *target, const char *request_id,
                           struct llm_request *req, const struct router_sink *sink)
{
    (void)request_id; /* no gateway to call: run_chat answers with an error */
    struct fleet_console *f = self;
    struct fjob *j = xcalloc(1, sizeof *j);
    j->kind = FJOB_CHAT;
    str_copy(j->cmd.target, sizeof j->cmd.target, target);
    j->req = req;
    j->sink = *sink;
    pthread_mutex_lock(&f->mu);
    j->id = ++f->next_id;
    pthread_mutex_unlock(&f->mu);
    uint64_t id = j->id;
    post(f, j);
    return id;
}

static void fleet_cancel(void *self, uint64_t id)
{
    (void)self; /* a prompt-pane call ends at once here: nothing to cancel */
    (void)id;
}

static void fleet_vote(void *self, const char *winner, const char *const *losers, size_t n,
                       const char *prompt)
{
    (void)self; /* votes need a gateway's ledger: --attach */
    (void)winner;
    (void)losers;
    (void)n;
    (void)prompt;
}

static void fleet_quit_info(void *self, const struct router_snapshot *snap,
                            struct console_quit *out)
{
    (void)self;
    (void)snap;
    memset(out, 0, sizeof *out); /* the instances keep serving */
}

static void fleet_free_self(void *self)
{
    struct fleet_console *f = self;
    pthread_mutex_lock(&f->mu);
    atomic_store(&f->stopping, true);
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->thread, NULL);
    while (f->jobs) {
        struct fjob *j = f->jobs;
        f->jobs = j->next;
        if (j->req) {
            llm_request_cleanup(j->req);
            free(j->req);
        }
        free(j);
    }
    console_reply_free(f->replies);
    for (size_t i = 0; i < CONSOLE_MAX_INSTANCES; i++)
        free(f->tmp[i]);
    free(f->work);
    free(f->pub);
    free(f->parts);
    if (f->password) {
        explicit_bzero(f->password, strlen(f->password));
        free(f->password);
    }
    fleet_tls_free(f->tls);
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

static const struct console_backend_ops fleet_ops = {
    .snapshot = fleet_snapshot,
    .instances = fleet_instances,
    .breakdown = fleet_breakdown,
    .command = fleet_command,
    .explain = fleet_explain,
    .request = fleet_request,
    .quality = fleet_quality,
    .take = fleet_take,
    .chat = fleet_chat,
    .cancel = fleet_cancel,
    .vote = fleet_vote,
    .quit_info = fleet_quit_info,
    .free = fleet_free_self,
};

struct console_backend *console_backend_fleet_new(const struct console_fleet_opts *o, char *msg,
                                                  size_t msglen)
{
    struct fleet_console *f = xcalloc(1, sizeof *f);
    if (!fleet_parse_url(o->url, f->host, sizeof f->host, &f->port, &f->db, &f->is_unix,
                         &f->is_tls)) {
        snprintf(msg, msglen,
                 "--fleet: expected redis://host:port/db, rediss://host:port/db or unix:///path");
        free(f);
        return NULL;
    }
    if (f->is_tls) {
        struct fleet_tls_opts to = {
            .ca_file = o->cacert, .cert_file = o->tls_cert, .key_file = o->tls_key};
        f->tls = fleet_tls_new(&to, msg, msglen);
        if (!f->tls) {
            free(f);
            return NULL;
        }
    }
    f->password = xstrdup(o->password);
    str_copy(f->prefix, sizeof f->prefix, o->prefix ? o->prefix : "switchboard:");
    str_copy(f->user, sizeof f->user, o->user ? o->user : console_login());
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    f->pub = xcalloc(1, sizeof *f->pub);
    f->work = xcalloc(1, sizeof *f->work);
    for (size_t i = 0; i < CONSOLE_MAX_INSTANCES; i++)
        f->tmp[i] = xcalloc(1, sizeof *f->tmp[i]);
    f->backoff_ms = FLEET_BACKOFF_MIN_MS;
    int rc = pthread_create(&f->thread, NULL, worker, f);
    if (rc != 0) {
        snprintf(msg, msglen, "cannot start the fleet console's thread: %s", strerror(rc));
        f->thread = pthread_self();
        atomic_store(&f->stopping, true);
        free(f->pub);
        free(f->work);
        for (size_t i = 0; i < CONSOLE_MAX_INSTANCES; i++)
            free(f->tmp[i]);
        free(f->password);
        fleet_tls_free(f->tls);
        free(f);
        return NULL;
    }
    struct console_backend *b = xcalloc(1, sizeof *b);
    b->ops = &fleet_ops;
    b->self = f;
    b->mode = "fleet";
    return b;
}
