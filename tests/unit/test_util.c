/*
 * test_util.c - buffers, strings, UTF-8 handling, clocks, log line escaping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cJSON.h>
#include <cmocka.h>

#include "switchboard/log.h"
#include "switchboard/util.h"

static void test_buf_appends_and_stays_terminated(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b);
    assert_string_equal(buf_str(&b), "");
    buf_puts(&b, "hello");
    buf_putc(&b, ' ');
    buf_printf(&b, "%d-%s", 42, "x");
    assert_string_equal(b.data, "hello 42-x");
    assert_int_equal(b.len, 10);
    buf_consume(&b, 6);
    assert_string_equal(b.data, "42-x");
    char *s = buf_take(&b);
    assert_string_equal(s, "42-x");
    assert_null(b.data);
    free(s);
    buf_cleanup(&b);
}

static void test_buf_grows_past_many_doublings(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b);
    for (int i = 0; i < 100000; i++)
        buf_putc(&b, (char)('a' + i % 26));
    assert_int_equal(b.len, 100000);
    assert_int_equal(b.data[99999], 'a' + 99999 % 26);
    assert_int_equal(b.data[100000], '\0');
    buf_cleanup(&b);
}

static void test_buf_json_string_escapes_controls_and_quotes(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b);
    const char in[] = "a\"b\\c\n\x01\xc3\xa9";
    buf_put_json_string(&b, in, sizeof in - 1);
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\"");
    buf_cleanup(&b);
}

static void test_buf_json_string_keeps_runs_and_escapes_at_edges(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b);
    buf_put_json_string(&b, "\"plain text\t", 12);
    buf_put_json_string(&b, "", 0);
    buf_put_json_string(&b, "\x1f", 1);
    assert_string_equal(b.data, "\"\\\"plain text\\t\"\"\"\"\\u001f\"");
    buf_cleanup(&b);
}

/* The escapes cJSON prints: \b and \f short, other controls \u00xx, DEL and '/' as they are
 * (the provider encoders' bodies stay byte for byte what a cJSON tree would print). */
static void test_buf_json_string_escapes_as_cjson_prints(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b);
    buf_put_json_string(&b, "\x01\b\t\n\x0b\f\r\x1f\"\\/\x7f", 12);
    assert_string_equal(b.data, "\"\\u0001\\b\\t\\n\\u000b\\f\\r\\u001f\\\"\\\\/\x7f\"");
    buf_cleanup(&b);
}

/* The escaper scans whole words for bytes to escape: every byte value at every offset in and
 * across a word, and runs of mixed text, come out as cJSON prints them. */
static void expect_as_cjson(const char *in, size_t len)
{
    struct buf b;
    buf_init(&b);
    buf_put_json_string(&b, in, len);
    char *copy = xstrndup(in, len);
    cJSON *str = cJSON_CreateString(copy);
    char *want = cJSON_PrintUnformatted(str);
    assert_string_equal(b.data, want);
    cJSON_free(want);
    cJSON_Delete(str);
    free(copy);
    buf_cleanup(&b);
}

static void test_buf_json_string_every_byte_at_every_offset(void **state)
{
    (void)state;
    char s[40];
    for (int c = 1; c < 256; c++) {
        for (size_t at = 0; at < 20; at++) {
            memset(s, 'a' + (int)(at % 26), sizeof s);
            s[at] = (char)c;
            expect_as_cjson(s, sizeof s - at); /* the byte near the end of the text too */
            s[at + 9] = (char)c;               /* two in one or in adjacent words */
            expect_as_cjson(s, sizeof s);
        }
    }
    uint32_t x = 12345;
    for (int round = 0; round < 2000; round++) { /* mostly plain text, some of anything */
        size_t len = (size_t)(round % 37);
        for (size_t i = 0; i < len; i++) {
            x = x * 1103515245u + 12345u;
            int v = (int)((x >> 16) & 0xff);
            s[i] = (char)(v < 200 ? 'a' + v % 26 : v == 200 ? 1 : v % 255 + 1);
        }
        expect_as_cjson(s, len);
    }
}

/* Outside a section, and past what is left, allocations come from the heap. */
static void test_scratch_serves_only_inside_a_section(void **state)
{
    (void)state;
    void *heap = scratch_alloc_hook(32);
    assert_true(scratch_begin());
    char *a = scratch_alloc_hook(10), *b = scratch_alloc_hook(10);
    assert_ptr_equal(b, a + 16); /* bump, 16-byte aligned */
    memset(a, 'x', 10);
    void *big = scratch_alloc_hook(64 * 1024);
    assert_false(big > (void *)a && big < (void *)(a + 16 * 1024));
    assert_false(scratch_begin()); /* no nesting */
    scratch_end();
    scratch_free_hook(big);
    scratch_free_hook(heap);
    scratch_free_hook(a);
    scratch_free_hook(b);
    /* Empty again: the next section starts at the same place. */
    assert_true(scratch_begin());
    assert_ptr_equal(scratch_alloc_hook(1), a);
    scratch_end();
    scratch_free_hook(a);
}

/* A tree still alive keeps its memory: the next section declines and uses the heap. */
static void test_scratch_declines_while_a_tree_is_alive(void **state)
{
    (void)state;
    assert_true(scratch_begin());
    char *kept = scratch_alloc_hook(100);
    memcpy(kept, "still here", 11);
    scratch_end();
    assert_false(scratch_begin());
    char *other = scratch_alloc_hook(100); /* heap: not inside kept's arena */
    memset(other, 'y', 100);
    assert_string_equal(kept, "still here");
    free(other);
    scratch_free_hook(kept);
    assert_true(scratch_begin());
    scratch_end();
}

static void test_str_to_long_is_strict(void **state)
{
    (void)state;
    long v;
    assert_true(str_to_long("123", &v));
    assert_int_equal(v, 123);
    assert_true(str_to_long("-7", &v));
    assert_int_equal(v, -7);
    assert_false(str_to_long("12x", &v));
    assert_false(str_to_long("", &v));
    assert_false(str_to_long(" 1", &v));
    assert_false(str_to_long("99999999999999999999999", &v));
    double d;
    assert_true(str_to_double("1.5", &d));
    assert_true(d == 1.5);
    assert_false(str_to_double("1.5s", &d));
}

static void test_str_copy_truncates_and_terminates(void **state)
{
    (void)state;
    char small[4];
    assert_int_equal(str_copy(small, sizeof small, "abcdef"), 6);
    assert_string_equal(small, "abc");
    assert_true(str_eq(NULL, NULL));
    assert_false(str_eq("a", NULL));
    assert_true(str_ieq("Content-Type", "content-type"));
    assert_true(str_has_prefix("sk-abc", "sk-"));
}

static void test_utf8_prefix_stops_before_incomplete_sequence(void **state)
{
    (void)state;
    const char *s = "ab\xe6\x97\xa5"; /* "ab" + U+65E5 */
    assert_int_equal(utf8_valid_prefix(s, 5), 5);
    assert_int_equal(utf8_valid_prefix(s, 4), 2);
    assert_int_equal(utf8_valid_prefix(s, 3), 2);
    assert_int_equal(utf8_valid_prefix("\xc0\xaf", 2), 0);         /* overlong */
    assert_int_equal(utf8_valid_prefix("\xed\xa0\x80", 3), 0);     /* surrogate */
    assert_int_equal(utf8_valid_prefix("\xf4\x90\x80\x80", 4), 0); /* > U+10FFFF */
}

/* utf8_valid_prefix skips ASCII a word at a time: a bad or cut sequence at any offset of a
 * long text must stop it exactly where it stops on the same bytes one at a time. */
static void test_utf8_valid_prefix_stops_at_the_same_byte_at_any_offset(void **state)
{
    (void)state;
    static const char *const bad[] = {"\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xff", "\xe2\x82"};
    char s[64];
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
        for (size_t at = 0; at + strlen(bad[b]) + 2 < sizeof s; at++) {
            memset(s, 'a', sizeof s);
            memcpy(s + at, "\xc3\xa9", 2); /* a valid sequence first, then the bad one */
            memcpy(s + at + 2, bad[b], strlen(bad[b]));
            assert_int_equal(utf8_valid_prefix(s, sizeof s), at + 2);
            assert_int_equal(utf8_valid_prefix(s, at + 2), at + 2);
        }
    }
    memset(s, 'a', sizeof s);
    assert_int_equal(utf8_valid_prefix(s, sizeof s), sizeof s);
}

static void test_utf8_sanitize_replaces_invalid_bytes(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b);
    utf8_sanitize_append(&b,
                         "a\xff"
                         "b\xc3",
                         4);
    assert_string_equal(b.data, "a\xef\xbf\xbd"
                                "b\xef\xbf\xbd");
    buf_cleanup(&b);
}

static int64_t ts_ms(const struct timespec *ts)
{
    return (int64_t)ts->tv_sec * 1000 + ts->tv_nsec / 1000000;
}

static void test_clock_deadline_is_normalised_and_never_past(void **state)
{
    (void)state;
    for (int i = 0; i < 50; i++) { /* some of these land where tv_nsec carries */
        struct timespec ts;
        int64_t before = clock_wall_ms();
        clock_deadline_in(&ts, 1999);
        int64_t after = clock_wall_ms();
        assert_true(ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000L);
        assert_true(ts_ms(&ts) >= before + 1999 - 1 && ts_ms(&ts) <= after + 1999 + 1);
        clock_sleep_ms(i % 3);
    }
    struct timespec past;
    int64_t before = clock_wall_ms();
    clock_deadline_in(&past, -5000);
    assert_true(ts_ms(&past) >= before - 1);
}

static void test_clock_is_monotonic_and_sleeps(void **state)
{
    (void)state;
    int64_t a = clock_mono_ms();
    clock_sleep_ms(20);
    int64_t b = clock_mono_ms();
    assert_true(b - a >= 20);
    assert_true(clock_wall_ms() > 1600000000000LL);
}

static void test_str_has_ctl_finds_any_control_character(void **state)
{
    (void)state;
    assert_false(str_has_ctl(NULL));
    assert_false(str_has_ctl("sk-abc 123~"));
    assert_true(str_has_ctl("sk-abc\r\nX-Injected: 1"));
    assert_true(str_has_ctl("a\tb"));
    assert_true(str_has_ctl("a\x7f"));
    assert_true(str_has_ctl("\x1b[31m"));
}

static void test_str_is_path_segment_refuses_what_bends_a_url(void **state)
{
    static const char *const bad[] = {
        "",      ".",   "..",  "gemini/../../x?key=y", "a/b", "a?b", "a#b",
        "a%2fb", "a b", "a:b", "gemini\r\nX: y"};
    (void)state;
    assert_true(str_is_path_segment("gemini-2.5-flash"));
    assert_true(str_is_path_segment("...")); /* not a dot segment: a name */
    assert_false(str_is_path_segment(NULL));
    for (size_t i = 0; i < SB_ARRAY_LEN(bad); i++)
        assert_false(str_is_path_segment(bad[i]));
}

static void test_log_lines_escape_control_characters(void **state)
{
    (void)state;
    char path[] = "/tmp/sb-test-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    log_setup(LOG_LEVEL_INFO, fd);
    log_info("model %s path %s", "gpt\r\n2026-01-01T00:00:00.000Z error forged", "/v1\x1b[2J\\x");
    log_setup(LOG_LEVEL_INFO, -1);
    char got[512] = "";
    ssize_t n = pread(fd, got, sizeof got - 1, 0);
    close(fd);
    unlink(path);
    assert_true(n > 0);
    got[n] = '\0';
    assert_non_null(strstr(got, "model gpt\\x0d\\x0a2026-01-01T00:00:00.000Z error forged path "
                                "/v1\\x1b[2J\\x5cx\n"));
    assert_ptr_equal(strchr(got, '\n'), got + n - 1); /* one line */
}

static void test_xgrow_and_hash(void **state)
{
    (void)state;
    int *v = NULL;
    size_t cap = 0;
    v = xgrow(v, &cap, 10, sizeof *v);
    assert_true(cap >= 10);
    v[9] = 1;
    free(v);
    assert_int_equal(hash_fnv1a("", 0), 1469598103934665603ULL);
    assert_true(hash_fnv1a("a", 1) != hash_fnv1a("b", 1));
    char *s = xasprintf("%s=%d", "k", 5);
    assert_string_equal(s, "k=5");
    free(s);
    assert_string_equal(sb_strerror(SB_ERR_LIMIT), "over a limit");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_appends_and_stays_terminated),
        cmocka_unit_test(test_buf_grows_past_many_doublings),
        cmocka_unit_test(test_buf_json_string_escapes_controls_and_quotes),
        cmocka_unit_test(test_buf_json_string_keeps_runs_and_escapes_at_edges),
        cmocka_unit_test(test_buf_json_string_every_byte_at_every_offset),
        cmocka_unit_test(test_buf_json_string_escapes_as_cjson_prints),
        cmocka_unit_test(test_scratch_serves_only_inside_a_section),
        cmocka_unit_test(test_scratch_declines_while_a_tree_is_alive),
        cmocka_unit_test(test_str_to_long_is_strict),
        cmocka_unit_test(test_str_copy_truncates_and_terminates),
        cmocka_unit_test(test_utf8_prefix_stops_before_incomplete_sequence),
        cmocka_unit_test(test_utf8_sanitize_replaces_invalid_bytes),
        cmocka_unit_test(test_clock_is_monotonic_and_sleeps),
        cmocka_unit_test(test_clock_deadline_is_normalised_and_never_past),
        cmocka_unit_test(test_xgrow_and_hash),
        cmocka_unit_test(test_str_has_ctl_finds_any_control_character),
        cmocka_unit_test(test_str_is_path_segment_refuses_what_bends_a_url),
        cmocka_unit_test(test_log_lines_escape_control_characters),
        cmocka_unit_test(test_utf8_valid_prefix_stops_at_the_same_byte_at_any_offset),
    };
    return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
