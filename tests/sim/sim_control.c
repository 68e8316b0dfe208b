/*
 * sim_control.c - the control endpoint (/_sim/behavior, /_sim/stats, /_sim/reset-stats,
 * /_sim/health) and the request statistics behind it.
 *
 * Threads: MHD connection threads. Stats and behaviour live in struct sim_server under
 * s->lock; JSON is built outside the lock from copies. A behaviour change wakes the
 * supervisor (main thread) and waits, bounded, until the listening state matches it, so a
 * test can rely on "outage refuse" being in force once the POST returns.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim.h"

#define APPLY_WAIT_MS 3000

static const char *const redacted_headers[] = {"authorization", "x-api-key", "x-goog-api-key",
                                               "proxy-authorization", "cookie"};

/* ---- stats ------------------------------------------------------------------------------ */

static void count_key(struct sim_count **v, size_t *n, size_t *cap, const char *key)
{
    for (size_t i = 0; i < *n; i++) {
        if (str_eq((*v)[i].key, key)) {
            (*v)[i].count++;
            return;
        }
    }
    if (*n >= SIM_MAX_STAT_KEYS) {
        key = "(other)";
        for (size_t i = 0; i < *n; i++) {
            if (str_eq((*v)[i].key, key)) {
                (*v)[i].count++;
                return;
            }
        }
    }
    *v = xgrow(*v, cap, *n + 1, sizeof **v);
    (*v)[*n].key = xstrdup(key);
    (*v)[*n].count = 1;
    (*n)++;
}

static enum MHD_Result add_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    cJSON *obj = cls;
    bool secret = false;
    (void)kind;
    for (size_t i = 0; i < SB_ARRAY_LEN(redacted_headers); i++)
        secret = secret || str_ieq(key, redacted_headers[i]);
    cJSON_AddStringToObject(obj, key, secret ? "<redacted>" : (value ? value : ""));
    return MHD_YES;
}

static enum MHD_Result add_query(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    cJSON *obj = cls;
    (void)kind;
    cJSON_AddStringToObject(obj, key, str_eq(key, "key") ? "<redacted>" : (value ? value : ""));
    return MHD_YES;
}

static char *describe_request(const struct sim_request *rq, int auth_ok)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "method", rq->method);
    cJSON_AddStringToObject(o, "path", rq->path);
    cJSON *q = cJSON_AddObjectToObject(o, "query");
    MHD_get_connection_values(rq->conn, MHD_GET_ARGUMENT_KIND, add_query, q);
    cJSON *h = cJSON_AddObjectToObject(o, "headers");
    MHD_get_connection_values(rq->conn, MHD_HEADER_KIND, add_header, h);
    if (auth_ok >= 0)
        cJSON_AddBoolToObject(o, "auth_ok", auth_ok > 0);
    else
        cJSON_AddNullToObject(o, "auth_ok");
    cJSON *body = rq->body_len ? cJSON_ParseWithLength(rq->body, rq->body_len) : NULL;
    if (body)
        cJSON_AddItemToObject(o, "body", body);
    else if (rq->body_len)
        cJSON_AddStringToObject(o, "body", rq->body);
    else
        cJSON_AddNullToObject(o, "body");
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

void sim_stats_note_request(struct sim_server *s, const struct sim_request *rq, int auth_ok)
{
    char *desc = describe_request(rq, auth_ok);
    char *old;
    pthread_mutex_lock(&s->lock);
    s->stats.requests++;
    count_key(&s->stats.paths, &s->stats.n_paths, &s->stats.cap_paths, rq->path);
    old = s->stats.last_request;
    s->stats.last_request = desc;
    pthread_mutex_unlock(&s->lock);
    cJSON_free(old);
}

void sim_stats_note_status(struct sim_server *s, int status)
{
    char key[16];
    snprintf(key, sizeof key, "%d", status);
    pthread_mutex_lock(&s->lock);
    count_key(&s->stats.statuses, &s->stats.n_statuses, &s->stats.cap_statuses, key);
    pthread_mutex_unlock(&s->lock);
}

static void free_counts(struct sim_count *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].key);
    free(v);
}

void sim_stats_cleanup(struct sim_stats *st)
{
    free_counts(st->paths, st->n_paths);
    free_counts(st->statuses, st->n_statuses);
    cJSON_free(st->last_request);
    memset(st, 0, sizeof *st);
}

static void counts_json(struct buf *b, const struct sim_count *v, size_t n)
{
    buf_putc(b, '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_putc(b, ',');
        buf_put_json_string(b, v[i].key, strlen(v[i].key));
        buf_printf(b, ":%ld", v[i].count);
    }
    buf_putc(b, '}');
}

static void stats_reply(struct sim_server *s, struct sim_reply *r)
{
    struct buf *b = &r->body;
    buf_reset(b);
    pthread_mutex_lock(&s->lock);
    buf_printf(b, "{\"requests\":%ld,\"by_path\":", s->stats.requests);
    counts_json(b, s->stats.paths, s->stats.n_paths);
    buf_puts(b, ",\"by_status\":");
    counts_json(b, s->stats.statuses, s->stats.n_statuses);
    buf_printf(b, ",\"in_flight\":%ld,\"last_request\":", s->main_in_flight);
    buf_puts(b, s->stats.last_request ? s->stats.last_request : "null");
    pthread_mutex_unlock(&s->lock);
    buf_putc(b, '}');
    r->status = 200;
    r->content_type = "application/json";
}

/* ---- behaviour -------------------------------------------------------------------------- */

static void control_error(struct sim_reply *r, int status, const char *msg)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON *err = cJSON_AddObjectToObject(doc, "error");
    cJSON_AddStringToObject(err, "message", msg);
    sim_reply_json(r, status, doc);
}

static void behavior_reply(struct sim_server *s, struct sim_reply *r)
{
    struct sim_behavior b;
    pthread_mutex_lock(&s->lock);
    b = s->behavior;
    pthread_mutex_unlock(&s->lock);
    char *text = sim_behavior_json(&b);
    buf_reset(&r->body);
    buf_puts(&r->body, text);
    cJSON_free(text);
    r->status = 200;
    r->content_type = "application/json";
}

/* Waits until the supervisor applied generation gen (bounded). */
static void wait_applied(struct sim_server *s, uint64_t gen)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += APPLY_WAIT_MS / 1000;
    pthread_mutex_lock(&s->lock);
    while (s->applied_gen < gen && !atomic_load(&s->stopping)) {
        if (pthread_cond_timedwait(&s->cond, &s->lock, &deadline) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&s->lock);
}

static void behavior_post(const struct sim_request *rq, struct sim_reply *r)
{
    struct sim_server *s = rq->srv;
    char err[256];
    bool seed_changed = false, ok;
    uint64_t gen = 0;
    cJSON *patch = cJSON_ParseWithLength(rq->body, rq->body_len);
    if (!patch) {
        control_error(r, 400, "behavior: body is not valid JSON");
        return;
    }
    pthread_mutex_lock(&s->lock);
    ok = sim_behavior_patch(&s->behavior, &s->initial, patch, &seed_changed, err, sizeof err);
    if (ok) {
        if (seed_changed)
            sim_server_reseed_locked(s);
        gen = ++s->behavior_gen;
    }
    pthread_mutex_unlock(&s->lock);
    cJSON_Delete(patch);
    if (!ok) {
        control_error(r, 400, err);
        return;
    }
    sim_server_wake(s);
    wait_applied(s, gen);
    behavior_reply(s, r);
}

static void health_reply(struct sim_server *s, struct sim_reply *r)
{
    cJSON *doc = cJSON_CreateObject();
    pthread_mutex_lock(&s->lock);
    bool listening = s->main_listening;
    unsigned port = s->cfg.port, cport = s->cfg.control_port;
    pthread_mutex_unlock(&s->lock);
    cJSON_AddBoolToObject(doc, "ok", true);
    cJSON_AddStringToObject(doc, "name", s->cfg.name);
    cJSON_AddNumberToObject(doc, "port", port);
    cJSON_AddNumberToObject(doc, "control_port", cport);
    cJSON_AddBoolToObject(doc, "listening", listening);
    sim_reply_json(r, 200, doc);
}

void sim_control_serve(const struct sim_request *rq, struct sim_reply *r)
{
    struct sim_server *s = rq->srv;
    bool get = str_eq(rq->method, "GET"), post = str_eq(rq->method, "POST");
    if (str_eq(rq->path, "/_sim/behavior") && get) {
        behavior_reply(s, r);
    } else if (str_eq(rq->path, "/_sim/behavior") && post) {
        behavior_post(rq, r);
    } else if (str_eq(rq->path, "/_sim/stats") && get) {
        stats_reply(s, r);
    } else if (str_eq(rq->path, "/_sim/reset-stats") && post) {
        pthread_mutex_lock(&s->lock);
        struct sim_stats old = s->stats;
        memset(&s->stats, 0, sizeof s->stats);
        pthread_mutex_unlock(&s->lock);
        sim_stats_cleanup(&old);
        sim_reply_json(r, 200, cJSON_Parse("{\"ok\":true}"));
    } else if (str_eq(rq->path, "/_sim/health") && get) {
        health_reply(s, r);
    } else {
        control_error(r, 404,
                      "unknown control request (GET/POST /_sim/behavior, GET /_sim/stats, "
                      "POST /_sim/reset-stats, GET /_sim/health)");
    }
}
