/*
 * test_gateway_models.c - what GET /v1/models and GET /readyz answer, kept per router snapshot
 * generation (src/gateway/models.c), on a running router over the fake transport: the body and
 * the verdict follow the snapshot after a drain, a clear and a config reload; within one
 * generation the published snapshot is not read again; and requests on several threads while
 * the router changes see only whole answers (run it under TSan: the cache's lock and the
 * router's snapshot lock).
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

#include "../../src/gateway/internal.h"
#include "support_fake.h"
#include "switchboard/log.h"

#define CREATED 1700000000

#define PROVIDER(n)                                                                                \
    "{\"name\":\"" n "\",\"kind\":\"openai-compatible\",\"base_url\":\"http://" n ".fake/v1\","    \
    "\"api_key_env\":\"FAKE_KEY\",\"model\":\"m\",\"probe\":{\"enabled\":false}}"
#define CONFIG(routes)                                                                             \
    "{\"providers\":[" PROVIDER("a") "," PROVIDER(                                                 \
        "b") "],\"routes\":[" routes "],"                                                          \
             "\"ledger\":{\"path\":\":memory:\"},\"guard\":{\"enabled\":false}}"
#define ROUTE(n, t) "{\"name\":\"" n "\",\"strategy\":\"priority\",\"targets\":[" t "]}"

static const char *const cfg_two = CONFIG(ROUTE("chat", "\"a\"") "," ROUTE("code", "\"b\""));
static const char *const cfg_three =
    CONFIG(ROUTE("chat", "\"a\"") "," ROUTE("code", "\"b\"") "," ROUTE("extra", "\"a\",\"b\""));

#define MODEL(id)                                                                                  \
    "{\"id\":\"" id "\",\"object\":\"model\",\"created\":1700000000,\"owned_by\":\"switchboard\"}"
static const char *const body_two =
    "{\"object\":\"list\",\"data\":[" MODEL("chat") "," MODEL("code") "]}";
static const char *const body_three =
    "{\"object\":\"list\",\"data\":[" MODEL("chat") "," MODEL("code") "," MODEL("extra") "]}";

static void plan_ok(void *ctx, const struct http_request *req, struct fake_plan *p)
{
    (void)ctx;
    (void)req;
    p->status = 200;
    p->body = fake_openai_json("hello");
}

struct rig {
    struct fake_clock clock;
    struct fake_net *net;
    struct router *rt;
    struct gw_snapcache *sc;
};

static void rig_start(struct rig *r)
{
    fake_clock_init(&r->clock);
    r->rt = fake_router_new(cfg_two, &r->clock, plan_ok, NULL, &r->net);
    char msg[256] = "";
    assert_int_equal(router_start(r->rt, msg, sizeof msg), SB_OK);
    r->sc = gw_snapcache_new();
}

static void rig_stop(struct rig *r)
{
    gw_snapcache_free(r->sc);
    router_free(r->rt);
}

static void command(struct router *rt, enum router_cmd_type type, const char *target)
{
    struct router_cmd cmd = {.type = type, .user = "test"};
    str_copy(cmd.target, sizeof cmd.target, target);
    char msg[256] = "";
    assert_int_equal(router_command(rt, &cmd, msg, sizeof msg, 5000), SB_OK);
}

static void reload(struct router *rt, const char *json)
{
    struct config_diag errs;
    config_diag_init(&errs);
    struct config *cfg = config_parse(json, strlen(json), NULL, NULL, NULL, &errs);
    assert_non_null(cfg);
    config_diag_cleanup(&errs);
    router_reload(rt, cfg);
}

static void models(struct rig *r, struct buf *out)
{
    buf_reset(out);
    gw_snapcache_models(r->sc, r->rt, CREATED, NULL, NULL, out);
}

/* The body once the router has published what it was told (a reload is posted, not waited). */
static bool models_become(struct rig *r, const char *want)
{
    struct buf b;
    buf_init(&b);
    bool same = false;
    for (int i = 0; i < 500 && !same; i++) {
        models(r, &b);
        same = str_eq(buf_str(&b), want);
        if (!same)
            clock_sleep_ms(10);
    }
    buf_cleanup(&b);
    return same;
}

static bool ready(struct rig *r, struct buf *why)
{
    buf_reset(why);
    return gw_snapcache_ready(r->sc, r->rt, why);
}

/* A counting visitor: whether router_snapshot_visit read the published snapshot. */
static void count_visit(const struct router_snapshot *snap, void *ctx)
{
    (void)snap;
    (*(int *)ctx)++;
}

static void test_answers_follow_the_snapshot(void **state)
{
    (void)state;
    struct rig r;
    rig_start(&r);
    struct buf b, why;
    buf_init(&b);
    buf_init(&why);
    models(&r, &b);
    assert_string_equal(buf_str(&b), body_two);
    assert_true(ready(&r, &why));
    assert_true(gw_snapcache_has_target(r.sc, r.rt, "b"));
    assert_false(gw_snapcache_has_target(r.sc, r.rt, "zz"));

    command(r.rt, ROUTER_CMD_DRAIN, "a"); /* the router publishes before it answers */
    assert_true(ready(&r, &why));
    command(r.rt, ROUTER_CMD_DRAIN, "b");
    assert_false(ready(&r, &why));
    assert_non_null(strstr(buf_str(&why), "a (drained)"));
    assert_non_null(strstr(buf_str(&why), "b (drained)"));
    command(r.rt, ROUTER_CMD_CLEAR, "b");
    assert_true(ready(&r, &why));
    assert_int_equal(why.len, 0);

    reload(r.rt, cfg_three);
    assert_true(models_become(&r, body_three));
    reload(r.rt, cfg_two);
    assert_true(models_become(&r, body_two));
    buf_cleanup(&b);
    buf_cleanup(&why);
    rig_stop(&r);
}

/* Within one generation nothing is read again from the published snapshot; a new one is. The
 * router is not started: it publishes only when stepped here. */
static void test_one_generation_is_read_once(void **state)
{
    (void)state;
    struct fake_clock clock;
    fake_clock_init(&clock);
    struct fake_net *net;
    struct router *rt = fake_router_new(cfg_two, &clock, plan_ok, NULL, &net);
    struct router_snapshot *snap = xcalloc(1, sizeof *snap);
    router_snapshot_read(rt, snap, UINT64_MAX);
    int visits = 0;
    assert_false(router_snapshot_visit(rt, snap->gen, count_visit, &visits));
    assert_true(router_snapshot_visit(rt, snap->gen - 1, count_visit, &visits));
    assert_int_equal(visits, 1);

    struct gw_snapcache *sc = gw_snapcache_new();
    struct buf b;
    buf_init(&b);
    gw_snapcache_models(sc, rt, CREATED, NULL, NULL, &b);
    assert_string_equal(buf_str(&b), body_two);
    reload(rt, cfg_three);
    buf_reset(&b); /* not published yet: the cached generation's answer */
    gw_snapcache_models(sc, rt, CREATED, NULL, NULL, &b);
    assert_string_equal(buf_str(&b), body_two);
    router_step(rt); /* takes the reload and publishes */
    buf_reset(&b);
    gw_snapcache_models(sc, rt, CREATED, NULL, NULL, &b);
    assert_string_equal(buf_str(&b), body_three);
    buf_reset(&b); /* a new "created" (gateway_start) renders the body again */
    gw_snapcache_models(sc, rt, CREATED + 1, NULL, NULL, &b);
    assert_non_null(strstr(buf_str(&b), "\"created\":1700000001"));
    buf_cleanup(&b);
    gw_snapcache_free(sc);
    free(snap);
    router_free(rt);
}

struct reader {
    struct rig *rig;
    atomic_bool *stop;
    long bad, reads;
};

static void *read_loop(void *arg)
{
    struct reader *rd = arg;
    struct buf b, why;
    buf_init(&b);
    buf_init(&why);
    while (!atomic_load(rd->stop)) {
        models(rd->rig, &b);
        bool whole = str_eq(buf_str(&b), body_two) || str_eq(buf_str(&b), body_three);
        bool ok = ready(rd->rig, &why);
        whole = whole && (ok ? why.len == 0 : strstr(buf_str(&why), "(drained)") != NULL);
        whole = whole && gw_snapcache_has_target(rd->rig->sc, rd->rig->rt, "a");
        rd->bad += !whole;
        rd->reads++;
    }
    buf_cleanup(&b);
    buf_cleanup(&why);
    return NULL;
}

static void test_concurrent_requests_see_whole_answers(void **state)
{
    (void)state;
    struct rig r;
    rig_start(&r);
    atomic_bool stop = false;
    struct reader rd[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        rd[i] = (struct reader){.rig = &r, .stop = &stop};
        assert_int_equal(pthread_create(&th[i], NULL, read_loop, &rd[i]), 0);
    }
    for (int i = 0; i < 40; i++) {
        command(r.rt, ROUTER_CMD_DRAIN, i % 2 ? "a" : "b");
        command(r.rt, ROUTER_CMD_CLEAR, i % 2 ? "a" : "b");
        if (i % 10 == 0)
            reload(r.rt, i % 20 ? cfg_two : cfg_three);
    }
    atomic_store(&stop, true);
    long reads = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(rd[i].bad, 0);
        reads += rd[i].reads;
    }
    assert_true(reads > 0);
    rig_stop(&r);
}

int main(void)
{
    setenv("FAKE_KEY", "k", 1);
    log_setup(LOG_LEVEL_OFF, -1);
    fake_watchdog("test_gateway_models", 60);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answers_follow_the_snapshot),
        cmocka_unit_test(test_one_generation_is_read_once),
        cmocka_unit_test(test_concurrent_requests_see_whole_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
