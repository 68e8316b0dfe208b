/*
 * fuzz_router_workers.c - drives the decode/encode worker hand-off (router.workers,
 * src/router/worker.c) through the router loop over the fake transport and fake clock of
 * tests/unit/support_fake.c. The workers are manual: the input decides when they run
 * (router_workers_step), interleaved with router steps, so bytes can wait in a worker's queue
 * (up to its cap) while the router moves on. The input also decides the worker count (0, 1,
 * 2), which sinks are any_thread, streaming answers whose text events carry "XXX.SSS" (the
 * transfer's serial and the event's sequence number), decode errors and error events after
 * the commit, cuts, stalls, hedges and retries, sinks that pause (as the gateway's: once, until
 * resumed, router_resume or router_resume_lazy after on_held) or stop reading, cancels while
 * bytes are queued, and whether the run ends by draining or by router_stop.
 *
 * Checks (router.h's promises), failing by abort():
 *  - on_done exactly once and last: no callback after it; one terminal event (FINISH or
 *    ERROR) before it and nothing after that; success means a FINISH and no pause unresumed;
 *  - on_commit at most once, before any output; result.committed says whether it came;
 *  - one stream's text in order and complete so far (sequence numbers from 0 with no gap or
 *    repeat), all from one transfer of the committed target (never two attempts spliced);
 *  - on_commit, on_held and on_done on the router thread (never inside a worker step); a
 *    sink's on_event inside a worker step only when it is any_thread and committed; a worker
 *    batch with sink events ends with router_set_batch_end's hook (the gateway's flush);
 *  - success carries the committed answer's usage (the worker's summary reached the router);
 *  - no output once a router step has taken the call's router_cancel, or once the sink said
 *    stop;
 *  - drained: every call ends by its deadline; stopped: every call has ended after
 *    router_stop and no attempt is in flight (snapshot); the loop makes progress.
 * All of it on one thread, so a run replays exactly; what only real threads show (on_done
 * while a worker is still in on_event) is for test_router_workers under TSan.
 */
/* fuzz-extra: tests/unit/support_fake.c */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/support_fake.h"
#include "fuzz_input.h"
#include "switchboard/log.h"

#define MAX_CALLS 12
#define MAX_XFERS 1000 /* transfer serials are three digits */
#define TICK_MS   100

static bool trace; /* FUZZ_TRACE=1: say what happens (for writing seeds) */

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_router_workers: invariant broken: %s\n", what);
        abort();
    }
}

/* ---- the fake upstream --------------------------------------------------------------------- */

struct world {
    struct fuzz_input *in;
    int n_xfers;
    char xfer_target[MAX_XFERS]; /* by serial: the target letter it went to */
    int xfer_tokens[MAX_XFERS];  /* by serial: the output tokens its usage says, 0 none */
};

enum ending { END_FINISH, END_BROKEN, END_ERROR_EVENT, END_EOF, END_COUNT };

static void sse_event(struct buf *b, int serial, int seq, size_t pad)
{
    buf_printf(b,
               "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\","
               "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"%03d.%03d",
               serial, seq);
    for (size_t i = 0; i < pad; i++)
        buf_putc(b, 'x');
    buf_puts(b, " \"}}]}\n\n");
}

static void sse_ending(struct buf *b, enum ending end)
{
    switch (end) {
    case END_FINISH:
        buf_puts(b, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\","
                    "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],"
                    "\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":7,"
                    "\"total_tokens\":12}}\n\ndata: [DONE]\n\n");
        break;
    case END_BROKEN:
        buf_puts(b, "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\"\n\n");
        break;
    case END_ERROR_EVENT:
        buf_puts(b, "data: {\"error\":{\"message\":\"upstream broke\",\"type\":\"server_error\"}}"
                    "\n\n");
        break;
    case END_EOF:
    case END_COUNT:
        break;
    }
}

/* A streaming answer: n text events, then the ending. */
static const char *sse_body(struct world *w, int serial)
{
    struct fuzz_input *in = w->in;
    static struct buf b;
    buf_reset(&b);
    int n = (int)fuzz_next(in, 40);
    enum ending end = (enum ending)fuzz_next(in, END_COUNT);
    w->xfer_tokens[serial] = end == END_FINISH ? 7 : 0;
    size_t pad = fuzz_next(in, 4) == 0 ? 4000 : 0; /* big events: past the worker queue's cap */
    for (int i = 0; i < n; i++)
        sse_event(&b, serial, i, pad);
    sse_ending(&b, end);
    return buf_str(&b);
}

static const char *json_body(int serial)
{
    static char b[512];
    snprintf(b, sizeof b,
             "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"model\":\"m\","
             "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
             "\"%03d.000 \"},\"finish_reason\":\"stop\"}],"
             "\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":3,\"total_tokens\":8}}",
             serial);
    return b;
}

/* How a 200 answer arrives: in pieces, maybe cut or stalled part way. */
static void answer_shape(struct fuzz_input *in, struct fake_plan *p)
{
    static const size_t chunks[] = {0, 7, 64, 300, 4096, 16384};
    long len = (long)strlen(p->body);
    p->chunk = chunks[fuzz_next(in, SB_ARRAY_LEN(chunks))];
    p->chunk_every_ms = fuzz_next(in, 20);
    p->first_byte_ms = 20 * (long)fuzz_next(in, 4);
    switch (fuzz_next(in, 6)) {
    case 0:
        p->cut_after = (long)((uint64_t)len * fuzz_next(in, 256) / 256);
        break;
    case 1:
        p->stall_after = (long)((uint64_t)len * fuzz_next(in, 256) / 256);
        break;
    default:
        break;
    }
}

static void plan(void *ctx, const struct http_request *req, struct fake_plan *p)
{
    struct world *w = ctx;
    int serial = w->n_xfers++ % MAX_XFERS;
    const char *h = strstr(req->url, "://");
    w->xfer_target[serial] = h ? h[3] : '?';
    w->xfer_tokens[serial] = 3; /* json_body's */
    bool stream = req->body && strstr(req->body, "\"stream\":true");
    bool get = strcmp(req->method, "GET") == 0;
    p->status = 200;
    switch (fuzz_next(w->in, 8)) {
    case 0:
        p->refuse = true;
        return;
    case 1:
        p->fail = LLM_ERR_CONNECT;
        p->fail_after_ms = fuzz_next(w->in, 50);
        return;
    case 2:
        p->status = fuzz_next(w->in, 2) ? 503 : 429;
        p->headers[0][0] = "retry-after";
        p->headers[0][1] = "1";
        p->body = "{\"error\":{\"message\":\"down\",\"type\":\"server_error\"}}";
        return;
    case 3:
        p->first_byte_ms = -1;
        return;
    default:
        break;
    }
    p->headers[0][0] = "content-type";
    p->headers[0][1] = stream ? "text/event-stream" : "application/json";
    p->body = get      ? "{\"object\":\"list\",\"data\":[]}"
              : stream ? sse_body(w, serial)
                       : json_body(serial);
    answer_shape(w->in, p);
    if (trace)
        fprintf(stderr, "xfer %03d to %c: %zu bytes, chunk %zu every %lld ms, cut %ld stall %ld\n",
                serial, w->xfer_target[serial], strlen(p->body), p->chunk,
                (long long)p->chunk_every_ms, p->cut_after, p->stall_after);
}

static const char *config(struct fuzz_input *in, int *n_targets, long *deadline, int *max_attempts)
{
    static char cfg[4096];
    struct buf b;
    buf_init(&b);
    *n_targets = 1 + (int)fuzz_next(in, 3);
    int workers = (int)fuzz_next(in, 3);
    *max_attempts = 1 + (int)fuzz_next(in, 4);
    *deadline = 300 + 300 * (long)fuzz_next(in, 8);
    buf_puts(&b, "{\"providers\":[");
    for (int i = 0; i < *n_targets; i++) {
        /* one byte per field, in this order (not left to the order of a call's arguments) */
        const char *kind = fuzz_next(in, 8) ? "openai-compatible" : "anthropic";
        unsigned first_byte = 200 + 100 * fuzz_next(in, 10);
        unsigned idle = 100 * fuzz_next(in, 6);
        const char *probe = fuzz_next(in, 4) ? "false" : "true";
        buf_printf(&b,
                   "%s{\"name\":\"%c\",\"kind\":\"%s\",\"base_url\":\"http://%c.fake/v1\","
                   "\"api_key_env\":\"FAKE_KEY\",\"model\":\"m\",\"first_byte_timeout_ms\":%u,"
                   "\"stream_idle_timeout_ms\":%u,\"probe\":{\"enabled\":%s,\"interval_ms\":1000,"
                   "\"timeout_ms\":300,\"kind\":\"list\"}}",
                   i ? "," : "", 'a' + i, kind, 'a' + i, first_byte, idle, probe);
    }
    buf_printf(&b, "],\"routes\":[{\"name\":\"chat\",\"strategy\":\"%s\",\"targets\":[",
               fuzz_next(in, 2) ? "priority" : "weighted");
    for (int i = 0; i < *n_targets; i++)
        buf_printf(&b, "%s\"%c\"", i ? "," : "", 'a' + i);
    unsigned backoff = 10 * fuzz_next(in, 10);
    unsigned hedge = 50 * fuzz_next(in, 4);
    buf_printf(&b,
               "]}],\"router\":{\"workers\":%d,\"max_attempts\":%d,\"backoff_base_ms\":%u,"
               "\"backoff_cap_ms\":200,\"deadline_ms\":%ld,\"hedge_after_ms\":%u},"
               "\"ledger\":{\"path\":\":memory:\"},\"guard\":{\"enabled\":false}}",
               workers, *max_attempts, backoff, *deadline, hedge);
    str_copy(cfg, sizeof cfg, buf_str(&b));
    buf_cleanup(&b);
    if (trace)
        fprintf(stderr, "config: %s\n", cfg);
    return cfg;
}

/* ---- the checking sink ----------------------------------------------------------------------
 */

static bool in_worker_step; /* inside router_workers_step (the workers' side) */
static int unflushed;       /* sink events on a worker since its batch_end hook ran */
static bool stopping;       /* inside router_stop: it runs manual workers itself */

/* router_set_batch_end's hook: a worker's batch is over (its sink events are out). */
static void batch_end(void *ctx)
{
    (void)ctx;
    check(in_worker_step || stopping, "batch_end runs on a worker");
    unflushed = 0;
}

enum reader {
    READ_ALL,
    READ_GATE, /* PAUSE at a text event, then 0 until resumed (the gateway's sink) */
    READ_STOP, /* on_event returns 1 at the stop_at-th text */
};

struct tcall {
    const struct world *w;
    uint64_t id;
    bool live, any_thread, stream;
    enum reader reader;
    int every; /* GATE: pause at every every-th text; STOP: stop at this text */
    bool paused, held, stopped;
    bool cancel_posted, cancel_taken;
    int commits, dones, texts, finishes, errors;
    bool terminal;
    char committed_to;
    int serial; /* the transfer its text came from, -1 none yet */
    struct router_result result;
};

static void tc_commit(void *ctx, const struct router_commit *c)
{
    struct tcall *t = ctx;
    check(!in_worker_step, "on_commit on the router thread");
    check(t->dones == 0, "no on_commit after on_done");
    check(t->commits == 0, "one on_commit at most");
    check(t->texts == 0 && !t->terminal, "on_commit before any output");
    t->commits++;
    t->committed_to = c->target[0];
}

/* A text event: "XXX.SSS": from one transfer of the committed target, in order. */
static void tc_text(struct tcall *t, const struct llm_event *ev)
{
    check(t->commits == 1, "text only after on_commit");
    check(ev->len >= 8 && ev->text[3] == '.', "text is a whole event's text");
    int serial = (ev->text[0] - '0') * 100 + (ev->text[1] - '0') * 10 + (ev->text[2] - '0');
    int seq = (ev->text[4] - '0') * 100 + (ev->text[5] - '0') * 10 + (ev->text[6] - '0');
    check(serial >= 0 && serial < MAX_XFERS && seq >= 0, "text is a sequence number");
    if (t->serial < 0)
        t->serial = serial;
    check(t->serial == serial, "text from one attempt only (no splice)");
    check(t->w->xfer_target[serial] == t->committed_to, "text from the committed target");
    check(seq == t->texts, "one stream's events in order, none lost or repeated");
    t->texts++;
}

static int tc_verdict(struct tcall *t)
{
    if (t->reader == READ_STOP && t->texts >= t->every) {
        t->stopped = true;
        return 1;
    }
    if (t->reader == READ_GATE && !t->paused && t->texts % t->every == 0) {
        t->paused = true;
        return ROUTER_SINK_PAUSE;
    }
    return 0;
}

static int tc_event(void *ctx, const struct llm_event *ev)
{
    struct tcall *t = ctx;
    check(t->dones == 0, "no event after on_done");
    check(!t->terminal, "no event after FINISH or ERROR");
    check(!in_worker_step || (t->any_thread && t->commits == 1),
          "only a committed any_thread sink runs on a worker");
    check(!t->cancel_taken || ev->type == LLM_EV_ERROR, "no output once the cancel was taken");
    check(!t->stopped || ev->type == LLM_EV_ERROR, "no output once the sink said stop");
    unflushed += in_worker_step;
    switch (ev->type) {
    case LLM_EV_TEXT:
        tc_text(t, ev);
        return tc_verdict(t);
    case LLM_EV_ERROR:
        t->errors++;
        t->terminal = true;
        return 0;
    case LLM_EV_FINISH:
        check(t->commits == 1, "FINISH only after on_commit");
        t->finishes++;
        t->terminal = true;
        return tc_verdict(t);
    case LLM_EV_TOOL_CALL:
    case LLM_EV_TOOL_ARGS:
    case LLM_EV_USAGE:
        check(t->commits == 1, "output only after on_commit");
        return 0;
    }
    return 0;
}

static void tc_held(void *ctx)
{
    struct tcall *t = ctx;
    check(!in_worker_step, "on_held on the router thread");
    check(t->dones == 0, "no on_held after on_done");
    check(t->paused, "on_held only for a paused sink");
    t->held = true;
}

static void tc_done(void *ctx, const struct router_result *r)
{
    struct tcall *t = ctx;
    check(!in_worker_step, "on_done on the router thread");
    check(t->dones == 0, "exactly one on_done");
    t->dones++;
    check(t->terminal && t->errors + t->finishes == 1, "one FINISH or ERROR before on_done");
    check(r->committed == (t->commits == 1), "result.committed says whether on_commit came");
    if (r->err == LLM_ERR_NONE) {
        check(t->finishes == 1 && t->errors == 0, "success ends with FINISH");
        check(!t->paused, "a paused call does not succeed before its resume");
        int tokens = t->serial >= 0 ? t->w->xfer_tokens[t->serial] : 0;
        check(tokens == 0 || (r->usage.present && r->usage.output_tokens == tokens),
              "the answer's usage reaches on_done");
    }
    t->result = *r;
    t->result.target = t->result.model = t->result.route = NULL;
    if (trace)
        fprintf(stderr,
                "done #%llu: %s, %d texts, finish %d error %d, %d attempts, committed %d: %s\n",
                (unsigned long long)t->id, llm_errclass_name(r->err), t->texts, t->finishes,
                t->errors, r->attempts, r->committed, r->message);
}

static void tc_submit(struct router *rt, struct fuzz_input *in, struct tcall *t,
                      const struct world *w)
{
    memset(t, 0, sizeof *t);
    t->w = w;
    t->live = true;
    t->serial = -1;
    t->any_thread = fuzz_next(in, 4) != 0;
    t->stream = fuzz_next(in, 6) != 0;
    t->reader = (enum reader)fuzz_next(in, 3);
    t->every = 1 + (int)fuzz_next(in, 8);
    struct router_sink sk = {tc_commit, tc_event, tc_done, t, tc_held, t->any_thread};
    t->id = router_submit(rt, fake_request("chat", t->stream), NULL, &sk);
    if (trace)
        fprintf(stderr, "submit #%llu any_thread=%d stream=%d reader=%d every=%d\n",
                (unsigned long long)t->id, t->any_thread, t->stream, t->reader, t->every);
}

/* ---- driving ------------------------------------------------------------------------------- */

struct rig {
    struct router *rt;
    struct fake_net *net;
    struct fake_clock clock;
    struct tcall *calls;
    int n_calls;
};

static size_t workers_step(struct rig *r)
{
    in_worker_step = true;
    size_t n = router_workers_step(r->rt);
    in_worker_step = false;
    check(unflushed == 0, "every worker batch ends with batch_end");
    if (trace && n > 0)
        fprintf(stderr, "  workers ran %zu stream batches\n", n);
    return n;
}

static void router_turn(struct rig *r)
{
    router_step(r->rt);
    for (int i = 0; i < r->n_calls; i++)
        r->calls[i].cancel_taken = r->calls[i].cancel_posted;
}

static bool all_done(const struct rig *r)
{
    for (int i = 0; i < r->n_calls; i++) {
        if (r->calls[i].dones == 0)
            return false;
    }
    return true;
}

/* Runs the loop to until_ms: the workers before every `every`-th turn (0: never). */
static void drive(struct rig *r, int64_t until_ms, unsigned every, bool stop_when_done)
{
    long still = 0;
    for (unsigned turn = 1;; turn++) {
        if (every && turn % every == 0)
            workers_step(r);
        router_turn(r);
        if (stop_when_done && all_done(r))
            return;
        int64_t now = atomic_load(&r->clock.us), until = until_ms * 1000;
        if (now >= until)
            return;
        int64_t at = router_next_wake_ms(r->rt) * 1000, f = fake_net_next_us(r->net);
        at = f < at ? f : at;
        at = at > until ? until : at;
        if (at > now) {
            atomic_store(&r->clock.us, at);
            still = 0;
        } else {
            check(++still < 10000, "the router loop makes progress");
        }
    }
}

static struct tcall *pick(struct rig *r, struct fuzz_input *in)
{
    return r->n_calls > 0 ? &r->calls[fuzz_next(in, (unsigned)r->n_calls)] : NULL;
}

static void resume(struct rig *r, struct tcall *t)
{
    if (!t || !t->paused || t->dones)
        return;
    t->paused = false;
    if (trace)
        fprintf(stderr, "resume #%llu%s\n", (unsigned long long)t->id, t->held ? " (lazy)" : "");
    if (t->held)
        router_resume_lazy(r->rt, t->id);
    else
        router_resume(r->rt, t->id);
    t->held = false;
}

static void op(struct rig *r, struct fuzz_input *in, struct world *w)
{
    struct tcall *t;
    switch (fuzz_next(in, 8)) {
    case 0:
        if (r->n_calls < MAX_CALLS)
            tc_submit(r->rt, in, &r->calls[r->n_calls++], w);
        break;
    case 1: /* router only: bytes pile up in the workers' queues */
        drive(r, fake_clock_ms(&r->clock) + 1 + 3 * (int64_t)fuzz_next(in, 20), 0, false);
        break;
    case 2:
        workers_step(r);
        break;
    case 3:
        resume(r, pick(r, in));
        break;
    case 4:
        t = pick(r, in);
        if (t) {
            router_cancel(r->rt, t->id);
            t->cancel_posted = true;
        }
        break;
    case 5:
        router_turn(r);
        break;
    default: {
        int64_t until = fake_clock_ms(&r->clock) + 5 * (int64_t)fuzz_next(in, 40);
        drive(r, until, 1 + fuzz_next(in, 3), false);
        break;
    }
    }
}

/* The run's end: drain (every sink reads on; every call ends by its deadline) or stop. */
static void finish(struct rig *r, bool drain, long deadline)
{
    if (drain) {
        for (int i = 0; i < r->n_calls; i++) {
            r->calls[i].reader = READ_ALL;
            resume(r, &r->calls[i]);
        }
        drive(r, fake_clock_ms(&r->clock) + deadline + 2 * TICK_MS, 1, true);
        check(all_done(r), "every call ends by its deadline");
    }
    stopping = true;
    router_stop(r->rt);
    stopping = false;
    check(all_done(r), "every call has ended after router_stop");
    struct router_snapshot *s = malloc(sizeof *s);
    check(router_snapshot_read(r->rt, s, 0), "a snapshot after router_stop");
    check(s->in_flight == 0, "no attempt in flight after router_stop");
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool once;
    if (!once) {
        setenv("FAKE_KEY", "sk-fake-key-for-fuzzing-000", 1);
        log_setup(LOG_LEVEL_OFF, -1);
        trace = getenv("FUZZ_TRACE") != NULL;
        once = true;
    }
    struct fuzz_input in = {data, size, 0};
    int n_targets, max_attempts;
    long deadline;
    const char *cfg = config(&in, &n_targets, &deadline, &max_attempts);
    bool drain = fuzz_next(&in, 2) != 0;
    struct world *w = calloc(1, sizeof *w);
    w->in = &in;
    struct rig r = {0};
    fake_clock_init(&r.clock);
    r.rt = fake_router_new(cfg, &r.clock, plan, w, &r.net);
    router_set_batch_end(r.rt, batch_end, NULL);
    r.calls = calloc(MAX_CALLS, sizeof *r.calls);
    while (in.at < in.n)
        op(&r, &in, w);
    finish(&r, drain, deadline);
    for (int i = 0; i < r.n_calls; i++)
        check(r.calls[i].result.attempts <= max_attempts, "attempts within max_attempts");
    if (trace)
        fprintf(stderr, "transfers paused %ld times, resumed %ld\n", fake_net_pauses(r.net),
                fake_net_resumes(r.net));
    router_free(r.rt);
    free(r.calls);
    free(w);
    return 0;
}
