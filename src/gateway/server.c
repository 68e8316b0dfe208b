/*
 * server.c - the gateway's HTTP server: libmicrohttpd lifecycle, request dispatch, the state
 * of one request (struct gw_conn) and the suspend/resume protocol between MHD and the sinks.
 *
 * Threads. MHD runs an internal epoll loop in a small thread pool (GW_THREADS) and owns the
 * client connections: the access handler, content readers and the completed callback run
 * there, one thread at a time per connection. The router thread runs the chat sinks
 * (chat.c). The main thread calls gateway_new/start/stop/free.
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
 * - While suspended MHD neither times a connection out nor notices a client leaving; the
 *   router's deadline bounds every call, and the next write after a resume finds a closed
 *   socket, which ends the request (completed callback -> router_cancel). Bytes queued for
 *   a slow reader are capped (GW_MAX_PENDING in chat.c): over it the call is cancelled.
 * - MHD_stop_daemon must not see suspended connections: gateway_stop cancels every call
 *   and waits until every on_done has returned (each resumes its connection), and nothing
 *   parks once its call is done.
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

#define GW_THREADS       2u
#define GW_CONN_MEMORY   (16u * 1024) /* per connection: request headers + write buffer */
#define GW_BACKLOG       1024
#define GW_STOP_WAIT_MS  5000 /* for the router to finish cancelled calls */
#define GW_DRAIN_WAIT_MS 2000 /* for clients to read their last bytes */
#define GW_TAG_MAX       128

struct gw_endpoint {
    const char *path;
    bool prefix;
    const char *method; /* NULL: the endpoint checks methods itself */
    enum MHD_Result (*run)(struct gw_conn *c);
};

static enum MHD_Result run_healthz(struct gw_conn *c);
static enum MHD_Result run_readyz(struct gw_conn *c);
static enum MHD_Result run_models(struct gw_conn *c);
static enum MHD_Result run_metrics(struct gw_conn *c);

static const struct gw_endpoint endpoints[] = {
    {"/v1/chat/completions", false, "POST", gw_chat_run},
    {"/v1/models", false, "GET", run_models},
    {"/healthz", false, "GET", run_healthz},
    {"/readyz", false, "GET", run_readyz},
    {"/metrics", false, "GET", run_metrics},
    {"/admin/", true, NULL, gw_admin_run},
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
    enum MHD_Result ret = MHD_queue_response(c->mc, (unsigned)status, r);
    MHD_destroy_response(r);
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
        MHD_resume_connection(c->mc);
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
    bool ok = !gw->stopping;
    if (ok) {
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
        router_cancel(gw->rt, id);
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

static struct gw_conn *conn_new(struct gateway *gw, struct MHD_Connection *mc, const char *url,
                                const char *method)
{
    struct gw_conn *c = xcalloc(1, sizeof *c);
    c->gw = gw;
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
    pthread_mutex_lock(&gw->lock);
    gw->requests--;
    pthread_mutex_unlock(&gw->lock);
    buf_cleanup(&c->out);
    buf_cleanup(&c->body);
    buf_cleanup(&c->scratch);
    if (c->codec_ready) {
        if (c->stream)
            gw_sse_cleanup(&c->sse);
        else
            llm_response_cleanup(&c->resp);
    }
    free(c->path);
    free(c->method);
    free(c->tag);
    free(c->call_tag);
    free(c->model);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static const struct gw_endpoint *endpoint_find(const char *path, bool *bad_method,
                                               const char *method)
{
    for (size_t i = 0; i < SB_ARRAY_LEN(endpoints); i++) {
        const struct gw_endpoint *ep = &endpoints[i];
        bool match = ep->prefix ? str_has_prefix(path, ep->path) : str_eq(path, ep->path);
        if (!match)
            continue;
        *bad_method = ep->method && !str_eq(method, ep->method);
        return ep;
    }
    return NULL;
}

/* The first handler call: headers are in, the body is not. Answers what can be answered
 * without the body (unknown path, wrong method, auth, a declared body over the cap). */
static enum MHD_Result conn_start(struct gw_conn *c)
{
    struct gateway *gw = c->gw;
    struct gw_error e;
    bool bad_method = false;
    c->ep = endpoint_find(c->path, &bad_method, c->method);
    pthread_mutex_lock(&gw->lock);
    bool stopping = gw->stopping;
    pthread_mutex_unlock(&gw->lock);
    if (stopping) {
        gw_error_set(&e, 503, "server_error", "shutting_down", "switchboard is shutting down");
        return gw_respond_error(c, &e, NULL);
    }
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
        int st = gw_admin_check_auth(
            c, MHD_lookup_connection_value(c->mc, MHD_HEADER_KIND, "Authorization"));
        if (st == 404) {
            gw_error_set(&e, 404, "invalid_request_error", "not_found", "Unknown path %.200s",
                         c->path);
            return gw_respond_error(c, &e, NULL);
        }
        if (st != 0) {
            const char *hdrs[] = {"WWW-Authenticate", "Bearer", NULL};
            gw_error_set(&e, 401, "authentication_error", "invalid_token",
                         "admin API: missing or wrong bearer token");
            return gw_respond_error(c, &e, hdrs);
        }
    }
    long declared = 0;
    const char *cl = MHD_lookup_connection_value(c->mc, MHD_HEADER_KIND, "Content-Length");
    if (cl && str_to_long(cl, &declared) && declared > 0 && (size_t)declared > gw->max_body) {
        gw_error_set(&e, 413, "invalid_request_error", "request_too_large",
                     "request body of %ld bytes is over the limit of %zu bytes", declared,
                     gw->max_body);
        return gw_respond_error(c, &e, NULL);
    }
    return MHD_YES;
}

/* Body bytes: buffered up to the cap, then counted and dropped (the answer will be 413; a
 * declared Content-Length over the cap was refused before any byte was read). A chunked
 * upload that goes on for more than twice the cap is cut off: MHD closes the connection. */
static enum MHD_Result conn_body(struct gw_conn *c, const char *data, size_t size)
{
    size_t cap = c->gw->max_body;
    c->body_seen += size;
    if (c->body_too_big)
        return c->body_seen > 2 * cap ? MHD_NO : MHD_YES;
    if (c->body_seen > cap) {
        c->body_too_big = true;
        buf_cleanup(&c->body);
        return MHD_YES;
    }
    buf_append(&c->body, data, size);
    return MHD_YES;
}

static enum MHD_Result conn_run(struct gw_conn *c)
{
    if (c->answered)
        return MHD_YES;
    if (c->body_too_big) {
        struct gw_error e;
        gw_error_set(&e, 413, "invalid_request_error", "request_too_large",
                     "request body is over the limit of %zu bytes", c->gw->max_body);
        return gw_respond_error(c, &e, NULL);
    }
    return c->ep->run(c);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct gateway *gw = cls;
    struct gw_conn *c = *con_cls;
    (void)version;
    if (!c) {
        c = conn_new(gw, mc, url, method);
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

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct gateway *gw = cls;
    struct gw_conn *c = *con_cls;
    (void)mc;
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
    pthread_mutex_unlock(&c->lock);
    if (router_has_it && !ok)
        router_cancel(gw->rt, id);
    if (gone) {
        pthread_mutex_lock(&gw->lock);
        gw->stats.clients_gone++;
        pthread_mutex_unlock(&gw->lock);
    }
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
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c->mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
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
    struct router_snapshot *snap = gw_snapshot(c->gw);
    struct buf why;
    buf_init(&why);
    bool ready = gw_is_ready(snap, &why);
    free(snap);
    enum MHD_Result r = gw_respond_text(c, ready ? 200 : 503, ready ? "ready" : buf_str(&why));
    buf_cleanup(&why);
    return r;
}

static enum MHD_Result run_models(struct gw_conn *c)
{
    struct router_snapshot *snap = gw_snapshot(c->gw);
    gw_auth_filter_routes(c, snap);
    struct buf body;
    buf_init(&body);
    gw_models_json(snap, c->gw->started_s, &body);
    free(snap);
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
    struct buf body;
    buf_init(&body);
    gw_metrics_render(snap, stats, &body);
    gw_auth_metrics(gw, &body);
    free(snap);
    free(stats);
    return gw_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", &body, NULL);
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

static void mhd_log(void *cls, const char *fmt, va_list ap) SB_PRINTF(2, 0);

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    /* Most of what MHD reports is about one client (reset, gone, malformed request): debug.
     * What concerns the server as a whole is a warning. */
    static const char *const serious[] = {"resource", "accept", "epoll",  "thread",
                                          "bind",     "listen", "memory", "Failed to start"};
    char line[512];
    (void)cls;
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    enum log_level level = LOG_LEVEL_DEBUG;
    for (size_t i = 0; i < SB_ARRAY_LEN(serious); i++) {
        if (strstr(line, serious[i]))
            level = LOG_LEVEL_WARN;
    }
    log_msg(level, "gateway: http: %s", line);
}

struct gateway *gateway_new(const struct config *cfg, struct router *rt, char *msg, size_t msglen)
{
    const struct config_gateway *g = &cfg->gateway;
    if (!g->listen || !strrchr(g->listen, ':')) {
        snprintf(msg, msglen, "gateway.listen: expected HOST:PORT");
        return NULL;
    }
    struct gateway *gw = xcalloc(1, sizeof *gw);
    gw->rt = rt;
    gw->listen = xstrdup(g->listen);
    gw->max_connections = g->max_connections > 0 ? g->max_connections : 1024;
    gw->max_body = g->max_body_bytes > 0 ? (size_t)g->max_body_bytes : (size_t)4 * 1024 * 1024;
    gw->idle_timeout_ms = g->idle_timeout_ms > 0 ? g->idle_timeout_ms : 30000;
    gw->admin_token = g->admin_token && *g->admin_token ? xstrdup(g->admin_token) : NULL;
    gw->listen_fd = -1;
    gw->id_state =
        (uint64_t)clock_wall_ms() * 1000003u ^ (uint64_t)clock_mono_us() ^ (uint64_t)getpid() << 32;
    pthread_mutex_init(&gw->lock, NULL);
    pthread_cond_init(&gw->idle, NULL);
    gw_auth_init(gw, cfg);
    return gw;
}

/* "HOST:PORT" / "[v6]:PORT" -> a bound, listening socket. */
static int listen_on(const char *listen_spec, unsigned *port, bool *v6, char *msg, size_t msglen)
{
    char host[256];
    const char *colon = strrchr(listen_spec, ':');
    size_t hl = (size_t)(colon - listen_spec);
    const char *h = listen_spec;
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl >= sizeof host) {
        snprintf(msg, msglen, "gateway.listen: host too long");
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(hl ? host : NULL, colon + 1, &hints, &res);
    if (rc != 0) {
        snprintf(msg, msglen, "gateway.listen %s: %s", listen_spec, gai_strerror(rc));
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, GW_BACKLOG) != 0) {
            err = errno;
            close(fd);
            fd = -1;
            continue;
        }
        *v6 = ai->ai_family == AF_INET6;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(msg, msglen, "gateway.listen %s: %s", listen_spec, strerror(err));
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    memset(&ss, 0, sizeof ss);
    *port = 0;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            *port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            *port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    return fd;
}

enum sb_status gateway_start(struct gateway *gw, char *msg, size_t msglen)
{
    if (gw->started) {
        snprintf(msg, msglen, "gateway already started");
        return SB_ERR_STATE;
    }
    bool v6 = false;
    int fd = listen_on(gw->listen, &gw->port, &v6, msg, msglen);
    if (fd < 0)
        return SB_ERR_IO;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    if (v6)
        flags |= MHD_USE_IPv6;
    unsigned timeout_s = (unsigned)((gw->idle_timeout_ms + 999) / 1000);
    gw->started_s = clock_wall_ms() / 1000;
    /* The logger comes first so that MHD reports option errors through it. */
    gw->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, gw, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, gw,
        MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_THREAD_POOL_SIZE, GW_THREADS,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)gw->max_connections,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)GW_CONN_MEMORY, MHD_OPTION_CONNECTION_TIMEOUT,
        timeout_s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, gw, MHD_OPTION_END);
    if (!gw->daemon) {
        close(fd);
        snprintf(msg, msglen, "gateway: cannot start the HTTP server on %s", gw->listen);
        return SB_ERR_IO;
    }
    gw->listen_fd = fd;
    gw->started = true;
    log_info("gateway: listening on %s (port %u), %ld connections at most", gw->listen, gw->port,
             gw->max_connections);
    return SB_OK;
}

unsigned gateway_port(const struct gateway *gw)
{
    return gw && gw->started ? gw->port : 0;
}

static void deadline_in(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Cancels every call in the router; returns once each on_done has returned or the wait
 * timed out (then connections still waiting are resumed and answered 503). */
static void stop_calls(struct gateway *gw)
{
    size_t n = 0, cap = 0;
    uint64_t *ids = NULL;
    pthread_mutex_lock(&gw->lock);
    gw->stopping = true;
    for (struct gw_conn *c = gw->live; c; c = c->live_next) {
        ids = xgrow(ids, &cap, n + 1, sizeof *ids);
        ids[n++] = c->call_id;
    }
    pthread_mutex_unlock(&gw->lock);
    for (size_t i = 0; i < n; i++) {
        if (ids[i])
            router_cancel(gw->rt, ids[i]);
    }
    free(ids);

    struct timespec until;
    deadline_in(&until, GW_STOP_WAIT_MS);
    pthread_mutex_lock(&gw->lock);
    int rc = 0;
    while (gw->calls_live > 0 && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&gw->idle, &gw->lock, &until);
    long left = gw->calls_live;
    for (struct gw_conn *c = gw->live; c; c = c->live_next) {
        pthread_mutex_lock(&c->lock);
        c->abandoned = true;
        bool resume = gw_wake_locked(c);
        pthread_mutex_unlock(&c->lock);
        if (resume)
            MHD_resume_connection(c->mc);
    }
    pthread_mutex_unlock(&gw->lock);
    if (left > 0)
        log_error("gateway: %ld calls still in the router after %d ms; abandoning them", left,
                  GW_STOP_WAIT_MS);
}

void gateway_stop(struct gateway *gw)
{
    if (!gw || !gw->started || gw->stopped)
        return;
    int fd = MHD_quiesce_daemon(gw->daemon);
    if (fd >= 0)
        close(fd);
    gw->listen_fd = -1;
    stop_calls(gw);
    /* Let clients read the last bytes of their answers (error chunks, 503s), briefly. */
    for (int waited = 0; waited < GW_DRAIN_WAIT_MS; waited += 10) {
        pthread_mutex_lock(&gw->lock);
        long busy = gw->requests;
        pthread_mutex_unlock(&gw->lock);
        if (busy == 0)
            break;
        clock_sleep_ms(10);
    }
    MHD_stop_daemon(gw->daemon);
    gw->daemon = NULL;
    gw->stopped = true;
    log_info("gateway: stopped");
}

void gateway_free(struct gateway *gw)
{
    if (!gw)
        return;
    gateway_stop(gw);
    if (gw->listen_fd >= 0)
        close(gw->listen_fd);
    free(gw->listen);
    free(gw->admin_token);
    gw_auth_cleanup(gw);
    pthread_cond_destroy(&gw->idle);
    pthread_mutex_destroy(&gw->lock);
    free(gw);
}
