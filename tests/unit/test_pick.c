/*
 * test_pick.c - selection strategies (exact WRR split, p2c load avoidance, tie rules) and
 * peak-EWMA.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "switchboard/pick.h"

static struct pick_candidate cand(double weight)
{
    return (struct pick_candidate){.weight = weight, .eligible = true, .est_cost_usd = -1};
}

static size_t must_pick(struct pick_state *st, enum route_strategy s,
                        const struct pick_candidate *c, size_t n, struct rng *rng)
{
    size_t chosen = 999;
    assert_true(pick_next(st, s, c, n, rng, &chosen));
    assert_true(chosen < n);
    assert_true(c[chosen].eligible);
    return chosen;
}

static void test_pick_weighted_splits_3_to_1_exactly(void **state)
{
    (void)state;
    struct pick_state st;
    struct pick_candidate c[2] = {cand(3), cand(1)};
    pick_state_init(&st);
    for (int block = 0; block < 1000; block++) { /* 4000 picks: 3:1 in every block of 4 */
        int counts[2] = {0};
        for (int i = 0; i < 4; i++)
            counts[must_pick(&st, STRATEGY_WEIGHTED, c, 2, NULL)]++;
        assert_int_equal(counts[0], 3);
        assert_int_equal(counts[1], 1);
    }
}

static void test_pick_weighted_interleaves_like_nginx(void **state)
{
    (void)state;
    struct pick_state st;
    struct pick_candidate c[3] = {cand(5), cand(1), cand(1)};
    char seq[15] = {0};
    pick_state_init(&st);
    for (int i = 0; i < 14; i++)
        seq[i] = (char)('a' + must_pick(&st, STRATEGY_WEIGHTED, c, 3, NULL));
    assert_string_equal(seq, "aabacaaaabacaa"); /* nginx's documented {5,1,1} order */
}

static void test_pick_weighted_handles_fractional_weights(void **state)
{
    (void)state;
    struct pick_state st;
    struct pick_candidate c[3] = {cand(0.5), cand(0.25), cand(0.25)};
    int counts[3] = {0};
    pick_state_init(&st);
    for (int i = 0; i < 4000; i++)
        counts[must_pick(&st, STRATEGY_WEIGHTED, c, 3, NULL)]++;
    assert_int_equal(counts[0], 2000);
    assert_int_equal(counts[1], 1000);
    assert_int_equal(counts[2], 1000);
}

static void test_pick_weighted_skips_ineligible_and_zero_weight(void **state)
{
    (void)state;
    struct pick_state st;
    struct pick_candidate c[4] = {cand(5), cand(0), cand(2), cand(2)};
    size_t chosen = 7;
    c[0].eligible = false;
    pick_state_init(&st);
    int counts[4] = {0};
    for (int i = 0; i < 100; i++)
        counts[must_pick(&st, STRATEGY_WEIGHTED, c, 4, NULL)]++;
    assert_int_equal(counts[0], 0);
    assert_int_equal(counts[1], 0);
    assert_int_equal(counts[2], 50);
    assert_int_equal(counts[3], 50);
    c[2].eligible = c[3].eligible = false;
    assert_false(pick_next(&st, STRATEGY_WEIGHTED, c, 4, NULL, &chosen));
    assert_int_equal(chosen, 7); /* untouched */
}

static void test_pick_next_after_a_failure_skips_the_tried_target(void **state)
{
    (void)state;
    struct pick_state st;
    struct pick_candidate c[3] = {cand(1), cand(1), cand(1)};
    pick_state_init(&st);
    for (int strategy = STRATEGY_WEIGHTED; strategy <= STRATEGY_P2C; strategy++) {
        struct rng r;
        rng_seed(&r, 1);
        for (int i = 0; i < 3; i++)
            c[i].eligible = true;
        size_t first = must_pick(&st, (enum route_strategy)strategy, c, 3, &r);
        c[first].eligible = false;
        size_t second = must_pick(&st, (enum route_strategy)strategy, c, 3, &r);
        assert_true(second != first);
        c[second].eligible = false;
        size_t third = must_pick(&st, (enum route_strategy)strategy, c, 3, &r);
        assert_true(third != first && third != second);
        c[third].eligible = false;
        size_t none = 9;
        assert_false(pick_next(&st, (enum route_strategy)strategy, c, 3, &r, &none));
    }
}

static void test_pick_nothing_from_an_empty_list(void **state)
{
    (void)state;
    struct pick_state st;
    struct rng r;
    size_t chosen = 5;
    pick_state_init(&st);
    rng_seed(&r, 1);
    for (int strategy = STRATEGY_WEIGHTED; strategy <= STRATEGY_P2C; strategy++)
        assert_false(pick_next(&st, (enum route_strategy)strategy, NULL, 0, &r, &chosen));
    assert_int_equal(chosen, 5);
}

static void test_pick_priority_takes_the_first_eligible(void **state)
{
    (void)state;
    struct pick_state st;
    struct pick_candidate c[3] = {cand(1), cand(100), cand(1)};
    pick_state_init(&st);
    assert_int_equal(must_pick(&st, STRATEGY_PRIORITY, c, 3, NULL), 0);
    c[0].eligible = false;
    assert_int_equal(must_pick(&st, STRATEGY_PRIORITY, c, 3, NULL), 1);
    c[1].eligible = false;
    assert_int_equal(must_pick(&st, STRATEGY_PRIORITY, c, 3, NULL), 2);
}

static void test_pick_cheapest_takes_lowest_cost_and_breaks_ties_by_order(void **state)
{
    (void)state;
    struct pick_state st;
    struct pick_candidate c[4] = {cand(1), cand(1), cand(1), cand(1)};
    c[0].est_cost_usd = -1; /* unknown price */
    c[1].est_cost_usd = 0.004;
    c[2].est_cost_usd = 0.002;
    c[3].est_cost_usd = 0.002;
    pick_state_init(&st);
    assert_int_equal(must_pick(&st, STRATEGY_CHEAPEST, c, 4, NULL), 2);
    c[2].eligible = false;
    assert_int_equal(must_pick(&st, STRATEGY_CHEAPEST, c, 4, NULL), 3);
    c[3].eligible = false;
    assert_int_equal(must_pick(&st, STRATEGY_CHEAPEST, c, 4, NULL), 1);
    c[1].eligible = false;
    assert_int_equal(must_pick(&st, STRATEGY_CHEAPEST, c, 4, NULL), 0); /* unknown: last */
    c[1].eligible = true;
    c[1].est_cost_usd = 0; /* free (a local model) beats everything */
    c[2].eligible = true;
    assert_int_equal(must_pick(&st, STRATEGY_CHEAPEST, c, 4, NULL), 1);
}

static void test_pick_fastest_takes_lowest_latency(void **state)
{
    (void)state;
    struct pick_state st;
    struct pick_candidate c[3] = {cand(1), cand(1), cand(1)};
    c[0].latency_score_ms = 900;
    c[1].latency_score_ms = 300;
    c[2].latency_score_ms = 300;
    pick_state_init(&st);
    st.explore = 0;
    assert_int_equal(must_pick(&st, STRATEGY_FASTEST, c, 3, NULL), 1);
    c[1].latency_score_ms = 301;
    assert_int_equal(must_pick(&st, STRATEGY_FASTEST, c, 3, NULL), 2);
}

static void test_pick_fastest_tries_an_unmeasured_target_one_call_at_a_time(void **state)
{
    (void)state;
    struct pick_state st;
    struct pick_candidate c[2] = {cand(1), cand(1)};
    c[0].latency_score_ms = 200;
    c[1].latency_score_ms = 0; /* new: no data */
    pick_state_init(&st);
    st.explore = 0;
    assert_int_equal(must_pick(&st, STRATEGY_FASTEST, c, 2, NULL), 1);
    c[1].in_flight = 1; /* its first call is running: don't pile on */
    assert_int_equal(must_pick(&st, STRATEGY_FASTEST, c, 2, NULL), 0);
    c[0].eligible = false; /* but it is still better than nothing */
    assert_int_equal(must_pick(&st, STRATEGY_FASTEST, c, 2, NULL), 1);
}

static void test_pick_fastest_explores_at_the_configured_rate(void **state)
{
    (void)state;
    struct pick_state st;
    struct pick_candidate c[2] = {cand(1), cand(1)};
    struct rng r;
    int slow = 0;
    c[0].latency_score_ms = 100;
    c[1].latency_score_ms = 5000;
    pick_state_init(&st);
    assert_true(st.explore == PICK_EXPLORE_DEFAULT);
    rng_seed(&r, 11);
    for (int i = 0; i < 20000; i++)
        slow += must_pick(&st, STRATEGY_FASTEST, c, 2, &r) == 1;
    /* explore 5%, half of which lands on the slow one: 2.5% = 500 of 20000 */
    assert_true(slow > 400 && slow < 600);
    st.explore = 0;
    for (int i = 0; i < 1000; i++)
        assert_int_equal(must_pick(&st, STRATEGY_FASTEST, c, 2, &r), 0);
}

static void test_pick_least_busy_takes_fewest_in_flight(void **state)
{
    (void)state;
    struct pick_state st;
    struct pick_candidate c[4] = {cand(1), cand(1), cand(3), cand(3)};
    c[0].in_flight = 4;
    c[1].in_flight = 2;
    c[2].in_flight = 2;
    c[3].in_flight = 2;
    pick_state_init(&st);
    assert_int_equal(must_pick(&st, STRATEGY_LEAST_BUSY, c, 4, NULL), 2); /* tie: weight */
    c[2].weight = 1;
    assert_int_equal(must_pick(&st, STRATEGY_LEAST_BUSY, c, 4, NULL), 3);
    c[3].weight = 1;
    assert_int_equal(must_pick(&st, STRATEGY_LEAST_BUSY, c, 4, NULL), 1); /* then order */
    c[0].in_flight = 0;
    assert_int_equal(must_pick(&st, STRATEGY_LEAST_BUSY, c, 4, NULL), 0);
}

/* One simulated call in flight. */
struct sim_call {
    int64_t end;
    int64_t start;
    size_t target;
};

/* Discrete-time run: a call every 2 ms for n picks; each target answers after its latency;
 * in-flight counts and peak-EWMAs are kept as the router would. Returns picks per target. */
static void p2c_simulate(const double *latency_ms, size_t n_targets, int n, uint64_t seed,
                         int *picks)
{
    enum { MAX_CALLS = 4096 };
    static struct sim_call calls[MAX_CALLS];
    struct peak_ewma ewma[8];
    struct pick_candidate c[8];
    struct pick_state st;
    struct rng r;
    size_t n_calls = 0;
    pick_state_init(&st);
    rng_seed(&r, seed);
    for (size_t i = 0; i < n_targets; i++) {
        ewma_init(&ewma[i]);
        c[i] = cand(1);
        picks[i] = 0;
    }
    for (int64_t now = 0, k = 0; k < n; now += 2, k++) {
        for (size_t j = 0; j < n_calls;) { /* complete what is due */
            if (calls[j].end > now) {
                j++;
                continue;
            }
            size_t t = calls[j].target;
            ewma_observe(&ewma[t], now, (double)(now - calls[j].start), 10000);
            c[t].in_flight--;
            calls[j] = calls[--n_calls];
        }
        for (size_t i = 0; i < n_targets; i++)
            c[i].ewma_ms = ewma_value(&ewma[i]);
        size_t t = must_pick(&st, STRATEGY_P2C, c, n_targets, &r);
        picks[t]++;
        c[t].in_flight++;
        assert_true(n_calls < MAX_CALLS);
        calls[n_calls++] = (struct sim_call){now + (int64_t)latency_ms[t], now, t};
    }
}

static void test_pick_p2c_sends_little_to_a_slow_target(void **state)
{
    (void)state;
    const double latency[3] = {40, 40, 800};
    int picks[3];
    p2c_simulate(latency, 3, 10000, 2024, picks);
    assert_int_equal(picks[0] + picks[1] + picks[2], 10000);
    if (picks[2] >= 1000)
        fail_msg("slow target got %d of 10000 picks", picks[2]);
    assert_true(picks[2] > 0); /* it still gets probed by load */
    assert_true(abs(picks[0] - picks[1]) < 800);
}

static void test_pick_p2c_spreads_evenly_among_equal_targets(void **state)
{
    (void)state;
    struct pick_state st;
    struct pick_candidate c[3] = {cand(1), cand(1), cand(1)};
    struct rng r;
    int counts[3] = {0};
    pick_state_init(&st);
    rng_seed(&r, 99);
    for (int i = 0; i < 3; i++)
        c[i].ewma_ms = 100;
    for (int i = 0; i < 30000; i++)
        counts[must_pick(&st, STRATEGY_P2C, c, 3, &r)]++;
    for (int i = 0; i < 3; i++) /* ties go to the first drawn: no positional bias */
        assert_true(abs(counts[i] - 10000) < 400);
}

static void test_pick_p2c_weighs_latency_by_in_flight(void **state)
{
    (void)state;
    struct pick_state st;
    struct pick_candidate c[2] = {cand(1), cand(1)};
    struct rng r;
    pick_state_init(&st);
    rng_seed(&r, 5);
    c[0].ewma_ms = 100;
    c[0].in_flight = 5; /* 600 */
    c[1].ewma_ms = 300; /* 300 */
    for (int i = 0; i < 100; i++)
        assert_int_equal(must_pick(&st, STRATEGY_P2C, c, 2, &r), 1);
    c[1].in_flight = 1; /* 600 vs 600: first drawn wins, both happen */
    int counts[2] = {0};
    for (int i = 0; i < 1000; i++)
        counts[must_pick(&st, STRATEGY_P2C, c, 2, &r)]++;
    assert_true(counts[0] > 400 && counts[1] > 400);
    /* unknown ewma stands in as the lowest known one (100): 100 * 1 beats both */
    c[1].ewma_ms = 0;
    c[1].in_flight = 0;
    assert_int_equal(must_pick(&st, STRATEGY_P2C, c, 2, NULL), 1);
}

static void test_pick_p2c_without_rng_takes_the_best(void **state)
{
    (void)state;
    struct pick_state st;
    struct pick_candidate c[3] = {cand(1), cand(1), cand(1)};
    pick_state_init(&st);
    c[0].ewma_ms = 300;
    c[1].ewma_ms = 200;
    c[2].ewma_ms = 250;
    assert_int_equal(must_pick(&st, STRATEGY_P2C, c, 3, NULL), 1);
    c[1].eligible = false;
    c[2].eligible = false;
    assert_int_equal(must_pick(&st, STRATEGY_P2C, c, 3, NULL), 0);
}

static void test_pick_same_seed_gives_same_picks(void **state)
{
    (void)state;
    const double latency[3] = {40, 60, 800};
    int a[3], b[3];
    p2c_simulate(latency, 3, 3000, 77, a);
    p2c_simulate(latency, 3, 3000, 77, b);
    assert_memory_equal(a, b, sizeof(a));
}

static void test_pick_considers_at_most_the_maximum_candidates(void **state)
{
    (void)state;
    static struct pick_candidate c[PICK_MAX_CANDIDATES + 1];
    struct pick_state st;
    pick_state_init(&st);
    for (size_t i = 0; i <= PICK_MAX_CANDIDATES; i++)
        c[i] = cand(1);
    for (size_t i = 0; i < PICK_MAX_CANDIDATES; i++)
        c[i].eligible = false;
    size_t chosen;
    assert_false(pick_next(&st, STRATEGY_WEIGHTED, c, PICK_MAX_CANDIDATES + 1, NULL, &chosen));
    assert_false(pick_next(&st, STRATEGY_PRIORITY, c, PICK_MAX_CANDIDATES + 1, NULL, &chosen));
}

static void test_ewma_jumps_to_peaks_and_decays_with_tau(void **state)
{
    (void)state;
    struct peak_ewma e;
    ewma_init(&e);
    assert_true(ewma_value(&e) == 0);
    ewma_observe(&e, 0, 100, 1000);
    assert_true(ewma_value(&e) == 100); /* first observation seeds */
    ewma_observe(&e, 10, 1000, 1000);
    assert_true(ewma_value(&e) == 1000); /* a peak replaces at once */
    ewma_observe(&e, 1010, 100, 1000);   /* one tau later: weight e^-1 on the old value */
    double want = 1000 * exp(-1.0) + 100 * (1 - exp(-1.0));
    assert_true(fabs(ewma_value(&e) - want) < 1e-9);
    for (int64_t t = 2000; t < 20000; t += 1000)
        ewma_observe(&e, t, 100, 1000);
    assert_true(fabs(ewma_value(&e) - 100) < 0.1);
}

static void test_ewma_same_instant_and_no_memory(void **state)
{
    (void)state;
    struct peak_ewma e;
    ewma_init(&e);
    ewma_observe(&e, 50, 500, 1000);
    ewma_observe(&e, 50, 100, 1000); /* dt = 0: no weight yet on the new value */
    assert_true(ewma_value(&e) == 500);
    ewma_observe(&e, 40, 100, 1000); /* clock went back: treated as dt = 0 */
    assert_true(ewma_value(&e) == 500);
    ewma_observe(&e, 60, 100, 0); /* tau 0: just the last value */
    assert_true(ewma_value(&e) == 100);
    ewma_observe(&e, 70, -5, 1000); /* negative latency counts as 0 */
    assert_true(ewma_value(&e) < 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pick_weighted_splits_3_to_1_exactly),
        cmocka_unit_test(test_pick_weighted_interleaves_like_nginx),
        cmocka_unit_test(test_pick_weighted_handles_fractional_weights),
        cmocka_unit_test(test_pick_weighted_skips_ineligible_and_zero_weight),
        cmocka_unit_test(test_pick_next_after_a_failure_skips_the_tried_target),
        cmocka_unit_test(test_pick_nothing_from_an_empty_list),
        cmocka_unit_test(test_pick_priority_takes_the_first_eligible),
        cmocka_unit_test(test_pick_cheapest_takes_lowest_cost_and_breaks_ties_by_order),
        cmocka_unit_test(test_pick_fastest_takes_lowest_latency),
        cmocka_unit_test(test_pick_fastest_tries_an_unmeasured_target_one_call_at_a_time),
        cmocka_unit_test(test_pick_fastest_explores_at_the_configured_rate),
        cmocka_unit_test(test_pick_least_busy_takes_fewest_in_flight),
        cmocka_unit_test(test_pick_p2c_sends_little_to_a_slow_target),
        cmocka_unit_test(test_pick_p2c_spreads_evenly_among_equal_targets),
        cmocka_unit_test(test_pick_p2c_weighs_latency_by_in_flight),
        cmocka_unit_test(test_pick_p2c_without_rng_takes_the_best),
        cmocka_unit_test(test_pick_same_seed_gives_same_picks),
        cmocka_unit_test(test_pick_considers_at_most_the_maximum_candidates),
        cmocka_unit_test(test_ewma_jumps_to_peaks_and_decays_with_tau),
        cmocka_unit_test(test_ewma_same_instant_and_no_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
