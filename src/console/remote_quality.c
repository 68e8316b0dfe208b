/*
 * remote_quality.c - the attached console's quality lines: while the detail view watches a
 * target, the worker asks every instance GET /admin/quality/TARGET every
 * REMOTE_QUALITY_INTERVAL_MS (a slow or dead instance never holds the others up: each has at
 * most one request in flight, with its own timeout), and once each has answered (or failed)
 * publishes the merge (console_quality_merge: counts and sums added, rates derived again,
 * negatives newest first) with the instances that did not answer and why.
 *
 * Threads: remote_quality runs on the main thread and copies under r->mu; everything else
 * runs on the worker. r->q_watch and r->q_pub are shared under r->mu; the per-instance
 * fields (rinst.q*) and r->q_target belong to the worker.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "remote.h"

#define REMOTE_QUALITY_INTERVAL_MS 3000 /* quality.c's UI_QUALITY_INTERVAL_MS */
#define REMOTE_QUALITY_TIMEOUT_MS  5000

bool remote_quality(void *self, const char *target, struct console_quality *out)
{
    struct remote *r = self;
    if (!target)
        target = "";
    pthread_mutex_lock(&r->mu);
    bool changed = !str_eq(r->q_watch, target);
    str_copy(r->q_watch, sizeof r->q_watch, target);
    bool ok = target[0] && r->q_pub_ready && str_eq(r->q_pub.target, target);
    if (ok)
        *out = r->q_pub;
    pthread_mutex_unlock(&r->mu);
    if (changed)
        curl_multi_wakeup(r->multi); /* ask about the new target now */
    return ok;
}

/* The merge of every instance's answer, once each has one. */
static void publish(struct remote *r)
{
    const struct console_quality *in[CONSOLE_MAX_INSTANCES];
    struct console_quality m;
    struct buf missing;
    memset(&m, 0, sizeof m);
    buf_init(&missing);
    str_copy(m.target, sizeof m.target, r->q_target);
    m.asked = r->n;
    for (size_t k = 0; k < r->n; k++) {
        const struct rinst *ri = &r->inst[k];
        if (ri->q_state == RQ_PENDING) {
            buf_cleanup(&missing);
            return;
        }
        in[k] = ri->q_state == RQ_OK ? &ri->q : NULL;
        if (ri->q_state == RQ_FAILED)
            buf_printf(&missing, "%s%s: %s", missing.len ? "; " : "", ri->name, ri->q_error);
        else
            m.answered++;
    }
    if (m.answered == r->n)
        buf_reset(&missing);
    str_copy(m.missing, sizeof m.missing, buf_str(&missing));
    buf_cleanup(&missing);
    console_quality_merge(in, r->n, &m);
    if (!m.loaded && !m.missing[0])
        snprintf(m.missing, sizeof m.missing, "no target named %s on %s", m.target,
                 r->n > 1 ? "any instance" : "the gateway");
    pthread_mutex_lock(&r->mu);
    r->q_pub = m;
    r->q_pub_ready = true;
    pthread_mutex_unlock(&r->mu);
}

static void start(struct remote *r, struct rinst *in)
{
    CURL *tmp = curl_easy_init();
    char *t = tmp ? curl_easy_escape(tmp, r->q_target, 0) : NULL;
    char *path = xasprintf("/admin/quality/%s", t ? t : "");
    curl_free(t);
    curl_easy_cleanup(tmp);
    struct rxfer *x = remote_xfer_new(r, in, RX_QUALITY, path);
    free(path);
    str_copy(x->target, sizeof x->target, r->q_target);
    curl_easy_setopt(x->h, CURLOPT_TIMEOUT_MS, (long)REMOTE_QUALITY_TIMEOUT_MS);
    remote_xfer_start(r, x);
    in->q_busy = true;
}

void remote_quality_tick(struct remote *r)
{
    char watch[sizeof r->q_watch];
    pthread_mutex_lock(&r->mu);
    str_copy(watch, sizeof watch, r->q_watch);
    pthread_mutex_unlock(&r->mu);
    if (!str_eq(watch, r->q_target)) { /* a new target (or none): start over */
        str_copy(r->q_target, sizeof r->q_target, watch);
        for (size_t k = 0; k < r->n; k++) {
            r->inst[k].q_state = RQ_PENDING;
            r->inst[k].q_next_ms = 0;
        }
    }
    if (!r->q_target[0])
        return;
    int64_t now = clock_mono_ms();
    for (size_t k = 0; k < r->n; k++) {
        struct rinst *in = &r->inst[k];
        if (!in->q_busy && now >= in->q_next_ms)
            start(r, in);
    }
}

/* Why an instance's answer is not figures (status != 200). */
static void failure(const struct rxfer *x, long status, char *out, size_t outlen)
{
    cJSON *o = cJSON_ParseWithLength(buf_str(&x->resp), x->resp.len);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
    const char *msg = cJSON_IsString(m) ? m->valuestring : "";
    if (status == 401)
        snprintf(out, outlen, "401 wrong admin token");
    else if (status == 404)
        snprintf(out, outlen, "404 no /admin/quality (a gateway older than the console)");
    else
        snprintf(out, outlen, "%ld %.120s", status, *msg ? msg : "failed");
    cJSON_Delete(o);
}

/* 404 for the target itself (not for the path): the instance has no such target. */
static bool absent(const struct rxfer *x)
{
    cJSON *o = cJSON_ParseWithLength(buf_str(&x->resp), x->resp.len);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
    bool yes = cJSON_IsString(m) && str_has_prefix(m->valuestring, "no target named");
    cJSON_Delete(o);
    return yes;
}

void remote_quality_done(struct remote *r, struct rxfer *x, CURLcode cc, long status)
{
    struct rinst *in = x->in;
    in->q_busy = false;
    if (!str_eq(x->target, r->q_target)) {
        in->q_next_ms = 0; /* an answer about the target watched before: ask again now */
        return;
    }
    in->q_next_ms = clock_mono_ms() + REMOTE_QUALITY_INTERVAL_MS;
    char why[160];
    if (cc != CURLE_OK) {
        remote_curl_error(cc, x, in->q_error, sizeof in->q_error);
        in->q_state = RQ_FAILED;
    } else if (status == 404 && absent(x)) {
        in->q_state = RQ_ABSENT;
    } else if (status != 200) {
        failure(x, status, in->q_error, sizeof in->q_error);
        in->q_state = RQ_FAILED;
    } else if (console_quality_parse(buf_str(&x->resp), x->resp.len, &in->q, why, sizeof why) !=
               SB_OK) {
        str_copy(in->q_error, sizeof in->q_error, why);
        in->q_state = RQ_FAILED;
    } else {
        in->q_state = RQ_OK;
    }
    publish(r);
}
