/*
 * support_provider.c - see support_provider.h. Linked into every unit test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support_provider.h"
#include "switchboard/sse.h"

char *read_fixture_in(const char *dir, const char *name, size_t *len)
{
    char path[256];
    snprintf(path, sizeof path, "%s%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s (run from the repository root)", path);
    struct buf b;
    buf_init(&b);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_append(&b, chunk, n);
    fclose(f);
    *len = b.len;
    return buf_take(&b);
}

static int rec_event(void *ctx, const struct llm_event *ev)
{
    struct rec *r = ctx;
    const char *finish = llm_finish_name(ev->finish);
    switch (ev->type) {
    case LLM_EV_TEXT:
        buf_printf(&r->log, "%s:%.*s\n",
                   ev->kind == LLM_TEXT_CONTENT ? "text" : llm_text_kind_field(ev->kind),
                   (int)ev->len, ev->text);
        break;
    case LLM_EV_TOOL_CALL:
        buf_printf(&r->log, "call:%d:%s:%s\n", ev->index, ev->id, ev->name);
        break;
    case LLM_EV_TOOL_ARGS:
        buf_printf(&r->log, "args:%d:%.*s\n", ev->index, (int)ev->len, ev->text);
        break;
    case LLM_EV_USAGE:
        buf_printf(&r->log, "usage:%ld/%ld/%ld\n", ev->usage.input_tokens, ev->usage.output_tokens,
                   ev->usage.cached_tokens);
        break;
    case LLM_EV_FINISH:
        buf_printf(&r->log, "finish:%s\n", finish ? finish : "none");
        break;
    case LLM_EV_ERROR:
        buf_printf(&r->log, "error:%s:%.*s\n", llm_errclass_name(ev->errclass), (int)ev->len,
                   ev->text);
        break;
    }
    return r->stop_after > 0 && ++r->n >= r->stop_after;
}

void rec_init(struct rec *r, struct llm_sink *sink)
{
    memset(r, 0, sizeof *r);
    buf_init(&r->log);
    sink->on_event = rec_event;
    sink->ctx = r;
}

void rec_error(struct rec *r, enum llm_errclass c, const char *msg)
{
    buf_printf(&r->log, "error:%s:%s\n", llm_errclass_name(c), msg);
}

void expect_log(const char *what, const struct rec *r, const char *want)
{
    if (strcmp(buf_str(&r->log), want) != 0)
        print_error("%s: got\n%s---\nwant\n%s---\n", what, buf_str(&r->log), want);
    assert_string_equal(buf_str(&r->log), want);
}

/* Whole body straight into decode_full. */
void run_full_direct(const struct provider_ops *ops, const char *body, size_t len, struct rec *r)
{
    struct llm_sink sink;
    char msg[PROVIDER_MSG_MAX] = "";
    rec_init(r, &sink);
    enum llm_errclass c = ops->decode_full(body, len, &sink, msg, sizeof msg);
    if (c != LLM_ERR_NONE)
        rec_error(r, c, msg);
}

struct direct {
    const struct provider_ops *ops;
    void *state;
    struct llm_sink sink;
    enum llm_errclass err;
    char msg[PROVIDER_MSG_MAX];
};

static int direct_on_sse(void *ctx, const struct sse_event *ev)
{
    struct direct *d = ctx;
    d->err = d->ops->stream_event(d->state, ev, &d->sink, d->msg, sizeof d->msg);
    return d->err != LLM_ERR_NONE;
}

/* An SSE body parsed with sse.c and fed to stream_event / stream_end, no glue. */
void run_stream_direct(const struct provider_ops *ops, const char *body, size_t len, struct rec *r)
{
    struct direct d = {.ops = ops, .err = LLM_ERR_NONE};
    struct sse_parser p;
    rec_init(r, &d.sink);
    d.state = ops->stream_new();
    sse_init(&p, PROVIDER_MAX_SSE_LINE, PROVIDER_MAX_SSE_EVENT);
    sse_feed(&p, body, len, direct_on_sse, &d);
    if (d.err == LLM_ERR_NONE)
        sse_finish(&p, direct_on_sse, &d);
    if (d.err == LLM_ERR_NONE)
        d.err = ops->stream_end(d.state, true, &d.sink, d.msg, sizeof d.msg);
    if (d.err != LLM_ERR_NONE)
        rec_error(r, d.err, d.msg);
    sse_cleanup(&p);
    ops->stream_free(d.state);
}

/* One HTTP exchange through provider_call. split: 0 whole, 1 byte by byte, else a seed for
 * pseudo-random chunk sizes of 1..97 bytes. */
enum llm_errclass run_glue(const struct provider_ops *ops, const char *key, bool stream,
                           long status, const char *ctype, const char *body, size_t len,
                           unsigned split, struct rec *r)
{
    struct llm_sink sink;
    rec_init(r, &sink);
    struct provider_call *c = provider_call_new(ops, stream, &sink, key);
    provider_call_on_status(c, status);
    if (ctype)
        provider_call_on_header(c, "Content-Type", ctype, 0);
    unsigned seed = split;
    for (size_t off = 0; off < len;) {
        size_t n = len - off;
        if (split == 1) {
            n = 1;
        } else if (split > 1) {
            seed = seed * 1103515245u + 12345u;
            n = 1 + (seed >> 16) % 97;
        }
        if (n > len - off)
            n = len - off;
        if (provider_call_on_data(c, body + off, n))
            break;
        off += n;
    }
    enum llm_errclass out = provider_call_finish(c, LLM_ERR_NONE, NULL);
    provider_call_free(c);
    return out;
}

bool has_header(const struct http_request *req, const char *line)
{
    for (size_t i = 0; i < req->n_headers; i++)
        if (strcmp(req->headers[i], line) == 0)
            return true;
    return false;
}

bool has_header_prefix(const struct http_request *req, const char *prefix)
{
    for (size_t i = 0; i < req->n_headers; i++)
        if (str_has_prefix(req->headers[i], prefix))
            return true;
    return false;
}
