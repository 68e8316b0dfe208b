/*
 * sim_reply.c - building replies and handing them to libmicrohttpd, with the faults that act
 * on a successful answer: wrong content type, malformed JSON, a cut stream or body, and
 * pacing at token_rate.
 *
 * Threads: runs in the connection thread of the request. A stream's state belongs to its
 * MHD response (freed by MHD's free callback); it only reads atomics of the server.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define PACE_SLICE_US 20000 /* longest sleep before re-checking for shutdown */

void sim_reply_init(struct sim_reply *r)
{
    memset(r, 0, sizeof *r);
    buf_init(&r->body);
}

static void free_events(struct sim_reply *r)
{
    for (size_t i = 0; i < r->n_events; i++)
        free(r->events[i].data);
    free(r->events);
    r->events = NULL;
    r->n_events = r->cap_events = 0;
}

static void free_headers(struct sim_reply *r)
{
    for (size_t i = 0; i < r->n_headers; i++) {
        free(r->hdr_names[i]);
        free(r->hdr_values[i]);
    }
    r->n_headers = 0;
}

void sim_reply_cleanup(struct sim_reply *r)
{
    free_events(r);
    free_headers(r);
    buf_cleanup(&r->body);
    memset(r, 0, sizeof *r);
}

void sim_reply_header(struct sim_reply *r, const char *name, const char *fmt, ...)
{
    if (r->n_headers >= SIM_MAX_HEADERS)
        return;
    struct buf v;
    va_list ap;
    buf_init(&v);
    va_start(ap, fmt);
    buf_vprintf(&v, fmt, ap);
    va_end(ap);
    r->hdr_names[r->n_headers] = xstrdup(name);
    r->hdr_values[r->n_headers] = buf_take(&v);
    r->n_headers++;
}

void sim_reply_json(struct sim_reply *r, int status, cJSON *doc)
{
    char *text = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    free_events(r);
    r->is_stream = false;
    r->status = status;
    r->content_type = "application/json";
    buf_reset(&r->body);
    buf_puts(&r->body, text ? text : "{}");
    cJSON_free(text);
}

void sim_reply_stream(struct sim_reply *r)
{
    free_events(r);
    buf_reset(&r->body);
    r->is_stream = true;
    r->status = 200;
    r->content_type = "text/event-stream";
}

void sim_reply_raw_event(struct sim_reply *r, bool paced, const char *text)
{
    r->events = xgrow(r->events, &r->cap_events, r->n_events + 1, sizeof *r->events);
    struct sim_event *ev = &r->events[r->n_events++];
    ev->data = xstrdup(text);
    ev->len = strlen(text);
    ev->paced = paced;
}

void sim_reply_sse(struct sim_reply *r, bool paced, const char *name, cJSON *doc, const char *eol)
{
    struct buf b;
    char *json = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    buf_init(&b);
    if (name)
        buf_printf(&b, "event: %s%s", name, eol);
    buf_printf(&b, "data: %s%s%s", json ? json : "{}", eol, eol);
    cJSON_free(json);
    sim_reply_raw_event(r, paced, buf_str(&b));
    buf_cleanup(&b);
}

/* ---- faults on a 200 -------------------------------------------------------------------- */

void sim_reply_trailing_error(struct sim_reply *r)
{
    sim_reply_raw_event(r, false,
                        "[{\n  \"error\": {\n    \"code\": 429,\n    \"message\": \"Resource "
                        "exhausted. Please try again later.\",\n    \"status\": "
                        "\"RESOURCE_EXHAUSTED\"\n  }\n}\n]");
}

void sim_reply_oversize_event(struct sim_reply *r)
{
    struct buf b;
    buf_init(&b);
    buf_puts(&b, "data: {\"pad\":\"");
    for (size_t i = 0; i < (size_t)5 << 20; i += 64)
        buf_puts(&b, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    buf_puts(&b, "\"}\n\n");
    sim_reply_raw_event(r, false, buf_str(&b));
    buf_cleanup(&b);
}

static void make_wrong_content_type(struct sim_reply *r)
{
    free_events(r);
    free_headers(r);
    r->is_stream = false;
    r->content_type = "text/html; charset=utf-8";
    buf_reset(&r->body);
    buf_puts(&r->body, "<!DOCTYPE html>\n<html><head><title>Sign in</title></head>\n"
                       "<body><h1>Network login required</h1>"
                       "<p>Please sign in to continue.</p></body></html>\n");
}

/* Cuts the JSON on the data: line of an event in half; the SSE framing stays intact. */
static void corrupt_event(struct sim_event *ev)
{
    char *data = strstr(ev->data, "data: ");
    if (!data)
        return;
    char *json = data + 6;
    size_t json_len = strcspn(json, "\r\n");
    size_t keep = json_len / 2;
    struct buf b;
    buf_init(&b);
    buf_append(&b, ev->data, (size_t)(json - ev->data) + keep);
    buf_puts(&b, "\",\"sim\":");
    buf_puts(&b, json + json_len);
    free(ev->data);
    ev->len = b.len;
    ev->data = buf_take(&b);
}

static void make_malformed(struct sim_reply *r)
{
    if (r->is_stream) {
        for (size_t i = 0; i < r->n_events; i++) {
            if (r->events[i].paced || i + 1 == r->n_events) {
                corrupt_event(&r->events[i]);
                return;
            }
        }
        return;
    }
    if (!r->body.data)
        return;
    size_t keep = r->body.len / 2;
    r->body.len = keep;
    r->body.data[keep] = '\0';
    buf_puts(&r->body, "\n<<sim: malformed>>");
}

/* ---- streams and cut bodies ------------------------------------------------------------- */

struct sim_stream {
    struct sim_server *srv;
    bool is_main;
    unsigned epoch;
    struct sim_event *events;
    size_t n_events;
    size_t idx, off;
    size_t last_paced; /* index of the last content event (0 if none) */
    long cut_after;    /* < 0: off */
    long stall_after;  /* < 0: off */
    long rate;
    long paced_sent;
    int64_t start_us;
    size_t byte_limit; /* for a cut non-stream body: bytes sent before dropping */
    size_t sent;
};

static bool stream_interrupted(const struct sim_stream *st)
{
    if (atomic_load(&st->srv->stopping))
        return true;
    return st->is_main && atomic_load(&st->srv->main_epoch) != st->epoch;
}

/* Sleeps until the next piece is due; false if interrupted. */
static bool stream_pace(struct sim_stream *st)
{
    int64_t now = clock_mono_us();
    if (st->paced_sent == 0)
        st->start_us = now;
    if (st->rate <= 0)
        return !stream_interrupted(st);
    int64_t due = st->start_us + st->paced_sent * (1000000 / st->rate);
    while (now < due) {
        if (stream_interrupted(st))
            return false;
        int64_t slice = due - now < PACE_SLICE_US ? due - now : PACE_SLICE_US;
        clock_sleep_ms(slice / 1000 > 0 ? slice / 1000 : 1);
        now = clock_mono_us();
    }
    return !stream_interrupted(st);
}

/* stall_after_tokens: nothing more, connection held open until the simulator stops or is
 * reset (the client's own idle timeout must end it). */
static ssize_t stream_stall(struct sim_stream *st)
{
    while (!stream_interrupted(st))
        clock_sleep_ms(20);
    return MHD_CONTENT_READER_END_WITH_ERROR;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
    struct sim_stream *st = cls;
    (void)pos;
    if (st->off == 0) {
        if (st->idx >= st->n_events)
            return MHD_CONTENT_READER_END_OF_STREAM;
        const struct sim_event *ev = &st->events[st->idx];
        if (st->cut_after >= 0 &&
            (st->idx > st->last_paced || (ev->paced && st->paced_sent >= st->cut_after)))
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (ev->paced && st->stall_after >= 0 && st->paced_sent >= st->stall_after)
            return stream_stall(st);
        if (ev->paced ? !stream_pace(st) : stream_interrupted(st))
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (ev->paced)
            st->paced_sent++;
    }
    const struct sim_event *ev = &st->events[st->idx];
    size_t n = ev->len - st->off < max ? ev->len - st->off : max;
    memcpy(out, ev->data + st->off, n);
    st->off += n;
    if (st->off == ev->len) {
        st->idx++;
        st->off = 0;
    }
    return (ssize_t)n;
}

/* A body that stops after byte_limit bytes although Content-Length promised more. */
static ssize_t cut_body_read(void *cls, uint64_t pos, char *out, size_t max)
{
    struct sim_stream *st = cls;
    (void)pos;
    if (st->sent >= st->byte_limit)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t n = st->byte_limit - st->sent < max ? st->byte_limit - st->sent : max;
    memcpy(out, st->events[0].data + st->sent, n);
    st->sent += n;
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    struct sim_stream *st = cls;
    for (size_t i = 0; i < st->n_events; i++)
        free(st->events[i].data);
    free(st->events);
    free(st);
}

static struct sim_stream *stream_new(const struct sim_request *rq, struct sim_reply *r)
{
    struct sim_stream *st = xcalloc(1, sizeof *st);
    st->srv = rq->srv;
    st->is_main = rq->is_main;
    st->epoch = rq->epoch;
    st->cut_after = rq->beh.cut_after_tokens;
    st->stall_after = rq->beh.stall_after_tokens;
    st->rate = rq->beh.token_rate;
    if (r->is_stream) { /* take the events */
        st->events = r->events;
        st->n_events = r->n_events;
        r->events = NULL;
        r->n_events = r->cap_events = 0;
    } else {
        st->events = xcalloc(1, sizeof *st->events);
        st->n_events = 1;
        st->events[0].len = r->body.len;
        st->events[0].data = buf_take(&r->body);
        st->byte_limit = st->events[0].len / 2;
    }
    for (size_t i = 0; i < st->n_events; i++) {
        if (st->events[i].paced)
            st->last_paced = i;
    }
    return st;
}

static struct MHD_Response *make_response(const struct sim_request *rq, struct sim_reply *r,
                                          bool faults)
{
    bool ok = faults && r->status == 200;
    if (ok && rq->beh.wrong_content_type)
        make_wrong_content_type(r);
    else if (ok && rq->beh.malformed)
        make_malformed(r);
    if (r->is_stream) {
        struct sim_stream *st = stream_new(rq, r);
        if (!ok)
            st->cut_after = st->stall_after = -1;
        return MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, st,
                                                 stream_free);
    }
    if (ok && rq->beh.cut_after_tokens >= 0 && !rq->beh.wrong_content_type) {
        struct sim_stream *st = stream_new(rq, r);
        uint64_t total = st->events[0].len;
        return MHD_create_response_from_callback(total, 4096, cut_body_read, st, stream_free);
    }
    size_t len = r->body.len;
    char *body = buf_take(&r->body);
    return MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
}

enum MHD_Result sim_reply_queue(const struct sim_request *rq, struct sim_reply *r, bool faults)
{
    int status = r->status;
    struct MHD_Response *resp = make_response(rq, r, faults);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", r->content_type);
    if (r->is_stream)
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
    for (size_t i = 0; i < r->n_headers; i++)
        MHD_add_response_header(resp, r->hdr_names[i], r->hdr_values[i]);
    enum MHD_Result ret = MHD_queue_response(rq->conn, (unsigned int)status, resp);
    MHD_destroy_response(resp);
    return ret;
}
