/*
 * test_timerq.c - the router's timer heap: order, re-arming, disarming from the middle.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "switchboard/timerq.h"

struct owner {
    int id;
    struct timer t;
};

static void test_timerq_pops_in_time_order_only_when_due(void **state)
{
    (void)state;
    struct timerq q;
    timerq_init(&q);
    struct owner o[5];
    int64_t at[5] = {50, 10, 40, 20, 30};
    for (int i = 0; i < 5; i++) {
        o[i].id = i;
        timer_init(&o[i].t, 0);
        timerq_arm(&q, &o[i].t, at[i]);
    }
    assert_int_equal(timerq_next_at(&q), 10);
    assert_null(timerq_pop_due(&q, 9));
    int64_t last = 0;
    for (int n = 0; n < 5; n++) {
        struct timer *t = timerq_pop_due(&q, 100);
        assert_non_null(t);
        struct owner *ow = SB_CONTAINER_OF(t, struct owner, t);
        assert_true(at[ow->id] >= last);
        last = at[ow->id];
        assert_false(timer_is_armed(t));
    }
    assert_null(timerq_pop_due(&q, 1000));
    assert_int_equal(timerq_next_at(&q), INT64_MAX);
    timerq_cleanup(&q);
}

static void test_timerq_rearm_moves_and_disarm_removes_from_middle(void **state)
{
    (void)state;
    struct timerq q;
    timerq_init(&q);
    enum { N = 200 };
    struct owner *o = calloc(N, sizeof *o);
    for (int i = 0; i < N; i++) {
        o[i].id = i;
        timer_init(&o[i].t, 0);
        timerq_arm(&q, &o[i].t, (i * 7919) % 1000);
    }
    for (int i = 0; i < N; i += 3)
        timerq_disarm(&q, &o[i].t);
    timerq_disarm(&q, &o[0].t); /* twice is harmless */
    timerq_arm(&q, &o[1].t, -5);
    assert_int_equal(timerq_next_at(&q), -5);
    int popped = 0;
    int64_t last = INT64_MIN;
    struct timer *t;
    while ((t = timerq_pop_due(&q, 5000))) {
        assert_true(t->at >= last);
        last = t->at;
        assert_true(SB_CONTAINER_OF(t, struct owner, t)->id % 3 != 0);
        popped++;
    }
    assert_int_equal(popped, N - (N + 2) / 3);
    assert_int_equal(timerq_len(&q), 0);
    timerq_cleanup(&q);
    free(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timerq_pops_in_time_order_only_when_due),
        cmocka_unit_test(test_timerq_rearm_moves_and_disarm_removes_from_middle),
    };
    return cmocka_run_group_tests_name("timerq", tests, NULL, NULL);
}
