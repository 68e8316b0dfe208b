/*
 * test_loop_hook.c - router_set_loop_hook and router_loop_call (the gateway's HTTP server on
 * the router thread's loop, gateway.threads 0), driven through the router loop with the
 * scripted fake transport and the fake clock of support_fake.c: where in a turn the hook
 * runs, its fd in the transport's wait, its wait cap, calls submitted from inside it, and
 * attaching, detaching and loop calls on a running router thread, including one whose
 * caller gives up, and waits for the router made on its own thread (refused at once).
 *
 * A watchdog (alarm) turns a router that spins or a wait that never ends into a failed test.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support_fake.h"
#include "switchboard/log.h"

static const char *const cfg_one =
    "{\"providers\":[{\"name\":\"a\",\"kind\":\"openai-compatible\","
    "\"base_url\":\"http://a.fake/v1\",\"api_key_env\":\"FAKE_KEY\",\"model\":\"m\","
    "\"probe\":{\"enabled\":false}}],"
    "\"routes\":[{\"name\":\"chat\",\"strategy\":\"priority\",\"targets\":[\"a\"]}],"
    "\"ledger\":{\"path\":\":memory:\"},\"guard\":{\"enabled\":false}}";

static void plan_ok(void *ctx, const struct http_request *req, struct fake_plan *p)
{
    (void)ctx;
    (void)req;
    p->status = 200;
    p->body = fake_openai_json("hello");
    p->first_byte_ms = 20;
}

/* What the hooks saw. Written by the thread that runs the loop, read by the test's. */
struct seen {
    bool in_turn;
    int ends;
    atomic_int runs;
    int runs_in_turn;   /* run called between BEGIN and END: must stay 0 */
    int runs_not_after; /* run called without an END just before it (since the last run) */
    bool end_since_run; /* an END came after the last run */
    atomic_int caps;    /* wait_cap_ms calls */
    int64_t cap_ms;     /* what wait_cap_ms answers */
    pthread_t run_thread;
    atomic_bool run_thread_set;
    /* a call submitted from inside run, as the gateway's handler does on the loop */
    struct router *rt;
    bool submit_in_run;
    struct fake_call fc;
    /* a run that blocks until released (router thread busy) */
    pthread_mutex_t block_mu;
    atomic_bool block;
    atomic_bool blocked; /* the router thread is in the blocking run */
    /* waits for the router from inside run, as an admin handler on the loop would */
    atomic_bool ask_in_run;
    atomic_bool asked;
    enum sb_status cmd_st, explain_st, call_st;
    int64_t asked_ms; /* how long the three took */
};

static void seen_turn(void *ctx, enum router_turn turn)
{
    struct seen *s = ctx;
    switch (turn) {
    case ROUTER_TURN_BEGIN:
        s->in_turn = true;
        break;
    case ROUTER_TURN_END:
        s->in_turn = false;
        s->ends++;
        s->end_since_run = true;
        break;
    }
}

static void nothing(void *ctx)
{
    (void)ctx;
}

static void ask_router(struct seen *s)
{
    int64_t t0 = clock_mono_ms();
    struct router_cmd cmd = {.type = ROUTER_CMD_RESET, .target = "a", .user = "test"};
    char msg[256];
    s->cmd_st = router_command(s->rt, &cmd, msg, sizeof msg, 2000);
    struct buf out;
    buf_init(&out);
    s->explain_st = router_explain(s->rt, "chat", NULL, 10, &out, 2000);
    buf_cleanup(&out);
    s->call_st = router_loop_call(s->rt, nothing, NULL, 2000, msg, sizeof msg);
    s->asked_ms = clock_mono_ms() - t0;
    atomic_store(&s->asked, true);
}

static void seen_run(void *ctx)
{
    struct seen *s = ctx;
    s->runs_in_turn += s->in_turn;
    s->runs_not_after += !s->end_since_run;
    s->end_since_run = false;
    if (!atomic_load(&s->run_thread_set)) {
        s->run_thread = pthread_self();
        atomic_store(&s->run_thread_set, true);
    }
    if (s->submit_in_run) {
        s->submit_in_run = false;
        struct router_sink sk = fake_call_sink(&s->fc);
        router_submit(s->rt, fake_request("chat", false), NULL, &sk);
    }
    if (atomic_load(&s->ask_in_run) && !atomic_load(&s->asked))
        ask_router(s);
    if (atomic_load(&s->block)) {
        atomic_store(&s->blocked, true);
        pthread_mutex_lock(&s->block_mu); /* held by the test until it releases the loop */
        pthread_mutex_unlock(&s->block_mu);
    }
    atomic_fetch_add(&s->runs, 1);
}

static int64_t seen_cap(void *ctx)
{
    struct seen *s = ctx;
    atomic_fetch_add(&s->caps, 1);
    return s->cap_ms;
}

static struct router_loop_hook hook_for(struct seen *s, int fd)
{
    return (struct router_loop_hook){fd, seen_run, seen_cap, s};
}

static void seen_init(struct seen *s, struct router *rt)
{
    memset(s, 0, sizeof *s);
    s->rt = rt;
    s->cap_ms = -1;
    pthread_mutex_init(&s->block_mu, NULL);
}

/* What each test stands on: the fake clock and transport, a router over them and what its
 * hooks saw. On the test's stack; rig_init .. rig_cleanup. */
struct rig {
    struct fake_clock clock;
    struct fake_net *net;
    struct router *rt;
    struct seen s;
    char msg[256];
};

/* The router on cfg_one, its turns reported to seen (turns) and its thread started (start). */
static void rig_init(struct rig *r, bool turns, bool start)
{
    fake_clock_init(&r->clock);
    r->rt = fake_router_new(cfg_one, &r->clock, plan_ok, NULL, &r->net);
    seen_init(&r->s, r->rt);
    r->msg[0] = '\0';
    if (turns)
        router_set_turn_hook(r->rt, seen_turn, &r->s);
    if (start)
        assert_int_equal(router_start(r->rt, r->msg, sizeof r->msg), SB_OK);
}

/* Attaches the seen hook with fd as its descriptor. */
static void rig_attach(struct rig *r, int fd)
{
    struct router_loop_hook h = hook_for(&r->s, fd);
    assert_int_equal(router_set_loop_hook(r->rt, &h, 5000, r->msg, sizeof r->msg), SB_OK);
}

static void rig_cleanup(struct rig *r)
{
    router_free(r->rt);
    pthread_mutex_destroy(&r->s.block_mu);
}

static int setup(void **state)
{
    (void)state;
    fake_watchdog("test_loop_hook", 20);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fake_watchdog("test_loop_hook", 0);
    return 0;
}

/* Stepped by the test: the hook runs after every turn's END, never inside a turn; its fd is
 * the transport's watched fd until detached; a second hook is refused; a call submitted from
 * inside run (the gateway's handler on the loop) is routed and answered. */
static void test_the_hook_runs_after_every_turn_end(void **state)
{
    (void)state;
    struct rig r;
    rig_init(&r, true, false);
    rig_attach(&r, 42);
    assert_int_equal(fake_net_watched(r.net), 42);
    struct router_loop_hook h2 = hook_for(&r.s, 43);
    assert_int_equal(router_set_loop_hook(r.rt, &h2, 1000, r.msg, sizeof r.msg), SB_ERR_STATE);
    assert_int_equal(fake_net_watched(r.net), 42);

    r.s.submit_in_run = true;
    long turns =
        fake_drive(r.rt, r.net, &r.clock, fake_clock_ms(&r.clock) + 5000, fake_call_done, &r.s.fc);
    assert_int_equal(r.s.fc.dones, 1);
    assert_int_equal(r.s.fc.result.err, LLM_ERR_NONE);
    assert_string_equal(r.s.fc.text, "hello");
    assert_true(turns >= 2);
    assert_int_equal(atomic_load(&r.s.runs), r.s.ends); /* one run per END, right after it */
    assert_int_equal(r.s.runs_in_turn, 0);
    assert_int_equal(r.s.runs_not_after, 0);

    assert_int_equal(router_set_loop_hook(r.rt, NULL, 1000, r.msg, sizeof r.msg), SB_OK);
    assert_int_equal(fake_net_watched(r.net), -1);
    int runs = atomic_load(&r.s.runs);
    router_step(r.rt);
    router_step(r.rt);
    assert_int_equal(atomic_load(&r.s.runs), runs);
    assert_true(r.s.ends > runs);
    /* detached, another hook may take its place */
    assert_int_equal(router_set_loop_hook(r.rt, &h2, 1000, r.msg, sizeof r.msg), SB_OK);
    assert_int_equal(fake_net_watched(r.net), 43);
    rig_cleanup(&r);
}

/* A stop that ends calls runs the hook after its turns too: what the sinks resumed is
 * answered by the server before router_stop returns. */
static void test_a_stop_runs_the_hook_after_ending_calls(void **state)
{
    (void)state;
    struct rig r;
    rig_init(&r, true, false);
    rig_attach(&r, 7);
    struct fake_call fc = {0};
    struct router_sink sk = fake_call_sink(&fc);
    router_submit(r.rt, fake_request("chat", false), NULL, &sk);
    router_step(r.rt); /* started, its answer 20 ms away on the fake clock */
    assert_int_equal(fc.dones, 0);
    router_stop(r.rt);
    assert_int_equal(fc.dones, 1);
    assert_int_equal(r.s.runs_in_turn, 0);
    assert_int_equal(r.s.runs_not_after, 0);
    assert_false(r.s.end_since_run); /* the last END was followed by a run */
    rig_cleanup(&r);
}

static void note_thread(void *ctx)
{
    pthread_t *t = ctx;
    *t = pthread_self();
}

/* Waits (real time, bounded by the watchdog) for that many runs. */
static void wait_for_runs(struct seen *s, int runs)
{
    while (atomic_load(&s->runs) < runs)
        clock_sleep_ms(1);
}

/* On a running router thread: attaching and detaching go through its inbox, run is called
 * there, the hook's cap bounds the transport's wait, and after the detach returned run is
 * never called again; loop calls run there too, and on the caller once the router stopped. */
static void test_a_running_router_attaches_caps_and_detaches(void **state)
{
    (void)state;
    struct rig r;
    rig_init(&r, false, true);
    r.s.cap_ms = 7; /* before the attach: the router thread reads it only after */
    rig_attach(&r, 9);
    wait_for_runs(&r.s, 50);
    assert_true(atomic_load(&r.s.run_thread_set));
    assert_false(pthread_equal(r.s.run_thread, pthread_self()));
    assert_true(atomic_load(&r.s.caps) > 0);
    /* the fake clock stands still: uncapped, the wait would be the tick's (100 ms) */
    assert_int_equal(fake_net_last_wait_ms(r.net), 7);

    pthread_t where = pthread_self();
    assert_int_equal(router_loop_call(r.rt, note_thread, &where, 5000, r.msg, sizeof r.msg), SB_OK);
    assert_true(pthread_equal(where, r.s.run_thread));

    assert_int_equal(router_set_loop_hook(r.rt, NULL, 5000, r.msg, sizeof r.msg), SB_OK);
    int runs = atomic_load(&r.s.runs);
    long fruns = fake_net_runs(r.net);
    while (fake_net_runs(r.net) < fruns + 50)
        clock_sleep_ms(1);
    assert_int_equal(atomic_load(&r.s.runs), runs);
    assert_true(fake_net_last_wait_ms(r.net) > 7);

    router_stop(r.rt);
    assert_int_equal(router_loop_call(r.rt, note_thread, &where, 5000, r.msg, sizeof r.msg), SB_OK);
    assert_true(pthread_equal(where, pthread_self()));
    rig_cleanup(&r);
}

/* A wait for the router on its own thread (an admin handler on the loop) could never be
 * answered: router_command, router_explain and router_loop_call refuse at once instead of
 * stalling the loop for their timeout. */
static void test_waits_for_the_router_on_its_own_thread_refuse_at_once(void **state)
{
    (void)state;
    struct rig r;
    rig_init(&r, false, true);
    rig_attach(&r, 9);
    atomic_store(&r.s.ask_in_run, true);
    while (!atomic_load(&r.s.asked))
        clock_sleep_ms(1);
    assert_int_equal(r.s.cmd_st, SB_ERR_IO);
    assert_int_equal(r.s.explain_st, SB_ERR_IO);
    assert_int_equal(r.s.call_st, SB_ERR_STATE);
    assert_true(r.s.asked_ms < 1000);
    /* from another thread the same command is answered */
    struct router_cmd cmd = {.type = ROUTER_CMD_RESET, .target = "a", .user = "test"};
    assert_int_equal(router_command(r.rt, &cmd, r.msg, sizeof r.msg, 5000), SB_OK);
    rig_cleanup(&r);
}

static void count_call(void *ctx)
{
    atomic_int *n = ctx;
    atomic_fetch_add(n, 1);
}

/* A loop call the router thread does not take in time fails, and never runs later: its
 * caller may free what it handed over. */
static void test_a_loop_call_given_up_never_runs(void **state)
{
    (void)state;
    struct rig r;
    rig_init(&r, false, true);
    rig_attach(&r, 9);
    pthread_mutex_lock(&r.s.block_mu);
    atomic_store(&r.s.block, true);
    while (!atomic_load(&r.s.blocked))
        clock_sleep_ms(1);
    atomic_int n = 0; /* the router thread is stuck in run: it takes no message */
    assert_int_equal(router_loop_call(r.rt, count_call, &n, 50, r.msg, sizeof r.msg), SB_ERR_IO);
    assert_non_null(strstr(r.msg, "did not answer"));
    atomic_store(&r.s.block, false);
    pthread_mutex_unlock(&r.s.block_mu);
    assert_int_equal(router_loop_call(r.rt, count_call, &n, 5000, r.msg, sizeof r.msg), SB_OK);
    assert_int_equal(atomic_load(&n), 1); /* only the second */
    rig_cleanup(&r);
}

int main(void)
{
    setenv("FAKE_KEY", "sk-fake-key-for-tests-0000", 1);
    log_setup(LOG_LEVEL_OFF, 2);
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_the_hook_runs_after_every_turn_end),
        T(test_a_stop_runs_the_hook_after_ending_calls),
        T(test_a_running_router_attaches_caps_and_detaches),
        T(test_a_loop_call_given_up_never_runs),
        T(test_waits_for_the_router_on_its_own_thread_refuse_at_once),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
