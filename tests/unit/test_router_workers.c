/*
 * test_router_workers.c - the decode/encode workers (router.workers, src/router/worker.c)
 * driven through router_step with the fake transport and the fake clock of support_fake.c.
 *
 * Most cases use manual workers: the test decides when a worker runs (router_workers_step),
 * so it can hold bytes in a worker's queue and look at the router in between. One case runs
 * real worker threads under many concurrent streams (TSan tree: make tsan).
 *
 * The streams' text events carry sequence numbers ("s000 ", "s001 "...): the sink checks that
 * they come complete and in order, and logs every callback so a test can see that on_done
 * (after which the ledger row goes out) comes after the last event.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "support_fake.h"
#include "switchboard/log.h"

/* ---- the fake upstream ------------------------------------------------------------------------
 */

enum shape {
    S_SEQ,    /* SEQ_EVENTS events in 64-byte pieces every ms */
    S_BIG,    /* BIG_EVENTS events in 16 KB pieces every ms: past the worker queue's cap */
    S_BROKEN, /* SEQ_EVENTS events, then a line that is not JSON, in 64-byte pieces */
    S_STALL,  /* S_SEQ, but no byte after the first 1,000 (connection open) */
    S_BURST,  /* S_SEQ's 64-byte pieces all at once: one receive, many on_data calls */
};

#define SEQ_EVENTS 40
#define BIG_EVENTS 1500

struct world {
    enum shape shape;
};

static const char *seq_body(int n, bool broken)
{
    static struct buf b;
    buf_reset(&b);
    for (int i = 0; i < n; i++)
        buf_printf(&b,
                   "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\","
                   "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"s%03d \"}}]}\n\n",
                   i);
    if (broken)
        buf_puts(&b, "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\"\n\n");
    buf_puts(&b, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\","
                 "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],"
                 "\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":7,\"total_tokens\":12}}\n\n"
                 "data: [DONE]\n\n");
    return buf_str(&b);
}

static void plan_for(void *ctx, const struct http_request *req, struct fake_plan *p)
{
    struct world *w = ctx;
    (void)req;
    p->status = 200;
    p->headers[0][0] = "content-type";
    p->headers[0][1] = "text/event-stream";
    p->chunk = 64;
    p->chunk_every_ms = 1;
    switch (w->shape) {
    case S_SEQ:
        p->body = seq_body(SEQ_EVENTS, false);
        break;
    case S_BIG:
        p->body = seq_body(BIG_EVENTS, false);
        p->chunk = 16 * 1024;
        break;
    case S_BROKEN:
        p->body = seq_body(SEQ_EVENTS, true);
        break;
    case S_BURST:
        p->body = seq_body(SEQ_EVENTS, false);
        p->chunk_every_ms = 0;
        break;
    case S_STALL:
        p->body = seq_body(SEQ_EVENTS, false);
        p->stall_after = 1000;
        break;
    }
}

static char cfg_buf[2048];

static const char *config_with_workers(int workers)
{
    snprintf(cfg_buf, sizeof cfg_buf,
             "{\"providers\":[{\"name\":\"a\",\"kind\":\"openai-compatible\","
             "\"base_url\":\"http://a.fake/v1\",\"api_key_env\":\"FAKE_KEY\",\"model\":\"m\","
             "\"first_byte_timeout_ms\":1000,\"probe\":{\"enabled\":false}}],"
             "\"routes\":[{\"name\":\"chat\",\"strategy\":\"priority\",\"targets\":[\"a\"]}],"
             "\"router\":{\"max_attempts\":1,\"deadline_ms\":200000,\"workers\":%d},"
             "\"ledger\":{\"path\":\":memory:\"},\"guard\":{\"enabled\":false}}",
             workers);
    return cfg_buf;
}

/* ---- a logging sink that may run on any thread --------------------------------------------- */

struct wsink {
    struct fake_call fc;
    struct router_sink inner;
    char log[BIG_EVENTS + 64]; /* C commit, T text, U usage, F finish, E error, D done */
    size_t n_log;
    int seq_next; /* the next sequence number expected */
    bool seq_bad; /* a text event out of order or malformed */
    bool after_done;
    uint64_t id;
};

static void wlog(struct wsink *s, char ch)
{
    if (s->n_log > 0 && s->log[s->n_log - 1] == 'D')
        s->after_done = true;
    if (s->n_log + 1 < sizeof s->log)
        s->log[s->n_log++] = ch;
    s->log[s->n_log] = '\0';
}

static void ws_commit(void *ctx, const struct router_commit *c)
{
    struct wsink *s = ctx;
    wlog(s, 'C');
    s->inner.on_commit(s->inner.ctx, c);
}

static void ws_text(struct wsink *s, const struct llm_event *ev)
{
    char want[16];
    int n = snprintf(want, sizeof want, "s%03d ", s->seq_next);
    if (ev->len != (size_t)n || memcmp(ev->text, want, (size_t)n) != 0)
        s->seq_bad = true;
    s->seq_next++;
}

static int ws_event(void *ctx, const struct llm_event *ev)
{
    struct wsink *s = ctx;
    static const char code[] = {
        [LLM_EV_TEXT] = 'T',  [LLM_EV_TOOL_CALL] = 'K', [LLM_EV_TOOL_ARGS] = 'A',
        [LLM_EV_USAGE] = 'U', [LLM_EV_FINISH] = 'F',    [LLM_EV_ERROR] = 'E'};
    wlog(s, code[ev->type]);
    if (ev->type == LLM_EV_TEXT)
        ws_text(s, ev);
    return s->inner.on_event(s->inner.ctx, ev);
}

static void ws_done(void *ctx, const struct router_result *r)
{
    struct wsink *s = ctx;
    wlog(s, 'D');
    s->inner.on_done(s->inner.ctx, r);
}

static void ws_submit(struct router *rt, struct wsink *s)
{
    memset(s, 0, sizeof *s);
    s->inner = fake_call_sink(&s->fc);
    struct router_sink sk = {ws_commit, ws_event, ws_done, s, NULL, true};
    s->id = router_submit(rt, fake_request("chat", true), NULL, &sk);
}

static size_t count(const char *log, char ch)
{
    size_t n = 0;
    for (; *log; log++)
        n += *log == ch;
    return n;
}

/* ---- harness ------------------------------------------------------------------------------- */

struct rig {
    struct fake_clock clock;
    struct fake_net *net;
    struct router *rt;
    struct world w;
};

static void rig_start(struct rig *r, int workers, bool manual)
{
    fake_clock_init(&r->clock);
    r->rt = fake_router_new_workers(config_with_workers(workers), &r->clock, plan_for, &r->w,
                                    &r->net, manual);
}

static int64_t rig_now(struct rig *r)
{
    return fake_clock_ms(&r->clock);
}

/* Steps the router alone (no worker runs) for `ms` of fake time. */
static void drive_router_only(struct rig *r, int64_t ms)
{
    int64_t until = (rig_now(r) + ms) * 1000;
    for (int i = 0; i < 100000; i++) {
        router_step(r->rt);
        int64_t now = atomic_load(&r->clock.us);
        if (now >= until)
            return;
        int64_t next = router_next_wake_ms(r->rt) * 1000, f = fake_net_next_us(r->net);
        next = f < next ? f : next;
        atomic_store(&r->clock.us, next > until ? until : next > now ? next : now + 1000);
    }
}

/* Steps workers and router (fake_drive) until s is done. */
static void drive_until_done(struct rig *r, struct wsink *s, int64_t ms)
{
    fake_drive(r->rt, r->net, &r->clock, rig_now(r) + ms, fake_call_done, &s->fc);
    assert_int_equal(s->fc.dones, 1);
}

static int setup(void **state)
{
    (void)state;
    fake_watchdog("test_router_workers", 60);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fake_watchdog("test_router_workers", 0);
    return 0;
}

/* A complete, ordered answer, then D last; the summary's usage and finish reached on_done. */
static void assert_complete(const struct wsink *s, int events)
{
    assert_false(s->seq_bad);
    assert_int_equal(s->seq_next, events);
    assert_false(s->after_done);
    assert_int_equal(count(s->log, 'D'), 1);
    assert_int_equal(s->log[s->n_log - 1], 'D');
    assert_int_equal(s->log[s->n_log - 2], 'F'); /* the last event, then on_done */
    assert_int_equal(s->fc.result.err, LLM_ERR_NONE);
    assert_true(s->fc.result.usage.present);
    assert_int_equal(s->fc.result.usage.output_tokens, 7);
    assert_int_equal(s->fc.result.finish, LLM_FINISH_STOP);
}

/* ---- cases ---------------------------------------------------------------------------------- */

/* After the commit the stream's events wait for its worker: with the worker held back the
 * router has read the whole upstream answer and the sink has only what committed the call;
 * once the worker runs, every event comes, in order, and on_done after the last. */
static void test_after_the_commit_events_come_from_the_worker_in_order(void **state)
{
    (void)state;
    struct rig r = {0};
    r.w.shape = S_SEQ;
    rig_start(&r, 2, true);
    struct wsink s;
    ws_submit(r.rt, &s);
    drive_router_only(&r, 500);
    assert_int_equal(fake_net_active(r.net), 0); /* the transfer is over */
    assert_int_equal(s.fc.dones, 0);             /* ...but its end waits for the worker */
    assert_int_equal(count(s.log, 'C'), 1);
    assert_true(s.seq_next >= 1 && s.seq_next < 3); /* what committed it, same piece */
    assert_true(router_workers_step(r.rt) > 0);
    drive_until_done(&r, &s, 1000);
    assert_complete(&s, SEQ_EVENTS);
    router_free(r.rt);
}

/* The same with workers = 0: everything inline, nothing for a worker to run. */
static void test_workers_zero_keeps_every_event_on_the_router_thread(void **state)
{
    (void)state;
    struct rig r = {0};
    r.w.shape = S_SEQ;
    rig_start(&r, 0, true);
    struct wsink s;
    ws_submit(r.rt, &s);
    drive_router_only(&r, 500);
    assert_int_equal(s.fc.dones, 1);
    assert_int_equal(router_workers_step(r.rt), 0);
    assert_complete(&s, SEQ_EVENTS);
    router_free(r.rt);
}

/* An answer that arrives in one receive (libcurl hands it over in pieces within one loop
 * turn) is decoded inline to its end: handing its tail to a worker would cost two thread
 * wake-ups for a few microseconds of decoding. */
static void test_an_answer_in_one_receive_stays_inline(void **state)
{
    (void)state;
    struct rig r = {0};
    r.w.shape = S_BURST;
    rig_start(&r, 2, true);
    struct wsink s;
    ws_submit(r.rt, &s);
    drive_router_only(&r, 50);
    assert_int_equal(s.fc.dones, 1);
    assert_int_equal(router_workers_step(r.rt), 0);
    assert_complete(&s, SEQ_EVENTS);
    router_free(r.rt);
}

/* A sink that must stay on the router thread is never handed over. */
static void test_a_sink_without_any_thread_stays_inline(void **state)
{
    (void)state;
    struct rig r = {0};
    r.w.shape = S_SEQ;
    rig_start(&r, 2, true);
    struct fake_call fc;
    memset(&fc, 0, sizeof fc);
    struct router_sink sk = fake_call_sink(&fc);
    router_submit(r.rt, fake_request("chat", true), NULL, &sk);
    drive_router_only(&r, 500);
    assert_int_equal(fc.dones, 1);
    assert_int_equal(fc.finishes, 1);
    assert_int_equal(router_workers_step(r.rt), 0);
    router_free(r.rt);
}

/* A decode error after the commit (a line that is not JSON) is found on the worker: the
 * stream ends with that ERROR and the call with its class, as with no workers. */
static void test_a_worker_side_error_after_the_commit_ends_the_call_with_its_class(void **state)
{
    (void)state;
    enum llm_errclass cls[2];
    char text[2][256];
    for (int workers = 0; workers < 2; workers++) {
        struct rig r = {0};
        r.w.shape = S_BROKEN;
        rig_start(&r, workers, true);
        struct wsink s;
        ws_submit(r.rt, &s);
        drive_until_done(&r, &s, 2000);
        assert_int_equal(s.seq_next, SEQ_EVENTS);
        assert_false(s.seq_bad);
        assert_int_equal(s.fc.errors, 1);
        assert_int_equal(count(s.log, 'F'), 0);
        assert_false(s.after_done);
        assert_int_equal(s.log[s.n_log - 2], 'E');
        assert_int_equal(s.fc.result.err, s.fc.error_class);
        cls[workers] = s.fc.result.err;
        str_copy(text[workers], sizeof text[workers], s.fc.error);
        router_free(r.rt);
    }
    assert_int_equal(cls[1], LLM_ERR_BAD_RESPONSE);
    assert_int_equal(cls[0], cls[1]);
    assert_string_equal(text[0], text[1]);
}

/* A stream that stalls after the hand-off is cut by the idle timeout as inline: one ERROR,
 * "stalled", TRUNCATED (not the transport's cancel reaching the sink first). */
static void test_a_stall_after_the_hand_off_is_cut_as_inline(void **state)
{
    (void)state;
    for (int workers = 0; workers < 2; workers++) {
        struct rig r = {0};
        r.w.shape = S_STALL;
        rig_start(&r, workers, true);
        struct wsink s;
        ws_submit(r.rt, &s);
        drive_until_done(&r, &s, 120000);
        assert_true(s.seq_next > 2);
        assert_false(s.seq_bad);
        assert_int_equal(s.fc.errors, 1);
        assert_non_null(strstr(s.fc.error, "stalled"));
        assert_int_equal(s.fc.result.err, LLM_ERR_TRUNCATED);
        assert_false(s.after_done);
        router_free(r.rt);
    }
}

/* A cancel while the stream's bytes wait for its worker: none of them reaches the sink; the
 * sink gets ERROR CANCELLED and on_done once the worker has let go of the stream. */
static void test_a_cancel_while_bytes_are_queued_delivers_none_of_them(void **state)
{
    (void)state;
    struct rig r = {0};
    r.w.shape = S_SEQ;
    rig_start(&r, 1, true);
    struct wsink s;
    ws_submit(r.rt, &s);
    drive_router_only(&r, 20); /* committed, a few pieces queued */
    int seen = s.seq_next;
    assert_true(seen >= 1 && seen < SEQ_EVENTS);
    router_cancel(r.rt, s.id);
    drive_router_only(&r, 100);
    assert_int_equal(s.fc.dones, 0); /* the worker still holds the stream */
    drive_until_done(&r, &s, 1000);
    assert_int_equal(s.seq_next, seen); /* nothing queued was delivered */
    assert_int_equal(s.fc.result.err, LLM_ERR_CANCELLED);
    assert_int_equal(s.fc.errors, 1);
    assert_int_equal(s.fc.error_class, LLM_ERR_CANCELLED);
    assert_false(s.after_done);
    assert_int_equal(s.log[s.n_log - 2], 'E');
    router_free(r.rt);
}

/* A worker that falls behind: past the queue's cap the transfer pauses instead of
 * buffering more, and the worker's drain resumes it; nothing is lost or repeated. */
static void test_the_queue_cap_pauses_the_transfer_and_the_drain_resumes_it(void **state)
{
    (void)state;
    struct rig r = {0};
    r.w.shape = S_BIG;
    rig_start(&r, 1, true);
    struct wsink s;
    ws_submit(r.rt, &s);
    drive_router_only(&r, 200);
    assert_int_equal(fake_net_pauses(r.net), 1);
    assert_int_equal(fake_net_active(r.net), 1); /* paused, not over */
    assert_int_equal(fake_net_resumes(r.net), 0);
    drive_until_done(&r, &s, 5000);
    assert_true(fake_net_resumes(r.net) >= 1);
    assert_complete(&s, BIG_EVENTS);
    router_free(r.rt);
}

/* A sink that pauses as the gateway's does: PAUSE once, then nothing more until it has been
 * resumed (the test resumes at once, as a client that drained). */
struct gate {
    struct wsink s;
    bool paused;
    int pauses;
};

static int gate_event(void *ctx, const struct llm_event *ev)
{
    struct gate *g = ctx;
    int v = ws_event(&g->s, ev);
    if (v != 0 || ev->type != LLM_EV_TEXT || g->paused)
        return v;
    g->paused = true;
    g->pauses++;
    return ROUTER_SINK_PAUSE;
}

static void gate_commit(void *ctx, const struct router_commit *c)
{
    ws_commit(&((struct gate *)ctx)->s, c);
}

static void gate_done(void *ctx, const struct router_result *r)
{
    ws_done(&((struct gate *)ctx)->s, r);
}

/* The pause comes back in a worker's summary, and the client's resume can be in the router's
 * inbox before it (the router reads its inbox first): that resume must not be lost, or the
 * stream would stay paused for good. */
static void test_a_resume_that_overtakes_its_pause_is_not_lost(void **state)
{
    (void)state;
    struct rig r = {0};
    r.w.shape = S_SEQ;
    rig_start(&r, 1, true);
    struct gate g;
    memset(&g, 0, sizeof g);
    g.s.inner = fake_call_sink(&g.s.fc);
    struct router_sink sk = {gate_commit, gate_event, gate_done, &g, NULL, true};
    g.s.id = router_submit(r.rt, fake_request("chat", true), NULL, &sk);
    drive_router_only(&r, 5); /* committed; that pause applied inline */
    assert_int_equal(g.pauses, 1);
    int resumed = 0;
    for (int i = 0; i < 2000 && g.s.fc.dones == 0; i++) {
        router_workers_step(r.rt); /* may pause again: its summary waits for the router */
        if (resumed < g.pauses) {
            g.paused = false;
            router_resume(r.rt, g.s.id); /* ahead of that summary */
            resumed++;
        }
        drive_router_only(&r, 2);
    }
    assert_true(g.pauses > 2);
    assert_int_equal(g.s.fc.dones, 1);
    assert_complete(&g.s, SEQ_EVENTS);
    router_free(r.rt);
}

/* router_stop with streams on a worker: each call ends once, after its last event. */
static void test_stop_with_streams_on_workers_ends_each_once(void **state)
{
    (void)state;
    struct rig r = {0};
    r.w.shape = S_SEQ;
    rig_start(&r, 2, true);
    struct wsink s[4];
    for (int i = 0; i < 4; i++)
        ws_submit(r.rt, &s[i]);
    drive_router_only(&r, 10);
    router_stop(r.rt);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(s[i].fc.dones, 1);
        assert_false(s[i].after_done);
        assert_false(s[i].seq_bad);
        assert_int_equal(s[i].fc.result.err, LLM_ERR_CANCELLED);
    }
    router_free(r.rt);
}

/* Real worker threads under 32 concurrent streams: each stream complete and in order. */
#define THREADED_STREAMS 32

static bool all_done(struct wsink *s, int n)
{
    for (int i = 0; i < n; i++)
        if (s[i].fc.dones == 0)
            return false;
    return true;
}

static void test_real_worker_threads_keep_every_stream_in_order(void **state)
{
    (void)state;
    struct rig r = {0};
    r.w.shape = S_SEQ;
    rig_start(&r, 2, false);
    struct wsink *s = xcalloc(THREADED_STREAMS, sizeof *s);
    for (int i = 0; i < THREADED_STREAMS; i++)
        ws_submit(r.rt, &s[i]);
    struct timespec pause = {0, 100000};
    for (int i = 0; i < 200000 && !all_done(s, THREADED_STREAMS); i++) {
        router_step(r.rt);
        if (fake_net_next_us(r.net) <= atomic_load(&r.clock.us) + 1000)
            atomic_fetch_add(&r.clock.us, 1000); /* the upstream's next piece */
        else
            nanosleep(&pause, NULL); /* only the workers have work: let them */
    }
    for (int i = 0; i < THREADED_STREAMS; i++) {
        assert_int_equal(s[i].fc.dones, 1);
        assert_complete(&s[i], SEQ_EVENTS);
    }
    router_free(r.rt);
    free(s);
}

/* router_stop with streams in flight on real worker threads: each call ends once, after its
 * last event, and the workers are joined (ASan: nothing leaks). */
static void test_stop_joins_real_workers_with_streams_in_flight(void **state)
{
    (void)state;
    struct rig r = {0};
    r.w.shape = S_SEQ;
    rig_start(&r, 2, false);
    struct wsink s[8];
    for (int i = 0; i < 8; i++)
        ws_submit(r.rt, &s[i]);
    for (int i = 0; i < 20; i++) { /* committed, handed over, some bytes queued */
        router_step(r.rt);
        atomic_fetch_add(&r.clock.us, 1000);
    }
    router_stop(r.rt);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(s[i].fc.dones, 1);
        assert_false(s[i].after_done);
        assert_false(s[i].seq_bad);
        assert_int_equal(s[i].fc.result.err, LLM_ERR_CANCELLED);
        assert_int_equal(s[i].log[s[i].n_log - 1], 'D');
    }
    router_free(r.rt);
}

/* Absent workers: none on 1-2 cores (measured: a worker only adds wake-ups there), one per
 * core above; an explicit value wins; never above 16. */
static void test_absent_workers_mean_none_on_two_cores_and_one_per_core_above(void **state)
{
    (void)state;
    assert_int_equal(router_workers_resolve(-1, 1), 0);
    assert_int_equal(router_workers_resolve(-1, 2), 0);
    assert_int_equal(router_workers_resolve(-1, 4), 4);
    assert_int_equal(router_workers_resolve(-1, 64), 16);
    assert_int_equal(router_workers_resolve(2, 2), 2);
    assert_int_equal(router_workers_resolve(0, 8), 0);
}

int main(void)
{
    setenv("FAKE_KEY", "sk-fake-key-for-tests-0000", 1);
    log_setup(LOG_LEVEL_OFF, 2);
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_after_the_commit_events_come_from_the_worker_in_order),
        T(test_workers_zero_keeps_every_event_on_the_router_thread),
        T(test_a_sink_without_any_thread_stays_inline),
        T(test_an_answer_in_one_receive_stays_inline),
        T(test_a_worker_side_error_after_the_commit_ends_the_call_with_its_class),
        T(test_a_stall_after_the_hand_off_is_cut_as_inline),
        T(test_a_cancel_while_bytes_are_queued_delivers_none_of_them),
        T(test_the_queue_cap_pauses_the_transfer_and_the_drain_resumes_it),
        T(test_a_resume_that_overtakes_its_pause_is_not_lost),
        T(test_stop_with_streams_on_workers_ends_each_once),
        T(test_real_worker_threads_keep_every_stream_in_order),
        T(test_stop_joins_real_workers_with_streams_in_flight),
        cmocka_unit_test(test_absent_workers_mean_none_on_two_cores_and_one_per_core_above),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
