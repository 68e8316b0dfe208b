/*
 * admin_events.c - GET /admin/events: the router's event timeline as Server-Sent Events, for
 * consoles attached to this gateway.
 *
 *   retry: 1000
 *   id: 5f3a9c01d2e4b877-42
 *   data: {"seq":42,"wall_ms":...,"kind":"breaker","target":"alpha","text":"..."}
 *   data: {"seq":43,...,"kind":"fallback",...,"churn":true,"agg":7}
 *
 * Per-call churn carries "churn":true and the id of its aggregate (timeline.h): a later event
 * with the same agg is the same line with a new count, to be replaced, not added.
 *
 * Every event has an id "<instance>-<seq>": instance is random per process, so a client that
 * resumes with Last-Event-ID after this gateway restarted gets every event the new process
 * has (none is a duplicate of what it saw), and one that resumes the same process gets exactly
 * the events after its id. A ": heartbeat" comment goes out every GW_EV_HEARTBEAT_MS when
 * nothing else does, so a client can tell a quiet gateway from a dead one. Events older than
 * the GW_EV_KEEP kept here are gone: a resume from before them gets ": gap" first.
 *
 * Threads. A pump thread (started by the first stream, stopped by gateway_stop) copies new
 * events from router snapshots into a ring every GW_EV_TICK_MS and wakes the streams that
 * have something to send. The handler runs on the offload pool like every /admin/ path
 * (offload.c): it only registers the stream and creates the response, both safe off MHD's
 * threads (the stream stays RUNNING, so the pump never resumes it before MHD has it), and
 * MHD queues the response on the resumed connection. Readers run on MHD threads. Everything below
 * is guarded by ev->mu; no lock is held while calling MHD except MHD_suspend_connection /
 * MHD_resume_connection, which only take MHD's own mutex and never call back. A stream parks
 * (suspends) when it has nothing to send, with the same RUNNING -> SUSPENDING -> SUSPENDED protocol
 * as server.c, so every resume matches a suspend. A stream's state is freed by its response's free
 * callback.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "switchboard/log.h"

#define GW_EV_KEEP         1024
#define GW_EV_TICK_MS      100
#define GW_EV_HEARTBEAT_MS 1000

enum gw_ev_park { EV_RUNNING, EV_SUSPENDING, EV_WAKE_PENDING, EV_SUSPENDED };

struct gw_evstream {
    struct gw_evstream *next;
    struct gw_events *ev;
    struct MHD_Connection *mc;
    enum gw_ev_park park;
    uint64_t sent_seq; /* the last event written */
    bool gap_note;     /* write ": gap" first */
    bool over;         /* the gateway is stopping: end the stream */
    int64_t last_write_ms;
    struct buf out;
    size_t out_off;
};

struct gw_events {
    struct gateway *gw;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool running, stop;
    char instance[20];
    struct router_event ring[GW_EV_KEEP]; /* oldest at (next - n) */
    size_t n, next;
    uint64_t last_seq;
    struct gw_evstream *streams;
    struct router_snapshot *snap; /* pump thread only */
};

/* ---- the ring (under mu) ---------------------------------------------------------------- */

static const struct router_event *ring_at(const struct gw_events *ev, size_t i) /* 0 = oldest */
{
    return &ev->ring[(ev->next + GW_EV_KEEP - ev->n + i) % GW_EV_KEEP];
}

static uint64_t ring_oldest_seq(const struct gw_events *ev)
{
    return ev->n ? ring_at(ev, 0)->seq : ev->last_seq + 1;
}

static void ring_add(struct gw_events *ev, const struct router_event *e)
{
    ev->ring[ev->next] = *e;
    ev->next = (ev->next + 1) % GW_EV_KEEP;
    if (ev->n < GW_EV_KEEP)
        ev->n++;
    ev->last_seq = e->seq;
}

static void ingest(struct gw_events *ev, const struct router_snapshot *s)
{
    for (size_t i = 0; i < s->n_events && i < ROUTER_MAX_EVENTS; i++) {
        if (s->events[i].seq > ev->last_seq)
            ring_add(ev, &s->events[i]);
    }
}

/* ---- parking (same protocol as server.c) ------------------------------------------------- */

/* Caller holds mu. true: call MHD_resume_connection(st->mc) after unlocking. */
static bool wake_locked(struct gw_evstream *st)
{
    switch (st->park) {
    case EV_SUSPENDED:
        st->park = EV_RUNNING;
        return true;
    case EV_SUSPENDING:
        st->park = EV_WAKE_PENDING;
        return false;
    case EV_RUNNING:
    case EV_WAKE_PENDING:
        return false;
    }
    return false;
}

static bool has_news_locked(const struct gw_events *ev, const struct gw_evstream *st, int64_t now)
{
    return st->over || st->gap_note || st->sent_seq < ev->last_seq ||
           now - st->last_write_ms >= GW_EV_HEARTBEAT_MS;
}

/* Wakes every parked stream with something to send. Resumes happen after unlocking: a
 * suspended connection cannot finish (and free its stream) until it is resumed. */
static void wake_streams(struct gw_events *ev, bool all)
{
    struct MHD_Connection *todo[64];
    size_t n = 0;
    int64_t now = clock_mono_ms();
    pthread_mutex_lock(&ev->mu);
    for (struct gw_evstream *st = ev->streams; st && n < SB_ARRAY_LEN(todo); st = st->next) {
        if (all)
            st->over = true;
        if (has_news_locked(ev, st, now) && wake_locked(st))
            todo[n++] = st->mc;
    }
    pthread_mutex_unlock(&ev->mu);
    for (size_t i = 0; i < n; i++)
        MHD_resume_connection(todo[i]);
}

/* ---- the pump ------------------------------------------------------------------------------ */

static void *pump_main(void *arg)
{
    struct gw_events *ev = arg;
    uint64_t have_gen = 0;
    pthread_mutex_lock(&ev->mu);
    while (!ev->stop) {
        pthread_mutex_unlock(&ev->mu);
        if (router_snapshot_read(ev->gw->rt, ev->snap, have_gen)) {
            have_gen = ev->snap->gen;
            pthread_mutex_lock(&ev->mu);
            ingest(ev, ev->snap);
            pthread_mutex_unlock(&ev->mu);
        }
        wake_streams(ev, false);
        pthread_mutex_lock(&ev->mu);
        struct timespec until;
        clock_deadline_in(&until, GW_EV_TICK_MS);
        if (!ev->stop)
            pthread_cond_timedwait(&ev->cv, &ev->mu, &until);
    }
    pthread_mutex_unlock(&ev->mu);
    return NULL;
}

static struct gw_events *events_get(struct gateway *gw)
{
    pthread_mutex_lock(&gw->lock);
    if (!gw->events) {
        struct gw_events *ev = xcalloc(1, sizeof *ev);
        ev->gw = gw;
        pthread_mutex_init(&ev->mu, NULL);
        pthread_cond_init(&ev->cv, NULL);
        uint64_t r = (uint64_t)clock_wall_ms() * 6364136223846793005u ^ (uint64_t)clock_mono_us() ^
                     (uint64_t)getpid() << 40;
        snprintf(ev->instance, sizeof ev->instance, "%016" PRIx64, r);
        ev->snap = xcalloc(1, sizeof *ev->snap);
        gw->events = ev;
    }
    struct gw_events *ev = gw->events;
    pthread_mutex_unlock(&gw->lock);
    return ev;
}

/* Starts the pump once; false when the gateway is stopping or the thread cannot start. */
static bool pump_start(struct gw_events *ev)
{
    pthread_mutex_lock(&ev->mu);
    bool ok = ev->running;
    if (!ok && !ev->stop) {
        /* The events the router still has are history for the first stream. */
        if (router_snapshot_read(ev->gw->rt, ev->snap, 0))
            ingest(ev, ev->snap);
        ok = pthread_create(&ev->thread, NULL, pump_main, ev) == 0;
        ev->running = ok;
    }
    pthread_mutex_unlock(&ev->mu);
    return ok;
}

void gw_events_stop(struct gateway *gw)
{
    struct gw_events *ev = gw->events;
    if (!ev)
        return;
    pthread_mutex_lock(&ev->mu);
    ev->stop = true;
    bool join = ev->running;
    ev->running = false;
    pthread_cond_signal(&ev->cv);
    pthread_mutex_unlock(&ev->mu);
    if (join)
        pthread_join(ev->thread, NULL);
    wake_streams(ev, true); /* every stream ends; none stays suspended */
}

void gw_events_free(struct gateway *gw)
{
    struct gw_events *ev = gw->events;
    if (!ev)
        return;
    gw_events_stop(gw);
    /* Streams are freed by their responses, which MHD_stop_daemon destroyed. */
    pthread_mutex_destroy(&ev->mu);
    pthread_cond_destroy(&ev->cv);
    free(ev->snap);
    free(ev);
    gw->events = NULL;
}

/* ---- one stream ---------------------------------------------------------------------------- */

static void put_event(struct buf *b, const char *instance, const struct router_event *e)
{
    struct buf data;
    struct gw_json j;
    buf_init(&data);
    gw_json_init(&j, &data);
    gw_json_open(&j, NULL, '{');
    gw_json_uint(&j, "seq", e->seq);
    gw_json_int(&j, "wall_ms", e->wall_ms);
    gw_json_str(&j, "kind", gw_event_kind_name(e->kind));
    gw_json_str(&j, "target", e->target);
    gw_json_str(&j, "text", e->text);
    if (e->churn) { /* per-call churn; agg: the aggregate line this update replaces */
        gw_json_bool(&j, "churn", true);
        gw_json_uint(&j, "agg", e->agg);
    }
    gw_json_close(&j, '}');
    buf_printf(b, "id: %s-%" PRIu64 "\ndata: %s\n\n", instance, e->seq, buf_str(&data));
    buf_cleanup(&data);
}

/* Fills st->out with what is due (caller holds mu). */
static void fill_locked(struct gw_events *ev, struct gw_evstream *st, int64_t now)
{
    if (st->gap_note) {
        buf_puts(&st->out, ": gap: older events are no longer kept\n\n");
        st->gap_note = false;
    }
    for (size_t i = 0; i < ev->n && st->out.len < (size_t)64 * 1024; i++) {
        const struct router_event *e = ring_at(ev, i);
        if (e->seq <= st->sent_seq)
            continue;
        put_event(&st->out, ev->instance, e);
        st->sent_seq = e->seq;
    }
    if (st->out.len == 0 && now - st->last_write_ms >= GW_EV_HEARTBEAT_MS)
        buf_puts(&st->out, ": heartbeat\n\n");
    if (st->out.len)
        st->last_write_ms = now;
}

static ssize_t events_read(void *cls, uint64_t pos, char *dst, size_t max)
{
    struct gw_evstream *st = cls;
    struct gw_events *ev = st->ev;
    (void)pos;
    pthread_mutex_lock(&ev->mu);
    if (st->out_off == st->out.len) {
        buf_reset(&st->out);
        st->out_off = 0;
        if (st->over) {
            pthread_mutex_unlock(&ev->mu);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        fill_locked(ev, st, clock_mono_ms());
    }
    size_t avail = st->out.len - st->out_off;
    if (avail > 0) {
        size_t n = avail < max ? avail : max;
        memcpy(dst, st->out.data + st->out_off, n);
        st->out_off += n;
        pthread_mutex_unlock(&ev->mu);
        return (ssize_t)n;
    }
    st->park = EV_SUSPENDING;
    pthread_mutex_unlock(&ev->mu);
    MHD_suspend_connection(st->mc);
    pthread_mutex_lock(&ev->mu);
    bool resume = st->park == EV_WAKE_PENDING;
    st->park = resume ? EV_RUNNING : EV_SUSPENDED;
    pthread_mutex_unlock(&ev->mu);
    if (resume)
        gw_resume_now(st->mc);
    return 0;
}

static void events_free_stream(void *cls)
{
    struct gw_evstream *st = cls;
    struct gw_events *ev = st->ev;
    pthread_mutex_lock(&ev->mu);
    for (struct gw_evstream **p = &ev->streams; *p; p = &(*p)->next) {
        if (*p == st) {
            *p = st->next;
            break;
        }
    }
    pthread_mutex_unlock(&ev->mu);
    buf_cleanup(&st->out);
    free(st);
}

/* "<instance>-<seq>": where to start. Another instance's id (this gateway restarted): from
 * the oldest event kept, all of which are new to the client. */
static void resume_from(struct gw_events *ev, struct gw_evstream *st, const char *last_id)
{
    st->sent_seq = 0;
    const char *dash = last_id ? strrchr(last_id, '-') : NULL;
    if (!dash || (size_t)(dash - last_id) != strlen(ev->instance) ||
        strncmp(last_id, ev->instance, strlen(ev->instance)) != 0)
        return;
    char *end = NULL;
    errno = 0;
    unsigned long long seq = strtoull(dash + 1, &end, 10);
    if (errno || end == dash + 1 || *end || dash[1] == '-')
        return;
    st->sent_seq = (uint64_t)seq;
    if (st->sent_seq + 1 < ring_oldest_seq(ev))
        st->gap_note = true;
}

enum MHD_Result gw_admin_events(struct gw_conn *c)
{
    struct gw_events *ev = events_get(c->gw);
    if (!pump_start(ev)) {
        struct gw_error e;
        gw_error_set(&e, 503, "server_error", "shutting_down", "switchboard is shutting down");
        return gw_respond_error(c, &e, NULL);
    }
    struct gw_evstream *st = xcalloc(1, sizeof *st);
    st->ev = ev;
    st->mc = c->mc;
    buf_init(&st->out);
    const char *last = MHD_lookup_connection_value(c->mc, MHD_HEADER_KIND, "Last-Event-ID");
    pthread_mutex_lock(&ev->mu);
    resume_from(ev, st, last);
    buf_puts(&st->out, "retry: 1000\n\n");
    st->last_write_ms = clock_mono_ms();
    st->next = ev->streams;
    ev->streams = st;
    pthread_mutex_unlock(&ev->mu);
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, (size_t)4 * 1024,
                                                               events_read, st, events_free_stream);
    if (!r) {
        events_free_stream(st);
        return MHD_NO;
    }
    const char *hdrs[] = {MHD_HTTP_HEADER_CONTENT_TYPE,
                          "text/event-stream",
                          MHD_HTTP_HEADER_CACHE_CONTROL,
                          "no-cache",
                          "X-Accel-Buffering",
                          "no",
                          "x-switchboard-instance",
                          ev->instance,
                          NULL};
    return gw_queue(c, 200, r, hdrs);
}
