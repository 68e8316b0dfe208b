/*
 * test_hist.c - log-linear histogram accuracy, bucket layout, Prometheus buckets, windows.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "switchboard/backoff.h"
#include "switchboard/hist.h"

#define N_SAMPLES 100000

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The exact q-quantile with the same rank rule as hist_quantile: rank ceil(q * n). */
static double exact_quantile(const int64_t *sorted, size_t n, double q)
{
    size_t rank = (size_t)ceil(q * (double)n);
    if (rank < 1)
        rank = 1;
    return (double)sorted[rank - 1];
}

static void assert_quantiles_close(const struct hist *h, int64_t *samples, size_t n)
{
    static const double qs[] = {0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999};
    const size_t n_qs = sizeof(qs) / sizeof(qs[0]);
    double sum_err = 0;
    qsort(samples, n, sizeof(samples[0]), cmp_i64);
    for (size_t i = 0; i < n_qs; i++) {
        double want = exact_quantile(samples, n, qs[i]);
        double got = hist_quantile(h, qs[i]);
        double err = fabs(got - want) / want;
        if (err > 0.03)
            fail_msg("q=%.3f: got %.1f want %.1f (error %.2f%%)", qs[i], got, want, err * 100);
        sum_err += err;
    }
    /* Interpolating inside the bucket keeps the typical error far below the bucket width
     * (reporting a bucket bound instead would average 0.8-1.3% here). */
    if (sum_err / (double)n_qs > 0.005)
        fail_msg("mean quantile error %.2f%%", sum_err / (double)n_qs * 100);
}

static void test_hist_empty_reports_zero(void **state)
{
    (void)state;
    struct hist h;
    hist_init(&h);
    assert_int_equal(hist_count(&h), 0);
    assert_true(hist_quantile(&h, 0.5) == 0);
    assert_int_equal(hist_max_us(&h), 0);
    assert_int_equal(hist_min_us(&h), 0);
    assert_true(hist_mean_us(&h) == 0);
}

static void test_hist_buckets_are_contiguous_and_narrow(void **state)
{
    (void)state;
    assert_int_equal(hist_bucket_count(), HIST_BUCKETS);
    assert_int_equal(hist_bucket_lower_us(0), 0);
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        int64_t lo = hist_bucket_lower_us(i), hi = hist_bucket_upper_us(i);
        assert_true(lo <= hi);
        assert_int_equal(hist_bucket_index(lo), i);
        assert_int_equal(hist_bucket_index(hi), i);
        if (i + 1 < HIST_BUCKETS)
            assert_int_equal(hist_bucket_lower_us(i + 1), hi + 1);
        if (lo >= 64) /* width is at most 1/32 of the lower bound */
            assert_true((hi - lo + 1) * 32 <= lo);
    }
    assert_int_equal(hist_bucket_upper_us(HIST_BUCKETS - 1), HIST_MAX_US);
    /* 10 minutes fits below the last bucket's bound */
    assert_true(HIST_MAX_US > INT64_C(600000000));
}

static void test_hist_small_values_are_exact(void **state)
{
    (void)state;
    struct hist h;
    hist_init(&h);
    for (int64_t v = 1; v <= 50; v++)
        hist_record(&h, v);
    assert_true(hist_quantile(&h, 0.5) == 25);
    assert_true(hist_quantile(&h, 0.9) == 45);
    assert_true(hist_quantile(&h, 0.02) == 1);
}

static void test_hist_quantiles_within_3pct_for_uniform_samples(void **state)
{
    (void)state;
    static int64_t samples[N_SAMPLES];
    struct hist h;
    struct rng r;
    hist_init(&h);
    rng_seed(&r, 42);
    for (size_t i = 0; i < N_SAMPLES; i++) {
        samples[i] = 1000 + (int64_t)rng_below(&r, 2000000); /* 1 ms .. 2 s */
        hist_record(&h, samples[i]);
    }
    assert_quantiles_close(&h, samples, N_SAMPLES);
}

static void test_hist_quantiles_within_3pct_for_lognormal_samples(void **state)
{
    (void)state;
    static int64_t samples[N_SAMPLES];
    struct hist h;
    struct rng r;
    hist_init(&h);
    rng_seed(&r, 7);
    for (size_t i = 0; i < N_SAMPLES; i++) {
        /* Box-Muller; median 200 ms, sigma 1 (a long LLM-like tail) */
        double u1 = 1.0 - rng_uniform(&r), u2 = rng_uniform(&r);
        double z = sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
        samples[i] = (int64_t)(200000.0 * exp(z));
        hist_record(&h, samples[i]);
    }
    assert_quantiles_close(&h, samples, N_SAMPLES);
}

static void test_hist_tracks_count_sum_min_max_exactly(void **state)
{
    (void)state;
    struct hist h;
    hist_init(&h);
    hist_record(&h, 1234567);
    hist_record(&h, 89);
    hist_record(&h, 1000);
    assert_int_equal(hist_count(&h), 3);
    assert_int_equal(hist_sum_us(&h), 1234567 + 89 + 1000);
    assert_int_equal(hist_min_us(&h), 89);
    assert_int_equal(hist_max_us(&h), 1234567);
    assert_true(hist_quantile(&h, 0) == 89);
    assert_true(hist_quantile(&h, 1) == 1234567);
    assert_true(fabs(hist_mean_us(&h) - (1234567 + 89 + 1000) / 3.0) < 1e-6);
}

static void test_hist_clamps_negative_and_huge_values(void **state)
{
    (void)state;
    struct hist h;
    hist_init(&h);
    hist_record(&h, -5);
    int64_t huge = INT64_C(3600) * 1000000; /* one hour, beyond the last bucket */
    hist_record(&h, huge);
    assert_int_equal(hist_bucket_value(&h, 0), 1);
    assert_int_equal(hist_bucket_value(&h, HIST_BUCKETS - 1), 1);
    assert_int_equal(hist_max_us(&h), huge);
    assert_true(hist_quantile(&h, 1) == (double)huge);
    assert_int_equal(hist_bucket_value(&h, HIST_BUCKETS), 0); /* out of range: 0 */
}

static void test_hist_merge_equals_recording_everything(void **state)
{
    (void)state;
    struct hist a, b, all;
    struct rng r;
    hist_init(&a);
    hist_init(&b);
    hist_init(&all);
    rng_seed(&r, 3);
    for (int i = 0; i < 5000; i++) {
        int64_t v = (int64_t)rng_below(&r, 10000000);
        hist_record(i % 3 ? &a : &b, v);
        hist_record(&all, v);
    }
    hist_merge(&a, &b);
    assert_memory_equal(&a, &all, sizeof(a));
}

static void test_hist_reset_forgets_everything(void **state)
{
    (void)state;
    struct hist h, empty;
    hist_init(&h);
    hist_init(&empty);
    hist_record(&h, 5);
    hist_record(&h, 5000000);
    hist_reset(&h);
    assert_memory_equal(&h, &empty, sizeof(h));
}

static void test_hist_prom_buckets_are_exact_and_cumulative(void **state)
{
    (void)state;
    struct hist h;
    uint64_t cum[HIST_PROM_COUNT];
    hist_init(&h);
    hist_record(&h, 5000);     /* le 0.005 (inclusive) */
    hist_record(&h, 5001);     /* le 0.01 */
    hist_record(&h, 999999);   /* le 1 */
    hist_record(&h, 1000000);  /* le 1 */
    hist_record(&h, 60000000); /* le 60 */
    hist_record(&h, 60000001); /* +Inf only */
    hist_prom_cumulative(&h, cum);
    assert_int_equal(cum[0], 1);
    assert_int_equal(cum[1], 2);
    assert_int_equal(cum[6], 2);  /* le 0.5 */
    assert_int_equal(cum[7], 4);  /* le 1 */
    assert_int_equal(cum[12], 5); /* le 60 */
    assert_int_equal(cum[13], 6); /* +Inf == count */
    assert_string_equal(hist_prom_le_label(0), "0.005");
    assert_string_equal(hist_prom_le_label(8), "2.5");
    assert_string_equal(hist_prom_le_label(12), "60");
    assert_string_equal(hist_prom_le_label(13), "+Inf");
    assert_int_equal(hist_prom_le_us(9), 5000000);
    assert_true(hist_prom_le_us(13) == INT64_MAX);
}

static void test_whist_forgets_values_older_than_the_window(void **state)
{
    (void)state;
    static struct whist w;
    whist_init(&w, 5000, 12); /* 1 minute */
    assert_int_equal(whist_window_ms(&w), 60000);
    whist_record(&w, 0, 1000);
    whist_record(&w, 4999, 2000);
    assert_int_equal(whist_count(&w, 59999), 2);
    assert_int_equal(whist_count(&w, 60000), 0);
    whist_record(&w, 30000, 3000);
    assert_int_equal(whist_count(&w, 60000), 1);
    assert_int_equal(whist_count(&w, 89999), 1);
    assert_int_equal(whist_count(&w, 90000), 0);
}

static void test_whist_quantiles_cover_only_the_window(void **state)
{
    (void)state;
    static struct whist w;
    whist_init(&w, 5000, 12);
    for (int i = 0; i < 1000; i++)
        whist_record(&w, i * 10, 10000); /* 10 ms during 0..10 s */
    assert_true(fabs(whist_quantile(&w, 59999, 0.5) - 10000) <= 300);
    for (int i = 0; i < 100; i++)
        whist_record(&w, 65000 + i, 100000); /* 100 ms at 65 s */
    /* at 66 s the window is 10..66 s: only the 100 ms values remain */
    assert_int_equal(whist_count(&w, 66000), 100);
    assert_true(fabs(whist_quantile(&w, 66000, 0.5) - 100000) <= 3000);
    double qs[3] = {0.5, 0.95, 0.99}, out[3];
    whist_quantiles(&w, 66000, qs, out, 3);
    for (int i = 0; i < 3; i++)
        assert_true(out[i] == whist_quantile(&w, 66000, qs[i]));
}

static void test_whist_five_minute_ring_keeps_five_minutes(void **state)
{
    (void)state;
    static struct whist w;
    whist_init(&w, 25000, 12);
    assert_int_equal(whist_window_ms(&w), 300000);
    whist_record(&w, 1000, 500);
    assert_int_equal(whist_count(&w, 299999), 1);
    assert_int_equal(whist_count(&w, 300000), 0);
}

static void test_whist_long_idle_gap_clears_old_slots(void **state)
{
    (void)state;
    static struct whist w;
    struct hist h;
    whist_init(&w, 5000, 12);
    for (int64_t t = 0; t < 60000; t += 1000)
        whist_record(&w, t, 7000);
    /* an hour later the same slot indices are reused for new intervals */
    int64_t later = 3600000;
    whist_record(&w, later, 9000);
    hist_init(&h);
    whist_merge_into(&w, later, &h);
    assert_int_equal(hist_count(&h), 1);
    assert_int_equal(hist_max_us(&h), 9000);
    assert_int_equal(hist_min_us(&h), 9000);
}

static void test_whist_counts_a_stale_timestamp_instead_of_dropping_it(void **state)
{
    (void)state;
    static struct whist w;
    whist_init(&w, 5000, 12);
    whist_record(&w, 120000, 1000);
    whist_record(&w, 60000, 2000); /* same slot index, one window earlier */
    assert_int_equal(whist_count(&w, 120000), 2);
}

static void test_whist_clamps_its_shape(void **state)
{
    (void)state;
    static struct whist w;
    whist_init(&w, 0, 100);
    assert_int_equal(w.n_slots, WHIST_MAX_SLOTS);
    assert_int_equal(w.slot_ms, 1);
    whist_init(&w, 1000, 0);
    assert_int_equal(w.n_slots, 1);
    whist_record(&w, 500, 1);
    assert_int_equal(whist_count(&w, 999), 1);
    assert_int_equal(whist_count(&w, 1000), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hist_empty_reports_zero),
        cmocka_unit_test(test_hist_buckets_are_contiguous_and_narrow),
        cmocka_unit_test(test_hist_small_values_are_exact),
        cmocka_unit_test(test_hist_quantiles_within_3pct_for_uniform_samples),
        cmocka_unit_test(test_hist_quantiles_within_3pct_for_lognormal_samples),
        cmocka_unit_test(test_hist_tracks_count_sum_min_max_exactly),
        cmocka_unit_test(test_hist_clamps_negative_and_huge_values),
        cmocka_unit_test(test_hist_merge_equals_recording_everything),
        cmocka_unit_test(test_hist_reset_forgets_everything),
        cmocka_unit_test(test_hist_prom_buckets_are_exact_and_cumulative),
        cmocka_unit_test(test_whist_forgets_values_older_than_the_window),
        cmocka_unit_test(test_whist_quantiles_cover_only_the_window),
        cmocka_unit_test(test_whist_five_minute_ring_keeps_five_minutes),
        cmocka_unit_test(test_whist_long_idle_gap_clears_old_slots),
        cmocka_unit_test(test_whist_counts_a_stale_timestamp_instead_of_dropping_it),
        cmocka_unit_test(test_whist_clamps_its_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
