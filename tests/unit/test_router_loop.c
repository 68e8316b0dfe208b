/*
 * test_router_loop.c - the router loop itself (call.c, target.c, breaker interplay) driven
 * through router_step with the scripted fake transport and the fake clock of support_fake.c:
 * retries, fallbacks, hedges, deadlines, the commit point, half-open trials, encode refusals
 * and every "nothing can serve" answer, with no sockets and no real time.
 *
 * A watchdog (alarm) turns a router that spins into a failed test instead of a hung one.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    buf_printf(&b,
               "\"router\":{\"max_attempts\":3,\"backoff_base_ms\":100,\"backoff_cap_ms\":400,"
               "\"deadline_ms\":10000,\"hedge_after_ms\":0,\"breaker_failures\":3,"
               "\"breaker_cooldown_ms\":2000%s%s},",
               router_extra ? "," : "", router_extra ? router_extra : "");
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

static void watchdog(int sig)
{
    (void)sig;
    static const char m[] = "test_router_loop: the router loop spins (watchdog fired)\n";
    if (write(2, m, sizeof m - 1) < 0)
        _exit(3);
    _exit(2);
}

static int setup(void **state)
{
    (void)state;
    signal(SIGALRM, watchdog);
    alarm(20);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    alarm(0);
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
    struct router_snapshot *s = xcalloc(1, sizeof *s);
    router_snapshot_read(r.rt, s, 0);
    assert_int_equal(s->targets[0].breaker, BREAKER_CLOSED);
    free(s);
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

int main(void)
{
    setenv("FAKE_KEY", "sk-fake-key-for-tests-0000", 1);
    log_setup(LOG_LEVEL_OFF, 2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_encoder_refusing_answers_400_at_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_one_encoder_refusing_falls_back_to_one_that_can, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_transport_refusing_every_start_ends_the_call, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_half_open_with_three_trials_never_spins, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_half_open_trial_is_released_when_its_launch_fails,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
