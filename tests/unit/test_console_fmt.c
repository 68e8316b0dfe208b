/*
 * test_console_fmt.c - the console's number formats keep their unit at every width: a count
 * that does not fit loses precision ("529k"), never its suffix ("528.9"); rates and the
 * board's no-traffic dash (issue 15).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "../../src/console/internal.h"

static void expect_count(uint64_t v, int w, const char *want)
{
    char out[32];
    fmt_count_fit(v, w, out, sizeof out);
    assert_string_equal(out, want);
    assert_true((int)strlen(out) <= w || w < 4);
}

static void test_fmt_count_keeps_its_unit_at_every_width(void **state)
{
    (void)state;
    expect_count(528900, 8, "528.9k");
    expect_count(528900, 6, "528.9k");
    expect_count(528900, 5, "529k");
    expect_count(528900, 4, "529k");
    expect_count(9999, 5, "9999");
    expect_count(9999, 4, "9999");
    expect_count(12345, 5, "12.3k");
    expect_count(12345, 4, "12k");
    expect_count(999960, 5, "1.0M");
    expect_count(1234567, 5, "1.2M");
    expect_count(123456789, 5, "123M");
    expect_count(123456789, 4, "123M");
    expect_count(7, 5, "7");
}

static void test_fmt_count_fit_never_cuts_to_a_bare_number(void **state)
{
    (void)state;
    for (uint64_t v = 10000; v < 5000000000ULL; v = v * 3 + 7) {
        for (int w = 4; w <= 8; w++) {
            char out[32];
            fmt_count_fit(v, w, out, sizeof out);
            size_t n = strlen(out);
            assert_true((int)n <= w);
            assert_true(out[n - 1] == 'k' || out[n - 1] == 'M' || out[n - 1] == 'G');
        }
    }
}

static void test_fmt_rate_fits_five_cells(void **state)
{
    (void)state;
    char out[32];
    fmt_rate(0.26, 5, out, sizeof out);
    assert_string_equal(out, "0.3");
    fmt_rate(7012.4, 5, out, sizeof out);
    assert_string_equal(out, "7012");
    fmt_rate(123456, 5, out, sizeof out);
    assert_string_equal(out, "123k");
    fmt_rate(12345.6, 5, out, sizeof out);
    assert_string_equal(out, "12.3k");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fmt_count_keeps_its_unit_at_every_width),
        cmocka_unit_test(test_fmt_count_fit_never_cuts_to_a_bare_number),
        cmocka_unit_test(test_fmt_rate_fits_five_cells),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
