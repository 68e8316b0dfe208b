/*
 * remote_chat.c - the prompt pane's calls through an attached gateway: POST
 * /v1/chat/completions with "stream": true to one target directly (X-Switchboard-Target,
 * allowed by the admin token in X-Switchboard-Admin-Token; X-Request-Id
 * console-compare-<ms>-<send>-<column> marks it as a compare call in that gateway's ledger). The
 * OpenAI chunks are turned back into the router_sink calls the pane's columns expect: on_commit at
 * the first chunk, TEXT events for content deltas, on_done with usage, finish reason, latency and
 * TTFT (cost is not on the wire: 0).
 *
 * Threads: worker thread only. The sink's callbacks run here, as they would on the router
 * thread for an embedded call.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "remote.h"

#define CHAT_TIMEOUT_MS 180000L

static char *request_json(const struct llm_request *req, const char *target)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", target);
    cJSON *msgs = cJSON_AddArrayToObject(o, "messages");
    for (size_t i = 0; i < req->n_messages; i++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", llm_role_name(req->messages[i].role));
        cJSON_AddStringToObject(m, "content",
                                req->messages[i].content ? req->messages[i].content : "");
        cJSON_AddItemToArray(msgs, m);
    }
    if (req->max_tokens > 0)
        cJSON_AddNumberToObject(o, "max_tokens", (double)req->max_tokens);
    cJSON_AddBoolToObject(o, "stream", true);
    cJSON *so = cJSON_AddObjectToObject(o, "stream_options");
    cJSON_AddBoolToObject(so, "include_usage", true);
    char *s = cJSON_PrintUnformatted(o);
    char *out = xstrdup(s);
    cJSON_free(s);
    cJSON_Delete(o);
    return out;
}

/* The provider model of target on instance in, from its last state ("" unknown). */
static void target_model(const struct rinst *in, const char *target, char *out, size_t outlen)
{
    out[0] = '\0';
    for (size_t i = 0; in->snap && i < in->snap->n_targets; i++) {
        if (str_eq(in->snap->targets[i].name, target))
            str_copy(out, outlen, in->snap->targets[i].model);
    }
}

void remote_chat_start(struct remote *r, struct rjob *j)
{
    struct rchat *c = xcalloc(1, sizeof *c);
    c->id = j->id;
    c->job = j;
    buf_init(&c->line);
    buf_init(&c->errbody);
    c->start_us = clock_mono_us();
    str_copy(c->target, sizeof c->target, j->target);
    struct rinst *in = remote_pick(r);
    target_model(in, j->target, c->model, sizeof c->model);
    struct rxfer *x = remote_xfer_new(r, in, RX_CHAT, "/v1/chat/completions");
    char h1[160], h2[96];
    snprintf(h1, sizeof h1, "X-Switchboard-Target: %.100s", j->target);
    snprintf(h2, sizeof h2, "X-Request-Id: %.70s", j->request_id);
    x->hdrs = curl_slist_append(x->hdrs, h1);
    x->hdrs = curl_slist_append(x->hdrs, h2);
    x->hdrs = curl_slist_append(x->hdrs, r->token_header);
    x->hdrs = curl_slist_append(x->hdrs, "Accept: text/event-stream");
    remote_xfer_post(x, request_json(j->req, j->target));
    llm_request_cleanup(j->req);
    free(j->req);
    j->req = NULL;
    curl_easy_setopt(x->h, CURLOPT_TIMEOUT_MS, CHAT_TIMEOUT_MS);
    x->chat = c;
    c->x = x;
    c->next = r->chats;
    r->chats = c;
    remote_xfer_start(r, x);
}

static void commit(struct rchat *c)
{
    if (c->committed)
        return;
    c->committed = true;
    if (c->job->sink.on_commit) {
        struct router_commit cm = {.call_id = c->id,
                                   .target = c->target,
                                   .model = c->model,
                                   .route = "",
                                   .attempt = 1,
                                   .upstream_headers = ""};
        c->job->sink.on_commit(c->job->sink.ctx, &cm);
    }
}

static void emit_text(struct rchat *c, const char *text, size_t len)
{
    if (c->first_us == 0)
        c->first_us = clock_mono_us();
    struct llm_event ev = {.type = LLM_EV_TEXT, .text = text, .len = len};
    if (c->job->sink.on_event && c->job->sink.on_event(c->job->sink.ctx, &ev) != 0)
        c->sink_stop = true;
}

static enum llm_finish finish_from(const char *s)
{
    const enum llm_finish all[] = {LLM_FINISH_STOP, LLM_FINISH_LENGTH, LLM_FINISH_TOOL_CALLS,
                                   LLM_FINISH_CONTENT_FILTER, LLM_FINISH_ERROR};
    for (size_t i = 0; i < SB_ARRAY_LEN(all); i++) {
        if (str_eq(s, llm_finish_name(all[i])))
            return all[i];
    }
    return LLM_FINISH_NONE;
}

static void chunk(struct rchat *c, const cJSON *o)
{
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(o, "error");
    if (cJSON_IsObject(err)) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(err, "message");
        c->err = LLM_ERR_TRUNCATED;
        str_copy(c->error, sizeof c->error, cJSON_IsString(m) ? m->valuestring : "stream error");
        c->over = true;
        return;
    }
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(o, "usage");
    if (cJSON_IsObject(u)) {
        const cJSON *pt = cJSON_GetObjectItemCaseSensitive(u, "prompt_tokens");
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(u, "completion_tokens");
        c->usage.present = true;
        c->usage.input_tokens = cJSON_IsNumber(pt) ? (long)pt->valuedouble : 0;
        c->usage.output_tokens = cJSON_IsNumber(ct) ? (long)ct->valuedouble : 0;
    }
    const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "choices"), 0);
    const cJSON *delta = cJSON_GetObjectItemCaseSensitive(ch, "delta");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(delta, "content");
    const cJSON *fr = cJSON_GetObjectItemCaseSensitive(ch, "finish_reason");
    if (cJSON_IsString(content) && *content->valuestring)
        emit_text(c, content->valuestring, strlen(content->valuestring));
    if (cJSON_IsString(fr))
        c->finish = finish_from(fr->valuestring);
}

static void data_line(struct rchat *c, const char *s, size_t len)
{
    if (len == 6 && !memcmp(s, "[DONE]", 6)) {
        c->over = true;
        return;
    }
    cJSON *o = cJSON_ParseWithLength(s, len);
    if (cJSON_IsObject(o))
        chunk(c, o);
    cJSON_Delete(o);
}

bool remote_chat_bytes(struct remote *r, struct rchat *c, const char *data, size_t len)
{
    (void)r;
    long status = 0;
    curl_easy_getinfo(c->x->h, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) { /* an error body: kept for on_done */
        if (c->errbody.len < (size_t)64 * 1024)
            buf_append(&c->errbody, data, len);
        return true;
    }
    commit(c);
    buf_append(&c->line, data, len);
    size_t start = 0;
    for (size_t i = 0; i < c->line.len && !c->sink_stop; i++) {
        if (c->line.data[i] != '\n')
            continue;
        size_t l = i - start;
        const char *p = c->line.data + start;
        if (l && p[l - 1] == '\r')
            l--;
        if (l > 6 && !memcmp(p, "data: ", 6))
            data_line(c, p + 6, l - 6);
        start = i + 1;
    }
    buf_consume(&c->line, start);
    return !c->sink_stop;
}

static void unlink_chat(struct remote *r, struct rchat *c)
{
    for (struct rchat **p = &r->chats; *p; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            break;
        }
    }
}

/* Calls on_done and frees c (its transfer is gone or about to be freed by the caller). */
static void finish(struct remote *r, struct rchat *c)
{
    int64_t now = clock_mono_us();
    struct router_result res = {.call_id = c->id, .err = c->err};
    str_copy(res.message, sizeof res.message, c->error);
    res.target = c->target;
    res.model = c->model;
    res.route = "";
    res.attempts = 1;
    res.committed = c->committed;
    res.usage = c->usage;
    res.usage_missing = !c->usage.present;
    res.finish = c->finish;
    res.latency_us = now - c->start_us;
    res.ttft_us = c->first_us ? c->first_us - c->start_us : -1;
    res.retry_after_ms = -1;
    res.cost_usd = -1; /* a stream carries no cost: unknown here, never a silent $0 */
    res.baseline_cost_usd = -1;
    if (c->job->sink.on_done)
        c->job->sink.on_done(c->job->sink.ctx, &res);
    unlink_chat(r, c);
    buf_cleanup(&c->line);
    buf_cleanup(&c->errbody);
    remote_job_free(c->job);
    free(c);
}

void remote_chat_done(struct remote *r, struct rxfer *x, CURLcode cc, long status)
{
    struct rchat *c = x->chat;
    c->x = NULL;
    if (c->cancelled || c->sink_stop) {
        c->err = c->sink_stop ? c->err : LLM_ERR_CANCELLED;
    } else if (cc != CURLE_OK) {
        c->err = c->committed ? LLM_ERR_TRUNCATED : LLM_ERR_CONNECT;
        remote_curl_error(cc, x, c->error, sizeof c->error);
    } else if (status != 200) {
        c->err = llm_errclass_from_status(status);
        cJSON *o = cJSON_ParseWithLength(buf_str(&c->errbody), c->errbody.len);
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(o, "error"), "message");
        snprintf(c->error, sizeof c->error, "%ld: %s", status,
                 cJSON_IsString(m) ? m->valuestring : "the gateway refused the call");
        cJSON_Delete(o);
    } else if (!c->over && c->err == LLM_ERR_NONE) {
        c->err = LLM_ERR_TRUNCATED;
        str_copy(c->error, sizeof c->error, "the stream ended without [DONE]");
    }
    finish(r, c);
}

void remote_chat_cancel(struct remote *r, uint64_t id)
{
    for (struct rchat *c = r->chats; c; c = c->next) {
        if (c->id != id || !c->x)
            continue;
        c->cancelled = true;
        c->err = LLM_ERR_CANCELLED;
        str_copy(c->error, sizeof c->error, "cancelled");
        struct rxfer *x = c->x;
        c->x = NULL;
        remote_xfer_free(r, x);
        finish(r, c);
        return;
    }
}

void remote_chat_abort_all(struct remote *r)
{
    while (r->chats)
        remote_chat_cancel(r, r->chats->id);
}
