/*
 * test_gateway_admin_body.c - the admin API's command bodies (gw_admin_parse_cmd): exactly
 * one JSON object, weights and expiries in range, a message for everything refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/gateway/internal.h"

static void test_admin_body_accepts_weight_and_expiry(void **state)
{
    (void)state;
    struct router_cmd cmd;
    char msg[128] = "";
    memset(&cmd, 0, sizeof cmd);
    const char body[] = " {\"weight\": 2.5, \"expires_in_s\": 30}\r\n";
    assert_true(gw_admin_parse_cmd(body, strlen(body), true, &cmd, msg, sizeof msg));
    assert_true(cmd.weight == 2.5);
    assert_int_equal(cmd.expires_ms, 30000);
    memset(&cmd, 0, sizeof cmd);
    assert_true(gw_admin_parse_cmd(NULL, 0, false, &cmd, msg, sizeof msg)); /* empty is {} */
    assert_int_equal(cmd.expires_ms, 0);
}

static void test_admin_body_refuses_what_is_not_one_object_in_range(void **state)
{
    static const struct {
        const char *body;
        bool need_weight;
        const char *msg;
    } rows[] = {
        {"{\"weight\":1} trailing", true, "request body: expected one JSON object"},
        {"{\"weight\":1}{\"weight\":2}", true, "request body: expected one JSON object"},
        {"[1]", false, "request body: expected one JSON object"},
        {"{\"weight\":", true, "request body: expected one JSON object"},
        {"{}", true, "weight: expected a number from 0 to 1000000"},
        {"{\"weight\":-1}", true, "weight: expected a number from 0 to 1000000"},
        {"{\"weight\":1e300}", true, "weight: expected a number from 0 to 1000000"},
        {"{\"weight\":\"2\"}", true, "weight: expected a number from 0 to 1000000"},
        {"{\"expires_in_s\":-5}", false, "expires_in_s: expected a number of seconds >= 0"},
        {"{\"expires_in_s\":1e12}", false, "expires_in_s: expected a number of seconds >= 0"},
    };
    (void)state;
    for (size_t i = 0; i < SB_ARRAY_LEN(rows); i++) {
        struct router_cmd cmd;
        char msg[128] = "";
        memset(&cmd, 0, sizeof cmd);
        if (gw_admin_parse_cmd(rows[i].body, strlen(rows[i].body), rows[i].need_weight, &cmd, msg,
                               sizeof msg) ||
            strcmp(msg, rows[i].msg) != 0)
            fail_msg("row %zu: \"%s\"", i, msg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_admin_body_accepts_weight_and_expiry),
        cmocka_unit_test(test_admin_body_refuses_what_is_not_one_object_in_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
