/*
 * backend_remote.c - the console backend over running `switchboard serve` instances (the
 * attached console). One worker thread owns libcurl (a multi handle) and, per instance:
 *
 *   - polls GET /admin/state every poll_ms (a poll slower than timeout_ms fails): the last
 *     good snapshot is kept, so an unreachable instance keeps its last figures, greyed out,
 *     with "unreachable since" the first failed poll; polling goes on, so it comes back alone;
 *   - follows GET /admin/events (SSE) and resumes it with Last-Event-ID after any break (a
 *     stream quiet for EV_SILENT_S - no heartbeat - counts as broken);
 *   - runs the operator's commands, explains, prompt-pane calls (remote_chat.c) and votes;
 *   - while the detail view watches a target, asks GET /admin/quality/TARGET every few
 *     seconds and merges the answers (remote_quality.c).
 *
 * The merged view (console_merge) and every reply go to the main thread through a mailbox:
 * the worker builds a snapshot in its own memory and copies it under r->mu; the main thread
 * copies it out under r->mu. Jobs come the other way through r->mu and curl_multi_wakeup. No
 * lock is held while libcurl runs; the main thread never calls libcurl.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "remote.h"

#define EV_RETRY_MS    1000
#define EV_SILENT_S    3
#define JOB_TIMEOUT_MS 5000
#define EV_KEEP        ROUTER_MAX_EVENTS

/* ---- posting from the main thread -------------------------------------------------------- */

static void post(struct remote *r, struct rjob *j)
{
    pthread_mutex_lock(&r->mu);
    j->next = NULL;
    if (r->jobs_tail)
        r->jobs_tail->next = j;
    else
        r->jobs = j;
    r->jobs_tail = j;
    pthread_mutex_unlock(&r->mu);
    curl_multi_wakeup(r->multi);
}

static void remote_command(void *self, const struct router_cmd *cmd, const char *label)
{
    struct rjob *j = xcalloc(1, sizeof *j);
    j->kind = RJOB_COMMAND;
    j->cmd = *cmd;
    str_copy(j->label, sizeof j->label, label);
    post(self, j);
}

static void remote_explain(void *self, const char *model, const char *tag, long tokens,
                           const char *label)
{
    struct rjob *j = xcalloc(1, sizeof *j);
    j->kind = RJOB_EXPLAIN;
    str_copy(j->model, sizeof j->model, model);
    str_copy(j->tag, sizeof j->tag, tag ? tag : "");
    j->tokens = tokens;
    str_copy(j->label, sizeof j->label, label);
    post(self, j);
}

static void remote_request(void *self, const char *request_id, const char *label)
{
    struct rjob *j = xcalloc(1, sizeof *j);
    j->kind = RJOB_REQUEST;
    str_copy(j->model, sizeof j->model, request_id);
    str_copy(j->label, sizeof j->label, label);
    post(self, j);
}

static uint64_t remote_chat(void *self, const char *target, const char *request_id,
                            struct llm_request *req, const struct router_sink *sink)
{
    struct remote *r = self;
    struct rjob *j = xcalloc(1, sizeof *j);
    j->kind = RJOB_CHAT;
    str_copy(j->target, sizeof j->target, target);
    str_copy(j->request_id, sizeof j->request_id, request_id);
    j->req = req;
    j->sink = *sink;
    pthread_mutex_lock(&r->mu);
    j->id = ++r->next_call_id;
    pthread_mutex_unlock(&r->mu);
    uint64_t id = j->id;
    post(r, j);
    return id;
}

static void remote_cancel(void *self, uint64_t id)
{
    struct rjob *j = xcalloc(1, sizeof *j);
    j->kind = RJOB_CANCEL;
    j->id = id;
    post(self, j);
}

static void remote_vote(void *self, const char *winner, const char *const *losers, size_t n,
                        const char *prompt)
{
    struct rjob *j = xcalloc(1, sizeof *j);
    j->kind = RJOB_VOTE;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "winner", winner);
    cJSON *l = cJSON_AddArrayToObject(o, "losers");
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(l, cJSON_CreateString(losers[i]));
    if (prompt)
        cJSON_AddStringToObject(o, "prompt", prompt);
    char *s = cJSON_PrintUnformatted(o);
    j->body = xstrdup(s);
    cJSON_free(s);
    cJSON_Delete(o);
    post(self, j);
}

static struct console_reply *remote_take(void *self)
{
    struct remote *r = self;
    pthread_mutex_lock(&r->mu);
    struct console_reply *list = r->replies;
    r->replies = r->replies_tail = NULL;
    pthread_mutex_unlock(&r->mu);
    return list;
}

static bool remote_snapshot(void *self, struct router_snapshot *out, bool *stale, uint64_t have)
{
    struct remote *r = self;
    bool got = false;
    pthread_mutex_lock(&r->mu);
    if (r->pub_gen != 0 && r->pub_gen != have) {
        memcpy(out, r->pub, sizeof *out);
        if (stale)
            memcpy(stale, r->pub_stale, sizeof r->pub_stale);
        got = true;
    }
    pthread_mutex_unlock(&r->mu);
    return got;
}

static size_t remote_instances(void *self, struct console_instance *out, size_t max)
{
    struct remote *r = self;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n && i < max; i++)
        out[i] = r->pub_inst[i];
    pthread_mutex_unlock(&r->mu);
    return r->n;
}

static size_t remote_breakdown(void *self, const char *name, struct console_part *out, size_t max)
{
    struct remote *r = self;
    size_t n = 0;
    pthread_mutex_lock(&r->mu);
    for (size_t k = 0; k < r->n && n < max; k++) {
        const struct rinst *in = &r->inst[k];
        struct console_part *p = &out[n++];
        memset(p, 0, sizeof *p);
        str_copy(p->instance, sizeof p->instance, in->name);
        p->up = r->pub_inst[k].up;
        for (size_t i = 0; in->snap && i < in->snap->n_targets; i++) {
            const struct router_target_snap *t = &in->snap->targets[i];
            if (!str_eq(t->name, name))
                continue;
            p->has_target = true;
            p->breaker = t->breaker;
            p->forced_live = t->forced_live;
            p->drained = t->drained;
            p->pinned = t->pinned;
            p->weight = t->weight;
            p->calls = t->stats.calls;
            p->failures = t->stats.failures;
            p->in_flight = t->stats.in_flight;
            p->spend_usd = t->stats.spend_usd;
            p->p95_ms = t->stats.latency_1m[1];
            p->req_per_s = t->stats.req_per_s;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return n;
}

static void remote_quit_info(void *self, const struct router_snapshot *snap,
                             struct console_quit *out)
{
    (void)self, (void)snap;
    memset(out, 0, sizeof *out); /* detaching stops nothing */
}

/* ---- the worker: replies and publishing ---------------------------------------------------- */

void remote_reply(struct remote *r, struct console_reply *rep)
{
    pthread_mutex_lock(&r->mu);
    rep->next = NULL;
    if (r->replies_tail)
        r->replies_tail->next = rep;
    else
        r->replies = rep;
    r->replies_tail = rep;
    pthread_mutex_unlock(&r->mu);
}

/* A local event on the merged timeline (an instance came or went, or one of its events). */
void remote_event(struct remote *r, enum router_event_kind kind, const char *target,
                  int64_t wall_ms, const char *inst, const char *text)
{
    struct router_event *e = &r->ev[r->ev_next];
    r->ev_next = (r->ev_next + 1) % EV_KEEP;
    if (r->ev_n < EV_KEEP)
        r->ev_n++;
    memset(e, 0, sizeof *e);
    e->seq = ++r->ev_seq;
    e->wall_ms = wall_ms ? wall_ms : clock_wall_ms();
    e->kind = kind;
    str_copy(e->target, sizeof e->target, target ? target : "");
    if (r->n > 1 && inst)
        snprintf(e->text, sizeof e->text, "[%.40s] %s", inst, text);
    else
        str_copy(e->text, sizeof e->text, text);
    r->dirty = true;
}

static void publish(struct remote *r)
{
    const struct router_snapshot *in[CONSOLE_MAX_INSTANCES];
    const char *names[CONSOLE_MAX_INSTANCES];
    for (size_t k = 0; k < r->n; k++) {
        in[k] = r->inst[k].snap;
        names[k] = r->inst[k].name;
    }
    struct router_snapshot *w = r->work;
    console_merge(in, names, r->n, w);
    w->n_events = r->ev_n;
    for (size_t i = 0; i < r->ev_n; i++)
        w->events[i] = r->ev[(r->ev_next + EV_KEEP - r->ev_n + i) % EV_KEEP];
    bool stale[ROUTER_MAX_TARGETS] = {false};
    for (size_t i = 0; i < w->n_targets; i++) {
        stale[i] = true;
        for (size_t k = 0; k < r->n; k++) {
            const struct rinst *ri = &r->inst[k];
            for (size_t t = 0; ri->up && ri->snap && t < ri->snap->n_targets && stale[i]; t++)
                stale[i] = !str_eq(ri->snap->targets[t].name, w->targets[i].name);
        }
    }
    pthread_mutex_lock(&r->mu);
    w->gen = ++r->pub_gen;
    memcpy(r->pub, w, sizeof *w);
    memcpy(r->pub_stale, stale, sizeof stale);
    for (size_t k = 0; k < r->n; k++) {
        struct console_instance *ci = &r->pub_inst[k];
        const struct rinst *ri = &r->inst[k];
        str_copy(ci->name, sizeof ci->name, ri->name);
        ci->up = ri->up;
        ci->ever_up = ri->ever_up;
        ci->down_since_ms = ri->down_since_ms;
        str_copy(ci->error, sizeof ci->error, ri->error);
        ci->calls = ri->snap ? ri->snap->gateway_calls : 0;
    }
    pthread_mutex_unlock(&r->mu);
    r->dirty = false;
}

/* ---- the worker: state polls --------------------------------------------------------------- */

static void inst_down(struct remote *r, struct rinst *in, const char *why)
{
    str_copy(in->error, sizeof in->error, why);
    if (in->up || !in->down_since_ms) {
        in->down_since_ms = clock_wall_ms();
        char text[192];
        snprintf(text, sizeof text, "%s unreachable: %s", in->name, why);
        remote_event(r, ROUTER_EV_ERROR, NULL, 0, NULL, text);
    }
    in->up = false;
    r->dirty = true;
}

static void state_done(struct remote *r, struct rxfer *x, CURLcode cc, long status)
{
    struct rinst *in = x->in;
    char why[160];
    if (cc != CURLE_OK) {
        remote_curl_error(cc, x, why, sizeof why);
        inst_down(r, in, why);
        return;
    }
    if (status != 200) {
        snprintf(why, sizeof why, "/admin/state answered %ld%s", status,
                 status == 401   ? " (wrong admin token)"
                 : status == 404 ? " (admin API off)"
                                 : "");
        inst_down(r, in, why);
        return;
    }
    if (console_state_parse(buf_str(&x->resp), x->resp.len, r->scratch, why, sizeof why) != SB_OK) {
        inst_down(r, in, why);
        return;
    }
    if (!in->snap)
        in->snap = xcalloc(1, sizeof *in->snap);
    pthread_mutex_lock(&r->mu); /* remote_breakdown reads it */
    struct router_snapshot *t = in->snap;
    in->snap = r->scratch;
    pthread_mutex_unlock(&r->mu);
    r->scratch = t;
    if (!in->up && in->ever_up) {
        char text[160];
        snprintf(text, sizeof text, "%s reachable again", in->name);
        remote_event(r, ROUTER_EV_CONFIG, NULL, 0, NULL, text);
    }
    in->up = in->ever_up = true;
    in->down_since_ms = 0;
    in->error[0] = '\0';
    r->dirty = true;
}

static void start_state(struct remote *r, struct rinst *in)
{
    struct rxfer *x = remote_xfer_new(r, in, RX_STATE, "/admin/state");
    curl_easy_setopt(x->h, CURLOPT_TIMEOUT_MS, r->timeout_ms);
    remote_xfer_start(r, x);
    in->state_busy = true;
}

/* ---- the worker: the event stream ---------------------------------------------------------- */

static enum router_event_kind kind_from(const char *s)
{
    for (int k = ROUTER_EV_BREAKER; k <= ROUTER_EV_ERROR; k++) {
        const char *n = router_event_kind_name((enum router_event_kind)k);
        size_t i = 0;
        while (n[i] && s[i] && (n[i] == s[i] || (n[i] == '-' && s[i] == '_')))
            i++;
        if (!n[i] && !s[i])
            return (enum router_event_kind)k;
    }
    return ROUTER_EV_ERROR;
}

static void ev_dispatch(struct remote *r, struct rinst *in)
{
    cJSON *o = cJSON_ParseWithLength(buf_str(&in->ev_data), in->ev_data.len);
    if (cJSON_IsObject(o)) {
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, "kind");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "target");
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, "text");
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(o, "wall_ms");
        remote_event(r, kind_from(cJSON_IsString(k) ? k->valuestring : ""),
                     cJSON_IsString(t) ? t->valuestring : "",
                     cJSON_IsNumber(w) ? (int64_t)w->valuedouble : 0, in->name,
                     cJSON_IsString(x) ? x->valuestring : "");
        struct router_event *e = &r->ev[(r->ev_next + EV_KEEP - 1) % EV_KEEP];
        const cJSON *agg = cJSON_GetObjectItemCaseSensitive(o, "agg");
        e->churn = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "churn"));
        /* aggregate ids are per process: keep them apart per instance and per process (the
         * id's part before '-' is random per process, so a restart's agg 1 is not the old one) */
        if (e->churn && cJSON_IsNumber(agg) && agg->valuedouble >= 1) {
            size_t plen = strcspn(in->ev_cur_id, "-");
            uint64_t proc = hash_fnv1a(in->ev_cur_id, plen) << 24;
            e->agg = ((uint64_t)agg->valuedouble ^ proc) * CONSOLE_MAX_INSTANCES +
                     (uint64_t)(in - r->inst);
        }
        in->ev_count++;
    }
    cJSON_Delete(o);
    if (in->ev_cur_id[0])
        str_copy(in->ev_last_id, sizeof in->ev_last_id, in->ev_cur_id);
    in->ev_cur_id[0] = '\0';
    buf_reset(&in->ev_data);
}

static void ev_line(struct remote *r, struct rinst *in, const char *line, size_t len)
{
    if (len == 0) {
        if (in->ev_data.len)
            ev_dispatch(r, in);
        return;
    }
    if (len > 4 && !strncmp(line, "id: ", 4)) {
        size_t n = len - 4 < sizeof in->ev_cur_id - 1 ? len - 4 : sizeof in->ev_cur_id - 1;
        memcpy(in->ev_cur_id, line + 4, n);
        in->ev_cur_id[n] = '\0';
    } else if (len >= 6 && !strncmp(line, "data: ", 6)) {
        buf_append(&in->ev_data, line + 6, len - 6);
    }
}

/* SSE bytes of instance in's stream: complete lines are handled, the rest kept. */
void remote_ev_bytes(struct remote *r, struct rinst *in, const char *data, size_t len)
{
    buf_append(&in->ev_line, data, len);
    size_t start = 0;
    for (size_t i = 0; i < in->ev_line.len; i++) {
        if (in->ev_line.data[i] != '\n')
            continue;
        size_t l = i - start;
        if (l && in->ev_line.data[start + l - 1] == '\r')
            l--;
        ev_line(r, in, in->ev_line.data + start, l);
        start = i + 1;
    }
    buf_consume(&in->ev_line, start);
    if (in->ev_line.len > (size_t)256 * 1024) /* no line is that long: drop it */
        buf_reset(&in->ev_line);
}

static void start_events(struct remote *r, struct rinst *in)
{
    struct rxfer *x = remote_xfer_new(r, in, RX_EVENTS, "/admin/events");
    curl_easy_setopt(x->h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(x->h, CURLOPT_LOW_SPEED_TIME, (long)EV_SILENT_S);
    if (in->ev_last_id[0]) {
        char h[96];
        snprintf(h, sizeof h, "Last-Event-ID: %s", in->ev_last_id);
        x->hdrs = curl_slist_append(x->hdrs, h);
        curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, x->hdrs);
    }
    buf_reset(&in->ev_line);
    buf_reset(&in->ev_data);
    in->ev_cur_id[0] = '\0';
    remote_xfer_start(r, x);
    in->ev_busy = true;
}

/* ---- the worker: commands, explains, votes --------------------------------------------------- */

static const char *cmd_action(enum router_cmd_type t)
{
    switch (t) {
    case ROUTER_CMD_SET_WEIGHT:
        return "weight";
    case ROUTER_CMD_FORCE_LIVE:
        return "force-live";
    case ROUTER_CMD_PIN:
        return "pin";
    case ROUTER_CMD_DRAIN:
        return "drain";
    case ROUTER_CMD_RESET:
        return "reset";
    case ROUTER_CMD_PROBE_NOW:
        return "probe";
    case ROUTER_CMD_UNDO:
        return "undo";
    case ROUTER_CMD_CLEAR:
        return "clear";
    }
    return "?";
}

static char *cmd_path(CURL *h, const struct router_cmd *c)
{
    if (c->type == ROUTER_CMD_UNDO)
        return xstrdup("/admin/undo");
    char *t = curl_easy_escape(h, c->target, 0);
    char *p = xasprintf("/admin/targets/%s/%s", t ? t : "", cmd_action(c->type));
    curl_free(t);
    return p;
}

/* one_instance: an undo names the change previewed (each instance has its own undo stack,
 * so across several the newest is undone on each). */
static char *cmd_body(const struct router_cmd *c, bool one_instance)
{
    char w[64] = "", e[64] = "";
    if (c->type == ROUTER_CMD_SET_WEIGHT)
        snprintf(w, sizeof w, "\"weight\":%.17g", c->weight);
    if (c->type == ROUTER_CMD_UNDO && c->undo_id && one_instance)
        snprintf(w, sizeof w, "\"undo_id\":%llu", (unsigned long long)c->undo_id);
    if (c->expires_ms > 0)
        snprintf(e, sizeof e, "%s\"expires_in_s\":%.3f", w[0] ? "," : "",
                 (double)c->expires_ms / 1000.0);
    return xasprintf("{%s%s}", w, e);
}

static char *explain_path(CURL *h, const struct rjob *j)
{
    char *m = curl_easy_escape(h, j->model, 0), *t = curl_easy_escape(h, j->tag, 0);
    char *p = xasprintf("/admin/explain?model=%s&prompt_tokens=%ld%s%s", m ? m : "", j->tokens,
                        j->tag[0] ? "&tag=" : "", j->tag[0] && t ? t : "");
    curl_free(m);
    curl_free(t);
    return p;
}

static char *request_path(CURL *h, const struct rjob *j)
{
    char *id = curl_easy_escape(h, j->model, 0);
    char *p = xasprintf("/admin/requests/%s", id ? id : "");
    curl_free(id);
    return p;
}

static char *job_path(CURL *h, const struct rjob *j)
{
    return j->kind == RJOB_COMMAND   ? cmd_path(h, &j->cmd)
           : j->kind == RJOB_REQUEST ? request_path(h, j)
                                     : explain_path(h, j);
}

/* A command, explain or request lookup goes to every instance; the reply waits for all. */
static void start_fanout(struct remote *r, struct rjob *j)
{
    j->reply = xcalloc(1, sizeof *j->reply);
    j->reply->type = j->kind == RJOB_COMMAND   ? CONSOLE_JOB_COMMAND
                     : j->kind == RJOB_REQUEST ? CONSOLE_JOB_REQUEST
                                               : CONSOLE_JOB_EXPLAIN;
    str_copy(j->reply->label, sizeof j->reply->label, j->label);
    j->reply->status = SB_OK;
    j->parts = r->n;
    for (size_t k = 0; k < r->n; k++) {
        struct rinst *in = &r->inst[k];
        CURL *tmp = curl_easy_init();
        char *path = job_path(tmp, j);
        curl_easy_cleanup(tmp);
        struct rxfer *x = remote_xfer_new(r, in, RX_JOB, path);
        free(path);
        x->job = j;
        curl_easy_setopt(x->h, CURLOPT_TIMEOUT_MS, (long)JOB_TIMEOUT_MS);
        if (j->kind == RJOB_COMMAND)
            remote_xfer_post(x, cmd_body(&j->cmd, r->n == 1));
        remote_xfer_start(r, x);
    }
}

static enum sb_status status_of(long http)
{
    return http == 404   ? SB_ERR_NOT_FOUND
           : http == 409 ? SB_ERR_STATE
           : http == 400 ? SB_ERR_INVALID
                         : SB_ERR_IO;
}

/* One instance's answer to a fanned-out job. */
static void job_part_done(struct remote *r, struct rxfer *x, CURLcode cc, long status)
{
    struct rjob *j = x->job;
    size_t k = (size_t)(x->in - r->inst);
    char msg[320] = "";
    enum sb_status st = SB_OK;
    if (cc != CURLE_OK) {
        remote_curl_error(cc, x, msg, sizeof msg);
        st = SB_ERR_IO;
    } else {
        cJSON *o = cJSON_ParseWithLength(buf_str(&x->resp), x->resp.len);
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "message");
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");
        const cJSON *em = cJSON_GetObjectItemCaseSensitive(e, "message");
        const cJSON *ex = cJSON_GetObjectItemCaseSensitive(
            o, j->kind == RJOB_REQUEST ? "text" : "explain"); /* the explanation / the call */
        if (status != 200) {
            st = status_of(status);
            snprintf(msg, sizeof msg, "%s", cJSON_IsString(em) ? em->valuestring : "failed");
        } else if (cJSON_IsString(ex)) {
            j->part_text[k] = xstrdup(ex->valuestring);
            snprintf(msg, sizeof msg, "ok");
        } else {
            snprintf(msg, sizeof msg, "%s", cJSON_IsString(m) ? m->valuestring : "ok");
        }
        cJSON_Delete(o);
    }
    if (st != SB_OK && j->reply->status == SB_OK)
        j->reply->status = st;
    j->part_msg[k] = xstrdup(msg);
    x->in->next_poll_ms = 0; /* show the command's effect now */
    if (--j->parts > 0)
        return;
    struct buf all, text;
    buf_init(&all);
    buf_init(&text);
    for (size_t i = 0; i < r->n; i++) { /* in attach order, whatever order they answered in */
        if (r->n > 1)
            buf_printf(&all, "%s%s: %s", i ? "; " : "", r->inst[i].name, j->part_msg[i]);
        else
            buf_puts(&all, j->part_msg[i]);
        if (j->part_text[i] && r->n > 1)
            buf_printf(&text, "== %s ==\n%s\n\n", r->inst[i].name, j->part_text[i]);
        else if (j->part_text[i])
            buf_puts(&text, j->part_text[i]);
    }
    str_copy(j->reply->msg, sizeof j->reply->msg, buf_str(&all));
    buf_cleanup(&all);
    if (j->kind == RJOB_REQUEST) /* found when one instance has it */
        j->reply->status = text.len ? SB_OK : j->reply->status;
    if (j->kind != RJOB_COMMAND && j->reply->status == SB_OK)
        j->reply->text = buf_take(&text);
    buf_cleanup(&text);
    remote_reply(r, j->reply);
    j->reply = NULL;
    remote_job_free(j);
}

static void start_vote(struct remote *r, struct rjob *j)
{
    struct rinst *in = remote_pick(r);
    struct rxfer *x = remote_xfer_new(r, in, RX_VOTE, "/admin/votes");
    curl_easy_setopt(x->h, CURLOPT_TIMEOUT_MS, (long)JOB_TIMEOUT_MS);
    remote_xfer_post(x, j->body);
    j->body = NULL;
    remote_xfer_start(r, x);
    remote_job_free(j);
}

/* ---- the worker loop ----------------------------------------------------------------------- */

static void run_job(struct remote *r, struct rjob *j)
{
    switch (j->kind) {
    case RJOB_COMMAND:
    case RJOB_EXPLAIN:
    case RJOB_REQUEST:
        start_fanout(r, j);
        break;
    case RJOB_CHAT:
        remote_chat_start(r, j);
        break;
    case RJOB_CANCEL:
        remote_chat_cancel(r, j->id);
        remote_job_free(j);
        break;
    case RJOB_VOTE:
        start_vote(r, j);
        break;
    }
}

static void xfer_done(struct remote *r, struct rxfer *x, CURLcode cc)
{
    long status = 0;
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
    int64_t now = clock_mono_ms();
    switch (x->kind) {
    case RX_STATE:
        x->in->state_busy = false;
        x->in->next_poll_ms = now + r->poll_ms;
        state_done(r, x, cc, status);
        break;
    case RX_EVENTS:
        x->in->ev_busy = false;
        x->in->ev_next_ms = now + EV_RETRY_MS;
        break;
    case RX_JOB:
        job_part_done(r, x, cc, status);
        break;
    case RX_CHAT:
        remote_chat_done(r, x, cc, status);
        break;
    case RX_VOTE:
        if (cc != CURLE_OK || status != 200)
            remote_event(r, ROUTER_EV_ERROR, NULL, 0, x->in->name, "vote not recorded");
        break;
    case RX_QUALITY:
        remote_quality_done(r, x, cc, status);
        break;
    }
    remote_xfer_free(r, x);
}

static void tick(struct remote *r)
{
    int64_t now = clock_mono_ms();
    for (size_t k = 0; k < r->n; k++) {
        struct rinst *in = &r->inst[k];
        if (!in->state_busy && now >= in->next_poll_ms)
            start_state(r, in);
        if (!in->ev_busy && now >= in->ev_next_ms)
            start_events(r, in);
    }
    remote_quality_tick(r);
}

static void *worker_main(void *arg)
{
    struct remote *r = arg;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        bool stop = r->stop;
        struct rjob *jobs = r->jobs;
        r->jobs = r->jobs_tail = NULL;
        pthread_mutex_unlock(&r->mu);
        if (stop)
            break;
        while (jobs) {
            struct rjob *next = jobs->next;
            run_job(r, jobs);
            jobs = next;
        }
        tick(r);
        int running = 0;
        curl_multi_perform(r->multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(r->multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            struct rxfer *x = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            xfer_done(r, x, m->data.result);
        }
        if (r->dirty)
            publish(r);
        curl_multi_poll(r->multi, NULL, 0, 100, NULL);
    }
    return NULL;
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

static void remote_free(void *self)
{
    struct remote *r = self;
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_mutex_unlock(&r->mu);
    curl_multi_wakeup(r->multi);
    pthread_join(r->thread, NULL);
    remote_teardown(r);
}

static const struct console_backend_ops remote_ops = {
    .snapshot = remote_snapshot,
    .instances = remote_instances,
    .breakdown = remote_breakdown,
    .command = remote_command,
    .explain = remote_explain,
    .request = remote_request,
    .take = remote_take,
    .quality = remote_quality,
    .chat = remote_chat,
    .cancel = remote_cancel,
    .vote = remote_vote,
    .quit_info = remote_quit_info,
    .free = remote_free,
};

struct console_backend *console_backend_remote_new(const struct console_remote_opts *o, char *msg,
                                                   size_t msglen)
{
    struct remote *r = remote_setup(o, msg, msglen);
    if (!r)
        return NULL;
    if (pthread_create(&r->thread, NULL, worker_main, r) != 0) {
        snprintf(msg, msglen, "cannot start the console's network thread");
        remote_teardown(r);
        return NULL;
    }
    struct console_backend *b = xcalloc(1, sizeof *b);
    b->ops = &remote_ops;
    b->self = r;
    b->mode = "attached";
    return b;
}
