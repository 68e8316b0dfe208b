/*
 * relay.c - CPU per streamed event of the relay's per-event work, in one process: an OpenAI
 * stream goes through provider_call into the gateway's SSE writer (what the router thread
 * does for every event between libcurl's receive and the hand-off to the client's
 * connection), once with same-format passthrough (provider_openai: chunks scanned and
 * forwarded) and once parsed and encoded again (provider_openai_parsed). The streams are
 * the bench upstream's 14-event body (role, ten words, finish, usage, [DONE]) and a long one
 * with 200 content chunks, as OpenAI sends them. Each figure is the best of 5 runs of the
 * thread's CPU time over many streams, in ns per upstream event. No I/O: the socket reads,
 * the connection's lock and wake-up and MHD's send are not in these figures.
 *
 * It also measures one non-streaming answer (the bench upstream's chat.completion) through
 * provider_call into the body chat.c answers with: forwarded (provider_openai, the FINISH
 * carries the body) and parsed, collected and encoded again (provider_openai_parsed), in ns
 * per answer.
 *
 * Usage: relay [STREAMS [pass|parse|json-pass|json-parse]]   (default 20000, both; one path
 * only: for perf)
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../src/gateway/internal.h"
#include "switchboard/provider.h"

#define HEAD                                                                                       \
    "data: "                                                                                       \
    "{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"      \
    "\"model\":\"bench-model\",\"system_fingerprint\":\"fp_bench\",\"choices\":"

static int64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* role, n content chunks, finish, usage, [DONE]: n + 4 events. */
static void build(struct buf *b, int n)
{
    buf_puts(b, HEAD "[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
                     "\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n");
    for (int i = 0; i < n; i++)
        buf_printf(b,
                   HEAD "[{\"index\":0,\"delta\":{\"content\":\" word%d\"},\"logprobs\":null,"
                        "\"finish_reason\":null}],\"usage\":null}\n\n",
                   i);
    buf_puts(b, HEAD "[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}],"
                     "\"usage\":null}\n\n");
    buf_puts(b, HEAD "[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":10,"
                     "\"total_tokens\":22}}\n\n");
    buf_puts(b, "data: [DONE]\n\n");
}

struct sink_ctx {
    struct gw_sse sse;
    struct buf out;
};

static int on_event(void *ctx, const struct llm_event *ev)
{
    struct sink_ctx *s = ctx;
    gw_sse_event(&s->sse, ev, &s->out);
    return 0;
}

/* One stream, as the router and the gateway's sink handle it; returns the bytes written. */
static size_t one_stream(const struct provider_ops *ops, const struct buf *body)
{
    struct sink_ctx s;
    buf_init(&s.out);
    gw_sse_init(&s.sse, "chatcmpl-r1", "route", 1700000000, false);
    gw_sse_begin(&s.sse, &s.out);
    struct llm_sink sink = {on_event, &s};
    struct provider_call *pc = provider_call_new(ops, true, &sink, NULL);
    provider_call_on_status(pc, 200);
    provider_call_on_header(pc, "Content-Type", "text/event-stream", 0);
    /* libcurl hands over what one read returned: here, one event at a time. */
    const char *p = body->data, *end = body->data + body->len;
    while (p < end) {
        const char *e = strstr(p, "\n\n");
        size_t n = e ? (size_t)(e + 2 - p) : (size_t)(end - p);
        provider_call_on_data(pc, p, n);
        p += n;
    }
    provider_call_finish(pc, LLM_ERR_NONE, NULL);
    provider_call_free(pc);
    size_t n = s.out.len;
    gw_sse_cleanup(&s.sse);
    buf_cleanup(&s.out);
    return n;
}

/* The bench upstream's JSON answer (tests/bench/upstream.c). */
static const char json_body[] =
    "{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion\",\"created\":1700000000,"
    "\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
    "\"content\":\"The quick brown fox jumps over the lazy dog. Done\"},\"logprobs\":null,"
    "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":10,"
    "\"total_tokens\":22}}";

struct answer_ctx {
    struct llm_response resp;
    struct buf pass;
};

/* chat.c's non-streaming sink */
static int on_answer_event(void *ctx, const struct llm_event *ev)
{
    struct answer_ctx *a = ctx;
    if (ev->type == LLM_EV_FINISH && ev->chunk)
        gw_completion_forward("chatcmpl-r1", "route", 1700000000, ev->chunk, &a->pass);
    return llm_response_collect(&a->resp, ev);
}

/* One JSON answer, decoded and answered as the router and chat.c do; returns its bytes. */
static size_t one_answer(const struct provider_ops *ops)
{
    struct answer_ctx a;
    struct buf body;
    llm_response_init(&a.resp);
    buf_init(&a.pass);
    buf_init(&body);
    struct llm_sink sink = {on_answer_event, &a};
    struct provider_call *pc = provider_call_new(ops, false, &sink, NULL);
    provider_call_on_status(pc, 200);
    provider_call_on_header(pc, "Content-Type", "application/json", 0);
    provider_call_on_data(pc, json_body, sizeof json_body - 1);
    provider_call_finish(pc, LLM_ERR_NONE, NULL);
    provider_call_free(pc);
    if (a.pass.len == 0) {
        gw_completion_json("chatcmpl-r1", "route", 1700000000, &a.resp, &body);
        buf_putc(&body, '\n');
    }
    size_t n = a.pass.len + body.len;
    llm_response_cleanup(&a.resp);
    buf_cleanup(&a.pass);
    buf_cleanup(&body);
    return n;
}

static double ns_per_answer(const struct provider_ops *ops, int answers)
{
    double best = 1e18;
    for (int run = 0; run < 5; run++) {
        int64_t t0 = cpu_ns();
        size_t bytes = 0;
        for (int i = 0; i < answers; i++)
            bytes += one_answer(ops);
        double ns = (double)(cpu_ns() - t0) / answers;
        if (bytes == 0)
            abort();
        best = ns < best ? ns : best;
    }
    return best;
}

static double ns_per_event(const struct provider_ops *ops, const struct buf *body, int events,
                           int streams)
{
    double best = 1e18;
    for (int run = 0; run < 5; run++) {
        int64_t t0 = cpu_ns();
        size_t bytes = 0;
        for (int i = 0; i < streams; i++)
            bytes += one_stream(ops, body);
        double ns = (double)(cpu_ns() - t0) / ((double)streams * events);
        if (bytes == 0)
            abort();
        best = ns < best ? ns : best;
    }
    return best;
}

int main(int argc, char **argv)
{
    int streams = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 20000;
    const char *only = argc > 2 ? argv[2] : "";
    if (strncmp(only, "json-", 5) == 0) { /* one path, JSON answers: for perf */
        const struct provider_ops *ops =
            strcmp(only, "json-pass") == 0 ? &provider_openai : &provider_openai_parsed;
        printf("%s: %.0f ns/answer\n", only, ns_per_answer(ops, streams));
        return 0;
    }
    if (only[0]) { /* one path, long stream: what perf record should see */
        struct buf body;
        buf_init(&body);
        build(&body, 200);
        const struct provider_ops *ops =
            strcmp(only, "pass") == 0 ? &provider_openai : &provider_openai_parsed;
        printf("%s: %.0f ns/event\n", only, ns_per_event(ops, &body, 204, streams));
        buf_cleanup(&body);
        return 0;
    }
    static const int words[] = {10, 200};
    printf("| stream | events | parse + re-encode | passthrough | ratio |\n");
    printf("| --- | ---: | ---: | ---: | ---: |\n");
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        struct buf body;
        buf_init(&body);
        build(&body, words[i]);
        int events = words[i] + 4;
        int n = words[i] > 10 ? streams / 10 : streams;
        double parsed = ns_per_event(&provider_openai_parsed, &body, events, n);
        double pass = ns_per_event(&provider_openai, &body, events, n);
        printf("| %d content chunks | %d | %.0f ns/event | %.0f ns/event | %.2fx |\n", words[i],
               events, parsed, pass, parsed / pass);
        printf("relay-ns-per-event\t%d\t%.1f\t%.1f\n", events, parsed, pass);
        buf_cleanup(&body);
    }
    double parsed = ns_per_answer(&provider_openai_parsed, streams);
    double pass = ns_per_answer(&provider_openai, streams);
    printf("\n| JSON answer | parse + re-encode | passthrough | ratio |\n| --- | ---: | ---: | "
           "---: |\n");
    printf("| bench upstream's chat.completion (%zu bytes) | %.0f ns | %.0f ns | %.2fx |\n",
           sizeof json_body - 1, parsed, pass, parsed / pass);
    printf("relay-ns-per-answer\t%.1f\t%.1f\n", parsed, pass);
    return 0;
}
