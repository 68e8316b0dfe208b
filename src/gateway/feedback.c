/*
 * feedback.c - POST /v1/feedback: an application rates one answer it got, naming it by the
 * x-request-id it got back.
 *
 *   {"request_id": "...", "score": -1..1 | 0..5, "scale"?: 1 | 5, "label"?: "thumbs_down",
 *    "comment"?: "..."}
 *   -> 201 {"ok":true,"request_id","target","route","model","score"} (score normalised)
 *
 * score is -1..1 (scale 1, the default) or 0..5 stars (scale 5, assumed for a score above 1);
 * stars are stored as (stars - 2.5) / 2.5, so 0-2 stars are negative. Without a score, the
 * label "thumbs_up" is +1 and "thumbs_down" -1. The rating is stored in the ledger against
 * the call (ledger_feedback_submit): 404 for an unknown id, 409 when the call was rated
 * already, 410 after ledger.feedback_window_ms, 403 when client keys are on and the call was
 * made with another key (a key rates only its own calls).
 *
 * Threads: the offload pool (offload.c). The ledger lookup opens its own read-only connection.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "internal.h"
#include "switchboard/ledger.h"

static bool get_text(const cJSON *o, const char *key, size_t max, const char **out, char *msg,
                     size_t msglen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = NULL;
    if (!v || cJSON_IsNull(v))
        return true;
    if (!cJSON_IsString(v) || strlen(v->valuestring) > max) {
        snprintf(msg, msglen, "%s: expected a string of at most %zu bytes", key, max);
        return false;
    }
    *out = v->valuestring;
    return true;
}

static bool parse_score(const cJSON *o, const char *label, struct gw_feedback_body *b, char *msg,
                        size_t msglen)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "score");
    const cJSON *scale = cJSON_GetObjectItemCaseSensitive(o, "scale");
    if (!s || cJSON_IsNull(s)) {
        bool up = str_eq(label, "thumbs_up"), down = str_eq(label, "thumbs_down");
        if (!up && !down) {
            snprintf(msg, msglen,
                     "score: required (-1..1, or 0..5 with \"scale\": 5) unless "
                     "label is thumbs_up or thumbs_down");
            return false;
        }
        b->score = b->raw = up ? 1 : -1;
        b->scale = 1;
        return true;
    }
    if (!cJSON_IsNumber(s) || !isfinite(s->valuedouble)) {
        snprintf(msg, msglen, "score: expected a number");
        return false;
    }
    b->raw = s->valuedouble;
    b->scale = b->raw > 1 ? 5 : 1;
    if (scale && !cJSON_IsNull(scale)) {
        if (!cJSON_IsNumber(scale) || (scale->valuedouble != 1 && scale->valuedouble != 5)) {
            snprintf(msg, msglen, "scale: expected 1 (score -1..1) or 5 (score 0..5)");
            return false;
        }
        b->scale = (int)scale->valuedouble;
    }
    double lo = b->scale == 5 ? 0 : -1, hi = b->scale == 5 ? 5 : 1;
    if (b->raw < lo || b->raw > hi) {
        snprintf(msg, msglen, "score: expected %g..%g, got %g", lo, hi, b->raw);
        return false;
    }
    b->score = b->scale == 5 ? (b->raw - 2.5) / 2.5 : b->raw;
    return true;
}

bool gw_feedback_parse(const char *body, size_t len, struct gw_feedback_body *b, char *msg,
                       size_t msglen)
{
    bool ok = false;
    const char *id = NULL, *label = NULL, *comment = NULL;
    memset(b, 0, sizeof *b);
    cJSON *o = gw_json_parse_object(body, len);
    if (!o) {
        snprintf(msg, msglen, "request body: expected one JSON object");
        goto out;
    }
    if (!get_text(o, "request_id", 64, &id, msg, msglen) ||
        !get_text(o, "label", GW_FEEDBACK_LABEL_MAX, &label, msg, msglen) ||
        !get_text(o, "comment", GW_FEEDBACK_COMMENT_MAX, &comment, msg, msglen))
        goto out;
    if (id)
        gw_request_id_clean(id, b->request_id);
    if (!id || !b->request_id[0] || !str_eq(id, b->request_id)) {
        snprintf(msg, msglen, "request_id: expected the x-request-id of the call rated");
        goto out;
    }
    str_copy(b->label, sizeof b->label, label ? label : "");
    if (!parse_score(o, label, b, msg, msglen))
        goto out;
    b->comment = comment && *comment ? xstrdup(comment) : NULL;
    ok = true;
out:
    cJSON_Delete(o);
    return ok;
}

static enum MHD_Result answer(struct gw_conn *c, const struct gw_feedback_body *b,
                              const struct ledger_call_ref *call)
{
    struct buf body;
    struct gw_json j;
    buf_init(&body);
    gw_json_init(&j, &body);
    gw_json_open(&j, NULL, '{');
    gw_json_bool(&j, "ok", true);
    gw_json_str(&j, "request_id", b->request_id);
    gw_json_str(&j, "target", call->target);
    gw_json_str(&j, "route", call->route[0] ? call->route : NULL);
    gw_json_str(&j, "model", call->model[0] ? call->model : NULL);
    gw_json_num(&j, "score", b->score);
    gw_json_close(&j, '}');
    return gw_respond(c, 201, "application/json", &body, NULL);
}

enum MHD_Result gw_feedback_run(struct gw_conn *c)
{
    struct gw_feedback_body b;
    struct gw_error e;
    char msg[512] = "";
    enum MHD_Result r;
    if (!gw_feedback_parse(c->body.data, c->body.len, &b, msg, sizeof msg)) {
        gw_error_set(&e, 400, "invalid_request_error", "invalid_feedback", "%s", msg);
        r = gw_respond_error(c, &e, NULL);
        goto out;
    }
    struct ledger_feedback fb = {.wall_ms = clock_wall_ms(),
                                 .source = "api",
                                 .request_id = b.request_id,
                                 .score = b.score,
                                 .raw_score = b.raw,
                                 .scale = b.scale,
                                 .label = b.label[0] ? b.label : NULL,
                                 .comment = b.comment,
                                 .rater = c->client[0] ? c->client : NULL};
    struct ledger_call_ref call;
    enum ledger_fb_verdict v = ledger_feedback_submit(
        router_ledger_peek(c->gw->rt), &fb, gw_quality_window_ms(c->gw), &call, msg, sizeof msg);
    if (v == LEDGER_FB_OK) {
        r = answer(c, &b, &call);
        goto out;
    }
    int status = ledger_fb_verdict_status(v);
    gw_error_set(&e, status, status >= 500 ? "server_error" : "invalid_request_error",
                 ledger_fb_verdict_code(v), "%s", msg);
    r = gw_respond_error(c, &e, NULL);
out:
    free(b.comment);
    return r;
}
