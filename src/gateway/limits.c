/*
 * limits.c - what keeps misbehaving clients from taking the gateway down: the connection
 * list, the whole-request receive deadline (slowloris), the refusal counters, and the budget
 * of request bytes held across all connections. Each limit that bites is counted (for
 * /metrics) and logged, at most once per GW_LOG_EVERY_MS per kind, with the total so far.
 *
 * The per-address cap and the connection limit are libmicrohttpd's own (daemon.c). What MHD
 * lacks is a deadline on receiving a whole request: its connection timeout is an idle timeout,
 * which a client dripping a byte every few seconds never trips. So every connection (MHD's
 * socket context, struct gw_sock) records since when it has been receiving a request: from
 * its accept, and from the end of each answer; the request's last body byte stops the clock.
 * A watchdog thread shuts down (shutdown(2), never close) the socket of any connection past
 * gateway.request_timeout_ms; MHD then sees the end of the stream and closes it the usual way.
 *
 * Threads and locks. MHD threads add and remove connections and move their clocks; the
 * watchdog thread reads them. gw->sock_lock guards the list, its clocks and watch_stop.
 * MHD reports a connection closed (NOTIFY_CLOSED, under which gw_sock_close takes the lock)
 * before it closes the socket, so an fd the watchdog shuts down under the lock is still the
 * connection's. Counters live under gw->lock; the two locks are never held together.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"
#include "switchboard/log.h"

#define GW_LOG_EVERY_MS  5000
#define GW_WATCH_TICK_MS 200

bool gw_log_due_locked(int64_t *last_ms)
{
    int64_t now = clock_mono_ms();
    if (*last_ms != 0 && now - *last_ms < GW_LOG_EVERY_MS)
        return false;
    *last_ms = now;
    return true;
}

/* ---- connections -------------------------------------------------------------------------- */

static struct gw_sock *sock_open(struct gw_listener *l, struct MHD_Connection *mc)
{
    struct gateway *gw = l->gw;
    struct gw_sock *s = xcalloc(1, sizeof *s);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
    s->l = l;
    s->fd = ci ? ci->connect_fd : -1;
    s->recv_since_ms = clock_mono_ms();
    gw_sockaddr_text(mc, s->addr, sizeof s->addr);
    pthread_mutex_lock(&gw->sock_lock);
    s->next = gw->socks;
    if (gw->socks)
        gw->socks->prev = s;
    gw->socks = s;
    pthread_mutex_unlock(&gw->sock_lock);

    int i = l->ops_only ? 1 : 0;
    pthread_mutex_lock(&gw->lock);
    long open = ++gw->stats.connections[i];
    bool full = open >= l->max_connections;
    bool log = full && gw_log_due_locked(&gw->log_saturated_ms);
    if (full)
        gw->stats.conn_saturated++;
    uint64_t times = gw->stats.conn_saturated;
    pthread_mutex_unlock(&gw->lock);
    if (log)
        log_warn("gateway: every connection of %s is taken (%ld): new ones wait in the backlog; "
                 "%llu times so far",
                 l->spec, open, (unsigned long long)times);
    return s;
}

static void sock_close(struct gw_sock *s)
{
    struct gateway *gw = s->l->gw;
    pthread_mutex_lock(&gw->sock_lock);
    if (s->prev)
        s->prev->next = s->next;
    else
        gw->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    pthread_mutex_unlock(&gw->sock_lock);
    pthread_mutex_lock(&gw->lock);
    gw->stats.connections[s->l->ops_only ? 1 : 0]--;
    pthread_mutex_unlock(&gw->lock);
    free(s);
}

void gw_on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                      enum MHD_ConnectionNotificationCode code)
{
    switch (code) {
    case MHD_CONNECTION_NOTIFY_STARTED:
        *socket_context = sock_open(cls, mc);
        break;
    case MHD_CONNECTION_NOTIFY_CLOSED:
        if (*socket_context)
            sock_close(*socket_context);
        *socket_context = NULL;
        break;
    }
}

void gw_sock_receiving(struct MHD_Connection *mc, bool receiving)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct gw_sock *s = ci ? ci->socket_context : NULL;
    if (!s)
        return;
    struct gateway *gw = s->l->gw;
    pthread_mutex_lock(&gw->sock_lock);
    s->recv_since_ms = receiving ? clock_mono_ms() : 0;
    pthread_mutex_unlock(&gw->sock_lock);
}

void gw_note_refused(struct gateway *gw)
{
    pthread_mutex_lock(&gw->lock);
    uint64_t n = ++gw->stats.conn_refused;
    bool log = gw_log_due_locked(&gw->log_refused_ms);
    long cap = gw->per_client;
    pthread_mutex_unlock(&gw->lock);
    if (log)
        log_warn("gateway: closed a new connection at accept: its client address already has "
                 "%ld (gateway.max_connections_per_client); %llu so far",
                 cap, (unsigned long long)n);
}

/* ---- the receive deadline ----------------------------------------------------------------- */

/* Shuts down every connection past the deadline; returns how many, with one's address. */
static unsigned cut_late(struct gateway *gw, int64_t now, char *addr, size_t addrlen)
{
    unsigned n = 0;
    for (struct gw_sock *s = gw->socks; s; s = s->next) {
        if (s->cut || s->recv_since_ms == 0 || now - s->recv_since_ms < gw->request_timeout_ms)
            continue;
        s->cut = true;
        if (s->fd >= 0)
            shutdown(s->fd, SHUT_RDWR);
        if (n++ == 0)
            str_copy(addr, addrlen, s->addr);
    }
    return n;
}

static void note_cut(struct gateway *gw, unsigned n, const char *addr)
{
    pthread_mutex_lock(&gw->lock);
    gw->stats.request_timeouts += n;
    uint64_t total = gw->stats.request_timeouts;
    bool log = gw_log_due_locked(&gw->log_timeout_ms);
    pthread_mutex_unlock(&gw->lock);
    if (log)
        log_warn("gateway: closed %u connection%s (one from %s) that had not sent a whole "
                 "request within %lld ms (gateway.request_timeout_ms); %llu so far",
                 n, n == 1 ? "" : "s", addr, (long long)gw->request_timeout_ms,
                 (unsigned long long)total);
}

static void *watch_main(void *arg)
{
    struct gateway *gw = arg;
    pthread_mutex_lock(&gw->sock_lock);
    while (!gw->watch_stop) {
        struct timespec until;
        clock_deadline_in(&until, GW_WATCH_TICK_MS);
        pthread_cond_timedwait(&gw->sock_cond, &gw->sock_lock, &until);
        char addr[48] = "";
        unsigned n = gw->watch_stop ? 0 : cut_late(gw, clock_mono_ms(), addr, sizeof addr);
        if (n > 0) {
            pthread_mutex_unlock(&gw->sock_lock);
            note_cut(gw, n, addr);
            pthread_mutex_lock(&gw->sock_lock);
        }
    }
    pthread_mutex_unlock(&gw->sock_lock);
    return NULL;
}

enum sb_status gw_watch_start(struct gateway *gw, char *msg, size_t msglen)
{
    gw->watch_stop = false;
    int rc = pthread_create(&gw->watch, NULL, watch_main, gw);
    if (rc != 0) {
        snprintf(msg, msglen, "gateway: cannot start a thread: %s", strerror(rc));
        return SB_ERR_IO;
    }
    gw->watch_started = true;
    return SB_OK;
}

void gw_watch_stop(struct gateway *gw)
{
    if (!gw->watch_started)
        return;
    pthread_mutex_lock(&gw->sock_lock);
    gw->watch_stop = true;
    pthread_cond_signal(&gw->sock_cond);
    pthread_mutex_unlock(&gw->sock_lock);
    pthread_join(gw->watch, NULL);
    gw->watch_started = false;
}

/* ---- request bytes ------------------------------------------------------------------------ */

bool gw_body_reserve(struct gw_conn *c, size_t n)
{
    struct gateway *gw = c->gw;
    pthread_mutex_lock(&gw->lock);
    bool ok = gw->stats.body_bytes + n <= gw->body_cap;
    if (ok) {
        gw->stats.body_bytes += n;
        c->body_reserved += n;
    } else {
        gw->stats.body_refused++;
    }
    uint64_t held = gw->stats.body_bytes, refused = gw->stats.body_refused;
    bool log = !ok && gw_log_due_locked(&gw->log_body_ms);
    pthread_mutex_unlock(&gw->lock);
    if (log)
        log_warn("gateway: answered 503 to %s: %llu request bytes held, %zu more would go over "
                 "gateway.max_body_bytes_total (%llu); %llu so far",
                 c->request_id, (unsigned long long)held, n, (unsigned long long)gw->body_cap,
                 (unsigned long long)refused);
    return ok;
}

void gw_body_release(struct gw_conn *c)
{
    if (c->body_reserved == 0)
        return;
    struct gateway *gw = c->gw;
    pthread_mutex_lock(&gw->lock);
    gw->stats.body_bytes -= c->body_reserved;
    pthread_mutex_unlock(&gw->lock);
    c->body_reserved = 0;
}
