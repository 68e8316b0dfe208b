/*
 * test_router.c - the router thread without a network: every target points at a closed
 * loopback port, so calls fail fast with connect errors. Checks that every call's sink gets
 * exactly one on_done (and one terminal event) whatever happens, that commands answer and
 * show up in snapshots and the audit trail, and - under ThreadSanitizer - that several
 * producer threads submitting, cancelling, commanding and reading snapshots at once race on
 * nothing.
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

#include "switchboard/log.h"
#include "switchboard/router.h"

static const char *cfg_json =
    "{\"providers\":["
    " {\"name\":\"a\",\"kind\":\"openai-compatible\",\"base_url\":\"http://127.0.0.1:1/v1\","
    "  \"model\":\"m\",\"weight\":3,\"probe\":{\"enabled\":false}},"
    " {\"name\":\"b\",\"kind\":\"openai-compatible\",\"base_url\":\"http://127.0.0.1:1/v1\","
    "  \"model\":\"m\",\"probe\":{\"enabled\":false}}],"
    " \"routes\":[{\"name\":\"chat\",\"targets\":[\"a\",\"b\"]}],"
    " \"router\":{\"max_attempts\":2,\"backoff_base_ms\":1,\"backoff_cap_ms\":5,"
    "  \"deadline_ms\":5000,\"breaker_failures\":1000,\"breaker_min_volume\":1000000},"
    " \"ledger\":{\"path\":\":memory:\"}, \"guard\":{\"enabled\":false}}";

static struct router *make_router(void)
{
    struct config_diag errs;
    config_diag_init(&errs);
    struct config *cfg = config_parse(cfg_json, strlen(cfg_json), NULL, NULL, NULL, &errs);
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "config: %s\n", errs.items[i]);
    assert_non_null(cfg);
    config_diag_cleanup(&errs);
    char msg[256];
    struct router *rt = router_new(cfg, msg, sizeof msg);
    assert_non_null(rt);
    assert_int_equal(router_start(rt, msg, sizeof msg), SB_OK);
    return rt;
}

struct tally {
    atomic_int done;
    atomic_int errors;
    atomic_int terminal;
    atomic_int doubled;
};

struct probe_sink {
    struct tally *tally;
    int terminal;
    int done;
    enum llm_errclass err;
    atomic_int finished; /* set last by on_done: readers on other threads wait on it */
};

static int on_event(void *ctx, const struct llm_event *ev)
{
    struct probe_sink *s = ctx;
    if (ev->type == LLM_EV_ERROR || ev->type == LLM_EV_FINISH) {
        s->terminal++;
        atomic_fetch_add(&s->tally->terminal, 1);
    }
    return 0;
}

static void on_done(void *ctx, const struct router_result *r)
{
    struct probe_sink *s = ctx;
    s->done++;
    s->err = r->err;
    if (s->done > 1 || s->terminal > 1)
        atomic_fetch_add(&s->tally->doubled, 1);
    if (r->err != LLM_ERR_NONE)
        atomic_fetch_add(&s->tally->errors, 1);
    struct tally *tally = s->tally;
    atomic_store(&s->finished, 1); /* last touches: the waiter may free s after these */
    atomic_fetch_add(&tally->done, 1);
}

static struct llm_request *request(const char *model)
{
    struct llm_request *req = xmalloc(sizeof *req);
    llm_request_init(req);
    req->model = xstrdup(model);
    llm_request_add_message(req, LLM_ROLE_USER, "hello");
    return req;
}

static void wait_done(struct tally *t, int n)
{
    int64_t give_up = clock_mono_ms() + 20000;
    while (atomic_load(&t->done) < n && clock_mono_ms() < give_up)
        clock_sleep_ms(5);
    assert_int_equal(atomic_load(&t->done), n);
}

static void test_router_fails_calls_to_dead_targets_exactly_once(void **state)
{
    (void)state;
    struct router *rt = make_router();
    enum { N = 50 };
    struct tally tally = {0};
    struct probe_sink sinks[N];
    memset(sinks, 0, sizeof sinks);
    for (int i = 0; i < N; i++) {
        sinks[i].tally = &tally;
        struct router_sink sk = {NULL, on_event, on_done, &sinks[i], NULL, false};
        router_submit(rt, request("chat"), NULL, &sk);
    }
    wait_done(&tally, N);
    assert_int_equal(atomic_load(&tally.errors), N);
    assert_int_equal(atomic_load(&tally.terminal), N);
    assert_int_equal(atomic_load(&tally.doubled), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(sinks[i].err, LLM_ERR_CONNECT);
    struct router_snapshot *snap = xcalloc(1, sizeof *snap);
    int64_t give_up = clock_mono_ms() + 2000;
    uint64_t total = 0;
    while (clock_mono_ms() < give_up) {
        router_snapshot_read(rt, snap, 0);
        total = snap->targets[0].stats.calls + snap->targets[1].stats.calls;
        if (total == 2 * N)
            break;
        clock_sleep_ms(20);
    }
    assert_int_equal(total, 2 * N); /* each call tried both targets once */
    assert_int_equal(snap->gateway_calls, N);
    free(snap);
    router_free(rt);
}

static void test_router_rejects_unknown_model_with_the_routes_listed(void **state)
{
    (void)state;
    struct router *rt = make_router();
    struct tally tally = {0};
    struct probe_sink s = {.tally = &tally};
    struct router_sink sk = {NULL, on_event, on_done, &s, NULL, false};
    router_submit(rt, request("gpt-nope"), NULL, &sk);
    wait_done(&tally, 1);
    assert_int_equal(s.err, LLM_ERR_BAD_REQUEST);
    router_free(rt);
}

static void test_router_commands_answer_and_are_audited(void **state)
{
    (void)state;
    struct router *rt = make_router();
    char msg[256];
    struct router_snapshot *snap = xcalloc(1, sizeof *snap);
    /* Each verdict comes after a snapshot that shows the command: read at once, no wait. */
    struct router_cmd cmd = {
        .type = ROUTER_CMD_SET_WEIGHT, .target = "a", .weight = 0, .user = "test"};
    assert_int_equal(router_command(rt, &cmd, msg, sizeof msg, 2000), SB_OK);
    router_snapshot_read(rt, snap, 0);
    assert_true(snap->targets[0].weight == 0);
    struct router_cmd drain = {
        .type = ROUTER_CMD_DRAIN, .target = "b", .user = "test", .expires_ms = 200};
    assert_int_equal(router_command(rt, &drain, msg, sizeof msg, 2000), SB_OK);
    router_snapshot_read(rt, snap, 0);
    assert_true(snap->targets[1].drained);
    struct router_cmd bad = {.type = ROUTER_CMD_PIN, .target = "zzz"};
    assert_int_equal(router_command(rt, &bad, msg, sizeof msg, 2000), SB_ERR_NOT_FOUND);
    assert_non_null(strstr(msg, "zzz"));
    router_snapshot_read(rt, snap, 0);
    assert_true(snap->targets[0].weight == 0);
    assert_true(snap->targets[1].drained);
    bool audited = false;
    for (size_t i = 0; i < snap->n_events; i++)
        audited |= snap->events[i].kind == ROUTER_EV_OPERATOR &&
                   strstr(snap->events[i].text, "test: weight a") != NULL;
    assert_true(audited);
    /* P answers with what it did, not the target's weight (issue 15); its audit row too */
    struct router_cmd probe = {.type = ROUTER_CMD_PROBE_NOW, .target = "a", .user = "test"};
    assert_int_equal(router_command(rt, &probe, msg, sizeof msg, 2000), SB_OK);
    assert_string_equal(msg, "probe a: started");
    router_snapshot_read(rt, snap, 0);
    bool probe_audited = false;
    for (size_t i = 0; i < snap->n_events; i++)
        probe_audited |= str_eq(snap->events[i].text, "test: probe a now");
    assert_true(probe_audited);
    /* the drain lapses on its own */
    clock_sleep_ms(450);
    router_snapshot_read(rt, snap, 0);
    assert_false(snap->targets[1].drained);
    /* undo of the drain that lapsed says so and does nothing; the next brings the weight back */
    struct router_cmd undo = {.type = ROUTER_CMD_UNDO, .user = "test"};
    assert_int_equal(router_command(rt, &undo, msg, sizeof msg, 2000), SB_ERR_STATE); /* drain */
    assert_non_null(strstr(msg, "already expired"));
    assert_int_equal(router_command(rt, &undo, msg, sizeof msg, 2000), SB_OK); /* weight */
    router_snapshot_read(rt, snap, 0);
    assert_true(snap->targets[0].weight == 3);
    struct buf text;
    buf_init(&text);
    assert_int_equal(router_explain(rt, "chat", NULL, 10, &text, 2000), SB_OK);
    assert_non_null(strstr(buf_str(&text), "route: chat (by model name)"));
    buf_cleanup(&text);
    free(snap);
    router_free(rt);
}

/* ---- concurrency stress (meaningful under TSan) ------------------------------------------- */

struct producer {
    struct router *rt;
    struct tally *tally;
    int n;
    int id;
};

static void *produce(void *arg)
{
    struct producer *p = arg;
    struct probe_sink *sinks = xcalloc((size_t)p->n, sizeof *sinks);
    struct router_snapshot *snap = xcalloc(1, sizeof *snap);
    uint64_t gen = 0;
    for (int i = 0; i < p->n; i++) {
        sinks[i].tally = p->tally;
        struct router_sink sk = {NULL, on_event, on_done, &sinks[i], NULL, false};
        struct router_call_opts opts = {.tag = "stress", .request_id = "r"};
        uint64_t id = router_submit(p->rt, request("chat"), &opts, &sk);
        if (i % 7 == 0)
            router_cancel(p->rt, id);
        if (router_snapshot_read(p->rt, snap, gen))
            gen = snap->gen;
        if (i % 10 == 0) {
            struct router_cmd cmd = {.type = ROUTER_CMD_SET_WEIGHT, .weight = 1 + i % 3};
            snprintf(cmd.target, sizeof cmd.target, "%s", p->id % 2 ? "a" : "b");
            char msg[128];
            router_command(p->rt, &cmd, msg, sizeof msg, 2000);
        }
    }
    /* the sinks are written by the router thread until each on_done: wait for ours */
    int64_t give_up = clock_mono_ms() + 20000;
    for (int i = 0; i < p->n; i++) {
        while (!atomic_load(&sinks[i].finished) && clock_mono_ms() < give_up)
            clock_sleep_ms(2);
    }
    free(snap);
    free(sinks);
    return NULL;
}

static void test_router_survives_concurrent_producers(void **state)
{
    (void)state;
    struct router *rt = make_router();
    enum { THREADS = 4, PER = 60 };
    struct tally tally = {0};
    pthread_t th[THREADS];
    struct producer p[THREADS];
    for (int i = 0; i < THREADS; i++) {
        p[i] = (struct producer){rt, &tally, PER, i};
        pthread_create(&th[i], NULL, produce, &p[i]);
    }
    wait_done(&tally, THREADS * PER);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&tally.doubled), 0);
    assert_int_equal(atomic_load(&tally.terminal), THREADS * PER);
    router_free(rt);
}

static void test_router_stopped_still_answers_every_submit(void **state)
{
    (void)state;
    struct router *rt = make_router();
    router_stop(rt);
    struct tally tally = {0};
    struct probe_sink s = {.tally = &tally};
    struct router_sink sk = {NULL, on_event, on_done, &s, NULL, false};
    router_submit(rt, request("chat"), NULL, &sk);
    assert_int_equal(atomic_load(&tally.done), 1); /* synchronously */
    assert_int_equal(s.err, LLM_ERR_CANCELLED);
    router_free(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_router_fails_calls_to_dead_targets_exactly_once),
        cmocka_unit_test(test_router_rejects_unknown_model_with_the_routes_listed),
        cmocka_unit_test(test_router_commands_answer_and_are_audited),
        cmocka_unit_test(test_router_survives_concurrent_producers),
        cmocka_unit_test(test_router_stopped_still_answers_every_submit),
    };
    log_setup(LOG_LEVEL_WARN, -1);
    return cmocka_run_group_tests_name("router", tests, NULL, NULL);
}
