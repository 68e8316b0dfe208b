/*
 * quality.c - the detail view's quality lines: the selected target's quality over the last
 * hour in whole minutes (abandonment, completion, satisfaction, cost per satisfied answer) and
 * its most recent negative feedback with request ids.
 *
 *   - the local backend's reader: on a thread of its own every UI_QUALITY_INTERVAL_MS while
 *     the detail view watches a target, sums that target's minute buckets of this process's
 *     ledger (ledger_quality_window: SQL over the file only when the buckets cannot answer)
 *     and reads its newest negative ratings from the file (along the target's index), so the
 *     main thread never waits on disk (console_qreader_*, quality.h);
 *   - pure pieces for the remote backend: GET /admin/quality/TARGET parsed
 *     (console_quality_parse) and several instances merged exactly (console_quality_merge).
 *
 * Threads: the main thread (start, get, stop) and the reader thread. q->mu guards the watched
 * name, the results and the stop flag; it is held only to copy them. Parse and merge are pure.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "quality.h"

#define UI_QUALITY_INTERVAL_MS 3000
#define HOUR_MS                3600000LL

/* ---- the local reader ------------------------------------------------------------------------ */

struct console_qreader {
    pthread_t thread;
    bool started;
    struct ledger *ledger; /* the router's: its minute buckets; borrowed */
    char *path;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    char watch[64];              /* "" none */
    struct console_quality view; /* for view.target */
};

static void read_once(struct ledger *l, const char *path, const char *target,
                      struct console_quality *v)
{
    struct ledger_quality q;
    char msg[256];
    memset(v, 0, sizeof *v);
    str_copy(v->target, sizeof v->target, target);
    v->asked = 1;
    ledger_quality_init(&q);
    if (ledger_quality_window(l, path, LEDGER_QBY_TARGET, target, clock_wall_ms(), HOUR_MS, 1, &q,
                              msg, sizeof msg) == SB_OK) {
        v->row = q.total; /* the target's row alone */
        str_copy(v->row.key, sizeof v->row.key, target);
        v->loaded = true;
        v->answered = 1;
    } else {
        str_copy(v->missing, sizeof v->missing, msg);
    }
    ledger_quality_cleanup(&q);
    ledger_recent_negative(path, target, CONSOLE_QUALITY_NEGATIVE, v->negative, &v->n_negative, msg,
                           sizeof msg);
}

static void *reader_main(void *arg)
{
    struct console_qreader *q = arg;
    pthread_mutex_lock(&q->mu);
    while (!q->stop) {
        char target[64];
        str_copy(target, sizeof target, q->watch);
        if (target[0]) {
            pthread_mutex_unlock(&q->mu);
            struct console_quality v;
            read_once(q->ledger, q->path, target, &v);
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

struct console_qreader *console_qreader_start(struct router *rt)
{
    struct ledger *l = router_ledger_peek(rt);
    const char *path = ledger_file(l);
    if (!path || str_eq(path, ":memory:"))
        return NULL;
    struct console_qreader *q = xcalloc(1, sizeof *q);
    q->ledger = l;
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

bool console_qreader_get(struct console_qreader *q, const char *target, struct console_quality *out)
{
    if (!target)
        target = "";
    if (!q) {
        memset(out, 0, sizeof *out);
        str_copy(out->target, sizeof out->target, target);
        str_copy(out->missing, sizeof out->missing, "no ledger (ledger.path is \":memory:\")");
        return true;
    }
    pthread_mutex_lock(&q->mu);
    bool changed = !str_eq(q->watch, target);
    str_copy(q->watch, sizeof q->watch, target);
    bool ok = target[0] && str_eq(q->view.target, target) && (q->view.loaded || q->view.missing[0]);
    if (ok)
        *out = q->view;
    pthread_mutex_unlock(&q->mu);
    if (changed)
        pthread_cond_signal(&q->cv); /* read the new target now */
    return ok;
}

void console_qreader_stop(struct console_qreader *q)
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

/* ---- GET /admin/quality/TARGET (pure) -------------------------------------------------------- */

static uint64_t count_of(const cJSON *o, const char *key, bool *ok)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || v->valuedouble > 9007199254740992.0) {
        *ok = false;
        return 0;
    }
    return (uint64_t)v->valuedouble;
}

static double sum_of(const cJSON *o, const char *key, bool *ok)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
        *ok = false;
        return 0;
    }
    return v->valuedouble;
}

static bool row_parse(const cJSON *q, struct ledger_quality_row *r)
{
    bool ok = cJSON_IsObject(q);
    r->calls = count_of(q, "calls", &ok);
    r->answered = count_of(q, "answered", &ok);
    r->abandoned = count_of(q, "abandoned", &ok);
    r->throttled = count_of(q, "throttled", &ok);
    r->complete = count_of(q, "complete", &ok);
    r->length = count_of(q, "length", &ok);
    r->content_filter = count_of(q, "content_filter", &ok);
    r->truncated = count_of(q, "truncated", &ok);
    r->errors = count_of(q, "errors", &ok);
    r->feedback = count_of(q, "feedback", &ok);
    r->negative = count_of(q, "negative", &ok);
    r->console = count_of(q, "console", &ok);
    r->answered_negative = count_of(q, "answered_negative", &ok);
    r->score_sum = sum_of(q, "score_sum", &ok);
    r->spend_usd = sum_of(q, "spend_usd", &ok);
    r->savings_usd = sum_of(q, "savings_usd", &ok);
    return ok;
}

static void str_field(const cJSON *o, const char *key, char *out, size_t outlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    str_copy(out, outlen, cJSON_IsString(v) ? v->valuestring : "");
}

static bool negative_parse(const cJSON *a, struct console_quality *out)
{
    if (!cJSON_IsArray(a))
        return false;
    const cJSON *e;
    cJSON_ArrayForEach(e, a)
    {
        if (out->n_negative >= CONSOLE_QUALITY_NEGATIVE)
            break;
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(e, "wall_ms");
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(e, "score");
        if (!cJSON_IsNumber(w) || !cJSON_IsNumber(s))
            return false;
        struct ledger_feedback_item *f = &out->negative[out->n_negative++];
        f->wall_ms = (int64_t)w->valuedouble;
        f->score = s->valuedouble;
        str_field(e, "source", f->source, sizeof f->source);
        str_field(e, "request_id", f->request_id, sizeof f->request_id);
        str_copy(f->target, sizeof f->target, out->target);
        str_field(e, "label", f->label, sizeof f->label);
        str_field(e, "comment", f->comment, sizeof f->comment);
    }
    return true;
}

enum sb_status console_quality_parse(const char *json, size_t len, struct console_quality *out,
                                     char *msg, size_t msglen)
{
    memset(out, 0, sizeof *out);
    cJSON *o = cJSON_ParseWithLength(json, len);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "target");
    bool ok = cJSON_IsObject(o) && cJSON_IsString(t);
    if (ok) {
        str_copy(out->target, sizeof out->target, t->valuestring);
        str_copy(out->row.key, sizeof out->row.key, t->valuestring);
        out->min_volume = count_of(o, "min_volume", &ok);
        ok = row_parse(cJSON_GetObjectItemCaseSensitive(o, "quality"), &out->row) && ok;
        ok = negative_parse(cJSON_GetObjectItemCaseSensitive(o, "negative"), out) && ok;
    }
    cJSON_Delete(o);
    if (!ok) {
        snprintf(msg, msglen, "/admin/quality: not the quality of a target");
        memset(out, 0, sizeof *out);
        return SB_ERR_PARSE;
    }
    ledger_quality_derive(&out->row, out->min_volume);
    out->loaded = true;
    out->asked = out->answered = 1;
    return SB_OK;
}

static void row_add(struct ledger_quality_row *to, const struct ledger_quality_row *r)
{
    to->calls += r->calls;
    to->answered += r->answered;
    to->abandoned += r->abandoned;
    to->throttled += r->throttled;
    to->complete += r->complete;
    to->length += r->length;
    to->content_filter += r->content_filter;
    to->truncated += r->truncated;
    to->errors += r->errors;
    to->feedback += r->feedback;
    to->negative += r->negative;
    to->console += r->console;
    to->answered_negative += r->answered_negative;
    to->score_sum += r->score_sum;
    to->spend_usd += r->spend_usd;
    to->savings_usd += r->savings_usd;
}

/* Inserts f into out's negatives, newest first, keeping the newest CONSOLE_QUALITY_NEGATIVE. */
static void negative_add(struct console_quality *out, const struct ledger_feedback_item *f)
{
    size_t at = out->n_negative;
    while (at > 0 && out->negative[at - 1].wall_ms < f->wall_ms)
        at--;
    if (at >= CONSOLE_QUALITY_NEGATIVE)
        return;
    size_t keep =
        out->n_negative < CONSOLE_QUALITY_NEGATIVE ? out->n_negative : CONSOLE_QUALITY_NEGATIVE - 1;
    memmove(&out->negative[at + 1], &out->negative[at], (keep - at) * sizeof *f);
    out->negative[at] = *f;
    out->n_negative = keep + 1;
}

void console_quality_merge(const struct console_quality *const *in, size_t n,
                           struct console_quality *out)
{
    char target[sizeof out->target];
    str_copy(target, sizeof target, out->target);
    size_t asked = out->asked, answered = out->answered;
    char missing[sizeof out->missing];
    str_copy(missing, sizeof missing, out->missing);
    memset(out, 0, sizeof *out);
    str_copy(out->target, sizeof out->target, target);
    str_copy(out->row.key, sizeof out->row.key, target);
    for (size_t k = 0; k < n; k++) {
        if (!in[k] || !in[k]->loaded)
            continue;
        out->loaded = true;
        row_add(&out->row, &in[k]->row);
        if (in[k]->min_volume > out->min_volume)
            out->min_volume = in[k]->min_volume;
        for (size_t i = 0; i < in[k]->n_negative && i < CONSOLE_QUALITY_NEGATIVE; i++)
            negative_add(out, &in[k]->negative[i]);
    }
    ledger_quality_derive(&out->row, out->min_volume);
    out->asked = asked;
    out->answered = answered;
    str_copy(out->missing, sizeof out->missing, missing);
}
