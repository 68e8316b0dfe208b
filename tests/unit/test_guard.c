/*
 * test_guard.c - the runaway guard with a fake clock: identical-prompt storms per (tag,
 * prompt) refused beyond the limit until the window slides, one event per storm, the three
 * actions, per-tag rate spikes against the tag's own baseline (warm-up, the excess refused,
 * the baseline frozen while spiking), untagged calls never spiking, and the tables' caps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "switchboard/guard.h"

#define T0 1000000000LL /* any monotonic start */

static struct config_guard params(enum guard_action action)
{
    struct config_guard p = {
        .enabled = true,
        .identical_max = 20,
        .identical_window_ms = 60000,
        .spike_factor = 5,
        .spike_min_rps = 2,
        .baseline_window_ms = 300000,
        .action = action,
    };
    return p;
}

static enum guard_verdict check(struct guard *g, int64_t now, const char *tag, uint64_t h,
                                struct guard_decision *d)
{
    struct guard_decision scratch;
    guard_check(g, now, tag, h, d ? d : &scratch);
    return (d ? d : &scratch)->verdict;
}

static void test_guard_storm_is_refused_beyond_the_limit(void **state)
{
    (void)state;
    struct config_guard p = params(GUARD_ACTION_THROTTLE);
    struct guard *g = guard_new(&p);
    struct guard_decision d;
    int events = 0;
    for (int i = 1; i <= 20; i++) {
        assert_int_equal(check(g, T0 + i * 100, "batch-jobs", 42, &d), GUARD_ALLOW);
        events += d.new_event;
    }
    assert_int_equal(check(g, T0 + 2100, "batch-jobs", 42, &d), GUARD_THROTTLE);
    assert_int_equal(d.reason, GUARD_REASON_STORM);
    assert_true(d.new_event);
    assert_non_null(strstr(d.why, "tag 'batch-jobs' sent this same prompt 21 times in 60 s "
                                  "(limit 20)"));
    assert_non_null(strstr(d.event_text, "is looping"));
    assert_non_null(strstr(d.event_text, "throttling"));
    assert_true(d.retry_after_ms > 0 && d.retry_after_ms <= 60000);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(check(g, T0 + 2200 + i, "batch-jobs", 42, &d), GUARD_THROTTLE);
        events += d.new_event;
    }
    assert_int_equal(events, 0); /* one event per storm */
    /* Other prompts and other tags are counted apart. */
    assert_int_equal(check(g, T0 + 3000, "batch-jobs", 43, NULL), GUARD_ALLOW);
    assert_int_equal(check(g, T0 + 3000, "other", 42, NULL), GUARD_ALLOW);
    assert_int_equal(check(g, T0 + 3000, NULL, 42, NULL), GUARD_ALLOW);
    struct guard_stats st;
    guard_get_stats(g, &st);
    assert_int_equal(st.storms, 1);
    assert_int_equal(st.flagged, 51);
    guard_free(g);
}

static void test_guard_storm_ends_when_the_window_slides(void **state)
{
    (void)state;
    struct config_guard p = params(GUARD_ACTION_THROTTLE);
    p.identical_max = 5;
    p.identical_window_ms = 10000; /* buckets of 1 s */
    struct guard *g = guard_new(&p);
    struct guard_decision d;
    for (int i = 0; i < 5; i++)
        assert_int_equal(check(g, T0 + i * 10, NULL, 7, &d), GUARD_ALLOW);
    assert_int_equal(check(g, T0 + 60, NULL, 7, &d), GUARD_THROTTLE);
    assert_non_null(strstr(d.why, "tag '(none)'"));
    int64_t retry = d.retry_after_ms;
    assert_true(retry > 0 && retry <= 10000);
    /* Still inside the window: refused. After retry_after_ms the count is back to the
     * limit. */
    assert_int_equal(check(g, T0 + retry - 100, NULL, 7, NULL), GUARD_THROTTLE);
    assert_int_equal(check(g, T0 + 30000, NULL, 7, &d), GUARD_ALLOW);
    assert_false(d.new_event);
    for (int i = 1; i < 5; i++)
        assert_int_equal(check(g, T0 + 30000 + i, NULL, 7, NULL), GUARD_ALLOW);
    assert_int_equal(check(g, T0 + 30010, NULL, 7, &d), GUARD_THROTTLE);
    assert_true(d.new_event); /* a new storm */
    guard_free(g);
}

static void test_guard_actions_cache_and_observe(void **state)
{
    (void)state;
    struct config_guard p = params(GUARD_ACTION_CACHE);
    p.identical_max = 2;
    struct guard *g = guard_new(&p);
    struct guard_decision d;
    check(g, T0, "t", 1, NULL);
    check(g, T0 + 1, "t", 1, NULL);
    assert_int_equal(check(g, T0 + 2, "t", 1, &d), GUARD_CACHE);
    assert_non_null(strstr(d.event_text, "answering from the cache"));
    struct config_guard o = params(GUARD_ACTION_OBSERVE);
    o.identical_max = 2;
    guard_set_params(g, &o);
    assert_int_equal(check(g, T0 + 3, "t", 2, NULL), GUARD_ALLOW);
    assert_int_equal(check(g, T0 + 4, "t", 2, NULL), GUARD_ALLOW);
    assert_int_equal(check(g, T0 + 5, "t", 2, &d), GUARD_ALLOW);
    assert_int_equal(d.reason, GUARD_REASON_STORM);
    assert_true(d.new_event);
    assert_non_null(strstr(d.event_text, "observing only"));
    struct config_guard off = params(GUARD_ACTION_THROTTLE);
    off.enabled = false;
    guard_set_params(g, &off);
    for (int i = 0; i < 100; i++)
        assert_int_equal(check(g, T0 + 10 + i, "t", 1, NULL), GUARD_ALLOW);
    guard_free(g);
}

/* n requests spread evenly over [from, from + secs), each with a fresh prompt. */
static int burst(struct guard *g, int64_t from, int secs, double rps, const char *tag,
                 uint64_t *seq, int *refused, struct guard_decision *last_event)
{
    int events = 0, n = (int)(secs * rps);
    for (int i = 0; i < n; i++) {
        struct guard_decision d;
        int64_t at = from + (int64_t)((double)i * 1000.0 / rps);
        guard_check(g, at, tag, ++*seq, &d);
        if (d.verdict != GUARD_ALLOW)
            (*refused)++;
        if (d.new_event) {
            events++;
            if (last_event)
                *last_event = d;
        }
    }
    return events;
}

static void test_guard_spike_against_the_tags_own_baseline(void **state)
{
    (void)state;
    struct config_guard p = params(GUARD_ACTION_THROTTLE);
    struct guard *g = guard_new(&p);
    uint64_t seq = 0;
    int refused = 0;
    struct guard_decision ev;
    /* Ten minutes at 2 req/s: the baseline. */
    assert_int_equal(burst(g, T0, 600, 2, "app", &seq, &refused, NULL), 0);
    assert_int_equal(refused, 0);
    /* 8 req/s is under 5x: fine. */
    assert_int_equal(burst(g, T0 + 600000, 30, 8, "app", &seq, &refused, NULL), 0);
    assert_int_equal(refused, 0);
    /* A loop at 100 req/s for a minute: caught within seconds, held near 5x the baseline. */
    int64_t loop = T0 + 630000;
    assert_int_equal(burst(g, loop, 60, 100, "app", &seq, &refused, &ev), 1);
    assert_int_equal(ev.reason, GUARD_REASON_SPIKE);
    assert_non_null(strstr(ev.event_text, "tag 'app' spiked to"));
    int admitted = 6000 - refused;
    assert_true(refused > 5000);
    assert_true(admitted < 60 * 5 * 3 + 100); /* about 5x a baseline of 2-3 req/s */
    /* The baseline froze during the spike: ten more minutes of the loop stay caught. */
    refused = 0;
    burst(g, loop + 60000, 600, 100, "app", &seq, &refused, NULL);
    assert_true(refused > 50000);
    struct guard_stats st;
    guard_get_stats(g, &st);
    assert_int_equal(st.spikes, 1);
    guard_free(g);
}

/* A fake fleet: this instance's arrivals per second, times `others_factor` for the rest. */
struct fake_fleet {
    int64_t now_sec;
    uint64_t mine[4096];
    uint64_t others_factor; /* the other instances send this many times ours */
};

static void fake_note(void *ctx, uint64_t tag_hash)
{
    struct fake_fleet *f = ctx;
    (void)tag_hash;
    f->mine[f->now_sec % 4096]++;
}

static uint64_t fake_count(void *ctx, uint64_t tag_hash, int64_t ago)
{
    struct fake_fleet *f = ctx;
    (void)tag_hash;
    return f->mine[(f->now_sec - ago) % 4096] * (1 + f->others_factor);
}

static int fleet_burst(struct guard *g, struct fake_fleet *f, int64_t from, int secs, double rps,
                       int *refused)
{
    int events = 0, n = (int)(secs * rps);
    for (int i = 0; i < n; i++) {
        struct guard_decision d;
        int64_t at = from + (int64_t)((double)i * 1000.0 / rps);
        f->now_sec = at / 1000;
        if (f->mine[(f->now_sec + 1) % 4096]) /* the ring reuses a slot: clear it ahead */
            f->mine[(f->now_sec + 1) % 4096] = 0;
        guard_check(g, at, "app", (uint64_t)i + 1, &d);
        *refused += d.verdict != GUARD_ALLOW;
        events += d.new_event;
    }
    return events;
}

static void test_guard_spike_counts_the_whole_fleet(void **state)
{
    (void)state;
    struct config_guard p = params(GUARD_ACTION_THROTTLE);
    for (int fleet = 0; fleet < 2; fleet++) {
        struct guard *g = guard_new(&p);
        static struct fake_fleet f;
        memset(&f, 0, sizeof f);
        if (fleet)
            guard_set_fleet(
                g, &(struct guard_fleet_ops){.note = fake_note, .count = fake_count, .ctx = &f});
        int refused = 0;
        /* Ten minutes at 2 req/s, on this instance only: the baseline. */
        assert_int_equal(fleet_burst(g, &f, T0, 600, 2, &refused), 0);
        assert_int_equal(refused, 0);
        /* A loop spread by a load balancer: 8 req/s here (under 5x alone), 24 across three. */
        f.others_factor = 2;
        int events = fleet_burst(g, &f, T0 + 600000, 60, 8, &refused);
        if (!fleet) {
            assert_int_equal(events, 0); /* one instance alone sees no spike */
            assert_int_equal(refused, 0);
        } else {
            assert_int_equal(events, 1);
            /* the fleet keeps about 5x its baseline (10/s): this instance its third */
            int admitted = 480 - refused;
            assert_true(refused > 200);
            assert_true(admitted < 60 * 10 / 3 + 100);
        }
        guard_free(g);
    }
}

static void test_guard_new_tags_and_untagged_calls_do_not_spike(void **state)
{
    (void)state;
    struct config_guard p = params(GUARD_ACTION_THROTTLE);
    struct guard *g = guard_new(&p);
    uint64_t seq = 0;
    int refused = 0;
    /* A new tag at 50 req/s during its first minute: still warming up. */
    assert_int_equal(burst(g, T0, 55, 50, "new", &seq, &refused, NULL), 0);
    assert_int_equal(refused, 0);
    /* Untagged traffic is everyone's: no spike however fast. */
    assert_int_equal(burst(g, T0, 300, 200, NULL, &seq, &refused, NULL), 0);
    assert_int_equal(refused, 0);
    /* After warm-up a steady tag stays fine at its own rate. */
    assert_int_equal(burst(g, T0 + 55000, 300, 50, "new", &seq, &refused, NULL), 0);
    assert_int_equal(refused, 0);
    guard_free(g);
}

static void test_guard_tables_are_capped_and_fail_open(void **state)
{
    (void)state;
    struct config_guard p = params(GUARD_ACTION_THROTTLE);
    struct guard *g = guard_new(&p);
    for (uint64_t i = 1; i <= GUARD_MAX_KEYS + 100; i++)
        assert_int_equal(check(g, T0 + (int64_t)i, NULL, i, NULL), GUARD_ALLOW);
    struct guard_stats st;
    guard_get_stats(g, &st);
    assert_int_equal(st.keys, GUARD_MAX_KEYS);
    assert_int_equal(st.untracked, 100);
    /* Once the window has passed, stale keys are swept and new ones are watched again. */
    check(g, T0 + 200000, NULL, 1u << 30, NULL);
    guard_get_stats(g, &st);
    assert_int_equal(st.keys, 1);
    char tag[32];
    for (int i = 0; i < GUARD_MAX_TAGS + 10; i++) {
        snprintf(tag, sizeof tag, "t%d", i);
        check(g, T0 + 300000, tag, (uint64_t)i + 1, NULL);
    }
    guard_get_stats(g, &st);
    assert_int_equal(st.tags, GUARD_MAX_TAGS);
    guard_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_guard_storm_is_refused_beyond_the_limit),
        cmocka_unit_test(test_guard_storm_ends_when_the_window_slides),
        cmocka_unit_test(test_guard_actions_cache_and_observe),
        cmocka_unit_test(test_guard_spike_against_the_tags_own_baseline),
        cmocka_unit_test(test_guard_new_tags_and_untagged_calls_do_not_spike),
        cmocka_unit_test(test_guard_spike_counts_the_whole_fleet),
        cmocka_unit_test(test_guard_tables_are_capped_and_fail_open),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
