/*
 * daemon.c - the gateway's lifecycle: its listeners (gateway.listen for everything, and
 * gateway.admin_listen, when set, for /healthz, /readyz, /metrics and /admin/ on connections
 * of their own), start, drain and stop.
 *
 * Threads. The main thread calls gateway_new/start/drain/wait_idle/stop/free, in that order,
 * and router_start/router_stop (the router's loop calls below rely on it). Each listener is
 * one libmicrohttpd daemon; both call the same handlers (server.c), which tell them apart by
 * the listener they get as cls. gateway.listen with gateway.threads 0 has no
 * thread of its own: its daemon runs in external-loop epoll mode on the router thread (MHD's
 * epoll fd in the transport's wait, MHD_run after every turn, MHD_get_timeout capping the
 * wait: router_set_loop_hook), so a chat request is parsed, routed, relayed and answered on
 * that one thread. With threads N >= 1 it has N internal epoll threads, as admin_listen always
 * has one. Absent (-1), gateway_threads_resolve picks 0 with 2 or fewer online cores, else 2.
 *
 * Stopping. gateway_drain stops taking new chat calls (503 shutting_down with Retry-After,
 * /readyz 503, "Connection: close" on every answer) while the ones in flight go on;
 * gateway_wait_idle waits for them. gateway_stop then ends whatever is left: each call still
 * in the router is cancelled as a shutdown (router_cancel_shutdown: the client reads "switchboard
 * is shutting down", the ledger records 503), the router is waited for (up to GW_STOP_WAIT_MS),
 * clients get a moment to read their last bytes (up to GW_LAST_BYTES_MS) and the daemons stop.
 * MHD_stop_daemon must not see suspended connections: stop_calls waits until every on_done has
 * returned (each resumes its connection), and nothing parks once its call is done.
 * A daemon on the router's loop is only ever run by one thread: the router thread while it
 * runs, else the main thread (router_stop came first). So its quiesce and the last-bytes
 * polls go through router_loop_call, and MHD_stop_daemon waits for the hook's detach (done
 * in a router turn; after it no MHD_run follows). A router thread that does not answer that
 * detach (stuck: the emergency path) gets its daemon left running rather than raced.
 */
#include <arpa/inet.h>
#include <errno.h>
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

#define GW_OPS_CONNECTIONS 64u /* admin_listen: connections at once */
#define GW_OPS_PER_CLIENT  16u /* admin_listen: connections per client address */
/* Per connection: request headers + write buffer. MHD 0.9.75 zeroes all of it at every
 * keep-alive reset, so it is resident for every open connection: 12 MB at 1,000 streams. */
#define GW_CONN_MEMORY   (12u * 1024)
#define GW_BACKLOG       1024
#define GW_STOP_WAIT_MS  5000 /* for the router to finish cancelled calls */
#define GW_LAST_BYTES_MS 2000 /* for clients to read their last bytes */
#define GW_LOOP_CALL_MS  5000 /* for the router thread to take the listener on or off its loop */
#define GW_LOOP_POLL_MS  10   /* stopping: one MHD_run of the loop listener, waited for */

static void mhd_log(void *cls, const char *fmt, va_list ap) SB_PRINTF(2, 0);
static void listener_stop(struct gw_listener *l);

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    /* Most of what MHD reports is about one client (reset, gone, malformed request): debug.
     * What concerns the server as a whole is a warning. MHD 0.9.75 closes a connection over
     * the per-address cap at accept with this line (over the connection limit it stops
     * accepting instead), so it is counted and logged as a refusal. */
    static const char *const serious[] = {"resource", "accept", "epoll",  "thread",
                                          "bind",     "listen", "memory", "Failed to start"};
    struct gw_listener *l = cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    if (strstr(line, "reached connection limit")) {
        gw_note_refused(l->gw);
        return;
    }
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

static void listener_init(struct gw_listener *l, struct gateway *gw, const char *spec, bool ops)
{
    l->gw = gw;
    l->ops_only = ops;
    l->spec = spec ? xstrdup(spec) : NULL;
    l->fd = -1;
}

struct gateway *gateway_new(const struct config *cfg, struct router *rt, char *msg, size_t msglen)
{
    const struct config_gateway *g = &cfg->gateway;
    if (!g->listen || !strrchr(g->listen, ':')) {
        snprintf(msg, msglen, "gateway.listen: expected HOST:PORT");
        return NULL;
    }
    if (g->admin_listen && !strrchr(g->admin_listen, ':')) {
        snprintf(msg, msglen, "gateway.admin_listen: expected HOST:PORT");
        return NULL;
    }
    struct gateway *gw = xcalloc(1, sizeof *gw);
    gw->rt = rt;
    router_set_turn_hook(rt, gw_turn, gw); /* before router_start (serve, console) */
    router_set_batch_end(rt, gw_batch_end, gw);
    gw->max_connections = g->max_connections > 0 ? g->max_connections : 1024;
    gw->max_body = g->max_body_bytes > 0 ? (size_t)g->max_body_bytes : (size_t)4 * 1024 * 1024;
    gw->idle_timeout_ms = g->idle_timeout_ms > 0 ? g->idle_timeout_ms : 30000;
    gw->request_timeout_ms = g->request_timeout_ms > 0 ? g->request_timeout_ms : 30000;
    gw->per_client = g->max_connections_per_client > 0 ? g->max_connections_per_client : 0;
    gw->body_cap = g->max_body_bytes_total > 0 ? (uint64_t)g->max_body_bytes_total
                                               : (uint64_t)64 * 1024 * 1024;
    if (gw->body_cap < gw->max_body)
        gw->body_cap = gw->max_body;
    gw_admin_setup(gw, g);
    gw->snapcache = gw_snapcache_new();
    listener_init(&gw->api, gw, g->listen, false);
    listener_init(&gw->ops, gw, g->admin_listen, true);
    gw->api.max_connections = gw->max_connections;
    gw->api.threads = (unsigned)gateway_threads_resolve(g->threads, sysconf(_SC_NPROCESSORS_ONLN));
    gw->ops.threads = 1;
    gw->ops.max_connections = GW_OPS_CONNECTIONS;
    gw->id_state =
        (uint64_t)clock_wall_ms() * 1000003u ^ (uint64_t)clock_mono_us() ^ (uint64_t)getpid() << 32;
    pthread_mutex_init(&gw->lock, NULL);
    pthread_cond_init(&gw->idle, NULL);
    pthread_mutex_init(&gw->sock_lock, NULL);
    pthread_cond_init(&gw->sock_cond, NULL);
    gw_auth_init(gw, cfg);
    gw_quality_init(gw, cfg);
    gw_users_init(gw, cfg);
    gw_offload_start(gw); /* the handlers that may block; its threads poll the client keys */
    return gw;
}

/* gateway.threads absent: the loop up to this many online cores. */
#define GW_LOOP_MAX_CORES 2

int gateway_threads_resolve(long configured, long online)
{
    long n = configured;
    if (n < 0) /* the loop wins or ties on 2 cores (docs/bench.md, session 9); past that MHD
                * threads spread the HTTP work the one loop would keep on one core */
        n = online >= 1 && online <= GW_LOOP_MAX_CORES ? 0 : 2;
    return (int)(n > 64 ? 64 : n);
}

static unsigned bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    memset(&ss, 0, sizeof ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
        return 0;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

/* "HOST:PORT" / "[v6]:PORT" -> a bound, listening socket. */
static int listen_on(const char *key, const char *listen_spec, unsigned *port, bool *v6, char *msg,
                     size_t msglen)
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
        snprintf(msg, msglen, "gateway.%s: host too long", key);
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
        snprintf(msg, msglen, "gateway.%s %s: %s", key, listen_spec, gai_strerror(rc));
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
        snprintf(msg, msglen, "gateway.%s %s: %s", key, listen_spec, strerror(err));
        return -1;
    }
    *port = bound_port(fd);
    return fd;
}

/* ---- the listener on the router's loop (threads 0) ------------------------------------------ */

/* The loop hook: MHD_run on the router thread, after each of its turns. MHD_run does not
 * block; it accepts, reads, calls the handlers and writes what is ready. */
static void loop_run(void *ctx)
{
    struct gw_listener *l = ctx;
    bool resumed = gw_resumed_take(); /* this run takes them */
    /* Nothing to do after a turn without a transport run (MHD's epoll fd was not waited on)
     * in which this thread resumed nothing: every change to the daemon made on this thread
     * is a resume (gw_resume, gw_resume_now); the other threads' come with the fd. */
    if (resumed || router_loop_hook_waited(l->gw->rt))
        MHD_run(l->daemon);
}

/* MHD's next timeout (idle connections) caps the router's wait; MHD_NO: it has none. */
static int64_t loop_wait_cap(void *ctx)
{
    struct gw_listener *l = ctx;
    MHD_UNSIGNED_LONG_LONG t = 0;
    if (MHD_get_timeout(l->daemon, &t) != MHD_YES)
        return -1;
    return t > (MHD_UNSIGNED_LONG_LONG)INT64_MAX ? INT64_MAX : (int64_t)t;
}

/* Hands l's daemon (external-loop epoll mode, just started) to the router thread's loop. */
static enum sb_status loop_attach(struct gw_listener *l, char *msg, size_t msglen)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(l->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    if (!info || info->epoll_fd < 0) {
        snprintf(msg, msglen, "gateway: the HTTP server on %s has no epoll fd", l->spec);
        return SB_ERR_IO;
    }
    struct router_loop_hook h = {info->epoll_fd, loop_run, loop_wait_cap, l};
    char why[200];
    if (router_set_loop_hook(l->gw->rt, &h, GW_LOOP_CALL_MS, why, sizeof why) != SB_OK) {
        snprintf(msg, msglen, "gateway: cannot run %s on the router's loop: %s", l->spec, why);
        return SB_ERR_IO;
    }
    l->on_loop = true;
    return SB_OK;
}

/* Takes l's daemon off the router's loop: once this returns true no thread runs it, and the
 * caller may stop it. False (logged) when the router thread did not answer: then the daemon
 * must be left alone. */
static bool loop_detach(struct gw_listener *l)
{
    if (!l->on_loop)
        return true;
    char msg[256];
    if (router_set_loop_hook(l->gw->rt, NULL, GW_LOOP_CALL_MS, msg, sizeof msg) != SB_OK) {
        log_error("gateway: %s: the HTTP server on %s is left to the router thread", msg, l->spec);
        return false;
    }
    l->on_loop = false;
    return true;
}

/* Binds l->spec and starts its daemon. The per-address cap and the connection limit are
 * MHD's own (MHD_OPTION_PER_IP_CONNECTION_LIMIT, MHD_OPTION_CONNECTION_LIMIT); so is the idle
 * timeout. The whole-request deadline is limits.c's (MHD has none). */
static enum sb_status listener_start(struct gw_listener *l, char *msg, size_t msglen)
{
    struct gateway *gw = l->gw;
    const char *key = l->ops_only ? "admin_listen" : "listen";
    bool v6 = false;
    int fd = listen_on(key, l->spec, &l->port, &v6, msg, msglen);
    if (fd < 0)
        return SB_ERR_IO;
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (l->threads > 0)
        flags |= MHD_USE_INTERNAL_POLLING_THREAD;
    if (v6)
        flags |= MHD_USE_IPv6;
    unsigned timeout_s = (unsigned)((gw->idle_timeout_ms + 999) / 1000);
    unsigned per_ip = l->ops_only ? GW_OPS_PER_CLIENT : (unsigned)gw->per_client;
    /* A pool of 0 or 1 makes MHD warn: the option then is not passed at all (an END in its
     * place ends the list; the values after it are never read). */
    unsigned pool = l->threads > 1 ? l->threads : 0;
    enum MHD_OPTION pool_opt = pool > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END;
    /* The logger comes first so that MHD reports option errors through it. */
    l->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, gw_on_request, l, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, l,
        MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT, (unsigned)l->max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)GW_CONN_MEMORY, MHD_OPTION_CONNECTION_TIMEOUT, timeout_s,
        MHD_OPTION_NOTIFY_COMPLETED, gw_on_completed, l, MHD_OPTION_NOTIFY_CONNECTION,
        gw_on_connection, l, pool_opt, pool, MHD_OPTION_END);
    if (!l->daemon) {
        close(fd);
        snprintf(msg, msglen, "gateway: cannot start the HTTP server on %s", l->spec);
        return SB_ERR_IO;
    }
    l->fd = fd;
    if (l->threads == 0 && loop_attach(l, msg, msglen) != SB_OK) {
        MHD_stop_daemon(l->daemon); /* closes its listen socket, fd */
        l->daemon = NULL;
        l->fd = -1;
        return SB_ERR_IO;
    }
    log_info("gateway: %s on %s (port %u), %ld connections at most, %u per client address%s; "
             "%s",
             l->ops_only ? "/healthz, /readyz, /metrics and /admin/" : "listening", l->spec,
             l->port, l->max_connections, per_ip, per_ip ? "" : " (no cap)",
             l->threads == 0 ? "on the router thread's loop" : "on threads of its own");
    return SB_OK;
}

enum sb_status gateway_start(struct gateway *gw, char *msg, size_t msglen)
{
    if (gw->started) {
        snprintf(msg, msglen, "gateway already started");
        return SB_ERR_STATE;
    }
    gw->started_s = clock_wall_ms() / 1000;
    enum sb_status st = gw_watch_start(gw, msg, msglen);
    if (st == SB_OK)
        st = listener_start(&gw->api, msg, msglen);
    if (st == SB_OK && gw->ops.spec) {
        st = listener_start(&gw->ops, msg, msglen);
        if (st != SB_OK) {
            listener_stop(&gw->api); /* MHD closes the listen socket */
            gw->api.fd = -1;
        }
    }
    if (st != SB_OK) {
        gw_watch_stop(gw);
        return st;
    }
    gw->started = true;
    return SB_OK;
}

unsigned gateway_port(const struct gateway *gw)
{
    return gw && gw->started ? gw->api.port : 0;
}

unsigned gateway_admin_port(const struct gateway *gw)
{
    return gw && gw->started && gw->ops.daemon ? gw->ops.port : 0;
}

void gateway_drain(struct gateway *gw)
{
    if (!gw || !gw->started)
        return;
    pthread_mutex_lock(&gw->lock);
    bool first = !gw->draining;
    gw->draining = true;
    gw->stats.draining = true;
    long open = gw->calls_open;
    pthread_mutex_unlock(&gw->lock);
    if (first)
        log_info("gateway: draining: no new calls, /readyz answers 503; %ld in flight", open);
}

bool gateway_wait_idle(struct gateway *gw, int64_t timeout_ms)
{
    if (!gw)
        return true;
    struct timespec until;
    clock_deadline_in(&until, timeout_ms);
    pthread_mutex_lock(&gw->lock);
    int rc = 0;
    while (gw->calls_open > 0 && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&gw->idle, &gw->lock, &until);
    bool idle = gw->calls_open == 0;
    pthread_mutex_unlock(&gw->lock);
    return idle;
}

long gateway_in_flight(struct gateway *gw)
{
    if (!gw)
        return 0;
    pthread_mutex_lock(&gw->lock);
    long n = gw->calls_open;
    pthread_mutex_unlock(&gw->lock);
    return n;
}

/* Cancels every call in the router as a shutdown; returns once each on_done has returned or
 * the wait timed out (then connections still waiting are resumed and answered 503). */
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
    if (n > 0)
        log_info("gateway: ending %zu calls still in flight: switchboard is shutting down", n);
    for (size_t i = 0; i < n; i++) {
        if (ids[i])
            router_cancel_shutdown(gw->rt, ids[i]);
    }
    free(ids);

    struct timespec until;
    clock_deadline_in(&until, GW_STOP_WAIT_MS);
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

static void quiesce_now(void *ctx)
{
    struct gw_listener *l = ctx;
    int fd = MHD_quiesce_daemon(l->daemon);
    if (fd >= 0)
        close(fd);
    l->fd = -1;
}

/* Stops accepting, on the thread that runs the daemon (the router thread for one on its
 * loop, which must not race with its MHD_run). */
static void listener_quiesce(struct gw_listener *l)
{
    if (!l->daemon)
        return;
    char msg[256];
    if (!l->on_loop)
        quiesce_now(l);
    else if (router_loop_call(l->gw->rt, quiesce_now, l, GW_LOOP_CALL_MS, msg, sizeof msg) != SB_OK)
        log_error("gateway: %s: %s still accepts", msg, l->spec);
}

static void poll_now(void *ctx)
{
    struct gw_listener *l = ctx;
    MHD_run(l->daemon);
}

/* Stopping: lets clients read the last bytes of their answers (error chunks, 503s), briefly.
 * A listener on the loop is run by the router thread while it runs, and from here once it
 * has stopped (router_stop before gateway_stop): router_loop_call picks the thread. */
static void last_bytes(struct gateway *gw)
{
    int64_t until = clock_mono_ms() + GW_LAST_BYTES_MS;
    for (;;) {
        pthread_mutex_lock(&gw->lock);
        long busy = gw->requests;
        pthread_mutex_unlock(&gw->lock);
        if (busy == 0 || clock_mono_ms() >= until)
            break;
        char msg[256];
        if (!gw->api.on_loop ||
            router_loop_call(gw->rt, poll_now, &gw->api, GW_LOOP_POLL_MS, msg, sizeof msg) == SB_OK)
            clock_sleep_ms(GW_LOOP_POLL_MS);
    }
}

/* Stops l's daemon: first off the router's loop, when it is on it. One the router thread did
 * not give back is left as it is (the router is stuck; stopping it would race). */
static void listener_stop(struct gw_listener *l)
{
    if (l->daemon && loop_detach(l))
        MHD_stop_daemon(l->daemon);
    l->daemon = NULL;
}

void gateway_stop(struct gateway *gw)
{
    if (!gw || !gw->started || gw->stopped)
        return;
    listener_quiesce(&gw->api);
    stop_calls(gw);
    /* the pool first: an /admin/events request it still runs would start a stream */
    gw_offload_stop(gw);
    gw_events_stop(gw); /* event streams end now: none is left suspended */
    last_bytes(gw);
    listener_quiesce(&gw->ops);
    listener_stop(&gw->api);
    listener_stop(&gw->ops);
    gw_watch_stop(gw);
    gw->stopped = true;
    log_info("gateway: stopped");
}

void gateway_free(struct gateway *gw)
{
    if (!gw)
        return;
    gateway_stop(gw);
    if (gw->api.on_loop) { /* its detach failed: the router thread still holds the listener */
        log_error("gateway: the router thread still runs the HTTP server: not freed");
        return;
    }
    if (gw->api.fd >= 0)
        close(gw->api.fd);
    if (gw->ops.fd >= 0)
        close(gw->ops.fd);
    free(gw->api.spec);
    free(gw->ops.spec);
    gw_offload_free(gw); /* before the key set its poll reads */
    gw_admin_cleanup(gw);
    gw_snapcache_free(gw->snapcache);
    gw_auth_cleanup(gw);
    gw_quality_cleanup(gw);
    gw_users_cleanup(gw);
    pthread_cond_destroy(&gw->sock_cond);
    pthread_mutex_destroy(&gw->sock_lock);
    pthread_cond_destroy(&gw->idle);
    pthread_mutex_destroy(&gw->lock);
    free(gw);
}
