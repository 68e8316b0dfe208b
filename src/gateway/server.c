/*
 * server.c - the gateway's HTTP server: request dispatch, the state of one request (struct
 * gw_conn) and the suspend/resume protocol between MHD and the sinks. daemon.c starts and
 * stops the listeners; limits.c holds the connection and memory limits.
 *
 * Threads. MHD owns the client connections: the access handler, content readers and the
 * completed callback run on the thread that runs its daemon, one at a time per connection.
 * For gateway.listen that is, with gateway.threads 0, the router thread itself:
 * its daemon has no thread of its own and runs in external-loop mode as the router's loop
 * hook (daemon.c), so handlers, readers and the chat sinks (chat.c) all run on the router
 * thread, and nothing they do may block (a wait for the router there could never end:
 * router_command and router_explain refuse at once). With gateway.threads N it runs on N MHD
 * epoll threads (absent: 0 on 2 or fewer online cores, else 2), and the router thread runs the
 * chat sinks; gateway.admin_listen always has one MHD thread. Decode/encode workers
 * (router.workers) run the sinks of streams handed to them. The main thread calls
 * gateway_new/start/stop/free, and once router_stop has run it may run the loop's daemon itself
 * (gateway_stop).
 *
 * Handlers that may block. The endpoints marked offload below (/admin/ and everything under
 * it, /metrics, /v1/feedback: ledger reads and writes, waits for the router thread, whole
 * snapshots) never run on a thread that serves connections, in either threading mode: one
 * that blocked would stall every connection of that thread (and router_command would wait
 * for itself when MHD runs on the router's loop). Once the request is all in, conn_run parks
 * the connection and posts it to the offload pool (offload.c); the handler runs there and
 * gw_queue only stashes its answer in c (MHD_queue_response belongs to the daemon's thread);
 * the pool resumes the connection and the access handler, called again, queues the stash.
 * Chat, /v1/models, /healthz and /readyz run inline: in-memory work only (client keys are
 * looked up in memory; the ledger's keys are polled by the pool, auth.c), except that on the
 * router's loop a chat body over GW_LOOP_PARSE_MAX is parsed on the pool first (chat.c: a job
 * that answers nothing; the handler goes on here once the pool resumed the connection).
 *
 * Locks. gw->lock guards the gateway's live-call list, counters and stop flag; c->lock
 * guards the fields of one request that MHD and the router share. The order is gw->lock
 * then c->lock (only gateway_stop nests them). No lock is held while calling MHD, the router,
 * cJSON or the logger, with one exception: the emergency path of gateway_stop resumes
 * abandoned connections under gw->lock (MHD_resume_connection only takes MHD's own mutex
 * and never calls back).
 *
 * Lifetime of a struct gw_conn: created by the first handler call of a request; MHD holds it
 * until the request-completed callback (mhd_ref), the router from router_submit until
 * on_done (router_ref). Whoever clears the last flag, under c->lock, frees it. A client that
 * goes away -> completed callback -> router_cancel(call_id).
 *
 * SUSPEND / RESUME (libmicrohttpd 0.9.75), the chosen mechanism:
 *
 * - A handler with nothing to answer yet (chat call submitted, no commit/result) and a
 *   content reader with nothing buffered (stream committed, no new bytes, not over) both
 *   *park* the connection: MHD_suspend_connection from inside the callback (the only places
 *   MHD allows it), and the reader then returns 0. MHD documents a 0 from a reader as
 *   legal only together with MHD_suspend_connection: with an internal polling thread the
 *   connection would otherwise stay "ready" and the reader be called again and again (a
 *   busy loop). After the 0, MHD leaves the connection in CHUNKED_BODY_UNREADY (or
 *   NORMAL_BODY_UNREADY for an HTTP/1.0 client, which gets no chunked encoding) and calls
 *   the reader again once resumed; a resumed handler is called again with
 *   *upload_data_size == 0. Both paths are exercised by tests/integration/test_gateway.sh.
 *   (MHD 0.9.75 also tolerates a resume that races ahead of its suspend - the suspend then
 *   becomes a no-op - but the API calls it undefined, so we never rely on it.)
 * - A sink with news (commit, bytes, done) resumes the connection. MHD_resume_connection is
 *   thread-safe, but resuming a connection that is not suspended is undefined by the API.
 *   So c->park tracks the state under c->lock: RUNNING -> SUSPENDING (decided, under the
 *   same lock as the "nothing to do" check) -> SUSPENDED (after MHD_suspend_connection
 *   returned). A sink that finds SUSPENDED sets RUNNING and resumes (after unlocking); one
 *   that finds SUSPENDING sets WAKE_PENDING and the parking MHD thread resumes the connection
 *   itself right after its suspend. No wake is lost and every resume matches a suspend.
 * - Wake-ups are batched per router turn (gw_turn, the router's turn hook): inside a turn a
 *   sink's resume goes to a list of the thread that made it (thread-local) and the turn's
 *   end resumes them all, so MHD's workers wake once for the connections of many events
 *   instead of once per event (and walk their suspended connections once). On the router's
 *   loop MHD_run follows each turn's end on the same thread: those resumes wake nobody.
 *   A handler running inside that MHD_run is outside any turn, so its own resumes (the
 *   WAKE_PENDING path) are immediate, as on an MHD worker. A decode/encode
 *   worker thread does the same per batch (gw_batch_end, router_set_batch_end). A connection on
 *   the list is suspended in MHD and so cannot complete before its resume. on_done resumes
 *   at once: gateway_stop stops MHD once every on_done has returned, and no resume may
 *   still wait then.
 * - While suspended MHD neither times a connection out nor notices a client leaving; the
 *   router's deadline bounds every call, and the next write after a resume finds a closed
 *   socket, which ends the request (completed callback -> router_cancel). Bytes queued for
 *   a slow reader are capped (GW_MAX_PENDING in chat.c): over it the call is cancelled.
 * - MHD_stop_daemon must not see suspended connections: gateway_stop cancels every call
 *   and waits until every on_done has returned (each resumes its connection), and nothing
 *   parks once its call is done.
 *
 * Listeners. Requests on gateway.admin_listen reach only the endpoints marked ops (health,
 * readiness, metrics, admin); with admin_listen set, /admin/ answers only there.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "switchboard/log.h"

#define GW_TAG_MAX 128

struct gw_endpoint {
    const char *path;
    const char *method; /* NULL: the endpoint checks methods itself */
    enum MHD_Result (*run)(struct gw_conn *c);
    bool prefix;  /* path is a prefix: everything under it */
    bool ops;     /* also served on admin_listen */
    bool offload; /* may block: run on the offload pool (offload.c) */
};

static enum MHD_Result run_healthz(struct gw_conn *c);
static enum MHD_Result run_readyz(struct gw_conn *c);
static enum MHD_Result run_models(struct gw_conn *c);
static enum MHD_Result run_metrics(struct gw_conn *c);

static const struct gw_endpoint endpoints[] = {
    /* path, method, run, prefix, ops, offload */
    {"/v1/chat/completions", "POST", gw_chat_run, false, false, false},
    {"/v1/models", "GET", run_models, false, false, false},
    {"/v1/feedback", "POST", gw_feedback_run, false, false, true},
    {"/healthz", "GET", run_healthz, false, true, false},
    {"/readyz", "GET", run_readyz, false, true, false},
    {"/metrics", "GET", run_metrics, false, true, true},
    {"/admin/", NULL, gw_admin_run, true, true, true},
};

/* ---- responses ---------------------------------------------------------------------------- */

static void note_status(struct gateway *gw, int status)
{
    pthread_mutex_lock(&gw->lock);
    gw_stats_note_status(&gw->stats, status);
    pthread_mutex_unlock(&gw->lock);
}

enum MHD_Result gw_queue(struct gw_conn *c, int status, struct MHD_Response *r,
                         const char *const *hdrs)
{
    MHD_add_response_header(r, "x-request-id", c->request_id);
    for (size_t i = 0; hdrs && hdrs[i] && hdrs[i + 1]; i += 2)
        MHD_add_response_header(r, hdrs[i], hdrs[i + 1]);
    pthread_mutex_lock(&c->gw->lock);
    bool draining = c->gw->draining;
    pthread_mutex_unlock(&c->gw->lock);
    if (draining) /* clients reconnect elsewhere rather than reuse this connection */
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_YES;
    if (c->offloaded) { /* not the daemon's thread: conn_run queues it after the resume */
        pthread_mutex_lock(&c->lock);
        if (c->off_resp)
            MHD_destroy_response(c->off_resp); /* a handler answers once; never kept twice */
        c->off_resp = r;
        c->off_status = (unsigned)status;
        pthread_mutex_unlock(&c->lock);
    } else {
        ret = MHD_queue_response(c->mc, (unsigned)status, r);
        MHD_destroy_response(r);
    }
    c->answered = true;
    note_status(c->gw, status);
    return ret;
}

enum MHD_Result gw_respond(struct gw_conn *c, int status, const char *content_type,
                           struct buf *body, const char *const *hdrs)
{
    size_t len = body->len;
    char *data = buf_take(body);
    struct MHD_Response *r = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(data);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    return gw_queue(c, status, r, hdrs);
}

enum MHD_Result gw_respond_error(struct gw_conn *c, const struct gw_error *e,
                                 const char *const *hdrs)
{
    struct buf body;
    buf_init(&body);
    gw_error_json(e, &body);
    buf_putc(&body, '\n');
    log_debug("gateway: %s %s %s -> %d %s", c->request_id, c->method, c->path, e->status,
              e->message);
    return gw_respond(c, e->status, "application/json", &body, hdrs);
}

enum MHD_Result gw_respond_text(struct gw_conn *c, int status, const char *text)
{
    struct buf body;
    buf_init(&body);
    buf_puts(&body, text);
    return gw_respond(c, status, "text/plain; charset=utf-8", &body, NULL);
}

/* ---- park / wake (see the essay above) ---------------------------------------------------- */

void gw_park_begin_locked(struct gw_conn *c)
{
    c->park = GW_SUSPENDING;
}

void gw_park_end(struct gw_conn *c)
{
    MHD_suspend_connection(c->mc);
    pthread_mutex_lock(&c->lock);
    bool resume = c->park == GW_WAKE_PENDING;
    c->park = resume ? GW_RUNNING : GW_SUSPENDED;
    pthread_mutex_unlock(&c->lock);
    if (resume)
        gw_resume_now(c->mc);
}

/* Connections one thread woke inside its router turn, resumed at the turn's end; a full list
 * is resumed at once (it only bounds the batch). */
#define GW_WAKE_BATCH 256

struct wake_batch {
    bool on; /* inside a turn: defer */
    size_t n;
    struct MHD_Connection *mc[GW_WAKE_BATCH];
};

static _Thread_local struct wake_batch wake_batch;

/* Connections this thread resumed since gw_resumed_take last asked (the loop listener's
 * MHD_run is needed only then, or when its epoll fd is ready). */
static _Thread_local bool resumed_here;

static void wake_flush(struct wake_batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        MHD_resume_connection(b->mc[i]);
    resumed_here = resumed_here || b->n > 0;
    b->n = 0;
}

void gw_resume_now(struct MHD_Connection *mc)
{
    MHD_resume_connection(mc);
    resumed_here = true;
}

bool gw_resumed_take(void)
{
    bool r = resumed_here;
    resumed_here = false;
    return r;
}

void gw_resume(struct MHD_Connection *mc)
{
    struct wake_batch *b = &wake_batch;
    if (!b->on) {
        gw_resume_now(mc);
        return;
    }
    if (b->n == GW_WAKE_BATCH)
        wake_flush(b);
    b->mc[b->n++] = mc;
}

void gw_turn(void *ctx, enum router_turn turn)
{
    (void)ctx;
    struct wake_batch *b = &wake_batch;
    switch (turn) {
    case ROUTER_TURN_BEGIN:
        b->on = true;
        break;
    case ROUTER_TURN_END:
        wake_flush(b);
        b->on = false;
        break;
    }
}

/* A worker thread runs sinks only inside its batches and calls this after each one, so once
 * it has called it, deferring is safe on it: every later batch ends with this flush. */
void gw_batch_end(void *ctx)
{
    (void)ctx;
    wake_flush(&wake_batch);
    wake_batch.on = true;
}

bool gw_wake_locked(struct gw_conn *c)
{
    if (!c->mhd_ref)
        return false; /* the request is over: nobody to wake */
    switch (c->park) {
    case GW_SUSPENDED:
        c->park = GW_RUNNING;
        return true;
    case GW_SUSPENDING:
        c->park = GW_WAKE_PENDING;
        return false;
    case GW_RUNNING:
    case GW_WAKE_PENDING:
        return false;
    }
    return false;
}

/* ---- calls in the router ------------------------------------------------------------------ */

bool gw_call_register(struct gw_conn *c)
{
    struct gateway *gw = c->gw;
    pthread_mutex_lock(&gw->lock);
    bool ok = !gw->stopping && !gw->draining;
    if (ok) {
        c->registered = true;
        gw->calls_open++;
        c->live_prev = NULL;
        c->live_next = gw->live;
        if (gw->live)
            gw->live->live_prev = c;
        gw->live = c;
        gw->calls_live++;
        gw->stats.calls_in_flight++;
    }
    pthread_mutex_unlock(&gw->lock);
    if (ok) {
        pthread_mutex_lock(&c->lock);
        c->router_ref = true;
        pthread_mutex_unlock(&c->lock);
    }
    return ok;
}

static bool is_live_locked(const struct gateway *gw, const struct gw_conn *c)
{
    return c->live_prev || gw->live == c;
}

void gw_call_set_id(struct gw_conn *c, uint64_t id)
{
    struct gateway *gw = c->gw;
    pthread_mutex_lock(&gw->lock);
    c->call_id = id;
    bool cancel = gw->stopping && is_live_locked(gw, c);
    pthread_mutex_unlock(&gw->lock);
    if (cancel)
        router_cancel_shutdown(gw->rt, id);
}

void gw_call_unregister(struct gw_conn *c)
{
    struct gateway *gw = c->gw;
    pthread_mutex_lock(&gw->lock);
    if (is_live_locked(gw, c)) {
        if (c->live_prev)
            c->live_prev->live_next = c->live_next;
        else
            gw->live = c->live_next;
        if (c->live_next)
            c->live_next->live_prev = c->live_prev;
        c->live_prev = c->live_next = NULL;
    }
    pthread_mutex_unlock(&gw->lock);
}

void gw_call_released(struct gateway *gw, const struct gw_outcome *o, bool truncated)
{
    pthread_mutex_lock(&gw->lock);
    gw->calls_live--;
    gw->stats.calls_in_flight--;
    gw_stats_note_overhead(&gw->stats, o->overhead_us);
    if (truncated)
        gw->stats.streams_truncated++;
    if (gw->calls_live == 0)
        pthread_cond_broadcast(&gw->idle);
    pthread_mutex_unlock(&gw->lock);
}

/* ---- one request -------------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static void request_id_new(struct gateway *gw, char out[65])
{
    pthread_mutex_lock(&gw->lock);
    uint64_t v = splitmix64(&gw->id_state);
    pthread_mutex_unlock(&gw->lock);
    snprintf(out, 65, "%016" PRIx64, v);
}

static struct gw_conn *conn_new(const struct gw_listener *l, struct MHD_Connection *mc,
                                const char *url, const char *method)
{
    struct gateway *gw = l->gw;
    struct gw_conn *c = xcalloc(1, sizeof *c);
    c->gw = gw;
    c->l = l;
    c->mc = mc;
    pthread_mutex_init(&c->lock, NULL);
    c->mhd_ref = true;
    c->park = GW_RUNNING;
    buf_init(&c->out);
    buf_init(&c->body);
    buf_init(&c->scratch);
    c->path = xstrdup(url ? url : "/");
    c->method = xstrdup(method ? method : "");
    gw_request_id_clean(MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "x-request-id"),
                        c->request_id);
    if (!c->request_id[0])
        request_id_new(gw, c->request_id);
    const char *tag = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "x-switchboard-tag");
    if (tag && *tag)
        c->tag = xstrndup(tag, GW_TAG_MAX);
    pthread_mutex_lock(&gw->lock);
    gw->requests++;
    pthread_mutex_unlock(&gw->lock);
    return c;
}

void gw_conn_free(struct gw_conn *c)
{
    if (!c)
        return;
    struct gateway *gw = c->gw;
    gw_body_release(c);
    atomic_fetch_sub(&gw->answer_bytes, (uint64_t)(c->out.len - c->out_off));
    pthread_mutex_lock(&gw->lock);
    gw->requests--;
    if (c->registered && --gw->calls_open == 0)
        pthread_cond_broadcast(&gw->idle);
    pthread_mutex_unlock(&gw->lock);
    if (c->off_resp) /* answered by the pool, never queued: MHD ended the request first */
        MHD_destroy_response(c->off_resp);
    buf_cleanup(&c->out);
    buf_cleanup(&c->body);
    buf_cleanup(&c->scratch);
    if (c->codec_ready) {
        if (c->stream)
            gw_sse_cleanup(&c->sse);
        else
            llm_response_cleanup(&c->resp);
        buf_cleanup(&c->pass);
    }
    free(c->path);
    free(c->method);
    free(c->tag);
    free(c->call_tag);
    free(c->model);
    if (c->req) { /* parsed by the pool, never submitted */
        llm_request_cleanup(c->req);
        free(c->req);
    }
    free(c->parse_msg);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* The endpoint for path on listener l; NULL when l does not serve it. */
static const struct gw_endpoint *endpoint_find(const struct gw_listener *l, const char *path,
                                               bool *bad_method, const char *method)
{
    const struct gateway *gw = l->gw;
    for (size_t i = 0; i < SB_ARRAY_LEN(endpoints); i++) {
        const struct gw_endpoint *ep = &endpoints[i];
        bool match = ep->prefix ? str_has_prefix(path, ep->path) : str_eq(path, ep->path);
        if (!match)
            continue;
        if (l->ops_only && !ep->ops)
            return NULL;
        if (!l->ops_only && ep->run == gw_admin_run && gw->ops.spec)
            return NULL; /* the admin API lives on admin_listen */
        *bad_method = ep->method && !str_eq(method, ep->method);
        return ep;
    }
    return NULL;
}

enum MHD_Result gw_refuse_shutting_down(struct gw_conn *c)
{
    struct gw_error e;
    const char *hdrs[] = {"Retry-After", "1", NULL};
    gw_error_set(&e, 503, "server_error", "shutting_down", "switchboard is shutting down");
    return gw_respond_error(c, &e, hdrs);
}

/* Over max_body_bytes_total. */
static enum MHD_Result refuse_busy(struct gw_conn *c)
{
    struct gw_error e;
    const char *hdrs[] = {"Retry-After", "1", NULL};
    c->body_refused = true;
    gw_error_set(&e, 503, "server_error", "server_busy",
                 "switchboard holds too many request bytes at once "
                 "(gateway.max_body_bytes_total); retry shortly");
    return gw_respond_error(c, &e, hdrs);
}

static enum MHD_Result check_admin_auth(struct gw_conn *c)
{
    struct gw_error e;
    int st = gw_admin_check_auth(
        c, MHD_lookup_connection_value(c->mc, MHD_HEADER_KIND, "Authorization"));
    if (st == 404) {
        gw_error_set(&e, 404, "invalid_request_error", "not_found", "Unknown path %.200s", c->path);
        return gw_respond_error(c, &e, NULL);
    }
    if (st != 0) {
        const char *hdrs[] = {"WWW-Authenticate", "Bearer", NULL};
        gw_error_set(&e, 401, "authentication_error", "invalid_token",
                     "admin API: missing or wrong bearer token");
        return gw_respond_error(c, &e, hdrs);
    }
    return MHD_YES;
}

/* A declared body: over max_body 413; it would take the request bytes held over
 * max_body_bytes_total 503 (reserved in full here, so the body's bytes are not counted as
 * they come). */
static enum MHD_Result check_declared_body(struct gw_conn *c)
{
    struct gateway *gw = c->gw;
    struct gw_error e;
    long declared = 0;
    const char *cl = MHD_lookup_connection_value(c->mc, MHD_HEADER_KIND, "Content-Length");
    if (!cl || !str_to_long(cl, &declared) || declared <= 0)
        return MHD_YES;
    if ((size_t)declared > gw->max_body) {
        gw_error_set(&e, 413, "invalid_request_error", "request_too_large",
                     "request body of %ld bytes is over the limit of %zu bytes", declared,
                     gw->max_body);
        return gw_respond_error(c, &e, NULL);
    }
    if (!gw_body_reserve(c, (size_t)declared))
        return refuse_busy(c);
    c->body_declared = true;
    return MHD_YES;
}

/* The first handler call: headers are in, the body is not. Answers what can be answered
 * without the body (unknown path, wrong method, auth, a declared body over a cap). */
static enum MHD_Result conn_start(struct gw_conn *c)
{
    struct gateway *gw = c->gw;
    struct gw_error e;
    bool bad_method = false;
    c->ep = endpoint_find(c->l, c->path, &bad_method, c->method);
    pthread_mutex_lock(&gw->lock);
    bool stopping = gw->stopping, draining = gw->draining;
    pthread_mutex_unlock(&gw->lock);
    if (stopping || (draining && c->ep && c->ep->run == gw_chat_run))
        return gw_refuse_shutting_down(c);
    if (!c->ep) {
        gw_error_set(&e, 404, "invalid_request_error", "not_found", "Unknown path %.200s", c->path);
        return gw_respond_error(c, &e, NULL);
    }
    if (bad_method) {
        const char *hdrs[] = {"Allow", c->ep->method, NULL};
        gw_error_set(&e, 405, "invalid_request_error", "method_not_allowed",
                     "%.200s only accepts %s", c->path, c->ep->method);
        return gw_respond_error(c, &e, hdrs);
    }
    enum MHD_Result refused;
    if (gw_auth_refused(c, &refused))
        return refused;
    if (c->ep->run == gw_admin_run) {
        enum MHD_Result r = check_admin_auth(c);
        if (c->answered)
            return r;
    }
    return check_declared_body(c);
}

/* Body bytes: buffered up to the cap, then counted and dropped (the answer will be 413; a
 * declared Content-Length over the cap was refused before any byte was read). A body
 * without Content-Length (chunked) is held against max_body_bytes_total as it comes; over
 * it, the rest is dropped and the answer is 503. Dropping goes on for at most twice the
 * cap, then MHD closes the connection. */
static enum MHD_Result conn_body(struct gw_conn *c, const char *data, size_t size)
{
    size_t cap = c->gw->max_body;
    c->body_seen += size;
    if (c->body_too_big || c->body_refused)
        return c->body_seen > 2 * cap ? MHD_NO : MHD_YES;
    if (c->body_seen > cap) {
        c->body_too_big = true;
        buf_cleanup(&c->body);
        return MHD_YES;
    }
    if (!c->body_declared && !gw_body_reserve(c, size)) {
        c->body_refused = true;
        buf_cleanup(&c->body);
        return MHD_YES;
    }
    buf_append(&c->body, data, size);
    return MHD_YES;
}

/* The request is all in: hands it to the offload pool and parks it (offload.c has the whole
 * protocol). The pool may take it, run it and wake it before the suspend: the park protocol
 * then makes this thread resume it. Nothing of c is touched here after the post but the
 * park. Refused by the pool: 503 when the gateway is stopping, else (no pool thread could
 * start, logged) the job runs here as it would without a pool. */
enum MHD_Result gw_offload_job(struct gw_conn *c, enum MHD_Result (*job)(struct gw_conn *c),
                               bool then_run)
{
    c->offloaded = true;
    c->off_job = job;
    c->off_then_run = then_run;
    pthread_mutex_lock(&c->lock);
    gw_park_begin_locked(c);
    pthread_mutex_unlock(&c->lock);
    if (gw_offload_post(c)) {
        gw_park_end(c);
        return MHD_YES;
    }
    pthread_mutex_lock(&c->lock);
    c->park = GW_RUNNING;
    pthread_mutex_unlock(&c->lock);
    c->offloaded = false;
    c->off_then_run = false;
    pthread_mutex_lock(&c->gw->lock);
    bool stopping = c->gw->stopping;
    pthread_mutex_unlock(&c->gw->lock);
    if (stopping)
        return gw_refuse_shutting_down(c);
    enum MHD_Result r = job(c);
    return then_run && r == MHD_YES && !c->answered ? c->ep->run(c) : r;
}

/* The handler call after the pool's resume: queues what the handler answered (MHD thread).
 * A handler that failed (MHD_NO) or queued nothing closes the connection. */
static enum MHD_Result conn_offloaded(struct gw_conn *c)
{
    pthread_mutex_lock(&c->lock);
    bool done = c->off_done;
    struct MHD_Response *r = done ? c->off_resp : NULL;
    if (done)
        c->off_resp = NULL;
    unsigned status = c->off_status;
    enum MHD_Result result = c->off_result;
    pthread_mutex_unlock(&c->lock);
    if (!done)
        return MHD_YES; /* not resumed by the pool yet (MHD does not call a suspended one) */
    c->offloaded = false;
    bool then_run = c->off_then_run;
    c->off_then_run = false;
    if (!r && then_run && result == MHD_YES)
        return c->ep->run(c); /* the job prepared; the handler goes on here */
    if (!r) {
        log_debug("gateway: %s %s %s: the handler queued no answer: closing", c->request_id,
                  c->method, c->path);
        return MHD_NO;
    }
    enum MHD_Result ret = MHD_queue_response(c->mc, status, r);
    MHD_destroy_response(r);
    return ret == MHD_YES ? result : MHD_NO;
}

enum MHD_Result gw_offload_handle(struct gw_conn *c)
{
    return c->off_job(c);
}

static enum MHD_Result conn_run(struct gw_conn *c)
{
    if (!c->received) {
        c->received = true;
        gw_sock_receiving(c->mc, false);
    }
    if (c->offloaded)
        return conn_offloaded(c);
    if (c->answered)
        return MHD_YES;
    struct gw_error e;
    if (c->body_too_big) {
        gw_error_set(&e, 413, "invalid_request_error", "request_too_large",
                     "request body is over the limit of %zu bytes", c->gw->max_body);
        return gw_respond_error(c, &e, NULL);
    }
    if (c->body_refused)
        return refuse_busy(c);
    return c->ep->offload ? gw_offload_job(c, c->ep->run, false) : c->ep->run(c);
}

enum MHD_Result gw_on_request(void *cls, struct MHD_Connection *mc, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
    const struct gw_listener *l = cls;
    struct gw_conn *c = *con_cls;
    (void)version;
    if (!c) {
        c = conn_new(l, mc, url, method);
        *con_cls = c;
        return conn_start(c);
    }
    if (*upload_data_size > 0) {
        enum MHD_Result r = conn_body(c, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return r;
    }
    return conn_run(c);
}

/* A client left before its answer was complete; stalled: it stopped reading and the idle
 * timeout closed it. request_id is a copy (the request may be freed by now). */
static void note_gone(struct gateway *gw, const char *request_id, bool stalled)
{
    pthread_mutex_lock(&gw->lock);
    gw->stats.clients_gone++;
    gw->stats.clients_stalled += stalled;
    uint64_t n = gw->stats.clients_stalled;
    bool log = stalled && gw_log_due_locked(&gw->log_stalled_ms);
    pthread_mutex_unlock(&gw->lock);
    if (log)
        log_warn("gateway: %s: the client stopped reading its answer for %lld ms "
                 "(gateway.idle_timeout_ms): closed, the call cancelled; %llu so far",
                 request_id, (long long)gw->idle_timeout_ms, (unsigned long long)n);
}

void gw_on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                     enum MHD_RequestTerminationCode toe)
{
    const struct gw_listener *l = cls;
    struct gateway *gw = l->gw;
    struct gw_conn *c = *con_cls;
    gw_sock_receiving(mc, true); /* the next request's deadline starts now */
    if (!c)
        return;
    *con_cls = NULL;
    bool ok = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK;
    pthread_mutex_lock(&c->lock);
    c->mhd_ref = false;
    bool router_has_it = c->router_ref;
    bool gone = !ok && c->phase != GW_CHAT_NEW && !c->done;
    c->client_gone = !ok;
    uint64_t id = c->call_id; /* written by this connection's MHD thread */
    bool lazy = false;
    bool sent = router_has_it && gw_chat_sent_locked(c, ok, &lazy);
    char request_id[65];
    str_copy(request_id, sizeof request_id, c->request_id);
    pthread_mutex_unlock(&c->lock);
    /* From here c may be freed by the router (on_done) unless router_has_it is false. Counted
     * before the cancel, so whoever sees the call end sees the count. */
    if (gone)
        note_gone(gw, request_id, toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED);
    if (sent && lazy) /* a stream sent in one write: its held end may go now (chat.c) */
        router_resume_lazy(gw->rt, id);
    else if (sent)
        router_resume(gw->rt, id);
    if (router_has_it && !ok)
        router_cancel(gw->rt, id);
    if (!router_has_it)
        gw_conn_free(c);
}

/* ---- small endpoints ---------------------------------------------------------------------- */

struct router_snapshot *gw_snapshot(struct gateway *gw)
{
    struct router_snapshot *snap = xcalloc(1, sizeof *snap);
    router_snapshot_read(gw->rt, snap, UINT64_MAX);
    return snap;
}

void gw_client_addr(struct gw_conn *c, char *out, size_t outlen)
{
    gw_sockaddr_text(c->mc, out, outlen);
}

void gw_sockaddr_text(struct MHD_Connection *mc, char *out, size_t outlen)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    str_copy(out, outlen, "unknown");
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)outlen);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  (socklen_t)outlen);
}

static enum MHD_Result run_healthz(struct gw_conn *c)
{
    return gw_respond_text(c, 200, "ok");
}

static enum MHD_Result run_readyz(struct gw_conn *c)
{
    pthread_mutex_lock(&c->gw->lock);
    bool draining = c->gw->draining || c->gw->stopping;
    pthread_mutex_unlock(&c->gw->lock);
    if (draining)
        return gw_respond_text(c, 503, "draining: switchboard is shutting down");
    struct buf why;
    buf_init(&why);
    bool ready = gw_snapcache_ready(c->gw->snapcache, c->gw->rt, &why);
    enum MHD_Result r = gw_respond_text(c, ready ? 200 : 503, ready ? "ready" : buf_str(&why));
    buf_cleanup(&why);
    return r;
}

static enum MHD_Result run_models(struct gw_conn *c)
{
    struct buf body;
    buf_init(&body);
    gw_snapcache_models(c->gw->snapcache, c->gw->rt, c->gw->started_s, c->gw->clients, c->client,
                        &body);
    return gw_respond(c, 200, "application/json", &body, NULL);
}

static enum MHD_Result run_metrics(struct gw_conn *c)
{
    struct gateway *gw = c->gw;
    struct router_snapshot *snap = gw_snapshot(gw);
    struct gw_stats *stats = xmalloc(sizeof *stats);
    pthread_mutex_lock(&gw->lock);
    *stats = gw->stats;
    pthread_mutex_unlock(&gw->lock);
    stats->answer_bytes = atomic_load(&gw->answer_bytes);
    struct buf body;
    buf_init(&body);
    gw_metrics_render(snap, stats, &body);
    gw_auth_metrics(gw, &body);
    gw_quality_metrics(gw, &body);
    free(snap);
    free(stats);
    return gw_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", &body, NULL);
}
