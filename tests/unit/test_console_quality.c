/* test_console_quality.c - the attached console's quality lines, the pure parts: GET
 * /admin/quality/TARGET's JSON back into counts, sums and derived figures, and several
 * instances merged exactly (counts summed, rates derived again from the sums, negatives
 * newest first across instances, capped). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "switchboard/console_backend.h"

/* One instance's answer, as admin_quality.c writes it; negatives given as (wall_ms, id). */
static char *answer(const char *target, unsigned calls, unsigned answered, unsigned complete,
                    unsigned abandoned, unsigned feedback, unsigned negative, double score_sum,
                    double spend, unsigned min_volume, const char *negatives)
{
    char buf[4096];
    snprintf(buf, sizeof buf,
             "{\"target\":\"%s\",\"configured\":true,\"since_ms\":1,\"until_ms\":3600002,"
             "\"min_volume\":%u,\"quality\":{\"calls\":%u,\"answered\":%u,\"abandoned\":%u,"
             "\"throttled\":0,\"complete\":%u,\"length\":0,\"content_filter\":0,"
             "\"truncated\":0,\"errors\":%u,\"feedback\":%u,\"negative\":%u,\"console\":0,"
             "\"answered_negative\":%u,\"score_sum\":%.17g,\"spend_usd\":%.17g,"
             "\"savings_usd\":0,\"satisfied\":0,\"satisfaction\":null,\"negative_share\":null,"
             "\"abandonment\":0,\"completion\":1,\"cost_per_call_usd\":null,"
             "\"cost_per_satisfied_usd\":null,\"savings_per_satisfied_usd\":null},"
             "\"negative\":[%s]}",
             target, min_volume, calls, answered, abandoned, complete, calls - complete - abandoned,
             feedback, negative, negative, score_sum, spend, negatives);
    return strdup(buf);
}

static void parse_ok(const char *json, struct console_quality *q)
{
    char msg[160] = "";
    assert_int_equal(console_quality_parse(json, strlen(json), q, msg, sizeof msg), SB_OK);
    assert_string_equal(msg, "");
}

static void test_parse_reads_counts_sums_and_negatives(void **state)
{
    (void)state;
    char *j = answer("alpha", 10, 9, 8, 1, 4, 3, -2.0, 0.5, 2,
                     "{\"wall_ms\":2000,\"source\":\"api\",\"request_id\":\"r-2\",\"score\":-1,"
                     "\"label\":\"thumbs_down\",\"comment\":\"too \\\"short\\\"\"},"
                     "{\"wall_ms\":1000,\"source\":\"console\",\"request_id\":null,"
                     "\"score\":-0.5,\"label\":\"vote\",\"comment\":\"\"}");
    struct console_quality q;
    parse_ok(j, &q);
    assert_true(q.loaded);
    assert_string_equal(q.target, "alpha");
    assert_int_equal(q.min_volume, 2);
    assert_int_equal(q.row.calls, 10);
    assert_int_equal(q.row.answered, 9);
    assert_int_equal(q.row.complete, 8);
    assert_int_equal(q.row.abandoned, 1);
    assert_int_equal(q.row.errors, 1);
    assert_int_equal(q.row.feedback, 4);
    assert_int_equal(q.row.negative, 3);
    assert_int_equal(q.row.answered_negative, 3);
    assert_true(fabs(q.row.score_sum + 2.0) < 1e-12);
    /* derived from the counts, not copied from the answer */
    assert_true(q.row.has_satisfaction);
    assert_true(fabs(q.row.satisfaction + 0.5) < 1e-12);
    assert_true(fabs(q.row.abandonment - 0.1) < 1e-12);
    assert_true(fabs(q.row.completion - 8.0 / 9.0) < 1e-12);
    assert_int_equal(q.row.satisfied, 6);
    assert_true(fabs(q.row.cost_per_satisfied - 0.5 / 6) < 1e-12);
    assert_int_equal(q.n_negative, 2);
    assert_string_equal(q.negative[0].request_id, "r-2");
    assert_string_equal(q.negative[0].comment, "too \"short\"");
    assert_string_equal(q.negative[0].target, "alpha");
    assert_int_equal(q.negative[0].wall_ms, 2000);
    assert_string_equal(q.negative[1].request_id, ""); /* a console vote */
    assert_string_equal(q.negative[1].source, "console");
    assert_true(fabs(q.negative[1].score + 0.5) < 1e-12);
    free(j);
}

static void test_parse_refuses_what_is_not_a_quality(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "[]",
        "{\"target\":\"a\"}",                                           /* no quality */
        "{\"target\":\"a\",\"quality\":{\"calls\":1},\"negative\":[]}", /* counts missing */
        "{\"error\":{\"message\":\"no target named \\\"a\\\"\"}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct console_quality q;
        char msg[160] = "";
        assert_int_equal(console_quality_parse(bad[i], strlen(bad[i]), &q, msg, sizeof msg),
                         SB_ERR_PARSE);
        assert_false(q.loaded);
        assert_true(msg[0] != '\0');
    }
    char *ok = answer("a", 1, 1, 1, 0, 0, 0, 0, 0, 1, "");
    char *p = strstr(ok, "\"calls\":1,");
    assert_non_null(p);
    char neg[4096];
    snprintf(neg, sizeof neg, "%.*s\"calls\":-1,%s", (int)(p - ok), ok, p + strlen("\"calls\":1,"));
    struct console_quality q;
    char msg[160];
    assert_int_equal(console_quality_parse(ok, strlen(ok), &q, msg, sizeof msg), SB_OK);
    assert_int_equal(console_quality_parse(neg, strlen(neg), &q, msg, sizeof msg), SB_ERR_PARSE);
    free(ok);
}

static void test_merge_sums_counts_and_derives_rates_again(void **state)
{
    (void)state;
    /* instance a: 4 calls, 2 ratings both negative; b: 6 calls, 2 ratings, one negative. A
     * mean of the two means would be (-1 + 0) / 2 = -0.5; the exact one is -3 / 4. */
    char *ja = answer("t", 4, 4, 4, 0, 2, 2, -2.0, 0.4, 2, "");
    char *jb = answer("t", 6, 5, 4, 1, 2, 1, -1.0, 0.6, 5, "");
    struct console_quality a, b, m;
    parse_ok(ja, &a);
    parse_ok(jb, &b);
    memset(&m, 0, sizeof m);
    str_copy(m.target, sizeof m.target, "t");
    m.asked = 3;
    m.answered = 2;
    str_copy(m.missing, sizeof m.missing, "c: connection refused");
    const struct console_quality *in[] = {&a, NULL, &b};
    console_quality_merge(in, 3, &m);
    assert_true(m.loaded);
    assert_string_equal(m.target, "t");
    assert_int_equal(m.asked, 3);
    assert_int_equal(m.answered, 2);
    assert_string_equal(m.missing, "c: connection refused");
    assert_int_equal(m.row.calls, 10);
    assert_int_equal(m.row.answered, 9);
    assert_int_equal(m.row.abandoned, 1);
    assert_int_equal(m.row.feedback, 4);
    assert_int_equal(m.row.negative, 3);
    assert_int_equal(m.min_volume, 5);    /* the largest */
    assert_false(m.row.has_satisfaction); /* 4 ratings < 5 */
    assert_true(fabs(m.row.score_sum + 3.0) < 1e-12);
    assert_true(fabs(m.row.abandonment - 0.1) < 1e-12);
    assert_true(fabs(m.row.completion - 8.0 / 9.0) < 1e-12);
    assert_int_equal(m.row.satisfied, 6); /* 9 answered - 3 rated negative */
    assert_true(fabs(m.row.spend_usd - 1.0) < 1e-12);
    assert_true(fabs(m.row.cost_per_satisfied - 1.0 / 6) < 1e-12);
    b.min_volume = 2; /* with enough ratings the mean is the exact one */
    console_quality_merge(in, 3, &m);
    assert_true(m.row.has_satisfaction);
    assert_true(fabs(m.row.satisfaction + 0.75) < 1e-12);
    assert_true(fabs(m.row.negative_share - 0.75) < 1e-12);
    free(ja);
    free(jb);
}

static void test_merge_lists_negatives_newest_first_across_instances(void **state)
{
    (void)state;
    char *ja = answer("t", 3, 3, 3, 0, 3, 3, -3, 0, 1,
                      "{\"wall_ms\":500,\"source\":\"api\",\"request_id\":\"a5\",\"score\":-1},"
                      "{\"wall_ms\":300,\"source\":\"api\",\"request_id\":\"a3\",\"score\":-1},"
                      "{\"wall_ms\":100,\"source\":\"api\",\"request_id\":\"a1\",\"score\":-1}");
    char *jb = answer("t", 2, 2, 2, 0, 2, 2, -2, 0, 1,
                      "{\"wall_ms\":400,\"source\":\"api\",\"request_id\":\"b4\",\"score\":-1},"
                      "{\"wall_ms\":200,\"source\":\"api\",\"request_id\":\"b2\",\"score\":-1}");
    struct console_quality a, b, m, none;
    parse_ok(ja, &a);
    parse_ok(jb, &b);
    memset(&none, 0, sizeof none); /* an instance that did not answer: skipped */
    none.row.calls = 99;
    memset(&m, 0, sizeof m);
    const struct console_quality *in[] = {&b, &none, &a};
    console_quality_merge(in, 3, &m);
    assert_int_equal(m.row.calls, 5);
    assert_int_equal(m.n_negative, CONSOLE_QUALITY_NEGATIVE);
    const char *want[] = {"a5", "b4", "a3"};
    for (size_t i = 0; i < CONSOLE_QUALITY_NEGATIVE && i < 3; i++)
        assert_string_equal(m.negative[i].request_id, want[i]);
    const struct console_quality *nothing[] = {NULL, &none};
    console_quality_merge(nothing, 2, &m);
    assert_false(m.loaded);
    assert_int_equal(m.row.calls, 0);
    assert_int_equal(m.n_negative, 0);
    assert_true(m.row.completion < 0); /* undefined without calls */
    free(ja);
    free(jb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_reads_counts_sums_and_negatives),
        cmocka_unit_test(test_parse_refuses_what_is_not_a_quality),
        cmocka_unit_test(test_merge_sums_counts_and_derives_rates_again),
        cmocka_unit_test(test_merge_lists_negatives_newest_first_across_instances),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
