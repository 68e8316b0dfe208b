/*
 * test_quality_minutes.c - the ledger writer's quality minute buckets (src/ledger/qminutes.c)
 * against the SQL recount (ledger_quality_load) on a real SQLite file: a randomized sequence of
 * calls (several targets and routes, direct calls, answered, abandoned, throttled, truncated,
 * failed, estimated and baseline costs) spread over 30 hours, API feedback (some of it late,
 * on calls hours old, some of it a second rating the table ignores) and console votes, compared
 * by target, route and route/target over the hour and the day at several points: while
 * writing, after reopening the file (the buckets seeded by the scan), and after writing more
 * (feedback on calls from before the reopen). Reading the buckets runs no SQL, and neither do
 * the gateway's quality refresh and guard windows (gw_quality_window) up to a day, nor the
 * one-key windows of GET /admin/quality/{target} and the console (ledger_quality_window with
 * a key), compared key by key; past the key cap those fall back to SQL.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "../../src/gateway/internal.h"
#include "support_tmp.h"
#include "switchboard/ledger.h"

#define MIN_MS  60000LL
#define HOUR_MS 3600000LL
#define N_CALLS 600

struct world {
    int64_t now;
    unsigned seed;
    char ids[2 * N_CALLS + 1][32];
    int64_t ts[2 * N_CALLS + 1];
    int n;
    uint64_t posted;
};

static struct ledger *open_ok(const char *path)
{
    char msg[256] = "";
    struct ledger *l = ledger_open(path, 5, msg, sizeof msg);
    if (!l)
        fail_msg("ledger_open: %s", msg);
    return l;
}

static void wait_written(struct ledger *l, uint64_t posted)
{
    for (int i = 0; i < 2000; i++) {
        struct ledger_stats st;
        ledger_get_stats(l, &st);
        if (st.written + st.dropped >= posted && st.queued == 0)
            return;
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    fail_msg("the ledger did not write %llu rows", (unsigned long long)posted);
}

static int pick(struct world *w, int n)
{
    return rand_r(&w->seed) % n;
}

static void post_call(struct ledger *l, struct world *w, int64_t ts)
{
    static const char *const targets[] = {"alpha", "beta", "gamma", "delta"};
    static const char *const routes[] = {"chat", "code", "", NULL};
    static const int statuses[] = {200, 200, 200, 200, 499, 429, 502, 200};
    static const enum llm_finish finishes[] = {LLM_FINISH_STOP,           LLM_FINISH_NONE,
                                               LLM_FINISH_LENGTH,         LLM_FINISH_TOOL_CALLS,
                                               LLM_FINISH_CONTENT_FILTER, LLM_FINISH_ERROR};
    snprintf(w->ids[w->n], sizeof w->ids[0], "req-%d", w->n);
    int status = statuses[pick(w, SB_ARRAY_LEN(statuses))];
    struct ledger_call c = {
        .wall_ms = ts,
        .request_id = w->ids[w->n],
        .route = routes[pick(w, SB_ARRAY_LEN(routes))],
        .target = pick(w, 20) ? targets[pick(w, SB_ARRAY_LEN(targets))] : "",
        .model = "m",
        .status = status,
        .throttled = status == 429,
        .err = status == 200   ? LLM_ERR_NONE
               : status == 499 ? LLM_ERR_CANCELLED
               : pick(w, 2)    ? LLM_ERR_TRUNCATED
                               : LLM_ERR_SERVER,
        .attempts = 1,
        .usage_missing = pick(w, 5) == 0,
        .cost_usd = pick(w, 1000) / 7000.0,
        .est_cost_usd = pick(w, 3) ? pick(w, 1000) / 9000.0 : -1,
        .baseline_cost_usd = pick(w, 2) ? pick(w, 1000) / 3000.0 : -1,
        .retry_cost_usd = pick(w, 4) ? -1 : pick(w, 100) / 11000.0,
        .hedge_cost_usd = pick(w, 4) ? -1 : pick(w, 100) / 13000.0,
        .latency_us = 1000,
        .ttft_us = -1,
        .finish = status == 200 || pick(w, 3) == 0 ? finishes[pick(w, SB_ARRAY_LEN(finishes))]
                                                   : LLM_FINISH_NONE,
    };
    w->ts[w->n++] = ts;
    ledger_post_call(l, &c);
    w->posted++;
}

/* API ratings of random earlier calls (late ones among them), second ratings posted past the
 * checks (the table keeps the first), and console votes. */
static void post_feedback(struct ledger *l, struct world *w, int n)
{
    static const double scores[] = {-1, -0.5, 0, 0.25, 1, 0.8};
    char msg[256];
    for (int i = 0; i < n; i++) {
        int c = pick(w, w->n);
        struct ledger_feedback f = {.wall_ms = w->now,
                                    .source = "api",
                                    .request_id = w->ids[c],
                                    .score = scores[pick(w, SB_ARRAY_LEN(scores))],
                                    .scale = 1};
        f.raw_score = f.score;
        struct ledger_call_ref ref;
        if (ledger_feedback_submit(l, &f, 48 * HOUR_MS, &ref, msg, sizeof msg) == LEDGER_FB_OK) {
            w->posted++;
            if (pick(w, 4) == 0) { /* a second rating racing past the checks */
                f.call_ms = ref.wall_ms;
                f.call_status = ref.status;
                f.target = ref.target;
                f.route = ref.route;
                f.score = -f.score - 0.1;
                ledger_post_feedback(l, &f);
                w->posted++;
            }
        }
        if (pick(w, 3) == 0) {
            struct ledger_feedback v = {.wall_ms = w->now - pick(w, 30) * HOUR_MS,
                                        .source = "console",
                                        .score = pick(w, 2) ? 1 : -1,
                                        .scale = 1,
                                        .target = pick(w, 2) ? "alpha" : "gamma",
                                        .route = ""};
            v.raw_score = v.score;
            v.call_ms = v.wall_ms;
            ledger_post_feedback(l, &v);
            w->posted++;
        }
    }
}

static void assert_close(double a, double b, const char *what, const char *key)
{
    if (fabs(a - b) > 1e-9 * (1 + fabs(a) + fabs(b)))
        fail_msg("%s of %s: buckets %.17g, SQL %.17g", what, key, a, b);
}

static void assert_row(const struct ledger_quality_row *m, const struct ledger_quality_row *s)
{
    assert_string_equal(m->key, s->key);
    const uint64_t mv[] = {
        m->calls,    m->answered,       m->abandoned,         m->throttled, m->complete,
        m->length,   m->content_filter, m->truncated,         m->errors,    m->feedback,
        m->negative, m->console,        m->answered_negative, m->satisfied};
    const uint64_t sv[] = {
        s->calls,    s->answered,       s->abandoned,         s->throttled, s->complete,
        s->length,   s->content_filter, s->truncated,         s->errors,    s->feedback,
        s->negative, s->console,        s->answered_negative, s->satisfied};
    for (size_t i = 0; i < SB_ARRAY_LEN(mv); i++)
        if (mv[i] != sv[i])
            fail_msg("count %zu of %s: buckets %llu, SQL %llu", i, s->key,
                     (unsigned long long)mv[i], (unsigned long long)sv[i]);
    assert_close(m->spend_usd, s->spend_usd, "spend", s->key);
    assert_close(m->savings_usd, s->savings_usd, "savings", s->key);
    assert_close(m->score_sum, s->score_sum, "score", s->key);
    assert_int_equal(m->has_satisfaction, s->has_satisfaction);
    assert_close(m->satisfaction, s->satisfaction, "satisfaction", s->key);
    assert_close(m->completion, s->completion, "completion", s->key);
    assert_close(m->cost_per_satisfied, s->cost_per_satisfied, "cost/satisfied", s->key);
}

/* ledger_quality_window of one key at a time (GET /admin/quality/{target}, the console's
 * quality lines) against the SQL result s of the same window: each key's row alone, its total
 * that row, a key without rows empty; no SQL. */
static void compare_each_key(struct ledger *l, const char *path, int64_t now, int64_t window,
                             const struct ledger_quality *s)
{
    char msg[256];
    struct ledger_quality o;
    ledger_quality_init(&o);
    for (size_t i = 0; i <= s->n; i++) {
        const char *key = i < s->n ? s->rows[i].key : "no-such-key";
        uint64_t loads = ledger_quality_loads();
        assert_int_equal(
            ledger_quality_window(l, path, s->by, key, now, window, 3, &o, msg, sizeof msg), SB_OK);
        assert_true(ledger_quality_loads() == loads); /* no SQL */
        assert_int_equal(o.since_ms, s->since_ms);
        assert_int_equal(o.until_ms, s->until_ms);
        assert_int_equal(o.n, i < s->n);
        if (i == s->n) {
            assert_int_equal(o.total.calls + o.total.feedback, 0);
            break;
        }
        assert_row(&o.rows[0], &s->rows[i]);
        str_copy(o.total.key, sizeof o.total.key, key);
        assert_row(&o.total, &s->rows[i]);
    }
    ledger_quality_cleanup(&o);
}

/* Buckets against SQL over the hour and the day (whole minutes up to the current one), for
 * each grouping the buckets keep; returns the number of calls in the day by target. */
static uint64_t compare(struct ledger *l, const char *path, int64_t now)
{
    static const enum ledger_quality_by bys[] = {LEDGER_QBY_TARGET, LEDGER_QBY_ROUTE,
                                                 LEDGER_QBY_ROUTE_TARGET};
    static const int64_t windows[] = {HOUR_MS, 24 * HOUR_MS, 7 * MIN_MS};
    int64_t until = (now / MIN_MS + 1) * MIN_MS;
    uint64_t day_calls = 0;
    char msg[256];
    for (size_t b = 0; b < SB_ARRAY_LEN(bys); b++) {
        for (size_t wi = 0; wi < SB_ARRAY_LEN(windows); wi++) {
            int64_t since = (now - windows[wi]) / MIN_MS * MIN_MS;
            struct ledger_quality m, s;
            ledger_quality_init(&m);
            ledger_quality_init(&s);
            uint64_t loads = ledger_quality_loads();
            assert_true(ledger_quality_recent(l, bys[b], since, until, 3, &m));
            assert_true(ledger_quality_loads() == loads); /* no SQL */
            assert_int_equal(
                ledger_quality_load(path, bys[b], since, until, 3, &s, msg, sizeof msg), SB_OK);
            assert_int_equal(m.n, s.n);
            for (size_t i = 0; i < s.n; i++)
                assert_row(&m.rows[i], &s.rows[i]);
            assert_row(&m.total, &s.total);
            compare_each_key(l, path, now, windows[wi], &s);
            if (bys[b] == LEDGER_QBY_TARGET && wi == 1)
                day_calls = s.total.calls;
            ledger_quality_cleanup(&m);
            ledger_quality_cleanup(&s);
        }
    }
    return day_calls;
}

static void test_buckets_equal_the_sql_recount(void **state)
{
    struct tmp_dir *t = *state;
    static struct world w;
    memset(&w, 0, sizeof w);
    w.seed = (unsigned)time(NULL);
    print_message("seed %u\n", w.seed);
    w.now = clock_wall_ms();
    struct ledger *l = open_ok(t->path);
    for (int i = 0; i < N_CALLS; i++) /* 30 hours back: some before the day window */
        post_call(l, &w, w.now - (int64_t)pick(&w, 30 * 60) * MIN_MS - pick(&w, (int)MIN_MS));
    wait_written(l, w.posted);
    post_feedback(l, &w, 200);
    wait_written(l, w.posted);
    assert_true(compare(l, t->path, clock_wall_ms()) > 0);
    ledger_close(l);

    l = open_ok(t->path); /* a restart: the buckets come from the scan */
    compare(l, t->path, clock_wall_ms());
    w.now = clock_wall_ms();
    w.posted = 0;                     /* this ledger's count */
    for (int i = 0; i < N_CALLS; i++) /* the last two hours, then late feedback on old calls */
        post_call(l, &w, w.now - (int64_t)pick(&w, 120) * MIN_MS - pick(&w, (int)MIN_MS));
    post_feedback(l, &w, 300);
    for (int i = 0; i < 20; i++) { /* read while the writer folds (TSan: the buckets' lock) */
        struct ledger_quality q;
        ledger_quality_init(&q);
        int64_t until = (clock_wall_ms() / MIN_MS + 1) * MIN_MS;
        assert_true(ledger_quality_recent(l, LEDGER_QBY_ROUTE, until - HOUR_MS, until, 1, &q));
        ledger_quality_cleanup(&q);
    }
    wait_written(l, w.posted);
    compare(l, t->path, clock_wall_ms());
    ledger_close(l);
}

/* What the buckets do not serve: other groupings, windows not of whole minutes, longer than a
 * day or reaching before the seed, and a ":memory:" ledger. */
static void test_buckets_refuse_what_they_do_not_hold(void **state)
{
    struct tmp_dir *t = *state;
    struct ledger *l = open_ok(t->path);
    int64_t until = (clock_wall_ms() / MIN_MS + 1) * MIN_MS;
    struct ledger_quality q;
    ledger_quality_init(&q);
    assert_true(ledger_quality_recent(l, LEDGER_QBY_TARGET, until - HOUR_MS, until, 1, &q));
    assert_false(ledger_quality_recent(l, LEDGER_QBY_TAG, until - HOUR_MS, until, 1, &q));
    assert_false(ledger_quality_recent(l, LEDGER_QBY_TARGET, until - HOUR_MS + 1, until, 1, &q));
    assert_false(ledger_quality_recent(l, LEDGER_QBY_TARGET, until - 25 * HOUR_MS, until, 1, &q));
    assert_false(ledger_quality_recent(NULL, LEDGER_QBY_TARGET, until - HOUR_MS, until, 1, &q));
    ledger_close(l);
    char msg[256];
    l = ledger_open(":memory:", 5, msg, sizeof msg);
    assert_false(ledger_quality_recent(l, LEDGER_QBY_TARGET, until - HOUR_MS, until, 1, &q));
    ledger_close(l);
    ledger_quality_cleanup(&q);
}

/* The gateway's refresh and guard windows (gw_quality_window): the hour and the day without a
 * ledger read, the same figures as SQL; a window over a day read in SQL. */
static void test_gateway_windows_read_no_sql(void **state)
{
    struct tmp_dir *t = *state;
    static struct world w;
    memset(&w, 0, sizeof w);
    w.seed = 7;
    w.now = clock_wall_ms();
    struct ledger *l = open_ok(t->path);
    for (int i = 0; i < 200; i++)
        post_call(l, &w, w.now - (int64_t)pick(&w, 26 * 60) * MIN_MS);
    post_feedback(l, &w, 50);
    wait_written(l, w.posted);
    int64_t now = clock_wall_ms();
    struct ledger_quality m, s;
    ledger_quality_init(&m);
    ledger_quality_init(&s);
    uint64_t loads = ledger_quality_loads();
    assert_true(gw_quality_window(l, t->path, LEDGER_QBY_ROUTE, now, 24 * HOUR_MS, 20, &m));
    assert_true(gw_quality_window(l, t->path, LEDGER_QBY_TARGET, now, HOUR_MS, 20, &m));
    assert_true(ledger_quality_loads() == loads);
    char msg[256];
    assert_int_equal(ledger_quality_load(t->path, LEDGER_QBY_TARGET, m.since_ms, m.until_ms, 20, &s,
                                         msg, sizeof msg),
                     SB_OK);
    assert_int_equal(m.since_ms % MIN_MS, 0);
    assert_true(m.since_ms <= now - HOUR_MS && m.since_ms > now - HOUR_MS - MIN_MS);
    assert_int_equal(m.n, s.n);
    for (size_t i = 0; i < s.n; i++)
        assert_row(&m.rows[i], &s.rows[i]);
    loads = ledger_quality_loads();
    assert_true(gw_quality_window(l, t->path, LEDGER_QBY_TARGET, now, 48 * HOUR_MS, 20, &m));
    assert_true(ledger_quality_loads() == loads + 1);
    ledger_quality_cleanup(&m);
    ledger_quality_cleanup(&s);
    ledger_close(l);
}

/* More live keys than the cap (64 per grouping): the buckets refuse the windows that reach the
 * lost rows, and the gateway's windows fall back to SQL, still complete. */
static void test_key_cap_falls_back_to_sql(void **state)
{
    struct tmp_dir *t = *state;
    struct ledger *l = open_ok(t->path);
    int64_t now = clock_wall_ms();
    char name[32];
    for (int i = 0; i < 70; i++) {
        snprintf(name, sizeof name, "t%02d", i);
        struct ledger_call c = {.wall_ms = now - 1000,
                                .route = "r",
                                .target = name,
                                .status = 200,
                                .attempts = 1,
                                .est_cost_usd = -1,
                                .baseline_cost_usd = -1,
                                .retry_cost_usd = -1,
                                .hedge_cost_usd = -1,
                                .ttft_us = -1};
        ledger_post_call(l, &c);
    }
    wait_written(l, 70);
    int64_t until = (clock_wall_ms() / MIN_MS + 1) * MIN_MS;
    struct ledger_quality q;
    ledger_quality_init(&q);
    assert_false(ledger_quality_recent(l, LEDGER_QBY_TARGET, until - HOUR_MS, until, 1, &q));
    assert_false(ledger_quality_recent(l, LEDGER_QBY_ROUTE_TARGET, until - HOUR_MS, until, 1, &q));
    assert_true(ledger_quality_recent(l, LEDGER_QBY_ROUTE, until - HOUR_MS, until, 1, &q));
    assert_int_equal(q.n, 1);
    assert_int_equal(q.rows[0].calls, 70);
    uint64_t loads = ledger_quality_loads();
    assert_true(gw_quality_window(l, t->path, LEDGER_QBY_TARGET, clock_wall_ms(), HOUR_MS, 1, &q));
    assert_true(ledger_quality_loads() == loads + 1);
    assert_int_equal(q.n, 70);
    char msg[256];
    loads = ledger_quality_loads(); /* one key of the 70: SQL, that row alone */
    assert_int_equal(ledger_quality_window(l, t->path, LEDGER_QBY_TARGET, "t67", clock_wall_ms(),
                                           HOUR_MS, 1, &q, msg, sizeof msg),
                     SB_OK);
    assert_true(ledger_quality_loads() == loads + 1);
    assert_int_equal(q.n, 1);
    assert_string_equal(q.rows[0].key, "t67");
    assert_int_equal(q.rows[0].calls, 1);
    assert_int_equal(q.total.calls, 1);
    assert_int_equal(q.total.answered, 1);
    ledger_quality_cleanup(&q);
    ledger_close(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_buckets_equal_the_sql_recount, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test_setup_teardown(test_buckets_refuse_what_they_do_not_hold, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test_setup_teardown(test_gateway_windows_read_no_sql, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_key_cap_falls_back_to_sql, tmp_setup, tmp_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
