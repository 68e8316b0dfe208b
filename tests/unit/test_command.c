/*
 * test_command.c - the operator command table: parsing command lines into router commands,
 * durations, errors that name the problem, and completion of commands, targets and routes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "switchboard/command.h"

static struct router_cmd parse_ok(const char *line)
{
    struct router_cmd c;
    char err[256] = "";
    enum sb_status st = command_parse(line, &c, err, sizeof err);
    if (st != SB_OK)
        fail_msg("'%s' did not parse: %s", line, err);
    return c;
}

static void expect_error(const char *line, const char *needle)
{
    struct router_cmd c;
    char err[256] = "";
    assert_int_not_equal(command_parse(line, &c, err, sizeof err), SB_OK);
    if (!strstr(err, needle))
        fail_msg("'%s': error '%s' does not mention '%s'", line, err, needle);
}

static void test_command_weight_with_expiry(void **state)
{
    (void)state;
    struct router_cmd c = parse_ok("weight openai-main 0 for 10m");
    assert_int_equal(c.type, ROUTER_CMD_SET_WEIGHT);
    assert_string_equal(c.target, "openai-main");
    assert_true(c.weight == 0);
    assert_int_equal(c.expires_ms, 600000);
    c = parse_ok("weight a 2.5");
    assert_true(c.weight == 2.5);
    assert_int_equal(c.expires_ms, 0);
}

static void test_command_every_target_command_parses(void **state)
{
    (void)state;
    struct {
        const char *line;
        enum router_cmd_type type;
        int64_t expires;
    } cases[] = {
        {"pin anthropic for 10m", ROUTER_CMD_PIN, 600000},
        {"drain gemini", ROUTER_CMD_DRAIN, 0},
        {"drain gemini for 2h", ROUTER_CMD_DRAIN, 7200000},
        {"force-live x", ROUTER_CMD_FORCE_LIVE, 0},
        {"force-live x for 30s", ROUTER_CMD_FORCE_LIVE, 30000},
        {"reset x", ROUTER_CMD_RESET, 0},
        {"probe x", ROUTER_CMD_PROBE_NOW, 0},
        {"clear x", ROUTER_CMD_CLEAR, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct router_cmd c = parse_ok(cases[i].line);
        assert_int_equal(c.type, cases[i].type);
        assert_int_equal(c.expires_ms, cases[i].expires);
        assert_true(c.target[0] != '\0');
    }
    struct router_cmd u = parse_ok("undo");
    assert_int_equal(u.type, ROUTER_CMD_UNDO);
    assert_string_equal(u.target, "");
}

static void test_command_accepts_colon_spaces_and_yes(void **state)
{
    (void)state;
    struct router_cmd c = parse_ok("  :pin   anthropic  for 10m --yes ");
    assert_int_equal(c.type, ROUTER_CMD_PIN);
    assert_string_equal(c.target, "anthropic");
    assert_int_equal(c.expires_ms, 600000);
    c = parse_ok(":drain x -y");
    assert_int_equal(c.type, ROUTER_CMD_DRAIN);
}

static void test_command_errors_name_the_problem(void **state)
{
    (void)state;
    expect_error("", "empty command");
    expect_error("frobnicate x", "unknown command 'frobnicate'");
    expect_error("drain", "missing TARGET");
    expect_error("weight x", "missing N");
    expect_error("weight x -1", "expected a weight");
    expect_error("weight x lots", "'lots'");
    expect_error("weight x 2000000", "expected a weight");
    expect_error("pin x for", "missing DURATION");
    expect_error("pin x for 10x", "bad duration");
    expect_error("pin x soon", "unexpected 'soon'");
    expect_error("reset x for 10m", "takes no expiry");
    expect_error("undo x", "unexpected 'x'");
}

static void test_command_errors_show_usage(void **state)
{
    (void)state;
    expect_error("weight", "usage: weight TARGET N [for DURATION]");
    expect_error("pin", "usage: pin TARGET [for DURATION]");
}

static void test_command_route_explain(void **state)
{
    (void)state;
    struct command_parsed p;
    char err[256];
    assert_int_equal(
        command_parse_line("route explain chat tag=batch tokens=1200", &p, err, sizeof err), SB_OK);
    assert_int_equal(p.def->kind, COMMAND_EXPLAIN);
    assert_false(p.def->mutating);
    assert_string_equal(p.model, "chat");
    assert_string_equal(p.tag, "batch");
    assert_int_equal(p.tokens, 1200);
    assert_int_equal(command_parse_line("route explain gpt-4o", &p, err, sizeof err), SB_OK);
    assert_string_equal(p.tag, "");
    assert_int_equal(p.tokens, 0);
    assert_int_not_equal(command_parse_line("route chat", &p, err, sizeof err), SB_OK);
    assert_non_null(strstr(err, "expected 'explain'"));
    assert_int_not_equal(command_parse_line("route explain", &p, err, sizeof err), SB_OK);
    assert_int_not_equal(command_parse_line("route explain m tokens=many", &p, err, sizeof err),
                         SB_OK);
    struct router_cmd c;
    assert_int_equal(command_parse("route explain chat", &c, err, sizeof err), SB_ERR_UNSUPPORTED);
}

static void test_command_durations(void **state)
{
    (void)state;
    struct {
        const char *s;
        int64_t ms;
    } ok[] = {{"30s", 30000},     {"10m", 600000}, {"2h", 7200000},  {"1d", 86400000},
              {"1h30m", 5400000}, {"90", 90000},   {"1m30s", 90000}, {"30d", 2592000000LL}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t ms = -1;
        assert_true(command_parse_duration(ok[i].s, &ms));
        assert_int_equal(ms, ok[i].ms);
    }
    const char *bad[] = {"", "0s", "0", "10x", "1h30", "-5m", "31d", "m", "10 m", "1.5h"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms;
        if (command_parse_duration(bad[i], &ms))
            fail_msg("'%s' should not parse as a duration", bad[i]);
    }
}

static void test_command_format_duration(void **state)
{
    (void)state;
    char b[32];
    command_format_duration(45000, b, sizeof b);
    assert_string_equal(b, "45s");
    command_format_duration(600000, b, sizeof b);
    assert_string_equal(b, "10m");
    command_format_duration(599001, b, sizeof b);
    assert_string_equal(b, "10m");
    command_format_duration(125000, b, sizeof b);
    assert_string_equal(b, "2m05s");
    command_format_duration(7500000, b, sizeof b);
    assert_string_equal(b, "2h05m");
    command_format_duration(3 * 86400000LL + 4 * 3600000LL, b, sizeof b);
    assert_string_equal(b, "3d4h");
}

static void test_command_table_is_complete(void **state)
{
    (void)state;
    for (int t = ROUTER_CMD_SET_WEIGHT; t <= ROUTER_CMD_CLEAR; t++) {
        const struct command_def *d = command_for_type((enum router_cmd_type)t);
        assert_non_null(d);
        assert_true(d->mutating);
        assert_non_null(d->usage);
        assert_non_null(d->help);
    }
    assert_true(command_find("pin")->confirm);
    assert_true(command_find("drain")->confirm);
    assert_false(command_find("weight")->confirm);
    assert_true(command_find("force-live")->confirm);
    assert_true(command_find("reset")->confirm);
    assert_true(command_find("undo")->confirm);
    assert_null(command_find("nope"));
}

static const char *const targets[] = {"alpha", "anthropic", "beta"};
static const char *const routes[] = {"chat", "cheap", "smart"};

static size_t complete(const char *line, const char **m, size_t *start)
{
    return command_complete(line, targets, 3, routes, 3, m, 16, start);
}

static void test_command_completes_names(void **state)
{
    (void)state;
    const char *m[16];
    size_t start;
    size_t n = complete("", m, &start);
    size_t count;
    command_table(&count);
    assert_int_equal(n, count);
    n = complete("dr", m, &start);
    assert_int_equal(n, 1);
    assert_string_equal(m[0], "drain");
    assert_int_equal(start, 0);
    n = complete(":p", m, &start);
    assert_int_equal(n, 2); /* pin, probe */
    assert_int_equal(start, 1);
    n = complete("drain a", m, &start);
    assert_int_equal(n, 2);
    assert_string_equal(m[0], "alpha");
    assert_string_equal(m[1], "anthropic");
    assert_int_equal(start, 6);
    assert_int_equal(command_common_prefix(m, n), 1);
    n = complete("pin ", m, &start);
    assert_int_equal(n, 3);
    n = complete("weight alpha ", m, &start);
    assert_int_equal(n, 0);
    n = complete("undo ", m, &start);
    assert_int_equal(n, 0);
    n = complete("route ", m, &start);
    assert_int_equal(n, 1);
    assert_string_equal(m[0], "explain");
    n = complete("route explain ch", m, &start);
    assert_int_equal(n, 2);
    assert_string_equal(m[0], "chat");
    assert_int_equal(command_common_prefix(m, n), 2);
    n = complete("nosuch x", m, &start);
    assert_int_equal(n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_command_weight_with_expiry),
        cmocka_unit_test(test_command_every_target_command_parses),
        cmocka_unit_test(test_command_accepts_colon_spaces_and_yes),
        cmocka_unit_test(test_command_errors_name_the_problem),
        cmocka_unit_test(test_command_errors_show_usage),
        cmocka_unit_test(test_command_route_explain),
        cmocka_unit_test(test_command_durations),
        cmocka_unit_test(test_command_format_duration),
        cmocka_unit_test(test_command_table_is_complete),
        cmocka_unit_test(test_command_completes_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
