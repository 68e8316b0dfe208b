/*
 * test_router_reply.c - what a caller of router_command learns when the router does not
 * answer: a router that is not running (busy or stuck, as far as the caller can tell) times
 * out with SB_ERR_IO, and a stopped one says so with SB_ERR_IO too, so the admin API answers
 * 503 (unavailable) rather than 409 (a conflict with the target's state).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "switchboard/router.h"

static const char cfg_json[] = "{\"providers\":[{\"name\":\"a\",\"kind\":\"openai-compatible\","
                               "\"base_url\":\"http://127.0.0.1:1/v1\",\"model\":\"m\"}],"
                               "\"routes\":[{\"name\":\"chat\",\"targets\":[\"a\"]}],"
                               "\"ledger\":{\"path\":\":memory:\"},\"guard\":{\"enabled\":false}}";

static struct router *idle_router(void)
{
    struct config_diag errs;
    char msg[256];
    config_diag_init(&errs);
    struct config *cfg = config_parse(cfg_json, strlen(cfg_json), NULL, NULL, NULL, &errs);
    assert_non_null(cfg);
    config_diag_cleanup(&errs);
    struct router *rt = router_new(cfg, msg, sizeof msg);
    assert_non_null(rt);
    return rt; /* not started: nothing answers its inbox */
}

static void test_router_command_that_times_out_is_unavailable_not_a_conflict(void **state)
{
    (void)state;
    struct router *rt = idle_router();
    struct router_cmd cmd = {.type = ROUTER_CMD_DRAIN, .target = "a", .user = "test"};
    char msg[256] = "";
    assert_int_equal(router_command(rt, &cmd, msg, sizeof msg, 50), SB_ERR_IO);
    assert_string_equal(msg, "the router did not answer in time");
    struct buf out;
    buf_init(&out);
    assert_int_equal(router_explain(rt, "chat", NULL, 0, &out, 50), SB_ERR_IO);
    buf_cleanup(&out);
    router_free(rt);
}

static void test_router_command_after_stop_is_unavailable(void **state)
{
    (void)state;
    struct router *rt = idle_router();
    struct router_cmd cmd = {.type = ROUTER_CMD_DRAIN, .target = "a", .user = "test"};
    char msg[256] = "";
    router_stop(rt);
    assert_int_equal(router_command(rt, &cmd, msg, sizeof msg, 1000), SB_ERR_IO);
    assert_string_equal(msg, "the router is stopping");
    router_free(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_router_command_that_times_out_is_unavailable_not_a_conflict),
        cmocka_unit_test(test_router_command_after_stop_is_unavailable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
