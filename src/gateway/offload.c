/*
 * offload.c - the offload pool: GW_OFFLOAD_THREADS threads that run the handlers of the
 * endpoints that may block (the endpoints marked offload in server.c: /admin/, /metrics,
 * /v1/feedback: ledger reads and writes, waits for the router, whole snapshots) off the
 * threads that serve the HTTP connections, the parse of a big chat body when those threads
 * are the router's loop (chat.c, GW_LOOP_PARSE_MAX), and the poll of the ledger's client keys.
 * The pool runs whatever job the MHD thread posted with the request (gw_offload_job: c->off_job);
 * the chat parse is a job that answers nothing, after which the endpoint's handler goes on
 * on the daemon's thread (step 3 below).
 *
 * One request's way (server.c's conn_run and gw_queue do the MHD side):
 *   1. The MHD thread has the whole request. It marks the request offloaded, decides to park
 *      it (c->park SUSPENDING, server.c's protocol), posts it here and suspends it
 *      (gw_park_end). A post after gw_offload_stop is refused: the request is answered 503
 *      at once, never suspended.
 *   2. A pool thread runs the endpoint's handler. MHD_queue_response may only be called from
 *      the thread that runs the daemon, inside the access handler, so gw_queue, seeing
 *      c->offloaded, only stashes the response and its status in c (the status is counted,
 *      c->answered set); the handler's result is stashed too. Then it wakes the connection
 *      (gw_wake_locked: SUSPENDED -> resume; SUSPENDING -> the parking MHD thread resumes it
 *      right after its suspend), and lets go of c.
 *   3. MHD calls the access handler again (upload_data_size 0); conn_run queues the stash,
 *      or, after a job that answered nothing (the chat parse), runs the endpoint's handler.
 *
 * What the handlers read from the connection while it is suspended is safe there:
 * MHD_lookup_connection_value (headers, GET arguments) walks lists MHD built while parsing
 * the request and changes only when it processes the connection again, which it does not do
 * for a suspended one (and the request is all in); MHD_get_connection_info's client address
 * is fixed for the connection's life; MHD_create_response_* and MHD_add_response_header
 * touch only the response. Nothing else of MHD is called on a pool thread but
 * MHD_resume_connection (thread-safe). While a request is with the pool, MHD can neither
 * complete it nor free c (a suspended connection is not processed, and MHD_stop_daemon is
 * never called with one suspended: below), so c needs no reference of its own here.
 *
 * A client that leaves while its request is with the pool is noticed after the resume: the
 * queued answer meets a closed socket and MHD completes the request (gw_on_completed frees
 * c, and with it a stash not queued yet).
 *
 * Stopping (gateway_stop, before the event streams and MHD_stop_daemon): new posts are
 * refused, the requests still queued are answered 503 shutting_down and resumed, and the
 * threads are joined, which waits for the handlers running: each is bounded by its own
 * timeout (router_command / router_explain GW_ADMIN_TIMEOUT_MS, SQLite's busy timeout of
 * 5 s), and their answers go out before the daemons stop. So no connection stays suspended.
 *
 * The key poll: whichever pool thread is idle when it is due (every GW_KEYS_POLL_MS) reads
 * the ledger's key fingerprint and swaps the key set if it changed (gw_auth_poll); the chat
 * path only looks keys up in memory. A poll waits while both threads run slow handlers.
 *
 * Threads and locks: o->mu guards the queue, the stop flag and the poll's schedule; it is
 * never held while running a handler or calling MHD, and taken after c->lock nowhere (the
 * MHD thread takes c->lock, releases it, then o->mu).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "switchboard/log.h"

#define GW_OFFLOAD_THREADS 2

struct gw_offload {
    struct gateway *gw;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t threads[GW_OFFLOAD_THREADS];
    size_t n_threads;
    bool stop;
    bool joined;
    struct gw_conn *head, *tail; /* posted, not taken yet (linked by off_next) */
    int64_t keys_due_ms;         /* monotonic: the next key poll */
    bool keys_busy;              /* a thread is polling */
};

/* Stashes the handler's result, wakes the connection and lets go of c (it may be freed as
 * soon as it is resumed). */
static void finish(struct gw_conn *c, enum MHD_Result result)
{
    pthread_mutex_lock(&c->lock);
    c->off_result = result;
    c->off_done = true;
    struct MHD_Connection *mc = c->mc;
    bool resume = gw_wake_locked(c);
    pthread_mutex_unlock(&c->lock);
    if (resume)
        MHD_resume_connection(mc);
}

/* Takes the next request (caller holds mu); NULL when none. */
static struct gw_conn *take_locked(struct gw_offload *o)
{
    struct gw_conn *c = o->head;
    if (c) {
        o->head = c->off_next;
        if (!o->head)
            o->tail = NULL;
        c->off_next = NULL;
    }
    return c;
}

/* A key poll when due and no other thread is at it (caller holds mu; released meanwhile).
 * Returns false when none was due: *wait_ms says until when to sleep. */
static bool poll_keys_locked(struct gw_offload *o, int64_t *wait_ms)
{
    int64_t now = clock_mono_ms();
    if (now < o->keys_due_ms) {
        *wait_ms = o->keys_due_ms - now;
        return false;
    }
    o->keys_due_ms = now + GW_KEYS_POLL_MS;
    if (o->keys_busy)
        return true; /* the other thread is still at the previous one */
    o->keys_busy = true;
    pthread_mutex_unlock(&o->mu);
    gw_auth_poll(o->gw);
    pthread_mutex_lock(&o->mu);
    o->keys_busy = false;
    return true;
}

static void *pool_main(void *arg)
{
    struct gw_offload *o = arg;
    pthread_mutex_lock(&o->mu);
    while (!o->stop) {
        struct gw_conn *c = take_locked(o);
        if (c) {
            pthread_mutex_unlock(&o->mu);
            finish(c, gw_offload_handle(c));
            pthread_mutex_lock(&o->mu);
            continue;
        }
        int64_t wait_ms = 0;
        if (poll_keys_locked(o, &wait_ms))
            continue;
        struct timespec until;
        clock_deadline_in(&until, wait_ms);
        pthread_cond_timedwait(&o->cv, &o->mu, &until);
    }
    pthread_mutex_unlock(&o->mu);
    return NULL;
}

void gw_offload_start(struct gateway *gw)
{
    struct gw_offload *o = xcalloc(1, sizeof *o);
    o->gw = gw;
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->cv, NULL);
    o->keys_due_ms = clock_mono_ms() + GW_KEYS_POLL_MS;
    gw->offload = o;
    for (size_t i = 0; i < GW_OFFLOAD_THREADS; i++) {
        int rc = pthread_create(&o->threads[i], NULL, pool_main, o);
        if (rc != 0) {
            log_error("gateway: cannot start an offload thread: %s; %zu running", strerror(rc),
                      o->n_threads);
            break;
        }
        o->n_threads++;
    }
}

bool gw_offload_post(struct gw_conn *c)
{
    struct gw_offload *o = c->gw->offload;
    pthread_mutex_lock(&o->mu);
    bool ok = !o->stop && o->n_threads > 0;
    if (ok) {
        c->off_next = NULL;
        if (o->tail)
            o->tail->off_next = c;
        else
            o->head = c;
        o->tail = c;
        pthread_cond_signal(&o->cv);
    }
    pthread_mutex_unlock(&o->mu);
    return ok;
}

void gw_offload_stop(struct gateway *gw)
{
    struct gw_offload *o = gw->offload;
    if (!o)
        return;
    pthread_mutex_lock(&o->mu);
    o->stop = true;
    struct gw_conn *queued = o->head;
    o->head = o->tail = NULL;
    bool join = !o->joined;
    o->joined = true;
    pthread_cond_broadcast(&o->cv);
    pthread_mutex_unlock(&o->mu);
    size_t n = 0;
    while (queued) {
        struct gw_conn *c = queued;
        queued = c->off_next;
        c->off_next = NULL;
        finish(c, gw_refuse_shutting_down(c)); /* stashed (c is offloaded): queued, not run */
        n++;
    }
    if (n > 0)
        log_info("gateway: %zu offloaded requests not started: answered 503", n);
    for (size_t i = 0; join && i < o->n_threads; i++)
        pthread_join(o->threads[i], NULL);
}

void gw_offload_free(struct gateway *gw)
{
    struct gw_offload *o = gw->offload;
    if (!o)
        return;
    gw_offload_stop(gw);
    pthread_cond_destroy(&o->cv);
    pthread_mutex_destroy(&o->mu);
    free(o);
    gw->offload = NULL;
}
