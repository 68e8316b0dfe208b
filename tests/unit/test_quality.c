/*
 * test_quality.c - feedback and quality in the ledger (a real SQLite file in a temporary
 * directory): a rating tied to a call still queued and to one already committed, unknown,
 * duplicate, late and foreign ratings refused, prompt-pane votes as console feedback, the
 * quality figures per target / route / user computed in SQL (abandonment, completion,
 * satisfaction with a minimum volume, cost per satisfied answer, savings), the pure
 * derivation, the renderings, hashed users, and a version 2 ledger migrated to quality.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "support_tmp.h"
#include "switchboard/ledger.h"

#define HOUR 3600000LL
#define T0   1795262400000LL /* 2026-11-21T12:00:00Z */

static struct ledger *open_ok(const char *path, int64_t batch_ms)
{
    char msg[256] = "";
    struct ledger *l = ledger_open(path, batch_ms, msg, sizeof msg);
    if (!l)
        fail_msg("ledger_open: %s", msg);
    return l;
}

static struct ledger_call call_at(int64_t at, const char *id, const char *target, int status,
                                  enum llm_finish finish, double cost)
{
    struct ledger_call c = {
        .wall_ms = at,
        .request_id = id,
        .route = "chat",
        .target = target,
        .model = "m-1",
        .tag = "web",
        .status = status,
        .err = status == 200   ? LLM_ERR_NONE
               : status == 499 ? LLM_ERR_CANCELLED
                               : LLM_ERR_SERVER,
        .attempts = 1,
        .usage = {.present = true, .input_tokens = 10, .output_tokens = 5},
        .cost_usd = cost,
        .est_cost_usd = -1,
        .baseline_cost_usd = -1,
        .retry_cost_usd = 0,
        .hedge_cost_usd = 0,
        .latency_us = 1000,
        .ttft_us = 100,
        .user = "alice",
        .finish = finish,
    };
    return c;
}

static struct ledger_feedback rating(int64_t at, const char *id, double score)
{
    struct ledger_feedback f = {.wall_ms = at,
                                .source = "api",
                                .request_id = id,
                                .score = score,
                                .raw_score = score,
                                .scale = 1};
    return f;
}

static double column_double(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    double v = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* ---- feedback ------------------------------------------------------------------------------ */

/* The answer reached the client while its row is still queued (a long batch): the rating is
 * tied to it at once, with the call's target, route, model, tag and user. */
static void test_feedback_rates_a_call_still_queued(void **state)
{
    struct tmp_dir *t = *state;
    struct ledger *l = open_ok(t->path, 5000);
    struct ledger_call c = call_at(T0, "req-a", "a", 200, LLM_FINISH_STOP, 0.01);
    ledger_post_call(l, &c);
    struct ledger_feedback f = rating(T0 + 1000, "req-a", -1);
    f.label = "thumbs_down";
    f.comment = "wrong answer";
    struct ledger_call_ref ref;
    char msg[256];
    assert_int_equal(ledger_feedback_submit(l, &f, HOUR, &ref, msg, sizeof msg), LEDGER_FB_OK);
    assert_string_equal(ref.target, "a");
    assert_string_equal(ref.user, "alice");
    /* rated again while both rows are still queued */
    assert_int_equal(ledger_feedback_submit(l, &f, HOUR, NULL, msg, sizeof msg),
                     LEDGER_FB_DUPLICATE);
    assert_non_null(strstr(msg, "req-a"));
    ledger_close(l);
    assert_true(column_double(t->path, "SELECT COUNT(*) FROM feedback") == 1);
    assert_true(column_double(t->path, "SELECT COUNT(*) FROM feedback WHERE target = 'a' AND"
                                       " route = 'chat' AND model = 'm-1' AND tag = 'web' AND"
                                       " user = 'alice' AND call_status = 200 AND score = -1"
                                       " AND label = 'thumbs_down' AND source = 'api'") == 1);
}

/* Committed rows are found in the file; a second rating is a duplicate from there too. */
static void test_feedback_rates_a_committed_call_once(void **state)
{
    struct tmp_dir *t = *state;
    struct ledger *l = open_ok(t->path, 10);
    struct ledger_call c = call_at(T0, "req-b", "b", 200, LLM_FINISH_STOP, 0.01);
    ledger_post_call(l, &c);
    ledger_close(l);
    l = open_ok(t->path, 10);
    struct ledger_feedback f = rating(T0 + 1000, "req-b", 1);
    char msg[256];
    assert_int_equal(ledger_feedback_submit(l, &f, HOUR, NULL, msg, sizeof msg), LEDGER_FB_OK);
    ledger_close(l);
    l = open_ok(t->path, 10);
    assert_int_equal(ledger_feedback_submit(l, &f, HOUR, NULL, msg, sizeof msg),
                     LEDGER_FB_DUPLICATE);
    ledger_close(l);
    assert_true(column_double(t->path, "SELECT COUNT(*) FROM feedback") == 1);
}

static void test_feedback_refuses_unknown_late_and_foreign_ratings(void **state)
{
    struct tmp_dir *t = *state;
    struct ledger *l = open_ok(t->path, 10);
    struct ledger_call c = call_at(T0, "req-c", "a", 200, LLM_FINISH_STOP, 0.01);
    c.client = "team-a";
    ledger_post_call(l, &c);
    char msg[256];
    struct ledger_feedback f = rating(T0 + 1000, "nope", 1);
    assert_int_equal(ledger_feedback_submit(l, &f, HOUR, NULL, msg, sizeof msg), LEDGER_FB_UNKNOWN);
    f = rating(T0 + 2 * HOUR, "req-c", 1);
    f.rater = "team-a";
    assert_int_equal(ledger_feedback_submit(l, &f, HOUR, NULL, msg, sizeof msg), LEDGER_FB_EXPIRED);
    assert_non_null(strstr(msg, "3600s"));
    f.wall_ms = T0 + 1000;
    f.rater = "team-b";
    assert_int_equal(ledger_feedback_submit(l, &f, HOUR, NULL, msg, sizeof msg),
                     LEDGER_FB_FORBIDDEN);
    f.rater = "team-a";
    assert_int_equal(ledger_feedback_submit(l, &f, HOUR, NULL, msg, sizeof msg), LEDGER_FB_OK);
    ledger_close(l);
    assert_int_equal(ledger_fb_verdict_status(LEDGER_FB_UNKNOWN), 404);
    assert_int_equal(ledger_fb_verdict_status(LEDGER_FB_DUPLICATE), 409);
    assert_int_equal(ledger_fb_verdict_status(LEDGER_FB_EXPIRED), 410);
    assert_int_equal(ledger_fb_verdict_status(LEDGER_FB_FORBIDDEN), 403);
    assert_true(column_double(t->path, "SELECT COUNT(*) FROM feedback WHERE rater = 'team-a'"
                                       " AND client = 'team-a'") == 1);
}

static void test_feedback_needs_a_ledger_file(void **state)
{
    (void)state;
    struct ledger *l = open_ok(":memory:", 10);
    struct ledger_feedback f = rating(T0, "req-x", 1);
    char msg[256];
    assert_int_equal(ledger_feedback_submit(l, &f, HOUR, NULL, msg, sizeof msg),
                     LEDGER_FB_UNAVAILABLE);
    ledger_close(l);
}

/* ---- quality ------------------------------------------------------------------------------- */

/* Target a: 4 calls (one abandoned, one cut by length), 2 ratings, one negative. Target b:
 * 2 calls, an error and a success rated +1. Console votes: b beat a once. */
static void seed(const char *path)
{
    struct ledger *l = open_ok(path, 10);
    struct ledger_call rows[] = {
        call_at(T0, "a1", "a", 200, LLM_FINISH_STOP, 0.10),
        call_at(T0 + 1, "a2", "a", 200, LLM_FINISH_LENGTH, 0.10),
        call_at(T0 + 2, "a3", "a", 499, LLM_FINISH_NONE, 0.05),
        call_at(T0 + 3, "a4", "a", 200, LLM_FINISH_TOOL_CALLS, 0.15),
        call_at(T0 + 4, "b1", "b", 502, LLM_FINISH_NONE, 0),
        call_at(T0 + 5, "b2", "b", 200, LLM_FINISH_STOP, 0.30),
    };
    rows[3].user = "bob";
    rows[0].baseline_cost_usd = 0.40; /* saved 0.30 */
    for (size_t i = 0; i < SB_ARRAY_LEN(rows); i++)
        ledger_post_call(l, &rows[i]);
    char msg[256];
    const char *ids[] = {"a1", "a4", "b2"};
    double scores[] = {-1, 1, 1};
    for (size_t i = 0; i < 3; i++) {
        struct ledger_feedback f = rating(T0 + 100, ids[i], scores[i]);
        assert_int_equal(ledger_feedback_submit(l, &f, HOUR, NULL, msg, sizeof msg), LEDGER_FB_OK);
    }
    struct ledger_feedback won = {.wall_ms = T0 + 200,
                                  .source = "console",
                                  .score = 1,
                                  .raw_score = 1,
                                  .scale = 1,
                                  .call_ms = T0 + 200,
                                  .target = "b",
                                  .route = ""};
    struct ledger_feedback lost = won;
    lost.target = "a";
    lost.score = lost.raw_score = -1;
    ledger_post_feedback(l, &won);
    ledger_post_feedback(l, &lost);
    ledger_close(l);
}

static const struct ledger_quality_row *group(const struct ledger_quality *q, const char *key)
{
    for (size_t i = 0; i < q->n; i++)
        if (str_eq(q->rows[i].key, key))
            return &q->rows[i];
    fail_msg("no group %s", key);
    return NULL;
}

static void test_quality_per_target_from_calls_and_feedback(void **state)
{
    struct tmp_dir *t = *state;
    seed(t->path);
    struct ledger_quality q;
    ledger_quality_init(&q);
    char msg[256];
    assert_int_equal(
        ledger_quality_load(t->path, LEDGER_QBY_TARGET, T0, T0 + HOUR, 2, &q, msg, sizeof msg),
        SB_OK);
    assert_int_equal(q.n, 2);
    const struct ledger_quality_row *a = group(&q, "a");
    assert_int_equal(a->calls, 4);
    assert_int_equal(a->abandoned, 1);
    assert_true(fabs(a->abandonment - 0.25) < 1e-9);
    assert_int_equal(a->complete, 2); /* stop and tool_calls; length is not */
    assert_int_equal(a->length, 1);
    assert_true(fabs(a->completion - 2.0 / 3.0) < 1e-9);
    assert_int_equal(a->feedback, 3); /* two ratings and a lost vote */
    assert_int_equal(a->console, 1);
    assert_int_equal(a->negative, 2);
    assert_true(a->has_satisfaction);
    assert_true(fabs(a->satisfaction - (-1.0 / 3.0)) < 1e-9);
    /* answered 3, one rated negative through the API: 2 satisfied; spend 0.40 */
    assert_int_equal(a->satisfied, 2);
    assert_true(fabs(a->cost_per_call - 0.10) < 1e-9);
    assert_true(fabs(a->cost_per_satisfied - 0.20) < 1e-9);
    assert_true(fabs(a->savings_usd - 0.30) < 1e-9);
    assert_true(fabs(a->savings_per_satisfied - 0.15) < 1e-9);
    const struct ledger_quality_row *b = group(&q, "b");
    assert_int_equal(b->errors, 1);
    assert_true(fabs(b->completion - 0.5) < 1e-9);
    assert_int_equal(b->feedback, 2);
    assert_true(fabs(b->satisfaction - 1.0) < 1e-9);
    assert_int_equal(q.total.calls, 6);
    assert_int_equal(q.total.feedback, 5);
    ledger_quality_cleanup(&q);
}

static void test_quality_hides_satisfaction_below_the_minimum_volume(void **state)
{
    struct tmp_dir *t = *state;
    seed(t->path);
    struct ledger_quality q;
    ledger_quality_init(&q);
    char msg[256];
    assert_int_equal(
        ledger_quality_load(t->path, LEDGER_QBY_TARGET, T0, T0 + HOUR, 3, &q, msg, sizeof msg),
        SB_OK);
    assert_true(group(&q, "a")->has_satisfaction);
    assert_false(group(&q, "b")->has_satisfaction); /* 2 ratings < 3 */
    struct buf out;
    buf_init(&out);
    ledger_quality_render(&q, LEDGER_FORMAT_JSON, &out);
    assert_non_null(strstr(buf_str(&out), "{\"target\":\"b\""));
    assert_non_null(strstr(buf_str(&out), "\"satisfaction\":null"));
    buf_reset(&out);
    ledger_quality_render(&q, LEDGER_FORMAT_TABLE, &out);
    assert_non_null(strstr(buf_str(&out), "ABANDON%"));
    assert_non_null(strstr(buf_str(&out), "TOTAL"));
    buf_reset(&out);
    ledger_quality_render(&q, LEDGER_FORMAT_CSV, &out);
    assert_non_null(strstr(buf_str(&out), "target,calls,answered,abandoned"));
    buf_cleanup(&out);
    ledger_quality_cleanup(&q);
}

static void test_quality_groups_by_user_and_route_and_window(void **state)
{
    struct tmp_dir *t = *state;
    seed(t->path);
    struct ledger_quality q;
    ledger_quality_init(&q);
    char msg[256];
    assert_int_equal(
        ledger_quality_load(t->path, LEDGER_QBY_USER, T0, T0 + HOUR, 1, &q, msg, sizeof msg),
        SB_OK);
    assert_int_equal(group(&q, "bob")->calls, 1);
    assert_int_equal(group(&q, "bob")->feedback, 1);
    assert_int_equal(group(&q, "alice")->calls, 5);
    assert_int_equal(group(&q, "(none)")->feedback, 2); /* console votes have no user */
    assert_int_equal(
        ledger_quality_load(t->path, LEDGER_QBY_ROUTE, T0, T0 + HOUR, 1, &q, msg, sizeof msg),
        SB_OK);
    assert_int_equal(group(&q, "chat")->calls, 6);
    assert_int_equal(
        ledger_quality_load(t->path, LEDGER_QBY_TARGET, T0 + 3, T0 + 5, 1, &q, msg, sizeof msg),
        SB_OK);
    assert_int_equal(q.total.calls, 2); /* a4 and b1 */
    ledger_quality_cleanup(&q);
}

static void test_quality_derive_without_calls_or_feedback(void **state)
{
    (void)state;
    struct ledger_quality_row r;
    memset(&r, 0, sizeof r);
    ledger_quality_derive(&r, 1);
    assert_false(r.has_satisfaction);
    assert_true(r.completion < 0);
    assert_true(r.cost_per_call < 0);
    assert_true(r.cost_per_satisfied < 0);
    r.calls = r.answered = 4;
    r.answered_negative = 4;
    r.spend_usd = 1;
    ledger_quality_derive(&r, 1);
    assert_int_equal(r.satisfied, 0);
    assert_true(r.cost_per_satisfied < 0); /* nothing satisfied: no figure, not infinity */
    assert_true(fabs(r.cost_per_call - 0.25) < 1e-9);
}

static void test_quality_of_a_missing_file_is_empty(void **state)
{
    struct tmp_dir *t = *state;
    struct ledger_quality q;
    ledger_quality_init(&q);
    char msg[256];
    assert_int_equal(
        ledger_quality_load(t->path, LEDGER_QBY_TARGET, T0, T0 + HOUR, 1, &q, msg, sizeof msg),
        SB_OK);
    assert_int_equal(q.n, 0);
    ledger_quality_cleanup(&q);
}

static void test_recent_negative_feedback_newest_first(void **state)
{
    struct tmp_dir *t = *state;
    seed(t->path);
    struct ledger_feedback_item items[4];
    size_t n = 0;
    char msg[256];
    uint64_t steps = ledger_negative_scan_steps();
    assert_int_equal(ledger_recent_negative(t->path, "a", 4, items, &n, msg, sizeof msg), SB_OK);
    assert_int_equal(n, 2);
    assert_string_equal(items[0].source, "console"); /* the vote came later */
    assert_string_equal(items[1].request_id, "a1");
    assert_int_equal(ledger_recent_negative(t->path, "b", 4, items, &n, msg, sizeof msg), SB_OK);
    assert_int_equal(n, 0);
    /* one target's walk its index (the console every 3 s), not the whole table */
    assert_true(ledger_negative_scan_steps() == steps);
    assert_int_equal(ledger_recent_negative(t->path, NULL, 4, items, &n, msg, sizeof msg), SB_OK);
    assert_int_equal(n, 2); /* every target's: a scan of the table */
    assert_true(ledger_negative_scan_steps() > steps);
}

static void test_user_hash_is_stable_and_short(void **state)
{
    (void)state;
    char a[LEDGER_USER_HASH_LEN + 1], b[LEDGER_USER_HASH_LEN + 1];
    ledger_user_hash("alice@example.com", a);
    ledger_user_hash("alice@example.com", b);
    assert_string_equal(a, b);
    assert_int_equal(strlen(a), LEDGER_USER_HASH_LEN);
    assert_true(strncmp(a, "u-", 2) == 0);
    assert_null(strstr(a, "alice"));
    ledger_user_hash("bob", b);
    assert_string_not_equal(a, b);
}

/* A version 2 ledger (client keys, before quality) keeps its rows and can be rated. */
static void test_ledger_migrates_to_quality(void **state)
{
    struct tmp_dir *t = *state;
    struct ledger *l = open_ok(t->path, 10);
    struct ledger_call c = call_at(T0, "old", "a", 200, LLM_FINISH_STOP, 0.01);
    ledger_post_call(l, &c);
    ledger_close(l);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(t->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "DROP TABLE feedback; DROP INDEX calls_request;"
                                  "DROP INDEX calls_user_ts; ALTER TABLE calls DROP COLUMN user;"
                                  "ALTER TABLE calls DROP COLUMN finish;"
                                  "DELETE FROM schema_version WHERE version = 3;"
                                  /* and version 4's audit columns, to be a version 2 file */
                                  "DROP INDEX events_target_ts;"
                                  "ALTER TABLE events DROP COLUMN user;"
                                  "ALTER TABLE events DROP COLUMN action;"
                                  "ALTER TABLE events DROP COLUMN state_before;"
                                  "ALTER TABLE events DROP COLUMN state_after;"
                                  "ALTER TABLE events DROP COLUMN expires_ms;"
                                  "DELETE FROM schema_version WHERE version = 4;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    struct ledger_quality q;
    ledger_quality_init(&q);
    char msg[256];
    assert_int_equal(
        ledger_quality_load(t->path, LEDGER_QBY_TARGET, T0, T0 + HOUR, 1, &q, msg, sizeof msg),
        SB_OK); /* before the migration: no figures, no error */
    assert_int_equal(q.n, 0);
    l = open_ok(t->path, 10);
    struct ledger_feedback f = rating(T0 + 10, "old", 1);
    assert_int_equal(ledger_feedback_submit(l, &f, HOUR, NULL, msg, sizeof msg), LEDGER_FB_OK);
    ledger_close(l);
    assert_true(column_double(t->path, "SELECT MAX(version) FROM schema_version") ==
                LEDGER_SCHEMA_VERSION);
    assert_true(column_double(t->path, "SELECT COUNT(*) FROM feedback") == 1);
    ledger_quality_cleanup(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, tmp_setup, tmp_teardown)
        T(test_feedback_rates_a_call_still_queued),
        T(test_feedback_rates_a_committed_call_once),
        T(test_feedback_refuses_unknown_late_and_foreign_ratings),
        cmocka_unit_test(test_feedback_needs_a_ledger_file),
        T(test_quality_per_target_from_calls_and_feedback),
        T(test_quality_hides_satisfaction_below_the_minimum_volume),
        T(test_quality_groups_by_user_and_route_and_window),
        cmocka_unit_test(test_quality_derive_without_calls_or_feedback),
        T(test_quality_of_a_missing_file_is_empty),
        T(test_recent_negative_feedback_newest_first),
        cmocka_unit_test(test_user_hash_is_stable_and_short),
        T(test_ledger_migrates_to_quality),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
