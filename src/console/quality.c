/*
 * quality.c - the detail view's quality lines: the selected target's quality over the last
 * hour (abandonment, completion, satisfaction, cost per satisfied answer) and its most recent
 * negative feedback with request ids, read from the ledger file by a thread of its own every
 * UI_QUALITY_INTERVAL_MS while the detail view watches a target, so the main thread never
 * waits on disk.
 *
 * Threads: the main thread (start, watch, peek, stop) and the reader thread. q->mu guards
 * the watched name, the results and the stop flag; it is held only to copy them.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define UI_QUALITY_INTERVAL_MS 3000
#define HOUR_MS                3600000LL

struct ui_quality {
    pthread_t thread;
    bool started;
    char *path;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    char watch[64];              /* "" none */
    struct ui_quality_view view; /* for view.target */
};

static void read_once(const char *path, const char *target, struct ui_quality_view *v)
{
    struct ledger_quality q;
    char msg[256];
    int64_t now = clock_wall_ms();
    memset(v, 0, sizeof *v);
    str_copy(v->target, sizeof v->target, target);
    ledger_quality_init(&q);
    if (ledger_quality_load(path, LEDGER_QBY_TARGET, now - HOUR_MS, now + 1, 1, &q, msg,
                            sizeof msg) == SB_OK) {
        for (size_t i = 0; i < q.n; i++)
            if (str_eq(q.rows[i].key, target))
                v->row = q.rows[i];
        v->loaded = true;
    }
    ledger_quality_cleanup(&q);
    ledger_recent_negative(path, target, UI_QUALITY_NEGATIVE, v->negative, &v->n_negative, msg,
                           sizeof msg);
}

static void *reader_main(void *arg)
{
    struct ui_quality *q = arg;
    pthread_mutex_lock(&q->mu);
    while (!q->stop) {
        char target[64];
        str_copy(target, sizeof target, q->watch);
        if (target[0]) {
            pthread_mutex_unlock(&q->mu);
            struct ui_quality_view v;
            read_once(q->path, target, &v);
            pthread_mutex_lock(&q->mu);
            q->view = v;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t at = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + UI_QUALITY_INTERVAL_MS;
        ts.tv_sec = (time_t)(at / 1000);
        ts.tv_nsec = (long)(at % 1000) * 1000000L;
        if (!q->stop)
            pthread_cond_timedwait(&q->cv, &q->mu, &ts);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

struct ui_quality *ui_quality_start(struct router *rt)
{
    const char *path = ledger_file(router_ledger_peek(rt));
    if (!path || str_eq(path, ":memory:"))
        return NULL;
    struct ui_quality *q = xcalloc(1, sizeof *q);
    q->path = xstrdup(path);
    pthread_mutex_init(&q->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->cv, &ca);
    pthread_condattr_destroy(&ca);
    q->started = pthread_create(&q->thread, NULL, reader_main, q) == 0;
    return q;
}

void ui_quality_watch(struct ui_quality *q, const char *target)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->mu);
    bool changed = !str_eq(q->watch, target ? target : "");
    str_copy(q->watch, sizeof q->watch, target ? target : "");
    pthread_mutex_unlock(&q->mu);
    if (changed)
        pthread_cond_signal(&q->cv); /* read the new target now */
}

bool ui_quality_peek(struct ui_quality *q, const char *target, struct ui_quality_view *out)
{
    if (!q)
        return false;
    pthread_mutex_lock(&q->mu);
    bool ok = q->view.loaded && str_eq(q->view.target, target);
    if (ok)
        *out = q->view;
    pthread_mutex_unlock(&q->mu);
    return ok;
}

void ui_quality_stop(struct ui_quality *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->mu);
    q->stop = true;
    pthread_mutex_unlock(&q->mu);
    pthread_cond_signal(&q->cv);
    if (q->started)
        pthread_join(q->thread, NULL);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    free(q->path);
    free(q);
}
