/*
 * test_backoff.c - splitmix64 PRNG and full-jitter exponential backoff.
 */
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "switchboard/backoff.h"

static void test_rng_matches_the_splitmix64_reference_sequence(void **state)
{
    (void)state;
    struct rng r;
    rng_seed(&r, 0);
    assert_true(rng_next_u64(&r) == 0xe220a8397b1dcdafULL);
    assert_true(rng_next_u64(&r) == 0x6e789e6aa1b965f4ULL);
    assert_true(rng_next_u64(&r) == 0x06c45d188009454fULL);
}

static void test_rng_equal_seeds_give_equal_sequences(void **state)
{
    (void)state;
    struct rng a, b, c;
    rng_seed(&a, 12345);
    rng_seed(&b, 12345);
    rng_seed(&c, 12346);
    int differ = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t x = rng_next_u64(&a);
        assert_true(x == rng_next_u64(&b));
        differ += x != rng_next_u64(&c);
    }
    assert_true(differ > 95);
}

static void test_rng_uniform_stays_in_unit_interval_with_mean_half(void **state)
{
    (void)state;
    struct rng r;
    rng_seed(&r, 99);
    double sum = 0, lo = 1, hi = 0;
    for (int i = 0; i < 100000; i++) {
        double u = rng_uniform(&r);
        assert_true(u >= 0.0 && u < 1.0);
        sum += u;
        lo = u < lo ? u : lo;
        hi = u > hi ? u : hi;
    }
    assert_true(fabs(sum / 100000 - 0.5) < 0.005);
    assert_true(lo < 0.001 && hi > 0.999);
}

static void test_rng_below_is_unbiased_and_in_range(void **state)
{
    (void)state;
    struct rng r;
    long counts[3] = {0};
    rng_seed(&r, 5);
    for (int i = 0; i < 300000; i++) {
        uint64_t x = rng_below(&r, 3);
        assert_true(x < 3);
        counts[x]++;
    }
    for (int i = 0; i < 3; i++)
        assert_true(labs(counts[i] - 100000) < 1500);
    assert_true(rng_below(&r, 0) == 0);
    assert_true(rng_below(&r, 1) == 0);
    uint64_t big = (UINT64_C(1) << 63) + 1; /* worst case for rejection: ~half rejected */
    for (int i = 0; i < 1000; i++)
        assert_true(rng_below(&r, big) < big);
}

static void test_backoff_ceiling_doubles_until_the_cap(void **state)
{
    (void)state;
    static const int64_t want[] = {100, 200, 400, 800, 1600, 2000, 2000, 2000};
    for (long a = 0; a < 8; a++)
        assert_int_equal(backoff_ceiling_ms(a, 100, 2000), want[a]);
}

static void test_backoff_ceiling_never_overflows(void **state)
{
    (void)state;
    for (long a = 0; a < 200; a++) {
        int64_t c = backoff_ceiling_ms(a, INT64_MAX / 3, INT64_MAX);
        assert_true(c > 0 && c <= INT64_MAX);
        assert_true(backoff_ceiling_ms(a, 1, INT64_MAX) > 0);
        assert_true(backoff_ceiling_ms(a, 100, 2000) <= 2000);
    }
    assert_true(backoff_ceiling_ms(62, 1, INT64_MAX) == INT64_MAX);
    assert_true(backoff_ceiling_ms(61, 1, INT64_MAX) == INT64_C(1) << 61);
    assert_true(backoff_ceiling_ms(LONG_MAX, 100, 2000) == 2000);
    int64_t d;
    struct rng r;
    rng_seed(&r, 1);
    for (int i = 0; i < 1000; i++) {
        d = backoff_delay_ms(LONG_MAX, INT64_MAX, INT64_MAX, &r);
        assert_true(d >= 0);
    }
}

static void test_backoff_odd_inputs_are_safe(void **state)
{
    (void)state;
    struct rng r;
    rng_seed(&r, 1);
    assert_int_equal(backoff_ceiling_ms(-3, 100, 2000), 100); /* negative = first retry */
    assert_int_equal(backoff_ceiling_ms(3, 0, 2000), 0);
    assert_int_equal(backoff_ceiling_ms(3, 100, 0), 0);
    assert_int_equal(backoff_ceiling_ms(0, 5000, 2000), 2000); /* base above cap */
    assert_int_equal(backoff_delay_ms(3, 0, 2000, &r), 0);
    assert_int_equal(backoff_delay_ms(3, -1, -1, &r), 0);
}

static void test_backoff_delay_never_exceeds_cap_and_covers_the_range(void **state)
{
    (void)state;
    struct rng r;
    long bins[10] = {0};
    int64_t lo = INT64_MAX, hi = -1;
    double sum = 0;
    const int n = 100000;
    rng_seed(&r, 2024);
    for (int i = 0; i < n; i++) {
        int64_t d = backoff_delay_ms(10, 100, 2000, &r);
        assert_true(d >= 0 && d <= 2000);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
        sum += (double)d;
        bins[d >= 2000 ? 9 : d / 200]++;
    }
    assert_true(lo <= 2 && hi >= 1998);
    assert_true(fabs(sum / n - 1000) < 15);
    for (int i = 0; i < 10; i++) /* each tenth of the range gets ~10% */
        assert_true(labs(bins[i] - n / 10) < n / 100);
}

static void test_backoff_first_retry_stays_within_base(void **state)
{
    (void)state;
    struct rng r;
    int64_t hi = 0;
    rng_seed(&r, 77);
    for (int i = 0; i < 10000; i++) {
        int64_t d = backoff_delay_ms(0, 100, 2000, &r);
        assert_true(d >= 0 && d <= 100);
        hi = d > hi ? d : hi;
    }
    assert_int_equal(hi, 100); /* the ceiling itself is reachable */
}

static void test_backoff_is_deterministic_for_a_seed(void **state)
{
    (void)state;
    struct rng a, b;
    rng_seed(&a, 8);
    rng_seed(&b, 8);
    for (long i = 0; i < 50; i++)
        assert_int_equal(backoff_delay_ms(i % 8, 100, 2000, &a),
                         backoff_delay_ms(i % 8, 100, 2000, &b));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rng_matches_the_splitmix64_reference_sequence),
        cmocka_unit_test(test_rng_equal_seeds_give_equal_sequences),
        cmocka_unit_test(test_rng_uniform_stays_in_unit_interval_with_mean_half),
        cmocka_unit_test(test_rng_below_is_unbiased_and_in_range),
        cmocka_unit_test(test_backoff_ceiling_doubles_until_the_cap),
        cmocka_unit_test(test_backoff_ceiling_never_overflows),
        cmocka_unit_test(test_backoff_odd_inputs_are_safe),
        cmocka_unit_test(test_backoff_delay_never_exceeds_cap_and_covers_the_range),
        cmocka_unit_test(test_backoff_first_retry_stays_within_base),
        cmocka_unit_test(test_backoff_is_deterministic_for_a_seed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
