/*
 * test_feedback.c - POST /v1/feedback's body (gw_feedback_parse): thumbs labels without a
 * score, -1..1 as given, 0..5 stars (explicit scale, or assumed above 1) normalised, the
 * bounds of each scale, request ids that are not what the gateway hands out, oversized
 * labels and comments, and anything but one JSON object.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/gateway/internal.h"

static bool parse(const char *body, struct gw_feedback_body *b, char *msg)
{
    return gw_feedback_parse(body, strlen(body), b, msg, 256);
}

static void test_feedback_thumbs_labels_stand_for_a_score(void **state)
{
    (void)state;
    struct gw_feedback_body b;
    char msg[256];
    assert_true(parse("{\"request_id\":\"r-1\",\"label\":\"thumbs_down\"}", &b, msg));
    assert_true(b.score == -1 && b.scale == 1);
    assert_string_equal(b.label, "thumbs_down");
    assert_null(b.comment);
    assert_true(
        parse("{\"request_id\":\"r-1\",\"label\":\"thumbs_up\",\"comment\":\"ok\"}", &b, msg));
    assert_true(b.score == 1);
    assert_string_equal(b.comment, "ok");
    free(b.comment);
    assert_false(parse("{\"request_id\":\"r-1\",\"label\":\"meh\"}", &b, msg));
    assert_non_null(strstr(msg, "score: required"));
}

static void test_feedback_scores_on_both_scales(void **state)
{
    (void)state;
    struct gw_feedback_body b;
    char msg[256];
    assert_true(parse("{\"request_id\":\"r\",\"score\":-0.5}", &b, msg));
    assert_true(b.score == -0.5 && b.raw == -0.5 && b.scale == 1);
    assert_true(parse("{\"request_id\":\"r\",\"score\":4}", &b, msg)); /* above 1: stars */
    assert_true(b.scale == 5 && b.raw == 4 && b.score > 0.599 && b.score < 0.601);
    assert_true(parse("{\"request_id\":\"r\",\"score\":1,\"scale\":5}", &b, msg));
    assert_true(b.score > -0.601 && b.score < -0.599); /* one star is negative */
    assert_true(parse("{\"request_id\":\"r\",\"score\":0,\"scale\":5}", &b, msg));
    assert_true(b.score == -1);
    assert_true(parse("{\"request_id\":\"r\",\"score\":1}", &b, msg));
    assert_true(b.score == 1 && b.scale == 1); /* 1 without a scale is the top of -1..1 */
    assert_false(parse("{\"request_id\":\"r\",\"score\":-2}", &b, msg));
    assert_non_null(strstr(msg, "score: expected -1..1"));
    assert_false(parse("{\"request_id\":\"r\",\"score\":5.5}", &b, msg));
    assert_false(parse("{\"request_id\":\"r\",\"score\":-1,\"scale\":5}", &b, msg));
    assert_false(parse("{\"request_id\":\"r\",\"score\":1,\"scale\":3}", &b, msg));
    assert_non_null(strstr(msg, "scale:"));
    assert_false(parse("{\"request_id\":\"r\",\"score\":\"5\"}", &b, msg));
}

static void test_feedback_request_id_must_be_one_we_hand_out(void **state)
{
    (void)state;
    struct gw_feedback_body b;
    char msg[256];
    assert_true(parse("{\"request_id\":\"chat.A-1_b\",\"score\":1}", &b, msg));
    assert_string_equal(b.request_id, "chat.A-1_b");
    const char *bad[] = {
        "{\"score\":1}",
        "{\"request_id\":\"\",\"score\":1}",
        "{\"request_id\":\"a b\",\"score\":1}",
        "{\"request_id\":\"x'; DROP TABLE calls;--\",\"score\":1}",
        "{\"request_id\":12,\"score\":1}",
        "{\"request_id\":\"0123456789012345678901234567890123456789012345678901234567890123X\","
        "\"score\":1}",
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(bad); i++) {
        assert_false(parse(bad[i], &b, msg));
        assert_non_null(strstr(msg, "request_id"));
        assert_null(b.comment);
    }
}

static void test_feedback_caps_and_shapes(void **state)
{
    (void)state;
    struct gw_feedback_body b;
    char msg[256];
    char big[GW_FEEDBACK_COMMENT_MAX + 100];
    snprintf(big, sizeof big, "{\"request_id\":\"r\",\"score\":1,\"comment\":\"%0*d\"}",
             GW_FEEDBACK_COMMENT_MAX + 1, 0);
    assert_false(parse(big, &b, msg));
    assert_non_null(strstr(msg, "comment: expected a string of at most 2000 bytes"));
    const char *bad[] = {"",
                         "[]",
                         "null",
                         "{\"request_id\":\"r\",\"score\":1} {}",
                         "{\"request_id\":\"r\",\"score\":1",
                         "not json"};
    for (size_t i = 0; i < SB_ARRAY_LEN(bad); i++) {
        assert_false(parse(bad[i], &b, msg));
        assert_true(msg[0] != '\0');
    }
    assert_true(parse("{\"request_id\":\"r\",\"score\":1}\r\n", &b, msg)); /* blanks after */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_feedback_thumbs_labels_stand_for_a_score),
        cmocka_unit_test(test_feedback_scores_on_both_scales),
        cmocka_unit_test(test_feedback_request_id_must_be_one_we_hand_out),
        cmocka_unit_test(test_feedback_caps_and_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
