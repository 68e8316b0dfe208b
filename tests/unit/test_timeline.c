/*
 * test_timeline.c - the incident timeline's store (timeline.h): the key ring that per-call
 * churn cannot evict, both rings' bounds, in-place updates of aggregates, the merged order,
 * and the churn aggregator (counts, text, rate of updates, window).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "switchboard/timeline.h"
#include "switchboard/util.h"

static struct router_event ev(uint64_t seq, enum router_event_kind k, bool churn, uint64_t agg,
                              const char *text)
{
    struct router_event e;
    memset(&e, 0, sizeof e);
    e.seq = seq;
    e.kind = k;
    e.churn = churn;
    e.agg = agg;
    str_copy(e.target, sizeof e.target, "a");
    str_copy(e.text, sizeof e.text, text);
    return e;
}

/* The texts newest first, joined with '|'. */
static void texts(const struct timeline *tl, char *out, size_t n)
{
    struct timeline_iter it;
    timeline_iter_init(&it);
    const struct timeline_entry *t;
    out[0] = '\0';
    while ((t = timeline_iter_next(tl, &it))) {
        size_t l = strlen(out);
        snprintf(out + l, n - l, "%s%s", l ? "|" : "", t->ev.text);
    }
}

static void test_churn_never_evicts_a_key_event(void **state)
{
    (void)state;
    struct timeline tl;
    timeline_init(&tl, 4, 8);
    struct router_event b = ev(1, ROUTER_EV_BREAKER, false, 0, "breaker a: closed -> open");
    struct router_event o = ev(2, ROUTER_EV_OPERATOR, false, 0, "console: drain a");
    timeline_put(&tl, &b);
    timeline_put(&tl, &o);
    char text[32];
    for (uint64_t i = 0; i < 100000; i++) {
        snprintf(text, sizeof text, "churn %llu", (unsigned long long)i);
        struct router_event c = ev(3 + i, ROUTER_EV_FALLBACK, true, 0, text);
        timeline_put(&tl, &c);
    }
    assert_int_equal(tl.key.n, 2);
    assert_int_equal(tl.churn.n, 8); /* bounded */
    assert_int_equal(timeline_count(&tl), 10);
    char all[1024];
    texts(&tl, all, sizeof all);
    assert_non_null(strstr(all, "breaker a: closed -> open"));
    assert_non_null(strstr(all, "console: drain a"));
    assert_non_null(strstr(all, "churn 99999")); /* the newest churn is kept */
    assert_null(strstr(all, "churn 99991|"));    /* the oldest went */
    timeline_cleanup(&tl);
}

static void test_the_key_ring_is_bounded_too(void **state)
{
    (void)state;
    struct timeline tl;
    timeline_init(&tl, 3, 3);
    char text[32];
    for (int i = 0; i < 10; i++) {
        snprintf(text, sizeof text, "op %d", i);
        struct router_event o = ev((uint64_t)i + 1, ROUTER_EV_OPERATOR, false, 0, text);
        timeline_put(&tl, &o);
    }
    char all[256];
    texts(&tl, all, sizeof all);
    assert_string_equal(all, "op 9|op 8|op 7");
    timeline_cleanup(&tl);
}

static void test_merged_newest_first_and_aggregates_update_in_place(void **state)
{
    (void)state;
    struct timeline tl;
    timeline_init(&tl, 8, 8);
    struct router_event e1 = ev(1, ROUTER_EV_FALLBACK, true, 7, "a: 1 failure");
    struct router_event e2 = ev(2, ROUTER_EV_BREAKER, false, 0, "breaker open");
    struct router_event e3 = ev(3, ROUTER_EV_RATE_LIMIT, true, 8, "429 from a");
    struct router_event e4 = ev(4, ROUTER_EV_FALLBACK, true, 7, "a: 37 failures");
    assert_true(timeline_put(&tl, &e1));
    assert_true(timeline_put(&tl, &e2));
    assert_true(timeline_put(&tl, &e3));
    assert_false(timeline_put(&tl, &e4)); /* same aggregate: updated, not added */
    char all[256];
    texts(&tl, all, sizeof all);
    assert_string_equal(all, "429 from a|breaker open|a: 37 failures");
    assert_int_equal(timeline_count(&tl), 3);
    timeline_cleanup(&tl);
}

static void fallback(struct timeline *tl, struct timeline_agg *ag, int64_t now, const char *target,
                     const char *cls, const char *to, const char *req, bool *wrote)
{
    char detail[128];
    snprintf(detail, sizeof detail, "req %s: %s failed (%s) -> fallback to %s", req, target, cls,
             to);
    struct timeline_churn_in in = {.kind = ROUTER_EV_FALLBACK,
                                   .target = target,
                                   .cls = cls,
                                   .to = to,
                                   .request_id = req,
                                   .detail = detail};
    bool w = timeline_churn(tl, ag, now, 1700000000000 + now, &in);
    if (wrote)
        *wrote = w;
}

static void test_aggregation_folds_failures_per_target_and_class(void **state)
{
    (void)state;
    struct timeline tl;
    struct timeline_agg ag;
    timeline_init(&tl, 8, 64);
    timeline_agg_init(&ag);
    bool wrote = false;
    fallback(&tl, &ag, 0, "gemini-flaky", "timeout", "groq-fast", "r0", &wrote);
    assert_true(wrote); /* a new aggregate shows at once, as the occurrence's own text */
    char all[2048];
    texts(&tl, all, sizeof all);
    assert_string_equal(all, "req r0: gemini-flaky failed (timeout) -> fallback to groq-fast");
    for (int i = 1; i < 37; i++) {
        char req[16];
        snprintf(req, sizeof req, "r%d", i);
        fallback(&tl, &ag, i * 200, "gemini-flaky", "timeout", "groq-fast", req, NULL);
    }
    fallback(&tl, &ag, 7300, "gemini-flaky", "server", "groq-fast", "s1", NULL);
    timeline_agg_flush(&tl, &ag, 9000, true);
    texts(&tl, all, sizeof all);
    assert_string_equal(all, "req s1: gemini-flaky failed (server) -> fallback to groq-fast|"
                             "gemini-flaky: 37 failures (timeout) -> fallback to groq-fast, "
                             "last 9 s (latest req r36)");
    assert_int_equal(tl.churn.n, 2);
    struct timeline_iter it;
    timeline_iter_init(&it);
    timeline_iter_next(&tl, &it);
    const struct timeline_entry *agg = timeline_iter_next(&tl, &it);
    assert_int_equal(agg->ev.wall_ms, 1700000000000); /* when its window began */
    timeline_cleanup(&tl);
}

static void test_updates_are_rate_limited_and_windows_close(void **state)
{
    (void)state;
    struct timeline tl;
    struct timeline_agg ag;
    timeline_init(&tl, 8, 64);
    timeline_agg_init(&ag);
    bool wrote = false;
    fallback(&tl, &ag, 0, "a", "server", "b", "r1", &wrote);
    assert_true(wrote);
    uint64_t seq = ag.seq;
    fallback(&tl, &ag, 500, "a", "server", "b", "r2", &wrote);
    assert_false(wrote); /* counted; written at the next second */
    assert_int_equal(ag.seq, seq);
    assert_false(timeline_agg_flush(&tl, &ag, 900, false));
    assert_true(timeline_agg_flush(&tl, &ag, 1000, false));
    assert_true(ag.seq > seq);
    fallback(&tl, &ag, 2000, "a", "server", "c", "r3", &wrote);
    assert_true(wrote);
    char all[1024];
    texts(&tl, all, sizeof all);
    assert_string_equal(all, "a: 3 failures (server) -> fallback to c and others, last 2 s "
                             "(latest req r3)");
    /* past the window: the line stays, the next failure opens another */
    timeline_agg_flush(&tl, &ag, 10000, false);
    fallback(&tl, &ag, 10500, "a", "server", "b", "r4", &wrote);
    assert_true(wrote);
    texts(&tl, all, sizeof all);
    assert_string_equal(all, "req r4: a failed (server) -> fallback to b|"
                             "a: 3 failures (server) -> fallback to c and others, last 2 s "
                             "(latest req r3)");
    timeline_cleanup(&tl);
}

static void test_every_slot_used_closes_the_oldest_with_its_last_count(void **state)
{
    (void)state;
    struct timeline tl;
    struct timeline_agg ag;
    timeline_init(&tl, 8, 256);
    timeline_agg_init(&ag);
    fallback(&tl, &ag, 0, "t0", "server", "b", "x", NULL);
    fallback(&tl, &ag, 10, "t0", "server", "b", "y", NULL); /* pending, not written */
    for (int i = 1; i <= TIMELINE_AGG_SLOTS; i++) {
        char name[16];
        snprintf(name, sizeof name, "t%d", i);
        fallback(&tl, &ag, 100 + i, name, "server", "b", "z", NULL);
    }
    char all[16384];
    texts(&tl, all, sizeof all);
    assert_non_null(strstr(all, "t0: 2 failures (server) -> fallback to b"));
    assert_int_equal(tl.churn.n, TIMELINE_AGG_SLOTS + 1);
    timeline_cleanup(&tl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_churn_never_evicts_a_key_event),
        cmocka_unit_test(test_the_key_ring_is_bounded_too),
        cmocka_unit_test(test_merged_newest_first_and_aggregates_update_in_place),
        cmocka_unit_test(test_aggregation_folds_failures_per_target_and_class),
        cmocka_unit_test(test_updates_are_rate_limited_and_windows_close),
        cmocka_unit_test(test_every_slot_used_closes_the_oldest_with_its_last_count),
    };
    return cmocka_run_group_tests_name("timeline", tests, NULL, NULL);
}
