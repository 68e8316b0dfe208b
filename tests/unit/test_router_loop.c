/*
 * test_router_loop.c - the router loop itself (call.c, target.c, breaker interplay) driven
 * through router_step with the scripted fake transport and the fake clock of support_fake.c:
 * retries, fallbacks, hedges, deadlines, the commit point, half-open trials, encode refusals
 * and every "nothing can serve" answer, with no sockets and no real time.
 *
 * A watchdog (alarm) turns a router that spins into a failed test instead of a hung one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support_fake.h"
#include "switchboard/log.h"

/* ---- scripted servers ------------------------------------------------------------------------ */

/* What each fake host does: chosen per test by name ("a.fake" -> behaviour of "a"). */
enum behave {
    B_OK = 0,    /* answers at once */
    B_503,       /* 503 at once */
    B_429,       /* 429 with Retry-After: 7 */
    B_HANG,      /* never answers */
    B_SLOW,      /* answers after 300 ms */
    B_CONNECT,   /* connection refused */
    B_REFUSE,    /* the transport cannot even start */
    B_CUT,       /* stream cut after the first event */
    B_STALL,     /* stream stops sending after the first event */
    B_MODELS_OK, /* /models answers 200, chat hangs */
    B_TRICKLE,   /* stream in 16-byte pieces every 10 ms */
};

struct world {
    enum behave b[8];     /* by host letter a..h */
    enum behave probe[8]; /* for GET .../models; B_OK by default */
    long chat_calls[8];
};

static int host_of(const char *url)
{
    const char *p = strstr(url, "://");
    return p && p[3] >= 'a' && p[3] <= 'h' ? p[3] - 'a' : 0;
}

static void plan_for(void *ctx, const struct http_request *req, struct fake_plan *p)
{
    struct world *w = ctx;
    int h = host_of(req->url);
    bool is_probe = strcmp(req->method, "GET") == 0;
    bool stream = req->body && strstr(req->body, "\"stream\":true");
    enum behave b = is_probe ? w->probe[h] : w->b[h];
    if (!is_probe)
        w->chat_calls[h]++;
    char text[32];
    snprintf(text, sizeof text, "from %c", 'a' + h);
    p->status = 200;
    p->body = is_probe ? "{\"object\":\"list\",\"data\":[]}"
                       : (stream ? fake_openai_sse(text) : fake_openai_json(text));
    switch (b) {
    case B_OK:
        break;
    case B_503:
        p->status = 503;
        p->body = "{\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}";
        break;
    case B_429:
        p->status = 429;
        p->headers[0][0] = "retry-after";
        p->headers[0][1] = "7";
        p->body = "{\"error\":{\"message\":\"slow down\",\"type\":\"rate_limit_error\"}}";
        break;
    case B_HANG:
        p->first_byte_ms = -1;
        break;
    case B_SLOW:
        p->first_byte_ms = 300;
        break;
    case B_CONNECT:
        p->fail = LLM_ERR_CONNECT;
        p->fail_after_ms = 1;
        break;
    case B_REFUSE:
        p->refuse = true;
        break;
    case B_CUT:
        p->chunk = 64;
        p->chunk_every_ms = 10;
        p->cut_after = (long)(strstr(p->body, "\n\n") - p->body) + 2;
        break;
    case B_STALL:
        p->chunk = 64;
        p->chunk_every_ms = 10;
        p->stall_after = (long)(strstr(p->body, "\n\n") - p->body) + 2;
        break;
    case B_MODELS_OK:
        if (!is_probe)
            p->first_byte_ms = -1;
        break;
    case B_TRICKLE:
        p->chunk = 16;
        p->chunk_every_ms = 10;
        break;
    }
}

/* ---- configs -----------------------------------------------------------------------------------
 */

static char cfg_buf[8192];

/* kinds: one letter per target: o = openai-compatible, a = anthropic, g = gemini. */
static const char *config_for(const char *kinds, const char *router_extra, const char *route_extra,
                              bool probes)
{
    struct buf b;
    buf_init(&b);
    buf_puts(&b, "{\"providers\":[");
    for (size_t i = 0; kinds[i]; i++) {
        const char *kind = kinds[i] == 'a'   ? "anthropic"
                           : kinds[i] == 'g' ? "gemini"
                                             : "openai-compatible";
        const char *model = kinds[i] == 'a'   ? "claude-x"
                            : kinds[i] == 'g' ? "gemini-2.5-flash"
                                              : "m";
        buf_printf(&b,
                   "%s{\"name\":\"%c\",\"kind\":\"%s\",\"base_url\":\"http://%c.fake/v1\","
                   "\"api_key_env\":\"FAKE_KEY\",\"model\":\"%s\",\"first_byte_timeout_ms\":1000,"
                   "\"probe\":{\"enabled\":%s,\"interval_ms\":5000,\"timeout_ms\":500}}",
                   i ? "," : "", (int)('a' + i), kind, (int)('a' + i), model,
                   probes ? "true" : "false");
    }
    buf_puts(&b, "],\"routes\":[{\"name\":\"chat\",\"strategy\":\"priority\",\"targets\":[");
    for (size_t i = 0; kinds[i]; i++)
        buf_printf(&b, "%s\"%c\"", i ? "," : "", (int)('a' + i));
    buf_printf(&b, "]%s%s}],", route_extra ? "," : "", route_extra ? route_extra : "");
    static const char *const base[][2] = {
        {"max_attempts", "3"},           {"backoff_base_ms", "100"}, {"backoff_cap_ms", "400"},
        {"deadline_ms", "10000"},        {"hedge_after_ms", "0"},    {"breaker_failures", "3"},
        {"breaker_cooldown_ms", "2000"},
    };
    buf_puts(&b, "\"router\":{");
    const char *sep = "";
    for (size_t i = 0; i < SB_ARRAY_LEN(base); i++) {
        char key[64];
        snprintf(key, sizeof key, "\"%s\"", base[i][0]);
        if (router_extra && strstr(router_extra, key))
            continue; /* the test's own value wins */
        buf_printf(&b, "%s%s:%s", sep, key, base[i][1]);
        sep = ",";
    }
    buf_printf(&b, "%s%s},", router_extra ? sep : "", router_extra ? router_extra : "");
    buf_puts(&b, "\"ledger\":{\"path\":\":memory:\"},\"guard\":{\"enabled\":false}}");
    str_copy(cfg_buf, sizeof cfg_buf, buf_str(&b));
    buf_cleanup(&b);
    return cfg_buf;
}

/* ---- harness ------------------------------------------------------------------------------------
 */

struct rig {
    struct fake_clock clock;
    struct fake_net *net;
    struct router *rt;
    struct world w;
};

static void rig_start(struct rig *r, const char *cfg)
{
    fake_clock_init(&r->clock);
    r->rt = fake_router_new(cfg, &r->clock, plan_for, &r->w, &r->net);
}

static void rig_stop(struct rig *r)
{
    router_free(r->rt);
}

static int64_t rig_now(struct rig *r)
{
    return fake_clock_ms(&r->clock);
}

/* Submits one call and drives the loop until it is done (or `for_ms` passed). */
static void rig_call(struct rig *r, struct fake_call *fc, struct llm_request *req, int64_t for_ms)
{
    memset(fc, 0, sizeof *fc);
    struct router_sink sk = fake_call_sink(fc);
    router_submit(r->rt, req, NULL, &sk);
    fake_drive(r->rt, r->net, &r->clock, rig_now(r) + for_ms, fake_call_done, fc);
    if (fc->dones != 1)
        fprintf(stderr, "call not done: events %d errors %d text '%s' started %ld active %zu\n",
                fc->events, fc->errors, fc->text, fake_net_started(r->net, NULL),
                fake_net_active(r->net));
    assert_int_equal(fc->dones, 1);
}

static void rig_idle(struct rig *r, int64_t ms)
{
    fake_drive(r->rt, r->net, &r->clock, rig_now(r) + ms, NULL, NULL);
}

static int setup(void **state)
{
    (void)state;
    fake_watchdog("test_router_loop", 20);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fake_watchdog("test_router_loop", 0);
    return 0;
}

/* A request whose assistant tool call carries arguments that are not a JSON object: the
 * OpenAI wire passes it on, Anthropic and Gemini cannot encode it. */
static struct llm_request *bad_tool_request(void)
{
    struct llm_request *req = fake_request("chat", false);
    struct llm_message *m = llm_request_add_message(req, LLM_ROLE_ASSISTANT, NULL);
    m->tool_calls = xcalloc(2, sizeof *m->tool_calls);
    m->n_tool_calls = 2;
    m->tool_calls[0] = (struct llm_tool_call){xstrdup("c1"), xstrdup("f"), xstrdup("{}")};
    m->tool_calls[1] = (struct llm_tool_call){xstrdup("c2"), xstrdup("f"), xstrdup("[1,2]")};
    struct llm_message *t = llm_request_add_message(req, LLM_ROLE_TOOL, "ok");
    t->tool_call_id = xstrdup("c1");
    struct llm_message *t2 = llm_request_add_message(req, LLM_ROLE_TOOL, "ok");
    t2->tool_call_id = xstrdup("c2");
    return req;
}

/* ---- never spin, never hang ------------------------------------------------------------------ */

static void test_every_encoder_refusing_answers_400_at_once(void **state)
{
    (void)state;
    struct rig r = {0};
    rig_start(&r, config_for("ag", NULL, NULL, false));
    struct fake_call fc;
    rig_call(&r, &fc, bad_tool_request(), 5000);
    assert_int_equal(fc.result.err, LLM_ERR_BAD_REQUEST);
    assert_int_equal(fc.result.attempts, 0);
    assert_non_null(strstr(fc.error, "arguments")); /* the encoder's own reason */
    assert_int_equal(fake_net_started(r.net, NULL), 0);
    assert_false(fc.result.unknown_model); /* the route exists: 400, not 404 */
    struct router_snapshot *s = xcalloc(1, sizeof *s);
    router_snapshot_read(r.rt, s, 0);
    assert_int_equal(s->targets[0].breaker, BREAKER_CLOSED);
    free(s);
    rig_stop(&r);
}

static void test_a_model_no_route_serves_is_unknown(void **state)
{
    (void)state;
    struct rig r = {0};
    rig_start(&r, config_for("ag", NULL, NULL, false));
    struct fake_call fc;
    rig_call(&r, &fc, fake_request("no-such-model", false), 5000);
    assert_int_equal(fc.result.err, LLM_ERR_BAD_REQUEST);
    assert_true(fc.result.unknown_model); /* the gateway and the ledger say 404 */
    assert_int_equal(fc.result.attempts, 0);
    assert_int_equal(fake_net_started(r.net, NULL), 0);
    rig_stop(&r);
}

static void test_one_encoder_refusing_falls_back_to_one_that_can(void **state)
{
    (void)state;
    struct rig r = {0};
    rig_start(&r, config_for("ao", NULL, NULL, false));
    struct fake_call fc;
    rig_call(&r, &fc, bad_tool_request(), 5000);
    assert_int_equal(fc.result.err, LLM_ERR_NONE);
    assert_string_equal(fc.result_target, "b");
    assert_string_equal(fc.text, "from b");
    rig_stop(&r);
}

static void test_transport_refusing_every_start_ends_the_call(void **state)
{
    (void)state;
    struct rig r = {0};
    r.w.b[0] = r.w.b[1] = B_REFUSE;
    rig_start(&r, config_for("oo", NULL, NULL, false));
    struct fake_call fc;
    rig_call(&r, &fc, fake_request("chat", false), 5000);
    assert_int_equal(fc.errors, 1);
    assert_int_not_equal(fc.result.err, LLM_ERR_NONE);
    assert_true(fake_net_started(r.net, NULL) <= 5); /* max_attempts + candidates */
    rig_stop(&r);
}

static enum breaker_state state_of(struct rig *r, int i)
{
    rig_idle(r, 150); /* a tick publishes */
    struct router_snapshot *s = xcalloc(1, sizeof *s);
    router_snapshot_read(r->rt, s, 0);
    enum breaker_state b = s->targets[i].breaker;
    free(s);
    return b;
}

/* Opens a's breaker with three 503s (breaker_failures 3), with b answering meanwhile. */
static void open_breaker_of_a(struct rig *r)
{
    r->w.b[0] = B_503;
    for (int i = 0; i < 3; i++) {
        struct fake_call fc;
        rig_call(r, &fc, fake_request("chat", false), 5000);
        if (fc.result.err != LLM_ERR_NONE)
            fprintf(stderr, "call %d: %s: %s\n", i, llm_errclass_name(fc.result.err), fc.error);
        assert_int_equal(fc.result.err, LLM_ERR_NONE);
    }
    assert_int_equal(state_of(r, 0), BREAKER_OPEN);
}

static void test_half_open_with_three_trials_never_spins(void **state)
{
    (void)state;
    struct rig r = {0};
    rig_start(&r, config_for("oo", "\"breaker_half_open_trials\":3", NULL, false));
    open_breaker_of_a(&r);
    r.w.b[0] = B_SLOW; /* trials take 300 ms: several calls meet a half-open a */
    rig_idle(&r, 2100);
    struct fake_call fc[6];
    for (int i = 0; i < 6; i++) {
        memset(&fc[i], 0, sizeof fc[i]);
        struct router_sink sk = fake_call_sink(&fc[i]);
        router_submit(r.rt, fake_request("chat", false), NULL, &sk);
    }
    rig_idle(&r, 1000);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(fc[i].dones, 1);
        assert_int_equal(fc[i].result.err, LLM_ERR_NONE);
    }
    assert_int_equal(r.w.chat_calls[0], 3 + 3); /* three 503s, then exactly three trials */
    assert_int_equal(state_of(&r, 0), BREAKER_CLOSED);
    rig_stop(&r);
}

/* The spin of issue 10: with 3 trials, one succeeded and two in flight, the old picker thought
 * the target could take a call while the breaker said no, and retried it forever. */
static void test_half_open_with_a_trial_done_and_two_in_flight_never_spins(void **state)
{
    (void)state;
    struct rig r = {0};
    rig_start(&r, config_for("o", "\"breaker_half_open_trials\":3", NULL, false));
    r.w.b[0] = B_503;
    struct fake_call first;
    rig_call(&r, &first, fake_request("chat", false), 5000); /* 3 failures: open */
    assert_int_equal(state_of(&r, 0), BREAKER_OPEN);
    rig_idle(&r, 2100);
    r.w.b[0] = B_OK;
    rig_call(&r, &first, fake_request("chat", false), 1000); /* trial 1 succeeds */
    assert_int_equal(first.result.err, LLM_ERR_NONE);
    r.w.b[0] = B_SLOW;
    struct fake_call fc[3];
    for (int i = 0; i < 3; i++) {
        memset(&fc[i], 0, sizeof fc[i]);
        struct router_sink sk = fake_call_sink(&fc[i]);
        router_submit(r.rt, fake_request("chat", false), NULL, &sk);
        router_step(r.rt); /* trials 2 and 3 go out and take 300 ms; the third call... */
    }
    /* ...finds no slot: it must end (503 with Retry-After-less reason), not spin */
    rig_idle(&r, 1000);
    for (int i = 0; i < 3; i++)
        assert_int_equal(fc[i].dones, 1);
    assert_int_equal(fc[0].result.err, LLM_ERR_NONE);
    assert_int_equal(fc[1].result.err, LLM_ERR_NONE);
    assert_int_equal(fc[2].result.err, LLM_ERR_SERVER);
    assert_true(fc[2].result.no_target);
    assert_int_equal(state_of(&r, 0), BREAKER_CLOSED);
    rig_stop(&r);
}

static void test_half_open_trial_is_released_when_its_launch_fails(void **state)
{
    (void)state;
    struct rig r = {0};
    rig_start(&r, config_for("oo", NULL, NULL, false));
    open_breaker_of_a(&r);
    r.w.b[0] = B_REFUSE;
    rig_idle(&r, 2100);
    struct fake_call fc;
    rig_call(&r, &fc, fake_request("chat", false), 5000); /* a's trial cannot start: b */
    assert_string_equal(fc.result_target, "b");
    r.w.b[0] = B_OK;
    rig_call(&r, &fc, fake_request("chat", false), 5000); /* the slot is free again */
    assert_string_equal(fc.result_target, "a");
    assert_int_equal(state_of(&r, 0), BREAKER_CLOSED);
    rig_stop(&r);
}

/* ---- retries, fallbacks, deadlines, the commit point ----------------------------------------- */

static void test_a_failing_only_target_is_retried_after_backoff(void **state)
{
    (void)state;
    struct rig r = {0};
    r.w.b[0] = B_503;
    rig_start(&r, config_for("o", "\"breaker_failures\":100", NULL, false));
    int64_t t0 = rig_now(&r);
    struct fake_call fc;
    rig_call(&r, &fc, fake_request("chat", false), 5000);
    assert_int_equal(fc.result.err, LLM_ERR_SERVER);
    assert_int_equal(fc.result.attempts, 3);
    assert_int_equal(r.w.chat_calls[0], 3);
    assert_int_equal(fc.result.upstream_status, 503);
    /* two backoffs of at most 100 and 200 ms (full jitter), no more */
    assert_true(rig_now(&r) - t0 <= 300);
    rig_stop(&r);
}

static void test_fallback_follows_priority_order(void **state)
{
    (void)state;
    struct rig r = {0};
    r.w.b[0] = B_CONNECT;
    r.w.b[1] = B_503;
    rig_start(&r, config_for("ooo", NULL, NULL, false));
    struct fake_call fc;
    rig_call(&r, &fc, fake_request("chat", false), 5000);
    assert_int_equal(fc.result.err, LLM_ERR_NONE);
    assert_string_equal(fc.result_target, "c");
    assert_string_equal(fc.text, "from c");
    assert_int_equal(fc.result.attempts, 3);
    assert_int_equal(r.w.chat_calls[0], 1);
    assert_int_equal(r.w.chat_calls[1], 1);
    rig_stop(&r);
}

/* A fallback is filed under the target that failed (its detail view lists its own failures),
 * naming the one that took over in the text. */
static void test_a_fallback_is_filed_under_the_failing_target(void **state)
{
    (void)state;
    struct rig r = {0};
    r.w.b[0] = B_503;
    rig_start(&r, config_for("oo", "\"breaker_failures\":100,\"max_attempts\":2", NULL, false));
    struct fake_call fc;
    rig_call(&r, &fc, fake_request("chat", false), 5000);
    assert_int_equal(fc.result.err, LLM_ERR_NONE);
    assert_string_equal(fc.result_target, "b");
    rig_idle(&r, 150);
    struct router_snapshot *s = xcalloc(1, sizeof *s);
    router_snapshot_read(r.rt, s, 0);
    size_t fallbacks = 0;
    for (size_t i = 0; i < s->n_events; i++) {
        const struct router_event *e = &s->events[i];
        if (e->kind != ROUTER_EV_FALLBACK)
            continue;
        fallbacks++;
        assert_string_equal(e->target, "a");
        assert_non_null(strstr(e->text, "fallback to b"));
    }
    assert_int_equal(fallbacks, 1);
    free(s);
    rig_stop(&r);
}

static void test_the_deadline_ends_a_call_on_time(void **state)
{
    (void)state;
    struct rig r = {0};
    r.w.b[0] = r.w.b[1] = B_HANG;
    rig_start(&r, config_for("oo", "\"deadline_ms\":2500", NULL, false));
    int64_t t0 = rig_now(&r);
    struct fake_call fc;
    rig_call(&r, &fc, fake_request("chat", false), 10000);
    assert_int_equal(fc.result.err, LLM_ERR_TIMEOUT);
    assert_true(rig_now(&r) - t0 <= 2500 + 100);  /* by the deadline, plus one tick */
    assert_true(rig_now(&r) - t0 >= 2500 - 1000); /* first-byte timeouts of 1 s each */
    rig_stop(&r);
}

static void test_after_the_first_byte_a_cut_stream_ends_with_an_error(void **state)
{
    (void)state;
    struct rig r = {0};
    r.w.b[0] = B_CUT;
    rig_start(&r, config_for("oo", NULL, NULL, false));
    struct fake_call fc;
    rig_call(&r, &fc, fake_request("chat", true), 5000);
    assert_int_equal(fc.commits, 1);
    assert_string_equal(fc.committed_to, "a");
    assert_string_equal(fc.text, "from a"); /* nothing of b spliced in */
    assert_int_equal(fc.errors, 1);
    assert_int_equal(fc.result.err, LLM_ERR_TRUNCATED);
    assert_int_equal(r.w.chat_calls[1], 0);
    rig_stop(&r);
}

static void test_a_stalled_stream_is_cut_by_the_idle_timeout(void **state)
{
    (void)state;
    struct rig r = {0};
    r.w.b[0] = B_STALL;
    rig_start(&r, config_for("o", "\"breaker_failures\":1,\"deadline_ms\":200000", NULL, false));
    /* stream_idle_timeout_ms defaults to 60 s; the total timeout is 300 s */
    int64_t t0 = rig_now(&r);
    struct fake_call fc;
    rig_call(&r, &fc, fake_request("chat", true), 120000);
    assert_string_equal(fc.text, "from a");
    assert_int_equal(fc.errors, 1);
    assert_int_equal(fc.result.err, LLM_ERR_TRUNCATED);
    assert_non_null(strstr(fc.error, "stalled"));
    assert_true(rig_now(&r) - t0 >= 60000 && rig_now(&r) - t0 <= 61000);
    assert_int_equal(state_of(&r, 0), BREAKER_OPEN); /* a strike */
    rig_stop(&r);
}

/* ---- a sink that is behind (slow readers) -----------------------------------------------------
 */

/* Wraps the recording sink: answers ROUTER_SINK_PAUSE while `pause` is set. */
struct pausing {
    struct fake_call fc;
    struct router_sink inner;
    bool pause;
    uint64_t id;
    int held;      /* on_held calls */
    int done_held; /* on_held calls seen when on_done came */
};

static void pausing_commit(void *ctx, const struct router_commit *c)
{
    struct pausing *p = ctx;
    p->inner.on_commit(p->inner.ctx, c);
}

static int pausing_event(void *ctx, const struct llm_event *ev)
{
    struct pausing *p = ctx;
    int v = p->inner.on_event(p->inner.ctx, ev);
    return v == 0 && p->pause ? ROUTER_SINK_PAUSE : v;
}

static void pausing_done(void *ctx, const struct router_result *r)
{
    struct pausing *p = ctx;
    p->done_held = p->held;
    p->inner.on_done(p->inner.ctx, r);
}

static void pausing_held(void *ctx)
{
    struct pausing *p = ctx;
    p->held++;
}

static void pausing_submit(struct rig *r, struct pausing *p)
{
    memset(p, 0, sizeof *p);
    p->pause = true;
    p->inner = fake_call_sink(&p->fc);
    struct router_sink sk = {pausing_commit, pausing_event, pausing_done, p, pausing_held, false};
    p->id = router_submit(r->rt, fake_request("chat", true), NULL, &sk);
}

static void test_a_paused_sink_stops_the_upstream_until_resumed(void **state)
{
    (void)state;
    struct rig r = {0};
    r.w.b[0] = B_TRICKLE;
    rig_start(&r, config_for("o", "\"breaker_failures\":1,\"deadline_ms\":200000", NULL, false));
    struct pausing p;
    pausing_submit(&r, &p);
    /* Longer than stream_idle_timeout_ms (60 s): a paused upstream is not a stalled one. */
    rig_idle(&r, 90000);
    assert_int_equal(p.fc.dones, 0);
    assert_int_equal(p.fc.commits, 1);
    assert_int_equal(fake_net_pauses(r.net), 1);
    assert_int_equal(p.fc.finishes, 0); /* the rest of the stream waits upstream */
    assert_string_equal(p.fc.text, "from a");
    assert_int_equal(state_of(&r, 0), BREAKER_CLOSED);
    p.pause = false;
    router_resume(r.rt, p.id);
    fake_drive(r.rt, r.net, &r.clock, rig_now(&r) + 5000, fake_call_done, &p.fc);
    assert_int_equal(p.fc.dones, 1);
    assert_int_equal(p.fc.result.err, LLM_ERR_NONE);
    assert_int_equal(p.fc.finishes, 1);
    assert_string_equal(p.fc.text, "from a more"); /* nothing lost or repeated */
    assert_int_equal(fake_net_resumes(r.net), 1);
    rig_stop(&r);
}

static void test_a_call_whose_sink_is_behind_ends_only_once_it_has_drained(void **state)
{
    (void)state;
    struct rig r = {0};
    rig_start(&r, config_for("o", NULL, NULL, false));
    struct pausing p, q;
    pausing_submit(&r, &p); /* the whole answer arrives at once: the end is held */
    rig_idle(&r, 1000);
    assert_int_equal(p.fc.finishes, 1);
    assert_int_equal(p.fc.dones, 0);
    router_resume(r.rt, p.id);
    fake_drive(r.rt, r.net, &r.clock, rig_now(&r) + 1000, fake_call_done, &p.fc);
    assert_int_equal(p.fc.dones, 1);
    assert_int_equal(p.fc.result.err, LLM_ERR_NONE);
    assert_string_equal(p.fc.result_target, "a");
    /* A client that leaves instead: the call is cancelled, not a success. */
    pausing_submit(&r, &q);
    rig_idle(&r, 1000);
    assert_int_equal(q.fc.dones, 0);
    router_cancel(r.rt, q.id);
    fake_drive(r.rt, r.net, &r.clock, rig_now(&r) + 1000, fake_call_done, &q.fc);
    assert_int_equal(q.fc.dones, 1);
    assert_int_equal(q.fc.result.err, LLM_ERR_CANCELLED);
    assert_int_equal(q.fc.finishes, 1);
    assert_int_equal(q.fc.errors, 0); /* no second terminal event after its FINISH */
    rig_stop(&r);
}

/* on_held says when only the call's end waits for the client (the upstream has ended), and
 * then a resume that does not wake the router ends the call at its next turn. While bytes are
 * still held upstream there is no on_held: that resume must wake the router (the transfer
 * holds its connection until then). */
static void test_a_held_end_is_announced_and_a_lazy_resume_ends_it(void **state)
{
    (void)state;
    struct rig r = {0};
    r.w.b[0] = B_TRICKLE;
    rig_start(&r, config_for("o", "\"breaker_failures\":1,\"deadline_ms\":200000", NULL, false));
    struct pausing p, q;
    pausing_submit(&r, &p); /* paused with the rest of the stream still upstream */
    rig_idle(&r, 1000);
    assert_int_equal(fake_net_pauses(r.net), 1);
    assert_int_equal(p.held, 0);
    p.pause = false;
    router_resume(r.rt, p.id);
    fake_drive(r.rt, r.net, &r.clock, rig_now(&r) + 5000, fake_call_done, &p.fc);
    assert_int_equal(p.fc.dones, 1);
    assert_int_equal(p.held, 0);
    rig_stop(&r);

    struct rig s = {0};
    rig_start(&s, config_for("o", NULL, NULL, false));
    pausing_submit(&s, &q); /* the whole answer arrives at once: the end is held */
    rig_idle(&s, 1000);
    assert_int_equal(q.fc.finishes, 1);
    assert_int_equal(q.held, 1);
    assert_int_equal(q.fc.dones, 0);
    long wakeups = fake_net_wakeups(s.net);
    router_resume_lazy(s.rt, q.id);
    assert_int_equal(fake_net_wakeups(s.net), wakeups);
    fake_drive(s.rt, s.net, &s.clock, rig_now(&s) + 1000, fake_call_done, &q.fc);
    assert_int_equal(q.fc.dones, 1);
    assert_int_equal(q.done_held, 1); /* before on_done */
    assert_int_equal(q.fc.result.err, LLM_ERR_NONE);
    assert_string_equal(q.fc.result_target, "a");
    rig_stop(&s);
}

/* ---- turns: what a sink defers is flushed at the end of each turn ---------------------------
 */

#define BATCH_CALLS 8

/* A turn hook and sinks that count their wake-ups like the gateway's (gw_turn, gw_resume):
 * inside BEGIN..END a commit or event is deferred, END flushes what was deferred. */
struct batcher {
    bool in_turn;
    int begins, ends, nested;
    int deferred; /* waiting for the turn's end */
    int flushed;  /* done at a turn's end */
    int outside;  /* commits and events seen outside any turn (would be resumed at once) */
    int flushes;  /* turn ends that had something to flush */
};

struct batch_slot {
    struct batcher *b;
    struct fake_call fc;
    struct router_sink inner;
};

static void batch_turn(void *ctx, enum router_turn turn)
{
    struct batcher *b = ctx;
    switch (turn) {
    case ROUTER_TURN_BEGIN:
        b->nested += b->in_turn;
        b->in_turn = true;
        b->begins++;
        break;
    case ROUTER_TURN_END:
        b->nested += !b->in_turn;
        b->flushes += b->deferred > 0;
        b->flushed += b->deferred;
        b->deferred = 0;
        b->in_turn = false;
        b->ends++;
        break;
    }
}

static void batch_push(struct batcher *b)
{
    if (b->in_turn)
        b->deferred++;
    else
        b->outside++;
}

static void batch_commit(void *ctx, const struct router_commit *c)
{
    struct batch_slot *s = ctx;
    batch_push(s->b);
    s->inner.on_commit(s->inner.ctx, c);
}

static int batch_event(void *ctx, const struct llm_event *ev)
{
    struct batch_slot *s = ctx;
    batch_push(s->b);
    return s->inner.on_event(s->inner.ctx, ev);
}

static void batch_done(void *ctx, const struct router_result *r)
{
    struct batch_slot *s = ctx;
    s->inner.on_done(s->inner.ctx, r);
}

static bool batch_all_done(void *ctx)
{
    struct batch_slot *slots = ctx;
    for (int i = 0; i < BATCH_CALLS; i++) {
        if (slots[i].fc.dones != 1)
            return false;
    }
    return true;
}

/* Eight streams whose answers arrive together: every commit and event is made inside a turn,
 * their wake-ups are flushed together (far fewer flushes than wake-ups: the first answer's,
 * router_answer_now, and the turn's end), and nothing is left deferred when a turn ends. */
static void test_sink_work_of_one_turn_is_flushed_once_at_its_end(void **state)
{
    (void)state;
    struct rig r = {0};
    struct batcher b = {0};
    struct batch_slot slots[BATCH_CALLS];
    rig_start(&r, config_for("o", NULL, NULL, false));
    router_set_turn_hook(r.rt, batch_turn, &b);
    for (int i = 0; i < BATCH_CALLS; i++) {
        memset(&slots[i], 0, sizeof slots[i]);
        slots[i].b = &b;
        slots[i].inner = fake_call_sink(&slots[i].fc);
        struct router_sink sk = {batch_commit, batch_event, batch_done, &slots[i], NULL, false};
        router_submit(r.rt, fake_request("chat", true), NULL, &sk);
    }
    fake_drive(r.rt, r.net, &r.clock, rig_now(&r) + 5000, batch_all_done, slots);
    int pushes = 0;
    for (int i = 0; i < BATCH_CALLS; i++) {
        assert_int_equal(slots[i].fc.dones, 1);
        assert_int_equal(slots[i].fc.result.err, LLM_ERR_NONE);
        assert_string_equal(slots[i].fc.text, "from a more");
        pushes += slots[i].fc.commits + slots[i].fc.events;
    }
    assert_int_equal(b.outside, 0);
    assert_int_equal(b.nested, 0);
    assert_false(b.in_turn);
    assert_int_equal(b.deferred, 0);
    assert_int_equal(b.begins, b.ends);
    assert_int_equal(b.flushed, pushes);
    assert_true(pushes >= 4 * BATCH_CALLS);
    /* the eight answers arrive in one transport run: the first answer's flush
     * (router_answer_now), then the turn's end with the other seven */
    assert_int_equal(b.flushes, 2);
    rig_stop(&r);
}

/* ---- the answer before the bookkeeping; a post from the loop itself ---- */

/* The fake transport, with its run marked: which loop hook runs happen inside it. */
static _Thread_local bool in_transport_run;

static size_t marked_run(void *self, int max_wait_ms)
{
    in_transport_run = true;
    size_t n = fake_transport_ops.run(self, max_wait_ms);
    in_transport_run = false;
    return n;
}

struct answer_probe {
    struct fake_call fc;
    struct router *rt;
    int runs;              /* loop hook runs */
    int runs_after_done;   /* of which after the sink's on_done */
    bool first_inside;     /* the first of those ran inside the transport's run */
    bool submit_from_hook; /* the first run submits probe->fc's call */
};

static void probe_run(void *ctx)
{
    struct answer_probe *p = ctx;
    p->runs++;
    if (p->fc.dones == 1 && p->runs_after_done++ == 0)
        p->first_inside = in_transport_run;
    if (p->submit_from_hook) {
        p->submit_from_hook = false;
        struct router_sink sk = fake_call_sink(&p->fc);
        router_submit(p->rt, fake_request("chat", false), NULL, &sk);
    }
}

static struct router *marked_router(struct rig *r, const char *cfg_json, struct transport_ops *ops)
{
    *ops = fake_transport_ops;
    ops->run = marked_run;
    fake_clock_init(&r->clock);
    struct config_diag errs;
    config_diag_init(&errs);
    struct config *cfg = config_parse(cfg_json, strlen(cfg_json), NULL, NULL, NULL, &errs);
    assert_non_null(cfg);
    config_diag_cleanup(&errs);
    r->net = fake_net_new(&r->clock, plan_for, &r->w);
    struct router_env env = {ops, r->net, fake_clock_router(&r->clock), true};
    char msg[256];
    r->rt = router_new_env(cfg, &env, msg, sizeof msg);
    assert_non_null(r->rt);
    return r->rt;
}

static void attach_probe(struct rig *r, struct answer_probe *p)
{
    p->rt = r->rt;
    struct router_loop_hook h = {5, probe_run, NULL, p};
    char msg[256];
    assert_int_equal(router_set_loop_hook(r->rt, &h, 1000, msg, sizeof msg), SB_OK);
}

/* A JSON answer is handed to the loop's HTTP server (the loop hook runs) inside the
 * transport's run that ended it: before the transfer's end is done with and the call's
 * bookkeeping (ledger row, accounting), which still happen: the statistics count it. */
static void test_an_answer_goes_out_before_its_bookkeeping(void **state)
{
    (void)state;
    struct rig r = {0};
    struct transport_ops ops;
    struct answer_probe p = {0};
    marked_router(&r, config_for("o", NULL, NULL, false), &ops);
    struct batcher b = {0};
    router_set_turn_hook(r.rt, batch_turn, &b);
    attach_probe(&r, &p);
    struct router_sink sk = fake_call_sink(&p.fc);
    router_submit(r.rt, fake_request("chat", false), NULL, &sk);
    fake_drive(r.rt, r.net, &r.clock, rig_now(&r) + 5000, fake_call_done, &p.fc);
    assert_int_equal(p.fc.dones, 1);
    assert_int_equal(p.fc.result.err, LLM_ERR_NONE);
    assert_string_equal(p.fc.text, "from a");
    assert_true(p.first_inside);
    assert_int_equal(b.nested, 0); /* the flush is an END and a new BEGIN, never nested */
    rig_idle(&r, 150);             /* a tick publishes */
    struct router_snapshot *s = xcalloc(1, sizeof *s);
    router_snapshot_read(r.rt, s, 0);
    assert_int_equal(s->calls, 1);
    assert_int_equal(s->successes, 1);
    assert_int_equal(s->in_flight, 0);
    assert_int_equal(s->gateway_calls, 1);
    free(s);
    assert_int_equal(router_set_loop_hook(r.rt, NULL, 1000, NULL, 0), SB_OK);
    rig_stop(&r);
}

/* A call the loop hook submits (the listener on the loop) starts in the same router_step,
 * before the transport's wait, and posting it wakes nothing. */
static void test_a_submit_from_the_loop_starts_in_the_same_turn(void **state)
{
    (void)state;
    struct rig r = {0};
    struct answer_probe p = {.submit_from_hook = true};
    rig_start(&r, config_for("o", NULL, NULL, false));
    attach_probe(&r, &p);
    long wakeups = fake_net_wakeups(r.net);
    router_step(r.rt);
    assert_false(p.submit_from_hook);
    assert_int_equal(fake_net_started(r.net, NULL), 1);
    assert_int_equal(fake_net_wakeups(r.net), wakeups);
    fake_drive(r.rt, r.net, &r.clock, rig_now(&r) + 5000, fake_call_done, &p.fc);
    assert_int_equal(p.fc.result.err, LLM_ERR_NONE);
    assert_int_equal(router_set_loop_hook(r.rt, NULL, 1000, NULL, 0), SB_OK);
    rig_stop(&r);
}

/* The calls a stop cancels are ended inside a turn too, and flushed before router_stop
 * returns. */
static void test_calls_ended_by_a_stop_are_flushed(void **state)
{
    (void)state;
    struct rig r = {0};
    struct batcher b = {0};
    struct batch_slot s = {.b = &b};
    r.w.b[0] = B_TRICKLE;
    rig_start(&r, config_for("o", "\"deadline_ms\":200000", NULL, false));
    router_set_turn_hook(r.rt, batch_turn, &b);
    s.inner = fake_call_sink(&s.fc);
    struct router_sink sk = {batch_commit, batch_event, batch_done, &s, NULL, false};
    router_submit(r.rt, fake_request("chat", true), NULL, &sk);
    rig_idle(&r, 150);
    assert_int_equal(s.fc.commits, 1);
    assert_int_equal(s.fc.dones, 0);
    router_stop(r.rt);
    assert_int_equal(s.fc.dones, 1);
    assert_int_equal(b.outside, 0);
    assert_false(b.in_turn);
    assert_int_equal(b.deferred, 0);
    assert_int_equal(b.flushed, s.fc.commits + s.fc.events);
    rig_stop(&r);
}

/* ---- hedges -----------------------------------------------------------------------------------
 */

static void test_a_hedge_wins_over_a_slow_target(void **state)
{
    (void)state;
    struct rig r = {0};
    r.w.b[0] = B_SLOW;
    rig_start(&r, config_for("oo", "\"hedge_after_ms\":100", NULL, false));
    int64_t t0 = rig_now(&r);
    struct fake_call fc;
    rig_call(&r, &fc, fake_request("chat", false), 5000);
    assert_int_equal(fc.result.err, LLM_ERR_NONE);
    assert_string_equal(fc.result_target, "b");
    assert_int_equal(fc.result.hedges, 1);
    assert_true(rig_now(&r) - t0 < 300);
    rig_stop(&r);
}

static void test_a_hang_behind_a_hedge_is_ejected_by_slow_strikes(void **state)
{
    (void)state;
    struct rig r = {0};
    r.w.b[0] = B_HANG;
    rig_start(&r,
              config_for("oo", "\"hedge_after_ms\":200,\"breaker_slow_strikes\":3", NULL, false));
    for (int i = 0; i < 3; i++) {
        struct fake_call fc;
        rig_call(&r, &fc, fake_request("chat", false), 5000);
        assert_string_equal(fc.result_target, "b");
        rig_idle(&r, 10); /* the losers' cancels report */
    }
    assert_int_equal(state_of(&r, 0), BREAKER_OPEN);
    struct router_snapshot *s = xcalloc(1, sizeof *s);
    router_snapshot_read(r.rt, s, 0);
    assert_non_null(strstr(s->targets[0].breaker_reason, "slow: no first byte"));
    free(s);
    /* from now on calls go straight to b: no hedge delay */
    int64_t t0 = rig_now(&r);
    struct fake_call fc;
    rig_call(&r, &fc, fake_request("chat", false), 5000);
    assert_string_equal(fc.result_target, "b");
    assert_int_equal(fc.result.hedges, 0);
    assert_true(rig_now(&r) - t0 < 50);
    rig_stop(&r);
}

static void test_a_hedge_that_loses_is_not_a_strike(void **state)
{
    (void)state;
    struct rig r = {0};
    r.w.b[0] = B_SLOW; /* 300 ms */
    r.w.b[1] = B_HANG;
    rig_start(&r,
              config_for("oo", "\"hedge_after_ms\":200,\"breaker_slow_strikes\":1", NULL, false));
    struct fake_call fc;
    rig_call(&r, &fc, fake_request("chat", false), 5000);
    assert_string_equal(fc.result_target, "a"); /* the first attempt won after 300 ms */
    rig_idle(&r, 10);
    assert_int_equal(state_of(&r, 1), BREAKER_CLOSED); /* b waited only 100 ms */
    rig_stop(&r);
}

/* ---- what clients get when nothing can serve ------------------------------------------------ */

static void test_a_route_whose_targets_all_cool_down_answers_429_with_retry_after(void **state)
{
    (void)state;
    struct rig r = {0};
    r.w.b[0] = B_429;
    rig_start(&r, config_for("o", NULL, NULL, false));
    struct fake_call fc;
    rig_call(&r, &fc, fake_request("chat", false), 5000);
    assert_int_equal(fc.result.err, LLM_ERR_RATE_LIMIT);
    assert_int_equal(fc.result.upstream_status, 429);
    assert_true(fc.result.retry_after_ms > 6000 && fc.result.retry_after_ms <= 7000);
    /* the next client, 2 s later: no upstream call, 429 with the time left */
    rig_idle(&r, 2000);
    long before = r.w.chat_calls[0];
    rig_call(&r, &fc, fake_request("chat", false), 5000);
    assert_int_equal(fc.result.err, LLM_ERR_RATE_LIMIT);
    assert_true(fc.result.no_target);
    assert_true(fc.result.retry_after_ms > 4000 && fc.result.retry_after_ms <= 5000);
    assert_int_equal(r.w.chat_calls[0], before);
    rig_stop(&r);
}

/* A then answers OK: the 429'd call waits out a's Retry-After instead of failing. */
static void flip_to_ok(void *ctx, const struct http_request *req, struct fake_plan *p)
{
    struct world *w = ctx;
    plan_for(ctx, req, p);
    if (w->chat_calls[0] == 1)
        w->b[0] = B_OK; /* from the second call on */
}

static void test_a_call_waits_within_queue_ms_for_a_rate_limited_target(void **state)
{
    (void)state;
    struct rig r = {0};
    r.w.b[0] = B_429;
    fake_clock_init(&r.clock);
    r.rt = fake_router_new(config_for("o", NULL, "\"queue_ms\":8000", false), &r.clock, flip_to_ok,
                           &r.w, &r.net);
    int64_t t0 = rig_now(&r);
    struct fake_call fc;
    rig_call(&r, &fc, fake_request("chat", false), 20000);
    assert_int_equal(fc.result.err, LLM_ERR_NONE);
    assert_int_equal(r.w.chat_calls[0], 2);
    assert_true(rig_now(&r) - t0 >= 7000 && rig_now(&r) - t0 <= 7200); /* Retry-After: 7 */
    rig_stop(&r);
}

static void test_a_call_that_cannot_wait_long_enough_gets_429(void **state)
{
    (void)state;
    struct rig r = {0};
    r.w.b[0] = B_429;
    rig_start(&r, config_for("o", NULL, "\"queue_ms\":3000", false));
    struct fake_call fc;
    rig_call(&r, &fc, fake_request("chat", false), 20000);
    assert_int_equal(fc.result.err, LLM_ERR_RATE_LIMIT);
    assert_int_equal(r.w.chat_calls[0], 1);
    assert_true(fc.result.retry_after_ms > 6000 && fc.result.retry_after_ms <= 7000);
    rig_stop(&r);
}

static void test_a_route_whose_breakers_are_all_open_answers_503_with_retry_after(void **state)
{
    (void)state;
    struct rig r = {0};
    r.w.b[0] = B_503;
    rig_start(&r, config_for("o", "\"breaker_failures\":1,\"max_attempts\":1", NULL, false));
    struct fake_call fc;
    rig_call(&r, &fc, fake_request("chat", false), 5000);
    assert_int_equal(fc.result.err, LLM_ERR_SERVER);
    rig_idle(&r, 500);
    rig_call(&r, &fc, fake_request("chat", false), 5000);
    assert_int_equal(fc.result.err, LLM_ERR_SERVER);
    assert_true(fc.result.no_target);
    assert_true(fc.result.retry_after_ms > 1000 && fc.result.retry_after_ms <= 1500);
    assert_non_null(strstr(fc.error, "breaker open"));
    rig_stop(&r);
}

/* ---- probes -----------------------------------------------------------------------------------
 */

static void test_a_passing_list_probe_never_closes_a_breaker_real_calls_opened(void **state)
{
    (void)state;
    struct rig r = {0};
    rig_start(&r, config_for("oo", NULL, NULL, true));
    r.w.b[0] = B_503;
    open_breaker_of_a(&r);
    r.w.b[0] = B_MODELS_OK; /* /models answers, chat hangs */
    rig_idle(&r, 6000);     /* a probe passes: cooldown ends early, half-open */
    for (int i = 0; i < 3; i++) {
        struct fake_call fc;
        rig_call(&r, &fc, fake_request("chat", false), 5000);
        assert_string_equal(fc.result_target, "b");
        assert_int_not_equal(state_of(&r, 0), BREAKER_CLOSED);
        rig_idle(&r, 5000); /* more probes pass */
    }
    rig_stop(&r);
}

static void test_a_probe_answered_429_rests_the_target_without_a_strike(void **state)
{
    (void)state;
    struct rig r = {0};
    r.w.probe[0] = B_429;
    rig_start(&r, config_for("oo", "\"breaker_failures\":1", NULL, true));
    for (int i = 0; i < 100 && fake_net_started(r.net, "a.fake/v1/models") == 0; i++)
        rig_idle(&r, 100);
    assert_int_equal(fake_net_started(r.net, "a.fake/v1/models"), 1);
    assert_int_equal(state_of(&r, 0), BREAKER_CLOSED);
    struct fake_call fc;
    rig_call(&r, &fc, fake_request("chat", false), 5000);
    assert_string_equal(fc.result_target, "b"); /* a rests for its Retry-After */
    long probes = fake_net_started(r.net, "a.fake/v1/models");
    rig_idle(&r, 5000);
    assert_int_equal(fake_net_started(r.net, "a.fake/v1/models"), probes); /* not while resting */
    rig_stop(&r);
}

/* The transport's message already names its class ("connect: ..."); the probe's error says
 * it once, as the console's P result and the detail view show it. */
static void test_a_failed_probe_names_its_error_class_once(void **state)
{
    (void)state;
    struct rig r = {0};
    r.w.probe[0] = B_CONNECT;
    rig_start(&r, config_for("oo", "\"breaker_failures\":1", NULL, true));
    for (int i = 0; i < 100 && fake_net_started(r.net, "a.fake/v1/models") == 0; i++)
        rig_idle(&r, 100);
    rig_idle(&r, 150);
    struct router_snapshot *s = xcalloc(1, sizeof *s);
    router_snapshot_read(r.rt, s, 0);
    assert_string_equal(s->targets[0].probe_error, "connect: fake transport failure");
    free(s);
    rig_stop(&r);
}

static void test_a_chat_probe_can_close_a_breaker_and_is_probe_spend(void **state)
{
    (void)state;
    struct rig r = {0};
    const char *cfg =
        "{\"providers\":["
        "{\"name\":\"a\",\"kind\":\"openai-compatible\",\"base_url\":\"http://a.fake/v1\","
        "\"api_key_env\":\"FAKE_KEY\",\"model\":\"m\",\"first_byte_timeout_ms\":1000,"
        "\"price\":{\"input_per_mtok\":1e6,\"output_per_mtok\":1e6},"
        "\"probe\":{\"kind\":\"chat\",\"interval_ms\":5000,\"timeout_ms\":500}},"
        "{\"name\":\"b\",\"kind\":\"openai-compatible\",\"base_url\":\"http://b.fake/v1\","
        "\"model\":\"m\",\"probe\":{\"enabled\":false}}],"
        "\"routes\":[{\"name\":\"chat\",\"strategy\":\"priority\",\"targets\":[\"a\",\"b\"]}],"
        "\"router\":{\"breaker_failures\":3,\"breaker_cooldown_ms\":2000,\"backoff_base_ms\":10},"
        "\"ledger\":{\"path\":\":memory:\"},\"guard\":{\"enabled\":false}}";
    rig_start(&r, cfg);
    r.w.b[0] = B_503;
    r.w.probe[0] = B_503;
    open_breaker_of_a(&r);
    r.w.b[0] = B_OK; /* healthy again: a chat probe after the cooldown closes it */
    rig_idle(&r, 7000);
    assert_int_equal(state_of(&r, 0), BREAKER_CLOSED);
    struct router_snapshot *s = xcalloc(1, sizeof *s);
    router_snapshot_read(r.rt, s, 0);
    assert_non_null(strstr(s->targets[0].breaker_reason, "chat probe succeeded"));
    assert_true(s->targets[0].probe_spend_usd > 0);
    free(s);
    rig_stop(&r);
}

/* ---- stopping ---------------------------------------------------------------------------------
 */

/* serve's drain: in-flight calls run on; the ones still running at the drain timeout are
 * cancelled as a shutdown (their clients are told so), never as "the client went away". */
static void test_drain_lets_calls_finish_then_cancels_the_rest_as_a_shutdown(void **state)
{
    (void)state;
    struct rig r = {0};
    r.w.b[0] = B_SLOW; /* answers after 300 ms */
    r.w.b[1] = B_HANG;
    rig_start(&r, config_for("oo", "\"deadline_ms\":60000", NULL, false));
    struct fake_call quick, stuck;
    memset(&quick, 0, sizeof quick);
    memset(&stuck, 0, sizeof stuck);
    struct router_sink sq = fake_call_sink(&quick);
    router_submit(r.rt, fake_request("chat", true), NULL, &sq);
    router_step(r.rt);
    r.w.b[0] = B_HANG; /* the next call hangs on a, then b */
    struct router_sink ss = fake_call_sink(&stuck);
    uint64_t stuck_id = router_submit(r.rt, fake_request("chat", true), NULL, &ss);
    router_step(r.rt);
    rig_idle(&r, 500); /* the drain window: the first call finishes on its own */
    assert_int_equal(quick.dones, 1);
    assert_int_equal(quick.result.err, LLM_ERR_NONE);
    assert_int_equal(stuck.dones, 0);
    router_cancel_shutdown(r.rt, stuck_id); /* the drain timeout */
    rig_idle(&r, 10);
    assert_int_equal(stuck.dones, 1);
    assert_int_equal(stuck.errors, 1);
    assert_int_equal(stuck.result.err, LLM_ERR_CANCELLED);
    assert_non_null(strstr(stuck.error, "shutting down"));
    rig_stop(&r);
}

/* router_stop ends every call still running, each exactly once. */
static void test_stop_ends_every_call_once(void **state)
{
    (void)state;
    struct rig r = {0};
    r.w.b[0] = r.w.b[1] = B_HANG;
    rig_start(&r, config_for("oo", NULL, NULL, false));
    struct fake_call fc[4];
    for (int i = 0; i < 4; i++) {
        memset(&fc[i], 0, sizeof fc[i]);
        struct router_sink sk = fake_call_sink(&fc[i]);
        router_submit(r.rt, fake_request("chat", i % 2 == 0), NULL, &sk);
    }
    rig_idle(&r, 100);
    router_stop(r.rt);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(fc[i].dones, 1);
        assert_int_equal(fc[i].errors, 1);
        assert_non_null(strstr(fc[i].error, "shutting down"));
    }
    rig_stop(&r);
}

/* The id index holds every live call through its growth (64, 128, 256 buckets): cancels in a
 * scattered order each end their own call once, and the survivors still end normally. */
static void test_cancels_find_their_call_among_hundreds(void **state)
{
    (void)state;
    enum { N = 300 };
    struct rig r = {0};
    r.w.b[0] = B_HANG;
    rig_start(&r, config_for("o", "\"deadline_ms\":600000", NULL, false));
    struct fake_call *fc = calloc(N, sizeof *fc);
    uint64_t *ids = calloc(N, sizeof *ids);
    for (int i = 0; i < N; i++) {
        struct router_sink sk = fake_call_sink(&fc[i]);
        ids[i] = router_submit(r.rt, fake_request("chat", i % 2 == 0), NULL, &sk);
    }
    rig_idle(&r, 100);
    for (int k = 0; k < N; k++) { /* 7 is coprime with 300: every call once, scattered */
        int i = (k * 7) % N;
        if (i % 3 != 0)
            router_cancel(r.rt, ids[i]);
    }
    rig_idle(&r, 100);
    for (int i = 0; i < N; i++) {
        assert_int_equal(fc[i].dones, i % 3 != 0 ? 1 : 0);
        if (i % 3 != 0)
            assert_int_equal(fc[i].result.err, LLM_ERR_CANCELLED);
    }
    router_cancel(r.rt, ids[N - 1] + 1000); /* an unknown id: nothing happens */
    router_stop(r.rt);
    for (int i = 0; i < N; i++)
        assert_int_equal(fc[i].dones, 1);
    free(fc);
    free(ids);
    rig_stop(&r);
}

/* The loop hook's run learns whether its fd was waited on: not after the inbox's stretch of
 * a turn (no transport run), yes after the transport's run and inside it (an answer's
 * flush). */
static void waited_run(void *ctx)
{
    struct answer_probe *p = ctx;
    p->runs += router_loop_hook_waited(p->rt);
    p->runs_after_done += !router_loop_hook_waited(p->rt);
}

static void test_the_loop_hook_knows_whether_its_fd_was_waited_on(void **state)
{
    (void)state;
    struct rig r = {0};
    struct answer_probe p = {0};
    rig_start(&r, config_for("o", NULL, NULL, false));
    p.rt = r.rt;
    struct router_loop_hook h = {5, waited_run, NULL, &p};
    char msg[256];
    assert_int_equal(router_set_loop_hook(r.rt, &h, 1000, msg, sizeof msg), SB_OK);
    router_step(r.rt);
    router_step(r.rt);
    assert_int_equal(p.runs, 2);                /* after each transport run */
    assert_int_equal(p.runs_after_done, 2);     /* after each inbox stretch */
    assert_true(router_loop_hook_waited(r.rt)); /* outside a run */
    assert_int_equal(router_set_loop_hook(r.rt, NULL, 1000, NULL, 0), SB_OK);
    rig_stop(&r);
}

int main(void)
{
    setenv("FAKE_KEY", "sk-fake-key-for-tests-0000", 1);
    log_setup(LOG_LEVEL_OFF, 2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_encoder_refusing_answers_400_at_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cancels_find_their_call_among_hundreds, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_model_no_route_serves_is_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_encoder_refusing_falls_back_to_one_that_can, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_transport_refusing_every_start_ends_the_call, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_half_open_with_three_trials_never_spins, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_half_open_trial_is_released_when_its_launch_fails,
                                        setup, teardown),
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_half_open_with_a_trial_done_and_two_in_flight_never_spins),
        T(test_a_failing_only_target_is_retried_after_backoff),
        T(test_fallback_follows_priority_order),
        T(test_a_fallback_is_filed_under_the_failing_target),
        T(test_the_deadline_ends_a_call_on_time),
        T(test_after_the_first_byte_a_cut_stream_ends_with_an_error),
        T(test_a_stalled_stream_is_cut_by_the_idle_timeout),
        T(test_a_paused_sink_stops_the_upstream_until_resumed),
        T(test_a_call_whose_sink_is_behind_ends_only_once_it_has_drained),
        T(test_a_held_end_is_announced_and_a_lazy_resume_ends_it),
        T(test_sink_work_of_one_turn_is_flushed_once_at_its_end),
        T(test_an_answer_goes_out_before_its_bookkeeping),
        T(test_a_submit_from_the_loop_starts_in_the_same_turn),
        T(test_the_loop_hook_knows_whether_its_fd_was_waited_on),
        T(test_calls_ended_by_a_stop_are_flushed),
        T(test_drain_lets_calls_finish_then_cancels_the_rest_as_a_shutdown),
        T(test_stop_ends_every_call_once),
        T(test_a_hedge_wins_over_a_slow_target),
        T(test_a_hang_behind_a_hedge_is_ejected_by_slow_strikes),
        T(test_a_hedge_that_loses_is_not_a_strike),
        T(test_a_route_whose_targets_all_cool_down_answers_429_with_retry_after),
        T(test_a_call_waits_within_queue_ms_for_a_rate_limited_target),
        T(test_a_call_that_cannot_wait_long_enough_gets_429),
        T(test_a_route_whose_breakers_are_all_open_answers_503_with_retry_after),
        T(test_a_passing_list_probe_never_closes_a_breaker_real_calls_opened),
        T(test_a_probe_answered_429_rests_the_target_without_a_strike),
        T(test_a_failed_probe_names_its_error_class_once),
        T(test_a_chat_probe_can_close_a_breaker_and_is_probe_spend),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
